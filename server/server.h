/* Private header of gpupool-server (server/): the configuration that
 * main.c parses and the two roles the binary plays, the supervisor (a
 * libuv loop that accepts sessions) and the per-session worker. See
 * docs/server.md.
 */
#ifndef GP_SERVER_SERVER_H
#define GP_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "daemon_util.h"
#include "devices.h"
#include "log.h"

#define GP_SERVER_DEFAULT_HOST "127.0.0.1"
#define GP_SERVER_DEFAULT_MAX_SESSIONS 128u
#define GP_SERVER_MAX_SESSIONS_LIMIT 65536u
#define GP_SERVER_DEFAULT_CUDA_LIB "libcuda.so.1"
#define GP_SERVER_DEFAULT_EMU_MEMORY (2ull << 30)
#define GP_SERVER_MIN_EMU_MEMORY (1ull << 20)
#define GP_SERVER_MAX_EMU_MEMORY (1ull << 40)

/* The fd on which a worker receives its session's socket. */
#define GP_WORKER_FD 3

/* A worker waits this long for each read of the handshake. */
#define GP_WORKER_HELLO_TIMEOUT_MS 10000

/* Exit statuses. The supervisor exits GP_EXIT_OK after a signal,
 * GP_EXIT_FAILURE when it cannot start, GP_EXIT_USAGE for a bad command
 * line. A worker's status says how its session ended; the supervisor logs
 * it. */
enum gp_exit {
  GP_EXIT_OK = 0,            /* worker: GOODBYE or end of stream */
  GP_EXIT_FAILURE = 1,       /* supervisor: could not start */
  GP_EXIT_USAGE = 2,         /* bad command line (either role) */
  GP_EXIT_PROTOCOL = 3,      /* worker: the client broke the protocol, or
                              * the handshake failed (timeout, no version
                              * in common) */
  GP_EXIT_BACKEND = 4,       /* worker: the backend could not open, or the
                              * worker ran out of memory */
  GP_EXIT_CONN_LOST = 5,     /* worker: the connection failed mid-frame */
  GP_EXIT_IDLE = 6,          /* worker: the session was reclaimed after
                              * --idle-timeout without a request */
  GP_EXIT_REFUSED = 7,       /* worker: the session's grant was refused
                              * (docs/broker.md, "Grants") */
};

/* The fd on which a worker reports to the supervisor (pool.h, "Worker
 * reports"): a socketpair, lines both ways. */
#define GP_WORKER_REPORT_FD 4

/* The broker's port when --broker names none. */
#define GP_BROKER_DEFAULT_PORT 7470

/* --label: the most labels, and the longest key and value. */
#define GP_LABELS_MAX 32

/* The command line, parsed. Strings point into argv. */
struct gp_server_config {
  bool worker;                 /* --worker: serve the session on fd 3 */
  pid_t supervisor_pid;        /* --supervisor-pid (worker only), 0: none */
  char host[256];              /* --listen HOST[:PORT] */
  int port;
  const char *backend_name;    /* --backend */
  const struct gp_backend_ops *backend;
  struct gp_backend_config bcfg;
  const char *port_file;       /* --port-file, NULL: none */
  unsigned max_sessions;       /* --max-sessions */
  enum gp_log_level log_level; /* --log-level */
  /* Devices (devices.h). */
  struct gp_devsel devsel;     /* --devices, parsed */
  bool list_devices;           /* --list-devices: print the inventory, exit */
  bool probe;                  /* --probe-devices (internal): list the
                                * backend's devices on fd 3, exit */
  /* The pool (docs/broker.md). */
  const char *broker;          /* --broker HOST[:PORT], NULL: none */
  char broker_host[256];
  int broker_port;
  const char *name;            /* --name, NULL: none */
  const char *labels[GP_LABELS_MAX]; /* --label key=value, checked */
  int nlabels;
  const char *advertise;       /* --advertise HOST:PORT, NULL: the bound
                                * listen address */
  const char *grant_key_file;  /* --grant-key-file, NULL: admit everything */
  unsigned idle_timeout_s;     /* --idle-timeout, 0: never */
  const char *offer;           /* --offer (worker only, internal): the
                                * offered GPU UUIDs, comma-separated */
  /* The module images shared by the sessions (disk_cache.h). */
  const char *image_cache;     /* --image-cache DIR, NULL: the default (a
                                * private directory; workers: none),
                                * "none": disabled */
  uint64_t image_cache_size;   /* --image-cache-size, bytes */
};

/* Runs the supervisor until SIGINT or SIGTERM. Returns the process exit
 * status. Call from the main thread, once. */
int gp__supervisor_run(const struct gp_server_config *cfg);

/* Serves one session on fd GP_WORKER_FD until it ends. Returns the process
 * exit status (enum gp_exit). Call from the main thread, once. */
int gp__worker_run(const struct gp_server_config *cfg);

/* What gp__worker_run() does once its process is set up: serves the
 * session on socket |fd| (blocking) until it ends, frees everything, and
 * returns the exit status; |fd| is closed. With |cancel| non-NULL the
 * session runs inside a host process (tests/fuzz/fuzz_dispatch.c): no
 * heartbeat thread, no supervisor report socket, and a kernel stops when
 * *cancel becomes non-zero. NULL: a worker process (gp__worker_run). */
int gp__worker_serve(const struct gp_server_config *cfg, int fd,
                     const int *cancel);

/* A short name for a worker's exit status, for logs. */
const char *gp__exit_name(int status);

#endif
