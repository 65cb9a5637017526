import { EAS_HI_END_INDEX, EAS_HI_VALID, EAS_LO_EISN, EAS_LO_MASKED, endIndexOf } from "./eas.js";
import {
  END_W6_NVT_INDEX,
  END_W7_F0_PRIORITY,
  END_W7_F0_PRIORITY_SHIFT,
  SPAPR_NVT_BASE,
} from "./end-table.js";
import { ESB_LOAD } from "./esb.js";
import { HcallOpcode, HcallReturn, REG_MINUS_ONE, type HcallResult } from "./hcall-codes.js";
import type { InKernelXive } from "./in-kernel-xive.js";
import { KVM_XIVE_EQ_ALWAYS_NOTIFY, encodeKvmSourceConfig } from "./kvm-attributes.js";
import {
  ESB_PAGE_SHIFT,
  ESB_SHIFT,
  endEsbAddress,
  esbManagementPageAddress,
  esbTriggerPageAddress,
} from "./pseries-layout.js";
import { STATUS_ASSERTED, STATUS_LSI } from "./source-table.js";
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
 * Runs the in-kernel device's part of a hypercall, if there is a device: false when it refused,
 * which QEMU reports and answers with H_HARDWARE (xive.md §2).
 */
function inKernel(kernel: InKernelXive | undefined, call: (kernel: InKernelXive) => void): boolean {
  if (kernel === undefined) return true;
  try {
    call(kernel);
    return true;
  } catch {
    return false;
  }
}

/**
 * The guest's H_INT_* face of a XIVE device as QEMU gives it (xive.md §2; QEMU
 * hw/intc/spapr_xive.c): QEMU's checks in QEMU's order and its return codes (H_FUNCTION until
 * the guest selected XIVE at CAS, H_PARAMETER for unknown flags, H_P2 for a bad LISN, ...).
 * `device` holds what QEMU keeps (EAS and END tables, source status). Without `kernel` this is
 * QEMU's emulated device: `device` is the device too (the emulated backend). With `kernel` it is
 * QEMU with the interrupt controller in the kernel (the kvm_irqchip_in_kernel() branches,
 * hw/intc/spapr_xive_kvm.c): the KVM XIVE device does the work and its refusal is H_HARDWARE
 * (the native backend, whose `device` is its shadow). Arguments are R4.. as 64-bit values.
 */
export class SpaprXiveHcalls {
  constructor(private readonly device: XiveDevice) {}

