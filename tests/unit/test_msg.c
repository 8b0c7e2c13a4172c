/* Unit tests of the message table (protocol/msg.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gpupool/errors.h"
#include "msg.h"

static const uint16_t all_types[] = {
  GP_MSG_HELLO, GP_MSG_GOODBYE, GP_MSG_PROTOCOL_ERROR, GP_MSG_BUSY,
  GP_MSG_DEVICE_OUTPUT,
  GP_MSG_CTX_CREATE, GP_MSG_CTX_DESTROY, GP_MSG_CTX_SYNCHRONIZE,
  GP_MSG_PRIMARY_CTX_RETAIN, GP_MSG_PRIMARY_CTX_RELEASE,
  GP_MSG_MEM_ALLOC, GP_MSG_MEM_ALLOC_PITCH, GP_MSG_MEM_FREE,
  GP_MSG_MEM_GET_INFO, GP_MSG_MEM_GET_ADDRESS_RANGE, GP_MSG_MEMCPY_HTOD,
  GP_MSG_MEMCPY_DTOH, GP_MSG_MEMCPY_DTOD, GP_MSG_MEMSET,
  GP_MSG_STREAM_CREATE, GP_MSG_STREAM_DESTROY, GP_MSG_STREAM_SYNCHRONIZE,
  GP_MSG_STREAM_QUERY, GP_MSG_STREAM_WAIT_EVENT,
  GP_MSG_EVENT_CREATE, GP_MSG_EVENT_RECORD, GP_MSG_EVENT_QUERY,
  GP_MSG_EVENT_SYNCHRONIZE, GP_MSG_EVENT_ELAPSED_TIME, GP_MSG_EVENT_DESTROY,
  GP_MSG_MODULE_LOAD, GP_MSG_MODULE_UNLOAD, GP_MSG_MODULE_GET_FUNCTION,
  GP_MSG_MODULE_GET_GLOBAL, GP_MSG_LAUNCH_KERNEL, GP_MSG_IMAGE_PART,
  GP_MSG_MODULE_GET_KERNELS,
  GP_MSG_MEMCPY_2D_HTOD, GP_MSG_MEMCPY_2D_DTOH, GP_MSG_MEMCPY_2D_DTOD,
  GP_MSG_MEMSET_2D,
  GP_MSG_BROKER_REGISTER, GP_MSG_BROKER_HEARTBEAT, GP_MSG_BROKER_SESSION_END,
  GP_MSG_BROKER_REQUEST_SESSION, GP_MSG_BROKER_STATUS, GP_MSG_BROKER_DRAIN,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

START_TEST(test_msg_every_type_has_a_request) {
  for (size_t i = 0; i < NTYPES; i++) {
    ck_assert_ptr_nonnull(gp_msg_descriptor(all_types[i], false));
    ck_assert_str_ne(gp_msg_type_name(all_types[i]), "UNKNOWN");
  }
}
END_TEST

START_TEST(test_msg_every_reply_carries_result_and_deferred) {
  /* The client reads fields 1 and 2 of any reply generically, so every
   * reply message must have them as int32. */
  for (size_t i = 0; i < NTYPES; i++) {
    const ProtobufCMessageDescriptor *d = gp_msg_descriptor(all_types[i], true);
    if (all_types[i] == GP_MSG_GOODBYE || all_types[i] == GP_MSG_PROTOCOL_ERROR ||
        all_types[i] == GP_MSG_BUSY || all_types[i] == GP_MSG_DEVICE_OUTPUT ||
        all_types[i] == GP_MSG_BROKER_HEARTBEAT ||
        all_types[i] == GP_MSG_BROKER_SESSION_END) {
      ck_assert_ptr_null(d);
      continue;
    }
    ck_assert_ptr_nonnull(d);
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    protobuf_c_message_init(d, m);
    int32_t r = 1, def = 1;
    ck_assert_msg(gp_msg_reply_status(m, &r, &def) == 0, "%s",
                  gp_msg_type_name(all_types[i]));
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(def, 0);
    free(m);
  }
}
END_TEST

