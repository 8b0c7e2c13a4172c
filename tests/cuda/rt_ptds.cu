// Runtime API built with --default-stream per-thread: two host threads
// both use "the default stream" (launches without a stream, copies on
// stream 0, cudaStreamPerThread) at the same time; each thread's default
// stream is its own, so each sees only its own work, in order.
#include <atomic>
#include <thread>
#include <vector>

#include "rt_check.h"

__global__ void step(int *x, int n, int mul, int add) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * mul + add;
}

static std::atomic<int> ready;
static std::atomic<int> failures;
static unsigned long long stream_ids[2];

static void worker(int id) {
  const int n = 25000, rounds = 5;
  int *d;
  CK(cudaMalloc(&d, n * sizeof(int)));
  std::vector<int> h(n), want(n);
  for (int i = 0; i < n; i++) want[i] = h[i] = i - 1000 * id;

  ready++;
  while (ready.load() < 2) std::this_thread::yield();

  // Stream 0 means this thread's default stream in this build.
  CK(cudaMemcpyAsync(d, h.data(), n * sizeof(int), cudaMemcpyHostToDevice, 0));
  for (int r = 0; r < rounds; r++) {
    int mul = r % 2 ? -1 : 3, add = 7 * id + r;
    if (r % 2)
      step<<<(n + 127) / 128, 128>>>(d, n, mul, add);
    else
      step<<<(n + 255) / 256, 256, 0, cudaStreamPerThread>>>(d, n, mul, add);
    CK_LAUNCH();
    for (int i = 0; i < n; i++) want[i] = want[i] * mul + add;
  }
  CK(cudaMemcpyAsync(h.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost,
                     cudaStreamPerThread));
  CK(cudaStreamSynchronize(0));
  char what[32];
  snprintf(what, sizeof what, "thread %d", id);
  if (!rt_compare(what, h.data(), want.data(), n)) failures++;
  CK(cudaStreamQuery(cudaStreamPerThread));
  // The default stream of this thread is a stream of its own, not the
  // legacy one and not the other thread's.
  unsigned long long via_zero = 0, via_handle = 0;
  CK(cudaStreamGetId(0, &via_zero));
  CK(cudaStreamGetId(cudaStreamPerThread, &via_handle));
  EXPECT_EQ(via_zero, via_handle);
  stream_ids[id] = via_zero;
  CK(cudaFree(d));
  printf("thread %d: %d launches on its default stream checked\n", id, rounds);
}

int main() {
  CK(cudaFree(nullptr));
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  unsigned long long legacy = 0;
  CK(cudaStreamGetId(cudaStreamLegacy, &legacy));
  if (stream_ids[0] == stream_ids[1] || stream_ids[0] == legacy ||
      stream_ids[1] == legacy) {
    printf("FAIL: default stream ids: thread 0 %llu, thread 1 %llu, "
           "legacy %llu\n", stream_ids[0], stream_ids[1], legacy);
    failures++;
  }
  EXPECT_EQ(failures.load(), 0);
  return rt_finish("rt_ptds");
}
