/* The backend interface: one table of operations that executes a session's
 * calls on a device. `emu` (server/backend/emu/) runs on the CPU; `cuda`
 * (server/backend/cuda/) runs on a real CUDA driver it dlopens (or on
 * gpupool's own client library: a relay to another server).
 *
 * One backend instance serves one session inside that session's worker
 * process, so operations are called from one thread at a time. Every
 * operation returns a CUresult (0 is CUDA_SUCCESS) and validates every
 * handle, pointer range and size it is given against the session's own
 * state: a client is untrusted, and a bad argument is the error the real
 * driver would return, never a crash.
 *
 * Handles (contexts, streams, events) are the client-chosen 64-bit ids of
 * the protocol; the backend keeps the maps. Stream id 0 is the default
 * stream of the context the stream operation names through its object.
 */
#ifndef GP_SERVER_BACKEND_H
#define GP_SERVER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_DEVICE_NAME_MAX 256
#define GP_DEVICE_MAX_ATTRS 256

struct gp_backend; /* opaque, per backend */

struct gp_backend_config {
  uint64_t emu_memory;      /* emu: arena bytes per session */
  int emu_sm_count;         /* emu: 0 = number of host cores */
  const char *cuda_lib;     /* cuda: the driver library to dlopen; NULL:
                               "libcuda.so.1" */
  const char *emu_uuid_seed; /* emu: folded into the device's UUID (the
                               server's --name), so that the servers of a
                               pool show different UUIDs; NULL: none */
  int emu_shared_fd;        /* emu: > 0: device memory is the server-wide
                               shared mapping on this fd
                               (--emu-shared-memory, emu/shared.h);
                               otherwise a private arena */
  bool scrub_free;          /* --scrub: zero device memory as it is freed
                               during the session too (emu shared memory:
                               each block; cuda: cuMemFree and context
                               destruction), so another session never gets
                               what this one freed */
};

struct gp_device_attr {
  int attr;                 /* CUdevice_attribute */
  int value;
};

struct gp_device_desc {
  char name[GP_DEVICE_NAME_MAX];
  uint8_t uuid[16];
  uint64_t total_mem;
  int nattrs;
  struct gp_device_attr attrs[GP_DEVICE_MAX_ATTRS];
};

/* The most parameters a kernel may have, and the most bytes of packed
 * parameters a launch may carry (CUDA 12.1 and later on Volta and newer:
 * 32764). */
#define GP_MAX_KERNEL_PARAMS 4096
#define GP_MAX_PARAM_BYTES 32764

/* Module and function names longer than this are refused. */
#define GP_MAX_SYMBOL_NAME 4096

struct gp_kernel_param {
  uint32_t offset;          /* in the packed parameter buffer */
  uint32_t size;            /* bytes */
};

/* What module_get_function reports about a kernel: its parameter layout
 * (as cuFuncGetParamInfo) and its cuFuncGetAttribute values. */
struct gp_func_desc {
  uint32_t nparams;
  struct gp_kernel_param params[GP_MAX_KERNEL_PARAMS];
  uint32_t params_size;     /* end of the last parameter */
  int max_threads_per_block;
  int shared_size_bytes;    /* static shared memory */
  int const_size_bytes;
  int local_size_bytes;
  int num_regs;
  int ptx_version;          /* e.g. 90 for PTX ISA 9.0 */
  int binary_version;       /* e.g. 75 */
};

/* One kernel launch (cuLaunchKernel). */
struct gp_launch_desc {
  uint64_t ctx;             /* the calling context */
  uint64_t function;        /* id given to module_get_function */
  uint64_t stream;          /* 0: the context's default stream */
  uint32_t grid[3];
  uint32_t block[3];
  uint32_t shared_mem;      /* dynamic shared memory bytes */
  const void *params;       /* packed as the function's layout says */
  size_t params_size;
  const int *cancel;        /* set (atomically) by the worker when the
                               client has gone: stop the kernel soon */
};

