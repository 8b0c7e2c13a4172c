/* Unit tests of cuGetProcAddress (client/api_proc.c): the mapping of
 * (base name, CUDA version, flags) to the ABI variant, checked against the
 * built library itself.
 *
 * The library ($GPUPOOL_TEST_LIBCUDA, build/client/libcuda.so.1) is
 * dlopen()ed as cudart does it: RTLD_NOW, and only cuGetProcAddress_v2 and
 * cuGetProcAddress are taken with dlsym. Every pointer a look-up returns is
 * compared with dlsym() of the variant it should be. No server is involved
 * and cuInit is never called: look-ups work before it. */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda.h>

typedef CUresult (*gpa2_fn)(const char *, void **, int, cuuint64_t,
                            CUdriverProcAddressQueryResult *);
typedef CUresult (*gpa1_fn)(const char *, void **, int, cuuint64_t);

static void *lib;
static gpa2_fn gpa2;
static gpa1_fn gpa1;

#define PTDS CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
#define LEGACY CU_GET_PROC_ADDRESS_LEGACY_STREAM

/* A look-up of |name| at |version| with |flags| finds |variant|, which the
 * library exports. */
static void expect(const char *name, int version, cuuint64_t flags,
                   const char *variant) {
  void *want = dlsym(lib, variant);
  ck_assert_msg(want != NULL, "%s is not exported", variant);
  void *got = (void *)0x1;
  CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
  CUresult r = gpa2(name, &got, version, flags, &st);
  ck_assert_msg(r == CUDA_SUCCESS, "%s at %d flags %llu: result %d", name,
                version, (unsigned long long)flags, (int)r);
  ck_assert_int_eq(st, CU_GET_PROC_ADDRESS_SUCCESS);
  ck_assert_msg(got == want, "%s at %d flags %llu: %p is not %s (%p)", name,
                version, (unsigned long long)flags, got, variant, want);
  /* The status is optional, and the version 1 entry point agrees. */
  got = NULL;
  ck_assert_int_eq(gpa2(name, &got, version, flags, NULL), CUDA_SUCCESS);
  ck_assert_ptr_eq(got, want);
  got = NULL;
  ck_assert_int_eq(gpa1(name, &got, version, flags), CUDA_SUCCESS);
  ck_assert_ptr_eq(got, want);
}

