/* Integration: device memory. Allocation and cuMemGetInfo, pitch and
 * address ranges, 64 MiB round trips, unaligned copies, memsets, cuMemcpy,
 * pinned host memory, and the driver's errors for bad pointers and ranges. */
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

/* Reads |n| bytes of device memory into a fresh buffer (the caller frees). */
static unsigned char *read_back(CUdeviceptr p, size_t n) {
  unsigned char *h = gpt_xmalloc(n);
  memset(h, 0xee, n);
  CHECK_OK(cuMemcpyDtoH(h, p, n));
  return h;
}

/* ---- allocation and cuMemGetInfo ------------------------------------------------------ */

static void test_memory_alloc_info(int argc, char **argv) {
  start();
  size_t free0 = 0, total = 0, f = 0, t = 0;
  REQUIRE_OK(cuMemGetInfo(&free0, &total));
  CHECK_EQ_U(total, 1ull << 30);
  CHECK_LE_U(free0, total);
  CHECK_GT_U(free0, total / 2);

  /* Each allocation shows in the free figure; each free gives it back. */
  static const size_t sizes[] = {1, 3, 4096, MiB, 64 * MiB, 7 * MiB + 5};
  enum { N = sizeof sizes / sizeof sizes[0] };
  CUdeviceptr p[N];
  size_t prev = free0, used = 0;
  for (int i = 0; i < N; i++) {
    REQUIRE_OK(cuMemAlloc(&p[i], sizes[i]));
    CHECK_NE_U(p[i], 0);
    /* cudaMalloc's documented alignment is 256 bytes. */
    CHECK_EQ_U(p[i] % 256, 0);
    CHECK_OK(cuMemGetInfo(&f, &t));
    CHECK_EQ_U(t, total);
    CHECK_LE_U(f + sizes[i], prev); /* at least the size went */
    used += sizes[i];
    /* ...and not wildly more (granularity up to 2 MiB per allocation). */
    CHECK_GE_U(f + used + (size_t)(i + 1) * 2 * MiB, free0);
    prev = f;
  }
  /* Allocations do not overlap. */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      if (i != j) CHECK_TRUE(p[i] + sizes[i] <= p[j] || p[j] + sizes[j] <= p[i]);
  for (int i = 0; i < N; i++) CHECK_OK(cuMemFree(p[i]));
  CHECK_OK(cuMemGetInfo(&f, &t));
  CHECK_EQ_U(f, free0);

  /* Refusals. */
  CUdeviceptr q = 0;
  CHECK_CU(cuMemAlloc(&q, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAlloc(NULL, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAlloc(&q, total + 1), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CU(cuMemAlloc(&q, (size_t)1 << 62), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CU(cuMemGetInfo(NULL, &t), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemGetInfo(&f, &t));
  CHECK_EQ_U(f, free0);

  /* Fill the device: many allocations until it says out of memory, then
   * free them all; the free figure returns exactly. */
  CUdeviceptr *many = gpt_xmalloc(4096 * sizeof *many);
  int n = 0;
  CUresult r = CUDA_SUCCESS;
  while (n < 4096) {
    r = cuMemAlloc(&many[n], 32 * MiB);
    if (r != CUDA_SUCCESS) break;
    n++;
  }
  CHECK_EQ_I(r, CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_GE_I(n, (int)(free0 / (32 * MiB)) - 1);
  for (int i = 0; i < n; i++) CHECK_OK(cuMemFree(many[i]));
  free(many);
  CHECK_OK(cuMemGetInfo(&f, &t));
  CHECK_EQ_U(f, free0);
  /* ...and the session is fine. */
  CHECK_OK(cuMemAlloc(&q, 64 * MiB));
  CHECK_OK(cuMemFree(q));
  CHECK_OK(cuCtxSynchronize());

  /* No current context. */
  CUcontext ctx;
  CHECK_OK(cuCtxPopCurrent(&ctx));
  CHECK_CU(cuMemAlloc(&q, 64), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuMemGetInfo(&f, &t), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cuCtxPushCurrent(ctx));
  (void)argc;
  (void)argv;
}

/* ---- pitch and address range ----------------------------------------------------------- */

static void test_memory_pitch_range(int argc, char **argv) {
  start();
  CUdeviceptr p = 0, base = 0;
  size_t pitch = 0, size = 0;
  const size_t width = 1000, height = 37;
  REQUIRE_OK(cuMemAllocPitch(&p, &pitch, width, height, 4));
  CHECK_GE_U(pitch, width);
  CHECK_EQ_U(pitch % 4, 0);
  CHECK_LT_U(pitch, width + 4096);
  CHECK_OK(cuMemGetAddressRange(&base, &size, p));
  CHECK_EQ_U(base, p);
  CHECK_GE_U(size, pitch * height);
  /* The whole pitched block is usable: fill the last row. */
  unsigned char row[1000], back[1000];
  gpt_fill(row, sizeof row, 5);
  CHECK_OK(cuMemcpyHtoD(p + pitch * (height - 1), row, width));
  CHECK_OK(cuMemcpyDtoH(back, p + pitch * (height - 1), width));
  CHECK_MEM_EQ(back, row, width);
  CHECK_OK(cuMemFree(p));

  CHECK_CU(cuMemAllocPitch(&p, &pitch, width, height, 3), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocPitch(&p, &pitch, 0, height, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocPitch(&p, &pitch, width, 0, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocPitch(&p, NULL, width, height, 4), CUDA_ERROR_INVALID_VALUE);
  size_t pitch8 = 0, pitch16 = 0;
  CHECK_OK(cuMemAllocPitch(&p, &pitch8, 24, 3, 8));
  CHECK_GE_U(pitch8, 24);
  CHECK_OK(cuMemFree(p));
  CHECK_OK(cuMemAllocPitch(&p, &pitch16, 48, 2, 16));
  CHECK_GE_U(pitch16, 48);
  CHECK_OK(cuMemFree(p));

  /* Interior pointers map to their allocation; either output is optional. */
  CUdeviceptr a = 0;
  REQUIRE_OK(cuMemAlloc(&a, MiB + 3));
  base = size = 0;
  CHECK_OK(cuMemGetAddressRange(&base, &size, a + 12345));
  CHECK_EQ_U(base, a);
  CHECK_EQ_U(size, MiB + 3);
  CHECK_OK(cuMemGetAddressRange(&base, &size, a + MiB + 2)); /* last byte */
  CHECK_EQ_U(base, a);
  base = 0;
  CHECK_OK(cuMemGetAddressRange(&base, NULL, a + 1));
  CHECK_EQ_U(base, a);
  size = 0;
  CHECK_OK(cuMemGetAddressRange(NULL, &size, a + 2));
  CHECK_EQ_U(size, MiB + 3);
  /* Outside every allocation. */
  CHECK_CU(cuMemGetAddressRange(&base, &size, 0), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuMemGetAddressRange(&base, &size, (CUdeviceptr)0x10),
           CUDA_ERROR_NOT_FOUND);
  CHECK_OK(cuMemFree(a));
  CHECK_CU(cuMemGetAddressRange(&base, &size, a), CUDA_ERROR_NOT_FOUND);
  (void)argc;
  (void)argv;
}

/* ---- 64 MiB round trips ----------------------------------------------------------------- */

static void roundtrip(size_t n, uint64_t seed) {
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAlloc(&a, n));
  REQUIRE_OK(cuMemAlloc(&b, n));
  gpt_fill(in, n, seed);

  double t0 = gpt_now();
  CHECK_OK(cuMemcpyHtoD(a, in, n));
  double t1 = gpt_now();
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoH(out, a, n));
  double t2 = gpt_now();
  CHECK_MEM_EQ(out, in, n);

  /* Device to device, then back. */
  CHECK_OK(cuMemcpyDtoD(b, a, n));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoH(out, b, n));
  CHECK_MEM_EQ(out, in, n);

  /* The asynchronous forms, on a stream. */
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, 0));
  gpt_fill(in, n, seed + 1);
  CHECK_OK(cuMemcpyHtoDAsync(b, in, n, s));
  CHECK_OK(cuMemcpyDtoDAsync(a, b, n, s));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoHAsync(out, a, n, s));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuStreamDestroy(s));

  printf("%zu bytes: HtoD %.1f MB/s, DtoH %.1f MB/s\n", n,
         n / (t1 - t0) / 1e6, n / (t2 - t1) / 1e6);
  CHECK_OK(cuMemFree(a));
  CHECK_OK(cuMemFree(b));
  free(in);
  free(out);
}

