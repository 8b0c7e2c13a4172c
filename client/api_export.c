/* cuGetExportTable: the driver's private interfaces that cudart (and
 * cuBLAS) need besides the documented entry points.
 *
 * Each table is an array of 8-byte slots looked up by a UUID; unless noted,
 * slot 0 holds the table's size in bytes. What each slot does was observed
 * by running NVIDIA's cudart against a logging libcuda.so.1
 * (see cuda-driver-facts.md, "The private export tables"); nothing here is
 * forwarded to the server: all of it acts on the client's own state. Each
 * table is a struct of 8-byte members, so that its layout is the one cudart
 * reads and every slot has its real type.
 *
 *   CUDART_INTERFACE             the primary context's handle without
 *                                activating it; loading a fatbin wrapper
 *   TOOLS_RUNTIME_CALLBACK_HOOKS two zeroed buffers for tools
 *   TOOLS_TLS                    fetched by cudart; slot 2, the current
 *                                context, called by cuBLASLt
 *   CONTEXT_ID                   the ids of a context and of its streams,
 *                                unique for the life of the process
 *                                (cuBLAS and cuBLASLt, with TOOLS_TLS)
 *   CONTEXT_LOCAL_STORAGE        a key/value store per context, with
 *                                destructors run when the context goes
 *   CONTEXT_CHECKS               "is this a wrapped context": no
 *   INTEGRITY_CHECK              the answer that tells cudart it talks to
 *                                a driver (HMAC-MD2, md2.c)
 *   logger                       cudart's error messages, shown when
 *                                tracing
 *
 * cuGetExportTable itself works before cuInit (cudart asks for the logger
 * first); the slots that need devices or contexts say so.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "md2.h"
#include "trace.h"

/* ---- CUDART_INTERFACE ---------------------------------------------------- */

/* Slot 2: the handle of |dev|'s primary context, the one
 * cuDevicePrimaryCtxRetain returns, without retaining or activating it:
 * cudart makes it current first, then retains it. */
static CUresult cudart_primary_ctx(CUcontext *pctx, CUdevice dev) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS && pctx == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS && (dev < 0 || dev >= c->ndevices))
    r = CUDA_ERROR_INVALID_DEVICE;
  if (r == CUDA_SUCCESS)
    *pctx = (CUcontext)c->devices[dev].primary;
  GP_TRACE_AS("CUDART_INTERFACE[2]", r, "pctx=%p, dev=%d",
              (void *)GP_OUT(r, pctx), dev);
  return r;
}

/* Slots 1, 6 and 8 load a fatbin, as a module of the current context. Older
 * cudarts load their images through them (cudart 13.0 uses the library API
 * instead, so these argument orders are not confirmed by its trace):
 * slot 1 and 6 take the wrapper cudart registers (magic 0x466243B1), slot 8
 * the fatbin itself. cuModuleLoadData recognises both, and finds the
 * image's length from its headers. Extra arguments are not understood:
 * non-NULL ones are refused rather than ignored. */
static CUresult cudart_load_wrapper(CUmodule *module, const void *wrapper) {
  CUresult r = cuModuleLoadData(module, wrapper);
  GP_TRACE_AS("CUDART_INTERFACE[1]", r, "module=%p, wrapper=%p",
              (void *)GP_OUT(r, module), wrapper);
  return r;
}

static CUresult cudart_load_wrapper_ex(CUmodule *module, const void *wrapper,
                                       void *arg3, void *arg4,
                                       unsigned arg5) {
  CUresult r = arg3 != NULL || arg4 != NULL
                   ? CUDA_ERROR_NOT_SUPPORTED
                   : cuModuleLoadData(module, wrapper);
  GP_TRACE_AS("CUDART_INTERFACE[6]", r,
              "module=%p, wrapper=%p, arg3=%p, arg4=%p, arg5=%u",
              (void *)GP_OUT(r, module), wrapper, arg3, arg4, arg5);
  return r;
}

static CUresult cudart_load_fatbin_ex(const void *fatbin, CUmodule *module,
                                      void *arg3, void *arg4,
                                      unsigned arg5) {
  CUresult r = arg3 != NULL || arg4 != NULL
                   ? CUDA_ERROR_NOT_SUPPORTED
                   : cuModuleLoadData(module, fatbin);
  GP_TRACE_AS("CUDART_INTERFACE[8]", r,
              "fatbin=%p, module=%p, arg3=%p, arg4=%p, arg5=%u", fatbin,
              (void *)GP_OUT(r, module), arg3, arg4, arg5);
  return r;
}

