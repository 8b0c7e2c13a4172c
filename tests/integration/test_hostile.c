/* Hostile clients: what a client library never sends reaches a real
 * server, which must answer with an error or close that one connection,
 * keep serving its other sessions, and keep nothing of it.
 *
 * Every scenario runs one real session through gpupool's own library
 * (this process's libcuda.so.1) for its whole length and uses it after each
 * attack; opens a fresh raw session after each too; and at the end checks
 * that the server's workers are back to that one session's and that the
 * supervisor's resident memory grew by at most GROWTH_MAX. The attacks go
 * through tests/integration/raw.c (gpt_raw_*), whose connection is the
 * client's own transport; only the garbage before any handshake uses a
 * plain socket of its own.
 */
#include <arpa/inet.h>
#include <cuda.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "gpupool/gpupool.h"
#include "harness.h"
#include "msg.h"
#include "raw.h"

static struct gpt_server server;

/* How much the supervisor's VmRSS may grow over a scenario: the attacks
 * repeat ROUNDS times, so a leak of a few KiB per connection shows. */
#define GROWTH_MAX (4u << 20)
#define ROUNDS 20

/* Ids the raw sessions choose. */
#define CTX 0x51
#define CTX2 0x52
#define STREAM 0x61
#define EVENT 0x71
#define MODULE 0x81
#define FUNC 0x91

/* ---- the library's session ----------------------------------------------- */

static CUcontext lib_ctx;

static void lib_start(void) {
  CUdevice dev;
  REQUIRE_OK(cuInit(0));
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  REQUIRE_OK(cuCtxCreate(&lib_ctx, NULL, 0, dev));
}

/* A round trip through the library's session: it still works. */
static void lib_check(void) {
  uint8_t out[4096], in[4096];
  CUdeviceptr p = 0;
  gpt_fill(in, sizeof in, (uint64_t)gpt_now());
  CHECK_OK(cuCtxSetCurrent(lib_ctx));
  CHECK_OK(cuMemAlloc(&p, sizeof in));
  CHECK_OK(cuMemcpyHtoD(p, in, sizeof in));
  memset(out, 0, sizeof out);
  CHECK_OK(cuMemcpyDtoH(out, p, sizeof out));
  CHECK_MEM_EQ(out, in, sizeof in);
  CHECK_OK(cuMemFree(p));
}

/* ---- raw sessions --------------------------------------------------------- */

static void raw_open(struct gpt_raw *r) {
  REQUIRE_TRUE(gpt_raw_open(r, server.port, 20000));
}

static int raw_hello(struct gpt_raw *r) {
  Gpupool__HelloRequest m = GPUPOOL__HELLO_REQUEST__INIT;
  m.min_version = GP_PROTOCOL_VERSION_MIN;
  m.max_version = GP_PROTOCOL_VERSION_MAX;
  m.client_name = "test_hostile";
  m.hostname = "localhost";
  return gpt_raw_call(r, GP_MSG_HELLO, &m.base, NULL, 0, NULL, 0, NULL);
}

static void raw_session(struct gpt_raw *r) {
  raw_open(r);
  REQUIRE_TRUE(raw_hello(r) == 0);
}

static int raw_ctx(struct gpt_raw *r, uint64_t ctx) {
  Gpupool__CtxCreate m = GPUPOOL__CTX_CREATE__INIT;
  m.ctx = ctx;
  return gpt_raw_call(r, GP_MSG_CTX_CREATE, &m.base, NULL, 0, NULL, 0, NULL);
}

static int raw_ctx_destroy(struct gpt_raw *r, uint64_t ctx) {
  Gpupool__CtxDestroy m = GPUPOOL__CTX_DESTROY__INIT;
  m.ctx = ctx;
  return gpt_raw_call(r, GP_MSG_CTX_DESTROY, &m.base, NULL, 0, NULL, 0,
                      NULL);
}

static int raw_alloc(struct gpt_raw *r, uint64_t ctx, uint64_t size,
                     uint64_t *dptr) {
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  ProtobufCMessage *rep = NULL;
  m.ctx = ctx;
  m.size = size;
  int res = gpt_raw_call(r, GP_MSG_MEM_ALLOC, &m.base, NULL, 0, NULL, 0, &rep);
  *dptr = res == 0 && rep ? ((Gpupool__MemAllocReply *)rep)->dptr : 0;
  if (rep) protobuf_c_message_free_unpacked(rep, NULL);
  return res;
}

static int raw_htod(struct gpt_raw *r, uint64_t dst, const void *p,
                    size_t n) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  m.dst = dst;
  m.size = n;
  return gpt_raw_call(r, GP_MSG_MEMCPY_HTOD, &m.base, p, n, NULL, 0, NULL);
}

static int raw_dtoh(struct gpt_raw *r, uint64_t src, void *p, size_t n) {
  Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
  m.src = src;
  m.size = n;
  return gpt_raw_call(r, GP_MSG_MEMCPY_DTOH, &m.base, NULL, 0, p, n, NULL);
}

