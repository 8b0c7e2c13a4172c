/* Integration: contexts (every cuCtxCreate version, the per-thread stack,
 * current context, synchronize), primary contexts, and threads: 8 sharing
 * one context while 4 use contexts of their own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The older cuCtxCreate entry points, which cuda.h only declares for the
 * driver's own build; programs built against older toolkits call them. */
#undef cuCtxCreate
CUresult CUDAAPI cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev);
CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags,
                                CUdevice dev);
CUresult CUDAAPI cuCtxCreate_v3(CUcontext *pctx,
                                CUexecAffinityParam *paramsArray, int numParams,
                                unsigned int flags, CUdevice dev);

static struct gpt_server server;

static CUdevice start(void) {
  CUdevice dev;
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  REQUIRE_OK(cuInit(0));
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  return dev;
}

static CUcontext current(void) {
  CUcontext c = (CUcontext)(uintptr_t)0xbad;
  CHECK_OK(cuCtxGetCurrent(&c));
  return c;
}

/* A context that works: it is current, on device 0, and holds memory. */
static void check_usable(CUcontext ctx) {
  CUdevice d = -1;
  CHECK_EQ_PTR(current(), ctx);
  CHECK_OK(cuCtxGetDevice(&d));
  CHECK_EQ_I(d, 0);
  CUdeviceptr p = 0;
  unsigned char in[1000], out[1000];
  gpt_fill(in, sizeof in, (uintptr_t)ctx);
  if (CHECK_OK(cuMemAlloc(&p, sizeof in))) {
    CHECK_OK(cuMemcpyHtoD(p, in, sizeof in));
    CHECK_OK(cuMemcpyDtoH(out, p, sizeof out));
    CHECK_MEM_EQ(out, in, sizeof in);
    CHECK_OK(cuMemFree(p));
  }
  CHECK_OK(cuCtxSynchronize());
}

/* ---- create ---------------------------------------------------------------------- */

