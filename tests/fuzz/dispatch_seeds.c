/* Writes the seed corpus of fuzz_dispatch (tests/fuzz/corpus/fuzz_dispatch):
 * client sessions as the client library sends them (the same messages,
 * ids and order), in fuzz_dispatch's record format (fuzz_dispatch.h).
 *
 * usage: dispatch_seeds OUTDIR PTX FATBIN [FATBIN...]
 *   PTX     tests/integration/e2e_basic.ptx as the build makes it (its
 *           vectorAdd is launched)
 *   FATBIN  e2e_basic.fatbin first (vectorAdd launched from it too), then
 *           any others (loaded and listed)
 *
 * Device addresses are predicted: the emu arena of fuzz_dispatch
 * (FD_EMU_MEMORY) sits just below EMU_ARENA_HINT_END and allocates first
 * fit in EMU_ARENA_ALIGN units, so a fresh session's allocations land at
 * known addresses. Replaying a seed with FUZZ_DISPATCH_LOG=1 shows each
 * request's result.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "backend/emu/arena.h"
#include "fuzz_dispatch.h"
#include "gpupool.pb-c.h"
#include "gpupool/gpupool.h"
#include "frame.h"
#include "msg.h"

#define ARENA_BASE (EMU_ARENA_HINT_END - FD_EMU_MEMORY)

struct seed {
  uint8_t *buf;
  size_t len, cap;
  uint64_t next; /* the next allocation's predicted address */
};

static void put(struct seed *s, const void *p, size_t n) {
  if (s->len + n > s->cap) {
    s->cap = (s->len + n) * 2 + 4096;
    s->buf = realloc(s->buf, s->cap);
    if (!s->buf) {
      perror("realloc");
      exit(1);
    }
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
}

static void start(struct seed *s, uint8_t mode) {
  s->len = 0;
  s->next = ARENA_BASE;
  put(s, &mode, 1);
}

/* One record: |msg| packed, |payload| after it. */
static void rec(struct seed *s, uint16_t type, uint8_t flags,
                const ProtobufCMessage *msg, const void *payload,
                size_t payload_len) {
  uint8_t head[FD_RECORD_HEAD], body[65536];
  size_t n = msg ? protobuf_c_message_pack(msg, body) : 0;

  if (payload_len > 0xffff || n > 0xffff) {
    fprintf(stderr, "dispatch_seeds: a record of %zu + %zu bytes\n", n,
            payload_len);
    exit(1);
  }
  head[0] = (uint8_t)type;
  head[1] = flags;
  head[2] = (uint8_t)n;
  head[3] = (uint8_t)(n >> 8);
  head[4] = (uint8_t)payload_len;
  head[5] = (uint8_t)(payload_len >> 8);
  put(s, head, sizeof(head));
  put(s, body, n);
  if (payload_len)
    put(s, payload, payload_len);
}

static void save(struct seed *s, const char *dir, const char *name) {
  char path[4096];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  uint8_t *b;
  long n;

  if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    perror(path);
    exit(1);
  }
  b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
    perror(path);
    exit(1);
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* ---- requests ------------------------------------------------------------ */

static void hello(struct seed *s) {
  Gpupool__HelloRequest m = GPUPOOL__HELLO_REQUEST__INIT;
  m.min_version = GP_PROTOCOL_VERSION_MIN;
  m.max_version = GP_PROTOCOL_VERSION_MAX;
  m.client_name = "libcuda.so.1 0.1.0";
  m.hostname = "seed";
  m.pid = 4242;
  rec(s, GP_MSG_HELLO, 0, &m.base, NULL, 0);
}

static void goodbye(struct seed *s) {
  Gpupool__Goodbye m = GPUPOOL__GOODBYE__INIT;
  rec(s, GP_MSG_GOODBYE, GP_FRAME_F_NOREPLY, &m.base, NULL, 0);
}

static void ctx_create(struct seed *s, uint64_t ctx) {
  Gpupool__CtxCreate m = GPUPOOL__CTX_CREATE__INIT;
  m.ctx = ctx;
  rec(s, GP_MSG_CTX_CREATE, 0, &m.base, NULL, 0);
}

static void ctx_destroy(struct seed *s, uint64_t ctx) {
  Gpupool__CtxDestroy m = GPUPOOL__CTX_DESTROY__INIT;
  m.ctx = ctx;
  rec(s, GP_MSG_CTX_DESTROY, 0, &m.base, NULL, 0);
}

static void ctx_sync(struct seed *s, uint64_t ctx) {
  Gpupool__CtxSynchronize m = GPUPOOL__CTX_SYNCHRONIZE__INIT;
  m.ctx = ctx;
  rec(s, GP_MSG_CTX_SYNCHRONIZE, 0, &m.base, NULL, 0);
}

static uint64_t alloc(struct seed *s, uint64_t ctx, uint64_t size) {
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  uint64_t at = s->next;
  m.ctx = ctx;
  m.size = size;
  rec(s, GP_MSG_MEM_ALLOC, 0, &m.base, NULL, 0);
  s->next += (size + EMU_ARENA_ALIGN - 1) / EMU_ARENA_ALIGN * EMU_ARENA_ALIGN;
  return at;
}

static void mem_free(struct seed *s, uint64_t dptr) {
  Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
  m.dptr = dptr;
  rec(s, GP_MSG_MEM_FREE, 0, &m.base, NULL, 0);
}

static void htod(struct seed *s, uint64_t dst, const void *data, size_t n,
                 uint64_t stream, uint8_t flags) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  m.dst = dst;
  m.size = n;
  m.stream = stream;
  m.async = stream != 0;
  rec(s, GP_MSG_MEMCPY_HTOD, flags, &m.base, data, n);
}

