/* Unit tests of the emu backend: the arena allocator
 * (server/backend/emu/arena.c), the id map (idmap.c), the device table
 * (device.c) and the ops table (emu.c), called directly. */
#include <check.h>
#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend/emu/arena.h"
#include "backend/emu/emu.h"
#include "backend/emu/shared.h"
#include "idmap.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static struct emu_arena arena;
static struct emu_owner owner, owner2;

static void arena_setup(uint64_t size) {
  memset(&owner, 0, sizeof(owner));
  memset(&owner2, 0, sizeof(owner2));
  ck_assert_int_eq(emu_arena_init(&arena, size, NULL), CUDA_SUCCESS);
}

static uint64_t alloc_ok(uint64_t size) {
  uint64_t p = 0;
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, size, &p), CUDA_SUCCESS);
  return p;
}

static uint64_t base(void) {
  return (uint64_t)(uintptr_t)arena.base;
}

/* ---- arena ---------------------------------------------------------------- */

START_TEST(test_arena_init_maps_at_hint) {
  uint64_t fr, total;

  arena_setup(1 * MiB);
  ck_assert_ptr_nonnull(arena.base);
  ck_assert_uint_eq(arena.size, 1 * MiB);
  ck_assert_uint_eq(base() % (uint64_t)sysconf(_SC_PAGESIZE), 0);
  /* Nothing else in this test process sits there, so we get the hint. */
  ck_assert(arena.at_hint);
  ck_assert_uint_eq(base() + arena.size, EMU_ARENA_HINT_END);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, 1 * MiB);
  ck_assert_uint_eq(total, 1 * MiB);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_init_rounds_and_rejects_tiny) {
  struct emu_arena a;

  ck_assert_int_eq(emu_arena_init(&a, 0, NULL), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_init(&a, EMU_ARENA_ALIGN - 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_init(&a, 5000, NULL), CUDA_SUCCESS);
  ck_assert_uint_eq(a.size % (uint64_t)sysconf(_SC_PAGESIZE), 0);
  ck_assert_uint_ge(a.size, 5000);
  emu_arena_free(&a);
  /* A second arena while the first holds the hint goes elsewhere. */
  arena_setup(1 * MiB);
  ck_assert_int_eq(emu_arena_init(&a, 1 * MiB, NULL), CUDA_SUCCESS);
  ck_assert(!a.at_hint);
  ck_assert_ptr_ne(a.base, arena.base);
  emu_arena_free(&a);
  emu_arena_free(&arena);
  emu_arena_free(&arena); /* twice is harmless */
}
END_TEST

START_TEST(test_arena_alloc_free_first_fit) {
  uint64_t a, b, c, fr, total;

  arena_setup(1 * MiB);
  a = alloc_ok(100);
  b = alloc_ok(600);
  c = alloc_ok(1);
  ck_assert_uint_eq(a, base());
  ck_assert_uint_eq(b, base() + 512);
  ck_assert_uint_eq(c, base() + 512 + 1024);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(total - fr, 512 + 1024 + 512);
  ck_assert_uint_eq(owner.count, 3);

  ck_assert_int_eq(emu_arena_release(&arena, b), CUDA_SUCCESS);
  /* The hole is the lowest block that fits. */
  ck_assert_uint_eq(alloc_ok(1024), b);
  ck_assert_int_eq(emu_arena_release(&arena, a), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_release(&arena, b), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_release(&arena, c), CUDA_SUCCESS);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, total);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 1);
  ck_assert_uint_eq(owner.count, 0);
  ck_assert_uint_eq(owner.bytes, 0);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_alignment) {
  uint64_t sizes[] = {1, 3, 511, 512, 513, 1000, 4095, 4096, 70000, 12345};
  size_t i;

  arena_setup(4 * MiB);
  for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    uint64_t p = alloc_ok(sizes[i]);
    ck_assert_uint_eq(p % EMU_ARENA_ALIGN, 0);
  }
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_zero_size_is_invalid) {
  uint64_t p = 7;

  arena_setup(1 * MiB);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 0, &p),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_uint_eq(p, 7);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_lookup_interior_pointers) {
  struct emu_alloc_info info;
  uint64_t a, b;

  arena_setup(1 * MiB);
  a = alloc_ok(100);
  b = alloc_ok(5000);
  ck_assert_int_eq(emu_arena_lookup(&arena, a, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.base, a);
  ck_assert_uint_eq(info.size, 100);
  ck_assert_uint_eq(info.span, 512);
  ck_assert_ptr_eq(info.owner, &owner);
  ck_assert_int_eq(emu_arena_lookup(&arena, a + 99, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.base, a);
  /* The padding after the requested size belongs to nobody. */
  ck_assert_int_eq(emu_arena_lookup(&arena, a + 100, NULL),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(emu_arena_lookup(&arena, b + 4999, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.base, b);
  ck_assert_uint_eq(info.size, 5000);
  ck_assert_int_eq(emu_arena_lookup(&arena, b + 5000, NULL),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(emu_arena_lookup(&arena, a - 1, NULL),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(emu_arena_lookup(&arena, 0, NULL), CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(emu_arena_lookup(&arena, UINT64_MAX, NULL),
                   CUDA_ERROR_NOT_FOUND);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_range_edges) {
  uint64_t p, q;
  void *host = NULL;

  arena_setup(1 * MiB);
  p = alloc_ok(1000);
  q = alloc_ok(1000);
  ck_assert_int_eq(emu_arena_check(&arena, p, 1000, &host), CUDA_SUCCESS);
  ck_assert_ptr_eq(host, (void *)(uintptr_t)p);
  /* exact end, one past */
  ck_assert_int_eq(emu_arena_check(&arena, p + 999, 1, NULL), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_check(&arena, p, 1001, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&arena, p + 1000, 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  /* a range spanning two allocations is refused even though both live */
  ck_assert_int_eq(emu_arena_check(&arena, p + 500, q - p, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  /* zero length: valid inside an allocation, not at its end */
  ck_assert_int_eq(emu_arena_check(&arena, p, 0, NULL), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_check(&arena, p + 999, 0, NULL), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_check(&arena, p + 1000, 0, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  /* p + n overflowing the address space */
  ck_assert_int_eq(emu_arena_check(&arena, p + 10, UINT64_MAX, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&arena, p, UINT64_MAX - p + 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&arena, UINT64_MAX, 2, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&arena, 0, 16, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  /* a freed allocation is no longer a valid range */
  ck_assert_int_eq(emu_arena_release(&arena, p), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_check(&arena, p, 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_exhaustion_and_oom) {
  uint64_t p[128], extra, fr, total;
  int i;

  arena_setup(64 * KiB);
  for (i = 0; i < 128; i++)
    p[i] = alloc_ok(512);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, 0);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 1, &extra),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(emu_arena_release(&arena, p[77]), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 513, &extra),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_uint_eq(alloc_ok(512), p[77]);
  emu_arena_free(&arena);

  arena_setup(64 * KiB);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 64 * KiB + 1, &extra),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, UINT64_MAX, &extra),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, UINT64_MAX - 100, &extra),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_uint_eq(alloc_ok(64 * KiB), base());
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_live_limit) {
  uint64_t p;
  int i;

  arena_setup(1 * MiB);
  arena.max_live = 10;
  for (i = 0; i < 10; i++)
    alloc_ok(1);
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 1, &p),
                   CUDA_ERROR_OUT_OF_MEMORY);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_fragmentation_coalesces) {
  enum { N = 2048 };
  static uint64_t p[N];
  uint64_t fr, total;
  int i;

  arena_setup(N * 512);
  for (i = 0; i < N; i++)
    p[i] = alloc_ok(512);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 0);
  for (i = 0; i < N; i += 2)
    ck_assert_int_eq(emu_arena_release(&arena, p[i]), CUDA_SUCCESS);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), N / 2);
  /* Half the arena is free, but no two blocks in a row. */
  ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 1024, &fr),
                   CUDA_ERROR_OUT_OF_MEMORY);
  /* Free the odd ones from the top down: each merges both neighbours. */
  for (i = N - 1; i > 0; i -= 2)
    ck_assert_int_eq(emu_arena_release(&arena, p[i]), CUDA_SUCCESS);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 1);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, total);
  ck_assert_uint_eq(alloc_ok(N * 512), base());
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_free_unknown_or_interior) {
  uint64_t p;

  arena_setup(1 * MiB);
  p = alloc_ok(4096);
  ck_assert_int_eq(emu_arena_release(&arena, p + 1),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&arena, p + 512),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&arena, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&arena, 12345),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&arena, UINT64_MAX),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&arena, p), CUDA_SUCCESS);
  /* double free */
  ck_assert_int_eq(emu_arena_release(&arena, p), CUDA_ERROR_INVALID_VALUE);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_owner_release) {
  uint64_t a[10], b[10], fr, total;
  int i;

  arena_setup(1 * MiB);
  for (i = 0; i < 10; i++) {
    ck_assert_int_eq(emu_arena_alloc(&arena, &owner, 1000, &a[i]), 0);
    ck_assert_int_eq(emu_arena_alloc(&arena, &owner2, 3000, &b[i]), 0);
  }
  ck_assert_uint_eq(owner.count, 10);
  ck_assert_uint_eq(owner.bytes, 10 * 1024);
  ck_assert_uint_eq(owner2.bytes, 10 * 3072);
  emu_arena_release_owner(&arena, &owner);
  ck_assert_uint_eq(owner.count, 0);
  ck_assert_ptr_null(owner.head);
  for (i = 0; i < 10; i++) {
    ck_assert_int_eq(emu_arena_check(&arena, a[i], 1, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    ck_assert_int_eq(emu_arena_check(&arena, b[i], 3000, NULL),
                     CUDA_SUCCESS);
  }
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(total - fr, 10 * 3072);
  emu_arena_release_owner(&arena, &owner2);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, total);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 1);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_module_flag) {
  struct emu_alloc_info info;
  uint64_t plain, var, var2, fr, total;
  void *host = NULL;

  arena_setup(1 * MiB);
  plain = alloc_ok(100);
  ck_assert_int_eq(emu_arena_alloc_flags(&arena, &owner, 12, EMU_ALLOC_MODULE,
                                         &var), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_alloc_flags(&arena, &owner, 4, EMU_ALLOC_MODULE,
                                         &var2), CUDA_SUCCESS);
  ck_assert_uint_eq(var % EMU_ARENA_ALIGN, 0);
  ck_assert_uint_eq(owner.count, 3);
  /* A flagged allocation is addressable like any other... */
  ck_assert_int_eq(emu_arena_lookup(&arena, var + 11, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.base, var);
  ck_assert_uint_eq(info.size, 12);
  ck_assert_uint_eq(info.flags, EMU_ALLOC_MODULE);
  ck_assert_ptr_eq(info.owner, &owner);
  ck_assert_int_eq(emu_arena_check(&arena, var, 12, &host), CUDA_SUCCESS);
  ck_assert_ptr_eq(host, (void *)(uintptr_t)var);
  ck_assert_int_eq(emu_arena_check(&arena, var, 13, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_lookup(&arena, plain, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.flags, 0);
  /* ...but a plain free refuses it, and a flagged free refuses the rest. */
  ck_assert_int_eq(emu_arena_release(&arena, var), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release_flags(&arena, plain, EMU_ALLOC_MODULE),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release_flags(&arena, var + 1,
                                           EMU_ALLOC_MODULE),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&arena, var, 12, NULL), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_release_flags(&arena, var, EMU_ALLOC_MODULE),
                   CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_check(&arena, var, 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release_flags(&arena, var, EMU_ALLOC_MODULE),
                   CUDA_ERROR_INVALID_VALUE);
  /* Releasing the owner frees flagged allocations too. */
  emu_arena_release_owner(&arena, &owner);
  ck_assert_uint_eq(owner.count, 0);
  ck_assert_int_eq(emu_arena_check(&arena, var2, 1, NULL),
                   CUDA_ERROR_INVALID_VALUE);
  emu_arena_info(&arena, &fr, &total);
  ck_assert_uint_eq(fr, total);
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 1);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_info_accounting) {
  uint64_t p[5], fr, total, want = 0;
  uint64_t sizes[5] = {1, 512, 513, 100000, 7};
  int i;

  arena_setup(1 * MiB);
  for (i = 0; i < 5; i++) {
    p[i] = alloc_ok(sizes[i]);
    want += (sizes[i] + 511) / 512 * 512;
    emu_arena_info(&arena, &fr, &total);
    ck_assert_uint_eq(total, 1 * MiB);
    ck_assert_uint_eq(total - fr, want);
  }
  for (i = 0; i < 5; i++) {
    ck_assert_int_eq(emu_arena_release(&arena, p[i]), CUDA_SUCCESS);
    want -= (sizes[i] + 511) / 512 * 512;
    emu_arena_info(&arena, &fr, &total);
    ck_assert_uint_eq(total - fr, want);
  }
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_pitch_allocation) {
  struct emu_alloc_info info;
  uint64_t p = 0, pitch = 0;

  arena_setup(4 * MiB);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 1000, 3, 4, &p,
                                         &pitch), CUDA_SUCCESS);
  ck_assert_uint_eq(pitch, 1024);
  ck_assert_uint_eq(p % 512, 0);
  ck_assert_int_eq(emu_arena_lookup(&arena, p, &info), CUDA_SUCCESS);
  ck_assert_uint_eq(info.size, 3 * 1024);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 512, 2, 16, &p,
                                         &pitch), CUDA_SUCCESS);
  ck_assert_uint_eq(pitch, 512);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 1, 1, 8, &p,
                                         &pitch), CUDA_SUCCESS);
  ck_assert_uint_eq(pitch, 512);
  /* element sizes other than 4, 8, 16; zero width or height */
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 64, 2, 1, &p,
                                         &pitch), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 64, 2, 2, &p,
                                         &pitch), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 64, 2, 32, &p,
                                         &pitch), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 0, 2, 4, &p,
                                         &pitch), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 64, 0, 4, &p,
                                         &pitch), CUDA_ERROR_INVALID_VALUE);
  /* products that overflow or exceed the arena */
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, UINT64_MAX, 2, 4,
                                         &p, &pitch),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 4096,
                                         UINT64_MAX / 1000, 4, &p, &pitch),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(emu_arena_alloc_pitch(&arena, &owner, 1u << 20,
                                         1u << 20, 4, &p, &pitch),
                   CUDA_ERROR_OUT_OF_MEMORY);
  emu_arena_free(&arena);
}
END_TEST

