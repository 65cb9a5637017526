import { VplaneError, type Logger } from "@vplane/service-kit";
import { StoreConflictError, type Store } from "@vplane/store";
import type { PasidTableConfig } from "@vplane/smmuv3";
import { EmulatedSmmuBackend } from "./emulated-smmu-backend.js";
import { guestMemorySpec, openGuestMemory } from "./guest-memory-binding.js";
import { refuseNativeBackend } from "./native-smmu-backend.js";
import type { SmmuBackend } from "./smmu-backend.js";
import {
  SmmuConfigStore,
  type DeviceRecord,
  type PasidTableRecord,
  type SmmuConfig,
  type SmmuRecord,
} from "./smmu-config-store.js";
import { LIMITS } from "./service-limits.js";

/** An SMMU the service holds: its durable record, its backend, and its request_id answers. */
export interface SmmuEntry {
  record: SmmuRecord;
  backend: SmmuBackend;
  /** Answers of mutating calls by request_id (idempotent retries), oldest first. */
  answered: Map<string, { method: string; response: unknown }>;
  /** Store writes of this SMMU, in the order their calls were served. */
  writes: Promise<void>;
  /** The durable device records (the attach options and the guest STE words as given). */
  devices: Map<number, DeviceRecord>;
}

const ID = /^[a-z][a-z0-9-]{0,62}$/;
const NAME = /^vms\/([a-z][a-z0-9-]{0,62})\/smmus\/([a-z][a-z0-9-]{0,62})$/;
const ANSWERS_KEPT = 1024;

export function smmuName(vm: string, id: string): string {
  return `vms/${vm}/smmus/${id}`;
}

export function checkResourceId(value: string, field: string): void {
  if (!ID.test(value)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "ID_INVALID",
      message: `ids are 1-63 lowercase letters, digits and '-', starting with a letter; got '${value}'`,
      field,
    });
  }
}

/** The seed config a PasidTableRecord holds. */
export function pasidConfigOf(r: PasidTableRecord): PasidTableConfig {
  return { ...r, basePtr: BigInt(r.basePtr) };
}

/**
 * The SMMUs of this host by name, their configuration durable in the store and replayed on start
 * (mappings, devices, the seed PASID table, guest STEs, the MSI binding, in that order).
 */
export class SmmuRegistry {
  private readonly entries = new Map<string, SmmuEntry>();
  readonly config: SmmuConfigStore;

