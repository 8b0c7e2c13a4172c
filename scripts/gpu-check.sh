#!/usr/bin/env bash
# Runs gpupool against a real GPU: builds the tree with the machine's nvcc
# in build-gpu/, runs the integration and cudart suites with every test's
# server on `--backend cuda` (GPT_SERVER_MODE=cuda), runs bench/gpu_bench
# on the GPU directly and through a `gpupool-server --backend cuda` on
# loopback, and prints one table: each metric native, remote, and
# remote/native, then the tests' summary line. See docs/gpu.md.
#
# On a machine without an NVIDIA GPU (no /dev/nvidia0, nvidia-smi missing
# or failing, or no NVIDIA libcuda.so.1) it prints one line saying so and
# exits 0, having built and run nothing.
#
# The machine needs the CUDA toolkit (nvcc), a C compiler and python3. If
# pkg-config cannot find libprotobuf-c, libuv, libcrypto, libzstd, liblz4
# or check, or protoc-c, pkg-config, meson or ninja is missing, the Debian
# packages in .deps/debs/ (scripts/fetch-debs.sh, run on a machine with
# internet) are extracted into .deps/prefix/ and the build pointed at them.
#
# usage: scripts/gpu-check.sh
#        scripts/gpu-check.sh --setup-deps PREFIX   extract every build
#            dependency from .deps/debs into PREFIX, whether the machine
#            has it or not, and print (for eval) the environment that
#            points at it
# exit:  0 no GPU, or everything built, measured and passed; 1 the set-up
#        or the build failed; 2 gpu_bench failed or computed a wrong
#        result; 3 tests failed (the table is printed all the same)
# env:   GC_BUILD_DIR      build folder (default build-gpu)
#        GC_LIBCUDA        NVIDIA's libcuda.so.1, if not found by itself
#        GC_BENCH_ARGS     arguments for both gpu_bench runs
#        GC_DEV, GC_SMI    the device node and nvidia-smi probed (default
#                          /dev/nvidia0, nvidia-smi)
#        GC_LIBCUDA_DIRS   folders searched for libcuda.so.1 besides the
#                          loader's cache
#
# The functions (gc_*) can be sourced without running anything: the tests
# in bench/meson.build do.

gc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The pkg-config modules meson.build asks for, each with the Debian
# package that ships its .pc file.
gc_modules=(libprotobuf-c:libprotobuf-c-dev libuv:libuv1-dev
            libcrypto:libssl-dev libzstd:libzstd-dev liblz4:liblz4-dev
            check:check inih:libinih-dev)
# The programs the build runs, each with its package.
gc_programs=(protoc-c:protobuf-c-compiler pkg-config:pkgconf
             meson:meson ninja:ninja-build)

gc_log() {
  echo "gpu-check: $*"
}

gc_err() {
  echo "gpu-check: $*" >&2
}

# ---- Is there a GPU? ---------------------------------------------------------

