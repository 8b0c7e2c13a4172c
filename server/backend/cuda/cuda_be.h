/* Private header of the cuda backend (server/backend/cuda/): a session's
 * calls run on a real CUDA driver, dlopen'd in the worker (never linked:
 * only the toolkit's headers are used at build time). See docs/server.md,
 * "The cuda backend".
 *
 * driver.c opens the library and resolves every entry point through
 * cuGetProcAddress at the version of the PFN typedef it is called through;
 * image.c splits a module image into fatbins and rebuilds a fatbin wrapper;
 * output.c captures the worker's stdout (device printf); copy.c pipelines
 * bulk copies through pinned staging chunks; cuda.c is the ops table.
 *
 * Everything here runs on the worker's one thread, except output.c's
 * reader thread, which touches only struct cub_output under its mutex.
 */
#ifndef GP_SERVER_CUDA_BE_H
#define GP_SERVER_CUDA_BE_H

#include <cuda.h>
#include <cudaTypedefs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "idmap.h"

/* ---- driver.c: the entry points -------------------------------------------
 *
 * X(name, version, essential): |name| is requested from cuGetProcAddress at
 * |version|, the version in the name of the PFN_name_vVERSION typedef the
 * backend calls it through, so the ABI is that typedef's whatever newer
 * variants the driver has. An essential function missing makes open fail;
 * another one missing is NULL, and the operation that needs it answers
 * CUDA_ERROR_NOT_SUPPORTED. */
#define CUB_DRIVER_FUNCS(X)                         \
  X(cuInit, 2000, true)                             \
  X(cuDeviceGetCount, 2000, true)                   \
  X(cuDeviceGet, 2000, true)                        \
  X(cuDeviceGetName, 2000, true)                    \
  X(cuDeviceGetUuid, 11040, false)                  \
  X(cuDeviceTotalMem, 3020, true)                   \
  X(cuDeviceGetAttribute, 2000, true)               \
  X(cuCtxCreate, 3020, true)                        \
  X(cuCtxDestroy, 4000, true)                       \
  X(cuCtxSetCurrent, 4000, true)                    \
  X(cuCtxSynchronize, 2000, true)                   \
  X(cuDevicePrimaryCtxRetain, 7000, false)          \
  X(cuDevicePrimaryCtxRelease, 11000, false)        \
  X(cuDevicePrimaryCtxSetFlags, 11000, false)       \
  X(cuMemAlloc, 3020, true)                         \
  X(cuMemAllocPitch, 3020, false)                   \
  X(cuMemFree, 3020, true)                          \
  X(cuMemGetInfo, 3020, false)                      \
  X(cuMemGetAddressRange, 3020, true)               \
  X(cuPointerGetAttribute, 4000, false)             \
  X(cuMemHostAlloc, 2020, false)                    \
  X(cuMemFreeHost, 2000, false)                     \
  X(cuMemcpyHtoDAsync, 3020, true)                  \
  X(cuMemcpyDtoHAsync, 3020, true)                  \
  X(cuMemcpyDtoDAsync, 3020, true)                  \
  X(cuMemsetD8Async, 3020, true)                    \
  X(cuMemsetD16Async, 3020, true)                   \
  X(cuMemsetD32Async, 3020, true)                   \
  X(cuStreamCreateWithPriority, 5050, true)         \
  X(cuStreamDestroy, 4000, true)                    \
  X(cuStreamSynchronize, 2000, true)                \
  X(cuStreamQuery, 2000, true)                      \
  X(cuStreamWaitEvent, 3020, true)                  \
  X(cuEventCreate, 2000, true)                      \
  X(cuEventRecord, 2000, true)                      \
  X(cuEventQuery, 2000, true)                       \
  X(cuEventSynchronize, 2000, true)                 \
  X(cuEventElapsedTime, 2000, false)                \
  X(cuEventDestroy, 4000, true)                     \
  X(cuModuleLoadData, 2000, true)                   \
  X(cuModuleLoadDataEx, 2010, true)                 \
  X(cuModuleUnload, 2000, true)                     \
  X(cuModuleGetFunction, 2000, true)                \
  X(cuModuleGetGlobal, 3020, false)                 \
  X(cuModuleGetFunctionCount, 12040, false)         \
  X(cuModuleEnumerateFunctions, 12040, false)       \
  X(cuFuncGetName, 12030, false)                    \
  X(cuFuncGetParamInfo, 12040, false)               \
  X(cuFuncGetAttribute, 2020, true)                 \
  X(cuFuncSetAttribute, 9000, false)                \
  X(cuLaunchKernel, 4000, true)                     \
  X(cuGetErrorName, 6000, false)

struct cub_driver {
  void *lib;                /* dlopen handle */
  int version;              /* cuDriverGetVersion */
  /* Members are named after the functions (a cuda.h macro such as
   * cuMemAlloc -> cuMemAlloc_v2 renames the member consistently). */
#define CUB_MEMBER(name, ver, essential) PFN_##name##_v##ver name;
  CUB_DRIVER_FUNCS(CUB_MEMBER)
#undef CUB_MEMBER
};