/* Pipelined bulk copies (memcpy_htod_pipe, memcpy_dtoh_pipe): the backend
 * moves the data through its own staging buffers and calls back the
 * worker, which reads the bytes from the socket or writes them to it.
 *
 * A fill callback puts the next |len| bytes of the copy's source into
 * |buf|; with |buf| NULL it reads and drops them. A drain callback sends
 * the next |len| bytes of the copy's data from |buf|. Both return 0 or a
 * negative GP_E* code when the connection failed, which the backend
 * returns at once (the session is over). */
typedef int (*gp_copy_fill_fn)(void *arg, void *buf, size_t len);
typedef int (*gp_copy_drain_fn)(void *arg, const void *buf, size_t len);

/* Every operation is required, except mem_host_view, memcpy_htod_pipe,
 * memcpy_dtoh_pipe, module_kernel and module_global_bytes. */
struct gp_backend_ops {
  const char *name;

  /* Opens a backend for one session; |*out| is freed by close. Returns
   * CUDA_SUCCESS or an error (e.g. CUDA_ERROR_OUT_OF_MEMORY). */
  int (*open)(const struct gp_backend_config *cfg, struct gp_backend **out);
  /* Frees everything the session still holds, then the backend. */
  void (*close)(struct gp_backend *b);
  /* --scrub (docs/security.md): zeroes every byte of device memory the
   * session still holds (its live allocations and module variables), and
   * waits until the zeroing is complete, so that nothing the session
   * leaves behind is readable by the next one. Sets |*bytes| to the bytes
   * zeroed. Called once, before close, on every way out of the worker
   * that can still run code. Returns a CUresult: an error means some
   * memory may not have been zeroed. */
  int (*scrub)(struct gp_backend *b, uint64_t *bytes);

  int (*driver_version)(struct gp_backend *b, int *version);
  int (*device_count)(struct gp_backend *b, int *count);
  int (*device_describe)(struct gp_backend *b, int ordinal,
                         struct gp_device_desc *out);

  int (*ctx_create)(struct gp_backend *b, uint64_t ctx, int device,
                    unsigned flags);
  /* Destroys the context and everything created in it (memory, streams,
   * events). */
  int (*ctx_destroy)(struct gp_backend *b, uint64_t ctx);
  int (*ctx_synchronize)(struct gp_backend *b, uint64_t ctx);
  /* The primary context of |device| under id |ctx| (cuDevicePrimaryCtxRetain
   * when the client's count goes from 0 to 1). A device has at most one
   * live primary context: a second retain is CUDA_ERROR_INVALID_VALUE.
   * ctx_destroy refuses a primary context (CUDA_ERROR_INVALID_CONTEXT). */
  int (*primary_ctx_retain)(struct gp_backend *b, uint64_t ctx, int device,
                            unsigned flags);
  /* Destroys primary context |ctx| like ctx_destroy; a context that is not
   * primary is CUDA_ERROR_INVALID_CONTEXT. */
  int (*primary_ctx_release)(struct gp_backend *b, uint64_t ctx);

  int (*mem_alloc)(struct gp_backend *b, uint64_t ctx, uint64_t size,
                   uint64_t *dptr);
  int (*mem_alloc_pitch)(struct gp_backend *b, uint64_t ctx, uint64_t width,
                         uint64_t height, unsigned element_size,
                         uint64_t *dptr, uint64_t *pitch);
  int (*mem_free)(struct gp_backend *b, uint64_t dptr);
  int (*mem_get_info)(struct gp_backend *b, uint64_t ctx, uint64_t *free_b,
                      uint64_t *total);
  int (*mem_get_address_range)(struct gp_backend *b, uint64_t dptr,
                               uint64_t *base, uint64_t *size);

