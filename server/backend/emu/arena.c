/* The emu arena: see arena.h.
 *
 * Two treaps over the same node type, both ordered by address: |live| holds
 * the live allocations, |free| the free blocks. Free blocks and the spans of
 * live allocations tile the arena exactly, and two free blocks are never
 * adjacent (a free coalesces with both neighbours). Each free-tree node
 * carries the largest block size in its subtree, which makes first fit a
 * single descent. Treap priorities come from a private PRNG, so a client
 * cannot steer the shape of the trees.
 */
#include "arena.h"
#include "shared.h"

#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct emu_block {
  uint64_t addr;            /* first byte */
  uint64_t size;            /* live: bytes requested; free: block length */
  uint64_t span;            /* live: bytes reserved; free: == size */
  uint64_t max;             /* free tree: largest size in the subtree */
  uint32_t prio;
  unsigned flags;           /* live: EMU_ALLOC_* */
  struct emu_block *l, *r;
  struct emu_owner *owner;  /* live only */
  struct emu_block *oprev, *onext;
};

/* ---- treap ---------------------------------------------------------------- */

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t m = a > b ? a : b;
  return m > c ? m : c;
}

static void pull(struct emu_block *t) {
  t->max = max3(t->size, t->l ? t->l->max : 0, t->r ? t->r->max : 0);
}

/* Splits |t| into |*a| (addresses < key) and |*b| (>= key). */
static void split(struct emu_block *t, uint64_t key, struct emu_block **a,
                  struct emu_block **b) {
  if (!t) {
    *a = *b = NULL;
    return;
  }
  if (t->addr < key) {
    split(t->r, key, &t->r, b);
    pull(t);
    *a = t;
  } else {
    split(t->l, key, a, &t->l);
    pull(t);
    *b = t;
  }
}

/* Joins |a| and |b|, every address in |a| below every one in |b|. */
static struct emu_block *merge(struct emu_block *a, struct emu_block *b) {
  if (!a)
    return b;
  if (!b)
    return a;
  if (a->prio > b->prio) {
    a->r = merge(a->r, b);
    pull(a);
    return a;
  }
  b->l = merge(a, b->l);
  pull(b);
  return b;
}

static void insert(struct emu_block **root, struct emu_block *n) {
  struct emu_block *a, *b;
  n->l = n->r = NULL;
  pull(n);
  split(*root, n->addr, &a, &b);
  *root = merge(merge(a, n), b);
}

/* Unlinks and returns the node whose address is exactly |addr|, or NULL. */
static struct emu_block *remove_at(struct emu_block **tp, uint64_t addr) {
  struct emu_block *t = *tp, *found;
  if (!t)
    return NULL;
  if (addr == t->addr) {
    *tp = merge(t->l, t->r);
    t->l = t->r = NULL;
    return t;
  }
  found = remove_at(addr < t->addr ? &t->l : &t->r, addr);
  if (found)
    pull(t);
  return found;
}

/* The node with the largest address <= |addr|, or NULL. */
static struct emu_block *floor_node(struct emu_block *t, uint64_t addr) {
  struct emu_block *best = NULL;
  while (t) {
    if (t->addr <= addr) {
      best = t;
      t = t->r;
    } else {
      t = t->l;
    }
  }
  return best;
}

/* The node with the smallest address > |addr|, or NULL. */
static struct emu_block *above_node(struct emu_block *t, uint64_t addr) {
  struct emu_block *best = NULL;
  while (t) {
    if (t->addr > addr) {
      best = t;
      t = t->l;
    } else {
      t = t->r;
    }
  }
  return best;
}

/* First fit: carves |span| bytes off the front of the lowest free block
 * that holds them and sets |*addr|. A block used up entirely is unlinked
 * and returned in |*gone| for the caller to reuse or free. Returns false
 * when no block fits. */
static bool take_first_fit(struct emu_block **tp, uint64_t span,
                           uint64_t *addr, struct emu_block **gone) {
  struct emu_block *t = *tp;
  if (!t || t->max < span)
    return false;
  if (t->l && t->l->max >= span) {
    take_first_fit(&t->l, span, addr, gone);
  } else if (t->size >= span) {
    *addr = t->addr;
    if (t->size == span) {
      *tp = merge(t->l, t->r);
      t->l = t->r = NULL;
      *gone = t;
      return true;
    }
    /* Shrinking a block from the front keeps it between its neighbours,
     * so it stays where it is in the tree. */
    t->addr += span;
    t->size -= span;
    t->span = t->size;
  } else {
    take_first_fit(&t->r, span, addr, gone);
  }
  pull(t);
  return true;
}