static void test_memory_roundtrip_64m(int argc, char **argv) {
  start();
  roundtrip(64 * MiB, 1);
  /* Chunk edges: a copy that is not a whole number of 16 MiB chunks, one
   * of exactly one chunk and one a byte over. */
  roundtrip(48 * MiB + 12345, 2);
  roundtrip(16 * MiB, 3);
  roundtrip(16 * MiB + 1, 4);
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- unaligned offsets and sizes ----------------------------------------------------------- */

static void test_memory_unaligned(int argc, char **argv) {
  start();
  const size_t n = 256 * 1024;
  CUdeviceptr d = 0, d2 = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemAlloc(&d2, n));
  unsigned char *model = gpt_xmalloc(n), *src = gpt_xmalloc(n + 64);
  unsigned char *dst = gpt_xmalloc(n + 64);
  gpt_fill(model, n, 100);
  REQUIRE_OK(cuMemcpyHtoD(d, model, n));

  static const size_t sizes[] = {0, 1, 2, 3, 7, 4095, 4096, 4097, 65537};
  static const size_t offsets[] = {0, 1, 3, 4093, 4096, 4097, 100001};
  uint64_t seed = 1000;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    for (size_t oi = 0; oi < sizeof offsets / sizeof offsets[0]; oi++) {
      size_t sz = sizes[si], off = offsets[oi];
      if (off + sz > n) continue;
      /* Host to device from an odd host address; the model follows. */
      unsigned char *h = src + 1 + (si + oi) % 7;
      gpt_fill(h, sz, seed++);
      if (!CHECK_OK(cuMemcpyHtoD(d + off, h, sz)))
        fprintf(stderr, "    (HtoD offset %zu size %zu)\n", off, sz);
      memcpy(model + off, h, sz);

      /* Device to host into an odd host address, with guard bytes. */
      unsigned char *o = dst + 3 + (si * 5 + oi) % 11;
      memset(dst, 0xa5, n + 64);
      if (!CHECK_OK(cuMemcpyDtoH(o, d + off, sz)))
        fprintf(stderr, "    (DtoH offset %zu size %zu)\n", off, sz);
      CHECK_MEM_EQ(o, model + off, sz);
      CHECK_MEM_ALL(dst, 0xa5, (size_t)(o - dst));
      CHECK_MEM_ALL(o + sz, 0xa5, (size_t)(dst + n + 64 - (o + sz)));

      /* Device to device, to a different odd offset of the other block. */
      size_t off2 = (off * 7 + 13) % (n - sz + 1);
      if (!CHECK_OK(cuMemcpyDtoD(d2 + off2, d + off, sz)))
        fprintf(stderr, "    (DtoD %zu -> %zu size %zu)\n", off, off2, sz);
      memset(dst, 0, n);
      CHECK_OK(cuMemcpyDtoH(dst, d2 + off2, sz));
      CHECK_MEM_EQ(dst, model + off, sz);
    }
  }
  /* The whole block matches the model: nothing landed beside its place. */
  unsigned char *all = read_back(d, n);
  CHECK_MEM_EQ(all, model, n);
  free(all);

  /* Zero-byte copies at the very end and of any pointer in range. */
  CHECK_OK(cuMemcpyHtoD(d + n, src, 0));
  CHECK_OK(cuMemcpyDtoH(dst, d + n, 0));
  CHECK_OK(cuMemcpyDtoD(d2, d, 0));

  CHECK_OK(cuMemFree(d));
  CHECK_OK(cuMemFree(d2));
  free(model);
  free(src);
  free(dst);
  (void)argc;
  (void)argv;
}

