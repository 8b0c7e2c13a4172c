/* TLS 1.3 for every gpupool link: contexts, a blocking gp_wire transport,
 * and an in-memory engine for event loops. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "gpupool/errors.h"

#define PEM_MAX (1u << 20)

/* ---- Errors ------------------------------------------------------------------- */

static void say(char *why, size_t why_len, const char *msg) {
  if (why != NULL && why_len > 0)
    snprintf(why, why_len, "%s", msg);
}

/* |what| plus OpenSSL's most specific queued reason; clears the queue. */
static void ssl_why(char *why, size_t why_len, const char *what) {
  unsigned long e, last = 0;
  while ((e = ERR_get_error()) != 0)
    last = e;
  if (why == NULL || why_len == 0)
    return;
  if (last == 0) {
    snprintf(why, why_len, "%s", what);
    return;
  }
  char buf[256];
  ERR_error_string_n(last, buf, sizeof(buf));
  const char *reason = ERR_reason_error_string(last);
  snprintf(why, why_len, "%s: %s", what, reason != NULL ? reason : buf);
}

/* A handshake failure, with the verification result when there is one. */
static void handshake_why(SSL *ssl, char *why, size_t why_len,
                          const char *side) {
  long v = SSL_get_verify_result(ssl);
  unsigned long last = 0, e;
  while ((e = ERR_peek_error()) != 0) {
    last = e;
    ERR_get_error();
  }
  if (why == NULL || why_len == 0)
    return;
  const char *reason = last ? ERR_reason_error_string(last) : NULL;
  if (v != X509_V_OK) {
    snprintf(why, why_len,
             "TLS handshake with the %s failed: certificate verify failed: "
             "%s (is the CA the pool's? gen-certs.sh makes one)",
             side, X509_verify_cert_error_string(v));
  } else if (reason != NULL && strstr(reason, "application protocol") != NULL) {
    snprintf(why, why_len,
             "TLS handshake with the %s failed: %s (ALPN " GP_TLS_ALPN
             " refused: not a gpupool peer, or another protocol version)",
             side, reason);
  } else if (reason != NULL && strstr(reason, "unexpected eof") != NULL) {
    snprintf(why, why_len,
             "TLS handshake with the %s failed: the connection was closed "
             "(%s)",
             side, strcmp(side, "server") == 0
                       ? "is the server running with --insecure, plain TCP?"
                       : "the client gave up, or does not speak TLS");
  } else if (reason != NULL && strstr(reason, "wrong version number") != NULL) {
    snprintf(why, why_len,
             "TLS handshake with the %s failed: %s (is the peer running "
             "with --insecure, plain TCP?)",
             side, reason);
  } else {
    snprintf(why, why_len, "TLS handshake with the %s failed: %s", side,
             reason != NULL ? reason : "connection closed during handshake");
  }
}

/* ---- Files ------------------------------------------------------------------ */

char *gp_tls_read_file(const char *path, size_t *len, char *why,
                       size_t why_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (why != NULL && why_len > 0)
      snprintf(why, why_len, "%s: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > (off_t)PEM_MAX) {
    if (why != NULL && why_len > 0)
      snprintf(why, why_len, "%s: not a regular file of at most 1 MiB", path);
    close(fd);
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  if (buf == NULL) {
    if (why != NULL && why_len > 0)
      snprintf(why, why_len, "%s: out of memory", path);
    close(fd);
    return NULL;
  }
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (why != NULL && why_len > 0)
        snprintf(why, why_len, "%s: %s", path,
                 n < 0 ? strerror(errno) : "file shrank while being read");
      free(buf);
      close(fd);
      return NULL;
    }
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  *len = got;
  return buf;
}

