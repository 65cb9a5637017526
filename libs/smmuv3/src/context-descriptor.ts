import { POW2, bitsOf } from "./bits.js";
import { ADDRESS_SIZE_BITS, granuleSupported, type SmmuFeatures } from "./features.js";
import {
  granuleFromTg0,
  granuleFromTg1,
  startLevelFor,
  strideOf,
  tlbGranuleCode,
  type GranuleBits,
} from "./translation-granule.js";

/** One of the two stage-1 translation tables a CD describes (TTB0 for low, TTB1 for high addresses). */
export interface TranslationTable {
  granuleBits: GranuleBits;
  /** IOTLB granule code (1/2/3 = 4K/16K/64K). */
  tg: number;
  /** TxSZ: the region covers 2^(64 - tsz) bytes. */
  tsz: number;
  inputBits: number;
  startLevel: number;
  /** IPA of the start-level table, aligned to its size as QEMU aligns it. */
  ttb: number;
  /** HADx: hierarchical attributes (APTable) disabled. */
  had: boolean;
}

/** A context descriptor that passed decode_cd (digest §3.2, §4.1). */
export interface ContextDescriptor {
  asid: number;
  /** [TTB0, TTB1]; undefined when EPDx disables the table (a walk there is a translation fault). */
  tables: [TranslationTable | undefined, TranslationTable | undefined];
  /** min(IPS, IDR5.OAS) in bits: stage-1 outputs at or above 2^oasBits are address-size faults. */
  oasBits: number;
  /** AFFD: access-flag faults disabled. */
  affd: boolean;
  /** TBI0/TBI1: top byte ignored for region selection. */
  tbi: [boolean, boolean];
  /** R: record stage-1 faults as events. */
  record: boolean;
  /** S: stall fault model (recoverable faults become page requests). */
  stall: boolean;
  /** The raw words, for dumps. */
  words: [bigint, bigint, bigint, bigint];
}

export type CdDecode = { ok: true; cd: ContextDescriptor } | { ok: false; reason: string };

/**
 * decode_cd (digest §4.1): V, AA64 and A must be 1 and ENDI, HA and HD 0, else C_BAD_CD; S = 1
 * needs a stall-capable SMMU. For each table not disabled by EPDx: TxSZ in 16..39, the granule
 * valid and advertised, TTB within the output size. OAS = min(IPS, IDR5.OAS).
 *
 * Where this differs from QEMU: QEMU refuses S = 1 (it has no stall model); this model accepts
 * it when the features advertise stalls, and turns the faults into page requests.
 */