START_TEST(test_arena_freed_large_range_reads_zero) {
  uint64_t p, q, size = 256 * KiB + 100;
  uint8_t *m;
  uint64_t i;

  arena_setup(4 * MiB);
  alloc_ok(100); /* so the next one does not start on a page boundary */
  p = alloc_ok(size);
  memset((void *)(uintptr_t)p, 0xab, size);
  ck_assert_int_eq(emu_arena_release(&arena, p), CUDA_SUCCESS);
  q = alloc_ok(size);
  ck_assert_uint_eq(q, p);
  m = (uint8_t *)(uintptr_t)q;
  for (i = 0; i < size; i++)
    if (m[i] != 0)
      ck_abort_msg("byte %llu of a reused range is %u",
                   (unsigned long long)i, m[i]);
  emu_arena_free(&arena);
}
END_TEST

/* An allocator that fails the |fail_at|-th node allocation. */
struct failing {
  int calls;
  int fail_at;
  int live;
};

static void *failing_alloc(void *opaque, size_t n) {
  struct failing *f = opaque;
  if (f->calls++ == f->fail_at)
    return NULL;
  f->live++;
  return malloc(n);
}

static void failing_free(void *opaque, void *p) {
  struct failing *f = opaque;
  f->live--;
  free(p);
}

