/* remote_bench: the gpupool figures of scripts/bench.sh, through gpupool's
 * libcuda.so.1 and the server named by GPUPOOL_SERVER. See
 * bench/README.md.
 *
 * Usage: remote_bench [--quick] [--sync-only | --patterns-only |
 *                     --copies-only]
 *        remote_bench --launch-probe N   (internal: see (2b))
 *
 * Driver API only (cuda.h), kernels as inline PTX, in the one context of
 * device 0 on its default stream; pageable host buffers (malloc'd and
 * touched). What is measured, in order:
 * (1) the round trip: p50 and p99 of cuCtxSynchronize with nothing queued,
 *     and the bytes its request and its reply take on the socket;
 * (2) launches: N launches of an empty kernel then one cuCtxSynchronize,
 *     the median rate over the runs; and the round trips the client made
 *     during each run, counted on its socket (below), per launch;
 * (2b) the round trips per launch as the client library counts them
 *     (GPUPOOL_STATS=FILE: its counters at exit): this program runs
 *     itself twice as --launch-probe, with 1 launch and with N, and takes
 *     the difference over the N - 1 extra launches;
 * (3) cuMemcpyHtoD and cuMemcpyDtoH at the plan's four sizes, median
 *     copy, the bytes read back compared with those written;
 * (4) cuMemcpyHtoD and cuMemcpyDtoH of zero-filled, half-zero and random
 *     buffers, in the compression mode of GPUPOOL_COMPRESS (bench.sh runs
 *     --patterns-only once per mode);
 * (5) a vectorAdd loop: per iteration two cuMemcpyHtoD, one launch, one
 *     cuMemcpyDtoH, and every element checked on the host.
 *
 * Counting round trips: this program defines sendmsg(), read() and
 * close(), which the loader binds gpupool's library to (an executable's
 * definitions come first), and passes each call on to the C library's.
 * The client library writes to its server with sendmsg() and reads with
 * read() (protocol/wire.c); this program calls neither, so a descriptor
 * sendmsg() was called on is the server's connection. A round trip is
 * counted when the client reads from such a socket after having sent on
 * it since its last read: a request sent, then its reply waited for.
 * Reads that continue a reply already begun, and sends that follow sends
 * (buffered launches flushed without a reply), count none.
 *
 * Output: "info KEY VALUE..." and "metric NAME VALUE UNIT" lines, for
 * scripts/bench.sh to read. Exit status 0, 1 when a call failed or a
 * result was wrong, 2 on bad arguments. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda.h>

#include "benchutil.h"

#define PROG "remote_bench"

/* ---- Counting the client's socket traffic ------------------------------- */

#define MAX_FD 4096

/* Per descriptor: 1 once sendmsg() was called on it; 2 while a send has
 * not been followed by a read. */
static _Atomic unsigned char fd_state[MAX_FD];

/* What the client did on its server sockets. */
struct traffic {
  uint64_t round_trips;  /* sends followed by a read */
  uint64_t sends;        /* sendmsg() calls */
  uint64_t bytes_sent;
  uint64_t bytes_read;
};
static _Atomic uint64_t n_round_trips, n_sends, n_bytes_sent, n_bytes_read;

/* What one cuCtxSynchronize with nothing queued took, as measure_sync()
 * counted it: launch runs end with one, which is taken off their counts. */
static struct traffic sync_traffic;

static void *next_fn(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);

  if (f == NULL) {
    /* Nothing can work without the C library's own. */
    static const char msg[] = PROG ": dlsym of a libc function failed\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    abort();
  }
  return f;
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags) {
  static ssize_t (*_Atomic real)(int, const struct msghdr *, int);
  ssize_t (*f)(int, const struct msghdr *, int) = real;

  if (f == NULL)
    real = f = (ssize_t(*)(int, const struct msghdr *, int))next_fn("sendmsg");
  ssize_t n = f(fd, mh, flags);
  if (n > 0 && fd >= 0 && fd < MAX_FD) {
    fd_state[fd] = 2;
    n_sends++;
    n_bytes_sent += (uint64_t)n;
  }
  return n;
}

ssize_t read(int fd, void *buf, size_t len) {
  static ssize_t (*_Atomic real)(int, void *, size_t);
  ssize_t (*f)(int, void *, size_t) = real;

  if (f == NULL)
    real = f = (ssize_t(*)(int, void *, size_t))next_fn("read");
  ssize_t n = f(fd, buf, len);
  if (n > 0 && fd >= 0 && fd < MAX_FD && fd_state[fd] != 0) {
    unsigned char two = 2;
    if (atomic_compare_exchange_strong(&fd_state[fd], &two, 1))
      n_round_trips++;
    n_bytes_read += (uint64_t)n;
  }
  return n;
}

