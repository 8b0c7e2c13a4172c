// Runtime API built with `-gencode arch=compute_75,code=sm_75` only: the
// fatbin holds sm_75 machine code and no PTX, which the emulated device
// cannot run. Everything up to the first launch works; the launch fails
// with cudaErrorNoKernelImageForDevice. Prints cudart's name and string of
// that error; tests/integration/test_cudart.c checks them and gpupool's
// line on stderr saying how to rebuild. Exits 0 when it failed so.
#include "rt_check.h"

__global__ void inc(int *p, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i]++;
}

int main() {
  int *d;
  CK(cudaMalloc(&d, 256 * sizeof(int)));
  CK(cudaMemset(d, 0, 256 * sizeof(int)));
  inc<<<1, 256>>>(d, 256);
  cudaError_t launch = cudaGetLastError();
  cudaError_t sync = cudaDeviceSynchronize();
  printf("launch: %s: %s\n", cudaGetErrorName(launch), cudaGetErrorString(launch));
  printf("synchronize: %s: %s\n", cudaGetErrorName(sync), cudaGetErrorString(sync));
  EXPECT_EQ(launch, cudaErrorNoKernelImageForDevice);
  // Not a fault of the device: the context stays usable.
  EXPECT_EQ(sync, cudaSuccess);
  int h[256];
  CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  EXPECT_EQ(h[0], 0);
  return rt_finish("rt_no_ptx");
}
