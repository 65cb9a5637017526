import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AddrInfoFlags,
  CacheType,
  Errno,
  InvalidateGranularity,
  PasidInfoFlags,
  SmmuError,
  buildCommand,
  planSeedInvalidation,
  tlbiRange,
  type CacheInvalidateInfo,
} from "../src/index.js";
import { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, identityStage2, makeSmmu, writeCd } from "./smmu-fixture.js";

/** Device 1 (vSID 0x41) with ASID 5 and device 2 (vSID 0x42) with ASID 6, both mapping 0x5000_0000.. pages. */
function twoDevices() {
  const { smmu, memory } = makeSmmu({ limits: { iotlbEntries: 4096 } });
  identityStage2(smmu);
  const tables: GuestPageTables[] = [];
  for (const [sid, asid, cd] of [
    [1, 5, 0x8000],
    [2, 6, 0x8040],
  ] as const) {
    smmu.attachDevice(sid, 0x40 + sid);
    const t = new GuestPageTables(memory, 12, 48, 0x10_0000 * sid);
    for (let i = 0; i < 16; i++) t.map(0x5000_0000 + i * 0x1000, 0x100_0000 * sid + i * 0x1000);
    writeCd(memory, cd, { asid, t0sz: 16, tg0: 0, ttb0: t.root });
    smmu.setGuestSte(sid, guestSte({ contextPtr: cd }));
    tables.push(t);
  }
  const warm = () => {
    for (const sid of [1, 2])
      for (let i = 0; i < 16; i++) smmu.translate(sid, undefined, 0x5000_0000 + i * 0x1000, false);
  };
  const cached = (sid: number, page: number) =>
    smmu.translate(sid, undefined, 0x5000_0000 + page * 0x1000, false).hit;
  warm();
  return { smmu, memory, tables, warm, cached };
}

