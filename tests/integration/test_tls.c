/* Integration: TLS on the session link (docs/security.md). A real
 * gpupool-server with the build's test certificates ($GPT_CERTS), clients
 * run as programs ($GPUPOOL_TEST_DEMO, the vector demo) or as this
 * program's own children, and peers that speak the wrong thing: plain TCP
 * to a TLS port, TLS to an --insecure one, another CA, another address,
 * another ALPN, nothing at all. The server's log goes to a file of the
 * scenario's, which the checks read. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gpupool/errors.h"
#include "harness.h"
#include "raw.h"
#include "tls.h"
#include "wire.h"

static struct gpt_server server;
static char dir[256], logpath[320];

static const char *need_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') {
    gpt__check_fail(__FILE__, __LINE__, name, "%s",
                    "not set: run the tests with meson test");
    gpt__abort_scenario();
  }
  return v;
}

static void make_dir(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/gpt_tls_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  snprintf(logpath, sizeof logpath, "%s/server.log", dir);
}

static void remove_dir(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("could not remove %s\n", dir);
}

/* The server's log so far (free it). */
static char *read_log(void) {
  FILE *f = fopen(logpath, "r");
  if (f == NULL) return strdup("");
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = gpt_xmalloc((size_t)len + 1);
  size_t got = fread(buf, 1, (size_t)len, f);
  fclose(f);
  buf[got] = '\0';
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
    if (gpt_now() >= end) {
      printf("not in the server's log: \"%s\"\n", what);
      return false;
    }
    gpt_sleep_ms(20);
  }
}

/* gpt_server_start() with the server's stderr in |logpath|. */
static void start(const char *const *extra) {
  make_dir();
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
}

static void stop(void) {
  gpt_server_stop(&server, 5000);
  char *log = read_log();
  printf("---- the server's log ----\n%s--------------------------\n", log);
  free(log);
  remove_dir();
}

/* Runs the vector demo (a whole CUDA session: cuInit, alloc, copies, a
 * kernel) against GPUPOOL_SERVER with |env| applied. */
static struct gpt_run *demo(const char *const *env) {
  static struct gpt_run r;
  const char *argv[] = {need_env("GPUPOOL_TEST_DEMO"), NULL};
  gpt_run(&r, argv, env, 60);
  return &r;
}

#define CHECK_OUT(r, text)                                        \
  do {                                                            \
    if (!CHECK_TRUE(strstr((r)->out, (text)) != NULL))            \
      printf("    wanted \"%s\" in the output\n", (text));        \
  } while (0)

/* ---- A session over TLS ------------------------------------------------- */

static void scenario_session(int argc, char **argv) {
  const char *extra[] = {"--log-level", "debug", NULL};
  start(extra);
  CHECK_TRUE(log_has("(TLS, backend", 5000));
  struct gpt_run *r = demo(NULL);
  CHECK_EQ_I(r->status, 0);
  CHECK_OUT(r, "done in");
  CHECK_TRUE(log_has("TLS handshake done", 5000));
  CHECK_TRUE(log_has("over TLS: protocol", 5000));
  CHECK_TRUE(log_has("exited with status 0 (session ended)", 5000));
  /* Through "localhost", a DNS name in the certificate, too. */
  char addr[64];
  snprintf(addr, sizeof addr, "localhost:%d", server.port);
  char envv[96];
  snprintf(envv, sizeof envv, "GPUPOOL_SERVER=%s", addr);
  const char *env[] = {envv, NULL};
  r = demo(env);
  CHECK_EQ_I(r->status, 0);
  stop();
  (void)argc;
  (void)argv;
}

/* ---- The wrong protocol on either side ------------------------------------ */

/* A plain client (GPUPOOL_INSECURE=1) against a TLS server: one clear line
 * at cuInit; the server logs why and serves the next client. */
static void scenario_plain_client(int argc, char **argv) {
  start(NULL);
  const char *env[] = {"GPUPOOL_INSECURE=1", NULL};
  struct gpt_run *r = demo(env);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "cuInit: no device: the server at 127.0.0.1:");
  CHECK_OUT(r, "answered in TLS: unset GPUPOOL_INSECURE, or start the "
               "server with --insecure");
  CHECK_TRUE(log_has("client spoke plain TCP to a TLS port", 5000));
  CHECK_TRUE(log_has("exited with status 10 (handshake failed)", 5000));
  r = demo(NULL);
  CHECK_EQ_I(r->status, 0);
  CHECK_OUT(r, "done in");
  CHECK_TRUE(gpt_server_alive(&server));
  stop();
  (void)argc;
  (void)argv;
}

