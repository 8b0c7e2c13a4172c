/* The broker's event loop (docs/broker.md): one libuv loop that accepts
 * connections from pool servers, clients and the CLI, reads frames with a
 * parser per connection, and answers from the pool (placement.c).
 *
 * Every size a peer controls is bounded: a frame's message (by type, from
 * its header: brk_msg_limit()), its payload (none: the broker's messages
 * carry none), the counts in a message (before anything is allocated for
 * them), the bytes queued to a peer that does not read (reading from it
 * stops above BRK_PAUSE_QUEUED and resumes once they drain), the memory
 * all connections hold in queued replies, unread input and large frames
 * (BRK_MAX_HELD in all; the connection that would go over it is closed),
 * the number of connections (BRK_MAX_CONNS; at the cap, the oldest idle
 * connection that is not a server's makes room for a new one), how long a
 * connection that is not a server's may stay without sending a frame
 * (BRK_CLIENT_IDLE_MS), a server's (3 x down_after_ms), and how long a
 * connection being shut down may take (BRK_FINISH_MS). A frame that does
 * not decode, or a type the broker does not serve, gets a ProtocolError
 * and the end of that connection only.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <uv.h>

#include "broker.h"
#include "daemon_util.h"
#include "frame.h"
#include "gp_config.h"
#include "gpupool/errors.h"
#include "log.h"
#include "msg.h"
#include "tls.h"
#include "uv_tls.h"

#define BRK_BACKLOG 128
#define BRK_MAX_CONNS 4096u
#define BRK_MAX_MSG (1u << 20)
#define BRK_MAX_SMALL_MSG (16u << 10) /* requests, session ends */
#define BRK_MAX_QUEUED (16u << 20)
#define BRK_PAUSE_QUEUED (64u << 10)  /* stop reading above, resume below */
#define BRK_MAX_HELD (64u << 20)      /* all connections together */
#define BRK_BIG_FRAME (64u << 10)     /* a frame over this counts as held */
#define BRK_FINISH_MS 5000u
#define BRK_SERVER_SILENT_FACTOR 3u   /* x down_after_ms: closed */
#define BRK_KEEPALIVE_S 10
#define BRK_CLIENT_IDLE_MS 30000u
#define BRK_MAX_LISTED 65536u /* sessions in one registration or heartbeat */
#define BRK_READ_BUF (64u << 10)
#define BRK_PEER_MAX 64

struct brk_daemon;

/* One peer. Freed from its close callback only. */
struct brk_conn {
  uv_tcp_t tcp;
  struct brk_daemon *d;
  struct gp_frame_parser parser;
  char peer[BRK_PEER_MAX];
  struct brk_server *server; /* what it registered as; NULL: none */
  uint64_t last_rx_ms;
  uint64_t finish_ms;        /* when finishing began */
  bool finishing;            /* no more input is read */
  bool paused;               /* reading stopped: too much queued */
  bool closing;              /* uv_close called */
  bool tls_done;             /* its TLS handshake finished (or plain) */
  uint64_t accepted_ms;
  struct gp_uvtls io;        /* TLS (or plain) under the frames; io.queued:
                                bytes not yet written (ciphertext) */
  uint8_t *pending;          /* input read but not parsed while paused */
  size_t npending;
  size_t rx_held;            /* a big frame's length, while it is read */
  struct brk_conn *prev, *next;
};

struct brk_daemon {
  const struct brk_config *cfg;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm, sighup;
  const struct brk_tls *tls; /* the TLS files and flags */
  SSL_CTX *ctx;              /* NULL: --insecure (plain TCP) */
  uv_timer_t tick;
  struct brk_pool pool;
  struct brk_conn *conns;
  uint32_t nconns;           /* allocated, closing ones included */
  uint32_t nopen;            /* not closing */
  uint32_t max_conns;        /* BRK_MAX_CONNS, or fewer when the process
                                may not open that many files */
  size_t held;               /* queued + pending + rx_held of all */
  uint64_t started_ms;
  bool stopping;
  uint8_t rbuf[BRK_READ_BUF]; /* every read lands here: one loop thread */
};

static const struct gp_frame_limits brk_limits = {BRK_MAX_MSG, 0};

/* ---- Connections --------------------------------------------------------- */


static void conn_closed(uv_handle_t *h) {
  struct brk_conn *c = h->data;
  struct brk_daemon *d = c->d;

  if (c->prev)
    c->prev->next = c->next;
  else
    d->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  d->nconns--;
  if (c->server && c->server->conn == c) {
    c->server->conn = NULL;
    if (!d->stopping)
      gp__info("server %s: connection from %s closed", c->server->name,
               c->peer);
  }
  d->held -= c->npending + c->rx_held;
  gp__uvtls_free(&c->io);
  free(c->pending);
  gp_frame_parser_free(&c->parser);
  free(c);
}