static void test_context_create_versions(int argc, char **argv) {
  CUdevice dev = start();
  CUcontext c = NULL;

  CHECK_EQ_PTR(current(), NULL);

  CHECK_OK(cuCtxCreate(&c, 0, dev)); /* the original entry point */
  check_usable(c);
  CHECK_OK(cuCtxDestroy(c));
  CHECK_EQ_PTR(current(), NULL);

  c = NULL;
  CHECK_OK(cuCtxCreate_v2(&c, CU_CTX_SCHED_BLOCKING_SYNC, dev));
  check_usable(c);
  /* What the context reports about itself (calls cudart makes). */
  unsigned flags = 0, api = 0;
  CHECK_OK(cuCtxGetFlags(&flags));
  CHECK_EQ_U(flags & CU_CTX_SCHED_MASK, CU_CTX_SCHED_BLOCKING_SYNC);
  CHECK_OK(cuCtxGetApiVersion(c, &api));
  CHECK_GE_U(api, 3020);
  CUdevice d2 = -1;
  CHECK_OK(cuCtxGetDevice_v2(&d2, c));
  CHECK_EQ_I(d2, dev);
  CHECK_OK(cuCtxSynchronize_v2(c));
  CHECK_CU(cuCtxGetFlags(NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuCtxDestroy(c));

  c = NULL;
  CHECK_OK(cuCtxCreate_v3(&c, NULL, 0, CU_CTX_SCHED_SPIN, dev));
  check_usable(c);
  CHECK_OK(cuCtxDestroy(c));

  c = NULL;
  CHECK_OK(cuCtxCreate_v4(&c, NULL, 0, dev));
  check_usable(c);
  CHECK_OK(cuCtxDestroy(c));

  CUctxCreateParams params;
  memset(&params, 0, sizeof params);
  c = NULL;
  CHECK_OK(cuCtxCreate_v4(&c, &params, CU_CTX_SCHED_YIELD, dev));
  check_usable(c);
  CHECK_OK(cuCtxDestroy(c));
  CHECK_EQ_PTR(current(), NULL);

  /* Refusals. */
  CHECK_CU(cuCtxCreate_v4(NULL, NULL, 0, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuCtxCreate_v4(&c, NULL, 0, 9), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuCtxCreate_v2(&c, 0, -1), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuCtxCreate_v4(&c, NULL, 0x7 /* three scheduling flags */, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuCtxDestroy(NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_PTR(current(), NULL);
  (void)argc;
  (void)argv;
}

/* ---- the stack ------------------------------------------------------------------- */

static void *other_thread_current(void *arg) {
  CUcontext want = arg, c = (CUcontext)(uintptr_t)0xbad;
  /* A new thread starts with no current context... */
  CHECK_OK(cuCtxGetCurrent(&c));
  CHECK_EQ_PTR(c, NULL);
  CUdevice d;
  CHECK_CU(cuCtxGetDevice(&d), CUDA_ERROR_INVALID_CONTEXT);
  /* ...and can make another thread's context its own. */
  CHECK_OK(cuCtxSetCurrent(want));
  check_usable(want);
  CHECK_OK(cuCtxSetCurrent(NULL));
  return NULL;
}

static void test_context_stack(int argc, char **argv) {
  CUdevice dev = start();
  CUcontext a = NULL, b = NULL, popped = NULL;
  CUdevice d;

  /* Nothing current yet. */
  CHECK_EQ_PTR(current(), NULL);
  CHECK_CU(cuCtxGetDevice(&d), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuCtxPopCurrent(&popped), CUDA_ERROR_INVALID_CONTEXT);
  CUdeviceptr p;
  CHECK_CU(cuMemAlloc(&p, 64), CUDA_ERROR_INVALID_CONTEXT);

  /* cuCtxCreate pushes. */
  REQUIRE_OK(cuCtxCreate_v4(&a, NULL, 0, dev));
  CHECK_EQ_PTR(current(), a);
  REQUIRE_OK(cuCtxCreate_v4(&b, NULL, 0, dev));
  CHECK_TRUE(a != b);
  CHECK_EQ_PTR(current(), b);

  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, b);
  CHECK_EQ_PTR(current(), a);
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, a);
  CHECK_EQ_PTR(current(), NULL);
  CHECK_CU(cuCtxPopCurrent(&popped), CUDA_ERROR_INVALID_CONTEXT);

  /* Push and pop. */
  CHECK_OK(cuCtxPushCurrent(a));
  CHECK_OK(cuCtxPushCurrent(b));
  CHECK_EQ_PTR(current(), b);
  check_usable(b);
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, b);
  check_usable(a);
  CHECK_CU(cuCtxPushCurrent(NULL), CUDA_ERROR_INVALID_VALUE);

  /* cuCtxSetCurrent replaces the top; NULL pops it. */
  CHECK_OK(cuCtxSetCurrent(b));
  CHECK_EQ_PTR(current(), b);
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, b);
  CHECK_EQ_PTR(current(), NULL);
  CHECK_OK(cuCtxSetCurrent(NULL)); /* no-op on an empty stack */
  CHECK_EQ_PTR(current(), NULL);
  CHECK_OK(cuCtxPushCurrent(a));
  CHECK_OK(cuCtxSetCurrent(NULL));
  CHECK_EQ_PTR(current(), NULL);
  CHECK_OK(cuCtxSetCurrent(a));
  check_usable(a);

  /* Contexts are per thread. */
  pthread_t t;
  pthread_create(&t, NULL, other_thread_current, b);
  pthread_join(t, NULL);
  CHECK_EQ_PTR(current(), a);

  /* Destroying the current context pops it. */
  CHECK_OK(cuCtxPushCurrent(b));
  CHECK_OK(cuCtxDestroy(b));
  CHECK_EQ_PTR(current(), a);
  CHECK_OK(cuCtxDestroy(a));
  CHECK_EQ_PTR(current(), NULL);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
  (void)argc;
  (void)argv;
}

/* ---- destroying a context frees its memory ---------------------------------------- */

static void test_context_destroy_frees(int argc, char **argv) {
  CUdevice dev = start();
  CUcontext a, b;
  size_t free0 = 0, total = 0, free1 = 0, free2 = 0;
  REQUIRE_OK(cuCtxCreate_v4(&a, NULL, 0, dev));
  CHECK_OK(cuMemGetInfo(&free0, &total));

  REQUIRE_OK(cuCtxCreate_v4(&b, NULL, 0, dev));
  CUdeviceptr p[4];
  for (int i = 0; i < 4; i++) CHECK_OK(cuMemAlloc(&p[i], 16u << 20));
  CHECK_OK(cuMemGetInfo(&free1, &total));
  CHECK_LE_U(free1 + (64u << 20), free0);
  /* No cuMemFree: cuCtxDestroy releases what the context holds. */
  CHECK_OK(cuCtxDestroy(b));
  CHECK_EQ_PTR(current(), a);
  CHECK_OK(cuMemGetInfo(&free2, &total));
  CHECK_EQ_U(free2, free0);
  CUdeviceptr base;
  size_t size;
  CHECK_CU(cuMemGetAddressRange(&base, &size, p[0]), CUDA_ERROR_NOT_FOUND);
  check_usable(a);
  CHECK_OK(cuCtxDestroy(a));
  (void)argc;
  (void)argv;
}

/* ---- primary contexts -------------------------------------------------------------- */

static void test_context_primary(int argc, char **argv) {
  CUdevice dev = start();
  unsigned flags = 0xdead;
  int active = -1;
  CUcontext p1 = NULL, p2 = NULL, p3 = NULL;

  CHECK_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  CHECK_EQ_U(flags, 0);
  CHECK_EQ_I(active, 0);
  /* Releasing what was never retained. */
  CHECK_CU(cuDevicePrimaryCtxRelease(dev), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuDevicePrimaryCtxGetState(7, &flags, &active),
           CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuDevicePrimaryCtxGetState(dev, NULL, &active),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDevicePrimaryCtxRetain(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDevicePrimaryCtxRetain(&p1, 3), CUDA_ERROR_INVALID_DEVICE);

  /* Flags set before it is active are kept. */
  CHECK_OK(cuDevicePrimaryCtxSetFlags(dev, CU_CTX_SCHED_BLOCKING_SYNC));
  CHECK_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  CHECK_EQ_U(flags, CU_CTX_SCHED_BLOCKING_SYNC);
  CHECK_EQ_I(active, 0);
  CHECK_CU(cuDevicePrimaryCtxSetFlags(dev, 0x7), CUDA_ERROR_INVALID_VALUE);

  /* Retain activates it but does not make it current. */
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p1, dev));
  CHECK_TRUE(p1 != NULL);
  CHECK_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  CHECK_EQ_I(active, 1);
  CHECK_EQ_U(flags, CU_CTX_SCHED_BLOCKING_SYNC);
  CHECK_EQ_PTR(current(), NULL);
  CHECK_OK(cuCtxSetCurrent(p1));
  check_usable(p1);

  /* The same context every time. */
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p2, dev));
  CHECK_EQ_PTR(p2, p1);
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  CHECK_EQ_I(active, 1);

  /* Reset destroys its allocations (it does not release it). */
  size_t free0 = 0, free1 = 0, total = 0;
  CHECK_OK(cuMemGetInfo(&free0, &total));
  CUdeviceptr big = 0;
  CHECK_OK(cuMemAlloc(&big, 32u << 20));
  CHECK_OK(cuMemGetInfo(&free1, &total));
  CHECK_LE_U(free1 + (32u << 20), free0);
  CHECK_OK(cuCtxSetCurrent(NULL));
  CHECK_OK(cuDevicePrimaryCtxReset(dev));
  CHECK_CU(cuDevicePrimaryCtxReset(5), CUDA_ERROR_INVALID_DEVICE);

  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p3, dev));
  CHECK_OK(cuCtxSetCurrent(p3));
  size_t free2 = 0;
  CHECK_OK(cuMemGetInfo(&free2, &total));
  CHECK_EQ_U(free2, free0);
  CUdeviceptr base;
  size_t size;
  CHECK_CU(cuMemGetAddressRange(&base, &size, big), CUDA_ERROR_NOT_FOUND);
  check_usable(p3);
  CHECK_OK(cuCtxSetCurrent(NULL));

  /* Release every reference: it becomes inactive. Retained: p1, p3 (p2
   * was released). */
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  CHECK_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  CHECK_EQ_I(active, 0);
  CHECK_CU(cuDevicePrimaryCtxRelease(dev), CUDA_ERROR_INVALID_CONTEXT);

  /* And comes back to life on the next retain. */
  REQUIRE_OK(cuDevicePrimaryCtxRetain(&p1, dev));
  CHECK_OK(cuCtxPushCurrent(p1));
  check_usable(p1);
  CHECK_OK(cuCtxPopCurrent(&p1));
  CHECK_OK(cuDevicePrimaryCtxRelease(dev));
  (void)argc;
  (void)argv;
}

