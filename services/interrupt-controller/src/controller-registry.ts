import {
  MigrationSeals,
  RequestLedger,
  UnrestoredResources,
  VplaneError,
  listPage,
  preCopyNotPrepared,
  refusedAsPayload,
  type DurableWrites,
  type Logger,
  type PageRequest,
} from "@vplane/service-kit";
import { StoreConflictError, type Store, type TransactionOp } from "@vplane/store";
import type { ActiveMode, ControllerDelta } from "@vplane/xive";
import { openBackend } from "./backend-factory.js";
import type { AdoptedVm } from "./native-vmm-handoff.js";
import type { ControllerBackend } from "./controller-backend.js";
import {
  ControllerConfigStore,
  type ControllerConfig,
  type ControllerRecord,
  type SourceRecord,
} from "./controller-config-store.js";
import {
  applyControllerDelta,
  mergedImportedState,
  readControllerState,
  type ImportedControllerState,
  type PreCopySection,
} from "./controller-state-format.js";
import {
  importedConfiguration,
  importedSources,
  withLaterRecords,
  type ReplayedConfiguration,
} from "./imported-configuration.js";
import { replayHcallQueue, replayHcallSource } from "./hcall-records.js";
import { LIMITS } from "./service-limits.js";
import { SignalLog } from "./signal-log.js";
import { replaySourceConfig } from "./source-config-replay.js";

/** A controller the service holds: its durable record, its backend and its signal log. */
export interface ControllerEntry {
  record: ControllerRecord;
  backend: ControllerBackend;
  signals: SignalLog;
  watchers: number;
  /**
   * The durable source records (LSI and ASSERTED, once set by an init, stay set as in KVM); use
   * ControllerRegistry.sourceRecords, which derives an imported controller's on first use.
   */
  sources: Map<number, SourceRecord>;
  /** An imported controller whose source records are not derived yet. */
  sourcesToDerive: boolean;
}

/**
 * An import a live migration prepares while its source runs (issue 14): the state its pre-copy
 * deltas made so far, checked in full and durable (its record marked preparing), not the VM's.
 */
interface PreparedImport {
  record: ControllerRecord;
  /**
   * That state as its checked bytes (ImportedControllerState.payload), read again when needed (a
   * later iteration's delta, a finish that cannot apply in place). Not the decoded records: a
   * million objects at 1,048,576 sources, which every major GC of this process walked while the
   * import waited for the stop, and some of those GCs landed inside the downtime.
   */
  payload: Uint8Array;
  iteration: number;
  /**
   * The controller that state describes, built while the source runs (issue 14: not inside the
   * downtime), quiesced and seen by no call until the finish makes it the VM's. Its guest RAM is
   * bound then: the file RAM migration fills in place (as QEMU's destination memory-backend-file).
   * Emulated only: a native backend's kernel device is created at the finish, as before.
   */
  built: ControllerEntry | undefined;
}

/** Closes an entry that never became a VM's (a prepared import's controller). */
function close(entry: ControllerEntry | undefined): void {
  entry?.signals.close();
  entry?.backend.close();
}

const VM_ID = /^[a-z][a-z0-9-]{0,62}$/;
const NAME = /^vms\/([a-z][a-z0-9-]{0,62})\/controller$/;

export function controllerName(vm: string): string {
  return `vms/${vm}/controller`;
}

export function checkVmId(vm: string, field = "controller.vm"): void {
  if (!VM_ID.test(vm)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "VM_ID_INVALID",
      message: `VM id must be 1-63 lowercase letters, digits and '-', starting with a letter; got '${vm}'`,
      field,
    });
  }
}

function controllerExists(vm: string, field: string): VplaneError {
  return new VplaneError({
    code: "ALREADY_EXISTS",
    reason: "CONTROLLER_EXISTS",
    message: `VM ${vm} already has an interrupt controller`,
    field,
  });
}

/**
 * The controllers of this host by VM id, with their configuration made durable in the store and
 * replayed on start (creation, NR_SERVERS, selected mode, vCPUs, sources, queues, source configs).
 */
