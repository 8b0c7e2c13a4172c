/* Context settings that live on the client: resource limits, the cache and
 * shared-memory-bank preferences, flags, the context's id, the persisting
 * L2 lines.
 *
 * None of them changes what the emulated device does (it has no
 * per-thread stack to size, no device malloc heap, no L2 to partition,
 * and its printf buffer is a fixed 1 MiB per session on the server), so
 * they are checked as the driver checks them, kept per context (struct
 * gp__ctx) and read back; nothing is sent. They start from the driver's
 * defaults, and a primary context that is reset, or released to nothing,
 * comes back with the defaults (gp__ctx_misc_reset_locked(), from
 * gp__drop_ctx_objects_locked()).
 */
#include <string.h>

#include "client.h"
#include "trace.h"

/* The limits a new context has: what current drivers report. */
#define GP__STACK_SIZE_DEFAULT 1024u
#define GP__PRINTF_FIFO_DEFAULT ((size_t)1 << 20) /* the emu's buffer too */
#define GP__MALLOC_HEAP_DEFAULT ((size_t)8 << 20)
#define GP__SYNC_DEPTH_DEFAULT 2u
#define GP__SYNC_DEPTH_MAX 24u                    /* cuda.h: "maximum launch
                                                   * depth of 24" */
#define GP__PENDING_LAUNCH_DEFAULT 2048u
#define GP__L2_FETCH_DEFAULT 64u
#define GP__L2_FETCH_MAX 128u                     /* cuda.h: 0 to 128 */

void gp__ctx_misc_reset_locked(struct gp__ctx *ctx) {
  ctx->limits_set = 0;
  memset(ctx->limit, 0, sizeof(ctx->limit));
  ctx->cache_config = CU_FUNC_CACHE_PREFER_NONE;
  ctx->legacy_stream_id = 0;
  memset(&ctx->legacy_attrs, 0, sizeof(ctx->legacy_attrs));
}

static int cc(const struct gp__ctx *ctx) {
  return gp__dev_attr(ctx, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0) *
             10 +
         gp__dev_attr(ctx, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0);
}

/* CUDA_SUCCESS when |ctx| has limit |l| at all; the default in |*def|. */
static CUresult limit_default(const struct gp__ctx *ctx, CUlimit l,
                              size_t *def) {
  switch (l) {
  case CU_LIMIT_STACK_SIZE:
    *def = GP__STACK_SIZE_DEFAULT;
    return CUDA_SUCCESS;
  case CU_LIMIT_PRINTF_FIFO_SIZE:
    *def = GP__PRINTF_FIFO_DEFAULT;
    return CUDA_SUCCESS;
  case CU_LIMIT_MALLOC_HEAP_SIZE:
    *def = GP__MALLOC_HEAP_DEFAULT;
    return CUDA_SUCCESS;
  case CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH:
    /* cuda.h: only below compute capability 9.0. */
    *def = GP__SYNC_DEPTH_DEFAULT;
    return cc(ctx) < 90 ? CUDA_SUCCESS : CUDA_ERROR_UNSUPPORTED_LIMIT;
  case CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT:
    /* cuda.h: only from compute capability 3.5. */
    *def = GP__PENDING_LAUNCH_DEFAULT;
    return cc(ctx) >= 35 ? CUDA_SUCCESS : CUDA_ERROR_UNSUPPORTED_LIMIT;
  case CU_LIMIT_MAX_L2_FETCH_GRANULARITY:
    *def = GP__L2_FETCH_DEFAULT;
    return CUDA_SUCCESS;
  case CU_LIMIT_PERSISTING_L2_CACHE_SIZE:
    *def = 0;
    return CUDA_SUCCESS;
  case CU_LIMIT_CIG_ENABLED:
    /* No context here shares a graphics API's device. */
    *def = 0;
    return CUDA_SUCCESS;
  default:
    /* CU_LIMIT_SHMEM_SIZE and CU_LIMIT_CIG_SHMEM_FALLBACK_ENABLED exist
     * only in CUDA-in-graphics contexts; anything else is unknown. */
    return CUDA_ERROR_UNSUPPORTED_LIMIT;
  }
}

