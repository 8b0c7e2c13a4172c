#!/usr/bin/env python3
"""Generates, from the toolkit's cuda.h and cudaTypedefs.h, the tables
libcuda.so.1 needs.

  stubs.c    a weak definition of every function cuda.h declares, so that the
             library exports every name the real driver exports; each stub
             says once on stderr that the call is not supported yet and
             returns CUDA_ERROR_NOT_SUPPORTED. Implemented functions are
             strong definitions in client/api_*.c and win at link time.
             Each stub is a static function with the exported name as a weak
             alias, and the stubs' own addresses are listed, so that the
             library can tell at run time which names still resolve to a
             stub (cuGetProcAddress answers those as not found).
  cuerrors.c the name and the short description of every CUresult.
  procs.c    cuGetProcAddress's table: for every base name, the CUDA version
             of each of its ABI variants and the variant's _ptds/_ptsz form,
             from the PFN_<name>_v<version> typedefs of cudaTypedefs.h.

The version rule: the k-th version that cudaTypedefs.h lists for a base name
(in increasing order, the legacy ones of its __CUDA_API_VERSION_INTERNAL
block included) is the entry point `name` for k = 1 and `name_v<k>` after
that; a look-up at version V gets the variant of the highest listed version
<= V. Every variant so derived must be declared in cuda.h, and every
function cuda.h declares must be accounted for (a variant, the per-thread
form of one, or a name without typedefs, answered as itself): anything else
stops the build, so a new toolkit that breaks the rule is caught here.

The stubs are defined as `int name(void)`, whatever the real prototype: on
x86-64 (System V) and AArch64 (AAPCS64) the caller places the arguments in
registers or in its own stack frame and removes them itself, so a callee
that ignores them is safe, and the int result comes back where a CUresult
would. (On an ABI where the callee pops its arguments, such as 32-bit
stdcall, this would not hold; libcuda.so.1 is 64-bit only.)

cuda.h is preprocessed by the C compiler given after "--" with
-D__CUDA_API_VERSION_INTERNAL, the mode NVIDIA builds the driver in: it turns
off the macros that rename calls to their newest version and declares the
legacy, versioned and per-thread-stream (_ptds/_ptsz) names as well.

Usage: gen_cuda_api.py --include DIR --stubs OUT --errors OUT --procs OUT
                      -- CC [ARGS...]
"""

import argparse
import collections
import re
import subprocess
import sys

