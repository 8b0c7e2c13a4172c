// Kernels for tests/integration/test_kernels.c, the end-to-end tests: nvcc
// builds them at build time (tests/integration/meson.build) into fatbins
// and PTX, which the test loads through gpupool's libcuda.so.1 and runs on
// the server's emulated device, comparing every result with a CPU
// reference. extern "C" keeps the names unmangled, except where a test
// looks a kernel up by its C++ mangled name on purpose.
//
// This file is also built as PTX (-ptx -arch=compute_75), for sm_90
// (-arch=sm_90), with LZ4 compression (--compress-mode=speed) and as
// machine code only (-gencode arch=compute_75,code=sm_75).

// c = a + b.
extern "C" __global__ void vectorAdd(const float *a, const float *b, float *c,
                                     int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

// y = a*x + y; nvcc contracts the expression to one fma.rn (-fmad=true is
// its default), so the reference is fmaf()/fma().
extern "C" __global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

extern "C" __global__ void daxpy(int n, double a, const double *x, double *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

// C (m x n) = A (m x k) * B (k x n), row-major, in 16 x 16 tiles of shared
// memory; sizes need not be multiples of the tile (out-of-range elements
// load as 0 and are not stored). Launch with 16 x 16 blocks and a grid of
// ceil(n/16) x ceil(m/16). The explicit __fmaf_rn fixes the rounding of
// every step, so the CPU reference (fmaf in the same order) is exact.
#define TILE 16
extern "C" __global__ void matrixMul(float *C, const float *A, const float *B,
                                     int m, int n, int k) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
  float c = 0.0f;
  for (int t = 0; t < (k + TILE - 1) / TILE; t++) {
    int ak = t * TILE + tx, bk = t * TILE + ty;
    As[ty][tx] = (row < m && ak < k) ? A[row * k + ak] : 0.0f;
    Bs[ty][tx] = (bk < k && col < n) ? B[bk * n + col] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int j = 0; j < TILE; j++) c = __fmaf_rn(As[ty][j], Bs[j][tx], c);
    __syncthreads();
  }
  if (row < m && col < n) C[row * n + col] = c;
}

// A grid-stride loop whose 64-bit index runs past 2^32 without touching
// 2^32 elements: thread t visits i = t, t + stride, t + 2*stride, ... for
// i < n, where stride = (all threads) * mult. Each thread records how many
// indices it visited, the last one and their sum (mod 2^64); every visit
// also counts in bins[i % nbins]. An index truncated to 32 bits anywhere
// (the loop variable, the compare, the stride product) changes the counts.
extern "C" __global__ void gridStride64(unsigned long long *count,
                                        unsigned long long *last,
                                        unsigned long long *sum,
                                        unsigned *bins, int nbins,
                                        long long n, long long mult) {
  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  long long stride = (long long)blockDim.x * gridDim.x * mult;
  unsigned long long c = 0, l = 0, s = 0;
  for (long long i = t; i < n; i += stride) {
    c++;
    l = (unsigned long long)i;
    s += (unsigned long long)i;
    atomicAdd(&bins[i % nbins], 1u);
  }
  count[t] = c;
  last[t] = l;
  sum[t] = s;
}

// A structure passed by value: mixed field sizes, padding, an array
// member, a pointer, then more parameters after it whose offsets depend on
// the structure's size and alignment.
struct Mixed {
  char c;       // 0
  short s;      // 2
  int i;        // 4
  double d;     // 8
  float *p;     // 16
  int q[3];     // 24
  char tail;    // 36, then 3 bytes of padding: sizeof 40, alignment 8
};
struct Small {
  short a;      // 0
  char b;       // 2, sizeof 4, alignment 2
};
extern "C" __global__ void structArg(Mixed m, unsigned char k, Small sm,
                                     long long *out) {
  int t = threadIdx.x;
  out[t * 8 + 0] = m.c;
  out[t * 8 + 1] = m.s;
  out[t * 8 + 2] = m.i;
  out[t * 8 + 3] = (long long)(m.d * 1000.0);
  out[t * 8 + 4] = m.q[t % 3];
  out[t * 8 + 5] = m.tail;
  out[t * 8 + 6] = k;
  out[t * 8 + 7] = sm.a * 1000 + sm.b;
  m.p[t] = (float)m.i + (float)t;
}

// Dynamic shared memory (the size comes with the launch): each block
// reverses its slice of |in| through an int array and keeps a running
// double sum in a second array carved from the same buffer after it.
extern "C" __global__ void dynShared(const int *in, int *out, double *sums,
                                     int n) {
  extern __shared__ unsigned char dyn[];
  int *si = (int *)dyn;
  double *sd = (double *)(dyn + ((blockDim.x * sizeof(int) + 7) & ~7u));
  int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  int v = base + t < n ? in[base + t] : 0;
  si[t] = v;
  sd[t] = (double)v * 0.5;
  __syncthreads();
  int r = blockDim.x - 1 - t;
  if (base + t < n) out[base + t] = si[r];
  if (t == 0) {
    double s = 0;
    for (unsigned j = 0; j < blockDim.x; j++) s += sd[j];
    sums[blockIdx.x] = s;
  }
}

// Writes far outside any allocation: the launch must fault with an
// illegal address.
extern "C" __global__ void oobWrite(int *p, long long off) {
  if (threadIdx.x == 0) p[off] = 0x0bad;
}

// C++ linkage: looked up by the mangled names _Z7scaleByPffi and
// _Z4fillIiEvPT_S0_i.
__global__ void scaleBy(float *x, float s, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x)
    x[i] *= s;
}
template <typename T>
__global__ void fill(T *p, T v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v + (T)i;
}
template __global__ void fill<int>(int *, int, int);

// Module-scope variables, read and written through cuModuleGetGlobal:
// each loaded copy of the module has its own.
__device__ int e2eCounter;
__device__ int e2eTable[4] = {11, 22, 33, 44};
__constant__ float e2eCoef[4];

extern "C" __global__ void bumpCounter(int by) {
  if (blockIdx.x == 0 && threadIdx.x == 0) e2eCounter += by;
}

// out[i] = coef[i % 4] * in[i] + table[i % 4].
extern "C" __global__ void applyCoef(const float *in, float *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = e2eCoef[i % 4] * in[i] + (float)e2eTable[i % 4];
}

// Every thread of a 3-D grid of 3-D blocks writes what the special
// registers say, at the linear index they imply: tid, ctaid, ntid, nctaid
// (x, y, z each) and the lane.
extern "C" __global__ void whereAmI(unsigned *out) {
  unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  unsigned inblock = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned *o = out + ((unsigned long long)block * blockDim.x * blockDim.y * blockDim.z + inblock) * 13;
  o[0] = threadIdx.x;
  o[1] = threadIdx.y;
  o[2] = threadIdx.z;
  o[3] = blockIdx.x;
  o[4] = blockIdx.y;
  o[5] = blockIdx.z;
  o[6] = blockDim.x;
  o[7] = blockDim.y;
  o[8] = blockDim.z;
  o[9] = gridDim.x;
  o[10] = gridDim.y;
  o[11] = gridDim.z;
  unsigned lane;
  asm("mov.u32 %0, %%laneid;" : "=r"(lane));
  o[12] = lane;
}
