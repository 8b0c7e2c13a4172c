/* The broker link: see broker_link.h and docs/server.md, "The broker link".
 *
 * States: resolve the broker's name (uv_getaddrinfo), connect, send
 * BROKER_REGISTER and wait for its reply (GP_BROKER_REPLY_TIMEOUT_MS), then
 * a BROKER_HEARTBEAT every heartbeat_ms the broker asked for. Any failure
 * (no address, refused, reset, a refusal, a frame the codec refuses, no
 * reply) closes the connection and starts over after a backoff of 0.2 s,
 * doubling to 5 s, back to 0.2 s after a registration is accepted. Frames
 * are built with the protocol's codec and written with uv_write; nothing
 * here blocks the loop. With NVML, each heartbeat's utilisation comes from
 * an NVML query run on libuv's thread pool (never on the loop: a hung GPU
 * can hang NVML).
 */
#include "broker_link.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "frame.h"
#include "gp_config.h"
#include "gpupool/errors.h"
#include "grant.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "tls.h"
#include "uv_tls.h"

#define GP_BROKER_BACKOFF_MIN_MS 200
#define GP_BROKER_BACKOFF_MAX_MS 5000
#define GP_BROKER_REPLY_TIMEOUT_MS 10000
#define GP_BROKER_HEARTBEAT_MIN_MS 100
#define GP_BROKER_HEARTBEAT_MAX_MS 60000
/* A heartbeat is skipped while this much is still queued to the broker. */
#define GP_BROKER_QUEUE_MAX (1u << 20)
/* The most sessions one message lists. */
#define GP_BROKER_SESSIONS_MAX 65536

enum link_state {
  LINK_WAITING,       /* backoff: nothing open */
  LINK_RESOLVING,
  LINK_CONNECTING,
  LINK_REGISTERING,   /* BROKER_REGISTER sent */
  LINK_REGISTERED,
};

struct gp_broker_link {
  uv_loop_t *loop;
  const struct gp_server_config *cfg;
  const struct gp_inventory *inv;
  char address[320];
  gp_pool_sessions_fn sessions;
  void *arg;
  uint8_t *key;
  size_t keylen;

  enum link_state state;
  bool stopping;
  uv_timer_t retry;           /* backoff and the reply timeout */
  uv_timer_t beat;            /* heartbeats */
  uv_getaddrinfo_t gai;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  uv_timer_t shutdown_timer;  /* bounds the shutdown at stop */
  uv_tcp_t *closing_tcp;      /* the connection being shut down at stop */
  uv_tcp_t *tcp;              /* NULL when none */
  struct gp_broker_link_tls tls; /* the TLS files, or insecure */
  SSL_CTX *ctx;               /* the last context built; NULL: plain */
  struct gp_uvtls io;         /* TLS (or plain) on |tcp| */
  bool plain_seen;            /* plain: the first bytes were checked */
  struct gp_frame_parser parser;
  uint8_t rbuf[16384];
  unsigned backoff_ms;
  unsigned heartbeat_ms;
  unsigned failures;          /* in a row, for the log's level */
  uint32_t next_id;
  uint64_t last_stamp;        /* timestamp_unix of the last registration */

  /* The last NVML answer, by offered device (the inventory's order). */
  bool nvml;
  uv_work_t work;
  bool work_busy;
  struct gp_inventory *scratch;
  int util[GP_DEVICES_MAX];
  bool has_used[GP_DEVICES_MAX];
  uint64_t used[GP_DEVICES_MAX];

  struct gp_pool_session *list; /* GP_BROKER_SESSIONS_MAX */
};

static void connect_next(struct gp_broker_link *l);

/* ---- Writing frames ------------------------------------------------------------ */

struct write_req {
  uv_write_t req;
  size_t len;
  uint8_t data[];
};

