/* Unit tests of TLS (protocol/tls.c) over real socketpairs, with the
 * certificates scripts/gen-certs.sh made at build time: the blocking wire
 * both ways, host name and CA checks, ALPN, mutual TLS, and the in-memory
 * engine talking to a blocking peer. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "gpupool/errors.h"
#include "msg.h"
#include "tls.h"
#include "wire.h"

static char path_buf[8][512];
static int path_next;

static const char *cert(const char *which, const char *name) {
  const char *dir = getenv(which);
  ck_assert_msg(dir != NULL, "%s is not set", which);
  char *p = path_buf[path_next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}
#define POOL(name) cert("GP_TEST_CERTS", name)
#define OTHER(name) cert("GP_TEST_CERTS_OTHER", name)

static SSL_CTX *server_ctx(const char *dir_var, enum gp_tls_peer peer,
                           const char *ca_var) {
  struct gp_tls_pem pem;
  char why[256];
  ck_assert_int_eq(gp_tls_pem_load(&pem, cert(dir_var, "server.pem"),
                                   cert(dir_var, "server.key"),
                                   cert(ca_var, "ca.pem"), why, sizeof(why)),
                   0);
  SSL_CTX *ctx = gp_tls_server_ctx(&pem, peer, why, sizeof(why));
  ck_assert_msg(ctx != NULL, "%s", why);
  gp_tls_pem_free(&pem);
  return ctx;
}

struct side {
  SSL_CTX *ctx;
  int fd;
  bool server;
  const char *host;
  int rc;
  char why[256];
  struct gp_wire w;
};

static void *run_side(void *arg) {
  struct side *s = arg;
  if (s->server)
    s->rc = gp_wire_init_tls_server(&s->w, s->fd, s->ctx, 5000, s->why,
                                    sizeof(s->why));
  else
    s->rc = gp_wire_init_tls_client(&s->w, s->fd, s->ctx, s->host, 5000,
                                    s->why, sizeof(s->why));
  if (s->rc != 0)
    close(s->fd); /* so the other side sees the end, not a hang */
  return NULL;
}

/* Runs both handshakes at once on a socketpair. */
static void pair(struct side *srv, struct side *cli) {
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  srv->fd = sv[0];
  srv->server = true;
  cli->fd = sv[1];
  cli->server = false;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, run_side, srv), 0);
  run_side(cli);
  pthread_join(t, NULL);
}

START_TEST(test_tls_round_trip) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  char why[256];
  struct side cli = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why,
                                              sizeof(why)),
                     .host = "localhost"};
  ck_assert_ptr_nonnull(cli.ctx);
  pair(&srv, &cli);
  ck_assert_msg(srv.rc == 0, "server: %s", srv.why);
  ck_assert_msg(cli.rc == 0, "client: %s", cli.why);
  ck_assert(gp_wire_is_tls(&cli.w));

  /* A message and a payload bigger than one TLS record, both ways. */
  size_t n = 100u << 10; /* within the socketpair's buffer */
  uint8_t *big = malloc(n), *back = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (uint8_t)(i * 131 + 7);
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  m.size = 77;
  ck_assert_int_eq(gp_wire_send(&cli.w, GP_MSG_MEM_ALLOC, 0, 9, &m.base, big,
                                n),
                   0);
  struct gp_frame_header h;
  ProtobufCMessage *out;
  ck_assert_int_eq(gp_wire_recv_header(&srv.w, &h), 0);
  ck_assert_uint_eq(h.request_id, 9);
  ck_assert_int_eq(gp_wire_recv_msg(&srv.w, &h, &out), 0);
  ck_assert_uint_eq(((Gpupool__MemAlloc *)out)->size, 77);
  protobuf_c_message_free_unpacked(out, NULL);
  ck_assert_uint_eq(h.payload_len, n);
  ck_assert_int_eq(gp_wire_recv_payload(&srv.w, back, n), 0);
  ck_assert_int_eq(memcmp(big, back, n), 0);

  /* Both ends derive the same exporter value. */
  uint8_t e1[GP_TLS_EXPORTER_LEN], e2[GP_TLS_EXPORTER_LEN];
  ck_assert_int_eq(gp_wire_tls_exporter(&cli.w, e1), 0);
  ck_assert_int_eq(gp_wire_tls_exporter(&srv.w, e2), 0);
  ck_assert_int_eq(memcmp(e1, e2, sizeof(e1)), 0);

  /* An orderly close reads as GP_ECLOSED on the other side. */
  gp_wire_free(&cli.w);
  ck_assert_int_eq(gp_wire_recv_header(&srv.w, &h), GP_ECLOSED);
  gp_wire_free(&srv.w);
  free(big);
  free(back);
  SSL_CTX_free(srv.ctx);
  SSL_CTX_free(cli.ctx);
}
END_TEST

START_TEST(test_tls_ip_literal_verified) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  char why[256];
  struct side cli = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why,
                                              sizeof(why)),
                     .host = "127.0.0.1"};
  pair(&srv, &cli);
  ck_assert_msg(cli.rc == 0, "client: %s", cli.why);
  gp_wire_free(&cli.w);
  gp_wire_free(&srv.w);
  SSL_CTX_free(srv.ctx);
  SSL_CTX_free(cli.ctx);
}
END_TEST

