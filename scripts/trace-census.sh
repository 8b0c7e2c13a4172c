#!/usr/bin/env bash
# The trace census: runs CUDA runtime programs through `gpupool attach
# --trace` against a fresh local server and lists
#   (a) every name cudart (or cuBLAS) looked up with cuGetProcAddress that
#       gpupool answered CUDA_ERROR_NOT_FOUND, and
#   (b) every driver call that returned CUDA_ERROR_NOT_SUPPORTED,
# each with the programs that did so. This is what a runtime program still
# asks of the driver that gpupool does not provide.
#
# usage: scripts/trace-census.sh [--keep DIR] [PROGRAM...]
#   PROGRAM...  the programs to run (default: every build of the cudart
#               suite, $GPUPOOL_BUILD_DIR/tests/integration/rt_*)
#   --keep DIR  keep each program's trace as DIR/NAME.trace
# env:   GPUPOOL_BUILD_DIR  build folder (default build), built already
#
# A program's own failure does not stop the census: its exit status is
# listed with the rest. Exits 1 only when the census itself cannot run.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${GPUPOOL_BUILD_DIR:-build}
keep=""
if [ "${1:-}" = "--keep" ]; then
  keep=${2:?--keep needs a folder}
  shift 2
  mkdir -p "$keep" || exit 1
fi

server_bin="$build/server/gpupool-server"
cli_bin="$build/client/gpupool"
for b in "$server_bin" "$cli_bin"; do
  [ -x "$b" ] || { echo "trace-census: $b is missing: build first" >&2; exit 1; }
done
if [ "$#" -gt 0 ]; then
  programs=("$@")
else
  programs=()
  for p in "$build"/tests/integration/rt_*; do
    [ -f "$p" ] && [ -x "$p" ] && programs+=("$p")
  done
fi
[ "${#programs[@]}" -gt 0 ] ||
  { echo "trace-census: no programs (is nvcc installed? build first)" >&2; exit 1; }

# libcudart.so.13 and libcublas.so.13 for the -cudart shared and cuBLAS
# builds, from beside nvcc.
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
toolkit_lib=$(cd "$(dirname "$nvcc_bin")/../lib64" 2>/dev/null && pwd)
export LD_LIBRARY_PATH="${toolkit_lib:+$toolkit_lib:}${LD_LIBRARY_PATH:-}"

work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-census.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$server_bin" --listen 127.0.0.1:0 --port-file "$work/port" --backend emu \
  --emu-memory 2G --log-level error 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 100); do
  if [ -s "$work/port" ]; then
    port=$(tr -dc '0-9' <"$work/port")
    [ -n "$port" ] && break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "trace-census: the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

# One record per finding: KIND<TAB>NAME<TAB>PROGRAM.
: >"$work/found"
echo "== programs (exit status)"
for p in "${programs[@]}"; do
  name=$(basename "$p")
  trace="$work/$name.trace"
  timeout 120 "$cli_bin" attach --server "127.0.0.1:$port" --trace -- "$p" \
    >/dev/null 2>"$trace"
  echo "   $name: $?"
  [ -n "$keep" ] && cp "$trace" "$keep/$name.trace"
  # cuGetProcAddress(_v2)(symbol="NAME", ..., flags=F, ...) = CUDA_ERROR_NOT_FOUND;
  # flags 2 asks for the per-thread default stream variant.
  sed -n 's/^gpupool: cuGetProcAddress[_v0-9]*(symbol="\([^"]*\)".*flags=\([0-9]*\).*) = CUDA_ERROR_NOT_FOUND$/\2 \1/p' \
    "$trace" | while read -r flags sym; do
      [ -z "$sym" ] && continue   # cudart's probe with an empty name
      [ "$flags" = "2" ] && sym="$sym (per-thread)"
      printf 'NOT_FOUND\t%s\t%s\n' "$sym" "$name"
    done >>"$work/found"
  sed -n 's/^gpupool: \([A-Za-z0-9_]*\)(.*) = CUDA_ERROR_NOT_SUPPORTED$/\1/p' \
    "$trace" | while read -r fn; do
      printf 'NOT_SUPPORTED\t%s\t%s\n' "$fn" "$name"
    done >>"$work/found"
done
echo

total=${#programs[@]}
report() {
  local kind=$1 title=$2
  local names
  names=$(awk -F'\t' -v k="$kind" '$1 == k { print $2 }' "$work/found" | sort -u)
  echo "== $title ($(printf '%s' "$names" | grep -c .) names)"
  [ -z "$names" ] && { echo "   (none)"; echo; return; }
  while IFS= read -r n; do
    local who count
    who=$(awk -F'\t' -v k="$kind" -v n="$n" '$1 == k && $2 == n { print $3 }' \
      "$work/found" | sort -u)
    count=$(printf '%s\n' "$who" | grep -c .)
    if [ "$count" -eq "$total" ]; then
      printf '   %-44s all %d programs\n' "$n" "$total"
    else
      printf '   %-44s %s\n' "$n" "$(printf '%s\n' "$who" | paste -sd' ')"
    fi
  done <<<"$names"
  echo
}
report NOT_FOUND "looked up with cuGetProcAddress, answered CUDA_ERROR_NOT_FOUND"
report NOT_SUPPORTED "called, returned CUDA_ERROR_NOT_SUPPORTED"
