import { checkInteger, invalidArgument } from "./smmu-error.js";

/**
 * What one virtual SMMU advertises (the ID registers a guest reads; digest §2.7 lists the
 * fields iommufd passes on: IDR0 ST_LEVEL/CD2L/ASID16/TTF/STALL_MODEL, IDR1 SIDSIZE/SSIDSIZE,
 * IDR3 RIL, IDR5 GRAN4K/16K/64K and OAS). The model checks guest structures against them the
 * way QEMU's decode_ste/decode_cd do (digest §4.1): a stage, granule or size not advertised
 * makes the STE or CD ILLEGAL.
 */
export interface SmmuFeatures {
  /** IDR1.SIDSIZE: StreamID width in bits, 1..32. Default 16 (QEMU's model). */
  streamIdBits: number;
  /** IDR1.SSIDSIZE: SubstreamID width in bits, 0..20 (0 = no substreams). Default 20 (KubeVirt ssidSize). */
  substreamIdBits: number;
  /** IDR5.GRAN4K/16K/64K. Default all three. */
  granule4K: boolean;
  granule16K: boolean;
  granule64K: boolean;
  /**
   * IDR5.OAS as bits: 32, 36, 40, 42, 44 or 48. Default 48 (KubeVirt oas). 52 needs the LPA
   * descriptor formats, which this model does not implement, so it is refused.
   */
  outputAddressBits: number;
  /** IDR0.ASID16 (16-bit ASIDs, else 8). Default true. */
  asid16: boolean;
  /** IDR0.VMID16 (16-bit VMIDs, else 8). Default true. */
  vmid16: boolean;
  /** IDR3.RIL: range invalidation (TLBI NUM/SCALE/TG/TTL). Default true. */
  rangeInvalidation: boolean;
  /** IDR0.CD2L: two-level context-descriptor tables. Default true. */
  twoLevelCdTable: boolean;
  /** IDR0.ST_LEVEL: two-level stream tables (guest-programmed stream table only). Default true. */
  twoLevelStreamTable: boolean;
  /** IDR0.STALL_MODEL allows stalls (CD.S = 1): recoverable faults become page requests. Default true. */
  stall: boolean;
  /** IDR0.ATS: ATC_INV is accepted. Default true. */
  ats: boolean;
  /** IDR0.PRI: devices may issue page requests (recoverable faults). Default true. */
  pri: boolean;
}

export const DEFAULT_FEATURES: Readonly<SmmuFeatures> = Object.freeze({
  streamIdBits: 16,
  substreamIdBits: 20,
  granule4K: true,
  granule16K: true,
  granule64K: true,
  outputAddressBits: 48,
  asid16: true,
  vmid16: true,
  rangeInvalidation: true,
  twoLevelCdTable: true,
  twoLevelStreamTable: true,
  stall: true,
  ats: true,
  pri: true,
});

/** The IPS/PS/OAS encodings (CD.IPS, STE.S2PS, IDR5.OAS) as address bits; index = encoding. */
export const ADDRESS_SIZE_BITS: readonly number[] = [32, 36, 40, 42, 44, 48, 52];

/** Fills defaults and checks ranges; throws INVALID_ARGUMENT on a bad value. */
export function resolveFeatures(partial: Partial<SmmuFeatures> = {}): SmmuFeatures {
  const f: SmmuFeatures = { ...DEFAULT_FEATURES, ...partial };
  checkInteger(f.streamIdBits, 1, 32, "features.streamIdBits");
  checkInteger(f.substreamIdBits, 0, 20, "features.substreamIdBits");
  if (!ADDRESS_SIZE_BITS.slice(0, 6).includes(f.outputAddressBits)) {
    throw invalidArgument(
      "UNSUPPORTED_OUTPUT_SIZE",
      `features.outputAddressBits must be one of 32, 36, 40, 42, 44, 48, got ${f.outputAddressBits}`,
      "features.outputAddressBits",
    );
  }
  if (!f.granule4K && !f.granule16K && !f.granule64K) {
    throw invalidArgument("NO_GRANULE", "at least one translation granule must be advertised", "features");
  }
  return f;
}