START_TEST(test_tls_wrong_host_refused) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  char why[256];
  struct side cli = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why,
                                              sizeof(why)),
                     .host = "pool99.example"};
  pair(&srv, &cli);
  ck_assert_int_eq(cli.rc, GP_ETLS);
  ck_assert_msg(strstr(cli.why, "verify") != NULL, "%s", cli.why);
  ck_assert_int_ne(srv.rc, 0);
  SSL_CTX_free(srv.ctx);
  SSL_CTX_free(cli.ctx);
}
END_TEST

START_TEST(test_tls_other_ca_refused) {
  /* The server holds a certificate of another CA. */
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS_OTHER", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS_OTHER")};
  char why[256];
  struct side cli = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why,
                                              sizeof(why)),
                     .host = "localhost"};
  pair(&srv, &cli);
  ck_assert_int_eq(cli.rc, GP_ETLS);
  ck_assert_msg(strstr(cli.why, "certificate verify failed") != NULL, "%s",
                cli.why);
  SSL_CTX_free(srv.ctx);
  SSL_CTX_free(cli.ctx);
}
END_TEST

START_TEST(test_tls_mutual) {
  char why[256];
  /* A server that requires a client certificate of the pool's CA. */
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_REQUIRED,
                                       "GP_TEST_CERTS")};
  struct side cli = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), POOL("broker.pem"),
                                              POOL("broker.key"), why,
                                              sizeof(why)),
                     .host = "localhost"};
  ck_assert_msg(cli.ctx != NULL, "%s", why);
  pair(&srv, &cli);
  ck_assert_msg(srv.rc == 0, "server: %s", srv.why);
  ck_assert_msg(cli.rc == 0, "client: %s", cli.why);
  char subj[256];
  gp_wire_tls_peer(&srv.w, subj, sizeof(subj));
  ck_assert_msg(strstr(subj, "gpupool-broker") != NULL, "%s", subj);
  gp_wire_free(&cli.w);
  gp_wire_free(&srv.w);
  SSL_CTX_free(cli.ctx);

  /* No client certificate: refused. In TLS 1.3 the client learns of it
   * only at its first read, so the server's side is what fails here. */
  struct side cli2 = {.ctx = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why,
                                               sizeof(why)),
                      .host = "localhost"};
  pair(&srv, &cli2);
  ck_assert_int_ne(srv.rc, 0);
  if (cli2.rc == 0)
    gp_wire_free(&cli2.w);
  SSL_CTX_free(cli2.ctx);

  /* A client certificate from another CA: refused. */
  struct side cli3 = {.ctx = gp_tls_client_ctx(POOL("ca.pem"),
                                               OTHER("server.pem"),
                                               OTHER("server.key"), why,
                                               sizeof(why)),
                      .host = "localhost"};
  pair(&srv, &cli3);
  ck_assert_int_eq(srv.rc, GP_ETLS);
  ck_assert_msg(strstr(srv.why, "verify") != NULL, "%s", srv.why);
  if (cli3.rc == 0)
    gp_wire_free(&cli3.w);
  SSL_CTX_free(cli3.ctx);
  SSL_CTX_free(srv.ctx);
}
END_TEST

START_TEST(test_tls_plain_client_refused) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  srv.fd = sv[0];
  srv.server = true;
  /* A plain gpupool frame header where a ClientHello should be. */
  static const uint8_t junk[24] = {'G', 'P', 'P', 'L', 1, 0, 1, 0};
  ck_assert_int_eq(write(sv[1], junk, sizeof(junk)), (ssize_t)sizeof(junk));
  run_side(&srv);
  ck_assert_int_eq(srv.rc, GP_ETLS);
  close(sv[1]);
  SSL_CTX_free(srv.ctx);
}
END_TEST

START_TEST(test_tls_handshake_timeout) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  char why[256];
  int rc = gp_wire_init_tls_server(&srv.w, sv[0], srv.ctx, 200, why,
                                   sizeof(why));
  ck_assert_int_eq(rc, GP_ETIMEDOUT);
  ck_assert_msg(strstr(why, "timed out") != NULL, "%s", why);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(srv.ctx);
}
END_TEST

/* A client context offering another ALPN. */
START_TEST(test_tls_alpn_mismatch) {
  struct side srv = {.ctx = server_ctx("GP_TEST_CERTS", GP_TLS_PEER_NONE,
                                       "GP_TEST_CERTS")};
  char why[256];
  SSL_CTX *c = gp_tls_client_ctx(POOL("ca.pem"), NULL, NULL, why, sizeof(why));
  static const unsigned char other[] = "\x09gpupool/2";
  ck_assert_int_eq(SSL_CTX_set_alpn_protos(c, other, sizeof(other) - 1), 0);
  struct side cli = {.ctx = c, .host = "localhost"};
  pair(&srv, &cli);
  ck_assert_int_eq(srv.rc, GP_ETLS);
  ck_assert_int_ne(cli.rc, 0);
  ck_assert_msg(strstr(cli.why, "ALPN") != NULL || strstr(srv.why, "ALPN"),
                "%s / %s", cli.why, srv.why);
  SSL_CTX_free(srv.ctx);
  SSL_CTX_free(c);
}
END_TEST

