#!/usr/bin/env bash
# scripts/gpu-check.sh without a GPU, and its parts that need none:
# - run as it is on a machine without /dev/nvidia0, it prints one line
#   saying there is no GPU and what it would have done, exits 0, and
#   builds nothing;
# - each way of finding no GPU (no device node, nvidia-smi failing, no
#   NVIDIA libcuda.so.1) names its reason;
# - NVIDIA's libcuda.so.1 is told from gpupool's, and with all three
#   present the check would go on;
# - the dependency set-up extracts packages and their dependencies from
#   .debs (built here with dpkg-deb), points the .pc files, libdirs and
#   absolute links at the prefix, and a program builds and runs against
#   what pkg-config then says, with dpkg-deb and with ar + tar; it refuses
#   a package it has no .deb of and a .deb of another architecture.
#
# usage: test_gpu_check.sh LIBCUDA   (gpupool's build/client/libcuda.so.1)
set -uo pipefail

libcuda=$1
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../scripts/gpu-check.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/test-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Runs the script with the environment given as arguments; sets out, rc.
run() {
  out=$(env "$@" GC_BUILD_DIR="$work/never-built" bash "$script" 2>&1)
  rc=$?
  echo "\$ $* gpu-check.sh"
  echo "$out"
}

# Checks that the last run printed exactly one no-GPU line naming $1.
no_gpu_line() {
  [ "$rc" -eq 0 ] || fail "exit status $rc, not 0"
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "more than one line"
  case "$out" in
    "gpu-check: no NVIDIA GPU here ($1"*"): nothing built or run; on a GPU machine this builds gpupool with nvcc in $work/never-built/, runs the integration and cudart suites through gpupool-server --backend cuda and compares gpu_bench native against remote") ;;
    *) fail "not the no-GPU line naming '$1'" ;;
  esac
  [ ! -e "$work/never-built" ] || fail "it created the build folder"
}

# This machine as it is.
if [ -e /dev/nvidia0 ]; then
  echo "note: this machine has /dev/nvidia0: the plain run is not made here (it would run the whole check); the forced cases below still are"
else
  run GC_BUILD_DIR=unused
  no_gpu_line "/dev/nvidia0 is missing"
fi

# Each reason.
run GC_DEV="$work/nvidia0"
no_gpu_line "$work/nvidia0 is missing"
run GC_DEV=/dev/null GC_SMI="$work/no-such-smi"
no_gpu_line "$work/no-such-smi not found"
cat >"$work/smi-fails" <<'SH'
#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
exit 9
SH
printf '#!/bin/sh\nexit 3\n' >"$work/smi-silent"
printf '#!/bin/sh\necho "GPU 0: NVIDIA H100 (UUID: GPU-0)"\n' >"$work/smi-ok"
chmod +x "$work"/smi-*
run GC_DEV=/dev/null GC_SMI="$work/smi-fails"
no_gpu_line "$work/smi-fails -L failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
run GC_DEV=/dev/null GC_SMI="$work/smi-silent"
no_gpu_line "$work/smi-silent -L failed: exit status 3"
mkdir -p "$work/gpupool-lib" "$work/nvidia-lib"
ln -s "$(readlink -f "$libcuda")" "$work/gpupool-lib/libcuda.so.1"
run GC_DEV=/dev/null GC_SMI="$work/smi-ok" GC_LIBCUDA_DIRS="$work/gpupool-lib"
no_gpu_line "no NVIDIA libcuda.so.1 (a link to libcuda.so.<driver version>) in $work/gpupool-lib"
run GC_DEV=/dev/null GC_SMI="$work/smi-ok" GC_LIBCUDA="$libcuda"
no_gpu_line "GC_LIBCUDA=$libcuda is not NVIDIA's libcuda.so.<driver version>"

