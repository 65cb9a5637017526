/**
 * Bit helpers. Descriptors on the walk path are handled as two unsigned 32-bit halves (numbers),
 * never as bigint, so the hot path does not allocate; configuration structures (STE, CD,
 * commands), which are decoded once and cached, use bigint words and these helpers.
 */

/** POW2[i] = 2^i for i in [0, 64], exact as doubles. */
export const POW2: readonly number[] = Array.from({ length: 65 }, (_, i) => 2 ** i);

/** Bits [msb:lsb] of a 64-bit word, as a number (the field must be at most 53 bits wide). */
export function bitsOf(word: bigint, msb: number, lsb: number): number {
  return Number((word >> BigInt(lsb)) & ((1n << BigInt(msb - lsb + 1)) - 1n));
}

/** `value` placed at bits [msb:lsb] (value is masked to the field width). */
export function fieldOf(value: number | bigint, msb: number, lsb: number): bigint {
  const mask = (1n << BigInt(msb - lsb + 1)) - 1n;
  return (BigInt(value) & mask) << BigInt(lsb);
}

/** Mask of bits [msb:lsb]. */
export function maskOf(msb: number, lsb: number): bigint {
  return ((1n << BigInt(msb - lsb + 1)) - 1n) << BigInt(lsb);
}

/** Whether `value` is a positive power of two. */
export function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}
