/* Integration: the client's side of the broker (docs/broker.md, "The
 * client", "The CLI"). The broker is a stand-in broker speaking the real
 * frames, a thread of this program: it records what each request carried
 * and answers BROKER_REQUEST_SESSION with a grant pointing at a real emu
 * gpupool-server (started without a grant key, so it admits the HELLO),
 * BROKER_STATUS with fixed content and BROKER_DRAIN as the admin token
 * allows. The clients are processes: `gpupool` itself, and this program
 * run again as `child_init` (cuInit, then one allocation). A stand-in pool
 * server (another thread) checks the HELLO's grant, refuses a grant, and
 * reclaims an idle session with ProtocolError GP_EIDLE. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpupool/gpupool.h"
#include "harness.h"
#include "raw.h"
#include "msg.h"
#include "tls.h"
#include "wire.h"

#define TENANT_TOKEN "tenant-token-alice"
#define ADMIN_TOKEN "admin-token-0123"
#define GRANT_BYTES "stand-in grant: signed elsewhere"

static struct gpt_server server;

/* ---- Running processes --------------------------------------------------------- */



static const char *cli(void) {
  const char *c = getenv("GPUPOOL_TEST_CLI");
  if (c == NULL || *c == '\0') gpt_skip("GPUPOOL_TEST_CLI is not set");
  return c;
}

static const char *probe(void) {
  const char *p = getenv("GPUPOOL_TEST_PROBE");
  if (p == NULL || *p == '\0') gpt_skip("GPUPOOL_TEST_PROBE is not set");
  return p;
}

static char self_path[PATH_MAX];

/* Runs this program as `child_init`: cuInit, then one allocation. */
static void run_client(struct gpt_run *r) {
  const char *argv[] = {self_path, "child_init", NULL};
  gpt_run(r, argv, NULL, 30);
}

/* How many times |needle| occurs in |hay|. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

#define CHECK_HAS(hay, needle)                                         \
  do {                                                                 \
    if (!CHECK_TRUE(strstr((hay), (needle)) != NULL))                  \
      fprintf(stderr, "    wanted \"%s\" in the output\n", (needle)); \
  } while (0)

static char tmpdir[256];

/* A file in this scenario's temporary folder, with |text| and |mode|. */
static const char *write_file(const char *name, const char *text, int mode) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  REQUIRE_TRUE(f != NULL);
  fputs(text, f);
  fclose(f);
  chmod(p, (mode_t)mode);
  return p;
}

/* ---- Stand-ins -------------------------------------------------------------------- */

/* A listening socket on 127.0.0.1 served by a thread, one connection at a
 * time. */
struct standin {
  int ls;
  char addr[64];
  pthread_t thread;
  atomic_bool stop;
  void (*serve)(struct gp_wire *w);
  SSL_CTX *tls; /* the stand-in broker speaks TLS as the broker does */
};

/* What the stand-ins saw and how they answer, under |mu|. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  /* The broker's answers. */
  int refuse_code;          /* REQUEST_SESSION: 0 grants */
  char refuse_msg[256];
  bool silent;              /* accept, never answer */
  char grant_addr[64];      /* where the grant points */
  /* What it saw. */
  int requests;
  char token[256];
  uint64_t memory;
  uint32_t gpu_count;
  size_t binding_len;       /* BrokerSessionRequest.binding_key */
  char labels[512];
  char server[64];
  char client[256];
  int drains;
  char drain_server[64];
  int drain_flag;
  /* The stand-in server. */
  int server_mode;          /* 0: idle reclaim, 1: refuse the grant */
  int hellos;
  char hello_grant[128];
} st;

static void serve_broker(struct gp_wire *w);

static void *standin_main(void *arg) {
  struct standin *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd pf = {s->ls, POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0) continue;
    int fd = accept4(s->ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    struct gp_wire w;
    char why[512];
    /* The stand-in broker speaks TLS with its own context (or plain TCP);
     * the stand-in server speaks TLS like gpupool-server (the client's
     * default), through the harness. Both take |fd|. */
    int rc;
    if (s->serve != serve_broker)
      rc = gpt_wire_accept(&w, fd); /* closes |fd| on failure */
    else if (s->tls != NULL)
      rc = gp_wire_init_tls_server(&w, fd, s->tls, 5000, why, sizeof why);
    else
      rc = gp_wire_init_fd(&w, fd);
    if (rc != 0) {
      if (s->serve == serve_broker) close(fd);
      continue;
    }
    w.timeout_ms = 5000;
    s->serve(&w);
    gp_wire_free(&w);
  }
  return NULL;
}

static void standin_start(struct standin *s, void (*serve)(struct gp_wire *),
                          SSL_CTX *tls) {
  memset(s, 0, sizeof *s);
  s->serve = serve;
  s->tls = tls;
  s->ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE_TRUE(s->ls >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  REQUIRE_TRUE(bind(s->ls, (struct sockaddr *)&sa, sizeof sa) == 0);
  REQUIRE_TRUE(listen(s->ls, 16) == 0);
  REQUIRE_TRUE(getsockname(s->ls, (struct sockaddr *)&sa, &len) == 0);
  snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  REQUIRE_TRUE(pthread_create(&s->thread, NULL, standin_main, s) == 0);
}

static void standin_stop(struct standin *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->thread, NULL);
  close(s->ls);
  SSL_CTX_free(s->tls);
  s->tls = NULL;
}

/* The broker's TLS context, from the test certificates; the clients get
 * the CA in GPUPOOL_TLS_CA. */
