/* Integration: pointer attributes, 2D and 3D copies, 2D memsets, the
 * stream-ordered allocator (memory pools), and asynchronous copies from and
 * to page-locked host memory.
 *
 * Every copy is checked byte for byte against a model kept here: the whole
 * destination buffer (including the bytes around the copied region, which
 * must not change) is read back and compared with a local copy to which
 * the same copy was applied. The server_checks scenario speaks the wire
 * protocol directly, to show that the server refuses bad 2D requests that
 * the library would never send. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "gpupool/gpupool.h"
#include "harness.h"
#include "msg.h"
#include "raw.h"
#include "wire.h"

#define MiB ((size_t)1 << 20)

static struct gpt_server server;

static CUcontext start(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  return gpt_init_context(NULL);
}

/* ---- Buffers on either side ---------------------------------------------- */

enum where {
  W_HOST,    /* CU_MEMORYTYPE_HOST, malloc'd */
  W_DEV,     /* CU_MEMORYTYPE_DEVICE */
  W_UHOST,   /* CU_MEMORYTYPE_UNIFIED naming page-locked host memory */
  W_UDEV,    /* CU_MEMORYTYPE_UNIFIED naming device memory */
};

static const char *where_name(enum where w) {
  static const char *const names[] = {"host", "device", "unified-host",
                                      "unified-device"};
  return names[w];
}

/* A buffer of |n| bytes holding gpt_fill(seed), with a model of what it
 * should hold. */
struct buf {
  enum where where;
  size_t n;
  unsigned char *host;  /* W_HOST, W_UHOST */
  CUdeviceptr dev;      /* W_DEV, W_UDEV */
  unsigned char *model;
};

static void buf_make(struct buf *b, enum where w, size_t n, uint64_t seed) {
  b->where = w;
  b->n = n;
  b->host = NULL;
  b->dev = 0;
  b->model = gpt_xmalloc(n);
  gpt_fill(b->model, n, seed);
  switch (w) {
  case W_HOST:
    b->host = gpt_xmalloc(n);
    memcpy(b->host, b->model, n);
    break;
  case W_UHOST:
    REQUIRE_OK(cuMemAllocHost((void **)&b->host, n));
    memcpy(b->host, b->model, n);
    break;
  default:
    REQUIRE_OK(cuMemAlloc(&b->dev, n));
    REQUIRE_OK(cuMemcpyHtoD(b->dev, b->model, n));
    break;
  }
}

static void buf_free(struct buf *b) {
  if (b->where == W_HOST) free(b->host);
  else if (b->where == W_UHOST) CHECK_OK(cuMemFreeHost(b->host));
  else CHECK_OK(cuMemFree(b->dev));
  free(b->model);
}

/* The buffer's bytes equal its model. */
static bool buf_check(const struct buf *b) {
  if (b->host != NULL) return CHECK_MEM_EQ(b->host, b->model, b->n);
  unsigned char *h = gpt_xmalloc(b->n);
  memset(h, 0xee, b->n);
  CHECK_OK(cuMemcpyDtoH(h, b->dev, b->n));
  bool ok = CHECK_MEM_EQ(h, b->model, b->n);
  free(h);
  return ok;
}

static CUmemorytype mem_type(enum where w) {
  switch (w) {
  case W_HOST: return CU_MEMORYTYPE_HOST;
  case W_DEV: return CU_MEMORYTYPE_DEVICE;
  default: return CU_MEMORYTYPE_UNIFIED;
  }
}

/* ---- The model of a 3D copy ---------------------------------------------- */

struct box3 {
  size_t w, h, d;
  size_t spitch, sheight, sx, sy, sz;
  size_t dpitch, dheight, dx, dy, dz;
};

/* Bytes a side's buffer needs: up to the copy's last byte, and 13 more
 * that must stay untouched. */
static size_t side_bytes(const struct box3 *k, size_t pitch, size_t height,
                         size_t x, size_t y, size_t z) {
  return ((z + k->d - 1) * height + y + k->h - 1) * pitch + x + k->w + 13;
}

static size_t src_bytes(const struct box3 *k) {
  return side_bytes(k, k->spitch, k->sheight, k->sx, k->sy, k->sz);
}

static size_t dst_bytes(const struct box3 *k) {
  return side_bytes(k, k->dpitch, k->dheight, k->dx, k->dy, k->dz);
}

static void model_copy(unsigned char *dst, const unsigned char *src,
                       const struct box3 *k) {
  for (size_t z = 0; z < k->d; z++)
    for (size_t y = 0; y < k->h; y++)
      memmove(dst + ((k->dz + z) * k->dheight + k->dy + y) * k->dpitch + k->dx,
              src + ((k->sz + z) * k->sheight + k->sy + y) * k->spitch + k->sx,
              k->w);
}

static void set_side3(const struct buf *b, CUmemorytype *type,
                      const void **host, CUdeviceptr *dev) {
  *type = mem_type(b->where);
  *host = b->host;
  *dev = b->where == W_UHOST ? (CUdeviceptr)(uintptr_t)b->host : b->dev;
}

/* How a copy is issued. */
enum mode { M_SYNC, M_ASYNC, M_UNALIGNED };

/* One 2D copy (k->d == 1) from |src| to |dst| as |mode|, then both
 * buffers are checked against the model. */
static void run_2d(const struct box3 *k, enum where sw, enum where dw,
                   enum mode mode, CUstream s, uint64_t seed) {
  struct buf src, dst;
  buf_make(&src, sw, src_bytes(k), seed);
  buf_make(&dst, dw, dst_bytes(k), seed + 1000);
  CUDA_MEMCPY2D c;
  memset(&c, 0, sizeof c);
  const void *sh;
  void *dh;
  set_side3(&src, &c.srcMemoryType, &sh, &c.srcDevice);
  c.srcHost = sh;
  set_side3(&dst, &c.dstMemoryType, (const void **)&dh, &c.dstDevice);
  c.dstHost = dh;
  c.srcPitch = k->spitch;
  c.srcXInBytes = k->sx;
  c.srcY = k->sy;
  c.dstPitch = k->dpitch;
  c.dstXInBytes = k->dx;
  c.dstY = k->dy;
  c.WidthInBytes = k->w;
  c.Height = k->h;
  CUresult r;
  if (mode == M_ASYNC) {
    r = cuMemcpy2DAsync(&c, s);
    CHECK_OK(cuStreamSynchronize(s));
  } else if (mode == M_UNALIGNED) {
    r = cuMemcpy2DUnaligned(&c);
  } else {
    r = cuMemcpy2D(&c);
  }
  if (!CHECK_OK(r))
    fprintf(stderr, "    2D copy %s -> %s, %zux%zu, pitches %zu/%zu\n",
            where_name(sw), where_name(dw), k->w, k->h, k->spitch, k->dpitch);
  struct box3 m = *k;
  m.sheight = m.dheight = 0;
  m.sz = m.dz = 0;
  model_copy(dst.model, src.model, &m);
  if (!buf_check(&dst) || !buf_check(&src))
    fprintf(stderr, "    2D copy %s -> %s, %zux%zu, pitches %zu/%zu, "
            "offsets (%zu,%zu)/(%zu,%zu), mode %d\n", where_name(sw),
            where_name(dw), k->w, k->h, k->spitch, k->dpitch, k->sx, k->sy,
            k->dx, k->dy, (int)mode);
  buf_free(&src);
  buf_free(&dst);
}

static void run_3d(const struct box3 *k, enum where sw, enum where dw,
                   bool async, CUstream s, uint64_t seed) {
  struct buf src, dst;
  buf_make(&src, sw, src_bytes(k), seed);
  buf_make(&dst, dw, dst_bytes(k), seed + 1000);
  CUDA_MEMCPY3D c;
  memset(&c, 0, sizeof c);
  const void *sh;
  void *dh;
  set_side3(&src, &c.srcMemoryType, &sh, &c.srcDevice);
  c.srcHost = sh;
  set_side3(&dst, &c.dstMemoryType, (const void **)&dh, &c.dstDevice);
  c.dstHost = dh;
  c.srcPitch = k->spitch;
  c.srcHeight = k->sheight;
  c.srcXInBytes = k->sx;
  c.srcY = k->sy;
  c.srcZ = k->sz;
  c.dstPitch = k->dpitch;
  c.dstHeight = k->dheight;
  c.dstXInBytes = k->dx;
  c.dstY = k->dy;
  c.dstZ = k->dz;
  c.WidthInBytes = k->w;
  c.Height = k->h;
  c.Depth = k->d;
  if (async) {
    CHECK_OK(cuMemcpy3DAsync(&c, s));
    CHECK_OK(cuStreamSynchronize(s));
  } else {
    CHECK_OK(cuMemcpy3D(&c));
  }
  model_copy(dst.model, src.model, k);
  if (!buf_check(&dst) || !buf_check(&src))
    fprintf(stderr, "    3D copy %s -> %s, %zux%zux%zu\n", where_name(sw),
            where_name(dw), k->w, k->h, k->d);
  buf_free(&src);
  buf_free(&dst);
}

/* ---- 2D copies ----------------------------------------------------------- */

