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

#include "broker.h"

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
