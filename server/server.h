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
  GP_EXIT_KERNEL_TIMEOUT = 8, /* worker: a kernel ran over
                              * --kernel-timeout (docs/security.md) */
  GP_EXIT_SEND_TIMEOUT = 9,  /* worker: the client read nothing for
                              * --send-timeout while the worker wrote */
  GP_EXIT_HANDSHAKE = 10,    /* worker: the TLS handshake failed, the
                              * client spoke plain TCP to a TLS port (or TLS
                              * to an --insecure one), or no HELLO came
                              * within --handshake-timeout */
};

/* The fd on which a worker reports to the supervisor (pool.h, "Worker
 * reports"): a socketpair, lines both ways. */
#define GP_WORKER_REPORT_FD 4

/* Isolation and limits (docs/security.md, "Isolation and limits on the
 * server"): defaults and ranges. */
#define GP_SERVER_DEFAULT_MAX_CONNS_PER_ADDRESS 64u
#define GP_SERVER_DEFAULT_MAX_PENDING 1024u
#define GP_SERVER_MAX_CONNS_LIMIT 1000000u
#define GP_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u
#define GP_SERVER_MIN_HANDSHAKE_TIMEOUT_MS 100u
#define GP_SERVER_MAX_HANDSHAKE_TIMEOUT_MS 600000u
#define GP_SERVER_DEFAULT_SEND_TIMEOUT_MS 30000u
#define GP_SERVER_MAX_SEND_TIMEOUT_MS 3600000u
#define GP_SERVER_MAX_KERNEL_TIMEOUT_S 86400u

/* The fd on which a worker inherits the emulated device's shared memory
 * (--emu-shared-memory: backend/emu/shared.h). */
#define GP_WORKER_EMU_SHM_FD 6
/* The fd on which a worker receives the supervisor's current TLS
 * certificate, key and CA (a sealed memfd: GP_TLS_BLOB_MAGIC, then the
 * three lengths as decimal numbers, a newline and the PEM bytes one after
 * the other); absent with --insecure. Workers never open the files. */
#define GP_WORKER_TLS_FD 5
#define GP_TLS_BLOB_MAGIC "gpupool-tls-pem 1"

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
  /* Isolation and limits (docs/security.md). */
  unsigned max_conns_per_address; /* --max-conns-per-address */
  unsigned max_pending;        /* --max-pending */
  unsigned handshake_timeout_ms; /* --handshake-timeout */
  unsigned send_timeout_ms;    /* --send-timeout */
  unsigned kernel_timeout_s;   /* --kernel-timeout, 0: none */
  bool scrub;                  /* --scrub (default) / --no-scrub */
  bool emu_shared_memory;      /* --emu-shared-memory */
  /* TLS on the session port and the broker link (docs/security.md). */
  const char *tls_cert;        /* --tls-cert FILE, NULL: none */
  const char *tls_key;         /* --tls-key FILE */
  const char *tls_ca;          /* --tls-ca FILE: verifies the broker */
  bool insecure;               /* --insecure: plain TCP */
  bool insecure_any_address;   /* --insecure-any-address */
  /* Performance (issue 8). */
  unsigned poll_us;            /* --poll-us: a worker's busy-poll window
                                * before it sleeps for the next request
                                * (protocol/wire.h), 0: off */
  int compress;                /* --compress: enum gp_z_mode (zchunk.h) */
};

/* The default --poll-us. */
#define GP_SERVER_DEFAULT_POLL_US 50u

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
