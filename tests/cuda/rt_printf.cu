// Runtime API: device printf. Two kernels print; the host prints markers
// around each launch and synchronisation. tests/integration/test_cudart.c
// checks the output: every expected line exactly once, each thread's lines
// in its program order, each kernel's lines between its markers (CUDA
// flushes device output at synchronisation), nothing else.
#include "rt_check.h"

__global__ void talk(int tag, int *out) {
  int b = blockIdx.x, t = threadIdx.x;
  int v = tag * 100 + b * 10 + t;
  printf("k%d b%d t%d step 0: int %d hex %x\n", tag, b, t, v - 1000, v * 4099);
  printf("k%d b%d t%d step 1: float %.3f sci %.2e\n", tag, b, t, v * 0.125f,
         (double)v * 1.0e6);
  printf("k%d b%d t%d step 2: str %s char %c long %lld\n", tag, b, t,
         b % 2 ? "odd" : "even", 'a' + t, (long long)v << 35);
  out[b * blockDim.x + t] = v;
}

int main() {
  int *d;
  CK(cudaMalloc(&d, 64 * sizeof(int)));
  printf("host: kernel 1 launched\n");
  talk<<<2, 4>>>(1, d);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  printf("host: kernel 1 synchronized\n");
  talk<<<3, 2>>>(2, d);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  printf("host: kernel 2 synchronized\n");
  int h[6];
  CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 6; i++) EXPECT_EQ(h[i], 200 + (i / 2) * 10 + i % 2);
  return rt_finish("rt_printf");
}
