/* Sorted tables of address ranges (see client.h). Lookups are binary
 * searches; insertions and removals move the tail, which is cheap for the
 * thousands of allocations a program holds. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "gpupool/errors.h"

/* The index of the first range whose base is greater than |addr|. */
static size_t upper_bound(const struct gp__ranges *t, uint64_t addr) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->v[mid].base <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int gp__ranges_add(struct gp__ranges *t, const struct gp__range *r) {
  if (r->size == 0 || r->base + r->size < r->base)
    return GP_EINVAL;
  size_t i = upper_bound(t, r->base);
  if (i > 0 && t->v[i - 1].base + t->v[i - 1].size > r->base)
    return GP_EINVAL;
  if (i < t->n && r->base + r->size > t->v[i].base)
    return GP_EINVAL;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct gp__range *v = realloc(t->v, cap * sizeof(*v));
    if (v == NULL)
      return GP_ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
  t->v[i] = *r;
  /* Ids come from the process's handle counter: never 0, never reused. */
  if (t->v[i].buffer_id == 0)
    t->v[i].buffer_id = gp__new_id();
  t->n++;
  return 0;
}

struct gp__range *gp__ranges_find(const struct gp__ranges *t, uint64_t addr) {
  size_t i = upper_bound(t, addr);
  if (i == 0)
    return NULL;
  struct gp__range *r = &t->v[i - 1];
  return addr - r->base < r->size ? r : NULL;
}

bool gp__ranges_covers(const struct gp__ranges *t, uint64_t addr,
                       uint64_t len) {
  const struct gp__range *r = gp__ranges_find(t, addr);
  /* addr - base < size holds, so the subtraction below cannot wrap. */
  return r != NULL && len <= r->size - (addr - r->base);
}

bool gp__ranges_remove(struct gp__ranges *t, uint64_t base) {
  size_t i = upper_bound(t, base);
  if (i == 0 || t->v[i - 1].base != base)
    return false;
  i--;
  memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
  t->n--;
  return true;
}

void gp__ranges_remove_ctx(struct gp__ranges *t, const struct gp__ctx *ctx) {
  size_t j = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].ctx != ctx)
      t->v[j++] = t->v[i];
  t->n = j;
}

void gp__ranges_free(struct gp__ranges *t) {
  free(t->v);
  t->v = NULL;
  t->n = t->cap = 0;
}
