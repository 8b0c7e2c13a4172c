/* kernel_demo: an nvcc-built CUDA program run through gpupool.
 *
 * The kernels (kernel_demo.cu: saxpy, a tiled matrix multiply through
 * shared memory, a warp-shuffle reduction with double atomics, device
 * printf) are compiled by nvcc into a fatbin that this program carries
 * inside itself (embed.py) and loads with cuModuleLoadData, as a program
 * using the driver API does. Each result is checked against the same work
 * done on the host. Exits 0 when every check passed.
 *
 * Run: `gpupool attach --server HOST:PORT -- kernel_demo`, or with
 * GPUPOOL_SERVER set.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cuda.h>

extern const unsigned char kernel_demo_fatbin[];
extern const unsigned long kernel_demo_fatbin_size;

#define SAXPY_N (1 << 20)
#define MAT_N 192
#define TILE 16

#define CK(call)                                                          \
  do {                                                                    \
    CUresult r_ = (call);                                                 \
    if (r_ != CUDA_SUCCESS) {                                             \
      const char *n_ = NULL;                                              \
      cuGetErrorName(r_, &n_);                                            \
      fprintf(stderr, "kernel_demo: %s failed: %s\n", #call,             \
              n_ ? n_ : "?");                                             \
      exit(1);                                                            \
    }                                                                     \
  } while (0)

static int failures;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, int bad, double seconds) {
  printf("  %-40s %s (%.3f s)\n", what, bad ? "MISMATCH" : "ok", seconds);
  failures += bad != 0;
}

/* Deterministic inputs in [-1, 1). */
static float input(unsigned i, unsigned salt) {
  unsigned x = i * 2654435761u ^ salt * 40503u;
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  return (float)(x & 0xffffff) / (float)0x800000 - 1.0f;
}

static void run_saxpy(CUfunction f) {
  size_t bytes = SAXPY_N * sizeof(float);
  float *x = malloc(bytes), *y = malloc(bytes), *out = malloc(bytes);
  CUdeviceptr dx, dy;
  float a = 2.5f;
  int n = SAXPY_N, bad = 0;

  for (int i = 0; i < n; i++) {
    x[i] = input((unsigned)i, 1);
    y[i] = input((unsigned)i, 2);
  }
  double t0 = now();
  CK(cuMemAlloc(&dx, bytes));
  CK(cuMemAlloc(&dy, bytes));
  CK(cuMemcpyHtoD(dx, x, bytes));
  CK(cuMemcpyHtoD(dy, y, bytes));
  void *args[] = {&n, &a, &dx, &dy};
  CK(cuLaunchKernel(f, 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
  CK(cuMemcpyDtoH(out, dy, bytes));
  double t = now() - t0;
  /* nvcc contracts a * x + y into one fused multiply-add. */
  for (int i = 0; i < n; i++)
    bad += out[i] != fmaf(a, x[i], y[i]);
  report("saxpy, 1M elements", bad, t);
  CK(cuMemFree(dx));
  CK(cuMemFree(dy));
  free(x);
  free(y);
  free(out);
}

static void run_matmul(CUfunction f) {
  int n = MAT_N, bad = 0;
  size_t bytes = (size_t)n * n * sizeof(float);
  float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
  CUdeviceptr da, db, dc;

  for (int i = 0; i < n * n; i++) {
    a[i] = input((unsigned)i, 3);
    b[i] = input((unsigned)i, 4);
  }
  double t0 = now();
  CK(cuMemAlloc(&da, bytes));
  CK(cuMemAlloc(&db, bytes));
  CK(cuMemAlloc(&dc, bytes));
  CK(cuMemcpyHtoD(da, a, bytes));
  CK(cuMemcpyHtoD(db, b, bytes));
  void *args[] = {&n, &da, &db, &dc};
  unsigned g = (unsigned)(n + TILE - 1) / TILE;
  CK(cuLaunchKernel(f, g, g, 1, TILE, TILE, 1, 0, NULL, args, NULL));
  CK(cuMemcpyDtoH(c, dc, bytes));
  double t = now() - t0;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) {
      double ref = 0;
      for (int k = 0; k < n; k++)
        ref += (double)a[i * n + k] * b[k * n + j];
      bad += fabs(c[i * n + j] - ref) > 1e-4 * n;
    }
  }
  report("matrix multiply 192x192, shared tiles", bad, t);
  CK(cuMemFree(da));
  CK(cuMemFree(db));
  CK(cuMemFree(dc));
  free(a);
  free(b);
  free(c);
}

static void run_reduce(CUfunction f) {
  int n = SAXPY_N;
  size_t bytes = (size_t)n * sizeof(float);
  float *x = malloc(bytes);
  double ref = 0, sum = 0, zero = 0;
  CUdeviceptr dx, ds;

  for (int i = 0; i < n; i++) {
    x[i] = input((unsigned)i, 5);
    ref += x[i];
  }
  double t0 = now();
  CK(cuMemAlloc(&dx, bytes));
  CK(cuMemAlloc(&ds, sizeof(double)));
  CK(cuMemcpyHtoD(dx, x, bytes));
  CK(cuMemcpyHtoD(ds, &zero, sizeof(zero)));
  void *args[] = {&n, &dx, &ds};
  CK(cuLaunchKernel(f, 64, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
  CK(cuMemcpyDtoH(&sum, ds, sizeof(sum)));
  double t = now() - t0;
  report("sum of 1M floats, shuffles + atomics", fabs(sum - ref) > 1e-6 *
         (fabs(ref) + 1), t);
  CK(cuMemFree(dx));
  CK(cuMemFree(ds));
  free(x);
}

int main(void) {
  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  CUfunction saxpy, matmul, reduce, hello;
  char name[256];

  CK(cuInit(0));
  CK(cuDeviceGet(&dev, 0));
  CK(cuDeviceGetName(name, sizeof(name), dev));
  CK(cuDevicePrimaryCtxRetain(&ctx, dev));
  CK(cuCtxSetCurrent(ctx));
  printf("kernel_demo on \"%s\": a %lu-byte nvcc fatbin\n", name,
         kernel_demo_fatbin_size);

  CK(cuModuleLoadData(&mod, kernel_demo_fatbin));
  CK(cuModuleGetFunction(&saxpy, mod, "saxpy"));
  CK(cuModuleGetFunction(&matmul, mod, "matmul"));
  CK(cuModuleGetFunction(&reduce, mod, "reduce_sum"));
  CK(cuModuleGetFunction(&hello, mod, "hello"));

  run_saxpy(saxpy);
  run_matmul(matmul);
  run_reduce(reduce);

  int tag = 42;
  void *args[] = {&tag};
  printf("  device printf (3 blocks):\n");
  fflush(stdout);
  CK(cuLaunchKernel(hello, 3, 1, 1, 32, 1, 1, 0, NULL, args, NULL));
  CK(cuCtxSynchronize());

  CK(cuModuleUnload(mod));
  CK(cuDevicePrimaryCtxRelease(dev));
  printf("kernel_demo: %s\n", failures ? "FAILED" : "all results match the "
         "host's");
  return failures ? 1 : 0;
}
