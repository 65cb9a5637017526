import type { Icp, IcsPort } from "./icp.js";

/** Source status bits (QEMU's XICS_STATUS_*). */
export const XICS_STATUS_ASSERTED = 0x1;
export const XICS_STATUS_SENT = 0x2;
export const XICS_STATUS_REJECTED = 0x4;
export const XICS_STATUS_MASKED_PENDING = 0x8;
/** Source flags: claimed as LSI or MSI. */
export const XICS_FLAGS_LSI = 0x1;
export const XICS_FLAGS_MSI = 0x2;

/** An ICS source as a caller reads it. */
export interface IcsSourceState {
  nr: number;
  lsi: boolean;
  server: number;
  priority: number;
  savedPriority: number;
  status: number;
}

/**
 * The XICS source controller (QEMU's ICSState): per source the server, priority, saved priority
 * (for int-off / int-on) and status; it hands interrupts to ICPs and takes rejects back.
 * Sources are numbered from `offset` (0x1000 on pseries, the same numbers XIVE uses).
 */
export class Ics implements IcsPort {
  readonly server: Uint32Array;
  readonly priority: Uint8Array;
  readonly savedPriority: Uint8Array;
  readonly status: Uint8Array;
  readonly flags: Uint8Array;

  constructor(
    readonly offset: number,
    readonly count: number,
    private readonly icpOf: (server: number) => Icp | undefined,
  ) {
    this.server = new Uint32Array(count);
    this.priority = new Uint8Array(count).fill(0xff);
    this.savedPriority = new Uint8Array(count).fill(0xff);
    this.status = new Uint8Array(count);
    this.flags = new Uint8Array(count);
  }

  owns(nr: number): boolean {
    return nr >= this.offset && nr < this.offset + this.count;
  }

  isLsi(srcno: number): boolean {
    return (this.flags[srcno]! & XICS_FLAGS_LSI) !== 0;
  }

  claim(nr: number, lsi: boolean): void {
    this.flags[nr - this.offset] = lsi ? XICS_FLAGS_LSI : XICS_FLAGS_MSI;
  }

  isClaimed(nr: number): boolean {
    return this.owns(nr) && this.flags[nr - this.offset] !== 0;
  }

  private send(srcno: number): void {
    const icp = this.icpOf(this.server[srcno]!);
    // A server with no ICP cannot take it: the interrupt is rejected and kept for a resend.
    if (icp === undefined) this.reject(srcno + this.offset);
    else icp.deliver(srcno + this.offset, this.priority[srcno]!);
  }

  reject(nr: number): void {
    const srcno = nr - this.offset;
    if (this.flags[srcno]! & XICS_FLAGS_MSI) this.status[srcno]! |= XICS_STATUS_REJECTED;
    else if (this.flags[srcno]! & XICS_FLAGS_LSI) this.status[srcno]! &= ~XICS_STATUS_SENT;
  }

  eoi(nr: number): void {
    const srcno = nr - this.offset;
    if (this.isLsi(srcno)) this.status[srcno]! &= ~XICS_STATUS_SENT;
  }

  private resendMsi(srcno: number): void {
    if (this.status[srcno]! & XICS_STATUS_REJECTED) {
      this.status[srcno]! &= ~XICS_STATUS_REJECTED;
      if (this.priority[srcno] !== 0xff) this.send(srcno);
    }
  }

  private resendLsi(srcno: number): void {
    const status = this.status[srcno]!;
    if (this.priority[srcno] !== 0xff && status & XICS_STATUS_ASSERTED && !(status & XICS_STATUS_SENT)) {
      this.status[srcno] = status | XICS_STATUS_SENT;
      this.send(srcno);
    }
  }

  resend(): void {
    for (let srcno = 0; srcno < this.count; srcno++) {
      if (this.flags[srcno] === 0) continue;
      if (this.isLsi(srcno)) this.resendLsi(srcno);
      else this.resendMsi(srcno);
    }
  }

  /** The source's line (ics_set_irq): MSIs fire on 1 (or wait, masked); LSIs follow the level. */
  setIrq(nr: number, level: boolean): void {
    const srcno = nr - this.offset;
    if (this.isLsi(srcno)) {
      if (level) this.status[srcno]! |= XICS_STATUS_ASSERTED;
      else this.status[srcno]! &= ~XICS_STATUS_ASSERTED;
      this.resendLsi(srcno);
      return;
    }
    if (!level) return;
    if (this.priority[srcno] === 0xff) this.status[srcno]! |= XICS_STATUS_MASKED_PENDING;
    else this.send(srcno);
  }

  /** ics_write_xive: sets server, priority and saved priority, then delivers what was held. */
  writeXive(nr: number, server: number, priority: number, savedPriority: number): void {
    const srcno = nr - this.offset;
    this.server[srcno] = server;
    this.priority[srcno] = priority;
    this.savedPriority[srcno] = savedPriority;
    if (this.isLsi(srcno)) return this.resendLsi(srcno);
    if (!(this.status[srcno]! & XICS_STATUS_MASKED_PENDING) || priority === 0xff) return;
    this.status[srcno]! &= ~XICS_STATUS_MASKED_PENDING;
    this.send(srcno);
  }

  read(nr: number): IcsSourceState {
    const srcno = nr - this.offset;
    return {
      nr,
      lsi: this.isLsi(srcno),
      server: this.server[srcno]!,
      priority: this.priority[srcno]!,
      savedPriority: this.savedPriority[srcno]!,
      status: this.status[srcno]!,
    };
  }
}
