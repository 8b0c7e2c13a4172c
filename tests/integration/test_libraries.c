/* Integration: the library API (cuLibrary*, cuKernel*), which cudart 13
 * loads every program's device code with, and CUkernel handles used where
 * a CUfunction is expected.
 *
 * Images: PTX written here (the scenarios that need no nvcc), and what nvcc
 * builds from tests/cuda/lib_*.cu at build time (paths in GPT_LIB_*, see
 * tests/integration/meson.build): a fatbin, PTX, machine code only, and
 * the pieces of the fatbin wrappers nvcc puts in programs, which the
 * scenarios assemble as a program's .nvFatBinSegment holds them: a
 * version-1 wrapper around a fatbin; a version-2 wrapper whose own fatbin
 * is the device-link step's output and whose prelinked fatbins are the
 * objects' (a -rdc=true program of one file and of two, one calling a
 * __device__ function and using a __device__ variable of the other); the
 * version-2 wrapper of a program without -rdc. Without nvcc those
 * scenarios print why and exit 77.
 *
 * Some scenarios run with CUDA_MODULE_LOADING=EAGER or GPUPOOL_TRACE=1
 * (the library's loads appear in the trace), as meson.build says.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* nvcc-built images, by the environment variable holding each path. */
#define LIB_FATBIN "GPT_LIB_FATBIN"     /* lib_kernels.cu, -fatbin */
#define LIB_PTX "GPT_LIB_PTX"           /* -ptx -arch=compute_75 */
#define LIB_SMONLY "GPT_LIB_SMONLY"     /* code=sm_75 only: no PTX */
#define LIB_PLAIN_DLINK "GPT_LIB_PLAIN_DLINK" /* -dlink of a non-rdc object */
#define LIB_RDC_A "GPT_LIB_RDC_A"       /* lib_rdc_a.cu, -rdc=true -fatbin */
#define LIB_RDC_B "GPT_LIB_RDC_B"
#define LIB_RDC_DLINK "GPT_LIB_RDC_DLINK" /* -dlink of both rdc objects */
#define LIB_ONE_RDC "GPT_LIB_ONE_RDC"   /* lib_kernels.cu, -rdc=true */
#define LIB_ONE_DLINK "GPT_LIB_ONE_DLINK"

#define VECADD "_Z6vecAddPKfS0_Pfi"
#define AXPY "_Z8axpyCoeffPKfPfi"
#define BUMP "_Z4bumpPi"
#define BOUNDED "_Z7boundedPi"
#define RDC_APPLY "_Z9lib_applyPfPKfi"
#define RDC_COUNT "_Z9lib_countPi"

#define WRAPPER_MAGIC 0x466243B1u
#define DYN_SMEM CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

/* The per-thread default stream form, which cuda.h declares only for
 * programs built with it; libcuda exports it either way. */
CUresult CUDAAPI cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                     unsigned int gridDimY,
                                     unsigned int gridDimZ,
                                     unsigned int blockDimX,
                                     unsigned int blockDimY,
                                     unsigned int blockDimZ,
                                     unsigned int sharedMemBytes,
                                     CUstream hStream, void **kernelParams,
                                     void **extra);

static struct gpt_server server;

/* A fatbin wrapper as nvcc lays it out in .nvFatBinSegment. */
struct wrapper {
  uint32_t magic, version;
  const void *fatbin;
  const void *const *prelinked; /* version 2: NULL-terminated */
};

/* Two kernels and a variable, as nvcc writes them for
 *   __device__ int lib_counter = 5;
 *   vecAdd(a, b, c, n): c[i] = a[i] + b[i]
 *   bump(out): out[0] = lib_counter++ */
static const char ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .global .align 4 .u32 lib_counter = 5;\n"
    "\n"
    ".visible .entry _Z6vecAddPKfS0_Pfi(\n"
    "  .param .u64 p0, .param .u64 p1, .param .u64 p2, .param .u32 p3)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<6>;\n"
    "  .reg .f32 %f<4>;\n"
    "  .reg .b64 %rd<11>;\n"
    "  ld.param.u64 %rd1, [p0];\n"
    "  ld.param.u64 %rd2, [p1];\n"
    "  ld.param.u64 %rd3, [p2];\n"
    "  ld.param.u32 %r2, [p3];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.s32 %p1, %r1, %r2;\n"
    "  @%p1 bra $L_end;\n"
    "  mul.wide.s32 %rd7, %r1, 4;\n"
    "  add.s64 %rd8, %rd1, %rd7;\n"
    "  add.s64 %rd9, %rd2, %rd7;\n"
    "  add.s64 %rd10, %rd3, %rd7;\n"
    "  ld.global.f32 %f1, [%rd8];\n"
    "  ld.global.f32 %f2, [%rd9];\n"
    "  add.f32 %f3, %f1, %f2;\n"
    "  st.global.f32 [%rd10], %f3;\n"
    "$L_end:\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry _Z4bumpPi(.param .u64 q0)\n"
    "{\n"
    "  .reg .b32 %r<3>;\n"
    "  .reg .b64 %rd<3>;\n"
    "  ld.param.u64 %rd1, [q0];\n"
    "  mov.u64 %rd2, lib_counter;\n"
    "  atom.global.add.u32 %r1, [%rd2], 1;\n"
    "  st.global.u32 [%rd1], %r1;\n"
    "  ret;\n"
    "}\n";

/* ---- Helpers ------------------------------------------------------------- */

static bool have_nvcc(void) {
  const char *v = getenv("GPT_LIB_NVCC");
  return v != NULL && strcmp(v, "1") == 0;
}

static void need_nvcc(void) {
  if (!have_nvcc())
    gpt_skip("nvcc was not found when the build was configured, so there are "
             "no nvcc-built images to load (install the CUDA toolkit's nvcc "
             "and reconfigure)");
}

static void start_server(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
}

static CUcontext start(void) {
  start_server();
  return gpt_init_context(NULL);
}

static const char *image_path(const char *var) {
  const char *p = getenv(var);
  if (p == NULL || *p == '\0') {
    gpt__check_fail(__FILE__, __LINE__, var, "%s",
                    "not set: run the tests with meson test");
    gpt__abort_scenario();
  }
  return p;
}

/* The bytes of the image named by |var| in 8-byte aligned memory (as a
 * fatbin must be), NUL-terminated; *len without the NUL. The caller
 * frees. */
static void *read_image(const char *var, size_t *len) {
  const char *path = image_path(var);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    gpt__check_fail(__FILE__, __LINE__, path, "cannot open: %s",
                    strerror(errno));
    gpt__abort_scenario();
  }
  REQUIRE_TRUE(fseek(f, 0, SEEK_END) == 0);
  long n = ftell(f);
  REQUIRE_TRUE(n > 0);
  rewind(f);
  char *buf = gpt_xmalloc((size_t)n + 1);
  REQUIRE_TRUE(fread(buf, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  buf[n] = '\0';
  if (len) *len = (size_t)n;
  return buf;
}

static CUkernel kernel(CUlibrary lib, const char *name) {
  CUkernel k = NULL;
  CUresult r = cuLibraryGetKernel(&k, lib, name);
  if (r != CUDA_SUCCESS) {
    gpt__check_fail(__FILE__, __LINE__, "cuLibraryGetKernel", "%s: %s", name,
                    gpt_cu_name(r));
    gpt__abort_scenario();
  }
  gpt__check_pass();
  return k;
}

static CUdeviceptr upload(const void *p, size_t n) {
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemcpyHtoD(d, p, n));
  return d;
}

