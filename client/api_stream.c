/* Streams. A stream is a client object with a client-chosen id, so that
 * creating and destroying one are sent without waiting for a reply.
 * NULL, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD all name the calling
 * context's default stream, id 0 on the wire. */
#include <stdlib.h>

#include "client.h"
#include "trace.h"

/* The stream priority range a pool device reports: 0 is the lowest
 * priority (and the default), -5 the highest, as on current NVIDIA GPUs.
 * Priorities outside it are clamped, as the real driver does. */
#define GP__PRIO_LEAST 0
#define GP__PRIO_GREATEST (-5)

static bool is_default_stream(CUstream h) {
  return h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD;
}

static struct gp__stream *find_stream_locked(struct gp__client *c,
                                             CUstream h) {
  return (struct gp__stream *)gp__handles_find(&c->handles, h,
                                               GP__KIND_STREAM);
}

CUresult gp__stream_id_locked(struct gp__client *c, CUstream h,
                              uint64_t *id) {
  if (is_default_stream(h)) {
    *id = 0;
    return CUDA_SUCCESS;
  }
  struct gp__stream *s = find_stream_locked(c, h);
  if (s == NULL)
    return CUDA_ERROR_INVALID_HANDLE;
  *id = s->id;
  return CUDA_SUCCESS;
}

static CUresult stream_create(CUstream *ph, unsigned int flags, int priority) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (ph == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (priority > GP__PRIO_LEAST)
    priority = GP__PRIO_LEAST;
  if (priority < GP__PRIO_GREATEST)
    priority = GP__PRIO_GREATEST;
  struct gp__stream *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  s->hdr.kind = GP__KIND_STREAM;
  s->id = gp__new_id();
  s->flags = flags;
  s->priority = priority;

  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  s->ctx = ctx;
  if (gp__handles_add(&c->handles, &s->hdr) < 0) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  Gpupool__StreamCreate m = GPUPOOL__STREAM_CREATE__INIT;
  m.ctx = ctx->id;
  m.stream = s->id;
  m.flags = flags;
  m.priority = priority;
  r = gp__send_locked(c, GP_MSG_STREAM_CREATE, &m.base, NULL, 0, true, NULL);
  if (r != CUDA_SUCCESS)
    gp__handles_remove(&c->handles, &s->hdr);
out:
  gp__unlock();
  if (r != CUDA_SUCCESS) {
    free(s);
    return r;
  }
  *ph = (CUstream)s;
  return CUDA_SUCCESS;
}

GP_API CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags) {
  CUresult r = stream_create(phStream, Flags, GP__PRIO_LEAST);
  GP_TRACE(r, "phStream=%p, flags=0x%x", (void *)GP_OUT(r, phStream), Flags);
  return r;
}

GP_API CUresult cuStreamCreateWithPriority(CUstream *phStream,
                                           unsigned int flags, int priority) {
  CUresult r = stream_create(phStream, flags, priority);
  GP_TRACE(r, "phStream=%p, flags=0x%x, priority=%d",
           (void *)GP_OUT(r, phStream), flags, priority);
  return r;
}

static CUresult prio_range(int *least, int *greatest) {
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  /* Either pointer may be NULL. */
  if (least != NULL)
    *least = GP__PRIO_LEAST;
  if (greatest != NULL)
    *greatest = GP__PRIO_GREATEST;
  return CUDA_SUCCESS;
}

GP_API CUresult cuCtxGetStreamPriorityRange(int *leastPriority,
                                            int *greatestPriority) {
  CUresult r = prio_range(leastPriority, greatestPriority);
  GP_TRACE(r, "leastPriority=%d, greatestPriority=%d",
           GP_OUT(r, leastPriority), GP_OUT(r, greatestPriority));
  return r;
}

/* Destroying a stream with work pending returns at once; the server
 * finishes the work first. */
