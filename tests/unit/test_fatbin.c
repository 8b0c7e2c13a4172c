/* Unit tests of the emu backend's image reader
 * (server/backend/emu/fatbin.c).
 *
 * Two groups of cases. The synthetic ones build fatbins here (with libzstd
 * and liblz4) and need nothing else. The nvcc ones read images that the
 * build made with nvcc from tests/cuda/fatbin_sample.cu; meson passes their
 * paths in GP_TEST_* variables and GP_TEST_NVCC=1. When nvcc was not found
 * at build time (GP_TEST_NVCC=0) the synthetic cases run, and the program
 * then exits 77, which meson reports as skipped, saying why.
 *
 * What nvcc 13.0 produced when these tests were written, and what they
 * assert:
 *   - the PTX in a fatbin is not byte for byte the text of `nvcc -ptx`:
 *     fatbinary drops // comments and collapses each line's runs of blanks
 *     to one space, trimming both ends of the line, and keeps every newline
 *     (so line numbers agree); minify() below does the same and its result
 *     equals the extracted text exactly;
 *   - the declared uncompressed size of a compressed PTX entry is the text
 *     plus one NUL, and decompression yields exactly that many bytes;
 *   - an uncompressed PTX payload is the text, a NUL, and NULs up to a
 *     multiple of 8 bytes;
 *   - entry headers are 64 bytes for ELF and 80 for PTX; `default` and
 *     `balance` compress the PTX with zstd and leave the ELF raw, `speed`
 *     uses LZ4 for the PTX, `size` zstd for both, `none` neither; all
 *     entries carry flags 0x11 (64-bit, Linux) besides.
 */
#include <check.h>
#include <lz4.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "blob.h"
#include "backend/emu/fatbin.h"

/* ---- helpers ------------------------------------------------------------- */

static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static size_t pad8(size_t n) {
  return (n + 7) & ~(size_t)7;
}

/* One entry for build_fatbin(). */
struct syn_entry {
  uint16_t kind;
  uint32_t sm;
  uint64_t flags;
  const void *payload;
  size_t n;            /* payload bytes before padding */
  uint32_t csz;        /* compressed size field */
  uint64_t usz;        /* uncompressed size field */
  uint32_t hs;         /* header size: 0 means 80 for PTX, 64 otherwise */
};

/* A version-1 fatbin of |count| entries laid out as nvcc does: the caller
 * frees the result. */
static uint8_t *build_fatbin(const struct syn_entry *ents, size_t count,
                             size_t *len) {
  size_t total = 16, off;
  uint8_t *b;

  for (size_t i = 0; i < count; i++) {
    uint32_t hs = ents[i].hs ? ents[i].hs : ents[i].kind == 1 ? 80 : 64;
    total += hs + pad8(ents[i].n);
  }
  b = calloc(1, total);
  ck_assert_ptr_nonnull(b);
  wr32(b, EMU_FATBIN_MAGIC);
  wr16(b + 4, 1);
  wr16(b + 6, 16);
  wr64(b + 8, total - 16);
  off = 16;
  for (size_t i = 0; i < count; i++) {
    const struct syn_entry *e = &ents[i];
    uint32_t hs = e->hs ? e->hs : e->kind == 1 ? 80 : 64;
    wr16(b + off, e->kind);
    wr16(b + off + 2, 0x101);
    wr32(b + off + 4, hs);
    wr64(b + off + 8, pad8(e->n));
    wr32(b + off + 16, e->csz);
    wr32(b + off + 28, e->sm);
    wr64(b + off + 40, e->flags);
    wr64(b + off + 56, e->usz);
    if (e->n)
      memcpy(b + off + hs, e->payload, e->n);
    off += hs + pad8(e->n);
  }
  *len = total;
  return b;
}

static const char syn_ptx75[] =
    "//\n// a comment\n//\n\n.version 9.0\n.target sm_75\n"
    ".address_size 64\n\n.visible .entry k()\n{\nret;\n}\n";
static const char syn_ptx90[] =
    "\n\n.version 9.0\n.target sm_90\n.address_size 64\n\n"
    ".visible .entry k()\n{\nret;\n}\n";

/* A raw PTX entry for |text|: the text, its NUL, padding. */
static struct syn_entry raw_ptx(const char *text, uint32_t sm) {
  struct syn_entry e = {.kind = 1, .sm = sm, .flags = 0x11,
                        .payload = text, .n = strlen(text) + 1};
  return e;
}

/* A zstd (or LZ4) PTX entry for |text|; |*buf| holds the compressed bytes
 * until the caller frees it. */
static struct syn_entry packed_ptx(const char *text, uint32_t sm, bool lz4,
                                   void **buf) {
  size_t n = strlen(text) + 1, cap, c;
  struct syn_entry e = {.kind = 1, .sm = sm, .usz = n};

  if (lz4) {
    cap = (size_t)LZ4_compressBound((int)n);
    *buf = malloc(cap);
    ck_assert_ptr_nonnull(*buf);
    c = (size_t)LZ4_compress_default(text, *buf, (int)n, (int)cap);
    ck_assert_uint_gt(c, 0);
    e.flags = 0x11 | EMU_FATBIN_FLAG_LZ4;
  } else {
    cap = ZSTD_compressBound(n);
    *buf = malloc(cap);
    ck_assert_ptr_nonnull(*buf);
    c = ZSTD_compress(*buf, cap, text, n, 3);
    ck_assert(!ZSTD_isError(c));
    e.flags = 0x11 | EMU_FATBIN_FLAG_ZSTD;
  }
  e.payload = *buf;
  e.n = c;
  e.csz = (uint32_t)c;
  return e;
}