static SSL_CTX *broker_tls(void) {
  struct gp_tls_pem pem;
  char why[512];
  REQUIRE_TRUE(gp_tls_pem_load(&pem, gpt_cert("broker.pem", false),
                               gpt_cert("broker.key", false),
                               gpt_cert("ca.pem", false), why,
                               sizeof why) == 0);
  SSL_CTX *ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_OPTIONAL, why,
                                   sizeof why);
  gp_tls_pem_free(&pem);
  REQUIRE_TRUE(ctx != NULL);
  setenv("GPUPOOL_TLS_CA", gpt_cert("ca.pem", false), 1);
  return ctx;
}

static void copy_bytes(char *dst, size_t cap, const ProtobufCBinaryData *b) {
  size_t n = b->len < cap - 1 ? b->len : cap - 1;
  memcpy(dst, b->data, n);
  dst[n] = '\0';
}

static void reply(struct gp_wire *w, const struct gp_frame_header *h,
                  const ProtobufCMessage *m) {
  if (gp_wire_send(w, h->type, GP_FRAME_F_REPLY, h->request_id, m, NULL, 0) ==
      0)
    gp_wire_flush(w);
}

/* Fixed content for BROKER_STATUS: two servers, one draining and down, a
 * name that needs JSON escaping, and two sessions. */
static void status_reply(struct gp_wire *w, const struct gp_frame_header *h,
                         const char *token) {
  Gpupool__BrokerStatusReply rep = GPUPOOL__BROKER_STATUS_REPLY__INIT;
  if (strcmp(token, TENANT_TOKEN) != 0 && strcmp(token, ADMIN_TOKEN) != 0) {
    rep.result = GP_EAUTH;
    rep.message = (char *)"unknown token";
    reply(w, h, &rep.base);
    return;
  }
  Gpupool__BrokerGpuStatus g[3];
  for (int i = 0; i < 3; i++) gpupool__broker_gpu_status__init(&g[i]);
  g[0].uuid = (char *)"GPU-11111111-2222-3333-4444-555555555555";
  g[0].name = (char *)"NVIDIA H100 80GB HBM3";
  g[0].total_mem = 80ull << 30;
  g[0].reserved = 8ull << 30;
  g[0].memory_used = 3ull << 30;
  g[0].sessions = 2;
  g[0].utilisation = 37;
  g[0].cc_major = 9;
  g[0].cc_minor = 0;
  g[1].uuid = (char *)"MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
  g[1].name = (char *)"NVIDIA A100 \"MIG\"\t1g";
  g[1].total_mem = 10ull << 30;
  g[1].utilisation = -1;
  g[1].mig_profile = (char *)"1g.10gb";
  g[1].cc_major = 8;
  g[1].cc_minor = 0;
  g[2].uuid = (char *)"GPU-emu";
  g[2].name = (char *)"gpupool emulated device \xff\xc3\xa9";
  g[2].total_mem = 1ull << 30;
  g[2].utilisation = -1;
  g[2].cc_major = 7;
  g[2].cc_minor = 5;
  Gpupool__BrokerGpuStatus *g0[] = {&g[0], &g[1]}, *g1[] = {&g[2]};
  Gpupool__KeyValue kv[2] = {GPUPOOL__KEY_VALUE__INIT,
                             GPUPOOL__KEY_VALUE__INIT};
  kv[0].key = (char *)"zone";
  kv[0].value = (char *)"a";
  kv[1].key = (char *)"gpu";
  kv[1].value = (char *)"h100";
  Gpupool__KeyValue *kvp[] = {&kv[0], &kv[1]};
  Gpupool__BrokerServerStatus s[2] = {GPUPOOL__BROKER_SERVER_STATUS__INIT,
                                      GPUPOOL__BROKER_SERVER_STATUS__INIT};
  s[0].name = (char *)"pool01";
  s[0].address = (char *)"10.0.0.1:7471";
  s[0].n_labels = 2;
  s[0].labels = kvp;
  s[0].up = true;
  s[0].last_heartbeat_ms = 420;
  s[0].n_gpus = 2;
  s[0].gpus = g0;
  s[0].version = (char *)"gpupool-server 0.1.0 (cuda)";
  s[1].name = (char *)"pool02";
  s[1].address = (char *)"10.0.0.2:7471";
  s[1].up = false;
  s[1].draining = true;
  s[1].last_heartbeat_ms = 9000;
  s[1].n_gpus = 1;
  s[1].gpus = g1;
  s[1].version = (char *)"gpupool-server 0.1.0 (emu)";
  Gpupool__BrokerServerStatus *sp[] = {&s[0], &s[1]};
  Gpupool__BrokerSessionStatus se[2] = {GPUPOOL__BROKER_SESSION_STATUS__INIT,
                                        GPUPOOL__BROKER_SESSION_STATUS__INIT};
  se[0].session_id = 0x00c0ffee12345678ull;
  se[0].tenant = (char *)"alice";
  se[0].server = (char *)"pool01";
  se[0].gpu_uuid = g[0].uuid;
  se[0].memory_limit = 4ull << 30;
  se[0].memory_used = 1536ull << 20;
  se[0].age_ms = 125000;
  se[0].idle_ms = 3000;
  se[0].state = (char *)"running";
  se[0].client = (char *)"node7 pid 4242";
  se[1].session_id = 0xfedcba9876543210ull;
  se[1].tenant = (char *)"bob";
  se[1].server = (char *)"pool01";
  se[1].gpu_uuid = g[0].uuid;
  se[1].memory_limit = 4ull << 30;
  se[1].age_ms = 800;
  se[1].state = (char *)"granted";
  se[1].client = (char *)"node8 pid 17";
  Gpupool__BrokerSessionStatus *sep[] = {&se[0], &se[1]};
  rep.n_servers = 2;
  rep.servers = sp;
  rep.n_sessions = 2;
  rep.sessions = sep;
  rep.uptime_ms = 3723000;
  reply(w, h, &rep.base);
}

