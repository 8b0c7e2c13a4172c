/* The performance paths' correctness (issue 8): calls sent without a reply
 * keep their order and report a deferred error at the right synchronising
 * call; a launch loop makes no round trip (counted by the library itself,
 * GPUPOOL_STATS); compressed and raw copies are byte-exact for every size
 * class and kind of data, both ways, with compression on, off and auto;
 * copies survive a client that reads slowly; and a compressed frame whose
 * content is not what it declares is refused while the server goes on
 * serving.
 *
 * The copy matrix and the launch loop run in child processes of this
 * program (the child_ roles, started with gpt_run() and the environment of
 * the mode under test), because the library reads GPUPOOL_COMPRESS and
 * writes GPUPOOL_STATS once per process.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "gpupool/errors.h"
#include "gpupool/gpupool.h"
#include "harness.h"
#include "msg.h"
#include "raw.h"
#include "wire.h"

static struct gpt_server server;

/* step(p, a, b, n): p[i] = p[i] * a + b for i < n (the order of a run of
 * steps with different b shows in the result); poke(p): *p = 7. */
static const char ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry step(\n"
    "  .param .u64 step_p,\n"
    "  .param .u32 step_a,\n"
    "  .param .u32 step_b,\n"
    "  .param .u32 step_n\n"
    ")\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<10>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [step_p];\n"
    "  ld.param.u32 %r1, [step_a];\n"
    "  ld.param.u32 %r2, [step_b];\n"
    "  ld.param.u32 %r3, [step_n];\n"
    "  mov.u32 %r4, %ctaid.x;\n"
    "  mov.u32 %r5, %ntid.x;\n"
    "  mov.u32 %r6, %tid.x;\n"
    "  mad.lo.s32 %r7, %r4, %r5, %r6;\n"
    "  setp.ge.u32 %p1, %r7, %r3;\n"
    "  @%p1 bra $L__step_done;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.u32 %rd3, %r7, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  ld.global.u32 %r8, [%rd4];\n"
    "  mad.lo.s32 %r9, %r8, %r1, %r2;\n"
    "  st.global.u32 [%rd4], %r9;\n"
    "$L__step_done:\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry poke(\n"
    "  .param .u64 poke_p\n"
    ")\n"
    "{\n"
    "  .reg .b32 %r<2>;\n"
    "  .reg .b64 %rd<2>;\n"
    "  ld.param.u64 %rd1, [poke_p];\n"
    "  mov.u32 %r1, 7;\n"
    "  st.global.u32 [%rd1], %r1;\n"
    "  ret;\n"
    "}\n";

static CUfunction load_fn(const char *name) {
  static CUmodule m;
  CUfunction f = NULL;
  if (m == NULL) REQUIRE_OK(cuModuleLoadData(&m, ptx));
  REQUIRE_OK(cuModuleGetFunction(&f, m, name));
  return f;
}

static CUresult step(CUfunction f, CUdeviceptr p, uint32_t a, uint32_t b,
                     uint32_t n, CUstream s) {
  void *params[] = {&p, &a, &b, &n};
  return cuLaunchKernel(f, (n + 127) / 128, 1, 1, 128, 1, 1, 0, s, params,
                        NULL);
}

/* ---- Statistics from a child run ------------------------------------------ */

/* The value of "name value" line |key| in FILE, or -1. */
static long long stat_of(const char *file, const char *key) {
  FILE *f = fopen(file, "r");
  char line[256], k[64];
  long long v, found = -1;
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "%63s %lld", k, &v) == 2 && strcmp(k, key) == 0)
      found = v;
  fclose(f);
  return found;
}

/* Runs this program as `ROLE ARGS` with GPUPOOL_STATS=|stats| and the
 * "NAME=VALUE" settings of |env| (NULL-ended, may be NULL); true when it
 * exited 0 and wrote its statistics. */
static bool run_child(const char *role, const char *arg, const char *stats,
                      const char *const *env) {
  const char *self = gpt_self_exe();
  REQUIRE_TRUE(self != NULL);
  char stats_env[600];
  snprintf(stats_env, sizeof stats_env, "GPUPOOL_STATS=%s", stats);
  const char *envs[8];
  int k = 0;
  envs[k++] = stats_env;
  for (int i = 0; env != NULL && env[i] != NULL && k < 7; i++)
    envs[k++] = env[i];
  envs[k] = NULL;
  const char *argv[] = {self, role, arg, NULL};
  unlink(stats);
  static struct gpt_run r;
  gpt_run(&r, argv, envs, 240);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(access(stats, R_OK) == 0);
  return r.status == 0 && access(stats, R_OK) == 0;
}