/* A look-up of |name| at |version| fails with |status|. */
static void expect_miss(const char *name, int version, cuuint64_t flags,
                        CUdriverProcAddressQueryResult status) {
  void *got = (void *)0x1;
  CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
  ck_assert_int_eq(gpa2(name, &got, version, flags, &st),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_msg(st == status, "%s at %d: status %d, expected %d", name,
                version, (int)st, (int)status);
  ck_assert_ptr_null(got);
  got = (void *)0x1;
  ck_assert_int_eq(gpa1(name, &got, version, flags), CUDA_ERROR_NOT_FOUND);
  ck_assert_ptr_null(got);
}

START_TEST(test_proc_versions_pick_variants) {
  expect("cuCtxCreate", 2000, 0, "cuCtxCreate");
  expect("cuCtxCreate", 3019, 0, "cuCtxCreate");
  expect("cuCtxCreate", 3020, 0, "cuCtxCreate_v2");
  expect("cuCtxCreate", 11040, 0, "cuCtxCreate_v3");
  expect("cuCtxCreate", 12049, 0, "cuCtxCreate_v3");
  expect("cuCtxCreate", 12050, 0, "cuCtxCreate_v4");
  expect("cuCtxCreate", 13000, 0, "cuCtxCreate_v4");
  expect("cuCtxSynchronize", 13000, 0, "cuCtxSynchronize_v2");
  expect("cuCtxSynchronize", 12000, 0, "cuCtxSynchronize");
  expect("cuCtxGetDevice", 13000, 0, "cuCtxGetDevice_v2");
  expect("cuCtxGetDevice", 2000, 0, "cuCtxGetDevice");
  expect("cuDeviceTotalMem", 3020, 0, "cuDeviceTotalMem_v2");
  expect("cuDevicePrimaryCtxSetFlags", 11000, 0,
         "cuDevicePrimaryCtxSetFlags_v2");
  expect("cuDevicePrimaryCtxSetFlags", 7000, 0, "cuDevicePrimaryCtxSetFlags");
  expect("cuDevicePrimaryCtxRelease", 11000, 0, "cuDevicePrimaryCtxRelease_v2");
  expect("cuMemAlloc", 3020, 0, "cuMemAlloc_v2");
  expect("cuMemAlloc", 13000, 0, "cuMemAlloc_v2");
  expect("cuCtxDestroy", 4000, 0, "cuCtxDestroy_v2");
  expect("cuCtxDestroy", 2000, 0, "cuCtxDestroy");
  /* Names that have one version only, and the binding entry points. */
  expect("cuInit", 2000, 0, "cuInit");
  expect("cuInit", 13000, 0, "cuInit");
  expect("cuDriverGetVersion", 13000, 0, "cuDriverGetVersion");
  expect("cuGetExportTable", 13000, 0, "cuGetExportTable");
  expect("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
  expect("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
}
END_TEST

START_TEST(test_proc_per_thread_forms) {
  expect("cuMemcpyHtoDAsync", 13000, PTDS, "cuMemcpyHtoDAsync_v2_ptsz");
  expect("cuMemcpyHtoDAsync", 13000, 0, "cuMemcpyHtoDAsync_v2");
  expect("cuMemcpyHtoDAsync", 13000, LEGACY, "cuMemcpyHtoDAsync_v2");
  expect("cuMemcpyHtoD", 13000, PTDS, "cuMemcpyHtoD_v2_ptds");
  expect("cuMemcpyHtoD", 7000, PTDS, "cuMemcpyHtoD_v2_ptds");
  expect("cuMemcpyHtoD", 13000, LEGACY, "cuMemcpyHtoD_v2");
  expect("cuLaunchKernel", 7000, PTDS, "cuLaunchKernel_ptsz");
  expect("cuStreamSynchronize", 7000, PTDS, "cuStreamSynchronize_ptsz");
  /* Both stream flags: the per-thread form. */
  expect("cuMemcpyHtoD", 13000, LEGACY | PTDS, "cuMemcpyHtoD_v2_ptds");
  /* No per-thread form: the plain variant. */
  expect("cuCtxCreate", 12050, PTDS, "cuCtxCreate_v4");
  expect("cuMemAlloc", 13000, PTDS, "cuMemAlloc_v2");
}
END_TEST

/* The library exports a stub for every name cuda.h declares; looking one
 * up answers as for a function the driver lacks. (Graphics interop cannot
 * be remoted, so these stay stubs.) */
START_TEST(test_proc_stubs_not_found) {
  ck_assert_ptr_nonnull(dlsym(lib, "cuGraphicsMapResources"));
  expect_miss("cuGraphicsMapResources", 13000, 0,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  ck_assert_ptr_nonnull(dlsym(lib, "cuGraphicsMapResources_ptsz"));
  expect_miss("cuGraphicsMapResources", 13000, PTDS,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  ck_assert_ptr_nonnull(dlsym(lib, "cuGraphicsUnregisterResource"));
  expect_miss("cuGraphicsUnregisterResource", 3000, 0,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  /* The 32-bit legacy variant stays a stub while its successor is
   * implemented: the version decides. */
  expect_miss("cuMemAlloc", 2000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
}
END_TEST

START_TEST(test_proc_version_too_low) {
  expect_miss("cuCtxCreate", 1000, 0,
              CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  expect_miss("cuCtxCreate", 0, 0, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  expect_miss("cuCtxCreate", -1, 0,
              CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  expect_miss("cuGetProcAddress", 11020, 0,
              CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  /* Too low wins over "not implemented": the name exists, later. */
  expect_miss("cuMemAllocAsync", 11010, 0,
              CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
}
END_TEST

START_TEST(test_proc_unknown_names) {
  /* cudart's first look-up. */
  expect_miss("", 0, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cuNoSuchFunction", 13000, 0,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cuMemAllocX", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cuMemAllo", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cumemalloc", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  /* Look-ups are by base name: a variant's own name is not one. */
  expect_miss("cuMemAlloc_v2", 13000, 0,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cuMemcpyHtoD_v2_ptds", 13000, 0,
              CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  /* The first and last names in sort order are found (the search's
   * edges). */
  void *p = NULL;
  CUdriverProcAddressQueryResult st;
  gpa2("cuArray3DCreate", &p, 13000, 0, &st);
  ck_assert_int_ne(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  gpa2("cuWaitExternalSemaphoresAsync", &p, 13000, 0, &st);
  ck_assert_int_ne(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  expect_miss("cuA", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  expect_miss("cuZ", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
}
END_TEST

START_TEST(test_proc_invalid_arguments) {
  void *p = (void *)0x1;
  CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
  ck_assert_int_eq(gpa2(NULL, &p, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(gpa2("cuInit", NULL, 13000, 0, &st),
                   CUDA_ERROR_INVALID_VALUE);
  p = (void *)0x1;
  ck_assert_int_eq(gpa2("cuInit", &p, 13000, 4, &st),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(gpa2("cuInit", &p, 13000, 1ull << 40, &st),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(gpa1(NULL, &p, 13000, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(gpa1("cuInit", NULL, 13000, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(gpa1("cuInit", &p, 13000, 8), CUDA_ERROR_INVALID_VALUE);
}
END_TEST

/* What a look-up returns is the working entry point, before cuInit. */
START_TEST(test_proc_pointers_work_before_init) {
  CUresult (*version)(int *) = NULL;
  CUresult (*count)(int *) = NULL;
  ck_assert_int_eq(gpa2("cuDriverGetVersion", (void **)&version, 13000, 0,
                        NULL),
                   CUDA_SUCCESS);
  int v = 0;
  ck_assert_int_eq(version(&v), CUDA_SUCCESS);
  ck_assert_int_eq(v, CUDA_VERSION);
  ck_assert_int_eq(gpa2("cuDeviceGetCount", (void **)&count, 13000, 0, NULL),
                   CUDA_SUCCESS);
  ck_assert_int_eq(count(&v), CUDA_ERROR_NOT_INITIALIZED);
}
END_TEST

static Suite *proc_suite(void) {
  Suite *s = suite_create("proc");
  TCase *tc = tcase_create("proc");
  tcase_add_test(tc, test_proc_versions_pick_variants);
  tcase_add_test(tc, test_proc_per_thread_forms);
  tcase_add_test(tc, test_proc_stubs_not_found);
  tcase_add_test(tc, test_proc_version_too_low);
  tcase_add_test(tc, test_proc_unknown_names);
  tcase_add_test(tc, test_proc_invalid_arguments);
  tcase_add_test(tc, test_proc_pointers_work_before_init);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  const char *path = getenv("GPUPOOL_TEST_LIBCUDA");
  if (path == NULL || *path == '\0') {
    fprintf(stderr, "test_proc: GPUPOOL_TEST_LIBCUDA is not set\n");
    return 1;
  }
  /* No server: cuInit must never be needed here. */
  unsetenv("GPUPOOL_SERVER");
  lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "test_proc: %s\n", dlerror());
    return 1;
  }
  gpa2 = (gpa2_fn)dlsym(lib, "cuGetProcAddress_v2");
  gpa1 = (gpa1_fn)dlsym(lib, "cuGetProcAddress");
  if (gpa2 == NULL || gpa1 == NULL) {
    fprintf(stderr, "test_proc: cuGetProcAddress_v2 or cuGetProcAddress "
                    "missing\n");
    return 1;
  }
  SRunner *sr = srunner_create(proc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
