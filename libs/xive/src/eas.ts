/**
 * The Event Assignment Structure: one 64-bit word per source saying where its events go
 * (xive.md §4.1). Kept as two 32-bit halves so the hot path reads them from typed arrays.
 */

/** High word: VALID (IBM b0), END_BLOCK (b4-7), END_INDEX (b8-31). */
export const EAS_HI_VALID = 0x8000_0000;
export const EAS_HI_END_BLOCK = 0x0f00_0000;
export const EAS_HI_END_INDEX = 0x00ff_ffff;
/** Low word: MASKED (IBM b32), END_DATA / EISN (b33-63). */
export const EAS_LO_MASKED = 0x8000_0000;
export const EAS_LO_EISN = 0x7fff_ffff;

export interface Eas {
  valid: boolean;
  masked: boolean;
  endBlock: number;
  endIndex: number;
  eisn: number;
}

export function encodeEasHi(valid: boolean, endBlock: number, endIndex: number): number {
  return ((valid ? EAS_HI_VALID : 0) | ((endBlock & 0xf) << 24) | (endIndex & EAS_HI_END_INDEX)) >>> 0;
}

export function encodeEasLo(masked: boolean, eisn: number): number {
  return ((masked ? EAS_LO_MASKED : 0) | (eisn & EAS_LO_EISN)) >>> 0;
}

export function decodeEas(hi: number, lo: number): Eas {
  return {
    valid: (hi & EAS_HI_VALID) !== 0,
    masked: (lo & EAS_LO_MASKED) !== 0,
    endBlock: (hi & EAS_HI_END_BLOCK) >>> 24,
    endIndex: hi & EAS_HI_END_INDEX,
    eisn: lo & EAS_LO_EISN,
  };
}

/** The EAS as the 64-bit word QEMU migrates (big-endian layout of §4.1). */
export function easWord(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** sPAPR END index of (server, priority): server << 3 | priority (xive.md §4.2 sPAPR mapping). */
export function endIndexOf(server: number, priority: number): number {
  return ((server << 3) | (priority & 7)) >>> 0;
}
