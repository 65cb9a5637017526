import { StateReader, stateError } from "@vplane/model-kit";
import { CONTROLLER_DELTA_MAGIC, DELTA_LISTS } from "./controller-delta.js";
import { CONTROLLER_STATE_FORMAT, CONTROLLER_STATE_MAGIC, RECORD_BYTES } from "./controller-state.js";
import { readHeader } from "./decode-controller-state.js";

/** Each keyed list of a delta, in its order, with its record size. */
const KEYED = {
  XIVE: [
    ["xive.sources", RECORD_BYTES.xiveSource],
    ["xive.queues", RECORD_BYTES.xiveQueue],
    ["xive.contexts", RECORD_BYTES.xiveContext],
  ],
  XICS: [
    ["xics.sources", RECORD_BYTES.icsSource],
    ["xics.icps", RECORD_BYTES.icp],
  ],
} as const;

/**
 * The full state a first pre-copy delta makes (issue 14: the destination's iteration 0), from its
 * bytes: a delta from nothing holds the vCPU and machine-source lists and every record, and its
 * layout is the full state's records in the full state's order (controller-delta.ts), so the
 * state is the delta's bytes with the full state's magic, without the list flags word and the
 * removed lists (XIVE's optional requested_ends list is the same in both, and last). The same
 * bytes as encodeControllerState(mergeControllerDelta(undefined, decodeControllerDelta(bytes))),
 * without a record decoded, merged or encoded (at 1,048,576 sources that was a million objects
 * built, then dropped, three times over); the result still needs decodeControllerState's
 * checks, which the delta's records had not had. Refused as that
 * path refuses: the delta's layout as decodeControllerDelta (STATE_TRUNCATED, STATE_MALFORMED,
 * STATE_TRAILING_BYTES, its header as a full state's), a delta without both lists or with a
 * removed key as mergeControllerDelta (STATE_DELTA_MISMATCH).
 */
export function firstDeltaAsState(bytes: Uint8Array): Uint8Array {
  const r = new StateReader(bytes, CONTROLLER_STATE_FORMAT);
  const offset = () => bytes.length - r.remaining;
  const header = readHeader(r, CONTROLLER_DELTA_MAGIC);
  const lists = r.u8("lists");
  if (lists & ~(DELTA_LISTS.VCPUS | DELTA_LISTS.MACHINE_SOURCES))
    throw stateError(
      CONTROLLER_STATE_FORMAT,
      "STATE_MALFORMED",
      "lists",
      `unknown list flags 0x${lists.toString(16)}`,
    );
  r.reserved(3, "reserved");
  if (lists !== (DELTA_LISTS.VCPUS | DELTA_LISTS.MACHINE_SOURCES))
    throw stateError(
      CONTROLLER_STATE_FORMAT,
      "STATE_DELTA_MISMATCH",
      "lists",
      "the first delta must hold the vCPUs and the machine's sources",
    );
  // The state's parts, copied once the whole delta has been read (a short one is refused first).
  const parts = [bytes.subarray(0, offset() - 4)];
  const list = (name: string, recordBytes: number) => r.take(r.count(name, recordBytes) * recordBytes);
  const start = offset();
  list("vcpus", RECORD_BYTES.vcpu);
  list("machine_sources", RECORD_BYTES.machineSource);
  list("stopped_triggers", RECORD_BYTES.stoppedTrigger);
  parts.push(bytes.subarray(start, offset()));
  for (const [name, recordBytes] of KEYED[header.activeMode]) {
    const changed = offset();
    list(`${name}.changed`, recordBytes);
    parts.push(bytes.subarray(changed, offset()));
    const removed = r.count(`${name}.removed`, RECORD_BYTES.stoppedTrigger);
    if (removed > 0)
      throw stateError(
        CONTROLLER_STATE_FORMAT,
        "STATE_DELTA_MISMATCH",
        `${name}.removed`,
        `${r.data.getUint32(offset(), CONTROLLER_STATE_FORMAT.littleEndian)} is not in the state the delta applies to`,
      );
  }
  // XIVE's optional requested_ends list: the full state's layout, last in both.
  if (header.activeMode === "XIVE" && r.remaining > 0) {
    const requested = offset();
    list("xive.requested_ends", RECORD_BYTES.requestedEnd);
    parts.push(bytes.subarray(requested, offset()));
  }
  r.end();
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let written = 0;
  for (const part of parts) {
    out.set(part, written);
    written += part.length;
  }
  new DataView(out.buffer).setUint32(4, CONTROLLER_STATE_MAGIC, CONTROLLER_STATE_FORMAT.littleEndian);
  return out;
}
