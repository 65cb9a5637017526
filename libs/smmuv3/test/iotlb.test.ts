import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Iotlb, TlbEntry } from "../src/index.js";
import { identityStage2, makeSmmu, stage1Device } from "./smmu-fixture.js";

const entry = (out: number, bits: number, level: number) => new TlbEntry(out, out, bits, 3, 3, level, 12);

describe("IOTLB (digest §4.3)", () => {
  it("keys by ASID, VMID, granule and level: a lookup probes each level from the start level", () => {
    const tlb = new Iotlb(16);
    const ctx = tlb.context(5, 1);
    tlb.insert(ctx, 0, 1, 2, 0x40_1234, entry(0x80_0000, 21, 2));
    assert.equal(tlb.lookup(ctx, 0, 1, 0, 0x5f_ffff)?.outBase, 0x80_0000);
    assert.equal(tlb.lookup(ctx, 0, 1, 3, 0x40_1234), undefined, "level 2 is above a level-3 start");
    assert.equal(tlb.lookup(ctx, 0, 2, 0, 0x40_1234), undefined, "another granule");
    assert.equal(tlb.lookup(tlb.context(6, 1), 0, 1, 0, 0x40_1234), undefined, "another ASID");
    assert.equal(tlb.lookup(tlb.context(5, 2), 0, 1, 0, 0x40_1234), undefined, "another VMID");
    assert.equal(tlb.lookup(ctx, 1, 1, 0, 0x40_1234), undefined, "the other translation table");
  });

  it("an insert into a full IOTLB flushes everything first (QEMU's SMMU_IOTLB_MAX_SIZE rule)", () => {
    const tlb = new Iotlb(4);
    const ctx = tlb.context(1, 1);
    for (let i = 0; i < 4; i++) tlb.insert(ctx, 0, 1, 3, i * 0x1000, entry(i * 0x1000, 12, 3));
    assert.equal(tlb.size, 4);
    tlb.insert(ctx, 0, 1, 3, 0x9000, entry(0x9000, 12, 3));
    assert.equal(tlb.size, 1);
    assert.equal(tlb.lookup(ctx, 0, 1, 0, 0), undefined);
  });

  it("a page invalidation inside a block entry removes the block (overlap match)", () => {
    const tlb = new Iotlb(16);
    const ctx = tlb.context(1, 1);
    tlb.insert(ctx, 0, 1, 2, 0x20_0000, entry(0x80_0000, 21, 2));
    tlb.invalidateRange(1, 1, 0, 0x23_4000, 0x1000);
    assert.equal(tlb.size, 0);
  });
});

describe("config cache (digest §4.1 step 2): bounded", () => {
  it("past its capacity it is flushed and re-filled from guest memory, translations unchanged", () => {
    const { smmu, memory } = makeSmmu({ limits: { configCacheEntries: 1 } });
    identityStage2(smmu);
    const a = stage1Device(smmu, memory, { sid: 1, vsid: 1, asid: 1, cd: 0x8000, tablesAt: 0x10_0000 });
    const b = stage1Device(smmu, memory, { sid: 2, vsid: 2, asid: 2, cd: 0x8040, tablesAt: 0x20_0000 });
    a.map(0x5000_0000, 0x1000);
    b.map(0x5000_0000, 0x2000);
    for (let round = 0; round < 3; round++) {
      assert.equal(smmu.translate(1, undefined, 0x5000_0000, false).address, 0x1000);
      assert.equal(smmu.translate(2, undefined, 0x5000_0000, false).address, 0x2000);
      assert.ok(smmu.dump().devices.reduce((n, d) => n + d.cachedContextDescriptors, 0) <= 1);
    }
  });
});