START_TEST(test_arena_failing_allocations) {
  int fail_at;

  for (fail_at = 0; fail_at < 40; fail_at++) {
    struct failing f = {0, fail_at, 0};
    struct emu_arena_allocator na = {failing_alloc, failing_free, &f};
    struct emu_owner o = {0};
    struct emu_arena a;
    uint64_t p[20], fr, total, want = 0;
    int i, r, ok = 0;

    r = emu_arena_init(&a, 1 * MiB, &na);
    if (r != CUDA_SUCCESS) {
      ck_assert_int_eq(r, CUDA_ERROR_OUT_OF_MEMORY);
      ck_assert_int_eq(f.live, 0);
      continue;
    }
    for (i = 0; i < 20; i++) {
      r = emu_arena_alloc(&a, &o, 1000, &p[ok]);
      if (r == CUDA_SUCCESS) {
        ok++;
        want += 1024;
      } else {
        ck_assert_int_eq(r, CUDA_ERROR_OUT_OF_MEMORY);
      }
      emu_arena_info(&a, &fr, &total);
      ck_assert_uint_eq(total - fr, want);
    }
    ck_assert_int_ge(ok, 19);
    for (i = 0; i < ok; i += 2)
      ck_assert_int_eq(emu_arena_release(&a, p[i]), CUDA_SUCCESS);
    emu_arena_release_owner(&a, &o);
    ck_assert_uint_eq(emu_arena_free_blocks(&a), 1);
    emu_arena_free(&a);
    ck_assert_int_eq(f.live, 0);
  }
}
END_TEST