/* ---- threads ------------------------------------------------------------------------ */

enum { SHARED_THREADS = 8, OWN_THREADS = 4, ROUNDS = 12 };
#define THREAD_BYTES ((size_t)3 << 20 | 777)

struct worker {
  int id;
  CUcontext shared;  /* NULL: the thread creates its own */
  CUdevice dev;
  pthread_barrier_t *start;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  CUcontext ctx = w->shared;
  pthread_barrier_wait(w->start);
  if (ctx == NULL) {
    if (!CHECK_OK(cuCtxCreate_v4(&ctx, NULL, 0, w->dev))) return NULL;
  } else {
    CHECK_OK(cuCtxSetCurrent(ctx));
  }
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  unsigned char *in = gpt_xmalloc(THREAD_BYTES), *out = gpt_xmalloc(THREAD_BYTES);
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t seed = (uint64_t)w->id * 1000 + (uint64_t)r;
    CUdeviceptr a = 0, b = 0;
    if (!CHECK_OK(cuMemAlloc(&a, THREAD_BYTES))) break;
    if (!CHECK_OK(cuMemAlloc(&b, THREAD_BYTES))) break;
    gpt_fill(in, THREAD_BYTES, seed);
    /* Synchronous path. */
    CHECK_OK(cuMemcpyHtoD(a, in, THREAD_BYTES));
    CHECK_OK(cuMemcpyDtoD(b, a, THREAD_BYTES));
    memset(out, 0, THREAD_BYTES);
    CHECK_OK(cuMemcpyDtoH(out, b, THREAD_BYTES));
    CHECK_MEM_EQ(out, in, THREAD_BYTES);
    /* Asynchronous path on the thread's stream. */
    CHECK_OK(cuMemsetD8Async(b, (unsigned char)w->id, THREAD_BYTES, s));
    CHECK_OK(cuMemcpyDtoDAsync(a + 1, b, 1000, s));
    CHECK_OK(cuMemcpyDtoHAsync(out, a, THREAD_BYTES, s));
    CHECK_OK(cuStreamSynchronize(s));
    memset(in + 1, w->id, 1000);
    CHECK_MEM_EQ(out, in, THREAD_BYTES);
    CHECK_OK(cuMemFree(a));
    CHECK_OK(cuMemFree(b));
  }
  free(in);
  free(out);
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuCtxSynchronize());
  if (w->shared == NULL)
    CHECK_OK(cuCtxDestroy(ctx));
  else
    CHECK_OK(cuCtxSetCurrent(NULL));
  return NULL;
}

