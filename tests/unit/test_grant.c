/* Unit tests of grants and keys (protocol/grant.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "grant.h"

static const uint8_t key[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof(key) - 1)

static uint8_t bind_priv[GP_BINDING_KEY_LEN], bind_pub[GP_BINDING_KEY_LEN];

static Gpupool__Grant sample(void) {
  Gpupool__Grant g = GPUPOOL__GRANT__INIT;
  static uint8_t nonce[16] = {1, 2, 3};
  ck_assert_int_eq(gp_binding_keypair(bind_priv, bind_pub), 0);
  g.version = GP_GRANT_VERSION;
  g.binding_key.data = bind_pub;
  g.binding_key.len = sizeof(bind_pub);
  g.session_id = 0x1234567890abcdefull;
  g.tenant = "alice";
  g.server = "pool01";
  g.gpu_uuid = "GPU-23d1a775-bf03-83f4-aed8-2b294173328f";
  g.memory_limit = 1ull << 30;
  g.issued_unix = 1000;
  g.expires_unix = 1060;
  g.nonce.data = nonce;
  g.nonce.len = sizeof(nonce);
  return g;
}

START_TEST(test_grant_sign_verify_round_trip) {
  Gpupool__Grant g = sample(), *out = NULL;
  uint8_t *buf;
  size_t len;
  char why[128];

  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  ck_assert_uint_gt(len, GP_GRANT_MAC_LEN);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1059, &out, why,
                                   sizeof(why)), 0);
  ck_assert_ptr_nonnull(out);
  ck_assert_uint_eq(out->session_id, g.session_id);
  ck_assert_str_eq(out->tenant, "alice");
  ck_assert_str_eq(out->server, "pool01");
  ck_assert_str_eq(out->gpu_uuid, g.gpu_uuid);
  ck_assert_uint_eq(out->memory_limit, 1ull << 30);
  ck_assert_uint_eq(out->expires_unix, 1060);
  ck_assert_uint_eq(out->binding_key.len, GP_BINDING_KEY_LEN);
  ck_assert_mem_eq(out->binding_key.data, bind_pub, GP_BINDING_KEY_LEN);
  gpupool__grant__free_unpacked(out, NULL);
  free(buf);
}
END_TEST

/* The proof binds a grant to one connection's exporter and one key. */
START_TEST(test_grant_proof_binding) {
  Gpupool__Grant g = sample();
  uint8_t *buf, proof[GP_GRANT_PROOF_LEN], ex[GP_GRANT_EXPORTER_LEN];
  uint8_t ex2[GP_GRANT_EXPORTER_LEN], zero[GP_GRANT_EXPORTER_LEN] = {0};
  uint8_t other_priv[GP_BINDING_KEY_LEN], other_pub[GP_BINDING_KEY_LEN];
  uint8_t other_proof[GP_GRANT_PROOF_LEN];
  size_t len;

  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  for (size_t i = 0; i < sizeof(ex); i++) {
    ex[i] = (uint8_t)(i * 7 + 1);
    ex2[i] = ex[i];
  }
  ex2[31] ^= 1;
  ck_assert_int_eq(gp_grant_proof(bind_priv, ex, buf, len, proof), 0);
  ck_assert(gp_grant_proof_ok(bind_pub, ex, buf, len, proof, sizeof(proof)));
  /* Another connection (exporter), the plain zeros, another grant. */
  ck_assert(!gp_grant_proof_ok(bind_pub, ex2, buf, len, proof,
                               sizeof(proof)));
  ck_assert(!gp_grant_proof_ok(bind_pub, zero, buf, len, proof,
                               sizeof(proof)));
  buf[0] ^= 1;
  ck_assert(!gp_grant_proof_ok(bind_pub, ex, buf, len, proof, sizeof(proof)));
  buf[0] ^= 1;
  /* A proof made with another key; a truncated or flipped one; none. */
  ck_assert_int_eq(gp_binding_keypair(other_priv, other_pub), 0);
  ck_assert_int_eq(gp_grant_proof(other_priv, ex, buf, len, other_proof), 0);
  ck_assert(!gp_grant_proof_ok(bind_pub, ex, buf, len, other_proof,
                               sizeof(other_proof)));
  ck_assert(!gp_grant_proof_ok(bind_pub, ex, buf, len, proof,
                               sizeof(proof) - 1));
  ck_assert(!gp_grant_proof_ok(bind_pub, ex, buf, len, NULL, 0));
  proof[5] ^= 0x40;
  ck_assert(!gp_grant_proof_ok(bind_pub, ex, buf, len, proof, sizeof(proof)));
  /* The zeros of a plain connection work as an exporter too. */
  ck_assert_int_eq(gp_grant_proof(bind_priv, zero, buf, len, proof), 0);
  ck_assert(gp_grant_proof_ok(bind_pub, zero, buf, len, proof,
                              sizeof(proof)));
  free(buf);
}
END_TEST