static const uint8_t fake_elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0x41};

static struct syn_entry elf_entry(uint32_t sm) {
  struct syn_entry e = {.kind = 2, .sm = sm, .flags = 0x11,
                        .payload = fake_elf, .n = sizeof(fake_elf)};
  return e;
}

/* Runs emu_image_get_ptx() on an exact-size heap copy of |data|, so that
 * AddressSanitizer sees any read past the end. Returns its code; on
 * success |*out| is the text (the caller frees it). */
static int get_ptx(const void *data, size_t len, char **out, char *msg) {
  uint8_t *copy = malloc(len ? len : 1);
  size_t n = (size_t)-1;
  int rc;

  ck_assert_ptr_nonnull(copy);
  if (len)
    memcpy(copy, data, len);
  msg[0] = '\0';
  rc = emu_image_get_ptx(copy, len, out, &n, msg, EMU_FATBIN_MSG_SIZE);
  if (rc == 0) {
    ck_assert_ptr_nonnull(*out);
    ck_assert_uint_eq(n, strlen(*out));
  } else {
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(*out);
    ck_assert_uint_gt(strlen(msg), 0); /* always says why */
    ck_assert_ptr_null(strchr(msg, '\n'));
  }
  free(copy);
  return rc;
}

/* Expects |data| to fail with |err| and a message containing |needle|. */
static void expect_err(const void *data, size_t len, int err,
                       const char *needle) {
  char msg[EMU_FATBIN_MSG_SIZE];
  char *ptx = NULL;
  int rc = get_ptx(data, len, &ptx, msg);

  ck_assert_msg(rc == err, "expected %d, got %d (%s)", err, rc, msg);
  if (needle != NULL)
    ck_assert_msg(strstr(msg, needle) != NULL, "'%s' not in '%s'", needle,
                  msg);
}

/* Expects |data| to yield exactly |want|. */
static void expect_ptx(const void *data, size_t len, const char *want) {
  char msg[EMU_FATBIN_MSG_SIZE];
  char *ptx = NULL;
  int rc = get_ptx(data, len, &ptx, msg);

  ck_assert_msg(rc == 0, "failed with %d: %s", rc, msg);
  ck_assert_str_eq(ptx, want);
  free(ptx);
}

/* The number of entries the iterator lists, or its error code. */
static int count_entries(const void *data, size_t len) {
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e;
  char msg[EMU_FATBIN_MSG_SIZE];
  int rc, n = 0;

  emu_fatbin_iter_init(&it, data, len);
  while ((rc = emu_fatbin_next(&it, &e, msg, sizeof(msg))) == 1) {
    ck_assert_uint_le(e.payload_offset + e.payload_size, len);
    n++;
  }
  /* After the end or an error the iterator stays finished. */
  ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 0);
  return rc < 0 ? rc : n;
}

/* What fatbinary does to nvcc's PTX (see the top of this file): drop //
 * comments, collapse blanks to one space, trim each line, keep newlines.
 * The caller frees the result. */
static char *minify(const char *s) {
  char *o = malloc(strlen(s) + 1);
  size_t j = 0;

  ck_assert_ptr_nonnull(o);
  for (const char *line = s;;) {
    const char *nl = strchr(line, '\n');
    const char *end = nl ? nl : line + strlen(line);
    size_t start = j;
    bool blank = false;

    for (const char *p = line; p < end; p++) {
      if (p[0] == '/' && p + 1 < end && p[1] == '/')
        break;
      if (*p == ' ' || *p == '\t') {
        blank = true;
        continue;
      }
      if (blank && j > start)
        o[j++] = ' ';
      blank = false;
      o[j++] = *p;
    }
    if (!nl)
      break;
    o[j++] = '\n';
    line = nl + 1;
  }
  o[j] = '\0';
  return o;
}

/* ---- classification ------------------------------------------------------ */

START_TEST(test_fatbin_classify_kinds) {
  enum emu_image_kind k = 0;
  char msg[EMU_FATBIN_MSG_SIZE];
  uint8_t fb[16] = {0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0};
  const char *ptx[] = {
      ".version 9.0\n",
      "  \n\t.target sm_75",
      "//\n// Generated by NVIDIA NVVM Compiler\n//\n\n.version 9.0\n",
      "/* block\n comment */ .address_size 64\n",
      "\n\n\n.version 9.0",
  };

  ck_assert_int_eq(emu_image_classify(fb, sizeof(fb), &k, msg, sizeof(msg)),
                   0);
  ck_assert_int_eq(k, EMU_IMAGE_FATBIN);
  ck_assert_int_eq(emu_image_classify(fake_elf, 4, &k, msg, sizeof(msg)), 0);
  ck_assert_int_eq(k, EMU_IMAGE_ELF);
  for (size_t i = 0; i < sizeof(ptx) / sizeof(ptx[0]); i++) {
    k = 0;
    ck_assert_int_eq(
        emu_image_classify(ptx[i], strlen(ptx[i]), &k, msg, sizeof(msg)), 0);
    ck_assert_int_eq(k, EMU_IMAGE_PTX);
  }
}
END_TEST

