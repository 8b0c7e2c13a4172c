/* Opening the CUDA driver and resolving its entry points (see cuda_be.h).
 *
 * Only cuGetProcAddress_v2 (or, from an older driver, cuGetProcAddress) is
 * found with dlsym; every other function comes through it, requested at
 * the version of the PFN typedef the backend calls it through. Asking for
 * "cuCtxCreate" at 3020 gives the function with PFN_cuCtxCreate_v3020's
 * signature (cuCtxCreate_v2) even from a driver whose newest cuCtxCreate is
 * _v4: the ABI never depends on how new the driver is.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cuda_be.h"
#include "log.h"

static const struct cub_symbol symbols[] = {
#define CUB_ROW(name, ver, essential) \
  {#name, ver, essential, offsetof(struct cub_driver, name)},
  CUB_DRIVER_FUNCS(CUB_ROW)
#undef CUB_ROW
};

const struct cub_symbol *cub_symbols(size_t *n) {
  *n = sizeof(symbols) / sizeof(symbols[0]);
  return symbols;
}

/* The older cuGetProcAddress (no status), behind the _v2 signature. */
static PFN_cuGetProcAddress_v11030 legacy_get_proc;

static CUresult CUDAAPI legacy_adapter(const char *symbol, void **pfn,
                                       int version, cuuint64_t flags,
                                       CUdriverProcAddressQueryResult *st) {
  CUresult r = legacy_get_proc(symbol, pfn, version, flags);

  if (st)
    *st = r == CUDA_SUCCESS ? CU_GET_PROC_ADDRESS_SUCCESS
                            : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  return r;
}

int cub_driver_resolve(struct cub_driver *d,
                       PFN_cuGetProcAddress_v12000 get_proc, int version,
                       const char **missing) {
  size_t i;
  int nmissing = 0;

  *missing = NULL;
  for (i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
    const struct cub_symbol *s = &symbols[i];
    void **slot = (void **)(void *)((char *)d + s->offset);
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    void *fn = NULL;

    *slot = NULL;
    /* A function newer than the driver: it cannot have it. */
    if (s->version <= version &&
        get_proc(s->name, &fn, s->version,
                 CU_GET_PROC_ADDRESS_LEGACY_STREAM, &st) == CUDA_SUCCESS &&
        st == CU_GET_PROC_ADDRESS_SUCCESS)
      *slot = fn;
    if (!*slot && s->essential) {
      if (!*missing)
        *missing = s->name;
      nmissing++;
    }
    if (!*slot && !s->essential)
      gp__debug("cuda backend: the driver (%d) has no %s at version %d: "
                "operations needing it answer CUDA_ERROR_NOT_SUPPORTED",
                version, s->name, s->version);
  }
  return nmissing;
}

int cub_driver_open(struct cub_driver *d, const char *path, char *why,
                    size_t whylen) {
  PFN_cuGetProcAddress_v12000 get_proc;
  PFN_cuDriverGetVersion_v2020 get_version = NULL;
  CUdriverProcAddressQueryResult st;
  const char *lib = path && *path ? path : "libcuda.so.1";
  const char *missing;
  int r, n;

  memset(d, 0, sizeof(*d));
  d->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!d->lib) {
    const char *e = dlerror();
    snprintf(why, whylen, "cannot open the CUDA driver '%s': %s", lib,
             e ? e : "?");
    return CUDA_ERROR_NOT_FOUND;
  }
  get_proc = (PFN_cuGetProcAddress_v12000)dlsym(d->lib, "cuGetProcAddress_v2");
  if (!get_proc) {
    legacy_get_proc =
        (PFN_cuGetProcAddress_v11030)dlsym(d->lib, "cuGetProcAddress");
    if (legacy_get_proc)
      get_proc = legacy_adapter;
  }
  if (!get_proc) {
    snprintf(why, whylen, "'%s' has neither cuGetProcAddress_v2 nor "
             "cuGetProcAddress: not a CUDA driver of 11.3 or later", lib);
    cub_driver_close(d);
    return CUDA_ERROR_NOT_FOUND;
  }
  /* The version first: it says which entry points can exist. */
  if (get_proc("cuDriverGetVersion", (void **)&get_version, 2020,
               CU_GET_PROC_ADDRESS_LEGACY_STREAM, &st) != CUDA_SUCCESS ||
      !get_version) {
    get_version = (PFN_cuDriverGetVersion_v2020)dlsym(d->lib,
                                                       "cuDriverGetVersion");
  }
  if (!get_version || (r = get_version(&d->version)) != CUDA_SUCCESS) {
    snprintf(why, whylen, "'%s': cuDriverGetVersion failed", lib);
    cub_driver_close(d);
    return CUDA_ERROR_NOT_FOUND;
  }
  n = cub_driver_resolve(d, get_proc, d->version, &missing);
  if (n > 0) {
    snprintf(why, whylen, "'%s' (driver version %d) lacks %d essential "
             "entry point%s, first %s", lib, d->version, n, n == 1 ? "" : "s",
             missing);
    cub_driver_close(d);
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  r = d->cuInit(0);
  if (r != CUDA_SUCCESS) {
    snprintf(why, whylen, "'%s': cuInit(0) failed: %s (%d)", lib,
             cub_error_name(d, r), r);
    cub_driver_close(d);
    return r;
  }
  return CUDA_SUCCESS;
}

void cub_driver_close(struct cub_driver *d) {
  /* Never dlclose: the driver's threads and atexit handlers may still
   * reference its code until the process ends. */
  d->lib = NULL;
}

const char *cub_error_name(const struct cub_driver *d, int r) {
  const char *s = NULL;

  if (d->cuGetErrorName &&
      d->cuGetErrorName((CUresult)r, &s) == CUDA_SUCCESS && s)
    return s;
  return "CUDA error";
}
