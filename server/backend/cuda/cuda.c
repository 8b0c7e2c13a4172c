/* The cuda backend: a session's calls on a real CUDA driver, dlopen'd in
 * the worker (see cuda_be.h and docs/server.md, "The cuda backend").
 *
 * The protocol's client-chosen ids map to driver handles in per-session id
 * maps; each context links its streams, events and modules (and a module
 * its functions), so destroying the context forgets them all while the
 * driver frees the objects themselves. An unknown id gets what the emu
 * backend answers (server/backend/emu/emu.c): the same integration tests
 * run against both. Everything else (ranges, flags, sticky errors after a
 * fault) is the driver's answer, passed through.
 *
 * The driver keeps a current context per thread; the worker has one
 * thread, so the backend remembers which it made current and switches only
 * when an operation needs another one. Stream id 0 is the legacy default
 * stream (NULL) of the context the operation names; a copy or memset
 * names none, and runs on the legacy stream of the context owning its
 * device memory (cub_stream_enter_ptr); anything else that names none (a
 * free) runs in the current context.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"
#include "log.h"

#define CUB_EVENT_FLAGS \
  (CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)

/* An operation (|op|, a function name) whose entry point |fn| the driver
 * lacks: says which function, which driver, and which driver has it. */
static int missing(const struct gp_backend *b, const char *op,
                   const char *fn) {
  const struct cub_symbol *t;
  size_t i, n;
  int since = 0, v = b->drv.version;

  t = cub_symbols(&n);
  for (i = 0; i < n; i++)
    if (strcmp(t[i].name, fn) == 0)
      since = t[i].version;
  if (strncmp(op, "cub_", 4) == 0)
    op += 4;
  if (since > v)
    gp__info("cuda backend: %s needs %s, new in CUDA %d.%d; the driver is "
             "%d.%d: CUDA_ERROR_NOT_SUPPORTED", op, fn, since / 1000,
             since % 1000 / 10, v / 1000, v % 1000 / 10);
  else
    gp__info("cuda backend: %s needs %s, which the driver (%d.%d) does not "
             "provide: CUDA_ERROR_NOT_SUPPORTED", op, fn, v / 1000,
             v % 1000 / 10);
  return CUDA_ERROR_NOT_SUPPORTED;
}

