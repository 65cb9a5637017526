import { randomBytes } from "node:crypto";
import { VplaneError } from "@vplane/service-kit";
import { StoreConflictError, StoreUnavailableError } from "@vplane/store";
import type { Principal } from "../access/access-tokens.js";
import {
  newOperationRecord,
  replicaStopped,
  StepFailure,
  type OperationContext,
} from "../operations/operation-runner.js";
import type { OperationRecord } from "../operations/operation-records.js";
import { conflictBackoff, MAX_CONFLICT_RETRIES } from "../registry/conflict-backoff.js";
import { InvalidFieldsError } from "../http/field-violations.js";
import type { FieldViolation } from "../schemas/error-schema.js";
import { registryKeys } from "../registry/registry-keys.js";
import { putOp, type Versioned } from "../registry/typed-entry.js";
import { addUsage } from "../registry/vm-registry.js";
import type { HostState } from "../hosts/host-states.js";
import type { HostRecord } from "../schemas/host-schema.js";
import type { Vm, VmSpec } from "../schemas/vm-schema.js";
import { refuseWhileBusy } from "./busy-guard.js";
import { chooseHost, fits } from "./placement.js";
import { PlacementView } from "./placement-view.js";
import { followUnanswered, writeAndStart } from "./unanswered-start.js";
import type { ExtraOps, VmOperationDeps } from "./vm-operation-deps.js";
import {
  createSteps,
  deleteSteps,
  deprovisionVm,
  provisionVm,
  rollBackAbandonedCreate,
  rollbackComplete,
} from "./vm-provisioning.js";

/**
 * Checks what a schema cannot: names and StreamIDs unique, virtual StreamIDs within SIDSIZE.
 * Every problem is listed (one field violation each); the reason is the problem's when there is
 * one, INVALID_VM_SPEC when there are several.
 */
export function validateVmSpec(spec: VmSpec): void {
  const violations: FieldViolation[] = [];
  const bad = (field: string, reason: string, description: string) =>
    violations.push({ field, reason, description });
  const smmuNames = new Set<string>();
  const physical = new Map<number, string>();
  for (const [i, smmu] of (spec.iommu?.smmus ?? []).entries()) {
    if (smmuNames.has(smmu.name))
      bad(`iommu.smmus[${i}].name`, "DUPLICATE_SMMU", `SMMU '${smmu.name}' is listed twice`);
    smmuNames.add(smmu.name);
    const sidBits = smmu.sidBits ?? 16;
    const virtual = new Set<number>();
    for (const [j, device] of (smmu.devices ?? []).entries()) {
      const field = `iommu.smmus[${i}].devices[${j}]`;
      if (sidBits < 32 && device.virtualSid >= 2 ** sidBits) {
        bad(
          `${field}.virtualSid`,
          "STREAM_ID_OUT_OF_RANGE",
          `virtual StreamID ${device.virtualSid} needs more than ${sidBits} bits (sidBits)`,
        );
      } else if (virtual.has(device.virtualSid)) {
        bad(
          `${field}.virtualSid`,
          "DUPLICATE_STREAM_ID",
          `virtual StreamID ${device.virtualSid} is used twice on SMMU '${smmu.name}'`,
        );
      }
      virtual.add(device.virtualSid);
      const owner = physical.get(device.physicalSid);
      if (owner !== undefined) {
        bad(
          `${field}.physicalSid`,
          "DUPLICATE_STREAM_ID",
          `physical StreamID ${device.physicalSid} is already given to ${owner}`,
        );
      } else physical.set(device.physicalSid, field);
    }
  }
  const [only] = violations;
  if (violations.length === 1 && only)
    throw new InvalidFieldsError(violations, only.description, only.reason);
  if (violations.length > 1) {
    const message = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
    throw new InvalidFieldsError(violations, message, "INVALID_VM_SPEC");
  }
}

