/* The frame codec. It does no I/O: transports move bytes, this file turns
 * bytes into frames and frames into bytes, and enforces every length limit
 * before anything is allocated.
 *
 * A frame is a 24-byte header, then |msg_len| bytes of one protobuf message,
 * then |payload_len| bytes of raw payload (bulk data). All integers are
 * little-endian:
 *
 *   offset size field
 *        0    4 magic        GP_FRAME_MAGIC, the bytes "GPPL"
 *        4    2 version      GP_FRAME_VERSION (the header format)
 *        6    2 type         enum gp_msg_type
 *        8    2 flags        GP_FRAME_F_*; unknown bits are an error
 *       10    2 reserved     must be 0
 *       12    4 request_id   echoed in the reply
 *       16    4 msg_len
 *       20    4 payload_len
 */
#ifndef GP_PROTOCOL_FRAME_H
#define GP_PROTOCOL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define GP_FRAME_MAGIC 0x4C505047u /* "GPPL" read as a little-endian u32 */
#define GP_FRAME_VERSION 1
#define GP_FRAME_HEADER_SIZE 24

/* A request the sender will not read a reply to: the receiver must not send
 * one, and reports any error it causes as the `deferred` field of its next
 * reply. */
#define GP_FRAME_F_NOREPLY 0x0001u
/* This frame is a reply to the request with the same request_id. */
#define GP_FRAME_F_REPLY 0x0002u
/* The payload is one zstd frame (or several) whose content is the copy's
 * raw bytes (protocol/zchunk.h); only on MEMCPY_HTOD requests to a server
 * that offers GP_FEATURE_ZSTD and on MEMCPY_DTOH replies to requests that
 * allowed it. Receivers refuse it anywhere else. */
#define GP_FRAME_F_ZSTD 0x0004u
#define GP_FRAME_F_KNOWN \
  (GP_FRAME_F_NOREPLY | GP_FRAME_F_REPLY | GP_FRAME_F_ZSTD)

/* Default limits: a protobuf message is small; bulk data comes in payloads
 * of at most 64 MiB a frame (larger copies are split by the sender). */
#define GP_FRAME_DEFAULT_MAX_MSG (1u << 20)
#define GP_FRAME_DEFAULT_MAX_PAYLOAD (64u << 20)

/* Senders split copies into payloads of at most this many bytes. */
#define GP_COPY_CHUNK (16u << 20)

struct gp_frame_header {
  uint16_t version;
  uint16_t type;
  uint16_t flags;
  uint32_t request_id;
  uint32_t msg_len;
  uint32_t payload_len;
};

struct gp_frame_limits {
  uint32_t max_msg;
  uint32_t max_payload;
};

/* The default limits above. */
extern const struct gp_frame_limits gp_frame_default_limits;

/* Writes |h| (with GP_FRAME_MAGIC and h->version) into |out|. */
void gp_frame_header_encode(const struct gp_frame_header *h,
                            uint8_t out[GP_FRAME_HEADER_SIZE]);

/* Reads a header from |in| and checks it: GP_EPROTO for a bad magic, a
 * non-zero reserved field, unknown flags or NOREPLY together with REPLY;
 * GP_EVERSION for a header version other than GP_FRAME_VERSION; GP_ETOOBIG
 * when msg_len or payload_len exceeds |lim|. Returns 0 and fills |out|
 * otherwise. */
int gp_frame_header_decode(const uint8_t in[GP_FRAME_HEADER_SIZE],
                           const struct gp_frame_limits *lim,
                           struct gp_frame_header *out);

/* One whole frame, as gp_frame_feed() yields it. |msg| and |payload| point
 * into the parser's buffer and stay valid until the next feed or free. */
struct gp_frame {
  struct gp_frame_header hdr;
  const uint8_t *msg;
  const uint8_t *payload;
};

/* An incremental parser for a byte stream of frames (used by event-loop
 * readers and the fuzzer). Not thread-safe: one parser per stream. */
struct gp_frame_parser {
  struct gp_frame_limits lim;
  uint8_t hbuf[GP_FRAME_HEADER_SIZE];
  size_t hlen;          /* header bytes collected */
  struct gp_frame_header hdr;
  uint8_t *body;        /* msg_len + payload_len bytes */
  size_t body_cap;
  size_t body_len;      /* body bytes collected */
  int error;            /* sticky: the first fatal error */
  /* The allocator for |body|; realloc() unless a test replaces it to fail
   * the i-th allocation. */
  void *(*realloc_fn)(void *ptr, size_t size);
};

/* Initialises |p| with |lim| (NULL: the defaults). Never fails. */
void gp_frame_parser_init(struct gp_frame_parser *p,
                          const struct gp_frame_limits *lim);

/* Releases what |p| holds. */
void gp_frame_parser_free(struct gp_frame_parser *p);

/* Feeds up to |len| bytes of |data|; sets |*used| to how many were consumed.
 * Returns 1 when a whole frame is ready in |*out| (feed the rest of |data|
 * afterwards), 0 when all of |data| was consumed and more is needed, or a
 * fatal GP_E* code (sticky: every later call returns it too). */
int gp_frame_feed(struct gp_frame_parser *p, const uint8_t *data, size_t len,
                  size_t *used, struct gp_frame *out);

#endif
