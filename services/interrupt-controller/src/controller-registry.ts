import { VplaneError, type Logger } from "@vplane/service-kit";
import { StoreConflictError } from "@vplane/store";
import type { ActiveMode } from "@vplane/xive";
import type { ControllerBackend } from "./controller-backend.js";
import {
  ControllerConfigStore,
  type ControllerConfig,
  type ControllerRecord,
  type SourceRecord,
} from "./controller-config-store.js";
import { EmulatedBackend } from "./emulated-backend.js";
import { checkGuestMemory, openGuestMemory } from "./guest-memory-binding.js";
import { openNativeBackend } from "./native-backend.js";
import { LIMITS } from "./service-limits.js";
import { SignalLog } from "./signal-log.js";

/** A controller the service holds: its durable record, its backend and its signal log. */
export interface ControllerEntry {
  record: ControllerRecord;
  backend: ControllerBackend;
  signals: SignalLog;
  watchers: number;
  /** The durable source records (LSI and ASSERTED, once set by an init, stay set as in KVM). */
  sources: Map<number, SourceRecord>;
  /** Answers of mutating calls by request_id (idempotent retries), oldest first. */
  answered: Map<string, { method: string; response: unknown }>;
}

const VM_ID = /^[a-z][a-z0-9-]{0,62}$/;
const NAME = /^vms\/([a-z][a-z0-9-]{0,62})\/controller$/;
/** Answers kept per controller for request_id retries. */
const ANSWERS_KEPT = 1024;

export function controllerName(vm: string): string {
  return `vms/${vm}/controller`;
}

export function checkVmId(vm: string): void {
  if (!VM_ID.test(vm)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "VM_ID_INVALID",
      message: `VM id must be 1-63 lowercase letters, digits and '-', starting with a letter; got '${vm}'`,
      field: "controller.vm",
    });
  }
}

/**
 * The controllers of this host by VM id, with their configuration made durable in the store and
 * replayed on start (creation, NR_SERVERS, selected mode, vCPUs, sources, queues, source configs).
 */
export class ControllerRegistry {
  private readonly entries = new Map<string, ControllerEntry>();
  private readonly config: ControllerConfigStore;

  constructor(
    store: ConstructorParameters<typeof ControllerConfigStore>[0],
    private readonly options: { dataDir: string; maxControllers: number; log: Logger },
  ) {
    this.config = new ControllerConfigStore(store);
  }

  get durable(): ControllerConfigStore {
    return this.config;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Rebuilds every stored controller; one that cannot be rebuilt is logged and left out. */
  async load(): Promise<void> {
    for (const config of await this.config.loadAll()) {
      try {
        this.entries.set(config.record.vm, this.rebuild(config));
      } catch (error) {
        this.options.log.error({ err: error, vm: config.record.vm }, "could not restore controller");
      }
    }
  }

  private rebuild(config: ControllerConfig): ControllerEntry {
    const entry = this.open(config.record);
    const backend = entry.backend;
    try {
      if (config.record.selectedMode) backend.selectMode(config.record.selectedMode);
      for (const vcpu of config.vcpus) backend.connectVcpu(vcpu.vcpuId, vcpu.server);
      for (const source of config.sources) {
        backend.initSource(source.irq, source.lsi, source.asserted);
        entry.sources.set(source.irq, source);
      }
      for (const q of config.queues) {
        backend.configureQueue(q.server, q.priority, {
          flags: q.flags,
          qshift: q.qshift,
          qaddr: BigInt(q.qaddr),
          qtoggle: q.qtoggle,
          qindex: q.qindex,
        });
      }
      for (const source of config.sources) {
        if (source.kvmConfig !== undefined) backend.restoreSourceConfig(source.irq, BigInt(source.kvmConfig));
      }
    } catch (error) {
      backend.close();
      throw error;
    }
    return entry;
  }

  /** Opens guest memory and the backend for a record (no store writes). */
  private open(record: ControllerRecord): ControllerEntry {
    if (record.backend === "NATIVE") openNativeBackend();
    const memory = openGuestMemory(
      checkGuestMemory(record.guestMemoryPath, BigInt(record.guestMemoryBytes), this.options.dataDir),
    );
    const signals = new SignalLog(LIMITS.signalBuffer);
    try {
      const backend = new EmulatedBackend(
        memory,
        { mode: record.mode, nrServers: record.nrServers, nrIrqs: record.nrIrqs },
        (server, raised) => signals.record(server, raised),
      );
      return { record, backend, signals, watchers: 0, sources: new Map(), answered: new Map() };
    } catch (error) {
      memory.close();
      throw error;
    }
  }

  /**
   * Creates a controller. A repeated request_id returns the controller it created; another
   * controller of the VM is ALREADY_EXISTS; more than max_controllers is RESOURCE_EXHAUSTED.
   */
  async create(record: ControllerRecord): Promise<ControllerEntry> {
    const existing = this.entries.get(record.vm);
    if (existing) {
      if (record.createRequestId !== "" && existing.record.createRequestId === record.createRequestId)
        return existing;
      throw new VplaneError({
        code: "ALREADY_EXISTS",
        reason: "CONTROLLER_EXISTS",
        message: `VM ${record.vm} already has an interrupt controller`,
        field: "controller.vm",
      });
    }
    if (this.entries.size >= this.options.maxControllers) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "TOO_MANY_CONTROLLERS",
        message: `this host holds its limit of ${this.options.maxControllers} controllers`,
      });
    }
    const entry = this.open(record);
    try {
      await this.config.createController(record);
    } catch (error) {
      entry.backend.close();
      if (error instanceof StoreConflictError) {
        throw new VplaneError({
          code: "ALREADY_EXISTS",
          reason: "CONTROLLER_EXISTS",
          message: `VM ${record.vm} already has an interrupt controller`,
          field: "controller.vm",
        });
      }
      throw error;
    }
    this.entries.set(record.vm, entry);
    return entry;
  }

  async delete(name: string): Promise<void> {
    const vm = this.vmOf(name);
    const entry = this.require(name);
    this.entries.delete(vm);
    entry.signals.close();
    entry.backend.close();
    await this.config.deleteController(vm);
  }

  /** The controller named "vms/{vm}/controller": INVALID_ARGUMENT for a bad name, NOT_FOUND if none. */
  require(name: string): ControllerEntry {
    const entry = this.entries.get(this.vmOf(name));
    if (entry === undefined) {
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "CONTROLLER_NOT_FOUND",
        message: `${name} does not exist`,
        field: "name",
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

  /** Controllers ordered by VM id, after `afterVm`. */
  list(afterVm: string, pageSize: number): { entries: ControllerEntry[]; more: boolean } {
    const sorted = [...this.entries.keys()].sort().filter((vm) => vm > afterVm);
    return {
      entries: sorted.slice(0, pageSize).map((vm) => this.entries.get(vm)!),
      more: sorted.length > pageSize,
    };
  }

  async setSelectedMode(entry: ControllerEntry, mode: ActiveMode): Promise<void> {
    entry.record = { ...entry.record, selectedMode: mode };
    await this.config.updateController(entry.record);
  }

  /** Remembers a mutating call's answer under its request_id (bounded). */
  remember(entry: ControllerEntry, requestId: string, method: string, response: unknown): void {
    if (requestId === "") return;
    entry.answered.set(requestId, { method, response });
    if (entry.answered.size > ANSWERS_KEPT) entry.answered.delete(entry.answered.keys().next().value!);
  }

  closeAll(): void {
    for (const entry of this.entries.values()) {
      entry.signals.close();
      entry.backend.close();
    }
    this.entries.clear();
  }
}
