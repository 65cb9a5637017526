import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InitramfsTree, bundleGuestEntry, strippedNodeBinary, tierCache } from "@vplane/kernel-tier-runner";
import type { Arm64Artefacts } from "./arm64-artefacts.js";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The shared libraries the arm64 Node binary links (readelf -d), and its loader. */
const NODE_LIBRARIES = [
  "ld-linux-aarch64.so.1",
  "libc.so.6",
  "libm.so.6",
  "libdl.so.2",
  "libpthread.so.0",
  "libstdc++.so.6",
  "libgcc_s.so.1",
];

/**
 * The guest's initramfs: busybox and the init script, the kernel's iommufd selftest, arm64 Node
 * 24 with its libraries, and /vplane with the bundled guest entry beside koffi and its arm64
 * binary. Returns the cpio.
 */
export async function buildArm64Initramfs(artefacts: Arm64Artefacts): Promise<string> {
  // Of the service kit and the store, which come in with the service's handlers, only what is
  // used is bundled (not the kit's version.ts, which reads package.json, nor the etcd store).
  const bundle = await bundleGuestEntry(
    join(PACKAGE_ROOT, "dist", "src", "guest", "main.js"),
    "node24",
    /[/\\]libs[/\\](service-kit|store)[/\\]/,
  );
  const tree = new InitramfsTree()
    .file(join(PACKAGE_ROOT, "guest", "init"), "init", 0o755)
    .file(artefacts.busybox, "bin/busybox", 0o755)
    .file(artefacts.selftest, "selftest/iommufd", 0o755)
    .file(strippedNodeBinary(artefacts.nodeTarball, artefacts.strip, tierCache()), "bin/node", 0o755)
    .vplaneEntry(bundle, artefacts.koffiTarball, "linux-arm64");
  for (const lib of NODE_LIBRARIES) tree.file(join(artefacts.libraries, lib), `lib/${lib}`, 0o755);
  return tree.write();
}

/**
 * The machine of native-testing.md: QEMU 10.0.2 `virt` with GICv3 and an SMMUv3 that takes
 * nested (stage 1 + stage 2) configurations, 2 emulated CPUs, 3 GiB, and QEMU's `edu` PCI
 * device (it does DMA; the guest binds it to vfio-pci) behind the SMMU. The kernel command line
 * forces S2FWB (test-force-s2fwb.patch) and asks the init script for the iommufd selftest.
 */
export function arm64QemuArguments(artefacts: Arm64Artefacts, initrd: string): string[] {
  const append = "console=ttyAMA0 rdinit=/init quiet arm_smmu_v3.test_force_s2fwb=1 vplane.selftest=1";
  return [
    ...["-L", artefacts.qemuData],
    ...["-M", "virt,iommu=smmuv3,gic-version=3", "-cpu", "max", "-smp", "2", "-m", "3G"],
    ...["-global", "arm-smmuv3.stage=nested", "-device", "edu"],
    ...["-kernel", artefacts.kernel, "-initrd", initrd, "-append", append],
    ...["-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-monitor", "none"],
  ];
}