/* Runs vecAdd through |f| (a CUfunction or a CUkernel cast to one) on |n|
 * elements and checks them. */
static bool run_vecadd(CUfunction f, int n, float seed) {
  unsigned before = gpt_checks_failed();
  float *a = gpt_xmalloc(n * sizeof(float));
  float *b = gpt_xmalloc(n * sizeof(float));
  float *c = gpt_xmalloc(n * sizeof(float));
  for (int i = 0; i < n; i++) {
    a[i] = seed + (float)i;
    b[i] = 0.5f * (float)i;
  }
  CUdeviceptr da = upload(a, n * sizeof(float));
  CUdeviceptr db = upload(b, n * sizeof(float));
  CUdeviceptr dc = 0;
  REQUIRE_OK(cuMemAlloc(&dc, n * sizeof(float)));
  void *params[] = {&da, &db, &dc, &n};
  CHECK_OK(cuLaunchKernel(f, (unsigned)(n + 127) / 128, 1, 1, 128, 1, 1, 0,
                          NULL, params, NULL));
  CHECK_OK(cuMemcpyDtoH(c, dc, n * sizeof(float)));
  int bad = 0;
  for (int i = 0; i < n; i++)
    if (c[i] != a[i] + b[i]) bad++;
  CHECK_EQ_I(bad, 0);
  CHECK_OK(cuMemFree(da));
  CHECK_OK(cuMemFree(db));
  CHECK_OK(cuMemFree(dc));
  free(a);
  free(b);
  free(c);
  return gpt_checks_failed() == before;
}

/* bump through |f|: returns the counter's value before the bump. */
static int run_bump(CUfunction f) {
  CUdeviceptr d = 0;
  int v = -1;
  REQUIRE_OK(cuMemAlloc(&d, sizeof(int)));
  void *params[] = {&d};
  CHECK_OK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
  CHECK_OK(cuMemcpyDtoH(&v, d, sizeof(v)));
  CHECK_OK(cuMemFree(d));
  return v;
}

static CUresult load_plain(CUlibrary *lib, const void *code) {
  return cuLibraryLoadData(lib, code, NULL, NULL, 0, NULL, NULL, 0);
}

/* As cudart 13 loads a program's code: the wrapper, the image preserved. */
static CUresult load_preserved(CUlibrary *lib, const void *code) {
  CUlibraryOption opt = CU_LIBRARY_BINARY_IS_PRESERVED;
  void *val = (void *)(uintptr_t)1;
  return cuLibraryLoadData(lib, code, NULL, NULL, 0, &opt, &val, 1);
}

/* ---- Capturing this process's stderr ------------------------------------- */

struct capture {
  int saved;
  int file;
};

static void capture_begin(struct capture *c) {
  char path[256];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/gpupool-capture-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  fflush(stderr);
  c->file = mkstemp(path);
  REQUIRE_TRUE(c->file >= 0);
  unlink(path);
  c->saved = dup(2);
  REQUIRE_TRUE(c->saved >= 0);
  REQUIRE_TRUE(dup2(c->file, 2) == 2);
}

/* Restores stderr and returns what was written meanwhile (the caller
 * frees); it is also copied to stderr, for the test's log. */
static char *capture_end(struct capture *c) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  off_t size = lseek(c->file, 0, SEEK_END);
  char *text = gpt_xmalloc((size_t)(size > 0 ? size : 0) + 1);
  size_t n = 0;
  if (size > 0 && lseek(c->file, 0, SEEK_SET) == 0) {
    ssize_t got;
    while (n < (size_t)size &&
           (got = read(c->file, text + n, (size_t)size - n)) > 0)
      n += (size_t)got;
  }
  text[n] = '\0';
  close(c->file);
  fputs(text, stderr);
  return text;
}

/* Occurrences of |needle| in |hay|. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* ---- wrapper_v1 ---------------------------------------------------------- */

/* A version-1 wrapper around an nvcc fatbin, loaded as cudart does (the
 * image preserved), and launched through the CUkernel cast to a
 * CUfunction. */
static void test_libraries_wrapper_v1(int argc, char **argv) {
  need_nvcc();
  start();
  void *fb = read_image(LIB_FATBIN, NULL);
  struct wrapper w = {WRAPPER_MAGIC, 1, fb, NULL};
  CUlibrary lib = NULL;
  REQUIRE_OK(load_preserved(&lib, &w));
  CUkernel k = kernel(lib, VECADD);
  CHECK_TRUE(run_vecadd((CUfunction)k, 1000, 1.0f));
  /* The same name, the same handle; another kernel of the library. */
  CUkernel k2 = NULL;
  CHECK_OK(cuLibraryGetKernel(&k2, lib, VECADD));
  CHECK_EQ_PTR(k2, k);
  CUkernel kb = kernel(lib, BUMP);
  CHECK_NE_U((uintptr_t)kb, (uintptr_t)k);
  CHECK_EQ_I(run_bump((CUfunction)kb), 5);
  CHECK_EQ_I(run_bump((CUfunction)kb), 6);
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuLibraryUnload(lib));
  free(fb);
  (void)argc;
  (void)argv;
}

/* ---- wrapper_v2 ---------------------------------------------------------- */

/* Version-2 wrappers without -rdc: the one nvcc's device-link step adds to
 * every program (its cubin defines nothing, its list is empty) loads and
 * holds no kernel; one whose own fatbin is the program and whose prelinked
 * fatbins are more copies of it runs the program. */
static void test_libraries_wrapper_v2(int argc, char **argv) {
  need_nvcc();
  start();
  void *dl = read_image(LIB_PLAIN_DLINK, NULL);
  const void *none[] = {NULL};
  struct wrapper w = {WRAPPER_MAGIC, 2, dl, none};
  CUlibrary empty = NULL;
  REQUIRE_OK(load_preserved(&empty, &w));
  CUkernel k = NULL;
  CHECK_CU(cuLibraryGetKernel(&k, empty, VECADD), CUDA_ERROR_NOT_FOUND);
  unsigned nk = 99;
  CHECK_OK(cuLibraryGetKernelCount(&nk, empty));
  CHECK_EQ_U(nk, 0);
  CUmodule m = NULL;
  CHECK_OK(cuLibraryGetModule(&m, empty));
  CHECK_TRUE(m != NULL);
  CHECK_OK(cuLibraryUnload(empty));

  void *fb = read_image(LIB_FATBIN, NULL);
  const void *copies[] = {fb, fb, NULL};
  struct wrapper w2 = {WRAPPER_MAGIC, 2, fb, copies};
  CUlibrary lib = NULL;
  REQUIRE_OK(load_preserved(&lib, &w2));
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 500, 2.0f));
  CHECK_OK(cuLibraryUnload(lib));
  free(dl);
  free(fb);
  (void)argc;
  (void)argv;
}

/* ---- kinds: raw fatbin, PTX, cubin-less, files --------------------------- */

