/* Contexts: creation and destruction, the per-thread current-context stack,
 * and the devices' primary contexts.
 *
 * A context is a client object holding the server's id for it. The stack
 * of current contexts belongs to each thread (_Thread_local) and is read and
 * written without the lock; everything shared is under the client lock.
 *
 * A device's primary context is one client object for the life of the
 * process (cudart hands its handle out before retaining it). Its server
 * side exists while it is active: created with a fresh id on the 0 -> 1
 * retain (or the first retain after a reset), destroyed on the release to
 * 0 or on a reset. A reset does not release: the retain count survives it.
 */
#include <stdlib.h>

#include "client.h"
#include "trace.h"

/* What cuCtxGetApiVersion reports: the context API of CUDA 3.2, which the
 * real driver still reports for every context it creates. */
#define GP__CTX_API_VERSION 3020

/* The deepest context stack a thread may build. */
#define GP__CTX_STACK_MAX 64

struct ctx_stack {
  struct gp__ctx *v[GP__CTX_STACK_MAX];
  int n;
};

static _Thread_local struct ctx_stack stack;

CUresult gp__current_ctx(struct gp__ctx **out) {
  if (stack.n == 0)
    return CUDA_ERROR_INVALID_CONTEXT;
  struct gp__ctx *ctx = stack.v[stack.n - 1];
  if (atomic_load(&ctx->state) != GP__CTX_LIVE)
    return CUDA_ERROR_CONTEXT_IS_DESTROYED;
  *out = ctx;
  return CUDA_SUCCESS;
}

CUresult gp__ctx_lookup_locked(struct gp__client *c, CUcontext h,
                               bool inactive_ok, struct gp__ctx **out) {
  if (h == NULL)
    return gp__current_ctx(out);
  struct gp__ctx *ctx =
      (struct gp__ctx *)gp__handles_find(&c->handles, h, GP__KIND_CTX);
  if (ctx == NULL)
    return CUDA_ERROR_INVALID_CONTEXT;
  switch (atomic_load(&ctx->state)) {
  case GP__CTX_LIVE:
    *out = ctx;
    return CUDA_SUCCESS;
  case GP__CTX_INACTIVE:
    if (inactive_ok) {
      *out = ctx;
      return CUDA_SUCCESS;
    }
    return CUDA_ERROR_CONTEXT_IS_DESTROYED;
  default:
    return CUDA_ERROR_INVALID_CONTEXT;
  }
}

CUresult gp__ctx_from_handle_locked(struct gp__client *c, CUcontext h,
                                    struct gp__ctx **out) {
  return gp__ctx_lookup_locked(c, h, false, out);
}

/* |h| as any context object we made, live or not; NULL if it is none. */
static struct gp__ctx *find_ctx_locked(struct gp__client *c, CUcontext h) {
  return (struct gp__ctx *)gp__handles_find(&c->handles, h, GP__KIND_CTX);
}

static void drop_one(struct gp__obj *o, void *arg) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx = arg;
  if (o->kind == GP__KIND_STREAM && ((struct gp__stream *)o)->ctx == ctx) {
    gp__handles_remove(&c->handles, o);
    free(o);
  } else if (o->kind == GP__KIND_EVENT &&
             ((struct gp__event *)o)->ctx == ctx) {
    gp__handles_remove(&c->handles, o);
    free(o);
  } else if (o->kind == GP__KIND_MODULE &&
             ((struct gp__module *)o)->ctx == ctx) {
    /* Frees its functions too (removing them from the set is safe during
     * the walk: they become tombstones, which it skips). */
    gp__module_forget_locked(c, (struct gp__module *)o);
  }
}

void gp__drop_ctx_objects_locked(struct gp__client *c, struct gp__ctx *ctx) {
  gp__handles_foreach(&c->handles, drop_one, ctx);
  gp__ranges_remove_ctx(&c->dev_mem, ctx);
  gp__ptds_drop_ctx_locked(c, ctx);
  /* A primary context's next incarnation starts without the fault, and
   * with the default limits and settings. */
  ctx->fault = CUDA_SUCCESS;
  gp__ctx_misc_reset_locked(ctx);
}

