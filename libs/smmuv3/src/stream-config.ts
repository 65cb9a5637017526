import type { ContextDescriptor } from "./context-descriptor.js";
import type { SmmuFeatures } from "./features.js";
import type { TlbContext } from "./iotlb.js";
import { S1Fmt, type GuestStage1 } from "./stream-table-entry.js";

/** What a stream's transactions go through (numbers, for the hot path's switch). */
export const StreamKind = { ABORT: 0, STAGE2_ONLY: 1, NESTED: 2, BAD_STE: 3 } as const;

/** A CD decoded and cached with the IOTLB context of its (ASID, VMID). */
export interface CachedCd {
  cd: ContextDescriptor;
  ctx: TlbContext;
  /** Iotlb.epoch when ctx was taken. */
  epoch: number;
}

/** A stream's decoded configuration and its cached CDs (the config cache, digest §4.1 step 2). */
export class StreamConfig {
  kind: number = StreamKind.STAGE2_ONLY;
  badReason = "";
  contextPtr = 0;
  s1fmt = 0;
  s1cdmax = 0;
  s1dss = 0;
  s1stalld = false;
  /** CD 0 (the common case: no SubstreamID), apart from the map so a hit skips a lookup. */
  cd0: CachedCd | undefined = undefined;
  readonly cds = new Map<number, CachedCd>();

  get cachedCds(): number {
    return (this.cd0 ? 1 : 0) + this.cds.size;
  }
}

/**
 * decode_ste for the guest's stage-1 config (digest §4.1; the stage-2 half is the host's):
 * abort, bypass (stage 2 only) or invalid pass through; for stage-1 translation, S1CDMax beyond
 * SSIDSIZE, a reserved or unsupported S1Fmt, or the reserved S1DSS 3 make the STE ILLEGAL
 * (C_BAD_STE). Where QEMU refuses any S1CDMax != 0 and S1STALLD (it has neither substreams nor
 * stalls), this model implements both.
 */
export function decodeStreamConfig(stage1: GuestStage1, features: SmmuFeatures): StreamConfig {
  const st = new StreamConfig();
  switch (stage1.kind) {
    case "abort":
      st.kind = StreamKind.ABORT;
      return st;
    case "bypass":
      st.kind = StreamKind.STAGE2_ONLY;
      return st;
    case "invalid":
      st.kind = StreamKind.BAD_STE;
      st.badReason = "STE.V is 0";
      return st;
    case "translate":
      break;
  }
  st.kind = StreamKind.NESTED;
  st.contextPtr = stage1.contextPtr;
  st.s1fmt = stage1.s1fmt;
  st.s1cdmax = stage1.s1cdmax;
  st.s1dss = stage1.s1dss;
  st.s1stalld = stage1.s1stalld;
  if (st.s1cdmax > features.substreamIdBits) {
    st.kind = StreamKind.BAD_STE;
    st.badReason = `S1CDMax ${st.s1cdmax} exceeds SSIDSIZE ${features.substreamIdBits}`;
  } else if (
    st.s1cdmax !== 0 &&
    (st.s1fmt === 3 || (st.s1fmt !== S1Fmt.LINEAR && !features.twoLevelCdTable))
  ) {
    st.kind = StreamKind.BAD_STE;
    st.badReason = `S1Fmt ${st.s1fmt} is reserved or not supported`;
  } else if (st.s1cdmax !== 0 && st.s1dss === 3) {
    st.kind = StreamKind.BAD_STE;
    st.badReason = "S1DSS 3 is reserved";
  }
  return st;
}
