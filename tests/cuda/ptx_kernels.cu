// Kernels for tests/unit/test_ptx.c: compiled to PTX by nvcc at build
// time (tests/unit/meson.build) and run through the PTX engine, whose
// results the test compares with a CPU reference. extern "C" keeps the
// names unmangled.
#include <cooperative_groups.h>
namespace cg = cooperative_groups;
extern "C" __global__ void vectorAdd(const float *a, const float *b, float *c, int n) {
  int i = blockDim.x * blockIdx.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void daxpy(int n, double a, const double *x, double *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
#define TILE 16
extern "C" __global__ void matrixMul(float *C, const float *A, const float *B, int wA, int wB) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int bx = blockIdx.x, by = blockIdx.y, tx = threadIdx.x, ty = threadIdx.y;
  int aBegin = wA * TILE * by, aEnd = aBegin + wA - 1, bBegin = TILE * bx;
  float c = 0;
  for (int a = aBegin, b = bBegin; a <= aEnd; a += TILE, b += TILE * wB) {
    As[ty][tx] = A[a + wA * ty + tx];
    Bs[ty][tx] = B[b + wB * ty + tx];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TILE; ++k) c += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  C[wB * TILE * by + TILE * bx + wB * ty + tx] = c;
}
extern "C" __global__ void reduceShfl(const float *in, float *out, int n) {
  extern __shared__ float warpSums[];
  float v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) v += in[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) warpSums[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < (blockDim.x >> 5) ? warpSums[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    if (lane == 0) atomicAdd(out, v);
  }
}
extern "C" __global__ void histogram(const unsigned char *data, unsigned *bins, int n) {
  __shared__ unsigned sb[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) sb[i] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) atomicAdd(&sb[data[i]], 1u);
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x) atomicAdd(&bins[i], sb[i]);
}
extern "C" __global__ void gridStride64(const double *x, double *y, long long n, double s) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
    y[i] = x[i] * s + (double)(i & 7);
}
struct P { float a, b; int n; double d; float *p; int q[4]; };
extern "C" __global__ void structArg(P p, int *out) {
  out[threadIdx.x] = (int)(p.a + p.b) + p.n + (int)p.d + p.q[threadIdx.x & 3];
  p.p[threadIdx.x] = p.a;
}
extern "C" __global__ void ballot(int *out) {
  unsigned b = __ballot_sync(0xffffffff, threadIdx.x & 1);
  out[threadIdx.x] = b + __popc(b) + __clz(threadIdx.x);
}

// A simple counted loop, for measuring interpreter speed.
extern "C" __global__ void spin(unsigned *out, int iters) {
  unsigned x = threadIdx.x;
  for (int i = 0; i < iters; i++) x = x * 1664525u + 1013904223u;
  out[blockIdx.x * blockDim.x + threadIdx.x] = x;
}

// Out-of-range store: the engine must stop with an illegal-address error.
extern "C" __global__ void oob(int *p, long long off) { p[off] = 1; }

// Generic pointers into shared and local memory.
extern "C" __global__ void generic(const int *in, int *out, int n) {
  __shared__ int s[64];
  int loc[8];
  int *ps = s, *pl = loc;
  int t = threadIdx.x;
  ps[t] = in[t];
  for (int i = 0; i < 8; i++) pl[i] = in[(t + i) % n];
  __syncthreads();
  int acc = 0;
  int k = in[t] & 7;
  acc = pl[k] + ps[(t + 1) % blockDim.x];
  out[t] = acc;
}

// The CUDA math library: polynomial paths, carry chains (mad.lo.cc, addc)
// and, for large arguments of sin/cos, calls of its internal .func
// __internal_trig_reduction_slowpathd with local arrays.
extern "C" __global__ void mathf(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float v = x[i];
    y[i * 8 + 0] = sinf(v);
    y[i * 8 + 1] = cosf(v);
    y[i * 8 + 2] = expf(v * 0.1f);
    y[i * 8 + 3] = logf(fabsf(v) + 1.0f);
    y[i * 8 + 4] = powf(fabsf(v), 1.3f);
    y[i * 8 + 5] = sqrtf(fabsf(v)) + tanhf(v * 0.01f);
    y[i * 8 + 6] = erff(v * 0.001f);
    y[i * 8 + 7] = atan2f(v, 1.5f);
  }
}
extern "C" __global__ void mathd(const double *x, double *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    double v = x[i];
    y[i * 6 + 0] = sin(v);
    y[i * 6 + 1] = cos(v);
    y[i * 6 + 2] = exp(v * 1e-3);
    y[i * 6 + 3] = log(fabs(v) + 1.0);
    y[i * 6 + 4] = pow(fabs(v), 1.3);
    y[i * 6 + 5] = v / 3.0 + sqrt(fabs(v));
  }
}

