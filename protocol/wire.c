/* A blocking, buffered frame connection over a byte transport. */
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "msg.h"

/* Frames whose payload is at most this size are copied into the send
 * buffer; larger payloads are written from the caller's memory. */
#define COPY_PAYLOAD_MAX (32u << 10)

/* ---- The plain fd transport ----------------------------------------------- */

static int fd_of(void *ctx) { return (int)(intptr_t)ctx; }

static long fd_read(void *ctx, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd_of(ctx), buf, len);
    if (n >= 0)
      return (long)n;
    if (errno == EINTR)
      continue;
    if (errno == ECONNRESET)
      return GP_ECLOSED;
    if (errno == ETIMEDOUT)
      return GP_ETIMEDOUT;
    return GP_EIO;
  }
}

static long fd_writev(void *ctx, const struct iovec *iov, int iovcnt) {
  struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt};
  for (;;) {
    /* MSG_NOSIGNAL: a peer that went away must be an error code, never a
     * SIGPIPE in the application that loaded us. */
    ssize_t n = sendmsg(fd_of(ctx), &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK)
      n = writev(fd_of(ctx), iov, iovcnt);
    if (n >= 0)
      return (long)n;
    if (errno == EINTR)
      continue;
    if (errno == EPIPE || errno == ECONNRESET)
      return GP_ECLOSED;
    /* EAGAIN: a blocking socket's SO_SNDTIMEO ran out with nothing sent
     * (the peer reads nothing); or a non-blocking socket is full. */
    if (errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK)
      return GP_ETIMEDOUT;
    return GP_EIO;
  }
}

static void fd_close(void *ctx) { close(fd_of(ctx)); }

const struct gp_transport_ops gp_transport_fd = {
  .name = "tcp",
  .read = fd_read,
  .writev = fd_writev,
  .close = fd_close,
};

/* ---- Set-up ----------------------------------------------------------------- */

int gp_wire_init_fd(struct gp_wire *w, int fd) {
  memset(w, 0, sizeof(*w));
  w->ops = &gp_transport_fd;
  w->ctx = (void *)(intptr_t)fd;
  w->fd = fd;
  w->lim = gp_frame_default_limits;
  w->timeout_ms = -1;
  w->rbuf = malloc(GP_WIRE_RBUF_SIZE);
  w->wbuf = malloc(GP_WIRE_WBUF_SIZE);
  if (w->rbuf == NULL || w->wbuf == NULL) {
    free(w->rbuf);
    free(w->wbuf);
    w->rbuf = w->wbuf = NULL;
    w->ops = NULL;
    return GP_ENOMEM;
  }
  return 0;
}

void gp_wire_free(struct gp_wire *w) {
  if (w->ops != NULL && w->ops->close != NULL)
    w->ops->close(w->ctx);
  free(w->rbuf);
  free(w->wbuf);
  memset(w, 0, sizeof(*w));
  w->fd = -1;
}

static int fail(struct gp_wire *w, int err) {
  if (w->error == 0)
    w->error = err;
  return w->error;
}

/* ---- Sending ---------------------------------------------------------------- */

/* Writes every byte of |iov| (|iov| is modified). */
static int write_all(struct gp_wire *w, struct iovec *iov, int iovcnt) {
  while (iovcnt > 0) {
    if (iov->iov_len == 0) {
      iov++;
      iovcnt--;
      continue;
    }
    long n = w->ops->writev(w->ctx, iov, iovcnt > 64 ? 64 : iovcnt);
    if (n == GP_ETIMEDOUT)
      w->write_timed_out = true;
    if (n < 0)
      return fail(w, (int)n);
    if (n == 0)
      return fail(w, GP_EIO);
    w->writes++;
    w->bytes_sent += (uint64_t)n;
    size_t left = (size_t)n;
    while (left > 0 && iovcnt > 0) {
      if (left >= iov->iov_len) {
        left -= iov->iov_len;
        iov++;
        iovcnt--;
      } else {
        iov->iov_base = (uint8_t *)iov->iov_base + left;
        iov->iov_len -= left;
        left = 0;
      }
    }
  }
  return 0;
}

