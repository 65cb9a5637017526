import { EAS_HI_END_INDEX, EAS_HI_VALID, EAS_LO_EISN, EAS_LO_MASKED, endIndexOf } from "./eas.js";
import {
  END_W6_NVT_INDEX,
  END_W7_F0_PRIORITY,
  END_W7_F0_PRIORITY_SHIFT,
  SPAPR_NVT_BASE,
} from "./end-table.js";
import { HcallOpcode, HcallReturn, REG_MINUS_ONE, type HcallResult } from "./hcall-codes.js";
import {
  ESB_PAGE_SHIFT,
  ESB_SHIFT,
  endEsbAddress,
  esbManagementPageAddress,
  esbTriggerPageAddress,
} from "./pseries-layout.js";
import { STATUS_LSI } from "./source-table.js";
import type { XiveDevice } from "./xive-device.js";

/** H_INT_GET_SOURCE_INFO output flags (IBM bit numbers 60-63, xive.md §2). */
export const SourceInfoFlag = { H_INT_ESB: 8n, LSI: 4n, TRIGGER: 2n, STORE_EOI: 1n } as const;
/** H_INT_SET_SOURCE_CONFIG flags. */
export const SourceConfigFlag = { SET_EISN: 2n, MASK: 1n } as const;
/** H_INT_SET_QUEUE_CONFIG ALWAYS_NOTIFY; H_INT_GET_QUEUE_CONFIG DEBUG; H_INT_ESB STORE. */
export const QUEUE_ALWAYS_NOTIFY = 1n;
export const QUEUE_DEBUG = 1n;
export const ESB_STORE_FLAG = 1n;

const ok = (...outputs: bigint[]): HcallResult => ({ returnCode: HcallReturn.H_SUCCESS, outputs });
const fail = (returnCode: number): HcallResult => ({ returnCode, outputs: [] });
const u64 = (value: number | bigint): bigint => BigInt.asUintN(64, BigInt(value));

/**
 * The guest's H_INT_* face of a XIVE device, with QEMU's checks in QEMU's order and its
 * return codes (xive.md §2): H_FUNCTION until the guest selected XIVE at CAS, H_PARAMETER for
 * unknown flags, H_P2 for a bad LISN, and so on. Arguments are R4.. as 64-bit values.
 */
export class SpaprXiveHcalls {
  constructor(private readonly device: XiveDevice) {}

  call(opcode: number, args: readonly bigint[]): HcallResult {
    if (!this.device.xiveSelected) return fail(HcallReturn.H_FUNCTION);
    const arg = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
    switch (opcode) {
      case HcallOpcode.H_INT_GET_SOURCE_INFO:
        return this.getSourceInfo(arg(0), arg(1));
      case HcallOpcode.H_INT_SET_SOURCE_CONFIG:
        return this.setSourceConfig(arg(0), arg(1), arg(2), arg(3), arg(4));
      case HcallOpcode.H_INT_GET_SOURCE_CONFIG:
        return this.getSourceConfig(arg(0), arg(1));
      case HcallOpcode.H_INT_GET_QUEUE_INFO:
        return this.getQueueInfo(arg(0), arg(1), arg(2));
      case HcallOpcode.H_INT_SET_QUEUE_CONFIG:
        return this.setQueueConfig(arg(0), arg(1), arg(2), arg(3), arg(4));
      case HcallOpcode.H_INT_GET_QUEUE_CONFIG:
        return this.getQueueConfig(arg(0), arg(1), arg(2));
      case HcallOpcode.H_INT_ESB:
        return this.esb(arg(0), arg(1), arg(2), arg(3));
      case HcallOpcode.H_INT_SYNC:
        return this.sync(arg(0), arg(1));
      case HcallOpcode.H_INT_RESET:
        return this.reset(arg(0));
      default:
        // SET/GET_OS_REPORTING_LINE are not implemented by QEMU: H_FUNCTION (xive.md §2).
        return fail(HcallReturn.H_FUNCTION);
    }
  }

  /** A LISN is bad when it is not below nr_irqs or its EAS is not VALID (xive.md §2). */
  private badLisn(lisn: bigint): boolean {
    return lisn >= BigInt(this.device.nrIrqs) || !this.device.sources.isValid(Number(lisn));
  }

  /** spapr_xive_priority_is_reserved on the 8-bit priority QEMU passes (xive.md §2, §7). */
  private reserved(priority8: number): boolean {
    return priority8 >= this.device.hvPriority;
  }

  /** spapr_xive_target_to_end: the target (32-bit) must name a vCPU; END = target << 3 | prio. */
  private endOf(target: bigint, priority8: number): number | undefined {
    const server = Number(target & 0xffff_ffffn);
    return this.device.context(server) === undefined ? undefined : endIndexOf(server, priority8);
  }

  private getSourceInfo(flags: bigint, lisn: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    const n = Number(lisn);
    let out = 0n;
    if (this.device.storeEoi) out |= SourceInfoFlag.STORE_EOI;
    // LSIs go through H_INT_ESB so an EOI can re-trigger a still-asserted line.
    if (this.device.sources.status(n) & STATUS_LSI) out |= SourceInfoFlag.H_INT_ESB | SourceInfoFlag.LSI;
    const viaHcall = (out & SourceInfoFlag.H_INT_ESB) !== 0n;
    return ok(
      out,
      viaHcall ? REG_MINUS_ONE : esbManagementPageAddress(n),
      viaHcall ? REG_MINUS_ONE : esbTriggerPageAddress(n),
      BigInt(ESB_SHIFT - 1),
    );
  }

