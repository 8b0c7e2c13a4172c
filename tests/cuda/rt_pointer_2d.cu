// Runtime API: cudaPointerGetAttributes on device memory (also inside an
// allocation), pinned host memory and ordinary host memory; cudaMallocPitch
// and cudaMemcpy2D host to device, device to device and back with
// different pitches on each side; cudaMemset2D on a sub-rectangle; a kernel
// reading pitched rows.
#include <cstring>
#include <vector>

#include "rt_check.h"

__global__ void scale_rows(float *p, size_t pitch, int width, int height) {
  int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
  if (x < width && y < height) {
    float *row = (float *)((char *)p + y * pitch);
    row[x] = row[x] * 2.0f + (float)y;
  }
}

int main() {
  // Pointer attributes.
  int *dev;
  CK(cudaMalloc(&dev, 4096));
  cudaPointerAttributes pa;
  CK(cudaPointerGetAttributes(&pa, dev));
  EXPECT_EQ(pa.type, cudaMemoryTypeDevice);
  EXPECT_EQ(pa.device, 0);
  EXPECT(pa.devicePointer == dev);
  EXPECT(pa.hostPointer == nullptr);
  CK(cudaPointerGetAttributes(&pa, dev + 100));
  EXPECT_EQ(pa.type, cudaMemoryTypeDevice);
  EXPECT(pa.devicePointer == dev + 100);

  int *pinned;
  CK(cudaMallocHost(&pinned, 4096));
  CK(cudaPointerGetAttributes(&pa, pinned));
  EXPECT_EQ(pa.type, cudaMemoryTypeHost);
  EXPECT(pa.hostPointer == pinned);

  std::vector<int> pageable(16);
  CK(cudaPointerGetAttributes(&pa, pageable.data()));
  EXPECT_EQ(pa.type, cudaMemoryTypeUnregistered);
  EXPECT(pa.devicePointer == nullptr);
  EXPECT(pa.hostPointer == nullptr);

  // Pitched allocation: the pitch covers a row and is aligned.
  const int width = 100, height = 37;  // floats per row, rows
  float *dp;
  size_t pitch = 0;
  CK(cudaMallocPitch(&dp, &pitch, width * sizeof(float), height));
  printf("cudaMallocPitch: %d bytes a row -> pitch %zu\n",
         (int)(width * sizeof(float)), pitch);
  EXPECT(pitch >= width * sizeof(float));
  EXPECT(pitch % 128 == 0);

  // Host rows with a pitch of their own (120 floats), copied in.
  const int hpitch_f = 120;
  std::vector<float> host(hpitch_f * height, -1.0f);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) host[y * hpitch_f + x] = (float)(y * 1000 + x);
  CK(cudaMemcpy2D(dp, pitch, host.data(), hpitch_f * sizeof(float),
                  width * sizeof(float), height, cudaMemcpyHostToDevice));
  dim3 grid((width + 63) / 64, height);
  scale_rows<<<grid, 64>>>(dp, pitch, width, height);
  CK_LAUNCH();

  // Device to device into a second pitched buffer, then back out with a
  // tight pitch.
  float *dq;
  size_t qpitch = 0;
  CK(cudaMallocPitch(&dq, &qpitch, width * sizeof(float), height));
  CK(cudaMemcpy2D(dq, qpitch, dp, pitch, width * sizeof(float), height,
                  cudaMemcpyDeviceToDevice));
  std::vector<float> back(width * height, 0.0f), want(width * height);
  CK(cudaMemcpy2D(back.data(), width * sizeof(float), dq, qpitch,
                  width * sizeof(float), height, cudaMemcpyDeviceToHost));
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      want[y * width + x] = (float)(y * 1000 + x) * 2.0f + (float)y;
  rt_compare("2D round trip", back.data(), want.data(), back.size());

  // cudaMemset2D of a 10x5 rectangle at (row 3, column 20), in bytes:
  // 0x3f3f3f3f everywhere inside it, the rest untouched.
  char *corner = (char *)dq + 3 * qpitch + 20 * sizeof(float);
  CK(cudaMemset2D(corner, qpitch, 0x3f, 10 * sizeof(float), 5));
  CK(cudaMemcpy2D(back.data(), width * sizeof(float), dq, qpitch,
                  width * sizeof(float), height, cudaMemcpyDeviceToHost));
  float f3f;
  memset(&f3f, 0x3f, sizeof f3f);
  for (int y = 3; y < 8; y++)
    for (int x = 20; x < 30; x++) want[y * width + x] = f3f;
  rt_compare("after cudaMemset2D", back.data(), want.data(), back.size());

  // A 2D copy whose rows do not fit the pitch is refused.
  EXPECT_EQ(cudaMemcpy2D(dq, qpitch, host.data(), 8, width * sizeof(float),
                         height, cudaMemcpyHostToDevice),
            cudaErrorInvalidPitchValue);
  cudaGetLastError();

  CK(cudaFree(dp));
  CK(cudaFree(dq));
  CK(cudaFree(dev));
  CK(cudaFreeHost(pinned));
  return rt_finish("rt_pointer_2d");
}
