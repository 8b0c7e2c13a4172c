// Kernels for tests/integration/test_kernels.c (see e2e_basic.cu): the
// CUDA maths library as nvcc inlines it (polynomials, range reduction,
// the slow path of sin/cos for huge arguments), compared on the host with
// a higher-precision reference within the ULP bounds of the CUDA
// Programming Guide (see the table in test_kernels.c).
//
// For each input x[i] (and second input y[i] for pow) the kernels write
// one result per function, out[i * NF + f], in the order of the lists
// below. Built with nvcc's defaults: -prec-div=true, -prec-sqrt=true,
// -ftz=false, no fast maths (only __expf is the intrinsic on purpose).

#define NF_F32 10
extern "C" __global__ void mathF32(const float *x, const float *y, float *out,
                                   int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = x[i], w = y[i];
  float *o = out + (long long)i * NF_F32;
  o[0] = sinf(v);
  o[1] = cosf(v);
  o[2] = expf(v);
  o[3] = logf(fabsf(v));
  o[4] = powf(fabsf(v), w);
  o[5] = sqrtf(fabsf(v));
  o[6] = tanhf(v);
  o[7] = erff(v);
  o[8] = rsqrtf(fabsf(v));
  o[9] = __expf(v);
}

#define NF_F64 8
extern "C" __global__ void mathF64(const double *x, const double *y,
                                   double *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  double v = x[i], w = y[i];
  double *o = out + (long long)i * NF_F64;
  o[0] = sin(v);
  o[1] = cos(v);
  o[2] = exp(v);
  o[3] = log(fabs(v));
  o[4] = pow(fabs(v), w);
  o[5] = sqrt(fabs(v));
  o[6] = tanh(v);
  o[7] = erf(v);
}
