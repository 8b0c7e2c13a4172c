/* Integration: the pool end to end (docs/broker.md). A real gpupool-broker
 * and real pool servers (--backend emu) on loopback, registered to it with
 * --broker, --name and --grant-key-file; real client processes (children of
 * this program, linked to gpupool's libcuda.so.1) asking the broker for
 * sessions through GPUPOOL_BROKER and GPUPOOL_TOKEN; the gpupool CLI
 * (status --json, sessions --json, drain, undrain, attach --broker) run as
 * any user runs it.
 *
 *   placement       three servers of 1, 2 and 4 GiB; 36 sessions arrive one
 *                   by one and each lands where this file's own
 *                   implementation of the documented score says it must;
 *                   ending sessions releases their reservations
 *   server_down     a killed server is down after down_after_ms and gets no
 *                   new sessions, the others' sessions go on; a stopped one
 *                   is down, then up at its next heartbeat
 *   drain           drain/undrain with the admin token; a tenant's token is
 *                   refused; the CLI's exit statuses and plain output
 *   broker_restart  the broker killed and started again on its port: the
 *                   servers register again with their running sessions,
 *                   which kept working all along
 *   grants          a server admits a HELLO only with a grant that verifies,
 *                   is for it, for a GPU it offers, unexpired and unused
 *                   (raw protocol, grants signed here with protocol/grant.c
 *                   and one from the broker itself)
 *   quotas          max_sessions, max_memory, bad tokens, the admin token
 *   attach_exit     gpupool attach --broker passes the program's exit status;
 *                   --mem, --server, --label; client.conf and the
 *                   environment over it
 *   memory_limit    a session's grant limits its allocations and
 *                   cuMemGetInfo; default_memory when none is asked for
 *
 * The broker runs with heartbeat_ms 200 and down_after_ms 1000 so that the
 * scenarios that wait for a server to go down stay short.
 */
#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "harness.h"
#include "raw.h"
#include "msg.h"
#include "tls.h"
#include "wire.h"

#define MIB (1024ull * 1024ull)

/* ---- A small JSON reader ------------------------------------------------------
 *
 * Enough for the CLI's --json output: objects, arrays, strings (escapes
 * decoded, \u as UTF-8), numbers (integers kept exact as unsigned 64-bit
 * when they are), true, false, null. */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
  enum jtype t;
  bool b;
  bool is_uint;       /* a non-negative integer: |u| is exact */
  unsigned long long u;
  double num;
  char *s;            /* J_STR */
  size_t n;           /* J_ARR, J_OBJ: how many */
  struct jv *kids;    /* elements / values */
  char **keys;        /* J_OBJ */
};

struct jparser {
  const char *p;
  int depth;
};

static void json_free_kids(struct jv *v) {
  for (size_t i = 0; i < v->n; i++) {
    json_free_kids(&v->kids[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->kids);
  free(v->keys);
  free(v->s);
}

static void json_free(struct jv *v) {
  if (v == NULL) return;
  json_free_kids(v);
  free(v);
}

static void jskip(struct jparser *jp) {
  while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
    jp->p++;
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
  if (cp < 0x80) {
    out[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*n)++] = (char)(0xc0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    out[(*n)++] = (char)(0xe0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  }
}

/* A string at jp->p (on its opening quote); malloc'd, or NULL. */
static char *jstring(struct jparser *jp) {
  if (*jp->p != '"') return NULL;
  jp->p++;
  const char *start = jp->p;
  size_t cap = 1;
  for (const char *q = start; *q && *q != '"'; q++) cap += (*q == '\\') ? 2 : 1;
  char *out = malloc(cap * 3 + 1);
  if (out == NULL) return NULL;
  size_t n = 0;
  while (*jp->p != '"') {
    unsigned char c = (unsigned char)*jp->p;
    if (c == '\0' || c < 0x20) goto bad;
    if (c != '\\') {
      out[n++] = (char)c;
      jp->p++;
      continue;
    }
    jp->p++;
    switch (*jp->p) {
      case '"': out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; break;
      case '/': out[n++] = '/'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        unsigned cp = 0;
        for (int i = 1; i <= 4; i++) {
          char h = jp->p[i];
          if (!isxdigit((unsigned char)h)) goto bad;
          cp = cp * 16 + (unsigned)(isdigit((unsigned char)h)
                                        ? h - '0'
                                        : (tolower((unsigned char)h) - 'a' + 10));
        }
        jp->p += 4;
        put_utf8(out, &n, cp);
        break;
      }
      default: goto bad;
    }
    jp->p++;
  }
  jp->p++;
  out[n] = '\0';
  return out;
bad:
  free(out);
  return NULL;
}

static bool jvalue(struct jparser *jp, struct jv *v);

static bool jcontainer(struct jparser *jp, struct jv *v, bool obj) {
  char close = obj ? '}' : ']';
  jp->p++;
  jskip(jp);
  size_t cap = 0;
  if (*jp->p == close) {
    jp->p++;
    return true;
  }
  for (;;) {
    if (v->n == cap) {
      cap = cap ? cap * 2 : 8;
      struct jv *k = realloc(v->kids, cap * sizeof *k);
      if (k == NULL) return false;
      v->kids = k;
      if (obj) {
        char **keys = realloc(v->keys, cap * sizeof *keys);
        if (keys == NULL) return false;
        v->keys = keys;
      }
    }
    memset(&v->kids[v->n], 0, sizeof v->kids[0]);
    if (obj) {
      jskip(jp);
      char *key = jstring(jp);
      if (key == NULL) return false;
      v->keys[v->n] = key;
      jskip(jp);
      if (*jp->p != ':') {
        v->n++;
        return false;
      }
      jp->p++;
    }
    bool ok = jvalue(jp, &v->kids[v->n]);
    v->n++;
    if (!ok) return false;
    jskip(jp);
    if (*jp->p == ',') {
      jp->p++;
      jskip(jp);
      continue;
    }
    if (*jp->p == close) {
      jp->p++;
      return true;
    }
    return false;
  }
}

static bool jvalue(struct jparser *jp, struct jv *v) {
  jskip(jp);
  if (++jp->depth > 32) return false;
  bool ok = false;
  char c = *jp->p;
  if (c == '{' || c == '[') {
    v->t = c == '{' ? J_OBJ : J_ARR;
    ok = jcontainer(jp, v, c == '{');
  } else if (c == '"') {
    v->t = J_STR;
    v->s = jstring(jp);
    ok = v->s != NULL;
  } else if (strncmp(jp->p, "true", 4) == 0 || strncmp(jp->p, "false", 5) == 0) {
    v->t = J_BOOL;
    v->b = c == 't';
    jp->p += v->b ? 4 : 5;
    ok = true;
  } else if (strncmp(jp->p, "null", 4) == 0) {
    v->t = J_NULL;
    jp->p += 4;
    ok = true;
  } else if (c == '-' || isdigit((unsigned char)c)) {
    v->t = J_NUM;
    char *end;
    v->num = strtod(jp->p, &end);
    size_t len = (size_t)(end - jp->p);
    if (len > 0 && c != '-' && strcspn(jp->p, ".eE") >= len) {
      errno = 0;
      v->u = strtoull(jp->p, NULL, 10);
      v->is_uint = errno == 0;
    }
    jp->p = end;
    ok = len > 0;
  }
  jp->depth--;
  return ok;
}

/* Parses |text| (one value and nothing but white space after it); NULL
 * when it is not JSON. */
static struct jv *json_parse(const char *text) {
  struct jv *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  struct jparser jp = {text, 0};
  bool ok = jvalue(&jp, v);
  jskip(&jp);
  if (!ok || *jp.p != '\0') {
    json_free(v);
    return NULL;
  }
  return v;
}

static const struct jv *jget(const struct jv *o, const char *key) {
  if (o == NULL || o->t != J_OBJ) return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->keys[i], key) == 0) return &o->kids[i];
  return NULL;
}

static const char *jstr(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v != NULL && v->t == J_STR ? v->s : "";
}

static unsigned long long juint(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v != NULL && v->t == J_NUM && v->is_uint ? v->u : 0;
}

static bool jbool(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v != NULL && v->t == J_BOOL && v->b;
}

/* ---- Running a command ---------------------------------------------------------- */

struct run {
  int status;          /* exit status, 128+signal, -1: did not finish */
  char out[262144];    /* stdout */
  char err[16384];     /* stderr */
};

/* Runs argv (this process's environment) with stdout and stderr captured,
 * for at most |timeout_s|; prints the command and what it wrote unless
 * |quiet|. The result is malloc'd. */
static struct run *run_cmd(const char *const *argv, int timeout_s, bool quiet) {
  struct run *r = gpt_xmalloc(sizeof *r);
  r->status = -1;
  r->out[0] = r->err[0] = '\0';
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) != 0) return r;
  if (pipe2(pe, O_CLOEXEC) != 0) {
    close(po[0]);
    close(po[1]);
    return r;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    _exit(126);
  }
  close(po[1]);
  close(pe[1]);
  size_t no = 0, ne = 0;
  bool open_o = true, open_e = true;
  double deadline = gpt_now() + timeout_s;
  while (open_o || open_e) {
    int left = (int)((deadline - gpt_now()) * 1000);
    if (left <= 0) break;
    struct pollfd pf[2] = {{open_o ? po[0] : -1, POLLIN, 0},
                           {open_e ? pe[0] : -1, POLLIN, 0}};
    if (poll(pf, 2, left) <= 0) continue;
    if (pf[0].revents) {
      char sink[4096];
      bool room = no < sizeof r->out - 1;
      ssize_t got = room ? read(po[0], r->out + no, sizeof r->out - 1 - no)
                         : read(po[0], sink, sizeof sink);
      if (got <= 0)
        open_o = false;
      else if (room)
        no += (size_t)got;
    }
    if (pf[1].revents) {
      char sink[4096];
      bool room = ne < sizeof r->err - 1;
      ssize_t got = room ? read(pe[0], r->err + ne, sizeof r->err - 1 - ne)
                         : read(pe[0], sink, sizeof sink);
      if (got <= 0)
        open_e = false;
      else if (room)
        ne += (size_t)got;
    }
  }
  r->out[no] = '\0';
  r->err[ne] = '\0';
  close(po[0]);
  close(pe[0]);
  int st;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (gpt_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      fprintf(stderr, "%s timed out\n", argv[0]);
      return r;
    }
    gpt_sleep_ms(2);
  }
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (!quiet) {
    printf("$");
    for (int i = 0; argv[i]; i++) printf(" %s", argv[i]);
    printf("  -> %d\n%s", r->status, r->out);
    if (r->err[0]) printf("[stderr] %s", r->err);
    if (no && r->out[no - 1] != '\n') printf("\n");
    if (ne && r->err[ne - 1] != '\n') printf("\n");
  }
  return r;
}

static const char *cli_path(void) {
  const char *c = getenv("GPUPOOL_TEST_CLI");
  if (c == NULL || *c == '\0') gpt_skip("GPUPOOL_TEST_CLI is not set");
  return c;
}

/* ---- The pool ---------------------------------------------------------------------- */

#define MAX_SERVERS 4

struct pool {
  struct gpt_broker b;
  struct gpt_server srv[MAX_SERVERS];
  char name[MAX_SERVERS][16];
  int n;
  char admin_token[80], alice_token[80], bob_token[80], carol_token[80];
  char admin_file[320], alice_file[320], bob_file[320], carol_file[320];
};

static struct pool pool;
/* The broker's grant_ttl_s for the next pool_start(). */
static int pool_ttl = 20;

/* Every scenario's tenants: alice (no limits), bob (max_sessions 2),
 * carol (max_memory 256M) and the admin. */
