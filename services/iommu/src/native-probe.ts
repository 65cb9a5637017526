import { existsSync, readdirSync } from "node:fs";
import {
  KernelError,
  closeFd,
  kernelCallsAvailability,
  openDevice,
  type KernelCallsAvailability,
} from "@vplane/host-kernel";
import { Backend, type BackendAvailability } from "@vplane/proto/gen/vplane/common/v1/backend";
import { NativeSetupError, NativeSmmuObjects } from "./native-smmu-objects.js";

/** The probe's steps; injectable so tests can describe other hosts. */
export interface NativeSmmuHost {
  arch: string;
  kernelCalls(): KernelCallsAvailability;
  /** Opens /dev/iommu (KernelError on failure). */
  openIommufd(): number;
  /** VFIO device cdevs (/dev/vfio/devices/vfioN): iommufd answers only for a bound device. */
  vfioDevices(): string[];
  openDevice(path: string): number;
  /** The SMMU's objects for one device (NativeSetupError naming the step that failed). */
  setUp(iommufd: number, deviceFd: number): { close(): void };
  close(fd: number): void;
}

export const thisHost: NativeSmmuHost = {
  arch: process.arch,
  kernelCalls: kernelCallsAvailability,
  openIommufd: () => openDevice("/dev/iommu"),
  vfioDevices: () =>
    existsSync("/dev/vfio/devices")
      ? readdirSync("/dev/vfio/devices").map((n) => `/dev/vfio/devices/${n}`)
      : [],
  openDevice: (path) => openDevice(path),
  setUp: (iommufd, deviceFd) => NativeSmmuObjects.create({ iommufd, devices: new Map([[0, deviceFd]]) }, 1),
  close: closeFd,
};

/** Which probe code a failed setup step gets (the probe's and a NATIVE SMMU's creation alike). */
export function setupFailureCode(step: string): string {
  if (step.startsWith("VFIO_DEVICE_BIND_IOMMUFD")) return "DEVICE_BIND_FAILED";
  if (step === "IOMMU_GET_HW_INFO") return "NOT_SMMUV3";
  if (step.startsWith("IOMMU_VIOMMU_ALLOC")) return "NESTING_REFUSED";
  return "NESTING_UNSUPPORTED";
}

function unavailable(code: string, reason: string): BackendAvailability {
  return {
    backend: Backend.BACKEND_NATIVE,
    available: false,
    unavailableCode: code,
    unavailableReason: reason,
  };
}

/**
 * The probe's host steps, in order, each failure named: an Arm host (HOST_NOT_ARM), the
 * kernel-call library (KERNEL_CALLS_UNAVAILABLE), /dev/iommu opens (IOMMUFD_NOT_PRESENT,
 * IOMMUFD_OPEN_FAILED with the errno). The opened iommufd, or why this host cannot.
 */
export function openHostIommufd(
  host: NativeSmmuHost = thisHost,
): { iommufd: number } | { refused: BackendAvailability } {
  if (host.arch !== "arm64") {
    return {
      refused: unavailable(
        "HOST_NOT_ARM",
        `host architecture is ${host.arch}: SMMUv3 nesting needs an Arm (arm64) host`,
      ),
    };
  }
  const calls = host.kernelCalls();
  if (!calls.available) return { refused: unavailable("KERNEL_CALLS_UNAVAILABLE", calls.reason) };
  try {
    return { iommufd: host.openIommufd() };
  } catch (error) {
    if (error instanceof KernelError && error.errnoName === "ENOENT") {
      return {
        refused: unavailable(
          "IOMMUFD_NOT_PRESENT",
          "/dev/iommu does not exist: the kernel has no iommufd (CONFIG_IOMMUFD)",
        ),
      };
    }
    return {
      refused: unavailable("IOMMUFD_OPEN_FAILED", `/dev/iommu does not open: ${(error as Error).message}`),
    };
  }
}

/**
 * Can this host back a virtual SMMU with iommufd nesting? The host steps (openHostIommufd),
 * then a VFIO device cdev to ask about (NO_VFIO_DEVICE: iommufd answers for bound devices only),
 * then the kernel's own answers for that device: it binds (DEVICE_BIND_FAILED), IOMMU_GET_HW_INFO
 * says SMMUv3 (NOT_SMMUV3), an IOAS and a NEST_PARENT HWPT (NESTING_UNSUPPORTED), and the vIOMMU
 * allocation (NESTING_REFUSED: EOPNOTSUPP when the SMMU has no S2FWB and the device is not
 * CANWBS). Everything the probe made is destroyed again.
 */
export function probeNativeSmmu(host: NativeSmmuHost = thisHost): BackendAvailability {
  const opened = openHostIommufd(host);
  if ("refused" in opened) return opened.refused;
  const { iommufd } = opened;
  try {
    const devices = host.vfioDevices();
    const refusals: string[] = [];
    for (const path of devices) {
      let deviceFd: number;
      try {
        deviceFd = host.openDevice(path);
      } catch (error) {
        refusals.push(`${path}: ${(error as Error).message}`);
        continue;
      }
      try {
        host.setUp(iommufd, deviceFd).close();
        return {
          backend: Backend.BACKEND_NATIVE,
          available: true,
          unavailableCode: "",
          unavailableReason: "",
        };
      } catch (error) {
        if (!(error instanceof NativeSetupError)) throw error;
        return unavailable(setupFailureCode(error.step), `asked with ${path}: ${error.message}`);
      } finally {
        host.close(deviceFd);
      }
    }
    return unavailable(
      "NO_VFIO_DEVICE",
      devices.length === 0
        ? "no VFIO device cdev under /dev/vfio/devices: iommufd answers HW_INFO and vIOMMU allocation only for a device bound to vfio-pci"
        : `no VFIO device cdev opens: ${refusals.join("; ")}`,
    );
  } finally {
    host.close(iommufd);
  }
}
