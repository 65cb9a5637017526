import type { GuestMemory } from "@vplane/guest-memory";
import { ControllerChanges, type ControllerView } from "./device-state/controller-changes.js";
import type { ControllerDelta } from "./device-state/controller-delta.js";
import { checkXicsStopDelta, checkXiveStopDelta } from "./device-state/check-stop-delta.js";
import { listGrowth } from "./device-state/list-growth.js";
import type { ControllerHeader, ControllerState } from "./device-state/controller-state.js";
import {
  decodeControllerState,
  type CheckedControllerState,
} from "./device-state/decode-controller-state.js";
import { encodeControllerState } from "./device-state/encode-controller-state.js";
import type { ActiveMode, ControllerMode } from "./controller-mode.js";
import { Errno } from "@vplane/model-kit";
import { PseriesIrq } from "./pseries-layout.js";
import { HcallReturn, isXicsHcall, isXiveHcall, type HcallResult } from "./hcall-codes.js";
import { hcallUndo } from "./hcall-undo.js";
import type { InKernelXive } from "./in-kernel-xive.js";
import { SpaprXiveHcalls } from "./spapr-hcalls.js";
import type { SignalSink } from "./thread-context.js";
import { XicsDevice } from "./xics/xics-device.js";
import { DEFAULT_MAX_VCPUS, DEFAULT_MAX_VCPU_IDS } from "./nr-servers.js";
import { XiveDevice, type XiveDeviceOptions } from "./xive-device.js";
import { VcpuRegistry, vcpuNotConnected } from "./vcpu-registry.js";
import { XiveError, kvmError } from "./xive-error.js";
import { TriggerOutcome, type TriggerOutcomeValue } from "./xive-router.js";

export interface InterruptControllerOptions extends Omit<XiveDeviceOptions, "onSignal"> {
  mode: ControllerMode;
  /** vCPU exception line changes, whichever device is active. */
  onSignal?: SignalSink;
  /** H_XIRR_X's timebase (XICS). */
  readTimebase?: () => bigint;
}

/** What a migrated controller takes from its new host rather than from the exported state. */
export type ImportedControllerOptions = Pick<InterruptControllerOptions, "onSignal" | "readTimebase">;

/** The active device, tagged by mode. */
export type ActiveDevice =
  { mode: "XIVE"; xive: XiveDevice; hcalls: SpaprXiveHcalls } | { mode: "XICS"; xics: XicsDevice };

/**
 * One VM's interrupt controller in XIVE, XICS or DUAL mode. In DUAL mode the guest chooses at
 * CAS and the controller is destroyed and re-created in the chosen mode with nothing of the
 * old one left: only the machine's configuration (NR_SERVERS, connected vCPUs, initialised
 * sources and their MSI/LSI kind) is applied again, as QEMU reconnects a new KVM device.
 */
export class InterruptController {
  readonly mode: ControllerMode;
  private device: ActiveDevice;
  private nrServersSetting: number | undefined;
  private readonly vcpus = new VcpuRegistry();
  private readonly sourceKinds = new Map<number, boolean>();
  private readonly signal: SignalSink;
  /** Bumped when sourceKinds / vcpus change (pre-copy compares the numbers, not the lists). */
  private sourceKindsVersion = 0;
  private vcpusVersion = 0;
  /** Pre-copy: what the last read handed out (readChanges). */
  private readonly preCopy = new ControllerChanges();
  /** The pages the current stop reported (quiesce), until resume. */
  private stopPages: number[] | undefined;

  constructor(
    readonly memory: GuestMemory,
    private readonly options: InterruptControllerOptions,
  ) {
    this.mode = options.mode;
    this.signal = options.onSignal ?? (() => undefined);
    // DUAL presents XICS until the guest selects XIVE at CAS.
    this.device = this.build(options.mode === "XIVE" ? "XIVE" : "XICS", false);
  }

  get activeMode(): ActiveMode {
    return this.device.mode;
  }

  get active(): ActiveDevice {
    return this.device;
  }