static void conn_close(struct brk_conn *c) {
  c->finishing = true;
  if (!c->closing) {
    c->closing = true;
    c->d->nopen--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct brk_conn *c = req->data;

  free(req);
  conn_close(c);
}

/* Stops reading, lets what is queued go out, then closes. */
static void conn_finish(struct brk_conn *c) {
  uv_shutdown_t *req;

  if (c->finishing)
    return;
  c->finishing = true;
  c->finish_ms = uv_now(&c->d->loop);
  uv_read_stop((uv_stream_t *)&c->tcp);
  gp__uvtls_shutdown(&c->io); /* a close_notify, then the TCP shutdown */
  req = malloc(sizeof(*req));
  if (req) {
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
      return;
    free(req);
  }
  conn_close(c);
}

static void conn_resume(struct brk_conn *c);

/* Bytes queued to the peer (|delta| > 0, ciphertext on TLS) or written
 * (|delta| < 0): the broker's count of what it holds follows. */
static void conn_queued(struct gp_uvtls *t, long delta, int status) {
  struct brk_conn *c = t->data;

  c->d->held += (size_t)delta;
  if (delta >= 0)
    return;
  if (status < 0 && status != UV_ECANCELED)
    conn_close(c);
  else if (c->paused && !c->closing && c->io.queued <= BRK_PAUSE_QUEUED / 2)
    conn_resume(c);
}

/* Queues one frame of |type| (|msg| NULL: an empty message). Closes the
 * connection when it cannot (out of memory, a peer that does not read). */
static void conn_send(struct brk_conn *c, uint16_t type, uint16_t flags,
                      uint32_t request_id, const ProtobufCMessage *msg) {
  struct gp_frame_header h = {0};
  uint8_t *buf;
  size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
  char why[256];
  int r;

  if (c->closing)
    return;
  if (c->d->held + GP_FRAME_HEADER_SIZE + n > BRK_MAX_HELD) {
    gp__warn("%s: the broker holds %zu bytes for its peers (at most %u "
             "MiB): closing this one", c->peer, c->d->held,
             BRK_MAX_HELD >> 20);
    conn_close(c);
    return;
  }
  buf = malloc(GP_FRAME_HEADER_SIZE + n);
  if (!buf) {
    gp__error("%s: out of memory for a reply: closing", c->peer);
    conn_close(c);
    return;
  }
  h.version = GP_FRAME_VERSION;
  h.type = type;
  h.flags = flags;
  h.request_id = request_id;
  h.msg_len = (uint32_t)n;
  gp_frame_header_encode(&h, buf);
  if (msg)
    protobuf_c_message_pack(msg, buf + GP_FRAME_HEADER_SIZE);
  r = gp__uvtls_write(&c->io, buf, GP_FRAME_HEADER_SIZE + n, why,
                      sizeof(why));
  free(buf);
  if (r != 0) {
    gp__warn("%s: cannot send a reply: %s; closing", c->peer, why);
    conn_close(c);
    return;
  }
  if (c->io.queued > BRK_MAX_QUEUED) {
    gp__warn("%s: more than %u MiB queued and not read: closing", c->peer,
             BRK_MAX_QUEUED >> 20);
    conn_close(c);
    return;
  }
  /* A peer that sends requests without reading the answers: read no
   * more from it until they have gone out (on_read stops parsing). */
  if (c->io.queued > BRK_PAUSE_QUEUED && !c->paused && !c->finishing) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
}

static void reply(struct brk_conn *c, const struct gp_frame_header *h,
                  const ProtobufCMessage *msg) {
  conn_send(c, h->type, GP_FRAME_F_REPLY, h->request_id, msg);
}

/* Sends a ProtocolError and ends the connection. */
__attribute__((format(printf, 4, 5)))
static void protocol_error(struct brk_conn *c, int code, uint32_t request_id,
                           const char *fmt, ...) {
  Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
  char msg[256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gp__warn("%s%s%s: protocol error: %s; closing", c->peer,
           c->server ? " server " : "", c->server ? c->server->name : "",
           msg);
  pe.code = code;
  pe.message = msg;
  conn_send(c, GP_MSG_PROTOCOL_ERROR, 0, request_id, &pe.base);
  conn_finish(c);
}

/* Copies |in| into |out| (|len| bytes) with anything not printable ASCII
 * replaced, for logs and status. */
static void sanitize(const char *in, char *out, size_t len) {
  size_t i;

  for (i = 0; in && in[i] && i + 1 < len; i++)
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
  out[i] = '\0';
}

static uint64_t now_unix(void) {
  return (uint64_t)time(NULL);
}

/* ---- Servers: registration, heartbeats, session ends ----------------------- */

/* Logs a listed session the pool will ignore for its memory limit (0, or
 * above its GPU's total memory, |total| 0: a GPU not offered, which the
 * pool ignores or refuses on its own). */
static void check_listed(const char *server, const Gpupool__BrokerSession *s,
                         uint64_t total) {
  if (total != 0 && !brk_listed_limit_ok(s->memory_limit, total))
    gp__warn("server %s: session %016llx listed with a memory limit of %llu "
             "bytes (its GPU has %llu): ignored", server,
             (unsigned long long)s->session_id,
             (unsigned long long)s->memory_limit, (unsigned long long)total);
}

static void session_infos(Gpupool__BrokerSession **in, size_t n,
                          struct brk_session_info *out) {
  size_t i;

  for (i = 0; i < n; i++) {
    out[i].session_id = in[i]->session_id;
    out[i].tenant = in[i]->tenant;
    out[i].gpu_uuid = in[i]->gpu_uuid;
    out[i].memory_limit = in[i]->memory_limit;
    out[i].memory_used = in[i]->memory_used;
    out[i].expires_unix = in[i]->expires_unix;
    out[i].idle_ms = in[i]->idle_ms;
  }
}

static void handle_register(struct brk_conn *c,
                            const struct gp_frame_header *h,
                            const Gpupool__BrokerRegister *m) {
  struct brk_daemon *d = c->d;
  Gpupool__BrokerRegisterReply rep = GPUPOOL__BROKER_REGISTER_REPLY__INIT;
  struct brk_register r = {0};
  struct brk_label *labels = NULL;
  struct brk_gpu_info *gpus = NULL;
  struct brk_session_info *sessions = NULL;
  struct brk_server *srv = NULL;
  uint8_t mac[GP_GRANT_MAC_LEN];
  uint64_t now = now_unix();
  char msg[256], name[80];
  size_t i;
  int ret;

  sanitize(m->name, name, sizeof(name));
  rep.result = GP_EAUTH;
  rep.message = msg;
  /* A server proves itself twice: a client certificate from the pool's
   * CA (TLS), and the registration's HMAC. */
  if (d->ctx && !gp_tls_mem_peer_verified(c->io.tls)) {
    ret = GP_EAUTH;
    snprintf(msg, sizeof(msg), "server registration needs mutual TLS: a "
             "client certificate from the pool's CA");
    goto refuse;
  }
  if (!brk_name_valid(m->name)) {
    ret = GP_EINVAL;
    snprintf(msg, sizeof(msg), "server name '%s' is not 1 to %u of "
             "[A-Za-z0-9._-]", name, BRK_NAME_MAX);
    goto refuse;
  }
  if (m->timestamp_unix + BRK_REGISTER_WINDOW_S < now ||
      m->timestamp_unix > now + BRK_REGISTER_WINDOW_S) {
    ret = GP_EAUTH;
    snprintf(msg, sizeof(msg), "registration timestamp %llu is %lld s from "
             "the broker's clock (at most %d s allowed)",
             (unsigned long long)m->timestamp_unix,
             (long long)(m->timestamp_unix - now), BRK_REGISTER_WINDOW_S);
    goto refuse;
  }
  if (gp_register_auth(d->cfg->key, d->cfg->keylen, m, mac) != 0 ||
      m->auth.len != GP_GRANT_MAC_LEN ||
      !gp_ct_equal(mac, m->auth.data, GP_GRANT_MAC_LEN)) {
    ret = GP_EAUTH;
    snprintf(msg, sizeof(msg), "registration of %s: auth does not verify "
             "(not the broker's grant key?)", name);
    goto refuse;
  }
  /* A registration seen before (or an older one) is a replay: each one
   * of a name must be later than the last accepted. */
  srv = brk_pool_server(&d->pool, m->name);
  if (srv && m->timestamp_unix <= srv->last_register_unix) {
    ret = GP_EAUTH;
    snprintf(msg, sizeof(msg), "registration of %s: timestamp %llu is not "
             "after its last accepted registration's (%llu): a replay?", name,
             (unsigned long long)m->timestamp_unix,
             (unsigned long long)srv->last_register_unix);
    srv = NULL;
    goto refuse;
  }
  srv = NULL;
  if (m->n_labels > BRK_MAX_LABELS || m->n_gpus > BRK_MAX_GPUS ||
      m->n_sessions > BRK_MAX_LISTED) {
    ret = GP_EINVAL;
    snprintf(msg, sizeof(msg), "registration of %s: %zu labels, %zu GPUs, "
             "%zu sessions (at most %u, %u, %u)", name, m->n_labels,
             m->n_gpus, m->n_sessions, BRK_MAX_LABELS, BRK_MAX_GPUS,
             BRK_MAX_LISTED);
    goto refuse;
  }
  labels = calloc(m->n_labels + 1, sizeof(*labels));
  gpus = calloc(m->n_gpus + 1, sizeof(*gpus));
  sessions = calloc(m->n_sessions + 1, sizeof(*sessions));
  if (!labels || !gpus || !sessions) {
    ret = GP_ENOMEM;
    snprintf(msg, sizeof(msg), "out of memory");
    goto refuse;
  }
  for (i = 0; i < m->n_labels; i++) {
    labels[i].key = m->labels[i]->key;
    labels[i].value = m->labels[i]->value;
  }
  for (i = 0; i < m->n_gpus; i++) {
    gpus[i].uuid = m->gpus[i]->uuid;
    gpus[i].name = m->gpus[i]->name;
    gpus[i].mig_profile = m->gpus[i]->mig_profile;
    gpus[i].total_mem = m->gpus[i]->total_mem;
    gpus[i].cc_major = m->gpus[i]->cc_major;
    gpus[i].cc_minor = m->gpus[i]->cc_minor;
  }
  session_infos(m->sessions, m->n_sessions, sessions);
  for (i = 0; i < m->n_sessions; i++) {
    size_t k;
    for (k = 0; k < m->n_gpus; k++)
      if (m->sessions[i]->gpu_uuid && m->gpus[k]->uuid &&
          strcmp(m->sessions[i]->gpu_uuid, m->gpus[k]->uuid) == 0)
        break;
    check_listed(name, m->sessions[i],
                 k < m->n_gpus ? m->gpus[k]->total_mem : 0);
  }
  r.name = m->name;
  r.address = m->address;
  r.version = m->version;
  r.labels = labels;
  r.nlabels = (uint32_t)m->n_labels;
  r.gpus = gpus;
  r.ngpus = (uint32_t)m->n_gpus;
  r.sessions = sessions;
  r.nsessions = (uint32_t)m->n_sessions;
  ret = brk_pool_register(&d->pool, &r, uv_now(&d->loop), &srv, msg,
                          sizeof(msg));
  if (ret != 0)
    goto refuse;

  if (srv->conn && srv->conn != c) {
    struct brk_conn *old = srv->conn;
    gp__info("server %s: registered again from %s; closing its connection "
             "from %s", srv->name, c->peer, old->peer);
    old->server = NULL;
    conn_finish(old); /* a close_notify (TLS), then the close */
  }
  if (c->server && c->server != srv && c->server->conn == c)
    c->server->conn = NULL;
  srv->conn = c;
  srv->last_register_unix = m->timestamp_unix;
  c->server = srv;
  {
    char ver[BRK_VERSION_MAX + 1];
    sanitize(srv->version, ver, sizeof(ver));
    gp__info("server %s registered from %s: address %s, %u GPUs, %zu "
             "sessions running%s%s%s", srv->name, c->peer, srv->address,
             srv->ngpus, m->n_sessions, *ver ? " (" : "", ver,
             *ver ? ")" : "");
  }
  rep.result = 0;
  rep.message = "";
  rep.heartbeat_ms = d->cfg->heartbeat_ms;
  reply(c, h, &rep.base);
  goto out;

refuse:
  rep.result = ret;
  gp__warn("%s: registration refused: %s", c->peer, msg);
  reply(c, h, &rep.base);
  conn_finish(c);
out:
  free(labels);
  free(gpus);
  free(sessions);
}

/* The server this connection registered as, or a ProtocolError. */
static struct brk_server *registered(struct brk_conn *c,
                                     const struct gp_frame_header *h) {
  if (c->server && c->server->conn == c)
    return c->server;
  protocol_error(c, GP_EPROTO, h->request_id, "%s before BROKER_REGISTER",
                 gp_msg_type_name(h->type));
  return NULL;
}

static void handle_heartbeat(struct brk_conn *c,
                             const struct gp_frame_header *h,
                             const Gpupool__BrokerHeartbeat *m) {
  struct brk_daemon *d = c->d;
  struct brk_server *srv = registered(c, h);
  struct brk_gpu_load *loads;
  struct brk_session_info *sessions;
  bool was_up;
  size_t i;
  int r;

  if (!srv)
    return;
  if (m->n_gpus > BRK_MAX_GPUS || m->n_sessions > BRK_MAX_LISTED) {
    protocol_error(c, GP_ETOOBIG, h->request_id, "heartbeat with %zu GPUs "
                   "and %zu sessions (at most %u and %u)", m->n_gpus,
                   m->n_sessions, BRK_MAX_GPUS, BRK_MAX_LISTED);
    return;
  }
  loads = calloc(m->n_gpus + 1, sizeof(*loads));
  sessions = calloc(m->n_sessions + 1, sizeof(*sessions));
  if (!loads || !sessions) {
    gp__error("server %s: heartbeat dropped: out of memory", srv->name);
    goto out;
  }
  for (i = 0; i < m->n_gpus; i++) {
    loads[i].uuid = m->gpus[i]->uuid;
    loads[i].memory_used = m->gpus[i]->memory_used;
    loads[i].utilisation = m->gpus[i]->utilisation;
  }
  session_infos(m->sessions, m->n_sessions, sessions);
  for (i = 0; i < m->n_sessions; i++) {
    const struct brk_gpu *g = NULL;
    uint32_t k;
    for (k = 0; k < srv->ngpus && !g; k++)
      if (m->sessions[i]->gpu_uuid &&
          strcmp(srv->gpus[k].uuid, m->sessions[i]->gpu_uuid) == 0)
        g = &srv->gpus[k];
    check_listed(srv->name, m->sessions[i], g ? g->total_mem : 0);
  }
  was_up = srv->up;
  r = brk_pool_heartbeat(&d->pool, srv, loads, (uint32_t)m->n_gpus, sessions,
                         (uint32_t)m->n_sessions, uv_now(&d->loop));
  if (!was_up)
    gp__info("server %s is up again", srv->name);
  if (r < 0)
    gp__error("server %s: heartbeat applied in part: %s", srv->name,
              gp_strerror(r));
  else if (r > 0)
    gp__info("server %s: %d sessions no longer running (released)",
             srv->name, r);
out:
  free(loads);
  free(sessions);
}

static void handle_session_end(struct brk_conn *c,
                               const struct gp_frame_header *h,
                               const Gpupool__BrokerSessionEnd *m) {
  struct brk_server *srv = registered(c, h);
  char reason[64];

  if (!srv)
    return;
  sanitize(m->reason, reason, sizeof(reason));
  if (brk_pool_end(&c->d->pool, m->session_id, srv) == 0)
    gp__info("session %016llx on %s ended (%s)",
             (unsigned long long)m->session_id, srv->name,
             *reason ? reason : "no reason given");
  else
    gp__debug("server %s: end of unknown session %016llx (%s)", srv->name,
              (unsigned long long)m->session_id, reason);
}

/* ---- Clients: sessions ---------------------------------------------------- */

/* A random session id, not 0 and not in use. */
static int new_session_id(struct brk_daemon *d, uint64_t *out) {
  int tries;

  for (tries = 0; tries < 16; tries++) {
    uint64_t id;
    if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
      return GP_ENOMEM;
    if (id != 0 && !brk_pool_session(&d->pool, id)) {
      *out = id;
      return 0;
    }
  }
  return GP_ENOMEM;
}

static void handle_request(struct brk_conn *c,
                           const struct gp_frame_header *h,
                           const Gpupool__BrokerSessionRequest *m) {
  struct brk_daemon *d = c->d;
  const struct brk_config *cfg = d->cfg;
  Gpupool__BrokerSessionGrant rep = GPUPOOL__BROKER_SESSION_GRANT__INIT;
  Gpupool__Grant g = GPUPOOL__GRANT__INIT;
  struct brk_label labels[BRK_MAX_LABELS];
  struct brk_request req = {0};
  struct brk_decision dec;
  struct brk_session *s;
  uint8_t nonce[16], *grant = NULL;
  size_t grantlen = 0, i;
  uint64_t id, now = now_unix();
  char msg[320], client[BRK_CLIENT_MAX + 1];
  int who, r;

  sanitize(m->client, client, sizeof(client));
  rep.message = msg;
  msg[0] = '\0';
  who = brk_config_token(cfg, m->token.data, m->token.len);
  if (who == BRK_TOKEN_UNKNOWN) {
    r = GP_EAUTH;
    snprintf(msg, sizeof(msg), "unknown token");
    goto refuse;
  }
  if (who == BRK_TOKEN_ADMIN) {
    r = GP_EPERM;
    snprintf(msg, sizeof(msg), "the admin token cannot ask for sessions: "
             "use a tenant's");
    goto refuse;
  }
  if (m->n_labels > BRK_MAX_LABELS) {
    r = GP_EINVAL;
    snprintf(msg, sizeof(msg), "%zu labels (at most %u)", m->n_labels,
             BRK_MAX_LABELS);
    goto refuse;
  }
  if (m->binding_key.len != GP_BINDING_KEY_LEN) {
    r = GP_EINVAL;
    snprintf(msg, sizeof(msg), "binding_key of %zu bytes: a session request "
             "carries the client's Ed25519 public key (%u bytes; an older "
             "client?)", m->binding_key.len, GP_BINDING_KEY_LEN);
    goto refuse;
  }
  for (i = 0; i < m->n_labels; i++) {
    labels[i].key = m->labels[i]->key;
    labels[i].value = m->labels[i]->value;
  }
  req.tenant = who;
  req.memory = m->memory;
  req.gpu_count = m->gpu_count;
  req.labels = labels;
  req.nlabels = (uint32_t)m->n_labels;
  req.server = m->server;
  req.prefer_server = m->prefer_server;
  r = brk_place(&d->pool, &req, &dec, msg, sizeof(msg));
  if (r != 0)
    goto refuse;
  r = new_session_id(d, &id);
  if (r == 0 && RAND_bytes(nonce, sizeof(nonce)) != 1)
    r = GP_ENOMEM;
  if (r != 0) {
    snprintf(msg, sizeof(msg), "no random bytes for a session id");
    goto refuse;
  }
  g.version = GP_GRANT_VERSION;
  g.binding_key = m->binding_key; /* the grant binds the client's key */
  g.session_id = id;
  g.tenant = cfg->tenants[who].t.name;
  g.server = dec.server->name;
  g.gpu_uuid = dec.server->gpus[dec.gpu].uuid;
  g.memory_limit = dec.memory;
  g.issued_unix = now;
  g.expires_unix = now + cfg->grant_ttl_s;
  g.nonce.data = nonce;
  g.nonce.len = sizeof(nonce);
  r = gp_grant_sign(cfg->key, cfg->keylen, &g, &grant, &grantlen);
  if (r != 0) {
    snprintf(msg, sizeof(msg), "cannot sign the grant: %s", gp_strerror(r));
    goto refuse;
  }
  r = brk_pool_grant(&d->pool, &dec, who, id, g.expires_unix, client,
                     uv_now(&d->loop), &s);
  if (r != 0) {
    snprintf(msg, sizeof(msg), "cannot record the session: %s",
             gp_strerror(r));
    goto refuse;
  }
  rep.result = 0;
  rep.server = dec.server->name;
  rep.address = dec.server->address;
  rep.grant.data = grant;
  rep.grant.len = grantlen;
  rep.session_id = id;
  rep.gpu_uuid = g.gpu_uuid;
  rep.memory_limit = dec.memory;
  rep.expires_unix = g.expires_unix;
  gp__info("session %016llx granted to %s (%s): %s %s, %llu MiB",
           (unsigned long long)id, g.tenant, *client ? client : c->peer,
           g.server, g.gpu_uuid, (unsigned long long)(dec.memory >> 20));
  reply(c, h, &rep.base);
  free(grant);
  return;

refuse:
  rep.result = r;
  gp__info("session request from %s (%s, tenant %s) refused: %s", c->peer,
           *client ? client : "?",
           who >= 0 ? cfg->tenants[who].t.name : "-", msg);
  reply(c, h, &rep.base);
  free(grant);
  if (r == GP_EAUTH)
    conn_finish(c); /* no more guesses on this connection */
}

/* ---- The CLI: status and drain ------------------------------------------------ */

static void handle_status(struct brk_conn *c, const struct gp_frame_header *h,
                          const Gpupool__BrokerStatusRequest *m) {
  struct brk_daemon *d = c->d;
  struct brk_pool *p = &d->pool;
  Gpupool__BrokerStatusReply rep = GPUPOOL__BROKER_STATUS_REPLY__INIT;
  Gpupool__BrokerServerStatus *ss = NULL, **ssp = NULL;
  Gpupool__BrokerGpuStatus *gs = NULL, **gsp = NULL;
  Gpupool__KeyValue *kv = NULL, **kvp = NULL;
  Gpupool__BrokerSessionStatus *se = NULL, **sep = NULL;
  uint64_t now = uv_now(&d->loop);
  size_t ngpu = 0, nlab = 0, nses = 0, gi = 0, li = 0, k, packed;
  uint32_t i, j, pos = 0;
  struct brk_session *s;
  char msg[160];
  int who;

  rep.message = msg;
  msg[0] = '\0';
  who = brk_config_token(d->cfg, m->token.data, m->token.len);
  if (who == BRK_TOKEN_UNKNOWN) {
    rep.result = GP_EAUTH;
    snprintf(msg, sizeof(msg), "unknown token");
    reply(c, h, &rep.base);
    conn_finish(c);
    return;
  }
  for (i = 0; i < p->nservers; i++) {
    ngpu += p->servers[i]->ngpus;
    nlab += p->servers[i]->nlabels;
  }
  for (pos = 0; (s = brk_pool_next_session(p, &pos));)
    if (who == BRK_TOKEN_ADMIN || s->tenant_index == who)
      nses++;
  ss = calloc(p->nservers + 1, sizeof(*ss));
  ssp = calloc(p->nservers + 1, sizeof(*ssp));
  gs = calloc(ngpu + 1, sizeof(*gs));
  gsp = calloc(ngpu + 1, sizeof(*gsp));
  kv = calloc(nlab + 1, sizeof(*kv));
  kvp = calloc(nlab + 1, sizeof(*kvp));
  se = calloc(nses + 1, sizeof(*se));
  sep = calloc(nses + 1, sizeof(*sep));
  if (!ss || !ssp || !gs || !gsp || !kv || !kvp || !se || !sep) {
    rep.result = GP_ENOMEM;
    snprintf(msg, sizeof(msg), "out of memory");
    reply(c, h, &rep.base);
    goto out;
  }
  for (i = 0; i < p->nservers; i++) {
    struct brk_server *srv = p->servers[i];
    Gpupool__BrokerServerStatus *x = &ss[i];
    gpupool__broker_server_status__init(x);
    ssp[i] = x;
    x->name = srv->name;
    x->address = srv->address;
    x->version = srv->version;
    x->up = srv->up;
    x->draining = srv->draining;
    x->last_heartbeat_ms = now >= srv->last_heartbeat_ms
                               ? now - srv->last_heartbeat_ms : 0;
    x->labels = &kvp[li];
    x->n_labels = srv->nlabels;
    for (j = 0; j < srv->nlabels; j++, li++) {
      gpupool__key_value__init(&kv[li]);
      kv[li].key = srv->labels[j].key;
      kv[li].value = srv->labels[j].value;
      kvp[li] = &kv[li];
    }
    x->gpus = &gsp[gi];
    x->n_gpus = srv->ngpus;
    for (j = 0; j < srv->ngpus; j++, gi++) {
      const struct brk_gpu *g = &srv->gpus[j];
      Gpupool__BrokerGpuStatus *y = &gs[gi];
      gpupool__broker_gpu_status__init(y);
      gsp[gi] = y;
      y->uuid = (char *)g->uuid;
      y->name = (char *)g->name;
      y->total_mem = g->total_mem;
      y->reserved = g->reserved;
      y->memory_used = g->memory_used;
      y->sessions = g->sessions;
      y->utilisation = g->utilisation;
      y->mig_profile = (char *)g->mig_profile;
      y->cc_major = g->cc_major;
      y->cc_minor = g->cc_minor;
    }
  }
  rep.servers = ssp;
  rep.n_servers = p->nservers;
  k = 0;
  for (pos = 0; (s = brk_pool_next_session(p, &pos));) {
    Gpupool__BrokerSessionStatus *y;
    if (who != BRK_TOKEN_ADMIN && s->tenant_index != who)
      continue;
    y = &se[k];
    gpupool__broker_session_status__init(y);
    sep[k++] = y;
    y->session_id = s->id;
    y->tenant = s->tenant;
    y->server = s->server->name;
    y->gpu_uuid = s->server->gpus[s->gpu].uuid;
    y->memory_limit = s->memory_limit;
    y->memory_used = s->memory_used;
    y->age_ms = now >= s->created_ms ? now - s->created_ms : 0;
    y->state = s->state == BRK_RUNNING ? "running" : "granted";
    y->client = s->client;
    y->idle_ms = s->idle_ms;
  }
  rep.sessions = sep;
  rep.n_sessions = k;
  rep.uptime_ms = now - d->started_ms;
  rep.result = 0;
  packed = gpupool__broker_status_reply__get_packed_size(&rep);
  if (packed > BRK_MAX_MSG) {
    Gpupool__BrokerStatusReply big = GPUPOOL__BROKER_STATUS_REPLY__INIT;
    big.result = GP_ETOOBIG;
    big.message = msg;
    snprintf(msg, sizeof(msg), "the status is %zu bytes, over the %u-byte "
             "limit of a message", packed, BRK_MAX_MSG);
    reply(c, h, &big.base);
    goto out;
  }
  reply(c, h, &rep.base);
out:
  free(ss);
  free(ssp);
  free(gs);
  free(gsp);
  free(kv);
  free(kvp);
  free(se);
  free(sep);
}

static void handle_drain(struct brk_conn *c, const struct gp_frame_header *h,
                         const Gpupool__BrokerDrain *m) {
  struct brk_daemon *d = c->d;
  Gpupool__BrokerDrainReply rep = GPUPOOL__BROKER_DRAIN_REPLY__INIT;
  struct brk_server *srv;
  char msg[160], name[80];
  int who;

  rep.message = msg;
  sanitize(m->server, name, sizeof(name));
  who = brk_config_token(d->cfg, m->token.data, m->token.len);
  if (who == BRK_TOKEN_UNKNOWN) {
    rep.result = GP_EAUTH;
    snprintf(msg, sizeof(msg), "unknown token");
  } else if (who != BRK_TOKEN_ADMIN) {
    rep.result = GP_EPERM;
    snprintf(msg, sizeof(msg), "%s needs the admin token",
             m->drain ? "drain" : "undrain");
  } else if (!(srv = brk_pool_server(&d->pool, m->server))) {
    rep.result = GP_ENOENT;
    snprintf(msg, sizeof(msg), "no server named %s", name);
  } else {
    brk_pool_drain(&d->pool, srv, m->drain);
    rep.result = 0;
    if (m->drain)
      snprintf(msg, sizeof(msg), "%s is draining: no new sessions (%u "
               "running or granted)", srv->name, srv->nsessions);
    else
      snprintf(msg, sizeof(msg), "%s takes new sessions again", srv->name);
    gp__info("%s (from %s)", msg, c->peer);
  }
  if (rep.result != 0)
    gp__info("%s from %s refused: %s", m->drain ? "drain" : "undrain",
             c->peer, msg);
  reply(c, h, &rep.base);
  if (rep.result == GP_EAUTH)
    conn_finish(c);
}

/* ---- Frames ------------------------------------------------------------------ */

static void handle_frame(struct brk_conn *c, const struct gp_frame *f) {
  const struct gp_frame_header *h = &f->hdr;
  ProtobufCMessage *msg;

  c->last_rx_ms = uv_now(&c->d->loop);
  if (h->flags & GP_FRAME_F_REPLY) {
    protocol_error(c, GP_EPROTO, h->request_id, "unexpected reply frame "
                   "(type %u)", h->type);
    return;
  }
  switch (h->type) {
  case GP_MSG_BROKER_REGISTER:
  case GP_MSG_BROKER_HEARTBEAT:
  case GP_MSG_BROKER_SESSION_END:
  case GP_MSG_BROKER_REQUEST_SESSION:
  case GP_MSG_BROKER_STATUS:
  case GP_MSG_BROKER_DRAIN:
    break;
  default:
    protocol_error(c, GP_EPROTO, h->request_id, "message type %u (%s) is "
                   "not served by the broker", h->type,
                   gp_msg_type_name(h->type));
    return;
  }
  /* The answered types must be allowed an answer (the server refuses a
   * HELLO flagged NOREPLY likewise); heartbeats and session ends are
   * never answered, flagged or not. */
  if ((h->flags & GP_FRAME_F_NOREPLY) &&
      h->type != GP_MSG_BROKER_HEARTBEAT &&
      h->type != GP_MSG_BROKER_SESSION_END) {
    protocol_error(c, GP_EPROTO, h->request_id, "%s flagged NOREPLY",
                   gp_msg_type_name(h->type));
    return;
  }
  msg = gp_msg_unpack(h->type, false, f->msg, h->msg_len);
  if (!msg) {
    protocol_error(c, GP_EPROTO, h->request_id, "malformed %s message",
                   gp_msg_type_name(h->type));
    return;
  }
  gp__debug("%s: %s (request %u)", c->peer, gp_msg_type_name(h->type),
            h->request_id);
  switch (h->type) {
  case GP_MSG_BROKER_REGISTER:
    handle_register(c, h, (const void *)msg);
    break;
  case GP_MSG_BROKER_HEARTBEAT:
    handle_heartbeat(c, h, (const void *)msg);
    break;
  case GP_MSG_BROKER_SESSION_END:
    handle_session_end(c, h, (const void *)msg);
    break;
  case GP_MSG_BROKER_REQUEST_SESSION:
    handle_request(c, h, (const void *)msg);
    break;
  case GP_MSG_BROKER_STATUS:
    handle_status(c, h, (const void *)msg);
    break;
  default:
    handle_drain(c, h, (const void *)msg);
    break;
  }
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* The largest message a frame of |type| may carry: registrations and
 * heartbeats list GPUs and sessions; everything else is a few fields. */
static uint32_t brk_msg_limit(uint16_t type) {
  return type == GP_MSG_BROKER_REGISTER || type == GP_MSG_BROKER_HEARTBEAT
             ? BRK_MAX_MSG
             : BRK_MAX_SMALL_MSG;
}

/* Before the parser takes a frame's header (and allocates its message):
 * checks the message length against its type's limit and the broker's
 * memory. |data| holds |len| more bytes of the stream. Returns false
 * (the connection being ended) when the frame is refused. */
static bool check_header(struct brk_conn *c, const uint8_t *data,
                         size_t len) {
  struct gp_frame_parser *p = &c->parser;
  struct gp_frame_header h;
  uint8_t hb[GP_FRAME_HEADER_SIZE];
  size_t have;

  /* At a frame boundary, or within its header? */
  if (p->hlen == GP_FRAME_HEADER_SIZE &&
      p->body_len != (size_t)p->hdr.msg_len + p->hdr.payload_len)
    return true;
  have = p->hlen == GP_FRAME_HEADER_SIZE ? 0 : p->hlen;
  if (have + len < GP_FRAME_HEADER_SIZE)
    return true; /* the parser only buffers it */
  memcpy(hb, p->hbuf, have);
  memcpy(hb + have, data, GP_FRAME_HEADER_SIZE - have);
  if (gp_frame_header_decode(hb, &brk_limits, &h) != 0)
    return true; /* the parser reports it */
  if (h.msg_len > brk_msg_limit(h.type)) {
    protocol_error(c, GP_ETOOBIG, h.request_id, "bad frame: %s message of "
                   "%u bytes (at most %u)", gp_msg_type_name(h.type),
                   h.msg_len, brk_msg_limit(h.type));
    return false;
  }
  if (h.msg_len > BRK_BIG_FRAME) {
    if (c->d->held + h.msg_len > BRK_MAX_HELD) {
      protocol_error(c, GP_ENOMEM, h.request_id, "the broker holds %zu "
                     "bytes for its peers; no room for a %s of %u",
                     c->d->held, gp_msg_type_name(h.type), h.msg_len);
      return false;
    }
    c->rx_held = h.msg_len;
    c->d->held += h.msg_len;
  }
  return true;
}

/* Parses and handles what |data| holds, until it is used up, the
 * connection ends, or it is paused (the rest is kept in c->pending). */
static void conn_input(struct brk_conn *c, const uint8_t *data, size_t len) {
  size_t pos = 0, used;
  struct gp_frame f;
  int r;

  while (pos < len && !c->finishing) {
    if (c->paused) {
      /* Kept (appended: on TLS, the rest of what was read is decrypted
       * after the pause, and comes here too). */
      uint8_t *keep = c->d->held + (len - pos) > BRK_MAX_HELD
                          ? NULL
                          : realloc(c->pending, c->npending + len - pos);
      if (!keep) {
        gp__warn("%s: no room to keep %zu bytes of unread requests: "
                 "closing", c->peer, len - pos);
        conn_close(c);
        return;
      }
      memcpy(keep + c->npending, data + pos, len - pos);
      c->pending = keep;
      c->npending += len - pos;
      c->d->held += len - pos;
      return;
    }
    if (!check_header(c, data + pos, len - pos))
      return;
    r = gp_frame_feed(&c->parser, data + pos, len - pos, &used, &f);
    pos += used;
    if (r == 1) {
      handle_frame(c, &f);
      if (c->rx_held) {
        c->d->held -= c->rx_held;
        c->rx_held = 0;
      }
      /* A large frame's buffer is not kept for the next ones. */
      if (c->parser.body_cap > BRK_BIG_FRAME && !c->closing) {
        gp_frame_parser_free(&c->parser);
        gp_frame_parser_init(&c->parser, &brk_limits);
      }
    } else if (r < 0) {
      protocol_error(c, r, 0, "bad frame: %s", gp_strerror(r));
      break;
    } else {
      break;
    }
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Its replies drained: parses what was kept, then reads again. */
static void conn_resume(struct brk_conn *c) {
  uint8_t *data = c->pending;
  size_t len = c->npending;

  c->paused = false;
  c->pending = NULL;
  c->npending = 0;
  c->d->held -= len;
  if (data) {
    conn_input(c, data, len);
    free(data);
  }
  if (!c->paused && !c->finishing && !c->closing &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct brk_conn *c = h->data;

  *buf = uv_buf_init((char *)c->d->rbuf, sizeof(c->d->rbuf));
}

/* Notes the end of the connection's handshake (logs the peer's
 * certificate). */
static void tls_check_done(struct brk_conn *c) {
  char subject[256];

  if (c->tls_done || c->closing || !gp__uvtls_ready(&c->io))
    return;
  c->tls_done = true;
  gp_tls_mem_peer(c->io.tls, subject, sizeof(subject));
  gp__debug("%s: TLS handshake done; client certificate: %s%s", c->peer,
            subject, gp_tls_mem_peer_verified(c->io.tls) ? " (verified)" : "");
}

/* Plaintext from the TLS engine (or the socket, plain). */
static bool conn_plain(void *arg, const uint8_t *data, size_t len) {
  struct brk_conn *c = arg;

  tls_check_done(c);
  if (c->finishing)
    return false;
  conn_input(c, data, len);
  return !c->finishing;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct brk_conn *c = st->data;
  char why[300];
  int r;

  if (nread < 0) {
    if (nread != UV_EOF)
      gp__debug("%s: read: %s", c->peer, uv_strerror((int)nread));
    else if (!c->tls_done)
      gp__info("%s: closed the connection during the TLS handshake",
               c->peer);
    conn_close(c);
    return;
  }
  r = gp__uvtls_feed(&c->io, buf->base, (size_t)nread, conn_plain, c, why,
                     sizeof(why));
  tls_check_done(c);
  if (r == GP_ECLOSED) {
    conn_finish(c);
  } else if (r != 0) {
    gp__warn("%s: TLS %s failed: %s; closing", c->peer,
             c->tls_done ? "connection" : "handshake", why);
    conn_finish(c);
  }
}

/* At the connection cap: closes the connection that is not a server's
 * and has been idle longest (one being shut down first), so that a flood
 * of idle peers cannot keep servers out. Returns false if there is none
 * (every connection is a server's). */
static bool evict_one(struct brk_daemon *d, const struct brk_conn *except) {
  struct brk_conn *c, *best = NULL;

  for (c = d->conns; c; c = c->next) {
    if (c == except || c->closing || (c->server && c->server->conn == c))
      continue;
    if (!best || (c->finishing && !best->finishing) ||
        (c->finishing == best->finishing &&
         c->last_rx_ms <= best->last_rx_ms)) /* the list is newest first */
      best = c;
  }
  if (!best)
    return false;
  gp__warn("%u connections open (at most %u): closing the one from %s, idle "
           "%llu ms, for a new one", d->nopen, d->max_conns, best->peer,
           (unsigned long long)(uv_now(&d->loop) - best->last_rx_ms));
  conn_close(best);
  return true;
}

static void on_connection(uv_stream_t *listener, int status) {
  struct brk_daemon *d = listener->data;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  struct brk_conn *c;

  if (status < 0) {
    gp__warn("accept failed: %s", uv_strerror(status));
    return;
  }
  c = calloc(1, sizeof(*c));
  if (!c) {
    gp__error("accept: out of memory");
    return;
  }
  c->d = d;
  c->tls_done = d->ctx == NULL;
  gp__uvtls_init(&c->io, (uv_stream_t *)&c->tcp, NULL, conn_queued, c);
  snprintf(c->peer, sizeof(c->peer), "?");
  gp_frame_parser_init(&c->parser, &brk_limits);
  uv_tcp_init(&d->loop, &c->tcp);
  c->tcp.data = c;
  c->next = d->conns;
  if (d->conns)
    d->conns->prev = c;
  d->conns = c;
  d->nconns++;
  d->nopen++;
  c->last_rx_ms = c->accepted_ms = uv_now(&d->loop);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    gp__addr_to_string((const struct sockaddr *)&ss, c->peer, sizeof(c->peer));
  if (d->nopen > d->max_conns && !evict_one(d, c)) {
    gp__warn("connection from %s refused: %u connections open (at most %u), "
             "all servers'", c->peer, d->nopen - 1, d->max_conns);
    conn_close(c);
    return;
  }
  if (d->ctx) {
    char why[256];
    c->io.tls = gp_tls_mem_new(d->ctx, true, NULL, why, sizeof(why));
    if (!c->io.tls) {
      gp__error("%s: cannot start TLS: %s; closing", c->peer, why);
      conn_close(c);
      return;
    }
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, BRK_KEEPALIVE_S);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

/* ---- Timers and signals --------------------------------------------------------- */

static void log_down(struct brk_server *s, void *arg) {
  const struct brk_config *cfg = arg;

  gp__warn("server %s is down: no heartbeat for %u ms (%u sessions kept)",
           s->name, cfg->down_after_ms, s->nsessions);
}

static void log_expired(const struct brk_session *s, void *arg) {
  gp__info("session %016llx of %s on %s: grant expired unused; %llu MiB "
           "released", (unsigned long long)s->id, s->tenant, s->server->name,
           (unsigned long long)(s->memory_limit >> 20));
}

static void on_tick(uv_timer_t *t) {
  struct brk_daemon *d = t->data;
  uint64_t now = uv_now(&d->loop);
  struct brk_conn *c, *next;

  brk_pool_mark_down(&d->pool, now, d->cfg->down_after_ms, log_down,
                     (void *)d->cfg);
  /* A grant used just before its expiry is running on its server before
   * the next heartbeat says so: keep it until a heartbeat had the time to
   * come (down_after_ms, rounded up to seconds, and a second for the
   * rounding of the Unix clock). */
  brk_pool_expire(&d->pool, now_unix(),
                  (d->cfg->down_after_ms + 999) / 1000 + 1, log_expired,
                  NULL);
  for (c = d->conns; c; c = next) {
    bool is_server = c->server && c->server->conn == c;
    next = c->next;
    if (c->closing)
      continue;
    if (!c->tls_done && !c->finishing &&
        now - c->accepted_ms >= d->tls->handshake_ms) {
      gp__warn("%s: no TLS handshake within %u ms (--handshake-timeout): "
               "closing", c->peer, d->tls->handshake_ms);
      conn_close(c);
    } else if (c->finishing) {
      /* A peer that does not read what is left to send. */
      if (now - c->finish_ms >= BRK_FINISH_MS) {
        gp__debug("%s: not shut down after %u s: closing", c->peer,
                  BRK_FINISH_MS / 1000);
        conn_close(c);
      }
    } else if (!is_server && now - c->last_rx_ms >= BRK_CLIENT_IDLE_MS) {
      gp__debug("%s: no request for %u s: closing", c->peer,
                BRK_CLIENT_IDLE_MS / 1000);
      conn_finish(c); /* a close_notify (TLS), then the close */
    } else if (is_server && now - c->last_rx_ms >=
                                (uint64_t)BRK_SERVER_SILENT_FACTOR *
                                    d->cfg->down_after_ms) {
      gp__warn("server %s: no frame for %llu ms (%u x down_after_ms): "
               "closing its connection from %s", c->server->name,
               (unsigned long long)(now - c->last_rx_ms),
               BRK_SERVER_SILENT_FACTOR, c->peer);
      conn_finish(c);
    }
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  struct brk_daemon *d = h->data;
  struct brk_conn *c;

  if (d->stopping)
    return;
  d->stopping = true;
  gp__info("%s: stopping (%u servers, %u sessions)", strsignal(signum),
           d->pool.nservers, d->pool.nsessions);
  for (c = d->conns; c; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&d->listener, NULL);
  uv_close((uv_handle_t *)&d->tick, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sighup, NULL);
}

/* The TLS context from the files: NULL with |why| on a failure. */
static SSL_CTX *load_ctx(const struct brk_tls *tls, char *why,
                         size_t why_len) {
  struct gp_tls_pem pem;
  SSL_CTX *ctx;

  if (gp_tls_pem_load(&pem, tls->cert, tls->key, tls->ca, why, why_len) != 0)
    return NULL;
  ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_OPTIONAL, why, why_len);
  gp_tls_pem_free(&pem);
  return ctx;
}

/* SIGHUP: the certificate, key and CA again, for new connections; open
 * ones keep theirs. A failure keeps the old ones. */
static void on_hup(uv_signal_t *h, int signum) {
  struct brk_daemon *d = h->data;
  SSL_CTX *ctx;
  char why[512];

  (void)signum;
  if (!d->ctx) {
    gp__info("SIGHUP: --insecure: no TLS files to reload");
    return;
  }
  ctx = load_ctx(d->tls, why, sizeof(why));
  if (!ctx) {
    gp__error("SIGHUP: cannot reload the TLS files: %s; keeping the ones in "
              "use", why);
    return;
  }
  SSL_CTX_free(d->ctx);
  d->ctx = ctx;
  gp__info("SIGHUP: reloaded %s, %s and %s for new connections",
           d->tls->cert, d->tls->key, d->tls->ca);
}

/* ---- Start and stop ----------------------------------------------------------- */



static void close_any(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* BRK_MAX_CONNS connections need as many descriptors and a few more: the
 * soft limit on open files is raised to that (a default of 1024 is
 * common) within the hard limit; a hard limit below it lowers the cap, so
 * that accepting never fails for want of a descriptor. */
static uint32_t max_connections(void) {
  const rlim_t want = BRK_MAX_CONNS + 64;
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return BRK_MAX_CONNS;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    struct rlimit up = rl;
    up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
      rl.rlim_cur = up.rlim_cur;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
    return BRK_MAX_CONNS;
  gp__warn("open files are limited to %llu (ulimit -n): at most %llu "
           "connections, not %u", (unsigned long long)rl.rlim_cur,
           (unsigned long long)(rl.rlim_cur > 128 ? rl.rlim_cur - 64 : 64),
           BRK_MAX_CONNS);
  return rl.rlim_cur > 128 ? (uint32_t)(rl.rlim_cur - 64) : 64;
}

int brk_daemon_run(const struct brk_config *cfg, const struct brk_tls *tls,
                   const char *host, int port, const char *port_file) {
  struct brk_daemon *d;
  struct brk_tenant *tenants = NULL;
  char bound[BRK_PEER_MAX];
  uint64_t tick;
  uint32_t i;
  int bport = 0, r, status = BRK_EXIT_FAILURE;

  signal(SIGPIPE, SIG_IGN);
  d = calloc(1, sizeof(*d));
  if (cfg->ntenants)
    tenants = calloc(cfg->ntenants, sizeof(*tenants));
  if (!d || (cfg->ntenants && !tenants)) {
    gp__error("out of memory");
    free(d);
    free(tenants);
    return BRK_EXIT_FAILURE;
  }
  for (i = 0; i < cfg->ntenants; i++)
    tenants[i] = cfg->tenants[i].t;
  d->cfg = cfg;
  d->tls = tls;
  if (!tls->insecure) {
    char why[512];
    d->ctx = load_ctx(tls, why, sizeof(why));
    if (!d->ctx) {
      gp__error("TLS: %s", why);
      free(d);
      free(tenants);
      return BRK_EXIT_USAGE;
    }
  } else {
    gp__warn("WARNING: --insecure: plain TCP, no encryption, no server "
             "authentication");
  }
  d->max_conns = max_connections();
  r = brk_pool_init(&d->pool, tenants, cfg->ntenants, cfg->default_memory);
  free(tenants);
  if (r != 0 || uv_loop_init(&d->loop) != 0) {
    gp__error("cannot set up the pool or the event loop");
    brk_pool_free(&d->pool);
    SSL_CTX_free(d->ctx);
    free(d);
    return BRK_EXIT_FAILURE;
  }
  uv_tcp_init(&d->loop, &d->listener);
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  uv_signal_init(&d->loop, &d->sighup);
  uv_timer_init(&d->loop, &d->tick);
  d->listener.data = d->sigint.data = d->sigterm.data = d->tick.data = d;
  d->sighup.data = d;
  d->started_ms = uv_now(&d->loop);

  r = gp__listen_tcp(&d->listener, host, port, BRK_BACKLOG, on_connection,
                     bound, sizeof(bound), &bport);
  if (r != 0) {
    status = r == GP_EINVAL ? BRK_EXIT_USAGE : BRK_EXIT_FAILURE;
    goto out;
  }
  if (port_file && gp__write_port_file(port_file, bport) != 0) {
    gp__error("cannot write --port-file %s: %s", port_file, strerror(errno));
    goto out;
  }
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  uv_signal_start(&d->sighup, on_hup, SIGHUP);
  /* Often enough that a server goes down within a fifth of down_after_ms
   * of its deadline. */
  tick = cfg->down_after_ms / 5;
  if (d->ctx && tls->handshake_ms / 5 < tick)
    tick = tls->handshake_ms / 5; /* handshakes timed within a fifth */
  if (tick < 10)
    tick = 10;
  if (tick > 1000)
    tick = 1000;
  uv_timer_start(&d->tick, on_tick, tick, tick);
  gp__info("gpupool-broker %s listening on %s (%s; %u tenants%s; heartbeat "
           "%u ms, down after %u ms, grants valid %u s)", GP_VERSION_STRING,
           bound, d->ctx ? "TLS, servers with client certificates"
                         : "plain TCP",
           cfg->ntenants, cfg->has_admin ? ", an admin" : "",
           cfg->heartbeat_ms, cfg->down_after_ms, cfg->grant_ttl_s);
  uv_run(&d->loop, UV_RUN_DEFAULT);
  gp__info("stopped");
  status = BRK_EXIT_OK;

out:
  uv_walk(&d->loop, close_any, NULL);
  uv_run(&d->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&d->loop) != 0)
    gp__debug("event loop still busy at exit");
  brk_pool_free(&d->pool);
  SSL_CTX_free(d->ctx);
  free(d);
  return status;
}