function newVmRecord(principal: Principal, spec: VmSpec): Vm {
  const now = new Date().toISOString();
  const uid = `v${randomBytes(12).toString("hex")}`;
  return {
    name: spec.name,
    tenant: principal.tenant,
    uid,
    vcpus: spec.vcpus,
    memoryBytes: spec.memoryBytes,
    interruptController: {
      mode: spec.interruptController.mode,
      backend: spec.interruptController.backend ?? "auto",
      nrServers: spec.interruptController.nrServers || 2048,
    },
    iommu: {
      backend: spec.iommu?.backend ?? "auto",
      smmus: (spec.iommu?.smmus ?? []).map((s) => ({
        name: s.name,
        sidBits: s.sidBits ?? 16,
        ssidBits: s.ssidBits ?? 20,
        pri: s.pri ?? false,
        devices: s.devices ?? [],
      })),
    },
    host: "",
    placement: { ...(spec.placement?.host ? { requestedHost: spec.placement.host } : {}), reason: "" },
    state: "CREATING",
    resolved: {},
    // In the services' data folder itself: they create the file, not its folder.
    guestMemoryPath: `guest-ram-${uid}.ram`,
    createTime: now,
    updateTime: now,
  };
}

/**
 * Creating and deleting VMs: the registry writes that make a request's effect durable at once
 * (the VM, its host's usage, its operation and the idempotency record in one transaction), then
 * the long-running work on the host services, in an operation.
 */
export class VmLifecycle {
  /** This replica's hosts for placement (one view per replica: what its own creates wrote). */
  private readonly view: PlacementView;

  constructor(
    private readonly deps: VmOperationDeps,
    /** The clock the placement view ages by (tests step it). */
    now: () => number = Date.now,
  ) {
    this.view = new PlacementView(deps.hostStates, now);
  }

  /** Places and records a new VM and starts its create operation; `extra` joins the transaction. */
  async create(principal: Principal, spec: VmSpec, extra: ExtraOps = () => []): Promise<OperationRecord> {
    validateVmSpec(spec);
    for (let attempt = 1; ; attempt++) {
      const epoch = this.view.epoch();
      const placed = await this.place(spec);
      const inserted = await this.insertInTurn(principal, spec, { ...placed, epoch }, extra, attempt);
      if (inserted === "place again") continue;
      if (inserted === "lost") {
        await conflictBackoff(attempt);
        continue;
      }
      // Everything the transaction wrote has its revision: the operation's runner and the VM's
      // commit swap against it without reading first.
      const { vm, operation, revision } = inserted;
      this.deps.runner.start(
        operation,
        (context) => this.runCreate(context, placed.host, { value: vm, revision }),
        revision,
      );
      return operation;
    }
  }

  /**
   * Records the VM placed on `placed`, its operation and `extra` with the host's usage, in this
   * replica's turn on the host. "place again": the host was removed, or the usage to swap against
   * (newer than the view's) leaves no room; "lost": another writer changed the usage meanwhile.
   */
  private async insertInTurn(
    principal: Principal,
    spec: VmSpec,
    placed: { host: HostRecord; reason: string; epoch: number },
    extra: ExtraOps,
    attempt: number,
  ): Promise<{ vm: Vm; operation: OperationRecord; revision: number } | "place again" | "lost"> {
    const host = placed.host.name;
    const release = await this.view.turn(host);
    try {
      const usage = await this.view.usageToSwap(host);
      if (!usage || !fits({ host: placed.host, usage: usage.value }, spec)) return "place again";
      const vm = newVmRecord(principal, spec);
      vm.host = host;
      vm.placement.reason = placed.reason;
      const operation = newOperationRecord({
        kind: "create",
        tenant: principal.tenant,
        vm: vm.name,
        host,
        owner: this.deps.instanceId,
        steps: createSteps(vm),
      });
      vm.activeOperation = operation.name;
      try {
        const revision = await this.deps.vms.insert(vm, usage, [
          ...this.deps.operations.create(operation),
          ...extra(operation),
        ]);
        this.view.wrote(host, { value: addUsage(usage.value, vm, 1), revision }, placed.epoch);
        return { vm, operation, revision };
      } catch (error) {
        if (error instanceof StoreConflictError && error.key === registryKeys.hostUsage(host)) {
          this.view.lost(host);
          if (attempt < MAX_CONFLICT_RETRIES) return "lost";
        } else if (!(error instanceof VplaneError)) this.view.forget(host);
        if (error instanceof StoreUnavailableError)
          followUnanswered(this.deps.vms, vm, (revision) =>
            this.deps.runner.start(
              operation,
              (context) => this.runCreate(context, placed.host, { value: vm, revision }),
              revision,
            ),
          );
        throw error;
      }
    } finally {
      release();
    }
  }

