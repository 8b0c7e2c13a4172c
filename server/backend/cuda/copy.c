/* Pipelined bulk copies (see backend.h, memcpy_htod_pipe and
 * memcpy_dtoh_pipe).
 *
 * The session owns CUB_STAGE_CHUNKS pinned chunks of CUB_STAGE_CHUNK bytes
 * (cuMemHostAlloc, allocated on the first bulk copy, in the context of
 * that copy) with one event each. Host to device: the worker fills chunk k
 * from the socket while the copy of chunk k-1 runs; a chunk is refilled
 * only after its event says its copy is done. Device to host: the copies of
 * the first chunks are queued at once; each chunk is sent to the socket as
 * soon as its event completes, and its next copy is queued behind it.
 *
 * The events and the pinned memory belong to one context; a copy in
 * another context frees them and allocates them again there, and
 * destroying their context frees them first (cuda.c). Without pinned
 * memory (no cuMemHostAlloc, or it fails) one ordinary buffer is used, one
 * chunk at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"
#include "log.h"

void cub_stage_free(struct gp_backend *b, bool ctx_dying) {
  int k;

  if (b->stage_ctx && cub_make_current(b, b->stage_ctx) == CUDA_SUCCESS) {
    for (k = 0; k < CUB_STAGE_CHUNKS; k++) {
      struct cub_chunk *c = &b->stage[k];
      /* The events' copies are complete: every pipe waits for its own. */
      if (c->done && !ctx_dying)
        b->drv.cuEventDestroy(c->done);
      if (c->host)
        b->drv.cuMemFreeHost(c->host);
    }
  }
  memset(b->stage, 0, sizeof(b->stage));
  b->stage_ctx = NULL;
  free(b->plain);
  b->plain = NULL;
}

/* Pinned chunks in the current context, or the plain buffer. Returns
 * CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY (not even a plain buffer). */
