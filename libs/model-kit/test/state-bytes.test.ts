import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ModelError, StateReader, StateWriter } from "../src/index.js";

function refused(fn: () => unknown): ModelError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DeviceError, "thrown as the format's model error class");
    return error;
  }
  throw new Error("accepted");
}

class DeviceError extends ModelError {}
const BIG = { littleEndian: false, error: DeviceError };
const LITTLE = { littleEndian: true, error: DeviceError };

describe("saved-state bytes", () => {
  for (const littleEndian of [false, true]) {
    const order = { littleEndian, error: DeviceError };
    it(`reads back what was written, ${littleEndian ? "little" : "big"}-endian`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 0xff }),
          fc.integer({ min: 0, max: 0xffff }),
          fc.integer({ min: 0, max: 0xffff_ffff }),
          fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          (a, b, c, d, e) => {
            const w = new StateWriter(1 + 2 + 4 + 8 + 8 + 3, order);
            w.u8(a).u16(b).u32(c).u64(d).u64(e).zeros(3);
            assert.equal(w.offset, w.bytes.length);
            const r = new StateReader(w.bytes, order);
            assert.deepEqual(
              [r.u8("a"), r.u16("b"), r.u32("c"), r.safeU64("d"), r.u64("e")],
              [a, b, c, d, e],
            );
            r.reserved(3, "pad");
            r.end();
          },
        ),
      );
    });
  }

  it("the byte order is the one asked for (u32 0x01020304)", () => {
    assert.deepEqual([...new StateWriter(4, BIG).u32(0x0102_0304).bytes], [1, 2, 3, 4]);
    assert.deepEqual([...new StateWriter(4, LITTLE).u32(0x0102_0304).bytes], [4, 3, 2, 1]);
  });

  it("running past the end is STATE_TRUNCATED naming the field of the record being read", () => {
    const r = new StateReader(new Uint8Array(6), LITTLE);
    r.record("devices", 3);
    r.u32("stream_id");
    const e = refused(() => r.u32("flags"));
    assert.deepEqual(
      [e.code, e.reason, e.field],
      ["INVALID_ARGUMENT", "STATE_TRUNCATED", "devices[3].flags"],
    );
  });

  it("a count whose records cannot fit is STATE_TRUNCATED before anything is allocated", () => {
    const w = new StateWriter(8, BIG).u32(2);
    const e = refused(() => new StateReader(w.bytes, BIG).count("queues", 32));
    assert.deepEqual([e.reason, e.field], ["STATE_TRUNCATED", "queues"]);
  });

  it("a u64 at or above 2^53 where a number is read is STATE_INCONSISTENT", () => {
    const w = new StateWriter(8, LITTLE).u64(2n ** 53n);
    const e = refused(() => new StateReader(w.bytes, LITTLE).safeU64("qaddr"));
    assert.deepEqual([e.reason, e.field], ["STATE_INCONSISTENT", "qaddr"]);
  });

  it("non-zero reserved bytes are STATE_MALFORMED; bytes after the end are STATE_TRAILING_BYTES", () => {
    const r = new StateReader(Uint8Array.of(0, 1, 0), LITTLE);
    assert.equal(refused(() => r.reserved(2, "pad")).reason, "STATE_MALFORMED");
    assert.equal(refused(() => r.end()).reason, "STATE_TRAILING_BYTES");
  });
});

describe("model error", () => {
  it("carries the service kit's fields and the subclass's name", () => {
    const e = new DeviceError({ code: "NOT_FOUND", reason: "NO_SUCH", message: "m", errno: 2, field: "id" });
    assert.deepEqual(
      [e.name, e.code, e.reason, e.errno, e.field, e.message],
      ["DeviceError", "NOT_FOUND", "NO_SUCH", 2, "id", "m"],
    );
  });

  it("atBatchIndex keeps the class and every field, and names the entry", () => {
    const e = new DeviceError({
      code: "INVALID_ARGUMENT",
      reason: "BAD",
      message: "m",
      errno: 5,
      hcallReturnCode: -55,
    });
    const at = e.atBatchIndex(4);
    assert.ok(at instanceof DeviceError);
    assert.deepEqual(
      [at.code, at.reason, at.errno, at.hcallReturnCode, at.batchIndex, at.message],
      ["INVALID_ARGUMENT", "BAD", 5, -55, 4, "entry 4: m"],
    );
  });
});
