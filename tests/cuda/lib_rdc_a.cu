// One half of a program built with relocatable device code
// (nvcc -rdc=true): its kernel calls a __device__ function and updates a
// __device__ variable that lib_rdc_b.cu defines. Used by
// tests/unit/test_emu_module.c and tests/integration/test_libraries.c,
// which load the image a -rdc=true program carries (the device-link
// output followed by each object's fatbin) and check that the units link.
//
// Both halves also have a private (static) function and a printf format
// string ($str in the PTX) of their own, and an inline template that nvcc
// emits as a .weak function in each: names the linker must keep apart, or
// merge.
#include <cstdio>

extern __device__ float lib_scale(float x); // lib_rdc_b.cu
extern __device__ int lib_hits;             // lib_rdc_b.cu

static __device__ __noinline__ int local_bias(int i) { return i % 3; }

template <int N> __device__ __noinline__ int times(int x) { return N * x; }

// out[i] = lib_scale(in[i]) + i % 3 + 2 * i; counts the threads in
// lib_hits.
__global__ void lib_apply(float *out, const float *in, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (n < 0) printf("lib_apply: bad n %d\n", n);
  if (i < n) {
    out[i] = lib_scale(in[i]) + (float)local_bias(i) + (float)times<2>(i);
    atomicAdd(&lib_hits, 1);
  }
}
