/* The stream-ordered allocator: memory pools (CUmemoryPool),
 * cuMemAllocAsync, cuMemAllocFromPoolAsync, cuMemFreeAsync.
 *
 * A pool lives in the client. Each allocation it hands out is one server
 * allocation (MEM_ALLOC in the stream's context, the request rounded up to
 * GP__POOL_GRAIN bytes): a block. A block freed with cuMemFreeAsync (or
 * cuMemFree) either stays with the pool for reuse, or goes back to the
 * server, as the pool's release threshold says: the pool keeps freed
 * blocks while it holds (reserves) no more than the threshold, and gives
 * back the rest at once (the driver gives them back at the next
 * synchronisation; the default threshold, 0, keeps nothing). The pool's
 * accounting (reserved and used bytes, their high watermarks) is the
 * blocks': reserved counts every block it holds, used the ones handed out.
 *
 * Ordering. The server executes a session's requests one after another,
 * in the order they were sent, and the emulated device runs each to
 * completion before the next. So:
 *  - an allocation's pointer is good for any work sent after it;
 *  - a free sent NOREPLY (MEM_FREE) in order releases the memory only
 *    after everything sent before it, on any stream, has run;
 *  - a block freed on one stream and reused on another is safe.
 * A backend that runs streams concurrently (the GPU backend to come) must
 * keep the first two itself, and the third needs the allocating stream to
 * wait for the freeing stream's work (an event recorded at the free); until
 * then, reuse across streams follows the pool's REUSE_* attributes: with
 * all three disabled a block is reused only on the stream that freed it.
 *
 * Stream-ordered allocations are device memory like any other: their
 * ranges are in c->dev_mem (pointing back to their block), so copies,
 * memsets, launches, cuMemGetAddressRange and cuPointerGetAttribute know
 * them; cuMemFree frees them too, as the driver allows.
 *
 * A block belongs to a context's incarnation on the server. When that
 * context is destroyed (or a primary context released or reset) the server
 * frees its memory and the client drops its ranges; the pool notices the
 * next time it looks (purge_locked()) and forgets the block.
 *
 * Pools live in a file-local table guarded by the client lock.
 */
#include <stdlib.h>

#include "client.h"
#include "trace.h"

/* Pool allocations are rounded up to this (cudaMalloc's alignment). */
#define GP__POOL_GRAIN 256u

/* A freed block serves a request of at least half its size. */
#define GP__POOL_REUSE_SLACK 2u

struct gp__pool {
  struct gp__obj hdr;       /* GP__KIND_POOL while in the handle set */
  struct gp__pool *next;    /* in pools.all */
  int device;
  bool is_default;
  bool destroyed;           /* cuMemPoolDestroy'd: out of the handle set,
                             * freed when its last block goes */
  uint64_t max_size;        /* 0: no limit but the device's memory */
  uint64_t release_threshold;
  bool reuse_follow_event, reuse_opportunistic, reuse_internal;
  uint64_t reserved, reserved_high;
  uint64_t used, used_high;
  struct gp__pool_block *blocks;
};

static struct {
  struct gp__pool **dflt;    /* per device, made on first use */
  struct gp__pool **current; /* per device: cuDeviceSetMemPool's, or NULL
                              * for the default */
  int ndevices;
  struct gp__pool *all;      /* every pool, destroyed ones included */
} pools;

/* ---- Pools --------------------------------------------------------------- */

static void pool_init(struct gp__pool *p, int device) {
  p->hdr.kind = GP__KIND_POOL;
  p->device = device;
  p->reuse_follow_event = p->reuse_opportunistic = p->reuse_internal = true;
}

/* Makes the per-device tables. Returns 0 or GP_ENOMEM. */
static int tables_locked(struct gp__client *c) {
  if (pools.dflt != NULL)
    return 0;
  pools.dflt = calloc((size_t)c->ndevices, sizeof(*pools.dflt));
  pools.current = calloc((size_t)c->ndevices, sizeof(*pools.current));
  if (pools.dflt == NULL || pools.current == NULL) {
    free(pools.dflt);
    free(pools.current);
    pools.dflt = pools.current = NULL;
    return GP_ENOMEM;
  }
  pools.ndevices = c->ndevices;
  return 0;
}

/* Device |dev|'s default pool, made on first use. NULL when out of
 * memory. */