int gp_wire_flush(struct gp_wire *w) {
  if (w->error)
    return w->error;
  if (w->wlen == 0)
    return 0;
  struct iovec iov = {.iov_base = w->wbuf, .iov_len = w->wlen};
  w->wlen = 0;
  return write_all(w, &iov, 1);
}

int gp_wire_send(struct gp_wire *w, uint16_t type, uint16_t flags,
                 uint32_t request_id, const ProtobufCMessage *msg,
                 const void *payload, size_t payload_len) {
  if (w->error)
    return w->error;
  size_t msg_len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
  if (msg_len > w->lim.max_msg || payload_len > w->lim.max_payload)
    return GP_ETOOBIG;
  if ((flags & ~GP_FRAME_F_KNOWN) != 0)
    return GP_EINVAL;

  struct gp_frame_header h = {
    .version = GP_FRAME_VERSION,
    .type = type,
    .flags = flags,
    .request_id = request_id,
    .msg_len = (uint32_t)msg_len,
    .payload_len = (uint32_t)payload_len,
  };
  size_t head = GP_FRAME_HEADER_SIZE + msg_len;
  bool copy_payload = payload_len <= COPY_PAYLOAD_MAX;
  size_t want = head + (copy_payload ? payload_len : 0);
  int rc = 0;

  if (w->wlen + want > GP_WIRE_WBUF_SIZE) {
    rc = gp_wire_flush(w);
    if (rc < 0)
      return rc;
  }

  uint8_t *heap = NULL;
  uint8_t *dst;
  if (want <= GP_WIRE_WBUF_SIZE) {
    dst = w->wbuf + w->wlen;
  } else {
    /* Only a message near the 1 MiB limit gets here. */
    heap = malloc(want);
    if (heap == NULL)
      return GP_ENOMEM;
    dst = heap;
  }
  gp_frame_header_encode(&h, dst);
  if (msg_len > 0)
    protobuf_c_message_pack(msg, dst + GP_FRAME_HEADER_SIZE);
  if (copy_payload && payload_len > 0)
    memcpy(dst + head, payload, payload_len);

  w->frames_sent++;
  if (heap == NULL && copy_payload) {
    w->wlen += want;
    if (!(flags & GP_FRAME_F_NOREPLY) || w->wlen >= GP_WIRE_WBUF_SIZE / 2)
      rc = gp_wire_flush(w);
    return rc;
  }

  /* Everything buffered, then this frame's head, then the payload straight
   * from the caller's memory: one writev. */
  struct iovec iov[3];
  int n = 0;
  if (heap == NULL) {
    iov[n++] = (struct iovec){.iov_base = w->wbuf, .iov_len = w->wlen + head};
  } else {
    iov[n++] = (struct iovec){.iov_base = w->wbuf, .iov_len = w->wlen};
    iov[n++] = (struct iovec){.iov_base = heap, .iov_len = want};
  }
  if (!copy_payload)
    iov[n++] = (struct iovec){.iov_base = (void *)payload,
                              .iov_len = payload_len};
  w->wlen = 0;
  rc = write_all(w, iov, n);
  free(heap);
  return rc;
}

/* ---- Busy-polling -------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The CPUs this thread may run on. */
static int usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return 0;
  return CPU_COUNT(&set);
}

unsigned gp_wire_spin_setup(struct gp_wire *w, unsigned max_us) {
  if (max_us > 0 && usable_cpus() <= 1)
    max_us = 0;
  memset(&w->spin, 0, sizeof(w->spin));
  w->spin.max_us = max_us;
  w->spin.cur_us = max_us;
  return max_us;
}

