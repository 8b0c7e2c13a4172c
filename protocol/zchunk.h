/* Compressed copy payloads: zstd at a fast level, one zstd frame per copy
 * chunk, decided per transfer by compressing a sample.
 *
 * A frame whose payload is compressed carries GP_FRAME_F_ZSTD; its message
 * still gives the copy's raw size, and the receiver decompresses straight
 * into the destination, refusing content that is not exactly that size
 * (docs/protocol.md, "Compressed payloads"). Only MEMCPY_HTOD requests and
 * MEMCPY_DTOH replies are ever compressed, and only between peers that
 * said they can (GP_FEATURE_ZSTD in HelloReply, MemcpyDtoH.compress).
 */
#ifndef GP_PROTOCOL_ZCHUNK_H
#define GP_PROTOCOL_ZCHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a peer does about compression: never, when a sample says it pays,
 * or always (every copy chunk compressed, whatever the data). The values
 * are MemcpyDtoH.compress's. */
enum gp_z_mode { GP_Z_OFF = 0, GP_Z_AUTO = 1, GP_Z_ON = 2 };

/* The zstd level: negative levels trade ratio for speed, and the data worth
 * compressing here (zero-filled or repetitive buffers) compresses well at
 * any level. */
#define GP_Z_LEVEL (-3)

/* Without a link speed (GPUPOOL_LINK_MBPS), compression is weighed against
 * this many megabits per second: about what loopback TCP moves on a small
 * VM, and a fast LAN. */
#define GP_Z_DEFAULT_LINK_MBPS 16000u

struct gp_z {
  void *cctx;   /* ZSTD_CCtx, made on first use */
  void *dctx;   /* ZSTD_DCtx, made on first use */
  bool warm;    /* cctx has compressed a sample once */
  uint8_t *scratch; /* the sample and its compressed form, made on use */
  enum gp_z_mode mode;
  unsigned link_mbps;
  /* Counters, for benchmarks and tests. */
  uint64_t chunks_compressed, chunks_raw;
  uint64_t bytes_in, bytes_out;   /* raw and compressed bytes sent */
  uint64_t chunks_decompressed;
};

/* "off", "auto" or "on" into |*out|; -1 for anything else. */
int gp_z_parse_mode(const char *s, enum gp_z_mode *out);
const char *gp_z_mode_name(enum gp_z_mode m);

/* The most bytes compressing |n| can produce. */
size_t gp_z_bound(size_t n);

/* Whether a transfer of |n| bytes from |data| should be compressed in
 * |mode| (GP_Z_AUTO: compresses four samples, 16 KiB to 64 KiB in all,
 * and compares the time saved on a link of z->link_mbps with the time
 * spent). */
bool gp_z_worth(struct gp_z *z, enum gp_z_mode mode, const void *data,
                size_t n);

/* Compresses |n| bytes of |src| into |dst| (|cap| >= gp_z_bound(n)).
 * Returns the compressed size, or 0 when it failed (send raw). */
size_t gp_z_compress(struct gp_z *z, void *dst, size_t cap, const void *src,
                     size_t n);

/* Decompresses the |len| bytes of |src|, one zstd frame whose header
 * declares |n| bytes of content, into |dst|, which holds exactly |n| bytes:
 * never writes past |dst + n|. A frame whose header does not match is
 * refused before anything is written; one whose blocks are damaged may
 * have written part of |dst| when it is refused. Returns 0, GP_EPROTO
 * when the content is malformed or not exactly |n| bytes, GP_ENOMEM. */
int gp_z_decompress(struct gp_z *z, void *dst, size_t n, const void *src,
                    size_t len);

void gp_z_free(struct gp_z *z);

#endif
