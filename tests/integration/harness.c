/* The integration test harness; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_uint checks_run;
static atomic_uint checks_failed;
static const char *scenario_name = "?";

/* Servers and children started by this process, killed on every exit path
 * (normal end, watchdog, aborted scenario) so that no test leaves one
 * behind. */
#define MAX_TRACKED 64
static struct gpt_server *servers[MAX_TRACKED];
static pid_t children[MAX_TRACKED];
static void remove_all_broker_files(void);
const char *gpt_certs_dir(void);
/* The test certificates' files (GPT_CERTS), in static storage. */
static char cert_file[512], key_file[512], ca_file[512];

/* ---- Checks ----------------------------------------------------------------- */

void gpt__check_pass(void) { atomic_fetch_add(&checks_run, 1); }

void gpt__check_fail(const char *file, int line, const char *expr,
                     const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  atomic_fetch_add(&checks_run, 1);
  atomic_fetch_add(&checks_failed, 1);
  /* One write, so that lines from several threads do not interleave. */
  fprintf(stderr, "%s:%d: CHECK FAILED [%s]: %s\n    %s\n", file, line,
          scenario_name, expr, msg);
  fflush(stderr);
}

unsigned gpt_checks_run(void) { return atomic_load(&checks_run); }
unsigned gpt_checks_failed(void) { return atomic_load(&checks_failed); }

int gpt__streq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

bool gpt__mem_eq(const char *file, int line, const char *expr,
                 const void *actual, const void *expected, size_t n) {
  const unsigned char *a = actual, *e = expected;
  if (memcmp(a, e, n) == 0) {
    gpt__check_pass();
    return true;
  }
  size_t first = 0, diff = 0;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != e[i]) {
      if (diff == 0) first = i;
      diff++;
    }
  }
  gpt__check_fail(file, line, expr,
                  "%zu of %zu bytes differ; first at offset %zu: "
                  "got 0x%02x, expected 0x%02x",
                  diff, n, first, a[first], e[first]);
  return false;
}

bool gpt__mem_all(const char *file, int line, const char *expr, const void *p,
                  int byte, size_t n) {
  const unsigned char *a = p;
  size_t first = n, diff = 0;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != (unsigned char)byte) {
      if (first == n) first = i;
      diff++;
    }
  }
  if (diff == 0) {
    gpt__check_pass();
    return true;
  }
  gpt__check_fail(file, line, expr,
                  "%zu of %zu bytes differ; first at offset %zu: "
                  "got 0x%02x, expected 0x%02x",
                  diff, n, first, a[first], (unsigned char)byte);
  return false;
}

const char *gpt_cu_name(CUresult r) {
  switch (r) {
#define N(x) \
  case x:    \
    return #x;
    N(CUDA_SUCCESS)
    N(CUDA_ERROR_INVALID_VALUE)
    N(CUDA_ERROR_OUT_OF_MEMORY)
    N(CUDA_ERROR_NOT_INITIALIZED)
    N(CUDA_ERROR_DEINITIALIZED)
    N(CUDA_ERROR_NO_DEVICE)
    N(CUDA_ERROR_INVALID_DEVICE)
    N(CUDA_ERROR_DEVICE_NOT_LICENSED)
    N(CUDA_ERROR_INVALID_IMAGE)
    N(CUDA_ERROR_INVALID_CONTEXT)
    N(CUDA_ERROR_CONTEXT_ALREADY_CURRENT)
    N(CUDA_ERROR_MAP_FAILED)
    N(CUDA_ERROR_UNMAP_FAILED)
    N(CUDA_ERROR_ALREADY_MAPPED)
    N(CUDA_ERROR_NO_BINARY_FOR_GPU)
    N(CUDA_ERROR_ALREADY_ACQUIRED)
    N(CUDA_ERROR_NOT_MAPPED)
    N(CUDA_ERROR_CONTEXT_ALREADY_IN_USE)
    N(CUDA_ERROR_INVALID_PTX)
    N(CUDA_ERROR_INVALID_SOURCE)
    N(CUDA_ERROR_FILE_NOT_FOUND)
    N(CUDA_ERROR_INVALID_HANDLE)
    N(CUDA_ERROR_ILLEGAL_STATE)
    N(CUDA_ERROR_NOT_FOUND)
    N(CUDA_ERROR_NOT_READY)
    N(CUDA_ERROR_ILLEGAL_ADDRESS)
    N(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)
    N(CUDA_ERROR_LAUNCH_TIMEOUT)
    N(CUDA_ERROR_LAUNCH_FAILED)
    N(CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED)
    N(CUDA_ERROR_PEER_ACCESS_NOT_ENABLED)
    N(CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE)
    N(CUDA_ERROR_CONTEXT_IS_DESTROYED)
    N(CUDA_ERROR_ASSERT)
    N(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED)
    N(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED)
    N(CUDA_ERROR_NOT_PERMITTED)
    N(CUDA_ERROR_NOT_SUPPORTED)
    N(CUDA_ERROR_SYSTEM_NOT_READY)
    N(CUDA_ERROR_DEVICE_UNAVAILABLE)
    N(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)
    N(CUDA_ERROR_TIMEOUT)
    N(CUDA_ERROR_UNKNOWN)
#undef N
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "CUresult(%d)", (int)r);
      return buf;
    }
  }
}

