import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno, EventId, PasidConfig, Perm, validateGuestSte, type PasidTableConfig } from "../src/index.js";
import { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, identityStage2, makeSmmu, writeCd, rejects } from "./smmu-fixture.js";

const seed = (o: Partial<PasidTableConfig> = {}): PasidTableConfig => ({
  version: 1,
  format: 1,
  basePtr: 0x8000n,
  pasidBits: 0,
  config: PasidConfig.TRANSLATE,
  smmuv3: { version: 1, s1fmt: 0, s1dss: 0 },
  ...o,
});

describe("iommufd guest STE (digest §2.1 arm_smmu_validate_vste)", () => {
  it("V = 0 is accepted and zeroed, and the stream then reports C_BAD_STE", () => {
    const v = validateGuestSte(0xffff_0000_0000_0000n, 0x5n);
    assert.deepEqual(v.words, [0n, 0n]);
    const { smmu } = makeSmmu();
    smmu.attachDevice(1, 1);
    smmu.setGuestSte(1, guestSte({ valid: false, config: 7 }));
    const r = smmu.translate(1, undefined, 0, false);
    assert.equal(r.event?.id, EventId.C_BAD_STE);
    assert.equal(r.recorded, true);
  });

  it("a bit outside the nesting mask in either word → EIO", () => {
    rejects(() => validateGuestSte(guestSte({})[0] | (1n << 52n), 0n), Errno.EIO, "STE_FIELD_NOT_ALLOWED");
    rejects(() => validateGuestSte(guestSte({})[0], 1n << 30n), Errno.EIO, "STE_FIELD_NOT_ALLOWED");
    rejects(() => validateGuestSte(guestSte({})[0], 1n << 44n), Errno.EIO);
  });

  it("Config other than 0 (abort), 4 (bypass), 5 (S1) → EIO", () => {
    for (const config of [1, 2, 3, 6, 7])
      rejects(() => validateGuestSte(...guestSte({ config })), Errno.EIO, "STE_CONFIG_NOT_ALLOWED");
    for (const config of [0, 4, 5]) validateGuestSte(...guestSte({ config }));
  });

  it("EATS 2 or 3 → EIO; EATS is stripped from the stored word; ATS on only for S1 with EATS = 1", () => {
    rejects(() => validateGuestSte(...guestSte({ eats: 2 })), Errno.EIO, "STE_EATS_NOT_ALLOWED");
    const v = validateGuestSte(...guestSte({ eats: 1, s1dss: 1 }));
    assert.equal(v.words[1], 1n);
    assert.equal(v.stage1.kind === "translate" && v.stage1.ats, true);
  });

  it("HWPT flags other than FAULT_ID_VALID → EOPNOTSUPP; no vdevice → ENOENT", () => {
    const { smmu } = makeSmmu();
    rejects(() => smmu.setGuestSte(1, guestSte({})), Errno.ENOENT);
    smmu.attachDevice(1, 1);
    rejects(() => smmu.setGuestSte(1, guestSte({}), 1), Errno.EOPNOTSUPP);
    smmu.setGuestSte(1, guestSte({}), 4);
    assert.equal(smmu.listDevices()[0]!.pageRequests, true);
  });

  it("Config 0 aborts silently: no event", () => {
    const { smmu } = makeSmmu();
    smmu.attachDevice(1, 1);
    smmu.setGuestSte(1, guestSte({ config: 0 }));
    const r = smmu.translate(1, undefined, 0, false);
    assert.equal(r.outcome, "aborted");
    assert.equal(r.event, undefined);
  });
});

