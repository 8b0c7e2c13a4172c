// Runtime API: cudaFuncGetAttributes (registers, the thread limit that
// __launch_bounds__ sets, static shared memory, PTX version) and the
// occupancy calculator (cudaOccupancyMaxActiveBlocksPerMultiprocessor,
// cudaOccupancyMaxPotentialBlockSize), checked for what must hold on any
// device; then each kernel is launched to show the numbers are usable.
#include "rt_check.h"

__global__ void plain(int *out) {
  out[blockIdx.x * blockDim.x + threadIdx.x] = threadIdx.x;
}

__global__ void __launch_bounds__(256) bounded(int *out) {
  out[blockIdx.x * blockDim.x + threadIdx.x] = 2 * threadIdx.x;
}

// 10 KiB of static shared memory (2560 ints).
__global__ void with_shared(int *out) {
  __shared__ int buf[2560];
  for (int i = threadIdx.x; i < 2560; i += blockDim.x) buf[i] = i;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[2559 - threadIdx.x];
}

static void check_occupancy(const char *name, const void *fn,
                            const cudaFuncAttributes &fa,
                            const cudaDeviceProp &prop) {
  int blocks = -1;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fn, 128, 0));
  printf("%s: %d blocks of 128 threads per SM\n", name, blocks);
  EXPECT(blocks >= 1);
  EXPECT(blocks * 128 <= prop.maxThreadsPerMultiProcessor);
  if (fa.sharedSizeBytes > 0)
    EXPECT((size_t)blocks * fa.sharedSizeBytes <= prop.sharedMemPerMultiprocessor);
  if (prop.maxBlocksPerMultiProcessor > 0)
    EXPECT(blocks <= prop.maxBlocksPerMultiProcessor);

  int min_grid = -1, block = -1;
  CK(cudaOccupancyMaxPotentialBlockSize(&min_grid, &block, fn, 0, 0));
  printf("%s: block size %d, minimum grid %d\n", name, block, min_grid);
  EXPECT(block >= prop.warpSize);
  EXPECT(block <= fa.maxThreadsPerBlock);
  EXPECT(block % prop.warpSize == 0);
  EXPECT(min_grid >= prop.multiProcessorCount);
  // The block size it picks must itself be launchable with some blocks.
  int at_block = -1;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&at_block, fn, block, 0));
  EXPECT(at_block >= 1);
  EXPECT_EQ(min_grid, at_block * prop.multiProcessorCount);
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int *d;
  CK(cudaMalloc(&d, 4096 * sizeof(int)));

  cudaFuncAttributes pa, ba, sa;
  CK(cudaFuncGetAttributes(&pa, plain));
  CK(cudaFuncGetAttributes(&ba, bounded));
  CK(cudaFuncGetAttributes(&sa, with_shared));
  const cudaFuncAttributes *all[] = {&pa, &ba, &sa};
  const char *names[] = {"plain", "bounded", "with_shared"};
  for (int k = 0; k < 3; k++) {
    const cudaFuncAttributes *a = all[k];
    printf("%s: numRegs %d, maxThreadsPerBlock %d, sharedSizeBytes %zu, "
           "localSizeBytes %zu, ptxVersion %d, binaryVersion %d\n",
           names[k], a->numRegs, a->maxThreadsPerBlock, a->sharedSizeBytes,
           a->localSizeBytes, a->ptxVersion, a->binaryVersion);
    EXPECT(a->numRegs >= 1 && a->numRegs <= 255);
    // nvcc's default build has compute_75 PTX; the device reports the
    // virtual architecture of the PTX it used (major*10+minor).
    EXPECT(a->ptxVersion >= 75);
    EXPECT(a->binaryVersion >= 10);
  }
  EXPECT_EQ(pa.maxThreadsPerBlock, prop.maxThreadsPerBlock);
  EXPECT_EQ(ba.maxThreadsPerBlock, 256);
  EXPECT_EQ(pa.sharedSizeBytes, 0);
  EXPECT_EQ(ba.sharedSizeBytes, 0);
  EXPECT_EQ(sa.sharedSizeBytes, 2560 * sizeof(int));

  check_occupancy("plain", (const void *)plain, pa, prop);
  check_occupancy("bounded", (const void *)bounded, ba, prop);
  check_occupancy("with_shared", (const void *)with_shared, sa, prop);

  // More threads than __launch_bounds__ allows: refused at launch.
  bounded<<<1, 512>>>(d);
  cudaError_t e = cudaGetLastError();
  printf("bounded<<<1, 512>>>: %s\n", cudaGetErrorName(e));
  EXPECT_EQ(e, cudaErrorLaunchOutOfResources);

  // Within the limits: they run.
  plain<<<4, 1024>>>(d);
  CK_LAUNCH();
  bounded<<<16, 256>>>(d);
  CK_LAUNCH();
  with_shared<<<8, 512>>>(d);
  CK_LAUNCH();
  int h[4096];
  CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  int want[4096];
  for (int i = 0; i < 4096; i++)
    want[i] = i < 8 * 512 ? 2559 - i % 512 : 0;
  rt_compare("with_shared", h, want, 4096);
  CK(cudaFree(d));
  return rt_finish("rt_func_attrs");
}