/* ---- Scenarios ------------------------------------------------------------------ */

static void kill_everything(void) {
  /* Async-signal-safe: called from the watchdog's handler too. */
  for (int i = 0; i < MAX_TRACKED; i++) {
    if (servers[i] != NULL && servers[i]->pid > 0 && !servers[i]->reaped) {
      kill(-servers[i]->pid, SIGKILL);
      kill(servers[i]->pid, SIGKILL);
    }
    if (children[i] > 0) kill(children[i], SIGKILL);
  }
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] =
      "\nWATCHDOG: the scenario did not finish in time (a call hung?)\n";
  ssize_t unused = write(2, msg, sizeof msg - 1);
  (void)unused;
  kill_everything();
  _exit(1);
}

__attribute__((noreturn)) static void report_and_exit(int status) {
  kill_everything();
  remove_all_broker_files();
  printf("scenario %s: %u checks, %u failed%s\n", scenario_name,
         gpt_checks_run(), gpt_checks_failed(),
         status == 77 ? " (skipped)" : "");
  fflush(stdout);
  _exit(status);
}

void gpt__abort_scenario(void) {
  fprintf(stderr, "[%s] a required check failed: ending the scenario\n",
          scenario_name);
  report_and_exit(1);
}

void gpt_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stdout, "SKIP [%s]: ", scenario_name);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
  report_and_exit(77);
}

int gpt_main(int argc, char **argv, const struct gpt_scenario *table) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCENARIO [ARGS]\nscenarios:", argv[0]);
    for (const struct gpt_scenario *t = table; t->name; t++)
      fprintf(stderr, " %s", t->name);
    fputc('\n', stderr);
    return 2;
  }
  for (const struct gpt_scenario *t = table; t->name; t++) {
    if (strcmp(t->name, argv[1]) != 0) continue;
    scenario_name = t->name;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    /* A peer that vanishes must show up as an error, never kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* Every client this test runs verifies the harness's servers. */
    if (gpt_certs_dir() != NULL) {
      snprintf(ca_file, sizeof ca_file, "%s/ca.pem", gpt_certs_dir());
      setenv("GPUPOOL_TLS_CA", ca_file, 1);
    }
    alarm(t->timeout_s ? t->timeout_s : 60);
    t->run(argc - 2, argv + 2);
    alarm(0);
    report_and_exit(gpt_checks_failed() ? 1 : 0);
  }
  fprintf(stderr, "%s: no scenario named %s\n", argv[0], argv[1]);
  return 2;
}

/* ---- Helpers ------------------------------------------------------------------------ */

double gpt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gpt_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void gpt_fill(void *buf, size_t n, uint64_t seed) {
  /* splitmix64 of (seed, word index): position-dependent, so data that
   * lands at the wrong offset never matches. */
  unsigned char *p = buf;
  uint64_t base = seed * 0x9E3779B97F4A7C15ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t z = base + (uint64_t)i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    memcpy(p + i, &z, 8);
  }
  for (; i < n; i++) p[i] = (unsigned char)(base >> (8 * (i & 7))) ^ (unsigned char)i;
}

void *gpt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "out of host memory (%zu bytes)\n", n);
    gpt__abort_scenario();
  }
  return p;
}

