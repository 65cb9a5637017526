import { Backend, type BackendAvailability } from "@vplane/proto/gen/vplane/common/v1/backend";
import {
  KernelError,
  KvmCap,
  closeFd,
  ioctl,
  kernelCallsAvailability,
  kvmIoctls,
  openDevice,
  type KernelCallsAvailability,
} from "@vplane/host-kernel";

/** The three steps of the probe; injectable so tests can describe other hosts. */
export interface NativeXiveHost {
  kernelCalls(): KernelCallsAvailability;
  /** Opens /dev/kvm (KernelError on failure). */
  openKvm(): number;
  /** KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE) on the /dev/kvm fd. */
  checkXiveExtension(kvmFd: number): number;
  close(fd: number): void;
}

export const thisHost: NativeXiveHost = {
  kernelCalls: kernelCallsAvailability,
  openKvm: () => openDevice("/dev/kvm"),
  checkXiveExtension(kvmFd) {
    const calls = kernelCallsAvailability();
    if (!calls.available) throw new Error(calls.reason);
    return ioctl(kvmFd, kvmIoctls(calls.arch).KVM_CHECK_EXTENSION, KvmCap.KVM_CAP_PPC_IRQ_XIVE);
  },
  close: closeFd,
};

/**
 * Can this host give a VM the kernel's KVM XIVE device (xive.md §1.1)? In order, each failure
 * named: the kernel-call library loads (KERNEL_CALLS_UNAVAILABLE), /dev/kvm opens
 * (KVM_NOT_PRESENT when it does not exist, KVM_OPEN_FAILED with the errno otherwise), and
 * KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE = 169) answers > 0 (XIVE_CAPABILITY_ABSENT), which
 * only a POWER9 or later host running KVM-HV with XIVE in native mode does.
 */
export function probeNativeXive(host: NativeXiveHost = thisHost): BackendAvailability {
  const unavailable = (code: string, reason: string): BackendAvailability => ({
    backend: Backend.BACKEND_NATIVE,
    available: false,
    unavailableCode: code,
    unavailableReason: reason,
  });
  const calls = host.kernelCalls();
  if (!calls.available) return unavailable("KERNEL_CALLS_UNAVAILABLE", calls.reason);
  let kvm: number;
  try {
    kvm = host.openKvm();
  } catch (error) {
    if (error instanceof KernelError && error.errnoName === "ENOENT") {
      return unavailable("KVM_NOT_PRESENT", "/dev/kvm does not exist: KVM is not loaded on this host");
    }
    return unavailable("KVM_OPEN_FAILED", `/dev/kvm does not open: ${(error as Error).message}`);
  }
  try {
    const answer = host.checkXiveExtension(kvm);
    if (answer > 0)
      return { backend: Backend.BACKEND_NATIVE, available: true, unavailableCode: "", unavailableReason: "" };
    return unavailable(
      "XIVE_CAPABILITY_ABSENT",
      `KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE = ${KvmCap.KVM_CAP_PPC_IRQ_XIVE}) is ${answer} on this ${process.arch} host: ` +
        "the KVM XIVE device needs a POWER9 or later host running KVM-HV with XIVE in native mode",
    );
  } catch (error) {
    return unavailable("XIVE_CAPABILITY_ABSENT", `KVM_CHECK_EXTENSION failed: ${(error as Error).message}`);
  } finally {
    host.close(kvm);
  }
}
