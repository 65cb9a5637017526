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

  /** A u64 from an exact JavaScript number (below 2^53), written as two u32s. */
  u64(value: number): void {
    this.view.setUint32(this.at, Math.floor(value / 2 ** 32));
    this.view.setUint32(this.at + 4, value >>> 0);
    this.at += 8;
  }

  raw(bytes: Uint8Array): void {
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
  }
}

/**
 * Reads big-endian integers; running past the end is STATE_TRUNCATED naming the field being
 * read, and a list count is checked against the bytes left before anything is allocated. Field
 * names are relative to the record being read (see record()); the full path, e.g.
 * "xive.queues[3].qshift", is only built for an error.
 */
export class StateReader {
  private readonly view: DataView;
  private at = 0;
  private list = "";
  private index = -1;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The state's bytes, for reading a record in place at the offset take() gave. */
  get data(): DataView {
    return this.view;
  }

  /**
   * Takes the next record of a list whose count() proved all its records are there, and
   * returns its offset: the record's fields are then read from `data` without further checks.
   */
  take(length: number): number {
    return this.need(length, "record");
  }

  /** The u64 at `at` (inside a taken record), which must be below 2^53. */
  u64At(at: number, name: string): number {
    const hi = this.view.getUint32(at);
    if (hi >= 2 ** 21) {
      const field = this.field(name);
      throw stateError(
        "STATE_INCONSISTENT",
        field,
        `${field} is ${this.view.getBigUint64(at)}, above 2^53 - 1`,
      );
    }
    return hi * 2 ** 32 + this.view.getUint32(at + 4);
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  /** Names the record that the next reads belong to: entry `index` of `list`. */
  record(list: string, index: number): void {
    this.list = list;
    this.index = index;
  }

  /** The full path of `name` in the current record (or at the top level). */
  field(name: string): string {
    return this.index < 0 ? name : `${this.list}[${this.index}].${name}`;
  }

  private need(length: number, name: string): number {
    if (this.remaining < length) {
      const field = this.field(name);
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

  u8(name: string): number {
    return this.view.getUint8(this.need(1, name));
  }

  u16(name: string): number {
    return this.view.getUint16(this.need(2, name));
  }

  u32(name: string): number {
    return this.view.getUint32(this.need(4, name));
  }

  /** A u64 that must be an exact JavaScript number (below 2^53). */
  u64(name: string): number {
    return this.u64At(this.need(8, name), name);
  }

  raw(length: number, name: string): Uint8Array {
    const at = this.need(length, name);
    return this.bytes.slice(at, at + length);
  }

  /** A list's count, read at the top level: its records (`recordSize` bytes each) must fit. */
  count(recordSize: number, list: string): number {
    this.record("", -1);
    const n = this.u32(`${list}.count`);
    if (n * recordSize > this.remaining) {
      throw stateError(
        "STATE_TRUNCATED",
        list,
        `${list} holds ${n} records of ${recordSize} bytes, but only ${this.remaining} bytes are left`,
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
