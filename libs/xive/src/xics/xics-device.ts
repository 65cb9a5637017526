import { Errno } from "@vplane/model-kit";
import { HcallOpcode, HcallReturn, type HcallResult } from "../hcall-codes.js";
import { PseriesIrq } from "../pseries-layout.js";
import type { SignalSink } from "../thread-context.js";
import type { XicsState } from "../device-state/controller-state.js";
import type { ControllerDelta } from "../device-state/controller-delta.js";
import type { ListGrowth } from "../device-state/list-growth.js";
import { applyXicsChanges, applyXicsState, captureXicsState } from "../device-state/xics-state.js";
import { checkNrServers } from "../nr-servers.js";
import { VcpuRegistry, vcpuNotConnected } from "../vcpu-registry.js";
import { kvmError } from "../xive-error.js";
import { TriggerOutcome, type TriggerOutcomeValue } from "../xive-router.js";
import { StoppedTriggers, stoppedTriggerLimit } from "../stopped-triggers.js";
import { Icp } from "./icp.js";
import { Ics, XICS_STATUS_ASSERTED } from "./ics.js";

/** RTAS return codes of the ICS calls. */
export const RtasReturn = { SUCCESS: 0, HW_ERROR: -1, PARAM_ERROR: -3 } as const;

export interface XicsDeviceOptions {
  /** The LISN space (default 0x2000); the ICS covers [0x1000, nrIrqs). */
  nrIrqs?: number;
  nrServers?: number;
  onSignal?: SignalSink;
  /** The timebase H_XIRR_X returns in R5 (default: 0; a service passes the host's). */
  readTimebase?: () => bigint;
}

/**
 * The legacy XICS controller: one ICP per vCPU and one ICS over the device interrupts
 * (QEMU's xics.c with the sPAPR hcalls and RTAS calls).
 */
export class XicsDevice {
  readonly ics: Ics;
  /** Set while quiesced for migration: the triggers to replay on resume (see quiesce()). */
  stopped: StoppedTriggers | undefined;
  private servers: number;
  private readonly icps: (Icp | undefined)[] = [];
  private readonly vcpus = new VcpuRegistry();
  private readonly signal: SignalSink;
  private readonly readTimebase: () => bigint;

  constructor(options: XicsDeviceOptions = {}) {
    const nrIrqs = options.nrIrqs ?? PseriesIrq.DEFAULT_NR_IRQS;
    this.servers = options.nrServers ?? 2048;
    this.signal = options.onSignal ?? (() => undefined);
    this.readTimebase = options.readTimebase ?? (() => 0n);
    this.ics = new Ics(PseriesIrq.XIRQ_BASE, Math.max(0, nrIrqs - PseriesIrq.XIRQ_BASE), (s) => this.icp(s));
  }

  get nrServers(): number {
    return this.servers;
  }

  /** The server count before any vCPU connects (kept in step with the XIVE NR_SERVERS rules). */
  setNrServers(value: number, maxVcpus: number, maxVcpuIds: number): void {
    this.servers = checkNrServers(value, maxVcpus, maxVcpuIds, this.vcpus.size > 0);
  }

  icp(server: number): Icp | undefined {
    return Number.isInteger(server) && server >= 0 ? this.icps[server] : undefined;
  }

  connectedServers(): number[] {
    return this.vcpus.connectedServers();
  }

  /** The ICPs by server (holes where no vCPU is connected): pre-copy reads them without a sort. */
  get icpsByServer(): readonly (Icp | undefined)[] {
    return this.icps;
  }

  /** The quiesced controller's state in the saved format (QEMU's ICS and ICP vmstate). */
  captureState(): XicsState {
    return captureXicsState(this.ics, this.connectedIcps());
  }