static void test_libraries_kinds(int argc, char **argv) {
  need_nvcc();
  start();
  /* A raw fatbin, not preserved: the library keeps its own copy, so the
   * caller's buffer may go at once. */
  void *fb = read_image(LIB_FATBIN, NULL);
  CUlibrary l1 = NULL;
  REQUIRE_OK(load_plain(&l1, fb));
  memset(fb, 0, 64);
  free(fb);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(l1, VECADD), 700, 3.0f));
  /* nvcc's PTX, with JIT options filled as cuModuleLoadDataEx fills
   * them. */
  void *text = read_image(LIB_PTX, NULL);
  char info[64], err[64];
  memset(info, 'x', sizeof info);
  memset(err, 'x', sizeof err);
  CUjit_option jo[] = {CU_JIT_INFO_LOG_BUFFER,
                       CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                       CU_JIT_ERROR_LOG_BUFFER,
                       CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_WALL_TIME,
                       CU_JIT_OPTIMIZATION_LEVEL};
  void *jv[] = {info, (void *)(uintptr_t)sizeof info, err,
                (void *)(uintptr_t)sizeof err, NULL, (void *)(uintptr_t)3};
  CUlibrary l2 = NULL;
  REQUIRE_OK(cuLibraryLoadData(&l2, text, jo, jv, 6, NULL, NULL, 0));
  CHECK_EQ_I(info[0], '\0');
  CHECK_EQ_I(err[0], '\0');
  CHECK_EQ_U((uintptr_t)jv[3], 0);
  free(text);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(l2, VECADD), 300, 4.0f));
  /* From files: a fatbin and PTX. */
  CUlibrary l3 = NULL, l4 = NULL;
  REQUIRE_OK(cuLibraryLoadFromFile(&l3, image_path(LIB_FATBIN), NULL, NULL,
                                   0, NULL, NULL, 0));
  CHECK_TRUE(run_vecadd((CUfunction)kernel(l3, VECADD), 200, 5.0f));
  REQUIRE_OK(cuLibraryLoadFromFile(&l4, image_path(LIB_PTX), NULL, NULL, 0,
                                   NULL, NULL, 0));
  CHECK_TRUE(run_vecadd((CUfunction)kernel(l4, VECADD), 200, 6.0f));
  CHECK_CU(cuLibraryLoadFromFile(&l4, "/nonexistent/gpupool/lib.fatbin",
                                 NULL, NULL, 0, NULL, NULL, 0),
           CUDA_ERROR_FILE_NOT_FOUND);
  /* "Preserved" means nothing for a file: refused, as documented. */
  CUlibraryOption opt = CU_LIBRARY_BINARY_IS_PRESERVED;
  void *val = (void *)(uintptr_t)1;
  CHECK_CU(cuLibraryLoadFromFile(&l4, image_path(LIB_FATBIN), NULL, NULL, 0,
                                 &opt, &val, 1),
           CUDA_ERROR_INVALID_VALUE);
  /* Options without values take their defaults, as cuBLASLt 13 loads the
   * cubins it builds: not preserved, so the caller's bytes may go at
   * once. */
  size_t fb_len = 0;
  unsigned char *bytes = read_image(LIB_FATBIN, &fb_len);
  CUlibrary l5 = NULL;
  REQUIRE_OK(cuLibraryLoadData(&l5, bytes, NULL, NULL, 0, &opt, NULL, 1));
  memset(bytes, 0, fb_len);
  free(bytes);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(l5, VECADD), 200, 7.0f));
  /* A count with no option names is refused before the image is read. */
  CHECK_CU(cuLibraryLoadData(&l5, image_path(LIB_PTX), NULL, NULL, 0, NULL,
                             &val, 1),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuLibraryUnload(l1));
  CHECK_OK(cuLibraryUnload(l2));
  CHECK_OK(cuLibraryUnload(l3));
  CHECK_OK(cuLibraryUnload(l4));
  CHECK_OK(cuLibraryUnload(l5));
  (void)argc;
  (void)argv;
}

/* ---- kernel_queries ------------------------------------------------------ */

