/* Modules and functions: loading images, looking up kernels and globals,
 * and the functions' attributes.
 *
 * A module and a function are client objects with client-chosen ids, like
 * streams, so a stale handle is CUDA_ERROR_INVALID_HANDLE rather than a
 * crash. A load costs one round trip (the server must say whether the image
 * is good); the image goes as the frame's payload, unless this session has
 * uploaded the same bytes before (same SHA-256), in which case the request
 * names the digest and the server uses its copy, or answers `need_image`
 * and gets it again. A function is looked up once per (module, name): a
 * second cuModuleGetFunction of the same name returns the same handle
 * without a round trip, and every attribute is answered locally. Globals
 * are remembered the same way, and entered in the device range table so
 * that copies to and from them pass the local checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "cuerrors.h"
#include "gpupool/gpupool.h"
#include "trace.h"

/* Kernel and variable names longer than this do not exist (the server
 * refuses them too). */
#define GP__MAX_SYMBOL_NAME 4096

/* When the server does not report the device's limits: those of every
 * NVIDIA GPU since Volta without the opt-in. */
#define GP__DEFAULT_SHARED_PER_BLOCK 49152
#define GP__DEFAULT_THREADS_PER_BLOCK 1024

#define container_of(p, type, member) \
  ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- Name tables ----------------------------------------------------------- */

/* FNV-1a: names are short and the table only needs a spread. */
static uint64_t name_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

