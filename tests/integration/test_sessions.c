/* Integration: sessions as real processes. Two clients at once that cannot
 * see each other's memory; a client killed mid-copy that leaves the server
 * serving others; the server killed (or frozen, then killed) while a client
 * is in a call, which must give the client an error within 5 s, not a hang;
 * SIGTERM; --max-sessions; many sessions leaving no workers behind. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MiB ((size_t)1 << 20)

static struct gpt_server server;

static void start_server(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
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

/* Waits up to |ms| for the server to have exactly |want| workers. Returns
 * the last count seen, or -1 if workers cannot be listed here. */
static int wait_workers(int want, int ms) {
  pid_t pids[64];
  int n = -1;
  double deadline = gpt_now() + ms / 1000.0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)server.pid,
           (int)server.pid);
  if (access(path, R_OK) != 0) return -1;
  do {
    n = gpt_server_workers(&server, pids, 64);
    /* Zombies not yet reaped by the supervisor do not count. */
    int live = 0;
    for (int i = 0; i < n; i++)
      if (!process_gone(pids[i])) live++;
    n = live;
    if (n == want) break;
    gpt_sleep_ms(20);
  } while (gpt_now() < deadline);
  return n;
}

/* A round trip of |n| bytes with its own seed; true if byte-exact. */
static bool roundtrip(size_t n, uint64_t seed) {
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  CUdeviceptr d = 0;
  bool ok = false;
  gpt_fill(in, n, seed);
  if (CHECK_OK(cuMemAlloc(&d, n))) {
    CHECK_OK(cuMemcpyHtoD(d, in, n));
    memset(out, 0, n);
    CHECK_OK(cuMemcpyDtoH(out, d, n));
    ok = CHECK_MEM_EQ(out, in, n);
    CHECK_OK(cuMemFree(d));
  }
  free(in);
  free(out);
  return ok;
}

/* ---- child roles ------------------------------------------------------------------ */

/* Holds 1 MiB of 0xAA, says where it is, works a while, then on "check"
 * says whether its memory still holds 0xAA. */
static void child_holder(int argc, char **argv) {
  char line[128];
  gpt_init_context(NULL);
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, MiB));
  REQUIRE_OK(cuMemsetD8(d, 0xaa, MiB));
  gpt_child_say("ptr %" PRIx64, (uint64_t)d);
  for (int i = 0; i < 8; i++) roundtrip(4 * MiB + (size_t)i, 900 + (uint64_t)i);
  if (gpt_child_hear(line, sizeof line, 30000) < 0) gpt__abort_scenario();
  unsigned char *h = gpt_xmalloc(MiB);
  CHECK_OK(cuMemcpyDtoH(h, d, MiB));
  bool intact = CHECK_MEM_ALL(h, 0xaa, MiB);
  gpt_child_say("%s", intact ? "intact" : "changed");
  free(h);
  (void)argc;
  (void)argv;
}

/* Copies 64 MiB up and down for ever; says "running" after the first. */
static void child_copier(int argc, char **argv) {
  gpt_init_context(NULL);
  const size_t n = 64 * MiB;
  unsigned char *h = gpt_xmalloc(n);
  gpt_fill(h, n, 1);
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  for (unsigned i = 0;; i++) {
    REQUIRE_OK(cuMemcpyHtoD(d, h, n));
    REQUIRE_OK(cuMemcpyDtoH(h, d, n));
    if (i == 0) gpt_child_say("running");
  }
  (void)argc;
  (void)argv;
}

