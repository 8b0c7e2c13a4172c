// Kernels for tests/integration/test_kernels.c (see e2e_basic.cu): device
// printf. Every thread prints two lines, in order; thread 0 of block 0
// also prints one line with every conversion the test checks. The test
// compares the text with what the host's printf makes of the same formats
// and values (CUDA's printf follows C's), as a set across threads and in
// order within each thread.
#include <cstdio>

__device__ const char e2eWord[] = "gpupool";

extern "C" __global__ void printfKernel(const float *vals, int tag) {
  int t = threadIdx.x, b = blockIdx.x;
  int g = b * blockDim.x + t;
  printf("first b=%d t=%d tag=%d v=%f\n", b, t, tag, vals[g]);
  if (g == 0)
    printf("all: %d %i %u %x %X %o %ld %lld %llu %5d|%-5d|%05d %c %s %.3s "
           "%e %.2E %g %G %a %10.4f %-8.2f| %%\n",
           -42, 7, 4000000000u, 0xbeefu, 0xcafeu, 8u, -1234567890123L,
           -9000000000000000000LL, 18000000000000000000ULL, 12, 34, -56, 'Z',
           e2eWord, "truncated", 12345.678, -0.000123, 0.0001, 1e20, 1.0,
           3.14159265, -2.5f);
  printf("second g=%d word=%s neg=%.1f\n", g, e2eWord, -(double)vals[g]);
}

// A format with no arguments at all (thread 0 of each block), and one
// with a single argument.
extern "C" __global__ void printfPlain(void) {
  if (threadIdx.x == 0) printf("no arguments here\n");
  printf("plain line from block %d\n", blockIdx.x);
}
