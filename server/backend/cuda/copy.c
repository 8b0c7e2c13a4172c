/* Pipelined bulk copies (see backend.h, memcpy_htod_pipe and
 * memcpy_dtoh_pipe).
 *
 * The session owns CUB_STAGE_CHUNKS pinned chunks of CUB_STAGE_CHUNK bytes
 * with one event each. Host to device: the worker fills chunk k from the
 * socket while the copy of chunk k-1 runs; a chunk is refilled only after
 * its event says its copy is done. Device to host: the copies of the first
 * CUB_STAGE_CHUNKS chunks (a whole GP_COPY_CHUNK request) are queued at
 * once and all of them waited for before the first byte goes to the
 * socket, so an error is answered in the reply, never after data; the
 * sends then overlap only with the copies of later chunks (a copy over
 * CUB_STAGE_CHUNKS chunks, which the worker never asks for), whose failure
 * can only end the session.
 *
 * The chunks are allocated with CU_MEMHOSTALLOC_PORTABLE on the first bulk
 * copy, in that copy's context, and serve every context of the session;
 * they die with the context that allocated them (cuda.c calls
 * cub_stage_ctx_end first). Events belong to one context: a copy in
 * another context destroys them and creates them there. Without pinned
 * memory (no cuMemHostAlloc, or it fails, e.g. in a faulted context) a
 * copy goes through an ordinary buffer, one chunk at a time, and a later
 * copy tries the pinned allocation again.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"
#include "gpupool/errors.h"
#include "log.h"

/* The chunks one copy uses: pinned with events, or the ordinary buffer. */
struct stage_view {
  void *buf[CUB_STAGE_CHUNKS];
  bool pinned;
};

/* Destroys the events (in their context) unless |ctx_dying|: then they
 * die with it, and destroying them would only earn its sticky error. */
static void events_free(struct gp_backend *b, bool ctx_dying) {
  int k;

  if (b->stage_ev_ctx && !ctx_dying &&
      cub_make_current(b, b->stage_ev_ctx) == CUDA_SUCCESS) {
    /* Their copies are complete: every pipe waits for its own. */
    for (k = 0; k < CUB_STAGE_CHUNKS; k++)
      if (b->stage[k].done)
        b->drv.cuEventDestroy(b->stage[k].done);
  }
  for (k = 0; k < CUB_STAGE_CHUNKS; k++)
    b->stage[k].done = NULL;
  b->stage_ev_ctx = NULL;
}

/* Frees the pinned chunks, in the context that allocated them. */
static void host_free(struct gp_backend *b) {
  int k;

  if (b->stage_host_ctx &&
      cub_make_current(b, b->stage_host_ctx) == CUDA_SUCCESS) {
    for (k = 0; k < CUB_STAGE_CHUNKS; k++)
      if (b->stage[k].host)
        b->drv.cuMemFreeHost(b->stage[k].host);
  }
  for (k = 0; k < CUB_STAGE_CHUNKS; k++)
    b->stage[k].host = NULL;
  b->stage_host_ctx = NULL;
}

void cub_stage_ctx_end(struct gp_backend *b, CUcontext h) {
  if (h && b->stage_ev_ctx == h)
    events_free(b, true);
  if (h && b->stage_host_ctx == h)
    host_free(b);
}

void cub_stage_free(struct gp_backend *b) {
  events_free(b, false);
  host_free(b);
  free(b->plain);
  b->plain = NULL;
}

/* Pinned chunks with events in context |cur|. False (and a log line the
 * first time) when there are none for this copy. */
static bool stage_pinned(struct gp_backend *b, CUcontext cur) {
  int k, r = CUDA_SUCCESS;

  if (!b->drv.cuMemHostAlloc || !b->drv.cuMemFreeHost)
    return false;
  if (!b->stage[0].host) {
    for (k = 0; k < CUB_STAGE_CHUNKS && r == CUDA_SUCCESS; k++)
      r = b->drv.cuMemHostAlloc(&b->stage[k].host, CUB_STAGE_CHUNK,
                                CU_MEMHOSTALLOC_PORTABLE);
    b->stage_host_ctx = cur;
    if (r != CUDA_SUCCESS) {
      if (!b->stage_warned)
        gp__info("cuda backend: no pinned staging memory (%s): bulk copies "
                 "go through an ordinary buffer until an allocation works",
                 cub_error_name(&b->drv, r));
      b->stage_warned = true;
      host_free(b);
      cub_make_current(b, cur);
      return false;
    }
  }
  if (b->stage_ev_ctx != cur) {
    events_free(b, false);
    if (cub_make_current(b, cur) != CUDA_SUCCESS)
      return false;
    for (k = 0; k < CUB_STAGE_CHUNKS && r == CUDA_SUCCESS; k++)
      r = b->drv.cuEventCreate(&b->stage[k].done, CU_EVENT_DISABLE_TIMING);
    b->stage_ev_ctx = cur;
    if (r != CUDA_SUCCESS) {
      /* Some were created in |cur|, which is current. */
      events_free(b, false);
      return false;
    }
  }
  return cub_make_current(b, cur) == CUDA_SUCCESS;
}

/* The chunks for a copy in the current context. Returns CUDA_SUCCESS or
 * CUDA_ERROR_OUT_OF_MEMORY (not even an ordinary buffer). */