START_TEST(test_msg_unknown_type) {
  ck_assert_ptr_null(gp_msg_descriptor(0, false));
  ck_assert_ptr_null(gp_msg_descriptor(9999, true));
  ck_assert_str_eq(gp_msg_type_name(9999), "UNKNOWN");
  ck_assert_ptr_null(gp_msg_unpack(9999, false, (const uint8_t *)"", 0));
}
END_TEST

START_TEST(test_msg_hello_reply_round_trip) {
  Gpupool__HelloReply r = GPUPOOL__HELLO_REPLY__INIT;
  Gpupool__DeviceInfo dev = GPUPOOL__DEVICE_INFO__INIT;
  Gpupool__DeviceAttribute a1 = GPUPOOL__DEVICE_ATTRIBUTE__INIT;
  Gpupool__DeviceAttribute a2 = GPUPOOL__DEVICE_ATTRIBUTE__INIT;
  Gpupool__DeviceAttribute *attrs[] = {&a1, &a2};
  Gpupool__DeviceInfo *devs[] = {&dev};
  uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  a1.attr = 75;
  a1.value = 7;
  a2.attr = 76;
  a2.value = 5;
  dev.name = "gpupool emulated device";
  dev.uuid.data = uuid;
  dev.uuid.len = 16;
  dev.total_mem = 2ull << 30;
  dev.n_attributes = 2;
  dev.attributes = attrs;
  r.version = 1;
  r.driver_version = 13000;
  r.n_devices = 1;
  r.devices = devs;
  r.deferred = -3;

  size_t len = protobuf_c_message_get_packed_size(&r.base);
  uint8_t *buf = malloc(len);
  protobuf_c_message_pack(&r.base, buf);
  ProtobufCMessage *m = gp_msg_unpack(GP_MSG_HELLO, true, buf, len);
  ck_assert_ptr_nonnull(m);
  Gpupool__HelloReply *u = (Gpupool__HelloReply *)m;
  ck_assert_int_eq(u->driver_version, 13000);
  ck_assert_uint_eq(u->n_devices, 1);
  ck_assert_str_eq(u->devices[0]->name, "gpupool emulated device");
  ck_assert_uint_eq(u->devices[0]->total_mem, 2ull << 30);
  ck_assert_mem_eq(u->devices[0]->uuid.data, uuid, 16);
  ck_assert_uint_eq(u->devices[0]->n_attributes, 2);
  ck_assert_int_eq(u->devices[0]->attributes[1]->value, 5);
  int32_t res, def;
  ck_assert_int_eq(gp_msg_reply_status(m, &res, &def), 0);
  ck_assert_int_eq(def, -3);

  /* Every truncation of the encoding is refused or decodes to a message,
   * never crashes; the empty one is a valid all-defaults message. */
  for (size_t cut = 0; cut < len; cut++) {
    ProtobufCMessage *t = gp_msg_unpack(GP_MSG_HELLO, true, buf, cut);
    if (t)
      protobuf_c_message_free_unpacked(t, NULL);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  free(buf);
}
END_TEST

START_TEST(test_msg_malformed_bytes_refused) {
  /* A length-delimited field whose length runs past the end. */
  const uint8_t bad[] = {0x12, 0x7f, 'a'};
  ck_assert_ptr_null(gp_msg_unpack(GP_MSG_HELLO, true, bad, sizeof(bad)));
  /* A varint that never ends. */
  const uint8_t bad2[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                          0xff, 0xff, 0xff, 0xff};
  ck_assert_ptr_null(gp_msg_unpack(GP_MSG_MEM_ALLOC, false, bad2, sizeof(bad2)));
}
END_TEST

int main(void) {
  Suite *s = suite_create("msg");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, test_msg_every_type_has_a_request);
  tcase_add_test(tc, test_msg_every_reply_carries_result_and_deferred);
  tcase_add_test(tc, test_msg_unknown_type);
  tcase_add_test(tc, test_msg_hello_reply_round_trip);
  tcase_add_test(tc, test_msg_malformed_bytes_refused);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