export class ControllerRegistry {
  private readonly entries = new Map<string, ControllerEntry>();
  /** Stored controllers that could not be rebuilt on start, by VM (their records stay until deleted). */
  private readonly unrestored = new UnrestoredResources<ControllerRecord>("CONTROLLER");
  private readonly prepared = new Map<string, PreparedImport>();
  private readonly config: ControllerConfigStore;
  /** Answers of the mutating calls by request_id, scoped by VM id. */
  readonly ledger: RequestLedger;
  /** The VMs whose state a live migration exported (their delivering calls are refused). */
  readonly seals = new MigrationSeals();

  constructor(
    store: Store,
    private readonly options: {
      dataDir: string;
      maxControllers: number;
      log: Logger;
      /** VMs that VMMs handed over (native-vmm-handoff.ts), for NATIVE controllers. */
      handedOver?: (vm: string) => AdoptedVm | undefined;
    },
  ) {
    this.config = new ControllerConfigStore(store);
    this.ledger = new RequestLedger(store, "interrupt-controller/requests/");
  }

  get durable(): ControllerConfigStore {
    return this.config;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Rebuilds every stored controller (one that cannot be rebuilt is logged and answers
   * CONTROLLER_NOT_RESTORED until deleted), then the answers kept for their request_ids.
   */
  async load(): Promise<void> {
    for (const config of await this.config.loadAll()) {
      if (config.record.preparing) {
        // A migration that had not switched over when this service stopped: it failed.
        await this.config.deleteController(config.record.vm);
        this.options.log.info({ vm: config.record.vm }, "dropped an import still being prepared");
        continue;
      }
      try {
        this.entries.set(config.record.vm, this.rebuild(config));
      } catch (error) {
        this.unrestored.add(config.record.vm, config.record, error);
        this.options.log.error({ err: error, vm: config.record.vm }, "could not restore controller");
      }
    }
    await this.ledger.load(new Set([...this.entries.keys(), ...this.unrestored.records().map((r) => r.vm)]));
  }

  private rebuild(stored: ControllerConfig): ControllerEntry {
    const config = stored.importedState ? this.importedReplay(stored, stored.importedState) : stored;
    const entry = this.open(stored.record);
    const backend = entry.backend;
    try {
      if (stored.record.selectedMode) backend.selectMode(stored.record.selectedMode);
      for (const vcpu of config.vcpus) backend.connectVcpu(vcpu.vcpuId, vcpu.server);
      for (const source of config.sources) {
        backend.initSource(source.irq, source.lsi, source.asserted);
        entry.sources.set(source.irq, source);
      }
      // The device calls' queues first: EQ_CONFIG checks a vCPU's one escalation interrupt against
      // the queues it has, which QEMU's emulated hypercalls do not attach.
      for (const q of config.queues) {
        if (q.byHypercall) continue;
        backend.configureQueue(q.server, q.priority, {
          flags: q.flags,
          qshift: q.qshift,
          qaddr: BigInt(q.qaddr),
          qtoggle: q.qtoggle,
          qindex: q.qindex,
        });
      }
      for (const q of config.queues) if (q.byHypercall) replayHcallQueue(backend, q);
      for (const source of config.sources) {
        if (source.hcall !== undefined) replayHcallSource(backend, source);
        else if (source.kvmConfig !== undefined)
          replaySourceConfig(backend, source.irq, BigInt(source.kvmConfig));
      }
    } catch (error) {
      backend.close();
      throw error;
    }
    return entry;
  }

  /** An imported controller's configuration: derived from its kept state, then the later records. */
  private importedReplay(stored: ControllerConfig, state: Uint8Array): ReplayedConfiguration {
    if (state.byteLength !== stored.record.importedStateBytes) {
      throw new Error(
        `imported state is ${state.byteLength} bytes in the store, not ${stored.record.importedStateBytes}`,
      );
    }
    // The model alone derives it: a NATIVE record would build a kernel device only to read it back.
    const merged = mergedImportedState(state, stored.importedDeltas ?? []);
    const scratch = this.open({ ...stored.record, backend: "EMULATED" }, merged);
    try {
      return withLaterRecords(
        importedConfiguration(scratch.backend, stored.record),
        stored,
        stored.record.importedQueuesReset ?? false,
      );
    } finally {
      scratch.backend.close();
    }
  }

  /**
   * Opens the backend for a record (no store writes): a new controller, or the one an exported
   * state describes.
   */
  private open(record: ControllerRecord, imported?: ImportedControllerState): ControllerEntry {
    const signals = new SignalLog(LIMITS.signalBuffer);
    const backend = openBackend(record, {
      dataDir: this.options.dataDir,
      onSignal: (server, raised) => signals.record(server, raised),
      ...(imported ? { imported } : {}),
      ...(this.options.handedOver ? { handedOver: this.options.handedOver } : {}),
    });
    return {
      record,
      backend,
      signals,
      watchers: 0,
      sources: new Map(),
      sourcesToDerive: false,
    };
  }

  /**
   * Creates a controller. A repeated request_id returns the controller it created; another
   * controller of the VM is ALREADY_EXISTS; more than max_controllers is RESOURCE_EXHAUSTED.
   */
  async create(record: ControllerRecord): Promise<ControllerEntry> {
    const existing = this.admit(record, "controller.vm");
    if (existing) return existing;
    const entry = this.open(record);
    await this.persist(entry, "controller.vm");
    return entry;
  }

  /**
   * Creates a controller from an exported state (ImportDeviceState), quiesced, with the same
   * admission rules as create (a repeated request_id returns it; ALREADY_EXISTS;
   * RESOURCE_EXHAUSTED) and made durable like one: the record and the exported state itself,
   * whose derived configuration (importedConfiguration) a restart replays; all removed again if
   * any write fails.
   */
  async importController(
    record: ControllerRecord,
    imported: ImportedControllerState,
  ): Promise<ControllerEntry> {
    const existing = this.admit(record, "vm");
    if (existing) return existing;
    const entry = this.open({ ...record, importedStateBytes: imported.payload.byteLength }, imported);
    entry.sourcesToDerive = true;
    await this.persist(entry, "vm", imported.payload);
    return entry;
  }

  /**
   * Pre-copy iteration `iteration` of an incoming migration (issue 14): the first (0) creates
   * the VM's prepared import from its delta, with the admission rules of importController (and
   * starts over if one was there); the later ones apply theirs. Each is checked in full against
   * what the earlier ones made and kept in the store before this returns; `recordOf` makes the
   * record of the first state (INVALID_ARGUMENT for a guest RAM it does not fit).
   */
  async prepareImport(
    vm: string,
    iteration: number,
    section: PreCopySection,
    recordOf: (imported: ImportedControllerState) => ControllerRecord,
  ): Promise<void> {
    const previous = this.prepared.get(vm);
    if (iteration === 0) {
      // The first delta holds everything: read as the state it makes, not decoded and merged.
      const imported = section.first();
      if (previous) await this.discardPrepared(vm);
      const record: ControllerRecord = {
        ...recordOf(imported),
        importedStateBytes: imported.payload.byteLength,
        importedDeltaBytes: [],
        preparing: true,
      };
      this.admit(record, "vm"); // a prepared import has no request_id to be retried under
      const built = this.build(record, imported);
      try {
        await this.config.createController(record, imported.payload);
      } catch (error) {
        close(built);
        if (error instanceof StoreConflictError) throw controllerExists(vm, "vm");
        throw error;
      }
      this.prepared.set(vm, { record, payload: imported.payload, iteration, built });
      return;
    }
    const delta = section.delta();
    const prepared = this.requirePrepared(vm, "iteration");
    if (iteration <= prepared.iteration)
      throw preCopyNotPrepared(vm, "iteration", { prepared: prepared.iteration, got: iteration });
    const imported = this.applyPrepared(prepared, delta);
    const { payload } = section;
    const record = {
      ...prepared.record,
      importedDeltaBytes: [...(prepared.record.importedDeltaBytes ?? []), payload.byteLength],
    };
    const built = this.build(record, imported);
    try {
      await this.config.appendDelta(record, payload);
    } catch (error) {
      close(built);
      throw error;
    }
    close(prepared.built);
    Object.assign(prepared, { record, payload: imported.payload, iteration, built });
  }

  /** The prepared import's controller, built now (emulated backends; see PreparedImport.built). */
  private build(record: ControllerRecord, imported: ImportedControllerState): ControllerEntry | undefined {
    return record.backend === "EMULATED" ? this.open(record, imported) : undefined;
  }

  /** The VM has an import prepared here. */
  hasPrepared(vm: string): boolean {
    return this.prepared.has(vm);
  }

  /**
   * The stop-and-copy of an incoming migration: its delta (none: nothing changed since the last
   * iteration) applied to the prepared import, whose controller is opened quiesced and becomes the
   * VM's. Without a delta the controller built during pre-copy is the one (nothing is built in the
   * downtime). Refused: the prepared import stays as it was. Returns the write, made after the
   * resume (issue 14; FinishedDevices.write): only the delta and the record (no longer
   * preparing), in one transaction unless the delta is over a megabyte, with deferred durability
   * (`sync` flushes them); the VM's calls write after it.
   */
  finishImport(
    vm: string,
    delta?: { delta: ControllerDelta; payload: Uint8Array },
  ): (start: Promise<void>) => Promise<void> {
    const prepared = this.requirePrepared(vm, "vm");
    const { preparing: _, ...kept } = prepared.record;
    const deltas = prepared.record.importedDeltaBytes ?? [];
    const record: ControllerRecord = {
      ...kept,
      importedDeltaBytes: delta ? [...deltas, delta.payload.byteLength] : deltas,
    };
    const built = prepared.built;
    const inPlace =
      built !== undefined &&
      (delta === undefined || refusedAsPayload(() => built.backend.applyStopDelta?.(delta.delta) ?? false));
    const entry = inPlace
      ? built
      : this.open(
          record,
          delta ? this.applyPrepared(prepared, delta.delta) : readControllerState(prepared.payload),
        );
    if (entry !== built) close(built);
    entry.record = record;
    entry.sourcesToDerive = true;
    this.prepared.delete(vm);
    this.entries.set(vm, entry);
    this.seals.arrived(vm);
    return (start) => {
      const written = start.then(() =>
        this.config.appendDelta(record, delta?.payload ?? new Uint8Array(), { durability: "deferred" }),
      );
      this.ledger.follow(vm, written);
      return written;
    };
  }

  /** Resolves once every write so far is durable: a finished import's deferred ones too. */
  sync(): Promise<void> {
    return this.config.sync();
  }

  /** Discards the VM's prepared import and its records; false when there was none. */
  async discardPrepared(vm: string): Promise<boolean> {
    const prepared = this.prepared.get(vm);
    if (prepared === undefined) return false;
    this.prepared.delete(vm);
    close(prepared.built);
    await this.config.deleteController(vm);
    return true;
  }

  private requirePrepared(vm: string, field: string): PreparedImport {
    const prepared = this.prepared.get(vm);
    if (prepared === undefined) throw preCopyNotPrepared(vm, field);
    return prepared;
  }

  /** The prepared state after `delta`, on the same guest RAM size. */
  private applyPrepared(prepared: PreparedImport, delta: ControllerDelta): ImportedControllerState {
    const imported = applyControllerDelta(readControllerState(prepared.payload).state, delta);
    if (imported.guestMemoryBytes !== prepared.record.guestMemoryBytes) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "GUEST_MEMORY_SIZE_MISMATCH",
        message: `the delta has ${imported.guestMemoryBytes} bytes of guest RAM, the prepared import ${prepared.record.guestMemoryBytes}`,
        field: "guest_memory.size_bytes",
      });
    }
    return imported;
  }

  /** The entry a retried create returns, or undefined when the controller may be created. */
  private admit(record: ControllerRecord, field: string): ControllerEntry | undefined {
    const existing = this.entries.get(record.vm);
    if (existing) {
      if (record.createRequestId !== "" && existing.record.createRequestId === record.createRequestId)
        return existing;
      throw controllerExists(record.vm, field);
    }
    if (this.unrestored.has(record.vm)) throw controllerExists(record.vm, field);
    // Prepared imports (issue 14) hold their place.
    if (this.entries.size + this.prepared.size >= this.options.maxControllers) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "TOO_MANY_CONTROLLERS",
        message: `this host holds its limit of ${this.options.maxControllers} controllers`,
      });
    }
    return undefined;
  }

  /** Writes the record (absent before: a conflict is ALREADY_EXISTS) and an imported state. */
  private async persist(entry: ControllerEntry, field: string, importedState?: Uint8Array): Promise<void> {
    try {
      await this.config.createController(entry.record, importedState);
    } catch (error) {
      entry.backend.close();
      if (error instanceof StoreConflictError) throw controllerExists(entry.record.vm, field);
      throw error;
    }
    this.entries.set(entry.record.vm, entry);
    this.seals.arrived(entry.record.vm);
  }

  async delete(name: string): Promise<void> {
    const vm = this.vmOf(name);
    if (!this.unrestored.has(vm)) {
      const entry = this.require(name);
      this.entries.delete(vm);
      entry.signals.close();
      entry.backend.close();
    }
    await this.ledger.forget(vm);
    await this.config.deleteController(vm);
    this.unrestored.delete(vm);
  }

  /** The controller named "vms/{vm}/controller": INVALID_ARGUMENT for a bad name, NOT_FOUND if none. */
  require(name: string): ControllerEntry {
    const vm = this.vmOf(name);
    const entry = this.entries.get(vm);
    if (entry === undefined) {
      this.unrestored.check(vm, name);
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "CONTROLLER_NOT_FOUND",
        message: `${name} does not exist`,
        field: "name",
      });
    }
    return entry;
  }

  /** The controller of VM `vm`: NOT_FOUND (field "vm") if this host has none. */
  /**
   * The controller for a call that delivers into it (`what`): UNAVAILABLE VM_MIGRATING once a
   * live migration exported its state (MigrationSeals), else as require.
   */
  requireLive(name: string, what: string): ControllerEntry {
    this.seals.check(this.vmOf(name), what);
    return this.require(name);
  }

  requireVm(vm: string): ControllerEntry {
    checkVmId(vm, "vm");
    const entry = this.entries.get(vm);
    if (entry === undefined) {
      this.unrestored.check(vm, controllerName(vm));
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "CONTROLLER_NOT_FOUND",
        message: `VM ${vm} has no interrupt controller on this host`,
        field: "vm",
      });
    }
    return entry;
  }

  private vmOf(name: string): string {
    const match = NAME.exec(name);
    if (!match) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "NAME_INVALID",
        message: `a controller name is "vms/{vm}/controller", got '${name}'`,
        field: "name",
      });
    }
    return match[1]!;
  }

  /** A page of the controllers, ordered by VM id (the page token is a VM id). */
  list(request: PageRequest): { items: ControllerEntry[]; nextPageToken: string } {
    return listPage(this.entries, request, { issued: (vm) => VM_ID.test(vm) });
  }

  /** Records the guest's mode choice; the write that makes it durable. */
  setSelectedMode(entry: ControllerEntry, mode: ActiveMode): TransactionOp {
    entry.record = { ...entry.record, selectedMode: mode };
    return this.config.controllerWrite(entry.record);
  }

  /**
   * The controller's durable source records. An imported controller's are derived from its model
   * (importedSources) when first needed, which keeps that work out of a migration's downtime.
   * They are the records of the import unless the guest re-targeted a source by hypercall in
   * between, whose new targeting they then hold (a RESET then records it masked, as it is).
   */
  sourceRecords(entry: ControllerEntry): Map<number, SourceRecord> {
    if (entry.sourcesToDerive) {
      for (const source of importedSources(entry.backend)) entry.sources.set(source.irq, source);
      entry.sourcesToDerive = false;
    }
    return entry.sources;
  }

  /**
   * After a RESET: no queue survives in the durable configuration, imported ones included; the
   * writes that say so, after `before` (the source records the RESET masked).
   */
  resetQueues(entry: ControllerEntry, before: readonly TransactionOp[]): DurableWrites {
    const ops = [...before];
    if (entry.record.importedStateBytes !== undefined && !entry.record.importedQueuesReset) {
      entry.record = { ...entry.record, importedQueuesReset: true };
      ops.push(this.config.controllerWrite(entry.record));
    }
    const vm = entry.record.vm;
    return async () => [...ops, ...(await this.config.queueDeletes(vm))];
  }

  closeAll(): void {
    for (const prepared of this.prepared.values()) close(prepared.built);
    this.prepared.clear();
    for (const entry of this.entries.values()) {
      entry.signals.close();
      entry.backend.close();
    }
    this.entries.clear();
  }
}