/* Slot 7: called with one number; nothing to do. */
static void cudart_slot7(size_t arg) {
  GP_TRACE_AS("CUDART_INTERFACE[7]", CUDA_SUCCESS, "arg=%zu", arg);
}

/* Slot 12 (cudart 13.1): "load the compilers". The server compiles. */
static CUresult cudart_load_compilers(void) {
  GP_TRACE_AS("CUDART_INTERFACE[12]", CUDA_SUCCESS, "%s", "");
  return CUDA_SUCCESS;
}

struct cudart_interface {
  size_t size;
  CUresult (*load_wrapper)(CUmodule *, const void *);            /* 1 */
  CUresult (*primary_ctx)(CUcontext *, CUdevice);                /* 2 */
  void *unused3[3];                                              /* 3-5 */
  CUresult (*load_wrapper_ex)(CUmodule *, const void *, void *, void *,
                              unsigned);                         /* 6 */
  void (*slot7)(size_t);                                         /* 7 */
  CUresult (*load_fatbin_ex)(const void *, CUmodule *, void *, void *,
                             unsigned);                          /* 8 */
  void *unused9[3];                                              /* 9-11 */
  CUresult (*load_compilers)(void);                              /* 12 */
};
_Static_assert(sizeof(struct cudart_interface) == 13 * 8,
               "CUDART_INTERFACE has 13 slots");

static const struct cudart_interface cudart_interface = {
    .size = sizeof(struct cudart_interface),
    .load_wrapper = cudart_load_wrapper,
    .primary_ctx = cudart_primary_ctx,
    .load_wrapper_ex = cudart_load_wrapper_ex,
    .slot7 = cudart_slot7,
    .load_fatbin_ex = cudart_load_fatbin_ex,
    .load_compilers = cudart_load_compilers,
};

/* ---- TOOLS_RUNTIME_CALLBACK_HOOKS ------------------------------------------ */

/* Slots 2 and 6 hand out a zeroed buffer and its length in elements
 * (observed: 1024 and 14). cudart never showed what it stores there; the
 * buffers are 8-byte elements, twice what a reading as 32-bit elements
 * needs, so that either reading stays inside them. Shared by every thread,
 * as in the driver. */
#define HOOKS_BUF2_N 1024
#define HOOKS_BUF6_N 14
static uint64_t hooks_buf2[HOOKS_BUF2_N];
static uint64_t hooks_buf6[HOOKS_BUF6_N];

static void hooks_slot2(void **buf, size_t *n) {
  if (buf != NULL)
    *buf = hooks_buf2;
  if (n != NULL)
    *n = HOOKS_BUF2_N;
  GP_TRACE_AS("TOOLS_RUNTIME_CALLBACK_HOOKS[2]", CUDA_SUCCESS,
              "buf=%p, n=%d", (void *)hooks_buf2, HOOKS_BUF2_N);
}

static void hooks_slot6(void **buf, size_t *n) {
  if (buf != NULL)
    *buf = hooks_buf6;
  if (n != NULL)
    *n = HOOKS_BUF6_N;
  GP_TRACE_AS("TOOLS_RUNTIME_CALLBACK_HOOKS[6]", CUDA_SUCCESS,
              "buf=%p, n=%d", (void *)hooks_buf6, HOOKS_BUF6_N);
}

struct tools_hooks {
  size_t size; /* checked by cudart: 0 gives cudaErrorInsufficientDriver */
  void *unused1;
  void (*slot2)(void **, size_t *);
  void *unused3[3];
  void (*slot6)(void **, size_t *);
};
_Static_assert(sizeof(struct tools_hooks) == 7 * 8,
               "TOOLS_RUNTIME_CALLBACK_HOOKS has 7 slots");

static const struct tools_hooks tools_hooks = {
    .size = sizeof(struct tools_hooks),
    .slot2 = hooks_slot2,
    .slot6 = hooks_slot6,
};

