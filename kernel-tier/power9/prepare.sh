#!/usr/bin/env bash
# Prepares what the POWER9 kernel tier boots and caches it outside the clone (see
# ../runner/prepare-lib.sh): QEMU's powernv9 machine with skiboot (Debian's qemu-system-ppc and
# qemu-system-data, installed on the host), Debian bookworm's 6.1 ppc64el kernel with its kvm and
# kvm-hv modules (64 KiB pages, CONFIG_KVM_XIVE), busybox-static (ppc64el) for the guest's init,
# Node 20.11 for ppc64le (the newest on npm) and koffi's ppc64 binary (npm pack), the ppc64le
# glibc and libstdc++ Node loads (Debian's cross packages), and etcd-server (ppc64el): the store of
# the interrupt-controller services the guest runs (Node 20 has no node:sqlite, the embedded
# store's engine). Writes $cache/power9-tier.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../runner/prepare-lib.sh
source "$here/../runner/prepare-lib.sh"
NODE_PACKAGE=node-linux-ppc64le@20.11.0
KOFFI_PACKAGE=@koromix/koffi-linux-ppc64@3.3.4
log() { echo "[power9 tier] $*"; }

install_packages qemu-system-ppc qemu-system-data cpio gcc-powerpc64le-linux-gnu \
  binutils-powerpc64le-linux-gnu libc6-ppc64el-cross libstdc++6-ppc64el-cross
private_apt ppc64el ppc64el bookworm bookworm-updates
# The kernel the metapackage names today (6.1.0-N; the mirror keeps only the current one).
KERNEL_PACKAGE="$(APT_CONFIG="$cache/apt-ppc64el/apt.conf" apt-cache depends linux-image-powerpc64le |
  awk '/Depends: linux-image-6\.1/ {print $2; exit}')"

kernel_deb="$(download ppc64el "$KERNEL_PACKAGE")"
kernel_dir="$cache/$(basename "$kernel_deb" .deb)"
unpack "$kernel_deb" "$kernel_dir"
release="${KERNEL_PACKAGE#linux-image-}"
modules="$kernel_dir/lib/modules/$release/kernel/arch/powerpc/kvm"
log "kernel $(dpkg-deb -f "$kernel_deb" Version) ($kernel_dir)"

busybox_deb="$(download ppc64el busybox-static)"
busybox_dir="$cache/$(basename "$busybox_deb" .deb)"
unpack "$busybox_deb" "$busybox_dir"

etcd_deb="$(download ppc64el etcd-server)"
etcd_dir="$cache/$(basename "$etcd_deb" .deb)"
unpack "$etcd_deb" "$etcd_dir"
# Gzipped (20 → 8 MB): QEMU 7.2's powernv loads at most 128 MiB of initrd, Node alone is 95 MB.
etcd_gz="$etcd_dir/etcd.gz"
[ -s "$etcd_gz" ] || { gzip -9 -c "$etcd_dir/usr/bin/etcd" >"$etcd_gz.tmp" && mv "$etcd_gz.tmp" "$etcd_gz"; }

node_tgz="$(npm_pack "$NODE_PACKAGE")"
koffi_tgz="$(npm_pack "$KOFFI_PACKAGE")"

cat >"$cache/power9-tier.json" <<JSON
{
  "qemu": "$(command -v qemu-system-ppc64)",
  "kernel": "$kernel_dir/boot/vmlinux-$release",
  "kvmModule": "$modules/kvm.ko",
  "kvmHvModule": "$modules/kvm-hv.ko",
  "busybox": "$busybox_dir/bin/busybox",
  "etcdGzip": "$etcd_gz",
  "nodeTarball": "$node_tgz",
  "koffiTarball": "$koffi_tgz",
  "libraries": "/usr/powerpc64le-linux-gnu/lib",
  "strip": "$(command -v powerpc64le-linux-gnu-strip)"
}
JSON
log "ready: $cache/power9-tier.json"
