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

#include "broker.h"
#include "client.h"
#include "cuerrors.h"
#include "gp_config.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "tls.h"
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

/* With GPUPOOL_STATS=FILE, the connection's counters at exit, one "name
 * value" line each (docs/client.md, "Performance"): how benchmarks count
 * the round trips the library made. */
static void write_stats(struct gp__client *c) {
  const char *path = secure_getenv(GP_ENV_STATS);
  if (path == NULL || *path == '\0')
    return;
  FILE *f = fopen(path, "we");
  if (f == NULL)
    return;
  const struct gp_wire *w = &c->wire;
  fprintf(f, "round_trips %llu\nreplies %llu\nframes_sent %llu\n"
          "frames_received %llu\nbytes_sent %llu\nbytes_received %llu\n"
          "writes %llu\n",
          (unsigned long long)c->round_trips, (unsigned long long)c->replies,
          (unsigned long long)w->frames_sent,
          (unsigned long long)w->frames_received,
          (unsigned long long)w->bytes_sent,
          (unsigned long long)w->bytes_received,
          (unsigned long long)w->writes);
  fprintf(f, "poll_us %u\npoll_spins %llu\npoll_hits %llu\n",
          w->spin.max_us, (unsigned long long)w->spin.spins,
          (unsigned long long)w->spin.hits);
  fprintf(f, "compress %s\nzstd_chunks_sent %llu\nzstd_chunks_raw %llu\n"
          "zstd_bytes_in %llu\nzstd_bytes_out %llu\n"
          "zstd_chunks_received %llu\n",
          gp_z_mode_name(c->z.mode),
          (unsigned long long)c->z.chunks_compressed,
          (unsigned long long)c->z.chunks_raw,
          (unsigned long long)c->z.bytes_in,
          (unsigned long long)c->z.bytes_out,
          (unsigned long long)c->z.chunks_decompressed);
  fclose(f);
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
  if (atomic_load(&c->init) == GP__INIT_OK)
    write_stats(c);
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
  gp_z_free(&c->z);
  free(c->zbuf);
  c->zbuf = NULL;
  c->zcap = 0;
  pthread_mutex_unlock(&c->lock);
}

/* ---- Configuration ------------------------------------------------------------- */

/* Seconds from environment variable |name|, as milliseconds; |def_s| when
 * unset or not a positive number. */
static int env_ms(const char *name, int def_s) {
  const char *v = secure_getenv(name);
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

/* ---- Connecting ------------------------------------------------------------------ */

/* A whole number from environment variable |name| up to |max|; |def| when
 * unset or not such a number. */
static unsigned env_uint(const char *name, unsigned def, unsigned max) {
  const char *v = secure_getenv(name);
  if (v == NULL || *v == '\0')
    return def;
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || *v == '-' || n > max) {
    gp__log("%s=%s is not a number from 0 to %u; using %u", name, v, max,
            def);
    return def;
  }
  return (unsigned)n;
}

/* After the handshake: the busy-poll window (GPUPOOL_POLL_US) and
 * compression (GPUPOOL_COMPRESS, GPUPOOL_LINK_MBPS); docs/client.md,
 * "Performance". */
