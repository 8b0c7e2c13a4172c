/* The process's one connection to the pool server: connect, handshake,
 * request/reply plumbing, deferred errors, and what happens when the server
 * is lost.
 *
 * The connection is a blocking gp_wire on a TCP socket, used under the
 * client lock, so calls from many threads go out one at a time, in order.
 * Any transport failure ends the connection for good: it prints one line
 * and from then on every call returns CUDA_ERROR_DEVICE_UNAVAILABLE at
 * once.
 *
 * Nothing may hang on a server that is gone: a closed or reset connection
 * is seen at once; a server host or link that vanished is noticed by TCP
 * (keepalive probes every second, TCP_USER_TIMEOUT for unacknowledged
 * data); and a server that is there but silent (a frozen process, which
 * TCP keeps acknowledging) is noticed by a silence timeout: a reply that
 * shows no byte for GPUPOOL_IO_TIMEOUT seconds, or a send that makes no
 * progress for as long (SO_SNDTIMEO), ends the connection. The exception
 * is the explicit waits for the device (context, stream and event
 * synchronize): their reply may take as long as the device's work, so
 * only TCP watches them. Any other request that runs long on the server (a
 * blocking copy queued behind a long kernel) is covered by the server's
 * BUSY notices, one a second while it works, whose bytes reset the silence
 * timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "cuerrors.h"
#include "gp_config.h"
#include "gpupool/gpupool.h"
#include "trace.h"

/* Handshake limits: anything bigger is a broken or hostile server. */
#define GP__MAX_DEVICES 64

static struct gp__client the_client = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .next_request = 1,
  .next_id = 1,
  .wire = {.fd = -1},
};

struct gp__client *gp__client(void) { return &the_client; }

void gp__lock(void) { pthread_mutex_lock(&the_client.lock); }
void gp__unlock(void) { pthread_mutex_unlock(&the_client.lock); }

uint64_t gp__new_id(void) {
  return atomic_fetch_add(&the_client.next_id, 1);
}

CUresult gp__ready(void) {
  struct gp__client *c = &the_client;
  if (atomic_load(&c->init) != GP__INIT_OK || atomic_load(&c->forked))
    return CUDA_ERROR_NOT_INITIALIZED;
  if (atomic_load(&c->dead))
    return CUDA_ERROR_DEVICE_UNAVAILABLE;
  /* Host functions and stream callbacks must not call the driver (CUDA
   * says so): one that waited for the stream it runs in, or for later
   * host functions, would wait for itself. */
  if (gp__hostfn_thread_self())
    return CUDA_ERROR_NOT_PERMITTED;
  return CUDA_SUCCESS;
}

/* ---- Process life ------------------------------------------------------------ */

/* A fork()ed child shares the parent's socket: were it to speak on it, the
 * parent's session would be corrupted. As with the real driver, CUDA is not
 * usable in the child: every call there is CUDA_ERROR_NOT_INITIALIZED, and
 * its exit must not say goodbye on the parent's behalf. */
static void atfork_child(void) {
  if (atomic_load(&the_client.init) == GP__INIT_OK) {
    atomic_store(&the_client.forked, true);
    /* Our copy of the socket would keep the parent's session open after
     * the parent is gone. (The child is single-threaded here.) */
    if (the_client.wire_open)
      close(the_client.wire.fd);
  } else {
    /* The parent never connected: the child may, as a fresh process. The
     * lock may have been held by a parent thread that does not exist
     * here. */
    pthread_mutex_init(&the_client.lock, NULL);
  }
}

__attribute__((constructor)) static void conn_init(void) {
  pthread_atfork(NULL, NULL, atfork_child);
}

/* At exit (or dlclose), says GOODBYE if that cannot block: the lock must be
 * free (another thread may be in the middle of a call, or stuck in one) and
 * the send may wait at most 100 ms. The server cleans up without it too. */
