/* The emu backend's device memory: one anonymous host mapping per session
 * (the "arena") and an allocator over it.
 *
 * Device addresses are the host addresses of the arena, so a device pointer
 * that the client holds is also where the worker reads and writes it. The
 * arena is placed at a fixed hint high in the address space (see
 * EMU_ARENA_HINT_END and docs/emulated-device.md) so that device addresses
 * do not collide with the client's own host addresses.
 *
 * Allocation is first fit, in units of EMU_ARENA_ALIGN bytes, over a free
 * list kept as a treap ordered by address and augmented with the largest
 * block in each subtree, so finding the lowest block that fits, freeing,
 * coalescing with both neighbours, and finding the live allocation that
 * contains an address are all O(log n).
 *
 * Every function returns a CUresult (0 is CUDA_SUCCESS). An arena is not
 * thread-safe: one thread (the session's worker) changes it; lookups may
 * run from many threads while it does not (a kernel launch).
 */
#ifndef GP_SERVER_EMU_ARENA_H
#define GP_SERVER_EMU_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Alignment of every allocation and granularity of its size. */
#define EMU_ARENA_ALIGN 512u

/* The arena ends at this address when the kernel lets us place it there:
 * 2 TiB below the top of the 47-bit user address space, far under the
 * stack and the mmap area of an ordinary process (which start near
 * 0x7fffffffffff and grow down) and far above its heap and executable. */
#define EMU_ARENA_HINT_END 0x7e0000000000ull

/* At most this many live allocations per arena; beyond it allocation fails
 * with CUDA_ERROR_OUT_OF_MEMORY (bounds the worker's own memory use). */
#define EMU_ARENA_MAX_LIVE (1u << 20)

/* A freed allocation at least this large is handed back to the kernel
 * (madvise MADV_DONTNEED) and reads as zeros when allocated again. */
#define EMU_ARENA_RELEASE_MIN (64u << 10)

struct emu_block; /* a treap node, private to arena.c */

/* Allocation flags (emu_arena_alloc_flags()). EMU_ALLOC_MODULE marks the
 * storage of a module's .global/.const variable: it is addressable like any
 * allocation, but emu_arena_release() refuses it (cuMemFree of a module
 * global is CUDA_ERROR_INVALID_VALUE); only emu_arena_release_flags() with
 * the same flags (module unload) or emu_arena_release_owner() (context
 * destroy) frees it. */
#define EMU_ALLOC_MODULE 0x1u

/* Who owns an allocation (a context). Embed one zeroed struct per owner;
 * the arena links the owner's allocations through it so that
 * emu_arena_release_owner() frees them in O(k log n). */
struct emu_owner {
  struct emu_block *head;
  uint64_t count;   /* live allocations */
  uint64_t bytes;   /* bytes reserved for them (multiples of the alignment) */
};

/* Allocation of the treap's nodes, replaceable for failing-allocation
 * tests. NULL members mean malloc/free. */
struct emu_arena_allocator {
  void *(*alloc)(void *opaque, size_t n);
  void (*free)(void *opaque, void *p);
  void *opaque;
};

struct emu_arena {
  uint8_t *base;            /* the mapping */
  uint64_t size;            /* its length: a multiple of the page size */
  uint64_t used;            /* bytes reserved by live allocations */
  uint64_t nlive;           /* live allocations */
  uint64_t max_live;        /* limit on nlive */
  bool at_hint;             /* placed at the documented address */
  struct emu_block *live;   /* live allocations by address */
  struct emu_block *free;   /* free blocks by address, never adjacent;
                             * unused with |shared| */
  struct emu_shared *shared; /* --emu-shared-memory: the server-wide
                             * device memory (shared.h) blocks come from;
                             * NULL: a private mapping */
  int32_t pid;              /* with |shared|: the owner of our blocks */
  bool scrub_free;          /* with |shared|: zero a block before it goes
                             * back (--scrub): another session may take it
                             * at once */
  uint64_t rng;             /* treap priorities */
  struct emu_arena_allocator na;
};

/* What emu_arena_lookup() reports about one allocation. */
struct emu_alloc_info {
  uint64_t base;            /* device (= host) address */
  uint64_t size;            /* bytes requested */
  uint64_t span;            /* bytes reserved: size rounded up */
  unsigned flags;           /* EMU_ALLOC_* */
  struct emu_owner *owner;
};