START_TEST(test_fatbin_classify_rejects_garbage) {
  enum emu_image_kind k;
  char msg[EMU_FATBIN_MSG_SIZE];
  const char *bad[] = {
      "",                      /* empty */
      "\x7f" "EL",             /* short ELF magic */
      "hello",                 /* text, no directive */
      ".versions 9.0\n",       /* not the directive */
      "// only a comment",     /* no directive */
      "/* unterminated .version 9.0",
      "\0.version 9.0",        /* the NUL ends the text */
      "   .entry k()",         /* a directive, but not a module one */
  };
  size_t lens[] = {0, 3, 5, 14, 17, 28, 13, 13};

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msg[0] = '\0';
    ck_assert_int_eq(emu_image_classify(bad[i], lens[i], &k, msg, sizeof(msg)),
                     GP_EINVAL);
    ck_assert_uint_gt(strlen(msg), 0);
  }
  ck_assert_int_eq(emu_image_classify(NULL, 0, &k, msg, sizeof(msg)),
                   GP_EINVAL);
}
END_TEST

START_TEST(test_fatbin_classify_wrapper_error) {
  uint8_t w[24] = {0};
  enum emu_image_kind k;
  char msg[EMU_FATBIN_MSG_SIZE];

  wr32(w, EMU_FATBIN_WRAPPER_MAGIC);
  wr32(w + 4, 1);
  wr64(w + 8, 0x555555554000ull);
  ck_assert_int_eq(emu_image_classify(w, sizeof(w), &k, msg, sizeof(msg)),
                   GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(msg, "wrapper"));
  ck_assert_ptr_nonnull(strstr(msg, "must send the fatbin bytes"));
  expect_err(w, sizeof(w), GP_EINVAL, "must send the fatbin bytes");
}
END_TEST

/* ---- images that are not fatbins ----------------------------------------- */

START_TEST(test_fatbin_ptx_text_image) {
  char buf[256];
  size_t n = strlen(syn_ptx75);

  /* cuModuleLoadData's PTX is NUL-terminated; the client may send the
   * NUL and padding after it. */
  memset(buf, 0, sizeof(buf));
  memcpy(buf, syn_ptx75, n);
  expect_ptx(buf, n, syn_ptx75);
  expect_ptx(buf, n + 1, syn_ptx75);
  expect_ptx(buf, sizeof(buf), syn_ptx75);
}
END_TEST

START_TEST(test_fatbin_elf_image_needs_ptx) {
  expect_err(fake_elf, sizeof(fake_elf), EMU_FATBIN_ENOPTX,
             "-gencode arch=compute_75,code=compute_75");
}
END_TEST

/* ---- synthetic fatbins --------------------------------------------------- */

START_TEST(test_fatbin_synthetic_raw_zstd_lz4) {
  void *zb, *lb;
  struct syn_entry raw[] = {elf_entry(75), raw_ptx(syn_ptx75, 75)};
  struct syn_entry z[] = {elf_entry(75), packed_ptx(syn_ptx75, 75, false, &zb)};
  struct syn_entry l[] = {packed_ptx(syn_ptx75, 75, true, &lb), elf_entry(75)};
  struct syn_entry *sets[] = {raw, z, l};
  size_t len;

  for (int i = 0; i < 3; i++) {
    uint8_t *fb = build_fatbin(sets[i], 2, &len);
    ck_assert_int_eq(count_entries(fb, len), 2);
    expect_ptx(fb, len, syn_ptx75);
    free(fb);
  }
  free(zb);
  free(lb);
}
END_TEST

START_TEST(test_fatbin_iter_reports_fields) {
  void *zb;
  struct syn_entry ents[] = {elf_entry(86),
                             packed_ptx(syn_ptx90, 90, false, &zb)};
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e;
  char msg[EMU_FATBIN_MSG_SIZE];
  size_t len;
  uint8_t *fb = build_fatbin(ents, 2, &len);

  emu_fatbin_iter_init(&it, fb, len);
  ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 1);
  ck_assert_uint_eq(e.kind, EMU_FATBIN_KIND_ELF);
  ck_assert_uint_eq(e.sm, 86);
  ck_assert_uint_eq(e.flags, 0x11);
  ck_assert_uint_eq(e.header_offset, 16);
  ck_assert_uint_eq(e.header_size, 64);
  ck_assert_uint_eq(e.payload_offset, 80);
  ck_assert_uint_eq(e.payload_size, 64);
  ck_assert_uint_eq(e.compressed_size, 0);
  ck_assert_uint_eq(e.fatbin, 0);
  ck_assert_uint_eq(e.index, 0);
  ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 1);
  ck_assert_uint_eq(e.kind, EMU_FATBIN_KIND_PTX);
  ck_assert_uint_eq(e.sm, 90);
  ck_assert_uint_eq(e.header_offset, 144);
  ck_assert_uint_eq(e.header_size, 80);
  ck_assert_uint_eq(e.compressed_size, ents[1].csz);
  ck_assert_uint_eq(e.uncompressed_size, strlen(syn_ptx90) + 1);
  ck_assert_uint_eq(e.index, 1);
  ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 0);
  ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 0);
  free(fb);
  free(zb);
}
END_TEST

START_TEST(test_fatbin_picks_highest_sm_latest_tie) {
  const char *a90 = "\n.version 9.0\n.target sm_90\n// first\n";
  const char *b90 = "\n.version 9.0\n.target sm_90\n// second\n";
  struct syn_entry ents[] = {raw_ptx(syn_ptx75, 75), raw_ptx(a90, 90),
                             elf_entry(100), raw_ptx(b90, 90),
                             raw_ptx(syn_ptx75, 80)};
  size_t len;
  uint8_t *fb = build_fatbin(ents, 5, &len);

  expect_ptx(fb, len, b90);
  free(fb);
}
END_TEST

