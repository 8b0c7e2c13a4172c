/* The set of live objects behind CUDA handles (see client.h). */
#include <stdint.h>
#include <stdlib.h>

#include "client.h"
#include "gpupool/errors.h"

/* A removed entry: keeps probe chains intact until the next rehash. */
#define GP__TOMBSTONE ((struct gp__obj *)(uintptr_t)1)

static size_t hash_ptr(const void *p, size_t mask) {
  /* Objects are malloc'd: the low bits carry no information. Fibonacci
   * hashing spreads the rest. */
  uint64_t x = (uint64_t)(uintptr_t)p >> 4;
  return (size_t)((x * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

static int rehash(struct gp__handles *h, size_t cap) {
  struct gp__obj **slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return GP_ENOMEM;
  for (size_t i = 0; i < h->cap; i++) {
    struct gp__obj *o = h->slots[i];
    if (o == NULL || o == GP__TOMBSTONE)
      continue;
    size_t j = hash_ptr(o, cap - 1);
    while (slots[j] != NULL)
      j = (j + 1) & (cap - 1);
    slots[j] = o;
  }
  free(h->slots);
  h->slots = slots;
  h->cap = cap;
  h->used = h->live;
  return 0;
}

int gp__handles_add(struct gp__handles *h, struct gp__obj *o) {
  /* Keep the load (tombstones included) under 1/2. */
  if ((h->used + 1) * 2 > h->cap) {
    /* Rehash to a load of at most 1/4 (dropping the tombstones), so the
     * next rehash is far away. */
    size_t cap = 64;
    while ((h->live + 1) * 4 > cap)
      cap *= 2;
    int rc = rehash(h, cap);
    if (rc < 0)
      return rc;
  }
  size_t mask = h->cap - 1;
  size_t i = hash_ptr(o, mask);
  while (h->slots[i] != NULL && h->slots[i] != GP__TOMBSTONE)
    i = (i + 1) & mask;
  if (h->slots[i] == NULL)
    h->used++;
  h->slots[i] = o;
  h->live++;
  return 0;
}

static size_t find_slot(const struct gp__handles *h, const void *p) {
  if (h->cap == 0 || p == NULL)
    return SIZE_MAX;
  size_t mask = h->cap - 1;
  for (size_t i = hash_ptr(p, mask), n = 0; n < h->cap;
       i = (i + 1) & mask, n++) {
    if (h->slots[i] == NULL)
      return SIZE_MAX;
    if (h->slots[i] == p)
      return i;
  }
  return SIZE_MAX;
}

void gp__handles_remove(struct gp__handles *h, struct gp__obj *o) {
  size_t i = find_slot(h, o);
  if (i == SIZE_MAX)
    return;
  h->slots[i] = GP__TOMBSTONE;
  h->live--;
}

struct gp__obj *gp__handles_find(const struct gp__handles *h, const void *p,
                                 enum gp__kind kind) {
  size_t i = find_slot(h, p);
  if (i == SIZE_MAX)
    return NULL;
  /* Only now is |p| known to be one of our objects and safe to read. */
  return h->slots[i]->kind == kind ? h->slots[i] : NULL;
}

void gp__handles_foreach(struct gp__handles *h,
                         void (*fn)(struct gp__obj *o, void *arg), void *arg) {
  /* Removal only turns a slot into a tombstone, so the walk stays valid. */
  for (size_t i = 0; i < h->cap; i++) {
    struct gp__obj *o = h->slots[i];
    if (o != NULL && o != GP__TOMBSTONE)
      fn(o, arg);
  }
}

void gp__handles_free(struct gp__handles *h) {
  free(h->slots);
  h->slots = NULL;
  h->cap = h->used = h->live = 0;
}