describe("seed ATTACH_PASID_TABLE (digest §1.2, seed v13-v15)", () => {
  it("bad format, version or smmuv3.version → EINVAL", () => {
    const { smmu } = makeSmmu();
    rejects(() => smmu.attachPasidTable(seed({ format: 2 })), Errno.EINVAL, "BAD_PASID_FORMAT");
    rejects(() => smmu.attachPasidTable(seed({ version: 2 })), Errno.EINVAL);
    rejects(() => smmu.attachPasidTable(seed({ smmuv3: { version: 0, s1fmt: 0, s1dss: 0 } })), Errno.EINVAL);
    rejects(() => smmu.attachPasidTable(seed({ config: 4 })), Errno.EINVAL, "BAD_PASID_CONFIG");
    assert.equal(smmu.pasidTable, undefined);
  });

  it("TRANSLATE with pasid_bits != 0 → EINVAL; TRANSLATE over TRANSLATE → EINVAL; ABORT/BYPASS replace it", () => {
    const { smmu } = makeSmmu();
    rejects(() => smmu.attachPasidTable(seed({ pasidBits: 1 })), Errno.EINVAL, "PASID_BITS_UNSUPPORTED");
    smmu.attachPasidTable(seed());
    rejects(() => smmu.attachPasidTable(seed({ basePtr: 0x9000n })), Errno.EINVAL, "STAGE1_ALREADY_SET");
    smmu.attachPasidTable(seed({ config: PasidConfig.BYPASS }));
    assert.equal(smmu.pasidTable?.kind, "bypass");
    smmu.attachPasidTable(seed({ basePtr: 0x9000n }));
    const table = smmu.dump().pasidTable;
    assert.equal(table?.kind === "translate" && table.contextPtr, 0x9000);
  });

  it("applies to every device of the domain; ABORT aborts them; detach returns to stage 2 only", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(1, 1);
    smmu.attachDevice(2, 2);
    const t = new GuestPageTables(memory, 12, 48, 0x10_0000);
    t.map(0x5000_0000, 0x1000);
    writeCd(memory, 0x8000, { asid: 1, t0sz: 16, tg0: 0, ttb0: t.root });
    smmu.attachPasidTable(seed());
    assert.equal(smmu.translate(1, undefined, 0x5000_0004, false).address, 0x1004);
    assert.equal(smmu.translate(2, undefined, 0x5000_0008, false).address, 0x1008);
    smmu.attachPasidTable(seed({ config: PasidConfig.ABORT }));
    assert.equal(smmu.translate(2, undefined, 0x5000_0008, false).outcome, "aborted");
    smmu.detachPasidTable();
    assert.equal(smmu.translate(2, undefined, 0x1000, false).address, 0x1000);
  });

  it("the two forms do not mix: EBUSY either way", () => {
    const { smmu } = makeSmmu();
    smmu.attachDevice(1, 1);
    smmu.attachPasidTable(seed());
    rejects(() => smmu.setGuestSte(1, guestSte({})), Errno.EBUSY, "STAGE1_OWNED_BY_PASID_TABLE");
    smmu.detachPasidTable();
    smmu.setGuestSte(1, guestSte({}));
    rejects(() => smmu.attachPasidTable(seed()), Errno.EBUSY, "STAGE1_OWNED_BY_IOMMUFD");
  });
});

describe("substreams and CD tables (digest §3.1 S1Fmt/S1CDMax/S1DSS)", () => {
  /** Device 1 with CDs for ssid 0..3; CD i maps VA 0x5000_0000 to page 0x1000 * (i + 1). */
  function withCds(o: { s1fmt?: number; s1cdmax?: number; s1dss?: number }) {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(1, 1);
    const cdAddress: number[] = [];
    if ((o.s1fmt ?? 0) === 0) {
      for (let i = 0; i < 4; i++) cdAddress.push(0x20_0000 + i * 64);
    } else {
      // L1 descriptors at 0x20_0000; each L2 table at 0x30_0000 + 64 KiB * l1index.
      const split = o.s1fmt === 1 ? 6 : 10;
      for (let i = 0; i < 4; i++)
        cdAddress.push(0x30_0000 + 0x1_0000 * Math.floor(i / 2 ** split) + (i % 2 ** split) * 64);
      memory.writeU64LE(0x20_0000, 0x30_0000n | 1n);
    }
    for (let i = 0; i < 4; i++) {
      const t = new GuestPageTables(memory, 12, 48, 0x100_0000 + i * 0x10_0000);
      t.map(0x5000_0000, 0x1000 * (i + 1));
      writeCd(memory, cdAddress[i]!, { asid: 10 + i, t0sz: 16, tg0: 0, ttb0: t.root });
    }
    smmu.setGuestSte(
      1,
      guestSte({ contextPtr: 0x20_0000, s1fmt: o.s1fmt ?? 0, s1cdmax: o.s1cdmax ?? 2, s1dss: o.s1dss ?? 0 }),
    );
    return { smmu, memory };
  }

  for (const s1fmt of [0, 1, 2]) {
    it(`S1Fmt ${s1fmt}: each SubstreamID reaches its own CD`, () => {
      const { smmu } = withCds({ s1fmt, s1dss: 1 });
      for (const ssid of [1, 2, 3])
        assert.equal(smmu.translate(1, ssid, 0x5000_0000, false).address, 0x1000 * (ssid + 1));
    });
  }

  it("SubstreamID >= 2^S1CDMax → C_BAD_SUBSTREAMID (only SSID/SSV in the record)", () => {
    const { smmu } = withCds({ s1cdmax: 1 });
    const r = smmu.translate(1, 2, 0x5000_0000, false);
    assert.equal(r.event?.id, EventId.C_BAD_SUBSTREAMID);
    assert.equal(r.event?.substreamId, 2);
    assert.equal(r.event?.inputAddress, undefined);
  });

  it("no SubstreamID with S1DSS terminate → F_STREAM_DISABLED; bypass → stage 2 only; SSID0 → CD 0", () => {
    assert.equal(
      withCds({ s1dss: 0 }).smmu.translate(1, undefined, 0x5000_0000, false).event?.id,
      EventId.F_STREAM_DISABLED,
    );
    assert.equal(withCds({ s1dss: 1 }).smmu.translate(1, undefined, 0x1234, false).address, 0x1234);
    const ssid0 = withCds({ s1dss: 2 }).smmu;
    assert.equal(ssid0.translate(1, undefined, 0x5000_0000, false).address, 0x1000);
    assert.equal(ssid0.translate(1, 0, 0x5000_0000, false).event?.id, EventId.C_BAD_SUBSTREAMID);
  });

  it("a SubstreamID on a stream without substreams (S1CDMax 0, or stage 1 bypassed) → C_BAD_SUBSTREAMID", () => {
    assert.equal(
      withCds({ s1cdmax: 0 }).smmu.translate(1, 1, 0x5000_0000, false).event?.id,
      EventId.C_BAD_SUBSTREAMID,
    );
    const { smmu } = makeSmmu();
    smmu.attachDevice(1, 1);
    assert.equal(smmu.translate(1, 1, 0, false).event?.id, EventId.C_BAD_SUBSTREAMID);
  });

  it("an invalid L1 CD descriptor → C_BAD_SUBSTREAMID", () => {
    const { smmu, memory } = withCds({ s1fmt: 1, s1cdmax: 8, s1dss: 1 });
    assert.equal(smmu.translate(1, 64, 0x5000_0000, false).event?.id, EventId.C_BAD_SUBSTREAMID);
    memory.writeU64LE(0x20_0008, 0x40_0000n | 1n);
    assert.equal(smmu.translate(1, 64, 0x5000_0000, false).event?.id, EventId.C_BAD_CD);
  });

  it("S1CDMax beyond SSIDSIZE, reserved S1Fmt 3, reserved S1DSS 3 → C_BAD_STE", () => {
    const { smmu } = makeSmmu({ features: { substreamIdBits: 4 } });
    smmu.attachDevice(1, 1);
    smmu.setGuestSte(1, guestSte({ s1cdmax: 5, contextPtr: 0x8000 }));
    assert.equal(smmu.translate(1, undefined, 0, false).event?.id, EventId.C_BAD_STE);
    smmu.setGuestSte(1, guestSte({ s1cdmax: 2, s1fmt: 3, contextPtr: 0x8000 }));
    assert.equal(smmu.translate(1, undefined, 0, false).event?.id, EventId.C_BAD_STE);
    smmu.setGuestSte(1, guestSte({ s1cdmax: 2, s1dss: 3, contextPtr: 0x8000 }));
    assert.equal(smmu.translate(1, undefined, 0, false).event?.id, EventId.C_BAD_STE);
  });
});

