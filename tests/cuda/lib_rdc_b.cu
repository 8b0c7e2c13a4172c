// The other half of the -rdc=true program of lib_rdc_a.cu: defines what
// lib_rdc_a.cu uses, and a kernel of its own.
#include <cstdio>

__device__ int lib_hits;
__device__ float lib_factor = 3.0f;

static __device__ __noinline__ int local_bias(int i) { return 100 + i; }

template <int N> __device__ __noinline__ int times(int x) { return N * x; }

__device__ float lib_scale(float x) { return x * lib_factor + 1.0f; }

// out[0] = lib_hits; out[1] = this unit's local_bias(0) + times<2>(5)
// (110).
__global__ void lib_count(int *out) {
  if (out == nullptr) printf("lib_count: no output\n");
  out[0] = lib_hits;
  out[1] = local_bias(0) + times<2>(5);
}