int gp__primary_init_locked(struct gp__client *c) {
  for (int i = 0; i < c->ndevices; i++) {
    struct gp__ctx *p = calloc(1, sizeof(*p));
    if (p == NULL)
      return GP_ENOMEM;
    p->hdr.kind = GP__KIND_CTX;
    p->device = i;
    p->primary = true;
    atomic_init(&p->state, GP__CTX_INACTIVE);
    int rc = gp__handles_add(&c->handles, &p->hdr);
    if (rc < 0) {
      free(p);
      return rc;
    }
    c->devices[i].primary = p;
  }
  return 0;
}

/* Context creation flags: CU_CTX_FLAGS_MASK bits, and at most one
 * scheduling policy. */
static bool valid_ctx_flags(unsigned flags) {
  if (flags & ~(unsigned)CU_CTX_FLAGS_MASK)
    return false;
  switch (flags & CU_CTX_SCHED_MASK) {
  case CU_CTX_SCHED_AUTO:
  case CU_CTX_SCHED_SPIN:
  case CU_CTX_SCHED_YIELD:
  case CU_CTX_SCHED_BLOCKING_SYNC:
    return true;
  default:
    return false;
  }
}

/* ---- Creation and destruction -------------------------------------------- */

static CUresult ctx_create(CUcontext *pctx, unsigned int flags, CUdevice dev) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pctx == NULL || !valid_ctx_flags(flags))
    return CUDA_ERROR_INVALID_VALUE;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  if (stack.n == GP__CTX_STACK_MAX)
    return CUDA_ERROR_OUT_OF_MEMORY;

  struct gp__ctx *ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  ctx->hdr.kind = GP__KIND_CTX;
  ctx->id = gp__new_id();
  ctx->device = dev;
  ctx->flags = flags;
  atomic_init(&ctx->state, GP__CTX_LIVE);

  Gpupool__CtxCreate m = GPUPOOL__CTX_CREATE__INIT;
  m.ctx = ctx->id;
  m.device = c->devices[dev].server_ordinal;
  m.flags = flags;
  gp__lock();
  r = gp__call_locked(c, GP_MSG_CTX_CREATE, &m.base, NULL, 0, NULL);
  if (r == CUDA_SUCCESS && gp__handles_add(&c->handles, &ctx->hdr) < 0) {
    Gpupool__CtxDestroy d = GPUPOOL__CTX_DESTROY__INIT;
    d.ctx = ctx->id;
    gp__call_locked(c, GP_MSG_CTX_DESTROY, &d.base, NULL, 0, NULL);
    r = CUDA_ERROR_OUT_OF_MEMORY;
  }
  /* Eager module loading: the libraries come into every new context. */
  if (r == CUDA_SUCCESS)
    gp__libraries_ctx_ready_locked(c, ctx);
  gp__unlock();
  if (r != CUDA_SUCCESS) {
    free(ctx);
    return r;
  }
  stack.v[stack.n++] = ctx;
  *pctx = (CUcontext)ctx;
  return CUDA_SUCCESS;
}

/* cuCtxCreate and cuCtxCreate_v2 have the same ABI and behaviour. */
GP_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags,
                            CUdevice dev) {
  CUresult r = ctx_create(pctx, flags, dev);
  GP_TRACE(r, "pctx=%p, flags=0x%x, dev=%d", (void *)GP_OUT(r, pctx), flags,
           dev);
  return r;
}

GP_ALIAS(cuCtxCreate_v2, cuCtxCreate);

/* Execution affinity (SM counts for a context) cannot be honoured by a
 * pool device: asking for any is CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY,
 * as on a device that lacks the feature. */
static CUresult ctx_create_v3(CUcontext *pctx, CUexecAffinityParam *params,
                              int nparams, unsigned int flags, CUdevice dev) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (nparams < 0 || (nparams > 0 && params == NULL))
    return CUDA_ERROR_INVALID_VALUE;
  if (nparams > 0)
    return CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY;
  return ctx_create(pctx, flags, dev);
}