int gp_tls_pem_load(struct gp_tls_pem *pem, const char *cert, const char *key,
                    const char *ca, char *why, size_t why_len) {
  memset(pem, 0, sizeof(*pem));
  char *c = NULL, *k = NULL, *a = NULL;
  if (cert != NULL &&
      (c = gp_tls_read_file(cert, &pem->cert_len, why, why_len)) == NULL)
    goto fail;
  if (key != NULL &&
      (k = gp_tls_read_file(key, &pem->key_len, why, why_len)) == NULL)
    goto fail;
  if (ca != NULL &&
      (a = gp_tls_read_file(ca, &pem->ca_len, why, why_len)) == NULL)
    goto fail;
  pem->cert = c;
  pem->key = k;
  pem->ca = a;
  return 0;
fail:
  free(c);
  free(k);
  free(a);
  memset(pem, 0, sizeof(*pem));
  return GP_EIO;
}

void gp_tls_pem_free(struct gp_tls_pem *pem) {
  if (pem->key != NULL)
    OPENSSL_cleanse((void *)pem->key, pem->key_len);
  free((void *)pem->cert);
  free((void *)pem->key);
  free((void *)pem->ca);
  memset(pem, 0, sizeof(*pem));
}

/* ---- Contexts --------------------------------------------------------------- */

static const unsigned char alpn_wire[] = "\x09gpupool/1";

static int select_alpn(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, alpn_wire, sizeof(alpn_wire) - 1,
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method, char *why, size_t why_len) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (ctx == NULL) {
    ssl_why(why, why_len, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  /* Renegotiation does not exist in 1.3; no session tickets: every
   * connection is one full handshake, and no ticket key to rotate. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_AUTO_RETRY);
  return ctx;
}

/* Adds every certificate of a PEM bundle to |ctx|'s trust store. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem, size_t len, char *why,
                      size_t why_len) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  X509 *x;
  if (bio == NULL)
    return GP_ENOMEM;
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(store, x) != 1) {
      X509_free(x);
      BIO_free(bio);
      ssl_why(why, why_len, "cannot add a CA certificate");
      return GP_ETLS;
    }
    X509_free(x);
    n++;
  }
  ERR_clear_error(); /* the end of the bundle reads as an error */
  BIO_free(bio);
  if (n == 0) {
    say(why, why_len, "the CA file holds no PEM certificate");
    return GP_ETLS;
  }
  return 0;
}

/* pem_password_cb that gives no passphrase: an encrypted key fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return 0;
}

static int use_cert_key(SSL_CTX *ctx, const struct gp_tls_pem *pem,
                        char *why, size_t why_len) {
  BIO *bio = BIO_new_mem_buf(pem->cert, (int)pem->cert_len);
  X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  if (leaf == NULL) {
    BIO_free(bio);
    ssl_why(why, why_len, "the certificate file holds no PEM certificate");
    return GP_ETLS;
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    BIO_free(bio);
    ssl_why(why, why_len, "cannot use the certificate");
    return GP_ETLS;
  }
  X509_free(leaf);
  /* The rest of the file is the chain. */
  X509 *x;
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
      X509_free(x);
      BIO_free(bio);
      ssl_why(why, why_len, "cannot use the certificate chain");
      return GP_ETLS;
    }
  }
  ERR_clear_error();
  BIO_free(bio);

  bio = BIO_new_mem_buf(pem->key, (int)pem->key_len);
  /* No passphrase prompt: a daemon must not wait on a terminal. */
  EVP_PKEY *pkey =
      bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  if (pkey == NULL) {
    ssl_why(why, why_len, "the key file holds no usable PEM private key "
            "(encrypted keys are not supported)");
    return GP_ETLS;
  }
  int ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
  EVP_PKEY_free(pkey);
  if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
    ssl_why(why, why_len, "the key does not match the certificate");
    return GP_ETLS;
  }
  return 0;
}

