/* Integration: isolation and limits on the server (docs/security.md,
 * "Isolation and limits on the server"). What one session leaves in device
 * memory is zeroed before the next gets it (--scrub, with the emulated
 * device's shared memory so that the next session really gets the same
 * bytes; --no-scrub shows they would be there); connections that send
 * nothing cost no process and are closed after --handshake-timeout;
 * connections over --max-conns-per-address are closed at accept; a client
 * that stops reading is dropped after --send-timeout without the server
 * buffering what it asked for; a kernel that runs over --kernel-timeout
 * ends its session alone; --max-sessions still refuses cleanly. Every
 * scenario checks that another session is served meanwhile and that the
 * server is back to its baseline of workers after.
 *
 * The hostile connections are raw TCP from 127.0.0.2 (bound before
 * connecting), so the per-address limit counts them and not the
 * legitimate clients from 127.0.0.1; they send nothing or garbage, which
 * works whether the server speaks TLS or not.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpupool/gpupool.h"
#include "grant.h"
#include "harness.h"
#include "raw.h"

#define MiB ((size_t)1 << 20)

static struct gpt_server server;
/* relay_scrub: the emu server behind |server| (a cuda-backend relay), and
 * whether it runs. */
static struct gpt_server behind;
static bool have_behind;

/* The server's log (its stderr) goes to this file, so that scenarios can
 * check what it says about how its workers ended. */
static char log_path[128];

static void show_log(void);

/* Starts the server with |extra|, its stderr in log_path. */
static void start_server(const char *const *extra) {
  static int started;
  int saved = dup(2), fd;
  snprintf(log_path, sizeof log_path, "/tmp/gpt-isolation-%d-%d.log",
           (int)getpid(), started++);
  fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE_TRUE(saved >= 0 && fd >= 0);
  fflush(stderr);
  dup2(fd, 2);
  int r = gpt_server_start(&server, extra);
  dup2(saved, 2);
  close(saved);
  close(fd);
  if (r != 0) {
    show_log(); /* why it did not start */
    gpt__abort_scenario();
  }
}

/* The server's log so far (a static buffer), also copied to stdout once at
 * the end of the scenario by show_log(). */
static const char *server_log(void) {
  static char buf[1 << 20];
  FILE *f = fopen(log_path, "r");
  size_t n = 0;
  if (f != NULL) {
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

static void show_log(void) {
  printf("---- server log ----\n%s---- end of server log ----\n",
         server_log());
  unlink(log_path);
}

/* How many times |needle| occurs in |hay|. */
static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* Waits up to |ms| for the server's log to contain |needle|. */
static bool log_says(const char *needle, int ms) {
  double deadline = gpt_now() + ms / 1000.0;
  do {
    if (strstr(server_log(), needle) != NULL) return true;
    gpt_sleep_ms(50);
  } while (gpt_now() < deadline);
  return false;
}

/* True if process |pid| is gone or a zombie. */
static bool process_gone(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *rp = strrchr(buf, ')');
  return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

/* The server's live workers now, into |pids| (at most |max|). */
static int live_workers(pid_t *pids, int max) {
  pid_t all[256];
  int n = gpt_server_workers(&server, all, 256), live = 0;
  for (int i = 0; i < n; i++)
    if (!process_gone(all[i]) && live < max) pids[live++] = all[i];
  return live;
}

/* Waits up to |ms| for exactly |want| live workers; returns the last
 * count. With a server behind (relay_scrub), waits for its workers to
 * number |want| too (one behind each relaying worker). */
static int wait_workers(int want, int ms) {
  pid_t pids[256];
  double deadline = gpt_now() + ms / 1000.0;
  int n;
  do {
    n = live_workers(pids, 256);
    if (n == want && have_behind) {
      struct gpt_server front = server;
      server = behind;
      int nb = live_workers(pids, 256);
      server = front;
      if (nb != want) n = -1000 - nb;
    }
    if (n == want) break;
    gpt_sleep_ms(20);
  } while (gpt_now() < deadline);
  return n;
}

/* The workers can be listed here (the check of every scenario needs it). */
static void require_worker_list(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)server.pid,
           (int)server.pid);
  if (access(path, R_OK) != 0)
    gpt_skip("%s is not readable: workers cannot be counted", path);
}

/* Resident memory of |pid| in KiB (VmRSS), -1 if unknown. */
static long rss_kib(pid_t pid) {
  char path[64], line[256];
  long v = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
  fclose(f);
  return v;
}

/* One legitimate session from 127.0.0.1 in a process of its own: a
 * 16 MiB round trip; true when it was byte-exact. */
static bool other_session_served(void) {
  struct gpt_child c;
  if (!CHECK_TRUE(gpt_spawn(&c, "child_roundtrip", NULL) == 0)) return false;
  return CHECK_EQ_I(gpt_child_wait(&c, 60000), 0);
}

/* ---- child roles ------------------------------------------------------------------ */

static void child_roundtrip(int argc, char **argv) {
  const size_t n = 16 * MiB;
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  gpt_init_context(NULL);
  gpt_fill(in, n, (uint64_t)getpid());
  REQUIRE_OK(cuMemAlloc(&d, n));
  CHECK_OK(cuMemcpyHtoD(d, in, n));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoH(out, d, n));
  CHECK_MEM_EQ(out, in, n);
  CHECK_OK(cuMemFree(d));
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

/* The scrub scenario's tenants: |SIZE_MIB| of device memory each. */
#define TENANT_MIB 16
#define TENANT_SEED 0x5c7b

/* Tenant A: allocates, writes the pattern, says where, then waits for a
 * line and exits (normally: the client library says GOODBYE). */
static void child_tenant_a(int argc, char **argv) {
  const size_t n = TENANT_MIB * MiB;
  unsigned char *h = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  char line[64];
  gpt_init_context(NULL);
  gpt_fill(h, n, TENANT_SEED);
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemcpyHtoD(d, h, n));
  REQUIRE_OK(cuCtxSynchronize());
  gpt_child_say("ptr %" PRIx64, (uint64_t)d);
  gpt_child_hear(line, sizeof line, 30000);
  free(h);
  (void)argc;
  (void)argv;
}

