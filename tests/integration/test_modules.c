/* Integration: modules, functions and kernel launches. Loading PTX written
 * here by hand (and fatbins built around it), looking functions up (once:
 * a second lookup is the same handle), their parameter layout and
 * attributes, launches with kernelParams, with `extra` and through
 * cuLaunchKernelEx, module globals used with the copy functions, the image
 * cache (the same bytes loaded twice), unloading and contexts taking their
 * modules with them, and the driver's errors for bad images and bad launch
 * configurations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct gpt_server server;

static CUcontext start(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  return gpt_init_context(NULL);
}

/* Five kernels and two globals, written the way nvcc writes PTX:
 *   vadd(a, b, c, n)        c[i] = a[i] + b[i] for i < n
 *   layout(out, x, y, z)    a u64, u32, u8, u64 layout (offsets 0, 8, 12,
 *                           16; 24 bytes): stores x, y, z at out
 *   bounded()               .maxntid 128: at most 128 threads a block
 *   bump(out)               *out = counter; counter += 1
 *   smem(out)               1 KiB of static shared memory; each thread
 *                           writes its index to dynamic shared memory,
 *                           reads it back and stores it at out[tid] */
static const char ptx[] =
    "//\n"
    "// Written by hand for gpupool's integration tests.\n"
    "//\n"
    "\n"
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .global .align 4 .u32 counter = 7;\n"
    ".visible .global .align 8 .b8 table[256];\n"
    ".extern .shared .align 4 .b8 dyn[];\n"
    "\n"
    ".visible .entry vadd(\n"
    "  .param .u64 vadd_param_0,\n"
    "  .param .u64 vadd_param_1,\n"
    "  .param .u64 vadd_param_2,\n"
    "  .param .u32 vadd_param_3\n"
    ")\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<6>;\n"
    "  .reg .f32 %f<4>;\n"
    "  .reg .b64 %rd<11>;\n"
    "\n"
    "  ld.param.u64 %rd1, [vadd_param_0];\n"
    "  ld.param.u64 %rd2, [vadd_param_1];\n"
    "  ld.param.u64 %rd3, [vadd_param_2];\n"
    "  ld.param.u32 %r2, [vadd_param_3];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.u32 %p1, %r1, %r2;\n"
    "  @%p1 bra $L__BB0_2;\n"
    "  cvta.to.global.u64 %rd4, %rd1;\n"
    "  cvta.to.global.u64 %rd5, %rd2;\n"
    "  cvta.to.global.u64 %rd6, %rd3;\n"
    "  mul.wide.u32 %rd7, %r1, 4;\n"
    "  add.s64 %rd8, %rd4, %rd7;\n"
    "  add.s64 %rd9, %rd5, %rd7;\n"
    "  add.s64 %rd10, %rd6, %rd7;\n"
    "  ld.global.f32 %f1, [%rd8];\n"
    "  ld.global.f32 %f2, [%rd9];\n"
    "  add.f32 %f3, %f1, %f2;\n"
    "  st.global.f32 [%rd10], %f3;\n"
    "$L__BB0_2:\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry layout(\n"
    "  .param .u64 layout_param_0,\n"
    "  .param .u32 layout_param_1,\n"
    "  .param .u8 layout_param_2,\n"
    "  .param .u64 layout_param_3\n"
    ")\n"
    "{\n"
    "  .reg .b16 %rs<2>;\n"
    "  .reg .b32 %r<3>;\n"
    "  .reg .b64 %rd<4>;\n"
    "\n"
    "  ld.param.u64 %rd1, [layout_param_0];\n"
    "  ld.param.u32 %r1, [layout_param_1];\n"
    "  ld.param.u8 %rs1, [layout_param_2];\n"
    "  ld.param.u64 %rd2, [layout_param_3];\n"
    "  cvta.to.global.u64 %rd3, %rd1;\n"
    "  cvt.u32.u16 %r2, %rs1;\n"
    "  st.global.u32 [%rd3], %r1;\n"
    "  st.global.u32 [%rd3+4], %r2;\n"
    "  st.global.u64 [%rd3+8], %rd2;\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry bounded()\n"
    ".maxntid 128, 1, 1\n"
    "{\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry bump(\n"
    "  .param .u64 bump_param_0\n"
    ")\n"
    "{\n"
    "  .reg .b32 %r<3>;\n"
    "  .reg .b64 %rd<3>;\n"
    "\n"
    "  ld.param.u64 %rd1, [bump_param_0];\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  ld.global.u32 %r1, [counter];\n"
    "  st.global.u32 [%rd2], %r1;\n"
    "  add.s32 %r2, %r1, 1;\n"
    "  st.global.u32 [counter], %r2;\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry smem(\n"
    "  .param .u64 smem_param_0\n"
    ")\n"
    "{\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  .shared .align 4 .b8 stat[1024];\n"
    "\n"
    "  ld.param.u64 %rd1, [smem_param_0];\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mov.u32 %r1, %tid.x;\n"
    "  shl.b32 %r2, %r1, 2;\n"
    "  mov.u32 %r3, dyn;\n"
    "  add.s32 %r4, %r3, %r2;\n"
    "  st.shared.u32 [%r4], %r1;\n"
    "  mov.u32 %r6, stat;\n"
    "  st.shared.u32 [%r6], %r1;\n"
    "  bar.sync 0;\n"
    "  ld.shared.u32 %r5, [%r4];\n"
    "  mul.wide.u32 %rd3, %r1, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  st.global.u32 [%rd4], %r5;\n"
    "  ret;\n"
    "}\n";

/* ---- helpers -------------------------------------------------------------- */

static CUmodule load(void) {
  CUmodule m = NULL;
  REQUIRE_OK(cuModuleLoadData(&m, ptx));
  REQUIRE_TRUE(m != NULL);
  return m;
}

static CUfunction get(CUmodule m, const char *name) {
  CUfunction f = NULL;
  REQUIRE_OK(cuModuleGetFunction(&f, m, name));
  REQUIRE_TRUE(f != NULL);
  return f;
}

