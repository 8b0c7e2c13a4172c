/* Memory copies and memsets.
 *
 * Ranges are checked against the allocation table first: a device range
 * must lie inside one allocation, or the call is CUDA_ERROR_INVALID_VALUE
 * at once, as in the real driver. A size of 0 is a successful no-op, also
 * as in the real driver, once the context has been checked.
 *
 * Copies travel in chunks of at most GP_COPY_CHUNK bytes (protocol.md):
 *  - host to device: one MEMCPY_HTOD frame per chunk with the chunk as its
 *    payload, all NOREPLY except the last of a synchronous copy, so a
 *    synchronous copy costs one round trip however large it is;
 *  - device to host: one MEMCPY_DTOH request per chunk, sent before any
 *    reply is read, each reply's payload read straight into the caller's
 *    buffer. At most GP__DTOH_WINDOW requests are outstanding (client.h);
 *  - device to device: one request, no payload.
 * Asynchronous host-to-device copies are complete, as far as the caller's
 * buffer is concerned, when the call returns (the bytes are on their way),
 * as the driver promises for pageable memory. Asynchronous device-to-host
 * copies wait for their data: it has to arrive before the call can
 * return it.
 */
#include <string.h>

#include "client.h"
#include "trace.h"

static bool device_range_ok(struct gp__client *c, uint64_t p, uint64_t n) {
  return gp__ranges_covers(&c->dev_mem, p, n);
}

/* The copy itself, after all checks. Each chunk is compressed when the
 * transfer's sample said it pays (GPUPOOL_COMPRESS=auto) or always (on);
 * a chunk that does not shrink by an eighth in auto mode goes raw, and so
 * do the transfer's other chunks. */
static CUresult htod_locked(struct gp__client *c, uint64_t dst,
                            const uint8_t *src, uint64_t n, uint64_t sid,
                            bool async) {
  uint32_t last_id = 0;
  CUresult r = CUDA_SUCCESS;
  bool squeeze = gp_z_worth(&c->z, c->z.mode, src, (size_t)n);
  for (uint64_t off = 0; off < n && r == CUDA_SUCCESS; off += GP_COPY_CHUNK) {
    uint64_t len = n - off < GP_COPY_CHUNK ? n - off : GP_COPY_CHUNK;
    bool last = off + len == n;
    Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
    m.dst = dst + off;
    m.size = len;
    m.stream = sid;
    m.async = async;
    const uint8_t *payload = src + off;
    size_t plen = (size_t)len;
    uint16_t flags = 0;
    uint8_t *zb = squeeze ? gp__zbuf_locked(c, gp_z_bound((size_t)len))
                          : NULL;
    if (zb != NULL) {
      size_t z = gp_z_compress(&c->z, zb, c->zcap, payload, plen);
      if (z > 0 && (c->z.mode == GP_Z_ON || z < plen - plen / 8)) {
        c->z.chunks_compressed++;
        c->z.bytes_in += plen;
        c->z.bytes_out += z;
        payload = zb;
        plen = z;
        flags = GP_FRAME_F_ZSTD;
      } else {
        c->z.chunks_raw++;
        squeeze = false;
      }
    }
    r = gp__send_flags_locked(c, GP_MSG_MEMCPY_HTOD, &m.base, payload, plen,
                              async || !last, flags, &last_id);
  }
  if (r != CUDA_SUCCESS || async)
    return r;
  r = gp__recv_locked(c, GP_MSG_MEMCPY_HTOD, last_id, NULL, NULL, 0);
  return gp__sync_result_locked(c, r);
}

static CUresult dtoh_locked(struct gp__client *c, uint8_t *dst, uint64_t src,
                            uint64_t n, uint64_t sid, bool async) {
  uint64_t nchunks = (n + GP_COPY_CHUNK - 1) / GP_COPY_CHUNK;
  uint32_t ids[GP__DTOH_WINDOW];
  uint64_t sent = 0, done = 0;
  CUresult first = CUDA_SUCCESS;
  while (done < nchunks) {
    while (sent < nchunks && sent - done < GP__DTOH_WINDOW) {
      uint64_t off = sent * GP_COPY_CHUNK;
      Gpupool__MemcpyDtoH m = GPUPOOL__MEMCPY_DTO_H__INIT;
      m.src = src + off;
      m.size = n - off < GP_COPY_CHUNK ? n - off : GP_COPY_CHUNK;
      m.stream = sid;
      m.async = async;
      m.compress = c->z.mode;
      CUresult r = gp__send_locked(c, GP_MSG_MEMCPY_DTOH, &m.base, NULL, 0,
                                   false, &ids[sent % GP__DTOH_WINDOW]);
      if (r == CUDA_ERROR_DEVICE_UNAVAILABLE)
        return r;
      if (r != CUDA_SUCCESS) {
        /* Not sent: send no more, but read the replies already owed. */
        if (first == CUDA_SUCCESS)
          first = r;
        nchunks = sent;
        break;
      }
      sent++;
    }
    if (done == nchunks)
      break;
    uint64_t off = done * GP_COPY_CHUNK;
    uint64_t len = n - off < GP_COPY_CHUNK ? n - off : GP_COPY_CHUNK;
    CUresult r = gp__recv_locked(c, GP_MSG_MEMCPY_DTOH,
                                 ids[done % GP__DTOH_WINDOW], NULL, dst + off,
                                 (size_t)len);
    if (r == CUDA_ERROR_DEVICE_UNAVAILABLE && atomic_load(&c->dead))
      return r;
    /* A failed chunk has no payload; the others are still read, so the
     * stream stays in step. The first error is the copy's. */
    if (r != CUDA_SUCCESS && first == CUDA_SUCCESS)
      first = r;
    done++;
  }
  return async ? first : gp__sync_result_locked(c, first);
}

