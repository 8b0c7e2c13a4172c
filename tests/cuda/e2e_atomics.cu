// Kernels for tests/integration/test_kernels.c (see e2e_basic.cu): warp
// shuffles and atomics. Inputs are chosen so that every sum is exact in
// its type whatever order the atomics land in, so the CPU reference can be
// compared bit for bit.

// Each warp sums its 32 values with __shfl_down_sync and stores the sum
// (warpSums[global warp]); lane 0 then adds it to *total, and the float
// copy (integer-valued inputs: exact) to *ftotal. Lane l of each warp also
// records what __shfl_xor_sync(., l ^ 5) and __shfl_up_sync(., 3) gave it.
extern "C" __global__ void shuffleReduce(const int *in, int n, int *warpSums,
                                         int *total, float *ftotal,
                                         int *xorOut, int *upOut) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  int v = i < n ? in[i] : 0;
  xorOut[i] = __shfl_xor_sync(0xffffffffu, v, 5);
  upOut[i] = __shfl_up_sync(0xffffffffu, v, 3);
  int s = v;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) {
    warpSums[i >> 5] = s;
    atomicAdd(total, s);
    atomicAdd(ftotal, (float)s);
  }
}

// A float max by compare-and-swap on the bit pattern.
__device__ float atomicMaxFloat(float *addr, float v) {
  int *a = (int *)addr;
  int old = *a, assumed;
  do {
    assumed = old;
    if (__int_as_float(assumed) >= v) break;
    old = atomicCAS(a, assumed, __float_as_int(v));
  } while (old != assumed);
  return __int_as_float(old);
}

// A double multiply by 64-bit compare-and-swap (no such atomic exists).
__device__ double atomicMulDouble(double *addr, double v) {
  unsigned long long *a = (unsigned long long *)addr;
  unsigned long long old = *a, assumed;
  do {
    assumed = old;
    old = atomicCAS(a, assumed,
                    __double_as_longlong(__longlong_as_double(assumed) * v));
  } while (old != assumed);
  return __longlong_as_double(old);
}

// Histograms of key[i] (0..nbins-1) with every kind of atomic:
//  - counts: u32 atomicAdd through a block-local shared histogram, then
//    added to the global one;
//  - gcounts: u32 atomicAdd straight to global memory;
//  - fsum: f32 atomicAdd of wf[i] (multiples of 1/4: exact);
//  - dsum: f64 atomicAdd of wd[i] (multiples of 2^-20: exact);
//  - fmax: CAS-loop float max of wf[i];
//  - dprod: CAS-loop double product of pm[i] (powers of two: exact);
//  - imin/imax: atomicMin/atomicMax of (int)(i * 7919 % 10007) - 5000;
//  - bor/band/bxor: atomicOr/And/Xor of 1 << (i % 32) and its complement;
//  - exch: atomicExch, the last value stored (checked to be one of them).
extern "C" __global__ void histograms(const int *key, const float *wf,
                                      const double *wd, const double *pm,
                                      int n, int nbins, unsigned *counts,
                                      unsigned *gcounts, float *fsum,
                                      double *dsum, float *fmax,
                                      double *dprod, int *imin, int *imax,
                                      unsigned *bor, unsigned *band,
                                      unsigned *bxor, int *exch) {
  __shared__ unsigned local[256];
  for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x) {
    int k = key[i];
    atomicAdd(&local[k], 1u);
    atomicAdd(&gcounts[k], 1u);
    atomicAdd(&fsum[k], wf[i]);
    atomicAdd(&dsum[k], wd[i]);
    atomicMaxFloat(&fmax[k], wf[i]);
    atomicMulDouble(&dprod[k], pm[i]);
    int h = (int)((long long)i * 7919 % 10007) - 5000;
    atomicMin(&imin[k], h);
    atomicMax(&imax[k], h);
    atomicOr(&bor[k], 1u << (i % 32));
    atomicAnd(&band[k], ~(1u << (i % 32)));
    atomicXor(&bxor[k], 1u << (i % 32));
    atomicExch(&exch[k], i);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < nbins; b += blockDim.x)
    if (local[b]) atomicAdd(&counts[b], local[b]);
}
