/* Message types: the number in a frame header's |type| field, and which
 * protobuf message a request and its reply of that type carry.
 *
 * Numbers are part of the wire format: never reuse or renumber one. A reply
 * carries the type of its request with GP_FRAME_F_REPLY set.
 */
#ifndef GP_PROTOCOL_MSG_H
#define GP_PROTOCOL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "gpupool.pb-c.h"

enum gp_msg_type {
  GP_MSG_HELLO = 1,           /* HelloRequest -> HelloReply */
  GP_MSG_GOODBYE = 2,         /* Goodbye, never answered */
  GP_MSG_PROTOCOL_ERROR = 3,  /* ProtocolError, never answered */
  GP_MSG_BUSY = 4,            /* Busy: server notice, never answered */
  GP_MSG_DEVICE_OUTPUT = 5,   /* DeviceOutput + text: server notice */

  GP_MSG_CTX_CREATE = 10,           /* CtxCreate -> Status */
  GP_MSG_CTX_DESTROY = 11,          /* CtxDestroy -> Status */
  GP_MSG_CTX_SYNCHRONIZE = 12,      /* CtxSynchronize -> Status */
  GP_MSG_PRIMARY_CTX_RETAIN = 13,   /* PrimaryCtxRetain -> Status */
  GP_MSG_PRIMARY_CTX_RELEASE = 14,  /* PrimaryCtxRelease -> Status */

  GP_MSG_MEM_ALLOC = 20,              /* MemAlloc -> MemAllocReply */
  GP_MSG_MEM_ALLOC_PITCH = 21,        /* MemAllocPitch -> MemAllocPitchReply */
  GP_MSG_MEM_FREE = 22,               /* MemFree -> Status */
  GP_MSG_MEM_GET_INFO = 23,           /* MemGetInfo -> MemGetInfoReply */
  GP_MSG_MEM_GET_ADDRESS_RANGE = 24,  /* MemGetAddressRange -> ...Reply */
  GP_MSG_MEMCPY_HTOD = 25,            /* MemcpyHtoD + payload -> Status */
  GP_MSG_MEMCPY_DTOH = 26,            /* MemcpyDtoH -> Status + payload */
  GP_MSG_MEMCPY_DTOD = 27,            /* MemcpyDtoD -> Status */
  GP_MSG_MEMSET = 28,                 /* Memset -> Status */

  GP_MSG_STREAM_CREATE = 30,       /* StreamCreate -> Status */
  GP_MSG_STREAM_DESTROY = 31,      /* StreamDestroy -> Status */
  GP_MSG_STREAM_SYNCHRONIZE = 32,  /* StreamSynchronize -> Status */
  GP_MSG_STREAM_QUERY = 33,        /* StreamQuery -> Status */
  GP_MSG_STREAM_WAIT_EVENT = 34,   /* StreamWaitEvent -> Status */

  GP_MSG_EVENT_CREATE = 40,        /* EventCreate -> Status */
  GP_MSG_EVENT_RECORD = 41,        /* EventRecord -> Status */
  GP_MSG_EVENT_QUERY = 42,         /* EventQuery -> Status */
  GP_MSG_EVENT_SYNCHRONIZE = 43,   /* EventSynchronize -> Status */
  GP_MSG_EVENT_ELAPSED_TIME = 44,  /* EventElapsedTime -> ...Reply */
  GP_MSG_EVENT_DESTROY = 45,       /* EventDestroy -> Status */

  GP_MSG_MODULE_LOAD = 50,          /* ModuleLoad + image -> ...Reply */
  GP_MSG_MODULE_UNLOAD = 51,        /* ModuleUnload -> Status */
  GP_MSG_MODULE_GET_FUNCTION = 52,  /* ModuleGetFunction -> ...Reply */
  GP_MSG_MODULE_GET_GLOBAL = 53,    /* ModuleGetGlobal -> ...Reply */
  GP_MSG_LAUNCH_KERNEL = 54,        /* LaunchKernel + params -> Status */
  GP_MSG_IMAGE_PART = 55,           /* ImagePart + bytes -> Status */
  GP_MSG_MODULE_GET_KERNELS = 56,   /* ModuleGetKernels -> ...Reply */

  /* 2D copies and memsets (the memory part's block: 60-69). */
  GP_MSG_MEMCPY_2D_HTOD = 60,  /* Memcpy2DHtoD + packed rows -> Status */
  GP_MSG_MEMCPY_2D_DTOH = 61,  /* Memcpy2DDtoH -> Status + packed rows */
  GP_MSG_MEMCPY_2D_DTOD = 62,  /* Memcpy2DDtoD -> Status */
  GP_MSG_MEMSET_2D = 63,       /* Memset2D -> Status */

  /* The broker (100-119; docs/broker.md). Never valid on a server's
   * session port. */
  GP_MSG_BROKER_REGISTER = 100,        /* BrokerRegister -> ...Reply */
  GP_MSG_BROKER_HEARTBEAT = 101,       /* BrokerHeartbeat, never answered */
  GP_MSG_BROKER_SESSION_END = 102,     /* BrokerSessionEnd, never answered */
  GP_MSG_BROKER_REQUEST_SESSION = 110, /* BrokerSessionRequest ->
                                          BrokerSessionGrant */
  GP_MSG_BROKER_STATUS = 111,          /* BrokerStatusRequest -> ...Reply */
  GP_MSG_BROKER_DRAIN = 112,           /* BrokerDrain -> BrokerDrainReply */
};

/* True for the broker's types (GP_MSG_BROKER_*). */
bool gp_msg_is_broker(uint16_t type);

/* The descriptor of the message a frame of |type| carries: the request's
 * when |reply| is false, the reply's otherwise. NULL for an unknown type, or
 * for the reply of a type that is never answered. Thread-safe. */
const ProtobufCMessageDescriptor *gp_msg_descriptor(uint16_t type, bool reply);

/* The type's name for logs ("MEMCPY_HTOD"), or "UNKNOWN". Thread-safe. */
const char *gp_msg_type_name(uint16_t type);

/* Unpacks |len| bytes as the message a frame of |type| carries. Returns
 * NULL for an unknown type or malformed bytes. The caller frees the result
 * with protobuf_c_message_free_unpacked(). Thread-safe. */
ProtobufCMessage *gp_msg_unpack(uint16_t type, bool reply, const uint8_t *buf,
                                size_t len);

/* Reads the `result` and `deferred` fields that every reply message has
 * as fields 1 and 2. Returns 0, or GP_EPROTO if |msg| has no such fields. */
int gp_msg_reply_status(const ProtobufCMessage *msg, int32_t *result,
                        int32_t *deferred);

#endif