static uint64_t count_nodes(const struct emu_block *t) {
  return t ? 1 + count_nodes(t->l) + count_nodes(t->r) : 0;
}

/* ---- nodes ---------------------------------------------------------------- */

static uint32_t next_prio(struct emu_arena *a) {
  /* xorshift64* */
  a->rng ^= a->rng >> 12;
  a->rng ^= a->rng << 25;
  a->rng ^= a->rng >> 27;
  return (uint32_t)((a->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static struct emu_block *node_new(struct emu_arena *a) {
  struct emu_block *n = a->na.alloc ? a->na.alloc(a->na.opaque, sizeof(*n))
                                    : malloc(sizeof(*n));
  if (!n)
    return NULL;
  memset(n, 0, sizeof(*n));
  n->prio = next_prio(a);
  return n;
}

static void node_del(struct emu_arena *a, struct emu_block *n) {
  if (!n)
    return;
  if (a->na.free)
    a->na.free(a->na.opaque, n);
  else
    free(n);
}

static void tree_del(struct emu_arena *a, struct emu_block *t) {
  while (t) {
    struct emu_block *r = t->r;
    tree_del(a, t->l);
    node_del(a, t);
    t = r;
  }
}

static uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

/* ---- public --------------------------------------------------------------- */

int emu_arena_init(struct emu_arena *a, uint64_t size,
                   const struct emu_arena_allocator *na) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  struct emu_block *n;
  void *p = MAP_FAILED;
  struct timespec ts;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

  memset(a, 0, sizeof(*a));
  if (na)
    a->na = *na;
  if (size < EMU_ARENA_ALIGN)
    return CUDA_ERROR_INVALID_VALUE;
  /* Keep sizes far from overflow: no arena is larger than the hint. */
  if (size > EMU_ARENA_HINT_END / 2)
    return CUDA_ERROR_OUT_OF_MEMORY;
  size = round_up(size, page);

#ifdef MAP_FIXED_NOREPLACE
  /* Kernels before 4.17 ignore the flag and treat the address as a hint,
   * which may put the mapping elsewhere: accepted, it is still ours. */
  p = mmap((void *)(uintptr_t)(EMU_ARENA_HINT_END - size), size,
           PROT_READ | PROT_WRITE, flags | MAP_FIXED_NOREPLACE, -1, 0);
#endif
  if (p == MAP_FAILED)
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    return CUDA_ERROR_OUT_OF_MEMORY;
  a->base = p;
  a->size = size;
  a->at_hint = (uintptr_t)p == EMU_ARENA_HINT_END - size;
  a->max_live = EMU_ARENA_MAX_LIVE;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  a->rng = ((uint64_t)(uintptr_t)a ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)ts.tv_sec << 32)) | 1;

  n = node_new(a);
  if (!n) {
    munmap(a->base, a->size);
    a->base = NULL;
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  n->addr = (uint64_t)(uintptr_t)a->base;
  n->size = n->span = size;
  insert(&a->free, n);
  return CUDA_SUCCESS;
}

int emu_arena_init_shared(struct emu_arena *a, int fd,
                          const struct emu_arena_allocator *na) {
  struct timespec ts;
  uint8_t *mem;
  uint64_t size;

  memset(a, 0, sizeof(*a));
  if (na)
    a->na = *na;
  a->shared = emu_shared_map(fd, EMU_ARENA_HINT_END, &mem, &size);
  if (!a->shared)
    return CUDA_ERROR_OUT_OF_MEMORY;
  a->base = mem;
  a->size = size;
  a->at_hint = (uintptr_t)mem + size == EMU_ARENA_HINT_END;
  a->max_live = EMU_ARENA_MAX_LIVE;
  a->pid = (int32_t)getpid();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  a->rng = ((uint64_t)(uintptr_t)a ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)ts.tv_sec << 32)) | 1;
  return CUDA_SUCCESS;
}

/* Zeroes [addr, addr+len): whole pages are handed back (they read as zeros
 * after), the partial ones at the ends are written. */
static void zero_range(const struct emu_arena *a, uint64_t addr,
                       uint64_t len) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t lo = round_up(addr, page), hi = (addr + len) / page * page;
  int advice = a->shared ? MADV_REMOVE : MADV_DONTNEED;

  if (hi <= lo) {
    memset((void *)(uintptr_t)addr, 0, len);
    return;
  }
  memset((void *)(uintptr_t)addr, 0, lo - addr);
  memset((void *)(uintptr_t)hi, 0, addr + len - hi);
  if (madvise((void *)(uintptr_t)lo, hi - lo, advice) != 0)
    memset((void *)(uintptr_t)lo, 0, hi - lo);
}

