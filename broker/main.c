/* gpupool-broker: the command line, the config file, then the daemon. See
 * docs/broker.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "daemon_util.h"
#include "gp_config.h"
#include "gpupool/errors.h"
#include "log.h"

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpupool-broker --config FILE [options]\n"
    "\n"
    "Knows every GPU of a gpupool pool: pool servers register with it, and\n"
    "clients ask it for a session on the least-loaded GPU that fits.\n"
    "\n"
    "  --listen HOST[:PORT]   address to listen on (default %s:%d);\n"
    "                         IPv6 as [ADDR]:PORT; port 0 picks a free port\n"
    "  --config FILE          the config file (INI: [broker], [tenant.NAME],\n"
    "                         [admin]; see docs/broker.md)\n"
    "  --port-file FILE       write the bound port number to FILE\n"
    "  --tls-cert FILE        the broker's certificate (PEM, then its chain)\n"
    "  --tls-key FILE         its private key (PEM)\n"
    "  --tls-ca FILE          the pool's CA (PEM): verifies the servers'\n"
    "                         client certificates\n"
    "  --insecure             plain TCP, no TLS (loopback addresses only)\n"
    "  --insecure-any-address with --insecure: any listen address\n"
    "  --handshake-timeout MS a TLS handshake must finish within MS\n"
    "                         (default %u, 100 to 600000)\n"
    "  --log-level LEVEL      error, warn, info or debug (default info)\n"
    "  --help                 print this and exit\n"
    "  --version              print the version and exit\n",
    BRK_DEFAULT_HOST, BRK_DEFAULT_PORT, BRK_HANDSHAKE_MS_DEFAULT);
}

__attribute__((format(printf, 1, 2)))
static int bad(const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "gpupool-broker: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'gpupool-broker --help'.\n");
  return BRK_EXIT_USAGE;
}


enum {
  OPT_LISTEN = 256,
  OPT_CONFIG,
  OPT_PORT_FILE,
  OPT_LOG_LEVEL,
  OPT_HELP,
  OPT_VERSION,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_CA,
  OPT_INSECURE,
  OPT_INSECURE_ANY,
  OPT_HANDSHAKE_TIMEOUT,
};

/* A loopback listen address: 127.0.0.0/8, ::1 or "localhost". */
static bool loopback_host(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;

  if (strcmp(host, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"insecure-any-address", no_argument, NULL, OPT_INSECURE_ANY},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {NULL, 0, NULL, 0},
  };
  const char *listen = BRK_DEFAULT_HOST, *config = NULL, *port_file = NULL;
  const char *why = NULL;
  struct brk_config cfg;
  struct brk_tls tls = {.handshake_ms = BRK_HANDSHAKE_MS_DEFAULT};
  bool any_address = false;
  unsigned long long ms;
  enum gp_log_level level;
  char host[256], err[512];
  int c, port, status;

  gp__log_set_program("gpupool-broker");
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN:
      listen = optarg;
      break;
    case OPT_CONFIG:
      config = optarg;
      break;
    case OPT_PORT_FILE:
      port_file = optarg;
      break;
    case OPT_LOG_LEVEL:
      if (gp__log_parse_level(optarg, &level) != 0)
        return bad("--log-level: '%s' is not error, warn, info or debug",
                   optarg);
      gp__log_set_level(level);
      break;
    case OPT_TLS_CERT:
      tls.cert = optarg;
      break;
    case OPT_TLS_KEY:
      tls.key = optarg;
      break;
    case OPT_TLS_CA:
      tls.ca = optarg;
      break;
    case OPT_INSECURE:
      tls.insecure = true;
      break;
    case OPT_INSECURE_ANY:
      any_address = true;
      break;
    case OPT_HANDSHAKE_TIMEOUT:
      if (gp__parse_uint(optarg, BRK_HANDSHAKE_MS_MAX, &ms) != 0 ||
          ms < BRK_HANDSHAKE_MS_MIN)
        return bad("--handshake-timeout: '%s' is not %u to %u ms", optarg,
                   BRK_HANDSHAKE_MS_MIN, BRK_HANDSHAKE_MS_MAX);
      tls.handshake_ms = (unsigned)ms;
      break;
    case OPT_HELP:
      usage(stdout);
      return BRK_EXIT_OK;
    case OPT_VERSION:
      printf("gpupool-broker %s\n", GP_VERSION_STRING);
      return BRK_EXIT_OK;
    case ':':
      return bad("%s needs a value", argv[optind - 1]);
    default:
      return bad("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return bad("unexpected argument '%s'", argv[optind]);
  if (!config)
    return bad("--config FILE is required");
  if (gp__parse_listen(listen, BRK_DEFAULT_PORT, host, sizeof(host), &port, &why) != 0)
    return bad("--listen '%s': %s", listen, why);
  if (tls.insecure) {
    if (tls.cert || tls.key || tls.ca)
      return bad("--insecure takes no --tls-cert, --tls-key or --tls-ca");
    if (!any_address && !loopback_host(host))
      return bad("--insecure: plain TCP is allowed only on a loopback "
                 "--listen address (127.0.0.0/8, ::1, localhost), not '%s'; "
                 "add --insecure-any-address to allow it anywhere", host);
  } else if (any_address) {
    return bad("--insecure-any-address goes with --insecure");
  } else if (!tls.cert && !tls.key) {
    return bad("TLS is on by default: give --tls-cert and --tls-key "
               "(scripts/gen-certs.sh DIR makes a local set), or --insecure "
               "for plain TCP on loopback");
  } else if (!tls.cert || !tls.key) {
    return bad("--tls-cert and --tls-key go together");
  } else if (!tls.ca) {
    return bad("--tls-ca FILE is required with TLS: the pool's CA, which "
               "verifies the servers' client certificates");
  }
  if (brk_config_load(&cfg, config, err, sizeof(err)) != 0) {
    fprintf(stderr, "gpupool-broker: %s\n", err);
    brk_config_free(&cfg);
    return BRK_EXIT_USAGE;
  }
  status = brk_daemon_run(&cfg, &tls, host, port, port_file);
  brk_config_free(&cfg);
  return status;
}