/* ---- memsets ------------------------------------------------------------------------------ */

static void set_model(unsigned char *m, size_t off, unsigned value, int width,
                      size_t count) {
  for (size_t i = 0; i < count; i++)
    for (int b = 0; b < width; b++)
      m[off + i * (size_t)width + (size_t)b] = (unsigned char)(value >> (8 * b));
}

static void test_memory_memset(int argc, char **argv) {
  start();
  const size_t n = 8 * MiB + 8;
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  unsigned char *model = gpt_xmalloc(n);
  gpt_fill(model, n, 7);
  REQUIRE_OK(cuMemcpyHtoD(d, model, n));

  /* Synchronous, at assorted offsets and counts (0 included). */
  CHECK_OK(cuMemsetD8(d + 1, 0xab, 4097));
  set_model(model, 1, 0xab, 1, 4097);
  CHECK_OK(cuMemsetD8(d + 5000, 0x5c, 0));
  CHECK_OK(cuMemsetD16(d + 8192 + 2, 0xbeef, 2049));
  set_model(model, 8192 + 2, 0xbeef, 2, 2049);
  CHECK_OK(cuMemsetD32(d + 20000, 0xdeadbeef, 1023));
  set_model(model, 20000, 0xdeadbeef, 4, 1023);
  CHECK_OK(cuMemsetD32(d + MiB, 0x01020304, 1));
  set_model(model, MiB, 0x01020304, 4, 1);
  /* Large: most of the block. */
  CHECK_OK(cuMemsetD32(d + 2 * MiB, 0xcafef00d, (6 * MiB) / 4));
  set_model(model, 2 * MiB, 0xcafef00d, 4, (6 * MiB) / 4);
  unsigned char *back = read_back(d, n);
  CHECK_MEM_EQ(back, model, n);
  free(back);

  /* Alignment: D16 needs 2-byte, D32 4-byte destinations. */
  CHECK_CU(cuMemsetD16(d + 1, 0x1111, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD32(d + 2, 0x22222222, 4), CUDA_ERROR_INVALID_VALUE);

  /* Asynchronous, ordered on a stream and on the default stream. */
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  for (int i = 0; i < 64; i++) {
    size_t off = (size_t)i * 4099 * 4;
    CHECK_OK(cuMemsetD8Async(d + off, (unsigned char)i, 4099 * 4, s));
    CHECK_OK(cuMemsetD16Async(d + off + 2, (unsigned short)(i * 257 + 1), 100, s));
    CHECK_OK(cuMemsetD32Async(d + off + 400, 0x10203040u + (unsigned)i, 17, s));
    set_model(model, off, (unsigned)i, 1, 4099 * 4);
    set_model(model, off + 2, (unsigned)(i * 257 + 1) & 0xffff, 2, 100);
    set_model(model, off + 400, 0x10203040u + (unsigned)i, 4, 17);
  }
  CHECK_OK(cuMemsetD8Async(d + n - 1, 0x77, 1, NULL));
  set_model(model, n - 1, 0x77, 1, 1);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuCtxSynchronize());
  back = read_back(d, n);
  CHECK_MEM_EQ(back, model, n);
  free(back);
  CHECK_CU(cuMemsetD32Async(d + 1, 0, 1, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuMemFree(d));
  free(model);
  (void)argc;
  (void)argv;
}

/* ---- cuMemcpy (unified addressing) ------------------------------------------------------------ */

static void test_memory_cumemcpy(int argc, char **argv) {
  start();
  const size_t n = 3 * MiB + 17;
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAlloc(&a, n));
  REQUIRE_OK(cuMemAlloc(&b, n));
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  gpt_fill(in, n, 42);
  /* The direction comes from the pointers. */
  CHECK_OK(cuMemcpy(a, (CUdeviceptr)(uintptr_t)in, n));          /* HtoD */
  CHECK_OK(cuMemcpy(b + 1, a, n - 1));                           /* DtoD */
  memset(out, 0, n);
  CHECK_OK(cuMemcpy((CUdeviceptr)(uintptr_t)out, b + 1, n - 1)); /* DtoH */
  CHECK_MEM_EQ(out, in, n - 1);
  memset(out, 0, n);
  CHECK_OK(cuMemcpy((CUdeviceptr)(uintptr_t)out,
                    (CUdeviceptr)(uintptr_t)in, n));             /* HtoH */
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuMemcpy(a, b, 0));

  /* cuMemcpyAsync, ordered on a stream. */
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, 0));
  gpt_fill(in, n, 43);
  CHECK_OK(cuMemcpyAsync(a, (CUdeviceptr)(uintptr_t)in, n, s));
  CHECK_OK(cuMemcpyAsync(b, a, n, s));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyAsync((CUdeviceptr)(uintptr_t)out, b, n, s));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuStreamDestroy(s));

  /* Ranges are checked as for the explicit forms. */
  CHECK_CU(cuMemcpy(a + 16, b, n), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemFree(a));
  CHECK_OK(cuMemFree(b));
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

