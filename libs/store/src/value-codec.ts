// How a StoreValue is laid out in bytes, identically in every backend: JSON as its UTF-8 text (so
// `etcdctl get` shows it as is), bytes behind a 0x00 marker byte, which no JSON text starts with.

import { StoreInvalidArgumentError } from "./store-error.js";
import { MAX_VALUE_BYTES } from "./store-limits.js";
import type { StoreValue } from "./store.js";

const BYTES_MARKER = 0x00;

export function encodeValue(value: StoreValue): Buffer {
  let encoded: Buffer;
  if (value instanceof Uint8Array) {
    encoded = Buffer.alloc(value.byteLength + 1);
    encoded[0] = BYTES_MARKER;
    encoded.set(value, 1);
  } else {
    const text = JSON.stringify(value) as string | undefined;
    if (text === undefined) throw new StoreInvalidArgumentError("value is not JSON-serializable");
    encoded = Buffer.from(text, "utf8");
  }
  if (encoded.byteLength > MAX_VALUE_BYTES) {
    throw new StoreInvalidArgumentError(
      `value is ${encoded.byteLength} bytes encoded, more than ${MAX_VALUE_BYTES}`,
    );
  }
  return encoded;
}

export function decodeValue(encoded: Uint8Array): StoreValue {
  // A copy, as a plain Uint8Array (not a Buffer, nor a view of the backend's memory).
  if (encoded[0] === BYTES_MARKER) return Uint8Array.from(encoded.subarray(1));
  return JSON.parse(
    Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).toString("utf8"),
  ) as StoreValue;
}
