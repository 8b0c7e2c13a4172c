// cuBLAS through the pool: the routines whose kernels the emulated device
// runs (cuBLAS's own kernels, from their compute_120 PTX), each checked
// against the host: level 1 (axpy, dot, scal, asum, nrm2, iamax), level 2
// (gemv) and the GEMM shapes cuBLAS serves with its own kernels rather than
// cuBLASLt's (k = 1, n = 1, n = 2, 8x8x8). General SGEMM goes to cuBLASLt,
// whose kernels for a 7.5 device are machine code only: rt_cublas_sgemm.cu.
// Inputs are small integers and scalars powers of two, so every result but
// nrm2's is exact whatever order the library sums in. Built with -lcublas.
#include <cublas_v2.h>

#include <cmath>
#include <vector>

#include "rt_check.h"

#define CKB(call)                                                          \
  do {                                                                     \
    cublasStatus_t ckb_s_ = (call);                                        \
    if (ckb_s_ != CUBLAS_STATUS_SUCCESS) {                                 \
      fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", __FILE__, __LINE__,   \
              #call, cublasGetStatusString(ckb_s_), (int)ckb_s_);          \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

static float *to_device(const std::vector<float> &h) {
  float *d = nullptr;
  CK(cudaMalloc(&d, h.size() * sizeof(float)));
  CKB(cublasSetVector((int)h.size(), sizeof(float), h.data(), 1, d, 1));
  return d;
}

static std::vector<float> to_host(const float *d, size_t n) {
  std::vector<float> h(n);
  CKB(cublasGetVector((int)n, sizeof(float), d, 1, h.data(), 1));
  return h;
}

static void level1(cublasHandle_t h) {
  const int n = 1000;
  std::vector<float> x(n), y(n), want(n);
  for (int i = 0; i < n; i++) {
    x[i] = (float)((i * 5) % 13 - 6);
    y[i] = (float)(i % 3);
  }
  float *dx = to_device(x), *dy = to_device(y);

  const float a = 4.0f;
  CKB(cublasSaxpy(h, n, &a, dx, 1, dy, 1));
  for (int i = 0; i < n; i++) want[i] = a * x[i] + y[i];
  std::vector<float> got = to_host(dy, n);
  rt_compare("saxpy", got.data(), want.data(), n);

  float dot = 0;
  CKB(cublasSdot(h, n, dx, 1, dy, 1, &dot));
  double wdot = 0, wasum = 0, wnrm = 0;
  int wmax = 0;
  for (int i = 0; i < n; i++) {
    wdot += (double)x[i] * want[i];
    wasum += fabs(x[i]);
    wnrm += (double)x[i] * x[i];
    if (fabs(x[i]) > fabs(x[wmax])) wmax = i;
  }
  EXPECT(dot == (float)wdot);

  float asum = 0, nrm = 0;
  int imax = 0;
  CKB(cublasSasum(h, n, dx, 1, &asum));
  CKB(cublasSnrm2(h, n, dx, 1, &nrm));
  CKB(cublasIsamax(h, n, dx, 1, &imax));
  EXPECT(asum == (float)wasum);
  EXPECT_EQ(imax, wmax + 1);  // 1-based, the first of the largest
  EXPECT(fabs(nrm - sqrt(wnrm)) <= 1e-4 * sqrt(wnrm));

  const float two = 2.0f;
  CKB(cublasSscal(h, n, &two, dx, 1));
  for (int i = 0; i < n; i++) want[i] = 2.0f * x[i];
  got = to_host(dx, n);
  rt_compare("sscal", got.data(), want.data(), n);
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  printf("level 1: saxpy sdot sasum snrm2 isamax sscal checked\n");
}

static void gemv(cublasHandle_t h) {
  const int m = 100, n = 60;
  std::vector<float> A(m * n), x(n), y(m), want(m);
  for (int i = 0; i < m * n; i++) A[i] = (float)((i * 7) % 11 - 5);
  for (int i = 0; i < n; i++) x[i] = (float)(i % 4 - 1);
  for (int i = 0; i < m; i++) y[i] = (float)(i % 3);
  const float alpha = 2.0f, beta = 0.5f;
  for (int i = 0; i < m; i++) {
    float s = 0;
    for (int j = 0; j < n; j++) s += A[j * m + i] * x[j];
    want[i] = alpha * s + beta * y[i];
  }
  float *dA = to_device(A), *dx = to_device(x), *dy = to_device(y);
  CKB(cublasSgemv(h, CUBLAS_OP_N, m, n, &alpha, dA, m, dx, 1, &beta, dy, 1));
  std::vector<float> got = to_host(dy, m);
  rt_compare("sgemv", got.data(), want.data(), m);
  CK(cudaFree(dA));
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  printf("level 2: sgemv %dx%d checked\n", m, n);
}

static void gemm(cublasHandle_t h, int m, int n, int k) {
  std::vector<float> A(m * k), B(k * n), C(m * n), want(m * n);
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
  float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
  CKB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, m, dB, k,
                  &beta, dC, m));
  std::vector<float> got = to_host(dC, (size_t)m * n);
  char what[64];
  snprintf(what, sizeof what, "sgemm %dx%dx%d", m, n, k);
  rt_compare(what, got.data(), want.data(), got.size());
  CK(cudaFree(dA));
  CK(cudaFree(dB));
  CK(cudaFree(dC));
  printf("level 3: %s checked\n", what);
}

int main() {
  cublasHandle_t h;
  CKB(cublasCreate(&h));
  level1(h);
  gemv(h);
  gemm(h, 64, 32, 1);
  gemm(h, 64, 1, 64);
  gemm(h, 64, 2, 64);
  gemm(h, 8, 8, 8);
  CKB(cublasDestroy(h));
  return rt_finish("rt_cublas_blas");
}