describe("raw invalidation commands (digest §2.4 iommufd, §4.3 QEMU)", () => {
  it("TLBI_NH_VA drops that ASID's entry for the page only", () => {
    const { smmu, cached } = twoDevices();
    assert.equal(smmu.invalidateCommands([buildCommand.nhVa(5, 0x5000_3000)]).handled, 1);
    assert.equal(cached(1, 3), false);
    assert.equal(cached(1, 4), true);
    assert.equal(cached(2, 3), true);
  });

  it("range TLBI: TG 1 (4K), NUM 3, SCALE 1 covers (3 + 1) * 2^1 = 8 pages", () => {
    const cmd = buildCommand.nhVa(5, 0x5000_2000, { tg: 1, num: 3, scale: 1, ttl: 3 });
    assert.equal(tlbiRange(cmd).length, 8 * 4096);
    const { smmu, cached } = twoDevices();
    smmu.invalidateCommands([cmd]);
    for (let p = 0; p < 16; p++) assert.equal(cached(1, p), p < 2 || p >= 10, `page ${p}`);
  });

  it("TLBI_NH_VAA drops the page for every ASID; NH_ASID one ASID; NH_ALL and NSNH_ALL all stage-1 entries", () => {
    let s = twoDevices();
    s.smmu.invalidateCommands([buildCommand.nhVaa(0x5000_1000)]);
    assert.deepEqual([s.cached(1, 1), s.cached(2, 1), s.cached(1, 2)], [false, false, true]);
    s = twoDevices();
    s.smmu.invalidateCommands([buildCommand.nhAsid(6)]);
    assert.deepEqual([s.cached(1, 5), s.cached(2, 5)], [true, false]);
    for (const cmd of [buildCommand.nhAll(), buildCommand.nsnhAll()]) {
      s = twoDevices();
      s.smmu.invalidateCommands([cmd]);
      const left = [...s.smmu.iotlb.entries()];
      // Stage-2 entries (ASID -1) survive; every stage-1 entry is gone.
      assert.ok(left.length > 0);
      assert.ok(left.every((e) => e.asid === -1));
      assert.deepEqual([s.cached(1, 0), s.cached(2, 0)], [false, false]);
    }
  });

  it("CFGI_CD with the vSID: a CD the guest changed is re-read only after it", () => {
    const { smmu, memory, tables } = twoDevices();
    writeCd(memory, 0x8000, { asid: 5, t0sz: 16, tg0: 0, ttb0: tables[1]!.root });
    smmu.invalidateCommands([buildCommand.nhAsid(5)]);
    assert.equal(smmu.translate(1, undefined, 0x5000_0000, false).address, 0x100_0000);
    assert.equal(smmu.invalidateCommands([buildCommand.cfgiCd(0x41, 0), buildCommand.nhAsid(5)]).handled, 2);
    assert.equal(smmu.translate(1, undefined, 0x5000_0000, false).address, 0x200_0000);
  });

  it("CFGI_CD / CFGI_CD_ALL / ATC_INV with an unknown vSID → EIO", () => {
    const { smmu } = twoDevices();
    for (const cmd of [buildCommand.cfgiCd(0x1, 0), buildCommand.cfgiCdAll(0x1), buildCommand.atcInv(0x1)]) {
      const r = smmu.invalidateCommands([cmd]);
      assert.equal(r.handled, 0);
      assert.equal(r.error?.errno, Errno.EIO);
      assert.equal(r.error?.reason, "UNKNOWN_VIRTUAL_SID");
    }
    assert.equal(smmu.invalidateCommands([buildCommand.atcInv(0x41, 1)]).handled, 1);
  });

  it("any other opcode is refused as the kernel refuses it: EIO (CMD_SYNC, CFGI_STE, TLBI_S2_IPA, PREFETCH...)", () => {
    const { smmu } = twoDevices();
    for (const op of [0x01, 0x03, 0x04, 0x20, 0x28, 0x2a, 0x41, 0x44, 0x46, 0xff]) {
      const r = smmu.invalidateCommands([buildCommand.raw(op)]);
      assert.equal(r.error?.errno, Errno.EIO, `opcode 0x${op.toString(16)}`);
      assert.equal(r.error?.batchIndex, 0);
    }
  });

  // Linux 7.3 arm_vsmmu_validate_user_cmd, seen in the Arm kernel tier (an ATC_INV refused on
  // QEMU's SMMU, which has no ATS); the digest lists opcodes only.
  it("a guest command with a field it may not set is EIO before it runs (arm_vsmmu_validate_user_cmd)", () => {
    const reasonOf = (features: Parameters<typeof makeSmmu>[0], cmd: readonly [bigint, bigint]) => {
      const { smmu } = makeSmmu(features);
      identityStage2(smmu);
      smmu.attachDevice(1, 0x41);
      const r = smmu.invalidateCommands([cmd]);
      return [r.handled, r.error?.errno, r.error?.reason];
    };
    const rows: [string, Parameters<typeof makeSmmu>[0], readonly [bigint, bigint], unknown[]][] = [
      [
        "a RES0 bit of TLBI_NH_ASID (dw0 bit 20)",
        {},
        [buildCommand.nhAsid(5)[0] | (1n << 20n), 0n],
        [0, Errno.EIO, "COMMAND_FIELD_NOT_ALLOWED"],
      ],
      [
        "an ASID above 8 bits on an 8-bit-ASID SMMU",
        { features: { asid16: false } },
        buildCommand.nhAsid(0x100),
        [0, Errno.EIO, "COMMAND_FIELD_NOT_ALLOWED"],
      ],
      [
        "ATC_INV on an SMMU without ATS",
        { features: { ats: false } },
        buildCommand.atcInv(0x41),
        [0, Errno.EIO, "COMMAND_NOT_ALLOWED"],
      ],
      ["ATC_INV with ATS", {}, buildCommand.atcInv(0x41), [1, undefined, undefined]],
      [
        "TG 0 with NUM set (reserved range)",
        {},
        buildCommand.nhVa(5, 0x5000_0000, { num: 3 }),
        [0, Errno.EIO, "COMMAND_RANGE_RESERVED"],
      ],
      [
        "range fields without range invalidation",
        { features: { rangeInvalidation: false } },
        buildCommand.nhVa(5, 0x5000_0000, { tg: 1, num: 3 }),
        [0, Errno.EIO, "COMMAND_FIELD_NOT_ALLOWED"],
      ],
      [
        "a CFGI_CD SSID without substreams",
        { features: { substreamIdBits: 0 } },
        buildCommand.cfgiCd(0x41, 1),
        [0, Errno.EIO, "COMMAND_FIELD_NOT_ALLOWED"],
      ],
      [
        "a valid range TLBI",
        {},
        buildCommand.nhVa(5, 0x5000_0000, { tg: 1, num: 3, scale: 1 }),
        [1, undefined, undefined],
      ],
    ];
    for (const [rule, features, cmd, expected] of rows)
      assert.deepEqual(reasonOf(features, cmd), expected, rule);
  });

  it("a batch stops at the first bad entry: entries before it stay applied, handled counts them", () => {
    const { smmu, cached } = twoDevices();
    const r = smmu.invalidateCommands([buildCommand.nhAsid(5), buildCommand.sync(), buildCommand.nhAsid(6)]);
    assert.equal(r.handled, 1);
    assert.equal(r.error?.batchIndex, 1);
    assert.deepEqual([cached(1, 0), cached(2, 0)], [false, true]);
    assert.equal(smmu.invalidateCommands([]).handled, 0);
  });
});

