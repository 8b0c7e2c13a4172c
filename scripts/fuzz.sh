#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz/, each for SECONDS from a
# scratch copy of its committed corpus (tests/fuzz/corpus/<target>/), and
# prints per target: executions, executions per second, new corpus entries
# and crashes. A crashing (or leaking, or hanging) input is kept under
# BUILD/fuzz-artifacts/<target>-crash-<sha1> (libFuzzer's names); the
# source tree is never written. Exits non-zero if any target found one or
# could not run.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#        SECONDS  per target (default 60); TARGETs default to all five:
#        fuzz_frame fuzz_dispatch fuzz_grant fuzz_fatbin fuzz_ptx
# env:   GPUPOOL_BUILD_DIR  the build folder whose tests/fuzz/ holds the
#        fuzzers (default build; configured and built here if needed: the
#        targets are built with clang whatever the folder's compiler)
#        GPUPOOL_FUZZ_KEEP_CORPUS=DIR  keep each scratch corpus in
#        DIR/<target> (to merge new entries by hand)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${GPUPOOL_BUILD_DIR:-build}
all_targets=(fuzz_frame fuzz_dispatch fuzz_grant fuzz_fatbin fuzz_ptx)

seconds=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  case " ${all_targets[*]} " in
    *" $t "*) ;;
    *) echo "fuzz.sh: unknown target '$t' (known: ${all_targets[*]})" >&2
       exit 2 ;;
  esac
done

command -v clang >/dev/null ||
  { echo "fuzz.sh: no clang: the fuzzers cannot be built" >&2; exit 1; }

# Build what is missing or stale: configure the folder first if it does not
# exist (cuda.h from setup.sh, as test.sh finds it).
if [ ! -f "$build/build.ninja" ]; then
  cuda_dir=$("$root/scripts/setup.sh" | sed -n 's/^cuda-include: //p' |
             tail -n1)
  [ -n "$cuda_dir" ] || { echo "fuzz.sh: cannot find cuda.h" >&2; exit 1; }
  meson setup "$build" -Dtoolkit_include="$cuda_dir" >/dev/null ||
    { echo "fuzz.sh: meson setup $build failed" >&2; exit 1; }
fi
ninja -C "$build" $(printf 'tests/fuzz/%s ' "${targets[@]}") >/dev/null ||
  { echo "fuzz.sh: building the fuzzers in $build failed" >&2; exit 1; }

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
status=0
for t in "${targets[@]}"; do
  fuzzer="$build/tests/fuzz/$t"
  corpus="tests/fuzz/corpus/$t"
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-fuzz.XXXXXX")
  mkdir -p "$work/corpus"
  [ -d "$corpus" ] && cp -r "$corpus/." "$work/corpus/"
  before=$(find "$work/corpus" -type f | wc -l)
  crashes_before=$(find "$artifacts" -name "$t-*" -type f | wc -l)
  echo "== fuzz: $t for ${seconds}s from $before corpus entries"
  # -timeout: one input (one whole session for fuzz_dispatch) over 25 s
  # is a hang; -rss_limit_mb: the default, said out loud.
  "$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/$t-" "$work/corpus" \
    >"$work/fuzz.log" 2>&1
  rc=$?
  after=$(find "$work/corpus" -type f | wc -l)
  crashes=$(( $(find "$artifacts" -name "$t-*" -type f | wc -l) -
              crashes_before ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" |
          tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" |
         tail -n1)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status=1
    echo "--- $t FAILED (exit $rc); the end of its log:"
    tail -n 60 "$work/fuzz.log"
    if [ "$crashes" -gt 0 ]; then
      echo "--- its crashing inputs:"
      ls -t "$artifacts/$t-"* | head -n "$crashes"
    fi
  fi
  echo "fuzz $t: ${execs:-?} executions, ${rate:-?} exec/s, $((after - before)) new corpus entries, $crashes crashes"
  if [ -n "${GPUPOOL_FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$GPUPOOL_FUZZ_KEEP_CORPUS/$t"
    cp -r "$work/corpus/." "$GPUPOOL_FUZZ_KEEP_CORPUS/$t/"
  fi
  rm -rf "$work"
done
exit "$status"