SSL_CTX *gp_tls_server_ctx(const struct gp_tls_pem *pem, enum gp_tls_peer peer,
                           char *why, size_t why_len) {
  if (pem->cert == NULL || pem->key == NULL) {
    say(why, why_len, "a TLS server needs a certificate and its key");
    return NULL;
  }
  if (peer != GP_TLS_PEER_NONE && pem->ca == NULL) {
    say(why, why_len, "verifying peers' certificates needs a CA file");
    return NULL;
  }
  SSL_CTX *ctx = new_ctx(TLS_server_method(), why, why_len);
  if (ctx == NULL)
    return NULL;
  if (use_cert_key(ctx, pem, why, why_len) != 0)
    goto fail;
  if (pem->ca != NULL && add_ca_pem(ctx, pem->ca, pem->ca_len, why,
                                    why_len) != 0)
    goto fail;
  if (peer == GP_TLS_PEER_OPTIONAL)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  else if (peer == GP_TLS_PEER_REQUIRED)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

SSL_CTX *gp_tls_client_ctx(const char *ca_file, const char *cert_file,
                           const char *key_file, char *why, size_t why_len) {
  if ((cert_file == NULL) != (key_file == NULL)) {
    say(why, why_len, "a client certificate needs its key, and back");
    return NULL;
  }
  SSL_CTX *ctx = new_ctx(TLS_client_method(), why, why_len);
  if (ctx == NULL)
    return NULL;
  if (ca_file != NULL) {
    size_t len;
    char *pem = gp_tls_read_file(ca_file, &len, why, why_len);
    if (pem == NULL)
      goto fail;
    int rc = add_ca_pem(ctx, pem, len, why, why_len);
    free(pem);
    if (rc != 0)
      goto fail;
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    ssl_why(why, why_len, "cannot load the system's CA store");
    goto fail;
  }
  if (cert_file != NULL) {
    struct gp_tls_pem pem;
    if (gp_tls_pem_load(&pem, cert_file, key_file, NULL, why, why_len) != 0)
      goto fail;
    int rc = use_cert_key(ctx, &pem, why, why_len);
    gp_tls_pem_free(&pem);
    if (rc != 0)
      goto fail;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (SSL_CTX_set_alpn_protos(ctx, alpn_wire, sizeof(alpn_wire) - 1) != 0) {
    ssl_why(why, why_len, "cannot set ALPN");
    goto fail;
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

/* Names the peer to verify: an IP literal against IP SANs, else a DNS name
 * (also sent as SNI). */
static int set_peer_name(SSL *ssl, const char *host, char *why,
                         size_t why_len) {
  if (host == NULL || host[0] == '\0') {
    say(why, why_len, "no host name to verify the server against");
    return GP_EINVAL;
  }
  X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
  unsigned char addr[16];
  if (inet_pton(AF_INET, host, addr) == 1 ||
      inet_pton(AF_INET6, host, addr) == 1) {
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
      ssl_why(why, why_len, "cannot set the address to verify");
      return GP_ETLS;
    }
    return 0;
  }
  X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, host) != 1 ||
      SSL_set_tlsext_host_name(ssl, host) != 1) {
    ssl_why(why, why_len, "cannot set the host name to verify");
    return GP_ETLS;
  }
  return 0;
}

/* After a client handshake: the server must have picked our ALPN. */
static int check_alpn(SSL *ssl, char *why, size_t why_len) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  if (n != sizeof(alpn_wire) - 2 || memcmp(p, alpn_wire + 1, n) != 0) {
    say(why, why_len, "the TLS peer did not select ALPN " GP_TLS_ALPN
        " (not a gpupool peer, or another protocol version)");
    return GP_ETLS;
  }
  return 0;
}

/* ---- A socket BIO that never raises SIGPIPE ----------------------------------- */

/* OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE in
 * the application that loaded the client library when the peer is gone;
 * this one sends with MSG_NOSIGNAL. The BIO's data is the connection.
 *
 * Reads after the handshake honour the wire's timeout_ms: the wire polls
 * before it reads, but a poll that saw the first bytes of a TLS record
 * says nothing of the rest, and SSL_read() blocks until the record is
 * whole; a peer that stopped half way through one (a server that was
 * SIGSTOPped mid-reply) would hang the reader for ever. So each recv()
 * that finds nothing waits at most timeout_ms, then fails with EAGAIN,
 * which the transport reports as GP_ETIMEDOUT. */
