#!/usr/bin/env python3
"""Checks that client/gen_cuda_api.py stops the build when cuda.h and
cudaTypedefs.h disagree, and accepts the toolkit's own headers.

Each case runs the generator on a folder holding the toolkit's cuda.h and
its cudaTypedefs.h, unchanged or altered to simulate a toolkit that breaks the version rule.

Usage: test_gen_cuda_api.py GENERATOR INCLUDE_DIR -- CC [ARGS...]
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(gen, inc, cc, out):
    cmd = [sys.executable, gen, "--include", inc,
           "--stubs", os.path.join(out, "stubs.c"),
           "--errors", os.path.join(out, "cuerrors.c"),
           "--procs", os.path.join(out, "procs.c"), "--"] + cc
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    gen, inc = argv[:cut]
    cc = argv[cut + 1:]
    failures = 0
    typedefs = open(os.path.join(inc, "cudaTypedefs.h")).read()
    anchor = "typedef CUresult (CUDAAPI *PFN_cuCtxCreate_v12050)"
    assert anchor in typedefs, "cudaTypedefs.h has no cuCtxCreate_v12050"

    cases = [
        ("the toolkit's headers", None, None),
        ("a fifth cuCtxCreate version cuda.h lacks",
         "typedef CUresult (CUDAAPI *PFN_cuCtxCreate_v99000)(void);\n",
         "cuCtxCreate_v5"),
        ("a per-thread form cuda.h lacks",
         "typedef CUresult (CUDAAPI *PFN_cuMemGetInfo_v7000_ptds)(void);\n",
         "per-thread typedef of cuMemGetInfo"),
        ("a base name cuda.h does not declare",
         "typedef CUresult (CUDAAPI *PFN_cuNoSuchThing_v13000)(void);\n",
         "cuNoSuchThing"),
    ]
    for what, extra, expect in cases:
        with tempfile.TemporaryDirectory() as tmp:
            inc2 = os.path.join(tmp, "include")
            out = os.path.join(tmp, "out")
            os.mkdir(out)
            # cuda.h includes system headers only; cudaTypedefs.h includes
            # cuda.h.
            os.mkdir(inc2)
            shutil.copy(os.path.join(inc, "cuda.h"), inc2)
            text = typedefs if extra is None else typedefs.replace(
                anchor, extra + anchor, 1)
            with open(os.path.join(inc2, "cudaTypedefs.h"), "w") as f:
                f.write(text)
            res = run(gen, inc2, cc, out)
            if expect is None:
                ok = res.returncode == 0
                if ok:
                    procs = open(os.path.join(out, "procs.c")).read()
                    ok = re.search(r'\{"cuCtxCreate", \d+, 4\}', procs) \
                        is not None
            else:
                ok = res.returncode != 0 and expect in res.stderr
            print("%s: %s" % ("ok" if ok else "FAILED", what))
            if not ok:
                print(res.stdout + res.stderr)
                failures += 1

    # A function cuda.h declares without any typedef, with a per-thread
    # form: looked up under its own name, the form only through the flag.
    with tempfile.TemporaryDirectory() as tmp:
        inc2 = os.path.join(tmp, "include")
        out = os.path.join(tmp, "out")
        os.mkdir(inc2)
        os.mkdir(out)
        shutil.copy(os.path.join(inc, "cudaTypedefs.h"), inc2)
        with open(os.path.join(inc, "cuda.h")) as f:
            cuda_h = f.read()
        with open(os.path.join(inc2, "cuda.h"), "w") as f:
            f.write(cuda_h + "\nCUresult CUDAAPI cuGpTestPlain(int x);\n"
                    "CUresult CUDAAPI cuGpTestPlain_ptsz(int x);\n")
        res = run(gen, inc2, cc, out)
        procs = open(os.path.join(out, "procs.c")).read() \
            if res.returncode == 0 else ""
        ok = ('{"cuGpTestPlain", ' in procs and
              '{"cuGpTestPlain_ptsz", ' not in procs and
              "/* cuGpTestPlain, cuGpTestPlain_ptsz */" in procs)
        print("%s: a name without typedefs" % ("ok" if ok else "FAILED"))
        if not ok:
            print(res.stdout + res.stderr)
            failures += 1

    # A variant the script is told cuda.h lacks keeps its place: later
    # versions keep their variants and that version finds nothing.
    spec = importlib.util.spec_from_file_location("gen_cuda_api", gen)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.MISSING_VARIANT_OK = {"cuCtxCreate_v4": "test"}
    names = [n for n in mod.functions(mod.preprocess(cc, inc))
             if n != "cuCtxCreate_v4"]
    table = dict(mod.proc_table(names, mod.preprocess(cc, inc,
                                                      "cudaTypedefs.h")))
    got = table.get("cuCtxCreate")
    ok = got == [(2000, "cuCtxCreate", None), (3020, "cuCtxCreate_v2", None),
                 (11040, "cuCtxCreate_v3", None), (12050, None, None)]
    print("%s: an accepted missing variant (%r)" % ("ok" if ok else "FAILED",
                                                    got))
    if not ok:
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
