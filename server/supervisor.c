/* The supervisor: a libuv loop that accepts TCP connections and hands each
 * one to a fresh worker process (this binary, run again with --worker),
 * which gets the socket as its fd 3. The supervisor never opens a backend
 * or reads a byte of a session (it only peeks whether the first has come):
 * a worker that crashes or leaks takes only its own session with it.
 *
 * It keeps a list of its workers, logs each session's start and end,
 * holds a connection without a process until its first bytes arrive,
 * refuses connections beyond --max-sessions, --max-pending and
 * --max-conns-per-address, and on SIGINT or SIGTERM stops
 * listening, sends SIGTERM to every worker (SIGKILL to those still alive
 * after GP_SUPERVISOR_GRACE_MS) and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <strings.h>
#include <time.h>

#include "backend/emu/shared.h"
#include "broker_link.h"
#include "disk_cache.h"
#include "gp_config.h"
#include "gpupool/errors.h"
#include "pool.h"
#include "server.h"
#include "tls.h"
#include "zchunk.h"

extern char **environ;

#define GP_SUPERVISOR_BACKLOG 128
#define GP_SUPERVISOR_GRACE_MS 5000
#define GP_PEER_MAX 64
/* Session ids of admitted grants remembered at most (until their grant
 * expires): a claim beyond it is refused. */
#define GP_CLAIMS_MAX 65536

struct gp_supervisor;

/* Buckets of the table of connections per address. */
#define GP_ADDR_BUCKETS 1024
/* Refusals for --max-conns-per-address and --max-pending are logged at
 * most once per this many ms each, with a count of those not logged. */
#define GP_REFUSAL_LOG_MS 1000

/* An IP address (IPv4 as its IPv4-mapped IPv6 form) and how many of its
 * connections are open: waiting for their first bytes or in session. */
struct gp_addr {
  uint8_t ip[16];
  unsigned conns;
  struct gp_addr *next;
};

/* A connection accepted and not yet handed to a worker: the supervisor
 * waits for its first bytes (docs/server.md, "The accept path"). Freed
 * when its handles are closed. */
struct gp_pending {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct gp_supervisor *sv;
  struct gp_addr *addr;         /* counted there until closed or handed on */
  char peer[GP_PEER_MAX];
  int handles;
  struct gp_pending *prev, *next;
};

/* One running worker. Freed from its process handle's close callback. */
struct gp_session {
  uv_process_t proc;
  struct gp_supervisor *sv;
  uint64_t seq;                 /* 1, 2, ... in accept order */
  char peer[GP_PEER_MAX];
  uint64_t started_ms;
  int device;                   /* index in sv->inv, -1: none chosen */
  struct gp_session *prev, *next;
  /* The worker's report socket (pool.h). */
  uv_pipe_t report;
  bool report_open;             /* |report| was initialised */
  bool report_bad;              /* it broke the format: ignored from then */
  char rbuf[GP_REPORT_LINE_MAX];
  size_t rlen;
  int handles;                  /* open handles; freed at 0 */
  struct gp_addr *addr;         /* its address's count, NULL: none */
  bool admitted;                /* under a grant: |ps| holds it */
  uint64_t claimed;             /* the session id its claim took, 0: none */
  struct gp_pool_session ps;
};

/* A session id taken by a grant, until the grant expires. */
struct gp_claim {
  uint64_t id;
  uint64_t expires_unix;
};

struct gp_supervisor {
  const struct gp_server_config *cfg;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  uv_timer_t grace;
  struct gp_session *sessions;
  unsigned nsessions;
  uint64_t next_seq;
  bool stopping;
  /* The devices (devices.h); per_device: sessions are given one each. */
  struct gp_inventory inv;
  bool per_device;
  /* The worker's command line. */
  char memory_arg[32], pid_arg[32], idle_arg[16], cache_size_arg[32];
  char send_timeout_arg[16], kernel_timeout_arg[16], handshake_arg[16];
  char poll_arg[16];
  /* The image cache (disk_cache.h): its directory, NULL: none; private:
   * made at start, removed at exit. */
  char cache_dir[4096];
  const char *cache;
  bool cache_private;
  char *offer_arg;
  char *worker_argv[48];
  /* The pool (docs/broker.md). */
  struct gp_claim *claims;
  size_t nclaims;
  struct gp_broker_link *link;  /* NULL: no --broker */
  /* The accept path's limits (docs/security.md). */
  struct gp_addr *addrs[GP_ADDR_BUCKETS];
  uint64_t addr_seed;
  struct gp_pending *pending;   /* waiting for their first bytes */
  unsigned npending;
  uint64_t refused_addr_logged_ms, refused_pending_logged_ms;
  unsigned refused_addr_quiet, refused_pending_quiet;
  /* --emu-shared-memory: the device memory's fd (passed to each worker)
   * and its header (to free a dead worker's blocks); -1 / NULL: none. */
  int emu_shm_fd;
  struct emu_shared *emu_shm;
  /* TLS (docs/security.md): the PEM material read from --tls-cert,
   * --tls-key and --tls-ca at start and at each SIGHUP, and the sealed
   * memfd holding it that every new worker gets as GP_WORKER_TLS_FD
   * (-1 with --insecure). */
  struct gp_tls_pem tls;
  int tls_fd;
  uv_signal_t sighup;
};


/* ---- Connections per address ------------------------------------------------ */

/* |sa|'s IP address as 16 bytes; false for another family. */
static bool addr_key(const struct sockaddr *sa, uint8_t ip[16]) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    memset(ip, 0, 10);
    ip[10] = ip[11] = 0xff;
    memcpy(ip + 12, &in->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return true;
  }
  return false;
}

static size_t addr_bucket(const struct gp_supervisor *sv,
                          const uint8_t ip[16]) {
  /* FNV-1a over a per-run seed and the address: a peer cannot pick
   * addresses that all land in one bucket without knowing the seed. */
  uint64_t h = 0xcbf29ce484222325ull ^ sv->addr_seed;
  int i;

  for (i = 0; i < 16; i++) {
    h ^= ip[i];
    h *= 0x100000001b3ull;
  }
  return (size_t)(h ^ (h >> 32)) % GP_ADDR_BUCKETS;
}