static void make_token(char *out, size_t len, const char *who) {
  unsigned char raw[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  REQUIRE_TRUE(fd >= 0 && read(fd, raw, sizeof raw) == (ssize_t)sizeof raw);
  close(fd);
  int n = snprintf(out, len, "%s-", who);
  for (size_t i = 0; i < sizeof raw && (size_t)n + 2 < len; i++)
    n += snprintf(out + n, len - (size_t)n, "%02x", raw[i]);
}

static void hash_of(const char *token, char hex[65]) {
  gp_sha256_hex(token, strlen(token), hex);
}

/* The token's file (0600) in the broker's folder; a newline after it, as
 * `echo TOKEN > file` writes it. */
static void write_token(const char *who, const char *token, char *path,
                        size_t len) {
  char name[64], text[128];
  snprintf(name, sizeof name, "%s.token", who);
  snprintf(text, sizeof text, "%s\n", token);
  REQUIRE_TRUE(gpt_write_file(pool.b.dir, name, text, 0600, path, len) == 0);
}

/* Starts the broker and |n| servers; |specs| holds, for each, the
 * --emu-memory size then any more arguments up to a NULL, the lists one
 * after the other. Waits until the broker shows them all up. */
static void wait_all_up(int want);

static void pool_start(int n, const char *const *specs) {
  make_token(pool.admin_token, sizeof pool.admin_token, "admin");
  make_token(pool.alice_token, sizeof pool.alice_token, "alice");
  make_token(pool.bob_token, sizeof pool.bob_token, "bob");
  make_token(pool.carol_token, sizeof pool.carol_token, "carol");
  char ha[65], hal[65], hb[65], hc[65];
  hash_of(pool.admin_token, ha);
  hash_of(pool.alice_token, hal);
  hash_of(pool.bob_token, hb);
  hash_of(pool.carol_token, hc);
  char config[2048];
  snprintf(config, sizeof config,
           "heartbeat_ms = 200\n"
           "down_after_ms = 1000\n"
           "grant_ttl_s = %d\n"
           "default_memory = 128M\n"
           "\n"
           "[tenant.alice]\n"
           "token_sha256 = %s\n"
           "\n"
           "[tenant.bob]\n"
           "token_sha256 = %s\n"
           "max_sessions = 2\n"
           "\n"
           "[tenant.carol]\n"
           "token_sha256 = %s\n"
           "max_memory = 256M\n"
           "\n"
           "[admin]\n"
           "token_sha256 = %s\n",
           pool_ttl, hal, hb, hc, ha);
  if (gpt_broker_start(&pool.b, config) != 0) gpt__abort_scenario();
  printf("broker on %s, config %s\n", pool.b.addr, pool.b.config_file);
  write_token("admin", pool.admin_token, pool.admin_file,
              sizeof pool.admin_file);
  write_token("alice", pool.alice_token, pool.alice_file,
              sizeof pool.alice_file);
  write_token("bob", pool.bob_token, pool.bob_file, sizeof pool.bob_file);
  write_token("carol", pool.carol_token, pool.carol_file,
              sizeof pool.carol_file);

  pool.n = n;
  int k = 0;
  for (int i = 0; i < n; i++) {
    snprintf(pool.name[i], sizeof pool.name[i], "pool%02d", i + 1);
    const char *args[40];
    int a = 0;
    args[a++] = "--emu-memory";
    args[a++] = specs[k++];
    while (specs[k] != NULL && a < 22) args[a++] = specs[k++];
    k++;
    args[a++] = "--broker";
    args[a++] = pool.b.addr;
    args[a++] = "--name";
    args[a++] = pool.name[i];
    args[a++] = "--grant-key-file";
    args[a++] = pool.b.key_file;
    a = gpt_pool_tls_args(args, a); /* mutual TLS to the broker */
    args[a] = NULL;
    if (gpt_server_start(&pool.srv[i], args) != 0) gpt__abort_scenario();
    printf("%s on %s\n", pool.name[i], pool.srv[i].addr);
  }
  /* The clients find the pool through the broker only. */
  unsetenv("GPUPOOL_SERVER");
  unsetenv("GPUPOOL_CONFIG");
  unsetenv("GPUPOOL_TOKEN");
  unsetenv("GPUPOOL_TOKEN_FILE");
  unsetenv("GPUPOOL_MEM");
  unsetenv("GPUPOOL_LABELS");
  unsetenv("GPUPOOL_SERVER_NAME");
  unsetenv("LD_PRELOAD");
  /* No client.conf of the machine's user can leak in. */
  setenv("XDG_CONFIG_HOME", pool.b.dir, 1);
  setenv("HOME", pool.b.dir, 1);
  setenv("GPUPOOL_BROKER", pool.b.addr, 1);
  setenv("GPUPOOL_CONNECT_TIMEOUT", "5", 1);
  wait_all_up(n);
}

static int server_index(const char *name) {
  for (int i = 0; i < pool.n; i++)
    if (strcmp(pool.name[i], name) == 0) return i;
  return -1;
}

/* `gpupool CMD [ARGS...] --broker B --token-file FILE`: |args| ends with
 * NULL. */
static struct run *cli_run(const char *token_file, bool quiet,
                           const char *const *args) {
  const char *argv[24];
  int n = 0;
  argv[n++] = cli_path();
  for (int i = 0; args[i] && n < 18; i++) argv[n++] = args[i];
  argv[n++] = "--broker";
  argv[n++] = pool.b.addr;
  if (token_file != NULL) {
    argv[n++] = "--token-file";
    argv[n++] = token_file;
  }
  argv[n] = NULL;
  return run_cmd(argv, 20, quiet);
}

/* ---- What the broker says: status --json and sessions --json ------------------------ */

#define MAX_GPUS 16
#define MAX_SESS 96

struct m_server {
  char name[64];
  char address[64];
  bool up, draining;
  int nlabels;
  char lkey[8][32], lval[8][32];
};

struct m_gpu {
  int server;          /* index in servers */
  char uuid[128];
  unsigned long long total, reserved, used;
  unsigned long long sessions; /* as status reports it */
  long long util;      /* -1: null or unknown */
};

struct m_sess {
  char id[40];
  char tenant[64];
  char server[64];
  char gpu[128];
  unsigned long long limit;
  unsigned long long used;  /* memory_used */
  unsigned long long idle_ms;
  char state[16];
  char client[160];
};

struct model {
  struct m_server srv[8];
  int nsrv;
  struct m_gpu gpu[MAX_GPUS];
  int ngpu;
  struct m_sess s[MAX_SESS];
  int ns;
};

static void copy_str(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src ? src : "");
}

static bool read_servers(const struct jv *root, struct model *m) {
  const struct jv *servers = jget(root, "servers");
  if (servers == NULL || servers->t != J_ARR) return false;
  m->nsrv = m->ngpu = 0;
  for (size_t i = 0; i < servers->n && m->nsrv < 8; i++) {
    const struct jv *js = &servers->kids[i];
    struct m_server *s = &m->srv[m->nsrv];
    memset(s, 0, sizeof *s);
    copy_str(s->name, sizeof s->name, jstr(js, "name"));
    copy_str(s->address, sizeof s->address, jstr(js, "address"));
    s->up = jbool(js, "up");
    s->draining = jbool(js, "draining");
    const struct jv *labels = jget(js, "labels");
    if (labels != NULL && labels->t == J_OBJ) {
      for (size_t l = 0; l < labels->n && s->nlabels < 8; l++) {
        copy_str(s->lkey[s->nlabels], 32, labels->keys[l]);
        copy_str(s->lval[s->nlabels], 32,
                 labels->kids[l].t == J_STR ? labels->kids[l].s : "");
        s->nlabels++;
      }
    }
    const struct jv *gpus = jget(js, "gpus");
    if (gpus == NULL || gpus->t != J_ARR) return false;
    for (size_t g = 0; g < gpus->n && m->ngpu < MAX_GPUS; g++) {
      const struct jv *jg = &gpus->kids[g];
      struct m_gpu *mg = &m->gpu[m->ngpu++];
      memset(mg, 0, sizeof *mg);
      mg->server = m->nsrv;
      copy_str(mg->uuid, sizeof mg->uuid, jstr(jg, "uuid"));
      mg->total = juint(jg, "total_mem");
      mg->reserved = juint(jg, "reserved");
      mg->used = juint(jg, "memory_used");
      mg->sessions = juint(jg, "sessions");
      const struct jv *u = jget(jg, "utilisation");
      mg->util = (u != NULL && u->t == J_NUM) ? (long long)u->num : -1;
    }
    m->nsrv++;
  }
  return true;
}

static bool read_sessions(const struct jv *root, struct model *m) {
  const struct jv *sessions = jget(root, "sessions");
  if (sessions == NULL || sessions->t != J_ARR) return false;
  m->ns = 0;
  for (size_t i = 0; i < sessions->n && m->ns < MAX_SESS; i++) {
    const struct jv *js = &sessions->kids[i];
    struct m_sess *s = &m->s[m->ns++];
    copy_str(s->id, sizeof s->id, jstr(js, "session_id"));
    copy_str(s->tenant, sizeof s->tenant, jstr(js, "tenant"));
    copy_str(s->server, sizeof s->server, jstr(js, "server"));
    copy_str(s->gpu, sizeof s->gpu, jstr(js, "gpu_uuid"));
    s->limit = juint(js, "memory_limit");
    s->used = juint(js, "memory_used");
    s->idle_ms = juint(js, "idle_ms");
    copy_str(s->state, sizeof s->state, jstr(js, "state"));
    copy_str(s->client, sizeof s->client, jstr(js, "client"));
  }
  return true;
}

/* Runs `gpupool CMD --json` with the admin token and parses it into |m|
 * (status: servers and GPUs; sessions: sessions). Returns 0, or -1 after
 * printing why (no failed check: the callers poll). */
static int query(const char *cmd, struct model *m) {
  const char *args[] = {cmd, "--json", NULL};
  struct run *r = cli_run(pool.admin_file, true, args);
  int rc = -1;
  struct jv *root = NULL;
  if (r->status != 0) {
    fprintf(stderr, "gpupool %s --json: exit %d\n%s%s", cmd, r->status,
            r->out, r->err);
    goto out;
  }
  root = json_parse(r->out);
  if (root == NULL) {
    fprintf(stderr, "gpupool %s --json: not JSON:\n%s\n", cmd, r->out);
    goto out;
  }
  bool ok = strcmp(cmd, "status") == 0 ? read_servers(root, m)
                                       : read_sessions(root, m);
  if (!ok) {
    fprintf(stderr, "gpupool %s --json: no \"%s\" array:\n%s\n", cmd,
            strcmp(cmd, "status") == 0 ? "servers" : "sessions", r->out);
    goto out;
  }
  rc = 0;
out:
  json_free(root);
  free(r);
  return rc;
}

/* Both: servers and GPUs from status, sessions from sessions. */
static bool observe(struct model *m) {
  memset(m, 0, sizeof *m);
  bool ok = CHECK_EQ_I(query("status", m), 0);
  ok = CHECK_EQ_I(query("sessions", m), 0) && ok;
  return ok;
}

static const struct m_server *m_server(const struct model *m,
                                       const char *name) {
  for (int i = 0; i < m->nsrv; i++)
    if (strcmp(m->srv[i].name, name) == 0) return &m->srv[i];
  return NULL;
}

static const struct m_sess *m_sess(const struct model *m, const char *id) {
  for (int i = 0; i < m->ns; i++)
    if (strcmp(m->s[i].id, id) == 0) return &m->s[i];
  return NULL;
}

/* The session whose client names process |pid| ("... pid N"). */
static const struct m_sess *m_sess_of_pid(const struct model *m, pid_t pid) {
  char needle[32];
  int len = snprintf(needle, sizeof needle, "pid %d", (int)pid);
  for (int i = 0; i < m->ns; i++) {
    const char *c = strstr(m->s[i].client, needle);
    if (c != NULL && !isdigit((unsigned char)c[len])) return &m->s[i];
  }
  return NULL;
}

static void wait_all_up(int want) {
  struct model m;
  double deadline = gpt_now() + 10.0;
  int up = 0;
  while (gpt_now() < deadline) {
    memset(&m, 0, sizeof m);
    up = 0;
    if (query("status", &m) == 0)
      for (int i = 0; i < pool.n; i++) {
        const struct m_server *s = m_server(&m, pool.name[i]);
        if (s != NULL && s->up) up++;
      }
    if (up == want) break;
    gpt_sleep_ms(50);
  }
  if (!CHECK_EQ_I(up, want)) gpt__abort_scenario();
}

/* Polls status until server |name| is up (or not) as |up| says, for at
 * most |ms|; returns the seconds it took, or -1. */
static double wait_server(const char *name, bool up, bool draining, int ms) {
  double t0 = gpt_now(), deadline = t0 + ms / 1000.0;
  while (gpt_now() < deadline) {
    struct model m;
    memset(&m, 0, sizeof m);
    if (query("status", &m) == 0) {
      const struct m_server *s = m_server(&m, name);
      if (s != NULL && s->up == up && s->draining == draining)
        return gpt_now() - t0;
    }
    gpt_sleep_ms(25);
  }
  return -1;
}

/* ---- The documented placement, implemented here ------------------------------------- */

static bool has_labels(const struct m_server *s, const char *labels) {
  if (labels == NULL || *labels == '\0') return true;
  char buf[256];
  copy_str(buf, sizeof buf, labels);
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (eq == NULL) return false;
    *eq = '\0';
    bool found = false;
    for (int i = 0; i < s->nlabels; i++)
      if (strcmp(s->lkey[i], kv) == 0 && strcmp(s->lval[i], eq + 1) == 0)
        found = true;
    if (!found) return false;
  }
  return true;
}

/* Sessions (granted or running) the broker lists on GPU |g|. */
static unsigned count_on(const struct model *m, const struct m_gpu *g) {
  unsigned n = 0;
  for (int i = 0; i < m->ns; i++)
    if (strcmp(m->s[i].server, m->srv[g->server].name) == 0 &&
        strcmp(m->s[i].gpu, g->uuid) == 0)
      n++;
  return n;
}

static unsigned long long reserved_on(const struct model *m,
                                      const struct m_gpu *g) {
  unsigned long long r = 0;
  for (int i = 0; i < m->ns; i++)
    if (strcmp(m->s[i].server, m->srv[g->server].name) == 0 &&
        strcmp(m->s[i].gpu, g->uuid) == 0)
      r += m->s[i].limit;
  return r;
}

/* <0 when a scores lower (is better) than b. docs/broker.md, "Placement",
 * step 3. */
static int score_cmp(const struct model *m, const struct m_gpu *a,
                     const struct m_gpu *b) {
  /* 1. reserved / total, exactly: a.r * b.t against b.r * a.t. */
  unsigned __int128 fa = (unsigned __int128)a->reserved * b->total;
  unsigned __int128 fb = (unsigned __int128)b->reserved * a->total;
  if (fa != fb) return fa < fb ? -1 : 1;
  /* 2. sessions, granted or running. */
  unsigned sa = count_on(m, a), sb = count_on(m, b);
  if (sa != sb) return sa < sb ? -1 : 1;
  /* 3. utilisation, unknown as 0. */
  long long ua = a->util < 0 ? 0 : a->util, ub = b->util < 0 ? 0 : b->util;
  if (ua != ub) return ua < ub ? -1 : 1;
  /* 4. the server's name, then the GPU's UUID, byte order. */
  int c = strcmp(m->srv[a->server].name, m->srv[b->server].name);
  if (c != 0) return c;
  return strcmp(a->uuid, b->uuid);
}

/* The GPU the broker must choose for |mem| bytes, |labels| and (optional)
 * |server|, or -1 when none fits. */
static int predict(const struct model *m, unsigned long long mem,
                   const char *labels, const char *server) {
  int best = -1;
  for (int i = 0; i < m->ngpu; i++) {
    const struct m_gpu *g = &m->gpu[i];
    const struct m_server *s = &m->srv[g->server];
    if (!s->up || s->draining || !has_labels(s, labels)) continue;
    if (server != NULL && strcmp(server, s->name) != 0) continue;
    if (g->total < g->reserved || g->total - g->reserved < mem) continue;
    if (best < 0 || score_cmp(m, g, &m->gpu[best]) < 0) best = i;
  }
  return best;
}

/* The broker's numbers agree with themselves: every GPU's reserved memory
 * is the sum of the memory limits of the sessions listed on it. */
static void check_reserved(const struct model *m) {
  for (int i = 0; i < m->ngpu; i++) {
    const struct m_gpu *g = &m->gpu[i];
    if (!CHECK_EQ_U(g->reserved, reserved_on(m, g)))
      fprintf(stderr, "    (GPU %s of %s)\n", g->uuid, m->srv[g->server].name);
  }
}

