// Kernels for tests/integration/test_libraries.c, loaded with the library
// API (cuLibraryLoadData and friends) as nvcc builds them: a fatbin, PTX,
// a fatbin without PTX, and inside fatbin wrappers the test builds the
// way nvcc lays them out in a program. The names stay C++-mangled, as
// cudart asks for them (_Z6vecAddPKfS0_Pfi).

// c = a + b.
__global__ void vecAdd(const float *a, const float *b, float *c, int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

// Module variables: an initialised counter and a __constant__ table.
__device__ int lib_counter = 5;
__constant__ float lib_coef[4] = {1.0f, 2.0f, 3.0f, 4.0f};

// y[i] = a * x[i] + lib_coef[i % 4].
__global__ void axpyCoef(float a, const float *x, float *y, int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + lib_coef[i & 3];
}

// out[0] = lib_counter, then lib_counter += 1 (one thread).
__global__ void bump(int *out) { out[0] = atomicAdd(&lib_counter, 1); }

// At most 128 threads a block; 256 bytes of static shared memory.
// out[t] = 2 * (t % 64).
__global__ void __launch_bounds__(128) bounded(int *out) {
  __shared__ int s[64];
  if (threadIdx.x < 64) s[threadIdx.x] = 2 * threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x & 63];
}
