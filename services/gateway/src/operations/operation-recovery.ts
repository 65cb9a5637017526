import type { Logger } from "@vplane/service-kit";
import type { Store } from "@vplane/store";
import { errorBody } from "../http/error-body.js";
import { replicaStopped, withEvent, type OperationRunner } from "./operation-runner.js";
import { operationId, type OperationRecord, type OperationRecords } from "./operation-records.js";
import { listAll } from "../registry/typed-entry.js";
import type { ReplicaHeartbeats } from "./replica-heartbeats.js";
import type { VmRegistry } from "../registry/vm-registry.js";
import type { VmLifecycle } from "../vms/vm-lifecycle.js";
import type { VmMigrations } from "../vms/vm-migration.js";

export interface RecoveryTiming {
  /** How often a replica refreshes its heartbeat and looks for abandoned operations. */
  heartbeatMs: number;
}

const DEFAULT_TIMING: RecoveryTiming = { heartbeatMs: 5_000 };

/**
 * Operations outlive the replica running them only as records: one that stopped (a crash, kill
 * -9) would leave them RUNNING and their VM busy for ever. Every replica keeps a heartbeat in the
 * registry and, on start and then every heartbeat, takes care of the unfinished operations of
 * replicas whose heartbeat lapsed. A migration goes on without the gateway, so a migrate
 * operation that had started it is adopted: followed to its end from here (VmMigrations.adopt).
 * A create is adopted to be rolled back on its host, so that all or nothing holds across a crash
 * too (VmLifecycle.adoptAbandonedCreate). Either way, and for any other, the operation ends
 * FAILED with ABORTED / OPERATION_ABANDONED naming the step it was at; a delete leaves its VM
 * FAILED (what was done on the host is unknown; deleting the VM again finishes it). A replica
 * that was only slow finds its record done or owned by another at its next step and stops there.
 */
export class OperationRecovery {
  private timer: NodeJS.Timeout | undefined;
  private readonly timing: RecoveryTiming;

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
    const unfinished = (await listAll<OperationRecord>(this.deps.store, "operations/"))
      .map((entry) => entry.value)
      .filter((op) => !op.done && op.owner !== this.deps.instanceId);
    const alive = new Map<string, boolean>();
    const handled: string[] = [];
    for (const op of unfinished) {
      if (!alive.has(op.owner)) alive.set(op.owner, await this.deps.heartbeats.isAlive(op.owner, now));
      if (alive.get(op.owner)) continue;
      const adopted = await this.adopt(op);
      if (adopted)
        this.deps.log.warn(
          { operation: op.name, owner: op.owner, kind: op.metadata.kind },
          "adopted an abandoned operation",
        );
      if (adopted || (await this.abandon(op))) handled.push(op.name);
    }
    return handled;
  }

  /** A migration is followed to its end, a create rolled back on its host; false: just end it. */
  private async adopt(op: OperationRecord): Promise<boolean> {
    if (op.metadata.kind === "migrate") return this.deps.migrations.adopt(op);
    if (op.metadata.kind === "create") return this.deps.lifecycle.adoptAbandonedCreate(op);
    return false;
  }

  private beat(): Promise<void> {
    return this.deps.heartbeats.beat(this.deps.instanceId);
  }

  private async abandon(op: OperationRecord): Promise<boolean> {
    const { tenant, vm } = op.metadata;
    const stopped = replicaStopped(
      op.owner,
      op.metadata.step,
      `; VM '${vm}' is FAILED: what was done on its host is unknown, delete the VM to clean it up`,
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
