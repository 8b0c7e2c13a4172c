/* Compressed copy payloads (see zchunk.h). */
#include "zchunk.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "gpupool/errors.h"

/* The sample: this many pieces spread over the buffer, each a 256th of it
 * but at least 4 KiB and at most 16 KiB, so that sampling costs at most a
 * few percent of sending even data that does not compress. */
#define SAMPLE_PIECES 4
#define SAMPLE_PIECE_MIN (4u << 10)
#define SAMPLE_PIECE (16u << 10)
#define SAMPLE_BYTES (SAMPLE_PIECES * SAMPLE_PIECE)
#define SAMPLE_OUT (SAMPLE_BYTES + 1024)

int gp_z_parse_mode(const char *s, enum gp_z_mode *out) {
  if (s == NULL)
    return -1;
  if (strcmp(s, "off") == 0)
    *out = GP_Z_OFF;
  else if (strcmp(s, "auto") == 0)
    *out = GP_Z_AUTO;
  else if (strcmp(s, "on") == 0)
    *out = GP_Z_ON;
  else
    return -1;
  return 0;
}

const char *gp_z_mode_name(enum gp_z_mode m) {
  return m == GP_Z_OFF ? "off" : m == GP_Z_ON ? "on" : "auto";
}

size_t gp_z_bound(size_t n) { return ZSTD_compressBound(n); }

static bool make_cctx(struct gp_z *z) {
  if (z->cctx == NULL)
    z->cctx = ZSTD_createCCtx();
  return z->cctx != NULL;
}

/* This thread's CPU time: what compressing costs, whatever else the
 * machine runs meanwhile (wall time would count a preemption in the
 * middle of the sample as the data's cost). */
static double cpu_secs(void) {
  struct timespec t;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0)
    clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

bool gp_z_worth(struct gp_z *z, enum gp_z_mode mode, const void *data,
                size_t n) {
  if (mode == GP_Z_OFF || n == 0)
    return false;
  if (mode == GP_Z_ON)
    return true;
  if (n < 4096 || !make_cctx(z))
    return false; /* one packet either way */
  /* On the heap: a CUDA call may come from a thread with a small stack. */
  if (z->scratch == NULL &&
      (z->scratch = malloc(SAMPLE_BYTES + SAMPLE_OUT)) == NULL)
    return false;
  uint8_t *sample = z->scratch, *out = z->scratch + SAMPLE_BYTES;
  size_t len = 0;
  size_t piece = n / 256;
  piece = piece < SAMPLE_PIECE_MIN ? SAMPLE_PIECE_MIN
          : piece > SAMPLE_PIECE   ? SAMPLE_PIECE : piece;
  if (n <= SAMPLE_PIECES * piece) {
    memcpy(sample, data, n);
    len = n;
  } else {
    size_t step = (n - piece) / (SAMPLE_PIECES - 1);
    for (int i = 0; i < SAMPLE_PIECES; i++) {
      memcpy(sample + len, (const uint8_t *)data + (size_t)i * step, piece);
      len += piece;
    }
  }
  if (!z->warm) {
    /* The context's first use allocates its tables: not the data's cost. */
    ZSTD_compressCCtx(z->cctx, out, SAMPLE_OUT, sample, len, GP_Z_LEVEL);
    z->warm = true;
  }
  double t0 = cpu_secs();
  size_t c = ZSTD_compressCCtx(z->cctx, out, SAMPLE_OUT, sample, len,
                               GP_Z_LEVEL);
  double spent = cpu_secs() - t0;
  if (ZSTD_isError(c))
    return false;
  /* Per byte: sending raw costs 1/link; compressed, the compression plus
   * the ratio's share of the link (the receiver's decompression is mostly
   * hidden behind the next chunk's transfer). Worth it when that saves at
   * least a tenth. */
  double link = (double)(z->link_mbps ? z->link_mbps
                                      : GP_Z_DEFAULT_LINK_MBPS) * 1e6 / 8;
  double ratio = (double)c / (double)len;
  double per_byte = spent / (double)len;
  return per_byte + ratio / link < 0.9 / link;
}

size_t gp_z_compress(struct gp_z *z, void *dst, size_t cap, const void *src,
                     size_t n) {
  if (!make_cctx(z))
    return 0;
  size_t c = ZSTD_compressCCtx(z->cctx, dst, cap, src, n, GP_Z_LEVEL);
  if (ZSTD_isError(c))
    return 0;
  return c;
}

int gp_z_decompress(struct gp_z *z, void *dst, size_t n, const void *src,
                    size_t len) {
  if (z->dctx == NULL && (z->dctx = ZSTD_createDCtx()) == NULL)
    return GP_ENOMEM;
  /* One frame, exactly |len| bytes, whose header declares |n| bytes of
   * content: anything else is refused before a byte is written. */
  if (ZSTD_findFrameCompressedSize(src, len) != len ||
      ZSTD_getFrameContentSize(src, len) != (unsigned long long)n)
    return GP_EPROTO;
  /* Bounded by |n| all the same: blocks that would run past it, whatever
   * the header said, are an error (dstSize_tooSmall), never a write beyond
   * the destination. */
  size_t d = ZSTD_decompressDCtx(z->dctx, dst, n, src, len);
  if (ZSTD_isError(d) || d != n)
    return GP_EPROTO;
  z->chunks_decompressed++;
  return 0;
}

void gp_z_free(struct gp_z *z) {
  ZSTD_freeCCtx(z->cctx);
  ZSTD_freeDCtx(z->dctx);
  free(z->scratch);
  z->scratch = NULL;
  z->cctx = z->dctx = NULL;
  z->warm = false;
}