CUcontext gpt_init_context(CUdevice *dev) {
  CUdevice d;
  CUcontext ctx;
  REQUIRE_OK(cuInit(0));
  REQUIRE_OK(cuDeviceGet(&d, 0));
  REQUIRE_OK(cuCtxCreate(&ctx, NULL, 0, d));
  if (dev) *dev = d;
  return ctx;
}

/* ---- The server ------------------------------------------------------------------------ */

static void track_server(struct gpt_server *s) {
  for (int i = 0; i < MAX_TRACKED; i++) {
    if (servers[i] == NULL || servers[i] == s) {
      servers[i] = s;
      return;
    }
  }
}

static void untrack_server(struct gpt_server *s) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (servers[i] == s) servers[i] = NULL;
}

static void track_child(pid_t pid, bool add) {
  for (int i = 0; i < MAX_TRACKED; i++) {
    if (add && children[i] == 0) {
      children[i] = pid;
      return;
    }
    if (!add && children[i] == pid) {
      children[i] = 0;
      return;
    }
  }
}

/* Reaps |pid| if it has exited. Returns true if it has (status stored). */
static bool try_reap(pid_t pid, int *status) {
  int st;
  pid_t r = waitpid(pid, &st, WNOHANG);
  if (r == pid) {
    *status = st;
    return true;
  }
  return false;
}

static int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

/* Reads the port file once: the port if the file holds a whole line with a
 * number in 1..65535, else 0. */
static int read_port_file(const char *path) {
  char buf[32];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *end;
  long port = strtol(buf, &end, 10);
  if (end == buf || port <= 0 || port > 65535) return 0;
  /* The writer may be mid-write: accept "PORT\n" or a stable "PORT". */
  if (*end != '\n' && *end != '\0') return 0;
  return (int)port;
}

const char *gpt_server_mode(void) {
  const char *m = getenv("GPT_SERVER_MODE");
  if (m == NULL || *m == '\0') return "emu";
  return m;
}

/* True for an argument that belongs to the emu backend (relay: server B;
 * cuda: dropped). */
static bool emu_arg(const char *a) { return strncmp(a, "--emu-", 6) == 0; }

/* Starts one server: |bin| --listen |listen| with |args| (NULL-terminated,
 * after the listen and port-file arguments), with GPUPOOL_SERVER=|behind| in its environment
 * when |behind| is not NULL. */
