#!/usr/bin/env bash
# The gpupool benchmark suite: measures, in one run, each gpupool figure
# beside its physical baseline taken by the same script on the same machine
# with the same CPU placement, and prints one table and a final
# machine-readable line (BENCH {...}). See bench/README.md.
#
# It starts its own gpupool-server (--backend emu, 127.0.0.1, an ephemeral
# port) for each placement, pinned with taskset (its workers inherit the
# CPU), runs bench/remote_bench (the gpupool figures) pinned to the client
# CPU against it, stops it, then runs bench/tcp_baseline (plain TCP between
# a client process and a server process) with the same two CPUs. The
# placements: "one_core", client and server on the first CPU this script
# may use; "two_cores", the client on the first and the server on the
# second. A machine (or an affinity mask) with one CPU runs the first only
# and says so.
#
# usage: scripts/bench.sh [--quick] [--build DIR] [--no-build]
#   --quick     tiny sizes and counts: a few seconds, a crash test (the
#               figures mean little)
#   --build DIR the build folder (default build; for figures that mean
#               something, a --buildtype=release one)
#   --no-build  use DIR as it is (the smoke test: no ninja run inside a
#               test)
# Exit status: 0 when every measurement ran, 1 otherwise, 2 on bad
# arguments. The server is stopped on every exit path.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
quick=0
do_build=1
usage() { sed -n '/^# usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) [ $# -ge 2 ] || usage; build=$2; shift ;;
    --no-build) do_build=0 ;;
    -h|--help) usage ;;
    *) echo "bench: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac

server_bin="$build/server/gpupool-server"
remote_bin="$build/bench/remote_bench"
tcp_bin="$build/bench/tcp_baseline"
targets=(server/gpupool-server client/libcuda.so.1 bench/remote_bench
         bench/tcp_baseline)

# Build as scripts/demo.sh does: configure through setup.sh the first
# time, else bring the few targets this needs up to date.
if [ "$do_build" -eq 1 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    echo "== configuring $build (first run, release build)"
    setup_out=$("$root/scripts/setup.sh") || { echo "$setup_out"; exit 1; }
    cuda_dir=$(echo "$setup_out" | sed -n 's/^cuda-include: //p' | tail -n1)
    meson setup "$build" --buildtype=release -Dtoolkit_include="$cuda_dir" \
      >/dev/null || exit 1
  fi
  ninja -C "$build" "${targets[@]}" >/dev/null ||
    { echo "bench: the build failed (ninja -C $build)" >&2; exit 1; }
fi
for b in "$server_bin" "$remote_bin" "$tcp_bin"; do
  [ -x "$b" ] || { echo "bench: $b is missing (build $build first)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-bench.XXXXXX") || exit 1
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
  fi
  [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
  server_pid=""
}
# The measuring program running, if any: run in the background and waited
# for, so that a signal stops the run at once rather than after it.
child_pid=""
cleanup() {
  [ -n "$child_pid" ] && kill -TERM "$child_pid" 2>/dev/null &&
    wait "$child_pid" 2>/dev/null
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The CPUs this script may use, in order.
cpus=$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))' 2>/dev/null) ||
  cpus=$(seq -s' ' 0 $(( $(nproc) - 1 )))