/* Queues one frame of |type| carrying |m|. Returns 0 or a GP_E* code. */
static int send_msg(struct gp_broker_link *l, uint16_t type,
                    const ProtobufCMessage *m) {
  struct gp_frame_header h;
  struct write_req *w;
  size_t n = protobuf_c_message_get_packed_size(m);
  char why[200];
  int r;

  if (!l->tcp)
    return GP_ECLOSED;
  if (n > GP_FRAME_DEFAULT_MAX_MSG)
    return GP_ETOOBIG;
  w = malloc(sizeof(*w) + GP_FRAME_HEADER_SIZE + n);
  if (!w)
    return GP_ENOMEM;
  memset(&h, 0, sizeof(h));
  h.version = GP_FRAME_VERSION;
  h.type = type;
  h.request_id = ++l->next_id;
  h.msg_len = (uint32_t)n;
  gp_frame_header_encode(&h, w->data);
  protobuf_c_message_pack(m, w->data + GP_FRAME_HEADER_SIZE);
  w->len = GP_FRAME_HEADER_SIZE + n;
  /* A failed write shows up as a read error too. */
  r = gp__uvtls_write(&l->io, w->data, w->len, why, sizeof(why));
  free(w);
  if (r != 0)
    gp__debug("broker: write: %s", why);
  return r;
}

/* ---- Sessions and loads --------------------------------------------------------- */

/* The running sessions as BrokerSession messages: |*msgs| and |*ptrs| (the
 * caller frees both). Returns how many, or -1 when out of memory. */
static long build_sessions(struct gp_broker_link *l, Gpupool__BrokerSession **msgs,
                           Gpupool__BrokerSession ***ptrs) {
  size_t n = l->sessions(l->arg, l->list, GP_BROKER_SESSIONS_MAX), i;

  *msgs = calloc(n ? n : 1, sizeof(**msgs));
  *ptrs = calloc(n ? n : 1, sizeof(**ptrs));
  if (!*msgs || !*ptrs) {
    free(*msgs);
    free(*ptrs);
    return -1;
  }
  for (i = 0; i < n; i++) {
    Gpupool__BrokerSession init = GPUPOOL__BROKER_SESSION__INIT;
    Gpupool__BrokerSession *s = &(*msgs)[i];
    *s = init;
    s->session_id = l->list[i].session_id;
    s->tenant = l->list[i].tenant;
    s->gpu_uuid = l->list[i].gpu_uuid;
    s->memory_limit = l->list[i].memory_limit;
    s->memory_used = l->list[i].memory_used;
    s->expires_unix = l->list[i].expires_unix;
    s->idle_ms = l->list[i].idle_ms;
    (*ptrs)[i] = s;
  }
  return (long)n;
}

static void send_heartbeat(struct gp_broker_link *l) {
  Gpupool__BrokerHeartbeat hb = GPUPOOL__BROKER_HEARTBEAT__INIT;
  Gpupool__BrokerGpuLoad loads[GP_DEVICES_MAX], *lptr[GP_DEVICES_MAX];
  Gpupool__BrokerSession *msgs = NULL, **ptrs = NULL;
  long n;
  int i, k;

  if (uv_stream_get_write_queue_size((uv_stream_t *)l->tcp) >
      GP_BROKER_QUEUE_MAX) {
    gp__debug("broker: heartbeat skipped (the broker is not reading)");
    return;
  }
  n = build_sessions(l, &msgs, &ptrs);
  if (n < 0) {
    gp__warn("broker: heartbeat skipped: out of memory");
    return;
  }
  for (i = 0; i < l->inv->noffer; i++) {
    Gpupool__BrokerGpuLoad init = GPUPOOL__BROKER_GPU_LOAD__INIT;
    const struct gp_device_rec *d = &l->inv->d[l->inv->offer[i]];
    uint64_t sum = 0;
    unsigned count = 0;

    loads[i] = init;
    loads[i].uuid = (char *)d->uuid_str;
    for (k = 0; k < n; k++)
      if (strcasecmp(msgs[k].gpu_uuid, d->uuid_str) == 0) {
        count++;
        sum += msgs[k].memory_used;
      }
    loads[i].sessions = count;
    loads[i].memory_used = l->has_used[i] ? l->used[i] : sum;
    loads[i].utilisation = l->nvml ? l->util[i] : -1;
    lptr[i] = &loads[i];
  }
  hb.gpus = lptr;
  hb.n_gpus = (size_t)l->inv->noffer;
  hb.sessions = ptrs;
  hb.n_sessions = (size_t)n;
  if (send_msg(l, GP_MSG_BROKER_HEARTBEAT, &hb.base) != 0)
    gp__debug("broker: heartbeat not sent");
  free(ptrs);
  free(msgs);
}

