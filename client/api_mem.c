/* Device memory allocation and queries, and host ("pinned") memory.
 *
 * Every device allocation the server hands out is kept in c->dev_mem, so
 * that frees and copy or memset ranges are checked at call time (the real
 * driver returns CUDA_ERROR_INVALID_VALUE at once for those),
 * cuMemGetAddressRange is answered locally and cuMemcpy can tell device
 * pointers from host ones. The server checks everything again.
 *
 * Host memory from cuMemHostAlloc is ordinary page-aligned memory of this
 * process, kept in c->host_mem: the device cannot reach it directly across
 * the network, so it is "pinned" only in name; copies from and to it work
 * like copies from any host memory.
 */
#include <stdio.h>
#include <sys/mman.h>

#include "client.h"
#include "trace.h"

/* ---- Device memory -------------------------------------------------------- */

/* Records [dptr, dptr + size) for |ctx|. A server that hands out an
 * address twice is broken: that ends the connection. */
static CUresult track_locked(struct gp__client *c, uint64_t dptr,
                             uint64_t size, const struct gp__ctx *ctx) {
  struct gp__range rg = {.base = dptr, .size = size, .ctx = ctx};
  int rc = gp__ranges_add(&c->dev_mem, &rg);
  if (rc == 0)
    return CUDA_SUCCESS;
  if (rc == GP_EINVAL)
    return gp__lost_locked(c, GP_EPROTO, "MEM_ALLOC (overlapping address)");
  /* No memory to track it: give it back. */
  Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
  m.dptr = dptr;
  gp__send_locked(c, GP_MSG_MEM_FREE, &m.base, NULL, 0, true, NULL);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult mem_alloc(CUdeviceptr *dptr, size_t size) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (dptr == NULL || size == 0)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  m.ctx = ctx->id;
  m.size = size;
  ProtobufCMessage *reply;
  r = gp__call_locked(c, GP_MSG_MEM_ALLOC, &m.base, NULL, 0, &reply);
  if (r != CUDA_SUCCESS)
    goto out;
  uint64_t p = ((Gpupool__MemAllocReply *)reply)->dptr;
  protobuf_c_message_free_unpacked(reply, NULL);
  if ((r = track_locked(c, p, size, ctx)) == CUDA_SUCCESS)
    *dptr = (CUdeviceptr)p;
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  CUresult r = mem_alloc(dptr, bytesize);
  GP_TRACE(r, "dptr=0x%llx, size=%zu", (unsigned long long)GP_OUT(r, dptr),
           bytesize);
  return r;
}

