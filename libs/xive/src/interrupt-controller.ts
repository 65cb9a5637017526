import type { GuestMemory } from "@vplane/guest-memory";
import { Errno } from "./errno.js";
import { HcallReturn, isXicsHcall, isXiveHcall, type HcallResult } from "./hcall-codes.js";
import { SpaprXiveHcalls } from "./spapr-hcalls.js";
import type { SignalSink } from "./thread-context.js";
import { XicsDevice } from "./xics/xics-device.js";
import {
  DEFAULT_MAX_VCPUS,
  DEFAULT_MAX_VCPU_IDS,
  XiveDevice,
  type XiveDeviceOptions,
} from "./xive-device.js";
import { VcpuRegistry, vcpuNotConnected } from "./vcpu-registry.js";
import { XiveError, kvmError } from "./xive-error.js";
import { TriggerOutcome, type TriggerOutcomeValue } from "./xive-router.js";

export type ControllerMode = "XIVE" | "XICS" | "DUAL";
export type ActiveMode = "XIVE" | "XICS";

export interface InterruptControllerOptions extends Omit<XiveDeviceOptions, "onSignal"> {
  mode: ControllerMode;
  /** vCPU exception line changes, whichever device is active. */
  onSignal?: SignalSink;
  /** H_XIRR_X's timebase (XICS). */
  readTimebase?: () => bigint;
}

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
    if (this.device.mode === "XIVE") this.device.xive.setNrServers(value);
    else this.device.xics.setNrServers(value, this.maxVcpus, this.options.maxVcpuIds ?? DEFAULT_MAX_VCPU_IDS);
    this.nrServersSetting = value;
  }

  private get maxVcpus(): number {
    return this.options.maxVcpus ?? DEFAULT_MAX_VCPUS;
  }

  connectVcpu(vcpuId: number, server: number = vcpuId): void {
    if (this.device.mode === "XIVE") this.device.xive.connectVcpu(vcpuId, server);
    else this.device.xics.connectVcpu(vcpuId, server);
    this.vcpus.add(vcpuId, server, false);
  }

  /** Initialises a source (KVM SOURCE in XIVE mode; an ICS claim in XICS mode, device IRQs only). */
  initSource(irq: number, kind: { lsi?: boolean; asserted?: boolean } = {}): void {
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
    this.sourceKinds.set(irq, (this.sourceKinds.get(irq) ?? false) || (kind.lsi ?? false));
  }

  /**
   * CAS: the guest selects XIVE exploitation or XICS (xive.md §2 OV5_XIVE_EXPLOIT). A mode the
   * controller does not offer is refused (QEMU stops such a guest); in DUAL mode a change
   * re-creates the controller.
   */
  selectMode(mode: ActiveMode): void {
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
   */
  hcall(server: number, opcode: number, args: readonly bigint[]): HcallResult {
    if (!this.vcpus.hasServer(server)) {
      throw vcpuNotConnected(server);
    }
    if (isXiveHcall(opcode) && this.device.mode === "XIVE") return this.device.hcalls.call(opcode, args);
    if (isXicsHcall(opcode) && this.device.mode === "XICS")
      return this.device.xics.hcall(server, opcode, args);
    return { returnCode: HcallReturn.H_FUNCTION, outputs: [] };
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