/* One 16 MiB round trip; exit status says whether it was exact. */
static void child_roundtrip(int argc, char **argv) {
  gpt_init_context(NULL);
  roundtrip(16 * MiB, (uint64_t)getpid());
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- two clients ---------------------------------------------------------------------- */

static void test_sessions_two_clients(int argc, char **argv) {
  start_server();
  struct gpt_child a;
  REQUIRE_TRUE(gpt_spawn(&a, "child_holder", NULL) == 0);

  /* This process is the second client. */
  gpt_init_context(NULL);
  CUdeviceptr mine = 0;
  REQUIRE_OK(cuMemAlloc(&mine, MiB));
  REQUIRE_OK(cuMemsetD8(mine, 0x55, MiB));

  char line[128];
  if (!CHECK_GE_I(gpt_child_recv(&a, line, sizeof line, 20000), 0))
    gpt__abort_scenario();
  uint64_t theirs = 0;
  CHECK_EQ_I(sscanf(line, "ptr %" SCNx64, &theirs), 1);
  printf("client A holds 0x%" PRIx64 ", client B holds 0x%" PRIx64 "\n",
         theirs, (uint64_t)mine);

  /* Both work at once. */
  for (int i = 0; i < 8; i++) roundtrip(4 * MiB + 3 * (size_t)i, 100 + (uint64_t)i);

  /* A's pointer means nothing in B's session: either it is outside all of
   * B's allocations and refused, or (separate address spaces may coincide)
   * it is B's own memory. Never A's bytes. */
  unsigned char *h = gpt_xmalloc(MiB);
  CUdeviceptr base = 0;
  size_t size = 0;
  CUresult r = cuMemGetAddressRange(&base, &size, (CUdeviceptr)theirs);
  if (r == CUDA_SUCCESS) {
    printf("A's address is inside B's own allocation at 0x%llx\n",
           (unsigned long long)base);
    size_t len = base + size - (CUdeviceptr)theirs;
    if (len > MiB) len = MiB;
    memset(h, 0, MiB);
    CHECK_OK(cuMemcpyDtoH(h, (CUdeviceptr)theirs, len));
    CHECK_MEM_ALL(h, 0x55, len);
  } else {
    CHECK_CU(r, CUDA_ERROR_NOT_FOUND);
    CHECK_CU(cuMemcpyDtoH(h, (CUdeviceptr)theirs, 4096), CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuMemsetD8((CUdeviceptr)theirs, 0x55, 4096), CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuMemcpyHtoD((CUdeviceptr)theirs, h, 4096), CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuMemFree((CUdeviceptr)theirs), CUDA_ERROR_INVALID_VALUE);
  }
  CHECK_OK(cuCtxSynchronize());

  /* A's memory is as A left it; B's as B left it. */
  CHECK_TRUE(gpt_child_send(&a, "check") == 0);
  if (CHECK_GE_I(gpt_child_recv(&a, line, sizeof line, 20000), 0))
    CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&a, 10000), 0);
  memset(h, 0, MiB);
  CHECK_OK(cuMemcpyDtoH(h, mine, MiB));
  CHECK_MEM_ALL(h, 0x55, MiB);
  free(h);
  CHECK_OK(cuMemFree(mine));
  (void)argc;
  (void)argv;
}

/* ---- a client killed mid-session ------------------------------------------------------------ */

