/* Libraries (CUlibrary) and context-independent kernels (CUkernel): the
 * API cudart 13 loads every program's device code with.
 *
 * A library is a client object holding its image (the caller's memory
 * when it is preserved, a copy otherwise) and its SHA-256, and at most one
 * module per context: the image is loaded as an ordinary module
 * (gp__module_load_locked()) into a context the first time the library is
 * used there, or, with CUDA_MODULE_LOADING=EAGER, when it is loaded and
 * when a context becomes usable. The server's image cache means that a
 * second context costs a digest, not the image. A kernel is one object per
 * (library, name), valid in every context: each use resolves it to the
 * function of the current context (gp__func_resolve_locked()), loading the
 * library and looking the kernel up there the first time (one round trip
 * each), after that from the tables.
 *
 * An image the server refuses (no PTX, bad PTX, an unresolved symbol) is
 * reported on stderr once, at the first load, and every later use of the
 * library returns the same error without asking again.
 *
 * Everything here runs under the client lock; the libraries form a list
 * (|libs|) that the lock guards too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cuerrors.h"
#include "trace.h"

/* What a kernel was told about one device (cuKernelSetAttribute,
 * cuKernelSetCacheConfig): applied to its functions in the contexts of
 * that device, except where cuFuncSet* said otherwise. */
struct kernel_dev {
  uint32_t attr_set;                /* bit a: attr[a] was set */
  int attr[CU_FUNC_ATTRIBUTE_MAX];
  bool cache_set;
  CUfunc_cache cache;
};

struct gp__library;

/* A kernel (CUkernel): freed with its library. */
struct gp__kernel {
  struct gp__obj hdr;
  struct gp__kernel *next;          /* in lib->kernels */
  struct gp__library *lib;
  char *name;
  bool have_params;                 /* the layout below is known (from the
                                     * first function resolved) */
  uint32_t nparams;
  struct gp__param *params;
  struct kernel_dev *dev;           /* one per device */
  /* The function it was last resolved to, and in which context, so that
   * a launch in the same context finds it without a lookup (NULL: none).
   * Cleared when the function's module goes, the only way a function is
   * freed. */
  struct gp__ctx *last_ctx;
  struct gp__func *last_func;
};

struct gp__library {
  struct gp__obj hdr;
  struct gp__library *prev, *next;  /* in |libs| */
  struct gp__image im;              /* what is sent: im.owned is the
                                     * library's copy, or NULL when
                                     * im.data is the caller's preserved
                                     * memory */
  uint8_t md[GP__SHA256_LEN];
  struct gp__module **mods;         /* at most one per context */
  size_t nmods, capmods;
  struct gp__kernel *kernels;
  CUresult refused;                 /* the server refused the image (said
                                     * once on stderr); CUDA_SUCCESS if
                                     * not */
  char **knames;                    /* its kernels' names, once asked for */
  uint32_t nknames;
  bool have_knames;
  char why[512];                    /* the server's reason, if it did */
};

/* Every live library (client lock). */
static struct gp__library *libs;

/* The library option that says the image stays where it is: its value,
 * in the option's pointer-sized slot, is 1. */
#define GP__PRESERVED 1u

/* ---- Loading mode -------------------------------------------------------- */

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static bool lazy = true;

static void read_mode(void) {
  const char *v = getenv("CUDA_MODULE_LOADING");
  lazy = !(v != NULL && strcmp(v, "EAGER") == 0);
}

bool gp__lazy_loading(void) {
  pthread_once(&mode_once, read_mode);
  return lazy;
}

/* ---- Objects ------------------------------------------------------------- */

static struct gp__library *find_lib_locked(struct gp__client *c,
                                           CUlibrary h) {
  return (struct gp__library *)gp__handles_find(&c->handles, h,
                                                GP__KIND_LIBRARY);
}

static struct gp__kernel *find_kernel_locked(struct gp__client *c,
                                             CUkernel h) {
  return (struct gp__kernel *)gp__handles_find(&c->handles, h,
                                               GP__KIND_KERNEL);
}

const char *gp__kernel_name_locked(struct gp__client *c, CUkernel h) {
  struct gp__kernel *k = find_kernel_locked(c, h);
  return k != NULL ? k->name : NULL;
}

static void kernel_free(struct gp__kernel *k) {
  free(k->name);
  free(k->params);
  free(k->dev);
  free(k);
}

/* Errors that say the image itself cannot be loaded: asking again (in
 * another context, later) would only repeat them. */
static bool is_refusal(CUresult r) {
  switch (r) {
  case CUDA_ERROR_INVALID_IMAGE:
  case CUDA_ERROR_INVALID_PTX:
  case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
  case CUDA_ERROR_NO_BINARY_FOR_GPU:
  case CUDA_ERROR_NOT_SUPPORTED:
  case CUDA_ERROR_NOT_FOUND:
  case CUDA_ERROR_INVALID_VALUE:
    return true;
  default:
    return false;
  }
}

/* The library's module in |ctx|, loaded now if it has none there (|api|
 * names the entry point in the message of a refusal). */
