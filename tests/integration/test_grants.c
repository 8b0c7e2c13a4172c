/* The pool server's side of the broker (docs/broker.md, docs/server.md
 * "The pool"): grant admission, the grant's memory limit, --idle-timeout,
 * and the broker link.
 *
 * The scenarios start their own server with a grant key they write (mode
 * 0600), its stderr (the log) in a file they read, and speak the wire
 * protocol directly where a grant is needed: they sign grants themselves
 * with protocol/grant.c, as the broker would. The broker link is checked
 * against a stand-in broker in this file that speaks the real frames:
 * it accepts the server's connection, checks its BROKER_REGISTER (the
 * auth verifies under the key, the GPUs, labels and advertised address),
 * answers it, and reads the heartbeats and session ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "gpupool/errors.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "harness.h"
#include "raw.h"
#include "msg.h"
#include "tls.h"
#include "wire.h"

#define SERVER_NAME "pool01"
#define MiB (1ull << 20)

static struct gpt_server server;
static char dir[256], keypath[300], logpath[300];
static uint8_t key[64];
static char gpu[64]; /* the offered device's UUID string */

/* ---- The server ------------------------------------------------------------ */

/* Writes a key file (64 hex digits and a newline, mode 0600). */
static void write_key(void) {
  static const char hex[] = "0123456789abcdef";
  snprintf(dir, sizeof dir, "/tmp/gpt_grants_XXXXXX");
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  snprintf(keypath, sizeof keypath, "%s/grant.key", dir);
  snprintf(logpath, sizeof logpath, "%s/server.log", dir);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)hex[rand() & 15];
  int fd = open(keypath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE_TRUE(fd >= 0);
  REQUIRE_TRUE(write(fd, key, sizeof key) == (ssize_t)sizeof key);
  REQUIRE_TRUE(write(fd, "\n", 1) == 1);
  close(fd);
}

/* The whole log so far, NUL-terminated (the caller frees it). */
static char *read_log(void) {
  FILE *f = fopen(logpath, "r");
  if (f == NULL) return calloc(1, 1);
  size_t cap = 1 << 16, len = 0;
  char *buf = gpt_xmalloc(cap + 1);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      cap *= 2;
      char *nb = realloc(buf, cap + 1);
      REQUIRE_TRUE(nb != NULL);
      buf = nb;
    }
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

/* True once the log holds |what| (waits up to |ms|). */
static bool log_has(const char *what, int ms) {
  double end = gpt_now() + ms / 1000.0;
  for (;;) {
    char *log = read_log();
    bool found = strstr(log, what) != NULL;
    free(log);
    if (found) return true;
    if (gpt_now() >= end) return false;
    gpt_sleep_ms(20);
  }
}

/* Starts the server with |extra| and its stderr in logpath; learns the
 * offered device's UUID from its start-up line. */
static void start(const char *const *extra) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
  REQUIRE_TRUE(saved >= 0 && fd >= 0);
  dup2(fd, STDERR_FILENO);
  close(fd);
  int r = gpt_server_start(&server, extra);
  dup2(saved, STDERR_FILENO);
  close(saved);
  REQUIRE_TRUE(r == 0);
  REQUIRE_TRUE(log_has("offering device 0: ", 5000));
  char *log = read_log();
  const char *p = strstr(log, "offering device 0: ");
  REQUIRE_TRUE(p != NULL);
  p += strlen("offering device 0: ");
  size_t n = strcspn(p, " ");
  REQUIRE_TRUE(n == 40);
  memcpy(gpu, p, n);
  gpu[n] = '\0';
  free(log);
}

static void start_with_key(const char *idle) {
  write_key();
  const char *extra[] = {"--name", SERVER_NAME, "--grant-key-file", keypath,
                         idle ? "--idle-timeout" : NULL, idle, NULL};
  start(extra);
}

/* ---- Grants and raw sessions --------------------------------------------------- */

struct grant_spec {
  uint64_t session_id;
  const char *server;
  const char *gpu;
  uint64_t limit;
  int64_t expires_in; /* seconds from now */
  bool forge;         /* flip a bit of the MAC */
};

static uint64_t fresh_id(void) {
  static uint64_t n;
  return ((uint64_t)getpid() << 32) ^ ((uint64_t)time(NULL) << 8) ^ ++n;
}

/* The client's binding key (docs/security.md): grants name its public
 * half, HELLO carries a proof made with |proof_priv| (the private half,
 * unless a scenario swaps in another key's). */
static uint8_t bind_priv[GP_BINDING_KEY_LEN], bind_pub[GP_BINDING_KEY_LEN];
static const uint8_t *proof_priv = bind_priv;
static bool bind_made;