static void test_libraries_kernel_queries(int argc, char **argv) {
  need_nvcc();
  CUdevice dev = 0;
  start_server();
  CUcontext ctx = gpt_init_context(&dev);
  (void)ctx;
  void *fb = read_image(LIB_FATBIN, NULL);
  CUlibrary lib = NULL;
  REQUIRE_OK(load_preserved(&lib, fb));
  CUkernel kb = kernel(lib, BOUNDED), ka = kernel(lib, AXPY);

  /* The kernel's function in this context: the module's function. */
  CUfunction f = NULL, g = NULL;
  CUmodule m = NULL, fm = NULL;
  CHECK_OK(cuKernelGetFunction(&f, kb));
  CHECK_OK(cuLibraryGetModule(&m, lib));
  CHECK_OK(cuModuleGetFunction(&g, m, BOUNDED));
  CHECK_EQ_PTR(f, g);
  CHECK_OK(cuFuncGetModule(&fm, (CUfunction)kb));
  CHECK_EQ_PTR(fm, m);
  CUlibrary back = NULL;
  CHECK_OK(cuKernelGetLibrary(&back, kb));
  CHECK_EQ_PTR(back, lib);
  const char *name = NULL;
  CHECK_OK(cuKernelGetName(&name, kb));
  CHECK_STR_EQ(name, BOUNDED);
  name = NULL;
  CHECK_OK(cuFuncGetName(&name, (CUfunction)ka));
  CHECK_STR_EQ(name, AXPY);

  /* Attributes: __launch_bounds__(128), 256 bytes of shared memory. */
  int v = -1;
  CHECK_OK(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                                kb, dev));
  CHECK_EQ_I(v, 128);
  CHECK_OK(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, kb,
                                dev));
  CHECK_EQ_I(v, 256);
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                              (CUfunction)kb));
  CHECK_EQ_I(v, 128);
  /* Set for the kernel: its function sees it... */
  CHECK_OK(cuKernelSetAttribute(DYN_SMEM, 1024, kb, dev));
  CHECK_OK(cuFuncGetAttribute(&v, DYN_SMEM, f));
  CHECK_EQ_I(v, 1024);
  /* ... until the function's own setting, which wins either way, while
   * the kernel query keeps answering what was set for the kernel. */
  CHECK_OK(cuFuncSetAttribute(f, DYN_SMEM, 2048));
  CHECK_OK(cuKernelSetAttribute(DYN_SMEM, 512, kb, dev));
  CHECK_OK(cuFuncGetAttribute(&v, DYN_SMEM, f));
  CHECK_EQ_I(v, 2048);
  CHECK_OK(cuKernelGetAttribute(&v, DYN_SMEM, kb, dev));
  CHECK_EQ_I(v, 512);
  /* Read-only attributes and bad values are refused. */
  CHECK_CU(cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_NUM_REGS, 8, kb, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuKernelSetAttribute(
               CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 101, kb,
               dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX, kb, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, kb, 99),
           CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuKernelGetAttribute(NULL, CU_FUNC_ATTRIBUTE_NUM_REGS, kb, dev),
           CUDA_ERROR_INVALID_VALUE);
  /* Cache preferences. */
  CHECK_OK(cuKernelSetCacheConfig(kb, CU_FUNC_CACHE_PREFER_SHARED, dev));
  CHECK_CU(cuKernelSetCacheConfig(kb, (CUfunc_cache)7, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuKernelSetCacheConfig(kb, CU_FUNC_CACHE_PREFER_L1, -1),
           CUDA_ERROR_INVALID_DEVICE);
  CHECK_OK(cuFuncSetCacheConfig((CUfunction)kb, CU_FUNC_CACHE_PREFER_L1));

  /* Enumeration: the four kernels of lib_kernels.cu, in its order, as
   * cuLibraryGetKernel gives them. */
  unsigned cnt = 0;
  CHECK_OK(cuLibraryGetKernelCount(&cnt, lib));
  CHECK_EQ_U(cnt, 4);
  CUkernel all[5] = {NULL, NULL, NULL, NULL, NULL};
  CHECK_OK(cuLibraryEnumerateKernels(all, 5, lib));
  static const char *const names[] = {VECADD, AXPY, BUMP, BOUNDED};
  for (int i = 0; i < 4; i++) {
    CHECK_OK(cuKernelGetName(&name, all[i]));
    CHECK_STR_EQ(name, names[i]);
  }
  CHECK_EQ_PTR(all[1], ka);
  CHECK_EQ_PTR(all[3], kb);
  CHECK_TRUE(all[4] == NULL);
  CUkernel two[2] = {NULL, NULL};
  CHECK_OK(cuLibraryEnumerateKernels(two, 2, lib));
  CHECK_EQ_PTR(two[0], all[0]);
  CHECK_EQ_PTR(two[1], all[1]);
  CHECK_OK(cuModuleGetFunctionCount(&cnt, m));
  CHECK_EQ_U(cnt, 4);
  CUfunction fns[4] = {NULL, NULL, NULL, NULL};
  CHECK_OK(cuModuleEnumerateFunctions(fns, 4, m));
  CHECK_EQ_PTR(fns[3], f);
  CHECK_OK(cuFuncGetName(&name, fns[2]));
  CHECK_STR_EQ(name, BUMP);

  /* Parameters of axpyCoef(float, const float *, float *, int). */
  static const size_t off[] = {0, 8, 16, 24}, size[] = {4, 8, 8, 4};
  for (size_t i = 0; i < 4; i++) {
    size_t o = 99, s = 99;
    CHECK_OK(cuKernelGetParamInfo(ka, i, &o, &s));
    CHECK_EQ_U(o, off[i]);
    CHECK_EQ_U(s, size[i]);
    o = 99;
    CHECK_OK(cuFuncGetParamInfo((CUfunction)ka, i, &o, NULL));
    CHECK_EQ_U(o, off[i]);
  }
  size_t o;
  CHECK_CU(cuKernelGetParamInfo(ka, 4, &o, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuKernelGetParamInfo(ka, 0, NULL, NULL), CUDA_ERROR_INVALID_VALUE);

  /* The launch checks apply to a kernel as to its function. */
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, 256 * sizeof(int)));
  void *params[] = {&d};
  CHECK_CU(cuLaunchKernel((CUfunction)kb, 1, 1, 1, 256, 1, 1, 0, NULL,
                          params, NULL),
           CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES);
  CHECK_OK(cuLaunchKernel((CUfunction)kb, 1, 1, 1, 128, 1, 1, 0, NULL,
                          params, NULL));
  int out[128];
  CHECK_OK(cuMemcpyDtoH(out, d, sizeof out));
  int bad = 0;
  for (int i = 0; i < 128; i++)
    if (out[i] != 2 * (i & 63)) bad++;
  CHECK_EQ_I(bad, 0);
  /* cuLaunchKernelEx and the per-thread-stream form, with a kernel. */
  float x[64], y[64], a = 2.0f;
  int n = 64;
  for (int i = 0; i < 64; i++) x[i] = (float)i;
  CUdeviceptr dx = upload(x, sizeof x), dy = 0;
  REQUIRE_OK(cuMemAlloc(&dy, sizeof y));
  void *ap[] = {&a, &dx, &dy, &n};
  CUlaunchConfig cfg = {.gridDimX = 1, .gridDimY = 1, .gridDimZ = 1,
                        .blockDimX = 64, .blockDimY = 1, .blockDimZ = 1};
  CHECK_OK(cuLaunchKernelEx(&cfg, (CUfunction)ka, ap, NULL));
  CHECK_OK(cuMemcpyDtoH(y, dy, sizeof y));
  bad = 0;
  for (int i = 0; i < 64; i++)
    if (y[i] != 2.0f * x[i] + (float)((i & 3) + 1)) bad++;
  CHECK_EQ_I(bad, 0);
  CHECK_OK(cuLaunchKernel_ptsz((CUfunction)ka, 1, 1, 1, 64, 1, 1, 0, NULL,
                               ap, NULL));
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuLibraryUnload(lib));
  free(fb);
  (void)argc;
  (void)argv;
}

/* ---- globals ------------------------------------------------------------- */