/* The entry of |ip|, made with a count of 0 when |make|; NULL when there
 * is none (or no memory). */
static struct gp_addr *addr_find(struct gp_supervisor *sv,
                                 const uint8_t ip[16], bool make) {
  size_t b = addr_bucket(sv, ip);
  struct gp_addr *a;

  for (a = sv->addrs[b]; a; a = a->next)
    if (memcmp(a->ip, ip, 16) == 0)
      return a;
  if (!make || !(a = calloc(1, sizeof(*a))))
    return NULL;
  memcpy(a->ip, ip, 16);
  a->next = sv->addrs[b];
  sv->addrs[b] = a;
  return a;
}

/* One connection of |a| has ended; the entry goes at 0. */
static void addr_release(struct gp_supervisor *sv, struct gp_addr *a) {
  struct gp_addr **pp;

  if (!a || --a->conns > 0)
    return;
  for (pp = &sv->addrs[addr_bucket(sv, a->ip)]; *pp; pp = &(*pp)->next)
    if (*pp == a) {
      *pp = a->next;
      free(a);
      return;
    }
}

/* Logs a refusal at most once per GP_REFUSAL_LOG_MS, counting the quiet
 * ones: a flood must not flood the log. */
__attribute__((format(printf, 4, 5)))
static void log_refusal(struct gp_supervisor *sv, uint64_t *last,
                        unsigned *quiet, const char *fmt, ...) {
  uint64_t now = uv_now(&sv->loop);
  char msg[256];
  va_list ap;

  if (*last != 0 && now - *last < GP_REFUSAL_LOG_MS) {
    (*quiet)++;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (*quiet)
    gp__warn("%s (and %u more refused since the last such line)", msg,
             *quiet);
  else
    gp__warn("%s", msg);
  *last = now;
  *quiet = 0;
}

static void session_closed(uv_handle_t *h) {
  struct gp_session *s = h->data;

  if (--s->handles == 0)
    free(s);
}

/* ---- Worker reports (pool.h) ------------------------------------------------ */

/* Answers a claim: "ok" when |id| is new on this server (it is then taken
 * until |expires|), "used" when it was admitted before, "full" when no
 * more can be remembered. */
static const char *take_claim(struct gp_supervisor *sv, uint64_t id,
                              uint64_t expires) {
  uint64_t now = (uint64_t)time(NULL);
  size_t i, keep = 0;

  /* Expired ids cannot come back: their grants no longer verify. */
  for (i = 0; i < sv->nclaims; i++)
    if (sv->claims[i].expires_unix > now)
      sv->claims[keep++] = sv->claims[i];
  sv->nclaims = keep;
  for (i = 0; i < sv->nclaims; i++)
    if (sv->claims[i].id == id)
      return "used";
  if (!sv->claims) {
    sv->claims = calloc(GP_CLAIMS_MAX, sizeof(*sv->claims));
    if (!sv->claims) {
      gp__warn("out of memory for the table of claimed session ids: "
               "grants are refused");
      return "full";
    }
  }
  if (sv->nclaims == GP_CLAIMS_MAX) {
    gp__warn("%d unexpired grants claimed already: the table is full, "
             "grants are refused until some expire", GP_CLAIMS_MAX);
    return "full";
  }
  sv->claims[sv->nclaims].id = id;
  sv->claims[sv->nclaims].expires_unix = expires;
  sv->nclaims++;
  return "ok";
}

static int device_by_uuid(const struct gp_supervisor *sv, const char *uuid) {
  int i;

  for (i = 0; i < sv->inv.noffer; i++)
    if (strcasecmp(sv->inv.d[sv->inv.offer[i]].uuid_str, uuid) == 0)
      return sv->inv.offer[i];
  return -1;
}

/* One line from session |s|'s worker. */
static void take_report(struct gp_session *s, const char *line) {
  struct gp_supervisor *sv = s->sv;
  struct gp_report r;

  if (gp__report_parse(line, &r) != 0) {
    gp__warn("session #%llu from %s: worker %d wrote a malformed report; "
             "its reports are ignored from now on",
             (unsigned long long)s->seq, s->peer, s->proc.pid);
    s->report_bad = true;
    return;
  }
  switch (r.kind) {
  case GP_REPORT_CLAIM: {
    /* One claim per session: a worker that claimed already is told
     * "used". */
    const char *answer = s->admitted || s->claimed
                             ? "used"
                             : take_claim(sv, r.session_id, r.expires_unix);
    char out[8];
    uv_buf_t b;
    int n = snprintf(out, sizeof(out), "%s\n", answer);
    if (strcmp(answer, "ok") == 0)
      s->claimed = r.session_id;
    b = uv_buf_init(out, (unsigned)n);
    /* The worker waits for this line and nothing else is written here:
     * the socket's buffer has room. */
    if (uv_try_write((uv_stream_t *)&s->report, &b, 1) != n)
      gp__warn("session #%llu: cannot answer the worker's claim",
               (unsigned long long)s->seq);
    break;
  }
  case GP_REPORT_ADMITTED:
    if (s->admitted)
      break; /* once per session */
    if (r.session_id != s->claimed) {
      /* Only the session its claim took: anything else would list a
       * session in the broker's view that no grant admitted here. */
      gp__warn("session #%llu from %s: worker %d reported admitting "
               "%016llx, which it did not claim; ignored",
               (unsigned long long)s->seq, s->peer, s->proc.pid,
               (unsigned long long)r.session_id);
      break;
    }
    s->admitted = true;
    s->ps.session_id = r.session_id;
    memcpy(s->ps.tenant, r.tenant, sizeof(s->ps.tenant));
    memcpy(s->ps.gpu_uuid, r.gpu_uuid, sizeof(s->ps.gpu_uuid));
    s->ps.memory_limit = r.limit;
    s->ps.expires_unix = r.expires_unix;
    if (s->device < 0) {
      s->device = device_by_uuid(sv, r.gpu_uuid);
      if (s->device >= 0)
        sv->inv.d[s->device].sessions++;
    }
    gp__info("session #%llu from %s: admitted as %016llx for tenant %s on "
             "%s", (unsigned long long)s->seq, s->peer,
             (unsigned long long)r.session_id, r.tenant, r.gpu_uuid);
    break;
  case GP_REPORT_USED:
    s->ps.memory_used = r.used;
    s->ps.idle_ms = r.idle_ms;
    break;
  }
}

/* Splits what arrived into lines. */
static void take_bytes(struct gp_session *s, const char *p, size_t n) {
  while (n > 0 && !s->report_bad) {
    size_t room = sizeof(s->rbuf) - s->rlen;
    size_t take = n < room ? n : room;
    char *nl;

    memcpy(s->rbuf + s->rlen, p, take);
    s->rlen += take;
    p += take;
    n -= take;
    while (!s->report_bad &&
           (nl = memchr(s->rbuf, '\n', s->rlen)) != NULL) {
      size_t len = (size_t)(nl - s->rbuf);
      *nl = '\0';
      take_report(s, s->rbuf);
      s->rlen -= len + 1;
      memmove(s->rbuf, nl + 1, s->rlen);
    }
    if (s->rlen == sizeof(s->rbuf) && !s->report_bad) {
      gp__warn("session #%llu: worker %d wrote a report line over %d bytes; "
               "its reports are ignored from now on",
               (unsigned long long)s->seq, s->proc.pid, GP_REPORT_LINE_MAX);
      s->report_bad = true;
    }
  }
}

static void on_report_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  static char scratch[4096]; /* the loop's thread only */

  (void)h;
  (void)size;
  *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_report(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct gp_session *s = st->data;

  if (n > 0)
    take_bytes(s, buf->base, (size_t)n);
  if (n < 0 || s->report_bad)
    uv_read_stop(st);
}

/* What the worker wrote just before it exited (its exit may be seen
 * before its last lines). */
static void drain_report(struct gp_session *s) {
  uv_os_fd_t fd;
  char buf[4096];
  ssize_t n;

  if (!s->report_open || s->report_bad ||
      uv_fileno((uv_handle_t *)&s->report, &fd) != 0)
    return;
  while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0 &&
         !s->report_bad)
    take_bytes(s, buf, (size_t)n);
}