static int start_one(struct gpt_server *s, const char *bin, const char *listen,
                     const char *const *args, const char *behind) {
  memset(s, 0, sizeof *s);
  s->pid = -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/gpupool-it-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(s->dir) == NULL) {
    gpt__check_fail(__FILE__, __LINE__, "mkdtemp", "%s", strerror(errno));
    return -1;
  }
  char port_file[300];
  snprintf(port_file, sizeof port_file, "%s/port", s->dir);

  const char *argv[88];
  int argc = 0;
  argv[argc++] = bin;
  argv[argc++] = "--listen";
  argv[argc++] = listen;
  argv[argc++] = "--port-file";
  argv[argc++] = port_file;
  for (int i = 0; args && args[i] && argc < 86; i++) argv[argc++] = args[i];
  argv[argc] = NULL;

  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    gpt__check_fail(__FILE__, __LINE__, "fork", "%s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    /* Die with the test, so that a crashed or timed-out test leaves no
     * server behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    signal(SIGPIPE, SIG_DFL);
    if (behind != NULL)
      setenv("GPUPOOL_SERVER", behind, 1);
    else
      unsetenv("GPUPOOL_SERVER");
    execv(bin, (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  s->pid = pid;
  track_server(s);

  double deadline = gpt_now() + 10.0;
  int last = 0;
  while (gpt_now() < deadline) {
    int st;
    if (try_reap(pid, &st)) {
      s->reaped = true;
      s->status = st;
      gpt__check_fail(__FILE__, __LINE__, "gpt_server_start",
                      "the server exited before writing its port (status %d)",
                      decode_status(st));
      return -1;
    }
    int port = read_port_file(port_file);
    /* Two equal reads in a row: the file is complete. */
    if (port > 0 && port == last) {
      s->port = port;
      snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", port);
      unlink(port_file);
      rmdir(s->dir);
      return 0;
    }
    last = port;
    gpt_sleep_ms(10);
  }
  gpt__check_fail(__FILE__, __LINE__, "gpt_server_start", "%s",
                  "no port in the port file after 10 s");
  gpt_server_stop(s, 0);
  return -1;
}

const char *gpt_certs_dir(void) {
  const char *d = getenv("GPT_CERTS");
  return d != NULL && *d != '\0' ? d : NULL;
}


static bool has_arg(const char *const *extra, const char *flag) {
  for (int i = 0; extra && extra[i]; i++)
    if (strcmp(extra[i], flag) == 0) return true;
  return false;
}

/* TLS for the servers of this run (docs/testing.md, "TLS"): the flags of
 * a TLS server into |args| at |*n|, and the clients' environment
 * (GPUPOOL_TLS_CA, GPUPOOL_INSECURE). Returns 0 or -1 after a failed
 * check. */
static int tls_setup(bool insecure, const char **args, int *n) {
  if (insecure) {
    setenv("GPUPOOL_INSECURE", "1", 1);
    return 0;
  }
  const char *dir = gpt_certs_dir();
  if (dir == NULL) {
    gpt__check_fail(__FILE__, __LINE__, "getenv(\"GPT_CERTS\")", "%s",
                    "not set: run the tests with meson test (the servers "
                    "need the build's test certificates)");
    return -1;
  }
  snprintf(cert_file, sizeof cert_file, "%s/server.pem", dir);
  snprintf(key_file, sizeof key_file, "%s/server.key", dir);
  snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
  unsetenv("GPUPOOL_INSECURE");
  setenv("GPUPOOL_TLS_CA", ca_file, 1);
  args[(*n)++] = "--tls-cert";
  args[(*n)++] = cert_file;
  args[(*n)++] = "--tls-key";
  args[(*n)++] = key_file;
  args[(*n)++] = "--tls-ca";
  args[(*n)++] = ca_file;
  return 0;
}

int gpt_server_start(struct gpt_server *s, const char *const *extra) {
  const char *bin = getenv("GPUPOOL_TEST_SERVER");
  const char *mode = gpt_server_mode();
  memset(s, 0, sizeof *s);
  s->pid = -1;
  if (bin == NULL || *bin == '\0') {
    gpt__check_fail(__FILE__, __LINE__, "getenv(\"GPUPOOL_TEST_SERVER\")",
                    "%s", "not set: run the tests with meson test");
    return -1;
  }
  const char *args[80], *bargs[80];
  int n = 0, nb = 0;
  /* --insecure in |extra| runs plain TCP, and so do its clients. A server
   * given its own --tls-cert (a pool server: gpt_pool_tls_args()) gets no
   * second set, but its clients still verify with the test CA. */
  bool insecure = has_arg(extra, "--insecure");
  if (!insecure && has_arg(extra, "--tls-cert")) {
    const char *na[8];
    int nn = 0;
    if (tls_setup(false, na, &nn) != 0) return -1;
  } else if (tls_setup(insecure, args, &n) != 0) {
    return -1;
  }
  for (int i = 0; i < n; i++) bargs[nb++] = args[i];
  if (strcmp(mode, "emu") == 0) {
    args[n++] = "--backend";
    args[n++] = "emu";
    args[n++] = "--emu-memory";
    args[n++] = "1G";
    for (int i = 0; extra && extra[i] && n < 78; i++) args[n++] = extra[i];
    args[n] = NULL;
    if (start_one(s, bin, "127.0.0.1:0", args, NULL) != 0) return -1;
  } else if (strcmp(mode, "relay") == 0 || strcmp(mode, "cuda") == 0) {
    bool relay = strcmp(mode, "relay") == 0;
    const char *lib = getenv("GPUPOOL_TEST_CLIENT_LIB");
    if (relay && (lib == NULL || *lib == '\0')) {
      gpt__check_fail(__FILE__, __LINE__, "GPUPOOL_TEST_CLIENT_LIB", "%s",
                      "not set: the relay needs gpupool's libcuda.so.1");
      return -1;
    }
    bargs[nb++] = "--backend";
    bargs[nb++] = "emu";
    bargs[nb++] = "--emu-memory";
    bargs[nb++] = "1G";
    args[n++] = "--backend";
    args[n++] = "cuda";
    /* cuda: NVIDIA's library, named by path, since meson test puts
     * gpupool's own build/client first on every test's library path and a
     * server inheriting that would load gpupool's library and call itself. */
    const char *nvlib = getenv("GPT_CUDA_LIB");
    if (!relay && (nvlib == NULL || *nvlib == '\0')) {
      gpt__check_fail(__FILE__, __LINE__, "GPT_CUDA_LIB", "%s",
                      "not set: GPT_SERVER_MODE=cuda needs the path of "
                      "NVIDIA's libcuda.so.1 (scripts/gpu-check.sh sets it)");
      return -1;
    }
    args[n++] = "--cuda-lib";
    args[n++] = relay ? lib : nvlib;
    for (int i = 0; extra && extra[i] && n < 78 && nb < 78; i++) {
      bool emu = emu_arg(extra[i]);
      bool both = strncmp(extra[i], "--log-level", 11) == 0 ||
                  strcmp(extra[i], "--insecure") == 0;
      /* A flag's value is its own word unless written FLAG=VALUE. */
      bool valued = strchr(extra[i], '=') == NULL && extra[i + 1] != NULL &&
                    strncmp(extra[i + 1], "--", 2) != 0 &&
                    strncmp(extra[i], "--", 2) == 0;
      int words = valued ? 2 : 1;
      for (int k = 0; k < words; k++) {
        if (emu || both) bargs[nb++] = extra[i + k];
        if (!emu || both) args[n++] = extra[i + k];
      }
      i += words - 1;
    }
    args[n] = NULL;
    bargs[nb] = NULL;
    if (relay) {
      struct gpt_server *b = calloc(1, sizeof *b);
      if (b == NULL) return -1;
      if (start_one(b, bin, "127.0.0.1:0", bargs, NULL) != 0) {
        free(b);
        return -1;
      }
      if (start_one(s, bin, "127.0.0.1:0", args, b->addr) != 0) {
        gpt_server_stop(b, 0);
        free(b);
        return -1;
      }
      s->behind = b;
    } else if (start_one(s, bin, "127.0.0.1:0", args, NULL) != 0) {
      return -1;
    }
  } else {
    gpt__check_fail(__FILE__, __LINE__, "GPT_SERVER_MODE",
                    "'%s' is not emu, relay or cuda", mode);
    return -1;
  }
  setenv("GPUPOOL_SERVER", s->addr, 1);
  s->insecure = insecure;
  gpt__check_pass();
  return 0;
}

bool gpt_server_alive(struct gpt_server *s) {
  if (s->pid <= 0 || s->reaped) return false;
  int st;
  if (try_reap(s->pid, &st)) {
    s->reaped = true;
    s->status = st;
    return false;
  }
  return true;
}

void gpt_server_signal(struct gpt_server *s, int sig, bool group) {
  if (s->pid <= 0 || s->reaped) return;
  if (group)
    kill(-s->pid, sig);
  else
    kill(s->pid, sig);
}

int gpt_server_stop(struct gpt_server *s, int grace_ms) {
  if (s->pid <= 0) return -1;
  int result = -1;
  if (!s->reaped) {
    /* SIGCONT first, in case a scenario stopped it: sent after SIGTERM, it
     * could land while a sanitizer build's exit-time leak check has the
     * exiting process stopped under ptrace, which then never finishes. */
    kill(-s->pid, SIGCONT);
    kill(s->pid, SIGTERM);
    double deadline = gpt_now() + grace_ms / 1000.0;
    for (;;) {
      int st;
      if (try_reap(s->pid, &st)) {
        s->reaped = true;
        s->status = st;
        break;
      }
      if (gpt_now() >= deadline) break;
      gpt_sleep_ms(5);
    }
  }
  if (s->reaped) result = decode_status(s->status);
  /* Whatever is left of the group (workers that outlived it) goes too. */
  kill(-s->pid, SIGKILL);
  if (!s->reaped) {
    int st;
    if (waitpid(s->pid, &st, 0) == s->pid) s->status = st;
    s->reaped = true;
  }
  untrack_server(s);
  if (s->behind != NULL) {
    gpt_server_stop(s->behind, grace_ms);
    free(s->behind);
    s->behind = NULL;
  }
  return result;
}

int gpt_server_workers(struct gpt_server *s, pid_t *pids, int max) {
  /* /proc/PID/task/PID/children lists direct children (Linux >= 3.5 with
   * CONFIG_PROC_CHILDREN); without it, no workers are reported and the
   * scenarios that count them skip that check. */
  char path[64];
  int n = 0;
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)s->pid,
           (int)s->pid);
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    int pid;
    while (n < max && fscanf(f, "%d", &pid) == 1) pids[n++] = pid;
    fclose(f);
    return n;
  }
  return 0;
}

