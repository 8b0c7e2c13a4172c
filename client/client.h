/* The internals of gpupool's libcuda.so.1, shared between client/ files.
 *
 * One process has one client (struct gp__client): one connection to one
 * pool server, guarded by one mutex, plus the tables that let calls be
 * checked, and often answered, without a round trip: the devices from the
 * handshake, the live contexts, streams, events, modules and functions, the
 * device and host allocations, and the digests of the module images the
 * server holds. The current-context stack is per thread (ctx.c).
 *
 * Locking: everything in struct gp__client except the atomics is guarded by
 * |lock|. Functions named *_locked expect the caller to hold it; the others
 * take it themselves. The lock is never held across application code (host
 * functions, stream callbacks, the occupancy calculator's block-size
 * function, context-local storage destructors).
 */
#ifndef GP_CLIENT_CLIENT_H
#define GP_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuapi.h"
#include "frame.h"
#include "gpupool/errors.h"
#include "msg.h"
#include "wire.h"
#include "zchunk.h"

/* ---- Objects behind the opaque CUDA handles -------------------------------- */

enum gp__kind {
  GP__KIND_CTX = 0x58544367,    /* "gCTX" */
  GP__KIND_STREAM = 0x4D525367, /* "gSRM" */
  GP__KIND_EVENT = 0x54564567,  /* "gEVT" */
  GP__KIND_MODULE = 0x444F4D67, /* "gMOD" */
  GP__KIND_FUNC = 0x434E4667,   /* "gFNC" */
};

/* Every object starts with this, so that a handle found in the handle set
 * can be checked for its kind before it is used as one. */
struct gp__obj {
  enum gp__kind kind;
};

/* ---- Streams and contexts: per-context and per-stream settings ---------- */

/* The hint attributes a stream carries (cuStreamSetAttribute). With |set|
 * false every one has its default (api_stream.c). */
struct gp__stream_attrs {
  bool set;
  CUaccessPolicyWindow window;
  CUsynchronizationPolicy sync_policy;
  CUlaunchMemSyncDomainMap domain_map;
  CUlaunchMemSyncDomain domain;
  unsigned nvlink_util_centric;
};

/* A thread's per-thread default streams (api_stream.c). */
struct gp__ptds;

enum gp__ctx_state {
  GP__CTX_LIVE = 0,      /* usable */
  GP__CTX_INACTIVE = 1,  /* a primary context nobody has retained (yet) */
  GP__CTX_DESTROYED = 2, /* cuCtxDestroy'd: current in some thread maybe */
};

/* A context (CUcontext). Context objects are never freed: a destroyed one
 * may still be current in another thread, where the driver's contract is
 * CUDA_ERROR_CONTEXT_IS_DESTROYED, not a crash. They are small, and a
 * program creates few. */
struct gp__ctx {
  struct gp__obj hdr;
  uint64_t id;          /* the server's id for this incarnation (locked) */
  int device;
  unsigned flags;       /* CU_CTX_* (locked) */
  bool primary;
  int retains;          /* primary: cuDevicePrimaryCtxRetain count (locked) */
  _Atomic int state;    /* enum gp__ctx_state */
  CUresult fault;       /* the sticky error of a kernel fault that a reply
                         * has shown in this context (or incarnation of a
                         * primary context); launches return it at once
                         * (locked) */
  /* Streams and contexts (api_ctx_misc.c, api_stream.c), all locked. Zero
   * means "the default", so a new context starts from the driver's
   * defaults, and gp__ctx_misc_reset_locked() brings a primary context's
   * next incarnation back to them. */
  unsigned limits_set;       /* bit i: limit[i] was set by cuCtxSetLimit */
  size_t limit[CU_LIMIT_MAX];
  CUfunc_cache cache_config; /* cuCtxSetCacheConfig */
  uint64_t legacy_stream_id; /* cuStreamGetId of its legacy default stream;
                              * 0 until asked (gp__new_id() then) */
  struct gp__stream_attrs legacy_attrs;
};

/* A stream (CUstream) created by cuStreamCreate*. Freed on destroy. */
struct gp__stream {
  struct gp__obj hdr;
  uint64_t id;
  struct gp__ctx *ctx;
  unsigned flags;
  int priority;
  /* Streams and contexts (api_stream.c), locked. */
  struct gp__stream_attrs attrs;
  struct gp__ptds *owner;    /* a per-thread default stream: its thread's
                              * record (never in the handle set); else
                              * NULL */
  struct gp__stream *pt_next; /* in owner's list */
};

/* An event (CUevent). Freed on destroy. */
struct gp__event {
  struct gp__obj hdr;
  uint64_t id;
  struct gp__ctx *ctx;
  unsigned flags;
  bool recorded;        /* locked */
};

/* A name-keyed table of a module's functions or globals: chained buckets,
 * grown by doubling. The entries are embedded in the objects they name. Not
 * thread-safe: the client lock guards it. */
struct gp__sym {
  struct gp__sym *next; /* in its bucket */
  uint64_t hash;
  char *name;           /* owned by the entry's object */
};

struct gp__symtab {
  struct gp__sym **buckets;
  size_t nbuckets;      /* a power of two, or 0 */
  size_t n;
};

/* A module-scope variable looked up with cuModuleGetGlobal: answered from
 * here the second time. |registered| when [dptr, dptr + size) was added to
 * c->dev_mem on its behalf (and must be removed with the module). */
