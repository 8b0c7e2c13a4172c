/* vector_demo: a CUDA driver-API workload, run through gpupool.
 *
 * It builds a result vector on the device out of two input vectors: four
 * streams each assemble one quarter with device-to-device copies and a
 * memset, time their work with events and download it into pinned host
 * memory; the result is then compared, byte for byte, with the same thing
 * built on the host. No kernels (gpupool cannot run them yet): every step is
 * a memory operation, which is what the remote path carries.
 *
 * Build: linked to libcuda.so.1 like any driver-API program (the meson build
 * links gpupool's). Run: `gpupool attach --server HOST:PORT -- vector_demo`,
 * or with GPUPOOL_SERVER set. Exits 0 when every byte matched.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#define N (4u << 20)          /* elements per input vector (16 MiB of floats) */
#define STREAMS 4
#define Q (N / STREAMS)       /* elements per quarter */
#define MASK 4096u            /* leading elements of each block set to 1.0f */

static int failed;

#define CK(call)                                                          \
  do {                                                                    \
    CUresult r_ = (call);                                                 \
    if (r_ != CUDA_SUCCESS) {                                             \
      const char *n_ = NULL, *s_ = NULL;                                  \
      cuGetErrorName(r_, &n_);                                            \
      cuGetErrorString(r_, &s_);                                          \
      fprintf(stderr, "vector_demo: %s failed: %s (%s)\n", #call,         \
              n_ ? n_ : "?", s_ ? s_ : "?");                              \
      exit(1);                                                            \
    }                                                                     \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
  int version = 0, count = 0, major = 0, minor = 0;
  char name[256];
  size_t total = 0, free0 = 0, free1 = 0;
  CUdevice dev;
  CUcontext ctx;

  double t_start = now();
  CK(cuInit(0));
  double t_init = now() - t_start;
  CK(cuDriverGetVersion(&version));
  CK(cuDeviceGetCount(&count));
  CK(cuDeviceGet(&dev, 0));
  CK(cuDeviceGetName(name, sizeof name, dev));
  CK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
  CK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
  CK(cuDeviceTotalMem(&total, dev));
  printf("vector_demo: CUDA driver API through gpupool\n");
  printf("  connected in %.1f ms; driver version %d.%d, %d device(s)\n",
         t_init * 1e3, version / 1000, (version % 1000) / 10, count);
  printf("  device 0: %s, compute capability %d.%d, %zu MiB\n", name, major,
         minor, total >> 20);

  CK(cuCtxCreate(&ctx, NULL, 0, dev));
  CK(cuMemGetInfo(&free0, &total));

  /* Inputs on the host: a[i] = i, b[i] = -i. */
  const size_t vec_bytes = (size_t)N * sizeof(float);
  float *a = malloc(vec_bytes), *b = malloc(vec_bytes);
  float *model = malloc(2 * vec_bytes), *out = NULL;
  if (!a || !b || !model) {
    fprintf(stderr, "vector_demo: out of host memory\n");
    return 1;
  }
  for (uint32_t i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = -(float)i;
  }
  CK(cuMemHostAlloc((void **)&out, 2 * vec_bytes, 0));
  memset(out, 0, 2 * vec_bytes);

  CUdeviceptr da, db, dout;
  CK(cuMemAlloc(&da, vec_bytes));
  CK(cuMemAlloc(&db, vec_bytes));
  CK(cuMemAlloc(&dout, 2 * vec_bytes));
  CK(cuMemGetInfo(&free1, &total));
  printf("  allocated 3 buffers, %zu MiB; device free %zu -> %zu MiB\n",
         (4 * vec_bytes) >> 20, free0 >> 20, free1 >> 20);

  double t0 = now();
  CK(cuMemcpyHtoD(da, a, vec_bytes));
  CK(cuMemcpyHtoD(db, b, vec_bytes));
  double t_up = now() - t0;
  printf("  uploaded a and b (%zu MiB) in %.1f ms: %.0f MB/s\n",
         (2 * vec_bytes) >> 20, t_up * 1e3, 2 * vec_bytes / t_up / 1e6);
  CK(cuMemsetD32(dout, 0xffffffffu, 2 * N)); /* poison: NaN everywhere */

  /* Each stream k builds block k of the result: a's quarter k, then b's
   * quarter k, with the first MASK elements of the block set to 1.0f. */
  CUstream s[STREAMS];
  CUevent start[STREAMS], stop[STREAMS];
  const uint32_t one = 0x3f800000u; /* 1.0f */
  t0 = now();
  for (int k = 0; k < STREAMS; k++) {
    CK(cuStreamCreate(&s[k], CU_STREAM_NON_BLOCKING));
    CK(cuEventCreate(&start[k], CU_EVENT_DEFAULT));
    CK(cuEventCreate(&stop[k], CU_EVENT_DEFAULT));
    size_t blk = (size_t)k * 2 * Q * sizeof(float);
    size_t q_bytes = (size_t)Q * sizeof(float);
    CK(cuEventRecord(start[k], s[k]));
    CK(cuMemcpyDtoDAsync(dout + blk, da + (size_t)k * q_bytes, q_bytes, s[k]));
    CK(cuMemcpyDtoDAsync(dout + blk + q_bytes, db + (size_t)k * q_bytes, q_bytes, s[k]));
    CK(cuMemsetD32Async(dout + blk, one, MASK, s[k]));
    CK(cuMemcpyDtoHAsync((char *)out + blk, dout + blk, 2 * q_bytes, s[k]));
    CK(cuEventRecord(stop[k], s[k]));
  }
  for (int k = 0; k < STREAMS; k++) CK(cuStreamSynchronize(s[k]));
  double t_streams = now() - t0;
  for (int k = 0; k < STREAMS; k++) {
    float ms = 0;
    CK(cuEventElapsedTime(&ms, start[k], stop[k]));
    printf("  stream %d: 2 device copies, 1 memset, 1 download of %zu MiB: "
           "%.2f ms on the device\n", k, (2 * Q * sizeof(float)) >> 20, ms);
  }
  printf("  all 4 streams done in %.1f ms (wall clock)\n", t_streams * 1e3);

  /* The same on the host, then every byte compared. */
  for (int k = 0; k < STREAMS; k++) {
    float *blk = model + (size_t)k * 2 * Q;
    memcpy(blk, a + (size_t)k * Q, Q * sizeof(float));
    memcpy(blk + Q, b + (size_t)k * Q, Q * sizeof(float));
    for (uint32_t i = 0; i < MASK; i++) memcpy(&blk[i], &one, sizeof one);
  }
  size_t bad = 0, first_bad = 0;
  const unsigned char *x = (const unsigned char *)out;
  const unsigned char *y = (const unsigned char *)model;
  for (size_t i = 0; i < 2 * vec_bytes; i++) {
    if (x[i] != y[i]) {
      if (bad == 0) first_bad = i;
      bad++;
    }
  }
  if (bad == 0) {
    printf("  checked %zu MiB: all results byte-exact\n", (2 * vec_bytes) >> 20);
  } else {
    printf("  MISMATCH: %zu of %zu bytes differ, first at byte %zu\n", bad,
           2 * vec_bytes, first_bad);
    failed = 1;
  }
  printf("  out[0] = %g, out[%u] = %g, out[%u] = %g\n", out[0], MASK,
         out[MASK], Q + 5, out[Q + 5]);

  for (int k = 0; k < STREAMS; k++) {
    CK(cuEventDestroy(start[k]));
    CK(cuEventDestroy(stop[k]));
    CK(cuStreamDestroy(s[k]));
  }
  CK(cuMemFree(da));
  CK(cuMemFree(db));
  CK(cuMemFree(dout));
  CK(cuMemFreeHost(out));
  CK(cuCtxSynchronize());
  CK(cuMemGetInfo(&free1, &total));
  printf("  freed everything: device free %zu MiB\n", free1 >> 20);
  CK(cuCtxDestroy(ctx));
  free(a);
  free(b);
  free(model);
  printf("vector_demo: %s in %.2f s\n", failed ? "FAILED" : "done",
         now() - t_start);
  return failed;
}