  /**
   * Chooses the host for `spec` on this replica's view of the hosts; a refusal (no host fits, is
   * available, or is the one asked for) is made on the hosts as read now, not on a view up to
   * VIEW_MS old.
   */
  private async place(spec: VmSpec): Promise<{ host: HostRecord; reason: string }> {
    const choose = (states: HostState[]) =>
      chooseHost(
        states.map((s) => ({ host: s.host, usage: s.usage.value, availability: s.availability })),
        spec,
        spec.placement?.host,
        Math.random,
        (host) => this.view.rank(host),
      );
    try {
      return choose(await this.view.candidates());
    } catch (error) {
      if (!(error instanceof VplaneError)) throw error;
      return choose(await this.view.candidates(true));
    }
  }

  private async runCreate(context: OperationContext, host: HostRecord, inserted: Versioned<Vm>): Promise<Vm> {
    const { vms, connections } = this.deps;
    const vm = inserted.value;
    let ready: Vm | undefined;
    try {
      // The VM READY goes with the operation's last checkpoint, which ends it (SUCCEEDED, the VM
      // its response), swapping against the revision the create's transaction gave it: a VM
      // changed since (only by a replica that took the operation over) fails the commit.
      await provisionVm(context, connections, host, vm, (resolved) => {
        const { activeOperation: _done, ...rest } = vm;
        ready = { ...rest, state: "READY", resolved, updateTime: new Date().toISOString() };
        return {
          ops: [putOp(registryKeys.vm(vm.tenant, vm.name), ready, inserted.revision)],
          response: ready,
        };
      });
    } catch (error) {
      // The registry may not answer (an election): both writes read the VM again at each try.
      if (error instanceof StepFailure && rollbackComplete(error))
        await context.untilAnswered(() => vms.remove(vm.tenant, vm.name, vm.uid));
      else await this.settle(context, vm, "FAILED");
      throw error;
    }
    return ready!;
  }

  /** Starts deleting a VM; ABORTED while another operation runs on it. */
  async delete(principal: Principal, name: string, extra: ExtraOps = () => []): Promise<OperationRecord> {
    const { vms, hosts } = this.deps;
    const vm = await vms.require(principal.tenant, name);
    refuseWhileBusy(vm.value);
    const host = await hosts.require(vm.value.host);
    const operation = newOperationRecord({
      kind: "delete",
      tenant: principal.tenant,
      vm: name,
      host: vm.value.host,
      owner: this.deps.instanceId,
      steps: deleteSteps(vm.value),
    });
    const previousState = vm.value.state;
    const deleting: Vm = {
      ...vm.value,
      state: "DELETING",
      activeOperation: operation.name,
      updateTime: new Date().toISOString(),
    };
    const work = async (context: OperationContext) => {
      try {
        // Cancel is honoured only before the first device is deleted: a half-deleted VM is
        // worse than a deleted one, so after that the delete runs to its end. The checkpoint
        // writes where the delete is, the one write before the devices go (a replica recovering
        // the operation names that step).
        await context.progress(
          0,
          operation.metadata.steps[0]!.name,
          `deleting the VM's devices on host ${host.name}`,
        );
        await context.checkpoint();
      } catch (error) {
        await this.settle(context, deleting, previousState);
        throw error;
      }
      return this.deleteDevicesAndRecord(context, host, deleting);
    };
    await writeAndStart(this.deps, deleting, operation, work, () =>
      vms.replace(vm, deleting, [...this.deps.operations.create(operation), ...extra(operation)]),
    );
    return operation;
  }

  /** A delete past its cancel point: the VM's devices on `host`, then its record and usage. */
  private async deleteDevicesAndRecord(
    context: OperationContext,
    host: HostRecord,
    deleting: Vm,
  ): Promise<{ name: string; deleted: true }> {
    try {
      await deprovisionVm(context, this.deps.connections, host, deleting);
      await context.step("registry.commit", "RUNNING");
      await context.untilAnswered(() => this.deps.vms.remove(deleting.tenant, deleting.name, deleting.uid));
      await context.step("registry.commit", "SUCCEEDED");
    } catch (error) {
      await this.settle(context, deleting, "FAILED");
      throw error;
    }
    return { name: deleting.name, deleted: true };
  }

