/* Unit tests of compressed copy payloads (protocol/zchunk.c): round trips,
 * the sampling decision, and the bounds every hostile payload meets. Also
 * the wire's busy-poll window (protocol/wire.c), over a socketpair. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "gpupool/errors.h"
#include "wire.h"
#include "zchunk.h"

#define N (1u << 20)

static uint8_t *raw, *out, *z;
static size_t zcap;

static void setup(void) {
  raw = malloc(N);
  out = malloc(N + 64);
  zcap = gp_z_bound(2 * N) + 1024;
  z = malloc(zcap);
  ck_assert_ptr_nonnull(raw);
  ck_assert_ptr_nonnull(out);
  ck_assert_ptr_nonnull(z);
}

static void teardown(void) {
  free(raw);
  free(out);
  free(z);
}

static void fill_random(uint8_t *p, size_t n, uint64_t x) {
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)(x >> 24);
  }
}

START_TEST(test_zchunk_modes) {
  enum gp_z_mode m;
  ck_assert_int_eq(gp_z_parse_mode("auto", &m), 0);
  ck_assert_int_eq(m, GP_Z_AUTO);
  ck_assert_int_eq(gp_z_parse_mode("on", &m), 0);
  ck_assert_int_eq(m, GP_Z_ON);
  ck_assert_int_eq(gp_z_parse_mode("off", &m), 0);
  ck_assert_int_eq(m, GP_Z_OFF);
  ck_assert_int_eq(gp_z_parse_mode("yes", &m), -1);
  ck_assert_int_eq(gp_z_parse_mode("", &m), -1);
  ck_assert_int_eq(gp_z_parse_mode(NULL, &m), -1);
  ck_assert_str_eq(gp_z_mode_name(GP_Z_ON), "on");
}
END_TEST

START_TEST(test_zchunk_round_trip_every_kind) {
  struct gp_z zc = {0};
  for (int kind = 0; kind < 3; kind++) {
    if (kind == 0) memset(raw, 0, N);
    else fill_random(raw, N, 7);
    if (kind == 1)
      for (size_t at = 0; at < N; at += 8192) memset(raw + at, 0, 4096);
    size_t sizes[] = {1, 4095, 4096, 65537, N};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      size_t c = gp_z_compress(&zc, z, zcap, raw, n);
      ck_assert_uint_gt(c, 0);
      ck_assert_uint_le(c, gp_z_bound(n));
      memset(out, 0xA5, N + 64);
      ck_assert_int_eq(gp_z_decompress(&zc, out, n, z, c), 0);
      ck_assert_int_eq(memcmp(out, raw, n), 0);
      /* Not a byte past the destination. */
      for (size_t k = n; k < n + 64; k++) ck_assert_uint_eq(out[k], 0xA5);
    }
  }
  gp_z_free(&zc);
}
END_TEST

START_TEST(test_zchunk_sampling) {
  struct gp_z zc = {0};
  zc.link_mbps = 1000; /* a slow link: compression pays whenever it shrinks */
  memset(raw, 0, N);
  ck_assert(gp_z_worth(&zc, GP_Z_AUTO, raw, N));
  ck_assert(!gp_z_worth(&zc, GP_Z_OFF, raw, N));
  fill_random(raw, N, 3);
  ck_assert(!gp_z_worth(&zc, GP_Z_AUTO, raw, N));
  ck_assert(gp_z_worth(&zc, GP_Z_ON, raw, N));
  /* Too small to be worth a sample. */
  memset(raw, 0, 100);
  ck_assert(!gp_z_worth(&zc, GP_Z_AUTO, raw, 100));
  gp_z_free(&zc);
}
END_TEST

START_TEST(test_zchunk_hostile_payloads) {
  struct gp_z zc = {0};
  uint8_t *big = calloc(1, 2 * N);
  ck_assert_ptr_nonnull(big);
  memset(out, 0x5A, N + 64);
  /* Content larger than declared. */
  size_t c = ZSTD_compress(z, zcap, big, 2 * N, 1);
  ck_assert(!ZSTD_isError(c));
  ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, c), GP_EPROTO);
  /* Smaller than declared. */
  c = ZSTD_compress(z, zcap, big, 100, 1);
  ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, c), GP_EPROTO);
  /* No content size in the header. */
  {
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    c = ZSTD_compress2(cc, z, zcap, big, 4096);
    ck_assert(!ZSTD_isError(c));
    ZSTD_freeCCtx(cc);
    ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, c), GP_EPROTO);
  }
  /* Two frames. */
  c = ZSTD_compress(z, zcap, big, 2048, 1);
  memcpy(z + c, z, c);
  ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, 2 * c), GP_EPROTO);
  /* Cut short, garbage, empty. */
  fill_random(raw, 65536, 5);
  c = ZSTD_compress(z, zcap, raw, 65536, 1);
  ck_assert_int_eq(gp_z_decompress(&zc, out, 65536, z, c / 2), GP_EPROTO);
  fill_random(z, 5000, 9);
  ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, 5000), GP_EPROTO);
  ck_assert_int_eq(gp_z_decompress(&zc, out, 4096, z, 0), GP_EPROTO);
  /* Nothing was written past the largest size any of them declared. */
  for (size_t k = 65536; k < N + 64; k++) ck_assert_uint_eq(out[k], 0x5A);
  free(big);
  gp_z_free(&zc);
}
END_TEST

START_TEST(test_wire_spin_window) {
  int sv[2];
  struct gp_wire a, b;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(gp_wire_init_fd(&a, sv[0]), 0);
  ck_assert_int_eq(gp_wire_init_fd(&b, sv[1]), 0);
  unsigned set = gp_wire_spin_setup(&b, 20);
  /* On one usable CPU the window is off; otherwise it is what was asked. */
  ck_assert(set == 0 || set == 20);
  if (set == 20) {
    /* Nothing comes: each spin runs out, and the window shrinks to off
     * (unless the machine is crowded, when nothing spins at all). */
    for (int i = 0; i < 20; i++) ck_assert(!gp_wire_spin_wait(&b));
    if (!b.spin.crowded) {
      ck_assert_uint_lt(b.spin.cur_us, 20);
      ck_assert_uint_gt(b.spin.spins, 0);
    }
    ck_assert_uint_eq(b.spin.hits, 0);
  }
  /* Data there: true at once with a window; with none, nothing is looked
   * at but the read buffer (the caller then blocks in its read). */
  ck_assert_int_eq(write(sv[0], "x", 1), 1);
  if (set == 20) ck_assert(gp_wire_spin_wait(&b));
  ck_assert_uint_eq(gp_wire_spin_setup(&b, 0), 0);
  ck_assert(!gp_wire_spin_wait(&b));
  gp_wire_free(&a);
  gp_wire_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("zchunk");
  TCase *tc = tcase_create("zchunk");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_zchunk_modes);
  tcase_add_test(tc, test_zchunk_round_trip_every_kind);
  tcase_add_test(tc, test_zchunk_sampling);
  tcase_add_test(tc, test_zchunk_hostile_payloads);
  tcase_add_test(tc, test_wire_spin_window);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