# NVIDIA's library told from gpupool's; all three present: no reason.
: >"$work/nvidia-lib/libcuda.so.550.54.15"
ln -s libcuda.so.550.54.15 "$work/nvidia-lib/libcuda.so.1"
(
  . "$script"
  gc_is_nvidia_libcuda "$work/nvidia-lib/libcuda.so.1" || echo "FAIL: NVIDIA's library not recognised"
  gc_is_nvidia_libcuda "$libcuda" && echo "FAIL: gpupool's library taken for NVIDIA's"
  found=$(GC_LIBCUDA_DIRS="$work/gpupool-lib $work/nvidia-lib" gc_find_nvidia_libcuda)
  [ "$found" = "$work/nvidia-lib/libcuda.so.1" ] || echo "FAIL: found '$found'"
  reason=$(GC_DEV=/dev/null GC_SMI="$work/smi-ok" GC_LIBCUDA_DIRS="$work/nvidia-lib" gc_gpu_absent_reason)
  [ -z "$reason" ] || echo "FAIL: a reason with everything present: $reason"
  # LD_LIBRARY_PATH loses NVIDIA's folder only.
  p=$(LD_LIBRARY_PATH="/a:$work/nvidia-lib::/b" gc_ld_path_without_nvidia)
  [ "$p" = "/a:/b" ] || echo "FAIL: LD_LIBRARY_PATH without NVIDIA's: '$p'"
) >"$work/sourced.txt" 2>&1
cat "$work/sourced.txt"
grep -q FAIL "$work/sourced.txt" && failures=$((failures + 1))

# ---- The dependency set-up, on .debs made here -------------------------------
if ! command -v dpkg-deb >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
  echo "FAIL: this test needs dpkg-deb and pkg-config (scripts/setup.sh installs them)"
  exit 1
fi
arch=$(dpkg-deb --version >/dev/null && dpkg --print-architecture)
triplet=$(cc -dumpmachine)
# mkdeb NAME ARCH DEPENDS DIR: a .deb of DIR's files.
mkdeb() {
  mkdir -p "$4/DEBIAN"
  printf 'Package: %s\nVersion: 1.0\nArchitecture: %s\nMaintainer: t <t@t>\nDescription: t\n' \
    "$1" "$2" >"$4/DEBIAN/control"
  [ -z "$3" ] || echo "Depends: $3" >>"$4/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$4" "$work/debs/$1_1.0_$2.deb" >/dev/null
}
mkdir -p "$work/debs"
# libgct1: the runtime library; libgct-dev: header, .pc (whose libdir is
# /usr/lib, as Debian's libzstd.pc says, while the library is in the
# multiarch folder), the .so link; gct-tools: a program and an absolute
# link; other-arch: a .deb for another architecture.
d=$work/src/libgct1/usr/lib/$triplet
mkdir -p "$d"
echo 'int gct_answer(void) { return 42; }' >"$work/gct.c"
cc -shared -fPIC -Wl,-soname,libgct.so.1 -o "$d/libgct.so.1.0.0" "$work/gct.c" || fail "cc -shared"
ln -s libgct.so.1.0.0 "$d/libgct.so.1"
mkdeb libgct1 "$arch" "libc6 (>= 2.17)" "$work/src/libgct1"
d=$work/src/libgct-dev
mkdir -p "$d/usr/include" "$d/usr/lib/$triplet/pkgconfig"
echo 'int gct_answer(void);' >"$d/usr/include/gct.h"
ln -s libgct.so.1 "$d/usr/lib/$triplet/libgct.so"
cat >"$d/usr/lib/$triplet/pkgconfig/gct.pc" <<PC
prefix=/usr
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=/usr/include