static void test_sessions_client_killed(int argc, char **argv) {
  start_server();
  /* This process is a client that must keep being served. */
  gpt_init_context(NULL);
  const size_t n = 8 * MiB;
  unsigned char *in = gpt_xmalloc(n), *out = gpt_xmalloc(n);
  gpt_fill(in, n, 5);
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  REQUIRE_OK(cuMemcpyHtoD(d, in, n));
  size_t free0 = 0, total = 0;
  CHECK_OK(cuMemGetInfo(&free0, &total));

  struct gpt_child k;
  REQUIRE_TRUE(gpt_spawn(&k, "child_copier", NULL) == 0);
  char line[64];
  if (!CHECK_GE_I(gpt_child_recv(&k, line, sizeof line, 30000), 0))
    gpt__abort_scenario();
  CHECK_STR_EQ(line, "running");
  int workers = wait_workers(2, 2000);
  if (workers >= 0) CHECK_EQ_I(workers, 2);
  gpt_sleep_ms(150); /* well inside a 64 MiB copy */
  kill(k.pid, SIGKILL);
  CHECK_EQ_I(gpt_child_wait(&k, 5000), 128 + SIGKILL);

  /* The server is up and this session is intact. */
  CHECK_TRUE(gpt_server_alive(&server));
  memset(out, 0, n);
  CHECK_OK(cuMemcpyDtoH(out, d, n));
  CHECK_MEM_EQ(out, in, n);
  CHECK_TRUE(roundtrip(32 * MiB, 6));

  /* The killed session's worker goes, and its memory with it. */
  workers = wait_workers(1, 5000);
  if (workers >= 0) CHECK_EQ_I(workers, 1);
  size_t free1 = 0;
  double deadline = gpt_now() + 5.0;
  do {
    CHECK_OK(cuMemGetInfo(&free1, &total));
    if (free1 == free0) break;
    gpt_sleep_ms(50);
  } while (gpt_now() < deadline);
  CHECK_EQ_U(free1, free0);

  /* New clients are served. */
  for (int i = 0; i < 3; i++) {
    struct gpt_child c;
    REQUIRE_TRUE(gpt_spawn(&c, "child_roundtrip", NULL) == 0);
    CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  }
  CHECK_TRUE(gpt_server_alive(&server));
  CHECK_OK(cuMemFree(d));
  free(in);
  free(out);
  (void)argc;
  (void)argv;
}

/* ---- the server killed or frozen mid-call ------------------------------------------------------- */

struct killer {
  atomic_int running;   /* set by the client loop once it is going */
  int sig;
  bool group;
  int then_sig;         /* if not 0: sent to the group |then_ms| later */
  int then_ms;
  double when;          /* gpt_now() at the signal */
  pid_t workers[8];
  int nworkers;
};

static void *killer_main(void *arg) {
  struct killer *k = arg;
  while (!atomic_load(&k->running)) gpt_sleep_ms(1);
  gpt_sleep_ms(100);
  k->nworkers = gpt_server_workers(&server, k->workers, 8);
  k->when = gpt_now();
  gpt_server_signal(&server, k->sig, k->group);
  if (k->then_sig != 0) {
    gpt_sleep_ms(k->then_ms);
    k->when = gpt_now();
    gpt_server_signal(&server, k->then_sig, true);
  }
  return NULL;
}

/* Copies 64 MiB up and down until a call fails; |k| strikes meanwhile.
 * Returns the failing call's result and stores when it came back. */
static CUresult copy_until_error(struct killer *k, double *failed_at) {
  const size_t n = 64 * MiB;
  unsigned char *h = gpt_xmalloc(n);
  gpt_fill(h, n, 1);
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  pthread_t t;
  pthread_create(&t, NULL, killer_main, k);
  CUresult r = CUDA_SUCCESS;
  double deadline = gpt_now() + 30.0;
  while (r == CUDA_SUCCESS && gpt_now() < deadline) {
    r = cuMemcpyHtoD(d, h, n);
    if (r == CUDA_SUCCESS) r = cuMemcpyDtoH(h, d, n);
    atomic_store(&k->running, 1);
  }
  *failed_at = gpt_now();
  pthread_join(t, NULL);
  free(h);
  return r;
}