GP_API CUresult cuCtxCreate_v3(CUcontext *pctx,
                               CUexecAffinityParam *paramsArray,
                               int numParams, unsigned int flags,
                               CUdevice dev) {
  CUresult r = ctx_create_v3(pctx, paramsArray, numParams, flags, dev);
  GP_TRACE(r, "pctx=%p, paramsArray=%p, numParams=%d, flags=0x%x, dev=%d",
           (void *)GP_OUT(r, pctx), (void *)paramsArray, numParams, flags,
           dev);
  return r;
}

/* |params| may be NULL. Affinity as above; CUDA-in-graphics (CIG) contexts
 * share a graphics API's device and cannot exist remotely. */
static CUresult ctx_create_v4(CUcontext *pctx, CUctxCreateParams *params,
                              unsigned int flags, CUdevice dev) {
  if (params == NULL)
    return ctx_create(pctx, flags, dev);
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (params->cigParams != NULL)
    return CUDA_ERROR_NOT_SUPPORTED;
  return ctx_create_v3(pctx, params->execAffinityParams,
                       params->numExecAffinityParams, flags, dev);
}

GP_API CUresult cuCtxCreate_v4(CUcontext *pctx,
                               CUctxCreateParams *ctxCreateParams,
                               unsigned int flags, CUdevice dev) {
  CUresult r = ctx_create_v4(pctx, ctxCreateParams, flags, dev);
  GP_TRACE(r, "pctx=%p, ctxCreateParams=%p, flags=0x%x, dev=%d",
           (void *)GP_OUT(r, pctx), (void *)ctxCreateParams, flags, dev);
  return r;
}

static CUresult ctx_destroy(CUcontext h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (h == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  struct gp__cls_entry *dtors = NULL;
  gp__lock();
  struct gp__ctx *ctx = find_ctx_locked(c, h);
  /* A primary context is released, never destroyed. */
  if (ctx == NULL || ctx->primary ||
      atomic_load(&ctx->state) == GP__CTX_DESTROYED) {
    r = CUDA_ERROR_INVALID_CONTEXT;
    goto out;
  }
  /* Its queued host functions are work of the context: they run first.
   * The wait lets go of the lock, so the state is checked again. */
  if ((r = gp__hostfn_drain_locked(c, ctx)) != CUDA_SUCCESS)
    goto out;
  if (atomic_load(&ctx->state) == GP__CTX_DESTROYED) {
    r = CUDA_ERROR_INVALID_CONTEXT;
    goto out;
  }
  Gpupool__CtxDestroy m = GPUPOOL__CTX_DESTROY__INIT;
  m.ctx = ctx->id;
  r = gp__call_locked(c, GP_MSG_CTX_DESTROY, &m.base, NULL, 0, NULL);
  if (r != CUDA_SUCCESS)
    goto out;
  atomic_store(&ctx->state, GP__CTX_DESTROYED);
  gp__drop_ctx_objects_locked(c, ctx);
  dtors = gp__cls_detach_locked(c, ctx);
out:
  gp__unlock();
  if (r == CUDA_SUCCESS && stack.n > 0 && stack.v[stack.n - 1] == ctx)
    stack.n--;
  /* Context-local storage destructors: application code, so after the
   * lock is released. */
  gp__cls_run(dtors);
  return r;
}

GP_API CUresult cuCtxDestroy(CUcontext ctx) {
  CUresult r = ctx_destroy(ctx);
  GP_TRACE(r, "ctx=%p", (void *)ctx);
  return r;
}

GP_ALIAS(cuCtxDestroy_v2, cuCtxDestroy);

/* ---- The current-context stack ------------------------------------------- */

/* |h| as a context that may be made current: a live one, or a primary
 * context that is not retained yet (cudart makes it current first). */
static CUresult lookup_for_current(CUcontext h, struct gp__ctx **out) {
  struct gp__client *c = gp__client();
  gp__lock();
  struct gp__ctx *ctx = find_ctx_locked(c, h);
  gp__unlock();
  if (ctx == NULL || atomic_load(&ctx->state) == GP__CTX_DESTROYED)
    return CUDA_ERROR_INVALID_CONTEXT;
  *out = ctx;
  return CUDA_SUCCESS;
}

static CUresult ctx_push(CUcontext h) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (h == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = lookup_for_current(h, &ctx)) != CUDA_SUCCESS)
    return r;
  if (stack.n == GP__CTX_STACK_MAX)
    return CUDA_ERROR_OUT_OF_MEMORY;
  stack.v[stack.n++] = ctx;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxPushCurrent(CUcontext ctx) {
  CUresult r = ctx_push(ctx);
  GP_TRACE(r, "ctx=%p", (void *)ctx);
  return r;
}