static const struct box3 cases_2d[] = {
    /* w, h, d, spitch, sheight, sx, sy, sz, dpitch, dheight, dx, dy, dz */
    {1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0},
    {37, 13, 1, 53, 0, 3, 2, 0, 41, 0, 1, 5, 0},      /* odd everything */
    {100, 7, 1, 100, 0, 0, 0, 0, 100, 0, 0, 0, 0},    /* contiguous */
    {100, 7, 1, 100, 0, 0, 1, 0, 256, 0, 17, 0, 0},   /* source contiguous */
    {255, 9, 1, 1000, 0, 7, 1, 0, 255, 0, 0, 2, 0},   /* dst contiguous */
    {1, 31, 1, 3, 0, 2, 0, 0, 7, 0, 6, 3, 0},         /* one byte a row */
    {64, 1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0},         /* one row, pitch 0 */
    {4096, 5, 1, 4099, 0, 1, 1, 0, 4101, 0, 3, 0, 0},
};

static void test_memory2_copy2d(int argc, char **argv) {
  start();
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  static const enum where ws[] = {W_HOST, W_DEV, W_UHOST, W_UDEV};
  uint64_t seed = 1;
  for (size_t i = 0; i < sizeof cases_2d / sizeof cases_2d[0]; i++)
    for (size_t a = 0; a < 4; a++)
      for (size_t b = 0; b < 4; b++)
        for (int mode = M_SYNC; mode <= M_UNALIGNED; mode++)
          run_2d(&cases_2d[i], ws[a], ws[b], (enum mode)mode, s, seed++);
  CHECK_OK(cuStreamDestroy(s));
  (void)argc;
  (void)argv;
}

/* Copies that take several 16 MiB chunks: many narrow rows, and rows wider
 * than a chunk. */
static void test_memory2_copy2d_big(int argc, char **argv) {
  start();
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, 0));
  static const struct box3 big[] = {
      /* 4097-byte rows: 4095 of them fit in a chunk, so three chunks. */
      {4097, 9000, 1, 4100, 0, 3, 1, 0, 4200, 0, 50, 2, 0},
      /* Rows of 17 MiB + 3: each row in two pieces. */
      {17 * MiB + 3, 2, 1, 17 * MiB + 100, 0, 5, 0, 0, 17 * MiB + 64, 0, 1,
       1, 0},
      /* Contiguous, 40 MiB: one long row in three chunks. */
      {8 * MiB, 5, 1, 8 * MiB, 0, 0, 0, 0, 8 * MiB, 0, 0, 0, 0},
  };
  uint64_t seed = 500;
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    run_2d(&big[i], W_HOST, W_DEV, M_SYNC, s, seed++);
    run_2d(&big[i], W_DEV, W_HOST, M_SYNC, s, seed++);
    run_2d(&big[i], W_UHOST, W_DEV, M_ASYNC, s, seed++);
    run_2d(&big[i], W_DEV, W_UHOST, M_ASYNC, s, seed++);
    run_2d(&big[i], W_DEV, W_DEV, M_SYNC, s, seed++);
  }
  CHECK_OK(cuStreamDestroy(s));
  (void)argc;
  (void)argv;
}

/* ---- 3D copies ----------------------------------------------------------- */

static void test_memory2_copy3d(int argc, char **argv) {
  start();
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, 0));
  static const struct box3 cases[] = {
      /* w, h, d, spitch, sheight, sx, sy, sz, dpitch, dheight, dx, dy, dz */
      {5, 3, 4, 9, 5, 2, 1, 1, 7, 4, 1, 0, 2},
      {33, 17, 3, 40, 20, 7, 3, 0, 35, 17, 2, 0, 1},
      {16, 4, 6, 16, 4, 0, 0, 0, 16, 4, 0, 0, 0},   /* all contiguous */
      {16, 4, 6, 16, 4, 0, 0, 0, 16, 5, 0, 0, 0},   /* rows contiguous only */
      {1, 1, 9, 1, 1, 0, 0, 0, 3, 1, 2, 0, 0},      /* one byte a slice */
      {100, 2, 1, 100, 0, 0, 3, 0, 128, 0, 0, 1, 0}, /* Depth 1, heights 0 */
  };
  static const enum where ws[] = {W_HOST, W_DEV, W_UDEV};
  uint64_t seed = 900;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (size_t a = 0; a < 3; a++)
      for (size_t b = 0; b < 3; b++)
        for (int async = 0; async <= 1; async++)
          run_3d(&cases[i], ws[a], ws[b], async, s, seed++);
  /* More than a chunk: 24 slices of 1 MiB (plus a bit) each. */
  const struct box3 big = {1000, 1049, 24, 1001, 1050, 1, 1, 0,
                           1003, 1049, 3, 0, 0};
  run_3d(&big, W_HOST, W_DEV, false, s, seed++);
  run_3d(&big, W_DEV, W_HOST, true, s, seed++);
  run_3d(&big, W_DEV, W_DEV, false, s, seed++);
  CHECK_OK(cuStreamDestroy(s));
  (void)argc;
  (void)argv;
}

/* ---- 2D memsets ---------------------------------------------------------- */

static void model_memset2d(unsigned char *m, size_t off, size_t pitch,
                           unsigned value, unsigned elem, size_t w, size_t h) {
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++)
      for (unsigned b = 0; b < elem; b++)
        m[off + y * pitch + x * elem + b] = (unsigned char)(value >> (8 * b));
}

static CUresult memset2d(unsigned elem, CUdeviceptr d, size_t pitch,
                         unsigned v, size_t w, size_t h, CUstream s,
                         bool async) {
  if (elem == 1)
    return async ? cuMemsetD2D8Async(d, pitch, (unsigned char)v, w, h, s)
                 : cuMemsetD2D8(d, pitch, (unsigned char)v, w, h);
  if (elem == 2)
    return async ? cuMemsetD2D16Async(d, pitch, (unsigned short)v, w, h, s)
                 : cuMemsetD2D16(d, pitch, (unsigned short)v, w, h);
  return async ? cuMemsetD2D32Async(d, pitch, v, w, h, s)
               : cuMemsetD2D32(d, pitch, v, w, h);
}

static void test_memory2_memset2d(int argc, char **argv) {
  start();
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, 0));
  struct {
    size_t off, pitch, w, h;
  } cases[] = {
      {0, 64, 16, 10},   /* elem-multiple pitch and offset */
      {12, 100, 7, 33},  /* pitch 100: aligned to 4 */
      {8, 24, 6, 50},    /* contiguous for 4-byte elements (w * 4 == 24) */
      {4, 0, 300, 1},    /* one row: pitch unused */
      {40, 4000, 999, 3},
  };
  const size_t n = 200000;
  uint64_t seed = 40;
  for (unsigned elem = 1; elem <= 4; elem *= 2)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
      for (int async = 0; async <= 1; async++) {
        struct buf b;
        buf_make(&b, W_DEV, n, seed++);
        unsigned v = 0xA1B2C3D4u ^ (unsigned)seed;
        CHECK_OK(memset2d(elem, b.dev + cases[i].off, cases[i].pitch, v,
                          cases[i].w, cases[i].h, s, async));
        if (async) CHECK_OK(cuStreamSynchronize(s));
        model_memset2d(b.model, cases[i].off, cases[i].pitch, v, elem,
                       cases[i].w, cases[i].h);
        if (!buf_check(&b))
          fprintf(stderr, "    memset D2D%u case %zu async %d\n", elem * 8, i,
                  async);
        buf_free(&b);
      }
  /* A big one: 48 MiB in 3000 rows. */
  struct buf b;
  size_t pitch = 16 * 1024 + 64, rows = 3000;
  buf_make(&b, W_DEV, pitch * rows, 7);
  CHECK_OK(cuMemsetD2D32(b.dev + 64, pitch, 0x01020304u, 4 * 1024, rows - 1));
  model_memset2d(b.model, 64, pitch, 0x01020304u, 4, 4 * 1024, rows - 1);
  buf_check(&b);
  buf_free(&b);
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuStreamDestroy(s));
  (void)argc;
  (void)argv;
}

/* ---- Every refusal ------------------------------------------------------- */

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

/* A valid 2D host-to-device copy of 8 rows of 100 bytes into |d|, which
 * each test below breaks in one way. */
static CUDA_MEMCPY2D good_2d(const void *h, CUdeviceptr d) {
  CUDA_MEMCPY2D c;
  memset(&c, 0, sizeof c);
  c.srcMemoryType = CU_MEMORYTYPE_HOST;
  c.srcHost = h;
  c.srcPitch = 128;
  c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstDevice = d;
  c.dstPitch = 100;
  c.WidthInBytes = 100;
  c.Height = 8;
  return c;
}

static CUDA_MEMCPY3D good_3d(const void *h, CUdeviceptr d) {
  CUDA_MEMCPY3D c;
  memset(&c, 0, sizeof c);
  c.srcMemoryType = CU_MEMORYTYPE_HOST;
  c.srcHost = h;
  c.srcPitch = 128;
  c.srcHeight = 8;
  c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstDevice = d;
  c.dstPitch = 100;
  c.dstHeight = 8;
  c.WidthInBytes = 100;
  c.Height = 8;
  c.Depth = 4;
  return c;
}

