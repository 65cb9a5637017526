import { HcallOpcode, HcallReturn, QUEUE_ALWAYS_NOTIFY, SourceConfigFlag } from "@vplane/xive";
import type { ControllerBackend } from "./controller-backend.js";
import type { QueueRecord, SourceRecord } from "./controller-config-store.js";

const HCALL_NAMES = new Map<number, string>(Object.entries(HcallReturn).map(([name, code]) => [code, name]));

/** An H_* return code's name (H_P2), or H_<code> for one without a name. */
export function hcallName(code: number): string {
  return HCALL_NAMES.get(code) ?? `H_${code}`;
}

/**
 * The guest's H_INT_* calls that configure the controller (QEMU keeps what they set in its EAT
 * and ENDT, hw/intc/spapr_xive.c): made durable like the device calls, and made again, as these
 * hypercalls, by a restart. The others read, or change runtime state only (ESB, SYNC).
 */
export function configuresController(opcode: number): boolean {
  return (
    opcode === HcallOpcode.H_INT_SET_SOURCE_CONFIG ||
    opcode === HcallOpcode.H_INT_SET_QUEUE_CONFIG ||
    opcode === HcallOpcode.H_INT_RESET
  );
}

const arg = (args: readonly bigint[], i: number): bigint => BigInt.asUintN(64, args[i] ?? 0n);

/**
 * A source's record after a guest's H_INT_SET_SOURCE_CONFIG that succeeded (R4 flags, R5 lisn,
 * R6 target, R7 priority, R8 EISN; `eisn` the source's EISN after it): what QEMU's EAT holds,
 * the END asked for (a KVM device may route the source elsewhere), in place of any earlier
 * configuration. Priority 0xFF resets the EAS to masked, as the source was initialised: no
 * configuration is kept.
 */
export function hcallSourceRecord(
  previous: SourceRecord,
  args: readonly bigint[],
  eisn: number,
): SourceRecord {
  const { kvmConfig: _kvm, hcall: _hcall, ...source } = previous;
  if (arg(args, 3) === 0xffn) return source;
  return {
    ...source,
    hcall: {
      target: Number(arg(args, 2) & 0xffff_ffffn),
      priority: Number(arg(args, 3) & 0xffn),
      eisn,
      masked: (arg(args, 0) & SourceConfigFlag.MASK) !== 0n,
    },
  };
}

/**
 * The queue record of a guest's H_INT_SET_QUEUE_CONFIG that succeeded (R4 flags, R5 target, R6
 * priority, R7 page, R8 size; size 0 resets the END): any queue QEMU's hypercall takes (4 KiB to
 * 16 MiB, with or without ALWAYS_NOTIFY), which the KVM device's EQ_CONFIG alone would refuse.
 */
export function hcallQueueRecord(args: readonly bigint[]): QueueRecord {
  const qshift = Number(arg(args, 4));
  return {
    server: Number(arg(args, 1) & 0xffff_ffffn),
    priority: Number(arg(args, 2) & 0xffn),
    flags: (arg(args, 0) & QUEUE_ALWAYS_NOTIFY) !== 0n ? 1 : 0,
    qshift,
    qaddr: qshift === 0 ? "0" : arg(args, 3).toString(),
    // A queue the hypercall configures starts at generation 1, index 0.
    qtoggle: qshift === 0 ? 0 : 1,
    qindex: 0,
    byHypercall: true,
  };
}

/** The restart's H_INT_SET_QUEUE_CONFIG of a queue the guest configured by hypercall. */
export function replayHcallQueue(backend: ControllerBackend, queue: QueueRecord): void {
  const flags = queue.flags & 1 ? QUEUE_ALWAYS_NOTIFY : 0n;
  const args = [
    flags,
    BigInt(queue.server),
    BigInt(queue.priority),
    BigInt(queue.qaddr),
    BigInt(queue.qshift),
  ];
  replay(
    backend,
    HcallOpcode.H_INT_SET_QUEUE_CONFIG,
    args,
    `queue of server ${queue.server} priority ${queue.priority}`,
  );
}

/**
 * The restart's H_INT_SET_SOURCE_CONFIG of a source the guest configured by hypercall, after the
 * queues, as QEMU's post_load gives a fresh KVM device its EAT's END after the ENDs
 * (hw/intc/spapr_xive_kvm.c kvmppc_xive_post_load): the END asked for, which the KVM device
 * selects from again (book3s_xive.c kvmppc_xive_select_target), so H_INT_GET_SOURCE_CONFIG
 * answers it as before the restart.
 */
export function replayHcallSource(backend: ControllerBackend, source: SourceRecord): void {
  const { target, priority, eisn, masked } = source.hcall!;
  const flags = SourceConfigFlag.SET_EISN | (masked ? SourceConfigFlag.MASK : 0n);
  const args = [flags, BigInt(source.irq), BigInt(target), BigInt(priority), BigInt(eisn)];
  const what = `source ${source.irq} (0x${source.irq.toString(16)}), stored as asked for server ${target} priority ${priority}`;
  replay(backend, HcallOpcode.H_INT_SET_SOURCE_CONFIG, args, what);
}

/** Makes the call as the first connected vCPU (any may; the target is in the arguments). */
function replay(backend: ControllerBackend, opcode: number, args: bigint[], what: string): void {
  const caller = backend.connectedVcpus()[0]?.server ?? 0;
  const { returnCode } = backend.hcall(caller, opcode, args);
  if (returnCode === HcallReturn.H_SUCCESS) return;
  const name =
    opcode === HcallOpcode.H_INT_SET_QUEUE_CONFIG ? "H_INT_SET_QUEUE_CONFIG" : "H_INT_SET_SOURCE_CONFIG";
  throw new Error(
    `${what}, could not be configured again: ${name} answered ${hcallName(returnCode)} (${returnCode})`,
  );
}