/* ---- Child processes ---------------------------------------------------------------------- */

const char *gpt_self_exe(void) {
  static char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return NULL;
  self[len] = '\0';
  return self;
}

int gpt_spawn(struct gpt_child *c, const char *role, const char *const *args) {
  memset(c, 0, sizeof *c);
  int down[2], up[2];
  if (pipe2(down, O_CLOEXEC) != 0) return -1;
  if (pipe2(up, O_CLOEXEC) != 0) {
    close(down[0]);
    close(down[1]);
    return -1;
  }
  const char *self = gpt_self_exe();
  if (self == NULL) return -1;
  const char *argv[32];
  int argc = 0;
  argv[argc++] = self;
  argv[argc++] = role;
  for (int i = 0; args && args[i] && argc < 31; i++) argv[argc++] = args[i];
  argv[argc] = NULL;

  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    /* dup2 clears FD_CLOEXEC on the copies. */
    dup2(down[0], 0);
    dup2(up[1], 3);
    execv(self, (char *const *)argv);
    _exit(127);
  }
  close(down[0]);
  close(up[1]);
  c->pid = pid;
  c->to_fd = down[1];
  c->from_fd = up[0];
  track_child(pid, true);
  return 0;
}

int gpt_child_send(struct gpt_child *c, const char *line) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "%s\n", line);
  return write(c->to_fd, buf, (size_t)n) == n ? 0 : -1;
}

