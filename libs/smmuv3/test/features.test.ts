import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno, SmmuError, decodeIdRegisters, encodeIdRegisters, resolveFeatures } from "../src/index.js";

describe("features and the ID registers GET_HW_INFO reports (digest §2.7)", () => {
  it("defaults: 16-bit SIDs, 20-bit SSIDs, 4K/16K/64K, OAS 48, ASID16, VMID16, RIL, CD2L, stalls, PRI", () => {
    const { idr0, idr1, idr3, idr5 } = encodeIdRegisters(resolveFeatures());
    // IDR0 bits as Linux arm-smmu-v3.h names them.
    assert.equal(idr0 & 0b11, 0b11, "S1P and S2P");
    assert.equal((idr0 >> 2) & 3, 2, "TTF AArch64");
    assert.equal((idr0 >> 12) & 1, 1, "ASID16");
    assert.equal((idr0 >> 16) & 1, 1, "PRI");
    assert.equal((idr0 >> 18) & 1, 1, "VMID16");
    assert.equal((idr0 >> 19) & 1, 1, "CD2L");
    assert.equal((idr0 >> 24) & 3, 0, "STALL_MODEL: stall and terminate");
    assert.equal((idr0 >> 27) & 3, 1, "ST_LEVEL 2-level");
    assert.deepEqual([idr1 & 0x3f, (idr1 >> 6) & 0x1f], [16, 20], "SIDSIZE, SSIDSIZE");
    assert.equal((idr3 >> 10) & 1, 1, "RIL");
    assert.deepEqual([idr5 & 7, (idr5 >> 4) & 7], [5, 0b111], "OAS 48 bits; GRAN4K/16K/64K");
  });

  it("refuses out-of-range widths, OAS 52 (no LPA formats) and no granule at all (EINVAL)", () => {
    for (const bad of [
      { streamIdBits: 0 },
      { substreamIdBits: 21 },
      { outputAddressBits: 52 },
      { granule4K: false, granule16K: false, granule64K: false },
    ]) {
      assert.throws(
        () => resolveFeatures(bad),
        (e: unknown) => e instanceof SmmuError && e.errno === Errno.EINVAL,
      );
    }
  });

  it("decodeIdRegisters reads back every feature encodeIdRegisters writes (a native SMMU's HW_INFO)", () => {
    const variants = [
      resolveFeatures(),
      resolveFeatures({ streamIdBits: 8, substreamIdBits: 0, granule16K: false, outputAddressBits: 44 }),
      resolveFeatures({ asid16: false, vmid16: false, rangeInvalidation: false, twoLevelCdTable: false }),
      resolveFeatures({ twoLevelStreamTable: false, stall: false, ats: false, pri: false, granule4K: false }),
    ];
    for (const f of variants) {
      const { idr0, idr1, idr3, idr5 } = encodeIdRegisters(f);
      assert.deepEqual(decodeIdRegisters([idr0, idr1, 0, idr3, 0, idr5]), f);
    }
  });

  it("an OAS of 52 bits (IDR5.OAS = 6) is read as 48, the widest the model walks", () => {
    const { idr0, idr1, idr3, idr5 } = encodeIdRegisters(resolveFeatures());
    assert.equal(decodeIdRegisters([idr0, idr1, 0, idr3, 0, (idr5 & ~7) | 6]).outputAddressBits, 48);
  });
});
