/* 2D and 3D copies (cuMemcpy2D*, cuMemcpy3D*) and 2D memsets
 * (cuMemsetD2D*).
 *
 * A copy is first resolved into a box: |depth| slices of |height| rows of
 * |width| bytes, each side with its first byte, its pitch (bytes between
 * rows) and its slice pitch (bytes between slices). Every check the driver
 * makes at call time is made here first, without touching the server:
 * memory types, pitches at least as wide as the rows they hold (and no
 * wider than CU_DEVICE_ATTRIBUTE_MAX_PITCH), slice heights at least as tall
 * as the copy, zero LODs and reserved fields, no arithmetic that wraps, and
 * a device side that lies, from its first byte to the end of its last row,
 * inside one allocation. CU_MEMORYTYPE_UNIFIED is device memory when the
 * pointer lies in a known device allocation and host memory otherwise, as
 * cuMemcpy decides. CUDA arrays do not exist yet: CU_MEMORYTYPE_ARRAY is
 * CUDA_ERROR_NOT_SUPPORTED, said once on stderr.
 *
 * Rows that follow each other without a gap are merged first (a 2D copy
 * whose pitches equal its width is one long row, a 3D one whose slices
 * are contiguous too is one row), so the common contiguous case costs what
 * a 1D copy costs. Then, as the 1D copies in api_copy.c:
 *  - host to device: MEMCPY_2D_HTOD frames of at most GP_COPY_CHUNK bytes,
 *    each a run of whole rows (or a piece of a row wider than a chunk)
 *    packed as its payload (straight from the caller's memory when the
 *    source rows are contiguous); all NOREPLY except the last of a
 *    synchronous copy;
 *  - device to host: one MEMCPY_2D_DTOH per chunk, up to GP__DTOH_WINDOW
 *    (client.h) outstanding before the first reply is read; each reply's
 *    packed rows go straight into the destination when its rows are
 *    contiguous, else through a buffer that scatters them;
 *  - device to device: one MEMCPY_2D_DTOD per slice, no payload;
 *  - host to host: done here, row by row.
 * A 2D memset is one MEMSET_2D, always NOREPLY, like the 1D memsets.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "trace.h"

/* ---- Describing a copy --------------------------------------------------- */

/* One side of a copy as the program gives it (CUDA_MEMCPY2D/3D fields). */
struct side_desc {
  CUmemorytype type;
  const void *host;
  CUdeviceptr dev;
  CUarray array;
  size_t pitch;
  size_t x, y, z;
  size_t height; /* rows a slice (3D); 0 for a 2D copy */
};

struct copy_desc {
  struct side_desc src, dst;
  size_t width, height, depth;
};

/* One side resolved. */
struct side {
  bool device;
  uint64_t start;  /* the copy's first byte */
  uint64_t pitch;  /* bytes from one row to the next */
  uint64_t slice;  /* bytes from one slice to the next */
};

struct box {
  struct side src, dst;
  uint64_t width, height, depth;
};

/* Says once, on stderr, that CUDA arrays do not exist yet. */
static CUresult no_arrays(void) {
  static atomic_bool said;
  if (!atomic_exchange(&said, true))
    gp__log("2D/3D copies from or to CUDA arrays (CU_MEMORYTYPE_ARRAY) are "
            "not supported yet: arrays do not exist in gpupool");
  return CUDA_ERROR_NOT_SUPPORTED;
}

static CUresult check_type(CUmemorytype t) {
  switch (t) {
  case CU_MEMORYTYPE_HOST:
  case CU_MEMORYTYPE_DEVICE:
  case CU_MEMORYTYPE_UNIFIED:
    return CUDA_SUCCESS;
  case CU_MEMORYTYPE_ARRAY:
    return no_arrays();
  default:
    return CUDA_ERROR_INVALID_VALUE;
  }
}

/* The largest pitch the device takes (CU_DEVICE_ATTRIBUTE_MAX_PITCH), or
 * no limit when the server did not say. */