/* Signs a grant as the broker would: |*out| (free it), |*len|. */
static void sign(const struct grant_spec *s, uint8_t **out, size_t *len) {
  Gpupool__Grant g = GPUPOOL__GRANT__INIT;
  uint8_t nonce[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  if (!bind_made)
    REQUIRE_TRUE(gp_binding_keypair(bind_priv, bind_pub) == 0);
  bind_made = true;
  g.version = GP_GRANT_VERSION;
  g.binding_key.data = bind_pub;
  g.binding_key.len = sizeof bind_pub;
  g.session_id = s->session_id;
  g.tenant = "alice";
  g.server = (char *)s->server;
  g.gpu_uuid = (char *)s->gpu;
  g.memory_limit = s->limit;
  g.issued_unix = (uint64_t)time(NULL);
  g.expires_unix = (uint64_t)((int64_t)time(NULL) + s->expires_in);
  g.nonce.data = nonce;
  g.nonce.len = sizeof nonce;
  REQUIRE_TRUE(gp_grant_sign(key, sizeof key, &g, out, len) == 0);
  if (s->forge) (*out)[*len - 1] ^= 1;
}

static void raw_open(struct gpt_raw *r) {
  REQUIRE_TRUE(gpt_raw_open(r, server.port, 20000));
}


/* One request and its reply: the result, the reply in |*rep| if asked
 * for; -1 when the connection failed (gpt_raw_call). */
static int raw_call(struct gpt_raw *r, uint16_t type, const ProtobufCMessage *m,
                    ProtobufCMessage **rep) {
  int res = gpt_raw_call(r, type, m, NULL, 0, NULL, 0, rep);
  return res == GPT_RAW_FAILED ? -1 : res;
}

/* HELLO with |grant| (may be NULL): the reply's result, its message into
 * |msg| and session id into |*sid|. */
static int raw_hello(struct gpt_raw *r, const uint8_t *grant, size_t len,
                     char *msg, size_t msglen, uint64_t *sid) {
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  hello.min_version = GP_PROTOCOL_VERSION_MIN;
  hello.max_version = GP_PROTOCOL_VERSION_MAX;
  hello.client_name = "test_grants";
  hello.hostname = "localhost";
  hello.grant.data = (uint8_t *)grant;
  hello.grant.len = grant ? len : 0;
  /* The proof over this connection's exporter (32 zero bytes on plain
   * TCP), signed with the binding key. */
  uint8_t proof[GP_GRANT_PROOF_LEN], ex[GP_GRANT_EXPORTER_LEN] = {0};
  if (grant != NULL) {
    if (!bind_made)
      REQUIRE_TRUE(gp_binding_keypair(bind_priv, bind_pub) == 0);
    bind_made = true;
    if (gp_wire_is_tls(&r->w))
      REQUIRE_TRUE(gp_wire_tls_exporter(&r->w, ex) == 0);
    REQUIRE_TRUE(gp_grant_proof(proof_priv, ex, grant, len, proof) == 0);
    hello.grant_proof.data = proof;
    hello.grant_proof.len = sizeof proof;
  }
  int res = raw_call(r, GP_MSG_HELLO, &hello.base, &m);
  if (msg) msg[0] = '\0';
  if (m != NULL) {
    const Gpupool__HelloReply *rep = (const void *)m;
    if (msg) snprintf(msg, msglen, "%s", rep->message ? rep->message : "");
    if (sid) *sid = rep->session_id;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  return res;
}

/* True when the server has closed the connection (reads EOF). */
static bool raw_closed(struct gpt_raw *r) {
  struct gp_frame_header h;
  r->w.timeout_ms = 5000;
  return gp_wire_recv_header(&r->w, &h) == GP_ECLOSED;
}

static int raw_ctx(struct gpt_raw *r, uint64_t ctx) {
  Gpupool__CtxCreate m = GPUPOOL__CTX_CREATE__INIT;
  m.ctx = ctx;
  return raw_call(r, GP_MSG_CTX_CREATE, &m.base, NULL);
}

static int raw_ctx_destroy(struct gpt_raw *r, uint64_t ctx) {
  Gpupool__CtxDestroy m = GPUPOOL__CTX_DESTROY__INIT;
  m.ctx = ctx;
  return raw_call(r, GP_MSG_CTX_DESTROY, &m.base, NULL);
}

static int raw_alloc(struct gpt_raw *r, uint64_t ctx, uint64_t size,
                     uint64_t *dptr) {
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  ProtobufCMessage *rep = NULL;
  m.ctx = ctx;
  m.size = size;
  int res = raw_call(r, GP_MSG_MEM_ALLOC, &m.base, &rep);
  if (rep && dptr) *dptr = ((Gpupool__MemAllocReply *)rep)->dptr;
  if (rep) protobuf_c_message_free_unpacked(rep, NULL);
  return res;
}

static int raw_alloc_pitch(struct gpt_raw *r, uint64_t ctx, uint64_t width,
                           uint64_t height, uint64_t *dptr, uint64_t *pitch) {
  Gpupool__MemAllocPitch m = GPUPOOL__MEM_ALLOC_PITCH__INIT;
  ProtobufCMessage *rep = NULL;
  m.ctx = ctx;
  m.width = width;
  m.height = height;
  m.element_size = 4;
  int res = raw_call(r, GP_MSG_MEM_ALLOC_PITCH, &m.base, &rep);
  if (rep && res == 0) {
    *dptr = ((Gpupool__MemAllocPitchReply *)rep)->dptr;
    *pitch = ((Gpupool__MemAllocPitchReply *)rep)->pitch;
  }
  if (rep) protobuf_c_message_free_unpacked(rep, NULL);
  return res;
}

static int raw_free(struct gpt_raw *r, uint64_t dptr) {
  Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
  m.dptr = dptr;
  return raw_call(r, GP_MSG_MEM_FREE, &m.base, NULL);
}

static int raw_info(struct gpt_raw *r, uint64_t ctx, uint64_t *fr,
                    uint64_t *total) {
  Gpupool__MemGetInfo m = GPUPOOL__MEM_GET_INFO__INIT;
  ProtobufCMessage *rep = NULL;
  m.ctx = ctx;
  int res = raw_call(r, GP_MSG_MEM_GET_INFO, &m.base, &rep);
  if (rep && res == 0) {
    *fr = ((Gpupool__MemGetInfoReply *)rep)->free;
    *total = ((Gpupool__MemGetInfoReply *)rep)->total;
  }
  if (rep) protobuf_c_message_free_unpacked(rep, NULL);
  return res;
}

/* MODULE_LOAD of PTX |ptx| (with its image) as |module| in |ctx|: the
 * result, the reply's message into |msg|. */
static int raw_module(struct gpt_raw *r, uint64_t ctx, uint64_t module,
                      const char *ptx, char *msg, size_t msglen) {
  Gpupool__ModuleLoad m = GPUPOOL__MODULE_LOAD__INIT;
  uint8_t digest[SHA256_DIGEST_LENGTH];
  size_t len = strlen(ptx) + 1;
  SHA256((const unsigned char *)ptx, len, digest);
  m.ctx = ctx;
  m.module = module;
  m.sha256.data = digest;
  m.sha256.len = sizeof digest;
  m.image_size = len;
  m.has_image = true;
  uint32_t id = r->next++;
  if (gp_wire_send(&r->w, GP_MSG_MODULE_LOAD, 0, id, &m.base, ptx, len) != 0 ||
      gp_wire_flush(&r->w) != 0)
    return -1;
  for (;;) {
    struct gp_frame_header h;
    ProtobufCMessage *rep = NULL;
    if (gp_wire_recv_header(&r->w, &h) != 0) return -1;
    if (gp_wire_recv_msg(&r->w, &h, &rep) != 0) return -1;
    if (!(h.flags & GP_FRAME_F_REPLY)) {
      protobuf_c_message_free_unpacked(rep, NULL);
      continue;
    }
    const Gpupool__ModuleLoadReply *mr = (const void *)rep;
    int res = mr->result;
    if (msg) snprintf(msg, msglen, "%s", mr->message ? mr->message : "");
    protobuf_c_message_free_unpacked(rep, NULL);
    return res;
  }
}

static int raw_unload(struct gpt_raw *r, uint64_t module) {
  Gpupool__ModuleUnload m = GPUPOOL__MODULE_UNLOAD__INIT;
  m.module = module;
  return raw_call(r, GP_MSG_MODULE_UNLOAD, &m.base, NULL);
}

/* Launches kernel |name| (no parameters) of |module| on one thread. */
static int raw_launch(struct gpt_raw *r, uint64_t ctx, uint64_t module,
                      const char *name, uint64_t function) {
  Gpupool__ModuleGetFunction f = GPUPOOL__MODULE_GET_FUNCTION__INIT;
  f.module = module;
  f.name = (char *)name;
  f.function = function;
  int res = raw_call(r, GP_MSG_MODULE_GET_FUNCTION, &f.base, NULL);
  if (res != CUDA_SUCCESS) return res;
  Gpupool__LaunchKernel l = GPUPOOL__LAUNCH_KERNEL__INIT;
  l.ctx = ctx;
  l.function = function;
  l.grid_x = l.grid_y = l.grid_z = 1;
  l.block_x = l.block_y = l.block_z = 1;
  return raw_call(r, GP_MSG_LAUNCH_KERNEL, &l.base, NULL);
}

static const char trap_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry boom()\n{\n  trap;\n  ret;\n}\n";

/* A module whose one global takes 32 MiB of device memory. */
static const char big_global_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .global .align 8 .b8 big[33554432];\n"
    ".visible .entry touch()\n{\n  ret;\n}\n";

/* A HELLO with grant |s| on a new connection; returns its result and
 * message. The connection stays open in |r|. */
static int hello_with(struct gpt_raw *r, const struct grant_spec *s, char *msg,
                      size_t msglen, uint64_t *sid) {
  uint8_t *g = NULL;
  size_t len = 0;
  sign(s, &g, &len);
  raw_open(r);
  int res = raw_hello(r, g, len, msg, msglen, sid);
  free(g);
  return res;
}

/* The scenario's folder goes at its end when every check passed (its log
 * stays for a failure to be read; the harness ends with _exit). */
static void cleanup(void) {
  char path[400];
  if (dir[0] == '\0' || gpt_checks_failed() != 0) return;
  unlink(keypath);
  unlink(logpath);
  snprintf(path, sizeof path, "%s/open.key", dir);
  unlink(path);
  rmdir(dir);
}

/* ---- Scenarios --------------------------------------------------------------------- */

/* A valid grant is admitted, under its session id; the same grant again is
 * refused (replay), on a new connection, while the first still runs and
 * after it ended. */
static void scenario_admit(int argc, char **argv) {
  start_with_key(NULL);
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 256 * MiB, 60, false};
  uint8_t *g = NULL;
  size_t len = 0;
  sign(&s, &g, &len);
  struct gpt_raw a, b, c;
  char msg[256];
  uint64_t sid = 0;
  raw_open(&a);
  CHECK_EQ_I(raw_hello(&a, g, len, msg, sizeof msg, &sid), CUDA_SUCCESS);
  CHECK_EQ_U(sid, s.session_id);
  CHECK_EQ_I(raw_ctx(&a, 1), CUDA_SUCCESS);
  CHECK_TRUE(log_has("admitted as", 5000));

  raw_open(&b);
  CHECK_EQ_I(raw_hello(&b, g, len, msg, sizeof msg, NULL),
             CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(msg, "grant already used") != NULL);
  CHECK_TRUE(raw_closed(&b));
  gpt_raw_close(&b);

  gpt_raw_close(&a);
  CHECK_TRUE(log_has("exited with status 0 (session ended)", 5000));
  raw_open(&c);
  CHECK_EQ_I(raw_hello(&c, g, len, msg, sizeof msg, NULL),
             CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(msg, "grant already used") != NULL);
  gpt_raw_close(&c);
  free(g);
  CHECK_TRUE(log_has("exited with status 7 (grant refused)", 5000));
  cleanup();
}

/* Each bad grant is refused with the message naming the failed check,
 * logged, and the worker exits. */
static void scenario_refusals(int argc, char **argv) {
  start_with_key(NULL);
  struct {
    struct grant_spec s;
    const char *want;
  } cases[] = {
    {{fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, true},
     "grant signature does not verify"},
    {{fresh_id(), SERVER_NAME, gpu, 64 * MiB, -12, false}, "grant expired "},
    {{fresh_id(), "pool02", gpu, 64 * MiB, 60, false},
     "grant for server pool02, this is " SERVER_NAME},
    {{fresh_id(), SERVER_NAME, "GPU-00000000-1111-2222-3333-444444444444",
      64 * MiB, 60, false},
     "grant for GPU GPU-00000000-1111-2222-3333-444444444444, which server "
     SERVER_NAME " does not offer"},
  };
  char msg[320];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gpt_raw r;
    CHECK_EQ_I(hello_with(&r, &cases[i].s, msg, sizeof msg, NULL),
               CUDA_ERROR_NOT_PERMITTED);
    if (!CHECK_TRUE(strstr(msg, cases[i].want) != NULL))
      fprintf(stderr, "    case %zu: message '%s'\n", i, msg);
    CHECK_TRUE(raw_closed(&r));
    gpt_raw_close(&r);
  }
  /* No grant at all. */
  struct gpt_raw r;
  raw_open(&r);
  CHECK_EQ_I(raw_hello(&r, NULL, 0, msg, sizeof msg, NULL),
             CUDA_ERROR_NOT_PERMITTED);
  CHECK_STR_EQ(msg, "no grant: this server admits sessions only through the "
                    "broker");
  CHECK_TRUE(raw_closed(&r));
  gpt_raw_close(&r);
  /* A garbled grant (not even a MAC's length). */
  uint8_t junk[8] = {1, 2, 3};
  raw_open(&r);
  CHECK_EQ_I(raw_hello(&r, junk, sizeof junk, msg, sizeof msg, NULL),
             CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(msg, "malformed") != NULL);
  gpt_raw_close(&r);
  CHECK_TRUE(log_has("refused: grant signature does not verify", 5000));
  CHECK_TRUE(log_has("refused: no grant", 5000));
  /* Six workers, each ended with GP_EXIT_REFUSED. */
  double end = gpt_now() + 5;
  int n = 0;
  while (gpt_now() < end) {
    char *log = read_log();
    n = 0;
    for (char *p = log; (p = strstr(p, "exited with status 7 (grant "
                                       "refused)")) != NULL; p++)
      n++;
    free(log);
    if (n >= 6) break;
    gpt_sleep_ms(20);
  }
  CHECK_EQ_I(n, 6);
  /* A good grant with a proof made by another key than the one it names
   * is not bound to this connection; the grant is not used up by it. */
  uint8_t other_priv[GP_BINDING_KEY_LEN], other_pub[GP_BINDING_KEY_LEN];
  REQUIRE_TRUE(gp_binding_keypair(other_priv, other_pub) == 0);
  struct grant_spec ok = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  proof_priv = other_priv;
  CHECK_EQ_I(hello_with(&r, &ok, msg, sizeof msg, NULL),
             CUDA_ERROR_NOT_PERMITTED);
  CHECK_STR_EQ(msg, "grant not bound to this connection");
  CHECK_TRUE(raw_closed(&r));
  gpt_raw_close(&r);
  proof_priv = bind_priv;
  /* A grant of version 1 (an older broker's: no binding key). */
  {
    Gpupool__Grant g1 = GPUPOOL__GRANT__INIT;
    uint8_t *b1 = NULL;
    size_t l1 = 0;
    g1.version = 1;
    g1.session_id = fresh_id();
    g1.tenant = "alice";
    g1.server = SERVER_NAME;
    g1.gpu_uuid = gpu;
    g1.memory_limit = 64 * MiB;
    g1.expires_unix = (uint64_t)time(NULL) + 60;
    REQUIRE_TRUE(gp_grant_sign(key, sizeof key, &g1, &b1, &l1) == 0);
    raw_open(&r);
    CHECK_EQ_I(raw_hello(&r, b1, l1, msg, sizeof msg, NULL),
               CUDA_ERROR_NOT_PERMITTED);
    CHECK_STR_EQ(msg, "grant version 1 is not 3");
    gpt_raw_close(&r);
    free(b1);
  }
  /* A later valid grant still works: the same one, its proof right. */
  CHECK_EQ_I(hello_with(&r, &ok, msg, sizeof msg, NULL), CUDA_SUCCESS);
  gpt_raw_close(&r);
  cleanup();
}

