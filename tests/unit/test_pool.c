/* Unit tests of server/pool.c: --name and --label syntax, tenant names,
 * and the strict parser of the lines a worker writes to its supervisor. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "gpupool/errors.h"
#include "pool.h"

#define UUID "GPU-23d1a775-bf03-83f4-aed8-2b294173328f"

START_TEST(test_pool_name) {
  char long_name[80];

  ck_assert(gp__pool_name_ok("pool01"));
  ck_assert(gp__pool_name_ok("a"));
  ck_assert(gp__pool_name_ok("gpu-7.rack_2"));
  memset(long_name, 'x', 63);
  long_name[63] = '\0';
  ck_assert(gp__pool_name_ok(long_name));
  long_name[63] = 'x';
  long_name[64] = '\0';
  ck_assert(!gp__pool_name_ok(long_name));
  ck_assert(!gp__pool_name_ok(""));
  ck_assert(!gp__pool_name_ok(NULL));
  ck_assert(!gp__pool_name_ok("pool 01"));
  ck_assert(!gp__pool_name_ok("pool/01"));
  ck_assert(!gp__pool_name_ok("p\xc3\xa9"));
}
END_TEST

START_TEST(test_pool_label) {
  char k[GP_LABEL_KEY_MAX + 1], v[GP_LABEL_VALUE_MAX + 1], s[300];
  const char *why = NULL;

  ck_assert_int_eq(gp__label_parse("zone=eu-1", k, v, &why), 0);
  ck_assert_str_eq(k, "zone");
  ck_assert_str_eq(v, "eu-1");
  ck_assert_int_eq(gp__label_parse("gpu.arch/x=sm_90:a@b+c", k, v, &why), 0);
  ck_assert_str_eq(k, "gpu.arch/x");
  ck_assert_str_eq(v, "sm_90:a@b+c");
  ck_assert_int_eq(gp__label_parse("empty=", k, v, &why), 0);
  ck_assert_str_eq(v, "");
  /* The first '=' splits: the value may not hold another. */
  ck_assert_int_eq(gp__label_parse("a=b=c", k, v, &why), GP_EINVAL);
  ck_assert_int_eq(gp__label_parse("novalue", k, v, &why), GP_EINVAL);
  ck_assert_str_eq(why, "expected KEY=VALUE");
  ck_assert_int_eq(gp__label_parse("=v", k, v, &why), GP_EINVAL);
  ck_assert_int_eq(gp__label_parse("-k=v", k, v, &why), GP_EINVAL);
  ck_assert_int_eq(gp__label_parse("k k=v", k, v, &why), GP_EINVAL);
  ck_assert_int_eq(gp__label_parse("k=v v", k, v, &why), GP_EINVAL);
  ck_assert_int_eq(gp__label_parse("k=v\n", k, v, &why), GP_EINVAL);
  memset(s, 'k', 64);
  strcpy(s + 64, "=v");
  ck_assert_int_eq(gp__label_parse(s, k, v, &why), GP_EINVAL);
  memset(s, 'k', 63);
  strcpy(s + 63, "=v");
  ck_assert_int_eq(gp__label_parse(s, k, v, &why), 0);
  strcpy(s, "k=");
  memset(s + 2, 'v', 128);
  s[130] = '\0';
  ck_assert_int_eq(gp__label_parse(s, k, v, &why), GP_EINVAL);
  s[129] = '\0';
  ck_assert_int_eq(gp__label_parse(s, k, v, &why), 0);
  ck_assert_uint_eq(strlen(v), 127);
}
END_TEST

START_TEST(test_pool_tenant_clean) {
  char out[GP_TENANT_MAX + 1], in[100];

  gp__tenant_clean("alice", out);
  ck_assert_str_eq(out, "alice");
  gp__tenant_clean("bob smith\n", out);
  ck_assert_str_eq(out, "bob_smith_");
  gp__tenant_clean("", out);
  ck_assert_str_eq(out, "-");
  gp__tenant_clean(NULL, out);
  ck_assert_str_eq(out, "-");
  memset(in, 'a', 99);
  in[99] = '\0';
  gp__tenant_clean(in, out);
  ck_assert_uint_eq(strlen(out), GP_TENANT_MAX);
}
END_TEST

