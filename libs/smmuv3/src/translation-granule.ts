/**
 * AArch64 translation-table geometry shared by both stages (digest §4.2 "Level shifts"): a
 * granule of 2^g bytes holds 2^(g-3) eight-byte descriptors, so each level resolves g-3 bits.
 */

/** Granule sizes as address bits: 4 KiB, 16 KiB, 64 KiB. */
export type GranuleBits = 12 | 14 | 16;

export function isGranuleBits(value: number): value is GranuleBits {
  return value === 12 || value === 14 || value === 16;
}

/** Index bits per level (granule bits minus 3). */
export function strideOf(granuleBits: number): number {
  return granuleBits - 3;
}

/**
 * Lowest address bit an entry at `level` resolves: 4K gives 39/30/21/12, 16K 47/36/25/14,
 * 64K 42/29/16 for L1-L3 (digest §4.2).
 */
export function levelShift(granuleBits: number, level: number): number {
  return granuleBits + (3 - level) * (granuleBits - 3);
}

/** First level of a walk over an `inputBits`-bit space (QEMU: 4 - (inputsize - 4) / stride). */
export function startLevelFor(granuleBits: number, inputBits: number): number {
  return 4 - Math.floor((inputBits - 4) / (granuleBits - 3));
}

/** CD.TG0: 0 = 4K, 1 = 64K, 2 = 16K, 3 reserved (digest §3.2). */
export function granuleFromTg0(tg0: number): GranuleBits | undefined {
  return tg0 === 0 ? 12 : tg0 === 1 ? 16 : tg0 === 2 ? 14 : undefined;
}

/** CD.TG1: 1 = 16K, 2 = 4K, 3 = 64K, 0 reserved (digest §3.2). */
export function granuleFromTg1(tg1: number): GranuleBits | undefined {
  return tg1 === 1 ? 14 : tg1 === 2 ? 12 : tg1 === 3 ? 16 : undefined;
}

/** The TG field of range TLBI commands and of IOTLB keys: (granule - 10) / 2, so 1/2/3 = 4K/16K/64K. */
export function tlbGranuleCode(granuleBits: number): number {
  return (granuleBits - 10) >> 1;
}

/** Granule bits for a TLBI TG code; TG 0 (no range) invalidates by 4 KiB page (digest §3.3). */
export function granuleFromTlbCode(tg: number): number {
  return tg === 0 ? 12 : tg * 2 + 10;
}

/**
 * Whether a block descriptor is architecturally allowed at `level` without 52-bit addressing:
 * 4K blocks at L1 and L2, 16K and 64K blocks at L2 only. A block elsewhere is a translation fault.
 */
export function blockAllowed(granuleBits: number, level: number): boolean {
  return granuleBits === 12 ? level === 1 || level === 2 : level === 2;
}

/** Page sizes a host stage-2 map may use for the granule (io-pgtable-arm's pgsize_bitmap). */
export function stage2PageSizesBits(granuleBits: GranuleBits): readonly number[] {
  return granuleBits === 12 ? [30, 21, 12] : granuleBits === 14 ? [25, 14] : [29, 16];
}