START_TEST(test_arena_random_operations_stay_consistent) {
  enum { SLOTS = 300, STEPS = 20000 };
  static uint64_t addr[SLOTS], size[SLOTS];
  uint64_t used = 0, fr, total, rng = 12345;
  int step, i, j;

  arena_setup(8 * MiB);
  memset(addr, 0, sizeof(addr));
  for (step = 0; step < STEPS; step++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    i = (int)((rng >> 33) % SLOTS);
    if (addr[i]) {
      ck_assert_int_eq(emu_arena_release(&arena, addr[i]), CUDA_SUCCESS);
      used -= (size[i] + 511) / 512 * 512;
      addr[i] = 0;
    } else {
      uint64_t s = 1 + (rng >> 40) % (rng & 1 ? 200000 : 3000);
      int r = emu_arena_alloc(&arena, &owner, s, &addr[i]);
      if (r == CUDA_SUCCESS) {
        size[i] = s;
        used += (s + 511) / 512 * 512;
        /* no overlap with any other live allocation */
        for (j = 0; j < SLOTS; j++)
          if (j != i && addr[j])
            ck_assert(addr[i] + size[i] <= addr[j] ||
                      addr[j] + size[j] <= addr[i]);
      } else {
        ck_assert_int_eq(r, CUDA_ERROR_OUT_OF_MEMORY);
        addr[i] = 0;
      }
    }
    emu_arena_info(&arena, &fr, &total);
    ck_assert_uint_eq(total - fr, used);
  }
  for (i = 0; i < SLOTS; i++)
    if (addr[i]) {
      ck_assert_int_eq(emu_arena_check(&arena, addr[i], size[i], NULL),
                       CUDA_SUCCESS);
      ck_assert_int_eq(emu_arena_release(&arena, addr[i]), CUDA_SUCCESS);
    }
  ck_assert_uint_eq(emu_arena_free_blocks(&arena), 1);
  emu_arena_free(&arena);
}
END_TEST

/* ---- id map --------------------------------------------------------------- */