static void scrub_tree(const struct emu_arena *a, const struct emu_block *t,
                       uint64_t *bytes) {
  while (t) {
    scrub_tree(a, t->l, bytes);
    zero_range(a, t->addr, t->span);
    *bytes += t->span;
    t = t->r;
  }
}

void emu_arena_scrub(struct emu_arena *a, uint64_t *bytes) {
  *bytes = 0;
  scrub_tree(a, a->live, bytes);
}

/* Gives every block of |t| back to the shared memory. */
static void shared_put_tree(struct emu_arena *a, const struct emu_block *t) {
  while (t) {
    shared_put_tree(a, t->l);
    emu_shared_put(a->shared, t->addr - (uint64_t)(uintptr_t)a->base,
                   a->pid);
    t = t->r;
  }
}

void emu_arena_free(struct emu_arena *a) {
  if (a->shared) {
    shared_put_tree(a, a->live);
    tree_del(a, a->live);
    emu_shared_unmap(a->shared, true);
    a->shared = NULL;
    a->live = NULL;
    a->base = NULL;
    a->size = a->used = a->nlive = 0;
    return;
  }
  tree_del(a, a->live);
  tree_del(a, a->free);
  if (a->base)
    munmap(a->base, a->size);
  a->live = a->free = NULL;
  a->base = NULL;
  a->size = a->used = a->nlive = 0;
}

int emu_arena_alloc(struct emu_arena *a, struct emu_owner *owner,
                    uint64_t size, uint64_t *addr) {
  return emu_arena_alloc_flags(a, owner, size, 0, addr);
}

