import { StateWriter } from "@vplane/model-kit";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  CONTROLLER_STATE_FORMAT,
  CONTROLLER_STATE_MAGIC,
  HEADER_FLAG,
  MODE_CODE,
  RECORD_BYTES,
  headerOf,
  type ControllerHeader,
  type ControllerState,
  type IcpRecord,
  type IcsSourceRecord,
  type XiveContextState,
  type XiveQueueState,
  type XiveSourceState,
} from "./controller-state.js";

function encodedSize(state: ControllerState): number {
  let size =
    RECORD_BYTES.header +
    12 +
    state.vcpus.length * RECORD_BYTES.vcpu +
    state.machineSources.length * RECORD_BYTES.machineSource +
    state.stoppedTriggers.length * RECORD_BYTES.stoppedTrigger;
  if (state.xive) {
    size +=
      12 +
      state.xive.sources.length * RECORD_BYTES.xiveSource +
      state.xive.queues.length * RECORD_BYTES.xiveQueue +
      state.xive.contexts.length * RECORD_BYTES.xiveContext +
      requestedEndsSize(state.xive.sources);
  }
  if (state.xics) {
    size +=
      8 + state.xics.sources.length * RECORD_BYTES.icsSource + state.xics.icps.length * RECORD_BYTES.icp;
  }
  return size;
}

/** Encodes a controller's state in format version 1 (layout: controller-state.ts). */
export function encodeControllerState(state: ControllerState): Uint8Array {
  const w = new StateWriter(encodedSize(state), CONTROLLER_STATE_FORMAT);
  writeHeader(w, headerOf(state), CONTROLLER_STATE_MAGIC);
  writeVcpus(w, state.vcpus);
  writeMachineSources(w, state.machineSources);
  writeU32List(w, state.stoppedTriggers);
  if (state.xive) {
    const { sources, queues, contexts } = state.xive;
    writeList(w, sources, writeXiveSource);
    writeList(w, queues, writeXiveQueue);
    writeList(w, contexts, writeXiveContext);
    writeRequestedEnds(w, sources);
  }
  if (state.xics) {
    writeList(w, state.xics.sources, writeIcsSource);
    writeList(w, state.xics.icps, writeIcp);
  }
  return w.bytes;
}

/** The sources whose QEMU END is not where they are routed (the optional requested_ends list). */
function movedSources(sources: readonly XiveSourceState[]): XiveSourceState[] {
  return sources.filter((s) => s.requestedEnd !== s.endIndex);
}

/** The bytes of the requested_ends list of `sources`: none when every source is where QEMU's END says. */
export function requestedEndsSize(sources: readonly XiveSourceState[]): number {
  const n = movedSources(sources).length;
  return n === 0 ? 0 : 4 + n * RECORD_BYTES.requestedEnd;
}

/** The optional requested_ends list, written only when a source has one (layout: controller-state.ts). */
export function writeRequestedEnds(w: StateWriter, sources: readonly XiveSourceState[]): void {
  const moved = movedSources(sources);
  if (moved.length > 0) writeList(w, moved, (w, s) => w.u32(s.irq).u32(s.requestedEnd));
}

/*
 * The parts of the layout, shared with the pre-copy delta (controller-delta.ts), which writes
 * the same header and records.
 */

/** The 48-byte header; `magic` tells a full state from a delta. */
export function writeHeader(w: StateWriter, header: ControllerHeader, magic: number): void {
  w.u32(CONTROLLER_STATE_FORMAT_VERSION);
  w.u32(magic);
  w.u8(MODE_CODE[header.mode]);
  w.u8(MODE_CODE[header.activeMode]);
  w.u8(
    (header.xiveSelected ? HEADER_FLAG.XIVE_SELECTED : 0) |
      (header.storeEoi ? HEADER_FLAG.STORE_EOI : 0) |
      (header.nrServersSetting !== undefined ? HEADER_FLAG.NR_SERVERS_SET : 0),
  );
  w.u8(header.hvPriority);
  w.u32(header.nrIrqs);
  w.u32(header.nrServersSetting ?? 0);
  w.u32(header.maxVcpus);
  w.u32(header.maxVcpuIds);
  w.u8(header.hostPageShift);
  w.u8(0);
  w.u16(0);
  w.u64(header.guestMemoryBytes);
  w.u64(0);
}

/** A u32 count, then each record. */
export function writeList<T>(
  w: StateWriter,
  list: readonly T[],
  write: (w: StateWriter, record: T) => void,
): void {
  w.u32(list.length);
  for (const record of list) write(w, record);
}

export function writeVcpus(w: StateWriter, vcpus: ControllerState["vcpus"]): void {
  writeList(w, vcpus, (w, v) => w.u32(v.vcpuId).u32(v.server));
}

export function writeMachineSources(w: StateWriter, sources: ControllerState["machineSources"]): void {
  writeList(w, sources, (w, s) => w.u32(s.irq).u8(s.lsi ? 1 : 0));
}

/** A u32 count, then each u32 (stopped triggers, removed keys). */
export function writeU32List(w: StateWriter, irqs: readonly number[]): void {
  writeList(w, irqs, (w, irq) => w.u32(irq));
}

export function writeXiveSource(w: StateWriter, s: XiveSourceState): void {
  w.u32(s.irq);
  w.u8(s.pq | (s.asserted ? 4 : 0) | (s.lsi ? 8 : 0));
  w.u8(s.savedPq);
  w.u32(s.endIndex);
  w.u32(((s.masked ? 0x8000_0000 : 0) | s.eisn) >>> 0);
}

export function writeXiveQueue(w: StateWriter, q: XiveQueueState): void {
  w.u32(q.endIndex);
  w.u8((q.valid ? 1 : 0) | (q.alwaysNotify ? 2 : 0));
  w.u8(q.qshift);
  w.u8(q.generation);
  w.u8((q.esn << 2) | q.ese);
  w.u32(q.qindex);
  w.u64(q.qaddr);
  w.u64(q.entriesWritten);
  w.u32(q.targetedSources);
}

export function writeXiveContext(w: StateWriter, c: XiveContextState): void {
  w.u32(c.server);
  w.raw(c.regs);
}

export function writeIcsSource(w: StateWriter, s: IcsSourceRecord): void {
  w.u32(s.nr);
  w.u8(s.flags);
  w.u8(s.priority);
  w.u8(s.savedPriority);
  w.u8(s.status);
  w.u32(s.server);
}

export function writeIcp(w: StateWriter, icp: IcpRecord): void {
  w.u32(icp.server);
  w.u32(icp.xirr);
  w.u8(icp.pendingPriority);
  w.u8(icp.mfrr);
  w.u16(0);
}
