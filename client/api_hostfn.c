/* Host functions (cuLaunchHostFunc) and stream callbacks
 * (cuStreamAddCallback): application code that runs on the client once
 * the server's stream has reached it.
 *
 * At the call, an internal event is created and recorded on the stream
 * (both sent without waiting) and the function is queued with it; the
 * call returns at once. One library-owned thread takes the queue in order:
 * for each entry it waits for the event (an EVENT_SYNCHRONIZE round trip:
 * the server's word that the stream got there), runs the function without
 * the client lock, destroys the event, and wakes whoever waits. So the
 * functions of one stream run one at a time, in order, never on a caller's
 * thread and never with the lock held.
 *
 * CUDA's rule that later work on the stream does not start before the
 * function returns is kept on the client: a call that puts work on a
 * stream resolves it through gp__stream_use_locked(), which waits until
 * the host functions that work must follow have run (the stream's own; for
 * a blocking stream also the legacy stream's; for the legacy stream also
 * every blocking stream's). Such a call returns once its work is queued
 * behind them, as in CUDA, except that it returns later: the work cannot
 * be sent before the function has returned. Synchronize calls wait for
 * them the same way; cuStreamQuery answers CUDA_ERROR_NOT_READY instead.
 *
 * The thread is started with the first host function and runs for the
 * life of the process; it blocks the signals that are not faults. Process
 * exit does not wait for it. A host function that calls the driver gets
 * CUDA_ERROR_NOT_PERMITTED (gp__ready()), as CUDA allows.
 *
 * Everything here is guarded by the client lock; the condition variables
 * wait on it.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client.h"
#include "trace.h"

/* One queued host function or stream callback. */
struct hostfn {
  struct hostfn *next;
  struct gp__ctx *ctx;
  uint64_t ctx_id;        /* the incarnation it was queued in */
  uint64_t stream_id;     /* 0: the legacy default stream */
  bool blocking;          /* its stream synchronises with the legacy one */
  uint64_t event;         /* recorded on the stream after the work before
                           * it; 0 when it was queued in a context already
                           * known to have failed (|status| says how) */
  CUresult status;        /* known before it runs; CUDA_SUCCESS if not */
  CUstream handle;        /* the stream as the caller named it */
  CUhostFn fn;            /* cuLaunchHostFunc, or */
  CUstreamCallback cb;    /* cuStreamAddCallback */
  void *data;
};

/* The queue, in the order the calls were made. The head stays in the queue
 * while it runs, so that waiters still see it. */
static struct {
  struct hostfn *head, *tail;
  size_t n;
  pthread_cond_t work;    /* an entry was queued */
  pthread_cond_t done;    /* an entry finished */
  bool started;           /* the thread runs */
  /* The EVENT_SYNCHRONIZE the thread waits for without the lock. */
  uint32_t reply_id;      /* 0: none */
  bool reply_done;        /* read by another thread: */
  CUresult reply_result;  /* its result */
  int wake_fd;            /* an eventfd that wakes the thread's poll(), or
                           * -1 (it then polls in short naps) */
} q = {
  .work = PTHREAD_COND_INITIALIZER,
  .done = PTHREAD_COND_INITIALIZER,
  .wake_fd = -1,
};

/* The longest the thread sleeps in poll() before it looks again (for a
 * connection lost, or closed at exit, while it slept). */
#define GP__HOSTFN_NAP_MS 250

static _Thread_local bool on_thread;
/* Set by the library's destructor: the process is exiting (or the library
 * being unloaded), and no more application code runs on the thread. */
static atomic_bool closing;
/* Set once the thread exists: gp__hostfn_thread_self() is on every call's
 * path, and a relaxed load is cheaper than a thread-local one. */
static atomic_bool any_thread;

bool gp__hostfn_thread_self(void) {
  return atomic_load_explicit(&any_thread, memory_order_relaxed) && on_thread;
}