static void test_memory2_errors(int argc, char **argv) {
  CUcontext ctx = start();
  const size_t n = 4 * MiB;
  CUdeviceptr d = 0, gone = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemAlloc(&gone, MiB));
  CHECK_OK(cuMemFree(gone));
  unsigned char *h = gpt_xmalloc(n);
  gpt_fill(h, n, 9);
  /* The device buffer's contents, which no refused call may change. */
  unsigned char *want = gpt_xmalloc(n), *got = gpt_xmalloc(n);
  gpt_fill(want, n, 10);
  CHECK_OK(cuMemcpyHtoD(d, want, n));

  CUDA_MEMCPY2D c = good_2d(h, d);
  CHECK_OK(cuMemcpy2D(&c));
  for (size_t y = 0; y < 8; y++) memcpy(want + y * 100, h + y * 128, 100);

  CHECK_CU(cuMemcpy2D(NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpy2DAsync(NULL, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpy3D(NULL), CUDA_ERROR_INVALID_VALUE);
  /* Memory types. */
  c = good_2d(h, d);
  c.srcMemoryType = 0;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, d);
  c.dstMemoryType = (CUmemorytype)5;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, d);
  c.dstMemoryType = CU_MEMORYTYPE_ARRAY;
  c.dstArray = (CUarray)(uintptr_t)0x1234;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_NOT_SUPPORTED);
  c = good_2d(h, d);
  c.srcMemoryType = CU_MEMORYTYPE_ARRAY;
  CHECK_CU(cuMemcpy2DUnaligned(&c), CUDA_ERROR_NOT_SUPPORTED);
  /* Pitches narrower than a row (after its X offset). */
  c = good_2d(h, d);
  c.dstPitch = 99;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, d);
  c.srcXInBytes = 29;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, d);
  c.dstXInBytes = 1;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  /* A pitch over the device's maximum. */
  int maxp = 0;
  CHECK_OK(cuDeviceGetAttribute(&maxp, CU_DEVICE_ATTRIBUTE_MAX_PITCH, 0));
  CHECK_GT_I(maxp, 0);
  c = good_2d(h, d);
  c.srcPitch = (size_t)maxp + 1;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  /* The last row past the end of the allocation; a start outside any. */
  c = good_2d(h, d);
  c.dstY = (n - 100) / 100 - 6;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c.dstY--; /* one row up: the last row ends 4 bytes before the end */
  CHECK_OK(cuMemcpy2D(&c));
  for (size_t y = 0; y < 8; y++)
    memcpy(want + (c.dstY + y) * 100, h + y * 128, 100);
  c = good_2d(h, gone);
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, (CUdeviceptr)0xdead0000ull);
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  /* A host side that is NULL, or a device address. */
  c = good_2d(NULL, d);
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d((const void *)(uintptr_t)d, d);
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  /* Arithmetic that wraps. */
  c = good_2d(h, d);
  c.dstY = SIZE_MAX / 50;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  c = good_2d(h, d);
  c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  c.srcDevice = d;
  c.srcPitch = SIZE_MAX / 4;
  c.Height = 9;
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
  /* A bad stream. */
  c = good_2d(h, d);
  CHECK_CU(cuMemcpy2DAsync(&c, (CUstream)(uintptr_t)0x999),
           CUDA_ERROR_INVALID_HANDLE);
  /* Empty copies succeed, even with nonsense elsewhere. */
  c = good_2d(h, gone);
  c.Height = 0;
  CHECK_OK(cuMemcpy2D(&c));
  c = good_2d(h, gone);
  c.WidthInBytes = 0;
  CHECK_OK(cuMemcpy2DAsync(&c, NULL));

  /* 3D: LODs and reserved fields, slice heights. */
  CUDA_MEMCPY3D c3 = good_3d(h, d);
  CHECK_OK(cuMemcpy3D(&c3));
  for (size_t z = 0; z < 4; z++)
    for (size_t y = 0; y < 8; y++)
      memcpy(want + (z * 8 + y) * 100, h + (z * 8 + y) * 128, 100);
  c3 = good_3d(h, d);
  c3.srcLOD = 1;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.dstLOD = 2;
  CHECK_CU(cuMemcpy3DAsync(&c3, NULL), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.reserved0 = h;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.reserved1 = h;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.dstHeight = 7;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.srcY = 1;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.dstZ = n / 800; /* the last slice past the end */
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_INVALID_VALUE);
  c3 = good_3d(h, d);
  c3.dstMemoryType = CU_MEMORYTYPE_ARRAY;
  CHECK_CU(cuMemcpy3D(&c3), CUDA_ERROR_NOT_SUPPORTED);
  c3 = good_3d(h, d);
  c3.Depth = 0;
  c3.srcLOD = 0;
  CHECK_OK(cuMemcpy3D(&c3));

  /* 2D memsets: alignment, pitch, range. */
  CHECK_CU(cuMemsetD2D16(d + 1, 64, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D32(d + 2, 64, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D16(d, 63, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D32(d, 66, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D8(d, 7, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D32(d, 28, 1, 8, 4), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D8(d + n - 100, 64, 1, 8, 3), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D8(gone, 64, 1, 8, 3), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D32(d, (size_t)maxp + 1, 1, 8, 3),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemsetD2D8Async(d, 64, 1, 8, 3, (CUstream)(uintptr_t)0x999),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(cuMemsetD2D16(gone, 3, 1, 0, 4)); /* empty */
  CHECK_OK(cuMemsetD2D16(d + n - 2, 0, 0xabcd, 1, 1)); /* last element */
  want[n - 2] = 0xcd;
  want[n - 1] = 0xab;

  /* Nothing refused reached the device, and no error is pending. */
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuMemcpyDtoH(got, d, n));
  CHECK_MEM_EQ(got, want, n);

  /* Without a context. */
  CUcontext popped;
  CHECK_OK(cuCtxPopCurrent(&popped));
  c = good_2d(h, d);
  CHECK_CU(cuMemcpy2D(&c), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuMemsetD2D8(d, 64, 1, 8, 3), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cuCtxPushCurrent(ctx));
  check_in_step(d, 11);
  CHECK_OK(cuMemFree(d));
  free(h);
  free(want);
  free(got);
  (void)argc;
  (void)argv;
}

/* ---- Pointer attributes -------------------------------------------------- */

/* A module with one variable, to see a module global's attributes. */
static const char ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .global .align 4 .b8 gvar[64];\n"
    "\n"
    "// out[i] = 3 * i + 1 for i < n\n"
    ".visible .entry iota(\n"
    "  .param .u64 iota_param_0,\n"
    "  .param .u32 iota_param_1\n"
    ")\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<7>;\n"
    "  .reg .b64 %rd<5>;\n"
    "\n"
    "  ld.param.u64 %rd1, [iota_param_0];\n"
    "  ld.param.u32 %r2, [iota_param_1];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.u32 %p1, %r1, %r2;\n"
    "  @%p1 bra $L__BB0_2;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.u32 %rd3, %r1, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  mad.lo.s32 %r6, %r1, 3, 1;\n"
    "  st.global.u32 [%rd4], %r6;\n"
    "$L__BB0_2:\n"
    "  ret;\n"
    "}\n";

/* Every attribute cuPointerGetAttributes documents, in one list. */
struct attrs {
  CUcontext ctx;
  unsigned type;
  CUdeviceptr dptr;
  void *hptr;
  unsigned sync_memops;
  unsigned long long buffer_id;
  unsigned managed;
  int ordinal;
  CUdeviceptr range_start;
  size_t range_size;
  unsigned mapped;
  unsigned ipc;
  unsigned handle_types;
  CUmemoryPool pool;
  unsigned decompress;
};

static CUresult get_all(struct attrs *a, CUdeviceptr p) {
  CUpointer_attribute which[] = {
      CU_POINTER_ATTRIBUTE_CONTEXT, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
      CU_POINTER_ATTRIBUTE_DEVICE_POINTER, CU_POINTER_ATTRIBUTE_HOST_POINTER,
      CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, CU_POINTER_ATTRIBUTE_BUFFER_ID,
      CU_POINTER_ATTRIBUTE_IS_MANAGED, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
      CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE,
      CU_POINTER_ATTRIBUTE_MAPPED,
      CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE,
      CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES,
      CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
      CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE,
  };
  void *data[] = {&a->ctx, &a->type, &a->dptr, &a->hptr, &a->sync_memops,
                  &a->buffer_id, &a->managed, &a->ordinal, &a->range_start,
                  &a->range_size, &a->mapped, &a->ipc, &a->handle_types,
                  &a->pool, &a->decompress};
  /* Poison, so that every slot is seen to be written. */
  memset(a, 0x5a, sizeof *a);
  return cuPointerGetAttributes(sizeof which / sizeof which[0], which, data,
                                p);
}

static void check_device_ptr(CUcontext ctx, CUdeviceptr base, size_t size,
                             CUdeviceptr p, CUmemoryPool pool) {
  struct attrs a;
  CHECK_OK(get_all(&a, p));
  CHECK_EQ_PTR(a.ctx, ctx);
  CHECK_EQ_U(a.type, CU_MEMORYTYPE_DEVICE);
  CHECK_EQ_U(a.dptr, p);
  CHECK_EQ_PTR(a.hptr, NULL);
  CHECK_EQ_U(a.managed, 0);
  CHECK_EQ_I(a.ordinal, 0);
  CHECK_EQ_U(a.range_start, base);
  CHECK_EQ_U(a.range_size, size);
  CHECK_EQ_U(a.mapped, 1);
  CHECK_EQ_U(a.ipc, 0);
  CHECK_EQ_U(a.handle_types, 0);
  CHECK_EQ_PTR(a.pool, pool);
  CHECK_EQ_U(a.decompress, 0);
  CHECK_NE_U(a.buffer_id, 0);
  /* The single-attribute call agrees. */
  CUcontext c2 = NULL;
  unsigned t = 0;
  CUdeviceptr dp = 0, start_addr = 0;
  size_t sz = 0;
  unsigned long long id = 0;
  int ord = -1;
  CUmemoryPool pl = (CUmemoryPool)(uintptr_t)1;
  void *hp = (void *)1;
  CHECK_OK(cuPointerGetAttribute(&c2, CU_POINTER_ATTRIBUTE_CONTEXT, p));
  CHECK_EQ_PTR(c2, ctx);
  CHECK_OK(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p));
  CHECK_EQ_U(t, CU_MEMORYTYPE_DEVICE);
  CHECK_OK(cuPointerGetAttribute(&dp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p));
  CHECK_EQ_U(dp, p);
  /* Device memory has no host address: refused, as by the driver. */
  CHECK_CU(cuPointerGetAttribute(&hp, CU_POINTER_ATTRIBUTE_HOST_POINTER, p),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuPointerGetAttribute(&id, CU_POINTER_ATTRIBUTE_BUFFER_ID, p));
  CHECK_EQ_U(id, a.buffer_id);
  CHECK_OK(cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p));
  CHECK_EQ_I(ord, 0);
  CHECK_OK(cuPointerGetAttribute(&start_addr,
                                 CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p));
  CHECK_EQ_U(start_addr, base);
  CHECK_OK(cuPointerGetAttribute(&sz, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p));
  CHECK_EQ_U(sz, size);
  CHECK_OK(cuPointerGetAttribute(&pl, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, p));
  CHECK_EQ_PTR(pl, pool);
  unsigned acc = 0;
  CHECK_OK(cuPointerGetAttribute(&acc, CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, p));
  CHECK_EQ_U(acc, CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE);
  unsigned rdma = 7;
  CHECK_OK(cuPointerGetAttribute(
      &rdma, CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE, p));
  CHECK_EQ_U(rdma, 0);
  /* The address range agrees too. */
  CUdeviceptr rb = 0;
  size_t rs = 0;
  CHECK_OK(cuMemGetAddressRange(&rb, &rs, p));
  CHECK_EQ_U(rb, base);
  CHECK_EQ_U(rs, size);
}

static void test_memory2_pointer_attrs(int argc, char **argv) {
  CUcontext ctx = start();
  CUdeviceptr d = 0, d2 = 0, pd = 0;
  size_t pitch = 0;
  REQUIRE_OK(cuMemAlloc(&d, 3 * MiB + 7));
  REQUIRE_OK(cuMemAllocPitch(&d2, &pitch, 300, 20, 4));
  check_device_ptr(ctx, d, 3 * MiB + 7, d, NULL);
  check_device_ptr(ctx, d, 3 * MiB + 7, d + 3 * MiB + 6, NULL); /* last byte */
  check_device_ptr(ctx, d2, pitch * 20, d2 + pitch * 3 + 17, NULL);

  /* Buffer ids: distinct per allocation, never reused, even at the same
   * address. */
  unsigned long long id1 = 0, id2 = 0, id3 = 0;
  CHECK_OK(cuPointerGetAttribute(&id1, CU_POINTER_ATTRIBUTE_BUFFER_ID, d));
  CHECK_OK(cuPointerGetAttribute(&id2, CU_POINTER_ATTRIBUTE_BUFFER_ID, d2));
  CHECK_NE_U(id1, id2);
  CUdeviceptr e = 0, e2 = 0;
  REQUIRE_OK(cuMemAlloc(&e, 4096));
  CHECK_OK(cuPointerGetAttribute(&id3, CU_POINTER_ATTRIBUTE_BUFFER_ID, e));
  CHECK_OK(cuMemFree(e));
  REQUIRE_OK(cuMemAlloc(&e2, 4096));
  unsigned long long id4 = 0;
  CHECK_OK(cuPointerGetAttribute(&id4, CU_POINTER_ATTRIBUTE_BUFFER_ID, e2));
  CHECK_NE_U(id3, id4);
  CHECK_NE_U(id3, id1);

  /* SYNC_MEMOPS: 0 until set. */
  unsigned sm = 9, one = 1;
  CHECK_OK(cuPointerGetAttribute(&sm, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, d));
  CHECK_EQ_U(sm, 0);
  CHECK_OK(cuPointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, d));
  CHECK_OK(cuPointerGetAttribute(&sm, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS,
                                 d + 100));
  CHECK_EQ_U(sm, 1);
  CHECK_CU(cuPointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_BUFFER_ID, d),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuPointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, 16),
           CUDA_ERROR_INVALID_VALUE);

  /* Page-locked host memory. */
  void *hp = NULL;
  REQUIRE_OK(cuMemHostAlloc(&hp, 10000, CU_MEMHOSTALLOC_PORTABLE));
  CUdeviceptr hd = (CUdeviceptr)(uintptr_t)hp;
  struct attrs a;
  CHECK_OK(get_all(&a, hd + 5));
  CHECK_EQ_PTR(a.ctx, ctx);
  CHECK_EQ_U(a.type, CU_MEMORYTYPE_HOST);
  CHECK_EQ_U(a.dptr, 0); /* no device address across the network */
  CHECK_EQ_PTR(a.hptr, (char *)hp + 5);
  CHECK_EQ_I(a.ordinal, 0);
  CHECK_EQ_U(a.range_start, hd);
  CHECK_GE_U(a.range_size, 10000);
  CHECK_EQ_U(a.mapped, 1);
  CHECK_EQ_PTR(a.pool, NULL);
  void *hq = NULL;
  CHECK_OK(cuPointerGetAttribute(&hq, CU_POINTER_ATTRIBUTE_HOST_POINTER, hd));
  CHECK_EQ_PTR(hq, hp);
  CUdeviceptr dq = 1;
  CHECK_CU(cuPointerGetAttribute(&dq, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, hd),
           CUDA_ERROR_INVALID_VALUE);
  unsigned t = 0, acc = 9;
  CHECK_OK(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, hd));
  CHECK_EQ_U(t, CU_MEMORYTYPE_HOST);
  CHECK_OK(cuPointerGetAttribute(&acc, CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, hd));
  CHECK_EQ_U(acc, CU_POINTER_ATTRIBUTE_ACCESS_FLAG_NONE);
  void *hp2 = NULL;
  REQUIRE_OK(cuMemAllocHost(&hp2, 100));
  unsigned long long hid1 = 0, hid2 = 0;
  CHECK_OK(cuPointerGetAttribute(&hid1, CU_POINTER_ATTRIBUTE_BUFFER_ID, hd));
  CHECK_OK(cuPointerGetAttribute(&hid2, CU_POINTER_ATTRIBUTE_BUFFER_ID,
                                 (CUdeviceptr)(uintptr_t)hp2));
  CHECK_NE_U(hid1, hid2);
  CHECK_NE_U(hid1, id1);

  /* Memory the driver does not know: cuPointerGetAttribute refuses it,
   * cuPointerGetAttributes fills the empty values and succeeds (cudart's
   * cudaPointerGetAttributes relies on that). */
  int stack_var = 0;
  CHECK_OK(cuMemFree(e2)); /* e2 may have e's address: both are gone now */
  CUdeviceptr unknown[] = {(CUdeviceptr)(uintptr_t)&stack_var, 0,
                           (CUdeviceptr)0xdead0000ull, e};
  for (size_t i = 0; i < 4; i++) {
    CUdeviceptr p = unknown[i];
    CHECK_OK(get_all(&a, p));
    CHECK_EQ_PTR(a.ctx, NULL);
    CHECK_EQ_U(a.type, 0);
    CHECK_EQ_U(a.dptr, 0);
    CHECK_EQ_PTR(a.hptr, NULL);
    CHECK_EQ_U(a.buffer_id, 0);
    CHECK_EQ_U(a.managed, 0);
    CHECK_EQ_I(a.ordinal, CU_DEVICE_INVALID);
    CHECK_EQ_U(a.range_start, 0);
    CHECK_EQ_U(a.range_size, 0);
    CHECK_EQ_U(a.mapped, 0);
    CHECK_EQ_PTR(a.pool, NULL);
    CUcontext cx;
    CHECK_CU(cuPointerGetAttribute(&cx, CU_POINTER_ATTRIBUTE_CONTEXT, p),
             CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p),
             CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuPointerGetAttribute(&id1, CU_POINTER_ATTRIBUTE_BUFFER_ID, p),
             CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_IS_MANAGED, p),
             CUDA_ERROR_INVALID_VALUE);
  }

  /* Refusals of the calls themselves. */
  CUpointer_attribute at[2] = {CU_POINTER_ATTRIBUTE_CONTEXT,
                               CU_POINTER_ATTRIBUTE_MEMORY_TYPE};
  CUcontext cx = NULL;
  void *slots[2] = {&cx, NULL};
  CHECK_CU(cuPointerGetAttribute(NULL, CU_POINTER_ATTRIBUTE_CONTEXT, d),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuPointerGetAttribute(&t, (CUpointer_attribute)999, d),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuPointerGetAttributes(2, at, slots, d), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_PTR(cx, NULL); /* nothing written */
  CHECK_CU(cuPointerGetAttributes(2, NULL, slots, d), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuPointerGetAttributes(2, at, NULL, d), CUDA_ERROR_INVALID_VALUE);
  at[1] = CU_POINTER_ATTRIBUTE_P2P_TOKENS;
  slots[1] = &t;
  CHECK_CU(cuPointerGetAttributes(2, at, slots, d), CUDA_ERROR_INVALID_VALUE);
  CUDA_POINTER_ATTRIBUTE_P2P_TOKENS tok;
  CHECK_CU(cuPointerGetAttribute(&tok, CU_POINTER_ATTRIBUTE_P2P_TOKENS, d),
           CUDA_ERROR_NOT_SUPPORTED);

  /* A module's variable is device memory of the module's context. */
  CUmodule mod;
  REQUIRE_OK(cuModuleLoadData(&mod, ptx));
  CUdeviceptr g = 0;
  size_t gsize = 0;
  REQUIRE_OK(cuModuleGetGlobal(&g, &gsize, mod, "gvar"));
  CHECK_EQ_U(gsize, 64);
  check_device_ptr(ctx, g, 64, g + 10, NULL);
  CHECK_OK(cuModuleUnload(mod));
  CHECK_OK(get_all(&a, g));
  CHECK_EQ_U(a.type, 0);

  /* Attributes need no current context (the allocation names its own). */
  CUcontext popped;
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_OK(cuPointerGetAttribute(&cx, CU_POINTER_ATTRIBUTE_CONTEXT, d));
  CHECK_EQ_PTR(cx, ctx);
  CHECK_OK(cuCtxPushCurrent(ctx));

  /* After a free, the pointer is unknown. */
  CHECK_OK(cuMemFree(d));
  CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemFreeHost(hp));
  CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, hd),
           CUDA_ERROR_INVALID_VALUE);

  /* A stream-ordered allocation names its pool. */
  CUmemoryPool pool;
  CHECK_OK(cuDeviceGetDefaultMemPool(&pool, 0));
  REQUIRE_OK(cuMemAllocAsync(&pd, 1000, NULL));
  check_device_ptr(ctx, pd, 1000, pd + 999, pool);
  CHECK_OK(cuMemFreeAsync(pd, NULL));
  CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, pd),
           CUDA_ERROR_INVALID_VALUE);

  /* Destroying the context forgets its memory. */
  CHECK_OK(cuCtxDestroy(ctx));
  CHECK_CU(cuPointerGetAttribute(&t, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d2),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuMemFreeHost(hp2));
  (void)argc;
  (void)argv;
}