#define NEED(b, fn)                                   \
  do {                                                \
    if (!(b)->drv.fn)                                 \
      return missing((b), __func__, #fn);             \
  } while (0)

/* ---- session -------------------------------------------------------------- */

int cub_make_current(struct gp_backend *b, CUcontext h) {
  int r;

  if (b->current == h && h != NULL)
    return CUDA_SUCCESS;
  r = b->drv.cuCtxSetCurrent(h);
  if (r == CUDA_SUCCESS)
    b->current = h;
  return r;
}

struct cub_ctx *cub_any_ctx(struct gp_backend *b) {
  size_t i;
  struct cub_ctx *c;

  for (i = 0; i < b->ctxs.cap; i++) {
    c = b->ctxs.slots[i].value;
    if (b->ctxs.slots[i].key != 0 && c->h == b->current)
      return c;
  }
  for (i = 0; i < b->ctxs.cap; i++)
    if (b->ctxs.slots[i].key != 0)
      return b->ctxs.slots[i].value;
  return NULL;
}

/* Makes some live context current for an operation that names none.
 * False when the session has no context. */
static bool enter_any(struct gp_backend *b) {
  struct cub_ctx *c = cub_any_ctx(b);

  return c && cub_make_current(b, c->h) == CUDA_SUCCESS;
}

static struct cub_ctx *ctx_get(struct gp_backend *b, uint64_t id) {
  return gp__idmap_get(&b->ctxs, id);
}

/* The context named |id|, made current: CUDA_SUCCESS or
 * CUDA_ERROR_INVALID_CONTEXT. */
static int ctx_enter(struct gp_backend *b, uint64_t id, struct cub_ctx **out) {
  struct cub_ctx *c = ctx_get(b, id);

  if (out)
    *out = c;
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  return cub_make_current(b, c->h);
}

int cub_stream_enter(struct gp_backend *b, uint64_t stream, CUstream *out) {
  struct cub_stream *s;

  *out = NULL;
  if (stream == 0) {
    /* No context: nothing can be on the default stream. */
    enter_any(b);
    return CUDA_SUCCESS;
  }
  s = gp__idmap_get(&b->streams, stream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  *out = s->h;
  return cub_make_current(b, s->ctx->h);
}

/* The session's context owning device address |ptr|, or NULL. */
static struct cub_ctx *ptr_ctx(struct gp_backend *b, uint64_t ptr) {
  CUcontext h = NULL;
  size_t i;

  if (ptr == 0 || !b->drv.cuPointerGetAttribute ||
      b->drv.cuPointerGetAttribute(&h, CU_POINTER_ATTRIBUTE_CONTEXT,
                                   (CUdeviceptr)ptr) != CUDA_SUCCESS || !h)
    return NULL;
  for (i = 0; i < b->ctxs.cap; i++) {
    struct cub_ctx *c = b->ctxs.slots[i].value;
    if (b->ctxs.slots[i].key != 0 && c->h == h)
      return c;
  }
  return NULL;
}

int cub_stream_enter_ptr(struct gp_backend *b, uint64_t stream, uint64_t ptr,
                         uint64_t ptr2, CUstream *out) {
  struct cub_ctx *c;

  if (stream != 0)
    return cub_stream_enter(b, stream, out);
  *out = NULL;
  c = ptr_ctx(b, ptr);
  if (!c)
    c = ptr_ctx(b, ptr2);
  if (!c)
    return cub_stream_enter(b, 0, out);
  return cub_make_current(b, c->h);
}

static int cub_open(const struct gp_backend_config *cfg,
                    struct gp_backend **out) {
  struct gp_backend *b;
  char why[512];
  int r, i;

  *out = NULL;
  b = calloc(1, sizeof(*b));
  if (!b)
    return CUDA_ERROR_OUT_OF_MEMORY;
  b->cfg = *cfg;
  /* Capture stdout first: the driver may print from cuInit on. */
  r = cub_output_init(&b->out);
  if (r != CUDA_SUCCESS) {
    gp__error("cuda backend: cannot capture stdout for device printf");
    free(b);
    return r;
  }
  b->out_ready = true;
  r = cub_driver_open(&b->drv, cfg->cuda_lib, why, sizeof(why));
  if (r != CUDA_SUCCESS) {
    gp__error("cuda backend: %s", why);
    cub_output_free(&b->out);
    free(b);
    return r;
  }
  r = b->drv.cuDeviceGetCount(&b->ndev);
  if (r != CUDA_SUCCESS || b->ndev < 0)
    b->ndev = 0;
  if (b->ndev > CUB_MAX_DEVICES)
    b->ndev = CUB_MAX_DEVICES;
  for (i = 0; i < b->ndev; i++) {
    r = b->drv.cuDeviceGet(&b->devs[i], i);
    if (r != CUDA_SUCCESS) {
      gp__error("cuda backend: cuDeviceGet(%d): %s", i,
                cub_error_name(&b->drv, r));
      b->ndev = i;
      break;
    }
  }
  gp__idmap_init(&b->ctxs, CUB_MAX_CTXS);
  gp__idmap_init(&b->streams, CUB_MAX_STREAMS);
  gp__idmap_init(&b->events, CUB_MAX_EVENTS);
  gp__idmap_init(&b->modules, CUB_MAX_MODULES);
  gp__idmap_init(&b->funcs, CUB_MAX_FUNCS);
  gp__idmap_init(&b->allocs, CUB_MAX_ALLOCS);
  gp__debug("cuda backend: driver %d.%d, %d device%s", b->drv.version / 1000,
            b->drv.version % 1000 / 10, b->ndev, b->ndev == 1 ? "" : "s");
  *out = b;
  return CUDA_SUCCESS;
}

/* ---- object lists --------------------------------------------------------- */

#define LIST_PUSH(head, o)     \
  do {                         \
    (o)->prev = NULL;          \
    (o)->next = (head);        \
    if (head)                  \
      (head)->prev = (o);      \
    (head) = (o);              \
  } while (0)

#define LIST_UNLINK(head, o)          \
  do {                                \
    if ((o)->prev)                    \
      (o)->prev->next = (o)->next;    \
    else                              \
      (head) = (o)->next;             \
    if ((o)->next)                    \
      (o)->next->prev = (o)->prev;    \
  } while (0)

static void func_forget(struct gp_backend *b, struct cub_func *f) {
  LIST_UNLINK(f->mod->funcs, f);
  gp__idmap_remove(&b->funcs, f->id);
  free(f->params);
  free(f);
}

/* Forgets module |m| (the caller unloads it, or destroys its context). */
static void module_forget(struct gp_backend *b, struct cub_module *m) {
  unsigned i;

  while (m->funcs)
    func_forget(b, m->funcs);
  for (i = 0; i < m->nnames; i++)
    free(m->names[i]);
  free(m->names);
  LIST_UNLINK(m->ctx->modules, m);
  gp__idmap_remove(&b->modules, m->id);
  free(m);
}

/* Forgets everything context |c| holds, and |c|; the driver objects die
 * with the driver context, which the caller destroys. */
static void ctx_forget(struct gp_backend *b, struct cub_ctx *c) {
  while (c->modules)
    module_forget(b, c->modules);
  while (c->streams) {
    struct cub_stream *s = c->streams;
    c->streams = s->next;
    gp__idmap_remove(&b->streams, s->id);
    free(s);
  }
  while (c->events) {
    struct cub_event *e = c->events;
    c->events = e->next;
    gp__idmap_remove(&b->events, e->id);
    free(e);
  }
  if (c->primary && b->primary[c->device] == c)
    b->primary[c->device] = NULL;
  gp__idmap_remove(&b->ctxs, c->id);
  free(c);
}

/* Forgets the tracked allocations of context |h| (|h| NULL: all). */
/* --scrub during the session: zeroes the allocations of context |h| (NULL:
 * only |one|, when not 0) before the driver gets them back, and waits. */
static void scrub_before_free(struct gp_backend *b, CUcontext h,
                              uint64_t one) {
  bool any = false;
  size_t i;

  if (!b->cfg.scrub_free || !b->drv.cuMemsetD8Async)
    return;
  for (i = 0; i < b->allocs.cap; i++) {
    const struct gp__idmap_slot *sl = &b->allocs.slots[i];
    const struct cub_alloc *a = sl->value;
    if (sl->key == 0 || (one ? sl->key != one : a->h != h))
      continue;
    if (cub_make_current(b, a->h) == CUDA_SUCCESS &&
        b->drv.cuMemsetD8Async((CUdeviceptr)sl->key, 0, (size_t)a->size,
                               NULL) == CUDA_SUCCESS)
      any = true;
  }
  if (any)
    b->drv.cuCtxSynchronize();
}

static void allocs_forget(struct gp_backend *b, CUcontext h) {
  size_t i = 0;

  while (i < b->allocs.cap) {
    struct gp__idmap_slot *sl = &b->allocs.slots[i];
    if (sl->key != 0 && (!h || ((struct cub_alloc *)sl->value)->h == h)) {
      /* Removal shifts later entries back into this slot: look again. */
      free(gp__idmap_remove(&b->allocs, sl->key));
      continue;
    }
    i++;
  }
}

/* Records a new allocation; when it cannot be recorded, frees it (an
 * allocation --scrub does not know of would outlive the session's
 * scrub). Returns CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY. */
static int alloc_track(struct gp_backend *b, CUdeviceptr p, uint64_t size) {
  struct cub_alloc *a = malloc(sizeof(*a));

  if (a) {
    a->size = size;
    a->h = b->current;
    if (gp__idmap_put(&b->allocs, (uint64_t)p, a) == CUDA_SUCCESS)
      return CUDA_SUCCESS;
    free(a);
  }
  b->drv.cuMemFree(p);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* --scrub: a cuMemsetD8 of every live allocation, then a synchronize of
 * every context that had one. */
static int cub_scrub(struct gp_backend *b, uint64_t *bytes) {
  size_t i;
  int r, first = CUDA_SUCCESS;

  *bytes = 0;
  for (i = 0; i < b->allocs.cap; i++) {
    const struct cub_alloc *a = b->allocs.slots[i].value;
    if (b->allocs.slots[i].key == 0)
      continue;
    r = cub_make_current(b, a->h);
    if (r == CUDA_SUCCESS)
      r = b->drv.cuMemsetD8Async((CUdeviceptr)b->allocs.slots[i].key, 0,
                                 (size_t)a->size, NULL);
    if (r == CUDA_SUCCESS)
      *bytes += a->size;
    else if (first == CUDA_SUCCESS)
      first = r;
  }
  for (i = 0; i < b->ctxs.cap; i++) {
    const struct cub_ctx *c = b->ctxs.slots[i].value;
    if (b->ctxs.slots[i].key == 0)
      continue;
    r = cub_make_current(b, c->h);
    if (r == CUDA_SUCCESS)
      r = b->drv.cuCtxSynchronize();
    if (r != CUDA_SUCCESS && first == CUDA_SUCCESS)
      first = r;
  }
  return first;
}

/* Destroys (or, for a primary context, releases) |c|'s driver context and
 * forgets it. Returns the driver's result. */
static int ctx_end(struct gp_backend *b, struct cub_ctx *c) {
  CUcontext h = c->h;
  int dev = c->device;
  bool primary = c->primary;
  int r;

  scrub_before_free(b, h, 0);
  allocs_forget(b, h);
  cub_stage_ctx_end(b, h);
  ctx_forget(b, c);
  if (primary) {
    /* Not current while it goes away. */
    if (b->current == h && b->drv.cuCtxSetCurrent(NULL) == CUDA_SUCCESS)
      b->current = NULL;
    r = b->drv.cuDevicePrimaryCtxRelease(b->devs[dev]);
  } else {
    r = b->drv.cuCtxDestroy(h);
  }
  if (b->current == h)
    b->current = NULL;
  return r;
}

static void cub_close(struct gp_backend *b) {
  size_t i;

  if (!b)
    return;
  cub_stage_free(b);
  for (i = 0; i < b->ctxs.cap; i++) {
    while (b->ctxs.slots[i].key != 0)
      ctx_end(b, b->ctxs.slots[i].value);
  }
  gp__idmap_free(&b->ctxs);
  gp__idmap_free(&b->streams);
  gp__idmap_free(&b->events);
  gp__idmap_free(&b->modules);
  gp__idmap_free(&b->funcs);
  allocs_forget(b, NULL);
  gp__idmap_free(&b->allocs);
  /* Output the driver printed while closing has no client to go to. */
  if (b->out_ready)
    cub_output_free(&b->out);
  cub_driver_close(&b->drv);
  free(b);
}

/* ---- devices -------------------------------------------------------------- */

static int cub_driver_version(struct gp_backend *b, int *version) {
  *version = b->drv.version;
  return CUDA_SUCCESS;
}

static int cub_device_count(struct gp_backend *b, int *count) {
  *count = b->ndev;
  return CUDA_SUCCESS;
}

static int cub_device_describe(struct gp_backend *b, int ordinal,
                               struct gp_device_desc *out) {
  CUdevice dev;
  CUuuid uuid;
  size_t total = 0;
  int r, a, v;

  if (ordinal < 0 || ordinal >= b->ndev)
    return CUDA_ERROR_INVALID_DEVICE;
  dev = b->devs[ordinal];
  memset(out, 0, sizeof(*out));
  r = b->drv.cuDeviceGetName(out->name, (int)sizeof(out->name), dev);
  if (r != CUDA_SUCCESS)
    return r;
  out->name[sizeof(out->name) - 1] = '\0';
  if (b->drv.cuDeviceGetUuid &&
      b->drv.cuDeviceGetUuid(&uuid, dev) == CUDA_SUCCESS)
    memcpy(out->uuid, uuid.bytes, sizeof(out->uuid));
  r = b->drv.cuDeviceTotalMem(&total, dev);
  if (r != CUDA_SUCCESS)
    return r;
  out->total_mem = total;
  /* Every attribute the driver answers; one it does not know (newer than
   * it, or retired) is left out, as the client then answers for it. */
  for (a = 1; a < (int)CU_DEVICE_ATTRIBUTE_MAX &&
              out->nattrs < GP_DEVICE_MAX_ATTRS; a++) {
    if (b->drv.cuDeviceGetAttribute(&v, (CUdevice_attribute)a, dev) !=
        CUDA_SUCCESS)
      continue;
    out->attrs[out->nattrs].attr = a;
    out->attrs[out->nattrs].value = v;
    out->nattrs++;
  }
  return CUDA_SUCCESS;
}

/* ---- contexts ------------------------------------------------------------- */

static int ctx_new(struct gp_backend *b, uint64_t id, int device,
                   bool primary, struct cub_ctx **out) {
  struct cub_ctx *c;
  int r;

  if (id == 0 || ctx_get(b, id))
    return CUDA_ERROR_INVALID_VALUE;
  c = calloc(1, sizeof(*c));
  if (!c)
    return CUDA_ERROR_OUT_OF_MEMORY;
  c->id = id;
  c->device = device;
  c->primary = primary;
  r = gp__idmap_put(&b->ctxs, id, c);
  if (r != CUDA_SUCCESS) {
    free(c);
    return r;
  }
  *out = c;
  return CUDA_SUCCESS;
}

static int cub_ctx_create(struct gp_backend *b, uint64_t ctx, int device,
                          unsigned flags) {
  struct cub_ctx *c;
  CUcontext h = NULL;
  int r;

  if (device < 0 || device >= b->ndev)
    return CUDA_ERROR_INVALID_DEVICE;
  r = ctx_new(b, ctx, device, false, &c);
  if (r != CUDA_SUCCESS)
    return r;
  r = b->drv.cuCtxCreate(&h, flags, b->devs[device]);
  if (r != CUDA_SUCCESS) {
    ctx_forget(b, c);
    return r;
  }
  c->h = h;
  /* cuCtxCreate makes the new context current. */
  b->current = h;
  return CUDA_SUCCESS;
}

static int cub_ctx_destroy(struct gp_backend *b, uint64_t ctx) {
  struct cub_ctx *c = ctx_get(b, ctx);

  if (!c || c->primary)
    return CUDA_ERROR_INVALID_CONTEXT;
  return ctx_end(b, c);
}

static int cub_ctx_synchronize(struct gp_backend *b, uint64_t ctx) {
  int r = ctx_enter(b, ctx, NULL);

  return r != CUDA_SUCCESS ? r : (int)b->drv.cuCtxSynchronize();
}

static int cub_primary_ctx_retain(struct gp_backend *b, uint64_t ctx,
                                  int device, unsigned flags) {
  struct cub_ctx *c;
  CUcontext h = NULL;
  int r;

  NEED(b, cuDevicePrimaryCtxRetain);
  NEED(b, cuDevicePrimaryCtxRelease);
  if (device < 0 || device >= b->ndev)
    return CUDA_ERROR_INVALID_DEVICE;
  if (b->primary[device])
    return CUDA_ERROR_INVALID_VALUE;
  r = ctx_new(b, ctx, device, true, &c);
  if (r != CUDA_SUCCESS)
    return r;
  /* The flags apply while the context is inactive, which it is: this
   * session is its only user in this process. */
  if (b->drv.cuDevicePrimaryCtxSetFlags)
    r = b->drv.cuDevicePrimaryCtxSetFlags(b->devs[device], flags);
  if (r == CUDA_SUCCESS)
    r = b->drv.cuDevicePrimaryCtxRetain(&h, b->devs[device]);
  if (r != CUDA_SUCCESS) {
    ctx_forget(b, c);
    return r;
  }
  c->h = h;
  b->primary[device] = c;
  return CUDA_SUCCESS;
}

static int cub_primary_ctx_release(struct gp_backend *b, uint64_t ctx) {
  struct cub_ctx *c = ctx_get(b, ctx);

  if (!c || !c->primary)
    return CUDA_ERROR_INVALID_CONTEXT;
  return ctx_end(b, c);
}

/* ---- memory --------------------------------------------------------------- */

static int cub_mem_alloc(struct gp_backend *b, uint64_t ctx, uint64_t size,
                         uint64_t *dptr) {
  CUdeviceptr p = 0;
  int r = ctx_enter(b, ctx, NULL);

  if (r != CUDA_SUCCESS)
    return r;
  if (size > SIZE_MAX)
    return CUDA_ERROR_OUT_OF_MEMORY;
  r = b->drv.cuMemAlloc(&p, (size_t)size);
  if (r == CUDA_SUCCESS)
    r = alloc_track(b, p, size);
  if (r == CUDA_SUCCESS)
    *dptr = p;
  return r;
}

static int cub_mem_alloc_pitch(struct gp_backend *b, uint64_t ctx,
                               uint64_t width, uint64_t height,
                               unsigned element_size, uint64_t *dptr,
                               uint64_t *pitch) {
  CUdeviceptr p = 0;
  size_t pp = 0;
  int r;

  NEED(b, cuMemAllocPitch);
  r = ctx_enter(b, ctx, NULL);
  if (r != CUDA_SUCCESS)
    return r;
  if (width > SIZE_MAX || height > SIZE_MAX)
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuMemAllocPitch(&p, &pp, (size_t)width, (size_t)height,
                             element_size);
  if (r == CUDA_SUCCESS)
    r = alloc_track(b, p, (uint64_t)pp * height);
  if (r == CUDA_SUCCESS) {
    *dptr = p;
    *pitch = pp;
  }
  return r;
}

static int cub_mem_free(struct gp_backend *b, uint64_t dptr) {
  int r;

  /* No context: the address cannot be a live allocation (emu's answer). */
  if (!enter_any(b))
    return CUDA_ERROR_INVALID_VALUE;
  scrub_before_free(b, NULL, dptr);
  r = b->drv.cuMemFree((CUdeviceptr)dptr);
  if (r == CUDA_SUCCESS)
    free(gp__idmap_remove(&b->allocs, dptr));
  return r;
}

static int cub_mem_get_info(struct gp_backend *b, uint64_t ctx,
                            uint64_t *free_b, uint64_t *total) {
  size_t f = 0, t = 0;
  int r;

  NEED(b, cuMemGetInfo);
  r = ctx_enter(b, ctx, NULL);
  if (r != CUDA_SUCCESS)
    return r;
  r = b->drv.cuMemGetInfo(&f, &t);
  if (r == CUDA_SUCCESS) {
    *free_b = f;
    *total = t;
  }
  return r;
}

static int cub_mem_get_address_range(struct gp_backend *b, uint64_t dptr,
                                     uint64_t *base, uint64_t *size) {
  CUdeviceptr bp = 0;
  size_t sz = 0;
  int r;

  if (!enter_any(b))
    return CUDA_ERROR_NOT_FOUND;
  r = b->drv.cuMemGetAddressRange(&bp, &sz, (CUdeviceptr)dptr);
  if (r == CUDA_SUCCESS) {
    *base = bp;
    *size = sz;
  }
  return r;
}

/* The real memory is not host-addressable: the worker stages. */
static int cub_mem_host_view(struct gp_backend *b, uint64_t dptr,
                             uint64_t size, uint64_t stream, void **host) {
  (void)b, (void)dptr, (void)size, (void)stream, (void)host;
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* The copies below wait for nothing more than the driver's own calls do:
 * from and to pageable memory (the worker's buffers), cuMemcpyHtoDAsync
 * returns once the source has been consumed and cuMemcpyDtoHAsync once the
 * data has arrived, so the worker may reuse its buffer at once. */
static int cub_memcpy_htod(struct gp_backend *b, uint64_t dst,
                           const void *src, uint64_t size, uint64_t stream) {
  CUstream s;
  int r = cub_stream_enter_ptr(b, stream, dst, 0, &s);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  if (!b->current)
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuMemcpyHtoDAsync((CUdeviceptr)dst, src, (size_t)size, s);
  if (r == CUDA_SUCCESS && stream == 0)
    r = b->drv.cuStreamSynchronize(s);
  return r;
}

static int cub_memcpy_dtoh(struct gp_backend *b, void *dst, uint64_t src,
                           uint64_t size, uint64_t stream) {
  CUstream s;
  int r = cub_stream_enter_ptr(b, stream, src, 0, &s);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  if (!b->current)
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuMemcpyDtoHAsync(dst, (CUdeviceptr)src, (size_t)size, s);
  if (r == CUDA_SUCCESS)
    r = b->drv.cuStreamSynchronize(s);
  return r;
}

static int cub_memcpy_dtod(struct gp_backend *b, uint64_t dst, uint64_t src,
                           uint64_t size, uint64_t stream) {
  CUstream s;
  int r = cub_stream_enter_ptr(b, stream, dst, src, &s);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  if (!b->current)
    return CUDA_ERROR_INVALID_VALUE;
  return b->drv.cuMemcpyDtoDAsync((CUdeviceptr)dst, (CUdeviceptr)src,
                                  (size_t)size, s);
}

static int cub_memset(struct gp_backend *b, uint64_t dst, uint32_t value,
                      unsigned element_size, uint64_t count,
                      uint64_t stream) {
  CUstream s;
  int r;

  if (element_size != 1 && element_size != 2 && element_size != 4)
    return CUDA_ERROR_INVALID_VALUE;
  if (dst % element_size != 0)
    return CUDA_ERROR_INVALID_VALUE;
  r = cub_stream_enter_ptr(b, stream, dst, 0, &s);
  if (r != CUDA_SUCCESS || count == 0)
    return r;
  if (!b->current || count > SIZE_MAX)
    return CUDA_ERROR_INVALID_VALUE;
  switch (element_size) {
  case 1:
    return b->drv.cuMemsetD8Async((CUdeviceptr)dst, (unsigned char)value,
                                  (size_t)count, s);
  case 2:
    return b->drv.cuMemsetD16Async((CUdeviceptr)dst, (unsigned short)value,
                                   (size_t)count, s);
  default:
    return b->drv.cuMemsetD32Async((CUdeviceptr)dst, value, (size_t)count,
                                   s);
  }
}

/* ---- streams -------------------------------------------------------------- */

static int cub_stream_create(struct gp_backend *b, uint64_t ctx,
                             uint64_t stream, unsigned flags, int priority) {
  struct cub_ctx *c;
  struct cub_stream *s;
  int r = ctx_enter(b, ctx, &c);

  if (r != CUDA_SUCCESS)
    return r;
  if (stream == 0 || gp__idmap_get(&b->streams, stream) ||
      (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
    return CUDA_ERROR_INVALID_VALUE;
  s = calloc(1, sizeof(*s));
  if (!s)
    return CUDA_ERROR_OUT_OF_MEMORY;
  r = b->drv.cuStreamCreateWithPriority(&s->h, flags, priority);
  if (r == CUDA_SUCCESS)
    r = gp__idmap_put(&b->streams, stream, s);
  if (r != CUDA_SUCCESS) {
    if (s->h)
      b->drv.cuStreamDestroy(s->h);
    free(s);
    return r;
  }
  s->id = stream;
  s->ctx = c;
  LIST_PUSH(c->streams, s);
  return CUDA_SUCCESS;
}

static int cub_stream_destroy(struct gp_backend *b, uint64_t stream) {
  struct cub_stream *s = gp__idmap_get(&b->streams, stream);
  int r;

  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  r = cub_make_current(b, s->ctx->h);
  if (r == CUDA_SUCCESS)
    r = b->drv.cuStreamDestroy(s->h);
  if (r != CUDA_SUCCESS)
    return r;
  gp__idmap_remove(&b->streams, stream);
  LIST_UNLINK(s->ctx->streams, s);
  free(s);
  return CUDA_SUCCESS;
}

static int cub_stream_synchronize(struct gp_backend *b, uint64_t stream) {
  CUstream s;
  int r = cub_stream_enter(b, stream, &s);

  if (r != CUDA_SUCCESS || !b->current)
    return r;
  return b->drv.cuStreamSynchronize(s);
}

static int cub_stream_query(struct gp_backend *b, uint64_t ctx,
                            uint64_t stream) {
  CUstream s;
  int r;

  if (stream != 0) {
    r = cub_stream_enter(b, stream, &s);
    return r != CUDA_SUCCESS ? r : (int)b->drv.cuStreamQuery(s);
  }
  r = ctx_enter(b, ctx, NULL);
  return r != CUDA_SUCCESS ? r : (int)b->drv.cuStreamQuery(NULL);
}

static int cub_stream_wait_event(struct gp_backend *b, uint64_t stream,
                                 uint64_t event, unsigned flags) {
  struct cub_event *e;
  CUstream s;
  int r = cub_stream_enter(b, stream, &s);

  if (r != CUDA_SUCCESS)
    return r;
  e = gp__idmap_get(&b->events, event);
  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
    return CUDA_ERROR_INVALID_VALUE;
  if (stream == 0)
    cub_make_current(b, e->ctx->h);
  return b->drv.cuStreamWaitEvent(s, e->h, flags);
}

/* ---- events --------------------------------------------------------------- */

static int cub_event_create(struct gp_backend *b, uint64_t ctx,
                            uint64_t event, unsigned flags) {
  struct cub_ctx *c;
  struct cub_event *e;
  int r = ctx_enter(b, ctx, &c);

  if (r != CUDA_SUCCESS)
    return r;
  if (event == 0 || gp__idmap_get(&b->events, event) ||
      (flags & ~(unsigned)CUB_EVENT_FLAGS))
    return CUDA_ERROR_INVALID_VALUE;
  if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))
    return CUDA_ERROR_INVALID_VALUE;
  e = calloc(1, sizeof(*e));
  if (!e)
    return CUDA_ERROR_OUT_OF_MEMORY;
  r = b->drv.cuEventCreate(&e->h, flags);
  if (r == CUDA_SUCCESS)
    r = gp__idmap_put(&b->events, event, e);
  if (r != CUDA_SUCCESS) {
    if (e->h)
      b->drv.cuEventDestroy(e->h);
    free(e);
    return r;
  }
  e->id = event;
  e->ctx = c;
  LIST_PUSH(c->events, e);
  return CUDA_SUCCESS;
}

static int cub_event_record(struct gp_backend *b, uint64_t event,
                            uint64_t stream) {
  struct cub_event *e = gp__idmap_get(&b->events, event);
  struct cub_stream *s = NULL;
  int r;

  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (stream != 0) {
    s = gp__idmap_get(&b->streams, stream);
    /* The driver wants the event and the stream in one context. */
    if (!s || s->ctx != e->ctx)
      return CUDA_ERROR_INVALID_HANDLE;
  }
  r = cub_make_current(b, e->ctx->h);
  if (r != CUDA_SUCCESS)
    return r;
  return b->drv.cuEventRecord(e->h, s ? s->h : NULL);
}

/* The event named |id| with its context current. */
static int event_enter(struct gp_backend *b, uint64_t id,
                       struct cub_event **out) {
  struct cub_event *e = gp__idmap_get(&b->events, id);

  *out = e;
  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  return cub_make_current(b, e->ctx->h);
}

static int cub_event_query(struct gp_backend *b, uint64_t event) {
  struct cub_event *e;
  int r = event_enter(b, event, &e);

  return r != CUDA_SUCCESS ? r : (int)b->drv.cuEventQuery(e->h);
}

static int cub_event_synchronize(struct gp_backend *b, uint64_t event) {
  struct cub_event *e;
  int r = event_enter(b, event, &e);

  return r != CUDA_SUCCESS ? r : (int)b->drv.cuEventSynchronize(e->h);
}

static int cub_event_elapsed_time(struct gp_backend *b, uint64_t start,
                                  uint64_t end, float *ms) {
  struct cub_event *s = gp__idmap_get(&b->events, start);
  struct cub_event *e = gp__idmap_get(&b->events, end);
  int r;

  NEED(b, cuEventElapsedTime);
  if (!s || !e)
    return CUDA_ERROR_INVALID_HANDLE;
  r = cub_make_current(b, s->ctx->h);
  if (r != CUDA_SUCCESS)
    return r;
  return b->drv.cuEventElapsedTime(ms, s->h, e->h);
}

static int cub_event_destroy(struct gp_backend *b, uint64_t event) {
  struct cub_event *e;
  int r = event_enter(b, event, &e);

  if (r == CUDA_SUCCESS)
    r = b->drv.cuEventDestroy(e->h);
  if (r != CUDA_SUCCESS)
    return r;
  gp__idmap_remove(&b->events, event);
  LIST_UNLINK(e->ctx->events, e);
  free(e);
  return CUDA_SUCCESS;
}

/* ---- modules -------------------------------------------------------------- */

/* Copies at most |len| - 1 bytes of |s| into |out|, printable ASCII only
 * (the JIT log goes to the client and the log). The first line only. */
static void msg_line(char *out, size_t len, const char *s) {
  size_t i = 0;

  if (!len)
    return;
  for (; s && *s && *s != '\n' && i + 1 < len; s++)
    out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  out[i] = '\0';
}

#define CUB_JIT_LOG 4096

/* Loads |image| of |im| into the current context through
 * cuModuleLoadDataEx with the JIT logs: one image as it is, several
 * fatbins (a -rdc=true program's) through a rebuilt version-2 wrapper. */
static int load_module(struct gp_backend *b, const uint8_t *image,
                       size_t size, const struct cub_image *im, CUmodule *h,
                       char *msg, size_t msglen) {
  char errlog[CUB_JIT_LOG] = "", infolog[CUB_JIT_LOG] = "";
  CUjit_option opts[4] = {CU_JIT_ERROR_LOG_BUFFER,
                          CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                          CU_JIT_INFO_LOG_BUFFER,
                          CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES};
  void *vals[4];
  const void *data = image + (im->kind == CUB_IMAGE_FATBINS ? im->offsets[0]
                                                            : 0);
  char *text = NULL;
  void *wrapper = NULL;
  int r;

  if (im->kind == CUB_IMAGE_FATBINS && im->n > 1) {
    wrapper = cub_wrapper_build(image, im);
    if (!wrapper) {
      msg_line(msg, msglen, "out of memory for the fatbin wrapper");
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    data = wrapper;
  }
  if (im->kind == CUB_IMAGE_PTX && memchr(image, '\0', size) == NULL) {
    /* The driver reads PTX up to its NUL. */
    text = malloc(size + 1);
    if (!text) {
      msg_line(msg, msglen, "out of memory");
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(text, image, size);
    text[size] = '\0';
    data = text;
  }
  vals[0] = errlog;
  vals[1] = (void *)(uintptr_t)sizeof(errlog);
  vals[2] = infolog;
  vals[3] = (void *)(uintptr_t)sizeof(infolog);
  r = b->drv.cuModuleLoadDataEx(h, data, 4, opts, vals);
  free(text);
  free(wrapper);
  if (r != CUDA_SUCCESS) {
    errlog[sizeof(errlog) - 1] = '\0';
    if (errlog[0])
      msg_line(msg, msglen, errlog);
    else
      snprintf(msg, msglen, "the driver refused the image: %s",
               cub_error_name(&b->drv, r));
  } else if (infolog[0] && gp__log_level() >= GP_LOG_DEBUG) {
    infolog[sizeof(infolog) - 1] = '\0';
    gp__debug("cuda backend: JIT: %s", infolog);
  }
  return r;
}

static int cub_module_load(struct gp_backend *b, uint64_t ctx,
                           uint64_t module, const void *image, size_t size,
                           char *msg, size_t msglen) {
  struct cub_ctx *c;
  struct cub_module *m;
  struct cub_image im;
  char why[256] = "";
  CUmodule h = NULL;
  int r;

  if (msglen)
    msg[0] = '\0';
  r = ctx_enter(b, ctx, &c);
  if (r != CUDA_SUCCESS) {
    msg_line(msg, msglen, c ? "the context cannot be made current"
                            : "no such context");
    return r;
  }
  if (module == 0 || gp__idmap_get(&b->modules, module)) {
    snprintf(msg, msglen, "module id %#" PRIx64 " is in use", module);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!image || size == 0) {
    msg_line(msg, msglen, "the image is empty");
    return CUDA_ERROR_INVALID_VALUE;
  }
  r = cub_image_split(image, size, &im, why, sizeof(why));
  if (r != CUDA_SUCCESS) {
    msg_line(msg, msglen, why);
    return r;
  }
  m = calloc(1, sizeof(*m));
  if (!m) {
    cub_image_free(&im);
    msg_line(msg, msglen, "out of memory");
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r = load_module(b, image, size, &im, &h, msg, msglen);
  cub_image_free(&im);
  if (r == CUDA_SUCCESS) {
    r = gp__idmap_put(&b->modules, module, m);
    if (r != CUDA_SUCCESS) {
      b->drv.cuModuleUnload(h);
      msg_line(msg, msglen, "too many modules");
    }
  }
  if (r != CUDA_SUCCESS) {
    free(m);
    return r;
  }
  m->id = module;
  m->h = h;
  m->ctx = c;
  LIST_PUSH(c->modules, m);
  return CUDA_SUCCESS;
}

static int module_enter(struct gp_backend *b, uint64_t id,
                        struct cub_module **out) {
  struct cub_module *m = gp__idmap_get(&b->modules, id);

  *out = m;
  if (!m)
    return CUDA_ERROR_INVALID_HANDLE;
  return cub_make_current(b, m->ctx->h);
}

static int cub_module_unload(struct gp_backend *b, uint64_t module) {
  struct cub_module *m;
  int r = module_enter(b, module, &m);

  if (r == CUDA_SUCCESS)
    r = b->drv.cuModuleUnload(m->h);
  if (r == CUDA_SUCCESS)
    module_forget(b, m);
  return r;
}

/* Fills |out|'s parameter layout (cuFuncGetParamInfo, index by index until
 * the driver says CUDA_ERROR_INVALID_VALUE) and its attributes. */
static int describe(struct gp_backend *b, CUfunction h,
                    struct gp_func_desc *out) {
  static const struct {
    CUfunction_attribute a;
    size_t off;
  } attrs[] = {
    {CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
     offsetof(struct gp_func_desc, max_threads_per_block)},
    {CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
     offsetof(struct gp_func_desc, shared_size_bytes)},
    {CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES,
     offsetof(struct gp_func_desc, const_size_bytes)},
    {CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
     offsetof(struct gp_func_desc, local_size_bytes)},
    {CU_FUNC_ATTRIBUTE_NUM_REGS, offsetof(struct gp_func_desc, num_regs)},
    {CU_FUNC_ATTRIBUTE_PTX_VERSION,
     offsetof(struct gp_func_desc, ptx_version)},
    {CU_FUNC_ATTRIBUTE_BINARY_VERSION,
     offsetof(struct gp_func_desc, binary_version)},
  };
  size_t i, off, sz;
  uint64_t end = 0;
  int r;

  for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
    int v = 0;
    r = b->drv.cuFuncGetAttribute(&v, attrs[i].a, h);
    if (r != CUDA_SUCCESS)
      return r;
    memcpy((char *)out + attrs[i].off, &v, sizeof(v));
  }
  out->nparams = 0;
  for (i = 0;; i++) {
    r = b->drv.cuFuncGetParamInfo(h, i, &off, &sz);
    if (r == CUDA_ERROR_INVALID_VALUE)
      break;
    if (r != CUDA_SUCCESS)
      return r;
    if (i >= GP_MAX_KERNEL_PARAMS || off > GP_MAX_PARAM_BYTES ||
        sz > GP_MAX_PARAM_BYTES - off)
      return CUDA_ERROR_NOT_SUPPORTED;
    out->params[i].offset = (uint32_t)off;
    out->params[i].size = (uint32_t)sz;
    if (off + sz > end)
      end = off + sz;
    out->nparams++;
  }
  out->params_size = (uint32_t)end;
  return CUDA_SUCCESS;
}

static int cub_module_get_function(struct gp_backend *b, uint64_t module,
                                   const char *name, uint64_t function,
                                   struct gp_func_desc *out) {
  struct cub_module *m;
  struct cub_func *f;
  CUfunction h = NULL;
  int r;

  NEED(b, cuFuncGetParamInfo);
  r = module_enter(b, module, &m);
  if (r != CUDA_SUCCESS)
    return r;
  if (!name || !name[0] || function == 0 ||
      gp__idmap_get(&b->funcs, function))
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuModuleGetFunction(&h, m->h, name);
  if (r != CUDA_SUCCESS)
    return r;
  r = describe(b, h, out);
  if (r != CUDA_SUCCESS)
    return r;
  f = calloc(1, sizeof(*f));
  if (!f)
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (out->nparams > 0) {
    f->params = malloc(out->nparams * sizeof(*f->params));
    if (!f->params) {
      free(f);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(f->params, out->params, out->nparams * sizeof(*f->params));
  }
  f->id = function;
  f->h = h;
  f->mod = m;
  f->nparams = out->nparams;
  f->params_size = out->params_size;
  if (b->drv.cuFuncGetAttribute(&f->dyn_shared_max,
          CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, h) != CUDA_SUCCESS)
    f->dyn_shared_max = 0;
  r = gp__idmap_put(&b->funcs, function, f);
  if (r != CUDA_SUCCESS) {
    free(f->params);
    free(f);
    return r;
  }
  LIST_PUSH(m->funcs, f);
  return CUDA_SUCCESS;
}

/* Reads the names of |m|'s kernels once (cuModuleGetFunctionCount,
 * cuModuleEnumerateFunctions, cuFuncGetName). */
static int module_names(struct gp_backend *b, struct cub_module *m) {
  CUfunction *fns = NULL;
  unsigned n = 0, i;
  int r;

  if (m->names_known)
    return CUDA_SUCCESS;
  NEED(b, cuModuleGetFunctionCount);
  NEED(b, cuModuleEnumerateFunctions);
  NEED(b, cuFuncGetName);
  r = b->drv.cuModuleGetFunctionCount(&n, m->h);
  if (r != CUDA_SUCCESS)
    return r;
  if (n > CUB_MAX_FUNCS)
    return CUDA_ERROR_NOT_SUPPORTED;
  if (n > 0) {
    fns = calloc(n, sizeof(*fns));
    m->names = calloc(n, sizeof(*m->names));
    if (!fns || !m->names) {
      free(fns);
      free(m->names);
      m->names = NULL;
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    r = b->drv.cuModuleEnumerateFunctions(fns, n, m->h);
  }
  for (i = 0; r == CUDA_SUCCESS && i < n; i++) {
    const char *name = NULL;
    r = b->drv.cuFuncGetName(&name, fns[i]);
    if (r == CUDA_SUCCESS && !(m->names[i] = strdup(name ? name : "")))
      r = CUDA_ERROR_OUT_OF_MEMORY;
    if (r == CUDA_SUCCESS)
      m->nnames = i + 1;
  }
  free(fns);
  if (r != CUDA_SUCCESS) {
    for (i = 0; i < m->nnames; i++)
      free(m->names[i]);
    free(m->names);
    m->names = NULL;
    m->nnames = 0;
    return r;
  }
  m->names_known = true;
  return CUDA_SUCCESS;
}

static int cub_module_kernel(struct gp_backend *b, uint64_t module,
                             uint32_t index, const char **name) {
  struct cub_module *m;
  int r = module_enter(b, module, &m);

  if (r == CUDA_SUCCESS)
    r = module_names(b, m);
  if (r != CUDA_SUCCESS)
    return r;
  if (index >= m->nnames)
    return CUDA_ERROR_NOT_FOUND;
  *name = m->names[index];
  return CUDA_SUCCESS;
}

static int cub_module_get_global(struct gp_backend *b, uint64_t module,
                                 const char *name, uint64_t *dptr,
                                 uint64_t *size) {
  struct cub_module *m;
  CUdeviceptr p = 0;
  size_t sz = 0;
  int r;

  NEED(b, cuModuleGetGlobal);
  r = module_enter(b, module, &m);
  if (r != CUDA_SUCCESS)
    return r;
  if (!name || !name[0])
    return CUDA_ERROR_INVALID_VALUE;
  r = b->drv.cuModuleGetGlobal(&p, &sz, m->h, name);
  if (r == CUDA_SUCCESS) {
    *dptr = p;
    *size = sz;
  }
  return r;
}

/* ---- launches ------------------------------------------------------------- */

static int cub_launch(struct gp_backend *b, const struct gp_launch_desc *l) {
  void *args[GP_MAX_KERNEL_PARAMS];
  struct cub_ctx *c;
  struct cub_func *f;
  struct cub_stream *s = NULL;
  uint32_t i;
  int r = ctx_enter(b, l->ctx, &c);

  if (r != CUDA_SUCCESS)
    return r;
  f = gp__idmap_get(&b->funcs, l->function);
  if (!f || f->mod->ctx != c)
    return CUDA_ERROR_INVALID_HANDLE;
  if (l->stream != 0) {
    s = gp__idmap_get(&b->streams, l->stream);
    if (!s || s->ctx != c)
      return CUDA_ERROR_INVALID_HANDLE;
  }
  /* The packed buffer holds exactly the recorded layout (as on emu). */
  if (l->params_size != f->params_size ||
      (l->params_size != 0 && !l->params))
    return CUDA_ERROR_INVALID_VALUE;
  /* The client checked the dynamic shared memory against the function's
   * attribute as its program set it; the driver wants to have been told
   * too before it launches with more than the default. */
  if (l->shared_mem > (uint32_t)f->dyn_shared_max &&
      l->shared_mem <= INT32_MAX && b->drv.cuFuncSetAttribute &&
      b->drv.cuFuncSetAttribute(f->h,
          CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
          (int)l->shared_mem) == CUDA_SUCCESS)
    f->dyn_shared_max = (int)l->shared_mem;
  for (i = 0; i < f->nparams; i++)
    args[i] = (char *)l->params + f->params[i].offset;
  return b->drv.cuLaunchKernel(f->h, l->grid[0], l->grid[1], l->grid[2],
                               l->block[0], l->block[1], l->block[2],
                               l->shared_mem, s ? s->h : NULL,
                               f->nparams ? args : NULL, NULL);
}

/* ---- output --------------------------------------------------------------- */

static void cub_output_peek_op(struct gp_backend *b, const void **data,
                               size_t *len, uint64_t *dropped) {
  cub_output_peek(&b->out, data, len, dropped);
}

static void cub_output_consumed_op(struct gp_backend *b) {
  cub_output_consumed(&b->out);
}

const struct gp_backend_ops gp__backend_cuda = {
  .name = "cuda",
  .open = cub_open,
  .close = cub_close,
  .scrub = cub_scrub,
  .driver_version = cub_driver_version,
  .device_count = cub_device_count,
  .device_describe = cub_device_describe,
  .ctx_create = cub_ctx_create,
  .ctx_destroy = cub_ctx_destroy,
  .ctx_synchronize = cub_ctx_synchronize,
  .primary_ctx_retain = cub_primary_ctx_retain,
  .primary_ctx_release = cub_primary_ctx_release,
  .mem_alloc = cub_mem_alloc,
  .mem_alloc_pitch = cub_mem_alloc_pitch,
  .mem_free = cub_mem_free,
  .mem_get_info = cub_mem_get_info,
  .mem_get_address_range = cub_mem_get_address_range,
  .mem_host_view = cub_mem_host_view,
  .memcpy_htod = cub_memcpy_htod,
  .memcpy_dtoh = cub_memcpy_dtoh,
  .memcpy_dtod = cub_memcpy_dtod,
  .memset = cub_memset,
  .memcpy_htod_pipe = cub_memcpy_htod_pipe,
  .memcpy_dtoh_pipe = cub_memcpy_dtoh_pipe,
  .stream_create = cub_stream_create,
  .stream_destroy = cub_stream_destroy,
  .stream_synchronize = cub_stream_synchronize,
  .stream_query = cub_stream_query,
  .stream_wait_event = cub_stream_wait_event,
  .event_create = cub_event_create,
  .event_record = cub_event_record,
  .event_query = cub_event_query,
  .event_synchronize = cub_event_synchronize,
  .event_elapsed_time = cub_event_elapsed_time,
  .event_destroy = cub_event_destroy,
  .module_load = cub_module_load,
  .module_unload = cub_module_unload,
  .module_get_function = cub_module_get_function,
  .module_get_global = cub_module_get_global,
  .module_kernel = cub_module_kernel,
  .launch = cub_launch,
  .output_peek = cub_output_peek_op,
  .output_consumed = cub_output_consumed_op,
};