START_TEST(test_arena_idmap_put_get_remove) {
  struct gp__idmap m;
  static int objs[5000];
  uint64_t k;

  gp__idmap_init(&m, 4000);
  ck_assert_ptr_null(gp__idmap_get(&m, 1));
  ck_assert_int_eq(gp__idmap_put(&m, 0, &objs[0]), CUDA_ERROR_INVALID_VALUE);
  for (k = 1; k <= 4000; k++)
    ck_assert_int_eq(gp__idmap_put(&m, k * 0x10001, &objs[k]), CUDA_SUCCESS);
  ck_assert_int_eq(gp__idmap_put(&m, 5, &objs[0]), CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(gp__idmap_put(&m, 0x10001, &objs[0]),
                   CUDA_ERROR_INVALID_VALUE);
  for (k = 1; k <= 4000; k += 2)
    ck_assert_ptr_eq(gp__idmap_remove(&m, k * 0x10001), &objs[k]);
  ck_assert_ptr_null(gp__idmap_remove(&m, 0x10001));
  for (k = 1; k <= 4000; k++)
    ck_assert_ptr_eq(gp__idmap_get(&m, k * 0x10001),
                     k % 2 ? NULL : (void *)&objs[k]);
  ck_assert_uint_eq(m.count, 2000);
  gp__idmap_free(&m);
}
END_TEST

/* ---- the emu ops table ---------------------------------------------------- */

static const struct gp_backend_ops *ops = &gp__backend_emu;
static struct gp_backend *be;

static void emu_setup(void) {
  struct gp_backend_config cfg = {.emu_memory = 4 * MiB, .emu_sm_count = 3};
  ck_assert_int_eq(ops->open(&cfg, &be), CUDA_SUCCESS);
  ck_assert_ptr_nonnull(be);
}

static void emu_teardown(void) {
  ops->close(be);
  be = NULL;
}

START_TEST(test_arena_emu_device_table_complete) {
  struct gp_device_desc d, d2;
  int v = 0, n = 0, i;

  ck_assert_int_eq(emu_device_missing_attr(), 0);
  ck_assert_int_eq(ops->driver_version(be, &v), CUDA_SUCCESS);
  ck_assert_int_eq(v, 13000);
  ck_assert_int_eq(ops->device_count(be, &n), CUDA_SUCCESS);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(ops->device_describe(be, 1, &d),
                   CUDA_ERROR_INVALID_DEVICE);
  ck_assert_int_eq(ops->device_describe(be, -1, &d),
                   CUDA_ERROR_INVALID_DEVICE);
  ck_assert_int_eq(ops->device_describe(be, 0, &d), CUDA_SUCCESS);
  ck_assert_str_eq(d.name, "gpupool emulated device");
  ck_assert_uint_eq(d.total_mem, 4 * MiB);
  ck_assert_int_eq(d.nattrs, CU_DEVICE_ATTRIBUTE_MAX - 1);
  for (i = 0; i < d.nattrs; i++) {
    ck_assert_int_eq(d.attrs[i].attr, i + 1);
    switch (d.attrs[i].attr) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      ck_assert_int_eq(d.attrs[i].value, 7);
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      ck_assert_int_eq(d.attrs[i].value, 5);
      break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
      ck_assert_int_eq(d.attrs[i].value, 32);
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      ck_assert_int_eq(d.attrs[i].value, 3);
      break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
      ck_assert_int_eq(d.attrs[i].value, 1);
      break;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT:
      ck_assert_int_eq(d.attrs[i].value, 32);
      break;
    default:
      break;
    }
  }
  /* stable UUID, RFC 9562 version 8, variant 10 */
  ck_assert_int_eq(ops->device_describe(be, 0, &d2), CUDA_SUCCESS);
  ck_assert_int_eq(memcmp(d.uuid, d2.uuid, 16), 0);
  ck_assert_uint_eq(d.uuid[6] >> 4, 8);
  ck_assert_uint_eq(d.uuid[8] >> 6, 2);
}
END_TEST

