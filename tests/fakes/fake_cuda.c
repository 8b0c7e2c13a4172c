/* A test double for an older CUDA driver, built only for gpupool's tests
 * (build/tests/fakes/libfakecuda122.so): it is not a driver and runs
 * nothing. It stands for a 12.2 driver the way gpupool-server's device
 * probe and cuda backend meet one: cuDriverGetVersion says 12020, and
 * cuGetProcAddress_v2 refuses any version above that with
 * CUDA_ERROR_INVALID_VALUE (CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT), as
 * NVIDIA documents. It shows one device, "Fake 12.2 GPU", UUID
 * GPU-12021202-1202-1202-1202-120212021202, 8 GiB. Functions newer than 12.2
 * (cuFuncGetParamInfo, ...) are not found; every other name resolves to a
 * function that answers CUDA_ERROR_NOT_SUPPORTED.
 *
 * With GP_FAKE_CUDA_HANG_AT_EXIT set, cuInit registers an exit handler
 * that never returns: a driver whose process hangs on its way out. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_VERSION 12020

static void hang(void) {
  for (;;)
    pause();
}

static CUresult fake_init(unsigned flags) {
  if (flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (getenv("GP_FAKE_CUDA_HANG_AT_EXIT"))
    atexit(hang);
  return CUDA_SUCCESS;
}

static CUresult fake_version(int *v) {
  if (!v)
    return CUDA_ERROR_INVALID_VALUE;
  *v = FAKE_VERSION;
  return CUDA_SUCCESS;
}

static CUresult fake_count(int *n) {
  if (!n)
    return CUDA_ERROR_INVALID_VALUE;
  *n = 1;
  return CUDA_SUCCESS;
}

static CUresult fake_get(CUdevice *d, int ordinal) {
  if (!d || ordinal != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}

static CUresult fake_name(char *name, int len, CUdevice d) {
  static const char n[] = "Fake 12.2 GPU";

  if (!name || len < (int)sizeof(n) || d != 0)
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(name, n, sizeof(n));
  return CUDA_SUCCESS;
}

static CUresult fake_uuid(CUuuid *u, CUdevice d) {
  static const unsigned char b[16] = {0x12, 0x02, 0x12, 0x02, 0x12, 0x02,
                                      0x12, 0x02, 0x12, 0x02, 0x12, 0x02,
                                      0x12, 0x02, 0x12, 0x02};

  if (!u || d != 0)
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(u->bytes, b, sizeof(b));
  return CUDA_SUCCESS;
}

static CUresult fake_total(size_t *bytes, CUdevice d) {
  if (!bytes || d != 0)
    return CUDA_ERROR_INVALID_VALUE;
  *bytes = (size_t)8 << 30;
  return CUDA_SUCCESS;
}

static CUresult fake_unsupported(void) { return CUDA_ERROR_NOT_SUPPORTED; }

static const struct {
  const char *name;
  void *fn;
} fns[] = {
  {"cuInit", (void *)fake_init},
  {"cuDriverGetVersion", (void *)fake_version},
  {"cuDeviceGetCount", (void *)fake_count},
  {"cuDeviceGet", (void *)fake_get},
  {"cuDeviceGetName", (void *)fake_name},
  {"cuDeviceGetUuid", (void *)fake_uuid},
  {"cuDeviceTotalMem", (void *)fake_total},
};

/* Newer than 12.2: not in this driver at any version. */
static const char *const newer[] = {
  "cuFuncGetName", "cuFuncGetParamInfo", "cuModuleGetFunctionCount",
  "cuModuleEnumerateFunctions",
};

FAKE_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn,
                                         int version, cuuint64_t flags,
                                         CUdriverProcAddressQueryResult *st) {
  size_t i;

  (void)flags;
  if (!symbol || !pfn)
    return CUDA_ERROR_INVALID_VALUE;
  *pfn = NULL;
  if (version > FAKE_VERSION) {
    if (st)
      *st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
    return CUDA_ERROR_INVALID_VALUE;
  }
  for (i = 0; i < sizeof(newer) / sizeof(newer[0]); i++) {
    if (strcmp(symbol, newer[i]) == 0) {
      if (st)
        *st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
      return CUDA_ERROR_NOT_FOUND;
    }
  }
  *pfn = (void *)fake_unsupported;
  for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
    if (strcmp(symbol, fns[i].name) == 0)
      *pfn = fns[i].fn;
  if (st)
    *st = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}
