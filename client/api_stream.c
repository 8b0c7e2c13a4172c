/* Streams. A stream is a client object with a client-chosen id, so that
 * creating and destroying one are sent without waiting for a reply.
 *
 * What a handle names (gp__stream_ref_locked()):
 *  - CU_STREAM_LEGACY, and NULL: the calling thread's current context's
 *    legacy default stream, id 0 on the wire;
 *  - CU_STREAM_PER_THREAD, and NULL inside a _ptds/_ptsz entry point
 *    (api_ptsz.c): the calling thread's per-thread default stream of its
 *    current context. It is a real stream on the server, created on first
 *    use (a blocking one: like CUDA's, it synchronises with the legacy
 *    stream), kept in a list per thread (never in the handle set, so no
 *    handle the application holds can name it), and destroyed when the
 *    thread exits or forgotten when its context goes;
 *  - anything else: a stream from cuStreamCreate*, looked up in the handle
 *    set.
 * Every call that puts work on a stream resolves it through
 * gp__stream_use_locked(), which first waits for the host functions that
 * work must follow (api_hostfn.c).
 */
#include <pthread.h>
#include <stdlib.h>

#include "client.h"
#include "trace.h"

/* The stream priority range a pool device reports: 0 is the lowest
 * priority (and the default), -5 the highest, as on current NVIDIA GPUs.
 * Priorities outside it are clamped, as the real driver does. */
#define GP__PRIO_LEAST 0
#define GP__PRIO_GREATEST (-5)

static bool is_special(CUstream h) {
  return h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD;
}

static struct gp__stream *find_stream_locked(struct gp__client *c,
                                             CUstream h) {
  return (struct gp__stream *)gp__handles_find(&c->handles, h,
                                               GP__KIND_STREAM);
}

static int clamp_priority(int priority) {
  if (priority > GP__PRIO_LEAST)
    return GP__PRIO_LEAST;
  if (priority < GP__PRIO_GREATEST)
    return GP__PRIO_GREATEST;
  return priority;
}

/* ---- Per-thread default streams -------------------------------------------- */

/* A thread's per-thread default streams, one per context it used them in.
 * Allocated on the thread's first use, freed when it exits. */
struct gp__ptds {
  struct gp__ptds *prev, *next; /* in ptds_all */
  struct gp__stream *streams;   /* linked by pt_next */
};

static struct gp__ptds *ptds_all; /* every thread's (locked) */
static _Thread_local struct gp__ptds *ptds_self;
static _Thread_local bool ptds_null; /* NULL means the per-thread stream */
static pthread_key_t ptds_key;
static pthread_once_t ptds_once = PTHREAD_ONCE_INIT;
static bool ptds_key_ok;

bool gp__ptds_begin(void) {
  bool previous = ptds_null;
  ptds_null = true;
  return previous;
}

void gp__ptds_end(bool previous) { ptds_null = previous; }

static void ptds_unlink_locked(struct gp__ptds *t) {
  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    ptds_all = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
}

/* At thread exit (the key's destructor, on the exiting thread): destroys
 * the thread's streams on the server, without waiting, and frees them. */
static void ptds_thread_exit(void *arg) {
  struct gp__client *c = gp__client();
  struct gp__ptds *t = arg;
  ptds_self = NULL;
  /* In a fork()ed child the lock may belong to a thread that does not
   * exist there, and the connection is the parent's: leave everything. */
  if (atomic_load(&c->forked))
    return;
  gp__lock();
  struct gp__stream *s;
  while ((s = t->streams) != NULL) {
    t->streams = s->pt_next;
    /* Streams of contexts that went were dropped from the list then. */
    Gpupool__StreamDestroy m = GPUPOOL__STREAM_DESTROY__INIT;
    m.stream = s->id;
    gp__send_locked(c, GP_MSG_STREAM_DESTROY, &m.base, NULL, 0, true, NULL);
    free(s);
  }
  ptds_unlink_locked(t);
  gp__unlock();
  free(t);
}

static void ptds_key_init(void) {
  ptds_key_ok = pthread_key_create(&ptds_key, ptds_thread_exit) == 0;
}

/* When the library is unloaded (dlclose) no thread that exits later may
 * call into it. At process exit this changes nothing: the server frees
 * what the session held. */
