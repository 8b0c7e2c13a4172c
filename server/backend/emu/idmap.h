/* A map from client-chosen 64-bit ids to objects: open addressing with
 * linear probing and backward-shift deletion (no tombstones), keyed with a
 * per-map random seed so that a client cannot choose ids that collide.
 *
 * Id 0 is never a key (the protocol reserves it). Functions return a
 * CUresult. Not thread-safe.
 */
#ifndef GP_SERVER_EMU_IDMAP_H
#define GP_SERVER_EMU_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct emu_idmap_slot {
  uint64_t key;             /* 0: empty */
  void *value;
};

struct emu_idmap {
  struct emu_idmap_slot *slots;
  size_t cap;               /* 0 or a power of two */
  size_t count;
  size_t max;               /* limit on count */
  uint64_t seed;
};

/* Initialises an empty map that holds at most |max| entries. Allocates
 * nothing until the first put. Never fails. */
void emu_idmap_init(struct emu_idmap *m, size_t max);

/* Frees the table (not the values). Safe on a zeroed struct. */
void emu_idmap_free(struct emu_idmap *m);

/* The value stored under |key|, or NULL. */
void *emu_idmap_get(const struct emu_idmap *m, uint64_t key);

/* Stores |value| (not NULL) under |key|. Returns CUDA_SUCCESS,
 * CUDA_ERROR_INVALID_VALUE for key 0 or a key already present, or
 * CUDA_ERROR_OUT_OF_MEMORY when the map is full (|max|) or cannot grow. */
int emu_idmap_put(struct emu_idmap *m, uint64_t key, void *value);

/* Removes |key| and returns its value, or NULL if absent. */
void *emu_idmap_remove(struct emu_idmap *m, uint64_t key);

#endif