static void wr32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A version-1 fatbin holding |text| as one raw (uncompressed) PTX entry
 * for sm_75, laid out as nvcc does (docs/cuda-driver-facts.md): a 16-byte
 * header, an 80-byte entry header, the text, its NUL, padding to 8. The
 * caller frees it. */
static uint8_t *fatbin_of(const char *text, size_t *len) {
  size_t n = strlen(text) + 1, padded = (n + 7) & ~(size_t)7;
  size_t total = 16 + 80 + padded;
  uint8_t *b = calloc(1, total);
  REQUIRE_TRUE(b != NULL);
  wr32(b, 0xBA55ED50u);
  b[4] = 1;  /* version 1 */
  b[6] = 16; /* header size */
  wr64(b + 8, total - 16);
  uint8_t *e = b + 16;
  e[0] = 1;                /* kind: PTX */
  e[2] = 0x01;
  e[3] = 0x01;
  wr32(e + 4, 80);         /* entry header size */
  wr64(e + 8, padded);     /* payload size */
  wr32(e + 28, 75);        /* SM */
  wr64(e + 40, 0x11);      /* 64-bit, Linux */
  memcpy(e + 80, text, n);
  *len = total;
  return b;
}

/* Runs vadd from |f| over |n| floats on |stream| with kernelParams and
 * checks the sums. */
static void vadd_check(CUfunction f, unsigned n, CUstream stream) {
  size_t bytes = n * sizeof(float);
  float *a = gpt_xmalloc(bytes), *b = gpt_xmalloc(bytes),
        *c = gpt_xmalloc(bytes);
  for (unsigned i = 0; i < n; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)i + 1.0f;
  }
  CUdeviceptr da, db, dc;
  REQUIRE_OK(cuMemAlloc(&da, bytes));
  REQUIRE_OK(cuMemAlloc(&db, bytes));
  REQUIRE_OK(cuMemAlloc(&dc, bytes));
  CHECK_OK(cuMemcpyHtoD(da, a, bytes));
  CHECK_OK(cuMemcpyHtoD(db, b, bytes));
  CHECK_OK(cuMemsetD8(dc, 0, bytes));
  void *args[] = {&da, &db, &dc, &n};
  CHECK_OK(cuLaunchKernel(f, (n + 127) / 128, 1, 1, 128, 1, 1, 0, stream,
                          args, NULL));
  CHECK_OK(cuStreamSynchronize(stream));
  memset(c, 0, bytes);
  CHECK_OK(cuMemcpyDtoH(c, dc, bytes));
  unsigned bad = 0;
  for (unsigned i = 0; i < n; i++)
    if (c[i] != a[i] + b[i]) bad++;
  CHECK_EQ_U(bad, 0);
  CHECK_OK(cuMemFree(da));
  CHECK_OK(cuMemFree(db));
  CHECK_OK(cuMemFree(dc));
  free(a);
  free(b);
  free(c);
}

/* ---- load, look up, launch ------------------------------------------------------ */