START_TEST(test_fatbin_back_to_back) {
  struct syn_entry one[] = {raw_ptx(syn_ptx90, 90)};
  struct syn_entry two[] = {elf_entry(75), raw_ptx(syn_ptx75, 75)};
  size_t l1, l2;
  uint8_t *f1 = build_fatbin(one, 1, &l1), *f2 = build_fatbin(two, 2, &l2);
  uint8_t *cat = calloc(1, l2 + l1 + 64);
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e;
  char msg[EMU_FATBIN_MSG_SIZE];

  ck_assert_ptr_nonnull(cat);
  memcpy(cat, f2, l2);
  memcpy(cat + l2, f1, l1);
  ck_assert_int_eq(count_entries(cat, l2 + l1), 3);
  expect_ptx(cat, l2 + l1, syn_ptx90);
  /* Zero padding after the last fatbin is allowed. */
  ck_assert_int_eq(count_entries(cat, l2 + l1 + 64), 3);
  expect_ptx(cat, l2 + l1 + 64, syn_ptx90);
  emu_fatbin_iter_init(&it, cat, l2 + l1);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(emu_fatbin_next(&it, &e, msg, sizeof(msg)), 1);
  ck_assert_uint_eq(e.fatbin, 1);
  ck_assert_uint_eq(e.index, 0);
  ck_assert_uint_eq(e.header_offset, l2 + 16);
  /* Anything else after a fatbin is not. */
  cat[l2 + l1 + 8] = 1;
  expect_err(cat, l2 + l1 + 64, GP_EINVAL, "no fatbin magic");
  /* Nor is a wrapper. */
  memset(cat + l2 + l1, 0, 64);
  wr32(cat + l2 + l1, EMU_FATBIN_WRAPPER_MAGIC);
  expect_err(cat, l2 + l1 + 64, GP_EINVAL, "must send the fatbin bytes");
  free(cat);
  free(f1);
  free(f2);
}
END_TEST

START_TEST(test_fatbin_no_ptx_synthetic) {
  struct syn_entry ents[] = {elf_entry(75), elf_entry(86)};
  struct syn_entry other = {.kind = 8, .sm = 75, .payload = "x", .n = 1};
  size_t len;
  uint8_t *fb = build_fatbin(ents, 2, &len);

  expect_err(fb, len, EMU_FATBIN_ENOPTX, "sm_86");
  free(fb);
  fb = build_fatbin(NULL, 0, &len);
  expect_err(fb, len, EMU_FATBIN_ENOPTX, "needs PTX");
  free(fb);
  /* An entry of another kind (e.g. LTO IR) is listed, not run. */
  fb = build_fatbin(&other, 1, &len);
  ck_assert_int_eq(count_entries(fb, len), 1);
  expect_err(fb, len, EMU_FATBIN_ENOPTX, "needs PTX");
  free(fb);
}
END_TEST

START_TEST(test_fatbin_entry_past_end) {
  struct syn_entry ents[] = {elf_entry(75), raw_ptx(syn_ptx75, 75)};
  size_t len;
  uint8_t *fb = build_fatbin(ents, 2, &len);
  uint64_t sizes[] = {len, 1ull << 40, UINT64_MAX, UINT64_MAX - 15};

  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    /* the first entry's payload size */
    wr64(fb + 16 + 8, sizes[i]);
    expect_err(fb, len, GP_EINVAL, "payload");
    ck_assert_int_eq(count_entries(fb, len), GP_EINVAL);
  }
  wr64(fb + 16 + 8, 64);
  /* the second entry's header size */
  wr32(fb + 16 + 64 + 64 + 4, 0xfffffff0u);
  expect_err(fb, len, GP_EINVAL, "header");
  wr32(fb + 16 + 64 + 64 + 4, 8);
  expect_err(fb, len, GP_EINVAL, "header");
  wr32(fb + 16 + 64 + 64 + 4, 80);
  /* the fatbin's own size */
  wr64(fb + 8, len - 15);
  expect_err(fb, len, GP_EINVAL, "bytes of entries");
  wr64(fb + 8, UINT64_MAX);
  expect_err(fb, len, GP_EINVAL, "bytes of entries");
  wr64(fb + 8, len - 16);
  expect_ptx(fb, len, syn_ptx75);
  free(fb);
}
END_TEST

START_TEST(test_fatbin_bad_headers) {
  void *zb;
  struct syn_entry ents[] = {packed_ptx(syn_ptx75, 75, false, &zb)};
  size_t len;
  uint8_t *fb = build_fatbin(ents, 1, &len);

  expect_ptx(fb, len, syn_ptx75);
  wr16(fb + 4, 2); /* fatbin version */
  expect_err(fb, len, GP_EINVAL, "version 2");
  wr16(fb + 4, 1);
  wr16(fb + 6, 8); /* fatbin header size */
  expect_err(fb, len, GP_EINVAL, "header");
  wr16(fb + 6, 0xffff);
  expect_err(fb, len, GP_EINVAL, "header");
  wr16(fb + 6, 16);
  wr64(fb + 16 + 40, 0x11 | EMU_FATBIN_FLAG_ZSTD | EMU_FATBIN_FLAG_LZ4);
  expect_err(fb, len, GP_EINVAL, "both LZ4 and zstd");
  wr64(fb + 16 + 40, 0x11 | EMU_FATBIN_FLAG_ZSTD);
  wr32(fb + 16 + 16, 0); /* compressed size */
  expect_err(fb, len, GP_EINVAL, "compressed");
  wr32(fb + 16 + 16, (uint32_t)pad8(ents[0].n) + 1);
  expect_err(fb, len, GP_EINVAL, "compressed");
  wr32(fb + 16 + 16, ents[0].csz);
  wr64(fb + 16 + 56, 0); /* uncompressed size */
  expect_err(fb, len, GP_EINVAL, "0 bytes");
  wr64(fb + 16 + 56, ents[0].usz);
  expect_ptx(fb, len, syn_ptx75);
  free(fb);
  free(zb);
}
END_TEST