static struct gp__sym *symtab_find(const struct gp__symtab *t,
                                   const char *name, uint64_t h) {
  if (t->nbuckets == 0)
    return NULL;
  for (struct gp__sym *e = t->buckets[h & (t->nbuckets - 1)]; e != NULL;
       e = e->next)
    if (e->hash == h && strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

/* Adds |e| (hash and name set). Returns 0 or GP_ENOMEM. */
static int symtab_add(struct gp__symtab *t, struct gp__sym *e) {
  if (t->n >= t->nbuckets) {
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 16;
    struct gp__sym **b = calloc(nb, sizeof(*b));
    if (b == NULL)
      return GP_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
      for (struct gp__sym *x = t->buckets[i], *next; x != NULL; x = next) {
        next = x->next;
        x->next = b[x->hash & (nb - 1)];
        b[x->hash & (nb - 1)] = x;
      }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
  }
  struct gp__sym **head = &t->buckets[e->hash & (t->nbuckets - 1)];
  e->next = *head;
  *head = e;
  t->n++;
  return 0;
}

/* Calls |fn| on every entry, which it may free, then empties |t|. */
static void symtab_clear(struct gp__symtab *t,
                         void (*fn)(struct gp__sym *e, void *arg),
                         void *arg) {
  for (size_t i = 0; i < t->nbuckets; i++) {
    for (struct gp__sym *e = t->buckets[i], *next; e != NULL; e = next) {
      next = e->next;
      fn(e, arg);
    }
  }
  free(t->buckets);
  t->buckets = NULL;
  t->nbuckets = t->n = 0;
}

/* ---- Objects ------------------------------------------------------------------ */

static struct gp__module *find_module_locked(struct gp__client *c,
                                             CUmodule h) {
  return (struct gp__module *)gp__handles_find(&c->handles, h,
                                               GP__KIND_MODULE);
}

struct gp__func *gp__func_find_locked(struct gp__client *c, CUfunction h) {
  return (struct gp__func *)gp__handles_find(&c->handles, h, GP__KIND_FUNC);
}

static void func_free(struct gp__func *f) {
  free(f->sym.name);
  free(f->params);
  free(f);
}

static void forget_func(struct gp__sym *e, void *arg) {
  struct gp__client *c = arg;
  struct gp__func *f = container_of(e, struct gp__func, sym);
  gp__handles_remove(&c->handles, &f->hdr);
  func_free(f);
}

static void forget_global(struct gp__sym *e, void *arg) {
  struct gp__client *c = arg;
  struct gp__global *g = container_of(e, struct gp__global, sym);
  /* Only the range entered for this global: the context's destruction
   * may have removed it already. */
  if (g->registered) {
    const struct gp__range *rg = gp__ranges_find(&c->dev_mem, g->dptr);
    if (rg != NULL && rg->base == g->dptr && rg->size == g->size &&
        (rg->flags & GP__RANGE_MODULE_GLOBAL))
      gp__ranges_remove(&c->dev_mem, g->dptr);
  }
  free(g->sym.name);
  free(g);
}

void gp__module_forget_locked(struct gp__client *c, struct gp__module *m) {
  /* A library's module in some context: the library loads it again when
   * it is next used there. */
  gp__library_module_gone_locked(c, m);
  symtab_clear(&m->funcs, forget_func, c);
  symtab_clear(&m->globals, forget_global, c);
  gp__handles_remove(&c->handles, &m->hdr);
  free(m);
}

/* ---- Loading -------------------------------------------------------------------- */

/* What a load did, for the JIT options and the trace. */
struct load_info {
  char why[512];        /* why it failed, for the error log; "" if it did
                         * not */
  enum gp__image_kind kind;
  size_t size;
  bool cached;          /* sent without the image */
};

/* One MODULE_LOAD request and its reply. |im| NULL: without the image.
 * A refusal's `message` goes to |why|. */
static CUresult load_call_locked(struct gp__client *c, Gpupool__ModuleLoad *m,
                                 const struct gp__image *im, bool *need_image,
                                 char *why, size_t why_len) {
  uint32_t id;
  ProtobufCMessage *reply = NULL;
  m->has_image = im != NULL;
  CUresult r = gp__send_locked(c, GP_MSG_MODULE_LOAD, &m->base,
                               im ? im->data : NULL, im ? im->size : 0, false,
                               &id);
  if (r != CUDA_SUCCESS)
    return r;
  r = gp__recv_any_locked(c, GP_MSG_MODULE_LOAD, id, &reply);
  if (reply != NULL) {
    const Gpupool__ModuleLoadReply *lr =
        (const Gpupool__ModuleLoadReply *)reply;
    *need_image = lr->need_image;
    if (r != CUDA_SUCCESS && lr->message != NULL)
      snprintf(why, why_len, "%s", lr->message);
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  return r;
}

/* Uploads |im| (SHA-256 |md|), too big for one frame, in IMAGE_PART frames
 * of GP_COPY_CHUNK bytes, all but the last sent without waiting, as a
 * synchronous copy is: one round trip. The server then holds it in its
 * image cache. Returns the server's result (CUDA_ERROR_INVALID_VALUE for an
 * image it will not hold, CUDA_ERROR_OUT_OF_MEMORY), or the usual local
 * ones. */
static CUresult upload_parts_locked(struct gp__client *c,
                                    const struct gp__image *im,
                                    const uint8_t md[GP__SHA256_LEN]) {
  const uint8_t *p = im->data;
  uint32_t id = 0;
  CUresult r = CUDA_SUCCESS;

  for (size_t off = 0; off < im->size; off += GP_COPY_CHUNK) {
    size_t n = im->size - off < GP_COPY_CHUNK ? im->size - off
                                              : GP_COPY_CHUNK;
    bool last = off + n == im->size;
    Gpupool__ImagePart part = GPUPOOL__IMAGE_PART__INIT;
    part.sha256.data = (uint8_t *)md;
    part.sha256.len = GP__SHA256_LEN;
    part.image_size = im->size;
    part.offset = off;
    r = gp__send_locked(c, GP_MSG_IMAGE_PART, &part.base, p + off, n, !last,
                        &id);
    if (r != CUDA_SUCCESS)
      return r;
  }
  return gp__recv_locked(c, GP_MSG_IMAGE_PART, id, NULL, NULL, 0);
}

CUresult gp__module_load_locked(struct gp__client *c, struct gp__ctx *ctx,
                                const struct gp__image *im,
                                const uint8_t md[GP__SHA256_LEN],
                                struct gp__module **out, char *why,
                                size_t whylen, bool *cached) {
  CUresult r;
  struct gp__module *m = calloc(1, sizeof(*m));

  if (why != NULL && whylen > 0)
    why[0] = '\0';
  *cached = false;
  if (m == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  m->hdr.kind = GP__KIND_MODULE;
  m->id = gp__new_id();
  m->ctx = ctx;
  Gpupool__ModuleLoad msg = GPUPOOL__MODULE_LOAD__INIT;
  msg.ctx = ctx->id;
  msg.module = m->id;
  msg.sha256.data = (uint8_t *)md;
  msg.sha256.len = GP__SHA256_LEN;
  msg.image_size = im->size;
  bool need = false;
  char msgbuf[512] = "";
  /* An image over one frame's payload goes ahead in parts; the load then
   * names it by digest, as a cached one. */
  bool parts = im->size > GP__IMAGE_FRAME_MAX;
  /* A server whose sessions share images (GP_FEATURE_SHARED_IMAGES) may
   * have these bytes from another session: name them first. */
  *cached = gp__digests_has(&c->images, md) ||
            (c->features & GP_FEATURE_SHARED_IMAGES) != 0;
  if (!*cached && parts &&
      (r = upload_parts_locked(c, im, md)) != CUDA_SUCCESS)
    goto refused;
  r = load_call_locked(c, &msg, *cached || parts ? NULL : im, &need, msgbuf,
                       sizeof(msgbuf));
  /* The server does not have it (never sent, a restarted worker, an
   * evicted cache): send it, with the image this time. */
  if (r == CUDA_SUCCESS && need && *cached) {
    *cached = false;
    if (!parts)
      r = load_call_locked(c, &msg, im, &need, msgbuf, sizeof(msgbuf));
    else if ((r = upload_parts_locked(c, im, md)) == CUDA_SUCCESS)
      r = load_call_locked(c, &msg, NULL, &need, msgbuf, sizeof(msgbuf));
    else
      goto refused;
  }
  if (r == CUDA_SUCCESS && need) {
    r = gp__lost_locked(c, GP_EPROTO, "MODULE_LOAD (asked again for the "
                        "image it was sent)");
    goto out;
  }
refused:
  if (r != CUDA_SUCCESS) {
    /* The server's line says why (the PTX line it stumbled on, how to
     * rebuild a program without PTX): it is the JIT error log. An upload
     * in parts has no line; its result says enough. */
    if (r != CUDA_ERROR_DEVICE_UNAVAILABLE && why != NULL && whylen > 0)
      snprintf(why, whylen, "%s",
               msgbuf[0] != '\0' ? msgbuf : gp__cu_error_name(r));
    goto out;
  }
  /* Only a cache: if it cannot grow, the next load of these bytes sends
   * them again. */
  gp__digests_add(&c->images, md);
  if (gp__handles_add(&c->handles, &m->hdr) < 0) {
    Gpupool__ModuleUnload u = GPUPOOL__MODULE_UNLOAD__INIT;
    u.module = m->id;
    gp__send_locked(c, GP_MSG_MODULE_UNLOAD, &u.base, NULL, 0, true, NULL);
    r = CUDA_ERROR_OUT_OF_MEMORY;
  }
out:
  if (r != CUDA_SUCCESS) {
    free(m);
    return r;
  }
  *out = m;
  return CUDA_SUCCESS;
}

/* Loads |im| into the current context as a new module: the common part of
 * every cuModuleLoad*. A refusal is reported on stderr with the server's
 * reason. Returns the server's result, or the usual local ones. */
static CUresult load_image(CUmodule *pmod, const struct gp__image *im,
                           struct load_info *info, const char *fn) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  struct gp__module *m = NULL;
  uint8_t md[GP__SHA256_LEN];
  CUresult r;

  info->kind = im->kind;
  info->size = im->size;
  if (gp__sha256(im->data, im->size, md) < 0)
    return CUDA_ERROR_OUT_OF_MEMORY;
  gp__lock();
  r = gp__current_ctx(&ctx);
  if (r == CUDA_SUCCESS)
    r = gp__module_load_locked(c, ctx, im, md, &m, info->why,
                               sizeof(info->why), &info->cached);
  gp__unlock();
  if (r != CUDA_SUCCESS) {
    if (info->why[0] != '\0')
      gp__log("%s: the server could not load the %s image (%zu bytes): %s",
              fn, gp__image_kind_name(im->kind), im->size, info->why);
    return r;
  }
  *pmod = (CUmodule)m;
  return CUDA_SUCCESS;
}

/* cuModuleLoadData and friends: an image behind a bare pointer. */
static CUresult load_data(CUmodule *pmod, const void *image,
                          struct load_info *info, const char *fn) {
  struct gp__ctx *ctx;
  struct gp__image im;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pmod == NULL || image == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  if ((r = gp__image_find(image, SIZE_MAX, &im)) != CUDA_SUCCESS) {
    if (r == CUDA_ERROR_INVALID_IMAGE)
      snprintf(info->why, sizeof(info->why),
               "not a PTX, ELF or fatbin image, or a malformed one");
    else if (r == CUDA_ERROR_INVALID_VALUE)
      snprintf(info->why, sizeof(info->why),
               "images over %zu MiB are not supported",
               GP__IMAGE_MAX >> 20);
    return r;
  }
  r = load_image(pmod, &im, info, fn);
  gp__image_free(&im);
  return r;
}

GP_API CUresult cuModuleLoadData(CUmodule *module, const void *image) {
  struct load_info info = {.why = ""};
  CUresult r = load_data(module, image, &info, __func__);
  GP_TRACE(r, "module=%p, image=%p [%s, %zu bytes%s]",
           (void *)GP_OUT(r, module), image,
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           info.cached ? ", cached" : "");
  return r;
}

/* A fat binary is loaded like any other image: the image finder knows
 * fatbins and their wrappers (and cubins and PTX, which the real driver
 * takes here too). */
GP_API CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin) {
  struct load_info info = {.why = ""};
  CUresult r = load_data(module, fatCubin, &info, __func__);
  GP_TRACE(r, "module=%p, fatCubin=%p [%s, %zu bytes%s]",
           (void *)GP_OUT(r, module), fatCubin,
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           info.cached ? ", cached" : "");
  return r;
}

/* ---- JIT options ----------------------------------------------------------------- */

static unsigned slot_uint(void *const *values, int i) {
  return (unsigned)(uintptr_t)values[i];
}

/* Checks the options and notes where the outputs go. Every documented
 * option is accepted: the compiler's and linker's knobs mean nothing to a
 * server that decides how to compile (the emulated device interprets PTX),
 * and none changes what a correct program computes. */
CUresult gp__jit_parse(unsigned n, const CUjit_option *opts, void **values,
                       struct gp__jit_outputs *out) {
  *out = (struct gp__jit_outputs){.values = values, .info_buf = -1,
                              .info_size = -1, .error_buf = -1,
                              .error_size = -1, .wall_time = -1};
  if (n == 0)
    return CUDA_SUCCESS;
  if (opts == NULL || values == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < n; i++) {
    switch (opts[i]) {
    case CU_JIT_WALL_TIME:
      out->wall_time = (int)i;
      break;
    case CU_JIT_INFO_LOG_BUFFER:
      out->info_buf = (int)i;
      break;
    case CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES:
      out->info_size = (int)i;
      break;
    case CU_JIT_ERROR_LOG_BUFFER:
      out->error_buf = (int)i;
      break;
    case CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES:
      out->error_size = (int)i;
      break;
    case CU_JIT_OPTIMIZATION_LEVEL:
      if (slot_uint(values, (int)i) > 4)
        return CUDA_ERROR_INVALID_VALUE;
      break;
    default:
      if ((unsigned)opts[i] >= (unsigned)CU_JIT_NUM_OPTIONS)
        return CUDA_ERROR_INVALID_VALUE;
      break;
    }
  }
  return CUDA_SUCCESS;
}

/* Writes |text| into the log buffer of option |buf| (capped at the size
 * given by option |size|, NUL included) and the length written, without
 * the NUL, back into the size slot. */
static void jit_log(const struct gp__jit_outputs *o, int buf, int size,
                    const char *text) {
  if (buf < 0 || size < 0)
    return;
  char *dst = o->values[buf];
  unsigned cap = slot_uint(o->values, size);
  size_t len = 0;
  if (dst != NULL && cap > 0) {
    len = strlen(text);
    if (len > cap - 1)
      len = cap - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
  }
  o->values[size] = (void *)(uintptr_t)len;
}

void gp__jit_finish(const struct gp__jit_outputs *o, const char *why,
                    float ms) {
  jit_log(o, o->info_buf, o->info_size, "");
  jit_log(o, o->error_buf, o->error_size, why);
  if (o->wall_time >= 0) {
    uint32_t bits;
    memcpy(&bits, &ms, sizeof(bits));
    o->values[o->wall_time] = (void *)(uintptr_t)bits;
  }
}

double gp__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static CUresult load_data_ex(CUmodule *pmod, const void *image, unsigned n,
                             CUjit_option *opts, void **values,
                             struct load_info *info) {
  struct gp__jit_outputs o;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if ((r = gp__jit_parse(n, opts, values, &o)) != CUDA_SUCCESS)
    return r;
  double t0 = gp__now_ms();
  r = load_data(pmod, image, info, "cuModuleLoadDataEx");
  gp__jit_finish(&o, info->why, (float)(gp__now_ms() - t0));
  return r;
}

GP_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                   unsigned int numOptions,
                                   CUjit_option *options,
                                   void **optionValues) {
  struct load_info info = {.why = ""};
  CUresult r =
      load_data_ex(module, image, numOptions, options, optionValues, &info);
  GP_TRACE(r, "module=%p, image=%p [%s, %zu bytes%s], numOptions=%u",
           (void *)GP_OUT(r, module), image,
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           info.cached ? ", cached" : "", numOptions);
  return r;
}

/* ---- cuModuleLoad: an image in a file -------------------------------------------- */

CUresult gp__read_image_file(const char *path, const char *fn, uint8_t **buf,
                             size_t *len) {
  CUresult r = CUDA_ERROR_FILE_NOT_FOUND;
  uint8_t *b = NULL;
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return CUDA_ERROR_FILE_NOT_FOUND;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
    goto out;
  if ((uint64_t)st.st_size > GP__IMAGE_MAX) {
    gp__log("%s: %s: module images over %zu MiB are not supported "
            "(%lld bytes)",
            fn, path, GP__IMAGE_MAX >> 20, (long long)st.st_size);
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  size_t n = (size_t)st.st_size, got = 0;
  if ((b = malloc(n + 1)) == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  while (got < n) {
    ssize_t k = read(fd, b + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  /* A file that shrank while being read is taken as it was read. */
  b[got] = '\0';
  *buf = b;
  *len = got;
  b = NULL;
  r = CUDA_SUCCESS;
out:
  free(b);
  close(fd);
  return r;
}

static CUresult load_file(CUmodule *pmod, const char *path,
                          struct load_info *info) {
  struct gp__ctx *ctx;
  struct gp__image im;
  uint8_t *buf = NULL;
  size_t len = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pmod == NULL || path == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gp__current_ctx(&ctx)) != CUDA_SUCCESS)
    return r;
  if ((r = gp__read_image_file(path, "cuModuleLoad", &buf, &len)) !=
      CUDA_SUCCESS)
    return r;
  /* The same rules as for an image in memory, bounded by the file (and
   * its NUL), so that the same bytes give the same image either way. */
  r = len == 0 ? CUDA_ERROR_INVALID_IMAGE : gp__image_find(buf, len + 1, &im);
  if (r == CUDA_SUCCESS) {
    r = load_image(pmod, &im, info, "cuModuleLoad");
    gp__image_free(&im);
  }
  free(buf);
  return r;
}

GP_API CUresult cuModuleLoad(CUmodule *module, const char *fname) {
  struct load_info info = {.why = ""};
  CUresult r = load_file(module, fname, &info);
  GP_TRACE(r, "module=%p, fname=\"%s\" [%s, %zu bytes%s]",
           (void *)GP_OUT(r, module), fname ? fname : "(null)",
           info.size ? gp__image_kind_name(info.kind) : "?", info.size,
           info.cached ? ", cached" : "");
  return r;
}

/* Lazy unless CUDA_MODULE_LOADING=EAGER, as the driver since CUDA 12.2:
 * what changes is when a library reaches the server (api_library.c). A
 * module is loaded whole on the server either way. */
static CUresult module_get_loading_mode(CUmoduleLoadingMode *mode) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (mode == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  *mode = gp__lazy_loading() ? CU_MODULE_LAZY_LOADING
                             : CU_MODULE_EAGER_LOADING;
  return CUDA_SUCCESS;
}

GP_API CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode) {
  CUresult r = module_get_loading_mode(mode);
  GP_TRACE(r, "mode=%d", (int)GP_OUT(r, mode));
  return r;
}

/* ---- Unloading ------------------------------------------------------------------- */

/* Sent without a reply: the server finishes the work that uses the module
 * first. Its functions and globals die with it here at once. */
static CUresult module_unload(CUmodule h) {
  struct gp__client *c = gp__client();
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  struct gp__module *m = find_module_locked(c, h);
  if (m == NULL) {
    r = CUDA_ERROR_INVALID_HANDLE;
  } else {
    Gpupool__ModuleUnload u = GPUPOOL__MODULE_UNLOAD__INIT;
    u.module = m->id;
    r = gp__send_locked(c, GP_MSG_MODULE_UNLOAD, &u.base, NULL, 0, true, NULL);
    /* Not sent for want of memory: the module stays, as it was. */
    if (r != CUDA_ERROR_OUT_OF_MEMORY)
      gp__module_forget_locked(c, m);
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuModuleUnload(CUmodule hmod) {
  CUresult r = module_unload(hmod);
  GP_TRACE(r, "hmod=%p", (void *)hmod);
  return r;
}

/* ---- Functions --------------------------------------------------------------------- */

/* True when |name| could name a kernel or variable: not empty, not longer
 * than GP__MAX_SYMBOL_NAME, printable ASCII without blanks (PTX
 * identifiers, mangled names included, are that). Any other name names
 * nothing: CUDA_ERROR_NOT_FOUND without asking the server. */
bool gp__symbol_name_ok(const char *name) {
  size_t n = 0;
  for (; name[n] != '\0'; n++)
    if (n == GP__MAX_SYMBOL_NAME || (unsigned char)name[n] <= 0x20 ||
        (unsigned char)name[n] >= 0x7f)
      return false;
  return n > 0;
}

/* Makes the function object from the server's description. The reply is
 * checked first: a layout that breaks the launch limits is a broken
 * server. Returns CUDA_SUCCESS, CUDA_ERROR_OUT_OF_MEMORY or
 * CUDA_ERROR_DEVICE_UNAVAILABLE (connection dropped). */
static CUresult func_from_reply_locked(struct gp__client *c,
                                       struct gp__module *m, uint64_t id,
                                       const char *name,
                                       const Gpupool__ModuleGetFunctionReply *fr,
                                       struct gp__func **out) {
  if (fr->n_params > GP__MAX_KERNEL_PARAMS ||
      fr->params_size > GP__MAX_PARAM_BYTES)
    return gp__lost_locked(c, GP_EPROTO, "MODULE_GET_FUNCTION (bad layout)");
  for (size_t i = 0; i < fr->n_params; i++) {
    const Gpupool__KernelParam *p = fr->params[i];
    if (p->size == 0 || p->offset > fr->params_size ||
        p->size > fr->params_size - p->offset)
      return gp__lost_locked(c, GP_EPROTO,
                             "MODULE_GET_FUNCTION (bad parameter)");
  }
  struct gp__func *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  f->hdr.kind = GP__KIND_FUNC;
  f->id = id;
  f->mod = m;
  f->sym.name = strdup(name);
  f->sym.hash = name_hash(name);
  f->nparams = (uint32_t)fr->n_params;
  f->params_size = fr->params_size;
  if (f->nparams > 0)
    f->params = calloc(f->nparams, sizeof(*f->params));
  if (f->sym.name == NULL || (f->nparams > 0 && f->params == NULL)) {
    func_free(f);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  for (uint32_t i = 0; i < f->nparams; i++) {
    f->params[i].offset = fr->params[i]->offset;
    f->params[i].size = fr->params[i]->size;
  }
  int *a = f->attr;
  a[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK] =
      fr->max_threads_per_block > 0
          ? fr->max_threads_per_block
          : gp__dev_attr(m->ctx, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                         GP__DEFAULT_THREADS_PER_BLOCK);
  a[CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES] = fr->shared_size_bytes;
  a[CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES] = fr->const_size_bytes;
  a[CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES] = fr->local_size_bytes;
  a[CU_FUNC_ATTRIBUTE_NUM_REGS] = fr->num_regs;
  a[CU_FUNC_ATTRIBUTE_PTX_VERSION] = fr->ptx_version;
  a[CU_FUNC_ATTRIBUTE_BINARY_VERSION] = fr->binary_version;
  /* The documented default: what is left of the (non-opt-in) per-block
   * shared memory after the static part, 0 if nothing is. */
  int smem = gp__dev_attr(m->ctx,
                          CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
                          GP__DEFAULT_SHARED_PER_BLOCK);
  a[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES] =
      smem > fr->shared_size_bytes ? smem - fr->shared_size_bytes : 0;
  a[CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT] =
      CU_SHAREDMEM_CARVEOUT_DEFAULT;
  f->cache_config = CU_FUNC_CACHE_PREFER_NONE;
  *out = f;
  return CUDA_SUCCESS;
}

struct gp__func *gp__module_function_find_locked(struct gp__module *m,
                                                 const char *name) {
  struct gp__sym *e = symtab_find(&m->funcs, name, name_hash(name));
  return e != NULL ? container_of(e, struct gp__func, sym) : NULL;
}

CUresult gp__module_function_locked(struct gp__client *c,
                                    struct gp__module *m, const char *name,
                                    struct gp__func **out) {
  if (!gp__symbol_name_ok(name))
    return CUDA_ERROR_NOT_FOUND;
  struct gp__func *have = gp__module_function_find_locked(m, name);
  if (have != NULL) {
    *out = have;
    return CUDA_SUCCESS;
  }
  Gpupool__ModuleGetFunction msg = GPUPOOL__MODULE_GET_FUNCTION__INIT;
  msg.module = m->id;
  msg.name = (char *)name;
  msg.function = gp__new_id();
  ProtobufCMessage *reply;
  CUresult r = gp__call_locked(c, GP_MSG_MODULE_GET_FUNCTION, &msg.base,
                               NULL, 0, &reply);
  if (r != CUDA_SUCCESS)
    return r;
  struct gp__func *f = NULL;
  r = func_from_reply_locked(c, m, msg.function, name,
                             (const Gpupool__ModuleGetFunctionReply *)reply,
                             &f);
  protobuf_c_message_free_unpacked(reply, NULL);
  if (r != CUDA_SUCCESS)
    return r;
  /* If it cannot be kept, the server's id for it is simply never used; it
   * goes with the module. */
  if (gp__handles_add(&c->handles, &f->hdr) < 0) {
    func_free(f);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (symtab_add(&m->funcs, &f->sym) < 0) {
    gp__handles_remove(&c->handles, &f->hdr);
    func_free(f);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *out = f;
  return CUDA_SUCCESS;
}

static CUresult module_get_function(CUfunction *pf, CUmodule h,
                                    const char *name) {
  struct gp__client *c = gp__client();
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pf == NULL || name == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__module *m = find_module_locked(c, h);
  r = m == NULL ? CUDA_ERROR_INVALID_HANDLE
                : gp__module_function_locked(c, m, name, &f);
  if (r == CUDA_SUCCESS)
    *pf = (CUfunction)f;
  gp__unlock();
  return r;
}

GP_API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod,
                                    const char *name) {
  CUresult r = module_get_function(hfunc, hmod, name);
  GP_TRACE(r, "hfunc=%p, hmod=%p, name=\"%s\"", (void *)GP_OUT(r, hfunc),
           (void *)hmod, name ? name : "(null)");
  return r;
}

CUresult gp__module_kernels_locked(struct gp__client *c, struct gp__module *m,
                                   Gpupool__ModuleGetKernelsReply **out) {
  Gpupool__ModuleGetKernels msg = GPUPOOL__MODULE_GET_KERNELS__INIT;
  ProtobufCMessage *reply;
  msg.module = m->id;
  CUresult r = gp__call_locked(c, GP_MSG_MODULE_GET_KERNELS, &msg.base, NULL,
                               0, &reply);
  if (r != CUDA_SUCCESS)
    return r;
  Gpupool__ModuleGetKernelsReply *kr =
      (Gpupool__ModuleGetKernelsReply *)reply;
  for (size_t i = 0; i < kr->n_names; i++) {
    if (!gp__symbol_name_ok(kr->names[i])) {
      protobuf_c_message_free_unpacked(reply, NULL);
      return gp__lost_locked(c, GP_EPROTO,
                             "MODULE_GET_KERNELS (a name no kernel can have)");
    }
  }
  *out = kr;
  return CUDA_SUCCESS;
}

/* cuModuleGetFunctionCount (|fns| NULL) and cuModuleEnumerateFunctions:
 * the module's kernels, asked for each time (one round trip; the
 * functions then as cuModuleGetFunction makes them). */
static CUresult module_functions(unsigned *count, CUfunction *fns,
                                 unsigned max, CUmodule h) {
  struct gp__client *c = gp__client();
  Gpupool__ModuleGetKernelsReply *kr = NULL;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (count == NULL && fns == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__module *m = find_module_locked(c, h);
  if (m == NULL)
    r = CUDA_ERROR_INVALID_HANDLE;
  else
    r = gp__module_kernels_locked(c, m, &kr);
  if (r == CUDA_SUCCESS && count != NULL)
    *count = (unsigned)kr->n_names;
  for (size_t i = 0; r == CUDA_SUCCESS && fns != NULL && i < max &&
                     i < kr->n_names;
       i++) {
    struct gp__func *f;
    if ((r = gp__module_function_locked(c, m, kr->names[i], &f)) ==
        CUDA_SUCCESS)
      fns[i] = (CUfunction)f;
  }
  gp__unlock();
  if (kr != NULL)
    protobuf_c_message_free_unpacked(&kr->base, NULL);
  return r;
}

GP_API CUresult cuModuleGetFunctionCount(unsigned int *count, CUmodule mod) {
  CUresult r = module_functions(count, NULL, 0, mod);
  GP_TRACE(r, "count=%u, mod=%p", GP_OUT(r, count), (void *)mod);
  return r;
}

GP_API CUresult cuModuleEnumerateFunctions(CUfunction *functions,
                                           unsigned int numFunctions,
                                           CUmodule mod) {
  /* With |functions| NULL as well as the count, module_functions() says
   * CUDA_ERROR_INVALID_VALUE (after the readiness check). */
  CUresult r = module_functions(NULL, functions, numFunctions, mod);
  GP_TRACE(r, "functions=%p, numFunctions=%u, mod=%p", (void *)functions,
           numFunctions, (void *)mod);
  return r;
}

/* ---- Globals ------------------------------------------------------------------------ */

/* Enters global |g| of |m| in the device range table, so that copies to
 * and from it pass the local checks; it leaves with the module. A range
 * already inside a known one needs no entry; one that straddles a known
 * range means the server hands out an address twice, which ends the
 * connection (as for allocations, api_mem.c). */
static CUresult register_global_locked(struct gp__client *c,
                                       const struct gp__module *m,
                                       struct gp__global *g) {
  if (g->size == 0 || gp__ranges_covers(&c->dev_mem, g->dptr, g->size))
    return CUDA_SUCCESS;
  struct gp__range rg = {.base = g->dptr, .size = g->size, .ctx = m->ctx,
                         .flags = GP__RANGE_MODULE_GLOBAL};
  int rc = gp__ranges_add(&c->dev_mem, &rg);
  if (rc == GP_EINVAL)
    return gp__lost_locked(c, GP_EPROTO,
                           "MODULE_GET_GLOBAL (overlapping address)");
  if (rc < 0)
    return CUDA_ERROR_OUT_OF_MEMORY;
  g->registered = true;
  return CUDA_SUCCESS;
}

CUresult gp__module_global_locked(struct gp__client *c, struct gp__module *m,
                                  const char *name, uint64_t *dptr,
                                  uint64_t *bytes) {
  struct gp__global *g = NULL;
  CUresult r;

  if (!gp__symbol_name_ok(name))
    return CUDA_ERROR_NOT_FOUND;
  uint64_t hash = name_hash(name);
  struct gp__sym *e = symtab_find(&m->globals, name, hash);
  if (e != NULL) {
    g = container_of(e, struct gp__global, sym);
    goto out;
  }
  Gpupool__ModuleGetGlobal msg = GPUPOOL__MODULE_GET_GLOBAL__INIT;
  msg.module = m->id;
  msg.name = (char *)name;
  ProtobufCMessage *reply;
  r = gp__call_locked(c, GP_MSG_MODULE_GET_GLOBAL, &msg.base, NULL, 0,
                      &reply);
  if (r != CUDA_SUCCESS)
    return r;
  const Gpupool__ModuleGetGlobalReply *gr =
      (const Gpupool__ModuleGetGlobalReply *)reply;
  uint64_t p = gr->dptr, size = gr->size;
  protobuf_c_message_free_unpacked(reply, NULL);
  if (p + size < p)
    return gp__lost_locked(c, GP_EPROTO, "MODULE_GET_GLOBAL (bad range)");
  if ((g = calloc(1, sizeof(*g))) == NULL ||
      (g->sym.name = strdup(name)) == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto fail;
  }
  g->sym.hash = hash;
  g->dptr = p;
  g->size = size;
  if ((r = register_global_locked(c, m, g)) != CUDA_SUCCESS)
    goto fail;
  if (symtab_add(&m->globals, &g->sym) < 0) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto fail;
  }
out:
  *dptr = g->dptr;
  *bytes = g->size;
  return CUDA_SUCCESS;
fail:
  if (g != NULL) {
    if (g->registered)
      gp__ranges_remove(&c->dev_mem, g->dptr);
    free(g->sym.name);
    free(g);
  }
  return r;
}

static CUresult module_get_global(CUdeviceptr *dptr, size_t *bytes,
                                  CUmodule h, const char *name) {
  struct gp__client *c = gp__client();
  uint64_t p = 0, size = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  /* Either output may be NULL, not both. */
  if (name == NULL || (dptr == NULL && bytes == NULL))
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  struct gp__module *m = find_module_locked(c, h);
  r = m == NULL ? CUDA_ERROR_INVALID_HANDLE
                : gp__module_global_locked(c, m, name, &p, &size);
  gp__unlock();
  if (r == CUDA_SUCCESS) {
    if (dptr != NULL)
      *dptr = (CUdeviceptr)p;
    if (bytes != NULL)
      *bytes = (size_t)size;
  }
  return r;
}

GP_API CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes,
                                     CUmodule hmod, const char *name) {
  CUresult r = module_get_global(dptr, bytes, hmod, name);
  GP_TRACE(r, "dptr=0x%llx, bytes=%zu, hmod=%p, name=\"%s\"",
           (unsigned long long)GP_OUT(r, dptr), GP_OUT(r, bytes),
           (void *)hmod, name ? name : "(null)");
  return r;
}

/* ---- Function attributes ------------------------------------------------------------ */

/* Looks up |h| under the lock and runs |fn| on it, still under the lock.
 * |h| may be a CUkernel, which stands for its function in the current
 * context (gp__func_resolve_locked(); |api| names the entry point).
 * CUDA_ERROR_INVALID_HANDLE when |h| is neither. */
static CUresult with_func(CUfunction h,
                          CUresult (*fn)(struct gp__client *c,
                                         struct gp__func *f, void *arg),
                          void *arg, const char *api) {
  struct gp__client *c = gp__client();
  struct gp__func *f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  gp__lock();
  r = gp__func_resolve_locked(c, h, &f, api);
  if (r == CUDA_SUCCESS)
    r = fn(c, f, arg);
  gp__unlock();
  return r;
}

struct attr_args {
  CUfunction_attribute attr;
  int value;
  int *out;
};

static CUresult get_attr(struct gp__client *c, struct gp__func *f,
                         void *arg) {
  struct attr_args *a = arg;
  (void)c;
  *a->out = f->attr[a->attr];
  return CUDA_SUCCESS;
}

GP_API CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib,
                                   CUfunction hfunc) {
  struct attr_args a = {.attr = attrib, .out = pi};
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS) {
    if (pi == NULL || (unsigned)attrib >= (unsigned)CU_FUNC_ATTRIBUTE_MAX)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = with_func(hfunc, get_attr, &a, __func__);
  }
  GP_TRACE(r, "pi=%d, attrib=%d, hfunc=%p", GP_OUT(r, pi), (int)attrib,
           (void *)hfunc);
  return r;
}

CUresult gp__func_check_attr_locked(struct gp__client *c,
                                    const struct gp__func *f,
                                    CUfunction_attribute attr, int v) {
  switch (attr) {
  case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: {
    int smem = gp__dev_attr(f->mod->ctx,
                            CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
                            GP__DEFAULT_SHARED_PER_BLOCK);
    int optin = gp__dev_attr(
        f->mod->ctx, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        smem);
    int stat = f->attr[CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES];
    if (v < 0 || v > optin - stat)
      return CUDA_ERROR_INVALID_VALUE;
    break;
  }
  case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
    if (v < CU_SHAREDMEM_CARVEOUT_DEFAULT || v > CU_SHAREDMEM_CARVEOUT_MAX_SHARED)
      return CUDA_ERROR_INVALID_VALUE;
    break;
  case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
  case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
  case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
    /* Whether the three agree is checked at launch time. */
    if (v < 0)
      return CUDA_ERROR_INVALID_VALUE;
    break;
  case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
    if (v != 0 && v != 1)
      return CUDA_ERROR_INVALID_VALUE;
    break;
  case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
    if (v < CU_CLUSTER_SCHEDULING_POLICY_DEFAULT ||
        v > CU_CLUSTER_SCHEDULING_POLICY_LOAD_BALANCING)
      return CUDA_ERROR_INVALID_VALUE;
    break;
  default:
    return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

/* The settable attributes, checked as the driver checks them; the others
 * are read-only (CUDA_ERROR_INVALID_VALUE). A value set here outranks one
 * set for the kernel with cuKernelSetAttribute, whichever came first. */
static CUresult set_attr(struct gp__client *c, struct gp__func *f,
                         void *arg) {
  struct attr_args *a = arg;
  CUresult r = gp__func_check_attr_locked(c, f, a->attr, a->value);
  if (r != CUDA_SUCCESS)
    return r;
  f->attr[a->attr] = a->value;
  f->attr_set |= 1u << a->attr;
  return CUDA_SUCCESS;
}

GP_API CUresult cuFuncSetAttribute(CUfunction hfunc,
                                   CUfunction_attribute attrib, int value) {
  struct attr_args a = {.attr = attrib, .value = value};
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS) {
    if ((unsigned)attrib >= (unsigned)CU_FUNC_ATTRIBUTE_MAX)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = with_func(hfunc, set_attr, &a, __func__);
  }
  GP_TRACE(r, "hfunc=%p, attrib=%d, value=%d", (void *)hfunc, (int)attrib,
           value);
  return r;
}

static CUresult set_cache_config(struct gp__client *c, struct gp__func *f,
                                 void *arg) {
  (void)c;
  f->cache_config = *(CUfunc_cache *)arg;
  f->cache_set = true;
  return CUDA_SUCCESS;
}

/* A preference only, kept and otherwise ignored: the server's device picks
 * its own split of L1 and shared memory. */
GP_API CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config) {
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS) {
    if ((unsigned)config > (unsigned)CU_FUNC_CACHE_PREFER_EQUAL)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = with_func(hfunc, set_cache_config, &config, __func__);
  }
  GP_TRACE(r, "hfunc=%p, config=%d", (void *)hfunc, (int)config);
  return r;
}

struct param_args {
  size_t index;
  size_t *offset, *size;
};

static CUresult get_param_info(struct gp__client *c, struct gp__func *f,
                               void *arg) {
  struct param_args *a = arg;
  (void)c;
  if (a->index >= f->nparams)
    return CUDA_ERROR_INVALID_VALUE;
  *a->offset = f->params[a->index].offset;
  if (a->size != NULL)
    *a->size = f->params[a->index].size;
  return CUDA_SUCCESS;
}

GP_API CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex,
                                   size_t *paramOffset, size_t *paramSize) {
  struct param_args a = {.index = paramIndex, .offset = paramOffset,
                         .size = paramSize};
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS) {
    if (paramOffset == NULL)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      r = with_func(func, get_param_info, &a, __func__);
  }
  GP_TRACE(r, "func=%p, paramIndex=%zu, paramOffset=%zu, paramSize=%zu",
           (void *)func, paramIndex, GP_OUT(r, paramOffset),
           GP_OUT(r, paramSize));
  return r;
}

