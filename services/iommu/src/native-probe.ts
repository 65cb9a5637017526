import { existsSync, readdirSync } from "node:fs";
import { Backend, type BackendAvailability } from "@vplane/proto/gen/vplane/common/v1/backend";

/** What the probe looks at; injectable so tests can describe other hosts. */
export interface HostFacts {
  arch: string;
  exists(path: string): boolean;
  /** Names of the host IOMMU instances under /sys/class/iommu. */
  iommus(): string[];
}

export const thisHost: HostFacts = {
  arch: process.arch,
  exists: existsSync,
  iommus: () => (existsSync("/sys/class/iommu") ? readdirSync("/sys/class/iommu") : []),
};

/**
 * Can this host back a virtual SMMU with iommufd nesting? That needs an Arm host with an SMMUv3
 * (the arm-smmu-v3 driver names its instances "smmu3.0x..."), /dev/iommu, and
 * IOMMU_GET_HW_INFO reporting IOMMU_HW_INFO_TYPE_ARM_SMMUV3 with nesting; that ioctl belongs to
 * the native layer (a later issue), so a host passing every check here is still reported
 * unavailable with that reason rather than guessed available.
 */
export function probeNativeSmmu(host: HostFacts = thisHost): BackendAvailability {
  const unavailable = (code: string, reason: string): BackendAvailability => ({
    backend: Backend.BACKEND_NATIVE,
    available: false,
    unavailableCode: code,
    unavailableReason: reason,
  });
  if (host.arch !== "arm64") {
    return unavailable(
      "HOST_NOT_ARM",
      `host architecture is ${host.arch}: SMMUv3 nesting needs an Arm (arm64) host`,
    );
  }
  if (!host.exists("/dev/iommu"))
    return unavailable("IOMMUFD_NOT_PRESENT", "/dev/iommu does not exist: iommufd is not enabled");
  if (!host.iommus().some((name) => name.startsWith("smmu3."))) {
    return unavailable("NO_SMMUV3", "no SMMUv3 instance under /sys/class/iommu");
  }
  return unavailable(
    "NATIVE_IOCTL_LAYER_MISSING",
    "iommufd and an SMMUv3 are present, but vplane's iommufd ioctl layer (IOMMU_GET_HW_INFO, nested HWPT) is not built yet",
  );
}