  private setSourceConfig(
    flags: bigint,
    lisn: bigint,
    target: bigint,
    priority: bigint,
    eisn: bigint,
  ): HcallResult {
    if ((flags & ~(SourceConfigFlag.SET_EISN | SourceConfigFlag.MASK)) !== 0n)
      return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    const n = Number(lisn);
    const sources = this.device.sources;
    if (priority === 0xffn) {
      // Priority 0xFF resets the EAS to VALID|MASKED and succeeds (xive.md §2).
      sources.setEas(n, EAS_HI_VALID, EAS_LO_MASKED);
      return ok();
    }
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P4);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P3);
    const oldLo = sources.easLo(n);
    const data = flags & SourceConfigFlag.SET_EISN ? Number(eisn & 0x7fff_ffffn) : oldLo & EAS_LO_EISN;
    const masked = (flags & SourceConfigFlag.MASK) !== 0n;
    sources.setEas(
      n,
      (EAS_HI_VALID | (end & EAS_HI_END_INDEX)) >>> 0,
      ((masked ? EAS_LO_MASKED : 0) | data) >>> 0,
    );
    return ok();
  }

  private getSourceConfig(flags: bigint, lisn: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    const n = Number(lisn);
    const ends = this.device.ends!;
    const end = this.device.sources.easHi(n) & EAS_HI_END_INDEX;
    const lo = this.device.sources.easLo(n);
    const nvt = end < ends.size ? ends.w6[end]! & END_W6_NVT_INDEX : 0;
    const priority = end < ends.size ? (ends.w7[end]! & END_W7_F0_PRIORITY) >>> END_W7_F0_PRIORITY_SHIFT : 0;
    // The target comes from the END's NVT: nvt - 0x400 as a 32-bit value (QEMU), so an END
    // that was never configured reads as 0xFFFFFC00.
    return ok(
      BigInt((nvt - SPAPR_NVT_BASE) >>> 0),
      lo & EAS_LO_MASKED ? 0xffn : BigInt(priority),
      BigInt(lo & EAS_LO_EISN),
    );
  }

  private getQueueInfo(flags: bigint, target: bigint, priority: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P3);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P2);
    const ends = this.device.ends!;
    // R5 is the EQ size shift, although PAPR calls it the notification page size (xive.md §10.7).
    return ok(endEsbAddress(this.device.nrIrqs, end), BigInt(ends.qshiftOf(end)));
  }

  private setQueueConfig(
    flags: bigint,
    target: bigint,
    priority: bigint,
    qpage: bigint,
    qsize: bigint,
  ): HcallResult {
    if ((flags & ~QUEUE_ALWAYS_NOTIFY) !== 0n) return fail(HcallReturn.H_PARAMETER);
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P3);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P2);
    const ends = this.device.ends!;
    if (qsize === 0n) {
      ends.reset(end); // reset the queue and disable queueing
      return ok();
    }
    if (qsize !== 12n && qsize !== 16n && qsize !== 21n && qsize !== 24n) return fail(HcallReturn.H_P5);
    const size = 1n << qsize;
    if ((qpage & (size - 1n)) !== 0n) return fail(HcallReturn.H_P4);
    // The queue must map entirely onto guest RAM, else H_P4.
    if (qpage + size > BigInt(this.device.memory.size)) return fail(HcallReturn.H_P4);
    ends.configure(end, Number(qpage), Number(qsize), (flags & QUEUE_ALWAYS_NOTIFY) !== 0n, Number(target));
    return ok();
  }

  private getQueueConfig(flags: bigint, target: bigint, priority: bigint): HcallResult {
    if ((flags & ~QUEUE_DEBUG) !== 0n) return fail(HcallReturn.H_PARAMETER);
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P3);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P2);
    const state = this.device.ends!.read(end);
    let out = state.unconditionalNotify ? 1n : 0n;
    const debug = (flags & QUEUE_DEBUG) !== 0n;
    // QEMU shifts the generation by 62 (LSB-0), i.e. IBM bit 1, not the IBM bit 62 its comment names.
    if (debug) out |= BigInt(state.generation) << 62n;
    return ok(
      out,
      state.enqueue ? u64(state.qaddr) : 0n,
      state.enqueue ? BigInt(state.qshift) : 0n,
      debug ? BigInt(state.qindex) : 0n,
    );
  }

  private esb(flags: bigint, lisn: bigint, offset: bigint, data: bigint): HcallResult {
    if ((flags & ~ESB_STORE_FLAG) !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    if (offset > 1n << BigInt(ESB_SHIFT)) return fail(HcallReturn.H_P3);
    // The access lands at the management page + offset, which may reach the next source's pages.
    const address = (lisn << BigInt(ESB_SHIFT)) + (1n << BigInt(ESB_PAGE_SHIFT)) + offset;
    const source = Number(address >> BigInt(ESB_SHIFT));
    if (source >= this.device.nrIrqs || !this.device.sources.isValid(source))
      return fail(HcallReturn.H_HARDWARE);
    const management = ((address >> BigInt(ESB_PAGE_SHIFT)) & 1n) === 1n;
    const pageOffset = Number(address & 0xffffn);
    if (flags & ESB_STORE_FLAG) {
      this.device.esbStore(source, management, pageOffset, data);
      return ok(REG_MINUS_ONE);
    }
    return ok(this.device.esbLoad(source, management, pageOffset));
  }

  private sync(flags: bigint, lisn: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    return ok(); // nothing is in flight in the model
  }

  private reset(flags: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    this.device.coldReset();
    return ok();
  }
}
