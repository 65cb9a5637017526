import type { SignalSink } from "../thread-context.js";

/** XISR of the IPI (the MFRR's interrupt) and the 24-bit XISR / 8-bit CPPR fields of XIRR. */
export const XICS_IPI = 0x2;
export const XISR_MASK = 0x00ff_ffff;
export const CPPR_MASK = 0xff00_0000;

/** What an ICP needs from the source controller: give a rejected interrupt back, EOI, resend. */
export interface IcsPort {
  reject(nr: number): void;
  eoi(nr: number): void;
  resend(): void;
  owns(nr: number): boolean;
}

/**
 * One vCPU's XICS presentation controller (QEMU's ICPState): XIRR = CPPR << 24 | XISR, the
 * pending priority of XISR, and MFRR for IPIs. The exception line follows XISR.
 */
export class Icp {
  xirr = 0;
  pendingPriority = 0xff;
  mfrr = 0xff;
  private line = false;

  constructor(
    readonly server: number,
    private readonly ics: IcsPort,
    private readonly signal: SignalSink,
  ) {}

  get cppr(): number {
    return this.xirr >>> 24;
  }

  get xisr(): number {
    return this.xirr & XISR_MASK;
  }

  get raised(): boolean {
    return this.line;
  }

  private setLine(raised: boolean): void {
    if (this.line === raised) return;
    this.line = raised;
    this.signal(this.server, raised);
  }

  /** An IPI is presented unless something at least as favoured is pending (icp_check_ipi). */
  private checkIpi(): void {
    if (this.xisr && this.pendingPriority <= this.mfrr) return;
    if (this.xisr && this.ics.owns(this.xisr)) this.ics.reject(this.xisr);
    this.xirr = ((this.xirr & ~XISR_MASK) | XICS_IPI) >>> 0;
    this.pendingPriority = this.mfrr;
    this.setLine(true);
  }

  /**
   * Restores a migrated ICP (QEMU's ICP vmstate: XIRR, pending priority, MFRR); the exception
   * line follows XISR, as it does in every transition here.
   */
  restore(xirr: number, pendingPriority: number, mfrr: number): void {
    this.xirr = xirr >>> 0;
    this.pendingPriority = pendingPriority & 0xff;
    this.mfrr = mfrr & 0xff;
    this.setLine(this.xisr !== 0);
  }

  /** icp_resend: the IPI if MFRR beats CPPR, then the sources' rejected interrupts. */
  resend(): void {
    if (this.mfrr < this.cppr) this.checkIpi();
    this.ics.resend();
  }

  /**
   * H_CPPR: a more favoured CPPR rejects a pending interrupt it masks (line lowered); a less
   * favoured one with nothing pending asks for a resend.
   */
  setCppr(cppr: number): void {
    const old = this.cppr;
    this.xirr = ((this.xirr & ~CPPR_MASK) | ((cppr & 0xff) << 24)) >>> 0;
    if (cppr < old) {
      if (this.xisr && cppr <= this.pendingPriority) {
        const oldXisr = this.xisr;
        this.xirr = (this.xirr & ~XISR_MASK) >>> 0;
        this.pendingPriority = 0xff;
        this.setLine(false);
        if (this.ics.owns(oldXisr)) this.ics.reject(oldXisr);
      }
    } else if (!this.xisr) {
      this.resend();
    }
  }

  /** H_IPI: sets MFRR; an MFRR more favoured than CPPR presents the IPI. */
  setMfrr(mfrr: number): void {
    this.mfrr = mfrr & 0xff;
    if (this.mfrr < this.cppr) this.checkIpi();
  }

  /** H_XIRR: returns XIRR and accepts: CPPR takes the pending priority, XISR clears, line lowers. */
  accept(): number {
    const xirr = this.xirr;
    this.setLine(false);
    this.xirr = (this.pendingPriority << 24) >>> 0;
    this.pendingPriority = 0xff;
    return xirr;
  }

  /** H_EOI: restores CPPR from the value, EOIs the source, and resends if nothing is pending. */
  eoi(xirr: number): void {
    this.xirr = ((this.xirr & ~CPPR_MASK) | (xirr & CPPR_MASK)) >>> 0;
    const nr = xirr & XISR_MASK;
    if (this.ics.owns(nr)) this.ics.eoi(nr);
    if (!this.xisr) this.resend();
  }

  /**
   * icp_irq: a source interrupt at `priority` is presented if it beats CPPR and whatever is
   * pending (which is rejected back); otherwise it is rejected.
   */
  deliver(nr: number, priority: number): void {
    if (priority >= this.cppr || (this.xisr && this.pendingPriority <= priority)) {
      this.ics.reject(nr);
      return;
    }
    if (this.xisr && this.ics.owns(this.xisr)) this.ics.reject(this.xisr);
    this.xirr = ((this.xirr & ~XISR_MASK) | (nr & XISR_MASK)) >>> 0;
    this.pendingPriority = priority;
    this.setLine(true);
  }
}
