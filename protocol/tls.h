/* TLS 1.3 for every gpupool link (OpenSSL 3).
 *
 * Contexts: a server side (gpupool-server's sessions, the broker) and a
 * client side (the client library, the CLI, a server's link to its broker).
 * Every context speaks TLS 1.3 only and ALPN "gpupool/1": a server refuses
 * a client that offers no ALPN or another one (alert
 * no_application_protocol), and a client refuses a server that selects
 * none.
 *
 * Two ways to run a connection:
 *  - blocking, as a gp_wire transport (gp_wire_init_tls_client/_server):
 *    the client library and the server's per-session worker;
 *  - in memory (struct gp_tls_mem): an event loop feeds the ciphertext it
 *    read and sends the ciphertext the engine produced; the broker and the
 *    server's broker link (libuv).
 *
 * Errors come back as GP_ETLS (or another GP_E* code) with a one-line
 * reason in |why|: OpenSSL's own reason plus what it means for us, e.g.
 * "certificate verify failed: unable to get local issuer certificate (is
 * GPUPOOL_TLS_CA the pool's CA?)".
 */
#ifndef GP_PROTOCOL_TLS_H
#define GP_PROTOCOL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "wire.h"

#define GP_TLS_ALPN "gpupool/1"

/* Exported keying material (RFC 8446 section 7.5) binds a grant to the
 * connection that presents it. */
#define GP_TLS_EXPORTER_LABEL "EXPORTER-gpupool-grant"
#define GP_TLS_EXPORTER_LEN 32

/* PEM bytes of a certificate chain, its key and a CA bundle; any may be
 * NULL with length 0. */
struct gp_tls_pem {
  const char *cert;
  size_t cert_len;
  const char *key;
  size_t key_len;
  const char *ca;
  size_t ca_len;
};

/* Peer certificates, for a server-side context. */
enum gp_tls_peer {
  GP_TLS_PEER_NONE,     /* not asked for */
  GP_TLS_PEER_OPTIONAL, /* asked for; one that is sent must verify */
  GP_TLS_PEER_REQUIRED, /* mutual TLS: a verified one is mandatory */
};

/* A server-side context from PEM bytes: |pem->cert| and |pem->key| are
 * required and must match; |pem->ca| is needed unless |peer| is
 * GP_TLS_PEER_NONE. Returns NULL with |why| on error. */
SSL_CTX *gp_tls_server_ctx(const struct gp_tls_pem *pem, enum gp_tls_peer peer,
                           char *why, size_t why_len);

/* A client-side context. |ca_file| NULL: the system's default store.
 * |cert_file|/|key_file| (both or neither): the certificate to present
 * (mutual TLS). Returns NULL with |why| on error. */
SSL_CTX *gp_tls_client_ctx(const char *ca_file, const char *cert_file,
                           const char *key_file, char *why, size_t why_len);

/* Reads a whole (small) file, for PEM material: at most 1 MiB. Returns a
 * NUL-terminated malloc'd buffer and its length, or NULL with |why|. */
char *gp_tls_read_file(const char *path, size_t *len, char *why,
                       size_t why_len);

/* Loads |cert|, |key| and |ca| (any may be NULL) into |pem|, owning the
 * buffers; gp_tls_pem_free() frees them. Returns 0 or GP_EIO with |why|. */
int gp_tls_pem_load(struct gp_tls_pem *pem, const char *cert, const char *key,
                    const char *ca, char *why, size_t why_len);
void gp_tls_pem_free(struct gp_tls_pem *pem);

/* Blocking connections as gp_wire transports. Each runs the handshake on
 * the connected stream socket |fd| within |timeout_ms| (-1: no limit) and,
 * on success, initialises |w| owning |fd| and the SSL (gp_wire_free()
 * closes both); on failure |fd| is still the caller's. |w| must not move
 * afterwards: each read waits for the rest of a TLS record at most
 * w->timeout_ms (then GP_ETIMEDOUT), read from |w| itself. The client verifies
 * the server's certificate for |host| (a DNS name, or an IPv4/IPv6
 * literal checked against IP SANs) and sends it as SNI when it is a name.
 * Returns 0 or a GP_E* code (GP_ETLS, GP_ETIMEDOUT, GP_ECLOSED...). */