/* The broker's word for how a session ended, from its worker's exit. */
static const char *end_reason(int64_t status, int sig) {
  if (sig != 0)
    return "crashed";
  switch (status) {
  case GP_EXIT_OK:
  case GP_EXIT_PROTOCOL:
  case GP_EXIT_CONN_LOST:
    return "ended";
  case GP_EXIT_IDLE:
    return "idle";
  case GP_EXIT_KERNEL_TIMEOUT:
    return "kernel-timeout";
  case GP_EXIT_SEND_TIMEOUT:
    return "send-timeout";
  default:
    return "crashed";
  }
}

/* The running sessions under grants, for the broker link. */
static size_t list_sessions(void *arg, struct gp_pool_session *out,
                            size_t max) {
  struct gp_supervisor *sv = arg;
  struct gp_session *s;
  size_t n = 0;

  for (s = sv->sessions; s && n < max; s = s->next)
    if (s->admitted)
      out[n++] = s->ps;
  return n;
}

static void maybe_finish(struct gp_supervisor *sv) {
  if (!sv->stopping || sv->nsessions > 0)
    return;
  gp__broker_link_stop(sv->link);
  /* Closing the last handles lets uv_run() return. */
  if (!uv_is_closing((uv_handle_t *)&sv->sigint))
    uv_close((uv_handle_t *)&sv->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&sv->sigterm))
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
  if (!uv_is_closing((uv_handle_t *)&sv->grace))
    uv_close((uv_handle_t *)&sv->grace, NULL);
  if (!uv_is_closing((uv_handle_t *)&sv->sighup))
    uv_close((uv_handle_t *)&sv->sighup, NULL);
}

static void on_worker_exit(uv_process_t *proc, int64_t status, int sig) {
  struct gp_session *s = proc->data;
  struct gp_supervisor *sv = s->sv;
  double secs = (double)(uv_now(&sv->loop) - s->started_ms) / 1000.0;

  drain_report(s);
  if (s->admitted)
    gp__broker_link_session_end(sv->link, s->ps.session_id,
                                end_reason(status, sig));
  addr_release(sv, s->addr);
  s->addr = NULL;
  if (sv->emu_shm) {
    /* A worker that ended normally gave its blocks back (after its
     * --scrub); these are a crashed or killed one's: free again, zeroed
     * with --scrub, their contents left as they are without (as on a
     * GPU). */
    uint64_t freed = emu_shared_reap(sv->emu_shm, proc->pid,
                                     sv->cfg->scrub ? sv->emu_shm_fd : -1);
    if (freed)
      gp__info("session #%llu: %llu bytes of shared device memory its "
               "worker held freed%s", (unsigned long long)s->seq,
               (unsigned long long)freed, sv->cfg->scrub ? " and zeroed" : "");
  }
  if (s->report_open)
    uv_close((uv_handle_t *)&s->report, session_closed);

  if (sig != 0)
    gp__warn("session #%llu from %s: worker %d killed by signal %d (%s) "
             "after %.1f s", (unsigned long long)s->seq, s->peer, proc->pid,
             sig, strsignal(sig), secs);
  else
    gp__log(status == GP_EXIT_OK ? GP_LOG_INFO : GP_LOG_WARN,
            "session #%llu from %s: worker %d exited with status %lld (%s) "
            "after %.1f s", (unsigned long long)s->seq, s->peer, proc->pid,
            (long long)status, gp__exit_name((int)status), secs);

  if (s->prev)
    s->prev->next = s->next;
  else
    sv->sessions = s->next;
  if (s->next)
    s->next->prev = s->prev;
  sv->nsessions--;
  if (s->device >= 0)
    sv->inv.d[s->device].sessions--;
  proc->data = s;
  uv_close((uv_handle_t *)proc, session_closed);
  maybe_finish(sv);
}

/* Starts a worker for |conn|. Returns 0, or -1 when none could start (the
 * caller closes the connection). On success the session takes over the
 * count of address |addr|. */
