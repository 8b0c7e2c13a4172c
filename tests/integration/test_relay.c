/* Sessions stay apart, through a relay too.
 *
 * Both sessions speak the wire protocol directly (as a hostile client
 * could), so that every request reaches the server: gpupool's client
 * library would refuse most of them itself. With GPT_SERVER_MODE=relay
 * they reach server A (--backend cuda on gpupool's libcuda.so.1), whose
 * workers each hold a session on server B (emu): the scenario checks that
 * a client of A cannot reach another client's memory or handles on B, and
 * that B's session ends when A's worker does. With the default mode the
 * same checks run on one emu server.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpupool/gpupool.h"
#include "harness.h"
#include "raw.h"
#include "msg.h"
#include "wire.h"

static struct gpt_server server;

#define SECRET_SIZE (3u << 20) /* below and above the staging chunk */
#define CTX_ID 77
#define STREAM_ID 78
#define EVENT_ID 79

/* Connects to the server GPUPOOL_SERVER names. */
static void raw_open(struct gpt_raw *r) {
  REQUIRE_TRUE(gpt_raw_open(r, gpt_raw_port(getenv("GPUPOOL_SERVER")),
                            20000));
}

/* One request and its reply: the result, or -1 when the connection
 * failed (gpt_raw_call). */
static int raw_call(struct gpt_raw *r, uint16_t type, const ProtobufCMessage *m,
                    const void *payload, size_t len, void *out, size_t out_len,
                    ProtobufCMessage **rep) {
  int res = gpt_raw_call(r, type, m, payload, len, out, out_len, rep);
  return res == GPT_RAW_FAILED ? -1 : res;
}

static void raw_hello(struct gpt_raw *r) {
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  hello.min_version = GP_PROTOCOL_VERSION_MIN;
  hello.max_version = GP_PROTOCOL_VERSION_MAX;
  hello.client_name = "test_relay";
  hello.hostname = "localhost";
  REQUIRE_TRUE(raw_call(r, GP_MSG_HELLO, &hello.base, NULL, 0, NULL, 0,
                        NULL) == 0);
}

static int raw_ctx(struct gpt_raw *r, uint64_t ctx) {
  Gpupool__CtxCreate m = GPUPOOL__CTX_CREATE__INIT;
  m.ctx = ctx;
  return raw_call(r, GP_MSG_CTX_CREATE, &m.base, NULL, 0, NULL, 0, NULL);
}

static int raw_alloc(struct gpt_raw *r, uint64_t ctx, uint64_t size,
                     uint64_t *dptr) {
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  ProtobufCMessage *rep = NULL;
  m.ctx = ctx;
  m.size = size;
  int res = raw_call(r, GP_MSG_MEM_ALLOC, &m.base, NULL, 0, NULL, 0, &rep);
  *dptr = res == 0 ? ((Gpupool__MemAllocReply *)rep)->dptr : 0;
  if (rep != NULL) protobuf_c_message_free_unpacked(rep, NULL);
  return res;
}

static int raw_htod(struct gpt_raw *r, uint64_t dst, const void *p, size_t n,
                    uint64_t stream) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  m.dst = dst;
  m.size = n;
  m.stream = stream;
  return raw_call(r, GP_MSG_MEMCPY_HTOD, &m.base, p, n, NULL, 0, NULL);
}

static int raw_dtoh(struct gpt_raw *r, uint64_t src, void *p, size_t n,
                    uint64_t stream) {
  Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
  m.src = src;
  m.size = n;
  m.stream = stream;
  return raw_call(r, GP_MSG_MEMCPY_DTOH, &m.base, NULL, 0, p, n, NULL);
}

/* How many sessions (workers) server |s| has once the count is |want| or
 * |ms| passed; -1 when the kernel does not list children. */
static int sessions_of(struct gpt_server *s, int want, int ms) {
  pid_t pids[16];
  double deadline = gpt_now() + ms / 1000.0;
  int n;
  for (;;) {
    n = gpt_server_workers(s, pids, 16);
    if (n == want || gpt_now() >= deadline) break;
    gpt_sleep_ms(20);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)s->pid,
           (int)s->pid);
  return access(path, R_OK) == 0 ? n : -1;
}