/* Maps an arena of |size| bytes (rounded up to the page size) at the hint,
 * or anywhere if that range is taken. |na| may be NULL (malloc). Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE for a size under EMU_ARENA_ALIGN,
 * or CUDA_ERROR_OUT_OF_MEMORY when the mapping or its bookkeeping fails. */
int emu_arena_init(struct emu_arena *a, uint64_t size,
                   const struct emu_arena_allocator *na);

/* As emu_arena_init(), on the shared device memory on |fd| (shared.h):
 * the arena's allocations are blocks of it, owned by this process, and
 * only they pass emu_arena_check() and emu_arena_lookup(). A freed block
 * keeps its contents (the next session may get them): zeroing is
 * emu_arena_scrub()'s. */
int emu_arena_init_shared(struct emu_arena *a, int fd,
                          const struct emu_arena_allocator *na);

/* --scrub: zeroes every byte of every live allocation. Sets |*bytes| to
 * the bytes zeroed. */
void emu_arena_scrub(struct emu_arena *a, uint64_t *bytes);

/* Unmaps the arena and frees the bookkeeping. Owners embedded elsewhere
 * are left dangling: do not use them afterwards. Safe on a zeroed struct. */
void emu_arena_free(struct emu_arena *a);

/* Allocates |size| bytes for |owner| (not NULL) and sets |*addr|. Returns
 * CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE for size 0, or
 * CUDA_ERROR_OUT_OF_MEMORY when no free block fits, the live-allocation
 * limit is reached, or bookkeeping memory cannot be had. */
int emu_arena_alloc(struct emu_arena *a, struct emu_owner *owner,
                    uint64_t size, uint64_t *addr);

/* As emu_arena_alloc(), marking the allocation with |flags| (EMU_ALLOC_*,
 * 0 for none). */
int emu_arena_alloc_flags(struct emu_arena *a, struct emu_owner *owner,
                          uint64_t size, unsigned flags, uint64_t *addr);

/* cuMemAllocPitch: rows of |width| bytes, |height| rows, each row starting
 * at a multiple of EMU_ARENA_ALIGN. Sets |*addr| and |*pitch|. Returns
 * CUDA_ERROR_INVALID_VALUE for a zero width or height or an element size
 * other than 4, 8 or 16, CUDA_ERROR_OUT_OF_MEMORY as emu_arena_alloc(). */
int emu_arena_alloc_pitch(struct emu_arena *a, struct emu_owner *owner,
                          uint64_t width, uint64_t height,
                          unsigned element_size, uint64_t *addr,
                          uint64_t *pitch);

/* Frees the allocation that starts at |addr| (cuMemFree). Returns
 * CUDA_ERROR_INVALID_VALUE when no allocation starts there (unknown or
 * interior pointer) or it has flags (a module's variable). Never
 * allocates, so it cannot fail otherwise. */
int emu_arena_release(struct emu_arena *a, uint64_t addr);

/* Frees the allocation that starts at |addr| if its flags are exactly
 * |flags|. Returns CUDA_SUCCESS or CUDA_ERROR_INVALID_VALUE (none starts
 * there, or other flags). */
int emu_arena_release_flags(struct emu_arena *a, uint64_t addr,
                            unsigned flags);

/* Frees every allocation of |owner|, whatever its flags. */
void emu_arena_release_owner(struct emu_arena *a, struct emu_owner *owner);

/* Finds the live allocation that contains |addr|. Returns CUDA_SUCCESS and
 * fills |*out| (may be NULL), or CUDA_ERROR_NOT_FOUND. Only reads the
 * arena: any number of threads may call it (and emu_arena_check()) at once
 * while no thread changes the arena. */
int emu_arena_lookup(const struct emu_arena *a, uint64_t addr,
                     struct emu_alloc_info *out);

/* Checks that [addr, addr+n) lies inside one live allocation (a zero-length
 * range: that |addr| does) and sets |*host| (may be NULL) to its host
 * address. Returns CUDA_SUCCESS or CUDA_ERROR_INVALID_VALUE; never
 * overflows, whatever the values. */
int emu_arena_check(const struct emu_arena *a, uint64_t addr, uint64_t n,
                    void **host);

/* cuMemGetInfo: |*free_b| = arena bytes not reserved by an allocation,
 * |*total| = the arena size. */
void emu_arena_info(const struct emu_arena *a, uint64_t *free_b,
                    uint64_t *total);

/* The number of free blocks (for tests of coalescing). O(n). */
uint64_t emu_arena_free_blocks(const struct emu_arena *a);

#endif
