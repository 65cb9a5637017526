import assert from "node:assert/strict";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { GuestPageTables } from "./guest-page-tables.js";
import {
  Perm,
  Smmu,
  SmmuError,
  encodeContextDescriptor,
  type ContextDescriptorFields,
  type PasidTableConfig,
  type SmmuOptions,
} from "../src/index.js";

/** Test support: an SMMU over 4 GiB of sparse RAM with stage 2 identity-mapping the first 2 GiB. */
export function makeSmmu(options: Partial<SmmuOptions> = {}): { smmu: Smmu; memory: SparseGuestMemory } {
  const memory = new SparseGuestMemory(2 ** 32);
  const smmu = new Smmu({ memory, vmid: 7, ...options });
  return { smmu, memory };
}

export function identityStage2(smmu: Smmu, size = 2 ** 31): void {
  smmu.mapStage2(0, 0, size, Perm.READ_WRITE);
}

/** Guest STE words (iommufd form): V, Config, S1Fmt, S1ContextPtr, S1CDMax / S1DSS, S1STALLD, EATS. */
export function guestSte(f: {
  valid?: boolean;
  config?: number;
  contextPtr?: number;
  s1fmt?: number;
  s1cdmax?: number;
  s1dss?: number;
  s1stalld?: boolean;
  eats?: number;
}): [bigint, bigint] {
  const w0 =
    (f.valid === false ? 0n : 1n) |
    (BigInt(f.config ?? 5) << 1n) |
    (BigInt(f.s1fmt ?? 0) << 4n) |
    (BigInt(f.contextPtr ?? 0) & 0xf_ffff_ffff_ffc0n) |
    (BigInt(f.s1cdmax ?? 0) << 59n);
  const w1 = BigInt(f.s1dss ?? 0) | (f.s1stalld ? 1n << 27n : 0n) | (BigInt(f.eats ?? 0) << 28n);
  return [w0, w1];
}

/** A seed ATTACH_PASID_TABLE (digest §1.2) of one linear CD at `basePtr`, stage 1 translating. */
export function seedPasidTable(basePtr: bigint): PasidTableConfig {
  return {
    version: 1,
    format: 1,
    basePtr,
    pasidBits: 0,
    config: 1,
    smmuv3: { version: 1, s1fmt: 0, s1dss: 0 },
  };
}

/** Writes a CD at `ipa` (identity stage 2 assumed for the write). */
export function writeCd(memory: SparseGuestMemory, ipa: number, fields: ContextDescriptorFields): void {
  const words = encodeContextDescriptor(fields);
  words.forEach((w, i) => memory.writeU64LE(ipa + i * 8, w));
}

/** Asserts that fn throws an SmmuError with this errno (and reason, when given). */
export function rejects(fn: () => unknown, errno: number, reason?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SmmuError, String(e));
    assert.equal(e.errno, errno, `${e.reason}: ${e.message}`);
    if (reason) assert.equal(e.reason, reason);
    return true;
  });
}

/**
 * Binds device `sid` (vSID `vsid`) with a 4K, 48-bit stage-1 table allocated from `tablesAt`
 * and a CD at `cd` (identity stage 2 assumed for the writes); returns the guest tables.
 */
export function stage1Device(
  smmu: Smmu,
  memory: SparseGuestMemory,
  o: {
    sid: number;
    vsid: number;
    asid: number;
    cd?: number;
    tablesAt?: number;
    pageRequests?: boolean;
    cdFields?: Partial<ContextDescriptorFields>;
  },
): GuestPageTables {
  smmu.attachDevice(o.sid, o.vsid, { pageRequests: o.pageRequests ?? false });
  const tables = new GuestPageTables(memory, 12, 48, o.tablesAt ?? 0x10_0000);
  const cd = o.cd ?? 0x8000;
  writeCd(memory, cd, { asid: o.asid, t0sz: 16, tg0: 0, ttb0: tables.root, ...o.cdFields });
  smmu.setGuestSte(o.sid, guestSte({ contextPtr: cd }));
  return tables;
}