describe("CD decode (digest §4.1 decode_cd) → C_BAD_CD", () => {
  const cases: [string, Record<string, unknown>, Record<string, unknown>?][] = [
    ["V = 0", { valid: false }],
    ["AA64 = 0", { aa64: false }],
    ["A = 0", { a: false }],
    ["T0SZ 40", { t0sz: 40 }],
    ["T0SZ 15", { t0sz: 15 }],
    ["TG0 reserved (3)", { tg0: 3 }],
    ["TTB0 beyond OAS", { ttb0: 2 ** 48 }],
    ["16K granule not advertised", { tg0: 2 }, { granule16K: false }],
    ["S = 1 without stalls", { stall: true }, { stall: false }],
  ];
  for (const [name, fields, features] of cases) {
    it(name, () => {
      const { smmu, memory } = makeSmmu({ features: features ?? {} });
      identityStage2(smmu);
      smmu.attachDevice(1, 1);
      writeCd(memory, 0x8000, { asid: 1, t0sz: 16, tg0: 0, ttb0: 0x10000, ...fields });
      smmu.setGuestSte(1, guestSte({ contextPtr: 0x8000 }));
      const r = smmu.translate(1, undefined, 0x1000, false);
      assert.equal(r.event?.id, EventId.C_BAD_CD);
      assert.equal(r.recorded, true);
    });
  }
  it("HA or HD set → C_BAD_CD (HTTU not supported for nesting)", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(1, 1);
    writeCd(memory, 0x8000, { asid: 1, t0sz: 16, tg0: 0, ttb0: 0x10000 });
    memory.writeU64LE(0x8000, memory.readU64LE(0x8000) | (1n << 43n));
    smmu.setGuestSte(1, guestSte({ contextPtr: 0x8000 }));
    assert.equal(smmu.translate(1, undefined, 0x1000, false).event?.id, EventId.C_BAD_CD);
  });
  it("the stage-2 mapping of the CD must allow reads", () => {
    const { smmu, memory } = makeSmmu();
    smmu.mapStage2(0, 0, 0x10_0000, Perm.WRITE);
    smmu.attachDevice(1, 1);
    writeCd(memory, 0x8000, { asid: 1, t0sz: 16, tg0: 0, ttb0: 0x10000 });
    smmu.setGuestSte(1, guestSte({ contextPtr: 0x8000 }));
    const r = smmu.translate(1, undefined, 0x1000, false);
    assert.deepEqual([r.event?.id, r.event?.stage2, r.event?.eventClass], [EventId.F_PERMISSION, true, 0]);
  });
});
