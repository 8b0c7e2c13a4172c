/* Module images: how long the image behind a bare pointer is, its SHA-256,
 * and the set of digests the server already holds.
 *
 * cuModuleLoadData and cuModuleLoadFatBinary get a pointer and no length,
 * so the length comes from the image itself, as the real driver finds it:
 * PTX text runs to its NUL; an ELF cubin ends where the last of its headers,
 * sections and segments ends; a fatbin is its 16-byte header plus the size
 * of the entries that header declares (docs/cuda-driver-facts.md,
 * "Fatbinaries"); a fatbin wrapper (what cudart registers) points to the
 * fatbin. Every size an image declares is checked against GP__IMAGE_MAX
 * before anything past the header is read, so a corrupt header cannot send
 * the reader gigabytes beyond the image.
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "client.h"
#include "trace.h"

#define FATBIN_MAGIC 0xBA55ED50u
#define FATBIN_HEADER_SIZE 16u
#define WRAPPER_MAGIC 0x466243B1u
#define WRAPPER_SIZE 24u

/* A version-2 wrapper's NULL-terminated list of prelinked fatbins longer
 * than this is taken for garbage. */
#define WRAPPER_MAX_PRELINKED 4096

/* The format is little-endian; read it byte by byte so that neither the
 * host's byte order nor the image's alignment matters. */
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

const char *gp__image_kind_name(enum gp__image_kind kind) {
  switch (kind) {
  case GP__IMAGE_PTX:
    return "PTX";
  case GP__IMAGE_ELF:
    return "ELF";
  case GP__IMAGE_FATBIN:
    return "fatbin";
  }
  return "image";
}

/* The answer for an image bigger than one frame may carry: |what| needs
 * at least |size| bytes. */
static CUresult too_big(const char *what, uint64_t size) {
  gp__log("module images over %zu MiB are not supported (this %s "
          "needs %llu bytes or more)",
          GP__IMAGE_MAX >> 20, what, (unsigned long long)size);
  return CUDA_ERROR_INVALID_VALUE;
}

/* ---- PTX ------------------------------------------------------------------ */

static bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

/* True when |p| starts with |word| followed by whitespace or the end. */
static bool starts_with_word(const uint8_t *p, const char *word) {
  size_t w = strlen(word);
  return strncmp((const char *)p, word, w) == 0 &&
         (p[w] == '\0' || is_space(p[w]));
}

/* True when the NUL-terminated text at |p| is PTX: after whitespace and
 * comments (nvcc's -ptx output opens with // lines), a module directive.
 * This is the server's rule (server/backend/emu/fatbin.c), so that what
 * the client sends as PTX the server reads as PTX. Reads no further than
 * the first NUL. */
static bool looks_like_ptx(const uint8_t *p) {
  size_t i = 0;
  for (;;) {
    while (is_space(p[i]))
      i++;
    if (p[i] == '/' && p[i + 1] == '/') {
      while (p[i] != '\n' && p[i] != '\0')
        i++;
      continue;
    }
    if (p[i] == '/' && p[i + 1] == '*') {
      for (i += 2; !(p[i] == '*' && p[i + 1] == '/'); i++)
        if (p[i] == '\0' || p[i + 1] == '\0')
          return false; /* unterminated comment */
      i += 2;
      continue;
    }
    break;
  }
  return starts_with_word(p + i, ".version") ||
         starts_with_word(p + i, ".target") ||
         starts_with_word(p + i, ".address_size");
}

/* ---- ELF ------------------------------------------------------------------ */

/* Raises |*end| to |off| + |len| when that is larger. Returns false when
 * the sum passes GP__IMAGE_MAX (or wraps): the image would be too big, or
 * the header is garbage; either way nothing past it may be read. */
static bool extend(uint64_t *end, uint64_t off, uint64_t len) {
  if (off > GP__IMAGE_MAX || len > GP__IMAGE_MAX - off) {
    *end = off > UINT64_MAX - len ? UINT64_MAX : off + len;
    return false;
  }
  if (off + len > *end)
    *end = off + len;
  return true;
}

/* The extent of the 64-bit ELF at |p|: the largest end of the ELF header,
 * the program and section header tables, every segment's file image and
 * every section that occupies file space. Each table is bounded before it
 * is read. Returns CUDA_SUCCESS with |*size|, CUDA_ERROR_INVALID_IMAGE, or
 * CUDA_ERROR_INVALID_VALUE (too big). */
