/* tcp_baseline: the physical baselines of scripts/bench.sh, measured by
 * plain TCP over loopback between two processes, the same shape as
 * gpupool's client and its server's worker. See bench/README.md.
 *
 * Usage: tcp_baseline [--quick] [--client-cpu N] [--server-cpu N]
 *                     [--req-bytes B] [--reply-bytes B] [--launch-bytes B]
 *                     [--tls CERT_DIR] [--stream-only]
 *
 * The program listens on 127.0.0.1 (an ephemeral port), forks the server
 * side, and measures from the parent (the client side); each side pins
 * itself to its CPU when told one. Every message is a 24-byte header (the
 * size of gpupool's frame header) then a body; the receiver reads each
 * message whole. What is timed:
 * - ping-pong: a request of --req-bytes and a reply of --reply-bytes (in
 *   all, headers included): the sizes of one gpupool synchronous call and
 *   its reply, which scripts/bench.sh measures from the client first;
 * - pipelined messages: N messages of --launch-bytes each with no reply,
 *   written in batches of 128 KiB as gpupool's client writes launches,
 *   then one ping-pong; messages per second;
 * - stream: for each size of the plan, one message of that size which the
 *   receiver acknowledges with a reply of --reply-bytes (the shape of a
 *   synchronous host-to-device copy: "send"), and one request answered
 *   with that many bytes ("recv", a device-to-host copy);
 * - vectorAdd: the loop of remote_bench's figure (5) with the kernel's
 *   work done in C by the server: per iteration send a, send b (each
 *   acknowledged), then ask for c = a + b, which the server computes and
 *   sends; the client checks every element.
 *
 * - with --tls DIR, the stream alone, over TLS 1.3 (protocol/tls.c, the
 *   certificates of DIR as scripts/gen-certs.sh writes them), as
 *   tls_send_SIZE and tls_recv_SIZE.
 *
 * Output: "metric NAME VALUE UNIT" lines, as remote_bench prints them.
 * Exit status 0, 1 on a failure, 2 on bad arguments. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "gpupool/errors.h"
#include "tls.h"
#include "wire.h"

#define PROG "tcp_baseline"

/* The operations, the first word of a header. */
enum op {
  OP_PING = 1, /* reply: reply_len bytes of body */
  OP_PUT,      /* a body to take in; reply: reply_len bytes */
  OP_GET,      /* reply: reply_len bytes */
  OP_MSG,      /* a body to take in; no reply */
  OP_PUT_A,    /* the body is vector a; reply: reply_len bytes */
  OP_PUT_B,    /* ... b */
  OP_GET_C,    /* reply: c = a + b, as floats */
  OP_END,      /* no reply; the server exits */
};

/* A header: op, body length, reply body length, then zeros to 24 bytes. */
struct hdr {
  uint32_t op;
  uint32_t body_len;
  uint32_t reply_len;
  uint32_t pad[3];
};
_Static_assert(sizeof(struct hdr) == BU_HEADER, "a header is 24 bytes");

#define RBUF_SIZE (256u << 10)

/* One side of the connection: a socket and its read buffer; with --tls,
 * the TLS transport of protocol/tls.c over it (NULL: plain TCP). */
struct conn {
  int fd;
  uint8_t *rbuf;
  size_t rpos, rlen;
  struct gp_wire *tls;
};

/* One writev or read on |c|: as the system calls, -1 with errno on an
 * error. */
static ssize_t conn_writev(struct conn *c, const struct iovec *iov, int n) {
  if (c->tls == NULL)
    return writev(c->fd, iov, n);
  long r = c->tls->ops->writev(c->tls->ctx, iov, n);
  if (r < 0)
    errno = EIO;
  return r < 0 ? -1 : (ssize_t)r;
}

static ssize_t conn_read(struct conn *c, void *buf, size_t len) {
  if (c->tls == NULL)
    return read(c->fd, buf, len);
  long r = c->tls->ops->read(c->tls->ctx, buf, len);
  if (r == GP_ECLOSED)
    return 0;
  if (r < 0)
    errno = EIO;
  return r < 0 ? -1 : (ssize_t)r;
}

