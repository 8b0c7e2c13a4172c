/* A session's module images, keyed by SHA-256, so that a client loading
 * the same image twice uploads it once (docs/protocol.md, MODULE_LOAD).
 *
 * The cache holds at most |cap| bytes; adding beyond that drops the least
 * recently used images (never the one being added). A client that asks
 * for a dropped image is told to send it again. One cache per worker; not
 * thread-safe.
 */
#ifndef GP_SERVER_IMAGE_CACHE_H
#define GP_SERVER_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define GP_IMAGE_SHA256_LEN 32
#define GP_IMAGE_CACHE_DEFAULT_CAP (256u << 20)

struct gp_image {
  uint8_t sha256[GP_IMAGE_SHA256_LEN];
  uint8_t *data;
  size_t len;
  uint64_t used;          /* the cache's clock at the last use */
  struct gp_image *next;
};

struct gp_image_cache {
  struct gp_image *head;
  size_t total;           /* bytes of every image's data */
  size_t cap;
  uint64_t clock;
};

void gp__image_cache_init(struct gp_image_cache *c, size_t cap);
void gp__image_cache_free(struct gp_image_cache *c);

/* The image with digest |sha256|, marked used, or NULL. */
const struct gp_image *gp__image_find(struct gp_image_cache *c,
                                      const uint8_t sha256[32]);

/* Adds |data| (|len| bytes, malloc'ed; the cache owns it from now on, even
 * on failure) under |sha256|, replacing an entry with the same digest.
 * Returns the entry, or NULL when out of memory (|data| is freed). */
const struct gp_image *gp__image_add(struct gp_image_cache *c,
                                     const uint8_t sha256[32], uint8_t *data,
                                     size_t len);

/* SHA-256 of |len| bytes at |data| into |out|. Returns 0, or -1 if the
 * digest could not be computed. */
int gp__sha256(const void *data, size_t len, uint8_t out[32]);

#endif
