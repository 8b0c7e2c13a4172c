/* Unit tests of the frame codec (protocol/frame.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "gpupool/errors.h"

static struct gp_frame_header sample_header(void) {
  struct gp_frame_header h = {
    .version = GP_FRAME_VERSION,
    .type = 25,
    .flags = GP_FRAME_F_NOREPLY,
    .request_id = 0xA1B2C3D4u,
    .msg_len = 17,
    .payload_len = 4097,
  };
  return h;
}

/* Encodes a frame with |msg_len| bytes of 'm' and |payload_len| of 'p'. */
static uint8_t *make_frame(uint32_t msg_len, uint32_t payload_len,
                           uint32_t id, size_t *len) {
  struct gp_frame_header h = {GP_FRAME_VERSION, 26, 0, id, msg_len,
                              payload_len};
  *len = GP_FRAME_HEADER_SIZE + msg_len + payload_len;
  uint8_t *b = malloc(*len);
  gp_frame_header_encode(&h, b);
  memset(b + GP_FRAME_HEADER_SIZE, 'm', msg_len);
  memset(b + GP_FRAME_HEADER_SIZE + msg_len, 'p', payload_len);
  return b;
}

START_TEST(test_frame_header_round_trip) {
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(memcmp(buf, "GPPL", 4), 0);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), 0);
  ck_assert_uint_eq(d.version, h.version);
  ck_assert_uint_eq(d.type, h.type);
  ck_assert_uint_eq(d.flags, h.flags);
  ck_assert_uint_eq(d.request_id, h.request_id);
  ck_assert_uint_eq(d.msg_len, h.msg_len);
  ck_assert_uint_eq(d.payload_len, h.payload_len);
}
END_TEST

START_TEST(test_frame_header_little_endian) {
  struct gp_frame_header h = sample_header();
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  gp_frame_header_encode(&h, buf);
  ck_assert_uint_eq(buf[12], 0xD4);
  ck_assert_uint_eq(buf[15], 0xA1);
  ck_assert_uint_eq(buf[20], 0x01); /* 4097 = 0x1001 */
  ck_assert_uint_eq(buf[21], 0x10);
  ck_assert_uint_eq(buf[10], 0);
  ck_assert_uint_eq(buf[11], 0);
}
END_TEST

START_TEST(test_frame_header_rejects_bad_magic) {
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  gp_frame_header_encode(&h, buf);
  buf[0] ^= 0x20;
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EPROTO);
}
END_TEST

START_TEST(test_frame_header_rejects_reserved_bits) {
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  gp_frame_header_encode(&h, buf);
  buf[11] = 1;
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EPROTO);
}
END_TEST

START_TEST(test_frame_header_rejects_unknown_flags) {
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  h.flags = 0x0100;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EPROTO);
  h.flags = 0x0008; /* the first bit not defined */
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EPROTO);
  h.flags = GP_FRAME_F_NOREPLY | GP_FRAME_F_REPLY;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EPROTO);
}
END_TEST

START_TEST(test_frame_header_rejects_other_version) {
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  h.version = GP_FRAME_VERSION + 1;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EVERSION);
  h.version = 0;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_EVERSION);
}
END_TEST

START_TEST(test_frame_header_length_limits) {
  struct gp_frame_limits lim = {.max_msg = 100, .max_payload = 1000};
  struct gp_frame_header h = sample_header(), d;
  uint8_t buf[GP_FRAME_HEADER_SIZE];

  h.msg_len = 100;
  h.payload_len = 1000;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, &lim, &d), 0);

  h.msg_len = 101;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, &lim, &d), GP_ETOOBIG);

  h.msg_len = 100;
  h.payload_len = 1001;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, &lim, &d), GP_ETOOBIG);

  h.msg_len = UINT32_MAX;
  h.payload_len = UINT32_MAX;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_ETOOBIG);

  /* The defaults. */
  h.msg_len = GP_FRAME_DEFAULT_MAX_MSG;
  h.payload_len = GP_FRAME_DEFAULT_MAX_PAYLOAD;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), 0);
  h.payload_len++;
  gp_frame_header_encode(&h, buf);
  ck_assert_int_eq(gp_frame_header_decode(buf, NULL, &d), GP_ETOOBIG);
}
END_TEST

