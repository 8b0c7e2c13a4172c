/* The PTX engine of the emu backend: loads the PTX text of a module
 * (as nvcc 13 emits it: .version 9.0, .target sm_75, .address_size 64) and
 * runs its kernels on the CPU.
 *
 * A module is parsed once into a compact instruction array per function
 * (ptx_parse.c, using the tokenizer in ptx_lex.c); anything the interpreter
 * does not implement is refused at load time with PTX_E_UNSUPPORTED and a
 * message naming the PTX line and the instruction text, so a loaded module
 * never computes a wrong answer for lack of an instruction.
 *
 * Kernels run a warp of 32 lanes at a time in lock-step (ptx_exec.c): each
 * lane has its own program counter and each step executes the instruction
 * at the lowest PC for every lane that sits there. The blocks of a grid are
 * spread over a pool of host threads (struct ptx_launch.max_threads).
 *
 * Address spaces as kernels see them:
 *  - global: device addresses, translated by the caller's ptx_mem_ops (the
 *    backend checks them against the session's live allocations); the
 *    module's own .global and .const variables live in host buffers owned
 *    by the module and are addressed by their host address
 *    (ptx_module_global());
 *  - shared: one zeroed buffer per block, addresses 0..size-1;
 *  - local: one zeroed buffer per thread, addresses 0..size-1;
 *  - param: the launch's packed parameter buffer, read-only;
 *  - generic: shared, local and param appear in windows at
 *    PTX_GENERIC_SHARED, PTX_GENERIC_LOCAL, PTX_GENERIC_PARAM (addresses no
 *    host process can have); every other generic address is global.
 *
 * Status codes are 0 or a negative PTX_E_*; the comment of each says which
 * CUresult the backend should report for it.
 *
 * Threads: loading builds a module that nothing else shares; a loaded
 * module is read-only, so the queries and any number of launches may run
 * from any threads at once; only ptx_module_free() needs it to be idle.
 *
 * Device printf: nvcc lowers printf() to a call of the external function
 * vprintf(format, arguments); the engine formats it on the host (C's
 * conversions, as CUDA's printf does) and hands each call's text to
 * ptx_launch.print. vprintf returns the number of bytes of its text, as
 * C's printf (CUDA documents the number of arguments). __assertfail
 * (assert()) prints CUDA's message the same way and stops the launch with
 * PTX_E_ASSERT. Limits and formats: docs/emulated-device.md.
 *
 * Lanes of a warp that wait for each other through a lock cannot all run
 * in lock-step: after a while the engine lets the lanes that have waited
 * longest run alone (as independent thread scheduling would), and a warp
 * whose lanes still cannot progress (some have not run for 2^24 steps of
 * the warp while the others spin in an unchanging state) fails with
 * PTX_E_DEADLOCK.
 *
 * Not implemented (refused at load with PTX_E_UNSUPPORTED and the line):
 * textures and surfaces, mma/wgmma, cp.async and the other sm_80+ memory
 * instructions, redux.sync, the SIMD video instructions (vadd4,
 * vabsdiff4, ...), indirect and recursive calls, device malloc/free,
 * cluster and grid-wide synchronisation (%envreg), min/max.xorsign.abs,
 * cvt .relu/.satfinite.
 */
#ifndef GP_SERVER_EMU_PTX_H
#define GP_SERVER_EMU_PTX_H

#include <stddef.h>
#include <stdint.h>

enum {
  PTX_OK = 0,
  PTX_E_INVALID = -1,         /* bad argument: CUDA_ERROR_INVALID_VALUE */
  PTX_E_NOMEM = -2,           /* CUDA_ERROR_OUT_OF_MEMORY */
  PTX_E_PARSE = -3,           /* malformed PTX: CUDA_ERROR_INVALID_PTX */
  PTX_E_UNSUPPORTED = -4,     /* CUDA_ERROR_NOT_SUPPORTED */
  PTX_E_NOT_FOUND = -5,       /* CUDA_ERROR_NOT_FOUND */
  PTX_E_ILLEGAL_ADDRESS = -6, /* CUDA_ERROR_ILLEGAL_ADDRESS */
  PTX_E_MISALIGNED = -7,      /* CUDA_ERROR_MISALIGNED_ADDRESS */
  PTX_E_TRAP = -8,            /* trap instruction: CUDA_ERROR_LAUNCH_FAILED */
  PTX_E_DEADLOCK = -9,        /* barrier never completes:
                                 CUDA_ERROR_LAUNCH_FAILED */
  PTX_E_CONFIG = -10,         /* grid/block/shared/parameter size out of
                                 range: CUDA_ERROR_INVALID_VALUE */
  PTX_E_CANCELLED = -11,      /* ptx_launch.cancel was set:
                                 CUDA_ERROR_LAUNCH_TIMEOUT */
  PTX_E_ASSERT = -12,         /* a device assert() failed:
                                 CUDA_ERROR_ASSERT */
};