/* A TLS client against an --insecure server: one clear line; plain
 * clients (the harness's insecure mode) work. */
static void scenario_tls_client_insecure_server(int argc, char **argv) {
  const char *extra[] = {"--insecure", NULL};
  start(extra);
  CHECK_TRUE(server.insecure);
  CHECK_TRUE(log_has("WARNING: --insecure: plain TCP, no encryption, no "
                     "server authentication", 5000));
  CHECK_TRUE(log_has("(plain TCP, backend", 5000));
  const char *tls_env[] = {"GPUPOOL_INSECURE", NULL};
  struct gpt_run *r = demo(tls_env);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "TLS handshake with the server failed");
  CHECK_OUT(r, "is the peer running with --insecure, plain TCP?");
  CHECK_TRUE(log_has("client speaks TLS; this server runs --insecure", 5000));
  /* The harness left GPUPOOL_INSECURE=1 for its clients. */
  r = demo(NULL);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(log_has("over plain TCP: protocol", 5000));
  /* A raw-frame client in the same mode. */
  struct gpt_raw raw;
  REQUIRE_TRUE(gpt_raw_open(&raw, server.port, 10000));
  CHECK_TRUE(!gp_wire_is_tls(&raw.w));
  gpt_raw_close(&raw);
  stop();
  (void)argc;
  (void)argv;
}

/* The certificate of another CA: the client refuses the server. */
static void scenario_other_ca(int argc, char **argv) {
  start(NULL);
  char ca[512];
  snprintf(ca, sizeof ca, "GPUPOOL_TLS_CA=%s/ca.pem",
           need_env("GPT_CERTS_OTHER"));
  const char *env[] = {ca, NULL};
  struct gpt_run *r = demo(env);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "certificate verify failed");
  CHECK_TRUE(log_has("TLS handshake with the client failed", 5000));
  /* No CA file at all: the system's store does not know the test CA. */
  const char *none[] = {"GPUPOOL_TLS_CA", NULL};
  r = demo(none);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "certificate verify failed");
  /* A CA file that does not exist. */
  const char *missing[] = {"GPUPOOL_TLS_CA=/nonexistent/ca.pem", NULL};
  r = demo(missing);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "/nonexistent/ca.pem");
  stop();
  (void)argc;
  (void)argv;
}

/* An address the certificate does not name (its SANs: localhost,
 * 127.0.0.1, ::1): 127.0.0.2 reaches the server on 0.0.0.0 but fails
 * verification. */
static void scenario_wrong_host(int argc, char **argv) {
  const char *extra[] = {"--listen", "0.0.0.0:0", NULL};
  start(extra);
  char envv[96];
  snprintf(envv, sizeof envv, "GPUPOOL_SERVER=127.0.0.2:%d", server.port);
  const char *env[] = {envv, NULL};
  struct gpt_run *r = demo(env);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "certificate verify failed");
  CHECK_OUT(r, "IP address mismatch");
  /* 127.0.0.1 is in the certificate. */
  r = demo(NULL);
  CHECK_EQ_I(r->status, 0);
  stop();
  (void)argc;
  (void)argv;
}

/* A TLS client offering ALPN "gpupool/2" only: the server refuses it in
 * the handshake (no_application_protocol). */
static void scenario_alpn(int argc, char **argv) {
  start(NULL);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE_TRUE(ctx != NULL);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  static const unsigned char alpn[] = "\x09gpupool/2";
  REQUIRE_TRUE(SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) == 0);
  REQUIRE_TRUE(SSL_CTX_load_verify_locations(ctx, getenv("GPUPOOL_TLS_CA"),
                                             NULL) == 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  REQUIRE_TRUE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  int ok = SSL_connect(ssl);
  unsigned long e = ERR_peek_last_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  printf("SSL_connect offering gpupool/2: %d, %s\n", ok,
         reason ? reason : "(no reason)");
  CHECK_NE_I(ok, 1);
  CHECK_TRUE(reason != NULL &&
             strstr(reason, "no application protocol") != NULL);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  CHECK_TRUE(log_has("no application protocol", 5000));
  CHECK_TRUE(log_has("exited with status 10 (handshake failed)", 5000));
  stop();
  (void)argc;
  (void)argv;
}

/* ---- The server's command line -------------------------------------------- */

