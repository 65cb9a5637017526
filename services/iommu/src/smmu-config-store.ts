import {
  listAll,
  writeInTransactions,
  type JsonValue,
  type Store,
  type TransactionOp,
  type WriteOptions,
} from "@vplane/store";
import type { SmmuFeatures } from "@vplane/smmuv3";

/** What the guest sees of an SMMU: what it was created with. */
export interface SmmuSpec {
  features: SmmuFeatures;
  stage2GranuleBits: 12 | 14 | 16;
  eventQueueDepth: number;
  pageRequestTimeoutMs: number;
}

/** What an SMMU was created with (durable). */
export interface SmmuRecord extends SmmuSpec {
  vm: string;
  smmuId: string;
  backend: "EMULATED" | "NATIVE";
  guestMemoryPath: string;
  guestMemoryBytes: number;
  vmid: number;
  createTime: string;
  createRequestId: string;
  /** A prepared import (PrepareImport, issue 14): not the VM's until FinishImport; a restart drops it. */
  preparing?: boolean;
}

export interface MappingRecord {
  ipa: number;
  hostAddress: number;
  size: number;
  perm: number;
}

export interface DeviceRecord {
  streamId: number;
  virtualStreamId: number;
  pageRequests: boolean;
  /** iommufd form: the STE words as given (decimal u64 strings) and the HWPT flags. */
  guestSte?: { ste0: string; ste1: string; flags: number };
}

/** The seed PASID table config last accepted (JSON-friendly: base_ptr as a decimal string). */
export interface PasidTableRecord {
  version: number;
  format: number;
  basePtr: string;
  pasidBits: number;
  config: number;
  smmuv3: { version: number; s1fmt: number; s1dss: number };
}

export interface MsiRecord {
  iova: number;
  gpa: number;
  size: number;
}

/** Everything durable about one SMMU, in replay order. */
export interface SmmuConfig {
  record: SmmuRecord;
  mappings: MappingRecord[];
  devices: DeviceRecord[];
  pasidTable?: PasidTableRecord;
  msi?: MsiRecord;
}

const ROOT = "iommu";
const hex = (n: number) => n.toString(16).padStart(16, "0");

/** Store keys of the iommu service. */
export const configKeys = {
  smmus: `${ROOT}/smmus/`,
  smmu: (vm: string, id: string) => `${ROOT}/smmus/${vm}/${id}`,
  configOf: (vm: string, id: string) => `${ROOT}/config/${vm}/${id}/`,
  mapping: (vm: string, id: string, ipa: number) => `${ROOT}/config/${vm}/${id}/mapping/${hex(ipa)}`,
  device: (vm: string, id: string, sid: number) => `${ROOT}/config/${vm}/${id}/device/${hex(sid)}`,
  pasidTable: (vm: string, id: string) => `${ROOT}/config/${vm}/${id}/pasid-table`,
  msi: (vm: string, id: string) => `${ROOT}/config/${vm}/${id}/msi`,
};

/**
 * Durable configuration of the SMMUs: what a caller was told succeeded (creation, stage-2
 * mappings, devices and their guest STEs, the seed PASID table, the MSI binding). Caches, queues
 * and outstanding page requests are runtime state and are not kept.
 */
export class SmmuConfigStore {
  constructor(private readonly store: Store) {}

  async create(record: SmmuRecord): Promise<void> {
    await this.store.put(configKeys.smmu(record.vm, record.smmuId), json(record), { ifRevision: "absent" });
  }

  /**
   * Writes a new SMMU's record (absent before: a conflict is StoreConflictError) with its whole
   * configuration (an SMMU migrated here); on a failed write, what was written is removed.
   */
  async createWithConfig(config: SmmuConfig): Promise<void> {
    const { vm, smmuId: id } = config.record;
    // The record goes in the first transaction: one commit for an SMMU whose configuration fits.
    const [first, ...rest] = this.batches([
      { op: "put", key: configKeys.smmu(vm, id), value: json(config.record), ifRevision: "absent" },
      ...config.mappings.map((m) => putOp(configKeys.mapping(vm, id, m.ipa), m)),
      ...config.devices.map((d) => putOp(configKeys.device(vm, id, d.streamId), d)),
      ...(config.pasidTable ? [putOp(configKeys.pasidTable(vm, id), config.pasidTable)] : []),
      ...(config.msi ? [putOp(configKeys.msi(vm, id), config.msi)] : []),
    ]);
    await this.store.transaction(first!);
    try {
      for (const batch of rest) await this.store.transaction(batch);
    } catch (error) {
      await this.deleteSmmu(vm, id).catch(() => undefined);
      throw error;
    }
  }