/* One row of the symbol table, as driver.c resolves it. */
struct cub_symbol {
  const char *name;
  int version;
  bool essential;
  size_t offset;            /* of the pointer in struct cub_driver */
};

/* The symbol table, |*n| rows. */
const struct cub_symbol *cub_symbols(size_t *n);

/* Opens |path| (NULL: "libcuda.so.1"), resolves the table and calls
 * cuInit(0). Returns CUDA_SUCCESS, or an error with one line in |why|
 * (CUDA_ERROR_NOT_FOUND when the library or cuGetProcAddress is missing,
 * CUDA_ERROR_NOT_SUPPORTED when an essential entry point is, or cuInit's
 * error). Closes the library itself on failure. */
int cub_driver_open(struct cub_driver *d, const char *path, char *why,
                    size_t whylen);

/* Resolves the table through |get_proc| (a cuGetProcAddress_v2) for a
 * driver of version |version|: rows newer than |version| or unknown to it
 * are NULL. Returns the number of essential rows missing and names the
 * first in |*missing|. For driver.c and the unit tests. */
int cub_driver_resolve(struct cub_driver *d, PFN_cuGetProcAddress_v12000
                       get_proc, int version, const char **missing);

/* Closes the library (its handles die with the process anyway). */
void cub_driver_close(struct cub_driver *d);

/* The name of CUresult |r| for logs ("CUDA_ERROR_INVALID_VALUE"). */
const char *cub_error_name(const struct cub_driver *d, int r);

/* ---- image.c: module images ----------------------------------------------- */

#define CUB_FATBIN_MAGIC 0xBA55ED50u
#define CUB_WRAPPER_MAGIC 0x466243B1u
/* The most fatbins one image may hold (the client's limit is lower). */
#define CUB_MAX_FATBINS 4096

enum cub_image_kind {
  CUB_IMAGE_PTX,            /* text; may lack its NUL */
  CUB_IMAGE_ELF,            /* a cubin */
  CUB_IMAGE_FATBINS,        /* one fatbin or several, 8-byte aligned */
};

/* What cub_image_split found: |n| fatbins at |offsets| (into the image)
 * of |sizes| bytes, for CUB_IMAGE_FATBINS. */
struct cub_image {
  enum cub_image_kind kind;
  size_t n;
  size_t *offsets;          /* the caller frees (cub_image_free) */
  size_t *sizes;
};

/* Classifies |image| (|size| bytes) and, for fatbins, finds each one's
 * extent, checking that every header lies inside the image and that the
 * fatbins fill it (up to fewer than 8 bytes of zero padding). Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_IMAGE with a reason in |why|, or
 * CUDA_ERROR_OUT_OF_MEMORY. */
int cub_image_split(const uint8_t *image, size_t size, struct cub_image *out,
                    char *why, size_t whylen);
void cub_image_free(struct cub_image *im);

/* A version-2 fatbin wrapper for the fatbins of |im| in |image|: 24 bytes
 * (magic, version 2, pointer to the first fatbin, pointer to the
 * NULL-terminated array of pointers to the others) followed by the array.
 * |im| must hold at least 2 fatbins. Returns the wrapper (the caller frees
 * it; it points into |image|, which must outlive its use) or NULL when out
 * of memory. */
void *cub_wrapper_build(const uint8_t *image, const struct cub_image *im);

/* ---- output.c: device printf ----------------------------------------------- */

/* Bytes of printf output held for the client at most; more is counted as
 * dropped. */
#define CUB_OUTPUT_MAX (1u << 20)

struct cub_output {
  pthread_mutex_t mu;
  pthread_t reader;
  bool reader_started;
  int stop;                 /* atomic: the reader ends */
  int rfd;                  /* read end of the pipe on fd 1; -1: none */
  int saved_stdout;         /* fd 1 before (above 2), restored on free;
                               -1: fd 1 was closed, and is closed again */
  bool own_stdout;          /* fd 1 is the pipe's write end */
  char *buf;                /* CUB_OUTPUT_MAX bytes */
  size_t len;
  uint64_t dropped;
  /* What output_peek handed out, copied so the reader may go on. */
  char *peek;
  size_t peek_len;
  uint64_t peek_dropped;
};

/* Points fd 1 at a pipe drained by a reader thread (both ends of the pipe
 * above fd 2, whichever of fds 0-2 are closed). Returns CUDA_SUCCESS or
 * CUDA_ERROR_OPERATING_SYSTEM / CUDA_ERROR_OUT_OF_MEMORY. */
int cub_output_init(struct cub_output *o);
/* Stops the reader and puts fd 1 back as it was (closed again if it was
 * closed). Safe on a failed init. */
void cub_output_free(struct cub_output *o);
void cub_output_peek(struct cub_output *o, const void **data, size_t *len,
                     uint64_t *dropped);
void cub_output_consumed(struct cub_output *o);

/* ---- the session ----------------------------------------------------------- */

#define CUB_MAX_CTXS 65536
/* The most live allocations the backend tracks for --scrub; one more is
 * CUDA_ERROR_OUT_OF_MEMORY (the worker's own limit is the same). */