/* ---- TOOLS_TLS ----------------------------------------------------------------
 *
 * cudart only fetches this table (and fails without it). cuBLASLt 13.0
 * calls slot 2 as int (void **out), then passes *out to slot 4 of the
 * CONTEXT_ID table below, and keys its per-context state (its GEMM
 * heuristics among it) by the 64-bit value that returns: with slot 2 NULL
 * cublasSgemm crashes on a NULL call; with slot 2 failing,
 * cublasLtMatmulAlgoGetHeuristic reports "Failed to query heuristics" and
 * cublasSgemm returns CUBLAS_STATUS_NOT_SUPPORTED. Slot 2 gives the
 * calling thread's current context, slot 4 that context's id; both are
 * named for what cuBLASLt does with them, observed, not documented. */

/* Slot 2: the current context, or its CUresult when there is none. */
static int tools_tls_current_ctx(void **out) {
  struct gp__ctx *ctx = NULL;
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS && out == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS)
    r = gp__current_ctx(&ctx);
  if (out != NULL)
    *out = r == CUDA_SUCCESS ? (void *)ctx : NULL;
  GP_TRACE_AS("TOOLS_TLS[2]", r, "ctx=%p", (void *)ctx);
  return (int)r;
}

struct tools_tls {
  size_t size;
  void *unused1;
  int (*current_ctx)(void **);
  void *unused3;
};
_Static_assert(sizeof(struct tools_tls) == 4 * 8, "TOOLS_TLS has 4 slots");

static const struct tools_tls tools_tls = {
    .size = sizeof(struct tools_tls),
    .current_ctx = tools_tls_current_ctx,
};

/* ---- CONTEXT_ID (21318C60-9714-3248-8CA6-41FF7324C8F2) ------------------------
 *
 * Fetched by cuBLAS and cuBLASLt 13, which key their per-context and
 * per-stream state (GEMM heuristics, workspaces) by the ids this table
 * gives, for the context TOOLS_TLS slot 2 gave. Three slots are called,
 * observed, not documented:
 *   slot 4   int (CUcontext ctx, unsigned long long *id): the context's id;
 *   slot 51  int (CUcontext ctx, CUstream s, CUstream *out, int per_thread):
 *            the stream |s| names in |ctx| (NULL with |per_thread| set is
 *            the per-thread default stream), as a handle slot 39 takes;
 *   slot 39  int (CUcontext ctx, CUstream s, unsigned long long *id): that
 *            stream's id.
 * Ids must be unique for the life of the process (a context or stream
 * created later at the same address must not find the state of an earlier
 * one): a context's incarnation id and cuStreamGetId's answer, never
 * reused. The table's real size is unknown; cuBLAS reads slot 51, so it
 * has 64 slots, the unknown ones NULL, and slot 0 holds the size, as in
 * the other tables. */

static int context_id(CUcontext h, unsigned long long *id) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx = NULL;
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS && (h == NULL || id == NULL))
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS) {
    gp__lock();
    r = gp__ctx_lookup_locked(c, h, true, &ctx);
    if (r == CUDA_SUCCESS)
      *id = ctx->id;
    gp__unlock();
  }
  GP_TRACE_AS("CONTEXT_ID[4]", r, "ctx=%p, id=%llu", (void *)h,
              (unsigned long long)GP_OUT(r, id));
  return (int)r;
}

/* |ctx| must be the calling thread's current context: the stream handles
 * are resolved in it (that is how cuBLAS calls these). */
static CUresult check_current(CUcontext h) {
  struct gp__ctx *cur = NULL;
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS)
    r = gp__current_ctx(&cur);
  if (r == CUDA_SUCCESS && h != NULL && h != (CUcontext)cur)
    r = CUDA_ERROR_INVALID_CONTEXT;
  return r;
}

static int context_stream(CUcontext h, CUstream s, CUstream *out,
                          int per_thread) {
  CUresult r = check_current(h);
  unsigned long long id = 0;
  if (r == CUDA_SUCCESS && out == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS && s == NULL && per_thread)
    s = CU_STREAM_PER_THREAD;
  /* Resolving it checks that it is a live stream of this context. */
  if (r == CUDA_SUCCESS)
    r = gp__stream_unique_id(s, &id);
  if (out != NULL)
    *out = r == CUDA_SUCCESS ? s : NULL;
  GP_TRACE_AS("CONTEXT_ID[51]", r, "ctx=%p, stream=%p, per_thread=%d",
              (void *)h, (void *)s, per_thread);
  return (int)r;
}