static void scenario_refuse_start(int argc, char **argv) {
  const char *bin = need_env("GPUPOOL_TEST_SERVER");
  const char *certs = need_env("GPT_CERTS");
  char cert[512], key[512], other_key[512];
  snprintf(cert, sizeof cert, "%s/server.pem", certs);
  snprintf(key, sizeof key, "%s/server.key", certs);
  snprintf(other_key, sizeof other_key, "%s/broker.key", certs);
  static struct gpt_run r;

  const char *none[] = {bin, "--listen", "127.0.0.1:0", NULL};
  gpt_run(&r, none, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "TLS is on by default: give --tls-cert and --tls-key "
                "(scripts/gen-certs.sh DIR makes a local set), or --insecure "
                "for plain TCP on loopback");

  const char *anyaddr[] = {bin, "--insecure", "--listen", "0.0.0.0:0", NULL};
  gpt_run(&r, anyaddr, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "--insecure");
  CHECK_OUT(&r, "--insecure-any-address");

  const char *mismatch[] = {bin,       "--listen", "127.0.0.1:0", "--tls-cert",
                            cert,      "--tls-key", other_key,    NULL};
  gpt_run(&r, mismatch, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "the key does not match the certificate");

  const char *missing[] = {bin, "--listen", "127.0.0.1:0", "--tls-cert",
                           "/nonexistent.pem", "--tls-key", key, NULL};
  gpt_run(&r, missing, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "/nonexistent.pem");

  const char *half[] = {bin, "--listen", "127.0.0.1:0", "--tls-cert", cert,
                        NULL};
  gpt_run(&r, half, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "--tls-cert needs --tls-key");

  const char *timeout[] = {bin, "--insecure", "--handshake-timeout", "99",
                           NULL};
  gpt_run(&r, timeout, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  CHECK_OUT(&r, "--handshake-timeout");

  /* Both insecure flags: plain TCP on any address starts. */
  const char *extra[] = {"--insecure", "--insecure-any-address", "--listen",
                         "0.0.0.0:0", NULL};
  start(extra);
  CHECK_TRUE(log_has("listening on 0.0.0.0:", 5000));
  struct gpt_run *d = demo(NULL);
  CHECK_EQ_I(d->status, 0);
  stop();
  (void)argc;
  (void)argv;
}

/* ---- SIGHUP ------------------------------------------------------------------- */

/* A session held open across the reload: cuInit, a context and 1 MiB with
 * a pattern; on "check" it reads it back and copies again. */
static void child_holder(int argc, char **argv) {
  CUcontext ctx = gpt_init_context(NULL);
  (void)ctx;
  enum { N = 1 << 20 };
  unsigned char *a = gpt_xmalloc(N), *b = gpt_xmalloc(N);
  gpt_fill(a, N, 7);
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, N));
  REQUIRE_OK(cuMemcpyHtoD(d, a, N));
  gpt_child_say("ready");
  char line[64];
  if (gpt_child_hear(line, sizeof line, 60000) < 0) gpt__abort_scenario();
  bool ok = cuMemcpyDtoH(b, d, N) == CUDA_SUCCESS && memcmp(a, b, N) == 0;
  gpt_fill(a, N, 8);
  ok = ok && cuMemcpyHtoD(d, a, N) == CUDA_SUCCESS &&
       cuMemcpyDtoH(b, d, N) == CUDA_SUCCESS && memcmp(a, b, N) == 0;
  gpt_child_say("%s", ok ? "intact" : "broken");
  cuMemFree(d);
  free(a);
  free(b);
  (void)argc;
  (void)argv;
}

static void copy_file(const char *from, const char *to) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", from, to,
           to, to);
  REQUIRE_TRUE(system(cmd) == 0);
}