START_TEST(test_frame_parser_whole_frame) {
  size_t len, used;
  uint8_t *b = make_frame(10, 20, 7, &len);
  struct gp_frame_parser p;
  struct gp_frame f;
  gp_frame_parser_init(&p, NULL);
  ck_assert_int_eq(gp_frame_feed(&p, b, len, &used, &f), 1);
  ck_assert_uint_eq(used, len);
  ck_assert_uint_eq(f.hdr.request_id, 7);
  ck_assert_uint_eq(f.hdr.msg_len, 10);
  ck_assert_uint_eq(f.hdr.payload_len, 20);
  ck_assert_mem_eq(f.msg, "mmmmmmmmmm", 10);
  ck_assert_uint_eq(f.payload[0], 'p');
  ck_assert_uint_eq(f.payload[19], 'p');
  gp_frame_parser_free(&p);
  free(b);
}
END_TEST

START_TEST(test_frame_parser_byte_at_a_time) {
  size_t len, used;
  uint8_t *b = make_frame(3, 5000, 9, &len);
  struct gp_frame_parser p;
  struct gp_frame f;
  int frames = 0;
  gp_frame_parser_init(&p, NULL);
  for (size_t i = 0; i < len; i++) {
    int rc = gp_frame_feed(&p, b + i, 1, &used, &f);
    ck_assert_int_ge(rc, 0);
    ck_assert_uint_eq(used, 1);
    if (rc == 1) {
      frames++;
      ck_assert_uint_eq(i, len - 1);
      ck_assert_uint_eq(f.hdr.payload_len, 5000);
      ck_assert_uint_eq(f.payload[4999], 'p');
    }
  }
  ck_assert_int_eq(frames, 1);
  gp_frame_parser_free(&p);
  free(b);
}
END_TEST

START_TEST(test_frame_parser_back_to_back_frames) {
  size_t l1, l2, l3, used;
  uint8_t *a = make_frame(0, 0, 1, &l1);
  uint8_t *b = make_frame(4, 0, 2, &l2);
  uint8_t *c = make_frame(0, 9, 3, &l3);
  size_t len = l1 + l2 + l3;
  uint8_t *all = malloc(len);
  memcpy(all, a, l1);
  memcpy(all + l1, b, l2);
  memcpy(all + l1 + l2, c, l3);

  struct gp_frame_parser p;
  struct gp_frame f;
  gp_frame_parser_init(&p, NULL);
  size_t off = 0;
  uint32_t ids[3];
  int n = 0;
  while (off < len) {
    int rc = gp_frame_feed(&p, all + off, len - off, &used, &f);
    ck_assert_int_ge(rc, 0);
    off += used;
    if (rc == 1)
      ids[n++] = f.hdr.request_id;
  }
  ck_assert_int_eq(n, 3);
  ck_assert_uint_eq(ids[0], 1);
  ck_assert_uint_eq(ids[1], 2);
  ck_assert_uint_eq(ids[2], 3);
  gp_frame_parser_free(&p);
  free(a);
  free(b);
  free(c);
  free(all);
}
END_TEST

START_TEST(test_frame_parser_truncated_frame_waits) {
  size_t len, used;
  uint8_t *b = make_frame(8, 8, 1, &len);
  struct gp_frame_parser p;
  struct gp_frame f;
  gp_frame_parser_init(&p, NULL);
  /* Every proper prefix asks for more and never yields a frame. */
  ck_assert_int_eq(gp_frame_feed(&p, b, len - 1, &used, &f), 0);
  ck_assert_uint_eq(used, len - 1);
  ck_assert_int_eq(gp_frame_feed(&p, b + len - 1, 1, &used, &f), 1);
  gp_frame_parser_free(&p);

  gp_frame_parser_init(&p, NULL);
  ck_assert_int_eq(gp_frame_feed(&p, b, GP_FRAME_HEADER_SIZE - 1, &used, &f),
                   0);
  ck_assert_int_eq(gp_frame_feed(&p, b, 0, &used, &f), 0);
  ck_assert_uint_eq(used, 0);
  gp_frame_parser_free(&p);
  free(b);
}
END_TEST

START_TEST(test_frame_parser_corrupt_header_is_sticky) {
  size_t len, used;
  uint8_t *b = make_frame(1, 1, 1, &len);
  b[2] = 'X';
  struct gp_frame_parser p;
  struct gp_frame f;
  gp_frame_parser_init(&p, NULL);
  ck_assert_int_eq(gp_frame_feed(&p, b, len, &used, &f), GP_EPROTO);
  ck_assert_uint_eq(used, GP_FRAME_HEADER_SIZE);
  /* Good bytes after a bad header do not resynchronise the stream. */
  b[2] = 'P';
  ck_assert_int_eq(gp_frame_feed(&p, b, len, &used, &f), GP_EPROTO);
  ck_assert_uint_eq(used, 0);
  gp_frame_parser_free(&p);
  free(b);
}
END_TEST

