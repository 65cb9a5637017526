import { isDeepStrictEqual } from "node:util";
import { StoreConflictError, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { VplaneError } from "@vplane/service-kit";
import type { Vm } from "../schemas/vm-schema.js";
import { NO_USAGE, type HostUsage } from "./host-registry.js";
import { registryKeys } from "./registry-keys.js";
import { conflictBackoff, MAX_CONFLICT_RETRIES } from "./conflict-backoff.js";
import { listAll, listPage, putOp, readRecord, type Versioned } from "./typed-entry.js";
import { updateRecord } from "./update-loop.js";
import { readUsage } from "./host-usage.js";
import { ELECTION_RETRIES, electionPause } from "./unanswered-pause.js";

export function vmNotFound(name: string): VplaneError {
  // The same answer for a VM that does not exist and one of another tenant (no existence leak).
  return new VplaneError({ code: "NOT_FOUND", reason: "VM_NOT_FOUND", message: `no VM '${name}'` });
}

/** `usage` with `vm`'s share added (sign 1) or taken off (-1). */
export function addUsage(
  usage: HostUsage,
  vm: Pick<Vm, "vcpus" | "memoryBytes" | "iommu">,
  sign: 1 | -1,
): HostUsage {
  return {
    vcpus: Math.max(0, usage.vcpus + sign * vm.vcpus),
    memoryBytes: Math.max(0, usage.memoryBytes + sign * vm.memoryBytes),
    vms: Math.max(0, usage.vms + sign),
    smmus: Math.max(0, (usage.smmus ?? 0) + sign * vm.iommu.smmus.length),
  };
}

/** VMs in the registry, with their hosts' usage kept in step under compare-and-swap. */
export class VmRegistry {
  constructor(private readonly store: Store) {}

  async get(tenant: string, name: string): Promise<Versioned<Vm> | undefined> {
    return readRecord<Vm>(this.store, registryKeys.vm(tenant, name));
  }

  async require(tenant: string, name: string): Promise<Versioned<Vm>> {
    const vm = await this.get(tenant, name);
    if (!vm) throw vmNotFound(name);
    return vm;
  }

  async list(tenant: string, pageSize: number, pageToken?: string) {
    const page = await listPage<Vm>(this.store, registryKeys.vmsOf(tenant), pageSize, pageToken);
    return { vms: page.items, nextPageToken: page.nextPageToken };
  }

  async countByState(): Promise<Map<string, number>> {
    const counts = new Map<string, number>([
      ["CREATING", 0],
      ["READY", 0],
      ["DELETING", 0],
      ["FAILED", 0],
    ]);
    for (const { value } of await listAll<Vm>(this.store, registryKeys.allVms())) {
      counts.set(value.state, (counts.get(value.state) ?? 0) + 1);
    }
    return counts;
  }

  /** What the tenant's own VMs take on each host (all a non-admin may see of a host's usage). */
  async usageOf(tenant: string): Promise<Map<string, HostUsage>> {
    const usage = new Map<string, HostUsage>();
    for (const { value } of await listAll<Vm>(this.store, registryKeys.vmsOf(tenant)))
      usage.set(value.host, addUsage(usage.get(value.host) ?? NO_USAGE, value, 1));
    return usage;
  }

  /**
   * Writes a new VM, counts it in its host's usage and writes `extra` (its operation, the
   * idempotency record), all in one transaction: either all of it is stored or none. The VM key
   * is create-only, so two creates of the same VM, on any replica, store exactly one.
   * `usage` is the host usage read when placing; a concurrent change fails with the usage key in
   * the conflict and the caller places again. Returns the revision of everything it wrote.
   * An insert the registry left unanswered (an etcd member killed mid-call) is read back: had it
   * applied, its operation would be recorded RUNNING with no replica running it (and a retry
   * with its Idempotency-Key answered that operation), so it counts as written.
   */
  async insert(vm: Vm, usage: Versioned<HostUsage>, extra: TransactionOp[]): Promise<number> {
    const ops = [
      putOp(registryKeys.vm(vm.tenant, vm.name), vm, "absent"),
      putOp(registryKeys.hostUsage(vm.host), addUsage(usage.value, vm, 1), usage.revision || "absent"),
      ...extra,
    ];
    return this.writeVm(
      vm,
      ops,
      () =>
        new VplaneError({
          code: "ALREADY_EXISTS",
          reason: "VM_EXISTS",
          message: `VM '${vm.name}' already exists`,
          field: "name",
        }),
    );
  }

  /**
   * Writes `next` over the VM at `revision` together with `extra`; ABORTED if it changed
   * meanwhile. Returns the revision of everything it wrote. Left unanswered, read back as insert.
   */
  replace(vm: Versioned<Vm>, next: Vm, extra: TransactionOp[] = []): Promise<number> {
    const ops = [putOp(registryKeys.vm(next.tenant, next.name), next, vm.revision), ...extra];
    return this.writeVm(
      next,
      ops,
      () =>
        new VplaneError({
          code: "ABORTED",
          reason: "CONCURRENT_MODIFICATION",
          message: `VM '${next.name}' changed while this request ran; read it again and retry`,
        }),
    );
  }

  /**
   * The transaction `ops` that writes `written`; its revision. Unanswered, it is read back
   * (readBack); a conflict on the VM's key is a resend finding its own write (appliedAlready) or
   * another writer's VM there (`lost`); the registry's other failures are thrown as they came.
   */
  private async writeVm(written: Vm, ops: TransactionOp[], lost: () => VplaneError): Promise<number> {
    try {
      return (await this.store.transaction(ops)).revision;
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        const applied = await this.readBack(written);
        if (applied !== undefined) return applied;
        throw error; // not applied (all or nothing), or still unknown: the caller answers 503
      }
      if (
        error instanceof StoreConflictError &&
        error.key === registryKeys.vm(written.tenant, written.name)
      ) {
        const applied = await this.appliedAlready(written);
        if (applied !== undefined) return applied;
        throw lost();
      }
      throw error;
    }
  }

  /** appliedAlready, asked again while the registry does not answer (ELECTION_RETRIES). */
  private async readBack(written: Vm): Promise<number | undefined> {
    for (let attempt = 0; ; attempt++) {
      await electionPause(attempt);
      try {
        return await this.appliedAlready(written);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || attempt + 1 >= ELECTION_RETRIES) return undefined;
      }
    }
  }

  /**
   * The revision of `written` when the registry holds exactly it: a transaction whose answer was
   * lost (an etcd member killed mid-call) and whose retry by the store's client then found its
   * own write as a conflict. Undefined when the VM is anything else (a real conflict).
   */
  async appliedAlready(written: Vm): Promise<number | undefined> {
    const found = await this.get(written.tenant, written.name);
    return found && isDeepStrictEqual(found.value, written) ? found.revision : undefined;
  }

  update(tenant: string, name: string, mutate: (vm: Vm) => Vm | undefined) {
    return updateRecord<Vm>(this.store, registryKeys.vm(tenant, name), mutate);
  }

  /**
   * Read-modify-write of a VM whose `mutate` may change its host (a migration): the VM at its
   * revision and, when the host changes, its share taken from the old host's usage and added to
   * the new one's, in one transaction, retried when another writer got there first. Returns the
   * VM as stored; undefined when there is no such VM.
   */
  async updatePlacement(tenant: string, name: string, mutate: (vm: Vm) => Vm): Promise<Vm | undefined> {
    for (let attempt = 0; ; attempt++) {
      const vm = await this.get(tenant, name);
      if (!vm) return undefined;
      const next = mutate(vm.value);
      const ops: TransactionOp[] = [putOp(registryKeys.vm(tenant, name), next, vm.revision)];
      if (next.host !== vm.value.host) {
        for (const [host, sign] of [
          [vm.value.host, -1],
          [next.host, 1],
        ] as const) {
          const key = registryKeys.hostUsage(host);
          const usage = await readUsage(this.store, host);
          // A host removed meanwhile has no usage record: start one (create-only) for the VM.
          ops.push(
            putOp(key, addUsage(usage?.value ?? NO_USAGE, vm.value, sign), usage?.revision ?? "absent"),
          );
        }
      }
      try {
        await this.store.transaction(ops);
        return next;
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw error;
        await conflictBackoff(attempt);
      }
    }
  }

  /**
   * Removes the VM `name` whose uid is `uid` and gives its share back to its host, atomically.
   * A VM of that name with another uid is left alone: a removal asked again after one that applied
   * unanswered (the registry's answer lost) must not remove a VM created under the same name since.
   */
  async remove(tenant: string, name: string, uid: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const vm = await this.get(tenant, name);
      if (vm?.value.uid !== uid) return;
      const usageKey = registryKeys.hostUsage(vm.value.host);
      const usage = await readUsage(this.store, vm.value.host);
      const ops: TransactionOp[] = [
        { op: "delete", key: registryKeys.vm(tenant, name), ifRevision: vm.revision },
      ];
      if (usage) ops.push(putOp(usageKey, addUsage(usage.value, vm.value, -1), usage.revision));
      try {
        await this.store.transaction(ops);
        return;
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw error;
        await conflictBackoff(attempt);
      }
    }
  }
}
