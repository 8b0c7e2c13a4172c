/* Pointer attributes: cuPointerGetAttribute, cuPointerGetAttributes,
 * cuPointerSetAttribute.
 *
 * Answered locally from the client's tables: a pointer inside a range of
 * c->dev_mem is device memory (an allocation, a stream-ordered allocation
 * or a module's variable), one inside c->host_mem is host memory from
 * cuMemHostAlloc or cuMemAllocHost; anything else is memory the driver does
 * not know.
 *
 * Value types, as the driver writes them: CUcontext, CUdeviceptr, void *,
 * CUmemoryPool and size_t for what they name; unsigned long long for the
 * ids; int for the device ordinal; unsigned int for the memory type,
 * handle types, access flags and every boolean.
 *
 * What a remote device changes: host memory has no device address (the
 * device cannot reach this process's memory, so DEVICE_POINTER is
 * refused for it and ACCESS_FLAGS says NONE), and nothing is IPC,
 * GPUDirect RDMA or hardware-decompression capable.
 */
#include <stdio.h>

#include "client.h"
#include "trace.h"

enum ptr_kind { PTR_UNKNOWN, PTR_DEVICE, PTR_HOST };

/* What the tables say about one pointer. */
struct ptr_info {
  enum ptr_kind kind;
  const struct gp__range *rg; /* NULL for PTR_UNKNOWN */
};

static struct ptr_info lookup_locked(struct gp__client *c, CUdeviceptr p) {
  struct ptr_info in = {.kind = PTR_UNKNOWN};
  if ((in.rg = gp__ranges_find(&c->dev_mem, (uint64_t)p)) != NULL)
    in.kind = PTR_DEVICE;
  else if ((in.rg = gp__ranges_find(&c->host_mem, (uint64_t)p)) != NULL)
    in.kind = PTR_HOST;
  return in;
}

/* The context an allocation belongs to. */
static const struct gp__ctx *owner(const struct ptr_info *in) {
  return in->kind == PTR_DEVICE ? in->rg->ctx : in->rg->host_ctx;
}

#define PUT(type, v) (*(type *)data = (type)(v))

/* Writes attribute |a| of pointer |p| to |data|. With |lenient| (for
 * cuPointerGetAttributes) a pointer that has no such attribute gets the
 * attribute's empty value and CUDA_SUCCESS, as the driver documents;
 * without it (cuPointerGetAttribute) it is CUDA_ERROR_INVALID_VALUE.
 * Needs the lock. */