/* True when more threads are runnable than this machine has CPUs online
 * (the fourth field of /proc/loadavg, "running/total", counts this thread
 * too): a spinner would then take a CPU from a thread with work. */
static bool crowded(void) {
  char buf[128];
  FILE *f = fopen("/proc/loadavg", "re");
  if (f == NULL)
    return false;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  double l1, l5, l15;
  long running = 0, total = 0;
  if (sscanf(buf, "%lf %lf %lf %ld/%ld", &l1, &l5, &l15, &running,
             &total) != 5)
    return false;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 && running > online;
}

static bool ready_now(struct gp_wire *w) {
  if (w->ops->pending != NULL && w->ops->pending(w->ctx) > 0)
    return true;
  struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
  return poll(&pfd, 1, 0) != 0;  /* an error: let the read say what */
}

/* The spin itself: true when the transport has bytes to read at once (so
 * a read will not block), whatever the read buffer holds. */
static bool spin_transport(struct gp_wire *w) {
  struct gp_wire_spin *s = &w->spin;
  if (s->max_us == 0 || w->fd < 0)
    return false;
  /* Data already there needs no spin, and says nothing about the window. */
  if (ready_now(w))
    return true;
  if (s->cur_us == 0) {
    if (s->skip > 0) {
      s->skip--;
      return false;
    }
    s->cur_us = s->max_us / 4 > 0 ? s->max_us / 4 : 1;
  }
  uint64_t t0 = now_ns();
  if (t0 - s->check_ns > 100000000u) {
    s->check_ns = t0;
    s->crowded = crowded();
  }
  if (s->crowded)
    return false;
  uint64_t end = t0 + (uint64_t)s->cur_us * 1000u;
  s->spins++;
  do {
    if (ready_now(w)) {
      s->hits++;
      s->misses = 0;
      s->cur_us = s->cur_us * 2 < s->max_us ? s->cur_us * 2 : s->max_us;
      return true;
    }
  } while (now_ns() < end);
  if (++s->misses >= 2) {
    s->misses = 0;
    s->cur_us /= 2;
    if (s->cur_us < 2) {
      s->cur_us = 0;
      s->skip = 64;
    }
  }
  return false;
}

bool gp_wire_spin_wait(struct gp_wire *w) {
  /* Bytes the transport holds decrypted (the rest of a TLS record the last
   * read did not take) are there to read whether or not the spin is on: a
   * poll of the socket never sees them. */
  return w->rlen > w->rpos ||
         (w->ops->pending != NULL && w->ops->pending(w->ctx) > 0) ||
         spin_transport(w);
}

/* Reads at least one byte into |buf| (up to |len|). */
static int read_some(struct gp_wire *w, void *buf, size_t len, size_t *got) {
  bool buffered = w->ops->pending != NULL && w->ops->pending(w->ctx) > 0;
  /* Data the spin saw needs no waiting (and no timeout). */
  if (!buffered && w->spin.max_us > 0)
    buffered = spin_transport(w);
  if (w->timeout_ms >= 0 && w->fd >= 0 && !buffered) {
    struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
    int pr;
    do {
      pr = poll(&pfd, 1, w->timeout_ms);
    } while (pr < 0 && errno == EINTR);
    if (pr < 0)
      return fail(w, GP_EIO);
    if (pr == 0)
      return fail(w, GP_ETIMEDOUT);
  }
  long n = w->ops->read(w->ctx, buf, len);
  if (n < 0)
    return fail(w, (int)n);
  if (n == 0)
    return fail(w, GP_ECLOSED);
  w->bytes_received += (uint64_t)n;
  *got = (size_t)n;
  return 0;
}

