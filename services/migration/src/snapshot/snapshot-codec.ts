// The snapshot container: "VPLSNAP\0" | format version u32 BE | body length u64 BE | body
// (vplane.migration.v1.SnapshotBody) | SHA-256 of everything before it. Decoding checks size,
// magic, version, length and checksum before it parses anything, so a damaged or foreign
// snapshot is refused whole and nothing from it reaches a device.
import { createHash } from "node:crypto";
import { SnapshotBody } from "@vplane/proto/gen/vplane/migration/v1/snapshot_format";
import { VplaneError, type StatusCodeName } from "@vplane/service-kit";

export const SNAPSHOT_MAGIC = Buffer.from("VPLSNAP\0", "latin1");
/** The one format this build writes and reads. */
export const SNAPSHOT_FORMAT_VERSION = 1;
const HEADER_BYTES = SNAPSHOT_MAGIC.length + 4 + 8;
const CHECKSUM_BYTES = 32;

export function encodeSnapshot(body: SnapshotBody, maxBytes: number): Buffer {
  const encodedBody = SnapshotBody.encode(body).finish();
  const size = HEADER_BYTES + encodedBody.length + CHECKSUM_BYTES;
  checkSnapshotSize(size, maxBytes);
  const out = Buffer.alloc(size);
  SNAPSHOT_MAGIC.copy(out, 0);
  out.writeUInt32BE(SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC.length);
  out.writeBigUInt64BE(BigInt(encodedBody.length), SNAPSHOT_MAGIC.length + 4);
  out.set(encodedBody, HEADER_BYTES);
  checksum(out.subarray(0, size - CHECKSUM_BYTES)).copy(out, size - CHECKSUM_BYTES);
  return out;
}

export function decodeSnapshot(bytes: Uint8Array, maxBytes: number): SnapshotBody {
  checkSnapshotSize(bytes.length, maxBytes);
  if (bytes.length < HEADER_BYTES + CHECKSUM_BYTES)
    throw truncated(bytes.length, HEADER_BYTES + CHECKSUM_BYTES);
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (!buffer.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw refused(
      "INVALID_ARGUMENT",
      "SNAPSHOT_NOT_A_SNAPSHOT",
      "the data does not start with the snapshot magic",
    );
  }
  const version = buffer.readUInt32BE(SNAPSHOT_MAGIC.length);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw refused(
      "FAILED_PRECONDITION",
      "SNAPSHOT_VERSION_UNSUPPORTED",
      `snapshot format version ${version}; this build reads version ${SNAPSHOT_FORMAT_VERSION}`,
    );
  }
  const bodyLength = buffer.readBigUInt64BE(SNAPSHOT_MAGIC.length + 4);
  const expected = BigInt(HEADER_BYTES + CHECKSUM_BYTES) + bodyLength;
  if (expected > BigInt(bytes.length)) throw truncated(bytes.length, expected);
  if (expected < BigInt(bytes.length)) {
    throw refused(
      "DATA_LOSS",
      "SNAPSHOT_TRAILING_BYTES",
      `${BigInt(bytes.length) - expected} bytes after the checksum`,
    );
  }
  const end = bytes.length - CHECKSUM_BYTES;
  if (!checksum(buffer.subarray(0, end)).equals(buffer.subarray(end))) {
    throw refused(
      "DATA_LOSS",
      "SNAPSHOT_CHECKSUM_MISMATCH",
      "the snapshot's SHA-256 does not match its contents",
    );
  }
  try {
    return SnapshotBody.decode(buffer.subarray(HEADER_BYTES, end));
  } catch (error) {
    throw refused(
      "DATA_LOSS",
      "SNAPSHOT_CORRUPT",
      `the snapshot body does not parse: ${(error as Error).message}`,
    );
  }
}

/** RESOURCE_EXHAUSTED when a snapshot of `size` bytes is over the limit. */
export function checkSnapshotSize(size: number, maxBytes: number): void {
  if (size > maxBytes) throw tooLarge(size, maxBytes);
}

function checksum(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

function tooLarge(size: number, maxBytes: number) {
  return refused(
    "RESOURCE_EXHAUSTED",
    "SNAPSHOT_TOO_LARGE",
    `snapshot of ${size} bytes exceeds the limit of ${maxBytes} (VPLANE_MIGRATION_MAX_SNAPSHOT_BYTES)`,
  );
}

function truncated(size: number, expected: number | bigint) {
  return refused("DATA_LOSS", "SNAPSHOT_TRUNCATED", `snapshot is ${size} bytes; its header says ${expected}`);
}

function refused(code: StatusCodeName, reason: string, message: string) {
  return new VplaneError({ code, reason, message });
}
