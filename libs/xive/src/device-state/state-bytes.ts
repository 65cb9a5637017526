import { XiveError } from "../xive-error.js";

/** A bad exported state: INVALID_ARGUMENT with a reason and the entry it concerns (`field`). */
export function stateError(reason: string, field: string, message: string): XiveError {
  return new XiveError({ code: "INVALID_ARGUMENT", reason, message, field });
}

/** Appends big-endian integers to a buffer sized up front (the encoder knows every count). */
export class StateWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  get offset(): number {
    return this.at;
  }

  u8(value: number): void {
    this.view.setUint8(this.at, value);
    this.at += 1;
  }

  u16(value: number): void {
    this.view.setUint16(this.at, value);
    this.at += 2;
  }

  u32(value: number): void {
    this.view.setUint32(this.at, value >>> 0);
    this.at += 4;
  }

  u64(value: number): void {
    this.view.setBigUint64(this.at, BigInt(value));
    this.at += 8;
  }

  raw(bytes: Uint8Array): void {
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
  }
}

/**
 * Reads big-endian integers; running past the end is STATE_TRUNCATED naming the field being
 * read, and a list count is checked against the bytes left before anything is allocated.
 */
export class StateReader {
  private readonly view: DataView;
  private at = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  private need(length: number, field: string): number {
    if (this.remaining < length) {
      throw stateError(
        "STATE_TRUNCATED",
        field,
        `the state ends at byte ${this.bytes.length} while reading ${field} (${length} bytes at ${this.at})`,
      );
    }
    const at = this.at;
    this.at += length;
    return at;
  }

  u8(field: string): number {
    return this.view.getUint8(this.need(1, field));
  }

  u16(field: string): number {
    return this.view.getUint16(this.need(2, field));
  }

  u32(field: string): number {
    return this.view.getUint32(this.need(4, field));
  }

  /** A u64 that must be an exact JavaScript number (below 2^53). */
  u64(field: string): number {
    const value = this.view.getBigUint64(this.need(8, field));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw stateError("STATE_INCONSISTENT", field, `${field} is ${value}, above 2^53 - 1`);
    }
    return Number(value);
  }

  raw(length: number, field: string): Uint8Array {
    const at = this.need(length, field);
    return this.bytes.slice(at, at + length);
  }

  /** A list count: its records (`recordSize` bytes each) must fit in what is left. */
  count(recordSize: number, field: string): number {
    const n = this.u32(`${field}.count`);
    if (n * recordSize > this.remaining) {
      throw stateError(
        "STATE_TRUNCATED",
        field,
        `${field} holds ${n} records of ${recordSize} bytes, but only ${this.remaining} bytes are left`,
      );
    }
    return n;
  }

  /** Nothing may follow the last list. */
  end(): void {
    if (this.remaining !== 0) {
      throw stateError(
        "STATE_TRAILING_BYTES",
        "state",
        `${this.remaining} bytes follow the end of the state at byte ${this.at}`,
      );
    }
  }
}