/* The grant's memory limit: allocations over it fail without reaching the
 * backend, frees and context destruction give it back, MEM_GET_INFO shows
 * it. */
static void scenario_memory_limit(int argc, char **argv) {
  start_with_key(NULL);
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  struct gpt_raw r;
  char msg[256];
  REQUIRE_TRUE(hello_with(&r, &s, msg, sizeof msg, NULL) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_ctx(&r, 1) == CUDA_SUCCESS);
  uint64_t fr = 0, total = 0, a = 0, b = 0, c = 0, pitch = 0;
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(total, 64 * MiB);
  CHECK_EQ_U(fr, 64 * MiB);
  CHECK_EQ_I(raw_alloc(&r, 1, 48 * MiB, &a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 32 * MiB, &b), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(total, 64 * MiB);
  CHECK_EQ_U(fr, 16 * MiB);
  /* Exactly up to the limit, then not a byte more. */
  CHECK_EQ_I(raw_alloc(&r, 1, 16 * MiB, &b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 1, &c), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_EQ_I(raw_free(&r, b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 32 * MiB, &b), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_EQ_I(raw_free(&r, a), CUDA_SUCCESS);
  /* A freed pointer freed again is the backend's error, and changes no
   * count. */
  CHECK_NE_I(raw_free(&r, a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 32 * MiB, &b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 32 * MiB);
  /* Pitched: pitch * height counts. */
  CHECK_EQ_I(raw_alloc_pitch(&r, 1, 4000, 4096, &c, &pitch), CUDA_SUCCESS);
  CHECK_GE_U(pitch, 4000);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  /* Rounded up to 2 MiB (docs/broker.md, "Grants"). */
  CHECK_EQ_U(fr, 32 * MiB - (pitch * 4096 + 2 * MiB - 1) / (2 * MiB) *
                                (2 * MiB));
  CHECK_EQ_I(raw_alloc_pitch(&r, 1, 8192, 8192, &a, &pitch),
             CUDA_ERROR_OUT_OF_MEMORY);
  /* Destroying the context gives back all of it. */
  CHECK_EQ_I(raw_ctx_destroy(&r, 1), CUDA_SUCCESS);
  CHECK_EQ_I(raw_ctx(&r, 2), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 2, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 64 * MiB);
  CHECK_EQ_I(raw_alloc(&r, 2, 60 * MiB, &a), CUDA_SUCCESS);
  gpt_raw_close(&r);
  cleanup();
}

/* A context that faulted keeps its memory counted: creating and destroying
 * another context gives back only that one's (the worker once pruned every
 * allocation whose lookup failed, and a faulted context's lookups fail),
 * and destroying the faulted one gives back exactly its own. */
static void scenario_limit_fault(int argc, char **argv) {
  start_with_key(NULL);
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  struct gpt_raw r;
  char msg[256];
  uint64_t a = 0, b = 0, fr = 0, total = 0;
  REQUIRE_TRUE(hello_with(&r, &s, msg, sizeof msg, NULL) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_ctx(&r, 1) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_ctx(&r, 3) == CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 48 * MiB, &a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 3, 8 * MiB, &b), CUDA_SUCCESS);
  REQUIRE_TRUE(raw_module(&r, 1, 10, trap_ptx, msg, sizeof msg) ==
               CUDA_SUCCESS);
  CHECK_EQ_I(raw_launch(&r, 1, 10, "boom", 11), CUDA_ERROR_LAUNCH_FAILED);
  /* Context 1 is faulted: its memory cannot be freed, and stays counted. */
  CHECK_NE_I(raw_free(&r, a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_ctx(&r, 2), CUDA_SUCCESS);
  CHECK_EQ_I(raw_ctx_destroy(&r, 2), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 3, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 8 * MiB);
  CHECK_EQ_I(raw_alloc(&r, 3, 16 * MiB, &b), CUDA_ERROR_OUT_OF_MEMORY);
  /* Destroying context 1 gives back its 48 MiB, not context 3's 8. */
  CHECK_EQ_I(raw_ctx_destroy(&r, 1), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 3, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 56 * MiB);
  CHECK_EQ_I(raw_alloc(&r, 3, 56 * MiB, &b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 3, 1, &b), CUDA_ERROR_OUT_OF_MEMORY);
  gpt_raw_close(&r);
  cleanup();
}

/* Device memory besides allocations: each allocation counts rounded up
 * (512 bytes below 2 MiB, 2 MiB from there), a session under a limit has
 * at most 8 contexts, and a module's globals count from its load to its
 * unload (a load they do not fit is refused). */
static void scenario_limit_other(int argc, char **argv) {
  start_with_key(NULL);
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  struct gpt_raw r;
  char msg[256];
  uint64_t a = 0, b = 0, fr = 0, total = 0;
  REQUIRE_TRUE(hello_with(&r, &s, msg, sizeof msg, NULL) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_ctx(&r, 1) == CUDA_SUCCESS);
  CHECK_EQ_I(raw_alloc(&r, 1, 1, &a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 64 * MiB - 512);
  CHECK_EQ_I(raw_alloc(&r, 1, 2 * MiB + 1, &b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 60 * MiB - 512);
  CHECK_EQ_I(raw_free(&r, a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_free(&r, b), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 64 * MiB);

  /* Contexts: 8 at most; destroying one makes room. */
  for (uint64_t c = 2; c <= 8; c++) CHECK_EQ_I(raw_ctx(&r, c), CUDA_SUCCESS);
  CHECK_EQ_I(raw_ctx(&r, 9), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_EQ_I(raw_ctx_destroy(&r, 8), CUDA_SUCCESS);
  CHECK_EQ_I(raw_ctx(&r, 9), CUDA_SUCCESS);

  /* Globals: 32 MiB do not fit beside 48 MiB allocated. */
  CHECK_EQ_I(raw_alloc(&r, 1, 48 * MiB, &a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_module(&r, 1, 20, big_global_ptx, msg, sizeof msg),
             CUDA_ERROR_OUT_OF_MEMORY);
  if (!CHECK_TRUE(strstr(msg, "do not fit in the session's memory limit") !=
                  NULL))
    fprintf(stderr, "    message '%s'\n", msg);
  /* The refused module was unloaded: its id is free again. */
  CHECK_EQ_I(raw_free(&r, a), CUDA_SUCCESS);
  CHECK_EQ_I(raw_module(&r, 1, 20, big_global_ptx, msg, sizeof msg),
             CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 32 * MiB);
  CHECK_EQ_I(raw_alloc(&r, 1, 48 * MiB, &a), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_EQ_I(raw_unload(&r, 20), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 64 * MiB);
  /* A module's globals go with its context too. */
  CHECK_EQ_I(raw_module(&r, 2, 21, big_global_ptx, msg, sizeof msg),
             CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 32 * MiB);
  CHECK_EQ_I(raw_ctx_destroy(&r, 2), CUDA_SUCCESS);
  CHECK_EQ_I(raw_info(&r, 1, &fr, &total), CUDA_SUCCESS);
  CHECK_EQ_U(fr, 64 * MiB);
  gpt_raw_close(&r);
  cleanup();
}

/* --idle-timeout 2: a client that sends half a frame header and stops is
 * reclaimed (its read is bounded), within about 4 s. */
static void scenario_idle_stall(int argc, char **argv) {
  snprintf(dir, sizeof dir, "/tmp/gpt_grants_XXXXXX");
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  snprintf(logpath, sizeof logpath, "%s/server.log", dir);
  const char *extra[] = {"--idle-timeout", "2", NULL};
  start(extra);
  struct gpt_raw r;
  raw_open(&r);
  REQUIRE_TRUE(raw_hello(&r, NULL, 0, NULL, 0, NULL) == CUDA_SUCCESS);
  uint8_t half[5] = {'G', 'P', 'P', 'L', 1};
  /* Through the transport: over TLS, a record holding the 5 bytes. */
  struct iovec iov = {.iov_base = half, .iov_len = sizeof half};
  REQUIRE_TRUE(r.w.ops->writev(r.w.ctx, &iov, 1) == (long)sizeof half);
  double t0 = gpt_now();
  struct gp_frame_header h;
  r.w.timeout_ms = 10000;
  int got = gp_wire_recv_header(&r.w, &h);
  double waited = gpt_now() - t0;
  CHECK_TRUE(got == 0 || got == GP_ECLOSED);
  if (got == 0) CHECK_EQ_I(h.type, GP_MSG_PROTOCOL_ERROR);
  CHECK_LE_D(waited, 4.0);
  CHECK_GE_D(waited, 1.5);
  CHECK_TRUE(log_has("a frame stalled for 2 s", 5000));
  CHECK_TRUE(log_has("exited with status 6 (reclaimed idle)", 5000));
  gpt_raw_close(&r);
  cleanup();
}

/* --idle-timeout 2 with the client library (no grants): a client idle for
 * 4 s gets CUDA_ERROR_DEVICE_UNAVAILABLE at its next call; the log says
 * why and the worker's status. */
static void scenario_idle_client(int argc, char **argv) {
  snprintf(dir, sizeof dir, "/tmp/gpt_grants_XXXXXX");
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  snprintf(logpath, sizeof logpath, "%s/server.log", dir);
  const char *extra[] = {"--idle-timeout", "2", NULL};
  start(extra);
  CUdevice dev;
  gpt_init_context(&dev);
  CUdeviceptr p = 0;
  CHECK_OK(cuMemAlloc(&p, 1 << 20));
  /* Requests every 300 ms for 3 s keep it (synchronous ones: the library
   * holds asynchronous ones back until something waits); gaps far below
   * the timeout, so a slow machine cannot make one look idle. */
  for (int i = 0; i < 10; i++) {
    gpt_sleep_ms(300);
    CHECK_OK(cuMemsetD8(p, 1, 1 << 20));
    CHECK_OK(cuCtxSynchronize());
  }
  gpt_sleep_ms(4000);
  /* A call that waits for the server's answer. */
  size_t fr = 0, total = 0;
  CHECK_CU(cuMemGetInfo(&fr, &total), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_TRUE(log_has("session reclaimed after 2 s idle (--idle-timeout)",
                     5000));
  CHECK_TRUE(log_has("exited with status 6 (reclaimed idle)", 5000));
  cleanup();
}

/* The same, speaking the protocol: the ProtocolError frame carries
 * GP_EIDLE and the message; a grant's session too. */
static void scenario_idle_raw(int argc, char **argv) {
  start_with_key("1");
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  struct gpt_raw r;
  char msg[256];
  REQUIRE_TRUE(hello_with(&r, &s, msg, sizeof msg, NULL) == CUDA_SUCCESS);
  double t0 = gpt_now();
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  r.w.timeout_ms = 5000;
  REQUIRE_TRUE(gp_wire_recv_header(&r.w, &h) == 0);
  double waited = gpt_now() - t0;
  CHECK_GE_D(waited, 0.9);
  CHECK_LE_D(waited, 3.0);
  CHECK_EQ_I(h.type, GP_MSG_PROTOCOL_ERROR);
  REQUIRE_TRUE(gp_wire_recv_msg(&r.w, &h, &m) == 0);
  const Gpupool__ProtocolError *pe = (const void *)m;
  CHECK_EQ_I(pe->code, GP_EIDLE);
  CHECK_STR_EQ(pe->message,
               "session reclaimed after 1 s idle (--idle-timeout)");
  protobuf_c_message_free_unpacked(m, NULL);
  CHECK_TRUE(raw_closed(&r));
  gpt_raw_close(&r);
  CHECK_TRUE(log_has("exited with status 6 (reclaimed idle)", 5000));
  cleanup();
}

/* ---- The stand-in broker ---------------------------------------------------------- */

struct fake_broker {
  int lfd;
  int port;
};

static void broker_listen(struct fake_broker *b) {
  b->lfd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE_TRUE(b->lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  REQUIRE_TRUE(bind(b->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
  REQUIRE_TRUE(listen(b->lfd, 4) == 0);
  REQUIRE_TRUE(getsockname(b->lfd, (struct sockaddr *)&sa, &sl) == 0);
  b->port = ntohs(sa.sin_port);
}

/* The stand-in speaks TLS as the broker does, with the broker's test
 * certificate, and requires the server's client certificate (mutual TLS:
 * docs/security.md). */
static SSL_CTX *broker_ctx(void) {
  static SSL_CTX *ctx;
  if (ctx == NULL) {
    struct gp_tls_pem pem;
    char why[512];
    REQUIRE_TRUE(gp_tls_pem_load(&pem, gpt_cert("broker.pem", false),
                                 gpt_cert("broker.key", false),
                                 gpt_cert("ca.pem", false), why,
                                 sizeof why) == 0);
    ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_REQUIRED, why, sizeof why);
    gp_tls_pem_free(&pem);
    if (ctx == NULL) fprintf(stderr, "stand-in broker TLS: %s\n", why);
    REQUIRE_TRUE(ctx != NULL);
  }
  return ctx;
}

/* Accepts the server's next connection within |ms| and runs the TLS
 * handshake; -1 if none. */
static int broker_accept(struct fake_broker *b, int ms, struct gp_wire *w) {
  struct pollfd pfd = {b->lfd, POLLIN, 0};
  if (poll(&pfd, 1, ms) != 1) return -1;
  int fd = accept(b->lfd, NULL, NULL);
  if (fd < 0) return -1;
  char why[512];
  if (gp_wire_init_tls_server(w, fd, broker_ctx(), 5000, why, sizeof why) !=
      0) {
    fprintf(stderr, "stand-in broker: TLS handshake: %s\n", why);
    close(fd);
    return -1;
  }
  char peer[256];
  gp_wire_tls_peer(w, peer, sizeof peer);
  CHECK_TRUE(strstr(peer, "gpupool-server") != NULL);
  w->timeout_ms = 5000;
  return 0;
}

/* The next frame of |type| (others of the broker's types skipped, at most
 * 50): its message, NULL on failure. */
static ProtobufCMessage *broker_recv(struct gp_wire *w, uint16_t type) {
  for (int i = 0; i < 50; i++) {
    struct gp_frame_header h;
    ProtobufCMessage *m = NULL;
    if (gp_wire_recv_header(w, &h) != 0) return NULL;
    if (!gp_msg_is_broker(h.type) || (h.flags & GP_FRAME_F_REPLY) ||
        h.payload_len != 0)
      return NULL;
    if (gp_wire_recv_msg(w, &h, &m) != 0) return NULL;
    if (h.type == type) return m;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  return NULL;
}

/* Checks a BROKER_REGISTER; returns its number of sessions. */
static size_t check_register(const Gpupool__BrokerRegister *reg,
                             const char *advertised) {
  CHECK_STR_EQ(reg->name, SERVER_NAME);
  CHECK_STR_EQ(reg->address, advertised);
  uint64_t now = (uint64_t)time(NULL);
  CHECK_TRUE(reg->timestamp_unix + 5 >= now && reg->timestamp_unix <= now + 5);
  uint8_t mac[GP_GRANT_MAC_LEN];
  REQUIRE_TRUE(gp_register_auth(key, sizeof key, reg, mac) == 0);
  CHECK_EQ_U(reg->auth.len, GP_GRANT_MAC_LEN);
  CHECK_TRUE(reg->auth.len == GP_GRANT_MAC_LEN &&
             memcmp(reg->auth.data, mac, GP_GRANT_MAC_LEN) == 0);
  CHECK_EQ_U(reg->n_gpus, 1);
  if (reg->n_gpus == 1) {
    CHECK_STR_EQ(reg->gpus[0]->uuid, gpu);
    CHECK_GT_U(reg->gpus[0]->total_mem, 0);
    CHECK_GE_I(reg->gpus[0]->cc_major, 1);
    CHECK_TRUE(reg->gpus[0]->name && reg->gpus[0]->name[0] != '\0');
  }
  CHECK_EQ_U(reg->n_labels, 2);
  if (reg->n_labels == 2) {
    CHECK_STR_EQ(reg->labels[0]->key, "zone");
    CHECK_STR_EQ(reg->labels[0]->value, "eu-1");
    CHECK_STR_EQ(reg->labels[1]->key, "kind");
    CHECK_STR_EQ(reg->labels[1]->value, "emu");
  }
  CHECK_TRUE(reg->version && strncmp(reg->version, "gpupool-server ", 15) == 0);
  return reg->n_sessions;
}

static void broker_reply(struct gp_wire *w, int32_t result, const char *msg,
                         uint32_t heartbeat_ms) {
  Gpupool__BrokerRegisterReply rep = GPUPOOL__BROKER_REGISTER_REPLY__INIT;
  rep.result = result;
  rep.message = (char *)msg;
  rep.heartbeat_ms = heartbeat_ms;
  REQUIRE_TRUE(gp_wire_send(w, GP_MSG_BROKER_REGISTER, GP_FRAME_F_REPLY, 1,
                            &rep.base, NULL, 0) == 0);
  REQUIRE_TRUE(gp_wire_flush(w) == 0);
}

/* Heartbeats until one lists session |sid| with |used| bytes (or, with
 * |sid| 0, lists none); false after 40 heartbeats. */
static bool wait_heartbeat(struct gp_wire *w, uint64_t sid, uint64_t used) {
  for (int i = 0; i < 40; i++) {
    ProtobufCMessage *m = broker_recv(w, GP_MSG_BROKER_HEARTBEAT);
    if (m == NULL) return false;
    const Gpupool__BrokerHeartbeat *hb = (const void *)m;
    bool ok = false;
    if (hb->n_gpus == 1 && strcmp(hb->gpus[0]->uuid, gpu) == 0 &&
        hb->gpus[0]->utilisation == -1) {
      if (sid == 0)
        ok = hb->n_sessions == 0 && hb->gpus[0]->sessions == 0;
      else
        ok = hb->n_sessions == 1 && hb->sessions[0]->session_id == sid &&
             hb->sessions[0]->memory_used == used &&
             strcmp(hb->sessions[0]->tenant, "alice") == 0 &&
             strcmp(hb->sessions[0]->gpu_uuid, gpu) == 0 &&
             hb->sessions[0]->memory_limit == 64 * MiB &&
             hb->gpus[0]->sessions == 1 && hb->gpus[0]->memory_used == used;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (ok) return true;
  }
  return false;
}

/* The broker link against the stand-in: registration (with the auth, GPU,
 * labels, advertised address), heartbeats with a session's memory, its
 * end, reconnection and re-registration listing the running session, and
 * a refused registration retried. */
static void scenario_broker_link(int argc, char **argv) {
  struct fake_broker b;
  char addr[64];
  broker_listen(&b);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", b.port);
  write_key();
  const char *extra[20] = {"--broker", addr, "--name", SERVER_NAME,
                           "--grant-key-file", keypath, "--label",
                           "zone=eu-1", "--label", "kind=emu"};
  extra[gpt_pool_tls_args(extra, 10)] = NULL;
  start(extra);

  /* A refusal first: logged as an error, then retried after backoff. */
  struct gp_wire w;
  REQUIRE_TRUE(broker_accept(&b, 5000, &w) == 0);
  ProtobufCMessage *m = broker_recv(&w, GP_MSG_BROKER_REGISTER);
  REQUIRE_TRUE(m != NULL);
  CHECK_EQ_U(check_register((const void *)m, server.addr), 0);
  protobuf_c_message_free_unpacked(m, NULL);
  broker_reply(&w, GP_EAUTH, "bad auth (test)", 0);
  double t0 = gpt_now();
  gp_wire_free(&w);
  CHECK_TRUE(log_has("refused the registration of 'pool01': bad auth (test)",
                     5000));
  REQUIRE_TRUE(broker_accept(&b, 5000, &w) == 0);
  CHECK_LE_D(gpt_now() - t0, 2.0);
  m = broker_recv(&w, GP_MSG_BROKER_REGISTER);
  REQUIRE_TRUE(m != NULL);
  CHECK_EQ_U(check_register((const void *)m, server.addr), 0);
  protobuf_c_message_free_unpacked(m, NULL);
  broker_reply(&w, 0, "", 100);
  CHECK_TRUE(wait_heartbeat(&w, 0, 0));

  /* A session under a grant shows in the heartbeats, with its memory. */
  struct grant_spec s = {fresh_id(), SERVER_NAME, gpu, 64 * MiB, 60, false};
  struct gpt_raw r;
  char msg[256];
  uint64_t p = 0;
  REQUIRE_TRUE(hello_with(&r, &s, msg, sizeof msg, NULL) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_ctx(&r, 1) == CUDA_SUCCESS);
  REQUIRE_TRUE(raw_alloc(&r, 1, 3 * MiB, &p) == CUDA_SUCCESS);
  /* Counted rounded up to 2 MiB: 4 MiB. */
  CHECK_TRUE(wait_heartbeat(&w, s.session_id, 4 * MiB));

  /* The broker goes away and comes back: the server registers again,
   * listing the running session. */
  gp_wire_free(&w);
  REQUIRE_TRUE(broker_accept(&b, 5000, &w) == 0);
  m = broker_recv(&w, GP_MSG_BROKER_REGISTER);
  REQUIRE_TRUE(m != NULL);
  const Gpupool__BrokerRegister *reg = (const void *)m;
  CHECK_EQ_U(check_register(reg, server.addr), 1);
  if (reg->n_sessions == 1) {
    CHECK_EQ_U(reg->sessions[0]->session_id, s.session_id);
    CHECK_EQ_U(reg->sessions[0]->memory_limit, 64 * MiB);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  broker_reply(&w, 0, "", 100);
  CHECK_TRUE(wait_heartbeat(&w, s.session_id, 4 * MiB));

  /* The session ends: BROKER_SESSION_END, reason "ended". */
  gpt_raw_close(&r);
  m = broker_recv(&w, GP_MSG_BROKER_SESSION_END);
  REQUIRE_TRUE(m != NULL);
  const Gpupool__BrokerSessionEnd *end = (const void *)m;
  CHECK_EQ_U(end->session_id, s.session_id);
  CHECK_STR_EQ(end->reason, "ended");
  protobuf_c_message_free_unpacked(m, NULL);
  CHECK_TRUE(wait_heartbeat(&w, 0, 0));
  gp_wire_free(&w);
  close(b.lfd);
  cleanup();
}

/* --advertise is what the broker is told. */
static void scenario_broker_advertise(int argc, char **argv) {
  struct fake_broker b;
  char addr[64];
  broker_listen(&b);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", b.port);
  write_key();
  const char *extra[20] = {"--broker", addr, "--name", SERVER_NAME,
                           "--grant-key-file", keypath, "--label",
                           "zone=eu-1", "--label", "kind=emu", "--advertise",
                           "gpu7.example.com:7471"};
  extra[gpt_pool_tls_args(extra, 12)] = NULL;
  start(extra);
  struct gp_wire w;
  REQUIRE_TRUE(broker_accept(&b, 5000, &w) == 0);
  ProtobufCMessage *m = broker_recv(&w, GP_MSG_BROKER_REGISTER);
  REQUIRE_TRUE(m != NULL);
  check_register((const void *)m, "gpu7.example.com:7471");
  protobuf_c_message_free_unpacked(m, NULL);
  gp_wire_free(&w);
  close(b.lfd);
  cleanup();
}

/* Bad pool flags are usage errors (exit 2) with a reason. */
static void scenario_flags(int argc, char **argv) {
  const char *bin = getenv("GPUPOOL_TEST_SERVER");
  REQUIRE_TRUE(bin != NULL);
  write_key();
  char badkey[320], cmd[2048];
  snprintf(badkey, sizeof badkey, "%s/open.key", dir);
  FILE *f = fopen(badkey, "w");
  REQUIRE_TRUE(f != NULL);
  fprintf(f, "%064d\n", 0);
  fclose(f);
  chmod(badkey, 0644);
  struct {
    const char *args;
    const char *want;
  } cases[] = {
    {"--broker 127.0.0.1:1", "--broker needs --name"},
    {"--broker 127.0.0.1:1 --name a", "--broker needs --grant-key-file"},
    {"--name 'bad name'", "--name 'bad name'"},
    {"--name a --grant-key-file BADKEY", "chmod 600"},
    {"--name a --grant-key-file /nonexistent/key", "cannot open"},
    {"--label novalue", "expected KEY=VALUE"},
    {"--label 'k=v v'", "the value must be"},
    {"--label a=1 --label a=2", "given twice"},
    {"--advertise host", "HOST:PORT"},
    {"--idle-timeout x", "--idle-timeout"},
    {"--broker host:99999", "--broker"},
    /* The broker link is mutual TLS unless --insecure. */
    {"--broker 127.0.0.1:1 --name a --grant-key-file KEY",
     "--broker needs --tls-cert and --tls-key"},
    {"--broker 127.0.0.1:1 --name a --grant-key-file KEY --tls-cert C "
     "--tls-key K", "--broker needs --tls-ca FILE"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char args[512];
    const char *at = strstr(cases[i].args, "BADKEY");
    const char *kat = strstr(cases[i].args, "KEY --tls");
    if (kat == NULL && strstr(cases[i].args, "grant-key-file KEY") != NULL)
      kat = strstr(cases[i].args, "file KEY") + 5;
    if (at)
      snprintf(args, sizeof args, "%.*s%s%s", (int)(at - cases[i].args),
               cases[i].args, badkey, at + 6);
    else if (kat)
      snprintf(args, sizeof args, "%.*s%s%s", (int)(kat - cases[i].args),
               cases[i].args, keypath, kat + 3);
    else
      snprintf(args, sizeof args, "%s", cases[i].args);
    snprintf(cmd, sizeof cmd, "%s %s --listen 127.0.0.1:0 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    REQUIRE_TRUE(p != NULL);
    char out[2048] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    CHECK_EQ_I(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2);
    if (!CHECK_TRUE(strstr(out, cases[i].want) != NULL))
      fprintf(stderr, "    '%s' said: %s\n", args, out);
  }
  cleanup();
}

static const struct gpt_scenario scenarios[] = {
  {"admit", scenario_admit, 60},
  {"refusals", scenario_refusals, 60},
  {"memory_limit", scenario_memory_limit, 60},
  {"idle_client", scenario_idle_client, 60},
  {"idle_raw", scenario_idle_raw, 60},
  {"limit_fault", scenario_limit_fault, 60},
  {"limit_other", scenario_limit_other, 60},
  {"idle_stall", scenario_idle_stall, 60},
  {"broker_link", scenario_broker_link, 90},
  {"broker_advertise", scenario_broker_advertise, 60},
  {"flags", scenario_flags, 60},
  {NULL, NULL, 0},
};

int main(int argc, char **argv) {
  return gpt_main(argc, argv, scenarios);
}
