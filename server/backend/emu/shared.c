/* The emulated device's shared memory: see shared.h. */
#include "shared.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EMU_SHARED_MAGIC 0x67706d73u /* "gpms" */
#define EMU_SHARED_VERSION 1u

struct emu_shared_block {
  uint64_t off;             /* in the device memory */
  uint64_t span;            /* bytes; 0: an unused slot */
  int32_t pid;              /* the worker that holds it */
  uint32_t pad;
};

struct emu_shared {
  uint32_t magic;
  uint32_t version;
  uint64_t hdr_size;        /* bytes before the device memory */
  uint64_t size;            /* device memory bytes */
  uint64_t used;            /* bytes held by blocks */
  pthread_mutex_t lock;     /* process-shared, robust */
  uint32_t n;               /* blocks, sorted by offset in b[0..n) */
  uint32_t cap;
  /* Slots from n on are zero, so that a table left half-changed by a
   * worker that died holding the lock can be rebuilt (repair()). */
  struct emu_shared_block b[];
};

static uint64_t page_size(void) {
  return (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

static uint64_t header_bytes(void) {
  return round_up(sizeof(struct emu_shared) +
                      (uint64_t)EMU_SHARED_MAX_BLOCKS *
                          sizeof(struct emu_shared_block),
                  page_size());
}

static int by_offset(const void *a, const void *b) {
  const struct emu_shared_block *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* After a worker died holding the lock: the table may hold a block twice
 * or a copy out of place (a move cut short). Keeps every block once, in
 * order, without overlaps; the block being added or removed at the time
 * may be lost or kept, which only misplaces its bytes until the owner's
 * reap. */
static void repair(struct emu_shared *s) {
  uint32_t i, n = 0;

  for (i = 0; i < s->cap; i++)
    if (s->b[i].span != 0)
      s->b[n++] = s->b[i];
  qsort(s->b, n, sizeof(s->b[0]), by_offset);
  s->used = 0;
  for (i = 0, s->n = 0; i < n; i++) {
    struct emu_shared_block *prev = s->n ? &s->b[s->n - 1] : NULL;
    if (s->b[i].off >= s->size || s->b[i].span > s->size - s->b[i].off)
      continue;
    if (prev && s->b[i].off < prev->off + prev->span)
      continue;
    s->b[s->n++] = s->b[i];
    s->used += s->b[i].span;
  }
  memset(&s->b[s->n], 0, (size_t)(s->cap - s->n) * sizeof(s->b[0]));
}

static void lock(struct emu_shared *s) {
  int r = pthread_mutex_lock(&s->lock);

  if (r == EOWNERDEAD) {
    repair(s);
    pthread_mutex_consistent(&s->lock);
  }
}

static void unlock(struct emu_shared *s) {
  pthread_mutex_unlock(&s->lock);
}

int emu_shared_create(uint64_t size) {
  pthread_mutexattr_t ma;
  struct emu_shared *s;
  uint64_t hdr = header_bytes();
  int fd, e;

  size = round_up(size, page_size());
  fd = memfd_create("gpupool-emu-device-memory", MFD_CLOEXEC);
  if (fd < 0)
    return -1;
  if (ftruncate(fd, (off_t)(hdr + size)) != 0)
    goto fail;
  s = mmap(NULL, hdr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s == MAP_FAILED)
    goto fail;
  s->magic = EMU_SHARED_MAGIC;
  s->version = EMU_SHARED_VERSION;
  s->hdr_size = hdr;
  s->size = size;
  s->cap = EMU_SHARED_MAX_BLOCKS;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  e = pthread_mutex_init(&s->lock, &ma);
  pthread_mutexattr_destroy(&ma);
  munmap(s, hdr);
  if (e != 0) {
    errno = e;
    goto fail;
  }
  return fd;

fail:
  e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* Checks a header this process did not write. */
static bool header_ok(const struct emu_shared *s, uint64_t file_size) {
  return s->magic == EMU_SHARED_MAGIC && s->version == EMU_SHARED_VERSION &&
         s->hdr_size == header_bytes() && s->cap == EMU_SHARED_MAX_BLOCKS &&
         s->size > 0 && s->hdr_size + s->size == file_size;
}

static int64_t file_size(int fd) {
  off_t end = lseek(fd, 0, SEEK_END);
  return end < 0 ? -1 : (int64_t)end;
}

struct emu_shared *emu_shared_map_header(int fd) {
  int64_t fsz = file_size(fd);
  uint64_t hdr = header_bytes();
  struct emu_shared *s;

  if (fsz < 0 || (uint64_t)fsz <= hdr) {
    errno = EINVAL;
    return NULL;
  }
  s = mmap(NULL, hdr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s == MAP_FAILED)
    return NULL;
  if (!header_ok(s, (uint64_t)fsz)) {
    munmap(s, hdr);
    errno = EINVAL;
    return NULL;
  }
  return s;
}

struct emu_shared *emu_shared_map(int fd, uint64_t hint_end, uint8_t **mem,
                                  uint64_t *size) {
  int64_t fsz = file_size(fd);
  uint64_t hdr = header_bytes(), len;
  void *p = MAP_FAILED;
  struct emu_shared *s;

  if (fsz < 0 || (uint64_t)fsz <= hdr || (uint64_t)fsz > hint_end / 2) {
    errno = EINVAL;
    return NULL;
  }
  len = (uint64_t)fsz;
#ifdef MAP_FIXED_NOREPLACE
  p = mmap((void *)(uintptr_t)(hint_end - len), len, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
#endif
  if (p == MAP_FAILED)
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
             fd, 0);
  if (p == MAP_FAILED)
    return NULL;
  s = p;
  if (!header_ok(s, len)) {
    munmap(p, len);
    errno = EINVAL;
    return NULL;
  }
  *mem = (uint8_t *)p + hdr;
  *size = s->size;
  return s;
}

void emu_shared_unmap(struct emu_shared *s, bool all) {
  /* Sizes from this process's own knowledge, not from the header, which
   * other processes write. */
  if (s && all)
    munmap(s, header_bytes() + s->size);
  else if (s)
    munmap(s, header_bytes());
}

int emu_shared_take(struct emu_shared *s, uint64_t span, pid_t owner,
                    uint64_t *off) {
  uint64_t at = 0;
  uint32_t i;
  int r = -1;

  if (span == 0 || span > s->size)
    return -1;
  lock(s);
  if (s->n < s->cap && span <= s->size - s->used) {
    /* The gap before block i is [at, b[i].off). */
    for (i = 0; i <= s->n; i++) {
      uint64_t end = i < s->n ? s->b[i].off : s->size;
      if (end - at >= span) {
        memmove(&s->b[i + 1], &s->b[i],
                (size_t)(s->n - i) * sizeof(s->b[0]));
        s->b[i].off = at;
        s->b[i].span = span;
        s->b[i].pid = (int32_t)owner;
        s->b[i].pad = 0;
        s->n++;
        s->used += span;
        *off = at;
        r = 0;
        break;
      }
      if (i < s->n)
        at = s->b[i].off + s->b[i].span;
    }
  }
  unlock(s);
  return r;
}

/* Removes slot |i|. Called with the lock held. */
static void drop(struct emu_shared *s, uint32_t i) {
  s->used -= s->b[i].span;
  memmove(&s->b[i], &s->b[i + 1], (size_t)(s->n - i - 1) * sizeof(s->b[0]));
  s->n--;
  memset(&s->b[s->n], 0, sizeof(s->b[0]));
}

int emu_shared_put(struct emu_shared *s, uint64_t off, pid_t owner) {
  uint32_t lo = 0, hi, mid;
  int r = -1;

  lock(s);
  hi = s->n;
  while (lo < hi) {
    mid = lo + (hi - lo) / 2;
    if (s->b[mid].off < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < s->n && s->b[lo].off == off && s->b[lo].pid == (int32_t)owner) {
    drop(s, lo);
    r = 0;
  }
  unlock(s);
  return r;
}

uint64_t emu_shared_reap(struct emu_shared *s, pid_t owner, int zero_fd) {
  uint64_t freed = 0, hdr = header_bytes();
  uint32_t i, keep = 0;

  lock(s);
  for (i = 0; i < s->n; i++) {
    if (s->b[i].pid == (int32_t)owner) {
      freed += s->b[i].span;
      /* A hole reads as zeros (partial pages are zeroed). */
      if (zero_fd >= 0)
        fallocate(zero_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(hdr + s->b[i].off), (off_t)s->b[i].span);
    } else
      s->b[keep++] = s->b[i];
  }
  memset(&s->b[keep], 0, (size_t)(s->n - keep) * sizeof(s->b[0]));
  s->n = keep;
  s->used -= freed;
  unlock(s);
  return freed;
}

uint64_t emu_shared_free_bytes(struct emu_shared *s) {
  uint64_t f;

  lock(s);
  f = s->size - s->used;
  unlock(s);
  return f;
}
