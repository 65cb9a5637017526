import type { GuestMemory } from "@vplane/guest-memory";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  Errno,
  controllerDeltaSize,
  encodeControllerDelta,
  InterruptController,
  type CheckedControllerState,
  TriggerOutcome,
  XiveError,
  dumpController,
  type ActiveMode,
  type ControllerDelta,
  type HcallResult,
  type KvmXiveEq,
  type SignalSink,
  type SourceState,
  type TriggerOutcomeValue,
} from "@vplane/xive";
import type {
  BackendOpening,
  ControllerBackend,
  ControllerPreCopy,
  RtasCallName,
  TriggerCounts,
} from "./controller-backend.js";
import type { ControllerRecord, ControllerSpec } from "./controller-config-store.js";
import type { ExportedState } from "./controller-state-format.js";
import { checkGuestMemory, openGuestMemory } from "./guest-memory-binding.js";

/** Wall-clock timebase for H_XIRR_X: the POWER timebase runs at 512 MHz. */
const readTimebase = (): bigint => (process.hrtime.bigint() * 512n) / 1000n;

/** Opens the record's guest RAM and the model over it: a new controller, or the imported one. */
export function openEmulatedBackend(record: ControllerRecord, opening: BackendOpening): EmulatedBackend {
  const memory = openGuestMemory(
    checkGuestMemory(record.guestMemoryPath, BigInt(record.guestMemoryBytes), opening.dataDir),
  );
  try {
    return new EmulatedBackend(
      memory,
      opening.imported ? { imported: opening.imported.state } : record,
      opening.onSignal,
    );
  } catch (error) {
    memory.close();
    throw error;
  }
}

/** The emulated backend: vplane's XIVE/XICS model over the VM's guest RAM. */
export class EmulatedBackend implements ControllerBackend {
  readonly kind = "EMULATED" as const;
  private readonly controller: InterruptController;

  constructor(
    private readonly memory: GuestMemory,
    spec: ControllerSpec | { imported: CheckedControllerState },
    onSignal: SignalSink,
  ) {
    if ("imported" in spec) {
      // A migrated controller, quiesced until resume (xive.md §6 post_load).
      this.controller = InterruptController.importState(memory, { onSignal, readTimebase }, spec.imported);
      return;
    }
    this.controller = new InterruptController(memory, {
      mode: spec.mode,
      nrIrqs: spec.nrIrqs,
      onSignal,
      readTimebase,
    });
    this.controller.setNrServers(spec.nrServers);
  }

  get activeMode(): ActiveMode {
    return this.controller.activeMode;
  }

  get nrServers(): number {
    return this.controller.nrServers;
  }

  get nrIrqs(): number {
    return this.controller.active.mode === "XIVE"
      ? this.controller.active.xive.nrIrqs
      : this.controller.active.xics.ics.offset + this.controller.active.xics.ics.count;
  }

  connectedVcpus(): { vcpuId: number; server: number }[] {
    return this.controller.connectedVcpus();
  }

  sourceCount(): number {
    return this.controller.initialisedSources().length;
  }

  initialisedSources(): { irq: number; lsi: boolean }[] {
    return this.controller.initialisedSources();
  }

  connectVcpu(vcpuId: number, server: number): void {
    this.controller.connectVcpu(vcpuId, server);
  }

  selectMode(mode: ActiveMode): void {
    this.controller.selectMode(mode);
  }

  initSource(irq: number, lsi: boolean, asserted: boolean): void {
    this.controller.initSource(irq, { lsi, asserted });
  }

  configureSource(irq: number, kvmConfig: bigint): number {
    return this.controller.mutableXive("SOURCE_CONFIG").setSourceConfig(irq, kvmConfig);
  }

  restoreSourceConfig(irq: number, kvmConfig: bigint): number {
    return this.controller.mutableXive("SOURCE_CONFIG").restoreSourceConfig(irq, kvmConfig);
  }

  getSource(irq: number): SourceState {
    const source = this.controller.xive("GET_SOURCE_CONFIG").source(irq);
    if (source === undefined) {
      throw new XiveError({
        code: "NOT_FOUND",
        reason: "SOURCE_NOT_VALID",
        message: `source ${irq} has not been initialised`,
        field: "irq",
      });
    }
    return source;
  }

  configureQueue(server: number, priority: number, eq: KvmXiveEq): void {
    this.controller.mutableXive("EQ_CONFIG").setQueueConfig(server, priority, eq);
  }

  getQueueConfig(server: number, priority: number): { eq: KvmXiveEq; entriesWritten: number } | undefined {
    const xive = this.controller.xive("EQ_CONFIG");
    const eq = xive.getQueueConfig(server, priority);
    if (eq === undefined) return undefined;
    return { eq, entriesWritten: xive.ends!.read((server << 3) | priority).enqueued };
  }

  syncSource(irq: number): void {
    this.controller.xive("SOURCE_SYNC").syncSource(irq);
  }

  syncQueues(): { pages: bigint[]; pageSize: number } {
    return this.pageAddresses(this.controller.xive("EQ_SYNC").eqSync());
  }

