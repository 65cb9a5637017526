// The chunked device-state stream (issue 14): what a device service cuts joins back byte for
// byte, and a stream with a damaged, missing, reordered, foreign or extra chunk, or without its
// last one, is refused whole with DATA_LOSS and the reason, before anything is decoded.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import type { DeviceSection, DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateAssembler, chunkDeviceState, pageRanges } from "../src/index.js";

const sections: DeviceSection[] = [
  { kind: "xive", device: "vms/a/controller", formatVersion: 1, payload: randomBytes(10_000) },
  { kind: "smmuv3", device: "vms/a/smmus/s", formatVersion: 1, payload: randomBytes(3_000) },
];

function join(chunks: readonly DeviceStateChunk[], maxBytes?: number): DeviceSection[] {
  const assembler = new DeviceStateAssembler(maxBytes);
  for (const chunk of chunks) assembler.add(chunk);
  return assembler.finish();
}

describe("device-state chunks", () => {
  test("sections cut into bounded chunks join back equal; an empty payload is one last chunk", () => {
    const chunks = chunkDeviceState(sections, 4096);
    assert.ok(chunks.length >= 4 && chunks.every((c) => c.data.length <= 4096));
    assert.deepEqual(
      chunks.map((c) => c.last),
      chunks.map((_, i) => i === chunks.length - 1),
    );
    assert.deepEqual(join(chunks), sections);
    const empty = chunkDeviceState([]);
    assert.equal(empty.length, 1);
    assert.equal(empty[0]!.last, true);
    assert.deepEqual(join(empty), []);
  });

  const refusals: [string, string, (chunks: DeviceStateChunk[]) => DeviceStateChunk[]][] = [
    [
      "a flipped byte",
      "DEVICE_STATE_CHUNK_CORRUPT",
      (c) => {
        const data = Buffer.from(c[1]!.data);
        data[7]! ^= 1;
        return c.map((chunk, i) => (i === 1 ? { ...chunk, data } : chunk));
      },
    ],
    ["a missing chunk", "DEVICE_STATE_CHUNK_OUT_OF_ORDER", (c) => c.filter((_, i) => i !== 2)],
    ["two chunks swapped", "DEVICE_STATE_CHUNK_OUT_OF_ORDER", (c) => [c[0]!, c[2]!, c[1]!, ...c.slice(3)]],
    ["a chunk repeated", "DEVICE_STATE_CHUNK_OUT_OF_ORDER", (c) => [c[0]!, c[1]!, c[1]!, ...c.slice(2)]],
    [
      "a chunk after the last",
      "DEVICE_STATE_CHUNK_OUT_OF_ORDER",
      (c) => [...c, { ...c[0]!, index: c.length }],
    ],
    ["no last chunk", "DEVICE_STATE_STREAM_INCOMPLETE", (c) => c.slice(0, -1)],
    [
      "a chunk of another stream (its own CRC right)",
      "DEVICE_STATE_STREAM_CORRUPT",
      (c) => {
        const other = chunkDeviceState(
          [{ ...sections[0]!, payload: randomBytes(10_000) }, sections[1]!],
          4096,
        );
        return c.map((chunk, i) => (i === 1 ? other[1]! : chunk));
      },
    ],
    [
      "a wrong length on the last chunk",
      "DEVICE_STATE_STREAM_CORRUPT",
      (c) => c.map((chunk) => (chunk.last ? { ...chunk, totalBytes: chunk.totalBytes + 1n } : chunk)),
    ],
  ];
  for (const [name, reason, damage] of refusals) {
    test(`${name} refuses the whole stream: DATA_LOSS ${reason}`, () => {
      assert.throws(() => join(damage(chunkDeviceState(sections, 4096))), { code: "DATA_LOSS", reason });
    });
  }

  test("a stream over the limit is refused as it grows: RESOURCE_EXHAUSTED", () => {
    assert.throws(() => join(chunkDeviceState(sections, 4096), 8192), {
      code: "RESOURCE_EXHAUSTED",
      reason: "DEVICE_STATE_TOO_LARGE",
    });
  });

  test("dirty pages as runs of consecutive pages", () => {
    const page = 0x1_0000n;
    assert.deepEqual(pageRanges([0n, page, 2n * page, 5n * page, 7n * page, 8n * page], page), [
      { address: 0n, count: 3n },
      { address: 5n * page, count: 1n },
      { address: 7n * page, count: 2n },
    ]);
    assert.deepEqual(pageRanges([], page), []);
  });
});
