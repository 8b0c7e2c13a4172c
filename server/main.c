/* gpupool-server: command line, then the supervisor or (with the internal
 * --worker flag) one session's worker. See docs/server.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>

#include "disk_cache.h"
#include "gp_config.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "pool.h"
#include "server.h"
#include "zchunk.h"

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpupool-server [options]\n"
    "\n"
    "Serves remote CUDA sessions: every accepted connection gets a fresh\n"
    "worker process that runs the session on a backend.\n"
    "\n"
    "  --listen HOST[:PORT]   address to listen on (default %s:%d);\n"
    "                         IPv6 as [ADDR]:PORT; port 0 picks a free port\n"
    "  --port-file FILE       write the bound port number to FILE\n"
    "  --backend NAME         device backend: emu or cuda (default emu)\n"
    "  --cuda-lib PATH        cuda: the driver library to load\n"
    "                         (default libcuda.so.1)\n"
    "  --devices all|LIST     the devices to offer: all (default) or a\n"
    "                         comma-separated list of CUDA ordinals, GPU-...\n"
    "                         and MIG-... UUIDs\n"
    "  --list-devices         print the devices and which are offered, and\n"
    "                         exit\n"
    "  --emu-memory SIZE      emu: device memory per session, K/M/G/T\n"
    "                         suffixes (default 2G, 1M to 1T)\n"
    "  --max-sessions N       sessions at once; more are refused\n"
    "                         (default %u, at most %u)\n"
    "  --log-level LEVEL      error, warn, info or debug (default info)\n"
    "  --broker HOST[:PORT]   register with this broker (default port %d)\n"
    "  --name NAME            this server's name in the pool (with --broker)\n"
    "  --label KEY=VALUE      a label the broker matches requests against\n"
    "                         (repeatable, at most %d)\n"
    "  --advertise HOST:PORT  the address clients connect to (default the\n"
    "                         bound --listen address)\n"
    "  --grant-key-file FILE  admit only sessions with a grant signed with\n"
    "                         this key (required with --broker)\n"
    "  --idle-timeout SECONDS reclaim a session with no request for this\n"
    "                         long (default 0: never)\n"
    "  --image-cache DIR|none keep uploaded module images in DIR for all\n"
    "                         sessions (default: a private directory under\n"
    "                         $TMPDIR or /tmp, removed at exit; none: off)\n"
    "  --image-cache-size SIZE  the most bytes the image cache holds, K/M/G/T\n"
    "                         suffixes (default 1G)\n"
    "  --max-conns-per-address N  connections from one IP address at once\n"
    "                         (handshaking or in session); more are closed\n"
    "                         at accept (default %u)\n"
    "  --max-pending N        connections accepted but not yet handed to a\n"
    "                         worker (default %u)\n"
    "  --handshake-timeout MS a connection without its TLS handshake and\n"
    "                         HELLO within this time is closed (default %u,\n"
    "                         100 to 600000)\n"
    "  --send-timeout MS      a client that reads nothing of a reply for\n"
    "                         this long is disconnected (default %u)\n"
    "  --kernel-timeout SECONDS  end a session whose kernel runs longer\n"
    "                         (default 0: never)\n"
    "  --scrub, --no-scrub    zero the device memory a session still holds\n"
    "                         when it ends (default --scrub)\n"
    "  --emu-shared-memory    emu: one device memory shared by all sessions,\n"
    "                         --emu-memory bytes, as on a real GPU (default:\n"
    "                         a private arena per session)\n"
    "  --tls-cert FILE        PEM certificate (then its chain) for TLS\n"
    "                         (required unless --insecure)\n"
    "  --tls-key FILE         PEM private key of --tls-cert\n"
    "  --tls-ca FILE          PEM CA bundle (verifies the broker)\n"
    "  --insecure             plain TCP, no TLS: only on a loopback --listen\n"
    "                         address\n"
    "  --insecure-any-address with --insecure: allow any listen address\n"
    "                         (SIGHUP reloads the TLS files)\n"
    "  --poll-us N            busy-poll the session's socket for up to N\n"
    "                         microseconds before sleeping (adaptive; off\n"
    "                         on one CPU or when the machine is busy;\n"
    "                         default 50, 0: off)\n"
    "  --compress auto|on|off zstd-compress copies when a sample says it\n"
    "                         pays (auto, the default), always, or never\n"
    "  --help                 print this and exit\n"
    "  --version              print the version and exit\n",
    GP_SERVER_DEFAULT_HOST, GP_DEFAULT_SERVER_PORT,
    GP_SERVER_DEFAULT_MAX_SESSIONS, GP_SERVER_MAX_SESSIONS_LIMIT,
    GP_BROKER_DEFAULT_PORT, GP_LABELS_MAX,
    GP_SERVER_DEFAULT_MAX_CONNS_PER_ADDRESS, GP_SERVER_DEFAULT_MAX_PENDING,
    GP_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS, GP_SERVER_DEFAULT_SEND_TIMEOUT_MS);
}

/* Prints a usage error and returns GP_EXIT_USAGE. */
__attribute__((format(printf, 1, 2)))
static int bad(const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "gpupool-server: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'gpupool-server --help'.\n");
  return GP_EXIT_USAGE;
}