/* Reads a line from |fd| byte by byte (lines are short and rare). */
static int read_line(int fd, char *buf, size_t len, int timeout_ms) {
  size_t n = 0;
  double deadline = gpt_now() + timeout_ms / 1000.0;
  while (n + 1 < len) {
    int left = (int)((deadline - gpt_now()) * 1000.0);
    if (left < 0) left = 0;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char ch;
    ssize_t got = read(fd, &ch, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    if (ch == '\n') break;
    buf[n++] = ch;
  }
  buf[n] = '\0';
  return (int)n;
}

int gpt_child_recv(struct gpt_child *c, char *buf, size_t len, int timeout_ms) {
  return read_line(c->from_fd, buf, len, timeout_ms);
}

int gpt_child_wait(struct gpt_child *c, int timeout_ms) {
  if (c->pid <= 0) return -1;
  if (!c->reaped) {
    double deadline = gpt_now() + timeout_ms / 1000.0;
    int st;
    while (!try_reap(c->pid, &st)) {
      if (gpt_now() >= deadline) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &st, 0);
        c->reaped = true;
        c->status = st;
        track_child(c->pid, false);
        close(c->to_fd);
        close(c->from_fd);
        return -1;
      }
      gpt_sleep_ms(5);
    }
    c->reaped = true;
    c->status = st;
    track_child(c->pid, false);
    close(c->to_fd);
    close(c->from_fd);
  }
  return decode_status(c->status);
}

void gpt_child_say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t unused = write(3, buf, (size_t)n);
  (void)unused;
}

int gpt_child_hear(char *buf, size_t len, int timeout_ms) {
  return read_line(0, buf, len, timeout_ms);
}

/* ---- The broker ---------------------------------------------------------------------------- */

/* Brokers whose folders are removed when the scenario ends. */
static struct gpt_broker *brokers[MAX_TRACKED];

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

/* Removes the broker's folder and everything a scenario put in it. */
static void remove_broker_files(struct gpt_broker *b) {
  if (b->dir[0] == '\0') return;
  nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  b->dir[0] = '\0';
}

static void remove_all_broker_files(void) {
  for (int i = 0; i < MAX_TRACKED; i++) {
    if (brokers[i] != NULL) remove_broker_files(brokers[i]);
    brokers[i] = NULL;
  }
}