static void dtoh(struct seed *s, uint64_t src, size_t n, uint64_t stream) {
  Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
  m.src = src;
  m.size = n;
  m.stream = stream;
  m.async = stream != 0;
  rec(s, GP_MSG_MEMCPY_DTOH, 0, &m.base, NULL, 0);
}

static void dtod(struct seed *s, uint64_t dst, uint64_t src, size_t n,
                 uint64_t stream) {
  Gpupool__MemcpyDtoD m = GPUPOOL__MEMCPY_DTO_D__INIT;
  m.dst = dst;
  m.src = src;
  m.size = n;
  m.stream = stream;
  rec(s, GP_MSG_MEMCPY_DTOD, 0, &m.base, NULL, 0);
}

static void memset_(struct seed *s, uint64_t dst, uint32_t value,
                    uint32_t elem, uint64_t count, uint64_t stream,
                    uint8_t flags) {
  Gpupool__Memset m = GPUPOOL__MEMSET__INIT;
  m.dst = dst;
  m.value = value;
  m.element_size = elem;
  m.count = count;
  m.stream = stream;
  m.async = stream != 0;
  rec(s, GP_MSG_MEMSET, flags, &m.base, NULL, 0);
}

static void mem_info(struct seed *s, uint64_t ctx) {
  Gpupool__MemGetInfo m = GPUPOOL__MEM_GET_INFO__INIT;
  m.ctx = ctx;
  rec(s, GP_MSG_MEM_GET_INFO, 0, &m.base, NULL, 0);
}

static void addr_range(struct seed *s, uint64_t dptr) {
  Gpupool__MemGetAddressRange m = GPUPOOL__MEM_GET_ADDRESS_RANGE__INIT;
  m.dptr = dptr;
  rec(s, GP_MSG_MEM_GET_ADDRESS_RANGE, 0, &m.base, NULL, 0);
}

static void stream_create(struct seed *s, uint64_t ctx, uint64_t stream) {
  Gpupool__StreamCreate m = GPUPOOL__STREAM_CREATE__INIT;
  m.ctx = ctx;
  m.stream = stream;
  rec(s, GP_MSG_STREAM_CREATE, 0, &m.base, NULL, 0);
}

static void stream_op(struct seed *s, uint16_t type, uint64_t ctx,
                      uint64_t stream) {
  switch (type) {
  case GP_MSG_STREAM_DESTROY: {
    Gpupool__StreamDestroy m = GPUPOOL__STREAM_DESTROY__INIT;
    m.stream = stream;
    rec(s, type, 0, &m.base, NULL, 0);
    break;
  }
  case GP_MSG_STREAM_SYNCHRONIZE: {
    Gpupool__StreamSynchronize m = GPUPOOL__STREAM_SYNCHRONIZE__INIT;
    m.stream = stream;
    rec(s, type, 0, &m.base, NULL, 0);
    break;
  }
  default: {
    Gpupool__StreamQuery m = GPUPOOL__STREAM_QUERY__INIT;
    m.ctx = ctx;
    m.stream = stream;
    rec(s, GP_MSG_STREAM_QUERY, 0, &m.base, NULL, 0);
  }
  }
}