/* ---- Memory pools -------------------------------------------------------- */

static cuuint64_t pool_attr(CUmemoryPool p, CUmemPool_attribute a) {
  cuuint64_t v = 0xdeadbeef;
  CHECK_OK(cuMemPoolGetAttribute(p, a, &v));
  return v;
}

#define USED(p) pool_attr(p, CU_MEMPOOL_ATTR_USED_MEM_CURRENT)
#define RESERVED(p) pool_attr(p, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)

static void fill_check(CUdeviceptr d, size_t n, CUstream s, uint64_t seed) {
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  gpt_fill(in, n, seed);
  memset(out, 0, n);
  CHECK_OK(cuMemcpyHtoDAsync(d, in, n, s));
  CHECK_OK(cuMemcpyDtoHAsync(out, d, n, s));
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_MEM_EQ(out, in, n);
  free(in);
  free(out);
}

static void test_memory2_pools(int argc, char **argv) {
  CUdevice dev;
  CUcontext ctx;
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  ctx = gpt_init_context(&dev);
  int supported = 0;
  CHECK_OK(cuDeviceGetAttribute(
      &supported, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, dev));
  CHECK_EQ_I(supported, 1);

  CUmemoryPool dflt = NULL, cur = NULL;
  CHECK_OK(cuDeviceGetDefaultMemPool(&dflt, dev));
  CHECK_NE_U((uintptr_t)dflt, 0);
  CHECK_OK(cuDeviceGetMemPool(&cur, dev));
  CHECK_EQ_PTR(cur, dflt);
  CHECK_CU(cuDeviceGetDefaultMemPool(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetDefaultMemPool(&cur, 7), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuDeviceGetMemPool(&cur, -1), CUDA_ERROR_INVALID_DEVICE);
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), 0);
  int flag = -1;
  CHECK_OK(cuMemPoolGetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES, &flag));
  CHECK_EQ_I(flag, 1);
  CHECK_OK(cuMemPoolGetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
  CHECK_EQ_I(flag, 1);
  CHECK_OK(cuMemPoolGetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES, &flag));
  CHECK_EQ_I(flag, 1);

  CUstream s, s2;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  REQUIRE_OK(cuStreamCreate(&s2, 0));
  /* The module first: its variable takes device memory too. */
  CUmodule mod;
  CUfunction iota;
  REQUIRE_OK(cuModuleLoadData(&mod, ptx));
  REQUIRE_OK(cuModuleGetFunction(&iota, mod, "iota"));
  size_t free0 = 0, total = 0, f = 0;
  REQUIRE_OK(cuMemGetInfo(&free0, &total));

  /* Allocate on a stream and use it at once, later on that stream. */
  CUdeviceptr a = 0, b = 0;
  REQUIRE_OK(cuMemAllocAsync(&a, 1000, s));
  CHECK_NE_U(a, 0);
  CHECK_EQ_U(a % 256, 0);
  fill_check(a, 1000, s, 1);
  CHECK_EQ_U(USED(dflt), 1024); /* rounded up to 256 bytes */
  CHECK_EQ_U(RESERVED(dflt), 1024);
  REQUIRE_OK(cuMemAllocAsync(&b, 5 * MiB, s2));
  fill_check(b, 5 * MiB, s2, 2);
  CHECK_EQ_U(USED(dflt), 1024 + 5 * MiB);
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 1024 + 5 * MiB);
  CHECK_OK(cuMemGetInfo(&f, &total));
  CHECK_LE_U(f + 5 * MiB, free0);
  /* A copy between two pool allocations, and a 2D memset into one. */
  CHECK_OK(cuMemcpyDtoDAsync(b + 4096, a, 1000, s));
  CHECK_OK(cuMemsetD2D8Async(b, 100, 0x77, 10, 3, s));
  unsigned char back[1200], ina[1000];
  CHECK_OK(cuMemcpyDtoHAsync(back, b, 1200, s));
  CHECK_OK(cuMemcpyDtoHAsync(ina, a, 1000, s));
  CHECK_OK(cuStreamSynchronize(s));
  for (int y = 0; y < 3; y++) CHECK_MEM_ALL(back + y * 100, 0x77, 10);
  CUdeviceptr bb = 0;
  size_t bs = 0;
  CHECK_OK(cuMemGetAddressRange(&bb, &bs, b + 77));
  CHECK_EQ_U(bb, b);
  CHECK_EQ_U(bs, 5 * MiB);
  unsigned char *tail = gpt_xmalloc(1000);
  CHECK_OK(cuMemcpyDtoH(tail, b + 4096, 1000));
  CHECK_MEM_EQ(tail, ina, 1000);
  free(tail);

  /* A kernel on the stream writes pool memory. */
  CUdeviceptr k = 0;
  unsigned nk = 3000;
  REQUIRE_OK(cuMemAllocAsync(&k, nk * 4, s));
  void *params[] = {&k, &nk};
  CHECK_OK(cuLaunchKernel(iota, (nk + 255) / 256, 1, 1, 256, 1, 1, 0, s,
                          params, NULL));
  unsigned *kout = gpt_xmalloc(nk * 4);
  CHECK_OK(cuMemcpyDtoHAsync(kout, k, nk * 4, s));
  CHECK_OK(cuStreamSynchronize(s));
  bool iota_ok = true;
  for (unsigned i = 0; i < nk; i++) iota_ok &= kout[i] == 3 * i + 1;
  CHECK_TRUE(iota_ok);
  free(kout);
  CHECK_OK(cuMemFreeAsync(k, s));

  /* Frees: the release threshold is 0, so nothing stays reserved. */
  CHECK_OK(cuMemFreeAsync(a, s));
  CHECK_EQ_U(USED(dflt), 5 * MiB);
  CHECK_CU(cuMemFreeAsync(a, s), CUDA_ERROR_INVALID_VALUE);  /* twice */
  CHECK_CU(cuMemFreeAsync(b + 8, s), CUDA_ERROR_INVALID_VALUE);  /* interior */
  CHECK_CU(cuMemFreeAsync((CUdeviceptr)0xdead0000ull, s),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFreeAsync(b, (CUstream)(uintptr_t)0x999),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuMemFree(a), CUDA_ERROR_INVALID_VALUE);
  /* cuMemFree frees pool memory too. */
  CHECK_OK(cuMemFree(b));
  CHECK_EQ_U(USED(dflt), 0);
  CHECK_EQ_U(RESERVED(dflt), 0);
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH),
             1024 + 5 * MiB + 12032); /* 12000 rounded */
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuMemGetInfo(&f, &total));
  CHECK_EQ_U(f, free0);

  /* cuMemFreeAsync of a cuMemAlloc allocation. */
  CUdeviceptr plain = 0;
  REQUIRE_OK(cuMemAlloc(&plain, 3 * MiB));
  CHECK_OK(cuMemFreeAsync(plain, s));
  CHECK_CU(cuMemFree(plain), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuMemGetInfo(&f, &total));
  CHECK_EQ_U(f, free0);

  /* High watermarks reset to the current value; only 0 may be written. */
  cuuint64_t zero = 0, nz = 5;
  CHECK_OK(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &zero));
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_USED_MEM_HIGH), 0);
  CHECK_OK(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
                                 &zero));
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 0);
  CHECK_CU(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &nz),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &zero),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
                                 &zero),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolSetAttribute(dflt, (CUmemPool_attribute)99, &zero),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolGetAttribute(dflt, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, NULL),
           CUDA_ERROR_INVALID_VALUE);

  /* A threshold that keeps freed memory: the next allocation of that size
   * reuses the block (same address, same memory block, new buffer id). */
  cuuint64_t keep = UINT64_MAX;
  CHECK_OK(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                                 &keep));
  CHECK_EQ_U(pool_attr(dflt, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), UINT64_MAX);
  CUdeviceptr r1 = 0, r2 = 0, r3 = 0;
  unsigned long long blk1 = 0, blk2 = 0, buf1 = 0, buf2 = 0;
  REQUIRE_OK(cuMemAllocAsync(&r1, 2 * MiB, s));
  CHECK_OK(cuPointerGetAttribute(&blk1, CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID,
                                 r1));
  CHECK_OK(cuPointerGetAttribute(&buf1, CU_POINTER_ATTRIBUTE_BUFFER_ID, r1));
  CHECK_OK(cuMemFreeAsync(r1, s));
  CHECK_EQ_U(USED(dflt), 0);
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB);
  REQUIRE_OK(cuMemAllocAsync(&r2, 2 * MiB - 100, s));
  CHECK_EQ_U(r2, r1);
  CHECK_OK(cuPointerGetAttribute(&blk2, CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID,
                                 r2));
  CHECK_OK(cuPointerGetAttribute(&buf2, CU_POINTER_ATTRIBUTE_BUFFER_ID, r2));
  CHECK_EQ_U(blk2, blk1);
  CHECK_NE_U(buf2, buf1);
  CHECK_OK(cuMemGetAddressRange(&bb, &bs, r2));
  CHECK_EQ_U(bs, 2 * MiB - 100);
  CHECK_EQ_U(USED(dflt), 2 * MiB);
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB);
  fill_check(r2, 2 * MiB - 100, s, 3);
  /* Too big for the block, or too small for it: a new one. */
  REQUIRE_OK(cuMemAllocAsync(&r3, 100, s));
  CHECK_NE_U(r3, r1);
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB + 256);
  CHECK_OK(cuMemFreeAsync(r2, s));
  CHECK_OK(cuMemFreeAsync(r3, s2));
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB + 256);
  /* Reuse on another stream, which the reuse attributes allow... */
  REQUIRE_OK(cuMemAllocAsync(&r2, 200, s));
  CHECK_EQ_U(r2, r3);
  CHECK_OK(cuMemFreeAsync(r2, s2));
  /* ...and forbid. */
  int off = 0;
  CHECK_OK(cuMemPoolSetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES, &off));
  CHECK_OK(cuMemPoolSetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &off));
  CHECK_OK(cuMemPoolSetAttribute(
      dflt, CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES, &off));
  REQUIRE_OK(cuMemAllocAsync(&r2, 200, s));
  CHECK_NE_U(r2, r3);
  CHECK_OK(cuMemFreeAsync(r2, s));
  CUdeviceptr old3 = r3;
  REQUIRE_OK(cuMemAllocAsync(&r3, 200, s2)); /* freed on s2: reused */
  CHECK_EQ_U(r3, old3);
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB + 512);
  CHECK_OK(cuMemFree(r3));

  /* Trimming gives back what is not in use, down to what is asked. */
  CUdeviceptr live = 0;
  REQUIRE_OK(cuMemAllocAsync(&live, 4096, s));
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB + 512 + 4096);
  CHECK_OK(cuMemPoolTrimTo(dflt, 2 * MiB + 8192));
  CHECK_EQ_U(RESERVED(dflt), 2 * MiB + 512 + 4096);
  CHECK_OK(cuMemPoolTrimTo(dflt, 0));
  CHECK_EQ_U(RESERVED(dflt), 4096);
  CHECK_EQ_U(USED(dflt), 4096);
  CHECK_CU(cuMemPoolTrimTo((CUmemoryPool)(uintptr_t)0x1234, 0),
           CUDA_ERROR_INVALID_VALUE);

  /* A cached block makes room when the device is full. */
  CUdeviceptr huge = 0, huge2 = 0;
  REQUIRE_OK(cuMemAllocAsync(&huge, 600 * MiB, s));
  CHECK_OK(cuMemFreeAsync(huge, s));
  CHECK_EQ_U(RESERVED(dflt), 600 * MiB + 4096);
  REQUIRE_OK(cuMemAllocAsync(&huge2, 700 * MiB, s));
  CHECK_EQ_U(RESERVED(dflt), 700 * MiB + 4096);
  fill_check(huge2 + 699 * MiB, MiB, s, 4);
  CHECK_OK(cuMemFreeAsync(huge2, s));
  /* Lowering the threshold gives the cached memory back. */
  CHECK_OK(cuMemPoolSetAttribute(dflt, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                                 &zero));
  CHECK_EQ_U(RESERVED(dflt), 4096);

  /* An explicit pool. */
  CUmemPoolProps props;
  memset(&props, 0, sizeof props);
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = dev;
  props.maxSize = 8 * MiB;
  CUmemoryPool mine = NULL;
  REQUIRE_OK(cuMemPoolCreate(&mine, &props));
  CHECK_NE_U((uintptr_t)mine, (uintptr_t)dflt);
  CUdeviceptr m1 = 0, m2 = 0, m3 = 0;
  REQUIRE_OK(cuMemAllocFromPoolAsync(&m1, 5 * MiB, mine, s));
  CUmemoryPool owner = NULL;
  CHECK_OK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
                                 m1));
  CHECK_EQ_PTR(owner, mine);
  fill_check(m1, 5 * MiB, s, 5);
  /* maxSize: 5 + 4 MiB does not fit in 8. */
  CHECK_CU(cuMemAllocFromPoolAsync(&m2, 4 * MiB, mine, s),
           CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CU(cuMemAllocFromPoolAsync(&m2, 9 * MiB, mine, s),
           CUDA_ERROR_OUT_OF_MEMORY);
  REQUIRE_OK(cuMemAllocFromPoolAsync(&m2, 3 * MiB, mine, s));
  CHECK_EQ_U(USED(mine), 8 * MiB);
  CHECK_EQ_U(USED(dflt), 4096); /* pools are accounted apart */
  /* The device's current pool. */
  CHECK_OK(cuDeviceSetMemPool(dev, mine));
  CHECK_OK(cuDeviceGetMemPool(&cur, dev));
  CHECK_EQ_PTR(cur, mine);
  CHECK_OK(cuMemFreeAsync(m2, s));
  REQUIRE_OK(cuMemAllocAsync(&m3, 1000, s));
  CHECK_OK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
                                 m3));
  CHECK_EQ_PTR(owner, mine);
  CHECK_CU(cuDeviceSetMemPool(dev, (CUmemoryPool)(uintptr_t)0x1234),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceSetMemPool(3, mine), CUDA_ERROR_INVALID_DEVICE);
  /* Access: the pool's own device reads and writes it. */
  CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev};
  CUmemAccess_flags acc = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  CHECK_OK(cuMemPoolGetAccess(&acc, mine, &loc));
  CHECK_EQ_I(acc, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
  CUmemAccessDesc desc = {.location = loc,
                          .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  CHECK_OK(cuMemPoolSetAccess(mine, &desc, 1));
  desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READ;
  CHECK_CU(cuMemPoolSetAccess(mine, &desc, 1), CUDA_ERROR_INVALID_VALUE);
  desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  desc.location.id = 5;
  CHECK_CU(cuMemPoolSetAccess(mine, &desc, 1), CUDA_ERROR_INVALID_DEVICE);
  loc.id = 5;
  CHECK_CU(cuMemPoolGetAccess(&acc, mine, &loc), CUDA_ERROR_INVALID_DEVICE);
  loc.type = CU_MEM_LOCATION_TYPE_HOST;
  loc.id = 0;
  CHECK_OK(cuMemPoolGetAccess(&acc, mine, &loc));
  CHECK_EQ_I(acc, CU_MEM_ACCESS_FLAGS_PROT_NONE);
  CHECK_CU(cuMemPoolGetAccess(NULL, mine, &loc), CUDA_ERROR_INVALID_VALUE);

  /* Destroying a pool with memory still in use: the memory stays usable,
   * the device's current pool is the default again, the handle is gone. */
  CHECK_OK(cuMemPoolDestroy(mine));
  CHECK_OK(cuDeviceGetMemPool(&cur, dev));
  CHECK_EQ_PTR(cur, dflt);
  CHECK_CU(cuMemPoolDestroy(mine), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocFromPoolAsync(&m2, 100, mine, s),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolGetAttribute(mine, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &nz),
           CUDA_ERROR_INVALID_VALUE);
  fill_check(m1, 5 * MiB, s, 6);
  CHECK_OK(cuMemFreeAsync(m1, s));
  CHECK_OK(cuMemFree(m3));
  CHECK_CU(cuMemPoolDestroy(dflt), CUDA_ERROR_INVALID_VALUE);

  /* Pool properties refused. */
  CUmemoryPool bad;
  CUmemPoolProps pp = props;
  pp.allocType = CU_MEM_ALLOCATION_TYPE_INVALID;
  CHECK_CU(cuMemPoolCreate(&bad, &pp), CUDA_ERROR_INVALID_VALUE);
  pp = props;
  pp.location.id = 9;
  CHECK_CU(cuMemPoolCreate(&bad, &pp), CUDA_ERROR_INVALID_DEVICE);
  pp = props;
  pp.location.type = CU_MEM_LOCATION_TYPE_HOST;
  CHECK_CU(cuMemPoolCreate(&bad, &pp), CUDA_ERROR_NOT_SUPPORTED);
  pp = props;
  pp.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  CHECK_CU(cuMemPoolCreate(&bad, &pp), CUDA_ERROR_NOT_SUPPORTED);
  pp = props;
  pp.reserved[3] = 1;
  CHECK_CU(cuMemPoolCreate(&bad, &pp), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolCreate(&bad, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemPoolCreate(NULL, &props), CUDA_ERROR_INVALID_VALUE);

  /* Allocation refusals. */
  CUdeviceptr x = 0;
  CHECK_CU(cuMemAllocAsync(NULL, 100, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocAsync(&x, 0, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemAllocAsync(&x, 100, (CUstream)(uintptr_t)0x999),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuMemAllocAsync(&x, (size_t)1 << 50, s), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CU(cuMemAllocFromPoolAsync(&x, 100, NULL, s), CUDA_ERROR_INVALID_VALUE);

  /* A stream of another context. */
  CUcontext other;
  CUstream so;
  REQUIRE_OK(cuCtxCreate(&other, NULL, 0, dev));
  REQUIRE_OK(cuStreamCreate(&so, 0));
  CUcontext popped;
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_EQ_PTR(popped, other);
  CHECK_CU(cuMemAllocAsync(&x, 100, so), CUDA_ERROR_INVALID_HANDLE);
  /* Without a context. */
  CHECK_OK(cuCtxPopCurrent(&popped));
  CHECK_CU(cuMemAllocAsync(&x, 100, NULL), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuMemFreeAsync(live, NULL), CUDA_ERROR_INVALID_CONTEXT);
  /* Memory of a context that is destroyed leaves its pool's accounting. */
  CHECK_OK(cuCtxPushCurrent(other));
  CUdeviceptr o1 = 0;
  REQUIRE_OK(cuMemAllocAsync(&o1, 10000, so));
  CHECK_EQ_U(USED(dflt), 4096 + 10240);
  CHECK_OK(cuCtxDestroy(other));
  CHECK_EQ_U(USED(dflt), 4096);
  CHECK_EQ_U(RESERVED(dflt), 4096);
  CHECK_OK(cuCtxPushCurrent(ctx));
  CHECK_OK(cuMemFreeAsync(live, s));
  CHECK_EQ_U(USED(dflt), 0);

  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuStreamDestroy(s2));
  CHECK_OK(cuCtxSynchronize());
  CHECK_OK(cuMemGetInfo(&f, &total));
  CHECK_EQ_U(f, free0);
  CHECK_OK(cuModuleUnload(mod));
  (void)argc;
  (void)argv;
}

/* ---- Asynchronous copies and page-locked memory -------------------------- */

/* cuMemcpyHtoDAsync takes the source's bytes at the call: overwriting the
 * buffer as soon as it returns does not change what the device gets. And a
 * device-to-host copy into page-locked memory has landed when the stream's
 * synchronisation returns. */
static void test_memory2_async_host(int argc, char **argv) {
  start();
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  static const size_t sizes[] = {4096, 3 * MiB + 5, 40 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *pinned = NULL, *back = NULL, *want = gpt_xmalloc(n);
    REQUIRE_OK(cuMemAllocHost((void **)&pinned, n));
    REQUIRE_OK(cuMemHostAlloc((void **)&back, n, CU_MEMHOSTALLOC_PORTABLE));
    CUdeviceptr d = 0;
    REQUIRE_OK(cuMemAlloc(&d, n));

    gpt_fill(pinned, n, 100 + i);
    memcpy(want, pinned, n);
    CHECK_OK(cuMemcpyHtoDAsync(d, pinned, n, s));
    memset(pinned, 0x3c, n); /* at once, before any synchronisation */
    memset(back, 0, n);
    CHECK_OK(cuMemcpyDtoHAsync(back, d, n, s));
    CHECK_OK(cuStreamSynchronize(s));
    CHECK_MEM_EQ(back, want, n);

    /* The same with cuMemcpyAsync and a 2D copy, both from pinned memory,
     * and the result waited for with an event. */
    gpt_fill(pinned, n, 200 + i);
    memcpy(want, pinned, n);
    CHECK_OK(cuMemcpyAsync(d, (CUdeviceptr)(uintptr_t)pinned, n, s));
    memset(pinned, 0xa5, n);
    CUevent ev;
    CHECK_OK(cuEventCreate(&ev, 0));
    memset(back, 0, n);
    CHECK_OK(cuMemcpyAsync((CUdeviceptr)(uintptr_t)back, d, n, s));
    CHECK_OK(cuEventRecord(ev, s));
    CHECK_OK(cuEventSynchronize(ev));
    CHECK_MEM_EQ(back, want, n);
    CHECK_OK(cuEventDestroy(ev));

    size_t w = 1000, h = n / 1024;
    gpt_fill(pinned, n, 300 + i);
    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = pinned;
    c.srcPitch = 1024;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = d;
    c.dstPitch = w;
    c.WidthInBytes = w;
    c.Height = h;
    for (size_t y = 0; y < h; y++) memcpy(want + y * w, pinned + y * 1024, w);
    CHECK_OK(cuMemcpy2DAsync(&c, s));
    memset(pinned, 0x11, n);
    memset(back, 0, n);
    CHECK_OK(cuMemcpyDtoHAsync(back, d, w * h, s));
    CHECK_OK(cuStreamSynchronize(s));
    CHECK_MEM_EQ(back, want, w * h);

    CHECK_OK(cuMemFree(d));
    CHECK_OK(cuMemFreeHost(pinned));
    CHECK_OK(cuMemFreeHost(back));
    free(want);
  }
  CHECK_OK(cuStreamDestroy(s));
  (void)argc;
  (void)argv;
}

/* ---- The server's own checks --------------------------------------------- */

/* A raw protocol connection: what a broken or hostile client could send. */
struct raw {
  struct gp_wire w;
  uint32_t next;
};

static void raw_open(struct raw *r) {
  REQUIRE_TRUE(gpt_wire_connect(&r->w, server.port) == 0);
  r->w.timeout_ms = 10000;
  r->next = 1;
}

/* Sends a request and, unless |noreply|, reads its reply (skipping server
 * notices): the reply's result, its payload into |out| (exactly |out_len|
 * bytes when the result is 0), or -1 when the connection failed (|*closed|
 * then says whether the server sent a ProtocolError first). */
static int raw_call(struct raw *r, uint16_t type, const ProtobufCMessage *m,
                    const void *payload, size_t len, bool noreply, void *out,
                    size_t out_len, ProtobufCMessage **reply_out) {
  uint32_t id = r->next++;
  if (gp_wire_send(&r->w, type, noreply ? GP_FRAME_F_NOREPLY : 0, id, m,
                   payload, len) != 0 ||
      gp_wire_flush(&r->w) != 0)
    return -1;
  if (noreply) return 0;
  for (;;) {
    struct gp_frame_header h;
    ProtobufCMessage *msg = NULL;
    if (gp_wire_recv_header(&r->w, &h) != 0) return -1;
    if (gp_wire_recv_msg(&r->w, &h, &msg) != 0) return -1;
    if (h.type == GP_MSG_PROTOCOL_ERROR) {
      protobuf_c_message_free_unpacked(msg, NULL);
      return -2;
    }
    if (!(h.flags & GP_FRAME_F_REPLY)) {
      protobuf_c_message_free_unpacked(msg, NULL);
      if (gp_wire_discard(&r->w, h.payload_len) != 0) return -1;
      continue;
    }
    int32_t res = -1, deferred = 0;
    gp_msg_reply_status(msg, &res, &deferred);
    if (res == 0 && out != NULL) {
      CHECK_EQ_U(h.payload_len, out_len);
      if (h.payload_len != out_len ||
          gp_wire_recv_payload(&r->w, out, out_len) != 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return -1;
      }
    } else if (gp_wire_discard(&r->w, h.payload_len) != 0) {
      protobuf_c_message_free_unpacked(msg, NULL);
      return -1;
    }
    CHECK_EQ_U(h.request_id, id);
    if (reply_out != NULL) *reply_out = msg;
    else protobuf_c_message_free_unpacked(msg, NULL);
    return res;
  }
}

static int raw_htod(struct raw *r, uint64_t dst, uint64_t pitch, uint64_t w,
                    uint64_t h, const void *data, size_t len) {
  Gpupool__Memcpy2DHtoD m = GPUPOOL__MEMCPY2_DHTO_D__INIT;
  m.dst = dst;
  m.dst_pitch = pitch;
  m.width = w;
  m.height = h;
  return raw_call(r, GP_MSG_MEMCPY_2D_HTOD, &m.base, data, len, false, NULL,
                  0, NULL);
}

static int raw_dtoh(struct raw *r, uint64_t src, uint64_t pitch, uint64_t w,
                    uint64_t h, void *out) {
  Gpupool__Memcpy2DDtoH m = GPUPOOL__MEMCPY2_DDTO_H__INIT;
  m.src = src;
  m.src_pitch = pitch;
  m.width = w;
  m.height = h;
  return raw_call(r, GP_MSG_MEMCPY_2D_DTOH, &m.base, NULL, 0, false, out,
                  (size_t)(w * h), NULL);
}

static int raw_dtod(struct raw *r, uint64_t dst, uint64_t dpitch, uint64_t src,
                    uint64_t spitch, uint64_t w, uint64_t h) {
  Gpupool__Memcpy2DDtoD m = GPUPOOL__MEMCPY2_DDTO_D__INIT;
  m.dst = dst;
  m.dst_pitch = dpitch;
  m.src = src;
  m.src_pitch = spitch;
  m.width = w;
  m.height = h;
  return raw_call(r, GP_MSG_MEMCPY_2D_DTOD, &m.base, NULL, 0, false, NULL, 0,
                  NULL);
}

static int raw_memset(struct raw *r, uint64_t dst, uint64_t pitch,
                      uint32_t value, uint32_t elem, uint64_t w, uint64_t h) {
  Gpupool__Memset2D m = GPUPOOL__MEMSET2_D__INIT;
  m.dst = dst;
  m.pitch = pitch;
  m.value = value;
  m.element_size = elem;
  m.width = w;
  m.height = h;
  return raw_call(r, GP_MSG_MEMSET_2D, &m.base, NULL, 0, false, NULL, 0, NULL);
}

static void test_memory2_server_checks(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  struct raw r;
  raw_open(&r);
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  hello.min_version = GP_PROTOCOL_VERSION_MIN;
  hello.max_version = GP_PROTOCOL_VERSION_MAX;
  hello.client_name = "test_memory2";
  hello.hostname = "localhost";
  REQUIRE_TRUE(raw_call(&r, GP_MSG_HELLO, &hello.base, NULL, 0, false, NULL,
                        0, NULL) == 0);
  Gpupool__CtxCreate cc = GPUPOOL__CTX_CREATE__INIT;
  cc.ctx = 77;
  REQUIRE_TRUE(raw_call(&r, GP_MSG_CTX_CREATE, &cc.base, NULL, 0, false, NULL,
                        0, NULL) == 0);
  Gpupool__MemAlloc ma = GPUPOOL__MEM_ALLOC__INIT;
  ma.ctx = 77;
  ma.size = 4096;
  ProtobufCMessage *rep = NULL;
  REQUIRE_TRUE(raw_call(&r, GP_MSG_MEM_ALLOC, &ma.base, NULL, 0, false, NULL,
                        0, &rep) == 0);
  uint64_t d = ((Gpupool__MemAllocReply *)rep)->dptr;
  protobuf_c_message_free_unpacked(rep, NULL);

  unsigned char model[4096], got[4096], rows[41 * 50];
  memset(model, 0, sizeof model);
  gpt_fill(rows, sizeof rows, 1);
  CHECK_EQ_I(raw_htod(&r, d, 4096, 4096, 1, model, 4096), 0);
  /* Scatter 41 rows of 50 bytes at a pitch of 100: the last row ends at
   * byte 4050. */
  CHECK_EQ_I(raw_htod(&r, d, 100, 50, 41, rows, sizeof rows), 0);
  for (int y = 0; y < 41; y++) memcpy(model + y * 100, rows + y * 50, 50);
  /* One more row would end past the allocation: refused, nothing written,
   * and the payload is consumed (the next request is understood). */
  unsigned char more[42 * 50];
  gpt_fill(more, sizeof more, 2);
  CHECK_EQ_I(raw_htod(&r, d, 100, 50, 42, more, sizeof more),
             CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_htod(&r, d + 47, 100, 50, 41, rows, sizeof rows),
             CUDA_ERROR_INVALID_VALUE);
  /* A pitch narrower than a row; a span that wraps. */
  CHECK_EQ_I(raw_htod(&r, d, 49, 50, 2, rows, 100), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_htod(&r, d, UINT64_MAX / 2, 50, 3, rows, 150),
             CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_htod(&r, 0xdead0000ull, 100, 50, 2, rows, 100),
             CUDA_ERROR_INVALID_VALUE);
  /* Gather them back, and the whole buffer. */
  unsigned char g[41 * 50];
  CHECK_EQ_I(raw_dtoh(&r, d, 100, 50, 41, g), 0);
  CHECK_MEM_EQ(g, rows, sizeof g);
  CHECK_EQ_I(raw_dtoh(&r, d, 4096, 4096, 1, got), 0);
  CHECK_MEM_EQ(got, model, 4096);
  CHECK_EQ_I(raw_dtoh(&r, d, 100, 50, 42, g), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_dtoh(&r, d, 10, 50, 2, g), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_dtoh(&r, d, 4096, GP_COPY_CHUNK, 2, g),
             CUDA_ERROR_INVALID_VALUE);
  /* Device to device: every row of both sides is checked first. */
  CHECK_EQ_I(raw_dtod(&r, d + 2048, 64, d, 100, 50, 20), 0);
  for (int y = 0; y < 20; y++)
    memmove(model + 2048 + y * 64, model + y * 100, 50);
  CHECK_EQ_I(raw_dtod(&r, d + 2048, 64, d, 100, 50, 33),
             CUDA_ERROR_INVALID_VALUE); /* destination's last row past */
  CHECK_EQ_I(raw_dtod(&r, d, 64, d + 1000, 100, 50, 32),
             CUDA_ERROR_INVALID_VALUE); /* source's last row past */
  CHECK_EQ_I(raw_dtod(&r, d, 40, d + 1000, 100, 50, 2),
             CUDA_ERROR_INVALID_VALUE);
  /* Memsets. */
  CHECK_EQ_I(raw_memset(&r, d + 4, 64, 0x11223344u, 4, 8, 10), 0);
  for (int y = 0; y < 10; y++)
    for (int x = 0; x < 8; x++) {
      model[4 + y * 64 + x * 4 + 0] = 0x44;
      model[4 + y * 64 + x * 4 + 1] = 0x33;
      model[4 + y * 64 + x * 4 + 2] = 0x22;
      model[4 + y * 64 + x * 4 + 3] = 0x11;
    }
  CHECK_EQ_I(raw_memset(&r, d, 64, 1, 3, 8, 10), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_memset(&r, d + 2, 64, 1, 4, 8, 10), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_memset(&r, d, 66, 1, 4, 8, 10), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_memset(&r, d, 16, 1, 4, 8, 10), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_memset(&r, d, 64, 1, 1, 8, 65), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_memset(&r, d, 64, 1, 4, UINT64_MAX / 2, 1),
             CUDA_ERROR_INVALID_VALUE);
  /* None of the refused requests changed a byte. */
  CHECK_EQ_I(raw_dtoh(&r, d, 4096, 4096, 1, got), 0);
  CHECK_MEM_EQ(got, model, 4096);

  /* Protocol errors end the session: a payload of the wrong length, a
   * device-to-host copy sent without wanting its data. */
  CHECK_EQ_I(raw_htod(&r, d, 100, 50, 2, rows, 99), -2);
  gp_wire_free(&r.w);
  raw_open(&r);
  CHECK_EQ_I(raw_call(&r, GP_MSG_HELLO, &hello.base, NULL, 0, false, NULL, 0,
                      NULL), 0);
  Gpupool__Memcpy2DDtoH bad = GPUPOOL__MEMCPY2_DDTO_H__INIT;
  bad.width = 1;
  bad.height = 1;
  CHECK_EQ_I(raw_call(&r, GP_MSG_MEMCPY_2D_DTOH, &bad.base, NULL, 0, true,
                      NULL, 0, NULL), 0);
  Gpupool__MemGetInfo gi = GPUPOOL__MEM_GET_INFO__INIT;
  CHECK_LT_I(raw_call(&r, GP_MSG_MEM_GET_INFO, &gi.base, NULL, 0, false, NULL,
                      0, NULL), 0);
  gp_wire_free(&r.w);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"pointer_attrs", test_memory2_pointer_attrs, 60},
      {"copy2d", test_memory2_copy2d, 120},
      {"copy2d_big", test_memory2_copy2d_big, 120},
      {"copy3d", test_memory2_copy3d, 120},
      {"memset2d", test_memory2_memset2d, 60},
      {"errors", test_memory2_errors, 60},
      {"pools", test_memory2_pools, 120},
      {"async_host", test_memory2_async_host, 120},
      {"server_checks", test_memory2_server_checks, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
