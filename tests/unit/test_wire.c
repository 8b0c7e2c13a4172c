/* Unit tests of the buffered frame connection (protocol/wire.c), over a
 * real socketpair. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "msg.h"
#include "wire.h"

static int sv[2];
static struct gp_wire a, b; /* a sends, b receives */

static void setup(void) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(gp_wire_init_fd(&a, sv[0]), 0);
  ck_assert_int_eq(gp_wire_init_fd(&b, sv[1]), 0);
}

static void teardown(void) {
  gp_wire_free(&a);
  gp_wire_free(&b);
}

START_TEST(test_wire_message_round_trip) {
  Gpupool__MemAlloc m = GPUPOOL__MEM_ALLOC__INIT;
  m.ctx = 42;
  m.size = 1ull << 33;
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEM_ALLOC, 0, 5, &m.base, NULL, 0),
                   0);
  struct gp_frame_header h;
  ProtobufCMessage *out;
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_uint_eq(h.type, GP_MSG_MEM_ALLOC);
  ck_assert_uint_eq(h.request_id, 5);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), 0);
  Gpupool__MemAlloc *u = (Gpupool__MemAlloc *)out;
  ck_assert_uint_eq(u->ctx, 42);
  ck_assert_uint_eq(u->size, 1ull << 33);
  protobuf_c_message_free_unpacked(out, NULL);
}
END_TEST

START_TEST(test_wire_noreply_frames_are_coalesced) {
  Gpupool__Memset m = GPUPOOL__MEMSET__INIT;
  m.dst = 0x1000;
  m.count = 64;
  m.element_size = 1;
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEMSET, GP_FRAME_F_NOREPLY,
                                  (uint32_t)i, &m.base, NULL, 0), 0);
  ck_assert_uint_eq(a.writes, 0);
  ck_assert(!gp_wire_readable(&b));
  /* A frame that wants a reply flushes everything before it, in one write. */
  Gpupool__CtxSynchronize s = GPUPOOL__CTX_SYNCHRONIZE__INIT;
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_CTX_SYNCHRONIZE, 0, 100, &s.base,
                                NULL, 0), 0);
  ck_assert_uint_eq(a.writes, 1);
  for (int i = 0; i <= 100; i++) {
    struct gp_frame_header h;
    ProtobufCMessage *out;
    ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
    ck_assert_uint_eq(h.request_id, (uint32_t)i);
    ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), 0);
    protobuf_c_message_free_unpacked(out, NULL);
  }
}
END_TEST

START_TEST(test_wire_receive_flushes_pending_sends) {
  Gpupool__MemFree m = GPUPOOL__MEM_FREE__INIT;
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEM_FREE, GP_FRAME_F_NOREPLY, 1,
                                &m.base, NULL, 0), 0);
  ck_assert_uint_eq(a.writes, 0);
  /* |a| waiting for a frame must first write what it queued, or both ends
   * would wait forever. Nothing comes back, so use a short timeout. */
  a.timeout_ms = 50;
  struct gp_frame_header h;
  ck_assert_int_eq(gp_wire_recv_header(&a, &h), GP_ETIMEDOUT);
  ck_assert_uint_eq(a.writes, 1);
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_uint_eq(h.type, GP_MSG_MEM_FREE);
}
END_TEST

struct big_send {
  struct gp_wire *w;
  uint8_t *data;
  size_t len;
  int rc;
};

static void *big_sender(void *arg) {
  struct big_send *s = arg;
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  size_t off = 0;
  s->rc = 0;
  while (off < s->len && s->rc == 0) {
    size_t n = s->len - off;
    if (n > GP_COPY_CHUNK)
      n = GP_COPY_CHUNK;
    m.size = n;
    s->rc = gp_wire_send(s->w, GP_MSG_MEMCPY_HTOD, GP_FRAME_F_NOREPLY, 1,
                         &m.base, s->data + off, n);
    off += n;
  }
  if (s->rc == 0)
    s->rc = gp_wire_flush(s->w);
  return NULL;
}

START_TEST(test_wire_large_payloads_byte_exact) {
  size_t len = 40u << 20; /* three chunks, the last partial */
  uint8_t *src = malloc(len), *dst = malloc(len);
  for (size_t i = 0; i < len; i++)
    src[i] = (uint8_t)(i * 2654435761u >> 13);
  struct big_send s = {&a, src, len, -1};
  pthread_t t;
  pthread_create(&t, NULL, big_sender, &s);
  size_t off = 0;
  while (off < len) {
    struct gp_frame_header h;
    ProtobufCMessage *out;
    ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
    ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), 0);
    ck_assert_uint_eq(((Gpupool__MemcpyHtoD *)out)->size, h.payload_len);
    protobuf_c_message_free_unpacked(out, NULL);
    ck_assert_int_eq(gp_wire_recv_payload(&b, dst + off, h.payload_len), 0);
    off += h.payload_len;
  }
  pthread_join(t, NULL);
  ck_assert_int_eq(s.rc, 0);
  ck_assert_uint_eq(off, len);
  ck_assert_int_eq(memcmp(src, dst, len), 0);
  free(src);
  free(dst);
}
END_TEST

START_TEST(test_wire_small_payload_and_discard) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  const char *p1 = "first payload", *p2 = "second";
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEMCPY_HTOD, GP_FRAME_F_NOREPLY, 1,
                                &m.base, p1, strlen(p1)), 0);
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEMCPY_HTOD, 0, 2, &m.base, p2,
                                strlen(p2)), 0);
  struct gp_frame_header h;
  ProtobufCMessage *out;
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), 0);
  protobuf_c_message_free_unpacked(out, NULL);
  ck_assert_int_eq(gp_wire_discard(&b, h.payload_len), 0);
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_uint_eq(h.request_id, 2);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), 0);
  protobuf_c_message_free_unpacked(out, NULL);
  char buf[16] = {0};
  ck_assert_int_eq(gp_wire_recv_payload(&b, buf, h.payload_len), 0);
  ck_assert_str_eq(buf, "second");
}
END_TEST