static void event_create(struct seed *s, uint64_t ctx, uint64_t ev,
                         uint32_t flags) {
  Gpupool__EventCreate m = GPUPOOL__EVENT_CREATE__INIT;
  m.ctx = ctx;
  m.event = ev;
  m.flags = flags;
  rec(s, GP_MSG_EVENT_CREATE, 0, &m.base, NULL, 0);
}

static void event_record(struct seed *s, uint64_t ev, uint64_t stream) {
  Gpupool__EventRecord m = GPUPOOL__EVENT_RECORD__INIT;
  m.event = ev;
  m.stream = stream;
  rec(s, GP_MSG_EVENT_RECORD, 0, &m.base, NULL, 0);
}

static void event_op(struct seed *s, uint16_t type, uint64_t ev) {
  switch (type) {
  case GP_MSG_EVENT_QUERY: {
    Gpupool__EventQuery m = GPUPOOL__EVENT_QUERY__INIT;
    m.event = ev;
    rec(s, type, 0, &m.base, NULL, 0);
    break;
  }
  case GP_MSG_EVENT_SYNCHRONIZE: {
    Gpupool__EventSynchronize m = GPUPOOL__EVENT_SYNCHRONIZE__INIT;
    m.event = ev;
    rec(s, type, 0, &m.base, NULL, 0);
    break;
  }
  default: {
    Gpupool__EventDestroy m = GPUPOOL__EVENT_DESTROY__INIT;
    m.event = ev;
    rec(s, GP_MSG_EVENT_DESTROY, 0, &m.base, NULL, 0);
  }
  }
}

static void elapsed(struct seed *s, uint64_t a, uint64_t b) {
  Gpupool__EventElapsedTime m = GPUPOOL__EVENT_ELAPSED_TIME__INIT;
  m.start = a;
  m.end = b;
  rec(s, GP_MSG_EVENT_ELAPSED_TIME, 0, &m.base, NULL, 0);
}

static void wait_event(struct seed *s, uint64_t stream, uint64_t ev) {
  Gpupool__StreamWaitEvent m = GPUPOOL__STREAM_WAIT_EVENT__INIT;
  m.stream = stream;
  m.event = ev;
  rec(s, GP_MSG_STREAM_WAIT_EVENT, 0, &m.base, NULL, 0);
}

static void module_load(struct seed *s, uint64_t ctx, uint64_t module,
                        const uint8_t *image, size_t len, bool send) {
  Gpupool__ModuleLoad m = GPUPOOL__MODULE_LOAD__INIT;
  uint8_t digest[SHA256_DIGEST_LENGTH];

  SHA256(image, len, digest);
  m.ctx = ctx;
  m.module = module;
  m.sha256.data = digest;
  m.sha256.len = sizeof(digest);
  m.has_image = send;
  m.image_size = send ? len : 0;
  rec(s, GP_MSG_MODULE_LOAD, 0, &m.base, send ? image : NULL,
      send ? len : 0);
}

static void image_parts(struct seed *s, const uint8_t *image, size_t len,
                        size_t part) {
  uint8_t digest[SHA256_DIGEST_LENGTH];

  SHA256(image, len, digest);
  for (size_t off = 0; off < len; off += part) {
    Gpupool__ImagePart m = GPUPOOL__IMAGE_PART__INIT;
    size_t n = len - off < part ? len - off : part;
    m.sha256.data = digest;
    m.sha256.len = sizeof(digest);
    m.image_size = len;
    m.offset = off;
    rec(s, GP_MSG_IMAGE_PART, off + n < len ? GP_FRAME_F_NOREPLY : 0,
        &m.base, image + off, n);
  }
}

static void module_unload(struct seed *s, uint64_t module) {
  Gpupool__ModuleUnload m = GPUPOOL__MODULE_UNLOAD__INIT;
  m.module = module;
  rec(s, GP_MSG_MODULE_UNLOAD, 0, &m.base, NULL, 0);
}