static CUresult elf_extent(const uint8_t *p, size_t avail, size_t *size) {
  Elf64_Ehdr eh;
  if (avail < sizeof(eh))
    return CUDA_ERROR_INVALID_IMAGE;
  memcpy(&eh, p, sizeof(eh));
  /* Cubins have been 64-bit little-endian ELF for as long as there have
   * been 64-bit hosts; the header's fields are read as host-endian below,
   * which is little-endian on every host this library builds for. */
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return CUDA_ERROR_INVALID_IMAGE;

  uint64_t end = sizeof(eh);
  uint64_t shnum = eh.e_shnum;
  if (eh.e_shoff != 0) {
    if (eh.e_shentsize < sizeof(Elf64_Shdr))
      return CUDA_ERROR_INVALID_IMAGE;
    if (!extend(&end, eh.e_shoff, sizeof(Elf64_Shdr)))
      return too_big("ELF image", end);
    /* More than SHN_LORESERVE sections: the count is in section 0. */
    if (shnum == 0) {
      if (end > avail)
        return CUDA_ERROR_INVALID_IMAGE;
      Elf64_Shdr s0;
      memcpy(&s0, p + eh.e_shoff, sizeof(s0));
      shnum = s0.sh_size;
    }
    if (shnum > GP__IMAGE_MAX / eh.e_shentsize ||
        !extend(&end, eh.e_shoff, shnum * eh.e_shentsize))
      return too_big("ELF image", end);
  }
  uint64_t phnum = eh.e_phoff != 0 ? eh.e_phnum : 0;
  if (phnum > 0) {
    if (eh.e_phentsize < sizeof(Elf64_Phdr))
      return CUDA_ERROR_INVALID_IMAGE;
    if (!extend(&end, eh.e_phoff, phnum * eh.e_phentsize))
      return too_big("ELF image", end);
  }
  /* The tables lie inside the first GP__IMAGE_MAX bytes: read them. */
  if (end > avail)
    return CUDA_ERROR_INVALID_IMAGE;
  for (uint64_t i = 0; eh.e_shoff != 0 && i < shnum; i++) {
    Elf64_Shdr sh;
    memcpy(&sh, p + eh.e_shoff + i * eh.e_shentsize, sizeof(sh));
    if (sh.sh_type == SHT_NOBITS || sh.sh_type == SHT_NULL)
      continue;
    if (!extend(&end, sh.sh_offset, sh.sh_size))
      return too_big("ELF image", end);
  }
  for (uint64_t i = 0; i < phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, p + eh.e_phoff + i * eh.e_phentsize, sizeof(ph));
    if (!extend(&end, ph.p_offset, ph.p_filesz))
      return too_big("ELF image", end);
  }
  if (end > avail)
    return CUDA_ERROR_INVALID_IMAGE;
  *size = (size_t)end;
  return CUDA_SUCCESS;
}

/* ---- Fatbins and their wrappers -------------------------------------------- */

/* The extent of the fatbin at |p|: 16 plus the entries' size in its
 * header. */
static CUresult fatbin_extent(const uint8_t *p, size_t avail, size_t *size) {
  if (avail < FATBIN_HEADER_SIZE || rd32(p) != FATBIN_MAGIC)
    return CUDA_ERROR_INVALID_IMAGE;
  uint64_t entries = rd64(p + 8);
  if (entries > GP__IMAGE_MAX - FATBIN_HEADER_SIZE)
    return too_big("fatbin", entries);
  if (FATBIN_HEADER_SIZE + entries > avail)
    return CUDA_ERROR_INVALID_IMAGE;
  *size = (size_t)(FATBIN_HEADER_SIZE + entries);
  return CUDA_SUCCESS;
}

/* The image behind a fatbin wrapper (24 bytes: u32 magic, u32 version,
 * u64 pointer to the fatbin, u64 filename or prelinked fatbins). Version 1:
 * the fatbin it points to, in place. Version 2: that fatbin followed by the
 * prelinked fatbins of the NULL-terminated list, each starting at an 8-byte
 * boundary (zero padding between them), copied into one buffer, which the
 * server reads as fatbins back to back. */
static CUresult wrapper_image(const uint8_t *w, struct gp__image *out) {
  uint32_t version = rd32(w + 4);
  const uint8_t *fb = (const uint8_t *)(uintptr_t)rd64(w + 8);
  const uint8_t *const *pre =
      version >= 2 ? (const uint8_t *const *)(uintptr_t)rd64(w + 16) : NULL;
  size_t n = 0, total = 0, sz;
  CUresult r;

  if (version != 1 && version != 2)
    return CUDA_ERROR_INVALID_IMAGE;
  if (fb == NULL && (pre == NULL || pre[0] == NULL))
    return CUDA_ERROR_INVALID_IMAGE;
  if (fb != NULL) {
    if ((r = fatbin_extent(fb, SIZE_MAX, &sz)) != CUDA_SUCCESS)
      return r;
    total = sz;
  }
  if (pre == NULL || pre[0] == NULL) {
    out->data = fb;
    out->size = total;
    out->kind = GP__IMAGE_FATBIN;
    return CUDA_SUCCESS;
  }
  for (; pre[n] != NULL; n++) {
    if (n == WRAPPER_MAX_PRELINKED)
      return CUDA_ERROR_INVALID_IMAGE;
    if ((r = fatbin_extent(pre[n], SIZE_MAX, &sz)) != CUDA_SUCCESS)
      return r;
    total = (total + 7) & ~(size_t)7;
    if (sz > GP__IMAGE_MAX || total > GP__IMAGE_MAX - sz)
      return too_big("wrapper's fatbins", (uint64_t)total + sz);
    total += sz;
  }
  uint8_t *buf = calloc(1, total);
  if (buf == NULL)
    return CUDA_ERROR_OUT_OF_MEMORY;
  size_t pos = 0;
  if (fb != NULL) {
    fatbin_extent(fb, SIZE_MAX, &sz);
    memcpy(buf, fb, sz);
    pos = sz;
  }
  for (size_t i = 0; i < n; i++) {
    pos = (pos + 7) & ~(size_t)7;
    fatbin_extent(pre[i], SIZE_MAX, &sz);
    memcpy(buf + pos, pre[i], sz);
    pos += sz;
  }
  out->data = out->owned = buf;
  out->size = total;
  out->kind = GP__IMAGE_FATBIN;
  return CUDA_SUCCESS;
}