int gpt_write_file(const char *dir, const char *name, const char *text,
                   int mode, char *path, size_t len) {
  snprintf(path, len, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    gpt__check_fail(__FILE__, __LINE__, "open", "%s: %s", path,
                    strerror(errno));
    return -1;
  }
  size_t n = strlen(text);
  bool ok = write(fd, text, n) == (ssize_t)n;
  /* open() honours the umask; the mode asked for is the mode wanted. */
  ok = fchmod(fd, (mode_t)mode) == 0 && ok;
  close(fd);
  if (!ok) {
    gpt__check_fail(__FILE__, __LINE__, "write", "%s: %s", path,
                    strerror(errno));
    return -1;
  }
  return 0;
}

/* Starts the broker's process on |listen| with the config already
 * written. */
static int broker_launch(struct gpt_broker *b, const char *listen) {
  const char *bin = getenv("GPUPOOL_TEST_BROKER");
  if (bin == NULL || *bin == '\0') {
    gpt__check_fail(__FILE__, __LINE__, "getenv(\"GPUPOOL_TEST_BROKER\")",
                    "%s", "not set: run the tests with meson test");
    return -1;
  }
  const char *args[16] = {"--config", b->config_file};
  int n = 2;
  if (b->tls_args[0] == NULL) {
    args[n++] = "--tls-cert";
    args[n++] = gpt_cert("broker.pem", false);
    args[n++] = "--tls-key";
    args[n++] = gpt_cert("broker.key", false);
    args[n++] = "--tls-ca";
    args[n++] = gpt_cert("ca.pem", false);
  } else {
    for (int i = 0; b->tls_args[i] != NULL && i < 7; i++)
      args[n++] = b->tls_args[i];
  }
  args[n] = NULL;
  if (start_one(&b->proc, bin, listen, args, NULL) != 0) return -1;
  b->port = b->proc.port;
  snprintf(b->addr, sizeof b->addr, "127.0.0.1:%d", b->port);
  return 0;
}

int gpt_broker_start(struct gpt_broker *b, const char *config) {
  return gpt_broker_start_tls(b, config, NULL);
}

int gpt_broker_start_tls(struct gpt_broker *b, const char *config,
                         const char *const *tls) {
  memset(b, 0, sizeof *b);
  b->proc.pid = -1;
  for (int i = 0; tls != NULL && tls[i] != NULL && i < 7; i++)
    b->tls_args[i] = tls[i];
  /* The clients this process starts verify the broker with the test CA. */
  setenv("GPUPOOL_TLS_CA", gpt_cert("ca.pem", false), 1);
  const char *tmp = getenv("TMPDIR");
  snprintf(b->dir, sizeof b->dir, "%s/gpupool-broker-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(b->dir) == NULL) {
    gpt__check_fail(__FILE__, __LINE__, "mkdtemp", "%s", strerror(errno));
    b->dir[0] = '\0';
    return -1;
  }
  for (int i = 0; i < MAX_TRACKED; i++) {
    if (brokers[i] == NULL || brokers[i] == b) {
      brokers[i] = b;
      break;
    }
  }
  unsigned char raw[32];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool got = fd >= 0 && read(fd, raw, sizeof raw) == (ssize_t)sizeof raw;
  if (fd >= 0) close(fd);
  if (!got) {
    gpt__check_fail(__FILE__, __LINE__, "read /dev/urandom", "%s",
                    strerror(errno));
    return -1;
  }
  char key[2 * sizeof raw + 2];
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(key + 2 * i, 3, "%02x", raw[i]);
  strcat(key, "\n");
  if (gpt_write_file(b->dir, "grant.key", key, 0600, b->key_file,
                     sizeof b->key_file) != 0)
    return -1;
  size_t clen = strlen(config) + strlen(b->key_file) + 64;
  char *text = gpt_xmalloc(clen);
  snprintf(text, clen, "[broker]\ngrant_key_file = %s\n%s", b->key_file,
           config);
  int r = gpt_write_file(b->dir, "broker.conf", text, 0600, b->config_file,
                         sizeof b->config_file);
  free(text);
  if (r != 0) return -1;
  return broker_launch(b, "127.0.0.1:0");
}

int gpt_broker_restart(struct gpt_broker *b) {
  if (!b->proc.reaped && b->proc.pid > 0) gpt_server_stop(&b->proc, 0);
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", b->port);
  int port = b->port;
  if (broker_launch(b, listen) != 0) return -1;
  if (b->port != port) {
    gpt__check_fail(__FILE__, __LINE__, "gpt_broker_restart",
                    "asked for port %d, the broker wrote %d", port, b->port);
    return -1;
  }
  return 0;
}