static CUresult mem_alloc_pitch(CUdeviceptr *dptr, size_t *pitch,
                                size_t width, size_t height,
                                unsigned elem_size) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (dptr == NULL || pitch == NULL || width == 0 || height == 0 ||
      (elem_size != 4 && elem_size != 8 && elem_size != 16))
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  Gpupool__MemAllocPitch m = GPUPOOL__MEM_ALLOC_PITCH__INIT;
  m.ctx = ctx->id;
  m.width = width;
  m.height = height;
  m.element_size = elem_size;
  ProtobufCMessage *reply;
  r = gp__call_locked(c, GP_MSG_MEM_ALLOC_PITCH, &m.base, NULL, 0, &reply);
  if (r != CUDA_SUCCESS)
    goto out;
  const Gpupool__MemAllocPitchReply *pr =
      (const Gpupool__MemAllocPitchReply *)reply;
  uint64_t p = pr->dptr, pp = pr->pitch;
  protobuf_c_message_free_unpacked(reply, NULL);
  if (pp < width || pp > UINT64_MAX / height) {
    r = gp__lost_locked(c, GP_EPROTO, "MEM_ALLOC_PITCH (bad pitch)");
    goto out;
  }
  if ((r = track_locked(c, p, pp * height, ctx)) == CUDA_SUCCESS) {
    *dptr = (CUdeviceptr)p;
    *pitch = (size_t)pp;
  }
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch,
                                   size_t WidthInBytes, size_t Height,
                                   unsigned int ElementSizeBytes) {
  CUresult r =
      mem_alloc_pitch(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
  GP_TRACE(r, "dptr=0x%llx, pitch=%zu, width=%zu, height=%zu, elemsize=%u",
           (unsigned long long)GP_OUT(r, dptr), GP_OUT(r, pPitch),
           WidthInBytes, Height, ElementSizeBytes);
  return r;
}

CUresult gp__mem_free_locked(struct gp__client *c, CUdeviceptr dptr,
                             uint64_t sid) {
  /* A module's variable is not an allocation: it lives as long as its
   * module. */
  struct gp__range *rg = gp__ranges_find(&c->dev_mem, (uint64_t)dptr);
  if (rg == NULL || rg->base != (uint64_t)dptr ||
      (rg->flags & GP__RANGE_MODULE_GLOBAL))
    return CUDA_ERROR_INVALID_VALUE;
  /* A stream-ordered allocation goes back to its pool (the driver lets
   * cuMemFree free it, and cuMemFreeAsync free any allocation). */
  if (rg->pool_block != NULL)
    return gp__pool_free_locked(c, rg, sid);
  gp__ranges_remove(&c->dev_mem, (uint64_t)dptr);
  Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
  m.dptr = dptr;
  return gp__send_locked(c, GP_MSG_MEM_FREE, &m.base, NULL, 0, true, NULL);
}

/* Only the start of an allocation (or 0) may be freed. The free is sent
 * without a reply; the server completes the work that uses the memory
 * first. */
static CUresult mem_free(CUdeviceptr dptr) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  /* Freeing 0 does nothing and succeeds, as in the driver: cudart's
   * cudaFree(0), the idiom that creates the context, comes here. */
  if (dptr == 0)
    goto out;
  /* A stream-ordered allocation is freed as on the legacy default
   * stream. */
  r = gp__mem_free_locked(c, dptr, 0);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemFree_v2(CUdeviceptr dptr) {
  CUresult r = mem_free(dptr);
  GP_TRACE(r, "dptr=0x%llx", (unsigned long long)dptr);
  return r;
}

static CUresult mem_get_info(size_t *free_bytes, size_t *total_bytes) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (free_bytes == NULL || total_bytes == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  Gpupool__MemGetInfo m = GPUPOOL__MEM_GET_INFO__INIT;
  m.ctx = ctx->id;
  ProtobufCMessage *reply;
  r = gp__call_locked(c, GP_MSG_MEM_GET_INFO, &m.base, NULL, 0, &reply);
  if (r == CUDA_SUCCESS) {
    const Gpupool__MemGetInfoReply *ir = (const Gpupool__MemGetInfoReply *)reply;
    *free_bytes = (size_t)ir->free;
    *total_bytes = (size_t)ir->total;
    protobuf_c_message_free_unpacked(reply, NULL);
  }
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
  CUresult r = mem_get_info(free, total);
  GP_TRACE(r, "free=%zu, total=%zu", GP_OUT(r, free), GP_OUT(r, total));
  return r;
}

/* Answered from the allocation table. Both outputs are optional. */
static CUresult mem_get_address_range(CUdeviceptr *pbase, size_t *psize,
                                      CUdeviceptr dptr) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__current_ctx(&ctx)) == CUDA_SUCCESS) {
    const struct gp__range *rg = gp__ranges_find(&c->dev_mem, dptr);
    if (rg == NULL) {
      r = CUDA_ERROR_NOT_FOUND;
    } else {
      if (pbase != NULL)
        *pbase = (CUdeviceptr)rg->base;
      if (psize != NULL)
        *psize = (size_t)rg->size;
    }
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize,
                                       CUdeviceptr dptr) {
  CUresult r = mem_get_address_range(pbase, psize, dptr);
  GP_TRACE(r, "pbase=0x%llx, psize=%zu, dptr=0x%llx",
           (unsigned long long)GP_OUT(r, pbase), GP_OUT(r, psize),
           (unsigned long long)dptr);
  return r;
}

/* ---- Host memory -------------------------------------------------------------- */

#define GP__HOSTALLOC_FLAGS                                               \
  ((unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |      \
              CU_MEMHOSTALLOC_WRITECOMBINED))

/* Page-aligned, zeroed memory of this process. All three flags are
 * accepted: portability and write-combining mean nothing here, and a
 * mapping request fails where the real driver defers that failure to,
 * cuMemHostGetDevicePointer. */