START_TEST(test_grant_refuses_tampering_and_wrong_key) {
  Gpupool__Grant g = sample(), *out = NULL;
  uint8_t *buf;
  size_t len;
  char why[128];

  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  /* Every single flipped bit, in the body or the MAC, is refused. */
  for (size_t i = 0; i < len; i++) {
    buf[i] ^= 0x10;
    ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1000, &out, why,
                                     sizeof(why)), GP_EGRANT);
    ck_assert_ptr_null(out);
    buf[i] ^= 0x10;
  }
  ck_assert_int_eq(gp_grant_verify((const uint8_t *)"another key of 32 bytes or more!",
                                   32, buf, len, 1000, &out, why, sizeof(why)),
                   GP_EGRANT);
  ck_assert_str_eq(why, "grant signature does not verify");
  /* Truncated, empty, oversized. */
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len - 1, 1000, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, 0, 1000, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, GP_GRANT_MAX_LEN + 1,
                                   1000, &out, why, sizeof(why)), GP_EGRANT);
  free(buf);
}
END_TEST

START_TEST(test_grant_expiry_and_version) {
  Gpupool__Grant g = sample(), *out = NULL;
  uint8_t *buf;
  size_t len;
  char why[128];

  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1060, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_str_eq(why, "grant expired 0 s ago");
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1072, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_str_eq(why, "grant expired 12 s ago");
  free(buf);
  g.version = 1; /* an older broker's grant: no binding key */
  g.binding_key.len = 0;
  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1000, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_str_eq(why, "grant version 1 is not 3");
  free(buf);
  g.version = GP_GRANT_VERSION; /* version 3 without its key */
  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1000, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_str_eq(why, "grant has a binding key of 0 bytes (not 32)");
  free(buf);
  /* A signed body that is not a Grant. */
  {
    static const char dom[] = "gpupool-grant"; /* and its NUL */
    uint8_t junk[40], pre[sizeof(dom) + 8];
    memset(junk, 0xff, sizeof(junk));
    memcpy(pre, dom, sizeof(dom));
    memset(pre + sizeof(dom), 0xff, 8);
    ck_assert_int_eq(gp_hmac_sha256(key, KEYLEN, pre, sizeof(pre), junk + 8),
                     0);
    ck_assert_int_eq(gp_grant_verify(key, KEYLEN, junk, 40, 1000, &out, why,
                                     sizeof(why)), GP_EGRANT);
    ck_assert_str_eq(why, "grant is signed but malformed");
  }
}
END_TEST

static char *write_key(const char *text, size_t n, mode_t mode) {
  char *path = strdup("/tmp/gp-test-key-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
  close(fd);
  chmod(path, mode);
  return path;
}

START_TEST(test_grant_key_file_rules) {
  uint8_t k[GP_KEY_MAX_LEN];
  size_t len;
  char why[256];
  char *p;
  const char *hex64 =
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

  p = write_key(hex64, strlen(hex64), 0600);
  ck_assert_int_eq(gp_key_load(p, k, &len, why, sizeof(why)), 0);
  ck_assert_uint_eq(len, 64);
  ck_assert_int_eq(memcmp(k, hex64, 64), 0);
  chmod(p, 0644);
  ck_assert_int_eq(gp_key_load(p, k, &len, why, sizeof(why)), GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(why, "chmod 600"));
  unlink(p);
  free(p);

  p = write_key("short\n", 6, 0600);
  ck_assert_int_eq(gp_key_load(p, k, &len, why, sizeof(why)), GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(why, "at least 32"));
  unlink(p);
  free(p);

  {
    char *big = malloc(GP_KEY_MAX_LEN + 1);
    memset(big, 'a', GP_KEY_MAX_LEN + 1);
    p = write_key(big, GP_KEY_MAX_LEN + 1, 0600);
    ck_assert_int_eq(gp_key_load(p, k, &len, why, sizeof(why)), GP_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "longer than"));
    unlink(p);
    free(p);
    p = write_key(big, GP_KEY_MAX_LEN, 0600);
    ck_assert_int_eq(gp_key_load(p, k, &len, why, sizeof(why)), 0);
    ck_assert_uint_eq(len, GP_KEY_MAX_LEN);
    unlink(p);
    free(p);
    free(big);
  }
  ck_assert_int_eq(gp_key_load("/nonexistent/key", k, &len, why,
                               sizeof(why)), GP_EINVAL);
  ck_assert_int_eq(gp_key_load("/tmp", k, &len, why, sizeof(why)),
                   GP_EINVAL);
}
END_TEST