struct gp__global {
  struct gp__sym sym;
  uint64_t dptr;
  uint64_t size;
  bool registered;
};

/* A module (CUmodule) loaded with cuModuleLoad*. Freed on unload, or when
 * its context is destroyed (or its primary context released or reset),
 * together with its functions and globals. */
struct gp__module {
  struct gp__obj hdr;
  uint64_t id;
  struct gp__ctx *ctx;
  struct gp__symtab funcs;   /* struct gp__func by name */
  struct gp__symtab globals; /* struct gp__global by name */
};

/* A kernel parameter's place in the packed parameter buffer. */
struct gp__param {
  uint32_t offset;
  uint32_t size;
};

/* A function (CUfunction): one object per (module, name), so a second
 * cuModuleGetFunction of a name returns the same handle without a round
 * trip. Its attributes come from the server's reply; the settable ones are
 * kept here (the server is told the dynamic shared memory of each launch,
 * the rest are hints). */
struct gp__func {
  struct gp__obj hdr;
  struct gp__sym sym;        /* in mod->funcs; sym.name is the kernel's */
  uint64_t id;
  struct gp__module *mod;
  uint32_t nparams;
  struct gp__param *params;  /* nparams entries */
  uint32_t params_size;      /* bytes of the packed buffer */
  int attr[CU_FUNC_ATTRIBUTE_MAX]; /* cuFuncGetAttribute's answers */
  CUfunc_cache cache_config;
  uint32_t attr_set;         /* bit a: attr[a] set by cuFuncSetAttribute,
                              * which outranks cuKernelSetAttribute */
  bool cache_set;            /* cuFuncSetCacheConfig was called */
};

/* ---- The handle set (handles.c) -------------------------------------------- */

/* An open-addressing set of object pointers: a handle the application
 * passes is looked up here before it is ever dereferenced, so a stale or
 * made-up handle is CUDA_ERROR_INVALID_HANDLE, not a crash. Not
 * thread-safe: the client lock guards it. */
struct gp__handles {
  struct gp__obj **slots; /* NULL: empty; GP__TOMBSTONE: removed */
  size_t cap;             /* a power of two, or 0 */
  size_t used;            /* live entries plus tombstones */
  size_t live;
};

/* Adds |o|. Returns 0 or GP_ENOMEM. */
int gp__handles_add(struct gp__handles *h, struct gp__obj *o);
/* Removes |o| if present. */
void gp__handles_remove(struct gp__handles *h, struct gp__obj *o);
/* |p| as an object of |kind| if the set holds it, else NULL. */
struct gp__obj *gp__handles_find(const struct gp__handles *h, const void *p,
                                 enum gp__kind kind);
/* Calls |fn| on every object; |fn| may remove the object it is given. */
void gp__handles_foreach(struct gp__handles *h,
                         void (*fn)(struct gp__obj *o, void *arg), void *arg);
/* Releases the table (not the objects). */
void gp__handles_free(struct gp__handles *h);

/* ---- Address range tables (ranges.c) --------------------------------------- */

/* A set of disjoint [base, base + size) ranges sorted by base: the device
 * allocations (from cuMemAlloc replies) and the host allocations
 * (cuMemHostAlloc). Not thread-safe: the client lock guards it. */
struct gp__range {
  uint64_t base;
  uint64_t size;
  const struct gp__ctx *ctx; /* device: owning context; host: NULL */
  unsigned flags;            /* host: CU_MEMHOSTALLOC_*; device:
                              * GP__RANGE_* */
  /* Pointer attributes (memory part). */
  uint64_t buffer_id;        /* CU_POINTER_ATTRIBUTE_BUFFER_ID: set by
                              * gp__ranges_add() when 0, unique in the
                              * process */
  bool sync_memops;          /* CU_POINTER_ATTRIBUTE_SYNC_MEMOPS */
  const struct gp__ctx *host_ctx;   /* host: the context current when it
                                     * was allocated */
  struct gp__pool_block *pool_block; /* device: the pool block of a
                                      * stream-ordered allocation, or NULL */
};

/* A device range that is a module's global (cuModuleGetGlobal), not an
 * allocation: it goes with its module, and cuMemFree must not free it. */
#define GP__RANGE_MODULE_GLOBAL 0x1u

struct gp__ranges {
  struct gp__range *v;
  size_t n, cap;
};

/* Adds a range (giving it a fresh buffer_id when it has none). Returns 0,
 * GP_ENOMEM, or GP_EINVAL when it overlaps one already present (a server
 * handing out the same address twice). */
int gp__ranges_add(struct gp__ranges *t, const struct gp__range *r);
/* The range that contains |addr|, or NULL. */
struct gp__range *gp__ranges_find(const struct gp__ranges *t, uint64_t addr);
/* True when [addr, addr + len) lies inside one range (|len| > 0). */
bool gp__ranges_covers(const struct gp__ranges *t, uint64_t addr,
                       uint64_t len);
/* Removes the range starting at exactly |base|; returns false if none. */
bool gp__ranges_remove(struct gp__ranges *t, uint64_t base);
/* Removes every range owned by |ctx|. */
void gp__ranges_remove_ctx(struct gp__ranges *t, const struct gp__ctx *ctx);
void gp__ranges_free(struct gp__ranges *t);

/* ---- Module images (image.c) ------------------------------------------------ */

