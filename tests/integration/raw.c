/* A client that speaks gpupool's frames itself: see raw.h. */
#include "raw.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static bool insecure(void) {
  const char *v = getenv("GPUPOOL_INSECURE");
  return v != NULL && strcmp(v, "1") == 0;
}

int gpt_wire_connect(struct gp_wire *w, int port) {
  memset(w, 0, sizeof *w);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    printf("gpt_wire_connect: connect to port %d: %s\n", port,
           strerror(errno));
    close(fd);
    return -1;
  }
  if (insecure()) {
    if (gp_wire_init_fd(w, fd) != 0) {
      close(fd);
      return -1;
    }
    return 0;
  }
  char why[512];
  const char *ca = getenv("GPUPOOL_TLS_CA");
  SSL_CTX *ctx = gp_tls_client_ctx(ca && *ca ? ca : NULL, NULL, NULL, why,
                                   sizeof why);
  int rc = ctx ? gp_wire_init_tls_client(w, fd, ctx, "127.0.0.1", 10000, why,
                                         sizeof why)
               : -1;
  SSL_CTX_free(ctx);
  if (rc != 0) {
    printf("gpt_wire_connect: port %d: %s\n", port, why);
    close(fd);
    return -1;
  }
  return 0;
}

int gpt_wire_accept(struct gp_wire *w, int fd) {
  memset(w, 0, sizeof *w);
  if (insecure()) {
    if (gp_wire_init_fd(w, fd) != 0) {
      close(fd);
      return -1;
    }
    return 0;
  }
  const char *dir = getenv("GPT_CERTS");
  char cert[512], key[512], why[512];
  snprintf(cert, sizeof cert, "%s/server.pem", dir ? dir : ".");
  snprintf(key, sizeof key, "%s/server.key", dir ? dir : ".");
  struct gp_tls_pem pem;
  SSL_CTX *ctx = NULL;
  if (gp_tls_pem_load(&pem, cert, key, NULL, why, sizeof why) == 0) {
    ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_NONE, why, sizeof why);
    gp_tls_pem_free(&pem);
  }
  int rc = ctx ? gp_wire_init_tls_server(w, fd, ctx, 10000, why, sizeof why)
               : -1;
  SSL_CTX_free(ctx);
  if (rc != 0) {
    printf("gpt_wire_accept: %s\n", why);
    close(fd);
    return -1;
  }
  return 0;
}

bool gpt_raw_open(struct gpt_raw *r, int port, int timeout_ms) {
  memset(r, 0, sizeof *r);
  if (gpt_wire_connect(&r->w, port) != 0) return false;
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
