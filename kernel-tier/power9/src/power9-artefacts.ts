import { findArtefacts, type ArtefactsLookup } from "@vplane/kernel-tier-runner";

/** What prepare.sh made and named in $cache/power9-tier.json. */
export interface Power9Artefacts {
  qemu: string;
  /** Debian's 6.1 ppc64el vmlinux (64 KiB pages, CONFIG_KVM_XIVE). */
  kernel: string;
  kvmModule: string;
  kvmHvModule: string;
  busybox: string;
  nodeTarball: string;
  koffiTarball: string;
  /** The ppc64le glibc and libstdc++ Node loads (Debian's libc6-ppc64el-cross, libstdc++6-ppc64el-cross). */
  libraries: string;
  strip: string;
}

export function findPower9Artefacts(): ArtefactsLookup<Power9Artefacts> {
  return findArtefacts<Power9Artefacts>(
    "power9-tier.json",
    "run kernel-tier/power9/prepare.sh (about a minute once; .ci/run does it)",
  );
}