static CUresult dtod_locked(struct gp__client *c, uint64_t dst, uint64_t src,
                            uint64_t n, uint64_t sid, bool async) {
  Gpupool__MemcpyDtoD m = GPUPOOL__MEMCPY_DTO_D__INIT;
  m.dst = dst;
  m.src = src;
  m.size = n;
  m.stream = sid;
  m.async = async;
  if (async)
    return gp__send_locked(c, GP_MSG_MEMCPY_DTOD, &m.base, NULL, 0, true,
                           NULL);
  CUresult r = gp__call_locked(c, GP_MSG_MEMCPY_DTOD, &m.base, NULL, 0, NULL);
  return gp__sync_result_locked(c, r);
}

enum dir { HTOD, DTOH, DTOD, UNIFIED };

/* One entry for every copy: checks, then the copy in direction |d|
 * (UNIFIED: inferred from the allocation table, as with unified
 * addressing: a pointer inside a known device allocation is device memory,
 * anything else host memory). */
static CUresult copy(enum dir d, uint64_t dst, uint64_t src, size_t n,
                     CUstream hs, bool async) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  /* A synchronous call works on the NULL stream and follows its host
   * functions as any other work on it. */
  if ((r = gp__work_stream_locked(c, hs, async, GP__STREAM_ANY_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS ||
      n == 0)
    goto out;
  if (d == UNIFIED) {
    bool dst_dev = gp__ranges_find(&c->dev_mem, dst) != NULL;
    bool src_dev = gp__ranges_find(&c->dev_mem, src) != NULL;
    if (dst_dev && src_dev) {
      d = DTOD;
    } else if (dst_dev) {
      d = HTOD;
    } else if (src_dev) {
      d = DTOH;
    } else {
      /* Host to host: no device involved. Everything before it on the
       * stream that touches host memory has already completed (see
       * above), so doing it now keeps the order. */
      gp__unlock();
      if (dst == 0 || src == 0)
        return CUDA_ERROR_INVALID_VALUE;
      memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
      return CUDA_SUCCESS;
    }
  }
  switch (d) {
  case HTOD:
    if (src == 0 || !device_range_ok(c, dst, n))
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = htod_locked(c, dst, (const uint8_t *)(uintptr_t)src, n, sid, async);
    break;
  case DTOH:
    if (dst == 0 || !device_range_ok(c, src, n))
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = dtoh_locked(c, (uint8_t *)(uintptr_t)dst, src, n, sid, async);
    break;
  default:
    if (!device_range_ok(c, dst, n) || !device_range_ok(c, src, n))
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = dtod_locked(c, dst, src, n, sid, async);
    break;
  }
out:
  gp__unlock();
  return r;
}

#define HOST(p) ((uint64_t)(uintptr_t)(p))

/* The _ptds / _ptsz versions, which differ only in what a NULL stream
 * means (the per-thread default stream), are in api_ptsz.c. */

GP_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost,
                                size_t ByteCount) {
  CUresult r = copy(HTOD, dstDevice, HOST(srcHost), ByteCount, NULL, false);
  GP_TRACE(r, "dst=0x%llx, src=%p, size=%zu", (unsigned long long)dstDevice,
           srcHost, ByteCount);
  return r;
}

GP_API CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice,
                                size_t ByteCount) {
  CUresult r = copy(DTOH, HOST(dstHost), srcDevice, ByteCount, NULL, false);
  GP_TRACE(r, "dst=%p, src=0x%llx, size=%zu", dstHost,
           (unsigned long long)srcDevice, ByteCount);
  return r;
}