/* Does |h| have to run before a call of |scope| on |ref|? */
static bool blocks(const struct hostfn *h, const struct gp__stream_ref *ref,
                   enum gp__hostfn_scope scope) {
  if (h->ctx != ref->ctx)
    return false;
  switch (scope) {
  case GP__HOSTFN_CTX:
    return true;
  case GP__HOSTFN_STREAM:
    /* A host function of another stream that this stream's work had to
     * follow was waited for when that work was submitted. The legacy
     * stream's own work follows every blocking stream's. */
    if (ref->id == 0)
      return h->stream_id == 0 || h->blocking;
    return h->stream_id == ref->id;
  case GP__HOSTFN_SUBMIT:
    if (ref->id == 0)
      return h->stream_id == 0 || h->blocking;
    return h->stream_id == ref->id || (ref->blocking && h->stream_id == 0);
  }
  return true;
}

bool gp__hostfn_pending_locked(const struct gp__stream_ref *ref,
                               enum gp__hostfn_scope scope) {
  if (q.n == 0)
    return false;
  for (const struct hostfn *h = q.head; h != NULL; h = h->next)
    if (blocks(h, ref, scope))
      return true;
  return false;
}

CUresult gp__hostfn_wait_one_locked(struct gp__client *c) {
  if (on_thread)
    return CUDA_ERROR_NOT_PERMITTED;
  pthread_cond_wait(&q.done, &c->lock);
  return CUDA_SUCCESS;
}

CUresult gp__hostfn_drain_locked(struct gp__client *c, struct gp__ctx *ctx) {
  const struct gp__stream_ref ref = {.ctx = ctx};
  while (gp__hostfn_pending_locked(&ref, GP__HOSTFN_CTX)) {
    CUresult r = gp__hostfn_wait_one_locked(c);
    if (r != CUDA_SUCCESS)
      return r;
  }
  return CUDA_SUCCESS;
}

/* Whether |h|'s context is still the incarnation it was queued in: if not,
 * the server dropped its event with it. */
static bool same_incarnation(const struct hostfn *h) {
  return atomic_load(&h->ctx->state) == GP__CTX_LIVE &&
         h->ctx->id == h->ctx_id;
}

/* Why the wait for |h|'s event failed, in the terms a stream callback is
 * given: the context's sticky error if it has failed (a kernel fault also
 * makes the event's creation or record fail, so the wait's own answer may
 * be only CUDA_ERROR_INVALID_HANDLE), else |r|. */
static CUresult failure_status(struct gp__client *c, const struct hostfn *h,
                               CUresult r) {
  if (r == CUDA_ERROR_DEVICE_UNAVAILABLE)
    return r;
  if (h->ctx->fault != CUDA_SUCCESS)
    return h->ctx->fault;
  /* The legacy stream's query answers for the whole context. */
  Gpupool__StreamQuery m = GPUPOOL__STREAM_QUERY__INIT;
  m.stream = 0;
  m.ctx = h->ctx_id;
  CUresult q2 = gp__call_locked(c, GP_MSG_STREAM_QUERY, &m.base, NULL, 0,
                                NULL);
  return q2 != CUDA_SUCCESS && q2 != CUDA_ERROR_NOT_READY ? q2 : r;
}

uint32_t gp__hostfn_reply_id(void) { return q.reply_id; }

void gp__hostfn_reply_locked(struct gp__client *c, CUresult result) {
  (void)c;
  q.reply_id = 0;
  q.reply_done = true;
  q.reply_result = result;
  if (q.wake_fd >= 0) {
    uint64_t one = 1;
    ssize_t n = write(q.wake_fd, &one, sizeof(one));
    (void)n; /* a counter already non-zero wakes it just as well */
  }
}

/* Waits for the server to reach |h|; returns the status to run it with.
 *
 * It asks with EVENT_SYNCHRONIZE but does not hold the lock while the
 * server works (an emulated device answers only once the work before the
 * event is done, which may take as long as a kernel): the lock is let go,
 * and the thread sleeps in poll() on the socket. Whoever holds the lock
 * when the answer comes reads it: this thread, woken by its bytes, or a
 * thread that wanted a later reply and had to read this one first
 * (conn.c hands it over, and wakes this one). Meanwhile other threads'
 * calls go on, those sent without a reply at once. */