static int raw_dtod(struct gpt_raw *r, uint64_t dst, uint64_t src,
                    size_t n) {
  Gpupool__MemcpyDtoD m = GPUPOOL__MEMCPY_DTO_D__INIT;
  m.dst = dst;
  m.src = src;
  m.size = n;
  return gpt_raw_call(r, GP_MSG_MEMCPY_DTOD, &m.base, NULL, 0, NULL, 0, NULL);
}

static int raw_memset(struct gpt_raw *r, uint64_t dst, uint32_t elem,
                      uint64_t count) {
  Gpupool__Memset m = GPUPOOL__MEMSET__INIT;
  m.dst = dst;
  m.value = 0x5a5a5a5a;
  m.element_size = elem;
  m.count = count;
  return gpt_raw_call(r, GP_MSG_MEMSET, &m.base, NULL, 0, NULL, 0, NULL);
}

static int raw_module(struct gpt_raw *r, uint64_t ctx, uint64_t module,
                      const void *image, size_t len) {
  Gpupool__ModuleLoad m = GPUPOOL__MODULE_LOAD__INIT;
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(image, len, digest);
  m.ctx = ctx;
  m.module = module;
  m.sha256.data = digest;
  m.sha256.len = sizeof digest;
  m.has_image = true;
  m.image_size = len;
  return gpt_raw_call(r, GP_MSG_MODULE_LOAD, &m.base, image, len, NULL, 0,
                      NULL);
}

static int raw_function(struct gpt_raw *r, uint64_t module, const char *name,
                        uint64_t fn) {
  Gpupool__ModuleGetFunction m = GPUPOOL__MODULE_GET_FUNCTION__INIT;
  m.module = module;
  m.name = (char *)name;
  m.function = fn;
  return gpt_raw_call(r, GP_MSG_MODULE_GET_FUNCTION, &m.base, NULL, 0, NULL,
                      0, NULL);
}

static int raw_launch(struct gpt_raw *r, uint64_t ctx, uint64_t fn,
                      const uint32_t grid[3], const uint32_t block[3],
                      uint32_t shared, uint64_t stream, const void *params,
                      size_t plen) {
  Gpupool__LaunchKernel m = GPUPOOL__LAUNCH_KERNEL__INIT;
  m.ctx = ctx;
  m.function = fn;
  m.grid_x = grid[0];
  m.grid_y = grid[1];
  m.grid_z = grid[2];
  m.block_x = block[0];
  m.block_y = block[1];
  m.block_z = block[2];
  m.shared_mem = shared;
  m.stream = stream;
  return gpt_raw_call(r, GP_MSG_LAUNCH_KERNEL, &m.base, params, plen, NULL, 0,
                      NULL);
}

/* One simple request whose reply says the session still answers. */
static int raw_ping(struct gpt_raw *r) {
  Gpupool__MemGetInfo m = GPUPOOL__MEM_GET_INFO__INIT;
  m.ctx = CTX;
  return gpt_raw_call(r, GP_MSG_MEM_GET_INFO, &m.base, NULL, 0, NULL, 0,
                      NULL);
}

/* After an attack on |r|: the server answered with a ProtocolError or
 * closed the connection, within the raw timeout. */
static void expect_closed(struct gpt_raw *r) {
  int code = 0, type;
  do {
    type = gpt_raw_next(r, &code);
  } while (type >= 0 && type != GP_MSG_PROTOCOL_ERROR);
  if (type == GP_MSG_PROTOCOL_ERROR) {
    CHECK_TRUE(code != 0);
    /* Nothing more comes: the connection ends. */
    CHECK_EQ_I(gpt_raw_next(r, &code), -1);
  }
  gpt_raw_close(r);
}

/* A fresh raw session works: HELLO, a context, a copy both ways. */
static void fresh_session_check(void) {
  struct gpt_raw r;
  uint8_t in[512], out[512];
  uint64_t p = 0;
  raw_session(&r);
  CHECK_EQ_I(raw_ctx(&r, CTX), 0);
  CHECK_EQ_I(raw_alloc(&r, CTX, sizeof in, &p), 0);
  gpt_fill(in, sizeof in, 7);
  CHECK_EQ_I(raw_htod(&r, p, in, sizeof in), 0);
  CHECK_EQ_I(raw_dtoh(&r, p, out, sizeof out), 0);
  CHECK_MEM_EQ(out, in, sizeof in);
  gpt_raw_close(&r);
}

/* ---- the server's bookkeeping -------------------------------------------- */