/* The stand-in broker: one request per connection. */
static void serve_broker(struct gp_wire *w) {
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  if (gp_wire_recv_header(w, &h) != 0) return;
  pthread_mutex_lock(&mu);
  bool silent = st.silent;
  pthread_mutex_unlock(&mu);
  if (silent) {
    /* Hold the connection, say nothing, until the client gives up. */
    char buf[256];
    struct pollfd pf = {w->fd, POLLIN, 0};
    while (poll(&pf, 1, 10000) > 0 && read(w->fd, buf, sizeof buf) > 0) {
    }
    return;
  }
  if (gp_wire_recv_msg(w, &h, &m) != 0) {
    Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
    pe.code = GP_EPROTO;
    pe.message = (char *)"stand-in broker: cannot decode that";
    gp_wire_send(w, GP_MSG_PROTOCOL_ERROR, GP_FRAME_F_NOREPLY, 0, &pe.base,
                 NULL, 0);
    gp_wire_flush(w);
    return;
  }
  pthread_mutex_lock(&mu);
  if (h.type == GP_MSG_BROKER_REQUEST_SESSION) {
    const Gpupool__BrokerSessionRequest *rq =
        (const Gpupool__BrokerSessionRequest *)m;
    st.requests++;
    copy_bytes(st.token, sizeof st.token, &rq->token);
    st.memory = rq->memory;
    st.gpu_count = rq->gpu_count;
    st.binding_len = rq->binding_key.len;
    st.labels[0] = '\0';
    for (size_t i = 0; i < rq->n_labels; i++) {
      size_t n = strlen(st.labels);
      snprintf(st.labels + n, sizeof st.labels - n, "%s%s=%s", i ? "," : "",
               rq->labels[i]->key, rq->labels[i]->value);
    }
    snprintf(st.server, sizeof st.server, "%s", rq->server);
    snprintf(st.client, sizeof st.client, "%s", rq->client);
    Gpupool__BrokerSessionGrant g = GPUPOOL__BROKER_SESSION_GRANT__INIT;
    if (st.refuse_code != 0) {
      g.result = st.refuse_code;
      g.message = st.refuse_msg;
    } else {
      g.server = (char *)"pool01";
      g.address = st.grant_addr;
      g.grant.data = (uint8_t *)GRANT_BYTES;
      g.grant.len = strlen(GRANT_BYTES);
      g.session_id = 0x1234;
      g.gpu_uuid = (char *)"GPU-emu";
      g.memory_limit = rq->memory;
      g.expires_unix = 4000000000ull;
    }
    reply(w, &h, &g.base);
  } else if (h.type == GP_MSG_BROKER_STATUS) {
    char tok[256];
    copy_bytes(tok, sizeof tok, &((Gpupool__BrokerStatusRequest *)m)->token);
    status_reply(w, &h, tok);
  } else if (h.type == GP_MSG_BROKER_DRAIN) {
    const Gpupool__BrokerDrain *d = (const Gpupool__BrokerDrain *)m;
    char tok[256];
    copy_bytes(tok, sizeof tok, &d->token);
    Gpupool__BrokerDrainReply dr = GPUPOOL__BROKER_DRAIN_REPLY__INIT;
    if (strcmp(tok, ADMIN_TOKEN) != 0) {
      dr.result = GP_EPERM;
      dr.message = (char *)"draining needs the admin token";
    } else {
      st.drains++;
      snprintf(st.drain_server, sizeof st.drain_server, "%s", d->server);
      st.drain_flag = d->drain;
    }
    reply(w, &h, &dr.base);
  }
  pthread_mutex_unlock(&mu);
  protobuf_c_message_free_unpacked(m, NULL);
}

/* The stand-in pool server: answers the HELLO (recording its grant), then
 * either reclaims the session as idle at the first request or refuses the
 * grant. */
static void serve_server(struct gp_wire *w) {
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  if (gp_wire_recv_header(w, &h) != 0 || h.type != GP_MSG_HELLO ||
      gp_wire_recv_msg(w, &h, &m) != 0)
    return;
  const Gpupool__HelloRequest *hq = (const Gpupool__HelloRequest *)m;
  pthread_mutex_lock(&mu);
  st.hellos++;
  copy_bytes(st.hello_grant, sizeof st.hello_grant, &hq->grant);
  int mode = st.server_mode;
  pthread_mutex_unlock(&mu);
  protobuf_c_message_free_unpacked(m, NULL);

  Gpupool__HelloReply rep = GPUPOOL__HELLO_REPLY__INIT;
  uint8_t uuid[16] = {7};
  Gpupool__DeviceInfo di = GPUPOOL__DEVICE_INFO__INIT;
  Gpupool__DeviceInfo *dp[1] = {&di};
  if (mode == 1) {
    rep.result = CUDA_ERROR_NOT_PERMITTED;
    rep.message = (char *)"grant expired 12 s ago";
  } else {
    di.name = (char *)"stand-in device";
    di.uuid.data = uuid;
    di.uuid.len = sizeof uuid;
    di.total_mem = 1ull << 30;
    rep.version = GP_PROTOCOL_VERSION_MIN;
    rep.server_name = (char *)"stand-in";
    rep.driver_version = 13000;
    rep.n_devices = 1;
    rep.devices = dp;
  }
  reply(w, &h, &rep.base);
  if (mode == 1) return;
  /* Idle: the worker's ProtocolError, sent unasked, then the close (the
   * client finds it at its next call). */
  gpt_sleep_ms(50);
  Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
  pe.code = GP_EIDLE;
  pe.message = (char *)"session reclaimed after 1 s idle (--idle-timeout)";
  gp_wire_send(w, GP_MSG_PROTOCOL_ERROR, GP_FRAME_F_NOREPLY, 0, &pe.base, NULL,
               0);
  gp_wire_flush(w);
}