/* After the server is gone every call fails at once, and says so. */
static void check_dead_session(void) {
  CUdeviceptr p;
  size_t f, t;
  double t0 = gpt_now();
  CHECK_CU(cuMemAlloc(&p, 4096), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_CU(cuMemGetInfo(&f, &t), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CUstream s;
  CUresult r = cuStreamCreate(&s, 0);
  /* A call that needs no reply may succeed locally, but not hang. */
  if (r == CUDA_SUCCESS)
    CHECK_CU(cuStreamSynchronize(s), CUDA_ERROR_DEVICE_UNAVAILABLE);
  else
    CHECK_CU(r, CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_LE_D(gpt_now() - t0, 1.0);
  /* Every later call says so too (docs/protocol.md), except the ones that
   * need no device: a program can still print what went wrong. */
  int count = 0;
  CHECK_CU(cuDeviceGetCount(&count), CUDA_ERROR_DEVICE_UNAVAILABLE);
  const char *str = NULL, *name = NULL;
  CHECK_OK(cuGetErrorName(CUDA_ERROR_DEVICE_UNAVAILABLE, &name));
  CHECK_STR_EQ(name, "CUDA_ERROR_DEVICE_UNAVAILABLE");
  CHECK_OK(cuGetErrorString(CUDA_ERROR_DEVICE_UNAVAILABLE, &str));
  CHECK_TRUE(str != NULL && str[0] != '\0');
}

static void test_sessions_server_killed(int argc, char **argv) {
  start_server();
  gpt_init_context(NULL);
  struct killer k = {.sig = SIGKILL, .group = false};
  double failed_at = 0;
  CUresult r = copy_until_error(&k, &failed_at);
  CHECK_TRUE(k.when > 0);
  CHECK_CU(r, CUDA_ERROR_DEVICE_UNAVAILABLE);
  double delay = failed_at - k.when;
  printf("server SIGKILLed mid-copy: the client's call failed after %.3f s "
         "with %s\n", delay, gpt_cu_name(r));
  CHECK_LE_D(delay, 5.0);
  CHECK_GE_D(delay, 0.0);
  check_dead_session();
  /* Its workers died with it (PR_SET_PDEATHSIG). */
  CHECK_GE_I(k.nworkers, 1);
  for (int i = 0; i < k.nworkers; i++) {
    double deadline = gpt_now() + 5.0;
    while (!process_gone(k.workers[i]) && gpt_now() < deadline) gpt_sleep_ms(20);
    if (!CHECK_TRUE(process_gone(k.workers[i])))
      fprintf(stderr, "    worker %d outlived the server\n", (int)k.workers[i]);
  }
  gpt_server_stop(&server, 0);
  (void)argc;
  (void)argv;
}

static void test_sessions_server_frozen(int argc, char **argv) {
  /* The server stops (SIGSTOP: a hung process on a live host, which the
   * client cannot tell from a busy device and waits for), then dies: the
   * client, blocked in whatever call it was in, must learn of it within
   * 5 s of the death. */
  start_server();
  gpt_init_context(NULL);
  struct killer k = {.sig = SIGSTOP, .group = true, .then_sig = SIGKILL,
                     .then_ms = 1500};
  double failed_at = 0;
  CUresult r = copy_until_error(&k, &failed_at);
  CHECK_CU(r, CUDA_ERROR_DEVICE_UNAVAILABLE);
  double delay = failed_at - k.when;
  printf("server frozen mid-copy, then SIGKILLed: the client's call failed "
         "%.3f s after the kill with %s\n", delay, gpt_cu_name(r));
  CHECK_LE_D(delay, 5.0);
  check_dead_session();
  gpt_server_stop(&server, 0);
  (void)argc;
  (void)argv;
}

static void test_sessions_server_silent(int argc, char **argv) {
  /* The server stops answering but keeps its connection (SIGSTOP: its
   * kernel still acknowledges): a copy in flight must fail once
   * GPUPOOL_IO_TIMEOUT seconds pass with no progress. */
  setenv("GPUPOOL_IO_TIMEOUT", "2", 1);
  start_server();
  gpt_init_context(NULL);
  struct killer k = {.sig = SIGSTOP, .group = true};
  double failed_at = 0;
  CUresult r = copy_until_error(&k, &failed_at);
  CHECK_CU(r, CUDA_ERROR_DEVICE_UNAVAILABLE);
  double delay = failed_at - k.when;
  printf("server silent (SIGSTOP) mid-copy, GPUPOOL_IO_TIMEOUT=2: the "
         "client's call failed after %.3f s with %s\n", delay, gpt_cu_name(r));
  CHECK_LE_D(delay, 5.0);
  CHECK_GE_D(delay, 1.0); /* not before the timeout had a chance */
  check_dead_session();
  gpt_server_stop(&server, 0);
  (void)argc;
  (void)argv;
}

static void test_sessions_server_sigterm(int argc, char **argv) {
  start_server();
  gpt_init_context(NULL);
  CHECK_TRUE(roundtrip(MiB, 1));
  /* SIGTERM stops the server; the connected client learns it at its next
   * call. */
  double t0 = gpt_now();
  int status = gpt_server_stop(&server, 5000);
  double took = gpt_now() - t0;
  printf("SIGTERM: the server exited with status %d after %.3f s\n", status,
         took);
  CHECK_EQ_I(status, 0);
  CHECK_LE_D(took, 5.0);
  t0 = gpt_now();
  CUdeviceptr p;
  CHECK_CU(cuMemAlloc(&p, 4096), CUDA_ERROR_DEVICE_UNAVAILABLE);
  CHECK_LE_D(gpt_now() - t0, 5.0);
  check_dead_session();
  (void)argc;
  (void)argv;
}

/* ---- --max-sessions ----------------------------------------------------------------------------- */

static void test_sessions_max_sessions(int argc, char **argv) {
  const char *extra[] = {"--max-sessions", "1", NULL};
  if (gpt_server_start(&server, extra) != 0) gpt__abort_scenario();
  struct gpt_child a;
  REQUIRE_TRUE(gpt_spawn(&a, "child_holder", NULL) == 0);
  char line[128];
  REQUIRE_TRUE(gpt_child_recv(&a, line, sizeof line, 20000) >= 0);

  /* One session is running: this client is refused, quickly and cleanly,
   * as a client that cannot reach a server is. */
  setenv("GPUPOOL_CONNECT_TIMEOUT", "3", 1);
  double t0 = gpt_now();
  CHECK_CU(cuInit(0), CUDA_ERROR_NO_DEVICE);
  CHECK_LE_D(gpt_now() - t0, 5.0);
  printf("refused beyond --max-sessions 1 after %.3f s\n", gpt_now() - t0);

  /* The running session is unharmed. */
  CHECK_TRUE(gpt_child_send(&a, "check") == 0);
  if (CHECK_GE_I(gpt_child_recv(&a, line, sizeof line, 20000), 0))
    CHECK_STR_EQ(line, "intact");
  CHECK_EQ_I(gpt_child_wait(&a, 10000), 0);

  /* Once it has gone, the next client is served. */
  int workers = wait_workers(0, 5000);
  if (workers >= 0) CHECK_EQ_I(workers, 0);
  struct gpt_child c;
  REQUIRE_TRUE(gpt_spawn(&c, "child_roundtrip", NULL) == 0);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  (void)argc;
  (void)argv;
}

/* ---- many sessions ---------------------------------------------------------------------------- */

static void test_sessions_many(int argc, char **argv) {
  start_server();
  /* One after another. */
  for (int i = 0; i < 12; i++) {
    struct gpt_child c;
    REQUIRE_TRUE(gpt_spawn(&c, "child_roundtrip", NULL) == 0);
    if (!CHECK_EQ_I(gpt_child_wait(&c, 30000), 0))
      fprintf(stderr, "    (sequential client %d)\n", i);
  }
  /* Six at once. */
  struct gpt_child cs[6];
  for (int i = 0; i < 6; i++)
    REQUIRE_TRUE(gpt_spawn(&cs[i], "child_roundtrip", NULL) == 0);
  for (int i = 0; i < 6; i++)
    if (!CHECK_EQ_I(gpt_child_wait(&cs[i], 60000), 0))
      fprintf(stderr, "    (concurrent client %d)\n", i);
  /* Every worker has gone. */
  int workers = wait_workers(0, 5000);
  if (workers >= 0) CHECK_EQ_I(workers, 0);
  CHECK_TRUE(gpt_server_alive(&server));
  (void)argc;
  (void)argv;
}

/* ---- long kernels ---------------------------------------------------------------------- */


/* Launches spin for |seconds| on one thread, storing into |out|. */
static void launch_spin(double seconds, CUdeviceptr out) {
  CUmodule mod;
  CUfunction f;
  REQUIRE_OK(cuModuleLoadData(&mod, gpt_spin_ptx));
  REQUIRE_OK(cuModuleGetFunction(&f, mod, "spin"));
  uint64_t ns = (uint64_t)(seconds * 1e9);
  void *args[] = {&ns, &out};
  REQUIRE_OK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
}

/* A blocking copy queued behind a kernel that runs three times the
 * client's reply-silence timeout: the server's BUSY notices keep the
 * client waiting, and the copy succeeds with the kernel's result. */
static void test_sessions_long_kernel(int argc, char **argv) {
  start_server();
  setenv("GPUPOOL_IO_TIMEOUT", "1", 1);
  gpt_init_context(NULL);
  CUdeviceptr out = 0;
  REQUIRE_OK(cuMemAlloc(&out, sizeof(uint64_t)));
  REQUIRE_OK(cuMemsetD8(out, 0, sizeof(uint64_t)));
  double t0 = gpt_now();
  launch_spin(3.0, out);
  uint64_t when = 0;
  CHECK_OK(cuMemcpyDtoH(&when, out, sizeof(when)));
  double took = gpt_now() - t0;
  CHECK_GE_D(took, 2.9);
  CHECK_NE_U(when, 0);
  printf("a copy waited %.2f s behind a kernel, GPUPOOL_IO_TIMEOUT=1\n",
         took);
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* Launches a kernel that would spin for an hour, then blocks in
 * cuCtxSynchronize until killed. */
static void child_spinner(int argc, char **argv) {
  gpt_init_context(NULL);
  CUdeviceptr out = 0;
  REQUIRE_OK(cuMemAlloc(&out, sizeof(uint64_t)));
  launch_spin(3600.0, out);
  gpt_child_say("launched");
  cuCtxSynchronize();
  (void)argc;
  (void)argv;
}

/* A client killed while its kernel runs: the worker notices the hang-up,
 * cancels the kernel and exits, freeing the session slot. */
static void test_sessions_hangup_cancels(int argc, char **argv) {
  const char *extra[] = {"--max-sessions", "1", NULL};
  if (gpt_server_start(&server, extra) != 0) gpt__abort_scenario();
  struct gpt_child a;
  REQUIRE_TRUE(gpt_spawn(&a, "child_spinner", NULL) == 0);
  char line[128];
  REQUIRE_TRUE(gpt_child_recv(&a, line, sizeof line, 20000) >= 0);
  CHECK_STR_EQ(line, "launched");
  gpt_sleep_ms(1500); /* the kernel is running */
  int workers = wait_workers(1, 2000);
  if (workers >= 0) CHECK_EQ_I(workers, 1);

  double t0 = gpt_now();
  kill(a.pid, SIGKILL);
  gpt_child_wait(&a, 5000);
  workers = wait_workers(0, 10000);
  if (workers >= 0) {
    CHECK_EQ_I(workers, 0);
    printf("the worker of a killed client ended its kernel and exited in "
           "%.2f s\n", gpt_now() - t0);
  }
  /* The slot is free again. */
  struct gpt_child c;
  REQUIRE_TRUE(gpt_spawn(&c, "child_roundtrip", NULL) == 0);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"two_clients", test_sessions_two_clients, 90},
      {"client_killed", test_sessions_client_killed, 120},
      {"server_killed", test_sessions_server_killed, 60},
      {"server_frozen", test_sessions_server_frozen, 60},
      {"server_silent", test_sessions_server_silent, 60},
      {"server_sigterm", test_sessions_server_sigterm, 30},
      {"max_sessions", test_sessions_max_sessions, 60},
      {"many", test_sessions_many, 120},
      {"long_kernel", test_sessions_long_kernel, 60},
      {"hangup_cancels", test_sessions_hangup_cancels, 60},
      {"child_holder", child_holder, 90},
      {"child_spinner", child_spinner, 60},
      {"child_copier", child_copier, 120},
      {"child_roundtrip", child_roundtrip, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