static uint64_t max_pitch(const struct gp__ctx *ctx) {
  int v = gp__dev_attr(ctx, CU_DEVICE_ATTRIBUTE_MAX_PITCH, 0);
  return v > 0 ? (uint64_t)v : UINT64_MAX;
}

/* Resolves side |d| of a copy of |w| x |h| x |dep| bytes (all non-zero):
 * CUDA_SUCCESS and |*out|, or CUDA_ERROR_INVALID_VALUE. Needs the lock. */
static CUresult resolve(struct gp__client *c, const struct gp__ctx *ctx,
                        const struct side_desc *d, uint64_t w, uint64_t h,
                        uint64_t dep, struct side *out) {
  uint64_t base;
  switch (d->type) {
  case CU_MEMORYTYPE_HOST:
    out->device = false;
    base = (uint64_t)(uintptr_t)d->host;
    break;
  case CU_MEMORYTYPE_DEVICE:
    out->device = true;
    base = d->dev;
    break;
  default: /* UNIFIED: check_type() let nothing else through */
    base = d->dev;
    out->device = gp__ranges_find(&c->dev_mem, base) != NULL;
    break;
  }
  uint64_t pitch = d->pitch, sh = d->height;
  /* Several rows or slices: the pitch must hold a row after its offset,
   * and for several slices a slice must hold the rows after its offset. */
  if (h > 1 || dep > 1) {
    if (d->x > pitch || w > pitch - d->x || pitch > max_pitch(ctx))
      return CUDA_ERROR_INVALID_VALUE;
  }
  if (dep > 1 && (d->y > sh || h > sh - d->y))
    return CUDA_ERROR_INVALID_VALUE;
  uint64_t slice, rows, off, extent, t;
  /* start = base + ((z * sh + y) * pitch + x) */
  if (__builtin_mul_overflow(sh, pitch, &slice) ||
      __builtin_mul_overflow((uint64_t)d->z, sh, &rows) ||
      __builtin_add_overflow(rows, (uint64_t)d->y, &rows) ||
      __builtin_mul_overflow(rows, pitch, &off) ||
      __builtin_add_overflow(off, (uint64_t)d->x, &off) ||
      __builtin_add_overflow(base, off, &out->start))
    return CUDA_ERROR_INVALID_VALUE;
  /* extent = (dep - 1) * slice + (h - 1) * pitch + w */
  if (__builtin_mul_overflow(dep - 1, slice, &extent) ||
      __builtin_mul_overflow(h - 1, pitch, &t) ||
      __builtin_add_overflow(extent, t, &extent) ||
      __builtin_add_overflow(extent, w, &extent) ||
      __builtin_add_overflow(out->start, extent - 1, &t))
    return CUDA_ERROR_INVALID_VALUE;
  if (out->device) {
    if (!gp__ranges_covers(&c->dev_mem, out->start, extent))
      return CUDA_ERROR_INVALID_VALUE;
  } else {
    /* A host side must be host memory: a device address there would be
     * read or written as this process's memory. */
    if (base == 0 || gp__ranges_find(&c->dev_mem, out->start) != NULL)
      return CUDA_ERROR_INVALID_VALUE;
  }
  out->pitch = pitch;
  out->slice = slice;
  return CUDA_SUCCESS;
}

/* Merges rows, then slices, that follow each other without a gap on both
 * sides: fewer, longer rows. The sizes fit: the extents were computed. */
static void merge(struct box *b) {
  if (b->height == 1 ||
      (b->src.pitch == b->width && b->dst.pitch == b->width)) {
    b->width *= b->height;
    b->height = 1;
    b->src.pitch = b->dst.pitch = b->width;
  }
  if (b->depth == 1 ||
      (b->height == 1 && b->src.slice == b->width &&
       b->dst.slice == b->width)) {
    b->width *= b->depth;
    b->depth = 1;
    b->src.slice = b->dst.slice = b->width;
    if (b->height == 1)
      b->src.pitch = b->dst.pitch = b->width;
  }
}