struct tls_conn {
  SSL *ssl;
  int fd;
  const int *timeout_ms; /* the wire's; NULL during the handshake */
  /* One SSL call at a time: an SSL object is not thread-safe, even for a
   * read in one thread and a write in another, and the server's worker
   * has two writers of its wire (the heartbeat thread sends BUSY notices
   * while the worker's thread may be reading a request's payload). */
  pthread_mutex_t lock;
};

static int fdbio_fd(BIO *b) {
  return ((struct tls_conn *)BIO_get_data(b))->fd;
}

static int fdbio_write(BIO *b, const char *buf, size_t len, size_t *done) {
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t n = send(fdbio_fd(b), buf, len, MSG_NOSIGNAL);
    if (n >= 0) {
      *done = (size_t)n;
      return 1;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(b);
    return 0;
  }
}

static int fdbio_read(BIO *b, char *buf, size_t len, size_t *done) {
  const struct tls_conn *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t n = recv(t->fd, buf, len, t->timeout_ms ? MSG_DONTWAIT : 0);
    if (n > 0) {
      *done = (size_t)n;
      return 1;
    }
    if (n == 0) {
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (t->timeout_ms && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
      int pr = poll(&pfd, 1, *t->timeout_ms);
      if (pr > 0 || (pr < 0 && errno == EINTR))
        continue;
      if (pr == 0)
        errno = EAGAIN;
      if (errno == EAGAIN)
        BIO_set_retry_read(b);
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(b);
    return 0;
  }
}

static long fdbio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
  default:
    return 0;
  }
}

static BIO_METHOD *fdbio_method;
static pthread_once_t fdbio_once = PTHREAD_ONCE_INIT;

static void fdbio_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                   BIO_TYPE_DESCRIPTOR,
                               "gpupool socket");
  if (m == NULL)
    return;
  BIO_meth_set_write_ex(m, fdbio_write);
  BIO_meth_set_read_ex(m, fdbio_read);
  BIO_meth_set_ctrl(m, fdbio_ctrl);
  fdbio_method = m;
}

/* A BIO on |t|'s fd that owns neither. */
static BIO *fdbio_new(struct tls_conn *t) {
  pthread_once(&fdbio_once, fdbio_init);
  if (fdbio_method == NULL)
    return NULL;
  BIO *b = BIO_new(fdbio_method);
  if (b == NULL)
    return NULL;
  BIO_set_data(b, t);
  BIO_set_init(b, 1);
  return b;
}

/* ---- The blocking transport ----------------------------------------------------- */

static long tls_read_locked(struct tls_conn *t, void *buf, size_t len) {
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    int ok = SSL_read_ex(t->ssl, buf, len, &got);
    if (ok == 1)
      return (long)got;
    int e = SSL_get_error(t->ssl, ok);
    if (e == SSL_ERROR_ZERO_RETURN)
      return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      /* A blocking socket with SO_RCVTIMEO set, or a post-handshake
       * message: wait for the socket and go on. */
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return GP_ETIMEDOUT;
      continue;
    }
    if (e == SSL_ERROR_SYSCALL) {
      if (errno == EINTR)
        continue;
      if (errno == ETIMEDOUT || errno == EAGAIN)
        return GP_ETIMEDOUT;
      return GP_ECLOSED; /* EOF without close_notify, or a reset */
    }
    /* OpenSSL 3 reports an EOF without close_notify as an SSL error, not
     * SSL_ERROR_SYSCALL: the peer is gone all the same (a server that
     * shut its socket down after a ProtocolError, a killed process). */
    if (ERR_GET_REASON(ERR_peek_last_error()) ==
        SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      ERR_clear_error();
      return GP_ECLOSED;
    }
    ERR_clear_error();
    return GP_EIO;
  }
}