GP_ALIAS(cuCtxPushCurrent_v2, cuCtxPushCurrent);

static CUresult ctx_pop(CUcontext *pctx) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (stack.n == 0)
    return CUDA_ERROR_INVALID_CONTEXT;
  struct gp__ctx *ctx = stack.v[--stack.n];
  if (pctx != NULL)
    *pctx = (CUcontext)ctx;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxPopCurrent(CUcontext *pctx) {
  CUresult r = ctx_pop(pctx);
  GP_TRACE(r, "pctx=%p", (void *)GP_OUT(r, pctx));
  return r;
}

GP_ALIAS(cuCtxPopCurrent_v2, cuCtxPopCurrent);

/* NULL pops the top of the stack (nothing when it is empty); a context
 * replaces the top, or becomes the only entry of an empty stack. */
static CUresult ctx_set_current(CUcontext h) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (h == NULL) {
    if (stack.n > 0)
      stack.n--;
    return CUDA_SUCCESS;
  }
  if ((r = lookup_for_current(h, &ctx)) != CUDA_SUCCESS)
    return r;
  if (stack.n == 0)
    stack.n = 1;
  stack.v[stack.n - 1] = ctx;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxSetCurrent(CUcontext ctx) {
  CUresult r = ctx_set_current(ctx);
  GP_TRACE(r, "ctx=%p", (void *)ctx);
  return r;
}

static CUresult ctx_get_current(CUcontext *pctx) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pctx == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  *pctx = stack.n > 0 ? (CUcontext)stack.v[stack.n - 1] : NULL;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetCurrent(CUcontext *pctx) {
  CUresult r = ctx_get_current(pctx);
  GP_TRACE(r, "pctx=%p", (void *)GP_OUT(r, pctx));
  return r;
}

/* ---- Queries ---------------------------------------------------------------- */

/* |h| (NULL: the current context) as a live context. */
static CUresult resolve(CUcontext h, struct gp__ctx **out) {
  if (h == NULL)
    return gp__current_ctx(out);
  gp__lock();
  CUresult r = gp__ctx_from_handle_locked(gp__client(), h, out);
  gp__unlock();
  return r;
}

static CUresult ctx_get_device(CUdevice *device, CUcontext h) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (device == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = resolve(h, &ctx)) != CUDA_SUCCESS)
    return r;
  *device = ctx->device;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetDevice(CUdevice *device) {
  CUresult r = ctx_get_device(device, NULL);
  GP_TRACE(r, "device=%d", GP_OUT(r, device));
  return r;
}

GP_API CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx) {
  CUresult r = ctx_get_device(device, ctx);
  GP_TRACE(r, "device=%d, ctx=%p", GP_OUT(r, device), (void *)ctx);
  return r;
}

static CUresult ctx_get_flags(unsigned int *flags) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  *flags = ctx->flags;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetFlags(unsigned int *flags) {
  CUresult r = ctx_get_flags(flags);
  GP_TRACE(r, "flags=0x%x", GP_OUT(r, flags));
  return r;
}

static CUresult ctx_get_api_version(CUcontext h, unsigned int *version) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (version == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = resolve(h, &ctx)) != CUDA_SUCCESS)
    return r;
  *version = GP__CTX_API_VERSION;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version) {
  CUresult r = ctx_get_api_version(ctx, version);
  GP_TRACE(r, "ctx=%p, version=%u", (void *)ctx, GP_OUT(r, version));
  return r;
}