  /* Direct access for bulk copies: if [dptr, dptr+size) lies inside one live
   * allocation and the backend's memory is host-addressable (emu), sets
   * |*host| to the host address of |dptr| and returns CUDA_SUCCESS, so the
   * worker reads or writes the socket straight from/to device memory. The
   * copy is one on |stream|, which is validated as memcpy_* would (unknown:
   * CUDA_ERROR_INVALID_HANDLE), and whose earlier work is complete when this
   * returns. Returns CUDA_ERROR_INVALID_VALUE for a bad range, and
   * CUDA_ERROR_NOT_SUPPORTED when the memory is not host-addressable (the
   * worker then stages through memcpy_htod/memcpy_dtoh). May be NULL. */
  int (*mem_host_view)(struct gp_backend *b, uint64_t dptr, uint64_t size,
                       uint64_t stream, void **host);
  int (*memcpy_htod)(struct gp_backend *b, uint64_t dst, const void *src,
                     uint64_t size, uint64_t stream);
  int (*memcpy_dtoh)(struct gp_backend *b, void *dst, uint64_t src,
                     uint64_t size, uint64_t stream);
  int (*memcpy_dtod)(struct gp_backend *b, uint64_t dst, uint64_t src,
                     uint64_t size, uint64_t stream);
  int (*memset)(struct gp_backend *b, uint64_t dst, uint32_t value,
                unsigned element_size, uint64_t count, uint64_t stream);

  /* A host-to-device copy of |size| (> 0) bytes to |dst| on |stream|
   * whose source the worker reads from the socket: the backend calls
   * |fill| for consecutive pieces of the source until all |size| bytes
   * have been taken, overlapping the reading of one piece with the copy of
   * the previous one, and returns when the copy is complete. It takes all
   * |size| bytes whatever happens (after an error, with |buf| NULL), so
   * the stream stays in step. Returns a CUresult (the stream or range is
   * checked first: CUDA_ERROR_INVALID_HANDLE, CUDA_ERROR_INVALID_VALUE), or
   * the negative GP_E* code a callback returned. May be NULL: the worker
   * then stages through memcpy_htod. */
  int (*memcpy_htod_pipe)(struct gp_backend *b, uint64_t dst, uint64_t size,
                          uint64_t stream, gp_copy_fill_fn fill, void *arg);
  /* A device-to-host copy of |size| (> 0) bytes from |src| on |stream|
   * whose data the worker writes to the socket. The stream, the whole
   * range and the copy itself (up to GP_COPY_CHUNK bytes, the most the
   * worker asks for) are complete before the first call of |drain|: an
   * error is returned with |drain| never called (the worker answers it
   * without a payload), so the data sent is never anything but the
   * copy's. Then |drain| gets consecutive pieces totalling exactly |size|
   * bytes. A backend that overlaps the copy of a larger request with the
   * sending, and has a piece fail after the first call of |drain|, returns
   * a fatal negative GP_E* code (the reply's header has promised the
   * data; the session ends). Returns a CUresult or a negative GP_E* code,
   * |drain|'s own included. May be NULL: the worker stages through
   * memcpy_dtoh. */
  int (*memcpy_dtoh_pipe)(struct gp_backend *b, uint64_t src, uint64_t size,
                          uint64_t stream, gp_copy_drain_fn drain,
                          void *arg);

  int (*stream_create)(struct gp_backend *b, uint64_t ctx, uint64_t stream,
                       unsigned flags, int priority);
  int (*stream_destroy)(struct gp_backend *b, uint64_t stream);
  int (*stream_synchronize)(struct gp_backend *b, uint64_t stream);
  /* |ctx| is the calling context, whose default stream stream 0 is. */
  int (*stream_query)(struct gp_backend *b, uint64_t ctx, uint64_t stream);
  int (*stream_wait_event)(struct gp_backend *b, uint64_t stream,
                           uint64_t event, unsigned flags);

  int (*event_create)(struct gp_backend *b, uint64_t ctx, uint64_t event,
                      unsigned flags);
  int (*event_record)(struct gp_backend *b, uint64_t event, uint64_t stream);
  int (*event_query)(struct gp_backend *b, uint64_t event);
  int (*event_synchronize)(struct gp_backend *b, uint64_t event);
  int (*event_elapsed_time)(struct gp_backend *b, uint64_t start,
                            uint64_t end, float *ms);
  int (*event_destroy)(struct gp_backend *b, uint64_t event);

