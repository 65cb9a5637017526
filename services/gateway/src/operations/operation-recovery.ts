import type { Logger } from "@vplane/service-kit";
import { listAll, type Store } from "@vplane/store";
import { errorBody } from "../http/error-body.js";
import { replicaStopped, withEvent, type OperationRunner } from "./operation-runner.js";
import {
  operationId,
  type OperationRecord,
  type OperationRecords,
  type RunningOperation,
} from "./operation-records.js";
import { recordOf } from "./stored-operation.js";
import type { ReplicaHeartbeats } from "./replica-heartbeats.js";
import { registryKeys } from "../registry/registry-keys.js";
import type { VmRegistry } from "../registry/vm-registry.js";
import type { VmLifecycle } from "../vms/vm-lifecycle.js";
import type { VmMigrations } from "../vms/vm-migration.js";

export interface RecoveryTiming {
  /** How often a replica refreshes its heartbeat and looks for abandoned operations. */
  heartbeatMs: number;
}

const DEFAULT_TIMING: RecoveryTiming = { heartbeatMs: 5_000 };

/** Every so many looks, one reads every record again (5 min at the default heartbeat). */
const FULL_LOOK_EVERY = 60;

/**
 * Operations outlive the replica running them only as records: one that stopped (a crash, kill
 * -9) would leave them RUNNING and their VM busy for ever. Every replica keeps a heartbeat in the
 * registry and, on start and then every heartbeat, takes care of the unfinished operations of
 * replicas whose heartbeat lapsed. A migration goes on without the gateway, so a migrate
 * operation is adopted: its migration followed to its end from here, asked for again by the
 * operation's request id when the stopped replica had not recorded it (VmMigrations.adopt).
 * A create is adopted to be rolled back on its host, so that all or nothing holds across a crash
 * too, and ends FAILED with ABORTED / OPERATION_ABANDONED naming the step it was at
 * (VmLifecycle.adoptAbandonedCreate). A delete is adopted and finished, its device deletes made
 * again (idempotent: VmLifecycle.adoptAbandonedDelete). A migrate or delete whose replica had
 * recorded its result (the VM moved, or removed) but not its end is ended SUCCEEDED. One that
 * cannot be adopted (its VM or a host gone, or the VM no longer busy with it) ends FAILED ABORTED
 * / OPERATION_ABANDONED, and its VM, if still busy with it, FAILED (what was done on the host is
 * unknown; deleting the VM cleans it up). A replica that was only slow finds its record done or
 * owned by another at its next step and stops there.
 *
 * Finding them does not read every record (they are kept, thousands after a busy hour, and every
 * replica looks): each look reads the running-operations index (OperationRecords.running, written
 * in the transactions that start, adopt and end an operation), and only the records of replicas
 * that stopped. The first look reads every record, and so does one in FULL_LOOK_EVERY: records
 * written by a gateway from before the index have no entry.
 */
export class OperationRecovery {
  private timer: NodeJS.Timeout | undefined;
  private readonly timing: RecoveryTiming;
  private looks = 0;

  constructor(
    private readonly deps: {
      store: Store;
      heartbeats: ReplicaHeartbeats;
      operations: OperationRecords;
      vms: VmRegistry;
      lifecycle: VmLifecycle;
      migrations: VmMigrations;
      runner: OperationRunner;
      instanceId: string;
      log: Logger;
    },
    timing: Partial<RecoveryTiming> = {},
  ) {
    this.timing = { ...DEFAULT_TIMING, ...timing };
  }

