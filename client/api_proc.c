/* cuGetProcAddress: how cudart and cuBLAS bind to the driver.
 *
 * cudart 13 dlopen()s libcuda.so.1, dlsym()s cuGetProcAddress_v2 alone and
 * asks it for every other entry point as (base name, CUDA version, flags).
 * The answer is the ABI variant that version means: the k-th version that
 * the toolkit's cudaTypedefs.h lists for the name is `name`, `name_v2`,
 * `name_v3`... and version V gets the newest one not newer than V. With
 * CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM it is that variant's _ptds
 * or _ptsz form where cuda.h has one. The table (procs.c) is generated from
 * the toolkit's headers by gen_cuda_api.py.
 *
 * A function gpupool does not implement still resolves to its generated
 * stub; such a look-up answers CUDA_ERROR_NOT_FOUND with
 * CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, as for a function the driver does
 * not have, and cudart carries on without it (a program fails only when it
 * needs it). Everything here is read-only tables: any thread, before cuInit
 * too, no lock.
 */
#include <stdio.h>
#include <string.h>

#include "cuapi.h"
#include "stubs.h"
#include "trace.h"

#define GP__PROC_FLAGS                                                      \
  ((cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM |                         \
                CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))

/* Why a look-up found nothing, for the trace. */
enum miss {
  MISS_NONE = 0,
  MISS_INVALID,         /* bad arguments */
  MISS_UNKNOWN,         /* no such base name */
  MISS_VERSION,         /* the name is newer than the version asked for */
  MISS_NOT_IMPLEMENTED, /* the variant is still the generated stub */
  MISS_NO_VARIANT,      /* cuda.h has no entry point for that version */
};

struct lookup {
  enum miss miss;
  int fn;             /* the variant chosen (found or not), or -1 */
  uint32_t needs;     /* MISS_VERSION: the name's first version */
  int status;         /* what *symbolStatus was set to, or -1 */
};

static const struct gp__proc *find_proc(const char *name) {
  int lo = 0, hi = gp__nprocs;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(name, gp__procs[mid].name);
    if (c == 0)
      return &gp__procs[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* Entry point |i| as the dynamic linker resolved it, or NULL while that is
 * the generated stub. The two addresses come from tables defined in two
 * other translation units (procs.c, stubs.c) and pass through an empty asm
 * that the compiler must assume changes them, so the comparison cannot be
 * folded at build time, with or without LTO: it compares the addresses the
 * loader produced. A strong definition of the name anywhere in the library
 * makes the two differ without any change here. */
static gp__api_fn resolved(int i) {
  gp__api_fn fn = gp__api_fns[i];
  gp__api_fn stub = gp__api_stubs[i];
  __asm__("" : "+r"(fn), "+r"(stub));
  return fn == stub ? NULL : fn;
}

static CUresult get_proc(const char *symbol, void **pfn, int version,
                         cuuint64_t flags,
                         CUdriverProcAddressQueryResult *status,
                         struct lookup *lk) {
  lk->miss = MISS_NONE;
  lk->fn = -1;
  lk->needs = 0;
  lk->status = -1;
  if (pfn != NULL)
    *pfn = NULL;
  if (symbol == NULL || pfn == NULL || (flags & ~GP__PROC_FLAGS) != 0) {
    lk->miss = MISS_INVALID;
    return CUDA_ERROR_INVALID_VALUE;
  }

  CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  CUresult r = CUDA_ERROR_NOT_FOUND;
  const struct gp__proc *p = find_proc(symbol);
  if (p == NULL) {
    /* cudart's first look-up, an empty name at version 0, ends here too,
     * as it does in the real driver. */
    lk->miss = MISS_UNKNOWN;
    goto out;
  }
  const struct gp__proc_variant *v = NULL;
  for (int k = p->n - 1; k >= 0; k--) {
    const struct gp__proc_variant *c = &gp__proc_variants[p->first + k];
    if ((long long)c->version <= (long long)version) {
      v = c;
      break;
    }
  }
  if (v == NULL) {
    lk->miss = MISS_VERSION;
    lk->needs = gp__proc_variants[p->first].version;
    st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
    goto out;
  }
  if (v->fn == GP__PROC_NONE) {
    lk->miss = MISS_NO_VARIANT;
    goto out;
  }
  /* Both stream flags set: the per-thread form wins. No per-thread form:
   * the plain variant, as the driver documents. */
  lk->fn = v->fn;
  if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) &&
      v->pt != GP__PROC_NONE)
    lk->fn = v->pt;
  gp__api_fn fn = resolved(lk->fn);
  if (fn == NULL) {
    lk->miss = MISS_NOT_IMPLEMENTED;
    goto out;
  }
  *pfn = (void *)fn;
  st = CU_GET_PROC_ADDRESS_SUCCESS;
  r = CUDA_SUCCESS;
out:
  if (status != NULL)
    *status = st;
  lk->status = (int)st;
  return r;
}

/* "(cuMemAlloc_v2)", "(not implemented: cuMemAllocManaged)"...: what the
 * trace says about the answer. Uses |buf|. */
static const char *describe(const struct lookup *lk, char *buf, size_t len) {
  switch (lk->miss) {
  case MISS_NONE:
    snprintf(buf, len, "(%s)", gp__api_names[lk->fn]);
    break;
  case MISS_INVALID:
    snprintf(buf, len, " (invalid arguments)");
    break;
  case MISS_UNKNOWN:
    snprintf(buf, len, " (unknown name)");
    break;
  case MISS_VERSION:
    snprintf(buf, len, " (needs version %u or later)", lk->needs);
    break;
  case MISS_NOT_IMPLEMENTED:
    snprintf(buf, len, " (not implemented: %s)", gp__api_names[lk->fn]);
    break;
  case MISS_NO_VARIANT:
    snprintf(buf, len, " (cuda.h has no variant for this version)");
    break;
  }
  return buf;
}

/* The trace's rendering of |symbol| (which may be NULL). */
#define GP__SYM_ARGS(s) (s) != NULL ? "\"" : "", (s) != NULL ? (s) : "NULL", \
                        (s) != NULL ? "\"" : ""

GP_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn,
                                    int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult
                                        *symbolStatus) {
  struct lookup lk;
  char note[160];
  CUresult r = get_proc(symbol, pfn, cudaVersion, flags, symbolStatus, &lk);
  GP_TRACE(r, "symbol=%s%.128s%s, version=%d, flags=%llu, pfn=%p%s, status=%d",
           GP__SYM_ARGS(symbol), cudaVersion, (unsigned long long)flags,
           pfn != NULL ? *pfn : NULL, describe(&lk, note, sizeof(note)),
           lk.status);
  return r;
}

/* The CUDA 11.3 form: the same look-up without the status. */
GP_API CUresult cuGetProcAddress(const char *symbol, void **pfn,
                                 int cudaVersion, cuuint64_t flags) {
  struct lookup lk;
  char note[160];
  CUresult r = get_proc(symbol, pfn, cudaVersion, flags, NULL, &lk);
  GP_TRACE(r, "symbol=%s%.128s%s, version=%d, flags=%llu, pfn=%p%s",
           GP__SYM_ARGS(symbol), cudaVersion, (unsigned long long)flags,
           pfn != NULL ? *pfn : NULL, describe(&lk, note, sizeof(note)));
  return r;
}