__attribute__((destructor)) static void conn_fini(void) {
  struct gp__client *c = &the_client;
  /* Before the connection closes: a host-function thread that is waiting
   * for the lock held below would otherwise wake to a closed connection
   * and run its stream callback, told DEVICE_UNAVAILABLE, while the
   * process tears down. This destructor owns the order. */
  gp__hostfn_shutdown();
  if (atomic_load(&c->forked))
    return;
  if (pthread_mutex_trylock(&c->lock) != 0)
    return;
  if (c->wire_open && !atomic_load(&c->dead)) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100 * 1000};
    setsockopt(c->wire.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Gpupool__Goodbye bye = GPUPOOL__GOODBYE__INIT;
    if (gp_wire_send(&c->wire, GP_MSG_GOODBYE, GP_FRAME_F_NOREPLY,
                     c->next_request++, &bye.base, NULL, 0) == 0)
      gp_wire_flush(&c->wire);
    gp_wire_free(&c->wire);
    c->wire_open = false;
  }
  pthread_mutex_unlock(&c->lock);
}

/* ---- Configuration ------------------------------------------------------------- */

/* Seconds from environment variable |name|, as milliseconds; |def_s| when
 * unset or not a positive number. */
static int env_ms(const char *name, int def_s) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0')
    return def_s * 1000;
  char *end;
  errno = 0;
  double s = strtod(v, &end);
  if (errno != 0 || *end != '\0' || !(s > 0) || s > 86400) {
    gp__log("%s=%s is not a number of seconds; using %d", name, v, def_s);
    return def_s * 1000;
  }
  int ms = (int)(s * 1000);
  return ms > 0 ? ms : 1;
}

/* Splits "host[:port]" or "[v6addr][:port]" into |c->host| and |c->port|.
 * Returns 0, or -1 with |why| filled. */
static int parse_server(struct gp__client *c, const char *s, char *why,
                        size_t why_len) {
  const char *host = s, *port = NULL;
  size_t host_len;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL) {
      snprintf(why, why_len, "missing ']' in %s=%s", GP_ENV_SERVER, s);
      return -1;
    }
    host = s + 1;
    host_len = (size_t)(close - host);
    if (close[1] == ':')
      port = close + 2;
    else if (close[1] != '\0') {
      snprintf(why, why_len, "junk after ']' in %s=%s", GP_ENV_SERVER, s);
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
  if (host_len == 0 || host_len >= sizeof(c->host)) {
    snprintf(why, why_len, "bad host in %s=%s", GP_ENV_SERVER, s);
    return -1;
  }
  memcpy(c->host, host, host_len);
  c->host[host_len] = '\0';
  c->port = GP_DEFAULT_SERVER_PORT;
  if (port != NULL) {
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
      snprintf(why, why_len, "bad port in %s=%s", GP_ENV_SERVER, s);
      return -1;
    }
    c->port = (int)p;
  }
  snprintf(c->addr, sizeof(c->addr), strchr(c->host, ':') ? "[%s]:%d"
                                                          : "%s:%d",
           c->host, c->port);
  return 0;
}

/* ---- Connecting ------------------------------------------------------------------ */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
      long long left = deadline - now_ms();
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

/* Resolves and connects to c->host:c->port within c->connect_timeout_ms.
 * Returns the fd or -1 with |why| filled. */
static int dial(struct gp__client *c, char *why, size_t why_len) {
  char port[16];
  snprintf(port, sizeof(port), "%d", c->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(c->host, port, &hints, &res);
  if (rc != 0) {
    snprintf(why, why_len, "cannot resolve %s: %s", c->host,
             gai_strerror(rc));
    return -1;
  }
  long long deadline = now_ms() + c->connect_timeout_ms;
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
               c->addr, c->connect_timeout_ms / 1000.0);
    else
      snprintf(why, why_len, "cannot connect to %s: %s", c->addr,
               strerror(err));
  }
  return fd;
}

/* TCP_NODELAY: requests are small and latency is everything. Keepalive
 * probes every second after one idle second, TCP_USER_TIMEOUT for
 * unacknowledged data and SO_SNDTIMEO for a send that makes no progress: a
 * dead server is noticed within the I/O timeout. */