CUresult gp__image_find(const void *image, size_t avail,
                        struct gp__image *out) {
  const uint8_t *p = image;
  size_t size = 0;
  CUresult r;

  memset(out, 0, sizeof(*out));
  if (p == NULL || avail == 0)
    return CUDA_ERROR_INVALID_VALUE;
  uint8_t head[4] = {0, 0, 0, 0};
  /* A bare pointer: the image is at least as long as its first NUL or
   * its magic, so reading up to four bytes stops at the NUL of a short
   * text. */
  for (size_t i = 0; i < 4 && i < avail; i++) {
    head[i] = p[i];
    if (head[i] == 0)
      break;
  }
  uint32_t magic = rd32(head);
  if (magic == WRAPPER_MAGIC) {
    /* Pointers in a file mean nothing. */
    if (avail != SIZE_MAX)
      return CUDA_ERROR_INVALID_IMAGE;
    return wrapper_image(p, out);
  }
  if (magic == FATBIN_MAGIC) {
    if ((r = fatbin_extent(p, avail, &size)) != CUDA_SUCCESS)
      return r;
    out->kind = GP__IMAGE_FATBIN;
  } else if (memcmp(head, ELFMAG, SELFMAG) == 0) {
    if ((r = elf_extent(p, avail, &size)) != CUDA_SUCCESS)
      return r;
    out->kind = GP__IMAGE_ELF;
  } else {
    /* Text is NUL-terminated (the API's contract for PTX; a file's
     * contents come with a NUL appended), so the classification reads no
     * further than the text; only then is its length measured. */
    if (!looks_like_ptx(p))
      return CUDA_ERROR_INVALID_IMAGE;
    size_t limit = avail < GP__IMAGE_MAX ? avail : GP__IMAGE_MAX;
    size_t len = strnlen((const char *)p, limit);
    if (len == limit) {
      if (avail > GP__IMAGE_MAX)
        return too_big("PTX text", (uint64_t)GP__IMAGE_MAX + 1);
      return CUDA_ERROR_INVALID_IMAGE;
    }
    size = len + 1;
    out->kind = GP__IMAGE_PTX;
  }
  out->data = p;
  out->size = size;
  return CUDA_SUCCESS;
}

void gp__image_free(struct gp__image *im) {
  free(im->owned);
  memset(im, 0, sizeof(*im));
}

/* ---- Digests ---------------------------------------------------------------- */

int gp__sha256(const void *p, size_t n, uint8_t md[GP__SHA256_LEN]) {
  unsigned len = 0;
  if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 ||
      len != GP__SHA256_LEN)
    return GP_ENOMEM;
  return 0;
}

/* The index of the first digest not less than |md|. */
static size_t lower_bound(const struct gp__digests *d,
                          const uint8_t md[GP__SHA256_LEN]) {
  size_t lo = 0, hi = d->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (memcmp(d->v[mid], md, GP__SHA256_LEN) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bool gp__digests_has(const struct gp__digests *d,
                     const uint8_t md[GP__SHA256_LEN]) {
  size_t i = lower_bound(d, md);
  return i < d->n && memcmp(d->v[i], md, GP__SHA256_LEN) == 0;
}

int gp__digests_add(struct gp__digests *d, const uint8_t md[GP__SHA256_LEN]) {
  size_t i = lower_bound(d, md);
  if (i < d->n && memcmp(d->v[i], md, GP__SHA256_LEN) == 0)
    return 0;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    void *v = realloc(d->v, cap * sizeof(*d->v));
    if (v == NULL)
      return GP_ENOMEM;
    d->v = v;
    d->cap = cap;
  }
  memmove(&d->v[i + 1], &d->v[i], (d->n - i) * sizeof(*d->v));
  memcpy(d->v[i], md, GP__SHA256_LEN);
  d->n++;
  return 0;
}