static CUresult get_module(struct gp__client *c, struct gp__func *f,
                           void *arg) {
  (void)c;
  *(CUmodule *)arg = (CUmodule)f->mod;
  return CUDA_SUCCESS;
}

GP_API CUresult cuFuncGetModule(CUmodule *hmod, CUfunction hfunc) {
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS)
    r = hmod == NULL ? CUDA_ERROR_INVALID_VALUE
                     : with_func(hfunc, get_module, hmod, __func__);
  GP_TRACE(r, "hmod=%p, hfunc=%p", (void *)GP_OUT(r, hmod), (void *)hfunc);
  return r;
}

/* The name stays valid while the function does (until its module is
 * unloaded), as documented. */
static CUresult get_name(struct gp__client *c, struct gp__func *f,
                         void *arg) {
  (void)c;
  *(const char **)arg = f->sym.name;
  return CUDA_SUCCESS;
}

/* A CUkernel's name needs no context. */
static CUresult func_get_name(const char **name, CUfunction hfunc) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (name == NULL || hfunc == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  gp__lock();
  const char *kn = gp__kernel_name_locked(gp__client(), (CUkernel)hfunc);
  gp__unlock();
  if (kn != NULL) {
    *name = kn;
    return CUDA_SUCCESS;
  }
  return with_func(hfunc, get_name, name, "cuFuncGetName");
}