__attribute__((destructor)) static void ptds_fini(void) {
  if (ptds_key_ok)
    pthread_key_delete(ptds_key);
}

/* The calling thread's per-thread default stream of |ctx|, created (on the
 * server too, without waiting) if it has none yet. Returns CUDA_SUCCESS,
 * CUDA_ERROR_OUT_OF_MEMORY or the send's error. Needs the lock. */
static CUresult ptds_get_locked(struct gp__client *c, struct gp__ctx *ctx,
                                struct gp__stream **out) {
  struct gp__ptds *t = ptds_self;
  if (t == NULL) {
    if ((t = calloc(1, sizeof(*t))) == NULL)
      return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_once(&ptds_once, ptds_key_init);
    /* Without the key (only if the process has run out of them) the
     * streams last until the session ends; the server frees them then. */
    if (ptds_key_ok)
      pthread_setspecific(ptds_key, t);
    t->next = ptds_all;
    if (ptds_all != NULL)
      ptds_all->prev = t;
    ptds_all = t;
    ptds_self = t;
  }
  for (struct gp__stream *s = t->streams; s != NULL; s = s->pt_next)
    if (s->ctx == ctx) {
      *out = s;
      return CUDA_SUCCESS;
    }
  struct gp__stream *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  s->hdr.kind = GP__KIND_STREAM;
  s->id = gp__new_id();
  s->ctx = ctx;
  s->owner = t;
  Gpupool__StreamCreate m = GPUPOOL__STREAM_CREATE__INIT;
  m.ctx = ctx->id;
  m.stream = s->id;
  m.flags = CU_STREAM_DEFAULT;
  m.priority = 0;
  CUresult r =
      gp__send_locked(c, GP_MSG_STREAM_CREATE, &m.base, NULL, 0, true, NULL);
  if (r != CUDA_SUCCESS) {
    free(s);
    return r;
  }
  s->pt_next = t->streams;
  t->streams = s;
  *out = s;
  return CUDA_SUCCESS;
}

void gp__ptds_drop_ctx_locked(struct gp__client *c, struct gp__ctx *ctx) {
  (void)c;
  for (struct gp__ptds *t = ptds_all; t != NULL; t = t->next) {
    struct gp__stream **pp = &t->streams;
    while (*pp != NULL) {
      struct gp__stream *s = *pp;
      if (s->ctx == ctx) {
        *pp = s->pt_next;
        free(s);
      } else {
        pp = &s->pt_next;
      }
    }
  }
}

/* ---- Resolving handles ----------------------------------------------------- */

CUresult gp__stream_ref_locked(struct gp__client *c, CUstream h,
                               struct gp__stream_ref *out) {
  struct gp__ctx *ctx;
  CUresult r;
  if (h == NULL)
    h = ptds_null ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
  if (h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
    if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
      return r;
    out->ctx = ctx;
    out->blocking = true;
    if (h == CU_STREAM_LEGACY) {
      out->s = NULL;
      out->id = 0;
      return CUDA_SUCCESS;
    }
    if ((r = ptds_get_locked(c, ctx, &out->s)) != CUDA_SUCCESS)
      return r;
    out->id = out->s->id;
    return CUDA_SUCCESS;
  }
  struct gp__stream *s = find_stream_locked(c, h);
  if (s == NULL)
    return CUDA_ERROR_INVALID_HANDLE;
  out->ctx = s->ctx;
  out->s = s;
  out->id = s->id;
  out->blocking = !(s->flags & CU_STREAM_NON_BLOCKING);
  return CUDA_SUCCESS;
}

/* Resolves |h| once no host function of |scope| on it is queued: the
 * stream may have gone while the lock was let go, so it is looked up again
 * after every wait. */
static CUresult ref_after_locked(struct gp__client *c, CUstream h,
                                 enum gp__hostfn_scope scope,
                                 struct gp__stream_ref *out) {
  for (;;) {
    CUresult r = gp__stream_ref_locked(c, h, out);
    if (r != CUDA_SUCCESS || !gp__hostfn_pending_locked(out, scope))
      return r;
    if ((r = gp__hostfn_wait_one_locked(c)) != CUDA_SUCCESS)
      return r;
  }
}

CUresult gp__stream_use_locked(struct gp__client *c, CUstream h,
                               struct gp__stream_ref *out) {
  return ref_after_locked(c, h, GP__HOSTFN_SUBMIT, out);
}

