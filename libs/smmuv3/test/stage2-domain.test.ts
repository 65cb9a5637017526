import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno, Perm } from "../src/index.js";
import { identityStage2, makeSmmu, rejects, stage1Device } from "./smmu-fixture.js";

describe("host stage 2: VFIO type1 v2 MAP_DMA / UNMAP_DMA rules (DESIGN: stage 2 belongs to the host)", () => {
  it("map refuses no permission, zero size, unaligned addresses, the aperture, unbacked host ranges (EINVAL/EFAULT)", () => {
    const { smmu } = makeSmmu();
    rejects(() => smmu.mapStage2(0, 0, 0x1000, Perm.NONE), Errno.EINVAL, "NO_PERMISSION");
    rejects(() => smmu.mapStage2(0, 0, 0, Perm.READ), Errno.EINVAL, "ZERO_SIZE");
    rejects(() => smmu.mapStage2(0x800, 0, 0x1000, Perm.READ), Errno.EINVAL, "NOT_ALIGNED");
    rejects(() => smmu.mapStage2(0, 0x800, 0x1000, Perm.READ), Errno.EINVAL, "NOT_ALIGNED");
    rejects(() => smmu.mapStage2(0, 0, 0x1800, Perm.READ), Errno.EINVAL, "NOT_ALIGNED");
    rejects(() => smmu.mapStage2(2 ** 48 - 0x1000, 0, 0x2000, Perm.READ), Errno.EINVAL, "IPA_OUT_OF_RANGE");
    rejects(
      () => smmu.mapStage2(0, 2 ** 32 - 0x1000, 0x2000, Perm.READ),
      Errno.EFAULT,
      "HOST_RANGE_NOT_BACKED",
    );
    assert.equal(smmu.stage2Mappings.length, 0);
  });

  it("an overlap → EEXIST; the mapping limit → ENOSPC", () => {
    const { smmu } = makeSmmu({ limits: { stage2Mappings: 2 } });
    smmu.mapStage2(0x10000, 0, 0x10000, Perm.READ);
    rejects(() => smmu.mapStage2(0x1f000, 0, 0x2000, Perm.READ), Errno.EEXIST, "MAPPING_OVERLAPS");
    rejects(() => smmu.mapStage2(0x8000, 0, 0x9000, Perm.READ), Errno.EEXIST);
    smmu.mapStage2(0x20000, 0, 0x1000, Perm.READ);
    rejects(() => smmu.mapStage2(0x40000, 0, 0x1000, Perm.READ), Errno.ENOSPC, "TOO_MANY_MAPPINGS");
  });

  it("unmap: unaligned → EINVAL; cutting a mapping → EINVAL; otherwise whole mappings, bytes returned (0 if none)", () => {
    const { smmu } = makeSmmu();
    smmu.mapStage2(0x10000, 0, 0x10000, Perm.READ);
    smmu.mapStage2(0x20000, 0, 0x4000, Perm.READ);
    rejects(() => smmu.unmapStage2(0x10800, 0x1000), Errno.EINVAL);
    rejects(() => smmu.unmapStage2(0x11000, 0x1000), Errno.EINVAL, "UNMAP_BISECTS_MAPPING");
    rejects(() => smmu.unmapStage2(0x10000, 0x11000), Errno.EINVAL, "UNMAP_BISECTS_MAPPING");
    assert.equal(smmu.unmapStage2(0x40000, 0x1000), 0);
    assert.equal(smmu.unmapStage2(0, 0x30000), 0x14000);
    assert.equal(smmu.stage2Mappings.length, 0);
  });

  it("picks the largest blocks both addresses allow (io-pgtable), and frees tables on unmap", () => {
    const { smmu } = makeSmmu();
    const base = smmu.dump().stage2.tables;
    smmu.mapStage2(2 ** 30, 0, 2 ** 30, Perm.READ_WRITE);
    // One level-1 block: only the level-1 table was added.
    assert.equal(smmu.dump().stage2.tables, base + 1);
    assert.equal(smmu.translate(99, undefined, 0, false).outcome, "fault");
    smmu.attachDevice(1, 1);
    const r = smmu.translate(1, undefined, 2 ** 30 + 0x1234, false);
    assert.equal(r.address, 0x1234);
    assert.equal(r.sizeBits, 30);
    smmu.mapStage2(0x20_1000, 0x1000, 0x20_0000, Perm.READ);
    assert.equal(smmu.translate(1, undefined, 0x20_1000, false).sizeBits, 12);
    smmu.unmapStage2(0, 2 ** 31);
    assert.equal(smmu.dump().stage2.tables, base);
  });

  it("unmap invalidates what the mapping fed: stage-2 entries and nested entries alike", () => {
    const { smmu, memory } = makeSmmu();
    smmu.mapStage2(0, 0, 0x100_0000, Perm.READ_WRITE);
    smmu.mapStage2(0x200_0000, 0x200_0000, 0x10_0000, Perm.READ_WRITE);
    const t = stage1Device(smmu, memory, { sid: 1, vsid: 1, asid: 1 });
    t.map(0x5000_0000, 0x200_0000);
    assert.equal(smmu.translate(1, undefined, 0x5000_0000, false).outcome, "translated");
    assert.equal(smmu.translate(1, undefined, 0x5000_0000, false).hit, true);
    smmu.unmapStage2(0x200_0000, 0x10_0000);
    const r = smmu.translate(1, undefined, 0x5000_0000, false);
    assert.equal(r.outcome, "fault");
    assert.equal(r.event?.stage2, true);
  });
});

