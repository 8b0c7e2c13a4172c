/* gpupool-broker as a real process on loopback, spoken to in raw frames
 * (as a pool server, a client, the CLI or a hostile peer would): register
 * with good and bad auth, sessions granted with grants that verify, status
 * as a tenant and as the admin, drain, malformed frames, servers going
 * down, grants expiring. The broker comes from $GPUPOOL_TEST_BROKER (set by
 * tests/integration/meson.build); each scenario starts its own with its
 * own config file and grant key, and stops it with SIGTERM, checking that
 * it exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "grant.h"
#include "gpupool/errors.h"
#include "harness.h"
#include "msg.h"
#include "tls.h"
#include "wire.h"

#define KEY "broker-test-key-0123456789abcdef0123456789"
#define ALICE "alice-secret-token"
#define BOB "bob-secret-token"
#define ADMIN "admin-secret-token"
#define GiB (1ull << 30)

struct broker {
  struct gpt_server s; /* pid, port; stopped with gpt_server_stop() */
  char dir[256];
  char conf[300], key[300], log[300];
};

static struct broker B;

/* How the scenario's broker runs: TLS with the test certificates
 * (broker.pem, --tls-ca ca.pem) unless |B_insecure| (plain TCP: the
 * scenarios that write raw bytes to the socket by the thousand, flood and
 * slots, which test the frame layer's bounds). |B_more|: more flags. */
static bool B_insecure;
static const char *B_more[4];

/* The raw peers' TLS: the pool's CA, and the pool servers' certificate as
 * the client certificate (registering needs one). |peer_plain|: no TLS
 * (against an --insecure broker); |peer_ctx| replaced: another identity. */
static SSL_CTX *peer_ctx;
static bool peer_plain;

static SSL_CTX *client_ctx(const char *ca, const char *cert,
                           const char *key) {
  char why[512];
  SSL_CTX *ctx = gp_tls_client_ctx(ca, cert, key, why, sizeof(why));
  if (!ctx)
    fprintf(stderr, "TLS context: %s\n", why);
  REQUIRE_TRUE(ctx != NULL);
  return ctx;
}

/* Writes the grant key and a config ([broker] gets |extra| lines) and
 * starts the broker; ends the scenario if it does not come up. */
static void broker_start(const char *extra) {
  const char *bin = getenv("GPUPOOL_TEST_BROKER");
  char ha[65], hb[65], hadm[65], port_file[300];
  FILE *f;

  if (!bin || !*bin) {
    CHECK_TRUE(!"GPUPOOL_TEST_BROKER is not set: run with meson test");
    gpt__abort_scenario();
  }
  snprintf(B.dir, sizeof(B.dir), "%s/gpupool-brk-XXXXXX",
           getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  REQUIRE_TRUE(mkdtemp(B.dir) != NULL);
  snprintf(B.conf, sizeof(B.conf), "%s/broker.conf", B.dir);
  snprintf(B.key, sizeof(B.key), "%s/grant.key", B.dir);
  snprintf(B.log, sizeof(B.log), "%s/broker.log", B.dir);
  snprintf(port_file, sizeof(port_file), "%s/port", B.dir);
  f = fopen(B.key, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "%s\n", KEY);
  fclose(f);
  chmod(B.key, 0600);
  gp_sha256_hex(ALICE, strlen(ALICE), ha);
  gp_sha256_hex(BOB, strlen(BOB), hb);
  gp_sha256_hex(ADMIN, strlen(ADMIN), hadm);
  f = fopen(B.conf, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "[broker]\ngrant_key_file = %s\nheartbeat_ms = 200\n%s\n"
          "[tenant.alice]\ntoken_sha256 = %s\n"
          "[tenant.bob]\ntoken_sha256 = %s\nmax_sessions = 1\n"
          "[admin]\ntoken_sha256 = %s\n", B.key, extra ? extra : "", ha, hb,
          hadm);
  fclose(f);

  memset(&B.s, 0, sizeof(B.s));
  char tls_paths[3][512];
  snprintf(tls_paths[0], sizeof(tls_paths[0]), "%s", gpt_cert("broker.pem", false));
  snprintf(tls_paths[1], sizeof(tls_paths[1]), "%s", gpt_cert("broker.key", false));
  snprintf(tls_paths[2], sizeof(tls_paths[2]), "%s", gpt_cert("ca.pem", false));
  if (!B_insecure && !peer_ctx)
    peer_ctx = client_ctx(gpt_cert("ca.pem", false),
                          gpt_cert("server.pem", false),
                          gpt_cert("server.key", false));
  peer_plain = B_insecure;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE_TRUE(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(126);
    int fd = open(B.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      close(fd);
    }
    const char *argv[24] = {bin, "--listen", "127.0.0.1:0", "--port-file",
                            port_file, "--config", B.conf, "--log-level",
                            "debug"};
    int n = 9;
    if (B_insecure) {
      argv[n++] = "--insecure";
    } else {
      argv[n++] = "--tls-cert";
      argv[n++] = tls_paths[0];
      argv[n++] = "--tls-key";
      argv[n++] = tls_paths[1];
      argv[n++] = "--tls-ca";
      argv[n++] = tls_paths[2];
    }
    for (int i = 0; i < 4 && B_more[i]; i++)
      argv[n++] = B_more[i];
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  setpgid(pid, pid);
  B.s.pid = pid;
  for (int i = 0; i < 1000; i++) {
    char buf[32] = "";
    int fd = open(port_file, O_RDONLY);
    if (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      close(fd);
      if (n > 0 && buf[n - 1] == '\n') {
        B.s.port = atoi(buf);
        snprintf(B.s.addr, sizeof(B.s.addr), "127.0.0.1:%d", B.s.port);
        unlink(port_file);
        return;
      }
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      B.s.reaped = true;
      B.s.status = st;
      break;
    }
    gpt_sleep_ms(10);
  }
  CHECK_TRUE(!"the broker did not write its port");
  gpt__abort_scenario();
}

/* SIGTERM; the broker must stop cleanly (status 0). It stops at once;
 * the grace is for a sanitizer build's leak check at exit, which on a
 * loaded 2-core machine was seen to take over 5 s. */
static void broker_stop(void) {
  /* SIGTERM, and the exit awaited here (not reaped: gpt_server_stop()
   * does that) before gpt_server_stop() signals the group again: its
   * SIGCONT, landing while a sanitizer build's leak check has the process
   * stopped under ptrace, was seen to leave that check waiting forever. */
  if (B.s.pid > 0 && !B.s.reaped) {
    siginfo_t si;
    kill(B.s.pid, SIGTERM);
    double end = gpt_now() + 20.0;
    do {
      memset(&si, 0, sizeof(si));
      if (waitid(P_PID, (id_t)B.s.pid, &si, WEXITED | WNOHANG | WNOWAIT) !=
              0 ||
          si.si_pid == B.s.pid)
        break;
      gpt_sleep_ms(5);
    } while (gpt_now() < end);
  }
  CHECK_EQ_I(gpt_server_stop(&B.s, 20000), 0);
  unlink(B.key);
  unlink(B.conf);
  if (gpt_checks_failed() == 0)
    unlink(B.log);
  else
    fprintf(stderr, "broker log kept: %s\n", B.log);
  rmdir(B.dir);
}

/* The log contains |what|. */
static bool log_has(const char *what) {
  char buf[65536];
  int fd = open(B.log, O_RDONLY);
  ssize_t n;

  if (fd < 0)
    return false;
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return strstr(buf, what) != NULL;
}

/* ---- Raw connections ----------------------------------------------------- */

struct conn {
  struct gp_wire w;
  uint32_t next;
  bool open;
};

static void conn_open(struct conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)B.s.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

  REQUIRE_TRUE(fd >= 0);
  REQUIRE_TRUE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
  memset(c, 0, sizeof(*c));
  if (peer_plain) {
    REQUIRE_TRUE(gp_wire_init_fd(&c->w, fd) == 0);
  } else {
    char why[512];
    int r = gp_wire_init_tls_client(&c->w, fd, peer_ctx, "127.0.0.1", 5000,
                                    why, sizeof(why));
    if (r != 0)
      fprintf(stderr, "TLS to the broker: %s\n", why);
    REQUIRE_TRUE(r == 0);
  }
  c->w.timeout_ms = 5000;
  c->next = 1;
  c->open = true;
}

static void conn_close(struct conn *c) {
  if (c->open)
    gp_wire_free(&c->w);
  c->open = false;
}

/* Sends one request and reads its reply into |*rep| (the caller frees it).
 * Returns 0, or the fatal error. */
static int call(struct conn *c, uint16_t type, const ProtobufCMessage *m,
                ProtobufCMessage **rep) {
  struct gp_frame_header h;
  uint32_t id = c->next++;
  int r;

  *rep = NULL;
  r = gp_wire_send(&c->w, type, 0, id, m, NULL, 0);
  if (r == 0)
    r = gp_wire_recv_header(&c->w, &h);
  if (r != 0)
    return r;
  CHECK_EQ_U(h.type, type);
  CHECK_EQ_U(h.request_id, id);
  CHECK_TRUE((h.flags & GP_FRAME_F_REPLY) != 0);
  return gp_wire_recv_msg(&c->w, &h, rep);
}

/* Sends a message that is never answered. */
static void post(struct conn *c, uint16_t type, const ProtobufCMessage *m) {
  CHECK_EQ_I(gp_wire_send(&c->w, type, GP_FRAME_F_NOREPLY, 0, m, NULL, 0),
             0);
  CHECK_EQ_I(gp_wire_flush(&c->w), 0);
}

/* Waits until the broker has handled everything sent on |c| before: a
 * STATUS on the same connection, whose answer comes after (answers are
 * in order, and heartbeats and session ends are handled as read). */
static void fence(struct conn *c) {
  Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
  ProtobufCMessage *rep = NULL;

  m.token.data = (uint8_t *)ADMIN;
  m.token.len = strlen(ADMIN);
  if (CHECK_EQ_I(call(c, GP_MSG_BROKER_STATUS, &m.base, &rep), 0))
    CHECK_EQ_I(((Gpupool__BrokerStatusReply *)rep)->result, 0);
  if (rep)
    protobuf_c_message_free_unpacked(rep, NULL);
}

/* Reads the next frame: it must be a ProtocolError, then the end of the
 * connection. Returns its code. */
static int expect_protocol_error(struct conn *c, const char *says) {
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  int code = 0;

  if (!CHECK_EQ_I(gp_wire_recv_header(&c->w, &h), 0))
    return 0;
  CHECK_EQ_U(h.type, GP_MSG_PROTOCOL_ERROR);
  if (CHECK_EQ_I(gp_wire_recv_msg(&c->w, &h, &m), 0)) {
    const Gpupool__ProtocolError *pe = (const void *)m;
    code = pe->code;
    if (!CHECK_TRUE(strstr(pe->message, says) != NULL))
      fprintf(stderr, "    the message: %s\n", pe->message);
    protobuf_c_message_free_unpacked(m, NULL);
  }
  CHECK_EQ_I(gp_wire_recv_header(&c->w, &h), GP_ECLOSED);
  return code;
}

/* ---- A pool server's messages ---------------------------------------------- */

struct fake_server {
  const char *name;
  int ngpus;
  uint64_t mem[4];
  const char *labels; /* "k=v" or NULL */
};

static char uuid_buf[8][48];

static const char *uuid_of(const char *name, int i) {
  static int slot;
  char *u = uuid_buf[slot++ % 8];
  snprintf(u, 48, "GPU-%s-%d", name, i);
  return u;
}

/* For the replay checks: a timestamp to use instead of now + skew (0:
 * none), and an address put in after the message was signed (NULL:
 * none). */
static uint64_t reg_stamp;
static const char *reg_tamper_address;

/* Registers |fs| on |c| with timestamp now + |skew| and |key| (NULL: the
 * right one). Returns the result (the reply's), or the fatal error. */
static int do_register(struct conn *c, const struct fake_server *fs,
                       long skew, const char *key,
                       const Gpupool__BrokerSession *const *sessions,
                       size_t nsessions, char *message, size_t msglen) {
  Gpupool__BrokerRegister m = GPUPOOL__BROKER_REGISTER__INIT;
  Gpupool__BrokerGpu gpus[4], *gp[4];
  Gpupool__KeyValue kv = GPUPOOL__KEY_VALUE__INIT, *kvp = &kv;
  char addr[64], kbuf[64] = "", uuids[4][48];
  uint8_t mac[GP_GRANT_MAC_LEN];
  const char *k = key ? key : KEY;
  ProtobufCMessage *rep;
  int r;

  for (int i = 0; i < fs->ngpus; i++) {
    gpupool__broker_gpu__init(&gpus[i]);
    snprintf(uuids[i], sizeof(uuids[i]), "GPU-%s-%d", fs->name, i);
    gpus[i].uuid = uuids[i];
    gpus[i].name = "Emulated GPU";
    gpus[i].total_mem = fs->mem[i];
    gpus[i].cc_major = 8;
    gp[i] = &gpus[i];
  }
  if (fs->labels) {
    snprintf(kbuf, sizeof(kbuf), "%s", fs->labels);
    char *eq = strchr(kbuf, '=');
    *eq = '\0';
    kv.key = kbuf;
    kv.value = eq + 1;
    m.labels = &kvp;
    m.n_labels = 1;
  }
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9000 + fs->ngpus);
  m.name = (char *)fs->name;
  m.address = addr;
  m.gpus = gp;
  m.n_gpus = (size_t)fs->ngpus;
  m.sessions = (Gpupool__BrokerSession **)sessions;
  m.n_sessions = nsessions;
  m.version = "gpupool-server test";
  m.timestamp_unix = reg_stamp ? reg_stamp
                               : (uint64_t)((long)time(NULL) + skew);
  gp_register_auth((const uint8_t *)k, strlen(k), &m, mac);
  if (reg_tamper_address)
    m.address = (char *)reg_tamper_address;
  m.auth.data = mac;
  m.auth.len = sizeof(mac);
  r = call(c, GP_MSG_BROKER_REGISTER, &m.base, &rep);
  if (r != 0)
    return r;
  const Gpupool__BrokerRegisterReply *rr = (const void *)rep;
  r = rr->result;
  if (message)
    snprintf(message, msglen, "%s", rr->message);
  if (r == 0)
    CHECK_EQ_U(rr->heartbeat_ms, 200);
  protobuf_c_message_free_unpacked(rep, NULL);
  return r;
}

