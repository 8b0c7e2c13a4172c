/* Kernel launches of the emu backend and the device printf buffer (see
 * docs/emulated-device.md, "Modules and kernels").
 *
 * A launch runs to completion inside emu_launch(), its blocks spread over
 * up to sm_count host threads by the PTX engine. Those threads reach
 * global memory through launch_lookup(), which reads the arena while the
 * worker's thread, blocked in the launch, changes nothing; they write
 * device printf output through output_append(), under the buffer's lock.
 */
#include <cuda.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "log.h"

/* Bytes of the engine's fault message. */
#define EMU_FAULT_MSG_MAX 512

/* Limits of a CC 7.5 device (device.c: MAX_BLOCK_DIM_*, MAX_GRID_DIM_*). */
static const uint32_t max_block_dim[3] = {1024, 1024, 64};
static const uint32_t max_grid_dim[3] = {2147483647u, 65535, 65535};

/* ---- device printf -------------------------------------------------------- */

int emu_output_init(struct emu_output *o) {
  memset(o, 0, sizeof(*o));
  if (pthread_mutex_init(&o->lock, NULL) != 0)
    return CUDA_ERROR_OUT_OF_MEMORY;
  return CUDA_SUCCESS;
}

void emu_output_free(struct emu_output *o) {
  free(o->buf);
  o->buf = NULL;
  o->len = o->cap = 0;
  pthread_mutex_destroy(&o->lock);
}

/* ptx_launch.print: appends one printf's |text| whole, or, when the buffer
 * (EMU_OUTPUT_MAX, like a GPU's printf FIFO) cannot hold it, counts it as
 * dropped. Called from any thread of a launch. */
static void output_append(void *opaque, const char *text, size_t len) {
  struct emu_output *o = opaque;
  size_t cap;
  char *p;

  pthread_mutex_lock(&o->lock);
  if (len > EMU_OUTPUT_MAX - o->len) {
    o->dropped += len;
    goto out;
  }
  if (len > o->cap - o->len) {
    cap = o->cap ? o->cap : 4096;
    while (cap < o->len + len)
      cap *= 2;
    if (cap > EMU_OUTPUT_MAX)
      cap = EMU_OUTPUT_MAX;
    p = realloc(o->buf, cap);
    if (!p) {
      o->dropped += len;
      goto out;
    }
    o->buf = p;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, text, len);
  o->len += len;
out:
  pthread_mutex_unlock(&o->lock);
}

void emu_output_peek(struct gp_backend *b, const void **data, size_t *len,
                     uint64_t *dropped) {
  pthread_mutex_lock(&b->out.lock);
  *data = b->out.buf;
  *len = b->out.len;
  *dropped = b->out.dropped;
  pthread_mutex_unlock(&b->out.lock);
}

void emu_output_consumed(struct gp_backend *b) {
  pthread_mutex_lock(&b->out.lock);
  b->out.len = 0;
  b->out.dropped = 0;
  /* Keep a small buffer for the next launch; give a large one back. */
  if (b->out.cap > 64 * 1024) {
    free(b->out.buf);
    b->out.buf = NULL;
    b->out.cap = 0;
  }
  pthread_mutex_unlock(&b->out.lock);
}

/* ---- global memory -------------------------------------------------------- */

/* What launch_lookup() needs: the arena and the launching context. */
struct launch_mem {
  const struct emu_arena *arena;
  const struct emu_owner *owner;
};

/* ptx_mem_ops.lookup: the live allocation containing |addr|, if it belongs
 * to the launching context (each context of a GPU has its own address
 * space: another context's memory is an illegal address, and a fault
 * cannot have touched another context). Read-only, so every thread of the
 * launch may call it at once. */
static int launch_lookup(void *opaque, uint64_t addr, uint64_t *base,
                         uint64_t *size, void **host) {
  const struct launch_mem *lm = opaque;
  struct emu_alloc_info info;

  if (emu_arena_lookup(lm->arena, addr, &info) != CUDA_SUCCESS ||
      info.owner != lm->owner)
    return -1;
  *base = info.base;
  *size = info.size;
  *host = (void *)(uintptr_t)info.base;
  return 0;
}

/* ---- launch --------------------------------------------------------------- */

/* Checks grid, block, shared memory and parameters of |l| for kernel |k|
 * as the driver does before anything runs. Returns CUDA_SUCCESS or
 * CUDA_ERROR_INVALID_VALUE. */