/* The largest image sent: what the server's image cache holds (256 MiB).
 * One that does not fit in one frame's payload (GP__IMAGE_FRAME_MAX, as
 * the server receives frames by default) is uploaded in parts
 * (IMAGE_PART) before the MODULE_LOAD that names it by digest. */
#define GP__IMAGE_MAX ((size_t)256 << 20)
#define GP__IMAGE_FRAME_MAX ((size_t)GP_FRAME_DEFAULT_MAX_PAYLOAD)
#define GP__SHA256_LEN 32

enum gp__image_kind {
  GP__IMAGE_PTX = 1, /* NUL-terminated PTX text (the NUL is sent) */
  GP__IMAGE_ELF,     /* a 64-bit ELF cubin */
  GP__IMAGE_FATBIN,  /* one fatbin, or a version-2 wrapper's fatbins back
                      * to back */
};

/* The bytes of a module image as they go on the wire. */
struct gp__image {
  const void *data;         /* the caller's memory, or |owned| */
  size_t size;
  void *owned;              /* allocated here, or NULL */
  enum gp__image_kind kind;
};

/* Finds the image at |p| and its extent: PTX text (after whitespace and
 * comments, a .version, .target or .address_size directive; up to and
 * including its NUL), a 64-bit ELF (the end of its headers, sections and
 * segments), a fatbin (16 bytes plus the size in its header), or a fatbin
 * wrapper (the fatbin it points to; for a version-2 wrapper, followed by
 * its prelinked fatbins, copied into one buffer). |avail| is how many bytes
 * at |p| may be read: SIZE_MAX for a bare pointer (cuModuleLoadData, which
 * is given no length), the buffer's length for a file's contents (where a
 * wrapper's pointers mean nothing and are refused). Returns CUDA_SUCCESS
 * and fills |*out| (release it with gp__image_free()), or
 * CUDA_ERROR_INVALID_IMAGE (none of those, or an extent past |avail|),
 * CUDA_ERROR_INVALID_VALUE (bigger than GP__IMAGE_MAX: says so on stderr),
 * CUDA_ERROR_OUT_OF_MEMORY. Reads the memory it is given, which the caller
 * vouches for, as the real driver does. Any thread; no lock. */
CUresult gp__image_find(const void *p, size_t avail, struct gp__image *out);

/* Frees what gp__image_find() allocated. */
void gp__image_free(struct gp__image *im);

/* "PTX", "ELF", "fatbin": for messages. */
const char *gp__image_kind_name(enum gp__image_kind kind);

/* SHA-256 of |n| bytes at |p| into |md|. Returns 0, or GP_ENOMEM when
 * libcrypto fails. Any thread. */
int gp__sha256(const void *p, size_t n, uint8_t md[GP__SHA256_LEN]);

/* A set of SHA-256 digests, sorted. Not thread-safe: the client lock guards
 * it. */
struct gp__digests {
  uint8_t (*v)[GP__SHA256_LEN];
  size_t n, cap;
};

bool gp__digests_has(const struct gp__digests *d,
                     const uint8_t md[GP__SHA256_LEN]);
/* Adds |md| (nothing if present). Returns 0 or GP_ENOMEM. */
int gp__digests_add(struct gp__digests *d, const uint8_t md[GP__SHA256_LEN]);

/* ---- The client ------------------------------------------------------------ */

/* The most attributes kept per device: every CUdevice_attribute value
 * below CU_DEVICE_ATTRIBUTE_MAX. */
#define GP__NATTR ((int)CU_DEVICE_ATTRIBUTE_MAX)

struct gp__device {
  char name[256];
  uint8_t uuid[16];
  uint64_t total_mem;
  int attr[GP__NATTR];
  struct gp__ctx *primary; /* stable for the life of the process */
  int server_ordinal;      /* the server's number for it (visible.c) */
};

/* Where cuInit stands. */
enum gp__init {
  GP__INIT_NONE = 0, /* never called (or only with bad flags) */
  GP__INIT_OK = 1,
  GP__INIT_FAILED = 2,
};

struct gp__client {
  pthread_mutex_t lock;

  _Atomic int init;        /* enum gp__init */
  CUresult init_result;    /* what cuInit returns from then on (locked) */
  _Atomic bool dead;       /* the connection is lost, for good */
  _Atomic bool forked;     /* we are a fork()ed child of the process that
                            * owns the connection */

  /* The server, from GPUPOOL_SERVER. */
  char host[256];
  int port;
  char addr[300];          /* "host:port", for messages */
  int connect_timeout_ms;
  int io_timeout_ms;       /* GPUPOOL_IO_TIMEOUT */

  struct gp_wire wire;
  bool wire_open;
  uint32_t next_request;
  CUresult deferred;       /* first error of a NOREPLY call, not yet returned */
  _Atomic uint64_t next_id; /* the next client-chosen handle id */

  /* From the HelloReply. */
  uint32_t version;
  int driver_version;
  char server_name[128];
  uint64_t features;       /* GP_FEATURE_* */
  int ndevices;
  struct gp__device *devices;

  struct gp__handles handles;
  struct gp__ranges dev_mem;
  struct gp__ranges host_mem;
  struct gp__digests images; /* SHA-256 of every image the server has */

  uint64_t page_size;

  /* Performance (issue 8): compressed copies and counters (conn.c). */
  struct gp_z z;           /* z.mode: GPUPOOL_COMPRESS, off when the server
                            * lacks GP_FEATURE_ZSTD */
  uint8_t *zbuf;           /* compressed payloads, |zcap| bytes */
  size_t zcap;
  uint64_t round_trips;    /* replies waited for after sending */
  uint64_t replies;        /* replies read */
  uint64_t rt_mark;        /* wire.frames_sent at the last wait */
};