static void test_libraries_globals(int argc, char **argv) {
  start();
  CUlibrary lib = NULL;
  REQUIRE_OK(load_plain(&lib, ptx));
  CUdeviceptr g = 0;
  size_t bytes = 0;
  CHECK_OK(cuLibraryGetGlobal(&g, &bytes, lib, "lib_counter"));
  CHECK_EQ_U(bytes, 4);
  int v = -1;
  CHECK_OK(cuMemcpyDtoH(&v, g, sizeof v));
  CHECK_EQ_I(v, 5);
  v = 41;
  CHECK_OK(cuMemcpyHtoD(g, &v, sizeof v));
  CHECK_EQ_I(run_bump((CUfunction)kernel(lib, BUMP)), 41);
  CHECK_OK(cuMemcpyDtoH(&v, g, sizeof v));
  CHECK_EQ_I(v, 42);
  /* The address is a device range the copy checks know. */
  CUdeviceptr base = 0;
  size_t rsize = 0;
  CHECK_OK(cuMemGetAddressRange(&base, &rsize, g));
  CHECK_EQ_U(base, g);
  CHECK_EQ_U(rsize, 4);
  CHECK_CU(cuMemcpyDtoH(&v, g, 8), CUDA_ERROR_INVALID_VALUE);
  /* Either output alone; unknown names; bad arguments. */
  CUdeviceptr g2 = 0;
  CHECK_OK(cuLibraryGetGlobal(&g2, NULL, lib, "lib_counter"));
  CHECK_EQ_U(g2, g);
  CHECK_OK(cuLibraryGetGlobal(NULL, &bytes, lib, "lib_counter"));
  CHECK_CU(cuLibraryGetGlobal(NULL, NULL, lib, "lib_counter"),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryGetGlobal(&g2, &bytes, lib, "nothing_here"),
           CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuLibraryGetGlobal(&g2, &bytes, lib, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryGetGlobal(&g2, &bytes, (CUlibrary)&v, "lib_counter"),
           CUDA_ERROR_INVALID_HANDLE);
  /* Managed variables do not exist yet: said on stderr. */
  struct capture cap;
  capture_begin(&cap);
  CUresult r = cuLibraryGetManaged(&g2, &bytes, lib, "lib_counter");
  char *said = capture_end(&cap);
  CHECK_EQ_I(r, CUDA_ERROR_NOT_SUPPORTED);
  CHECK_TRUE(strstr(said, "managed memory") != NULL);
  free(said);
  CHECK_CU(cuLibraryGetManaged(NULL, NULL, lib, "x"), CUDA_ERROR_INVALID_VALUE);
  /* No device has unified function pointers: NOT_FOUND, as documented. */
  void *fp = NULL;
  CHECK_CU(cuLibraryGetUnifiedFunction(&fp, lib, "anything"),
           CUDA_ERROR_NOT_FOUND);
  CHECK_OK(cuLibraryUnload(lib));
  (void)argc;
  (void)argv;
}

/* ---- two_contexts -------------------------------------------------------- */

/* One library, two contexts: each gets its own module (and variables),
 * loaded at the first use there; the second sends only the image's digest
 * (the trace, GPUPOOL_TRACE=1 for this scenario, says "cached"). */
static void test_libraries_two_contexts(int argc, char **argv) {
  CUcontext c1 = start();
  CUdevice dev = 0;
  CHECK_OK(cuCtxGetDevice(&dev));
  CUlibrary lib = NULL;
  REQUIRE_OK(load_plain(&lib, ptx));
  CUkernel kb = kernel(lib, BUMP);
  CHECK_EQ_I(run_bump((CUfunction)kb), 5);
  CHECK_EQ_I(run_bump((CUfunction)kb), 6);
  CUfunction f1 = NULL;
  CHECK_OK(cuKernelGetFunction(&f1, kb));

  CUcontext c2 = NULL;
  REQUIRE_OK(cuCtxCreate(&c2, NULL, 0, dev));
  struct capture cap;
  capture_begin(&cap);
  int first = run_bump((CUfunction)kb);
  char *trace = capture_end(&cap);
  CHECK_EQ_I(first, 5); /* a variable of its own */
  CHECK_EQ_I(count(trace, "loaded into context"), 1);
  CHECK_EQ_I(count(trace, ", cached)"), 1);
  free(trace);
  /* Made (and checked) in c2: vecadd is not looked up in c1. */
  CUkernel kv = kernel(lib, VECADD);
  CUfunction f2 = NULL;
  CHECK_OK(cuKernelGetFunction(&f2, kb));
  CHECK_NE_U((uintptr_t)f2, (uintptr_t)f1);
  CHECK_TRUE(run_vecadd((CUfunction)kv, 300, 7.0f));
  /* A context's function is not the other's. */
  void *none[] = {NULL};
  CHECK_CU(cuLaunchKernel(f1, 1, 1, 1, 1, 1, 1, 0, NULL, none, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  /* The kernel's settings go to its functions that exist, without asking
   * the server anything: vecadd has a function in c2 only, and the
   * library a module in both. With the server stopped, a round trip (a
   * lookup of vecadd in c1) would not come back. */
  CUfunction v2 = NULL;
  CHECK_OK(cuKernelGetFunction(&v2, kv));
  gpt_server_signal(&server, SIGSTOP, true);
  double t0 = gpt_now();
  CUresult set_r = cuKernelSetAttribute(DYN_SMEM, 256, kv, dev);
  CUresult cache_r =
      cuKernelSetCacheConfig(kv, CU_FUNC_CACHE_PREFER_SHARED, dev);
  double took = gpt_now() - t0;
  gpt_server_signal(&server, SIGCONT, true);
  CHECK_OK(set_r);
  CHECK_OK(cache_r);
  CHECK_LE_D(took, 1.0);
  int v = -1;
  CHECK_OK(cuFuncGetAttribute(&v, DYN_SMEM, v2));
  CHECK_EQ_I(v, 256);
  /* Back in the first: its module and counter as they were; no load. */
  CHECK_OK(cuCtxPushCurrent(c1));
  capture_begin(&cap);
  CHECK_EQ_I(run_bump((CUfunction)kb), 7);
  trace = capture_end(&cap);
  CHECK_EQ_I(count(trace, "loaded into context"), 0);
  free(trace);
  /* vecadd's function in c1, made now, gets the setting at once. */
  CUfunction v1 = NULL;
  CHECK_OK(cuKernelGetFunction(&v1, kv));
  CHECK_NE_U((uintptr_t)v1, (uintptr_t)v2);
  v = -1;
  CHECK_OK(cuFuncGetAttribute(&v, DYN_SMEM, v1));
  CHECK_EQ_I(v, 256);
  CHECK_TRUE(run_vecadd((CUfunction)kv, 300, 2.0f));
  CHECK_OK(cuCtxPopCurrent(NULL));
  CHECK_OK(cuLibraryUnload(lib));
  CHECK_OK(cuCtxDestroy(c2));
  (void)argc;
  (void)argv;
}

/* ---- lazy and eager ------------------------------------------------------ */

/* The default, lazy loading: a library touches the server at its first use
 * in a context, so machine code the device cannot run is refused there,
 * said once on stderr, and the same error comes back after without a
 * word. */
static void test_libraries_lazy(int argc, char **argv) {
  need_nvcc();
  start_server();
  REQUIRE_OK(cuInit(0));
  CUmoduleLoadingMode mode = 0;
  CHECK_OK(cuModuleGetLoadingMode(&mode));
  CHECK_EQ_I(mode, CU_MODULE_LAZY_LOADING);
  /* With no context at all, as cudart loads at start-up. */
  void *bad = read_image(LIB_SMONLY, NULL);
  void *good = read_image(LIB_FATBIN, NULL);
  CUlibrary lbad = NULL, lgood = NULL;
  CHECK_OK(load_preserved(&lbad, bad));
  CHECK_OK(load_preserved(&lgood, good));
  CUkernel k = NULL;
  /* Not checked against the image without a context: taken on trust. */
  CHECK_OK(cuLibraryGetKernel(&k, lgood, VECADD));
  CUcontext ctx = gpt_init_context(NULL);
  (void)ctx;
  CHECK_TRUE(run_vecadd((CUfunction)k, 400, 8.0f));
  struct capture cap;
  capture_begin(&cap);
  CUkernel kbad = NULL;
  CUresult r1 = cuLibraryGetKernel(&kbad, lbad, VECADD);
  CUmodule m = NULL;
  CUresult r2 = cuLibraryGetModule(&m, lbad);
  char *said = capture_end(&cap);
  CHECK_EQ_I(r1, CUDA_ERROR_NO_BINARY_FOR_GPU);
  CHECK_EQ_I(r2, CUDA_ERROR_NO_BINARY_FOR_GPU);
  CHECK_EQ_I(count(said, "could not load the library"), 1);
  CHECK_TRUE(strstr(said, "cuLibraryGetKernel") != NULL);
  CHECK_TRUE(strstr(said, "compute_75") != NULL);
  free(said);
  CHECK_OK(cuLibraryUnload(lbad));
  CHECK_OK(cuLibraryUnload(lgood));
  free(bad);
  free(good);
  (void)argc;
  (void)argv;
}

/* CUDA_MODULE_LOADING=EAGER (and GPUPOOL_TRACE=1) for this scenario: a
 * library is loaded into the current context at cuLibraryLoadData, so a
 * bad image fails there, and into every context that becomes usable
 * later. */
static void test_libraries_eager(int argc, char **argv) {
  need_nvcc();
  start_server();
  REQUIRE_OK(cuInit(0));
  CUmoduleLoadingMode mode = 0;
  CHECK_OK(cuModuleGetLoadingMode(&mode));
  CHECK_EQ_I(mode, CU_MODULE_EAGER_LOADING);
  /* Loaded before any context: a context that becomes usable gets it. */
  CUlibrary early = NULL;
  REQUIRE_OK(load_plain(&early, ptx));
  struct capture cap;
  capture_begin(&cap);
  CUcontext ctx = gpt_init_context(NULL);
  char *trace = capture_end(&cap);
  CHECK_EQ_I(count(trace, "(cuCtxCreate: library"), 1);
  free(trace);
  capture_begin(&cap);
  CHECK_EQ_I(run_bump((CUfunction)kernel(early, BUMP)), 5);
  trace = capture_end(&cap);
  CHECK_EQ_I(count(trace, "loaded into context"), 0);
  free(trace);

  /* Machine code only: refused at load, with the reason on stderr and in
   * the JIT error log. */
  void *bad = read_image(LIB_SMONLY, NULL);
  char err[512];
  CUjit_option jo[] = {CU_JIT_ERROR_LOG_BUFFER,
                       CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *jv[] = {err, (void *)(uintptr_t)sizeof err};
  CUlibrary lbad = NULL;
  capture_begin(&cap);
  CUresult r = cuLibraryLoadData(&lbad, bad, jo, jv, 2, NULL, NULL, 0);
  char *said = capture_end(&cap);
  CHECK_EQ_I(r, CUDA_ERROR_NO_BINARY_FOR_GPU);
  CHECK_EQ_I(count(said, "could not load the library"), 1);
  CHECK_TRUE(strstr(said, "compute_75") != NULL);
  CHECK_TRUE(strstr(err, "compute_75") != NULL);
  free(said);
  free(bad);
  /* A good one is in the context on return. */
  CUlibrary lib = NULL;
  capture_begin(&cap);
  r = load_plain(&lib, ptx);
  trace = capture_end(&cap);
  CHECK_OK(r);
  CHECK_EQ_I(count(trace, "(cuLibraryLoadData: library"), 1);
  free(trace);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 100, 9.0f));
  CHECK_OK(cuLibraryUnload(lib));
  CHECK_OK(cuLibraryUnload(early));
  (void)ctx;
  (void)argc;
  (void)argv;
}

/* ---- lifetimes ----------------------------------------------------------- */

/* Unloading invalidates the library's kernels, functions and modules. */
static void test_libraries_unload_stale(int argc, char **argv) {
  start();
  CUlibrary lib = NULL;
  REQUIRE_OK(load_plain(&lib, ptx));
  CUkernel k = kernel(lib, VECADD);
  CUfunction f = NULL;
  CUmodule m = NULL;
  CHECK_OK(cuKernelGetFunction(&f, k));
  CHECK_OK(cuLibraryGetModule(&m, lib));
  CHECK_TRUE(run_vecadd((CUfunction)k, 100, 1.0f));
  CHECK_OK(cuLibraryUnload(lib));
  void *none[] = {NULL, NULL, NULL, NULL};
  CHECK_CU(cuLaunchKernel((CUfunction)k, 1, 1, 1, 1, 1, 1, 0, NULL, none,
                          NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, none, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  const char *name = NULL;
  CHECK_CU(cuKernelGetName(&name, k), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuFuncGetName(&name, (CUfunction)k), CUDA_ERROR_INVALID_HANDLE);
  CUfunction f2 = NULL;
  CHECK_CU(cuKernelGetFunction(&f2, k), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleGetFunction(&f2, m, VECADD), CUDA_ERROR_INVALID_HANDLE);
  CUkernel k2 = NULL;
  CHECK_CU(cuLibraryGetKernel(&k2, lib, VECADD), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLibraryUnload(lib), CUDA_ERROR_INVALID_HANDLE);
  int v;
  CHECK_CU(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, k, 0),
           CUDA_ERROR_INVALID_HANDLE);
  /* A module of the library unloaded by hand: the library loads it again
   * at its next use. */
  REQUIRE_OK(load_plain(&lib, ptx));
  k = kernel(lib, BUMP);
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CHECK_OK(cuLibraryGetModule(&m, lib));
  CHECK_OK(cuModuleUnload(m));
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CHECK_OK(cuLibraryUnload(lib));
  /* The session is fine. */
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* A context destroyed, a primary context reset: the library's module
 * there is gone, and the next use in a new context loads it afresh. */
static void test_libraries_ctx_gone(int argc, char **argv) {
  CUcontext c1 = start();
  CUdevice dev = 0;
  CHECK_OK(cuCtxGetDevice(&dev));
  CUlibrary lib = NULL;
  REQUIRE_OK(load_plain(&lib, ptx));
  CUkernel k = kernel(lib, BUMP);
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CHECK_EQ_I(run_bump((CUfunction)k), 6);
  CUfunction f1 = NULL;
  CHECK_OK(cuKernelGetFunction(&f1, k));
  CHECK_OK(cuCtxDestroy(c1));
  void *none[] = {NULL};
  CHECK_CU(cuLaunchKernel((CUfunction)k, 1, 1, 1, 1, 1, 1, 0, NULL, none,
                          NULL),
           CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuFuncGetAttribute(&(int){0}, CU_FUNC_ATTRIBUTE_NUM_REGS, f1),
           CUDA_ERROR_INVALID_HANDLE);
  CUcontext c2 = NULL;
  REQUIRE_OK(cuCtxCreate(&c2, NULL, 0, dev));
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CHECK_OK(cuCtxDestroy(c2));

  /* The primary context, as cudart uses it: reset, then retained again. */
  CUcontext p = NULL;
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p, dev));
  REQUIRE_OK(cuCtxSetCurrent(p));
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CHECK_EQ_I(run_bump((CUfunction)k), 6);
  /* What the kernel was told reaches its function in the next incarnation
   * too, made anew there. */
  CHECK_OK(cuKernelSetAttribute(DYN_SMEM, 128, k, dev));
  CHECK_OK(cuDevicePrimaryCtxReset(dev));
  CHECK_CU(cuLaunchKernel((CUfunction)k, 1, 1, 1, 1, 1, 1, 0, NULL, none,
                          NULL),
           CUDA_ERROR_CONTEXT_IS_DESTROYED);
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p, dev));
  CHECK_EQ_I(run_bump((CUfunction)k), 5);
  CUfunction f3 = NULL;
  int dyn = -1;
  CHECK_OK(cuKernelGetFunction(&f3, k));
  CHECK_OK(cuFuncGetAttribute(&dyn, DYN_SMEM, f3));
  CHECK_EQ_I(dyn, 128);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 200, 3.0f));
  CHECK_OK(cuLibraryUnload(lib));
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  (void)argc;
  (void)argv;
}

