import { UsageError } from "./cli-config.js";

/** A decimal or 0x-hexadecimal integer argument, within JavaScript's safe integers. */
export function integer(text: unknown, what: string): number {
  const value = String(text);
  const n = Number(value);
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(value) || !Number.isSafeInteger(n))
    throw new UsageError(`${what} must be an integer, not '${value}'`);
  return n;
}

/** A decimal or 0x-hexadecimal 64-bit unsigned integer, as the decimal string proto3 JSON takes. */
export function uint64(text: unknown, what: string): string {
  const value = String(text);
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(value)) throw new UsageError(`${what} must be an integer, not '${value}'`);
  const n = BigInt(value);
  if (n >= 1n << 64n) throw new UsageError(`${what} must fit in 64 bits, not '${value}'`);
  return n.toString();
}

/** yargs `coerce` for an integer option or positional (its errors are usage errors). */
export const asInteger = (what: string) => (value: unknown) => integer(value, what);

/** yargs `coerce` for a repeatable integer option. */
export const asIntegers = (what: string) => (values: unknown) =>
  (Array.isArray(values) ? values : [values]).map((value) => integer(value, what));

/** yargs `coerce` for a 64-bit option. */
export const asUint64 = (what: string) => (value: unknown) => uint64(value, what);