static int spawn_worker(struct gp_supervisor *sv, uv_tcp_t *conn,
                        const char *peer, struct gp_addr *addr) {
  struct gp_session *s;
  uv_process_options_t opt;
  uv_stdio_container_t stdio[GP_WORKER_EMU_SHM_FD + 1];
  int nstdio = GP_WORKER_TLS_FD + 1;
  char **env = NULL;
  char what[GP_UUID_STR_LEN + 32] = "";
  int r;

  s = calloc(1, sizeof(*s));
  if (!s) {
    gp__error("session from %s refused: out of memory", peer);
    return -1;
  }
  s->sv = sv;
  s->seq = ++sv->next_seq;
  snprintf(s->peer, sizeof(s->peer), "%s", peer);
  s->started_ms = uv_now(&sv->loop);
  s->device = -1;
  /* With grants, the grant names the device (the worker sets
   * CUDA_VISIBLE_DEVICES itself); it is counted once admitted. */
  if (sv->per_device && !sv->cfg->grant_key_file) {
    /* The worker's driver sees exactly this device: CUDA_VISIBLE_DEVICES
     * is read when it initialises, before the session's first call. */
    s->device = gp__inventory_pick(&sv->inv);
    env = gp__env_with(environ, "CUDA_VISIBLE_DEVICES",
                       sv->inv.d[s->device].uuid_str);
    if (!env) {
      gp__error("session #%llu from %s refused: out of memory",
                (unsigned long long)s->seq, peer);
      free(s);
      return -1;
    }
    snprintf(what, sizeof(what), " on %s", sv->inv.d[s->device].uuid_str);
  }

  memset(&opt, 0, sizeof(opt));
  memset(stdio, 0, sizeof(stdio));
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = STDOUT_FILENO;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = STDERR_FILENO;
  stdio[GP_WORKER_FD].flags = UV_INHERIT_STREAM;
  stdio[GP_WORKER_FD].data.stream = (uv_stream_t *)conn;
  /* The report socket: libuv makes a socketpair, both ways. */
  uv_pipe_init(&sv->loop, &s->report, 0);
  s->report.data = s;
  s->report_open = true;
  s->handles = 1;
  stdio[GP_WORKER_REPORT_FD].flags =
      UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
  stdio[GP_WORKER_REPORT_FD].data.stream = (uv_stream_t *)&s->report;
  /* The TLS material as it is now: a SIGHUP after this spawn does not
   * change this session's. */
  if (sv->tls_fd >= 0) {
    stdio[GP_WORKER_TLS_FD].flags = UV_INHERIT_FD;
    stdio[GP_WORKER_TLS_FD].data.fd = sv->tls_fd;
  } else {
    stdio[GP_WORKER_TLS_FD].flags = UV_IGNORE;
  }
  if (sv->emu_shm_fd >= 0) {
    stdio[GP_WORKER_EMU_SHM_FD].flags = UV_INHERIT_FD;
    stdio[GP_WORKER_EMU_SHM_FD].data.fd = sv->emu_shm_fd;
    nstdio = GP_WORKER_EMU_SHM_FD + 1;
  }
  /* The kernel's link to our own executable: the worker is exactly this
   * binary, even if the file on disk was replaced since we started. */
  opt.file = "/proc/self/exe";
  opt.args = sv->worker_argv;
  opt.stdio = stdio;
  opt.stdio_count = nstdio;
  opt.exit_cb = on_worker_exit;
  opt.env = env; /* NULL: the supervisor's own */

  s->proc.data = s;
  r = uv_spawn(&sv->loop, &s->proc, &opt);
  gp__env_free(env);
  if (r != 0) {
    gp__error("session #%llu from %s refused: cannot start a worker: %s",
              (unsigned long long)s->seq, peer, uv_strerror(r));
    /* uv_spawn() initialised the handle; it must still be closed. */
    s->handles++;
    uv_close((uv_handle_t *)&s->report, session_closed);
    uv_close((uv_handle_t *)&s->proc, session_closed);
    return -1;
  }
  s->handles++;
  s->addr = addr;
  uv_read_start((uv_stream_t *)&s->report, on_report_alloc, on_report);
  s->next = sv->sessions;
  if (sv->sessions)
    sv->sessions->prev = s;
  sv->sessions = s;
  sv->nsessions++;
  if (s->device >= 0)
    sv->inv.d[s->device].sessions++;
  gp__info("session #%llu from %s: worker %d started%s (%u running)",
           (unsigned long long)s->seq, peer, s->proc.pid, what,
           sv->nsessions);
  return 0;
}

/* ---- The accept path --------------------------------------------------------- */

static void pending_closed(uv_handle_t *h) {
  struct gp_pending *p = h->data;

  if (--p->handles == 0)
    free(p);
}

/* Closes pending connection |p|: the socket (unless a worker has its own
 * copy, |handed|), its timer, its address count unless handed on. */
static void pending_end(struct gp_pending *p, bool handed) {
  struct gp_supervisor *sv = p->sv;

  if (p->prev)
    p->prev->next = p->next;
  else
    sv->pending = p->next;
  if (p->next)
    p->next->prev = p->prev;
  sv->npending--;
  if (!handed)
    addr_release(sv, p->addr);
  p->addr = NULL;
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->tcp, pending_closed);
  uv_close((uv_handle_t *)&p->timer, pending_closed);
}

/* A zero-length buffer: libuv then reports a readable socket as
 * UV_ENOBUFS without reading from it, so the worker gets every byte. */
static void on_pending_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  (void)size;
  *buf = uv_buf_init(NULL, 0);
}

static void on_pending_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct gp_pending *p = st->data;
  struct gp_supervisor *sv = p->sv;

  (void)buf;
  if (n == 0)
    return; /* nothing yet */
  if (n == UV_ENOBUFS) {
    /* Readable: a byte, or only the end of the stream (a peer that
     * connects and closes must not cost a process either). A peek tells
     * them apart without taking anything from the worker. */
    uv_os_fd_t fd;
    char c;
    ssize_t got = -1;
    if (uv_fileno((uv_handle_t *)st, &fd) == 0)
      got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                    errno == EINTR))
      return; /* nothing after all: wait on */
    if (got == 0)
      n = UV_EOF;
    else if (got < 0)
      n = uv_translate_sys_error(errno);
  }
  uv_read_stop(st);
  if (n != UV_ENOBUFS) {
    /* The peer closed or reset before sending anything. */
    gp__debug("connection from %s closed before its first bytes: %s",
              p->peer, uv_strerror((int)n));
    pending_end(p, false);
    return;
  }
  if (sv->stopping) {
    gp__info("connection from %s closed: shutting down", p->peer);
    pending_end(p, false);
    return;
  }
  if (sv->nsessions >= sv->cfg->max_sessions) {
    gp__warn("connection from %s refused: %u sessions running "
             "(--max-sessions %u)", p->peer, sv->nsessions,
             sv->cfg->max_sessions);
    pending_end(p, false);
    return;
  }
  /* The worker has its own copy of the socket (or there is none): ours is
   * closed either way. */
  pending_end(p, spawn_worker(sv, &p->tcp, p->peer, p->addr) == 0);
}