static int context_stream_id(CUcontext h, CUstream s,
                             unsigned long long *id) {
  CUresult r = check_current(h);
  if (r == CUDA_SUCCESS && id == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS)
    r = gp__stream_unique_id(s, id);
  GP_TRACE_AS("CONTEXT_ID[39]", r, "ctx=%p, stream=%p, id=%llu", (void *)h,
              (void *)s, (unsigned long long)GP_OUT(r, id));
  return (int)r;
}

struct context_id_table {
  size_t size;
  void *unused1[3];
  int (*context_id)(CUcontext, unsigned long long *);          /* 4 */
  void *unused5[34];
  int (*stream_id)(CUcontext, CUstream, unsigned long long *); /* 39 */
  void *unused40[11];
  int (*stream)(CUcontext, CUstream, CUstream *, int);         /* 51 */
  void *unused52[12];
};
_Static_assert(sizeof(struct context_id_table) == 64 * 8,
               "CONTEXT_ID has 64 slots");
_Static_assert(offsetof(struct context_id_table, stream_id) == 39 * 8,
               "CONTEXT_ID slot 39");
_Static_assert(offsetof(struct context_id_table, stream) == 51 * 8,
               "CONTEXT_ID slot 51");

static const struct context_id_table context_id_table = {
    .size = sizeof(struct context_id_table),
    .context_id = context_id,
    .stream_id = context_stream_id,
    .stream = context_stream,
};

/* ---- CONTEXT_LOCAL_STORAGE ---------------------------------------------------
 *
 * cudart asks for its per-context state (get) at the start of every runtime
 * call, so a get must not wait for the client lock, which another thread
 * holds for the whole round trip of a cuStreamSynchronize or
 * cuCtxSynchronize. The storage has a mutex of its own, and a get or delete
 * that names the current context (NULL, or the current context's handle)
 * finds it in the calling thread's own stack without the client lock. Only
 * another handle is looked up in the handle set, under the client lock.
 *
 * Lock order: the client lock before the storage's; the storage's is
 * never held while the client lock is taken, nor across application code
 * (the destructors run after the entries were detached, with no lock). */

typedef void (*cls_dtor)(CUcontext ctx, void *key, void *value);

/* One value kept for (context, key). */
struct gp__cls_entry {
  struct gp__cls_entry *next;
  struct gp__ctx *ctx;
  void *key;
  void *value;
  cls_dtor dtor; /* may be NULL */
};

/* A bucket per hash of the context: each bucket's list holds the entries
 * of a few contexts (cudart keeps one per context), each context's in the
 * order they were stored. */
#define CLS_BUCKETS 64

static struct {
  pthread_mutex_t mu;
  struct gp__cls_entry *bucket[CLS_BUCKETS];
} cls = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct gp__cls_entry **cls_bucket(const struct gp__ctx *ctx) {
  /* Fibonacci hashing: the top 6 bits of the product. */
  uint64_t h = (uint64_t)(uintptr_t)ctx * 0x9E3779B97F4A7C15ull;
  return &cls.bucket[h >> 58];
}

/* The link that points to the entry of (ctx, key), or to the end of the
 * bucket's list. Needs cls.mu. */
static struct gp__cls_entry **cls_find(struct gp__ctx *ctx, void *key) {
  struct gp__cls_entry **pp = cls_bucket(ctx);
  while (*pp != NULL && ((*pp)->ctx != ctx || (*pp)->key != key))
    pp = &(*pp)->next;
  return pp;
}

/* |h| as a context that may keep storage: any context this library made
 * that is not destroyed, an inactive primary context included; NULL is
 * the calling thread's current context. On CUDA_SUCCESS, *|locked| says
 * whether the client lock was taken to find it (the caller lets it go
 * after its work on the storage, so that the context cannot change state
 * meanwhile); when it was not, the context was the current one, live when
 * looked at. */
