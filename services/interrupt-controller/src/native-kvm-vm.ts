import {
  KvmCap,
  KvmLayouts,
  closeFd,
  ioctl,
  kernelCallsAvailability,
  kvmIoctls,
  openDevice,
  withNativeBuffer,
  KVM_VM_PPC_HV,
  type KvmIoctls,
} from "@vplane/host-kernel";

/** The KVM ioctls numbered for this host (throws where the kernel-call library is unavailable). */
export function hostKvmIoctls(): KvmIoctls {
  const calls = kernelCallsAvailability();
  if (!calls.available) throw new Error(`kernel calls are unavailable: ${calls.reason}`);
  return kvmIoctls(calls.arch);
}

/**
 * A KVM VM and its vCPUs as the native backend works on them: handed over by the VMM that owns
 * them (adopt) or created here (own: standalone use and tests). Closing releases only what this
 * process holds; an adopted VM lives on in its VMM.
 */
export class KvmVm {
  private readonly vcpus = new Map<number, number>();
  private closed = false;

  private constructor(
    readonly vmFd: number,
    readonly owned: boolean,
    private readonly k: KvmIoctls,
  ) {}

  /** KVM_CREATE_VM with type KVM_VM_PPC_HV on POWER (the XIVE device needs HV KVM), 0 elsewhere. */
  static create(): KvmVm {
    const k = hostKvmIoctls();
    const kvm = openDevice("/dev/kvm");
    try {
      return new KvmVm(ioctl(kvm, k.KVM_CREATE_VM, process.arch === "ppc64" ? KVM_VM_PPC_HV : 0), true, k);
    } finally {
      closeFd(kvm);
    }
  }

  /** A VM whose fds a VMM handed over (this process owns these copies of the fds). */
  static adopt(vmFd: number, vcpuFds: ReadonlyMap<number, number>): KvmVm {
    const vm = new KvmVm(vmFd, false, hostKvmIoctls());
    for (const [id, fd] of vcpuFds) vm.vcpus.set(id, fd);
    return vm;
  }

  /** The vCPU fd of `vcpuId`: the adopted one, or (own mode) one made with KVM_CREATE_VCPU. */
  vcpu(vcpuId: number): number {
    let fd = this.vcpus.get(vcpuId);
    if (fd === undefined) {
      if (!this.owned) throw new Error(`the VMM did not hand over vCPU ${vcpuId}`);
      fd = ioctl(this.vmFd, this.k.KVM_CREATE_VCPU, vcpuId);
      this.vcpus.set(vcpuId, fd);
    }
    return fd;
  }

  /** A vCPU fd the VMM handed over later (hotplug). */
  addVcpu(vcpuId: number, fd: number): void {
    if (this.vcpus.has(vcpuId)) throw new Error(`vCPU ${vcpuId} was handed over already`);
    this.vcpus.set(vcpuId, fd);
  }

  hasVcpu(vcpuId: number): boolean {
    return this.vcpus.has(vcpuId);
  }

  /** KVM_ENABLE_CAP on a vCPU with up to four arguments. */
  enableVcpuCap(vcpuId: number, cap: number, args: readonly (number | bigint)[] = []): void {
    const L = KvmLayouts.kvm_enable_cap;
    withNativeBuffer(L.size, (b) => {
      b.setU32(L.cap, cap);
      args.forEach((arg, i) => b.setU64(L.args + 8 * i, arg));
      ioctl(this.vcpu(vcpuId), this.k.KVM_ENABLE_CAP, b);
    });
  }

  /** KVM_CAP_PPC_PAPR on a vCPU: a pseries guest's vCPU, which the XIVE connection requires. */
  enablePapr(vcpuId: number): void {
    this.enableVcpuCap(vcpuId, KvmCap.KVM_CAP_PPC_PAPR);
  }

  /** KVM_GET_ONE_REG of `size` bytes (host byte order u64 words). */
  getOneReg(vcpuId: number, id: bigint, words: number): bigint[] {
    const L = KvmLayouts.kvm_one_reg;
    return withNativeBuffer(L.size + 8 * words, (b) => {
      b.setU64(L.id, id).setU64(L.addr, b.address + L.size);
      ioctl(this.vcpu(vcpuId), this.k.KVM_GET_ONE_REG, b);
      return Array.from({ length: words }, (_, i) => b.u64(L.size + 8 * i));
    });
  }

  setOneReg(vcpuId: number, id: bigint, value: readonly bigint[]): void {
    const L = KvmLayouts.kvm_one_reg;
    withNativeBuffer(L.size + 8 * value.length, (b) => {
      b.setU64(L.id, id).setU64(L.addr, b.address + L.size);
      value.forEach((word, i) => b.setU64(L.size + 8 * i, word));
      ioctl(this.vcpu(vcpuId), this.k.KVM_SET_ONE_REG, b);
    });
  }

  /** KVM_SET_USER_MEMORY_REGION: guest-physical [gpa, gpa+size) backed by host memory at `hostAddress`. */
  setMemoryRegion(slot: number, gpa: bigint, size: number, hostAddress: number): void {
    const L = KvmLayouts.kvm_userspace_memory_region;
    withNativeBuffer(L.size, (b) => {
      b.setU32(L.slot, slot)
        .setU64(L.guest_phys_addr, gpa)
        .setU64(L.memory_size, size)
        .setU64(L.userspace_addr, hostAddress);
      ioctl(this.vmFd, this.k.KVM_SET_USER_MEMORY_REGION, b);
    });
  }

  get ioctls(): KvmIoctls {
    return this.k;
  }

  /** Closes this process's fds of the VM and its vCPUs (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.vcpus.values()) closeQuietly(fd);
    this.vcpus.clear();
    closeQuietly(this.vmFd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed: nothing held
  }
}