const char *gp__exit_name(int status) {
  switch (status) {
  case GP_EXIT_OK: return "session ended";
  case GP_EXIT_USAGE: return "bad worker invocation";
  case GP_EXIT_PROTOCOL: return "protocol error";
  case GP_EXIT_BACKEND: return "backend failure";
  case GP_EXIT_CONN_LOST: return "connection lost";
  case GP_EXIT_IDLE: return "reclaimed idle";
  case GP_EXIT_REFUSED: return "grant refused";
  case GP_EXIT_KERNEL_TIMEOUT: return "kernel timeout";
  case GP_EXIT_SEND_TIMEOUT: return "send timeout";
  case GP_EXIT_HANDSHAKE: return "handshake failed";
  default: return "unexpected status";
  }
}

/* --list-devices: the inventory the supervisor would start with, as a
 * table on stdout. */
static int list_devices(const struct gp_server_config *cfg) {
  struct gp_inventory *inv = malloc(sizeof(*inv));
  int r;

  if (!inv) {
    fprintf(stderr, "gpupool-server: out of memory\n");
    return GP_EXIT_FAILURE;
  }
  r = gp__inventory_build(cfg, inv);
  if (r == 0) {
    gp__inventory_print(inv, stdout);
    if (fflush(stdout) != 0)
      r = GP_EXIT_FAILURE;
  }
  free(inv);
  return r;
}

/* True for an address that only this machine can reach: 127.0.0.0/8,
 * ::1 (or ::ffff:127.x.y.z), or the name localhost. */
