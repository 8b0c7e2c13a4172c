/* The frame codec: header encoding and an incremental parser. No I/O. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "gpupool/errors.h"

const struct gp_frame_limits gp_frame_default_limits = {
  .max_msg = GP_FRAME_DEFAULT_MAX_MSG,
  .max_payload = GP_FRAME_DEFAULT_MAX_PAYLOAD,
};

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)v);
  put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)get16(p) | ((uint32_t)get16(p + 2) << 16);
}

void gp_frame_header_encode(const struct gp_frame_header *h,
                            uint8_t out[GP_FRAME_HEADER_SIZE]) {
  put32(out, GP_FRAME_MAGIC);
  put16(out + 4, h->version);
  put16(out + 6, h->type);
  put16(out + 8, h->flags);
  put16(out + 10, 0);
  put32(out + 12, h->request_id);
  put32(out + 16, h->msg_len);
  put32(out + 20, h->payload_len);
}

int gp_frame_header_decode(const uint8_t in[GP_FRAME_HEADER_SIZE],
                           const struct gp_frame_limits *lim,
                           struct gp_frame_header *out) {
  if (lim == NULL)
    lim = &gp_frame_default_limits;
  if (get32(in) != GP_FRAME_MAGIC || get16(in + 10) != 0)
    return GP_EPROTO;
  uint16_t version = get16(in + 4);
  if (version != GP_FRAME_VERSION)
    return GP_EVERSION;
  uint16_t flags = get16(in + 8);
  if ((flags & ~GP_FRAME_F_KNOWN) != 0)
    return GP_EPROTO;
  if ((flags & GP_FRAME_F_NOREPLY) && (flags & GP_FRAME_F_REPLY))
    return GP_EPROTO;
  uint32_t msg_len = get32(in + 16);
  uint32_t payload_len = get32(in + 20);
  if (msg_len > lim->max_msg || payload_len > lim->max_payload)
    return GP_ETOOBIG;
  out->version = version;
  out->type = get16(in + 6);
  out->flags = flags;
  out->request_id = get32(in + 12);
  out->msg_len = msg_len;
  out->payload_len = payload_len;
  return 0;
}

void gp_frame_parser_init(struct gp_frame_parser *p,
                          const struct gp_frame_limits *lim) {
  memset(p, 0, sizeof(*p));
  p->lim = lim ? *lim : gp_frame_default_limits;
  p->realloc_fn = realloc;
}

void gp_frame_parser_free(struct gp_frame_parser *p) {
  free(p->body);
  p->body = NULL;
  p->body_cap = 0;
}

int gp_frame_feed(struct gp_frame_parser *p, const uint8_t *data, size_t len,
                  size_t *used, struct gp_frame *out) {
  size_t off = 0;
  int rc = 0;

  *used = 0;
  if (p->error)
    return p->error;

  /* A frame was returned by the previous call: start the next one. */
  if (p->hlen == GP_FRAME_HEADER_SIZE &&
      p->body_len == (size_t)p->hdr.msg_len + p->hdr.payload_len) {
    p->hlen = 0;
    p->body_len = 0;
  }

  if (p->hlen < GP_FRAME_HEADER_SIZE) {
    size_t n = GP_FRAME_HEADER_SIZE - p->hlen;
    if (n > len)
      n = len;
    memcpy(p->hbuf + p->hlen, data, n);
    p->hlen += n;
    off += n;
    if (p->hlen < GP_FRAME_HEADER_SIZE)
      goto out;
    rc = gp_frame_header_decode(p->hbuf, &p->lim, &p->hdr);
    if (rc < 0)
      goto out;
    /* Both lengths are within the limits, so their sum fits a size_t and is
     * bounded before anything is allocated for it. */
    size_t need = (size_t)p->hdr.msg_len + p->hdr.payload_len;
    if (need > p->body_cap) {
      uint8_t *nb = p->realloc_fn(p->body, need);
      if (nb == NULL) {
        rc = GP_ENOMEM;
        goto out;
      }
      p->body = nb;
      p->body_cap = need;
    }
  }

  size_t need = (size_t)p->hdr.msg_len + p->hdr.payload_len;
  size_t n = need - p->body_len;
  if (n > len - off)
    n = len - off;
  if (n > 0) {
    memcpy(p->body + p->body_len, data + off, n);
    p->body_len += n;
    off += n;
  }
  if (p->body_len == need) {
    out->hdr = p->hdr;
    out->msg = p->body;
    out->payload = p->body ? p->body + p->hdr.msg_len : NULL;
    rc = 1;
  }

out:
  *used = off;
  if (rc < 0) {
    /* Sticky, GP_ENOMEM included: the header is consumed, so the stream
     * cannot be resynchronised. */
    p->error = rc;
  }
  return rc;
}