static CUresult cls_resolve(CUcontext h, struct gp__ctx **out,
                            bool *locked) {
  struct gp__ctx *cur;
  CUresult r = gp__current_ctx(&cur);
  *locked = false;
  if (h == NULL) {
    if (r == CUDA_SUCCESS)
      *out = cur;
    return r;
  }
  if (r == CUDA_SUCCESS && (CUcontext)cur == h) {
    *out = cur;
    return CUDA_SUCCESS;
  }
  gp__lock();
  r = gp__ctx_lookup_locked(gp__client(), h, true, out);
  if (r == CUDA_SUCCESS)
    *locked = true;
  else
    gp__unlock();
  return r;
}

/* Slot 0: keeps |value| for (ctx, key), replacing an earlier one (whose
 * destructor is not run: the caller is replacing its own value). */
static CUresult cls_put(CUcontext h, void *key, void *value, cls_dtor dtor) {
  struct gp__ctx *ctx = NULL;
  bool locked = false;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    goto out;
  struct gp__cls_entry *fresh = malloc(sizeof(*fresh));
  if (fresh == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  if ((r = cls_resolve(h, &ctx, &locked)) == CUDA_SUCCESS) {
    pthread_mutex_lock(&cls.mu);
    /* Found without the client lock, the context may have been destroyed
     * or released since, its storage detached: a value stored now would
     * outlive it (into the next incarnation of a primary context). A
     * context leaves the live state before its storage is detached, and
     * the detaching takes cls.mu: checked here, the value is either
     * refused or detached with the rest. */
    if (!locked && atomic_load(&ctx->state) != GP__CTX_LIVE) {
      r = CUDA_ERROR_CONTEXT_IS_DESTROYED;
    } else {
      struct gp__cls_entry **pp = cls_find(ctx, key);
      if (*pp != NULL) {
        (*pp)->value = value;
        (*pp)->dtor = dtor;
      } else {
        *fresh = (struct gp__cls_entry){
            .ctx = ctx, .key = key, .value = value, .dtor = dtor};
        *pp = fresh; /* at the end: destructors run in insertion order */
        fresh = NULL;
      }
    }
    pthread_mutex_unlock(&cls.mu);
    if (locked)
      gp__unlock();
  }
  free(fresh);
out:
  GP_TRACE_AS("CONTEXT_LOCAL_STORAGE.put", r,
              "ctx=%p, key=%p, value=%p, dtor=%p", (void *)h, key, value,
              (void *)dtor);
  return r;
}

/* Slot 1: forgets (ctx, key) without running its destructor (cudart
 * deletes its own value before it frees it). Absent:
 * CUDA_ERROR_INVALID_HANDLE, as for get. */
static CUresult cls_delete(CUcontext h, void *key) {
  struct gp__ctx *ctx = NULL;
  struct gp__cls_entry *gone = NULL;
  bool locked = false;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    goto out;
  if ((r = cls_resolve(h, &ctx, &locked)) == CUDA_SUCCESS) {
    pthread_mutex_lock(&cls.mu);
    struct gp__cls_entry **pp = cls_find(ctx, key);
    if (*pp == NULL) {
      r = CUDA_ERROR_INVALID_HANDLE;
    } else {
      gone = *pp;
      *pp = gone->next;
    }
    pthread_mutex_unlock(&cls.mu);
    if (locked)
      gp__unlock();
  }
  free(gone);
out:
  GP_TRACE_AS("CONTEXT_LOCAL_STORAGE.delete", r, "ctx=%p, key=%p",
              (void *)h, key);
  return r;
}

/* Slot 2: the value of (ctx, key); CUDA_ERROR_INVALID_HANDLE (400) when
 * there is none, which cudart expects for a context it has not set up
 * yet. */
static CUresult cls_get(void **value, CUcontext h, void *key) {
  struct gp__ctx *ctx = NULL;
  bool locked = false;
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS && value == NULL)
    r = CUDA_ERROR_INVALID_VALUE;
  if (r != CUDA_SUCCESS)
    goto out;
  *value = NULL;
  if ((r = cls_resolve(h, &ctx, &locked)) == CUDA_SUCCESS) {
    pthread_mutex_lock(&cls.mu);
    struct gp__cls_entry *e = *cls_find(ctx, key);
    if (e == NULL)
      r = CUDA_ERROR_INVALID_HANDLE;
    else
      *value = e->value;
    pthread_mutex_unlock(&cls.mu);
    if (locked)
      gp__unlock();
  }
out:
  GP_TRACE_AS("CONTEXT_LOCAL_STORAGE.get", r, "value=%p, ctx=%p, key=%p",
              (void *)GP_OUT(r, value), (void *)h, key);
  return r;
}