static long tls_read(void *ctx, void *buf, size_t len) {
  struct tls_conn *t = ctx;
  pthread_mutex_lock(&t->lock);
  long n = tls_read_locked(t, buf, len);
  pthread_mutex_unlock(&t->lock);
  return n;
}

static long tls_writev_locked(struct tls_conn *t, const struct iovec *iov,
                              int iovcnt) {
  /* TLS records hold up to 16 KiB; write the first buffer (a partial
   * write is allowed: the wire loops). */
  int i = 0;
  while (i < iovcnt && iov[i].iov_len == 0)
    i++;
  if (i == iovcnt)
    return 0;
  for (;;) {
    size_t put = 0;
    ERR_clear_error();
    int ok = SSL_write_ex(t->ssl, iov[i].iov_base, iov[i].iov_len, &put);
    if (ok == 1)
      return (long)put;
    int e = SSL_get_error(t->ssl, ok);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return GP_ETIMEDOUT;
      continue;
    }
    if (e == SSL_ERROR_SYSCALL) {
      if (errno == EINTR)
        continue;
      if (errno == ETIMEDOUT || errno == EAGAIN)
        return GP_ETIMEDOUT;
      return GP_ECLOSED;
    }
    ERR_clear_error();
    return GP_EIO;
  }
}

static long tls_writev(void *ctx, const struct iovec *iov, int iovcnt) {
  struct tls_conn *t = ctx;
  pthread_mutex_lock(&t->lock);
  long n = tls_writev_locked(t, iov, iovcnt);
  pthread_mutex_unlock(&t->lock);
  return n;
}

static size_t tls_pending(void *ctx) {
  struct tls_conn *t = ctx;
  pthread_mutex_lock(&t->lock);
  size_t n = (size_t)SSL_pending(t->ssl);
  pthread_mutex_unlock(&t->lock);
  return n;
}