  /**
   * Applies a checked saved state to this fresh controller, whose vCPUs are connected and
   * sources claimed; it is left quiesced with `stoppedTriggers`.
   */
  restoreState(state: XicsState, stoppedTriggers: readonly number[]): void {
    applyXicsState(this.ics, this.connectedIcps(), state);
    this.stopped = StoppedTriggers.from(stoppedTriggers);
  }

  /**
   * Applies a stop delta's records (checked against this controller, check-stop-delta.ts) to this
   * quiesced controller in place, with the triggers logged while the source was stopped, after
   * connecting the vCPUs of the lists' `growth` (each new ICP then takes its record; a source
   * the growth claims takes its flags from its record, as restoreState after claim()).
   */
  applyChanges(
    changes: NonNullable<ControllerDelta["xics"]>,
    stoppedTriggers: readonly number[],
    growth?: ListGrowth,
  ): void {
    for (const { vcpuId, server } of growth?.vcpus ?? []) this.connectVcpu(vcpuId, server);
    applyXicsChanges(this.ics, (server) => this.icps[server]!, changes.sources, changes.icps.changed);
    this.stopped = StoppedTriggers.from(stoppedTriggers);
  }

  private connectedIcps(): Icp[] {
    return this.connectedServers().map((server) => this.icps[server]!);
  }

  /** Connects a vCPU's ICP: EBUSY if it has one, EINVAL for a server out of range, EEXIST if taken. */
  connectVcpu(vcpuId: number, server: number = vcpuId): void {
    this.vcpus.checkConnect(vcpuId, server, this.servers);
    this.vcpus.add(vcpuId, server, this.icps[server] !== undefined);
    this.icps[server] = new Icp(server, this.ics, this.signal);
  }

  /** Claims a device interrupt as MSI or LSI; numbers outside the ICS are refused. */
  claim(nr: number, lsi: boolean): void {
    if (!this.ics.owns(nr)) {
      throw kvmError(
        Errno.EINVAL,
        "OUT_OF_RANGE",
        "SOURCE_OUT_OF_RANGE",
        `XICS sources are ${this.ics.offset}..${this.ics.offset + this.ics.count - 1}, got ${nr}`,
        "irq",
      );
    }
    this.ics.claim(nr, lsi);
  }

  /** The device side: an MSI fires, an LSI's level changes. */
  setIrq(nr: number, level: boolean): TriggerOutcomeValue {
    if (!this.ics.isClaimed(nr)) return TriggerOutcome.NO_SOURCE;
    if (this.stopped !== undefined) return this.latchSetIrq(this.stopped, nr, level);
    this.ics.setIrq(nr, level);
    const icp = this.icp(this.ics.server[nr - this.ics.offset]!);
    return icp !== undefined && icp.xisr === nr ? TriggerOutcome.DELIVERED : TriggerOutcome.COALESCED;
  }

  trigger(nr: number): TriggerOutcomeValue {
    return this.setIrq(nr, true);
  }

  /**
   * Stops the controller for migration: until resume(), a source's trigger is logged instead of
   * sent to an ICP, and an LSI's level is kept in its ASSERTED status without a resend. XICS has
   * no PQ bits to latch with; the log plays their part (xive.md §6 "XICS state likewise").
   * Idempotent.
   */
  quiesce(): void {
    this.stopped ??= new StoppedTriggers();
  }

  /**
   * Runs again: the logged triggers are sent in arrival order, as they would have been, and each
   * logged LSI is then left at the level it has now. A running controller is left as it is.
   */
  resume(): void {
    const stopped = this.stopped;
    if (stopped === undefined) return;
    this.stopped = undefined;
    const levels = new Map<number, number>();
    for (const nr of stopped.order) {
      const srcno = nr - this.ics.offset;
      if (this.ics.isLsi(srcno)) levels.set(srcno, this.ics.status[srcno]! & XICS_STATUS_ASSERTED);
    }
    for (const nr of stopped.order) this.ics.setIrq(nr, true);
    for (const [srcno, asserted] of levels) {
      this.ics.status[srcno] = (this.ics.status[srcno]! & ~XICS_STATUS_ASSERTED) | asserted;
    }
  }