static int check_config(const struct gp_backend *b,
                        const struct ptx_kernel *k,
                        const struct gp_launch_desc *l) {
  uint64_t threads = 1, shared;
  int i;

  for (i = 0; i < 3; i++) {
    if (l->block[i] == 0 || l->block[i] > max_block_dim[i] ||
        l->grid[i] == 0 || l->grid[i] > max_grid_dim[i])
      return CUDA_ERROR_INVALID_VALUE;
    threads *= l->block[i];
  }
  if (threads > PTX_MAX_BLOCK_THREADS || threads > ptx_kernel_max_threads(k))
    return CUDA_ERROR_INVALID_VALUE;
  shared = (uint64_t)ptx_kernel_shared_size(k) + l->shared_mem;
  if (shared > (uint64_t)b->max_shared_optin)
    return CUDA_ERROR_INVALID_VALUE;
  if (l->params_size != ptx_kernel_params_size(k) ||
      (l->params_size != 0 && !l->params))
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

/* Whether engine status |st| is a fault of a running kernel (which makes
 * the context unusable), as opposed to a refusal before it ran. */
static bool is_fault(int st) {
  return st == PTX_E_ILLEGAL_ADDRESS || st == PTX_E_MISALIGNED ||
         st == PTX_E_TRAP || st == PTX_E_ASSERT || st == PTX_E_DEADLOCK ||
         st == PTX_E_CANCELLED;
}

static const char *fault_name(int r) {
  switch (r) {
  case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
  case CUDA_ERROR_MISALIGNED_ADDRESS: return "CUDA_ERROR_MISALIGNED_ADDRESS";
  case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
  case CUDA_ERROR_LAUNCH_TIMEOUT: return "CUDA_ERROR_LAUNCH_TIMEOUT";
  case CUDA_ERROR_ASSERT: return "CUDA_ERROR_ASSERT";
  default: return "CUDA error";
  }
}

/* Makes the engine's message one printable line: it quotes the client's
 * PTX (names, instruction text), whose tabs become spaces and whose other
 * bytes that are not printable ASCII become '?'. */
static void sanitize(char *s) {
  for (; *s; s++)
    if (*s == '\t')
      *s = ' ';
    else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
      *s = '?';
}

/* Records fault |st| of a launch in context |c| (sticky) and logs it. */
static int launch_fault(struct emu_ctx *c, int st, char *err) {
  int r = emu_ptx_result(st);

  c->sticky = r;
  sanitize(err);
  if (st == PTX_E_CANCELLED)
    gp__info("context %#" PRIx64 ": kernel stopped, the client has gone: "
             "%s", c->id, err);
  else
    gp__warn("context %#" PRIx64 ": kernel fault, %s (%d); the context is "
             "unusable until destroyed: %s",
             c->id, fault_name(r), r, err);
  return r;
}

int emu_launch(struct gp_backend *b, const struct gp_launch_desc *l) {
  struct emu_ctx *c = gp__idmap_get(&b->ctxs, l->ctx);
  struct emu_func *f;
  struct emu_stream *s;
  struct launch_mem lm;
  struct ptx_mem_ops mem;
  struct ptx_launch pl;
  char err[EMU_FAULT_MSG_MAX];
  int r, st;

  r = emu_ctx_state(c);
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
  r = check_config(b, f->k, l);
  if (r != CUDA_SUCCESS)
    return r;

  lm.arena = &b->arena;
  lm.owner = &c->mem;
  mem.lookup = launch_lookup;
  mem.opaque = &lm;
  memset(&pl, 0, sizeof(pl));
  memcpy(pl.grid, l->grid, sizeof(pl.grid));
  memcpy(pl.block, l->block, sizeof(pl.block));
  pl.dyn_shared = l->shared_mem;
  pl.params = l->params;
  pl.params_size = l->params_size;
  pl.mem = &mem;
  pl.max_threads = (unsigned)b->sm_count;
  pl.cancel = l->cancel;
  pl.print = output_append;
  pl.print_opaque = &b->out;
  st = ptx_launch(f->k, &pl, err, sizeof(err));
  if (st == PTX_OK)
    return CUDA_SUCCESS;
  if (is_fault(st))
    return launch_fault(c, st, err);
  /* Refused before running (a limit of the engine) or out of memory: the
   * context stays usable. */
  sanitize(err);
  gp__debug("context %#" PRIx64 ": launch refused: %s", c->id, err);
  return emu_ptx_result(st);
}