static void get_function(struct seed *s, uint64_t module, const char *name,
                         uint64_t fn) {
  Gpupool__ModuleGetFunction m = GPUPOOL__MODULE_GET_FUNCTION__INIT;
  m.module = module;
  m.name = (char *)name;
  m.function = fn;
  rec(s, GP_MSG_MODULE_GET_FUNCTION, 0, &m.base, NULL, 0);
}

static void get_global(struct seed *s, uint64_t module, const char *name) {
  Gpupool__ModuleGetGlobal m = GPUPOOL__MODULE_GET_GLOBAL__INIT;
  m.module = module;
  m.name = (char *)name;
  rec(s, GP_MSG_MODULE_GET_GLOBAL, 0, &m.base, NULL, 0);
}

static void get_kernels(struct seed *s, uint64_t module) {
  Gpupool__ModuleGetKernels m = GPUPOOL__MODULE_GET_KERNELS__INIT;
  m.module = module;
  rec(s, GP_MSG_MODULE_GET_KERNELS, 0, &m.base, NULL, 0);
}

static void launch(struct seed *s, uint64_t ctx, uint64_t fn, uint32_t gx,
                   uint32_t bx, uint32_t shared, uint64_t stream,
                   const void *params, size_t plen) {
  Gpupool__LaunchKernel m = GPUPOOL__LAUNCH_KERNEL__INIT;
  m.ctx = ctx;
  m.function = fn;
  m.grid_x = gx;
  m.grid_y = 1;
  m.grid_z = 1;
  m.block_x = bx;
  m.block_y = 1;
  m.block_z = 1;
  m.shared_mem = shared;
  m.stream = stream;
  rec(s, GP_MSG_LAUNCH_KERNEL, 0, &m.base, params, plen);
}

/* vectorAdd(const float *a, const float *b, float *c, int n). */
static void vector_add_params(uint8_t p[28], uint64_t a, uint64_t b,
                              uint64_t c, int32_t n) {
  memcpy(p, &a, 8);
  memcpy(p + 8, &b, 8);
  memcpy(p + 16, &c, 8);
  memcpy(p + 24, &n, 4);
}

/* ---- sessions ------------------------------------------------------------ */

enum { CTX = 0x1001, CTX2 = 0x1002, STREAM = 0x2001, STREAM2 = 0x2002,
       EV = 0x3001, EV2 = 0x3002, MOD = 0x4001, MOD2 = 0x4002,
       FN = 0x5001 };

static void s_memory(struct seed *s, size_t n, uint64_t stream,
                     uint8_t flags) {
  uint8_t *data = malloc(n);
  uint64_t a, b;

  for (size_t i = 0; i < n; i++)
    data[i] = (uint8_t)(i * 7 + 1);
  ctx_create(s, CTX);
  if (stream)
    stream_create(s, CTX, stream);
  a = alloc(s, CTX, n);
  b = alloc(s, CTX, n);
  mem_info(s, CTX);
  addr_range(s, a + n / 2);
  htod(s, a, data, n, stream, flags);
  dtod(s, b, a, n, stream);
  dtoh(s, b, n, stream);
  memset_(s, a, 0xab, 1, n, stream, flags);
  memset_(s, a, 0xbeef, 2, n / 2, stream, flags);
  memset_(s, b + 4, 0xdeadbeef, 4, n / 4 - 1, stream, flags);
  dtoh(s, a + 1, n - 1, stream);
  if (stream)
    stream_op(s, GP_MSG_STREAM_SYNCHRONIZE, CTX, stream);
  mem_free(s, b);
  mem_free(s, a);
  ctx_sync(s, CTX);
  ctx_destroy(s, CTX);
  free(data);
}

