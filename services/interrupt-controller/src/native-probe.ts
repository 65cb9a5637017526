import { existsSync } from "node:fs";
import { Backend, type BackendAvailability } from "@vplane/proto/gen/vplane/common/v1/backend";

/** What the probe looks at; injectable so tests can describe other hosts. */
export interface HostFacts {
  arch: string;
  exists(path: string): boolean;
}

export const thisHost: HostFacts = { arch: process.arch, exists: existsSync };

/**
 * Can this host give a VM the kernel's KVM XIVE device (KVM_DEV_TYPE_XIVE = 9,
 * KVM_CAP_PPC_IRQ_XIVE = 168, xive.md §1.1)? Only a POWER9 or later host running KVM-HV with
 * XIVE in native mode can. The capability itself is read with a KVM_CHECK_EXTENSION ioctl, which
 * the native ioctl layer (a later issue) will issue; until then a host that passes every check
 * here is still reported unavailable, with that reason, rather than guessed available.
 */
export function probeNativeXive(host: HostFacts = thisHost): BackendAvailability {
  const unavailable = (code: string, reason: string): BackendAvailability => ({
    backend: Backend.BACKEND_NATIVE,
    available: false,
    unavailableCode: code,
    unavailableReason: reason,
  });
  if (host.arch !== "ppc64") {
    return unavailable(
      "HOST_NOT_POWER",
      `host architecture is ${host.arch}: the KVM XIVE device exists only on POWER9 and later (ppc64) hosts`,
    );
  }
  if (!host.exists("/dev/kvm"))
    return unavailable("KVM_NOT_PRESENT", "/dev/kvm does not exist: KVM is not loaded");
  if (!host.exists("/sys/module/kvm_hv")) {
    return unavailable("KVM_HV_NOT_LOADED", "kvm_hv is not loaded: the XIVE device needs KVM-HV");
  }
  return unavailable(
    "NATIVE_IOCTL_LAYER_MISSING",
    "KVM-HV is present, but vplane's KVM ioctl layer (KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE), device create) is not built yet",
  );
}