/* The process's one client. Never NULL. */
struct gp__client *gp__client(void);

/* CUDA_SUCCESS when driver calls may go ahead: cuInit succeeded, the
 * connection is alive and this is the process that made it. Otherwise
 * CUDA_ERROR_NOT_INITIALIZED or CUDA_ERROR_DEVICE_UNAVAILABLE. Lock-free,
 * any thread. */
CUresult gp__ready(void);

/* A fresh handle id: non-zero, never reused in this process. Any thread. */
uint64_t gp__new_id(void);

void gp__lock(void);
void gp__unlock(void);

/* ---- The connection (conn.c); every function here needs the lock --------- */

/* Connects to GPUPOOL_SERVER and does the handshake; fills the device
 * table. Returns CUDA_SUCCESS or CUDA_ERROR_NO_DEVICE after printing one
 * line on stderr that says why. */
CUresult gp__connect_locked(struct gp__client *c);

/* ---- CUDA_VISIBLE_DEVICES (visible.c) ------------------------------------ */

/* Applies CUDA_VISIBLE_DEVICES |spec| (NULL: unset) to |n| devices whose
 * UUIDs are |uuids|: writes the indices of the visible ones, in the order
 * the list gives, to |map| (room for |n|) and returns how many. Entries
 * are ordinals or "GPU-"/"MIG-" and the start of a UUID as nvidia-smi
 * prints it (unique); the first entry that names no device ends the list;
 * a device named twice makes it empty. Pure: any thread. */
int gp__visible_devices(const char *spec, const uint8_t (*uuids)[16], int n,
                        int *map);

/* At cuInit, after the handshake: keeps only the devices
 * CUDA_VISIBLE_DEVICES makes visible, in its order, and sets each one's
 * server_ordinal. Returns 0, or -1 with |why| filled when none is visible
 * (cuInit then fails with CUDA_ERROR_NO_DEVICE). */
int gp__apply_visible_devices(struct gp__client *c, char *why,
                              size_t why_len);

/* Sends one request frame of |type| (NOREPLY when |noreply|), |payload|
 * after the message. Sets |*request_id| (may be NULL). Returns CUDA_SUCCESS,
 * CUDA_ERROR_OUT_OF_MEMORY (nothing was sent), or
 * CUDA_ERROR_DEVICE_UNAVAILABLE (the connection is now lost and that has
 * been reported). */
/* ---- Performance (issue 8): compressed copies (conn.c) ------------------- */

/* GPUPOOL_POLL_US's default. */
#define GP__DEFAULT_POLL_US 50u

/* gp__send_locked() with frame flags |flags| (GP_FRAME_F_ZSTD) added. */
CUresult gp__send_flags_locked(struct gp__client *c, uint16_t type,
                               const ProtobufCMessage *msg,
                               const void *payload, size_t payload_len,
                               bool noreply, uint16_t flags,
                               uint32_t *request_id);

/* c->zbuf with room for |n| bytes; NULL when it cannot be had. */
uint8_t *gp__zbuf_locked(struct gp__client *c, size_t n);

CUresult gp__send_locked(struct gp__client *c, uint16_t type,
                         const ProtobufCMessage *msg, const void *payload,
                         size_t payload_len, bool noreply,
                         uint32_t *request_id);

/* Reads the reply to |request_id| of |type|. Its `deferred` is kept in
 * c->deferred. With |payload| non-NULL and a successful result, the reply's
 * payload must be exactly |payload_len| bytes and is read into |payload|;
 * any other payload is dropped. On success |*reply| (if not NULL) is the
 * unpacked reply, which the caller frees with
 * protobuf_c_message_free_unpacked(). Returns the reply's result, or
 * CUDA_ERROR_DEVICE_UNAVAILABLE when the connection is lost (reported; no
 * reply then). */
CUresult gp__recv_locked(struct gp__client *c, uint16_t type,
                         uint32_t request_id, ProtobufCMessage **reply,
                         void *payload, size_t payload_len);

/* As gp__recv_locked() without a payload, but |*reply| is set whenever a
 * reply arrived, whatever its result (the caller frees it): for replies
 * whose `message` says why a request failed. */
CUresult gp__recv_any_locked(struct gp__client *c, uint16_t type,
                             uint32_t request_id, ProtobufCMessage **reply);

/* As gp__recv_locked() without a payload, but reads only what the server
 * has already sent (notices included): |*got| says whether the reply was
 * among it; without it the result is CUDA_SUCCESS and nothing else
 * changed. For a waiter that must not hold the lock while the server
 * works (api_hostfn.c). */
CUresult gp__recv_nowait_locked(struct gp__client *c, uint16_t type,
                                uint32_t request_id, bool *got);

/* gp__send_locked() then gp__recv_locked() without payloads. The reply
 * must come within GPUPOOL_IO_TIMEOUT of silence (see conn.c). */
CUresult gp__call_locked(struct gp__client *c, uint16_t type,
                         const ProtobufCMessage *msg, const void *payload,
                         size_t payload_len, ProtobufCMessage **reply);

/* The same for the calls that wait for the device to finish its work
 * (context, stream and event synchronize), which may legitimately take any
 * time: their reply is waited for without the silence timeout. */