static bool loopback_host(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;

  if (strcasecmp(host, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6) ||
           (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
  return false;
}

/* The TLS flags of a supervisor (docs/security.md): cert and key, or
 * --insecure on a loopback address. Returns 0 or GP_EXIT_USAGE after
 * printing why. The files themselves are read by the supervisor. */
static int check_tls_flags(const struct gp_server_config *cfg) {
  if (cfg->insecure) {
    if (cfg->tls_cert || cfg->tls_key)
      return bad("--insecure serves plain TCP: drop --tls-cert and "
                 "--tls-key, or drop --insecure");
    if (!cfg->insecure_any_address && !loopback_host(cfg->host))
      return bad("--insecure serves plain TCP, so only on a loopback "
                 "--listen address (127.0.0.0/8, ::1, localhost); '%s' is "
                 "not one: give --insecure-any-address too to allow it, or "
                 "use TLS (--tls-cert, --tls-key)", cfg->host);
    return 0;
  }
  if (cfg->insecure_any_address)
    return bad("--insecure-any-address goes with --insecure");
  if (!cfg->tls_cert && !cfg->tls_key)
    return bad("TLS is on by default: give --tls-cert and --tls-key "
               "(scripts/gen-certs.sh DIR makes a local set), or --insecure "
               "for plain TCP on loopback");
  if (!cfg->tls_cert)
    return bad("--tls-key needs --tls-cert");
  if (!cfg->tls_key)
    return bad("--tls-cert needs --tls-key");
  return 0;
}

enum {
  OPT_LISTEN = 256,
  OPT_PORT_FILE,
  OPT_BACKEND,
  OPT_EMU_MEMORY,
  OPT_CUDA_LIB,
  OPT_MAX_SESSIONS,
  OPT_LOG_LEVEL,
  OPT_HELP,
  OPT_VERSION,
  OPT_WORKER,
  OPT_SUPERVISOR_PID,
  OPT_DEVICES,
  OPT_LIST_DEVICES,
  OPT_PROBE_DEVICES,
  OPT_BROKER,
  OPT_NAME,
  OPT_LABEL,
  OPT_ADVERTISE,
  OPT_GRANT_KEY_FILE,
  OPT_IDLE_TIMEOUT,
  OPT_OFFER,
  OPT_IMAGE_CACHE,
  OPT_IMAGE_CACHE_SIZE,
  OPT_MAX_CONNS_PER_ADDRESS,
  OPT_MAX_PENDING,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_SEND_TIMEOUT,
  OPT_KERNEL_TIMEOUT,
  OPT_SCRUB,
  OPT_NO_SCRUB,
  OPT_EMU_SHARED_MEMORY,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_CA,
  OPT_INSECURE,
  OPT_INSECURE_ANY_ADDRESS,
  OPT_POLL_US,
  OPT_COMPRESS,
};

static const struct option long_opts[] = {
  {"listen", required_argument, NULL, OPT_LISTEN},
  {"port-file", required_argument, NULL, OPT_PORT_FILE},
  {"backend", required_argument, NULL, OPT_BACKEND},
  {"emu-memory", required_argument, NULL, OPT_EMU_MEMORY},
  {"cuda-lib", required_argument, NULL, OPT_CUDA_LIB},
  {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
  {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
  {"help", no_argument, NULL, OPT_HELP},
  {"version", no_argument, NULL, OPT_VERSION},
  {"devices", required_argument, NULL, OPT_DEVICES},
  {"list-devices", no_argument, NULL, OPT_LIST_DEVICES},
  {"broker", required_argument, NULL, OPT_BROKER},
  {"name", required_argument, NULL, OPT_NAME},
  {"label", required_argument, NULL, OPT_LABEL},
  {"advertise", required_argument, NULL, OPT_ADVERTISE},
  {"grant-key-file", required_argument, NULL, OPT_GRANT_KEY_FILE},
  {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
  {"image-cache", required_argument, NULL, OPT_IMAGE_CACHE},
  {"image-cache-size", required_argument, NULL, OPT_IMAGE_CACHE_SIZE},
  {"max-conns-per-address", required_argument, NULL,
   OPT_MAX_CONNS_PER_ADDRESS},
  {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
  {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
  {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
  {"kernel-timeout", required_argument, NULL, OPT_KERNEL_TIMEOUT},
  {"scrub", no_argument, NULL, OPT_SCRUB},
  {"no-scrub", no_argument, NULL, OPT_NO_SCRUB},
  {"emu-shared-memory", no_argument, NULL, OPT_EMU_SHARED_MEMORY},
  {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
  {"tls-key", required_argument, NULL, OPT_TLS_KEY},
  {"tls-ca", required_argument, NULL, OPT_TLS_CA},
  {"insecure", no_argument, NULL, OPT_INSECURE},
  {"insecure-any-address", no_argument, NULL, OPT_INSECURE_ANY_ADDRESS},
  {"poll-us", required_argument, NULL, OPT_POLL_US},
  {"compress", required_argument, NULL, OPT_COMPRESS},
  /* Internal: the offered GPUs, passed to workers. */
  {"offer", required_argument, NULL, OPT_OFFER},
  /* Internal: how the supervisor lists the devices (probe.c). */
  {"probe-devices", no_argument, NULL, OPT_PROBE_DEVICES},
  /* Internal: how the supervisor starts a worker. */
  {"worker", no_argument, NULL, OPT_WORKER},
  {"supervisor-pid", required_argument, NULL, OPT_SUPERVISOR_PID},
  {NULL, 0, NULL, 0},
};

int main(int argc, char **argv) {
  struct gp_server_config cfg;
  const char *listen = GP_SERVER_DEFAULT_HOST, *why = NULL;
  char whybuf[160];
  unsigned long long v;
  uint64_t size;
  int c, fd;

  /* A closed fd 0, 1 or 2 would be handed to the next file opened (a
   * socket, the cuda backend's printf pipe) and then read or written as
   * stdin, stdout or stderr: hold each with /dev/null. */
  for (fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF &&
        open("/dev/null", O_RDWR) < 0)
      return GP_EXIT_FAILURE;

  memset(&cfg, 0, sizeof(cfg));
  cfg.backend_name = "emu";
  cfg.bcfg.emu_memory = GP_SERVER_DEFAULT_EMU_MEMORY;
  cfg.max_sessions = GP_SERVER_DEFAULT_MAX_SESSIONS;
  cfg.log_level = GP_LOG_INFO;
  cfg.bcfg.cuda_lib = GP_SERVER_DEFAULT_CUDA_LIB;
  cfg.devsel.all = true;
  cfg.image_cache_size = GP_DISK_CACHE_DEFAULT_SIZE;
  cfg.max_conns_per_address = GP_SERVER_DEFAULT_MAX_CONNS_PER_ADDRESS;
  cfg.max_pending = GP_SERVER_DEFAULT_MAX_PENDING;
  cfg.handshake_timeout_ms = GP_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS;
  cfg.send_timeout_ms = GP_SERVER_DEFAULT_SEND_TIMEOUT_MS;
  cfg.scrub = true;
  cfg.poll_us = GP_SERVER_DEFAULT_POLL_US;
  cfg.compress = GP_Z_AUTO;

  opterr = 0;
  /* "+": stop at the first non-option, so a stray word is reported;
   * ":": report a missing value as ':'. */
  while ((c = getopt_long(argc, argv, "+:", long_opts, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN:
      listen = optarg;
      break;
    case OPT_PORT_FILE:
      if (optarg[0] == '\0')
        return bad("--port-file needs a file name");
      cfg.port_file = optarg;
      break;
    case OPT_BACKEND:
      cfg.backend_name = optarg;
      break;
    case OPT_EMU_MEMORY:
      if (gp__parse_size(optarg, &size) != 0)
        return bad("--emu-memory: '%s' is not a size (e.g. 512M, 2G)",
                   optarg);
      if (size < GP_SERVER_MIN_EMU_MEMORY || size > GP_SERVER_MAX_EMU_MEMORY)
        return bad("--emu-memory: '%s' is out of range (1M to 1T)", optarg);
      cfg.bcfg.emu_memory = size;
      break;
    case OPT_CUDA_LIB:
      if (optarg[0] == '\0')
        return bad("--cuda-lib needs a library path");
      cfg.bcfg.cuda_lib = optarg;
      break;
    case OPT_MAX_SESSIONS:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_SESSIONS_LIMIT, &v) != 0 || v == 0)
        return bad("--max-sessions: '%s' is not a number from 1 to 65536",
                   optarg);
      cfg.max_sessions = (unsigned)v;
      break;
    case OPT_LOG_LEVEL:
      if (gp__log_parse_level(optarg, &cfg.log_level) != 0)
        return bad("--log-level: '%s' is not one of error, warn, info, debug",
                   optarg);
      break;
    case OPT_HELP:
      usage(stdout);
      return GP_EXIT_OK;
    case OPT_VERSION:
      printf("gpupool-server %s\n", GP_VERSION_STRING);
      return GP_EXIT_OK;
    case OPT_WORKER:
      cfg.worker = true;
      break;
    case OPT_SUPERVISOR_PID:
      if (gp__parse_uint(optarg, INT_MAX, &v) != 0 || v == 0)
        return bad("--supervisor-pid: '%s' is not a process id", optarg);
      cfg.supervisor_pid = (pid_t)v;
      break;
    case OPT_DEVICES:
      if (gp__devsel_parse(optarg, &cfg.devsel, whybuf, sizeof(whybuf),
                           &why) != 0)
        return bad("--devices '%s': %s", optarg, why);
      break;
    case OPT_LIST_DEVICES:
      cfg.list_devices = true;
      break;
    case OPT_PROBE_DEVICES:
      cfg.probe = true;
      break;
    case OPT_BROKER:
      if (gp__parse_listen(optarg, GP_BROKER_DEFAULT_PORT, cfg.broker_host,
                           sizeof(cfg.broker_host), &cfg.broker_port,
                           &why) != 0)
        return bad("--broker '%s': %s", optarg, why);
      if (cfg.broker_port == 0)
        return bad("--broker '%s': the port must be 1 to 65535", optarg);
      cfg.broker = optarg;
      break;
    case OPT_NAME:
      if (!gp__pool_name_ok(optarg))
        return bad("--name '%s': 1 to %d of A-Z a-z 0-9 . _ -", optarg,
                   GP_POOL_NAME_MAX);
      cfg.name = optarg;
      break;
    case OPT_LABEL: {
      char key[GP_LABEL_KEY_MAX + 1], value[GP_LABEL_VALUE_MAX + 1];
      int i;
      if (gp__label_parse(optarg, key, value, &why) != 0)
        return bad("--label '%s': %s", optarg, why);
      for (i = 0; i < cfg.nlabels; i++)
        if (strncmp(cfg.labels[i], optarg, strlen(key)) == 0 &&
            cfg.labels[i][strlen(key)] == '=')
          return bad("--label '%s': the key '%s' is given twice", optarg,
                     key);
      if (cfg.nlabels == GP_LABELS_MAX)
        return bad("--label: at most %d labels", GP_LABELS_MAX);
      cfg.labels[cfg.nlabels++] = optarg;
      break;
    }
    case OPT_ADVERTISE: {
      char host[256];
      int port;
      if (gp__parse_listen(optarg, -1, host, sizeof(host), &port, &why) != 0)
        return bad("--advertise '%s': %s", optarg, why);
      if (port <= 0)
        return bad("--advertise '%s': HOST:PORT with a port from 1 to 65535",
                   optarg);
      cfg.advertise = optarg;
      break;
    }
    case OPT_GRANT_KEY_FILE:
      if (optarg[0] == '\0')
        return bad("--grant-key-file needs a file name");
      cfg.grant_key_file = optarg;
      break;
    case OPT_IDLE_TIMEOUT:
      if (gp__parse_uint(optarg, 1u << 30, &v) != 0)
        return bad("--idle-timeout: '%s' is not a number of seconds",
                   optarg);
      cfg.idle_timeout_s = (unsigned)v;
      break;
    case OPT_OFFER:
      cfg.offer = optarg;
      break;
    case OPT_IMAGE_CACHE:
      if (optarg[0] == '\0')
        return bad("--image-cache needs a directory or 'none'");
      cfg.image_cache = optarg;
      break;
    case OPT_IMAGE_CACHE_SIZE:
      if (gp__parse_size(optarg, &size) != 0 || size == 0)
        return bad("--image-cache-size: '%s' is not a size (K/M/G/T "
                   "suffixes, more than 0)", optarg);
      cfg.image_cache_size = size;
      break;
    case OPT_MAX_CONNS_PER_ADDRESS:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_CONNS_LIMIT, &v) != 0 ||
          v == 0)
        return bad("--max-conns-per-address: '%s' is not a number from 1 "
                   "to %u", optarg, GP_SERVER_MAX_CONNS_LIMIT);
      cfg.max_conns_per_address = (unsigned)v;
      break;
    case OPT_MAX_PENDING:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_CONNS_LIMIT, &v) != 0 ||
          v == 0)
        return bad("--max-pending: '%s' is not a number from 1 to %u",
                   optarg, GP_SERVER_MAX_CONNS_LIMIT);
      cfg.max_pending = (unsigned)v;
      break;
    case OPT_HANDSHAKE_TIMEOUT:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_HANDSHAKE_TIMEOUT_MS, &v) !=
              0 || v < GP_SERVER_MIN_HANDSHAKE_TIMEOUT_MS)
        return bad("--handshake-timeout: '%s' is not a number of "
                   "milliseconds from %u to %u", optarg,
                   GP_SERVER_MIN_HANDSHAKE_TIMEOUT_MS,
                   GP_SERVER_MAX_HANDSHAKE_TIMEOUT_MS);
      cfg.handshake_timeout_ms = (unsigned)v;
      break;
    case OPT_SEND_TIMEOUT:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_SEND_TIMEOUT_MS, &v) != 0 ||
          v == 0)
        return bad("--send-timeout: '%s' is not a number of milliseconds "
                   "from 1 to %u", optarg, GP_SERVER_MAX_SEND_TIMEOUT_MS);
      cfg.send_timeout_ms = (unsigned)v;
      break;
    case OPT_KERNEL_TIMEOUT:
      if (gp__parse_uint(optarg, GP_SERVER_MAX_KERNEL_TIMEOUT_S, &v) != 0)
        return bad("--kernel-timeout: '%s' is not a number of seconds from "
                   "0 to %u", optarg, GP_SERVER_MAX_KERNEL_TIMEOUT_S);
      cfg.kernel_timeout_s = (unsigned)v;
      break;
    case OPT_SCRUB:
      cfg.scrub = true;
      break;
    case OPT_NO_SCRUB:
      cfg.scrub = false;
      break;
    case OPT_EMU_SHARED_MEMORY:
      cfg.emu_shared_memory = true;
      break;
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
    case OPT_TLS_CA:
      if (optarg[0] == '\0')
        return bad("%s needs a file name", argv[optind - 1]);
      if (c == OPT_TLS_CERT)
        cfg.tls_cert = optarg;
      else if (c == OPT_TLS_KEY)
        cfg.tls_key = optarg;
      else
        cfg.tls_ca = optarg;
      break;
    case OPT_INSECURE:
      cfg.insecure = true;
      break;
    case OPT_INSECURE_ANY_ADDRESS:
      cfg.insecure_any_address = true;
      break;
    case OPT_POLL_US:
      if (gp__parse_uint(optarg, 100000, &v) != 0)
        return bad("--poll-us: '%s' is not a number of microseconds "
                   "(0 to 100000)", optarg);
      cfg.poll_us = (unsigned)v;
      break;
    case OPT_COMPRESS: {
      enum gp_z_mode zm;
      if (gp_z_parse_mode(optarg, &zm) != 0)
        return bad("--compress: '%s' is not auto, on or off", optarg);
      cfg.compress = (int)zm;
      break;
    }
    case ':':
      return bad("%s needs a value", argv[optind - 1]);
    default:
      return bad("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return bad("unexpected argument '%s'", argv[optind]);

  cfg.backend = gp__backend_find(cfg.backend_name);
  if (!cfg.backend)
    return bad("--backend: unknown backend '%s' (available: emu, cuda)",
               cfg.backend_name);
  /* The emulated device is the only device of the emu backend. */
  if (strcmp(cfg.backend_name, "emu") == 0 && !cfg.devsel.all &&
      !(cfg.devsel.n == 1 && cfg.devsel.e[0].kind == GP_DEVSEL_ORDINAL &&
        cfg.devsel.e[0].ordinal == 0))
    return bad("--devices: the emu backend has one device: use 'all' or "
               "'0'");
  if (gp__parse_listen(listen, GP_DEFAULT_SERVER_PORT, cfg.host,
                       sizeof(cfg.host), &cfg.port, &why) != 0) {
    fprintf(stderr, "gpupool-server: --listen '%s': %s\n"
            "Try 'gpupool-server --help'.\n", listen, why);
    return GP_EXIT_USAGE;
  }
  gp__log_set_level(cfg.log_level);
  if (cfg.broker && !cfg.name)
    return bad("--broker needs --name");
  if (cfg.broker && !cfg.grant_key_file)
    return bad("--broker needs --grant-key-file (the broker's key)");
  if (cfg.grant_key_file && !cfg.name)
    return bad("--grant-key-file needs --name (grants name the server)");
  /* The broker link: mutual TLS unless --insecure. */
  if (cfg.broker && !cfg.insecure && !cfg.worker && !cfg.probe) {
    if (!cfg.tls_cert || !cfg.tls_key)
      return bad("--broker needs --tls-cert and --tls-key (this server's "
                 "certificate, its client certificate to the broker), or "
                 "--insecure for plain TCP");
    if (!cfg.tls_ca)
      return bad("--broker needs --tls-ca FILE (the pool's CA: it verifies "
                 "the broker), or --insecure for plain TCP");
  }
  if (cfg.grant_key_file && !cfg.worker && !cfg.probe) {
    /* Checked here so that a bad key is a usage error with its reason;
     * each worker loads it again for itself. */
    uint8_t *key = malloc(GP_KEY_MAX_LEN);
    size_t keylen;
    char kwhy[512];
    int kr;
    if (!key)
      return GP_EXIT_FAILURE;
    kr = gp_key_load(cfg.grant_key_file, key, &keylen, kwhy, sizeof(kwhy));
    OPENSSL_cleanse(key, GP_KEY_MAX_LEN);
    free(key);
    if (kr != 0)
      return bad("--grant-key-file: %s", kwhy);
  }

  cfg.bcfg.emu_uuid_seed = cfg.name;
  if (cfg.emu_shared_memory && strcmp(cfg.backend_name, "emu") != 0)
    return bad("--emu-shared-memory needs --backend emu");

  if (!cfg.worker && !cfg.probe && !cfg.list_devices) {
    int tr = check_tls_flags(&cfg);
    if (tr != 0)
      return tr;
  }
  /* A worker finds the shared device memory on its fd (the supervisor
   * passes it only with --emu-shared-memory). */
  if (cfg.worker && cfg.emu_shared_memory)
    cfg.bcfg.emu_shared_fd = GP_WORKER_EMU_SHM_FD;
  /* --scrub also zeroes what a session frees while it runs (emu shared
   * memory; the cuda backend), not only what it holds at the end. */
  cfg.bcfg.scrub_free = cfg.scrub;

  if (cfg.probe)
    return gp__probe_run(&cfg);
  if (cfg.worker)
    return gp__worker_run(&cfg);
  if (cfg.list_devices)
    return list_devices(&cfg);
  return gp__supervisor_run(&cfg);
}