/* The end of a child role: exit() rather than the harness's _exit(), so
 * that the library's destructor writes GPUPOOL_STATS. */
static void child_exit(void) {
  printf("child: %u checks, %u failed\n", gpt_checks_run(),
         gpt_checks_failed());
  fflush(stdout);
  exit(gpt_checks_failed() ? 1 : 0);
}

/* A file for a child's statistics, in a folder of this scenario's that
 * remove_stats() removes. */
static char stats_dir[256];

static void remove_stats(void) {
  static const char *const tags[] = {"0", "5000", "on", "off", "auto",
                                     "auto-random"};
  char p[512];
  for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
    snprintf(p, sizeof p, "%s/stats.%s", stats_dir, tags[i]);
    unlink(p);
  }
  rmdir(stats_dir);
}

static void stats_path(char *out, size_t len, const char *tag) {
  if (stats_dir[0] == '\0') {
    const char *tmp = getenv("TMPDIR");
    snprintf(stats_dir, sizeof stats_dir, "%s/gpupool-perf-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    REQUIRE_TRUE(mkdtemp(stats_dir) != NULL);
  }
  snprintf(out, len, "%s/stats.%s", stats_dir, tag);
}

/* ---- Order and deferred errors ------------------------------------------- */

static void test_perf_batch_order(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  gpt_init_context(NULL);
  CUfunction f = load_fn("step"), poke = load_fn("poke");
  enum { N = 4096 };
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, N * 4));
  uint32_t model[N], got[N], part[64];
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));

  /* A few hundred calls that wait for nothing, on the NULL stream then on
   * a stream, mixed: memsets, launches, asynchronous copies. Each step
   * multiplies and adds, so any reordering changes the result. */
  CHECK_OK(cuMemsetD32(d, 1, N));
  for (int i = 0; i < N; i++) model[i] = 1;
  for (uint32_t i = 0; i < 300; i++) {
    CUstream on = i < 150 ? NULL : s;
    if (i % 37 == 5) {
      CHECK_OK(cuMemsetD32Async(d + 4 * (i % 64), i, 64, on));
      for (int j = 0; j < 64; j++) model[i % 64 + j] = i;
    } else if (i % 41 == 7) {
      for (int j = 0; j < 64; j++) part[j] = i * 1000 + (uint32_t)j;
      CHECK_OK(cuMemcpyHtoDAsync(d + 4 * 1000, part, sizeof part, on));
      memcpy(model + 1000, part, sizeof part);
    } else {
      CHECK_OK(step(f, d, 3 + (i & 1), i, N, on));
      for (int j = 0; j < N; j++) model[j] = model[j] * (3 + (i & 1)) + i;
    }
    if (i == 149) CHECK_OK(cuCtxSynchronize());
  }
  CHECK_OK(cuStreamSynchronize(s));
  CHECK_OK(cuMemcpyDtoH(got, d, sizeof got));
  CHECK_MEM_EQ(got, model, sizeof got);

  /* A fault in a launch that waits for nothing: the calls after it, which
   * do not synchronise, succeed; the next synchronising call reports the
   * fault with its code, not an earlier one. */
  CHECK_OK(step(f, d, 1, 1, N, NULL));
  CHECK_OK(cuCtxSynchronize());
  CUdeviceptr bad = d + (1ull << 40);
  void *pp[] = {&bad};
  CHECK_OK(cuLaunchKernel(poke, 1, 1, 1, 1, 1, 1, 0, NULL, pp, NULL));
  CHECK_OK(step(f, d, 1, 1, N, NULL));
  CHECK_OK(cuMemsetD32Async(d, 5, 16, NULL));
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  /* And it stays, as on a GPU. */
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  (void)argc;
  (void)argv;
}

/* ---- Round trips of a launch loop ----------------------------------------- */

/* A launch loop of argv[0] launches then one cuCtxSynchronize. */
static void child_launches(int argc, char **argv) {
  int n = argc > 0 ? atoi(argv[0]) : 0;
  gpt_init_context(NULL);
  CUfunction f = load_fn("step");
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, 4));
  REQUIRE_OK(cuCtxSynchronize());
  for (int i = 0; i < n; i++) REQUIRE_OK(step(f, d, 1, 1, 1, NULL));
  REQUIRE_OK(cuCtxSynchronize());
  child_exit();
}

