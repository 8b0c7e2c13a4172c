/* The reader of module images: see fatbin.h. */
#include "fatbin.h"

#include <elf.h>
#include <inttypes.h>
#include <limits.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define FATBIN_HEADER_SIZE 16u
/* The fields the reader uses end at +64 (the u64 uncompressed size at +56):
 * an entry header shorter than that is malformed. nvcc writes 64 bytes for
 * machine code and 80 for PTX. */
#define ENTRY_HEADER_MIN 64u

/* How to rebuild a program so that the emulated device can run it. */
#define REBUILD_HINT                                                         \
  "the emulated device needs PTX; rebuild with nvcc's default or "          \
  "-gencode arch=compute_75,code=compute_75"

static int fail(char *msg, size_t msg_size, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes the message (when there is a buffer) and returns |err|. */
static int fail(char *msg, size_t msg_size, int err, const char *fmt, ...) {
  va_list ap;

  if (msg != NULL && msg_size > 0) {
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
  }
  return err;
}

/* The format is little-endian; read it byte by byte so that neither the
 * host's byte order nor the buffer's alignment matters. */
static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

/* True when |p| (|n| bytes) starts with |word| followed by whitespace or
 * the end of the text. */
static bool starts_with_word(const uint8_t *p, size_t n, const char *word) {
  size_t w = strlen(word);

  if (n < w || memcmp(p, word, w) != 0)
    return false;
  return n == w || p[w] == '\0' || is_space(p[w]);
}

/* True when |p| (|n| bytes) is PTX text: after whitespace and comments
 * (nvcc's -ptx output opens with // comments; the PTX in a fatbin opens
 * with the blank lines left where they were), the first thing is a module
 * directive. A NUL ends the text. */
static bool looks_like_ptx(const uint8_t *p, size_t n) {
  size_t i = 0;

  for (;;) {
    while (i < n && is_space(p[i]))
      i++;
    if (n - i >= 2 && p[i] == '/' && p[i + 1] == '/') {
      while (i < n && p[i] != '\n' && p[i] != '\0')
        i++;
      if (i < n && p[i] == '\0')
        return false;
      continue;
    }
    if (n - i >= 2 && p[i] == '/' && p[i + 1] == '*') {
      for (i += 2;; i++) {
        if (n - i < 2 || p[i] == '\0')
          return false; /* unterminated comment */
        if (p[i] == '*' && p[i + 1] == '/')
          break;
      }
      i += 2;
      continue;
    }
    break;
  }
  return starts_with_word(p + i, n - i, ".version") ||
         starts_with_word(p + i, n - i, ".target") ||
         starts_with_word(p + i, n - i, ".address_size");
}

static int wrapper_error(char *msg, size_t msg_size, size_t off) {
  return fail(msg, msg_size, GP_EINVAL,
              "a fatbin wrapper (magic 0x466243B1) at offset %zu: its "
              "pointers are client addresses; the client must send the "
              "fatbin bytes it points to",
              off);
}

int emu_image_classify(const void *data, size_t len, enum emu_image_kind *kind,
                       char *msg, size_t msg_size) {
  const uint8_t *p = data;
  uint8_t head[4] = {0, 0, 0, 0};

  if (p == NULL || len == 0)
    return fail(msg, msg_size, GP_EINVAL, "empty image");
  if (len >= 4) {
    if (rd32(p) == EMU_FATBIN_MAGIC) {
      *kind = EMU_IMAGE_FATBIN;
      return 0;
    }
    if (rd32(p) == EMU_FATBIN_WRAPPER_MAGIC)
      return wrapper_error(msg, msg_size, 0);
    if (memcmp(p, "\x7f" "ELF", 4) == 0) {
      *kind = EMU_IMAGE_ELF;
      return 0;
    }
  }
  if (looks_like_ptx(p, len)) {
    *kind = EMU_IMAGE_PTX;
    return 0;
  }
  memcpy(head, p, len < 4 ? len : 4);
  return fail(msg, msg_size, GP_EINVAL,
              "not a PTX, ELF or fatbin image (%zu bytes, starting "
              "%02x %02x %02x %02x)",
              len, head[0], head[1], head[2], head[3]);
}

void emu_fatbin_iter_init(struct emu_fatbin_iter *it, const void *data,
                          size_t len) {
  memset(it, 0, sizeof(*it));
  it->data = data;
  it->len = data != NULL ? len : 0;
}

static bool all_zero(const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

/* Moves |it| to the entries of the next fatbin. Returns 1 when there is
 * one, 0 at the end of the buffer, or a negative code. */
static int next_fatbin(struct emu_fatbin_iter *it, char *msg,
                       size_t msg_size) {
  const uint8_t *d = it->data;
  size_t pos = it->pos, left;
  uint32_t magic;
  uint16_t version, hs;
  uint64_t size;

  if (it->fatbin == 0 && it->len == 0)
    return fail(msg, msg_size, GP_EINVAL, "empty fatbin image");
  if (it->fatbin > 0) {
    if (all_zero(d + pos, it->len - pos))
      return 0;
    /* Fatbins laid out by a linker start at 8-byte boundaries; nvcc's
     * are multiples of 8 bytes long, so this skips nothing for them. */
    while (pos % 8 != 0 && d[pos] == 0)
      pos++;
  }
  left = it->len - pos;
  if (left < FATBIN_HEADER_SIZE)
    return fail(msg, msg_size, GP_EINVAL,
                "truncated fatbin header at offset %zu: %zu bytes of 16", pos,
                left);
  magic = rd32(d + pos);
  if (magic == EMU_FATBIN_WRAPPER_MAGIC)
    return wrapper_error(msg, msg_size, pos);
  if (magic != EMU_FATBIN_MAGIC)
    return fail(msg, msg_size, GP_EINVAL,
                "no fatbin magic at offset %zu (found 0x%08" PRIx32 ")", pos,
                magic);
  version = rd16(d + pos + 4);
  hs = rd16(d + pos + 6);
  size = rd64(d + pos + 8);
  if (version != 1)
    return fail(msg, msg_size, GP_EINVAL,
                "fatbin at offset %zu has version %u; only version 1 is known",
                pos, (unsigned)version);
  if (hs < FATBIN_HEADER_SIZE || hs > left)
    return fail(msg, msg_size, GP_EINVAL,
                "fatbin at offset %zu declares a %u-byte header (%zu bytes "
                "left)",
                pos, (unsigned)hs, left);
  if (size > left - hs)
    return fail(msg, msg_size, GP_EINVAL,
                "fatbin at offset %zu declares %" PRIu64 " bytes of entries "
                "but only %zu follow its header",
                pos, size, left - hs);
  it->pos = pos + hs;
  it->end = it->pos + (size_t)size;
  it->fatbin++;
  it->index = 0;
  return 1;
}

/* Reads the entry header at it->pos into |e| and steps past the entry. */
static int read_entry(struct emu_fatbin_iter *it,
                      struct emu_fatbin_entry *e, char *msg,
                      size_t msg_size) {
  const uint8_t *h = it->data + it->pos;
  size_t avail = it->end - it->pos;
  uint32_t hs;
  uint64_t psz, flags;

  if (avail < ENTRY_HEADER_MIN)
    return fail(msg, msg_size, GP_EINVAL,
                "truncated entry header at offset %zu: %zu bytes of the "
                "fatbin left, a header needs %u",
                it->pos, avail, ENTRY_HEADER_MIN);
  hs = rd32(h + 4);
  psz = rd64(h + 8);
  flags = rd64(h + 40);
  if (hs < ENTRY_HEADER_MIN || hs > avail)
    return fail(msg, msg_size, GP_EINVAL,
                "entry at offset %zu declares a %" PRIu32 "-byte header "
                "(%zu bytes of the fatbin left)",
                it->pos, hs, avail);
  if (psz > avail - hs)
    return fail(msg, msg_size, GP_EINVAL,
                "entry at offset %zu declares a %" PRIu64 "-byte payload but "
                "only %zu bytes of the fatbin follow its header",
                it->pos, psz, avail - hs);
  memset(e, 0, sizeof(*e));
  e->fatbin = it->fatbin - 1;
  e->index = it->index;
  e->kind = rd16(h);
  e->sm = rd32(h + 28);
  e->flags = flags;
  e->header_offset = it->pos;
  e->header_size = hs;
  e->payload_offset = it->pos + hs;
  e->payload_size = psz;
  if ((flags & EMU_FATBIN_FLAG_LZ4) && (flags & EMU_FATBIN_FLAG_ZSTD))
    return fail(msg, msg_size, GP_EINVAL,
                "entry at offset %zu is flagged both LZ4 and zstd (flags "
                "0x%" PRIx64 ")",
                it->pos, flags);
  if (flags & (EMU_FATBIN_FLAG_LZ4 | EMU_FATBIN_FLAG_ZSTD)) {
    e->compressed_size = rd32(h + 16);
    e->uncompressed_size = rd64(h + 56);
    if (e->compressed_size == 0 || e->compressed_size > psz)
      return fail(msg, msg_size, GP_EINVAL,
                  "entry at offset %zu declares %" PRIu64 " compressed "
                  "bytes in a %" PRIu64 "-byte payload",
                  it->pos, e->compressed_size, psz);
  }
  it->pos = e->payload_offset + (size_t)psz;
  it->index++;
  return 1;
}

int emu_fatbin_next(struct emu_fatbin_iter *it, struct emu_fatbin_entry *entry,
                    char *msg, size_t msg_size) {
  int rc;

  if (it->done)
    return 0;
  while (it->pos == it->end) {
    rc = next_fatbin(it, msg, msg_size);
    if (rc <= 0) {
      it->done = 1;
      return rc;
    }
  }
  rc = read_entry(it, entry, msg, msg_size);
  if (rc < 0)
    it->done = 1;
  return rc;
}

/* Copies the text in |p| (|n| bytes, up to its first NUL) into a new
 * NUL-terminated string: the caller frees |*out|. */
static int copy_text(const uint8_t *p, size_t n, char **out, size_t *out_len,
                     char *msg, size_t msg_size) {
  const uint8_t *nul = memchr(p, '\0', n);
  size_t len = nul != NULL ? (size_t)(nul - p) : n;
  char *s;

  if (len > EMU_FATBIN_PTX_MAX)
    return fail(msg, msg_size, GP_ETOOBIG,
                "PTX text of %zu bytes is over the limit of %u", len,
                EMU_FATBIN_PTX_MAX);
  s = malloc(len + 1);
  if (s == NULL)
    return fail(msg, msg_size, GP_ENOMEM, "out of memory for %zu bytes of PTX",
                len);
  memcpy(s, p, len);
  s[len] = '\0';
  *out = s;
  *out_len = len;
  return 0;
}

/* Decompresses the payload of |e| (in |d|) into a new buffer of exactly
 * its declared uncompressed size plus a NUL: the caller frees |*out|.
 * |*out_len| is the text's length (up to its first NUL) for a PTX entry,
 * the byte count for any other. */
static int decompress(const uint8_t *d, const struct emu_fatbin_entry *e,
                      char **out, size_t *out_len, char *msg,
                      size_t msg_size) {
  const char *what = e->kind == EMU_FATBIN_KIND_PTX ? "PTX" : "ELF";
  const uint8_t *src = d + e->payload_offset;
  uint64_t usz = e->uncompressed_size;
  size_t got;
  char *buf;
  int rc;

  /* The declared size is checked before anything is allocated for it. */
  if (usz > EMU_FATBIN_PTX_MAX)
    return fail(msg, msg_size, GP_ETOOBIG,
                "%s entry at offset %zu declares %" PRIu64 " bytes "
                "uncompressed, over the limit of %u",
                what, e->header_offset, usz, EMU_FATBIN_PTX_MAX);
  if (usz == 0)
    return fail(msg, msg_size, GP_EINVAL,
                "compressed %s entry at offset %zu declares 0 bytes "
                "uncompressed",
                what, e->header_offset);
  buf = malloc((size_t)usz + 1);
  if (buf == NULL)
    return fail(msg, msg_size, GP_ENOMEM,
                "out of memory for %" PRIu64 " bytes of %s", usz, what);
  if (e->flags & EMU_FATBIN_FLAG_ZSTD) {
    got = ZSTD_decompress(buf, (size_t)usz, src, (size_t)e->compressed_size);
    if (ZSTD_isError(got)) {
      rc = fail(msg, msg_size, GP_EINVAL,
                "%s entry at offset %zu: zstd: %s", what, e->header_offset,
                ZSTD_getErrorName(got));
      goto out;
    }
  } else {
    /* compressed_size <= payload_size fits in the buffer, and the flag
     * field is 32 bits, but an int is what LZ4 takes. */
    int r;
    if (e->compressed_size > INT_MAX) {
      rc = fail(msg, msg_size, GP_EINVAL,
                "%s entry at offset %zu: %" PRIu64 " LZ4 bytes is too many",
                what, e->header_offset, e->compressed_size);
      goto out;
    }
    r = LZ4_decompress_safe((const char *)src, buf, (int)e->compressed_size,
                            (int)usz);
    if (r < 0) {
      rc = fail(msg, msg_size, GP_EINVAL,
                "%s entry at offset %zu: malformed LZ4 data",
                what, e->header_offset);
      goto out;
    }
    got = (size_t)r;
  }
  /* nvcc 13 declares the exact size, the text's trailing NUL included. */
  if (got != usz) {
    rc = fail(msg, msg_size, GP_EINVAL,
              "%s entry at offset %zu decompresses to %zu bytes, not the "
              "%" PRIu64 " it declares",
              what, e->header_offset, got, usz);
    goto out;
  }
  buf[got] = '\0';
  *out_len = e->kind == EMU_FATBIN_KIND_PTX ? strlen(buf) : got;
  *out = buf;
  buf = NULL;
  rc = 0;
out:
  free(buf);
  return rc;
}

/* The PTX of the image's fatbins: see emu_image_get_ptx(). */
static int fatbin_ptx(const uint8_t *d, size_t len, char **out,
                      size_t *out_len, char *msg, size_t msg_size) {
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e, best = {0};
  bool have_ptx = false;
  unsigned nentries = 0;
  uint32_t elf_sm = 0;
  int rc;

  emu_fatbin_iter_init(&it, d, len);
  while ((rc = emu_fatbin_next(&it, &e, msg, msg_size)) == 1) {
    nentries++;
    if (e.kind == EMU_FATBIN_KIND_ELF && e.sm > elf_sm)
      elf_sm = e.sm;
    if (e.kind == EMU_FATBIN_KIND_PTX && (!have_ptx || e.sm >= best.sm)) {
      best = e;
      have_ptx = true;
    }
  }
  if (rc < 0)
    return rc;
  if (!have_ptx) {
    if (elf_sm != 0)
      return fail(msg, msg_size, EMU_FATBIN_ENOPTX,
                  "the fatbin has machine code only (sm_%" PRIu32 ", built "
                  "with code=sm_XX), no PTX: " REBUILD_HINT,
                  elf_sm);
    return fail(msg, msg_size, EMU_FATBIN_ENOPTX,
                "the fatbin has no PTX (%u entries): " REBUILD_HINT,
                nentries);
  }
  if (best.flags & (EMU_FATBIN_FLAG_LZ4 | EMU_FATBIN_FLAG_ZSTD))
    rc = decompress(d, &best, out, out_len, msg, msg_size);
  else if (best.payload_size > EMU_FATBIN_PTX_MAX)
    rc = fail(msg, msg_size, GP_ETOOBIG,
              "PTX entry at offset %zu has %" PRIu64 " bytes, over the limit "
              "of %u",
              best.header_offset, best.payload_size, EMU_FATBIN_PTX_MAX);
  else
    rc = copy_text(d + best.payload_offset, (size_t)best.payload_size, out,
                   out_len, msg, msg_size);
  if (rc < 0)
    return rc;
  if (!looks_like_ptx((const uint8_t *)*out, *out_len)) {
    free(*out);
    *out = NULL;
    return fail(msg, msg_size, GP_EINVAL,
                "PTX entry at offset %zu (sm_%" PRIu32 ") does not hold PTX "
                "text",
                best.header_offset, best.sm);
  }
  return 0;
}

int emu_image_get_ptx(const void *data, size_t len, char **out,
                      size_t *out_len, char *msg, size_t msg_size) {
  enum emu_image_kind kind;
  size_t n = 0;
  int rc;

  *out = NULL;
  rc = emu_image_classify(data, len, &kind, msg, msg_size);
  if (rc < 0)
    return rc;
  switch (kind) {
  case EMU_IMAGE_PTX:
    rc = copy_text(data, len, out, &n, msg, msg_size);
    break;
  case EMU_IMAGE_ELF:
    return fail(msg, msg_size, EMU_FATBIN_ENOPTX,
                "the image is an ELF cubin, machine code only, no PTX: "
                REBUILD_HINT);
  case EMU_IMAGE_FATBIN:
    rc = fatbin_ptx(data, len, out, &n, msg, msg_size);
    break;
  default:
    return fail(msg, msg_size, GP_EINVAL, "unknown image kind %d", (int)kind);
  }
  if (rc == 0 && out_len != NULL)
    *out_len = n;
  return rc;
}

/* ---- cubins that define nothing -------------------------------------------- */

/* 1 when the 64-bit ELF |p| (|n| bytes) has no defined function or data
 * symbol, 0 when it has one, GP_EINVAL when its tables are out of
 * bounds. */
static int elf_empty(const uint8_t *p, size_t n, size_t at, char *msg,
                     size_t msg_size) {
  Elf64_Ehdr eh;

  if (n < sizeof(eh) || memcmp(p, ELFMAG, SELFMAG) != 0 ||
      p[EI_CLASS] != ELFCLASS64)
    return fail(msg, msg_size, GP_EINVAL,
                "machine code entry at offset %zu is not a 64-bit ELF", at);
  memcpy(&eh, p, sizeof(eh));
  if (eh.e_shoff == 0 || eh.e_shnum == 0)
    return 1;
  if (eh.e_shentsize < sizeof(Elf64_Shdr) || eh.e_shoff > n ||
      eh.e_shnum > (n - eh.e_shoff) / eh.e_shentsize)
    return fail(msg, msg_size, GP_EINVAL,
                "machine code entry at offset %zu: section table out of "
                "bounds", at);
  for (unsigned i = 0; i < eh.e_shnum; i++) {
    Elf64_Shdr sh;
    memcpy(&sh, p + eh.e_shoff + (size_t)i * eh.e_shentsize, sizeof(sh));
    if (sh.sh_type != SHT_SYMTAB)
      continue;
    if (sh.sh_entsize < sizeof(Elf64_Sym) || sh.sh_offset > n ||
        sh.sh_size > n - sh.sh_offset)
      return fail(msg, msg_size, GP_EINVAL,
                  "machine code entry at offset %zu: symbol table out of "
                  "bounds", at);
    for (uint64_t k = 0; k + sh.sh_entsize <= sh.sh_size;
         k += sh.sh_entsize) {
      Elf64_Sym y;
      unsigned type;
      memcpy(&y, p + sh.sh_offset + k, sizeof(y));
      type = ELF64_ST_TYPE(y.st_info);
      if ((type == STT_FUNC || type == STT_OBJECT) &&
          y.st_shndx != SHN_UNDEF)
        return 0;
    }
  }
  return 1;
}

int emu_fatbin_elf_is_empty(const void *data, size_t len,
                            const struct emu_fatbin_entry *e, char *msg,
                            size_t msg_size) {
  const uint8_t *d = data;
  char *buf = NULL;
  size_t n = 0;
  int rc;

  if (e->kind != EMU_FATBIN_KIND_ELF ||
      e->payload_offset + e->payload_size > len)
    return fail(msg, msg_size, GP_EINVAL,
                "entry at offset %zu is not a machine code entry of the "
                "image", e->header_offset);
  if (!(e->flags & (EMU_FATBIN_FLAG_LZ4 | EMU_FATBIN_FLAG_ZSTD)))
    return elf_empty(d + e->payload_offset, (size_t)e->payload_size,
                     e->header_offset, msg, msg_size);
  rc = decompress(d, e, &buf, &n, msg, msg_size);
  if (rc < 0)
    return rc;
  rc = elf_empty((const uint8_t *)buf, n, e->header_offset, msg, msg_size);
  free(buf);
  return rc;
}
