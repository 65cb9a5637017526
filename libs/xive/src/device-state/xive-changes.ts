import { addKeyedChange, type KeyedChanges } from "@vplane/model-kit";
import { EAS_HI_END_INDEX, EAS_HI_VALID, EAS_LO_EISN, EAS_LO_MASKED } from "../eas.js";
import { ENDS_PER_RANGE, type EndTable } from "../end-table.js";
import { SOURCE_BLOCK_SHIFT, SOURCES_PER_BLOCK } from "../kvm-attributes.js";
import type { RequestedEnds } from "../requested-ends.js";
import { STATUS_PQ, type SourceBlock } from "../source-table.js";
import { latchedPq } from "../xive-source.js";
import type { XiveContextState, XiveQueueState, XiveSourceState } from "./controller-state.js";
import { sameBytes } from "./same-bytes.js";
import { queueRecord, sourceRecord, type XiveParts } from "./xive-state.js";

/** One block of sources as last handed out: its arrays (one buffer) and the PQs its latch saved. */
interface BlockCopy {
  bytes: Buffer;
  status: Uint8Array;
  saved: Uint8Array | undefined;
  easHi: Uint32Array;
  easLo: Uint32Array;
}

/** A copy of `block`'s arrays, laid out as SourceBlock lays them out. */
function copyOf(block: SourceBlock, saved: Uint8Array | undefined): BlockCopy {
  const bytes = Buffer.from(new Uint8Array(block.bytes).buffer); // its own buffer: aligned views
  return {
    bytes,
    saved: saved?.slice(),
    easHi: new Uint32Array(bytes.buffer, bytes.byteOffset + block.easHi.byteOffset, SOURCES_PER_BLOCK),
    easLo: new Uint32Array(bytes.buffer, bytes.byteOffset + block.easLo.byteOffset, SOURCES_PER_BLOCK),
    status: new Uint8Array(bytes.buffer, bytes.byteOffset + block.status.byteOffset, SOURCES_PER_BLOCK),
  };
}

/** The END words a queue record is made of, and the records, as last handed out. */
interface EndsCopy {
  w0: Uint32Array;
  w1: Uint32Array;
  qaddr: Float64Array;
  enqueued: Float64Array;
  kvmCount: Uint32Array;
  records: Map<number, XiveQueueState>;
}

export interface XiveChanges {
  sources: KeyedChanges<XiveSourceState>;
  queues: KeyedChanges<XiveQueueState>;
  contexts: KeyedChanges<XiveContextState>;
}