struct gp__cls_entry *gp__cls_detach_locked(struct gp__client *c,
                                            struct gp__ctx *ctx) {
  struct gp__cls_entry *list = NULL, **tail = &list;
  (void)c;
  pthread_mutex_lock(&cls.mu);
  struct gp__cls_entry **pp = cls_bucket(ctx);
  while (*pp != NULL) {
    struct gp__cls_entry *e = *pp;
    if (e->ctx == ctx) {
      *pp = e->next;
      e->next = NULL;
      *tail = e;
      tail = &e->next;
    } else {
      pp = &e->next;
    }
  }
  pthread_mutex_unlock(&cls.mu);
  return list;
}

void gp__cls_run(struct gp__cls_entry *list) {
  while (list != NULL) {
    struct gp__cls_entry *e = list;
    list = e->next;
    if (e->dtor != NULL) {
      GP_TRACE_AS("CONTEXT_LOCAL_STORAGE.dtor", CUDA_SUCCESS,
                  "ctx=%p, key=%p, value=%p, dtor=%p", (void *)e->ctx,
                  e->key, e->value, (void *)e->dtor);
      e->dtor((CUcontext)e->ctx, e->key, e->value);
    }
    free(e);
  }
}

/* No size slot. The fourth slot is not used by cudart 13. */
struct context_local_storage {
  CUresult (*put)(CUcontext, void *, void *, cls_dtor);
  CUresult (*del)(CUcontext, void *);
  CUresult (*get)(void **, CUcontext, void *);
  void *unused3;
};

static const struct context_local_storage context_local_storage = {
    .put = cls_put,
    .del = cls_delete,
    .get = cls_get,
};

/* ---- CONTEXT_CHECKS ------------------------------------------------------------- */

/* Slot 2: whether |ctx| wraps another context (*wrapped) and which
 * (*inner): never here. */
static CUresult checks_slot2(CUcontext ctx, uint32_t *wrapped, void **inner) {
  if (wrapped != NULL)
    *wrapped = 0;
  GP_TRACE_AS("CONTEXT_CHECKS[2]", CUDA_SUCCESS, "ctx=%p, r1=0, r2=%p",
              (void *)ctx, (void *)inner);
  return CUDA_SUCCESS;
}

/* Slot 3: a flag cudart reads once; 0. */
static uint32_t checks_slot3(void) {
  GP_TRACE_AS("CONTEXT_CHECKS[3]", CUDA_SUCCESS, "%s", "");
  return 0;
}

struct context_checks {
  size_t size;
  void *unused1;
  CUresult (*slot2)(CUcontext, uint32_t *, void **);
  uint32_t (*slot3)(void);
};
_Static_assert(sizeof(struct context_checks) == 4 * 8,
               "CONTEXT_CHECKS has 4 slots");

static const struct context_checks context_checks = {
    .size = sizeof(struct context_checks),
    .slot2 = checks_slot2,
    .slot3 = checks_slot3,
};

/* ---- INTEGRITY_CHECK ------------------------------------------------------------- */

static CUresult integrity_check(uint32_t version, uint64_t unix_seconds,
                                uint64_t out[2]);

struct integrity_table {
  size_t size;
  CUresult (*check)(uint32_t, uint64_t, uint64_t *);
  void *unused2;
};
_Static_assert(sizeof(struct integrity_table) == 3 * 8,
               "INTEGRITY_CHECK has 3 slots");

static const struct integrity_table integrity_table = {
    .size = sizeof(struct integrity_table),
    .check = integrity_check,
};

/* The HMAC key of the check. */
static const uint8_t integrity_key[16] = {0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9,
                                          0xA7, 0x52, 0xAA, 0x08, 0x41, 0x36,
                                          0x0B, 0xF5, 0x5A, 0x9F};

/* The fixed part of the message, then per device a 16-byte UUID and three
 * 32-bit PCI numbers. */
