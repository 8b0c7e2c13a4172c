// cuBLAS through the pool: a small SGEMM (C = alpha * A * B + beta * C,
// column-major, 64x48 times 48x32) checked against the host's product. The
// inputs are small integers and alpha, beta powers of two, so the result is
// exact whatever order the library sums in. Built with -lcublas.
#include <cublas_v2.h>
#include <vector>

#include "rt_check.h"

#define CKB(call)                                                          \
  do {                                                                     \
    cublasStatus_t ckb_s_ = (call);                                        \
    if (ckb_s_ != CUBLAS_STATUS_SUCCESS) {                                 \
      cudaError_t ckb_e_ = cudaGetLastError();                             \
      fprintf(stderr, "%s:%d: %s failed: %s (%d); last CUDA error: %s\n",  \
              __FILE__, __LINE__, #call, cublasGetStatusString(ckb_s_),    \
              (int)ckb_s_, cudaGetErrorString(ckb_e_));                    \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

int main() {
  const int m = 64, k = 48, n = 32;
  std::vector<float> A(m * k), B(k * n), C(m * n), want(m * n), got(m * n);
  for (int i = 0; i < m * k; i++) A[i] = (float)((i * 7) % 11 - 5);
  for (int i = 0; i < k * n; i++) B[i] = (float)((i * 3) % 9 - 4);
  for (int i = 0; i < m * n; i++) C[i] = (float)(i % 5);
  const float alpha = 2.0f, beta = 0.5f;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      float s = 0;
      for (int l = 0; l < k; l++) s += A[l * m + i] * B[j * k + l];
      want[j * m + i] = alpha * s + beta * C[j * m + i];
    }

  cublasHandle_t h;
  CKB(cublasCreate(&h));
  int version = 0;
  CKB(cublasGetVersion(h, &version));
  printf("cuBLAS version %d\n", version);
  float *dA, *dB, *dC;
  CK(cudaMalloc(&dA, A.size() * sizeof(float)));
  CK(cudaMalloc(&dB, B.size() * sizeof(float)));
  CK(cudaMalloc(&dC, C.size() * sizeof(float)));
  CKB(cublasSetMatrix(m, k, sizeof(float), A.data(), m, dA, m));
  CKB(cublasSetMatrix(k, n, sizeof(float), B.data(), k, dB, k));
  CKB(cublasSetMatrix(m, n, sizeof(float), C.data(), m, dC, m));
  CKB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, m, dB, k,
                  &beta, dC, m));
  CK(cudaDeviceSynchronize());
  CKB(cublasGetMatrix(m, n, sizeof(float), dC, m, got.data(), m));
  rt_compare("C", got.data(), want.data(), got.size());
  CKB(cublasDestroy(h));
  CK(cudaFree(dA));
  CK(cudaFree(dB));
  CK(cudaFree(dC));
  return rt_finish("rt_cublas_sgemm");
}