/* Waits for all work of the context; returns its error, or the deferred
 * error of an earlier call sent without a reply. */
static CUresult ctx_synchronize(CUcontext h) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  r = gp__ctx_from_handle_locked(c, h, &ctx);
  /* Host functions queued in the context first (the wait lets go of the
   * lock: look the context up again). */
  if (r == CUDA_SUCCESS &&
      (r = gp__hostfn_drain_locked(c, ctx)) == CUDA_SUCCESS)
    r = gp__ctx_from_handle_locked(c, h, &ctx);
  if (r == CUDA_SUCCESS) {
    Gpupool__CtxSynchronize m = GPUPOOL__CTX_SYNCHRONIZE__INIT;
    m.ctx = ctx->id;
    r = gp__call_wait_locked(c, GP_MSG_CTX_SYNCHRONIZE, &m.base);
    r = gp__sync_result_locked(c, r);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuCtxSynchronize(void) {
  CUresult r = ctx_synchronize(NULL);
  GP_TRACE(r, "%s", "");
  return r;
}

GP_API CUresult cuCtxSynchronize_v2(CUcontext ctx) {
  CUresult r = ctx_synchronize(ctx);
  GP_TRACE(r, "ctx=%p", (void *)ctx);
  return r;
}

/* ---- Primary contexts ------------------------------------------------------- */

/* The device's primary context, after the common checks. */
static CUresult primary_of(CUdevice dev, struct gp__ctx **out) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  *out = c->devices[dev].primary;
  return CUDA_SUCCESS;
}

static CUresult primary_retain(CUcontext *pctx, CUdevice dev) {
  struct gp__client *c = gp__client();
  struct gp__ctx *p;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pctx == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = primary_of(dev, &p)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  /* The server side exists while the context is active: it is created on
   * the first retain, or on the first one after a reset. */
  if (atomic_load(&p->state) != GP__CTX_LIVE) {
    Gpupool__PrimaryCtxRetain m = GPUPOOL__PRIMARY_CTX_RETAIN__INIT;
    m.ctx = gp__new_id();
    m.device = c->devices[dev].server_ordinal;
    m.flags = p->flags;
    r = gp__call_locked(c, GP_MSG_PRIMARY_CTX_RETAIN, &m.base, NULL, 0, NULL);
    if (r == CUDA_SUCCESS) {
      p->id = m.ctx;
      atomic_store(&p->state, GP__CTX_LIVE);
      gp__libraries_ctx_ready_locked(c, p);
    }
  }
  if (r == CUDA_SUCCESS) {
    p->retains++;
    *pctx = (CUcontext)p;
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
  CUresult r = primary_retain(pctx, dev);
  GP_TRACE(r, "pctx=%p, dev=%d", (void *)GP_OUT(r, pctx), dev);
  return r;
}

/* Destroys the server side of |p| and forgets its objects. Needs the
 * lock. */
static CUresult primary_deactivate_locked(struct gp__client *c,
                                          struct gp__ctx *p) {
  Gpupool__PrimaryCtxRelease m = GPUPOOL__PRIMARY_CTX_RELEASE__INIT;
  m.ctx = p->id;
  CUresult r =
      gp__call_locked(c, GP_MSG_PRIMARY_CTX_RELEASE, &m.base, NULL, 0, NULL);
  /* Whatever the server said, this incarnation is over on our side: its id
   * is never used again. */
  atomic_store(&p->state, GP__CTX_INACTIVE);
  p->id = 0;
  gp__drop_ctx_objects_locked(c, p);
  return r;
}

/* Does not pop the context from any stack, unlike cuCtxDestroy. */
static CUresult primary_release(CUdevice dev) {
  struct gp__ctx *p;
  struct gp__cls_entry *dtors = NULL;
  CUresult r = primary_of(dev, &p);
  if (r != CUDA_SUCCESS)
    return r;
  const struct gp__stream_ref ref = {.ctx = p};
  gp__lock();
  /* The release that ends the context lets its host functions run first;
   * any other only counts down, and waits for nothing. The wait lets go of
   * the lock, so another thread may have retained or released meanwhile:
   * both are looked at again after each wake. */
  while (p->retains == 1 && atomic_load(&p->state) == GP__CTX_LIVE &&
         gp__hostfn_pending_locked(&ref, GP__HOSTFN_CTX))
    if ((r = gp__hostfn_wait_one_locked(gp__client())) != CUDA_SUCCESS)
      break;
  if (r == CUDA_SUCCESS) {
    if (p->retains == 0) {
      r = CUDA_ERROR_INVALID_CONTEXT;
    } else if (--p->retains == 0 && atomic_load(&p->state) == GP__CTX_LIVE) {
      r = primary_deactivate_locked(gp__client(), p);
      dtors = gp__cls_detach_locked(gp__client(), p);
    }
  }
  gp__unlock();
  gp__cls_run(dtors); /* without the lock: application code */
  return r;
}

GP_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev) {
  CUresult r = primary_release(dev);
  GP_TRACE(r, "dev=%d", dev);
  return r;
}