/* ---- Client processes ------------------------------------------------------------------ */

/* One client process holding a session: child_session. */
struct sess {
  struct gpt_child c;
  bool live;
  unsigned long long mem;  /* asked for; 0: none asked */
  char id[40];
  char server[64];
  char gpu[128];
};

static void arg_or_dash(char *out, size_t len, const char *v) {
  copy_str(out, len, v != NULL && *v ? v : "-");
}

/* Starts a client: token |token| (NULL: none), GPUPOOL_MEM |mem| (NULL:
 * none), GPUPOOL_SERVER_NAME |server|, GPUPOOL_LABELS |labels|. Returns 1
 * when it holds a session (its "ready"), 0 when the broker refused it (the
 * child's cuInit result in |*cu| and its stderr in |why|; the child has
 * exited), -1 when something else happened (a failed check). */
static int sess_open(struct sess *s, const char *token, const char *mem,
                     const char *server, const char *labels, int *cu,
                     char *why, size_t whylen) {
  memset(s, 0, sizeof *s);
  char a[4][128];
  arg_or_dash(a[0], sizeof a[0], token);
  arg_or_dash(a[1], sizeof a[1], mem);
  arg_or_dash(a[2], sizeof a[2], server);
  arg_or_dash(a[3], sizeof a[3], labels);
  const char *args[] = {a[0], a[1], a[2], a[3], NULL};
  if (!CHECK_EQ_I(gpt_spawn(&s->c, "child_session", args), 0)) return -1;
  char line[2048];
  if (!CHECK_GT_I(gpt_child_recv(&s->c, line, sizeof line, 30000), 0)) {
    gpt_child_wait(&s->c, 2000);
    return -1;
  }
  if (strcmp(line, "ready") == 0) {
    s->live = true;
    return 1;
  }
  int rc = -1, off = 0;
  if (sscanf(line, "refused %d %n", &rc, &off) == 1) {
    if (cu != NULL) *cu = rc;
    if (why != NULL) copy_str(why, whylen, line + off);
    CHECK_EQ_I(gpt_child_wait(&s->c, 10000), 0);
    return 0;
  }
  gpt__check_fail(__FILE__, __LINE__, "sess_open", "the client said \"%s\"",
                  line);
  gpt_child_wait(&s->c, 2000);
  return -1;
}

/* Sends |cmd| to a live client; its one-line answer into |out|. */
static bool sess_ask(struct sess *s, const char *cmd, char *out, size_t len) {
  if (!s->live) return false;
  if (gpt_child_send(&s->c, cmd) != 0) return false;
  return gpt_child_recv(&s->c, out, len, 30000) > 0;
}

/* The session copies and runs a kernel; true when the results check. */
static bool sess_work(struct sess *s) {
  char line[256] = "";
  bool ok = sess_ask(s, "work", line, sizeof line);
  if (!CHECK_STR_EQ(line, "ok")) return false;
  return ok;
}

/* Ends the client (cuCtxDestroy, exit); true when it exited 0. */
static bool sess_close(struct sess *s) {
  if (!s->live) return true;
  s->live = false;
  gpt_child_send(&s->c, "exit");
  return CHECK_EQ_I(gpt_child_wait(&s->c, 15000), 0);
}

/* Finds |s|'s session in |m| by its process id: the broker's session, its
 * server and GPU into |s|. Returns the session or NULL. */
static const struct m_sess *sess_find(struct sess *s, const struct model *m) {
  const struct m_sess *ms = m_sess_of_pid(m, s->c.pid);
  if (ms != NULL) {
    copy_str(s->id, sizeof s->id, ms->id);
    copy_str(s->server, sizeof s->server, ms->server);
    copy_str(s->gpu, sizeof s->gpu, ms->gpu);
  }
  return ms;
}

/* Opens a session for tenant alice and finds it in the broker's list;
 * aborts the scenario when it cannot. */
static void sess_open_found(struct sess *s, const char *mem,
                            const char *server) {
  REQUIRE_TRUE(sess_open(s, pool.alice_token, mem, server, NULL, NULL, NULL,
                         0) == 1);
  struct model m;
  observe(&m);
  if (!CHECK_TRUE(sess_find(s, &m) != NULL)) {
    fprintf(stderr, "    no session names pid %d in `gpupool sessions`\n",
            (int)s->c.pid);
    gpt__abort_scenario();
  }
  if (server != NULL) CHECK_STR_EQ(s->server, server);
}

/* Waits until the broker lists session |id| in state |state| (NULL: until
 * it does not list it); true if it happened within |ms|. */
static bool wait_session(const char *id, const char *state, int ms) {
  double deadline = gpt_now() + ms / 1000.0;
  do {
    struct model m;
    memset(&m, 0, sizeof m);
    if (query("sessions", &m) == 0) {
      const struct m_sess *s = m_sess(&m, id);
      if (state == NULL ? s == NULL : (s != NULL && strcmp(s->state, state) == 0))
        return true;
    }
    gpt_sleep_ms(25);
  } while (gpt_now() < deadline);
  return false;
}

/* A kernel for the sessions' work: c[i] = a[i] + b[i]. */
static const char vadd_ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry vadd(.param .u64 pa, .param .u64 pb, .param .u64 pc,\n"
    "                     .param .u32 pn)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<6>;\n"
    "  .reg .f32 %f<4>;\n"
    "  .reg .b64 %rd<11>;\n"
    "  ld.param.u64 %rd1, [pa];\n"
    "  ld.param.u64 %rd2, [pb];\n"
    "  ld.param.u64 %rd3, [pc];\n"
    "  ld.param.u32 %r2, [pn];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.u32 %p1, %r1, %r2;\n"
    "  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd4, %rd1;\n"
    "  cvta.to.global.u64 %rd5, %rd2;\n"
    "  cvta.to.global.u64 %rd6, %rd3;\n"
    "  mul.wide.u32 %rd7, %r1, 4;\n"
    "  add.s64 %rd8, %rd4, %rd7;\n"
    "  add.s64 %rd9, %rd5, %rd7;\n"
    "  add.s64 %rd10, %rd6, %rd7;\n"
    "  ld.global.f32 %f1, [%rd8];\n"
    "  ld.global.f32 %f2, [%rd9];\n"
    "  add.f32 %f3, %f1, %f2;\n"
    "  st.global.f32 [%rd10], %f3;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n";

/* Copies to the device and back, runs vadd on 4096 elements; the first
 * failing step, or NULL when every result checked. */
static const char *do_work(void) {
  enum { N = 4096 };
  static float a[N], b[N], c[N];
  for (int i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = (float)(2 * i + 1);
    c[i] = -1.0f;
  }
  CUmodule mod;
  CUfunction fn;
  CUdeviceptr da, db, dc;
  const char *fail = NULL;
  if (cuModuleLoadData(&mod, vadd_ptx) != CUDA_SUCCESS) return "cuModuleLoadData";
  if (cuModuleGetFunction(&fn, mod, "vadd") != CUDA_SUCCESS) fail = "cuModuleGetFunction";
  if (!fail && cuMemAlloc(&da, sizeof a) != CUDA_SUCCESS) fail = "cuMemAlloc";
  if (!fail && cuMemAlloc(&db, sizeof b) != CUDA_SUCCESS) fail = "cuMemAlloc";
  if (!fail && cuMemAlloc(&dc, sizeof c) != CUDA_SUCCESS) fail = "cuMemAlloc";
  if (!fail && (cuMemcpyHtoD(da, a, sizeof a) != CUDA_SUCCESS ||
                cuMemcpyHtoD(db, b, sizeof b) != CUDA_SUCCESS))
    fail = "cuMemcpyHtoD";
  unsigned n = N;
  void *params[] = {&da, &db, &dc, &n};
  if (!fail && cuLaunchKernel(fn, N / 128, 1, 1, 128, 1, 1, 0, NULL, params,
                              NULL) != CUDA_SUCCESS)
    fail = "cuLaunchKernel";
  if (!fail && cuMemcpyDtoH(c, dc, sizeof c) != CUDA_SUCCESS) fail = "cuMemcpyDtoH";
  for (int i = 0; !fail && i < N; i++)
    if (c[i] != a[i] + b[i]) fail = "the results";
  cuMemFree(da);
  cuMemFree(db);
  cuMemFree(dc);
  cuModuleUnload(mod);
  return fail;
}

/* Runs cuInit(0) with stderr going to a temporary file; what it wrote into
 * |why| (newlines as " | "). */
static CUresult init_capturing(char *why, size_t len, CUresult *second) {
  FILE *tmp = tmpfile();
  int saved = dup(2);
  fflush(stderr);
  if (tmp != NULL) dup2(fileno(tmp), 2);
  CUresult r = cuInit(0);
  /* A second call: the refusal again, and its message not printed twice. */
  if (second != NULL) *second = r == CUDA_SUCCESS ? CUDA_SUCCESS : cuInit(0);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  why[0] = '\0';
  if (tmp != NULL) {
    rewind(tmp);
    size_t n = fread(why, 1, len - 1, tmp);
    why[n] = '\0';
    fclose(tmp);
    /* Shown in the test's log too. */
    if (n) fprintf(stderr, "[client pid %d stderr] %s", (int)getpid(), why);
    for (size_t i = 0; i < n; i++)
      if (why[i] == '\n') why[i] = i + 1 < n ? '|' : '\0';
  }
  return r;
}

/* child_session TOKEN MEM SERVER LABELS ("-": not set): asks the broker for
 * a session; "refused RC STDERR" when cuInit fails (RC the CUresult, then
 * again if a second cuInit does not fail the same way or prints again),
 * else a context and 1 MiB allocated, "ready", then commands:
 *   work         copies and a kernel; "ok" or "fail STEP"
 *   meminfo      "mem FREE TOTAL"
 *   alloc BYTES  cuMemAlloc; "alloc RC"
 *   pitch W H    cuMemAllocPitch (element size 4); "pitch RC"
 *   async BYTES  cuMemAllocAsync on the null stream and a sync; "async RC"
 *   freeall      frees what alloc/pitch/async took; "freed"
 *   exit         destroys the context and exits */
static void child_session(int argc, char **argv) {
  REQUIRE_TRUE(argc == 4);
  const char *vars[] = {"GPUPOOL_TOKEN", "GPUPOOL_MEM", "GPUPOOL_SERVER_NAME",
                        "GPUPOOL_LABELS"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(argv[i], "-") == 0)
      unsetenv(vars[i]);
    else
      setenv(vars[i], argv[i], 1);
  }
  char why[4096];
  CUresult again = CUDA_SUCCESS;
  CUresult r = init_capturing(why, sizeof why, &again);
  if (r != CUDA_SUCCESS) {
    /* The refusal stands and is said once. */
    char first[512];
    copy_str(first, sizeof first, why);
    char *bar = strchr(first, '|');
    if (bar) *bar = '\0';
    const char *second = first[0] ? strstr(why, first) : NULL;
    bool twice = second != NULL && strstr(second + 1, first) != NULL;
    if (again != r || twice)
      gpt_child_say("refused %d cuInit again: %d, message printed %s: %s",
                    (int)r, (int)again, twice ? "twice" : "once", why);
    else
      gpt_child_say("refused %d %s", (int)r, why);
    return;
  }
  CUdevice dev;
  CUcontext ctx;
  CUdeviceptr little;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuCtxCreate(&ctx, NULL, 0, dev) != CUDA_SUCCESS ||
      cuMemAlloc(&little, MIB) != CUDA_SUCCESS) {
    gpt_child_say("setup failed");
    return;
  }
  gpt_child_say("ready");
  CUdeviceptr held[64];
  int nheld = 0;
  char line[256];
  while (gpt_child_hear(line, sizeof line, 300000) >= 0) {
    unsigned long long x = 0, y = 0;
    if (strcmp(line, "work") == 0) {
      const char *fail = do_work();
      if (fail == NULL)
        gpt_child_say("ok");
      else
        gpt_child_say("fail %s", fail);
    } else if (strcmp(line, "meminfo") == 0) {
      size_t fr = 0, tot = 0;
      CUresult mr = cuMemGetInfo(&fr, &tot);
      gpt_child_say("mem %zu %zu %d", fr, tot, (int)mr);
    } else if (sscanf(line, "alloc %llu", &x) == 1) {
      CUdeviceptr p = 0;
      CUresult ar = cuMemAlloc(&p, (size_t)x);
      if (ar == CUDA_SUCCESS && nheld < 64) held[nheld++] = p;
      gpt_child_say("alloc %d", (int)ar);
    } else if (sscanf(line, "pitch %llu %llu", &x, &y) == 2) {
      CUdeviceptr p = 0;
      size_t pitch = 0;
      CUresult ar = cuMemAllocPitch(&p, &pitch, (size_t)x, (size_t)y, 4);
      if (ar == CUDA_SUCCESS && nheld < 64) held[nheld++] = p;
      gpt_child_say("pitch %d", (int)ar);
    } else if (sscanf(line, "async %llu", &x) == 1) {
      CUdeviceptr p = 0;
      CUresult ar = cuMemAllocAsync(&p, (size_t)x, NULL);
      CUresult sr = cuStreamSynchronize(NULL);
      if (ar == CUDA_SUCCESS && sr == CUDA_SUCCESS && nheld < 64) held[nheld++] = p;
      gpt_child_say("async %d", (int)(ar != CUDA_SUCCESS ? ar : sr));
    } else if (strcmp(line, "freeall") == 0) {
      for (int i = 0; i < nheld; i++) cuMemFree(held[i]);
      nheld = 0;
      gpt_child_say("freed");
    } else if (strcmp(line, "exit") == 0) {
      break;
    }
  }
  cuCtxDestroy(ctx);
}

/* ---- placement ---------------------------------------------------------------------------- */

