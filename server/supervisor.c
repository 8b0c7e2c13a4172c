/* The supervisor: a libuv loop that accepts TCP connections and hands each
 * one to a fresh worker process (this binary, run again with --worker),
 * which gets the socket as its fd 3. The supervisor never opens a backend
 * or reads a byte of a session: a worker that crashes or leaks takes only
 * its own session with it.
 *
 * It keeps a list of its workers, logs each session's start and end,
 * refuses connections beyond --max-sessions, and on SIGINT or SIGTERM stops
 * listening, sends SIGTERM to every worker (SIGKILL to those still alive
 * after GP_SUPERVISOR_GRACE_MS) and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <strings.h>
#include <time.h>

#include "broker_link.h"
#include "disk_cache.h"
#include "gp_config.h"
#include "gpupool/errors.h"
#include "pool.h"
#include "server.h"
#include "zchunk.h"

extern char **environ;

#define GP_SUPERVISOR_BACKLOG 128
#define GP_SUPERVISOR_GRACE_MS 5000
#define GP_PEER_MAX 64
/* Session ids of admitted grants remembered at most (until their grant
 * expires): a claim beyond it is refused. */
#define GP_CLAIMS_MAX 65536

struct gp_supervisor;

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
};


static void free_on_close(uv_handle_t *h) {
  free(h);
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
}

static void on_worker_exit(uv_process_t *proc, int64_t status, int sig) {
  struct gp_session *s = proc->data;
  struct gp_supervisor *sv = s->sv;
  double secs = (double)(uv_now(&sv->loop) - s->started_ms) / 1000.0;

  drain_report(s);
  if (s->admitted)
    gp__broker_link_session_end(sv->link, s->ps.session_id,
                                end_reason(status, sig));
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

static void spawn_worker(struct gp_supervisor *sv, uv_tcp_t *conn,
                         const char *peer) {
  struct gp_session *s;
  uv_process_options_t opt;
  uv_stdio_container_t stdio[GP_WORKER_REPORT_FD + 1];
  char **env = NULL;
  char what[GP_UUID_STR_LEN + 32] = "";
  int r;

  s = calloc(1, sizeof(*s));
  if (!s) {
    gp__error("session from %s refused: out of memory", peer);
    return;
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
      return;
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
  /* The kernel's link to our own executable: the worker is exactly this
   * binary, even if the file on disk was replaced since we started. */
  opt.file = "/proc/self/exe";
  opt.args = sv->worker_argv;
  opt.stdio = stdio;
  opt.stdio_count = GP_WORKER_REPORT_FD + 1;
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
    return;
  }
  s->handles++;
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
}

static void on_connection(uv_stream_t *server, int status) {
  struct gp_supervisor *sv = server->data;
  struct sockaddr_storage ss;
  char peer[GP_PEER_MAX] = "?";
  int len = sizeof(ss), r;
  uv_tcp_t *conn;

  if (status < 0) {
    gp__warn("accept failed: %s", uv_strerror(status));
    return;
  }
  conn = malloc(sizeof(*conn));
  if (!conn) {
    gp__error("accept: out of memory");
    return;
  }
  uv_tcp_init(&sv->loop, conn);
  r = uv_accept(server, (uv_stream_t *)conn);
  if (r != 0) {
    gp__warn("accept failed: %s", uv_strerror(r));
    uv_close((uv_handle_t *)conn, free_on_close);
    return;
  }
  if (uv_tcp_getpeername(conn, (struct sockaddr *)&ss, &len) == 0)
    gp__addr_to_string((const struct sockaddr *)&ss, peer, sizeof(peer));

  if (sv->stopping) {
    gp__info("connection from %s closed: shutting down", peer);
  } else if (sv->nsessions >= sv->cfg->max_sessions) {
    gp__warn("connection from %s refused: %u sessions running "
             "(--max-sessions %u)", peer, sv->nsessions,
             sv->cfg->max_sessions);
  } else {
    spawn_worker(sv, conn, peer);
  }
  /* The worker has its own copy of the socket (or there is none): ours is
   * closed either way. */
  uv_close((uv_handle_t *)conn, free_on_close);
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
  /* Before the loop exists: the probe is a child of its own, reaped here. */
  status = gp__inventory_build(cfg, &sv->inv);
  if (status != 0) {
    free(sv);
    return status;
  }
  if (build_offer_arg(sv) != 0) {
    gp__error("out of memory");
    free(sv);
    return GP_EXIT_FAILURE;
  }
  if (setup_image_cache(sv) != 0) {
    free(sv->offer_arg);
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
    free(sv);
    return GP_EXIT_FAILURE;
  }
  uv_tcp_init(&sv->loop, &sv->listener);
  sv->listener.data = sv;
  uv_signal_init(&sv->loop, &sv->sigint);
  uv_signal_init(&sv->loop, &sv->sigterm);
  uv_timer_init(&sv->loop, &sv->grace);
  sv->sigint.data = sv->sigterm.data = sv->grace.data = sv;

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
    r = gp__broker_link_start(&sv->loop, cfg, &sv->inv, advertised,
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
    gp__info("gpupool-server %s listening on %s (backend emu, %llu MiB per "
             "session, at most %u sessions)", GP_VERSION_STRING, bound,
             (unsigned long long)(cfg->bcfg.emu_memory >> 20),
             cfg->max_sessions);
  else
    gp__info("gpupool-server %s listening on %s (backend %s, driver %s, at "
             "most %u sessions)", GP_VERSION_STRING, bound,
             cfg->backend_name, cfg->bcfg.cuda_lib, cfg->max_sessions);

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
  free(sv->claims);
  free(sv->offer_arg);
  free(sv);
  return status;
}
