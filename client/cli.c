/* gpupool: the command-line tool.
 *
 *   gpupool attach [--server HOST[:PORT]] [--trace] [--] PROGRAM [ARGS...]
 *   gpupool version
 *   gpupool help
 *
 * `attach` runs PROGRAM with gpupool's libcuda.so.1 first on
 * LD_LIBRARY_PATH and the server in GPUPOOL_SERVER, by exec'ing it: the
 * exit status is the program's own. Before the exec, the statuses follow
 * env(1) and the shells: 127 when PROGRAM is not found, 126 when it cannot
 * be run, 125 when gpupool itself fails (bad usage, no server, no
 * library).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gp_config.h"
#include "gpupool/gpupool.h"

#define EXIT_GP_FAILED 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

/* Where gpupool's libcuda.so.1 lives: $GPUPOOL_LIB_DIR, else beside this
 * executable. */
#define GP_LIBCUDA "libcuda.so.1"

static void usage(FILE *f) {
  fprintf(f,
          "usage: gpupool attach [--server HOST[:PORT]] [--trace] [--] "
          "PROGRAM [ARGS...]\n"
          "       gpupool version\n"
          "       gpupool help\n"
          "\n"
          "attach   run PROGRAM with its CUDA calls sent to a gpupool server\n"
          "         --server HOST[:PORT]  the server (default port %d); "
          "overrides $%s\n"
          "         --trace               log every CUDA driver call to "
          "stderr ($%s=1)\n"
          "version  print the version and the protocol versions spoken\n"
          "help     print this text\n"
          "\n"
          "Environment: %s, %s (seconds, default 10), %s (seconds, default "
          "5),\n"
          "%s, %s (where libcuda.so.1 is; default: beside gpupool).\n",
          GP_DEFAULT_SERVER_PORT, GP_ENV_SERVER, GP_ENV_TRACE, GP_ENV_SERVER,
          GP_ENV_CONNECT_TIMEOUT, GP_ENV_IO_TIMEOUT, GP_ENV_TRACE,
          GP_ENV_LIB_DIR);
}

/* The directory holding gpupool's libcuda.so.1, into |out|. Returns 0, or
 * -1 after saying why. */
static int lib_dir(char *out, size_t len) {
  const char *env = getenv(GP_ENV_LIB_DIR);
  if (env != NULL && *env != '\0') {
    if (strlen(env) >= len) {
      fprintf(stderr, "gpupool: %s is too long\n", GP_ENV_LIB_DIR);
      return -1;
    }
    strcpy(out, env);
  } else {
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n < 0 || (size_t)n >= len - 1) {
      fprintf(stderr, "gpupool: cannot find my own executable: %s\n",
              n < 0 ? strerror(errno) : "path too long");
      return -1;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
      fprintf(stderr, "gpupool: odd executable path %s\n", out);
      return -1;
    }
    *slash = '\0';
  }
  char lib[PATH_MAX + 32];
  snprintf(lib, sizeof(lib), "%s/%s", out, GP_LIBCUDA);
  if (access(lib, R_OK) != 0) {
    fprintf(stderr, "gpupool: %s: %s (set %s to the directory holding "
            "gpupool's %s)\n", lib, strerror(errno), GP_ENV_LIB_DIR,
            GP_LIBCUDA);
    return -1;
  }
  return 0;
}

static int cmd_attach(int argc, char **argv) {
  const char *server = NULL;
  bool trace = false;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--server") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "gpupool attach: --server needs HOST[:PORT]\n");
        return EXIT_GP_FAILED;
      }
      server = argv[++i];
    } else if (strncmp(a, "--server=", 9) == 0) {
      server = a + 9;
    } else if (strcmp(a, "--trace") == 0) {
      trace = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "gpupool attach: unknown option %s (put -- before a "
              "program whose name starts with -)\n", a);
      return EXIT_GP_FAILED;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "gpupool attach: no program to run\n");
    usage(stderr);
    return EXIT_GP_FAILED;
  }
  if (server == NULL) {
    server = getenv(GP_ENV_SERVER);
    if (server == NULL || *server == '\0') {
      fprintf(stderr, "gpupool attach: no server: give --server HOST[:PORT] "
              "or set %s\n", GP_ENV_SERVER);
      return EXIT_GP_FAILED;
    }
  } else if (*server == '\0') {
    fprintf(stderr, "gpupool attach: --server needs HOST[:PORT]\n");
    return EXIT_GP_FAILED;
  }

  char dir[PATH_MAX];
  if (lib_dir(dir, sizeof(dir)) < 0)
    return EXIT_GP_FAILED;
  const char *old = getenv("LD_LIBRARY_PATH");
  size_t len = strlen(dir) + (old ? strlen(old) : 0) + 2;
  char *path = malloc(len);
  if (path == NULL) {
    fprintf(stderr, "gpupool: out of memory\n");
    return EXIT_GP_FAILED;
  }
  if (old != NULL && *old != '\0')
    snprintf(path, len, "%s:%s", dir, old);
  else
    snprintf(path, len, "%s", dir);
  if (setenv("LD_LIBRARY_PATH", path, 1) != 0 ||
      setenv(GP_ENV_SERVER, server, 1) != 0 ||
      (trace && setenv(GP_ENV_TRACE, "1", 1) != 0)) {
    fprintf(stderr, "gpupool: cannot set the environment: %s\n",
            strerror(errno));
    free(path);
    return EXIT_GP_FAILED;
  }
  free(path);

  execvp(argv[i], &argv[i]);
  int err = errno;
  fprintf(stderr, "gpupool: cannot run %s: %s\n", argv[i], strerror(err));
  return err == ENOENT || err == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_GP_FAILED;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "attach") == 0)
    return cmd_attach(argc - 1, argv + 1);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("gpupool %s (protocol versions %d to %d)\n", GP_VERSION_STRING,
           GP_PROTOCOL_VERSION_MIN, GP_PROTOCOL_VERSION_MAX);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "gpupool: unknown command %s\n", cmd);
  usage(stderr);
  return EXIT_GP_FAILED;
}