GP_API CUresult cuFuncGetName(const char **name, CUfunction hfunc) {
  CUresult r = func_get_name(name, hfunc);
  GP_TRACE(r, "name=\"%s\", hfunc=%p",
           r == CUDA_SUCCESS ? *name : "", (void *)hfunc);
  return r;
}

static CUresult nothing(struct gp__client *c, struct gp__func *f,
                        void *arg) {
  (void)c;
  (void)f;
  (void)arg;
  return CUDA_SUCCESS;
}

/* A module is whole on the server once loaded, whatever the loading mode,
 * so every function is loaded (a CUkernel is loaded into the current
 * context by the lookup). */
GP_API CUresult cuFuncIsLoaded(CUfunctionLoadingState *state,
                               CUfunction function) {
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS)
    r = state == NULL ? CUDA_ERROR_INVALID_VALUE
                      : with_func(function, nothing, NULL, __func__);
  if (r == CUDA_SUCCESS)
    *state = CU_FUNCTION_LOADING_STATE_LOADED;
  GP_TRACE(r, "state=%d, function=%p", (int)GP_OUT(r, state),
           (void *)function);
  return r;
}

GP_API CUresult cuFuncLoad(CUfunction function) {
  CUresult r = gp__ready();
  if (r == CUDA_SUCCESS)
    r = with_func(function, nothing, NULL, __func__);
  GP_TRACE(r, "function=%p", (void *)function);
  return r;
}