# The driver's own short descriptions (cuGetErrorString), for the codes a
# program is likely to print. Codes missing here get a description made from
# their name ("CUDA_ERROR_FOO_BAR" -> "foo bar").
DESCRIPTIONS = {
    "CUDA_SUCCESS": "no error",
    "CUDA_ERROR_INVALID_VALUE": "invalid argument",
    "CUDA_ERROR_OUT_OF_MEMORY": "out of memory",
    "CUDA_ERROR_NOT_INITIALIZED": "initialization error",
    "CUDA_ERROR_DEINITIALIZED": "driver shutting down",
    "CUDA_ERROR_PROFILER_DISABLED":
        "profiler disabled while using external profiling tool",
    "CUDA_ERROR_PROFILER_NOT_INITIALIZED":
        "profiler not initialized: call cudaProfilerInitialize()",
    "CUDA_ERROR_PROFILER_ALREADY_STARTED": "profiler already started",
    "CUDA_ERROR_PROFILER_ALREADY_STOPPED": "profiler already stopped",
    "CUDA_ERROR_STUB_LIBRARY": "CUDA driver is a stub library",
    "CUDA_ERROR_DEVICE_UNAVAILABLE":
        "CUDA-capable device(s) is/are busy or unavailable",
    "CUDA_ERROR_NO_DEVICE": "no CUDA-capable device is detected",
    "CUDA_ERROR_INVALID_DEVICE": "invalid device ordinal",
    "CUDA_ERROR_DEVICE_NOT_LICENSED": "device doesn't have valid Grid license",
    "CUDA_ERROR_INVALID_IMAGE": "device kernel image is invalid",
    "CUDA_ERROR_INVALID_CONTEXT": "invalid device context",
    "CUDA_ERROR_CONTEXT_ALREADY_CURRENT": "context already current",
    "CUDA_ERROR_MAP_FAILED": "mapping of buffer object failed",
    "CUDA_ERROR_UNMAP_FAILED": "unmapping of buffer object failed",
    "CUDA_ERROR_ARRAY_IS_MAPPED": "array is mapped",
    "CUDA_ERROR_ALREADY_MAPPED": "resource already mapped",
    "CUDA_ERROR_NO_BINARY_FOR_GPU":
        "no kernel image is available for execution on the device",
    "CUDA_ERROR_ALREADY_ACQUIRED": "resource already acquired",
    "CUDA_ERROR_NOT_MAPPED": "resource not mapped",
    "CUDA_ERROR_NOT_MAPPED_AS_ARRAY": "resource not mapped as array",
    "CUDA_ERROR_NOT_MAPPED_AS_POINTER": "resource not mapped as pointer",
    "CUDA_ERROR_ECC_UNCORRECTABLE": "uncorrectable ECC error encountered",
    "CUDA_ERROR_UNSUPPORTED_LIMIT":
        "limit is not supported on this architecture",
    "CUDA_ERROR_CONTEXT_ALREADY_IN_USE":
        "exclusive-thread device already in use by a different thread",
    "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED":
        "peer access is not supported between these two devices",
    "CUDA_ERROR_INVALID_PTX": "a PTX JIT compilation failed",
    "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT": "invalid OpenGL or DirectX context",
    "CUDA_ERROR_NVLINK_UNCORRECTABLE":
        "uncorrectable NVLink error detected during the execution",
    "CUDA_ERROR_JIT_COMPILER_NOT_FOUND": "PTX JIT compiler library not found",
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION":
        "the provided PTX was compiled with an unsupported toolchain.",
    "CUDA_ERROR_JIT_COMPILATION_DISABLED": "PTX JIT compilation was disabled",
    "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY":
        "the provided execution affinity is not supported",
    "CUDA_ERROR_INVALID_SOURCE": "device kernel image is invalid",
    "CUDA_ERROR_FILE_NOT_FOUND": "file not found",
    "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND":
        "shared object symbol not found",
    "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED": "shared object initialization failed",
    "CUDA_ERROR_OPERATING_SYSTEM":
        "OS call failed or operation not supported on this OS",
    "CUDA_ERROR_INVALID_HANDLE": "invalid resource handle",
    "CUDA_ERROR_ILLEGAL_STATE":
        "the operation cannot be performed in the present state",
    "CUDA_ERROR_NOT_FOUND": "named symbol not found",
    "CUDA_ERROR_NOT_READY": "device not ready",
    "CUDA_ERROR_ILLEGAL_ADDRESS": "an illegal memory access was encountered",
    "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES":
        "too many resources requested for launch",
    "CUDA_ERROR_LAUNCH_TIMEOUT": "the launch timed out and was terminated",
    "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING":
        "launch uses incompatible texturing mode",
    "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED": "peer access is already enabled",
    "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED": "peer access has not been enabled",
    "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE":
        "cannot set while device is active in this process",
    "CUDA_ERROR_CONTEXT_IS_DESTROYED": "context is destroyed",
    "CUDA_ERROR_ASSERT": "device-side assert triggered",
    "CUDA_ERROR_TOO_MANY_PEERS": "peer mapping resources exhausted",
    "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED":
        "part or all of the requested memory range is already mapped",
    "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED":
        "pointer does not correspond to a registered memory region",
    "CUDA_ERROR_HARDWARE_STACK_ERROR": "hardware stack error",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION": "an illegal instruction was encountered",
    "CUDA_ERROR_MISALIGNED_ADDRESS": "misaligned address",
    "CUDA_ERROR_INVALID_ADDRESS_SPACE":
        "operation not supported on global/shared address space",
    "CUDA_ERROR_INVALID_PC": "invalid program counter",
    "CUDA_ERROR_LAUNCH_FAILED": "unspecified launch failure",
    "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE":
        "too many blocks in cooperative launch",
    "CUDA_ERROR_NOT_PERMITTED": "operation not permitted",
    "CUDA_ERROR_NOT_SUPPORTED": "operation not supported",
    "CUDA_ERROR_SYSTEM_NOT_READY": "system not yet initialized",
    "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH":
        "system has unsupported display driver / cuda driver combination",
    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE":
        "forward compatibility was attempted on non supported HW",
    "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED":
        "operation not permitted when stream is capturing",
    "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED":
        "operation failed due to a previous error during capture",
    "CUDA_ERROR_STREAM_CAPTURE_MERGE":
        "operation would result in a merge of separate capture sequences",
    "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED":
        "capture was not ended in the same stream as it began",
    "CUDA_ERROR_STREAM_CAPTURE_UNJOINED": "capturing stream has unjoined work",
    "CUDA_ERROR_STREAM_CAPTURE_ISOLATION":
        "dependency created on uncaptured work in another stream",
    "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT":
        "operation would make the legacy stream depend on a capturing "
        "blocking stream",
    "CUDA_ERROR_CAPTURED_EVENT":
        "operation not permitted on an event last recorded in a capturing "
        "stream",
    "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD":
        "attempt to terminate a thread-local capture sequence from another "
        "thread",
    "CUDA_ERROR_TIMEOUT": "wait operation timed out",
    "CUDA_ERROR_EXTERNAL_DEVICE":
        "an async error has occurred in external entity outside of CUDA",
    "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER":
        "API call is not supported in the installed CUDA driver",
    "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC":
        "the provided PTX contains unsupported call to cudaDeviceSynchronize",
    "CUDA_ERROR_CONTAINED":
        "an exception occurred on the device that is now contained by the "
        "GPU's error containment capability",
    "CUDA_ERROR_LOSSY_QUERY":
        "attempted introspection would be semantically lossy",
    "CUDA_ERROR_MPS_CONNECTION_FAILED":
        "MPS client failed to connect to the MPS control daemon or the MPS "
        "server",
    "CUDA_ERROR_MPS_RPC_FAILURE":
        "the remote procedural call between the MPS server and the MPS "
        "client failed",
    "CUDA_ERROR_MPS_SERVER_NOT_READY":
        "MPS server is not ready to accept new MPS client requests",
    "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED":
        "the hardware resources required to create MPS client have been "
        "exhausted",
    "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED":
        "the hardware resources required to support device connections have "
        "been exhausted",
    "CUDA_ERROR_MPS_CLIENT_TERMINATED":
        "the MPS client has been terminated by the server",
    "CUDA_ERROR_CDP_NOT_SUPPORTED":
        "the module is using CUDA Dynamic Parallelism, but the current "
        "configuration, like MPS, does not support it",
    "CUDA_ERROR_CDP_VERSION_MISMATCH":
        "the module uses an unsupported interaction between different "
        "versions of CUDA Dynamic Parallelism",
    "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE":
        "the graph update was not performed because it included changes "
        "which violated constraints specific to instantiated graph update",
    "CUDA_ERROR_INVALID_CLUSTER_SIZE":
        "a kernel launch error has occurred due to cluster misconfiguration",
    "CUDA_ERROR_FUNCTION_NOT_LOADED":
        "the function handle is not loaded when calling an API that requires "
        "a loaded function",
    "CUDA_ERROR_INVALID_RESOURCE_TYPE":
        "one or more resources passed in are not valid resource types for "
        "the operation",
    "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION":
        "one or more resources are insufficient or non-applicable for the "
        "operation",
    "CUDA_ERROR_UNKNOWN": "unknown error",
}