static void tune_socket(struct gp__client *c, int fd) {
  int one = 1;
  int secs = (c->io_timeout_ms + 999) / 1000;
  int cnt = secs > 127 ? 127 : secs; /* TCP_KEEPCNT's maximum */
  int intvl = secs / cnt;
  unsigned user_timeout = (unsigned)secs * 1000u;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
             sizeof(user_timeout));
  struct timeval tv = {.tv_sec = c->io_timeout_ms / 1000,
                       .tv_usec = (c->io_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Copies the devices of |hr| into c->devices. Returns 0, or -1 with |why|
 * filled. */
static int take_devices(struct gp__client *c, const Gpupool__HelloReply *hr,
                        char *why, size_t why_len) {
  if (hr->n_devices > GP__MAX_DEVICES) {
    snprintf(why, why_len, "server %s reports %zu devices (at most %d)",
             c->addr, hr->n_devices, GP__MAX_DEVICES);
    return -1;
  }
  c->devices = calloc(hr->n_devices ? hr->n_devices : 1, sizeof(*c->devices));
  if (c->devices == NULL) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < hr->n_devices; i++) {
    const Gpupool__DeviceInfo *di = hr->devices[i];
    struct gp__device *d = &c->devices[i];
    if (di->ordinal != (int32_t)i) {
      snprintf(why, why_len, "server %s lists device %d in place %zu",
               c->addr, di->ordinal, i);
      return -1;
    }
    snprintf(d->name, sizeof(d->name), "%s", di->name ? di->name : "");
    if (di->uuid.len == sizeof(d->uuid))
      memcpy(d->uuid, di->uuid.data, sizeof(d->uuid));
    else if (di->uuid.len != 0) {
      snprintf(why, why_len, "server %s sent a %zu-byte UUID for device %zu",
               c->addr, di->uuid.len, i);
      return -1;
    }
    d->total_mem = di->total_mem;
    for (size_t k = 0; k < di->n_attributes; k++) {
      int a = di->attributes[k]->attr;
      /* Attributes this cuda.h does not know cannot be asked for. */
      if (a > 0 && a < GP__NATTR)
        d->attr[a] = di->attributes[k]->value;
    }
  }
  c->ndevices = (int)hr->n_devices;
  return 0;
}

/* Sends HELLO and reads the HelloReply. Returns 0, or -1 with |why|. */
static int handshake(struct gp__client *c, char *why, size_t why_len) {
  char hostname[256] = "";
  gethostname(hostname, sizeof(hostname) - 1);
  Gpupool__HelloRequest req = GPUPOOL__HELLO_REQUEST__INIT;
  req.min_version = GP_PROTOCOL_VERSION_MIN;
  req.max_version = GP_PROTOCOL_VERSION_MAX;
  req.client_name = (char *)"libcuda.so.1 " GP_VERSION_STRING;
  req.hostname = hostname;
  req.pid = (uint32_t)getpid();

  /* The handshake must not hang on a port that accepts and says nothing. */
  c->wire.timeout_ms = c->connect_timeout_ms;
  uint32_t id = c->next_request++;
  int rc = gp_wire_send(&c->wire, GP_MSG_HELLO, 0, id, &req.base, NULL, 0);
  struct gp_frame_header h;
  if (rc == 0)
    rc = gp_wire_recv_header(&c->wire, &h);
  if (rc == 0 && (h.type != GP_MSG_HELLO || !(h.flags & GP_FRAME_F_REPLY) ||
                  h.request_id != id))
    rc = GP_EPROTO;
  ProtobufCMessage *m = NULL;
  if (rc == 0)
    rc = gp_wire_recv_msg(&c->wire, &h, &m);
  if (rc == 0 && h.payload_len > 0)
    rc = gp_wire_discard(&c->wire, h.payload_len);
  c->wire.timeout_ms = c->io_timeout_ms;
  if (rc != 0) {
    if (rc == GP_ECLOSED)
      snprintf(why, why_len, "%s closed the connection during the handshake",
               c->addr);
    else if (rc == GP_ETIMEDOUT)
      snprintf(why, why_len, "%s did not answer the handshake within %.1f s",
               c->addr, c->connect_timeout_ms / 1000.0);
    else
      snprintf(why, why_len, "handshake with %s failed: %s (is it a gpupool "
               "server?)", c->addr, gp_strerror(rc));
    protobuf_c_message_free_unpacked(m, NULL);
    return -1;
  }

  const Gpupool__HelloReply *hr = (const Gpupool__HelloReply *)m;
  int ret = -1;
  if (hr->result != 0) {
    snprintf(why, why_len, "server %s refused the session: %s", c->addr,
             hr->message && *hr->message ? hr->message
                                         : gp__cu_error_name(hr->result));
    goto out;
  }
  if (hr->version < GP_PROTOCOL_VERSION_MIN ||
      hr->version > GP_PROTOCOL_VERSION_MAX) {
    snprintf(why, why_len, "server %s chose protocol version %u; this "
             "library speaks %d to %d", c->addr, hr->version,
             GP_PROTOCOL_VERSION_MIN, GP_PROTOCOL_VERSION_MAX);
    goto out;
  }
  if (take_devices(c, hr, why, why_len) < 0)
    goto out;
  if (c->ndevices == 0) {
    snprintf(why, why_len, "server %s has no devices", c->addr);
    goto out;
  }
  if (gp__apply_visible_devices(c, why, why_len) < 0)
    goto out;
  c->version = hr->version;
  c->driver_version = hr->driver_version > 0 ? hr->driver_version
                                             : CUDA_VERSION;
  snprintf(c->server_name, sizeof(c->server_name), "%s",
           hr->server_name ? hr->server_name : "");
  ret = 0;
out:
  protobuf_c_message_free_unpacked(m, NULL);
  return ret;
}

CUresult gp__connect_locked(struct gp__client *c) {
  char why[512] = "";
  int fd = -1;
  const char *server = getenv(GP_ENV_SERVER);
  if (server == NULL || *server == '\0') {
    snprintf(why, sizeof(why), "%s is not set: no pool server to use "
             "(run the program with `gpupool attach --server HOST -- ...`)",
             GP_ENV_SERVER);
    goto fail;
  }
  if (parse_server(c, server, why, sizeof(why)) < 0)
    goto fail;
  c->connect_timeout_ms = env_ms(GP_ENV_CONNECT_TIMEOUT, 10);
  c->io_timeout_ms = env_ms(GP_ENV_IO_TIMEOUT, 5);
  long ps = sysconf(_SC_PAGESIZE);
  c->page_size = ps > 0 ? (uint64_t)ps : 4096;

  fd = dial(c, why, sizeof(why));
  if (fd < 0)
    goto fail;
  tune_socket(c, fd);
  if (gp_wire_init_fd(&c->wire, fd) < 0) {
    close(fd);
    snprintf(why, sizeof(why), "out of memory");
    goto fail;
  }
  c->wire_open = true;
  if (handshake(c, why, sizeof(why)) < 0)
    goto fail;
  if (gp__primary_init_locked(c) < 0) {
    snprintf(why, sizeof(why), "out of memory");
    goto fail;
  }
  return CUDA_SUCCESS;

fail:
  if (c->wire_open) {
    gp_wire_free(&c->wire);
    c->wire_open = false;
  }
  free(c->devices);
  c->devices = NULL;
  c->ndevices = 0;
  gp__log("cuInit: no device: %s", why);
  return CUDA_ERROR_NO_DEVICE;
}

/* ---- Calls ------------------------------------------------------------------------ */

CUresult gp__lost_locked(struct gp__client *c, int err, const char *what) {
  int saved_errno = errno;
  if (!atomic_exchange(&c->dead, true)) {
    const char *reason;
    char buf[160];
    switch (err) {
    case GP_ECLOSED:
      reason = "the server closed the connection";
      break;
    case GP_ETIMEDOUT:
      snprintf(buf, sizeof(buf), "no answer for %.1f s",
               c->io_timeout_ms / 1000.0);
      reason = buf;
      break;
    case GP_EIO:
      if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
        snprintf(buf, sizeof(buf), "the server took nothing for %.1f s",
                 c->io_timeout_ms / 1000.0);
      else
        snprintf(buf, sizeof(buf), "%s (%s)", gp_strerror(err),
                 strerror(saved_errno));
      reason = buf;
      break;
    default:
      reason = gp_strerror(err);
      break;
    }
    gp__log("lost connection to %s: %s%s%s", c->addr, reason,
            what ? " during " : "", what ? what : "");
    if (c->wire_open) {
      gp_wire_free(&c->wire);
      c->wire_open = false;
    }
  }
  return CUDA_ERROR_DEVICE_UNAVAILABLE;
}

CUresult gp__send_locked(struct gp__client *c, uint16_t type,
                         const ProtobufCMessage *msg, const void *payload,
                         size_t payload_len, bool noreply,
                         uint32_t *request_id) {
  if (atomic_load(&c->dead) || !c->wire_open)
    return CUDA_ERROR_DEVICE_UNAVAILABLE;
  uint32_t id = c->next_request++;
  int rc = gp_wire_send(&c->wire, type, noreply ? GP_FRAME_F_NOREPLY : 0, id,
                        msg, payload, payload_len);
  /* Only fatal codes leave the stream in an unknown state; a message that
   * could not be allocated was not sent at all. */
  if (rc == GP_ENOMEM)
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (rc < 0)
    return gp__lost_locked(c, rc, gp_msg_type_name(type));
  if (request_id != NULL)
    *request_id = id;
  return CUDA_SUCCESS;
}

/* Reads the server's ProtocolError after header |h| and reports it. */
static CUresult protocol_error(struct gp__client *c,
                               const struct gp_frame_header *h) {
  ProtobufCMessage *m = NULL;
  if (gp_wire_recv_msg(&c->wire, h, &m) == 0) {
    const Gpupool__ProtocolError *pe = (const Gpupool__ProtocolError *)m;
    gp__log("the server at %s reported a protocol error: %s", c->addr,
            pe->message && *pe->message ? pe->message
                                        : gp_strerror(pe->code));
    protobuf_c_message_free_unpacked(m, NULL);
  }
  return gp__lost_locked(c, GP_EPROTO, NULL);
}

/* Handles a server notice after header |h|: BUSY (the server is working
 * on our request: its bytes have already reset the silence timeout) or
 * DEVICE_OUTPUT (device printf text, written to our stdout as it comes).
 * Returns 0 or a fatal GP_E* code. */
static int notice(struct gp__client *c, const struct gp_frame_header *h) {
  ProtobufCMessage *m = NULL;
  int rc = gp_wire_recv_msg(&c->wire, h, &m);
  if (rc < 0)
    return rc;
  protobuf_c_message_free_unpacked(m, NULL);
  if (h->type == GP_MSG_BUSY) {
    if (gp__trace_on)
      gp__log("server busy with the request (BUSY notice)");
    return h->payload_len ? gp_wire_discard(&c->wire, h->payload_len) : 0;
  }
  char buf[16384];
  size_t left = h->payload_len;
  while (left > 0) {
    size_t n = left < sizeof(buf) ? left : sizeof(buf);
    rc = gp_wire_recv_payload(&c->wire, buf, n);
    if (rc < 0)
      return rc;
    fwrite(buf, 1, n, stdout);
    left -= n;
  }
  fflush(stdout);
  return 0;
}

/* Reads the reply after header |h|, which the host-function thread is
 * waiting for (gp__hostfn_reply_id()) and this thread has met first on its
 * way to its own, and hands its result over. Returns 0 or a fatal GP_E*
 * code. */
static int side_reply(struct gp__client *c, const struct gp_frame_header *h) {
  ProtobufCMessage *m = NULL;
  int32_t result = 0, deferred = 0;
  int rc = gp_wire_recv_msg(&c->wire, h, &m);
  if (rc == 0 && gp_msg_reply_status(m, &result, &deferred) < 0)
    rc = GP_EPROTO;
  protobuf_c_message_free_unpacked(m, NULL);
  if (rc == 0 && h->payload_len > 0)
    rc = gp_wire_discard(&c->wire, h->payload_len);
  if (rc < 0)
    return rc;
  if (deferred != 0 && deferred != result && c->deferred == CUDA_SUCCESS)
    c->deferred = (CUresult)deferred;
  gp__hostfn_reply_locked(c, (CUresult)result);
  return 0;
}

/* gp__recv_locked(), and with |any| the reply is handed out whatever its
 * result. With |got| not NULL, reads only what has already arrived: when
 * the reply is not there yet, sets |*got| false and returns CUDA_SUCCESS. */
static CUresult recv_reply(struct gp__client *c, uint16_t type,
                           uint32_t request_id, ProtobufCMessage **reply,
                           void *payload, size_t payload_len, bool any,
                           bool *got) {
  if (reply != NULL)
    *reply = NULL;
  if (got != NULL)
    *got = false;
  if (atomic_load(&c->dead) || !c->wire_open)
    return CUDA_ERROR_DEVICE_UNAVAILABLE;
  const char *what = gp_msg_type_name(type);
  struct gp_frame_header h;
  int rc;
  for (;;) {
    if (got != NULL && !gp_wire_readable(&c->wire))
      return CUDA_SUCCESS;
    rc = gp_wire_recv_header(&c->wire, &h);
    if (rc < 0)
      return gp__lost_locked(c, rc, what);
    if ((h.flags & GP_FRAME_F_REPLY) && h.request_id != request_id &&
        h.request_id == gp__hostfn_reply_id()) {
      rc = side_reply(c, &h);
      if (rc < 0)
        return gp__lost_locked(c, rc, what);
      continue;
    }
    if (h.flags & GP_FRAME_F_REPLY)
      break;
    if (h.type == GP_MSG_PROTOCOL_ERROR)
      return protocol_error(c, &h);
    if (h.type != GP_MSG_BUSY && h.type != GP_MSG_DEVICE_OUTPUT)
      break; /* refused below */
    rc = notice(c, &h);
    if (rc < 0)
      return gp__lost_locked(c, rc, what);
  }
  /* Replies come in the order of the requests: anything else means the
   * two ends disagree about the stream, and nothing after can be
   * trusted. */
  if (h.type != type || !(h.flags & GP_FRAME_F_REPLY) ||
      h.request_id != request_id)
    return gp__lost_locked(c, GP_EPROTO, what);

  ProtobufCMessage *m = NULL;
  rc = gp_wire_recv_msg(&c->wire, &h, &m);
  if (rc < 0)
    return gp__lost_locked(c, rc, what);
  int32_t result = 0, deferred = 0;
  if (gp_msg_reply_status(m, &result, &deferred) < 0) {
    protobuf_c_message_free_unpacked(m, NULL);
    return gp__lost_locked(c, GP_EPROTO, what);
  }
  /* A deferred error equal to this call's own result is being reported
   * now (a sticky fault a synchronize returns): keeping it too would
   * report it a second time, maybe in another context. */
  if (deferred != 0 && deferred != result && c->deferred == CUDA_SUCCESS)
    c->deferred = (CUresult)deferred;

  if (payload != NULL && result == 0) {
    if (h.payload_len != payload_len) {
      protobuf_c_message_free_unpacked(m, NULL);
      return gp__lost_locked(c, GP_EPROTO, what);
    }
    rc = gp_wire_recv_payload(&c->wire, payload, payload_len);
  } else if (h.payload_len > 0) {
    rc = gp_wire_discard(&c->wire, h.payload_len);
  }
  if (rc < 0) {
    protobuf_c_message_free_unpacked(m, NULL);
    return gp__lost_locked(c, rc, what);
  }
  if (reply != NULL && (result == 0 || any))
    *reply = m;
  else
    protobuf_c_message_free_unpacked(m, NULL);
  if (got != NULL)
    *got = true;
  return (CUresult)result;
}

CUresult gp__recv_locked(struct gp__client *c, uint16_t type,
                         uint32_t request_id, ProtobufCMessage **reply,
                         void *payload, size_t payload_len) {
  return recv_reply(c, type, request_id, reply, payload, payload_len, false,
                    NULL);
}

CUresult gp__recv_any_locked(struct gp__client *c, uint16_t type,
                             uint32_t request_id, ProtobufCMessage **reply) {
  return recv_reply(c, type, request_id, reply, NULL, 0, true, NULL);
}

CUresult gp__recv_nowait_locked(struct gp__client *c, uint16_t type,
                                uint32_t request_id, bool *got) {
  return recv_reply(c, type, request_id, NULL, NULL, 0, false, got);
}

CUresult gp__call_locked(struct gp__client *c, uint16_t type,
                         const ProtobufCMessage *msg, const void *payload,
                         size_t payload_len, ProtobufCMessage **reply) {
  uint32_t id = 0;
  CUresult r = gp__send_locked(c, type, msg, payload, payload_len, false, &id);
  if (r != CUDA_SUCCESS) {
    if (reply != NULL)
      *reply = NULL;
    return r;
  }
  return gp__recv_locked(c, type, id, reply, NULL, 0);
}

CUresult gp__call_wait_locked(struct gp__client *c, uint16_t type,
                              const ProtobufCMessage *msg) {
  uint32_t id = 0;
  CUresult r = gp__send_locked(c, type, msg, NULL, 0, false, &id);
  if (r != CUDA_SUCCESS)
    return r;
  c->wire.timeout_ms = -1;
  r = gp__recv_locked(c, type, id, NULL, NULL, 0);
  c->wire.timeout_ms = c->io_timeout_ms;
  return r;
}

CUresult gp__sync_result_locked(struct gp__client *c, CUresult r) {
  if (r == CUDA_SUCCESS) {
    r = c->deferred;
    c->deferred = CUDA_SUCCESS;
  }
  return gp__note_fault_locked(c, r);
}