static void test_perf_launch_round_trips(int argc, char **argv) {
  /* No shared image cache: each child uploads its module the same way. */
  static const char *const args[] = {"--image-cache", "none", NULL};
  if (gpt_server_start(&server, args) != 0) gpt__abort_scenario();
  char s0[512], s1[512];
  stats_path(s0, sizeof s0, "0");
  stats_path(s1, sizeof s1, "5000");
  REQUIRE_TRUE(run_child("child_launches", "1", s0, NULL));
  REQUIRE_TRUE(run_child("child_launches", "5000", s1, NULL));
  long long rt0 = stat_of(s0, "round_trips"), rt1 = stat_of(s1, "round_trips");
  printf("round trips: %lld with 1 launch, %lld with 5000\n", rt0, rt1);
  /* The setup makes a few; 4999 more launches add none: their frames
   * leave in batches and the closing synchronize is the loop's one round
   * trip in both runs. */
  CHECK_GT_I(rt0, 2);
  CHECK_EQ_I(rt1, rt0);
  CHECK_EQ_I(stat_of(s1, "frames_sent") - stat_of(s0, "frames_sent"), 4999);
  CHECK_EQ_I(stat_of(s1, "replies"), stat_of(s0, "replies"));
  /* Batched: far fewer writes than frames. */
  CHECK_LT_I(stat_of(s1, "writes") - stat_of(s0, "writes"), 100);
  remove_stats();
  (void)argc;
  (void)argv;
}

/* ---- Compressed and raw copies --------------------------------------------- */

enum kind { ZEROS, HALF_ZERO, RANDOM, REPEAT, NKINDS };
static const char *const kind_names[] = {"zeros", "half-zero", "random",
                                         "repetitive"};

static void fill_kind(uint8_t *p, size_t n, enum kind k, uint64_t seed) {
  switch (k) {
  case ZEROS:
    memset(p, 0, n);
    break;
  case HALF_ZERO:
    gpt_fill(p, n, seed);
    for (size_t off = 0; off < n; off += 8192)
      memset(p + off, 0, n - off < 4096 ? n - off : 4096);
    break;
  case RANDOM:
    gpt_fill(p, n, seed);
    break;
  default: {
    static const char text[] = "gpupool compresses repetitive buffers, ";
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)text[i % (sizeof text - 1)];
  }
  }
}

/* argv[0]: "all" (every kind) or "random" (only random data). Every size
 * class, odd sizes and offsets, both ways, synchronous and asynchronous;
 * every byte compared, and the bytes around a copy untouched. */
static void child_copies(int argc, char **argv) {
  bool only_random = argc > 0 && strcmp(argv[0], "random") == 0;
  gpt_init_context(NULL);
  static const size_t sizes[] = {4096, 4097, 1u << 20, (1u << 20) + 3,
                                 (64u << 20) + 1};
  size_t max = (64u << 20) + 1 + 4096;
  uint8_t *src = gpt_xmalloc(max), *back = gpt_xmalloc(max);
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, max + 64));
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, 0));
  uint64_t seed = 1;
  for (int k = 0; k < NKINDS; k++) {
    if (only_random && k != RANDOM) continue;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      size_t off = n & 1; /* odd sizes at an odd device address */
      /* Guards: a pattern on both sides of the copy's range. */
      memset(back, 0x5A, 64);
      REQUIRE_OK(cuMemcpyHtoD(d, back, 64));
      REQUIRE_OK(cuMemcpyHtoD(d + off + n, back, 64));
      fill_kind(src, n, (enum kind)k, seed++);
      bool async = i % 2 == 1;
      if (async) {
        CHECK_OK(cuMemcpyHtoDAsync(d + off, src, n, s));
      } else {
        CHECK_OK(cuMemcpyHtoD(d + off, src, n));
      }
      memset(back, 0xA5, n);
      if (async) {
        CHECK_OK(cuMemcpyDtoHAsync(back, d + off, n, s));
        CHECK_OK(cuStreamSynchronize(s));
      } else {
        CHECK_OK(cuMemcpyDtoH(back, d + off, n));
      }
      if (memcmp(back, src, n) != 0) {
        printf("copy of %zu bytes of %s data (%s) differs\n", n,
               kind_names[k], async ? "async" : "sync");
        CHECK_MEM_EQ(back, src, n);
      }
      uint8_t guard[64], want[64];
      memset(want, 0x5A, sizeof want);
      CHECK_OK(cuMemcpyDtoH(guard, d + off + n, sizeof guard));
      CHECK_MEM_EQ(guard, want, sizeof guard);
      if (off) {
        CHECK_OK(cuMemcpyDtoH(guard, d, 1));
        CHECK_EQ_U(guard[0], 0x5A);
      }
    }
  }
  /* Device-written data back: a memset's zeros, read in one copy. */
  if (only_random) child_exit();
  CHECK_OK(cuMemsetD8(d, 0, 3u << 20));
  memset(back, 1, 3u << 20);
  CHECK_OK(cuMemcpyDtoH(back, d, 3u << 20));
  CHECK_MEM_ALL(back, 0, 3u << 20);
  free(src);
  free(back);
  child_exit();
}