static void scenario_reload(int argc, char **argv) {
  const char *certs = need_env("GPT_CERTS");
  const char *gen = need_env("GPT_GEN_CERTS");
  make_dir();
  char live_cert[400], live_key[400], src[512], newdir[400];
  snprintf(live_cert, sizeof live_cert, "%s/live.pem", dir);
  snprintf(live_key, sizeof live_key, "%s/live.key", dir);
  snprintf(src, sizeof src, "%s/server.pem", certs);
  copy_file(src, live_cert);
  snprintf(src, sizeof src, "%s/server.key", certs);
  copy_file(src, live_key);
  /* start() makes a folder of its own: keep this one's name. */
  char keep[256];
  snprintf(keep, sizeof keep, "%s", dir);
  const char *extra[] = {"--tls-cert", live_cert, "--tls-key", live_key,
                         NULL};
  start(extra);
  char first_dir[256];
  snprintf(first_dir, sizeof first_dir, "%s", dir);
  snprintf(dir, sizeof dir, "%s", keep);
  snprintf(logpath, sizeof logpath, "%s/server.log", first_dir);

  struct gpt_child holder;
  char line[64];
  REQUIRE_TRUE(gpt_spawn(&holder, "child_holder", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&holder, line, sizeof line, 30000) > 0);
  CHECK_STR_EQ(line, "ready");

  /* A new CA and server certificate, made now. */
  snprintf(newdir, sizeof newdir, "%s/new", dir);
  const char *g[] = {"/bin/bash", gen, "--new-ca", newdir, NULL};
  static struct gpt_run r;
  gpt_run(&r, g, NULL, 60);
  REQUIRE_TRUE(r.status == 0);
  snprintf(src, sizeof src, "%s/server.key", newdir);
  copy_file(src, live_key);
  snprintf(src, sizeof src, "%s/server.pem", newdir);
  copy_file(src, live_cert);
  gpt_server_signal(&server, SIGHUP, false);
  CHECK_TRUE(log_has("SIGHUP: reloaded the TLS certificate", 5000));
  CHECK_TRUE(gpt_server_alive(&server));

  /* The session opened before goes on. */
  REQUIRE_TRUE(gpt_child_send(&holder, "check") == 0);
  REQUIRE_TRUE(gpt_child_recv(&holder, line, sizeof line, 30000) > 0);
  CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&holder, 10000), 0);

  /* A new client with the old CA is refused; with the new one it works. */
  struct gpt_run *d = demo(NULL);
  CHECK_NE_I(d->status, 0);
  CHECK_OUT(d, "certificate verify failed");
  char newca[512];
  snprintf(newca, sizeof newca, "GPUPOOL_TLS_CA=%s/ca.pem", newdir);
  const char *env[] = {newca, NULL};
  d = demo(env);
  CHECK_EQ_I(d->status, 0);

  /* A broken key: the reload fails and the material stays. */
  char junk[400];
  snprintf(junk, sizeof junk, "%s/junk.key", dir);
  FILE *f = fopen(junk, "w");
  REQUIRE_TRUE(f != NULL);
  fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        f);
  fclose(f);
  copy_file(junk, live_key);
  gpt_server_signal(&server, SIGHUP, false);
  CHECK_TRUE(log_has("SIGHUP: cannot reload the TLS files, keeping the "
                     "previous ones", 5000));
  CHECK_TRUE(gpt_server_alive(&server));
  d = demo(env);
  CHECK_EQ_I(d->status, 0);
  /* A missing file: the same. */
  unlink(live_cert);
  gpt_server_signal(&server, SIGHUP, false);
  gpt_sleep_ms(300);
  d = demo(env);
  CHECK_EQ_I(d->status, 0);

  stop();
  snprintf(dir, sizeof dir, "%s", first_dir);
  remove_dir();
  (void)argc;
  (void)argv;
}

/* ---- --handshake-timeout ---------------------------------------------------- */

/* Seconds until the server closes |fd| (reads EOF or a reset), at most
 * |limit_s|; what it sent meanwhile is read and dropped. */
