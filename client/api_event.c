/* Events. Like streams, events are client objects with client-chosen ids:
 * creating, recording and destroying one are sent without a reply. */
#include <stdlib.h>

#include "client.h"
#include "trace.h"

#define GP__EVENT_FLAGS                                                  \
  ((unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING |         \
              CU_EVENT_INTERPROCESS))

static struct gp__event *find_event_locked(struct gp__client *c, CUevent h) {
  return (struct gp__event *)gp__handles_find(&c->handles, h, GP__KIND_EVENT);
}

static CUresult event_create(CUevent *ph, unsigned int flags) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (ph == NULL || (flags & ~GP__EVENT_FLAGS) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  /* An interprocess event must also have timing disabled. */
  if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))
    return CUDA_ERROR_INVALID_VALUE;
  struct gp__event *ev = calloc(1, sizeof(*ev));
  if (ev == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  ev->hdr.kind = GP__KIND_EVENT;
  ev->id = gp__new_id();
  ev->flags = flags;

  gp__lock();
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    goto out;
  ev->ctx = ctx;
  if (gp__handles_add(&c->handles, &ev->hdr) < 0) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  Gpupool__EventCreate m = GPUPOOL__EVENT_CREATE__INIT;
  m.ctx = ctx->id;
  m.event = ev->id;
  m.flags = flags;
  r = gp__send_locked(c, GP_MSG_EVENT_CREATE, &m.base, NULL, 0, true, NULL);
  if (r != CUDA_SUCCESS)
    gp__handles_remove(&c->handles, &ev->hdr);
out:
  gp__unlock();
  if (r != CUDA_SUCCESS) {
    free(ev);
    return r;
  }
  *ph = (CUevent)ev;
  return CUDA_SUCCESS;
}

GP_API CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags) {
  CUresult r = event_create(phEvent, Flags);
  GP_TRACE(r, "phEvent=%p, flags=0x%x", (void *)GP_OUT(r, phEvent), Flags);
  return r;
}

/* Records |h| on |hs|. CU_EVENT_RECORD_EXTERNAL only means something
 * during stream capture, which does not exist here: outside capture it is
 * CUDA_ERROR_INVALID_VALUE, as cuda.h says ("invalid outside of stream
 * capture"). */
static CUresult event_record(CUevent h, CUstream hs, unsigned flags) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (flags != CU_EVENT_RECORD_DEFAULT)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  /* The stream first: resolving it may wait for host functions, letting go
   * of the lock, after which the event is looked up. */
  if ((r = gp__stream_use_locked(c, hs, &ref)) != CUDA_SUCCESS)
    goto out;
  struct gp__event *ev = find_event_locked(c, h);
  /* The event and the stream must be of one context. */
  if (ev == NULL || ev->ctx != ref.ctx) {
    r = CUDA_ERROR_INVALID_HANDLE;
    goto out;
  }
  Gpupool__EventRecord m = GPUPOOL__EVENT_RECORD__INIT;
  m.event = ev->id;
  m.stream = ref.id;
  r = gp__send_locked(c, GP_MSG_EVENT_RECORD, &m.base, NULL, 0, true, NULL);
  if (r == CUDA_SUCCESS)
    ev->recorded = true;
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
  CUresult r = event_record(hEvent, hStream, CU_EVENT_RECORD_DEFAULT);
  GP_TRACE(r, "hEvent=%p, hStream=%p", (void *)hEvent, (void *)hStream);
  return r;
}

GP_API CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream,
                                       unsigned int flags) {
  CUresult r = event_record(hEvent, hStream, flags);
  GP_TRACE(r, "hEvent=%p, hStream=%p, flags=0x%x", (void *)hEvent,
           (void *)hStream, flags);
  return r;
}

/* Query and synchronize: one round trip; both return a deferred error in
 * place of success. An event never recorded is complete. */
static CUresult event_wait(CUevent h, bool query) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__event *ev = find_event_locked(c, h);
  if (ev == NULL) {
    r = CUDA_ERROR_INVALID_HANDLE;
  } else if (query) {
    Gpupool__EventQuery m = GPUPOOL__EVENT_QUERY__INIT;
    m.event = ev->id;
    r = gp__call_locked(c, GP_MSG_EVENT_QUERY, &m.base, NULL, 0, NULL);
    r = gp__sync_result_locked(c, r);
  } else {
    Gpupool__EventSynchronize m = GPUPOOL__EVENT_SYNCHRONIZE__INIT;
    m.event = ev->id;
    r = gp__call_wait_locked(c, GP_MSG_EVENT_SYNCHRONIZE, &m.base);
    r = gp__sync_result_locked(c, r);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuEventQuery(CUevent hEvent) {
  CUresult r = event_wait(hEvent, true);
  GP_TRACE(r, "hEvent=%p", (void *)hEvent);
  return r;
}

GP_API CUresult cuEventSynchronize(CUevent hEvent) {
  CUresult r = event_wait(hEvent, false);
  GP_TRACE(r, "hEvent=%p", (void *)hEvent);
  return r;
}

/* Checked here as the driver documents it: events created with
 * CU_EVENT_DISABLE_TIMING, or never recorded, are CUDA_ERROR_INVALID_HANDLE;
 * one not yet complete is CUDA_ERROR_NOT_READY (from the server). */
static CUresult event_elapsed(float *ms, CUevent hstart, CUevent hend) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (ms == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__event *s = find_event_locked(c, hstart);
  struct gp__event *e = find_event_locked(c, hend);
  if (s == NULL || e == NULL || !s->recorded || !e->recorded ||
      (s->flags & CU_EVENT_DISABLE_TIMING) ||
      (e->flags & CU_EVENT_DISABLE_TIMING)) {
    r = CUDA_ERROR_INVALID_HANDLE;
    goto out;
  }
  Gpupool__EventElapsedTime m = GPUPOOL__EVENT_ELAPSED_TIME__INIT;
  m.start = s->id;
  m.end = e->id;
  ProtobufCMessage *reply;
  r = gp__call_locked(c, GP_MSG_EVENT_ELAPSED_TIME, &m.base, NULL, 0, &reply);
  if (r == CUDA_SUCCESS) {
    *ms = ((Gpupool__EventElapsedTimeReply *)reply)->milliseconds;
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  r = gp__sync_result_locked(c, r);
out:
  gp__unlock();
  return r;
}

GP_API CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart,
                                   CUevent hEnd) {
  CUresult r = event_elapsed(pMilliseconds, hStart, hEnd);
  GP_TRACE(r, "ms=%.3f, hStart=%p, hEnd=%p",
           r == CUDA_SUCCESS ? (double)*pMilliseconds : 0.0, (void *)hStart,
           (void *)hEnd);
  return r;
}

GP_ALIAS(cuEventElapsedTime_v2, cuEventElapsedTime);

static CUresult event_destroy(CUevent h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__event *ev = find_event_locked(c, h);
  if (ev == NULL) {
    r = CUDA_ERROR_INVALID_HANDLE;
  } else {
    Gpupool__EventDestroy m = GPUPOOL__EVENT_DESTROY__INIT;
    m.event = ev->id;
    gp__handles_remove(&c->handles, &ev->hdr);
    free(ev);
    r = gp__send_locked(c, GP_MSG_EVENT_DESTROY, &m.base, NULL, 0, true,
                        NULL);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuEventDestroy(CUevent hEvent) {
  CUresult r = event_destroy(hEvent);
  GP_TRACE(r, "hEvent=%p", (void *)hEvent);
  return r;
}

GP_ALIAS(cuEventDestroy_v2, cuEventDestroy);
