/**
 * The KVM XIVE device's attribute groups and value layouts (xive.md §1.2, §1.3, §1.5, §1.6).
 * Decoders take the raw 64-bit values a VMM passes to KVM_SET_DEVICE_ATTR.
 */

export const KVM_DEV_TYPE_XIVE = 9;
export const KVM_CAP_PPC_IRQ_XIVE = 169;

/** Attribute groups (xive.md §1.2). */
export const KvmXiveGroup = {
  CTRL: 1,
  SOURCE: 2,
  SOURCE_CONFIG: 3,
  EQ_CONFIG: 4,
  SOURCE_SYNC: 5,
} as const;

/** CTRL attributes. */
export const KvmXiveCtrl = { RESET: 1, EQ_SYNC: 2, NR_SERVERS: 3 } as const;

/** KVMPPC_XIVE_NR_IRQS: sources 0 .. 1,048,575 (xive.md §1.2, §7). */
export const KVM_XIVE_NR_IRQS = 1024 * 1024;
/** KVMPPC_XICS_IRQ_PER_ICS: sources live in blocks of 1024, created on first use. */
export const SOURCES_PER_BLOCK = 1024;
export const SOURCE_BLOCK_SHIFT = 10;

/** SOURCE attribute value bits (xive.md §1.3). */
export const KVM_XIVE_LEVEL_SENSITIVE = 1n;
export const KVM_XIVE_LEVEL_ASSERTED = 2n;

/** SOURCE_CONFIG value layout (xive.md §1.3). */
export const KVM_XIVE_SOURCE_PRIORITY_MASK = 0x7n;
export const KVM_XIVE_SOURCE_SERVER_SHIFT = 3n;
export const KVM_XIVE_SOURCE_SERVER_MASK = 0xffff_fff8n;
export const KVM_XIVE_SOURCE_MASKED_SHIFT = 32n;
export const KVM_XIVE_SOURCE_MASKED_MASK = 0x1_0000_0000n;
export const KVM_XIVE_SOURCE_EISN_SHIFT = 33n;
export const KVM_XIVE_SOURCE_EISN_MASK = 0xffff_fffe_0000_0000n;

export interface KvmSourceConfig {
  priority: number;
  server: number;
  masked: boolean;
  eisn: number;
}

export function decodeKvmSourceConfig(value: bigint): KvmSourceConfig {
  const v = BigInt.asUintN(64, value);
  return {
    priority: Number(v & KVM_XIVE_SOURCE_PRIORITY_MASK),
    server: Number((v & KVM_XIVE_SOURCE_SERVER_MASK) >> KVM_XIVE_SOURCE_SERVER_SHIFT),
    masked: (v & KVM_XIVE_SOURCE_MASKED_MASK) !== 0n,
    eisn: Number((v & KVM_XIVE_SOURCE_EISN_MASK) >> KVM_XIVE_SOURCE_EISN_SHIFT),
  };
}

export function encodeKvmSourceConfig(config: KvmSourceConfig): bigint {
  return (
    (BigInt(config.priority) & KVM_XIVE_SOURCE_PRIORITY_MASK) |
    ((BigInt(config.server) << KVM_XIVE_SOURCE_SERVER_SHIFT) & KVM_XIVE_SOURCE_SERVER_MASK) |
    (config.masked ? KVM_XIVE_SOURCE_MASKED_MASK : 0n) |
    ((BigInt(config.eisn) << KVM_XIVE_SOURCE_EISN_SHIFT) & KVM_XIVE_SOURCE_EISN_MASK)
  );
}

/** EQ identifier (the EQ_CONFIG attr): priority bits 2:0, server bits 31:3, 63:32 unused. */
export interface KvmEqId {
  server: number;
  priority: number;
}

export function decodeKvmEqId(attr: bigint): KvmEqId {
  const v = BigInt.asUintN(64, attr);
  return { priority: Number(v & 0x7n), server: Number((v & 0xffff_fff8n) >> 3n) };
}

export function encodeKvmEqId(id: KvmEqId): bigint {
  return (BigInt(id.priority) & 0x7n) | ((BigInt(id.server) << 3n) & 0xffff_fff8n);
}

/** KVM_XIVE_EQ_ALWAYS_NOTIFY, the only flag EQ_CONFIG accepts (xive.md §1.4 step 3). */
export const KVM_XIVE_EQ_ALWAYS_NOTIFY = 1;

/** `struct kvm_ppc_xive_eq` (64 bytes): flags, qshift, qaddr, qtoggle, qindex, pad. */
export interface KvmXiveEq {
  flags: number;
  qshift: number;
  qaddr: bigint;
  qtoggle: number;
  qindex: number;
}

export const KVM_XIVE_EQ_SIZE = 64;

/**
 * Encodes the struct in the byte order of a big-endian POWER host (the order the kernel uses on
 * ppc64; QEMU on ppc64le passes host-endian fields, which a VMM converts itself).
 */
export function encodeKvmXiveEq(eq: KvmXiveEq): Uint8Array {
  const out = new Uint8Array(KVM_XIVE_EQ_SIZE);
  const view = new DataView(out.buffer);
  view.setUint32(0, eq.flags >>> 0);
  view.setUint32(4, eq.qshift >>> 0);
  view.setBigUint64(8, BigInt.asUintN(64, eq.qaddr));
  view.setUint32(16, eq.qtoggle >>> 0);
  view.setUint32(20, eq.qindex >>> 0);
  return out;
}

export function decodeKvmXiveEq(bytes: Uint8Array): KvmXiveEq {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    flags: view.getUint32(0),
    qshift: view.getUint32(4),
    qaddr: view.getBigUint64(8),
    qtoggle: view.getUint32(16),
    qindex: view.getUint32(20),
  };
}

/** mmap page offsets of the device fd, in host pages (xive.md §1.5). */
export const KVM_XIVE_TIMA_PAGE_OFFSET = 0;
export const KVM_XIVE_ESB_PAGE_OFFSET = 4;

/** KVM_REG_PPC_VP_STATE = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x8d (xive.md §1.6). */
export const KVM_REG_PPC_VP_STATE = 0x8d;

/**
 * xive_prio_from_guest: priorities 0-5 and 0xFF map to themselves, anything else to 6; KVM
 * rejects a priority the mapping changes (xive.md §1.3), which for 3-bit fields is only 7.
 */
export function kvmPriorityFromGuest(priority: number): number {
  return priority < 6 || priority === 0xff ? priority : 6;
}

export function isKvmPriorityValid(priority: number): boolean {
  return kvmPriorityFromGuest(priority) === priority;
}
