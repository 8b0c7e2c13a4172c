/* The emu backend: an emulated device on the CPU (see
 * docs/emulated-device.md).
 *
 * Device memory is the session's arena (arena.h). Contexts, streams,
 * events, modules and functions are objects in id maps (idmap.h); each
 * context links its streams, events and modules and owns its allocations,
 * so destroying it frees them all. Modules and launches are in module.c
 * and launch.c.
 *
 * A kernel fault makes its context "sticky-failed" (emu_ctx.sticky), as on
 * a GPU: every later operation that touches the context returns that
 * error until it is destroyed. An operation finds the context through the
 * id it names (a context), the object it names (a stream's, an event's, a
 * module's context) or the allocation an address lies in (its owner).
 * Other contexts are unaffected: a kernel reaches only its own context's
 * allocations (launch.c).
 *
 * Work executes synchronously, in arrival order, when its request is
 * dispatched: a copy or memset is complete when its operation returns, so
 * every synchronize and query that is reached succeeds, and an event
 * records the time at which its record request was executed.
 */
#include <cuda.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "emu.h"
#include "idmap.h"

/* What cuCtxGetStreamPriorityRange reports on CC 7.5 hardware; a priority
 * outside it is clamped, as the driver does. */
#define EMU_PRIORITY_GREATEST (-1)
#define EMU_PRIORITY_LEAST 0

#define EMU_EVENT_FLAGS \
  (CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)

/* ---- session -------------------------------------------------------------- */

/* The value of device attribute |attr| (0 if the table lacks it), as
 * device.c defines it for clients. */
static int device_attr(int sm_count, int attr) {
  struct gp_device_desc d; /* about 2 KiB */
  int i;

  emu_device_describe(sm_count, 0, NULL, &d);
  for (i = 0; i < d.nattrs; i++)
    if (d.attrs[i].attr == attr)
      return d.attrs[i].value;
  return 0;
}