static void on_pending_timeout(uv_timer_t *t) {
  struct gp_pending *p = t->data;

  gp__info("connection from %s closed: nothing received within %u ms "
           "(--handshake-timeout)", p->peer, p->sv->cfg->handshake_timeout_ms);
  uv_read_stop((uv_stream_t *)&p->tcp);
  pending_end(p, false);
}

static void on_connection(uv_stream_t *server, int status) {
  struct gp_supervisor *sv = server->data;
  const struct gp_server_config *cfg = sv->cfg;
  struct sockaddr_storage ss;
  char peer[GP_PEER_MAX] = "?";
  int len = sizeof(ss), r;
  struct gp_pending *p;
  struct gp_addr *a = NULL;
  uint8_t ip[16];

  if (status < 0) {
    gp__warn("accept failed: %s", uv_strerror(status));
    return;
  }
  p = calloc(1, sizeof(*p));
  if (!p) {
    gp__error("accept: out of memory");
    return;
  }
  p->sv = sv;
  uv_tcp_init(&sv->loop, &p->tcp);
  p->tcp.data = p;
  p->handles = 1;
  r = uv_accept(server, (uv_stream_t *)&p->tcp);
  if (r != 0) {
    gp__warn("accept failed: %s", uv_strerror(r));
    uv_close((uv_handle_t *)&p->tcp, pending_closed);
    return;
  }
  memset(&ss, 0, sizeof(ss));
  if (uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&ss, &len) == 0)
    gp__addr_to_string((const struct sockaddr *)&ss, p->peer,
                       sizeof(p->peer));
  else
    snprintf(p->peer, sizeof(p->peer), "%s", peer);

  if (sv->stopping) {
    gp__info("connection from %s closed: shutting down", p->peer);
  } else if (addr_key((const struct sockaddr *)&ss, ip) &&
             (a = addr_find(sv, ip, true)) == NULL) {
    gp__error("connection from %s refused: out of memory", p->peer);
  } else if (a && a->conns >= cfg->max_conns_per_address) {
    log_refusal(sv, &sv->refused_addr_logged_ms, &sv->refused_addr_quiet,
                "connection from %s refused: %u connections from that "
                "address already (--max-conns-per-address %u)", p->peer,
                a->conns, cfg->max_conns_per_address);
  } else if (sv->npending >= cfg->max_pending) {
    log_refusal(sv, &sv->refused_pending_logged_ms,
                &sv->refused_pending_quiet,
                "connection from %s refused: %u connections waiting for "
                "their first bytes (--max-pending %u)", p->peer,
                sv->npending, cfg->max_pending);
  } else {
    /* Wait for its first bytes: a worker costs a process, a connection
     * that sends nothing must not. */
    uv_timer_init(&sv->loop, &p->timer);
    p->timer.data = p;
    p->handles++;
    if (a)
      a->conns++;
    p->addr = a;
    p->next = sv->pending;
    if (sv->pending)
      sv->pending->prev = p;
    sv->pending = p;
    sv->npending++;
    r = uv_read_start((uv_stream_t *)&p->tcp, on_pending_alloc,
                      on_pending_read);
    if (r != 0) {
      gp__warn("connection from %s closed: %s", p->peer, uv_strerror(r));
      pending_end(p, false);
      return;
    }
    uv_timer_start(&p->timer, on_pending_timeout, cfg->handshake_timeout_ms,
                   0);
    return;
  }
  if (a && a->conns == 0) {
    a->conns = 1; /* addr_release() frees it at 0 */
    addr_release(sv, a);
  }
  uv_close((uv_handle_t *)&p->tcp, pending_closed);
}

/* Closes every pending connection (the server is stopping). */
static void pending_close_all(struct gp_supervisor *sv) {
  while (sv->pending)
    pending_end(sv->pending, false);
}

/* Raises the soft limit on open files towards the hard one, so that
 * --max-pending connections, the sessions' sockets and their report
 * sockets fit; logs what it could not. */
static void raise_nofile(const struct gp_server_config *cfg) {
  rlim_t want = (rlim_t)cfg->max_pending + 2 * (rlim_t)cfg->max_sessions +
                128;
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
      rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
    return;
  {
    struct rlimit up = rl;
    up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
      rl.rlim_cur = up.rlim_cur;
  }
  if (rl.rlim_cur < want)
    gp__warn("open files are limited to %llu (ulimit -n), under the %llu "
             "that --max-pending %u and --max-sessions %u need: some "
             "connections may be refused at accept",
             (unsigned long long)rl.rlim_cur, (unsigned long long)want,
             cfg->max_pending, cfg->max_sessions);
}

static void kill_all(struct gp_supervisor *sv, int sig) {
  struct gp_session *s;

  for (s = sv->sessions; s; s = s->next) {
    int r = uv_process_kill(&s->proc, sig);
    if (r != 0 && r != UV_ESRCH)
      gp__warn("cannot signal worker %d: %s", s->proc.pid, uv_strerror(r));
  }
}