CUresult gp__stream_id_locked(struct gp__client *c, CUstream h,
                              uint64_t *id) {
  struct gp__stream_ref ref;
  CUresult r = gp__stream_use_locked(c, h, &ref);
  if (r == CUDA_SUCCESS)
    *id = ref.id;
  return r;
}

CUresult gp__work_stream_locked(struct gp__client *c, CUstream hs, bool async,
                                enum gp__stream_scope scope,
                                struct gp__ctx **ctx, uint64_t *sid) {
  struct gp__stream_ref ref;
  CUresult r = gp__current_ctx(ctx);
  if (r != CUDA_SUCCESS)
    return r;
  if ((r = gp__stream_use_locked(c, async ? hs : NULL, &ref)) !=
      CUDA_SUCCESS)
    return r;
  /* The context may have been destroyed while the lock was let go. */
  if ((r = gp__current_ctx(ctx)) != CUDA_SUCCESS)
    return r;
  if (scope == GP__STREAM_OF_CTX && ref.ctx != *ctx)
    return CUDA_ERROR_INVALID_HANDLE;
  *sid = ref.id;
  return CUDA_SUCCESS;
}

/* ---- Creation and destruction ------------------------------------------------ */

static CUresult stream_create(CUstream *ph, unsigned int flags, int priority) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (ph == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  priority = clamp_priority(priority);
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
 * finishes the work first, and host functions queued on it still run. The
 * default streams cannot be destroyed. */
static CUresult stream_destroy(CUstream h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__stream *s = is_special(h) ? NULL : find_stream_locked(c, h);
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

/* ---- Synchronisation ------------------------------------------------------------ */

/* Waits for the stream's host functions, then for the server. The legacy
 * stream is synchronised as its whole context: no StreamSync message names
 * a context, and waiting for every stream of the context is what the
 * legacy default stream's synchronisation amounts to anyway. */
static CUresult stream_synchronize(CUstream h) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = ref_after_locked(c, h, GP__HOSTFN_STREAM, &ref)) != CUDA_SUCCESS)
    goto out;
  if (ref.id == 0) {
    Gpupool__CtxSynchronize m = GPUPOOL__CTX_SYNCHRONIZE__INIT;
    m.ctx = ref.ctx->id;
    r = gp__call_wait_locked(c, GP_MSG_CTX_SYNCHRONIZE, &m.base);
  } else {
    Gpupool__StreamSynchronize m = GPUPOOL__STREAM_SYNCHRONIZE__INIT;
    m.stream = ref.id;
    r = gp__call_wait_locked(c, GP_MSG_STREAM_SYNCHRONIZE, &m.base);
  }
  r = gp__sync_result_locked(c, r);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamSynchronize(CUstream hStream) {
  CUresult r = stream_synchronize(hStream);
  GP_TRACE(r, "hStream=%p", (void *)hStream);
  return r;
}

/* CUDA_SUCCESS when all work is done, CUDA_ERROR_NOT_READY when not (a
 * host function still queued on it counts as work). A deferred error is
 * returned only in place of CUDA_SUCCESS. */
static CUresult stream_query(CUstream h) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__stream_ref_locked(c, h, &ref)) != CUDA_SUCCESS)
    goto out;
  if (gp__hostfn_pending_locked(&ref, GP__HOSTFN_STREAM)) {
    r = CUDA_ERROR_NOT_READY;
    goto out;
  }
  Gpupool__StreamQuery m = GPUPOOL__STREAM_QUERY__INIT;
  m.stream = ref.id;
  m.ctx = ref.id == 0 ? ref.ctx->id : 0;
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

