// Runtime API: stream-ordered allocation. cudaMallocAsync/cudaFreeAsync on
// streams, with kernels using the memory in between; the device's default
// pool and its attributes (release threshold, reserved and used memory);
// an explicitly created pool with cudaMallocFromPoolAsync; memory freed on
// one stream reused by a later allocation.
#include <vector>

#include "rt_check.h"

__global__ void iota(int *p, int n, int base) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = base + i;
}

__global__ void twice(const int *in, int *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2 * in[i];
}

static void check_buf(const char *what, const int *d, int n, int base,
                      int mul, cudaStream_t s) {
  std::vector<int> got(n), want(n);
  CK(cudaMemcpyAsync(got.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  for (int i = 0; i < n; i++) want[i] = mul * (base + i);
  rt_compare(what, got.data(), want.data(), n);
}

int main() {
  int supported = 0;
  CK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, 0));
  EXPECT_EQ(supported, 1);

  const int n = 20000;
  const size_t bytes = n * sizeof(int);
  cudaStream_t s1, s2;
  CK(cudaStreamCreate(&s1));
  CK(cudaStreamCreate(&s2));

  // Allocate, use, free, all in stream order.
  int *a, *b;
  CK(cudaMallocAsync(&a, bytes, s1));
  CK(cudaMallocAsync(&b, bytes, s1));
  EXPECT(a != nullptr && b != nullptr && a != b);
  iota<<<(n + 255) / 256, 256, 0, s1>>>(a, n, 100);
  CK_LAUNCH();
  twice<<<(n + 255) / 256, 256, 0, s1>>>(a, b, n);
  CK_LAUNCH();
  check_buf("b", b, n, 100, 2, s1);
  CK(cudaFreeAsync(a, s1));

  // The default pool and its attributes.
  cudaMemPool_t pool;
  CK(cudaDeviceGetDefaultMemPool(&pool, 0));
  cudaMemPool_t current;
  CK(cudaDeviceGetMemPool(&current, 0));
  EXPECT(current == pool);
  unsigned long long threshold = 1;
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  EXPECT_EQ(threshold, 0);
  unsigned long long want_threshold = 64ull << 20;
  CK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &want_threshold));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  EXPECT_EQ(threshold, want_threshold);
  unsigned long long used = 0, reserved = 0;
  CK(cudaStreamSynchronize(s1));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  printf("default pool: used %llu, reserved %llu\n", used, reserved);
  EXPECT(used >= bytes);       // b is still allocated
  EXPECT(reserved >= used);
  unsigned long long high = 0;
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
  EXPECT(high >= 2 * bytes);   // a and b were both live

  // Freed memory is reused: a new allocation of the same size on the same
  // stream, after the free, may take a's place; either way it works.
  int *c;
  CK(cudaMallocAsync(&c, bytes, s1));
  printf("reuse: a %p, c %p%s\n", (void *)a, (void *)c,
         a == c ? " (same block)" : "");
  iota<<<(n + 255) / 256, 256, 0, s1>>>(c, n, -5);
  CK_LAUNCH();
  check_buf("c", c, n, -5, 1, s1);

  // Freed on one stream, after an event that the other waits for, then
  // allocated on the other.
  cudaEvent_t ev;
  CK(cudaEventCreate(&ev));
  CK(cudaFreeAsync(c, s1));
  CK(cudaEventRecord(ev, s1));
  CK(cudaStreamWaitEvent(s2, ev, 0));
  int *e;
  CK(cudaMallocAsync(&e, bytes, s2));
  iota<<<(n + 255) / 256, 256, 0, s2>>>(e, n, 7);
  CK_LAUNCH();
  check_buf("e", e, n, 7, 1, s2);
  CK(cudaFreeAsync(e, s2));

  // An explicit pool.
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = 0;
  cudaMemPool_t mine;
  CK(cudaMemPoolCreate(&mine, &props));
  int *f;
  CK(cudaMallocFromPoolAsync(&f, bytes, mine, s2));
  iota<<<(n + 255) / 256, 256, 0, s2>>>(f, n, 3);
  CK_LAUNCH();
  check_buf("f", f, n, 3, 1, s2);
  CK(cudaMemPoolGetAttribute(mine, cudaMemPoolAttrUsedMemCurrent, &used));
  EXPECT(used >= bytes);
  CK(cudaFreeAsync(f, s2));
  CK(cudaStreamSynchronize(s2));
  CK(cudaMemPoolGetAttribute(mine, cudaMemPoolAttrUsedMemCurrent, &used));
  EXPECT_EQ(used, 0);
  // Trimming to 0 gives back everything unused.
  CK(cudaMemPoolTrimTo(mine, 0));
  CK(cudaMemPoolGetAttribute(mine, cudaMemPoolAttrReservedMemCurrent, &reserved));
  EXPECT_EQ(reserved, 0);
  CK(cudaMemPoolDestroy(mine));

  // Plain cudaFree of stream-ordered memory, after synchronising.
  CK(cudaStreamSynchronize(s1));
  CK(cudaFree(b));
  CK(cudaEventDestroy(ev));
  CK(cudaStreamDestroy(s1));
  CK(cudaStreamDestroy(s2));
  return rt_finish("rt_malloc_async");
}