static void die(const char *what) {
  fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
  exit(1);
}

static void pin(int cpu, const char *side) {
  cpu_set_t set;

  if (cpu < 0)
    return;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    fprintf(stderr, PROG ": %s side on CPU %d: %s\n", side, cpu,
            strerror(errno));
    exit(1);
  }
}

/* Writes all of |iov|; exits on an error. */
static void write_all(struct conn *c, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = conn_writev(c, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      die("write");
    }
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
}

/* Sends a header and |len| bytes of |body| in one writev. */
static void send_msg(struct conn *c, uint32_t op, const void *body,
                     uint32_t len, uint32_t reply_len) {
  struct hdr h = {op, len, reply_len, {0}};
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)body, len}};

  write_all(c, iov, len ? 2 : 1);
}

/* Reads exactly |n| bytes into |dst| (NULL: discards them): what the read
 * buffer holds first, then straight into |dst| when more than a buffer's
 * worth is left. Returns false at end of stream before the first byte. */
static bool read_exact(struct conn *c, void *dst, size_t n) {
  uint8_t *d = dst;
  bool any = false;

  while (n > 0) {
    if (c->rpos == c->rlen) {
      ssize_t r;
      if (d != NULL && n >= RBUF_SIZE) {
        r = conn_read(c, d, n);
        if (r > 0) {
          d += r;
          n -= (size_t)r;
          any = true;
          continue;
        }
      } else {
        r = conn_read(c, c->rbuf, RBUF_SIZE);
        if (r > 0) {
          c->rpos = 0;
          c->rlen = (size_t)r;
        }
      }
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        die("read");
      if (r == 0) {
        if (!any)
          return false;
        fprintf(stderr, PROG ": connection closed mid-message\n");
        exit(1);
      }
      continue;
    }
    size_t k = c->rlen - c->rpos;
    if (k > n)
      k = n;
    if (d != NULL) {
      memcpy(d, c->rbuf + c->rpos, k);
      d += k;
    }
    c->rpos += k;
    n -= k;
    any = true;
  }
  return true;
}

/* ---- The server side ---------------------------------------------------- */

/* Serves one connection until OP_END or its end. Vectors a, b and c grow
 * to the largest size asked. */
static void serve(struct conn *c) {
  uint8_t *body = NULL, *reply = NULL;
  float *va = NULL, *vb = NULL;
  size_t body_cap = 0, reply_cap = 0, vcap = 0, vlen = 0;
  struct hdr h;

  while (read_exact(c, &h, sizeof(h))) {
    float **vec = h.op == OP_PUT_A ? &va : h.op == OP_PUT_B ? &vb : NULL;
    void *dst;

    if (vec != NULL) {
      if (h.body_len > vcap) {
        free(va);
        free(vb);
        va = bu_xmalloc(PROG, h.body_len);
        vb = bu_xmalloc(PROG, h.body_len);
        vcap = h.body_len;
      }
      vlen = h.body_len;
      dst = *vec;
    } else {
      if (h.body_len > body_cap) {
        free(body);
        body = bu_xmalloc(PROG, h.body_len);
        body_cap = h.body_len;
      }
      dst = body;
    }
    if (!read_exact(c, dst, h.body_len)) {
      fprintf(stderr, PROG ": connection closed mid-message\n");
      exit(1);
    }
    if (h.op == OP_END)
      break;
    if (h.op == OP_MSG)
      continue;
    if (h.op == OP_GET_C)
      h.reply_len = (uint32_t)vlen;
    if (h.reply_len > reply_cap) {
      free(reply);
      reply = bu_xmalloc(PROG, h.reply_len);
      memset(reply, 0x5a, h.reply_len);
      reply_cap = h.reply_len;
    }
    if (h.op == OP_GET_C) {
      float *vc = (float *)reply;
      for (size_t i = 0; i < vlen / sizeof(float); i++)
        vc[i] = va[i] + vb[i];
    }
    send_msg(c, h.op, reply, h.reply_len, 0);
  }
  free(body);
  free(reply);
  free(va);
  free(vb);
}

/* ---- The client side ---------------------------------------------------- */