static CUresult stream_wait_event(CUstream h, CUevent hev, unsigned flags) {
  struct gp__client *c = gp__client();
  uint64_t id;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags != CU_EVENT_WAIT_DEFAULT && flags != CU_EVENT_WAIT_EXTERNAL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  /* The stream first: resolving it may wait, letting go of the lock. */
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

/* ---- Queries ------------------------------------------------------------------- */

/* The local facts about a stream. The default streams have priority 0 and
 * no flags, and belong to the current context. */
enum stream_fact {
  FACT_PRIORITY,
  FACT_FLAGS,
  FACT_CTX,
  FACT_ID,
  FACT_DEVICE,
  FACT_CAPTURE, /* see "Capture status" below */
};

static CUresult stream_get(CUstream h, enum stream_fact what, void *out) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (out == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if ((r = gp__stream_ref_locked(c, h, &ref)) != CUDA_SUCCESS)
    goto out;
  switch (what) {
  case FACT_PRIORITY:
    *(int *)out = ref.s != NULL ? ref.s->priority : 0;
    break;
  case FACT_FLAGS:
    *(unsigned *)out = ref.s != NULL ? ref.s->flags : 0;
    break;
  case FACT_CTX:
    *(CUcontext *)out = (CUcontext)ref.ctx;
    break;
  case FACT_ID:
    /* Ids come from the counter of every handle id: unique in the
     * process, never reused. */
    if (ref.s == NULL && ref.ctx->legacy_stream_id == 0)
      ref.ctx->legacy_stream_id = gp__new_id();
    *(unsigned long long *)out =
        ref.s != NULL ? ref.s->id : ref.ctx->legacy_stream_id;
    break;
  case FACT_DEVICE:
    *(CUdevice *)out = ref.ctx->device;
    break;
  case FACT_CAPTURE:
    *(CUstreamCaptureStatus *)out = CU_STREAM_CAPTURE_STATUS_NONE;
    break;
  }
out:
  gp__unlock();
  return r;
}

/* ---- Capture status ---------------------------------------------------------
 *
 * Stream capture (cuStreamBeginCapture and graphs) is not supported, so no
 * stream is ever capturing: these answer CU_STREAM_CAPTURE_STATUS_NONE for
 * every live stream, which is exactly what the driver says of a stream not
 * being captured. Libraries ask before they enqueue (cuBLAS does, for
 * results it returns in host memory). The other outputs are documented as
 * meaningful only while a capture is active; they read 0 / NULL. */

static CUresult capture_info(CUstream h, CUstreamCaptureStatus *status,
                             cuuint64_t *id, CUgraph *graph,
                             const CUgraphNode **deps,
                             const CUgraphEdgeData **edges, size_t *ndeps) {
  CUresult r = stream_get(h, FACT_CAPTURE, status);
  if (r != CUDA_SUCCESS)
    return r;
  if (id != NULL)
    *id = 0;
  if (graph != NULL)
    *graph = NULL;
  if (deps != NULL)
    *deps = NULL;
  if (edges != NULL)
    *edges = NULL;
  if (ndeps != NULL)
    *ndeps = 0;
  return CUDA_SUCCESS;
}

GP_API CUresult cuStreamIsCapturing(CUstream hStream,
                                    CUstreamCaptureStatus *captureStatus) {
  CUresult r = stream_get(hStream, FACT_CAPTURE, captureStatus);
  GP_TRACE(r, "hStream=%p, captureStatus=%d", (void *)hStream,
           (int)GP_OUT(r, captureStatus));
  return r;
}

GP_API CUresult cuStreamGetCaptureInfo(CUstream hStream,
                                       CUstreamCaptureStatus *captureStatus_out,
                                       cuuint64_t *id_out) {
  CUresult r = capture_info(hStream, captureStatus_out, id_out, NULL, NULL,
                            NULL, NULL);
  GP_TRACE(r, "hStream=%p, captureStatus=%d", (void *)hStream,
           (int)GP_OUT(r, captureStatus_out));
  return r;
}

GP_API CUresult cuStreamGetCaptureInfo_v2(
    CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
    cuuint64_t *id_out, CUgraph *graph_out,
    const CUgraphNode **dependencies_out, size_t *numDependencies_out) {
  CUresult r = capture_info(hStream, captureStatus_out, id_out, graph_out,
                            dependencies_out, NULL, numDependencies_out);
  GP_TRACE(r, "hStream=%p, captureStatus=%d", (void *)hStream,
           (int)GP_OUT(r, captureStatus_out));
  return r;
}

GP_API CUresult cuStreamGetCaptureInfo_v3(
    CUstream hStream, CUstreamCaptureStatus *captureStatus_out,
    cuuint64_t *id_out, CUgraph *graph_out,
    const CUgraphNode **dependencies_out, const CUgraphEdgeData **edgeData_out,
    size_t *numDependencies_out) {
  CUresult r = capture_info(hStream, captureStatus_out, id_out, graph_out,
                            dependencies_out, edgeData_out,
                            numDependencies_out);
  GP_TRACE(r, "hStream=%p, captureStatus=%d", (void *)hStream,
           (int)GP_OUT(r, captureStatus_out));
  return r;
}

/* The calling thread's capture interaction mode: kept, though with no
 * capture it changes nothing. */
static _Thread_local CUstreamCaptureMode capture_mode =
    CU_STREAM_CAPTURE_MODE_GLOBAL;

static CUresult exchange_capture_mode(CUstreamCaptureMode *mode) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (mode == NULL || (*mode != CU_STREAM_CAPTURE_MODE_GLOBAL &&
                       *mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
                       *mode != CU_STREAM_CAPTURE_MODE_RELAXED))
    return CUDA_ERROR_INVALID_VALUE;
  CUstreamCaptureMode previous = capture_mode;
  capture_mode = *mode;
  *mode = previous;
  return CUDA_SUCCESS;
}