int gp_wire_init_tls_client(struct gp_wire *w, int fd, SSL_CTX *ctx,
                            const char *host, int timeout_ms, char *why,
                            size_t why_len);
int gp_wire_init_tls_server(struct gp_wire *w, int fd, SSL_CTX *ctx,
                            int timeout_ms, char *why, size_t why_len);

/* True when |w| runs over TLS. */
bool gp_wire_is_tls(const struct gp_wire *w);

/* The connection's exported keying material (label GP_TLS_EXPORTER_LABEL,
 * no context). Returns 0, or GP_ENOTSUP on a wire that is not TLS. */
int gp_wire_tls_exporter(struct gp_wire *w, uint8_t out[GP_TLS_EXPORTER_LEN]);

/* The verified peer certificate's subject (one line, "-" if none). */
void gp_wire_tls_peer(struct gp_wire *w, char *out, size_t out_len);

/* ---- In memory, for event loops ------------------------------------------- */

struct gp_tls_mem;

/* A new engine on |ctx| (which it references). |host| (client side only,
 * may be NULL on a server side) is verified as in
 * gp_wire_init_tls_client(). The client side starts its handshake at once:
 * call gp_tls_mem_out() for the ClientHello. */
struct gp_tls_mem *gp_tls_mem_new(SSL_CTX *ctx, bool server, const char *host,
                                  char *why, size_t why_len);
void gp_tls_mem_free(struct gp_tls_mem *m);

/* Hands |len| bytes read from the network to the engine. Returns 0, or
 * GP_ETLS with |why| (the connection must then be closed after sending
 * what gp_tls_mem_out() still has, which may be an alert). */
int gp_tls_mem_in(struct gp_tls_mem *m, const void *data, size_t len,
                  char *why, size_t why_len);

/* Reads decrypted application bytes. Returns the count (> 0), 0 when none
 * are ready yet (the handshake may still be running), GP_ECLOSED after the
 * peer's close_notify, or GP_ETLS with |why|. */
long gp_tls_mem_read(struct gp_tls_mem *m, void *buf, size_t len, char *why,
                     size_t why_len);

/* Encrypts |len| application bytes (queued until the handshake is done).
 * Returns 0, GP_ENOMEM, or GP_ETLS with |why|. */
int gp_tls_mem_write(struct gp_tls_mem *m, const void *data, size_t len,
                     char *why, size_t why_len);

/* Takes up to |len| bytes of ciphertext to send to the peer. Returns the
 * count (0 when there is nothing to send). */
size_t gp_tls_mem_out(struct gp_tls_mem *m, void *buf, size_t len);

/* Ciphertext bytes waiting in the engine for gp_tls_mem_out(). */
size_t gp_tls_mem_out_pending(const struct gp_tls_mem *m);

/* True once the handshake has completed. */
bool gp_tls_mem_ready(const struct gp_tls_mem *m);

/* Queues a close_notify (then send what gp_tls_mem_out() gives). */
void gp_tls_mem_shutdown(struct gp_tls_mem *m);

/* The verified peer certificate's subject (one line, "-" if none), and
 * whether the peer presented a certificate that verified. */
void gp_tls_mem_peer(const struct gp_tls_mem *m, char *out, size_t out_len);
bool gp_tls_mem_peer_verified(const struct gp_tls_mem *m);

/* The connection's exported keying material, once ready. Returns 0 or
 * GP_EAGAIN before the handshake is done. */
int gp_tls_mem_exporter(struct gp_tls_mem *m,
                        uint8_t out[GP_TLS_EXPORTER_LEN]);

#endif