static void s_memory_errors(struct seed *s) {
  uint8_t data[64] = {1, 2, 3};
  uint64_t a;

  ctx_create(s, CTX);
  a = alloc(s, CTX, 4096);
  htod(s, a + 4090, data, sizeof(data), 0, 0);      /* past the end */
  htod(s, 0x1000, data, sizeof(data), 0, 0);        /* nowhere */
  dtoh(s, a + 4095, 2, 0);
  dtoh(s, UINT64_MAX - 1, 16, 0);
  dtod(s, a, a + 100, 4000, 0);                     /* overlap, past */
  memset_(s, a + 1, 0, 4, 4, 0, 0);                 /* misaligned */
  memset_(s, a, 0, 3, 4, 0, 0);                     /* bad element */
  memset_(s, a, 0, 1, UINT64_MAX, 0, 0);
  mem_free(s, a + 8);
  mem_free(s, a);
  mem_free(s, a);                                   /* twice */
  alloc(s, CTX, 0);
  alloc(s, CTX, UINT64_MAX);
  alloc(s, 0x9999, 16);                             /* no such context */
  ctx_destroy(s, CTX);
  ctx_destroy(s, CTX);
  htod(s, a, data, sizeof(data), 0, 0);             /* freed */
}

static void s_pitch_2d(struct seed *s) {
  Gpupool__MemAllocPitch mp = GPUPOOL__MEM_ALLOC_PITCH__INIT;
  Gpupool__Memcpy2DHtoD h = GPUPOOL__MEMCPY2_DHTO_D__INIT;
  Gpupool__Memcpy2DDtoH d = GPUPOOL__MEMCPY2_DDTO_H__INIT;
  Gpupool__Memcpy2DDtoD dd = GPUPOOL__MEMCPY2_DDTO_D__INIT;
  Gpupool__Memset2D ms = GPUPOOL__MEMSET2_D__INIT;
  uint8_t rows[24 * 8];
  uint64_t a, b;

  for (size_t i = 0; i < sizeof(rows); i++)
    rows[i] = (uint8_t)i;
  ctx_create(s, CTX);
  mp.ctx = CTX;
  mp.width = 24;
  mp.height = 8;
  mp.element_size = 4;
  rec(s, GP_MSG_MEM_ALLOC_PITCH, 0, &mp.base, NULL, 0);
  /* The emu pitch: rows rounded up to 512 bytes. */
  a = s->next;
  s->next += 512 * 8;
  b = alloc(s, CTX, 4096);
  h.dst = a;
  h.dst_pitch = 512;
  h.width = 24;
  h.height = 8;
  rec(s, GP_MSG_MEMCPY_2D_HTOD, 0, &h.base, rows, sizeof(rows));
  dd.dst = b;
  dd.dst_pitch = 32;
  dd.src = a;
  dd.src_pitch = 512;
  dd.width = 24;
  dd.height = 8;
  rec(s, GP_MSG_MEMCPY_2D_DTOD, 0, &dd.base, NULL, 0);
  d.src = b;
  d.src_pitch = 32;
  d.width = 24;
  d.height = 8;
  rec(s, GP_MSG_MEMCPY_2D_DTOH, 0, &d.base, NULL, 0);
  ms.dst = a;
  ms.pitch = 512;
  ms.value = 0x55;
  ms.element_size = 2;
  ms.width = 12;
  ms.height = 8;
  rec(s, GP_MSG_MEMSET_2D, 0, &ms.base, NULL, 0);
  d.src = a;
  d.src_pitch = 512;
  rec(s, GP_MSG_MEMCPY_2D_DTOH, 0, &d.base, NULL, 0);
  ctx_destroy(s, CTX);
}

static void s_streams_events(struct seed *s) {
  uint64_t a;

  ctx_create(s, CTX);
  stream_create(s, CTX, STREAM);
  stream_create(s, CTX, STREAM2);
  event_create(s, CTX, EV, 0);
  event_create(s, CTX, EV2, 0);
  a = alloc(s, CTX, 1 << 16);
  event_record(s, EV, STREAM);
  memset_(s, a, 1, 4, 1 << 14, STREAM, 0);
  event_record(s, EV2, STREAM);
  wait_event(s, STREAM2, EV2);
  stream_op(s, GP_MSG_STREAM_QUERY, CTX, STREAM2);
  event_op(s, GP_MSG_EVENT_QUERY, EV2);
  event_op(s, GP_MSG_EVENT_SYNCHRONIZE, EV2);
  elapsed(s, EV, EV2);
  stream_op(s, GP_MSG_STREAM_SYNCHRONIZE, CTX, STREAM);
  stream_op(s, GP_MSG_STREAM_DESTROY, CTX, STREAM2);
  stream_op(s, GP_MSG_STREAM_DESTROY, CTX, STREAM2); /* twice */
  event_op(s, GP_MSG_EVENT_DESTROY, EV);
  event_op(s, GP_MSG_EVENT_QUERY, EV);                /* destroyed */
  wait_event(s, STREAM, EV);
  ctx_destroy(s, CTX);
  stream_op(s, GP_MSG_STREAM_QUERY, CTX, STREAM);     /* context gone */
}

