#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), configures and builds build/,
# runs every meson test suite (unit, integration, fuzz corpus replay), then
# builds build-asan with AddressSanitizer and UBSan and runs the
# integration and hostile suites there, then runs each libFuzzer target for
# a while (scripts/fuzz.sh). Prints the logs of the tests that failed, and
# ends with the line "N passed, N failed" (every meson test of both builds
# counts one, each fuzz run one more). Exits non-zero on any failure.
#
# usage: scripts/test.sh [MESON TEST ARGS...]   e.g. --suite integration
# env:   GPUPOOL_BUILD_DIR   build folder (default build)
#        GPUPOOL_FUZZ_SECONDS  length of each fuzz run (default 30; 0 skips them)
#        GPUPOOL_ASAN=0      skip the ASan build and its run (CI runs it)
#        GPUPOOL_ASAN_BUILD_DIR  its folder (default build-asan)
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

# Counts a meson testlog.json: "passed failed skipped".
count_log() {
  python3 - "$1" <<'EOF'
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
read -r passed failed skipped < <(count_log "$log")
if [ "$meson_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # meson itself failed without a failed test to show for it
fi

# AddressSanitizer + UBSan: a second build folder, and the integration and
# hostile-client suites again in it (every server, worker and client of
# those tests instrumented). GPUPOOL_ASAN=0 skips it (locally only: CI
# runs it).
if [ "${GPUPOOL_ASAN:-1}" != 0 ]; then
  asan=${GPUPOOL_ASAN_BUILD_DIR:-build-asan}
  echo "== configure $asan (address,undefined)"
  # The fuzzers are left out there: they carry their own sanitizers.
  asan_opts=(-Db_sanitize=address,undefined -Dtoolkit_include="$cuda_dir"
             -Dfuzz=disabled)
  if [ -f "$asan/build.ninja" ]; then
    meson setup --reconfigure "$asan" "${asan_opts[@]}" >/dev/null
  else
    meson setup "$asan" "${asan_opts[@]}" >/dev/null
  fi
  asan_ok=$?
  if [ "$asan_ok" -eq 0 ]; then
    # Only what those suites run and need (not the cudart programs, the
    # benchmarks, ...): the files of the tests' executables and depends.
    asan_targets=$(cd "$asan" && python3 - <<'EOF'
import json, os, subprocess
def intro(what):
    return json.loads(subprocess.check_output(
        ['meson', 'introspect', what, '.']))
files = {t['id']: t['filename'] for t in intro('--targets')}
want = set()
for t in intro('--tests'):
    if not {s.split(':')[-1] for s in t['suite']} & {'integration', 'hostile'}:
        continue
    for d in t['depends']:
        want.update(files.get(d, []))
    if t['cmd'] and t['cmd'][0].startswith(os.getcwd() + '/'):
        want.add(t['cmd'][0])
print(' '.join(sorted(os.path.relpath(f) for f in want)))
EOF
)
    echo "== build $asan ($(echo "$asan_targets" | wc -w) targets)"
    # shellcheck disable=SC2086
    ninja -C "$asan" $asan_targets >"$asan/ninja.log" 2>&1 ||
      { tail -n 30 "$asan/ninja.log"; asan_ok=1; }
  fi
  if [ "$asan_ok" -ne 0 ]; then
    echo "test.sh: the ASan build failed"
    failed=$((failed + 1))
  else
    echo "== test $asan: --suite integration --suite hostile"
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
      meson test -C "$asan" --no-rebuild --print-errorlogs \
        --suite integration --suite hostile
    asan_status=$?
    if [ -f "$asan/meson-logs/testlog.json" ]; then
      read -r p f s < <(count_log "$asan/meson-logs/testlog.json")
    else
      p=0 f=0 s=0
    fi
    [ "$asan_status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    echo "($asan: $p passed, $f failed, $s skipped)"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
  fi
else
  echo "== GPUPOOL_ASAN=0: the ASan run is skipped"
fi

# Each fuzzer runs for $fuzz_seconds from its committed corpus, through
# scripts/fuzz.sh (one test each): the frame codec, the server's request
# handlers, the grant verifier, the fatbin reader and the PTX front end.
if [ "$fuzz_seconds" -gt 0 ]; then
  for name in fuzz_frame fuzz_dispatch fuzz_grant fuzz_fatbin fuzz_ptx; do
    if ! command -v clang >/dev/null || [ ! -x "$build/tests/fuzz/$name" ]; then
      echo "== fuzz: $build/tests/fuzz/$name was not built (no clang?): skipped"
      skipped=$((skipped + 1))
      continue
    fi
    if GPUPOOL_BUILD_DIR="$build" "$root/scripts/fuzz.sh" "$fuzz_seconds" \
        "$name"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
fi

[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
