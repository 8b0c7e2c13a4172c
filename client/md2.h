/* MD2 (RFC 1319) and HMAC-MD2 (RFC 2104 over MD2's 16-byte block), for the
 * driver's integrity check (api_export.c). OpenSSL 3 no longer ships MD2.
 * MD2 is long broken as a hash; it is here only because that check is
 * defined with it. */
#ifndef GP_CLIENT_MD2_H
#define GP_CLIENT_MD2_H

#include <stddef.h>
#include <stdint.h>

#define GP__MD2_LEN 16   /* digest bytes */
#define GP__MD2_BLOCK 16 /* block bytes, HMAC's B */

/* A running MD2 computation. Not thread-safe; one per computation. */
struct gp__md2 {
  uint8_t x[48];        /* the state: X[0..15] is the digest so far */
  uint8_t sum[16];      /* the checksum of the blocks so far */
  uint8_t buf[16];      /* a partial block */
  size_t nbuf;          /* bytes in |buf| */
};

void gp__md2_init(struct gp__md2 *m);
/* Adds |n| bytes at |p| (|p| may be NULL when |n| is 0). */
void gp__md2_update(struct gp__md2 *m, const void *p, size_t n);
/* Pads, appends the checksum and writes the digest. |m| must be
 * initialised again before reuse. */
void gp__md2_final(struct gp__md2 *m, uint8_t out[GP__MD2_LEN]);

/* MD2 of |n| bytes at |p|. Any thread. */
void gp__md2(const void *p, size_t n, uint8_t out[GP__MD2_LEN]);

/* HMAC-MD2 of |n| bytes at |msg| under the |keylen|-byte |key| (a key
 * longer than the block is hashed first, as RFC 2104 says). Any thread. */
void gp__hmac_md2(const void *key, size_t keylen, const void *msg, size_t n,
                  uint8_t out[GP__MD2_LEN]);

#endif
