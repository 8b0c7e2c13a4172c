/* Unit tests of the cuda backend's parts that need no GPU
 * (server/backend/cuda/): splitting a module image into fatbins, the
 * version-2 wrapper rebuilt from them, the entry-point table and its
 * resolution through cuGetProcAddress (also against gpupool's own
 * libcuda.so.1, the relay's driver), and the stdout capture of device
 * printf output. */
#include <check.h>
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/cuda/cuda_be.h"
#include "gpupool/errors.h"

/* ---- images --------------------------------------------------------------- */

/* A minimal fatbin of |entries| bytes of (meaningless) entries at |p|.
 * Returns its size. */
static size_t put_fatbin(uint8_t *p, uint64_t entries, uint8_t fill) {
  uint32_t magic = CUB_FATBIN_MAGIC, vh = 1u | (16u << 16);

  memcpy(p, &magic, 4);
  memcpy(p + 4, &vh, 4);
  memcpy(p + 8, &entries, 8);
  memset(p + 16, fill, entries);
  return 16 + entries;
}

START_TEST(test_cuda_backend_image_kinds) {
  static const char ptx[] = ".version 9.0\n.target sm_75\n";
  uint8_t elf[64] = {0x7f, 'E', 'L', 'F'};
  struct cub_image im;
  char why[128];

  ck_assert_int_eq(cub_image_split((const uint8_t *)ptx, sizeof(ptx), &im,
                                   why, sizeof(why)), CUDA_SUCCESS);
  ck_assert_int_eq(im.kind, CUB_IMAGE_PTX);
  cub_image_free(&im);
  ck_assert_int_eq(cub_image_split(elf, sizeof(elf), &im, why, sizeof(why)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(im.kind, CUB_IMAGE_ELF);
  cub_image_free(&im);
  /* A truncated ELF header. */
  ck_assert_int_eq(cub_image_split(elf, 20, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_ptr_nonnull(strstr(why, "truncated"));
  ck_assert_int_eq(cub_image_split(elf, 0, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
}
END_TEST

START_TEST(test_cuda_backend_image_one_fatbin) {
  uint8_t buf[256];
  struct cub_image im;
  char why[128];
  size_t n = put_fatbin(buf, 40, 0xab);

  ck_assert_int_eq(cub_image_split(buf, n, &im, why, sizeof(why)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(im.kind, CUB_IMAGE_FATBINS);
  ck_assert_uint_eq(im.n, 1);
  ck_assert_uint_eq(im.offsets[0], 0);
  ck_assert_uint_eq(im.sizes[0], 56);
  cub_image_free(&im);
  /* Fewer than 8 zero bytes after it are padding. */
  memset(buf + n, 0, 7);
  ck_assert_int_eq(cub_image_split(buf, n + 7, &im, why, sizeof(why)),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(im.n, 1);
  cub_image_free(&im);
  /* Entries running past the image's end. */
  ck_assert_int_eq(cub_image_split(buf, n - 1, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_ptr_null(im.offsets);
  /* A header that is not a fatbin's (wrong header size). */
  buf[6] = 17;
  ck_assert_int_eq(cub_image_split(buf, n, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  buf[6] = 16;
  /* Stray bytes after the fatbin. */
  memset(buf + n, 0x55, 3);
  ck_assert_int_eq(cub_image_split(buf, n + 3, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_ptr_nonnull(strstr(why, "stray"));
}
END_TEST

START_TEST(test_cuda_backend_image_several_fatbins) {
  uint8_t *buf = calloc(1, 4096), *w;
  struct cub_image im;
  const void *const *list;
  uint64_t first, listp;
  uint32_t magic, version;
  char why[128];
  size_t pos = 0, offs[3];

  /* Sizes 16 + 13 (not a multiple of 8), 16 + 8, 16 + 100, each at the
   * next 8-byte boundary, as the client sends a wrapper's fatbins. */
  offs[0] = pos;
  pos += put_fatbin(buf + pos, 13, 1);
  pos = (pos + 7) & ~(size_t)7;
  offs[1] = pos;
  pos += put_fatbin(buf + pos, 8, 2);
  pos = (pos + 7) & ~(size_t)7;
  offs[2] = pos;
  pos += put_fatbin(buf + pos, 100, 3);
  ck_assert_int_eq(cub_image_split(buf, pos, &im, why, sizeof(why)),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(im.n, 3);
  for (int i = 0; i < 3; i++)
    ck_assert_uint_eq(im.offsets[i], offs[i]);
  ck_assert_uint_eq(im.sizes[0], 29);
  ck_assert_uint_eq(im.sizes[2], 116);

  w = cub_wrapper_build(buf, &im);
  ck_assert_ptr_nonnull(w);
  memcpy(&magic, w, 4);
  memcpy(&version, w + 4, 4);
  memcpy(&first, w + 8, 8);
  memcpy(&listp, w + 16, 8);
  ck_assert_uint_eq(magic, 0x466243B1u);
  ck_assert_uint_eq(version, 2);
  ck_assert_ptr_eq((void *)(uintptr_t)first, buf);
  list = (const void *const *)(uintptr_t)listp;
  ck_assert_ptr_eq(list[0], buf + offs[1]);
  ck_assert_ptr_eq(list[1], buf + offs[2]);
  ck_assert_ptr_null(list[2]);
  free(w);
  cub_image_free(&im);

  /* Non-zero padding between two fatbins. */
  buf[offs[0] + 29] = 9;
  ck_assert_int_eq(cub_image_split(buf, pos, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  buf[offs[0] + 29] = 0;
  /* The second one cut short. */
  ck_assert_int_eq(cub_image_split(buf, offs[1] + 20, &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  /* One fatbin: no wrapper is built. */
  ck_assert_int_eq(cub_image_split(buf, 29, &im, why, sizeof(why)),
                   CUDA_SUCCESS);
  ck_assert_ptr_null(cub_wrapper_build(buf, &im));
  cub_image_free(&im);
  free(buf);
}
END_TEST

START_TEST(test_cuda_backend_image_wrapper_refused) {
  uint8_t buf[24] = {0};
  uint32_t magic = CUB_WRAPPER_MAGIC;
  struct cub_image im;
  char why[128];

  memcpy(buf, &magic, 4);
  ck_assert_int_eq(cub_image_split(buf, sizeof(buf), &im, why, sizeof(why)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_ptr_nonnull(strstr(why, "wrapper"));
}
END_TEST

/* ---- the symbol table ----------------------------------------------------- */

#define MAX_CALLS 256
static struct {
  char name[64];
  int version;
  cuuint64_t flags;
} calls[MAX_CALLS];
static int ncalls;
static const char *refuse; /* a name the fake driver lacks */

static void fake_fn(void) {}

static CUresult CUDAAPI fake_get_proc(const char *symbol, void **pfn,
                                      int version, cuuint64_t flags,
                                      CUdriverProcAddressQueryResult *st) {
  if (ncalls < MAX_CALLS) {
    snprintf(calls[ncalls].name, sizeof(calls[ncalls].name), "%s", symbol);
    calls[ncalls].version = version;
    calls[ncalls].flags = flags;
    ncalls++;
  }
  if (refuse && strcmp(symbol, refuse) == 0) {
    *pfn = NULL;
    *st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
  }
  *pfn = (void *)fake_fn;
  *st = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}

START_TEST(test_cuda_backend_symbols_versions) {
  struct cub_driver d;
  const struct cub_symbol *t;
  const char *missing = NULL;
  size_t n, i, j;

  t = cub_symbols(&n);
  ck_assert_uint_gt(n, 40);
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      ck_assert_str_ne(t[i].name, t[j].name);
  /* The versions are those of the typedefs the table calls through. */
  for (i = 0; i < n; i++) {
    if (strcmp(t[i].name, "cuCtxCreate") == 0)
      ck_assert_int_eq(t[i].version, 3020);
    if (strcmp(t[i].name, "cuMemAlloc") == 0)
      ck_assert_int_eq(t[i].version, 3020);
    if (strcmp(t[i].name, "cuModuleLoadDataEx") == 0)
      ck_assert_int_eq(t[i].version, 2010);
    if (strcmp(t[i].name, "cuFuncGetParamInfo") == 0)
      ck_assert_int_eq(t[i].version, 12040);
  }
  ncalls = 0;
  refuse = NULL;
  ck_assert_int_eq(cub_driver_resolve(&d, fake_get_proc, 13000, &missing), 0);
  ck_assert_ptr_null(missing);
  ck_assert_int_eq(ncalls, (int)n);
  for (i = 0; i < n; i++) {
    ck_assert_str_eq(calls[i].name, t[i].name);
    ck_assert_int_eq(calls[i].version, t[i].version);
    ck_assert_uint_eq(calls[i].flags, CU_GET_PROC_ADDRESS_LEGACY_STREAM);
    ck_assert_ptr_eq(*(void **)(void *)((char *)&d + t[i].offset),
                     (void *)fake_fn);
  }
}
END_TEST

START_TEST(test_cuda_backend_symbols_old_driver) {
  struct cub_driver d;
  const char *missing = NULL;

  /* A 12.0 driver: the 12.3/12.4 functions are not asked for, and are
   * NULL; none of them is essential. */
  ncalls = 0;
  refuse = NULL;
  ck_assert_int_eq(cub_driver_resolve(&d, fake_get_proc, 12000, &missing),
                   0);
  ck_assert_ptr_null(d.cuFuncGetParamInfo);
  ck_assert_ptr_null(d.cuModuleEnumerateFunctions);
  ck_assert_ptr_null(d.cuFuncGetName);
  ck_assert_ptr_nonnull(d.cuLaunchKernel);
  for (int i = 0; i < ncalls; i++)
    ck_assert_int_le(calls[i].version, 12000);
  /* An essential function missing is counted and named. */
  refuse = "cuLaunchKernel";
  ck_assert_int_eq(cub_driver_resolve(&d, fake_get_proc, 13000, &missing),
                   1);
  ck_assert_str_eq(missing, "cuLaunchKernel");
  ck_assert_ptr_null(d.cuLaunchKernel);
  /* A non-essential one is only NULL. */
  refuse = "cuMemAllocPitch";
  ck_assert_int_eq(cub_driver_resolve(&d, fake_get_proc, 13000, &missing),
                   0);
  ck_assert_ptr_null(d.cuMemAllocPitch);
  refuse = NULL;
}
END_TEST

/* A 12.2 driver: as NVIDIA documents for cuGetProcAddress, a version
 * above the driver's own is refused with CUDA_ERROR_INVALID_VALUE. */
#define OLD_DRIVER 12020
static CUresult CUDAAPI old_get_proc(const char *symbol, void **pfn,
                                     int version, cuuint64_t flags,
                                     CUdriverProcAddressQueryResult *st) {
  (void)flags;
  *pfn = NULL;
  if (version > OLD_DRIVER) {
    *st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
    return CUDA_ERROR_INVALID_VALUE;
  }
  /* The 12.3 and 12.4 functions do not exist in it at any version. */
  if (strcmp(symbol, "cuFuncGetName") == 0 ||
      strcmp(symbol, "cuFuncGetParamInfo") == 0 ||
      strcmp(symbol, "cuModuleGetFunctionCount") == 0 ||
      strcmp(symbol, "cuModuleEnumerateFunctions") == 0) {
    *st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
  }
  *pfn = (void *)fake_fn;
  *st = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}

/* The probe (server/probe.c) resolves its functions through this table:
 * from a 12.2 driver each of them, and every essential function, still
 * resolves, where asking at the headers' CUDA_VERSION is refused. */
START_TEST(test_cuda_backend_symbols_12_2_driver) {
  static const char *const probe_fns[] = {
    "cuInit", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName",
    "cuDeviceGetUuid", "cuDeviceTotalMem",
  };
  CUdriverProcAddressQueryResult st;
  struct cub_driver d;
  const struct cub_symbol *t;
  const char *missing = NULL;
  void *fn = NULL;
  size_t n, i, j;

  ck_assert_int_gt(CUDA_VERSION, OLD_DRIVER);
  ck_assert_int_eq(old_get_proc("cuInit", &fn, CUDA_VERSION, 0, &st),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(cub_driver_resolve(&d, old_get_proc, OLD_DRIVER,
                                      &missing), 0);
  ck_assert_ptr_null(missing);
  t = cub_symbols(&n);
  for (i = 0; i < n; i++) {
    void *p = *(void **)(void *)((char *)&d + t[i].offset);
    if (t[i].essential)
      ck_assert_msg(p == (void *)fake_fn, "%s not resolved", t[i].name);
  }
  for (j = 0; j < sizeof(probe_fns) / sizeof(probe_fns[0]); j++) {
    for (i = 0; i < n && strcmp(t[i].name, probe_fns[j]) != 0; i++)
      ;
    ck_assert_msg(i < n, "%s is not in the table", probe_fns[j]);
    ck_assert_int_le(t[i].version, OLD_DRIVER);
    ck_assert_ptr_eq(*(void **)(void *)((char *)&d + t[i].offset),
                     (void *)fake_fn);
  }
  /* The typedef versions the probe calls through: cuDeviceGetUuid_v2
   * (MIG devices' own UUIDs) and cuDeviceTotalMem_v2 (size_t). */
  ck_assert_ptr_eq((void *)d.cuDeviceGetUuid, (void *)fake_fn);
  for (i = 0; i < n; i++) {
    if (strcmp(t[i].name, "cuDeviceGetUuid") == 0)
      ck_assert_int_eq(t[i].version, 11040);
    if (strcmp(t[i].name, "cuDeviceTotalMem") == 0)
      ck_assert_int_eq(t[i].version, 3020);
  }
  /* The kernels' 12.3/12.4 functions are missing, not fatal. */
  ck_assert_ptr_null(d.cuFuncGetParamInfo);
  ck_assert_ptr_null(d.cuModuleEnumerateFunctions);
}
END_TEST

/* gpupool's client library (the relay's driver) has every entry point the
 * backend uses, at the versions it asks for. */
START_TEST(test_cuda_backend_symbols_client_lib) {
  const char *path = getenv("GP_TEST_CLIENT_LIB");
  PFN_cuGetProcAddress_v12000 gp;
  struct cub_driver d;
  const struct cub_symbol *t;
  const char *missing = NULL;
  void *lib;
  size_t n, i;

  ck_assert_ptr_nonnull(path);
  lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(lib != NULL, "dlopen %s: %s", path, dlerror());
  gp = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
  ck_assert_ptr_nonnull(gp);
  ck_assert_int_eq(cub_driver_resolve(&d, gp, 13000, &missing), 0);
  t = cub_symbols(&n);
  for (i = 0; i < n; i++)
    ck_assert_msg(*(void **)(void *)((char *)&d + t[i].offset) != NULL,
                  "%s@%d missing", t[i].name, t[i].version);
  /* The variants are the ones the typedefs describe. */
  ck_assert_ptr_eq((void *)d.cuCtxCreate, dlsym(lib, "cuCtxCreate_v2"));
  ck_assert_ptr_eq((void *)d.cuMemAlloc, dlsym(lib, "cuMemAlloc_v2"));
  ck_assert_ptr_eq((void *)d.cuCtxDestroy, dlsym(lib, "cuCtxDestroy_v2"));
  ck_assert_ptr_eq((void *)d.cuDevicePrimaryCtxRelease,
                   dlsym(lib, "cuDevicePrimaryCtxRelease_v2"));
  ck_assert_ptr_eq((void *)d.cuEventElapsedTime,
                   dlsym(lib, "cuEventElapsedTime"));
}
END_TEST

START_TEST(test_cuda_backend_driver_open_missing) {
  struct cub_driver d;
  char why[256] = "";

  ck_assert_int_eq(cub_driver_open(&d, "/nonexistent/libcuda.so.1", why,
                                   sizeof(why)), CUDA_ERROR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(why, "/nonexistent/libcuda.so.1"));
  /* A library that is not a driver. */
  ck_assert_int_eq(cub_driver_open(&d, "libm.so.6", why, sizeof(why)),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(why, "cuGetProcAddress"));
}
END_TEST

/* ---- printf capture ------------------------------------------------------- */

START_TEST(test_cuda_backend_output_capture) {
  struct cub_output o;
  const void *data;
  size_t len, total = 0;
  uint64_t dropped = 0;
  char *big;

  struct stat before, after;

  ck_assert_int_eq(fstat(1, &before), 0);
  ck_assert_int_eq(cub_output_init(&o), CUDA_SUCCESS);
  /* Captured: fd 1 is the pipe now. */
  ck_assert_int_eq(fstat(1, &after), 0);
  ck_assert(after.st_dev != before.st_dev || after.st_ino != before.st_ino);
  printf("hello from the device\n");
  cub_output_peek(&o, &data, &len, &dropped);
  ck_assert_uint_eq(len, 22);
  ck_assert_int_eq(memcmp(data, "hello from the device\n", 22), 0);
  ck_assert_uint_eq(dropped, 0);
  cub_output_consumed(&o);
  cub_output_peek(&o, &data, &len, &dropped);
  ck_assert_uint_eq(len, 0);
  /* More than the buffer holds: the rest is counted as dropped. The
   * reader thread drains the pipe meanwhile, so writing never blocks. */
  big = malloc(CUB_OUTPUT_MAX / 4);
  memset(big, 'x', CUB_OUTPUT_MAX / 4);
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq(write(1, big, CUB_OUTPUT_MAX / 4),
                     (ssize_t)(CUB_OUTPUT_MAX / 4));
  cub_output_peek(&o, &data, &len, &dropped);
  total = len + dropped;
  ck_assert_uint_eq(len, CUB_OUTPUT_MAX);
  ck_assert_uint_eq(total, 6 * (CUB_OUTPUT_MAX / 4));
  cub_output_consumed(&o);
  free(big);
  cub_output_free(&o);
  /* fd 1 is back: the same file as before, not the pipe. */
  ck_assert_int_eq(fstat(1, &after), 0);
  ck_assert_uint_eq(after.st_dev, before.st_dev);
  ck_assert_uint_eq(after.st_ino, before.st_ino);
}
END_TEST

/* A server started with fd 1 closed: pipe2 would hand out fd 1 itself as
 * the read end. Capture still works, and fd 1 is closed again after. */
START_TEST(test_cuda_backend_output_stdout_closed) {
  struct cub_output o;
  const void *data;
  size_t len;
  uint64_t dropped;
  int n;

  fflush(stdout);
  ck_assert_int_eq(close(1), 0);
  ck_assert_int_eq(cub_output_init(&o), CUDA_SUCCESS);
  ck_assert_int_gt(o.rfd, 2);
  /* With the read end on fd 1 these bytes went nowhere the reader looks
   * (and a pipe's worth of them blocked the worker for ever). */
  for (n = 0; n < 64; n++)
    ck_assert_int_eq(write(1, "0123456789abcdef", 16), 16);
  n = printf("device printf\n");
  ck_assert_int_eq(n, 14);
  cub_output_peek(&o, &data, &len, &dropped);
  ck_assert_uint_eq(len, 64 * 16 + 14);
  ck_assert_int_eq(memcmp((const char *)data + 64 * 16, "device printf\n",
                          14), 0);
  ck_assert_uint_eq(dropped, 0);
  cub_output_consumed(&o);
  cub_output_free(&o);
  ck_assert_int_eq(fcntl(1, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* ---- operations on a stand-in driver --------------------------------------
 *
 * A session whose driver table points at the functions below: two
 * contexts, A owning device addresses [1 MiB, 65 MiB) and B owning
 * [128 MiB, 192 MiB). Each call records the context current when it ran. */

#define CTX_A ((CUcontext)(uintptr_t)0xa0)
#define CTX_B ((CUcontext)(uintptr_t)0xb0)
#define A_BASE ((CUdeviceptr)1 << 20)
#define B_BASE ((CUdeviceptr)128 << 20)
#define SPAN ((size_t)64 << 20)

static struct {
  CUcontext cur;
  CUcontext copy_ctx;       /* current at the last copy or memset */
  int host_allocs, host_frees, host_fail;   /* host_fail: fail that many */
  unsigned host_flags;
  int events_created, events_destroyed;
  CUcontext event_ctx;      /* where the last event was created */
  int dtoh_calls, dtoh_fail_at;              /* fail the n-th (1-based) */
  int drains;
  size_t drained;
  bool data_ok;
} fk;

static CUresult fk_set_current(CUcontext h) {
  fk.cur = h;
  return CUDA_SUCCESS;
}

static CUresult fk_pointer_attr(void *data, CUpointer_attribute a,
                                CUdeviceptr p) {
  CUcontext h = NULL;

  if (a != CU_POINTER_ATTRIBUTE_CONTEXT)
    return CUDA_ERROR_INVALID_VALUE;
  if (p >= A_BASE && p < A_BASE + SPAN)
    h = CTX_A;
  else if (p >= B_BASE && p < B_BASE + SPAN)
    h = CTX_B;
  if (!h)
    return CUDA_ERROR_INVALID_VALUE;
  *(CUcontext *)data = h;
  return CUDA_SUCCESS;
}

static CUresult fk_range(CUdeviceptr *base, size_t *size, CUdeviceptr p) {
  if (p >= A_BASE && p < A_BASE + SPAN)
    *base = A_BASE;
  else if (p >= B_BASE && p < B_BASE + SPAN)
    *base = B_BASE;
  else
    return CUDA_ERROR_NOT_FOUND;
  *size = SPAN;
  return CUDA_SUCCESS;
}

static CUresult fk_htod(CUdeviceptr d, const void *h, size_t n, CUstream s) {
  (void)d, (void)h, (void)n, (void)s;
  fk.copy_ctx = fk.cur;
  return CUDA_SUCCESS;
}

/* Fills |h| with the low byte of each source address. */
static CUresult fk_dtoh(void *h, CUdeviceptr d, size_t n, CUstream s) {
  (void)s;
  fk.copy_ctx = fk.cur;
  if (++fk.dtoh_calls == fk.dtoh_fail_at)
    return CUDA_ERROR_ILLEGAL_ADDRESS;
  for (size_t i = 0; i < n; i++)
    ((uint8_t *)h)[i] = (uint8_t)(d + i);
  return CUDA_SUCCESS;
}

static CUresult fk_memset8(CUdeviceptr d, unsigned char v, size_t n,
                           CUstream s) {
  (void)d, (void)v, (void)n, (void)s;
  fk.copy_ctx = fk.cur;
  return CUDA_SUCCESS;
}

static CUresult fk_ok_stream(CUstream s) {
  (void)s;
  return CUDA_SUCCESS;
}

static CUresult fk_host_alloc(void **p, size_t n, unsigned flags) {
  if (fk.host_fail > 0) {
    fk.host_fail--;
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *p = malloc(n);
  fk.host_allocs++;
  fk.host_flags = flags;
  return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult fk_free_host(void *p) {
  free(p);
  fk.host_frees++;
  return CUDA_SUCCESS;
}

static CUresult fk_event_create(CUevent *e, unsigned flags) {
  (void)flags;
  *e = (CUevent)(uintptr_t)(0x1000 + fk.events_created++);
  fk.event_ctx = fk.cur;
  return CUDA_SUCCESS;
}

static CUresult fk_event_destroy(CUevent e) {
  (void)e;
  fk.events_destroyed++;
  return CUDA_SUCCESS;
}

static CUresult fk_event_record(CUevent e, CUstream s) {
  (void)e, (void)s;
  return fk.cur == fk.event_ctx ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult fk_event_sync(CUevent e) {
  (void)e;
  return CUDA_SUCCESS;
}

static struct cub_ctx fk_ctx_a = {.id = 1, .h = CTX_A};
static struct cub_ctx fk_ctx_b = {.id = 2, .h = CTX_B};

static struct gp_backend *fake_session(void) {
  struct gp_backend *b = calloc(1, sizeof(*b));

  ck_assert_ptr_nonnull(b);
  memset(&fk, 0, sizeof(fk));
  b->drv.cuCtxSetCurrent = fk_set_current;
  b->drv.cuPointerGetAttribute = fk_pointer_attr;
  b->drv.cuMemGetAddressRange = fk_range;
  b->drv.cuMemcpyHtoDAsync = fk_htod;
  b->drv.cuMemcpyDtoHAsync = fk_dtoh;
  b->drv.cuMemsetD8Async = fk_memset8;
  b->drv.cuStreamSynchronize = fk_ok_stream;
  b->drv.cuMemHostAlloc = fk_host_alloc;
  b->drv.cuMemFreeHost = fk_free_host;
  b->drv.cuEventCreate = fk_event_create;
  b->drv.cuEventDestroy = fk_event_destroy;
  b->drv.cuEventRecord = fk_event_record;
  b->drv.cuEventSynchronize = fk_event_sync;
  gp__idmap_init(&b->ctxs, CUB_MAX_CTXS);
  gp__idmap_init(&b->streams, CUB_MAX_STREAMS);
  ck_assert_int_eq(gp__idmap_put(&b->ctxs, 1, &fk_ctx_a), 0);
  ck_assert_int_eq(gp__idmap_put(&b->ctxs, 2, &fk_ctx_b), 0);
  return b;
}

static void fake_session_end(struct gp_backend *b) {
  cub_stage_free(b);
  gp__idmap_free(&b->ctxs);
  gp__idmap_free(&b->streams);
  free(b);
}

static void enter(struct gp_backend *b, CUcontext h) {
  ck_assert_int_eq(cub_make_current(b, h), CUDA_SUCCESS);
}

static int fill_any(void *arg, void *buf, size_t len) {
  (void)arg;
  if (buf)
    memset(buf, 0x5a, len);
  return 0;
}

/* Checks each byte is the low byte of its source address (|arg| points at
 * the next source address). */
static int drain_check(void *arg, const void *buf, size_t len) {
  uint64_t *at = arg;

  fk.drains++;
  fk.drained += len;
  for (size_t i = 0; i < len; i++)
    if (((const uint8_t *)buf)[i] != (uint8_t)(*at + i))
      fk.data_ok = false;
  *at += len;
  return 0;
}

/* A copy or memset on stream 0 names no context: it runs in the context
 * owning its device memory, not in whichever was current last. */
START_TEST(test_cuda_backend_stream0_context) {
  const struct gp_backend_ops *ops = &gp__backend_cuda;
  struct gp_backend *b = fake_session();
  uint8_t host[64] = {0};

  /* Something ran in B last; the copy is to A's memory. */
  enter(b, CTX_B);
  ck_assert_int_eq(ops->memcpy_htod(b, A_BASE + 16, host, sizeof(host), 0),
                   CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_A);
  enter(b, CTX_B);
  ck_assert_int_eq(ops->memcpy_dtoh(b, host, A_BASE, sizeof(host), 0),
                   CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_A);
  enter(b, CTX_A);
  ck_assert_int_eq(ops->memset(b, B_BASE, 7, 1, 100, 0), CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_B);
  /* Pipelined copies too. */
  enter(b, CTX_B);
  ck_assert_int_eq(ops->memcpy_htod_pipe(b, A_BASE, 4096, 0, fill_any, NULL),
                   CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_A);
  /* An address the driver does not know: the current context, and the
   * driver's own answer. */
  enter(b, CTX_B);
  ck_assert_int_eq(ops->memcpy_htod(b, 0x42, host, sizeof(host), 0),
                   CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_B);
  /* No cuPointerGetAttribute (an older relay's driver): the same. */
  b->drv.cuPointerGetAttribute = NULL;
  ck_assert_int_eq(ops->memcpy_htod(b, A_BASE, host, sizeof(host), 0),
                   CUDA_SUCCESS);
  ck_assert_ptr_eq(fk.copy_ctx, CTX_B);
  fake_session_end(b);
}
END_TEST

/* The pinned chunks are portable: allocated once, they serve copies in
 * both contexts; only the events move. A failed allocation is retried by a
 * later copy. */
START_TEST(test_cuda_backend_stage_contexts) {
  const struct gp_backend_ops *ops = &gp__backend_cuda;
  struct gp_backend *b = fake_session();
  int i;

  /* The first copy's allocation fails (say, its context faulted). */
  fk.host_fail = 1;
  ck_assert_int_eq(ops->memcpy_htod_pipe(b, A_BASE, 6 << 20, 0, fill_any,
                                         NULL), CUDA_SUCCESS);
  ck_assert_int_eq(fk.host_allocs, 0);
  ck_assert_int_eq(fk.events_created, 0);
  /* Copies alternating between the contexts. */
  for (i = 0; i < 6; i++) {
    uint64_t base = i % 2 ? B_BASE : A_BASE;
    ck_assert_int_eq(ops->memcpy_htod_pipe(b, base, 6 << 20, 0, fill_any,
                                           NULL), CUDA_SUCCESS);
    ck_assert_ptr_eq(fk.copy_ctx, i % 2 ? CTX_B : CTX_A);
    ck_assert_ptr_eq(fk.event_ctx, i % 2 ? CTX_B : CTX_A);
  }
  ck_assert_int_eq(fk.host_allocs, CUB_STAGE_CHUNKS);
  ck_assert_uint_eq(fk.host_flags & CU_MEMHOSTALLOC_PORTABLE,
                    CU_MEMHOSTALLOC_PORTABLE);
  ck_assert_int_eq(fk.host_frees, 0);
  ck_assert_int_eq(fk.events_created, 6 * CUB_STAGE_CHUNKS);
  ck_assert_int_eq(fk.events_destroyed, 5 * CUB_STAGE_CHUNKS);
  /* Context A (which allocated them) ends: the chunks go with it; the
   * events, in B, stay. */
  cub_stage_ctx_end(b, CTX_A);
  ck_assert_int_eq(fk.host_frees, CUB_STAGE_CHUNKS);
  ck_assert_int_eq(fk.events_destroyed, 5 * CUB_STAGE_CHUNKS);
  ck_assert_int_eq(ops->memcpy_htod_pipe(b, B_BASE, 1 << 20, 0, fill_any,
                                         NULL), CUDA_SUCCESS);
  ck_assert_int_eq(fk.host_allocs, 2 * CUB_STAGE_CHUNKS);
  ck_assert_int_eq(fk.events_created, 6 * CUB_STAGE_CHUNKS);
  fake_session_end(b);
  ck_assert_int_eq(fk.host_frees, 2 * CUB_STAGE_CHUNKS);
  ck_assert_int_eq(fk.events_destroyed, 6 * CUB_STAGE_CHUNKS);
}
END_TEST

/* A device-to-host copy of a whole request (GP_COPY_CHUNK, 16 MiB): every
 * chunk is copied before the first byte is sent, so a chunk that fails is
 * the reply's error, with no data sent at all. */
START_TEST(test_cuda_backend_dtoh_pipe_errors) {
  const struct gp_backend_ops *ops = &gp__backend_cuda;
  struct gp_backend *b = fake_session();
  uint64_t at, size = (uint64_t)CUB_STAGE_CHUNKS * CUB_STAGE_CHUNK;
  int pinned;

  for (pinned = 1; pinned >= 0; pinned--) {
    /* Without pinned memory (every allocation fails) the same holds. */
    if (!pinned)
      cub_stage_free(b);
    fk.host_fail = pinned ? 0 : 1000;
    fk.host_allocs = 0;
    fk.dtoh_calls = fk.drains = 0;
    fk.drained = 0;
    fk.data_ok = true;
    fk.dtoh_fail_at = 0;
    at = A_BASE + 3;
    ck_assert_int_eq(ops->memcpy_dtoh_pipe(b, A_BASE + 3, size, 0,
                                           drain_check, &at), CUDA_SUCCESS);
    ck_assert_uint_eq(fk.drained, size);
    ck_assert(fk.data_ok);
    ck_assert_int_eq(fk.dtoh_calls, CUB_STAGE_CHUNKS);

    /* The third chunk fails. */
    fk.dtoh_calls = fk.drains = 0;
    fk.dtoh_fail_at = 3;
    at = A_BASE;
    ck_assert_int_eq(ops->memcpy_dtoh_pipe(b, A_BASE, size, 0, drain_check,
                                           &at), CUDA_ERROR_ILLEGAL_ADDRESS);
    ck_assert_int_eq(fk.drains, 0);

    /* Larger than the chunks (no worker request is): a failure after data
     * went out ends the session rather than send anything false. */
    fk.dtoh_calls = fk.drains = 0;
    fk.drained = 0;
    fk.dtoh_fail_at = CUB_STAGE_CHUNKS + 1;
    at = A_BASE;
    ck_assert_int_eq(ops->memcpy_dtoh_pipe(b, A_BASE, size + 100, 0,
                                           drain_check, &at), GP_EIO);
    ck_assert_uint_eq(fk.drained, CUB_STAGE_CHUNK);
    fk.dtoh_fail_at = 0;
    fk.dtoh_calls = 0;
    fk.drained = 0;
    at = A_BASE;
    ck_assert_int_eq(ops->memcpy_dtoh_pipe(b, A_BASE, size + 100, 0,
                                           drain_check, &at), CUDA_SUCCESS);
    ck_assert_uint_eq(fk.drained, size + 100);
    ck_assert(fk.data_ok);
    ck_assert_int_eq(fk.host_allocs, pinned ? CUB_STAGE_CHUNKS : 0);
  }
  fake_session_end(b);
}
END_TEST

/* A 12.2 driver has no cuFuncGetParamInfo: getting a kernel answers
 * CUDA_ERROR_NOT_SUPPORTED, and the log says why. */
START_TEST(test_cuda_backend_old_driver_kernels) {
  const struct gp_backend_ops *ops = &gp__backend_cuda;
  struct gp_backend *b = fake_session();
  struct gp_func_desc *desc = calloc(1, sizeof(*desc));
  char log[1024] = "";
  FILE *f = tmpfile();
  int saved = dup(2);
  ssize_t n;

  ck_assert_ptr_nonnull(f);
  b->drv.version = 12020;
  fflush(stderr);
  ck_assert_int_ge(dup2(fileno(f), 2), 0);
  ck_assert_int_eq(ops->module_get_function(b, 1, "k", 1, desc),
                   CUDA_ERROR_NOT_SUPPORTED);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fileno(f), log, sizeof(log) - 1, 0);
  ck_assert_int_gt(n, 0);
  ck_assert_msg(strstr(log, "module_get_function needs cuFuncGetParamInfo, "
                       "new in CUDA 12.4; the driver is 12.2: "
                       "CUDA_ERROR_NOT_SUPPORTED") != NULL, "log: %s", log);
  fclose(f);
  free(desc);
  fake_session_end(b);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cuda_backend");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_cuda_backend_image_kinds);
  tcase_add_test(tc, test_cuda_backend_image_one_fatbin);
  tcase_add_test(tc, test_cuda_backend_image_several_fatbins);
  tcase_add_test(tc, test_cuda_backend_image_wrapper_refused);
  tcase_add_test(tc, test_cuda_backend_symbols_versions);
  tcase_add_test(tc, test_cuda_backend_symbols_old_driver);
  tcase_add_test(tc, test_cuda_backend_symbols_12_2_driver);
  tcase_add_test(tc, test_cuda_backend_symbols_client_lib);
  tcase_add_test(tc, test_cuda_backend_driver_open_missing);
  tcase_add_test(tc, test_cuda_backend_output_capture);
  tcase_add_test(tc, test_cuda_backend_output_stdout_closed);
  tcase_add_test(tc, test_cuda_backend_stream0_context);
  tcase_add_test(tc, test_cuda_backend_stage_contexts);
  tcase_add_test(tc, test_cuda_backend_dtoh_pipe_errors);
  tcase_add_test(tc, test_cuda_backend_old_driver_kernels);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