GP_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                size_t ByteCount) {
  CUresult r = copy(DTOD, dstDevice, srcDevice, ByteCount, NULL, false);
  GP_TRACE(r, "dst=0x%llx, src=0x%llx, size=%zu",
           (unsigned long long)dstDevice, (unsigned long long)srcDevice,
           ByteCount);
  return r;
}

GP_API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount) {
  CUresult r = copy(UNIFIED, dst, src, ByteCount, NULL, false);
  GP_TRACE(r, "dst=0x%llx, src=0x%llx, size=%zu", (unsigned long long)dst,
           (unsigned long long)src, ByteCount);
  return r;
}

GP_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice,
                                     const void *srcHost, size_t ByteCount,
                                     CUstream hStream) {
  CUresult r = copy(HTOD, dstDevice, HOST(srcHost), ByteCount, hStream, true);
  GP_TRACE(r, "dst=0x%llx, src=%p, size=%zu, hStream=%p",
           (unsigned long long)dstDevice, srcHost, ByteCount,
           (void *)hStream);
  return r;
}

GP_API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice,
                                     size_t ByteCount, CUstream hStream) {
  CUresult r = copy(DTOH, HOST(dstHost), srcDevice, ByteCount, hStream, true);
  GP_TRACE(r, "dst=%p, src=0x%llx, size=%zu, hStream=%p", dstHost,
           (unsigned long long)srcDevice, ByteCount, (void *)hStream);
  return r;
}

GP_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice,
                                     CUdeviceptr srcDevice, size_t ByteCount,
                                     CUstream hStream) {
  CUresult r = copy(DTOD, dstDevice, srcDevice, ByteCount, hStream, true);
  GP_TRACE(r, "dst=0x%llx, src=0x%llx, size=%zu, hStream=%p",
           (unsigned long long)dstDevice, (unsigned long long)srcDevice,
           ByteCount, (void *)hStream);
  return r;
}

GP_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src,
                              size_t ByteCount, CUstream hStream) {
  CUresult r = copy(UNIFIED, dst, src, ByteCount, hStream, true);
  GP_TRACE(r, "dst=0x%llx, src=0x%llx, size=%zu, hStream=%p",
           (unsigned long long)dst, (unsigned long long)src, ByteCount,
           (void *)hStream);
  return r;
}

/* ---- Memsets ------------------------------------------------------------------ */

/* |count| elements of |elem| bytes from |dst|, which must be aligned to
 * |elem| and lie inside one allocation. Always sent without a reply: a
 * failure on the server is a deferred error. */
static CUresult memset_any(uint64_t dst, uint32_t value, unsigned elem,
                           size_t count, CUstream hs, bool async) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__work_stream_locked(c, hs, async, GP__STREAM_ANY_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS ||
      count == 0)
    goto out;
  if (dst % elem != 0 || count > UINT64_MAX / elem ||
      !device_range_ok(c, dst, (uint64_t)count * elem)) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  Gpupool__Memset m = GPUPOOL__MEMSET__INIT;
  m.dst = dst;
  m.value = value;
  m.element_size = elem;
  m.count = count;
  m.stream = sid;
  m.async = async;
  r = gp__send_locked(c, GP_MSG_MEMSET, &m.base, NULL, 0, true, NULL);
out:
  gp__unlock();
  return r;
}

#define GP__MEMSET(name, type, elem, fmt)                                     \
  GP_API CUresult name(CUdeviceptr dstDevice, type v, size_t N) {             \
    CUresult r = memset_any(dstDevice, v, elem, N, NULL, false);              \
    GP_TRACE(r, "dst=0x%llx, value=" fmt ", count=%zu",                       \
             (unsigned long long)dstDevice, v, N);                            \
    return r;                                                                 \
  }

#define GP__MEMSET_ASYNC(name, type, elem, fmt)                               \
  GP_API CUresult name(CUdeviceptr dstDevice, type v, size_t N,               \
                       CUstream hStream) {                                    \
    CUresult r = memset_any(dstDevice, v, elem, N, hStream, true);            \
    GP_TRACE(r, "dst=0x%llx, value=" fmt ", count=%zu, hStream=%p",           \
             (unsigned long long)dstDevice, v, N, (void *)hStream);           \
    return r;                                                                 \
  }

GP__MEMSET(cuMemsetD8_v2, unsigned char, 1, "0x%02x")
GP__MEMSET(cuMemsetD16_v2, unsigned short, 2, "0x%04x")
GP__MEMSET(cuMemsetD32_v2, unsigned int, 4, "0x%08x")
GP__MEMSET_ASYNC(cuMemsetD8Async, unsigned char, 1, "0x%02x")
GP__MEMSET_ASYNC(cuMemsetD16Async, unsigned short, 2, "0x%04x")
GP__MEMSET_ASYNC(cuMemsetD32Async, unsigned int, 4, "0x%08x")