#define INTEGRITY_HEAD (4 * 4 + 4 * 8)
#define INTEGRITY_PER_DEVICE (16 + 3 * 4)

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    *p++ = (uint8_t)(v >> (8 * i));
  return p;
}

/* Slot 1: cudart's check that it is talking to a genuine driver, asked
 * with versions 13000, 13001 and 13002. For version % 10 == 0 and 1 the
 * answer is a constant; otherwise it is HMAC-MD2 of a message binding the
 * answer to this process, thread, these tables and the devices, packed
 * little-endian without padding:
 *   u32 driver version (as cuDriverGetVersion reports it), u32 version,
 *   u32 pid, u32 (u32)pthread_self(), u64 &CUDART_INTERFACE,
 *   u64 &INTEGRITY_CHECK, u64 INTEGRITY_CHECK slot 1, u64 unix_seconds,
 *   then per device its UUID and i32 PCI domain, bus and device.
 * A wrong answer makes cudart fail with
 * cudaErrorSoftwareValidityNotEstablished (103). */
static CUresult integrity_check(uint32_t version, uint64_t unix_seconds,
                                uint64_t out[2]) {
  struct gp__client *c = gp__client();
  uint8_t *msg = NULL;
  CUresult r = CUDA_SUCCESS;
  if (out == NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  if (version % 10 == 0 || version % 10 == 1) {
    out[0] = version % 10 == 0 ? 0x3341181C03CB675Cull : 0x1841181C03CB675Cull;
    out[1] = 0x8ED383AA1F4CD1E8ull;
    goto out;
  }
  /* The device table is written once, by the successful cuInit, before
   * |init| says so; before that the message lists no device. */
  int ndev = atomic_load(&c->init) == GP__INIT_OK ? c->ndevices : 0;
  size_t len = INTEGRITY_HEAD + (size_t)ndev * INTEGRITY_PER_DEVICE;
  msg = malloc(len);
  if (msg == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  uint8_t *p = msg;
  p = put_le(p, (uint32_t)gp__driver_version(), 4);
  p = put_le(p, version, 4);
  p = put_le(p, (uint32_t)getpid(), 4);
  p = put_le(p, (uint32_t)(uintptr_t)pthread_self(), 4);
  p = put_le(p, (uintptr_t)&cudart_interface, 8);
  p = put_le(p, (uintptr_t)&integrity_table, 8);
  p = put_le(p, (uintptr_t)integrity_table.check, 8);
  p = put_le(p, unix_seconds, 8);
  for (int i = 0; i < ndev; i++) {
    const struct gp__device *d = &c->devices[i];
    memcpy(p, d->uuid, 16);
    p += 16;
    p = put_le(p, (uint32_t)d->attr[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID], 4);
    p = put_le(p, (uint32_t)d->attr[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID], 4);
    p = put_le(p, (uint32_t)d->attr[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID], 4);
  }
  uint8_t mac[GP__MD2_LEN];
  gp__hmac_md2(integrity_key, sizeof(integrity_key), msg, len, mac);
  memcpy(out, mac, sizeof(mac));
out:
  free(msg);
  GP_TRACE_AS("INTEGRITY_CHECK[1]", r,
              "version=%u, unix_seconds=%llu, out={0x%016llx, 0x%016llx}",
              version, (unsigned long long)unix_seconds,
              r == CUDA_SUCCESS ? (unsigned long long)out[0] : 0ull,
              r == CUDA_SUCCESS ? (unsigned long long)out[1] : 0ull);
  return r;
}

/* ---- The logger ------------------------------------------------------------------- */

/* Slot 1: cudart reports an error in its own words (a source, a number,
 * a printf format and its arguments). Shown when tracing only: the
 * program reports the error it gets in its own way. */
static void logger_slot1(const char *src, int num, const char *fmt,
                         va_list *ap) {
  if (!gp__trace_on)
    return;
  char text[512] = "";
  if (fmt != NULL && ap != NULL) {
    va_list copy;
    va_copy(copy, *ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(text, sizeof(text), fmt, copy);
#pragma GCC diagnostic pop
    va_end(copy);
  } else if (fmt != NULL) {
    snprintf(text, sizeof(text), "%s", fmt);
  }
  gp__log("cudart says (%s, %d): %s", src != NULL ? src : "?", num, text);
}

struct logger {
  size_t size;
  void (*log)(const char *, int, const char *, va_list *);
};

static const struct logger logger = {
    .size = sizeof(struct logger),
    .log = logger_slot1,
};

/* ---- cuGetExportTable --------------------------------------------------------------- */

static const struct export_table {
  const char *name;
  uint8_t uuid[16]; /* in memory order */
  const void *table;
} export_tables[] = {
    {"CUDART_INTERFACE",
     {0x6B, 0xD5, 0xFB, 0x6C, 0x5B, 0xF4, 0xE7, 0x4A, 0x89, 0x87, 0xD9, 0x39,
      0x12, 0xFD, 0x9D, 0xF9},
     &cudart_interface},
    {"TOOLS_RUNTIME_CALLBACK_HOOKS",
     {0xA0, 0x94, 0x79, 0x8C, 0x2E, 0x74, 0x2E, 0x74, 0x93, 0xF2, 0x08, 0x00,
      0x20, 0x0C, 0x0A, 0x66},
     &tools_hooks},
    {"TOOLS_TLS",
     {0x42, 0xD8, 0x5A, 0x81, 0x23, 0xF6, 0xCB, 0x47, 0x82, 0x98, 0xF6, 0xE7,
      0x8A, 0x3A, 0xEC, 0xDC},
     &tools_tls},
    {"CONTEXT_LOCAL_STORAGE",
     {0xC6, 0x93, 0x33, 0x6E, 0x11, 0x21, 0xDF, 0x11, 0xA8, 0xC3, 0x68, 0xF3,
      0x55, 0xD8, 0x95, 0x93},
     &context_local_storage},
    {"CONTEXT_CHECKS",
     {0x26, 0x3E, 0x88, 0x60, 0x7C, 0xD2, 0x61, 0x43, 0x92, 0xF6, 0xBB, 0xD5,
      0x00, 0x6D, 0xFA, 0x7E},
     &context_checks},
    {"INTEGRITY_CHECK",
     {0xD4, 0x08, 0x20, 0x55, 0xBD, 0xE6, 0x70, 0x4B, 0x8D, 0x34, 0xBA, 0x12,
      0x3C, 0x66, 0xE1, 0xF2},
     &integrity_table},
    {"LOGGER",
     {0xF8, 0xCF, 0xF9, 0x51, 0x21, 0x46, 0x8B, 0x4E, 0xB9, 0xE2, 0xFB, 0x46,
      0x9E, 0x7C, 0x0D, 0xD9},
     &logger},
    {"CONTEXT_ID",
     {0x21, 0x31, 0x8C, 0x60, 0x97, 0x14, 0x32, 0x48, 0x8C, 0xA6, 0x41, 0xFF,
      0x73, 0x24, 0xC8, 0xF2},
     &context_id_table},
};

/* |uuid| as the facts doc writes it: the bytes in memory order, grouped
 * 4-2-2-2-6 ("6BD5FB6C-5BF4-E74A-8987-D93912FD9DF9"). |buf| holds 37. */
static const char *uuid_text(const uint8_t *u, char *buf) {
  char *p = buf;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    p += sprintf(p, "%02X", u[i]);
  }
  return buf;
}

static CUresult get_export_table(const void **pp, const CUuuid *id,
                                 const char **name) {
  *name = NULL;
  if (pp == NULL || id == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  *pp = NULL;
  for (size_t i = 0; i < sizeof(export_tables) / sizeof(export_tables[0]);
       i++) {
    if (memcmp(id->bytes, export_tables[i].uuid, 16) == 0) {
      *pp = export_tables[i].table;
      *name = export_tables[i].name;
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_INVALID_VALUE;
}

GP_API CUresult cuGetExportTable(const void **ppExportTable,
                                 const CUuuid *pExportTableId) {
  const char *name;
  char text[40] = "NULL";
  CUresult r = get_export_table(ppExportTable, pExportTableId, &name);
  GP_TRACE(r, "ppExportTable=%p, pExportTableId=%s (%s)",
           ppExportTable != NULL ? (const void *)*ppExportTable : NULL,
           pExportTableId != NULL
               ? uuid_text((const uint8_t *)pExportTableId->bytes, text)
               : text,
           name != NULL ? name : "unknown");
  return r;
}