  constructor(
    store: Store,
    private readonly options: { dataDir: string; maxSmmus: number; log: Logger },
  ) {
    this.config = new SmmuConfigStore(store);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Rebuilds every stored SMMU; one that cannot be rebuilt is logged and left out. */
  async load(): Promise<void> {
    for (const config of await this.config.loadAll()) {
      try {
        this.entries.set(smmuName(config.record.vm, config.record.smmuId), this.rebuild(config));
      } catch (error) {
        this.options.log.error(
          { err: error, vm: config.record.vm, smmu: config.record.smmuId },
          "could not restore SMMU",
        );
      }
    }
  }

  private rebuild(config: SmmuConfig): SmmuEntry {
    const entry = this.open(config.record);
    const b = entry.backend;
    try {
      for (const m of config.mappings) b.mapStage2(m.ipa, m.hostAddress, m.size, m.perm);
      for (const d of config.devices) b.attachDevice(d.streamId, d.virtualStreamId, d.pageRequests);
      if (config.pasidTable) b.attachPasidTable(pasidConfigOf(config.pasidTable));
      for (const d of config.devices) {
        if (d.guestSte)
          b.setGuestSte(d.streamId, [BigInt(d.guestSte.ste0), BigInt(d.guestSte.ste1)], d.guestSte.flags);
      }
      if (config.msi) b.bindMsi(config.msi.iova, config.msi.gpa, config.msi.size);
      for (const d of config.devices) entry.devices.set(d.streamId, d);
    } catch (error) {
      b.close();
      throw error;
    }
    return entry;
  }

  private open(record: SmmuRecord): SmmuEntry {
    if (record.backend === "NATIVE") refuseNativeBackend();
    const memory = openGuestMemory(
      guestMemorySpec(record.guestMemoryPath, BigInt(record.guestMemoryBytes), this.options.dataDir),
    );
    try {
      const backend = new EmulatedSmmuBackend(memory, {
        vmid: record.vmid,
        features: record.features,
        stage2GranuleBits: record.stage2GranuleBits,
        limits: {
          eventQueueDepth: record.eventQueueDepth,
          pageRequestTimeoutMs: record.pageRequestTimeoutMs,
          devices: LIMITS.maxDevicesPerSmmu,
          stage2Mappings: LIMITS.maxMappingsPerSmmu,
          iotlbEntries: LIMITS.iotlbEntries,
        },
      });
      return { record, backend, answered: new Map(), writes: Promise.resolve(), devices: new Map() };
    } catch (error) {
      memory.close();
      throw error;
    }
  }

  /** The lowest VMID (1..65535) no SMMU of this host uses. */
  freeVmid(): number {
    const used = new Set([...this.entries.values()].map((e) => e.record.vmid));
    let vmid = 1;
    while (used.has(vmid)) vmid++;
    return vmid;
  }

  /**
   * Creates an SMMU. A repeated request_id returns the SMMU it created; a taken name is
   * ALREADY_EXISTS; more than max_smmus is RESOURCE_EXHAUSTED.
   */
  async create(record: Omit<SmmuRecord, "vmid">): Promise<SmmuEntry> {
    const name = smmuName(record.vm, record.smmuId);
    const existing = this.entries.get(name);
    if (existing) {
      if (record.createRequestId !== "" && existing.record.createRequestId === record.createRequestId)
        return existing;
      throw alreadyExists(name);
    }
    if (this.entries.size >= this.options.maxSmmus) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "TOO_MANY_SMMUS",
        message: `this host holds its limit of ${this.options.maxSmmus} SMMUs`,
      });
    }
    const full: SmmuRecord = { ...record, vmid: this.freeVmid() };
    const entry = this.open(full);
    this.entries.set(name, entry);
    try {
      await this.config.create(full);
    } catch (error) {
      this.entries.delete(name);
      entry.backend.close();
      if (error instanceof StoreConflictError) throw alreadyExists(name);
      throw error;
    }
    return entry;
  }

  async delete(name: string): Promise<void> {
    const entry = this.require(name);
    this.entries.delete(name);
    entry.backend.close();
    await entry.writes;
    await this.config.deleteSmmu(entry.record.vm, entry.record.smmuId);
  }

  /** The SMMU named "vms/{vm}/smmus/{smmu}": INVALID_ARGUMENT for a bad name, NOT_FOUND if none. */
  require(name: string): SmmuEntry {
    if (!NAME.test(name)) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "NAME_INVALID",
        message: `an SMMU name is "vms/{vm}/smmus/{smmu}", got '${name}'`,
        field: "name",
      });
    }
    const entry = this.entries.get(name);
    if (entry === undefined) {
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "SMMU_NOT_FOUND",
        message: `${name} does not exist`,
        field: "name",
      });
    }
    return entry;
  }

  /** The SMMU of that name, if any (no errors). */
  find(name: string): SmmuEntry | undefined {
    return this.entries.get(name);
  }

  /** SMMUs ordered by name, under `prefix`, after `after`. */
  list(prefix: string, after: string, pageSize: number): { entries: SmmuEntry[]; more: boolean } {
    const names = [...this.entries.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
    return {
      entries: names.slice(0, pageSize).map((n) => this.entries.get(n)!),
      more: names.length > pageSize,
    };
  }

  /**
   * Runs a mutating call once per request_id: a retry with the same id and method gets the first
   * answer. The store write `persist` runs after the call succeeded, in call order.
   */
  async mutate<T>(
    entry: SmmuEntry,
    requestId: string,
    method: string,
    apply: () => T,
    persist?: (result: T) => Promise<void>,
  ): Promise<T> {
    const previous = requestId === "" ? undefined : entry.answered.get(requestId);
    if (previous && previous.method === method) return previous.response as T;
    const result = apply();
    if (persist) {
      const write = entry.writes.then(() => persist(result));
      entry.writes = write.catch(() => undefined);
      await write;
    }
    if (requestId !== "") {
      entry.answered.set(requestId, { method, response: result });
      if (entry.answered.size > ANSWERS_KEPT) entry.answered.delete(entry.answered.keys().next().value!);
    }
    return result;
  }

  closeAll(): void {
    for (const entry of this.entries.values()) entry.backend.close();
    this.entries.clear();
  }
}

function alreadyExists(name: string): VplaneError {
  return new VplaneError({
    code: "ALREADY_EXISTS",
    reason: "SMMU_EXISTS",
    message: `${name} already exists`,
    field: "smmu.smmu_id",
  });
}
