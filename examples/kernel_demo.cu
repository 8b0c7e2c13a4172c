// The kernels of kernel_demo: compiled by nvcc into a fatbin (nvcc's
// default targets: sm_75 machine code and compute_75 PTX) that
// kernel_demo.c carries inside itself and loads with cuModuleLoadData.
#include <cstdio>

// y = a * x + y
extern "C" __global__ void saxpy(int n, float a, const float *x, float *y) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x)
    y[i] = a * x[i] + y[i];
}

#define TILE 16

// C = A * B for n x n row-major matrices, one TILE x TILE tile of C per
// block, through shared memory.
extern "C" __global__ void matmul(int n, const float *a, const float *b,
                                  float *c) {
  __shared__ float ta[TILE][TILE];
  __shared__ float tb[TILE][TILE];
  int row = blockIdx.y * TILE + threadIdx.y;
  int col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.0f;
  for (int t = 0; t < n; t += TILE) {
    ta[threadIdx.y][threadIdx.x] =
        row < n && t + threadIdx.x < n ? a[row * n + t + threadIdx.x] : 0.0f;
    tb[threadIdx.y][threadIdx.x] =
        col < n && t + threadIdx.y < n ? b[(t + threadIdx.y) * n + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++)
      acc += ta[threadIdx.y][k] * tb[k][threadIdx.x];
    __syncthreads();
  }
  if (row < n && col < n)
    c[row * n + col] = acc;
}

// *sum += the sum of x[0..n): a warp-shuffle reduction per warp, then one
// atomic per warp.
extern "C" __global__ void reduce_sum(int n, const float *x, double *sum) {
  double v = 0.0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x)
    v += x[i];
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0)
    atomicAdd(sum, v);
}

// Device printf: one line from the first thread of each block.
extern "C" __global__ void hello(int tag) {
  if (threadIdx.x == 0)
    printf("hello from block %d of %d (tag %d)\n", blockIdx.x, gridDim.x, tag);
}