/* The grant's MAC is over "gpupool-grant\0" and the packed grant: a
 * MAC over the bare bytes (the same key signing something else) does not
 * verify. */
START_TEST(test_grant_domain_separated) {
  static const char dom[] = "gpupool-grant"; /* and its NUL */
  Gpupool__Grant g = sample(), *out = NULL;
  uint8_t *buf, mac[32], pre[GP_GRANT_MAX_LEN + sizeof(dom)];
  size_t len, body;
  char why[128];

  ck_assert_int_eq(gp_grant_sign(key, KEYLEN, &g, &buf, &len), 0);
  body = len - GP_GRANT_MAC_LEN;
  memcpy(pre, dom, sizeof(dom));
  memcpy(pre + sizeof(dom), buf, body);
  ck_assert_int_eq(gp_hmac_sha256(key, KEYLEN, pre, sizeof(dom) + body, mac),
                   0);
  ck_assert(gp_ct_equal(mac, buf + body, 32));
  ck_assert_int_eq(gp_hmac_sha256(key, KEYLEN, buf, body, buf + body), 0);
  ck_assert_int_eq(gp_grant_verify(key, KEYLEN, buf, len, 1000, &out, why,
                                   sizeof(why)), GP_EGRANT);
  ck_assert_str_eq(why, "grant signature does not verify");
  free(buf);
}
END_TEST

static Gpupool__BrokerRegister sample_register(void) {
  static Gpupool__BrokerGpu gpu = GPUPOOL__BROKER_GPU__INIT;
  static Gpupool__BrokerGpu *gp[] = {&gpu};
  Gpupool__BrokerRegister m = GPUPOOL__BROKER_REGISTER__INIT;

  gpu.uuid = "GPU-1";
  gpu.total_mem = 8ull << 30;
  m.name = "pool01";
  m.address = "10.0.0.1:7471";
  m.gpus = gp;
  m.n_gpus = 1;
  m.version = "gpupool-server test";
  m.timestamp_unix = 1700000000;
  return m;
}

/* The registration MAC covers the whole message (auth left out), after
 * "gpupool-register\0". */
START_TEST(test_grant_register_auth_and_sha256) {
  static const char dom[] = "gpupool-register"; /* and its NUL */
  Gpupool__BrokerRegister m = sample_register(), m2;
  uint8_t a[32], b[32], packed[512], pre[600], junk[3] = {1, 2, 3};
  size_t n;
  char hex[65];

  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m, a), 0);
  /* Independently: the prefix and the packed message with no auth. */
  n = gpupool__broker_register__pack(&m, packed);
  memcpy(pre, dom, sizeof(dom));
  memcpy(pre + sizeof(dom), packed, n);
  ck_assert_int_eq(gp_hmac_sha256(key, KEYLEN, pre, sizeof(dom) + n, b), 0);
  ck_assert(gp_ct_equal(a, b, 32));
  /* The auth field itself is not covered. */
  m2 = m;
  m2.auth.data = junk;
  m2.auth.len = sizeof(junk);
  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m2, b), 0);
  ck_assert(gp_ct_equal(a, b, 32));
  /* Every other field is. */
  m2 = m;
  m2.timestamp_unix++;
  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m2, b), 0);
  ck_assert(!gp_ct_equal(a, b, 32));
  m2 = m;
  m2.address = "10.6.6.6:7471";
  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m2, b), 0);
  ck_assert(!gp_ct_equal(a, b, 32));
  m2 = m;
  m2.n_gpus = 0;
  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m2, b), 0);
  ck_assert(!gp_ct_equal(a, b, 32));
  m2 = m;
  m2.version = "other";
  ck_assert_int_eq(gp_register_auth(key, KEYLEN, &m2, b), 0);
  ck_assert(!gp_ct_equal(a, b, 32));
  /* FIPS 180-2's "abc". */
  gp_sha256_hex("abc", 3, hex);
  ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                        "b00361a396177a9cb410ff61f20015ad");
}
END_TEST

int main(void) {
  Suite *s = suite_create("grant");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_grant_sign_verify_round_trip);
  tcase_add_test(tc, test_grant_refuses_tampering_and_wrong_key);
  tcase_add_test(tc, test_grant_expiry_and_version);
  tcase_add_test(tc, test_grant_proof_binding);
  tcase_add_test(tc, test_grant_key_file_rules);
  tcase_add_test(tc, test_grant_domain_separated);
  tcase_add_test(tc, test_grant_register_auth_and_sha256);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
