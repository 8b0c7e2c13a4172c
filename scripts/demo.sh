#!/usr/bin/env bash
# The gpupool demo: builds if needed, starts a pool server on an ephemeral
# loopback port (on the machine's NVIDIA GPU through the real driver when
# it has one, else on the emulated device), compiles a plain CUDA runtime
# program (examples/rt_demo.cu) with `nvcc rt_demo.cu -o rt_demo` and runs
# it unmodified through `gpupool attach`; then real CUDA driver-API
# programs (examples/kernel_demo.c, whose kernels are an nvcc-built fatbin,
# then examples/vector_demo.c, streams and copies); then measures the
# remote path (examples/measure.c). Then the pool: gpupool-broker with a
# generated config (a tenant token, an admin token, a 0600 grant key) and
# two emu servers registered to it (pool01, pool02), every link of the pool
# on TLS with certificates from scripts/gen-certs.sh (the broker verifies
# the servers' client certificates; the clients get GPUPOOL_TLS_CA); the
# same workload runs
# through `gpupool attach --broker`, and `gpupool status` and `gpupool
# sessions` are printed while a session runs. Prints a summary and stops
# every process it started, whatever happens.
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
broker_bin="$build/broker/gpupool-broker"

# Build only when something is missing; a first run installs and configures
# through setup.sh (which needs root or sudo only if packages are missing).
if [ ! -x "$server_bin" ] || [ ! -x "$cli_bin" ] || [ ! -x "$demo_bin" ] ||
   [ ! -x "$measure_bin" ] || [ ! -x "$kernel_bin" ] ||
   [ ! -x "$broker_bin" ]; then
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
# The pool's processes: the broker, then its servers.
pool_pids=()
stop_pid() { # PID: SIGTERM, up to 5 s, then SIGKILL
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$1" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
  fi
  return 1
}
stop_server() {
  local stopped=0
  for pid in "${pool_pids[@]}"; do stop_pid "$pid" && stopped=1; done
  pool_pids=()
  [ "$stopped" -eq 1 ] && echo "== pool stopped (broker and servers)"
  if stop_pid "$server_pid"; then
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
# TLS, as everywhere by default: a CA and the server's certificate made for
# this run (scripts/gen-certs.sh); the clients verify it with --tls-ca.
if ! bash "$root/scripts/gen-certs.sh" "$work/certs" >"$work/certs.log" 2>&1; then
  echo "demo: scripts/gen-certs.sh failed:" >&2
  cat "$work/certs.log" >&2
  exit 1
fi
ca="$work/certs/ca.pem"
echo "   TLS: certificates from scripts/gen-certs.sh in $work/certs"
"$server_bin" --listen 127.0.0.1:0 --port-file "$work/port" \
  --tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key" \
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
    echo "== gpupool attach --server $server --tls-ca ca.pem -- ./rt_demo"
    "$cli_bin" attach --server "$server" --tls-ca "$ca" -- "$work/rt_demo"
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
  echo "== gpupool attach --server $server --tls-ca ca.pem -- kernel_demo"
  "$cli_bin" attach --server "$server" --tls-ca "$ca" -- "$kernel_bin"
  kernel_status=$?
else
  echo "== kernel_demo was not built: nvcc (the CUDA toolkit) is missing"
  kernel_status=1
fi
echo

echo "== gpupool attach --server $server --tls-ca ca.pem -- vector_demo"
"$cli_bin" attach --server "$server" --tls-ca "$ca" -- "$demo_bin"
demo_status=$?
echo

measure_status=0
if [ "$measure" -eq 1 ]; then
  echo "== gpupool attach --server $server --tls-ca ca.pem -- measure"
  "$cli_bin" attach --server "$server" --tls-ca "$ca" -- "$measure_bin" --size 256 --reps 5
  measure_status=$?
  echo
fi

# ---- The pool: a broker, two servers registered to it, clients through it --
# Waits for FILE to hold a port (the process PID must stay alive); prints it.
wait_port() { # FILE PID
  for _ in $(seq 100); do
    if [ -s "$1" ]; then
      local p
      p=$(tr -dc '0-9' <"$1")
      [ -n "$p" ] && { echo "$p"; return 0; }
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
randhex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
# The server the broker named in its last grant ("granted to ...: NAME").
granted_on() { grep -o 'granted to [^:]*: [A-Za-z0-9._-]*' "$work/broker.log" |
  tail -n1 | awk '{print $NF}'; }

pool_status=1       # the pool came up
pool_rt_status=1
pool_demo_status=1
pool_held_status=1  # status and sessions printed while a session ran
pool_rt_on="" pool_demo_on=""
if [ -x "$broker_bin" ]; then
  echo "== the pool: gpupool-broker and two emu servers (pool01, pool02)"
  (umask 077; randhex 32 >"$work/grant.key"; echo >>"$work/grant.key")
  tenant_token="demo-$(randhex 16)"
  admin_token="admin-$(randhex 16)"
  (umask 077; echo "$tenant_token" >"$work/tenant.token"
   echo "$admin_token" >"$work/admin.token")
  sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
  cat >"$work/broker.conf" <<CONF
[broker]
grant_key_file = $work/grant.key
heartbeat_ms = 500
down_after_ms = 3000
grant_ttl_s = 30
default_memory = 512M

[tenant.demo]
token_sha256 = $(sha "$tenant_token")
max_sessions = 4
max_memory = 3G

[admin]
token_sha256 = $(sha "$admin_token")
CONF
  echo "   config: $work/broker.conf (tenant demo, max 4 sessions / 3 GiB; an admin)"
  # TLS on every link of the pool (docs/security.md): a CA and
  # certificates for localhost/127.0.0.1; the broker verifies the servers'
  # client certificates, the servers and the clients verify the broker.
  certs="$work/certs"
  if ! bash "$(dirname "$0")/gen-certs.sh" "$certs" >"$work/gen-certs.log" 2>&1; then
    echo "demo: scripts/gen-certs.sh failed; its output:" >&2
    cat "$work/gen-certs.log" >&2
    exit 1
  fi
  echo "   certificates: $certs (scripts/gen-certs.sh: ca.pem, broker.pem, server.pem)"
  export GPUPOOL_TLS_CA="$certs/ca.pem"
  "$broker_bin" --listen 127.0.0.1:0 --port-file "$work/broker.port" \
    --config "$work/broker.conf" --log-level info \
    --tls-cert "$certs/broker.pem" --tls-key "$certs/broker.key" \
    --tls-ca "$certs/ca.pem" 2>"$work/broker.log" &
  broker_pid=$!
  pool_pids+=("$broker_pid")
  if bport=$(wait_port "$work/broker.port" "$broker_pid"); then
    broker="127.0.0.1:$bport"
    echo "   gpupool-broker listening on $broker (pid $broker_pid), TLS; clients get GPUPOOL_TLS_CA=$GPUPOOL_TLS_CA"
    pool_status=0
    for name in pool01 pool02; do
      "$server_bin" --listen 127.0.0.1:0 --port-file "$work/$name.port" \
        --backend emu --emu-memory 2G --broker "$broker" --name "$name" \
        --label demo=yes --grant-key-file "$work/grant.key" \
        --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
        --tls-ca "$certs/ca.pem" \
        --log-level warn 2>"$work/$name.log" &
      pool_pids+=("$!")
      if sport=$(wait_port "$work/$name.port" "$!"); then
        echo "   gpupool-server $name on 127.0.0.1:$sport (pid $!), registered with the broker over mutual TLS"
      else
        echo "demo: pool server $name did not start; its log:" >&2
        cat "$work/$name.log" >&2
        pool_status=1
      fi
    done
  else
    echo "demo: gpupool-broker did not start; its log:" >&2
    cat "$work/broker.log" >&2
  fi
  pool_cli() { "$cli_bin" "$@" --broker "$broker" --token-file "$work/admin.token"; }
  if [ "$pool_status" -eq 0 ]; then
    # Both registered and up (a heartbeat or two).
    up=0
    for _ in $(seq 100); do
      up=$(pool_cli status --json 2>/dev/null | grep -o '"up": *true' | wc -l)
      [ "$up" -ge 2 ] && break
      sleep 0.1
    done
    [ "$up" -ge 2 ] || { echo "demo: the servers did not show up in gpupool status" >&2; pool_status=1; }
  fi
  echo
fi
attach_pool() { # PROGRAM [ARGS...]: through the broker, with the tenant's token
  "$cli_bin" attach --broker "$broker" --token-file "$work/tenant.token" \
    --mem 256M -- "$@"
}
if [ "$pool_status" -eq 0 ]; then
  if [ -x "$work/rt_demo" ]; then
    echo "== gpupool attach --broker $broker --token-file tenant.token --mem 256M -- ./rt_demo"
    attach_pool "$work/rt_demo"
    pool_rt_status=$?
    pool_rt_on=$(granted_on)
    echo
  fi
  echo "== gpupool attach --broker $broker --token-file tenant.token --mem 256M -- vector_demo"
  attach_pool "$demo_bin"
  pool_demo_status=$?
  pool_demo_on=$(granted_on)
  echo

  # One session held open while the broker is asked what it knows: a few
  # lines of Python calling the driver API through ctypes (attach puts
  # gpupool's libcuda.so.1 first), which wait for a line on their stdin.
  echo "== while a session runs: gpupool status; gpupool sessions"
  holder='import ctypes, sys
cu = ctypes.CDLL("libcuda.so.1")
dev, ctx, ptr = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
ok = (cu.cuInit(0) == 0 and cu.cuDeviceGet(ctypes.byref(dev), 0) == 0 and
      cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev) == 0 and
      cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(96 << 20)) == 0)
