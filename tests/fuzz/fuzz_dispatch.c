/* libFuzzer target for the server's request handlers: the input becomes
 * the byte stream of a client connection, served in this process by the
 * worker's own loop (gp__worker_serve, server/worker.c) against the emu
 * backend, exactly as a worker process serves a socket.
 *
 * Input format (fuzz_dispatch.h has the constants; the seed writer
 * tests/fuzz/dispatch_seeds.c produces it):
 *
 *   byte 0: mode bits. FD_MODE_OWN_HELLO: the harness sends no HELLO of
 *           its own (the input's first frame must be one, so the handshake
 *           is fuzzed too). FD_MODE_RAW: the rest is sent verbatim (frame
 *           headers fuzzed as well).
 *   then records, each one frame: type (1 byte), flags (1 byte: its low
 *           two bits become the header's flags), msg_len (2 bytes LE),
 *           payload_len (2 bytes LE), then the message and payload bytes.
 *           The harness writes a valid header for each (magic, version, a
 *           request id); a record cut short by the input's end becomes a
 *           truncated frame, as from a client that hung up mid-frame.
 *
 * A helper thread writes the stream into one end of a socketpair, shuts
 * it for writing and reads (and drops) the replies until the worker closes
 * its end. A session still running FD_CANCEL_MS after its input was all
 * written (a kernel that loops) is cancelled through the worker's cancel
 * flag, as the heartbeat does when a client hangs up.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "fuzz_dispatch.h"
#include "gpupool/gpupool.h"
#include "msg.h"
#include "server.h"

/* How long a session may go on after its input is all written before the
 * harness raises the cancel flag. */
#define FD_CANCEL_MS 300

struct feeder {
  int fd;
  const uint8_t *data;
  size_t len;
  int *cancel;
};

static uint64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *feed(void *arg) {
  struct feeder *f = arg;
  uint8_t sink[65536];
  size_t off = 0;
  bool shut = false;
  uint64_t done_at = 0;

  for (;;) {
    struct pollfd pfd = {f->fd, POLLIN, 0};
    int r;

    if (!shut && off == f->len) {
      shutdown(f->fd, SHUT_WR);
      shut = true;
      done_at = now_ms();
    }
    if (!shut)
      pfd.events |= POLLOUT;
    r = poll(&pfd, 1, 50);
    if (r < 0 && errno != EINTR)
      break;
    if (shut && now_ms() - done_at > FD_CANCEL_MS)
      __atomic_store_n(f->cancel, 1, __ATOMIC_RELAXED);
    if (r <= 0)
      continue;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(f->fd, sink, sizeof(sink), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        break; /* the worker closed its end */
    }
    if (!shut && (pfd.revents & POLLOUT)) {
      ssize_t n = send(f->fd, f->data + off, f->len - off,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        off = f->len; /* the worker stopped reading: just drain */
    }
  }
  return NULL;
}

/* Appends one frame (header + |msg| + |payload|) to |out|. */
static size_t put_frame(uint8_t *out, uint16_t type, uint16_t flags,
                        uint32_t id, const uint8_t *msg, uint32_t msg_len,
                        uint32_t declared_payload, const uint8_t *payload,
                        uint32_t payload_len) {
  struct gp_frame_header h = {.version = GP_FRAME_VERSION,
                              .type = type,
                              .flags = flags,
                              .request_id = id,
                              .msg_len = msg_len,
                              .payload_len = declared_payload};

  gp_frame_header_encode(&h, out);
  if (msg_len)
    memcpy(out + GP_FRAME_HEADER_SIZE, msg, msg_len);
  if (payload_len)
    memcpy(out + GP_FRAME_HEADER_SIZE + msg_len, payload, payload_len);
  return GP_FRAME_HEADER_SIZE + msg_len + payload_len;
}

/* The client's byte stream for |data|; NULL when out of memory. */
static uint8_t *build_stream(const uint8_t *data, size_t size, size_t *len) {
  Gpupool__HelloRequest hello = GPUPOOL__HELLO_REQUEST__INIT;
  uint8_t hbuf[256], *out, *p;
  uint8_t mode = data[0];
  size_t off = 1, records = 0;
  uint32_t id = 1;

  /* Each record of n bytes becomes at most n - 6 + 24 bytes. */
  out = malloc(sizeof(hbuf) + GP_FRAME_HEADER_SIZE + size * 5 + 64);
  if (!out)
    return NULL;
  p = out;
  if (mode & FD_MODE_RAW) {
    memcpy(p, data + 1, size - 1);
    *len = size - 1;
    return out;
  }
  if (!(mode & FD_MODE_OWN_HELLO)) {
    size_t n;
    hello.min_version = GP_PROTOCOL_VERSION_MIN;
    hello.max_version = GP_PROTOCOL_VERSION_MAX;
    hello.client_name = "fuzz_dispatch";
    hello.hostname = "fuzz";
    n = protobuf_c_message_pack(&hello.base, hbuf);
    p += put_frame(p, GP_MSG_HELLO, 0, id++, hbuf, (uint32_t)n, 0, NULL, 0);
  }
  while (off + FD_RECORD_HEAD <= size) {
    uint16_t type = data[off], flags = data[off + 1] & GP_FRAME_F_KNOWN;
    uint32_t msg_len = (uint32_t)data[off + 2] | (uint32_t)data[off + 3] << 8;
    uint32_t pay_len = (uint32_t)data[off + 4] | (uint32_t)data[off + 5] << 8;
    uint32_t m, q;

    off += FD_RECORD_HEAD;
    m = size - off < msg_len ? (uint32_t)(size - off) : msg_len;
    q = size - off - m < pay_len ? (uint32_t)(size - off - m) : pay_len;
    /* A record cut short is sent as its header and what there is. */
    p += put_frame(p, type, flags, id++, data + off, m, pay_len,
                   data + off + m, q);
    off += m + q;
    records++;
  }
  *len = (size_t)(p - out);
  (void)records;
  return out;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  gp__log_set_level(getenv("FUZZ_DISPATCH_LOG") ? GP_LOG_DEBUG
                                                : GP_LOG_ERROR);
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct gp_server_config cfg;
  struct feeder f;
  pthread_t t;
  int sv[2], cancel = 0;
  size_t len = 0;
  uint8_t *stream;

  if (size == 0)
    return 0;
  stream = build_stream(data, size, &len);
  if (!stream)
    return 0;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    free(stream);
    return 0;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.worker = true;
  cfg.backend_name = "emu";
  cfg.backend = &gp__backend_emu;
  cfg.bcfg.emu_memory = FD_EMU_MEMORY;
  cfg.bcfg.emu_sm_count = 2;
  cfg.log_level = GP_LOG_ERROR;
  cfg.image_cache = "none";
  cfg.image_cache_size = 0;

  f.fd = sv[1];
  f.data = stream;
  f.len = len;
  f.cancel = &cancel;
  if (pthread_create(&t, NULL, feed, &f) != 0) {
    close(sv[0]);
    close(sv[1]);
    free(stream);
    return 0;
  }
  /* Closes sv[0] when the session ends. */
  gp__worker_serve(&cfg, sv[0], &cancel);
  pthread_join(t, NULL);
  close(sv[1]);
  free(stream);
  return 0;
}