static struct standin broker, fake_server;

/* The environment of every scenario: a temporary folder, no settings from
 * the user's own, the stand-in broker and a real emu server to grant. */
static void setup(bool with_server) {
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/gpupool-bclient-XXXXXX",
           t != NULL && *t != '\0' ? t : "/tmp");
  REQUIRE_TRUE(mkdtemp(tmpdir) != NULL);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  REQUIRE_TRUE(n > 0);
  self_path[n] = '\0';
  setenv("XDG_CONFIG_HOME", tmpdir, 1);
  const char *vars[] = {"GPUPOOL_SERVER", "GPUPOOL_BROKER", "GPUPOOL_TOKEN",
                        "GPUPOOL_TOKEN_FILE", "GPUPOOL_MEM", "GPUPOOL_LABELS",
                        "GPUPOOL_SERVER_NAME", "GPUPOOL_CONFIG", "LD_PRELOAD"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  if (with_server) {
    if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
    unsetenv("GPUPOOL_SERVER");
    snprintf(st.grant_addr, sizeof st.grant_addr, "%s", server.addr);
  }
  standin_start(&broker, serve_broker, broker_tls());
}

static void teardown(void) {
  standin_stop(&broker);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* ---- Scenarios --------------------------------------------------------------------- */

/* The role: cuInit, then a context and an allocation on the session. */
static void child_init(int argc, char **argv) {
  CUresult r = cuInit(0);
  printf("cuInit=%d\n", (int)r);
  if (r == CUDA_SUCCESS) {
    CUdevice dev;
    CUcontext ctx;
    CUdeviceptr p = 0;
    r = cuDeviceGet(&dev, 0);
    const char *wait = getenv("GPT_IDLE_WAIT_MS");
    if (wait != NULL) gpt_sleep_ms(atoi(wait));
    if (r == CUDA_SUCCESS) r = cuCtxCreate(&ctx, NULL, 0, dev);
    if (r == CUDA_SUCCESS) r = cuMemAlloc(&p, 1 << 20);
    printf("alloc=%d\n", (int)r);
    r = cuMemAlloc(&p, 1 << 20);
    printf("again=%d\n", (int)r);
  }
  fflush(stdout);
  (void)argc;
  (void)argv;
}

/* A grant: the request carries the environment's settings, the session is
 * on the granted server. */
static void test_broker_client_grant(int argc, char **argv) {
  setup(true);
  struct gpt_run r;
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_TOKEN", TENANT_TOKEN, 1);
  setenv("GPUPOOL_MEM", "1536M", 1);
  setenv("GPUPOOL_LABELS", "zone=a, gpu = h100", 1);
  setenv("GPUPOOL_SERVER_NAME", "pool01", 1);
  run_client(&r);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "cuInit=0\n");
  CHECK_HAS(r.out, "alloc=0\n");
  pthread_mutex_lock(&mu);
  CHECK_EQ_I(st.requests, 1);
  CHECK_STR_EQ(st.token, TENANT_TOKEN);
  CHECK_EQ_U(st.memory, 1536ull << 20);
  CHECK_EQ_U(st.gpu_count, 1);
  /* A fresh Ed25519 key the grant is to be bound to (docs/security.md). */
  CHECK_EQ_U(st.binding_len, 32);
  CHECK_STR_EQ(st.labels, "zone=a,gpu=h100");
  CHECK_STR_EQ(st.server, "pool01");
  char host[256] = "", want[300];
  gethostname(host, sizeof host - 1);
  snprintf(want, sizeof want, "%s pid ", host);
  CHECK_TRUE(strncmp(st.client, want, strlen(want)) == 0);
  CHECK_TRUE(atoi(st.client + strlen(want)) > 0);
  pthread_mutex_unlock(&mu);

  /* Sizes: G and T suffixes, iB, plain bytes; a bad one fails cuInit. */
  const struct {
    const char *s;
    uint64_t v;
  } sizes[] = {{"8G", 8ull << 30}, {"1T", 1ull << 40}, {"512MiB", 512ull << 20},
               {"4096", 4096}, {"64k", 64 << 10}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    setenv("GPUPOOL_MEM", sizes[i].s, 1);
    run_client(&r);
    CHECK_HAS(r.out, "cuInit=0\n");
    pthread_mutex_lock(&mu);
    CHECK_EQ_U(st.memory, sizes[i].v);
    pthread_mutex_unlock(&mu);
  }
  int before = st.requests;
  setenv("GPUPOOL_MEM", "lots", 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n"); /* CUDA_ERROR_NO_DEVICE */
  CHECK_HAS(r.out, "GPUPOOL_MEM=lots is not a size");
  setenv("GPUPOOL_MEM", "8X", 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  setenv("GPUPOOL_MEM", "2G", 1);
  setenv("GPUPOOL_LABELS", "zone", 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "`zone` is not key=value");
  CHECK_EQ_I(st.requests, before); /* none of these asked the broker */
  unsetenv("GPUPOOL_LABELS");

  /* GPUPOOL_SERVER beside GPUPOOL_BROKER: the broker decides. */
  setenv("GPUPOOL_SERVER", "127.0.0.1:1", 1);
  run_client(&r);
  CHECK_HAS(r.out, "alloc=0\n");
  CHECK_EQ_I(st.requests, before + 1);
  /* No token at all: said before anything is asked. */
  unsetenv("GPUPOOL_TOKEN");
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "no token for the broker");
  CHECK_EQ_I(st.requests, before + 1);
  teardown();
  (void)argc;
  (void)argv;
}

/* Refusals and an unreachable or silent broker: cuInit fails with
 * CUDA_ERROR_NO_DEVICE, saying why in one line, within the timeout. */
static void test_broker_client_refused(int argc, char **argv) {
  setup(true);
  struct gpt_run r;
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_TOKEN", TENANT_TOKEN, 1);
  pthread_mutex_lock(&mu);
  st.refuse_code = GP_EQUOTA;
  snprintf(st.refuse_msg, sizeof st.refuse_msg,
           "over tenant alice's max_sessions (8)");
  pthread_mutex_unlock(&mu);
  run_client(&r);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "gpupool: the broker refused the session: over tenant "
                   "alice's max_sessions (8)\n");
  CHECK_EQ_I(count(r.out, "gpupool:"), 1);
  /* What a broker says reaches the terminal as one line of harmless
   * characters: no escape sequence, no second line. */
  pthread_mutex_lock(&mu);
  snprintf(st.refuse_msg, sizeof st.refuse_msg,
           "quota\x1b[2J\x1b]0;owned\x07\nsecond line");
  pthread_mutex_unlock(&mu);
  run_client(&r);
  CHECK_HAS(r.out, "gpupool: the broker refused the session: quota?[2J?]0;"
                   "owned? second line\n");
  CHECK_TRUE(strchr(r.out, '\x1b') == NULL);
  pthread_mutex_lock(&mu);
  st.refuse_code = 0;
  pthread_mutex_unlock(&mu);

  /* Nothing listening. */
  setenv("GPUPOOL_BROKER", "127.0.0.1:1", 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "the broker cannot be reached: cannot connect to "
                   "127.0.0.1:1");
  /* A broker that accepts and never answers: the connect timeout. */
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_CONNECT_TIMEOUT", "1", 1);
  pthread_mutex_lock(&mu);
  st.silent = true;
  pthread_mutex_unlock(&mu);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "did not answer within 1.0 s");
  CHECK_LE_D(r.secs, 4.0);
  const char *s[] = {cli(), "status", "--broker", broker.addr, NULL};
  gpt_run(&r, s, NULL, 30);
  CHECK_EQ_I(r.status, 3);
  CHECK_LE_D(r.secs, 4.0);
  pthread_mutex_lock(&mu);
  st.silent = false;
  pthread_mutex_unlock(&mu);
  unsetenv("GPUPOOL_CONNECT_TIMEOUT");
  teardown();
  (void)argc;
  (void)argv;
}