/* ---- Walking a box in chunks --------------------------------------------- */

/* A run of |rows| rows of |width| bytes, at these offsets from each side's
 * start (the sides' pitches apply), at most GP_COPY_CHUNK bytes. */
struct piece {
  uint64_t soff, doff;
  uint64_t width, rows;
};

struct cursor {
  uint64_t z, y, x;
};

static bool cursor_done(const struct box *b, const struct cursor *cur) {
  return cur->z >= b->depth;
}

/* The next piece of |b| at |cur| (false when there is none): as many whole
 * rows as fit in a chunk, or a chunk of a row wider than one. */
static bool next_piece(const struct box *b, struct cursor *cur,
                       struct piece *p) {
  if (cursor_done(b, cur))
    return false;
  p->soff = cur->z * b->src.slice + cur->y * b->src.pitch + cur->x;
  p->doff = cur->z * b->dst.slice + cur->y * b->dst.pitch + cur->x;
  if (b->width > GP_COPY_CHUNK) {
    uint64_t left = b->width - cur->x;
    p->width = left < GP_COPY_CHUNK ? left : GP_COPY_CHUNK;
    p->rows = 1;
    cur->x += p->width;
    if (cur->x == b->width) {
      cur->x = 0;
      cur->y++;
    }
  } else {
    uint64_t fit = GP_COPY_CHUNK / b->width, left = b->height - cur->y;
    p->width = b->width;
    p->rows = left < fit ? left : fit;
    cur->y += p->rows;
  }
  if (cur->y == b->height) {
    cur->y = 0;
    cur->z++;
  }
  return true;
}

/* True when the pieces of |b| have rows a pitch |pitch| apart that are not
 * contiguous (so they must be packed or scattered). */
static bool strided(const struct box *b, uint64_t pitch) {
  return b->width <= GP_COPY_CHUNK && b->height > 1 && pitch != b->width;
}

/* Bytes of the largest piece of |b|. */
static uint64_t piece_max(const struct box *b) {
  if (b->width > GP_COPY_CHUNK)
    return GP_COPY_CHUNK;
  uint64_t fit = GP_COPY_CHUNK / b->width;
  return (b->height < fit ? b->height : fit) * b->width;
}

/* ---- The transfers ------------------------------------------------------- */

