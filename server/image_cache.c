/* A session's module images by SHA-256 (see image_cache.h). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "image_cache.h"

void gp__image_cache_init(struct gp_image_cache *c, size_t cap) {
  memset(c, 0, sizeof(*c));
  c->cap = cap;
}

static void image_free(struct gp_image *im) {
  free(im->data);
  free(im);
}

void gp__image_cache_free(struct gp_image_cache *c) {
  while (c->head) {
    struct gp_image *im = c->head;
    c->head = im->next;
    image_free(im);
  }
  c->total = 0;
}

/* Unlinks and frees the entry |*link| points at. */
static void remove_at(struct gp_image_cache *c, struct gp_image **link) {
  struct gp_image *im = *link;
  *link = im->next;
  c->total -= im->len;
  image_free(im);
}

const struct gp_image *gp__image_find(struct gp_image_cache *c,
                                      const uint8_t sha256[32]) {
  for (struct gp_image *im = c->head; im; im = im->next) {
    if (memcmp(im->sha256, sha256, GP_IMAGE_SHA256_LEN) == 0) {
      im->used = ++c->clock;
      return im;
    }
  }
  return NULL;
}

/* Drops least recently used images other than |keep| until the cache is
 * within its cap. */
static void evict(struct gp_image_cache *c, const struct gp_image *keep) {
  while (c->total > c->cap) {
    struct gp_image **victim = NULL;
    for (struct gp_image **l = &c->head; *l; l = &(*l)->next)
      if (*l != keep && (!victim || (*l)->used < (*victim)->used))
        victim = l;
    if (!victim)
      return;
    remove_at(c, victim);
  }
}

const struct gp_image *gp__image_add(struct gp_image_cache *c,
                                     const uint8_t sha256[32], uint8_t *data,
                                     size_t len) {
  struct gp_image *im;

  for (struct gp_image **l = &c->head; *l; l = &(*l)->next) {
    if (memcmp((*l)->sha256, sha256, GP_IMAGE_SHA256_LEN) == 0) {
      remove_at(c, l);
      break;
    }
  }
  im = calloc(1, sizeof(*im));
  if (!im) {
    free(data);
    return NULL;
  }
  memcpy(im->sha256, sha256, GP_IMAGE_SHA256_LEN);
  im->data = data;
  im->len = len;
  im->used = ++c->clock;
  im->next = c->head;
  c->head = im;
  c->total += len;
  evict(c, im);
  return im;
}

int gp__sha256(const void *data, size_t len, uint8_t out[32]) {
  unsigned int n = 0;
  if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
    return -1;
  return 0;
}
