/* What gpupool-server and gpupool-broker share as daemons: parsing sizes,
 * numbers and listen addresses from their command lines and config files,
 * naming peers in logs, and the port file. See daemon_util.h. */
#include "daemon_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netdb.h>

#include <uv.h>

#include "gpupool/errors.h"
#include "log.h"

int gp__parse_size(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (!s || *s < '0' || *s > '9')
    return GP_EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0)
    return GP_EINVAL;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'b': case 'B': break;
  default: return GP_EINVAL;
  }
  if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
    end += strlen(end);
  else if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0')
    return GP_EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return GP_EINVAL;
  *out = (uint64_t)v << shift;
  return 0;
}

int gp__parse_uint(const char *s, unsigned long long max,
                   unsigned long long *out) {
  char *end;
  unsigned long long v;

  if (!s || *s < '0' || *s > '9')
    return GP_EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return GP_EINVAL;
  *out = v;
  return 0;
}

int gp__parse_listen(const char *s, int default_port, char *host,
                     size_t hostlen, int *port, const char **why) {
  const char *h = s, *p = NULL;
  size_t hl;
  unsigned long long v;

  if (*s == '[') {
    const char *close = strchr(s, ']');
    if (!close) {
      *why = "missing ']' after an IPv6 address";
      return GP_EINVAL;
    }
    h = s + 1;
    hl = (size_t)(close - h);
    if (close[1] == ':')
      p = close + 2;
    else if (close[1] != '\0') {
      *why = "expected ':PORT' after ']'";
      return GP_EINVAL;
    }
  } else {
    const char *colon = strrchr(s, ':');
    if (colon && strchr(s, ':') != colon) {
      *why = "an IPv6 address must be written in brackets: [ADDR]:PORT";
      return GP_EINVAL;
    }
    hl = colon ? (size_t)(colon - s) : strlen(s);
    if (colon)
      p = colon + 1;
  }
  if (hl == 0) {
    *why = "the host is empty";
    return GP_EINVAL;
  }
  if (hl >= hostlen) {
    *why = "the host is too long";
    return GP_EINVAL;
  }
  memcpy(host, h, hl);
  host[hl] = '\0';
  if (!p) {
    *port = default_port;
    return 0;
  }
  if (gp__parse_uint(p, 65535, &v) != 0) {
    *why = "the port must be a number from 0 to 65535";
    return GP_EINVAL;
  }
  *port = (int)v;
  return 0;
}

void gp__addr_to_string(const struct sockaddr *sa, char *out, size_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, host, sizeof(host));
    port = ntohs(in->sin_port);
    snprintf(out, len, "%s:%d", host, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    snprintf(out, len, "[%s]:%d", host, port);
  } else {
    snprintf(out, len, "?");
  }
}

int gp__write_port_file(const char *path, int port) {
  char tmp[4096];
  FILE *f;
  int n;

  n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  f = fopen(tmp, "w");
  if (!f)
    return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

int gp__listen_tcp(uv_tcp_t *listener, const char *host, int port,
                   int backlog, uv_connection_cb cb, char *bound, size_t len,
                   int *bound_port) {
  struct addrinfo hints, *res = NULL;
  struct sockaddr_storage ss;
  char portstr[16];
  int r, namelen = sizeof(ss);

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(portstr, sizeof(portstr), "%d", port);
  r = getaddrinfo(host, portstr, &hints, &res);
  if (r != 0) {
    gp__error("--listen: cannot resolve '%s': %s", host, gai_strerror(r));
    return GP_EINVAL;
  }
  r = uv_tcp_bind(listener, res->ai_addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)listener, backlog, cb);
  freeaddrinfo(res);
  if (r != 0) {
    gp__error("cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    return GP_EIO;
  }
  r = uv_tcp_getsockname(listener, (struct sockaddr *)&ss, &namelen);
  if (r != 0) {
    gp__error("getsockname: %s", uv_strerror(r));
    return GP_EIO;
  }
  gp__addr_to_string((const struct sockaddr *)&ss, bound, len);
  *bound_port = ntohs(ss.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&ss)->sin6_port
                          : ((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}