/* One arrival: predicts, opens, checks the broker put it there. */
static void arrive(struct sess *s, unsigned long long mem, const char *labels,
                   int n) {
  struct model before;
  if (!observe(&before)) gpt__abort_scenario();
  check_reserved(&before);
  int want = predict(&before, mem, labels, NULL);
  char memarg[32];
  snprintf(memarg, sizeof memarg, "%lluM", mem / MIB);
  int cu = 0;
  char why[1024] = "";
  int r = sess_open(s, pool.alice_token, memarg, NULL, labels, &cu, why,
                    sizeof why);
  s->mem = mem;
  if (want < 0) {
    /* Nothing fits: refused, and said why. */
    CHECK_EQ_I(r, 0);
    if (r == 1) sess_close(s);
    CHECK_EQ_I(cu, CUDA_ERROR_NO_DEVICE);
    CHECK_TRUE(why[0] != '\0');
    printf("arrival %d: %llu MiB%s%s: refused as predicted: %s\n", n,
           mem / MIB, labels ? " labels " : "", labels ? labels : "", why);
    return;
  }
  if (!CHECK_EQ_I(r, 1)) {
    fprintf(stderr, "    arrival %d (%llu MiB): the broker refused: %s\n", n,
            mem / MIB, why);
    return;
  }
  struct model after;
  if (!observe(&after)) return;
  const struct m_sess *ms = sess_find(s, &after);
  if (!CHECK_TRUE(ms != NULL)) {
    fprintf(stderr, "    arrival %d: no session names pid %d\n", n,
            (int)s->c.pid);
    return;
  }
  const struct m_gpu *g = &before.gpu[want];
  const char *want_server = before.srv[g->server].name;
  printf("arrival %2d: %4llu MiB%s%-7s -> %s (predicted %s; fractions before:",
         n, mem / MIB, labels ? " " : "", labels ? labels : "", ms->server,
         want_server);
  for (int i = 0; i < before.ngpu; i++)
    printf(" %s %llu/%llu MiB", before.srv[before.gpu[i].server].name,
           before.gpu[i].reserved / MIB, before.gpu[i].total / MIB);
  printf(")\n");
  CHECK_STR_EQ(ms->server, want_server);
  CHECK_STR_EQ(ms->gpu, g->uuid);
  CHECK_EQ_U(ms->limit, mem);
  CHECK_STR_EQ(ms->tenant, "alice");
  CHECK_TRUE(strcmp(ms->state, "granted") == 0 ||
             strcmp(ms->state, "running") == 0);
  /* The reservation is taken at once. */
  for (int i = 0; i < after.ngpu; i++) {
    if (strcmp(after.srv[after.gpu[i].server].name, want_server) == 0 &&
        strcmp(after.gpu[i].uuid, g->uuid) == 0)
      CHECK_EQ_U(after.gpu[i].reserved, g->reserved + mem);
  }
}

