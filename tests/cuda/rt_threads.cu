// Runtime API from two host threads at once, each with its own stream,
// its own memory and its own kernels, started together by a barrier; each
// checks its own results after every round. The primary context is shared,
// as cudart shares it between the threads of a process.
#include <atomic>
#include <thread>
#include <vector>

#include "rt_check.h"

__global__ void step(unsigned *x, int n, unsigned mul, unsigned add) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * mul + add;
}

static std::atomic<int> ready;
static std::atomic<int> failures;

static void worker(int id) {
  const int n = 30000, rounds = 6;
  CK(cudaSetDevice(0));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  unsigned *d, *h;
  CK(cudaMalloc(&d, n * sizeof(unsigned)));
  CK(cudaMallocHost(&h, n * sizeof(unsigned)));
  std::vector<unsigned> want(n);
  for (int i = 0; i < n; i++) want[i] = h[i] = (unsigned)(i * (id + 3));

  ready++;
  while (ready.load() < 2) std::this_thread::yield();

  CK(cudaMemcpyAsync(d, h, n * sizeof(unsigned), cudaMemcpyHostToDevice, s));
  for (int r = 0; r < rounds; r++) {
    unsigned mul = 2 * id + 3 + r, add = 1000u * id + r;
    step<<<(n + 255) / 256, 256, 0, s>>>(d, n, mul, add);
    CK_LAUNCH();
    CK(cudaMemcpyAsync(h, d, n * sizeof(unsigned), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    for (int i = 0; i < n; i++) want[i] = want[i] * mul + add;
    char what[48];
    snprintf(what, sizeof what, "thread %d round %d", id, r);
    if (!rt_compare(what, h, want.data(), n)) failures++;
  }
  CK(cudaStreamDestroy(s));
  CK(cudaFree(d));
  CK(cudaFreeHost(h));
  printf("thread %d: %d rounds checked\n", id, rounds);
}

int main() {
  CK(cudaFree(nullptr));  // initialise before the threads race
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(failures.load(), 0);
  return rt_finish("rt_threads");
}
