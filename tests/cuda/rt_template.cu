// Runtime API: one template kernel instantiated for int, float and double
// (three mangled names in one fatbin), plus a template on a non-type
// parameter. The host repeats the device's roundings: nvcc contracts
// a * x + y into one fused multiply-add for float and double.
#include <cmath>
#include <vector>

#include "rt_check.h"

template <typename T>
__global__ void axpy(T a, const T *x, T *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

template <int Shift>
__global__ void shift_left(unsigned *v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) v[i] <<= Shift;
}

static int host_axpy(int a, int x, int y) { return a * x + y; }
static float host_axpy(float a, float x, float y) { return fmaf(a, x, y); }
static double host_axpy(double a, double x, double y) { return fma(a, x, y); }

template <typename T>
static void run(const char *name, T a, int n) {
  std::vector<T> x(n), y(n), want(n), got(n);
  for (int i = 0; i < n; i++) {
    x[i] = (T)(i % 101) / (T)4 - (T)3;
    y[i] = (T)((i * 13) % 37) * (T)3 + (T)1;
    want[i] = host_axpy(a, x[i], y[i]);
  }
  T *dx, *dy;
  CK(cudaMalloc(&dx, n * sizeof(T)));
  CK(cudaMalloc(&dy, n * sizeof(T)));
  CK(cudaMemcpy(dx, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dy, y.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  axpy<T><<<(n + 255) / 256, 256>>>(a, dx, dy, n);
  CK_LAUNCH();
  CK(cudaMemcpy(got.data(), dy, n * sizeof(T), cudaMemcpyDeviceToHost));
  rt_compare(name, got.data(), want.data(), n);
  CK(cudaFree(dx));
  CK(cudaFree(dy));
}

template <int Shift>
static void run_shift(int n) {
  std::vector<unsigned> v(n), got(n);
  for (int i = 0; i < n; i++) v[i] = 0x9e3779b9u * (unsigned)i;
  unsigned *dv;
  CK(cudaMalloc(&dv, n * sizeof(unsigned)));
  CK(cudaMemcpy(dv, v.data(), n * sizeof(unsigned), cudaMemcpyHostToDevice));
  shift_left<Shift><<<(n + 127) / 128, 128>>>(dv, n);
  CK_LAUNCH();
  CK(cudaMemcpy(got.data(), dv, n * sizeof(unsigned), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++) v[i] <<= Shift;
  char name[32];
  snprintf(name, sizeof name, "shift_left<%d>", Shift);
  rt_compare(name, got.data(), v.data(), n);
  CK(cudaFree(dv));
}

int main() {
  run<int>("axpy<int>", -7, 20000);
  run<float>("axpy<float>", 0.1f, 20000);
  run<double>("axpy<double>", 1.0 / 3.0, 20000);
  run_shift<3>(5000);
  run_shift<17>(5000);

  // Each instantiation is its own kernel, with its own attributes.
  cudaFuncAttributes fi, fd;
  CK(cudaFuncGetAttributes(&fi, axpy<int>));
  CK(cudaFuncGetAttributes(&fd, axpy<double>));
  EXPECT(fi.maxThreadsPerBlock > 0 && fd.maxThreadsPerBlock > 0);
  return rt_finish("rt_template");
}
