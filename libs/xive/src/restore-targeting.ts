import { Errno } from "@vplane/model-kit";
import type { XiveQueueState, XiveSourceState } from "./device-state/controller-state.js";
import { EAS_HI_END_INDEX, EAS_LO_MASKED, endIndexOf } from "./eas.js";
import { queueSlots, type EndTable } from "./end-table.js";
import type { SourceTable } from "./source-table.js";
import { kvmError } from "./xive-error.js";

/** Where a KVM restore puts the sources it cannot leave where the state routes them. */
export interface RestoredTargets {
  /** Each source moved to another vCPU's queue, and the END it lands on; ascending by irq. */
  moved: { irq: number; endIndex: number }[];
  /** Every END's source count after the replay (KVM's q->count on the restored device). */
  counts: Uint32Array;
}

/** What a device about to be restored has: its tables, and its vCPUs' servers by vCPU id. */
export interface RestoreTarget {
  sources: SourceTable;
  ends: EndTable;
  servers: readonly number[];
}

/**
 * What KVM does with a restored source whose queue has no page. A queue reset (EQ_CONFIG with
 * qshift 0) leaves the sources routed to it as they are (Linux arch/powerpc/kvm/
 * book3s_xive_native.c kvmppc_xive_native_set_queue_config touches no source), so a state can
 * hold one. QEMU's post_load (hw/intc/spapr_xive_kvm.c kvmppc_xive_post_load) gives a fresh KVM
 * device EQ_CONFIG for every valid END only, then SOURCE and SOURCE_CONFIG for every valid
 * source in LISN order; SOURCE_CONFIG of an unmasked one runs kvmppc_xive_select_target, whose
 * xive_try_pick_queue fails without a page (-ENXIO, with a WARN) or without room, and which
 * then takes the first vCPU whose queue at that priority has both (kvm_for_each_vcpu order),
 * else fails -EBUSY and post_load fails the migration.
 *
 * Given what a restore is about to apply (queue records, removed queues, source records;
 * records ascending, of valid sources), this replays that selection before anything is
 * changed: undefined when no unmasked source would be left routed to a queue without a page
 * (nothing moves: every source keeps its queue, which has room, as it had on the origin);
 * else the sources moved and every queue's count; EBUSY (FAILED_PRECONDITION) naming the first
 * source no queue takes.
 */
export function restoredTargets(
  device: RestoreTarget,
  queues: readonly XiveQueueState[],
  removedQueues: readonly number[],
  records: readonly XiveSourceState[],
): RestoredTargets | undefined {
  const { sources, ends, servers } = device;
  // The queue size of each END the apply changes (0: no page).
  const changedShift = new Map<number, number>();
  for (const q of queues) changedShift.set(q.endIndex, q.valid ? q.qshift : 0);
  for (const index of removedQueues) changedShift.set(index, 0);
  const shiftAfter = (index: number): number =>
    changedShift.get(index) ?? (ends.isEnqueue(index) ? ends.qshiftOf(index) : 0);
  let pageLost = false;
  for (const [index, qshift] of changedShift) if (qshift === 0 && ends.isEnqueue(index)) pageLost = true;
  // A source kept as it is can only be left without a page by a queue that loses its page here.
  if (!pageLost && !records.some((s) => !s.masked && shiftAfter(s.endIndex) === 0)) return undefined;

  const counts = new Uint32Array(ends.size);
  const room = (index: number): boolean => {
    const qshift = shiftAfter(index);
    return qshift !== 0 && counts[index]! < queueSlots(qshift);
  };
  const moved: RestoredTargets["moved"] = [];
  let r = 0;
  sources.forEachValid((irq, block, i) => {
    while (r < records.length && records[r]!.irq < irq) r++;
    const record = records[r]?.irq === irq ? records[r] : undefined;
    const masked = record ? record.masked : (block.easLo[i]! & EAS_LO_MASKED) !== 0;
    if (masked) return;
    const requested = record ? record.endIndex : block.easHi[i]! & EAS_HI_END_INDEX;
    if (room(requested)) {
      counts[requested]!++;
      return;
    }
    const priority = requested & 7;
    const server = servers.find((candidate) => room(endIndexOf(candidate, priority)));
    if (server === undefined) throw noQueueTakes(irq, requested);
    const landed = endIndexOf(server, priority);
    counts[landed]!++;
    moved.push({ irq, endIndex: landed });
  });
  return moved.length === 0 ? undefined : { moved, counts };
}

function noQueueTakes(irq: number, endIndex: number) {
  const server = endIndex >>> 3;
  const priority = endIndex & 7;
  return kvmError(
    Errno.EBUSY,
    "FAILED_PRECONDITION",
    "RESTORED_SOURCE_HAS_NO_QUEUE",
    `source ${irq} is routed to server ${server} priority ${priority}, whose queue has no page, and no ` +
      `other vCPU has a priority ${priority} queue with a free slot: KVM's restore (EQ_CONFIG, then ` +
      `SOURCE_CONFIG) fails with EBUSY. Mask the source or route it to a queue that has a page, then ` +
      `export again`,
    "end_index",
  );
}
