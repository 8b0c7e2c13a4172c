/* measure: the cost of gpupool's remote path, as figures (not a test).
 *
 *   round trip   a synchronous call with nothing queued (cuCtxSynchronize),
 *                and cuMemGetInfo: median, 99th percentile, mean
 *   bandwidth    cuMemcpyHtoD and cuMemcpyDtoH of SIZE MiB (default 256),
 *                from pageable (malloc) and pinned (cuMemAllocHost) memory;
 *                best and median of REPS (default 5)
 *
 * usage: measure [--size MIB] [--reps N] [--calls N]
 * Run it with GPUPOOL_SERVER set, or through `gpupool attach`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#define CK(call)                                                        \
  do {                                                                  \
    CUresult r_ = (call);                                               \
    if (r_ != CUDA_SUCCESS) {                                           \
      const char *n_ = NULL;                                            \
      cuGetErrorName(r_, &n_);                                          \
      fprintf(stderr, "measure: %s failed: %s\n", #call, n_ ? n_ : "?"); \
      exit(1);                                                          \
    }                                                                   \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sorts |v| and prints its median, 99th percentile and mean, in µs. */
static void report_latency(const char *what, double *v, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  printf("%-34s median %7.1f us   p99 %7.1f us   mean %7.1f us   (%d calls)\n",
         what, v[n / 2] * 1e6, v[(int)(n * 0.99)] * 1e6, sum / n * 1e6, n);
}

static void report_bw(const char *what, double *secs, int reps, size_t bytes) {
  qsort(secs, (size_t)reps, sizeof *secs, cmp_double);
  printf("%-34s best %8.0f MB/s   median %8.0f MB/s   (%zu MiB x %d)\n", what,
         bytes / secs[0] / 1e6, bytes / secs[reps / 2] / 1e6, bytes >> 20,
         reps);
}

int main(int argc, char **argv) {
  size_t mib = 256;
  int reps = 5, calls = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--size") == 0)
      mib = (size_t)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--calls") == 0)
      calls = atoi(argv[i + 1]);
  }
  if (mib == 0 || reps <= 0 || reps > 100 || calls <= 0) {
    fprintf(stderr, "usage: measure [--size MIB] [--reps N] [--calls N]\n");
    return 2;
  }

  CUdevice dev;
  CUcontext ctx;
  char name[128];
  CK(cuInit(0));
  CK(cuDeviceGet(&dev, 0));
  CK(cuDeviceGetName(name, sizeof name, dev));
  CK(cuCtxCreate(&ctx, NULL, 0, dev));
  printf("measure: device \"%s\" via %s\n", name,
         getenv("GPUPOOL_SERVER") ? getenv("GPUPOOL_SERVER") : "(default)");

  /* Round trips. */
  double *lat = malloc((size_t)calls * sizeof *lat);
  if (lat == NULL) return 1;
  for (int i = 0; i < 200; i++) CK(cuCtxSynchronize());
  for (int i = 0; i < calls; i++) {
    double t0 = now();
    CK(cuCtxSynchronize());
    lat[i] = now() - t0;
  }
  report_latency("cuCtxSynchronize (empty)", lat, calls);
  size_t f, t;
  for (int i = 0; i < calls; i++) {
    double t0 = now();
    CK(cuMemGetInfo(&f, &t));
    lat[i] = now() - t0;
  }
  report_latency("cuMemGetInfo", lat, calls);
  int n_alloc = calls < 2000 ? calls : 2000;
  for (int i = 0; i < n_alloc; i++) {
    CUdeviceptr p;
    double t0 = now();
    CK(cuMemAlloc(&p, 4096));
    lat[i] = now() - t0;
    CK(cuMemFree(p));
  }
  report_latency("cuMemAlloc 4 KiB", lat, n_alloc);
  free(lat);

  /* Bandwidth. */
  size_t bytes = mib << 20;
  CUdeviceptr d;
  CK(cuMemAlloc(&d, bytes));
  unsigned char *pageable = malloc(bytes);
  void *pinned = NULL;
  if (pageable == NULL) return 1;
  memset(pageable, 0x5a, bytes);
  CK(cuMemAllocHost(&pinned, bytes));
  memset(pinned, 0xa5, bytes);
  double secs[100];
  struct {
    const char *what;
    void *host;
    int up;
  } runs[] = {
      {"HtoD, pageable", pageable, 1},
      {"DtoH, pageable", pageable, 0},
      {"HtoD, pinned", pinned, 1},
      {"DtoH, pinned", pinned, 0},
  };
  CK(cuMemcpyHtoD(d, pageable, bytes)); /* warm up: touch the device pages */
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    for (int i = 0; i < reps; i++) {
      double t0 = now();
      if (runs[r].up)
        CK(cuMemcpyHtoD(d, runs[r].host, bytes));
      else
        CK(cuMemcpyDtoH(runs[r].host, d, bytes));
      secs[i] = now() - t0;
    }
    report_bw(runs[r].what, secs, reps, bytes);
  }
  CK(cuMemFreeHost(pinned));
  CK(cuMemFree(d));
  free(pageable);
  CK(cuCtxDestroy(ctx));
  return 0;
}