static int alloc_calls;
static int alloc_fail_at;
static void *failing_realloc(void *ptr, size_t size) {
  if (alloc_calls++ == alloc_fail_at)
    return NULL;
  return realloc(ptr, size);
}

START_TEST(test_frame_parser_oversize_allocates_nothing) {
  struct gp_frame_limits lim = {.max_msg = 64, .max_payload = 64};
  struct gp_frame_header h = {GP_FRAME_VERSION, 1, 0, 1, 65, 0};
  uint8_t buf[GP_FRAME_HEADER_SIZE];
  size_t used;
  struct gp_frame f;
  struct gp_frame_parser p;
  gp_frame_header_encode(&h, buf);
  gp_frame_parser_init(&p, &lim);
  alloc_calls = 0;
  alloc_fail_at = -1;
  p.realloc_fn = failing_realloc;
  ck_assert_int_eq(gp_frame_feed(&p, buf, sizeof(buf), &used, &f), GP_ETOOBIG);
  ck_assert_int_eq(alloc_calls, 0);
  ck_assert_ptr_null(p.body);
  gp_frame_parser_free(&p);
}
END_TEST

START_TEST(test_frame_parser_failing_allocations) {
  /* Fail the i-th allocation for every i until a run succeeds: each failure
   * is a clean GP_ENOMEM and nothing leaks (checked under ASan). */
  size_t l1, l2, used;
  uint8_t *a = make_frame(10, 100, 1, &l1);
  uint8_t *b = make_frame(10, 100000, 2, &l2);
  for (alloc_fail_at = 0;; alloc_fail_at++) {
    struct gp_frame_parser p;
    struct gp_frame f;
    int rc;
    gp_frame_parser_init(&p, NULL);
    p.realloc_fn = failing_realloc;
    alloc_calls = 0;
    rc = gp_frame_feed(&p, a, l1, &used, &f);
    if (rc == 1)
      rc = gp_frame_feed(&p, b, l2, &used, &f);
    gp_frame_parser_free(&p);
    if (rc == 1) {
      ck_assert_int_eq(f.hdr.request_id, 2);
      break;
    }
    ck_assert_int_eq(rc, GP_ENOMEM);
    ck_assert_int_le(alloc_fail_at, 10);
  }
  ck_assert_int_eq(alloc_fail_at, 2);
  free(a);
  free(b);
}
END_TEST

START_TEST(test_frame_parser_random_garbage) {
  /* Random bytes either fail cleanly or wait for more; never crash. */
  srand(1234);
  for (int round = 0; round < 2000; round++) {
    uint8_t buf[256];
    size_t n = (size_t)(rand() % (int)sizeof(buf)), used;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rand();
    if (round % 2 == 0 && n >= 4)
      memcpy(buf, "GPPL", 4);
    struct gp_frame_parser p;
    struct gp_frame f;
    gp_frame_parser_init(&p, NULL);
    size_t off = 0;
    for (int guard = 0; off < n && guard < 1000; guard++) {
      int rc = gp_frame_feed(&p, buf + off, n - off, &used, &f);
      off += used;
      if (rc < 0) {
        ck_assert(GP_IS_FATAL(rc) || rc == GP_ENOMEM);
        break;
      }
    }
    gp_frame_parser_free(&p);
  }
}
END_TEST

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("codec");
  tcase_add_test(tc, test_frame_header_round_trip);
  tcase_add_test(tc, test_frame_header_little_endian);
  tcase_add_test(tc, test_frame_header_rejects_bad_magic);
  tcase_add_test(tc, test_frame_header_rejects_reserved_bits);
  tcase_add_test(tc, test_frame_header_rejects_unknown_flags);
  tcase_add_test(tc, test_frame_header_rejects_other_version);
  tcase_add_test(tc, test_frame_header_length_limits);
  tcase_add_test(tc, test_frame_parser_whole_frame);
  tcase_add_test(tc, test_frame_parser_byte_at_a_time);
  tcase_add_test(tc, test_frame_parser_back_to_back_frames);
  tcase_add_test(tc, test_frame_parser_truncated_frame_waits);
  tcase_add_test(tc, test_frame_parser_corrupt_header_is_sticky);
  tcase_add_test(tc, test_frame_parser_oversize_allocates_nothing);
  tcase_add_test(tc, test_frame_parser_failing_allocations);
  tcase_add_test(tc, test_frame_parser_random_garbage);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(frame_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
