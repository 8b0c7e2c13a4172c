/* The worker's heartbeat thread (see heartbeat.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpupool/errors.h"
#include "heartbeat.h"
#include "log.h"
#include "msg.h"
#include "server.h"

/* How often the thread looks at the clock and the socket while a request
 * runs. */
#define GP_HEARTBEAT_TICK_MS 100

struct gp_heartbeat {
  struct gp_wire *wire;
  pthread_t thread;
  pthread_mutex_t lock;   /* held by the thread while it writes */
  pthread_cond_t cond;
  bool busy;              /* locked */
  bool stop;              /* locked */
  uint64_t busy_since;    /* ms, CLOCK_MONOTONIC (locked) */
  uint64_t last_sent;     /* ms (locked) */
  bool write_failed;      /* locked: stop writing after a failure */
  int cancel;             /* atomic */
  uint64_t cancelled_at;  /* ms, when cancel was raised (locked) */
  unsigned kernel_timeout_ms; /* 0: none (set before the first request) */
  char kernel[128];       /* locked: the kernel the request runs, "" none */
  int timed_out;          /* atomic: a kernel ran over the timeout */
};

static int no_cancel; /* the flag of a heartbeat that could not start */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes all of |len| bytes through the wire's transport. Returns 0 or a
 * GP_E* code. */
