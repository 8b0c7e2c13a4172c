/* Device printf output (see cuda_be.h). The driver writes a kernel's
 * printf text to the process's stdout when the host synchronises (and, in
 * a relay, gpupool's client library writes the DEVICE_OUTPUT notices of
 * the server behind it there too), so the backend points the worker's fd 1
 * at a pipe and hands what arrives to the client before each reply. The
 * worker itself writes nothing to stdout: its logs go to stderr.
 *
 * A reader thread drains the pipe into a bounded buffer (so a driver that
 * prints much while the worker is busy never blocks on a full pipe);
 * output_peek also drains the pipe itself, after fflush(stdout), so output
 * produced by the operation that just returned goes out before its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_be.h"
#include "log.h"

/* Appends |n| bytes to the buffer, counting what does not fit. Call with
 * the mutex held. */
static void append(struct cub_output *o, const char *p, size_t n) {
  size_t room = CUB_OUTPUT_MAX - o->len;
  size_t take = n < room ? n : room;

  memcpy(o->buf + o->len, p, take);
  o->len += take;
  o->dropped += n - take;
}

/* Reads what the pipe holds without blocking. Call with the mutex held. */
static void drain_locked(struct cub_output *o) {
  char tmp[4096];
  ssize_t n;

  for (;;) {
    struct pollfd p = {.fd = o->rfd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
      return;
    n = read(o->rfd, tmp, sizeof(tmp));
    if (n <= 0)
      return;
    append(o, tmp, (size_t)n);
  }
}

static void *reader_main(void *arg) {
  struct cub_output *o = arg;
  char tmp[4096];

  for (;;) {
    struct pollfd p = {.fd = o->rfd, .events = POLLIN};
    /* A timeout, so that a stop is seen even if something still holds a
     * copy of the pipe's write end. */
    int pr = poll(&p, 1, 200);
    if (__atomic_load_n(&o->stop, __ATOMIC_RELAXED))
      return NULL;
    if (pr == 0 || (pr < 0 && errno == EINTR))
      continue;
    if (pr < 0 || (p.revents & (POLLERR | POLLNVAL)))
      return NULL;
    if (p.revents & POLLHUP && !(p.revents & POLLIN))
      return NULL;
    pthread_mutex_lock(&o->mu);
    /* The peeking thread may have emptied the pipe meanwhile. */
    if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      ssize_t n = read(o->rfd, tmp, sizeof(tmp));
      if (n > 0)
        append(o, tmp, (size_t)n);
      else if (n == 0) {
        pthread_mutex_unlock(&o->mu);
        return NULL;
      }
    }
    pthread_mutex_unlock(&o->mu);
  }
}

/* Moves |*fd| above the standard descriptors (a pipe end at 0, 1 or 2,
 * because one of them was closed, would be taken for stdin, stdout or
 * stderr). Returns 0 or -1. */
static int above_stdio(int *fd) {
  int n;

  if (*fd > 2)
    return 0;
  n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
  close(*fd);
  *fd = n;
  return n < 0 ? -1 : 0;
}

int cub_output_init(struct cub_output *o) {
  int fds[2];

  memset(o, 0, sizeof(*o));
  o->rfd = -1;
  o->saved_stdout = -1;
  pthread_mutex_init(&o->mu, NULL);
  o->buf = malloc(CUB_OUTPUT_MAX);
  o->peek = malloc(CUB_OUTPUT_MAX);
  if (!o->buf || !o->peek) {
    cub_output_free(o);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  fflush(stdout);
  /* fd 1 as it is, taken before the pipe exists (-1: fd 1 is closed, and
   * is closed again on free). */
  o->saved_stdout = fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (pipe2(fds, O_CLOEXEC) != 0) {
    cub_output_free(o);
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  /* With fd 1 closed, pipe2 hands out fd 1 itself: the read end would
   * become "stdout", and dup2 below would close it. */
  if (above_stdio(&fds[0]) != 0 || above_stdio(&fds[1]) != 0) {
    if (fds[0] >= 0)
      close(fds[0]);
    if (fds[1] >= 0)
      close(fds[1]);
    cub_output_free(o);
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  /* The reader never blocks in read(): it polls first, and a peek drains
   * without blocking. */
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  if (dup2(fds[1], 1) < 0) {
    close(fds[0]);
    close(fds[1]);
    cub_output_free(o);
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  o->own_stdout = true;
  close(fds[1]);
  o->rfd = fds[0];
  if (pthread_create(&o->reader, NULL, reader_main, o) != 0) {
    cub_output_free(o);
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  o->reader_started = true;
  return CUDA_SUCCESS;
}

void cub_output_free(struct cub_output *o) {
  fflush(stdout);
  /* Closing the pipe's write end (fd 1) ends the reader. */
  if (o->own_stdout) {
    if (o->saved_stdout >= 0)
      dup2(o->saved_stdout, 1);
    else
      close(1);
    o->own_stdout = false;
  }
  if (o->saved_stdout >= 0) {
    close(o->saved_stdout);
    o->saved_stdout = -1;
  }
  if (o->reader_started) {
    __atomic_store_n(&o->stop, 1, __ATOMIC_RELAXED);
    pthread_join(o->reader, NULL);
    o->reader_started = false;
  }
  if (o->rfd >= 0) {
    close(o->rfd);
    o->rfd = -1;
  }
  pthread_mutex_destroy(&o->mu);
  free(o->buf);
  free(o->peek);
  o->buf = o->peek = NULL;
}

void cub_output_peek(struct cub_output *o, const void **data, size_t *len,
                     uint64_t *dropped) {
  fflush(stdout);
  pthread_mutex_lock(&o->mu);
  if (o->rfd >= 0)
    drain_locked(o);
  /* Hand out a copy, so the reader may keep appending while the worker
   * sends it. */
  memcpy(o->peek, o->buf, o->len);
  o->peek_len = o->len;
  o->peek_dropped = o->dropped;
  o->len = 0;
  o->dropped = 0;
  pthread_mutex_unlock(&o->mu);
  *data = o->peek;
  *len = o->peek_len;
  *dropped = o->peek_dropped;
}

void cub_output_consumed(struct cub_output *o) {
  o->peek_len = 0;
  o->peek_dropped = 0;
}
