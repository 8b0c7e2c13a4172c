/* A map from client-chosen 64-bit ids to objects: open addressing with
 * linear probing and backward-shift deletion (no tombstones), keyed with a
 * per-map random seed so that a client cannot choose ids that collide.
 *
 * Id 0 is never a key (the protocol reserves it). Functions return a
 * CUresult. Not thread-safe.
 */
#ifndef GP_SERVER_IDMAP_H
#define GP_SERVER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct gp__idmap_slot {
  uint64_t key;             /* 0: empty */
  void *value;
};

struct gp__idmap {
  struct gp__idmap_slot *slots;
  size_t cap;               /* 0 or a power of two */
  size_t count;
  size_t max;               /* limit on count */
  uint64_t seed;
};

/* Initialises an empty map that holds at most |max| entries. Allocates
 * nothing until the first put. Never fails. */
void gp__idmap_init(struct gp__idmap *m, size_t max);

/* Frees the table (not the values). Safe on a zeroed struct. */
void gp__idmap_free(struct gp__idmap *m);

/* The value stored under |key|, or NULL. */
void *gp__idmap_get(const struct gp__idmap *m, uint64_t key);

/* Stores |value| (not NULL) under |key|. Returns CUDA_SUCCESS,
 * CUDA_ERROR_INVALID_VALUE for key 0 or a key already present, or
 * CUDA_ERROR_OUT_OF_MEMORY when the map is full (|max|) or cannot grow. */
int gp__idmap_put(struct gp__idmap *m, uint64_t key, void *value);

/* Removes |key| and returns its value, or NULL if absent. */
void *gp__idmap_remove(struct gp__idmap *m, uint64_t key);

#endif