  call(opcode: number, args: readonly bigint[], kernel?: InKernelXive): HcallResult {
    if (!this.device.xiveSelected) return fail(HcallReturn.H_FUNCTION);
    const arg = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
    switch (opcode) {
      case HcallOpcode.H_INT_GET_SOURCE_INFO:
        return this.getSourceInfo(arg(0), arg(1));
      case HcallOpcode.H_INT_SET_SOURCE_CONFIG:
        return this.setSourceConfig(kernel, arg(0), arg(1), arg(2), arg(3), arg(4));
      case HcallOpcode.H_INT_GET_SOURCE_CONFIG:
        return this.getSourceConfig(arg(0), arg(1));
      case HcallOpcode.H_INT_GET_QUEUE_INFO:
        return this.getQueueInfo(arg(0), arg(1), arg(2));
      case HcallOpcode.H_INT_SET_QUEUE_CONFIG:
        return this.setQueueConfig(kernel, arg(0), arg(1), arg(2), arg(3), arg(4));
      case HcallOpcode.H_INT_GET_QUEUE_CONFIG:
        return this.getQueueConfig(kernel, arg(0), arg(1), arg(2));
      case HcallOpcode.H_INT_ESB:
        return this.esb(kernel, arg(0), arg(1), arg(2), arg(3));
      case HcallOpcode.H_INT_SYNC:
        return this.sync(kernel, arg(0), arg(1));
      case HcallOpcode.H_INT_RESET:
        return this.reset(kernel, arg(0));
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

  /**
   * QEMU builds the new EAS, hands it to the KVM device as a SOURCE_CONFIG value, and keeps it
   * once the device took it. The device may route the source to another vCPU's queue at that
   * priority (the asked one has no page or no free slot; none has: EBUSY, H_HARDWARE): the
   * shared EAS then holds the device's routing and its requestedEnds QEMU's END (requested-ends.ts).
   * Priority 0xFF resets the EAS to VALID|MASKED; QEMU then skips the KVM device (xive.md
   * §10.4), which would leave the kernel routing a source the guest masked: vplane masks it in
   * the device too, so that the device routes what GET_SOURCE_CONFIG reports.
   */
  private setSourceConfig(
    kernel: InKernelXive | undefined,
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
      const masked = encodeKvmSourceConfig({ server: 0, priority: 0, eisn: 0, masked: true });
      if (!inKernel(kernel, (k) => k.setSourceConfig(n, masked))) return fail(HcallReturn.H_HARDWARE);
      sources.setEas(n, EAS_HI_VALID, EAS_LO_MASKED);
      this.device.requestedEnds.forget(n);
      return ok();
    }
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P4);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P3);
    const oldLo = sources.easLo(n);
    const data = flags & SourceConfigFlag.SET_EISN ? Number(eisn & 0x7fff_ffffn) : oldLo & EAS_LO_EISN;
    const masked = (flags & SourceConfigFlag.MASK) !== 0n;
    const config = encodeKvmSourceConfig({ server: end >>> 3, priority: end & 7, eisn: data, masked });
    let routed = end;
    const setInKernel = (k: InKernelXive) => {
      const server = k.setSourceConfig(n, config);
      if (!masked) routed = endIndexOf(server, priority8);
    };
    if (!inKernel(kernel, setInKernel)) return fail(HcallReturn.H_HARDWARE);
    sources.setEas(
      n,
      (EAS_HI_VALID | (routed & EAS_HI_END_INDEX)) >>> 0,
      ((masked ? EAS_LO_MASKED : 0) | data) >>> 0,
    );
    this.device.requestedEnds.record(sources, n, end);
    return ok();
  }

  private getSourceConfig(flags: bigint, lisn: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    const n = Number(lisn);
    const ends = this.device.ends!;
    const end = this.device.requestedEnds.endOf(this.device.sources, n);
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

  /**
   * QEMU checks the queue (sizes 12/16/21/24 naturally aligned, mapped in guest RAM; 0 resets
   * it), hands the END to the KVM device as an EQ_CONFIG value and keeps it once the device took
   * it. The KVM device takes only 64 KiB queues with ALWAYS_NOTIFY (xive.md §10.2) and one queue
   * priority per vCPU (single escalation): the others are H_HARDWARE there.
   */
  private setQueueConfig(
    kernel: InKernelXive | undefined,
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
    const server = Number(target & 0xffff_ffffn);
    const alwaysNotify = (flags & QUEUE_ALWAYS_NOTIFY) !== 0n;
    if (qsize === 0n) {
      // The reset END is not valid: the device gets qshift 0, which disables the queue.
      const reset = { flags: 0, qshift: 0, qaddr: 0n, qtoggle: 0, qindex: 0 };
      if (!inKernel(kernel, (k) => k.setQueueConfig(server, priority8, reset)))
        return fail(HcallReturn.H_HARDWARE);
      ends.reset(end);
      return ok();
    }
    if (qsize !== 12n && qsize !== 16n && qsize !== 21n && qsize !== 24n) return fail(HcallReturn.H_P5);
    const size = 1n << qsize;
    if ((qpage & (size - 1n)) !== 0n) return fail(HcallReturn.H_P4);
    // The queue must map entirely onto guest RAM, else H_P4.
    if (qpage + size > BigInt(this.device.memory.size)) return fail(HcallReturn.H_P4);
    // A new END starts at generation 1, index 0: the device restores no queue state for it.
    const eq = {
      flags: alwaysNotify ? KVM_XIVE_EQ_ALWAYS_NOTIFY : 0,
      qshift: Number(qsize),
      qaddr: qpage,
      qtoggle: 1,
      qindex: 0,
    };
    if (!inKernel(kernel, (k) => k.setQueueConfig(server, priority8, eq)))
      return fail(HcallReturn.H_HARDWARE);
    ends.configure(end, Number(qpage), Number(qsize), alwaysNotify, server);
    return ok();
  }

  /**
   * QEMU answers from its END, after asking the KVM device for the live generation and index.
   * For an END never configured QEMU asserts there (kvmppc_xive_get_queue_config, xive.md §10.5)
   * and the VMM aborts; vplane answers from the END without asking.
   */
  private getQueueConfig(
    kernel: InKernelXive | undefined,
    flags: bigint,
    target: bigint,
    priority: bigint,
  ): HcallResult {
    if ((flags & ~QUEUE_DEBUG) !== 0n) return fail(HcallReturn.H_PARAMETER);
    const priority8 = Number(priority & 0xffn);
    if (this.reserved(priority8)) return fail(HcallReturn.H_P3);
    const end = this.endOf(target, priority8);
    if (end === undefined) return fail(HcallReturn.H_P2);
    const ends = this.device.ends!;
    if (kernel !== undefined && ends.isValid(end)) {
      let live = { qtoggle: 0, qindex: 0 };
      const server = Number(target & 0xffff_ffffn);
      if (!inKernel(kernel, (k) => (live = k.queueState(server, priority8))))
        return fail(HcallReturn.H_HARDWARE);
      ends.setQueueState(end, live.qtoggle, live.qindex);
    }
    const state = ends.read(end);
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

  /**
   * A load or store on the ESB pages, at the management page of `lisn` plus the offset, which may
   * reach the next source's pages. A page of no valid source is H_HARDWARE (QEMU's emulated
   * access fails there; the kernel's mapping would fault). With the KVM device, an LSI's
   * load-EOI is QEMU's: SET_PQ_00, then a trigger while the line is still asserted; it returns 0
   * (kvmppc_xive_esb_rw).
   */
  private esb(
    kernel: InKernelXive | undefined,
    flags: bigint,
    lisn: bigint,
    offset: bigint,
    data: bigint,
  ): HcallResult {
    if ((flags & ~ESB_STORE_FLAG) !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    if (offset > 1n << BigInt(ESB_SHIFT)) return fail(HcallReturn.H_P3);
    const address = (lisn << BigInt(ESB_SHIFT)) + (1n << BigInt(ESB_PAGE_SHIFT)) + offset;
    const source = Number(address >> BigInt(ESB_SHIFT));
    if (source >= this.device.nrIrqs || !this.device.sources.isValid(source))
      return fail(HcallReturn.H_HARDWARE);
    const management = ((address >> BigInt(ESB_PAGE_SHIFT)) & 1n) === 1n;
    const pageOffset = Number(address & 0xffffn);
    const store = (flags & ESB_STORE_FLAG) !== 0n;
    if (kernel === undefined) {
      if (store) {
        this.device.esbStore(source, management, pageOffset, data);
        return ok(REG_MINUS_ONE);
      }
      return ok(this.device.esbLoad(source, management, pageOffset));
    }
    const n = Number(lisn);
    const status = this.device.sources.status(n);
    let value = REG_MINUS_ONE;
    const access = (k: InKernelXive) => {
      if (store) return k.esbStore(source, management, pageOffset, data);
      if (status & STATUS_LSI && offset === 0n) {
        value = 0n;
        k.esbLoad(n, true, ESB_LOAD.SET_PQ_00);
        if (status & STATUS_ASSERTED) k.esbStore(n, false, 0, 0n);
        return;
      }
      value = k.esbLoad(source, management, pageOffset);
    };
    return inKernel(kernel, access) ? ok(value) : fail(HcallReturn.H_HARDWARE);
  }

  private sync(kernel: InKernelXive | undefined, flags: bigint, lisn: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (this.badLisn(lisn)) return fail(HcallReturn.H_P2);
    // Nothing is in flight in the model; the KVM device syncs the source.
    return inKernel(kernel, (k) => k.syncSource(Number(lisn))) ? ok() : fail(HcallReturn.H_HARDWARE);
  }

  /**
   * QEMU's emulated device: its cold reset (EAS, ENDs, every source back to PQ 01). With the KVM
   * device: the device's RESET, then QEMU's reset of what it keeps (EAS, ENDs, ASSERTED), the PQ
   * bits being the device's (its RESET sets 01 on the sources it had unmasked; masked ones keep
   * theirs). QEMU resets its tables first; here the device goes first, so that a refused RESET
   * changes nothing.
   */
  private reset(kernel: InKernelXive | undefined, flags: bigint): HcallResult {
    if (flags !== 0n) return fail(HcallReturn.H_PARAMETER);
    if (kernel === undefined) {
      this.device.coldReset();
      return ok();
    }
    if (!inKernel(kernel, (k) => k.reset())) return fail(HcallReturn.H_HARDWARE);
    this.device.resetHcallTables();
    this.device.requestedEnds.clear();
    return ok();
  }
}