static int emu_open(const struct gp_backend_config *cfg,
                    struct gp_backend **out) {
  struct gp_backend *b;
  long cores;
  int r;

  *out = NULL;
  b = calloc(1, sizeof(*b));
  if (!b)
    return CUDA_ERROR_OUT_OF_MEMORY;
  b->cfg = *cfg;
  b->sm_count = cfg->emu_sm_count;
  if (b->sm_count <= 0) {
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    b->sm_count = cores > 0 && cores < 65536 ? (int)cores : 1;
  }
  b->max_shared_optin = device_attr(
      b->sm_count, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  r = emu_output_init(&b->out);
  if (r != CUDA_SUCCESS) {
    free(b);
    return r;
  }
  r = cfg->emu_shared_fd > 0
          ? emu_arena_init_shared(&b->arena, cfg->emu_shared_fd, NULL)
          : emu_arena_init(&b->arena, cfg->emu_memory, NULL);
  if (r == CUDA_SUCCESS && cfg->emu_shared_fd > 0)
    b->arena.scrub_free = cfg->scrub_free;
  if (r != CUDA_SUCCESS) {
    emu_output_free(&b->out);
    free(b);
    return r;
  }
  gp__idmap_init(&b->ctxs, EMU_MAX_CTXS);
  gp__idmap_init(&b->streams, EMU_MAX_STREAMS);
  gp__idmap_init(&b->events, EMU_MAX_EVENTS);
  gp__idmap_init(&b->modules, EMU_MAX_MODULES);
  gp__idmap_init(&b->funcs, EMU_MAX_FUNCS);
  *out = b;
  return CUDA_SUCCESS;
}

static void ctx_free_objects(struct gp_backend *b, struct emu_ctx *c) {
  /* Modules first: unloading gives their variables back to the arena by
   * address, which must happen before the owner's release below. */
  emu_ctx_unload_modules(b, c);
  while (c->streams) {
    struct emu_stream *s = c->streams;
    c->streams = s->next;
    gp__idmap_remove(&b->streams, s->id);
    free(s);
  }
  while (c->events) {
    struct emu_event *e = c->events;
    c->events = e->next;
    gp__idmap_remove(&b->events, e->id);
    free(e);
  }
  emu_arena_release_owner(&b->arena, &c->mem);
  if (c->primary && c->device >= 0 && c->device < EMU_DEVICE_COUNT &&
      b->primary[c->device] == c)
    b->primary[c->device] = NULL;
  gp__idmap_remove(&b->ctxs, c->id);
  free(c);
}

static void emu_close(struct gp_backend *b) {
  size_t i;

  if (!b)
    return;
  /* Destroy every context; what remains is freed with the arena. */
  for (i = 0; i < b->ctxs.cap; i++) {
    while (b->ctxs.slots[i].key != 0)
      ctx_free_objects(b, b->ctxs.slots[i].value);
  }
  gp__idmap_free(&b->ctxs);
  gp__idmap_free(&b->streams);
  gp__idmap_free(&b->events);
  gp__idmap_free(&b->modules);
  gp__idmap_free(&b->funcs);
  emu_arena_free(&b->arena);
  emu_output_free(&b->out);
  free(b);
}

static int emu_scrub(struct gp_backend *b, uint64_t *bytes) {
  emu_arena_scrub(&b->arena, bytes);
  return CUDA_SUCCESS;
}

static int emu_driver_version(struct gp_backend *b, int *version) {
  *version = EMU_DRIVER_VERSION;
  return CUDA_SUCCESS;
}

static int emu_device_count(struct gp_backend *b, int *count) {
  *count = EMU_DEVICE_COUNT;
  return CUDA_SUCCESS;
}

static int emu_device_describe_op(struct gp_backend *b, int ordinal,
                                  struct gp_device_desc *out) {
  if (ordinal < 0 || ordinal >= EMU_DEVICE_COUNT)
    return CUDA_ERROR_INVALID_DEVICE;
  emu_device_describe(b->sm_count, b->arena.size, b->cfg.emu_uuid_seed, out);
  return CUDA_SUCCESS;
}

/* ---- contexts ------------------------------------------------------------- */

static struct emu_ctx *ctx_get(struct gp_backend *b, uint64_t id) {
  return gp__idmap_get(&b->ctxs, id);
}

int emu_ctx_state(const struct emu_ctx *c) {
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  return c->sticky;
}

struct emu_ctx *emu_owner_ctx(struct emu_owner *o) {
  return (struct emu_ctx *)(void *)((char *)o - offsetof(struct emu_ctx, mem));
}

/* The state (emu_ctx_state()) of the context named |id|. */
static int ctx_state_id(struct gp_backend *b, uint64_t id) {
  return emu_ctx_state(ctx_get(b, id));
}

static int ctx_flags_valid(unsigned flags) {
  unsigned sched = flags & CU_CTX_SCHED_MASK;

  if (flags & ~(unsigned)CU_CTX_FLAGS_MASK)
    return 0;
  /* At most one scheduling policy. */
  return sched == 0 || sched == CU_CTX_SCHED_SPIN ||
         sched == CU_CTX_SCHED_YIELD || sched == CU_CTX_SCHED_BLOCKING_SYNC;
}

static int ctx_make(struct gp_backend *b, uint64_t id, int device,
                    unsigned flags, bool primary, struct emu_ctx **out) {
  struct emu_ctx *c;
  int r;

  if (device < 0 || device >= EMU_DEVICE_COUNT)
    return CUDA_ERROR_INVALID_DEVICE;
  if (id == 0 || ctx_get(b, id) || !ctx_flags_valid(flags))
    return CUDA_ERROR_INVALID_VALUE;
  c = calloc(1, sizeof(*c));
  if (!c)
    return CUDA_ERROR_OUT_OF_MEMORY;
  c->id = id;
  c->device = device;
  c->flags = flags;
  c->primary = primary;
  r = gp__idmap_put(&b->ctxs, id, c);
  if (r != CUDA_SUCCESS) {
    free(c);
    return r;
  }
  if (out)
    *out = c;
  return CUDA_SUCCESS;
}

static int emu_ctx_create(struct gp_backend *b, uint64_t ctx, int device,
                          unsigned flags) {
  return ctx_make(b, ctx, device, flags, false, NULL);
}

static int emu_ctx_destroy(struct gp_backend *b, uint64_t ctx) {
  struct emu_ctx *c = ctx_get(b, ctx);

  if (!c || c->primary)
    return CUDA_ERROR_INVALID_CONTEXT;
  ctx_free_objects(b, c);
  return CUDA_SUCCESS;
}

static int emu_ctx_synchronize(struct gp_backend *b, uint64_t ctx) {
  return ctx_state_id(b, ctx);
}

static int emu_primary_ctx_retain(struct gp_backend *b, uint64_t ctx,
                                  int device, unsigned flags) {
  struct emu_ctx *c;
  int r;

  if (device < 0 || device >= EMU_DEVICE_COUNT)
    return CUDA_ERROR_INVALID_DEVICE;
  if (b->primary[device])
    return CUDA_ERROR_INVALID_VALUE;
  r = ctx_make(b, ctx, device, flags, true, &c);
  if (r == CUDA_SUCCESS)
    b->primary[device] = c;
  return r;
}

static int emu_primary_ctx_release(struct gp_backend *b, uint64_t ctx) {
  struct emu_ctx *c = ctx_get(b, ctx);

  if (!c || !c->primary)
    return CUDA_ERROR_INVALID_CONTEXT;
  ctx_free_objects(b, c);
  return CUDA_SUCCESS;
}

/* ---- memory --------------------------------------------------------------- */

/* Stream 0 (the default stream) or a live stream whose context has not
 * failed. Stream 0 names no context: the addresses of the operation do
 * (addr_state()). */
static int stream_check(struct gp_backend *b, uint64_t stream) {
  struct emu_stream *s;

  if (stream == 0)
    return CUDA_SUCCESS;
  s = gp__idmap_get(&b->streams, stream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  return s->ctx->sticky;
}

/* The sticky error of the context that owns the allocation containing
 * |addr|, or CUDA_SUCCESS (also when no allocation contains it: the range
 * check that follows reports that). */
static int addr_state(struct gp_backend *b, uint64_t addr) {
  struct emu_alloc_info info;

  if (emu_arena_lookup(&b->arena, addr, &info) != CUDA_SUCCESS)
    return CUDA_SUCCESS;
  return emu_owner_ctx(info.owner)->sticky;
}

/* stream_check() and addr_state() of one address. */
static int access_check(struct gp_backend *b, uint64_t addr,
                        uint64_t stream) {
  int r = stream_check(b, stream);
  return r != CUDA_SUCCESS ? r : addr_state(b, addr);
}

static int emu_mem_alloc(struct gp_backend *b, uint64_t ctx, uint64_t size,
                         uint64_t *dptr) {
  struct emu_ctx *c = ctx_get(b, ctx);
  int r = emu_ctx_state(c);

  if (r != CUDA_SUCCESS)
    return r;
  return emu_arena_alloc(&b->arena, &c->mem, size, dptr);
}

static int emu_mem_alloc_pitch(struct gp_backend *b, uint64_t ctx,
                               uint64_t width, uint64_t height,
                               unsigned element_size, uint64_t *dptr,
                               uint64_t *pitch) {
  struct emu_ctx *c = ctx_get(b, ctx);
  int r = emu_ctx_state(c);

  if (r != CUDA_SUCCESS)
    return r;
  return emu_arena_alloc_pitch(&b->arena, &c->mem, width, height,
                               element_size, dptr, pitch);
}

/* A module variable's address is refused (the arena knows it by its flag),
 * as the driver refuses cuMemFree of a cuModuleGetGlobal address. */
static int emu_mem_free(struct gp_backend *b, uint64_t dptr) {
  int r = addr_state(b, dptr);
  return r != CUDA_SUCCESS ? r : emu_arena_release(&b->arena, dptr);
}

static int emu_mem_get_info(struct gp_backend *b, uint64_t ctx,
                            uint64_t *free_b, uint64_t *total) {
  int r = ctx_state_id(b, ctx);

  if (r != CUDA_SUCCESS)
    return r;
  emu_arena_info(&b->arena, free_b, total);
  return CUDA_SUCCESS;
}

static int emu_mem_get_address_range(struct gp_backend *b, uint64_t dptr,
                                     uint64_t *base, uint64_t *size) {
  struct emu_alloc_info info;
  int r = emu_arena_lookup(&b->arena, dptr, &info);

  if (r == CUDA_SUCCESS)
    r = emu_owner_ctx(info.owner)->sticky;
  if (r == CUDA_SUCCESS) {
    *base = info.base;
    *size = info.size;
  }
  return r;
}

static int emu_mem_host_view(struct gp_backend *b, uint64_t dptr,
                             uint64_t size, uint64_t stream, void **host) {
  int r = access_check(b, dptr, stream);

  if (r != CUDA_SUCCESS)
    return r;
  return emu_arena_check(&b->arena, dptr, size, host);
}

static int emu_memcpy_htod(struct gp_backend *b, uint64_t dst,
                           const void *src, uint64_t size, uint64_t stream) {
  void *d;
  int r = stream_check(b, stream);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  r = addr_state(b, dst);
  if (r == CUDA_SUCCESS)
    r = emu_arena_check(&b->arena, dst, size, &d);
  if (r == CUDA_SUCCESS)
    memcpy(d, src, size);
  return r;
}

static int emu_memcpy_dtoh(struct gp_backend *b, void *dst, uint64_t src,
                           uint64_t size, uint64_t stream) {
  void *s;
  int r = stream_check(b, stream);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  r = addr_state(b, src);
  if (r == CUDA_SUCCESS)
    r = emu_arena_check(&b->arena, src, size, &s);
  if (r == CUDA_SUCCESS)
    memcpy(dst, s, size);
  return r;
}

static int emu_memcpy_dtod(struct gp_backend *b, uint64_t dst, uint64_t src,
                           uint64_t size, uint64_t stream) {
  void *d, *s;
  int r = stream_check(b, stream);

  if (r != CUDA_SUCCESS || size == 0)
    return r;
  r = addr_state(b, dst);
  if (r == CUDA_SUCCESS)
    r = addr_state(b, src);
  if (r == CUDA_SUCCESS)
    r = emu_arena_check(&b->arena, dst, size, &d);
  if (r == CUDA_SUCCESS)
    r = emu_arena_check(&b->arena, src, size, &s);
  if (r == CUDA_SUCCESS)
    memmove(d, s, size);
  return r;
}

static int emu_memset(struct gp_backend *b, uint64_t dst, uint32_t value,
                      unsigned element_size, uint64_t count,
                      uint64_t stream) {
  void *d;
  uint64_t i;
  int r;

  if (element_size != 1 && element_size != 2 && element_size != 4)
    return CUDA_ERROR_INVALID_VALUE;
  /* cuMemsetD16/D32 want a destination aligned to the element. */
  if (dst % element_size != 0)
    return CUDA_ERROR_INVALID_VALUE;
  r = stream_check(b, stream);
  if (r != CUDA_SUCCESS || count == 0)
    return r;
  if (count > UINT64_MAX / element_size)
    return CUDA_ERROR_INVALID_VALUE;
  r = addr_state(b, dst);
  if (r != CUDA_SUCCESS)
    return r;
  r = emu_arena_check(&b->arena, dst, count * element_size, &d);
  if (r != CUDA_SUCCESS)
    return r;
  if (element_size == 1) {
    memset(d, (int)(value & 0xff), count);
  } else if (element_size == 2) {
    uint16_t v = (uint16_t)value, *p = d;
    for (i = 0; i < count; i++)
      p[i] = v;
  } else {
    uint32_t *p = d;
    for (i = 0; i < count; i++)
      p[i] = value;
  }
  return CUDA_SUCCESS;
}

/* ---- streams -------------------------------------------------------------- */

static int emu_stream_create(struct gp_backend *b, uint64_t ctx,
                             uint64_t stream, unsigned flags, int priority) {
  struct emu_ctx *c = ctx_get(b, ctx);
  struct emu_stream *s;
  int r = emu_ctx_state(c);

  if (r != CUDA_SUCCESS)
    return r;
  if (stream == 0 || gp__idmap_get(&b->streams, stream) ||
      (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
    return CUDA_ERROR_INVALID_VALUE;
  s = calloc(1, sizeof(*s));
  if (!s)
    return CUDA_ERROR_OUT_OF_MEMORY;
  s->id = stream;
  s->ctx = c;
  s->flags = flags;
  s->priority = priority < EMU_PRIORITY_GREATEST ? EMU_PRIORITY_GREATEST
                : priority > EMU_PRIORITY_LEAST  ? EMU_PRIORITY_LEAST
                                                 : priority;
  r = gp__idmap_put(&b->streams, stream, s);
  if (r != CUDA_SUCCESS) {
    free(s);
    return r;
  }
  s->next = c->streams;
  if (c->streams)
    c->streams->prev = s;
  c->streams = s;
  return CUDA_SUCCESS;
}

static int emu_stream_destroy(struct gp_backend *b, uint64_t stream) {
  struct emu_stream *s = gp__idmap_get(&b->streams, stream);

  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  if (s->ctx->sticky)
    return s->ctx->sticky;
  gp__idmap_remove(&b->streams, stream);
  if (s->prev)
    s->prev->next = s->next;
  else
    s->ctx->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  free(s);
  return CUDA_SUCCESS;
}

static int emu_stream_synchronize(struct gp_backend *b, uint64_t stream) {
  return stream_check(b, stream);
}

static int emu_stream_query(struct gp_backend *b, uint64_t ctx,
                            uint64_t stream) {
  struct emu_ctx *c;

  if (stream != 0)
    return stream_check(b, stream);
  c = gp__idmap_get(&b->ctxs, ctx);
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  return c->sticky;
}

static int emu_stream_wait_event(struct gp_backend *b, uint64_t stream,
                                 uint64_t event, unsigned flags) {
  struct emu_event *e;
  int r = stream_check(b, stream);

  if (r != CUDA_SUCCESS)
    return r;
  e = gp__idmap_get(&b->events, event);
  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (e->ctx->sticky)
    return e->ctx->sticky;
  if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
    return CUDA_ERROR_INVALID_VALUE;
  /* Work is already complete when it is reached: nothing to wait for. */
  return CUDA_SUCCESS;
}

/* ---- events --------------------------------------------------------------- */

static int emu_event_create(struct gp_backend *b, uint64_t ctx,
                            uint64_t event, unsigned flags) {
  struct emu_ctx *c = ctx_get(b, ctx);
  struct emu_event *e;
  int r = emu_ctx_state(c);

  if (r != CUDA_SUCCESS)
    return r;
  if (event == 0 || gp__idmap_get(&b->events, event) ||
      (flags & ~(unsigned)EMU_EVENT_FLAGS))
    return CUDA_ERROR_INVALID_VALUE;
  /* The driver requires an interprocess event to disable timing. */
  if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))
    return CUDA_ERROR_INVALID_VALUE;
  e = calloc(1, sizeof(*e));
  if (!e)
    return CUDA_ERROR_OUT_OF_MEMORY;
  e->id = event;
  e->ctx = c;
  e->flags = flags;
  r = gp__idmap_put(&b->events, event, e);
  if (r != CUDA_SUCCESS) {
    free(e);
    return r;
  }
  e->next = c->events;
  if (c->events)
    c->events->prev = e;
  c->events = e;
  return CUDA_SUCCESS;
}

static int emu_event_record(struct gp_backend *b, uint64_t event,
                            uint64_t stream) {
  struct emu_event *e = gp__idmap_get(&b->events, event);
  struct emu_stream *s = NULL;

  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (stream != 0) {
    s = gp__idmap_get(&b->streams, stream);
    /* The driver wants the event and the stream in one context. */
    if (!s || s->ctx != e->ctx)
      return CUDA_ERROR_INVALID_HANDLE;
  }
  if (e->ctx->sticky)
    return e->ctx->sticky;
  clock_gettime(CLOCK_MONOTONIC, &e->when);
  e->recorded = true;
  return CUDA_SUCCESS;
}

static int emu_event_query(struct gp_backend *b, uint64_t event) {
  struct emu_event *e = gp__idmap_get(&b->events, event);

  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  return e->ctx->sticky;
}

static int emu_event_synchronize(struct gp_backend *b, uint64_t event) {
  return emu_event_query(b, event);
}

static int emu_event_elapsed_time(struct gp_backend *b, uint64_t start,
                                  uint64_t end, float *ms) {
  struct emu_event *s = gp__idmap_get(&b->events, start);
  struct emu_event *e = gp__idmap_get(&b->events, end);
  double d;

  if (!s || !e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (s->ctx->sticky || e->ctx->sticky)
    return s->ctx->sticky ? s->ctx->sticky : e->ctx->sticky;
  if (!s->recorded || !e->recorded)
    return CUDA_ERROR_INVALID_HANDLE;
  if ((s->flags | e->flags) & CU_EVENT_DISABLE_TIMING)
    return CUDA_ERROR_INVALID_HANDLE;
  d = (double)(e->when.tv_sec - s->when.tv_sec) * 1e3 +
      (double)(e->when.tv_nsec - s->when.tv_nsec) / 1e6;
  *ms = (float)d;
  return CUDA_SUCCESS;
}

static int emu_event_destroy(struct gp_backend *b, uint64_t event) {
  struct emu_event *e = gp__idmap_get(&b->events, event);

  if (!e)
    return CUDA_ERROR_INVALID_HANDLE;
  if (e->ctx->sticky)
    return e->ctx->sticky;
  gp__idmap_remove(&b->events, event);
  if (e->prev)
    e->prev->next = e->next;
  else
    e->ctx->events = e->next;
  if (e->next)
    e->next->prev = e->prev;
  free(e);
  return CUDA_SUCCESS;
}

const struct gp_backend_ops gp__backend_emu = {
  .name = "emu",
  .open = emu_open,
  .close = emu_close,
  .scrub = emu_scrub,
  .driver_version = emu_driver_version,
  .device_count = emu_device_count,
  .device_describe = emu_device_describe_op,
  .ctx_create = emu_ctx_create,
  .ctx_destroy = emu_ctx_destroy,
  .ctx_synchronize = emu_ctx_synchronize,
  .primary_ctx_retain = emu_primary_ctx_retain,
  .primary_ctx_release = emu_primary_ctx_release,
  .mem_alloc = emu_mem_alloc,
  .mem_alloc_pitch = emu_mem_alloc_pitch,
  .mem_free = emu_mem_free,
  .mem_get_info = emu_mem_get_info,
  .mem_get_address_range = emu_mem_get_address_range,
  .mem_host_view = emu_mem_host_view,
  .memcpy_htod = emu_memcpy_htod,
  .memcpy_dtoh = emu_memcpy_dtoh,
  .memcpy_dtod = emu_memcpy_dtod,
  .memset = emu_memset,
  .stream_create = emu_stream_create,
  .stream_destroy = emu_stream_destroy,
  .stream_synchronize = emu_stream_synchronize,
  .stream_query = emu_stream_query,
  .stream_wait_event = emu_stream_wait_event,
  .event_create = emu_event_create,
  .event_record = emu_event_record,
  .event_query = emu_event_query,
  .event_synchronize = emu_event_synchronize,
  .event_elapsed_time = emu_event_elapsed_time,
  .event_destroy = emu_event_destroy,
  .module_load = emu_module_load,
  .module_unload = emu_module_unload,
  .module_get_function = emu_module_get_function,
  .module_get_global = emu_module_get_global,
  .module_kernel = emu_module_kernel,
  .module_global_bytes = emu_module_global_bytes,
  .launch = emu_launch,
  .output_peek = emu_output_peek,
  .output_consumed = emu_output_consumed,
};