void gpt_broker_kill(struct gpt_broker *b) {
  if (b->proc.pid <= 0 || b->proc.reaped) return;
  kill(b->proc.pid, SIGKILL);
  int st;
  if (waitpid(b->proc.pid, &st, 0) == b->proc.pid) b->proc.status = st;
  b->proc.reaped = true;
  untrack_server(&b->proc);
}

int gpt_broker_stop(struct gpt_broker *b, int grace_ms) {
  int r = -1;
  if (b->proc.pid > 0) r = gpt_server_stop(&b->proc, grace_ms);
  remove_broker_files(b);
  for (int i = 0; i < MAX_TRACKED; i++)
    if (brokers[i] == b) brokers[i] = NULL;
  return r;
}

void gpt_run(struct gpt_run *r, const char *const *argv,
             const char *const *env, int timeout_s) {
  memset(r, 0, sizeof *r);
  r->status = -1;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return;
  fflush(NULL);
  double t0 = gpt_now();
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return;
  }
  if (pid == 0) {
    for (int i = 0; env && env[i]; i++) {
      const char *eq = strchr(env[i], '=');
      if (eq == NULL) {
        unsetenv(env[i]);
      } else {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
        setenv(name, eq + 1, 1);
      }
    }
    dup2(p[1], 1);
    dup2(p[1], 2);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    _exit(126);
  }
  close(p[1]);
  size_t n = 0;
  double deadline = t0 + timeout_s;
  for (;;) {
    int left = (int)((deadline - gpt_now()) * 1000);
    if (left <= 0) break;
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, left) <= 0) continue;
    ssize_t got = read(p[0], r->out + n, sizeof r->out - 1 - n);
    if (got <= 0) break;
    n += (size_t)got;
    if (n == sizeof r->out - 1) break;
  }
  r->out[n] = '\0';
  close(p[0]);
  int st;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (gpt_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      fprintf(stderr, "%s timed out\n", argv[0]);
      return;
    }
    gpt_sleep_ms(5);
  }
  r->secs = gpt_now() - t0;
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  printf("$ %s", argv[0]);
  for (int i = 1; argv[i]; i++) printf(" %s", argv[i]);
  printf(" -> %d (%.2f s)\n%s", r->status, r->secs, r->out);
}

/* ---- TLS for the broker and its pool servers ---------------------------------------- */

const char *gpt_cert(const char *name, bool other) {
  static char paths[16][512];
  static int next;
  const char *dir = getenv(other ? "GPT_CERTS_OTHER" : "GPT_CERTS");
  if (dir == NULL || *dir == '\0') {
    gpt__check_fail(__FILE__, __LINE__, "gpt_cert", "%s is not set: run the "
                    "tests with meson test",
                    other ? "GPT_CERTS_OTHER" : "GPT_CERTS");
    gpt__abort_scenario();
  }
  char *p = paths[next++ % 16];
  snprintf(p, sizeof paths[0], "%s/%s", dir, name);
  return p;
}

int gpt_pool_tls_args(const char **args, int n) {
  args[n++] = "--tls-cert";
  args[n++] = gpt_cert("server.pem", false);
  args[n++] = "--tls-key";
  args[n++] = gpt_cert("server.key", false);
  args[n++] = "--tls-ca";
  args[n++] = gpt_cert("ca.pem", false);
  return n;
}

const char gpt_spin_ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    ".visible .entry spin(.param .u64 ns, .param .u64 out)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b64 %rd<7>;\n"
    "  ld.param.u64 %rd1, [ns];\n"
    "  ld.param.u64 %rd2, [out];\n"
    "  mov.u64 %rd3, %globaltimer;\n"
    "  add.u64 %rd4, %rd3, %rd1;\n"
    "LOOP:\n"
    "  mov.u64 %rd5, %globaltimer;\n"
    "  setp.lt.u64 %p1, %rd5, %rd4;\n"
    "  @%p1 bra LOOP;\n"
    "  cvta.to.global.u64 %rd6, %rd2;\n"
    "  st.global.u64 [%rd6], %rd5;\n"
    "  ret;\n"
    "}\n";
