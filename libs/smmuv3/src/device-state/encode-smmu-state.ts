import { StateWriter } from "@vplane/model-kit";
import {
  EVENT_BOOLEANS,
  EVENT_FIELDS,
  FEATURE_FLAGS,
  PASID_KIND,
  SMMU_STATE_FORMAT_VERSION,
  SMMU_STATE_FORMAT,
  SMMU_STATE_MAGIC,
  STATE_SIZES,
  type EventState,
  type SmmuState,
} from "./smmu-state.js";

/** The bytes of `state` in format version 1 (layout in smmu-state.ts). */
export function encodeSmmuState(state: SmmuState): Uint8Array {
  const w = writeSmmuState(state, SMMU_STATE_MAGIC, 0);
  return w.bytes;
}

/**
 * Writes `state` with `magic` into a writer `trailerBytes` longer than the state, left at the
 * trailer (a pre-copy delta's removed keys, smmu-delta.ts).
 */
export function writeSmmuState(state: SmmuState, magic: number, trailerBytes: number): StateWriter {
  const size =
    STATE_SIZES.header +
    STATE_SIZES.counters +
    STATE_SIZES.pasidTable +
    STATE_SIZES.msi +
    4 * 4 +
    state.mappings.length * STATE_SIZES.mapping +
    state.devices.length * STATE_SIZES.device +
    state.events.length * STATE_SIZES.event +
    state.pageRequests.length * STATE_SIZES.pageRequest;
  const w = new StateWriter(size + trailerBytes, SMMU_STATE_FORMAT);
  const f = state.features;
  let featureFlags = 0;
  FEATURE_FLAGS.forEach((key, bit) => {
    if (f[key]) featureFlags |= 1 << bit;
  });
  w.u32(SMMU_STATE_FORMAT_VERSION).u32(magic);
  w.u8(f.streamIdBits).u8(f.substreamIdBits).u8(f.outputAddressBits).u8(state.stage2GranuleBits);
  w.u16(featureFlags).u16(0);
  w.u32(state.eventQueueDepth).u32(state.pageRequestCapacity).u32(state.pageRequestTimeoutMs).u32(0);
  w.u64(state.guestMemoryBytes);

  w.u32(state.eventSequence).u32(state.nextCookie);
  w.u64(state.eventsReported).u64(state.eventsDropped).u64(state.delivered);

  const p = state.pasidTable;
  w.u8(p ? PASID_KIND[p.kind] : PASID_KIND.none).zeros(7);
  w.u64(p?.kind === "translate" ? p.contextPtr : 0);

  const m = state.msi;
  w.u8(m ? 1 : 0).zeros(7);
  w.u64(m?.giova ?? 0)
    .u64(m?.gpa ?? 0)
    .u64(m?.size ?? 0);

  w.u32(state.mappings.length);
  for (const x of state.mappings) w.u64(x.ipa).u64(x.hostAddress).u64(x.size).u8(x.perm).zeros(7);

  w.u32(state.devices.length);
  for (const d of state.devices) {
    w.u32(d.streamId).u32(d.virtualStreamId);
    w.u8((d.pageRequests ? 1 : 0) | (d.guestSte ? 2 : 0)).zeros(7);
    w.u64(d.guestSte?.[0] ?? 0n).u64(d.guestSte?.[1] ?? 0n);
  }

  w.u32(state.events.length);
  for (const e of state.events) writeEvent(w, e);

  w.u32(state.pageRequests.length);
  for (const r of state.pageRequests) {
    w.u32(r.cookie)
      .u32(r.streamId)
      .u32(r.virtualStreamId)
      .u32(r.substreamId ?? 0);
    w.u16(r.groupId)
      .u8(r.flags)
      .u8(r.perm)
      .u8(r.held ? 1 : 0)
      .zeros(3);
    w.u32(r.remainingMs).u32(0);
    w.u64(r.address).u64(r.eventsBefore);
  }
  if (w.offset !== size) throw new Error(`smmu state: wrote ${w.offset} of ${size} bytes`);
  return w;
}

function writeEvent(w: StateWriter, e: EventState): void {
  w.u32(e.sequence);
  if (e.lost) {
    w.u8(1).zeros(STATE_SIZES.event - 5);
    return;
  }
  const ev = e.event;
  let present = 0;
  EVENT_FIELDS.forEach((key, bit) => {
    if (ev[key] !== undefined) present |= 1 << bit;
  });
  let flags = 0;
  EVENT_BOOLEANS.forEach((key, bit) => {
    if (ev[key] === true) flags |= 1 << bit;
  });
  w.u8(0)
    .u8(ev.id)
    .u8(ev.eventClass ?? 0)
    .u8(0);
  w.u16(present)
    .u16(flags)
    .u16(ev.stag ?? 0)
    .u16(0);
  w.u32(ev.streamId).u32(ev.substreamId ?? 0);
  w.u64(ev.inputAddress ?? 0n)
    .u64(ev.ipa ?? 0)
    .u64(ev.fetchAddress ?? 0);
}