  /** Dirty-log page numbers (ascending) as guest-physical addresses, with the page size. */
  private pageAddresses(pages: number[]): { pages: bigint[]; pageSize: number } {
    const pageSize = BigInt(this.memory.pageSize);
    return { pages: pages.map((page) => BigInt(page) * pageSize), pageSize: this.memory.pageSize };
  }

  reset(): void {
    this.controller.mutableXive("RESET").reset();
  }

  getVpState(server: number): [bigint, bigint] {
    return this.controller.xive("VP_STATE", Errno.EPERM).getVpState(server);
  }

  setVpState(server: number, state: [bigint, bigint]): void {
    this.controller.mutableXive("VP_STATE", Errno.EPERM).setVpState(server, state);
  }

  esbAccess(
    irq: number,
    management: boolean,
    offset: number,
    size: number,
    store: boolean,
    value: bigint,
    counts?: TriggerCounts,
  ): bigint {
    const xive = this.controller.mutableXive("ESB access");
    if (!store) return xive.esbLoad(irq, management, offset, size);
    const outcome = xive.esbStore(irq, management, offset, value, size);
    if (outcome !== undefined && counts !== undefined) countOutcome(outcome, counts);
    return 0n;
  }

  timaAccess(server: number, offset: number, size: number, store: boolean, value: bigint): bigint {
    const xive = this.controller.mutableXive("TIMA access");
    if (!store) return xive.timaLoad(server, offset, size);
    xive.timaStore(server, offset, size, value);
    return 0n;
  }

  trigger(irqs: readonly number[], counts: TriggerCounts): void {
    const controller = this.controller;
    for (let i = 0; i < irqs.length; i++) countOutcome(controller.trigger(irqs[i]!), counts);
  }

  setLsiLevel(irq: number, asserted: boolean, counts?: TriggerCounts): void {
    const outcome = this.controller.setIrq(irq, asserted);
    // A deassert only lowers the line: no trigger to count.
    if (asserted && counts !== undefined) countOutcome(outcome, counts);
  }

  hcall(server: number, opcode: number, args: readonly bigint[]): HcallResult {
    return this.controller.hcall(server, opcode, args);
  }

  hcallUndo(opcode: number, args: readonly bigint[]): (() => void) | undefined {
    return this.controller.hcallUndo(opcode, args);
  }

  requestedEnds(): ReadonlyMap<number, number> {
    const active = this.controller.active;
    return active.mode === "XIVE" ? active.xive.requestedEnds.live(active.xive.sources) : new Map();
  }

  rtas(
    call: RtasCallName,
    irq: number,
    server: number,
    priority: number,
  ): { status: number; server: number; priority: number } {
    const xics = this.controller.mutableXics(`ibm,${call.toLowerCase().replace("_", "-")}`);
    switch (call) {
      case "SET_XIVE":
        return { status: xics.setXive(irq, server, priority), server: 0, priority: 0 };
      case "GET_XIVE": {
        const [status, s, p] = xics.getXive(irq);
        return { status, server: s, priority: p };
      }
      case "INT_OFF":
        return { status: xics.intOff(irq), server: 0, priority: 0 };
      case "INT_ON":
        return { status: xics.intOn(irq), server: 0, priority: 0 };
    }
  }

  dump(): string {
    return dumpController(this.controller);
  }

  get quiesced(): boolean {
    return this.controller.quiesced;
  }

  quiesce(): { pages: bigint[]; pageSize: number } {
    return this.pageAddresses(this.controller.quiesce());
  }

  exportState(): ExportedState {
    return this.exported(this.controller.exportState());
  }

  private exported(payload: Uint8Array): ExportedState {
    return {
      kind: this.controller.activeMode === "XIVE" ? "xive" : "xics",
      formatVersion: CONTROLLER_STATE_FORMAT_VERSION,
      payload,
    };
  }

  resume(): void {
    this.controller.resume();
    this.controller.endTracking();
  }

  /** Pre-copy (issue 14): the model diffs its state against what the last read handed out. */
  readonly preCopy: ControllerPreCopy = {
    read: (restart) => {
      const delta = this.controller.readChanges(restart);
      return delta && this.exported(encodeControllerDelta(delta));
    },
    pendingBytes: () => {
      const changes = this.controller.pendingChanges();
      const bytes = changes ? controllerDeltaSize(changes) : 0;
      return this.controller.tracking ? { initial: 0, dirty: bytes } : { initial: bytes, dirty: 0 };
    },
    tracking: () => this.controller.tracking,
    end: () => this.controller.endTracking(),
  };

  applyStopDelta(delta: ControllerDelta): boolean {
    return this.controller.applyStopDelta(delta);
  }

  close(): void {
    this.memory.close();
  }
}

/** Adds the model's outcome of one trigger to `counts`. */
function countOutcome(outcome: TriggerOutcomeValue, counts: TriggerCounts): void {
  switch (outcome) {
    case TriggerOutcome.DELIVERED:
      counts.delivered++;
      break;
    case TriggerOutcome.COALESCED:
    case TriggerOutcome.END_COALESCED:
      counts.coalesced++;
      break;
    case TriggerOutcome.MASKED:
      counts.masked++;
      break;
    default:
      counts.dropped++;
  }
}