  /**
   * Takes over the delete of a replica that stopped (OperationRecovery) and finishes it: which of
   * its device deletes reached the host is not known (it may have stopped between a call and its
   * record), and each is idempotent (NOT_FOUND counts as deleted), so they are all made again.
   * A cancel is no longer honoured: a device may be gone already. No VM of that name: only the
   * delete removes a VM busy with it, so the stopped replica had removed it and the operation
   * ends SUCCEEDED. False when it cannot be taken over (the VM is not busy with it, its host is
   * gone, or another replica took it first).
   */
  async adoptAbandonedDelete(op: OperationRecord): Promise<boolean> {
    const { vms, hosts, runner, instanceId } = this.deps;
    const { tenant, step, vm: name } = op.metadata;
    const [vm, host] = await Promise.all([vms.get(tenant, name), hosts.get(op.metadata.host)]);
    if (!vm) {
      const adopted = await runner.adopt(
        op,
        instanceId,
        `adopted by gateway replica ${instanceId} (replica ${op.owner} stopped at step "${step}"): it had removed the VM; only the operation's end was left`,
      );
      if (adopted) runner.start(adopted, () => Promise.resolve({ name, deleted: true }));
      return adopted !== undefined;
    }
    if (vm.value.activeOperation !== op.name || !host) return false;
    const adopted = await runner.adopt(
      op,
      instanceId,
      `adopted by gateway replica ${instanceId} (replica ${op.owner} stopped at step "${step}"): finishing the delete on host ${host.name}`,
    );
    if (!adopted) return false;
    runner.start(adopted, (context) => this.deleteDevicesAndRecord(context, host, vm.value));
    return true;
  }

  /**
   * Takes over the create of a replica that stopped (OperationRecovery) and rolls it back on the
   * host as that replica would have (rollBackAbandonedCreate: in reverse, idempotent), so that
   * all or nothing holds across a crash too: then the VM record goes, as after any rolled-back
   * create, or, when the rollback cannot finish, stays FAILED (delete it to retry the cleanup).
   * The operation ends FAILED, ABORTED / OPERATION_ABANDONED at the step it had reached. False
   * when it cannot be taken over (the VM or its host is gone, or another replica took it first).
   *
   * The stopped replica's calls to the host are over by then: its lease (30 s) outlasts their
   * deadline (rpcTimeoutMs), so no create of its lands after this rollback's delete.
   */
  async adoptAbandonedCreate(op: OperationRecord): Promise<boolean> {
    const { vms, hosts, runner, connections, instanceId } = this.deps;
    const { tenant, step } = op.metadata;
    const [vm, host] = await Promise.all([vms.get(tenant, op.metadata.vm), hosts.get(op.metadata.host)]);
    if (vm?.value.activeOperation !== op.name || !host) return false;
    const adopted = await runner.adopt(
      op,
      instanceId,
      `gateway replica ${op.owner} stopped at step "${step}": replica ${instanceId} rolls the create back on host ${host.name}`,
    );
    if (!adopted) return false;
    runner.start(adopted, async (context) => {
      const rollback = await rollBackAbandonedCreate(context, connections, host, vm.value);
      const failure = new StepFailure(step, replicaStopped(op.owner, step), rollback);
      if (rollbackComplete(failure))
        await context.untilAnswered(() => vms.remove(tenant, vm.value.name, vm.value.uid));
      else await this.settle(context, vm.value, "FAILED");
      throw failure;
    });
    return true;
  }

  /** Leaves the VM in `state`, its operation over (asked again while the registry does not answer). */
  private async settle(context: OperationContext, vm: Vm, state: Vm["state"]): Promise<void> {
    await context.untilAnswered(() =>
      this.deps.vms.update(vm.tenant, vm.name, (current) => {
        const { activeOperation: _done, ...rest } = current;
        return { ...rest, state, updateTime: new Date().toISOString() };
      }),
    );
  }
}
