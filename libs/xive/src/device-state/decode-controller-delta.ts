import { StateReader, stateError } from "@vplane/model-kit";
import {
  CONTROLLER_DELTA_MAGIC,
  DELTA_LISTS,
  type ControllerDelta,
  type KeyedChanges,
} from "./controller-delta.js";
import {
  CONTROLLER_STATE_FORMAT,
  RECORD_BYTES,
  type IcpRecord,
  type IcsSourceRecord,
  type XiveContextState,
  type XiveQueueState,
  type XiveSourceState,
} from "./controller-state.js";
import {
  readHeader,
  readMachineSources,
  readRequestedEnds,
  readU32List,
  readVcpus,
} from "./decode-controller-state.js";

const malformed = (field: string, message: string) =>
  stateError(CONTROLLER_STATE_FORMAT, "STATE_MALFORMED", field, message);

/** Reads one record at `at` (the record's bytes are there: StateReader.take checked them). */
type RecordParser<T> = (v: DataView, at: number, r: StateReader) => T;

const parseXiveSource: RecordParser<XiveSourceState> = (v, at, r) => {
  const status = v.getUint8(at + 4);
  if (status > 0xf) throw malformed(r.field("status"), `status 0x${status.toString(16)} has unknown bits`);
  const lo = v.getUint32(at + 10);
  const endIndex = v.getUint32(at + 6);
  return {
    irq: v.getUint32(at),
    lsi: (status & 8) !== 0,
    asserted: (status & 4) !== 0,
    pq: status & 3,
    savedPq: v.getUint8(at + 5),
    endIndex,
    masked: (lo & 0x8000_0000) !== 0,
    eisn: lo & 0x7fff_ffff,
    requestedEnd: endIndex, // unless requested_ends names it
  };
};

const parseXiveQueue: RecordParser<XiveQueueState> = (v, at, r) => {
  const flags = v.getUint8(at + 4);
  const esb = v.getUint8(at + 7);
  if (flags > 3 || esb > 0xf) throw malformed(r.field("flags"), "unknown flag bits");
  return {
    endIndex: v.getUint32(at),
    valid: (flags & 1) !== 0,
    alwaysNotify: (flags & 2) !== 0,
    qshift: v.getUint8(at + 5),
    generation: v.getUint8(at + 6),
    esn: esb >>> 2,
    ese: esb & 3,
    qindex: v.getUint32(at + 8),
    qaddr: r.safeU64At(at + 12, "qaddr"),
    entriesWritten: r.safeU64At(at + 20, "entries_written"),
    targetedSources: v.getUint32(at + 28),
  };
};

const parseXiveContext: RecordParser<XiveContextState> = (v, at) => ({
  server: v.getUint32(at),
  regs: new Uint8Array(v.buffer.slice(v.byteOffset + at + 4, v.byteOffset + at + 4 + 64)),
});

const parseIcsSource: RecordParser<IcsSourceRecord> = (v, at) => ({
  nr: v.getUint32(at),
  flags: v.getUint8(at + 4),
  priority: v.getUint8(at + 5),
  savedPriority: v.getUint8(at + 6),
  status: v.getUint8(at + 7),
  server: v.getUint32(at + 8),
});

const parseIcp: RecordParser<IcpRecord> = (v, at, r) => {
  if (v.getUint16(at + 10) !== 0) throw malformed(r.field("reserved"), "reserved bytes are not zero");
  return {
    server: v.getUint32(at),
    xirr: v.getUint32(at + 4),
    pendingPriority: v.getUint8(at + 8),
    mfrr: v.getUint8(at + 9),
  };
};

/** Keys strictly ascending (each list of a delta is), naming the first that is not. */
function checkAscending(keys: readonly number[], list: string): void {
  for (let i = 1; i < keys.length; i++) {
    if (keys[i]! <= keys[i - 1]!)
      throw malformed(`${list}[${i}]`, `key ${keys[i]} is not above the previous ${keys[i - 1]}`);
  }
}

function readKeyed<T>(
  r: StateReader,
  list: string,
  recordBytes: number,
  parse: RecordParser<T>,
  key: (record: T) => number,
): KeyedChanges<T> {
  const n = r.count(`${list}.changed`, recordBytes);
  const changed: T[] = [];
  for (let i = 0; i < n; i++) {
    const at = r.take(recordBytes);
    r.record(`${list}.changed`, i);
    changed.push(parse(r.data, at, r));
  }
  checkAscending(changed.map(key), `${list}.changed`);
  const removed = readU32List(r, `${list}.removed`, "key");
  checkAscending(removed, `${list}.removed`);
  return { changed, removed };
}

/**
 * Decodes a pre-copy delta (layout: controller-delta.ts): its header and the vCPU and machine
 * lists are checked as a full state's; the records only for their layout and order, since they
 * make sense only with the state they apply to (mergeControllerDelta, then
 * decodeControllerState's checks of the result).
 */
export function decodeControllerDelta(bytes: Uint8Array): ControllerDelta {
  const r = new StateReader(bytes, CONTROLLER_STATE_FORMAT);
  const header = readHeader(r, CONTROLLER_DELTA_MAGIC);
  const lists = r.u8("lists");
  if (lists & ~(DELTA_LISTS.VCPUS | DELTA_LISTS.MACHINE_SOURCES))
    throw malformed("lists", `unknown list flags 0x${lists.toString(16)}`);
  r.reserved(3, "reserved");
  const vcpus = lists & DELTA_LISTS.VCPUS ? readVcpus(r, header) : undefined;
  const machineSources = lists & DELTA_LISTS.MACHINE_SOURCES ? readMachineSources(r, header) : undefined;
  const stoppedTriggers = readU32List(r, "stopped_triggers", "irq");
  const delta: ControllerDelta = {
    header,
    vcpus,
    machineSources,
    stoppedTriggers,
    xive: undefined,
    xics: undefined,
  };
  if (header.activeMode === "XIVE") {
    delta.xive = {
      sources: readKeyed(r, "xive.sources", RECORD_BYTES.xiveSource, parseXiveSource, (s) => s.irq),
      queues: readKeyed(r, "xive.queues", RECORD_BYTES.xiveQueue, parseXiveQueue, (q) => q.endIndex),
      contexts: readKeyed(r, "xive.contexts", RECORD_BYTES.xiveContext, parseXiveContext, (c) => c.server),
    };
    readRequestedEnds(r, delta.xive.sources.changed, "xive.sources.changed");
  } else {
    delta.xics = {
      sources: readKeyed(r, "xics.sources", RECORD_BYTES.icsSource, parseIcsSource, (s) => s.nr),
      icps: readKeyed(r, "xics.icps", RECORD_BYTES.icp, parseIcp, (c) => c.server),
    };
  }
  r.end();
  return delta;
}
