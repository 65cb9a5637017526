import {
  EAS_HI_END_INDEX,
  EAS_HI_VALID,
  EAS_LO_EISN,
  EAS_LO_MASKED,
  encodeEasHi,
  encodeEasLo,
} from "../eas.js";
import { END_W0_UCOND_NOTIFY, type EndTable } from "../end-table.js";
import { SOURCE_BLOCK_SHIFT, SOURCES_PER_BLOCK } from "../kvm-attributes.js";
import { STATUS_ASSERTED, STATUS_LSI, STATUS_PQ, type SourceBlock } from "../source-table.js";
import { StoppedTriggers } from "../stopped-triggers.js";
import type { ContextRegisters } from "../context-registers.js";
import type { RequestedEnds } from "../requested-ends.js";
import type { ThreadContext } from "../thread-context.js";
import { latchedPq, type XiveSource } from "../xive-source.js";
import type { XiveContextState, XiveQueueState, XiveSourceState, XiveState } from "./controller-state.js";

/** The blocks of a XIVE device its saved state is captured from and applied to (XiveDevice hands them in). */
export interface XiveParts {
  readonly source: XiveSource;
  readonly ends: EndTable | undefined;
  /** The connected vCPUs' presenters, ascending by server. */
  readonly contexts: readonly ThreadContext[];
  /** Their registers (each context's regs is a view into one of its chunks). */
  readonly contextRegisters: ContextRegisters;
  readonly xiveSelected: boolean;
  /** QEMU's END of the sources the device routes elsewhere. */
  readonly requestedEnds: RequestedEnds;
}

/**
 * Source `i` of `block` as saved (QEMU's pre_save, xive.md §6): with `saved`, the PQs of its
 * latched block; without (running, or a block the lazy latch has not reached), as a quiesce
 * leaves it: PQ 10 unless 01, the PQ now saved. QEMU's END from `requested`.
 */
export function sourceRecord(
  irq: number,
  block: SourceBlock,
  i: number,
  saved: Uint8Array | undefined,
  requested: RequestedEnds,
): XiveSourceState {
  const status = block.status[i]!;
  const hi = block.easHi[i]!;
  const lo = block.easLo[i]!;
  const pq = status & STATUS_PQ;
  return {
    irq,
    lsi: (status & STATUS_LSI) !== 0,
    asserted: (status & STATUS_ASSERTED) !== 0,
    pq: saved ? pq : latchedPq(pq),
    savedPq: saved ? saved[i]! : pq,
    endIndex: hi & EAS_HI_END_INDEX,
    masked: (lo & EAS_LO_MASKED) !== 0,
    eisn: lo & EAS_LO_EISN,
    requestedEnd: requested.size === 0 ? hi & EAS_HI_END_INDEX : requested.endFor(irq, hi, lo),
  };
}

/** END `index`'s saved record: one with a queue or with sources counted against it; else undefined. */
export function queueRecord(ends: EndTable, index: number): XiveQueueState | undefined {
  const targeted = ends.kvmCount[index]!;
  const valid = ends.isValid(index);
  if (!valid && targeted === 0) return undefined;
  return {
    endIndex: index,
    valid,
    alwaysNotify: (ends.w0[index]! & END_W0_UCOND_NOTIFY) !== 0,
    qshift: ends.qshiftOf(index),
    qaddr: ends.qaddr[index]!,
    generation: ends.generationOf(index),
    qindex: ends.qindexOf(index),
    esn: ends.esbOf(index, false),
    ese: ends.esbOf(index, true),
    entriesWritten: ends.enqueued[index]!,
    targetedSources: targeted,
  };
}

/**
 * A XIVE device's state as a quiesce leaves it (QEMU's pre_save, xive.md §6; a running device's
 * as a quiesce now would): every valid source with its EAS, latched and saved PQ and LSI level;
 * every END with a queue (or with sources counted against it) with its live index and
 * generation; the TIMA registers of every vCPU. A source's EAS END is the device's routing; its
 * requestedEnd QEMU's EAT END (RequestedEnds), which QEMU's stream carries (xive.md §6).
 */
export function captureXiveState({
  source,
  ends,
  contexts,
  xiveSelected,
  requestedEnds,
}: XiveParts): XiveState {
  const sources: XiveSourceState[] = [];
  const blocks = source.sources.blocks;
  for (let b = 0; b < blocks.length; b++) {
    const block = blocks[b];
    if (block === undefined || block.validCount === 0) continue;
    const saved = source.stopped?.savedPq.get(b);
    for (let i = 0; i < SOURCES_PER_BLOCK; i++) {
      if (block.easHi[i]! & EAS_HI_VALID)
        sources.push(sourceRecord((b << SOURCE_BLOCK_SHIFT) | i, block, i, saved, requestedEnds));
    }
  }
  const queues: XiveQueueState[] = [];
  if (ends) {
    for (let index = 0; index < ends.size; index++) {
      const queue = queueRecord(ends, index);
      if (queue) queues.push(queue);
    }
  }
  const saved = contexts.map((context) => ({ server: context.server, regs: context.regs.slice() }));
  return { xiveSelected, sources, queues, contexts: saved };
}

