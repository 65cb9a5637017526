import type { ModelError, ModelErrorFields } from "./model-error.js";

/** A model's error class (XiveError, SmmuError): what its saved-state refusals are thrown as. */
export type ModelErrorClass = new (fields: ModelErrorFields) => ModelError;

/** A saved format: its byte order (XIVE's is big-endian, the SMMU's little) and its model's error class. */
export interface StateFormat {
  littleEndian: boolean;
  error: ModelErrorClass;
}

/**
 * A refused saved state: INVALID_ARGUMENT with a STATE_* reason (STATE_TRUNCATED,
 * STATE_MALFORMED, STATE_TRAILING_BYTES, STATE_INCONSISTENT, ...) naming the entry in `field`.
 */
export function stateError(format: StateFormat, reason: string, field: string, message: string): ModelError {
  return new format.error({ code: "INVALID_ARGUMENT", reason, message: `${field}: ${message}`, field });
}

/**
 * Writes a saved state into a buffer sized up front: the encoder counts every list before it
 * writes, so the buffer is allocated once (hand-written rather than a schema library: the
 * formats are fixed binary layouts documented beside each model).
 */
export class StateWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly le: boolean;
  private at = 0;

  constructor(size: number, order: Pick<StateFormat, "littleEndian">) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.le = order.littleEndian;
  }

  /** Bytes written so far (an encoder checks it reached the size it computed). */
  get offset(): number {
    return this.at;
  }

  u8(value: number): this {
    this.view.setUint8(this.at, value);
    this.at += 1;
    return this;
  }

  u16(value: number): this {
    this.view.setUint16(this.at, value, this.le);
    this.at += 2;
    return this;
  }

  u32(value: number): this {
    this.view.setUint32(this.at, value >>> 0, this.le);
    this.at += 4;
    return this;
  }

  /** A u64 from a non-negative safe integer (written as two u32s, no bigint) or a bigint. */
  u64(value: number | bigint): this {
    if (typeof value === "bigint") {
      this.view.setBigUint64(this.at, BigInt.asUintN(64, value), this.le);
    } else {
      const hi = Math.floor(value / 2 ** 32);
      const lo = value >>> 0;
      this.view.setUint32(this.at, this.le ? lo : hi, this.le);
      this.view.setUint32(this.at + 4, this.le ? hi : lo, this.le);
    }
    this.at += 8;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
    return this;
  }

  /** Reserved bytes: left zero. */
  zeros(length: number): this {
    this.at += length;
    return this;
  }
}

/**
 * Reads a saved state. Each read names its field relative to the record being read
 * (record("devices", 3) then u32("stream_id") → "devices[3].stream_id"); the full path is built
 * only for an error. Running past the end is STATE_TRUNCATED naming the field, and a list's count
 * is checked against the bytes left before anything is allocated.
 */
export class StateReader {
  private readonly view: DataView;
  private readonly le: boolean;
  private at = 0;
  private list = "";
  private index: number | undefined;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly format: StateFormat,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.le = format.littleEndian;
  }

  /** The state's bytes, for reading a record in place at the offset take() gave. */
  get data(): DataView {
    return this.view;
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  /** Names the record the next reads belong to: entry `index` of `list`, or the object `list`; "" is the top level. */
  record(list: string, index?: number): void {
    this.list = list;
    this.index = index;
  }

  /** The full path of `name` in the current record. */
  field(name: string): string {
    if (this.list === "") return name;
    return this.index === undefined ? `${this.list}.${name}` : `${this.list}[${this.index}].${name}`;
  }

  /**
   * Takes the next `length` bytes (a record of a list whose count() proved all its records are
   * there) and returns their offset: the fields are then read from `data` without more checks.
   */
  take(length: number, name = "record"): number {
    if (this.remaining < length) {
      const field = this.field(name);
      throw stateError(
        this.format,
        "STATE_TRUNCATED",
        field,
        `the state ends at byte ${this.bytes.length}, ${length} bytes are needed at ${this.at}`,
      );
    }
    const at = this.at;
    this.at += length;
    return at;
  }

  u8(name: string): number {
    return this.view.getUint8(this.take(1, name));
  }

  u16(name: string): number {
    return this.view.getUint16(this.take(2, name), this.le);
  }

  u32(name: string): number {
    return this.view.getUint32(this.take(4, name), this.le);
  }

  /** A u64 as a bigint (full range). */
  u64(name: string): bigint {
    return this.view.getBigUint64(this.take(8, name), this.le);
  }

  /** A u64 that must be below 2^53 (addresses, sizes, counters), as a number. */
  safeU64(name: string): number {
    return this.safeU64At(this.take(8, name), name);
  }

  /** The u64 at `at` (inside a taken record), which must be below 2^53. */
  safeU64At(at: number, name: string): number {
    const hi = this.view.getUint32(this.le ? at + 4 : at, this.le);
    const lo = this.view.getUint32(this.le ? at : at + 4, this.le);
    if (hi >= 2 ** 21) {
      const field = this.field(name);
      const value = (BigInt(hi) << 32n) | BigInt(lo);
      throw stateError(this.format, "STATE_INCONSISTENT", field, `0x${value.toString(16)} is not below 2^53`);
    }
    return hi * 2 ** 32 + lo;
  }

  raw(length: number, name: string): Uint8Array {
    const at = this.take(length, name);
    return this.bytes.slice(at, at + length);
  }

  /** Reserved bytes, which must be zero. */
  reserved(length: number, name: string): void {
    const at = this.take(length, name);
    for (let i = at; i < at + length; i++) {
      if (this.bytes[i] !== 0)
        throw stateError(this.format, "STATE_MALFORMED", this.field(name), "reserved bytes are not zero");
    }
  }

  /** A list's count, read at the top level: its records (`recordBytes` each) must fit in what is left. */
  count(list: string, recordBytes: number): number {
    this.record("");
    const n = this.u32(`${list}.count`);
    if (n * recordBytes > this.remaining) {
      throw stateError(
        this.format,
        "STATE_TRUNCATED",
        list,
        `${n} records of ${recordBytes} bytes announced, only ${this.remaining} bytes are left`,
      );
    }
    return n;
  }

  /** Nothing may follow the last list. */
  end(): void {
    this.record("");
    if (this.remaining !== 0) {
      throw stateError(
        this.format,
        "STATE_TRAILING_BYTES",
        "state",
        `${this.remaining} bytes follow the end of the state at byte ${this.at}`,
      );
    }
  }
}
