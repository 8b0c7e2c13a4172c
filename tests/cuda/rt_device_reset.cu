// Runtime API: cudaDeviceReset. Work before it; after it the old
// allocations are gone (copies from them are refused), module variables are
// back at their initial values (cudart loads the code again into the new
// context), and new allocations, copies and launches work.
#include <vector>

#include "rt_check.h"

__device__ int d_marker = 1234;

__global__ void fill(int *p, int n, int base) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = base + i;
  if (i == 0) d_marker += base;
}

static void work(int n, int base, const char *what) {
  int *d;
  CK(cudaMalloc(&d, n * sizeof(int)));
  fill<<<(n + 255) / 256, 256>>>(d, n, base);
  CK_LAUNCH();
  std::vector<int> got(n), want(n);
  CK(cudaMemcpy(got.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++) want[i] = base + i;
  rt_compare(what, got.data(), want.data(), n);
  CK(cudaFree(d));
}

int main() {
  const int n = 10000;
  work(n, 5, "before reset");
  int marker = 0;
  CK(cudaMemcpyFromSymbol(&marker, d_marker, sizeof marker));
  EXPECT_EQ(marker, 1234 + 5);

  int *old;
  CK(cudaMalloc(&old, n * sizeof(int)));
  CK(cudaMemset(old, 0x5a, n * sizeof(int)));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  CK(cudaDeviceSynchronize());

  CK(cudaDeviceReset());

  // The old allocation went with the context.
  std::vector<int> buf(n);
  cudaError_t e = cudaMemcpy(buf.data(), old, n * sizeof(int),
                             cudaMemcpyDeviceToHost);
  printf("copy from a pointer of before the reset: %s\n", cudaGetErrorName(e));
  EXPECT_EQ(e, cudaErrorInvalidValue);
  cudaGetLastError();

  // Module variables start again from their initial values.
  CK(cudaMemcpyFromSymbol(&marker, d_marker, sizeof marker));
  EXPECT_EQ(marker, 1234);

  // New work runs.
  work(n, 77, "after reset");
  CK(cudaMemcpyFromSymbol(&marker, d_marker, sizeof marker));
  EXPECT_EQ(marker, 1234 + 77);

  // And a second reset in a row is fine too.
  CK(cudaDeviceReset());
  work(1000, -3, "after a second reset");
  (void)s;
  return rt_finish("rt_device_reset");
}