static void perf_setup(struct gp__client *c) {
  gp_wire_spin_setup(&c->wire, env_uint(GP_ENV_POLL_US, GP__DEFAULT_POLL_US,
                                        100000));
  c->z.mode = GP_Z_AUTO;
  const char *v = secure_getenv(GP_ENV_COMPRESS);
  if (v != NULL && *v != '\0' && gp_z_parse_mode(v, &c->z.mode) != 0) {
    gp__log("%s=%s is not auto, on or off; using auto", GP_ENV_COMPRESS, v);
    c->z.mode = GP_Z_AUTO;
  }
  if (!(c->features & GP_FEATURE_ZSTD))
    c->z.mode = GP_Z_OFF;
  c->z.link_mbps = env_uint(GP_ENV_LINK_MBPS, 0, 100000000);
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

/* True when the bytes read but not taken on |w| begin a TLS record (an
 * alert or a handshake, TLS 1.x): a plain client reading a TLS server. */
static bool tls_record_buffered(const struct gp_wire *w) {
  if (gp_wire_is_tls(w) || w->rbuf == NULL || w->rlen - w->rpos < 2)
    return false;
  const uint8_t *p = w->rbuf + w->rpos;
  return (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03;
}

/* Sends HELLO, with the broker's |grant| (|grant_len| 0: none) and its
 * proof made with |binding_priv| (NULL: none), and reads the HelloReply.
 * |insecure|: the connection is plain TCP by the client's choice (for the
 * hint when the server speaks TLS). Returns 0, or -1 with |why|. */
static int handshake(struct gp__client *c, const uint8_t *grant,
                     size_t grant_len, const uint8_t *binding_priv,
                     bool insecure, char *why, size_t why_len) {
  char hostname[256] = "";
  gethostname(hostname, sizeof(hostname) - 1);
  Gpupool__HelloRequest req = GPUPOOL__HELLO_REQUEST__INIT;
  req.min_version = GP_PROTOCOL_VERSION_MIN;
  req.max_version = GP_PROTOCOL_VERSION_MAX;
  req.client_name = (char *)"libcuda.so.1 " GP_VERSION_STRING;
  req.hostname = hostname;
  req.pid = (uint32_t)getpid();
  /* The broker's grant, passed on unread (docs/broker.md, "Grants"). */
  req.grant.data = (uint8_t *)grant;
  req.grant.len = grant_len;
  /* The grant bound to this connection (docs/security.md): signed over
   * the connection's TLS exporter, or 32 zero bytes on plain TCP. */
  uint8_t exporter[GP_GRANT_EXPORTER_LEN] = {0}, proof[GP_GRANT_PROOF_LEN];
  if (grant_len > 0 && binding_priv != NULL) {
    if (gp_wire_is_tls(&c->wire) &&
        gp_wire_tls_exporter(&c->wire, exporter) != 0) {
      snprintf(why, why_len, "cannot read the TLS exporter of %s", c->addr);
      return -1;
    }
    if (gp_grant_proof(binding_priv, exporter, grant, grant_len, proof) !=
        0) {
      snprintf(why, why_len, "cannot sign the grant's proof (out of memory)");
      return -1;
    }
    req.grant_proof.data = proof;
    req.grant_proof.len = sizeof(proof);
  }

  /* The handshake must not hang on a port that accepts and says nothing. */
  c->wire.timeout_ms = c->connect_timeout_ms;
  uint32_t id = c->next_request++;
  int rc = gp_wire_send(&c->wire, GP_MSG_HELLO, 0, id, &req.base, NULL, 0);
  struct gp_frame_header h;
  if (rc == 0)
    rc = gp_wire_recv_header(&c->wire, &h);
  /* A server whose HELLO takes a while (a relay opening its own session
   * behind it, over TLS) sends BUSY notices meanwhile: skipped, within
   * the connect timeout. */
  long long deadline = gp__mono_ms() + c->connect_timeout_ms;
  while (rc == 0 && h.type == GP_MSG_BUSY && !(h.flags & GP_FRAME_F_REPLY)) {
    rc = gp_wire_discard(&c->wire, (size_t)h.msg_len + h.payload_len);
    if (rc == 0 && gp__mono_ms() > deadline)
      rc = GP_ETIMEDOUT;
    if (rc == 0)
      rc = gp_wire_recv_header(&c->wire, &h);
  }
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
    if (insecure && tls_record_buffered(&c->wire))
      snprintf(why, why_len, "the server at %s answered in TLS: unset %s, or "
               "start the server with --insecure", c->addr, GP_ENV_INSECURE);
    else if (rc == GP_ECLOSED && insecure)
      snprintf(why, why_len, "%s closed the connection during the handshake "
               "(this client speaks plain TCP, %s: does the server run "
               "TLS?)", c->addr, GP_ENV_INSECURE);
    else if (rc == GP_ECLOSED)
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
  c->features = hr->features;
  c->driver_version = hr->driver_version > 0 ? hr->driver_version
                                             : CUDA_VERSION;
  snprintf(c->server_name, sizeof(c->server_name), "%s",
           hr->server_name ? hr->server_name : "");
  ret = 0;
out:
  protobuf_c_message_free_unpacked(m, NULL);
  return ret;
}

/* Where the session comes from: a broker's grant, or the server named
 * directly (docs/client.md, "The pool"). Fills c->host, c->port, c->addr
 * and, through a broker, |g|; |tls| gets the TLS settings
 * (docs/security.md). Returns 0; 1 when the broker refused (|why|
 * is the whole line to print); -1 with |why|. */
static int find_server(struct gp__client *c, struct gp__grant *g,
                       struct gp__tls_opts *tls, char *why, size_t why_len) {
  struct {
    struct gp__conf cf;
    struct gp__pool pool;
  } *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  int ret = -1;
  struct gp__hostport hp;
  if (gp__conf_load(&st->cf, why, why_len) < 0 ||
      gp__tls_opts_resolve(&st->cf, tls, why, why_len) < 0 ||
      gp__pool_resolve(&st->cf, NULL, NULL,
                       GP__RESOLVE_TOKEN | GP__RESOLVE_REQUEST, &st->pool, why, why_len) < 0)
    goto out;
  if (st->pool.broker[0] != '\0') {
    char host[256] = "", client[320];
    gethostname(host, sizeof(host) - 1);
    snprintf(client, sizeof(client), "%s pid %d", host, (int)getpid());
    ret = gp__broker_request_session(&st->pool, c->connect_timeout_ms, client,
                                     g, why, why_len);
    if (ret != 0)
      goto out;
    hp = g->server;
    if (gp__trace_on)
      gp__log("the broker %s granted session %016llx on server %s at %s",
              st->pool.broker, (unsigned long long)g->session_id,
              g->server_name, hp.addr);
  } else {
    if (st->pool.server[0] == '\0') {
      snprintf(why, why_len, "%s is not set: no pool server to use (run the "
               "program with `gpupool attach --server HOST -- ...`, or set %s "
               "or `broker` in the configuration file)", GP_ENV_SERVER,
               GP_ENV_BROKER);
      goto out;
    }
    if (gp__parse_hostport(st->pool.server, GP_DEFAULT_SERVER_PORT,
                           st->pool.server_from, &hp, why, why_len) < 0)
      goto out;
  }
  snprintf(c->host, sizeof(c->host), "%s", hp.host);
  c->port = hp.port;
  snprintf(c->addr, sizeof(c->addr), "%s", hp.addr);
  ret = 0;
out:
  /* The token is a secret: it does not outlive its use. */
  explicit_bzero(st, sizeof(*st));
  free(st);
  return ret;
}

CUresult gp__connect_locked(struct gp__client *c) {
  char why[768] = "";
  int found;
  struct gp__tls_opts tls;
  struct gp__grant *g = calloc(1, sizeof(*g));
  c->connect_timeout_ms = env_ms(GP_ENV_CONNECT_TIMEOUT, 10);
  c->io_timeout_ms = env_ms(GP_ENV_IO_TIMEOUT, 5);
  long ps = sysconf(_SC_PAGESIZE);
  c->page_size = ps > 0 ? (uint64_t)ps : 4096;
  if (g == NULL) {
    snprintf(why, sizeof(why), "out of memory");
    found = -1;
  } else {
    found = find_server(c, g, &tls, why, sizeof(why));
  }
  if (found != 0)
    goto fail;

  struct gp__hostport hp;
  snprintf(hp.host, sizeof(hp.host), "%s", c->host);
  hp.port = c->port;
  snprintf(hp.addr, sizeof(hp.addr), "%s", c->addr);
  if (gp__connect_wire(&hp, &tls, c->connect_timeout_ms, "server", &c->wire,
                       why, sizeof(why)) < 0)
    goto fail;
  c->wire_open = true;
  tune_socket(c, c->wire.fd);
  if (handshake(c, g->grant, g->grant_len, g->bound ? g->binding_priv : NULL,
                tls.insecure, why, sizeof(why)) < 0)
    goto fail;
  perf_setup(c);
  if (gp__primary_init_locked(c) < 0) {
    snprintf(why, sizeof(why), "out of memory");
    goto fail;
  }
  explicit_bzero(g, sizeof(*g)); /* the binding key is a secret */
  free(g);
  return CUDA_SUCCESS;

fail:
  if (g != NULL)
    explicit_bzero(g, sizeof(*g));
  free(g);
  if (c->wire_open) {
    gp_wire_free(&c->wire);
    c->wire_open = false;
  }
  free(c->devices);
  c->devices = NULL;
  c->ndevices = 0;
  /* A broker's refusal is the whole story: its message says why. */
  if (found == 1)
    gp__log("%s", why);
  else
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
      /* A send whose SO_SNDTIMEO ran out, or a read that waited. */
      snprintf(buf, sizeof(buf), c->wire_open && c->wire.write_timed_out
                                     ? "the server took nothing for %.1f s"
                                     : "no answer for %.1f s",
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

static int left_word(struct gp__client *c);

CUresult gp__send_locked(struct gp__client *c, uint16_t type,
                         const ProtobufCMessage *msg, const void *payload,
                         size_t payload_len, bool noreply,
                         uint32_t *request_id) {
  return gp__send_flags_locked(c, type, msg, payload, payload_len, noreply, 0,
                               request_id);
}

uint8_t *gp__zbuf_locked(struct gp__client *c, size_t n) {
  if (c->zcap < n) {
    uint8_t *p = realloc(c->zbuf, n);
    if (p == NULL)
      return NULL;
    c->zbuf = p;
    c->zcap = n;
  }
  return c->zbuf;
}

CUresult gp__send_flags_locked(struct gp__client *c, uint16_t type,
                               const ProtobufCMessage *msg,
                               const void *payload, size_t payload_len,
                               bool noreply, uint16_t flags,
                               uint32_t *request_id) {
  if (atomic_load(&c->dead) || !c->wire_open)
    return CUDA_ERROR_DEVICE_UNAVAILABLE;
  uint32_t id = c->next_request++;
  int rc = gp_wire_send(&c->wire, type,
                        (uint16_t)((noreply ? GP_FRAME_F_NOREPLY : 0) | flags),
                        id, msg, payload, payload_len);
  /* Only fatal codes leave the stream in an unknown state; a message that
   * could not be allocated was not sent at all. */
  if (rc == GP_ENOMEM)
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (rc < 0) {
    int saved_errno = errno;
    int r = left_word(c);
    if (r >= 0)
      return (CUresult)r;
    errno = saved_errno;
    return gp__lost_locked(c, rc, gp_msg_type_name(type));
  }
  if (request_id != NULL)
    *request_id = id;
  return CUDA_SUCCESS;
}

/* Reads the server's ProtocolError after header |h|, reports it in one
 * line and ends the connection. A session the server reclaimed for being
 * idle (GP_EIDLE, docs/broker.md "Idle sessions") is no fault of either
 * end: the server's own message is the one line. Returns
 * CUDA_ERROR_DEVICE_UNAVAILABLE, or CUDA_ERROR_LAUNCH_TIMEOUT when a
 * kernel ran over the server's --kernel-timeout (GP_EKTIMEOUT). */
static CUresult protocol_error(struct gp__client *c,
                               const struct gp_frame_header *h) {
  ProtobufCMessage *m = NULL;
  int code = GP_EPROTO;
  if (gp_wire_recv_msg(&c->wire, h, &m) == 0) {
    const Gpupool__ProtocolError *pe = (const Gpupool__ProtocolError *)m;
    const char *msg = pe->message && *pe->message ? pe->message
                                                   : gp_strerror(pe->code);
    code = pe->code;
    if (!atomic_load(&c->dead)) {
      if (code == GP_EIDLE || code == GP_EKTIMEOUT)
        gp__log("the server at %s ended the session: %s", c->addr, msg);
      else
        gp__log("the server at %s reported a protocol error: %s", c->addr,
                msg);
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
  if (code == GP_EKTIMEOUT) {
    /* A kernel ran over the server's --kernel-timeout (docs/security.md):
     * the pending call returns what a GPU's watchdog gives, the session
     * is over, and the line above was the one message. */
    if (!atomic_exchange(&c->dead, true) && c->wire_open) {
      gp_wire_free(&c->wire);
      c->wire_open = false;
    }
    return CUDA_ERROR_LAUNCH_TIMEOUT;
  }
  if (code == GP_EIDLE && !atomic_exchange(&c->dead, true) && c->wire_open) {
    gp_wire_free(&c->wire);
    c->wire_open = false;
  }
  return gp__lost_locked(c, GP_EPROTO, NULL);
}

/* After a failed send: a server that ended the session (an idle one, say)
 * sent its ProtocolError before it closed, and it may be waiting unread
 * under the reset that failed the send. Reads it if it is there (for at
 * most 100 ms) and returns protocol_error()'s answer; returns -1 when
 * there is none, and the failure is the send's. */
static int left_word(struct gp__client *c) {
  if (!c->wire_open || atomic_load(&c->dead))
    return -1;
  /* The send failed, so the stream's write side is unusable; its read side
   * may still hold whole frames. Nothing will be written again. */
  c->wire.error = 0;
  c->wire.wlen = 0;
  if (!gp_wire_readable(&c->wire))
    return -1;
  c->wire.timeout_ms = 100;
  struct gp_frame_header h;
  int rc = gp_wire_recv_header(&c->wire, &h);
  c->wire.timeout_ms = c->io_timeout_ms;
  if (rc != 0 || h.type != GP_MSG_PROTOCOL_ERROR)
    return -1;
  return (int)protocol_error(c, &h);
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
  /* A round trip: waiting for a reply with requests sent since the last
   * wait (a run of pipelined replies read one after the other is one). */
  if (got == NULL && c->wire.frames_sent != c->rt_mark) {
    c->round_trips++;
    c->rt_mark = c->wire.frames_sent;
  }
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

  c->replies++;
  if ((h.flags & GP_FRAME_F_ZSTD) &&
      (payload == NULL || result != 0 || type != GP_MSG_MEMCPY_DTOH ||
       c->z.mode == GP_Z_OFF)) {
    /* Compressed where we did not allow it. */
    protobuf_c_message_free_unpacked(m, NULL);
    return gp__lost_locked(c, GP_EPROTO, what);
  }
  if (payload != NULL && result == 0 && (h.flags & GP_FRAME_F_ZSTD)) {
    /* The compressed bytes, then their content straight into |payload|,
     * which must be exactly filled. */
    uint8_t *zb = h.payload_len <= gp_z_bound(payload_len)
                      ? gp__zbuf_locked(c, h.payload_len) : NULL;
    if (zb == NULL) {
      protobuf_c_message_free_unpacked(m, NULL);
      return gp__lost_locked(c, GP_EPROTO, what);
    }
    rc = gp_wire_recv_payload(&c->wire, zb, h.payload_len);
    if (rc == 0 &&
        gp_z_decompress(&c->z, payload, payload_len, zb, h.payload_len) != 0)
      rc = GP_EPROTO;
  } else if (payload != NULL && result == 0) {
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
