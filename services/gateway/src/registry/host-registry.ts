import { StoreConflictError, type Store, type TransactionOp } from "@vplane/store";
import { VplaneError } from "@vplane/service-kit";
import type { HostJoin, HostRecord, HostSpec } from "../schemas/host-schema.js";
import { conflictBackoff, MAX_CONFLICT_RETRIES } from "./conflict-backoff.js";
import { registryKeys } from "./registry-keys.js";
import { listAll, putOp, readRecord, toJson, type Versioned } from "./typed-entry.js";
import { NO_USAGE, readUsage, type HostUsage } from "./host-usage.js";

export { NO_USAGE, type HostUsage } from "./host-usage.js";

/** Hosts and their usage in the registry. */
export class HostRegistry {
  constructor(private readonly store: Store) {}

  /** Registers a new host; ALREADY_EXISTS when the name is taken. */
  async register(spec: HostSpec, source: HostRecord["source"]): Promise<HostRecord> {
    const record: HostRecord = {
      name: spec.name,
      addresses: spec.addresses,
      capacity: spec.capacity ?? { vcpus: 0, memoryBytes: 0 },
      source,
      createTime: new Date().toISOString(),
    };
    try {
      await this.store.transaction([
        putOp(registryKeys.host(spec.name), record, "absent"),
        putOp(registryKeys.hostUsage(spec.name), NO_USAGE, "absent"),
      ]);
    } catch (error) {
      if (error instanceof StoreConflictError) {
        throw new VplaneError({
          code: "ALREADY_EXISTS",
          reason: "HOST_EXISTS",
          message: `host '${spec.name}' is already registered`,
          field: "name",
        });
      }
      throw error;
    }
    return record;
  }

  /** Registers the host from config, or updates its addresses if config changed them. */
  async ensureFromConfig(spec: HostSpec): Promise<void> {
    const existing = await readRecord<HostRecord>(this.store, registryKeys.host(spec.name));
    if (!existing) {
      try {
        await this.register(spec, "config");
      } catch (error) {
        if (!(error instanceof VplaneError && error.code === "ALREADY_EXISTS")) throw error;
      }
      return;
    }
    if (JSON.stringify(existing.value.addresses) === JSON.stringify(spec.addresses)) return;
    await this.store.put(
      registryKeys.host(spec.name),
      toJson({ ...existing.value, addresses: spec.addresses }),
      {
        ifRevision: existing.revision,
      },
    );
  }

  /**
   * A host's own registration or refresh (its agent's join): registers it when new, else writes
   * the addresses and capacity it declares now, under compare-and-swap, retried when another
   * replica wrote meanwhile. `extra` (the renewed lease) joins the same transaction.
   */
  async join(name: string, join: HostJoin, extra: TransactionOp[]): Promise<HostRecord> {
    for (let attempt = 0; ; attempt++) {
      const existing = await readRecord<HostRecord>(this.store, registryKeys.host(name));
      const record: HostRecord = {
        name,
        addresses: join.addresses,
        capacity: join.capacity,
        source: "agent",
        createTime: existing?.value.createTime ?? new Date().toISOString(),
      };
      const unchanged = existing && JSON.stringify(existing.value) === JSON.stringify(record);
      const ops: TransactionOp[] = unchanged
        ? [{ op: "check", key: registryKeys.host(name), ifRevision: existing.revision }]
        : existing
          ? [putOp(registryKeys.host(name), record, existing.revision)]
          : [
              putOp(registryKeys.host(name), record, "absent"),
              putOp(registryKeys.hostUsage(name), NO_USAGE, "absent"),
            ];
      try {
        await this.store.transaction([...ops, ...extra]);
        return record;
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw error;
        await conflictBackoff(attempt);
      }
    }
  }

  async get(name: string): Promise<HostRecord | undefined> {
    return (await readRecord<HostRecord>(this.store, registryKeys.host(name)))?.value;
  }

  async require(name: string): Promise<HostRecord> {
    const host = await this.get(name);
    if (!host) {
      throw new VplaneError({ code: "NOT_FOUND", reason: "HOST_NOT_FOUND", message: `no host '${name}'` });
    }
    return host;
  }

  async list(): Promise<HostRecord[]> {
    return (await listAll<HostRecord>(this.store, registryKeys.hosts())).map((entry) => entry.value);
  }

  async usageOf(name: string): Promise<Versioned<HostUsage>> {
    return (
      (await readUsage(this.store, name)) ?? {
        value: NO_USAGE,
        revision: 0,
      }
    );
  }

  /** Removes a host that no VM is placed on; FAILED_PRECONDITION otherwise. */
  async remove(name: string): Promise<void> {
    await this.require(name);
    const usage = await this.usageOf(name);
    if (usage.value.vms > 0) {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "HOST_HAS_VMS",
        message: `host '${name}' still has ${usage.value.vms} VM(s); delete or migrate them first`,
      });
    }
    // The usage key's revision guards against a VM being placed between the check and the delete.
    await this.store.transaction([
      { op: "delete", key: registryKeys.host(name) },
      { op: "delete", key: registryKeys.hostLease(name) },
      usage.revision === 0
        ? { op: "delete", key: registryKeys.hostUsage(name) }
        : { op: "delete", key: registryKeys.hostUsage(name), ifRevision: usage.revision },
    ]);
  }
}
