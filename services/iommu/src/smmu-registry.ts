import {
  MigrationSeals,
  RequestLedger,
  UnrestoredResources,
  VplaneError,
  inSection,
  listPage,
  preCopyNotPrepared,
  refusedAsPayload,
  type Applied,
  type Logger,
  type PageRequest,
} from "@vplane/service-kit";
import { StoreConflictError, type Store, type TransactionOp } from "@vplane/store";
import type { PasidTableConfig, SmmuDelta } from "@vplane/smmuv3";
import { openBackend } from "./backend-factory.js";
import type { BackendOpening, SmmuBackend } from "./smmu-backend.js";
import {
  SmmuConfigStore,
  configChanges,
  type DeviceRecord,
  type MsiRecord,
  type PasidTableRecord,
  type SmmuConfig,
  type SmmuRecord,
} from "./smmu-config-store.js";
import type { LoggedEvent } from "./event-log.js";
import { importedSmmuConfig, importedStopChanges } from "./imported-smmu-config.js";
import { applySmmuDelta, type ImportedSmmuState } from "./smmu-state-format.js";

/** An SMMU the service holds: its durable record and its backend. */
export interface SmmuEntry {
  record: SmmuRecord;
  backend: SmmuBackend;
  /** The durable device records (the attach options and the guest STE words as given). */
  devices: Map<number, DeviceRecord>;
  /** The durable seed PASID table and MSI binding, as given (what a call's undo sets again). */
  pasidTable?: PasidTableRecord;
  msi?: MsiRecord;
}

/** Keeps an SMMU's durable records beside its backend: devices, seed PASID table, MSI binding. */
function keepRecords(entry: SmmuEntry, config: SmmuConfig): void {
  for (const d of config.devices) entry.devices.set(d.streamId, d);
  entry.pasidTable = config.pasidTable;
  entry.msi = config.msi;
}

/** Keeps the records a stop delta applied in place changed (importedStopChanges). */
function keepStopChanges(entry: SmmuEntry, changes: ReturnType<typeof importedStopChanges>): void {
  for (const sid of changes.devices.removed) entry.devices.delete(sid);
  for (const d of changes.devices.changed) entry.devices.set(d.streamId, d);
  entry.pasidTable = changes.pasidTable;
  entry.msi = changes.msi;
}

/** An SMMU to create from a migrated state, read from sections[section]. */
export interface ImportedSmmuItem {
  record: Omit<SmmuRecord, "vmid">;
  imported: ImportedSmmuState;
  section: number;
}

/** One SMMU's pre-copy delta, read from sections[section]. */
export interface SmmuDeltaItem {
  smmuId: string;
  delta: SmmuDelta;
  section: number;
}

/** A prepared SMMU (issue 14): the state its deltas made, checked, and its durable configuration. */
interface PreparedSmmu {
  record: SmmuRecord;
  imported: ImportedSmmuState;
  config: SmmuConfig;
  /**
   * The SMMU `imported` describes, built while the source runs (issue 14: not inside the
   * downtime), quiesced and seen by no call until the finish makes it the VM's. Emulated only: a
   * native backend's kernel objects are created at the finish, as before.
   */
  built: SmmuEntry | undefined;
}

/** A VM's import a live migration prepares while its source runs, by SMMU id. */
interface PreparedImport {
  iteration: number;
  smmus: Map<string, PreparedSmmu>;
}