static void test_modules_load_launch(int argc, char **argv) {
  start();
  CUmodule m = load();
  CUfunction f = get(m, "vadd");
  /* The second lookup is answered from the client's table: same handle. */
  CUfunction f2 = NULL;
  CHECK_OK(cuModuleGetFunction(&f2, m, "vadd"));
  CHECK_EQ_PTR(f2, f);
  CUfunction g = get(m, "layout");
  CHECK_TRUE(g != f);

  const char *name = NULL;
  CHECK_OK(cuFuncGetName(&name, f));
  CHECK_STR_EQ(name, "vadd");
  CUmodule back = NULL;
  CHECK_OK(cuFuncGetModule(&back, g));
  CHECK_EQ_PTR(back, m);
  CUfunctionLoadingState st = CU_FUNCTION_LOADING_STATE_UNLOADED;
  CHECK_OK(cuFuncIsLoaded(&st, f));
  CHECK_EQ_I(st, CU_FUNCTION_LOADING_STATE_LOADED);
  CHECK_OK(cuFuncLoad(f));
  CUmoduleLoadingMode mode = 0;
  CHECK_OK(cuModuleGetLoadingMode(&mode));
  /* Lazy unless CUDA_MODULE_LOADING=EAGER, as the driver since 12.2. */
  const char *ml = getenv("CUDA_MODULE_LOADING");
  CHECK_EQ_I(mode, ml != NULL && strcmp(ml, "EAGER") == 0
                       ? CU_MODULE_EAGER_LOADING
                       : CU_MODULE_LAZY_LOADING);

  /* Parameter layouts. */
  static const size_t voff[] = {0, 8, 16, 24}, vsize[] = {8, 8, 8, 4};
  for (size_t i = 0; i < 4; i++) {
    size_t off = 99, size = 99;
    CHECK_OK(cuFuncGetParamInfo(f, i, &off, &size));
    CHECK_EQ_U(off, voff[i]);
    CHECK_EQ_U(size, vsize[i]);
  }
  static const size_t loff[] = {0, 8, 12, 16}, lsize[] = {8, 4, 1, 8};
  for (size_t i = 0; i < 4; i++) {
    size_t off = 99, size = 99;
    CHECK_OK(cuFuncGetParamInfo(g, i, &off, &size));
    CHECK_EQ_U(off, loff[i]);
    CHECK_EQ_U(size, lsize[i]);
  }
  size_t off = 0, size = 0;
  CHECK_OK(cuFuncGetParamInfo(g, 2, &off, NULL));
  CHECK_EQ_U(off, 12);
  CHECK_CU(cuFuncGetParamInfo(f, 4, &off, &size), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncGetParamInfo(f, 0, NULL, &size), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncGetParamInfo(get(m, "bounded"), 0, &off, &size),
           CUDA_ERROR_INVALID_VALUE);

  /* kernelParams, on the default stream and on a stream of our own; sizes
   * that leave a partial block. */
  vadd_check(f, 1000, NULL);
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  vadd_check(f, 4096, s);
  vadd_check(f, 1, CU_STREAM_PER_THREAD);

  /* The packing honours each parameter's offset and size. */
  CUdeviceptr out;
  REQUIRE_OK(cuMemAlloc(&out, 16));
  uint32_t x = 0xdeadbeef;
  uint8_t y = 0xa5;
  uint64_t z = 0x0123456789abcdefull;
  void *largs[] = {&out, &x, &y, &z};
  CHECK_OK(cuLaunchKernel(g, 1, 1, 1, 1, 1, 1, 0, NULL, largs, NULL));
  uint8_t got[16];
  CHECK_OK(cuMemcpyDtoH(got, out, 16));
  uint32_t gx, gy;
  uint64_t gz;
  memcpy(&gx, got, 4);
  memcpy(&gy, got + 4, 4);
  memcpy(&gz, got + 8, 8);
  CHECK_EQ_U(gx, x);
  CHECK_EQ_U(gy, y);
  CHECK_EQ_U(gz, z);

  /* The same through `extra`: the application's own packed buffer. */
  uint8_t buf[24];
  memset(buf, 0, sizeof buf);
  wr64(buf, out);
  wr32(buf + 8, 0x11223344u);
  buf[12] = 0x5a;
  wr64(buf + 16, 42);
  size_t bufsize = sizeof buf;
  void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
                   CU_LAUNCH_PARAM_BUFFER_SIZE, &bufsize, CU_LAUNCH_PARAM_END};
  CHECK_OK(cuLaunchKernel(g, 1, 1, 1, 1, 1, 1, 0, s, NULL, extra));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuMemcpyDtoH(got, out, 16));
  memcpy(&gx, got, 4);
  memcpy(&gy, got + 4, 4);
  memcpy(&gz, got + 8, 8);
  CHECK_EQ_U(gx, 0x11223344u);
  CHECK_EQ_U(gy, 0x5a);
  CHECK_EQ_U(gz, 42);
  /* A larger buffer is fine (only the layout's bytes are used); NULL ends
   * the list as CU_LAUNCH_PARAM_END does. */
  uint8_t big[64];
  memset(big, 0, sizeof big);
  memcpy(big, buf, sizeof buf);
  size_t bigsize = sizeof big;
  void *extra2[] = {CU_LAUNCH_PARAM_BUFFER_SIZE, &bigsize,
                    CU_LAUNCH_PARAM_BUFFER_POINTER, big, NULL};
  CHECK_OK(cuLaunchKernel(g, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra2));

  /* cuLaunchKernelEx, with attributes that change nothing. */
  CUlaunchAttribute attrs[3];
  memset(attrs, 0, sizeof attrs);
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
  attrs[0].value.priority = -1;
  attrs[1].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attrs[1].value.clusterDim.x = 1;
  attrs[1].value.clusterDim.y = 1;
  attrs[1].value.clusterDim.z = 1;
  attrs[2].id = CU_LAUNCH_ATTRIBUTE_IGNORE;
  CUlaunchConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = 1;
  cfg.blockDimX = cfg.blockDimY = cfg.blockDimZ = 1;
  cfg.hStream = s;
  cfg.attrs = attrs;
  cfg.numAttrs = 3;
  x = 77;
  CHECK_OK(cuLaunchKernelEx(&cfg, g, largs, NULL));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuMemcpyDtoH(got, out, 16));
  memcpy(&gx, got, 4);
  CHECK_EQ_U(gx, 77);

  /* A launch-completion event is recorded with the launch. */
  CUevent ev;
  REQUIRE_OK(cuEventCreate(&ev, 0));
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_LAUNCH_COMPLETION_EVENT;
  attrs[0].value.launchCompletionEvent.event = ev;
  attrs[0].value.launchCompletionEvent.flags = 0;
  cfg.numAttrs = 1;
  CHECK_OK(cuLaunchKernelEx(&cfg, g, largs, NULL));
  CHECK_OK(cuEventSynchronize(ev));

  /* An event of another context is refused, as cuEventRecord refuses it,
   * whichever attribute names it, and the kernel does not run. */
  CUcontext cur, other, popped;
  CUdevice dev;
  CUevent oev;
  REQUIRE_OK(cuCtxGetCurrent(&cur));
  REQUIRE_OK(cuCtxGetDevice(&dev));
  REQUIRE_OK(cuCtxCreate(&other, NULL, 0, dev));
  REQUIRE_OK(cuEventCreate(&oev, 0));
  REQUIRE_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, other);
  CHECK_CU(cuEventRecord(oev, s), CUDA_ERROR_INVALID_HANDLE);
  x = 99;
  attrs[0].value.launchCompletionEvent.event = oev;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_INVALID_HANDLE);
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT;
  attrs[0].value.programmaticEvent.event = oev;
  attrs[0].value.programmaticEvent.flags = 0;
  attrs[0].value.programmaticEvent.triggerAtBlockStart = 0;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_INVALID_HANDLE);
  /* One event of this context and one of the other: refused too. */
  attrs[1].id = CU_LAUNCH_ATTRIBUTE_LAUNCH_COMPLETION_EVENT;
  attrs[1].value.launchCompletionEvent.event = ev;
  attrs[1].value.launchCompletionEvent.flags = 0;
  cfg.numAttrs = 2;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuMemcpyDtoH(got, out, 16));
  memcpy(&gx, got, 4);
  CHECK_EQ_U(gx, 77);
  /* The same event of this context, as the programmatic one, works. */
  attrs[0].value.programmaticEvent.event = ev;
  cfg.numAttrs = 1;
  CHECK_OK(cuLaunchKernelEx(&cfg, g, largs, NULL));
  CHECK_OK(cuEventSynchronize(ev));
  CHECK_OK(cuMemcpyDtoH(got, out, 16));
  memcpy(&gx, got, 4);
  CHECK_EQ_U(gx, 99);
  CHECK_OK(cuCtxDestroy(other));
  CHECK_OK(cuEventDestroy(ev));

  /* Cooperative launches and real clusters are not supported yet. */
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
  attrs[0].value.cooperative = 1;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_NOT_SUPPORTED);
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attrs[0].value.clusterDim.x = 2;
  attrs[0].value.clusterDim.y = 1;
  attrs[0].value.clusterDim.z = 1;
  cfg.gridDimX = 2;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_NOT_SUPPORTED);
  attrs[0].id = (CUlaunchAttributeID)15; /* no such attribute */
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernelEx(NULL, g, largs, NULL), CUDA_ERROR_INVALID_VALUE);
  cfg.attrs = NULL;
  CHECK_CU(cuLaunchKernelEx(&cfg, g, largs, NULL), CUDA_ERROR_INVALID_VALUE);

  /* Nothing refused above reached the server: no deferred error. */
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuMemFree(out));
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- attributes ---------------------------------------------------------------- */