/* NVML, off the loop: the whole inventory again (NVML's view only). */
static void nvml_work(uv_work_t *req) {
  struct gp_broker_link *l = req->data;
  char why[160];

  memset(l->scratch, 0, sizeof(*l->scratch));
  if (gp__nvml_load(l->scratch, why, sizeof(why)) != 0)
    l->scratch->n = 0;
}

static void nvml_done(uv_work_t *req, int status) {
  struct gp_broker_link *l = req->data;
  int i, j;

  l->work_busy = false;
  if (status != 0)
    return;
  for (i = 0; i < l->inv->noffer; i++) {
    const struct gp_device_rec *d = &l->inv->d[l->inv->offer[i]];
    l->util[i] = -1;
    l->has_used[i] = false;
    for (j = 0; j < l->scratch->n; j++) {
      const struct gp_device_rec *s = &l->scratch->d[j];
      if (memcmp(s->uuid, d->uuid, 16) != 0)
        continue;
      l->util[i] = s->util;
      l->has_used[i] = s->has_used;
      l->used[i] = s->mem_used;
    }
  }
}

static void on_beat(uv_timer_t *t) {
  struct gp_broker_link *l = t->data;

  if (l->state != LINK_REGISTERED)
    return;
  send_heartbeat(l);
  if (l->nvml && !l->work_busy && !l->stopping) {
    l->work.data = l;
    if (uv_queue_work(l->loop, &l->work, nvml_work, nvml_done) == 0)
      l->work_busy = true;
  }
}

/* ---- The connection ----------------------------------------------------------- */

static void on_retry(uv_timer_t *t);

