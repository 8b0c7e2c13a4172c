/* bench_launch_rate: what a kernel launch costs through gpupool, next to
 * the round trip of a synchronous call, in the same process against the
 * same server. See bench/README.md.
 *
 * Usage: bench_launch_rate [--quick] [--server PATH]
 *
 * The server: with GPUPOOL_SERVER set (host:port), that server is used;
 * otherwise the program starts the binary given by --server, else by
 * $GPUPOOL_BENCH_SERVER, else the build tree's server/gpupool-server, on
 * 127.0.0.1 with an ephemeral port and --backend emu, and stops it at the
 * end.
 *
 * What is timed, each in the one context of device 0 and on its default
 * stream:
 * - the round trip: one cuCtxSynchronize with nothing queued (the median
 *   of many);
 * - launch rates: N launches of an empty kernel (one block of one thread)
 *   then one cuCtxSynchronize, with 1 and with 8 parameters, through a
 *   CUfunction (cuModuleLoadData + cuModuleGetFunction) and through a
 *   CUkernel (cuLibraryLoadData + cuLibraryGetKernel, the handle cudart
 *   launches), for each N; the variants run in turn within each repetition,
 *   so that drift in the machine's load falls on all of them alike;
 * - the launch+sync pair: one launch then cuStreamSynchronize (the median
 *   of many), what a loop of small dependent kernels waits per step. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#ifndef LR_DEFAULT_SERVER
#define LR_DEFAULT_SERVER "server/gpupool-server"
#endif

/* Two empty kernels: one with one parameter, one with eight. */
static const char kernel_ptx[] =
    ".version 8.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    ".visible .entry empty1(.param .u64 a0)\n"
    "{\n"
    "  ret;\n"
    "}\n"
    ".visible .entry empty8(.param .u64 a0, .param .u64 a1, .param .u64 a2,\n"
    "    .param .u64 a3, .param .u64 a4, .param .u64 a5, .param .u64 a6,\n"
    "    .param .u64 a7)\n"
    "{\n"
    "  ret;\n"
    "}\n";

/* How much is measured: the full run, or --quick's. */
struct plan {
  int reps;   /* repetitions of each launch-rate variant, per N */
  int calls;  /* per repetition: round trips timed, and launch+sync pairs
               * of each kind */
  unsigned sizes[2]; /* N: launches per repetition */
};

#define MAX_REPS 32

static const struct plan full_plan = {15, 1000, {1000, 10000}};
static const struct plan quick_plan = {3, 200, {1000, 10000}};

/* One launch-rate variant and its measurements. */
struct variant {
  const char *handle; /* "CUfunction" or "CUkernel" */
  int nparams;        /* 1 or 8 */
  CUfunction f;       /* the CUfunction, or the CUkernel cast, as cudart
                       * passes it */
  double issue[MAX_REPS];   /* per repetition: seconds until the last launch
                       * returned */
  double total[MAX_REPS];   /* ... and until the cuCtxSynchronize after it */
};

/* The server this program started. */
struct server {
  pid_t pid;
  char dir[256];
  char addr[64];
};

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die_cu(const char *what, CUresult r) {
  const char *name = NULL;

  cuGetErrorName(r, &name);
  fprintf(stderr, "bench_launch_rate: %s: %s (%d)\n", what,
          name ? name : "?", (int)r);
  exit(1);
}

