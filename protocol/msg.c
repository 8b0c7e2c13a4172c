/* Message types and the protobuf descriptors they carry. */
#include "msg.h"

#include <string.h>

#include "gpupool/errors.h"

struct msg_kind {
  uint16_t type;
  const char *name;
  const ProtobufCMessageDescriptor *request;
  const ProtobufCMessageDescriptor *reply; /* NULL: never answered */
};

#define STATUS (&gpupool__status__descriptor)

static const struct msg_kind kinds[] = {
  {GP_MSG_HELLO, "HELLO", &gpupool__hello_request__descriptor,
   &gpupool__hello_reply__descriptor},
  {GP_MSG_GOODBYE, "GOODBYE", &gpupool__goodbye__descriptor, NULL},
  {GP_MSG_PROTOCOL_ERROR, "PROTOCOL_ERROR",
   &gpupool__protocol_error__descriptor, NULL},
  {GP_MSG_BUSY, "BUSY", &gpupool__busy__descriptor, NULL},
  {GP_MSG_DEVICE_OUTPUT, "DEVICE_OUTPUT", &gpupool__device_output__descriptor,
   NULL},

  {GP_MSG_CTX_CREATE, "CTX_CREATE", &gpupool__ctx_create__descriptor, STATUS},
  {GP_MSG_CTX_DESTROY, "CTX_DESTROY", &gpupool__ctx_destroy__descriptor,
   STATUS},
  {GP_MSG_CTX_SYNCHRONIZE, "CTX_SYNCHRONIZE",
   &gpupool__ctx_synchronize__descriptor, STATUS},
  {GP_MSG_PRIMARY_CTX_RETAIN, "PRIMARY_CTX_RETAIN",
   &gpupool__primary_ctx_retain__descriptor, STATUS},
  {GP_MSG_PRIMARY_CTX_RELEASE, "PRIMARY_CTX_RELEASE",
   &gpupool__primary_ctx_release__descriptor, STATUS},

  {GP_MSG_MEM_ALLOC, "MEM_ALLOC", &gpupool__mem_alloc__descriptor,
   &gpupool__mem_alloc_reply__descriptor},
  {GP_MSG_MEM_ALLOC_PITCH, "MEM_ALLOC_PITCH",
   &gpupool__mem_alloc_pitch__descriptor,
   &gpupool__mem_alloc_pitch_reply__descriptor},
  {GP_MSG_MEM_FREE, "MEM_FREE", &gpupool__mem_free__descriptor, STATUS},
  {GP_MSG_MEM_GET_INFO, "MEM_GET_INFO", &gpupool__mem_get_info__descriptor,
   &gpupool__mem_get_info_reply__descriptor},
  {GP_MSG_MEM_GET_ADDRESS_RANGE, "MEM_GET_ADDRESS_RANGE",
   &gpupool__mem_get_address_range__descriptor,
   &gpupool__mem_get_address_range_reply__descriptor},
  {GP_MSG_MEMCPY_HTOD, "MEMCPY_HTOD", &gpupool__memcpy_hto_d__descriptor,
   STATUS},
  {GP_MSG_MEMCPY_DTOH, "MEMCPY_DTOH", &gpupool__memcpy_dto_h__descriptor,
   STATUS},
  {GP_MSG_MEMCPY_DTOD, "MEMCPY_DTOD", &gpupool__memcpy_dto_d__descriptor,
   STATUS},
  {GP_MSG_MEMSET, "MEMSET", &gpupool__memset__descriptor, STATUS},

  {GP_MSG_STREAM_CREATE, "STREAM_CREATE", &gpupool__stream_create__descriptor,
   STATUS},
  {GP_MSG_STREAM_DESTROY, "STREAM_DESTROY",
   &gpupool__stream_destroy__descriptor, STATUS},
  {GP_MSG_STREAM_SYNCHRONIZE, "STREAM_SYNCHRONIZE",
   &gpupool__stream_synchronize__descriptor, STATUS},
  {GP_MSG_STREAM_QUERY, "STREAM_QUERY", &gpupool__stream_query__descriptor,
   STATUS},
  {GP_MSG_STREAM_WAIT_EVENT, "STREAM_WAIT_EVENT",
   &gpupool__stream_wait_event__descriptor, STATUS},

  {GP_MSG_EVENT_CREATE, "EVENT_CREATE", &gpupool__event_create__descriptor,
   STATUS},
  {GP_MSG_EVENT_RECORD, "EVENT_RECORD", &gpupool__event_record__descriptor,
   STATUS},
  {GP_MSG_EVENT_QUERY, "EVENT_QUERY", &gpupool__event_query__descriptor,
   STATUS},
  {GP_MSG_EVENT_SYNCHRONIZE, "EVENT_SYNCHRONIZE",
   &gpupool__event_synchronize__descriptor, STATUS},
  {GP_MSG_EVENT_ELAPSED_TIME, "EVENT_ELAPSED_TIME",
   &gpupool__event_elapsed_time__descriptor,
   &gpupool__event_elapsed_time_reply__descriptor},
  {GP_MSG_EVENT_DESTROY, "EVENT_DESTROY", &gpupool__event_destroy__descriptor,
   STATUS},

  {GP_MSG_MODULE_LOAD, "MODULE_LOAD", &gpupool__module_load__descriptor,
   &gpupool__module_load_reply__descriptor},
  {GP_MSG_MODULE_UNLOAD, "MODULE_UNLOAD", &gpupool__module_unload__descriptor,
   STATUS},
  {GP_MSG_MODULE_GET_FUNCTION, "MODULE_GET_FUNCTION",
   &gpupool__module_get_function__descriptor,
   &gpupool__module_get_function_reply__descriptor},
  {GP_MSG_MODULE_GET_GLOBAL, "MODULE_GET_GLOBAL",
   &gpupool__module_get_global__descriptor,
   &gpupool__module_get_global_reply__descriptor},
  {GP_MSG_LAUNCH_KERNEL, "LAUNCH_KERNEL", &gpupool__launch_kernel__descriptor,
   STATUS},
  {GP_MSG_IMAGE_PART, "IMAGE_PART", &gpupool__image_part__descriptor, STATUS},
  {GP_MSG_MODULE_GET_KERNELS, "MODULE_GET_KERNELS",
   &gpupool__module_get_kernels__descriptor,
   &gpupool__module_get_kernels_reply__descriptor},

  {GP_MSG_MEMCPY_2D_HTOD, "MEMCPY_2D_HTOD",
   &gpupool__memcpy2_dhto_d__descriptor, STATUS},
  {GP_MSG_MEMCPY_2D_DTOH, "MEMCPY_2D_DTOH",
   &gpupool__memcpy2_ddto_h__descriptor, STATUS},
  {GP_MSG_MEMCPY_2D_DTOD, "MEMCPY_2D_DTOD",
   &gpupool__memcpy2_ddto_d__descriptor, STATUS},
  {GP_MSG_MEMSET_2D, "MEMSET_2D", &gpupool__memset2_d__descriptor, STATUS},

  {GP_MSG_BROKER_REGISTER, "BROKER_REGISTER",
   &gpupool__broker_register__descriptor,
   &gpupool__broker_register_reply__descriptor},
  {GP_MSG_BROKER_HEARTBEAT, "BROKER_HEARTBEAT",
   &gpupool__broker_heartbeat__descriptor, NULL},
  {GP_MSG_BROKER_SESSION_END, "BROKER_SESSION_END",
   &gpupool__broker_session_end__descriptor, NULL},
  {GP_MSG_BROKER_REQUEST_SESSION, "BROKER_REQUEST_SESSION",
   &gpupool__broker_session_request__descriptor,
   &gpupool__broker_session_grant__descriptor},
  {GP_MSG_BROKER_STATUS, "BROKER_STATUS",
   &gpupool__broker_status_request__descriptor,
   &gpupool__broker_status_reply__descriptor},
  {GP_MSG_BROKER_DRAIN, "BROKER_DRAIN", &gpupool__broker_drain__descriptor,
   &gpupool__broker_drain_reply__descriptor},
};