/**
 * Applies a decoded state to the blocks of a fresh XIVE device whose vCPUs are connected and
 * sources created, in QEMU's post_load order (xive.md §6): queues, then sources and their
 * targeting, then the vCPUs' registers. The sources are left quiesced with the saved PQs and
 * `stoppedTriggers`: a block whose PQs are all as the latch leaves them stays unlatched (its saved
 * PQs in place, XiveSource.quiesce), so that resume costs what the stop changed.
 */
export function applyXiveState(parts: XiveParts, state: XiveState, stoppedTriggers: readonly number[]): void {
  parts.source.stopped = { savedPq: new Map(), triggers: StoppedTriggers.from(stoppedTriggers) };
  applyXiveChanges(parts, state.queues, [], state.sources, state.contexts);
}

/**
 * Applies changed records to a quiesced XIVE device in the same order (queues, sources,
 * contexts), each record replacing what the device had for its key; `removedQueues` go back to
 * their reset state. Records of a state or delta already checked against the device. A source's
 * EAS takes its endIndex; where QEMU's END (requestedEnd) sends it is the caller's to replay
 * (XiveDevice, restore-targeting.ts).
 *
 * A queue's source slots are counted as a KVM destination counts them, not copied from the
 * record: QEMU's post_load replays EQ_CONFIG, then every source's SOURCE_CONFIG into a fresh
 * device, and each unmasked one takes a slot of its queue when that queue has a page (Linux
 * book3s_xive_native.c update_source_config → kvmppc_xive_select_target, xive_try_pick_queue;
 * EQ_CONFIG leaves the count alone). The origin's count also holds every routing since its
 * device was made (none comes back), which the destination never saw. So after an apply, a
 * queue with a page counts the unmasked sources targeting it, one without counts none: kept
 * up to date source by source, and counted again from every source for a queue whose page
 * came or went.
 */
export function applyXiveChanges(
  { source, ends, contexts }: XiveParts,
  queues: readonly XiveQueueState[],
  removedQueues: readonly number[],
  sources: readonly XiveSourceState[],
  changedContexts: readonly XiveContextState[],
): void {
  const pageChanged: number[] = [];
  for (const q of queues) {
    if (ends === undefined) break; // decode allows queues only when vCPUs are connected
    const paged = ends.isEnqueue(q.endIndex);
    if (q.valid) {
      ends.configure(q.endIndex, q.qaddr, q.qshift, q.alwaysNotify, q.endIndex >>> 3);
      ends.setQueueState(q.endIndex, q.generation, q.qindex);
      ends.setEsb(q.endIndex, false, q.esn);
      ends.setEsb(q.endIndex, true, q.ese);
      ends.enqueued[q.endIndex] = q.entriesWritten;
    } else ends.reset(q.endIndex);
    if (ends.isEnqueue(q.endIndex) !== paged) pageChanged.push(q.endIndex);
  }
  for (const index of removedQueues) {
    if (ends === undefined) break;
    if (ends.isEnqueue(index)) pageChanged.push(index);
    ends.reset(index);
  }
  const stopped = source.stopped!;
  for (const s of sources) {
    const b = s.irq >>> SOURCE_BLOCK_SHIFT;
    const block = source.sources.blocks[b]!;
    const i = s.irq & (SOURCES_PER_BLOCK - 1);
    const flags = (s.asserted ? STATUS_ASSERTED : 0) | (s.lsi ? STATUS_LSI : 0);
    if (ends) {
      const before = targetedEnd(block.easHi[i]!, block.easLo[i]!);
      if (before >= 0 && ends.isEnqueue(before)) ends.kvmCount[before]!--;
      if (!s.masked && ends.isEnqueue(s.endIndex)) ends.kvmCount[s.endIndex]!++;
    }
    // setEas marks the block written, its status writes below included.
    source.sources.setEas(s.irq, encodeEasHi(true, 0, s.endIndex), encodeEasLo(s.masked, s.eisn));
    let saved = stopped.savedPq.get(b);
    if (saved === undefined && s.pq === latchedPq(s.savedPq)) {
      block.status[i] = s.savedPq | flags; // reads as latched while its block is not
      continue;
    }
    saved ??= source.latchBlock(stopped, b)!;
    saved[i] = s.savedPq;
    block.status[i] = s.pq | flags;
  }
  if (ends && pageChanged.length > 0) countTargetedSources(source, ends, pageChanged);
  const byServer = new Map(contexts.map((context) => [context.server, context]));
  for (const c of changedContexts) byServer.get(c.server)!.restoreRegisters(c.regs);
}

/** The END an EAS routes to (valid and unmasked), else -1. */
function targetedEnd(hi: number, lo: number): number {
  return hi & EAS_HI_VALID && !(lo & EAS_LO_MASKED) ? hi & EAS_HI_END_INDEX : -1;
}

/** Sets the source count of each END of `indices`: its unmasked sources if it has a page, else 0. */
function countTargetedSources(source: XiveSource, ends: EndTable, indices: readonly number[]): void {
  const counted = new Uint8Array(ends.size);
  for (const index of indices) {
    ends.kvmCount[index] = 0;
    counted[index] = ends.isEnqueue(index) ? 1 : 0;
  }
  source.sources.forEachValid((_irq, block, i) => {
    const end = targetedEnd(block.easHi[i]!, block.easLo[i]!);
    if (end >= 0 && counted[end] === 1) ends.kvmCount[end]!++;
  });
}