def preprocess(cc, include, header="cuda.h"):
    cmd = list(cc) + ["-E", "-P", "-D__CUDA_API_VERSION_INTERNAL",
                      "-I", include, "-x", "c", "-"]
    res = subprocess.run(cmd, input="#include <%s>\n" % header, text=True,
                         stdout=subprocess.PIPE)
    if res.returncode != 0:
        sys.exit("gen_cuda_api.py: preprocessing %s failed: %s"
                 % (header, " ".join(cmd)))
    return res.stdout


def functions(text):
    """The names of the cu* functions declared at file scope."""
    flat = re.sub(r"\s+", " ", text)
    names = set()
    # A declaration runs from the end of the previous one (";" or a brace)
    # to its own ";": return type, name, parenthesised parameter list.
    for m in re.finditer(
            r"(?<=[;{}])\s*([^;{}()]*?)\b(cu[A-Za-z0-9_]+)\s*\(([^;{}]*?)\)"
            r"\s*;", flat):
        ret, name = m.group(1).strip(), m.group(2)
        if ret.startswith("typedef") or "(" in ret:
            continue
        if not re.search(r"\bCUresult\b", ret):
            sys.exit("gen_cuda_api.py: %s returns %r, not CUresult; the "
                     "stub generator needs teaching" % (name, ret))
        names.add(name)
    return sorted(names)