print("held" if ok else "failed", flush=True)
sys.stdin.readline()
if ok:
    cu.cuMemFree_v2(ptr)
    cu.cuCtxDestroy_v2(ctx)
sys.exit(0 if ok else 1)'
  mkfifo "$work/hold.in"
  attach_pool python3 -c "$holder" <"$work/hold.in" >"$work/held.log" 2>&1 &
  held_pid=$!
  exec 9>"$work/hold.in"
  seen=0
  for _ in $(seq 100); do
    grep -q . "$work/held.log" 2>/dev/null && break
    sleep 0.05
  done
  if grep -q '^held' "$work/held.log"; then
    # Running once a heartbeat has listed it; its memory in use a
    # heartbeat or two later.
    for _ in $(seq 100); do
      if pool_cli sessions --json 2>/dev/null | grep -q '"state": *"running"'; then
        seen=1
        break
      fi
      sleep 0.05
    done
    for _ in $(seq 40); do
      pool_cli sessions --json 2>/dev/null |
        grep -q '"memory_used": *[1-9]' && break
      sleep 0.05
    done
  fi
  echo "\$ gpupool status --broker $broker --token-file admin.token"
  pool_cli status
  st1=$?
  echo "\$ gpupool sessions --broker $broker --token-file admin.token"
  pool_cli sessions
  st2=$?
  echo >&9
  exec 9>&-
  wait "$held_pid"
  held=$?
  [ "$seen" -eq 1 ] && [ "$st1" -eq 0 ] && [ "$st2" -eq 0 ] && [ "$held" -eq 0 ] &&
    pool_held_status=0
  [ "$held" -eq 0 ] || { echo "demo: the held session failed:" >&2; cat "$work/held.log" >&2; }
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
if [ ! -x "$broker_bin" ]; then
  echo "   pool: FAILED (gpupool-broker was not built)"
