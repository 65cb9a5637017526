import { Errno } from "@vplane/model-kit";
import type { XiveQueueState, XiveSourceState } from "./device-state/controller-state.js";
import { EAS_HI_END_INDEX, EAS_LO_MASKED, endIndexOf } from "./eas.js";
import { queueSlots, type EndTable } from "./end-table.js";
import type { RequestedEnds } from "./requested-ends.js";
import type { SourceTable } from "./source-table.js";
import { kvmError } from "./xive-error.js";

/** Where a KVM restore puts the sources it cannot leave where the state routes them. */
export interface RestoredTargets {
  /** Each source to route elsewhere than the apply leaves it, and the END it goes to; by irq. */
  routes: { irq: number; endIndex: number }[];
  /** The sources routed elsewhere than the END they ask for (QEMU's), and that END: irq → END. */
  moved: Map<number, number>;
  /** Every END's source count after the replay (KVM's q->count on the restored device). */
  counts: Uint32Array;
}

/** A device about to be restored: its tables, its vCPUs' servers by vCPU id, and QEMU's ENDs. */
export interface RestoreTarget {
  sources: SourceTable;
  ends: EndTable;
  servers: readonly number[];
  /** QEMU's END of the sources routed elsewhere (by a guest's SET_SOURCE_CONFIG or a restore). */
  requested: RequestedEnds;
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
 * else fails -EBUSY and post_load fails the migration. The END each SOURCE_CONFIG asks for is
 * QEMU's EAT END, which its stream carries (XiveSourceState.requestedEnd), not the vCPU the
 * origin's device picked: a source the origin moved off a full queue goes back to the END QEMU
 * names when that queue has room on the fresh device.
 *
 * Given what a restore is about to apply (queue records, removed queues, source records;
 * records ascending, of valid sources or of sources the apply initialises), this replays that
 * selection before anything is changed, each source without a record asking for its END in
 * `requested` (so that a queue that gets its page or room back takes back what asks for it, as
 * a fresh restore of the merged state would). Undefined when no source can land elsewhere than
 * the apply leaves it (every queue a source asks for has a page, and room, as on the origin,
 * and every source asks for where it is routed); else where they land and every queue's count;
 * EBUSY (FAILED_PRECONDITION) naming the first source no queue takes.
 */
export function restoredTargets(
  device: RestoreTarget,
  queues: readonly XiveQueueState[],
  removedQueues: readonly number[],
  records: readonly XiveSourceState[],
): RestoredTargets | undefined {
  const { sources, ends, servers, requested } = device;
  // Each END's queue size once the apply is done (0: no page); one array, so that the check of
  // a whole state's records (1,048,576 sources) is an index per record.
  const shiftAfter = new Uint8Array(ends.size);
  for (let index = 0; index < ends.size; index++) shiftAfter[index] = ends.qshiftOf(index);
  // A source without a record lands elsewhere only when a queue loses its page here, or while
  // a source asks for another END than its routing (a queue may have room for it now).
  let pageChanged = requested.size > 0;
  const change = (index: number, qshift: number) => {
    if (qshift === 0 && ends.isEnqueue(index)) pageChanged = true;
    shiftAfter[index] = qshift;
  };
  for (const q of queues) change(q.endIndex, q.valid ? q.qshift : 0);
  for (const index of removedQueues) change(index, 0);
  const replayed = (s: XiveSourceState) =>
    !s.masked && (shiftAfter[s.endIndex] === 0 || s.requestedEnd !== s.endIndex);
  if (!pageChanged && !records.some(replayed)) return undefined;

  const counts = new Uint32Array(ends.size);
  const room = (index: number): boolean => {
    const qshift = shiftAfter[index]!;
    return qshift !== 0 && counts[index]! < queueSlots(qshift);
  };
  const routes: RestoredTargets["routes"] = [];
  const moved = new Map<number, number>();
  /** Source `irq`, unmasked, left at END `left` by the apply, asking for END `asked`. */
  const place = (irq: number, left: number, asked: number) => {
    let landed = asked;
    if (!room(asked)) {
      const priority = asked & 7;
      const server = servers.find((candidate) => room(endIndexOf(candidate, priority)));
      if (server === undefined) throw noQueueTakes(irq, asked, shiftAfter[asked] !== 0);
      landed = endIndexOf(server, priority);
      moved.set(irq, asked);
    }
    counts[landed]!++;
    if (landed !== left) routes.push({ irq, endIndex: landed });
  };
  const placeRecord = (s: XiveSourceState) => {
    if (!s.masked) place(s.irq, s.endIndex, s.requestedEnd);
  };
  let r = 0;
  sources.forEachValid((irq, block, i) => {
    // A record of a source not valid yet: one the apply initialises (a stop delta's new source).
    for (; r < records.length && records[r]!.irq < irq; r++) placeRecord(records[r]!);
    if (records[r]?.irq === irq) return placeRecord(records[r++]!);
    const lo = block.easLo[i]!;
    if (lo & EAS_LO_MASKED) return;
    const hi = block.easHi[i]!;
    place(irq, hi & EAS_HI_END_INDEX, requested.endFor(irq, hi, lo));
  });
  for (; r < records.length; r++) placeRecord(records[r]!);
  return { routes, moved, counts };
}

function noQueueTakes(irq: number, endIndex: number, paged: boolean) {
  const server = endIndex >>> 3;
  const priority = endIndex & 7;
  return kvmError(
    Errno.EBUSY,
    "FAILED_PRECONDITION",
    "RESTORED_SOURCE_HAS_NO_QUEUE",
    `source ${irq} is routed to server ${server} priority ${priority}, whose queue has ` +
      `${paged ? "no free slot" : "no page"}, and no ` +
      `other vCPU has a priority ${priority} queue with a free slot: KVM's restore (EQ_CONFIG, then ` +
      `SOURCE_CONFIG) fails with EBUSY. Mask the source or route it to a queue that has a page, then ` +
      `export again`,
    "end_index",
  );
}
