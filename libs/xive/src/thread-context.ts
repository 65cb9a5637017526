/**
 * The presenter side of one vCPU: its thread interrupt context (TIMA), as QEMU's XiveTCTX
 * models it, reduced to what an sPAPR guest reaches through the OS page (xive.md §5).
 */

/** Ring offsets within the 64-byte context (xive.md §5). */
export const TM_QW0_USER = 0x00;
export const TM_QW1_OS = 0x10;
export const TM_QW2_HV_POOL = 0x20;
export const TM_QW3_HV_PHYS = 0x30;
/** Register bytes within a ring. */
export const TM_NSR = 0;
export const TM_CPPR = 1;
export const TM_IPB = 2;
export const TM_LSMFB = 3;
export const TM_ACK_CNT = 4;
export const TM_INC = 5;
export const TM_AGE = 6;
export const TM_PIPR = 7;
export const TM_WORD2 = 8;
/** NSR exception bit of the OS ring. */
export const TM_QW1_NSR_EO = 0x80;
/** OS CAM word: VO bit and the NVT (xive.md §5, §4.2 step 9). */
export const TM_QW1W2_VO = 0x8000_0000;
export const TM_QW1W2_OS_CAM = 0x00ff_ffff;

/** TIMA pages (64 KiB each): 0 HW, 1 HV, 2 OS, 3 USER (xive.md §5). */
export const TM_SHIFT = 16;
export const TimaPage = { HW: 0, HV: 1, OS: 2, USER: 3 } as const;
/** Special operations (xive.md §5). */
export const TM_SPC_ACK_OS_REG = 0x810;
export const TM_SPC_SET_OS_PENDING = 0x812;
/** Offsets decode for special ops on offset & 0xC3F (xive.md §5). */
export const TM_ADDRESS_MASK = 0xc3f;

/**
 * What the OS page lets a raw 4/8-byte access touch, per byte (xive.md §5; QEMU's OS view):
 * 1 = write, 2 = read, 3 = both, 0 = nothing.
 */
const OS_VIEW = new Uint8Array([
  3,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  3,
  3,
  3,
  3,
  0,
  0,
  0,
  0, // QW0 user
  2,
  3,
  2,
  2,
  2,
  2,
  0,
  2,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0, // QW1 OS
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0, // QW2 pool
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0, // QW3 phys
]);

/** The priority's IPB bit: 1 << (7 - priority); priorities above 7 have none (xive.md §4.2 step 10). */
export function priorityToIpb(priority: number): number {
  return priority > 7 ? 0 : 1 << (7 - priority);
}

/** PIPR from IPB: the most favoured pending priority, 0xFF when none (xive.md §4.2 step 10). */
export function ipbToPipr(ipb: number): number {
  return ipb ? Math.clz32(ipb & 0xff) - 24 : 0xff;
}

/** Receives the vCPU's exception line changes: raised (true) or lowered (false). */
export type SignalSink = (server: number, raised: boolean) => void;

/** Values a raw access returns when it is refused: all ones of the access size (QEMU returns -1). */
export function allOnes(size: number): bigint {
  return (1n << BigInt(size * 8)) - 1n;
}

export class ThreadContext {
  /** Level of the vCPU's OS exception line. */
  private line = false;

  constructor(
    readonly server: number,
    private readonly signal: SignalSink,
    /** The four 16-byte rings: USER, OS, POOL, PHYS (a view into the device's ContextRegisters). */
    readonly regs: Uint8Array,
  ) {
    this.reset();
  }

  get raised(): boolean {
    return this.line;
  }

  /**
   * The state KVM gives a vCPU when it connects (xive.md §1.1): saved OS word0/1 =
   * 0x00000000_FF000000 (ACK# 0xFF, everything else 0, so CPPR 0 and nothing is delivered until
   * the guest writes a less favoured CPPR) and the OS CAM = VO | (0x400 + server).
   */
  private reset(): void {
    this.regs.fill(0);
    this.regs[TM_QW1_OS + TM_ACK_CNT] = 0xff;
    this.setOsCam();
    this.setLine(false);
  }

  /** OS CAM = VO | (0x400 + vcpu): the NVT an sPAPR END names (xive.md §4.2 sPAPR mapping). */
  private setOsCam(): void {
    const cam = (TM_QW1W2_VO | ((0x400 + this.server) & TM_QW1W2_OS_CAM)) >>> 0;
    const at = TM_QW1_OS + TM_WORD2;
    this.regs[at] = cam >>> 24;
    this.regs[at + 1] = (cam >>> 16) & 0xff;
    this.regs[at + 2] = (cam >>> 8) & 0xff;
    this.regs[at + 3] = cam & 0xff;
  }