struct opts {
  const struct bu_plan *p;
  int client_cpu, server_cpu;
  uint32_t req_bytes, reply_bytes, launch_bytes;
  const char *tls_dir;  /* --tls DIR: ca.pem, server.pem, server.key */
  bool stream_only;     /* --stream-only: the stream figures alone */
};

/* One request and its reply; the reply's body lands in |dst| (NULL:
 * discarded). */
static void call(struct conn *c, uint32_t op, const void *body, uint32_t len,
                 uint32_t reply_len, void *dst) {
  struct hdr h;

  send_msg(c, op, body, len, reply_len);
  if (!read_exact(c, &h, sizeof(h)) || !read_exact(c, dst, h.body_len)) {
    fprintf(stderr, PROG ": the server closed the connection\n");
    exit(1);
  }
}

static void measure_pingpong(struct conn *c, const struct opts *o) {
  int n = o->p->calls;
  double *t = bu_xmalloc(PROG, (size_t)n * sizeof(*t));
  uint32_t req = o->req_bytes - BU_HEADER, rep = o->reply_bytes - BU_HEADER;
  static uint8_t body[4096];

  for (int i = 0; i < n / 10 + 10; i++)
    call(c, OP_PING, body, req, rep, NULL);
  for (int i = 0; i < n; i++) {
    double t0 = bu_now();
    call(c, OP_PING, body, req, rep, NULL);
    t[i] = bu_now() - t0;
  }
  bu_sort(t, n);
  printf("metric tcp_pingpong_p50 %.3f us\n", bu_pct(t, n, 50) * 1e6);
  printf("metric tcp_pingpong_p99 %.3f us\n", bu_pct(t, n, 99) * 1e6);
  free(t);
}

/* N messages of launch_bytes, batched as gpupool's client batches them,
 * then one ping-pong. */
static void measure_pipelined(struct conn *c, const struct opts *o) {
  unsigned n = o->p->launches;
  int reps = o->p->launch_reps;
  uint32_t body = o->launch_bytes - BU_HEADER;
  uint8_t *wbuf = bu_xmalloc(PROG, 2 * BU_FLUSH_AT);
  double *t = bu_xmalloc(PROG, (size_t)(reps + 1) * sizeof(*t));

  memset(wbuf, 0, 2 * BU_FLUSH_AT);
  for (int rep = -1; rep < reps; rep++) {
    double t0 = bu_now();
    size_t wlen = 0;
    for (unsigned i = 0; i < n; i++) {
      struct hdr h = {OP_MSG, body, 0, {0}};
      memcpy(wbuf + wlen, &h, sizeof(h));
      wlen += sizeof(h) + body;  /* the body: zeros, as written */
      if (wlen >= BU_FLUSH_AT) {
        struct iovec iov = {wbuf, wlen};
        write_all(c, &iov, 1);
        memset(wbuf, 0, wlen);
        wlen = 0;
      }
    }
    if (wlen > 0) {
      struct iovec iov = {wbuf, wlen};
      write_all(c, &iov, 1);
      memset(wbuf, 0, wlen);
    }
    call(c, OP_PING, wbuf, o->req_bytes - BU_HEADER,
         o->reply_bytes - BU_HEADER, NULL);
    if (rep >= 0)  /* the first run warms up */
      t[rep] = bu_now() - t0;
  }
  printf("metric tcp_pipelined_rate %.0f msgs/s\n", n / bu_median(t, reps));
  free(t);
  free(wbuf);
}