static void s_primary(struct seed *s) {
  Gpupool__PrimaryCtxRetain r = GPUPOOL__PRIMARY_CTX_RETAIN__INIT;
  Gpupool__PrimaryCtxRelease rl = GPUPOOL__PRIMARY_CTX_RELEASE__INIT;
  uint64_t a;

  r.ctx = CTX;
  rec(s, GP_MSG_PRIMARY_CTX_RETAIN, 0, &r.base, NULL, 0);
  r.ctx = CTX2;
  rec(s, GP_MSG_PRIMARY_CTX_RETAIN, 0, &r.base, NULL, 0); /* second */
  a = alloc(s, CTX, 256);
  memset_(s, a, 7, 1, 256, 0, 0);
  ctx_destroy(s, CTX);                                   /* refused */
  rl.ctx = CTX;
  rec(s, GP_MSG_PRIMARY_CTX_RELEASE, 0, &rl.base, NULL, 0);
  rec(s, GP_MSG_PRIMARY_CTX_RELEASE, 0, &rl.base, NULL, 0);
  memset_(s, a, 7, 1, 256, 0, 0);                        /* freed */
}

/* vectorAdd on n elements from |image| (loaded whole or in parts). */
static void s_vector_add(struct seed *s, const uint8_t *image, size_t len,
                         int32_t n, uint32_t block, int how) {
  uint8_t params[28], *data = malloc((size_t)n * 4);
  uint64_t a, b, c;

  for (int32_t i = 0; i < n; i++) {
    float f = (float)i;
    memcpy(data + 4 * i, &f, 4);
  }
  ctx_create(s, CTX);
  a = alloc(s, CTX, (uint64_t)n * 4);
  b = alloc(s, CTX, (uint64_t)n * 4);
  c = alloc(s, CTX, (uint64_t)n * 4);
  htod(s, a, data, (size_t)n * 4, 0, GP_FRAME_F_NOREPLY);
  htod(s, b, data, (size_t)n * 4, 0, GP_FRAME_F_NOREPLY);
  if (how == 0) {
    module_load(s, CTX, MOD, image, len, true);
  } else {
    /* As the client does for a big image: ask, upload, load. */
    module_load(s, CTX, MOD, image, len, false);
    image_parts(s, image, len, len / 3 + 1);
    module_load(s, CTX, MOD, image, len, false);
  }
  get_kernels(s, MOD);
  get_function(s, MOD, "vectorAdd", FN);
  get_global(s, MOD, "e2eTable");
  vector_add_params(params, a, b, c, n);
  launch(s, CTX, FN, (uint32_t)((n + (int32_t)block - 1) / (int32_t)block),
         block, 0, 0, params, sizeof(params));
  dtoh(s, c, (size_t)n * 4, 0);
  /* Out of range: the kernel faults, the context is then unusable. */
  vector_add_params(params, a, b, c + (uint64_t)n * 4 * 64, n);
  launch(s, CTX, FN, 1, block, 0, 0, params, sizeof(params));
  ctx_sync(s, CTX);
  module_unload(s, MOD);
  ctx_destroy(s, CTX);
  free(data);
}