static void copies_in_mode(const char *mode, const char *const *server_args,
                           bool expect_sent, bool expect_received) {
  if (gpt_server_start(&server, server_args) != 0) gpt__abort_scenario();
  char st[512], mode_env[64];
  stats_path(st, sizeof st, mode);
  snprintf(mode_env, sizeof mode_env, "GPUPOOL_COMPRESS=%s", mode);
  const char *env[] = {mode_env, "GPUPOOL_LINK_MBPS=1000", NULL};
  REQUIRE_TRUE(run_child("child_copies", "all", st, env));
  long long sent = stat_of(st, "zstd_chunks_sent");
  long long received = stat_of(st, "zstd_chunks_received");
  printf("compression %s: %lld chunks sent compressed, %lld received, "
         "%lld sent raw after sampling\n", mode, sent, received,
         stat_of(st, "zstd_chunks_raw"));
  if (expect_sent) CHECK_GT_I(sent, 0);
  else CHECK_EQ_I(sent, 0);
  /* A relay's server A copies device to host through the cuda backend's
   * pipeline, which sends raw. */
  if (expect_received && strcmp(gpt_server_mode(), "emu") != 0)
    printf("server mode %s: replies are not compressed\n", gpt_server_mode());
  else if (expect_received) CHECK_GT_I(received, 0);
  else CHECK_EQ_I(received, 0);
}

static void test_perf_copies_on(int argc, char **argv) {
  copies_in_mode("on", NULL, true, true);
  char st[512];
  stats_path(st, sizeof st, "on");
  /* On: every chunk, whatever the data. */
  CHECK_EQ_I(stat_of(st, "zstd_chunks_raw"), 0);
  remove_stats();
  (void)argc;
  (void)argv;
}

static void test_perf_copies_off(int argc, char **argv) {
  copies_in_mode("off", NULL, false, false);
  remove_stats();
  (void)argc;
  (void)argv;
}

static void test_perf_copies_auto(int argc, char **argv) {
  copies_in_mode("auto", NULL, true, true);
  /* Random data alone: the samples say no, in both directions. */
  char st[512];
  stats_path(st, sizeof st, "auto-random");
  const char *env[] = {"GPUPOOL_COMPRESS=auto", "GPUPOOL_LINK_MBPS=1000",
                       NULL};
  REQUIRE_TRUE(run_child("child_copies", "random", st, env));
  printf("random data, compression auto: %lld chunks sent compressed, %lld "
         "received\n", stat_of(st, "zstd_chunks_sent"),
         stat_of(st, "zstd_chunks_received"));
  CHECK_EQ_I(stat_of(st, "zstd_chunks_sent"), 0);
  CHECK_EQ_I(stat_of(st, "zstd_chunks_received"), 0);
  remove_stats();
  (void)argc;
  (void)argv;
}

/* A server with --compress off offers nothing: a client asking for "on"
 * sends and gets raw copies, still exact. */
static void test_perf_copies_server_off(int argc, char **argv) {
  static const char *const args[] = {"--compress", "off", NULL};
  copies_in_mode("on", args, false, false);
  remove_stats();
  (void)argc;
  (void)argv;
}

/* ---- A slow reader ---------------------------------------------------------- */

/* This process's connection to the server: the socket whose peer is
 * server.port. -1 when there is none. */
static int server_socket(void) {
  for (int fd = 3; fd < 1024; fd++) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 &&
        sa.sin_family == AF_INET && ntohs(sa.sin_port) == server.port)
      return fd;
  }
  return -1;
}

