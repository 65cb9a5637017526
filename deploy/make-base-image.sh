#!/bin/sh
# Makes a local Node base image with `docker import`, for machines that reach no image registry:
# the project's pinned Node runtime (node_modules/.bin/node, Node 24, installed by `npm install`;
# the machine's own node if there is none), the shared libraries ldd lists for it (and for any
# native addon under node_modules), the npm CLI, CA certificates and a non-root user. The
# Dockerfile takes it with --build-arg BASE_IMAGE=<tag>; by default it builds FROM a public Node 24
# image instead.
# Usage: deploy/make-base-image.sh [tag]   (default tag: vplane-base:local)
set -eu
tag="${1:-vplane-base:local}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$repo/node_modules/.bin/node" ]; then
  node_bin="$(readlink -f "$repo/node_modules/.bin/node")"
else
  node_bin="$(readlink -f "$(command -v node)")"
fi
npm_cli="$(readlink -f "$(command -v npm)")" # .../lib/node_modules/npm/bin/npm-cli.js
npm_dir="$(dirname "$(dirname "$npm_cli")")"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

copy_with_parents() { # keeps the path: /lib/x86_64-linux-gnu/libc.so.6 -> $root/lib/x86_64-linux-gnu/
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}

mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/tmp" "$root/etc" "$root/app"
chmod 1777 "$root/tmp"
cp "$node_bin" "$root/usr/local/bin/node"
cp -r "$npm_dir" "$root/usr/local/lib/node_modules/npm"

# Libraries of node and of every native addon the app ships (none today; koffi's prebuilt ones later).
addons="$(find "$repo/node_modules" -name '*.node' -path '*/Release/*' 2>/dev/null || true)"
for binary in "$node_bin" $addons; do
  ldd "$binary" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'
done | sort -u | while read -r lib; do copy_with_parents "$lib"; done

if [ -d /etc/ssl/certs ]; then mkdir -p "$root/etc/ssl" && cp -rL /etc/ssl/certs "$root/etc/ssl/certs"; fi
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nvplane:x:10001:10001:vplane:/app:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nvplane:x:10001:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'CMD ["node"]' \
  - "$tag" >/dev/null
echo "base image $tag: $("$node_bin" --version) from $node_bin, $(find "$root" -name '*.so*' | wc -l) libraries"