static CUresult lib_module_locked(struct gp__client *c,
                                  struct gp__library *lib,
                                  struct gp__ctx *ctx,
                                  struct gp__module **out, const char *api) {
  bool cached;
  struct gp__module *m;

  for (size_t i = 0; i < lib->nmods; i++) {
    if (lib->mods[i]->ctx == ctx) {
      *out = lib->mods[i];
      return CUDA_SUCCESS;
    }
  }
  if (lib->refused != CUDA_SUCCESS)
    return lib->refused;
  if (lib->nmods == lib->capmods) {
    size_t cap = lib->capmods ? lib->capmods * 2 : 4;
    struct gp__module **v = realloc(lib->mods, cap * sizeof(*v));
    if (v == NULL)
      return CUDA_ERROR_OUT_OF_MEMORY;
    lib->mods = v;
    lib->capmods = cap;
  }
  CUresult r = gp__module_load_locked(c, ctx, &lib->im, lib->md, &m,
                                      lib->why, sizeof(lib->why), &cached);
  if (r != CUDA_SUCCESS) {
    if (lib->why[0] != '\0')
      gp__log("%s: the server could not load the library's %s image "
              "(%zu bytes): %s",
              api, gp__image_kind_name(lib->im.kind), lib->im.size,
              lib->why);
    if (is_refusal(r))
      lib->refused = r;
    return r;
  }
  lib->mods[lib->nmods++] = m;
  /* Not an entry point of its own, but when it happens (and whether the
   * image had to travel) is what lazy loading is about. */
  if (gp__trace_on)
    gp__log("  (%s: library %p loaded into context %p as module %p: %s, "
            "%zu bytes%s)",
            api, (void *)lib, (void *)ctx, (void *)m,
            gp__image_kind_name(lib->im.kind), lib->im.size,
            cached ? ", cached" : "");
  *out = m;
  return CUDA_SUCCESS;
}

void gp__library_module_gone_locked(struct gp__client *c,
                                    struct gp__module *m) {
  (void)c;
  for (struct gp__library *lib = libs; lib != NULL; lib = lib->next) {
    for (size_t i = 0; i < lib->nmods; i++) {
      if (lib->mods[i] == m) {
        lib->mods[i] = lib->mods[--lib->nmods];
        for (struct gp__kernel *k = lib->kernels; k != NULL; k = k->next) {
          if (k->last_func != NULL && k->last_func->mod == m) {
            k->last_func = NULL;
            k->last_ctx = NULL;
          }
        }
        return;
      }
    }
  }
}

/* What the kernel was told for the device of |f|'s context, applied to
 * |f| where cuFuncSetAttribute / cuFuncSetCacheConfig did not speak. */
static void apply_kernel_settings(const struct gp__kernel *k,
                                  struct gp__func *f) {
  const struct kernel_dev *d = &k->dev[f->mod->ctx->device];
  uint32_t todo = d->attr_set & ~f->attr_set;

  for (int a = 0; todo != 0; a++, todo >>= 1)
    if (todo & 1u)
      f->attr[a] = d->attr[a];
  if (d->cache_set && !f->cache_set)
    f->cache_config = d->cache;
}

/* Kernel |k| as the function of |ctx|: the library loaded there and the
 * kernel looked up, as needed. The kernel's settings are applied when it
 * is resolved anew; after that the setters keep the function up to date
 * (kernel_update_funcs_locked()). */
