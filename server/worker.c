/* The worker: serves one session, on the socket it inherits as fd 3, in
 * its own process (see docs/server.md and docs/protocol.md).
 *
 * It blocks on its socket: read a frame, execute it on the backend, answer
 * it unless it is NOREPLY, in arrival order. The first error of a NOREPLY
 * request is kept and sent as the `deferred` field of the next reply.
 * Anything that breaks the protocol (unknown type, a request flagged REPLY,
 * a malformed message, a payload where none belongs or of the wrong
 * length) ends the session: a ProtocolError frame (best effort), one log
 * line, exit. Every value from the wire is checked here or by the backend
 * before it is used; nothing a client sends can crash the worker.
 */
#include <arpa/inet.h>
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "gp_config.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "disk_cache.h"
#include "heartbeat.h"
#include "idmap.h"
#include "image_cache.h"
#include "msg.h"
#include "pool.h"
#include "server.h"
#include "tls.h"
#include "wire.h"
#include "zchunk.h"

/* Staging buffer for backends whose memory the worker cannot address. */
#define GP_WORKER_STAGE_SIZE (1u << 20)

/* The most bytes of kernel names one MODULE_GET_KERNELS reply carries:
 * well inside the 1 MiB message limit. */
#define GP_WORKER_NAMES_MAX (768u << 10)

/* The largest module image a client may upload in parts (IMAGE_PART): what
 * the session's image cache holds at most. */
#define GP_WORKER_IMAGE_MAX ((uint64_t)GP_IMAGE_CACHE_DEFAULT_CAP)

/* Devices a HelloReply describes at most. */
#define GP_WORKER_MAX_DEVICES 64

/* After a ProtocolError: how long to drain the client's bytes before
 * closing, so that closing does not reset the connection under the frame. */
#define GP_WORKER_LINGER_MS 200
#define GP_WORKER_LINGER_BYTES (1u << 20)

/* TCP keepalive: a silent peer is declared dead after about
 * IDLE + INTVL * CNT seconds; unacknowledged writes give up after
 * GP_WORKER_USER_TIMEOUT_MS. */
#define GP_WORKER_KEEPIDLE_S 10
#define GP_WORKER_KEEPINTVL_S 5
#define GP_WORKER_KEEPCNT 3
#define GP_WORKER_USER_TIMEOUT_MS 30000

/* The session has ended (a handler's return value, not an error). */
#define GP_WORKER_END 1

/* While it waits for requests, a worker reports its memory and idle time
 * to the supervisor this often (pool.h, "used" lines). */
#define GP_WORKER_REPORT_MS 500

/* How long a worker waits for the supervisor's answer to a claim. */
#define GP_WORKER_CLAIM_TIMEOUT_MS 5000

/* The most allocations whose sizes the worker tracks (the emu backend's
 * own limit). */
#define GP_WORKER_MAX_ALLOCS (1u << 20)

/* The most contexts, modules and streams the worker keeps track of. */
#define GP_WORKER_MAX_OBJECTS (1u << 16)

/* Under a grant's memory limit a session has at most this many live
 * contexts (each takes device memory the limit cannot see: docs/broker.md,
 * "Grants"); one more is CUDA_ERROR_OUT_OF_MEMORY. */
#define GP_WORKER_LIMITED_CTXS 8

/* What an allocation counts against the limit: its size rounded up to
 * 2 MiB from 2 MiB on, to 512 bytes below (docs/broker.md, "Grants"). */
#define GP_WORKER_GRAIN_LARGE (2ull << 20)
#define GP_WORKER_GRAIN_SMALL 512ull

/* The stream map stores each stream's context id (never 0) as the
 * pointer-sized value. */
_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t),
               "a context id must fit in a map value");

struct gp_worker {
  const struct gp_server_config *cfg;
  const struct gp_backend_ops *ops;
  struct gp_backend *be;
  struct gp_wire wire;
  uint64_t session_id;
  char peer[64];
  bool hello_done;
  int32_t deferred;       /* first error of a NOREPLY request, 0 if none */
  uint8_t *stage;         /* GP_WORKER_STAGE_SIZE bytes, allocated on use */
  int exit_status;
  uint64_t requests;
  struct gp_heartbeat *hb;        /* NULL if its thread could not start */
  struct gp_image_cache images;   /* module images by SHA-256 */
  int cache_fd;                   /* the server's image cache directory
                                   * (disk_cache.h), -1: none */
  uint8_t *params;                /* GP_MAX_PARAM_BYTES, allocated on use */
  struct gp_func_desc *fdesc;     /* allocated on use */
  struct {                        /* the image being uploaded in parts */
    bool active;
    uint8_t sha256[GP_IMAGE_SHA256_LEN];
    uint64_t size, got;
    uint8_t *data;                /* |size| bytes; NULL after a failure */
    int32_t result;               /* the upload's error, 0 if none yet */
  } upload;
  /* The pool (docs/broker.md, "Grants" and "Idle sessions"). */
  uint8_t *key;                   /* the grant key, NULL: admit everything */
  size_t keylen;
  char key_why[160];              /* why the key could not be loaded */
  bool report_ok;                 /* fd GP_WORKER_REPORT_FD is usable */
  bool limited;                   /* a grant's memory limit applies */
  uint64_t mem_limit;             /* bytes */
  uint64_t mem_used;              /* bytes counted against the limit */
  struct gp__idmap allocs;        /* dptr -> struct gp_charge */
  struct gp__idmap modules;       /* module -> struct gp_charge (globals) */
  struct gp__idmap ctxs;          /* ctx -> struct gp_charge (lost bytes) */
  struct gp__idmap streams;       /* stream -> its ctx id */
  struct gp__idmap fnames;        /* function -> its kernel's name (for
                                   * --kernel-timeout's message) */
  char last_kernel[128];          /* the kernel launched last, "" none */
  uint64_t busy_ms;               /* monotonic: work last seen pending */
  uint64_t last_request_ms;       /* monotonic: the last request's end */
  uint64_t last_report_ms;        /* monotonic: the last "used" line */
  /* Compressed copies (zchunk.h). */
  struct gp_z z;
  uint8_t *zbuf;                  /* compressed payloads, |zcap| bytes */
  size_t zcap;
  uint16_t reply_flags;           /* added to the next reply's flags */
  const int *cancel;              /* in-process (gp__worker_serve): stops
                                   * kernels; NULL: the heartbeat's flag */
};

/* ---- helpers ------------------------------------------------------------- */

/* Copies at most |len| - 1 bytes of a client-supplied string, printable
 * ASCII only, so a client cannot forge log lines. */
static void sanitize(const char *in, char *out, size_t len) {
  size_t i = 0;

  for (; in && *in && i + 1 < len; in++)
    out[i++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
  out[i] = '\0';
}

static void peer_name(int fd, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?";

  snprintf(out, len, "?");
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
    return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    snprintf(out, len, "%s:%d", host, ntohs(in->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(out, len, "[%s]:%d", host, ntohs(in6->sin6_port));
  } else if (ss.ss_family == AF_UNIX) {
    snprintf(out, len, "unix");
  }
}

/* Options for a long-lived remote-call socket; each is best effort (the
 * socket may not be TCP in tests). */
static void tune_socket(int fd, unsigned send_timeout_ms) {
  int one = 1, idle = GP_WORKER_KEEPIDLE_S, intvl = GP_WORKER_KEEPINTVL_S;
  int cnt = GP_WORKER_KEEPCNT;
  unsigned utimeout = GP_WORKER_USER_TIMEOUT_MS;
  struct timeval snd = {.tv_sec = send_timeout_ms / 1000,
                        .tv_usec = (send_timeout_ms % 1000) * 1000};

  /* --send-timeout: a write that can put nothing into the socket for this
   * long (the client reads nothing) fails with EAGAIN, which the
   * transport reports as GP_ETIMEDOUT and the session ends. The socket's
   * buffer and the wire's are all a client that stops reading can make
   * the worker hold. */
  if (send_timeout_ms &&
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)) != 0)
    gp__warn("SO_SNDTIMEO: %s: --send-timeout does not apply",
             strerror(errno));

  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    gp__debug("TCP_NODELAY: %s", strerror(errno));
    return;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &utimeout,
                 sizeof(utimeout)) != 0)
    gp__debug("TCP keepalive options: %s", strerror(errno));
}

static uint64_t random_u64(void) {
  uint64_t v;
  struct timespec ts;

  if (getrandom(&v, sizeof(v), 0) == (ssize_t)sizeof(v) && v != 0)
    return v;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
         ((uint64_t)getpid() << 16);
}

/* Logs one line prefixed with the session. */
__attribute__((format(printf, 3, 4)))
static void wlog(const struct gp_worker *w, enum gp_log_level level,
                 const char *fmt, ...) {
  char msg[768];
  va_list ap;

  if ((int)level > (int)gp__log_level())
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gp__log(level, "session %016llx (%s): %s",
          (unsigned long long)w->session_id, w->peer, msg);
}

/* ---- replies and errors --------------------------------------------------- */

/* Ends the session for a protocol violation: sends a ProtocolError frame
 * naming |reason| (best effort), logs it, and returns GP_EPROTO-ish |code|
 * for the loop to stop on. */
__attribute__((format(printf, 4, 5)))
static int protocol_error(struct gp_worker *w, int code,
                          const struct gp_frame_header *h, const char *fmt,
                          ...) {
  Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
  char reason[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  wlog(w, GP_LOG_WARN, "protocol error: %s; closing", reason);
  w->exit_status = GP_EXIT_PROTOCOL;
  if (w->wire.error == 0 || w->wire.error == GP_EPROTO ||
      w->wire.error == GP_ETOOBIG || w->wire.error == GP_EVERSION ||
      w->wire.error == GP_ETIMEDOUT) {
    int saved = w->wire.error;
    /* The wire's sticky error concerns reading; this frame is written. */
    w->wire.error = 0;
    pe.code = code;
    pe.message = reason;
    if (gp_wire_send(&w->wire, GP_MSG_PROTOCOL_ERROR, 0,
                     h ? h->request_id : 0, &pe.base, NULL, 0) == 0)
      gp_wire_flush(&w->wire);
    w->wire.error = saved ? saved : GP_EPROTO;
  }
  return code < 0 ? code : GP_EPROTO;
}

/* Sends the device printf output the backend holds, if any, as a
 * DEVICE_OUTPUT notice (before a reply: the client prints it when it next
 * waits for the server). Returns 0 or a fatal GP_E* code. */
static int send_device_output(struct gp_worker *w) {
  Gpupool__DeviceOutput out = GPUPOOL__DEVICE_OUTPUT__INIT;
  const void *data = NULL;
  size_t len = 0;
  uint64_t dropped = 0;
  int r;

  if (!w->be)
    return 0;
  w->ops->output_peek(w->be, &data, &len, &dropped);
  if (len == 0 && dropped == 0)
    return 0;
  if (len > w->wire.lim.max_payload)
    len = w->wire.lim.max_payload;
  out.dropped = dropped;
  r = gp_wire_send(&w->wire, GP_MSG_DEVICE_OUTPUT, 0, 0, &out.base, data,
                   len);
  w->ops->output_consumed(w->be);
  if (dropped)
    wlog(w, GP_LOG_INFO, "device printf: %llu bytes dropped (buffer full)",
         (unsigned long long)dropped);
  return r;
}

/* Answers request |h| with |msg| (and |payload|), or, for a NOREPLY
 * request, keeps |result| as the deferred error if it is the first. |msg|
 * is a reply message whose `result` the caller has set; |deferred| points
 * at its `deferred` field. Returns 0 or a fatal GP_E* code. */
static int reply(struct gp_worker *w, const struct gp_frame_header *h,
                 ProtobufCMessage *msg, int32_t *deferred, int32_t result,
                 const void *payload, size_t payload_len) {
  int r;

  if (h->flags & GP_FRAME_F_NOREPLY) {
    if (result != CUDA_SUCCESS && w->deferred == CUDA_SUCCESS)
      w->deferred = result;
    if (result != CUDA_SUCCESS)
      wlog(w, GP_LOG_DEBUG, "%s (request %u, no reply): CUDA error %d",
           gp_msg_type_name(h->type), h->request_id, result);
    return 0;
  }
  *deferred = w->deferred;
  w->deferred = CUDA_SUCCESS;
  if (result != CUDA_SUCCESS)
    wlog(w, GP_LOG_DEBUG, "%s (request %u): CUDA error %d",
         gp_msg_type_name(h->type), h->request_id, result);
  /* The heartbeat thread writes BUSY frames only while a request is busy:
   * from here on the worker writes, and no frame may land inside its
   * reply (a long payload takes a while). */
  gp__heartbeat_idle(w->hb);
  /* The client was told the session ended in place of this reply. */
  if (gp__heartbeat_timed_out(w->hb))
    return GP_EKTIMEOUT;
  r = send_device_output(w);
  if (r != 0)
    return r;
  r = gp_wire_send(&w->wire, h->type, GP_FRAME_F_REPLY | w->reply_flags,
                   h->request_id, msg, payload, payload_len);
  w->reply_flags = 0;
  if (r == 0)
    r = gp_wire_flush(&w->wire);
  return r;
}

static int reply_status(struct gp_worker *w, const struct gp_frame_header *h,
                        int32_t result, const void *payload,
                        size_t payload_len) {
  Gpupool__Status st = GPUPOOL__STATUS__INIT;

  st.result = result;
  return reply(w, h, &st.base, &st.deferred, result, payload, payload_len);
}

/* ---- the pool: reports, admission, memory ------------------------------- */

static uint64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes one report line to the supervisor (pool.h), never blocking: a
 * line that does not fit in the socket's buffer is dropped (the next
 * "used" line supersedes it). Returns 0 or -1. */
__attribute__((format(printf, 2, 3)))
static int report(struct gp_worker *w, const char *fmt, ...) {
  char line[GP_REPORT_LINE_MAX];
  va_list ap;
  ssize_t n;
  int len;

  if (!w->report_ok)
    return -1;
  va_start(ap, fmt);
  len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (len < 0 || (size_t)len >= sizeof(line) - 1)
    return -1;
  line[len++] = '\n';
  do
    n = send(GP_WORKER_REPORT_FD, line, (size_t)len,
             MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    wlog(w, GP_LOG_DEBUG, "report to the supervisor failed: %s",
         strerror(errno));
    w->report_ok = false;
  }
  return n == len ? 0 : -1;
}