static void s_launch_errors(struct seed *s, const uint8_t *image,
                            size_t len) {
  uint8_t params[28];
  uint64_t a;

  ctx_create(s, CTX);
  a = alloc(s, CTX, 4096);
  module_load(s, CTX, MOD, image, len, true);
  get_function(s, MOD, "vectorAdd", FN);
  get_function(s, MOD, "noSuchKernel", FN + 1);
  get_function(s, MOD, "bad name", FN + 2);
  vector_add_params(params, a, a, a, 16);
  launch(s, CTX, FN, 1, 2048, 0, 0, params, sizeof(params));    /* block */
  launch(s, CTX, FN, 1, 32, 1u << 30, 0, params, sizeof(params)); /* smem */
  launch(s, CTX, FN, 1, 32, 0, 0, params, 20);                  /* params */
  launch(s, CTX, FN, 0, 32, 0, 0, params, sizeof(params));      /* grid */
  launch(s, CTX, FN + 7, 1, 32, 0, 0, params, sizeof(params));  /* fn */
  launch(s, CTX, FN, 1, 32, 0, STREAM, params, sizeof(params)); /* stream */
  launch(s, CTX, FN, 1, 32, 0, 0, params, sizeof(params));      /* fine */
  module_unload(s, MOD);
  module_unload(s, MOD);
  launch(s, CTX, FN, 1, 32, 0, 0, params, sizeof(params));      /* unloaded */
  module_load(s, CTX, MOD2, (const uint8_t *)"garbage image", 13, true);
  ctx_destroy(s, CTX);
}

static void s_load_list(struct seed *s, const uint8_t *image, size_t len) {
  ctx_create(s, CTX);
  module_load(s, CTX, MOD, image, len, true);
  get_kernels(s, MOD);
  module_load(s, CTX, MOD2, image, len, false); /* cached */
  get_kernels(s, MOD2);
  module_unload(s, MOD);
  ctx_destroy(s, CTX);
}

int main(int argc, char **argv) {
  struct seed s = {0};
  uint8_t *ptx, *fat;
  size_t ptx_len, fat_len;
  char name[64];

  if (argc < 4) {
    fprintf(stderr, "usage: dispatch_seeds OUTDIR PTX FATBIN [FATBIN...]\n");
    return 2;
  }
  ptx = slurp(argv[2], &ptx_len);
  fat = slurp(argv[3], &fat_len);

  static const size_t sizes[] = {4, 512, 4096, 60000};
  for (size_t i = 0; i < 4; i++) {
    start(&s, 0);
    s_memory(&s, sizes[i], 0, 0);
    goodbye(&s);
    snprintf(name, sizeof(name), "memory_%zu", sizes[i]);
    save(&s, argv[1], name);
    start(&s, 0);
    s_memory(&s, sizes[i], STREAM, GP_FRAME_F_NOREPLY);
    snprintf(name, sizeof(name), "memory_async_%zu", sizes[i]);
    save(&s, argv[1], name);
  }
  start(&s, FD_MODE_OWN_HELLO);
  hello(&s);
  s_memory(&s, 4096, 0, 0);
  goodbye(&s);
  save(&s, argv[1], "memory_own_hello");
  start(&s, 0);
  s_memory_errors(&s);
  save(&s, argv[1], "memory_errors");
  start(&s, 0);
  s_pitch_2d(&s);
  save(&s, argv[1], "pitch_2d");
  start(&s, 0);
  s_streams_events(&s);
  save(&s, argv[1], "streams_events");
  start(&s, 0);
  s_primary(&s);
  save(&s, argv[1], "primary_ctx");

  static const int32_t elems[] = {1, 33, 257, 1000};
  for (size_t i = 0; i < 4; i++) {
    start(&s, 0);
    s_vector_add(&s, ptx, ptx_len, elems[i], i % 2 ? 128 : 32, 0);
    snprintf(name, sizeof(name), "vector_add_ptx_%d", elems[i]);
    save(&s, argv[1], name);
    start(&s, 0);
    s_vector_add(&s, fat, fat_len, elems[i], 64, 0);
    snprintf(name, sizeof(name), "vector_add_fatbin_%d", elems[i]);
    save(&s, argv[1], name);
  }
  start(&s, 0);
  s_vector_add(&s, ptx, ptx_len, 100, 32, 1);
  save(&s, argv[1], "vector_add_parts");
  start(&s, 0);
  s_launch_errors(&s, ptx, ptx_len);
  save(&s, argv[1], "launch_errors");
  for (int i = 3; i < argc; i++) {
    size_t len;
    uint8_t *im = slurp(argv[i], &len);
    const char *base = strrchr(argv[i], '/');
    start(&s, 0);
    s_load_list(&s, im, len);
    snprintf(name, sizeof(name), "load_%s", base ? base + 1 : argv[i]);
    save(&s, argv[1], name);
    free(im);
  }

  free(ptx);
  free(fat);
  free(s.buf);
  return 0;
}