static CUresult kernel_func_locked(struct gp__client *c, struct gp__kernel *k,
                                   struct gp__ctx *ctx, struct gp__func **out,
                                   const char *api) {
  struct gp__module *m;
  struct gp__func *f;
  if (k->last_func != NULL && k->last_ctx == ctx) {
    *out = k->last_func;
    return CUDA_SUCCESS;
  }
  CUresult r = lib_module_locked(c, k->lib, ctx, &m, api);
  if (r != CUDA_SUCCESS)
    return r;
  if ((r = gp__module_function_locked(c, m, k->name, &f)) != CUDA_SUCCESS)
    return r;
  if (!k->have_params) {
    /* The layout is the kernel's, the same in every context. */
    if (f->nparams > 0) {
      k->params = malloc(f->nparams * sizeof(*k->params));
      if (k->params == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
      memcpy(k->params, f->params, f->nparams * sizeof(*k->params));
    }
    k->nparams = f->nparams;
    k->have_params = true;
  }
  apply_kernel_settings(k, f);
  k->last_ctx = ctx;
  k->last_func = f;
  *out = f;
  return CUDA_SUCCESS;
}

CUresult gp__func_resolve_locked(struct gp__client *c, CUfunction h,
                                 struct gp__func **out, const char *api) {
  struct gp__func *f = gp__func_find_locked(c, h);
  struct gp__ctx *ctx;

  if (f != NULL) {
    *out = f;
    return CUDA_SUCCESS;
  }
  struct gp__kernel *k = find_kernel_locked(c, (CUkernel)h);
  if (k == NULL)
    return CUDA_ERROR_INVALID_HANDLE;
  CUresult r = gp__current_ctx(&ctx);
  if (r != CUDA_SUCCESS)
    return r;
  return kernel_func_locked(c, k, ctx, out, api);
}

/* ---- Loading ------------------------------------------------------------- */

/* The live contexts, for an eager load: collected first, because loading
 * adds to the handle set being walked. */
struct ctx_list {
  struct gp__ctx **v;
  size_t n, cap;
  bool nomem;
};

static void collect_ctx(struct gp__obj *o, void *arg) {
  struct ctx_list *l = arg;
  if (o->kind != GP__KIND_CTX ||
      atomic_load(&((struct gp__ctx *)o)->state) != GP__CTX_LIVE)
    return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    struct gp__ctx **v = realloc(l->v, cap * sizeof(*v));
    if (v == NULL) {
      l->nomem = true;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (struct gp__ctx *)o;
}

/* Eager loading: into every live context, the current one first (its
 * error is the one a bad image gives). */
static CUresult load_everywhere_locked(struct gp__client *c,
                                       struct gp__library *lib,
                                       const char *api) {
  struct ctx_list l = {NULL, 0, 0, false};
  struct gp__ctx *cur;
  struct gp__module *m;
  CUresult r = CUDA_SUCCESS;

  if (gp__current_ctx(&cur) == CUDA_SUCCESS &&
      (r = lib_module_locked(c, lib, cur, &m, api)) != CUDA_SUCCESS)
    return r;
  gp__handles_foreach(&c->handles, collect_ctx, &l);
  if (l.nomem)
    r = CUDA_ERROR_OUT_OF_MEMORY;
  for (size_t i = 0; r == CUDA_SUCCESS && i < l.n; i++)
    r = lib_module_locked(c, lib, l.v[i], &m, api);
  free(l.v);
  return r;
}

void gp__libraries_ctx_ready_locked(struct gp__client *c,
                                    struct gp__ctx *ctx) {
  struct gp__module *m;

  if (gp__lazy_loading())
    return;
  /* A refusal is reported (once) and kept: the first use in this context
   * returns it. */
  for (struct gp__library *lib = libs; lib != NULL; lib = lib->next)
    lib_module_locked(c, lib, ctx, &m, "cuCtxCreate");
}

static CUresult library_free_locked(struct gp__client *c,
                                    struct gp__library *lib);

/* Frees a library that is in no table. */
static void lib_free(struct gp__library *lib) {
  for (uint32_t i = 0; i < lib->nknames; i++)
    free(lib->knames[i]);
  free(lib->knames);
  gp__image_free(&lib->im);
  free(lib->mods);
  free(lib);
}

/* What a library load did, for the trace. */
struct lib_info {
  char why[512];
  enum gp__image_kind kind;
  size_t size;
  bool preserved;
};

/* Checks the library options. |file|: cuLibraryLoadFromFile, where the
 * image is the library's own and "preserved" means nothing (an error, as
 * documented). */
static CUresult lib_options(unsigned n, const CUlibraryOption *opts,
                            void *const *values, bool file, bool *preserved) {
  *preserved = false;
  if (n == 0)
    return CUDA_SUCCESS;
  /* The values may be NULL: every option then takes its default (a
   * binary that is not preserved). cuBLASLt 13 loads the cubins it builds
   * at run time so, with CU_LIBRARY_BINARY_IS_PRESERVED and no values. */
  if (opts == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < n; i++) {
    switch (opts[i]) {
    case CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE:
      /* The host side of unified functions and managed variables, which
       * the pool does not have (cuLibraryGetUnifiedFunction and
       * cuLibraryGetManaged say so): nothing to keep. */
      break;
    case CU_LIBRARY_BINARY_IS_PRESERVED:
      if (file)
        return CUDA_ERROR_INVALID_VALUE;
      /* A hint; anything but 1 (a pointer, say) keeps the copy. */
      *preserved = values != NULL && (uintptr_t)values[i] == GP__PRESERVED;
      break;
    default:
      return CUDA_ERROR_INVALID_VALUE;
    }
  }
  return CUDA_SUCCESS;
}

/* Makes a library of image |im| (whose bytes it takes over when im->owned
 * is set; copies them unless |preserved|) and, when loading is eager,
 * loads it into the live contexts. */
static CUresult lib_create(CUlibrary *out, struct gp__image *im,
                           bool preserved, struct lib_info *info,
                           const char *api) {
  struct gp__client *c = gp__client();
  struct gp__library *lib = calloc(1, sizeof(*lib));
  CUresult r = CUDA_SUCCESS;

  if (lib == NULL) {
    gp__image_free(im);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  lib->hdr.kind = GP__KIND_LIBRARY;
  lib->im = *im;
  memset(im, 0, sizeof(*im));
  info->kind = lib->im.kind;
  info->size = lib->im.size;
  info->preserved = lib->im.owned == NULL && preserved;
  if (lib->im.owned == NULL && !preserved) {
    void *copy = malloc(lib->im.size);
    if (copy == NULL) {
      lib_free(lib);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(copy, lib->im.data, lib->im.size);
    lib->im.data = lib->im.owned = copy;
  }
  if (gp__sha256(lib->im.data, lib->im.size, lib->md) < 0) {
    lib_free(lib);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  gp__lock();
  if (gp__handles_add(&c->handles, &lib->hdr) < 0) {
    gp__unlock();
    lib_free(lib);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  lib->next = libs;
  if (libs != NULL)
    libs->prev = lib;
  libs = lib;
  if (!gp__lazy_loading())
    r = load_everywhere_locked(c, lib, api);
  if (r != CUDA_SUCCESS) {
    /* The reason was said on stderr; it is also the JIT error log. The
     * library goes even when the failure was the connection's. */
    snprintf(info->why, sizeof(info->why), "%s",
             lib->why[0] != '\0' ? lib->why : gp__cu_error_name(r));
    library_free_locked(c, lib);
    gp__unlock();
    return r;
  }
  gp__unlock();
  *out = (CUlibrary)lib;
  return CUDA_SUCCESS;
}

static CUresult library_load_data(CUlibrary *library, const void *code,
                                  CUjit_option *jit, void **jit_values,
                                  unsigned njit, CUlibraryOption *opts,
                                  void **opt_values, unsigned nopts,
                                  struct lib_info *info) {
  struct gp__jit_outputs o;
  struct gp__image im;
  bool preserved;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (library == NULL || code == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__jit_parse(njit, jit, jit_values, &o)) != CUDA_SUCCESS ||
      (r = lib_options(nopts, opts, opt_values, false, &preserved)) !=
          CUDA_SUCCESS)
    return r;
  double t0 = gp__now_ms();
  r = gp__image_find(code, SIZE_MAX, &im);
  if (r == CUDA_ERROR_INVALID_IMAGE)
    snprintf(info->why, sizeof(info->why),
             "not a PTX, ELF, fatbin or fatbin wrapper image, or a malformed "
             "one");
  if (r == CUDA_SUCCESS)
    r = lib_create(library, &im, preserved, info, "cuLibraryLoadData");
  gp__jit_finish(&o, info->why, (float)(gp__now_ms() - t0));
  return r;
}

GP_API CUresult cuLibraryLoadData(CUlibrary *library, const void *code,
                                  CUjit_option *jitOptions,
                                  void **jitOptionsValues,
                                  unsigned int numJitOptions,
                                  CUlibraryOption *libraryOptions,
                                  void **libraryOptionValues,
                                  unsigned int numLibraryOptions) {
  struct lib_info info = {.why = ""};
  CUresult r = library_load_data(library, code, jitOptions, jitOptionsValues,
                                 numJitOptions, libraryOptions,
                                 libraryOptionValues, numLibraryOptions,
                                 &info);
  GP_TRACE(r, "library=%p, code=%p [%s, %zu bytes%s], numJitOptions=%u, "
           "numLibraryOptions=%u", (void *)GP_OUT(r, library), code,
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           info.preserved ? ", preserved" : "", numJitOptions,
           numLibraryOptions);
  return r;
}

static CUresult library_load_file(CUlibrary *library, const char *path,
                                  CUjit_option *jit, void **jit_values,
                                  unsigned njit, CUlibraryOption *opts,
                                  void **opt_values, unsigned nopts,
                                  struct lib_info *info) {
  struct gp__jit_outputs o;
  struct gp__image im;
  uint8_t *buf = NULL;
  size_t len = 0;
  bool preserved;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (library == NULL || path == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__jit_parse(njit, jit, jit_values, &o)) != CUDA_SUCCESS ||
      (r = lib_options(nopts, opts, opt_values, true, &preserved)) !=
          CUDA_SUCCESS)
    return r;
  double t0 = gp__now_ms();
  if ((r = gp__read_image_file(path, "cuLibraryLoadFromFile", &buf, &len)) !=
      CUDA_SUCCESS)
    goto out;
  /* The same rules as for an image in memory, bounded by the file (and
   * its NUL); the buffer becomes the library's. */
  r = len == 0 ? CUDA_ERROR_INVALID_IMAGE : gp__image_find(buf, len + 1, &im);
  if (r == CUDA_SUCCESS) {
    if (im.owned == NULL) {
      im.owned = buf;
      buf = NULL;
    }
    r = lib_create(library, &im, false, info, "cuLibraryLoadFromFile");
  } else if (r == CUDA_ERROR_INVALID_IMAGE) {
    snprintf(info->why, sizeof(info->why),
             "not a PTX, ELF or fatbin image, or a malformed one");
  }
out:
  free(buf);
  gp__jit_finish(&o, info->why, (float)(gp__now_ms() - t0));
  return r;
}

GP_API CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *fileName,
                                      CUjit_option *jitOptions,
                                      void **jitOptionsValues,
                                      unsigned int numJitOptions,
                                      CUlibraryOption *libraryOptions,
                                      void **libraryOptionValues,
                                      unsigned int numLibraryOptions) {
  struct lib_info info = {.why = ""};
  CUresult r = library_load_file(library, fileName, jitOptions,
                                 jitOptionsValues, numJitOptions,
                                 libraryOptions, libraryOptionValues,
                                 numLibraryOptions, &info);
  GP_TRACE(r, "library=%p, fileName=\"%s\" [%s, %zu bytes], "
           "numJitOptions=%u, numLibraryOptions=%u",
           (void *)GP_OUT(r, library), fileName ? fileName : "(null)",
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           numJitOptions, numLibraryOptions);
  return r;
}

/* ---- Unloading ----------------------------------------------------------- */

/* Unloads |lib|'s module in every context (sent without waiting) and
 * frees it with its kernels, whose handles become invalid. It does not
 * look at gp__ready(): it also cleans up after a load that failed because
 * the connection went. Returns CUDA_SUCCESS, or
 * CUDA_ERROR_DEVICE_UNAVAILABLE when an unload could not be sent (the
 * library is gone all the same). Needs the lock. */
static CUresult library_free_locked(struct gp__client *c,
                                    struct gp__library *lib) {
  CUresult sent = CUDA_SUCCESS;
  /* Forgetting a module takes it out of lib->mods: walk a detached
   * copy. */
  struct gp__module **mods = lib->mods;
  size_t n = lib->nmods;
  lib->mods = NULL;
  lib->nmods = lib->capmods = 0;
  for (size_t i = 0; i < n; i++) {
    Gpupool__ModuleUnload u = GPUPOOL__MODULE_UNLOAD__INIT;
    u.module = mods[i]->id;
    /* Unsent for want of memory, a module stays on the server until its
     * context goes; the library is gone here all the same. */
    CUresult r = gp__send_locked(c, GP_MSG_MODULE_UNLOAD, &u.base, NULL, 0,
                                 true, NULL);
    if (r == CUDA_ERROR_DEVICE_UNAVAILABLE)
      sent = r;
    gp__module_forget_locked(c, mods[i]);
  }
  free(mods);
  while (lib->kernels != NULL) {
    struct gp__kernel *k = lib->kernels;
    lib->kernels = k->next;
    gp__handles_remove(&c->handles, &k->hdr);
    kernel_free(k);
  }
  gp__handles_remove(&c->handles, &lib->hdr);
  if (lib->prev != NULL)
    lib->prev->next = lib->next;
  else
    libs = lib->next;
  if (lib->next != NULL)
    lib->next->prev = lib->prev;
  lib_free(lib);
  return sent;
}

static CUresult library_unload(CUlibrary h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__library *lib = find_lib_locked(c, h);
  r = lib != NULL ? library_free_locked(c, lib) : CUDA_ERROR_INVALID_HANDLE;
  gp__unlock();
  return r;
}

GP_API CUresult cuLibraryUnload(CUlibrary library) {
  CUresult r = library_unload(library);
  GP_TRACE(r, "library=%p", (void *)library);
  return r;
}

/* ---- Kernels ------------------------------------------------------------- */

/* Any module of |lib| in a live context, to check a name without loading
 * the library anywhere new; NULL if it has none. */
static struct gp__module *any_module(const struct gp__library *lib) {
  for (size_t i = 0; i < lib->nmods; i++)
    if (atomic_load(&lib->mods[i]->ctx->state) == GP__CTX_LIVE)
      return lib->mods[i];
  return NULL;
}

/* The kernel |name| of |lib|, made if it does not exist yet. A new kernel
 * is checked against the image where it can be: in the current context
 * (loading the library there), or else in a context that has the library
 * already. With no context anywhere the name is taken on trust and a wrong
 * one fails where it is first used. */
static CUresult kernel_get_locked(struct gp__client *c,
                                  struct gp__library *lib, const char *name,
                                  struct gp__kernel **out) {
  struct gp__kernel *k;
  struct gp__module *m;
  struct gp__ctx *ctx;
  struct gp__func *f;
  CUresult r = CUDA_SUCCESS;

  for (k = lib->kernels; k != NULL; k = k->next) {
    if (strcmp(k->name, name) == 0) {
      *out = k;
      return CUDA_SUCCESS;
    }
  }
  if (!gp__symbol_name_ok(name))
    return CUDA_ERROR_NOT_FOUND;
  if ((k = calloc(1, sizeof(*k))) == NULL ||
      (k->name = strdup(name)) == NULL ||
      (k->dev = calloc((size_t)c->ndevices, sizeof(*k->dev))) == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto fail;
  }
  k->hdr.kind = GP__KIND_KERNEL;
  k->lib = lib;
  if (gp__current_ctx(&ctx) == CUDA_SUCCESS)
    r = kernel_func_locked(c, k, ctx, &f, "cuLibraryGetKernel");
  else if ((m = any_module(lib)) != NULL)
    r = gp__module_function_locked(c, m, name, &f);
  if (r != CUDA_SUCCESS)
    goto fail;
  if (gp__handles_add(&c->handles, &k->hdr) < 0) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto fail;
  }
  k->next = lib->kernels;
  lib->kernels = k;
  *out = k;
  return CUDA_SUCCESS;
fail:
  if (k != NULL)
    kernel_free(k);
  return r;
}

static CUresult library_get_kernel(CUkernel *pk, CUlibrary h,
                                   const char *name) {
  struct gp__client *c = gp__client();
  struct gp__kernel *k;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pk == NULL || name == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__library *lib = find_lib_locked(c, h);
  r = lib == NULL ? CUDA_ERROR_INVALID_HANDLE
                  : kernel_get_locked(c, lib, name, &k);
  if (r == CUDA_SUCCESS)
    *pk = (CUkernel)k;
  gp__unlock();
  return r;
}

GP_API CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library,
                                   const char *name) {
  CUresult r = library_get_kernel(pKernel, library, name);
  GP_TRACE(r, "pKernel=%p, library=%p, name=\"%s\"",
           (void *)GP_OUT(r, pKernel), (void *)library,
           name ? name : "(null)");
  return r;
}

/* The names of the library's kernels, asked for once: of its module in the
 * current context (loaded there if need be), or in a context that has it;
 * with no context anywhere there is nothing to ask
 * (CUDA_ERROR_INVALID_CONTEXT). */
static CUresult lib_kernel_names_locked(struct gp__client *c,
                                        struct gp__library *lib,
                                        const char *api) {
  Gpupool__ModuleGetKernelsReply *kr;
  struct gp__module *m = NULL;
  struct gp__ctx *ctx;
  CUresult r;

  if (lib->have_knames)
    return CUDA_SUCCESS;
  if (gp__current_ctx(&ctx) == CUDA_SUCCESS) {
    if ((r = lib_module_locked(c, lib, ctx, &m, api)) != CUDA_SUCCESS)
      return r;
  } else if ((m = any_module(lib)) == NULL) {
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  if ((r = gp__module_kernels_locked(c, m, &kr)) != CUDA_SUCCESS)
    return r;
  char **v = calloc(kr->n_names + 1, sizeof(*v));
  for (size_t i = 0; v != NULL && i < kr->n_names; i++) {
    if ((v[i] = strdup(kr->names[i])) == NULL) {
      while (i > 0)
        free(v[--i]);
      free(v);
      v = NULL;
    }
  }
  if (v != NULL) {
    lib->knames = v;
    lib->nknames = (uint32_t)kr->n_names;
    lib->have_knames = true;
  }
  protobuf_c_message_free_unpacked(&kr->base, NULL);
  return v != NULL ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

/* cuLibraryGetKernelCount (|ks| NULL) and cuLibraryEnumerateKernels. */
static CUresult library_kernels(unsigned *count, CUkernel *ks, unsigned max,
                                CUlibrary h, const char *api) {
  struct gp__client *c = gp__client();
  struct gp__kernel *k;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (count == NULL && ks == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__library *lib = find_lib_locked(c, h);
  r = lib == NULL ? CUDA_ERROR_INVALID_HANDLE
                  : lib_kernel_names_locked(c, lib, api);
  if (r == CUDA_SUCCESS && count != NULL)
    *count = lib->nknames;
  for (uint32_t i = 0; r == CUDA_SUCCESS && ks != NULL && i < max &&
                       i < lib->nknames;
       i++)
    if ((r = kernel_get_locked(c, lib, lib->knames[i], &k)) == CUDA_SUCCESS)
      ks[i] = (CUkernel)k;
  gp__unlock();
  return r;
}

GP_API CUresult cuLibraryGetKernelCount(unsigned int *count, CUlibrary lib) {
  CUresult r = library_kernels(count, NULL, 0, lib, __func__);
  GP_TRACE(r, "count=%u, lib=%p", GP_OUT(r, count), (void *)lib);
  return r;
}

GP_API CUresult cuLibraryEnumerateKernels(CUkernel *kernels,
                                          unsigned int numKernels,
                                          CUlibrary lib) {
  /* With |kernels| NULL as well as the count, library_kernels() says
   * CUDA_ERROR_INVALID_VALUE (after the readiness check). */
  CUresult r = library_kernels(NULL, kernels, numKernels, lib, __func__);
  GP_TRACE(r, "kernels=%p, numKernels=%u, lib=%p", (void *)kernels,
           numKernels, (void *)lib);
  return r;
}

/* The library's module in the current context. */
static CUresult library_get_module(CUmodule *pmod, CUlibrary h) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  struct gp__module *m;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pmod == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__library *lib = find_lib_locked(c, h);
  if (lib == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else if ((r = gp__current_ctx(&ctx)) == CUDA_SUCCESS &&
           (r = lib_module_locked(c, lib, ctx, &m, "cuLibraryGetModule")) ==
               CUDA_SUCCESS)
    *pmod = (CUmodule)m;
  gp__unlock();
  return r;
}

GP_API CUresult cuLibraryGetModule(CUmodule *pMod, CUlibrary library) {
  CUresult r = library_get_module(pMod, library);
  GP_TRACE(r, "pMod=%p, library=%p", (void *)GP_OUT(r, pMod),
           (void *)library);
  return r;
}

/* A global of the library's module in the current context: an address of
 * that context, entered in the range table like a module's. */
static CUresult library_get_global(CUdeviceptr *dptr, size_t *bytes,
                                   CUlibrary h, const char *name) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  struct gp__module *m;
  uint64_t p = 0, size = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  /* Either output may be NULL, not both. */
  if (name == NULL || (dptr == NULL && bytes == NULL))
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__library *lib = find_lib_locked(c, h);
  if (lib == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else if ((r = gp__current_ctx(&ctx)) == CUDA_SUCCESS &&
           (r = lib_module_locked(c, lib, ctx, &m, "cuLibraryGetGlobal")) ==
               CUDA_SUCCESS)
    r = gp__module_global_locked(c, m, name, &p, &size);
  gp__unlock();
  if (r == CUDA_SUCCESS) {
    if (dptr != NULL)
      *dptr = (CUdeviceptr)p;
    if (bytes != NULL)
      *bytes = (size_t)size;
  }
  return r;
}

GP_API CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes,
                                   CUlibrary library, const char *name) {
  CUresult r = library_get_global(dptr, bytes, library, name);
  GP_TRACE(r, "dptr=0x%llx, bytes=%zu, library=%p, name=\"%s\"",
           (unsigned long long)GP_OUT(r, dptr), GP_OUT(r, bytes),
           (void *)library, name ? name : "(null)");
  return r;
}

/* The common checks of the two queries below. */
static CUresult check_lib_name(CUlibrary h, const char *name) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (name == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  if (find_lib_locked(gp__client(), h) == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  gp__unlock();
  return r;
}

/* Managed (__managed__) variables need memory that the device and this
 * process share, which a remote device does not have yet. */
static CUresult library_get_managed(CUdeviceptr *dptr, size_t *bytes,
                                    CUlibrary h, const char *name) {
  static _Atomic bool said;
  CUresult r = check_lib_name(h, name);
  if (r != CUDA_SUCCESS)
    return r;
  if (dptr == NULL && bytes == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if (!atomic_exchange(&said, true))
    gp__log("cuLibraryGetManaged: managed memory (__managed__ variables) "
            "is not supported yet: a remote device cannot share memory with "
            "this process");
  return CUDA_ERROR_NOT_SUPPORTED;
}

GP_API CUresult cuLibraryGetManaged(CUdeviceptr *dptr, size_t *bytes,
                                    CUlibrary library, const char *name) {
  CUresult r = library_get_managed(dptr, bytes, library, name);
  GP_TRACE(r, "dptr=0x%llx, bytes=%zu, library=%p, name=\"%s\"",
           (unsigned long long)GP_OUT(r, dptr), GP_OUT(r, bytes),
           (void *)library, name ? name : "(null)");
  return r;
}

/* A unified function is one the host and the device call through the same
 * pointer: devices without CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS
 * have none, and the driver then answers CUDA_ERROR_NOT_FOUND, as cuda.h
 * documents. No pool device has them so far; one that did would still
 * need the host side, which the pool does not have. */
static CUresult library_get_unified_function(void **fptr, CUlibrary h,
                                             const char *symbol) {
  struct gp__client *c = gp__client();
  static _Atomic bool said;
  CUresult r = check_lib_name(h, symbol);
  if (r != CUDA_SUCCESS)
    return r;
  if (fptr == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (int d = 0; d < c->ndevices; d++) {
    if (c->devices[d].attr[CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS]) {
      if (!atomic_exchange(&said, true))
        gp__log("cuLibraryGetUnifiedFunction: unified function pointers "
                "are not supported yet");
      return CUDA_ERROR_NOT_SUPPORTED;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

GP_API CUresult cuLibraryGetUnifiedFunction(void **fptr, CUlibrary library,
                                            const char *symbol) {
  CUresult r = library_get_unified_function(fptr, library, symbol);
  GP_TRACE(r, "fptr=%p, library=%p, symbol=\"%s\"",
           GP_OUT(r, fptr), (void *)library, symbol ? symbol : "(null)");
  return r;
}

/* ---- Kernel queries ------------------------------------------------------ */

static CUresult kernel_get_function(CUfunction *pf, CUkernel h) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pf == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__kernel *k = find_kernel_locked(c, h);
  if (k == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else if ((r = gp__current_ctx(&ctx)) == CUDA_SUCCESS &&
           (r = kernel_func_locked(c, k, ctx, &f, "cuKernelGetFunction")) ==
               CUDA_SUCCESS)
    *pf = (CUfunction)f;
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel) {
  CUresult r = kernel_get_function(pFunc, kernel);
  GP_TRACE(r, "pFunc=%p, kernel=%p", (void *)GP_OUT(r, pFunc),
           (void *)kernel);
  return r;
}

static CUresult kernel_get_library(CUlibrary *plib, CUkernel h) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (plib == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__kernel *k = find_kernel_locked(gp__client(), h);
  if (k == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else
    *plib = (CUlibrary)k->lib;
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelGetLibrary(CUlibrary *pLib, CUkernel kernel) {
  CUresult r = kernel_get_library(pLib, kernel);
  GP_TRACE(r, "pLib=%p, kernel=%p", (void *)GP_OUT(r, pLib), (void *)kernel);
  return r;
}

/* The name stays valid while the library is loaded. */
static CUresult kernel_get_name(const char **name, CUkernel h) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (name == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  const char *n = gp__kernel_name_locked(gp__client(), h);
  gp__unlock();
  if (n == NULL)
    return CUDA_ERROR_INVALID_HANDLE;
  *name = n;
  return CUDA_SUCCESS;
}

GP_API CUresult cuKernelGetName(const char **name, CUkernel hfunc) {
  CUresult r = kernel_get_name(name, hfunc);
  GP_TRACE(r, "name=\"%s\", hfunc=%p", r == CUDA_SUCCESS ? *name : "",
           (void *)hfunc);
  return r;
}

/* The parameter layout is the kernel's in every context: known after its
 * first resolution, asked for in the current context before that. */
static CUresult kernel_get_param_info(CUkernel h, size_t index,
                                      size_t *offset, size_t *size) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (offset == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__kernel *k = find_kernel_locked(c, h);
  if (k == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else if (!k->have_params && (r = gp__current_ctx(&ctx)) == CUDA_SUCCESS)
    r = kernel_func_locked(c, k, ctx, &f, "cuKernelGetParamInfo");
  if (r == CUDA_SUCCESS) {
    if (index >= k->nparams) {
      r = CUDA_ERROR_INVALID_VALUE;
    } else {
      *offset = k->params[index].offset;
      if (size != NULL)
        *size = k->params[index].size;
    }
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelGetParamInfo(CUkernel kernel, size_t paramIndex,
                                     size_t *paramOffset, size_t *paramSize) {
  CUresult r = kernel_get_param_info(kernel, paramIndex, paramOffset,
                                     paramSize);
  GP_TRACE(r, "kernel=%p, paramIndex=%zu, paramOffset=%zu, paramSize=%zu",
           (void *)kernel, paramIndex, GP_OUT(r, paramOffset),
           GP_OUT(r, paramSize));
  return r;
}

/* A context of device |dev| to answer for kernel |k| there: the current
 * one if it is on |dev|, else one where the library is loaded, else the
 * device's primary context if it is active. */
static CUresult ctx_for_dev_locked(struct gp__client *c,
                                   const struct gp__kernel *k, CUdevice dev,
                                   struct gp__ctx **out) {
  struct gp__ctx *ctx;

  if (gp__current_ctx(&ctx) == CUDA_SUCCESS && ctx->device == dev) {
    *out = ctx;
    return CUDA_SUCCESS;
  }
  for (size_t i = 0; i < k->lib->nmods; i++) {
    ctx = k->lib->mods[i]->ctx;
    if (ctx->device == dev && atomic_load(&ctx->state) == GP__CTX_LIVE) {
      *out = ctx;
      return CUDA_SUCCESS;
    }
  }
  ctx = c->devices[dev].primary;
  if (atomic_load(&ctx->state) == GP__CTX_LIVE) {
    *out = ctx;
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_INVALID_CONTEXT;
}

/* Common checks of the per-device kernel calls; |*k| and, with |f|, the
 * kernel's function in a context of |dev|. */
static CUresult kernel_on_dev_locked(struct gp__client *c, CUkernel h,
                                     CUdevice dev, struct gp__kernel **k,
                                     struct gp__func **f, const char *api) {
  struct gp__ctx *ctx;

  if ((*k = find_kernel_locked(c, h)) == NULL)
    return CUDA_ERROR_INVALID_HANDLE;
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  if (f == NULL)
    return CUDA_SUCCESS;
  CUresult r = ctx_for_dev_locked(c, *k, dev, &ctx);
  if (r != CUDA_SUCCESS)
    return r;
  return kernel_func_locked(c, *k, ctx, f, api);
}

/* What cuKernelSetAttribute set for |dev| wins, as documented; the rest is
 * the function's. */
static CUresult kernel_get_attribute(int *pi, CUfunction_attribute attrib,
                                     CUkernel h, CUdevice dev) {
  struct gp__client *c = gp__client();
  struct gp__kernel *k;
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pi == NULL || (unsigned)attrib >= (unsigned)CU_FUNC_ATTRIBUTE_MAX)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  r = kernel_on_dev_locked(c, h, dev, &k, NULL, NULL);
  if (r == CUDA_SUCCESS) {
    if (k->dev[dev].attr_set & (1u << attrib)) {
      *pi = k->dev[dev].attr[attrib];
    } else {
      r = kernel_on_dev_locked(c, h, dev, &k, &f, "cuKernelGetAttribute");
      if (r == CUDA_SUCCESS)
        *pi = f->attr[attrib];
    }
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attrib,
                                     CUkernel kernel, CUdevice dev) {
  CUresult r = kernel_get_attribute(pi, attrib, kernel, dev);
  GP_TRACE(r, "pi=%d, attrib=%d, kernel=%p, dev=%d", GP_OUT(r, pi),
           (int)attrib, (void *)kernel, dev);
  return r;
}

/* Pushes what |k| was told for |dev| to its functions that exist in the
 * contexts of |dev|. Asks the server nothing: a context where the kernel
 * was never resolved has no function yet, and gets the settings when it
 * is (kernel_func_locked()). */
static void kernel_update_funcs_locked(struct gp__kernel *k, CUdevice dev) {
  for (size_t i = 0; i < k->lib->nmods; i++) {
    struct gp__module *m = k->lib->mods[i];
    struct gp__func *f;
    if (m->ctx->device == dev &&
        (f = gp__module_function_find_locked(m, k->name)) != NULL)
      apply_kernel_settings(k, f);
  }
}

/* Applies to the kernel's functions in every context of |dev|, present and
 * future, except where cuFuncSetAttribute set the same attribute. */
static CUresult kernel_set_attribute(CUfunction_attribute attrib, int val,
                                     CUkernel h, CUdevice dev) {
  struct gp__client *c = gp__client();
  struct gp__kernel *k;
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((unsigned)attrib >= (unsigned)CU_FUNC_ATTRIBUTE_MAX)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  /* The function is needed to check the value (the dynamic shared memory
   * allowed depends on its static shared memory). */
  r = kernel_on_dev_locked(c, h, dev, &k, &f, "cuKernelSetAttribute");
  if (r == CUDA_SUCCESS)
    r = gp__func_check_attr_locked(c, f, attrib, val);
  if (r == CUDA_SUCCESS) {
    k->dev[dev].attr[attrib] = val;
    k->dev[dev].attr_set |= 1u << attrib;
    kernel_update_funcs_locked(k, dev);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val,
                                     CUkernel kernel, CUdevice dev) {
  CUresult r = kernel_set_attribute(attrib, val, kernel, dev);
  GP_TRACE(r, "attrib=%d, val=%d, kernel=%p, dev=%d", (int)attrib, val,
           (void *)kernel, dev);
  return r;
}

/* A preference, kept for the kernel's functions on |dev| (where
 * cuFuncSetCacheConfig did not set one): the server's device picks its own
 * split. */
static CUresult kernel_set_cache_config(CUkernel h, CUfunc_cache config,
                                        CUdevice dev) {
  struct gp__client *c = gp__client();
  struct gp__kernel *k;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((unsigned)config > (unsigned)CU_FUNC_CACHE_PREFER_EQUAL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  r = kernel_on_dev_locked(c, h, dev, &k, NULL, NULL);
  if (r == CUDA_SUCCESS) {
    k->dev[dev].cache = config;
    k->dev[dev].cache_set = true;
    kernel_update_funcs_locked(k, dev);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache config,
                                       CUdevice dev) {
  CUresult r = kernel_set_cache_config(kernel, config, dev);
  GP_TRACE(r, "kernel=%p, config=%d, dev=%d", (void *)kernel, (int)config,
           dev);
  return r;
}