static void tls_close(void *ctx) {
  struct tls_conn *t = ctx;
  if (t == NULL)
    return;
  /* One close_notify, never waiting for the peer's. */
  int fl = fcntl(t->fd, F_GETFL);
  if (fl >= 0)
    fcntl(t->fd, F_SETFL, fl | O_NONBLOCK);
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
  SSL_free(t->ssl);
  close(t->fd);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

static const struct gp_transport_ops transport_tls = {
  .name = "tls",
  .read = tls_read,
  .writev = tls_writev,
  .pending = tls_pending,
  .close = tls_close,
};

bool gp_wire_is_tls(const struct gp_wire *w) {
  return w->ops == &transport_tls;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs SSL_do_handshake on a non-blocking |fd| until done or the deadline. */
static int handshake(SSL *ssl, int fd, int timeout_ms, const char *side,
                     char *why, size_t why_len) {
  long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
  for (;;) {
    ERR_clear_error();
    int ok = SSL_do_handshake(ssl);
    if (ok == 1)
      return 0;
    int e = SSL_get_error(ssl, ok);
    short events;
    if (e == SSL_ERROR_WANT_READ)
      events = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
      events = POLLOUT;
    else if (e == SSL_ERROR_SYSCALL && errno == EINTR)
      continue;
    else {
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(why, why_len,
                 "TLS handshake with the %s failed: the connection was "
                 "closed (%s)", side,
                 errno ? strerror(errno) : "end of stream");
        return GP_ECLOSED;
      }
      handshake_why(ssl, why, why_len, side);
      return GP_ETLS;
    }
    int wait = -1;
    if (deadline >= 0) {
      long long left = deadline - now_ms();
      if (left <= 0) {
        snprintf(why, why_len, "TLS handshake with the %s timed out after "
                 "%d ms", side, timeout_ms);
        return GP_ETIMEDOUT;
      }
      wait = (int)left;
    }
    struct pollfd pfd = {.fd = fd, .events = events};
    int pr = poll(&pfd, 1, wait);
    if (pr < 0 && errno != EINTR) {
      snprintf(why, why_len, "TLS handshake: poll: %s", strerror(errno));
      return GP_EIO;
    }
  }
}

static int wire_init_tls(struct gp_wire *w, int fd, SSL_CTX *ctx, bool server,
                         const char *host, int timeout_ms, char *why,
                         size_t why_len) {
  const char *side = server ? "client" : "server";
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) {
    ssl_why(why, why_len, "cannot create a TLS connection");
    return GP_ENOMEM;
  }
  int rc;
  if (!server && (rc = set_peer_name(ssl, host, why, why_len)) != 0) {
    SSL_free(ssl);
    return rc;
  }
  struct tls_conn *t = malloc(sizeof(*t));
  if (t == NULL) {
    snprintf(why, why_len, "out of memory");
    SSL_free(ssl);
    return GP_ENOMEM;
  }
  t->ssl = ssl;
  t->fd = fd;
  t->timeout_ms = NULL;
  pthread_mutex_init(&t->lock, NULL);
  BIO *bio = fdbio_new(t);
  if (bio == NULL) {
    ssl_why(why, why_len, "cannot attach the socket to TLS");
    SSL_free(ssl);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return GP_ENOMEM;
  }
  SSL_set_bio(ssl, bio, bio); /* the SSL owns the BIO, not the fd */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    snprintf(why, why_len, "fcntl: %s", strerror(errno));
    SSL_free(ssl);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return GP_EIO;
  }
  if (server)
    SSL_set_accept_state(ssl);
  else
    SSL_set_connect_state(ssl);
  rc = handshake(ssl, fd, timeout_ms, side, why, why_len);
  if (rc == 0 && !server)
    rc = check_alpn(ssl, why, why_len);
  /* Back to blocking for the wire's reads and writes. */
  if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 && rc == 0) {
    snprintf(why, why_len, "fcntl: %s", strerror(errno));
    rc = GP_EIO;
  }
  if (rc != 0) {
    SSL_free(ssl); /* no close_notify: the peer is not one of ours */
    pthread_mutex_destroy(&t->lock);
    free(t);
    return rc;
  }
  rc = gp_wire_init_fd(w, fd);
  if (rc != 0) {
    SSL_free(ssl);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return rc;
  }
  w->ops = &transport_tls;
  w->ctx = t;
  /* |w| stays where it is from now on (its owners embed it). */
  t->timeout_ms = &w->timeout_ms;
  return 0;
}

int gp_wire_init_tls_client(struct gp_wire *w, int fd, SSL_CTX *ctx,
                            const char *host, int timeout_ms, char *why,
                            size_t why_len) {
  return wire_init_tls(w, fd, ctx, false, host, timeout_ms, why, why_len);
}

int gp_wire_init_tls_server(struct gp_wire *w, int fd, SSL_CTX *ctx,
                            int timeout_ms, char *why, size_t why_len) {
  return wire_init_tls(w, fd, ctx, true, NULL, timeout_ms, why, why_len);
}

int gp_wire_tls_exporter(struct gp_wire *w, uint8_t out[GP_TLS_EXPORTER_LEN]) {
  if (!gp_wire_is_tls(w))
    return GP_ENOTSUP;
  struct tls_conn *t = w->ctx;
  pthread_mutex_lock(&t->lock);
  int ok = SSL_export_keying_material(t->ssl, out, GP_TLS_EXPORTER_LEN,
                                      GP_TLS_EXPORTER_LABEL,
                                      sizeof(GP_TLS_EXPORTER_LABEL) - 1,
                                      NULL, 0, 0);
  if (ok != 1)
    ERR_clear_error();
  pthread_mutex_unlock(&t->lock);
  return ok == 1 ? 0 : GP_ETLS;
}

static void peer_subject(SSL *ssl, char *out, size_t out_len) {
  X509 *x = SSL_get0_peer_certificate(ssl);
  if (out_len == 0)
    return;
  if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
    snprintf(out, out_len, "-");
    return;
  }
  X509_NAME_oneline(X509_get_subject_name(x), out, (int)out_len);
}