int close(int fd) {
  static int (*_Atomic real)(int);
  int (*f)(int) = real;

  if (f == NULL)
    real = f = (int (*)(int))next_fn("close");
  if (fd >= 0 && fd < MAX_FD)
    fd_state[fd] = 0;
  return f(fd);
}

static struct traffic traffic_now(void) {
  return (struct traffic){n_round_trips, n_sends, n_bytes_sent, n_bytes_read};
}

static struct traffic traffic_since(struct traffic t0) {
  struct traffic t = traffic_now();

  return (struct traffic){t.round_trips - t0.round_trips, t.sends - t0.sends,
                          t.bytes_sent - t0.bytes_sent,
                          t.bytes_read - t0.bytes_read};
}

/* ---- Driver calls ------------------------------------------------------- */

static void die_cu(const char *what, CUresult r) {
  const char *name = NULL;

  cuGetErrorName(r, &name);
  fprintf(stderr, PROG ": %s: %s (%d)\n", what, name ? name : "?", (int)r);
  exit(1);
}

#define CU(call)                                 \
  do {                                           \
    CUresult r_ = (call);                        \
    if (r_ != CUDA_SUCCESS)                      \
      die_cu(#call, r_);                         \
  } while (0)

/* An empty kernel, and c[i] = a[i] + b[i] for i < n. */
static const char kernels_ptx[] =
    ".version 7.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    ".visible .entry empty()\n"
    "{\n"
    "  ret;\n"
    "}\n"
    ".visible .entry vadd(.param .u64 pa, .param .u64 pb, .param .u64 pc,"
    " .param .u32 pn)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .f32 %f<4>;\n"
    "  .reg .b64 %rd<12>;\n"
    "  ld.param.u64 %rd1, [pa];\n"
    "  ld.param.u64 %rd2, [pb];\n"
    "  ld.param.u64 %rd3, [pc];\n"
    "  ld.param.u32 %r1, [pn];\n"
    "  mov.u32 %r2, %ctaid.x;\n"
    "  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n"
    "  mad.lo.u32 %r5, %r2, %r3, %r4;\n"
    "  setp.ge.u32 %p1, %r5, %r1;\n"
    "  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd1, %rd1;\n"
    "  cvta.to.global.u64 %rd2, %rd2;\n"
    "  cvta.to.global.u64 %rd3, %rd3;\n"
    "  mul.wide.u32 %rd4, %r5, 4;\n"
    "  add.s64 %rd5, %rd1, %rd4;\n"
    "  add.s64 %rd6, %rd2, %rd4;\n"
    "  add.s64 %rd7, %rd3, %rd4;\n"
    "  ld.global.f32 %f1, [%rd5];\n"
    "  ld.global.f32 %f2, [%rd6];\n"
    "  add.f32 %f3, %f1, %f2;\n"
    "  st.global.f32 [%rd7], %f3;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n";

/* (1) The round trip of a synchronous call with nothing queued. */
static void measure_sync(const struct bu_plan *p) {
  int n = p->calls;
  double *t = bu_xmalloc(PROG, (size_t)n * sizeof(*t));
  struct traffic t0, d;

  for (int i = 0; i < n / 10 + 10; i++)
    CU(cuCtxSynchronize());
  t0 = traffic_now();
  CU(cuCtxSynchronize());
  d = traffic_since(t0);
  sync_traffic = d;
  printf("info sync_traffic round_trips %llu sends %llu request_bytes %llu "
         "reply_bytes %llu\n", (unsigned long long)d.round_trips,
         (unsigned long long)d.sends, (unsigned long long)d.bytes_sent,
         (unsigned long long)d.bytes_read);
  printf("metric sync_request_bytes %llu B\n",
         (unsigned long long)d.bytes_sent);
  printf("metric sync_reply_bytes %llu B\n", (unsigned long long)d.bytes_read);
  printf("metric sync_round_trips %llu count\n",
         (unsigned long long)d.round_trips);
  for (int i = 0; i < n; i++) {
    double s = bu_now();
    CU(cuCtxSynchronize());
    t[i] = bu_now() - s;
  }
  bu_sort(t, n);
  printf("metric sync_p50 %.3f us\n", bu_pct(t, n, 50) * 1e6);
  printf("metric sync_p99 %.3f us\n", bu_pct(t, n, 99) * 1e6);
  free(t);
}

/* (2) Pipelined launches of an empty kernel. */
static void measure_launches(const struct bu_plan *p, CUfunction empty) {
  unsigned n = p->launches;
  int reps = p->launch_reps;
  double *t = bu_xmalloc(PROG, (size_t)reps * sizeof(*t));
  uint64_t rt_max = 0, rt_min = UINT64_MAX, bytes = 0, sends = 0;

  /* A first run warms up (and is not counted). */
  for (int rep = -1; rep < reps; rep++) {
    struct traffic t0 = traffic_now(), d;
    double s = bu_now();
    for (unsigned i = 0; i < n; i++)
      CU(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    CU(cuCtxSynchronize());
    double e = bu_now();
    d = traffic_since(t0);
    if (rep < 0)
      continue;
    t[rep] = e - s;
    if (d.round_trips > rt_max)
      rt_max = d.round_trips;
    if (d.round_trips < rt_min)
      rt_min = d.round_trips;
    bytes += d.bytes_sent;
    sends += d.sends;
  }
  /* Per launch: the run's, less its closing synchronize's. */
  double per_bytes = ((double)bytes / reps - (double)sync_traffic.bytes_sent) / n;
  double per_rt = ((double)rt_max - (double)sync_traffic.round_trips) / n;
  printf("info launch_traffic launches %u round_trips %llu-%llu "
         "sends_per_run %.1f\n", n, (unsigned long long)rt_min,
         (unsigned long long)rt_max, (double)sends / reps);
  printf("metric launch_rate %.0f launches/s\n", n / bu_median(t, reps));
  /* The most any run made, less the closing synchronize's. */
  printf("metric launch_round_trips %.6f per_launch\n", per_rt < 0 ? 0 : per_rt);
  printf("metric launches_per_run %u count\n", n);
  printf("metric launch_run_round_trips %llu count\n",
         (unsigned long long)rt_max);
  printf("metric launch_bytes %.1f B\n", per_bytes);
  free(t);
}

/* Times |reps| copies of |size| bytes each way between |host| and |dev|,
 * alternately, into |th| and |td| (seconds). */
static void time_copies(CUdeviceptr dev, uint8_t *host, uint8_t *back,
                        size_t size, int reps, double *th, double *td) {
  for (int i = 0; i < reps; i++) {
    double s = bu_now();
    CU(cuMemcpyHtoD(dev, host, size));
    double m = bu_now();
    CU(cuMemcpyDtoH(back, dev, size));
    th[i] = m - s;
    td[i] = bu_now() - m;
  }
}

/* (3) Copies at the plan's sizes. */
static void measure_copies(const struct bu_plan *p, CUdeviceptr dev,
                           uint8_t *host, uint8_t *back) {
  char label[32];

  for (int s = 0; s < BU_NSIZES; s++) {
    size_t size = p->sizes[s];
    int reps = p->size_reps[s];
    double *th = bu_xmalloc(PROG, (size_t)reps * sizeof(*th));
    double *td = bu_xmalloc(PROG, (size_t)reps * sizeof(*td));

    bu_fill_random(host, size, 100 + (uint64_t)s);
    memset(back, 0, size);
    time_copies(dev, host, back, size, 1, th, td); /* warm-up */
    time_copies(dev, host, back, size, reps, th, td);
    if (memcmp(host, back, size) != 0) {
      fprintf(stderr, PROG ": the %zu bytes read back differ from those "
              "written\n", size);
      exit(1);
    }
    bu_size_label(size, label, sizeof(label));
    printf("metric h2d_%s %.4f GB/s\n", label,
           size / bu_median(th, reps) * 1e-9);
    printf("metric d2h_%s %.4f GB/s\n", label,
           size / bu_median(td, reps) * 1e-9);
    free(th);
    free(td);
  }
}

/* (4) Copies of data more and less compressible, both ways, with the
 * compression mode this process runs with (GPUPOOL_COMPRESS, which
 * scripts/bench.sh sets per run: the metrics are h2d_MODE_KIND and
 * d2h_MODE_KIND). */
static void measure_patterns(const struct bu_plan *p, CUdeviceptr dev,
                             uint8_t *host, uint8_t *back) {
  static const char *const names[3] = {"zero", "half_zero", "random"};
  size_t size = p->comp_size;
  int reps = p->comp_reps;
  double *t = bu_xmalloc(PROG, (size_t)reps * sizeof(*t));
  double *td = bu_xmalloc(PROG, (size_t)reps * sizeof(*td));
  const char *mode = getenv("GPUPOOL_COMPRESS");
  if (mode == NULL || *mode == '\0')
    mode = "auto";

  for (int k = 0; k < 3; k++) {
    if (k == 0) {
      memset(host, 0, size);
    } else {
      bu_fill_random(host, size, 200 + (uint64_t)k);
      /* half_zero: every other 4 KiB block zero, the others random. */
      for (size_t at = 0; k == 1 && at < size; at += 8192)
        memset(host + at, 0, size - at < 4096 ? size - at : 4096);
    }
    CU(cuMemcpyHtoD(dev, host, size));
    CU(cuMemcpyDtoH(back, dev, size));
    for (int i = 0; i < reps; i++) {
      double s = bu_now();
      CU(cuMemcpyHtoD(dev, host, size));
      double m = bu_now();
      CU(cuMemcpyDtoH(back, dev, size));
      t[i] = m - s;
      td[i] = bu_now() - m;
    }
    memset(back, 0xff, size);
    CU(cuMemcpyDtoH(back, dev, size));
    if (memcmp(host, back, size) != 0) {
      fprintf(stderr, PROG ": %s: the bytes read back differ\n", names[k]);
      exit(1);
    }
    printf("metric h2d_%s_%s %.4f GB/s\n", mode, names[k],
           size / bu_median(t, reps) * 1e-9);
    printf("metric d2h_%s_%s %.4f GB/s\n", mode, names[k],
           size / bu_median(td, reps) * 1e-9);
  }
  printf("metric pattern_size %zu B\n", size);
  free(t);
  free(td);
}

/* ---- Round trips counted by the library (GPUPOOL_STATS) ----------------- */

/* --launch-probe N: the launch loop alone, in a process of its own whose
 * library writes its counters at exit: set-up, N launches of the empty
 * kernel, one cuCtxSynchronize. */
static int launch_probe(unsigned n) {
  CUdevice devno;
  CUcontext ctx;
  CUmodule mod;
  CUfunction empty;

  CU(cuInit(0));
  CU(cuDeviceGet(&devno, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx, devno));
  CU(cuCtxSetCurrent(ctx));
  CU(cuModuleLoadData(&mod, kernels_ptx));
  CU(cuModuleGetFunction(&empty, mod, "empty"));
  CU(cuCtxSynchronize());
  for (unsigned i = 0; i < n; i++)
    CU(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
  CU(cuCtxSynchronize());
  return 0;
}

/* The "name value" line |key| of FILE, or -1. */
static long long stat_of(const char *file, const char *key) {
  FILE *f = fopen(file, "r");
  char line[256], k[64];
  long long v, found = -1;

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "%63s %lld", k, &v) == 2 && strcmp(k, key) == 0)
      found = v;
  fclose(f);
  return found;
}

/* Runs this program as --launch-probe |n| with GPUPOOL_STATS=|file|;
 * returns the round trips its library counted, or -1. */
static long long probe_round_trips(unsigned n, const char *file) {
  char arg[32];
  pid_t pid;
  int st;

  snprintf(arg, sizeof(arg), "%u", n);
  fflush(NULL);
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    char *args[] = {(char *)"remote_bench", (char *)"--launch-probe", arg,
                    NULL};
    setenv("GPUPOOL_STATS", file, 1);
    execv("/proc/self/exe", args);
    _exit(127);
  }
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return -1;
  return stat_of(file, "round_trips");
}

