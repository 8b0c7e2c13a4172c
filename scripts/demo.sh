#!/usr/bin/env bash
# The gpupool demo: builds if needed, starts a pool server on an ephemeral
# loopback port (on the machine's NVIDIA GPU through the real driver when
# it has one, else on the emulated device), compiles a plain CUDA runtime
# program (examples/rt_demo.cu) with `nvcc rt_demo.cu -o rt_demo` and runs
# it unmodified through `gpupool attach`; then real CUDA driver-API
# programs (examples/kernel_demo.c, whose kernels are an nvcc-built fatbin,
# then examples/vector_demo.c, streams and copies); then measures the
# remote path (examples/measure.c), prints a summary and stops the server,
# whatever happens.
#
# usage: scripts/demo.sh [--no-measure]
# env:   GPUPOOL_BUILD_DIR  build folder (default build)
#        GPUPOOL_DEMO_BACKEND  emu or cuda (default: cuda when nvidia-smi
#                           lists a GPU and NVIDIA's libcuda.so.1 is
#                           installed, else emu)
#        NVCC               the nvcc to use (default: nvcc on PATH, else
#                           /usr/local/cuda/bin/nvcc)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${GPUPOOL_BUILD_DIR:-build}
measure=1
[ "${1:-}" = "--no-measure" ] && measure=0

server_bin="$build/server/gpupool-server"
cli_bin="$build/client/gpupool"
demo_bin="$build/examples/vector_demo"
kernel_bin="$build/examples/kernel_demo"
measure_bin="$build/examples/measure"

# Build only when something is missing; a first run installs and configures
# through setup.sh (which needs root or sudo only if packages are missing).
if [ ! -x "$server_bin" ] || [ ! -x "$cli_bin" ] || [ ! -x "$demo_bin" ] ||
   [ ! -x "$measure_bin" ] || [ ! -x "$kernel_bin" ]; then
  echo "== building $build (first run)"
  setup_out=$("$root/scripts/setup.sh") || { echo "$setup_out"; exit 1; }
  cuda_dir=$(echo "$setup_out" | sed -n 's/^cuda-include: //p' | tail -n1)
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dtoolkit_include="$cuda_dir" >/dev/null || exit 1
  fi
  ninja -C "$build" >/dev/null || { echo "demo: the build failed" >&2; exit 1; }
else
  ninja -C "$build" >/dev/null 2>&1 # bring it up to date, quietly
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-demo.XXXXXX")
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    echo "== server stopped"
  fi
  server_pid=""
  rm -rf "$work"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# GPU detection is gpu-check's (sourcing it runs nothing): a /dev/nvidia0,
# a working nvidia-smi and NVIDIA's own libcuda.so.1, named to the server by
# path so that it can never load gpupool's library of the same name.
# shellcheck source=gpu-check.sh
source "$root/scripts/gpu-check.sh"
backend=${GPUPOOL_DEMO_BACKEND:-}
nvlib=""
if [ "$backend" != emu ] && [ -z "$(gc_gpu_absent_reason)" ]; then
  nvlib=$(gc_find_nvidia_libcuda)
fi
if [ -z "$backend" ]; then
  backend=emu
  [ -n "$nvlib" ] && backend=cuda
fi
case "$backend" in
  emu)
    echo "== starting gpupool-server on 127.0.0.1 (emulated device, 2 GiB)"
    backend_args=(--backend emu --emu-memory 2G) ;;
  cuda)
    if [ -z "$nvlib" ]; then
      echo "demo: GPUPOOL_DEMO_BACKEND=cuda but no GPU here: $(gc_gpu_absent_reason)" >&2
      exit 1
    fi
    echo "== starting gpupool-server on 127.0.0.1 (NVIDIA GPU, driver $nvlib)"
    nvidia-smi -L 2>/dev/null | sed 's/^/   /'
    backend_args=(--backend cuda --cuda-lib "$nvlib") ;;
  *) echo "demo: GPUPOOL_DEMO_BACKEND must be emu or cuda" >&2; exit 2 ;;
esac
"$server_bin" --listen 127.0.0.1:0 --port-file "$work/port" \
  "${backend_args[@]}" --log-level warn 2>"$work/server.log" &
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
  echo "demo: the server did not start; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
server="127.0.0.1:$port"
echo "   listening on $server (pid $server_pid)"
echo

# The runtime program, built as anyone builds one: nvcc's defaults (cudart
# linked statically), nothing gpupool-specific.
nvcc_bin=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
rt_status=0
if [ -x "$nvcc_bin" ]; then
  echo "== nvcc examples/rt_demo.cu -o rt_demo"
  if "$nvcc_bin" examples/rt_demo.cu -o "$work/rt_demo"; then
    echo "== gpupool attach --server $server -- ./rt_demo"
    "$cli_bin" attach --server "$server" -- "$work/rt_demo"
    rt_status=$?
  else
    echo "demo: nvcc could not build examples/rt_demo.cu" >&2
    rt_status=1
  fi
else
  echo "== rt_demo was not built: nvcc (the CUDA toolkit) is missing"
  rt_status=1
fi
echo

kernel_status=0
if [ -x "$kernel_bin" ]; then
  echo "== gpupool attach --server $server -- kernel_demo"
  "$cli_bin" attach --server "$server" -- "$kernel_bin"
  kernel_status=$?
else
  echo "== kernel_demo was not built: nvcc (the CUDA toolkit) is missing"
  kernel_status=1
fi
echo

echo "== gpupool attach --server $server -- vector_demo"
"$cli_bin" attach --server "$server" -- "$demo_bin"
demo_status=$?
echo

measure_status=0
if [ "$measure" -eq 1 ]; then
  echo "== gpupool attach --server $server -- measure"
  "$cli_bin" attach --server "$server" -- "$measure_bin" --size 256 --reps 5
  measure_status=$?
  echo
fi

echo "== summary"
if [ "$rt_status" -eq 0 ]; then
  echo "   rt_demo: a plain nvcc-built CUDA runtime program ran unmodified, results checked: OK"
else
  echo "   rt_demo: FAILED (exit status $rt_status)"
fi
if [ "$kernel_status" -eq 0 ]; then
  [ "$backend" = cuda ] && where="the GPU" || where="the emulated device"
  echo "   kernel_demo: nvcc-built kernels ran on $where, results checked: OK"
else
  echo "   kernel_demo: FAILED (exit status $kernel_status)"
fi
if [ "$demo_status" -eq 0 ]; then
  echo "   vector_demo: ran through the pool server, every byte checked: OK"
else
  echo "   vector_demo: FAILED (exit status $demo_status)"
fi
if [ "$measure" -eq 1 ]; then
  [ "$measure_status" -eq 0 ] && echo "   measure: done (figures above)" ||
    echo "   measure: FAILED (exit status $measure_status)"
fi
if [ -s "$work/server.log" ]; then
  echo "   server warnings:"
  sed 's/^/     /' "$work/server.log"
fi
[ "$rt_status" -eq 0 ] && [ "$kernel_status" -eq 0 ] &&
  [ "$demo_status" -eq 0 ] &&
  [ "$measure_status" -eq 0 ]