CUresult gp__call_wait_locked(struct gp__client *c, uint16_t type,
                              const ProtobufCMessage *msg);

/* For a synchronising call that got |r| from the server: |r| if it is an
 * error, else the pending deferred error (which is then cleared), else
 * CUDA_SUCCESS. A kernel fault among them marks the current context
 * faulted (gp__note_fault_locked()). */
CUresult gp__sync_result_locked(struct gp__client *c, CUresult r);

/* Marks the connection lost because of |err| (a GP_E* code) while doing
 * |what|; prints "gpupool: lost connection to HOST:PORT: reason" once and
 * closes the socket. Returns CUDA_ERROR_DEVICE_UNAVAILABLE. */
CUresult gp__lost_locked(struct gp__client *c, int err, const char *what);

/* ---- Contexts (ctx.c) ------------------------------------------------------- */

/* The calling thread's current context: CUDA_SUCCESS and |*out|, or
 * CUDA_ERROR_INVALID_CONTEXT when there is none, or
 * CUDA_ERROR_CONTEXT_IS_DESTROYED when it was destroyed or is a primary
 * context that is not retained. Any thread; reads only its own stack. */
CUresult gp__current_ctx(struct gp__ctx **out);

/* |h| as a live context: CUDA_SUCCESS, or CUDA_ERROR_INVALID_CONTEXT. NULL
 * means the current context. Needs the lock. */
CUresult gp__ctx_from_handle_locked(struct gp__client *c, CUcontext h,
                                    struct gp__ctx **out);

/* gp__ctx_from_handle_locked(), and with |inactive_ok| a primary context
 * that is not retained is found too (context-local storage and the
 * CONTEXT_ID table, which cudart and cuBLASLt use before the retain):
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_CONTEXT, or without |inactive_ok|
 * CUDA_ERROR_CONTEXT_IS_DESTROYED for an inactive primary context. Needs
 * the lock. */
CUresult gp__ctx_lookup_locked(struct gp__client *c, CUcontext h,
                               bool inactive_ok, struct gp__ctx **out);

/* Creates the primary context objects of every device (at cuInit). Returns
 * 0 or GP_ENOMEM. Needs the lock. */
int gp__primary_init_locked(struct gp__client *c);

/* ---- Streams and events (stream.c, event.c) -------------------------------- */

/* The wire id of |h| for new work in the calling thread: 0 for the legacy
 * default stream (CU_STREAM_LEGACY, and NULL), the calling thread's
 * per-thread default stream for CU_STREAM_PER_THREAD (and for NULL inside
 * a _ptds/_ptsz entry point), else the stream's id. Before it answers, it
 * waits until the host functions that the new work must follow have run
 * (gp__stream_use_locked()): it may let go of the lock meanwhile, so
 * look up other handles after it. CUDA_ERROR_INVALID_HANDLE for a handle
 * that is no live stream, CUDA_ERROR_INVALID_CONTEXT (or
 * ..._IS_DESTROYED) for a default stream without a current context,
 * CUDA_ERROR_NOT_PERMITTED on the thread that runs host functions. Needs
 * the lock. */
CUresult gp__stream_id_locked(struct gp__client *c, CUstream h,
                              uint64_t *id);

/* Forgets (frees) every stream, event and module of |ctx|, and its device
 * allocations: the server dropped them with the context (or with this
 * incarnation of a primary context). Needs the lock. */
void gp__drop_ctx_objects_locked(struct gp__client *c, struct gp__ctx *ctx);

/* ---- Shared by launches, copies, stream-ordered memory (api_device.c,
 * api_stream.c, api_mem.c; client.h's copy constants below) ---------------- */

/* Device attribute |a| of |ctx|'s device as the server reported it, or
 * |def| when it reported none (0 or less) or |a| is no attribute this
 * cuda.h defines. Any thread, once gp__ready(): the device table is only
 * read after cuInit. */
int gp__dev_attr(const struct gp__ctx *ctx, CUdevice_attribute a, int def);

/* Which streams gp__work_stream_locked() accepts. */
enum gp__stream_scope {
  /* Only a stream of the current context (launches, stream-ordered
   * allocation): another context's is CUDA_ERROR_INVALID_HANDLE. */
  GP__STREAM_OF_CTX,
  /* Any live stream (copies and memsets): the driver runs a copy on a
   * stream of another context, as the memory's addresses say where it
   * is. */
  GP__STREAM_ANY_CTX,
};

/* The current context and the wire id of the stream that new work of a
 * call goes on: |hs| for an asynchronous call, the NULL stream (the legacy
 * one, or the per-thread one inside a _ptds/_ptsz entry point) for a
 * synchronous one. Resolving the stream waits for the host functions the
 * work must follow (gp__stream_use_locked()), letting go of the lock
 * meanwhile, so the context is looked up again after it: look up other
 * handles after this call too. Returns CUDA_SUCCESS; the errors of
 * gp__current_ctx() and of gp__stream_use_locked(); or
 * CUDA_ERROR_INVALID_HANDLE for a stream of another context when |scope|
 * is GP__STREAM_OF_CTX. Needs the lock. */
CUresult gp__work_stream_locked(struct gp__client *c, CUstream hs, bool async,
                                enum gp__stream_scope scope,
                                struct gp__ctx **ctx, uint64_t *sid);

