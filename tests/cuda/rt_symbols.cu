// Runtime API: cudaMemcpyToSymbol / cudaMemcpyFromSymbol on __constant__
// and __device__ variables, whole and at offsets, synchronous and
// asynchronous; cudaGetSymbolAddress and cudaGetSymbolSize; initialised
// device variables; kernels that read and write them. Also built with
// -rdc=true (relocatable device code, linked by nvcc's device link step).
#include <vector>

#include "rt_check.h"

__constant__ float c_coef[16];
__constant__ int c_bias = 7;
__device__ int d_table[64];
__device__ int d_init[4] = {11, 22, 33, 44};
__device__ unsigned long long d_counter;

// out[i] = in[i] * c_coef[i % 16] + c_bias + d_table[i % 64]
__global__ void apply(const float *in, float *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    out[i] = in[i] * c_coef[i % 16] + (float)(c_bias + d_table[i % 64]);
    atomicAdd(&d_counter, 1ULL);
  }
}

// d_table[i] = d_table[i] * 2 + d_init[i % 4]
__global__ void update_table() {
  int i = threadIdx.x;
  if (i < 64) d_table[i] = d_table[i] * 2 + d_init[i % 4];
}

int main() {
  // Initialised variables hold their initial values.
  int init[4] = {0, 0, 0, 0}, bias = 0;
  CK(cudaMemcpyFromSymbol(init, d_init, sizeof init));
  for (int i = 0; i < 4; i++) EXPECT_EQ(init[i], 11 * (i + 1));
  CK(cudaMemcpyFromSymbol(&bias, c_bias, sizeof bias));
  EXPECT_EQ(bias, 7);

  size_t size = 0;
  CK(cudaGetSymbolSize(&size, c_coef));
  EXPECT_EQ(size, 16 * sizeof(float));
  CK(cudaGetSymbolSize(&size, d_table));
  EXPECT_EQ(size, 64 * sizeof(int));
  void *table_addr = nullptr;
  CK(cudaGetSymbolAddress(&table_addr, d_table));
  EXPECT(table_addr != nullptr);

  // __constant__: whole, then the second half again at an offset.
  float coef[16];
  for (int i = 0; i < 16; i++) coef[i] = (float)(i + 1) * 0.5f;
  CK(cudaMemcpyToSymbol(c_coef, coef, sizeof coef));
  float upper[8];
  for (int i = 0; i < 8; i++) upper[i] = -(float)(i + 1);
  CK(cudaMemcpyToSymbol(c_coef, upper, sizeof upper, 8 * sizeof(float)));
  for (int i = 0; i < 8; i++) coef[8 + i] = upper[i];
  int new_bias = -3;
  CK(cudaMemcpyToSymbol(c_bias, &new_bias, sizeof new_bias));

  // __device__: whole, then a part at an offset asynchronously on a stream,
  // then a part of it read back at an offset.
  int table[64];
  for (int i = 0; i < 64; i++) table[i] = i * i;
  CK(cudaMemcpyToSymbol(d_table, table, sizeof table));
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  int patch[5] = {-100, -200, -300, -400, -500};
  CK(cudaMemcpyToSymbolAsync(d_table, patch, sizeof patch, 20 * sizeof(int),
                             cudaMemcpyHostToDevice, st));
  CK(cudaStreamSynchronize(st));
  for (int i = 0; i < 5; i++) table[20 + i] = patch[i];
  int part[10];
  CK(cudaMemcpyFromSymbol(part, d_table, sizeof part, 18 * sizeof(int)));
  rt_compare("d_table[18..27]", part, table + 18, 10);

  // The symbol's address is ordinary device memory.
  int via_addr[64];
  CK(cudaMemcpy(via_addr, table_addr, sizeof via_addr, cudaMemcpyDeviceToHost));
  rt_compare("d_table by address", via_addr, table, 64);

  const int n = 1000;
  std::vector<float> in(n), out(n), want(n);
  for (int i = 0; i < n; i++) {
    in[i] = (float)(i % 50) - 25.0f;
    want[i] = in[i] * coef[i % 16] + (float)(new_bias + table[i % 64]);
  }
  float *din, *dout;
  CK(cudaMalloc(&din, n * sizeof(float)));
  CK(cudaMalloc(&dout, n * sizeof(float)));
  CK(cudaMemcpy(din, in.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  unsigned long long zero = 0;
  CK(cudaMemcpyToSymbol(d_counter, &zero, sizeof zero));
  apply<<<(n + 127) / 128, 128>>>(din, dout, n);
  CK_LAUNCH();
  CK(cudaMemcpy(out.data(), dout, n * sizeof(float), cudaMemcpyDeviceToHost));
  rt_compare("apply", out.data(), want.data(), n);
  unsigned long long counter = 0;
  CK(cudaMemcpyFromSymbol(&counter, d_counter, sizeof counter));
  EXPECT_EQ(counter, n);

  // A kernel writes the table; read back asynchronously at an offset.
  update_table<<<1, 64>>>();
  CK_LAUNCH();
  for (int i = 0; i < 64; i++) table[i] = table[i] * 2 + 11 * (i % 4 + 1);
  int tail[32];
  CK(cudaMemcpyFromSymbolAsync(tail, d_table, sizeof tail, 32 * sizeof(int),
                               cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  rt_compare("d_table after kernel", tail, table + 32, 32);

  // Past the end of the variable: refused.
  EXPECT_EQ(cudaMemcpyToSymbol(c_coef, coef, sizeof coef, 4), cudaErrorInvalidValue);
  cudaGetLastError();

  CK(cudaStreamDestroy(st));
  CK(cudaFree(din));
  CK(cudaFree(dout));
  return rt_finish("rt_symbols");
}