/* A "used" line, when the last is GP_WORKER_REPORT_MS old. */
static void report_used(struct gp_worker *w, uint64_t now) {
  if (!w->report_ok || now - w->last_report_ms < GP_WORKER_REPORT_MS)
    return;
  w->last_report_ms = now;
  report(w, "used %llu %llu", (unsigned long long)w->mem_used,
         (unsigned long long)(now - w->last_request_ms));
}

/* Asks the supervisor whether session |id| is new on this server (pool.h,
 * "claim"). Returns 1 when it is (the id is now taken), 0 when it was used
 * before, -2 when the supervisor's table of claims is full, -1 when the
 * supervisor did not answer. */
static int claim(struct gp_worker *w, uint64_t id, uint64_t expires) {
  char buf[16];
  size_t have = 0;
  uint64_t deadline = mono_ms() + GP_WORKER_CLAIM_TIMEOUT_MS;

  if (report(w, "claim %016llx %llu", (unsigned long long)id,
             (unsigned long long)expires) != 0)
    return -1;
  while (have < sizeof(buf)) {
    struct pollfd pfd = {GP_WORKER_REPORT_FD, POLLIN, 0};
    uint64_t now = mono_ms();
    ssize_t n;
    int r;

    if (now >= deadline)
      return -1;
    r = poll(&pfd, 1, (int)(deadline - now));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    n = recv(GP_WORKER_REPORT_FD, buf + have, sizeof(buf) - have,
             MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      return -1;
    have += (size_t)n;
    if (memchr(buf, '\n', have)) {
      if (have == 3 && memcmp(buf, "ok\n", 3) == 0)
        return 1;
      if (have == 5 && memcmp(buf, "used\n", 5) == 0)
        return 0;
      if (have == 5 && memcmp(buf, "full\n", 5) == 0)
        return -2;
      return -1;
    }
  }
  return -1;
}

/* True when |uuid| is among the GPUs the supervisor said it offers. */
static bool offered(const struct gp_worker *w, const char *uuid) {
  const char *p = w->cfg->offer;
  size_t n = strlen(uuid);

  while (p && *p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && n > 0 && strncasecmp(p, uuid, n) == 0)
      return true;
    p = comma ? comma + 1 : NULL;
  }
  return false;
}

/* Checks the session's grant (docs/broker.md, "Grants"). Returns 0 with
 * |*out| the grant (the caller frees it), or GP_EGRANT with the reason the
 * client is told in |why|. */
static int admit(struct gp_worker *w, const Gpupool__HelloRequest *m,
                 Gpupool__Grant **out, char *why, size_t whylen) {
  char name[GP_POOL_NAME_MAX + 2], gpu[64];
  Gpupool__Grant *g = NULL;
  int c;

  *out = NULL;
  if (!w->key) {
    snprintf(why, whylen, "the server cannot read its grant key: %s",
             w->key_why);
    return GP_EGRANT;
  }
  if (m->grant.len == 0) {
    snprintf(why, whylen, "no grant: this server admits sessions only "
             "through the broker");
    return GP_EGRANT;
  }
  if (gp_grant_verify(w->key, w->keylen, m->grant.data, m->grant.len,
                      (uint64_t)time(NULL), &g, why, whylen) != 0)
    return GP_EGRANT;
  if (!g->server || strcmp(g->server, w->cfg->name) != 0) {
    sanitize(g->server, name, sizeof(name));
    snprintf(why, whylen, "grant for server %s, this is %s", name,
             w->cfg->name);
    goto refuse;
  }
  if (!g->gpu_uuid || !offered(w, g->gpu_uuid)) {
    sanitize(g->gpu_uuid, gpu, sizeof(gpu));
    snprintf(why, whylen, "grant for GPU %s, which server %s does not "
             "offer", gpu, w->cfg->name);
    goto refuse;
  }
  if (g->session_id == 0) {
    snprintf(why, whylen, "grant for session 0, which is not a session id");
    goto refuse;
  }
  /* Bound to this connection (docs/security.md): the proof signs this
   * connection's TLS exporter (32 zero bytes on plain TCP) with the key
   * the grant names. Checked before the grant is claimed, so that a copy
   * replayed elsewhere neither runs nor uses it up. */
  {
    uint8_t exporter[GP_GRANT_EXPORTER_LEN] = {0};
    if (gp_wire_is_tls(&w->wire) &&
        gp_wire_tls_exporter(&w->wire, exporter) != 0) {
      snprintf(why, whylen, "grant cannot be checked: no TLS exporter");
      goto refuse;
    }
    if (!gp_grant_proof_ok(g->binding_key.data, exporter, m->grant.data,
                           m->grant.len, m->grant_proof.data,
                           m->grant_proof.len)) {
      snprintf(why, whylen, "grant not bound to this connection");
      goto refuse;
    }
  }
  c = claim(w, g->session_id, g->expires_unix);
  if (c == 0) {
    snprintf(why, whylen, "grant already used: session %016llx was "
             "admitted before on this server",
             (unsigned long long)g->session_id);
    goto refuse;
  }
  if (c == -2) {
    snprintf(why, whylen, "too many grants in flight on this server");
    goto refuse;
  }
  if (c < 0) {
    snprintf(why, whylen, "grant cannot be checked against reuse: the "
             "server's supervisor did not answer");
    goto refuse;
  }
  *out = g;
  return 0;

refuse:
  gpupool__grant__free_unpacked(g, NULL);
  return GP_EGRANT;
}

/* Device memory counted against the grant's limit, and the context it
 * goes away with (docs/broker.md, "Grants"): an allocation, a module's
 * globals, or (in a context's own entry) bytes that could not be given
 * back. */
struct gp_charge {
  uint64_t ctx;
  uint64_t bytes;
};

/* What |size| bytes of allocation count: rounded up to the grain. */
static uint64_t charge_of(uint64_t size) {
  uint64_t g = size >= GP_WORKER_GRAIN_LARGE ? GP_WORKER_GRAIN_LARGE
                                             : GP_WORKER_GRAIN_SMALL;

  if (size > UINT64_MAX - (g - 1))
    return UINT64_MAX;
  return (size + g - 1) / g * g;
}

/* True when |bytes| more would take the session over its limit. */
static bool over_limit(const struct gp_worker *w, uint64_t bytes) {
  return w->limited &&
         (w->mem_used >= w->mem_limit || bytes > w->mem_limit - w->mem_used);
}

static void count(struct gp_worker *w, uint64_t bytes) {
  w->mem_used = bytes > UINT64_MAX - w->mem_used ? UINT64_MAX
                                                 : w->mem_used + bytes;
}

static void uncount(struct gp_worker *w, uint64_t bytes) {
  w->mem_used -= bytes <= w->mem_used ? bytes : w->mem_used;
}

/* Records |bytes| under |key| of |map|, owned by context |ctx|. Returns
 * 0, or -1 when it cannot be recorded. */
static int charge_put(struct gp_worker *w, struct gp__idmap *map,
                      uint64_t key, uint64_t ctx, uint64_t bytes) {
  struct gp_charge *c = malloc(sizeof(*c));

  if (!c)
    return -1;
  c->ctx = ctx;
  c->bytes = bytes;
  if (gp__idmap_put(map, key, c) != CUDA_SUCCESS) {
    free(c);
    return -1;
  }
  count(w, bytes);
  return 0;
}

static void charge_drop(struct gp_worker *w, struct gp__idmap *map,
                        uint64_t key) {
  struct gp_charge *c = gp__idmap_remove(map, key);

  if (c) {
    uncount(w, c->bytes);
    free(c);
  }
}

/* Memory the backend still holds but the worker cannot record, or could
 * not give back: it stays counted until context |ctx| is destroyed (for
 * the whole session when even that cannot be recorded). */
static void charge_lost(struct gp_worker *w, uint64_t ctx, uint64_t bytes) {
  struct gp_charge *c = gp__idmap_get(&w->ctxs, ctx);

  wlog(w, GP_LOG_WARN, "%llu bytes of context %#llx could not be given "
       "back: they stay counted against the session's limit",
       (unsigned long long)bytes, (unsigned long long)ctx);
  count(w, bytes);
  if (c)
    c->bytes = bytes > UINT64_MAX - c->bytes ? UINT64_MAX : c->bytes + bytes;
}

/* After a new allocation of |bytes| (already charge_of'd) at |dptr| in
 * |ctx| that is not to be kept (over the limit, or not recordable): frees
 * it, and when even that fails, keeps it counted. */
static void alloc_rollback(struct gp_worker *w, uint64_t ctx, uint64_t dptr,
                           uint64_t bytes) {
  if (w->ops->mem_free(w->be, dptr) == CUDA_SUCCESS)
    return;
  if (charge_put(w, &w->allocs, dptr, ctx, bytes) != 0)
    charge_lost(w, ctx, bytes);
}

/* A new allocation of |bytes| at |dptr| in |ctx|: recorded, or rolled
 * back. Returns CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY. */
