/* Private header of the emu backend (server/backend/emu/). */
#ifndef GP_SERVER_EMU_EMU_H
#define GP_SERVER_EMU_EMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "arena.h"
#include "backend.h"
#include "idmap.h"
#include "ptx.h"

/* The driver version the emu backend reports (cuDriverGetVersion): CUDA
 * 13.0. cudart refuses to run on a driver older than itself, and the
 * toolkit we build against is 13.0. */
#define EMU_DRIVER_VERSION 13000

/* Devices an emu backend exposes. */
#define EMU_DEVICE_COUNT 1

#define EMU_DEVICE_NAME "gpupool emulated device"

/* Bounds on live objects per session, each beyond: out of memory. */
#define EMU_MAX_CTXS 65536u
#define EMU_MAX_STREAMS 65536u
#define EMU_MAX_EVENTS 65536u
#define EMU_MAX_MODULES 65536u
#define EMU_MAX_FUNCS (1u << 20)

/* Device printf output kept for the client: CUDA's default printf FIFO
 * size (cudaLimitPrintfFifoSize). Output beyond it is dropped and counted. */
#define EMU_OUTPUT_MAX (1u << 20)

struct emu_stream;
struct emu_event;
struct emu_module;
struct emu_func;

/* A context. Its allocations (module variables included) are linked
 * through |mem|, so the owner an arena lookup reports leads back here
 * (emu_owner_ctx()). */
struct emu_ctx {
  uint64_t id;
  int device;
  unsigned flags;
  bool primary;
  int sticky;                     /* 0, or the CUresult of a kernel fault
                                     that every later operation in the
                                     context returns */
  struct emu_owner mem;           /* its allocations */
  struct emu_stream *streams;     /* list through prev/next */
  struct emu_event *events;
  struct emu_module *modules;
};

struct emu_stream {
  uint64_t id;
  struct emu_ctx *ctx;
  unsigned flags;
  int priority;
  struct emu_stream *prev, *next;
};

struct emu_event {
  uint64_t id;
  struct emu_ctx *ctx;
  unsigned flags;
  bool recorded;
  struct timespec when;           /* CLOCK_MONOTONIC at the last record */
  struct emu_event *prev, *next;
};

/* A loaded module: the PTX engine's module, its functions (ids given by
 * module_get_function) and the context whose arena owner holds its
 * variables. */
struct emu_module {
  uint64_t id;
  struct gp_backend *b;           /* for the engine's global-ops callbacks */
  struct emu_ctx *ctx;
  struct ptx_module *ptx;
  struct emu_func *funcs;         /* list through prev/next */
  unsigned nkernels;              /* for the log */
  uint64_t global_bytes;          /* arena bytes of its variables */
  struct emu_module *prev, *next; /* in ctx->modules */
};

/* A function id: one kernel of a module. */
struct emu_func {
  uint64_t id;
  struct emu_module *mod;
  const struct ptx_kernel *k;
  struct emu_func *prev, *next;   /* in mod->funcs */
};

/* Device printf output not yet handed to the client. Kernel threads append
 * under |lock|; the worker's thread reads and clears it between
 * operations. */
struct emu_output {
  pthread_mutex_t lock;
  char *buf;
  size_t len, cap;                /* cap grows up to EMU_OUTPUT_MAX */
  uint64_t dropped;               /* bytes lost since the last consume */
};

struct gp_backend {
  struct gp_backend_config cfg;
  int sm_count;
  int max_shared_optin;           /* static + dynamic shared per block */
  struct emu_arena arena;
  struct gp__idmap ctxs, streams, events, modules, funcs;
  struct emu_ctx *primary[EMU_DEVICE_COUNT];
  struct emu_output out;
};

/* ---- emu.c ---------------------------------------------------------------- */

/* Whether work may run in context |c|: CUDA_SUCCESS,
 * CUDA_ERROR_INVALID_CONTEXT for NULL, or the context's sticky error. */
int emu_ctx_state(const struct emu_ctx *c);

/* The context that owns allocation owner |o| (every owner is the |mem| of
 * a context). */
struct emu_ctx *emu_owner_ctx(struct emu_owner *o);

/* ---- module.c: modules, functions, module variables ----------------------- */

/* The backend operations of the same names (see backend.h). */
int emu_module_load(struct gp_backend *b, uint64_t ctx, uint64_t module,
                    const void *image, size_t size, char *msg,
                    size_t msglen);
int emu_module_unload(struct gp_backend *b, uint64_t module);
int emu_module_get_function(struct gp_backend *b, uint64_t module,
                            const char *name, uint64_t function,
                            struct gp_func_desc *out);
int emu_module_get_global(struct gp_backend *b, uint64_t module,
                          const char *name, uint64_t *dptr, uint64_t *size);
int emu_module_global_bytes(struct gp_backend *b, uint64_t module,
                            uint64_t *bytes);
int emu_module_kernel(struct gp_backend *b, uint64_t module, uint32_t index,
                      const char **name);

/* The CUresult for PTX engine status |status| (PTX_OK, PTX_E_*), as ptx.h
 * documents each. */
int emu_ptx_result(int status);

/* Unloads every module of |c| (their functions and variables with them);
 * called when the context is destroyed. Never fails. */
void emu_ctx_unload_modules(struct gp_backend *b, struct emu_ctx *c);

/* ---- launch.c: kernel launches and device printf -------------------------- */

/* The backend operation (see backend.h). */
int emu_launch(struct gp_backend *b, const struct gp_launch_desc *l);

/* Sets up and frees the printf buffer. init returns CUDA_SUCCESS or
 * CUDA_ERROR_OUT_OF_MEMORY; free only what init set up. */
int emu_output_init(struct emu_output *o);
void emu_output_free(struct emu_output *o);

/* The backend operations output_peek and output_consumed. */
void emu_output_peek(struct gp_backend *b, const void **data, size_t *len,
                     uint64_t *dropped);
void emu_output_consumed(struct gp_backend *b);

/* Fills |out| with the emulated device's name, UUID (a hash of |seed|, the
 * server's name, or of nothing when it is NULL), |total_mem| and the value
 * of every CUdevice_attribute of the toolkit's cuda.h, with |sm_count|
 * multiprocessors. Never fails. */
void emu_device_describe(int sm_count, uint64_t total_mem, const char *seed,
                         struct gp_device_desc *out);

/* The first CUdevice_attribute in [1, CU_DEVICE_ATTRIBUTE_MAX) that the
 * table in device.c does not define, or 0 when it defines them all (a unit
 * test keeps the table complete when cuda.h grows). */
int emu_device_missing_attr(void);

#endif