/* Generic-address windows of the non-global spaces (each 2^48 bytes). */
#define PTX_GENERIC_SHARED 0xfe00000000000000ull
#define PTX_GENERIC_LOCAL  0xfd00000000000000ull
#define PTX_GENERIC_PARAM  0xfc00000000000000ull
#define PTX_GENERIC_WINDOW (1ull << 48)

/* The largest PTX text ptx_module_load() accepts; ptx_module_link_with()
 * counts a newline after each of several units into it. */
#define PTX_MAX_TEXT (64u << 20)

/* Limits a launch checks before allocating anything. */
#define PTX_MAX_BLOCK_THREADS 1024u
#define PTX_MAX_SHARED (1u << 20)           /* static + dynamic, per block */
#define PTX_MAX_LOCAL_PER_BLOCK (256u << 20) /* local size x threads */

struct ptx_module;
struct ptx_kernel; /* a .entry of a module; valid while the module lives */

/* One kernel parameter as cuLaunchKernel packs it. */
struct ptx_param_info {
  uint32_t offset;            /* in the parameter buffer */
  uint32_t size;              /* bytes */
  uint32_t align;             /* bytes */
};

/* How the engine reaches global memory. |lookup| finds the live allocation
 * that contains device address |addr| and sets |*base| (its device
 * address), |*size| (its length) and |*host| (where its first byte is in
 * this process); it returns 0, or a negative value when no allocation
 * contains |addr|. It is called from every thread of a launch at once and
 * must not change the set of allocations during a launch. The engine
 * caches the answer per warp, so one lookup serves many accesses. */
struct ptx_mem_ops {
  int (*lookup)(void *opaque, uint64_t addr, uint64_t *base,
                uint64_t *size, void **host);
  void *opaque;
};

struct ptx_launch {
  uint32_t grid[3];           /* blocks per grid, each >= 1 */
  uint32_t block[3];          /* threads per block, each >= 1, product
                                 <= PTX_MAX_BLOCK_THREADS */
  uint32_t dyn_shared;        /* bytes of dynamic (.extern) shared memory */
  const void *params;         /* packed as ptx_kernel_param() says */
  size_t params_size;         /* at least ptx_kernel_params_size() */
  const struct ptx_mem_ops *mem;  /* NULL: no global memory but the
                                     module's own variables */
  unsigned max_threads;       /* host threads for the blocks: 0 = one per
                                 online CPU (at most 64), 1 = the calling
                                 thread only */
  const int *cancel;          /* NULL, or a flag another thread may set
                                 (with __atomic_store_n) to stop the launch
                                 within about a thousand instructions per
                                 warp: PTX_E_CANCELLED. A kernel that never
                                 ends (a spin loop) runs until then. */
  /* Device printf: each vprintf call's formatted text is handed to |print|
   * (called from any launch thread at once; the callee serialises).
   * NULL: the output is dropped. */
  void (*print)(void *opaque, const char *text, size_t len);
  void *print_opaque;
};

/* Where a module's .global and .const variables live, when the backend
 * wants them in its device memory (so that cuModuleGetGlobal's address
 * works with cuMemcpy). |alloc| reserves |size| (>= 1) bytes aligned to
 * |align| and sets |*addr| (the address kernels and ptx_module_global()
 * use) and |*host| (where the engine reads and writes the bytes); it
 * returns 0, or a negative value and the load fails with PTX_E_NOMEM.
 * |release| gives back what |alloc| reserved; ptx_module_free() and a
 * failed load call it. Both run on the thread that loads or frees. */
struct ptx_global_ops {
  int (*alloc)(void *opaque, uint64_t size, uint32_t align, uint64_t *addr,
               void **host);
  void (*release)(void *opaque, uint64_t addr);
  void *opaque;
};

/* Parses the PTX |text| of |len| bytes (need not be NUL-terminated) into a
 * module and sets |*out|; the caller frees it with ptx_module_free().
 * Returns PTX_OK, PTX_E_INVALID (NULL arguments, text longer than
 * PTX_MAX_TEXT), PTX_E_NOMEM, PTX_E_PARSE (malformed PTX) or
 * PTX_E_UNSUPPORTED (an instruction, directive or type the engine does not
 * implement); on failure |*out| is NULL and |err| (|errlen| bytes, may be
 * 0) holds a one-line message with the PTX line and text. Thread-safe: the
 * module shares nothing with other modules. */
int ptx_module_load(const char *text, size_t len, struct ptx_module **out,
                    char *err, size_t errlen);

/* As ptx_module_load(), with the module's variables placed by |gops|
 * (NULL: in host buffers the module owns, addressed by their host
 * address). |*gops| is copied. */
int ptx_module_load_with(const char *text, size_t len,
                         const struct ptx_global_ops *gops,
                         struct ptx_module **out, char *err, size_t errlen);

/* The most PTX units ptx_module_link_with() links into one module. */
#define PTX_MAX_UNITS 1024u

