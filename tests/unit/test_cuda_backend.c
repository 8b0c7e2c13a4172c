/* Unit tests of the cuda backend's parts that need no GPU
 * (server/backend/cuda/): splitting a module image into fatbins, the
 * version-2 wrapper rebuilt from them, the entry-point table and its
 * resolution through cuGetProcAddress (also against gpupool's own
 * libcuda.so.1, the relay's driver), and the stdout capture of device
 * printf output. */
#include <check.h>
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_be.h"

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

  ck_assert_int_eq(cub_output_init(&o), CUDA_SUCCESS);
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
  /* fd 1 is back. */
  ck_assert_int_eq(write(1, "", 0), 0);
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
  tcase_add_test(tc, test_cuda_backend_symbols_client_lib);
  tcase_add_test(tc, test_cuda_backend_driver_open_missing);
  tcase_add_test(tc, test_cuda_backend_output_capture);
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