describe("MSI doorbell binding (digest §1.6, seed BIND_MSI)", () => {
  it("size must be a power of two up to the stage-2 granule; a second doorbell IOVA → EBUSY; the same one is accepted", () => {
    const { smmu } = makeSmmu();
    rejects(() => smmu.bindMsi(0xfee0_0000, 0x0800_0000, 0x3000), Errno.EINVAL, "BAD_MSI_GRANULE");
    rejects(() => smmu.bindMsi(0xfee0_0000, 0x0800_0000, 0x2000), Errno.EINVAL, "BAD_MSI_GRANULE");
    const b = smmu.bindMsi(0xfee0_0040, 0x0800_0040, 0x1000);
    assert.deepEqual(b, { giova: 0xfee0_0000, gpa: 0x0800_0000, size: 0x1000 });
    assert.equal(smmu.bindMsi(0xfee0_0000, 0x0900_0000, 0x1000), b);
    rejects(() => smmu.bindMsi(0xfef0_0000, 0x0800_0000, 0x1000), Errno.EBUSY, "MSI_ALREADY_BOUND");
    assert.equal(smmu.unbindMsi(0x1234_0000), undefined);
    assert.deepEqual(smmu.unbindMsi(0xfee0_0000), b);
    smmu.bindMsi(0xfef0_0000, 0x0800_0000, 0x1000);
  });

  it("DMA to the doorbell IOVA reaches the doorbell (guest S1 maps giova → gpa), not guest RAM", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    const t = stage1Device(smmu, memory, { sid: 1, vsid: 1, asid: 1 });
    t.map(0xfee0_0000, 0x0800_0000);
    t.map(0x5000_0000, 0x0900_0000);
    // Cached as RAM first; the binding must take it back.
    assert.equal(smmu.translate(1, undefined, 0xfee0_0040, true).outcome, "translated");
    smmu.bindMsi(0xfee0_0000, 0x0800_0000, 0x1000);
    const w = smmu.dmaWrite(1, undefined, 0xfee0_0040, new Uint8Array([0x2a, 0, 0, 0]));
    assert.equal(w.outcome, "completed");
    assert.deepEqual(w.msiWrites, [{ address: 0x0800_0040, data: new Uint8Array([0x2a, 0, 0, 0]) }]);
    assert.equal(memory.readU32LE(0x0800_0040), 0);
    const ram = smmu.dmaWrite(1, undefined, 0x5000_0000, new Uint8Array([7]));
    assert.equal(ram.msiWrites.length, 0);
    assert.equal(memory.read(0x0900_0000, 1)[0], 7);
  });
});

describe("DMA through the SMMU", () => {
  it("a transfer crossing pages is translated page by page; a fault anywhere writes nothing", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    const t = stage1Device(smmu, memory, { sid: 1, vsid: 1, asid: 1 });
    t.map(0x5000_0000, 0x0900_3000);
    t.map(0x5000_1000, 0x0900_0000);
    const data = new Uint8Array(0x20).map((_, i) => i + 1);
    assert.equal(smmu.dmaWrite(1, undefined, 0x5000_0ff0, data).outcome, "completed");
    assert.deepEqual([...memory.read(0x0900_3ff0, 0x10)], [...data.subarray(0, 0x10)]);
    assert.deepEqual([...memory.read(0x0900_0000, 0x10)], [...data.subarray(0x10)]);
    const read = smmu.dmaRead(1, undefined, 0x5000_0ff0, 0x20);
    assert.deepEqual([...read.data!], [...data]);
    const partial = smmu.dmaWrite(1, undefined, 0x5000_1ff0, new Uint8Array(0x20).fill(9));
    assert.equal(partial.outcome, "fault");
    assert.equal(memory.read(0x0900_0ff0, 1)[0], 0);
  });
});