read -r -a cpu_list <<<"$cpus"
ncpu=${#cpu_list[@]}
pin=(taskset -c)
if ! command -v taskset >/dev/null; then
  echo "bench: taskset (util-linux) is missing: the processes run unpinned" >&2
  pin=()
fi
c0=${cpu_list[0]}
placements=("one_core $c0 $c0")
if [ "$ncpu" -ge 2 ]; then
  placements+=("two_cores $c0 ${cpu_list[1]}")
else
  echo "== this machine lets us use one CPU ($c0): only the one-core placement runs"
fi
mode=full
rounds=3
[ "$quick" -eq 1 ] && mode=quick && rounds=1
qarg=()
[ "$quick" -eq 1 ] && qarg=(--quick)
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "== gpupool benchmark ($mode run), build $build"
echo "   $(nproc --all 2>/dev/null || echo '?') CPUs on the machine, ${ncpu} usable; load average before: $load_before"

# run_pinned CPU CMD...: CMD on CPU (unpinned without taskset), as the
# measuring child; its exit status.
run_pinned() {
  local cpu=$1 rc
  shift
  "${pin[@]}" ${pin[@]:+"$cpu"} "$@" &
  child_pid=$!
  wait "$child_pid"
  rc=$?
  child_pid=""
  return "$rc"
}

# The port in FILE once the server (alive) wrote it.
wait_port() {
  for _ in $(seq 100); do
    if [ -s "$1" ]; then
      local p
      p=$(tr -dc '0-9' <"$1")
      [ -n "$p" ] && { echo "$p"; return 0; }
    fi
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# What the server accepts: --insecure once TLS is its default (the plain
# figures need plain TCP), --tls-cert/--tls-key for the TLS figures.
server_help=$("$server_bin" --help 2>&1)
plain_args=()
grep -q -- '--insecure' <<<"$server_help" && plain_args+=(--insecure)
tls_ok=0
tls_why="n/a (server has no TLS)"
if grep -q -- '--tls-cert' <<<"$server_help" &&
   grep -q -- '--tls-key' <<<"$server_help"; then
  if "$root/scripts/gen-certs.sh" "$work/certs" >"$work/gen-certs.log" 2>&1; then
    tls_ok=1
    tls_why=""
  else
    tls_why="n/a (scripts/gen-certs.sh failed)"
  fi
fi
# Plain TCP to loopback (GPUPOOL_INSECURE: once TLS is the client's
# default, it says so; harmless before).
export GPUPOOL_INSECURE=1

# start_server CPU NAME ARGS...: a server on CPU with ARGS added, its log
# in $work/server.NAME.log; sets server_pid and port. Returns 1 (after
# printing its log) when it did not start.
start_server() {
  local cpu=$1 tag=$2
  shift 2
  rm -f "$work/port"
  # $! must be the server itself (taskset execs it), or stopping it would
  # leave it behind: started here, not in a subshell.
  "${pin[@]}" ${pin[@]:+"$cpu"} "$server_bin" --listen 127.0.0.1:0 \
    --port-file "$work/port" --backend emu --log-level error "$@" \
    </dev/null >/dev/null 2>"$work/server.$tag.log" &
  server_pid=$!
  if ! port=$(wait_port "$work/port"); then
    echo "bench: the server did not start; its log:" >&2
    cat "$work/server.$tag.log" >&2
    return 1
  fi
}

# remote TAG CPU ARGS...: remote_bench ARGS on CPU against the server
# started last, its metrics in $work/remote.TAG; 1 (and status=1) on a
# failure.
remote() {
  local tag=$1 cpu=$2
  shift 2
  if ! GPUPOOL_SERVER="127.0.0.1:$port" run_pinned "$cpu" "$remote_bin" \
      "${qarg[@]}" "$@" </dev/null >"$work/remote.$tag" \
      2>"$work/remote.$tag.err"; then
    echo "bench: remote_bench $* failed ($tag):" >&2
    cat "$work/remote.$tag.err" >&2
    status=1
    return 1
  fi
}

server_said() {
  if [ -s "$work/server.$1.log" ]; then
    echo "   server said ($1):"
    sed 's/^/     /' "$work/server.$1.log"
  fi
}

status=0
names=()
for pl in "${placements[@]}"; do
  read -r name ccpu scpu <<<"$pl"
  names+=("$name")
  echo "== $name: client on CPU $ccpu, server on CPU $scpu"
  # The defaults: busy-poll on (adaptive), compression auto.
  start_server "$scpu" "$name" "${plain_args[@]}" || exit 1
  echo "   gpupool: remote_bench against 127.0.0.1:$port (the defaults; then $rounds alternating rounds of the compression copies off, auto, on, of the copies, and of the TCP stream)"
  remote "$name" "$ccpu"
  # The figures compared with each other are taken in alternating rounds
  # (each a process of its own), and their medians compared, so that a
  # change in the machine's load falls on all of them alike: the
  # compression modes, and the copies against the TCP stream.
  for r in $(seq "$rounds"); do
    for zm in off auto on; do
      GPUPOOL_COMPRESS=$zm remote "$name.$zm.$r" "$ccpu" --patterns-only
    done
    remote "$name.copies.$r" "$ccpu" --copies-only
    run_pinned "$ccpu" "$tcp_bin" "${qarg[@]}" --client-cpu "$ccpu" \
      --server-cpu "$scpu" --stream-only >"$work/tcp.$name.stream.$r" \
      2>"$work/tcp.$name.stream.$r.err" || status=1
  done
  stop_server
  server_said "$name"
  # The round trip without busy-polling on either end.
  start_server "$scpu" "$name.nopoll" "${plain_args[@]}" --poll-us 0 || exit 1
  echo "   gpupool: remote_bench --sync-only, busy-poll off (--poll-us 0, GPUPOOL_POLL_US=0)"
  GPUPOOL_POLL_US=0 remote "$name.nopoll" "$ccpu" --sync-only
  stop_server
  server_said "$name.nopoll"
  if [ "$tls_ok" -eq 1 ]; then
    start_server "$scpu" "$name.tls" --tls-cert "$work/certs/server.pem" \
      --tls-key "$work/certs/server.key" || exit 1
    echo "   gpupool over TLS: remote_bench --copies-only (GPUPOOL_TLS_CA)"
    env -u GPUPOOL_INSECURE GPUPOOL_TLS_CA="$work/certs/ca.pem" \
      GPUPOOL_SERVER="127.0.0.1:$port" "${pin[@]}" ${pin[@]:+"$ccpu"} \
      "$remote_bin" "${qarg[@]}" --copies-only </dev/null \
      >"$work/remote.$name.tls" 2>"$work/remote.$name.tls.err" || {
        echo "bench: remote_bench over TLS failed ($name):" >&2
        cat "$work/remote.$name.tls.err" >&2
        status=1
      }
    stop_server
    server_said "$name.tls"
  fi
  # The baseline's messages are the sizes the client's socket carried.
  m() { sed -n "s/^metric $1 \([0-9.]*\) .*/\1/p" "$work/remote.$name" | head -n1; }
  req=$(m sync_request_bytes); rep=$(m sync_reply_bytes); lb=$(m launch_bytes)
  lb=${lb%.*}
  sizes=()
  [ -n "$req" ] && sizes+=(--req-bytes "$req")
  [ -n "$rep" ] && sizes+=(--reply-bytes "$rep")
  [ -n "$lb" ] && sizes+=(--launch-bytes "$lb")
  echo "   baseline: tcp_baseline ${sizes[*]}"
  if ! run_pinned "$ccpu" "$tcp_bin" "${qarg[@]}" --client-cpu "$ccpu" \
      --server-cpu "$scpu" "${sizes[@]}" >"$work/tcp.$name" \
      2>"$work/tcp.$name.err"; then
    echo "bench: tcp_baseline failed ($name):" >&2
    cat "$work/tcp.$name.err" >&2
    status=1
  fi
  if [ "$tls_ok" -eq 1 ]; then
    echo "   baseline: tcp_baseline --tls (the TLS stream)"
    if ! run_pinned "$ccpu" "$tcp_bin" "${qarg[@]}" --client-cpu "$ccpu" \
        --server-cpu "$scpu" "${sizes[@]}" --tls "$work/certs" \
        >"$work/tcp.$name.tls" 2>"$work/tcp.$name.tls.err"; then
      echo "bench: tcp_baseline --tls failed ($name):" >&2
      cat "$work/tcp.$name.tls.err" >&2
      status=1
    fi
  fi
  echo "$ccpu $scpu" >"$work/cpus.$name"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo

# The table and the BENCH line, from the metric lines of both programs.
python3 - "$work" "$mode" "$ncpu" "$load_before" "$load_after" "$tls_why" "${names[@]}" <<'PY'
import json, math, os, sys

work, mode, ncpu, load_before, load_after, tls_why = sys.argv[1:7]
names = sys.argv[7:]

def metrics(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[0] == "metric":
                    out[p[1]] = float(p[2])
    except OSError:
        pass
    return out

def size_key(k):
    n = int("".join(c for c in k if c.isdigit()))
    return n << (20 if k.endswith("MiB") else 10 if k.endswith("KiB") else 0)

def size_label(n):
    for shift, unit in ((20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return "%dB" % n

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if v == int(v) and abs(v) < 1e6:
        return "%d" % v
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 0.1:
        return "%.3f" % v
    return "%.2g" % v

import glob, statistics

def rounds_median(prefix):
    """Every metric's median over the files PREFIX.1, PREFIX.2..."""
    vals = {}
    for path in sorted(glob.glob(prefix + ".[0-9]*")):
        if path.endswith(".err"):
            continue
        for k, v in metrics(path).items():
            vals.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in vals.items()}

per = {}
rows = []      # (label, unit, {placement: (g, b, ratio)})
def add(label, unit, key, name, g, b, higher):
    ratio = None
    if isinstance(g, float) and isinstance(b, float) and g > 0 and b > 0:
        ratio = b / g if higher else g / b
    if not any(r[0] == label for r in rows):
        rows.append((label, unit, {}))
    next(r for r in rows if r[0] == label)[2][name] = (g, b, ratio)
    node = per[name]
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = {"gpupool": g, "baseline": b,
                       "ratio": None if ratio is None else round(ratio, 4)}

pats = [("zero", "zero-filled"), ("half_zero", "half-zero"), ("random", "random")]
goals = {}
comp_size = "?"
for name in names:
    r = metrics(os.path.join(work, "remote." + name))
    t = metrics(os.path.join(work, "tcp." + name))
    nopoll = metrics(os.path.join(work, "remote." + name + ".nopoll"))
    modes = {m: rounds_median(os.path.join(work, "remote.%s.%s" % (name, m)))
             for m in ("off", "auto", "on")}
    # The copies and the stream: medians of the alternating rounds when
    # there are any, else the main run's.
    copies = rounds_median(os.path.join(work, "remote.%s.copies" % name))
    stream = rounds_median(os.path.join(work, "tcp.%s.stream" % name))
    r = dict(r)
    t = dict(t)
    r.update(copies)
    t.update(stream)
    rtls = metrics(os.path.join(work, "remote." + name + ".tls"))
    ttls = metrics(os.path.join(work, "tcp." + name + ".tls"))
    try:
        ccpu, scpu = open(os.path.join(work, "cpus." + name)).read().split()
    except (OSError, ValueError):
        ccpu = scpu = "?"
    per[name] = {"client_cpu": int(ccpu) if ccpu.isdigit() else None,
                 "server_cpu": int(scpu) if scpu.isdigit() else None,
                 "complete": bool(r) and bool(t) and bool(nopoll) and
                             bool(modes["off"]) and bool(modes["on"])}
    add("round trip p50: cuCtxSynchronize / TCP ping-pong", "us",
        "sync_rtt_p50_us", name, r.get("sync_p50"), t.get("tcp_pingpong_p50"), False)
    add("round trip p50, busy-poll off / TCP ping-pong", "us",
        "sync_rtt_p50_nopoll_us", name, nopoll.get("sync_p50"),
        t.get("tcp_pingpong_p50"), False)
    add("round trip p99: cuCtxSynchronize / TCP ping-pong", "us",
        "sync_rtt_p99_us", name, r.get("sync_p99"), t.get("tcp_pingpong_p99"), False)
    add("round trip p99, busy-poll off / TCP ping-pong", "us",
        "sync_rtt_p99_nopoll_us", name, nopoll.get("sync_p99"),
        t.get("tcp_pingpong_p99"), False)
    add("empty-kernel launches, pipelined / TCP messages", "1/s",
        "launch_rate_per_s", name, r.get("launch_rate"),
        t.get("tcp_pipelined_rate"), True)
    # Pipelined TCP messages make no round trip: the baseline is 0.
    add("round trips per launch, counted by the library", "",
        "counted_launch_round_trips", name,
        r.get("counted_launch_round_trips"), 0.0, False)
    add("round trips per launch, seen on the socket", "",
        "launch_round_trips", name, r.get("launch_round_trips"), 0.0, False)
    sizes = sorted((k[4:] for k in r if k.startswith("h2d_") and k[4].isdigit()),
                   key=size_key)
    for d, tk in (("h2d", "send"), ("d2h", "recv")):
        for sz in sizes:
            add("%s %s pageable / TCP stream" % (d.upper(), sz), "GB/s",
                "%s_GBps.%s" % (d, sz), name, r.get("%s_%s" % (d, sz)),
                t.get("tcp_%s_%s" % (tk, sz)), True)
    if rtls:
        for d, tk in (("h2d", "send"), ("d2h", "recv")):
            for sz in sizes:
                add("%s %s over TLS / TLS stream" % (d.upper(), sz), "GB/s",
                    "tls.%s_GBps.%s" % (d, sz), name, rtls.get("%s_%s" % (d, sz)),
                    ttls.get("tls_%s_%s" % (tk, sz)), True)
    else:
        add("H2D / D2H over TLS / TLS stream", "GB/s", "tls", name,
            tls_why, None, True)
    # (4) compressibility, both ways, each mode against the TCP stream of
    # that size.
    comp_size = size_label(int(r.get("pattern_size", 0)))
    for d, tk in (("h2d", "send"), ("d2h", "recv")):
        base = t.get("tcp_%s_%s" % (tk, comp_size))
        for m in ("off", "auto", "on"):
            for k, label in pats:
                add("%s %s %s, compression %s / TCP" % (d.upper(), comp_size, label, m),
                    "GB/s", "%s_pattern_GBps.%s.%s" % (d, m, k), name,
                    modes[m].get("%s_%s_%s" % (d, m, k)), base, True)
    add("vectorAdd loop with copies, total / TCP + C", "ms", "vadd_ms", name,
        r.get("vadd_time"), t.get("tcp_vadd_time"), False)
    per[name]["sync_request_bytes"] = r.get("sync_request_bytes")
    per[name]["sync_reply_bytes"] = r.get("sync_reply_bytes")
    per[name]["launch_bytes"] = r.get("launch_bytes")
    per[name]["vadd_round_trips_per_iteration"] = r.get("vadd_round_trips")
    per[name]["launch_run_round_trips"] = r.get("launch_run_round_trips")
    per[name]["counted_run_round_trips"] = r.get("counted_run_round_trips")
    per[name]["launches_per_run"] = r.get("launches_per_run")

    # The goals of issue 8, per placement.
    g = {}
    def ratio_of(key):
        node = per[name]
        for p in key.split("."):
            node = node.get(p, {}) if isinstance(node, dict) else {}
        return node.get("ratio") if isinstance(node, dict) else None
    def val(d, m, k):
        return modes[m].get("%s_%s_%s" % (d, m, k))
    x = ratio_of("sync_rtt_p50_us")
    g["p50 within 1.5x of the TCP ping-pong"] = (x is not None and x <= 1.5, "x%.2f" % x if x else "-")
    x = r.get("counted_launch_round_trips")
    g["zero round trips per launch"] = (x is not None and x == 0, fmt(x))
    for d in ("h2d", "d2h"):
        x = ratio_of("%s_GBps.256MiB" % d)
        if x is not None:
            g["%s 256MiB at >= 85%% of the TCP stream" % d.upper()] = (x <= 1 / 0.85, "%.0f%%" % (100 / x))
        x = ratio_of("tls.%s_GBps.256MiB" % d)
        if x is not None:
            g["%s 256MiB at >= 85%% of the TLS stream" % d.upper()] = (x <= 1 / 0.85, "%.0f%%" % (100 / x))
        for k in ("zero", "half_zero"):
            on, off = val(d, "auto", k), val(d, "off", k)
            if on and off:
                g["%s %s: auto >= 2x off" % (d.upper(), k)] = (on >= 2 * off, "x%.2f" % (on / off))
        on, off = val(d, "auto", "random"), val(d, "off", "random")
        if on and off:
            g["%s random: auto no more than 5%% slower than off" % d.upper()] = (on >= 0.95 * off, "x%.2f" % (on / off))
    goals[name] = g

# The table: one column group per placement.
w0 = max(len(r[0]) + len(r[1]) + 3 for r in rows)
head = "%-*s" % (w0, "figure")
for name in names:
    head += " | %-32s" % ("%s: client %s, server %s" % (
        name, per[name]["client_cpu"], per[name]["server_cpu"]))
print(head)
sub = " " * w0
for name in names:
    sub += " | %11s %11s %8s" % ("gpupool", "baseline", "ratio")
print(sub)
print("-" * len(sub))
for label, unit, vals in rows:
    line = "%-*s" % (w0, label + (" (%s)" % unit if unit else ""))
    for name in names:
        g, b, ratio = vals.get(name, (None, None, None))
        if isinstance(g, str) and g.startswith("n/a"):
            line += " | %-32s" % g
            continue
        line += " | %11s %11s %8s" % (fmt(g), fmt(b),
                                      "x%.2f" % ratio if ratio else "-")
    print(line)
print()
print("ratio: gpupool's cost over the baseline's (time over time, or the")
print("baseline's rate over gpupool's): x1.00 is the baseline's speed, x2.00 half of it.")
print("compression: zstd per 16 MiB chunk, level -3; auto = the default (a sample")
print("decides per transfer), on = every chunk, off = none (GPUPOOL_COMPRESS).")
print("busy-poll: on = the defaults (GPUPOOL_POLL_US and --poll-us 50, adaptive,")
print("off on one CPU or when more threads are runnable than CPUs).")
print("TLS: %s" % (tls_why or "server --tls-cert/--tls-key, client GPUPOOL_TLS_CA; baseline tcp_baseline --tls"))
for name in names:
    p = per[name]
    print("%s: on the client's socket a synchronous request is %s bytes and its "
          "reply %s, a launch %s;\n  a run of %s launches and its cuCtxSynchronize "
          "made %s round trip(s) on the socket; the vectorAdd loop %s per iteration"
          % (name, fmt(p["sync_request_bytes"]), fmt(p["sync_reply_bytes"]),
             fmt(p["launch_bytes"]), fmt(p["launches_per_run"]),
             fmt(p["launch_run_round_trips"]),
             fmt(p["vadd_round_trips_per_iteration"])))
print()
print("goals (issue 8):")
for name in names:
    for goal, (ok, shown) in goals[name].items():
        print("  %-10s %-52s %-8s %s" % (name, goal, shown, "met" if ok else "NOT met"))
print("load average: before %s, after %s (%s usable CPUs)" % (load_before, load_after, ncpu))
out = {"suite": "gpupool-bench", "mode": mode, "backend": "emu",
       "cpus": int(ncpu), "load_before": load_before, "load_after": load_after,
       "compression": "zstd level -3 per chunk; auto (default), on, off",
       "tls": tls_why or "server --tls-cert/--tls-key",
       "placements": per,
       "goals": {n: {k: v[0] for k, v in goals[n].items()} for n in names}}
print()
print("BENCH " + json.dumps(out, separators=(",", ":"), allow_nan=False))
PY
py=$?
[ "$py" -eq 0 ] || status=1
for name in "${names[@]}"; do
  for f in "remote.$name" "remote.$name.off.1" "remote.$name.on.1" \
      "remote.$name.nopoll" "tcp.$name"; do
    [ -s "$work/$f" ] || status=1
  done
done
exit "$status"
