/* Unit tests of the broker's config file (broker/config.c). */
#include <check.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "daemon_util.h"
#include "gpupool/errors.h"

static char dir[64], conf[128], keyf[128];
static char why[512];
static struct brk_config cfg;

/* SHA-256 of "alice-token", "bob-token" and "admin-token". */
static char h_alice[65], h_bob[65], h_admin[65];

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");

  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  chmod(path, mode);
}

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/gp-brkcfg-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(conf, sizeof(conf), "%s/broker.conf", dir);
  snprintf(keyf, sizeof(keyf), "%s/grant.key", dir);
  write_file(keyf, "0123456789abcdef0123456789abcdef0123456789abcdef\n",
             0600);
  gp_sha256_hex("alice-token", 11, h_alice);
  gp_sha256_hex("bob-token", 9, h_bob);
  gp_sha256_hex("admin-token", 11, h_admin);
  memset(&cfg, 0, sizeof(cfg));
}

static void teardown(void) {
  brk_config_free(&cfg);
  unlink(conf);
  unlink(keyf);
  rmdir(dir);
}

/* Writes the config from a printf format (%s: the key file), loads it. */
__attribute__((format(printf, 1, 2)))
static int load(const char *fmt, ...) {
  char text[4096];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  write_file(conf, text, 0644);
  brk_config_free(&cfg);
  why[0] = '\0';
  return brk_config_load(&cfg, conf, why, sizeof(why));
}

/* The error names |line| of the file and contains |what|. */
static void expect_error(int line, const char *what) {
  char prefix[200];

  if (line > 0)
    snprintf(prefix, sizeof(prefix), "%s:%d: ", conf, line);
  else
    snprintf(prefix, sizeof(prefix), "%s: ", conf);
  ck_assert_msg(strncmp(why, prefix, strlen(prefix)) == 0,
                "'%s' does not start with '%s'", why, prefix);
  ck_assert_msg(strstr(why, what) != NULL, "'%s' does not say '%s'", why,
                what);
}

START_TEST(test_broker_config_good) {
  ck_assert_int_eq(load("; a comment\n"
                        "[broker]\n"
                        "grant_key_file = %s   ; required\n"
                        "heartbeat_ms = 250\n"
                        "down_after_ms = 1500\n"
                        "grant_ttl_s = 30\n"
                        "default_memory = 512M\n"
                        "\n"
                        "[tenant.alice]\n"
                        "token_sha256 = %s\n"
                        "max_sessions = 8\n"
                        "max_memory = 32G\n"
                        "[tenant.bob]\n"
                        "token_sha256 = %s\n"
                        "[admin]\n"
                        "token_sha256 = %s\n",
                        keyf, h_alice, h_bob, h_admin), 0);
  ck_assert_uint_eq(cfg.heartbeat_ms, 250);
  ck_assert_uint_eq(cfg.down_after_ms, 1500);
  ck_assert_uint_eq(cfg.grant_ttl_s, 30);
  ck_assert_uint_eq(cfg.default_memory, 512ull << 20);
  ck_assert_uint_eq(cfg.keylen, 48);
  ck_assert_uint_eq(cfg.ntenants, 2);
  ck_assert_str_eq(cfg.tenants[0].t.name, "alice");
  ck_assert_uint_eq(cfg.tenants[0].t.max_sessions, 8);
  ck_assert_uint_eq(cfg.tenants[0].t.max_memory, 32ull << 30);
  ck_assert_uint_eq(cfg.tenants[1].t.max_sessions, 0);
  ck_assert(cfg.has_admin);
  ck_assert_int_eq(brk_config_token(&cfg, (const uint8_t *)"alice-token", 11),
                   0);
  ck_assert_int_eq(brk_config_token(&cfg, (const uint8_t *)"bob-token", 9),
                   1);
  ck_assert_int_eq(brk_config_token(&cfg, (const uint8_t *)"admin-token", 11),
                   BRK_TOKEN_ADMIN);
  ck_assert_int_eq(brk_config_token(&cfg, (const uint8_t *)"alice-tokeN", 11),
                   BRK_TOKEN_UNKNOWN);
  ck_assert_int_eq(brk_config_token(&cfg, NULL, 0), BRK_TOKEN_UNKNOWN);
}
END_TEST

