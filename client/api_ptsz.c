/* The per-thread default stream forms of the entry points: the _ptsz
 * (asynchronous, "per-thread stream zero") and _ptds (synchronous,
 * "per-thread default stream") variants that programs built with
 * `nvcc --default-stream per-thread` call, directly or through
 * cuGetProcAddress with CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM.
 *
 * Each differs from the plain entry point in one thing only: a NULL
 * stream, or the NULL stream a synchronous call works on, is the calling
 * thread's per-thread default stream instead of the legacy one
 * (CU_STREAM_LEGACY and CU_STREAM_PER_THREAD keep their meaning). So each
 * one here says so for the calling thread (gp__ptds_begin(), read where
 * stream handles are resolved, api_stream.c) and calls the plain one with
 * its arguments unchanged, so that a stream callback still receives the
 * handle exactly as it was given. GPUPOOL_TRACE names the plain entry
 * point.
 */
#include "client.h"

/* Runs |call| with NULL meaning the per-thread default stream. */
#define PER_THREAD(call)                \
  do {                                  \
    bool previous_ = gp__ptds_begin();  \
    CUresult r_ = (call);               \
    gp__ptds_end(previous_);            \
    return r_;                          \
  } while (0)

/* ---- Launches ---------------------------------------------------------------- */

GP_API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                    unsigned int gridDimY,
                                    unsigned int gridDimZ,
                                    unsigned int blockDimX,
                                    unsigned int blockDimY,
                                    unsigned int blockDimZ,
                                    unsigned int sharedMemBytes,
                                    CUstream hStream, void **kernelParams,
                                    void **extra) {
  PER_THREAD(cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX,
                            blockDimY, blockDimZ, sharedMemBytes, hStream,
                            kernelParams, extra));
}

GP_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config,
                                      CUfunction f, void **kernelParams,
                                      void **extra) {
  PER_THREAD(cuLaunchKernelEx(config, f, kernelParams, extra));
}

GP_API CUresult cuLaunchHostFunc_ptsz(CUstream hStream, CUhostFn fn,
                                      void *userData) {
  PER_THREAD(cuLaunchHostFunc(hStream, fn, userData));
}

/* ---- Copies and memsets --------------------------------------------------------- */

GP_API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dstDevice,
                                     const void *srcHost, size_t ByteCount) {
  PER_THREAD(cuMemcpyHtoD_v2(dstDevice, srcHost, ByteCount));
}

GP_API CUresult cuMemcpyDtoH_v2_ptds(void *dstHost, CUdeviceptr srcDevice,
                                     size_t ByteCount) {
  PER_THREAD(cuMemcpyDtoH_v2(dstHost, srcDevice, ByteCount));
}

GP_API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dstDevice,
                                     CUdeviceptr srcDevice,
                                     size_t ByteCount) {
  PER_THREAD(cuMemcpyDtoD_v2(dstDevice, srcDevice, ByteCount));
}

GP_API CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src,
                              size_t ByteCount) {
  PER_THREAD(cuMemcpy(dst, src, ByteCount));
}

GP_API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dstDevice,
                                          const void *srcHost,
                                          size_t ByteCount,
                                          CUstream hStream) {
  PER_THREAD(cuMemcpyHtoDAsync_v2(dstDevice, srcHost, ByteCount, hStream));
}

GP_API CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dstHost,
                                          CUdeviceptr srcDevice,
                                          size_t ByteCount,
                                          CUstream hStream) {
  PER_THREAD(cuMemcpyDtoHAsync_v2(dstHost, srcDevice, ByteCount, hStream));
}

GP_API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dstDevice,
                                          CUdeviceptr srcDevice,
                                          size_t ByteCount,
                                          CUstream hStream) {
  PER_THREAD(cuMemcpyDtoDAsync_v2(dstDevice, srcDevice, ByteCount, hStream));
}

GP_API CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src,
                                   size_t ByteCount, CUstream hStream) {
  PER_THREAD(cuMemcpyAsync(dst, src, ByteCount, hStream));
}

GP_API CUresult cuMemsetD8_v2_ptds(CUdeviceptr dstDevice, unsigned char uc,
                                   size_t N) {
  PER_THREAD(cuMemsetD8_v2(dstDevice, uc, N));
}

GP_API CUresult cuMemsetD16_v2_ptds(CUdeviceptr dstDevice, unsigned short us,
                                    size_t N) {
  PER_THREAD(cuMemsetD16_v2(dstDevice, us, N));
}