/** Two short arrays (a vCPU's 64 TIMA bytes): a loop is cheaper than two Buffer views. */
function sameSmall(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameRange<T extends Uint32Array | Float64Array>(a: T, b: T, start: number, end: number): boolean {
  return sameBytes(a.subarray(start, end), b.subarray(start, end));
}

/**
 * What changed in a XIVE device since the copy it keeps of what it last handed out (issue 14
 * pre-copy), found without walking the VM: the copy is of the device's own typed arrays (per
 * block of 1024 sources, the END words, each vCPU's TIMA registers), compared with memcmp, and
 * only a block or END range that differs is decoded into records. A source block or END range
 * is compared only if something wrote it since it was taken (SourceBlock.written,
 * EndTable.written: one store on the write paths): at 1,048,576 sources the memcmp of every
 * block (~9 MB) was most of an idle stop. The memcmp stays behind the mark, so a write that
 * changes nothing moves nothing. A vCPU's registers are read only in a register chunk that
 * differs from its copy (ContextRegisters), never by walking the vCPUs. A source's record
 * (PQ, saved PQ) is derived from the arrays the same way the capture does (sourceRecord),
 * running, stopped and latched alike, so the deltas merge to the stop-and-copy export byte for
 * byte.
 */
export class XiveChangeTracker {
  /** By block index (an array: an idle read at 1,048,576 sources visits 1,024 blocks). */
  private readonly blocks: (BlockCopy | undefined)[] = [];
  private ends: EndsCopy | undefined;
  /** TIMA registers by server. */
  private readonly contexts: (Uint8Array | undefined)[] = [];
  /** The device's register chunks (ContextRegisters) as last handed out. */
  private readonly registerChunks: (Buffer | undefined)[] = [];
  /** QEMU's END of the sources routed elsewhere (RequestedEnds.live) as last handed out. */
  private requested = new Map<number, number>();

  /**
   * What changed since the copy (a new tracker: everything); with `take`, the copy becomes the
   * device as it is now.
   */
  changes(parts: XiveParts, take: boolean): XiveChanges {
    return {
      sources: this.sourceChanges(parts, take),
      queues: this.queueChanges(parts.ends, take),
      contexts: this.contextChanges(parts, take),
    };
  }

  private sourceChanges({ source, requestedEnds }: XiveParts, take: boolean): KeyedChanges<XiveSourceState> {
    const changes: KeyedChanges<XiveSourceState> = { changed: [], removed: [] };
    const blocks = source.sources.blocks;
    for (let b = 0; b < blocks.length; b++) {
      const block = blocks[b];
      const copy = this.blocks[b];
      if (block === undefined) continue; // a block, once made, stays (SourceTable.create)
      // Nothing wrote the block since the copy was taken (SourceBlock.written).
      if (copy !== undefined && !block.written) continue;
      const saved = source.stopped?.savedPq.get(b);
      if (take) block.written = false;
      // Latching a block changes no record by itself (sourceRecord), so the arrays tell it all.
      if (copy !== undefined && copy.bytes.equals(block.bytes)) continue;
      blockChanges(b, block, saved, copy, requestedEnds, changes);
      if (!take) continue;
      if (copy === undefined) this.blocks[b] = copyOf(block, saved);
      else {
        copy.bytes.set(block.bytes);
        copy.saved = saved?.slice();
      }
    }
    this.requestedChanges({ source, requestedEnds }, take, changes);
    return changes;
  }

  /**
   * The sources whose QEMU END alone changed (a guest asking again for a full queue's vCPU moves
   * the source where it was: its EAS stays, QEMU's END does not), added to `changes` in irq
   * order. Those the device keeps apart are few (RequestedEnds), so they are compared whole.
   */
  private requestedChanges(
    { source, requestedEnds }: Pick<XiveParts, "source" | "requestedEnds">,
    take: boolean,
    changes: KeyedChanges<XiveSourceState>,
  ): void {
    if (requestedEnds.size === 0 && this.requested.size === 0) return;
    const now = requestedEnds.live(source.sources);
    const differ = [...now].filter(([irq, end]) => this.requested.get(irq) !== end).map(([irq]) => irq);
    for (const irq of this.requested.keys()) if (!now.has(irq)) differ.push(irq);
    if (take) this.requested = now;
    const added = differ.filter((irq) => !listed(changes.changed, irq) && source.sources.isValid(irq));
    if (added.length === 0) return;
    for (const irq of added) {
      const b = irq >>> SOURCE_BLOCK_SHIFT;
      const i = irq & (SOURCES_PER_BLOCK - 1);
      const block = source.sources.blocks[b]!;
      changes.changed.push(sourceRecord(irq, block, i, source.stopped?.savedPq.get(b), requestedEnds));
    }
    changes.changed.sort((a, b) => a.irq - b.irq);
  }

  private queueChanges(ends: EndTable | undefined, take: boolean): KeyedChanges<XiveQueueState> {
    const changes: KeyedChanges<XiveQueueState> = { changed: [], removed: [] };
    if (ends === undefined) return changes; // the END table, once made, stays (first vCPU)
    let copy = this.ends;
    const fresh = copy === undefined;
    copy ??= {
      w0: new Uint32Array(ends.size),
      w1: new Uint32Array(ends.size),
      qaddr: new Float64Array(ends.size),
      enqueued: new Float64Array(ends.size),
      kvmCount: new Uint32Array(ends.size),
      records: new Map(),
    };
    for (let range = 0, start = 0; start < ends.size; range++, start += ENDS_PER_RANGE) {
      // Nothing wrote the range since its flag was taken (EndTable.written).
      if (!fresh && ends.written[range] === 0) continue;
      if (take) ends.written[range] = 0;
      const end = Math.min(start + ENDS_PER_RANGE, ends.size);
      // The memcmp stays behind the flag: a write that changes nothing moves nothing.
      if (
        !fresh &&
        sameRange(copy.w0, ends.w0, start, end) &&
        sameRange(copy.w1, ends.w1, start, end) &&
        sameRange(copy.qaddr, ends.qaddr, start, end) &&
        sameRange(copy.enqueued, ends.enqueued, start, end) &&
        sameRange(copy.kvmCount, ends.kvmCount, start, end)
      )
        continue;
      for (let index = start; index < end; index++) {
        const now = queueRecord(ends, index);
        if (!addKeyedChange(changes, index, copy.records.get(index), now) || !take) continue;
        if (now === undefined) copy.records.delete(index);
        else copy.records.set(index, now);
      }
      if (!take) continue;
      copy.w0.set(ends.w0.subarray(start, end), start);
      copy.w1.set(ends.w1.subarray(start, end), start);
      copy.qaddr.set(ends.qaddr.subarray(start, end), start);
      copy.enqueued.set(ends.enqueued.subarray(start, end), start);
      copy.kvmCount.set(ends.kvmCount.subarray(start, end), start);
    }
    if (take) this.ends = copy;
    return changes;
  }

  private contextChanges({ contextRegisters }: XiveParts, take: boolean): KeyedChanges<XiveContextState> {
    // A device's vCPUs are never disconnected (only connected), so no context goes away.
    const changes: KeyedChanges<XiveContextState> = { changed: [], removed: [] };
    // A chunk equal to its copy holds no change; a vCPU connected since has changed its chunk.
    const chunks = contextRegisters.chunks;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      if (chunk === undefined || this.registerChunks[c]?.equals(chunk) === true) continue;
      if (take) this.registerChunks[c] = Buffer.from(chunk);
      for (const { server, regs } of contextRegisters.registersIn(c)) {
        const before = this.contexts[server];
        if (before !== undefined && sameSmall(before, regs)) continue;
        changes.changed.push({ server, regs: regs.slice() });
        if (take) this.contexts[server] = regs.slice();
      }
    }
    return changes;
  }
}

