import { findArtefacts, type ArtefactsLookup } from "@vplane/kernel-tier-runner";

/** What prepare.sh made and named in $cache/power9-tier.json. */
export interface Power9Artefacts {
  qemu: string;
  /** Debian's 6.1 ppc64el vmlinux (64 KiB pages, CONFIG_KVM_XIVE). */
  kernel: string;
  kvmModule: string;
  kvmHvModule: string;
  busybox: string;
  /**
   * Debian's etcd-server binary (ppc64el, links only libc), gzipped: the guest's services keep
   * their records in it; the guest's init unpacks it.
   */
  etcdGzip: string;
  nodeTarball: string;
  koffiTarball: string;
  /** The ppc64le glibc and libstdc++ Node loads (Debian's libc6-ppc64el-cross, libstdc++6-ppc64el-cross). */
  libraries: string;
  strip: string;
}

const PREPARE = "run kernel-tier/power9/prepare.sh (about a minute once; .ci/run does it)";

/** Every artefact, so that a manifest an older prepare.sh wrote (the cache is shared) is named stale. */
const NAMES: Record<keyof Power9Artefacts, true> = {
  qemu: true,
  kernel: true,
  kvmModule: true,
  kvmHvModule: true,
  busybox: true,
  etcdGzip: true,
  nodeTarball: true,
  koffiTarball: true,
  libraries: true,
  strip: true,
};

export function findPower9Artefacts(): ArtefactsLookup<Power9Artefacts> {
  const lookup = findArtefacts<Power9Artefacts>("power9-tier.json", PREPARE);
  if (!lookup.found) return lookup;
  const absent = Object.keys(NAMES).filter(
    (name) => typeof lookup.artefacts[name as keyof Power9Artefacts] !== "string",
  );
  if (absent.length > 0)
    return {
      found: false,
      reason: `power9-tier.json names no ${absent.join(", ")} (an older prepare.sh wrote it): ${PREPARE}`,
    };
  return lookup;
}