/* Starts the backoff before the next attempt. */
static void schedule_retry(struct gp_broker_link *l) {
  if (l->stopping)
    return;
  l->state = LINK_WAITING;
  uv_timer_start(&l->retry, on_retry, l->backoff_ms, 0);
  l->backoff_ms = l->backoff_ms * 2 > GP_BROKER_BACKOFF_MAX_MS
                      ? GP_BROKER_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void on_tcp_closed(uv_handle_t *h) {
  struct gp_broker_link *l = h->data;

  gp__uvtls_free(&l->io);
  free(h);
  schedule_retry(l);
}

/* Ends the current attempt: logs |why| (the first failure in a row at
 * warn, the others at debug, so a broker that is down does not flood the
 * log) and reconnects after the backoff. */
__attribute__((format(printf, 2, 3)))
static void fail(struct gp_broker_link *l, const char *fmt, ...) {
  char why[300];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  gp__log(l->failures == 0 ? GP_LOG_WARN : GP_LOG_DEBUG,
          "broker %s: %s; retrying in %.1f s", l->cfg->broker, why,
          l->backoff_ms / 1000.0);
  l->failures++;
  uv_timer_stop(&l->beat);
  uv_timer_stop(&l->retry);
  gp_frame_parser_free(&l->parser);
  if (l->tcp) {
    uv_tcp_t *tcp = l->tcp;
    l->tcp = NULL;
    l->state = LINK_WAITING;
    uv_close((uv_handle_t *)tcp, on_tcp_closed);
  } else {
    schedule_retry(l);
  }
}

static void on_reply_timeout(uv_timer_t *t) {
  struct gp_broker_link *l = t->data;

  fail(l, "no answer to the registration within %d s",
       GP_BROKER_REPLY_TIMEOUT_MS / 1000);
}

static void registered(struct gp_broker_link *l,
                       const Gpupool__BrokerRegisterReply *rep) {
  char msg[200];
  unsigned hb = rep->heartbeat_ms;

  snprintf(msg, sizeof(msg), "%s", rep->message ? rep->message : "");
  for (char *p = msg; *p; p++)
    if (*p < 0x20 || *p > 0x7e)
      *p = '?';
  if (rep->result != 0) {
    /* A refusal is the operator's to fix (a wrong key, a clock off by
     * minutes): an error, whatever came before. */
    gp__error("broker %s refused the registration of '%s': %s (%s)",
              l->cfg->broker, l->cfg->name, msg, gp_strerror(rep->result));
    l->failures = 1;
    fail(l, "registration refused");
    return;
  }
  if (hb < GP_BROKER_HEARTBEAT_MIN_MS)
    hb = hb == 0 ? 1000 : GP_BROKER_HEARTBEAT_MIN_MS;
  if (hb > GP_BROKER_HEARTBEAT_MAX_MS)
    hb = GP_BROKER_HEARTBEAT_MAX_MS;
  l->heartbeat_ms = hb;
  l->state = LINK_REGISTERED;
  l->failures = 0;
  l->backoff_ms = GP_BROKER_BACKOFF_MIN_MS;
  uv_timer_stop(&l->retry);
  gp__info("broker %s: registered as '%s' (%s), heartbeat every %u ms",
           l->cfg->broker, l->cfg->name, l->address, hb);
  uv_timer_start(&l->beat, on_beat, hb, hb);
}

/* One whole frame from the broker. Returns 0 or -1 (the link failed). */
static int on_frame(struct gp_broker_link *l, const struct gp_frame *f) {
  ProtobufCMessage *m;

  if (f->hdr.type == GP_MSG_PROTOCOL_ERROR && !(f->hdr.flags & GP_FRAME_F_REPLY)) {
    Gpupool__ProtocolError *pe;
    m = gp_msg_unpack(f->hdr.type, false, f->msg, f->hdr.msg_len);
    pe = (Gpupool__ProtocolError *)m;
    fail(l, "the broker reported a protocol error: %.160s",
         pe && pe->message ? pe->message : "(unreadable)");
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
    return -1;
  }
  if (l->state != LINK_REGISTERING || f->hdr.type != GP_MSG_BROKER_REGISTER ||
      !(f->hdr.flags & GP_FRAME_F_REPLY) || f->hdr.payload_len != 0) {
    fail(l, "unexpected frame of type %u from the broker", f->hdr.type);
    return -1;
  }
  m = gp_msg_unpack(f->hdr.type, true, f->msg, f->hdr.msg_len);
  if (!m) {
    fail(l, "malformed BrokerRegisterReply");
    return -1;
  }
  registered(l, (const Gpupool__BrokerRegisterReply *)m);
  protobuf_c_message_free_unpacked(m, NULL);
  return l->state == LINK_REGISTERED ? 0 : -1;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  struct gp_broker_link *l = h->data;

  (void)size;
  *buf = uv_buf_init((char *)l->rbuf, sizeof(l->rbuf));
}

/* Plaintext from the broker: frames. Returns false once the link failed. */
static bool on_plain(void *arg, const uint8_t *p, size_t left) {
  struct gp_broker_link *l = arg;

  /* A plain link whose broker speaks TLS gets a TLS record (an alert:
   * the broker took the frame for a ClientHello) where a frame should
   * start: say so rather than "bad frame". */
  if (!l->io.tls && !l->plain_seen && left >= 3) {
    l->plain_seen = true;
    if ((p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03) {
      fail(l, "the broker answered in TLS: this server runs with "
           "--insecure (plain TCP); start it with --tls-cert, --tls-key "
           "and --tls-ca instead");
      return false;
    }
  }
  while (left > 0) {
    struct gp_frame f;
    size_t used = 0;
    int r = gp_frame_feed(&l->parser, p, left, &used, &f);
    if (r < 0) {
      fail(l, "bad frame from the broker: %s", gp_strerror(r));
      return false;
    }
    p += used;
    left -= used;
    if (r == 1 && on_frame(l, &f) != 0)
      return false;
  }
  return true;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct gp_broker_link *l = s->data;
  char why[300];
  int r;

  if (n == UV_EOF) {
    if (!l->io.tls && l->state == LINK_REGISTERING && !l->plain_seen)
      fail(l, "the broker closed the connection without answering the "
           "registration: is it running TLS? (this server runs with "
           "--insecure, plain TCP)");
    else if (!gp__uvtls_ready(&l->io))
      fail(l, "the broker closed the connection during the TLS handshake "
           "(is it running with --insecure, plain TCP?)");
    else
      fail(l, "the broker closed the connection");
    return;
  }
  if (n < 0) {
    fail(l, "connection lost: %s", uv_strerror((int)n));
    return;
  }
  if (n == 0)
    return;
  r = gp__uvtls_feed(&l->io, buf->base, (size_t)n, on_plain, l, why,
                     sizeof(why));
  if (l->tcp != (uv_tcp_t *)s)
    return; /* failed in on_plain(), which said why */
  if (r == GP_ECLOSED)
    fail(l, "the broker closed the connection");
  else if (r != 0)
    fail(l, "TLS with the broker failed: %s", why);
}

static int send_register(struct gp_broker_link *l) {
  Gpupool__BrokerRegister reg = GPUPOOL__BROKER_REGISTER__INIT;
  Gpupool__KeyValue kv[GP_LABELS_MAX], *kvp[GP_LABELS_MAX];
  char keys[GP_LABELS_MAX][GP_LABEL_KEY_MAX + 1];
  char values[GP_LABELS_MAX][GP_LABEL_VALUE_MAX + 1];
  Gpupool__BrokerGpu gpus[GP_DEVICES_MAX], *gp[GP_DEVICES_MAX];
  Gpupool__BrokerSession *msgs = NULL, **ptrs = NULL;
  uint8_t mac[GP_GRANT_MAC_LEN];
  char version[96];
  const char *why;
  long n;
  int i, r;

  for (i = 0; i < l->cfg->nlabels; i++) {
    Gpupool__KeyValue init = GPUPOOL__KEY_VALUE__INIT;
    kv[i] = init;
    gp__label_parse(l->cfg->labels[i], keys[i], values[i], &why);
    kv[i].key = keys[i];
    kv[i].value = values[i];
    kvp[i] = &kv[i];
  }
  for (i = 0; i < l->inv->noffer; i++) {
    Gpupool__BrokerGpu init = GPUPOOL__BROKER_GPU__INIT;
    const struct gp_device_rec *d = &l->inv->d[l->inv->offer[i]];
    gpus[i] = init;
    gpus[i].uuid = (char *)d->uuid_str;
    gpus[i].name = (char *)d->name;
    gpus[i].total_mem = d->has_total ? d->mem_total : 0;
    gpus[i].cc_major = d->cc_major;
    gpus[i].cc_minor = d->cc_minor;
    gpus[i].mig_profile = (char *)d->mig_profile;
    gp[i] = &gpus[i];
  }
  n = build_sessions(l, &msgs, &ptrs);
  if (n < 0)
    return GP_ENOMEM;
  snprintf(version, sizeof(version), "gpupool-server %s (%s)",
           GP_VERSION_STRING, l->cfg->backend_name);
  reg.name = (char *)l->cfg->name;
  reg.address = l->address;
  reg.labels = kvp;
  reg.n_labels = (size_t)l->cfg->nlabels;
  reg.gpus = gp;
  reg.n_gpus = (size_t)l->inv->noffer;
  reg.sessions = ptrs;
  reg.n_sessions = (size_t)n;
  reg.version = version;
  /* The broker takes each registration of a name only with a timestamp
   * later than the last it accepted (a replay is refused): a reconnection
   * within the same second uses the next one. */
  reg.timestamp_unix = (uint64_t)time(NULL);
  if (reg.timestamp_unix <= l->last_stamp)
    reg.timestamp_unix = l->last_stamp + 1;
  l->last_stamp = reg.timestamp_unix;
  r = gp_register_auth(l->key, l->keylen, &reg, mac);
  if (r == 0) {
    reg.auth.data = mac;
    reg.auth.len = sizeof(mac);
    r = send_msg(l, GP_MSG_BROKER_REGISTER, &reg.base);
  }
  free(ptrs);
  free(msgs);
  return r;
}

static void on_connect(uv_connect_t *req, int status) {
  struct gp_broker_link *l = req->data;
  int r;

  /* Cancelled: fail() or stop closed the handle, and has said why. */
  if (l->stopping || status == UV_ECANCELED)
    return;
  if (status != 0) {
    fail(l, "cannot connect: %s", uv_strerror(status));
    return;
  }
  gp_frame_parser_init(&l->parser, NULL);
  {
    struct gp_tls_mem *tls = NULL;
    char why[300];
    if (l->ctx) {
      tls = gp_tls_mem_new(l->ctx, false, l->cfg->broker_host, why,
                           sizeof(why));
      if (!tls) {
        fail(l, "cannot start TLS: %s", why);
        return;
      }
    }
    gp__uvtls_init(&l->io, (uv_stream_t *)l->tcp, tls, NULL, l);
    l->plain_seen = false;
  }
  l->state = LINK_REGISTERING;
  r = uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read);
  if (r == 0)
    r = send_register(l);
  if (r != 0) {
    fail(l, "cannot send the registration: %s",
         r < 0 && r > -200 ? gp_strerror(r) : uv_strerror(r));
    return;
  }
  uv_timer_start(&l->retry, on_reply_timeout, GP_BROKER_REPLY_TIMEOUT_MS, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  struct gp_broker_link *l = req->data;
  int r;

  if (l->stopping) {
    uv_freeaddrinfo(res);
    return;
  }
  if (status != 0 || !res) {
    uv_freeaddrinfo(res);
    fail(l, "cannot resolve '%s': %s", l->cfg->broker_host,
         uv_strerror(status));
    return;
  }
  l->tcp = malloc(sizeof(*l->tcp));
  if (!l->tcp) {
    uv_freeaddrinfo(res);
    fail(l, "out of memory");
    return;
  }
  uv_tcp_init(l->loop, l->tcp);
  l->tcp->data = l;
  uv_tcp_nodelay(l->tcp, 1);
  uv_tcp_keepalive(l->tcp, 1, 10);
  l->state = LINK_CONNECTING;
  l->connect.data = l;
  r = uv_tcp_connect(&l->connect, l->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (r != 0)
    fail(l, "cannot connect: %s", uv_strerror(r));
}

/* The TLS files are read again at each connection attempt, so that new
 * ones (after a SIGHUP, or renewed in place) are used from the next
 * reconnection; a failure keeps the last context that could be built.
 * Returns 0, or -1 when there is none. */
static int refresh_ctx(struct gp_broker_link *l) {
  SSL_CTX *ctx;
  char why[512];

  if (l->tls.insecure)
    return 0;
  ctx = gp_tls_client_ctx(l->tls.ca, l->tls.cert, l->tls.key, why,
                          sizeof(why));
  if (!ctx) {
    if (l->ctx) {
      gp__error("broker %s: cannot read the TLS files again: %s; using "
                "the ones read before", l->cfg->broker, why);
      return 0;
    }
    gp__error("broker %s: TLS: %s", l->cfg->broker, why);
    return -1;
  }
  SSL_CTX_free(l->ctx);
  l->ctx = ctx;
  return 0;
}

static void connect_next(struct gp_broker_link *l) {
  struct addrinfo hints;
  char port[16];
  int r;

  if (refresh_ctx(l) != 0) {
    fail(l, "no TLS context");
    return;
  }

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port, sizeof(port), "%d", l->cfg->broker_port);
  l->state = LINK_RESOLVING;
  l->gai.data = l;
  r = uv_getaddrinfo(l->loop, &l->gai, on_resolved, l->cfg->broker_host,
                     port, &hints);
  if (r != 0)
    fail(l, "cannot resolve '%s': %s", l->cfg->broker_host, uv_strerror(r));
}

static void on_retry(uv_timer_t *t) {
  struct gp_broker_link *l = t->data;

  if (!l->stopping)
    connect_next(l);
}

/* ---- Interface -------------------------------------------------------------------- */

int gp__broker_link_start(uv_loop_t *loop, const struct gp_server_config *cfg,
                          const struct gp_broker_link_tls *tls,
                          const struct gp_inventory *inv, const char *address,
                          gp_pool_sessions_fn sessions, void *arg,
                          struct gp_broker_link **out) {
  struct gp_broker_link *l = calloc(1, sizeof(*l));
  char why[512];

  *out = NULL;
  if (!l)
    return GP_ENOMEM;
  l->key = malloc(GP_KEY_MAX_LEN);
  l->list = calloc(GP_BROKER_SESSIONS_MAX, sizeof(*l->list));
  l->scratch = inv->have_nvml ? malloc(sizeof(*l->scratch)) : NULL;
  if (!l->key || !l->list || (inv->have_nvml && !l->scratch)) {
    gp__broker_link_free(l);
    return GP_ENOMEM;
  }
  if (gp_key_load(cfg->grant_key_file, l->key, &l->keylen, why,
                  sizeof(why)) != 0) {
    gp__error("--grant-key-file: %s", why);
    gp__broker_link_free(l);
    return GP_EINVAL;
  }
  l->loop = loop;
  l->cfg = cfg;
  l->tls = *tls;
  if (refresh_ctx(l) != 0) {
    gp__broker_link_free(l);
    return GP_EINVAL;
  }
  l->inv = inv;
  l->nvml = inv->have_nvml;
  for (int i = 0; i < GP_DEVICES_MAX; i++)
    l->util[i] = -1;
  snprintf(l->address, sizeof(l->address), "%s", address);
  l->sessions = sessions;
  l->arg = arg;
  l->backoff_ms = GP_BROKER_BACKOFF_MIN_MS;
  uv_timer_init(loop, &l->retry);
  uv_timer_init(loop, &l->beat);
  l->retry.data = l->beat.data = l;
  gp__info("broker %s: registering as '%s', clients connect to %s (%s)",
           cfg->broker, cfg->name, address,
           tls->insecure ? "plain TCP: --insecure"
                         : "mutual TLS: this server's certificate");
  connect_next(l);
  *out = l;
  return 0;
}

void gp__broker_link_session_end(struct gp_broker_link *l, uint64_t id,
                                 const char *reason) {
  Gpupool__BrokerSessionEnd end = GPUPOOL__BROKER_SESSION_END__INIT;

  if (!l || l->state != LINK_REGISTERED)
    return;
  end.session_id = id;
  end.reason = (char *)reason;
  if (send_msg(l, GP_MSG_BROKER_SESSION_END, &end.base) != 0)
    gp__debug("broker: session end of %016" PRIx64 " not sent", id);
}

/* How long stopping waits for the broker to take what was queued. */
#define GP_BROKER_SHUTDOWN_MS 2000

static void on_stop_closed(uv_handle_t *h) {
  free(h);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct gp_broker_link *l = req->data;

  (void)status;
  if (!uv_is_closing((uv_handle_t *)&l->shutdown_timer))
    uv_close((uv_handle_t *)&l->shutdown_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)req->handle))
    uv_close((uv_handle_t *)req->handle, on_stop_closed);
}