  private latchSetIrq(stopped: StoppedTriggers, nr: number, level: boolean): TriggerOutcomeValue {
    const srcno = nr - this.ics.offset;
    const lsi = this.ics.isLsi(srcno);
    if (lsi) {
      const status = this.ics.status[srcno]!;
      this.ics.status[srcno] = level ? status | XICS_STATUS_ASSERTED : status & ~XICS_STATUS_ASSERTED;
    }
    if (level) stopped.record(nr, stoppedTriggerLimit(lsi));
    return TriggerOutcome.COALESCED;
  }

  /** XICS hypercalls made by the vCPU with `server` (H_CPPR, H_EOI, H_XIRR, H_XIRR_X, H_IPI, H_IPOLL). */
  hcall(server: number, opcode: number, args: readonly bigint[]): HcallResult {
    const self = this.icp(server);
    const arg = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
    if (self === undefined) {
      throw vcpuNotConnected(server);
    }
    const ok = (...outputs: bigint[]): HcallResult => ({ returnCode: HcallReturn.H_SUCCESS, outputs });
    switch (opcode) {
      case HcallOpcode.H_CPPR:
        self.setCppr(Number(arg(0) & 0xffn));
        return ok();
      case HcallOpcode.H_EOI:
        self.eoi(Number(arg(0) & 0xffff_ffffn));
        return ok();
      case HcallOpcode.H_XIRR:
        return ok(BigInt(self.accept()));
      case HcallOpcode.H_XIRR_X:
        return ok(BigInt(self.accept()), BigInt.asUintN(64, this.readTimebase()));
      case HcallOpcode.H_IPI: {
        const target = this.icp(Number(arg(0) & 0xffff_ffffn));
        if (target === undefined) return { returnCode: HcallReturn.H_PARAMETER, outputs: [] };
        target.setMfrr(Number(arg(1) & 0xffn));
        return ok();
      }
      case HcallOpcode.H_IPOLL: {
        const target = this.icp(Number(arg(0) & 0xffff_ffffn));
        if (target === undefined) return { returnCode: HcallReturn.H_PARAMETER, outputs: [] };
        return ok(BigInt(target.xirr), BigInt(target.mfrr));
      }
      default:
        return { returnCode: HcallReturn.H_FUNCTION, outputs: [] };
    }
  }

  /** ibm,set-xive: PARAM_ERROR for an unknown source or server or a priority above 0xFF. */
  setXive(nr: number, server: number, priority: number): number {
    if (!this.ics.owns(nr) || this.icp(server) === undefined || !(priority >= 0 && priority <= 0xff)) {
      return RtasReturn.PARAM_ERROR;
    }
    this.ics.writeXive(nr, server, priority, priority);
    return RtasReturn.SUCCESS;
  }

  /** ibm,get-xive: [status, server, priority]. */
  getXive(nr: number): [number, number, number] {
    if (!this.ics.owns(nr)) return [RtasReturn.PARAM_ERROR, 0, 0];
    const state = this.ics.read(nr);
    return [RtasReturn.SUCCESS, state.server, state.priority];
  }

  /** ibm,int-off: priority 0xFF, the old one saved. */
  intOff(nr: number): number {
    if (!this.ics.owns(nr)) return RtasReturn.PARAM_ERROR;
    const state = this.ics.read(nr);
    this.ics.writeXive(nr, state.server, 0xff, state.priority);
    return RtasReturn.SUCCESS;
  }

  /** ibm,int-on: the saved priority back. */
  intOn(nr: number): number {
    if (!this.ics.owns(nr)) return RtasReturn.PARAM_ERROR;
    const state = this.ics.read(nr);
    this.ics.writeXive(nr, state.server, state.savedPriority, state.savedPriority);
    return RtasReturn.SUCCESS;
  }
}