static void measure_stream(struct conn *c, const struct opts *o) {
  size_t max = 0;
  char label[32];

  for (int s = 0; s < BU_NSIZES; s++)
    if (o->p->sizes[s] > max)
      max = o->p->sizes[s];
  uint8_t *buf = bu_xmalloc(PROG, max);
  uint8_t *in = bu_xmalloc(PROG, max);
  bu_fill_random(buf, max, 7);
  memset(in, 0, max);
  for (int s = 0; s < BU_NSIZES; s++) {
    uint32_t size = (uint32_t)o->p->sizes[s];
    int reps = o->p->size_reps[s];
    double *ts = bu_xmalloc(PROG, (size_t)reps * sizeof(*ts));
    double *tr = bu_xmalloc(PROG, (size_t)reps * sizeof(*tr));

    call(c, OP_PUT, buf, size, o->reply_bytes - BU_HEADER, NULL);
    call(c, OP_GET, buf, o->req_bytes - BU_HEADER, size, in);
    /* Alternate the directions, as remote_bench does. */
    for (int i = 0; i < reps; i++) {
      double t0 = bu_now();
      call(c, OP_PUT, buf, size, o->reply_bytes - BU_HEADER, NULL);
      double t1 = bu_now();
      call(c, OP_GET, buf, o->req_bytes - BU_HEADER, size, in);
      ts[i] = t1 - t0;
      tr[i] = bu_now() - t1;
    }
    bu_size_label(size, label, sizeof(label));
    printf("metric %s_send_%s %.4f GB/s\n", c->tls ? "tls" : "tcp", label,
           size / bu_median(ts, reps) * 1e-9);
    printf("metric %s_recv_%s %.4f GB/s\n", c->tls ? "tls" : "tcp", label,
           size / bu_median(tr, reps) * 1e-9);
    free(ts);
    free(tr);
  }
  free(buf);
  free(in);
}

static void measure_vadd(struct conn *c, const struct opts *o) {
  unsigned n = o->p->vadd_n;
  uint32_t bytes = n * (uint32_t)sizeof(float);
  float *a = bu_xmalloc(PROG, bytes), *b = bu_xmalloc(PROG, bytes);
  float *vc = bu_xmalloc(PROG, bytes);
  static uint8_t req[4096];
  double t0 = bu_now();

  for (int it = 0; it < o->p->vadd_iters; it++) {
    for (unsigned i = 0; i < n; i++) {
      a[i] = (float)(i + (unsigned)it);
      b[i] = (float)(2 * i);
    }
    call(c, OP_PUT_A, a, bytes, o->reply_bytes - BU_HEADER, NULL);
    call(c, OP_PUT_B, b, bytes, o->reply_bytes - BU_HEADER, NULL);
    call(c, OP_GET_C, req, o->req_bytes - BU_HEADER, 0, vc);
    for (unsigned i = 0; i < n; i++)
      if (vc[i] != (float)(3 * i + (unsigned)it)) {
        fprintf(stderr, PROG ": vectorAdd: c[%u] = %g, expected %u\n", i,
                (double)vc[i], 3 * i + (unsigned)it);
        exit(1);
      }
  }
  printf("metric tcp_vadd_time %.3f ms\n", (bu_now() - t0) * 1e3);
  free(a);
  free(b);
  free(vc);
}

static void usage(void) {
  fprintf(stderr, "usage: " PROG " [--quick] [--client-cpu N] "
          "[--server-cpu N] [--req-bytes B] [--reply-bytes B] "
          "[--launch-bytes B] [--tls CERT_DIR] [--stream-only]\n");
  exit(2);
}

/* --tls: the TLS transport of protocol/tls.c over |fd| (the server side
 * with DIR/server.pem and .key, the client side trusting DIR/ca.pem, as
 * gpupool's server and client library run it). Exits on a failure. */
static struct gp_wire *tls_on(int fd, const char *dir, bool server) {
  char why[512], cert[4096], key[4096], ca[4096];
  struct gp_wire *w = bu_xmalloc(PROG, sizeof(*w));
  SSL_CTX *ctx;
  int r;

  snprintf(cert, sizeof(cert), "%s/server.pem", dir);
  snprintf(key, sizeof(key), "%s/server.key", dir);
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  if (server) {
    struct gp_tls_pem pem;
    if (gp_tls_pem_load(&pem, cert, key, NULL, why, sizeof(why)) != 0 ||
        (ctx = gp_tls_server_ctx(&pem, GP_TLS_PEER_NONE, why,
                                 sizeof(why))) == NULL) {
      fprintf(stderr, PROG ": TLS server: %s\n", why);
      exit(1);
    }
    r = gp_wire_init_tls_server(w, fd, ctx, 10000, why, sizeof(why));
  } else {
    if ((ctx = gp_tls_client_ctx(ca, NULL, NULL, why, sizeof(why))) == NULL) {
      fprintf(stderr, PROG ": TLS client: %s\n", why);
      exit(1);
    }
    r = gp_wire_init_tls_client(w, fd, ctx, "127.0.0.1", 10000, why,
                                sizeof(why));
  }
  if (r != 0) {
    fprintf(stderr, PROG ": TLS handshake: %s\n", why);
    exit(1);
  }
  return w;
}

