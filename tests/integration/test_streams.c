/* Integration: streams and events. Asynchronous copies and memsets ordered
 * on a stream, streams ordered by events, event timing, and the refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MiB ((size_t)1 << 20)

static struct gpt_server server;

static CUcontext start(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  return gpt_init_context(NULL);
}

/* ---- ordering on one stream ---------------------------------------------------------- */

/* Runs a chain of dependent asynchronous operations on |s| and checks the
 * result against a host model: each step reads what the one before wrote,
 * so any reordering shows. */
static void ordered_chain(CUstream s, uint64_t seed) {
  const size_t n = 2 * MiB + 12;
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAlloc(&a, n));
  REQUIRE_OK(cuMemAlloc(&b, n));
  unsigned char *src = gpt_xmalloc(n), *model = gpt_xmalloc(n);
  unsigned char *out = gpt_xmalloc(n);
  gpt_fill(src, n, seed);
  memcpy(model, src, n);

  CHECK_OK(cuMemcpyHtoDAsync(a, src, n, s));
  /* A pageable source may be reused as soon as the call returns. */
  memset(src, 0, n);
  for (int i = 0; i < 200; i++) {
    size_t off = ((size_t)i * 10007) % (n - 4096);
    off &= ~(size_t)3;
    CHECK_OK(cuMemsetD32Async(a + off, 0x01000000u * (unsigned)i + 7, 64, s));
    for (int k = 0; k < 64; k++) {
      uint32_t v = 0x01000000u * (unsigned)i + 7;
      memcpy(model + off + (size_t)k * 4, &v, 4);
    }
    /* Move a slice from a to b and back to a shifted place in a. */
    CHECK_OK(cuMemcpyDtoDAsync(b + off, a + off, 1000, s));
    CHECK_OK(cuMemcpyDtoDAsync(a + off + 2048, b + off, 1000, s));
    memmove(model + off + 2048, model + off, 1000);
    CHECK_OK(cuMemsetD8Async(b + off, 0, 1000, s));
  }
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoHAsync(out, a, n, s));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuStreamQuery(s));
  CHECK_MEM_EQ(out, model, n);
  CHECK_OK(cuMemFree(a));
  CHECK_OK(cuMemFree(b));
  free(src);
  free(model);
  free(out);
}

