/* TLS (or plain TCP) under a libuv stream, for the broker's connections
 * and a pool server's link to the broker (docs/security.md): the frame
 * code above writes and reads plaintext; what goes to the socket is the
 * gp_tls_mem engine's ciphertext, or the same bytes on a plain link.
 *
 * |queued| counts the bytes handed to uv_write() and not yet written:
 * ciphertext on a TLS link (records, handshake messages, alerts), so that
 * callers bound what a peer that does not read can make them hold.
 *
 * Single-threaded: everything runs on the loop's thread.
 */
#ifndef GP_SERVER_UV_TLS_H
#define GP_SERVER_UV_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "tls.h"

struct gp_uvtls;

/* Bytes queued (|delta| > 0) or written (|delta| < 0, |status| the write's
 * libuv status) on |t|. May be NULL. */
typedef void (*gp_uvtls_queue_cb)(struct gp_uvtls *t, long delta,
                                  int status);

/* Plaintext read from the peer. Returns false to stop delivering (the
 * connection is being ended). */
typedef bool (*gp_uvtls_data_cb)(void *arg, const uint8_t *data, size_t len);

struct gp_uvtls {
  uv_stream_t *stream;
  struct gp_tls_mem *tls; /* NULL: plain TCP */
  size_t queued;          /* bytes given to uv_write(), not yet written */
  gp_uvtls_queue_cb on_queue;
  void *data;
};

/* Sets |t| up on |stream| with |tls| (owned from now on; NULL: plain). */
void gp__uvtls_init(struct gp_uvtls *t, uv_stream_t *stream,
                    struct gp_tls_mem *tls, gp_uvtls_queue_cb on_queue,
                    void *data);

/* Frees the engine (the stream is the caller's). Pending writes keep their
 * own buffers. */
void gp__uvtls_free(struct gp_uvtls *t);

/* Sends |len| bytes of plaintext. Returns 0, or GP_ENOMEM / GP_ETLS /
 * GP_EIO with |why|. */
int gp__uvtls_write(struct gp_uvtls *t, const void *data, size_t len,
                    char *why, size_t why_len);

/* Hands |len| bytes read from the socket to the engine, sends what it has
 * to send (handshake messages, an alert) and passes the plaintext to
 * |cb|. Returns 0, GP_ECLOSED (the peer's close_notify), or GP_ETLS /
 * GP_ENOMEM with |why| (the alert, if any, is already queued). */
int gp__uvtls_feed(struct gp_uvtls *t, const void *data, size_t len,
                   gp_uvtls_data_cb cb, void *arg, char *why, size_t why_len);

/* Queues a close_notify (TLS) before the caller's uv_shutdown(). */
void gp__uvtls_shutdown(struct gp_uvtls *t);

/* True when the link is plain, or its handshake has finished. */
bool gp__uvtls_ready(const struct gp_uvtls *t);

#endif