GP_API CUresult cuMemsetD32_v2_ptds(CUdeviceptr dstDevice, unsigned int ui,
                                    size_t N) {
  PER_THREAD(cuMemsetD32_v2(dstDevice, ui, N));
}

GP_API CUresult cuMemsetD8Async_ptsz(CUdeviceptr dstDevice, unsigned char uc,
                                     size_t N, CUstream hStream) {
  PER_THREAD(cuMemsetD8Async(dstDevice, uc, N, hStream));
}

GP_API CUresult cuMemsetD16Async_ptsz(CUdeviceptr dstDevice,
                                      unsigned short us, size_t N,
                                      CUstream hStream) {
  PER_THREAD(cuMemsetD16Async(dstDevice, us, N, hStream));
}

GP_API CUresult cuMemsetD32Async_ptsz(CUdeviceptr dstDevice, unsigned int ui,
                                      size_t N, CUstream hStream) {
  PER_THREAD(cuMemsetD32Async(dstDevice, ui, N, hStream));
}

/* ---- Streams and events ------------------------------------------------------------ */

GP_API CUresult cuStreamSynchronize_ptsz(CUstream hStream) {
  PER_THREAD(cuStreamSynchronize(hStream));
}

GP_API CUresult cuStreamQuery_ptsz(CUstream hStream) {
  PER_THREAD(cuStreamQuery(hStream));
}

GP_API CUresult cuStreamWaitEvent_ptsz(CUstream hStream, CUevent hEvent,
                                       unsigned int Flags) {
  PER_THREAD(cuStreamWaitEvent(hStream, hEvent, Flags));
}

GP_API CUresult cuStreamAddCallback_ptsz(CUstream hStream,
                                         CUstreamCallback callback,
                                         void *userData, unsigned int flags) {
  PER_THREAD(cuStreamAddCallback(hStream, callback, userData, flags));
}

GP_API CUresult cuStreamAttachMemAsync_ptsz(CUstream hStream,
                                            CUdeviceptr dptr, size_t length,
                                            unsigned int flags) {
  PER_THREAD(cuStreamAttachMemAsync(hStream, dptr, length, flags));
}

GP_API CUresult cuStreamGetPriority_ptsz(CUstream hStream, int *priority) {
  PER_THREAD(cuStreamGetPriority(hStream, priority));
}

GP_API CUresult cuStreamGetFlags_ptsz(CUstream hStream, unsigned int *flags) {
  PER_THREAD(cuStreamGetFlags(hStream, flags));
}

GP_API CUresult cuStreamGetCtx_ptsz(CUstream hStream, CUcontext *pctx) {
  PER_THREAD(cuStreamGetCtx(hStream, pctx));
}

GP_API CUresult cuStreamGetCtx_v2_ptsz(CUstream hStream, CUcontext *pCtx,
                                       CUgreenCtx *pGreenCtx) {
  PER_THREAD(cuStreamGetCtx_v2(hStream, pCtx, pGreenCtx));
}

GP_API CUresult cuStreamGetId_ptsz(CUstream hStream,
                                   unsigned long long *streamId) {
  PER_THREAD(cuStreamGetId(hStream, streamId));
}

GP_API CUresult cuStreamGetDevice_ptsz(CUstream hStream, CUdevice *device) {
  PER_THREAD(cuStreamGetDevice(hStream, device));
}

GP_API CUresult cuStreamGetAttribute_ptsz(CUstream hStream,
                                          CUstreamAttrID attr,
                                          CUstreamAttrValue *value_out) {
  PER_THREAD(cuStreamGetAttribute(hStream, attr, value_out));
}

GP_API CUresult cuStreamSetAttribute_ptsz(CUstream hStream,
                                          CUstreamAttrID attr,
                                          const CUstreamAttrValue *value) {
  PER_THREAD(cuStreamSetAttribute(hStream, attr, value));
}

GP_API CUresult cuStreamCopyAttributes_ptsz(CUstream dst, CUstream src) {
  PER_THREAD(cuStreamCopyAttributes(dst, src));
}

GP_API CUresult cuEventRecord_ptsz(CUevent hEvent, CUstream hStream) {
  PER_THREAD(cuEventRecord(hEvent, hStream));
}

GP_API CUresult cuEventRecordWithFlags_ptsz(CUevent hEvent, CUstream hStream,
                                            unsigned int flags) {
  PER_THREAD(cuEventRecordWithFlags(hEvent, hStream, flags));
}