// A device function the compiler must call rather than inline.
__device__ __noinline__ float scaleAdd(float a, float b, int k) {
  return a * (float)k + b;
}
extern "C" __global__ void callFunc(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = (i & 1) ? scaleAdd(x[i], 1.0f, i) : x[i];
}

// Cooperative-groups tiles: shfl and vote through the cg API.
extern "C" __global__ void cgReduce(const int *in, int *out) {
  cg::thread_block b = cg::this_thread_block();
  cg::thread_block_tile<32> t = cg::tiled_partition<32>(b);
  int v = in[b.thread_rank()];
  for (int o = t.size() / 2; o > 0; o /= 2) v += t.shfl_down(v, o);
  if (t.thread_rank() == 0) atomicAdd(out, v);
  cg::thread_block_tile<8> t8 = cg::tiled_partition<8>(b);
  int w = t8.shfl(in[b.thread_rank()], 3);
  out[1 + b.thread_rank()] = w + t8.any(in[b.thread_rank()] > 5) * 1000;
}

// A naive spin lock among the lanes of a warp: the lane that wins waits
// at a higher PC than the losers' loop, which lowest-PC-first alone would
// run forever.
extern "C" __global__ void spinLock(int *lock, int *counter) {
  while (atomicCAS(lock, 0, 1) != 0) {
  }
  int v = *(volatile int *)counter;
  *(volatile int *)counter = v + 1;
  __threadfence();
  atomicExch(lock, 0);
}

// A lock among the lanes of a warp followed by a software barrier of the
// warp (every lane waits until all have been through the lock): the lock
// holder sits between the spinners and the lanes already waiting at the
// end, so neither lowest- nor highest-PC-first lets it run. Completes on
// a GPU with independent thread scheduling, and here.
extern "C" __global__ void lockThenWait(int *lock, int *counter, int *done) {
  while (atomicCAS(lock, 0, 1) != 0) {
  }
  int v = *(volatile int *)counter;
  *(volatile int *)counter = v + 1;
  __threadfence();
  atomicExch(lock, 0);
  atomicAdd(done, 1);
  while (atomicAdd(done, 0) < (int)(blockDim.x * gridDim.x)) {
  }
}

// A per-lane spin lock whose holder then waits for its whole warp at a
// warp-synchronous vote: the other lanes spin on the lock and never get
// there, so the warp can never finish (a GPU hangs too). The engine must
// report it instead of spinning for ever.
extern "C" __global__ void lockDeadlock(int *lock, int *out) {
  while (atomicCAS(lock, 0, 1) != 0) {
  }
  out[threadIdx.x] = __ballot_sync(0xffffffff, 1);
  atomicExch(lock, 0);
}

// One warp of the block spins on a flag that another warp sets: warps of
// a block must take turns.
extern "C" __global__ void warpFlag(int *flag, int *out) {
  if (threadIdx.x < 32) {
    while (*(volatile int *)flag == 0) {
    }
    out[threadIdx.x] = *(volatile int *)flag;
  } else if (threadIdx.x == 32) {
    *(volatile int *)flag = 7;
  }
}

// Device printf: every conversion the tests check, against the host's
// printf of the same format and values.
extern "C" __global__ void printfAll(int i, long long ll, unsigned u, float f,
                                     double d, const char *s) {
  printf("i=%d ll=%lld u=%u x=%x X=%#X o=%o c=%c s=%s lit=%s %%\n", i, ll, u,
         u, u, u, 'Z', s, "lit");
  printf("f=%.3f e=%e E=%.2E g=%g G=%G a=%a A=%A F=%F\n", f, d, d, d, d, d,
         d, d);
  printf("[%5d|%-5d|%05d|%+d|% d|%*d|%-*d|%.*f|%.0f|%#.0f]\n", i, i, i, i, i,
         7, i, 6, i, 2, d, d, d);
  printf("[%hhd|%hd|%hu|%ld|%lu|%zu|%lx|%10.4e|%-12.3g|%.10s|%8s]\n",
         (char)i, (short)i, (unsigned short)u, (long)ll, (unsigned long)ll,
         (size_t)ll, (unsigned long)ll, d, d, s, "ab");
  printf("p=%p null=%p\n", (void *)s, (void *)0);
}

// Many threads printing one line each, and a format without arguments.
extern "C" __global__ void printfMany(int tag) {
  printf("thread %d of block %d tag %d\n", threadIdx.x, blockIdx.x, tag);
  if (threadIdx.x == 0) printf("block done\n");
}