static void test_perf_slow_reader(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  gpt_init_context(NULL);
  size_t n = (64u << 20) + 1;
  uint8_t *src = gpt_xmalloc(n), *back = gpt_xmalloc(n);
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, n));
  gpt_fill(src, n, 77);
  REQUIRE_OK(cuMemcpyHtoD(d, src, n));
  /* This process is stopped and continued every 20 ms while the copies
   * come back: the socket's buffers fill, the server's writes block again
   * and again, its chunks arrive in many pieces, and the data must still
   * land exactly. (A receive buffer shrunk on a live connection would
   * stall TCP itself for minutes: slow_raw_reader connects with a small
   * one instead.) */
  REQUIRE_TRUE(server_socket() >= 0);
  pid_t parent = getpid();
  pid_t stopper = fork();
  REQUIRE_TRUE(stopper >= 0);
  if (stopper == 0) {
    for (int i = 0; i < 40; i++) {
      kill(parent, SIGSTOP);
      usleep(20000);
      kill(parent, SIGCONT);
      usleep(20000);
    }
    _exit(0);
  }
  double t0 = gpt_now();
  memset(back, 0, n);
  CHECK_OK(cuMemcpyDtoH(back, d, n));
  CHECK_OK(cuMemcpyDtoH(back, d, n));
  double took = gpt_now() - t0;
  kill(stopper, SIGKILL);
  waitpid(stopper, NULL, 0);
  kill(parent, SIGCONT);
  printf("two copies of %zu bytes to a stopped-and-started reader: %.3f s\n",
         n, took);
  CHECK_MEM_EQ(back, src, n);
  free(src);
  free(back);
  (void)argc;
  (void)argv;
}

/* ---- Raw frames: a slow raw reader, and hostile compressed payloads -------- */

#define raw gpt_raw

/* Connects with |rcvbuf| bytes of receive buffer (0: the default, through
 * the harness's raw client, raw.h, which speaks whatever the harness's
 * servers speak). */
static void raw_open(struct raw *r, int rcvbuf) {
  if (rcvbuf == 0) {
    REQUIRE_TRUE(gpt_raw_open(r, server.port, 20000));
    return;
  }
  memset(r, 0, sizeof *r);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE_TRUE(fd >= 0);
  if (rcvbuf > 0)
    REQUIRE_TRUE(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                            sizeof rcvbuf) == 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  REQUIRE_TRUE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  REQUIRE_TRUE(gp_wire_init_fd(&r->w, fd) == 0);
  r->w.timeout_ms = 20000;
  r->next = 1;
  r->open = true;
}

/* Sends a request with frame |flags| and reads its reply: the result, the
 * reply's header in |*hout|; a payload of exactly |out_len| bytes lands in
 * |out| (compressed or not: the caller looks at hout->flags). -1 when the
 * connection failed, -2 on a ProtocolError. */
static int raw_call(struct raw *r, uint16_t type, uint16_t flags,
                    const ProtobufCMessage *m, const void *payload,
                    size_t len, void *out, size_t out_len,
                    struct gp_frame_header *hout, ProtobufCMessage **rep) {
  uint32_t id = r->next++;
  if (gp_wire_send(&r->w, type, flags, id, m, payload, len) != 0 ||
      gp_wire_flush(&r->w) != 0)
    return -1;
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
    int io = 0;
    if (res == 0 && out != NULL && h.payload_len <= out_len)
      io = gp_wire_recv_payload(&r->w, out, h.payload_len);
    else
      io = gp_wire_discard(&r->w, h.payload_len);
    CHECK_EQ_U(h.request_id, id);
    if (hout != NULL) *hout = h;
    if (rep != NULL) *rep = msg;
    else protobuf_c_message_free_unpacked(msg, NULL);
    return io != 0 ? -1 : res;
  }
}

/* HELLO, a context and an allocation of |size| bytes; the features of the
 * HelloReply in |*features|. Returns the allocation. */
static uint64_t raw_session(struct raw *r, uint64_t size, uint64_t *features) {
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  hello.min_version = GP_PROTOCOL_VERSION_MIN;
  hello.max_version = GP_PROTOCOL_VERSION_MAX;
  hello.client_name = "test_perf";
  hello.hostname = "localhost";
  ProtobufCMessage *rep = NULL;
  REQUIRE_TRUE(raw_call(r, GP_MSG_HELLO, 0, &hello.base, NULL, 0, NULL, 0,
                        NULL, &rep) == 0);
  if (features) *features = ((Gpupool__HelloReply *)rep)->features;
  protobuf_c_message_free_unpacked(rep, NULL);
  Gpupool__CtxCreate cc = GPUPOOL__CTX_CREATE__INIT;
  cc.ctx = 77;
  REQUIRE_TRUE(raw_call(r, GP_MSG_CTX_CREATE, 0, &cc.base, NULL, 0, NULL, 0,
                        NULL, NULL) == 0);
  Gpupool__MemAlloc ma = GPUPOOL__MEM_ALLOC__INIT;
  ma.ctx = 77;
  ma.size = size;
  REQUIRE_TRUE(raw_call(r, GP_MSG_MEM_ALLOC, 0, &ma.base, NULL, 0, NULL, 0,
                        NULL, &rep) == 0);
  uint64_t d = ((Gpupool__MemAllocReply *)rep)->dptr;
  protobuf_c_message_free_unpacked(rep, NULL);
  return d;
}