/* (2b) Round trips per launch as the library counts them: a run of 1
 * launch and one of p->launches, each a process of its own, the same
 * set-up in both; the difference over the extra launches. */
static void measure_counted_round_trips(const struct bu_plan *p) {
  char f1[64], fn[64];

  snprintf(f1, sizeof(f1), "/tmp/remote_bench.%d.stats1", (int)getpid());
  snprintf(fn, sizeof(fn), "/tmp/remote_bench.%d.statsn", (int)getpid());
  long long r1 = probe_round_trips(1, f1);
  long long rn = probe_round_trips(p->launches, fn);
  unlink(f1);
  unlink(fn);
  if (r1 < 0 || rn < 0) {
    fprintf(stderr, PROG ": the launch probes failed (no GPUPOOL_STATS "
            "counters)\n");
    exit(1);
  }
  printf("info counted_round_trips launches 1: %lld, launches %u: %lld\n",
         r1, p->launches, rn);
  printf("metric counted_launch_round_trips %.6f per_launch\n",
         (double)(rn - r1) / (p->launches - 1));
  printf("metric counted_run_round_trips %lld count\n", rn);
}

/* (5) A vectorAdd loop with its copies, every result checked. */
static void measure_vadd(const struct bu_plan *p, CUfunction vadd) {
  unsigned n = p->vadd_n;
  size_t bytes = (size_t)n * sizeof(float);
  float *a = bu_xmalloc(PROG, bytes), *b = bu_xmalloc(PROG, bytes);
  float *c = bu_xmalloc(PROG, bytes);
  CUdeviceptr da, db, dc;
  void *args[4] = {&da, &db, &dc, &n};
  struct traffic t0;

  CU(cuMemAlloc(&da, bytes));
  CU(cuMemAlloc(&db, bytes));
  CU(cuMemAlloc(&dc, bytes));
  t0 = traffic_now();
  double s = bu_now();
  for (int it = 0; it < p->vadd_iters; it++) {
    for (unsigned i = 0; i < n; i++) {
      a[i] = (float)(i + (unsigned)it);
      b[i] = (float)(2 * i);
    }
    CU(cuMemcpyHtoD(da, a, bytes));
    CU(cuMemcpyHtoD(db, b, bytes));
    CU(cuLaunchKernel(vadd, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL, args,
                      NULL));
    CU(cuMemcpyDtoH(c, dc, bytes));
    for (unsigned i = 0; i < n; i++)
      if (c[i] != (float)(3 * i + (unsigned)it)) {
        fprintf(stderr, PROG ": vectorAdd: c[%u] = %g, expected %u\n", i,
                (double)c[i], 3 * i + (unsigned)it);
        exit(1);
      }
  }
  double e = bu_now();
  struct traffic d = traffic_since(t0);
  printf("metric vadd_time %.3f ms\n", (e - s) * 1e3);
  printf("metric vadd_round_trips %.2f per_iteration\n",
         (double)d.round_trips / p->vadd_iters);
  CU(cuMemFree(da));
  CU(cuMemFree(db));
  CU(cuMemFree(dc));
  free(a);
  free(b);
  free(c);
}