START_TEST(test_arena_emu_ctx_id_validation) {
  ck_assert_int_eq(ops->ctx_create(be, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->ctx_create(be, 2, 1, 0), CUDA_ERROR_INVALID_DEVICE);
  ck_assert_int_eq(ops->ctx_create(be, 2, -1, 0), CUDA_ERROR_INVALID_DEVICE);
  ck_assert_int_eq(ops->ctx_create(be, 2, 0, 0x100),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->ctx_create(be, 2, 0,
                                   CU_CTX_SCHED_SPIN | CU_CTX_SCHED_YIELD),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->ctx_create(be, 2, 0, CU_CTX_SCHED_BLOCKING_SYNC),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_synchronize(be, 2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_synchronize(be, 3), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_destroy(be, 3), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_destroy(be, 0), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_destroy(be, 2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_destroy(be, 2), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->primary_ctx_release(be, 1),
                   CUDA_ERROR_INVALID_CONTEXT);
}
END_TEST

START_TEST(test_arena_emu_primary_context) {
  ck_assert_int_eq(ops->primary_ctx_retain(be, 5, 1, 0),
                   CUDA_ERROR_INVALID_DEVICE);
  ck_assert_int_eq(ops->primary_ctx_retain(be, 5, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->primary_ctx_retain(be, 6, 0, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->ctx_destroy(be, 5), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_create(be, 5, 0, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->primary_ctx_release(be, 5), CUDA_SUCCESS);
  ck_assert_int_eq(ops->primary_ctx_release(be, 5),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->primary_ctx_retain(be, 6, 0, 0), CUDA_SUCCESS);
}
END_TEST

START_TEST(test_arena_emu_memory_ops) {
  uint64_t d = 0, d2 = 0, pitch = 0, fr, total, b, s;
  uint8_t buf[4096], out[4096];
  void *host = NULL;
  int i;

  ck_assert_int_eq(ops->mem_alloc(be, 1, 4096, &d),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 0, &d), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 8 * MiB, &d),
                   CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 4096, &d), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 4096, &d2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc_pitch(be, 1, 100, 4, 3, &b, &pitch),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_alloc_pitch(be, 9, 100, 4, 4, &b, &pitch),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->mem_get_info(be, 9, &fr, &total),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->mem_get_info(be, 1, &fr, &total), CUDA_SUCCESS);
  ck_assert_uint_eq(total, 4 * MiB);
  ck_assert_uint_eq(total - fr, 8192);
  ck_assert_int_eq(ops->mem_get_address_range(be, d + 100, &b, &s),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(b, d);
  ck_assert_uint_eq(s, 4096);
  ck_assert_int_eq(ops->mem_get_address_range(be, d + 4096 + 8192, &b, &s),
                   CUDA_ERROR_NOT_FOUND);

  for (i = 0; i < 4096; i++)
    buf[i] = (uint8_t)i;
  ck_assert_int_eq(ops->memcpy_htod(be, d, buf, 4096, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_htod(be, d, buf, 4097, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memcpy_htod(be, d, buf, 16, 42),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->memcpy_htod(be, 0, NULL, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtod(be, d2, d, 4096, 0), CUDA_SUCCESS);
  /* overlapping device-to-device copies behave as memmove */
  ck_assert_int_eq(ops->memcpy_dtod(be, d2 + 1, d2, 100, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtod(be, d2, d, 4097, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d2, 4096, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(out[0], 0);
  ck_assert_uint_eq(out[1], 0);
  ck_assert_uint_eq(out[2], 1);
  ck_assert_uint_eq(out[200], 200);
  ck_assert_int_eq(ops->mem_host_view(be, d, 4096, 0, &host), CUDA_SUCCESS);
  ck_assert_ptr_eq(host, (void *)(uintptr_t)d);
  ck_assert_int_eq(ops->mem_host_view(be, d, 4096, 7, &host),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->mem_host_view(be, d + 1, 4096, 0, &host),
                   CUDA_ERROR_INVALID_VALUE);

  /* memsets: element sizes, alignment, range, value width */
  ck_assert_int_eq(ops->memset(be, d, 0xa1b2c3d4, 4, 1024, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d, 8, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(((uint32_t *)out)[1], 0xa1b2c3d4);
  ck_assert_int_eq(ops->memset(be, d, 0xa1b2c3d4, 2, 2048, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d, 8, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(((uint16_t *)out)[3], 0xc3d4);
  ck_assert_int_eq(ops->memset(be, d + 1, 0x5a, 1, 4095, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d, 8, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(out[0], 0xd4);
  ck_assert_uint_eq(out[7], 0x5a);
  ck_assert_int_eq(ops->memset(be, d, 0, 4, 1025, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memset(be, d + 2, 0, 4, 1, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memset(be, d + 1, 0, 2, 1, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memset(be, d, 0, 3, 1, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memset(be, d, 0, 4, UINT64_MAX / 2, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memset(be, d, 0, 4, 1, 99),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->memset(be, d, 0, 4, 0, 0), CUDA_SUCCESS);

  ck_assert_int_eq(ops->mem_free(be, d + 1), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_free(be, d), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_free(be, d), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d, 1, 0),
                   CUDA_ERROR_INVALID_VALUE);
}
END_TEST

START_TEST(test_arena_emu_stream_validation) {
  ck_assert_int_eq(ops->stream_create(be, 1, 10, 0, 0),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 1, 0, 0, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->stream_create(be, 1, 10, 0, -100), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 1, 10, 0, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->stream_create(be, 1, 11, 2, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->stream_create(be, 1, 11, CU_STREAM_NON_BLOCKING, 5),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_synchronize(be, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_synchronize(be, 10), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_synchronize(be, 12),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->stream_query(be, 0, 11), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_query(be, 0, 12), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->stream_wait_event(be, 10, 77, 0),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_create(be, 1, 77, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_wait_event(be, 10, 77, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_wait_event(be, 0, 77, CU_EVENT_WAIT_EXTERNAL),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_wait_event(be, 10, 77, 2),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->stream_wait_event(be, 12, 77, 0),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->stream_destroy(be, 0), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->stream_destroy(be, 10), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_destroy(be, 10), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->stream_query(be, 0, 10), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_arena_emu_event_elapsed_time) {
  struct timespec ten_ms = {0, 10 * 1000 * 1000};
  float ms = -1;

  ck_assert_int_eq(ops->event_create(be, 1, 1, 0),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_create(be, 2, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 0, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->event_create(be, 1, 1, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 1, 0), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->event_create(be, 1, 2, CU_EVENT_BLOCKING_SYNC),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 3, CU_EVENT_DISABLE_TIMING),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 4, CU_EVENT_INTERPROCESS),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->event_create(be, 1, 4, 0x10),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->stream_create(be, 2, 50, 0, 0), CUDA_SUCCESS);

  /* never recorded */
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 2, &ms),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_query(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_record(be, 1, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 2, &ms),
                   CUDA_ERROR_INVALID_HANDLE);
  nanosleep(&ten_ms, NULL);
  ck_assert_int_eq(ops->event_record(be, 2, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 2, &ms), CUDA_SUCCESS);
  ck_assert_float_ge(ms, 9.0f);
  ck_assert_float_lt(ms, 5000.0f);
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 1, &ms), CUDA_SUCCESS);
  ck_assert_float_eq(ms, 0.0f);
  /* timing disabled */
  ck_assert_int_eq(ops->event_record(be, 3, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 3, &ms),
                   CUDA_ERROR_INVALID_HANDLE);
  /* unknown events and streams; a stream of another context */
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 9, &ms),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_record(be, 9, 0), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_record(be, 1, 51), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_record(be, 1, 50), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_synchronize(be, 9), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_query(be, 9), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_destroy(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_destroy(be, 1), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_elapsed_time(be, 1, 2, &ms),
                   CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_arena_emu_ctx_destroy_frees_everything) {
  uint64_t d, keep, fr, total;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_create(be, 2, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 1000, &keep), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 2, 100000, &d), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 2, 20, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 2, 21, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 2, 30, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_destroy(be, 21), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_destroy(be, 2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_query(be, 0, 20), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_query(be, 30), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->mem_free(be, d), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_get_info(be, 1, &fr, &total), CUDA_SUCCESS);
  ck_assert_uint_eq(total - fr, 1024);
  /* the ids can be used again */
  ck_assert_int_eq(ops->ctx_create(be, 2, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 2, 20, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 2, 30, 0), CUDA_SUCCESS);
  /* close frees what is left (checked by the sanitizer build) */
}
END_TEST

START_TEST(test_arena_emu_object_limits) {
  uint64_t i;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  for (i = 1; i <= 65536; i++)
    ck_assert_int_eq(ops->event_create(be, 1, i, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, i, 0), CUDA_ERROR_OUT_OF_MEMORY);
  ck_assert_int_eq(ops->event_destroy(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, i, 0), CUDA_SUCCESS);
}
END_TEST

/* ---- shared device memory (--emu-shared-memory) ---------------------------- */

START_TEST(test_arena_shared_table_first_fit_and_reap) {
  int fd = emu_shared_create(1 * MiB);
  struct emu_shared *s;
  uint64_t a, b, c, d;

  ck_assert_int_ge(fd, 0);
  s = emu_shared_map_header(fd);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(emu_shared_free_bytes(s), 1 * MiB);
  ck_assert_int_eq(emu_shared_take(s, 4096, 100, &a), 0);
  ck_assert_int_eq(emu_shared_take(s, 8192, 200, &b), 0);
  ck_assert_int_eq(emu_shared_take(s, 4096, 100, &c), 0);
  ck_assert_uint_eq(a, 0);
  ck_assert_uint_eq(b, 4096);
  ck_assert_uint_eq(c, 12288);
  /* Only the owner frees a block. */
  ck_assert_int_eq(emu_shared_put(s, b, 100), -1);
  ck_assert_int_eq(emu_shared_put(s, b, 200), 0);
  ck_assert_int_eq(emu_shared_put(s, b, 200), -1);
  /* First fit: the gap left by b. */
  ck_assert_int_eq(emu_shared_take(s, 512, 300, &d), 0);
  ck_assert_uint_eq(d, 4096);
  /* Too large for any gap. */
  ck_assert_int_eq(emu_shared_take(s, 1 * MiB, 300, &d), -1);
  ck_assert_uint_eq(emu_shared_free_bytes(s), 1 * MiB - 8192 - 512);
  /* A dead owner's blocks go back at once. */
  ck_assert_uint_eq(emu_shared_reap(s, 100, -1), 8192);
  ck_assert_uint_eq(emu_shared_free_bytes(s), 1 * MiB - 512);
  ck_assert_int_eq(emu_shared_take(s, 4096, 300, &d), 0);
  ck_assert_uint_eq(d, 0);
  emu_shared_unmap(s, false);
  close(fd);
}
END_TEST

/* Two sessions' arenas on one shared memory (two mappings in this
 * process, two owners): unique addresses, each blind to the other's
 * blocks, contents left as they are by a free, zeroed by a scrub, and
 * zeroed by the reap of an owner that died. */
START_TEST(test_arena_shared_sessions) {
  struct emu_arena a1, a2;
  struct emu_owner o1, o2;
  uint64_t p1, p2, q, bytes, fr, total;
  uint8_t *h;
  int fd = emu_shared_create(4 * MiB);
  struct emu_shared *hdr;

  ck_assert_int_ge(fd, 0);
  memset(&o1, 0, sizeof(o1));
  memset(&o2, 0, sizeof(o2));
  ck_assert_int_eq(emu_arena_init_shared(&a1, fd, NULL), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_init_shared(&a2, fd, NULL), CUDA_SUCCESS);
  a2.pid = a1.pid + 1; /* another worker */
  ck_assert_uint_eq(a1.size, 4 * MiB);
  ck_assert_ptr_ne(a1.base, a2.base);

  ck_assert_int_eq(emu_arena_alloc(&a1, &o1, 1 * MiB, &p1), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_alloc(&a2, &o2, 1 * MiB, &p2), CUDA_SUCCESS);
  /* Different blocks of the one memory. */
  ck_assert_uint_ne(p1 - (uint64_t)(uintptr_t)a1.base,
                    p2 - (uint64_t)(uintptr_t)a2.base);
  /* Each arena knows only its own. */
  q = p2 - (uint64_t)(uintptr_t)a2.base + (uint64_t)(uintptr_t)a1.base;
  ck_assert_int_eq(emu_arena_check(&a1, q, 1, NULL), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_release(&a1, q), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(emu_arena_check(&a1, p1, 1 * MiB, NULL), CUDA_SUCCESS);
  emu_arena_info(&a1, &fr, &total);
  ck_assert_uint_eq(total, 4 * MiB);
  ck_assert_uint_eq(fr, 2 * MiB);

  /* A free keeps the bytes: the next owner of the block sees them. */
  memset((void *)(uintptr_t)p1, 0xab, 1 * MiB);
  ck_assert_int_eq(emu_arena_release(&a1, p1), CUDA_SUCCESS);
  ck_assert_int_eq(emu_arena_alloc(&a2, &o2, 1 * MiB, &q), CUDA_SUCCESS);
  ck_assert_uint_eq(q - (uint64_t)(uintptr_t)a2.base,
                    p1 - (uint64_t)(uintptr_t)a1.base);
  h = (uint8_t *)(uintptr_t)q;
  ck_assert_uint_eq(h[0], 0xab);
  ck_assert_uint_eq(h[1 * MiB - 1], 0xab);
  /* A scrub zeroes every live byte, seen through the other mapping too. */
  emu_arena_scrub(&a2, &bytes);
  ck_assert_uint_eq(bytes, 2 * MiB);
  h = a1.base + (q - (uint64_t)(uintptr_t)a2.base);
  for (uint64_t i = 0; i < 1 * MiB; i += 4093)
    ck_assert_uint_eq(h[i], 0);

  /* An owner that dies holding a block: the reap frees and zeroes it. */
  ck_assert_int_eq(emu_arena_alloc(&a1, &o1, 4096, &p1), CUDA_SUCCESS);
  memset((void *)(uintptr_t)p1, 0xcd, 4096);
  hdr = emu_shared_map_header(fd);
  ck_assert_ptr_nonnull(hdr);
  ck_assert_uint_eq(emu_shared_reap(hdr, a1.pid, fd), 4096);
  ck_assert_uint_eq(((uint8_t *)(uintptr_t)p1)[0], 0);
  ck_assert_uint_eq(((uint8_t *)(uintptr_t)p1)[4095], 0);
  emu_shared_unmap(hdr, false);

  emu_arena_free(&a2);
  /* a1's block was reaped already: its free finds nothing to give back. */
  emu_arena_free(&a1);
  close(fd);
}
END_TEST

static Suite *arena_suite(void) {
  Suite *s = suite_create("arena");
  TCase *tc = tcase_create("arena");
  TCase *te = tcase_create("emu");

  tcase_add_test(tc, test_arena_init_maps_at_hint);
  tcase_add_test(tc, test_arena_init_rounds_and_rejects_tiny);
  tcase_add_test(tc, test_arena_alloc_free_first_fit);
  tcase_add_test(tc, test_arena_alignment);
  tcase_add_test(tc, test_arena_zero_size_is_invalid);
  tcase_add_test(tc, test_arena_lookup_interior_pointers);
  tcase_add_test(tc, test_arena_range_edges);
  tcase_add_test(tc, test_arena_exhaustion_and_oom);
  tcase_add_test(tc, test_arena_live_limit);
  tcase_add_test(tc, test_arena_fragmentation_coalesces);
  tcase_add_test(tc, test_arena_free_unknown_or_interior);
  tcase_add_test(tc, test_arena_owner_release);
  tcase_add_test(tc, test_arena_module_flag);
  tcase_add_test(tc, test_arena_info_accounting);
  tcase_add_test(tc, test_arena_pitch_allocation);
  tcase_add_test(tc, test_arena_freed_large_range_reads_zero);
  tcase_add_test(tc, test_arena_failing_allocations);
  tcase_add_test(tc, test_arena_random_operations_stay_consistent);
  tcase_add_test(tc, test_arena_idmap_put_get_remove);
  tcase_add_test(tc, test_arena_shared_table_first_fit_and_reap);
  tcase_add_test(tc, test_arena_shared_sessions);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(te, emu_setup, emu_teardown);
  tcase_add_test(te, test_arena_emu_device_table_complete);
  tcase_add_test(te, test_arena_emu_ctx_id_validation);
  tcase_add_test(te, test_arena_emu_primary_context);
  tcase_add_test(te, test_arena_emu_memory_ops);
  tcase_add_test(te, test_arena_emu_stream_validation);
  tcase_add_test(te, test_arena_emu_event_elapsed_time);
  tcase_add_test(te, test_arena_emu_ctx_destroy_frees_everything);
  tcase_add_test(te, test_arena_emu_object_limits);
  tcase_set_timeout(te, 60);
  suite_add_tcase(s, te);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(arena_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