static struct gp__pool *default_pool_locked(struct gp__client *c, int dev) {
  if (tables_locked(c) != 0)
    return NULL;
  if (pools.dflt[dev] != NULL)
    return pools.dflt[dev];
  struct gp__pool *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  pool_init(p, dev);
  p->is_default = true;
  if (gp__handles_add(&c->handles, &p->hdr) < 0) {
    free(p);
    return NULL;
  }
  p->next = pools.all;
  pools.all = p;
  pools.dflt[dev] = p;
  return p;
}

static struct gp__pool *current_pool_locked(struct gp__client *c, int dev) {
  if (tables_locked(c) != 0)
    return NULL;
  return pools.current[dev] ? pools.current[dev]
                            : default_pool_locked(c, dev);
}

/* |h| as a live pool, or NULL. */
static struct gp__pool *find_pool_locked(struct gp__client *c,
                                         CUmemoryPool h) {
  return (struct gp__pool *)gp__handles_find(&c->handles, h, GP__KIND_POOL);
}

static void pool_unlink_and_free(struct gp__pool *p) {
  for (struct gp__pool **pp = &pools.all; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  free(p);
}

/* The device's pools are usable when the server says so. */
static CUresult pools_supported(const struct gp__client *c, int dev) {
  return c->devices[dev].attr[CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED]
             ? CUDA_SUCCESS
             : CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- Blocks -------------------------------------------------------------- */

/* True while the server still holds |b|'s memory: its context's
 * incarnation is alive. */
static bool block_alive(const struct gp__pool_block *b) {
  return atomic_load(&b->ctx->state) == GP__CTX_LIVE &&
         b->ctx->id == b->ctx_id;
}

static void block_unlink(struct gp__pool_block *b) {
  struct gp__pool *p = b->pool;
  if (b->prev != NULL)
    b->prev->next = b->next;
  else
    p->blocks = b->next;
  if (b->next != NULL)
    b->next->prev = b->prev;
  p->reserved -= b->size;
  if (b->in_use)
    p->used -= b->size;
}

static void note_high(struct gp__pool *p) {
  if (p->reserved > p->reserved_high)
    p->reserved_high = p->reserved;
  if (p->used > p->used_high)
    p->used_high = p->used;
}

/* Forgets |b|, giving its memory back to the server if it still holds
 * it. The MEM_FREE goes out NOREPLY, behind everything already sent: the
 * server runs a session's requests in order, so the memory is released only
 * after all the work sent before the free (on any stream) has run. The
 * GPU backend must keep that order for frees. Returns CUDA_SUCCESS or
 * CUDA_ERROR_DEVICE_UNAVAILABLE. */
static CUresult block_release_locked(struct gp__client *c,
                                     struct gp__pool_block *b) {
  CUresult r = CUDA_SUCCESS;
  if (block_alive(b)) {
    Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
    m.dptr = b->base;
    r = gp__send_locked(c, GP_MSG_MEM_FREE, &m.base, NULL, 0, true, NULL);
  }
  block_unlink(b);
  free(b);
  return r;
}

/* Forgets the blocks of |p| whose context incarnation has gone (the server
 * freed their memory with it, and their ranges left c->dev_mem then). */
static void purge_locked(struct gp__pool *p) {
  struct gp__pool_block *b = p->blocks;
  while (b != NULL) {
    struct gp__pool_block *next = b->next;
    if (!block_alive(b)) {
      block_unlink(b);
      free(b);
    }
    b = next;
  }
}

/* Every pool: purged, and a destroyed one with no block left freed. */
static void purge_all_locked(void) {
  struct gp__pool *p = pools.all;
  while (p != NULL) {
    struct gp__pool *next = p->next;
    purge_locked(p);
    if (p->destroyed && p->blocks == NULL)
      pool_unlink_and_free(p);
    p = next;
  }
}

/* Gives cached blocks of |p| back to the server until it reserves no more
 * than |keep| bytes (blocks in use stay). */
static CUresult trim_locked(struct gp__client *c, struct gp__pool *p,
                            uint64_t keep) {
  CUresult r = CUDA_SUCCESS;
  struct gp__pool_block *b = p->blocks;
  while (b != NULL && p->reserved > keep && r == CUDA_SUCCESS) {
    struct gp__pool_block *next = b->next;
    if (!b->in_use)
      r = block_release_locked(c, b);
    b = next;
  }
  return r;
}

/* A cached block of |p| for |need| bytes in |ctx| on stream |sid|: the
 * smallest that fits and is not more than GP__POOL_REUSE_SLACK times too
 * big. A block freed on another stream qualifies when the pool's reuse
 * attributes allow it (see the top of the file). NULL if none. */
static struct gp__pool_block *find_cached(struct gp__pool *p,
                                          const struct gp__ctx *ctx,
                                          uint64_t need, uint64_t sid) {
  bool other_streams =
      p->reuse_follow_event || p->reuse_opportunistic || p->reuse_internal;
  struct gp__pool_block *best = NULL;
  for (struct gp__pool_block *b = p->blocks; b != NULL; b = b->next) {
    if (b->in_use || b->ctx != ctx || b->size < need ||
        b->size / GP__POOL_REUSE_SLACK > need ||
        (!other_streams && b->free_stream != sid))
      continue;
    if (best == NULL || b->size < best->size)
      best = b;
  }
  return best;
}

/* A new block of |need| bytes from the server in |ctx|. When the server is
 * out of memory, every pool gives its cached blocks back and it is asked
 * once more. */
static CUresult block_new_locked(struct gp__client *c, struct gp__pool *p,
                                 struct gp__ctx *ctx, uint64_t need,
                                 struct gp__pool_block **out) {
  struct gp__pool_block *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  CUresult r;
  for (int attempt = 0;; attempt++) {
    Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
    m.ctx = ctx->id;
    m.size = need;
    ProtobufCMessage *reply;
    r = gp__call_locked(c, GP_MSG_MEM_ALLOC, &m.base, NULL, 0, &reply);
    if (r == CUDA_SUCCESS) {
      b->base = ((Gpupool__MemAllocReply *)reply)->dptr;
      protobuf_c_message_free_unpacked(reply, NULL);
      break;
    }
    if (r != CUDA_ERROR_OUT_OF_MEMORY || attempt > 0) {
      free(b);
      return r;
    }
    for (struct gp__pool *q = pools.all; q != NULL; q = q->next)
      if ((r = trim_locked(c, q, 0)) != CUDA_SUCCESS) {
        free(b);
        return r;
      }
  }
  b->pool = p;
  b->size = need;
  b->ctx = ctx;
  b->ctx_id = ctx->id;
  b->block_id = gp__new_id();
  b->next = p->blocks;
  if (p->blocks != NULL)
    p->blocks->prev = b;
  p->blocks = b;
  p->reserved += need;
  *out = b;
  return CUDA_SUCCESS;
}

/* Allocates |size| bytes from |p| for work on stream |sid| of |ctx|. */
static CUresult pool_alloc_locked(struct gp__client *c, struct gp__pool *p,
                                  struct gp__ctx *ctx, uint64_t sid,
                                  uint64_t size, CUdeviceptr *dptr) {
  if (size > UINT64_MAX - (GP__POOL_GRAIN - 1))
    return CUDA_ERROR_OUT_OF_MEMORY;
  uint64_t need = (size + GP__POOL_GRAIN - 1) & ~(uint64_t)(GP__POOL_GRAIN - 1);
  purge_all_locked();
  struct gp__pool_block *b = find_cached(p, ctx, need, sid);
  CUresult r;
  if (b == NULL) {
    if (p->max_size != 0) {
      if (need > p->max_size)
        return CUDA_ERROR_OUT_OF_MEMORY;
      if (p->reserved + need > p->max_size &&
          (r = trim_locked(c, p, p->max_size - need)) != CUDA_SUCCESS)
        return r;
      if (p->reserved + need > p->max_size)
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if ((r = block_new_locked(c, p, ctx, need, &b)) != CUDA_SUCCESS)
      return r;
  }
  struct gp__range rg = {.base = b->base, .size = size, .ctx = ctx,
                         .pool_block = b};
  int rc = gp__ranges_add(&c->dev_mem, &rg);
  if (rc == GP_EINVAL)
    return gp__lost_locked(c, GP_EPROTO, "MEM_ALLOC (overlapping address)");
  if (rc != 0) {
    /* Cannot be tracked: leave it cached, or give it back. */
    trim_locked(c, p, p->release_threshold);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  b->in_use = true;
  p->used += b->size;
  note_high(p);
  *dptr = (CUdeviceptr)b->base;
  return CUDA_SUCCESS;
}

CUresult gp__pool_free_locked(struct gp__client *c, struct gp__range *rg,
                              uint64_t sid) {
  struct gp__pool_block *b = rg->pool_block;
  struct gp__pool *p = b->pool;
  gp__ranges_remove(&c->dev_mem, rg->base);
  b->in_use = false;
  p->used -= b->size;
  b->free_stream = sid;
  CUresult r;
  if (p->destroyed || !block_alive(b)) {
    r = block_release_locked(c, b);
    if (p->destroyed && p->blocks == NULL)
      pool_unlink_and_free(p);
    return r;
  }
  return trim_locked(c, p, p->release_threshold);
}

CUmemoryPool gp__pool_handle_locked(const struct gp__range *rg) {
  return rg->pool_block != NULL ? (CUmemoryPool)rg->pool_block->pool : NULL;
}

/* ---- Devices' pools ------------------------------------------------------ */

static CUresult device_pool(CUmemoryPool *out, CUdevice dev, bool current) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (out == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  if ((r = pools_supported(c, dev)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__pool *p = current ? current_pool_locked(c, dev)
                               : default_pool_locked(c, dev);
  if (p == NULL)
    r = CUDA_ERROR_OUT_OF_MEMORY;
  else
    *out = (CUmemoryPool)p;
  gp__unlock();
  return r;
}

GP_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out,
                                          CUdevice dev) {
  CUresult r = device_pool(pool_out, dev, false);
  GP_TRACE(r, "pool=%p, dev=%d", (void *)GP_OUT(r, pool_out), dev);
  return r;
}

GP_API CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev) {
  CUresult r = device_pool(pool, dev, true);
  GP_TRACE(r, "pool=%p, dev=%d", (void *)GP_OUT(r, pool), dev);
  return r;
}

static CUresult device_set_pool(CUdevice dev, CUmemoryPool h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL || p->device != dev)
    r = CUDA_ERROR_INVALID_VALUE;
  else if (tables_locked(c) != 0)
    r = CUDA_ERROR_OUT_OF_MEMORY;
  else
    pools.current[dev] = p->is_default ? NULL : p;
  gp__unlock();
  return r;
}

GP_API CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool) {
  CUresult r = device_set_pool(dev, pool);
  GP_TRACE(r, "dev=%d, pool=%p", dev, (void *)pool);
  return r;
}

/* ---- Creating and destroying pools --------------------------------------- */

/* Device-located pinned pools without IPC handles: what a pool device
 * offers (its MEMPOOL_SUPPORTED_HANDLE_TYPES is 0, and host pools are not
 * supported). */
static CUresult pool_create(CUmemoryPool *out, const CUmemPoolProps *props) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (out == NULL || props == NULL ||
      props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
      props->win32SecurityAttributes != NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < sizeof(props->reserved); i++)
    if (props->reserved[i] != 0)
      return CUDA_ERROR_INVALID_VALUE;
  switch (props->location.type) {
  case CU_MEM_LOCATION_TYPE_DEVICE:
    break;
  case CU_MEM_LOCATION_TYPE_HOST:
  case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    return CUDA_ERROR_NOT_SUPPORTED;
  default:
    return CUDA_ERROR_INVALID_VALUE;
  }
  int dev = props->location.id;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  if ((r = pools_supported(c, dev)) != CUDA_SUCCESS)
    return r;
  if (props->handleTypes != CU_MEM_HANDLE_TYPE_NONE || props->usage != 0)
    return CUDA_ERROR_NOT_SUPPORTED;
  struct gp__pool *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  pool_init(p, dev);
  p->max_size = props->maxSize;
  gp__lock();
  if (gp__handles_add(&c->handles, &p->hdr) < 0) {
    free(p);
    r = CUDA_ERROR_OUT_OF_MEMORY;
  } else {
    p->next = pools.all;
    pools.all = p;
    *out = (CUmemoryPool)p;
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolCreate(CUmemoryPool *pool,
                                const CUmemPoolProps *poolProps) {
  CUresult r = pool_create(pool, poolProps);
  GP_TRACE(r, "pool=%p, props=%p", (void *)GP_OUT(r, pool),
           (const void *)poolProps);
  return r;
}

/* Allocations still in use keep the pool's memory (and its object) until
 * they are freed, as the driver does; its cached blocks go now. */
static CUresult pool_destroy(CUmemoryPool h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL || p->is_default) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  gp__handles_remove(&c->handles, &p->hdr);
  p->destroyed = true;
  if (pools.current != NULL && pools.current[p->device] == p)
    pools.current[p->device] = NULL;
  purge_locked(p);
  r = trim_locked(c, p, 0);
  if (p->blocks == NULL)
    pool_unlink_and_free(p);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  CUresult r = pool_destroy(pool);
  GP_TRACE(r, "pool=%p", (void *)pool);
  return r;
}

/* ---- Attributes, trimming, access ---------------------------------------- */

static CUresult pool_trim(CUmemoryPool h, size_t keep) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
  } else {
    purge_locked(p);
    r = trim_locked(c, p, keep);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep) {
  CUresult r = pool_trim(pool, minBytesToKeep);
  GP_TRACE(r, "pool=%p, minBytesToKeep=%zu", (void *)pool, minBytesToKeep);
  return r;
}

/* The high watermarks may only be reset, to 0, after which they follow
 * the current value again; the current values are read-only. Lowering the
 * release threshold gives back at once the cached memory above it (the
 * driver does at the next synchronisation). */
static CUresult pool_set_attribute(CUmemoryPool h, CUmemPool_attribute a,
                                   void *value) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (value == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  purge_locked(p);
  switch (a) {
  case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    p->reuse_follow_event = *(const int *)value != 0;
    break;
  case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    p->reuse_opportunistic = *(const int *)value != 0;
    break;
  case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
    p->reuse_internal = *(const int *)value != 0;
    break;
  case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
    p->release_threshold = *(const cuuint64_t *)value;
    r = trim_locked(c, p, p->release_threshold);
    break;
  case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
    if (*(const cuuint64_t *)value != 0)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      p->reserved_high = p->reserved;
    break;
  case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
    if (*(const cuuint64_t *)value != 0)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      p->used_high = p->used;
    break;
  default:
    r = CUDA_ERROR_INVALID_VALUE;
    break;
  }
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolSetAttribute(CUmemoryPool pool,
                                      CUmemPool_attribute attr, void *value) {
  CUresult r = pool_set_attribute(pool, attr, value);
  GP_TRACE(r, "pool=%p, attr=%d, value=%p", (void *)pool, (int)attr, value);
  return r;
}

static CUresult pool_get_attribute(CUmemoryPool h, CUmemPool_attribute a,
                                   void *value) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (value == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  purge_locked(p);
  switch (a) {
  case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    *(int *)value = p->reuse_follow_event;
    break;
  case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    *(int *)value = p->reuse_opportunistic;
    break;
  case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
    *(int *)value = p->reuse_internal;
    break;
  case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
    *(cuuint64_t *)value = p->release_threshold;
    break;
  case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT:
    *(cuuint64_t *)value = p->reserved;
    break;
  case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
    *(cuuint64_t *)value = p->reserved_high;
    break;
  case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
    *(cuuint64_t *)value = p->used;
    break;
  case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
    *(cuuint64_t *)value = p->used_high;
    break;
  default:
    r = CUDA_ERROR_INVALID_VALUE;
    break;
  }
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolGetAttribute(CUmemoryPool pool,
                                      CUmemPool_attribute attr, void *value) {
  CUresult r = pool_get_attribute(pool, attr, value);
  GP_TRACE(r, "pool=%p, attr=%d, value=%p", (void *)pool, (int)attr, value);
  return r;
}

/* The pool's own device always reads and writes it; peer access to other
 * devices is not supported, and the host never reaches device memory. */
static CUresult pool_set_access(CUmemoryPool h, const CUmemAccessDesc *map,
                                size_t count) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (map == NULL && count != 0)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count && r == CUDA_SUCCESS; i++) {
    const CUmemAccessDesc *d = &map[i];
    if (d->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
        (d->flags != CU_MEM_ACCESS_FLAGS_PROT_NONE &&
         d->flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
         d->flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE))
      r = CUDA_ERROR_INVALID_VALUE;
    else if (d->location.id < 0 || d->location.id >= c->ndevices)
      r = CUDA_ERROR_INVALID_DEVICE;
    else if (d->location.id == p->device)
      r = d->flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE
              ? CUDA_SUCCESS
              : CUDA_ERROR_INVALID_VALUE;
    else if (d->flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
      r = CUDA_ERROR_NOT_SUPPORTED;
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolSetAccess(CUmemoryPool pool,
                                   const CUmemAccessDesc *map, size_t count) {
  CUresult r = pool_set_access(pool, map, count);
  GP_TRACE(r, "pool=%p, map=%p, count=%zu", (void *)pool, (const void *)map,
           count);
  return r;
}

static CUresult pool_get_access(CUmemAccess_flags *flags, CUmemoryPool h,
                                CUmemLocation *loc) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags == NULL || loc == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__pool *p = find_pool_locked(c, h);
  if (p == NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
  } else if (loc->type == CU_MEM_LOCATION_TYPE_DEVICE) {
    if (loc->id < 0 || loc->id >= c->ndevices)
      r = CUDA_ERROR_INVALID_DEVICE;
    else
      *flags = loc->id == p->device ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                                    : CU_MEM_ACCESS_FLAGS_PROT_NONE;
  } else if (loc->type == CU_MEM_LOCATION_TYPE_HOST ||
             loc->type == CU_MEM_LOCATION_TYPE_HOST_NUMA) {
    *flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  } else {
    r = CUDA_ERROR_INVALID_VALUE;
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags,
                                   CUmemoryPool memPool,
                                   CUmemLocation *location) {
  CUresult r = pool_get_access(flags, memPool, location);
  GP_TRACE(r, "flags=%d, pool=%p, location=%p", (int)GP_OUT(r, flags),
           (void *)memPool, (void *)location);
  return r;
}

/* ---- Stream-ordered allocation and free ---------------------------------- */

/* |h| NULL: the current pool of the context's device. */
static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool h,
                            bool from_pool, CUstream hs) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (dptr == NULL || size == 0)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  /* A stream of another context is refused, as for launches. */
  if ((r = gp__work_stream_locked(c, hs, true, GP__STREAM_OF_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS)
    goto out;
  struct gp__pool *p;
  if (from_pool) {
    if ((p = find_pool_locked(c, h)) == NULL) {
      r = CUDA_ERROR_INVALID_VALUE;
      goto out;
    }
    if (p->device != ctx->device) {
      /* Memory of another device would need a context there, and peer
       * access, which the pool does not offer. */
      gp__log("cuMemAllocFromPoolAsync: a pool of device %d on a stream "
              "of device %d is not supported", p->device, ctx->device);
      r = CUDA_ERROR_NOT_SUPPORTED;
      goto out;
    }
  } else {
    if ((r = pools_supported(c, ctx->device)) != CUDA_SUCCESS)
      goto out;
    if ((p = current_pool_locked(c, ctx->device)) == NULL) {
      r = CUDA_ERROR_OUT_OF_MEMORY;
      goto out;
    }
  }
  r = pool_alloc_locked(c, p, ctx, sid, size, dptr);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize,
                                CUstream hStream) {
  CUresult r = alloc_async(dptr, bytesize, NULL, false, hStream);
  GP_TRACE(r, "dptr=0x%llx, size=%zu, hStream=%p",
           (unsigned long long)GP_OUT(r, dptr), bytesize, (void *)hStream);
  return r;
}

GP_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize,
                                        CUmemoryPool pool, CUstream hStream) {
  CUresult r = alloc_async(dptr, bytesize, pool, true, hStream);
  GP_TRACE(r, "dptr=0x%llx, size=%zu, pool=%p, hStream=%p",
           (unsigned long long)GP_OUT(r, dptr), bytesize, (void *)pool,
           (void *)hStream);
  return r;
}

/* A pool's allocation goes back to its pool; any other allocation (the
 * driver allows cuMemFreeAsync of cuMemAlloc memory) is freed on the server
 * by a MEM_FREE sent NOREPLY behind the work already sent, which the server
 * runs first (see the top of the file). */
static CUresult free_async(CUdeviceptr dptr, CUstream hs) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t sid;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__work_stream_locked(c, hs, true, GP__STREAM_OF_CTX, &ctx,
                                  &sid)) == CUDA_SUCCESS)
    r = gp__mem_free_locked(c, dptr, sid);
  gp__unlock();
  return r;
}

GP_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
  CUresult r = free_async(dptr, hStream);
  GP_TRACE(r, "dptr=0x%llx, hStream=%p", (unsigned long long)dptr,
           (void *)hStream);
  return r;
}
