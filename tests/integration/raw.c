/* A client that speaks gpupool's frames itself: see raw.h. */
#include "raw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

bool gpt_raw_open(struct gpt_raw *r, int port, int timeout_ms) {
  memset(r, 0, sizeof *r);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      gp_wire_init_fd(&r->w, fd) != 0) {
    close(fd);
    return false;
  }
  r->w.timeout_ms = timeout_ms;
  r->next = 1;
  r->open = true;
  return true;
}

int gpt_raw_port(const char *addr) {
  const char *colon = addr ? strrchr(addr, ':') : NULL;
  return colon ? atoi(colon + 1) : 0;
}

void gpt_raw_close(struct gpt_raw *r) {
  if (r->open) gp_wire_free(&r->w);
  r->open = false;
}

int gpt_raw_call(struct gpt_raw *r, uint16_t type, const ProtobufCMessage *m,
                 const void *payload, size_t len, void *out, size_t out_len,
                 ProtobufCMessage **rep) {
  uint32_t id = r->next++;
  if (gp_wire_send(&r->w, type, 0, id, m, payload, len) != 0 ||
      gp_wire_flush(&r->w) != 0)
    return GPT_RAW_FAILED;
  for (;;) {
    struct gp_frame_header h;
    ProtobufCMessage *msg = NULL;
    if (gp_wire_recv_header(&r->w, &h) != 0) return GPT_RAW_FAILED;
    if (gp_wire_recv_msg(&r->w, &h, &msg) != 0) return GPT_RAW_FAILED;
    if (!(h.flags & GP_FRAME_F_REPLY)) {
      protobuf_c_message_free_unpacked(msg, NULL);
      if (gp_wire_discard(&r->w, h.payload_len) != 0) return GPT_RAW_FAILED;
      continue;
    }
    int32_t res = -1, deferred = 0;
    gp_msg_reply_status(msg, &res, &deferred);
    int io;
    if (res == 0 && out != NULL && h.payload_len == out_len)
      io = gp_wire_recv_payload(&r->w, out, out_len);
    else
      io = gp_wire_discard(&r->w, h.payload_len);
    if (rep != NULL)
      *rep = msg;
    else
      protobuf_c_message_free_unpacked(msg, NULL);
    return io != 0 ? GPT_RAW_FAILED : res;
  }
}

/* ---- frames a client library never sends (test_hostile.c) ---------------- */

bool gpt_raw_send_bytes(struct gpt_raw *r, const void *p, size_t n) {
  struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
  if (gp_wire_flush(&r->w) != 0) return false;
  while (iov.iov_len > 0) {
    long k = r->w.ops->writev(r->w.ctx, &iov, 1);
    if (k <= 0) return false;
    iov.iov_base = (uint8_t *)iov.iov_base + k;
    iov.iov_len -= (size_t)k;
  }
  return true;
}

bool gpt_raw_send_header(struct gpt_raw *r, uint16_t type, uint16_t flags,
                         uint32_t msg_len, uint32_t payload_len) {
  struct gp_frame_header h = {.version = GP_FRAME_VERSION,
                              .type = type,
                              .flags = flags,
                              .request_id = r->next++,
                              .msg_len = msg_len,
                              .payload_len = payload_len};
  uint8_t head[GP_FRAME_HEADER_SIZE];
  gp_frame_header_encode(&h, head);
  return gpt_raw_send_bytes(r, head, sizeof head);
}

int gpt_raw_next(struct gpt_raw *r, int *code) {
  struct gp_frame_header h;
  ProtobufCMessage *msg = NULL;
  int type;
  *code = 0;
  for (;;) {
    if (gp_wire_recv_header(&r->w, &h) != 0 ||
        gp_wire_recv_msg(&r->w, &h, &msg) != 0)
      return -1;
    type = h.type;
    if (type == GP_MSG_PROTOCOL_ERROR && msg != NULL)
      *code = ((Gpupool__ProtocolError *)msg)->code;
    else if (msg != NULL && (h.flags & GP_FRAME_F_REPLY)) {
      int32_t deferred = 0;
      gp_msg_reply_status(msg, code, &deferred);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (gp_wire_discard(&r->w, h.payload_len) != 0) return -1;
    if (type == GP_MSG_BUSY || type == GP_MSG_DEVICE_OUTPUT) continue;
    return type;
  }
}