static int alloc_keep(struct gp_worker *w, uint64_t ctx, uint64_t dptr,
                      uint64_t bytes) {
  if (!over_limit(w, bytes) &&
      charge_put(w, &w->allocs, dptr, ctx, bytes) == 0)
    return CUDA_SUCCESS;
  alloc_rollback(w, ctx, dptr, bytes);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Drops every entry of |map| owned by context |ctx|. */
static void drop_ctx_entries(struct gp_worker *w, struct gp__idmap *map,
                             uint64_t ctx) {
  uint64_t *gone;
  size_t i, n = 0;

  if (map->count == 0)
    return;
  gone = malloc(map->count * sizeof(*gone));
  if (!gone) {
    /* One at a time, rescanning: slower, never wrong. */
    for (;;) {
      for (i = 0; i < map->cap; i++)
        if (map->slots[i].key != 0 &&
            ((struct gp_charge *)map->slots[i].value)->ctx == ctx)
          break;
      if (i == map->cap)
        return;
      charge_drop(w, map, map->slots[i].key);
    }
  }
  for (i = 0; i < map->cap && n < map->count; i++)
    if (map->slots[i].key != 0 &&
        ((struct gp_charge *)map->slots[i].value)->ctx == ctx)
      gone[n++] = map->slots[i].key;
  for (i = 0; i < n; i++)
    charge_drop(w, map, gone[i]);
  free(gone);
}

/* A context was created (or a primary context retained). */
static void ctx_born(struct gp_worker *w, uint64_t ctx) {
  if (charge_put(w, &w->ctxs, ctx, ctx, 0) != 0)
    wlog(w, GP_LOG_DEBUG, "context %#llx is not tracked",
         (unsigned long long)ctx);
}

/* Context |ctx| was destroyed (or a primary context released) and with it
 * everything in it: exactly its allocations, modules and streams are
 * given back. */
static void ctx_gone(struct gp_worker *w, uint64_t ctx) {
  uint64_t *gone;
  size_t i, n = 0;

  drop_ctx_entries(w, &w->allocs, ctx);
  drop_ctx_entries(w, &w->modules, ctx);
  charge_drop(w, &w->ctxs, ctx);
  if (w->streams.count == 0)
    return;
  gone = malloc(w->streams.count * sizeof(*gone));
  for (i = 0; gone && i < w->streams.cap && n < w->streams.count; i++)
    if (w->streams.slots[i].key != 0 &&
        (uint64_t)(uintptr_t)w->streams.slots[i].value == ctx)
      gone[n++] = w->streams.slots[i].key;
  for (i = 0; i < n; i++)
    gp__idmap_remove(&w->streams, gone[i]);
  free(gone);
}

/* Frees every value of a map of charges, then the map. */
static void charges_free(struct gp__idmap *map) {
  size_t i;

  for (i = 0; i < map->cap; i++)
    if (map->slots[i].key != 0)
      free(map->slots[i].value);
  gp__idmap_free(map);
}

/* True when a session under a memory limit has as many contexts as it may
 * (GP_WORKER_LIMITED_CTXS). */
static bool too_many_ctxs(const struct gp_worker *w) {
  return w->limited && w->ctxs.count >= GP_WORKER_LIMITED_CTXS;
}

/* True when one of the session's streams (a context's default stream
 * included) still has work pending on the backend: a kernel the client
 * launched and does host work meanwhile. */
static bool work_pending(struct gp_worker *w) {
  size_t i;

  if (!w->be)
    return false;
  for (i = 0; i < w->ctxs.cap; i++)
    if (w->ctxs.slots[i].key != 0 &&
        w->ops->stream_query(w->be, w->ctxs.slots[i].key, 0) ==
            CUDA_ERROR_NOT_READY)
      return true;
  for (i = 0; i < w->streams.cap; i++)
    if (w->streams.slots[i].key != 0 &&
        w->ops->stream_query(w->be,
                             (uint64_t)(uintptr_t)w->streams.slots[i].value,
                             w->streams.slots[i].key) == CUDA_ERROR_NOT_READY)
      return true;
  return false;
}

/* ---- handshake ------------------------------------------------------------ */

static int handle_hello(struct gp_worker *w, const struct gp_frame_header *h,
                        const Gpupool__HelloRequest *m) {
  Gpupool__HelloReply rep = GPUPOOL__HELLO_REPLY__INIT;
  Gpupool__DeviceInfo *infos = NULL, **info_ptrs = NULL;
  Gpupool__DeviceAttribute *attrs = NULL, **attr_ptrs = NULL;
  struct gp_device_desc *descs = NULL;
  char server_name[128], message[320], client[96], host[96];
  Gpupool__Grant *grant = NULL;
  uint32_t lo, hi;
  int ndev = 0, i, j, r, res, ret = 0;

  if (h->flags & GP_FRAME_F_NOREPLY)
    return protocol_error(w, GP_EPROTO, h, "HELLO flagged NOREPLY");
  sanitize(m->client_name, client, sizeof(client));
  sanitize(m->hostname, host, sizeof(host));

  snprintf(server_name, sizeof(server_name), "gpupool-server %s (%s)",
           GP_VERSION_STRING, w->ops->name);
  rep.server_name = server_name;
  rep.session_id = w->session_id;

  lo = m->min_version > GP_PROTOCOL_VERSION_MIN ? m->min_version
                                                : GP_PROTOCOL_VERSION_MIN;
  hi = m->max_version < GP_PROTOCOL_VERSION_MAX ? m->max_version
                                                : GP_PROTOCOL_VERSION_MAX;
  if (m->min_version > m->max_version || lo > hi) {
    snprintf(message, sizeof(message),
             "no protocol version in common: client speaks %u to %u, "
             "server %u to %u", m->min_version, m->max_version,
             GP_PROTOCOL_VERSION_MIN, GP_PROTOCOL_VERSION_MAX);
    wlog(w, GP_LOG_WARN, "HELLO from '%s' on '%s': %s; closing", client,
         host, message);
    rep.result = CUDA_ERROR_NOT_SUPPORTED;
    rep.message = message;
    reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
    w->exit_status = GP_EXIT_PROTOCOL;
    return GP_EVERSION;
  }
  rep.version = hi;

  if (w->cfg->grant_key_file) {
    if (admit(w, m, &grant, message, sizeof(message)) != 0) {
      wlog(w, GP_LOG_WARN, "HELLO from '%s' on '%s' refused: %s", client,
           host, message);
      rep.result = CUDA_ERROR_NOT_PERMITTED;
      rep.message = message;
      reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
      w->exit_status = GP_EXIT_REFUSED;
      return GP_EGRANT;
    }
    /* From here the session is the grant's: its id names it in logs. */
    w->session_id = grant->session_id;
    rep.session_id = w->session_id;
    w->limited = grant->memory_limit != 0;
    w->mem_limit = grant->memory_limit;
    /* The driver the backend loads sees only the granted GPU. */
    if (setenv("CUDA_VISIBLE_DEVICES", grant->gpu_uuid, 1) != 0) {
      wlog(w, GP_LOG_ERROR, "cannot set CUDA_VISIBLE_DEVICES: %s",
           strerror(errno));
      w->exit_status = GP_EXIT_BACKEND;
      ret = GP_ENOMEM;
      goto out;
    }
  }

  res = w->ops->open(&w->cfg->bcfg, &w->be);
  if (res != CUDA_SUCCESS) {
    snprintf(message, sizeof(message),
             "the server's %s backend could not start (CUDA error %d)",
             w->ops->name, res);
    wlog(w, GP_LOG_ERROR, "%s", message);
    rep.result = res;
    rep.message = message;
    reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
    w->exit_status = GP_EXIT_BACKEND;
    ret = GP_ENOMEM;
    goto out;
  }
  w->ops->driver_version(w->be, &rep.driver_version);
  if (w->cache_fd >= 0)
    rep.features |= GP_FEATURE_SHARED_IMAGES;
  if (w->cfg->compress != GP_Z_OFF)
    rep.features |= GP_FEATURE_ZSTD;
  res = w->ops->device_count(w->be, &ndev);
  if (res != CUDA_SUCCESS || ndev < 0)
    ndev = 0;
  if (ndev > GP_WORKER_MAX_DEVICES)
    ndev = GP_WORKER_MAX_DEVICES;

  if (ndev > 0) {
    descs = calloc((size_t)ndev, sizeof(*descs));
    infos = calloc((size_t)ndev, sizeof(*infos));
    info_ptrs = calloc((size_t)ndev, sizeof(*info_ptrs));
    attrs = calloc((size_t)ndev * GP_DEVICE_MAX_ATTRS, sizeof(*attrs));
    attr_ptrs = calloc((size_t)ndev * GP_DEVICE_MAX_ATTRS,
                       sizeof(*attr_ptrs));
    if (!descs || !infos || !info_ptrs || !attrs || !attr_ptrs) {
      wlog(w, GP_LOG_ERROR, "out of memory building HelloReply");
      w->exit_status = GP_EXIT_BACKEND;
      ret = GP_ENOMEM;
      goto out;
    }
  }
  for (i = 0; i < ndev; i++) {
    Gpupool__DeviceInfo init = GPUPOOL__DEVICE_INFO__INIT;
    struct gp_device_desc *d = &descs[i];
    int nattrs;

    infos[i] = init;
    res = w->ops->device_describe(w->be, i, d);
    if (res != CUDA_SUCCESS) {
      wlog(w, GP_LOG_ERROR, "device %d: describe failed (CUDA error %d)", i,
           res);
      memset(d, 0, sizeof(*d));
    }
    d->name[sizeof(d->name) - 1] = '\0';
    nattrs = d->nattrs < 0 ? 0
             : d->nattrs > GP_DEVICE_MAX_ATTRS ? GP_DEVICE_MAX_ATTRS
                                               : d->nattrs;
    infos[i].ordinal = i;
    infos[i].name = d->name;
    infos[i].uuid.data = d->uuid;
    infos[i].uuid.len = sizeof(d->uuid);
    /* A session with a memory limit sees a device of that size, as it
     * would a MIG slice: cuDeviceTotalMem and cudart's totalGlobalMem
     * agree with cuMemGetInfo. */
    infos[i].total_mem = w->limited && w->mem_limit < d->total_mem
                             ? w->mem_limit
                             : d->total_mem;
    infos[i].attributes = &attr_ptrs[(size_t)i * GP_DEVICE_MAX_ATTRS];
    infos[i].n_attributes = (size_t)nattrs;
    for (j = 0; j < nattrs; j++) {
      Gpupool__DeviceAttribute ainit = GPUPOOL__DEVICE_ATTRIBUTE__INIT;
      Gpupool__DeviceAttribute *a =
          &attrs[(size_t)i * GP_DEVICE_MAX_ATTRS + (size_t)j];
      *a = ainit;
      a->attr = d->attrs[j].attr;
      a->value = d->attrs[j].value;
      infos[i].attributes[j] = a;
    }
    info_ptrs[i] = &infos[i];
  }
  rep.devices = info_ptrs;
  rep.n_devices = (size_t)ndev;
  rep.result = CUDA_SUCCESS;

  r = reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  if (r != 0) {
    ret = r;
    goto out;
  }
  w->hello_done = true;
  w->last_request_ms = mono_ms();
  wlog(w, GP_LOG_INFO, "HELLO from '%s' on '%s' pid %u over %s: protocol "
       "%u, %d device%s", client, host, m->pid,
       gp_wire_is_tls(&w->wire) ? "TLS" : "plain TCP", rep.version, ndev,
       ndev == 1 ? "" : "s");
  if (grant) {
    char tenant[GP_TENANT_MAX + 1];
    gp__tenant_clean(grant->tenant, tenant);
    wlog(w, GP_LOG_INFO, "admitted: tenant %s, GPU %s, memory limit %llu "
         "MiB", tenant, grant->gpu_uuid,
         (unsigned long long)(grant->memory_limit >> 20));
    report(w, "admitted %016llx %s %s %llu %llu",
           (unsigned long long)w->session_id, tenant, grant->gpu_uuid,
           (unsigned long long)grant->memory_limit,
           (unsigned long long)grant->expires_unix);
  }

out:
  if (grant)
    gpupool__grant__free_unpacked(grant, NULL);
  free(attr_ptrs);
  free(attrs);
  free(info_ptrs);
  free(infos);
  free(descs);
  return ret;
}

/* ---- copies --------------------------------------------------------------- */

/* memcpy_htod_pipe's fill callback: the next |len| bytes of the payload
 * into |buf|, or dropped when |buf| is NULL. */
static int fill_from_wire(void *arg, void *buf, size_t len) {
  struct gp_worker *w = arg;

  return buf ? gp_wire_recv_payload(&w->wire, buf, len)
             : gp_wire_discard(&w->wire, len);
}

/* Writes |len| bytes straight to the socket (after what the wire has
 * buffered). Returns 0 or a fatal GP_E* code. */
static int write_raw(struct gp_worker *w, const void *buf, size_t len) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  int r = gp_wire_flush(&w->wire);

  while (r == 0 && iov.iov_len > 0) {
    long n = w->wire.ops->writev(w->wire.ctx, &iov, 1);
    if (n <= 0) {
      r = n < 0 ? (int)n : GP_EIO;
      w->wire.error = r;
      if (r == GP_ETIMEDOUT)
        w->wire.write_timed_out = true;
      break;
    }
    w->wire.bytes_sent += (uint64_t)n;
    iov.iov_base = (uint8_t *)iov.iov_base + n;
    iov.iov_len -= (size_t)n;
  }
  return r;
}

/* A MEMCPY_DTOH answered through memcpy_dtoh_pipe: the reply's header and
 * Status go out before the first byte of data, which then follows piece
 * by piece as the backend's copies complete. */
struct dtoh_pipe {
  struct gp_worker *w;
  const struct gp_frame_header *h;
  uint64_t size;
  bool started;
};

static int drain_to_wire(void *arg, const void *buf, size_t len) {
  struct dtoh_pipe *p = arg;
  struct gp_worker *w = p->w;
  int r;

  if (!p->started) {
    Gpupool__Status st = GPUPOOL__STATUS__INIT;
    struct gp_frame_header fh = {0};
    uint8_t head[GP_FRAME_HEADER_SIZE + 64];
    size_t n;

    p->started = true;
    st.deferred = w->deferred;
    w->deferred = CUDA_SUCCESS;
    gp__heartbeat_idle(w->hb);
    if (gp__heartbeat_timed_out(w->hb))
      return GP_EKTIMEOUT;
    r = send_device_output(w);
    if (r != 0)
      return r;
    n = protobuf_c_message_get_packed_size(&st.base);
    if (n > sizeof(head) - GP_FRAME_HEADER_SIZE)
      return GP_EPROTO;
    fh.version = GP_FRAME_VERSION;
    fh.type = p->h->type;
    fh.flags = GP_FRAME_F_REPLY;
    fh.request_id = p->h->request_id;
    fh.msg_len = (uint32_t)n;
    fh.payload_len = (uint32_t)p->size;
    gp_frame_header_encode(&fh, head);
    protobuf_c_message_pack(&st.base, head + GP_FRAME_HEADER_SIZE);
    w->wire.frames_sent++;
    r = write_raw(w, head, GP_FRAME_HEADER_SIZE + n);
    if (r != 0)
      return r;
  }
  return write_raw(w, buf, len);
}

/* Room for |n| bytes in w->zbuf. False when it cannot be had. */
static bool zbuf_reserve(struct gp_worker *w, size_t n) {
  uint8_t *p;

  if (w->zcap >= n)
    return true;
  p = realloc(w->zbuf, n);
  if (!p)
    return false;
  w->zbuf = p;
  w->zcap = n;
  return true;
}

/* A MEMCPY_HTOD whose payload is compressed (GP_FRAME_F_ZSTD): the
 * compressed bytes are read whole, then decompressed straight into device
 * memory when the backend shows it, else into a buffer the backend copies
 * from. Content that is not exactly m->size bytes (one that would expand
 * beyond it above all) fails the copy with CUDA_ERROR_INVALID_VALUE, and
 * the session goes on: the frame was read to its end. */