/* As ptx_module_load_with(), for the |n| (1 to PTX_MAX_UNITS) PTX texts
 * |texts| of |lens| bytes, whose total, with one byte more per text when
 * |n| > 1 (the texts are kept joined by newlines), is at most
 * PTX_MAX_TEXT (else PTX_E_INVALID): the
 * translation units of a program built with relocatable device code
 * (nvcc -rdc=true), linked into one module as the device linker would.
 * Names without .visible, .weak or .common stay private to their unit
 * (every unit may have its own $str or static function); a .extern
 * function or variable is resolved to the definition another unit makes
 * .visible (or .weak: the first, unless a .visible one exists). Fails
 * with PTX_E_PARSE when two units define the same .visible name or a
 * declaration does not match its definition's parameters, and with
 * PTX_E_NOT_FOUND when a .extern function that is called, or a .extern
 * variable that is used, is defined nowhere; |err| names it and the
 * units. Messages about a line say "unit K, line N" when |n| > 1; the
 * lines of launch faults count through the texts one after the other. A
 * single text loads exactly as with ptx_module_load_with(). */
int ptx_module_link_with(const char *const *texts, const size_t *lens,
                         unsigned n, const struct ptx_global_ops *gops,
                         struct ptx_module **out, char *err, size_t errlen);

/* Frees a module and its kernels; NULL is a no-op. No launch of it may be
 * running. */
void ptx_module_free(struct ptx_module *m);

/* The module's PTX ISA version times 10 (".version 9.0" -> 90) and its
 * target SM (".target sm_75" -> 75); 0 where the text has none. */
int ptx_module_ptx_version(const struct ptx_module *m);
int ptx_module_target(const struct ptx_module *m);

/* Bytes of the module's .const variables, laid out one after the other
 * with their alignments (CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES). */
uint32_t ptx_module_const_size(const struct ptx_module *m);

/* The kernel named |name|, or NULL. A .weak .entry that several linked
 * units define (a template kernel each instantiates) is one kernel, the
 * definition the link kept. */
const struct ptx_kernel *ptx_module_kernel(const struct ptx_module *m,
                                           const char *name);

/* Kernel |i| (0, 1, ...) of the module in the order of its text (of its
 * units), or NULL past the last; each kernel once (see
 * ptx_module_kernel()). Constant time. */
const struct ptx_kernel *ptx_module_kernel_at(const struct ptx_module *m,
                                              uint32_t i);

/* The number of kernels ptx_module_kernel_at() lists; 0 for NULL. */
uint32_t ptx_module_kernel_count(const struct ptx_module *m);

/* Finds the module-scope .global or .const variable |name| and sets
 * |*addr| to its address (as kernels see it; a host address owned by the
 * module) and |*size|. Returns PTX_OK or PTX_E_NOT_FOUND. */
int ptx_module_global(const struct ptx_module *m, const char *name,
                      uint64_t *addr, uint64_t *size);

/* The kernel's name as in the PTX (mangled). */
const char *ptx_kernel_name(const struct ptx_kernel *k);

/* The number of parameters, and the layout of parameter |i| (PTX_OK, or
 * PTX_E_INVALID when |i| is out of range). */
unsigned ptx_kernel_param_count(const struct ptx_kernel *k);
int ptx_kernel_param(const struct ptx_kernel *k, unsigned i,
                     struct ptx_param_info *out);

/* Bytes of the packed parameter buffer: the end of the last parameter. */
uint32_t ptx_kernel_params_size(const struct ptx_kernel *k);

/* The most threads a block of |k| may have: its .maxntid or .reqntid
 * product, else PTX_MAX_BLOCK_THREADS (cuFuncGetAttribute). */
uint32_t ptx_kernel_max_threads(const struct ptx_kernel *k);

/* Bytes of static shared memory per block, and of local memory per
 * thread, including the functions it calls (cuFuncGetAttribute). */
uint32_t ptx_kernel_shared_size(const struct ptx_kernel *k);
uint32_t ptx_kernel_local_size(const struct ptx_kernel *k);

/* Registers per thread as declared by the kernel's .reg directives
 * (every name of a %r<N> range counts; predicates too), capped at 255
 * (CU_FUNC_ATTRIBUTE_NUM_REGS). */
uint32_t ptx_kernel_num_regs(const struct ptx_kernel *k);

/* Runs kernel |k| to completion with the configuration |l|. Returns
 * PTX_OK, PTX_E_INVALID / PTX_E_CONFIG (bad configuration, nothing run),
 * PTX_E_NOMEM, or the first fault of the grid: PTX_E_ILLEGAL_ADDRESS,
 * PTX_E_MISALIGNED, PTX_E_TRAP, PTX_E_ASSERT, PTX_E_DEADLOCK (a barrier
 * that can never complete, or lanes of a warp that wait for each other
 * for ever), PTX_E_CANCELLED, with
 * |err| naming the kernel, the block and thread, the PTX line and its
 * text, and the address. After a fault
 * the other blocks stop at their next instruction; memory they wrote stays
 * written. Several launches of one module may run at once. */
int ptx_launch(const struct ptx_kernel *k, const struct ptx_launch *l,
               char *err, size_t errlen);

/* Counts of thread-instructions executed by this process's launches
 * (summed over lanes), for measurements and tests. */
uint64_t ptx_stat_thread_insns(void);

#endif