static void on_grace_timeout(uv_timer_t *t) {
  struct gp_supervisor *sv = t->data;

  gp__warn("%u workers still running after %d ms: sending SIGKILL",
           sv->nsessions, GP_SUPERVISOR_GRACE_MS);
  kill_all(sv, SIGKILL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct gp_supervisor *sv = h->data;

  if (sv->stopping) {
    gp__warn("%s again: killing %u workers now", strsignal(signum),
             sv->nsessions);
    kill_all(sv, SIGKILL);
    return;
  }
  sv->stopping = true;
  gp__info("%s: stopping (%u sessions running)", strsignal(signum),
           sv->nsessions);
  uv_close((uv_handle_t *)&sv->listener, NULL);
  pending_close_all(sv);
  kill_all(sv, SIGTERM);
  if (sv->nsessions > 0)
    uv_timer_start(&sv->grace, on_grace_timeout, GP_SUPERVISOR_GRACE_MS, 0);
  maybe_finish(sv);
}



static void build_worker_argv(struct gp_supervisor *sv) {
  const struct gp_server_config *cfg = sv->cfg;
  int i = 0;

  snprintf(sv->memory_arg, sizeof(sv->memory_arg), "%llu",
           (unsigned long long)cfg->bcfg.emu_memory);
  snprintf(sv->pid_arg, sizeof(sv->pid_arg), "%ld", (long)getpid());
  sv->worker_argv[i++] = "gpupool-server";
  sv->worker_argv[i++] = "--worker";
  sv->worker_argv[i++] = "--supervisor-pid";
  sv->worker_argv[i++] = sv->pid_arg;
  sv->worker_argv[i++] = "--backend";
  sv->worker_argv[i++] = (char *)cfg->backend_name;
  sv->worker_argv[i++] = "--emu-memory";
  sv->worker_argv[i++] = sv->memory_arg;
  sv->worker_argv[i++] = "--cuda-lib";
  sv->worker_argv[i++] = (char *)cfg->bcfg.cuda_lib;
  sv->worker_argv[i++] = "--log-level";
  sv->worker_argv[i++] = (char *)gp__log_level_name(cfg->log_level);
  snprintf(sv->send_timeout_arg, sizeof(sv->send_timeout_arg), "%u",
           cfg->send_timeout_ms);
  sv->worker_argv[i++] = "--send-timeout";
  sv->worker_argv[i++] = sv->send_timeout_arg;
  snprintf(sv->handshake_arg, sizeof(sv->handshake_arg), "%u",
           cfg->handshake_timeout_ms);
  sv->worker_argv[i++] = "--handshake-timeout";
  sv->worker_argv[i++] = sv->handshake_arg;
  if (cfg->kernel_timeout_s) {
    snprintf(sv->kernel_timeout_arg, sizeof(sv->kernel_timeout_arg), "%u",
             cfg->kernel_timeout_s);
    sv->worker_argv[i++] = "--kernel-timeout";
    sv->worker_argv[i++] = sv->kernel_timeout_arg;
  }
  if (!cfg->scrub)
    sv->worker_argv[i++] = "--no-scrub";
  if (sv->emu_shm_fd >= 0)
    sv->worker_argv[i++] = "--emu-shared-memory";
  if (cfg->insecure)
    sv->worker_argv[i++] = "--insecure";
  if (cfg->idle_timeout_s) {
    snprintf(sv->idle_arg, sizeof(sv->idle_arg), "%u", cfg->idle_timeout_s);
    sv->worker_argv[i++] = "--idle-timeout";
    sv->worker_argv[i++] = sv->idle_arg;
  }
  if (cfg->name) {
    sv->worker_argv[i++] = "--name";
    sv->worker_argv[i++] = (char *)cfg->name;
  }
  if (sv->cache) {
    snprintf(sv->cache_size_arg, sizeof(sv->cache_size_arg), "%llu",
             (unsigned long long)cfg->image_cache_size);
    sv->worker_argv[i++] = "--image-cache";
    sv->worker_argv[i++] = (char *)sv->cache;
    sv->worker_argv[i++] = "--image-cache-size";
    sv->worker_argv[i++] = sv->cache_size_arg;
  }
  snprintf(sv->poll_arg, sizeof(sv->poll_arg), "%u", cfg->poll_us);
  sv->worker_argv[i++] = "--poll-us";
  sv->worker_argv[i++] = sv->poll_arg;
  sv->worker_argv[i++] = "--compress";
  sv->worker_argv[i++] = (char *)gp_z_mode_name((enum gp_z_mode)cfg->compress);
  if (cfg->grant_key_file) {
    sv->worker_argv[i++] = "--grant-key-file";
    sv->worker_argv[i++] = (char *)cfg->grant_key_file;
    if (sv->offer_arg) {
      sv->worker_argv[i++] = "--offer";
      sv->worker_argv[i++] = sv->offer_arg;
    }
  }
  sv->worker_argv[i] = NULL;
}

/* The offered devices' UUIDs, comma-separated, for the workers' grant
 * checks. Returns 0 or GP_ENOMEM. */
static int build_offer_arg(struct gp_supervisor *sv) {
  size_t len = (size_t)sv->inv.noffer * GP_UUID_STR_LEN + 1, at = 0;
  int i;

  sv->offer_arg = malloc(len);
  if (!sv->offer_arg)
    return GP_ENOMEM;
  sv->offer_arg[0] = '\0';
  for (i = 0; i < sv->inv.noffer; i++)
    at += (size_t)snprintf(sv->offer_arg + at, len - at, "%s%s",
                           i ? "," : "", sv->inv.d[sv->inv.offer[i]].uuid_str);
  return 0;
}

/* The image cache's directory: none with --image-cache none, the given one
 * (made, mode 0700, if missing), or a private one under $TMPDIR or /tmp.
 * Returns 0, or -1 after logging why (a given directory that cannot be
 * used stops the server; the private one only disables the cache). */
static int setup_image_cache(struct gp_supervisor *sv) {
  const char *want = sv->cfg->image_cache, *tmp = getenv("TMPDIR");
  int fd;

  if (want && strcmp(want, "none") == 0)
    return 0;
  if (!want) {
    if (!tmp || tmp[0] != '/')
      tmp = "/tmp";
    /* A server killed by SIGKILL leaves its directory behind: the next
     * one removes those whose server is gone. */
    gp__disk_cache_reap_private(tmp);
    snprintf(sv->cache_dir, sizeof(sv->cache_dir),
             "%s/" GP_DISK_CACHE_PRIVATE_PREFIX "%ld-XXXXXX", tmp,
             (long)getpid());
    if (!mkdtemp(sv->cache_dir)) {
      gp__warn("no image cache: cannot create a directory in %s: %s", tmp,
               strerror(errno));
      return 0;
    }
    sv->cache_private = true;
  } else {
    snprintf(sv->cache_dir, sizeof(sv->cache_dir), "%s", want);
    if (mkdir(sv->cache_dir, 0700) != 0 && errno != EEXIST) {
      gp__error("--image-cache %s: %s", want, strerror(errno));
      return -1;
    }
  }
  fd = gp__disk_cache_open(sv->cache_dir);
  if (fd < 0 || faccessat(fd, ".", W_OK | X_OK, 0) != 0) {
    gp__error("--image-cache %s: %s", sv->cache_dir,
              fd < 0 ? strerror(errno) : "not writable");
    if (fd >= 0)
      close(fd);
    if (sv->cache_private)
      rmdir(sv->cache_dir);
    return -1;
  }
  close(fd);
  sv->cache = sv->cache_dir;
  gp__info("module image cache: %s (at most %llu MiB)", sv->cache_dir,
           (unsigned long long)(sv->cfg->image_cache_size >> 20));
  return 0;
}

/* ---- TLS material --------------------------------------------------------- */

/* A sealed memfd holding |pem| in the GP_WORKER_TLS_FD format (server.h).
 * Returns the fd, or -1 with |why|. */
static int tls_memfd(const struct gp_tls_pem *pem, char *why, size_t why_len) {
  char head[96];
  int n = snprintf(head, sizeof(head), GP_TLS_BLOB_MAGIC " %zu %zu %zu\n",
                   pem->cert_len, pem->key_len, pem->ca_len);
  const struct {
    const char *p;
    size_t len;
  } parts[] = {{head, (size_t)n}, {pem->cert, pem->cert_len},
               {pem->key, pem->key_len}, {pem->ca, pem->ca_len}};
  int fd = memfd_create("gpupool-tls", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  size_t i;

  if (fd < 0) {
    snprintf(why, why_len, "memfd_create: %s", strerror(errno));
    return -1;
  }
  for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
    size_t done = 0;
    while (done < parts[i].len) {
      ssize_t w = write(fd, parts[i].p + done, parts[i].len - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        snprintf(why, why_len, "writing the TLS memfd: %s", strerror(errno));
        close(fd);
        return -1;
      }
      done += (size_t)w;
    }
  }
  /* Workers share it (reading with pread): nobody may change it. */
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                 F_SEAL_SEAL) != 0) {
    snprintf(why, why_len, "sealing the TLS memfd: %s", strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads --tls-cert, --tls-key and --tls-ca, checks that they make a
 * server context (the key matches the certificate, the CA parses), and
 * makes them the material of new sessions. On failure the previous
 * material stays. Returns 0, or -1 with |why|. */
static int tls_load(struct gp_supervisor *sv, char *why, size_t why_len) {
  const struct gp_server_config *cfg = sv->cfg;
  struct gp_tls_pem pem;
  char err[512];
  SSL_CTX *ctx;
  int fd;

  memset(&pem, 0, sizeof(pem));
  if (gp_tls_pem_load(&pem, cfg->tls_cert, cfg->tls_key, cfg->tls_ca, err,
                      sizeof(err)) != 0) {
    snprintf(why, why_len, "%s", err);
    return -1;
  }
  ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_NONE, err, sizeof(err));
  if (!ctx) {
    snprintf(why, why_len, "--tls-cert %s, --tls-key %s%s%s: %s",
             cfg->tls_cert, cfg->tls_key, cfg->tls_ca ? ", --tls-ca " : "",
             cfg->tls_ca ? cfg->tls_ca : "", err);
    gp_tls_pem_free(&pem);
    return -1;
  }
  SSL_CTX_free(ctx);
  fd = tls_memfd(&pem, why, why_len);
  if (fd < 0) {
    gp_tls_pem_free(&pem);
    return -1;
  }
  gp_tls_pem_free(&sv->tls);
  sv->tls = pem;
  if (sv->tls_fd >= 0)
    close(sv->tls_fd);
  sv->tls_fd = fd;
  return 0;
}

static void tls_free(struct gp_supervisor *sv) {
  gp_tls_pem_free(&sv->tls);
  if (sv->tls_fd >= 0)
    close(sv->tls_fd);
  sv->tls_fd = -1;
}

/* SIGHUP: the TLS files again, for new connections only. */
static void on_sighup(uv_signal_t *h, int signum) {
  struct gp_supervisor *sv = h->data;
  char why[768];

  (void)signum;
  if (sv->cfg->insecure) {
    gp__info("SIGHUP: --insecure: no TLS files to reload");
    return;
  }
  if (tls_load(sv, why, sizeof(why)) != 0) {
    gp__error("SIGHUP: cannot reload the TLS files, keeping the previous "
              "ones: %s", why);
    return;
  }
  gp__info("SIGHUP: reloaded the TLS certificate, key and CA (%s, %s%s%s); "
           "new connections use them", sv->cfg->tls_cert, sv->cfg->tls_key,
           sv->cfg->tls_ca ? ", " : "",
           sv->cfg->tls_ca ? sv->cfg->tls_ca : "");
}

static void close_any(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int gp__supervisor_run(const struct gp_server_config *cfg) {
  struct gp_supervisor *sv;
  char bound[GP_PEER_MAX];
  int port = 0, r, status = GP_EXIT_FAILURE;

  /* A peer that goes away while we write must not kill the supervisor. */
  signal(SIGPIPE, SIG_IGN);

  sv = calloc(1, sizeof(*sv));
  if (!sv) {
    gp__error("out of memory");
    return GP_EXIT_FAILURE;
  }
  sv->cfg = cfg;
  sv->emu_shm_fd = -1;
  if (getrandom(&sv->addr_seed, sizeof(sv->addr_seed), 0) !=
      (ssize_t)sizeof(sv->addr_seed))
    sv->addr_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  if (cfg->emu_shared_memory) {
    sv->emu_shm_fd = emu_shared_create(cfg->bcfg.emu_memory);
    if (sv->emu_shm_fd >= 0)
      sv->emu_shm = emu_shared_map_header(sv->emu_shm_fd);
    if (!sv->emu_shm) {
      gp__error("--emu-shared-memory: cannot create %llu MiB of shared "
                "memory: %s", (unsigned long long)(cfg->bcfg.emu_memory >> 20),
                strerror(errno));
      if (sv->emu_shm_fd >= 0)
        close(sv->emu_shm_fd);
      free(sv);
      return GP_EXIT_FAILURE;
    }
  }
  raise_nofile(cfg);
  sv->tls_fd = -1;
  if (!cfg->insecure) {
    char why[768];
    if (tls_load(sv, why, sizeof(why)) != 0) {
      /* A file that cannot be used is a bad flag, like --grant-key-file. */
      fprintf(stderr, "gpupool-server: TLS: %s\nTry 'gpupool-server "
              "--help'.\n", why);
      free(sv);
      return GP_EXIT_USAGE;
    }
  } else {
    gp__warn("WARNING: --insecure: plain TCP, no encryption, no server "
             "authentication");
  }
  /* Before the loop exists: the probe is a child of its own, reaped here. */
  status = gp__inventory_build(cfg, &sv->inv);
  if (status != 0) {
    tls_free(sv);
    free(sv);
    return status;
  }
  if (build_offer_arg(sv) != 0) {
    gp__error("out of memory");
    tls_free(sv);
    free(sv);
    return GP_EXIT_FAILURE;
  }
  if (setup_image_cache(sv) != 0) {
    free(sv->offer_arg);
    tls_free(sv);
    free(sv);
    return GP_EXIT_FAILURE;
  }
  build_worker_argv(sv);
  status = GP_EXIT_FAILURE;
  for (r = 0; r < sv->inv.noffer; r++) {
    char line[256];
    gp__inventory_describe(&sv->inv, sv->inv.offer[r], line, sizeof(line));
    gp__info("offering %s", line);
  }
  /* Only a real driver reads CUDA_VISIBLE_DEVICES; the emulated device is
   * every session's own. */
  sv->per_device = strcmp(cfg->backend_name, "emu") != 0;
  if (uv_loop_init(&sv->loop) != 0) {
    gp__error("cannot create the event loop");
    if (sv->cache_private)
      gp__disk_cache_remove_dir(sv->cache_dir);
    tls_free(sv);
    free(sv);
    return GP_EXIT_FAILURE;
  }
  uv_tcp_init(&sv->loop, &sv->listener);
  sv->listener.data = sv;
  uv_signal_init(&sv->loop, &sv->sigint);
  uv_signal_init(&sv->loop, &sv->sigterm);
  uv_timer_init(&sv->loop, &sv->grace);
  sv->sigint.data = sv->sigterm.data = sv->grace.data = sv;
  /* Before the port file is written: a SIGHUP from then on reloads, never
   * kills. */
  uv_signal_init(&sv->loop, &sv->sighup);
  sv->sighup.data = sv;
  uv_signal_start(&sv->sighup, on_sighup, SIGHUP);

  r = gp__listen_tcp(&sv->listener, cfg->host, cfg->port,
                     GP_SUPERVISOR_BACKLOG, on_connection, bound,
                     sizeof(bound), &port);
  if (r != 0) {
    /* An address that does not resolve is a bad flag. */
    status = r == GP_EINVAL ? GP_EXIT_USAGE : GP_EXIT_FAILURE;
    goto out;
  }
  if (cfg->port_file && gp__write_port_file(cfg->port_file, port) != 0) {
    gp__error("cannot write --port-file %s: %s", cfg->port_file,
              strerror(errno));
    goto out;
  }
  if (cfg->broker) {
    char advertised[GP_PEER_MAX + 256];
    if (cfg->advertise) {
      snprintf(advertised, sizeof(advertised), "%s", cfg->advertise);
    } else {
      snprintf(advertised, sizeof(advertised), "%s", bound);
      if (strncmp(bound, "0.0.0.0:", 8) == 0 || strncmp(bound, "[::]:", 5) == 0)
        gp__warn("--broker: the listen address %s is no address clients can "
                 "connect to; give --advertise HOST:PORT", bound);
    }
    struct gp_broker_link_tls ltls = {cfg->tls_cert, cfg->tls_key,
                                      cfg->tls_ca, cfg->insecure};
    r = gp__broker_link_start(&sv->loop, cfg, &ltls, &sv->inv, advertised,
                              list_sessions, sv, &sv->link);
    if (r != 0) {
      if (r == GP_ENOMEM)
        gp__error("out of memory");
      goto out;
    }
  }
  uv_signal_start(&sv->sigint, on_signal, SIGINT);
  uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
  if (strcmp(cfg->backend_name, "emu") == 0)
    gp__info("gpupool-server %s listening on %s (%s, backend emu, %llu MiB "
             "%s, at most %u sessions)", GP_VERSION_STRING, bound,
             cfg->insecure ? "plain TCP" : "TLS",
             (unsigned long long)(cfg->bcfg.emu_memory >> 20),
             sv->emu_shm ? "shared by all sessions" : "per session",
             cfg->max_sessions);
  else
    gp__info("gpupool-server %s listening on %s (%s, backend %s, driver %s, "
             "at most %u sessions)", GP_VERSION_STRING, bound,
             cfg->insecure ? "plain TCP" : "TLS", cfg->backend_name,
             cfg->bcfg.cuda_lib, cfg->max_sessions);

  uv_run(&sv->loop, UV_RUN_DEFAULT);
  gp__info("stopped");
  status = GP_EXIT_OK;

out:
  uv_walk(&sv->loop, close_any, NULL);
  uv_run(&sv->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&sv->loop) != 0)
    gp__debug("event loop still busy at exit");
  gp__broker_link_free(sv->link);
  if (sv->cache_private)
    gp__disk_cache_remove_dir(sv->cache_dir);
  for (r = 0; r < GP_ADDR_BUCKETS; r++)
    while (sv->addrs[r]) {
      struct gp_addr *a = sv->addrs[r];
      sv->addrs[r] = a->next;
      free(a);
    }
  emu_shared_unmap(sv->emu_shm, false);
  if (sv->emu_shm_fd >= 0)
    close(sv->emu_shm_fd);
  free(sv->claims);
  free(sv->offer_arg);
  tls_free(sv);
  free(sv);
  return status;
}