/* Frees the allocation that starts at |dptr|, as on stream |sid| (a wire
 * id in the current context): a stream-ordered one goes back to its pool
 * (gp__pool_free_locked()), any other is removed from c->dev_mem and freed
 * on the server by a MEM_FREE sent without waiting, behind the work
 * already sent. Returns CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE (|dptr| is
 * not the start of an allocation, or is a module's variable), or the
 * send's error. Needs the lock. */
CUresult gp__mem_free_locked(struct gp__client *c, CUdeviceptr dptr,
                             uint64_t sid);

/* The most device-to-host copy requests (1D or 2D) outstanding before the
 * first reply is read: 1 GiB of replies in flight at GP_COPY_CHUNK, so a
 * huge copy never has the server blocked writing replies while the client
 * is still blocked writing requests. */
#define GP__DTOH_WINDOW 64

/* ---- Modules and functions (api_module.c) ----------------------------------- */

/* Forgets (frees) module |m|: removes it and its functions from the handle
 * set and its globals from c->dev_mem. Sends nothing: for a module the
 * server has dropped or is being told to drop. Needs the lock. */
void gp__module_forget_locked(struct gp__client *c, struct gp__module *m);

/* |h| as a live function, or NULL. Needs the lock. */
struct gp__func *gp__func_find_locked(struct gp__client *c, CUfunction h);

/* ---- Launches (api_launch.c) ------------------------------------------------- */

/* Notes |r|, the result of a synchronising call made in the calling
 * thread's current context: when it is one of the errors that leave a
 * context unusable (a kernel fault: CUDA_ERROR_ILLEGAL_ADDRESS,
 * CUDA_ERROR_LAUNCH_FAILED, CUDA_ERROR_ASSERT, ...), the context keeps it
 * in |fault|, and every later launch in it returns it at once, as the
 * driver's launches do (a launch never waits for the server, so it cannot
 * learn it otherwise). Returns |r|. Needs the lock. */
CUresult gp__note_fault_locked(struct gp__client *c, CUresult r);

/* The largest packed parameter buffer and parameter count a launch may
 * carry: the driver's limits since CUDA 12.1 on Volta and newer, which the
 * server enforces too. */
#define GP__MAX_KERNEL_PARAMS 4096
#define GP__MAX_PARAM_BYTES 32764

/* ---- cudart binding (api_init.c, api_proc.c, api_export.c) ---------------- */

/* What cuDriverGetVersion reports: before a successful cuInit, the
 * CUDA_VERSION this library was built with; after, the server's driver
 * version, but never below the major version of that toolkit
 * ((CUDA_VERSION / 1000) * 1000): cudart refuses a driver older than
 * itself. Any thread; no lock. */
int gp__driver_version(void);

/* Context-local storage (api_export.c): values that cudart keeps per
 * context through the CONTEXT_LOCAL_STORAGE export table, each with an
 * optional destructor dtor(ctx, key, value). */
struct gp__cls_entry;

/* Detaches the storage of |ctx|, which the caller has just destroyed
 * (cuCtxDestroy) or deactivated (a primary context released to 0 or
 * reset): its state must have left GP__CTX_LIVE first. Returns it for
 * gp__cls_run(); NULL when it had none. Needs the lock (the storage's own
 * mutex is taken inside). */
struct gp__cls_entry *gp__cls_detach_locked(struct gp__client *c,
                                            struct gp__ctx *ctx);

/* Runs the destructors of |list| (from gp__cls_detach_locked(); NULL:
 * nothing), in the order the values were stored, and frees it. The
 * destructors are application code, which may call the driver: call this
 * WITHOUT the lock, like every call back into the application (see
 * "Locking" at the top). */
void gp__cls_run(struct gp__cls_entry *list);

/* ---- Memory: pointer attributes, 2D copies, pools (memory part) ------------ */

/* A memory pool (CUmemoryPool): api_pool.c. Kept in the handle set under
 * this kind, so that a stale or invented pool handle is refused. */
#define GP__KIND_POOL ((enum gp__kind)0x4C4F5067) /* "gPOL" */

struct gp__pool;

/* One allocation a pool holds on the server: handed to the program (in
 * use, with a range in c->dev_mem pointing back here) or kept for reuse
 * after a stream-ordered free. */
struct gp__pool_block {
  struct gp__pool_block *prev, *next; /* in its pool's list */
  struct gp__pool *pool;
  uint64_t base;            /* the server's allocation */
  uint64_t size;            /* its size (the request rounded up) */
  struct gp__ctx *ctx;      /* whose memory it is on the server ... */
  uint64_t ctx_id;          /* ... in this incarnation */
  uint64_t block_id;        /* CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID */
  bool in_use;
  uint64_t free_stream;     /* cached: the wire id of the stream it was
                             * freed on */
};

/* The pool a device pointer's allocation came from (its range's block's
 * pool), as a CUmemoryPool, or NULL. Needs the lock. */
CUmemoryPool gp__pool_handle_locked(const struct gp__range *rg);

/* Frees the stream-ordered allocation of range |rg| (rg->pool_block set),
 * as on stream |sid| (a wire id in the current context): removes the range
 * from c->dev_mem, then keeps the block for reuse or gives it back to the
 * server, as the pool's release threshold says. Returns CUDA_SUCCESS or
 * CUDA_ERROR_DEVICE_UNAVAILABLE. Needs the lock. */
CUresult gp__pool_free_locked(struct gp__client *c, struct gp__range *rg,
                              uint64_t sid);
