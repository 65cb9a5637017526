import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FileGuestMemory, GuestMemoryError, SparseGuestMemory, type GuestMemory } from "../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "vplane-gm-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const backings: Array<[string, (size: number) => GuestMemory]> = [
  ["sparse", (size) => new SparseGuestMemory(size)],
  ["file", (size) => new FileGuestMemory(join(dir, `ram-${Math.random()}`), size)],
];

for (const [name, make] of backings) {
  describe(`${name} guest memory`, () => {
    it("reads zero where nothing was written", () => {
      const m = make(1 << 20);
      assert.deepEqual(m.read(0x1234, 8), new Uint8Array(8));
      assert.equal(m.readU64BE(0xff000), 0n);
    });

    it("stores big-endian and little-endian words at their byte positions", () => {
      const m = make(1 << 20);
      m.writeU32BE(0x100, 0x80000001);
      assert.deepEqual([...m.read(0x100, 4)], [0x80, 0x00, 0x00, 0x01]);
      m.writeU64LE(0x200, 0x0102030405060708n);
      assert.deepEqual([...m.read(0x200, 8)], [8, 7, 6, 5, 4, 3, 2, 1]);
      assert.equal(m.readU64BE(0x200), 0x0807060504030201n);
      assert.equal(m.readU32LE(0x100), 0x01000080);
    });

    it("copies across a 64 KiB chunk boundary", () => {
      const m = make(1 << 20);
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
      m.write(0x10000 - 100, bytes);
      assert.deepEqual(m.read(0x10000 - 100, 300), bytes);
    });

    it("refuses an access past the end with OUT_OF_BOUNDS and writes nothing", () => {
      const m = make(0x2000);
      assert.throws(
        () => m.writeU64BE(0x1ffc, 1n),
        (e: unknown) => e instanceof GuestMemoryError && e.kind === "OUT_OF_BOUNDS",
      );
      assert.throws(() => m.read(-1, 1), GuestMemoryError);
      assert.deepEqual(m.peekDirtyPages(), []);
      assert.equal(m.readU32BE(0x1ffc), 0);
    });

    it("logs the pages devices write, and clears the log when taken", () => {
      const m = make(1 << 20);
      m.writeU32BE(0x1ffe, 0xffffffff); // straddles pages 1 and 2
      m.writeU32BE(0x9000, 1);
      m.markDirty(0x20000, 0x1000);
      assert.deepEqual(m.takeDirtyPages(), [1, 2, 9, 0x20]);
      assert.deepEqual(m.takeDirtyPages(), []);
    });

    it("fails every access once closed", () => {
      const m = make(0x1000);
      m.close();
      assert.throws(
        () => m.readU32BE(0),
        (e: unknown) => e instanceof GuestMemoryError && e.kind === "CLOSED",
      );
    });
  });
}

describe("file guest memory", () => {
  it("is shared: a second opener sees the first one's writes", () => {
    const path = join(dir, "shared");
    const a = new FileGuestMemory(path, 1 << 16);
    const b = new FileGuestMemory(path, 1 << 16);
    a.writeU32BE(0x40, 0xdeadbeef);
    assert.equal(b.readU32BE(0x40), 0xdeadbeef);
    assert.equal(statSync(path).size, 1 << 16);
    a.close();
    b.close();
  });

  it("creates a missing file, sized, in a folder it creates too", () => {
    const path = join(dir, "guest-ram", "new.ram");
    new FileGuestMemory(path, 1 << 16).close();
    assert.equal(statSync(path).size, 1 << 16);
  });

  it("refuses a file sized for another guest", () => {
    const path = join(dir, "sized");
    new FileGuestMemory(path, 1 << 16).close();
    assert.throws(
      () => new FileGuestMemory(path, 1 << 17),
      (e: unknown) => e instanceof GuestMemoryError && e.kind === "BAD_SIZE",
    );
  });
});
