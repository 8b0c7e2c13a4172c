#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), configures and builds build/,
# runs every meson test suite (unit, integration, fuzz corpus replay), then
# fuzzes the frame codec and the PTX parser for a while each with
# libFuzzer. Prints the logs of the tests that failed, and ends with the
# line "N passed, N failed" (every meson test counts one, each fuzz run one
# more). Exits non-zero on any failure.
#
# usage: scripts/test.sh [MESON TEST ARGS...]   e.g. --suite integration
# env:   GPUPOOL_BUILD_DIR   build folder (default build)
#        GPUPOOL_FUZZ_SECONDS  length of each fuzz run (default 30; 0 skips them)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${GPUPOOL_BUILD_DIR:-build}
fuzz_seconds=${GPUPOOL_FUZZ_SECONDS:-30}

# Any failure before the tests run counts as one failed "test".
die() {
  echo "test.sh: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

setup_out=$("$root/scripts/setup.sh") || { echo "$setup_out"; die "setup failed"; }
echo "$setup_out"
cuda_dir=$(echo "$setup_out" | sed -n 's/^cuda-include: //p' | tail -n1)
[ -n "$cuda_dir" ] || die "setup did not say where cuda.h is"

echo "== configure $build"
if [ -f "$build/build.ninja" ]; then
  meson setup --reconfigure "$build" -Dtoolkit_include="$cuda_dir" >/dev/null ||
    die "meson setup --reconfigure failed"
else
  meson setup "$build" -Dtoolkit_include="$cuda_dir" || die "meson setup failed"
fi

echo "== build"
ninja -C "$build" || die "the build failed"

echo "== test"
meson test -C "$build" --print-errorlogs "$@"
meson_status=$?
log="$build/meson-logs/testlog.json"
[ -f "$log" ] || die "meson test left no $log"
read -r passed failed skipped < <(python3 - "$log" <<'EOF'
import json, sys
p = f = s = 0
with open(sys.argv[1]) as log:
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
)
if [ "$meson_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # meson itself failed without a failed test to show for it
fi

# Each fuzzer runs for $fuzz_seconds from its committed corpus: the frame
# codec (what a peer sends) and the PTX front end (what a module image
# holds).
for spec in fuzz_frame:corpus fuzz_ptx:corpus_ptx; do
  name=${spec%%:*}
  corpus=tests/fuzz/${spec#*:}
  fuzzer="$build/tests/fuzz/$name"
  [ "$fuzz_seconds" -gt 0 ] || break
  if [ ! -x "$fuzzer" ]; then
    echo "== fuzz: $fuzzer was not built (no clang?): skipped"
    skipped=$((skipped + 1))
    continue
  fi
  echo "== fuzz: $name for ${fuzz_seconds}s"
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-fuzz.XXXXXX")
  mkdir -p "$work/corpus" "$build/fuzz-artifacts"
  if [ -d "$corpus" ]; then
    cp -r "$corpus/." "$work/corpus/"
  fi
  # New inputs go to the scratch corpus, never into the source tree; a
  # crashing input is kept under build/fuzz-artifacts/.
  if "$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-artifacts/$name-" "$work/corpus" \
      >"$work/fuzz.log" 2>&1; then
    passed=$((passed + 1))
    tail -n 12 "$work/fuzz.log"
  else
    failed=$((failed + 1))
    echo "--- $name FAILED; its log:"
    tail -n 60 "$work/fuzz.log"
    echo "--- crashing inputs: $build/fuzz-artifacts/"
  fi
  rm -rf "$work"
done

[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
