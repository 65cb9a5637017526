import {
  KvmDeviceType,
  KvmLayouts,
  KvmXive,
  KvmXiveEqLayout,
  MappedRegion,
  closeFd,
  hostPageSize,
  ioctl,
  withNativeBuffer,
  type AccessSize,
  type NativeBuffer,
} from "@vplane/host-kernel";
import { encodeKvmEqId, type KvmXiveEq } from "@vplane/xive";
import type { KvmVm } from "./native-kvm-vm.js";

/**
 * The kernel's KVM XIVE device of one VM (KVM_DEV_TYPE_XIVE; xive.md §1): its attributes, and its
 * ESB and TIMA pages mapped from the device fd. Every method is the ioctl it is named after and
 * throws the kernel's KernelError unchanged.
 */
export class KvmXiveDevice {
  private esbPages: MappedRegion | undefined;
  private timaPages: MappedRegion | undefined;
  private closed = false;
  readonly pageSize = hostPageSize();

  private constructor(
    readonly vm: KvmVm,
    readonly fd: number,
    /** Sources whose ESB pages are mapped (0 .. nrIrqs-1). */
    readonly nrIrqs: number,
  ) {}

  /** KVM_CREATE_DEVICE(KVM_DEV_TYPE_XIVE) on the VM; EEXIST for a second one, ENODEV off POWER. */
  static create(vm: KvmVm, nrIrqs: number): KvmXiveDevice {
    const L = KvmLayouts.kvm_create_device;
    const fd = withNativeBuffer(L.size, (b) => {
      b.setU32(L.type, KvmDeviceType.KVM_DEV_TYPE_XIVE);
      ioctl(vm.vmFd, vm.ioctls.KVM_CREATE_DEVICE, b);
      return b.u32(L.fd);
    });
    return new KvmXiveDevice(vm, fd, nrIrqs);
  }

  /** KVM_SET_DEVICE_ATTR with a u64 value (or no value: addr 0). */
  setAttr(group: number, attr: bigint | number, value?: bigint): void {
    this.attrCall(
      "set",
      group,
      attr,
      value === undefined ? 0 : 8,
      (b, at) => value !== undefined && b.setU64(at, value),
    );
  }

  /** KVM_GET_DEVICE_ATTR of a u64. */
  getAttr(group: number, attr: bigint | number): bigint {
    return this.attrCall(
      "get",
      group,
      attr,
      8,
      () => undefined,
      (b, at) => b.u64(at),
    );
  }

  /** KVM_HAS_DEVICE_ATTR: true when the device accepts (group, attr). */
  hasAttr(group: number, attr: bigint | number): boolean {
    try {
      this.attrCall("has", group, attr, 0, () => undefined);
      return true;
    } catch (error) {
      if ((error as { errno?: number }).errno === 6) return false; // ENXIO: not an attribute
      throw error;
    }
  }

  private attrCall<T>(
    kind: "set" | "get" | "has",
    group: number,
    attr: bigint | number,
    valueBytes: number,
    write: (b: NativeBuffer, at: number) => unknown,
    read?: (b: NativeBuffer, at: number) => T,
  ): T {
    const L = KvmLayouts.kvm_device_attr;
    return withNativeBuffer(L.size + Math.max(valueBytes, 8), (b) => {
      b.setU32(L.group, group).setU64(L.attr, BigInt(attr));
      if (valueBytes > 0) b.setU64(L.addr, b.address + L.size);
      write(b, L.size);
      const k = this.vm.ioctls;
      ioctl(
        this.fd,
        kind === "set"
          ? k.KVM_SET_DEVICE_ATTR
          : kind === "get"
            ? k.KVM_GET_DEVICE_ATTR
            : k.KVM_HAS_DEVICE_ATTR,
        b,
      );
      return read ? read(b, L.size) : (undefined as T);
    });
  }

  setNrServers(nrServers: number): void {
    const L = KvmLayouts.kvm_device_attr;
    withNativeBuffer(L.size + 4, (b) => {
      b.setU32(L.group, KvmXive.KVM_DEV_XIVE_GRP_CTRL).setU64(L.attr, KvmXive.KVM_DEV_XIVE_NR_SERVERS);
      b.setU64(L.addr, b.address + L.size).setU32(L.size, nrServers);
      ioctl(this.fd, this.vm.ioctls.KVM_SET_DEVICE_ATTR, b);
    });
  }

  reset(): void {
    this.setAttr(KvmXive.KVM_DEV_XIVE_GRP_CTRL, KvmXive.KVM_DEV_XIVE_RESET);
  }

  eqSync(): void {
    this.setAttr(KvmXive.KVM_DEV_XIVE_GRP_CTRL, KvmXive.KVM_DEV_XIVE_EQ_SYNC);
  }