static void test_context_threads(int argc, char **argv) {
  CUdevice dev = start();
  CUcontext shared;
  REQUIRE_OK(cuCtxCreate_v4(&shared, NULL, 0, dev));
  size_t free0 = 0, free1 = 0, total = 0;
  CHECK_OK(cuMemGetInfo(&free0, &total));

  enum { N = SHARED_THREADS + OWN_THREADS };
  pthread_t t[N];
  struct worker w[N];
  pthread_barrier_t start_line;
  pthread_barrier_init(&start_line, NULL, N);
  double t0 = gpt_now();
  for (int i = 0; i < N; i++) {
    w[i].id = i + 1;
    w[i].shared = i < SHARED_THREADS ? shared : NULL;
    w[i].dev = dev;
    w[i].start = &start_line;
    pthread_create(&t[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  printf("%d threads x %d rounds of %zu bytes: %.2f s\n", N, ROUNDS,
         (size_t)THREAD_BYTES, gpt_now() - t0);
  pthread_barrier_destroy(&start_line);

  CHECK_OK(cuCtxSetCurrent(shared));
  CHECK_OK(cuMemGetInfo(&free1, &total));
  CHECK_EQ_U(free1, free0);
  check_usable(shared);
  CHECK_OK(cuCtxDestroy(shared));
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"create_versions", test_context_create_versions, 30},
      {"stack", test_context_stack, 30},
      {"destroy_frees", test_context_destroy_frees, 30},
      {"primary", test_context_primary, 30},
      {"threads", test_context_threads, 120},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