/* client.conf: read from $XDG_CONFIG_HOME or $GPUPOOL_CONFIG; the
 * environment wins; a bad line fails cuInit naming it; token files. */
static void test_broker_client_config(int argc, char **argv) {
  setup(true);
  struct gpt_run r;
  const char *tok = write_file("token", TENANT_TOKEN "\n", 0600);
  char dir[300], text[2048];
  snprintf(dir, sizeof dir, "%s/gpupool", tmpdir);
  mkdir(dir, 0700);
  snprintf(text, sizeof text,
           "; the pool\n"
           "[client]\n"
           "broker = %s   ; the stand-in\n"
           "token_file = %s\n"
           "memory = 2G\n"
           "labels = zone=b\n"
           "server = pool07\n",
           broker.addr, tok);
  write_file("gpupool/client.conf", text, 0644);
  run_client(&r);
  CHECK_HAS(r.out, "alloc=0\n");
  pthread_mutex_lock(&mu);
  CHECK_STR_EQ(st.token, TENANT_TOKEN);
  CHECK_EQ_U(st.memory, 2ull << 30);
  CHECK_STR_EQ(st.labels, "zone=b");
  CHECK_STR_EQ(st.server, "pool07");
  pthread_mutex_unlock(&mu);

  /* The environment overrides each key. */
  const char *tok2 = write_file("token2", "second-token\r\n", 0400);
  setenv("GPUPOOL_TOKEN_FILE", tok2, 1);
  setenv("GPUPOOL_MEM", "3G", 1);
  setenv("GPUPOOL_LABELS", "", 1); /* set but empty: no labels */
  setenv("GPUPOOL_SERVER_NAME", "pool09", 1);
  run_client(&r);
  CHECK_HAS(r.out, "alloc=0\n");
  pthread_mutex_lock(&mu);
  CHECK_STR_EQ(st.token, "second-token");
  CHECK_EQ_U(st.memory, 3ull << 30);
  CHECK_STR_EQ(st.labels, "");
  CHECK_STR_EQ(st.server, "pool09");
  pthread_mutex_unlock(&mu);
  setenv("GPUPOOL_TOKEN", "third-token", 1); /* over the token file */
  run_client(&r);
  CHECK_STR_EQ(st.token, "third-token");
  unsetenv("GPUPOOL_TOKEN");

  /* A token file others may read is refused; so is an empty one. */
  chmod(tok2, 0644);
  int before = st.requests;
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "is readable by others");
  write_file("token3", "\n", 0600);
  char p3[512];
  snprintf(p3, sizeof p3, "%s/token3", tmpdir);
  setenv("GPUPOOL_TOKEN_FILE", p3, 1);
  run_client(&r);
  CHECK_HAS(r.out, "is empty");
  /* A NUL inside the token's line is refused, not a shorter token. */
  {
    char p4[512];
    snprintf(p4, sizeof p4, "%s/token4", tmpdir);
    int fd = open(p4, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE_TRUE(fd >= 0);
    REQUIRE_TRUE(write(fd, "abc\0def\n", 8) == 8);
    close(fd);
    setenv("GPUPOOL_TOKEN_FILE", p4, 1);
    run_client(&r);
    CHECK_HAS(r.out, "cuInit=100\n");
    CHECK_HAS(r.out, "holds a NUL byte");
  }
  CHECK_EQ_I(st.requests, before);
  unsetenv("GPUPOOL_TOKEN_FILE");

  /* GPUPOOL_SERVER without GPUPOOL_BROKER: direct, the file's broker is not
   * asked; GPUPOOL_BROKER set but empty, the same. */
  setenv("GPUPOOL_SERVER", server.addr, 1);
  run_client(&r);
  CHECK_HAS(r.out, "alloc=0\n");
  CHECK_EQ_I(st.requests, before);
  unsetenv("GPUPOOL_SERVER");

  /* $GPUPOOL_CONFIG names another file; a bad line there fails cuInit. */
  const char *bad = write_file("bad.conf",
                               "[client]\nbroker = 127.0.0.1:1\ncolour = "
                               "blue\n", 0600);
  setenv("GPUPOOL_CONFIG", bad, 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "bad.conf:3: unknown key `colour`");
  CHECK_EQ_I(count(r.out, "gpupool:"), 1);
  bad = write_file("bad2.conf", "broker = x\n", 0600);
  setenv("GPUPOOL_CONFIG", bad, 1);
  run_client(&r);
  CHECK_HAS(r.out, "bad2.conf:1: `broker` outside the [client] section");
  bad = write_file("bad3.conf", "[client]\ntoken = abc\n", 0644);
  setenv("GPUPOOL_CONFIG", bad, 1);
  run_client(&r);
  CHECK_HAS(r.out, "holds a token and is readable by others");
  char missing[512];
  snprintf(missing, sizeof missing, "%s/nonexistent.conf", tmpdir);
  setenv("GPUPOOL_CONFIG", missing, 1);
  run_client(&r);
  CHECK_HAS(r.out, "cannot read the configuration file");
  CHECK_EQ_I(st.requests, before);
  /* A token in a private file; the [client] section's keys only. */
  unsetenv("GPUPOOL_MEM");
  unsetenv("GPUPOOL_LABELS");
  unsetenv("GPUPOOL_SERVER_NAME");
  snprintf(text, sizeof text, "# mine\n[client]\nbroker=%s\ntoken=%s\n",
           broker.addr, "file-token");
  setenv("GPUPOOL_CONFIG", write_file("ok.conf", text, 0600), 1);
  run_client(&r);
  CHECK_HAS(r.out, "alloc=0\n");
  CHECK_STR_EQ(st.token, "file-token");
  CHECK_EQ_U(st.memory, 0); /* none named: the broker's default */
  teardown();
  (void)argc;
  (void)argv;
}