bool gp_msg_is_broker(uint16_t type) {
  return type >= GP_MSG_BROKER_REGISTER && type < 120;
}

static const struct msg_kind *find(uint16_t type) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (kinds[i].type == type)
      return &kinds[i];
  return NULL;
}

const ProtobufCMessageDescriptor *gp_msg_descriptor(uint16_t type, bool reply) {
  const struct msg_kind *k = find(type);
  if (k == NULL)
    return NULL;
  return reply ? k->reply : k->request;
}

const char *gp_msg_type_name(uint16_t type) {
  const struct msg_kind *k = find(type);
  return k ? k->name : "UNKNOWN";
}

ProtobufCMessage *gp_msg_unpack(uint16_t type, bool reply, const uint8_t *buf,
                                size_t len) {
  const ProtobufCMessageDescriptor *d = gp_msg_descriptor(type, reply);
  if (d == NULL)
    return NULL;
  /* protobuf-c checks every length inside the message against |len|; the
   * frame codec has already bounded |len| itself. */
  return protobuf_c_message_unpack(d, NULL, len, buf);
}

static int read_i32_field(const ProtobufCMessage *msg, unsigned id,
                          int32_t *out) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field(msg->descriptor, id);
  if (f == NULL || f->type != PROTOBUF_C_TYPE_INT32 ||
      f->label != PROTOBUF_C_LABEL_NONE)
    return GP_EPROTO;
  memcpy(out, (const char *)msg + f->offset, sizeof(*out));
  return 0;
}

int gp_msg_reply_status(const ProtobufCMessage *msg, int32_t *result,
                        int32_t *deferred) {
  if (msg == NULL)
    return GP_EPROTO;
  int rc = read_i32_field(msg, 1, result);
  if (rc == 0)
    rc = read_i32_field(msg, 2, deferred);
  return rc;
}