static void heartbeat(struct conn *c, const struct fake_server *fs,
                      const int32_t *util,
                      const Gpupool__BrokerSession *const *sessions,
                      size_t nsessions) {
  Gpupool__BrokerHeartbeat m = GPUPOOL__BROKER_HEARTBEAT__INIT;
  Gpupool__BrokerGpuLoad loads[4], *lp[4];

  for (int i = 0; i < fs->ngpus; i++) {
    gpupool__broker_gpu_load__init(&loads[i]);
    loads[i].uuid = (char *)uuid_of(fs->name, i);
    loads[i].utilisation = util ? util[i] : -1;
    lp[i] = &loads[i];
  }
  m.gpus = lp;
  m.n_gpus = (size_t)fs->ngpus;
  m.sessions = (Gpupool__BrokerSession **)sessions;
  m.n_sessions = nsessions;
  post(c, GP_MSG_BROKER_HEARTBEAT, &m.base);
}

/* ---- A client's and the CLI's messages --------------------------------------- */

/* One BROKER_REQUEST_SESSION on a connection of its own. The caller frees
 * |*out| (may be NULL: not kept). Returns the result. */
static int request(const char *token, uint64_t mem, uint32_t gpus,
                   const char *label, const char *server, const char *prefer,
                   Gpupool__BrokerSessionGrant **out, char *message,
                   size_t msglen) {
  Gpupool__BrokerSessionRequest m = GPUPOOL__BROKER_SESSION_REQUEST__INIT;
  Gpupool__KeyValue kv = GPUPOOL__KEY_VALUE__INIT, *kvp = &kv;
  ProtobufCMessage *rep = NULL;
  char kbuf[64];
  struct conn c;
  int r;

  m.token.data = (uint8_t *)token;
  m.token.len = strlen(token);
  m.memory = mem;
  m.gpu_count = gpus;
  m.server = (char *)(server ? server : "");
  m.prefer_server = (char *)(prefer ? prefer : "");
  m.client = "test_broker pid 1";
  uint8_t priv[GP_BINDING_KEY_LEN], pub[GP_BINDING_KEY_LEN];
  REQUIRE_TRUE(gp_binding_keypair(priv, pub) == 0);
  m.binding_key.data = pub;
  m.binding_key.len = sizeof(pub);
  if (label) {
    snprintf(kbuf, sizeof(kbuf), "%s", label);
    char *eq = strchr(kbuf, '=');
    *eq = '\0';
    kv.key = kbuf;
    kv.value = eq + 1;
    m.labels = &kvp;
    m.n_labels = 1;
  }
  conn_open(&c);
  r = call(&c, GP_MSG_BROKER_REQUEST_SESSION, &m.base, &rep);
  conn_close(&c);
  if (!CHECK_EQ_I(r, 0))
    return r;
  Gpupool__BrokerSessionGrant *g = (void *)rep;
  r = g->result;
  if (message)
    snprintf(message, msglen, "%s", g->message);
  if (out)
    *out = g;
  else
    protobuf_c_message_free_unpacked(rep, NULL);
  return r;
}

static Gpupool__BrokerStatusReply *status(const char *token) {
  Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
  ProtobufCMessage *rep = NULL;
  struct conn c;

  m.token.data = (uint8_t *)token;
  m.token.len = strlen(token);
  conn_open(&c);
  REQUIRE_TRUE(call(&c, GP_MSG_BROKER_STATUS, &m.base, &rep) == 0);
  conn_close(&c);
  return (void *)rep;
}

static int drain(const char *token, const char *server, bool on,
                 char *message, size_t msglen) {
  Gpupool__BrokerDrain m = GPUPOOL__BROKER_DRAIN__INIT;
  ProtobufCMessage *rep = NULL;
  struct conn c;
  int r;

  m.token.data = (uint8_t *)token;
  m.token.len = strlen(token);
  m.server = (char *)server;
  m.drain = on;
  conn_open(&c);
  REQUIRE_TRUE(call(&c, GP_MSG_BROKER_DRAIN, &m.base, &rep) == 0);
  conn_close(&c);
  r = ((Gpupool__BrokerDrainReply *)rep)->result;
  if (message)
    snprintf(message, msglen, "%s", ((Gpupool__BrokerDrainReply *)rep)->message);
  protobuf_c_message_free_unpacked(rep, NULL);
  return r;
}