START_TEST(test_broker_config_defaults_and_upper_case_hash) {
  char upper[65];
  int i;

  for (i = 0; i < 65; i++)
    upper[i] = (char)toupper((unsigned char)h_alice[i]);
  ck_assert_int_eq(load("[broker]\ngrant_key_file=%s\n[tenant.a]\n"
                        "token_sha256=%s\n", keyf, upper), 0);
  ck_assert_uint_eq(cfg.heartbeat_ms, 1000);
  ck_assert_uint_eq(cfg.down_after_ms, 5000);
  ck_assert_uint_eq(cfg.grant_ttl_s, 60);
  ck_assert_uint_eq(cfg.default_memory, 1ull << 30);
  ck_assert(!cfg.has_admin);
  ck_assert_int_eq(brk_config_token(&cfg, (const uint8_t *)"alice-token", 11),
                   0);
}
END_TEST

START_TEST(test_broker_config_bad_lines) {
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat = 5\n",
                        keyf), GP_EINVAL);
  expect_error(3, "unknown key 'heartbeat' in [broker]");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n\n[brokr]\nx=1\n",
                        keyf), GP_EINVAL);
  expect_error(4, "unknown section [brokr]");
  /* An unknown section is found even when it has no keys. */
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[nothing]\n", keyf),
                   GP_EINVAL);
  expect_error(3, "unknown section [nothing]");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a b]\n",
                        keyf), GP_EINVAL);
  expect_error(3, "a tenant's name");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = "
                        "fast\n", keyf), GP_EINVAL);
  expect_error(3, "heartbeat_ms: 'fast'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\ngrant_ttl_s = 0\n",
                        keyf), GP_EINVAL);
  expect_error(3, "grant_ttl_s: '0'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\ndefault_memory = "
                        "12Q\n", keyf), GP_EINVAL);
  expect_error(3, "default_memory: '12Q' is not a size");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "token_sha256 = %s\nmax_memory = lots\n", keyf,
                        h_alice), GP_EINVAL);
  expect_error(5, "max_memory: 'lots'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "token_sha256 = %s\nmax_sessions = -1\n", keyf,
                        h_alice), GP_EINVAL);
  expect_error(5, "max_sessions: '-1'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "token_sha256 = abc\n", keyf), GP_EINVAL);
  expect_error(4, "not 64 hex digits");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[admin]\n"
                        "token = %s\n", keyf, h_admin), GP_EINVAL);
  expect_error(4, "unknown key 'token' in [admin]");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 5\n"
                        "heartbeat_ms = 6\n", keyf), GP_EINVAL);
  expect_error(3, "heartbeat_ms: '5'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 150\n"
                        "heartbeat_ms = 160\n", keyf), GP_EINVAL);
  expect_error(4, "heartbeat_ms given twice");
  ck_assert_int_eq(load("x = 1\n[broker]\ngrant_key_file = %s\n", keyf),
                   GP_EINVAL);
  expect_error(1, "outside any section");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nthis is not ini\n",
                        keyf), GP_EINVAL);
  expect_error(3, "not 'key = value'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a\n", keyf),
                   GP_EINVAL);
  expect_error(3, "without ']'");
}
END_TEST

START_TEST(test_broker_config_long_line) {
  char big[1200];

  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n; %s\n", keyf, big),
                   GP_EINVAL);
  expect_error(3, "line longer than");
}
END_TEST