static int stage_ready(struct gp_backend *b, struct stage_view *v) {
  int k;

  v->pinned = stage_pinned(b, b->current);
  if (!v->pinned && !b->plain) {
    b->plain = malloc((size_t)CUB_STAGE_CHUNKS * CUB_STAGE_CHUNK);
    if (!b->plain)
      return CUDA_ERROR_OUT_OF_MEMORY;
  }
  for (k = 0; k < CUB_STAGE_CHUNKS; k++)
    v->buf[k] = v->pinned ? b->stage[k].host
                          : (char *)b->plain + (size_t)k * CUB_STAGE_CHUNK;
  return CUDA_SUCCESS;
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

/* The stream, the current context, the range and the chunks of one
 * copy. */
static int copy_enter(struct gp_backend *b, uint64_t addr, uint64_t size,
                      uint64_t stream, CUstream *s, struct stage_view *v) {
  int r = cub_stream_enter_ptr(b, stream, addr, 0, s);

  if (r == CUDA_SUCCESS && !b->current)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS)
    r = range_check(b, addr, size);
  if (r == CUDA_SUCCESS)
    r = stage_ready(b, v);
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
  struct stage_view v;
  uint64_t off;
  CUstream s = NULL;
  size_t n;
  int r = copy_enter(b, dst, size, stream, &s, &v), io = 0, k = 0;

  for (off = 0; off < size; off += n, k = (k + 1) % CUB_STAGE_CHUNKS) {
    struct cub_chunk *c = &b->stage[k];
    n = piece(size, off);
    if (r == CUDA_SUCCESS && !v.pinned) {
      io = fill(arg, v.buf[0], n);
      /* From pageable memory the call returns once the source is
       * consumed. */
      if (io == 0)
        r = b->drv.cuMemcpyHtoDAsync((CUdeviceptr)(dst + off), v.buf[0], n,
                                     s);
    } else if (r == CUDA_SUCCESS) {
      if (pending[k]) {
        r = b->drv.cuEventSynchronize(c->done);
        pending[k] = false;
      }
      io = fill(arg, r == CUDA_SUCCESS ? v.buf[k] : NULL, n);
      if (io == 0 && r == CUDA_SUCCESS) {
        r = b->drv.cuMemcpyHtoDAsync((CUdeviceptr)(dst + off), v.buf[k], n,
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
  if (r == CUDA_SUCCESS && !v.pinned && size > 0)
    r = b->drv.cuStreamSynchronize(s);
  return r;
}

/* Queues the copy of piece |i| of |size| bytes from |src| into its chunk;
 * through the ordinary buffer, waits for it. */
static int issue(struct gp_backend *b, const struct stage_view *v,
                 uint64_t src, uint64_t size, uint64_t i, CUstream s,
                 bool *pending) {
  int k = (int)(i % CUB_STAGE_CHUNKS);
  uint64_t off = i * CUB_STAGE_CHUNK;
  int r = b->drv.cuMemcpyDtoHAsync(v->buf[k], (CUdeviceptr)(src + off),
                                   piece(size, off), s);

  if (r == CUDA_SUCCESS && v->pinned) {
    r = b->drv.cuEventRecord(b->stage[k].done, s);
    pending[k] = r == CUDA_SUCCESS;
  } else if (r == CUDA_SUCCESS) {
    r = b->drv.cuStreamSynchronize(s);
  }
  return r;
}

/* A copy failed after the reply's header promised its data: nothing true
 * can follow it, so the session ends. */
static int failed_midway(struct gp_backend *b, bool *pending, int r,
                         uint64_t off, uint64_t size) {
  int ignored = CUDA_SUCCESS;

  wait_pending(b, pending, &ignored);
  gp__error("cuda backend: a device-to-host copy of %llu bytes failed at "
            "byte %llu, after its first bytes were sent (%s): closing the "
            "session", (unsigned long long)size, (unsigned long long)off,
            cub_error_name(&b->drv, r));
  return GP_EIO;
}

int cub_memcpy_dtoh_pipe(struct gp_backend *b, uint64_t src, uint64_t size,
                         uint64_t stream, gp_copy_drain_fn drain,
                         void *arg) {
  bool pending[CUB_STAGE_CHUNKS] = {false};
  struct stage_view v;
  uint64_t i, npieces, off;
  CUstream s = NULL;
  size_t n;
  int r = copy_enter(b, src, size, stream, &s, &v), io;

  if (r != CUDA_SUCCESS)
    return r;
  npieces = size / CUB_STAGE_CHUNK + (size % CUB_STAGE_CHUNK != 0);
  /* Every chunk the buffers hold, complete before anything is sent: an
   * error goes in the reply, with no data. */
  for (i = 0; i < npieces && i < CUB_STAGE_CHUNKS && r == CUDA_SUCCESS; i++)
    r = issue(b, &v, src, size, i, s, pending);
  wait_pending(b, pending, &r);
  if (r != CUDA_SUCCESS)
    return r;
  for (i = 0; i < npieces; i++) {
    int k = (int)(i % CUB_STAGE_CHUNKS);
    off = i * CUB_STAGE_CHUNK;
    n = piece(size, off);
    /* A later chunk, queued when its buffer was sent. */
    if (pending[k]) {
      r = b->drv.cuEventSynchronize(b->stage[k].done);
      pending[k] = false;
      if (r != CUDA_SUCCESS)
        return failed_midway(b, pending, r, off, size);
    }
    io = drain(arg, v.buf[k], n);
    if (io != 0) {
      int ignored = CUDA_SUCCESS;
      wait_pending(b, pending, &ignored);
      return io;
    }
    if (i + CUB_STAGE_CHUNKS < npieces) {
      r = issue(b, &v, src, size, i + CUB_STAGE_CHUNKS, s, pending);
      if (r != CUDA_SUCCESS)
        return failed_midway(b, pending, r, (i + CUB_STAGE_CHUNKS) *
                             CUB_STAGE_CHUNK, size);
    }
  }
  return CUDA_SUCCESS;
}