static double time_to_close(int fd, double t0, double limit_s) {
  char buf[4096];
  for (;;) {
    double left = t0 + limit_s - gpt_now();
    if (left <= 0) return limit_s;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return gpt_now() - t0;
  }
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  REQUIRE_TRUE(fd >= 0 &&
               connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

static void scenario_handshake_timeout(int argc, char **argv) {
  const char *extra[] = {"--handshake-timeout", "300", NULL};
  start(extra);
  /* Silent. */
  double t0 = gpt_now();
  int fd = tcp_connect(server.port);
  double took = time_to_close(fd, t0, 10);
  close(fd);
  printf("a silent connection was closed after %.3f s\n", took);
  CHECK_GE_D(took, 0.25);
  CHECK_LE_D(took, 2.0);

  /* Half a ClientHello: a record header announcing 512 bytes, then 4. */
  static const unsigned char part[] = {0x16, 0x03, 0x01, 0x02, 0x00,
                                       0x01, 0x00, 0x01, 0xfc};
  t0 = gpt_now();
  fd = tcp_connect(server.port);
  REQUIRE_TRUE(send(fd, part, sizeof part, MSG_NOSIGNAL) ==
               (ssize_t)sizeof part);
  took = time_to_close(fd, t0, 10);
  close(fd);
  printf("a partial ClientHello was closed after %.3f s\n", took);
  CHECK_GE_D(took, 0.25);
  CHECK_LE_D(took, 2.0);

  /* A whole handshake, then no HELLO. */
  struct gp_wire w;
  t0 = gpt_now();
  REQUIRE_TRUE(gpt_wire_connect(&w, server.port) == 0);
  printf("handshake done after %.3f s\n", gpt_now() - t0);
  w.timeout_ms = 10000;
  struct gp_frame_header h;
  int got = gp_wire_recv_header(&w, &h);
  took = gpt_now() - t0;
  printf("after the handshake, no HELLO: the server answered %d (%s) after "
         "%.3f s\n", got, got == 0 ? "a frame" : gp_strerror(got), took);
  CHECK_TRUE(got == 0 || got == GP_ECLOSED);
  if (got == 0) CHECK_EQ_I(h.type, GP_MSG_PROTOCOL_ERROR);
  CHECK_GE_D(took, 0.25);
  CHECK_LE_D(took, 2.0);
  gp_wire_free(&w);
  CHECK_TRUE(log_has("within --handshake-timeout 300 ms", 5000));
  CHECK_TRUE(log_has("exited with status 10 (handshake failed)", 5000));

  /* Sessions that are on time work. */
  struct gpt_run *d = demo(NULL);
  CHECK_EQ_I(d->status, 0);
  stop();
  (void)argc;
  (void)argv;
}

/* ---- gpupool attach's TLS flags -------------------------------------------- */

static struct gpt_run *attach(const char *const *flags, const char *const *env) {
  static struct gpt_run r;
  const char *argv[16];
  int n = 0;
  argv[n++] = need_env("GPUPOOL_TEST_CLI");
  argv[n++] = "attach";
  argv[n++] = "--server";
  argv[n++] = server.addr;
  for (int i = 0; flags[i] && n < 12; i++) argv[n++] = flags[i];
  argv[n++] = "--";
  argv[n++] = need_env("GPUPOOL_TEST_DEMO");
  argv[n] = NULL;
  gpt_run(&r, argv, env, 60);
  return &r;
}

static void scenario_attach(int argc, char **argv) {
  start(NULL);
  char ca[512], other[512];
  snprintf(ca, sizeof ca, "%s/ca.pem", need_env("GPT_CERTS"));
  snprintf(other, sizeof other, "%s/ca.pem", need_env("GPT_CERTS_OTHER"));
  /* No GPUPOOL_TLS_CA in the environment: --tls-ca names it. */
  const char *unset[] = {"GPUPOOL_TLS_CA", "GPUPOOL_SERVER", NULL};
  const char *f1[] = {"--tls-ca", ca, NULL};
  struct gpt_run *r = attach(f1, unset);
  CHECK_EQ_I(r->status, 0);
  CHECK_OUT(r, "done in");
  const char *f2[] = {"--tls-ca", other, NULL};
  r = attach(f2, unset);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "certificate verify failed");
  const char *f3[] = {"--insecure", NULL};
  r = attach(f3, NULL);
  CHECK_NE_I(r->status, 0);
  CHECK_OUT(r, "answered in TLS: unset GPUPOOL_INSECURE");
  const char *f4[] = {"--insecure-any-address", NULL};
  r = attach(f4, NULL);
  CHECK_EQ_I(r->status, 125);
  CHECK_OUT(r, "--insecure-any-address goes with --insecure");
  const char *f5[] = {"--tls-ca", "/nonexistent/ca.pem", NULL};
  r = attach(f5, NULL);
  CHECK_EQ_I(r->status, 125);
  CHECK_OUT(r, "/nonexistent/ca.pem");
  stop();
  /* An --insecure server: attach --insecure reaches it. */
  const char *extra[] = {"--insecure", NULL};
  start(extra);
  const char *tls_env[] = {"GPUPOOL_INSECURE", NULL};
  r = attach(f3, tls_env);
  CHECK_EQ_I(r->status, 0);
  const char *f6[] = {"--insecure", "--insecure-any-address", NULL};
  r = attach(f6, tls_env);
  CHECK_EQ_I(r->status, 0);
  stop();
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"session", scenario_session, 60},
      {"plain_client", scenario_plain_client, 60},
      {"tls_client_insecure_server", scenario_tls_client_insecure_server, 60},
      {"other_ca", scenario_other_ca, 60},
      {"wrong_host", scenario_wrong_host, 60},
      {"alpn", scenario_alpn, 60},
      {"refuse_start", scenario_refuse_start, 90},
      {"reload", scenario_reload, 90},
      {"handshake_timeout", scenario_handshake_timeout, 60},
      {"attach", scenario_attach, 90},
      {"child_holder", child_holder, 90},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