static CUresult reach(struct gp__client *c, const struct hostfn *h) {
  if (h->status != CUDA_SUCCESS)
    return h->status;
  if (!same_incarnation(h))
    return CUDA_ERROR_CONTEXT_IS_DESTROYED;
  Gpupool__EventSynchronize m = GPUPOOL__EVENT_SYNCHRONIZE__INIT;
  m.event = h->event;
  uint32_t id = 0;
  CUresult r = gp__send_locked(c, GP_MSG_EVENT_SYNCHRONIZE, &m.base, NULL, 0,
                               false, &id);
  if (r != CUDA_SUCCESS)
    return r == CUDA_ERROR_DEVICE_UNAVAILABLE ? r : failure_status(c, h, r);
  q.reply_id = id;
  q.reply_done = false;
  for (;;) {
    bool got = false;
    if (q.reply_done) {
      r = q.reply_result;
      break;
    }
    if (atomic_load(&c->dead) || !c->wire_open) {
      r = CUDA_ERROR_DEVICE_UNAVAILABLE;
      break;
    }
    r = gp__recv_nowait_locked(c, GP_MSG_EVENT_SYNCHRONIZE, id, &got);
    if (got || r != CUDA_SUCCESS)
      break;
    struct pollfd pfd[2] = {{.fd = c->wire.fd, .events = POLLIN},
                            {.fd = q.wake_fd, .events = POLLIN}};
    gp__unlock();
    /* The socket may be closed by another thread while this one sleeps
     * (a lost connection, process exit): the nap is short, and the state
     * is looked at again under the lock. */
    poll(pfd, q.wake_fd >= 0 ? 2 : 1, GP__HOSTFN_NAP_MS);
    if (q.wake_fd >= 0 && (pfd[1].revents & POLLIN)) {
      uint64_t n;
      ssize_t rd = read(q.wake_fd, &n, sizeof(n));
      (void)rd;
    }
    gp__lock();
  }
  q.reply_id = 0;
  q.reply_done = false;
  return r == CUDA_SUCCESS ? r : failure_status(c, h, r);
}

void gp__hostfn_shutdown(void) { atomic_store(&closing, true); }

/* conn_fini() calls gp__hostfn_shutdown() before it closes the connection
 * (the destructors of one library run in an order the linker chooses, and
 * this one may come after it): here it only covers a library whose
 * connection destructor did not run first. Setting the flag twice is
 * harmless. */
__attribute__((destructor)) static void hostfn_fini(void) {
  gp__hostfn_shutdown();
}

static void *thread_main(void *arg) {
  struct gp__client *c = arg;
  on_thread = true;
  gp__lock();
  for (;;) {
    while (q.head == NULL)
      pthread_cond_wait(&q.work, &c->lock);
    struct hostfn *h = q.head;
    CUresult status = reach(c, h);
    gp__unlock();
    /* At exit the connection closes under a waiting thread, which would
     * then run the pending functions, with an error, while the process
     * tears down around them: they do not run at all. The thread parks
     * (every signal that could wake it is blocked) until the process is
     * gone. */
    while (atomic_load(&closing))
      pause();

    /* A host function runs only when all went well (CUDA: "the function
     * will not be called in the event of an error in the CUDA context"); a
     * stream callback runs always, and is told. */
    if (h->cb != NULL)
      h->cb(h->handle, status, h->data);
    else if (status == CUDA_SUCCESS)
      h->fn(h->data);

    gp__lock();
    if (h->event != 0 && same_incarnation(h) && !atomic_load(&c->dead)) {
      Gpupool__EventDestroy d = GPUPOOL__EVENT_DESTROY__INIT;
      d.event = h->event;
      gp__send_locked(c, GP_MSG_EVENT_DESTROY, &d.base, NULL, 0, true, NULL);
    }
    q.head = h->next;
    if (q.head == NULL)
      q.tail = NULL;
    q.n--;
    free(h);
    pthread_cond_broadcast(&q.done);
  }
  return NULL;
}

/* Starts the thread if it does not run yet. Returns CUDA_SUCCESS or
 * CUDA_ERROR_OUT_OF_MEMORY. Needs the lock. */
