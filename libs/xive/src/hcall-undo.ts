import { EAS_HI_END_INDEX, EAS_LO_EISN, EAS_LO_MASKED, endIndexOf } from "./eas.js";
import { HcallOpcode } from "./hcall-codes.js";
import type { InKernelXive } from "./in-kernel-xive.js";
import { KVM_XIVE_EQ_ALWAYS_NOTIFY, encodeKvmSourceConfig, type KvmXiveEq } from "./kvm-attributes.js";
import type { XiveDevice } from "./xive-device.js";

/**
 * What takes back the configuring H_INT_* call about to be made with these arguments, once it
 * answered H_SUCCESS (a caller whose durable record of it could not be written: no half-applied
 * change): H_INT_SET_SOURCE_CONFIG's source gets its EAS and QEMU's END back, H_INT_SET_QUEUE_CONFIG's
 * END its words. With the KVM device (`kernel`), the device gets back what it had: SOURCE_CONFIG
 * with the routing the source had, which the device selects again (KVM never gives a queue's slot
 * back, so on a queue with none left it lands on another vCPU, and QEMU's END stays apart as after
 * a hypercall), and EQ_CONFIG with the queue it had, its live generation and index included.
 * Undefined for the other calls (H_INT_RESET has no inverse in the device) and for arguments the
 * call refuses, which change nothing.
 */
export function hcallUndo(
  device: XiveDevice,
  opcode: number,
  args: readonly bigint[],
  kernel?: InKernelXive,
): (() => void) | undefined {
  const arg = (i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);
  if (opcode === HcallOpcode.H_INT_SET_SOURCE_CONFIG) {
    const lisn = arg(1);
    if (lisn >= BigInt(device.nrIrqs) || !device.sources.isValid(Number(lisn))) return undefined;
    return sourceUndo(device, Number(lisn), kernel);
  }
  if (opcode === HcallOpcode.H_INT_SET_QUEUE_CONFIG) {
    const server = Number(arg(1) & 0xffff_ffffn);
    const priority = Number(arg(2) & 0xffn);
    if (device.context(server) === undefined || priority >= device.hvPriority) return undefined;
    return queueUndo(device, server, priority, kernel);
  }
  return undefined;
}

function sourceUndo(device: XiveDevice, lisn: number, kernel: InKernelXive | undefined): () => void {
  const { sources, requestedEnds } = device;
  const hi = sources.easHi(lisn);
  const lo = sources.easLo(lisn);
  const requested = requestedEnds.endOf(sources, lisn);
  const keptEnd = requestedEnds.snapshot(lisn);
  return () => {
    if (kernel !== undefined) {
      const masked = (lo & EAS_LO_MASKED) !== 0;
      const routed = (hi & EAS_HI_END_INDEX) >>> 3;
      const config = masked
        ? encodeKvmSourceConfig({ server: 0, priority: 0, eisn: 0, masked: true })
        : encodeKvmSourceConfig({ server: routed, priority: hi & 7, eisn: lo & EAS_LO_EISN, masked });
      const server = kernel.setSourceConfig(lisn, config);
      if (!masked && server !== routed) {
        // The device routed it elsewhere (it wrote that routing): QEMU's END is kept apart.
        requestedEnds.record(sources, lisn, requested);
        return;
      }
    }
    sources.setEas(lisn, hi, lo);
    keptEnd();
  };
}

function queueUndo(
  device: XiveDevice,
  server: number,
  priority: number,
  kernel: InKernelXive | undefined,
): () => void {
  const ends = device.ends!;
  const index = endIndexOf(server, priority);
  const words = ends.snapshot(index);
  const end = ends.read(index);
  let eq: KvmXiveEq = { flags: 0, qshift: 0, qaddr: 0n, qtoggle: 0, qindex: 0 };
  if (kernel !== undefined && end.enqueue) {
    eq = {
      flags: end.unconditionalNotify ? KVM_XIVE_EQ_ALWAYS_NOTIFY : 0,
      qshift: end.qshift,
      qaddr: BigInt(end.qaddr),
      ...kernel.queueState(server, priority),
    };
  }
  return () => {
    kernel?.setQueueConfig(server, priority, eq);
    words();
  };
}