START_TEST(test_pool_report_good) {
  struct gp_report r;

  ck_assert_int_eq(gp__report_parse("claim 00000000deadbeef 1700000000", &r),
                   0);
  ck_assert_int_eq(r.kind, GP_REPORT_CLAIM);
  ck_assert_uint_eq(r.session_id, 0xdeadbeefu);
  ck_assert_uint_eq(r.expires_unix, 1700000000u);

  ck_assert_int_eq(gp__report_parse("admitted ffffffffffffffff alice@x "
                                    UUID " 67108864 1700000060", &r), 0);
  ck_assert_int_eq(r.kind, GP_REPORT_ADMITTED);
  ck_assert_uint_eq(r.session_id, UINT64_MAX);
  ck_assert_str_eq(r.tenant, "alice@x");
  ck_assert_str_eq(r.gpu_uuid, UUID);
  ck_assert_uint_eq(r.limit, 67108864u);
  ck_assert_uint_eq(r.expires_unix, 1700000060u);
  ck_assert_int_eq(gp__report_parse("admitted 0000000000000001 t "
                                    "MIG-23d1a775-bf03-83f4-aed8-2b294173328f"
                                    " 0 1", &r), 0);

  ck_assert_int_eq(gp__report_parse("used 0 0", &r), 0);
  ck_assert_int_eq(r.kind, GP_REPORT_USED);
  ck_assert_int_eq(gp__report_parse("used 18446744073709551615 12", &r), 0);
  ck_assert_uint_eq(r.used, UINT64_MAX);
  ck_assert_uint_eq(r.idle_ms, 12);
}
END_TEST

START_TEST(test_pool_report_bad) {
  static const char *const bad[] = {
    "",
    "used",
    "used 1",
    "used 1 2 ",
    "used 1 2 3",
    "used 01 2",
    "used -1 2",
    "used 18446744073709551616 0",   /* overflow */
    "used  1 2",
    "USED 1 2",
    "claim deadbeef 1",               /* not 16 digits */
    "claim 00000000DEADBEEF 1",       /* upper case */
    "claim 00000000deadbeef",
    "claim 00000000deadbeefx 1",
    "claim 00000000deadbeef 1 ",
    "admitted 0000000000000001 alice " UUID " 1",
    "admitted 0000000000000001 al ice " UUID " 1 2",
    "admitted 0000000000000001  " UUID " 1 2",
    "admitted 0000000000000001 alice GPU-23d1a775 1 2",
    "admitted 0000000000000001 alice XPU-23d1a775-bf03-83f4-aed8-2b294173328f"
    " 1 2",
    "admitted 0000000000000001 alice GPU-23d1a775-bf03-83f4-aed8-2b29417332zz"
    " 1 2",
    "admitted 0000000000000001 alice\t " UUID " 1 2",
    "hello",
  };
  struct gp_report r;
  char longline[400];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(gp__report_parse(bad[i], &r) == GP_EPROTO, "accepted '%s'",
                  bad[i]);
  /* A tenant over 63 characters. */
  snprintf(longline, sizeof(longline), "admitted 0000000000000001 %0*d " UUID
           " 1 2", 64, 0);
  ck_assert_int_eq(gp__report_parse(longline, &r), GP_EPROTO);
  snprintf(longline, sizeof(longline), "admitted 0000000000000001 %0*d " UUID
           " 1 2", 63, 0);
  ck_assert_int_eq(gp__report_parse(longline, &r), 0);
  /* A line over the limit. */
  memset(longline, '1', sizeof(longline) - 1);
  memcpy(longline, "used ", 5);
  longline[sizeof(longline) - 1] = '\0';
  ck_assert_int_eq(gp__report_parse(longline, &r), GP_EPROTO);
}
END_TEST

static Suite *pool_suite(void) {
  Suite *s = suite_create("pool");
  TCase *tc = tcase_create("pool");
  tcase_add_test(tc, test_pool_name);
  tcase_add_test(tc, test_pool_label);
  tcase_add_test(tc, test_pool_tenant_clean);
  tcase_add_test(tc, test_pool_report_good);
  tcase_add_test(tc, test_pool_report_bad);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pool_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