static CUresult stream_destroy(CUstream h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__stream *s = is_default_stream(h) ? NULL : find_stream_locked(c, h);
  if (s == NULL) {
    r = CUDA_ERROR_INVALID_HANDLE;
  } else {
    Gpupool__StreamDestroy m = GPUPOOL__STREAM_DESTROY__INIT;
    m.stream = s->id;
    gp__handles_remove(&c->handles, &s->hdr);
    free(s);
    r = gp__send_locked(c, GP_MSG_STREAM_DESTROY, &m.base, NULL, 0, true,
                        NULL);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamDestroy(CUstream hStream) {
  CUresult r = stream_destroy(hStream);
  GP_TRACE(r, "hStream=%p", (void *)hStream);
  return r;
}

GP_ALIAS(cuStreamDestroy_v2, cuStreamDestroy);

/* The default stream is synchronised as its whole context: no StreamSync
 * message names a context, and waiting for every stream of the context is
 * what the legacy default stream's synchronisation amounts to anyway. */
static CUresult stream_synchronize(CUstream h) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if (is_default_stream(h)) {
    if ((r = gp__current_ctx(&ctx)) == CUDA_SUCCESS) {
      Gpupool__CtxSynchronize m = GPUPOOL__CTX_SYNCHRONIZE__INIT;
      m.ctx = ctx->id;
      r = gp__call_wait_locked(c, GP_MSG_CTX_SYNCHRONIZE, &m.base);
      r = gp__sync_result_locked(c, r);
    }
  } else {
    struct gp__stream *s = find_stream_locked(c, h);
    if (s == NULL) {
      r = CUDA_ERROR_INVALID_HANDLE;
    } else {
      Gpupool__StreamSynchronize m = GPUPOOL__STREAM_SYNCHRONIZE__INIT;
      m.stream = s->id;
      r = gp__call_wait_locked(c, GP_MSG_STREAM_SYNCHRONIZE, &m.base);
      r = gp__sync_result_locked(c, r);
    }
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamSynchronize(CUstream hStream) {
  CUresult r = stream_synchronize(hStream);
  GP_TRACE(r, "hStream=%p", (void *)hStream);
  return r;
}

GP_ALIAS(cuStreamSynchronize_ptsz, cuStreamSynchronize);

/* CUDA_SUCCESS when all work is done, CUDA_ERROR_NOT_READY when not. A
 * deferred error is returned only in place of CUDA_SUCCESS. */
static CUresult stream_query(CUstream h) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t id;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if (is_default_stream(h) && (r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  if ((r = gp__stream_id_locked(c, h, &id)) != CUDA_SUCCESS)
    goto out;
  Gpupool__StreamQuery m = GPUPOOL__STREAM_QUERY__INIT;
  m.stream = id;
  m.ctx = id == 0 ? ctx->id : 0;
  r = gp__call_locked(c, GP_MSG_STREAM_QUERY, &m.base, NULL, 0, NULL);
  r = gp__sync_result_locked(c, r);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamQuery(CUstream hStream) {
  CUresult r = stream_query(hStream);
  GP_TRACE(r, "hStream=%p", (void *)hStream);
  return r;
}

GP_ALIAS(cuStreamQuery_ptsz, cuStreamQuery);

static CUresult stream_wait_event(CUstream h, CUevent hev, unsigned flags) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint64_t id;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags != CU_EVENT_WAIT_DEFAULT && flags != CU_EVENT_WAIT_EXTERNAL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if (is_default_stream(h) && (r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  if ((r = gp__stream_id_locked(c, h, &id)) != CUDA_SUCCESS)
    goto out;
  struct gp__event *ev =
      (struct gp__event *)gp__handles_find(&c->handles, hev, GP__KIND_EVENT);
  if (ev == NULL) {
    r = CUDA_ERROR_INVALID_HANDLE;
    goto out;
  }
  Gpupool__StreamWaitEvent m = GPUPOOL__STREAM_WAIT_EVENT__INIT;
  m.stream = id;
  m.event = ev->id;
  m.flags = flags;
  r = gp__send_locked(c, GP_MSG_STREAM_WAIT_EVENT, &m.base, NULL, 0, true,
                      NULL);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent,
                                  unsigned int Flags) {
  CUresult r = stream_wait_event(hStream, hEvent, Flags);
  GP_TRACE(r, "hStream=%p, hEvent=%p, flags=0x%x", (void *)hStream,
           (void *)hEvent, Flags);
  return r;
}

GP_ALIAS(cuStreamWaitEvent_ptsz, cuStreamWaitEvent);

/* The local facts about a stream: the default stream has priority 0 and no
 * flags and belongs to the current context. */
enum stream_fact { FACT_PRIORITY, FACT_FLAGS, FACT_CTX };

static CUresult stream_get(CUstream h, enum stream_fact what, void *out) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx = NULL;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (out == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  int priority = 0;
  unsigned flags = 0;
  gp__lock();
  if (is_default_stream(h)) {
    r = gp__current_ctx(&ctx);
  } else {
    struct gp__stream *s = find_stream_locked(c, h);
    if (s == NULL) {
      r = CUDA_ERROR_INVALID_HANDLE;
    } else {
      priority = s->priority;
      flags = s->flags;
      ctx = s->ctx;
    }
  }
  gp__unlock();
  if (r != CUDA_SUCCESS)
    return r;
  switch (what) {
  case FACT_PRIORITY:
    *(int *)out = priority;
    break;
  case FACT_FLAGS:
    *(unsigned *)out = flags;
    break;
  case FACT_CTX:
    *(CUcontext *)out = (CUcontext)ctx;
    break;
  }
  return CUDA_SUCCESS;
}

GP_API CUresult cuStreamGetPriority(CUstream hStream, int *priority) {
  CUresult r = stream_get(hStream, FACT_PRIORITY, priority);
  GP_TRACE(r, "hStream=%p, priority=%d", (void *)hStream,
           GP_OUT(r, priority));
  return r;
}

GP_ALIAS(cuStreamGetPriority_ptsz, cuStreamGetPriority);

GP_API CUresult cuStreamGetFlags(CUstream hStream, unsigned int *flags) {
  CUresult r = stream_get(hStream, FACT_FLAGS, flags);
  GP_TRACE(r, "hStream=%p, flags=0x%x", (void *)hStream, GP_OUT(r, flags));
  return r;
}

GP_ALIAS(cuStreamGetFlags_ptsz, cuStreamGetFlags);

GP_API CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx) {
  CUresult r = stream_get(hStream, FACT_CTX, pctx);
  GP_TRACE(r, "hStream=%p, pctx=%p", (void *)hStream,
           (void *)GP_OUT(r, pctx));
  return r;
}

GP_ALIAS(cuStreamGetCtx_ptsz, cuStreamGetCtx);
