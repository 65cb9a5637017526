import { bitsOf, fieldOf } from "./bits.js";
import { granuleFromTlbCode } from "./translation-granule.js";

/** Command opcodes (digest §3.3, all verified against Linux and QEMU). */
export const CommandOpcode = {
  PREFETCH_CONFIG: 0x01,
  PREFETCH_ADDR: 0x02,
  CFGI_STE: 0x03,
  CFGI_STE_RANGE: 0x04,
  CFGI_CD: 0x05,
  CFGI_CD_ALL: 0x06,
  TLBI_NH_ALL: 0x10,
  TLBI_NH_ASID: 0x11,
  TLBI_NH_VA: 0x12,
  TLBI_NH_VAA: 0x13,
  TLBI_EL3_ALL: 0x18,
  TLBI_EL3_VA: 0x1a,
  TLBI_EL2_ALL: 0x20,
  TLBI_EL2_ASID: 0x21,
  TLBI_EL2_VA: 0x22,
  TLBI_EL2_VAA: 0x23,
  TLBI_S12_VMALL: 0x28,
  TLBI_S2_IPA: 0x2a,
  TLBI_NSNH_ALL: 0x30,
  ATC_INV: 0x40,
  PRI_RESP: 0x41,
  RESUME: 0x44,
  STALL_TERM: 0x45,
  CMD_SYNC: 0x46,
} as const;

const OPCODE_NAMES = new Map<number, string>(Object.entries(CommandOpcode).map(([n, v]) => [v, n]));
export function commandName(opcode: number): string {
  return OPCODE_NAMES.get(opcode) ?? `OP_0x${opcode.toString(16)}`;
}

/** A raw 16-byte command as two 64-bit words (iommufd's `__le64 cmd[2]`, digest §2.4). */
export type RawCommand = readonly [bigint, bigint];

/** The address range a TLBI by VA covers (digest §3.3 "Range TLBI"). */
export interface TlbiRange {
  /** First byte, the full 64-bit VA (ADDR[63:12]). */
  address: bigint;
  /** Bytes covered: one 4 KiB page when TG = 0, else (NUM + 1) * 2^SCALE granules. */
  length: number;
  leaf: boolean;
  /** TTL level hint (0 = none). */
  ttl: number;
  tg: number;
}

export function opcodeOf(cmd: RawCommand): number {
  return Number(cmd[0] & 0xffn);
}

/** TLBI fields: VMID dw0[47:32], ASID dw0[63:48]. */
export function tlbiAsid(cmd: RawCommand): number {
  return bitsOf(cmd[0], 63, 48);
}
export function tlbiVmid(cmd: RawCommand): number {
  return bitsOf(cmd[0], 47, 32);
}

/** NUM dw0[16:12], SCALE dw0[24:20], LEAF dw1[0], TTL dw1[9:8], TG dw1[11:10], ADDR dw1[63:12]. */
export function tlbiRange(cmd: RawCommand): TlbiRange {
  const tg = bitsOf(cmd[1], 11, 10);
  const num = bitsOf(cmd[0], 16, 12);
  const scale = bitsOf(cmd[0], 24, 20);
  const address = cmd[1] & ~0xfffn & ((1n << 64n) - 1n);
  const length = tg === 0 ? 4096 : (num + 1) * 2 ** scale * 2 ** granuleFromTlbCode(tg);
  return { address, length, leaf: bitsOf(cmd[1], 0, 0) === 1, ttl: bitsOf(cmd[1], 9, 8), tg };
}

/** CFGI / ATC / PRI fields: SSV dw0[11], SSID dw0[31:12], SID dw0[63:32]. */
export function cfgiSid(cmd: RawCommand): number {
  return bitsOf(cmd[0], 63, 32);
}
export function cfgiSsid(cmd: RawCommand): number {
  return bitsOf(cmd[0], 31, 12);
}

/** The command with its SID field replaced (the vSID → physical SID rewrite). */
export function withCfgiSid(cmd: RawCommand, sid: number): RawCommand {
  return [(cmd[0] & ~(0xffff_ffffn << 32n)) | fieldOf(sid, 63, 32), cmd[1]];
}

/** The command with its VMID field forced. */
export function withTlbiVmid(cmd: RawCommand, vmid: number): RawCommand {
  return [(cmd[0] & ~(0xffffn << 32n)) | fieldOf(vmid, 47, 32), cmd[1]];
}

/** Builders, for tests and for VMMs that hold fields rather than words. */
export const buildCommand = {
  nhAll: (): RawCommand => [BigInt(CommandOpcode.TLBI_NH_ALL), 0n],
  nsnhAll: (): RawCommand => [BigInt(CommandOpcode.TLBI_NSNH_ALL), 0n],
  nhAsid: (asid: number): RawCommand => [BigInt(CommandOpcode.TLBI_NH_ASID) | fieldOf(asid, 63, 48), 0n],
  nhVa: (
    asid: number,
    address: bigint | number,
    o: { num?: number; scale?: number; tg?: number; ttl?: number; leaf?: boolean } = {},
  ): RawCommand => [
    BigInt(CommandOpcode.TLBI_NH_VA) |
      fieldOf(asid, 63, 48) |
      fieldOf(o.num ?? 0, 16, 12) |
      fieldOf(o.scale ?? 0, 24, 20),
    (BigInt(address) & ~0xfffn) | fieldOf(o.tg ?? 0, 11, 10) | fieldOf(o.ttl ?? 0, 9, 8) | (o.leaf ? 1n : 0n),
  ],
  nhVaa: (
    address: bigint | number,
    o: { num?: number; scale?: number; tg?: number; ttl?: number } = {},
  ): RawCommand => [
    BigInt(CommandOpcode.TLBI_NH_VAA) | fieldOf(o.num ?? 0, 16, 12) | fieldOf(o.scale ?? 0, 24, 20),
    (BigInt(address) & ~0xfffn) | fieldOf(o.tg ?? 0, 11, 10) | fieldOf(o.ttl ?? 0, 9, 8),
  ],
  cfgiCd: (sid: number, ssid: number, leaf = true): RawCommand => [
    BigInt(CommandOpcode.CFGI_CD) | fieldOf(ssid, 31, 12) | fieldOf(sid, 63, 32),
    leaf ? 1n : 0n,
  ],
  cfgiCdAll: (sid: number): RawCommand => [BigInt(CommandOpcode.CFGI_CD_ALL) | fieldOf(sid, 63, 32), 0n],
  atcInv: (sid: number, ssid?: number): RawCommand => [
    BigInt(CommandOpcode.ATC_INV) |
      fieldOf(sid, 63, 32) |
      (ssid !== undefined ? fieldOf(ssid, 31, 12) | (1n << 11n) : 0n),
    52n,
  ],
  sync: (): RawCommand => [BigInt(CommandOpcode.CMD_SYNC), 0n],
  raw: (opcode: number): RawCommand => [BigInt(opcode), 0n],
};
