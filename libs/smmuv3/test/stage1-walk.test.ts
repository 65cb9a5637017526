import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventClass, EventId } from "../src/index.js";
import { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, identityStage2, makeSmmu, writeCd } from "./smmu-fixture.js";

const CD = 0x8000;

/** An SMMU with identity stage 2, device 0x10 (vSID 0x1) translating stage 1 through CD at CD. */
function setup(granuleBits: 12 | 14 | 16, tsz: number, cdExtra: Record<string, unknown> = {}) {
  const { smmu, memory } = makeSmmu();
  identityStage2(smmu);
  smmu.attachDevice(0x10, 0x1);
  const tables = new GuestPageTables(memory, granuleBits, 64 - tsz, 0x100000);
  const tg0 = granuleBits === 12 ? 0 : granuleBits === 16 ? 1 : 2;
  writeCd(memory, CD, { asid: 5, t0sz: tsz, tg0, ttb0: tables.root, ...cdExtra });
  smmu.setGuestSte(0x10, guestSte({ contextPtr: CD }));
  return { smmu, memory, tables };
}

describe("stage-1 walk (digest §4.2 Stage 1)", () => {
  it("golden 4K walk, T0SZ 16: descriptors read at the architectural indices 0x24/0xd1/0xb3/0x189", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(0x10, 0x1);
    // Hand-laid tables: L0 at 0x10000, L1 0x11000, L2 0x12000, L3 0x13000.
    memory.writeU64LE(0x10000 + 0x24 * 8, 0x11000n | 3n);
    memory.writeU64LE(0x11000 + 0xd1 * 8, 0x12000n | 3n);
    memory.writeU64LE(0x12000 + 0xb3 * 8, 0x13000n | 3n);
    memory.writeU64LE(0x13000 + 0x189 * 8, 0x4000_0000n | (1n << 10n) | 3n);
    writeCd(memory, CD, { asid: 1, t0sz: 16, tg0: 0, ttb0: 0x10000 });
    smmu.setGuestSte(0x10, guestSte({ contextPtr: CD }));
    const r = smmu.translate(0x10, undefined, 0x1234_5678_9abc, false);
    assert.equal(r.outcome, "translated");
    assert.equal(r.address, 0x4000_0abc);
    assert.equal(r.sizeBits, 12);
  });

  const cases: { g: 12 | 14 | 16; tsz: number; start: number }[] = [
    { g: 12, tsz: 16, start: 0 },
    { g: 12, tsz: 25, start: 1 },
    { g: 12, tsz: 34, start: 2 },
    { g: 14, tsz: 16, start: 0 },
    { g: 14, tsz: 17, start: 1 },
    { g: 14, tsz: 28, start: 2 },
    { g: 14, tsz: 39, start: 3 },
    { g: 16, tsz: 16, start: 1 },
    { g: 16, tsz: 22, start: 2 },
    { g: 16, tsz: 35, start: 3 },
  ];
  for (const { g, tsz, start } of cases) {
    it(`granule 2^${g}, T0SZ ${tsz}: start level ${start}, page and block leaves`, () => {
      const { smmu, tables } = setup(g, tsz);
      assert.equal(tables.startLevel, start);
      const inputBits = 64 - tsz;
      // A page near the top of the input range.
      const page = 2 ** g;
      const va = 2 ** inputBits - 3 * page + 0x18;
      tables.map(va - (va % page), 0x3000_0000);
      const r = smmu.translate(0x10, undefined, va, true);
      assert.equal(r.outcome, "translated", JSON.stringify(r.event));
      assert.equal(r.address, 0x3000_0000 + (va % page));
      assert.equal(r.sizeBits, g);
      // A block at level 2 when the walk starts above it.
      if (start < 2) {
        const blockBits = tables.shift(2);
        const bva = 2 ** blockBits * 3 + 0x1234;
        tables.map(2 ** blockBits * 3, 2 ** blockBits * 2, { level: 2 });
        const b = smmu.translate(0x10, undefined, bva, false);
        assert.equal(b.outcome, "translated");
        assert.equal(b.address, 2 ** blockBits * 2 + 0x1234);
        assert.equal(b.sizeBits, blockBits);
      }
      // Beyond the input range: translation fault at stage 1.
      const out = smmu.translate(0x10, undefined, 2 ** inputBits, false);
      assert.equal(out.outcome, "fault");
      assert.equal(out.event?.id, EventId.F_TRANSLATION);
      assert.equal(out.event?.stage2, false);
    });
  }

  it("4K level-1 block (1 GiB) translates; a level-1 block under 16K is a translation fault (blocks L2 only)", () => {
    const { smmu, tables } = setup(12, 16);
    tables.map(2 ** 30, 2 ** 30, { level: 1 });
    const r = smmu.translate(0x10, undefined, 2 ** 30 + 0x12345, false);
    assert.equal(r.address, 2 ** 30 + 0x12345);
    assert.equal(r.sizeBits, 30);
    const s = setup(14, 16);
    s.tables.map(0, 0, { level: 1 });
    const f = s.smmu.translate(0x10, undefined, 0x4000, false);
    assert.equal(f.event?.id, EventId.F_TRANSLATION);
  });

  it("invalid descriptor → F_TRANSLATION, stage 1, class IN, InputAddr and RnW set (digest §3.4)", () => {
    const { smmu } = setup(12, 16);
    const r = smmu.translate(0x10, undefined, 0x5000, false);
    assert.equal(r.outcome, "fault");
    assert.deepEqual(
      {
        id: r.event?.id,
        s2: r.event?.stage2,
        cls: r.event?.eventClass,
        addr: r.event?.inputAddress,
        read: r.event?.read,
        sid: r.event?.streamId,
      },
      { id: EventId.F_TRANSLATION, s2: false, cls: EventClass.IN, addr: 0x5000n, read: true, sid: 0x1 },
    );
    assert.equal(r.recorded, true);
  });

  it("AF = 0 → F_ACCESS before permission; AFFD = 1 disables it", () => {
    const { smmu, tables } = setup(12, 16);
    tables.map(0x7000, 0x9000, { noAccessFlag: true, readOnly: true });
    assert.equal(smmu.translate(0x10, undefined, 0x7000, true).event?.id, EventId.F_ACCESS);
    const s = setup(12, 16, { affd: true });
    s.tables.map(0x7000, 0x9000, { noAccessFlag: true });
    assert.equal(s.smmu.translate(0x10, undefined, 0x7000, true).outcome, "translated");
  });

  it("AP[2] read-only: reads pass, writes → F_PERMISSION stage 1, also on an IOTLB hit", () => {
    const { smmu, tables } = setup(12, 16);
    tables.map(0x7000, 0x9000, { readOnly: true });
    const read = smmu.translate(0x10, undefined, 0x7010, false);
    assert.equal(read.address, 0x9010);
    const write = smmu.translate(0x10, undefined, 0x7010, true);
    assert.equal(write.event?.id, EventId.F_PERMISSION);
    assert.equal(write.event?.stage2, false);
    assert.equal(smmu.iotlb.size > 0, true);
  });

  it("APTable[1] forbids writes below it unless HAD0 is set", () => {
    const { smmu, tables } = setup(12, 16);
    tables.map(0x7000, 0x9000);
    tables.setTableReadOnly(0x7000, 1);
    assert.equal(smmu.translate(0x10, undefined, 0x7000, true).event?.id, EventId.F_PERMISSION);
    assert.equal(smmu.translate(0x10, undefined, 0x7000, false).outcome, "translated");
    const s = setup(12, 16, { had0: true });
    s.tables.map(0x7000, 0x9000);
    s.tables.setTableReadOnly(0x7000, 1);
    assert.equal(s.smmu.translate(0x10, undefined, 0x7000, true).outcome, "translated");
  });

  it("output beyond the CD's IPS → F_ADDR_SIZE (IPS 0 = 32 bits)", () => {
    const { smmu, tables } = setup(12, 16, { ips: 0 });
    tables.map(0x7000, 2 ** 33);
    assert.equal(smmu.translate(0x10, undefined, 0x7000, false).event?.id, EventId.F_ADDR_SIZE);
  });

  it("TTB1 serves the top of the address space; the gap between TTB0 and TTB1 faults; EPD1 disables TTB1", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(0x10, 0x1);
    const t1 = new GuestPageTables(memory, 12, 39, 0x200000);
    // Region 1 addresses are reduced to their low 52 bits by the walker: 2^52 - 2^39 + offset.
    const top = 2n ** 64n - 2n ** 39n;
    t1.map(2 ** 52 - 2 ** 39 + 0x5000, 0x6000_0000);
    writeCd(memory, CD, {
      asid: 2,
      t0sz: 25,
      tg0: 0,
      ttb0: 0x300000,
      t1sz: 25,
      tg1: 2,
      epd1: false,
      ttb1: t1.root,
    });
    smmu.setGuestSte(0x10, guestSte({ contextPtr: CD }));
    const r = smmu.translate(0x10, undefined, top + 0x5123n, true);
    assert.equal(r.outcome, "translated", JSON.stringify(r.event));
    assert.equal(r.address, 0x6000_0123);
    const gap = smmu.translate(0x10, undefined, 0x8000_0000_0000n, false);
    assert.equal(gap.event?.id, EventId.F_TRANSLATION);
    writeCd(memory, CD + 64, { asid: 3, t0sz: 25, tg0: 0, ttb0: 0x300000 });
    smmu.setGuestSte(0x10, guestSte({ contextPtr: CD + 64 }));
    assert.equal(smmu.translate(0x10, undefined, top + 0x5123n, false).event?.id, EventId.F_TRANSLATION);
  });

  it("TBI1 ignores the top byte when selecting TTB1", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(0x10, 0x1);
    const t1 = new GuestPageTables(memory, 12, 39, 0x200000);
    t1.map(2 ** 52 - 2 ** 39 + 0x5000, 0x6000_0000);
    writeCd(memory, CD, { asid: 2, epd0: true, t1sz: 25, tg1: 2, epd1: false, ttb1: t1.root, tbi1: true });
    smmu.setGuestSte(0x10, guestSte({ contextPtr: CD }));
    const tagged = 0x5aff_ff80_0000_5000n; // top byte 0x5a, then ones down to bit 39
    assert.equal(smmu.translate(0x10, undefined, tagged, false).address, 0x6000_0000);
  });
});