static int write_all(struct gp_wire *w, const uint8_t *p, size_t len) {
  while (len > 0) {
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    long n = w->ops->writev(w->ctx, &iov, 1);
    if (n == GP_ETIMEDOUT)
      w->write_timed_out = true;
    if (n < 0)
      return (int)n;
    if (n == 0)
      return GP_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Sends one BUSY notice. Called with the lock held. */
static void send_busy(struct gp_heartbeat *hb, uint64_t elapsed) {
  Gpupool__Busy msg = GPUPOOL__BUSY__INIT;
  uint8_t buf[GP_FRAME_HEADER_SIZE + 16];
  struct gp_frame_header h = {0};
  size_t n;

  msg.elapsed_ms = elapsed > UINT32_MAX ? UINT32_MAX : (uint32_t)elapsed;
  n = protobuf_c_message_get_packed_size(&msg.base);
  if (n > sizeof(buf) - GP_FRAME_HEADER_SIZE)
    return;
  h.version = GP_FRAME_VERSION;
  h.type = GP_MSG_BUSY;
  h.msg_len = (uint32_t)n;
  gp_frame_header_encode(&h, buf);
  protobuf_c_message_pack(&msg.base, buf + GP_FRAME_HEADER_SIZE);
  if (write_all(hb->wire, buf, GP_FRAME_HEADER_SIZE + n) != 0) {
    /* The worker's next write will meet the same failure and end the
     * session; nothing more to do here. */
    hb->write_failed = true;
    gp__debug("heartbeat: write failed");
  }
}

/* Tells the client that kernel hb->kernel ran over the kernel timeout: a
 * ProtocolError frame with GP_EKTIMEOUT, in place of the reply its
 * pending call waits for. Called with the lock held. */
static void send_kernel_timeout(struct gp_heartbeat *hb) {
  Gpupool__ProtocolError pe = GPUPOOL__PROTOCOL_ERROR__INIT;
  uint8_t buf[GP_FRAME_HEADER_SIZE + 512];
  struct gp_frame_header h = {0};
  char msg[400];
  size_t n;

  snprintf(msg, sizeof(msg), "kernel %s ran over the server's "
           "--kernel-timeout of %u s; the session was ended", hb->kernel,
           hb->kernel_timeout_ms / 1000);
  gp__warn("%s", msg);
  pe.code = GP_EKTIMEOUT;
  pe.message = msg;
  n = protobuf_c_message_get_packed_size(&pe.base);
  if (n > sizeof(buf) - GP_FRAME_HEADER_SIZE)
    return;
  h.version = GP_FRAME_VERSION;
  h.type = GP_MSG_PROTOCOL_ERROR;
  h.msg_len = (uint32_t)n;
  gp_frame_header_encode(&h, buf);
  protobuf_c_message_pack(&pe.base, buf + GP_FRAME_HEADER_SIZE);
  if (hb->write_failed || write_all(hb->wire, buf, GP_FRAME_HEADER_SIZE + n)
                              != 0)
    gp__debug("heartbeat: the kernel timeout could not be sent");
  hb->write_failed = true; /* nothing more goes to this client */
}

/* True when the client has closed its end (or the socket failed). */
static bool peer_gone(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
  if (fd < 0 || poll(&pfd, 1, 0) <= 0)
    return false;
  return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void *heartbeat_main(void *arg) {
  struct gp_heartbeat *hb = arg;

  pthread_mutex_lock(&hb->lock);
  while (!hb->stop) {
    struct timespec ts;
    uint64_t t;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += GP_HEARTBEAT_TICK_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&hb->cond, &hb->lock, &ts);
    if (hb->stop || !hb->busy)
      continue;
    t = now_ms();
    if (hb->kernel_timeout_ms && hb->kernel[0] &&
        !__atomic_load_n(&hb->timed_out, __ATOMIC_RELAXED) &&
        t - hb->busy_since >= hb->kernel_timeout_ms) {
      send_kernel_timeout(hb);
      __atomic_store_n(&hb->timed_out, 1, __ATOMIC_RELAXED);
      __atomic_store_n(&hb->cancel, 1, __ATOMIC_RELAXED);
      hb->cancelled_at = t;
    }
    if (t - hb->busy_since < GP_HEARTBEAT_FIRST_MS)
      continue;
    if (!__atomic_load_n(&hb->cancel, __ATOMIC_RELAXED) &&
        peer_gone(hb->wire->fd)) {
      gp__info("the client hung up during a request of %llu ms; "
               "cancelling it", (unsigned long long)(t - hb->busy_since));
      __atomic_store_n(&hb->cancel, 1, __ATOMIC_RELAXED);
      hb->cancelled_at = t;
    }
    /* A backend that cannot stop its request (a driver call blocked on a
     * GPU kernel, or on the server behind a relay) would keep the session
     * for nobody: the process ends, and the driver's context and kernel
     * with it. */
    if (__atomic_load_n(&hb->cancel, __ATOMIC_RELAXED) &&
        t - hb->cancelled_at >= GP_HEARTBEAT_ABANDON_MS) {
      if (__atomic_load_n(&hb->timed_out, __ATOMIC_RELAXED)) {
        gp__warn("kernel %s did not stop within %d ms of the kernel "
                 "timeout; ending the worker", hb->kernel,
                 GP_HEARTBEAT_ABANDON_MS);
        _exit(GP_EXIT_KERNEL_TIMEOUT);
      }
      gp__warn("the request did not stop within %d ms of the client "
               "hanging up; ending the worker", GP_HEARTBEAT_ABANDON_MS);
      _exit(GP_EXIT_CONN_LOST);
    }
    if (!hb->write_failed && t - hb->last_sent >= GP_HEARTBEAT_PERIOD_MS) {
      send_busy(hb, t - hb->busy_since);
      hb->last_sent = t;
    }
  }
  pthread_mutex_unlock(&hb->lock);
  return NULL;
}

int gp__heartbeat_start(struct gp_wire *wire, struct gp_heartbeat **out) {
  struct gp_heartbeat *hb;
  pthread_condattr_t ca;

  *out = NULL;
  hb = calloc(1, sizeof(*hb));
  if (!hb)
    return GP_ENOMEM;
  hb->wire = wire;
  pthread_mutex_init(&hb->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&hb->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&hb->thread, NULL, heartbeat_main, hb) != 0) {
    pthread_cond_destroy(&hb->cond);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
    return GP_ENOMEM;
  }
  *out = hb;
  return 0;
}

void gp__heartbeat_busy(struct gp_heartbeat *hb) {
  if (!hb)
    return;
  pthread_mutex_lock(&hb->lock);
  hb->busy = true;
  hb->busy_since = now_ms();
  hb->last_sent = 0;
  hb->kernel[0] = '\0';
  __atomic_store_n(&hb->cancel, 0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&hb->lock);
}

void gp__heartbeat_idle(struct gp_heartbeat *hb) {
  if (!hb)
    return;
  pthread_mutex_lock(&hb->lock);
  hb->busy = false;
  pthread_mutex_unlock(&hb->lock);
}

void gp__heartbeat_set_kernel_timeout(struct gp_heartbeat *hb, unsigned ms) {
  if (hb)
    hb->kernel_timeout_ms = ms;
}

void gp__heartbeat_kernel(struct gp_heartbeat *hb, const char *name) {
  if (!hb)
    return;
  pthread_mutex_lock(&hb->lock);
  snprintf(hb->kernel, sizeof(hb->kernel), "%s", name && *name ? name : "?");
  pthread_mutex_unlock(&hb->lock);
}

bool gp__heartbeat_timed_out(struct gp_heartbeat *hb) {
  return hb && __atomic_load_n(&hb->timed_out, __ATOMIC_RELAXED);
}

const int *gp__heartbeat_cancel_flag(struct gp_heartbeat *hb) {
  return hb ? &hb->cancel : &no_cancel;
}

void gp__heartbeat_stop(struct gp_heartbeat *hb) {
  if (!hb)
    return;
  pthread_mutex_lock(&hb->lock);
  hb->stop = true;
  pthread_cond_signal(&hb->cond);
  pthread_mutex_unlock(&hb->lock);
  pthread_join(hb->thread, NULL);
  pthread_cond_destroy(&hb->cond);
  pthread_mutex_destroy(&hb->lock);
  free(hb);
}
