/* MD2 as RFC 1319 specifies it, and HMAC (RFC 2104) over it.
 *
 * MD2 works on 16-byte blocks: the message is padded with i bytes of value
 * i (1 to 16) to a whole number of blocks, a 16-byte checksum of the padded
 * message is appended as one more block, and each block is mixed into a
 * 48-byte state by 18 rounds of a byte substitution. The digest is the first
 * 16 bytes of the state. */
#include "md2.h"

#include <string.h>

/* RFC 1319's permutation of 0..255, "constructed from the digits of pi":
 * a Durstenfeld shuffle of 0..255 whose random numbers are successive
 * digits of pi (one digit to choose among up to 10 positions, two for up to
 * 100, three above; a number that would bias the choice is skipped). This
 * is that shuffle's output, identical to the RFC's table; the RFC's test
 * vectors (tests/unit/test_md2.c) check it. */
static const uint8_t pi_subst[256] = {
    41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19,
    98, 167, 5, 243, 192, 199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202,
    30, 155, 87, 60, 253, 212, 224, 22, 103, 66, 111, 24, 138, 23, 229, 18,
    190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245, 142, 187, 47, 238, 122,
    169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11, 34, 95, 33,
    128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3,
    255, 25, 48, 179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198,
    79, 184, 56, 210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241,
    69, 157, 112, 89, 100, 113, 135, 32, 134, 91, 207, 101, 230, 45, 168, 2,
    27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52, 64, 126, 15,
    85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38,
    44, 83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82,
    106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74,
    120, 136, 149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57,
    242, 239, 183, 14, 102, 88, 208, 228, 166, 119, 114, 248, 235, 117, 75, 10,
    49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
};

void gp__md2_init(struct gp__md2 *m) { memset(m, 0, sizeof(*m)); }

/* Mixes one block into the state and into the checksum (RFC 1319, steps 2
 * and 4, done together so that the message is read once). */
static void md2_block(struct gp__md2 *m, const uint8_t b[16]) {
  /* The checksum's running byte L is the last checksum byte updated, which
   * carries over from the previous block. */
  uint8_t l = m->sum[15];
  for (int j = 0; j < 16; j++) {
    /* The RFC's text says "Set C[j] to S[c xor L]"; its reference code,
     * and every published digest, XOR it in (the RFC's errata say so). */
    m->sum[j] ^= pi_subst[b[j] ^ l];
    l = m->sum[j];
  }
  for (int j = 0; j < 16; j++) {
    m->x[16 + j] = b[j];
    m->x[32 + j] = (uint8_t)(m->x[16 + j] ^ m->x[j]);
  }
  unsigned t = 0;
  for (unsigned j = 0; j < 18; j++) {
    for (int k = 0; k < 48; k++) {
      m->x[k] ^= pi_subst[t];
      t = m->x[k];
    }
    t = (t + j) & 0xFF;
  }
}

void gp__md2_update(struct gp__md2 *m, const void *p, size_t n) {
  const uint8_t *in = p;
  if (m->nbuf > 0) {
    size_t take = 16 - m->nbuf < n ? 16 - m->nbuf : n;
    memcpy(m->buf + m->nbuf, in, take);
    m->nbuf += take;
    in += take;
    n -= take;
    if (m->nbuf < 16)
      return;
    md2_block(m, m->buf);
    m->nbuf = 0;
  }
  for (; n >= 16; in += 16, n -= 16)
    md2_block(m, in);
  if (n > 0) {
    memcpy(m->buf, in, n);
    m->nbuf = n;
  }
}

void gp__md2_final(struct gp__md2 *m, uint8_t out[GP__MD2_LEN]) {
  /* Padding: always at least one byte, so a whole block of 16 when the
   * message fills its last block. */
  uint8_t pad = (uint8_t)(16 - m->nbuf);
  memset(m->buf + m->nbuf, pad, pad);
  md2_block(m, m->buf);
  /* The checksum block goes through the state only; that it also updates
   * the checksum no longer matters. */
  uint8_t sum[16];
  memcpy(sum, m->sum, sizeof(sum));
  md2_block(m, sum);
  memcpy(out, m->x, GP__MD2_LEN);
}

void gp__md2(const void *p, size_t n, uint8_t out[GP__MD2_LEN]) {
  struct gp__md2 m;
  gp__md2_init(&m);
  gp__md2_update(&m, p, n);
  gp__md2_final(&m, out);
}

void gp__hmac_md2(const void *key, size_t keylen, const void *msg, size_t n,
                  uint8_t out[GP__MD2_LEN]) {
  uint8_t k[GP__MD2_BLOCK] = {0};
  if (keylen > GP__MD2_BLOCK)
    gp__md2(key, keylen, k); /* GP__MD2_LEN == GP__MD2_BLOCK */
  else if (keylen > 0)
    memcpy(k, key, keylen);

  uint8_t pad[GP__MD2_BLOCK], inner[GP__MD2_LEN];
  struct gp__md2 m;
  for (int i = 0; i < GP__MD2_BLOCK; i++)
    pad[i] = k[i] ^ 0x36;
  gp__md2_init(&m);
  gp__md2_update(&m, pad, sizeof(pad));
  gp__md2_update(&m, msg, n);
  gp__md2_final(&m, inner);

  for (int i = 0; i < GP__MD2_BLOCK; i++)
    pad[i] = k[i] ^ 0x5c;
  gp__md2_init(&m);
  gp__md2_update(&m, pad, sizeof(pad));
  gp__md2_update(&m, inner, sizeof(inner));
  gp__md2_final(&m, out);
}