static int stage_ready(struct gp_backend *b) {
  CUcontext cur = b->current;
  int k, r = CUDA_SUCCESS;

  if (b->stage_ctx == cur && b->stage[0].host)
    return CUDA_SUCCESS;
  if (b->stage_failed && b->plain)
    return CUDA_SUCCESS;
  if (b->stage_ctx)
    cub_stage_free(b, false);
  if (cub_make_current(b, cur) != CUDA_SUCCESS)
    r = CUDA_ERROR_INVALID_CONTEXT;
  if (!b->drv.cuMemHostAlloc || !b->drv.cuMemFreeHost)
    r = CUDA_ERROR_NOT_SUPPORTED;
  b->stage_ctx = cur;
  for (k = 0; k < CUB_STAGE_CHUNKS && r == CUDA_SUCCESS; k++) {
    r = b->drv.cuMemHostAlloc(&b->stage[k].host, CUB_STAGE_CHUNK, 0);
    if (r == CUDA_SUCCESS)
      r = b->drv.cuEventCreate(&b->stage[k].done, CU_EVENT_DISABLE_TIMING);
  }
  if (r == CUDA_SUCCESS)
    return CUDA_SUCCESS;
  gp__info("cuda backend: no pinned staging memory (%s): bulk copies go "
           "through one ordinary buffer", cub_error_name(&b->drv, r));
  cub_stage_free(b, false);
  b->stage_failed = true;
  b->plain = malloc(CUB_STAGE_CHUNK);
  return b->plain ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

/* CUDA_SUCCESS when [addr, addr + size) lies inside one allocation. */
static int range_check(struct gp_backend *b, uint64_t addr, uint64_t size) {
  CUdeviceptr base = 0;
  size_t sz = 0;
  int r;

  if (addr > UINT64_MAX - size)
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuMemGetAddressRange(&base, &sz, (CUdeviceptr)addr);
  if (r == CUDA_ERROR_NOT_FOUND)
    return CUDA_ERROR_INVALID_VALUE;
  if (r != CUDA_SUCCESS)
    return r;
  if (addr < base || addr - base > sz || size > sz - (addr - base))
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

/* The stream, the current context and the range of one copy. */
static int copy_enter(struct gp_backend *b, uint64_t addr, uint64_t size,
                      uint64_t stream, CUstream *s) {
  int r = cub_stream_enter(b, stream, s);

  if (r == CUDA_SUCCESS && !b->current)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS)
    r = range_check(b, addr, size);
  if (r == CUDA_SUCCESS)
    r = stage_ready(b);
  return r;
}

static size_t piece(uint64_t size, uint64_t off) {
  return size - off < CUB_STAGE_CHUNK ? (size_t)(size - off)
                                      : CUB_STAGE_CHUNK;
}

/* Waits for every chunk still marked pending, keeping the first error in
 * |*r| if it holds none. */
static void wait_pending(struct gp_backend *b, bool *pending, int *r) {
  int k, rr;

  for (k = 0; k < CUB_STAGE_CHUNKS; k++) {
    if (!pending[k])
      continue;
    rr = b->drv.cuEventSynchronize(b->stage[k].done);
    if (*r == CUDA_SUCCESS)
      *r = rr;
    pending[k] = false;
  }
}

int cub_memcpy_htod_pipe(struct gp_backend *b, uint64_t dst, uint64_t size,
                         uint64_t stream, gp_copy_fill_fn fill, void *arg) {
  bool pending[CUB_STAGE_CHUNKS] = {false};
  uint64_t off;
  CUstream s = NULL;
  size_t n;
  int r = copy_enter(b, dst, size, stream, &s), io = 0, k = 0;

  for (off = 0; off < size; off += n, k = (k + 1) % CUB_STAGE_CHUNKS) {
    struct cub_chunk *c = &b->stage[k];
    n = piece(size, off);
    if (r == CUDA_SUCCESS && b->stage_failed) {
      io = fill(arg, b->plain, n);
      /* From pageable memory the call returns once the source is
       * consumed. */
      if (io == 0)
        r = b->drv.cuMemcpyHtoDAsync((CUdeviceptr)(dst + off), b->plain, n,
                                     s);
    } else if (r == CUDA_SUCCESS) {
      if (pending[k]) {
        r = b->drv.cuEventSynchronize(c->done);
        pending[k] = false;
      }
      io = fill(arg, r == CUDA_SUCCESS ? c->host : NULL, n);
      if (io == 0 && r == CUDA_SUCCESS) {
        r = b->drv.cuMemcpyHtoDAsync((CUdeviceptr)(dst + off), c->host, n,
                                     s);
        if (r == CUDA_SUCCESS)
          r = b->drv.cuEventRecord(c->done, s);
        pending[k] = r == CUDA_SUCCESS;
      }
    } else {
      io = fill(arg, NULL, n);
    }
    if (io != 0) {
      wait_pending(b, pending, &r);
      return io;
    }
  }
  /* Complete when it returns, as the staged copy was. */
  wait_pending(b, pending, &r);
  if (r == CUDA_SUCCESS && b->stage_failed)
    r = b->drv.cuStreamSynchronize(s);
  return r;
}

/* Sends |n| zero bytes through |drain|. */
static int drain_zeros(gp_copy_drain_fn drain, void *arg, size_t n) {
  static const uint8_t zeros[64 << 10];
  size_t k;
  int io;

  for (; n > 0; n -= k) {
    k = n < sizeof(zeros) ? n : sizeof(zeros);
    if ((io = drain(arg, zeros, k)) != 0)
      return io;
  }
  return 0;
}

/* Queues the copy of piece |i| of |size| bytes from |src| into its chunk. */
static int issue(struct gp_backend *b, uint64_t src, uint64_t size,
                 uint64_t i, CUstream s, bool *pending) {
  int k = (int)(i % CUB_STAGE_CHUNKS);
  uint64_t off = i * CUB_STAGE_CHUNK;
  int r = b->drv.cuMemcpyDtoHAsync(b->stage[k].host, (CUdeviceptr)(src + off),
                                   piece(size, off), s);

  if (r == CUDA_SUCCESS)
    r = b->drv.cuEventRecord(b->stage[k].done, s);
  pending[k] = r == CUDA_SUCCESS;
  return r;
}

int cub_memcpy_dtoh_pipe(struct gp_backend *b, uint64_t src, uint64_t size,
                         uint64_t stream, gp_copy_drain_fn drain, void *arg,
                         int *copy_error) {
  bool pending[CUB_STAGE_CHUNKS] = {false};
  uint64_t i, npieces, off;
  CUstream s = NULL;
  bool started = false;
  size_t n;
  int r = copy_enter(b, src, size, stream, &s), io = 0;

  *copy_error = CUDA_SUCCESS;
  if (r != CUDA_SUCCESS)
    return r;
  npieces = size / CUB_STAGE_CHUNK + (size % CUB_STAGE_CHUNK != 0);
  if (!b->stage_failed)
    for (i = 0; i < npieces && i < CUB_STAGE_CHUNKS && r == CUDA_SUCCESS; i++)
      r = issue(b, src, size, i, s, pending);
  for (i = 0; i < npieces; i++) {
    int k = (int)(i % CUB_STAGE_CHUNKS);
    const void *data = NULL;
    off = i * CUB_STAGE_CHUNK;
    n = piece(size, off);
    if (r == CUDA_SUCCESS && b->stage_failed) {
      r = b->drv.cuMemcpyDtoHAsync(b->plain, (CUdeviceptr)(src + off), n, s);
      if (r == CUDA_SUCCESS)
        r = b->drv.cuStreamSynchronize(s);
      data = b->plain;
    } else if (r == CUDA_SUCCESS) {
      r = b->drv.cuEventSynchronize(b->stage[k].done);
      pending[k] = false;
      data = b->stage[k].host;
    }
    if (r != CUDA_SUCCESS && !started) {
      /* Nothing sent yet: the reply carries the error, no data. */
      int ignored = CUDA_SUCCESS;
      wait_pending(b, pending, &ignored);
      return r;
    }
    io = r == CUDA_SUCCESS ? drain(arg, data, n) : drain_zeros(drain, arg, n);
    started = true;
    if (io != 0)
      break;
    if (r == CUDA_SUCCESS && !b->stage_failed && i + CUB_STAGE_CHUNKS < npieces)
      r = issue(b, src, size, i + CUB_STAGE_CHUNKS, s, pending);
  }
  {
    int ignored = CUDA_SUCCESS;
    wait_pending(b, pending, &ignored);
  }
  if (io != 0)
    return io;
  if (r != CUDA_SUCCESS)
    gp__info("cuda backend: a device-to-host copy failed after its first "
             "bytes were sent (%s): the rest was sent as zeros",
             cub_error_name(&b->drv, r));
  *copy_error = r;
  return CUDA_SUCCESS;
}
