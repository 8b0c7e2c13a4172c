/* A client that speaks gpupool's frames itself: see raw.h. */
#include "raw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>

#include "tls.h"

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

bool gpt_raw_open_tls(struct gpt_raw *r, int port, int timeout_ms,
                      const char *ca, const char *cert, const char *key,
                      char *why, size_t why_len) {
  char buf[512];
  if (why == NULL) {
    why = buf;
    why_len = sizeof buf;
  }
  memset(r, 0, sizeof *r);
  SSL_CTX *ctx = gp_tls_client_ctx(ca, cert, key, why, why_len);
  if (ctx == NULL) return false;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (!ok) snprintf(why, why_len, "cannot connect to port %d", port);
  if (ok && gp_wire_init_tls_client(&r->w, fd, ctx, "127.0.0.1", timeout_ms,
                                    why, why_len) != 0)
    ok = false;
  SSL_CTX_free(ctx);
  if (!ok) {
    if (fd >= 0) close(fd);
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