#define CU(call)                                 \
  do {                                           \
    CUresult r_ = (call);                        \
    if (r_ != CUDA_SUCCESS)                      \
      die_cu(#call, r_);                         \
  } while (0)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* The median of |n| values; sorts |v|. */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The |q|th percentile of |n| values that median() has sorted. */
static double pct(const double *v, int n, int q) {
  return v[(int64_t)(n - 1) * q / 100];
}

/* Reads the port the server wrote to |path|: the port once the file holds
 * a whole line, else 0. */
static int read_port(const char *path) {
  char buf[32];
  FILE *fp = fopen(path, "r");
  size_t n;
  char *end;
  long port;

  if (fp == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  port = strtol(buf, &end, 10);
  if (end == buf || *end != '\n' || port <= 0 || port > 65535)
    return 0;
  return (int)port;
}

/* Starts |bin| on 127.0.0.1, an ephemeral port, the emu backend, and
 * points the client library at it (GPUPOOL_SERVER). Exits on failure. */
static void server_start(struct server *s, const char *bin) {
  char port_file[300];
  const char *tmp = getenv("TMPDIR");
  pid_t parent = getpid();
  double deadline;
  int st, port;

  snprintf(s->dir, sizeof(s->dir), "%s/gpupool-bench-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(s->dir) == NULL) {
    fprintf(stderr, "bench_launch_rate: mkdtemp: %s\n", strerror(errno));
    exit(1);
  }
  snprintf(port_file, sizeof(port_file), "%s/port", s->dir);
  fflush(NULL);
  s->pid = fork();
  if (s->pid < 0) {
    fprintf(stderr, "bench_launch_rate: fork: %s\n", strerror(errno));
    exit(1);
  }
  if (s->pid == 0) {
    /* Dies with the benchmark, so that an interrupted run leaves no
     * server behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(126);
    execl(bin, bin, "--listen", "127.0.0.1:0", "--port-file", port_file,
          "--backend", "emu", "--log-level", "error", (char *)NULL);
    fprintf(stderr, "bench_launch_rate: exec %s: %s\n", bin,
            strerror(errno));
    _exit(127);
  }
  for (deadline = now() + 10; now() < deadline; usleep(10000)) {
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      fprintf(stderr, "bench_launch_rate: %s exited before listening "
              "(status 0x%x); give the server with --server PATH\n", bin,
              st);
      exit(1);
    }
    if ((port = read_port(port_file)) > 0) {
      snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", port);
      setenv("GPUPOOL_SERVER", s->addr, 1);
      unlink(port_file);
      rmdir(s->dir);
      return;
    }
  }
  fprintf(stderr, "bench_launch_rate: %s wrote no port in 10 s\n", bin);
  kill(s->pid, SIGKILL);
  exit(1);
}

static void server_stop(struct server *s) {
  int st;

  if (s->pid <= 0)
    return;
  kill(s->pid, SIGTERM);
  waitpid(s->pid, &st, 0);
  s->pid = 0;
}

/* The parameters of every launch: eight values, each passed by address. */
static uint64_t arg_values[8];
static void *arg_ptrs[8];

static void launch_one(CUfunction f) {
  CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, arg_ptrs, NULL));
}

/* One repetition of |v|: |n| launches, then one cuCtxSynchronize. */
static void run_rate(struct variant *v, unsigned n, int rep) {
  double t0 = now(), t1, t2;

  for (unsigned i = 0; i < n; i++)
    launch_one(v->f);
  t1 = now();
  CU(cuCtxSynchronize());
  t2 = now();
  v->issue[rep] = t1 - t0;
  v->total[rep] = t2 - t0;
}

/* Times |n| calls into |t|: of cuCtxSynchronize with nothing queued (|f|
 * NULL), or of a launch of |f| then cuStreamSynchronize. */
static void time_calls(CUfunction f, double *t, int n) {
  for (int i = 0; i < n; i++) {
    double t0 = now();
    if (f == NULL) {
      CU(cuCtxSynchronize());
    } else {
      launch_one(f);
      CU(cuStreamSynchronize(NULL));
    }
    t[i] = now() - t0;
  }
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);

  if (p == NULL) {
    fprintf(stderr, "bench_launch_rate: out of memory\n");
    exit(1);
  }
  return p;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_launch_rate [--quick] [--server PATH]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const struct plan *p = &full_plan;
  const char *bin = getenv("GPUPOOL_BENCH_SERVER");
  const char *remote = getenv("GPUPOOL_SERVER");
  struct server srv = {0};
  struct variant v[4] = {
      {"CUfunction", 1, NULL, {0}, {0}}, {"CUkernel", 1, NULL, {0}, {0}},
      {"CUfunction", 8, NULL, {0}, {0}}, {"CUkernel", 8, NULL, {0}, {0}}};
  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  CUlibrary lib;
  CUkernel k1, k8;
  double issue[2][4], total[2][4], fastest[2][4], slowest[2][4];
  double ratio[2][2];
  double rt_med, pair1_med, pair8_med;
  double *rt, *pair1, *pair8;
  int nsamples;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      p = &quick_plan;
    else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
      bin = argv[++i];
    else
      usage();
  }
  if (bin == NULL || *bin == '\0')
    bin = LR_DEFAULT_SERVER;
  if (remote != NULL && *remote == '\0')
    remote = NULL;
  nsamples = 2 * p->reps * p->calls;
  rt = xmalloc((size_t)nsamples * sizeof(*rt));
  pair1 = xmalloc((size_t)nsamples * sizeof(*pair1));
  pair8 = xmalloc((size_t)nsamples * sizeof(*pair8));
  for (int i = 0; i < 8; i++) {
    arg_values[i] = 0x1000u * (unsigned)i;
    arg_ptrs[i] = &arg_values[i];
  }
  if (remote == NULL)
    server_start(&srv, bin);

  CU(cuInit(0));
  CU(cuDeviceGet(&dev, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CU(cuCtxSetCurrent(ctx));
  CU(cuModuleLoadData(&mod, kernel_ptx));
  CU(cuModuleGetFunction(&v[0].f, mod, "empty1"));
  CU(cuModuleGetFunction(&v[2].f, mod, "empty8"));
  CU(cuLibraryLoadData(&lib, kernel_ptx, NULL, NULL, 0, NULL, NULL, 0));
  CU(cuLibraryGetKernel(&k1, lib, "empty1"));
  CU(cuLibraryGetKernel(&k8, lib, "empty8"));
  v[1].f = (CUfunction)k1;
  v[3].f = (CUfunction)k8;

  /* Warm-up: the CUkernels' first launches load the library into the
   * context (round trips that happen once), and everything else gets its
   * first-use costs out of the way. */
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 1000; j++)
      launch_one(v[i].f);
  CU(cuCtxSynchronize());
  time_calls(NULL, rt, p->calls);

  /* Each repetition runs every variant, then a block of round trips and
   * of pairs: the baseline is sampled all through the run, as the load
   * of the machine changes. */
  for (int s = 0; s < 2; s++) {
    for (int rep = 0; rep < p->reps; rep++) {
      int at = (s * p->reps + rep) * p->calls;
      for (int i = 0; i < 4; i++)
        run_rate(&v[i], p->sizes[s], rep);
      time_calls(NULL, rt + at, p->calls);
      time_calls(v[0].f, pair1 + at, p->calls);
      time_calls(v[3].f, pair8 + at, p->calls);
    }
    /* The ratios per repetition, whose runs were side by side. */
    for (int j = 0; j < 2; j++) {
      double q[MAX_REPS];
      for (int rep = 0; rep < p->reps; rep++)
        q[rep] = v[2 * j + 1].total[rep] / v[2 * j].total[rep];
      ratio[s][j] = median(q, p->reps);
    }
    for (int i = 0; i < 4; i++) {
      double tot[MAX_REPS], iss[MAX_REPS];

      memcpy(tot, v[i].total, sizeof(tot));
      memcpy(iss, v[i].issue, sizeof(iss));
      issue[s][i] = median(iss, p->reps);
      total[s][i] = median(tot, p->reps);
      /* median() sorted them: the fastest and slowest runs. */
      fastest[s][i] = tot[0];
      slowest[s][i] = tot[p->reps - 1];
    }
  }
  rt_med = median(rt, nsamples);
  pair1_med = median(pair1, nsamples);
  pair8_med = median(pair8, nsamples);

  printf("server %s%s, backend emu, %s run\n",
         remote ? remote : srv.addr, remote ? " (GPUPOOL_SERVER)" : "",
         p == &quick_plan ? "quick" : "full");
  printf("\nsynchronous calls, %d of each: median (10th-90th "
         "percentile)\n", nsamples);
  printf("  round trip: cuCtxSynchronize, nothing queued     %7.2f us "
         "(%.2f-%.2f)\n", rt_med * 1e6, pct(rt, nsamples, 10) * 1e6,
         pct(rt, nsamples, 90) * 1e6);
  printf("  launch + cuStreamSynchronize, CUfunction, 1 param %7.2f us "
         "(%.2f-%.2f) = %.2f round trips\n", pair1_med * 1e6,
         pct(pair1, nsamples, 10) * 1e6, pct(pair1, nsamples, 90) * 1e6,
         pair1_med / rt_med);
  printf("  launch + cuStreamSynchronize, CUkernel, 8 params  %7.2f us "
         "(%.2f-%.2f) = %.2f round trips\n", pair8_med * 1e6,
         pct(pair8, nsamples, 10) * 1e6, pct(pair8, nsamples, 90) * 1e6,
         pair8_med / rt_med);

  printf("\nN launches of an empty kernel then one cuCtxSynchronize, "
         "median of %d runs each\n", p->reps);
  printf("(issue: until the last launch returned; total: until the "
         "synchronize returned;\n per launch: total / N, in round trips)\n");
  printf("%-10s %6s %6s %10s %10s %11s %19s %10s\n", "handle", "params",
         "N", "issue us", "total us", "launches/s", "range (launches/s)",
         "per launch");
  for (int s = 0; s < 2; s++) {
    unsigned n = p->sizes[s];
    for (int i = 0; i < 4; i++)
      printf("%-10s %6d %6u %10.2f %10.2f %11.0f %9.0f-%-9.0f %10.3f\n",
             v[i].handle, v[i].nparams, n, issue[s][i] / n * 1e6,
             total[s][i] / n * 1e6, n / total[s][i], n / slowest[s][i],
             n / fastest[s][i], total[s][i] / n / rt_med);
  }
  printf("\nCUkernel / CUfunction, total time, median of the runs' "
         "ratios:\n");
  for (int s = 0; s < 2; s++)
    printf("  N=%-6u %.3f (1 param), %.3f (8 params)\n", p->sizes[s],
           ratio[s][0], ratio[s][1]);

  CU(cuModuleUnload(mod));
  CU(cuLibraryUnload(lib));
  CU(cuDevicePrimaryCtxRelease(dev));
  server_stop(&srv);
  free(rt);
  free(pair1);
  free(pair8);
  return 0;
}
