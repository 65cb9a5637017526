import { KvmReg } from "./kvm.js";

/**
 * The POWER9 KVM XIVE device's uapi (arch/powerpc/include/uapi/asm/kvm.h, "POWER9 XIVE Native
 * Interrupt Controller"): attribute groups, CTRL attributes, value bits, the mmap page offsets
 * and the VP state one-reg.
 */
export const KvmXive = {
  KVM_DEV_XIVE_GRP_CTRL: 1,
  KVM_DEV_XIVE_RESET: 1,
  KVM_DEV_XIVE_EQ_SYNC: 2,
  KVM_DEV_XIVE_NR_SERVERS: 3,
  KVM_DEV_XIVE_GRP_SOURCE: 2,
  KVM_DEV_XIVE_GRP_SOURCE_CONFIG: 3,
  KVM_DEV_XIVE_GRP_EQ_CONFIG: 4,
  KVM_DEV_XIVE_GRP_SOURCE_SYNC: 5,
  KVM_XIVE_LEVEL_SENSITIVE: 1n,
  KVM_XIVE_LEVEL_ASSERTED: 2n,
  KVM_XIVE_EQ_ALWAYS_NOTIFY: 1,
  KVM_XIVE_ESB_PAGE_OFFSET: 4,
  KVM_XIVE_TIMA_PAGE_OFFSET: 0,
} as const;

/** KVM_REG_PPC_VP_STATE = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x8d. */
export const KVM_REG_PPC_VP_STATE = KvmReg.KVM_REG_PPC | KvmReg.KVM_REG_SIZE_U128 | 0x8dn;

/** `struct kvm_ppc_xive_eq` (64 bytes, host byte order). */
export const KvmXiveEqLayout = { size: 64, flags: 0, qshift: 4, qaddr: 8, qtoggle: 16, qindex: 20 } as const;