GP_API CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode) {
  CUresult r = exchange_capture_mode(mode);
  GP_TRACE(r, "mode=%d", (int)GP_OUT(r, mode));
  return r;
}

CUresult gp__stream_unique_id(CUstream h, unsigned long long *id) {
  return stream_get(h, FACT_ID, id);
}

GP_API CUresult cuStreamGetPriority(CUstream hStream, int *priority) {
  CUresult r = stream_get(hStream, FACT_PRIORITY, priority);
  GP_TRACE(r, "hStream=%p, priority=%d", (void *)hStream,
           GP_OUT(r, priority));
  return r;
}

GP_API CUresult cuStreamGetFlags(CUstream hStream, unsigned int *flags) {
  CUresult r = stream_get(hStream, FACT_FLAGS, flags);
  GP_TRACE(r, "hStream=%p, flags=0x%x", (void *)hStream, GP_OUT(r, flags));
  return r;
}

GP_API CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx) {
  CUresult r = stream_get(hStream, FACT_CTX, pctx);
  GP_TRACE(r, "hStream=%p, pctx=%p", (void *)hStream,
           (void *)GP_OUT(r, pctx));
  return r;
}

/* There are no green contexts: the second answer is always NULL. */
static CUresult stream_get_ctx_v2(CUstream h, CUcontext *pctx,
                                  CUgreenCtx *pgreen) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pgreen == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = stream_get(h, FACT_CTX, pctx)) == CUDA_SUCCESS)
    *pgreen = NULL;
  return r;
}

GP_API CUresult cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx,
                                  CUgreenCtx *pGreenCtx) {
  CUresult r = stream_get_ctx_v2(hStream, pCtx, pGreenCtx);
  GP_TRACE(r, "hStream=%p, pCtx=%p, pGreenCtx=%p", (void *)hStream,
           (void *)GP_OUT(r, pCtx), (void *)GP_OUT(r, pGreenCtx));
  return r;
}

GP_API CUresult cuStreamGetId(CUstream hStream, unsigned long long *streamId) {
  CUresult r = stream_get(hStream, FACT_ID, streamId);
  GP_TRACE(r, "hStream=%p, streamId=%llu", (void *)hStream,
           GP_OUT(r, streamId));
  return r;
}

GP_API CUresult cuStreamGetDevice(CUstream hStream, CUdevice *device) {
  CUresult r = stream_get(hStream, FACT_DEVICE, device);
  GP_TRACE(r, "hStream=%p, device=%d", (void *)hStream, GP_OUT(r, device));
  return r;
}

/* ---- Attributes -------------------------------------------------------------- */

/* The attributes |a| stands for on device |dev|: the defaults for a
 * stream whose attributes were never set. */
static void attrs_get(const struct gp__stream_attrs *a, int dev,
                      struct gp__stream_attrs *out) {
  if (a->set) {
    *out = *a;
    return;
  }
  struct gp__client *c = gp__client();
  *out = (struct gp__stream_attrs){.sync_policy = CU_SYNC_POLICY_AUTO};
  /* Remote kernels map to domain 1 where the device has a second one. */
  out->domain_map.default_ = 0;
  out->domain_map.remote =
      c->devices[dev].attr[CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT] > 1 ? 1
                                                                          : 0;
  out->domain = CU_LAUNCH_MEM_SYNC_DOMAIN_DEFAULT;
}