static CUresult ctx_get_limit(size_t *pvalue, CUlimit l) {
  struct gp__ctx *ctx;
  size_t def;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pvalue == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  if ((r = limit_default(ctx, l, &def)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  *pvalue = (ctx->limits_set & (1u << l)) ? ctx->limit[l] : def;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetLimit(size_t *pvalue, CUlimit limit) {
  CUresult r = ctx_get_limit(pvalue, limit);
  GP_TRACE(r, "pvalue=%zu, limit=%d", GP_OUT(r, pvalue), (int)limit);
  return r;
}

/* Checks |v| for limit |l| and brings it into range where the driver
 * clamps. */
static CUresult limit_value(const struct gp__ctx *ctx, CUlimit l,
                            size_t *v) {
  switch (l) {
  case CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH:
    return *v <= GP__SYNC_DEPTH_MAX ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  case CU_LIMIT_MAX_L2_FETCH_GRANULARITY:
    return *v <= GP__L2_FETCH_MAX ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  case CU_LIMIT_PERSISTING_L2_CACHE_SIZE: {
    /* A hint, clamped to what the device can set aside; a device that
     * sets nothing aside (MAX_PERSISTING_L2_CACHE_SIZE 0, as the emulated
     * one and GPUs before Ampere) has no such limit to raise. */
    int max =
        gp__dev_attr(ctx, CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE, 0);
    if (max <= 0)
      return *v == 0 ? CUDA_SUCCESS : CUDA_ERROR_UNSUPPORTED_LIMIT;
    if (*v > (size_t)max)
      *v = (size_t)max;
    return CUDA_SUCCESS;
  }
  case CU_LIMIT_CIG_ENABLED:
    /* Read-only. */
    return CUDA_ERROR_INVALID_VALUE;
  default:
    /* Stack, printf FIFO, malloc heap, pending launches: sizes the driver
     * reserves device memory for; the emulated device needs none. */
    return CUDA_SUCCESS;
  }
}

static CUresult ctx_set_limit(CUlimit l, size_t value) {
  struct gp__ctx *ctx;
  size_t def;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  if ((r = limit_default(ctx, l, &def)) != CUDA_SUCCESS)
    return r;
  if ((r = limit_value(ctx, l, &value)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  ctx->limit[l] = value;
  ctx->limits_set |= 1u << l;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxSetLimit(CUlimit limit, size_t value) {
  CUresult r = ctx_set_limit(limit, value);
  GP_TRACE(r, "limit=%d, value=%zu", (int)limit, value);
  return r;
}

/* ---- Cache and shared memory preferences ----------------------------------------- */

/* A preference only: kept for cuCtxGetCacheConfig and the occupancy
 * calculator (api_occupancy.c), where a function's own preference comes
 * first. */
static CUresult ctx_cache_config(CUfunc_cache *get, const CUfunc_cache *set) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (get == NULL && set == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if (set != NULL && (unsigned)*set > (unsigned)CU_FUNC_CACHE_PREFER_EQUAL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  if (set != NULL)
    ctx->cache_config = *set;
  else
    *get = ctx->cache_config;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetCacheConfig(CUfunc_cache *pconfig) {
  CUresult r = ctx_cache_config(pconfig, NULL);
  GP_TRACE(r, "pconfig=%d", (int)GP_OUT(r, pconfig));
  return r;
}

GP_API CUresult cuCtxSetCacheConfig(CUfunc_cache config) {
  CUresult r = ctx_cache_config(NULL, &config);
  GP_TRACE(r, "config=%d", (int)config);
  return r;
}

/* Shared memory banks have been four bytes wide, and fixed, since compute
 * capability 5.0 (every device a pool serves): the getter reports that,
 * the setter checks its argument and, as cuda.h says for such devices,
 * does nothing. */
static CUresult ctx_shmem_config(CUsharedconfig *get,
                                 const CUsharedconfig *set) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (get == NULL && set == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if (set != NULL &&
      (unsigned)*set > (unsigned)CU_SHARED_MEM_CONFIG_EIGHT_BYTE_BANK_SIZE)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  if (get != NULL)
    *get = CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetSharedMemConfig(CUsharedconfig *pConfig) {
  CUresult r = ctx_shmem_config(pConfig, NULL);
  GP_TRACE(r, "pConfig=%d", (int)GP_OUT(r, pConfig));
  return r;
}

GP_API CUresult cuCtxSetSharedMemConfig(CUsharedconfig config) {
  CUresult r = ctx_shmem_config(NULL, &config);
  GP_TRACE(r, "config=%d", (int)config);
  return r;
}

/* ---- Flags, id, L2 ------------------------------------------------------------------ */

/* The flags of cuCtxCreate: CU_CTX_FLAGS_MASK bits with at most one
 * scheduling policy. They choose how a host thread waits for the device,
 * which a remote device never lets it do directly: kept, and reported by
 * cuCtxGetFlags (and, for a primary context, cuDevicePrimaryCtxGetState). */
static CUresult ctx_set_flags(unsigned flags) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  unsigned sched = flags & CU_CTX_SCHED_MASK;
  if ((flags & ~(unsigned)CU_CTX_FLAGS_MASK) != 0 ||
      (sched != CU_CTX_SCHED_AUTO && sched != CU_CTX_SCHED_SPIN &&
       sched != CU_CTX_SCHED_YIELD && sched != CU_CTX_SCHED_BLOCKING_SYNC))
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  ctx->flags = flags;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxSetFlags(unsigned int flags) {
  CUresult r = ctx_set_flags(flags);
  GP_TRACE(r, "flags=0x%x", flags);
  return r;
}

/* The id the server knows the context by: client-chosen, never reused in
 * the process, and new for each incarnation of a primary context. */
static CUresult ctx_get_id(CUcontext h, unsigned long long *id) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (id == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  r = gp__ctx_from_handle_locked(gp__client(), h, &ctx);
  if (r == CUDA_SUCCESS)
    *id = ctx->id;
  gp__unlock();
  return r;
}

GP_API CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId) {
  CUresult r = ctx_get_id(ctx, ctxId);
  GP_TRACE(r, "ctx=%p, ctxId=%llu", (void *)ctx, GP_OUT(r, ctxId));
  return r;
}

/* No lines persist in a cache the emulated device does not have. */
static CUresult ctx_reset_persisting_l2(void) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  return gp__current_ctx(&ctx);
}

GP_API CUresult cuCtxResetPersistingL2Cache(void) {
  CUresult r = ctx_reset_persisting_l2();
  GP_TRACE(r, "%s", "");
  return r;
}