static int handle_htod_zstd(struct gp_worker *w,
                            const struct gp_frame_header *h,
                            const Gpupool__MemcpyHtoD *m) {
  const struct gp_backend_ops *ops = w->ops;
  void *host = NULL, *buf = NULL;
  int res, r;

  if (m->size == 0 || m->size > GP_COPY_CHUNK ||
      h->payload_len > gp_z_bound(m->size)) {
    wlog(w, GP_LOG_DEBUG, "compressed MEMCPY_HTOD of %llu bytes in %u: "
         "refused", (unsigned long long)m->size, h->payload_len);
    r = gp_wire_discard(&w->wire, h->payload_len);
    if (r != 0)
      return r;
    return reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  }
  if (!zbuf_reserve(w, h->payload_len)) {
    r = gp_wire_discard(&w->wire, h->payload_len);
    if (r != 0)
      return r;
    return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
  }
  r = gp_wire_recv_payload(&w->wire, w->zbuf, h->payload_len);
  if (r != 0)
    return r;
  res = ops->mem_host_view
            ? ops->mem_host_view(w->be, m->dst, m->size, m->stream, &host)
            : CUDA_ERROR_NOT_SUPPORTED;
  if (res == CUDA_ERROR_NOT_SUPPORTED) {
    host = buf = malloc(m->size);
    res = buf ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (res == CUDA_SUCCESS &&
      gp_z_decompress(&w->z, host, m->size, w->zbuf, h->payload_len) != 0) {
    wlog(w, GP_LOG_WARN, "compressed MEMCPY_HTOD (request %u): the content "
         "is not %llu bytes of zstd: refused", h->request_id,
         (unsigned long long)m->size);
    res = CUDA_ERROR_INVALID_VALUE;
  }
  if (res == CUDA_SUCCESS && buf)
    res = ops->memcpy_htod(w->be, m->dst, buf, m->size, m->stream);
  free(buf);
  return reply_status(w, h, res, NULL, 0);
}

static int handle_htod(struct gp_worker *w, const struct gp_frame_header *h,
                       const Gpupool__MemcpyHtoD *m) {
  const struct gp_backend_ops *ops = w->ops;
  void *host = NULL;
  uint64_t off, n;
  int res, r;

  if (h->flags & GP_FRAME_F_ZSTD)
    return handle_htod_zstd(w, h, m);
  if (m->size != h->payload_len)
    return protocol_error(w, GP_EPROTO, h,
                          "MEMCPY_HTOD of %llu bytes carries a payload of "
                          "%u bytes", (unsigned long long)m->size,
                          h->payload_len);
  if (m->size == 0)
    return reply_status(w, h, ops->memcpy_htod(w->be, m->dst, NULL, 0,
                                               m->stream), NULL, 0);

  res = ops->mem_host_view
            ? ops->mem_host_view(w->be, m->dst, m->size, m->stream, &host)
            : CUDA_ERROR_NOT_SUPPORTED;
  if (res == CUDA_SUCCESS) {
    /* Straight from the socket into device memory. */
    r = gp_wire_recv_payload(&w->wire, host, m->size);
    if (r != 0)
      return r;
    return reply_status(w, h, CUDA_SUCCESS, NULL, 0);
  }
  if (res != CUDA_ERROR_NOT_SUPPORTED || m->dst > UINT64_MAX - m->size) {
    r = gp_wire_discard(&w->wire, m->size);
    if (r != 0)
      return r;
    return reply_status(w, h, res != CUDA_ERROR_NOT_SUPPORTED
                                  ? res : CUDA_ERROR_INVALID_VALUE, NULL, 0);
  }

  if (ops->memcpy_htod_pipe) {
    /* The backend's pipeline reads the payload through fill_from_wire. */
    res = ops->memcpy_htod_pipe(w->be, m->dst, m->size, m->stream,
                                fill_from_wire, w);
    if (res < 0)
      return res;
    return reply_status(w, h, res, NULL, 0);
  }

  /* Stage through a bounded buffer, chunk by chunk. */
  if (!w->stage) {
    w->stage = malloc(GP_WORKER_STAGE_SIZE);
    if (!w->stage) {
      r = gp_wire_discard(&w->wire, m->size);
      if (r != 0)
        return r;
      return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
    }
  }
  res = CUDA_SUCCESS;
  for (off = 0; off < m->size; off += n) {
    n = m->size - off < GP_WORKER_STAGE_SIZE ? m->size - off
                                             : GP_WORKER_STAGE_SIZE;
    if (res != CUDA_SUCCESS) {
      r = gp_wire_discard(&w->wire, n);
    } else {
      r = gp_wire_recv_payload(&w->wire, w->stage, n);
      if (r == 0)
        res = ops->memcpy_htod(w->be, m->dst + off, w->stage, n, m->stream);
    }
    if (r != 0)
      return r;
  }
  return reply_status(w, h, res, NULL, 0);
}

/* The successful reply to MEMCPY_DTOH |m|, its data at |data|: compressed
 * when the client allows it (m->compress), the server's --compress is not
 * off, and, unless either side says "on", a sample says it pays. */
static int reply_data(struct gp_worker *w, const struct gp_frame_header *h,
                      const Gpupool__MemcpyDtoH *m, const void *data) {
  enum gp_z_mode mode = GP_Z_OFF;
  size_t c;

  if (m->compress != GP_Z_OFF && w->cfg->compress != GP_Z_OFF)
    mode = m->compress == GP_Z_ON || w->cfg->compress == GP_Z_ON
               ? GP_Z_ON : GP_Z_AUTO;
  if (mode == GP_Z_OFF || !gp_z_worth(&w->z, mode, data, m->size) ||
      !zbuf_reserve(w, gp_z_bound(m->size)))
    return reply_status(w, h, CUDA_SUCCESS, data, m->size);
  c = gp_z_compress(&w->z, w->zbuf, w->zcap, data, m->size);
  if (c == 0 || (mode == GP_Z_AUTO && c >= m->size - m->size / 8)) {
    w->z.chunks_raw++;
    return reply_status(w, h, CUDA_SUCCESS, data, m->size);
  }
  if (gp__log_level() >= GP_LOG_DEBUG)
    wlog(w, GP_LOG_DEBUG, "MEMCPY_DTOH of %llu bytes: %zu compressed",
         (unsigned long long)m->size, c);
  w->z.chunks_compressed++;
  w->z.bytes_in += m->size;
  w->z.bytes_out += c;
  w->reply_flags = GP_FRAME_F_ZSTD;
  return reply_status(w, h, CUDA_SUCCESS, w->zbuf, c);
}

static int handle_dtoh(struct gp_worker *w, const struct gp_frame_header *h,
                       const Gpupool__MemcpyDtoH *m) {
  const struct gp_backend_ops *ops = w->ops;
  void *host = NULL, *buf;
  int res, r;

  if (h->flags & GP_FRAME_F_NOREPLY)
    return protocol_error(w, GP_EPROTO, h,
                          "MEMCPY_DTOH flagged NOREPLY: its data has "
                          "nowhere to go");
  if (m->size > GP_COPY_CHUNK)
    return reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  if (m->size == 0)
    return reply_status(w, h, ops->memcpy_dtoh(w->be, NULL, m->src, 0,
                                               m->stream), NULL, 0);

  res = ops->mem_host_view
            ? ops->mem_host_view(w->be, m->src, m->size, m->stream, &host)
            : CUDA_ERROR_NOT_SUPPORTED;
  if (res == CUDA_SUCCESS)
    return reply_data(w, h, m, host);
  if (res != CUDA_ERROR_NOT_SUPPORTED)
    return reply_status(w, h, res, NULL, 0);

  if (ops->memcpy_dtoh_pipe) {
    struct dtoh_pipe p = {.w = w, .h = h, .size = m->size};
    res = ops->memcpy_dtoh_pipe(w->be, m->src, m->size, m->stream,
                                drain_to_wire, &p);
    if (res < 0)
      return res;
    /* Data goes out only once the whole copy has succeeded. */
    if (!p.started)
      return reply_status(w, h, res, NULL, 0);
    return 0;
  }

  buf = malloc(m->size);
  if (!buf)
    return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
  res = ops->memcpy_dtoh(w->be, buf, m->src, m->size, m->stream);
  r = res == CUDA_SUCCESS ? reply_data(w, h, m, buf)
                          : reply_status(w, h, res, NULL, 0);
  free(buf);
  return r;
}

/* ---- 2D copies and memsets (memory part) ---------------------------------
 *
 * cuMemcpy2D/3D and cuMemsetD2D* arrive as 2D regions: |height| rows of
 * |width| bytes, row i at base + i * pitch (see gpupool.proto). The whole
 * region, from its first byte to the end of its last row, must lie inside
 * one allocation; that is checked before anything is read or written, so a
 * bad request changes nothing. Contiguous regions are done in one
 * operation, others row by row with the backend's ordinary operations. */

/* The bytes from the start of a 2D region to the end of its last row,
 * (height - 1) * pitch + width, in |*span| (0 for an empty region). False
 * when a region of several rows has a pitch narrower than a row, or when
 * the span or its end does not fit in 64 bits. */
static bool span_2d(uint64_t base, uint64_t pitch, uint64_t width,
                    uint64_t height, uint64_t *span) {
  uint64_t s;

  *span = 0;
  if (width == 0 || height == 0)
    return true;
  if (height > 1 && pitch < width)
    return false;
  /* pitch >= width > 0 whenever height > 1. */
  if (height > 1 && height - 1 > (UINT64_MAX - width) / pitch)
    return false;
  s = (height - 1) * pitch + width;
  if (base > UINT64_MAX - s)
    return false;
  *span = s;
  return true;
}

/* CUDA_SUCCESS when [base, base + span) lies inside one allocation (span >
 * 0); CUDA_ERROR_INVALID_VALUE when not, or the sticky error of the
 * allocation's context. */
static int region_check(struct gp_worker *w, uint64_t base, uint64_t span) {
  uint64_t abase = 0, asize = 0;
  int res = w->ops->mem_get_address_range(w->be, base, &abase, &asize);

  if (res == CUDA_ERROR_NOT_FOUND)
    return CUDA_ERROR_INVALID_VALUE;
  if (res != CUDA_SUCCESS)
    return res;
  if (base < abase || base - abase >= asize ||
      span > asize - (base - abase))
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

static bool stage_ready(struct gp_worker *w) {
  if (!w->stage)
    w->stage = malloc(GP_WORKER_STAGE_SIZE);
  return w->stage != NULL;
}

/* MEMCPY_2D_HTOD: the payload's packed rows are scattered to |dst|,
 * straight from the socket when the backend's memory is host-addressable,
 * else through the staging buffer. A rejected request's payload is read
 * and dropped, so the stream stays in step. */
static int handle_2d_htod(struct gp_worker *w, const struct gp_frame_header *h,
                          const Gpupool__Memcpy2DHtoD *m) {
  const struct gp_backend_ops *ops = w->ops;
  uint8_t *host = NULL;
  uint64_t span, i, off, n;
  int res, r;

  if ((m->height != 0 && m->width > UINT64_MAX / m->height) ||
      m->width * m->height != h->payload_len)
    return protocol_error(w, GP_EPROTO, h,
                          "MEMCPY_2D_HTOD of %llu rows of %llu bytes carries "
                          "a payload of %u bytes",
                          (unsigned long long)m->height,
                          (unsigned long long)m->width, h->payload_len);
  if (h->payload_len == 0)
    return reply_status(w, h, ops->memcpy_htod(w->be, m->dst, NULL, 0,
                                               m->stream), NULL, 0);
  if (!span_2d(m->dst, m->dst_pitch, m->width, m->height, &span)) {
    res = CUDA_ERROR_INVALID_VALUE;
  } else {
    void *view = NULL;
    res = ops->mem_host_view
              ? ops->mem_host_view(w->be, m->dst, span, m->stream, &view)
              : CUDA_ERROR_NOT_SUPPORTED;
    host = view;
  }
  if (res == CUDA_SUCCESS) {
    for (i = 0; i < m->height; i++) {
      r = gp_wire_recv_payload(&w->wire, host + i * m->dst_pitch, m->width);
      if (r != 0)
        return r;
    }
    return reply_status(w, h, CUDA_SUCCESS, NULL, 0);
  }
  if (res == CUDA_ERROR_NOT_SUPPORTED)
    res = region_check(w, m->dst, span);
  if (res == CUDA_SUCCESS && !stage_ready(w))
    res = CUDA_ERROR_OUT_OF_MEMORY;
  if (res != CUDA_SUCCESS) {
    r = gp_wire_discard(&w->wire, h->payload_len);
    return r ? r : reply_status(w, h, res, NULL, 0);
  }
  for (i = 0; i < m->height; i++) {
    for (off = 0; off < m->width; off += n) {
      n = m->width - off < GP_WORKER_STAGE_SIZE ? m->width - off
                                                : GP_WORKER_STAGE_SIZE;
      if (res != CUDA_SUCCESS) {
        r = gp_wire_discard(&w->wire, n);
      } else {
        r = gp_wire_recv_payload(&w->wire, w->stage, n);
        if (r == 0)
          res = ops->memcpy_htod(w->be, m->dst + i * m->dst_pitch + off,
                                 w->stage, n, m->stream);
      }
      if (r != 0)
        return r;
    }
  }
  return reply_status(w, h, res, NULL, 0);
}

/* MEMCPY_2D_DTOH: the rows are gathered into the reply's payload (sent
 * straight from device memory when they are contiguous and the memory is
 * host-addressable). */
static int handle_2d_dtoh(struct gp_worker *w, const struct gp_frame_header *h,
                          const Gpupool__Memcpy2DDtoH *m) {
  const struct gp_backend_ops *ops = w->ops;
  uint8_t *host = NULL, *buf;
  uint64_t span, n, i;
  int res, r;

  if (h->flags & GP_FRAME_F_NOREPLY)
    return protocol_error(w, GP_EPROTO, h,
                          "MEMCPY_2D_DTOH flagged NOREPLY: its data has "
                          "nowhere to go");
  if (m->height != 0 && m->width > GP_COPY_CHUNK / m->height)
    return reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  n = m->width * m->height;
  if (n == 0)
    return reply_status(w, h, ops->memcpy_dtoh(w->be, NULL, m->src, 0,
                                               m->stream), NULL, 0);
  if (!span_2d(m->src, m->src_pitch, m->width, m->height, &span))
    return reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  {
    void *view = NULL;
    res = ops->mem_host_view
              ? ops->mem_host_view(w->be, m->src, span, m->stream, &view)
              : CUDA_ERROR_NOT_SUPPORTED;
    host = view;
  }
  if (res == CUDA_SUCCESS && span == n)
    return reply_status(w, h, CUDA_SUCCESS, host, n);
  if (res == CUDA_ERROR_NOT_SUPPORTED)
    res = region_check(w, m->src, span);
  if (res != CUDA_SUCCESS)
    return reply_status(w, h, res, NULL, 0);
  buf = malloc(n);
  if (!buf)
    return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
  for (i = 0; i < m->height && res == CUDA_SUCCESS; i++) {
    if (host)
      memcpy(buf + i * m->width, host + i * m->src_pitch, m->width);
    else
      res = ops->memcpy_dtoh(w->be, buf + i * m->width,
                             m->src + i * m->src_pitch, m->width, m->stream);
  }
  r = reply_status(w, h, res, res == CUDA_SUCCESS ? buf : NULL,
                   res == CUDA_SUCCESS ? n : 0);
  free(buf);
  return r;
}

static int handle_2d_dtod(struct gp_worker *w, const Gpupool__Memcpy2DDtoD *m) {
  const struct gp_backend_ops *ops = w->ops;
  uint64_t dspan, sspan, i;
  int res;

  if (m->width == 0 || m->height == 0)
    return ops->memcpy_dtod(w->be, m->dst, m->src, 0, m->stream);
  if (!span_2d(m->dst, m->dst_pitch, m->width, m->height, &dspan) ||
      !span_2d(m->src, m->src_pitch, m->width, m->height, &sspan))
    return CUDA_ERROR_INVALID_VALUE;
  res = region_check(w, m->dst, dspan);
  if (res == CUDA_SUCCESS)
    res = region_check(w, m->src, sspan);
  if (res != CUDA_SUCCESS)
    return res;
  /* Both spans are then width * height. */
  if (dspan == sspan && dspan == m->width * m->height)
    return ops->memcpy_dtod(w->be, m->dst, m->src, dspan, m->stream);
  for (i = 0; i < m->height && res == CUDA_SUCCESS; i++)
    res = ops->memcpy_dtod(w->be, m->dst + i * m->dst_pitch,
                           m->src + i * m->src_pitch, m->width, m->stream);
  return res;
}

static int handle_memset_2d(struct gp_worker *w, const Gpupool__Memset2D *m) {
  const struct gp_backend_ops *ops = w->ops;
  uint64_t row, span, i;
  unsigned elem = m->element_size;
  int res;

  if (elem != 1 && elem != 2 && elem != 4)
    return CUDA_ERROR_INVALID_VALUE;
  if (m->width == 0 || m->height == 0)
    return ops->memset(w->be, m->dst, m->value, elem, 0, m->stream);
  if (m->dst % elem != 0 || (m->height > 1 && m->pitch % elem != 0) ||
      m->width > UINT64_MAX / elem)
    return CUDA_ERROR_INVALID_VALUE;
  row = m->width * elem;
  if (!span_2d(m->dst, m->pitch, row, m->height, &span))
    return CUDA_ERROR_INVALID_VALUE;
  res = region_check(w, m->dst, span);
  if (res != CUDA_SUCCESS)
    return res;
  if (span == row * m->height)
    return ops->memset(w->be, m->dst, m->value, elem, m->width * m->height,
                       m->stream);
  for (i = 0; i < m->height && res == CUDA_SUCCESS; i++)
    res = ops->memset(w->be, m->dst + i * m->pitch, m->value, elem, m->width,
                      m->stream);
  return res;
}

/* ---- modules and launches ------------------------------------------------ */

/* Copies a client-supplied symbol name, refusing one that is empty, too
 * long or has bytes no PTX identifier has. */
static bool symbol_ok(const char *name) {
  size_t n = 0;

  if (!name || !*name)
    return false;
  for (; name[n]; n++)
    if (n >= GP_MAX_SYMBOL_NAME || (unsigned char)name[n] <= 0x20 ||
        (unsigned char)name[n] >= 0x7f)
      return false;
  return true;
}

static int reply_module_load(struct gp_worker *w,
                             const struct gp_frame_header *h, int32_t result,
                             bool need_image, const char *message) {
  Gpupool__ModuleLoadReply rep = GPUPOOL__MODULE_LOAD_REPLY__INIT;

  rep.result = result;
  rep.need_image = need_image;
  rep.message = (char *)(message && result != CUDA_SUCCESS ? message : "");
  return reply(w, h, &rep.base, &rep.deferred, result, NULL, 0);
}

/* After module |module| loaded into |ctx|: its globals count against the
 * limit (when the backend can say how big they are). Over the limit, or
 * not recordable, the module is unloaded again: CUDA_ERROR_OUT_OF_MEMORY,
 * |msg| says why. */
static int module_keep(struct gp_worker *w, uint64_t ctx, uint64_t module,
                       char *msg, size_t msglen) {
  uint64_t bytes = 0;

  if (!w->limited)
    return CUDA_SUCCESS;
  if (w->ops->module_global_bytes &&
      w->ops->module_global_bytes(w->be, module, &bytes) != CUDA_SUCCESS)
    bytes = 0;
  if (bytes != 0)
    bytes = charge_of(bytes);
  if (!over_limit(w, bytes) &&
      charge_put(w, &w->modules, module, ctx, bytes) == 0)
    return CUDA_SUCCESS;
  snprintf(msg, msglen, "the module's globals (%llu bytes) do not fit in "
           "the session's memory limit (%llu of %llu bytes in use)",
           (unsigned long long)bytes, (unsigned long long)w->mem_used,
           (unsigned long long)w->mem_limit);
  if (w->ops->module_unload(w->be, module) != CUDA_SUCCESS)
    charge_lost(w, ctx, bytes);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* After an upload matched its digest: the image goes into the server's
 * image cache too, for the other sessions. */
static void share_image(struct gp_worker *w, const uint8_t sha256[32],
                        const void *data, size_t len) {
  char name[65], why[256];

  gp__disk_cache_name(sha256, name);
  wlog(w, GP_LOG_DEBUG, "received the %zu-byte image %.16s", len, name);
  if (w->cache_fd >= 0 &&
      gp__disk_cache_put(w->cache_fd, sha256, data, len,
                         w->cfg->image_cache_size, why, sizeof(why)) != 0)
    wlog(w, GP_LOG_INFO, "image %.16s not kept in the image cache: %s",
         name, why);
}

/* A digest the session's cache lacks: the image from the server's image
 * cache (checked against the digest again), added to the session's cache,
 * or NULL (the client is then asked for it). */
static const struct gp_image *shared_image(struct gp_worker *w,
                                           const uint8_t sha256[32]) {
  char name[65], why[256];
  uint8_t *data;
  size_t len;
  int r;

  if (w->cache_fd < 0)
    return NULL;
  gp__disk_cache_name(sha256, name);
  r = gp__disk_cache_get(w->cache_fd, sha256, GP_WORKER_IMAGE_MAX, &data,
                         &len, why, sizeof(why));
  if (why[0])
    wlog(w, GP_LOG_WARN, "image cache: %s", why);
  if (r != 1)
    return NULL;
  wlog(w, GP_LOG_DEBUG, "the %zu-byte image %.16s from the image cache", len,
       name);
  return gp__image_add(&w->images, sha256, data, len);
}

/* MODULE_LOAD: takes the image from the payload (and caches it) or from
 * the cache, then loads it. */
static int handle_module_load(struct gp_worker *w,
                              const struct gp_frame_header *h,
                              const Gpupool__ModuleLoad *m) {
  const struct gp_image *im;
  uint8_t digest[GP_IMAGE_SHA256_LEN];
  char msg[512] = "";
  uint8_t *data;
  int res, r;

  if (h->flags & GP_FRAME_F_NOREPLY)
    return protocol_error(w, GP_EPROTO, h, "MODULE_LOAD flagged NOREPLY");
  if (m->sha256.len != GP_IMAGE_SHA256_LEN)
    return protocol_error(w, GP_EPROTO, h, "MODULE_LOAD with a digest of "
                          "%zu bytes", m->sha256.len);
  if (!m->has_image) {
    if (h->payload_len != 0)
      return protocol_error(w, GP_EPROTO, h, "MODULE_LOAD without an image "
                            "carries a payload");
    im = gp__image_find(&w->images, m->sha256.data);
    if (!im)
      im = shared_image(w, m->sha256.data);
    if (!im)
      return reply_module_load(w, h, CUDA_SUCCESS, true, NULL);
  } else {
    if (m->image_size != h->payload_len)
      return protocol_error(w, GP_EPROTO, h, "MODULE_LOAD of a %llu-byte "
                            "image carries a payload of %u bytes",
                            (unsigned long long)m->image_size,
                            h->payload_len);
    if (m->image_size == 0)
      return reply_module_load(w, h, CUDA_ERROR_INVALID_IMAGE, false,
                               "the image is empty");
    data = malloc(m->image_size);
    if (!data) {
      r = gp_wire_discard(&w->wire, m->image_size);
      return r ? r : reply_module_load(w, h, CUDA_ERROR_OUT_OF_MEMORY, false,
                                       "no memory for the image");
    }
    r = gp_wire_recv_payload(&w->wire, data, m->image_size);
    if (r != 0) {
      free(data);
      return r;
    }
    if (gp__sha256(data, m->image_size, digest) != 0 ||
        memcmp(digest, m->sha256.data, GP_IMAGE_SHA256_LEN) != 0) {
      free(data);
      return reply_module_load(w, h, CUDA_ERROR_INVALID_VALUE, false,
                               "the image does not match its SHA-256");
    }
    share_image(w, digest, data, m->image_size);
    im = gp__image_add(&w->images, digest, data, m->image_size);
    if (!im)
      return reply_module_load(w, h, CUDA_ERROR_OUT_OF_MEMORY, false,
                               "no memory for the image");
  }
  res = w->ops->module_load(w->be, m->ctx, m->module, im->data, im->len, msg,
                            sizeof(msg));
  if (res == CUDA_SUCCESS)
    res = module_keep(w, m->ctx, m->module, msg, sizeof(msg));
  if (res != CUDA_SUCCESS) {
    if (!msg[0])
      snprintf(msg, sizeof(msg), "module load failed (CUDA error %d)", res);
    wlog(w, GP_LOG_INFO, "MODULE_LOAD of %zu bytes: %s", im->len, msg);
  }
  return reply_module_load(w, h, res, false, msg);
}

/* IMAGE_PART: one part of an image too big for a frame, in order (see
 * gpupool.proto). A part out of order, past the image's end, or without
 * bytes ends the session; a resource failure (an image over
 * GP_WORKER_IMAGE_MAX, no memory) drains the remaining parts and answers
 * the last one with the error. */
static int handle_image_part(struct gp_worker *w,
                             const struct gp_frame_header *h,
                             const Gpupool__ImagePart *m) {
  uint8_t digest[GP_IMAGE_SHA256_LEN];
  int32_t res;
  int r;

  if (m->sha256.len != GP_IMAGE_SHA256_LEN)
    return protocol_error(w, GP_EPROTO, h, "IMAGE_PART with a digest of "
                          "%zu bytes", m->sha256.len);
  if (m->offset == 0) {
    free(w->upload.data);
    memset(&w->upload, 0, sizeof(w->upload));
    w->upload.active = true;
    memcpy(w->upload.sha256, m->sha256.data, GP_IMAGE_SHA256_LEN);
    w->upload.size = m->image_size;
    if (m->image_size == 0 || m->image_size > GP_WORKER_IMAGE_MAX)
      w->upload.result = CUDA_ERROR_INVALID_VALUE;
    else if (!(w->upload.data = malloc(m->image_size)))
      w->upload.result = CUDA_ERROR_OUT_OF_MEMORY;
  } else if (!w->upload.active || m->offset != w->upload.got ||
             m->image_size != w->upload.size ||
             memcmp(m->sha256.data, w->upload.sha256,
                    GP_IMAGE_SHA256_LEN) != 0) {
    return protocol_error(w, GP_EPROTO, h, "IMAGE_PART at offset %llu out "
                          "of order", (unsigned long long)m->offset);
  }
  if (h->payload_len == 0 ||
      h->payload_len > w->upload.size - w->upload.got)
    return protocol_error(w, GP_EPROTO, h, "IMAGE_PART of %u bytes at "
                          "offset %llu of a %llu-byte image", h->payload_len,
                          (unsigned long long)m->offset,
                          (unsigned long long)w->upload.size);
  if (w->upload.data)
    r = gp_wire_recv_payload(&w->wire, w->upload.data + w->upload.got,
                             h->payload_len);
  else
    r = gp_wire_discard(&w->wire, h->payload_len);
  if (r != 0)
    return r;
  w->upload.got += h->payload_len;
  if (w->upload.got < w->upload.size) {
    /* The upload's error belongs to its last part. */
    if (h->flags & GP_FRAME_F_NOREPLY)
      return 0;
    return reply_status(w, h, w->upload.result, NULL, 0);
  }
  res = w->upload.result;
  if (res == CUDA_SUCCESS &&
      (gp__sha256(w->upload.data, w->upload.size, digest) != 0 ||
       memcmp(digest, w->upload.sha256, GP_IMAGE_SHA256_LEN) != 0))
    res = CUDA_ERROR_INVALID_VALUE;
  if (res == CUDA_SUCCESS) {
    share_image(w, digest, w->upload.data, w->upload.size);
    /* The cache owns the bytes from here, even if it cannot keep them. */
    if (!gp__image_add(&w->images, digest, w->upload.data, w->upload.size))
      res = CUDA_ERROR_OUT_OF_MEMORY;
    w->upload.data = NULL;
  }
  if (res != CUDA_SUCCESS)
    wlog(w, GP_LOG_INFO, "IMAGE_PART: a %llu-byte image refused (CUDA error "
         "%d)", (unsigned long long)w->upload.size, res);
  free(w->upload.data);
  memset(&w->upload, 0, sizeof(w->upload));
  return reply_status(w, h, res, NULL, 0);
}

static int handle_get_function(struct gp_worker *w,
                               const struct gp_frame_header *h,
                               const Gpupool__ModuleGetFunction *m) {
  Gpupool__ModuleGetFunctionReply rep =
      GPUPOOL__MODULE_GET_FUNCTION_REPLY__INIT;
  Gpupool__KernelParam *params = NULL, **pp = NULL;
  struct gp_func_desc *d;
  uint32_t i, n;
  int r;

  if (!symbol_ok(m->name))
    return reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  if (!w->fdesc && !(w->fdesc = malloc(sizeof(*w->fdesc))))
    return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
  d = w->fdesc;
  memset(d, 0, sizeof(*d));
  rep.result = w->ops->module_get_function(w->be, m->module, m->name,
                                           m->function, d);
  if (rep.result == CUDA_SUCCESS && w->cfg->kernel_timeout_s) {
    /* Only names the kernel timeout's message: a name not kept is "?". */
    char *name = strdup(m->name);
    free(gp__idmap_remove(&w->fnames, m->function));
    if (name && gp__idmap_put(&w->fnames, m->function, name) != CUDA_SUCCESS)
      free(name);
  }
  if (rep.result == CUDA_SUCCESS) {
    n = d->nparams <= GP_MAX_KERNEL_PARAMS ? d->nparams : GP_MAX_KERNEL_PARAMS;
    if (n > 0) {
      params = calloc(n, sizeof(*params));
      pp = calloc(n, sizeof(*pp));
      if (!params || !pp) {
        free(params);
        free(pp);
        return reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
      }
    }
    for (i = 0; i < n; i++) {
      Gpupool__KernelParam init = GPUPOOL__KERNEL_PARAM__INIT;
      params[i] = init;
      params[i].offset = d->params[i].offset;
      params[i].size = d->params[i].size;
      pp[i] = &params[i];
    }
    rep.params = pp;
    rep.n_params = n;
    rep.params_size = d->params_size;
    rep.max_threads_per_block = d->max_threads_per_block;
    rep.shared_size_bytes = d->shared_size_bytes;
    rep.const_size_bytes = d->const_size_bytes;
    rep.local_size_bytes = d->local_size_bytes;
    rep.num_regs = d->num_regs;
    rep.ptx_version = d->ptx_version;
    rep.binary_version = d->binary_version;
  }
  r = reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  free(params);
  free(pp);
  return r;
}

static int handle_get_global(struct gp_worker *w,
                             const struct gp_frame_header *h,
                             const Gpupool__ModuleGetGlobal *m) {
  Gpupool__ModuleGetGlobalReply rep = GPUPOOL__MODULE_GET_GLOBAL_REPLY__INIT;
  uint64_t dptr = 0, size = 0;

  if (!symbol_ok(m->name))
    rep.result = CUDA_ERROR_INVALID_VALUE;
  else
    rep.result = w->ops->module_get_global(w->be, m->module, m->name, &dptr,
                                           &size);
  if (rep.result == CUDA_SUCCESS) {
    rep.dptr = dptr;
    rep.size = size;
  }
  return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
}

/* MODULE_GET_KERNELS: every kernel's name, as long as they fit well inside
 * one reply message (GP_WORKER_NAMES_MAX bytes); a module with more is
 * CUDA_ERROR_NOT_SUPPORTED. */
static int handle_get_kernels(struct gp_worker *w,
                              const struct gp_frame_header *h,
                              const Gpupool__ModuleGetKernels *m) {
  Gpupool__ModuleGetKernelsReply rep =
      GPUPOOL__MODULE_GET_KERNELS_REPLY__INIT;
  const char *name;
  uint32_t n = 0;
  size_t bytes = 0;
  char **names = NULL;
  int r;

  if (!w->ops->module_kernel) {
    rep.result = CUDA_ERROR_NOT_SUPPORTED;
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  /* Count first: the names stay where the module keeps them. Two passes
   * of module_kernel(), which looks a kernel up by its index in constant
   * time (the emu backend keeps the list of its module's kernels). */
  while ((rep.result = w->ops->module_kernel(w->be, m->module, n, &name)) ==
         CUDA_SUCCESS) {
    bytes += strlen(name) + 8; /* the field's tag and length, at most */
    if (bytes > GP_WORKER_NAMES_MAX) {
      wlog(w, GP_LOG_INFO, "MODULE_GET_KERNELS: the names of more than %u "
           "kernels do not fit in a reply", n);
      rep.result = CUDA_ERROR_NOT_SUPPORTED;
      break;
    }
    n++;
  }
  if (rep.result == CUDA_ERROR_NOT_FOUND)
    rep.result = CUDA_SUCCESS;
  if (rep.result == CUDA_SUCCESS && n > 0 &&
      !(names = calloc(n, sizeof(*names))))
    rep.result = CUDA_ERROR_OUT_OF_MEMORY;
  if (rep.result == CUDA_SUCCESS) {
    for (uint32_t i = 0; i < n; i++) {
      w->ops->module_kernel(w->be, m->module, i, &name);
      names[i] = (char *)name;
    }
    rep.names = names;
    rep.n_names = n;
  }
  r = reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  free(names);
  return r;
}

static int handle_launch(struct gp_worker *w, const struct gp_frame_header *h,
                         const Gpupool__LaunchKernel *m) {
  struct gp_launch_desc l;
  int r, res;

  if (h->payload_len > GP_MAX_PARAM_BYTES) {
    r = gp_wire_discard(&w->wire, h->payload_len);
    return r ? r : reply_status(w, h, CUDA_ERROR_INVALID_VALUE, NULL, 0);
  }
  if (!w->params && !(w->params = malloc(GP_MAX_PARAM_BYTES))) {
    r = gp_wire_discard(&w->wire, h->payload_len);
    return r ? r : reply_status(w, h, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
  }
  r = gp_wire_recv_payload(&w->wire, w->params, h->payload_len);
  if (r != 0)
    return r;
  memset(&l, 0, sizeof(l));
  l.ctx = m->ctx;
  l.function = m->function;
  l.stream = m->stream;
  l.grid[0] = m->grid_x;
  l.grid[1] = m->grid_y;
  l.grid[2] = m->grid_z;
  l.block[0] = m->block_x;
  l.block[1] = m->block_y;
  l.block[2] = m->block_z;
  l.shared_mem = m->shared_mem;
  l.params = w->params;
  l.params_size = h->payload_len;
  l.cancel = w->cancel ? w->cancel : gp__heartbeat_cancel_flag(w->hb);
  if (w->cfg->kernel_timeout_s) {
    const char *name = gp__idmap_get(&w->fnames, m->function);
    sanitize(name ? name : "?", w->last_kernel, sizeof(w->last_kernel));
    gp__heartbeat_kernel(w->hb, w->last_kernel);
  }
  res = w->ops->launch(w->be, &l);
  return reply_status(w, h, res, NULL, 0);
}

/* ---- dispatch ------------------------------------------------------------- */

/* A synchronize waits for the kernels launched before it (on a GPU: the
 * launch itself returned at once): the kernel timeout applies to it, named
 * after the last kernel launched. */
static void kernel_wait(struct gp_worker *w) {
  if (w->cfg->kernel_timeout_s && w->last_kernel[0])
    gp__heartbeat_kernel(w->hb, w->last_kernel);
}

/* Executes one request whose message has been read. Returns 0, or
 * GP_WORKER_END when the session ends normally, or a fatal GP_E* code. */
static int dispatch(struct gp_worker *w, const struct gp_frame_header *h,
                    ProtobufCMessage *msg) {
  const struct gp_backend_ops *ops = w->ops;
  struct gp_backend *be = w->be;
  int res;

  switch (h->type) {
  case GP_MSG_GOODBYE:
    wlog(w, GP_LOG_INFO, "GOODBYE after %llu requests",
         (unsigned long long)w->requests);
    return GP_WORKER_END;
  case GP_MSG_PROTOCOL_ERROR: {
    const Gpupool__ProtocolError *m = (const void *)msg;
    char why[256];
    sanitize(m->message, why, sizeof(why));
    wlog(w, GP_LOG_WARN, "client reported a protocol error %d: %s; closing",
         m->code, why);
    w->exit_status = GP_EXIT_PROTOCOL;
    return GP_EPROTO;
  }
  case GP_MSG_HELLO:
    if (w->hello_done)
      return protocol_error(w, GP_EPROTO, h, "a second HELLO");
    return handle_hello(w, h, (const void *)msg);
  default:
    break;
  }

  if (!w->hello_done)
    return protocol_error(w, GP_EPROTO, h, "%s before HELLO",
                          gp_msg_type_name(h->type));
  w->requests++;

  switch (h->type) {
  case GP_MSG_CTX_CREATE: {
    const Gpupool__CtxCreate *m = (const void *)msg;
    if (too_many_ctxs(w))
      res = CUDA_ERROR_OUT_OF_MEMORY;
    else
      res = ops->ctx_create(be, m->ctx, m->device, m->flags);
    if (res == CUDA_SUCCESS)
      ctx_born(w, m->ctx);
    break;
  }
  case GP_MSG_CTX_DESTROY: {
    const Gpupool__CtxDestroy *m = (const void *)msg;
    res = ops->ctx_destroy(be, m->ctx);
    if (res == CUDA_SUCCESS)
      ctx_gone(w, m->ctx);
    break;
  }
  case GP_MSG_CTX_SYNCHRONIZE: {
    const Gpupool__CtxSynchronize *m = (const void *)msg;
    kernel_wait(w);
    res = ops->ctx_synchronize(be, m->ctx);
    break;
  }
  case GP_MSG_PRIMARY_CTX_RETAIN: {
    const Gpupool__PrimaryCtxRetain *m = (const void *)msg;
    if (too_many_ctxs(w))
      res = CUDA_ERROR_OUT_OF_MEMORY;
    else
      res = ops->primary_ctx_retain(be, m->ctx, m->device, m->flags);
    if (res == CUDA_SUCCESS)
      ctx_born(w, m->ctx);
    break;
  }
  case GP_MSG_PRIMARY_CTX_RELEASE: {
    const Gpupool__PrimaryCtxRelease *m = (const void *)msg;
    res = ops->primary_ctx_release(be, m->ctx);
    if (res == CUDA_SUCCESS)
      ctx_gone(w, m->ctx);
    break;
  }
  case GP_MSG_MEM_ALLOC: {
    const Gpupool__MemAlloc *m = (const void *)msg;
    Gpupool__MemAllocReply rep = GPUPOOL__MEM_ALLOC_REPLY__INIT;
    uint64_t dptr = 0, bytes = charge_of(m->size);
    /* The grant's limit: refused before the backend sees it. */
    if (m->size != 0 && over_limit(w, bytes))
      rep.result = CUDA_ERROR_OUT_OF_MEMORY;
    else
      rep.result = ops->mem_alloc(be, m->ctx, m->size, &dptr);
    if (rep.result == CUDA_SUCCESS && m->size != 0)
      rep.result = alloc_keep(w, m->ctx, dptr, bytes);
    rep.dptr = rep.result == CUDA_SUCCESS ? dptr : 0;
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  case GP_MSG_MEM_ALLOC_PITCH: {
    const Gpupool__MemAllocPitch *m = (const void *)msg;
    Gpupool__MemAllocPitchReply rep = GPUPOOL__MEM_ALLOC_PITCH_REPLY__INIT;
    uint64_t dptr = 0, pitch = 0;
    /* The pitch is the backend's choice: width * height, a lower bound,
     * is checked first, pitch * height once it is known. */
    if (m->width != 0 && m->height != 0 &&
        (m->width > UINT64_MAX / m->height ||
         over_limit(w, charge_of(m->width * m->height))))
      rep.result = CUDA_ERROR_OUT_OF_MEMORY;
    else
      rep.result = ops->mem_alloc_pitch(be, m->ctx, m->width, m->height,
                                        m->element_size, &dptr, &pitch);
    if (rep.result == CUDA_SUCCESS) {
      uint64_t bytes = pitch != 0 && m->height > UINT64_MAX / pitch
                           ? UINT64_MAX : pitch * m->height;
      if (bytes != 0)
        rep.result = alloc_keep(w, m->ctx, dptr, charge_of(bytes));
    }
    if (rep.result == CUDA_SUCCESS) {
      rep.dptr = dptr;
      rep.pitch = pitch;
    }
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  case GP_MSG_MEM_FREE: {
    const Gpupool__MemFree *m = (const void *)msg;
    /* A pointer the worker does not know (a module's global, never an
     * allocation) is the backend's to refuse; freeing it changes no
     * count. */
    res = ops->mem_free(be, m->dptr);
    if (res == CUDA_SUCCESS)
      charge_drop(w, &w->allocs, m->dptr);
    break;
  }
  case GP_MSG_MEM_GET_INFO: {
    const Gpupool__MemGetInfo *m = (const void *)msg;
    Gpupool__MemGetInfoReply rep = GPUPOOL__MEM_GET_INFO_REPLY__INIT;
    uint64_t fr = 0, total = 0;
    rep.result = ops->mem_get_info(be, m->ctx, &fr, &total);
    if (rep.result == CUDA_SUCCESS && w->limited) {
      /* The session sees its grant: the limit as the total (or the
       * device's, if less), what is left of it as free. */
      uint64_t left = w->mem_limit - (w->mem_used < w->mem_limit
                                          ? w->mem_used : w->mem_limit);
      total = total < w->mem_limit ? total : w->mem_limit;
      fr = fr < left ? fr : left;
    }
    if (rep.result == CUDA_SUCCESS) {
      rep.free = fr;
      rep.total = total;
    }
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  case GP_MSG_MEM_GET_ADDRESS_RANGE: {
    const Gpupool__MemGetAddressRange *m = (const void *)msg;
    Gpupool__MemGetAddressRangeReply rep =
        GPUPOOL__MEM_GET_ADDRESS_RANGE_REPLY__INIT;
    uint64_t base = 0, size = 0;
    rep.result = ops->mem_get_address_range(be, m->dptr, &base, &size);
    if (rep.result == CUDA_SUCCESS) {
      rep.alloc_base = base;
      rep.alloc_size = size;
    }
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  case GP_MSG_MEMCPY_HTOD:
    return handle_htod(w, h, (const void *)msg);
  case GP_MSG_MEMCPY_DTOH:
    return handle_dtoh(w, h, (const void *)msg);
  case GP_MSG_MEMCPY_DTOD: {
    const Gpupool__MemcpyDtoD *m = (const void *)msg;
    res = ops->memcpy_dtod(be, m->dst, m->src, m->size, m->stream);
    break;
  }
  case GP_MSG_MEMSET: {
    const Gpupool__Memset *m = (const void *)msg;
    res = ops->memset(be, m->dst, m->value, m->element_size, m->count,
                      m->stream);
    break;
  }
  case GP_MSG_STREAM_CREATE: {
    const Gpupool__StreamCreate *m = (const void *)msg;
    res = ops->stream_create(be, m->ctx, m->stream, m->flags, m->priority);
    if (res == CUDA_SUCCESS && m->ctx != 0 &&
        gp__idmap_put(&w->streams, m->stream, (void *)(uintptr_t)m->ctx) !=
            CUDA_SUCCESS)
      wlog(w, GP_LOG_DEBUG, "stream %#llx is not tracked",
           (unsigned long long)m->stream);
    break;
  }
  case GP_MSG_STREAM_DESTROY: {
    const Gpupool__StreamDestroy *m = (const void *)msg;
    res = ops->stream_destroy(be, m->stream);
    if (res == CUDA_SUCCESS)
      gp__idmap_remove(&w->streams, m->stream);
    break;
  }
  case GP_MSG_STREAM_SYNCHRONIZE: {
    const Gpupool__StreamSynchronize *m = (const void *)msg;
    kernel_wait(w);
    res = ops->stream_synchronize(be, m->stream);
    break;
  }
  case GP_MSG_STREAM_QUERY: {
    const Gpupool__StreamQuery *m = (const void *)msg;
    res = ops->stream_query(be, m->ctx, m->stream);
    break;
  }
  case GP_MSG_STREAM_WAIT_EVENT: {
    const Gpupool__StreamWaitEvent *m = (const void *)msg;
    res = ops->stream_wait_event(be, m->stream, m->event, m->flags);
    break;
  }
  case GP_MSG_EVENT_CREATE: {
    const Gpupool__EventCreate *m = (const void *)msg;
    res = ops->event_create(be, m->ctx, m->event, m->flags);
    break;
  }
  case GP_MSG_EVENT_RECORD: {
    const Gpupool__EventRecord *m = (const void *)msg;
    res = ops->event_record(be, m->event, m->stream);
    break;
  }
  case GP_MSG_EVENT_QUERY: {
    const Gpupool__EventQuery *m = (const void *)msg;
    res = ops->event_query(be, m->event);
    break;
  }
  case GP_MSG_EVENT_SYNCHRONIZE: {
    const Gpupool__EventSynchronize *m = (const void *)msg;
    kernel_wait(w);
    res = ops->event_synchronize(be, m->event);
    break;
  }
  case GP_MSG_EVENT_ELAPSED_TIME: {
    const Gpupool__EventElapsedTime *m = (const void *)msg;
    Gpupool__EventElapsedTimeReply rep =
        GPUPOOL__EVENT_ELAPSED_TIME_REPLY__INIT;
    float ms = 0;
    rep.result = ops->event_elapsed_time(be, m->start, m->end, &ms);
    if (rep.result == CUDA_SUCCESS)
      rep.milliseconds = ms;
    return reply(w, h, &rep.base, &rep.deferred, rep.result, NULL, 0);
  }
  case GP_MSG_EVENT_DESTROY: {
    const Gpupool__EventDestroy *m = (const void *)msg;
    res = ops->event_destroy(be, m->event);
    break;
  }
  case GP_MSG_MODULE_LOAD:
    return handle_module_load(w, h, (const void *)msg);
  case GP_MSG_MODULE_UNLOAD: {
    const Gpupool__ModuleUnload *m = (const void *)msg;
    res = ops->module_unload(be, m->module);
    if (res == CUDA_SUCCESS)
      charge_drop(w, &w->modules, m->module);
    break;
  }
  case GP_MSG_MODULE_GET_FUNCTION:
    return handle_get_function(w, h, (const void *)msg);
  case GP_MSG_MODULE_GET_GLOBAL:
    return handle_get_global(w, h, (const void *)msg);
  case GP_MSG_LAUNCH_KERNEL:
    return handle_launch(w, h, (const void *)msg);
  case GP_MSG_IMAGE_PART:
    return handle_image_part(w, h, (const void *)msg);
  case GP_MSG_MODULE_GET_KERNELS:
    return handle_get_kernels(w, h, (const void *)msg);
  case GP_MSG_MEMCPY_2D_HTOD:
    return handle_2d_htod(w, h, (const void *)msg);
  case GP_MSG_MEMCPY_2D_DTOH:
    return handle_2d_dtoh(w, h, (const void *)msg);
  case GP_MSG_MEMCPY_2D_DTOD:
    res = handle_2d_dtod(w, (const void *)msg);
    break;
  case GP_MSG_MEMSET_2D:
    res = handle_memset_2d(w, (const void *)msg);
    break;
  default:
    /* A type the codec knows but this server does not serve. */
    return protocol_error(w, GP_EPROTO, h, "unsupported request type %u (%s)",
                          h->type, gp_msg_type_name(h->type));
  }
  return reply_status(w, h, res, NULL, 0);
}

/* --idle-timeout: tells the client why its session ends (a ProtocolError
 * frame with GP_EIDLE, read when it comes back) and ends it. Returns
 * GP_EIDLE for the loop to stop on. */
static int reclaim_idle(struct gp_worker *w, bool stalled) {
  Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
  char msg[128];
  int flags;

  if (stalled)
    snprintf(msg, sizeof(msg), "session reclaimed: a frame stalled for %u s "
             "(--idle-timeout)", w->cfg->idle_timeout_s);
  else
    snprintf(msg, sizeof(msg), "session reclaimed after %u s idle "
             "(--idle-timeout)", w->cfg->idle_timeout_s);
  wlog(w, GP_LOG_INFO, "idle: %s after %llu requests", msg,
       (unsigned long long)w->requests);
  pe.code = GP_EIDLE;
  pe.message = msg;
  /* One attempt that cannot block: a client that reads nothing any more
   * (its socket buffer full) must not keep the worker. */
  flags = fcntl(w->wire.fd, F_GETFL);
  if (flags >= 0)
    fcntl(w->wire.fd, F_SETFL, flags | O_NONBLOCK);
  /* A read that timed out left its error on the wire: this frame is
   * written. */
  if (w->wire.error == GP_ETIMEDOUT)
    w->wire.error = 0;
  if (gp_wire_send(&w->wire, GP_MSG_PROTOCOL_ERROR, 0, 0, &pe.base, NULL,
                   0) == 0)
    gp_wire_flush(&w->wire);
  w->exit_status = GP_EXIT_IDLE;
  return GP_EIDLE;
}

/* ---- The connection: TLS or plain, within --handshake-timeout ------------- */

/* The handshake's deadline (docs/security.md): from the worker's start, the
 * TLS handshake and the whole first request must arrive within
 * --handshake-timeout. Per-read timeouts alone would let a client that
 * trickles a byte at a time hold the worker for ever, so SIGALRM ends the
 * connection itself: shutdown() is async-signal-safe and makes every read
 * in progress (OpenSSL's or the wire's) return, and the flag says why. */
static volatile sig_atomic_t handshake_armed, handshake_expired;

static void on_handshake_alarm(int sig) {
  int saved = errno; /* the interrupted code may be about to read it */

  (void)sig;
  if (!handshake_armed)
    return;
  handshake_expired = 1;
  shutdown(GP_WORKER_FD, SHUT_RDWR);
  errno = saved;
}

static int handshake_arm(unsigned ms) {
  struct sigaction sa;
  struct itimerval it;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_handshake_alarm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) != 0)
    return -1;
  memset(&it, 0, sizeof(it));
  it.it_value.tv_sec = ms / 1000;
  it.it_value.tv_usec = (suseconds_t)(ms % 1000) * 1000;
  handshake_armed = 1;
  return setitimer(ITIMER_REAL, &it, NULL);
}

static void handshake_disarm(void) {
  struct itimerval it;

  if (!handshake_armed)
    return;
  handshake_armed = 0;
  memset(&it, 0, sizeof(it));
  setitimer(ITIMER_REAL, &it, NULL);
}

/* SIGTERM (the supervisor is stopping): the session ends through the
 * worker's normal way out, which scrubs, instead of the process dying
 * where it stands. Shutting the socket down ends the read the worker
 * waits in, or the request it runs (the heartbeat sees the hang-up and
 * cancels a kernel); the client sees the connection close at once. */
static volatile sig_atomic_t terminating;

static void on_sigterm(int sig) {
  int saved = errno; /* the interrupted code may be about to read it */

  (void)sig;
  terminating = 1;
  shutdown(GP_WORKER_FD, SHUT_RDWR);
  errno = saved;
}

static void handle_sigterm(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
}

/* Reads the supervisor's TLS material from GP_WORKER_TLS_FD (server.h)
 * into |pem|, which the caller frees with gp_tls_pem_free(). Returns 0, or
 * -1 with |why|. */
static int read_tls_fd(struct gp_tls_pem *pem, char *why, size_t why_len) {
  struct stat st;
  size_t size, at = 0, lens[3];
  char *buf, *parts[3] = {NULL, NULL, NULL};
  int head = 0, i;

  memset(pem, 0, sizeof(*pem));
  if (fstat(GP_WORKER_TLS_FD, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size <= 0 || st.st_size > (off_t)(4u << 20)) {
    snprintf(why, why_len, "fd %d holds no TLS material (--worker is "
             "internal: the supervisor passes it there)", GP_WORKER_TLS_FD);
    return -1;
  }
  size = (size_t)st.st_size;
  buf = malloc(size + 1);
  if (!buf) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  /* pread: the memfd, and its offset, are shared with the other workers. */
  while (at < size) {
    ssize_t n = pread(GP_WORKER_TLS_FD, buf + at, size - at, (off_t)at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      snprintf(why, why_len, "reading fd %d: %s", GP_WORKER_TLS_FD,
               n < 0 ? strerror(errno) : "short file");
      free(buf);
      return -1;
    }
    at += (size_t)n;
  }
  buf[size] = '\0';
  if (sscanf(buf, GP_TLS_BLOB_MAGIC " %zu %zu %zu\n%n", &lens[0], &lens[1],
             &lens[2], &head) != 3 || head <= 0 ||
      lens[0] > size || lens[1] > size || lens[2] > size ||
      lens[0] + lens[1] + lens[2] != size - (size_t)head) {
    snprintf(why, why_len, "fd %d: malformed TLS material",
             GP_WORKER_TLS_FD);
    free(buf);
    return -1;
  }
  at = (size_t)head;
  for (i = 0; i < 3; i++) {
    if (lens[i] == 0)
      continue;
    parts[i] = malloc(lens[i] + 1);
    if (!parts[i]) {
      snprintf(why, why_len, "out of memory");
      break;
    }
    memcpy(parts[i], buf + at, lens[i]);
    parts[i][lens[i]] = '\0';
    at += lens[i];
  }
  OPENSSL_cleanse(buf, size);
  free(buf);
  pem->cert = parts[0];
  pem->cert_len = parts[0] ? lens[0] : 0;
  pem->key = parts[1];
  pem->key_len = parts[1] ? lens[1] : 0;
  pem->ca = parts[2];
  pem->ca_len = parts[2] ? lens[2] : 0;
  if (i < 3) {
    gp_tls_pem_free(pem);
    return -1;
  }
  return 0;
}

/* Waits until the client's first byte can be read, and peeks at it.
 * Returns the byte (0..255), -1 when the connection ended first (or the
 * deadline passed). */
static int peek_first_byte(int timeout_ms) {
  struct pollfd pfd = {GP_WORKER_FD, POLLIN, 0};
  unsigned char b;
  ssize_t n;
  int r;

  do
    r = poll(&pfd, 1, timeout_ms);
  while (r < 0 && errno == EINTR && !handshake_expired);
  if (r <= 0)
    return -1;
  do
    n = recv(GP_WORKER_FD, &b, 1, MSG_PEEK);
  while (n < 0 && errno == EINTR && !handshake_expired);
  return n == 1 ? b : -1;
}

/* Ends a connection whose client speaks the other protocol: sends |bytes|
 * (a TLS alert or a plain frame the client's side can recognise), then
 * reads what the client still sends for a moment, so that the close does
 * not reset the connection before the client has read them. */
static void refuse_other_protocol(const void *bytes, size_t len) {
  char buf[4096];
  struct pollfd pfd = {GP_WORKER_FD, POLLIN, 0};
  int i;

  if (send(GP_WORKER_FD, bytes, len, MSG_NOSIGNAL) < 0)
    return;
  if (shutdown(GP_WORKER_FD, SHUT_WR) != 0)
    return;
  for (i = 0; i < 16 && poll(&pfd, 1, 100) > 0; i++)
    if (recv(GP_WORKER_FD, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
      break;
}

/* Sets up |w->wire| on the session's socket: the TLS handshake (server
 * certificate only; a client certificate is not asked for on this port),
 * or plain TCP with --insecure. A client that speaks the other one is
 * told so and refused. Returns 0, or a GP_EXIT_* status to exit with
 * after logging one line. */
static int open_connection(struct gp_worker *w) {
  const struct gp_server_config *cfg = w->cfg;
  struct gp_tls_pem pem;
  char why[512];
  SSL_CTX *ctx;
  int first, r;

  first = peek_first_byte((int)cfg->handshake_timeout_ms);
  if (first < 0) {
    if (handshake_expired)
      wlog(w, GP_LOG_WARN, "closed: nothing received within "
           "--handshake-timeout %u ms", cfg->handshake_timeout_ms);
    else
      wlog(w, GP_LOG_INFO, "client closed the connection before sending "
           "anything");
    return GP_EXIT_HANDSHAKE;
  }
  if (cfg->insecure) {
    if (first == 0x16) {
      /* A TLS ClientHello where a frame header belongs. A plain frame in
       * reply: the client's TLS stack reports a record that is no TLS
       * (OpenSSL: "wrong version number"), which its library explains. */
      uint8_t frame[GP_FRAME_HEADER_SIZE];
      struct gp_frame_header h = {0};
      wlog(w, GP_LOG_WARN, "client speaks TLS; this server runs --insecure: "
           "closing");
      h.version = GP_FRAME_VERSION;
      h.type = GP_MSG_PROTOCOL_ERROR;
      gp_frame_header_encode(&h, frame);
      refuse_other_protocol(frame, sizeof(frame));
      return GP_EXIT_HANDSHAKE;
    }
    r = gp_wire_init_fd(&w->wire, GP_WORKER_FD);
    if (r != 0) {
      wlog(w, GP_LOG_ERROR, "cannot set up the connection: %s",
           gp_strerror(r));
      return GP_EXIT_BACKEND;
    }
    return 0;
  }
  if (first != 0x16) {
    /* A fatal protocol_version alert, TLS 1.2 record framing: what a TLS
     * server answers a peer that is not speaking TLS, and what gpupool's
     * plain client recognises ("the server answered in TLS"). */
    static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46};
    wlog(w, GP_LOG_WARN, "client spoke plain TCP to a TLS port (is it "
         "running with GPUPOOL_INSECURE=1?): closing");
    refuse_other_protocol(alert, sizeof(alert));
    return GP_EXIT_HANDSHAKE;
  }
  if (read_tls_fd(&pem, why, sizeof(why)) != 0) {
    wlog(w, GP_LOG_ERROR, "no TLS: %s", why);
    return GP_EXIT_USAGE;
  }
  ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_NONE, why, sizeof(why));
  gp_tls_pem_free(&pem);
  if (!ctx) {
    wlog(w, GP_LOG_ERROR, "no TLS: %s", why);
    return GP_EXIT_BACKEND;
  }
  r = gp_wire_init_tls_server(&w->wire, GP_WORKER_FD, ctx,
                              (int)cfg->handshake_timeout_ms, why,
                              sizeof(why));
  SSL_CTX_free(ctx); /* the connection holds its own reference */
  if (r != 0) {
    if (handshake_expired || r == GP_ETIMEDOUT)
      wlog(w, GP_LOG_WARN, "TLS handshake not done within "
           "--handshake-timeout %u ms: closing", cfg->handshake_timeout_ms);
    else
      wlog(w, GP_LOG_WARN, "%s: closing", why);
    return GP_EXIT_HANDSHAKE;
  }
  wlog(w, GP_LOG_DEBUG, "TLS handshake done");
  return 0;
}

/* No HELLO within --handshake-timeout: the session ends as a failed
 * handshake. */
static int hello_late(struct gp_worker *w) {
  int r;

  handshake_disarm();
  r = protocol_error(w, GP_ETIMEDOUT, NULL, "no TLS handshake and HELLO "
                     "within --handshake-timeout %u ms",
                     w->cfg->handshake_timeout_ms);
  w->exit_status = GP_EXIT_HANDSHAKE;
  return r;
}

/* Reads and executes one frame. Returns 0, GP_WORKER_END, or a fatal code
 * (the session ends; w->exit_status says how). */
static int serve_one(struct gp_worker *w) {
  struct gp_frame_header h;
  ProtobufCMessage *msg = NULL;
  int r;

  r = gp_wire_recv_header(&w->wire, &h);
  if (r == GP_ECLOSED && w->wire.rlen > w->wire.rpos) {
    wlog(w, GP_LOG_WARN, "connection closed in the middle of a frame "
         "header");
    w->exit_status = GP_EXIT_CONN_LOST;
    return r;
  }
  if (!w->hello_done && handshake_expired)
    return hello_late(w);
  if (r == GP_ECLOSED) {
    wlog(w, GP_LOG_INFO, "client closed the connection after %llu requests",
         (unsigned long long)w->requests);
    return GP_WORKER_END;
  }
  if (r == GP_ETIMEDOUT && !w->hello_done)
    return hello_late(w);
  if (r == GP_ETIMEDOUT)
    return reclaim_idle(w, true);
  if (r == GP_EVERSION)
    return protocol_error(w, r, NULL, "bad frame header: header format "
                          "version is not %d", GP_FRAME_VERSION);
  if (r == GP_EPROTO || r == GP_ETOOBIG)
    return protocol_error(w, r, NULL, "bad frame header: %s",
                          gp_strerror(r));
  if (r != 0) {
    wlog(w, GP_LOG_WARN, "connection lost: %s", gp_strerror(r));
    w->exit_status = GP_EXIT_CONN_LOST;
    return r;
  }

  if (h.flags & GP_FRAME_F_REPLY)
    return protocol_error(w, GP_EPROTO, &h, "request %u of type %u is "
                          "flagged REPLY", h.request_id, h.type);
  if (!gp_msg_descriptor(h.type, false))
    return protocol_error(w, GP_EPROTO, &h, "unknown message type %u",
                          h.type);
  if ((h.flags & GP_FRAME_F_ZSTD) &&
      (h.type != GP_MSG_MEMCPY_HTOD || w->cfg->compress == GP_Z_OFF))
    return protocol_error(w, GP_EPROTO, &h, "%s carries a compressed "
                          "payload%s", gp_msg_type_name(h.type),
                          w->cfg->compress == GP_Z_OFF
                              ? " (this server runs with --compress off)"
                              : "");
  if (h.payload_len != 0 && h.type != GP_MSG_MEMCPY_HTOD &&
      h.type != GP_MSG_MODULE_LOAD && h.type != GP_MSG_LAUNCH_KERNEL &&
      h.type != GP_MSG_MEMCPY_2D_HTOD && h.type != GP_MSG_IMAGE_PART)
    return protocol_error(w, GP_EPROTO, &h, "%s carries a payload of %u "
                          "bytes", gp_msg_type_name(h.type), h.payload_len);

  r = gp_wire_recv_msg(&w->wire, &h, &msg);
  if (r == GP_EPROTO)
    return protocol_error(w, GP_EPROTO, &h, "malformed %s message",
                          gp_msg_type_name(h.type));
  if (!w->hello_done && handshake_expired) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return hello_late(w);
  }
  if (r == GP_ETIMEDOUT && !w->hello_done)
    return hello_late(w);
  if (r == GP_ETIMEDOUT)
    return reclaim_idle(w, true);
  if (r != 0) {
    wlog(w, GP_LOG_WARN, "connection lost: %s", gp_strerror(r));
    w->exit_status = GP_EXIT_CONN_LOST;
    return r;
  }
  /* The first request has arrived whole: what it costs to serve (a
   * relay's backend connects to its own server) is no longer the
   * handshake's. */
  if (!w->hello_done)
    handshake_disarm();
  if (!msg)
    return protocol_error(w, GP_EPROTO, &h, "empty %s message",
                          gp_msg_type_name(h.type));

  /* Every request passes here: its name is looked up only when it will
   * be printed. */
  if (gp__log_level() >= GP_LOG_DEBUG)
    wlog(w, GP_LOG_DEBUG, "%s request %u%s", gp_msg_type_name(h.type),
         h.request_id, (h.flags & GP_FRAME_F_NOREPLY) ? " (no reply)" : "");
  gp__heartbeat_busy(w->hb);
  r = dispatch(w, &h, msg);
  gp__heartbeat_idle(w->hb);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (gp__heartbeat_timed_out(w->hb)) {
    /* The heartbeat told the client and logged it. */
    w->exit_status = GP_EXIT_KERNEL_TIMEOUT;
    return GP_EKTIMEOUT;
  }
  if (r < 0 && w->exit_status == GP_EXIT_OK) {
    /* A reply could not be written. */
    wlog(w, GP_LOG_WARN, "connection lost: %s", gp_strerror(r));
    w->exit_status = GP_EXIT_CONN_LOST;
  }
  return r;
}

/* After the handshake, waits for the next request's first byte, reporting
 * to the supervisor every GP_WORKER_REPORT_MS meanwhile and reclaiming the
 * session after --idle-timeout. The time a request runs is never idle: the
 * clock starts when the last one ended; nor is the time work the client
 * sent is still pending on the backend (a kernel running while the client
 * does host work): the reclaim is then put off by another timeout.
 * Returns 0 (read on) or GP_EIDLE. */
static int wait_request(struct gp_worker *w) {
  uint64_t idle_ms = (uint64_t)w->cfg->idle_timeout_s * 1000;

  for (;;) {
    struct pollfd pfd = {w->wire.fd, POLLIN, 0};
    uint64_t now = mono_ms();
    int64_t wait = -1;
    int r;

    if (w->wire.rlen > w->wire.rpos || gp_wire_spin_wait(&w->wire))
      return 0;
    report_used(w, now);
    if (w->report_ok)
      wait = (int64_t)(w->last_report_ms + GP_WORKER_REPORT_MS) -
             (int64_t)now;
    if (idle_ms) {
      uint64_t from = w->last_request_ms > w->busy_ms ? w->last_request_ms
                                                       : w->busy_ms;
      int64_t left = (int64_t)(from + idle_ms) - (int64_t)now;
      if (left <= 0 && work_pending(w)) {
        wlog(w, GP_LOG_DEBUG, "idle for %u s with work pending: not "
             "reclaimed yet", w->cfg->idle_timeout_s);
        w->busy_ms = now;
        continue;
      }
      if (left <= 0)
        return reclaim_idle(w, false);
      if (wait < 0 || left < wait)
        wait = left;
    }
    if (wait < 0)
      return 0; /* nothing to do meanwhile: block in the read */
    if (wait == 0)
      wait = 1;
    r = poll(&pfd, 1, (int)wait);
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR)
      return 0; /* the read will say what is wrong */
  }
}

/* After a ProtocolError: stop sending, read what the client still sends
 * for a moment, so the close does not reset the connection before the
 * client has read our frame. */
static void linger(struct gp_worker *w) {
  uint8_t buf[4096];
  size_t total = 0;
  struct pollfd pfd;
  struct timespec t0, t;
  long left;

  if (w->wire.fd < 0 || shutdown(w->wire.fd, SHUT_WR) != 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (total < GP_WORKER_LINGER_BYTES) {
    ssize_t n;

    clock_gettime(CLOCK_MONOTONIC, &t);
    left = GP_WORKER_LINGER_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
                                  (t.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0)
      break;
    pfd.fd = w->wire.fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, (int)left) <= 0)
      break;
    n = read(w->wire.fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    total += (size_t)n;
  }
}

int gp__worker_run(const struct gp_server_config *cfg) {
  struct stat st;
  int flags;

  /* Die with the supervisor, so that killing the server ends its sessions
   * and their clients see the connection drop at once. The check after
   * closes the race with a supervisor that died before the prctl. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    gp__error("worker: prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    return GP_EXIT_USAGE;
  }
  if (cfg->supervisor_pid != 0 && getppid() != cfg->supervisor_pid) {
    gp__error("worker: the supervisor (pid %ld) is gone",
              (long)cfg->supervisor_pid);
    return GP_EXIT_CONN_LOST;
  }
  /* Writes to a closed socket fail with EPIPE instead of killing us. */
  signal(SIGPIPE, SIG_IGN);

  if (fstat(GP_WORKER_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    gp__error("worker: fd %d is not a socket (--worker is internal: the "
              "supervisor passes the session's socket there)", GP_WORKER_FD);
    return GP_EXIT_USAGE;
  }

  handle_sigterm();

  /* libuv accepted the socket non-blocking, and that flag lives in the
   * open file description we share: the wire blocks, so clear it. */
  flags = fcntl(GP_WORKER_FD, F_GETFL);
  if (flags < 0 ||
      fcntl(GP_WORKER_FD, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    gp__error("worker: cannot make fd %d blocking: %s", GP_WORKER_FD,
              strerror(errno));
    return GP_EXIT_CONN_LOST;
  }
  return gp__worker_serve(cfg, GP_WORKER_FD, NULL);
}

int gp__worker_serve(const struct gp_server_config *cfg, int fd,
                     const int *cancel) {
  struct gp_worker w;
  struct stat st;
  int r;

  memset(&w, 0, sizeof(w));
  w.cancel = cancel;
  w.cfg = cfg;
  w.cache_fd = -1;
  w.ops = cfg->backend;
  w.session_id = random_u64();
  w.exit_status = GP_EXIT_OK;
  peer_name(fd, w.peer, sizeof(w.peer));
  tune_socket(fd, cfg->send_timeout_ms);
  gp__idmap_init(&w.allocs, GP_WORKER_MAX_ALLOCS);
  gp__idmap_init(&w.modules, GP_WORKER_MAX_OBJECTS);
  gp__idmap_init(&w.ctxs, GP_WORKER_MAX_OBJECTS);
  gp__idmap_init(&w.streams, GP_WORKER_MAX_OBJECTS);
  gp__idmap_init(&w.fnames, GP_WORKER_MAX_OBJECTS);

  /* The supervisor's report socket (pool.h); a worker started without one
   * serves all the same, and refuses grants (it cannot rule out reuse). */
  if (!cancel && fstat(GP_WORKER_REPORT_FD, &st) == 0 &&
      S_ISSOCK(st.st_mode)) {
    w.report_ok = true;
    fcntl(GP_WORKER_REPORT_FD, F_SETFD, FD_CLOEXEC);
  }
  if (cfg->grant_key_file) {
    w.key = malloc(GP_KEY_MAX_LEN);
    if (!w.key)
      snprintf(w.key_why, sizeof(w.key_why), "out of memory");
    else if (gp_key_load(cfg->grant_key_file, w.key, &w.keylen, w.key_why,
                         sizeof(w.key_why)) != 0) {
      free(w.key);
      w.key = NULL;
    }
  }

  if (cancel) {
    /* In process (fuzzing): plain TCP on |fd|, no handshake timer. */
    r = gp_wire_init_fd(&w.wire, fd);
    if (r != 0) {
      wlog(&w, GP_LOG_ERROR, "cannot set up the connection: %s",
           gp_strerror(r));
      close(fd);
      return GP_EXIT_BACKEND;
    }
  } else {
    if (handshake_arm(cfg->handshake_timeout_ms) != 0)
      wlog(&w, GP_LOG_WARN, "cannot arm the handshake timer: %s",
           strerror(errno));
    r = open_connection(&w);
    close(GP_WORKER_TLS_FD); /* the material is in the context now */
  }
  if (r != 0) {
    handshake_disarm();
    close(fd);
    if (w.key) {
      OPENSSL_cleanse(w.key, GP_KEY_MAX_LEN);
      free(w.key);
    }
    gp__idmap_free(&w.allocs);
    gp__idmap_free(&w.modules);
    gp__idmap_free(&w.ctxs);
    gp__idmap_free(&w.streams);
    return r;
  }
  wlog(&w, GP_LOG_DEBUG, "worker started (backend %s, %s), busy-poll %u us, "
       "compression %s", w.ops->name,
       gp_wire_is_tls(&w.wire) ? "TLS" : "plain TCP",
       gp_wire_spin_setup(&w.wire, cfg->poll_us),
       gp_z_mode_name((enum gp_z_mode)cfg->compress));
  gp__image_cache_init(&w.images, GP_IMAGE_CACHE_DEFAULT_CAP);
  if (cfg->image_cache && strcmp(cfg->image_cache, "none") != 0) {
    w.cache_fd = gp__disk_cache_open(cfg->image_cache);
    if (w.cache_fd < 0)
      wlog(&w, GP_LOG_WARN, "no image cache: %s: %s", cfg->image_cache,
           strerror(errno));
  }
  if (!cancel && gp__heartbeat_start(&w.wire, &w.hb) != 0)
    wlog(&w, GP_LOG_WARN, "no heartbeat thread: long requests may time "
         "the client out%s", cfg->kernel_timeout_s ? ", and "
         "--kernel-timeout does not apply" : "");
  gp__heartbeat_set_kernel_timeout(w.hb, cfg->kernel_timeout_s * 1000u);

  w.wire.timeout_ms = (int)cfg->handshake_timeout_ms;
  for (;;) {
    if (w.hello_done && wait_request(&w) != 0)
      break;
    r = serve_one(&w);
    if (r != 0)
      break;
    if (w.hello_done) {
      /* With --idle-timeout, a frame that stops half way (a read inside
       * it waits that long) ends the session like idleness does. */
      w.wire.timeout_ms = cfg->idle_timeout_s &&
                                  cfg->idle_timeout_s <= INT_MAX / 1000
                              ? (int)cfg->idle_timeout_s * 1000 : -1;
      w.last_request_ms = mono_ms();
    }
  }
  if (terminating) {
    wlog(&w, GP_LOG_INFO, "SIGTERM: the server is stopping; session ended");
    if (w.exit_status == GP_EXIT_CONN_LOST)
      w.exit_status = GP_EXIT_OK;
  }
  if (!w.hello_done) {
    handshake_disarm();
    if (handshake_expired) {
      wlog(&w, GP_LOG_WARN, "no HELLO within %u ms (--handshake-timeout); "
           "closing", cfg->handshake_timeout_ms);
      w.exit_status = GP_EXIT_HANDSHAKE;
    }
  }
  if (w.wire.write_timed_out &&
      (w.exit_status == GP_EXIT_OK || w.exit_status == GP_EXIT_CONN_LOST)) {
    wlog(&w, GP_LOG_WARN, "the client read nothing for %u ms while the "
         "server wrote (--send-timeout): session ended",
         cfg->send_timeout_ms);
    w.exit_status = GP_EXIT_SEND_TIMEOUT;
  }
  if (w.exit_status == GP_EXIT_PROTOCOL || w.exit_status == GP_EXIT_REFUSED)
    linger(&w);

  gp__heartbeat_stop(w.hb);
  if (w.be && cfg->scrub && w.ops->scrub) {
    /* --scrub: nothing this session wrote to device memory outlives it. */
    uint64_t bytes = 0;
    int sr = w.ops->scrub(w.be, &bytes);
    if (sr != CUDA_SUCCESS)
      wlog(&w, GP_LOG_WARN, "scrub: CUDA error %d: some device memory may "
           "not have been zeroed", sr);
    wlog(&w, GP_LOG_DEBUG, "scrub: %llu bytes of device memory zeroed",
         (unsigned long long)bytes);
  }
  if (w.be)
    w.ops->close(w.be);
  gp_wire_free(&w.wire);
  gp__image_cache_free(&w.images);
  if (w.cache_fd >= 0)
    close(w.cache_fd);
  free(w.stage);
  free(w.zbuf);
  gp_z_free(&w.z);
  free(w.params);
  free(w.fdesc);
  free(w.upload.data);
  charges_free(&w.allocs);
  charges_free(&w.modules);
  charges_free(&w.ctxs);
  gp__idmap_free(&w.streams);
  {
    size_t i;
    for (i = 0; i < w.fnames.cap; i++)
      if (w.fnames.slots[i].key != 0)
        free(w.fnames.slots[i].value);
    gp__idmap_free(&w.fnames);
  }
  if (w.key) {
    OPENSSL_cleanse(w.key, GP_KEY_MAX_LEN);
    free(w.key);
  }
  wlog(&w, GP_LOG_DEBUG, "worker exiting with status %d", w.exit_status);
  return w.exit_status;
}
