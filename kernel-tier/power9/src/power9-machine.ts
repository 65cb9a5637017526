import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InitramfsTree, bundleGuestEntry, strippedNodeBinary, tierCache } from "@vplane/kernel-tier-runner";
import type { Power9Artefacts } from "./power9-artefacts.js";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const REPOSITORY_ROOT = join(PACKAGE_ROOT, "..", "..");
const NODE_MODULES = join(REPOSITORY_ROOT, "node_modules");
/** The __dirname of the bundle's CommonJS modules: their ../../proto and ../proto are shipped. */
const BUNDLED_DIRNAME = "/vplane/modules/bundled";

/** The shared libraries the ppc64le Node binary links (readelf -d). */
const NODE_LIBRARIES = [
  "libc.so.6",
  "libm.so.6",
  "libdl.so.2",
  "libpthread.so.0",
  "libstdc++.so.6",
  "libgcc_s.so.1",
];

/**
 * The guest's initramfs: busybox and the init script, the kvm modules, ppc64le Node with its
 * libraries (the loader at /lib64/ld64.so.2, where the binary asks for it), etcd, and /vplane with
 * the bundled guest entry (built for Node 20) beside koffi and its ppc64 binary. Returns the cpio.
 */
export async function buildPower9Initramfs(artefacts: Power9Artefacts): Promise<string> {
  // The service kit comes in with the emulated backend; only what is used of it is bundled.
  const bundle = await bundleGuestEntry(
    join(PACKAGE_ROOT, "dist", "src", "guest", "main.js"),
    "node20",
    /[/\\]libs[/\\]service-kit[/\\]/,
    BUNDLED_DIRNAME,
  );
  const tree = new InitramfsTree()
    .file(join(PACKAGE_ROOT, "guest", "init"), "init", 0o755)
    .file(artefacts.busybox, "bin/busybox", 0o755)
    .file(artefacts.kvmModule, "lib/modules/kvm.ko")
    .file(artefacts.kvmHvModule, "lib/modules/kvm-hv.ko")
    .file(strippedNodeBinary(artefacts.nodeTarball, artefacts.strip, tierCache()), "bin/node", 0o755)
    .file(join(artefacts.libraries, "ld64.so.2"), "lib64/ld64.so.2", 0o755)
    .file(artefacts.etcdGzip, "bin/etcd.gz")
    .vplaneEntry(bundle, artefacts.koffiTarball, "linux-ppc64")
    // Files the service's modules read beside their own (version.ts: ../../package.json,
    // @vplane/proto: ../descriptor-set.binpb), where those paths lead from /vplane/guest.mjs.
    .file(join(REPOSITORY_ROOT, "package.json"), "package.json")
    .file(
      createRequire(import.meta.url).resolve("@vplane/proto/descriptor-set.binpb"),
      "descriptor-set.binpb",
    )
    // The .proto files the services' gRPC libraries load when they start (see BUNDLED_DIRNAME).
    .directory(join(NODE_MODULES, "grpc-health-check", "proto"), "vplane/proto")
    .directory(join(NODE_MODULES, "@grpc", "reflection", "build", "proto", "grpc"), "vplane/proto/grpc")
    // etcd's, which libs/store's etcd client resolves as the package's files when it first dials.
    .directory(join(NODE_MODULES, "etcd3", "proto"), "vplane/node_modules/etcd3/proto");
  for (const lib of NODE_LIBRARIES) tree.file(join(artefacts.libraries, lib), `lib/${lib}`, 0o755);
  return tree.write();
}

/**
 * QEMU's powernv9 (bare-metal POWER9 with OPAL from skiboot, which the KVM XIVE device needs; a
 * pseries guest has no XIVE capability), 1 CPU under TCG, 2 GiB, the serial console on stdout.
 */
export function power9QemuArguments(artefacts: Power9Artefacts, initrd: string): string[] {
  return [
    ...["-M", "powernv9", "-cpu", "power9", "-smp", "1", "-m", "2G"],
    ...["-kernel", artefacts.kernel, "-initrd", initrd, "-append", "console=hvc0 rdinit=/init quiet"],
    ...["-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-monitor", "none"],
  ];
}
