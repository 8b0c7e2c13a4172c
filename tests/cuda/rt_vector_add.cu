// Runtime API end to end: cudaMalloc, cudaMemcpy both ways, a kernel
// launched with <<<>>>, cudaMemset, a device-to-device copy, device queries.
// Built by nvcc's default (static cudart), with -cudart shared and with
// -rdc=true; run through `gpupool attach` by tests/integration/test_cudart.c.
#include <cstring>
#include <vector>

#include "rt_check.h"

__global__ void vecAdd(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

int main() {
  const int n = 50000;
  const size_t bytes = n * sizeof(float);

  int count = 0;
  CK(cudaGetDeviceCount(&count));
  EXPECT(count >= 1);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device 0: %s, compute capability %d.%d, %d SMs\n", prop.name,
         prop.major, prop.minor, prop.multiProcessorCount);
  EXPECT(prop.major >= 1);
  EXPECT(prop.totalGlobalMem > bytes);
  int drv = 0, rt = 0;
  CK(cudaDriverGetVersion(&drv));
  CK(cudaRuntimeGetVersion(&rt));
  EXPECT(drv >= rt);

  std::vector<float> a(n), b(n), c(n), want(n);
  for (int i = 0; i < n; i++) {
    a[i] = (float)(i % 977) * 0.5f;
    b[i] = (float)(n - i) * 0.25f;
    want[i] = a[i] + b[i];
  }
  float *da, *db, *dc;
  CK(cudaMalloc(&da, bytes));
  CK(cudaMalloc(&db, bytes));
  CK(cudaMalloc(&dc, bytes));
  size_t free_b = 0, total_b = 0;
  CK(cudaMemGetInfo(&free_b, &total_b));
  EXPECT(free_b <= total_b && total_b >= 3 * bytes);

  CK(cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice));
  // 0xff bytes everywhere first: every element the kernel misses shows.
  CK(cudaMemset(dc, 0xff, bytes));
  vecAdd<<<(n + 255) / 256, 256>>>(da, db, dc, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
  rt_compare("c", c.data(), want.data(), n);

  // A second launch on part of the vector, reading c back through a
  // device-to-device copy and cudaMemcpyDefault.
  const int half = n / 2;
  vecAdd<<<(half + 127) / 128, 128>>>(dc, da, db, half);
  CK_LAUNCH();
  CK(cudaMemcpy(da, db, bytes, cudaMemcpyDeviceToDevice));
  std::vector<float> got(n);
  CK(cudaMemcpy(got.data(), da, bytes, cudaMemcpyDefault));
  for (int i = 0; i < n; i++) want[i] = i < half ? (a[i] + b[i]) + a[i] : b[i];
  rt_compare("second", got.data(), want.data(), n);

  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dc));
  CK(cudaFree(nullptr));
  return rt_finish("rt_vector_add");
}
