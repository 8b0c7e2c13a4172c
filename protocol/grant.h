/* Grants and keys (docs/broker.md, "Grants" and "The config file"): what
 * the broker signs and a pool server checks before it admits a session,
 * and the shared key both read. OpenSSL 3 (HMAC-SHA256, SHA-256).
 * Thread-safe; no global state.
 */
#ifndef GP_PROTOCOL_GRANT_H
#define GP_PROTOCOL_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpupool.pb-c.h"

#define GP_GRANT_MAC_LEN 32u
#define GP_GRANT_MAX_LEN 1024u
#define GP_KEY_MIN_LEN 32u
#define GP_KEY_MAX_LEN 4096u

/* Reads a key file: its bytes, one trailing "\n" (or "\r\n") removed, into
 * |key| (GP_KEY_MAX_LEN bytes), the length in |*len|. Refuses (returns
 * GP_EINVAL and a one-line reason in |why|, |whylen| bytes) a file that
 * cannot be read, is not a regular file, is readable by group or others,
 * is shorter than GP_KEY_MIN_LEN or longer than GP_KEY_MAX_LEN. */
int gp_key_load(const char *path, uint8_t *key, size_t *len, char *why,
                size_t whylen);

/* Packs |g| and appends HMAC-SHA256(key, "gpupool-grant\0" || the packed
 * bytes): |*out| (malloc'd,
 * the caller frees it) of |*outlen| bytes. GP_ETOOBIG if the result would
 * exceed GP_GRANT_MAX_LEN, GP_ENOMEM. */
int gp_grant_sign(const uint8_t *key, size_t keylen, const Gpupool__Grant *g,
                  uint8_t **out, size_t *outlen);

/* Checks |buf| (|len| bytes): the MAC (constant-time), then unpacks it;
 * then version 1, and expiry against |now_unix|. On success |*out| is the
 * unpacked grant (free with gpupool__grant__free_unpacked) and 0 is
 * returned. On failure returns GP_EGRANT and a one-line reason in |why|
 * ("signature does not verify", "expired 12 s ago", "malformed", ...).
 * Does not check the server name, GPU or reuse: the caller does. */
int gp_grant_verify(const uint8_t *key, size_t keylen, const uint8_t *buf,
                    size_t len, uint64_t now_unix, Gpupool__Grant **out,
                    char *why, size_t whylen);

/* HMAC-SHA256 of |len| bytes under |key| into |mac| (32 bytes). Returns 0
 * or GP_ENOMEM. */
int gp_hmac_sha256(const uint8_t *key, size_t keylen, const void *data,
                   size_t len, uint8_t mac[GP_GRANT_MAC_LEN]);

/* The registration MAC (docs/broker.md, "Registration"):
 * HMAC-SHA256(key, "gpupool-register\0" || the packed |m| with its
 * `auth` empty), so every field (name, timestamp, address, labels, GPUs,
 * sessions, version) is covered. |m->auth| is ignored. Returns 0 or
 * GP_ENOMEM. */
int gp_register_auth(const uint8_t *key, size_t keylen,
                     const Gpupool__BrokerRegister *m,
                     uint8_t mac[GP_GRANT_MAC_LEN]);

/* SHA-256 of |len| bytes as 64 lower-case hex digits and a NUL in |hex|. */
void gp_sha256_hex(const void *data, size_t len, char hex[65]);

/* Constant-time comparison of |len| bytes: true when equal. */
bool gp_ct_equal(const void *a, const void *b, size_t len);

#endif
