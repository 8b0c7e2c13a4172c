// Runtime API: a shared-memory tiled matrix product (128x128) timed with
// CUDA events. The inputs are small integers, so every product and sum is
// exact in float and the result must equal the CPU's bit for bit.
#include <vector>

#include "rt_check.h"

#define TILE 16

__global__ void matMul(const float *A, const float *B, float *C, int n) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int row = blockIdx.y * TILE + threadIdx.y;
  int col = blockIdx.x * TILE + threadIdx.x;
  float sum = 0.0f;
  for (int t = 0; t < n; t += TILE) {
    As[threadIdx.y][threadIdx.x] =
        row < n && t + threadIdx.x < n ? A[row * n + t + threadIdx.x] : 0.0f;
    Bs[threadIdx.y][threadIdx.x] =
        col < n && t + threadIdx.y < n ? B[(t + threadIdx.y) * n + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++) sum += As[threadIdx.y][k] * Bs[k][threadIdx.x];
    __syncthreads();
  }
  if (row < n && col < n) C[row * n + col] = sum;
}

int main() {
  const int n = 128;
  const size_t bytes = (size_t)n * n * sizeof(float);
  std::vector<float> A(n * n), B(n * n), C(n * n), want(n * n);
  for (int i = 0; i < n * n; i++) {
    A[i] = (float)((i * 7) % 17 - 8);
    B[i] = (float)((i * 5) % 13 - 6);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      float s = 0;
      for (int k = 0; k < n; k++) s += A[i * n + k] * B[k * n + j];
      want[i * n + j] = s;
    }

  float *dA, *dB, *dC;
  CK(cudaMalloc(&dA, bytes));
  CK(cudaMalloc(&dB, bytes));
  CK(cudaMalloc(&dC, bytes));
  CK(cudaMemcpy(dA, A.data(), bytes, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, B.data(), bytes, cudaMemcpyHostToDevice));

  cudaEvent_t start, stop;
  CK(cudaEventCreate(&start));
  CK(cudaEventCreate(&stop));
  dim3 block(TILE, TILE), grid((n + TILE - 1) / TILE, (n + TILE - 1) / TILE);
  CK(cudaEventRecord(start));
  matMul<<<grid, block>>>(dA, dB, dC, n);
  CK_LAUNCH();
  CK(cudaEventRecord(stop));
  CK(cudaEventSynchronize(stop));
  CK(cudaEventQuery(stop));
  float ms = -1.0f;
  CK(cudaEventElapsedTime(&ms, start, stop));
  printf("matMul %dx%d: %.3f ms\n", n, n, ms);
  EXPECT(ms > 0.0f);
  EXPECT(ms < 600000.0f);

  CK(cudaMemcpy(C.data(), dC, bytes, cudaMemcpyDeviceToHost));
  rt_compare("C", C.data(), want.data(), (size_t)n * n);

  // An event made without timing cannot be timed.
  cudaEvent_t bare;
  CK(cudaEventCreateWithFlags(&bare, cudaEventDisableTiming));
  CK(cudaEventRecord(bare));
  CK(cudaEventSynchronize(bare));
  float ignored;
  EXPECT_EQ(cudaEventElapsedTime(&ignored, start, bare),
            cudaErrorInvalidResourceHandle);
  CK(cudaEventDestroy(bare));
  CK(cudaEventDestroy(start));
  CK(cudaEventDestroy(stop));
  CK(cudaFree(dA));
  CK(cudaFree(dB));
  CK(cudaFree(dC));
  return rt_finish("rt_matrix_mul");
}