Name: gct
Description: t
Version: 1.0
Libs: -L\${libdir} -lgct
Cflags: -I\${includedir} -DGCT_DATA=/usr/share/gct
PC
mkdeb libgct-dev "$arch" "libgct1 (= 1.0) | libgct-alt, libc6:any" "$d"
d=$work/src/gct-tools
mkdir -p "$d/usr/bin" "$d/usr/share/gct"
printf '#!/bin/sh\necho gct-tool ran\n' >"$d/usr/share/gct/tool"
chmod +x "$d/usr/share/gct/tool"
ln -s /usr/share/gct/tool "$d/usr/bin/gct-tool"
mkdeb gct-tools "$arch" "" "$d"
mkdir -p "$work/src/other"
mkdeb other-arch "$([ "$arch" = arm64 ] && echo amd64 || echo arm64)" "" "$work/src/other"

for mode in dpkg-deb ar; do
  nodpkg=0
  [ "$mode" = ar ] && nodpkg=1
  prefix=$work/prefix-$mode
  res=$(
    export GC_NO_DPKG=$nodpkg PKG_CONFIG_PATH=
    . "$script"
    gc_deps_setup "$work/debs" "$prefix" libgct-dev gct-tools || { echo "setup failed"; exit; }
    export PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH
    unset PKG_CONFIG_PATH
    echo "prefix=$(pkg-config --variable=prefix gct)"
    echo "libdir=$(pkg-config --variable=libdir gct)"
    echo "cflags=$(pkg-config --cflags gct | sed 's/ *$//')"
    # shellcheck disable=SC2046
    cc -o "$work/use-$mode" -x c - $(pkg-config --cflags --libs gct) <<'C' || { echo "link failed"; exit; }
#include <gct.h>
#include <stdio.h>
#define STR2(x) #x
#define STR(x) STR2(x)
int main(void) { printf("answer %d %s\n", gct_answer(), STR(GCT_DATA)); return 0; }
C
    echo "run=$("$work/use-$mode")"
    echo "tool=$(gct-tool)"
    echo "ld=${LD_LIBRARY_PATH%%:*}"
  )
  echo "$mode: $res"
  exp="prefix=$prefix/usr
libdir=$prefix/usr/lib/$triplet
cflags=-I$prefix/usr/include -DGCT_DATA=$prefix/usr/share/gct
run=answer 42 $prefix/usr/share/gct
tool=gct-tool ran
ld=$prefix/usr/lib/$triplet"
  case "$res" in *"gpu-check: extracted 3 packages into $prefix (libgct-dev gct-tools)"*) ;;
    *) fail "$mode: not the 3 packages (libc6 has no .deb and is the machine's)" ;; esac
  [ "$(echo "$res" | grep -v '^gpu-check:')" = "$exp" ] || fail "$mode: expected
$exp"
  [ "$(readlink "$prefix/usr/bin/gct-tool")" = "$prefix/usr/share/gct/tool" ] ||
    fail "$mode: the absolute link was not moved into the prefix"
done

# Refusals.
err=$( (. "$script"; gc_deps_setup "$work/debs" "$work/p2" libgct-dev libnothere-dev) 2>&1 >/dev/null)
rc=$?
echo "missing: $err"
[ "$rc" -ne 0 ] || fail "a package without a .deb was not refused"
[[ $err == *"libnothere-dev is needed but $work/debs has no .deb of it"* ]] || fail "missing: message"
err=$( (. "$script"; gc_deps_setup "$work/debs" "$work/p3" other-arch) 2>&1 >/dev/null)
rc=$?
echo "arch: $err"
[ "$rc" -ne 0 ] || fail "a .deb of another architecture was not refused"
[[ $err == *"is for arm64, this machine is amd64"* || $err == *"is for amd64, this machine is arm64"* ]] || fail "arch: message"
err=$( (. "$script"; gc_deps_setup "$work/empty" "$work/p4" check) 2>&1 >/dev/null)
rc=$?
echo "empty: $err"
[ "$rc" -ne 0 ] || fail "an empty folder was not refused"
[[ $err == *"run scripts/fetch-debs.sh"* ]] || fail "empty: message"

echo "test_gpu_check: $failures failed"
[ "$failures" -eq 0 ]