  /* Loads module |module| (a new client-chosen id) into context |ctx| from
   * |image| (|size| bytes: PTX text, cubin, fatbin or fatbin wrapper
   * contents; the worker has checked its SHA-256). On failure returns the
   * CUresult (CUDA_ERROR_INVALID_IMAGE, CUDA_ERROR_INVALID_PTX,
   * CUDA_ERROR_NOT_SUPPORTED, CUDA_ERROR_NO_BINARY_FOR_GPU, ...) and puts
   * one line saying why in |msg| (|msglen| bytes), which the client logs. */
  int (*module_load)(struct gp_backend *b, uint64_t ctx, uint64_t module,
                     const void *image, size_t size, char *msg,
                     size_t msglen);
  /* Unloads a module: its functions' ids and its globals die with it.
   * Unknown: CUDA_ERROR_INVALID_HANDLE. ctx_destroy unloads a context's
   * modules. */
  int (*module_unload)(struct gp_backend *b, uint64_t module);
  /* Names kernel |name| of |module| |function| (a new id; an id in use is
   * CUDA_ERROR_INVALID_VALUE) and describes it. No such kernel:
   * CUDA_ERROR_NOT_FOUND. */
  int (*module_get_function)(struct gp_backend *b, uint64_t module,
                             const char *name, uint64_t function,
                             struct gp_func_desc *out);
  /* The name of kernel |index| (0, 1, ...) of |module| in |*name| (valid
   * until the module is unloaded): CUDA_ERROR_NOT_FOUND past the last,
   * CUDA_ERROR_INVALID_HANDLE for an unknown module. May be NULL (the
   * worker then answers CUDA_ERROR_NOT_SUPPORTED). */
  int (*module_kernel)(struct gp_backend *b, uint64_t module, uint32_t index,
                       const char **name);
  /* The device address and size of module-scope variable |name|
   * (CUDA_ERROR_NOT_FOUND if none). The address works with every memory
   * operation, like an allocation's. */
  int (*module_get_global)(struct gp_backend *b, uint64_t module,
                           const char *name, uint64_t *dptr,
                           uint64_t *size);
  /* The device memory module |module|'s module-scope variables (.global
   * and .const) take, in |*bytes|: what a grant's memory limit counts for
   * the module (docs/broker.md, "Grants"). Unknown module:
   * CUDA_ERROR_INVALID_HANDLE. May be NULL: the backend cannot tell (the
   * cuda backend: the driver API has no way to list a module's globals),
   * and the module's globals are not counted. */
  int (*module_global_bytes)(struct gp_backend *b, uint64_t module,
                             uint64_t *bytes);
  /* Launches a kernel. Returns a configuration error at once
   * (CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_INVALID_HANDLE, ...); a fault
   * while it runs (CUDA_ERROR_ILLEGAL_ADDRESS, CUDA_ERROR_LAUNCH_FAILED,
   * ...) is returned too, logged with the kernel, PTX line and address,
   * and makes the context unusable: every later operation in it returns
   * the same error (sticky, as on a GPU) until it is destroyed. */
  int (*launch)(struct gp_backend *b, const struct gp_launch_desc *l);

  /* Device printf output not yet handed to the client: sets |*data| and
   * |*len| (0: none) and |*dropped| (bytes lost to a full buffer since the
   * last output_consumed). Valid until output_consumed or the next
   * operation. */
  void (*output_peek)(struct gp_backend *b, const void **data, size_t *len,
                      uint64_t *dropped);
  /* Forgets what output_peek returned. */
  void (*output_consumed)(struct gp_backend *b);
};

/* The backends compiled in. */
extern const struct gp_backend_ops gp__backend_emu;
extern const struct gp_backend_ops gp__backend_cuda;

/* The backend called |name|, or NULL. */
const struct gp_backend_ops *gp__backend_find(const char *name);

#endif
