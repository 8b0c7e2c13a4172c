/* Modules of the emu backend: the PTX of a client's image loaded into the
 * PTX engine (ptx.h), function ids for its kernels, and its .global and
 * .const variables placed in the session's arena (see
 * docs/emulated-device.md, "Modules and kernels").
 *
 * A module belongs to the context it was loaded in: its variables are
 * allocations of that context, marked EMU_ALLOC_MODULE so that cuMemFree
 * refuses them, and destroying the context unloads it. Like the rest of the
 * backend, these functions run on the session's worker thread.
 */
#include <cuda.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "fatbin.h"
#include "log.h"

/* The largest image module_load accepts: far above any real module (and
 * above the frame limit, which bounds what a client can send anyway). */
#define EMU_MODULE_IMAGE_MAX (256u << 20)

/* The emulated device's compute capability as an SM number (7.5): the PTX
 * a real CC 7.5 driver would pick from a fatbin is the highest at or below
 * it. */
#define EMU_DEVICE_SM 75u

/* Bytes of the one-line messages built here. */
#define EMU_MSG_MAX 512

/* Writes a one-line message into |msg| (|msglen| bytes; NULL or 0: none). */
static void msgf(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void msgf(char *msg, size_t msglen, const char *fmt, ...) {
  va_list ap;

  if (!msg || msglen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, msglen, fmt, ap);
  va_end(ap);
}

int emu_ptx_result(int status) {
  switch (status) {
  case PTX_OK: return CUDA_SUCCESS;
  case PTX_E_INVALID: return CUDA_ERROR_INVALID_VALUE;
  case PTX_E_NOMEM: return CUDA_ERROR_OUT_OF_MEMORY;
  case PTX_E_PARSE: return CUDA_ERROR_INVALID_PTX;
  case PTX_E_UNSUPPORTED: return CUDA_ERROR_NOT_SUPPORTED;
  case PTX_E_NOT_FOUND: return CUDA_ERROR_NOT_FOUND;
  case PTX_E_ILLEGAL_ADDRESS: return CUDA_ERROR_ILLEGAL_ADDRESS;
  case PTX_E_MISALIGNED: return CUDA_ERROR_MISALIGNED_ADDRESS;
  case PTX_E_TRAP: return CUDA_ERROR_LAUNCH_FAILED;
  case PTX_E_DEADLOCK: return CUDA_ERROR_LAUNCH_FAILED;
  case PTX_E_CONFIG: return CUDA_ERROR_INVALID_VALUE;
  case PTX_E_CANCELLED: return CUDA_ERROR_LAUNCH_TIMEOUT;
  case PTX_E_ASSERT: return CUDA_ERROR_ASSERT;
  default: return CUDA_ERROR_UNKNOWN;
  }
}

/* The CUresult for an error of the fatbin reader (fatbin.h). */
static int image_result(int r) {
  switch (r) {
  case EMU_FATBIN_ENOPTX: return CUDA_ERROR_NO_BINARY_FOR_GPU;
  case GP_ETOOBIG: return CUDA_ERROR_INVALID_VALUE;
  case GP_ENOMEM: return CUDA_ERROR_OUT_OF_MEMORY;
  default: return CUDA_ERROR_INVALID_IMAGE;
  }
}

/* ---- module variables in the arena ---------------------------------------- */

/* ptx_global_ops.alloc: a module variable becomes an allocation of the
 * module's context, flagged so that only unloading frees it. Every
 * allocation is EMU_ARENA_ALIGN-aligned; a variable that asks for more
 * alignment is refused (the load then fails with out of memory). */
static int var_alloc(void *opaque, uint64_t size, uint32_t align,
                     uint64_t *addr, void **host) {
  struct emu_module *em = opaque;
  struct emu_alloc_info info;

  if (align > EMU_ARENA_ALIGN)
    return -1;
  if (emu_arena_alloc_flags(&em->b->arena, &em->ctx->mem, size,
                            EMU_ALLOC_MODULE, addr) != CUDA_SUCCESS)
    return -1;
  if (emu_arena_lookup(&em->b->arena, *addr, &info) == CUDA_SUCCESS)
    em->global_bytes += info.size;
  *host = (void *)(uintptr_t)*addr;
  return 0;
}

/* ptx_global_ops.release: called by ptx_module_free() and a failed load. */
static void var_release(void *opaque, uint64_t addr) {
  struct emu_module *em = opaque;
  struct emu_alloc_info info;

  if (emu_arena_lookup(&em->b->arena, addr, &info) == CUDA_SUCCESS)
    em->global_bytes -= info.size <= em->global_bytes ? info.size
                                                      : em->global_bytes;
  emu_arena_release_flags(&em->b->arena, addr, EMU_ALLOC_MODULE);
}

/* ---- choosing the PTX of an image ----------------------------------------- */

/* A PTX entry of a fatbin: the bytes from its header to the end of its
 * payload. */
struct ptx_pick {
  bool found;
  uint32_t sm;
  size_t start, end;
};

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* The PTX text of entry |p| of fatbin |img|: the entry is copied behind a
 * fresh 16-byte fatbin header (the layout fatbin.h describes), so the
 * reader decompresses exactly that entry. The caller frees |*ptx|. Returns
 * 0 or a negative GP_E* code of the reader. */
static int pick_text(const uint8_t *img, const struct ptx_pick *p,
                     char **ptx, size_t *ptx_len, char *msg, size_t msglen) {
  size_t n = p->end - p->start;
  uint8_t *sub = malloc(16 + n);
  int r;

  if (!sub) {
    msgf(msg, msglen, "out of memory for a %zu-byte fatbin entry", n);
    return GP_ENOMEM;
  }
  put_le(sub, EMU_FATBIN_MAGIC, 4);
  put_le(sub + 4, 1, 2);       /* version */
  put_le(sub + 6, 16, 2);      /* header size */
  put_le(sub + 8, n, 8);       /* bytes of entries */
  memcpy(sub + 16, img + p->start, n);
  r = emu_image_get_ptx(sub, 16 + n, ptx, ptx_len, msg, msglen);
  free(sub);
  return r;
}

/* Loads PTX |text| (NUL-terminated) into |em|. Returns a CUresult; |why|
 * says why not. */
static int load_text(struct emu_module *em, const char *text, size_t len,
                     char *why, size_t whylen) {
  struct ptx_global_ops gops = {var_alloc, var_release, em};
  int st;

  st = ptx_module_load_with(text, len, &gops, &em->ptx, why, whylen);
  if (st == PTX_OK)
    em->nkernels = ptx_module_kernel_count(em->ptx);
  return emu_ptx_result(st);
}

/* Extracts the PTX of entry |p| and loads it. */
static int load_pick(struct emu_module *em, const uint8_t *img,
                     const struct ptx_pick *p, size_t *ptx_len, char *why,
                     size_t whylen) {
  char *text = NULL;
  int r = pick_text(img, p, &text, ptx_len, why, whylen);

  if (r != 0)
    return image_result(r);
  r = load_text(em, text, *ptx_len, why, whylen);
  free(text);
  return r;
}

/* ---- images of several fatbins: linking -------------------------------------- */

/* What one fatbin of an image holds: two picks among its PTX entries,
 * |lo|, the highest SM at or below the device's (what a CC 7.5 driver
 * would JIT), and |hi|, the lowest above it (the engine may still run it),
 * the latest of equals in both; and whether it has machine code that
 * defines something. */
struct fatbin_info {
  struct ptx_pick lo, hi;
  bool elf;                 /* has machine code entries */
  bool code;                /* ... one of which defines something */
  uint32_t elf_sm;
};

/* Fills |*out| (|*n| entries, the caller frees) with what each fatbin of
 * |img| holds. Returns 0 or a reader's error code. */
static int survey(const uint8_t *img, size_t len, struct fatbin_info **out,
                  unsigned *n, char *msg, size_t msglen) {
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e;
  struct fatbin_info *v = NULL;
  unsigned cap = 0;
  int r;

  *n = 0;
  emu_fatbin_iter_init(&it, img, len);
  while ((r = emu_fatbin_next(&it, &e, msg, msglen)) == 1) {
    struct fatbin_info *fi;
    struct ptx_pick *p;
    if (e.fatbin >= cap) {
      unsigned nc = cap ? cap * 2 : 4;
      struct fatbin_info *nv;
      while (nc <= e.fatbin)
        nc *= 2;
      if (!(nv = realloc(v, nc * sizeof(*nv)))) {
        free(v);
        msgf(msg, msglen, "out of memory");
        return GP_ENOMEM;
      }
      memset(nv + cap, 0, (nc - cap) * sizeof(*nv));
      v = nv;
      cap = nc;
    }
    if (e.fatbin + 1 > *n)
      *n = e.fatbin + 1;
    fi = &v[e.fatbin];
    if (e.kind == EMU_FATBIN_KIND_ELF) {
      fi->elf = true;
      if (e.sm > fi->elf_sm)
        fi->elf_sm = e.sm;
      /* Only a fatbin without PTX needs to know (see load_image()); the
       * machine code entries come before the PTX, so every cubin is
       * looked at until one defines something (the first symbols do). */
      /* A cubin that cannot be read is taken to define something: the
       * device ignores machine code anyway. */
      if (!fi->code)
        fi->code = emu_fatbin_elf_is_empty(img, len, &e, NULL, 0) != 1;
      continue;
    }
    if (e.kind != EMU_FATBIN_KIND_PTX)
      continue;
    p = e.sm <= EMU_DEVICE_SM ? &fi->lo : &fi->hi;
    if (p->found && (p == &fi->lo ? e.sm < p->sm : e.sm > p->sm))
      continue;
    p->found = true;
    p->sm = e.sm;
    p->start = e.header_offset;
    p->end = e.payload_offset + e.payload_size;
  }
  if (r < 0) {
    free(v);
    return r;
  }
  *out = v;
  return 0;
}

/* The PTX of a module that has nothing in it. */
static const char empty_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n";

/* Links the PTX of every fatbin of |img| that has some (|units| of them,
 * described by |fi|, |nfi| entries) into |em|: the units of a program
 * built with -rdc=true (a version-2 wrapper's prelinked fatbins). */
static int link_fatbins(struct emu_module *em, const uint8_t *img,
                        const struct fatbin_info *fi, unsigned nfi,
                        unsigned units, size_t *ptx_len, char *why,
                        size_t whylen) {
  char **texts = calloc(units, sizeof(*texts));
  size_t *lens = calloc(units, sizeof(*lens));
  struct ptx_global_ops gops = {var_alloc, var_release, em};
  unsigned k = 0;
  int r = CUDA_SUCCESS, st;

  if (!texts || !lens) {
    msgf(why, whylen, "out of memory");
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  *ptx_len = 0;
  for (unsigned i = 0; i < nfi; i++) {
    const struct ptx_pick *p = fi[i].lo.found ? &fi[i].lo : &fi[i].hi;
    if (!p->found)
      continue;
    st = pick_text(img, p, &texts[k], &lens[k], why, whylen);
    if (st != 0) {
      r = image_result(st);
      goto out;
    }
    *ptx_len += lens[k];
    k++;
  }
  st = ptx_module_link_with((const char *const *)texts, lens, units, &gops,
                            &em->ptx, why, whylen);
  r = emu_ptx_result(st);
  if (r == CUDA_SUCCESS)
    em->nkernels = ptx_module_kernel_count(em->ptx);
  else
    gp__debug("module %#" PRIx64 ": linking %u PTX units failed: %s",
              em->id, units, why);
out:
  for (k = 0; texts && k < units; k++)
    free(texts[k]);
  free(texts);
  free(lens);
  return r;
}

/* Loads the PTX to run from |image| into |em|.
 *
 * PTX text: itself. A fatbin image (one fatbin, or a version-2 wrapper's
 * fatbins back to back: its own, then the prelinked ones) whose first
 * fatbin has PTX: that fatbin's |lo| PTX entry (struct fatbin_info), else
 * (it is missing or does not load) its |hi|; the first fatbin is the
 * complete program. One whose first fatbin has none is a -rdc=true program: the
 * first is the device linker's cubin, which the device cannot run, and
 * every later fatbin is an object whose PTX (each one's pick) is linked
 * with the others'; an object with machine code only is refused. Without
 * any PTX, an image whose machine code defines nothing (what nvcc's
 * device-link step embeds in a program without -rdc) loads as an empty
 * module, and anything else is refused with how to rebuild it. Sets
 * |*ptx_len|. Returns a CUresult; |why| says why not. */
static int load_image(struct emu_module *em, const void *image, size_t size,
                      size_t *ptx_len, char *why, size_t whylen) {
  enum emu_image_kind kind;
  struct ptx_pick lo = {0}, hi = {0};
  struct fatbin_info *fi = NULL;
  unsigned nfi = 0, units = 0, unit = 0;
  bool code = false;
  char *text = NULL, why2[EMU_MSG_MAX];
  int r;

  r = emu_image_classify(image, size, &kind, why, whylen);
  if (r != 0)
    return image_result(r);
  if (kind == EMU_IMAGE_FATBIN) {
    r = survey(image, size, &fi, &nfi, why, whylen);
    if (r != 0)
      return image_result(r);
    for (unsigned i = 0; i < nfi; i++) {
      bool ptx = fi[i].lo.found || fi[i].hi.found;
      if (ptx && (i == 0 || !(fi[0].lo.found || fi[0].hi.found))) {
        units++;
        unit = i;
      }
      code = code || fi[i].code;
      if (!ptx && fi[i].code && i > 0) {
        msgf(why, whylen, "fatbin %u of the image (a relocatable object's) "
             "has machine code only (sm_%" PRIu32 "), no PTX: the emulated "
             "device needs PTX; rebuild it with nvcc's default or "
             "-gencode arch=compute_75,code=compute_75", i + 1,
             fi[i].elf_sm);
        free(fi);
        return CUDA_ERROR_NO_BINARY_FOR_GPU;
      }
      if (i == 0 && ptx)
        break;
    }
    if (units == 0 && !code && nfi > 0) {
      free(fi);
      *ptx_len = 0;
      gp__debug("module %#" PRIx64 ": the image's machine code defines "
                "nothing and it has no PTX: an empty module", em->id);
      return load_text(em, empty_ptx, sizeof(empty_ptx) - 1, why, whylen);
    }
    if (units > 1) {
      r = link_fatbins(em, image, fi, nfi, units, ptx_len, why, whylen);
      free(fi);
      return r;
    }
    if (units == 1) {
      lo = fi[unit].lo;
      hi = fi[unit].hi;
    }
    free(fi);
  }
  if (kind != EMU_IMAGE_FATBIN || (!lo.found && !hi.found)) {
    /* PTX text, a cubin, or a fatbin without PTX: the reader says which
     * (for machine code only: how to rebuild with PTX). */
    r = emu_image_get_ptx(image, size, &text, ptx_len, why, whylen);
    if (r != 0)
      return image_result(r);
    r = load_text(em, text, *ptx_len, why, whylen);
    free(text);
    return r;
  }
  if (lo.found) {
    r = load_pick(em, image, &lo, ptx_len, why, whylen);
    if (r == CUDA_SUCCESS || !hi.found)
      return r;
    /* Keep the preferred entry's message if the other fails too. */
    if (load_pick(em, image, &hi, ptx_len, why2, sizeof(why2)) !=
        CUDA_SUCCESS)
      return r;
    gp__debug("module %#" PRIx64 ": the compute_%u PTX does not load (%s); "
              "running the compute_%u PTX", em->id, lo.sm, why, hi.sm);
    return CUDA_SUCCESS;
  }
  return load_pick(em, image, &hi, ptx_len, why, whylen);
}

/* ---- operations ----------------------------------------------------------- */

static void module_unlink(struct gp_backend *b, struct emu_module *em) {
  while (em->funcs) {
    struct emu_func *f = em->funcs;
    em->funcs = f->next;
    gp__idmap_remove(&b->funcs, f->id);
    free(f);
  }
  gp__idmap_remove(&b->modules, em->id);
  if (em->prev)
    em->prev->next = em->next;
  else
    em->ctx->modules = em->next;
  if (em->next)
    em->next->prev = em->prev;
}

/* Frees a module that module_unlink() has detached: its variables go back
 * to the arena. */
static void module_del(struct emu_module *em) {
  ptx_module_free(em->ptx);
  free(em);
}

int emu_module_load(struct gp_backend *b, uint64_t ctx, uint64_t module,
                    const void *image, size_t size, char *msg,
                    size_t msglen) {
  struct emu_ctx *c = gp__idmap_get(&b->ctxs, ctx);
  struct emu_module *em;
  char why[EMU_MSG_MAX] = "";
  size_t ptx_len = 0;
  int r;

  msgf(msg, msglen, "%s", "");
  r = emu_ctx_state(c);
  if (r != CUDA_SUCCESS) {
    msgf(msg, msglen, "%s", c ? "the context has failed (an earlier kernel "
                                "fault)" : "no such context");
    return r;
  }
  if (module == 0 || gp__idmap_get(&b->modules, module)) {
    msgf(msg, msglen, "module id %#" PRIx64 " is in use", module);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!image || size == 0 || size > EMU_MODULE_IMAGE_MAX) {
    msgf(msg, msglen, "an image of %zu bytes (1 to %u accepted)", size,
         EMU_MODULE_IMAGE_MAX);
    return CUDA_ERROR_INVALID_VALUE;
  }
  em = calloc(1, sizeof(*em));
  if (!em) {
    msgf(msg, msglen, "out of memory");
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  em->id = module;
  em->b = b;
  em->ctx = c;
  r = load_image(em, image, size, &ptx_len, why, sizeof(why));
  if (r == CUDA_SUCCESS) {
    r = gp__idmap_put(&b->modules, module, em);
    if (r != CUDA_SUCCESS)
      snprintf(why, sizeof(why), "too many modules");
  }
  if (r != CUDA_SUCCESS) {
    msgf(msg, msglen, "%s", why);
    module_del(em);
    return r;
  }
  em->next = c->modules;
  if (c->modules)
    c->modules->prev = em;
  c->modules = em;
  if (gp__log_level() >= GP_LOG_DEBUG)
    gp__debug("module %#" PRIx64 " loaded in context %#" PRIx64
              ": %u kernels, PTX ISA %d.%d for sm_%d, %zu bytes of PTX from "
              "a %zu-byte image",
              module, ctx, em->nkernels,
              ptx_module_ptx_version(em->ptx) / 10,
              ptx_module_ptx_version(em->ptx) % 10,
              ptx_module_target(em->ptx), ptx_len, size);
  return CUDA_SUCCESS;
}

int emu_module_unload(struct gp_backend *b, uint64_t module) {
  struct emu_module *em = gp__idmap_get(&b->modules, module);

  if (!em)
    return CUDA_ERROR_INVALID_HANDLE;
  if (em->ctx->sticky)
    return em->ctx->sticky;
  module_unlink(b, em);
  module_del(em);
  return CUDA_SUCCESS;
}

void emu_ctx_unload_modules(struct gp_backend *b, struct emu_ctx *c) {
  while (c->modules) {
    struct emu_module *em = c->modules;
    module_unlink(b, em);
    module_del(em);
  }
}

/* A live module whose context has not failed, through |*out|. Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_HANDLE or the context's sticky error. */
static int module_get(struct gp_backend *b, uint64_t module,
                      struct emu_module **out) {
  struct emu_module *em = gp__idmap_get(&b->modules, module);

  *out = em;
  if (!em)
    return CUDA_ERROR_INVALID_HANDLE;
  return em->ctx->sticky;
}

/* A symbol name a client may ask for: not NULL, not empty, not longer
 * than GP_MAX_SYMBOL_NAME. */
static bool name_ok(const char *name) {
  return name && name[0] && strnlen(name, GP_MAX_SYMBOL_NAME + 1) <=
                                GP_MAX_SYMBOL_NAME;
}

/* Fills |out| from kernel |k| of module |m|. Returns CUDA_SUCCESS, or
 * CUDA_ERROR_NOT_SUPPORTED for a kernel whose parameters exceed what a
 * launch can carry. */
static int describe(const struct ptx_module *m, const struct ptx_kernel *k,
                    struct gp_func_desc *out) {
  struct ptx_param_info pi;
  unsigned i, n = ptx_kernel_param_count(k);

  if (n > GP_MAX_KERNEL_PARAMS || ptx_kernel_params_size(k) >
                                      GP_MAX_PARAM_BYTES)
    return CUDA_ERROR_NOT_SUPPORTED;
  out->nparams = n;
  for (i = 0; i < n; i++) {
    if (ptx_kernel_param(k, i, &pi) != PTX_OK)
      return CUDA_ERROR_NOT_SUPPORTED;
    out->params[i].offset = pi.offset;
    out->params[i].size = pi.size;
  }
  out->params_size = ptx_kernel_params_size(k);
  out->max_threads_per_block = (int)ptx_kernel_max_threads(k);
  out->shared_size_bytes = (int)ptx_kernel_shared_size(k);
  out->local_size_bytes = (int)ptx_kernel_local_size(k);
  out->const_size_bytes = (int)ptx_module_const_size(m);
  out->num_regs = (int)ptx_kernel_num_regs(k);
  /* What drivers report as the "PTX version" is the virtual architecture
   * the PTX was written for (75 for compute_75), not the ISA version. */
  out->ptx_version = ptx_module_target(m);
  /* The device JIT-compiles PTX for itself, as a CC 7.5 driver would for
   * PTX of an older target: the binary is sm_75. */
  out->binary_version = (int)EMU_DEVICE_SM;
  return CUDA_SUCCESS;
}

int emu_module_get_function(struct gp_backend *b, uint64_t module,
                            const char *name, uint64_t function,
                            struct gp_func_desc *out) {
  struct emu_module *em;
  const struct ptx_kernel *k;
  struct emu_func *f;
  int r = module_get(b, module, &em);

  if (r != CUDA_SUCCESS)
    return r;
  if (!name_ok(name) || function == 0 ||
      gp__idmap_get(&b->funcs, function))
    return CUDA_ERROR_INVALID_VALUE;
  k = ptx_module_kernel(em->ptx, name);
  if (!k)
    return CUDA_ERROR_NOT_FOUND;
  r = describe(em->ptx, k, out);
  if (r != CUDA_SUCCESS)
    return r;
  f = calloc(1, sizeof(*f));
  if (!f)
    return CUDA_ERROR_OUT_OF_MEMORY;
  f->id = function;
  f->mod = em;
  f->k = k;
  r = gp__idmap_put(&b->funcs, function, f);
  if (r != CUDA_SUCCESS) {
    free(f);
    return r;
  }
  f->next = em->funcs;
  if (em->funcs)
    em->funcs->prev = f;
  em->funcs = f;
  return CUDA_SUCCESS;
}

int emu_module_kernel(struct gp_backend *b, uint64_t module, uint32_t index,
                      const char **name) {
  struct emu_module *em;
  const struct ptx_kernel *k;
  int r = module_get(b, module, &em);

  if (r != CUDA_SUCCESS)
    return r;
  k = ptx_module_kernel_at(em->ptx, index);
  if (!k)
    return CUDA_ERROR_NOT_FOUND;
  *name = ptx_kernel_name(k);
  return CUDA_SUCCESS;
}

int emu_module_global_bytes(struct gp_backend *b, uint64_t module,
                            uint64_t *bytes) {
  struct emu_module *em;
  int r = module_get(b, module, &em);

  if (r == CUDA_SUCCESS)
    *bytes = em->global_bytes;
  return r;
}

int emu_module_get_global(struct gp_backend *b, uint64_t module,
                          const char *name, uint64_t *dptr, uint64_t *size) {
  struct emu_module *em;
  int r = module_get(b, module, &em);

  if (r != CUDA_SUCCESS)
    return r;
  if (!name_ok(name))
    return CUDA_ERROR_INVALID_VALUE;
  return emu_ptx_result(ptx_module_global(em->ptx, name, dptr, size));
}