static int raw_htod(struct raw *r, uint64_t dst, uint64_t size,
                    uint16_t flags, const void *payload, size_t len) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  m.dst = dst;
  m.size = size;
  return raw_call(r, GP_MSG_MEMCPY_HTOD, flags, &m.base, payload, len, NULL,
                  0, NULL, NULL);
}

/* Reads |n| bytes at |src| back raw (no compression asked for). */
static int raw_dtoh(struct raw *r, uint64_t src, void *out, size_t n) {
  Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
  struct gp_frame_header h = {0};
  m.src = src;
  m.size = n;
  int res = raw_call(r, GP_MSG_MEMCPY_DTOH, 0, &m.base, NULL, 0, out, n, &h,
                     NULL);
  CHECK_EQ_U(h.flags & GP_FRAME_F_ZSTD, 0);
  return res;
}

/* A raw client with a 4 KiB receive buffer pipelines four 16 MiB
 * MEMCPY_DTOH requests, then reads the replies in small pieces with pauses
 * between them. */
static void test_perf_slow_raw_reader(int argc, char **argv) {
  /* Plain TCP: the raw client sets its small receive buffer before it
   * connects, on a socket of its own (slow_reader covers TLS). */
  const char *plain[] = {"--insecure", NULL};
  if (gpt_server_start(&server, plain) != 0) gpt__abort_scenario();
  struct raw r;
  raw_open(&r, 4096);
  size_t chunk = 16u << 20, n = 4 * chunk;
  uint64_t d = raw_session(&r, n, NULL);
  uint8_t *src = gpt_xmalloc(n), *back = gpt_xmalloc(n);
  gpt_fill(src, n, 5);
  for (size_t off = 0; off < n; off += chunk)
    REQUIRE_TRUE(raw_htod(&r, d + off, chunk, 0, src + off, chunk) == 0);
  uint32_t first = r.next;
  for (int i = 0; i < 4; i++) {
    Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
    m.src = d + (uint64_t)i * chunk;
    m.size = chunk;
    REQUIRE_TRUE(gp_wire_send(&r.w, GP_MSG_MEMCPY_DTOH, 0, r.next++, &m.base,
                              NULL, 0) == 0);
  }
  REQUIRE_TRUE(gp_wire_flush(&r.w) == 0);
  gpt_sleep_ms(200); /* the server blocks on a full socket meanwhile */
  memset(back, 0, n);
  for (int i = 0; i < 4; i++) {
    struct gp_frame_header h;
    ProtobufCMessage *msg = NULL;
    REQUIRE_TRUE(gp_wire_recv_header(&r.w, &h) == 0);
    REQUIRE_TRUE(gp_wire_recv_msg(&r.w, &h, &msg) == 0);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (!(h.flags & GP_FRAME_F_REPLY)) {
      REQUIRE_TRUE(gp_wire_discard(&r.w, h.payload_len) == 0);
      i--;
      continue;
    }
    CHECK_EQ_U(h.request_id, first + (uint32_t)i);
    CHECK_EQ_U(h.payload_len, chunk);
    REQUIRE_TRUE(h.payload_len == chunk);
    uint8_t *dst = back + (size_t)i * chunk;
    for (size_t got = 0; got < chunk;) {
      size_t piece = chunk - got < (1u << 20) ? chunk - got : (1u << 20);
      REQUIRE_TRUE(gp_wire_recv_payload(&r.w, dst + got, piece) == 0);
      got += piece;
      gpt_sleep_ms(5);
    }
  }
  CHECK_MEM_EQ(back, src, n);
  gpt_raw_close(&r);
  free(src);
  free(back);
  (void)argc;
  (void)argv;
}

static size_t zstd_of(void *dst, size_t cap, const void *src, size_t n) {
  size_t c = ZSTD_compress(dst, cap, src, n, 1);
  REQUIRE_TRUE(!ZSTD_isError(c));
  return c;
}

/* Rewrites the content size that the header of zstd frame |z| declares
 * (RFC 8878, 3.1.1.1: a 2-byte Frame_Content_Size field holds the size less
 * 256). False when the field is not 2 bytes wide. */
