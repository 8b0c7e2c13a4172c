// A plain CUDA runtime program: nothing in it knows about gpupool.
// scripts/demo.sh builds it with `nvcc rt_demo.cu -o rt_demo` (nvcc's
// defaults: cudart linked statically, sm_75 machine code plus compute_75
// PTX) and runs it with `gpupool attach --server HOST:PORT -- ./rt_demo`.
//
// It queries the device, adds two vectors, multiplies two matrices timed by
// events, sums a vector with warp shuffles and atomics on two streams from
// pinned memory, prints from the device, and checks every result against
// the host's. Exits 0 when all match.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(call)                                                        \
  do {                                                                  \
    cudaError_t e_ = (call);                                            \
    if (e_ != cudaSuccess) {                                            \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,     \
              cudaGetErrorString(e_));                                  \
      exit(1);                                                          \
    }                                                                   \
  } while (0)

__global__ void vec_add(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

#define TILE 16
__global__ void mat_mul(const float *a, const float *b, float *c, int n) {
  __shared__ float ta[TILE][TILE], tb[TILE][TILE];
  int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.0f;
  for (int t = 0; t < n; t += TILE) {
    ta[threadIdx.y][threadIdx.x] = row < n && t + threadIdx.x < n ? a[row * n + t + threadIdx.x] : 0.0f;
    tb[threadIdx.y][threadIdx.x] = col < n && t + threadIdx.y < n ? b[(t + threadIdx.y) * n + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++) acc += ta[threadIdx.y][k] * tb[k][threadIdx.x];
    __syncthreads();
  }
  if (row < n && col < n) c[row * n + col] = acc;
}

__global__ void sum(const int *x, int n, unsigned long long *total) {
  unsigned long long v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    v += x[i];
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) atomicAdd(total, v);
}

__global__ void hello(int tag) {
  printf("hello from block %d, thread %d of the device (tag %d)\n", blockIdx.x,
         threadIdx.x, tag);
}

static int failures;
static void verdict(const char *what, bool ok) {
  printf("  %-34s %s\n", what, ok ? "ok" : "MISMATCH");
  if (!ok) failures++;
}

int main() {
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  int drv = 0, rt = 0;
  CK(cudaDriverGetVersion(&drv));
  CK(cudaRuntimeGetVersion(&rt));
  printf("device: %s, compute capability %d.%d, %d SMs, %.0f MiB\n", p.name,
         p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1048576.0);
  printf("driver API %d, runtime %d\n", drv, rt);

  // Vectors.
  const int n = 200000;
  std::vector<float> a(n), b(n), c(n);
  for (int i = 0; i < n; i++) {
    a[i] = (float)(i % 1000) * 0.25f;
    b[i] = (float)(i / 1000);
  }
  float *da, *db, *dc;
  CK(cudaMalloc(&da, n * sizeof(float)));
  CK(cudaMalloc(&db, n * sizeof(float)));
  CK(cudaMalloc(&dc, n * sizeof(float)));
  CK(cudaMemcpy(da, a.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  vec_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
  CK(cudaGetLastError());
  CK(cudaMemcpy(c.data(), dc, n * sizeof(float), cudaMemcpyDeviceToHost));
  bool ok = true;
  for (int i = 0; i < n; i++) ok &= c[i] == a[i] + b[i];
  verdict("vector add (200000 floats)", ok);

  // Matrices, timed.
  const int m = 96;
  std::vector<float> A(m * m), B(m * m), C(m * m);
  for (int i = 0; i < m * m; i++) {
    A[i] = (float)(i % 7 - 3);
    B[i] = (float)(i % 5 - 2);
  }
  float *dA, *dB, *dC;
  CK(cudaMalloc(&dA, m * m * sizeof(float)));
  CK(cudaMalloc(&dB, m * m * sizeof(float)));
  CK(cudaMalloc(&dC, m * m * sizeof(float)));
  CK(cudaMemcpy(dA, A.data(), m * m * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, B.data(), m * m * sizeof(float), cudaMemcpyHostToDevice));
  cudaEvent_t t0, t1;
  CK(cudaEventCreate(&t0));
  CK(cudaEventCreate(&t1));
  CK(cudaEventRecord(t0));
  mat_mul<<<dim3(m / TILE, m / TILE), dim3(TILE, TILE)>>>(dA, dB, dC, m);
  CK(cudaGetLastError());
  CK(cudaEventRecord(t1));
  CK(cudaEventSynchronize(t1));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, t0, t1));
  CK(cudaMemcpy(C.data(), dC, m * m * sizeof(float), cudaMemcpyDeviceToHost));
  ok = true;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      float s = 0;
      for (int k = 0; k < m; k++) s += A[i * m + k] * B[k * m + j];
      ok &= C[i * m + j] == s;
    }
  char what[64];
  snprintf(what, sizeof what, "matrix multiply (96x96, %.2f ms)", ms);
  verdict(what, ok);

  // Two streams, pinned memory, a reduction each.
  const int half = 100000;
  int *h;
  CK(cudaMallocHost(&h, 2 * half * sizeof(int)));
  for (int i = 0; i < 2 * half; i++) h[i] = i % 2 ? -i : 3 * i;
  int *dx;
  unsigned long long *dt, ht[2];
  CK(cudaMalloc(&dx, 2 * half * sizeof(int)));
  CK(cudaMalloc(&dt, 2 * sizeof(unsigned long long)));
  CK(cudaMemset(dt, 0, 2 * sizeof(unsigned long long)));
  cudaStream_t s[2];
  for (int k = 0; k < 2; k++) {
    CK(cudaStreamCreate(&s[k]));
    CK(cudaMemcpyAsync(dx + k * half, h + k * half, half * sizeof(int),
                       cudaMemcpyHostToDevice, s[k]));
    sum<<<32, 128, 0, s[k]>>>(dx + k * half, half, dt + k);
    CK(cudaGetLastError());
  }
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(ht, dt, sizeof ht, cudaMemcpyDeviceToHost));
  ok = true;
  for (int k = 0; k < 2; k++) {
    long long want = 0;
    for (int i = k * half; i < (k + 1) * half; i++) want += h[i];
    ok &= (long long)ht[k] == want;
  }
  verdict("two streams, shuffles and atomics", ok);

  // Device printf: the lines reach this program's stdout at the sync.
  hello<<<2, 2>>>(42);
  CK(cudaDeviceSynchronize());

  for (int k = 0; k < 2; k++) CK(cudaStreamDestroy(s[k]));
  CK(cudaFreeHost(h));
  for (void *ptr : {(void *)da, (void *)db, (void *)dc, (void *)dA, (void *)dB,
                    (void *)dC, (void *)dx, (void *)dt})
    CK(cudaFree(ptr));
  if (failures) {
    printf("rt_demo: %d results differ from the host's\n", failures);
    return 1;
  }
  printf("rt_demo: all results match the host's\n");
  return 0;
}