describe("seed CACHE_INVALIDATE (digest §1.3)", () => {
  const info = (o: Partial<CacheInvalidateInfo>): CacheInvalidateInfo => ({
    version: 1,
    cache: CacheType.IOTLB,
    granularity: InvalidateGranularity.DOMAIN,
    ...o,
  });
  const errno = (i: CacheInvalidateInfo): number | undefined => {
    try {
      planSeedInvalidation(i);
      return undefined;
    } catch (e) {
      if (e instanceof SmmuError) return e.errno;
      throw e;
    }
  };

  it("the valid-combination table: DOMAIN with IOTLB/PASID, PASID with all, ADDR with DEV_IOTLB/IOTLB", () => {
    const { DOMAIN, PASID, ADDR } = InvalidateGranularity;
    assert.equal(errno(info({ cache: CacheType.DEV_IOTLB, granularity: DOMAIN })), Errno.EINVAL);
    assert.equal(errno(info({ cache: CacheType.PASID, granularity: ADDR })), Errno.EINVAL);
    assert.equal(errno(info({ version: 2 })), Errno.EINVAL);
    assert.equal(errno(info({ cache: 8 })), Errno.EINVAL);
    assert.equal(errno(info({ granularity: 3 })), Errno.EINVAL);
    assert.equal(
      errno(info({ granularity: PASID, pasidInfo: { flags: 4, archid: 0, pasid: 0 } })),
      Errno.EINVAL,
    );
    assert.equal(errno(info({ granularity: DOMAIN })), undefined);
  });

  it("the SMMU driver: ARCHID needed (EINVAL), PASID-tagged → ENOENT, DEV_IOTLB → ENOENT, granule power of two", () => {
    const { PASID, ADDR, DOMAIN } = InvalidateGranularity;
    const addr = {
      flags: AddrInfoFlags.ARCHID,
      archid: 5,
      pasid: 0,
      addr: 0x5000_0000n,
      granuleSize: 4096,
      nbGranules: 2,
    };
    assert.equal(
      errno(info({ granularity: PASID, pasidInfo: { flags: 0, archid: 5, pasid: 0 } })),
      Errno.EINVAL,
    );
    assert.equal(
      errno(
        info({
          granularity: PASID,
          pasidInfo: { flags: PasidInfoFlags.PASID | PasidInfoFlags.ARCHID, archid: 5, pasid: 1 },
        }),
      ),
      Errno.ENOENT,
    );
    assert.equal(
      errno(
        info({ granularity: ADDR, addrInfo: { ...addr, flags: AddrInfoFlags.PASID | AddrInfoFlags.ARCHID } }),
      ),
      Errno.ENOENT,
    );
    assert.equal(errno(info({ granularity: ADDR, addrInfo: { ...addr, granuleSize: 3000 } })), Errno.EINVAL);
    assert.equal(errno(info({ cache: CacheType.DEV_IOTLB, granularity: PASID })), Errno.ENOENT);
    assert.equal(errno(info({ cache: CacheType.PASID, granularity: DOMAIN })), Errno.ENOENT);
    assert.equal(
      errno(
        info({ cache: CacheType.PASID, granularity: PASID, pasidInfo: { flags: 0, archid: 0, pasid: 1 } }),
      ),
      Errno.EINVAL,
    );
    assert.deepEqual(planSeedInvalidation(info({ granularity: ADDR, addrInfo: { ...addr, flags: 0 } })), {
      kind: "vmid-stage1",
    });
  });

  it("applies: ASID by archid, ranges of nb_granules * granule_size, PASID cache as CFGI_CD", () => {
    const { smmu, cached } = twoDevices();
    smmu.invalidate(
      info({
        granularity: InvalidateGranularity.PASID,
        pasidInfo: { flags: PasidInfoFlags.ARCHID, archid: 6, pasid: 0 },
      }),
    );
    assert.deepEqual([cached(1, 0), cached(2, 0)], [true, false]);
    smmu.invalidate(
      info({
        granularity: InvalidateGranularity.ADDR,
        addrInfo: {
          flags: AddrInfoFlags.ARCHID,
          archid: 5,
          pasid: 0,
          addr: 0x5000_4000n,
          granuleSize: 4096,
          nbGranules: 2,
        },
      }),
    );
    assert.deepEqual([cached(1, 3), cached(1, 4), cached(1, 5), cached(1, 6)], [true, false, false, true]);
  });
});
