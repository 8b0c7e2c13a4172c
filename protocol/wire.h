/* A blocking, buffered frame connection over a byte transport (plain TCP
 * here; TLS in tls.c; RDMA would be another gp_transport implementation).
 *
 * Used by the client library and by the server's per-session worker, which
 * both own their socket and may block on it. Outgoing frames that need no
 * reply are coalesced in a send buffer and written in one go when the buffer
 * fills, when a payload is large, or at gp_wire_flush() (which every receive
 * does first), so a run of asynchronous calls costs one write. Incoming
 * bytes are read through a buffer; payloads are read straight into the
 * caller's destination.
 *
 * A gp_wire is not thread-safe: its owner serialises calls (the client holds
 * its connection mutex).
 */
#ifndef GP_PROTOCOL_WIRE_H
#define GP_PROTOCOL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <protobuf-c/protobuf-c.h>

#include "frame.h"

/* How a wire moves bytes. Each function returns bytes moved (> 0), 0 on an
 * orderly close (read only), or a negative GP_E* code. */
struct gp_transport_ops {
  const char *name;
  long (*read)(void *ctx, void *buf, size_t len);
  long (*writev)(void *ctx, const struct iovec *iov, int iovcnt);
  /* Bytes already decrypted and buffered inside the transport, which a
   * poll() on the fd cannot see (NULL: none ever are). */
  size_t (*pending)(void *ctx);
  void (*close)(void *ctx);
};

/* The plain TCP (or any stream socket) transport; its ctx is the fd cast to
 * intptr_t. */
extern const struct gp_transport_ops gp_transport_fd;

/* Busy-polling before a blocking read (gp_wire_spin_wait): the adaptive
 * window and what it achieved. */
struct gp_wire_spin {
  unsigned max_us;              /* the configured window; 0: never spin */
  unsigned cur_us;              /* the window now (adapted) */
  unsigned skip;                /* waits left before probing again */
  unsigned misses;              /* spins in a row that ran out */
  bool crowded;                 /* more runnable threads than CPUs */
  uint64_t check_ns;            /* when |crowded| was last looked at */
  uint64_t hits, spins;         /* spins that found data / all spins */
};

#define GP_WIRE_RBUF_SIZE (256u << 10)
#define GP_WIRE_WBUF_SIZE (256u << 10)

struct gp_wire {
  const struct gp_transport_ops *ops;
  void *ctx;
  int fd;                       /* for poll(); -1 if none */
  struct gp_frame_limits lim;
  int timeout_ms;               /* per read; -1: wait forever */
  int error;                    /* sticky fatal error, 0 if none */
  bool write_timed_out;         /* a write failed with GP_ETIMEDOUT: the
                                 * peer read nothing for the socket's
                                 * SO_SNDTIMEO (set by whoever writes) */
  uint8_t *rbuf;
  size_t rpos, rlen;
  uint8_t *wbuf;
  size_t wlen;
  /* Counters, for benchmarks and tests. */
  uint64_t frames_sent, frames_received;
  uint64_t bytes_sent, bytes_received;
  uint64_t writes;              /* transport write calls */
  struct gp_wire_spin spin;
};

/* Initialises |w| on the stream socket |fd| with the plain fd transport.
 * The wire owns |fd| from then on and closes it in gp_wire_free().
 * Returns 0 or GP_ENOMEM. */
int gp_wire_init_fd(struct gp_wire *w, int fd);

/* Closes the transport and frees the buffers. Safe on a zeroed struct. */
void gp_wire_free(struct gp_wire *w);

/* Queues one frame: header, |msg| packed (NULL: empty message) and
 * |payload_len| bytes of |payload|. Small frames are buffered; a frame with
 * a large payload is written at once together with what is buffered, the
 * payload straight from |payload|. Frames without GP_FRAME_F_NOREPLY (and
 * replies) are flushed before returning. Returns 0 or a GP_E* code
 * (GP_ETOOBIG for a message or payload over the limits). */
int gp_wire_send(struct gp_wire *w, uint16_t type, uint16_t flags,
                 uint32_t request_id, const ProtobufCMessage *msg,
                 const void *payload, size_t payload_len);

/* Writes out everything buffered. Returns 0 or a fatal GP_E* code. */
int gp_wire_flush(struct gp_wire *w);

/* Flushes, then reads and decodes the next frame header. Returns 0, or a
 * fatal GP_E* code (GP_ECLOSED at a clean end of stream between frames). */
int gp_wire_recv_header(struct gp_wire *w, struct gp_frame_header *h);

/* Reads the |h->msg_len| bytes of message that follow header |h| and unpacks
 * them as the message of |h->type| (request or reply by the REPLY flag).
 * On success the caller frees |*out| with protobuf_c_message_free_unpacked().
 * Returns 0, or GP_EPROTO (unknown type or malformed message), or another
 * fatal code. */
int gp_wire_recv_msg(struct gp_wire *w, const struct gp_frame_header *h,
                     ProtobufCMessage **out);

/* Reads |len| payload bytes into |dst|. Returns 0 or a fatal GP_E* code. */
int gp_wire_recv_payload(struct gp_wire *w, void *dst, size_t len);

/* Reads and drops |len| payload bytes. Returns 0 or a fatal GP_E* code. */
int gp_wire_discard(struct gp_wire *w, size_t len);

/* Sets the busy-poll window to |max_us| microseconds (0: off). It stays off
 * when this thread may run on one CPU only (sched_getaffinity), where
 * spinning only delays the peer it waits for. Returns the window set. */
unsigned gp_wire_spin_setup(struct gp_wire *w, unsigned max_us);

/* Before sleeping for the peer: polls the socket for up to the adaptive
 * window, unless more threads are runnable than there are CPUs (checked
 * every 100 ms in /proc/loadavg). The window doubles (up to the maximum)
 * when a spin finds data and halves after two that ran out; at 0 it stays
 * off for the next 64 waits, then probes again with a quarter of the
 * maximum. True when data is there to read (bytes in the read buffer or
 * decrypted in the transport, or the transport readable); with the window
 * off, only those buffers are looked at. */
bool gp_wire_spin_wait(struct gp_wire *w);

/* True when bytes are already buffered or readable without blocking. */
bool gp_wire_readable(struct gp_wire *w);

#endif