static void test_modules_attributes(int argc, char **argv) {
  CUdevice dev;
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  gpt_init_context(&dev);
  CUmodule m = load();
  CUfunction f = get(m, "vadd"), sm = get(m, "smem"), bd = get(m, "bounded");

  int smem_block = 0, optin = 0, dev_threads = 0;
  REQUIRE_OK(cuDeviceGetAttribute(
      &smem_block, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, dev));
  REQUIRE_OK(cuDeviceGetAttribute(
      &optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev));
  REQUIRE_OK(cuDeviceGetAttribute(
      &dev_threads, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, dev));
  if (optin == 0) optin = smem_block;

  /* Every attribute can be read. */
  for (int a = 0; a < CU_FUNC_ATTRIBUTE_MAX; a++) {
    int v = -12345;
    CHECK_OK(cuFuncGetAttribute(&v, (CUfunction_attribute)a, f));
    CHECK_NE_I(v, -12345);
  }
  int v = 0;
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f));
  CHECK_GT_I(v, 0);
  CHECK_LE_I(v, dev_threads);
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, bd));
  CHECK_EQ_I(v, 128);
  /* The virtual architecture of the PTX (.target sm_75), as drivers
   * report it, not the ISA version (.version 9.0). */
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_PTX_VERSION, f));
  CHECK_EQ_I(v, 75);
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_BINARY_VERSION, f));
  CHECK_EQ_I(v, 75);
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f));
  CHECK_EQ_I(v, 0);
  int stat = -1;
  CHECK_OK(cuFuncGetAttribute(&stat, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, sm));
  CHECK_EQ_I(stat, 1024);
  /* The documented default: the per-block limit minus the static part. */
  CHECK_OK(cuFuncGetAttribute(
      &v, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f));
  CHECK_EQ_I(v, smem_block);
  CHECK_OK(cuFuncGetAttribute(
      &v, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sm));
  CHECK_EQ_I(v, smem_block - stat);
  CHECK_OK(cuFuncGetAttribute(
      &v, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, f));
  CHECK_EQ_I(v, -1);

  CHECK_CU(cuFuncGetAttribute(NULL, CU_FUNC_ATTRIBUTE_NUM_REGS, f),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX, f),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, (CUfunction)&v),
           CUDA_ERROR_INVALID_HANDLE);

  /* Setting: the settable ones within their ranges. */
  CHECK_OK(cuFuncSetAttribute(sm, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                              optin - stat));
  CHECK_OK(cuFuncGetAttribute(
      &v, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sm));
  CHECK_EQ_I(v, optin - stat);
  CHECK_CU(cuFuncSetAttribute(sm, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                              optin - stat + 1),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncSetAttribute(sm, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                              -1),
           CUDA_ERROR_INVALID_VALUE);
  for (int c = -1; c <= 100; c += 101) {
    CHECK_OK(cuFuncSetAttribute(
        f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, c));
    CHECK_OK(cuFuncGetAttribute(
        &v, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, f));
    CHECK_EQ_I(v, c);
  }
  CHECK_CU(cuFuncSetAttribute(
               f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 101),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncSetAttribute(
               f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, -2),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuFuncSetAttribute(
      f, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1));
  CHECK_CU(cuFuncSetAttribute(
               f, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 2),
           CUDA_ERROR_INVALID_VALUE);
  /* Read-only ones. */
  static const CUfunction_attribute ro[] = {
      CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
      CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
      CU_FUNC_ATTRIBUTE_NUM_REGS, CU_FUNC_ATTRIBUTE_PTX_VERSION,
      CU_FUNC_ATTRIBUTE_BINARY_VERSION, CU_FUNC_ATTRIBUTE_CACHE_MODE_CA,
      CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET, CU_FUNC_ATTRIBUTE_MAX};
  for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++)
    CHECK_CU(cuFuncSetAttribute(f, ro[i], 1), CUDA_ERROR_INVALID_VALUE);

  CHECK_OK(cuFuncSetCacheConfig(f, CU_FUNC_CACHE_PREFER_SHARED));
  CHECK_OK(cuFuncSetCacheConfig(f, CU_FUNC_CACHE_PREFER_EQUAL));
  CHECK_CU(cuFuncSetCacheConfig(f, (CUfunc_cache)4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncSetCacheConfig(NULL, CU_FUNC_CACHE_PREFER_L1),
           CUDA_ERROR_INVALID_HANDLE);

  /* Dynamic shared memory up to the function's maximum works, past it is
   * refused at call time. */
  CUdeviceptr out;
  REQUIRE_OK(cuMemAlloc(&out, 256 * 4));
  void *args[] = {&out};
  CHECK_OK(cuLaunchKernel(sm, 1, 1, 1, 256, 1, 1, 256 * 4, NULL, args, NULL));
  unsigned got[256];
  CHECK_OK(cuMemcpyDtoH(got, out, sizeof got));
  unsigned bad = 0;
  for (unsigned i = 0; i < 256; i++)
    if (got[i] != i) bad++;
  CHECK_EQ_U(bad, 0);
  CHECK_OK(cuLaunchKernel(sm, 1, 1, 1, 32, 1, 1, (unsigned)(optin - stat),
                          NULL, args, NULL));
  CHECK_CU(cuLaunchKernel(sm, 1, 1, 1, 32, 1, 1, (unsigned)(optin - stat) + 1,
                          NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  /* vadd kept its default: the per-block limit. */
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, (unsigned)smem_block + 1,
                          NULL, NULL, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuMemFree(out));
  (void)argc;
  (void)argv;
}

/* ---- globals ---------------------------------------------------------------------- */

static void test_modules_globals(int argc, char **argv) {
  start();
  CUmodule m = load();
  CUdeviceptr p = 0, p2 = 0, base = 0;
  size_t n = 0, n2 = 0;
  REQUIRE_OK(cuModuleGetGlobal(&p, &n, m, "counter"));
  CHECK_NE_U(p, 0);
  CHECK_EQ_U(n, 4);
  /* Again (from the client's table), and with either output NULL. */
  CHECK_OK(cuModuleGetGlobal(&p2, NULL, m, "counter"));
  CHECK_EQ_U(p2, p);
  CHECK_OK(cuModuleGetGlobal(NULL, &n2, m, "counter"));
  CHECK_EQ_U(n2, 4);
  CHECK_CU(cuModuleGetGlobal(NULL, NULL, m, "counter"),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetGlobal(&p2, &n2, m, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetGlobal(&p2, &n2, m, "nope"), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuModuleGetGlobal(&p2, &n2, NULL, "counter"),
           CUDA_ERROR_INVALID_HANDLE);

  /* The copy functions take it like an allocation. */
  uint32_t v = 0;
  CHECK_OK(cuMemcpyDtoH(&v, p, 4));
  CHECK_EQ_U(v, 7);
  v = 41;
  CHECK_OK(cuMemcpyHtoD(p, &v, 4));
  size_t size = 0;
  CHECK_OK(cuMemGetAddressRange(&base, &size, p));
  CHECK_EQ_U(base, p);
  CHECK_EQ_U(size, 4);
  /* ...but not past its end, and it is not the program's to free. */
  CHECK_CU(cuMemcpyHtoD(p + 2, &v, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFree(p), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemcpyHtoD(p, &v, 4));

  /* A kernel sees what the host wrote, and the host what it wrote. */
  CUdeviceptr out;
  REQUIRE_OK(cuMemAlloc(&out, 4));
  void *args[] = {&out};
  CHECK_OK(cuLaunchKernel(get(m, "bump"), 1, 1, 1, 1, 1, 1, 0, NULL, args,
                          NULL));
  CHECK_OK(cuMemcpyDtoH(&v, out, 4));
  CHECK_EQ_U(v, 41);
  CHECK_OK(cuMemcpyDtoH(&v, p, 4));
  CHECK_EQ_U(v, 42);

  /* An array global: memset, device-to-device, asynchronous copies. */
  CUdeviceptr t;
  REQUIRE_OK(cuModuleGetGlobal(&t, &n, m, "table"));
  CHECK_EQ_U(n, 256);
  CHECK_OK(cuMemsetD32(t, 0x01020304u, 64));
  uint8_t h[256], want[256];
  for (int i = 0; i < 256; i += 4) wr32(want + i, 0x01020304u);
  CHECK_OK(cuMemcpyDtoH(h, t, 256));
  CHECK_MEM_EQ(h, want, 256);
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, 256));
  gpt_fill(want, sizeof want, 3);
  CHECK_OK(cuMemcpyHtoD(d, want, 256));
  CHECK_OK(cuMemcpyDtoD(t, d, 256));
  memset(h, 0, sizeof h);
  CHECK_OK(cuMemcpyDtoHAsync(h, t, 256, NULL));
  CHECK_OK(cuStreamSynchronize(NULL));
  CHECK_MEM_EQ(h, want, 256);

  /* Unloading takes the globals out of the range table. */
  CHECK_OK(cuModuleUnload(m));
  CHECK_CU(cuMemcpyHtoD(p, &v, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemGetAddressRange(&base, &size, t), CUDA_ERROR_NOT_FOUND);
  /* A fresh load has its own copy, initialised again. */
  m = load();
  REQUIRE_OK(cuModuleGetGlobal(&p, &n, m, "counter"));
  CHECK_OK(cuMemcpyDtoH(&v, p, 4));
  CHECK_EQ_U(v, 7);
  CHECK_OK(cuModuleUnload(m));
  CHECK_OK(cuMemFree(out));
  CHECK_OK(cuMemFree(d));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- the same image twice, files, JIT options, fatbins ------------------------------ */

static void test_modules_same_image(int argc, char **argv) {
  start();
  /* The second load sends only the digest; both modules work, and stay
   * independent. */
  CUmodule m1 = load(), m2 = load();
  CHECK_TRUE(m1 != m2);
  CUfunction f1 = get(m1, "vadd"), f2 = get(m2, "vadd");
  CHECK_TRUE(f1 != f2);
  vadd_check(f1, 300, NULL);
  vadd_check(f2, 300, NULL);
  CHECK_OK(cuModuleUnload(m1));
  vadd_check(f2, 300, NULL);
  /* A copy of the bytes elsewhere in memory is the same image. */
  char *copy = gpt_xmalloc(sizeof ptx);
  memcpy(copy, ptx, sizeof ptx);
  CUmodule m3 = NULL;
  REQUIRE_OK(cuModuleLoadData(&m3, copy));
  free(copy); /* the library keeps no reference to it */
  vadd_check(get(m3, "vadd"), 300, NULL);

  /* From a file, with and without the NUL. */
  char dir[] = "/tmp/gpt_modules_XXXXXX";
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/k.ptx", dir);
  FILE *fp = fopen(path, "w");
  REQUIRE_TRUE(fp != NULL);
  fwrite(ptx, 1, strlen(ptx), fp);
  fclose(fp);
  CUmodule m4 = NULL;
  CHECK_OK(cuModuleLoad(&m4, path));
  if (m4 != NULL) vadd_check(get(m4, "vadd"), 300, NULL);
  unlink(path);
  rmdir(dir);

  /* cuModuleLoadDataEx: every output option filled. */
  char info[128], err[128];
  memset(info, 'x', sizeof info);
  memset(err, 'x', sizeof err);
  CUjit_option opts[] = {CU_JIT_INFO_LOG_BUFFER,
                         CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                         CU_JIT_ERROR_LOG_BUFFER,
                         CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                         CU_JIT_WALL_TIME, CU_JIT_MAX_REGISTERS,
                         CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_TARGET_FROM_CUCONTEXT,
                         CU_JIT_GENERATE_LINE_INFO, CU_JIT_LOG_VERBOSE};
  void *vals[] = {info, (void *)(uintptr_t)sizeof info, err,
                  (void *)(uintptr_t)sizeof err, (void *)(uintptr_t)0xffffffff,
                  (void *)(uintptr_t)32, (void *)(uintptr_t)4, NULL,
                  (void *)(uintptr_t)1, (void *)(uintptr_t)1};
  CUmodule m5 = NULL;
  CHECK_OK(cuModuleLoadDataEx(&m5, ptx, sizeof opts / sizeof opts[0], opts,
                              vals));
  CHECK_EQ_U((uintptr_t)vals[3], 0);
  CHECK_EQ_I(err[0], '\0');
  CHECK_EQ_I(info[0], '\0');
  float ms = -1;
  uint32_t bits = (uint32_t)(uintptr_t)vals[4];
  memcpy(&ms, &bits, sizeof ms);
  CHECK_GE_D(ms, 0.0);
  CHECK_LE_D(ms, 60000.0);
  if (m5 != NULL) vadd_check(get(m5, "vadd"), 300, NULL);

  /* The PTX inside a fatbin, directly and through a wrapper as cudart
   * registers it (version 1: the fatbin; version 2: the fatbin and its
   * prelinked fatbins, here one more copy of the same). */
  size_t flen;
  uint8_t *fb = fatbin_of(ptx, &flen);
  CUmodule m6 = NULL;
  CHECK_OK(cuModuleLoadFatBinary(&m6, fb));
  if (m6 != NULL) vadd_check(get(m6, "vadd"), 300, NULL);
  struct {
    uint32_t magic, version;
    const void *data, *extra;
  } wrap = {0x466243B1u, 1, fb, NULL};
  CUmodule m7 = NULL;
  CHECK_OK(cuModuleLoadData(&m7, &wrap));
  if (m7 != NULL) vadd_check(get(m7, "vadd"), 300, NULL);
  const void *prelinked[] = {fb, NULL};
  wrap.version = 2;
  wrap.extra = prelinked;
  CUmodule m8 = NULL;
  CHECK_OK(cuModuleLoadData(&m8, &wrap));
  if (m8 != NULL) vadd_check(get(m8, "vadd"), 300, NULL);
  free(fb);

  CHECK_OK(cuModuleUnload(m2));
  CHECK_OK(cuModuleUnload(m3));
  if (m4) CHECK_OK(cuModuleUnload(m4));
  if (m5) CHECK_OK(cuModuleUnload(m5));
  if (m6) CHECK_OK(cuModuleUnload(m6));
  if (m7) CHECK_OK(cuModuleUnload(m7));
  if (m8) CHECK_OK(cuModuleUnload(m8));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- the server's image cache, and the size limit ----------------------------------- */

/* PTX of about |mib| MiB: a kernel `k` and comment lines, which make each
 * image (by |seed|) distinct. The caller frees it. */
static char *big_ptx(size_t mib, unsigned seed) {
  static const char head[] =
      ".version 9.0\n.target sm_75\n.address_size 64\n"
      ".visible .entry k()\n{\n  ret;\n}\n";
  size_t n = mib << 20;
  char *t = gpt_xmalloc(n + 1);
  memcpy(t, head, sizeof head - 1);
  size_t pos = sizeof head - 1;
  while (pos + 128 <= n) {
    int k = snprintf(t + pos, 128, "// padding %u %zu ", seed, pos);
    memset(t + pos + k, 'x', 127 - (size_t)k);
    t[pos + 127] = '\n';
    pos += 128;
  }
  t[pos] = '\0';
  return t;
}

static void test_modules_image_cache(int argc, char **argv) {
  start();
  /* The server keeps 256 MiB of images a session: five of 56 MiB push the
   * first out. Loading it again sends its digest, the server asks for the
   * image, and the client sends it once more. */
  enum { N = 5 };
  char *img[N];
  CUmodule m[N];
  for (int i = 0; i < N; i++) {
    img[i] = big_ptx(56, (unsigned)i);
    REQUIRE_OK(cuModuleLoadData(&m[i], img[i]));
    CHECK_OK(cuModuleUnload(m[i]));
  }
  CUmodule again = NULL;
  double t0 = gpt_now();
  CHECK_OK(cuModuleLoadData(&again, img[0]));
  printf("reloading an evicted 56 MiB image: %.3f s\n", gpt_now() - t0);
  CUfunction f;
  CHECK_OK(cuModuleGetFunction(&f, again, "k"));
  CHECK_OK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
  /* The latest is still there: its digest is enough. */
  t0 = gpt_now();
  CHECK_OK(cuModuleLoadData(&m[N - 1], img[N - 1]));
  printf("reloading a cached 56 MiB image: %.3f s\n", gpt_now() - t0);
  for (int i = 0; i < N; i++) free(img[i]);

  /* Over 64 MiB: refused by the client, with a line saying so. */
  char *huge = big_ptx(65, 9);
  CHECK_CU(cuModuleLoadData(&again, huge), CUDA_ERROR_INVALID_VALUE);
  free(huge);
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- unloading, and contexts taking their modules with them ---------------------- */

static void test_modules_stale(int argc, char **argv) {
  CUdevice dev;
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  CUcontext ctx = gpt_init_context(&dev);
  CUmodule m = load();
  CUfunction f = get(m, "vadd");
  CHECK_OK(cuModuleUnload(m));
  int v;
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CUfunction g;
  CHECK_CU(cuModuleGetFunction(&g, m, "vadd"), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleUnload(m), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleUnload(NULL), CUDA_ERROR_INVALID_HANDLE);
  const char *name;
  CHECK_CU(cuFuncGetName(&name, f), CUDA_ERROR_INVALID_HANDLE);
  CUmodule back;
  CHECK_CU(cuFuncGetModule(&back, f), CUDA_ERROR_INVALID_HANDLE);

  /* Destroying a context drops its modules and functions. */
  CUcontext c2;
  REQUIRE_OK(cuCtxCreate(&c2, NULL, 0, dev));
  m = load();
  f = get(m, "vadd");
  CUdeviceptr p;
  REQUIRE_OK(cuModuleGetGlobal(&p, NULL, m, "counter"));
  CHECK_OK(cuCtxDestroy(c2));
  CUcontext cur = NULL;
  CHECK_OK(cuCtxGetCurrent(&cur));
  CHECK_EQ_PTR(cur, ctx);
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleUnload(m), CUDA_ERROR_INVALID_HANDLE);
  uint32_t w = 1;
  CHECK_CU(cuMemcpyHtoD(p, &w, 4), CUDA_ERROR_INVALID_VALUE);

  /* So does resetting a primary context. */
  CUcontext pc;
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&pc, dev));
  REQUIRE_OK(cuCtxPushCurrent(pc));
  m = load();
  f = get(m, "vadd");
  vadd_check(f, 100, NULL);
  CHECK_OK(cuDevicePrimaryCtxReset(dev));
  CHECK_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleUnload(m), CUDA_ERROR_INVALID_HANDLE);
  /* Retained again: a new incarnation, loading anew (the image is cached
   * on the server: only its digest goes out). */
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&pc, dev));
  m = load();
  vadd_check(get(m, "vadd"), 100, NULL);
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_CU(cuModuleUnload(m), CUDA_ERROR_INVALID_HANDLE);
  CUcontext popped;
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, pc);

  /* The first context is untouched by all this. */
  m = load();
  vadd_check(get(m, "vadd"), 100, NULL);
  CHECK_OK(cuModuleUnload(m));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- bad images ----------------------------------------------------------------------- */