  /** The OS CAM word (QW1 word 2). */
  get osCam(): number {
    const at = TM_QW1_OS + TM_WORD2;
    return (
      ((this.regs[at]! << 24) |
        (this.regs[at + 1]! << 16) |
        (this.regs[at + 2]! << 8) |
        this.regs[at + 3]!) >>>
      0
    );
  }

  /** OS-ring presentation match: VO set and CAM == NVT (xive.md §4.2 step 9). */
  matchesOs(nvt: number): boolean {
    const cam = this.osCam;
    return (cam & TM_QW1W2_VO) !== 0 && (cam & TM_QW1W2_OS_CAM) === nvt;
  }

  /**
   * An event for `priority` reached this vCPU (xive.md §4.2 step 10): IPB bit set, PIPR
   * recomputed, and if PIPR beats CPPR the NSR exception bit is set and the line raised.
   */
  presentOs(priority: number): void {
    const regs = this.regs;
    const ipb = regs[TM_QW1_OS + TM_IPB]! | priorityToIpb(priority);
    regs[TM_QW1_OS + TM_IPB] = ipb;
    const pipr = ipbToPipr(ipb);
    regs[TM_QW1_OS + TM_PIPR] = pipr;
    if (pipr < regs[TM_QW1_OS + TM_CPPR]!) {
      regs[TM_QW1_OS + TM_NSR] = regs[TM_QW1_OS + TM_NSR]! | TM_QW1_NSR_EO;
      if (!this.line) this.setLine(true);
    }
  }

  /**
   * The CPPR store (byte at 0x11): values above 7 become 0xFF; an unchanged CPPR does nothing;
   * otherwise PIPR is recomputed from the IPB and the exception is presented if PIPR < CPPR,
   * else withdrawn (NSR cleared, line lowered) (xive.md §5).
   */
  setOsCppr(value: number): void {
    const regs = this.regs;
    const cppr = value > 7 ? 0xff : value;
    const old = regs[TM_QW1_OS + TM_CPPR]!;
    regs[TM_QW1_OS + TM_CPPR] = cppr;
    if (cppr === old) return;
    const pipr = ipbToPipr(regs[TM_QW1_OS + TM_IPB]!);
    regs[TM_QW1_OS + TM_PIPR] = pipr;
    if (pipr < cppr) {
      regs[TM_QW1_OS + TM_NSR] = regs[TM_QW1_OS + TM_NSR]! | TM_QW1_NSR_EO;
      this.setLine(true);
    } else {
      regs[TM_QW1_OS + TM_NSR] = 0;
      this.setLine(false);
    }
  }

  /**
   * ACK (16-bit load at 0x810): lowers the line; if an exception is pending, CPPR takes PIPR,
   * that priority's IPB bit is cleared, PIPR recomputed and NSR cleared. Returns
   * (old NSR << 8) | CPPR (xive.md §5 ACK).
   */
  ackOs(): number {
    const regs = this.regs;
    const nsr = regs[TM_QW1_OS + TM_NSR]!;
    this.setLine(false);
    if (nsr & TM_QW1_NSR_EO) {
      const cppr = regs[TM_QW1_OS + TM_PIPR]!;
      regs[TM_QW1_OS + TM_CPPR] = cppr;
      const ipb = regs[TM_QW1_OS + TM_IPB]! & ~priorityToIpb(cppr);
      regs[TM_QW1_OS + TM_IPB] = ipb;
      regs[TM_QW1_OS + TM_PIPR] = ipbToPipr(ipb);
      regs[TM_QW1_OS + TM_NSR] = nsr & ~TM_QW1_NSR_EO;
    }
    return ((nsr << 8) | regs[TM_QW1_OS + TM_CPPR]!) >>> 0;
  }

  /** SET_OS_PENDING (store8 at 0x812): ORs a priority into the IPB, then presents (xive.md §5). */
  setOsPending(priority: number): void {
    this.presentOs(priority & 0xff);
  }

  /**
   * A load from the TIMA OS page at `offset` (within the page) of `size` bytes. Special ops at
   * and above 0x800 answer only with their exact size; others are raw reads filtered by the OS
   * view: 4 or 8 bytes only, never the USER ring, else all ones (xive.md §5).
   */
  load(offset: number, size: number): bigint {
    const op = offset & TM_ADDRESS_MASK;
    if (op === TM_SPC_ACK_OS_REG && size === 2) return BigInt(this.ackOs());
    if (offset & 0x800) return allOnes(size);
    return this.rawRead(offset, size);
  }