static bool set_content_size(uint8_t *z, size_t len, unsigned size) {
  static const int dict_bytes[] = {0, 1, 2, 4};
  if (len < 16 || size < 256 || size > 65791) return false;
  uint8_t fhd = z[4];
  bool single = (fhd >> 5) & 1;
  if ((fhd >> 6) != 1) return false;
  size_t at = 5 + (single ? 0 : 1) + (size_t)dict_bytes[fhd & 3];
  z[at] = (uint8_t)((size - 256) & 0xff);
  z[at + 1] = (uint8_t)((size - 256) >> 8);
  return true;
}

static void test_perf_hostile_zstd(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  struct raw r;
  raw_open(&r, 0);
  uint64_t features = 0;
  uint64_t d = raw_session(&r, 1u << 20, &features);
  CHECK_TRUE((features & GP_FEATURE_ZSTD) != 0);

  /* The whole allocation holds a known pattern. */
  enum { N = 1u << 20 };
  static uint8_t model[N], back[N], big[2 * N], z[2 * N + 65536];
  gpt_fill(model, N, 9);
  REQUIRE_TRUE(raw_htod(&r, d, N, 0, model, N) == 0);

  /* Content that expands beyond the declared 4096 bytes: refused, and not
   * a byte past the copy's 4096 changes. */
  memset(big, 0, sizeof big);
  size_t zn = zstd_of(z, sizeof z, big, 8192);
  CHECK_EQ_I(raw_htod(&r, d, 4096, GP_FRAME_F_ZSTD, z, zn),
             CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_dtoh(&r, d + 4096, back, N - 4096), 0);
  CHECK_MEM_EQ(back, model + 4096, N - 4096);
  /* Far beyond: 2 MiB of zeros declared as 4 KiB, at the allocation's
   * last 4 KiB. */
  zn = zstd_of(z, sizeof z, big, sizeof big);
  CHECK_EQ_I(raw_htod(&r, d + N - 4096, 4096, GP_FRAME_F_ZSTD, z, zn),
             CUDA_ERROR_INVALID_VALUE);
  /* Content shorter than declared. */
  zn = zstd_of(z, sizeof z, big, 100);
  CHECK_EQ_I(raw_htod(&r, d, 4096, GP_FRAME_F_ZSTD, z, zn),
             CUDA_ERROR_INVALID_VALUE);
  /* Not zstd at all. */
  gpt_fill(z, 5000, 3);
  CHECK_EQ_I(raw_htod(&r, d, 4096, GP_FRAME_F_ZSTD, z, 5000),
             CUDA_ERROR_INVALID_VALUE);
  /* Two frames where one is expected. */
  zn = zstd_of(z, sizeof z, big, 2048);
  memcpy(z + zn, z, zn);
  CHECK_EQ_I(raw_htod(&r, d, 4096, GP_FRAME_F_ZSTD, z, 2 * zn),
             CUDA_ERROR_INVALID_VALUE);
  /* A zstd frame cut short. */
  zn = zstd_of(z, sizeof z, model, 65536);
  CHECK_EQ_I(raw_htod(&r, d, 65536, GP_FRAME_F_ZSTD, z, zn / 2),
             CUDA_ERROR_INVALID_VALUE);
  /* A frame whose header declares the copy's size and whose blocks hold
   * more: refused, and nothing past the copy's range is touched. */
  zn = zstd_of(z, sizeof z, big, 40000);
  CHECK_TRUE(set_content_size(z, zn, 32768));
  CHECK_EQ_I(raw_htod(&r, d + 65536, 32768, GP_FRAME_F_ZSTD, z, zn),
             CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_dtoh(&r, d + 98304, back, N - 98304), 0);
  CHECK_MEM_EQ(back, model + 98304, N - 98304);
  /* The last two may have written inside their own ranges (as a copy
   * that fails part way may): put the pattern back. */
  REQUIRE_TRUE(raw_htod(&r, d, 131072, 0, model, 131072) == 0);
  /* More compressed bytes than any content of that size needs. */
  memset(z, 0, 70000);
  CHECK_EQ_I(raw_htod(&r, d, 100, GP_FRAME_F_ZSTD, z, 70000),
             CUDA_ERROR_INVALID_VALUE);
  /* An empty copy flagged compressed. */
  CHECK_EQ_I(raw_htod(&r, d, 0, GP_FRAME_F_ZSTD, z, 16),
             CUDA_ERROR_INVALID_VALUE);
  /* Without a reply: the refusal is the deferred error of the next
   * reply. */
  {
    zn = zstd_of(z, sizeof z, big, 8192);
    Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
    m.dst = d;
    m.size = 4096;
    REQUIRE_TRUE(gp_wire_send(&r.w, GP_MSG_MEMCPY_HTOD,
                              GP_FRAME_F_ZSTD | GP_FRAME_F_NOREPLY, r.next++,
                              &m.base, z, zn) == 0);
    Gpupool__CtxSynchronize cs = GPUPOOL__CTX_SYNCHRONIZE__INIT;
    cs.ctx = 77;
    ProtobufCMessage *rep = NULL;
    CHECK_EQ_I(raw_call(&r, GP_MSG_CTX_SYNCHRONIZE, 0, &cs.base, NULL, 0,
                        NULL, 0, NULL, &rep), 0);
    int32_t res = -1, deferred = 0;
    if (rep) gp_msg_reply_status(rep, &res, &deferred);
    CHECK_EQ_I(deferred, CUDA_ERROR_INVALID_VALUE);
    protobuf_c_message_free_unpacked(rep, NULL);
  }
  /* Nothing above changed the memory. */
  CHECK_EQ_I(raw_dtoh(&r, d, back, N), 0);
  CHECK_MEM_EQ(back, model, N);

  /* The session goes on: a good compressed copy lands exactly, and a copy
   * back that allows compression comes compressed (zeros, "on"). */
  memset(big, 0, N);
  memcpy(big + 1000, "hello", 5);
  zn = zstd_of(z, sizeof z, big, N);
  CHECK_EQ_I(raw_htod(&r, d, N, GP_FRAME_F_ZSTD, z, zn), 0);
  {
    Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
    struct gp_frame_header h = {0};
    m.src = d;
    m.size = N;
    m.compress = 2;
    CHECK_EQ_I(raw_call(&r, GP_MSG_MEMCPY_DTOH, 0, &m.base, NULL, 0, z,
                        sizeof z, &h, NULL), 0);
    CHECK_TRUE((h.flags & GP_FRAME_F_ZSTD) != 0);
    CHECK_LT_U(h.payload_len, N / 100);
    size_t got = ZSTD_decompress(back, N, z, h.payload_len);
    CHECK_EQ_U(got, N);
    CHECK_MEM_EQ(back, big, N);
  }

  /* The flag where it has no place: a protocol error, the session ends. */
  {
    Gpupool__MemAlloc ma = GPUPOOL__MEM_ALLOC__INIT;
    ma.ctx = 77;
    ma.size = 4096;
    CHECK_EQ_I(raw_call(&r, GP_MSG_MEM_ALLOC, GP_FRAME_F_ZSTD, &ma.base,
                        NULL, 0, NULL, 0, NULL, NULL), -2);
  }
  gpt_raw_close(&r);

  /* And the server serves the next session. */
  struct raw r2;
  raw_open(&r2, 0);
  uint64_t d2 = raw_session(&r2, 4096, NULL);
  CHECK_EQ_I(raw_htod(&r2, d2, 4096, 0, model, 4096), 0);
  CHECK_EQ_I(raw_dtoh(&r2, d2, back, 4096), 0);
  CHECK_MEM_EQ(back, model, 4096);
  gpt_raw_close(&r2);
  CHECK_TRUE(gpt_server_alive(&server));
  (void)argc;
  (void)argv;
}