/* ---- 2D and 3D copies and memsets ---------------------------------------- */

GP_API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *pCopy) {
  PER_THREAD(cuMemcpy2D_v2(pCopy));
}

GP_API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *pCopy) {
  PER_THREAD(cuMemcpy2DUnaligned_v2(pCopy));
}

GP_API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *pCopy,
                                        CUstream hStream) {
  PER_THREAD(cuMemcpy2DAsync_v2(pCopy, hStream));
}

GP_API CUresult cuMemcpy3D_v2_ptds(const CUDA_MEMCPY3D *pCopy) {
  PER_THREAD(cuMemcpy3D_v2(pCopy));
}

GP_API CUresult cuMemcpy3DAsync_v2_ptsz(const CUDA_MEMCPY3D *pCopy,
                                        CUstream hStream) {
  PER_THREAD(cuMemcpy3DAsync_v2(pCopy, hStream));
}

GP_API CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch,
                                     unsigned char uc, size_t Width,
                                     size_t Height) {
  PER_THREAD(cuMemsetD2D8_v2(dstDevice, dstPitch, uc, Width, Height));
}

GP_API CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch,
                                      unsigned short us, size_t Width,
                                      size_t Height) {
  PER_THREAD(cuMemsetD2D16_v2(dstDevice, dstPitch, us, Width, Height));
}

GP_API CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch,
                                      unsigned int ui, size_t Width,
                                      size_t Height) {
  PER_THREAD(cuMemsetD2D32_v2(dstDevice, dstPitch, ui, Width, Height));
}

GP_API CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch,
                                       unsigned char uc, size_t Width,
                                       size_t Height, CUstream hStream) {
  PER_THREAD(cuMemsetD2D8Async(dstDevice, dstPitch, uc, Width, Height,
                               hStream));
}

GP_API CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr dstDevice,
                                        size_t dstPitch, unsigned short us,
                                        size_t Width, size_t Height,
                                        CUstream hStream) {
  PER_THREAD(cuMemsetD2D16Async(dstDevice, dstPitch, us, Width, Height,
                                hStream));
}

GP_API CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr dstDevice,
                                        size_t dstPitch, unsigned int ui,
                                        size_t Width, size_t Height,
                                        CUstream hStream) {
  PER_THREAD(cuMemsetD2D32Async(dstDevice, dstPitch, ui, Width, Height,
                                hStream));
}

/* ---- Stream-ordered allocation --------------------------------------------- */

GP_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                     CUstream hStream) {
  PER_THREAD(cuMemAllocAsync(dptr, bytesize, hStream));
}

GP_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr,
                                             size_t bytesize,
                                             CUmemoryPool pool,
                                             CUstream hStream) {
  PER_THREAD(cuMemAllocFromPoolAsync(dptr, bytesize, pool, hStream));
}

GP_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
  PER_THREAD(cuMemFreeAsync(dptr, hStream));
}

/* ---- Capture status ------------------------------------------------------------ */

GP_API CUresult cuStreamIsCapturing_ptsz(CUstream hStream,
                                         CUstreamCaptureStatus *captureStatus) {
  PER_THREAD(cuStreamIsCapturing(hStream, captureStatus));
}

GP_API CUresult cuStreamGetCaptureInfo_ptsz(
    CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
    cuuint64_t *id_out) {
  PER_THREAD(cuStreamGetCaptureInfo(hStream, captureStatus_out, id_out));
}

GP_API CUresult cuStreamGetCaptureInfo_v2_ptsz(
    CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
    cuuint64_t *id_out, CUgraph *graph_out,
    const CUgraphNode **dependencies_out, size_t *numDependencies_out) {
  PER_THREAD(cuStreamGetCaptureInfo_v2(hStream, captureStatus_out, id_out,
                                       graph_out, dependencies_out,
                                       numDependencies_out));
}

GP_API CUresult cuStreamGetCaptureInfo_v3_ptsz(
    CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
    cuuint64_t *id_out, CUgraph *graph_out,
    const CUgraphNode **dependencies_out, const CUgraphEdgeData **edgeData_out,
    size_t *numDependencies_out) {
  PER_THREAD(cuStreamGetCaptureInfo_v3(hStream, captureStatus_out, id_out,
                                       graph_out, dependencies_out,
                                       edgeData_out, numDependencies_out));
}