  async start(): Promise<void> {
    await this.beat();
    await this.reap();
    this.timer = setInterval(() => {
      void this.beat()
        .then(() => this.reap())
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "operation recovery round failed"));
    }, this.timing.heartbeatMs);
    this.timer.unref();
  }

  /** Stops the heartbeat and removes it (a graceful stop leaves no running operation behind). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.deps.heartbeats.remove(this.deps.instanceId).catch(() => undefined);
  }

  /** Adopts or ends every unfinished operation of a replica that stopped; the names of those. */
  async reap(now = Date.now()): Promise<string[]> {
    const unfinished = (await this.look()).filter((op) => op.owner !== this.deps.instanceId);
    const alive = new Map<string, boolean>();
    const handled: string[] = [];
    for (const found of unfinished) {
      const { owner } = found;
      if (!alive.has(owner)) alive.set(owner, await this.deps.heartbeats.isAlive(owner, now));
      if (alive.get(owner)) continue;
      const op = "record" in found ? found.record : await this.read(found);
      if (op?.owner !== owner) continue; // ended, or adopted by another replica meanwhile
      const adopted = await this.adopt(op);
      if (adopted)
        this.deps.log.warn(
          { operation: op.name, owner, kind: op.metadata.kind },
          "adopted an abandoned operation",
        );
      if (adopted || (await this.abandon(op))) handled.push(op.name);
    }
    return handled;
  }

  /**
   * The unfinished operations, with their records when this look read every record (the first,
   * and one in FULL_LOOK_EVERY), else as the index names them.
   */
  private async look(): Promise<(RunningOperation | { owner: string; record: OperationRecord })[]> {
    if (this.looks++ % FULL_LOOK_EVERY !== 0) return this.deps.operations.running();
    const records = await listAll(this.deps.store, registryKeys.allOperations());
    // Most are done: only the unfinished ones are read whole.
    return records
      .filter(({ value }) => !(value as { done?: boolean }).done)
      .map(({ value }) => recordOf<OperationRecord>(value))
      .map((record) => ({ owner: record.owner, record }));
  }

  /** The unfinished record an index entry names; an entry whose record ended or is gone is removed. */
  private async read({ tenant, id }: RunningOperation): Promise<OperationRecord | undefined> {
    const record = (await this.deps.operations.get(tenant, id))?.value;
    if (record && !record.done) return record;
    await this.deps.operations.forget(tenant, id);
    return undefined;
  }

  /** A migration is followed to its end, a create rolled back, a delete finished; false: just end it. */
  private async adopt(op: OperationRecord): Promise<boolean> {
    if (op.metadata.kind === "migrate") return this.deps.migrations.adopt(op);
    if (op.metadata.kind === "create") return this.deps.lifecycle.adoptAbandonedCreate(op);
    if (op.metadata.kind === "delete") return this.deps.lifecycle.adoptAbandonedDelete(op);
    return false;
  }

  private beat(): Promise<void> {
    return this.deps.heartbeats.beat(this.deps.instanceId);
  }

  private async abandon(op: OperationRecord): Promise<boolean> {
    const { tenant, vm } = op.metadata;
    // A VM no longer busy with the operation was settled by it before it stopped: left as it is.
    const busy = (await this.deps.vms.get(tenant, vm))?.value.activeOperation === op.name;
    const stopped = replicaStopped(
      op.owner,
      op.metadata.step,
      busy
        ? `; VM '${vm}' is FAILED: what was done on its host is unknown, delete the VM to clean it up`
        : `; VM '${vm}' is not busy with it (settled by it, or gone) and is left as it is`,
    );
    const { message } = stopped;
    const error = errorBody(stopped, { step: op.metadata.step }).error;
    const stored = await this.deps.operations.update(tenant, operationId(op), (r) =>
      r.done || r.owner !== op.owner
        ? undefined
        : withEvent(
            { ...r, done: true, metadata: { ...r.metadata, state: "FAILED" }, error },
            `failed: ${message}`,
          ),
    );
    if (!stored || stored.value.error !== error) return false; // ended or adopted meanwhile
    this.deps.runner.events.emit(`${tenant}/${operationId(op)}`, stored.value);
    await this.deps.vms.update(tenant, vm, (current) => {
      if (current.activeOperation !== op.name) return undefined;
      const { activeOperation: _abandoned, ...rest } = current;
      return { ...rest, state: "FAILED", updateTime: new Date().toISOString() };
    });
    this.deps.log.warn({ operation: op.name, owner: op.owner, vm }, "ended an abandoned operation");
    return true;
  }
}