static void test_streams_order(int argc, char **argv) {
  start();
  CUstream s1, s2, s3;
  REQUIRE_OK(cuStreamCreate(&s1, CU_STREAM_DEFAULT));
  REQUIRE_OK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
  REQUIRE_OK(cuStreamCreateWithPriority(&s3, CU_STREAM_NON_BLOCKING, -1));
  CHECK_TRUE(s1 != s2 && s2 != s3 && s1 != s3);
  ordered_chain(s1, 1);
  ordered_chain(s2, 2);
  ordered_chain(s3, 3);
  ordered_chain(NULL, 4);            /* the default stream */
  ordered_chain(CU_STREAM_LEGACY, 5);
  ordered_chain(CU_STREAM_PER_THREAD, 6);
  CHECK_OK(cuStreamDestroy(s1));
  CHECK_OK(cuStreamDestroy(s2));
  CHECK_OK(cuStreamDestroy(s3));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* Device to pageable host memory: the call returns once the copy is done
 * (CUDA's "API synchronization behavior"), no synchronize needed. */
static void test_streams_dtoh_pageable(int argc, char **argv) {
  start();
  const size_t n = 5 * MiB + 1;
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  gpt_fill(in, n, 11);
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CHECK_OK(cuMemcpyHtoDAsync(d, in, n, s));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoHAsync(out, d, n, s));
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuMemFree(d));
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

/* ---- streams ordered by events --------------------------------------------------------- */

static void test_streams_wait_event(int argc, char **argv) {
  start();
  const size_t n = 32 * MiB;
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAlloc(&a, n));
  REQUIRE_OK(cuMemAlloc(&b, n));
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  CUstream producer, consumer;
  CUevent ready, done;
  REQUIRE_OK(cuStreamCreate(&producer, CU_STREAM_NON_BLOCKING));
  REQUIRE_OK(cuStreamCreate(&consumer, CU_STREAM_NON_BLOCKING));
  REQUIRE_OK(cuEventCreate(&ready, CU_EVENT_DISABLE_TIMING));
  REQUIRE_OK(cuEventCreate(&done, CU_EVENT_DEFAULT));

  for (int round = 0; round < 4; round++) {
    gpt_fill(in, n, 500 + (uint64_t)round);
    CHECK_OK(cuMemcpyHtoDAsync(a, in, n, producer));
    CHECK_OK(cuMemsetD32Async(a + 4096, 0xfeedface, 1024, producer));
    CHECK_OK(cuEventRecord(ready, producer));
    CHECK_OK(cuStreamWaitEvent(consumer, ready, 0));
    CHECK_OK(cuMemcpyDtoDAsync(b, a, n, consumer));
    CHECK_OK(cuEventRecord(done, consumer));
    CHECK_OK(cuEventSynchronize(done));
    CHECK_OK(cuEventQuery(done));
    CHECK_OK(cuEventQuery(ready));
    memset(out, 0, n);
    CHECK_OK(cuMemcpyDtoH(out, b, n));
    for (int k = 0; k < 1024; k++) {
      uint32_t v = 0xfeedface;
      memcpy(in + 4096 + (size_t)k * 4, &v, 4);
    }
    CHECK_MEM_EQ(out, in, n);
  }
  CHECK_OK(cuStreamSynchronize(producer));
  CHECK_OK(cuStreamSynchronize(consumer));
  CHECK_OK(cuStreamQuery(producer));
  CHECK_OK(cuStreamQuery(consumer));
  CHECK_OK(cuEventDestroy(ready));
  CHECK_OK(cuEventDestroy(done));
  CHECK_OK(cuStreamDestroy(producer));
  CHECK_OK(cuStreamDestroy(consumer));
  CHECK_OK(cuMemFree(a));
  CHECK_OK(cuMemFree(b));
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

/* ---- event timing ----------------------------------------------------------------------------- */

static void test_streams_event_timing(int argc, char **argv) {
  start();
  const size_t n = 64 * MiB;
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAlloc(&a, n));
  REQUIRE_OK(cuMemAlloc(&b, n));
  unsigned char *h = gpt_xmalloc(n);
  gpt_fill(h, n, 1);
  CUstream s;
  CUevent e0, e1, e2, never, untimed;
  REQUIRE_OK(cuStreamCreate(&s, 0));
  REQUIRE_OK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
  REQUIRE_OK(cuEventCreate(&e1, CU_EVENT_BLOCKING_SYNC));
  REQUIRE_OK(cuEventCreate(&e2, CU_EVENT_DEFAULT));
  REQUIRE_OK(cuEventCreate(&never, CU_EVENT_DEFAULT));
  REQUIRE_OK(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));

  /* An event never recorded is complete, but has no time. */
  CHECK_OK(cuEventQuery(never));
  CHECK_OK(cuEventSynchronize(never));

  double t0 = gpt_now();
  CHECK_OK(cuEventRecord(e0, s));
  CHECK_OK(cuMemcpyHtoDAsync(a, h, n, s));
  for (int i = 0; i < 4; i++) CHECK_OK(cuMemcpyDtoDAsync(b, a, n, s));
  CHECK_OK(cuEventRecord(e1, s));
  CHECK_OK(cuMemsetD8Async(b, 1, n, s));
  CHECK_OK(cuEventRecord(e2, s));
  CHECK_OK(cuEventRecord(untimed, s));
  CHECK_OK(cuEventSynchronize(e2));
  double wall_ms = (gpt_now() - t0) * 1000.0;

  float ms01 = -1, ms12 = -1, ms02 = -1, ms10 = 1;
  CHECK_OK(cuEventElapsedTime(&ms01, e0, e1));
  CHECK_OK(cuEventElapsedTime(&ms12, e1, e2));
  CHECK_OK(cuEventElapsedTime(&ms02, e0, e2));
  CHECK_OK(cuEventElapsedTime(&ms10, e1, e0));
  printf("event times: copies %.3f ms, memset %.3f ms, total %.3f ms "
         "(wall %.3f ms)\n", ms01, ms12, ms02, wall_ms);
  /* 320 MiB of copies take measurable time, no more than the wall clock
   * saw, and the intervals add up. */
  CHECK_GE_D(ms01, 0.01);
  CHECK_GE_D(ms12, 0.0);
  CHECK_LE_D(ms02, wall_ms + 1.0);
  CHECK_LE_D(ms02 - (ms01 + ms12), 0.01);
  CHECK_LE_D((ms01 + ms12) - ms02, 0.01);
  CHECK_LE_D(ms10 + ms01, 0.01); /* reversed: negative */
  CHECK_LE_D(-(ms10 + ms01), 0.01);

  /* No timing without both events recorded with timing. */
  float ms = 0;
  CHECK_CU(cuEventElapsedTime(&ms, never, e1), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuEventElapsedTime(&ms, e0, never), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuEventElapsedTime(&ms, e0, untimed), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuEventElapsedTime(NULL, e0, e1), CUDA_ERROR_INVALID_VALUE);

  /* Re-recording moves the event. */
  CHECK_OK(cuEventRecord(e0, NULL));
  CHECK_OK(cuEventSynchronize(e0));
  CHECK_OK(cuEventElapsedTime(&ms, e2, e0));
  CHECK_GE_D(ms, 0.0);

  /* A query on work in flight answers NOT_READY or SUCCESS, nothing else. */
  CHECK_OK(cuMemcpyDtoDAsync(b, a, n, s));
  CHECK_OK(cuEventRecord(e1, s));
  CUresult q = cuEventQuery(e1);
  CHECK_TRUE(q == CUDA_SUCCESS || q == CUDA_ERROR_NOT_READY);
  q = cuStreamQuery(s);
  CHECK_TRUE(q == CUDA_SUCCESS || q == CUDA_ERROR_NOT_READY);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuEventQuery(e1));
  CHECK_OK(cuStreamQuery(s));

  CHECK_OK(cuEventDestroy(e0));
  CHECK_OK(cuEventDestroy(e1));
  CHECK_OK(cuEventDestroy(e2));
  CHECK_OK(cuEventDestroy(never));
  CHECK_OK(cuEventDestroy(untimed));
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuMemFree(a));
  CHECK_OK(cuMemFree(b));
  free(h);
  (void)argc;
  (void)argv;
}