int emu_arena_alloc_flags(struct emu_arena *a, struct emu_owner *owner,
                          uint64_t size, unsigned flags, uint64_t *addr) {
  struct emu_block *n, *gone = NULL;
  uint64_t span, at = 0;

  if (size == 0)
    return CUDA_ERROR_INVALID_VALUE;
  /* |size| <= a->size < 2^46, so rounding cannot overflow. */
  if (size > a->size - a->used || a->nlive >= a->max_live)
    return CUDA_ERROR_OUT_OF_MEMORY;
  span = round_up(size, EMU_ARENA_ALIGN);
  if (a->shared) {
    uint64_t off;
    n = node_new(a);
    if (!n)
      return CUDA_ERROR_OUT_OF_MEMORY;
    if (emu_shared_take(a->shared, span, a->pid, &off) != 0) {
      node_del(a, n);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    at = (uint64_t)(uintptr_t)a->base + off;
  } else {
    if (!a->free || a->free->max < span)
      return CUDA_ERROR_OUT_OF_MEMORY;
    n = node_new(a);
    if (!n)
      return CUDA_ERROR_OUT_OF_MEMORY;
    if (!take_first_fit(&a->free, span, &at, &gone)) {
      node_del(a, n);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    node_del(a, gone);
  }

  n->addr = at;
  n->size = size;
  n->span = span;
  n->flags = flags;
  n->owner = owner;
  n->oprev = NULL;
  n->onext = owner->head;
  if (owner->head)
    owner->head->oprev = n;
  owner->head = n;
  owner->count++;
  owner->bytes += span;
  insert(&a->live, n);
  a->used += span;
  a->nlive++;
  *addr = at;
  return CUDA_SUCCESS;
}

int emu_arena_alloc_pitch(struct emu_arena *a, struct emu_owner *owner,
                          uint64_t width, uint64_t height,
                          unsigned element_size, uint64_t *addr,
                          uint64_t *pitch) {
  uint64_t p;
  int r;

  if (width == 0 || height == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (element_size != 4 && element_size != 8 && element_size != 16)
    return CUDA_ERROR_INVALID_VALUE;
  /* Anything larger than the arena cannot fit; checking first keeps the
   * arithmetic below far from overflow. */
  if (width > a->size || height > a->size)
    return CUDA_ERROR_OUT_OF_MEMORY;
  p = round_up(width, EMU_ARENA_ALIGN);
  if (p > a->size / height)
    return CUDA_ERROR_OUT_OF_MEMORY;
  r = emu_arena_alloc(a, owner, p * height, addr);
  if (r == CUDA_SUCCESS)
    *pitch = p;
  return r;
}

/* Gives the pages of a freed range back and zeroes its partial pages, so
 * the whole range reads as zeros when allocated again. */
static void give_back(uint64_t addr, uint64_t len) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t lo = round_up(addr, page), hi = (addr + len) / page * page;

  if (hi <= lo) {
    memset((void *)(uintptr_t)addr, 0, len);
    return;
  }
  memset((void *)(uintptr_t)addr, 0, lo - addr);
  memset((void *)(uintptr_t)hi, 0, addr + len - hi);
  if (madvise((void *)(uintptr_t)lo, hi - lo, MADV_DONTNEED) != 0)
    memset((void *)(uintptr_t)lo, 0, hi - lo); /* keep the contract */
}

/* The live allocation that starts exactly at |addr|, or NULL. */
static struct emu_block *live_at(const struct emu_arena *a, uint64_t addr) {
  struct emu_block *n = floor_node(a->live, addr);
  return n && n->addr == addr ? n : NULL;
}

int emu_arena_release(struct emu_arena *a, uint64_t addr) {
  return emu_arena_release_flags(a, addr, 0);
}

int emu_arena_release_flags(struct emu_arena *a, uint64_t addr,
                            unsigned flags) {
  struct emu_block *n, *prev, *next;
  uint64_t lo, hi;

  n = live_at(a, addr);
  if (!n || n->flags != flags)
    return CUDA_ERROR_INVALID_VALUE;
  remove_at(&a->live, addr);

  if (n->oprev)
    n->oprev->onext = n->onext;
  else
    n->owner->head = n->onext;
  if (n->onext)
    n->onext->oprev = n->oprev;
  n->owner->count--;
  n->owner->bytes -= n->span;
  a->used -= n->span;
  a->nlive--;

  lo = n->addr;
  hi = n->addr + n->span;
  if (a->shared) {
    /* Without --scrub the bytes stay as they are, as on a real GPU. With
     * it they are zeroed first: the block is free for every session from
     * here on, and the end-of-session scrub sees live blocks only. */
    if (a->scrub_free)
      zero_range(a, lo, n->span);
    emu_shared_put(a->shared, lo - (uint64_t)(uintptr_t)a->base, a->pid);
    node_del(a, n);
    return CUDA_SUCCESS;
  }
  if (n->span >= EMU_ARENA_RELEASE_MIN)
    give_back(lo, n->span);

  /* Coalesce with the free neighbours; the freed node becomes the merged
   * block, so a free never needs memory. */
  prev = floor_node(a->free, lo);
  if (prev && prev->addr + prev->size == lo) {
    remove_at(&a->free, prev->addr);
    lo = prev->addr;
    node_del(a, prev);
  }
  next = above_node(a->free, lo);
  if (next && next->addr == hi) {
    remove_at(&a->free, next->addr);
    hi = next->addr + next->size;
    node_del(a, next);
  }
  memset(n, 0, sizeof(*n));
  n->prio = next_prio(a);
  n->addr = lo;
  n->size = n->span = hi - lo;
  insert(&a->free, n);
  return CUDA_SUCCESS;
}

void emu_arena_release_owner(struct emu_arena *a, struct emu_owner *owner) {
  while (owner->head)
    emu_arena_release_flags(a, owner->head->addr, owner->head->flags);
}

int emu_arena_lookup(const struct emu_arena *a, uint64_t addr,
                     struct emu_alloc_info *out) {
  const struct emu_block *n = floor_node(a->live, addr);

  if (!n || addr - n->addr >= n->size)
    return CUDA_ERROR_NOT_FOUND;
  if (out) {
    out->base = n->addr;
    out->size = n->size;
    out->span = n->span;
    out->flags = n->flags;
    out->owner = n->owner;
  }
  return CUDA_SUCCESS;
}

int emu_arena_check(const struct emu_arena *a, uint64_t addr, uint64_t n,
                    void **host) {
  const struct emu_block *b = floor_node(a->live, addr);
  uint64_t off;

  if (!b)
    return CUDA_ERROR_INVALID_VALUE;
  off = addr - b->addr;
  /* Compared as lengths from the allocation's start: no sum can wrap. */
  if (off >= b->size || n > b->size - off)
    return CUDA_ERROR_INVALID_VALUE;
  if (host)
    *host = (void *)(uintptr_t)addr;
  return CUDA_SUCCESS;
}

void emu_arena_info(const struct emu_arena *a, uint64_t *free_b,
                    uint64_t *total) {
  if (a->shared) {
    *free_b = emu_shared_free_bytes(a->shared);
    *total = a->size;
    return;
  }
  *free_b = a->size - a->used;
  *total = a->size;
}

uint64_t emu_arena_free_blocks(const struct emu_arena *a) {
  return count_nodes(a->free);
}
