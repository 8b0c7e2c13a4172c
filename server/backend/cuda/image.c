/* Module images for the driver (see cuda_be.h): which kind an image is,
 * where its fatbins lie, and the version-2 wrapper that hands several
 * fatbins (a -rdc=true program's prelinked ones) to cuModuleLoadData.
 *
 * The client sends a wrapper's fatbins back to back, each starting at an
 * 8-byte boundary (client/image.c). Every header is checked against the
 * image's bounds here, before the driver sees a pointer into it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"

#define FATBIN_HEADER 16
#define ELF_HEADER64 64

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

/* The extent of the fatbin at |p| (|avail| bytes there), or 0 if it is not
 * one or does not fit. */
static size_t fatbin_extent(const uint8_t *p, size_t avail) {
  uint64_t entries;

  if (avail < FATBIN_HEADER || rd32(p) != CUB_FATBIN_MAGIC)
    return 0;
  /* u16 version 1, u16 header size 16 */
  if ((rd32(p + 4) & 0xffff) != 1 || (rd32(p + 4) >> 16) != FATBIN_HEADER)
    return 0;
  entries = rd64(p + 8);
  if (entries > avail - FATBIN_HEADER)
    return 0;
  return FATBIN_HEADER + (size_t)entries;
}

static bool all_zero(const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

void cub_image_free(struct cub_image *im) {
  free(im->offsets);
  free(im->sizes);
  im->offsets = im->sizes = NULL;
  im->n = 0;
}

static int add(struct cub_image *im, size_t *cap, size_t off, size_t size) {
  if (im->n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4;
    size_t *o = realloc(im->offsets, ncap * sizeof(*o));
    size_t *s;
    if (!o)
      return CUDA_ERROR_OUT_OF_MEMORY;
    im->offsets = o;
    s = realloc(im->sizes, ncap * sizeof(*s));
    if (!s)
      return CUDA_ERROR_OUT_OF_MEMORY;
    im->sizes = s;
    *cap = ncap;
  }
  im->offsets[im->n] = off;
  im->sizes[im->n] = size;
  im->n++;
  return CUDA_SUCCESS;
}

int cub_image_split(const uint8_t *image, size_t size, struct cub_image *out,
                    char *why, size_t whylen) {
  size_t pos = 0, cap = 0, n;
  int r;

  memset(out, 0, sizeof(*out));
  if (!image || size == 0) {
    snprintf(why, whylen, "the image is empty");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  if (size >= 4 && rd32(image) == CUB_WRAPPER_MAGIC) {
    /* A wrapper's pointers mean nothing in this process. */
    snprintf(why, whylen, "a fatbin wrapper (pointers) cannot be loaded "
             "remotely: send the fatbins");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  if (size >= 4 && memcmp(image, "\177ELF", 4) == 0) {
    if (size < ELF_HEADER64) {
      snprintf(why, whylen, "an ELF image of %zu bytes is truncated", size);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    out->kind = CUB_IMAGE_ELF;
    return CUDA_SUCCESS;
  }
  if (size < 4 || rd32(image) != CUB_FATBIN_MAGIC) {
    /* Text: PTX, which the driver (or its JIT) judges. */
    out->kind = CUB_IMAGE_PTX;
    return CUDA_SUCCESS;
  }
  out->kind = CUB_IMAGE_FATBINS;
  for (;;) {
    n = fatbin_extent(image + pos, size - pos);
    if (n == 0 && out->n > 0 && (size - pos < FATBIN_HEADER ||
                                 rd32(image + pos) != CUB_FATBIN_MAGIC)) {
      snprintf(why, whylen, "%zu stray bytes after fatbin %zu", size - pos,
               out->n - 1);
      cub_image_free(out);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    if (n == 0) {
      snprintf(why, whylen, "fatbin %zu at offset %zu: bad header or "
               "truncated", out->n, pos);
      cub_image_free(out);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    if (out->n == CUB_MAX_FATBINS) {
      snprintf(why, whylen, "more than %d fatbins", CUB_MAX_FATBINS);
      cub_image_free(out);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    r = add(out, &cap, pos, n);
    if (r != CUDA_SUCCESS) {
      cub_image_free(out);
      snprintf(why, whylen, "out of memory");
      return r;
    }
    pos += n;
    /* The next one starts at the next 8-byte boundary; fewer than 8
     * trailing zero bytes are padding. */
    if (size - pos < 8 && all_zero(image + pos, size - pos))
      return CUDA_SUCCESS;
    if (size - pos < (8 - pos % 8) % 8 ||
        !all_zero(image + pos, (8 - pos % 8) % 8)) {
      snprintf(why, whylen, "stray bytes after fatbin %zu", out->n - 1);
      cub_image_free(out);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    pos += (8 - pos % 8) % 8;
  }
}

void *cub_wrapper_build(const uint8_t *image, const struct cub_image *im) {
  uint8_t *w;
  uint64_t v;
  uint32_t u;
  const void **list;
  size_t i;

  if (im->kind != CUB_IMAGE_FATBINS || im->n < 2)
    return NULL;
  /* 24 bytes of wrapper, then the n - 1 prelinked pointers and the NULL;
   * 24 is a multiple of 8, so the array is aligned. */
  w = calloc(1, 24 + im->n * sizeof(void *));
  if (!w)
    return NULL;
  list = (const void **)(void *)(w + 24);
  u = CUB_WRAPPER_MAGIC;
  memcpy(w, &u, 4);
  u = 2;
  memcpy(w + 4, &u, 4);
  v = (uint64_t)(uintptr_t)(image + im->offsets[0]);
  memcpy(w + 8, &v, 8);
  v = (uint64_t)(uintptr_t)list;
  memcpy(w + 16, &v, 8);
  for (i = 1; i < im->n; i++)
    list[i - 1] = image + im->offsets[i];
  list[im->n - 1] = NULL;
  return w;
}