#define CUB_MAX_ALLOCS (1u << 20)
#define CUB_MAX_STREAMS 65536
#define CUB_MAX_EVENTS 65536
#define CUB_MAX_MODULES 65536
#define CUB_MAX_FUNCS (1u << 20)
#define CUB_MAX_DEVICES 64

/* Pinned staging for pipelined copies: CUB_STAGE_CHUNKS chunks of
 * CUB_STAGE_CHUNK bytes (a whole GP_COPY_CHUNK request), allocated on the
 * first bulk copy. */
#define CUB_STAGE_CHUNKS 4
#define CUB_STAGE_CHUNK (4u << 20)

struct cub_ctx;

struct cub_stream {
  uint64_t id;
  CUstream h;
  struct cub_ctx *ctx;
  struct cub_stream *prev, *next;
};

struct cub_event {
  uint64_t id;
  CUevent h;
  struct cub_ctx *ctx;
  struct cub_event *prev, *next;
};

struct cub_func {
  uint64_t id;
  CUfunction h;
  struct cub_module *mod;
  uint32_t nparams;
  uint32_t params_size;
  struct gp_kernel_param *params;   /* nparams */
  int dyn_shared_max;       /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
                               as the backend last set or read it */
  struct cub_func *prev, *next;
};

struct cub_module {
  uint64_t id;
  CUmodule h;
  struct cub_ctx *ctx;
  struct cub_func *funcs;
  char **names;             /* kernel names, cached by module_kernel */
  unsigned nnames;
  bool names_known;
  struct cub_module *prev, *next;
};

struct cub_ctx {
  uint64_t id;
  CUcontext h;
  int device;
  bool primary;
  struct cub_stream *streams;
  struct cub_event *events;
  struct cub_module *modules;
};

struct cub_chunk {
  void *host;               /* pinned (portable), CUB_STAGE_CHUNK bytes */
  CUevent done;             /* recorded after the chunk's copy, in
                               stage_ev_ctx */
};

struct gp_backend {
  struct gp_backend_config cfg;
  struct cub_driver drv;
  struct cub_output out;
  bool out_ready;
  int ndev;
  CUdevice devs[CUB_MAX_DEVICES];
  struct cub_ctx *primary[CUB_MAX_DEVICES];
  struct gp__idmap ctxs, streams, events, modules, funcs;
  struct gp__idmap allocs;  /* dptr -> struct cub_alloc, for --scrub */
  CUcontext current;        /* what the backend last made current */
  struct cub_chunk stage[CUB_STAGE_CHUNKS];
  CUcontext stage_host_ctx; /* the context that allocated the pinned chunks
                               (they serve all; they die with it) */
  CUcontext stage_ev_ctx;   /* the context the chunks' events belong to */
  bool stage_warned;        /* a failed pinned allocation was logged */
  void *plain;              /* CUB_STAGE_CHUNKS * CUB_STAGE_CHUNK bytes, for
                               copies without pinned chunks; lazily */
};

/* A live allocation (cuMemAlloc, cuMemAllocPitch), for --scrub. */
struct cub_alloc {
  uint64_t size;
  CUcontext h;              /* the context it was made in */
};

/* Makes |h| current (if it is not already). Returns the driver's result. */
int cub_make_current(struct gp_backend *b, CUcontext h);

/* The context to run an operation that names no context in (a copy on
 * the default stream, a free): the current one if it is still live, else
 * any live context. NULL when the session has none. */
struct cub_ctx *cub_any_ctx(struct gp_backend *b);

/* The stream handle for |stream| (0: the legacy default stream) with its
 * context made current: the stream's, for 0 cub_any_ctx()'s. Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_HANDLE for an unknown id. */
int cub_stream_enter(struct gp_backend *b, uint64_t stream, CUstream *out);

/* As cub_stream_enter for a copy or memset touching device addresses
 * |ptr| and |ptr2| (0: none). The protocol's copies name no context, so
 * for stream 0 the context is the one owning |ptr| (else |ptr2|) as
 * cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_CONTEXT) says, if it is one
 * of the session's: its legacy stream is ordered after that context's
 * work. Without an answer, cub_any_ctx()'s, as cub_stream_enter. */
int cub_stream_enter_ptr(struct gp_backend *b, uint64_t stream, uint64_t ptr,
                         uint64_t ptr2, CUstream *out);

/* ---- copy.c: pipelined bulk copies ----------------------------------------- */

int cub_memcpy_htod_pipe(struct gp_backend *b, uint64_t dst, uint64_t size,
                         uint64_t stream, gp_copy_fill_fn fill, void *arg);
int cub_memcpy_dtoh_pipe(struct gp_backend *b, uint64_t src, uint64_t size,
                         uint64_t stream, gp_copy_drain_fn drain, void *arg);
/* Before context |h| is destroyed: forgets the events that belong to it
 * (they die with it; destroying them after a fault would only earn its
 * sticky error) and frees the pinned chunks if |h| allocated them. */
void cub_stage_ctx_end(struct gp_backend *b, CUcontext h);
/* Frees the staging chunks and buffer (in close). */
void cub_stage_free(struct gp_backend *b);

#endif