/* The attributes a stream takes (cuda.h: "Valid for streams"). All are
 * hints about caching, waiting and scheduling that an emulated, serial
 * device has no use for: they are checked and kept, so that they read back
 * as set. Priority is the stream's own. Launch-only and graph-only
 * attributes, and unknown ones, are CUDA_ERROR_INVALID_VALUE. */
static bool stream_attr_id(CUstreamAttrID attr) {
  switch (attr) {
  case CU_STREAM_ATTRIBUTE_ACCESS_POLICY_WINDOW:
  case CU_STREAM_ATTRIBUTE_SYNCHRONIZATION_POLICY:
  case CU_STREAM_ATTRIBUTE_PRIORITY:
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN:
  case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
    return true;
  default:
    return false;
  }
}

/* Whether |v| is a value attribute |attr| (one of stream_attr_id()'s)
 * takes on device |dev|. */
static CUresult check_attr(const struct gp__client *c, int dev,
                           CUstreamAttrID attr, const CUstreamAttrValue *v) {
  switch (attr) {
  case CU_STREAM_ATTRIBUTE_ACCESS_POLICY_WINDOW: {
    const CUaccessPolicyWindow *w = &v->accessPolicyWindow;
    int max = c->devices[dev].attr[CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE];
    /* !(a <= b) also refuses a NaN ratio. */
    if (!(w->hitRatio >= 0.0f && w->hitRatio <= 1.0f) ||
        (unsigned)w->hitProp > CU_ACCESS_PROPERTY_PERSISTING ||
        (unsigned)w->missProp > CU_ACCESS_PROPERTY_STREAMING ||
        (max > 0 && w->num_bytes > (size_t)max))
      return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
  }
  case CU_STREAM_ATTRIBUTE_SYNCHRONIZATION_POLICY:
    return v->syncPolicy >= CU_SYNC_POLICY_AUTO &&
                   v->syncPolicy <= CU_SYNC_POLICY_BLOCKING_SYNC
               ? CUDA_SUCCESS
               : CUDA_ERROR_INVALID_VALUE;
  case CU_STREAM_ATTRIBUTE_PRIORITY:
    return CUDA_SUCCESS; /* clamped, as at creation */
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP: {
    int n = c->devices[dev].attr[CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT];
    if (n > 0 && (v->memSyncDomainMap.default_ >= n ||
                  v->memSyncDomainMap.remote >= n))
      return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
  }
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN:
    return (unsigned)v->memSyncDomain <= CU_LAUNCH_MEM_SYNC_DOMAIN_REMOTE
               ? CUDA_SUCCESS
               : CUDA_ERROR_INVALID_VALUE;
  default: /* CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING */
    return v->nvlinkUtilCentricScheduling <= 1 ? CUDA_SUCCESS
                                               : CUDA_ERROR_INVALID_VALUE;
  }
}

/* Reads (|get|) or writes (|set|) attribute |attr| of |h|. */
static CUresult stream_attr(CUstream h, CUstreamAttrID attr,
                            CUstreamAttrValue *get,
                            const CUstreamAttrValue *set) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((get == NULL && set == NULL) || !stream_attr_id(attr))
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if ((r = gp__stream_ref_locked(c, h, &ref)) != CUDA_SUCCESS)
    goto out;
  int dev = ref.ctx->device;
  struct gp__stream_attrs *a =
      ref.s != NULL ? &ref.s->attrs : &ref.ctx->legacy_attrs;
  struct gp__stream_attrs cur;
  attrs_get(a, dev, &cur);
  if (set != NULL) {
    if ((r = check_attr(c, dev, attr, set)) != CUDA_SUCCESS)
      goto out;
    switch (attr) {
    case CU_STREAM_ATTRIBUTE_ACCESS_POLICY_WINDOW:
      cur.window = set->accessPolicyWindow;
      break;
    case CU_STREAM_ATTRIBUTE_SYNCHRONIZATION_POLICY:
      cur.sync_policy = set->syncPolicy;
      break;
    case CU_STREAM_ATTRIBUTE_PRIORITY:
      /* The legacy stream's priority is fixed at the lowest. */
      if (ref.s != NULL)
        ref.s->priority = clamp_priority(set->priority);
      break;
    case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
      cur.domain_map = set->memSyncDomainMap;
      break;
    case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN:
      cur.domain = set->memSyncDomain;
      break;
    default:
      cur.nvlink_util_centric = set->nvlinkUtilCentricScheduling;
      break;
    }
    cur.set = true;
    *a = cur;
    goto out;
  }
  *get = (CUstreamAttrValue){0};
  switch (attr) {
  case CU_STREAM_ATTRIBUTE_ACCESS_POLICY_WINDOW:
    get->accessPolicyWindow = cur.window;
    break;
  case CU_STREAM_ATTRIBUTE_SYNCHRONIZATION_POLICY:
    get->syncPolicy = cur.sync_policy;
    break;
  case CU_STREAM_ATTRIBUTE_PRIORITY:
    get->priority = ref.s != NULL ? ref.s->priority : 0;
    break;
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
    get->memSyncDomainMap = cur.domain_map;
    break;
  case CU_STREAM_ATTRIBUTE_MEM_SYNC_DOMAIN:
    get->memSyncDomain = cur.domain;
    break;
  default:
    get->nvlinkUtilCentricScheduling = cur.nvlink_util_centric;
    break;
  }
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamGetAttribute(CUstream hStream, CUstreamAttrID attr,
                                     CUstreamAttrValue *value_out) {
  CUresult r = stream_attr(hStream, attr, value_out, NULL);
  GP_TRACE(r, "hStream=%p, attr=%d, value_out=%p", (void *)hStream,
           (int)attr, (void *)value_out);
  return r;
}

