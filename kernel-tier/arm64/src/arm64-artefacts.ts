import { findArtefacts, type ArtefactsLookup } from "@vplane/kernel-tier-runner";

/** What prepare.sh made and named in $cache/arm64-tier.json. */
export interface Arm64Artefacts {
  /** QEMU 10.0.2's qemu-system-aarch64 (bookworm-backports, unpacked) and its data folder (-L). */
  qemu: string;
  qemuData: string;
  /** The arm64 Image built from linux-source-7.3 with kernel.config and the test-only FWB patch. */
  kernel: string;
  /** `make headers_install` of the same source: include/ with linux/iommufd.h, linux/vfio.h. */
  headers: string;
  /** The kernel's iommufd selftest, static for aarch64. */
  selftest: string;
  busybox: string;
  nodeTarball: string;
  koffiTarball: string;
  /** The arm64 glibc and libstdc++ Node loads (Debian's libc6-arm64-cross, libstdc++6-arm64-cross). */
  libraries: string;
  strip: string;
}

export function findArm64Artefacts(): ArtefactsLookup<Arm64Artefacts> {
  return findArtefacts<Arm64Artefacts>(
    "arm64-tier.json",
    "run kernel-tier/arm64/prepare.sh (once: it builds the kernel, about 12 CPU-minutes, some 6-8 minutes on two idle cores; .ci/run does it)",
  );
}
