#!/usr/bin/env bash
# Installs what gpupool needs to build and test, from Debian's packages.
#
# Idempotent: every package is looked up with dpkg-query first, and
# apt-get runs (update, then install) only when something is missing.
# Installing needs root or sudo; a machine that has everything needs
# neither. Then finds the CUDA toolkit's cuda.h, which Debian does not
# package in a current version, and prints the folder holding it as the
# last line of its output, "cuda-include: DIR" (scripts/test.sh reads it).
#
# usage: scripts/setup.sh
# env:   GPUPOOL_CUDA_INCLUDE=DIR  where cuda.h is, if not in a usual place
set -euo pipefail

packages=(
  gcc libc6-dev binutils pkg-config python3
  meson ninja-build
  protobuf-c-compiler libprotobuf-c-dev
  libuv1-dev libssl-dev libzstd-dev liblz4-dev libinih-dev
  check libsubunit-dev
  clang
)

have_pkg() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: installing packages needs root or sudo; as root, run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: this is not a Debian-based system; install the equivalents of:" >&2
  echo "  ${packages[*]}" >&2
  echo "setup: carrying on with what is installed" >&2
else
  missing=()
  for p in "${packages[@]}"; do
    have_pkg "$p" || missing+=("$p")
  done
  # libFuzzer's runtime ships apart from clang on newer Debian releases
  # (libclang-rt-14-dev on bookworm); the fuzz target needs it.
  if have_pkg clang || [[ " ${missing[*]} " == *" clang "* ]]; then
    major=""
    if command -v clang >/dev/null 2>&1; then
      major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
    fi
    if [ -z "$major" ]; then
      major=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]*\)$/\1/p' | head -n1)
    fi
    if [ -n "$major" ] && ! have_pkg "libclang-rt-$major-dev" &&
       apt-cache show "libclang-rt-$major-dev" >/dev/null 2>&1; then
      missing+=("libclang-rt-$major-dev")
    fi
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "setup: all ${#packages[@]} packages are installed"
  fi
fi

# The CUDA headers: cuda.h from the CUDA toolkit (13.x is what the client's
# tables and the tests are written against).
cuda_dir=""
for d in "${GPUPOOL_CUDA_INCLUDE:-}" /usr/local/cuda/include /usr/local/include /usr/include; do
  if [ -n "$d" ] && [ -f "$d/cuda.h" ] && grep -q 'define CUDA_VERSION' "$d/cuda.h"; then
    cuda_dir=$d
    break
  fi
done
if [ -z "$cuda_dir" ]; then
  cat >&2 <<'EOF'
setup: cuda.h (the CUDA driver API header) was not found in
  $GPUPOOL_CUDA_INCLUDE, /usr/local/cuda/include, /usr/local/include or /usr/include.
gpupool needs the header only (no GPU, no driver). Install the CUDA toolkit 13
from NVIDIA (its package cuda-driver-dev-13-0 is enough: cuda.h lands in
/usr/local/cuda-13.0/include), or copy cuda.h anywhere and run again with
  GPUPOOL_CUDA_INCLUDE=/that/folder scripts/test.sh
(Debian's own nvidia-cuda-dev ships an older CUDA 11 header, which lacks the
CUDA 12/13 entry points the tests call.)
EOF
  exit 1
fi
version=$(sed -n 's/^#define CUDA_VERSION \([0-9]*\).*/\1/p' "$cuda_dir/cuda.h" | head -n1)
echo "setup: cuda.h in $cuda_dir (CUDA_VERSION $version)"
echo "cuda-include: $cuda_dir"
