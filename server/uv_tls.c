/* TLS under a libuv stream: see uv_tls.h. */
#include "uv_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpupool/errors.h"

struct uvtls_write {
  uv_write_t req;
  struct gp_uvtls *t;
  size_t len;
  uint8_t data[];
};

/* One loop thread: decrypted records land here before they are handed on
 * (a TLS record holds at most 16 KiB). */
static uint8_t plain_buf[16384];

void gp__uvtls_init(struct gp_uvtls *t, uv_stream_t *stream,
                    struct gp_tls_mem *tls, gp_uvtls_queue_cb on_queue,
                    void *data) {
  memset(t, 0, sizeof(*t));
  t->stream = stream;
  t->tls = tls;
  t->on_queue = on_queue;
  t->data = data;
}

void gp__uvtls_free(struct gp_uvtls *t) {
  gp_tls_mem_free(t->tls);
  t->tls = NULL;
}

static void on_written(uv_write_t *req, int status) {
  struct uvtls_write *w = (struct uvtls_write *)req;
  struct gp_uvtls *t = w->t;
  size_t len = w->len;

  free(w);
  t->queued -= len;
  if (t->on_queue)
    t->on_queue(t, -(long)len, status);
}

/* Writes |len| bytes (already ciphertext, or plain) to the stream. */
static int put(struct gp_uvtls *t, const void *data, size_t len, char *why,
               size_t why_len) {
  struct uvtls_write *w;
  uv_buf_t b;
  int r;

  if (len == 0)
    return 0;
  w = malloc(sizeof(*w) + len);
  if (!w) {
    snprintf(why, why_len, "out of memory");
    return GP_ENOMEM;
  }
  w->t = t;
  w->len = len;
  if (data)
    memcpy(w->data, data, len);
  else
    gp_tls_mem_out(t->tls, w->data, len);
  b = uv_buf_init((char *)w->data, (unsigned)len);
  r = uv_write(&w->req, t->stream, &b, 1, on_written);
  if (r != 0) {
    free(w);
    snprintf(why, why_len, "write: %s", uv_strerror(r));
    return GP_EIO;
  }
  t->queued += len;
  if (t->on_queue)
    t->on_queue(t, (long)len, 0);
  return 0;
}

/* Sends what the engine has for the peer. */
static int flush(struct gp_uvtls *t, char *why, size_t why_len) {
  size_t n;

  if (!t->tls)
    return 0;
  n = gp_tls_mem_out_pending(t->tls);
  return n ? put(t, NULL, n, why, why_len) : 0;
}

int gp__uvtls_write(struct gp_uvtls *t, const void *data, size_t len,
                    char *why, size_t why_len) {
  int r;

  if (!t->tls)
    return put(t, data, len, why, why_len);
  r = gp_tls_mem_write(t->tls, data, len, why, why_len);
  if (r != 0)
    return r;
  return flush(t, why, why_len);
}

int gp__uvtls_feed(struct gp_uvtls *t, const void *data, size_t len,
                   gp_uvtls_data_cb cb, void *arg, char *why,
                   size_t why_len) {
  char fwhy[64];
  int r;

  if (!t->tls) {
    cb(arg, data, len);
    return 0;
  }
  r = gp_tls_mem_in(t->tls, data, len, why, why_len);
  /* Handshake messages, or the alert that says why it failed. */
  flush(t, fwhy, sizeof(fwhy));
  if (r != 0)
    return r;
  for (;;) {
    long n = gp_tls_mem_read(t->tls, plain_buf, sizeof(plain_buf), why,
                             why_len);
    flush(t, fwhy, sizeof(fwhy));
    if (n == 0)
      return 0;
    if (n < 0)
      return (int)n;
    if (!cb(arg, plain_buf, (size_t)n))
      return 0;
    /* The callback may have ended the engine's use (it is freed only by
     * the caller, after this returns). */
  }
}

void gp__uvtls_shutdown(struct gp_uvtls *t) {
  char why[64];

  if (!t->tls)
    return;
  gp_tls_mem_shutdown(t->tls);
  flush(t, why, sizeof(why));
}

bool gp__uvtls_ready(const struct gp_uvtls *t) {
  return !t->tls || gp_tls_mem_ready(t->tls);
}