void gp_wire_tls_peer(struct gp_wire *w, char *out, size_t out_len) {
  if (!gp_wire_is_tls(w)) {
    if (out_len > 0)
      snprintf(out, out_len, "-");
    return;
  }
  peer_subject(((struct tls_conn *)w->ctx)->ssl, out, out_len);
}

/* ---- In memory ------------------------------------------------------------------ */

struct gp_tls_mem {
  SSL *ssl;
  BIO *in;   /* ciphertext from the network */
  BIO *out;  /* ciphertext to the network */
  bool server;
  bool ready;
  bool failed;
  uint8_t *pend; /* plaintext written before the handshake finished */
  size_t pend_len, pend_cap;
};

struct gp_tls_mem *gp_tls_mem_new(SSL_CTX *ctx, bool server, const char *host,
                                  char *why, size_t why_len) {
  struct gp_tls_mem *m = calloc(1, sizeof(*m));
  if (m == NULL) {
    say(why, why_len, "out of memory");
    return NULL;
  }
  m->server = server;
  m->ssl = SSL_new(ctx);
  m->in = BIO_new(BIO_s_mem());
  m->out = BIO_new(BIO_s_mem());
  if (m->ssl == NULL || m->in == NULL || m->out == NULL) {
    ssl_why(why, why_len, "cannot create a TLS connection");
    goto fail;
  }
  BIO_set_mem_eof_return(m->in, -1);
  BIO_set_mem_eof_return(m->out, -1);
  SSL_set_bio(m->ssl, m->in, m->out); /* the SSL owns both now */
  if (server) {
    SSL_set_accept_state(m->ssl);
  } else {
    if (set_peer_name(m->ssl, host, why, why_len) != 0)
      goto fail_ssl;
    SSL_set_connect_state(m->ssl);
    ERR_clear_error();
    int ok = SSL_do_handshake(m->ssl);
    int e = SSL_get_error(m->ssl, ok);
    if (ok != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      ssl_why(why, why_len, "TLS handshake could not start");
      goto fail_ssl;
    }
  }
  return m;
fail:
  if (m->ssl == NULL || m->in == NULL || m->out == NULL) {
    BIO_free(m->in);
    BIO_free(m->out);
    SSL_free(m->ssl);
    free(m);
    return NULL;
  }
fail_ssl:
  SSL_free(m->ssl);
  free(m);
  return NULL;
}

void gp_tls_mem_free(struct gp_tls_mem *m) {
  if (m == NULL)
    return;
  SSL_free(m->ssl);
  if (m->pend != NULL)
    OPENSSL_cleanse(m->pend, m->pend_cap);
  free(m->pend);
  free(m);
}

/* Pushes plaintext queued during the handshake. */
static int flush_pending(struct gp_tls_mem *m, char *why, size_t why_len) {
  size_t off = 0;
  while (off < m->pend_len) {
    size_t put = 0;
    ERR_clear_error();
    if (SSL_write_ex(m->ssl, m->pend + off, m->pend_len - off, &put) != 1) {
      ssl_why(why, why_len, "TLS write failed");
      m->failed = true;
      return GP_ETLS;
    }
    off += put;
  }
  m->pend_len = 0;
  return 0;
}

/* Advances the handshake; 0 (done or still running) or GP_ETLS. */
static int step(struct gp_tls_mem *m, char *why, size_t why_len) {
  if (m->ready || m->failed)
    return m->failed ? GP_ETLS : 0;
  ERR_clear_error();
  int ok = SSL_do_handshake(m->ssl);
  if (ok == 1) {
    if (!m->server && check_alpn(m->ssl, why, why_len) != 0) {
      m->failed = true;
      return GP_ETLS;
    }
    m->ready = true;
    return flush_pending(m, why, why_len);
  }
  int e = SSL_get_error(m->ssl, ok);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  handshake_why(m->ssl, why, why_len, m->server ? "client" : "server");
  m->failed = true;
  return GP_ETLS;
}