/* The stand-in server: the HELLO carries the broker's grant; a refused
 * grant fails cuInit with the server's message; an idle session's
 * ProtocolError is the call's CUDA_ERROR_DEVICE_UNAVAILABLE, said once. */
static void test_broker_client_server_side(int argc, char **argv) {
  setup(false);
  standin_start(&fake_server, serve_server, NULL);
  snprintf(st.grant_addr, sizeof st.grant_addr, "%s", fake_server.addr);
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_TOKEN", TENANT_TOKEN, 1);
  struct gpt_run r;

  pthread_mutex_lock(&mu);
  st.server_mode = 1;
  pthread_mutex_unlock(&mu);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=100\n");
  CHECK_HAS(r.out, "refused the session: grant expired 12 s ago");
  pthread_mutex_lock(&mu);
  CHECK_EQ_I(st.hellos, 1);
  CHECK_STR_EQ(st.hello_grant, GRANT_BYTES);
  st.server_mode = 0;
  pthread_mutex_unlock(&mu);

  /* The session is reclaimed while the program sleeps (as an idle one
   * is); its next calls find the server's word. */
  setenv("GPT_IDLE_WAIT_MS", "300", 1);
  run_client(&r);
  CHECK_HAS(r.out, "cuInit=0\n");
  CHECK_HAS(r.out, "alloc=46\n"); /* CUDA_ERROR_DEVICE_UNAVAILABLE */
  CHECK_HAS(r.out, "again=46\n");
  CHECK_HAS(r.out, "gpupool: the server at ");
  CHECK_EQ_I(count(r.out, "session reclaimed after 1 s idle (--idle-timeout)"),
             1);
  CHECK_EQ_I(count(r.out, "gpupool:"), 1); /* no "lost connection" too */
  unsetenv("GPT_IDLE_WAIT_MS");
  teardown();
  standin_stop(&fake_server);
  (void)argc;
  (void)argv;
}

