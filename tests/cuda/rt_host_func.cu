// Runtime API: cudaLaunchHostFunc. A host function runs after everything
// queued before it on its stream and before everything queued after it:
// it sees the results a kernel and a device-to-host copy left in pinned
// memory, and what it writes to pinned memory is what a host-to-device copy
// queued after it carries to the device. Two streams at once, each with its
// own chain; the legacy default stream too. cudaStreamSynchronize returns
// only once the stream's host functions have run.
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "rt_check.h"

__global__ void add(int *x, int n, int v) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += v;
}

static const int N = 4096;

struct chain {
  int id;
  int *pinned_in;   // device -> host, read by the host functions
  int *pinned_out;  // written by the host functions, host -> device
  int step;         // host functions run so far on this chain
  int bad;          // mismatches seen by the host functions
};

static std::mutex log_mu;
static std::vector<int> order_log;  // chain id * 100 + step, as they ran
static std::atomic<int> calls;

// Checks that pinned_in holds base + 10 * step everywhere (what the kernels
// before it made), then fills pinned_out for the copy after it.
static void CUDART_CB host_step(void *arg) {
  chain *c = (chain *)arg;
  int want = c->id * 1000 + 10 * (c->step + 1);
  for (int i = 0; i < N; i++)
    if (c->pinned_in[i] != want + i) {
      if (c->bad++ < 4)
        fprintf(stderr, "chain %d step %d: in[%d] = %d, want %d\n", c->id,
                c->step, i, c->pinned_in[i], want + i);
    }
  for (int i = 0; i < N; i++) c->pinned_out[i] = want + i;
  {
    std::lock_guard<std::mutex> g(log_mu);
    order_log.push_back(c->id * 100 + c->step);
  }
  c->step++;
  calls++;
}

static void flag(void *arg) { *(volatile int *)arg = 1; }

// Queues |steps| rounds of: add 10 on the device, copy to pinned_in, the
// host function, copy pinned_out to the device.
static void queue_chain(chain *c, int *d, cudaStream_t s, int steps) {
  for (int k = 0; k < steps; k++) {
    add<<<N / 256, 256, 0, s>>>(d, N, 10);
    CK_LAUNCH();
    CK(cudaMemcpyAsync(c->pinned_in, d, N * sizeof(int),
                       cudaMemcpyDeviceToHost, s));
    CK(cudaLaunchHostFunc(s, host_step, c));
    CK(cudaMemcpyAsync(d, c->pinned_out, N * sizeof(int),
                       cudaMemcpyHostToDevice, s));
  }
}

int main() {
  const int steps = 3;
  cudaStream_t s[2];
  chain ch[2];
  int *d[2];
  for (int k = 0; k < 2; k++) {
    CK(cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking));
    ch[k].id = k + 1;
    ch[k].step = 0;
    ch[k].bad = 0;
    CK(cudaMallocHost(&ch[k].pinned_in, N * sizeof(int)));
    CK(cudaMallocHost(&ch[k].pinned_out, N * sizeof(int)));
    memset(ch[k].pinned_out, 0, N * sizeof(int));
    CK(cudaMalloc(&d[k], N * sizeof(int)));
    std::vector<int> init(N);
    for (int i = 0; i < N; i++) init[i] = ch[k].id * 1000 + i;
    CK(cudaMemcpy(d[k], init.data(), N * sizeof(int), cudaMemcpyHostToDevice));
  }
  // Both chains queued before either is waited for.
  queue_chain(&ch[0], d[0], s[0], steps);
  queue_chain(&ch[1], d[1], s[1], steps);
  for (int k = 0; k < 2; k++) {
    CK(cudaStreamSynchronize(s[k]));
    EXPECT_EQ(ch[k].step, steps);
    EXPECT_EQ(ch[k].bad, 0);
    std::vector<int> got(N), want(N);
    CK(cudaMemcpy(got.data(), d[k], N * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++) want[i] = ch[k].id * 1000 + 10 * steps + i;
    rt_compare(k ? "chain 2" : "chain 1", got.data(), want.data(), N);
  }
  EXPECT_EQ(calls.load(), 2 * steps);
  // Each chain's steps ran in order (the chains may interleave).
  int next[2] = {0, 0};
  for (int e : order_log) {
    int k = e / 100 - 1, step = e % 100;
    EXPECT(k == 0 || k == 1);
    if (k == 0 || k == 1) {
      EXPECT_EQ(step, next[k]);
      next[k] = step + 1;
    }
  }

  // On the legacy default stream, behind a kernel; cudaDeviceSynchronize
  // waits for it.
  volatile int done = 0;
  add<<<N / 256, 256>>>(d[0], N, 1);
  CK_LAUNCH();
  CK(cudaLaunchHostFunc(0, flag, (void *)&done));
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(done, 1);

  // An event recorded after a host function completes after it.
  volatile int done2 = 0;
  cudaEvent_t ev;
  CK(cudaEventCreate(&ev));
  CK(cudaLaunchHostFunc(s[1], flag, (void *)&done2));
  CK(cudaEventRecord(ev, s[1]));
  CK(cudaEventSynchronize(ev));
  EXPECT_EQ(done2, 1);

  CK(cudaEventDestroy(ev));
  for (int k = 0; k < 2; k++) {
    CK(cudaStreamDestroy(s[k]));
    CK(cudaFreeHost(ch[k].pinned_in));
    CK(cudaFreeHost(ch[k].pinned_out));
    CK(cudaFree(d[k]));
  }
  return rt_finish("rt_host_func");
}