  initSource(irq: number, lsi: boolean, asserted: boolean): void {
    const value =
      (lsi ? KvmXive.KVM_XIVE_LEVEL_SENSITIVE : 0n) | (asserted ? KvmXive.KVM_XIVE_LEVEL_ASSERTED : 0n);
    this.setAttr(KvmXive.KVM_DEV_XIVE_GRP_SOURCE, irq, value);
  }

  setSourceConfig(irq: number, kvmConfig: bigint): void {
    this.setAttr(KvmXive.KVM_DEV_XIVE_GRP_SOURCE_CONFIG, irq, kvmConfig);
  }

  syncSource(irq: number): void {
    this.setAttr(KvmXive.KVM_DEV_XIVE_GRP_SOURCE_SYNC, irq);
  }

  setQueueConfig(server: number, priority: number, eq: KvmXiveEq): void {
    const L = KvmLayouts.kvm_device_attr;
    const E = KvmXiveEqLayout;
    withNativeBuffer(L.size + E.size, (b) => {
      b.setU32(L.group, KvmXive.KVM_DEV_XIVE_GRP_EQ_CONFIG).setU64(
        L.attr,
        encodeKvmEqId({ server, priority }),
      );
      b.setU64(L.addr, b.address + L.size);
      b.setU32(L.size + E.flags, eq.flags)
        .setU32(L.size + E.qshift, eq.qshift)
        .setU64(L.size + E.qaddr, eq.qaddr);
      b.setU32(L.size + E.qtoggle, eq.qtoggle).setU32(L.size + E.qindex, eq.qindex);
      ioctl(this.fd, this.vm.ioctls.KVM_SET_DEVICE_ATTR, b);
    });
  }

  /** EQ_CONFIG get; a queue with no page answers 0 without writing the struct (xive.md §1.2): all zero. */
  getQueueConfig(server: number, priority: number): KvmXiveEq {
    const L = KvmLayouts.kvm_device_attr;
    const E = KvmXiveEqLayout;
    return withNativeBuffer(L.size + E.size, (b) => {
      b.setU32(L.group, KvmXive.KVM_DEV_XIVE_GRP_EQ_CONFIG).setU64(
        L.attr,
        encodeKvmEqId({ server, priority }),
      );
      b.setU64(L.addr, b.address + L.size);
      ioctl(this.fd, this.vm.ioctls.KVM_GET_DEVICE_ATTR, b);
      return {
        flags: b.u32(L.size + E.flags),
        qshift: b.u32(L.size + E.qshift),
        qaddr: b.u64(L.size + E.qaddr),
        qtoggle: b.u32(L.size + E.qtoggle),
        qindex: b.u32(L.size + E.qindex),
      };
    });
  }

  /**
   * One load or store on a source's ESB page (big-endian, as the hardware's): the even page
   * triggers, the odd one is the management page (xive.md §1.5, §3). The kernel maps ESB pages
   * only as one mapping that starts at pgoff KVM_XIVE_ESB_PAGE_OFFSET (a mapping starting at a
   * source's own page is EINVAL), so the pages of every source are mapped at first use, 2 per
   * source; a page is faulted in when touched (SIGBUS for a source that is not valid).
   */
  esbAccess(
    irq: number,
    management: boolean,
    offset: number,
    size: AccessSize,
    store: boolean,
    value = 0n,
  ): bigint {
    if (!Number.isInteger(irq) || irq < 0 || irq >= this.nrIrqs)
      throw new RangeError(`source ${irq} is not below ${this.nrIrqs}`);
    this.esbPages ??= MappedRegion.map(
      this.fd,
      KvmXive.KVM_XIVE_ESB_PAGE_OFFSET * this.pageSize,
      2 * this.nrIrqs * this.pageSize,
    );
    const at = (2 * irq + (management ? 1 : 0)) * this.pageSize + offset;
    if (!store) return this.esbPages.load(at, size, "big");
    this.esbPages.store(at, size, value, "big");
    return 0n;
  }

  /**
   * One access to the TIMA's OS page (page 2 of the 4 mapped from pgoff
   * KVM_XIVE_TIMA_PAGE_OFFSET; pages 0, 1 and 3 raise SIGBUS and are never touched). The TIMA is
   * per hardware thread: it shows the context of the vCPU running on the thread that touches it.
   */
  timaOsAccess(offset: number, size: AccessSize, store: boolean, value = 0n): bigint {
    this.timaPages ??= MappedRegion.map(
      this.fd,
      KvmXive.KVM_XIVE_TIMA_PAGE_OFFSET * this.pageSize,
      4 * this.pageSize,
    );
    const at = 2 * this.pageSize + offset;
    if (!store) return this.timaPages.load(at, size, "big");
    this.timaPages.store(at, size, value, "big");
    return 0n;
  }

  /** Unmaps the pages and closes the device fd (idempotent); the VM is the caller's. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.esbPages?.unmap();
    this.timaPages?.unmap();
    closeFd(this.fd);
  }
}