GP_API CUresult cuStreamSetAttribute(CUstream hStream, CUstreamAttrID attr,
                                     const CUstreamAttrValue *value) {
  CUresult r = stream_attr(hStream, attr, NULL, value);
  GP_TRACE(r, "hStream=%p, attr=%d, value=%p", (void *)hStream, (int)attr,
           (const void *)value);
  return r;
}

/* Both streams must be of one context. The priority is not an attribute
 * copied: it is the stream's own (as cuStreamCreateWithPriority set it). */
static CUresult stream_copy_attrs(CUstream dst, CUstream src) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref d, s;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  if ((r = gp__stream_ref_locked(c, src, &s)) != CUDA_SUCCESS ||
      (r = gp__stream_ref_locked(c, dst, &d)) != CUDA_SUCCESS)
    goto out;
  if (s.ctx != d.ctx) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  struct gp__stream_attrs *from = s.s ? &s.s->attrs : &s.ctx->legacy_attrs;
  struct gp__stream_attrs *to = d.s ? &d.s->attrs : &d.ctx->legacy_attrs;
  *to = *from;
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuStreamCopyAttributes(CUstream dst, CUstream src) {
  CUresult r = stream_copy_attrs(dst, src);
  GP_TRACE(r, "dst=%p, src=%p", (void *)dst, (void *)src);
  return r;
}

/* ---- Managed memory attachment ------------------------------------------------ */

/* Attaching needs managed memory (cuMemAllocManaged, __managed__) or, on a
 * device that can use pageable memory, host memory. The library has
 * neither: no address is one this call accepts, and once the stream, the
 * flags and the pointer are checked the answer is
 * CUDA_ERROR_INVALID_VALUE, as the driver's for memory that is not
 * managed. */
static CUresult attach_mem(CUstream h, CUdeviceptr dptr, size_t length,
                           unsigned flags) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  r = gp__stream_ref_locked(c, h, &ref);
  gp__unlock();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST &&
      flags != CU_MEM_ATTACH_SINGLE)
    return CUDA_ERROR_INVALID_VALUE;
  /* The legacy stream is a virtual global stream: nothing attaches to it
   * alone. */
  if (flags == CU_MEM_ATTACH_SINGLE && ref.id == 0)
    return CUDA_ERROR_INVALID_VALUE;
  /* Managed ranges (length 0 or the whole allocation) and, where the
   * device reports CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, host ranges
   * (length not 0) would be accepted here; there are none to accept. */
  (void)dptr;
  (void)length;
  return CUDA_ERROR_INVALID_VALUE;
}

GP_API CUresult cuStreamAttachMemAsync(CUstream hStream, CUdeviceptr dptr,
                                       size_t length, unsigned int flags) {
  CUresult r = attach_mem(hStream, dptr, length, flags);
  GP_TRACE(r, "hStream=%p, dptr=0x%llx, length=%zu, flags=0x%x",
           (void *)hStream, (unsigned long long)dptr, length, flags);
  return r;
}