int gp_tls_mem_in(struct gp_tls_mem *m, const void *data, size_t len,
                  char *why, size_t why_len) {
  if (m->failed) {
    say(why, why_len, "TLS connection already failed");
    return GP_ETLS;
  }
  if (len > 0 && BIO_write(m->in, data, (int)len) != (int)len) {
    say(why, why_len, "out of memory");
    m->failed = true;
    return GP_ENOMEM;
  }
  return step(m, why, why_len);
}

long gp_tls_mem_read(struct gp_tls_mem *m, void *buf, size_t len, char *why,
                     size_t why_len) {
  int rc = step(m, why, why_len);
  if (rc != 0)
    return rc;
  if (!m->ready)
    return 0;
  size_t got = 0;
  ERR_clear_error();
  if (SSL_read_ex(m->ssl, buf, len, &got) == 1)
    return (long)got;
  int e = SSL_get_error(m->ssl, 0);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  if (e == SSL_ERROR_ZERO_RETURN)
    return GP_ECLOSED;
  ssl_why(why, why_len, "TLS read failed");
  m->failed = true;
  return GP_ETLS;
}

int gp_tls_mem_write(struct gp_tls_mem *m, const void *data, size_t len,
                     char *why, size_t why_len) {
  if (m->failed) {
    say(why, why_len, "TLS connection already failed");
    return GP_ETLS;
  }
  if (!m->ready) {
    if (m->pend_len + len > m->pend_cap) {
      size_t cap = m->pend_cap ? m->pend_cap : 4096;
      while (cap < m->pend_len + len)
        cap *= 2;
      uint8_t *p = realloc(m->pend, cap);
      if (p == NULL) {
        say(why, why_len, "out of memory");
        return GP_ENOMEM;
      }
      m->pend = p;
      m->pend_cap = cap;
    }
    memcpy(m->pend + m->pend_len, data, len);
    m->pend_len += len;
    return 0;
  }
  size_t off = 0;
  while (off < len) {
    size_t put = 0;
    ERR_clear_error();
    if (SSL_write_ex(m->ssl, (const uint8_t *)data + off, len - off, &put) !=
        1) {
      ssl_why(why, why_len, "TLS write failed");
      m->failed = true;
      return GP_ETLS;
    }
    off += put;
  }
  return 0;
}

size_t gp_tls_mem_out(struct gp_tls_mem *m, void *buf, size_t len) {
  if (len > INT32_MAX)
    len = INT32_MAX;
  int n = BIO_read(m->out, buf, (int)len);
  return n > 0 ? (size_t)n : 0;
}

size_t gp_tls_mem_out_pending(const struct gp_tls_mem *m) {
  return (size_t)BIO_ctrl_pending(m->out);
}

bool gp_tls_mem_ready(const struct gp_tls_mem *m) { return m->ready; }

void gp_tls_mem_shutdown(struct gp_tls_mem *m) {
  if (m->ready && !m->failed) {
    ERR_clear_error();
    SSL_shutdown(m->ssl);
    ERR_clear_error();
  }
}

void gp_tls_mem_peer(const struct gp_tls_mem *m, char *out, size_t out_len) {
  peer_subject(m->ssl, out, out_len);
}

bool gp_tls_mem_peer_verified(const struct gp_tls_mem *m) {
  return m->ready && SSL_get0_peer_certificate(m->ssl) != NULL &&
         SSL_get_verify_result(m->ssl) == X509_V_OK;
}

int gp_tls_mem_exporter(struct gp_tls_mem *m,
                        uint8_t out[GP_TLS_EXPORTER_LEN]) {
  if (!m->ready)
    return GP_EAGAIN;
  if (SSL_export_keying_material(m->ssl, out, GP_TLS_EXPORTER_LEN,
                                 GP_TLS_EXPORTER_LABEL,
                                 sizeof(GP_TLS_EXPORTER_LABEL) - 1, NULL, 0,
                                 0) != 1) {
    ERR_clear_error();
    return GP_ETLS;
  }
  return 0;
}