/* ---- -rdc=true programs -------------------------------------------------- */

/* The version-2 wrapper of a -rdc=true program: the device-link output and
 * the objects' fatbins, as nvcc embeds them. */
static void test_libraries_rdc(int argc, char **argv) {
  need_nvcc();
  start();
  void *dl = read_image(LIB_RDC_DLINK, NULL);
  void *a = read_image(LIB_RDC_A, NULL), *b = read_image(LIB_RDC_B, NULL);
  const void *objs[] = {a, b, NULL};
  struct wrapper w = {WRAPPER_MAGIC, 2, dl, objs};
  CUlibrary lib = NULL;
  REQUIRE_OK(load_preserved(&lib, &w));
  /* lib_apply (lib_rdc_a.cu) calls lib_scale and counts in lib_hits, both
   * of lib_rdc_b.cu. */
  enum { N = 500 };
  float in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = 0.5f * (float)i;
  CUdeviceptr din = upload(in, sizeof in), dout = 0;
  REQUIRE_OK(cuMemAlloc(&dout, sizeof out));
  int n = N;
  void *params[] = {&dout, &din, &n};
  CHECK_OK(cuLaunchKernel((CUfunction)kernel(lib, RDC_APPLY), (N + 127) / 128,
                          1, 1, 128, 1, 1, 0, NULL, params, NULL));
  CHECK_OK(cuMemcpyDtoH(out, dout, sizeof out));
  int bad = 0;
  for (int i = 0; i < N; i++)
    if (out[i] != in[i] * 3.0f + 1.0f + (float)(i % 3) + (float)(2 * i))
      bad++;
  CHECK_EQ_I(bad, 0);
  /* lib_count (lib_rdc_b.cu) sees the hits; its static local_bias and the
   * shared template are right. */
  int cnt[2] = {0, 0};
  CUdeviceptr dc = 0;
  REQUIRE_OK(cuMemAlloc(&dc, sizeof cnt));
  void *cp[] = {&dc};
  CHECK_OK(cuLaunchKernel((CUfunction)kernel(lib, RDC_COUNT), 1, 1, 1, 1, 1,
                          1, 0, NULL, cp, NULL));
  CHECK_OK(cuMemcpyDtoH(cnt, dc, sizeof cnt));
  CHECK_EQ_I(cnt[0], N);
  CHECK_EQ_I(cnt[1], 110);
  /* Both objects' kernels, in the order of their units. */
  unsigned nk = 0;
  CHECK_OK(cuLibraryGetKernelCount(&nk, lib));
  CHECK_EQ_U(nk, 2);
  CUkernel ks[2] = {NULL, NULL};
  const char *kn = NULL;
  CHECK_OK(cuLibraryEnumerateKernels(ks, 2, lib));
  CHECK_OK(cuKernelGetName(&kn, ks[0]));
  CHECK_STR_EQ(kn, RDC_APPLY);
  CHECK_OK(cuKernelGetName(&kn, ks[1]));
  CHECK_STR_EQ(kn, RDC_COUNT);
  /* The variable both objects share, through the library. */
  CUdeviceptr g = 0;
  size_t bytes = 0;
  CHECK_OK(cuLibraryGetGlobal(&g, &bytes, lib, "lib_hits"));
  CHECK_EQ_U(bytes, 4);
  int hits = 0;
  CHECK_OK(cuMemcpyDtoH(&hits, g, sizeof hits));
  CHECK_EQ_I(hits, N);
  float factor = 0.0f;
  CHECK_OK(cuLibraryGetGlobal(&g, &bytes, lib, "lib_factor"));
  CHECK_OK(cuMemcpyDtoH(&factor, g, sizeof factor));
  CHECK_TRUE(factor == 3.0f);
  CHECK_OK(cuLibraryUnload(lib));

  /* Without lib_rdc_b.cu's object, lib_scale is defined nowhere: the load
   * fails naming it. */
  const void *half[] = {a, NULL};
  struct wrapper w2 = {WRAPPER_MAGIC, 2, dl, half};
  struct capture cap;
  capture_begin(&cap);
  CUkernel k = NULL;
  CUresult r = load_preserved(&lib, &w2);
  if (r == CUDA_SUCCESS) r = cuLibraryGetKernel(&k, lib, RDC_APPLY);
  char *said = capture_end(&cap);
  CHECK_EQ_I(r, CUDA_ERROR_NOT_FOUND);
  CHECK_TRUE(strstr(said, "_Z9lib_scalef") != NULL);
  free(said);
  CHECK_OK(cuLibraryUnload(lib));
  free(dl);
  free(a);
  free(b);
  (void)argc;
  (void)argv;
}