/* Makes at least |n| (<= GP_WIRE_RBUF_SIZE) bytes available in rbuf. */
static int fill(struct gp_wire *w, size_t n) {
  if (w->rlen - w->rpos >= n)
    return 0;
  if (w->rpos > 0) {
    memmove(w->rbuf, w->rbuf + w->rpos, w->rlen - w->rpos);
    w->rlen -= w->rpos;
    w->rpos = 0;
  }
  while (w->rlen < n) {
    size_t got = 0;
    int rc = read_some(w, w->rbuf + w->rlen, GP_WIRE_RBUF_SIZE - w->rlen, &got);
    if (rc < 0)
      return rc;
    w->rlen += got;
  }
  return 0;
}

int gp_wire_recv_header(struct gp_wire *w, struct gp_frame_header *h) {
  int rc = gp_wire_flush(w);
  if (rc < 0)
    return rc;
  if (w->rpos == w->rlen) {
    /* Between frames: a clean end of stream is GP_ECLOSED, not an error in
     * the middle of a frame. */
    w->rpos = w->rlen = 0;
  }
  rc = fill(w, GP_FRAME_HEADER_SIZE);
  if (rc < 0)
    return rc;
  rc = gp_frame_header_decode(w->rbuf + w->rpos, &w->lim, h);
  if (rc < 0)
    return fail(w, rc);
  w->rpos += GP_FRAME_HEADER_SIZE;
  w->frames_received++;
  return 0;
}

/* Copies |len| bytes into |dst| (NULL: drops them), from the buffer first,
 * then large remainders straight from the transport. */
static int read_into(struct gp_wire *w, uint8_t *dst, size_t len) {
  while (len > 0) {
    size_t avail = w->rlen - w->rpos;
    if (avail > 0) {
      size_t n = avail < len ? avail : len;
      if (dst) {
        memcpy(dst, w->rbuf + w->rpos, n);
        dst += n;
      }
      w->rpos += n;
      len -= n;
      continue;
    }
    w->rpos = w->rlen = 0;
    if (dst != NULL && len >= GP_WIRE_RBUF_SIZE / 2) {
      size_t got = 0;
      int rc = read_some(w, dst, len, &got);
      if (rc < 0)
        return rc;
      dst += got;
      len -= got;
    } else {
      size_t got = 0;
      int rc = read_some(w, w->rbuf, GP_WIRE_RBUF_SIZE, &got);
      if (rc < 0)
        return rc;
      w->rlen = got;
    }
  }
  return 0;
}

int gp_wire_recv_msg(struct gp_wire *w, const struct gp_frame_header *h,
                     ProtobufCMessage **out) {
  *out = NULL;
  if (w->error)
    return w->error;
  const uint8_t *bytes;
  uint8_t *heap = NULL;
  if (h->msg_len <= GP_WIRE_RBUF_SIZE) {
    int rc = fill(w, h->msg_len);
    if (rc < 0)
      return rc;
    bytes = w->rbuf + w->rpos;
    w->rpos += h->msg_len;
  } else {
    heap = malloc(h->msg_len);
    if (heap == NULL)
      return fail(w, GP_ENOMEM);
    int rc = read_into(w, heap, h->msg_len);
    if (rc < 0) {
      free(heap);
      return rc;
    }
    bytes = heap;
  }
  ProtobufCMessage *m =
      gp_msg_unpack(h->type, (h->flags & GP_FRAME_F_REPLY) != 0, bytes,
                    h->msg_len);
  free(heap);
  if (m == NULL)
    return fail(w, GP_EPROTO);
  *out = m;
  return 0;
}

int gp_wire_recv_payload(struct gp_wire *w, void *dst, size_t len) {
  if (w->error)
    return w->error;
  return read_into(w, dst, len);
}

int gp_wire_discard(struct gp_wire *w, size_t len) {
  if (w->error)
    return w->error;
  return read_into(w, NULL, len);
}

bool gp_wire_readable(struct gp_wire *w) {
  if (w->rlen > w->rpos)
    return true;
  if (w->ops->pending != NULL && w->ops->pending(w->ctx) > 0)
    return true;
  if (w->fd < 0)
    return false;
  struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
  return poll(&pfd, 1, 0) > 0;
}