/* The in-memory engine (server side) against a blocking client. */
struct mem_server {
  int fd;
  SSL_CTX *ctx;
  char got[64];
  bool verified;
  uint8_t exporter[GP_TLS_EXPORTER_LEN];
};

static void pump_out(struct gp_tls_mem *m, int fd) {
  uint8_t buf[16384];
  size_t n;
  while ((n = gp_tls_mem_out(m, buf, sizeof(buf))) > 0)
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
}

static void *mem_server_run(void *arg) {
  struct mem_server *s = arg;
  char why[256];
  struct gp_tls_mem *m = gp_tls_mem_new(s->ctx, true, NULL, why, sizeof(why));
  size_t have = 0;
  while (have < 5) {
    uint8_t buf[4096];
    ssize_t n = read(s->fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    if (gp_tls_mem_in(m, buf, (size_t)n, why, sizeof(why)) != 0)
      break;
    pump_out(m, s->fd);
    long r = gp_tls_mem_read(m, s->got + have, sizeof(s->got) - have - 1, why,
                             sizeof(why));
    if (r > 0)
      have += (size_t)r;
  }
  s->verified = gp_tls_mem_peer_verified(m);
  gp_tls_mem_exporter(m, s->exporter);
  gp_tls_mem_write(m, "world", 5, why, sizeof(why));
  pump_out(m, s->fd);
  gp_tls_mem_shutdown(m);
  pump_out(m, s->fd);
  gp_tls_mem_free(m);
  return NULL;
}

START_TEST(test_tls_mem_engine) {
  struct mem_server s = {.ctx = server_ctx("GP_TEST_CERTS",
                                           GP_TLS_PEER_OPTIONAL,
                                           "GP_TEST_CERTS")};
  char why[256];
  SSL_CTX *c = gp_tls_client_ctx(POOL("ca.pem"), POOL("server.pem"),
                                 POOL("server.key"), why, sizeof(why));
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  s.fd = sv[0];
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, mem_server_run, &s), 0);
  struct gp_wire w;
  ck_assert_int_eq(gp_wire_init_tls_client(&w, sv[1], c, "localhost", 5000,
                                           why, sizeof(why)),
                   0);
  struct iovec iov = {.iov_base = "hello", .iov_len = 5};
  ck_assert_int_eq(w.ops->writev(w.ctx, &iov, 1), 5);
  char back[6] = {0};
  ck_assert_int_eq(w.ops->read(w.ctx, back, 5), 5);
  ck_assert_str_eq(back, "world");
  pthread_join(t, NULL);
  ck_assert_str_eq(s.got, "hello");
  ck_assert(s.verified);
  uint8_t e[GP_TLS_EXPORTER_LEN];
  ck_assert_int_eq(gp_wire_tls_exporter(&w, e), 0);
  ck_assert_int_eq(memcmp(e, s.exporter, sizeof(e)), 0);
  gp_wire_free(&w);
  close(sv[0]);
  SSL_CTX_free(s.ctx);
  SSL_CTX_free(c);
}
END_TEST

START_TEST(test_tls_bad_files) {
  char why[256];
  struct gp_tls_pem pem;
  ck_assert_int_eq(gp_tls_pem_load(&pem, "/nonexistent/x.pem", NULL, NULL, why,
                                   sizeof(why)),
                   GP_EIO);
  ck_assert_msg(strstr(why, "/nonexistent/x.pem") != NULL, "%s", why);
  /* A key that is not the certificate's. */
  ck_assert_int_eq(gp_tls_pem_load(&pem, POOL("server.pem"), POOL("broker.key"),
                                   NULL, why, sizeof(why)),
                   0);
  ck_assert_ptr_null(gp_tls_server_ctx(&pem, GP_TLS_PEER_NONE, why,
                                       sizeof(why)));
  ck_assert_msg(strstr(why, "does not match") != NULL, "%s", why);
  gp_tls_pem_free(&pem);
  /* A CA file with no certificate in it. */
  ck_assert_ptr_null(gp_tls_client_ctx(POOL("server.key"), NULL, NULL, why,
                                       sizeof(why)));
  ck_assert_msg(strstr(why, "no PEM certificate") != NULL, "%s", why);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("tls");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_tls_round_trip);
  tcase_add_test(tc, test_tls_ip_literal_verified);
  tcase_add_test(tc, test_tls_wrong_host_refused);
  tcase_add_test(tc, test_tls_other_ca_refused);
  tcase_add_test(tc, test_tls_mutual);
  tcase_add_test(tc, test_tls_plain_client_refused);
  tcase_add_test(tc, test_tls_handshake_timeout);
  tcase_add_test(tc, test_tls_alpn_mismatch);
  tcase_add_test(tc, test_tls_mem_engine);
  tcase_add_test(tc, test_tls_bad_files);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