static long rss_kib(pid_t pid) {
  char path[64], line[256];
  long kib = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

/* Waits up to 10 s for the server's workers to be |n| again. */
static int workers_settle(int n) {
  pid_t pids[256];
  int have = -1;
  for (int i = 0; i < 200; i++) {
    have = gpt_server_workers(&server, pids, 256);
    if (have == n) break;
    gpt_sleep_ms(50);
  }
  return have;
}

static long rss_start;

static void begin(void) {
  const char *extra[] = {"--log-level", "warn", NULL};
  REQUIRE_TRUE(gpt_server_start(&server, extra) == 0);
  lib_start();
  REQUIRE_TRUE(workers_settle(1) == 1);
  rss_start = rss_kib(server.pid);
  REQUIRE_TRUE(rss_start > 0);
}

static void end(void) {
  lib_check();
  fresh_session_check();
  CHECK_EQ_I(workers_settle(1), 1);
  long rss = rss_kib(server.pid);
  printf("supervisor VmRSS: %ld KiB at the start, %ld KiB at the end\n",
         rss_start, rss);
  CHECK_LE_I(rss - rss_start, (long)(GROWTH_MAX / 1024));
  CHECK_TRUE(gpt_server_alive(&server));
  CHECK_OK(cuCtxDestroy(lib_ctx));
}

/* ---- scenarios ------------------------------------------------------------ */

/* Bytes that are no frame, no TLS, before any handshake; and a
 * connection that says nothing at all and hangs up. */
static void test_garbage(int argc, char **argv) {
  static const char *junk[] = {
      "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
      "\x16\x03\x01\x00\x05hello",
      "GPPL\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
      "\xff\xff\xff\xff\xff",
      "",
  };
  (void)argc;
  (void)argv;
  begin();
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_in sa = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)server.port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      struct timeval tv = {.tv_sec = 15};
      char buf[4096];
      REQUIRE_TRUE(fd >= 0);
      REQUIRE_TRUE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (junk[j][0]) {
        /* Random bytes too: 4 KiB of them. */
        uint8_t noise[4096];
        gpt_fill(noise, sizeof noise, (uint64_t)round * 31 + j);
        CHECK_TRUE(write(fd, junk[j], strlen(junk[j])) > 0);
        if (j == 0) (void)!write(fd, noise, sizeof noise);
        /* No more: a server that waits for the rest of a header sees the
         * end of the stream instead of its handshake timeout. */
        shutdown(fd, SHUT_WR);
        /* The server answers (a ProtocolError, an alert) or not, then
         * closes: read until the end. */
        ssize_t n;
        double t0 = gpt_now();
        while ((n = read(fd, buf, sizeof buf)) > 0) {
        }
        CHECK_TRUE(n == 0 || n < 0);
        CHECK_LE_D(gpt_now() - t0, 12.0);
      }
      close(fd);
    }
    if (round % 5 == 0) lib_check();
  }
  end();
}

/* Frame headers that announce 4 GiB of message or payload, after the
 * handshake and before it. */
static void test_huge_frames(int argc, char **argv) {
  (void)argc;
  (void)argv;
  begin();
  for (int round = 0; round < ROUNDS; round++) {
    struct gpt_raw r;
    bool hello = round % 2 == 0;
    raw_open(&r);
    if (hello) REQUIRE_TRUE(raw_hello(&r) == 0);
    switch (round % 4 / 2) {
    case 0: /* msg_len */
      CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEM_ALLOC, 0, 0xffffffffu,
                                     0));
      break;
    default: /* payload_len */
      CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEMCPY_HTOD, 0, 4,
                                     0xffffffffu));
      CHECK_TRUE(gpt_raw_send_bytes(&r, "\x08\x01\x10\x01", 4));
      break;
    }
    expect_closed(&r);
    if (round % 5 == 0) lib_check();
  }
  end();
}

/* Frames cut short: a header alone, a header and part of its message,
 * part of the payload; then the client hangs up. */
static void test_truncated(int argc, char **argv) {
  (void)argc;
  (void)argv;
  begin();
  for (int round = 0; round < ROUNDS; round++) {
    Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
    uint8_t msg[64], payload[1000];
    struct gpt_raw r;
    size_t n;
    raw_session(&r);
    CHECK_EQ_I(raw_ctx(&r, CTX), 0);
    uint64_t p = 0;
    CHECK_EQ_I(raw_alloc(&r, CTX, sizeof payload, &p), 0);
    m.dst = p;
    m.size = sizeof payload;
    n = protobuf_c_message_pack(&m.base, msg);
    gpt_fill(payload, sizeof payload, (uint64_t)round);
    CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEMCPY_HTOD, 0, (uint32_t)n,
                                   sizeof payload));
    switch (round % 4) {
    case 0: /* the header alone */
      break;
    case 1: /* part of the message */
      CHECK_TRUE(gpt_raw_send_bytes(&r, msg, n / 2));
      break;
    case 2: /* part of the payload */
      CHECK_TRUE(gpt_raw_send_bytes(&r, msg, n));
      CHECK_TRUE(gpt_raw_send_bytes(&r, payload, sizeof payload / 3));
      break;
    default: /* half a header */
      gpt_raw_close(&r);
      raw_session(&r);
      {
        uint8_t head[12] = "GPPL\x01\x00\x19\x00";
        CHECK_TRUE(gpt_raw_send_bytes(&r, head, sizeof head));
      }
      break;
    }
    gpt_raw_close(&r);
    if (round % 5 == 0) lib_check();
  }
  end();
}