static void test_placement(int argc, char **argv) {
  const char *specs[] = {"1G", "--label", "zone=a", NULL,
                         "2G", "--label", "zone=a", NULL,
                         "4G", "--label", "zone=b", NULL};
  pool_start(3, specs);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  /* What the servers registered: their address, labels, one GPU each with
   * the --emu-memory size. */
  for (int i = 0; i < 3; i++) {
    const struct m_server *s = m_server(&m, pool.name[i]);
    REQUIRE_TRUE(s != NULL);
    CHECK_STR_EQ(s->address, pool.srv[i].addr);
    CHECK_TRUE(s->up);
    CHECK_TRUE(!s->draining);
    CHECK_EQ_I(s->nlabels, 1);
    CHECK_STR_EQ(s->lkey[0], "zone");
    CHECK_STR_EQ(s->lval[0], i == 2 ? "b" : "a");
  }
  CHECK_EQ_I(m.ngpu, 3);
  for (int i = 0; i < m.ngpu; i++) {
    int idx = server_index(m.srv[m.gpu[i].server].name);
    CHECK_GE_I(idx, 0);
    CHECK_EQ_U(m.gpu[i].total, (1ull << (idx < 0 ? 0 : idx)) * 1024 * MIB);
    CHECK_EQ_U(m.gpu[i].reserved, 0);
    CHECK_TRUE(m.gpu[i].uuid[0] != '\0');
    /* Each server's emulated device has its own UUID (derived from its
     * --name), so the pool's status never shows one device twice. */
    for (int j = 0; j < i; j++)
      CHECK_TRUE(strcmp(m.gpu[i].uuid, m.gpu[j].uuid) != 0);
  }
  CHECK_EQ_I(m.ns, 0);

  static const unsigned long long sizes[] = {128, 64, 192, 96, 256, 160};
  static struct sess s[48];
  int n = 0;
  for (; n < 30; n++) {
    const char *labels = NULL;
    if (n % 7 == 3) labels = "zone=a";
    if (n % 11 == 5) labels = "zone=b";
    arrive(&s[n], sizes[n % 6] * MIB, labels, n);
  }
  /* More than the best-scoring GPU has free: the next best that holds it
   * (step 2 before step 3). */
  REQUIRE_TRUE(observe(&m));
  int first = predict(&m, 0, NULL, NULL);
  REQUIRE_TRUE(first >= 0);
  unsigned long long squeeze =
      m.gpu[first].total - m.gpu[first].reserved + 32 * MIB;
  int other = predict(&m, squeeze, NULL, NULL);
  REQUIRE_TRUE(other >= 0);
  CHECK_NE_I(other, first);
  printf("squeeze: %llu MiB, more than %s has free\n", squeeze / MIB,
         m.srv[m.gpu[first].server].name);
  arrive(&s[n], squeeze, NULL, n);
  n++;
  /* Larger than any GPU's free memory; a label nobody has. */
  struct sess big, nolabel;
  arrive(&big, 5ull * 1024 * MIB, NULL, n);
  arrive(&nolabel, 64 * MIB, "zone=c", n);

  /* Every client has its session running on the server the broker named:
   * its work runs, and the broker shows it running after a heartbeat. */
  for (int i = 0; i < 30; i += 7) CHECK_TRUE(sess_work(&s[i]));
  for (int i = 0; i < n; i++)
    if (s[i].live && s[i].id[0]) {
      if (!CHECK_TRUE(wait_session(s[i].id, "running", 3000)))
        fprintf(stderr, "    session %s not running\n", s[i].id);
    }
  REQUIRE_TRUE(observe(&m));
  check_reserved(&m);
  CHECK_EQ_I(m.ns, 31);
  for (int i = 0; i < m.ngpu; i++)
    CHECK_EQ_U(m.gpu[i].sessions, count_on(&m, &m.gpu[i]));

  /* A third of them end: their reservations go at once. */
  for (int i = 0; i < 30; i += 3) {
    CHECK_TRUE(sess_close(&s[i]));
    if (s[i].id[0]) CHECK_TRUE(wait_session(s[i].id, NULL, 3000));
  }
  REQUIRE_TRUE(observe(&m));
  check_reserved(&m);
  CHECK_EQ_I(m.ns, 21);
  for (int i = 0; i < 31; i++) {
    const struct m_sess *ms = s[i].id[0] ? m_sess(&m, s[i].id) : NULL;
    CHECK_TRUE((ms != NULL) == s[i].live);
  }
  /* And the next placements follow the freed memory. */
  for (int k = 0; k < 6; k++, n++)
    arrive(&s[n], sizes[(k + 2) % 6] * MIB, k == 4 ? "zone=a" : NULL, n);

  for (int i = 0; i < n; i++) sess_close(&s[i]);
  for (int i = 0; i < n; i++)
    if (s[i].id[0]) CHECK_TRUE(wait_session(s[i].id, NULL, 3000));
  REQUIRE_TRUE(observe(&m));
  CHECK_EQ_I(m.ns, 0);
  for (int i = 0; i < m.ngpu; i++) CHECK_EQ_U(m.gpu[i].reserved, 0);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- server_down ---------------------------------------------------------------------------- */

static void test_server_down(int argc, char **argv) {
  const char *specs[] = {"2G", NULL, "2G", NULL, "2G", NULL};
  pool_start(3, specs);
  /* A session whose worker is killed: its server tells the broker, which
   * releases it at once. */
  struct sess x;
  sess_open_found(&x, "512M", "pool03");
  CHECK_TRUE(wait_session(x.id, "running", 3000));
  pid_t workers[4];
  int nw = gpt_server_workers(&pool.srv[2], workers, 4);
  if (!CHECK_EQ_I(nw, 1)) REQUIRE_TRUE(nw == 1);
  kill(workers[0], SIGKILL);
  double tk = gpt_now();
  CHECK_TRUE(wait_session(x.id, NULL, 3000));
  double released = gpt_now() - tk;
  printf("a killed worker's session released %.2f s after the kill\n",
         released);
  /* Sooner than down_after_ms (1000 ms), the earliest the broker could
   * have released it for a server gone silent: the end was reported. */
  CHECK_TRUE(released < 1.0);
  x.live = false;
  gpt_child_send(&x.c, "exit");
  gpt_child_wait(&x.c, 15000);

  struct sess a, b, c;
  sess_open_found(&a, "256M", "pool01");
  sess_open_found(&b, "256M", "pool02");
  sess_open_found(&c, "256M", "pool03");
  CHECK_TRUE(wait_session(b.id, "running", 3000));

  /* pool02 dies, its sessions with it. */
  gpt_server_signal(&pool.srv[1], SIGKILL, true);
  double t = wait_server("pool02", false, false, 6000);
  printf("pool02 shown down %.2f s after SIGKILL\n", t);
  /* No heartbeat for down_after_ms (1000 ms; the last one came at most
   * heartbeat_ms, 200 ms, before the kill). */
  CHECK_GE_D(t, 0.75);
  CHECK_LE_D(t, 3.0);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  CHECK_TRUE(m_server(&m, "pool01") && m_server(&m, "pool01")->up);
  CHECK_TRUE(m_server(&m, "pool03") && m_server(&m, "pool03")->up);
  /* The broker leaves the down server's sessions listed. */
  const struct m_sess *ms = m_sess(&m, b.id);
  if (CHECK_TRUE(ms != NULL)) CHECK_STR_EQ(ms->server, "pool02");

  /* New sessions avoid it, even though it is the emptiest otherwise
   * (every server holds 256 MiB; pool02 would win on its name). */
  struct sess more[4];
  for (int i = 0; i < 4; i++) {
    sess_open_found(&more[i], "128M", NULL);
    CHECK_TRUE(strcmp(more[i].server, "pool02") != 0);
  }
  int cu = 0;
  char why[1024] = "";
  struct sess pinned;
  CHECK_EQ_I(sess_open(&pinned, pool.alice_token, "64M", "pool02", NULL, &cu,
                       why, sizeof why), 0);
  CHECK_EQ_I(cu, CUDA_ERROR_NO_DEVICE);
  CHECK_TRUE(why[0] != '\0');

  /* The sessions on the other servers carry on. */
  CHECK_TRUE(sess_work(&a));
  CHECK_TRUE(sess_work(&c));
  for (int i = 0; i < 4; i++) CHECK_TRUE(sess_work(&more[i]));

  /* pool03 stopped (its supervisor only): down, then up again at its next
   * heartbeat once it runs again. */
  gpt_server_signal(&pool.srv[2], SIGSTOP, false);
  t = wait_server("pool03", false, false, 6000);
  printf("pool03 shown down %.2f s after SIGSTOP\n", t);
  CHECK_GE_D(t, 0.75);
  CHECK_LE_D(t, 3.0);
  struct sess d;
  sess_open_found(&d, "64M", NULL);
  CHECK_STR_EQ(d.server, "pool01");
  gpt_server_signal(&pool.srv[2], SIGCONT, false);
  t = wait_server("pool03", true, false, 5000);
  printf("pool03 shown up %.2f s after SIGCONT\n", t);
  CHECK_GE_D(t, 0.0);
  CHECK_LE_D(t, 1.5);
  CHECK_TRUE(sess_work(&c));

  sess_close(&a);
  sess_close(&c);
  sess_close(&d);
  for (int i = 0; i < 4; i++) sess_close(&more[i]);
  /* b's process lost its server; it ends however it ends. */
  b.live = false;
  gpt_child_send(&b.c, "exit");
  gpt_child_wait(&b.c, 15000);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- drain -------------------------------------------------------------------------------------- */

static void test_drain(int argc, char **argv) {
  const char *specs[] = {"2G", NULL, "2G", NULL};
  pool_start(2, specs);
  struct sess a;
  sess_open_found(&a, "128M", "pool01");

  /* A tenant may not drain. */
  const char *d1[] = {"drain", "pool01", NULL};
  struct run *r = cli_run(pool.alice_file, false, d1);
  CHECK_EQ_I(r->status, 1);
  CHECK_TRUE(r->err[0] != '\0');
  free(r);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  CHECK_TRUE(m_server(&m, "pool01") && !m_server(&m, "pool01")->draining);

  /* The admin may. */
  r = cli_run(pool.admin_file, false, d1);
  CHECK_EQ_I(r->status, 0);
  free(r);
  REQUIRE_TRUE(observe(&m));
  const struct m_server *s1 = m_server(&m, "pool01");
  if (CHECK_TRUE(s1 != NULL)) {
    CHECK_TRUE(s1->draining);
    CHECK_TRUE(s1->up);
  }
  /* Plain output says so too. */
  const char *st[] = {"status", NULL};
  r = cli_run(pool.admin_file, false, st);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(strstr(r->out, "pool01") != NULL);
  CHECK_TRUE(strstr(r->out, "pool02") != NULL);
  CHECK_TRUE(strstr(r->out, "draining") != NULL);
  free(r);

  /* No new session there, though it holds less than pool02 will. */
  struct sess b[3];
  for (int i = 0; i < 3; i++) {
    sess_open_found(&b[i], "256M", NULL);
    CHECK_STR_EQ(b[i].server, "pool02");
  }
  int cu = 0;
  char why[1024] = "";
  struct sess pinned;
  CHECK_EQ_I(sess_open(&pinned, pool.alice_token, "64M", "pool01", NULL, &cu,
                       why, sizeof why), 0);
  CHECK_EQ_I(cu, CUDA_ERROR_NO_DEVICE);
  CHECK_TRUE(why[0] != '\0');

  /* The running one finishes fine. */
  CHECK_TRUE(sess_work(&a));
  const char *ss[] = {"sessions", NULL};
  r = cli_run(pool.admin_file, false, ss);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(strstr(r->out, a.id) != NULL);
  CHECK_TRUE(strstr(r->out, "alice") != NULL);
  free(r);
  CHECK_TRUE(sess_close(&a));
  CHECK_TRUE(wait_session(a.id, NULL, 3000));

  /* A tenant sees its own sessions only; the admin every one. */
  struct sess c;
  REQUIRE_TRUE(sess_open(&c, pool.bob_token, "64M", NULL, NULL, NULL, NULL, 0) == 1);
  r = cli_run(pool.bob_file, false, ss);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(strstr(r->out, "bob") != NULL);
  CHECK_TRUE(strstr(r->out, b[0].id) == NULL);
  free(r);

  /* Undrained: eligible again, and the emptiest. */
  const char *u1[] = {"undrain", "pool01", NULL};
  r = cli_run(pool.alice_file, false, u1);
  CHECK_EQ_I(r->status, 1);
  CHECK_TRUE(r->err[0] != '\0');
  free(r);
  r = cli_run(pool.admin_file, false, u1);
  CHECK_EQ_I(r->status, 0);
  free(r);
  CHECK_GE_D(wait_server("pool01", true, false, 2000), 0.0);
  struct sess e;
  sess_open_found(&e, "64M", NULL);
  CHECK_STR_EQ(e.server, "pool01");
  CHECK_TRUE(sess_work(&e));

  /* An unknown server: refused. Usage: 2. No broker there: 3. */
  const char *d2[] = {"drain", "pool99", NULL};
  r = cli_run(pool.admin_file, false, d2);
  CHECK_EQ_I(r->status, 1);
  CHECK_TRUE(r->err[0] != '\0');
  free(r);
  const char *d3[] = {"drain", NULL};
  r = cli_run(pool.admin_file, false, d3);
  CHECK_EQ_I(r->status, 2);
  free(r);
  const char *nob[] = {cli_path(), "status", "--broker", "127.0.0.1:1",
                       "--token-file", pool.admin_file, NULL};
  r = run_cmd(nob, 20, false);
  CHECK_EQ_I(r->status, 3);
  CHECK_TRUE(r->err[0] != '\0');
  free(r);
  /* A token the broker does not know: refused. */
  char bad[320];
  REQUIRE_TRUE(gpt_write_file(pool.b.dir, "bad.token", "nobody\n", 0600, bad,
                              sizeof bad) == 0);
  r = cli_run(bad, false, st);
  CHECK_EQ_I(r->status, 1);
  CHECK_TRUE(r->err[0] != '\0');
  free(r);

  for (int i = 0; i < 3; i++) sess_close(&b[i]);
  sess_close(&c);
  sess_close(&e);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- broker_restart ------------------------------------------------------------------------------ */

static void test_broker_restart(int argc, char **argv) {
  const char *specs[] = {"2G", NULL, "2G", NULL};
  pool_start(2, specs);
  struct sess a, b;
  sess_open_found(&a, "256M", "pool01");
  sess_open_found(&b, "192M", "pool02");
  CHECK_TRUE(wait_session(a.id, "running", 3000));
  CHECK_TRUE(wait_session(b.id, "running", 3000));

  gpt_broker_kill(&pool.b);
  double t0 = gpt_now();
  /* Without a broker: the running sessions go on, a new one is refused. */
  CHECK_TRUE(sess_work(&a));
  CHECK_TRUE(sess_work(&b));
  int cu = 0;
  char why[1024] = "";
  struct sess none;
  CHECK_EQ_I(sess_open(&none, pool.alice_token, "64M", NULL, NULL, &cu, why,
                       sizeof why), 0);
  CHECK_EQ_I(cu, CUDA_ERROR_NO_DEVICE);
  CHECK_TRUE(why[0] != '\0');
  const char *st[] = {"status", NULL};
  struct run *r = cli_run(pool.admin_file, false, st);
  CHECK_EQ_I(r->status, 3);
  free(r);
  gpt_sleep_ms(500);

  /* The same port, the same config: the servers register again, listing
   * their sessions. */
  REQUIRE_TRUE(gpt_broker_restart(&pool.b) == 0);
  printf("broker restarted on %s %.2f s after it was killed\n", pool.b.addr,
         gpt_now() - t0);
  double t1 = gpt_now();
  bool both = false;
  struct model m;
  while (gpt_now() < t1 + 10.0) {
    memset(&m, 0, sizeof m);
    if (query("status", &m) == 0 && query("sessions", &m) == 0 &&
        m_sess(&m, a.id) && m_sess(&m, b.id) && m_server(&m, "pool01") &&
        m_server(&m, "pool02") && m_server(&m, "pool01")->up &&
        m_server(&m, "pool02")->up) {
      both = true;
      break;
    }
    gpt_sleep_ms(50);
  }
  printf("the servers and their sessions are back %.2f s after the restart\n",
         gpt_now() - t1);
  REQUIRE_TRUE(both);
  /* At most the reconnect backoff's 5 s step, and a heartbeat. */
  CHECK_LE_D(gpt_now() - t1, 6.5);
  const struct m_sess *sa = m_sess(&m, a.id), *sb = m_sess(&m, b.id);
  CHECK_STR_EQ(sa->server, "pool01");
  CHECK_STR_EQ(sb->server, "pool02");
  CHECK_STR_EQ(sa->tenant, "alice");
  CHECK_STR_EQ(sb->tenant, "alice");
  CHECK_STR_EQ(sa->state, "running");
  CHECK_STR_EQ(sb->state, "running");
  CHECK_EQ_U(sa->limit, 256 * MIB);
  CHECK_EQ_U(sb->limit, 192 * MIB);
  CHECK_STR_EQ(sa->gpu, a.gpu);
  CHECK_STR_EQ(sb->gpu, b.gpu);
  check_reserved(&m);
  const struct m_sess *ms = m_sess(&m, a.id);
  (void)ms;
  const char *ss[] = {"sessions", NULL};
  r = cli_run(pool.admin_file, false, ss);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(strstr(r->out, a.id) != NULL);
  CHECK_TRUE(strstr(r->out, b.id) != NULL);
  free(r);

  /* The sessions' programs never noticed. */
  CHECK_TRUE(sess_work(&a));
  CHECK_TRUE(sess_work(&b));

  /* The new broker places as the old one would: pool02 holds less. */
  struct model before;
  REQUIRE_TRUE(observe(&before));
  int want = predict(&before, 128 * MIB, NULL, NULL);
  REQUIRE_TRUE(want >= 0);
  struct sess c;
  sess_open_found(&c, "128M", NULL);
  CHECK_STR_EQ(c.server, before.srv[before.gpu[want].server].name);
  CHECK_STR_EQ(c.server, "pool02");
  CHECK_TRUE(sess_work(&c));

  /* Ends are reported to the new broker. */
  CHECK_TRUE(sess_close(&a));
  CHECK_TRUE(wait_session(a.id, NULL, 3000));
  sess_close(&b);
  sess_close(&c);
  CHECK_TRUE(wait_session(b.id, NULL, 3000));
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- grants ------------------------------------------------------------------------------------------ */

/* The broker speaks TLS; a raw peer of it presents the pool servers'
 * client certificate (which registering needs; requests do not). */
static bool raw_open(struct gpt_raw *r, const char *addr) {
  REQUIRE_TRUE(gpt_raw_port(addr) > 0);
  if (strcmp(addr, pool.b.addr) == 0) {
    char why[512];
    bool ok = gpt_raw_open_tls(r, gpt_raw_port(addr), 10000,
                               gpt_cert("ca.pem", false),
                               gpt_cert("server.pem", false),
                               gpt_cert("server.key", false), why,
                               sizeof why);
    if (!ok) printf("TLS to the broker: %s\n", why);
    return ok;
  }
  return gpt_raw_open(r, gpt_raw_port(addr), 10000);
}

/* The key a raw session request binds its grant to (docs/security.md),
 * as the client library makes one per request. */
static uint8_t bind_priv[GP_BINDING_KEY_LEN], bind_pub[GP_BINDING_KEY_LEN];
static bool bind_made;

static void bind_key(void) {
  if (!bind_made) REQUIRE_TRUE(gp_binding_keypair(bind_priv, bind_pub) == 0);
  bind_made = true;
}

/* The proof of |grant| on |r|'s connection with |priv|: its TLS exporter,
 * or 32 zero bytes on plain TCP. */
static void make_proof(struct gpt_raw *r, const uint8_t *priv,
                       const uint8_t *grant, size_t len,
                       uint8_t proof[GP_GRANT_PROOF_LEN]) {
  uint8_t ex[GP_GRANT_EXPORTER_LEN] = {0};
  if (gp_wire_is_tls(&r->w))
    REQUIRE_TRUE(gp_wire_tls_exporter(&r->w, ex) == 0);
  REQUIRE_TRUE(gp_grant_proof(priv, ex, grant, len, proof) == 0);
}



/* One request and its reply: the result (GPT_RAW_FAILED: the connection
 * failed), the reply in |*rep| when asked for. */
static int raw_call(struct gpt_raw *r, uint16_t type, const ProtobufCMessage *m,
                    ProtobufCMessage **rep) {
  return gpt_raw_call(r, type, m, NULL, 0, NULL, 0, rep);
}

/* HELLO with |grant| (|len| bytes; NULL: none) to |addr|: the reply's
 * result, its message into |why|. The connection stays open in |r| when
 * the session was admitted, else it is checked to be closed by the
 * server. */
static int hello_on(struct gpt_raw *r, const uint8_t *grant, size_t len,
                    const uint8_t *proof, size_t proof_len, char *why,
                    size_t whylen);

/* The proof is made with the test's binding key on the new connection;
 * hello_on() sends HELLO on an open connection |r| with the |proof| given
 * (NULL: none). */
static int hello(struct gpt_raw *r, const char *addr, const uint8_t *grant,
                 size_t len, char *why, size_t whylen) {
  uint8_t proof[GP_GRANT_PROOF_LEN];
  why[0] = '\0';
  if (!CHECK_TRUE(raw_open(r, addr))) return -1;
  bind_key();
  if (grant != NULL) make_proof(r, bind_priv, grant, len, proof);
  return hello_on(r, grant, len, grant != NULL ? proof : NULL, sizeof proof,
                  why, whylen);
}

static int hello_on(struct gpt_raw *r, const uint8_t *grant, size_t len,
                    const uint8_t *proof, size_t proof_len, char *why,
                    size_t whylen) {
  why[0] = '\0';
  Gpupool__HelloRequest h = GPUPOOL__HELLO_REQUEST__INIT;
  h.min_version = GP_PROTOCOL_VERSION_MIN;
  h.max_version = GP_PROTOCOL_VERSION_MAX;
  h.client_name = "test_pool";
  h.hostname = "localhost";
  h.pid = (uint32_t)getpid();
  if (grant != NULL) {
    h.grant.data = (uint8_t *)grant;
    h.grant.len = len;
  }
  if (proof != NULL) {
    h.grant_proof.data = (uint8_t *)proof;
    h.grant_proof.len = proof_len;
  }
  ProtobufCMessage *rep = NULL;
  int res = raw_call(r, GP_MSG_HELLO, &h.base, &rep);
  if (rep != NULL) {
    const Gpupool__HelloReply *hr = (const Gpupool__HelloReply *)rep;
    copy_str(why, whylen, hr->message);
    protobuf_c_message_free_unpacked(rep, NULL);
  }
  if (res != 0 && res != GPT_RAW_FAILED) {
    /* Refused: the worker exits, so the next request finds the connection
     * closed. */
    Gpupool__CtxCreate cc = GPUPOOL__CTX_CREATE__INIT;
    cc.ctx = 5;
    CHECK_EQ_I(raw_call(r, GP_MSG_CTX_CREATE, &cc.base, NULL), GPT_RAW_FAILED);
  }
  if (res != 0) gpt_raw_close(r);
  return res;
}

static uint64_t unix_now(void) { return (uint64_t)time(NULL); }

/* Signs |g| with |key|. */
static uint8_t *sign(const uint8_t *key, size_t keylen, const Gpupool__Grant *g,
                     size_t *len) {
  uint8_t *out = NULL;
  REQUIRE_TRUE(gp_grant_sign(key, keylen, g, &out, len) == 0);
  return out;
}

static void test_grants(int argc, char **argv) {
  const char *specs[] = {"1G", NULL, "1G", NULL};
  pool_start(2, specs);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  const char *uuid1 = NULL;
  for (int i = 0; i < m.ngpu; i++)
    if (strcmp(m.srv[m.gpu[i].server].name, "pool01") == 0) uuid1 = m.gpu[i].uuid;
  REQUIRE_TRUE(uuid1 != NULL && *uuid1);

  uint8_t key[GP_KEY_MAX_LEN], other[32];
  size_t keylen = 0;
  char why[512];
  REQUIRE_TRUE(gp_key_load(pool.b.key_file, key, &keylen, why, sizeof why) == 0);
  for (size_t i = 0; i < sizeof other; i++) other[i] = (uint8_t)(key[i] ^ 0x5a);
  uint8_t nonce[16];
  for (size_t i = 0; i < sizeof nonce; i++) nonce[i] = (uint8_t)(i * 37 + 1);

  uint64_t now = unix_now();
  bind_key();
  Gpupool__Grant g = GPUPOOL__GRANT__INIT;
  g.version = GP_GRANT_VERSION;
  g.binding_key.data = bind_pub;
  g.binding_key.len = sizeof bind_pub;
  g.session_id = 0x1234567890abcdefull;
  g.tenant = "alice";
  g.server = "pool01";
  g.gpu_uuid = (char *)uuid1;
  g.memory_limit = 64 * MIB;
  g.issued_unix = now;
  g.expires_unix = now + 30;
  g.nonce.data = nonce;
  g.nonce.len = sizeof nonce;
  const char *a1 = pool.srv[0].addr;
  struct gpt_raw r;
  size_t len;
  uint8_t *buf;
  int res;

  /* No grant at all. */
  res = hello(&r, a1, NULL, 0, why, sizeof why);
  printf("no grant: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "grant") != NULL);

  /* Expired 12 s ago. */
  g.issued_unix = now - 72;
  g.expires_unix = now - 12;
  g.session_id++;
  buf = sign(key, keylen, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("expired: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "expired") != NULL);
  free(buf);
  g.issued_unix = now;
  g.expires_unix = now + 30;

  /* Signed with another key. */
  g.session_id++;
  buf = sign(other, sizeof other, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("forged: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "signature") != NULL);
  free(buf);

  /* The right key, one byte of the body changed after signing. */
  g.session_id++;
  buf = sign(key, keylen, &g, &len);
  buf[len / 3] ^= 0x01;
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("altered: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  /* Cut short. */
  buf[len / 3] ^= 0x01;
  res = hello(&r, a1, buf, len - 1, why, sizeof why);
  printf("truncated: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  free(buf);

  /* For the other server. */
  g.session_id++;
  g.server = "pool02";
  buf = sign(key, keylen, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("other server: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "pool02") != NULL);
  free(buf);
  g.server = "pool01";

  /* A GPU it does not offer; a version it does not know. */
  g.session_id++;
  g.gpu_uuid = "GPU-00000000-0000-0000-0000-000000000000";
  buf = sign(key, keylen, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("other GPU: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  free(buf);
  g.gpu_uuid = (char *)uuid1;
  g.session_id++;
  g.version = 2;
  buf = sign(key, keylen, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("version 2: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  free(buf);
  g.version = GP_GRANT_VERSION;

  /* Garbage. */
  uint8_t junk[80];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 101 + 7);
  res = hello(&r, a1, junk, sizeof junk, why, sizeof why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);

  /* A good one is admitted, and the session works... */
  g.session_id++;
  buf = sign(key, keylen, &g, &len);
  res = hello(&r, a1, buf, len, why, sizeof why);
  printf("good: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, 0);
  if (res == 0) {
    Gpupool__CtxCreate cc = GPUPOOL__CTX_CREATE__INIT;
    cc.ctx = 5;
    CHECK_EQ_I(raw_call(&r, GP_MSG_CTX_CREATE, &cc.base, NULL), 0);
  }
  /* ...once: the same grant again is refused, while the first session is
   * open and after it ended. */
  struct gpt_raw r2;
  res = hello(&r2, a1, buf, len, why, sizeof why);
  printf("reused: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  gpt_raw_close(&r);
  gpt_sleep_ms(200);
  res = hello(&r2, a1, buf, len, why, sizeof why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  free(buf);

  /* Bound to the connection (docs/security.md). No proof; a proof made
   * with another key than the grant's: refused, and the grant is not
   * used up by them. */
  uint8_t proof[GP_GRANT_PROOF_LEN], okey[GP_BINDING_KEY_LEN];
  uint8_t opub[GP_BINDING_KEY_LEN];
  REQUIRE_TRUE(gp_binding_keypair(okey, opub) == 0);
  g.session_id++;
  buf = sign(key, keylen, &g, &len);
  REQUIRE_TRUE(raw_open(&r, a1));
  res = hello_on(&r, buf, len, NULL, 0, why, sizeof why);
  printf("no proof: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_STR_EQ(why, "grant not bound to this connection");
  REQUIRE_TRUE(raw_open(&r, a1));
  make_proof(&r, okey, buf, len, proof);
  res = hello_on(&r, buf, len, proof, sizeof proof, why, sizeof why);
  printf("another key's proof: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_STR_EQ(why, "grant not bound to this connection");
  /* A proof for another grant. */
  {
    uint8_t *other_grant;
    size_t olen;
    g.session_id++;
    other_grant = sign(key, keylen, &g, &olen);
    REQUIRE_TRUE(raw_open(&r, a1));
    make_proof(&r, bind_priv, other_grant, olen, proof);
    res = hello_on(&r, buf, len, proof, sizeof proof, why, sizeof why);
    printf("another grant's proof: %d \"%s\"\n", res, why);
    CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
    CHECK_STR_EQ(why, "grant not bound to this connection");
    free(other_grant);
  }
  /* Replayed on another connection with the proof copied from the first
   * (made for the first connection, which has not sent its HELLO yet). On
   * TLS the exporters differ: refused, and the owner's connection is
   * admitted after. On plain TCP (--insecure) both exporters are the 32
   * zero bytes: the copy wins the race, and the owner finds the grant
   * used (the weakness docs/security.md states). */
  {
    struct gpt_raw owner, thief;
    REQUIRE_TRUE(raw_open(&owner, a1));
    make_proof(&owner, bind_priv, buf, len, proof);
    REQUIRE_TRUE(raw_open(&thief, a1));
    bool tls = gp_wire_is_tls(&thief.w);
    res = hello_on(&thief, buf, len, proof, sizeof proof, why, sizeof why);
    printf("replayed with the copied proof (%s): %d \"%s\"\n",
           tls ? "TLS" : "plain", res, why);
    if (tls) {
      CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
      CHECK_STR_EQ(why, "grant not bound to this connection");
    } else {
      CHECK_EQ_I(res, 0);
      gpt_raw_close(&thief);
    }
    res = hello_on(&owner, buf, len, proof, sizeof proof, why, sizeof why);
    printf("the owner's HELLO after: %d \"%s\"\n", res, why);
    if (tls) {
      CHECK_EQ_I(res, 0);
    } else {
      CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
      CHECK_TRUE(strstr(why, "already used") != NULL);
    }
    if (res == 0) gpt_raw_close(&owner);
  }
  free(buf);

  /* A real grant from the broker, as the client library gets one. */
  struct gpt_raw br;
  REQUIRE_TRUE(raw_open(&br, pool.b.addr));
  Gpupool__BrokerSessionRequest q = GPUPOOL__BROKER_SESSION_REQUEST__INIT;
  q.token.data = (uint8_t *)pool.alice_token;
  q.token.len = strlen(pool.alice_token);
  q.memory = 64 * MIB;
  q.gpu_count = 1;
  q.server = "pool02";
  q.client = "test_pool grants";
  q.binding_key.data = bind_pub;
  q.binding_key.len = sizeof bind_pub;
  ProtobufCMessage *rep = NULL;
  res = raw_call(&br, GP_MSG_BROKER_REQUEST_SESSION, &q.base, &rep);
  gpt_raw_close(&br);
  REQUIRE_TRUE(res == 0 && rep != NULL);
  Gpupool__BrokerSessionGrant *bg = (Gpupool__BrokerSessionGrant *)rep;
  CHECK_STR_EQ(bg->server, "pool02");
  CHECK_STR_EQ(bg->address, pool.srv[1].addr);
  CHECK_NE_U(bg->session_id, 0);
  CHECK_EQ_U(bg->memory_limit, 64 * MIB);
  CHECK_GT_U(bg->expires_unix, unix_now());
  CHECK_LE_U(bg->expires_unix, unix_now() + 21);
  CHECK_LE_U(bg->grant.len, GP_GRANT_MAX_LEN);
  /* It verifies under the key and says what the answer says. */
  Gpupool__Grant *dec = NULL;
  if (CHECK_EQ_I(gp_grant_verify(key, keylen, bg->grant.data, bg->grant.len,
                                 unix_now(), &dec, why, sizeof why), 0)) {
    CHECK_EQ_U(dec->version, GP_GRANT_VERSION);
    if (CHECK_EQ_U(dec->binding_key.len, sizeof bind_pub))
      CHECK_MEM_EQ(dec->binding_key.data, bind_pub, sizeof bind_pub);
    CHECK_EQ_U(dec->session_id, bg->session_id);
    CHECK_STR_EQ(dec->server, "pool02");
    CHECK_STR_EQ(dec->tenant, "alice");
    CHECK_STR_EQ(dec->gpu_uuid, bg->gpu_uuid);
    CHECK_EQ_U(dec->memory_limit, 64 * MIB);
    CHECK_EQ_U(dec->expires_unix, bg->expires_unix);
    CHECK_EQ_U(dec->nonce.len, 16);
    gpupool__grant__free_unpacked(dec, NULL);
  }
  /* At the wrong server; altered; then where it belongs. */
  res = hello(&r, a1, bg->grant.data, bg->grant.len, why, sizeof why);
  printf("broker's grant at pool01: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "pool02") != NULL);
  uint8_t *alt = gpt_xmalloc(bg->grant.len);
  memcpy(alt, bg->grant.data, bg->grant.len);
  alt[bg->grant.len - 1] ^= 0x80;
  res = hello(&r, pool.srv[1].addr, alt, bg->grant.len, why, sizeof why);
  printf("broker's grant altered: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "signature") != NULL);
  free(alt);
  res = hello(&r, pool.srv[1].addr, bg->grant.data, bg->grant.len, why,
              sizeof why);
  printf("broker's grant at pool02: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, 0);
  /* The broker sees it running; it ends with the connection. */
  bool running = false;
  double deadline = gpt_now() + 3.0;
  while (!running && gpt_now() < deadline) {
    memset(&m, 0, sizeof m);
    if (query("sessions", &m) == 0)
      for (int i = 0; i < m.ns; i++)
        if (strtoull(m.s[i].id, NULL, 16) == bg->session_id &&
            strcmp(m.s[i].state, "running") == 0)
          running = true;
    gpt_sleep_ms(25);
  }
  CHECK_TRUE(running);
  gpt_raw_close(&r);
  bool gone = false;
  deadline = gpt_now() + 3.0;
  while (!gone && gpt_now() < deadline) {
    memset(&m, 0, sizeof m);
    if (query("sessions", &m) == 0) {
      gone = true;
      for (int i = 0; i < m.ns; i++)
        if (strtoull(m.s[i].id, NULL, 16) == bg->session_id) gone = false;
    }
    gpt_sleep_ms(25);
  }
  CHECK_TRUE(gone);
  protobuf_c_message_free_unpacked(rep, NULL);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- broker_wire ---------------------------------------------------------------------------------- */

/* Reads the next frame's header and message: its type, or -1 at the end of
 * the connection; a ProtocolError's code into |*code|. */
static int raw_next(struct gpt_raw *r, int32_t *code) {
  struct gp_frame_header h;
  ProtobufCMessage *msg = NULL;
  if (gp_wire_recv_header(&r->w, &h) != 0) return -1;
  if (gp_wire_recv_msg(&r->w, &h, &msg) != 0) return -1;
  if (h.type == GP_MSG_PROTOCOL_ERROR && msg != NULL && code != NULL) {
    const Gpupool__ProtocolError *pe = (const Gpupool__ProtocolError *)msg;
    *code = pe->code;
    printf("ProtocolError %d: %s\n", pe->code, pe->message);
  }
  if (msg != NULL) protobuf_c_message_free_unpacked(msg, NULL);
  gp_wire_discard(&r->w, h.payload_len);
  return h.type;
}

/* A raw session request; the answer in |*g| (free it) when 0 or not. */
static int raw_request(const char *token, unsigned long long mem,
                       unsigned gpus, const char *server, const char *prefer,
                       Gpupool__BrokerSessionGrant **g) {
  struct gpt_raw br;
  REQUIRE_TRUE(raw_open(&br, pool.b.addr));
  Gpupool__BrokerSessionRequest q = GPUPOOL__BROKER_SESSION_REQUEST__INIT;
  q.token.data = (uint8_t *)token;
  q.token.len = strlen(token);
  q.memory = mem;
  q.gpu_count = gpus;
  q.server = (char *)(server ? server : "");
  q.prefer_server = (char *)(prefer ? prefer : "");
  q.client = "test_pool broker_wire";
  bind_key();
  q.binding_key.data = bind_pub;
  q.binding_key.len = sizeof bind_pub;
  ProtobufCMessage *rep = NULL;
  int res = raw_call(&br, GP_MSG_BROKER_REQUEST_SESSION, &q.base, &rep);
  gpt_raw_close(&br);
  *g = (Gpupool__BrokerSessionGrant *)rep;
  if (rep != NULL && res != 0)
    printf("request refused: %d \"%s\"\n", res, (*g)->message);
  return res;
}

/* A raw BROKER_REGISTER of a server that is not there: |name|, one 8 GiB
 * GPU, signed with |key| at |stamp|. The result (GPT_RAW_FAILED: no answer); the
 * connection stays open in |r|. */
static int raw_register(struct gpt_raw *r, const char *name, const uint8_t *key,
                        size_t keylen, uint64_t stamp, unsigned *hb_ms) {
  REQUIRE_TRUE(raw_open(r, pool.b.addr));
  Gpupool__BrokerGpu gpu = GPUPOOL__BROKER_GPU__INIT;
  gpu.uuid = "GPU-99999999-0000-0000-0000-000000000001";
  gpu.name = "stand-in";
  gpu.total_mem = 8ull << 30;
  gpu.cc_major = 9;
  gpu.cc_minor = 0;
  Gpupool__BrokerGpu *gpus[] = {&gpu};
  Gpupool__BrokerRegister reg = GPUPOOL__BROKER_REGISTER__INIT;
  reg.name = (char *)name;
  reg.address = "127.0.0.1:9";
  reg.n_gpus = 1;
  reg.gpus = gpus;
  reg.version = "test_pool";
  reg.timestamp_unix = stamp;
  uint8_t mac[GP_GRANT_MAC_LEN];
  REQUIRE_TRUE(gp_register_auth(key, keylen, &reg, mac) == 0);
  reg.auth.data = mac;
  reg.auth.len = sizeof mac;
  ProtobufCMessage *rep = NULL;
  int res = raw_call(r, GP_MSG_BROKER_REGISTER, &reg.base, &rep);
  if (rep != NULL) {
    const Gpupool__BrokerRegisterReply *rr =
        (const Gpupool__BrokerRegisterReply *)rep;
    if (hb_ms != NULL) *hb_ms = rr->heartbeat_ms;
    printf("register %s: %d \"%s\"\n", name, res, rr->message);
    protobuf_c_message_free_unpacked(rep, NULL);
  }
  return res;
}

/* Polls status until server |name|'s GPU has |want| bytes reserved or |ms|
 * passed; true if it did. */
static bool wait_reserved(const char *name, unsigned long long want, int ms) {
  double deadline = gpt_now() + ms / 1000.0;
  unsigned long long got = ~0ull;
  do {
    struct model m;
    memset(&m, 0, sizeof m);
    if (query("status", &m) == 0)
      for (int i = 0; i < m.ngpu; i++)
        if (strcmp(m.srv[m.gpu[i].server].name, name) == 0)
          got = m.gpu[i].reserved;
    if (got == want) return true;
    gpt_sleep_ms(25);
  } while (gpt_now() < deadline);
  fprintf(stderr, "    %s: reserved %llu, wanted %llu\n", name, got, want);
  return false;
}

static void test_broker_wire(int argc, char **argv) {
  pool_ttl = 2;
  const char *specs[] = {"1G", NULL, "1G", NULL};
  pool_start(2, specs);
  uint8_t key[GP_KEY_MAX_LEN];
  size_t keylen = 0;
  char why[512];
  REQUIRE_TRUE(gp_key_load(pool.b.key_file, key, &keylen, why, sizeof why) == 0);

  /* A type the broker does not serve, then bytes that are no frame: a
   * ProtocolError and that connection closed, the broker serving on. */
  struct gpt_raw r;
  REQUIRE_TRUE(raw_open(&r, pool.b.addr));
  Gpupool__HelloRequest h = GPUPOOL__HELLO_REQUEST__INIT;
  h.min_version = GP_PROTOCOL_VERSION_MIN;
  h.max_version = GP_PROTOCOL_VERSION_MAX;
  REQUIRE_TRUE(gp_wire_send(&r.w, GP_MSG_HELLO, 0, 1, &h.base, NULL, 0) == 0 &&
               gp_wire_flush(&r.w) == 0);
  int32_t code = 0;
  CHECK_EQ_I(raw_next(&r, &code), GP_MSG_PROTOCOL_ERROR);
  CHECK_EQ_I(raw_next(&r, NULL), -1);
  gpt_raw_close(&r);
  REQUIRE_TRUE(raw_open(&r, pool.b.addr));
  static const char junk[] = "GET / HTTP/1.1\r\nHost: broker\r\n\r\n";
  /* Through the connection's transport: TLS records carrying junk. */
  struct iovec jv = {(void *)junk, sizeof junk - 1};
  CHECK_TRUE(r.w.ops->writev(r.w.ctx, &jv, 1) == (long)(sizeof junk - 1));
  code = 0;
  CHECK_EQ_I(raw_next(&r, &code), GP_MSG_PROTOCOL_ERROR);
  CHECK_NE_I(code, 0);
  CHECK_EQ_I(raw_next(&r, NULL), -1);
  gpt_raw_close(&r);
  wait_all_up(2);

  /* Registration: a MAC under another key, a stale timestamp, a bad name. */
  uint8_t other[32];
  for (size_t i = 0; i < sizeof other; i++) other[i] = (uint8_t)(key[i] ^ 0x33);
  CHECK_EQ_I(raw_register(&r, "ghost", other, sizeof other, unix_now(), NULL),
             GP_EAUTH);
  gpt_raw_close(&r);
  CHECK_EQ_I(raw_register(&r, "ghost", key, keylen, unix_now() - 600, NULL),
             GP_EAUTH);
  gpt_raw_close(&r);
  int res = raw_register(&r, "bad name!", key, keylen, unix_now(), NULL);
  CHECK_TRUE(res != 0 && res != GPT_RAW_FAILED);
  gpt_raw_close(&r);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  CHECK_EQ_I(m.nsrv, 2);
  CHECK_TRUE(m_server(&m, "ghost") == NULL);

  /* Requests: two GPUs are not supported; prefer_server. */
  Gpupool__BrokerSessionGrant *g1 = NULL, *g2 = NULL, *g3 = NULL, *gx = NULL;
  CHECK_EQ_I(raw_request(pool.alice_token, 64 * MIB, 2, NULL, NULL, &gx),
             GP_ENOTSUP);
  if (gx) protobuf_c_message_free_unpacked(&gx->base, NULL);
  REQUIRE_TRUE(raw_request(pool.alice_token, 128 * MIB, 1, NULL, NULL, &g1) == 0);
  CHECK_STR_EQ(g1->server, "pool01");
  CHECK_NE_U(g1->session_id, 0);
  /* pool02 is emptier; preferred, pool01 wins while it fits. */
  REQUIRE_TRUE(raw_request(pool.alice_token, 64 * MIB, 1, NULL, "pool01", &g2) == 0);
  CHECK_STR_EQ(g2->server, "pool01");
  CHECK_NE_U(g2->session_id, g1->session_id);
  /* When it does not, the usual choice. */
  REQUIRE_TRUE(raw_request(pool.alice_token, 1024 * MIB, 1, NULL, "pool01", &g3) == 0);
  CHECK_STR_EQ(g3->server, "pool02");
  CHECK_TRUE(wait_reserved("pool01", 192 * MIB, 0));
  CHECK_TRUE(wait_reserved("pool02", 1024 * MIB, 0));
  REQUIRE_TRUE(observe(&m));
  CHECK_EQ_I(m.ns, 3);
  for (int i = 0; i < m.ns; i++) CHECK_STR_EQ(m.s[i].state, "granted");
  /* Full: nothing fits 1 GiB now, and the reason names the largest free. */
  CHECK_EQ_I(raw_request(pool.alice_token, 1024 * MIB, 1, NULL, NULL, &gx),
             GP_ENOFIT);
  if (gx) {
    CHECK_TRUE(strstr(gx->message, "free") != NULL);
    protobuf_c_message_free_unpacked(&gx->base, NULL);
  }

  /* Granted sessions count against quotas: bob's two unused grants hold
   * his max_sessions until they expire. */
  Gpupool__BrokerSessionGrant *b1 = NULL, *b2 = NULL;
  REQUIRE_TRUE(raw_request(pool.bob_token, 1 * MIB, 1, NULL, NULL, &b1) == 0);
  REQUIRE_TRUE(raw_request(pool.bob_token, 1 * MIB, 1, NULL, NULL, &b2) == 0);
  CHECK_EQ_I(raw_request(pool.bob_token, 1 * MIB, 1, NULL, NULL, &gx), GP_EQUOTA);
  if (gx) protobuf_c_message_free_unpacked(&gx->base, NULL);

  /* Never used, they are dropped at their expiry (grant_ttl_s 2) and the
   * memory is free again. */
  double t0 = gpt_now();
  CHECK_TRUE(wait_reserved("pool01", 0, 5000));
  CHECK_TRUE(wait_reserved("pool02", 0, 5000));
  printf("unused grants dropped %.2f s after they were given\n",
         gpt_now() - t0);
  REQUIRE_TRUE(observe(&m));
  CHECK_EQ_I(m.ns, 0);
  CHECK_EQ_I(raw_request(pool.bob_token, 1 * MIB, 1, NULL, NULL, &gx), 0);
  if (gx) protobuf_c_message_free_unpacked(&gx->base, NULL);
  /* ... and the server refuses them now. */
  res = hello(&r, g1->address, g1->grant.data, g1->grant.len, why, sizeof why);
  printf("expired broker grant: %d \"%s\"\n", res, why);
  CHECK_EQ_I(res, CUDA_ERROR_NOT_PERMITTED);
  CHECK_TRUE(strstr(why, "expired") != NULL);

  /* A registration with the key: listed; the same name registered again
   * on another connection closes the first. No heartbeats: down after
   * down_after_ms. */
  unsigned hb = 0;
  CHECK_EQ_I(raw_register(&r, "ghost", key, keylen, unix_now(), &hb), 0);
  CHECK_EQ_U(hb, 200);
  REQUIRE_TRUE(observe(&m));
  const struct m_server *gs = m_server(&m, "ghost");
  if (CHECK_TRUE(gs != NULL)) {
    CHECK_TRUE(gs->up);
    CHECK_STR_EQ(gs->address, "127.0.0.1:9");
  }
  struct gpt_raw r2;
  /* A later timestamp: the same one would be refused as a replay. */
  CHECK_EQ_I(raw_register(&r2, "ghost", key, keylen, unix_now() + 1, NULL), 0);
  r.w.timeout_ms = 3000;
  CHECK_EQ_I(raw_next(&r, NULL), -1);
  gpt_raw_close(&r);
  double t = wait_server("ghost", false, false, 5000);
  printf("ghost down %.2f s after it registered\n", t);
  CHECK_GE_D(t, 0.5);
  gpt_raw_close(&r2);

  protobuf_c_message_free_unpacked(&g1->base, NULL);
  protobuf_c_message_free_unpacked(&g2->base, NULL);
  protobuf_c_message_free_unpacked(&g3->base, NULL);
  protobuf_c_message_free_unpacked(&b1->base, NULL);
  protobuf_c_message_free_unpacked(&b2->base, NULL);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- quotas ---------------------------------------------------------------------------------------- */

/* The broker refuses: cuInit NO_DEVICE, a message on stderr containing
 * |word| (case-insensitive; NULL: any). */
static void expect_refusal(const char *token, const char *mem,
                           const char *word) {
  struct sess s;
  int cu = 0;
  char why[1024] = "";
  int r = sess_open(&s, token, mem, NULL, NULL, &cu, why, sizeof why);
  CHECK_EQ_I(r, 0);
  if (r == 1) sess_close(&s);
  printf("refused: %d \"%s\"\n", cu, why);
  CHECK_EQ_I(cu, CUDA_ERROR_NO_DEVICE);
  CHECK_TRUE(why[0] != '\0');
  if (word != NULL && !CHECK_TRUE(strcasestr(why, word) != NULL))
    fprintf(stderr, "    wanted \"%s\" in the message\n", word);
}

static void test_quotas(int argc, char **argv) {
  const char *specs[] = {"2G", NULL, "2G", NULL};
  pool_start(2, specs);
  /* bob: two sessions at most. */
  struct sess b1, b2, b3;
  REQUIRE_TRUE(sess_open(&b1, pool.bob_token, "64M", NULL, NULL, NULL, NULL, 0) == 1);
  REQUIRE_TRUE(sess_open(&b2, pool.bob_token, "64M", NULL, NULL, NULL, NULL, 0) == 1);
  expect_refusal(pool.bob_token, "64M", "session");
  /* Others are not held by bob's quota. */
  struct sess a;
  REQUIRE_TRUE(sess_open(&a, pool.alice_token, "64M", NULL, NULL, NULL, NULL, 0) == 1);
  /* Releasing one lets the next in. */
  struct model m;
  REQUIRE_TRUE(observe(&m));
  REQUIRE_TRUE(sess_find(&b1, &m) != NULL);
  CHECK_TRUE(sess_close(&b1));
  CHECK_TRUE(wait_session(b1.id, NULL, 3000));
  CHECK_EQ_I(sess_open(&b3, pool.bob_token, "64M", NULL, NULL, NULL, NULL, 0), 1);
  CHECK_TRUE(sess_work(&b3));
  expect_refusal(pool.bob_token, "64M", "session");

  /* carol: 256 MiB of memory limits at most. */
  struct sess c1, c2, c3;
  REQUIRE_TRUE(sess_open(&c1, pool.carol_token, "128M", NULL, NULL, NULL, NULL, 0) == 1);
  REQUIRE_TRUE(sess_open(&c2, pool.carol_token, "128M", NULL, NULL, NULL, NULL, 0) == 1);
  expect_refusal(pool.carol_token, "1M", "memory");
  /* One request over it alone: refused too. */
  REQUIRE_TRUE(observe(&m));
  REQUIRE_TRUE(sess_find(&c1, &m) != NULL);
  REQUIRE_TRUE(sess_find(&c2, &m) != NULL);
  CHECK_TRUE(sess_close(&c1));
  CHECK_TRUE(wait_session(c1.id, NULL, 3000));
  expect_refusal(pool.carol_token, "192M", "memory");
  CHECK_EQ_I(sess_open(&c3, pool.carol_token, "128M", NULL, NULL, NULL, NULL, 0), 1);
  CHECK_TRUE(sess_work(&c3));
  /* With none named, default_memory (128M) counts against the quota. */
  CHECK_TRUE(sess_close(&c2));
  CHECK_TRUE(wait_session(c2.id, NULL, 3000));
  struct sess c4;
  CHECK_EQ_I(sess_open(&c4, pool.carol_token, NULL, NULL, NULL, NULL, NULL, 0), 1);
  REQUIRE_TRUE(observe(&m));
  if (CHECK_TRUE(sess_find(&c4, &m) != NULL))
    CHECK_EQ_U(m_sess(&m, c4.id)->limit, 128 * MIB);
  expect_refusal(pool.carol_token, NULL, "memory");

  /* Tokens: unknown, none, the admin's (not a tenant). */
  expect_refusal("not-a-token", "64M", NULL);
  expect_refusal(NULL, "64M", NULL);
  expect_refusal(pool.admin_token, "64M", NULL);
  /* What no GPU can hold. */
  expect_refusal(pool.alice_token, "3G", "memory");

  sess_close(&a);
  sess_close(&b2);
  sess_close(&b3);
  sess_close(&c3);
  sess_close(&c4);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- attach_exit ---------------------------------------------------------------------------------- */

/* child_attach STATUS [MEM [SERVER]]: run by `gpupool attach` (or with a
 * client.conf), not by gpt_spawn. cuInit (through the broker), a kernel and
 * copies; checks cuMemGetInfo's total against MEM and its own session in
 * `gpupool sessions --json` (admin token from $GPT_POOL_ADMIN_FILE, the
 * broker from $GPT_POOL_BROKER) against SERVER; prints "attached on NAME";
 * exits STATUS when every check passed, 1 otherwise, 3 when cuInit
 * failed. */
static void child_attach(int argc, char **argv) {
  REQUIRE_TRUE(argc >= 1);
  int status = atoi(argv[0]);
  CUresult r = cuInit(0);
  if (r != CUDA_SUCCESS) {
    printf("cuInit: %s\n", gpt_cu_name(r));
    fflush(stdout);
    _exit(3);
  }
  CUdevice dev;
  CUcontext ctx;
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  REQUIRE_OK(cuCtxCreate(&ctx, NULL, 0, dev));
  const char *fail = do_work();
  if (!CHECK_TRUE(fail == NULL)) fprintf(stderr, "    failed: %s\n", fail);
  size_t fr = 0, tot = 0;
  CHECK_OK(cuMemGetInfo(&fr, &tot));
  if (argc >= 2) {
    char *end;
    unsigned long long want = strtoull(argv[1], &end, 10);
    if (*end == 'M') want *= MIB;
    CHECK_EQ_U(tot, want);
    /* The device's size is the session's limit too (what cudart reports
     * as totalGlobalMem). */
    size_t dtot = 0;
    CHECK_OK(cuDeviceTotalMem(&dtot, dev));
    CHECK_EQ_U(dtot, want);
  }
  /* Its session, by this process's id. */
  const char *admin = getenv("GPT_POOL_ADMIN_FILE");
  const char *broker = getenv("GPT_POOL_BROKER");
  REQUIRE_TRUE(admin != NULL && broker != NULL);
  const char *q[] = {cli_path(), "sessions", "--json", "--broker", broker,
                     "--token-file", admin, NULL};
  struct run *out = run_cmd(q, 20, true);
  CHECK_EQ_I(out->status, 0);
  struct jv *root = json_parse(out->out);
  struct model m;
  memset(&m, 0, sizeof m);
  bool parsed = root != NULL && read_sessions(root, &m);
  CHECK_TRUE(parsed);
  const struct m_sess *ms = m_sess_of_pid(&m, getpid());
  if (CHECK_TRUE(ms != NULL)) {
    printf("attached on %s (session %s, %s)\n", ms->server, ms->id, ms->state);
    if (argc >= 3) CHECK_STR_EQ(ms->server, argv[2]);
    CHECK_TRUE(strncmp(ms->server, "pool0", 5) == 0);
    if (argc >= 2) CHECK_EQ_U(ms->limit, tot);
  } else {
    fprintf(stderr, "    no session names pid %d:\n%s\n", (int)getpid(),
            out->out);
  }
  json_free(root);
  free(out);
  cuCtxDestroy(ctx);
  fflush(stdout);
  fflush(stderr);
  _exit(gpt_checks_failed() ? 1 : status);
}

static void test_attach_exit(int argc, char **argv) {
  const char *specs[] = {"1G", "--label", "kind=small", NULL,
                         "1G", "--label", "kind=other", NULL};
  pool_start(2, specs);
  setenv("GPT_POOL_ADMIN_FILE", pool.admin_file, 1);
  setenv("GPT_POOL_BROKER", pool.b.addr, 1);
  /* attach passes the broker itself. */
  unsetenv("GPUPOOL_BROKER");
  const char *self = gpt_self_exe();
  REQUIRE_TRUE(self != NULL);
  const char *cli = cli_path();

  const char *a0[] = {cli, "attach", "--broker", pool.b.addr, "--token-file",
                      pool.alice_file, "--", self, "child_attach", "0", NULL};
  struct run *r = run_cmd(a0, 30, false);
  CHECK_EQ_I(r->status, 0);
  CHECK_TRUE(strstr(r->out, "attached on pool0") != NULL);
  free(r);

  const char *a7[] = {cli, "attach", "--broker", pool.b.addr, "--token-file",
                      pool.alice_file, "--mem", "64M", "--server", "pool02",
                      "--", self, "child_attach", "7", "64M", "pool02", NULL};
  r = run_cmd(a7, 30, false);
  CHECK_EQ_I(r->status, 7);
  CHECK_TRUE(strstr(r->out, "attached on pool02") != NULL);
  free(r);

  const char *al[] = {cli, "attach", "--broker", pool.b.addr, "--token-file",
                      pool.alice_file, "--label", "kind=small", "--", self,
                      "child_attach", "5", "128M", "pool01", NULL};
  r = run_cmd(al, 30, false);
  CHECK_EQ_I(r->status, 5);
  free(r);

  /* Nothing has the label: the program's cuInit fails, with the broker's
   * reason on stderr. */
  const char *an[] = {cli, "attach", "--broker", pool.b.addr, "--token-file",
                      pool.alice_file, "--label", "kind=huge", "--", self,
                      "child_attach", "0", NULL};
  r = run_cmd(an, 30, false);
  CHECK_EQ_I(r->status, 3);
  CHECK_TRUE(strstr(r->out, "CUDA_ERROR_NO_DEVICE") != NULL);
  CHECK_TRUE(strcasestr(r->err, "label") != NULL);
  free(r);

  /* A program that is not there: 127, as env(1). */
  const char *ax[] = {cli, "attach", "--broker", pool.b.addr, "--token-file",
                      pool.alice_file, "--", "/nonexistent/prog", NULL};
  r = run_cmd(ax, 30, false);
  CHECK_EQ_I(r->status, 127);
  free(r);

  /* client.conf ($XDG_CONFIG_HOME/gpupool/client.conf) alone. */
  char xdg[300], confdir[320], conf[400], text[1024];
  snprintf(xdg, sizeof xdg, "%s/xdg", pool.b.dir);
  snprintf(confdir, sizeof confdir, "%s/gpupool", xdg);
  REQUIRE_TRUE(mkdir(xdg, 0700) == 0 && mkdir(confdir, 0700) == 0);
  snprintf(text, sizeof text,
           "# the pool\n[client]\nbroker = %s\ntoken_file = %s\n"
           "memory = 96M\nserver = pool01\n",
           pool.b.addr, pool.alice_file);
  REQUIRE_TRUE(gpt_write_file(confdir, "client.conf", text, 0600, conf,
                              sizeof conf) == 0);
  setenv("XDG_CONFIG_HOME", xdg, 1);
  const char *direct[] = {self, "child_attach", "4", "96M", "pool01", NULL};
  r = run_cmd(direct, 30, false);
  CHECK_EQ_I(r->status, 4);
  free(r);
  /* The environment over the file. */
  setenv("GPUPOOL_MEM", "80M", 1);
  setenv("GPUPOOL_SERVER_NAME", "pool02", 1);
  const char *direct2[] = {self, "child_attach", "0", "80M", "pool02", NULL};
  r = run_cmd(direct2, 30, false);
  CHECK_EQ_I(r->status, 0);
  free(r);
  unsetenv("GPUPOOL_MEM");
  unsetenv("GPUPOOL_SERVER_NAME");
  /* $GPUPOOL_CONFIG over the default place, with the token itself. */
  char conf2[400];
  snprintf(text, sizeof text, "[client]\nbroker = %s\ntoken = %s\nmemory = 72M\n",
           pool.b.addr, pool.alice_token);
  REQUIRE_TRUE(gpt_write_file(pool.b.dir, "other.conf", text, 0600, conf2,
                              sizeof conf2) == 0);
  setenv("GPUPOOL_CONFIG", conf2, 1);
  const char *direct3[] = {self, "child_attach", "0", "72M", NULL};
  r = run_cmd(direct3, 30, false);
  CHECK_EQ_I(r->status, 0);
  free(r);
  unlink(conf);
  rmdir(confdir);
  rmdir(xdg);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* ---- memory_limit ---------------------------------------------------------------------------------- */

static void test_memory_limit(int argc, char **argv) {
  const char *specs[] = {"1G", NULL};
  pool_start(1, specs);
  struct sess s;
  sess_open_found(&s, "64M", NULL);
  char line[256];
  unsigned long long fr = 0, tot = 0;
  int mr = -1;
  REQUIRE_TRUE(sess_ask(&s, "meminfo", line, sizeof line));
  REQUIRE_TRUE(sscanf(line, "mem %llu %llu %d", &fr, &tot, &mr) == 3);
  CHECK_EQ_I(mr, 0);
  CHECK_EQ_U(tot, 64 * MIB);
  /* The child holds 1 MiB already. */
  CHECK_LE_U(fr, 63 * MIB);
  CHECK_GT_U(fr, 32 * MIB);

  char cmd[64];
  snprintf(cmd, sizeof cmd, "alloc %llu", 48 * MIB);
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  CHECK_STR_EQ(line, "alloc 0");
  REQUIRE_TRUE(sess_ask(&s, "meminfo", line, sizeof line));
  REQUIRE_TRUE(sscanf(line, "mem %llu %llu %d", &fr, &tot, &mr) == 3);
  CHECK_EQ_U(tot, 64 * MIB);
  CHECK_LE_U(fr, 15 * MIB);
  /* The heartbeats carry what the session has allocated (1 + 48 MiB), to
   * the session's line and its GPU's. */
  unsigned long long used = 0, gpu_used = 0;
  double deadline = gpt_now() + 3.0;
  while (gpt_now() < deadline) {
    struct model mu;
    if (observe(&mu) && m_sess(&mu, s.id) != NULL) {
      used = m_sess(&mu, s.id)->used;
      gpu_used = mu.ngpu > 0 ? mu.gpu[0].used : 0;
      if (used >= 49 * MIB && gpu_used >= 49 * MIB) break;
    }
    gpt_sleep_ms(50);
  }
  CHECK_GE_U(used, 49 * MIB);
  CHECK_LE_U(used, 64 * MIB);
  CHECK_GE_U(gpu_used, 49 * MIB);
  /* 1 + 48 + 16 > 64. */
  snprintf(cmd, sizeof cmd, "alloc %llu", 16 * MIB);
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  char want[32];
  snprintf(want, sizeof want, "alloc %d", (int)CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_STR_EQ(line, want);
  snprintf(cmd, sizeof cmd, "pitch %d %d", 4096, 4096); /* 16 MiB */
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  snprintf(want, sizeof want, "pitch %d", (int)CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_STR_EQ(line, want);
  snprintf(cmd, sizeof cmd, "async %llu", 16 * MIB);
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  snprintf(want, sizeof want, "async %d", (int)CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_STR_EQ(line, want);
  /* What is left still fits. */
  snprintf(cmd, sizeof cmd, "alloc %llu", 8 * MIB);
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  CHECK_STR_EQ(line, "alloc 0");
  /* The session is fine after its refusals; freeing makes room again. */
  CHECK_TRUE(sess_work(&s));
  CHECK_TRUE(sess_ask(&s, "freeall", line, sizeof line));
  snprintf(cmd, sizeof cmd, "alloc %llu", 60 * MIB);
  CHECK_TRUE(sess_ask(&s, cmd, line, sizeof line));
  CHECK_STR_EQ(line, "alloc 0");
  CHECK_TRUE(sess_ask(&s, "freeall", line, sizeof line));
  CHECK_TRUE(sess_close(&s));

  /* None asked: default_memory (128M). */
  struct sess d;
  sess_open_found(&d, NULL, NULL);
  REQUIRE_TRUE(sess_ask(&d, "meminfo", line, sizeof line));
  REQUIRE_TRUE(sscanf(line, "mem %llu %llu %d", &fr, &tot, &mr) == 3);
  CHECK_EQ_U(tot, 128 * MIB);
  struct model m;
  REQUIRE_TRUE(observe(&m));
  if (CHECK_TRUE(m_sess(&m, d.id) != NULL))
    CHECK_EQ_U(m_sess(&m, d.id)->limit, 128 * MIB);
  CHECK_TRUE(sess_close(&d));
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

/* A relay in front of the pool: a --backend cuda server on gpupool's own
 * library, with GPUPOOL_BROKER and a token in its environment, serves its
 * clients on sessions the broker grants it, one per client. */
static void test_relay_broker(int argc, char **argv) {
  const char *specs[] = {"1G", NULL};
  pool_start(1, specs);
  const char *lib = getenv("GPUPOOL_TEST_LIBCUDA");
  REQUIRE_TRUE(lib != NULL && *lib != '\0');
  setenv("GPUPOOL_TOKEN_FILE", pool.alice_file, 1);
  setenv("GPUPOOL_MEM", "96M", 1);
  /* TLS on both sides: its workers verify the broker and the pool's
   * servers with GPUPOOL_TLS_CA, which the harness sets. */
  const char *args[] = {"--backend", "cuda", "--cuda-lib", lib, NULL};
  struct gpt_server relay;
  if (gpt_server_start(&relay, args) != 0) gpt__abort_scenario();
  /* This process talks to the relay directly. */
  unsetenv("GPUPOOL_BROKER");
  unsetenv("GPUPOOL_TOKEN_FILE");
  unsetenv("GPUPOOL_MEM");
  setenv("GPUPOOL_SERVER", relay.addr, 1);

  REQUIRE_OK(cuInit(0));
  CUdevice dev;
  CUcontext ctx;
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  size_t total = 0;
  CHECK_OK(cuDeviceTotalMem(&total, dev));
  CHECK_EQ_U(total, 96 * MIB);
  REQUIRE_OK(cuCtxCreate(&ctx, NULL, 0, dev));
  const char *fail = do_work();
  if (!CHECK_TRUE(fail == NULL)) fprintf(stderr, "    failed: %s\n", fail);
  CUdeviceptr big;
  CHECK_CU(cuMemAlloc(&big, 128 * MIB), CUDA_ERROR_OUT_OF_MEMORY);

  /* The relay's worker holds one session of alice's on pool01 (the
   * probe's, at the relay's start, has ended). */
  struct model m;
  const struct m_sess *mine = NULL;
  double deadline = gpt_now() + 5.0;
  while (gpt_now() < deadline) {
    if (observe(&m) && m.ns == 1 && strcmp(m.s[0].state, "running") == 0) {
      mine = &m.s[0];
      break;
    }
    gpt_sleep_ms(50);
  }
  if (CHECK_TRUE(mine != NULL)) {
    CHECK_STR_EQ(mine->tenant, "alice");
    CHECK_STR_EQ(mine->server, "pool01");
    CHECK_EQ_U(mine->limit, 96 * MIB);
  }
  CHECK_OK(cuCtxDestroy(ctx));
  gpt_server_stop(&relay, 0);
  /* The relay's session on the pool ends with the relay's worker. */
  bool gone = false;
  deadline = gpt_now() + 5.0;
  while (!gone && gpt_now() < deadline) {
    gone = observe(&m) && m.ns == 0;
    if (!gone) gpt_sleep_ms(50);
  }
  CHECK_TRUE(gone);
  gpt_broker_stop(&pool.b, 2000);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"relay_broker", test_relay_broker, 60},
      {"placement", test_placement, 150},
      {"server_down", test_server_down, 90},
      {"drain", test_drain, 90},
      {"broker_restart", test_broker_restart, 90},
      {"grants", test_grants, 60},
      {"quotas", test_quotas, 90},
      {"attach_exit", test_attach_exit, 90},
      {"memory_limit", test_memory_limit, 60},
      {"broker_wire", test_broker_wire, 60},
      {"child_session", child_session, 600},
      {"child_attach", child_attach, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