/* ---- refusals ------------------------------------------------------------------------------------- */

static void test_streams_refusals(int argc, char **argv) {
  CUcontext ctx = start();
  CUstream s;
  CUevent e;
  CHECK_CU(cuStreamCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuStreamCreate(&s, 0x10), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuStreamCreateWithPriority(NULL, 0, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuEventCreate(NULL, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuEventCreate(&e, 0x100), CUDA_ERROR_INVALID_VALUE);
  /* Priorities outside the range are clamped, not refused. */
  int least = 99, greatest = 99, prio = 99;
  CHECK_OK(cuCtxGetStreamPriorityRange(&least, &greatest));
  CHECK_EQ_I(least, 0);
  CHECK_LE_I(greatest, least);
  CHECK_OK(cuStreamCreateWithPriority(&s, 0, -1000));
  CHECK_OK(cuStreamGetPriority(s, &prio));
  CHECK_EQ_I(prio, greatest);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuStreamCreateWithPriority(&s, CU_STREAM_NON_BLOCKING, 1000));
  CHECK_OK(cuStreamGetPriority(s, &prio));
  CHECK_EQ_I(prio, least);
  /* And a stream knows its flags and context. */
  unsigned sflags = 99;
  CUcontext sctx = NULL;
  CHECK_OK(cuStreamGetFlags(s, &sflags));
  CHECK_EQ_U(sflags, CU_STREAM_NON_BLOCKING);
  CHECK_OK(cuStreamGetCtx(s, &sctx));
  CHECK_EQ_PTR(sctx, ctx);
  CHECK_OK(cuStreamDestroy(s));

  /* Many streams and events, created and destroyed. */
  CUstream ss[64];
  CUevent ee[64];
  for (int i = 0; i < 64; i++) {
    CHECK_OK(cuStreamCreate(&ss[i], (unsigned)(i & 1)));
    CHECK_OK(cuEventCreate(&ee[i], (unsigned)(i & 3)));
  }
  for (int i = 0; i < 64; i++) {
    CHECK_OK(cuEventRecord(ee[i], ss[i]));
    CHECK_OK(cuStreamWaitEvent(ss[(i + 1) % 64], ee[i], 0));
  }
  CHECK_OK(cuCtxSynchronize());
  for (int i = 0; i < 64; i++) {
    CHECK_OK(cuEventQuery(ee[i]));
    CHECK_OK(cuStreamDestroy(ss[i]));
    CHECK_OK(cuEventDestroy(ee[i]));
  }

  /* No current context. */
  CHECK_OK(cuCtxPopCurrent(&ctx));
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuEventCreate(&e, 0), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cuCtxPushCurrent(ctx));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"order", test_streams_order, 60},
      {"dtoh_pageable", test_streams_dtoh_pageable, 30},
      {"wait_event", test_streams_wait_event, 60},
      {"event_timing", test_streams_event_timing, 60},
      {"refusals", test_streams_refusals, 30},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