int main(int argc, char **argv) {
  const struct bu_plan *p = &bu_full_plan;
  const char *server = getenv("GPUPOOL_SERVER");
  size_t max = 0;
  CUdevice devno;
  CUcontext ctx;
  CUmodule mod;
  CUfunction empty, vadd;
  CUdeviceptr dev;
  uint8_t *host, *back;

  /* What to measure: everything (the default), the round trip only, or
   * the compression copies only. */
  enum { ALL, SYNC, PATTERNS, COPIES } what = ALL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      p = &bu_quick_plan;
    } else if (strcmp(argv[i], "--sync-only") == 0) {
      what = SYNC;
    } else if (strcmp(argv[i], "--patterns-only") == 0) {
      what = PATTERNS;
    } else if (strcmp(argv[i], "--copies-only") == 0) {
      what = COPIES;
    } else if (strcmp(argv[i], "--launch-probe") == 0 && i + 1 < argc) {
      return launch_probe((unsigned)strtoul(argv[i + 1], NULL, 10));
    } else {
      fprintf(stderr, "usage: " PROG " [--quick] [--sync-only|--patterns-only"
              "|--copies-only]"
              " (GPUPOOL_SERVER names the server)\n");
      return 2;
    }
  }
  if (server == NULL || *server == '\0') {
    fprintf(stderr, PROG ": set GPUPOOL_SERVER to the server's host:port "
            "(scripts/bench.sh starts one)\n");
    return 2;
  }
  for (int s = 0; s < BU_NSIZES; s++)
    if (p->sizes[s] > max)
      max = p->sizes[s];
  if (p->comp_size > max)
    max = p->comp_size;
  host = bu_xmalloc(PROG, max);
  back = bu_xmalloc(PROG, max);
  memset(host, 1, max);
  memset(back, 1, max);

  CU(cuInit(0));
  CU(cuDeviceGet(&devno, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx, devno));
  CU(cuCtxSetCurrent(ctx));
  CU(cuModuleLoadData(&mod, kernels_ptx));
  CU(cuModuleGetFunction(&empty, mod, "empty"));
  CU(cuModuleGetFunction(&vadd, mod, "vadd"));
  CU(cuMemAlloc(&dev, max));
  printf("info plan %s\n", p->quick ? "quick" : "full");
  printf("info server %s\n", server);

  if (what == SYNC) {
    measure_sync(p);
  } else if (what == PATTERNS) {
    measure_patterns(p, dev, host, back);
  } else if (what == COPIES) {
    measure_copies(p, dev, host, back);
  } else {
    measure_sync(p);
    measure_launches(p, empty);
    measure_counted_round_trips(p);
    measure_copies(p, dev, host, back);
    measure_patterns(p, dev, host, back);
    measure_vadd(p, vadd);
  }

  CU(cuMemFree(dev));
  CU(cuModuleUnload(mod));
  CU(cuDevicePrimaryCtxRelease(devno));
  free(host);
  free(back);
  return 0;
}
