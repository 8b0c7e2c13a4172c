// Kernels for tests/unit/test_emu_module.c: built by nvcc at build time
// (tests/unit/meson.build) as PTX, fatbins and a cubin, and loaded through
// the emu backend's module operations. extern "C" keeps the names
// unmangled.

// c = a + b.
extern "C" __global__ void vecAdd(const float *a, const float *b, float *c,
                                  int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

// Module variables: a zeroed __device__ counter, an initialised
// __device__ table and a __constant__ array.
__device__ int counter;
__device__ float table[256] = {1.0f, 2.0f, 3.0f};
__constant__ float scale[4] = {0.5f, 1.0f, 2.0f, 4.0f};

// out[i] = scale[i % 4] * table[i % 256]; counts the threads that wrote.
extern "C" __global__ void useGlobals(float *out, int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) {
    out[i] = scale[i & 3] * table[i & 255];
    atomicAdd(&counter, 1);
  }
}

// Writes 1 at p[off]: out of bounds when |off| is.
extern "C" __global__ void writeAt(int *p, long long off) { p[off] = 1; }

// At most 64 threads per block, 512 bytes of static shared memory.
extern "C" __global__ void __launch_bounds__(64) bounded(int *p) {
  __shared__ int s[128];
  s[threadIdx.x] = threadIdx.x;
  __syncthreads();
  p[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// The architecture the PTX was compiled for (which entry of a fatbin ran).
extern "C" __global__ void archOf(int *out) {
#ifdef __CUDA_ARCH__
  *out = __CUDA_ARCH__;
#endif
}
