// Kernels for tests/unit/test_ptx.c: compiled to PTX by nvcc at build
// time (tests/unit/meson.build) and run through the PTX engine, whose
// results the test compares with a CPU reference. extern "C" keeps the
// names unmangled.
#include <cooperative_groups.h>
namespace cg = cooperative_groups;
extern "C" __global__ void vectorAdd(const float *a, const float *b, float *c, int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void daxpy(int n, double a, const double *x, double *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
#define TILE 16
extern "C" __global__ void matrixMul(float *C, const float *A, const float *B, int wA, int wB) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int bx = blockIdx.x, by = blockIdx.y, tx = threadIdx.x, ty = threadIdx.y;
  int aBegin = wA * TILE * by, aEnd = aBegin + wA - 1, bBegin = TILE * bx;
  float c = 0;
  for (int a = aBegin, b = bBegin; a <= aEnd; a += TILE, b += TILE * wB) {
    As[ty][tx] = A[a + wA * ty + tx];
    Bs[ty][tx] = B[b + wB * ty + tx];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TILE; ++k) c += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  C[wB * TILE * by + TILE * bx + wB * ty + tx] = c;
}
extern "C" __global__ void reduceShfl(const float *in, float *out, int n) {
  extern __shared__ float warpSums[];
  float v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) v += in[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) warpSums[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < (blockDim.x >> 5) ? warpSums[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    if (lane == 0) atomicAdd(out, v);
  }
}
extern "C" __global__ void histogram(const unsigned char *data, unsigned *bins, int n) {
  __shared__ unsigned sb[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) sb[i] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) atomicAdd(&sb[data[i]], 1u);
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x) atomicAdd(&bins[i], sb[i]);
}
extern "C" __global__ void gridStride64(const double *x, double *y, long long n, double s) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
    y[i] = x[i] * s + (double)(i & 7);
}
struct P { float a, b; int n; double d; float *p; int q[4]; };
extern "C" __global__ void structArg(P p, int *out) {
  out[threadIdx.x] = (int)(p.a + p.b) + p.n + (int)p.d + p.q[threadIdx.x & 3];
  p.p[threadIdx.x] = p.a;
}
extern "C" __global__ void ballot(int *out) {
  unsigned b = __ballot_sync(0xffffffff, threadIdx.x & 1);
  out[threadIdx.x] = b + __popc(b) + __clz(threadIdx.x);
}

// A simple counted loop, for measuring interpreter speed.
extern "C" __global__ void spin(unsigned *out, int iters) {
  unsigned x = threadIdx.x;
  for (int i = 0; i < iters; i++) x = x * 1664525u + 1013904223u;
  out[blockIdx.x * blockDim.x + threadIdx.x] = x;
}

// Out-of-range store: the engine must stop with an illegal-address error.
extern "C" __global__ void oob(int *p, long long off) { p[off] = 1; }

// Generic pointers into shared and local memory.
extern "C" __global__ void generic(const int *in, int *out, int n) {
  __shared__ int s[64];
  int loc[8];
  int *ps = s, *pl = loc;
  int t = threadIdx.x;
  ps[t] = in[t];
  for (int i = 0; i < 8; i++) pl[i] = in[(t + i) % n];
  __syncthreads();
  int acc = 0;
  int k = in[t] & 7;
  acc = pl[k] + ps[(t + 1) % blockDim.x];
  out[t] = acc;
}

// The CUDA math library: polynomial paths, carry chains (mad.lo.cc, addc)
// and, for large arguments of sin/cos, calls of its internal .func
// __internal_trig_reduction_slowpathd with local arrays.
extern "C" __global__ void mathf(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float v = x[i];
    y[i * 8 + 0] = sinf(v);
    y[i * 8 + 1] = cosf(v);
    y[i * 8 + 2] = expf(v * 0.1f);
    y[i * 8 + 3] = logf(fabsf(v) + 1.0f);
    y[i * 8 + 4] = powf(fabsf(v), 1.3f);
    y[i * 8 + 5] = sqrtf(fabsf(v)) + tanhf(v * 0.01f);
    y[i * 8 + 6] = erff(v * 0.001f);
    y[i * 8 + 7] = atan2f(v, 1.5f);
  }
}
extern "C" __global__ void mathd(const double *x, double *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    double v = x[i];
    y[i * 6 + 0] = sin(v);
    y[i * 6 + 1] = cos(v);
    y[i * 6 + 2] = exp(v * 1e-3);
    y[i * 6 + 3] = log(fabs(v) + 1.0);
    y[i * 6 + 4] = pow(fabs(v), 1.3);
    y[i * 6 + 5] = v / 3.0 + sqrt(fabs(v));
  }
}

// A device function the compiler must call rather than inline.
__device__ __noinline__ float scaleAdd(float a, float b, int k) {
  return a * (float)k + b;
}
extern "C" __global__ void callFunc(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = (i & 1) ? scaleAdd(x[i], 1.0f, i) : x[i];
}

// Cooperative-groups tiles: shfl and vote through the cg API.
extern "C" __global__ void cgReduce(const int *in, int *out) {
  cg::thread_block b = cg::this_thread_block();
  cg::thread_block_tile<32> t = cg::tiled_partition<32>(b);
  int v = in[b.thread_rank()];
  for (int o = t.size() / 2; o > 0; o /= 2) v += t.shfl_down(v, o);
  if (t.thread_rank() == 0) atomicAdd(out, v);
  cg::thread_block_tile<8> t8 = cg::tiled_partition<8>(b);
  int w = t8.shfl(in[b.thread_rank()], 3);
  out[1 + b.thread_rank()] = w + t8.any(in[b.thread_rank()] > 5) * 1000;
}

// A naive spin lock among the lanes of a warp: the lane that wins waits
// at a higher PC than the losers' loop, which lowest-PC-first alone would
// run forever.
extern "C" __global__ void spinLock(int *lock, int *counter) {
  while (atomicCAS(lock, 0, 1) != 0) {
  }
  int v = *(volatile int *)counter;
  *(volatile int *)counter = v + 1;
  __threadfence();
  atomicExch(lock, 0);
}
