// Runtime API: a kernel that writes far outside any allocation. The launch
// itself succeeds; the next synchronisation reports cudaErrorIllegalAddress,
// and the error is sticky: every later call in the process fails with it.
// Prints cudart's string for each error; tests/integration/test_cudart.c
// checks those lines. Exits 0 when all of it behaved so.
#include "rt_check.h"

__global__ void wild_write(int *p, long long offset) { p[offset] = 42; }

static cudaError_t report(const char *what, cudaError_t e) {
  printf("%s: %s: %s\n", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return e;
}

int main() {
  int *d;
  CK(cudaMalloc(&d, 1024 * sizeof(int)));
  CK(cudaMemset(d, 0, 1024 * sizeof(int)));
  CK(cudaDeviceSynchronize());

  // 4 TiB past the allocation: no device has memory there.
  wild_write<<<1, 1>>>(d, 1LL << 40);
  EXPECT_EQ(report("launch", cudaGetLastError()), cudaSuccess);
  EXPECT_EQ(report("synchronize", cudaDeviceSynchronize()), cudaErrorIllegalAddress);

  // Sticky: the context is unusable from here on.
  int *again = nullptr;
  EXPECT_EQ(report("malloc after", cudaMalloc(&again, 16)), cudaErrorIllegalAddress);
  int h = 0;
  EXPECT_EQ(report("memcpy after",
                   cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost)),
            cudaErrorIllegalAddress);
  EXPECT_EQ(report("synchronize again", cudaDeviceSynchronize()),
            cudaErrorIllegalAddress);
  EXPECT_EQ(report("last error", cudaGetLastError()), cudaErrorIllegalAddress);
  return rt_finish("rt_oob");
}