export function decodeContextDescriptor(
  words: [bigint, bigint, bigint, bigint],
  features: SmmuFeatures,
): CdDecode {
  const [dw0, dw1, dw2] = words;
  const bad = (reason: string): CdDecode => ({ ok: false, reason });
  if (bitsOf(dw0, 31, 31) !== 1) return bad("CD.V is 0");
  if (bitsOf(dw0, 41, 41) !== 1) return bad("CD.AA64 is 0 (AArch32 tables are not supported)");
  if (bitsOf(dw0, 46, 46) !== 1) return bad("CD.A is 0");
  if (bitsOf(dw0, 15, 15) !== 0) return bad("CD.ENDI is 1 (big-endian tables are not supported)");
  if (bitsOf(dw0, 42, 42) !== 0 || bitsOf(dw0, 43, 43) !== 0)
    return bad("CD.HD/HA set (HTTU is not supported)");
  const stall = bitsOf(dw0, 44, 44) === 1;
  if (stall && !features.stall) return bad("CD.S is 1 but the SMMU does not stall");
  const ips = bitsOf(dw0, 34, 32);
  const oasBits = Math.min(ADDRESS_SIZE_BITS[ips] ?? 52, features.outputAddressBits);
  const tables: [TranslationTable | undefined, TranslationTable | undefined] = [undefined, undefined];
  for (const sel of [0, 1] as const) {
    const epd = sel === 0 ? bitsOf(dw0, 14, 14) : bitsOf(dw0, 30, 30);
    if (epd === 1) continue;
    const tsz = sel === 0 ? bitsOf(dw0, 5, 0) : bitsOf(dw0, 21, 16);
    if (tsz < 16 || tsz > 39) return bad(`CD.T${sel}SZ ${tsz} is outside 16..39`);
    const granuleBits = sel === 0 ? granuleFromTg0(bitsOf(dw0, 7, 6)) : granuleFromTg1(bitsOf(dw0, 23, 22));
    if (granuleBits === undefined) return bad(`CD.TG${sel} is reserved`);
    if (!granuleSupported(features, granuleBits))
      return bad(`CD.TG${sel}: granule 2^${granuleBits} is not advertised`);
    const word = sel === 0 ? dw1 : dw2;
    const rawTtb = bitsOf(word, 51, 4) * 16;
    if (rawTtb >= POW2[oasBits]!)
      return bad(`CD.TTB${sel} 0x${rawTtb.toString(16)} is beyond the ${oasBits}-bit output size`);
    const inputBits = 64 - tsz;
    const startLevel = startLevelFor(granuleBits, inputBits);
    // QEMU aligns the base to the start-level table: inputsize - stride * (4 - level) bits.
    const alignBits = inputBits - strideOf(granuleBits) * (4 - startLevel);
    tables[sel] = {
      granuleBits,
      tg: tlbGranuleCode(granuleBits),
      tsz,
      inputBits,
      startLevel,
      ttb: rawTtb - (rawTtb % POW2[alignBits]!),
      had: bitsOf(word, 1, 1) === 1,
    };
  }
  const asidBits = features.asid16 ? 16 : 8;
  return {
    ok: true,
    cd: {
      asid: bitsOf(dw0, 63, 48) % POW2[asidBits]!,
      tables,
      oasBits,
      affd: bitsOf(dw0, 35, 35) === 1,
      tbi: [bitsOf(dw0, 38, 38) === 1, bitsOf(dw0, 39, 39) === 1],
      record: bitsOf(dw0, 45, 45) === 1,
      stall,
      words,
    },
  };
}

/** Builds CD words from fields (tests, dumps, and VMMs that want the layout done for them). */
export interface ContextDescriptorFields {
  asid: number;
  t0sz?: number;
  tg0?: number;
  epd0?: boolean;
  t1sz?: number;
  tg1?: number;
  epd1?: boolean;
  ips?: number;
  affd?: boolean;
  tbi0?: boolean;
  tbi1?: boolean;
  record?: boolean;
  stall?: boolean;
  ttb0?: number;
  ttb1?: number;
  had0?: boolean;
  had1?: boolean;
  valid?: boolean;
  aa64?: boolean;
  a?: boolean;
}

export function encodeContextDescriptor(f: ContextDescriptorFields): [bigint, bigint, bigint, bigint] {
  const b = (v: boolean | undefined, bit: number): bigint => (v ? 1n << BigInt(bit) : 0n);
  const dw0 =
    BigInt(f.t0sz ?? 16) |
    (BigInt(f.tg0 ?? 0) << 6n) |
    b(f.epd0, 14) |
    (BigInt(f.t1sz ?? 16) << 16n) |
    (BigInt(f.tg1 ?? 2) << 22n) |
    b(f.epd1 ?? true, 30) |
    b(f.valid ?? true, 31) |
    (BigInt(f.ips ?? 5) << 32n) |
    b(f.affd, 35) |
    b(f.tbi0, 38) |
    b(f.tbi1, 39) |
    b(f.aa64 ?? true, 41) |
    b(f.stall, 44) |
    b(f.record ?? true, 45) |
    b(f.a ?? true, 46) |
    (BigInt(f.asid) << 48n);
  const dw1 = BigInt(f.ttb0 ?? 0) | b(f.had0, 1);
  const dw2 = BigInt(f.ttb1 ?? 0) | b(f.had1, 1);
  return [dw0, dw1, dw2, 0n];
}