/* Tenant B: allocates as much, reads it without writing, and says where
 * it is, how many of its bytes equal tenant A's pattern where that is not
 * zero, and how many are zero. */
static void child_tenant_b(int argc, char **argv) {
  const size_t n = TENANT_MIB * MiB;
  unsigned char *pat = gpt_xmalloc(n), *got = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  size_t match = 0, zero = 0, nonzero_pat = 0;
  gpt_init_context(NULL);
  gpt_fill(pat, n, TENANT_SEED);
  REQUIRE_OK(cuMemAlloc(&d, n));
  memset(got, 0x11, n);
  REQUIRE_OK(cuMemcpyDtoH(got, d, n));
  for (size_t i = 0; i < n; i++) {
    if (pat[i] != 0) nonzero_pat++;
    if (pat[i] != 0 && got[i] == pat[i]) match++;
    if (got[i] == 0) zero++;
  }
  gpt_child_say("ptr %" PRIx64 " match %zu of %zu zero %zu", (uint64_t)d,
                match, nonzero_pat, zero);
  free(pat);
  free(got);
  (void)argc;
  (void)argv;
}

/* Tenant A that frees: allocates, writes the pattern, frees it, says
 * where it was, and stays in its session until it hears a line. */
static void child_tenant_a_free(int argc, char **argv) {
  const size_t n = TENANT_MIB * MiB;
  unsigned char *h = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  char line[64];
  gpt_init_context(NULL);
  gpt_fill(h, n, TENANT_SEED);
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemcpyHtoD(d, h, n));
  REQUIRE_OK(cuCtxSynchronize());
  REQUIRE_OK(cuMemFree(d));
  REQUIRE_OK(cuCtxSynchronize()); /* the free has reached the server */
  gpt_child_say("ptr %" PRIx64, (uint64_t)d);
  gpt_child_hear(line, sizeof line, 30000);
  free(h);
  (void)argc;
  (void)argv;
}

/* ---- scrub ---------------------------------------------------------------------- */

struct tenant_b_says {
  uint64_t ptr;
  size_t match, nonzero, zero;
};

/* Runs tenant A to its end (|sig|: A's worker gets that signal instead:
 * SIGKILL, so that no code of it runs after, or SIGTERM, as the
 * supervisor sends when it stops), then tenant B, and returns what B
 * found; A's pointer in |*a_ptr|. */
static struct tenant_b_says a_then_b(uint64_t *a_ptr, int sig) {
  struct tenant_b_says b = {0};
  struct gpt_child a, c;
  char line[256];
  REQUIRE_TRUE(gpt_spawn(&a, "child_tenant_a", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&a, line, sizeof line, 30000) >= 0);
  REQUIRE_TRUE(sscanf(line, "ptr %" SCNx64, a_ptr) == 1);
  if (sig) {
    pid_t pids[4];
    REQUIRE_TRUE(live_workers(pids, 4) == 1);
    kill(pids[0], sig);
    CHECK_EQ_I(wait_workers(0, 10000), 0);
  }
  gpt_child_send(&a, "go");
  gpt_child_wait(&a, 30000);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  REQUIRE_TRUE(gpt_spawn(&c, "child_tenant_b", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&c, line, sizeof line, 30000) >= 0);
  printf("tenant B: %s\n", line);
  REQUIRE_TRUE(sscanf(line, "ptr %" SCNx64 " match %zu of %zu zero %zu",
                      &b.ptr, &b.match, &b.nonzero, &b.zero) == 4);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  return b;
}

/* --scrub (the default) with shared device memory: tenant B gets the very
 * bytes tenant A had, and finds none of A's pattern in them; the same with
 * A's worker killed (the supervisor zeroes what it held). */
static void test_isolation_scrub(int argc, char **argv) {
  const char *extra[] = {"--emu-shared-memory", "--emu-memory", "64M",
                         "--log-level", "debug", NULL};
  start_server(extra);
  require_worker_list();
  uint64_t a_ptr = 0;
  struct tenant_b_says b = a_then_b(&a_ptr, 0);
  /* The same block: the test is about what B is handed. */
  CHECK_EQ_U(b.ptr, a_ptr);
  CHECK_EQ_U(b.match, 0);
  CHECK_EQ_U(b.zero, TENANT_MIB * MiB);
  CHECK_TRUE(log_says("scrub: 16777216 bytes of device memory zeroed", 5000));

  b = a_then_b(&a_ptr, SIGKILL);
  CHECK_EQ_U(b.ptr, a_ptr);
  CHECK_EQ_U(b.match, 0);
  CHECK_EQ_U(b.zero, TENANT_MIB * MiB);
  CHECK_TRUE(log_says("shared device memory its worker held freed and "
                      "zeroed", 5000));

  /* SIGTERM: the worker ends the session its normal way, scrubbing. */
  int scrubs = count_of(server_log(), "scrub: 16777216 bytes");
  b = a_then_b(&a_ptr, SIGTERM);
  CHECK_EQ_U(b.ptr, a_ptr);
  CHECK_EQ_U(b.match, 0);
  CHECK_EQ_U(b.zero, TENANT_MIB * MiB);
  CHECK_TRUE(log_says("SIGTERM: the server is stopping; session ended",
                      5000));
  /* A's worker and B's each scrubbed. */
  CHECK_EQ_I(count_of(server_log(), "scrub: 16777216 bytes"), scrubs + 2);
  CHECK_EQ_I(count_of(server_log(), "its worker held freed"), 1);

  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  CHECK_TRUE(gpt_server_alive(&server));
  show_log();
  (void)argc;
  (void)argv;
}