# True if $1 is NVIDIA's driver library: the driver installs libcuda.so.1
# as a link to libcuda.so.<driver version> (libcuda.so.550.54.15), which no
# build of gpupool's libcuda.so.1 is named.
gc_is_nvidia_libcuda() {
  local real

  real=$(readlink -f "$1" 2>/dev/null) || return 1
  [ -f "$real" ] || return 1
  case "$real" in "$gc_root"/*) return 1 ;; esac
  [[ $(basename "$real") =~ ^libcuda\.so\.[0-9]+\.[0-9]+(\.[0-9]+)?$ ]]
}

# Prints the path of NVIDIA's libcuda.so.1: $GC_LIBCUDA if set, else the
# first found in the loader's cache or in $GC_LIBCUDA_DIRS. Fails if none.
gc_find_nvidia_libcuda() {
  local cand dirs

  if [ -n "${GC_LIBCUDA:-}" ]; then
    gc_is_nvidia_libcuda "$GC_LIBCUDA" && { echo "$GC_LIBCUDA"; return 0; }
    return 1
  fi
  dirs=${GC_LIBCUDA_DIRS-/usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/wsl/lib}
  while read -r cand; do
    if [ -n "$cand" ] && gc_is_nvidia_libcuda "$cand"; then
      echo "$cand"
      return 0
    fi
  done < <({
    if [ -z "${GC_LIBCUDA_DIRS+set}" ]; then
      /sbin/ldconfig -p 2>/dev/null | sed -n 's/^[[:space:]]*libcuda\.so\.1 .*=> //p'
    fi
    for d in $dirs; do echo "$d/libcuda.so.1"; done
  })
  return 1
}

# Prints why this machine cannot run the check, or nothing if it can.
gc_gpu_absent_reason() {
  local dev=${GC_DEV:-/dev/nvidia0} smi=${GC_SMI:-nvidia-smi} out

  if [ ! -e "$dev" ]; then
    echo "$dev is missing"
    return
  fi
  if ! command -v "$smi" >/dev/null 2>&1; then
    echo "$smi not found"
    return
  fi
  out=$("$smi" -L 2>&1)
  local st=$?
  if [ "$st" -ne 0 ]; then
    out=$(echo "$out" | head -n1)
    echo "$smi -L failed: ${out:-exit status $st}"
    return
  fi
  if ! gc_find_nvidia_libcuda >/dev/null; then
    if [ -n "${GC_LIBCUDA:-}" ]; then
      echo "GC_LIBCUDA=$GC_LIBCUDA is not NVIDIA's libcuda.so.<driver version>"
    elif [ -n "${GC_LIBCUDA_DIRS+set}" ]; then
      echo "no NVIDIA libcuda.so.1 (a link to libcuda.so.<driver version>) in ${GC_LIBCUDA_DIRS:-no folders}"
    else
      echo "no NVIDIA libcuda.so.1 (a link to libcuda.so.<driver version>) in the loader's cache or the usual folders; set GC_LIBCUDA"
    fi
    return
  fi
}

# ---- Build dependencies from .deps/debs ---------------------------------------

# Prints field $2 of the control file of the .deb $1. Without dpkg-deb
# (or with GC_NO_DPKG=1) reads the archive with ar and tar: a .deb is an
# ar archive holding control.tar.* and data.tar.*.
gc_deb_field() {
  local deb tmp

  if [ "${GC_NO_DPKG:-0}" != 1 ] && command -v dpkg-deb >/dev/null 2>&1; then
    dpkg-deb -f "$1" "$2"
    return
  fi
  deb=$(readlink -f "$1") && tmp=$(mktemp -d) || return 1
  if (cd "$tmp" && ar x "$deb" && tar -xf control.tar.*) >/dev/null 2>&1; then
    sed -n "/^$2:/{s/^$2: *//;p;q}" "$tmp/control"
  else
    gc_err "cannot read $1 (ar and tar)"
  fi
  rm -rf "$tmp"
}

# Extracts the files of the .deb $1 under $2 (dpkg-deb -x, or as above).
gc_deb_extract() {
  local deb tmp rc=1

  if [ "${GC_NO_DPKG:-0}" != 1 ] && command -v dpkg-deb >/dev/null 2>&1; then
    dpkg-deb -x "$1" "$2"
    return
  fi
  deb=$(readlink -f "$1") && tmp=$(mktemp -d) || return 1
  if (cd "$tmp" && ar x "$deb"); then
    tar -xf "$tmp"/data.tar.* -C "$2"
    rc=$?
  fi
  rm -rf "$tmp"
  return $rc
}

# Prints the packages (from gc_modules and gc_programs) this machine lacks,
# one a line; all the -dev packages and protoc-c's if $GC_DEPS_FORCE is 1.
gc_missing_packages() {
  local m have_pc=0

  command -v pkg-config >/dev/null 2>&1 && have_pc=1
  for m in "${gc_programs[@]}"; do
    if [ "${GC_DEPS_FORCE:-0}" = 1 ] && [ "${m%%:*}" = protoc-c ]; then
      echo "${m#*:}"
    elif ! command -v "${m%%:*}" >/dev/null 2>&1; then
      echo "${m#*:}"
    fi
  done
  for m in "${gc_modules[@]}"; do
    if [ "${GC_DEPS_FORCE:-0}" = 1 ] || [ "$have_pc" = 0 ] ||
       ! pkg-config --exists "${m%%:*}" 2>/dev/null; then
      echo "${m#*:}"
    fi
  done
}

