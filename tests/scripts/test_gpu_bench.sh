#!/usr/bin/env bash
# gpu_bench --quick against a real gpupool-server --backend emu on
# loopback, started by scripts/gpu-check.sh's own gc_start_server: every
# metric line is there with a positive value, every check (the copies read
# back, the SGEMM against the CPU) passed, and the library was gpupool's.
# Then gpu-check's table of that run against itself, and its checker
# refusing doctored outputs; gpu_bench's refusals of bad arguments and of
# an absent server.
#
# usage: test_gpu_bench.sh SERVER GPU_BENCH LIBCUDA
set -uo pipefail

server=$1 bench=$2 libcuda=$3
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/gpu-check.sh
. "$here/../../scripts/gpu-check.sh"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

work=$(mktemp -d "${TMPDIR:-/tmp}/test-gpu-bench.XXXXXX")
trap 'gc_stop_server; rm -rf "$work"' EXIT

gc_start_server "$server" emu --emu-memory 1G || {
  echo "FAIL: the server did not start"
  exit 1
}
out=$work/out.txt
# LD_LIBRARY_PATH unset: the RUNPATH gives gpu_bench gpupool's library.
env -u LD_LIBRARY_PATH GPUPOOL_SERVER="$gc_server_addr" GPUPOOL_INSECURE=1 "$bench" --quick >"$out" 2>&1
rc=$?
cat "$out"
[ "$rc" -eq 0 ] || fail "gpu_bench --quick exited $rc"

gc_check_bench "$out" "$libcuda" || fail "gc_check_bench refused the run"
expected="sync_roundtrip us
dtoh_4B us
htod_4B us
launch_rate launches/s
htod_pageable_1MiB GB/s
dtoh_pageable_1MiB GB/s
htod_pageable_16MiB GB/s
dtoh_pageable_16MiB GB/s
htod_pinned_1MiB GB/s
dtoh_pinned_1MiB GB/s
htod_pinned_16MiB GB/s
dtoh_pinned_16MiB GB/s
sgemm_128_time ms
sgemm_128_rate GFLOP/s"
got=$(awk '/^metric / { print $2, $4 }' "$out")
[ "$got" = "$expected" ] || fail "metric lines: expected
$expected
got
$got"
while read -r name value unit; do
  awk -v v="$value" 'BEGIN { exit !(v + 0 > 0) }' ||
    fail "$name = $value $unit is not positive"
done < <(awk '/^metric / { print $2, $3, $4 }' "$out")
for c in 'check small_copies ok' 'check copies ok' \
         'check sgemm ok (n=128, 16384 elements checked)' 'info result ok' \
         'info device gpupool emulated device (compute capability 7.5)'; do
  grep -qxF "$c" "$out" || fail "no line '$c'"
done

# The table, the run against itself: every ratio 1.
table=$(gc_table "$out" "$out")
echo "$table"
[ "$(echo "$table" | head -n1 | awk '{ print $1, $2, $3, $4 }')" = \
  "metric native remote remote/native" ] || fail "table header"
[ "$(echo "$table" | tail -n +2 | wc -l)" -eq 14 ] || fail "table rows"
[ -z "$(echo "$table" | tail -n +2 | awk '$NF != "1"')" ] ||
  fail "a ratio of a run to itself is not 1"
# A metric on one side only shows "-".
grep -v '^metric launch_rate' "$out" >"$work/less.txt"
gc_table "$out" "$work/less.txt" | grep -q '^launch_rate (launches/s) .* - *- *$' ||
  fail "a metric missing remotely is not shown as -"

# The checker refuses a zero, a failed check, a missing result line, and
# a run on another library.
sed 's/^metric launch_rate [^ ]*/metric launch_rate 0/' "$out" >"$work/zero.txt"
gc_check_bench "$work/zero.txt" 2>/dev/null && fail "a zero metric passed"
sed 's/^check sgemm ok.*/check sgemm FAILED: 1 of 16384 elements/' "$out" >"$work/bad.txt"
gc_check_bench "$work/bad.txt" 2>/dev/null && fail "a failed check passed"
grep -v '^info result' "$out" >"$work/nores.txt"
gc_check_bench "$work/nores.txt" 2>/dev/null && fail "no result line passed"
gc_check_bench "$out" /bin/sh 2>/dev/null && fail "another library passed"

# Bad arguments: status 2; no server: status 1, in bounded time.
"$bench" --sgemm-n 17 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--sgemm-n 17 not refused with status 2"
"$bench" --calls >/dev/null 2>&1
[ $? -eq 2 ] || fail "--calls without a value not refused with status 2"
port=${gc_server_addr##*:}
gc_stop_server
timeout 60 env GPUPOOL_SERVER="127.0.0.1:$port" "$bench" --quick >"$work/none.txt" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "with no server gpu_bench exited $rc, not 1"
grep -q 'gpu_bench: cuInit(0): CUDA_ERROR' "$work/none.txt" ||
  fail "with no server: $(cat "$work/none.txt")"

echo "test_gpu_bench: $failures failed"
[ "$failures" -eq 0 ]
