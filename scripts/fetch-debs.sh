#!/usr/bin/env bash
# Downloads into .deps/debs/ the Debian packages that scripts/gpu-check.sh
# extracts on a machine that has a GPU and the CUDA toolkit but neither
# internet nor gpupool's build dependencies: the -dev packages meson.build
# asks pkg-config for (libprotobuf-c, libuv, libcrypto, libzstd, liblz4,
# check), protoc-c, pkg-config, meson and ninja, and the runtime libraries
# they depend on. Run it on a machine with internet and apt, of the same
# distribution release and architecture as the GPU machine (the libraries
# are built against that release's C library), then copy the whole tree,
# .deps/ included, to the GPU machine and run scripts/gpu-check.sh there.
#
# Dependencies are followed recursively (Depends and Pre-Depends, the first
# of each list of alternatives) except into what every machine that runs
# nvcc already has: the C and C++ runtimes, zlib, and the Python and Perl
# interpreters and their modules (meson runs on the machine's own python3).
# Needs no root: apt-get download writes into the current folder. Writes
# .deps/debs/MANIFEST: the release, the architecture and the packages.
#
# usage: scripts/fetch-debs.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/.deps/debs

# What the build needs; gpu-check.sh extracts only those it lacks.
wanted=(
  libprotobuf-c-dev protobuf-c-compiler
  libuv1-dev libssl-dev libzstd-dev liblz4-dev libinih-dev
  check libsubunit-dev
  pkgconf pkg-config meson ninja-build
)

# Never carried: present wherever a C/C++ toolchain and python3 are, and
# unsafe to put ahead of the machine's own copies on LD_LIBRARY_PATH.
skip_re='^(libc6|libc-bin|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|zlib1g|dpkg|tar|mawk|install-info|debconf|perl.*|libperl.*|python3.*|libpython3.*|readline-common|libreadline[0-9]+|media-types|mime-support|mailcap)$'

for tool in apt-get apt-cache dpkg; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch-debs: $tool not found: this needs a Debian-based machine with apt" >&2
    exit 1
  fi
done

# Prints the direct dependencies of package $1, one name a line: the
# first alternative of each Depends/PreDepends, virtual packages replaced
# by their first provider, architecture qualifiers dropped.
direct_deps() {
  apt-cache depends --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$1" 2>/dev/null |
    awk '
      /^ *\|?(Pre)?Depends: / {
        alt = ($1 ~ /^\|/)
        name = $2
        if (skip_next) { skip_next = alt; virt = 0; next }
        skip_next = alt
        if (name ~ /^</) { virt = 1; next }
        virt = 0
        sub(/:.*/, "", name); print name; next
      }
      /^    / { if (virt) { n = $1; sub(/:.*/, "", n); print n; virt = 0 } }
    '
}

# The closure of $wanted over direct_deps, less what skip_re names.
declare -A seen=()
queue=("${wanted[@]}")
packages=()
while [ "${#queue[@]}" -gt 0 ]; do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [ -z "${seen[$p]:-}" ] || continue
  seen[$p]=1
  if [[ $p =~ $skip_re ]]; then
    continue
  fi
  if ! apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
    echo "fetch-debs: apt knows no package $p (run apt-get update?)" >&2
    exit 1
  fi
  packages+=("$p")
  while read -r d; do
    [ -n "$d" ] && queue+=("$d")
  done < <(direct_deps "$p")
done

mkdir -p "$dest"
rm -f "$dest"/*.deb "$dest/MANIFEST"
echo "fetch-debs: downloading ${#packages[@]} packages into ${dest#"$root"/}/"
(cd "$dest" && apt-get download -q "${packages[@]}") >/dev/null

# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
{
  echo "release ${ID:-unknown} ${VERSION_ID:-unknown}"
  echo "architecture $(dpkg --print-architecture)"
  for f in "$dest"/*.deb; do
    echo "package $(dpkg-deb -f "$f" Package) $(dpkg-deb -f "$f" Version) $(basename "$f")"
  done
} >"$dest/MANIFEST"

count=$(find "$dest" -name '*.deb' | wc -l)
if [ "$count" -ne "${#packages[@]}" ]; then
  echo "fetch-debs: asked for ${#packages[@]} packages, got $count files" >&2
  exit 1
fi
size=$(du -sh "$dest" | cut -f1)
echo "fetch-debs: $count packages ($size) for ${ID:-?} ${VERSION_ID:-?} $(dpkg --print-architecture):"
sed -n 's/^package \([^ ]*\) .*/\1/p' "$dest/MANIFEST" | tr '\n' ' ' | fold -s -w 76 | sed 's/^/  /'
echo
