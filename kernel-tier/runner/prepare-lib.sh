# Shell functions every kernel tier's prepare.sh sources: the cache folder, host packages,
# foreign-architecture Debian packages through a private apt configuration, npm tarballs.
# Everything lands in $cache (VPLANE_KERNEL_TIER_CACHE, default ~/.cache/vplane-kernel-tier),
# outside the clone, keyed by versions; a warm run only checks it.
# shellcheck shell=bash
cache="${VPLANE_KERNEL_TIER_CACHE:-$HOME/.cache/vplane-kernel-tier}"
mkdir -p "$cache/debs" "$cache/npm"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# install_packages PACKAGE...: the host's own Debian packages that are not installed yet.
install_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return
  echo "installing ${missing[*]}"
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

# debian_mirror: the Debian archive the host's own apt sources use (so no mirror is written here).
debian_mirror() {
  {
    grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed 's/\[[^]]*\]//' || true
  } | awk '{print $2}' | grep -E '/debian/?$' | head -1
}

# private_apt NAME ARCH SUITE...: an apt configuration of its own under $cache/apt-NAME (state,
# cache and sources: the host's Debian mirror with these suites, main), for ARCH's packages; the
# system's apt is not touched. Lists older than a day are refreshed.
private_apt() {
  local dir="$cache/apt-$1" arch="$2" mirror suite
  shift 2
  mirror="$(debian_mirror)"
  [ -n "$mirror" ] || { echo "no Debian mirror in the host's apt sources" >&2; return 1; }
  mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial"
  touch "$dir/state/status"
  : >"$dir/sources.list"
  for suite in "$@"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >>"$dir/sources.list"
  done
  cat >"$dir/apt.conf" <<CONF
Dir::State "$dir/state";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/nonexistent";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
  if [ -z "$(find "$dir/state/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
    APT_CONFIG="$dir/apt.conf" apt-get update -qq
  fi
}

# download NAME PACKAGE[/SUITE]: the .deb through private_apt NAME into $cache/debs (once);
# prints its path.
download() {
  local conf="$cache/apt-$1/apt.conf" spec="$2" file
  file="$(APT_CONFIG="$conf" apt-get download --print-uris "$spec" 2>/dev/null | awk '{print $2}')"
  [ -n "$file" ] || { echo "no package $spec in apt-$1" >&2; return 1; }
  file="$cache/debs/$file"
  [ -s "$file" ] || (cd "$cache/debs" && APT_CONFIG="$conf" apt-get download -qq "$spec")
  [ -s "$file" ] || { echo "download of $spec failed" >&2; return 1; }
  echo "$file"
}

# unpack DEB DIR: dpkg -x into DIR once (DIR appears whole or not at all).
unpack() {
  local deb="$1" dir="$2"
  [ -d "$dir" ] && return
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" && dpkg -x "$deb" "$dir.tmp" && mv "$dir.tmp" "$dir"
}

# npm_pack NAME@VERSION: the package tarball into $cache/npm (once); prints its path.
npm_pack() {
  local spec="$1" name file
  name="${spec%@*}"
  name="${name#@}"
  file="$cache/npm/${name//\//-}-${spec##*@}.tgz"
  [ -s "$file" ] || (cd "$cache/npm" && npm pack --silent "$spec" >/dev/null)
  [ -s "$file" ] || { echo "npm pack $spec failed" >&2; return 1; }
  echo "$file"
}