/* --scrub with shared device memory, memory freed while its session goes
 * on: tenant A frees its block and stays; tenant B, meanwhile, gets the
 * same block and finds none of A's bytes in it (a free zeroes it under
 * --scrub: from then on any session may take it). */
static void test_isolation_scrub_free(int argc, char **argv) {
  const char *extra[] = {"--emu-shared-memory", "--emu-memory", "64M", NULL};
  start_server(extra);
  require_worker_list();
  struct gpt_child a, c;
  char line[256];
  uint64_t a_ptr = 0;
  struct tenant_b_says b = {0};
  REQUIRE_TRUE(gpt_spawn(&a, "child_tenant_a_free", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&a, line, sizeof line, 30000) >= 0);
  REQUIRE_TRUE(sscanf(line, "ptr %" SCNx64, &a_ptr) == 1);
  REQUIRE_TRUE(gpt_spawn(&c, "child_tenant_b", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&c, line, sizeof line, 30000) >= 0);
  printf("tenant B: %s\n", line);
  REQUIRE_TRUE(sscanf(line, "ptr %" SCNx64 " match %zu of %zu zero %zu",
                      &b.ptr, &b.match, &b.nonzero, &b.zero) == 4);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  gpt_child_send(&a, "go");
  CHECK_EQ_I(gpt_child_wait(&a, 30000), 0);
  CHECK_EQ_U(b.ptr, a_ptr);
  CHECK_EQ_U(b.match, 0);
  CHECK_EQ_U(b.zero, TENANT_MIB * MiB);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* The same with --no-scrub: B does find A's pattern, byte for byte. This
 * is what makes the scrub scenario able to fail. */
static void test_isolation_no_scrub(int argc, char **argv) {
  const char *extra[] = {"--emu-shared-memory", "--emu-memory", "64M",
                         "--no-scrub", NULL};
  start_server(extra);
  require_worker_list();
  uint64_t a_ptr = 0;
  struct tenant_b_says b = a_then_b(&a_ptr, 0);
  CHECK_EQ_U(b.ptr, a_ptr);
  CHECK_GT_U(b.nonzero, TENANT_MIB * MiB / 2);
  CHECK_EQ_U(b.match, b.nonzero);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* The cuda backend's scrub, against gpupool's own driver: server A runs
 * --backend cuda on the client library, relaying to an emu server B with
 * shared memory and --no-scrub (B leaves whatever it is given). Only A's
 * scrub (cuMemsetD8 of every live allocation, then a synchronize, through
 * the relay) can zero tenant A's bytes before tenant B gets the same
 * block; with A --no-scrub too, B finds them. */
/* The relay's client.conf, naming B for A's workers. */
static char relay_dir[64], relay_conf[320];

/* Starts emu server B with |b_extra|, then server A in front of it
 * (--backend cuda on gpupool's client library) with |a_extra| after the
 * backend flags; |server| is A, |behind| B. */
static void start_relay(const char *const *b_extra, const char *const *a_extra) {
  const char *lib = getenv("GPUPOOL_TEST_LIBCUDA");
  const char *args[16];
  int n = 0;
  char text[128];
  REQUIRE_TRUE(lib != NULL && *lib != '\0');
  if (strcmp(gpt_server_mode(), "emu") != 0)
    gpt_skip("starts its own relay: emu mode only");
  start_server(b_extra);
  behind = server;
  have_behind = true;
  /* A's workers find B in a client.conf (the harness starts a server
   * without GPUPOOL_SERVER); this process's clients are given A. */
  snprintf(relay_dir, sizeof relay_dir, "/tmp/gpt-isolation-conf-XXXXXX");
  REQUIRE_TRUE(mkdtemp(relay_dir) != NULL);
  snprintf(text, sizeof text, "[client]\nserver = %s\n", behind.addr);
  REQUIRE_TRUE(gpt_write_file(relay_dir, "client.conf", text, 0600,
                              relay_conf, sizeof relay_conf) == 0);
  args[n++] = "--backend";
  args[n++] = "cuda";
  args[n++] = "--cuda-lib";
  args[n++] = lib;
  for (int i = 0; a_extra[i] && n < 15; i++) args[n++] = a_extra[i];
  args[n] = NULL;
  setenv("GPUPOOL_CONFIG", relay_conf, 1);
  start_server(args);
  unsetenv("GPUPOOL_CONFIG"); /* A's workers read it: removed at the end */
}

/* Stops A; |server| is B again. */
static void stop_relay(void) {
  gpt_server_stop(&server, 5000);
  server = behind;
  have_behind = false;
  unlink(relay_conf);
  rmdir(relay_dir);
}

static void relay_scrub_run(bool scrub) {
  const char *b_extra[] = {"--emu-shared-memory", "--emu-memory", "64M",
                           "--no-scrub", NULL};
  const char *a_extra[] = {scrub ? "--scrub" : "--no-scrub", "--log-level",
                           "debug", NULL};
  start_relay(b_extra, a_extra);
  require_worker_list();
  uint64_t a_ptr = 0;
  struct tenant_b_says b = a_then_b(&a_ptr, 0);
  CHECK_EQ_U(b.ptr, a_ptr);
  if (scrub) {
    CHECK_EQ_U(b.match, 0);
    CHECK_EQ_U(b.zero, TENANT_MIB * MiB);
    CHECK_TRUE(log_says("scrub: 16777216 bytes of device memory zeroed",
                        5000));
  } else {
    CHECK_GT_U(b.nonzero, TENANT_MIB * MiB / 2);
    CHECK_EQ_U(b.match, b.nonzero);
  }
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  stop_relay();
}

static void test_isolation_relay_scrub(int argc, char **argv) {
  relay_scrub_run(true);
  (void)argc;
  (void)argv;
}

static void test_isolation_relay_no_scrub(int argc, char **argv) {
  relay_scrub_run(false);
  (void)argc;
  (void)argv;
}

/* Shared device memory keeps sessions apart: two sessions at once get
 * different addresses, and one's pointer is invalid in the other. */
static void child_holder(int argc, char **argv) {
  CUdeviceptr d = 0;
  char line[64];
  gpt_init_context(NULL);
  REQUIRE_OK(cuMemAlloc(&d, MiB));
  REQUIRE_OK(cuMemsetD8(d, 0xaa, MiB));
  gpt_child_say("ptr %" PRIx64, (uint64_t)d);
  gpt_child_hear(line, sizeof line, 30000);
  unsigned char *h = gpt_xmalloc(MiB);
  CHECK_OK(cuMemcpyDtoH(h, d, MiB));
  gpt_child_say("%s", CHECK_MEM_ALL(h, 0xaa, MiB) ? "intact" : "changed");
  free(h);
  (void)argc;
  (void)argv;
}

static void test_isolation_shared_apart(int argc, char **argv) {
  const char *extra[] = {"--emu-shared-memory", "--emu-memory", "64M", NULL};
  start_server(extra);
  require_worker_list();
  struct gpt_child a;
  char line[128];
  uint64_t theirs = 0;
  REQUIRE_TRUE(gpt_spawn(&a, "child_holder", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&a, line, sizeof line, 30000) >= 0);
  REQUIRE_TRUE(sscanf(line, "ptr %" SCNx64, &theirs) == 1);

  gpt_init_context(NULL);
  CUdeviceptr mine = 0;
  REQUIRE_OK(cuMemAlloc(&mine, MiB));
  CHECK_NE_U(mine, theirs);
  /* Not this session's: refused, and their bytes untouched. */
  CHECK_CU(cuMemsetD8((CUdeviceptr)theirs, 0x55, 16), CUDA_ERROR_INVALID_VALUE);
  unsigned char buf[16];
  CHECK_CU(cuMemcpyDtoH(buf, (CUdeviceptr)theirs, sizeof buf),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFree((CUdeviceptr)theirs), CUDA_ERROR_INVALID_VALUE);
  /* The shared memory's size, not a private arena's. */
  size_t free_b = 0, total = 0;
  CHECK_OK(cuMemGetInfo(&free_b, &total));
  CHECK_EQ_U(total, 64 * MiB);
  CHECK_LE_U(free_b, 62 * MiB);
  CHECK_TRUE(gpt_child_send(&a, "check") == 0);
  if (CHECK_GE_I(gpt_child_recv(&a, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&a, 30000), 0);
  CHECK_OK(cuMemFree(mine));
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(1, 10000), 1); /* this process's session */
  show_log();
  (void)argc;
  (void)argv;
}

/* ---- silent and excess connections ------------------------------------------------ */

/* True when the server closes |fd| within |ms|, whatever it sends first
 * (a ProtocolError, a TLS alert): reads until EOF or ECONNRESET. */
static bool drained_to_close(int fd, int ms) {
  double deadline = gpt_now() + ms / 1000.0;
  char buf[4096];
  for (;;) {
    int left = (int)((deadline - gpt_now()) * 1000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) <= 0) return false;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
  }
}

/* A TCP connection to the server from |src| (e.g. "127.0.0.2"); -1 if it
 * cannot be made. */
static int connect_from(const char *src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in me = {.sin_family = AF_INET};
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0) return -1;
  inet_pton(AF_INET, src, &me.sin_addr);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0 ||
      connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* True when the server has closed |fd| (a read returns EOF or
 * ECONNRESET), waiting at most |ms|. */
static bool closed_by_server(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  char c;
  if (poll(&p, 1, ms) <= 0) return false;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

#define SILENT 500

/* 500 connections from 127.0.0.2 that send nothing: no worker for any of
 * them, a legitimate client is served meanwhile, and after
 * --handshake-timeout the server has closed them all. */
static void test_isolation_silent_flood(int argc, char **argv) {
  const char *extra[] = {"--handshake-timeout", "3000",
                         "--max-conns-per-address", "600", NULL};
  struct rlimit rl;
  static int fds[SILENT];
  start_server(extra);
  require_worker_list();
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < SILENT + 64) {
    rl.rlim_cur = rl.rlim_max < SILENT + 64 ? rl.rlim_max : SILENT + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int probe = connect_from("127.0.0.2");
  if (probe < 0) gpt_skip("cannot bind 127.0.0.2: %s", strerror(errno));
  close(probe);
  gpt_sleep_ms(100);

  double t0 = gpt_now();
  int opened = 0;
  for (int i = 0; i < SILENT; i++) {
    fds[i] = connect_from("127.0.0.2");
    if (fds[i] >= 0) opened++;
  }
  REQUIRE_TRUE(opened == SILENT);
  printf("%d silent connections opened in %.2f s\n", opened, gpt_now() - t0);
  /* No process for any of them. */
  gpt_sleep_ms(300);
  CHECK_EQ_I(wait_workers(0, 100), 0);
  /* A legitimate client is served meanwhile. */
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  /* None was closed before its time (a read would say so at once). */
  int early = 0;
  for (int i = 0; i < SILENT; i++)
    if (closed_by_server(fds[i], 0)) early++;
  if (gpt_now() - t0 < 2.5) CHECK_EQ_I(early, 0);
  /* After the timeout all are closed by the server. */
  int closed = 0;
  for (int i = 0; i < SILENT; i++) {
    int left = (int)((t0 + 3.0 + 5.0 - gpt_now()) * 1000);
    if (closed_by_server(fds[i], left > 0 ? left : 0)) closed++;
    close(fds[i]);
  }
  CHECK_EQ_I(closed, SILENT);
  printf("all %d closed by the server %.2f s after the first was opened\n",
         closed, gpt_now() - t0);
  CHECK_EQ_I(wait_workers(0, 1000), 0);
  CHECK_TRUE(log_says("nothing received within 3000 ms", 1000));
  CHECK_TRUE(gpt_server_alive(&server));
  show_log();
  (void)argc;
  (void)argv;
}

/* More than --max-conns-per-address from one address: those over the
 * limit are closed at once; the others wait; garbage sent on one of them
 * costs a worker only until the worker refuses it; other addresses are
 * served all along. */
static void test_isolation_per_address(int argc, char **argv) {
  const char *extra[] = {"--max-conns-per-address", "8",
                         "--handshake-timeout", "20000", NULL};
  int fds[20];
  start_server(extra);
  require_worker_list();
  int probe = connect_from("127.0.0.2");
  if (probe < 0) gpt_skip("cannot bind 127.0.0.2: %s", strerror(errno));
  close(probe);
  gpt_sleep_ms(200);

  for (int i = 0; i < 20; i++) {
    fds[i] = connect_from("127.0.0.2");
    REQUIRE_TRUE(fds[i] >= 0);
    gpt_sleep_ms(5); /* accepted in this order */
  }
  int held = 0, dropped = 0;
  for (int i = 0; i < 8; i++)
    if (!closed_by_server(fds[i], 300)) held++;
  for (int i = 8; i < 20; i++)
    if (closed_by_server(fds[i], 2000)) dropped++;
  CHECK_EQ_I(held, 8);
  CHECK_EQ_I(dropped, 12);
  CHECK_TRUE(log_says("(--max-conns-per-address 8)", 2000));
  CHECK_EQ_I(wait_workers(0, 100), 0);
  /* 127.0.0.1 is another address: served. */
  CHECK_TRUE(other_session_served());
  /* Garbage on a held one: a worker starts, refuses it and ends. */
  static const char junk[64] = "this is not a gpupool frame, nor a TLS one";
  CHECK_EQ_I(send(fds[0], junk, sizeof junk, MSG_NOSIGNAL), sizeof junk);
  CHECK_TRUE(drained_to_close(fds[0], 15000));
  close(fds[0]);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  /* A slot of 127.0.0.2 is free again. */
  int again = connect_from("127.0.0.2");
  REQUIRE_TRUE(again >= 0);
  CHECK_TRUE(!closed_by_server(again, 300));
  close(again);
  for (int i = 1; i < 20; i++) close(fds[i]);
  CHECK_EQ_I(wait_workers(0, 5000), 0);
  CHECK_TRUE(gpt_server_alive(&server));
  show_log();
  (void)argc;
  (void)argv;
}

/* 300 connections from 127.0.0.2 that close at once, sending nothing (or
 * reset): none costs a worker. */
static void test_isolation_connect_close(int argc, char **argv) {
  start_server(NULL);
  require_worker_list();
  int peak = 0;
  for (int i = 0; i < 300; i++) {
    int fd = connect_from("127.0.0.2");
    if (fd < 0 && i == 0) gpt_skip("cannot bind 127.0.0.2: %s", strerror(errno));
    REQUIRE_TRUE(fd >= 0);
    if (i % 2) {
      /* A reset instead of a FIN. */
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    if (i % 10 == 0) {
      pid_t pids[64];
      int n = live_workers(pids, 64);
      if (n > peak) peak = n;
    }
  }
  gpt_sleep_ms(300);
  CHECK_EQ_I(peak, 0);
  CHECK_EQ_I(wait_workers(0, 100), 0);
  CHECK_EQ_I(count_of(server_log(), "started ("), 0);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(count_of(server_log(), "started ("), 1);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* A connection that sends its first request a byte every 200 ms (each
 * wait shorter than the timeout): it costs a worker once it has sent a
 * byte, and that worker closes it --handshake-timeout after it started,
 * not later. */
static void test_isolation_dribble(int argc, char **argv) {
  const char *extra[] = {"--handshake-timeout", "1500", NULL};
  start_server(extra);
  require_worker_list();
  int fd = connect_from("127.0.0.2");
  if (fd < 0) gpt_skip("cannot bind 127.0.0.2: %s", strerror(errno));
  double t0 = gpt_now();
  bool closed = false;
  int sent = 0;
  /* The start of a TLS record holding a ClientHello (type 22, version
   * 3.1, 512 bytes), then zeros: an incomplete TLS record to a TLS server,
   * an incomplete 24-byte frame header to a plain one, for as long as it
   * takes. */
  static const unsigned char start[] = {0x16, 0x03, 0x01, 0x02, 0x00};
  while (gpt_now() - t0 < 8.0 && !closed) {
    char c = sent < (int)sizeof start ? (char)start[sent] : 0;
    if (send(fd, &c, 1, MSG_NOSIGNAL) == 1) sent++;
    if (sent == 1) CHECK_EQ_I(wait_workers(1, 2000), 1);
    closed = drained_to_close(fd, 200);
  }
  double took = gpt_now() - t0;
  CHECK_TRUE(closed);
  printf("dribbling connection closed after %.2f s and %d bytes\n", took,
         sent);
  /* The worker's deadline runs from its start: the first byte came at
   * once. */
  CHECK_LE_D(took, 1.5 + 1.5);
  CHECK_GE_D(took, 1.2);
  close(fd);
  CHECK_EQ_I(wait_workers(0, 5000), 0);
  CHECK_TRUE(log_says("--handshake-timeout", 2000));
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* ---- a client that stops reading ------------------------------------------------ */

/* A raw session that asks for 1 GiB of device memory back, in 16 MiB
 * copies, and reads none of it: the worker ends after --send-timeout, its
 * memory never grows by anything like what was asked for, and another
 * session is served meanwhile. */
static void test_isolation_send_timeout(int argc, char **argv) {
  const char *extra[] = {"--send-timeout", "1000", "--emu-memory", "512M",
                         NULL};
  start_server(extra);
  require_worker_list();
  struct gpt_raw r;
  REQUIRE_TRUE(gpt_raw_open(&r, server.port, 10000));
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  hello.min_version = GP_PROTOCOL_VERSION_MIN;
  hello.max_version = GP_PROTOCOL_VERSION_MAX;
  hello.client_name = "test_isolation";
  hello.hostname = "localhost";
  REQUIRE_TRUE(gpt_raw_call(&r, GP_MSG_HELLO, &hello.base, NULL, 0, NULL, 0,
                            NULL) == 0);
  Gpupool__CtxCreate cc = GPUPOOL__CTX_CREATE__INIT;
  cc.ctx = 7;
  REQUIRE_TRUE(gpt_raw_call(&r, GP_MSG_CTX_CREATE, &cc.base, NULL, 0, NULL, 0,
                            NULL) == 0);
  Gpupool__MemAlloc ma = GPUPOOL__MEM_ALLOC__INIT;
  ma.ctx = 7;
  ma.size = 256 * MiB;
  ProtobufCMessage *rep = NULL;
  REQUIRE_TRUE(gpt_raw_call(&r, GP_MSG_MEM_ALLOC, &ma.base, NULL, 0, NULL, 0,
                            &rep) == 0);
  uint64_t d = ((Gpupool__MemAllocReply *)rep)->dptr;
  protobuf_c_message_free_unpacked(rep, NULL);
  pid_t w[4];
  REQUIRE_TRUE(live_workers(w, 4) == 1);
  long rss0 = rss_kib(w[0]), sv0 = rss_kib(server.pid);

  /* 64 copies of 16 MiB (1 GiB), sent and never read. */
  double t0 = gpt_now();
  for (int i = 0; i < 64; i++) {
    Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
    m.src = d + (uint64_t)(i % 16) * 16 * MiB;
    m.size = 16 * MiB;
    REQUIRE_TRUE(gp_wire_send(&r.w, GP_MSG_MEMCPY_DTOH, 0, r.next++, &m.base,
                              NULL, 0) == 0);
  }
  REQUIRE_TRUE(gp_wire_flush(&r.w) == 0);
  /* While it is stuck, the worker's memory stays where it was. */
  long peak = rss0;
  while (!process_gone(w[0]) && gpt_now() - t0 < 10.0) {
    long v = rss_kib(w[0]);
    if (v > peak) peak = v;
    gpt_sleep_ms(50);
  }
  double took = gpt_now() - t0;
  CHECK_TRUE(process_gone(w[0]));
  printf("worker RSS %ld KiB before, at most %ld KiB while stuck; it ended "
         "%.2f s after the requests; supervisor RSS %ld -> %ld KiB\n", rss0,
         peak, took, sv0, rss_kib(server.pid));
  CHECK_GE_D(took, 0.9);
  CHECK_LE_D(took, 6.0);
  /* Far less than the 1 GiB asked for (and than one 256 MiB copy): the
   * socket's buffers are all it holds. */
  CHECK_LT_I(peak - rss0, 64 * 1024);
  CHECK_LT_I(rss_kib(server.pid) - sv0, 16 * 1024);
  CHECK_TRUE(log_says("(--send-timeout)", 5000));
  CHECK_TRUE(log_says("exited with status 9 (send timeout)", 5000));
  gpt_raw_close(&r);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* ---- kernel timeout ------------------------------------------------------------- */

/* Launches a kernel that would run for an hour, synchronizes, and says
 * what the synchronize returned, how long it took, and what a later call
 * returns. */
static void child_forever(int argc, char **argv) {
  CUmodule mod;
  CUfunction f;
  CUdeviceptr out = 0;
  gpt_init_context(NULL);
  REQUIRE_OK(cuMemAlloc(&out, sizeof(uint64_t)));
  REQUIRE_OK(cuModuleLoadData(&mod, gpt_spin_ptx));
  REQUIRE_OK(cuModuleGetFunction(&f, mod, "spin"));
  uint64_t ns = 3600ull * 1000000000ull;
  void *args[] = {&ns, &out};
  REQUIRE_OK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
  double t0 = gpt_now();
  CUresult r = cuCtxSynchronize();
  double took = gpt_now() - t0;
  CUdeviceptr more = 0;
  CUresult r2 = cuMemAlloc(&more, 4096);
  printf("sync %d after %.2f s, then %d\n", (int)r, took, (int)r2);
  fflush(stdout);
  exit(r == CUDA_ERROR_LAUNCH_TIMEOUT && took < 6.0 ? 0 : 1);
  (void)argc;
  (void)argv;
}

/* Runs this program again as child_forever (a kernel that runs for ever,
 * under the server's --kernel-timeout) into |run|, which must exit 0. */
static void run_forever(struct gpt_run *run) {
  const char *self = gpt_self_exe();
  REQUIRE_TRUE(self != NULL);
  const char *argv_f[] = {self, "child_forever", NULL};
  gpt_run(run, argv_f, NULL, 30);
  CHECK_EQ_I(run->status, 0);
}

/* With --kernel-timeout 1, a kernel that runs for ever: the client's
 * synchronize returns CUDA_ERROR_LAUNCH_TIMEOUT in a few seconds with the
 * server's message printed once, the worker is gone with status 8, and a
 * session running alongside is unaffected. */
static void test_isolation_kernel_timeout(int argc, char **argv) {
  const char *extra[] = {"--kernel-timeout", "1", NULL};
  start_server(extra);
  require_worker_list();
  /* A session alongside, holding memory across the timeout. */
  struct gpt_child h;
  char line[128];
  REQUIRE_TRUE(gpt_spawn(&h, "child_holder", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&h, line, sizeof line, 30000) >= 0);
  CHECK_EQ_I(wait_workers(1, 5000), 1);

  struct gpt_run run;
  run_forever(&run);
  char want[128];
  snprintf(want, sizeof want, "sync %d after", (int)CUDA_ERROR_LAUNCH_TIMEOUT);
  CHECK_TRUE(strstr(run.out, want) != NULL);
  CHECK_EQ_I(count_of(run.out, "kernel spin ran over the server's "
                               "--kernel-timeout of 1 s; the session was "
                               "ended"), 1);
  /* Later calls fail as on a lost connection, without another line. */
  snprintf(want, sizeof want, "then %d", (int)CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_TRUE(strstr(run.out, want) != NULL);
  CHECK_TRUE(log_says("exited with status 8 (kernel timeout)", 5000));
  /* The other session is unharmed, and only it is left. */
  CHECK_EQ_I(wait_workers(1, 5000), 1);
  CHECK_TRUE(gpt_child_send(&h, "check") == 0);
  if (CHECK_GE_I(gpt_child_recv(&h, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&h, 30000), 0);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* The kernel timeout on the cuda backend (a relay to an emu server): the
 * launch returns at once there, the synchronize waits, and the timeout
 * names the kernel launched last. The driver call cannot be stopped, so
 * the worker ends itself 2 s later (status 8); the client's synchronize
 * has its CUDA_ERROR_LAUNCH_TIMEOUT at once; the emu server behind ends
 * the kernel when the relaying worker's connection goes. */
static void test_isolation_relay_kernel_timeout(int argc, char **argv) {
  const char *b_extra[] = {NULL};
  const char *a_extra[] = {"--kernel-timeout", "1", NULL};
  start_relay(b_extra, a_extra);
  require_worker_list();
  struct gpt_run run;
  run_forever(&run);
  CHECK_EQ_I(count_of(run.out, "kernel spin ran over the server's "
                               "--kernel-timeout of 1 s; the session was "
                               "ended"), 1);
  CHECK_TRUE(log_says("did not stop within 2000 ms of the kernel timeout",
                      6000));
  CHECK_TRUE(log_says("exited with status 8 (kernel timeout)", 6000));
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  stop_relay();
  (void)argc;
  (void)argv;
}

/* ---- --max-sessions ------------------------------------------------------------- */

/* With --max-sessions 1 and one session running, the next is refused
 * within a few seconds (the client gets no device), the running one is
 * untouched, and once it has gone the next is served. The connection is
 * refused only once it has sent its first bytes: a silent one waits. */
static void test_isolation_max_sessions(int argc, char **argv) {
  const char *extra[] = {"--max-sessions", "1", NULL};
  start_server(extra);
  require_worker_list();
  struct gpt_child h;
  char line[128];
  REQUIRE_TRUE(gpt_spawn(&h, "child_holder", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&h, line, sizeof line, 30000) >= 0);
  setenv("GPUPOOL_CONNECT_TIMEOUT", "3", 1);
  double t0 = gpt_now();
  CHECK_CU(cuInit(0), CUDA_ERROR_NO_DEVICE);
  CHECK_LE_D(gpt_now() - t0, 5.0);
  CHECK_TRUE(log_says("(--max-sessions 1)", 2000));
  CHECK_EQ_I(wait_workers(1, 1000), 1);
  CHECK_TRUE(gpt_child_send(&h, "check") == 0);
  if (CHECK_GE_I(gpt_child_recv(&h, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&h, 30000), 0);
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  (void)argc;
  (void)argv;
}

/* ---- what the broker hears ------------------------------------------------------- */

/* Copies 64 MiB down for ever; says "running" after the first copy. */
static void child_puller(int argc, char **argv) {
  const size_t n = 64 * MiB;
  unsigned char *h = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  gpt_init_context(NULL);
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemsetD8(d, 0x5a, n));
  for (unsigned i = 0;; i++) {
    REQUIRE_OK(cuMemcpyDtoH(h, d, n));
    if (i == 0) gpt_child_say("running");
  }
  (void)argc;
  (void)argv;
}

/* Sessions under grants from a real broker: one whose kernel runs over
 * --kernel-timeout and one whose client stops reading (SIGSTOP) during
 * copies are reported to the broker as ended with the reasons
 * `kernel-timeout` and `send-timeout`. */
static void test_isolation_broker_reasons(int argc, char **argv) {
  struct gpt_broker b;
  char token[64], hash[65], config[512], blog[128];
  unsigned char raw[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  REQUIRE_TRUE(fd >= 0 && read(fd, raw, sizeof raw) == (ssize_t)sizeof raw);
  close(fd);
  int n = snprintf(token, sizeof token, "alice-");
  for (size_t i = 0; i < sizeof raw; i++)
    n += snprintf(token + n, sizeof token - (size_t)n, "%02x", raw[i]);
  gp_sha256_hex(token, strlen(token), hash);
  snprintf(config, sizeof config,
           "heartbeat_ms = 200\n"
           "default_memory = 256M\n"
           "\n"
           "[tenant.alice]\n"
           "token_sha256 = %s\n", hash);
  /* The broker's log in a file of its own. */
  snprintf(blog, sizeof blog, "/tmp/gpt-isolation-broker-%d.log",
           (int)getpid());
  int saved = dup(2), lfd = open(blog, O_WRONLY | O_CREAT | O_TRUNC |
                                           O_CLOEXEC, 0600);
  REQUIRE_TRUE(saved >= 0 && lfd >= 0);
  fflush(stderr);
  dup2(lfd, 2);
  int r = gpt_broker_start(&b, config);
  dup2(saved, 2);
  close(saved);
  close(lfd);
  REQUIRE_TRUE(r == 0);

  const char *extra[] = {"--broker", b.addr, "--name", "pool01",
                         "--grant-key-file", b.key_file, "--kernel-timeout",
                         "1", "--send-timeout", "1000", NULL};
  start_server(extra);
  require_worker_list();
  /* Where the broker's log is read from now on: log_says() reads
   * log_path. */
  char server_log_path[128];
  snprintf(server_log_path, sizeof server_log_path, "%s", log_path);
  snprintf(log_path, sizeof log_path, "%s", blog);
  CHECK_TRUE(log_says("server pool01 registered from", 10000));

  unsetenv("GPUPOOL_SERVER");
  unsetenv("GPUPOOL_CONFIG");
  unsetenv("GPUPOOL_TOKEN_FILE");
  setenv("XDG_CONFIG_HOME", b.dir, 1);
  setenv("HOME", b.dir, 1);
  setenv("GPUPOOL_BROKER", b.addr, 1);
  setenv("GPUPOOL_TOKEN", token, 1);
  setenv("GPUPOOL_CONNECT_TIMEOUT", "5", 1);

  struct gpt_run run;
  run_forever(&run);
  CHECK_TRUE(log_says("ended (kernel-timeout)", 5000));

  struct gpt_child c;
  char line[64];
  /* Uncompressed copies: the puller's device memory is mostly zeros,
   * which compressed would never fill the socket's buffers. */
  setenv("GPUPOOL_COMPRESS", "off", 1);
  REQUIRE_TRUE(gpt_spawn(&c, "child_puller", NULL) == 0);
  REQUIRE_TRUE(gpt_child_recv(&c, line, sizeof line, 30000) >= 0);
  /* Stopped between two copies, the client leaves the worker waiting for
   * a request, not writing: let it go on a moment and stop it again
   * (it spends nearly all its time reading). Once stopped mid-copy, the
   * kernel's socket buffers (tens of MiB on loopback, the receiver's
   * growing) fill first, then the send timeout runs. */
  bool heard = false;
  for (int i = 0; i < 5 && !heard; i++) {
    kill(c.pid, SIGSTOP);
    heard = log_says("ended (send-timeout)", 6000);
    if (!heard) {
      kill(c.pid, SIGCONT);
      gpt_sleep_ms(100 + 37 * i);
    }
  }
  CHECK_TRUE(heard);
  kill(c.pid, SIGKILL);
  gpt_child_wait(&c, 5000);

  snprintf(log_path, sizeof log_path, "%s", server_log_path);
  CHECK_TRUE(log_says("exited with status 9 (send timeout)", 2000));
  CHECK_TRUE(log_says("exited with status 8 (kernel timeout)", 2000));
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  /* Another granted session is served; the server is back to none. */
  CHECK_TRUE(other_session_served());
  CHECK_EQ_I(wait_workers(0, 10000), 0);
  show_log();
  snprintf(log_path, sizeof log_path, "%s", blog);
  show_log();
  gpt_server_stop(&server, 5000);
  gpt_broker_stop(&b, 5000);
  (void)argc;
  (void)argv;
}

/* ---- the flags ----------------------------------------------------------------- */

/* Each bad value of the new flags is a usage error (exit 2) that names
 * the flag; good ones start a server. */
static void test_isolation_flags(int argc, char **argv) {
  const char *bin = getenv("GPUPOOL_TEST_SERVER");
  static const char *const bad[][3] = {
      {"--max-conns-per-address", "0", "--max-conns-per-address"},
      {"--max-pending", "x", "--max-pending"},
      {"--handshake-timeout", "99", "--handshake-timeout"},
      {"--handshake-timeout", "600001", "--handshake-timeout"},
      {"--send-timeout", "0", "--send-timeout"},
      {"--kernel-timeout", "-1", "--kernel-timeout"},
      {"--kernel-timeout", "86401", "--kernel-timeout"},
      {"--backend", "cuda", "--emu-shared-memory needs --backend emu"},
  };
  REQUIRE_TRUE(bin != NULL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *args[] = {bin, bad[i][0], bad[i][1], "--emu-shared-memory",
                          NULL};
    if (strcmp(bad[i][0], "--backend") != 0) args[3] = NULL;
    struct gpt_run r;
    gpt_run(&r, args, NULL, 20);
    CHECK_EQ_I(r.status, 2);
    CHECK_TRUE(strstr(r.out, bad[i][2]) != NULL);
  }
  const char *good[] = {"--max-conns-per-address", "2", "--max-pending", "2",
                        "--handshake-timeout", "5000", "--send-timeout",
                        "5000",
                        "--kernel-timeout", "0", "--no-scrub", "--scrub",
                        "--emu-shared-memory", NULL};
  start_server(good);
  CHECK_TRUE(other_session_served());
  CHECK_TRUE(log_says("MiB shared by all sessions", 1000));
  show_log();
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"scrub", test_isolation_scrub, 120},
      {"no_scrub", test_isolation_no_scrub, 120},
      {"scrub_free", test_isolation_scrub_free, 60},
      {"relay_scrub", test_isolation_relay_scrub, 120},
      {"relay_no_scrub", test_isolation_relay_no_scrub, 120},
      {"shared_apart", test_isolation_shared_apart, 60},
      {"silent_flood", test_isolation_silent_flood, 90},
      {"per_address", test_isolation_per_address, 90},
      {"dribble", test_isolation_dribble, 60},
      {"connect_close", test_isolation_connect_close, 60},
      {"send_timeout", test_isolation_send_timeout, 90},
      {"kernel_timeout", test_isolation_kernel_timeout, 90},
      {"relay_kernel_timeout", test_isolation_relay_kernel_timeout, 90},
      {"max_sessions", test_isolation_max_sessions, 60},
      {"flags", test_isolation_flags, 60},
      {"broker_reasons", test_isolation_broker_reasons, 90},
      {"child_puller", child_puller, 90},
      {"child_roundtrip", child_roundtrip, 60},
      {"child_tenant_a", child_tenant_a, 60},
      {"child_tenant_b", child_tenant_b, 60},
      {"child_tenant_a_free", child_tenant_a_free, 60},
      {"child_holder", child_holder, 90},
      {"child_forever", child_forever, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