GP_ALIAS(cuDevicePrimaryCtxRelease_v2, cuDevicePrimaryCtxRelease);

/* Destroys the context and everything in it. It does not release it: the
 * retain count stays, and the next retain creates the context anew.
 * Resetting an inactive primary context is a no-op. */
static CUresult primary_reset(CUdevice dev) {
  struct gp__ctx *p;
  struct gp__cls_entry *dtors = NULL;
  CUresult r = primary_of(dev, &p);
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  /* Its host functions run first (the wait lets go of the lock). */
  if (atomic_load(&p->state) == GP__CTX_LIVE)
    r = gp__hostfn_drain_locked(gp__client(), p);
  if (r == CUDA_SUCCESS && atomic_load(&p->state) == GP__CTX_LIVE) {
    r = primary_deactivate_locked(gp__client(), p);
    dtors = gp__cls_detach_locked(gp__client(), p);
  }
  gp__unlock();
  gp__cls_run(dtors); /* without the lock: application code */
  return r;
}

GP_API CUresult cuDevicePrimaryCtxReset(CUdevice dev) {
  CUresult r = primary_reset(dev);
  GP_TRACE(r, "dev=%d", dev);
  return r;
}

GP_ALIAS(cuDevicePrimaryCtxReset_v2, cuDevicePrimaryCtxReset);

static CUresult primary_get_state(CUdevice dev, unsigned int *flags,
                                  int *active) {
  struct gp__ctx *p;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags == NULL || active == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = primary_of(dev, &p)) != CUDA_SUCCESS)
    return r;
  gp__lock();
  *flags = p->flags;
  *active = atomic_load(&p->state) == GP__CTX_LIVE;
  gp__unlock();
  return CUDA_SUCCESS;
}

GP_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags,
                                           int *active) {
  CUresult r = primary_get_state(dev, flags, active);
  GP_TRACE(r, "dev=%d, flags=0x%x, active=%d", dev, GP_OUT(r, flags),
           GP_OUT(r, active));
  return r;
}

/* The flags only choose how the host thread waits for the device, which a
 * remote device never lets it do directly, so changing them on an active
 * context needs no message: the next activation sends them. The legacy
 * version refuses while the context is active, as it did in the driver. */
static CUresult primary_set_flags(CUdevice dev, unsigned int flags,
                                  bool legacy) {
  struct gp__ctx *p;
  CUresult r = primary_of(dev, &p);
  if (r != CUDA_SUCCESS)
    return r;
  if (!valid_ctx_flags(flags))
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if (legacy && atomic_load(&p->state) == GP__CTX_LIVE)
    r = CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE;
  else
    p->flags = flags;
  gp__unlock();
  return r;
}

GP_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {
  CUresult r = primary_set_flags(dev, flags, true);
  GP_TRACE(r, "dev=%d, flags=0x%x", dev, flags);
  return r;
}

GP_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev,
                                              unsigned int flags) {
  CUresult r = primary_set_flags(dev, flags, false);
  GP_TRACE(r, "dev=%d, flags=0x%x", dev, flags);
  return r;
}
