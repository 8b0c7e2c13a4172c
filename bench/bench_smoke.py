#!/usr/bin/env python3
"""The smoke test of scripts/bench.sh (suite 'bench'): runs it --quick
against the given build folder and checks that it exited 0 and that its
last line is the BENCH line, valid JSON with every expected key, for every
placement the machine allows. Nothing about the figures' values: the
benchmarks are not tests.

usage: bench_smoke.py BENCH_SH BUILD_DIR
"""
import json
import subprocess
import sys

FIGURES = ["sync_rtt_p50_us", "sync_rtt_p99_us", "sync_rtt_p50_nopoll_us",
           "sync_rtt_p99_nopoll_us", "launch_rate_per_s",
           "launch_round_trips", "counted_launch_round_trips", "vadd_ms",
           "tls"]
SIZED = ["h2d_GBps", "d2h_GBps"]
PATTERNS = ["zero", "half_zero", "random"]
TOP = ["suite", "mode", "backend", "cpus", "load_before", "load_after",
       "compression", "tls", "placements", "goals"]
EXTRA = ["client_cpu", "server_cpu", "complete", "sync_request_bytes",
         "sync_reply_bytes", "launch_bytes", "launch_run_round_trips",
         "launches_per_run", "vadd_round_trips_per_iteration",
         "counted_run_round_trips"]


def fail(msg, out=""):
    sys.stderr.write(out)
    sys.stderr.write("bench_smoke: FAILED: %s\n" % msg)
    sys.exit(1)


def check_figure(where, fig):
    if not isinstance(fig, dict):
        fail("%s is not an object" % where)
    for k in ("gpupool", "baseline", "ratio"):
        if k not in fig:
            fail("%s lacks %r" % (where, k))
    if fig["gpupool"] is None:
        fail("%s has no gpupool figure" % where)


def main():
    if len(sys.argv) != 3:
        fail("usage: bench_smoke.py BENCH_SH BUILD_DIR")
    p = subprocess.run([sys.argv[1], "--quick", "--build", sys.argv[2],
                        "--no-build"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=110)
    out = p.stdout
    if p.returncode != 0:
        fail("bench.sh --quick exited %d" % p.returncode, out)
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines or not lines[-1].startswith("BENCH "):
        fail("the last line is not the BENCH line", out)
    try:
        doc = json.loads(lines[-1][len("BENCH "):])
    except ValueError as e:
        fail("the BENCH line is not JSON: %s" % e, out)
    for k in TOP:
        if k not in doc:
            fail("the BENCH line lacks %r" % k, out)
    if doc["mode"] != "quick":
        fail("mode is %r, not 'quick'" % doc["mode"], out)
    want = ["one_core"] + (["two_cores"] if doc["cpus"] >= 2 else [])
    if sorted(doc["placements"]) != sorted(want):
        fail("placements %s, expected %s" % (sorted(doc["placements"]), want),
             out)
    for name in want:
        pl = doc["placements"][name]
        figures = FIGURES
        if "tls" in pl and "h2d_GBps" in pl["tls"]:
            # The server has TLS: the TLS copies, one per size and way.
            figures = [f for f in FIGURES if f != "tls"]
            for k in SIZED:
                for size, fig in pl["tls"][k].items():
                    check_figure("%s.tls.%s.%s" % (name, k, size), fig)
        for k in figures + SIZED + ["h2d_pattern_GBps", "d2h_pattern_GBps"] + EXTRA:
            if k not in pl:
                fail("placement %s lacks %r" % (name, k), out)
        if pl["complete"] is not True:
            fail("placement %s is not complete" % name, out)
        for k in figures:
            check_figure("%s.%s" % (name, k), pl[k])
        for k in SIZED:
            if len(pl[k]) != 4:
                fail("%s.%s has %d sizes, not 4" % (name, k, len(pl[k])), out)
            for size, fig in pl[k].items():
                check_figure("%s.%s.%s" % (name, k, size), fig)
                if fig["baseline"] is None:
                    fail("%s.%s.%s has no baseline" % (name, k, size), out)
        for way in ("h2d_pattern_GBps", "d2h_pattern_GBps"):
            for mode in ("off", "auto", "on"):
                for pat in PATTERNS:
                    fig = pl[way].get(mode, {}).get(pat)
                    check_figure("%s.%s.%s.%s" % (name, way, mode, pat), fig)
        if not doc["goals"].get(name):
            fail("no goals for placement %s" % name, out)
    print("bench_smoke: bench.sh --quick ran %s and printed every key"
          % ", ".join(want))


main()