/* A server with --compress off refuses compressed frames outright. */
static void test_perf_zstd_refused_when_off(int argc, char **argv) {
  static const char *const args[] = {"--compress", "off", NULL};
  if (gpt_server_start(&server, args) != 0) gpt__abort_scenario();
  struct raw r;
  raw_open(&r, 0);
  uint64_t features = ~0ull;
  uint64_t d = raw_session(&r, 4096, &features);
  CHECK_EQ_U(features & GP_FEATURE_ZSTD, 0);
  static uint8_t zeros[4096], z[8192];
  size_t zn = zstd_of(z, sizeof z, zeros, sizeof zeros);
  CHECK_EQ_I(raw_htod(&r, d, 4096, GP_FRAME_F_ZSTD, z, zn), -2);
  gpt_raw_close(&r);
  CHECK_TRUE(gpt_server_alive(&server));
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"batch_order", test_perf_batch_order, 60},
      {"launch_round_trips", test_perf_launch_round_trips, 120},
      {"copies_on", test_perf_copies_on, 240},
      {"copies_off", test_perf_copies_off, 240},
      {"copies_auto", test_perf_copies_auto, 240},
      {"copies_server_off", test_perf_copies_server_off, 240},
      {"slow_reader", test_perf_slow_reader, 120},
      {"slow_raw_reader", test_perf_slow_raw_reader, 120},
      {"hostile_zstd", test_perf_hostile_zstd, 60},
      {"zstd_refused_when_off", test_perf_zstd_refused_when_off, 60},
      {"child_launches", child_launches, 120},
      {"child_copies", child_copies, 240},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