/* A valid header whose message is not the protobuf it names; and one
 * that decodes but carries a payload its type must not have. */
static void test_corrupt_message(int argc, char **argv) {
  (void)argc;
  (void)argv;
  begin();
  for (int round = 0; round < ROUNDS; round++) {
    struct gpt_raw r;
    uint8_t junk[40];
    raw_session(&r);
    gpt_fill(junk, sizeof junk, (uint64_t)round + 99);
    switch (round % 3) {
    case 0: /* a field whose length runs past the message */
      junk[0] = 0x0a;
      junk[1] = 0x7f;
      break;
    case 1: /* an unterminated varint */
      memset(junk, 0xff, sizeof junk);
      junk[0] = 0x08;
      break;
    default: /* a payload on a request that has none */
      {
        Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
        m.ctx = CTX;
        m.size = 16;
        size_t n = protobuf_c_message_pack(&m.base, junk);
        CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEM_ALLOC, 0, (uint32_t)n,
                                       8));
        CHECK_TRUE(gpt_raw_send_bytes(&r, junk, n));
        CHECK_TRUE(gpt_raw_send_bytes(&r, "payload!", 8));
        expect_closed(&r);
        continue;
      }
    }
    CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_CTX_CREATE, 0, sizeof junk, 0));
    CHECK_TRUE(gpt_raw_send_bytes(&r, junk, sizeof junk));
    expect_closed(&r);
    if (round % 5 == 0) lib_check();
  }
  end();
}

/* Reads the image in environment variable |var| (nvcc-built); skips the
 * scenario without nvcc. */
