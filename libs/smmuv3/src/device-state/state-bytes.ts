import { SmmuError } from "../smmu-error.js";

/** A refused exported state: INVALID_ARGUMENT with a STATE_* reason naming the entry (`field`). */
export function stateError(reason: string, field: string, message: string): SmmuError {
  return new SmmuError({ code: "INVALID_ARGUMENT", reason, message: `${field}: ${message}`, field });
}

/**
 * Little-endian (the SMMU's own byte order) output of known size: the encoder counts every list
 * before it writes, so the buffer is allocated once.
 */
export class LittleEndianWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private offset = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Bytes written so far (the encoder checks it reached the size it computed). */
  get written(): number {
    return this.offset;
  }

  u8(v: number): this {
    this.view.setUint8(this.offset++, v);
    return this;
  }

  u16(v: number): this {
    this.view.setUint16(this.offset, v, true);
    this.offset += 2;
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.offset, v >>> 0, true);
    this.offset += 4;
    return this;
  }

  /** A u64 from a non-negative safe integer or a bigint. */
  u64(v: number | bigint): this {
    this.view.setBigUint64(this.offset, BigInt.asUintN(64, BigInt(v)), true);
    this.offset += 8;
    return this;
  }

  zeros(n: number): this {
    this.offset += n;
    return this;
  }
}

/**
 * Reads a little-endian state. Each read names its field relative to the entry being read
 * (entry("devices", 3) then u32("stream_id") → "devices[3].stream_id"), so that running past
 * the end (STATE_TRUNCATED) or a bad value names the exact entry.
 */
export class LittleEndianReader {
  private readonly view: DataView;
  private offset = 0;
  private prefix = "";

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get left(): number {
    return this.bytes.byteLength - this.offset;
  }

  /** Subsequent fields belong to `list[index]` (or to the top level: entry("")). */
  entry(list: string, index?: number): void {
    this.prefix = list === "" ? "" : index === undefined ? `${list}.` : `${list}[${index}].`;
  }

  /** The full name of field `name` of the current entry. */
  name(name: string): string {
    return this.prefix + name;
  }

  private take(n: number, name: string): number {
    if (this.left < n) {
      throw stateError(
        "STATE_TRUNCATED",
        this.name(name),
        `the state ends at byte ${this.bytes.byteLength}, ${n} bytes are needed at ${this.offset}`,
      );
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(name: string): number {
    return this.view.getUint8(this.take(1, name));
  }

  u16(name: string): number {
    return this.view.getUint16(this.take(2, name), true);
  }

  u32(name: string): number {
    return this.view.getUint32(this.take(4, name), true);
  }

  /** A u64 as a bigint (full range). */
  u64(name: string): bigint {
    return this.view.getBigUint64(this.take(8, name), true);
  }

  /** A u64 that must be below 2^53 (addresses, sizes, counters), as a number. */
  safe(name: string): number {
    const v = this.u64(name);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw stateError("STATE_INCONSISTENT", this.name(name), `0x${v.toString(16)} is not below 2^53`);
    }
    return Number(v);
  }

  /** Reserved bytes, which must be zero. */
  reserved(n: number, name: string): void {
    const at = this.take(n, name);
    for (let i = at; i < at + n; i++) {
      if (this.bytes[i] !== 0)
        throw stateError("STATE_MALFORMED", this.name(name), "reserved bytes are not zero");
    }
  }

  /** A list count at the top level, checked against the bytes left before anything is allocated. */
  count(list: string, entryBytes: number): number {
    this.entry("");
    const n = this.u32(`${list}.count`);
    if (n * entryBytes > this.left) {
      throw stateError(
        "STATE_TRUNCATED",
        list,
        `${n} entries of ${entryBytes} bytes announced, ${this.left} bytes left`,
      );
    }
    return n;
  }

  /** Nothing may follow the last list. */
  end(): void {
    this.entry("");
    if (this.left !== 0) {
      throw stateError("STATE_TRAILING_BYTES", "state", `${this.left} bytes follow the end of the state`);
    }
  }
}
