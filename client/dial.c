/* Addresses and connecting, for the pool server and the broker: parses
 * "host[:port]" and connects within a deadline (non-blocking connect and
 * poll(), so that an address that drops packets costs the timeout, not
 * the kernel's minutes). Used by conn.c, broker.c and the CLI. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include "broker.h"
#include "gpupool/errors.h"
#include "gpupool/gpupool.h"
#include "tls.h"
#include "wire.h"

long long gp__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gp__parse_hostport(const char *s, int def_port, const char *what,
                       struct gp__hostport *hp, char *why, size_t why_len) {
  const char *host = s, *port = NULL;
  size_t host_len;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL) {
      snprintf(why, why_len, "missing ']' in %s=%s", what, s);
      return -1;
    }
    host = s + 1;
    host_len = (size_t)(close - host);
    if (close[1] == ':')
      port = close + 2;
    else if (close[1] != '\0') {
      snprintf(why, why_len, "junk after ']' in %s=%s", what, s);
      return -1;
    }
  } else {
    const char *colon = strrchr(s, ':');
    /* More than one colon and no brackets: a bare IPv6 address. */
    if (colon != NULL && strchr(s, ':') == colon) {
      host_len = (size_t)(colon - s);
      port = colon + 1;
    } else {
      host_len = strlen(s);
    }
  }
  if (host_len == 0 || host_len >= sizeof(hp->host)) {
    snprintf(why, why_len, "bad host in %s=%s", what, s);
    return -1;
  }
  memcpy(hp->host, host, host_len);
  hp->host[host_len] = '\0';
  hp->port = def_port;
  if (port != NULL) {
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
      snprintf(why, why_len, "bad port in %s=%s", what, s);
      return -1;
    }
    hp->port = (int)p;
  }
  snprintf(hp->addr, sizeof(hp->addr), strchr(hp->host, ':') ? "[%s]:%d"
                                                             : "%s:%d",
           hp->host, hp->port);
  return 0;
}

/* Connects one socket to |ai| by |deadline|. Returns the fd (blocking
 * again) or -1 with errno set. */
static int connect_one(const struct addrinfo *ai, long long deadline) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  ai->ai_protocol);
  if (fd < 0)
    return -1;
  int err = 0;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    if (errno != EINPROGRESS) {
      err = errno;
      goto out;
    }
    for (;;) {
      long long left = deadline - gp__mono_ms();
      if (left <= 0) {
        err = ETIMEDOUT;
        goto out;
      }
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      int pr = poll(&pfd, 1, (int)left);
      if (pr < 0 && errno == EINTR)
        continue;
      if (pr < 0) {
        err = errno;
        goto out;
      }
      if (pr == 0) {
        err = ETIMEDOUT;
        goto out;
      }
      socklen_t len = sizeof(err);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
      goto out;
    }
  }
out:
  if (err == 0) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
      err = errno;
  }
  if (err != 0) {
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int gp__dial(const struct gp__hostport *hp, int timeout_ms, char *why,
             size_t why_len) {
  char port[16];
  snprintf(port, sizeof(port), "%d", hp->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(hp->host, port, &hints, &res);
  if (rc != 0) {
    snprintf(why, why_len, "cannot resolve %s: %s", hp->host,
             gai_strerror(rc));
    return -1;
  }
  long long deadline = gp__mono_ms() + timeout_ms;
  int fd = -1, err = 0;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    fd = connect_one(ai, deadline);
    if (fd < 0)
      err = errno;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    if (err == ETIMEDOUT)
      snprintf(why, why_len, "cannot connect to %s: no answer within %.1f s",
               hp->addr, timeout_ms / 1000.0);
    else
      snprintf(why, why_len, "cannot connect to %s: %s", hp->addr,
               strerror(err));
  }
  return fd;
}

/* ---- TLS or plain ------------------------------------------------------------ */

/* 1, 0, or -1 for a value that is no boolean. NULL or "" is 0. */
static int parse_bool(const char *v) {
  if (v == NULL || *v == '\0' || strcmp(v, "0") == 0 ||
      strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0)
    return 0;
  if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
      strcasecmp(v, "yes") == 0)
    return 1;
  return -1;
}

int gp__tls_opts_resolve(const struct gp__conf *cf, struct gp__tls_opts *o,
                         char *why, size_t why_len) {
  memset(o, 0, sizeof(*o));
  const char *v = secure_getenv(GP_ENV_INSECURE);
  const char *from = GP_ENV_INSECURE;
  if (v == NULL && cf != NULL && cf->insecure[0] != '\0') {
    v = cf->insecure;
    from = "insecure in client.conf";
  }
  int b = parse_bool(v);
  if (b < 0) {
    snprintf(why, why_len, "%s=%s: not 1/true/yes or 0/false/no", from, v);
    return -1;
  }
  o->insecure = b == 1;
  v = secure_getenv(GP_ENV_INSECURE_ANY_ADDRESS);
  b = parse_bool(v);
  if (b < 0) {
    snprintf(why, why_len, "%s=%s: not 1/true/yes or 0/false/no",
             GP_ENV_INSECURE_ANY_ADDRESS, v);
    return -1;
  }
  o->any_address = b == 1;
  v = secure_getenv(GP_ENV_TLS_CA);
  if (v == NULL && cf != NULL)
    v = cf->tls_ca;
  snprintf(o->ca, sizeof(o->ca), "%s", v != NULL ? v : "");
  return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
      return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      return in6->sin6_addr.s6_addr[12] == 127;
  }
  return ss->ss_family == AF_UNIX;
}

int gp__connect_wire(const struct gp__hostport *hp,
                     const struct gp__tls_opts *o, int timeout_ms,
                     const char *peer, struct gp_wire *w, char *why,
                     size_t why_len) {
  long long start = gp__mono_ms();
  int fd = gp__dial(hp, timeout_ms, why, why_len);
  if (fd < 0)
    return -1;
  if (o->insecure) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (!o->any_address &&
        (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
         !is_loopback(&ss))) {
      snprintf(why, why_len,
               "refusing plain TCP to the %s at %s: %s allows only loopback "
               "peers (set %s=1 to allow any address, or use TLS)",
               peer, hp->addr, GP_ENV_INSECURE, GP_ENV_INSECURE_ANY_ADDRESS);
      close(fd);
      return -1;
    }
    if (gp_wire_init_fd(w, fd) < 0) {
      close(fd);
      snprintf(why, why_len, "out of memory");
      return -1;
    }
    return 0;
  }
  char tls_why[512];
  SSL_CTX *ctx = gp_tls_client_ctx(o->ca[0] ? o->ca : NULL, NULL, NULL,
                                   tls_why, sizeof(tls_why));
  if (ctx == NULL) {
    snprintf(why, why_len, "TLS to the %s at %s: %s (%s)", peer, hp->addr,
             tls_why, o->ca[0] ? GP_ENV_TLS_CA : "the system's CA store");
    close(fd);
    return -1;
  }
  long long left = timeout_ms - (gp__mono_ms() - start);
  int rc = gp_wire_init_tls_client(w, fd, ctx, hp->host,
                                   left > 0 ? (int)left : 1, tls_why,
                                   sizeof(tls_why));
  SSL_CTX_free(ctx); /* the connection keeps its own reference */
  if (rc != 0) {
    close(fd);
    snprintf(why, why_len, "%s at %s: %s", peer, hp->addr, tls_why);
    return -1;
  }
  return 0;
}