START_TEST(test_wire_send_limits) {
  Gpupool__MemcpyHtoD m = GPUPOOL__MEMCPY_HTO_D__INIT;
  static char dummy;
  a.lim.max_payload = 100;
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_MEMCPY_HTOD, 0, 1, &m.base, &dummy,
                                101), GP_ETOOBIG);
  Gpupool__HelloRequest r = GPUPOOL__HELLO_REQUEST__INIT;
  char name[300];
  memset(name, 'x', sizeof(name) - 1);
  name[sizeof(name) - 1] = 0;
  r.client_name = name;
  a.lim.max_msg = 200;
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_HELLO, 0, 1, &r.base, NULL, 0),
                   GP_ETOOBIG);
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_HELLO, 0x80, 1, NULL, NULL, 0),
                   GP_EINVAL);
  /* Nothing was written by the refused sends; the wire is still usable. */
  ck_assert_uint_eq(a.bytes_sent, 0);
  ck_assert_int_eq(gp_wire_send(&a, GP_MSG_GOODBYE, 0, 1, NULL, NULL, 0), 0);
}
END_TEST

START_TEST(test_wire_clean_close_between_frames) {
  close(sv[0]);
  a.ops = NULL; /* already closed */
  struct gp_frame_header h;
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), GP_ECLOSED);
  ck_assert(GP_IS_FATAL(b.error));
}
END_TEST

START_TEST(test_wire_truncated_frame) {
  uint8_t raw[GP_FRAME_HEADER_SIZE];
  struct gp_frame_header h = {GP_FRAME_VERSION, GP_MSG_MEM_ALLOC, 0, 1, 10, 0};
  gp_frame_header_encode(&h, raw);
  ck_assert_int_eq(write(sv[0], raw, sizeof(raw)), (ssize_t)sizeof(raw));
  ck_assert_int_eq(write(sv[0], "abc", 3), 3);
  close(sv[0]);
  a.ops = NULL;
  ProtobufCMessage *out;
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), GP_ECLOSED);
  ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_wire_garbage_header_and_message) {
  uint8_t raw[GP_FRAME_HEADER_SIZE + 3];
  struct gp_frame_header h = {GP_FRAME_VERSION, GP_MSG_MEM_ALLOC, 0, 1, 3, 0};
  gp_frame_header_encode(&h, raw);
  memcpy(raw + GP_FRAME_HEADER_SIZE, "\x12\x7f\x01", 3); /* overlong field */
  ck_assert_int_eq(write(sv[0], raw, sizeof(raw)), (ssize_t)sizeof(raw));
  ProtobufCMessage *out;
  struct gp_frame_header d;
  ck_assert_int_eq(gp_wire_recv_header(&b, &d), 0);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &d, &out), GP_EPROTO);
  /* Sticky: the stream cannot be trusted after that. */
  ck_assert_int_eq(gp_wire_recv_header(&b, &d), GP_EPROTO);

  memset(raw, 0xAB, sizeof(raw));
  ck_assert_int_eq(write(sv[1], raw, sizeof(raw)), (ssize_t)sizeof(raw));
  ck_assert_int_eq(gp_wire_recv_header(&a, &d), GP_EPROTO);
}
END_TEST

START_TEST(test_wire_unknown_type_is_protocol_error) {
  uint8_t raw[GP_FRAME_HEADER_SIZE];
  struct gp_frame_header h = {GP_FRAME_VERSION, 777, 0, 1, 0, 0};
  gp_frame_header_encode(&h, raw);
  ck_assert_int_eq(write(sv[0], raw, sizeof(raw)), (ssize_t)sizeof(raw));
  ProtobufCMessage *out;
  ck_assert_int_eq(gp_wire_recv_header(&b, &h), 0);
  ck_assert_int_eq(gp_wire_recv_msg(&b, &h, &out), GP_EPROTO);
}
END_TEST

START_TEST(test_wire_peer_gone_is_an_error_not_a_signal) {
  close(sv[1]);
  b.ops = NULL;
  Gpupool__CtxSynchronize s = GPUPOOL__CTX_SYNCHRONIZE__INIT;
  int rc = 0;
  /* The first write may land in the socket buffer; a later one fails. */
  for (int i = 0; i < 10 && rc == 0; i++)
    rc = gp_wire_send(&a, GP_MSG_CTX_SYNCHRONIZE, 0, 1, &s.base, NULL, 0);
  ck_assert_int_eq(rc, GP_ECLOSED);
}
END_TEST

int main(void) {
  Suite *s = suite_create("wire");
  TCase *tc = tcase_create("socketpair");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_wire_message_round_trip);
  tcase_add_test(tc, test_wire_noreply_frames_are_coalesced);
  tcase_add_test(tc, test_wire_receive_flushes_pending_sends);
  tcase_add_test(tc, test_wire_large_payloads_byte_exact);
  tcase_add_test(tc, test_wire_small_payload_and_discard);
  tcase_add_test(tc, test_wire_send_limits);
  tcase_add_test(tc, test_wire_clean_close_between_frames);
  tcase_add_test(tc, test_wire_truncated_frame);
  tcase_add_test(tc, test_wire_garbage_header_and_message);
  tcase_add_test(tc, test_wire_unknown_type_is_protocol_error);
  tcase_add_test(tc, test_wire_peer_gone_is_an_error_not_a_signal);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