/** Whether the granule of 2^bits bytes is advertised. */
export function granuleSupported(f: SmmuFeatures, granuleBits: number): boolean {
  return granuleBits === 12
    ? f.granule4K
    : granuleBits === 14
      ? f.granule16K
      : granuleBits === 16 && f.granule64K;
}

/** Encodes the advertised features into IDR0/IDR1/IDR3/IDR5 the way GET_HW_INFO reports them (digest §2.7). */
export function encodeIdRegisters(f: SmmuFeatures): {
  idr0: number;
  idr1: number;
  idr3: number;
  idr5: number;
} {
  // IDR0 (Linux arm-smmu-v3.h): S2P[0] S1P[1] TTF[3:2]=AArch64 (2) ATS[10] ASID16[12] PRI[16]
  // VMID16[18] CD2L[19] STALL_MODEL[25:24] (0 stall, 1 terminate only) ST_LEVEL[28:27]
  const idr0 =
    (1 << 0) |
    (1 << 1) |
    (2 << 2) |
    (f.ats ? 1 << 10 : 0) |
    (f.pri ? 1 << 16 : 0) |
    (f.asid16 ? 1 << 12 : 0) |
    (f.vmid16 ? 1 << 18 : 0) |
    (f.twoLevelCdTable ? 1 << 19 : 0) |
    ((f.stall ? 0 : 1) << 24) |
    ((f.twoLevelStreamTable ? 1 : 0) << 27);
  // IDR1: SIDSIZE[5:0] SSIDSIZE[10:6]
  const idr1 = f.streamIdBits | (f.substreamIdBits << 6);
  // IDR3: RIL[10]
  const idr3 = f.rangeInvalidation ? 1 << 10 : 0;
  // IDR5: OAS[2:0] GRAN4K[4] GRAN16K[5] GRAN64K[6]
  const idr5 =
    ADDRESS_SIZE_BITS.indexOf(f.outputAddressBits) |
    (f.granule4K ? 1 << 4 : 0) |
    (f.granule16K ? 1 << 5 : 0) |
    (f.granule64K ? 1 << 6 : 0);
  return { idr0: idr0 >>> 0, idr1, idr3, idr5 };
}

/**
 * The features an SMMU's ID registers advertise (IOMMU_GET_HW_INFO's idr[0..5] on a native
 * SMMU): the inverse of encodeIdRegisters on the fields it writes. An OAS of 52 bits is read as
 * 48, the widest this model walks.
 */
export function decodeIdRegisters(idr: readonly number[]): SmmuFeatures {
  const [idr0 = 0, idr1 = 0, , idr3 = 0, , idr5 = 0] = idr;
  const bit = (word: number, n: number) => ((word >>> n) & 1) === 1;
  const oas = ADDRESS_SIZE_BITS[idr5 & 0x7] ?? 48;
  return resolveFeatures({
    streamIdBits: idr1 & 0x3f,
    substreamIdBits: (idr1 >>> 6) & 0x1f,
    granule4K: bit(idr5, 4),
    granule16K: bit(idr5, 5),
    granule64K: bit(idr5, 6),
    outputAddressBits: Math.min(oas, 48),
    asid16: bit(idr0, 12),
    vmid16: bit(idr0, 18),
    rangeInvalidation: bit(idr3, 10),
    twoLevelCdTable: bit(idr0, 19),
    twoLevelStreamTable: ((idr0 >>> 27) & 0x3) === 1,
    // STALL_MODEL (IDR0[25:24]) 1 = terminate only: no stalls.
    stall: ((idr0 >>> 24) & 0x3) !== 1,
    ats: bit(idr0, 10),
    pri: bit(idr0, 16),
  });
}
