/* gpupool-broker: the command line, the config file, then the daemon. See
 * docs/broker.md. */
#include <errno.h>
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
    "  --log-level LEVEL      error, warn, info or debug (default info)\n"
    "  --help                 print this and exit\n"
    "  --version              print the version and exit\n",
    BRK_DEFAULT_HOST, BRK_DEFAULT_PORT);
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
};

int main(int argc, char **argv) {
  static const struct option opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
  };
  const char *listen = BRK_DEFAULT_HOST, *config = NULL, *port_file = NULL;
  const char *why = NULL;
  struct brk_config cfg;
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
  if (brk_config_load(&cfg, config, err, sizeof(err)) != 0) {
    fprintf(stderr, "gpupool-broker: %s\n", err);
    brk_config_free(&cfg);
    return BRK_EXIT_USAGE;
  }
  status = brk_daemon_run(&cfg, host, port, port_file);
  brk_config_free(&cfg);
  return status;
}