START_TEST(test_fatbin_huge_uncompressed_size) {
  void *zb, *lb;
  struct syn_entry z = packed_ptx(syn_ptx75, 75, false, &zb);
  struct syn_entry l = packed_ptx(syn_ptx75, 75, true, &lb);
  uint64_t sizes[] = {(uint64_t)EMU_FATBIN_PTX_MAX + 1, 1ull << 40,
                      UINT64_MAX};

  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t len;
    z.usz = l.usz = sizes[i];
    /* GP_ETOOBIG and not GP_ENOMEM: nothing was allocated for it. */
    uint8_t *fb = build_fatbin(&z, 1, &len);
    expect_err(fb, len, GP_ETOOBIG, "over the limit");
    free(fb);
    fb = build_fatbin(&l, 1, &len);
    expect_err(fb, len, GP_ETOOBIG, "over the limit");
    free(fb);
  }
  free(zb);
  free(lb);
}
END_TEST

START_TEST(test_fatbin_size_mismatch) {
  void *zb, *lb;
  struct syn_entry z = packed_ptx(syn_ptx75, 75, false, &zb);
  struct syn_entry l = packed_ptx(syn_ptx75, 75, true, &lb);
  size_t n = strlen(syn_ptx75) + 1, len;
  uint8_t *fb;

  /* Declared too small: the output does not fit. Too large: it is short. */
  z.usz = l.usz = n - 1;
  fb = build_fatbin(&z, 1, &len);
  expect_err(fb, len, GP_EINVAL, "zstd");
  free(fb);
  fb = build_fatbin(&l, 1, &len);
  expect_err(fb, len, GP_EINVAL, "LZ4");
  free(fb);
  z.usz = l.usz = n + 1;
  fb = build_fatbin(&z, 1, &len);
  expect_err(fb, len, GP_EINVAL, "decompresses to");
  free(fb);
  fb = build_fatbin(&l, 1, &len);
  expect_err(fb, len, GP_EINVAL, NULL);
  free(fb);
  free(zb);
  free(lb);
}
END_TEST

START_TEST(test_fatbin_corrupt_compressed) {
  void *zb, *lb;
  struct syn_entry z = packed_ptx(syn_ptx75, 75, false, &zb);
  struct syn_entry l = packed_ptx(syn_ptx75, 75, true, &lb);
  size_t len;
  uint8_t *fb;

  memset(zb, 0xff, z.n);
  fb = build_fatbin(&z, 1, &len);
  expect_err(fb, len, GP_EINVAL, "zstd");
  free(fb);
  memset(lb, 0xff, l.n);
  fb = build_fatbin(&l, 1, &len);
  expect_err(fb, len, GP_EINVAL, "LZ4");
  free(fb);
  free(zb);
  free(lb);
}
END_TEST

START_TEST(test_fatbin_not_ptx_payload) {
  static const char junk[] = "\x01\x02 this is not PTX";
  void *zb;
  struct syn_entry r = raw_ptx(junk, 75);
  struct syn_entry z = packed_ptx(junk, 75, false, &zb);
  size_t len;
  uint8_t *fb = build_fatbin(&r, 1, &len);

  expect_err(fb, len, GP_EINVAL, "does not hold PTX");
  free(fb);
  fb = build_fatbin(&z, 1, &len);
  expect_err(fb, len, GP_EINVAL, "does not hold PTX");
  free(fb);
  free(zb);
}
END_TEST