static long parse_num(const char *s, long lo, long hi) {
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, PROG ": '%s' is not a number from %ld to %ld\n", s, lo,
            hi);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  /* The defaults, as remote_bench measures them: a cuCtxSynchronize's
   * request is a header and a 2-byte message, its reply a bare header; a
   * launch of an empty kernel is a header and 16 bytes. */
  struct opts o = {&bu_full_plan, -1, -1, BU_HEADER + 2, BU_HEADER,
                   BU_HEADER + 16};
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t salen = sizeof(sa);
  struct conn c = {-1, NULL, 0, 0, NULL};
  int one = 1, lfd, st;
  pid_t child, parent = getpid();

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) {
      o.p = &bu_quick_plan;
      continue;
    }
    if (strcmp(a, "--stream-only") == 0) {
      o.stream_only = true;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(a, "--client-cpu") == 0)
      o.client_cpu = (int)parse_num(v, 0, CPU_SETSIZE - 1);
    else if (strcmp(a, "--server-cpu") == 0)
      o.server_cpu = (int)parse_num(v, 0, CPU_SETSIZE - 1);
    else if (strcmp(a, "--req-bytes") == 0)
      o.req_bytes = (uint32_t)parse_num(v, BU_HEADER, 4096);
    else if (strcmp(a, "--reply-bytes") == 0)
      o.reply_bytes = (uint32_t)parse_num(v, BU_HEADER, 4096);
    else if (strcmp(a, "--launch-bytes") == 0)
      o.launch_bytes = (uint32_t)parse_num(v, BU_HEADER, 4096);
    else if (strcmp(a, "--tls") == 0)
      o.tls_dir = v;

    else
      usage();
  }

  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0)
    die("socket");
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 1) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0)
    die("listen on 127.0.0.1");
  c.rbuf = bu_xmalloc(PROG, RBUF_SIZE);
  fflush(NULL);
  child = fork();
  if (child < 0)
    die("fork");
  if (child == 0) {
    /* The server side dies with the client side. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    pin(o.server_cpu, "server");
    c.fd = accept(lfd, NULL, NULL);
    if (c.fd < 0)
      die("accept");
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    close(lfd);
    if (o.tls_dir != NULL)
      c.tls = tls_on(c.fd, o.tls_dir, true);
    serve(&c);
    _exit(0);
  }
  close(lfd);
  pin(o.client_cpu, "client");
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    die("connect");
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (o.tls_dir != NULL || o.stream_only) {
    /* With TLS, the stream only: the figure it is the baseline of. */
    if (o.tls_dir != NULL) {
      c.tls = tls_on(c.fd, o.tls_dir, false);
      printf("info tls %s\n", o.tls_dir);
    }
    measure_stream(&c, &o);
    send_msg(&c, OP_END, NULL, 0, 0);
    if (c.tls != NULL) {
      gp_wire_free(c.tls);
      free(c.tls);
    } else {
      close(c.fd);
    }
    goto reap;
  }

  printf("info plan %s\n", o.p->quick ? "quick" : "full");
  printf("info cpus client %d server %d\n", o.client_cpu, o.server_cpu);
  printf("info message_bytes request %u reply %u launch %u\n", o.req_bytes,
         o.reply_bytes, o.launch_bytes);
  measure_pingpong(&c, &o);
  measure_pipelined(&c, &o);
  measure_stream(&c, &o);
  measure_vadd(&c, &o);
  send_msg(&c, OP_END, NULL, 0, 0);
  close(c.fd);
reap:
  if (waitpid(child, &st, 0) != child || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0) {
    fprintf(stderr, PROG ": the server side failed (status 0x%x)\n", st);
    return 1;
  }
  free(c.rbuf);
  return 0;
}