# Extracts into $2 the packages named after it ($3...) from the .debs in
# $1, with every dependency of theirs found there (recursively; one not in
# $1 is taken to be the machine's own: the C library, zlib...), rewrites
# the .pc files and absolute links to the prefix, and exports PATH,
# PKG_CONFIG_PATH, LD_LIBRARY_PATH and PYTHONPATH (meson) to use it. $2 is
# emptied first. Fails, saying why, if a named package has no .deb in $1,
# or the .debs are for another architecture.
gc_deps_setup() {
  local debs=$1 prefix=$2 f p dep arch want link target d extracted=0
  local -A file_of=() done_=()
  local -a queue=() libdirs=() pcdirs=()
  shift 2

  if ! compgen -G "$debs/*.deb" >/dev/null; then
    gc_err "no .deb files in $debs: run scripts/fetch-debs.sh on a machine with internet (same release as this one) and copy .deps/ here"
    return 1
  fi
  for f in "$debs"/*.deb; do
    p=$(gc_deb_field "$f" Package) || return 1
    file_of[$p]=$f
  done
  want=$(uname -m)
  case "$want" in x86_64) want=amd64 ;; aarch64) want=arm64 ;; esac
  for p in "$@"; do
    if [ -z "${file_of[$p]:-}" ]; then
      gc_err "$p is needed but $debs has no .deb of it: run scripts/fetch-debs.sh again"
      return 1
    fi
    arch=$(gc_deb_field "${file_of[$p]}" Architecture)
    if [ "$arch" != all ] && [ "$arch" != "$want" ]; then
      gc_err "$(basename "${file_of[$p]}") is for $arch, this machine is $want: fetch the packages on a machine of that architecture"
      return 1
    fi
  done
  if [ -f "$debs/MANIFEST" ] && [ -r /etc/os-release ]; then
    local rel mine
    rel=$(sed -n 's/^release //p' "$debs/MANIFEST")
    # shellcheck disable=SC1091
    mine=$(. /etc/os-release && echo "${ID:-?} ${VERSION_ID:-?}")
    [ "$rel" = "$mine" ] ||
      gc_log "warning: the packages are from $rel, this machine runs $mine; their libraries may need a newer C library than this one has"
  fi

  rm -rf "$prefix"
  mkdir -p "$prefix" || return 1
  prefix=$(cd "$prefix" && pwd)
  queue=("$@")
  while [ "${#queue[@]}" -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [ -z "${done_[$p]:-}" ] || continue
    done_[$p]=1
    [ -n "${file_of[$p]:-}" ] || continue
    extracted=$((extracted + 1))
    gc_deb_extract "${file_of[$p]}" "$prefix" || {
      gc_err "could not extract ${file_of[$p]}"
      return 1
    }
    # "a (>= 1), b | c, d:any": a, b, d.
    while read -r dep; do
      [ -n "$dep" ] && queue+=("$dep")
    done < <(gc_deb_field "${file_of[$p]}" Depends | tr ',' '\n' |
             sed -E 's/\|.*//; s/\(.*\)//; s/:[a-z0-9]+//; s/[[:space:]]//g')
  done

  # The .pc files name /usr: make every absolute /usr path the prefix's.
  while read -r f; do
    sed -i -E "s#(^|[=[:space:]\"']|-I|-L)/usr(/|\$|[[:space:]])#\1$prefix/usr\2#g" "$f"
  done < <(find "$prefix" -name '*.pc')
  # Links to /usr/lib/... (rare in -dev packages, which link relatively).
  while read -r link; do
    target=$(readlink "$link")
    if [[ $target == /* ]] && [ -e "$prefix$target" ]; then
      ln -sfn "$prefix$target" "$link"
    fi
  done < <(find "$prefix" -type l)

  for d in "$prefix"/usr/lib/*-linux-gnu "$prefix"/lib/*-linux-gnu \
           "$prefix"/usr/lib "$prefix"/lib; do
    compgen -G "$d/lib*.so*" >/dev/null && libdirs+=("$d")
  done
  while read -r d; do
    pcdirs+=("$d")
  done < <(find "$prefix" -type d -name pkgconfig | sort)
  export PATH="$prefix/usr/bin:$PATH"
  if [ "${#pcdirs[@]}" -gt 0 ]; then
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH=$(IFS=:; echo "${pcdirs[*]}")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  fi
  gc_fix_libdirs "$prefix" "${libdirs[@]}" || return 1
  if [ "${#libdirs[@]}" -gt 0 ]; then
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  if [ -d "$prefix/usr/lib/python3/dist-packages" ]; then
    export PYTHONPATH="$prefix/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
  fi
  gc_log "extracted $extracted packages into $prefix ($*)"
}

# Points the libdir of every .pc file under $1 whose libraries are not in
# it at the folder among $2... that holds them: Debian's libzstd.pc says
# libdir=/usr/lib while the library is in /usr/lib/<triplet>, which the
# linker searches by default, and a prefix's copy of it is not.
gc_fix_libdirs() {
  local prefix=$1 pc name libdir l d found
  shift

  command -v pkg-config >/dev/null 2>&1 || return 0
  while read -r pc; do
    name=$(basename "$pc" .pc)
    libdir=$(PKG_CONFIG_LIBDIR=$(dirname "$pc") pkg-config --variable=libdir "$name" 2>/dev/null)
    [ -n "$libdir" ] || continue
    for l in $(PKG_CONFIG_LIBDIR=$(dirname "$pc") pkg-config --libs-only-l "$name" 2>/dev/null); do
      l=${l#-l}
      compgen -G "$libdir/lib$l.so" >/dev/null && continue
      compgen -G "$libdir/lib$l.a" >/dev/null && continue
      found=
      for d in "$@"; do
        if [ -e "$d/lib$l.so" ] || [ -e "$d/lib$l.a" ]; then
          found=$d
          break
        fi
      done
      # Not in the prefix at all: the machine's own (-lm, -lpthread).
      [ -n "$found" ] || continue
      sed -i "s#^libdir=.*#libdir=$found#" "$pc"
      break
    done
  done < <(find "$prefix" -name '*.pc')
}

# ---- The server and the benchmark ---------------------------------------------

# Starts server binary $1 on 127.0.0.1 with an ephemeral port and the
# backend $2, with any further arguments; sets gc_server_pid and
# gc_server_addr. Fails, with the server's stderr, if it wrote no port in
# 20 s or exited.
gc_start_server() {
  local bin=$1 backend=$2 dir port i
  shift 2

  dir=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || return 1
  gc_server_dir=$dir
  # Plain TCP on loopback: gpu_bench measures the transport without TLS
  # (its clients run with GPUPOOL_INSECURE=1).
  "$bin" --listen 127.0.0.1:0 --port-file "$dir/port" --backend "$backend" \
    --insecure --log-level error "$@" 2>"$dir/stderr" &
  gc_server_pid=$!
  for ((i = 0; i < 200; i++)); do
    port=$(cat "$dir/port" 2>/dev/null)
    if [[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ]; then
      gc_server_addr=127.0.0.1:$port
      return 0
    fi
    if ! kill -0 "$gc_server_pid" 2>/dev/null; then
      wait "$gc_server_pid"
      gc_err "$bin --backend $backend $* exited (status $?) before listening:"
      sed 's/^/  /' "$dir/stderr" >&2
      gc_server_pid=
      return 1
    fi
    sleep 0.1
  done
  gc_err "$bin wrote no port in 20 s"
  gc_stop_server
  return 1
}

# Stops the server gc_start_server started, if it runs.
gc_stop_server() {
  if [ -n "${gc_server_pid:-}" ]; then
    kill "$gc_server_pid" 2>/dev/null
    wait "$gc_server_pid" 2>/dev/null
    gc_server_pid=
  fi
  if [ -n "${gc_server_dir:-}" ]; then
    rm -rf "$gc_server_dir"
    gc_server_dir=
  fi
}

# Checks gpu_bench's output $1: every check passed, "info result ok", at
# least one metric, and every metric's value a positive number. If $2 is
# given, the library it ran on ("info libcuda") must resolve to the same
# file as $2. Prints what is wrong and fails.
gc_check_bench() {
  local out=$1 lib=${2:-} bad=0 got

  if ! grep -q '^info result ok$' "$out"; then
    gc_err "$out: no 'info result ok' line"
    bad=1
  fi
  if grep -q '^check .* FAILED' "$out"; then
    grep '^check .* FAILED' "$out" | sed 's/^/  /' >&2
    bad=1
  fi
  if ! grep -q '^metric ' "$out"; then
    gc_err "$out: no metric lines"
    bad=1
  fi
  if ! awk '/^metric / { if (NF != 4 || $3 !~ /^[0-9.e+-]+$/ || !($3 + 0 > 0)) { print "  not a positive value: " $0; bad = 1 } }
            END { exit bad }' "$out" >&2; then
    bad=1
  fi
  if [ -n "$lib" ]; then
    got=$(sed -n 's/^info libcuda //p' "$out")
    if [ "$(readlink -f "$got" 2>/dev/null)" != "$(readlink -f "$lib")" ]; then
      gc_err "$out: ran on ${got:-an unknown library}, not $lib"
      bad=1
    fi
  fi
  return $bad
}

# Prints the table of the metrics in gpu_bench outputs $1 (native) and $2
# (remote), in $1's order: each metric's name and unit, both values, and
# remote / native. A metric missing from one side shows "-".
gc_table() {
  awk '
    FNR == 1 { file++ }
    /^metric / {
      key = $2
      if (file == 1) { order[++n] = key; unit[key] = $4; nat[key] = $3 }
      else { rem[key] = $3; if (!(key in unit)) { order[++n] = key; unit[key] = $4 } }
    }
    END {
      printf "%-32s %12s %12s %14s\n", "metric", "native", "remote", "remote/native"
      for (i = 1; i <= n; i++) {
        k = order[i]
        a = (k in nat) ? sprintf("%.4g", nat[k]) : "-"
        b = (k in rem) ? sprintf("%.4g", rem[k]) : "-"
        r = ((k in nat) && (k in rem) && nat[k] > 0) ? sprintf("%.3g", rem[k] / nat[k]) : "-"
        printf "%-32s %12s %12s %14s\n", k " (" unit[k] ")", a, b, r
      }
    }' "$1" "$2"
}

# Prints "P F S" for the meson test log of build folder $1: tests passed
# (or expectedly failed), failed (or timed out), skipped.
gc_test_counts() {
  python3 - "$1/meson-logs/testlog.json" <<'EOF'
import json, sys
p = f = s = 0
try:
    log = open(sys.argv[1])
except OSError:
    print(0, 1, 0)
    sys.exit()
for line in log:
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get('result', '')
    if r in ('OK', 'EXPECTEDFAIL'):
        p += 1
    elif r == 'SKIP':
        s += 1
    else:
        f += 1
print(p, f, s)
EOF
}

# Prints the names of the failed tests in build folder $1's log.
gc_failed_tests() {
  python3 - "$1/meson-logs/testlog.json" <<'EOF'
import json, sys
try:
    for line in open(sys.argv[1]):
        if line.strip():
            t = json.loads(line)
            if t.get('result') not in ('OK', 'EXPECTEDFAIL', 'SKIP'):
                print(t.get('name', '?'), t.get('result', '?'))
except OSError:
    pass
EOF
}

# ---- The whole check -----------------------------------------------------------

# Prints the folder holding cuda.h next to nvcc $1, or fails.
gc_toolkit_include() {
  local inc

  inc=$(cd "$(dirname "$(readlink -f "$1")")/../include" 2>/dev/null && pwd) || return 1
  [ -f "$inc/cuda.h" ] || return 1
  echo "$inc"
}

# Prints LD_LIBRARY_PATH without the folders holding a libcuda.so.1 of
# NVIDIA's, so that programs linked to gpupool's library (through their
# RUNPATH, which LD_LIBRARY_PATH overrides) get gpupool's.
gc_ld_path_without_nvidia() {
  local d out=()

  IFS=: read -r -a dirs <<<"${LD_LIBRARY_PATH:-}"
  for d in "${dirs[@]}"; do
    [ -n "$d" ] || continue
    gc_is_nvidia_libcuda "$d/libcuda.so.1" || out+=("$d")
  done
  (IFS=:; echo "${out[*]}")
}

gc_main() {
  local reason build nvlib nvcc inc missing tmp native remote rc=0
  local passed failed skipped tests_ok=1 bench_args

  reason=$(gc_gpu_absent_reason)
  if [ -n "$reason" ]; then
    echo "gpu-check: no NVIDIA GPU here ($reason): nothing built or run; on a GPU machine this builds gpupool with nvcc in ${GC_BUILD_DIR:-build-gpu}/, runs the integration and cudart suites through gpupool-server --backend cuda and compares gpu_bench native against remote"
    return 0
  fi
  cd "$gc_root" || return 1
  build=${GC_BUILD_DIR:-build-gpu}
  # Absolute from here on: it is joined to other paths below.
  case "$build" in /*) ;; *) build=$gc_root/$build ;; esac
  nvlib=$(gc_find_nvidia_libcuda)
  read -r -a bench_args <<<"${GC_BENCH_ARGS:-}"

  echo "== GPU"
  "${GC_SMI:-nvidia-smi}" --query-gpu=name,driver_version,memory.total --format=csv,noheader |
    sed 's/^/gpu: /'
  echo "driver library: $nvlib -> $(readlink -f "$nvlib")"

  echo "== toolchain"
  nvcc=$(command -v nvcc || true)
  for c in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    [ -n "$nvcc" ] || { [ -x "$c" ] && nvcc=$c; }
  done
  if [ -z "$nvcc" ]; then
    gc_err "no nvcc (not on PATH, nor in \$CUDA_HOME/bin or /usr/local/cuda/bin): install the CUDA toolkit"
    return 1
  fi
  if ! inc=$(gc_toolkit_include "$nvcc"); then
    gc_err "no cuda.h beside $nvcc (../include)"
    return 1
  fi
  PATH="$(dirname "$nvcc"):$PATH"
  export PATH
  echo "nvcc: $nvcc ($("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
  echo "cuda.h: $inc (CUDA_VERSION $(sed -n 's/^#define CUDA_VERSION \([0-9]*\).*/\1/p' "$inc/cuda.h"))"
  for t in python3 cc; do
    command -v "$t" >/dev/null 2>&1 || { gc_err "$t not found"; return 1; }
  done

  missing=$(gc_missing_packages | sort -u | tr '\n' ' ')
  if [ -n "${missing// /}" ]; then
    gc_log "missing here: $missing; using .deps/debs"
    # shellcheck disable=SC2086
    gc_deps_setup "$gc_root/.deps/debs" "$gc_root/.deps/prefix" $missing || return 1
    missing=$(gc_missing_packages | tr '\n' ' ')
    if [ -n "${missing// /}" ]; then
      gc_err "still missing after extracting .deps/debs: $missing"
      return 1
    fi
  fi

  echo "== build ($build)"
  tmp=$(mktemp "${TMPDIR:-/tmp}/gpu-check-setup.XXXXXX")
  if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dtoolkit_include="$inc" >"$tmp" 2>&1
  else
    meson setup "$build" -Dtoolkit_include="$inc" >"$tmp" 2>&1
  fi || {
    tail -n 30 "$tmp" >&2
    gc_err "meson setup failed (its output above)"
    rm -f "$tmp"
    return 1
  }
  mv "$tmp" "$build/gpu-check-setup.log"
  if ! ninja -C "$build" >"$build/gpu-check-build.log" 2>&1; then
    grep -B2 -A12 -m3 'FAILED\|error' "$build/gpu-check-build.log" >&2
    gc_err "the build failed (log: $build/gpu-check-build.log)"
    return 1
  fi
  gc_log "built $(grep -c '^\[' "$build/gpu-check-build.log") steps"

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-bench.XXXXXX")
  native=$tmp/native.txt
  remote=$tmp/remote.txt

  echo "== gpu_bench native"
  LD_LIBRARY_PATH="$(dirname "$nvlib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$build/bench/gpu_bench" "${bench_args[@]}" >"$native" 2>&1
  rc=$?
  grep -v '^metric ' "$native"
  if [ $rc -ne 0 ] || ! gc_check_bench "$native" "$nvlib"; then
    tail -n 20 "$native" >&2
    gc_err "gpu_bench on the GPU failed (status $rc)"
    return 2
  fi

  echo "== gpu_bench through gpupool-server --backend cuda"
  gc_start_server "$build/server/gpupool-server" cuda --cuda-lib "$nvlib" || return 2
  trap gc_stop_server EXIT
  GPUPOOL_SERVER=$gc_server_addr GPUPOOL_INSECURE=1 \
  LD_LIBRARY_PATH="$build/client$(p=$(gc_ld_path_without_nvidia); [ -n "$p" ] && echo ":$p")" \
    "$build/bench/gpu_bench" "${bench_args[@]}" >"$remote" 2>&1
  rc=$?
  gc_stop_server
  grep -v '^metric ' "$remote"
  if [ $rc -ne 0 ] || ! gc_check_bench "$remote" "$build/client/libcuda.so.1"; then
    tail -n 20 "$remote" >&2
    gc_err "gpu_bench through gpupool failed (status $rc)"
    return 2
  fi

  echo "== tests: GPT_SERVER_MODE=cuda meson test --suite integration --suite cudart"
  # The test programs must bind gpupool's libcuda.so.1 (their RUNPATH),
  # which a folder of NVIDIA's on LD_LIBRARY_PATH would override. meson
  # test itself puts build-gpu/client first on the tests' LD_LIBRARY_PATH,
  # which the servers they start inherit: a cuda backend that dlopens
  # plain "libcuda.so.1" there gets gpupool's, so the harness must hand
  # them NVIDIA's explicitly: GPT_CUDA_LIB, for --cuda-lib.
  # A run that ends before writing its log must not be read as the
  # previous run's.
  rm -f "$build/meson-logs/testlog.json"
  local test_rc=0
  GPT_SERVER_MODE=cuda GPT_CUDA_LIB=$nvlib \
  LD_LIBRARY_PATH=$(gc_ld_path_without_nvidia) \
    meson test -C "$build" --suite integration --suite cudart \
    --print-errorlogs >"$build/gpu-check-tests.log" 2>&1 || test_rc=$?
  read -r passed failed skipped < <(gc_test_counts "$build")
  [ "$failed" -eq 0 ] || tests_ok=0
  if [ ! -s "$build/meson-logs/testlog.json" ]; then
    gc_err "meson test wrote no results (exit status $test_rc; log: $build/gpu-check-tests.log)"
    tests_ok=0
  elif [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    gc_err "meson test exited with status $test_rc although no test failed (log: $build/gpu-check-tests.log)"
    tests_ok=0
  fi

  echo
  echo "gpupool against $(sed -n 's/^info device //p' "$native"), CUDA driver $(sed -n 's/^info driver_version //p' "$native" | awk '{ printf "%d.%d (%d)", $1 / 1000, ($1 % 1000) / 10, $1 }')"
  echo "native: $(readlink -f "$nvlib"); remote: gpupool-server --backend cuda on loopback"
  gc_table "$native" "$remote"
  echo "tests (GPT_SERVER_MODE=cuda; integration, cudart): $passed passed, $failed failed, $skipped skipped (log: $build/gpu-check-tests.log)"
  if [ "$tests_ok" = 0 ]; then
    gc_failed_tests "$build" | head -n 40 | sed 's/^/  failed: /'
  fi
  rm -rf "$tmp"
  [ "$tests_ok" = 1 ] || return 3
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  if [ "${1:-}" = --setup-deps ] && [ -n "${2:-}" ]; then
    mkdir -p "$2"
    GC_DEPS_FORCE=1
    # shellcheck disable=SC2046
    gc_deps_setup "$gc_root/.deps/debs" "$2" $(gc_missing_packages | sort -u) >&2 ||
      exit 1
    # For the shell's eval: the environment that uses the prefix.
    for v in PATH PKG_CONFIG_PATH LD_LIBRARY_PATH PYTHONPATH; do
      [ -z "${!v:-}" ] || printf 'export %s=%q\n' "$v" "${!v}"
    done
    exit 0
  elif [ $# -ne 0 ]; then
    echo "usage: scripts/gpu-check.sh [--setup-deps PREFIX]" >&2
    exit 2
  fi
  gc_main
  exit $?
fi
