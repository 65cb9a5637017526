import { SparseGuestMemory } from "@vplane/guest-memory";
import {
  Perm,
  Smmu,
  encodeContextDescriptor,
  type ContextDescriptorFields,
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

/** Writes a CD at `ipa` (identity stage 2 assumed for the write). */
export function writeCd(memory: SparseGuestMemory, ipa: number, fields: ContextDescriptorFields): void {
  const words = encodeContextDescriptor(fields);
  words.forEach((w, i) => memory.writeU64LE(ipa + i * 8, w));
}