  /**
   * The XIVE device, or FAILED_PRECONDITION with `errno` (the KVM XIVE device does not exist in
   * XICS mode; VP_STATE answers EPERM there, xive.md §1.6).
   */
  xive(operation: string, errno: number = Errno.ENODEV): XiveDevice {
    if (this.device.mode === "XIVE") return this.device.xive;
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "XIVE_NOT_ACTIVE",
      message: `${operation} needs the XIVE controller, but XICS is active`,
      errno,
    });
  }

  /** The XIVE device for an operation that changes it: also FAILED_PRECONDITION while quiesced. */
  mutableXive(operation: string, errno: number = Errno.ENODEV): XiveDevice {
    this.assertRunning(operation);
    return this.xive(operation, errno);
  }

  /** The XICS device for an operation that changes it: also FAILED_PRECONDITION while quiesced. */
  mutableXics(operation: string): XicsDevice {
    this.assertRunning(operation);
    return this.xics(operation);
  }

  xics(operation: string): XicsDevice {
    if (this.device.mode === "XICS") return this.device.xics;
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "XICS_NOT_ACTIVE",
      message: `${operation} needs the XICS controller, but XIVE is active`,
      errno: Errno.ENODEV,
    });
  }

  get nrServers(): number {
    return this.device.mode === "XIVE" ? this.device.xive.nrServers : this.device.xics.nrServers;
  }

  connectedVcpus(): { vcpuId: number; server: number }[] {
    return this.vcpus.entries();
  }

  /** Initialised sources and whether each is an LSI, ascending. */
  initialisedSources(): { irq: number; lsi: boolean }[] {
    return [...this.sourceKinds.entries()].sort((a, b) => a[0] - b[0]).map(([irq, lsi]) => ({ irq, lsi }));
  }

  /** CTRL/NR_SERVERS (xive.md §1.2); in XICS mode it is kept for a later switch to XIVE. */
  setNrServers(value: number): void {
    this.assertRunning("setNrServers");
    if (this.device.mode === "XIVE") this.device.xive.setNrServers(value);
    else this.device.xics.setNrServers(value, this.maxVcpus, this.options.maxVcpuIds ?? DEFAULT_MAX_VCPU_IDS);
    this.nrServersSetting = value;
  }

  private get maxVcpus(): number {
    return this.options.maxVcpus ?? DEFAULT_MAX_VCPUS;
  }

  connectVcpu(vcpuId: number, server: number = vcpuId): void {
    this.assertRunning("connectVcpu");
    if (this.device.mode === "XIVE") this.device.xive.connectVcpu(vcpuId, server);
    else this.device.xics.connectVcpu(vcpuId, server);
    this.vcpus.add(vcpuId, server, false);
    this.vcpusVersion++;
  }

  /** Initialises a source (KVM SOURCE in XIVE mode; an ICS claim in XICS mode, device IRQs only). */
  initSource(irq: number, kind: { lsi?: boolean; asserted?: boolean } = {}): void {
    this.assertRunning("initSource");
    if (this.device.mode === "XIVE") this.device.xive.initSource(irq, kind);
    else if (this.device.xics.ics.owns(irq)) this.device.xics.claim(irq, kind.lsi ?? false);
    else if (!(Number.isInteger(irq) && irq >= 0 && irq < this.device.xics.ics.offset)) {
      throw kvmError(
        Errno.E2BIG,
        "OUT_OF_RANGE",
        "SOURCE_OUT_OF_RANGE",
        `source ${irq} is out of range`,
        "irq",
      );
    }
    const before = this.sourceKinds.get(irq);
    const lsi = (before ?? false) || (kind.lsi ?? false);
    if (before === lsi) return;
    this.sourceKinds.set(irq, lsi);
    this.sourceKindsVersion++;
  }

  /**
   * CAS: the guest selects XIVE exploitation or XICS (xive.md §2 OV5_XIVE_EXPLOIT). A mode the
   * controller does not offer is refused (QEMU stops such a guest); in DUAL mode a change
   * re-creates the controller.
   */
  selectMode(mode: ActiveMode): void {
    this.assertRunning("selectMode");
    if (this.mode !== "DUAL" && mode !== this.mode) {
      throw new XiveError({
        code: "FAILED_PRECONDITION",
        reason: "MODE_UNAVAILABLE",
        message: `the guest requested ${mode}, but the controller was created in ${this.mode} mode`,
      });
    }
    if (mode !== this.device.mode) {
      this.lowerAll();
      this.device = this.build(mode, true);
    }
    if (this.device.mode === "XIVE") this.device.xive.xiveSelected = true;
  }

  /** Lowers every raised line of the device being destroyed. */
  private lowerAll(): void {
    for (const server of this.vcpus.connectedServers()) {
      const raised =
        this.device.mode === "XIVE"
          ? this.device.xive.context(server)?.raised
          : this.device.xics.icp(server)?.raised;
      if (raised) this.signal(server, false);
    }
  }

  private xiveOptions(): XiveDeviceOptions {
    return { ...this.options, onSignal: (server, raised) => this.signal(server, raised) };
  }

  private build(mode: ActiveMode, replay: boolean): ActiveDevice {
    let device: ActiveDevice;
    if (mode === "XIVE") {
      const xive = new XiveDevice(this.memory, this.xiveOptions());
      device = { mode, xive, hcalls: new SpaprXiveHcalls(xive) };
      if (replay && this.nrServersSetting !== undefined) xive.setNrServers(this.nrServersSetting);
    } else {
      const xics = new XicsDevice({
        nrIrqs: this.options.nrIrqs,
        nrServers: Math.min(this.nrServersSetting ?? this.maxVcpus, this.maxVcpus),
        onSignal: (server, raised) => this.signal(server, raised),
        readTimebase: this.options.readTimebase,
      });
      device = { mode, xics };
    }
    if (!replay) return device;
    for (const { vcpuId, server } of this.vcpus.entries()) {
      if (device.mode === "XIVE") device.xive.connectVcpu(vcpuId, server);
      else device.xics.connectVcpu(vcpuId, server);
    }
    for (const [irq, lsi] of this.sourceKinds) {
      if (device.mode === "XIVE") device.xive.initSource(irq, { lsi });
      else if (device.xics.ics.owns(irq)) device.xics.claim(irq, lsi);
    }
    return device;
  }

  /**
   * A hypercall by the vCPU with `server`. H_INT_* answer H_FUNCTION unless XIVE is active and
   * selected; XICS hcalls answer H_FUNCTION unless XICS is active; unknown opcodes H_FUNCTION.
   * With `kernel`, the H_INT_* calls are made as QEMU makes them with the KVM XIVE device (the
   * native backend passes the host kernel's); without, as QEMU's emulated device answers them.
   */
  hcall(server: number, opcode: number, args: readonly bigint[], kernel?: InKernelXive): HcallResult {
    if (!this.vcpus.hasServer(server)) {
      throw vcpuNotConnected(server);
    }
    this.assertRunning("a hypercall");
    if (isXiveHcall(opcode) && this.device.mode === "XIVE")
      return this.device.hcalls.call(opcode, args, kernel);
    if (isXicsHcall(opcode) && this.device.mode === "XICS")
      return this.device.xics.hcall(server, opcode, args);
    return { returnCode: HcallReturn.H_FUNCTION, outputs: [] };
  }

  /**
   * What takes back the hypercall about to be made with these arguments, once it succeeded
   * (hcall-undo.ts): H_INT_SET_SOURCE_CONFIG and H_INT_SET_QUEUE_CONFIG while XIVE is active;
   * undefined for the others.
   */
  hcallUndo(opcode: number, args: readonly bigint[], kernel?: InKernelXive): (() => void) | undefined {
    return this.device.mode === "XIVE" ? hcallUndo(this.device.xive, opcode, args, kernel) : undefined;
  }

  // ---------------------------------------------------------------- migration (xive.md §6)

  /** Quiesced for migration: triggers are latched, guest and configuration calls refused. */
  get quiesced(): boolean {
    return this.device.mode === "XIVE" ? this.device.xive.quiesced : this.device.xics.stopped !== undefined;
  }

  /** FAILED_PRECONDITION while quiesced: the guest is stopped and the configuration frozen. */
  assertRunning(operation: string): void {
    if (!this.quiesced) return;
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "CONTROLLER_QUIESCED",
      message: `${operation} is refused while the controller is quiesced for migration`,
    });
  }

  /**
   * Stops the controller for migration (xive.md §6): XIVE latches its sources, XICS logs its
   * triggers. Idempotent. Returns the dirty-log page numbers (ascending) of the guest pages it
   * wrote since the last stop's report: the queue pages it wrote event entries to (none for XICS,
   * whose state is all in the controller). Every write goes through the guest memory's dirty log,
   * as QEMU's emulated XIVE writes queue entries with dma_memory_write, so a page written while
   * the VM ran and never reported is in it; not KVM's EQ_SYNC, which marks every queue page
   * because the hardware writes them unseen (the native backend keeps that). The same pages until
   * resume, which starts the next report (a migration after it copies RAM again).
   */
  quiesce(): number[] {
    if (this.device.mode === "XIVE") this.device.xive.quiesce();
    else this.device.xics.quiesce();
    this.stopPages ??= this.memory.takeDirtyPages();
    return this.stopPages;
  }

  /** Runs again, delivering what arrived while quiesced (xive.md §6 resume). No-op when running. */
  resume(): void {
    if (this.device.mode === "XIVE") this.device.xive.resume();
    else this.device.xics.resume();
    this.stopPages = undefined;
  }

  /**
   * The controller's state in the versioned binary format (device-state/controller-state.ts).
   * FAILED_PRECONDITION unless quiesced, so that the state cannot move while it is read.
   */
  exportState(): Uint8Array {
    if (!this.quiesced) {
      throw new XiveError({
        code: "FAILED_PRECONDITION",
        reason: "CONTROLLER_NOT_QUIESCED",
        message: "the controller state can only be exported while it is quiesced",
      });
    }
    return encodeControllerState(this.captureState());
  }

  /**
   * The state as exported now; a running controller's as a quiesce now would leave it (xive.md
   * §6 latch: a XIVE source's PQ saved and, unless off, set to 10; no stopped trigger yet), so
   * that what pre-copy moves while the VM runs is what the stop-and-copy would export for every
   * record that does not change in between.
   */
  private captureState(): ControllerState {
    const active = this.device;
    const xive = active.mode === "XIVE" ? active.xive.captureState() : undefined;
    const { xiveSelected: _, ...scalars } = this.header();
    return {
      ...scalars,
      vcpus: this.vcpus.entries(),
      machineSources: this.initialisedSources(),
      stoppedTriggers: this.stoppedTriggers(),
      xive,
      xics: active.mode === "XICS" ? active.xics.captureState() : undefined,
    };
  }

  private header(): ControllerHeader {
    const active = this.device;
    return {
      mode: this.mode,
      activeMode: active.mode,
      nrIrqs: this.options.nrIrqs ?? PseriesIrq.DEFAULT_NR_IRQS,
      nrServersSetting: this.nrServersSetting,
      maxVcpus: this.maxVcpus,
      maxVcpuIds: this.options.maxVcpuIds ?? DEFAULT_MAX_VCPU_IDS,
      hostPageShift: this.options.hostPageShift ?? 16,
      storeEoi: this.options.storeEoi ?? false,
      hvPriority: this.options.hvPriority ?? 7,
      guestMemoryBytes: this.memory.size,
      xiveSelected: active.mode === "XIVE" && active.xive.xiveSelected,
    };
  }

  private stoppedTriggers(): number[] {
    const active = this.device;
    const stopped = active.mode === "XIVE" ? active.xive.sourceEngine.stopped?.triggers : active.xics.stopped;
    return stopped ? [...stopped.order] : [];
  }

  /** What the pre-copy tracking reads (ControllerChanges). */
  private view(): ControllerView {
    const active = this.device;
    return {
      header: this.header(),
      vcpusVersion: this.vcpusVersion,
      vcpus: () => this.vcpus.entries(),
      machineSourcesVersion: this.sourceKindsVersion,
      machineSources: () => this.initialisedSources(),
      stoppedTriggers: this.stoppedTriggers(),
      active:
        active.mode === "XIVE"
          ? { mode: "XIVE", device: active.xive, parts: active.xive.savedParts() }
          : { mode: "XICS", device: active.xics },
    };
  }

  /**
   * Pre-copy (issue 14): what changed in the state since the last read, as captureState gives
   * it (everything when `restart`, or on the first read); undefined when nothing did. The
   * controller keeps a copy of what it handed out to compare with (ControllerChanges), and
   * nothing on its hot paths.
   */
  readChanges(restart: boolean): ControllerDelta | undefined {
    return this.preCopy.read(this.view(), restart, true);
  }

  /** What readChanges would hand out now, without taking it. */
  pendingChanges(): ControllerDelta | undefined {
    return this.preCopy.read(this.view(), false, false);
  }

  /** A pre-copy read started tracking and nothing ended it. */
  get tracking(): boolean {
    return this.preCopy.tracking;
  }

  /** Ends the pre-copy tracking (the migration resumed here or released the controller). */
  endTracking(): void {
    this.preCopy.end();
  }

  /**
   * Applies a stop-and-copy delta in place to this controller, quiesced and imported from the
   * state the delta follows (issue 14: the destination's finish costs what changed), vCPUs
   * connected and sources initialised after the last iteration included. False, nothing done,
   * for a delta of another header, or whose lists drop or move a vCPU or drop a source
   * (listGrowth: the caller merges the delta and builds anew). Every check is made first
   * (check-stop-delta.ts): a refusal is STATE_* and changes nothing.
   */
  applyStopDelta(delta: ControllerDelta): boolean {
    const active = this.device;
    if (!this.quiesced) return false;
    const header = this.header();
    for (const key of Object.keys(header) as (keyof ControllerHeader)[])
      if (header[key] !== delta.header[key]) return false;
    const growth = listGrowth(
      {
        vcpuCount: this.vcpus.size,
        serverOf: (vcpuId) => this.vcpus.serverOf(vcpuId),
        sourceCount: this.sourceKinds.size,
        lsiOf: (irq) => this.sourceKinds.get(irq),
      },
      delta,
    );
    if (growth === undefined) return false;
    if (active.mode === "XICS") {
      if (delta.xics === undefined) return false;
      checkXicsStopDelta(active.xics, delta, growth);
      active.xics.applyChanges(delta.xics, delta.stoppedTriggers, growth);
    } else {
      if (delta.xive === undefined) return false;
      checkXiveStopDelta(active.xive, this.memory.size, delta, growth);
      active.xive.applyChanges(delta.xive, delta.stoppedTriggers, growth);
    }
    for (const { vcpuId, server } of growth.vcpus) this.vcpus.add(vcpuId, server, false);
    for (const { irq, lsi } of growth.sources) this.sourceKinds.set(irq, lsi);
    if (growth.vcpus.length > 0) this.vcpusVersion++;
    if (growth.sources.length > 0) this.sourceKindsVersion++;
    return true;
  }

  /**
   * Builds a controller from an exported state (or one decodeControllerState already checked) on
   * `memory` (the guest RAM, the same bytes as on the source), quiesced until resume(). Every
   * check is made before anything is built; a RAM of another size is INVALID_ARGUMENT. Then, in QEMU's
   * post_load order (xive.md §6): the machine configuration (NR_SERVERS, mode, vCPUs, sources),
   * the queues, the sources' state and targeting, and the vCPUs' presenter state.
   */
  static importState(
    memory: GuestMemory,
    options: ImportedControllerOptions,
    exported: Uint8Array | CheckedControllerState,
  ): InterruptController {
    const state = exported instanceof Uint8Array ? decodeControllerState(exported) : exported;
    if (state.guestMemoryBytes !== memory.size) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "GUEST_MEMORY_SIZE_MISMATCH",
        message: `the state was exported with ${state.guestMemoryBytes} bytes of guest RAM, this RAM has ${memory.size}`,
        field: "guest_memory_bytes",
      });
    }
    const controller = new InterruptController(memory, {
      ...options,
      mode: state.mode,
      nrIrqs: state.nrIrqs,
      maxVcpus: state.maxVcpus,
      maxVcpuIds: state.maxVcpuIds,
      hostPageShift: state.hostPageShift,
      storeEoi: state.storeEoi,
      hvPriority: state.hvPriority,
    });
    if (state.nrServersSetting !== undefined) controller.setNrServers(state.nrServersSetting);
    if (state.activeMode !== controller.activeMode) controller.selectMode(state.activeMode);
    for (const { vcpuId, server } of state.vcpus) controller.connectVcpu(vcpuId, server);
    for (const { irq, lsi } of state.machineSources) controller.initSource(irq, { lsi });
    const active = controller.device;
    if (active.mode === "XIVE") active.xive.restoreState(state.xive!, state.stoppedTriggers);
    else active.xics.restoreState(state.xics!, state.stoppedTriggers);
    return controller;
  }

  trigger(irq: number): TriggerOutcomeValue {
    return this.device.mode === "XIVE" ? this.device.xive.trigger(irq) : this.device.xics.trigger(irq);
  }

  setIrq(irq: number, level: boolean): TriggerOutcomeValue {
    if (this.device.mode === "XIVE") return this.device.xive.setIrq(irq, level);
    return this.device.xics.setIrq(irq, level);
  }

  /** Triggers each source of `irqs` in order; returns how many were delivered to a vCPU. */
  triggerMany(irqs: ArrayLike<number>): number {
    let delivered = 0;
    for (let i = 0; i < irqs.length; i++)
      if (this.trigger(irqs[i]!) === TriggerOutcome.DELIVERED) delivered++;
    return delivered;
  }
}
