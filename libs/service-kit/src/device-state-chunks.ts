// The device-state stream of a live migration (issue 14): a device service's sections, encoded as
// one DeviceStatePayload and cut into bounded chunks, each with its index and CRC-32; the last
// carries the stream's length and SHA-256. The importing device service joins them with
// DeviceStateAssembler, which refuses the whole stream if a chunk is damaged, missing, out of
// order or one too many, so nothing from a broken stream reaches a device. The migration
// services between them forward the chunks unread, so the check is end to end.
import { createHash, type Hash } from "node:crypto";
import * as zlib from "node:zlib";
import {
  DeviceStatePayload,
  type DeviceSection,
  type DeviceStateChunk,
} from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { VplaneError } from "./vplane-error.js";

/**
 * zlib's CRC-32 (Node >= 20.15), looked up when a chunk is made or checked rather than when the
 * module is linked: the POWER9 kernel tier's guest runs Node 20.11 (the newest ppc64le build on
 * npm) and loads this module with the interrupt-controller service, without streaming chunks.
 */
const crc32 = (data: Uint8Array): number => zlib.crc32(data);

/** Largest chunk data, bytes: well under the 4 MiB gRPC default message limit. */
export const DEVICE_STATE_CHUNK_BYTES = 1 << 20;
/** Largest stream a device service joins, bytes (a 1,048,576-source VM's state is ~20 MiB). */
export const MAX_DEVICE_STATE_STREAM_BYTES = 1 << 30;

/** The chunks of `sections` (at least one: an empty payload is one empty last chunk). */
export function chunkDeviceState(
  sections: readonly DeviceSection[],
  chunkBytes = DEVICE_STATE_CHUNK_BYTES,
): DeviceStateChunk[] {
  const encoded = DeviceStatePayload.encode({ sections: [...sections] }).finish();
  const bytes = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const chunks: DeviceStateChunk[] = [];
  for (let at = 0, index = 0; at < bytes.length || index === 0; at += chunkBytes, index++) {
    const data = bytes.subarray(at, Math.min(bytes.length, at + chunkBytes));
    const last = at + chunkBytes >= bytes.length;
    chunks.push({
      index,
      data,
      crc32: crc32(data),
      last,
      totalBytes: last ? BigInt(bytes.length) : 0n,
      sha256: last ? createHash("sha256").update(bytes).digest() : Buffer.alloc(0),
    });
  }
  return chunks;
}

function refused(reason: string, message: string): VplaneError {
  return new VplaneError({ code: "DATA_LOSS", reason, message, field: "chunk" });
}

/** Joins one stream's chunks as they come, checking each; finish() gives the sections. */
export class DeviceStateAssembler {
  private readonly parts: Uint8Array[] = [];
  private readonly hash: Hash = createHash("sha256");
  private received = 0;
  private done: DeviceStateChunk | undefined;

  constructor(private readonly maxBytes = MAX_DEVICE_STATE_STREAM_BYTES) {}

  /** True once the last chunk arrived. */
  get complete(): boolean {
    return this.done !== undefined;
  }

  /** Bytes joined so far. */
  get bytes(): number {
    return this.received;
  }

  add(chunk: DeviceStateChunk | undefined): void {
    if (!chunk) throw refused("DEVICE_STATE_CHUNK_MISSING", "a message of the stream carries no chunk");
    if (this.done) {
      throw refused(
        "DEVICE_STATE_CHUNK_OUT_OF_ORDER",
        `chunk ${chunk.index} follows the stream's last chunk`,
      );
    }
    if (chunk.index !== this.parts.length) {
      throw refused(
        "DEVICE_STATE_CHUNK_OUT_OF_ORDER",
        `chunk ${chunk.index} arrived where chunk ${this.parts.length} belongs (missing or reordered)`,
      );
    }
    if (crc32(chunk.data) !== chunk.crc32) {
      throw refused("DEVICE_STATE_CHUNK_CORRUPT", `chunk ${chunk.index} fails its CRC-32`);
    }
    this.received += chunk.data.length;
    if (this.received > this.maxBytes) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "DEVICE_STATE_TOO_LARGE",
        message: `the device-state stream exceeds ${this.maxBytes} bytes`,
      });
    }
    this.parts.push(chunk.data);
    this.hash.update(chunk.data);
    if (chunk.last) this.done = chunk;
  }

  /** The stream's sections; DATA_LOSS if it ended early or its length or SHA-256 differ. */
  finish(): DeviceSection[] {
    const last = this.done;
    if (!last) {
      throw refused(
        "DEVICE_STATE_STREAM_INCOMPLETE",
        `the stream ended after ${this.parts.length} chunk(s) without its last one`,
      );
    }
    if (last.totalBytes !== BigInt(this.received) || !this.hash.digest().equals(last.sha256)) {
      throw refused(
        "DEVICE_STATE_STREAM_CORRUPT",
        `the stream's ${this.received} bytes do not match the length (${last.totalBytes}) and SHA-256 of its last chunk`,
      );
    }
    try {
      return DeviceStatePayload.decode(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts))
        .sections;
    } catch (error) {
      throw refused("DEVICE_STATE_STREAM_CORRUPT", `the stream does not parse: ${(error as Error).message}`);
    }
  }
}