static CUresult get_one_locked(struct gp__client *c, void *data,
                               CUpointer_attribute a, CUdeviceptr p,
                               bool lenient) {
  struct ptr_info in = lookup_locked(c, p);
  bool known = in.kind != PTR_UNKNOWN;
  CUresult missing = lenient ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  switch ((int)a) {
  case CU_POINTER_ATTRIBUTE_CONTEXT:
    PUT(CUcontext, known ? (CUcontext)owner(&in) : NULL);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
    PUT(unsigned int, in.kind == PTR_DEVICE ? CU_MEMORYTYPE_DEVICE
                      : in.kind == PTR_HOST ? CU_MEMORYTYPE_HOST
                                            : 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
    /* Host memory has no device address here: a remote device cannot
     * reach this process's memory. */
    PUT(CUdeviceptr, in.kind == PTR_DEVICE ? p : 0);
    return in.kind == PTR_DEVICE ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_HOST_POINTER:
    PUT(void *, in.kind == PTR_HOST ? (void *)(uintptr_t)p : NULL);
    return in.kind == PTR_HOST ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
    PUT(unsigned int, known && in.rg->sync_memops);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_BUFFER_ID:
    PUT(unsigned long long, known ? in.rg->buffer_id : 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
    /* The physical allocation: a pool's block keeps its id across the
     * allocations it serves; anything else is its own block. */
    PUT(unsigned long long,
        !known ? 0
        : in.kind == PTR_DEVICE && in.rg->pool_block
            ? in.rg->pool_block->block_id
            : in.rg->buffer_id);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_IS_MANAGED:
    PUT(unsigned int, 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: {
    const struct gp__ctx *o = known ? owner(&in) : NULL;
    /* CU_DEVICE_INVALID for memory the driver does not know, as cudart
     * reports it (cudaInvalidDeviceId). */
    PUT(int, o != NULL ? o->device : (int)CU_DEVICE_INVALID);
    return known ? CUDA_SUCCESS : missing;
  }
  case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
  case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
  case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
    PUT(unsigned int, 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
    PUT(unsigned int, CU_MEM_HANDLE_TYPE_NONE);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    PUT(CUdeviceptr, known ? in.rg->base : 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
    PUT(size_t, known ? in.rg->size : 0);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
    /* The mapping is the server's allocation: a pool's block (the request
     * rounded up), or the allocation itself. */
    PUT(CUdeviceptr, !known ? 0
                     : in.kind == PTR_DEVICE && in.rg->pool_block
                         ? in.rg->pool_block->base
                         : in.rg->base);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
    PUT(size_t, !known ? 0
                : in.kind == PTR_DEVICE && in.rg->pool_block
                    ? in.rg->pool_block->size
                    : in.rg->size);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MAPPED:
    PUT(unsigned int, known);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
    /* The device reads and writes its own memory; host memory it cannot
     * reach at all (copies stage it through the connection). */
    PUT(unsigned int, in.kind == PTR_DEVICE
                          ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
                          : CU_POINTER_ATTRIBUTE_ACCESS_FLAG_NONE);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
    PUT(CUmemoryPool, in.kind == PTR_DEVICE ? gp__pool_handle_locked(in.rg)
                                            : NULL);
    return known ? CUDA_SUCCESS : missing;
  case CU_POINTER_ATTRIBUTE_P2P_TOKENS:
    /* The tokens are for the nv-p2p kernel interface of the machine that
     * holds the GPU; they mean nothing in this process. */
    return in.kind == PTR_DEVICE && !lenient ? CUDA_ERROR_NOT_SUPPORTED
                                             : CUDA_ERROR_INVALID_VALUE;
  default:
    return CUDA_ERROR_INVALID_VALUE;
  }
}

static CUresult pointer_get_attribute(void *data, CUpointer_attribute a,
                                      CUdeviceptr p) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (data == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  r = get_one_locked(c, data, a, p, false);
  gp__unlock();
  return r;
}

GP_API CUresult cuPointerGetAttribute(void *data,
                                      CUpointer_attribute attribute,
                                      CUdeviceptr ptr) {
  CUresult r = pointer_get_attribute(data, attribute, ptr);
  GP_TRACE(r, "data=%p, attribute=%d, ptr=0x%llx", data, (int)attribute,
           (unsigned long long)ptr);
  return r;
}

/* Every slot is checked before any is written, so a bad list leaves the
 * caller's memory alone. */
static CUresult pointer_get_attributes(unsigned n, CUpointer_attribute *attrs,
                                       void **data, CUdeviceptr p) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (n == 0 || attrs == NULL || data == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < n; i++) {
    if (data[i] == NULL || attrs[i] == CU_POINTER_ATTRIBUTE_P2P_TOKENS ||
        attrs[i] < CU_POINTER_ATTRIBUTE_CONTEXT ||
        attrs[i] > CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE)
      return CUDA_ERROR_INVALID_VALUE;
  }
  gp__lock();
  for (unsigned i = 0; i < n && r == CUDA_SUCCESS; i++)
    r = get_one_locked(c, data[i], attrs[i], p, true);
  gp__unlock();
  return r;
}

GP_API CUresult cuPointerGetAttributes(unsigned int numAttributes,
                                       CUpointer_attribute *attributes,
                                       void **data, CUdeviceptr ptr) {
  CUresult r = pointer_get_attributes(numAttributes, attributes, data, ptr);
  GP_TRACE(r, "numAttributes=%u, attributes=%p, data=%p, ptr=0x%llx",
           numAttributes, (void *)attributes, (void *)data,
           (unsigned long long)ptr);
  return r;
}

/* Only SYNC_MEMOPS may be set. Every synchronous copy here waits for its
 * reply, so the flag is kept for cuPointerGetAttribute and changes nothing
 * else. */
static CUresult pointer_set_attribute(const void *value,
                                      CUpointer_attribute a, CUdeviceptr p) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (value == NULL || a != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__range *rg = gp__ranges_find(&c->dev_mem, (uint64_t)p);
  if (rg == NULL)
    rg = gp__ranges_find(&c->host_mem, (uint64_t)p);
  if (rg == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  else
    rg->sync_memops = *(const unsigned int *)value != 0;
  gp__unlock();
  return r;
}

GP_API CUresult cuPointerSetAttribute(const void *value,
                                      CUpointer_attribute attribute,
                                      CUdeviceptr ptr) {
  CUresult r = pointer_set_attribute(value, attribute, ptr);
  GP_TRACE(r, "value=%p, attribute=%d, ptr=0x%llx", value, (int)attribute,
           (unsigned long long)ptr);
  return r;
}