static uint8_t *read_image(const char *var, size_t *len) {
  const char *path = getenv(var);
  if (!path || !*path || strcmp(getenv("GPT_KERNELS_NVCC") ?
                                    getenv("GPT_KERNELS_NVCC") : "0", "1"))
    gpt_skip("no nvcc: %s is not built", var);
  FILE *f = fopen(path, "rb");
  REQUIRE_TRUE(f != NULL);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = gpt_xmalloc((size_t)n);
  REQUIRE_TRUE(fread(b, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* vectorAdd(a, b, c, n): c[i] = a[i] + b[i]. */
static void vadd_params(uint8_t p[28], uint64_t a, uint64_t b, uint64_t c,
                        int32_t n) {
  memcpy(p, &a, 8);
  memcpy(p + 8, &b, 8);
  memcpy(p + 16, &c, 8);
  memcpy(p + 24, &n, 4);
}

/* Pointers out of range, and pointers of another session: B allocates,
 * A (which holds allocations of its own, below B's) uses B's address.
 * Copies and memsets: CUDA_ERROR_INVALID_VALUE; a kernel that writes
 * there: CUDA_ERROR_ILLEGAL_ADDRESS; B's bytes unchanged. */
static void test_pointers(int argc, char **argv) {
  enum { N = 4096 };
  struct gpt_raw a, b;
  uint64_t a0 = 0, b0 = 0, b1 = 0, b2 = 0;
  uint8_t secret[N], buf[N], *image;
  size_t image_len;
  (void)argc;
  (void)argv;
  image = read_image("GPT_KERNELS_BASIC", &image_len);
  begin();
  raw_session(&b);
  CHECK_EQ_I(raw_ctx(&b, CTX), 0);
  CHECK_EQ_I(raw_alloc(&b, CTX, N, &b0), 0);
  CHECK_EQ_I(raw_alloc(&b, CTX, N, &b1), 0);
  CHECK_EQ_I(raw_alloc(&b, CTX, N, &b2), 0);
  gpt_fill(secret, N, 1234);
  CHECK_EQ_I(raw_htod(&b, b2, secret, N), 0);

  raw_session(&a);
  CHECK_EQ_I(raw_ctx(&a, CTX), 0);
  CHECK_EQ_I(raw_alloc(&a, CTX, N, &a0), 0);
  /* Where A's own memory ends, B's third buffer is not A's. */
  CHECK_TRUE(b2 >= a0 + N || b2 + N <= a0);
  for (int round = 0; round < ROUNDS; round++) {
    /* Out of range of A's own allocation. */
    CHECK_EQ_I(raw_htod(&a, a0 + N - 8, secret, 16),
               CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_htod(&a, UINT64_MAX - 8, secret, 16),
               CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_dtoh(&a, a0 + N, buf, 1), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_dtod(&a, a0, a0 + 1, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_memset(&a, a0 + 4, 4, N / 4), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_memset(&a, a0, 1, UINT64_MAX), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_memset(&a, 0, 1, 1), CUDA_ERROR_INVALID_VALUE);
    /* B's pointer in A. */
    CHECK_EQ_I(raw_htod(&a, b2, buf, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_htod(&a, b2 + 100, buf, 1), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_dtoh(&a, b2, buf, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_dtod(&a, a0, b2, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_dtod(&a, b2, a0, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_memset(&a, b2, 1, N), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_memset(&a, b2, 4, N / 4), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_I(raw_ping(&a), 0);
  }
  /* A kernel in A that writes through B's pointer. */
  {
    static const uint32_t grid[3] = {1, 1, 1}, block[3] = {32, 1, 1};
    uint8_t params[28];
    CHECK_EQ_I(raw_module(&a, CTX, MODULE, image, image_len), 0);
    CHECK_EQ_I(raw_function(&a, MODULE, "vectorAdd", FUNC), 0);
    vadd_params(params, a0, a0, a0, 32);
    CHECK_EQ_I(raw_launch(&a, CTX, FUNC, grid, block, 0, 0, params, 28), 0);
    vadd_params(params, a0, a0, b2, 32);
    CHECK_EQ_I(raw_launch(&a, CTX, FUNC, grid, block, 0, 0, params, 28),
               CUDA_ERROR_ILLEGAL_ADDRESS);
    /* The context is then unusable, as on a GPU. */
    CHECK_EQ_I(raw_dtoh(&a, a0, buf, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
    CHECK_EQ_I(raw_ctx_destroy(&a, CTX), 0);
    /* A fresh context: reading through B's pointer faults too. */
    CHECK_EQ_I(raw_ctx(&a, CTX2), 0);
    uint64_t a1 = 0;
    CHECK_EQ_I(raw_alloc(&a, CTX2, N, &a1), 0);
    CHECK_EQ_I(raw_module(&a, CTX2, MODULE + 1, image, image_len), 0);
    CHECK_EQ_I(raw_function(&a, MODULE + 1, "vectorAdd", FUNC + 1), 0);
    vadd_params(params, b2, b2, a1, 32);
    CHECK_EQ_I(raw_launch(&a, CTX2, FUNC + 1, grid, block, 0, 0, params, 28),
               CUDA_ERROR_ILLEGAL_ADDRESS);
  }
  /* The library's session, a third one: B's address means nothing there
   * either. */
  {
    CUdeviceptr p = 0;
    CHECK_OK(cuCtxSetCurrent(lib_ctx));
    CHECK_OK(cuMemAlloc(&p, 16));
    CHECK_CU(cuMemcpyHtoD((CUdeviceptr)b2 + 2 * N * 64, buf, 16),
             CUDA_ERROR_INVALID_VALUE);
    CHECK_OK(cuMemFree(p));
  }
  /* B's memory is as B left it. */
  memset(buf, 0, N);
  CHECK_EQ_I(raw_dtoh(&b, b2, buf, N), 0);
  CHECK_MEM_EQ(buf, secret, N);
  gpt_raw_close(&a);
  gpt_raw_close(&b);
  free(image);
  end();
}

/* Launch configurations over the device's limits, shared memory over its
 * limit, parameter buffers of the wrong length: errors, and the context
 * stays usable. */
static void test_launch_limits(int argc, char **argv) {
  static const uint32_t one[3] = {1, 1, 1}, b32[3] = {32, 1, 1};
  static const struct {
    uint32_t grid[3], block[3], shared;
    size_t plen;
  } bad[] = {
      {{1, 1, 1}, {2048, 1, 1}, 0, 28},            /* block x */
      {{1, 1, 1}, {1, 1, 65}, 0, 28},              /* block z */
      {{1, 1, 1}, {1024, 2, 1}, 0, 28},            /* threads per block */
      {{1, 1, 1}, {0, 1, 1}, 0, 28},               /* empty block */
      {{0, 1, 1}, {32, 1, 1}, 0, 28},              /* empty grid */
      {{1, 65536, 1}, {32, 1, 1}, 0, 28},          /* grid y */
      {{1, 1, 65536}, {32, 1, 1}, 0, 28},          /* grid z */
      {{0xffffffffu, 1, 1}, {32, 1, 1}, 0, 28},    /* grid x */
      {{1, 1, 1}, {32, 1, 1}, 1u << 20, 28},       /* shared memory */
      {{1, 1, 1}, {32, 1, 1}, 0xffffffffu, 28},    /* shared memory */
      {{1, 1, 1}, {32, 1, 1}, 0, 20},              /* params short */
      {{1, 1, 1}, {32, 1, 1}, 0, 36},              /* params long */
      {{1, 1, 1}, {32, 1, 1}, 0, 0},               /* no params */
      {{1, 1, 1}, {32, 1, 1}, 0, 40000},           /* over the limit */
  };
  struct gpt_raw r;
  uint8_t *image, params[40000];
  size_t image_len;
  uint64_t p = 0;
  (void)argc;
  (void)argv;
  image = read_image("GPT_KERNELS_BASIC", &image_len);
  begin();
  raw_session(&r);
  CHECK_EQ_I(raw_ctx(&r, CTX), 0);
  CHECK_EQ_I(raw_alloc(&r, CTX, 4096, &p), 0);
  CHECK_EQ_I(raw_module(&r, CTX, MODULE, image, image_len), 0);
  CHECK_EQ_I(raw_function(&r, MODULE, "vectorAdd", FUNC), 0);
  memset(params, 0, sizeof params);
  vadd_params(params, p, p, p, 32);
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      int res = raw_launch(&r, CTX, FUNC, bad[i].grid, bad[i].block,
                           bad[i].shared, 0, params, bad[i].plen);
      if (res != CUDA_ERROR_INVALID_VALUE)
        printf("bad launch %zu: %d\n", i, res);
      CHECK_EQ_I(res, CUDA_ERROR_INVALID_VALUE);
    }
    /* Unknown function, another context's stream, no such stream. */
    CHECK_EQ_I(raw_launch(&r, CTX, FUNC + 5, one, b32, 0, 0, params, 28),
               CUDA_ERROR_INVALID_HANDLE);
    CHECK_EQ_I(raw_launch(&r, CTX, FUNC, one, b32, 0, STREAM, params, 28),
               CUDA_ERROR_INVALID_HANDLE);
    CHECK_EQ_I(raw_launch(&r, CTX2, FUNC, one, b32, 0, 0, params, 28),
               CUDA_ERROR_INVALID_CONTEXT);
    /* The context is still usable. */
    CHECK_EQ_I(raw_launch(&r, CTX, FUNC, one, b32, 0, 0, params, 28), 0);
    lib_check();
  }
  gpt_raw_close(&r);
  free(image);
  end();
}

/* Module images that are garbage: random bytes, a fatbin cut short, a
 * fatbin's header with nothing behind it, PTX text that is not PTX, an ELF
 * header alone. */
static void test_bad_image(int argc, char **argv) {
  struct gpt_raw r;
  uint8_t *image, junk[8192];
  size_t image_len;
  (void)argc;
  (void)argv;
  image = read_image("GPT_KERNELS_BASIC", &image_len);
  begin();
  raw_session(&r);
  CHECK_EQ_I(raw_ctx(&r, CTX), 0);
  for (int round = 0; round < ROUNDS; round++) {
    uint64_t module = MODULE + 10 + (uint64_t)round;
    int res;
    switch (round % 5) {
    case 0:
      gpt_fill(junk, sizeof junk, (uint64_t)round);
      res = raw_module(&r, CTX, module, junk, sizeof junk);
      break;
    case 1:
      res = raw_module(&r, CTX, module, image, image_len / 2);
      break;
    case 2:
      res = raw_module(&r, CTX, module, image, 64);
      break;
    case 3: {
      static const char ptx[] = ".version 9.0\n.target sm_75\n"
                                ".address_size 64\n.visible .entry k(\n"
                                "{ garbage %r<; ret }}}\n";
      res = raw_module(&r, CTX, module, ptx, sizeof ptx);
      break;
    }
    default: {
      uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
      res = raw_module(&r, CTX, module, elf, sizeof elf);
      break;
    }
    }
    CHECK_TRUE(res != 0 && res != GPT_RAW_FAILED);
    if (res == 0 || res == GPT_RAW_FAILED)
      printf("bad image %d: %d\n", round % 5, res);
    CHECK_EQ_I(raw_function(&r, module, "vectorAdd", FUNC),
               CUDA_ERROR_INVALID_HANDLE);
    CHECK_EQ_I(raw_ping(&r), 0);
  }
  /* A real one still loads. */
  CHECK_EQ_I(raw_module(&r, CTX, MODULE, image, image_len), 0);
  CHECK_EQ_I(raw_function(&r, MODULE, "vectorAdd", FUNC), 0);
  gpt_raw_close(&r);
  free(image);
  end();
}

/* 64 handles nested and duplicated: contexts, streams, events and
 * modules created twice under one id, destroyed twice, used after they
 * are gone; another context's stream. */
static void test_handles(int argc, char **argv) {
  struct gpt_raw r;
  uint8_t *image;
  size_t image_len;
  (void)argc;
  (void)argv;
  image = read_image("GPT_KERNELS_BASIC", &image_len);
  begin();
  raw_session(&r);
  for (uint64_t i = 0; i < 64; i++) {
    CHECK_EQ_I(raw_ctx(&r, CTX + 0x1000 + i), 0);
    /* The same id again. */
    CHECK_TRUE(raw_ctx(&r, CTX + 0x1000 + i) != 0);
  }
  for (uint64_t i = 0; i < 64; i++) {
    uint64_t ctx = CTX + 0x1000 + i;
    Gpupool__StreamCreate sc = GPUPOOL__STREAM_CREATE__INIT;
    Gpupool__EventCreate ec = GPUPOOL__EVENT_CREATE__INIT;
    sc.ctx = ctx;
    sc.stream = STREAM + 0x1000 + i;
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_STREAM_CREATE, &sc.base, NULL, 0,
                            NULL, 0, NULL), 0);
    CHECK_TRUE(gpt_raw_call(&r, GP_MSG_STREAM_CREATE, &sc.base, NULL, 0,
                            NULL, 0, NULL) != 0);
    ec.ctx = ctx;
    ec.event = EVENT + 0x1000 + i;
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_EVENT_CREATE, &ec.base, NULL, 0, NULL,
                            0, NULL), 0);
    CHECK_TRUE(gpt_raw_call(&r, GP_MSG_EVENT_CREATE, &ec.base, NULL, 0, NULL,
                            0, NULL) != 0);
    if (i % 8 == 0) {
      CHECK_EQ_I(raw_module(&r, ctx, MODULE + 0x1000 + i, image, image_len),
                 0);
      CHECK_TRUE(raw_module(&r, ctx, MODULE + 0x1000 + i, image,
                            image_len) != 0);
    }
  }
  for (uint64_t i = 0; i < 64; i++) {
    uint64_t ctx = CTX + 0x1000 + i;
    Gpupool__StreamDestroy sd = GPUPOOL__STREAM_DESTROY__INIT;
    Gpupool__StreamSynchronize ss = GPUPOOL__STREAM_SYNCHRONIZE__INIT;
    Gpupool__EventDestroy ed = GPUPOOL__EVENT_DESTROY__INIT;
    Gpupool__EventRecord er = GPUPOOL__EVENT_RECORD__INIT;
    Gpupool__ModuleUnload mu = GPUPOOL__MODULE_UNLOAD__INIT;
    /* A stream of context i used with an event of context i + 1. */
    er.event = EVENT + 0x1000 + (i + 1) % 64;
    er.stream = STREAM + 0x1000 + i;
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_EVENT_RECORD, &er.base, NULL, 0, NULL,
                            0, NULL), CUDA_ERROR_INVALID_HANDLE);
    sd.stream = ss.stream = STREAM + 0x1000 + i;
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_STREAM_DESTROY, &sd.base, NULL, 0,
                            NULL, 0, NULL), 0);
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_STREAM_DESTROY, &sd.base, NULL, 0,
                            NULL, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_STREAM_SYNCHRONIZE, &ss.base, NULL, 0,
                            NULL, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    ed.event = EVENT + 0x1000 + i;
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_EVENT_DESTROY, &ed.base, NULL, 0, NULL,
                            0, NULL), 0);
    CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_EVENT_DESTROY, &ed.base, NULL, 0, NULL,
                            0, NULL), CUDA_ERROR_INVALID_HANDLE);
    if (i % 8 == 0) {
      mu.module = MODULE + 0x1000 + i;
      CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_MODULE_UNLOAD, &mu.base, NULL, 0,
                              NULL, 0, NULL), 0);
      CHECK_EQ_I(gpt_raw_call(&r, GP_MSG_MODULE_UNLOAD, &mu.base, NULL, 0,
                              NULL, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
      CHECK_EQ_I(raw_function(&r, mu.module, "vectorAdd", FUNC),
                 CUDA_ERROR_INVALID_HANDLE);
    }
    CHECK_EQ_I(raw_ctx_destroy(&r, ctx), 0);
    CHECK_TRUE(raw_ctx_destroy(&r, ctx) != 0);
    uint64_t p = 0;
    CHECK_TRUE(raw_alloc(&r, ctx, 16, &p) != 0);
  }
  CHECK_EQ_I(raw_ping(&r), CUDA_ERROR_INVALID_CONTEXT);
  gpt_raw_close(&r);
  /* Through the library: a context destroyed twice, a freed stream and
   * event. */
  {
    CUdevice dev;
    CUcontext c;
    CUstream s;
    CUevent e;
    CHECK_OK(cuDeviceGet(&dev, 0));
    CHECK_OK(cuCtxCreate(&c, NULL, 0, dev));
    CHECK_OK(cuStreamCreate(&s, 0));
    CHECK_OK(cuEventCreate(&e, 0));
    CHECK_OK(cuStreamDestroy(s));
    CHECK_OK(cuEventDestroy(e));
    CHECK_TRUE(cuStreamSynchronize(s) != CUDA_SUCCESS);
    CHECK_TRUE(cuEventQuery(e) != CUDA_SUCCESS);
    CHECK_OK(cuCtxDestroy(c));
    CHECK_TRUE(cuCtxDestroy(c) != CUDA_SUCCESS);
  }
  free(image);
  end();
}