// printf's return value, and a %s through an unreadable pointer.
extern "C" __global__ void printfRet(int *out, const char *bad) {
  out[0] = printf("12345\n");
  out[1] = printf("%s|\n", bad);
}

// assert(): prints CUDA's message and stops the launch.
#include <cassert>
extern "C" __global__ void assertKernel(const int *x) {
  assert(x[threadIdx.x] < 10);
}

// Block barriers beyond __syncthreads: the count/and/or reductions.
extern "C" __global__ void syncReduce(const int *in, int *out) {
  int v = in[blockIdx.x * blockDim.x + threadIdx.x];
  int c = __syncthreads_count(v > 0);
  int a = __syncthreads_and(v > -100);
  int o = __syncthreads_or(v == 42);
  if (threadIdx.x == 0) {
    out[blockIdx.x * 3 + 0] = c;
    out[blockIdx.x * 3 + 1] = a;
    out[blockIdx.x * 3 + 2] = o;
  }
}

// Named barriers: warp 0 produces into shared memory and arrives at
// barrier 1; warps 1-2 wait there (bar.sync 1, 96) and consume.
extern "C" __global__ void namedBarrier(int *out) {
  __shared__ int buf[32];
  int t = threadIdx.x;
  if (t < 32) {
    buf[t] = t * 3;
    asm volatile("bar.arrive 1, 96;" ::: "memory");
  } else {
    asm volatile("bar.sync 1, 96;" ::: "memory");
    out[t - 32] = buf[t & 31] + (t >> 5);
  }
}

// Warp intrinsics that lower to match, bfind, shf, sad, dp4a, brev,
// mul.hi and __syncwarp.
extern "C" __global__ void warpIntrinsics(const int *in, unsigned *out) {
  int t = threadIdx.x;
  int v = in[t];
  unsigned *o = out + t * 8;
  o[0] = __match_any_sync(0xffffffff, v & 3);
  int pred;
  o[1] = __match_all_sync(0xffffffff, v >> 8, &pred);
  o[2] = pred;
  o[3] = __ffs(v) + __clz(v) * 100;
  o[4] = __funnelshift_l((unsigned)v, (unsigned)t, t) ^
         __funnelshift_rc((unsigned)v, (unsigned)t, t + 20);
  o[5] = __sad(v, t * 1000, 7) + __usad((unsigned)v, (unsigned)t, 1);
  o[6] = __dp4a(v, t * 0x01020304, 5);
  __syncwarp();
  o[7] = __mul24(v, t) + __umul24((unsigned)v, (unsigned)t) + __mulhi(v, t);
}

// __half and __half2 arithmetic as cuda_fp16.h emits it for sm_75.
#include <cuda_fp16.h>
extern "C" __global__ void halfMath(const float *in, float *out,
                                    unsigned short *hout, unsigned *h2out) {
  int i = threadIdx.x;
  float x = in[i], y = in[i + 64], z = in[i + 128];
  __half a = __float2half_rn(x), b = __float2half_rn(y), c = __float2half_rn(z);
  hout[i * 8 + 0] = __half_as_ushort(__hadd(a, b));
  hout[i * 8 + 1] = __half_as_ushort(__hsub(a, b));
  hout[i * 8 + 2] = __half_as_ushort(__hmul(a, b));
  hout[i * 8 + 3] = __half_as_ushort(__hfma(a, b, c));
  hout[i * 8 + 4] = __half_as_ushort(__hmax(a, b));
  hout[i * 8 + 5] = __half_as_ushort(__hneg(__habs(a)));
  hout[i * 8 + 6] = __half_as_ushort(__float2half_rz(x));
  hout[i * 8 + 7] = (unsigned short)(__hlt(a, b) | __hgt(a, b) << 1 |
                                     __heq(a, b) << 2 | __hisnan(a) << 3);
  __half2 p = __floats2half2_rn(x, y), q = __halves2half2(c, a);
  __half2 r = __hfma2(p, q, __hadd2(p, q));
  h2out[i * 4 + 0] = *(unsigned *)&r;
  __half2 s = __hmul2(p, q);
  h2out[i * 4 + 1] = *(unsigned *)&s;
  h2out[i * 4 + 2] = __half_as_ushort(__low2half(s)) |
                     (unsigned)__half_as_ushort(__high2half(r)) << 16;
  h2out[i * 4 + 3] = __hble2(p, q);
  out[i * 4 + 0] = __half2float(a) + __low2float(p) * 0.5f;
  out[i * 4 + 1] = (float)__half2int_rz(b) + (float)__half2uint_rd(c);
  out[i * 4 + 2] = __half2float(__int2half_rn(i * 1001 - 30000));
  out[i * 4 + 3] = __half2float(h2exp(p).x);
}
