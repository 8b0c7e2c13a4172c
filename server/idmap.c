/* The id map: see idmap.h. */
#include "idmap.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define IDMAP_MIN_CAP 16u

static uint64_t mix(uint64_t x) {
  /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static size_t home(const struct gp__idmap *m, uint64_t key) {
  return (size_t)(mix(key ^ m->seed) & (m->cap - 1));
}

void gp__idmap_init(struct gp__idmap *m, size_t max) {
  struct timespec ts;

  memset(m, 0, sizeof(*m));
  m->max = max;
  if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) !=
      (ssize_t)sizeof(m->seed)) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m->seed = mix((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)m);
  }
}

void gp__idmap_free(struct gp__idmap *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->count = 0;
}

static struct gp__idmap_slot *find(const struct gp__idmap *m, uint64_t key) {
  size_t i;

  if (key == 0 || m->cap == 0)
    return NULL;
  for (i = home(m, key);; i = (i + 1) & (m->cap - 1)) {
    if (m->slots[i].key == key)
      return &m->slots[i];
    if (m->slots[i].key == 0)
      return NULL;
  }
}

void *gp__idmap_get(const struct gp__idmap *m, uint64_t key) {
  struct gp__idmap_slot *s = find(m, key);
  return s ? s->value : NULL;
}

static void place(struct gp__idmap *m, uint64_t key, void *value) {
  size_t i = home(m, key);
  while (m->slots[i].key != 0)
    i = (i + 1) & (m->cap - 1);
  m->slots[i].key = key;
  m->slots[i].value = value;
}

static int grow(struct gp__idmap *m) {
  struct gp__idmap_slot *old = m->slots;
  size_t oldcap = m->cap, i;
  size_t cap = oldcap ? oldcap * 2 : IDMAP_MIN_CAP;
  struct gp__idmap_slot *slots = calloc(cap, sizeof(*slots));

  if (!slots)
    return CUDA_ERROR_OUT_OF_MEMORY;
  m->slots = slots;
  m->cap = cap;
  for (i = 0; i < oldcap; i++)
    if (old[i].key)
      place(m, old[i].key, old[i].value);
  free(old);
  return CUDA_SUCCESS;
}

int gp__idmap_put(struct gp__idmap *m, uint64_t key, void *value) {
  int r;

  if (key == 0 || find(m, key))
    return CUDA_ERROR_INVALID_VALUE;
  if (m->count >= m->max)
    return CUDA_ERROR_OUT_OF_MEMORY;
  /* Keep the load at most 1/2 so probes stay short. */
  if ((m->count + 1) * 2 > m->cap) {
    r = grow(m);
    if (r != CUDA_SUCCESS)
      return r;
  }
  place(m, key, value);
  m->count++;
  return CUDA_SUCCESS;
}

void *gp__idmap_remove(struct gp__idmap *m, uint64_t key) {
  struct gp__idmap_slot *s = find(m, key);
  size_t i, j, h;
  void *value;

  if (!s)
    return NULL;
  value = s->value;
  i = (size_t)(s - m->slots);
  /* Backward shift: pull later entries of the probe run into the hole
   * unless their home lies cyclically in (i, j]. */
  for (j = (i + 1) & (m->cap - 1); m->slots[j].key != 0;
       j = (j + 1) & (m->cap - 1)) {
    h = home(m, m->slots[j].key);
    if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = 0;
  m->slots[i].value = NULL;
  m->count--;
  return value;
}