/* ---- Streams and contexts (api_stream.c, api_hostfn.c, api_ctx_misc.c,
 * api_ptsz.c) ------------------------------------------------------------ */

/* What a CUstream handle names for a call in the calling thread. */
struct gp__stream_ref {
  struct gp__ctx *ctx;   /* the stream's context */
  struct gp__stream *s;  /* NULL: |ctx|'s legacy default stream */
  uint64_t id;           /* on the wire: 0 for the legacy stream */
  bool blocking;         /* synchronises with the legacy stream (every
                          * stream but a CU_STREAM_NON_BLOCKING one) */
};

/* Resolves |h| (see gp__stream_id_locked() for what NULL and the special
 * handles mean; the per-thread default stream is created on first use)
 * without waiting for anything. Returns CUDA_SUCCESS, or the errors of
 * gp__stream_id_locked(), or CUDA_ERROR_OUT_OF_MEMORY. Needs the lock. */
CUresult gp__stream_ref_locked(struct gp__client *c, CUstream h,
                               struct gp__stream_ref *out);

/* gp__stream_ref_locked() for new work on |h|: first waits (letting go of
 * the lock) until every host function that work must follow has run: the
 * stream's own, and for a blocking stream those of the legacy stream, and
 * for the legacy stream those of every blocking stream of its context.
 * Needs the lock. */
CUresult gp__stream_use_locked(struct gp__client *c, CUstream h,
                               struct gp__stream_ref *out);

/* cuStreamGetId's answer for |h| in the calling thread (see
 * gp__stream_id_locked() for NULL and the special handles): unique in the
 * process, never reused. Takes the lock. */
CUresult gp__stream_unique_id(CUstream h, unsigned long long *id);

/* Inside a _ptds/_ptsz entry point, NULL means the per-thread default
 * stream: gp__ptds_begin() says so for the calling thread and returns the
 * previous setting, which gp__ptds_end() restores. Any thread; no lock. */
bool gp__ptds_begin(void);
void gp__ptds_end(bool previous);

/* Forgets (frees) the per-thread default streams of |ctx| in every
 * thread: the server dropped them with the context. Needs the lock. */
void gp__ptds_drop_ctx_locked(struct gp__client *c, struct gp__ctx *ctx);

/* Brings the client-side settings of |ctx| (limits, cache configuration,
 * legacy stream id and attributes) back to the driver's defaults. Needs
 * the lock. */
void gp__ctx_misc_reset_locked(struct gp__ctx *ctx);

/* What must have run before a call may go ahead (api_hostfn.c). */
enum gp__hostfn_scope {
  GP__HOSTFN_SUBMIT, /* new work on the stream */
  GP__HOSTFN_STREAM, /* the stream's own work (its synchronize, query) */
  GP__HOSTFN_CTX,    /* everything in the context */
};

/* True when a host function queued on |ref|'s context must run before a
 * call of |scope| on |ref| may go ahead. Only the ids and the context in
 * |ref| are read. Needs the lock. */
bool gp__hostfn_pending_locked(const struct gp__stream_ref *ref,
                               enum gp__hostfn_scope scope);

/* Waits (pthread_cond_wait on the client lock, so the lock is let go and
 * taken back) until at least one queued host function has finished. Returns
 * CUDA_SUCCESS, or CUDA_ERROR_NOT_PERMITTED on the thread that runs host
 * functions, which would wait for itself. Needs the lock. */
CUresult gp__hostfn_wait_one_locked(struct gp__client *c);

/* Waits until no host function of |ctx| is queued (its synchronize, its
 * destruction). |ctx| stays valid (contexts are never freed) but may have
 * changed state meanwhile: check again after. Needs the lock. */
CUresult gp__hostfn_drain_locked(struct gp__client *c, struct gp__ctx *ctx);

/* The request id of the reply the host-function thread is waiting for
 * without the lock (0: none). A thread that reads that reply first, on the
 * way to its own, reads it whole and hands its result over with
 * gp__hostfn_reply_locked() (conn.c). Need the lock. */
uint32_t gp__hostfn_reply_id(void);
void gp__hostfn_reply_locked(struct gp__client *c, CUresult result);

/* True on the library's host-function thread: driver calls made from a
 * host function or stream callback return CUDA_ERROR_NOT_PERMITTED
 * (gp__ready()). Any thread; no lock. */
bool gp__hostfn_thread_self(void);

/* The process is exiting (or the library being unloaded): from now on the
 * host-function thread runs no more application code; it parks before the
 * next function instead. Called first thing by conn_fini(), so that the
 * connection it closes cannot make a waiting entry run, with an error,
 * during teardown. Any thread; no lock; idempotent. */
void gp__hostfn_shutdown(void);
/* ---- Libraries and kernels (part "libraries": api_library.c, and the
 * module helpers of api_module.c they are built on) ----------------------- */

/* A library (CUlibrary) and a kernel (CUkernel) are client objects; their
 * structs are private to api_library.c. A kernel stands for its function
 * in whichever context is current when it is used. */
#define GP__KIND_LIBRARY ((enum gp__kind)0x42494C67) /* "gLIB" */
#define GP__KIND_KERNEL ((enum gp__kind)0x4E524B67)  /* "gKRN" */

/* True unless CUDA_MODULE_LOADING is EAGER (read once): a library then
 * reaches the server only when it is first used in a context. Any
 * thread. */
bool gp__lazy_loading(void);

