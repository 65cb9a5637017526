import type { KernelArchitecture } from "./architecture.js";
import { ioctlRequest, type IoctlRequest } from "./ioctl-encoding.js";

/** KVMIO, the ioctl type of /dev/kvm, VM, vCPU and device fds (linux/kvm.h). */
export const KVMIO = 0xae;

/** Capabilities asked with KVM_CHECK_EXTENSION / set with KVM_ENABLE_CAP (linux/kvm.h). */
export const KvmCap = {
  KVM_CAP_PPC_PAPR: 68,
  KVM_CAP_DEVICE_CTRL: 89,
  /** 169, not 168 (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): checked against the headers and a 6.1 kernel. */
  KVM_CAP_PPC_IRQ_XIVE: 169,
} as const;

/** Device types of KVM_CREATE_DEVICE (enum kvm_device_type). */
export const KvmDeviceType = { KVM_DEV_TYPE_XICS: 3, KVM_DEV_TYPE_XIVE: 9 } as const;

/** KVM_CREATE_DEVICE flag: only check the type is supported. */
export const KVM_CREATE_DEVICE_TEST = 1;

/** KVM_CREATE_VM's type on powerpc: 1 asks for HV KVM, 2 for PR (arch/powerpc/include/uapi/asm/kvm.h). */
export const KVM_VM_PPC_HV = 1;

/** One-reg ids (linux/kvm.h): architecture and size bits. */
export const KvmReg = {
  KVM_REG_PPC: 0x1000_0000_0000_0000n,
  KVM_REG_SIZE_U64: 0x0030_0000_0000_0000n,
  KVM_REG_SIZE_U128: 0x0040_0000_0000_0000n,
} as const;

/** Struct layouts (byte offsets and sizes) of linux/kvm.h, the same on every 64-bit ABI. */
export const KvmLayouts = {
  kvm_create_device: { size: 12, type: 0, fd: 4, flags: 8 },
  kvm_device_attr: { size: 24, flags: 0, group: 4, attr: 8, addr: 16 },
  kvm_enable_cap: { size: 104, cap: 0, flags: 4, args: 8 },
  kvm_one_reg: { size: 16, id: 0, addr: 8 },
  kvm_userspace_memory_region: {
    size: 32,
    slot: 0,
    flags: 4,
    guest_phys_addr: 8,
    memory_size: 16,
    userspace_addr: 24,
  },
} as const;

/** The KVM ioctls this project issues, numbered for one architecture. */
export function kvmIoctls(arch: KernelArchitecture) {
  const r = (
    name: string,
    direction: "none" | "write" | "read" | "readWrite",
    nr: number,
    size = 0,
  ): IoctlRequest => ioctlRequest(arch, name, direction, KVMIO, nr, size);
  const L = KvmLayouts;
  return {
    KVM_GET_API_VERSION: r("KVM_GET_API_VERSION", "none", 0x00),
    KVM_CREATE_VM: r("KVM_CREATE_VM", "none", 0x01),
    KVM_CHECK_EXTENSION: r("KVM_CHECK_EXTENSION", "none", 0x03),
    KVM_CREATE_VCPU: r("KVM_CREATE_VCPU", "none", 0x41),
    KVM_SET_USER_MEMORY_REGION: r(
      "KVM_SET_USER_MEMORY_REGION",
      "write",
      0x46,
      L.kvm_userspace_memory_region.size,
    ),
    KVM_ENABLE_CAP: r("KVM_ENABLE_CAP", "write", 0xa3, L.kvm_enable_cap.size),
    KVM_GET_ONE_REG: r("KVM_GET_ONE_REG", "write", 0xab, L.kvm_one_reg.size),
    KVM_SET_ONE_REG: r("KVM_SET_ONE_REG", "write", 0xac, L.kvm_one_reg.size),
    KVM_CREATE_DEVICE: r("KVM_CREATE_DEVICE", "readWrite", 0xe0, L.kvm_create_device.size),
    KVM_SET_DEVICE_ATTR: r("KVM_SET_DEVICE_ATTR", "write", 0xe1, L.kvm_device_attr.size),
    KVM_GET_DEVICE_ATTR: r("KVM_GET_DEVICE_ATTR", "write", 0xe2, L.kvm_device_attr.size),
    KVM_HAS_DEVICE_ATTR: r("KVM_HAS_DEVICE_ATTR", "write", 0xe3, L.kvm_device_attr.size),
  } as const;
}

export type KvmIoctls = ReturnType<typeof kvmIoctls>;
