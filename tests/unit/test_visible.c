/* Unit tests of client/visible.c: CUDA_VISIBLE_DEVICES applied to a device
 * list, as NVIDIA's driver applies it (ordinals, GPU-/MIG- UUID prefixes,
 * the first invalid entry ending the list, duplicates emptying it). */
#include <check.h>
#include <string.h>

#include "client.h"

/* Three devices: 11111111-..., 11112222-..., abcdef01-... */
static const uint8_t uuids[3][16] = {
    {0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55,
     0x55, 0x55, 0x55, 0x55},
    {0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55,
     0x55, 0x55, 0x55, 0x56},
    {0xab, 0xcd, 0xef, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
     0x00, 0x00, 0x00, 0x02},
};

static int vis(const char *spec, int *map) {
  memset(map, 0xff, 3 * sizeof(*map));
  return gp__visible_devices(spec, uuids, 3, map);
}

START_TEST(test_visible_ordinals) {
  int m[3];

  ck_assert_int_eq(vis(NULL, m), 3);
  ck_assert(m[0] == 0 && m[1] == 1 && m[2] == 2);
  ck_assert_int_eq(vis("2,0", m), 2);
  ck_assert(m[0] == 2 && m[1] == 0);
  /* 0,2,-1,1: the invalid -1 ends the list. */
  ck_assert_int_eq(vis("0,2,-1,1", m), 2);
  ck_assert(m[0] == 0 && m[1] == 2);
  ck_assert_int_eq(vis("1,3,0", m), 1);
  ck_assert_int_eq(m[0], 1);
  ck_assert_int_eq(vis("", m), 0);
  ck_assert_int_eq(vis("-1", m), 0);
  ck_assert_int_eq(vis("3", m), 0);
  ck_assert_int_eq(vis(",0", m), 0);
  ck_assert_int_eq(vis("x,0", m), 0);
  /* Read as strtoul would: blanks first, anything after the digits
   * ignored. */
  ck_assert_int_eq(vis(" 1,2gpu", m), 2);
  ck_assert(m[0] == 1 && m[1] == 2);
  ck_assert_int_eq(vis("99999999999999999999", m), 0);
  /* A device twice: nothing is visible. */
  ck_assert_int_eq(vis("0,1,0", m), 0);
  ck_assert_int_eq(vis("2,GPU-abcdef01", m), 0);
}
END_TEST

START_TEST(test_visible_uuids) {
  int m[3];

  ck_assert_int_eq(vis("GPU-abcdef01-0000-0000-0000-000000000002", m), 1);
  ck_assert_int_eq(m[0], 2);
  ck_assert_int_eq(vis("GPU-ABCDEF", m), 1);
  ck_assert_int_eq(m[0], 2);
  /* A prefix must name one device: 1111 names two, 11112 one. */
  ck_assert_int_eq(vis("GPU-1111", m), 0);
  ck_assert_int_eq(vis("GPU-11112,GPU-11111", m), 2);
  ck_assert(m[0] == 1 && m[1] == 0);
  ck_assert_int_eq(vis("MIG-abc,0", m), 2);
  ck_assert(m[0] == 2 && m[1] == 0);
  ck_assert_int_eq(vis("0,GPU-ffff,1", m), 1);
  ck_assert_int_eq(vis("GPU-abcdef01-0000-0000-0000-0000000000020", m), 0);
  ck_assert_int_eq(vis("GPU-abcdef010000", m), 0); /* dashes count */
  ck_assert_int_eq(vis("gpu-abcdef01", m), 0);
  ck_assert_int_eq(vis("abcdef01", m), 0);
}
END_TEST

static Suite *visible_suite(void) {
  Suite *s = suite_create("visible");
  TCase *tc = tcase_create("visible");
  tcase_add_test(tc, test_visible_ordinals);
  tcase_add_test(tc, test_visible_uuids);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(visible_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
