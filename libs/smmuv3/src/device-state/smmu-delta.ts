import { StateReader, mergeKeyed, stateError, type KeyedChanges } from "@vplane/model-kit";
import type { Stage2Mapping } from "../stage2-domain.js";
import { readSmmuState } from "./decode-smmu-state.js";
import { writeSmmuState } from "./encode-smmu-state.js";
import { SMMU_STATE_FORMAT, type DeviceState, type SmmuState } from "./smmu-state.js";

/**
 * What changed in an SMMU's state between two pre-copy reads (issue 14): the whole state but for
 * its two keyed lists, the stage-2 mappings (by IPA) and the devices (by StreamID), of which only
 * the records that changed or appeared travel, with the keys that went away. The rest is small
 * or runtime state (features, limits, counters, seed PASID table, MSI binding, held events and
 * page requests) and moves whole each time. A delta from nothing holds everything.
 *
 * Layout: the full state's (smmu-state.ts) with magic 0x33444d53 (bytes "SMD3") and the changed
 * records in its mapping and device lists, then a trailer:
 * ```
 * removed_mappings u32 n, n × u64 ipa        ascending
 * removed_devices  u32 n, n × u32 stream_id  ascending
 * ```
 */
export const SMMU_DELTA_MAGIC = 0x3344_4d53;

export interface SmmuDelta {
  /** The state, its mapping and device lists holding only the records that changed. */
  state: SmmuState;
  mappings: KeyedChanges<Stage2Mapping>;
  devices: KeyedChanges<DeviceState>;
}

const ipaOf = (m: Stage2Mapping) => m.ipa;
const sidOf = (d: DeviceState) => d.streamId;

/** The state `delta` makes of `base` (undefined: the first delta); it still needs decodeSmmuState's checks. */
export function mergeSmmuDelta(base: SmmuState | undefined, delta: SmmuDelta): SmmuState {
  return {
    ...delta.state,
    mappings: mergeKeyed(base?.mappings ?? [], delta.mappings, ipaOf, "mappings", SMMU_STATE_FORMAT),
    devices: mergeKeyed(base?.devices ?? [], delta.devices, sidOf, "devices", SMMU_STATE_FORMAT),
  };
}

export function encodeSmmuDelta(delta: SmmuDelta): Uint8Array {
  const { removed: ipas } = delta.mappings;
  const { removed: sids } = delta.devices;
  const w = writeSmmuState(delta.state, SMMU_DELTA_MAGIC, 8 + ipas.length * 8 + sids.length * 4);
  w.u32(ipas.length);
  for (const ipa of ipas) w.u64(ipa);
  w.u32(sids.length);
  for (const sid of sids) w.u32(sid);
  return w.bytes;
}

function readRemoved(r: StateReader, list: string, bytes: 4 | 8): number[] {
  const out: number[] = [];
  for (let i = 0, n = r.count(list, bytes); i < n; i++) {
    r.record(list, i);
    const key = bytes === 8 ? r.safeU64("key") : r.u32("key");
    if (i > 0 && key <= out[i - 1]!)
      throw stateError(SMMU_STATE_FORMAT, "STATE_MALFORMED", r.field("key"), "keys must ascend");
    out.push(key);
  }
  return out;
}

/** Decodes a delta: the state part with decodeSmmuState's checks that hold for a part, then the trailer. */
export function decodeSmmuDelta(bytes: Uint8Array): SmmuDelta {
  const r = new StateReader(bytes, SMMU_STATE_FORMAT);
  const state = readSmmuState(r, SMMU_DELTA_MAGIC, false);
  const removedMappings = readRemoved(r, "removed_mappings", 8);
  const removedDevices = readRemoved(r, "removed_devices", 4);
  r.end();
  return {
    state,
    mappings: { changed: state.mappings, removed: removedMappings },
    devices: { changed: state.devices, removed: removedDevices },
  };
}

/** The bytes encodeSmmuDelta writes (a pre-copy read's size). */
export function smmuDeltaSize(delta: SmmuDelta): number {
  return encodeSmmuDelta(delta).byteLength;
}