START_TEST(test_broker_config_missing_and_conflicting) {
  ck_assert_int_eq(load("[broker]\nheartbeat_ms = 100\n"), GP_EINVAL);
  expect_error(0, "[broker] has no grant_key_file (required)");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "max_sessions = 1\n", keyf), GP_EINVAL);
  expect_error(0, "[tenant.a] has no token_sha256");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "token_sha256 = %s\n[tenant.b]\ntoken_sha256 = %s\n",
                        keyf, h_alice, h_alice), GP_EINVAL);
  expect_error(0, "tenants a and b have the same token_sha256");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n[tenant.a]\n"
                        "token_sha256 = %s\n[admin]\ntoken_sha256 = %s\n",
                        keyf, h_alice, h_alice), GP_EINVAL);
  expect_error(0, "has the admin's token_sha256");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 2000\n"
                        "down_after_ms = 1000\n", keyf), GP_EINVAL);
  expect_error(4, "must be at least twice heartbeat_ms (2000)");
  /* The range servers accept for their heartbeat period: 100-60000 ms. */
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 99\n",
                        keyf), GP_EINVAL);
  expect_error(3, "heartbeat_ms: '99' is not a number of milliseconds from "
               "100 to 60000");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = "
                        "60001\ndown_after_ms = 200000\n", keyf), GP_EINVAL);
  expect_error(3, "heartbeat_ms: '60001'");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = "
                        "60000\ndown_after_ms = 120000\n", keyf), 0);
  ck_assert_uint_eq(cfg.heartbeat_ms, 60000);
  brk_config_free(&cfg);
  /* down_after_ms below twice the period: refused at the later line. */
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\ndown_after_ms = 1999\n"
                        "heartbeat_ms = 1000\n", keyf), GP_EINVAL);
  expect_error(4, "down_after_ms (1999) must be at least twice heartbeat_ms "
               "(1000)");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 3000\n",
                        keyf), GP_EINVAL);
  expect_error(3, "down_after_ms (5000) must be at least twice");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\nheartbeat_ms = 1000\n"
                        "down_after_ms = 2000\n", keyf), 0);
  brk_config_free(&cfg);
}
END_TEST

START_TEST(test_broker_config_bad_key_file) {
  /* Readable by others: refused, naming the line of grant_key_file. */
  chmod(keyf, 0644);
  ck_assert_int_eq(load("[broker]\n\ngrant_key_file = %s\n", keyf),
                   GP_EINVAL);
  expect_error(3, "grant_key_file: ");
  write_file(keyf, "short\n", 0600);
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s\n", keyf), GP_EINVAL);
  expect_error(2, "grant_key_file: ");
  ck_assert_int_eq(load("[broker]\ngrant_key_file = %s.none\n", keyf),
                   GP_EINVAL);
  expect_error(2, "grant_key_file: ");
  /* No such config file. */
  brk_config_free(&cfg);
  ck_assert_int_eq(brk_config_load(&cfg, "/nonexistent/broker.conf", why,
                                   sizeof(why)), GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(why, "/nonexistent/broker.conf: "));
}
END_TEST

START_TEST(test_broker_config_sizes) {
  uint64_t v;

  ck_assert_int_eq(gp__parse_size("0", &v), 0);
  ck_assert_uint_eq(v, 0);
  ck_assert_int_eq(gp__parse_size("1K", &v), 0);
  ck_assert_uint_eq(v, 1024);
  ck_assert_int_eq(gp__parse_size("3GiB", &v), 0);
  ck_assert_uint_eq(v, 3ull << 30);
  ck_assert_int_eq(gp__parse_size("2tB", &v), 0);
  ck_assert_uint_eq(v, 2ull << 40);
  ck_assert_int_eq(gp__parse_size("100B", &v), 0);
  ck_assert_uint_eq(v, 100);
  ck_assert_int_eq(gp__parse_size("", &v), GP_EINVAL);
  ck_assert_int_eq(gp__parse_size("-1", &v), GP_EINVAL);
  ck_assert_int_eq(gp__parse_size("1X", &v), GP_EINVAL);
  ck_assert_int_eq(gp__parse_size("1 G", &v), GP_EINVAL);
  ck_assert_int_eq(gp__parse_size("16777216T", &v), GP_EINVAL); /* 2^64 */
  ck_assert_int_eq(gp__parse_size("99999999999999999999", &v), GP_EINVAL);
}
END_TEST

static Suite *config_suite(void) {
  Suite *s = suite_create("broker_config");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_broker_config_good);
  tcase_add_test(tc, test_broker_config_defaults_and_upper_case_hash);
  tcase_add_test(tc, test_broker_config_bad_lines);
  tcase_add_test(tc, test_broker_config_long_line);
  tcase_add_test(tc, test_broker_config_missing_and_conflicting);
  tcase_add_test(tc, test_broker_config_bad_key_file);
  tcase_add_test(tc, test_broker_config_sizes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(config_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