static const Gpupool__BrokerServerStatus *find_server(
    const Gpupool__BrokerStatusReply *st, const char *name) {
  for (size_t i = 0; i < st->n_servers; i++)
    if (strcmp(st->servers[i]->name, name) == 0)
      return st->servers[i];
  return NULL;
}

/* ---- Scenarios ------------------------------------------------------------------ */

static const struct fake_server POOL01 = {"pool01", 2, {8 * GiB, 16 * GiB},
                                          "zone=eu"};
static const struct fake_server POOL02 = {"pool02", 1, {4 * GiB}, NULL};

static void sc_register(int argc, char **argv) {
  struct conn c;
  char msg[256];

  broker_start(NULL);
  /* A wrong key. */
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, 0, "not-the-key-0123456789abcdef01234",
                         NULL, 0, msg, sizeof(msg)), GP_EAUTH);
  CHECK_TRUE(strstr(msg, "auth does not verify") != NULL);
  /* ... and the connection is closed after the answer. */
  struct gp_frame_header h;
  CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), GP_ECLOSED);
  conn_close(&c);
  /* A stale timestamp (the right key): 400 s ago, and 400 s ahead. */
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, -400, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  CHECK_TRUE(strstr(msg, "timestamp") != NULL);
  conn_close(&c);
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, 400, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  conn_close(&c);
  /* A bad name. */
  struct fake_server bad = POOL02;
  bad.name = "no spaces";
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &bad, 0, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EINVAL);
  conn_close(&c);
  /* None of those registered anything. */
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  CHECK_EQ_U(st->n_servers, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  /* Within the window (250 s off) with the right key. */
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, -250, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  st = status(ALICE);
  const Gpupool__BrokerServerStatus *s = find_server(st, "pool01");
  if (CHECK_TRUE(s != NULL)) {
    CHECK_TRUE(s->up);
    CHECK_TRUE(!s->draining);
    CHECK_EQ_U(s->n_gpus, 2);
    CHECK_EQ_U(s->gpus[1]->total_mem, 16 * GiB);
    CHECK_EQ_U(s->n_labels, 1);
    CHECK_STR_EQ(s->address, "127.0.0.1:9002");
  }
  protobuf_c_message_free_unpacked(&st->base, NULL);
  /* The same name from another connection replaces it: the first
   * connection is closed. */
  struct conn c2;
  conn_open(&c2);
  CHECK_EQ_I(do_register(&c2, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), GP_ECLOSED);
  conn_close(&c);
  st = status(ADMIN);
  CHECK_EQ_U(st->n_servers, 1);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  CHECK_TRUE(log_has("registered again"));
  /* Replays. A registration signed for one address and sent with
   * another: the MAC covers the whole message. */
  uint64_t t = (uint64_t)time(NULL) + 10;
  reg_stamp = t;
  reg_tamper_address = "10.66.66.66:1";
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  CHECK_TRUE(strstr(msg, "auth does not verify") != NULL);
  conn_close(&c);
  reg_tamper_address = NULL;
  /* The same registration twice: the second (a replay) is refused, and
   * so is an older one; a later one is taken. */
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  CHECK_EQ_I(gp_wire_recv_header(&c2.w, &h), GP_ECLOSED);
  conn_close(&c2);
  conn_open(&c2);
  CHECK_EQ_I(do_register(&c2, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  if (!CHECK_TRUE(strstr(msg, "not after its last accepted") != NULL))
    fprintf(stderr, "    the message: %s\n", msg);
  conn_close(&c2);
  reg_stamp = t - 1;
  conn_open(&c2);
  CHECK_EQ_I(do_register(&c2, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  conn_close(&c2);
  /* The refused ones did not take the name: c still holds it. */
  st = status(ADMIN);
  s = find_server(st, "pool01");
  if (CHECK_TRUE(s != NULL))
    CHECK_TRUE(s->up);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  CHECK_TRUE(log_has("a replay?"));
  reg_stamp = t + 1;
  conn_open(&c2);
  CHECK_EQ_I(do_register(&c2, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), GP_ECLOSED);
  conn_close(&c);
  reg_stamp = 0;
  conn_close(&c2);
  broker_stop();
}

static void sc_grant(int argc, char **argv) {
  Gpupool__BrokerSessionGrant *g = NULL;
  Gpupool__Grant *v = NULL;
  struct conn c;
  char msg[256], why[128];
  const int32_t util[2] = {50, -1};

  broker_start("grant_ttl_s = 30");
  conn_open(&c);
  REQUIRE_TRUE(do_register(&c, &POOL01, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  heartbeat(&c, &POOL01, util, NULL, 0);
  fence(&c);
  /* Both GPUs empty, no sessions: GPU 0 is at 50 %, GPU 1 unknown (0). */
  uint64_t t0 = (uint64_t)time(NULL);
  REQUIRE_TRUE(request(ALICE, 2 * GiB, 1, "zone=eu", NULL, NULL, &g, msg,
                       sizeof(msg)) == 0);
  CHECK_STR_EQ(g->server, "pool01");
  CHECK_STR_EQ(g->address, "127.0.0.1:9002");
  CHECK_STR_EQ(g->gpu_uuid, "GPU-pool01-1");
  CHECK_EQ_U(g->memory_limit, 2 * GiB);
  CHECK_NE_U(g->session_id, 0);
  CHECK_GE_U(g->expires_unix, t0 + 30);
  CHECK_LE_U(g->expires_unix, (uint64_t)time(NULL) + 30);
  /* The grant verifies with the key and says the same. */
  REQUIRE_TRUE(gp_grant_verify((const uint8_t *)KEY, strlen(KEY),
                               g->grant.data, g->grant.len,
                               (uint64_t)time(NULL), &v, why,
                               sizeof(why)) == 0);
  CHECK_EQ_U(v->version, GP_GRANT_VERSION);
  CHECK_EQ_U(v->binding_key.len, GP_BINDING_KEY_LEN);
  CHECK_EQ_U(v->session_id, g->session_id);
  CHECK_STR_EQ(v->tenant, "alice");
  CHECK_STR_EQ(v->server, "pool01");
  CHECK_STR_EQ(v->gpu_uuid, "GPU-pool01-1");
  CHECK_EQ_U(v->memory_limit, 2 * GiB);
  CHECK_EQ_U(v->expires_unix, g->expires_unix);
  CHECK_EQ_U(v->nonce.len, 16);
  /* ... and not with another key. */
  Gpupool__Grant *v2 = NULL;
  CHECK_EQ_I(gp_grant_verify((const uint8_t *)"another-key-0123456789abcdef0123",
                             32, g->grant.data, g->grant.len,
                             (uint64_t)time(NULL), &v2, why, sizeof(why)),
             GP_EGRANT);
  uint64_t sid = g->session_id;
  gpupool__grant__free_unpacked(v, NULL);
  protobuf_c_message_free_unpacked(&g->base, NULL);

  /* The next: GPU 1 at 2/16, GPU 0 at 0/8: GPU 0 (the default 1 GiB). */
  REQUIRE_TRUE(request(ALICE, 0, 0, NULL, NULL, NULL, &g, msg,
                       sizeof(msg)) == 0);
  CHECK_STR_EQ(g->gpu_uuid, "GPU-pool01-0");
  CHECK_EQ_U(g->memory_limit, 1 * GiB);
  CHECK_NE_U(g->session_id, sid);
  protobuf_c_message_free_unpacked(&g->base, NULL);

  /* Refusals. */
  CHECK_EQ_I(request("wrong-token", GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_EAUTH);
  CHECK_STR_EQ(msg, "unknown token");
  CHECK_EQ_I(request(ADMIN, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_EPERM);
  CHECK_EQ_I(request(ALICE, GiB, 2, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOTSUP);
  CHECK_EQ_I(request(ALICE, 1024 * GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_TRUE(strstr(msg, "largest free is 14 GiB") != NULL);
  CHECK_EQ_I(request(ALICE, GiB, 1, "zone=us", NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_STR_EQ(msg, "no up server has the labels zone=us");
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, "pool09", NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_STR_EQ(msg, "no server named pool09");
  /* Bob's quota: one session. */
  CHECK_EQ_I(request(BOB, GiB, 1, NULL, NULL, NULL, NULL, msg, sizeof(msg)),
             0);
  CHECK_EQ_I(request(BOB, GiB, 1, NULL, NULL, NULL, NULL, msg, sizeof(msg)),
             GP_EQUOTA);
  CHECK_TRUE(strstr(msg, "max_sessions is 1") != NULL);

  /* A second server, named and preferred. */
  struct conn c2;
  conn_open(&c2);
  REQUIRE_TRUE(do_register(&c2, &POOL02, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, "pool02", NULL, &g, msg,
                     sizeof(msg)), 0);
  if (g) {
    CHECK_STR_EQ(g->server, "pool02");
    CHECK_STR_EQ(g->gpu_uuid, "GPU-pool02-0");
    protobuf_c_message_free_unpacked(&g->base, NULL);
    g = NULL;
  }
  CHECK_EQ_I(request(ALICE, 3 * GiB, 1, NULL, NULL, "pool02", &g, msg,
                     sizeof(msg)), 0);
  if (g) {
    CHECK_STR_EQ(g->server, "pool02");
    protobuf_c_message_free_unpacked(&g->base, NULL);
    g = NULL;
  }

  /* The session runs, then ends: status follows. */
  Gpupool__BrokerSession run = GPUPOOL__BROKER_SESSION__INIT;
  const Gpupool__BrokerSession *runp = &run;
  run.session_id = sid;
  run.tenant = "alice";
  run.gpu_uuid = "GPU-pool01-1";
  run.memory_limit = 2 * GiB;
  run.memory_used = 12345;
  heartbeat(&c, &POOL01, util, &runp, 1);
  fence(&c);
  Gpupool__BrokerStatusReply *st = status(ALICE);
  bool found = false;
  for (size_t i = 0; i < st->n_sessions; i++)
    if (st->sessions[i]->session_id == sid) {
      found = true;
      CHECK_STR_EQ(st->sessions[i]->state, "running");
      CHECK_EQ_U(st->sessions[i]->memory_used, 12345);
      CHECK_STR_EQ(st->sessions[i]->client, "test_broker pid 1");
    }
  CHECK_TRUE(found);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  Gpupool__BrokerSessionEnd end = GPUPOOL__BROKER_SESSION_END__INIT;
  end.session_id = sid;
  end.reason = "ended";
  post(&c, GP_MSG_BROKER_SESSION_END, &end.base);
  fence(&c);
  st = status(ADMIN);
  for (size_t i = 0; i < st->n_sessions; i++)
    CHECK_NE_U(st->sessions[i]->session_id, sid);
  const Gpupool__BrokerServerStatus *s = find_server(st, "pool01");
  /* What is left on GPU 1 is bob's granted 1 GiB (1/8 there against 1/8
   * on GPU 0 at 50 % utilisation): the heartbeat that listed alice's
   * session running did not touch a grant. */
  if (CHECK_TRUE(s != NULL))
    CHECK_EQ_U(s->gpus[1]->reserved, 1 * GiB);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  conn_close(&c);
  conn_close(&c2);
  broker_stop();
}

static void sc_status(int argc, char **argv) {
  struct conn c;
  char msg[256];

  broker_start(NULL);
  conn_open(&c);
  REQUIRE_TRUE(do_register(&c, &POOL01, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  REQUIRE_TRUE(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                       sizeof(msg)) == 0);
  REQUIRE_TRUE(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                       sizeof(msg)) == 0);
  REQUIRE_TRUE(request(BOB, GiB, 1, NULL, NULL, NULL, NULL, msg,
                       sizeof(msg)) == 0);
  /* A tenant: every server, only its own sessions. */
  Gpupool__BrokerStatusReply *st = status(ALICE);
  CHECK_EQ_I(st->result, 0);
  CHECK_EQ_U(st->n_servers, 1);
  CHECK_EQ_U(st->n_sessions, 2);
  for (size_t i = 0; i < st->n_sessions; i++) {
    CHECK_STR_EQ(st->sessions[i]->tenant, "alice");
    CHECK_STR_EQ(st->sessions[i]->state, "granted");
    CHECK_STR_EQ(st->sessions[i]->server, "pool01");
  }
  if (st->n_servers == 1) {
    uint64_t reserved = 0;
    for (size_t i = 0; i < st->servers[0]->n_gpus; i++)
      reserved += st->servers[0]->gpus[i]->reserved;
    CHECK_EQ_U(reserved, 3 * GiB); /* bob's counts on the GPUs */
    CHECK_STR_EQ(st->servers[0]->version, "gpupool-server test");
  }
  protobuf_c_message_free_unpacked(&st->base, NULL);
  st = status(BOB);
  CHECK_EQ_U(st->n_sessions, 1);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  /* The admin: everything. */
  st = status(ADMIN);
  CHECK_EQ_I(st->result, 0);
  CHECK_EQ_U(st->n_sessions, 3);
  CHECK_GT_U(st->uptime_ms, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  /* An unknown token: nothing. */
  st = status("nobody");
  CHECK_EQ_I(st->result, GP_EAUTH);
  CHECK_EQ_U(st->n_servers, 0);
  CHECK_EQ_U(st->n_sessions, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  conn_close(&c);
  broker_stop();
}

static void sc_drain(int argc, char **argv) {
  struct conn c;
  char msg[256];

  broker_start(NULL);
  conn_open(&c);
  REQUIRE_TRUE(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  CHECK_EQ_I(drain(ALICE, "pool02", true, msg, sizeof(msg)), GP_EPERM);
  CHECK_EQ_I(drain("nobody", "pool02", true, msg, sizeof(msg)), GP_EAUTH);
  CHECK_EQ_I(drain(ADMIN, "pool09", true, msg, sizeof(msg)), GP_ENOENT);
  CHECK_EQ_I(drain(ADMIN, "pool02", true, msg, sizeof(msg)), 0);
  CHECK_TRUE(strstr(msg, "draining") != NULL);
  Gpupool__BrokerStatusReply *st = status(ALICE);
  const Gpupool__BrokerServerStatus *s = find_server(st, "pool02");
  if (CHECK_TRUE(s != NULL)) {
    CHECK_TRUE(s->draining);
    CHECK_TRUE(s->up);
  }
  protobuf_c_message_free_unpacked(&st->base, NULL);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_TRUE(strstr(msg, "no server is up") != NULL);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, "pool02", NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_STR_EQ(msg, "server pool02 is draining");
  /* Undrain: sessions again. A tenant may not undrain either. */
  CHECK_EQ_I(drain(BOB, "pool02", false, msg, sizeof(msg)), GP_EPERM);
  CHECK_EQ_I(drain(ADMIN, "pool02", false, msg, sizeof(msg)), 0);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  conn_close(&c);
  broker_stop();
}

/* Raw bytes on a fresh connection (in TLS records on a TLS one). */
static void send_raw(struct conn *c, const void *buf, size_t len) {
  struct iovec v = {(void *)buf, len};
  CHECK_EQ_I(c->w.ops->writev(c->w.ctx, &v, 1), (long long)len);
}

static void header(uint8_t out[GP_FRAME_HEADER_SIZE], uint16_t type,
                   uint32_t msg_len, uint32_t payload_len) {
  struct gp_frame_header h = {.version = GP_FRAME_VERSION, .type = type,
                              .request_id = 9, .msg_len = msg_len,
                              .payload_len = payload_len};
  gp_frame_header_encode(&h, out);
}

static void sc_malformed(int argc, char **argv) {
  struct conn srv, c;
  uint8_t hb[GP_FRAME_HEADER_SIZE + 16];
  char msg[256];

  broker_start(NULL);
  /* A server stays registered throughout, on its own connection. */
  conn_open(&srv);
  REQUIRE_TRUE(do_register(&srv, &POOL02, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);

  /* Garbage. */
  conn_open(&c);
  send_raw(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  CHECK_EQ_I(expect_protocol_error(&c, "bad frame"), GP_EPROTO);
  conn_close(&c);
  /* A type the broker does not serve (a session's MEM_ALLOC). */
  conn_open(&c);
  header(hb, GP_MSG_MEM_ALLOC, 0, 0);
  send_raw(&c, hb, GP_FRAME_HEADER_SIZE);
  CHECK_EQ_I(expect_protocol_error(&c, "not served by the broker"),
             GP_EPROTO);
  conn_close(&c);
  /* A message that does not decode. */
  conn_open(&c);
  header(hb, GP_MSG_BROKER_STATUS, 4, 0);
  memcpy(hb + GP_FRAME_HEADER_SIZE, "\xff\xff\xff\xff", 4);
  send_raw(&c, hb, GP_FRAME_HEADER_SIZE + 4);
  CHECK_EQ_I(expect_protocol_error(&c, "malformed BROKER_STATUS"), GP_EPROTO);
  conn_close(&c);
  /* A payload (the broker's messages carry none), and a message over the
   * limit: refused from the header, before anything is read or
   * allocated. */
  conn_open(&c);
  header(hb, GP_MSG_BROKER_STATUS, 0, 4096);
  send_raw(&c, hb, GP_FRAME_HEADER_SIZE);
  CHECK_EQ_I(expect_protocol_error(&c, "bad frame"), GP_ETOOBIG);
  conn_close(&c);
  conn_open(&c);
  header(hb, GP_MSG_BROKER_REGISTER, 0x7fffffff, 0);
  send_raw(&c, hb, GP_FRAME_HEADER_SIZE);
  CHECK_EQ_I(expect_protocol_error(&c, "bad frame"), GP_ETOOBIG);
  conn_close(&c);
  /* Requests are small: a STATUS over 16 KiB is refused from its header
   * (a REGISTER or HEARTBEAT may take 1 MiB). */
  conn_open(&c);
  header(hb, GP_MSG_BROKER_STATUS, 20000, 0);
  send_raw(&c, hb, GP_FRAME_HEADER_SIZE);
  CHECK_EQ_I(expect_protocol_error(&c, "BROKER_STATUS message of 20000 "
                                       "bytes (at most 16384)"),
             GP_ETOOBIG);
  conn_close(&c);
  /* An unknown token is answered, then the connection is closed. */
  conn_open(&c);
  {
    Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
    ProtobufCMessage *rep = NULL;
    struct gp_frame_header h;
    m.token.data = (uint8_t *)"guess";
    m.token.len = 5;
    if (CHECK_EQ_I(call(&c, GP_MSG_BROKER_STATUS, &m.base, &rep), 0)) {
      CHECK_EQ_I(((Gpupool__BrokerStatusReply *)rep)->result, GP_EAUTH);
      protobuf_c_message_free_unpacked(rep, NULL);
    }
    CHECK_EQ_I(gp_wire_send(&c.w, GP_MSG_BROKER_STATUS, 0, 7, &m.base, NULL,
                            0) == 0 ? gp_wire_recv_header(&c.w, &h)
                                    : GP_ECLOSED,
               GP_ECLOSED);
  }
  conn_close(&c);
  /* A heartbeat, a session end, before registering. */
  conn_open(&c);
  Gpupool__BrokerHeartbeat hbm = GPUPOOL__BROKER_HEARTBEAT__INIT;
  post(&c, GP_MSG_BROKER_HEARTBEAT, &hbm.base);
  CHECK_EQ_I(expect_protocol_error(&c, "before BROKER_REGISTER"), GP_EPROTO);
  conn_close(&c);
  /* A reply frame sent to the broker. */
  conn_open(&c);
  CHECK_EQ_I(gp_wire_send(&c.w, GP_MSG_BROKER_STATUS, GP_FRAME_F_REPLY, 1,
                          NULL, NULL, 0), 0);
  CHECK_EQ_I(expect_protocol_error(&c, "unexpected reply"), GP_EPROTO);
  conn_close(&c);
  /* A request that must be answered, flagged NOREPLY. */
  conn_open(&c);
  {
    Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
    post(&c, GP_MSG_BROKER_STATUS, &m.base);
  }
  CHECK_EQ_I(expect_protocol_error(&c, "BROKER_STATUS flagged NOREPLY"),
             GP_EPROTO);
  conn_close(&c);
  /* A frame in pieces, a byte at a time for the header: answered. */
  {
    Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
    uint8_t buf[256];
    size_t n;
    m.token.data = (uint8_t *)ALICE;
    m.token.len = strlen(ALICE);
    n = gpupool__broker_status_request__pack(&m, buf + GP_FRAME_HEADER_SIZE);
    header(buf, GP_MSG_BROKER_STATUS, (uint32_t)n, 0);
    conn_open(&c);
    for (size_t i = 0; i < GP_FRAME_HEADER_SIZE + n; i++) {
      send_raw(&c, buf + i, 1);
      if (i % 8 == 0)
        gpt_sleep_ms(5);
    }
    struct gp_frame_header h;
    ProtobufCMessage *rep = NULL;
    if (CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), 0) &&
        CHECK_EQ_I(gp_wire_recv_msg(&c.w, &h, &rep), 0)) {
      CHECK_EQ_U(h.request_id, 9);
      CHECK_EQ_I(((Gpupool__BrokerStatusReply *)rep)->result, 0);
      CHECK_EQ_U(((Gpupool__BrokerStatusReply *)rep)->n_servers, 1);
      protobuf_c_message_free_unpacked(rep, NULL);
    }
    conn_close(&c);
  }
  /* Many connections at once, each half a frame, then closed. */
  {
    struct conn many[64];
    for (int i = 0; i < 64; i++) {
      conn_open(&many[i]);
      header(hb, GP_MSG_BROKER_STATUS, 10, 0);
      send_raw(&many[i], hb, 12);
    }
    for (int i = 0; i < 64; i++)
      conn_close(&many[i]);
  }
  /* Random message bytes under the broker's types, each on a connection
   * of its own: whatever each gets (an answer, a ProtocolError, or a
   * refusal and the end), the broker stays up. */
  {
    uint64_t x = 0x243f6a8885a308d3ull;
    static const uint16_t types[] = {
      GP_MSG_BROKER_REGISTER, GP_MSG_BROKER_HEARTBEAT,
      GP_MSG_BROKER_SESSION_END, GP_MSG_BROKER_REQUEST_SESSION,
      GP_MSG_BROKER_STATUS, GP_MSG_BROKER_DRAIN, 113};
    for (int i = 0; i < 200; i++) {
      uint8_t fb[GP_FRAME_HEADER_SIZE + 64];
      uint32_t n;
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      n = (uint32_t)(x % 65);
      header(fb, types[(x >> 8) % 7], n, 0);
      gpt_fill(fb + GP_FRAME_HEADER_SIZE, n, x);
      conn_open(&c);
      send_raw(&c, fb, GP_FRAME_HEADER_SIZE + n);
      struct gp_frame_header h;
      int r = gp_wire_recv_header(&c.w, &h);
      if (r != 0 && r != GP_ECLOSED)
        CHECK_EQ_I(r, 0);
      conn_close(&c);
    }
  }
  /* The server's connection still works: a heartbeat keeps it up and a
   * request is placed on it. */
  heartbeat(&srv, &POOL02, NULL, NULL, 0);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  CHECK_EQ_U(st->n_servers, 1);
  CHECK_EQ_U(st->n_sessions, 1);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  conn_close(&srv);
  broker_stop();
}

static void sc_down(int argc, char **argv) {
  struct conn c;
  char msg[256];

  broker_start("down_after_ms = 2000");
  conn_open(&c);
  REQUIRE_TRUE(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  /* Heartbeats every 200 ms keep it up past down_after_ms. */
  for (int i = 0; i < 14; i++) {
    gpt_sleep_ms(200);
    heartbeat(&c, &POOL02, NULL, NULL, 0);
  }
  fence(&c);
  Gpupool__BrokerStatusReply *st = status(ALICE);
  CHECK_TRUE(st->n_servers == 1 && st->servers[0]->up);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  REQUIRE_TRUE(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                       sizeof(msg)) == 0);
  /* Silence (the fence above was the last frame): down after
   * down_after_ms plus at most a tick (400 ms); the upper bound is twice
   * that, for a loaded machine. */
  double t0 = gpt_now();
  bool down = false;
  while (!down && gpt_now() - t0 < 8.0) {
    gpt_sleep_ms(50);
    st = status(ALICE);
    down = st->n_servers == 1 && !st->servers[0]->up;
    if (down) {
      CHECK_GE_U(st->servers[0]->last_heartbeat_ms, 2000);
      CHECK_EQ_U(st->n_sessions, 1); /* its sessions stay listed */
    }
    protobuf_c_message_free_unpacked(&st->base, NULL);
  }
  CHECK_TRUE(down);
  CHECK_GE_D(gpt_now() - t0, 1.9);
  CHECK_LE_D(gpt_now() - t0, 4.8);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  CHECK_TRUE(strstr(msg, "1 down") != NULL);
  CHECK_TRUE(log_has("server pool02 is down"));
  /* A heartbeat: up again. */
  heartbeat(&c, &POOL02, NULL, NULL, 0);
  fence(&c);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  CHECK_TRUE(log_has("server pool02 is up again"));
  /* Silent for 3 x down_after_ms (6 s): its connection is closed. */
  struct gp_frame_header h;
  t0 = gpt_now();
  c.w.timeout_ms = 15000;
  CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), GP_ECLOSED);
  CHECK_GE_D(gpt_now() - t0, 5.5);
  CHECK_LE_D(gpt_now() - t0, 12.0);
  CHECK_TRUE(log_has("closing its connection"));
  conn_close(&c);
  broker_stop();
}

static void sc_expiry(int argc, char **argv) {
  struct conn c;
  char msg[256];

  broker_start("grant_ttl_s = 1\ndown_after_ms = 1000");
  conn_open(&c);
  REQUIRE_TRUE(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg,
                           sizeof(msg)) == 0);
  REQUIRE_TRUE(request(ALICE, 3 * GiB, 1, NULL, NULL, NULL, NULL, msg,
                       sizeof(msg)) == 0);
  /* 3 of 4 GiB reserved: another 3 GiB does not fit. */
  CHECK_EQ_I(request(ALICE, 3 * GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), GP_ENOFIT);
  /* Not seen running: dropped at its expiry (1 s) plus the grace
   * (ceil(down_after_ms / 1000) + 1 = 2 s), the memory released: between
   * 2 and 3 s from now in whole seconds of the Unix clock (a second more
   * for a tick and a loaded machine). */
  double t0 = gpt_now();
  bool gone = false;
  while (!gone && gpt_now() - t0 < 8.0) {
    heartbeat(&c, &POOL02, NULL, NULL, 0);
    gpt_sleep_ms(100);
    Gpupool__BrokerStatusReply *st = status(ADMIN);
    gone = st->n_sessions == 0;
    protobuf_c_message_free_unpacked(&st->base, NULL);
  }
  CHECK_TRUE(gone);
  CHECK_GE_D(gpt_now() - t0, 1.9);
  CHECK_LE_D(gpt_now() - t0, 6.0);
  CHECK_TRUE(log_has("grant expired unused"));
  CHECK_EQ_I(request(ALICE, 3 * GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  conn_close(&c);
  broker_stop();
}

/* The broker's resident memory (VmRSS) in KiB; 0 if unknown. */
static unsigned long broker_rss_kib(void) {
  char path[64], line[256];
  unsigned long kib = 0;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)B.s.pid);
  f = fopen(path, "r");
  if (!f)
    return 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

#define FLOOD_PEERS 4
#define FLOOD_REQUESTS 4000

/* Peers that pipeline thousands of STATUS requests (each answered with
 * about 10 KB) and read nothing: the broker stops reading from them
 * instead of queueing every answer, its memory stays bounded, others are
 * still answered, and the flooding peers get every answer, in order,
 * once they read. */
/* The flood below, on plain TCP (raw non-blocking writes) or on TLS
 * (|B_insecure| false: the same requests in TLS records, written
 * through the connection's transport, non-blocking). */
static void flood(void) {
  static Gpupool__BrokerSession ss[120];
  const Gpupool__BrokerSession *ssp[120];
  char ids[120][8];
  struct conn srv, peers[FLOOD_PEERS];
  char msg[256], asan[512];

  /* A sanitizer build keeps freed memory in quarantine, which would count
   * every answer the kernel took as resident: keep none (nothing to a
   * build without one). */
  snprintf(asan, sizeof(asan), "%s%squarantine_size_mb=0",
           getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "",
           getenv("ASAN_OPTIONS") && *getenv("ASAN_OPTIONS") ? ":" : "");
  setenv("ASAN_OPTIONS", asan, 1);
  broker_start(NULL);
  for (int i = 0; i < 120; i++) {
    gpupool__broker_session__init(&ss[i]);
    ss[i].session_id = 1000 + (uint64_t)i;
    snprintf(ids[i], sizeof(ids[i]), "t%03d", i);
    ss[i].tenant = ids[i];
    ss[i].gpu_uuid = "GPU-pool02-0";
    ss[i].memory_limit = 1u << 20;
    ssp[i] = &ss[i];
  }
  conn_open(&srv);
  REQUIRE_TRUE(do_register(&srv, &POOL02, 0, NULL, ssp, 120, msg,
                           sizeof(msg)) == 0);
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  size_t one = gpupool__broker_status_reply__get_packed_size(st);
  CHECK_EQ_U(st->n_sessions, 120);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  printf("a status answer: %zu bytes; %d peers x %d requests unread: %.0f "
         "MiB of answers\n", one, FLOOD_PEERS, FLOOD_REQUESTS,
         (double)one * FLOOD_PEERS * FLOOD_REQUESTS / (1 << 20));
  unsigned long rss0 = broker_rss_kib();
  REQUIRE_TRUE(rss0 > 0);

  /* The requests, all at once, through non-blocking sockets (the broker
   * stops reading, so the sockets' buffers may fill). */
  Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
  m.token.data = (uint8_t *)ADMIN;
  m.token.len = strlen(ADMIN);
  size_t mlen = gpupool__broker_status_request__get_packed_size(&m);
  size_t flen = GP_FRAME_HEADER_SIZE + mlen;
  uint8_t *buf = malloc(flen * FLOOD_REQUESTS);
  REQUIRE_TRUE(buf != NULL);
  for (int p = 0; p < FLOOD_PEERS; p++) {
    conn_open(&peers[p]);
    for (int i = 0; i < FLOOD_REQUESTS; i++) {
      struct gp_frame_header h = {.version = GP_FRAME_VERSION,
                                  .type = GP_MSG_BROKER_STATUS,
                                  .request_id = (uint32_t)i + 1,
                                  .msg_len = (uint32_t)mlen};
      gp_frame_header_encode(&h, buf + i * flen);
      gpupool__broker_status_request__pack(&m, buf + i * flen +
                                                   GP_FRAME_HEADER_SIZE);
    }
    int fd = peers[p].w.fd, fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    size_t off = 0, total = flen * FLOOD_REQUESTS;
    double t0 = gpt_now();
    while (off < total && gpt_now() - t0 < 5.0) {
      ssize_t n;
      if (B_insecure) {
        n = write(fd, buf + off, total - off);
      } else {
        /* One record at a time; a write the socket cannot take now is
         * retried with the same buffer, as TLS wants. */
        struct iovec v = {buf + off, total - off < 4096 ? total - off : 4096};
        long r = peers[p].w.ops->writev(peers[p].w.ctx, &v, 1);
        n = r > 0 ? (ssize_t)r : -1;
      }
      if (n > 0)
        off += (size_t)n;
      else
        gpt_sleep_ms(5);
    }
    fcntl(fd, F_SETFL, fl);
    printf("peer %d: %zu of %zu bytes of requests sent\n", p, off, total);
    CHECK_GT_U(off, 64u << 10);
  }
  free(buf);
  gpt_sleep_ms(500);
  unsigned long rss1 = broker_rss_kib();
  printf("broker VmRSS: %lu KiB before, %lu KiB with the peers not reading\n",
         rss0, rss1);
  /* Each peer: at most 64 KiB queued, one answer and 64 KiB of unread
   * requests held (plus the allocator's slack). */
  CHECK_LE_U(rss1, rss0 + 12 * 1024);
  /* Others are answered meanwhile; the server's connection works. */
  st = status(ALICE);
  CHECK_EQ_I(st->result, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  heartbeat(&srv, &POOL02, NULL, ssp, 120);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  /* The flooding peers read now: every answer, in order. */
  for (int p = 0; p < FLOOD_PEERS; p++) {
    int got = 0;
    for (int i = 0; i < FLOOD_REQUESTS; i++) {
      struct gp_frame_header h;
      ProtobufCMessage *rep = NULL;
      if (gp_wire_recv_header(&peers[p].w, &h) != 0 ||
          gp_wire_recv_msg(&peers[p].w, &h, &rep) != 0)
        break;
      bool ok = h.request_id == (uint32_t)i + 1 &&
                ((Gpupool__BrokerStatusReply *)rep)->result == 0;
      protobuf_c_message_free_unpacked(rep, NULL);
      if (!ok)
        break;
      got++;
    }
    if (!CHECK_EQ_I(got, FLOOD_REQUESTS))
      fprintf(stderr, "    peer %d: %d answers in order\n", p, got);
    conn_close(&peers[p]);
  }
  printf("broker VmRSS after the answers were read: %lu KiB\n",
         broker_rss_kib());
  conn_close(&srv);
  broker_stop();
}

static void sc_flood(int argc, char **argv) {
  B_insecure = true; /* raw non-blocking writes of frames by the thousand */
  flood();
}

/* The same on TLS: what the broker counts as queued is ciphertext, and
 * the bounds hold. */
static void sc_tls_flood(int argc, char **argv) {
  flood();
}

/* Idle connections up to the cap (4096) do not keep a server out: the
 * oldest idle one makes room. */
static void sc_slots(int argc, char **argv) {
  enum { N = 4096 };
  static struct conn idle[N];
  struct gp_frame_header h;
  struct conn c;
  char msg[256];

  /* The broker's cap is N connections, or fewer where its limit on open
   * files (which it raises within the hard limit, and inherits from here)
   * cannot hold N: fill exactly that cap, whatever it is here. */
  struct rlimit rl;
  int n = N;
  REQUIRE_TRUE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < N + 256) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= N + 256
                      ? N + 256
                      : rl.rlim_max;
    REQUIRE_TRUE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < N + 64) {
      n = (int)rl.rlim_cur - 64;
      printf("open files limited to %llu here: the broker's cap is %d\n",
             (unsigned long long)rl.rlim_cur, n);
    }
  }
  REQUIRE_TRUE(n >= 64);
  B_insecure = true; /* 4096 connections: the slots, not the handshakes */
  broker_start(NULL);
  for (int i = 0; i < n; i++)
    conn_open(&idle[i]);
  /* The broker has accepted them all when one more is answered (and an
   * idle one was closed for it). */
  Gpupool__BrokerStatusReply *st = status(ALICE);
  CHECK_EQ_I(st->result, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  heartbeat(&c, &POOL02, NULL, NULL, 0);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  /* The oldest idle connections went (one per newcomer: status, the
   * server, the request). */
  idle[0].w.timeout_ms = 2000;
  CHECK_EQ_I(gp_wire_recv_header(&idle[0].w, &h), GP_ECLOSED);
  CHECK_TRUE(log_has("for a new one"));
  /* A registered server is never evicted: more newcomers take idle
   * peers' slots, and the server's connection still works. */
  for (int i = 0; i < 8; i++) {
    st = status(ADMIN);
    CHECK_EQ_U(st->n_servers, 1);
    if (st->n_servers == 1)
      CHECK_TRUE(st->servers[0]->up);
    protobuf_c_message_free_unpacked(&st->base, NULL);
  }
  heartbeat(&c, &POOL02, NULL, NULL, 0);
  {
    Gpupool__BrokerStatusRequest m = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
    ProtobufCMessage *rep = NULL;
    m.token.data = (uint8_t *)ADMIN;
    m.token.len = strlen(ADMIN);
    CHECK_EQ_I(call(&c, GP_MSG_BROKER_STATUS, &m.base, &rep), 0);
    if (rep)
      protobuf_c_message_free_unpacked(rep, NULL);
  }
  for (int i = 0; i < n; i++)
    conn_close(&idle[i]);
  conn_close(&c);
  broker_stop();
}

/* The command line and the config file: errors exit 2 and say why. */
static void sc_command_line(int argc, char **argv) {
  const char *bin = getenv("GPUPOOL_TEST_BROKER");
  char cmd[1024], out[2048];
  FILE *p;
  size_t n;
  int st;

  REQUIRE_TRUE(bin != NULL);
  /* A config with an unknown key on line 3. */
  char path[] = "/tmp/gp-brk-cl-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE_TRUE(fd >= 0);
  dprintf(fd, "[broker]\ngrant_key_file = /nonexistent\nfoo = 1\n");
  close(fd);
  snprintf(cmd, sizeof(cmd), "%s --config %s --listen 127.0.0.1:0 --insecure "
           "2>&1", bin, path);
  p = popen(cmd, "r");
  REQUIRE_TRUE(p != NULL);
  n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  st = pclose(p);
  CHECK_EQ_I(WEXITSTATUS(st), 2);
  CHECK_TRUE(strstr(out, ":3: unknown key 'foo' in [broker]") != NULL);
  unlink(path);
  snprintf(cmd, sizeof(cmd), "%s --listen 127.0.0.1:0 2>&1", bin);
  p = popen(cmd, "r");
  n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  CHECK_EQ_I(WEXITSTATUS(pclose(p)), 2);
  CHECK_TRUE(strstr(out, "--config FILE is required") != NULL);
  snprintf(cmd, sizeof(cmd), "%s --version 2>&1", bin);
  p = popen(cmd, "r");
  n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  CHECK_EQ_I(WEXITSTATUS(pclose(p)), 0);
  CHECK_TRUE(strncmp(out, "gpupool-broker ", 15) == 0);
}

/* ---- TLS (docs/security.md) ------------------------------------------------ */

/* Runs `gpupool-broker ARGS` (|args| a shell fragment) and returns its exit
 * status, its output in |out|. */
static int broker_cmd(const char *args, char *out, size_t len) {
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), "%s %s 2>&1", getenv("GPUPOOL_TEST_BROKER"),
           args);
  FILE *p = popen(cmd, "r");
  REQUIRE_TRUE(p != NULL);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  printf("$ gpupool-broker %s\n%s(status %d)\n", args, out,
         WEXITSTATUS(st));
  return WEXITSTATUS(st);
}

/* The TLS flags: what is required, what goes together, --insecure only on
 * loopback unless --insecure-any-address, the handshake timeout's range. */
static void sc_tls_flags(int argc, char **argv) {
  char out[4096], args[1536];
  const char *ca = gpt_cert("ca.pem", false);
  const char *crt = gpt_cert("broker.pem", false);
  const char *key = gpt_cert("broker.key", false);

  broker_start(NULL); /* for its config file */
  CHECK_EQ_I(broker_cmd("--config /nonexistent", out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "TLS is on by default: give --tls-cert and "
                         "--tls-key") != NULL);
  snprintf(args, sizeof(args), "--config %s --tls-cert %s --tls-key %s",
           B.conf, crt, key);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "--tls-ca FILE is required") != NULL);
  snprintf(args, sizeof(args), "--config %s --tls-cert %s --tls-ca %s",
           B.conf, crt, ca);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "go together") != NULL);
  snprintf(args, sizeof(args), "--config %s --insecure --listen 0.0.0.0:0",
           B.conf);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "--insecure-any-address") != NULL);
  snprintf(args, sizeof(args), "--config %s --insecure-any-address "
           "--tls-cert %s --tls-key %s --tls-ca %s", B.conf, crt, key, ca);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "goes with --insecure") != NULL);
  snprintf(args, sizeof(args), "--config %s --handshake-timeout 99 "
           "--tls-cert %s --tls-key %s --tls-ca %s", B.conf, crt, key, ca);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "--handshake-timeout") != NULL);
  /* A key that does not match its certificate (the CA's): refused at
   * start, exit 2. */
  snprintf(args, sizeof(args), "--config %s --listen 127.0.0.1:0 "
           "--tls-cert %s --tls-key %s --tls-ca %s", B.conf, crt,
           gpt_cert("server.key", false), ca);
  CHECK_EQ_I(broker_cmd(args, out, sizeof(out)), 2);
  CHECK_TRUE(strstr(out, "TLS") != NULL);
  broker_stop();
  /* --insecure on loopback: the warning line. */
  B_insecure = true;
  broker_start(NULL);
  CHECK_TRUE(log_has("WARNING: --insecure: plain TCP, no encryption, no "
                     "server authentication"));
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  CHECK_EQ_I(st->result, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  broker_stop();
}

/* Identities: a server registering with a certificate from another CA is
 * refused in the handshake; one with no client certificate is refused
 * with the mutual-TLS message; the broker serves the others meanwhile. */
static void sc_tls_identity(int argc, char **argv) {
  struct conn good, c;
  char msg[256];
  struct gp_frame_header h;

  broker_start(NULL);
  conn_open(&good);
  CHECK_EQ_I(do_register(&good, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  SSL_CTX *mine = peer_ctx;

  /* Another CA's server certificate (it trusts the pool's CA, so the
   * broker's certificate verifies; the broker refuses it). */
  peer_ctx = client_ctx(gpt_cert("ca.pem", false),
                        gpt_cert("server.pem", true),
                        gpt_cert("server.key", true));
  conn_open(&c); /* TLS 1.3: the client's side finishes first */
  int r = do_register(&c, &POOL02, 0, NULL, NULL, 0, msg, sizeof(msg));
  printf("registering with another CA's certificate: %d (%s)\n", r,
         gp_strerror(r));
  CHECK_TRUE(r == GP_ETLS || r == GP_ECLOSED || r == GP_EIO);
  conn_close(&c);
  SSL_CTX_free(peer_ctx);
  for (int i = 0; i < 500 && !log_has("TLS handshake failed"); i++)
    gpt_sleep_ms(10); /* the broker logs it after the client has seen it */
  CHECK_TRUE(log_has("TLS handshake failed"));

  /* No client certificate at all: the handshake is fine (clients have
   * none), the registration is not. */
  peer_ctx = client_ctx(gpt_cert("ca.pem", false), NULL, NULL);
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg, sizeof(msg)),
             GP_EAUTH);
  CHECK_STR_EQ(msg, "server registration needs mutual TLS: a client "
                    "certificate from the pool's CA");
  CHECK_EQ_I(gp_wire_recv_header(&c.w, &h), GP_ECLOSED);
  conn_close(&c);
  /* ... while such a client is served (status, a session). */
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  CHECK_EQ_U(st->n_servers, 1);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  heartbeat(&good, &POOL01, NULL, NULL, 0);
  CHECK_EQ_I(request(ALICE, GiB, 1, NULL, NULL, NULL, NULL, msg,
                     sizeof(msg)), 0);
  SSL_CTX_free(peer_ctx);
  peer_ctx = mine;

  /* A client that trusts another CA does not accept the broker. */
  {
    SSL_CTX *other = client_ctx(gpt_cert("ca.pem", true), NULL, NULL);
    struct gp_wire w;
    char why[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)B.s.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE_TRUE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK_EQ_I(gp_wire_init_tls_client(&w, fd, other, "127.0.0.1", 5000, why,
                                       sizeof(why)), GP_ETLS);
    printf("another CA: %s\n", why);
    CHECK_TRUE(strstr(why, "certificate verify failed") != NULL);
    close(fd);
    SSL_CTX_free(other);
  }
  /* The registered server was never disturbed. */
  fence(&good);
  conn_close(&good);
  broker_stop();
}

/* Runs the CLI's status against the broker; its exit status, its output
 * in |r|. |extra|: more arguments (NULL-ended, may be NULL). */
static int cli_status(struct gpt_run *r, const char *token_file,
                      const char *const *extra, const char *const *env) {
  const char *argv[16] = {getenv("GPUPOOL_TEST_CLI"), "status", "--broker",
                          B.s.addr, "--token-file", token_file};
  int n = 6;
  for (int i = 0; extra && extra[i] && n < 15; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  gpt_run(r, argv, env, 30);
  return r->status;
}

/* The CLI against the broker: the right CA, another CA, plain against TLS
 * and TLS against plain: each failure is one clear line, exit 3. */
static void sc_tls_cli(int argc, char **argv) {
  static struct gpt_run r;
  char tok[320];
  const char *ca = gpt_cert("ca.pem", false);
  char other_ca[512];
  snprintf(other_ca, sizeof(other_ca), "%s", gpt_cert("ca.pem", true));

  broker_start(NULL);
  snprintf(tok, sizeof(tok), "%s/admin.token", B.dir);
  FILE *f = fopen(tok, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "%s\n", ADMIN);
  fclose(f);
  chmod(tok, 0600);
  char env_ca[600];
  snprintf(env_ca, sizeof(env_ca), "GPUPOOL_TLS_CA=%s", ca);
  const char *env_ok[] = {env_ca, "GPUPOOL_INSECURE", "GPUPOOL_CONFIG",
                          NULL};
  CHECK_EQ_I(cli_status(&r, tok, NULL, env_ok), 0);
  CHECK_TRUE(strstr(r.out, "broker up") != NULL);
  /* --tls-ca wins over the environment. */
  const char *x1[] = {"--tls-ca", other_ca, NULL};
  CHECK_EQ_I(cli_status(&r, tok, x1, env_ok), 3);
  CHECK_TRUE(strstr(r.out, "the broker cannot be reached") != NULL);
  CHECK_TRUE(strstr(r.out, "certificate verify failed") != NULL);
  /* No CA at all: the system's store does not know the test CA. */
  const char *env_none[] = {"GPUPOOL_TLS_CA", "GPUPOOL_INSECURE",
                            "GPUPOOL_CONFIG", NULL};
  CHECK_EQ_I(cli_status(&r, tok, NULL, env_none), 3);
  CHECK_TRUE(strstr(r.out, "certificate verify failed") != NULL);
  /* Plain against TLS. */
  const char *x2[] = {"--insecure", NULL};
  CHECK_EQ_I(cli_status(&r, tok, x2, env_ok), 3);
  CHECK_TRUE(strstr(r.out, "is it running TLS?") != NULL);
  const char *env_plain[] = {env_ca, "GPUPOOL_INSECURE=1", "GPUPOOL_CONFIG",
                             NULL};
  CHECK_EQ_I(cli_status(&r, tok, NULL, env_plain), 3);
  CHECK_TRUE(strstr(r.out, "is it running TLS?") != NULL);
  for (int i = 0; i < 500 && !log_has("wrong version number"); i++)
    gpt_sleep_ms(10);
  CHECK_TRUE(log_has("wrong version number"));
  broker_stop();

  /* TLS against plain. */
  B_insecure = true;
  broker_start(NULL);
  snprintf(tok, sizeof(tok), "%s/admin.token", B.dir);
  f = fopen(tok, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "%s\n", ADMIN);
  fclose(f);
  chmod(tok, 0600);
  CHECK_EQ_I(cli_status(&r, tok, NULL, env_ok), 3);
  CHECK_TRUE(strstr(r.out, "--insecure") != NULL);
  CHECK_EQ_I(cli_status(&r, tok, NULL, env_plain), 0);
  unlink(tok);
  broker_stop();
}

/* SIGHUP reloads the certificate, key and CA for new connections: a
 * registered server stays registered on its connection; a reload that
 * fails keeps the material in use. */
static void sc_tls_reload(int argc, char **argv) {
  struct conn srv, c;
  char msg[256], cmd[2048];

  /* The broker's files are copies in its folder, to be replaced. */
  char dir[256];
  snprintf(dir, sizeof(dir), "%s/gpupool-brk-tls-XXXXXX",
           getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  char crt[320], key[320];
  snprintf(crt, sizeof(crt), "%s/broker.pem", dir);
  snprintf(key, sizeof(key), "%s/broker.key", dir);
  snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp '%s' '%s'",
           gpt_cert("broker.pem", false), crt, gpt_cert("broker.key", false),
           key);
  REQUIRE_TRUE(system(cmd) == 0);
  /* The default flags, then these: the later ones win. */
  const char *more[] = {"--tls-cert", crt, "--tls-key", key};
  memcpy(B_more, more, sizeof(more));
  broker_start(NULL);

  conn_open(&srv);
  CHECK_EQ_I(do_register(&srv, &POOL01, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  /* A good reload. */
  kill(B.s.pid, SIGHUP);
  for (int i = 0; i < 200 && !log_has("SIGHUP: reloaded"); i++)
    gpt_sleep_ms(10);
  CHECK_TRUE(log_has("SIGHUP: reloaded"));
  heartbeat(&srv, &POOL01, NULL, NULL, 0);
  fence(&srv);
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  const Gpupool__BrokerServerStatus *s = find_server(st, "pool01");
  if (CHECK_TRUE(s != NULL))
    CHECK_TRUE(s->up);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  /* A new server registers on a new connection under the new context. */
  conn_open(&c);
  CHECK_EQ_I(do_register(&c, &POOL02, 0, NULL, NULL, 0, msg, sizeof(msg)),
             0);
  /* A reload that fails (a key that is not a key): logged, the old
   * material kept: new connections still work, the servers stay. */
  FILE *f = fopen(key, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "not a key\n");
  fclose(f);
  kill(B.s.pid, SIGHUP);
  for (int i = 0; i < 200 && !log_has("cannot reload the TLS files"); i++)
    gpt_sleep_ms(10);
  CHECK_TRUE(log_has("cannot reload the TLS files"));
  st = status(ADMIN);
  CHECK_EQ_I(st->result, 0);
  CHECK_EQ_U(st->n_servers, 2);
  for (size_t i = 0; i < st->n_servers; i++)
    CHECK_TRUE(st->servers[i]->up);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  heartbeat(&srv, &POOL01, NULL, NULL, 0);
  fence(&srv);
  fence(&c);
  conn_close(&c);
  conn_close(&srv);
  memset(B_more, 0, sizeof(B_more));
  broker_stop();
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  CHECK_EQ_I(system(cmd), 0);
}

/* --handshake-timeout: a connection that never starts (or never ends) its
 * handshake is closed within the bound; the others are served. */
static void sc_tls_handshake_timeout(int argc, char **argv) {
  const char *more[] = {"--handshake-timeout", "500", NULL};
  memcpy(B_more, more, sizeof(more));
  broker_start(NULL);
  memset(B_more, 0, sizeof(B_more));
  int fds[2];
  double t0 = gpt_now();
  for (int k = 0; k < 2; k++) {
    fds[k] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)B.s.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE_TRUE(connect(fds[k], (struct sockaddr *)&sa, sizeof(sa)) == 0);
  }
  /* The second sends the start of a ClientHello and stops. */
  static const uint8_t partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  CHECK_EQ_I(write(fds[1], partial, sizeof(partial)), (long)sizeof(partial));
  /* Meanwhile a client is served. */
  Gpupool__BrokerStatusReply *st = status(ALICE);
  CHECK_EQ_I(st->result, 0);
  protobuf_c_message_free_unpacked(&st->base, NULL);
  for (int k = 0; k < 2; k++) {
    char buf[64];
    struct pollfd pf = {fds[k], POLLIN, 0};
    ssize_t n = 1;
    /* Until the end of the stream (an alert may come first). */
    while (n > 0 && poll(&pf, 1, 5000) == 1)
      n = read(fds[k], buf, sizeof(buf));
    double took = gpt_now() - t0;
    printf("silent connection %d closed after %.3f s\n", k, took);
    CHECK_EQ_I(n, 0);
    CHECK_GE_D(took, 0.45);
    CHECK_LE_D(took, 2.0);
    close(fds[k]);
  }
  for (int i = 0; i < 500 && !log_has("no TLS handshake within 500 ms"); i++)
    gpt_sleep_ms(10);
  CHECK_TRUE(log_has("no TLS handshake within 500 ms"));
  broker_stop();
}

/* Real pool servers against the TLS broker: one with another CA's
 * certificate is refused in the handshake (and says so in its log); one
 * running --insecure (plain) is told the broker speaks TLS; one with the
 * pool's certificate registers, and the broker served it throughout. */
static bool file_has(const char *path, const char *what, int ms) {
  double end = gpt_now() + ms / 1000.0;
  do {
    char buf[65536];
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      close(fd);
      buf[n > 0 ? n : 0] = '\0';
      if (strstr(buf, what))
        return true;
    }
    gpt_sleep_ms(20);
  } while (gpt_now() < end);
  return false;
}

static void server_with_log(struct gpt_server *srv, const char *log,
                            const char *const *extra) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE_TRUE(saved >= 0 && fd >= 0);
  dup2(fd, STDERR_FILENO);
  close(fd);
  int r = gpt_server_start(srv, extra);
  dup2(saved, STDERR_FILENO);
  close(saved);
  REQUIRE_TRUE(r == 0);
}

static void sc_tls_server_link(int argc, char **argv) {
  struct gpt_server good, other, plain;
  char logs[3][320];

  broker_start(NULL);
  for (int i = 0; i < 3; i++)
    snprintf(logs[i], sizeof(logs[i]), "%s/server%d.log", B.dir, i);
  const char *other_args[] = {
      "--broker", B.s.addr, "--name", "other", "--grant-key-file", B.key,
      "--tls-cert", gpt_cert("server.pem", true), "--tls-key",
      gpt_cert("server.key", true), "--tls-ca", gpt_cert("ca.pem", false),
      NULL};
  server_with_log(&other, logs[0], other_args);
  const char *plain_args[] = {"--broker", B.s.addr, "--name", "plain",
                              "--grant-key-file", B.key, "--insecure", NULL};
  server_with_log(&plain, logs[1], plain_args);
  const char *good_args[16] = {"--broker", B.s.addr, "--name", "good",
                               "--grant-key-file", B.key};
  good_args[gpt_pool_tls_args(good_args, 6)] = NULL;
  server_with_log(&good, logs[2], good_args);

  CHECK_TRUE(file_has(logs[2], "registered as 'good'", 10000));
  CHECK_TRUE(file_has(logs[0], "TLS with the broker failed", 10000));
  CHECK_TRUE(file_has(logs[1], "is it running TLS?", 10000));
  for (int i = 0; i < 500 && !log_has("TLS handshake failed"); i++)
    gpt_sleep_ms(10);
  CHECK_TRUE(log_has("TLS handshake failed"));
  Gpupool__BrokerStatusReply *st = status(ADMIN);
  CHECK_EQ_U(st->n_servers, 1);
  if (st->n_servers == 1) {
    CHECK_STR_EQ(st->servers[0]->name, "good");
    CHECK_TRUE(st->servers[0]->up);
  }
  protobuf_c_message_free_unpacked(&st->base, NULL);
  CHECK_EQ_I(gpt_server_stop(&other, 5000), 0);
  CHECK_EQ_I(gpt_server_stop(&plain, 5000), 0);
  CHECK_EQ_I(gpt_server_stop(&good, 5000), 0);
  for (int i = 0; i < 3; i++) {
    if (gpt_checks_failed() == 0)
      unlink(logs[i]);
    else
      fprintf(stderr, "server log kept: %s\n", logs[i]);
  }
  broker_stop();
}

static const struct gpt_scenario scenarios[] = {
  {"register", sc_register, 60},
  {"grant", sc_grant, 60},
  {"status", sc_status, 60},
  {"drain", sc_drain, 60},
  {"malformed", sc_malformed, 60},
  {"down", sc_down, 60},
  {"expiry", sc_expiry, 60},
  {"command_line", sc_command_line, 60},
  {"flood", sc_flood, 90},
  {"slots", sc_slots, 90},
  {"tls_flags", sc_tls_flags, 60},
  {"tls_identity", sc_tls_identity, 60},
  {"tls_cli", sc_tls_cli, 90},
  {"tls_reload", sc_tls_reload, 60},
  {"tls_handshake_timeout", sc_tls_handshake_timeout, 60},
  {"tls_server_link", sc_tls_server_link, 60},
  {"tls_flood", sc_tls_flood, 90},
  {NULL, NULL, 0},
};

int main(int argc, char **argv) {
  return gpt_main(argc, argv, scenarios);
}