/* `gpupool status` and `sessions`: the table and the JSON. */
static void test_broker_client_status(int argc, char **argv) {
  setup(false);
  struct gpt_run r;
  const char *admin = write_file("admin", ADMIN_TOKEN "\n", 0600);
  const char *tenant = write_file("tenant", TENANT_TOKEN "\n", 0600);
  const char *bad = write_file("bad", "who-knows\n", 0600);

  const char *a[] = {cli(), "status", "--broker", broker.addr, "--token-file",
                     admin, NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "pool01  10.0.0.1:7471  up  last heartbeat 0.4s ago  "
                   "labels zone=a,gpu=h100  gpupool-server 0.1.0 (cuda)");
  CHECK_HAS(r.out, "pool02  10.0.0.2:7471  down, draining  last heartbeat "
                   "9.0s ago");
  CHECK_HAS(r.out, "GPU-11111111-2222-3333-4444-555555555555  NVIDIA H100 "
                   "80GB HBM3");
  /* total, reserved, used MiB; sessions; utilisation; MIG; cc */
  CHECK_TRUE(strstr(r.out, "81920") != NULL && strstr(r.out, "8192") &&
             strstr(r.out, "3072"));
  CHECK_HAS(r.out, "37%");
  CHECK_HAS(r.out, "1g.10gb");
  CHECK_HAS(r.out, "broker up 1h02m");
  CHECK_TRUE(strchr(r.out, '\t') == NULL); /* the tab in a name is gone */

  const char *b[] = {cli(), "sessions", "--broker", broker.addr,
                     "--token-file", tenant, NULL};
  gpt_run(&r, b, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "SESSION");
  CHECK_HAS(r.out, "00c0ffee12345678  alice");
  CHECK_HAS(r.out, "fedcba9876543210  bob");
  CHECK_HAS(r.out, "2m05s");
  CHECK_HAS(r.out, "running");
  CHECK_HAS(r.out, "node7 pid 4242");
  CHECK_HAS(r.out, "1536");

  /* --json, validated and read by Python's json module. */
  char json_path[512];
  snprintf(json_path, sizeof json_path, "%s/status.json", tmpdir);
  const char *c[] = {cli(), "status", "--json", "--broker", broker.addr,
                     "--token-file", admin, NULL};
  gpt_run(&r, c, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  FILE *f = fopen(json_path, "w");
  REQUIRE_TRUE(f != NULL);
  fputs(r.out, f);
  fclose(f);
  const char *py[] = {
      "/usr/bin/env", "python3", "-c",
      "import json, sys\n"
      "d = json.load(open(sys.argv[1]))\n"
      "s0, s1 = d['servers']\n"
      "g0, g1 = s0['gpus']\n"
      "g2 = s1['gpus'][0]\n"
      "e0, e1 = d['sessions']\n"
      "checks = [d['uptime_ms'] == 3723000, s0['name'] == 'pool01',\n"
      "  s0['address'] == '10.0.0.1:7471', s0['up'] is True,\n"
      "  s0['draining'] is False, s1['up'] is False, s1['draining'] is True,\n"
      "  s0['last_heartbeat_ms'] == 420, s0['labels'] == {'zone': 'a', 'gpu': "
      "'h100'},\n"
      "  s1['labels'] == {}, s0['version'] == 'gpupool-server 0.1.0 (cuda)',\n"
      "  g0['total_mem'] == 80 << 30, g0['reserved'] == 8 << 30,\n"
      "  g0['memory_used'] == 3 << 30, g0['sessions'] == 2,\n"
      "  g0['utilisation'] == 37, g0['mig_profile'] is None, g0['cc'] == "
      "'9.0',\n"
      "  g1['name'] == 'NVIDIA A100 \"MIG\"\\t1g', g1['utilisation'] is None,\n"
      "  g1['mig_profile'] == '1g.10gb', g1['cc'] == '8.0',\n"
      "  g2['name'] == 'gpupool emulated device \\ufffd\\u00e9',\n"
      "  e0['session_id'] == '00c0ffee12345678', e0['tenant'] == 'alice',\n"
      "  e0['server'] == 'pool01', e0['gpu_uuid'] == g0['uuid'],\n"
      "  e0['memory_limit'] == 4 << 30, e0['memory_used'] == 1536 << 20,\n"
      "  e0['age_ms'] == 125000, e0['idle_ms'] == 3000, e0['state'] == "
      "'running',\n"
      "  e0['client'] == 'node7 pid 4242', e1['session_id'] == "
      "'fedcba9876543210',\n"
      "  e1['state'] == 'granted']\n"
      "bad = [i for i, ok in enumerate(checks) if not ok]\n"
      "print('json checks failed:', bad) if bad else print('json ok')\n"
      "sys.exit(1 if bad else 0)\n",
      json_path, NULL};
  gpt_run(&r, py, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "json ok");
  /* sessions --json prints the same object. */
  const char *d[] = {cli(), "sessions", "--json", "--broker", broker.addr,
                     "--token-file", admin, NULL};
  gpt_run(&r, d, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "\"session_id\": \"00c0ffee12345678\"");

  /* Refused (exit 1, the broker's message), usage (2), unreachable (3). */
  const char *e[] = {cli(), "status", "--broker", broker.addr, "--token-file",
                     bad, NULL};
  gpt_run(&r, e, NULL, 30);
  CHECK_EQ_I(r.status, 1);
  CHECK_HAS(r.out, "the broker refused: unknown token");
  const char *g[] = {cli(), "status", "--bogus", NULL};
  gpt_run(&r, g, NULL, 30);
  CHECK_EQ_I(r.status, 2);
  const char *h[] = {cli(), "status", "--broker", "127.0.0.1:1",
                     "--token-file", admin, NULL};
  gpt_run(&r, h, NULL, 30);
  CHECK_EQ_I(r.status, 3);
  CHECK_HAS(r.out, "cannot be reached");
  /* No broker anywhere: usage. */
  const char *i[] = {cli(), "status", "--token-file", admin, NULL};
  gpt_run(&r, i, NULL, 30);
  CHECK_EQ_I(r.status, 2);
  /* The broker and the token from the environment. */
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_TOKEN", TENANT_TOKEN, 1);
  const char *j[] = {cli(), "sessions", NULL};
  gpt_run(&r, j, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "alice");
  teardown();
  (void)argc;
  (void)argv;
}

/* drain and undrain: the admin token only. */
static void test_broker_client_drain(int argc, char **argv) {
  setup(false);
  struct gpt_run r;
  const char *admin = write_file("admin", ADMIN_TOKEN "\n", 0600);
  const char *tenant = write_file("tenant", TENANT_TOKEN "\n", 0600);
  const char *a[] = {cli(), "drain", "pool02", "--broker", broker.addr,
                     "--token-file", admin, NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "pool02: draining");
  pthread_mutex_lock(&mu);
  CHECK_EQ_I(st.drains, 1);
  CHECK_STR_EQ(st.drain_server, "pool02");
  CHECK_EQ_I(st.drain_flag, 1);
  pthread_mutex_unlock(&mu);
  const char *b[] = {cli(), "undrain", "--broker", broker.addr, "pool02",
                     "--token-file", admin, NULL};
  gpt_run(&r, b, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  pthread_mutex_lock(&mu);
  CHECK_EQ_I(st.drains, 2);
  CHECK_EQ_I(st.drain_flag, 0);
  pthread_mutex_unlock(&mu);
  const char *c[] = {cli(), "drain", "pool02", "--broker", broker.addr,
                     "--token-file", tenant, NULL};
  gpt_run(&r, c, NULL, 30);
  CHECK_EQ_I(r.status, 1);
  CHECK_HAS(r.out, "draining needs the admin token");
  CHECK_EQ_I(st.drains, 2);
  const char *d[] = {cli(), "drain", "--broker", broker.addr, "--token-file",
                     admin, NULL};
  gpt_run(&r, d, NULL, 30);
  CHECK_EQ_I(r.status, 2);
  const char *e[] = {cli(), "drain", "a", "b", "--broker", broker.addr, NULL};
  gpt_run(&r, e, NULL, 30);
  CHECK_EQ_I(r.status, 2);
  teardown();
  (void)argc;
  (void)argv;
}

/* attach --broker: the settings reach the library through the environment;
 * the program's exit status is attach's. */
static void test_broker_client_attach(int argc, char **argv) {
  setup(true);
  struct gpt_run r;
  const char *tok = write_file("token", TENANT_TOKEN "\n", 0600);
  const char *a[] = {cli(),     "attach",   "--broker",     broker.addr,
                     "--token-file", tok,   "--mem",        "768M",
                     "--label", "zone=a",   "--label=gpu=emu", "--server",
                     "pool01",  "--",       probe(),        NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_HAS(r.out, "device: gpupool emulated device");
  pthread_mutex_lock(&mu);
  CHECK_EQ_I(st.requests, 1);
  CHECK_STR_EQ(st.token, TENANT_TOKEN);
  CHECK_EQ_U(st.memory, 768ull << 20);
  CHECK_STR_EQ(st.labels, "zone=a,gpu=emu");
  CHECK_STR_EQ(st.server, "pool01");
  pthread_mutex_unlock(&mu);

  /* The program's status; GPUPOOL_SERVER from the caller is dropped. */
  setenv("GPUPOOL_SERVER", "127.0.0.1:1", 1);
  setenv("GPUPOOL_BROKER", broker.addr, 1);
  setenv("GPUPOOL_TOKEN", TENANT_TOKEN, 1);
  const char *b[] = {cli(), "attach", "--", "/bin/sh", "-c",
                     "echo \"broker=$GPUPOOL_BROKER server=${GPUPOOL_SERVER-unset}\"; "
                     "exit 42", NULL};
  gpt_run(&r, b, NULL, 30);
  CHECK_EQ_I(r.status, 42);
  char want[128];
  snprintf(want, sizeof want, "broker=%s server=unset", broker.addr);
  CHECK_HAS(r.out, want);
  unsetenv("GPUPOOL_SERVER");
  const char *c[] = {cli(), "attach", "--", probe(), "3", NULL};
  gpt_run(&r, c, NULL, 30);
  CHECK_EQ_I(r.status, 3);
  CHECK_HAS(r.out, "device: gpupool emulated device");
  /* A refusal reaches the program as cuInit's failure. */
  pthread_mutex_lock(&mu);
  st.refuse_code = GP_ENOFIT;
  snprintf(st.refuse_msg, sizeof st.refuse_msg,
           "no server with labels zone=mars");
  pthread_mutex_unlock(&mu);
  const char *d[] = {cli(), "attach", "--label", "zone=mars", "--", probe(),
                     NULL};
  gpt_run(&r, d, NULL, 30);
  CHECK_NE_I(r.status, 0);
  CHECK_HAS(r.out, "the broker refused the session: no server with labels "
                   "zone=mars");
  pthread_mutex_lock(&mu);
  CHECK_STR_EQ(st.labels, "zone=mars");
  st.refuse_code = 0;
  pthread_mutex_unlock(&mu);

  /* gpupool's own failures: 125. */
  const char *e[] = {cli(), "attach", "--mem", "huge", "--", "/bin/true",
                     NULL};
  gpt_run(&r, e, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  const char *f[] = {cli(), "attach", "--label", "novalue", "--", "/bin/true",
                     NULL};
  gpt_run(&r, f, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  chmod(tok, 0644);
  const char *g[] = {cli(), "attach", "--token-file", tok, "--", "/bin/true",
                     NULL};
  gpt_run(&r, g, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  CHECK_HAS(r.out, "readable by others");
  unsetenv("GPUPOOL_BROKER");
  const char *h[] = {cli(), "attach", "--mem", "1G", "--server", server.addr,
                     "--", "/bin/true", NULL};
  gpt_run(&r, h, NULL, 30);
  CHECK_EQ_I(r.status, 125); /* --mem without a broker */
  /* Without a broker, --server is HOST:PORT, as before. */
  const char *i[] = {cli(), "attach", "--server", server.addr, "--", probe(),
                     NULL};
  gpt_run(&r, i, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  teardown();
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"grant", test_broker_client_grant, 120},
      {"refused", test_broker_client_refused, 60},
      {"config", test_broker_client_config, 120},
      {"server_side", test_broker_client_server_side, 60},
      {"status", test_broker_client_status, 60},
      {"drain", test_broker_client_drain, 60},
      {"attach", test_broker_client_attach, 120},
      {"child_init", child_init, 30},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