/* sessions_of() the server behind the client's (relay) or the client's
 * server itself. */
static int sessions_behind(int want, int ms) {
  return sessions_of(server.behind != NULL ? server.behind : &server, want,
                     ms);
}

/* The other client: a separate process with a session of its own, using
 * the same ids and the first session's device address. */
static void child_intruder(int argc, char **argv) {
  REQUIRE_TRUE(argc == 1);
  uint64_t victim = strtoull(argv[0], NULL, 16);
  uint8_t *secret = gpt_xmalloc(SECRET_SIZE), *got = gpt_xmalloc(SECRET_SIZE);
  gpt_fill(secret, SECRET_SIZE, 0x5ec7e7);
  struct gpt_raw r;
  raw_open(&r);
  raw_hello(&r);

  /* Before it has any memory: the address is nothing here. */
  CHECK_EQ_I(raw_dtoh(&r, victim, got, 4096, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(raw_htod(&r, victim, got, 4096, 0), CUDA_ERROR_INVALID_VALUE);
  Gpupool__MemFree mf = GPUPOOL__MEM_FREE__INIT;
  mf.dptr = victim;
  CHECK_EQ_I(raw_call(&r, GP_MSG_MEM_FREE, &mf.base, NULL, 0, NULL, 0, NULL),
             CUDA_ERROR_INVALID_VALUE);
  /* The first session's ids name nothing in this one. */
  uint64_t d = 0;
  CHECK_EQ_I(raw_alloc(&r, CTX_ID, 4096, &d), CUDA_ERROR_INVALID_CONTEXT);
  Gpupool__StreamQuery sq = GPUPOOL__STREAM_QUERY__INIT;
  sq.ctx = CTX_ID;
  sq.stream = STREAM_ID;
  CHECK_EQ_I(raw_call(&r, GP_MSG_STREAM_QUERY, &sq.base, NULL, 0, NULL, 0,
                      NULL),
             CUDA_ERROR_INVALID_HANDLE);
  Gpupool__EventQuery eq = GPUPOOL__EVENT_QUERY__INIT;
  eq.event = EVENT_ID;
  CHECK_EQ_I(raw_call(&r, GP_MSG_EVENT_QUERY, &eq.base, NULL, 0, NULL, 0,
                      NULL),
             CUDA_ERROR_INVALID_HANDLE);
  Gpupool__CtxSynchronize cs = GPUPOOL__CTX_SYNCHRONIZE__INIT;
  cs.ctx = CTX_ID;
  CHECK_EQ_I(raw_call(&r, GP_MSG_CTX_SYNCHRONIZE, &cs.base, NULL, 0, NULL, 0,
                      NULL),
             CUDA_ERROR_INVALID_CONTEXT);

  /* Its own context under the same id, memory of the same size: never the
   * secret, and the first session's address, if it is not its own now,
   * still refused. */
  REQUIRE_TRUE(raw_ctx(&r, CTX_ID) == 0);
  REQUIRE_TRUE(raw_alloc(&r, CTX_ID, SECRET_SIZE, &d) == 0);
  memset(got, 0, SECRET_SIZE);
  CHECK_EQ_I(raw_dtoh(&r, d, got, SECRET_SIZE, 0), 0);
  CHECK_TRUE(memcmp(got, secret, SECRET_SIZE) != 0);
  if (d != victim) {
    CHECK_EQ_I(raw_dtoh(&r, victim, got, 4096, 0), CUDA_ERROR_INVALID_VALUE);
  }
  /* Writing its own memory (same id, same size) changes nothing there. */
  memset(got, 0xa5, SECRET_SIZE);
  CHECK_EQ_I(raw_htod(&r, d, got, SECRET_SIZE, 0), 0);
  gpt_child_say("done %u", gpt_checks_failed());
  gp_wire_free(&r.w);
  free(secret);
  free(got);
  (void)argc;
}

static void test_relay_isolation(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  printf("mode %s\n", gpt_server_mode());
  uint8_t *secret = gpt_xmalloc(SECRET_SIZE), *got = gpt_xmalloc(SECRET_SIZE);
  gpt_fill(secret, SECRET_SIZE, 0x5ec7e7);
  struct gpt_raw r;
  raw_open(&r);
  raw_hello(&r);
  REQUIRE_TRUE(raw_ctx(&r, CTX_ID) == 0);
  uint64_t d = 0;
  REQUIRE_TRUE(raw_alloc(&r, CTX_ID, SECRET_SIZE, &d) == 0);
  Gpupool__StreamCreate sc = GPUPOOL__STREAM_CREATE__INIT;
  sc.ctx = CTX_ID;
  sc.stream = STREAM_ID;
  REQUIRE_TRUE(raw_call(&r, GP_MSG_STREAM_CREATE, &sc.base, NULL, 0, NULL, 0,
                        NULL) == 0);
  Gpupool__EventCreate ec = GPUPOOL__EVENT_CREATE__INIT;
  ec.ctx = CTX_ID;
  ec.event = EVENT_ID;
  REQUIRE_TRUE(raw_call(&r, GP_MSG_EVENT_CREATE, &ec.base, NULL, 0, NULL, 0,
                        NULL) == 0);
  CHECK_EQ_I(raw_htod(&r, d, secret, SECRET_SIZE, STREAM_ID), 0);
  Gpupool__EventRecord er = GPUPOOL__EVENT_RECORD__INIT;
  er.event = EVENT_ID;
  er.stream = STREAM_ID;
  CHECK_EQ_I(raw_call(&r, GP_MSG_EVENT_RECORD, &er.base, NULL, 0, NULL, 0,
                      NULL), 0);
  /* A bulk copy past the allocation's end is refused whole. */
  CHECK_EQ_I(raw_dtoh(&r, d + 4096, got, SECRET_SIZE, STREAM_ID),
             CUDA_ERROR_INVALID_VALUE);
  CHECK_EQ_I(sessions_behind(1, 10000) == 1 || sessions_behind(1, 0) == -1,
             1);

  char arg[32], line[64] = "";
  snprintf(arg, sizeof arg, "%" PRIx64, d);
  const char *args[] = {arg, NULL};
  struct gpt_child c;
  REQUIRE_TRUE(gpt_spawn(&c, "child_intruder", args) == 0);
  CHECK_GT_I(gpt_child_recv(&c, line, sizeof line, 40000), 0);
  CHECK_STR_EQ(line, "done 0");
  CHECK_EQ_I(gpt_child_wait(&c, 20000), 0);

  /* The first session's memory and handles are as they were. */
  memset(got, 0, SECRET_SIZE);
  CHECK_EQ_I(raw_dtoh(&r, d, got, SECRET_SIZE, STREAM_ID), 0);
  CHECK_MEM_EQ(got, secret, SECRET_SIZE);
  Gpupool__EventSynchronize es = GPUPOOL__EVENT_SYNCHRONIZE__INIT;
  es.event = EVENT_ID;
  CHECK_EQ_I(raw_call(&r, GP_MSG_EVENT_SYNCHRONIZE, &es.base, NULL, 0, NULL,
                      0, NULL), 0);

  /* The intruder's session has ended behind the relay as well; killing
   * the first session's worker ends its session there too. */
  int n = sessions_behind(1, 10000);
  if (n >= 0) CHECK_EQ_I(n, 1);
  pid_t workers[4];
  sessions_of(&server, 1, 10000);
  int nw = gpt_server_workers(&server, workers, 4);
  if (n >= 0) {
    CHECK_EQ_I(nw, 1);
    if (nw == 1) kill(workers[0], SIGKILL);
    n = sessions_behind(0, 10000);
    CHECK_EQ_I(n, 0);
  }
  gp_wire_free(&r.w);
  free(secret);
  free(got);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"isolation", test_relay_isolation, 60},
      {"child_intruder", child_intruder, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