/* ---- pinned host memory ------------------------------------------------------------------------ */

static void test_memory_host_alloc(int argc, char **argv) {
  start();
  const size_t n = 8 * MiB + 3;
  void *h1 = NULL, *h2 = NULL, *h3 = NULL;
  REQUIRE_OK(cuMemAllocHost(&h1, n));
  REQUIRE_OK(cuMemHostAlloc(&h2, n, 0));
  REQUIRE_OK(cuMemHostAlloc(&h3, 4096, CU_MEMHOSTALLOC_PORTABLE));
  CHECK_TRUE(h1 != NULL && h2 != NULL && h3 != NULL);
  /* The memory is ordinary, writable host memory. */
  memset(h3, 0x3c, 4096);
  CHECK_MEM_ALL(h3, 0x3c, 4096);

  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, 0));
  gpt_fill(h1, n, 9);
  memset(h2, 0, n);
  CHECK_OK(cuMemcpyHtoDAsync(d, h1, n, s));
  CHECK_OK(cuMemcpyDtoHAsync(h2, d, n, s));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_MEM_EQ(h2, h1, n);
  CHECK_OK(cuStreamDestroy(s));

  /* Flags as allocated; no device address for host memory across a
   * network (the client's documented limit). */
  unsigned flags = 99;
  CHECK_OK(cuMemHostGetFlags(&flags, h3));
  CHECK_EQ_U(flags & CU_MEMHOSTALLOC_PORTABLE, CU_MEMHOSTALLOC_PORTABLE);
  CHECK_OK(cuMemHostGetFlags(&flags, h2));
  CHECK_EQ_U(flags & CU_MEMHOSTALLOC_DEVICEMAP, 0);
  void *not_pinned = gpt_xmalloc(16);
  CHECK_CU(cuMemHostGetFlags(&flags, not_pinned), CUDA_ERROR_INVALID_VALUE);
  free(not_pinned);
  CUdeviceptr mapped = 0;
  CHECK_CU(cuMemHostGetDevicePointer(&mapped, h2, 0), CUDA_ERROR_NOT_SUPPORTED);

  CHECK_OK(cuMemFreeHost(h1));
  CHECK_OK(cuMemFreeHost(h2));
  CHECK_OK(cuMemFreeHost(h3));
  CHECK_CU(cuMemAllocHost(NULL, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemHostAlloc(&h1, 64, 0x80000000u), CUDA_ERROR_INVALID_VALUE);
  /* Memory that did not come from cuMemHostAlloc. */
  void *plain = gpt_xmalloc(64);
  CHECK_CU(cuMemFreeHost(plain), CUDA_ERROR_INVALID_VALUE);
  free(plain);
  CHECK_OK(cuMemFree(d));
  (void)argc;
  (void)argv;
}