static CUresult htod_locked(struct gp__client *c, const struct box *b,
                            uint64_t sid, bool async) {
  const uint8_t *src = (const uint8_t *)(uintptr_t)b->src.start;
  uint8_t *pack = NULL;
  if (strided(b, b->src.pitch) &&
      (pack = malloc((size_t)piece_max(b))) == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct cursor cur = {0};
  struct piece p;
  uint32_t last_id = 0;
  CUresult r = CUDA_SUCCESS;
  while (r == CUDA_SUCCESS && next_piece(b, &cur, &p)) {
    bool last = cursor_done(b, &cur);
    uint64_t n = p.width * p.rows;
    const uint8_t *payload = src + p.soff;
    if (p.rows > 1 && b->src.pitch != p.width) {
      for (uint64_t i = 0; i < p.rows; i++)
        memcpy(pack + i * p.width, src + p.soff + i * b->src.pitch,
               (size_t)p.width);
      payload = pack;
    }
    Gpupool__Memcpy2DHtoD m = GPUPOOL__MEMCPY2_DHTO_D__INIT;
    m.dst = b->dst.start + p.doff;
    m.dst_pitch = b->dst.pitch;
    m.width = p.width;
    m.height = p.rows;
    m.stream = sid;
    m.async = async;
    /* The payload is copied or written before the send returns, so the
     * packing buffer may be reused and, for an asynchronous copy, the
     * caller's memory too. */
    r = gp__send_locked(c, GP_MSG_MEMCPY_2D_HTOD, &m.base, payload,
                        (size_t)n, async || !last, &last_id);
  }
  free(pack);
  if (r != CUDA_SUCCESS || async)
    return r;
  r = gp__recv_locked(c, GP_MSG_MEMCPY_2D_HTOD, last_id, NULL, NULL, 0);
  return gp__sync_result_locked(c, r);
}

static CUresult dtoh_locked(struct gp__client *c, const struct box *b,
                            uint64_t sid, bool async) {
  uint8_t *dst = (uint8_t *)(uintptr_t)b->dst.start;
  uint8_t *tmp = NULL;
  if (strided(b, b->dst.pitch) &&
      (tmp = malloc((size_t)piece_max(b))) == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct piece ring[GP__DTOH_WINDOW];
  uint32_t ids[GP__DTOH_WINDOW];
  struct cursor cur = {0};
  uint64_t sent = 0, done = 0;
  bool more = true;
  CUresult first = CUDA_SUCCESS;
  for (;;) {
    while (more && sent - done < GP__DTOH_WINDOW) {
      struct piece *p = &ring[sent % GP__DTOH_WINDOW];
      next_piece(b, &cur, p);
      Gpupool__Memcpy2DDtoH m = GPUPOOL__MEMCPY2_DDTO_H__INIT;
      m.src = b->src.start + p->soff;
      m.src_pitch = b->src.pitch;
      m.width = p->width;
      m.height = p->rows;
      m.stream = sid;
      m.async = async;
      CUresult r = gp__send_locked(c, GP_MSG_MEMCPY_2D_DTOH, &m.base, NULL,
                                   0, false, &ids[sent % GP__DTOH_WINDOW]);
      if (r == CUDA_ERROR_DEVICE_UNAVAILABLE) {
        free(tmp);
        return r;
      }
      if (r != CUDA_SUCCESS) {
        /* Not sent: send no more, but read the replies already owed. */
        if (first == CUDA_SUCCESS)
          first = r;
        more = false;
        break;
      }
      sent++;
      more = !cursor_done(b, &cur);
    }
    if (done == sent)
      break;
    const struct piece *p = &ring[done % GP__DTOH_WINDOW];
    uint64_t n = p->width * p->rows;
    bool direct = p->rows == 1 || b->dst.pitch == p->width;
    CUresult r = gp__recv_locked(c, GP_MSG_MEMCPY_2D_DTOH,
                                 ids[done % GP__DTOH_WINDOW], NULL,
                                 direct ? dst + p->doff : tmp, (size_t)n);
    if (r == CUDA_ERROR_DEVICE_UNAVAILABLE && atomic_load(&c->dead)) {
      free(tmp);
      return r;
    }
    if (r == CUDA_SUCCESS && !direct) {
      for (uint64_t i = 0; i < p->rows; i++)
        memcpy(dst + p->doff + i * b->dst.pitch, tmp + i * p->width,
               (size_t)p->width);
    }
    /* A failed chunk has no payload; the others are still read, so the
     * connection stays in step. The first error is the copy's. */
    if (r != CUDA_SUCCESS && first == CUDA_SUCCESS)
      first = r;
    done++;
  }
  free(tmp);
  return async ? first : gp__sync_result_locked(c, first);
}

static CUresult dtod_locked(struct gp__client *c, const struct box *b,
                            uint64_t sid, bool async) {
  uint32_t last_id = 0;
  CUresult r = CUDA_SUCCESS;
  for (uint64_t z = 0; z < b->depth && r == CUDA_SUCCESS; z++) {
    Gpupool__Memcpy2DDtoD m = GPUPOOL__MEMCPY2_DDTO_D__INIT;
    m.dst = b->dst.start + z * b->dst.slice;
    m.dst_pitch = b->dst.pitch;
    m.src = b->src.start + z * b->src.slice;
    m.src_pitch = b->src.pitch;
    m.width = b->width;
    m.height = b->height;
    m.stream = sid;
    m.async = async;
    r = gp__send_locked(c, GP_MSG_MEMCPY_2D_DTOD, &m.base, NULL, 0,
                        async || z + 1 < b->depth, &last_id);
  }
  if (r != CUDA_SUCCESS || async)
    return r;
  r = gp__recv_locked(c, GP_MSG_MEMCPY_2D_DTOD, last_id, NULL, NULL, 0);
  return gp__sync_result_locked(c, r);
}

/* Host to host, here. Everything earlier on the stream that touches host
 * memory has completed when its call returned (api_copy.c), so doing it
 * now keeps the stream's order. No lock needed. */
static void htoh(const struct box *b) {
  for (uint64_t z = 0; z < b->depth; z++)
    for (uint64_t y = 0; y < b->height; y++)
      memmove((uint8_t *)(uintptr_t)(b->dst.start + z * b->dst.slice +
                                     y * b->dst.pitch),
              (const uint8_t *)(uintptr_t)(b->src.start + z * b->src.slice +
                                           y * b->src.pitch),
              (size_t)b->width);
}

/* ---- The entry points ---------------------------------------------------- */

/* Every 2D and 3D copy: checks, then the transfer. */
static CUresult copy_any(const struct copy_desc *d, CUstream hs, bool async) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  /* A synchronous one works on the NULL stream: it follows that stream's
   * host functions too. */
  if ((r = gp__work_stream_locked(c, hs, async, GP__STREAM_ANY_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS ||
      (r = check_type(d->src.type)) != CUDA_SUCCESS ||
      (r = check_type(d->dst.type)) != CUDA_SUCCESS ||
      d->width == 0 || d->height == 0 || d->depth == 0)
    goto out;
  struct box b = {.width = d->width, .height = d->height, .depth = d->depth};
  if ((r = resolve(c, ctx, &d->src, b.width, b.height, b.depth, &b.src)) !=
          CUDA_SUCCESS ||
      (r = resolve(c, ctx, &d->dst, b.width, b.height, b.depth, &b.dst)) !=
          CUDA_SUCCESS)
    goto out;
  merge(&b);
  if (b.src.device && b.dst.device) {
    r = dtod_locked(c, &b, sid, async);
  } else if (b.dst.device) {
    r = htod_locked(c, &b, sid, async);
  } else if (b.src.device) {
    r = dtoh_locked(c, &b, sid, async);
  } else {
    gp__unlock();
    htoh(&b);
    return CUDA_SUCCESS;
  }
out:
  gp__unlock();
  return r;
}

static CUresult copy_2d(const CUDA_MEMCPY2D *p, CUstream hs, bool async) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (p == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  struct copy_desc d = {
    .src = {p->srcMemoryType, p->srcHost, p->srcDevice, p->srcArray,
            p->srcPitch, p->srcXInBytes, p->srcY, 0, 0},
    .dst = {p->dstMemoryType, p->dstHost, p->dstDevice, p->dstArray,
            p->dstPitch, p->dstXInBytes, p->dstY, 0, 0},
    .width = p->WidthInBytes,
    .height = p->Height,
    .depth = 1,
  };
  return copy_any(&d, hs, async);
}

/* The LODs and the reserved pointers must be 0, as cuda.h says. */
static CUresult copy_3d(const CUDA_MEMCPY3D *p, CUstream hs, bool async) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (p == NULL || p->srcLOD != 0 || p->dstLOD != 0 ||
      p->reserved0 != NULL || p->reserved1 != NULL)
    return CUDA_ERROR_INVALID_VALUE;
  struct copy_desc d = {
    .src = {p->srcMemoryType, p->srcHost, p->srcDevice, p->srcArray,
            p->srcPitch, p->srcXInBytes, p->srcY, p->srcZ, p->srcHeight},
    .dst = {p->dstMemoryType, p->dstHost, p->dstDevice, p->dstArray,
            p->dstPitch, p->dstXInBytes, p->dstY, p->dstZ, p->dstHeight},
    .width = p->WidthInBytes,
    .height = p->Height,
    .depth = p->Depth,
  };
  return copy_any(&d, hs, async);
}

#define TRACE_2D(r, p)                                                        \
  GP_TRACE(r,                                                                 \
           "pCopy=%p {src: type=%d host=%p dev=0x%llx x=%zu y=%zu "           \
           "pitch=%zu; dst: type=%d host=%p dev=0x%llx x=%zu y=%zu "          \
           "pitch=%zu; width=%zu height=%zu}",                                \
           (const void *)(p), (p) ? (int)(p)->srcMemoryType : 0,              \
           (p) ? (p)->srcHost : NULL,                                         \
           (p) ? (unsigned long long)(p)->srcDevice : 0ull,                   \
           (p) ? (p)->srcXInBytes : 0, (p) ? (p)->srcY : 0,                   \
           (p) ? (p)->srcPitch : 0, (p) ? (int)(p)->dstMemoryType : 0,        \
           (p) ? (const void *)(p)->dstHost : NULL,                           \
           (p) ? (unsigned long long)(p)->dstDevice : 0ull,                   \
           (p) ? (p)->dstXInBytes : 0, (p) ? (p)->dstY : 0,                   \
           (p) ? (p)->dstPitch : 0, (p) ? (p)->WidthInBytes : 0,              \
           (p) ? (p)->Height : 0)

#define TRACE_3D(r, p)                                                        \
  GP_TRACE(r,                                                                 \
           "pCopy=%p {src: type=%d host=%p dev=0x%llx x=%zu y=%zu z=%zu "     \
           "pitch=%zu height=%zu; dst: type=%d host=%p dev=0x%llx x=%zu "     \
           "y=%zu z=%zu pitch=%zu height=%zu; width=%zu height=%zu "          \
           "depth=%zu}",                                                      \
           (const void *)(p), (p) ? (int)(p)->srcMemoryType : 0,              \
           (p) ? (p)->srcHost : NULL,                                         \
           (p) ? (unsigned long long)(p)->srcDevice : 0ull,                   \
           (p) ? (p)->srcXInBytes : 0, (p) ? (p)->srcY : 0,                   \
           (p) ? (p)->srcZ : 0, (p) ? (p)->srcPitch : 0,                      \
           (p) ? (p)->srcHeight : 0, (p) ? (int)(p)->dstMemoryType : 0,       \
           (p) ? (const void *)(p)->dstHost : NULL,                           \
           (p) ? (unsigned long long)(p)->dstDevice : 0ull,                   \
           (p) ? (p)->dstXInBytes : 0, (p) ? (p)->dstY : 0,                   \
           (p) ? (p)->dstZ : 0, (p) ? (p)->dstPitch : 0,                      \
           (p) ? (p)->dstHeight : 0, (p) ? (p)->WidthInBytes : 0,             \
           (p) ? (p)->Height : 0, (p) ? (p)->Depth : 0)

GP_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *pCopy) {
  CUresult r = copy_2d(pCopy, NULL, false);
  TRACE_2D(r, pCopy);
  return r;
}

/* The driver may refuse, for device-to-device copies, pitches that
 * cuMemAllocPitch did not give, which the unaligned version accepts; here
 * every pitch works, so both are the same copy. */
GP_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *pCopy) {
  CUresult r = copy_2d(pCopy, NULL, false);
  TRACE_2D(r, pCopy);
  return r;
}