static CUresult mem_host_alloc(void **pp, size_t size, unsigned flags) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pp == NULL || size == 0 || (flags & ~GP__HOSTALLOC_FLAGS) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  size_t len = (size + c->page_size - 1) & ~(size_t)(c->page_size - 1);
  if (len < size)
    return CUDA_ERROR_OUT_OF_MEMORY;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct gp__range rg = {.base = (uint64_t)(uintptr_t)p, .size = len,
                         .flags = flags, .host_ctx = ctx};
  gp__lock();
  int rc = gp__ranges_add(&c->host_mem, &rg);
  gp__unlock();
  if (rc < 0) {
    munmap(p, len);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *pp = p;
  return CUDA_SUCCESS;
}

GP_API CUresult cuMemHostAlloc(void **pp, size_t bytesize,
                               unsigned int Flags) {
  CUresult r = mem_host_alloc(pp, bytesize, Flags);
  GP_TRACE(r, "pp=%p, size=%zu, flags=0x%x", GP_OUT(r, pp), bytesize, Flags);
  return r;
}

GP_API CUresult cuMemAllocHost_v2(void **pp, size_t bytesize) {
  CUresult r = mem_host_alloc(pp, bytesize, 0);
  GP_TRACE(r, "pp=%p, size=%zu", GP_OUT(r, pp), bytesize);
  return r;
}

/* The legacy version only has a narrower size, which widens losslessly. */
GP_API CUresult cuMemAllocHost(void **pp, unsigned int bytesize) {
  CUresult r = mem_host_alloc(pp, bytesize, 0);
  GP_TRACE(r, "pp=%p, size=%u", GP_OUT(r, pp), bytesize);
  return r;
}

static CUresult mem_free_host(void *p) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  uint64_t base = (uint64_t)(uintptr_t)p;
  gp__lock();
  const struct gp__range *rg = gp__ranges_find(&c->host_mem, base);
  uint64_t len = rg != NULL && rg->base == base ? rg->size : 0;
  if (len != 0)
    gp__ranges_remove(&c->host_mem, base);
  gp__unlock();
  if (len == 0)
    return CUDA_ERROR_INVALID_VALUE;
  munmap(p, (size_t)len);
  return CUDA_SUCCESS;
}

GP_API CUresult cuMemFreeHost(void *p) {
  CUresult r = mem_free_host(p);
  GP_TRACE(r, "p=%p", p);
  return r;
}

/* The host flags of the allocation containing |p|. */
static CUresult mem_host_get_flags(unsigned int *flags, void *p) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  const struct gp__range *rg =
      gp__ranges_find(&c->host_mem, (uint64_t)(uintptr_t)p);
  if (rg == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  else
    *flags = rg->flags;
  gp__unlock();
  return r;
}

GP_API CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p) {
  CUresult r = mem_host_get_flags(pFlags, p);
  GP_TRACE(r, "flags=0x%x, p=%p", GP_OUT(r, pFlags), p);
  return r;
}

/* Mapped host memory is memory of this process that kernels read and
 * write directly over the bus; across a network there is no such bus, so
 * no device address can be given for it. */
static CUresult mem_host_get_device_pointer(CUdeviceptr *pdptr, void *p,
                                            unsigned int flags) {
  static atomic_bool said;
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pdptr == NULL || flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  bool known = gp__ranges_find(&c->host_mem, (uint64_t)(uintptr_t)p) != NULL;
  gp__unlock();
  if (!known)
    return CUDA_ERROR_INVALID_VALUE;
  if (!atomic_exchange(&said, true))
    gp__log("cuMemHostGetDevicePointer: mapped host memory "
            "(CU_MEMHOSTALLOC_DEVICEMAP) is not supported: a remote device "
            "cannot read or write this process's memory");
  return CUDA_ERROR_NOT_SUPPORTED;
}

GP_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p,
                                             unsigned int Flags) {
  CUresult r = mem_host_get_device_pointer(pdptr, p, Flags);
  GP_TRACE(r, "pdptr=%p, p=%p, flags=0x%x", (void *)pdptr, p, Flags);
  return r;
}