static CUresult start_locked(struct gp__client *c) {
  if (q.started)
    return CUDA_SUCCESS;
  if (q.wake_fd < 0)
    q.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0)
    return CUDA_ERROR_OUT_OF_MEMORY;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* No application signal handler should run on this thread: it inherits
   * a mask that blocks every signal but those a fault raises (blocking
   * those would only hide a crash in a host function from the
   * application's handlers). */
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGTRAP);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, thread_main, c);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0)
    return CUDA_ERROR_OUT_OF_MEMORY;
  q.started = true;
  atomic_store(&any_thread, true);
  return CUDA_SUCCESS;
}

/* Queues |fn| or |cb| on |hs|. */
static CUresult enqueue(CUstream hs, CUhostFn fn, CUstreamCallback cb,
                        void *data) {
  struct gp__client *c = gp__client();
  struct gp__stream_ref ref;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (fn == NULL && cb == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  struct hostfn *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  h->fn = fn;
  h->cb = cb;
  h->data = data;
  h->handle = hs;

  gp__lock();
  /* No waiting here: the new entry simply goes behind the earlier ones. */
  if ((r = gp__stream_ref_locked(c, hs, &ref)) != CUDA_SUCCESS)
    goto out;
  h->ctx = ref.ctx;
  h->ctx_id = ref.ctx->id;
  h->stream_id = ref.id;
  h->blocking = ref.blocking;
  if (ref.ctx->fault != CUDA_SUCCESS) {
    /* A failed context: a host function is refused as a launch is; a
     * callback is still run, in order, and told. */
    if (fn != NULL) {
      r = ref.ctx->fault;
      goto out;
    }
    h->status = ref.ctx->fault;
  }
  if ((r = start_locked(c)) != CUDA_SUCCESS)
    goto out;
  if (h->status == CUDA_SUCCESS) {
    h->event = gp__new_id();
    Gpupool__EventCreate ec = GPUPOOL__EVENT_CREATE__INIT;
    ec.ctx = ref.ctx->id;
    ec.event = h->event;
    ec.flags = CU_EVENT_DISABLE_TIMING;
    r = gp__send_locked(c, GP_MSG_EVENT_CREATE, &ec.base, NULL, 0, true,
                        NULL);
    if (r != CUDA_SUCCESS)
      goto out;
    Gpupool__EventRecord er = GPUPOOL__EVENT_RECORD__INIT;
    er.event = h->event;
    er.stream = ref.id;
    r = gp__send_locked(c, GP_MSG_EVENT_RECORD, &er.base, NULL, 0, true,
                        NULL);
    if (r != CUDA_SUCCESS) {
      Gpupool__EventDestroy d = GPUPOOL__EVENT_DESTROY__INIT;
      d.event = h->event;
      gp__send_locked(c, GP_MSG_EVENT_DESTROY, &d.base, NULL, 0, true, NULL);
      goto out;
    }
  }
  if (q.tail != NULL)
    q.tail->next = h;
  else
    q.head = h;
  q.tail = h;
  q.n++;
  h = NULL;
  pthread_cond_signal(&q.work);
out:
  gp__unlock();
  free(h);
  return r;
}

GP_API CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn,
                                 void *userData) {
  CUresult r = enqueue(hStream, fn, NULL, userData);
  GP_TRACE(r, "hStream=%p, fn=%p, userData=%p", (void *)hStream,
           (void *)(uintptr_t)fn, userData);
  return r;
}

static CUresult add_callback(CUstream hs, CUstreamCallback cb, void *data,
                             unsigned flags) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  /* The flags are reserved and must be 0. */
  if (cb == NULL || flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  return enqueue(hs, NULL, cb, data);
}

GP_API CUresult cuStreamAddCallback(CUstream hStream,
                                    CUstreamCallback callback,
                                    void *userData, unsigned int flags) {
  CUresult r = add_callback(hStream, callback, userData, flags);
  GP_TRACE(r, "hStream=%p, callback=%p, userData=%p, flags=0x%x",
           (void *)hStream, (void *)(uintptr_t)callback, userData, flags);
  return r;
}