GP_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *pCopy,
                                   CUstream hStream) {
  CUresult r = copy_2d(pCopy, hStream, true);
  TRACE_2D(r, pCopy);
  return r;
}

GP_API CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *pCopy) {
  CUresult r = copy_3d(pCopy, NULL, false);
  TRACE_3D(r, pCopy);
  return r;
}

GP_API CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *pCopy,
                                   CUstream hStream) {
  CUresult r = copy_3d(pCopy, hStream, true);
  TRACE_3D(r, pCopy);
  return r;
}

/* ---- 2D memsets ---------------------------------------------------------- */

/* |height| rows of |width| elements of |elem| bytes from |dst|, |pitch|
 * bytes apart. The pointer, and the pitch when there are several rows, must
 * be aligned to the element; the pitch must hold a row; the rows must lie
 * inside one allocation. Always sent without a reply: a failure on the
 * server is a deferred error. */
static CUresult memset_2d(uint64_t dst, size_t pitch, uint32_t value,
                          unsigned elem, size_t width, size_t height,
                          CUstream hs, bool async) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  /* A synchronous one works on the NULL stream: it follows that stream's
   * host functions too. */
  if ((r = gp__work_stream_locked(c, hs, async, GP__STREAM_ANY_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS ||
      width == 0 || height == 0)
    goto out;
  uint64_t row, extent;
  r = CUDA_ERROR_INVALID_VALUE;
  if (dst % elem != 0 || __builtin_mul_overflow((uint64_t)width, elem, &row))
    goto out;
  if (height > 1 &&
      (pitch % elem != 0 || pitch < row || pitch > max_pitch(ctx)))
    goto out;
  if (__builtin_mul_overflow((uint64_t)height - 1, (uint64_t)pitch, &extent) ||
      __builtin_add_overflow(extent, row, &extent) ||
      !gp__ranges_covers(&c->dev_mem, dst, extent))
    goto out;
  Gpupool__Memset2D m = GPUPOOL__MEMSET2_D__INIT;
  m.dst = dst;
  m.pitch = height > 1 ? pitch : row;
  m.value = value;
  m.element_size = elem;
  m.width = width;
  m.height = height;
  m.stream = sid;
  m.async = async;
  r = gp__send_locked(c, GP_MSG_MEMSET_2D, &m.base, NULL, 0, true, NULL);
out:
  gp__unlock();
  return r;
}

#define GP__MEMSET_2D(name, type, elem, fmt)                                  \
  GP_API CUresult name(CUdeviceptr dstDevice, size_t dstPitch, type v,        \
                       size_t Width, size_t Height) {                         \
    CUresult r = memset_2d(dstDevice, dstPitch, v, elem, Width, Height, NULL, \
                           false);                                            \
    GP_TRACE(r, "dst=0x%llx, pitch=%zu, value=" fmt ", width=%zu, "           \
             "height=%zu", (unsigned long long)dstDevice, dstPitch, v, Width, \
             Height);                                                         \
    return r;                                                                 \
  }

#define GP__MEMSET_2D_ASYNC(name, type, elem, fmt)                            \
  GP_API CUresult name(CUdeviceptr dstDevice, size_t dstPitch, type v,        \
                       size_t Width, size_t Height, CUstream hStream) {       \
    CUresult r = memset_2d(dstDevice, dstPitch, v, elem, Width, Height,       \
                           hStream, true);                                    \
    GP_TRACE(r, "dst=0x%llx, pitch=%zu, value=" fmt ", width=%zu, "           \
             "height=%zu, hStream=%p", (unsigned long long)dstDevice,         \
             dstPitch, v, Width, Height, (void *)hStream);                    \
    return r;                                                                 \
  }

GP__MEMSET_2D(cuMemsetD2D8_v2, unsigned char, 1, "0x%02x")
GP__MEMSET_2D(cuMemsetD2D16_v2, unsigned short, 2, "0x%04x")
GP__MEMSET_2D(cuMemsetD2D32_v2, unsigned int, 4, "0x%08x")
GP__MEMSET_2D_ASYNC(cuMemsetD2D8Async, unsigned char, 1, "0x%02x")
GP__MEMSET_2D_ASYNC(cuMemsetD2D16Async, unsigned short, 2, "0x%04x")
GP__MEMSET_2D_ASYNC(cuMemsetD2D32Async, unsigned int, 4, "0x%08x")

