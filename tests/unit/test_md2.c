/* Unit tests of MD2 and HMAC-MD2 (client/md2.c), the hash of the driver's
 * integrity check.
 *
 * The MD2 vectors are the seven of RFC 1319, appendix A.5. The HMAC-MD2
 * values were computed once, independently of this code, with
 * pycryptodome 3.20.0 (Crypto.Hash.HMAC.new(key, msg, digestmod=MD2)),
 * installed with pip in a throwaway virtual environment; the keys and
 * messages are those of RFC 2104/RFC 2202's HMAC test cases, plus keys of
 * exactly one block and one byte more, an empty key and message, and the
 * integrity check's own key. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "md2.h"

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_md2(const void *p, size_t n, const char *want) {
  uint8_t d[GP__MD2_LEN];
  char got[2 * GP__MD2_LEN + 1];
  gp__md2(p, n, d);
  hex(d, sizeof(d), got);
  ck_assert_str_eq(got, want);
}

static void check_hmac(const void *key, size_t keylen, const void *msg,
                       size_t n, const char *want) {
  uint8_t d[GP__MD2_LEN];
  char got[2 * GP__MD2_LEN + 1];
  gp__hmac_md2(key, keylen, msg, n, d);
  hex(d, sizeof(d), got);
  ck_assert_str_eq(got, want);
}

static const struct {
  const char *msg;
  const char *digest;
} rfc1319[] = {
    {"", "8350e5a3e24c153df2275c9f80692773"},
    {"a", "32ec01ec4a6dac72c0ab96fb34c0b5d1"},
    {"abc", "da853b0d3f88d99b30283a69e6ded6bb"},
    {"message digest", "ab4f496bfb2a530b219ff33031fe06b0"},
    {"abcdefghijklmnopqrstuvwxyz", "4e8ddff3650292ab5a4108c3aa47940b"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "da33def2a42df13975352846c30338cd"},
    {"1234567890123456789012345678901234567890123456789012345678901234567890"
     "1234567890",
     "d5976f79d83d3a0dc9806c3c66f3efd8"},
};

START_TEST(test_md2_rfc1319_vectors) {
  for (size_t i = 0; i < sizeof(rfc1319) / sizeof(rfc1319[0]); i++)
    check_md2(rfc1319[i].msg, strlen(rfc1319[i].msg), rfc1319[i].digest);
}
END_TEST

/* Fed in pieces of every size, the digest is the same as in one call:
 * the partial-block buffering is right at every boundary. */
START_TEST(test_md2_incremental_equals_oneshot) {
  const char *msg = rfc1319[6].msg;
  size_t n = strlen(msg);
  for (size_t step = 1; step <= 33; step++) {
    struct gp__md2 m;
    uint8_t d[GP__MD2_LEN], want[GP__MD2_LEN];
    gp__md2_init(&m);
    for (size_t off = 0; off < n; off += step)
      gp__md2_update(&m, msg + off, off + step <= n ? step : n - off);
    gp__md2_update(&m, NULL, 0);
    gp__md2_final(&m, d);
    gp__md2(msg, n, want);
    ck_assert_msg(memcmp(d, want, sizeof(d)) == 0, "step %zu", step);
  }
}
END_TEST

/* Messages of exactly one and two blocks get a whole block of padding. */
START_TEST(test_md2_block_multiples_differ) {
  uint8_t a[GP__MD2_LEN], b[GP__MD2_LEN];
  gp__md2("0123456789abcdef", 16, a);
  gp__md2("0123456789abcde", 15, b);
  ck_assert(memcmp(a, b, sizeof(a)) != 0);
  gp__md2("0123456789abcdef0123456789abcdef", 32, b);
  ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

START_TEST(test_md2_hmac_reference_values) {
  uint8_t k16[16], k80[80], k25[25], k17[17], kb[16], d50[50], c50[50];
  uint8_t m64[64];
  memset(k16, 0x0b, sizeof(k16));
  check_hmac(k16, sizeof(k16), "Hi There", 8,
             "b524be0196e491ed44823746cd8923af");
  check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
             "292f9d34f9e311846de86c495d7adfa2");
  memset(k16, 0xaa, sizeof(k16));
  memset(d50, 0xdd, sizeof(d50));
  check_hmac(k16, sizeof(k16), d50, sizeof(d50),
             "ff09238e4bded84b5490bc42cfd5c265");
  for (int i = 0; i < 25; i++)
    k25[i] = (uint8_t)(i + 1);
  memset(c50, 0xcd, sizeof(c50));
  check_hmac(k25, sizeof(k25), c50, sizeof(c50),
             "ea3181bf1cc387f12ed0637105fb219d");
  memset(k80, 0xaa, sizeof(k80));
  check_hmac(k80, sizeof(k80),
             "Test Using Larger Than Block-Size Key - Hash Key First", 54,
             "615b1c392f5aaeeeab7e82572e6395d5");
  check_hmac("", 0, "", 0, "6f6e031223b36cd2a997787a03d16bf5");
  for (int i = 0; i < 17; i++)
    k17[i] = (uint8_t)i;
  check_hmac(k17, sizeof(k17), "seventeen-byte key", 18,
             "c7ac9de03e4a35a28cbcaeb222f29eee");
  check_hmac(k17, 16, "sixteen-byte key", 16,
             "7573d93d6f86570ac86a3a0a9a0ed368");
  /* The integrity check's key. */
  static const uint8_t key[16] = {0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9,
                                  0xA7, 0x52, 0xAA, 0x08, 0x41, 0x36,
                                  0x0B, 0xF5, 0x5A, 0x9F};
  memcpy(kb, key, sizeof(kb));
  for (int i = 0; i < 64; i++)
    m64[i] = (uint8_t)i;
  check_hmac(kb, sizeof(kb), m64, sizeof(m64),
             "d3299c9f96c962c66bf7c66fd9e64fe6");
}
END_TEST

static Suite *md2_suite(void) {
  Suite *s = suite_create("md2");
  TCase *tc = tcase_create("md2");
  tcase_add_test(tc, test_md2_rfc1319_vectors);
  tcase_add_test(tc, test_md2_incremental_equals_oneshot);
  tcase_add_test(tc, test_md2_block_multiples_differ);
  tcase_add_test(tc, test_md2_hmac_reference_values);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(md2_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