  /** A store to the TIMA OS page (xive.md §5): CPPR byte op, SET_OS_PENDING, or a raw write. */
  store(offset: number, size: number, value: bigint): void {
    const op = offset & TM_ADDRESS_MASK;
    if (op === TM_QW1_OS + TM_CPPR && size === 1) return this.setOsCppr(Number(value & 0xffn));
    if (op === TM_SPC_SET_OS_PENDING && size === 1) return this.setOsPending(Number(value & 0xffn));
    if (offset & 0x800) return; // no such op: logged and dropped
    this.rawWrite(offset, size, value);
  }

  private viewMask(offset: number, size: number, write: boolean): bigint {
    const reg = offset & 0x3f;
    const bit = write ? 1 : 2;
    let mask = 0n;
    for (let i = 0; i < size; i++) {
      if ((OS_VIEW[(reg + i) & 0x3f]! & bit) !== 0) mask |= 0xffn << BigInt(8 * (size - i - 1));
    }
    return mask;
  }

  private rawRead(offset: number, size: number): bigint {
    const reg = offset & 0x3f;
    const mask = this.viewMask(offset, size, false);
    if (size < 4 || mask === 0n || (offset & 0x30) === TM_QW0_USER) return allOnes(size);
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(this.regs[(reg + i) & 0x3f]!);
    return value & mask;
  }

  private rawWrite(offset: number, size: number, value: bigint): void {
    const reg = offset & 0x3f;
    const mask = this.viewMask(offset, size, true);
    if (size < 4 || mask === 0n || (offset & 0x30) === TM_QW0_USER) return;
    for (let i = 0; i < size; i++) {
      const shift = BigInt(8 * (size - i - 1));
      const byteMask = Number((mask >> shift) & 0xffn);
      if (byteMask) this.regs[(reg + i) & 0x3f] = Number((value >> shift) & 0xffn) & byteMask;
    }
  }

  /** OS ring word0/1 (NSR .. PIPR) as a big-endian u64, the VP_STATE layout (xive.md §1.6). */
  osWord01(): bigint {
    let value = 0n;
    for (let i = 0; i < 8; i++) value = (value << 8n) | BigInt(this.regs[TM_QW1_OS + i]!);
    return value;
  }

  /**
   * Stores OS ring word0/1 (VP_STATE set, xive.md §1.6), then dispatches the context as every
   * context of this model is (dispatchOs).
   */
  setOsWord01(value: bigint): void {
    for (let i = 0; i < 8; i++) this.regs[TM_QW1_OS + i] = Number((value >> BigInt(8 * (7 - i))) & 0xffn);
    this.dispatchOs();
  }

  /**
   * Restores the whole 64-byte context of a migrated vCPU (QEMU's TCTX regs[], xive.md §6), then
   * dispatches it, as after a VP_STATE set.
   */
  restoreRegisters(regs: Uint8Array): void {
    this.regs.set(regs.subarray(0, this.regs.length));
    this.dispatchOs();
  }

  /**
   * What the hardware does when a saved OS context is pushed onto a thread: PIPR, which is not
   * saved or restored, is recomputed from the IPB, and the exception is presented when it beats
   * CPPR (QEMU hw/intc/xive.c xive_tctx_need_resend). A saved state's PIPR can be stale: the
   * kernel's VP_STATE of a vCPU that has not run is its saved word0/1 with the IPB the NVT
   * backed up ORed in, PIPR as it was (Linux book3s_xive_native.c kvmppc_xive_native_get_vp).
   * The line then follows NSR.
   */
  private dispatchOs(): void {
    const regs = this.regs;
    const pipr = ipbToPipr(regs[TM_QW1_OS + TM_IPB]!);
    regs[TM_QW1_OS + TM_PIPR] = pipr;
    if (pipr < regs[TM_QW1_OS + TM_CPPR]!)
      regs[TM_QW1_OS + TM_NSR] = regs[TM_QW1_OS + TM_NSR]! | TM_QW1_NSR_EO;
    this.setLine((regs[TM_QW1_OS + TM_NSR]! & TM_QW1_NSR_EO) !== 0);
  }

  private setLine(raised: boolean): void {
    if (this.line === raised) return;
    this.line = raised;
    this.signal(this.server, raised);
  }
}