/* |h| as a function for a call in the calling thread's current context: a
 * live CUfunction, or a live CUkernel resolved to its function in the
 * current context, the library being loaded there first if it is not (one
 * round trip; a refused image is reported on stderr once, naming |api|)
 * and the kernel looked up (one round trip the first time). Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_HANDLE (neither), the current-context
 * error (a CUkernel without one), or the load's or lookup's error. Needs
 * the lock. */
CUresult gp__func_resolve_locked(struct gp__client *c, CUfunction h,
                                 struct gp__func **out, const char *api);

/* The name of kernel |h|, or NULL when |h| is no live CUkernel. Needs the
 * lock. */
const char *gp__kernel_name_locked(struct gp__client *c, CUkernel h);

/* Called when module |m| is forgotten: if it is a library's module, the
 * library forgets it (and loads again at its next use in that context).
 * Needs the lock. */
void gp__library_module_gone_locked(struct gp__client *c,
                                    struct gp__module *m);

/* Loads every library into |ctx|, which has just become usable, when
 * loading is eager; nothing when it is lazy. A failure is left for the
 * first use to report. Needs the lock. */
void gp__libraries_ctx_ready_locked(struct gp__client *c, struct gp__ctx *ctx);

/* Loads image |im| (SHA-256 |md|) into |ctx| as a new module, entered in
 * the handle set: one MODULE_LOAD round trip, with only the digest when
 * the server holds the bytes (|*cached|). Returns CUDA_SUCCESS and |*out|,
 * or the server's refusal with its reason in |why| (|whylen| bytes; not
 * printed), or CUDA_ERROR_OUT_OF_MEMORY / CUDA_ERROR_DEVICE_UNAVAILABLE.
 * Needs the lock. */
CUresult gp__module_load_locked(struct gp__client *c, struct gp__ctx *ctx,
                                const struct gp__image *im,
                                const uint8_t md[GP__SHA256_LEN],
                                struct gp__module **out, char *why,
                                size_t whylen, bool *cached);

/* Kernel |name| of module |m| as a function: one round trip the first
 * time, none after. CUDA_ERROR_NOT_FOUND for a name the module lacks or
 * that cannot name a kernel. Needs the lock. */
CUresult gp__module_function_locked(struct gp__client *c,
                                    struct gp__module *m, const char *name,
                                    struct gp__func **out);

/* Kernel |name| of module |m| as a function if it was looked up already
 * (by gp__module_function_locked()), else NULL; never asks the server.
 * Needs the lock. */
struct gp__func *gp__module_function_find_locked(struct gp__module *m,
                                                 const char *name);

/* The address and size of module-scope variable |name| of |m|, entered in
 * the device range table: one round trip the first time. Needs the
 * lock. */
CUresult gp__module_global_locked(struct gp__client *c, struct gp__module *m,
                                  const char *name, uint64_t *dptr,
                                  uint64_t *bytes);

/* The names of |m|'s kernels, in the module's order: one round trip. The
 * caller frees |*out| with protobuf_c_message_free_unpacked(). Needs the
 * lock. */
CUresult gp__module_kernels_locked(struct gp__client *c, struct gp__module *m,
                                   Gpupool__ModuleGetKernelsReply **out);

/* True when |name| could name a kernel or a variable (see api_module.c).
 * Any thread. */
bool gp__symbol_name_ok(const char *name);

/* Checks value |v| for attribute |attr| of |f| as cuFuncSetAttribute does:
 * CUDA_SUCCESS, or CUDA_ERROR_INVALID_VALUE (read-only attribute, value
 * out of range). Needs the lock. */
CUresult gp__func_check_attr_locked(struct gp__client *c,
                                    const struct gp__func *f,
                                    CUfunction_attribute attr, int v);

/* Reads file |path| into a fresh buffer with a NUL after its contents.
 * Returns CUDA_SUCCESS, CUDA_ERROR_FILE_NOT_FOUND (cannot be opened or
 * read, not a regular file), CUDA_ERROR_INVALID_VALUE (over GP__IMAGE_MAX:
 * said on stderr, naming |api|), CUDA_ERROR_OUT_OF_MEMORY. The caller frees
 * |*buf|. Any thread; no lock. */
CUresult gp__read_image_file(const char *path, const char *api,
                             uint8_t **buf, size_t *len);

/* The outputs of the JIT options of a load (cuModuleLoadDataEx,
 * cuLibraryLoadData). Scalar option values travel in the pointer-sized
 * slot itself, and outputs are written back into it, as the driver does:
 * a float (the wall time) in the slot's low four bytes, a count as an
 * unsigned integer. */
struct gp__jit_outputs {
  void **values;
  int info_buf, info_size;   /* option indexes, or -1 */
  int error_buf, error_size;
  int wall_time;
};

/* Checks |n| JIT options (every documented one is accepted;
 * CU_JIT_OPTIMIZATION_LEVEL must be 0 to 4) and notes where the outputs
 * go. CUDA_SUCCESS or CUDA_ERROR_INVALID_VALUE. */
CUresult gp__jit_parse(unsigned n, const CUjit_option *opts, void **values,
                       struct gp__jit_outputs *out);

/* Writes the outputs: an empty info log, |why| as the error log, |ms| as
 * the wall time. */
void gp__jit_finish(const struct gp__jit_outputs *o, const char *why,
                    float ms);

/* Milliseconds on CLOCK_MONOTONIC. */
double gp__now_ms(void);

#endif