  /** Runs `ops` in transactions of at most the store's size, in order. */
  async write(ops: readonly TransactionOp[], options?: WriteOptions): Promise<void> {
    for (const batch of this.batches([...ops])) await this.store.transaction(batch, options);
  }

  /** Every write so far durable (a "deferred" one too). */
  sync(): Promise<void> {
    return this.store.sync();
  }

  /** The record's write (it exists: a plain put). */
  recordWrite(record: SmmuRecord): TransactionOp {
    return putOp(configKeys.smmu(record.vm, record.smmuId), record);
  }

  async deleteSmmu(vm: string, id: string): Promise<void> {
    const keys = await listAll(this.store, configKeys.configOf(vm, id));
    await writeInTransactions(
      this.store,
      keys.map((e) => deleteOp(e.key)),
    );
    await this.store.delete(configKeys.smmu(vm, id));
  }

  /** Every SMMU with its configuration. */
  async loadAll(): Promise<SmmuConfig[]> {
    const out: SmmuConfig[] = [];
    for (const entry of await listAll(this.store, configKeys.smmus)) {
      const record = entry.value as unknown as SmmuRecord;
      const config: SmmuConfig = { record, mappings: [], devices: [] };
      const prefix = configKeys.configOf(record.vm, record.smmuId);
      for (const e of await listAll(this.store, prefix)) {
        const kind = e.key.slice(prefix.length).split("/")[0];
        if (kind === "mapping") config.mappings.push(e.value as unknown as MappingRecord);
        else if (kind === "device") config.devices.push(e.value as unknown as DeviceRecord);
        else if (kind === "pasid-table") config.pasidTable = e.value as unknown as PasidTableRecord;
        else if (kind === "msi") config.msi = e.value as unknown as MsiRecord;
      }
      out.push(config);
    }
    return out;
  }

  private batches(ops: TransactionOp[]): TransactionOp[][] {
    const out: TransactionOp[][] = [];
    for (let i = 0; i < ops.length; i += this.store.maxTransactionOps)
      out.push(ops.slice(i, i + this.store.maxTransactionOps));
    return out;
  }
}

function json(value: object): JsonValue {
  return value as unknown as JsonValue;
}

/** The write of one configuration record (configKeys), for a transaction or the RequestLedger. */
export function putOp(key: string, value: object): TransactionOp {
  return { op: "put", key, value: json(value) };
}

export function deleteOp(key: string): TransactionOp {
  return { op: "delete", key };
}

/**
 * The writes that turn the configuration records of `before` into those of `after` (the same
 * SMMU; its record aside): a put for each record that changed or appeared, a delete for each
 * that went away. A pre-copy delta's durable part (issue 14).
 */
export function configChanges(before: SmmuConfig, after: SmmuConfig): TransactionOp[] {
  const { vm, smmuId: id } = after.record;
  const ops: TransactionOp[] = [];
  const keyed = <T extends object>(was: readonly T[], now: readonly T[], key: (r: T) => string) => {
    const old = new Map(was.map((r) => [key(r), JSON.stringify(r)]));
    for (const r of now) {
      const k = key(r);
      if (old.get(k) !== JSON.stringify(r)) ops.push(putOp(k, r));
      old.delete(k);
    }
    for (const k of old.keys()) ops.push(deleteOp(k));
  };
  const one = <T>(value: T | undefined) => (value === undefined ? [] : [value]);
  keyed(before.mappings, after.mappings, (m) => configKeys.mapping(vm, id, m.ipa));
  keyed(before.devices, after.devices, (d) => configKeys.device(vm, id, d.streamId));
  keyed(one(before.pasidTable), one(after.pasidTable), () => configKeys.pasidTable(vm, id));
  keyed(one(before.msi), one(after.msi), () => configKeys.msi(vm, id));
  return ops;
}

/**
 * The writes of keyed changes to an SMMU's mapping and device records: a put for each changed
 * record, a delete for each removed key (a stop delta applied in place, issue 14).
 */
export function keyedConfigWrites(
  record: SmmuRecord,
  changes: {
    mappings: { changed: readonly MappingRecord[]; removed: readonly number[] };
    devices: { changed: readonly DeviceRecord[]; removed: readonly number[] };
  },
): TransactionOp[] {
  const { vm, smmuId: id } = record;
  const { mappings, devices } = changes;
  return [
    ...mappings.changed.map((m) => putOp(configKeys.mapping(vm, id, m.ipa), { ...m })),
    ...mappings.removed.map((ipa) => deleteOp(configKeys.mapping(vm, id, ipa))),
    ...devices.changed.map((d) => putOp(configKeys.device(vm, id, d.streamId), d)),
    ...devices.removed.map((sid) => deleteOp(configKeys.device(vm, id, sid))),
  ];
}