elif [ "$pool_status" -ne 0 ]; then
  echo "   pool: FAILED (the broker or its servers did not start; logs above)"
else
  echo "   pool: gpupool-broker and pool01, pool02 (emu, 2 GiB) registered: OK"
  if [ -x "$work/rt_demo" ]; then
    [ "$pool_rt_status" -eq 0 ] &&
      echo "   pool rt_demo: through the broker, ran on ${pool_rt_on:-?}: OK" ||
      echo "   pool rt_demo: FAILED (exit status $pool_rt_status)"
  fi
  [ "$pool_demo_status" -eq 0 ] &&
    echo "   pool vector_demo: through the broker, ran on ${pool_demo_on:-?}: OK" ||
    echo "   pool vector_demo: FAILED (exit status $pool_demo_status)"
  [ "$pool_held_status" -eq 0 ] &&
    echo "   pool status and sessions: shown while a session ran: OK" ||
    echo "   pool status and sessions: FAILED"
fi
if [ -s "$work/server.log" ]; then
  echo "   server warnings:"
  sed 's/^/     /' "$work/server.log"
fi
for name in pool01 pool02; do
  if [ -s "$work/$name.log" ]; then
    echo "   $name warnings:"
    sed 's/^/     /' "$work/$name.log"
  fi
done
# rt_demo through the pool counts only where nvcc built it.
pool_ok=1
[ "$pool_status" -eq 0 ] && [ "$pool_demo_status" -eq 0 ] &&
  [ "$pool_held_status" -eq 0 ] &&
  { [ ! -x "$work/rt_demo" ] || [ "$pool_rt_status" -eq 0 ]; } && pool_ok=0
[ "$rt_status" -eq 0 ] && [ "$kernel_status" -eq 0 ] &&
  [ "$demo_status" -eq 0 ] &&
  [ "$measure_status" -eq 0 ] && [ "$pool_ok" -eq 0 ]