/* A broker that reads nothing would keep the shutdown (and the server's
 * exit) waiting forever: after GP_BROKER_SHUTDOWN_MS the connection is
 * closed (the shutdown callback then runs, cancelled). */
static void on_shutdown_timeout(uv_timer_t *t) {
  struct gp_broker_link *l = t->data;

  gp__debug("broker: the connection did not shut down within %d ms; "
            "closing it", GP_BROKER_SHUTDOWN_MS);
  uv_close((uv_handle_t *)t, NULL);
  if (l->closing_tcp && !uv_is_closing((uv_handle_t *)l->closing_tcp))
    uv_close((uv_handle_t *)l->closing_tcp, on_stop_closed);
}

void gp__broker_link_stop(struct gp_broker_link *l) {
  if (!l || l->stopping)
    return;
  l->stopping = true;
  uv_close((uv_handle_t *)&l->retry, NULL);
  uv_close((uv_handle_t *)&l->beat, NULL);
  if (l->state == LINK_RESOLVING)
    uv_cancel((uv_req_t *)&l->gai);
  if (l->tcp) {
    uv_tcp_t *tcp = l->tcp;
    l->tcp = NULL;
    /* What was queued (a last session end) goes out first, for as long
     * as GP_BROKER_SHUTDOWN_MS. */
    l->shutdown.data = l;
    gp__uvtls_shutdown(&l->io); /* a close_notify first */
    if (l->state != LINK_REGISTERED ||
        uv_timer_init(l->loop, &l->shutdown_timer) != 0) {
      uv_close((uv_handle_t *)tcp, on_stop_closed);
      return;
    }
    l->shutdown_timer.data = l;
    l->closing_tcp = tcp;
    if (uv_shutdown(&l->shutdown, (uv_stream_t *)tcp, on_shutdown) != 0) {
      uv_close((uv_handle_t *)&l->shutdown_timer, NULL);
      uv_close((uv_handle_t *)tcp, on_stop_closed);
      return;
    }
    uv_timer_start(&l->shutdown_timer, on_shutdown_timeout,
                   GP_BROKER_SHUTDOWN_MS, 0);
  }
}

void gp__broker_link_free(struct gp_broker_link *l) {
  if (!l)
    return;
  gp_frame_parser_free(&l->parser);
  gp__uvtls_free(&l->io);
  SSL_CTX_free(l->ctx);
  if (l->key)
    OPENSSL_cleanse(l->key, GP_KEY_MAX_LEN);
  free(l->key);
  free(l->list);
  free(l->scratch);
  free(l);
}
