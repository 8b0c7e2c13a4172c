// Device printf for tests/unit/test_emu_module.c (a module of its own, so
// the other kernels load on an engine without printf).
#include <cstdio>

extern "C" __global__ void hello(int x) {
  printf("hello %d from block %d thread %d\n", x, blockIdx.x, threadIdx.x);
}