/* A single-file -rdc=true program: its one object's PTX alone. */
static void test_libraries_rdc_single(int argc, char **argv) {
  need_nvcc();
  start();
  void *dl = read_image(LIB_ONE_DLINK, NULL);
  void *obj = read_image(LIB_ONE_RDC, NULL);
  const void *objs[] = {obj, NULL};
  struct wrapper w = {WRAPPER_MAGIC, 2, dl, objs};
  CUlibrary lib = NULL;
  REQUIRE_OK(load_preserved(&lib, &w));
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 600, 10.0f));
  CHECK_EQ_I(run_bump((CUfunction)kernel(lib, BUMP)), 5);
  CHECK_OK(cuLibraryUnload(lib));
  free(dl);
  free(obj);
  (void)argc;
  (void)argv;
}

/* ---- big_image ----------------------------------------------------------- */

/* An image larger than a frame's payload (64 MiB) travels in parts: nvcc's
 * fatbin with 80 MiB of machine code in front of its entries (GPUPOOL_TRACE
 * is on for this scenario: the second context gets it from the server's
 * cache). Over 256 MiB an image is refused before anything is sent. */
static void test_libraries_big_image(int argc, char **argv) {
  need_nvcc();
  CUcontext c1 = start();
  size_t len = 0;
  uint8_t *fb = read_image(LIB_FATBIN, &len);
  uint64_t entries;
  memcpy(&entries, fb + 8, 8);
  REQUIRE_TRUE(16 + entries == len);
  const uint64_t big = 80ull << 20;
  size_t total = 16 + 64 + big + entries;
  uint8_t *img = gpt_xmalloc(total);
  memcpy(img, fb, 16);
  uint64_t new_entries = 64 + big + entries;
  memcpy(img + 8, &new_entries, 8);
  /* A machine code entry (kind 2, sm_75) the device ignores. */
  uint8_t *e = img + 16;
  memset(e, 0, 64);
  e[0] = 2;
  uint32_t hs = 64, sm = 75;
  memcpy(e + 4, &hs, 4);
  memcpy(e + 8, &big, 8);
  memcpy(e + 28, &sm, 4);
  e[40] = 0x11;
  gpt_fill(e + 64, big, 42);
  memcpy(e + 64 + big, fb + 16, entries);
  free(fb);

  CUlibrary lib = NULL;
  REQUIRE_OK(load_plain(&lib, img));
  double t0 = gpt_now();
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 500, 11.0f));
  printf("first use of a %zu-byte library: %.3f s\n", total,
         gpt_now() - t0);
  CUdevice dev = 0;
  CHECK_OK(cuCtxGetDevice(&dev));
  CUcontext c2 = NULL;
  REQUIRE_OK(cuCtxCreate(&c2, NULL, 0, dev));
  struct capture cap;
  capture_begin(&cap);
  CHECK_TRUE(run_vecadd((CUfunction)kernel(lib, VECADD), 300, 12.0f));
  char *trace = capture_end(&cap);
  CHECK_EQ_I(count(trace, ", cached)"), 1);
  free(trace);
  /* The module API takes it too, from the cache. */
  CUmodule m = NULL;
  CHECK_OK(cuModuleLoadData(&m, img));
  CUfunction f = NULL;
  CHECK_OK(cuModuleGetFunction(&f, m, VECADD));
  CHECK_TRUE(run_vecadd(f, 200, 13.0f));
  CHECK_OK(cuModuleUnload(m));
  CHECK_OK(cuLibraryUnload(lib));
  CHECK_OK(cuCtxDestroy(c2));
  CHECK_OK(cuCtxPushCurrent(c1));
  free(img);

  /* A fatbin that says it is 300 MiB: refused from its header. */
  uint8_t head[16] = {0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0};
  uint64_t huge = 300ull << 20;
  memcpy(head + 8, &huge, 8);
  capture_begin(&cap);
  CUresult r = load_plain(&lib, head);
  char *said = capture_end(&cap);
  CHECK_EQ_I(r, CUDA_ERROR_INVALID_VALUE);
  CHECK_TRUE(strstr(said, "over 256 MiB") != NULL);
  free(said);
  (void)argc;
  (void)argv;
}