def errors(text):
    m = re.search(r"typedef enum cudaError_enum\s*\{(.*?)\}\s*CUresult\s*;",
                  text, re.S)
    if not m:
        sys.exit("gen_cuda_api.py: enum cudaError_enum not found in cuda.h")
    out = []
    for item in m.group(1).split(","):
        item = item.strip()
        if not item:
            continue
        em = re.fullmatch(r"(CUDA_[A-Z0-9_]+)\s*=\s*(\d+)", item)
        if not em:
            sys.exit("gen_cuda_api.py: cannot read CUresult entry %r" % item)
        out.append((int(em.group(2)), em.group(1)))
    return sorted(out)


def describe(name):
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    text = name[len("CUDA_ERROR_"):] if name.startswith("CUDA_ERROR_") else name
    return text.lower().replace("_", " ")


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_stubs(path, names):
    lines = [
        "/* Generated by client/gen_cuda_api.py from cuda.h: do not edit. */",
        "",
        "/* One weak definition for every function that the toolkit's cuda.h",
        " * declares, so that libcuda.so.1 exports every name the real driver",
        " * does and a program linked against any of them loads. A function",
        " * that gpupool implements is a strong definition in client/api_*.c,",
        " * which the linker prefers to the weak one here.",
        " *",
        " * Each stub is a static function, exported through a weak alias, and",
        " * gp__api_stubs[] lists the static functions' addresses in the order",
        " * of gp__api_names[] (procs.c). Where the exported name still resolves",
        " * to the address listed here, the function is not implemented:",
        " * cuGetProcAddress answers it as not found. A new strong definition",
        " * anywhere in the library changes that by itself.",
        " *",
        " * ABI: the stubs declare no parameters and return an int, the",
        " * CUresult's type. That is safe on every ABI this library targets",
        " * (x86-64 System V and AArch64 AAPCS64): arguments travel in",
        " * registers or in the caller's own stack area, the caller sets them up",
        " * and the caller releases them, so a callee that ignores them leaves",
        " * nothing behind; the result comes back in eax / w0 either way.",
        " * This file must not include cuda.h: its prototypes would clash with",
        " * these parameter-less definitions. */",
        "",
        "#include <stdatomic.h>",
        "#include <stdbool.h>",
        "",
        "#include \"stubs.h\"",
        "",
        "#define GP__NSTUBS %d" % len(names),
        "",
        "/* Set once a stub has said that it is not supported. */",
        "static atomic_bool said[GP__NSTUBS];",
        "",
        "/* The stub of entry |i|, and |name| as its exported, weak alias. */",
        "#define GP__STUB(i, name)                                             \\",
        "  static int gp__stub_##name(void) {                                  \\",
        "    return gp__unsupported(#name, &said[i]);                          \\",
        "  }                                                                   \\",
        "  extern __typeof__(gp__stub_##name) name                             \\",
        "      __attribute__((weak, visibility(\"default\"),                    \\",
        "                     alias(\"gp__stub_\" #name)));",
        "",
    ]
    for i, n in enumerate(names):
        lines.append("GP__STUB(%d, %s)" % (i, n))
    lines += [
        "",
        "const gp__api_fn gp__api_stubs[GP__NSTUBS] = {",
    ]
    for n in names:
        lines.append("  gp__stub_%s," % n)
    lines += ["};", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# Variants that cudaTypedefs.h implies but cuda.h does not declare, each
# with the reason it is accepted; a look-up at that version answers "not
# found" (no entry point has that ABI). The build stops on any other such
# name. Empty for CUDA 13.0.
MISSING_VARIANT_OK = {
    # "cuFoo_v3": "why cuda.h may lack it",
}

PT_SUFFIXES = ("_ptds", "_ptsz")


def typedef_versions(text):
    """{base: sorted versions} and {base: set of per-thread versions} from
    the PFN_<base>_v<version>[_ptds|_ptsz] typedefs."""
    versions = collections.defaultdict(set)
    pt_versions = collections.defaultdict(set)
    for m in re.finditer(r"\bPFN_(cu[A-Za-z0-9_]+?)_v(\d+)(_ptds|_ptsz)?\)",
                         text):
        base, ver, pt = m.group(1), int(m.group(2)), m.group(3)
        (pt_versions if pt else versions)[base].add(ver)
    return ({b: sorted(v) for b, v in versions.items()},
            {b: sorted(v) for b, v in pt_versions.items()})


def variant_name(base, k):
    """The entry point of the k-th (0-based) version of |base|."""
    return base if k == 0 else "%s_v%d" % (base, k + 1)


def proc_table(declared, text):
    """[(base, [(version, variant or None, pt_variant or None)])], sorted by
    base, checked against the functions cuda.h declares. A variant of None
    is one that MISSING_VARIANT_OK accepts as absent."""
    versions, pt_versions = typedef_versions(text)
    if len(versions) < 100:
        sys.exit("gen_cuda_api.py: only %d PFN_ typedefs found in "
                 "cudaTypedefs.h" % len(versions))
    declared = set(declared)
    problems = []
    accounted = set()
    table = {}
    for base, vers in versions.items():
        entries = []
        for k, ver in enumerate(vers):
            name = variant_name(base, k)
            if name not in declared:
                if name in MISSING_VARIANT_OK:
                    # Kept, so that later versions keep their variants.
                    entries.append((ver, None, None))
                else:
                    problems.append(
                        "cudaTypedefs.h lists version %d of %s as the "
                        "variant number %d, which would be %s, and cuda.h "
                        "does not declare it" % (ver, base, k + 1, name))
                continue
            pts = [name + s for s in PT_SUFFIXES if name + s in declared]
            if len(pts) > 1:
                problems.append("cuda.h declares both %s" % " and ".join(pts))
            accounted.add(name)
            accounted.update(pts)
            entries.append((ver, name, pts[0] if pts else None))
        if entries:
            table[base] = entries
    for base, vers in pt_versions.items():
        if base not in table or not any(e[2] for e in table[base] if e[1]):
            problems.append("cudaTypedefs.h has a per-thread typedef of %s "
                            "(version %s) but cuda.h declares no _ptds/_ptsz "
                            "form of any of its variants" % (base, vers))
    # Functions cuda.h declares that no typedef describes are looked up
    # under their own name, at any version: unless the name reads as the
    # variant of a base that cudaTypedefs.h describes differently.
    for name in sorted(declared - accounted):
        if name in accounted:  # the per-thread form of a name just added
            continue
        m = re.fullmatch(r"(cu[A-Za-z0-9]+?)(_v\d+)?(_ptds|_ptsz)?", name)
        base = m.group(1) if m else name
        if (m and (m.group(2) or m.group(3))) and base in versions:
            problems.append("cuda.h declares %s, which no version of %s in "
                            "cudaTypedefs.h accounts for" % (name, base))
            continue
        if name in table:
            problems.append("%s is both a typedef'd base and a plain name"
                            % name)
            continue
        pt = None
        for s in PT_SUFFIXES:
            if name + s in declared:
                pt = name + s
        table[name] = [(0, name, pt)]
        accounted.add(name)
        if pt:
            accounted.add(pt)
    left = declared - accounted
    if left:
        problems.append("cuda.h functions left out of the table: %s"
                        % ", ".join(sorted(left)))
    if problems:
        sys.exit("gen_cuda_api.py: cuda.h and cudaTypedefs.h disagree:\n  "
                 + "\n  ".join(problems))
    return sorted(table.items())


def write_procs(path, names, table):
    index = {n: i for i, n in enumerate(names)}
    none = "GP__PROC_NONE"
    lines = [
        "/* Generated by client/gen_cuda_api.py from cuda.h and",
        " * cudaTypedefs.h: do not edit. */",
        "",
        "/* cuGetProcAddress's table (see stubs.h). This file must not include",
        " * cuda.h: the entry points are declared here without parameters,",
        " * only their addresses are taken. They are declared with default",
        " * visibility, as they are defined: a hidden reference would make the",
        " * linker hide the definition too. */",
        "",
        "#include \"stubs.h\"",
        "",
    ]
    for n in names:
        lines.append("__attribute__((visibility(\"default\"))) int %s(void);"
                     % n)
    lines += ["", "const char *const gp__api_names[%d] = {" % len(names)]
    for n in names:
        lines.append("  \"%s\"," % n)
    lines += ["};", "", "const gp__api_fn gp__api_fns[%d] = {" % len(names)]
    for n in names:
        lines.append("  %s," % n)
    lines += ["};", "",
              "/* Each base name's variants, oldest first. */",
              "const struct gp__proc_variant gp__proc_variants[] = {"]
    first = []
    nvariants = 0
    for base, entries in table:
        first.append(nvariants)
        for ver, name, pt in entries:
            if name is None:
                lines.append("  {%d, %s, %s}, /* %s: no such variant */"
                             % (ver, none, none, base))
            else:
                lines.append("  {%d, %d, %s}, /* %s%s */"
                             % (ver, index[name],
                                index[pt] if pt else none, name,
                                ", " + pt if pt else ""))
            nvariants += 1
    lines += ["};", "",
              "/* Sorted by name (strcmp order), for a binary search. */",
              "const struct gp__proc gp__procs[] = {"]
    for (base, entries), f in zip(table, first):
        lines.append("  {\"%s\", %d, %d}," % (base, f, len(entries)))
    lines += ["};", "",
              "const int gp__nprocs = %d;" % len(table), ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_errors(path, errs):
    lines = [
        "/* Generated by client/gen_cuda_api.py from cuda.h: do not edit. */",
        "",
        "#include \"cuerrors.h\"",
        "",
        "/* Every CUresult in cuda.h, sorted by value. */",
        "const struct gp__cu_error gp__cu_errors[] = {",
    ]
    for val, name in errs:
        lines.append("  {%d, %s, %s}," % (val, c_string(name),
                                          c_string(describe(name))))
    lines += [
        "};",
        "",
        "const int gp__cu_nerrors = (int)(sizeof(gp__cu_errors) /",
        "                                 sizeof(gp__cu_errors[0]));",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--include", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--errors", required=True)
    ap.add_argument("--procs", required=True)
    args = ap.parse_args(argv[:cut])
    cc = argv[cut + 1:]
    if not cc:
        sys.exit("gen_cuda_api.py: no compiler given after --")
    text = preprocess(cc, args.include)
    names = functions(text)
    if len(names) < 100:
        sys.exit("gen_cuda_api.py: only %d functions found in cuda.h"
                 % len(names))
    if len(names) >= 0xFFFF:
        sys.exit("gen_cuda_api.py: %d functions: the proc table's 16-bit "
                 "indices are too small" % len(names))
    table = proc_table(names, preprocess(cc, args.include, "cudaTypedefs.h"))
    write_stubs(args.stubs, names)
    write_errors(args.errors, errors(text))
    write_procs(args.procs, names, table)


if __name__ == "__main__":
    main()