START_TEST(test_fatbin_message_buffer) {
  char small[8];
  char *ptx = (char *)1;
  uint8_t w[24] = {0};

  wr32(w, EMU_FATBIN_WRAPPER_MAGIC);
  /* No buffer: still the code. */
  ck_assert_int_eq(emu_image_get_ptx(w, sizeof(w), &ptx, NULL, NULL, 0),
                   GP_EINVAL);
  ck_assert_ptr_null(ptx);
  /* A small buffer: truncated and terminated. */
  memset(small, 'x', sizeof(small));
  ck_assert_int_eq(
      emu_image_get_ptx(w, sizeof(w), &ptx, NULL, small, sizeof(small)),
      GP_EINVAL);
  ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

START_TEST(test_fatbin_truncated_synthetic) {
  void *zb;
  struct syn_entry ents[] = {elf_entry(75),
                             packed_ptx(syn_ptx75, 75, false, &zb)};
  size_t len;
  uint8_t *fb = build_fatbin(ents, 2, &len);
  char msg[EMU_FATBIN_MSG_SIZE];

  for (size_t k = 0; k < len; k++) {
    char *ptx = NULL;
    ck_assert_int_lt(get_ptx(fb, k, &ptx, msg), 0);
    ck_assert_int_lt(count_entries(fb, k), 0);
  }
  free(fb);
  free(zb);
}
END_TEST

/* ---- images nvcc built --------------------------------------------------- */

/* The minified text of the -ptx file in |var|: the caller frees it. */
static char *load_minified_ptx(const char *var) {
  struct blob b = blob_from_env(var);
  char *m = minify((const char *)b.data);

  free(b.data);
  return m;
}

/* Lists the entries of |b| into |e| (at most |max|); returns the count. */
static int entries(struct blob b, struct emu_fatbin_entry *e, int max) {
  struct emu_fatbin_iter it;
  char msg[EMU_FATBIN_MSG_SIZE];
  int n = 0, rc;

  emu_fatbin_iter_init(&it, b.data, b.len);
  while (n < max && (rc = emu_fatbin_next(&it, &e[n], msg, sizeof(msg))) == 1)
    n++;
  ck_assert_msg(n < max && rc == 0, "listing failed: %s", msg);
  return n;
}

/* Checks the entries of a single-arch nvcc fatbin: one ELF (sm_75), one
 * PTX (compute_75), flags 0x11 and the compression of each. */
static void check_nvcc_entries(struct blob b, uint64_t elf_comp,
                               uint64_t ptx_comp, size_t ptx_len) {
  struct emu_fatbin_entry e[4];

  ck_assert_int_eq(entries(b, e, 4), 2);
  ck_assert_uint_eq(e[0].kind, EMU_FATBIN_KIND_ELF);
  ck_assert_uint_eq(e[0].header_size, 64);
  ck_assert_uint_eq(e[0].sm, 75);
  ck_assert_uint_eq(e[0].flags, 0x11 | elf_comp);
  ck_assert_uint_eq(e[1].kind, EMU_FATBIN_KIND_PTX);
  ck_assert_uint_eq(e[1].header_size, 80);
  ck_assert_uint_eq(e[1].sm, 75);
  ck_assert_uint_eq(e[1].flags, 0x11 | ptx_comp);
  ck_assert_uint_eq(e[1].payload_size % 8, 0);
  if (ptx_comp) {
    /* The declared size is the text and its NUL. */
    ck_assert_uint_eq(e[1].uncompressed_size, ptx_len + 1);
    ck_assert_uint_eq(e[1].payload_size, pad8(e[1].compressed_size));
  } else {
    /* The text, its NUL, padding to 8. */
    ck_assert_uint_eq(e[1].payload_size, pad8(ptx_len + 1));
  }
  ck_assert_uint_eq(e[1].payload_offset + e[1].payload_size, b.len);
}

static void check_nvcc_image(const char *var, uint64_t elf_comp,
                             uint64_t ptx_comp) {
  struct blob b = blob_from_env(var);
  char *want = load_minified_ptx("GP_TEST_PTX75");

  check_nvcc_entries(b, elf_comp, ptx_comp, strlen(want));
  expect_ptx(b.data, b.len, want);
  free(want);
  free(b.data);
}

START_TEST(test_fatbin_nvcc_zstd_matches_ptx) {
  check_nvcc_image("GP_TEST_ZSTD", 0, EMU_FATBIN_FLAG_ZSTD);
}
END_TEST

START_TEST(test_fatbin_nvcc_lz4_matches_ptx) {
  check_nvcc_image("GP_TEST_LZ4", 0, EMU_FATBIN_FLAG_LZ4);
}
END_TEST

START_TEST(test_fatbin_nvcc_none_matches_ptx) {
  check_nvcc_image("GP_TEST_NONE", 0, 0);
}
END_TEST

START_TEST(test_fatbin_nvcc_size_matches_ptx) {
  check_nvcc_image("GP_TEST_SIZE", EMU_FATBIN_FLAG_ZSTD, EMU_FATBIN_FLAG_ZSTD);
}
END_TEST

START_TEST(test_fatbin_nvcc_ptx_differs_only_by_minifying) {
  struct blob p = blob_from_env("GP_TEST_PTX75");
  struct blob z = blob_from_env("GP_TEST_ZSTD");
  char msg[EMU_FATBIN_MSG_SIZE];
  char *ptx = NULL, *m = minify((const char *)p.data);
  int lines_p = 0, lines_x = 0;

  ck_assert_int_eq(get_ptx(z.data, z.len, &ptx, msg), 0);
  /* Not byte for byte: the comments are gone... */
  ck_assert_str_ne(ptx, (const char *)p.data);
  ck_assert_ptr_nonnull(strstr((const char *)p.data, "// Generated by NVIDIA"));
  ck_assert_ptr_null(strstr(ptx, "//"));
  /* ...but the lines are the same lines. */
  for (const char *s = (const char *)p.data; *s; s++)
    lines_p += *s == '\n';
  for (const char *s = ptx; *s; s++)
    lines_x += *s == '\n';
  ck_assert_int_eq(lines_p, lines_x);
  ck_assert_str_eq(ptx, m);
  /* The -ptx file itself is a valid image and comes back unchanged. */
  expect_ptx(p.data, p.len, (const char *)p.data);
  free(m);
  free(ptx);
  free(p.data);
  free(z.data);
}
END_TEST

START_TEST(test_fatbin_nvcc_multi_picks_sm90) {
  struct blob b = blob_from_env("GP_TEST_MULTI");
  char *want90 = load_minified_ptx("GP_TEST_PTX90");
  char *want75 = load_minified_ptx("GP_TEST_PTX75");
  struct emu_fatbin_entry e[4];
  char msg[EMU_FATBIN_MSG_SIZE];
  char *ptx = NULL;

  ck_assert_int_eq(entries(b, e, 4), 2);
  ck_assert_uint_eq(e[0].kind, EMU_FATBIN_KIND_PTX);
  ck_assert_uint_eq(e[0].sm, 75);
  ck_assert_uint_eq(e[1].kind, EMU_FATBIN_KIND_PTX);
  ck_assert_uint_eq(e[1].sm, 90);
  ck_assert_int_eq(get_ptx(b.data, b.len, &ptx, msg), 0);
  ck_assert_ptr_nonnull(strstr(ptx, "\n.target sm_90\n"));
  ck_assert_str_eq(ptx, want90);
  ck_assert_str_ne(want75, want90);
  free(ptx);
  /* With the sm_90 entry's kind changed, the sm_75 PTX is chosen. */
  wr16(b.data + e[1].header_offset, 0x40);
  expect_ptx(b.data, b.len, want75);
  free(want75);
  free(want90);
  free(b.data);
}
END_TEST

START_TEST(test_fatbin_nvcc_sm_only_needs_ptx) {
  struct blob b = blob_from_env("GP_TEST_SMONLY");
  struct emu_fatbin_entry e[4];

  ck_assert_int_eq(entries(b, e, 4), 1);
  ck_assert_uint_eq(e[0].kind, EMU_FATBIN_KIND_ELF);
  ck_assert_uint_eq(e[0].sm, 75);
  expect_err(b.data, b.len, EMU_FATBIN_ENOPTX,
             "machine code only (sm_75, built with code=sm_XX), no PTX: the "
             "emulated device needs PTX; rebuild with nvcc's default or "
             "-gencode arch=compute_75,code=compute_75");
  free(b.data);
}
END_TEST

START_TEST(test_fatbin_nvcc_concatenated) {
  struct blob a = blob_from_env("GP_TEST_MULTI"), z = blob_from_env("GP_TEST_ZSTD"),
              s = blob_from_env("GP_TEST_SMONLY");
  char *want90 = load_minified_ptx("GP_TEST_PTX90");
  char *want75 = load_minified_ptx("GP_TEST_PTX75");
  size_t len = a.len + z.len + s.len;
  uint8_t *cat = malloc(len);

  ck_assert_ptr_nonnull(cat);
  /* sm_75 image, sm_90 image, machine code: the sm_90 PTX wins. */
  memcpy(cat, z.data, z.len);
  memcpy(cat + z.len, a.data, a.len);
  memcpy(cat + z.len + a.len, s.data, s.len);
  ck_assert_int_eq(count_entries(cat, len), 5);
  expect_ptx(cat, len, want90);
  /* Machine code first, then the sm_75 image: its PTX. */
  memcpy(cat, s.data, s.len);
  memcpy(cat + s.len, z.data, z.len);
  ck_assert_int_eq(count_entries(cat, s.len + z.len), 3);
  expect_ptx(cat, s.len + z.len, want75);
  free(cat);
  free(want75);
  free(want90);
  free(a.data);
  free(z.data);
  free(s.data);
}
END_TEST

START_TEST(test_fatbin_nvcc_truncated_every_byte) {
  const char *vars[] = {"GP_TEST_ZSTD", "GP_TEST_LZ4", "GP_TEST_NONE",
                        "GP_TEST_SIZE", "GP_TEST_MULTI", "GP_TEST_SMONLY"};
  char msg[EMU_FATBIN_MSG_SIZE];

  for (size_t v = 0; v < sizeof(vars) / sizeof(vars[0]); v++) {
    struct blob b = blob_from_env(vars[v]);
    for (size_t k = 0; k < b.len; k++) {
      char *ptx = NULL;
      int rc = get_ptx(b.data, k, &ptx, msg);
      ck_assert_msg(rc == GP_EINVAL, "%s cut at %zu: %d (%s)", vars[v], k,
                    rc, msg);
      ck_assert_int_eq(count_entries(b.data, k), GP_EINVAL);
    }
    free(b.data);
  }
}
END_TEST

START_TEST(test_fatbin_nvcc_entry_past_end) {
  struct blob b = blob_from_env("GP_TEST_ZSTD");
  struct emu_fatbin_entry e[4];

  ck_assert_int_eq(entries(b, e, 4), 2);
  wr64(b.data + e[1].header_offset + 8, e[1].payload_size + 8);
  expect_err(b.data, b.len, GP_EINVAL, "payload");
  wr64(b.data + e[1].header_offset + 8, e[1].payload_size);
  wr64(b.data + e[0].header_offset + 8, b.len);
  expect_err(b.data, b.len, GP_EINVAL, "payload");
  free(b.data);
}
END_TEST

START_TEST(test_fatbin_nvcc_huge_uncompressed_size) {
  const char *vars[] = {"GP_TEST_ZSTD", "GP_TEST_LZ4"};

  for (int v = 0; v < 2; v++) {
    struct blob b = blob_from_env(vars[v]);
    struct emu_fatbin_entry e[4];
    ck_assert_int_eq(entries(b, e, 4), 2);
    wr64(b.data + e[1].header_offset + 56, 1ull << 62);
    expect_err(b.data, b.len, GP_ETOOBIG, "over the limit");
    wr64(b.data + e[1].header_offset + 56, (uint64_t)EMU_FATBIN_PTX_MAX + 1);
    expect_err(b.data, b.len, GP_ETOOBIG, "over the limit");
    free(b.data);
  }
}
END_TEST

START_TEST(test_fatbin_nvcc_corrupt_compressed) {
  const char *vars[] = {"GP_TEST_ZSTD", "GP_TEST_LZ4", "GP_TEST_SIZE"};
  char msg[EMU_FATBIN_MSG_SIZE];

  for (int v = 0; v < 3; v++) {
    struct blob b = blob_from_env(vars[v]);
    struct emu_fatbin_entry e[4];
    uint8_t *p;

    ck_assert_int_eq(entries(b, e, 4), 2);
    p = b.data + e[1].payload_offset;
    /* Every single corrupted byte of the compressed PTX: a clean answer,
     * either an error or some text (zstd frames from nvcc carry no
     * checksum, so some corruptions decode). */
    for (uint64_t i = 0; i < e[1].compressed_size; i++) {
      char *ptx = NULL;
      p[i] ^= 0x5a;
      if (get_ptx(b.data, b.len, &ptx, msg) == 0)
        free(ptx);
      p[i] ^= 0x5a;
    }
    /* Wholesale garbage is an error. */
    memset(p, 0xff, (size_t)e[1].compressed_size);
    expect_err(b.data, b.len, GP_EINVAL, NULL);
    free(b.data);
  }
}
END_TEST

START_TEST(test_fatbin_nvcc_wrapper) {
  struct blob b = blob_from_env("GP_TEST_ZSTD");
  uint8_t *w = malloc(24 + b.len);

  /* A version-2 wrapper followed by the fatbin: still refused. */
  ck_assert_ptr_nonnull(w);
  memset(w, 0, 24);
  wr32(w, EMU_FATBIN_WRAPPER_MAGIC);
  wr32(w + 4, 2);
  memcpy(w + 24, b.data, b.len);
  expect_err(w, 24 + b.len, GP_EINVAL, "must send the fatbin bytes");
  free(w);
  free(b.data);
}
END_TEST

static Suite *fatbin_suite(bool with_nvcc, int *skipped) {
  Suite *s = suite_create("fatbin");
  TCase *syn = tcase_create("synthetic");
  TCase *nv = tcase_create("nvcc");

  tcase_add_test(syn, test_fatbin_classify_kinds);
  tcase_add_test(syn, test_fatbin_classify_rejects_garbage);
  tcase_add_test(syn, test_fatbin_classify_wrapper_error);
  tcase_add_test(syn, test_fatbin_ptx_text_image);
  tcase_add_test(syn, test_fatbin_elf_image_needs_ptx);
  tcase_add_test(syn, test_fatbin_synthetic_raw_zstd_lz4);
  tcase_add_test(syn, test_fatbin_iter_reports_fields);
  tcase_add_test(syn, test_fatbin_picks_highest_sm_latest_tie);
  tcase_add_test(syn, test_fatbin_back_to_back);
  tcase_add_test(syn, test_fatbin_no_ptx_synthetic);
  tcase_add_test(syn, test_fatbin_entry_past_end);
  tcase_add_test(syn, test_fatbin_bad_headers);
  tcase_add_test(syn, test_fatbin_huge_uncompressed_size);
  tcase_add_test(syn, test_fatbin_size_mismatch);
  tcase_add_test(syn, test_fatbin_corrupt_compressed);
  tcase_add_test(syn, test_fatbin_not_ptx_payload);
  tcase_add_test(syn, test_fatbin_message_buffer);
  tcase_add_test(syn, test_fatbin_truncated_synthetic);
  suite_add_tcase(s, syn);

  tcase_add_test(nv, test_fatbin_nvcc_zstd_matches_ptx);
  tcase_add_test(nv, test_fatbin_nvcc_lz4_matches_ptx);
  tcase_add_test(nv, test_fatbin_nvcc_none_matches_ptx);
  tcase_add_test(nv, test_fatbin_nvcc_size_matches_ptx);
  tcase_add_test(nv, test_fatbin_nvcc_ptx_differs_only_by_minifying);
  tcase_add_test(nv, test_fatbin_nvcc_multi_picks_sm90);
  tcase_add_test(nv, test_fatbin_nvcc_sm_only_needs_ptx);
  tcase_add_test(nv, test_fatbin_nvcc_concatenated);
  tcase_add_test(nv, test_fatbin_nvcc_truncated_every_byte);
  tcase_add_test(nv, test_fatbin_nvcc_entry_past_end);
  tcase_add_test(nv, test_fatbin_nvcc_huge_uncompressed_size);
  tcase_add_test(nv, test_fatbin_nvcc_corrupt_compressed);
  tcase_add_test(nv, test_fatbin_nvcc_wrapper);
  tcase_set_timeout(nv, 60);
  if (with_nvcc)
    suite_add_tcase(s, nv);
  else
    *skipped = 13;
  return s;
}

int main(void) {
  const char *nvcc = getenv("GP_TEST_NVCC");
  int skipped = 0, failed;
  SRunner *sr;

  if (nvcc == NULL) {
    fprintf(stderr, "test_fatbin: GP_TEST_NVCC is not set; run it with "
                    "`meson test unit_fatbin`, which sets it and the paths "
                    "of the nvcc-built images\n");
    return EXIT_FAILURE;
  }
  sr = srunner_create(fatbin_suite(strcmp(nvcc, "1") == 0, &skipped));
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0)
    return EXIT_FAILURE;
  if (skipped != 0) {
    printf("SKIP: nvcc was not found at build time (looked in PATH and "
           "/usr/local/cuda/bin), so the %d cases on nvcc-built fatbins did "
           "not run; the synthetic cases passed\n",
           skipped);
    return 77;
  }
  return EXIT_SUCCESS;
}
