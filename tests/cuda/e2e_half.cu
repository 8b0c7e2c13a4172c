// Kernels for tests/integration/test_kernels.c (see e2e_basic.cu): __half
// and __half2 from cuda_fp16.h. The host passes and reads binary16 values
// as their 16-bit patterns and computes the references with its own
// round-to-nearest-even binary16 rounding of the exact results.
#include <cuda_fp16.h>

// Conversions: f[i] -> half (round to nearest even) -> float again, and
// the four other rounding modes of float -> half.
extern "C" __global__ void halfConvert(const float *f, unsigned short *hrn,
                                       float *back, unsigned short *hrz,
                                       unsigned short *hrd,
                                       unsigned short *hru, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  __half h = __float2half_rn(f[i]);
  hrn[i] = __half_as_ushort(h);
  back[i] = __half2float(h);
  hrz[i] = __half_as_ushort(__float2half_rz(f[i]));
  hrd[i] = __half_as_ushort(__float2half_rd(f[i]));
  hru[i] = __half_as_ushort(__float2half_ru(f[i]));
}

// Scalar arithmetic and comparisons on a[i], b[i], c[i]:
// out[i*4 + 0..3] = a+b, a*b, fma(a,b,c), a-b (each rounded once);
// cmp[i] bit 0: a<b, 1: a>b, 2: a==b, 3: a<=b, 4: a!=b (ordered),
// 5: __hmax(a,b)==a, 6: __hisnan(a).
extern "C" __global__ void halfScalar(const __half *a, const __half *b,
                                      const __half *c, __half *out,
                                      unsigned *cmp, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  __half x = a[i], y = b[i], z = c[i];
  out[i * 4 + 0] = __hadd(x, y);
  out[i * 4 + 1] = __hmul(x, y);
  out[i * 4 + 2] = __hfma(x, y, z);
  out[i * 4 + 3] = __hsub(x, y);
  unsigned m = 0;
  m |= __hlt(x, y) ? 1u : 0u;
  m |= __hgt(x, y) ? 2u : 0u;
  m |= __heq(x, y) ? 4u : 0u;
  m |= __hle(x, y) ? 8u : 0u;
  m |= __hne(x, y) ? 16u : 0u;
  m |= __heq(__hmax(x, y), x) ? 32u : 0u;
  m |= __hisnan(x) ? 64u : 0u;
  cmp[i] = m;
}

// The same on pairs: out[i*3 + 0..2] = __hadd2, __hmul2, __hfma2 of
// a[i], b[i], c[i]; lt[i] = __hlt2 (1.0 or 0.0 per half), and
// both[i] = __hblt2 (true when both halves compare less).
extern "C" __global__ void half2Ops(const __half2 *a, const __half2 *b,
                                    const __half2 *c, __half2 *out,
                                    __half2 *lt, unsigned *both, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  __half2 x = a[i], y = b[i], z = c[i];
  out[i * 3 + 0] = __hadd2(x, y);
  out[i * 3 + 1] = __hmul2(x, y);
  out[i * 3 + 2] = __hfma2(x, y, z);
  lt[i] = __hlt2(x, y);
  both[i] = __hblt2(x, y) ? 1u : 0u;
}

// A small dot product accumulated in half2 (each step one __hfma2), then
// the two halves added in float: the kind of loop a real kernel runs.
extern "C" __global__ void half2Dot(const __half2 *a, const __half2 *b,
                                    float *out, int len) {
  __half2 acc = __float2half2_rn(0.0f);
  const __half2 *pa = a + (long long)threadIdx.x * len;
  const __half2 *pb = b + (long long)threadIdx.x * len;
  for (int k = 0; k < len; k++) acc = __hfma2(pa[k], pb[k], acc);
  out[threadIdx.x] = __low2float(acc) + __high2float(acc);
}