/* ---- the driver's errors -------------------------------------------------------------------------- */

/* A 1 MiB round trip: the session is still in step after an error. */
static void check_in_step(CUdeviceptr d, uint64_t seed) {
  unsigned char *in = gpt_xmalloc(MiB), *out = gpt_xmalloc(MiB);
  gpt_fill(in, MiB, seed);
  CHECK_OK(cuMemcpyHtoD(d, in, MiB));
  CHECK_OK(cuMemcpyDtoH(out, d, MiB));
  CHECK_MEM_EQ(out, in, MiB);
  free(in);
  free(out);
}

static void test_memory_errors(int argc, char **argv) {
  start();
  const size_t n = 4 * MiB;
  CUdeviceptr d = 0, e = 0, gone = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemAlloc(&e, n));
  REQUIRE_OK(cuMemAlloc(&gone, MiB));
  CHECK_OK(cuMemFree(gone));
  unsigned char *h = gpt_xmalloc(n + MiB);
  gpt_fill(h, n + MiB, 3);

  /* Freeing what is not an allocation. */
  CHECK_CU(cuMemFree(gone), CUDA_ERROR_INVALID_VALUE);       /* twice */
  CHECK_CU(cuMemFree(d + 16), CUDA_ERROR_INVALID_VALUE);     /* interior */
  CHECK_CU(cuMemFree((CUdeviceptr)0xdead0000ull), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFree((CUdeviceptr)(uintptr_t)h), CUDA_ERROR_INVALID_VALUE);
  /* 0 is no allocation, and freeing it succeeds (cudaFree(0)). */
  CHECK_OK(cuMemFree(0));
  check_in_step(d, 1);

  /* Copies that run past the end of an allocation. */
  CHECK_CU(cuMemcpyHtoD(d + n - 10, h, 20), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyHtoD(d, h, n + 1), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyHtoD(d + 1, h, n + MiB), CUDA_ERROR_INVALID_VALUE);
  check_in_step(d, 2);
  CHECK_CU(cuMemcpyDtoH(h, d + n - 10, 20), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoH(h, d, n + MiB), CUDA_ERROR_INVALID_VALUE);
  check_in_step(d, 3);
  CHECK_CU(cuMemcpyDtoD(e, d + 1, n), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoD(e + 1, d, n), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD8(d + n - 1, 0, 2), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD32(d + n - 4, 0, 2), CUDA_ERROR_INVALID_VALUE);
  check_in_step(d, 4);

  /* Copies to and from memory that is not (or no longer) allocated. */
  CHECK_CU(cuMemcpyHtoD(gone, h, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoH(h, gone, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyHtoD(0, h, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoH(h, (CUdeviceptr)0xdead0000ull, 64),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoD(e, gone, 64), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD8(gone, 1, 64), CUDA_ERROR_INVALID_VALUE);
  check_in_step(d, 5);

  /* The same through the asynchronous forms: refused at the call. */
  CUstream s;
  CHECK_OK(cuStreamCreate(&s, 0));
  CHECK_CU(cuMemcpyHtoDAsync(d + n - 1, h, 2, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoHAsync(h, d + n - 1, 2, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyDtoDAsync(e, gone, 8, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD8Async(d + n - 1, 1, 2, s), CUDA_ERROR_INVALID_VALUE);
  /* An error returned at the call is not reported again later. */
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuStreamDestroy(s));
  check_in_step(d, 6);

  /* Data beside the refused ranges is untouched. */
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  gpt_fill(in, n, 77);
  CHECK_OK(cuMemcpyHtoD(e, in, n));
  CHECK_CU(cuMemcpyHtoD(e + n - 8, h, 4096), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD8(e + n - 8, 0, 4096), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemcpyDtoH(out, e, n));
  CHECK_MEM_EQ(out, in, n);

  CHECK_OK(cuMemFree(d));
  CHECK_OK(cuMemFree(e));
  CHECK_OK(cuCtxSynchronize());
  free(h);
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"alloc_info", test_memory_alloc_info, 60},
      {"pitch_range", test_memory_pitch_range, 30},
      {"roundtrip_64m", test_memory_roundtrip_64m, 120},
      {"unaligned", test_memory_unaligned, 60},
      {"memset", test_memory_memset, 60},
      {"cumemcpy", test_memory_cumemcpy, 30},
      {"host_alloc", test_memory_host_alloc, 30},
      {"errors", test_memory_errors, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