/** Source `irq` has a record among `records` (ascending by irq). */
function listed(records: readonly XiveSourceState[], irq: number): boolean {
  let low = 0;
  let high = records.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (records[mid]!.irq < irq) low = mid + 1;
    else high = mid;
  }
  return records[low]?.irq === irq;
}

type SourceArrays = Pick<BlockCopy, "status" | "saved" | "easHi" | "easLo">;

/** Source `i` has the same record in `a` and `b` (as sourceRecord derives it from the arrays). */
function sameSource(a: SourceArrays, b: SourceArrays, i: number): boolean {
  const sa = a.status[i]!;
  const sb = b.status[i]!;
  const pqA = sa & STATUS_PQ;
  const pqB = sb & STATUS_PQ;
  return (
    (sa & ~STATUS_PQ) === (sb & ~STATUS_PQ) &&
    (a.saved ? pqA : latchedPq(pqA)) === (b.saved ? pqB : latchedPq(pqB)) &&
    (a.saved ? a.saved[i]! : pqA) === (b.saved ? b.saved[i]! : pqB) &&
    (a.easHi[i]! & EAS_HI_END_INDEX) === (b.easHi[i]! & EAS_HI_END_INDEX) &&
    (a.easLo[i]! & (EAS_LO_MASKED | EAS_LO_EISN)) === (b.easLo[i]! & (EAS_LO_MASKED | EAS_LO_EISN))
  );
}

/** The records of block `b` that differ from `copy` (none: all valid ones), ascending. */
function blockChanges(
  b: number,
  block: SourceBlock,
  saved: Uint8Array | undefined,
  copy: BlockCopy | undefined,
  requested: RequestedEnds,
  changes: KeyedChanges<XiveSourceState>,
): void {
  const now: SourceArrays = { status: block.status, saved, easHi: block.easHi, easLo: block.easLo };
  for (let i = 0; i < SOURCES_PER_BLOCK; i++) {
    const irq = (b << SOURCE_BLOCK_SHIFT) | i;
    const valid = (block.easHi[i]! & EAS_HI_VALID) !== 0;
    const wasValid = copy !== undefined && (copy.easHi[i]! & EAS_HI_VALID) !== 0;
    if (valid && !(wasValid && sameSource(copy, now, i)))
      changes.changed.push(sourceRecord(irq, block, i, saved, requested));
    else if (!valid && wasValid) changes.removed.push(irq);
  }
}
