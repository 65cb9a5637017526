import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventClass, EventId, Perm } from "../src/index.js";
import { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, makeSmmu, writeCd } from "./smmu-fixture.js";

/** Guest IPA [0, 1 GiB) lives at host 0x4000_0000 + ipa: stage 2 is not the identity. */
const HOST = 0x4000_0000;
const CD = 0x8000;

function nested(options: { s2Perm?: number; cd?: Record<string, unknown> } = {}) {
  const { smmu, memory } = makeSmmu();
  smmu.mapStage2(0, HOST, 0x1000_0000, options.s2Perm ?? Perm.READ_WRITE);
  smmu.attachDevice(0x20, 0x2);
  const tables = new GuestPageTables(memory, 12, 48, 0x100000, (ipa) => HOST + ipa);
  writeCdAt(memory, CD, { asid: 9, t0sz: 16, tg0: 0, ttb0: tables.root, ...options.cd });
  smmu.setGuestSte(0x20, guestSte({ contextPtr: CD }));
  return { smmu, memory, tables };
}

function writeCdAt(
  memory: Parameters<typeof writeCd>[0],
  ipa: number,
  fields: Parameters<typeof writeCd>[2],
): void {
  writeCd(memory, HOST + ipa, fields);
}

describe("nested translation (digest §4.2 Nested; DESIGN hot path)", () => {
  it("the CD pointer and every stage-1 table address go through stage 2; DMA lands at S2(S1(iova))", () => {
    const { smmu, memory, tables } = nested();
    tables.map(0x7000_0000, 0x0234_5000);
    const r = smmu.translate(0x20, undefined, 0x7000_0abc, true);
    assert.equal(r.outcome, "translated", JSON.stringify(r.event));
    assert.equal(r.address, HOST + 0x0234_5abc);
    const w = smmu.dmaWrite(0x20, undefined, 0x7000_0abc, new Uint8Array([1, 2, 3]));
    assert.equal(w.outcome, "completed");
    assert.deepEqual([...memory.read(HOST + 0x0234_5abc, 3)], [1, 2, 3]);
  });

  it("CD fetch faulting at stage 2 → S2 F_TRANSLATION, class CD, IPA = the CD's IPA", () => {
    const { smmu } = nested();
    smmu.setGuestSte(0x20, guestSte({ contextPtr: 0x2000_0000 }));
    const r = smmu.translate(0x20, undefined, 0x1000, false);
    assert.equal(r.event?.id, EventId.F_TRANSLATION);
    assert.equal(r.event?.stage2, true);
    assert.equal(r.event?.eventClass, EventClass.CD);
    assert.equal(r.event?.ipa, 0x2000_0000);
    assert.equal(r.recorded, true);
  });

  it("a stage-1 table at an IPA stage 2 does not map → S2 F_TRANSLATION, class TT, TT_READ, IPA of the descriptor", () => {
    const { smmu, memory, tables } = nested();
    tables.map(0x7000_0000, 0x0234_5000);
    // Point the level-2 table descriptor at an unmapped IPA (0x3000_0000).
    const l2 = tables.descriptorIpa(0x7000_0000, 1);
    memory.writeU64LE(HOST + l2, 0x3000_0000n | 3n);
    const r = smmu.translate(0x20, undefined, 0x7000_0000, false);
    assert.equal(r.event?.id, EventId.F_TRANSLATION);
    assert.equal(r.event?.stage2, true);
    assert.equal(r.event?.eventClass, EventClass.TT);
    assert.equal(r.event?.ttRead, true);
    assert.equal(r.event?.ipa, 0x3000_0000 + ((0x7000_0000 / 2 ** 21) % 512) * 8);
    assert.equal(r.event?.inputAddress, 0x7000_0000n);
  });

  it("stage-1 output outside stage 2 → S2 F_TRANSLATION, class IN, IPA = the output", () => {
    const { smmu, tables } = nested();
    tables.map(0x7000_0000, 0x3000_0000);
    const r = smmu.translate(0x20, undefined, 0x7000_0123, false);
    assert.deepEqual(
      [r.event?.id, r.event?.stage2, r.event?.eventClass, r.event?.ipa],
      [EventId.F_TRANSLATION, true, EventClass.IN, 0x3000_0123],
    );
  });

  it("stage-2 read-only: a write faults at stage 2 (F_PERMISSION, S2 = 1), on a miss and on an IOTLB hit", () => {
    const { smmu, tables } = nested({ s2Perm: Perm.READ });
    tables.map(0x7000_0000, 0x0234_5000);
    const miss = smmu.translate(0x20, undefined, 0x7000_0010, true);
    assert.deepEqual(
      [miss.event?.id, miss.event?.stage2, miss.event?.ipa],
      [EventId.F_PERMISSION, true, 0x0234_5010],
    );
    assert.equal(smmu.translate(0x20, undefined, 0x7000_0010, false).outcome, "translated");
    const hit = smmu.translate(0x20, undefined, 0x7000_0020, true);
    assert.deepEqual(
      [hit.event?.id, hit.event?.stage2, hit.event?.ipa],
      [EventId.F_PERMISSION, true, 0x0234_5020],
    );
  });

  it("on a hit, a write that stage 1 forbids is reported at stage 1 even if stage 2 forbids it too", () => {
    const { smmu, tables } = nested({ s2Perm: Perm.READ });
    tables.map(0x7000_0000, 0x0234_5000, { readOnly: true });
    assert.equal(smmu.translate(0x20, undefined, 0x7000_0000, false).outcome, "translated");
    const hit = smmu.translate(0x20, undefined, 0x7000_0000, true);
    assert.equal(hit.hit, false);
    assert.deepEqual([hit.event?.id, hit.event?.stage2], [EventId.F_PERMISSION, false]);
  });

  it("the cached entry keeps the smaller of the two mappings (S1 2M block over S2 4K pages → 4K)", () => {
    const { smmu, memory } = makeSmmu();
    // Stage 2 in 4K pages only: host addresses not 2M aligned.
    smmu.mapStage2(0, 0x1000, 0x40_0000, Perm.READ_WRITE);
    smmu.mapStage2(0x100_0000, 0x100_0000, 0x100_0000, Perm.READ_WRITE);
    smmu.attachDevice(0x20, 0x2);
    const tables = new GuestPageTables(memory, 12, 48, 0x100_0000, (ipa) => ipa);
    tables.map(0x4000_0000, 0x20_0000, { level: 2 });
    writeCd(memory, 0x180_0000, { asid: 1, t0sz: 16, tg0: 0, ttb0: tables.root });
    smmu.setGuestSte(0x20, guestSte({ contextPtr: 0x180_0000 }));
    const r = smmu.translate(0x20, undefined, 0x4000_1234, false);
    assert.equal(r.address, 0x20_1234 + 0x1000);
    assert.equal(r.sizeBits, 12);
    const again = smmu.translate(0x20, undefined, 0x4000_1000, false);
    assert.equal(again.hit, true);
    assert.equal(smmu.translate(0x20, undefined, 0x4000_2000, false).hit, false);
  });

  it("S1 4K page over an S2 1G block → 4K entry; S1 2M block over S2 1G → 2M entry", () => {
    const { smmu, memory } = makeSmmu();
    smmu.mapStage2(0, 0, 2 ** 30, Perm.READ_WRITE);
    smmu.attachDevice(0x20, 0x2);
    const tables = new GuestPageTables(memory, 12, 48, 0x10_0000);
    tables.map(0x4000_0000, 0x20_0000, { level: 2 });
    tables.map(0x5000_0000, 0x40_0000);
    writeCd(memory, 0x8000, { asid: 1, t0sz: 16, tg0: 0, ttb0: tables.root });
    smmu.setGuestSte(0x20, guestSte({ contextPtr: 0x8000 }));
    assert.equal(smmu.translate(0x20, undefined, 0x4001_0000, false).sizeBits, 21);
    assert.equal(smmu.translate(0x20, undefined, 0x5000_0000, false).sizeBits, 12);
    assert.equal(smmu.translate(0x20, undefined, 0x4010_0000, false).hit, true);
  });

  it("a table fetch from the MSI doorbell page is an external abort: F_WALK_EABT, class TT; a CD there F_CD_FETCH", () => {
    const { smmu, memory, tables } = nested();
    tables.map(0x7000_0000, 0x0234_5000);
    const l2 = tables.descriptorIpa(0x7000_0000, 1);
    memory.writeU64LE(HOST + l2, 0x0800_0000n | 3n);
    smmu.bindMsi(0xffe0_0000, 0x0800_0000, 0x1000);
    const r = smmu.translate(0x20, undefined, 0x7000_0000, false);
    assert.deepEqual(
      [r.event?.id, r.event?.eventClass, r.event?.stage2],
      [EventId.F_WALK_EABT, EventClass.TT, false],
    );
    assert.equal(r.event?.fetchAddress !== undefined, true);
    smmu.setGuestSte(0x20, guestSte({ contextPtr: 0x0800_0040 }));
    const c = smmu.translate(0x20, undefined, 0x7000_0000, false);
    assert.deepEqual([c.event?.id, c.event?.fetchAddress], [EventId.F_CD_FETCH, 0x0800_0040]);
  });

  it("CD.R = 0: stage-1 faults abort unrecorded; stage-2 faults are still recorded (host S2R)", () => {
    const { smmu, tables } = nested({ cd: { record: false } });
    const s1 = smmu.translate(0x20, undefined, 0x6000_0000, false);
    assert.equal(s1.outcome, "fault");
    assert.equal(s1.recorded, false);
    tables.map(0x7000_0000, 0x3000_0000);
    const s2 = smmu.translate(0x20, undefined, 0x7000_0000, false);
    assert.equal(s2.recorded, true);
    const queued = smmu.readEvents();
    assert.equal(queued.length, 1);
    assert.equal(queued[0]!.lost ? -1 : queued[0]!.event.id, EventId.F_TRANSLATION);
  });

  it("stage 1 bypassed (guest Config 4): IOVA is the IPA; IOVA >= 2^OAS → stage-1 F_ADDR_SIZE (digest §4.2.5)", () => {
    const { smmu } = makeSmmu();
    smmu.mapStage2(0, HOST, 0x100_0000, Perm.READ_WRITE);
    smmu.attachDevice(0x20, 0x2);
    smmu.setGuestSte(0x20, guestSte({ config: 4 }));
    assert.equal(smmu.translate(0x20, undefined, 0x1234, true).address, HOST + 0x1234);
    const far = smmu.translate(0x20, undefined, 2 ** 48, false);
    assert.deepEqual([far.event?.id, far.event?.stage2], [EventId.F_ADDR_SIZE, false]);
    const unmapped = smmu.translate(0x20, undefined, 0x200_0000, false);
    assert.deepEqual(
      [unmapped.event?.id, unmapped.event?.stage2, unmapped.event?.eventClass],
      [EventId.F_TRANSLATION, true, EventClass.IN],
    );
  });

  it("a device with no guest stage-1 config is translated by stage 2 only (attached to the S2 parent)", () => {
    const { smmu } = makeSmmu();
    smmu.mapStage2(0, HOST, 0x100_0000, Perm.READ_WRITE);
    smmu.attachDevice(0x20, 0x2);
    assert.equal(smmu.translate(0x20, undefined, 0x10, false).address, HOST + 0x10);
  });

  it("a StreamID with no vdevice → C_BAD_STREAMID, not queued (no vSID to report it through)", () => {
    const { smmu } = makeSmmu();
    const r = smmu.translate(0x99, undefined, 0, false);
    assert.equal(r.event?.id, EventId.C_BAD_STREAMID);
    assert.equal(r.recorded, false);
    assert.equal(smmu.readEvents().length, 0);
  });
});