const ID = /^[a-z][a-z0-9-]{0,62}$/;
export const SMMU_NAME = /^vms\/([a-z][a-z0-9-]{0,62})\/smmus\/([a-z][a-z0-9-]{0,62})$/;

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
  private readonly prepared = new Map<string, PreparedImport>();
  /** Stored SMMUs that could not be rebuilt on start, by name (their records stay until deleted). */
  private readonly unrestored = new UnrestoredResources<SmmuRecord>("SMMU");
  readonly config: SmmuConfigStore;
  /** Answers of the mutating calls by request_id, scoped by SMMU ("{vm}/{smmu}"). */
  private readonly ledger: RequestLedger;
  /** The VMs whose state a live migration exported (their delivering calls are refused). */
  readonly seals = new MigrationSeals();

  constructor(
    store: Store,
    private readonly options: {
      dataDir: string;
      maxSmmus: number;
      log: Logger;
      /** Sees every message any SMMU's event log takes. */
      onLogged?: (message: LoggedEvent) => void;
      /** Fds VMMs handed over for NATIVE SMMUs (native-vmm-handoff.ts), when the service has a handoff socket. */
      handedOver?: BackendOpening["handedOver"];
    },
  ) {
    this.config = new SmmuConfigStore(store);
    this.ledger = new RequestLedger(store, "iommu/requests/");
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Rebuilds every stored SMMU (one that cannot be rebuilt is logged and answers
   * SMMU_NOT_RESTORED until deleted), then the answers kept for their request_ids.
   */
  async load(): Promise<void> {
    for (const config of await this.config.loadAll()) {
      if (config.record.preparing) {
        // A migration that had not switched over when this service stopped: it failed.
        await this.config.deleteSmmu(config.record.vm, config.record.smmuId);
        this.options.log.info(
          { vm: config.record.vm, smmu: config.record.smmuId },
          "dropped an import still being prepared",
        );
        continue;
      }
      const name = smmuName(config.record.vm, config.record.smmuId);
      try {
        this.entries.set(name, this.rebuild(config));
      } catch (error) {
        this.unrestored.add(name, config.record, error);
        this.options.log.error(
          { err: error, vm: config.record.vm, smmu: config.record.smmuId },
          "could not restore SMMU",
        );
      }
    }
    const records = [...[...this.entries.values()].map((e) => e.record), ...this.unrestored.records()];
    await this.ledger.load(new Set(records.map(scopeOf)));
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
      keepRecords(entry, config);
    } catch (error) {
      b.close();
      throw error;
    }
    return entry;
  }

  /** Opens the backend for a record (no store writes): a new SMMU, or a migrated one. */
  private open(record: SmmuRecord, imported?: ImportedSmmuState): SmmuEntry {
    const backend = openBackend(record, {
      dataDir: this.options.dataDir,
      ...(imported ? { imported } : {}),
      ...(this.options.handedOver ? { handedOver: this.options.handedOver } : {}),
    });
    backend.log.onAppend = this.options.onLogged;
    return { record, backend, devices: new Map() };
  }

  /** The lowest VMID (1..65535) no SMMU of this host (prepared ones included, nor `taken`) uses. */
  freeVmid(taken: readonly number[] = []): number {
    const prepared = [...this.prepared.values()].flatMap((p) =>
      [...p.smmus.values()].map((s) => s.record.vmid),
    );
    const used = new Set([...this.entries.values()].map((e) => e.record.vmid).concat(prepared, taken));
    let vmid = 1;
    while (used.has(vmid)) vmid++;
    return vmid;
  }

  /** The SMMUs of VM `vm`, ordered by name. */
  byVm(vm: string): SmmuEntry[] {
    const prefix = `vms/${vm}/smmus/`;
    return [...this.entries.keys()]
      .filter((n) => n.startsWith(prefix))
      .sort()
      .map((n) => this.entries.get(n)!);
  }

  /** The SMMUs of VM `vm`: INVALID_ARGUMENT for a bad id, NOT_FOUND (field "vm") if this host has none. */
  requireVm(vm: string): SmmuEntry[] {
    checkResourceId(vm, "vm");
    const entries = this.byVm(vm);
    if (entries.length === 0) {
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "SMMU_NOT_FOUND",
        message: `VM ${vm} has no SMMU on this host`,
        field: "vm",
      });
    }
    return entries;
  }

  /**
   * Creates a VM's SMMUs from migrated states (ImportDeviceState), quiesced, all or nothing: the
   * VM must have no SMMU here (ALREADY_EXISTS, unless every one was created by the same non-empty
   * request_id: a retry gets them), the host limit holds (RESOURCE_EXHAUSTED), every state is
   * imported into a backend before anything is stored (a state the backend refuses is
   * INVALID_ARGUMENT naming `sections[i].payload.<entry>`), then each is made durable like a created
   * SMMU with the configuration derived from its state; a failed write removes what was written.
   */
  async importSmmus(vm: string, requestId: string, items: readonly ImportedSmmuItem[]): Promise<SmmuEntry[]> {
    const existing = this.byVm(vm);
    if (existing.length > 0) {
      if (requestId !== "" && existing.every((e) => e.record.createRequestId === requestId)) return existing;
      throw smmusExist(vm);
    }
    if (this.prepared.has(vm)) throw smmusExist(vm);
    if (this.entries.size + items.length > this.options.maxSmmus) throw tooManySmmus(this.options.maxSmmus);
    const built: SmmuEntry[] = [];
    const stored: SmmuEntry[] = [];
    try {
      for (const item of items) {
        const record: SmmuRecord = { ...item.record, vmid: this.freeVmid(built.map((e) => e.record.vmid)) };
        built.push(inSection(item.section, () => this.open(record, item.imported)));
      }
      for (const [i, entry] of built.entries()) {
        try {
          await this.config.createWithConfig(importedSmmuConfig(entry.record, items[i]!.imported));
        } catch (error) {
          if (error instanceof StoreConflictError) throw alreadyExists(smmuName(vm, entry.record.smmuId));
          throw error;
        }
        stored.push(entry);
      }
    } catch (error) {
      for (const entry of built) entry.backend.close();
      for (const entry of stored)
        await this.config.deleteSmmu(vm, entry.record.smmuId).catch(() => undefined);
      throw error;
    }
    for (const [i, entry] of built.entries()) {
      keepRecords(entry, importedSmmuConfig(entry.record, items[i]!.imported));
      this.entries.set(smmuName(vm, entry.record.smmuId), entry);
      this.seals.arrived(vm);
    }
    return built;
  }

  /**
   * Pre-copy iteration `iteration` of an incoming migration (issue 14): the first (0) creates the
   * VM's prepared import (ALREADY_EXISTS if the VM has SMMUs here; a prepared one starts over),
   * the later ones apply their deltas. Every delta is checked in full against what the earlier
   * ones made before anything is written; then each SMMU's configuration records are written as
   * they changed (a new SMMU's record marked preparing). Hidden from every other call; `recordOf`
   * makes a new SMMU's record from its first state. The names of the prepared SMMUs.
   */
  async prepareImport(
    vm: string,
    iteration: number,
    items: readonly SmmuDeltaItem[],
    recordOf: (smmuId: string, imported: ImportedSmmuState) => Omit<SmmuRecord, "vmid">,
  ): Promise<string[]> {
    if (iteration === 0) {
      await this.discardPrepared(vm);
      if (this.byVm(vm).length > 0) throw smmusExist(vm);
      this.prepared.set(vm, { iteration: 0, smmus: new Map() });
    }
    const prepared = this.requirePrepared(vm, "iteration");
    if (iteration !== 0 && iteration <= prepared.iteration)
      throw preCopyNotPrepared(vm, "iteration", { prepared: prepared.iteration, got: iteration });
    const next = this.applyPrepared(prepared, items, recordOf);
    const added = next.filter((n) => !n.before).length;
    const preparedCount = [...this.prepared.values()].reduce((sum, p) => sum + p.smmus.size, 0);
    if (this.entries.size + preparedCount + added > this.options.maxSmmus)
      throw tooManySmmus(this.options.maxSmmus);
    for (const n of next) {
      const built = inSection(n.section, () => this.build(n.record, n.imported, n.config));
      try {
        if (n.before) await this.config.write(configChanges(n.before.config, n.config));
        else await this.config.createWithConfig(n.config);
      } catch (error) {
        built?.backend.close();
        if (error instanceof StoreConflictError) throw alreadyExists(smmuName(vm, n.record.smmuId));
        throw error;
      }
      n.before?.built?.backend.close();
      prepared.smmus.set(n.record.smmuId, {
        record: n.record,
        imported: n.imported,
        config: n.config,
        built,
      });
    }
    prepared.iteration = iteration;
    return [...prepared.smmus.keys()].sort().map((id) => smmuName(vm, id));
  }

  /** The VM has an import prepared here. */
  hasPrepared(vm: string): boolean {
    return this.prepared.has(vm);
  }

  /** A prepared SMMU's entry with its durable records, built now (emulated backends; see PreparedSmmu.built). */
  private build(record: SmmuRecord, imported: ImportedSmmuState, config: SmmuConfig): SmmuEntry | undefined {
    if (record.backend !== "EMULATED") return undefined;
    const { preparing: _, ...kept } = record;
    const entry = this.open(kept, imported);
    keepRecords(entry, config);
    return entry;
  }

  /**
   * The stop-and-copy of an incoming migration: its deltas (none for an SMMU that did not change)
   * applied to the prepared SMMUs, which become the VM's. An SMMU built during pre-copy takes
   * its delta in place (issue 14: nothing is built in the downtime, and the finish costs what
   * changed); one that cannot (a NATIVE one, or a delta of other limits) is opened quiesced from
   * its prepared state with the delta merged. Every delta is checked before any SMMU changes.
   * Refused: the prepared import stays as it was. Returns the SMMUs and their write, made after
   * the resume (issue 14; FinishedDevices.write): only the configuration records the deltas
   * changed, then every record (no longer preparing), with deferred durability (`sync` flushes
   * them); the SMMUs' calls write after it.
   */
  finishImport(
    vm: string,
    items: readonly SmmuDeltaItem[],
  ): { entries: SmmuEntry[]; write: (start: Promise<void>) => Promise<void> } {
    const prepared = this.requirePrepared(vm, "vm");
    const inPlace: { item: SmmuDeltaItem; p: PreparedSmmu; built: SmmuEntry }[] = [];
    const rebuilt: SmmuDeltaItem[] = [];
    for (const item of items) {
      const p = prepared.smmus.get(item.smmuId);
      const built = p?.built;
      const applies =
        built !== undefined &&
        inSection(item.section, () =>
          refusedAsPayload(() => built.backend.checkStopDelta?.(item.delta) ?? false),
        );
      if (applies) inPlace.push({ item, p: p!, built });
      else rebuilt.push(item);
    }
    const next = this.applyPrepared(prepared, rebuilt, () => {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "PRECOPY_NOT_PREPARED",
        message: `the stop-and-copy of VM ${vm} names an SMMU its pre-copy did not`,
      });
    });
    // What is opened now: the SMMUs rebuilt with their deltas, and those no one built (NATIVE).
    const toOpen = new Map([...prepared.smmus].flatMap(([id, p]) => (p.built ? [] : [[id, p] as const])));
    for (const n of next) toOpen.set(n.record.smmuId, { ...n, built: undefined });
    const entries = new Map<string, SmmuEntry>();
    const applied: PreparedSmmu[] = [];
    const ops: TransactionOp[] = next.flatMap((n) => configChanges(n.before!.config, n.config));
    try {
      for (const [id, p] of toOpen) {
        const { preparing: _, ...record } = p.record;
        const section = items.find((i) => i.smmuId === id)?.section ?? 0;
        const entry = inSection(section, () => this.open(record, p.imported));
        keepRecords(entry, p.config);
        entries.set(id, entry);
      }
      for (const { item, p, built } of inPlace) {
        built.backend.applyStopDelta!(item.delta);
        applied.push(p);
        const changes = importedStopChanges(p.config, item.delta);
        ops.push(...changes.ops);
        keepStopChanges(built, changes);
      }
    } catch (error) {
      for (const entry of entries.values()) entry.backend.close();
      // They hold their deltas now, their prepared states do not: a retry builds them anew.
      for (const p of applied) {
        p.built?.backend.close();
        p.built = undefined;
      }
      throw error;
    }
    for (const n of next) n.before?.built?.backend.close();
    this.prepared.delete(vm);
    const out: SmmuEntry[] = [];
    for (const [id, p] of prepared.smmus) {
      const entry = entries.get(id) ?? p.built!;
      const { preparing: _, ...record } = p.record;
      entry.record = record;
      this.entries.set(smmuName(vm, id), entry);
      out.push(entry);
    }
    this.seals.arrived(vm);
    const records = out.map((e) => this.config.recordWrite(e.record));
    const write = async () => {
      const deferred = { durability: "deferred" } as const;
      await this.config.write(ops, deferred);
      await this.config.write(records, deferred);
    };
    return {
      entries: out,
      write: (start) => {
        const written = start.then(write);
        for (const e of out) this.ledger.follow(scopeOf(e.record), written);
        return written;
      },
    };
  }

  /** Resolves once every write so far is durable: a finished import's deferred ones too. */
  sync(): Promise<void> {
    return this.config.sync();
  }

  /** Discards the VM's prepared import and its records; the names it held (none: not prepared). */
  async discardPrepared(vm: string): Promise<string[]> {
    const prepared = this.prepared.get(vm);
    if (!prepared) return [];
    this.prepared.delete(vm);
    for (const p of prepared.smmus.values()) p.built?.backend.close();
    for (const id of prepared.smmus.keys()) await this.config.deleteSmmu(vm, id);
    return [...prepared.smmus.keys()].sort().map((id) => smmuName(vm, id));
  }

  private requirePrepared(vm: string, field: string): PreparedImport {
    const prepared = this.prepared.get(vm);
    if (!prepared) throw preCopyNotPrepared(vm, field);
    return prepared;
  }

  /** Each item's delta applied to its prepared SMMU (or to nothing, a new one), all checked. */
  private applyPrepared(
    prepared: PreparedImport,
    items: readonly SmmuDeltaItem[],
    recordOf: (smmuId: string, imported: ImportedSmmuState) => Omit<SmmuRecord, "vmid">,
  ) {
    const vmids: number[] = [];
    return items.map((item) => {
      const before = prepared.smmus.get(item.smmuId);
      const imported = inSection(item.section, () => applySmmuDelta(before?.imported.state, item.delta));
      if (before && imported.guestMemoryBytes !== before.record.guestMemoryBytes) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "GUEST_MEMORY_SIZE_MISMATCH",
          message: `sections[${item.section}] has ${imported.guestMemoryBytes} bytes of guest RAM, the prepared SMMU ${before.record.guestMemoryBytes}`,
          field: "guest_memory.size_bytes",
        });
      }
      let record = before?.record;
      if (!record) {
        const vmid = this.freeVmid(vmids);
        vmids.push(vmid);
        record = { ...recordOf(item.smmuId, imported), vmid, preparing: true };
      }
      return {
        before,
        record,
        imported,
        config: importedSmmuConfig(record, imported),
        section: item.section,
      };
    });
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
    // A VM whose import is being prepared (issue 14) gets its SMMUs from its migration.
    if (this.unrestored.has(name) || this.prepared.has(record.vm)) throw alreadyExists(name);
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
    this.seals.arrived(record.vm);
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
    const record = this.unrestored.record(name) ?? this.require(name).record;
    const entry = this.entries.get(name);
    this.entries.delete(name);
    entry?.backend.close();
    await this.ledger.forget(scopeOf(record));
    await this.config.deleteSmmu(record.vm, record.smmuId);
    this.unrestored.delete(name);
  }

  /** The SMMU named "vms/{vm}/smmus/{smmu}": INVALID_ARGUMENT for a bad name, NOT_FOUND if none. */
  /**
   * The SMMU for a call that delivers into it (`what`): UNAVAILABLE VM_MIGRATING once a live
   * migration exported its VM's state (MigrationSeals), else as require.
   */
  requireLive(name: string, what: string): SmmuEntry {
    const vm = SMMU_NAME.exec(name)?.[1];
    if (vm !== undefined) this.seals.check(vm, what);
    return this.require(name);
  }

  require(name: string): SmmuEntry {
    if (!SMMU_NAME.test(name)) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "NAME_INVALID",
        message: `an SMMU name is "vms/{vm}/smmus/{smmu}", got '${name}'`,
        field: "name",
      });
    }
    const entry = this.entries.get(name);
    if (entry === undefined) {
      this.unrestored.check(name, name);
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

  /** A page of the SMMUs under `under` ("vms/{vm}/smmus/" or all), ordered by name (the page token). */
  list(request: PageRequest, under: string): { items: SmmuEntry[]; nextPageToken: string } {
    return listPage(this.entries, request, { under, issued: (name) => name.startsWith("vms/") });
  }

  /**
   * Runs a mutating call once per request_id (RequestLedger): a retry with the same method and
   * message gets the first answer; `apply` changes the backend and says what to write.
   */
  mutate<T>(
    entry: SmmuEntry,
    request: { requestId: string },
    method: string,
    apply: () => Applied<T>,
  ): Promise<T> {
    return this.ledger.run(
      { scope: scopeOf(entry.record), requestId: request.requestId, method, request },
      apply,
    );
  }

  closeAll(): void {
    for (const prepared of this.prepared.values())
      for (const p of prepared.smmus.values()) p.built?.backend.close();
    this.prepared.clear();
    for (const entry of this.entries.values()) entry.backend.close();
    this.entries.clear();
  }
}

/** The RequestLedger scope of an SMMU. */
function scopeOf(record: SmmuRecord): string {
  return `${record.vm}/${record.smmuId}`;
}

function alreadyExists(name: string): VplaneError {
  return new VplaneError({
    code: "ALREADY_EXISTS",
    reason: "SMMU_EXISTS",
    message: `${name} already exists`,
    field: "smmu.smmu_id",
  });
}

function smmusExist(vm: string): VplaneError {
  return new VplaneError({
    code: "ALREADY_EXISTS",
    reason: "SMMU_EXISTS",
    message: `VM ${vm} already has SMMUs on this host`,
    field: "vm",
  });
}

function tooManySmmus(max: number): VplaneError {
  return new VplaneError({
    code: "RESOURCE_EXHAUSTED",
    reason: "TOO_MANY_SMMUS",
    message: `this host holds at most ${max} SMMUs`,
  });
}