/* ---- bad_inputs ---------------------------------------------------------- */

static void test_libraries_bad_inputs(int argc, char **argv) {
  start();
  CUlibrary lib = NULL;
  CHECK_CU(load_plain(NULL, ptx), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(load_plain(&lib, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(load_plain(&lib, "this is no image at all"),
           CUDA_ERROR_INVALID_IMAGE);
  static const uint32_t bad_wrapper[6] = {WRAPPER_MAGIC, 3};
  CHECK_CU(load_plain(&lib, bad_wrapper), CUDA_ERROR_INVALID_IMAGE);
  CHECK_CU(cuLibraryLoadFromFile(&lib, NULL, NULL, NULL, 0, NULL, NULL, 0),
           CUDA_ERROR_INVALID_VALUE);
  /* Options: unknown ones, bad values, missing arrays. */
  CUjit_option jo = (CUjit_option)9999;
  void *jv = NULL;
  CHECK_CU(cuLibraryLoadData(&lib, ptx, &jo, &jv, 1, NULL, NULL, 0),
           CUDA_ERROR_INVALID_VALUE);
  jo = CU_JIT_OPTIMIZATION_LEVEL;
  jv = (void *)(uintptr_t)5;
  CHECK_CU(cuLibraryLoadData(&lib, ptx, &jo, &jv, 1, NULL, NULL, 0),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryLoadData(&lib, ptx, NULL, NULL, 1, NULL, NULL, 0),
           CUDA_ERROR_INVALID_VALUE);
  CUlibraryOption lo = CU_LIBRARY_NUM_OPTIONS;
  void *lv = NULL;
  CHECK_CU(cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, &lo, &lv, 1),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 1),
           CUDA_ERROR_INVALID_VALUE);
  lo = CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE;
  CHECK_OK(cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, &lo, &lv, 1));
  CHECK_OK(cuLibraryUnload(lib));

  /* Lazy: a PTX error shows at the first use, with the line. */
  CUlibrary broken = NULL;
  REQUIRE_OK(load_plain(&broken,
                        ".version 9.0\n.target sm_75\n.address_size 64\n"
                        ".visible .entry k()\n{\n  frobnicate;\n}\n"));
  struct capture cap;
  capture_begin(&cap);
  CUkernel k = NULL;
  CUresult r = cuLibraryGetKernel(&k, broken, "k");
  char *said = capture_end(&cap);
  CHECK_EQ_I(r, CUDA_ERROR_INVALID_PTX);
  CHECK_TRUE(strstr(said, "frobnicate") != NULL);
  free(said);
  CHECK_OK(cuLibraryUnload(broken));

  REQUIRE_OK(load_plain(&lib, ptx));
  /* Kernel names: unknown, impossible, NULL; handles: invented. */
  CHECK_CU(cuLibraryGetKernel(&k, lib, "_Z7nothingv"), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuLibraryGetKernel(&k, lib, ""), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuLibraryGetKernel(&k, lib, "lib_counter"), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuLibraryGetKernel(&k, lib, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryGetKernel(NULL, lib, VECADD), CUDA_ERROR_INVALID_VALUE);
  int junk[8] = {0};
  CHECK_CU(cuLibraryGetKernel(&k, (CUlibrary)junk, VECADD),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLibraryGetKernel(&k, NULL, VECADD), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLibraryUnload((CUlibrary)junk), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLibraryUnload(NULL), CUDA_ERROR_INVALID_HANDLE);
  const char *name = NULL;
  CHECK_CU(cuKernelGetName(&name, (CUkernel)junk), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuKernelGetName(NULL, kernel(lib, VECADD)),
           CUDA_ERROR_INVALID_VALUE);
  CUfunction f = NULL;
  CHECK_CU(cuKernelGetFunction(&f, (CUkernel)junk),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuKernelGetFunction(NULL, kernel(lib, VECADD)),
           CUDA_ERROR_INVALID_VALUE);
  CUlibrary back = NULL;
  CHECK_CU(cuKernelGetLibrary(&back, (CUkernel)junk),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuKernelGetLibrary(NULL, kernel(lib, VECADD)),
           CUDA_ERROR_INVALID_VALUE);
  CUmodule m = NULL;
  CHECK_CU(cuLibraryGetModule(NULL, lib), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryGetModule(&m, (CUlibrary)junk),
           CUDA_ERROR_INVALID_HANDLE);
  void *none[] = {NULL};
  CHECK_CU(cuLaunchKernel((CUfunction)junk, 1, 1, 1, 1, 1, 1, 0, NULL, none,
                          NULL),
           CUDA_ERROR_INVALID_HANDLE);
  /* Kernel enumeration: bad arguments. */
  unsigned cnt = 0;
  CHECK_CU(cuLibraryGetKernelCount(NULL, lib), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLibraryGetKernelCount(&cnt, (CUlibrary)junk),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLibraryEnumerateKernels(NULL, 2, lib), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetFunctionCount(NULL, m), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetFunctionCount(&cnt, (CUmodule)junk),
           CUDA_ERROR_INVALID_HANDLE);
  /* Without a current context, what needs one says so. */
  CUcontext cur = NULL;
  CHECK_OK(cuCtxPopCurrent(&cur));
  /* The kernels are known from the context that has the library. */
  CHECK_OK(cuLibraryGetKernelCount(&cnt, lib));
  CHECK_EQ_U(cnt, 2);
  CUkernel kv = kernel(lib, VECADD);
  CHECK_CU(cuKernelGetFunction(&f, kv), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuLibraryGetModule(&m, lib), CUDA_ERROR_INVALID_CONTEXT);
  CUdeviceptr g;
  size_t bytes;
  CHECK_CU(cuLibraryGetGlobal(&g, &bytes, lib, "lib_counter"),
           CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuLaunchKernel((CUfunction)kv, 1, 1, 1, 1, 1, 1, 0, NULL, none,
                          NULL),
           CUDA_ERROR_INVALID_CONTEXT);
  /* ... what does not, does not. */
  CHECK_OK(cuKernelGetName(&name, kv));
  CHECK_STR_EQ(name, VECADD);
  size_t off = 99;
  CHECK_OK(cuKernelGetParamInfo(kv, 3, &off, NULL));
  CHECK_EQ_U(off, 24);
  CHECK_OK(cuCtxPushCurrent(cur));
  CHECK_OK(cuLibraryUnload(lib));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"wrapper_v1", test_libraries_wrapper_v1, 60},
      {"wrapper_v2", test_libraries_wrapper_v2, 60},
      {"kinds", test_libraries_kinds, 60},
      {"kernel_queries", test_libraries_kernel_queries, 60},
      {"globals", test_libraries_globals, 60},
      {"two_contexts", test_libraries_two_contexts, 60},
      {"lazy", test_libraries_lazy, 60},
      {"eager", test_libraries_eager, 60},
      {"unload_stale", test_libraries_unload_stale, 60},
      {"ctx_gone", test_libraries_ctx_gone, 60},
      {"rdc", test_libraries_rdc, 60},
      {"rdc_single", test_libraries_rdc_single, 60},
      {"bad_inputs", test_libraries_bad_inputs, 60},
      {"big_image", test_libraries_big_image, 120},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