/* A payload that arrives slowly (a slow link, or a client that dribbles
 * it): the worker reads it while its heartbeat thread sends BUSY notices
 * on the same connection. Over TLS both go through one SSL object, which
 * takes one call at a time; the copy arrives whole and the session goes
 * on. */
static void test_slow_upload(int argc, char **argv) {
  (void)argc;
  (void)argv;
  begin();
  for (int round = 0; round < 2; round++) {
    Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
    enum { N = 1u << 20, PIECES = 8 };
    uint8_t msg[64];
    uint8_t *in = malloc(N), *out = malloc(N);
    struct gpt_raw r;
    uint64_t p = 0;
    int code = -1;
    size_t n;
    REQUIRE_TRUE(in && out);
    raw_session(&r);
    CHECK_EQ_I(raw_ctx(&r, CTX), 0);
    CHECK_EQ_I(raw_alloc(&r, CTX, N, &p), 0);
    gpt_fill(in, N, (uint64_t)round + 7);
    m.dst = p;
    m.size = N;
    n = protobuf_c_message_pack(&m.base, msg);
    CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEMCPY_HTOD, 0, (uint32_t)n,
                                   N));
    CHECK_TRUE(gpt_raw_send_bytes(&r, msg, n));
    /* 8 pieces 150 ms apart: the heartbeat's first notice comes at
     * 200 ms, then one every 500 ms, all while the payload is read. */
    for (int i = 0; i < PIECES; i++) {
      gpt_sleep_ms(150);
      CHECK_TRUE(gpt_raw_send_bytes(&r, in + (size_t)i * (N / PIECES),
                                    N / PIECES));
    }
    CHECK_EQ_I(gpt_raw_next(&r, &code), GP_MSG_MEMCPY_HTOD);
    CHECK_EQ_I(code, 0);
    memset(out, 0, N);
    CHECK_EQ_I(raw_dtoh(&r, p, out, N), 0);
    CHECK_MEM_EQ(out, in, N);
    gpt_raw_close(&r);
    free(in);
    free(out);
  }
  end();
}