static void test_modules_bad_images(int argc, char **argv) {
  start();
  CUmodule m = NULL;
  static const char garbage[] = "this is not a module image at all";
  CHECK_CU(cuModuleLoadData(&m, garbage), CUDA_ERROR_INVALID_IMAGE);
  CHECK_CU(cuModuleLoadData(&m, ""), CUDA_ERROR_INVALID_IMAGE);
  CHECK_CU(cuModuleLoadData(&m, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleLoadData(NULL, ptx), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleLoadFatBinary(&m, garbage), CUDA_ERROR_INVALID_IMAGE);

  /* Headers declaring more than a frame can carry: refused before reading
   * past the header. */
  uint8_t fat[16] = {0};
  wr32(fat, 0xBA55ED50u);
  fat[4] = 1;
  fat[6] = 16;
  wr64(fat + 8, (uint64_t)1 << 30);
  CHECK_CU(cuModuleLoadData(&m, fat), CUDA_ERROR_INVALID_VALUE);
  struct {
    uint32_t magic, version;
    const void *data, *extra;
  } wrap = {0x466243B1u, 1, fat, NULL};
  CHECK_CU(cuModuleLoadData(&m, &wrap), CUDA_ERROR_INVALID_VALUE);
  wrap.version = 7;
  CHECK_CU(cuModuleLoadData(&m, &wrap), CUDA_ERROR_INVALID_IMAGE);
  wrap.version = 1;
  wrap.data = garbage;
  CHECK_CU(cuModuleLoadData(&m, &wrap), CUDA_ERROR_INVALID_IMAGE);
  uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  wr64(elf + 0x28, (uint64_t)1 << 40); /* e_shoff */
  elf[0x3a] = 64;                       /* e_shentsize */
  elf[0x3c] = 1;                        /* e_shnum */
  CHECK_CU(cuModuleLoadData(&m, elf), CUDA_ERROR_INVALID_VALUE);
  elf[4] = 1; /* 32-bit */
  CHECK_CU(cuModuleLoadData(&m, elf), CUDA_ERROR_INVALID_IMAGE);

  /* PTX the server refuses: its error, and for cuModuleLoadDataEx a line
   * in the error log. */
  static const char bad_ptx[] =
      ".version 9.0\n.target sm_75\n.address_size 64\n"
      ".visible .entry k()\n{\n  frobnicate.u32 %r1;\n}\n";
  CUresult r = cuModuleLoadData(&m, bad_ptx);
  CHECK_TRUE(r != CUDA_SUCCESS && r != CUDA_ERROR_DEVICE_UNAVAILABLE);
  char err[256] = "";
  CUjit_option eo[] = {CU_JIT_ERROR_LOG_BUFFER,
                       CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *ev[] = {err, (void *)(uintptr_t)sizeof err};
  CHECK_CU(cuModuleLoadDataEx(&m, bad_ptx, 2, eo, ev), r);
  CHECK_GT_U((uintptr_t)ev[1], 0);
  CHECK_EQ_U(strlen(err), (uintptr_t)ev[1]);
  printf("error log: %s\n", err);
  /* A log buffer of one byte holds the NUL only. */
  ev[1] = (void *)(uintptr_t)1;
  CHECK_CU(cuModuleLoadDataEx(&m, bad_ptx, 2, eo, ev), r);
  CHECK_EQ_U((uintptr_t)ev[1], 0);
  CHECK_EQ_I(err[0], '\0');
  /* Options themselves. */
  CUjit_option unknown = CU_JIT_NUM_OPTIONS;
  void *uv = NULL;
  CHECK_CU(cuModuleLoadDataEx(&m, ptx, 1, &unknown, &uv),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleLoadDataEx(&m, ptx, 1, NULL, &uv), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleLoadDataEx(&m, ptx, 1, eo, NULL), CUDA_ERROR_INVALID_VALUE);

  /* Files. */
  CHECK_CU(cuModuleLoad(&m, "/nonexistent/gpupool/k.ptx"),
           CUDA_ERROR_FILE_NOT_FOUND);
  CHECK_CU(cuModuleLoad(&m, "/"), CUDA_ERROR_FILE_NOT_FOUND);
  CHECK_CU(cuModuleLoad(&m, NULL), CUDA_ERROR_INVALID_VALUE);
  char dir[] = "/tmp/gpt_modules_XXXXXX";
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/empty", dir);
  FILE *fp = fopen(path, "w");
  REQUIRE_TRUE(fp != NULL);
  fclose(fp);
  CHECK_CU(cuModuleLoad(&m, path), CUDA_ERROR_INVALID_IMAGE);
  /* A fatbin header declaring more than the file holds. */
  fp = fopen(path, "w");
  REQUIRE_TRUE(fp != NULL);
  wr64(fat + 8, 4096);
  fwrite(fat, 1, sizeof fat, fp);
  fclose(fp);
  CHECK_CU(cuModuleLoad(&m, path), CUDA_ERROR_INVALID_IMAGE);
  unlink(path);
  rmdir(dir);

  /* Lookups. */
  m = load();
  CUfunction f;
  CHECK_CU(cuModuleGetFunction(&f, m, "nope"), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuModuleGetFunction(&f, m, ""), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuModuleGetFunction(&f, m, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetFunction(NULL, m, "vadd"), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleGetFunction(&f, NULL, "vadd"), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuModuleGetFunction(&f, (CUmodule)garbage, "vadd"),
           CUDA_ERROR_INVALID_HANDLE);

  /* No current context. */
  CUcontext ctx;
  CHECK_OK(cuCtxPopCurrent(&ctx));
  CHECK_CU(cuModuleLoadData(&m, ptx), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cuCtxPushCurrent(ctx));

  /* The session is fine after all that. */
  vadd_check(get(m, "vadd"), 64, NULL);
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- bad launches ----------------------------------------------------------------------- */

static void test_modules_bad_launch(int argc, char **argv) {
  CUdevice dev;
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  CUcontext ctx = gpt_init_context(&dev);
  CUmodule m = load();
  CUfunction f = get(m, "vadd"), bd = get(m, "bounded");
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, 4096));
  unsigned n = 1024;
  void *args[] = {&d, &d, &d, &n};
  int maxb[3], maxg[3], maxt;
  static const CUdevice_attribute ba[3] = {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X,
                                           CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y,
                                           CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z};
  static const CUdevice_attribute ga[3] = {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X,
                                           CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y,
                                           CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z};
  for (int i = 0; i < 3; i++) {
    REQUIRE_OK(cuDeviceGetAttribute(&maxb[i], ba[i], dev));
    REQUIRE_OK(cuDeviceGetAttribute(&maxg[i], ga[i], dev));
  }
  REQUIRE_OK(cuDeviceGetAttribute(
      &maxt, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, dev));

  CHECK_CU(cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuLaunchKernel((CUfunction)args, 1, 1, 1, 1, 1, 1, 0, NULL, args,
                          NULL),
           CUDA_ERROR_INVALID_HANDLE);
  /* Zero dimensions. */
  CHECK_CU(cuLaunchKernel(f, 0, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 1, 0, 1, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 0, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 0, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 0, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_VALUE);
  /* Past the device's limits. */
  if (maxb[2] > 0)
    CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, (unsigned)maxb[2] + 1, 0, NULL,
                            args, NULL),
             CUDA_ERROR_INVALID_VALUE);
  if (maxb[0] > 0)
    CHECK_CU(cuLaunchKernel(f, 1, 1, 1, (unsigned)maxb[0] + 1, 1, 1, 0, NULL,
                            args, NULL),
             CUDA_ERROR_INVALID_VALUE);
  if (maxg[1] > 0)
    CHECK_CU(cuLaunchKernel(f, 1, (unsigned)maxg[1] + 1, 1, 1, 1, 1, 0, NULL,
                            args, NULL),
             CUDA_ERROR_INVALID_VALUE);
  /* More threads a block than the device has, each dimension within its
   * limit. */
  if (maxt > 0 && maxt < 2048)
    CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 32, 32, 2, 0, NULL, args, NULL),
             CUDA_ERROR_INVALID_VALUE);
  /* More than the function allows (.maxntid 128): out of resources, as
   * with __launch_bounds__. */
  CHECK_CU(cuLaunchKernel(bd, 1, 1, 1, 129, 1, 1, 0, NULL, NULL, NULL),
           CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES);
  CHECK_CU(cuLaunchKernel(bd, 1, 1, 1, 64, 2, 1, 0, NULL, NULL, NULL),
           CUDA_SUCCESS);

  /* Parameters given both ways, not at all, through a NULL pointer. */
  size_t sz = 28;
  uint8_t buf[28] = {0};
  void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
                   CU_LAUNCH_PARAM_BUFFER_SIZE, &sz, CU_LAUNCH_PARAM_END};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, extra),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
           CUDA_ERROR_INVALID_VALUE);
  void *holes[] = {&d, NULL, &d, &n};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, holes, NULL),
           CUDA_ERROR_INVALID_VALUE);
  /* `extra` with a buffer smaller than the layout, without a size or a
   * pointer, with an unknown key. */
  sz = 27;
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra),
           CUDA_ERROR_INVALID_VALUE);
  void *nosize[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_END};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, nosize),
           CUDA_ERROR_INVALID_VALUE);
  sz = 28;
  void *noptr[] = {CU_LAUNCH_PARAM_BUFFER_SIZE, &sz, CU_LAUNCH_PARAM_END};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, noptr),
           CUDA_ERROR_INVALID_VALUE);
  void *odd[] = {(void *)(uintptr_t)0x77, buf, CU_LAUNCH_PARAM_END};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, odd),
           CUDA_ERROR_INVALID_VALUE);

  /* Streams: unknown, or of another context. */
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, (CUstream)args, args, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CUcontext c2;
  REQUIRE_OK(cuCtxCreate(&c2, NULL, 0, dev));
  CUstream s2;
  REQUIRE_OK(cuStreamCreate(&s2, 0));
  /* A function of a context that is not current. */
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CUcontext popped;
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, c2);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s2, args, NULL),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(cuCtxDestroy(c2));

  /* No current context at all. */
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, ctx);
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
           CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cuCtxPushCurrent(ctx));

  /* None of that reached the server; a good launch still works. */
  CHECK_OK(cuCtxSynchronize());
  vadd_check(f, 512, NULL);
  CHECK_OK(cuMemFree(d));
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"load_launch", test_modules_load_launch, 60},
      {"attributes", test_modules_attributes, 60},
      {"globals", test_modules_globals, 60},
      {"same_image", test_modules_same_image, 60},
      {"stale", test_modules_stale, 60},
      {"bad_images", test_modules_bad_images, 60},
      {"bad_launch", test_modules_bad_launch, 60},
      {"image_cache", test_modules_image_cache, 120},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
