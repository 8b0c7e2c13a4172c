// Runtime API: four streams, each copying its slice of pinned host memory
// (cudaMallocHost) to the device with cudaMemcpyAsync, running kernels on
// it and copying it back, all queued before anything waits; an event orders
// one stream after another; cudaStreamQuery and cudaStreamSynchronize.
#include <vector>

#include "rt_check.h"

__global__ void affine(int *x, int n, int mul, int add) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * mul + add;
}

// y[i] += x[i]: reads another stream's buffer.
__global__ void accumulate(int *y, const int *x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

int main() {
  const int nstreams = 4, chunk = 12000, n = nstreams * chunk;
  const size_t bytes = (size_t)n * sizeof(int);
  int *h_in, *h_out;
  CK(cudaMallocHost(&h_in, bytes));
  CK(cudaHostAlloc(&h_out, bytes, cudaHostAllocDefault));
  unsigned flags = 99;
  CK(cudaHostGetFlags(&flags, h_out));
  for (int i = 0; i < n; i++) {
    h_in[i] = i * 3 - 7000;
    h_out[i] = -1;
  }
  int *d;
  CK(cudaMalloc(&d, bytes));

  cudaStream_t s[nstreams];
  for (int k = 0; k < nstreams; k++)
    CK(k % 2 ? cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking)
             : cudaStreamCreate(&s[k]));
  for (int k = 0; k < nstreams; k++) {
    int *dk = d + k * chunk;
    CK(cudaMemcpyAsync(dk, h_in + k * chunk, chunk * sizeof(int),
                       cudaMemcpyHostToDevice, s[k]));
    affine<<<(chunk + 255) / 256, 256, 0, s[k]>>>(dk, chunk, 2, k);
    CK_LAUNCH();
    affine<<<(chunk + 127) / 128, 128, 0, s[k]>>>(dk, chunk, -1, 1000 * k);
    CK_LAUNCH();
    CK(cudaMemcpyAsync(h_out + k * chunk, dk, chunk * sizeof(int),
                       cudaMemcpyDeviceToHost, s[k]));
  }
  for (int k = 0; k < nstreams; k++) {
    CK(cudaStreamSynchronize(s[k]));
    CK(cudaStreamQuery(s[k]));
  }
  std::vector<int> want(n);
  for (int k = 0; k < nstreams; k++)
    for (int i = 0; i < chunk; i++) {
      int j = k * chunk + i;
      want[j] = -(h_in[j] * 2 + k) + 1000 * k;
    }
  rt_compare("streams", h_out, want.data(), n);

  // Stream 1 adds stream 0's slice to its own, after an event recorded on
  // stream 0 behind a kernel that changes that slice.
  cudaEvent_t done0;
  CK(cudaEventCreateWithFlags(&done0, cudaEventDisableTiming));
  affine<<<(chunk + 255) / 256, 256, 0, s[0]>>>(d, chunk, 1, 5);
  CK_LAUNCH();
  CK(cudaEventRecord(done0, s[0]));
  CK(cudaStreamWaitEvent(s[1], done0, 0));
  accumulate<<<(chunk + 255) / 256, 256, 0, s[1]>>>(d + chunk, d, chunk);
  CK_LAUNCH();
  CK(cudaMemcpyAsync(h_out, d + chunk, chunk * sizeof(int),
                     cudaMemcpyDeviceToHost, s[1]));
  CK(cudaStreamSynchronize(s[1]));
  for (int i = 0; i < chunk; i++)
    want[i] = want[chunk + i] + (want[i] + 5);
  rt_compare("event-ordered", h_out, want.data(), chunk);

  // The legacy default stream waits for the blocking streams: a copy on it
  // sees what stream 2 wrote.
  affine<<<(chunk + 255) / 256, 256, 0, s[2]>>>(d + 2 * chunk, chunk, 3, 0);
  CK_LAUNCH();
  CK(cudaMemcpy(h_out, d + 2 * chunk, chunk * sizeof(int),
                cudaMemcpyDeviceToHost));
  for (int i = 0; i < chunk; i++) want[i] = want[2 * chunk + i] * 3;
  rt_compare("legacy-stream", h_out, want.data(), chunk);

  CK(cudaEventDestroy(done0));
  for (int k = 0; k < nstreams; k++) CK(cudaStreamDestroy(s[k]));
  CK(cudaFree(d));
  CK(cudaFreeHost(h_in));
  CK(cudaFreeHost(h_out));
  return rt_finish("rt_streams");
}