/* A request whose message ends exactly where the worker's 256 KiB read
 * buffer does, in the middle of a TLS record: the rest of that record
 * (the next request, whole) is left decrypted inside the TLS engine, where
 * no poll of the socket sees it. With busy-polling off (--poll-us 0, or a
 * worker on one CPU) the worker's wait between requests must still find
 * it, or the next request waits for ever (no --idle-timeout). */
static void test_tls_buffered(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *extra[] = {"--log-level", "warn", "--poll-us", "0", NULL};
  REQUIRE_TRUE(gpt_server_start(&server, extra) == 0);
  struct gpt_raw r;
  REQUIRE_TRUE(gpt_raw_open(&r, server.port, 5000));
  REQUIRE_TRUE(raw_hello(&r) == 0);
  REQUIRE_TRUE(raw_ctx(&r, CTX) == 0);
  /* MEM_GET_INFO padded with an unknown field to exactly 256 KiB. */
  Gpupool__MemGetInfo m = GPUPOOL__MEM_GET_INFO__INIT;
  m.ctx = CTX;
  size_t base = protobuf_c_message_get_packed_size(&m.base);
  const size_t total = 256u << 10;
  size_t field = total - base - 2 - 3; /* tag 1000/LEN: 2 bytes; length: 3 */
  uint8_t *big = calloc(1, total + 64);
  REQUIRE_TRUE(big != NULL);
  protobuf_c_message_pack(&m.base, big);
  big[base] = 0xc2; /* (1000 << 3 | 2) as a varint */
  big[base + 1] = 0x3e;
  big[base + 2] = (uint8_t)(0x80 | (field & 0x7f));
  big[base + 3] = (uint8_t)(0x80 | ((field >> 7) & 0x7f));
  big[base + 4] = (uint8_t)(field >> 14);
  /* Then the next request, whole, in the same write. */
  uint8_t next[GP_FRAME_HEADER_SIZE + 16];
  struct gp_frame_header h = {.version = GP_FRAME_VERSION,
                              .type = GP_MSG_MEM_GET_INFO};
  h.request_id = 77;
  h.msg_len = (uint32_t)base;
  gp_frame_header_encode(&h, next);
  protobuf_c_message_pack(&m.base, next + GP_FRAME_HEADER_SIZE);
  memcpy(big + total, next, GP_FRAME_HEADER_SIZE + base);
  /* The header alone, then 1000 bytes, then the rest: the records the
   * worker reads are not aligned with its buffer. */
  CHECK_TRUE(gpt_raw_send_header(&r, GP_MSG_MEM_GET_INFO, 0,
                                 (uint32_t)total, 0));
  CHECK_TRUE(gpt_raw_send_bytes(&r, big, 1000));
  CHECK_TRUE(gpt_raw_send_bytes(&r, big + 1000,
                                total - 1000 + GP_FRAME_HEADER_SIZE + base));
  int code = -1;
  CHECK_EQ_I(gpt_raw_next(&r, &code), GP_MSG_MEM_GET_INFO);
  CHECK_EQ_I(code, 0);
  code = -1;
  CHECK_EQ_I(gpt_raw_next(&r, &code), GP_MSG_MEM_GET_INFO);
  CHECK_EQ_I(code, 0);
  gpt_raw_close(&r);
  free(big);
  CHECK_TRUE(gpt_server_alive(&server));
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"garbage", test_garbage, 120},
      {"huge_frames", test_huge_frames, 60},
      {"truncated", test_truncated, 60},
      {"corrupt_message", test_corrupt_message, 60},
      {"pointers", test_pointers, 60},
      {"launch_limits", test_launch_limits, 60},
      {"bad_image", test_bad_image, 60},
      {"handles", test_handles, 60},
      {"slow_upload", test_slow_upload, 60},
      {"tls_buffered", test_tls_buffered, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
