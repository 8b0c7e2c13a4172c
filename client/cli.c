/* gpupool: the command-line tool.
 *
 *   gpupool attach [--broker HOST[:PORT]] [--token-file FILE] [--mem SIZE]
 *                  [--label K=V]... [--server NAME|HOST[:PORT]] [--trace]
 *                  [--tls-ca FILE] [--insecure [--insecure-any-address]]
 *                  [--] PROGRAM [ARGS...]
 *   gpupool status   [--broker HOST[:PORT]] [--token-file FILE] [--json]
 *   gpupool sessions [--broker HOST[:PORT]] [--token-file FILE] [--json]
 *   gpupool drain NAME   [--broker HOST[:PORT]] [--token-file FILE]
 *   gpupool undrain NAME [--broker HOST[:PORT]] [--token-file FILE]
 *   (these four also take --tls-ca FILE and --insecure)
 *   gpupool version
 *   gpupool help
 *
 * `attach` runs PROGRAM with gpupool's libcuda.so.1 first on
 * LD_LIBRARY_PATH and the pool's settings in the environment (the server in
 * GPUPOOL_SERVER, or the broker in GPUPOOL_BROKER and the request's
 * settings beside it), by exec'ing it: the exit status is the program's
 * own. Before the exec, the statuses follow env(1) and the shells: 127 when
 * PROGRAM is not found, 126 when it cannot be run, 125 when gpupool itself
 * fails (bad usage, no server, no library).
 *
 * The broker's commands send one request and print its answer, a table or
 * (--json) the JSON object of docs/broker.md. Their exit statuses: 0 done,
 * 1 the broker refused (its message on stderr), 2 usage (or a bad
 * configuration), 3 the broker cannot be reached.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "gp_config.h"
#include "gpupool/gpupool.h"
#include "msg.h"

#define EXIT_GP_FAILED 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

/* The broker's commands. */
#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

/* Where gpupool's libcuda.so.1 lives: $GPUPOOL_LIB_DIR, else beside this
 * executable. */
#define GP_LIBCUDA "libcuda.so.1"

static void usage(FILE *f) {
  fprintf(f,
          "usage: gpupool attach [--broker HOST[:PORT]] [--token-file FILE] "
          "[--mem SIZE]\n"
          "                      [--label K=V]... [--server NAME|HOST[:PORT]] "
          "[--trace]\n"
          "                      [--tls-ca FILE] [--insecure "
          "[--insecure-any-address]]\n"
          "                      [--] PROGRAM [ARGS...]\n"
          "       gpupool status   [--broker HOST[:PORT]] [--token-file FILE] "
          "[--json]\n"
          "       gpupool sessions [--broker HOST[:PORT]] [--token-file FILE] "
          "[--json]\n"
          "       gpupool drain NAME   [--broker HOST[:PORT]] [--token-file "
          "FILE]\n"
          "       gpupool undrain NAME [--broker HOST[:PORT]] [--token-file "
          "FILE]\n"
          "       gpupool version\n"
          "       gpupool help\n"
          "\n"
          "attach    run PROGRAM with its CUDA calls sent to the pool\n"
          "          --broker HOST[:PORT]  ask this broker for a session "
          "(default port %d;\n"
          "                                $%s)\n"
          "          --token-file FILE     the tenant's token: the file's "
          "first line ($%s)\n"
          "          --mem SIZE            device memory to ask for: 512M, "
          "8G (K, M, G, T; $%s)\n"
          "          --label K=V           a label the server must have; "
          "repeatable ($%s)\n"
          "          --server NAME         with a broker: only that server "
          "($%s)\n"
          "          --server HOST[:PORT]  without one: connect there "
          "directly (default port %d;\n"
          "                                $%s)\n"
          "          --trace               log every CUDA driver call to "
          "stderr ($%s=1)\n"
          "          --tls-ca FILE         the CA that verifies the server "
          "($GPUPOOL_TLS_CA;\n"
          "                                default: the system's store)\n"
          "          --insecure            plain TCP, no TLS, loopback "
          "servers only\n"
          "                                ($GPUPOOL_INSECURE=1)\n"
          "          --insecure-any-address  plain TCP to any address\n"
          "                                ($GPUPOOL_INSECURE_ANY_ADDRESS=1)"
          "\n"
          "          exit status: the program's; before it runs, 125 "
          "gpupool failed,\n"
          "          126 the program cannot be run, 127 it is not found\n"
          "status    the broker's servers, their state and their GPUs\n"
          "sessions  the sessions the broker knows (a tenant's token: its "
          "own)\n"
          "          --json                print the broker's answer as one "
          "JSON object\n"
          "drain     give server NAME no new sessions (the admin token)\n"
          "undrain   give it sessions again\n"
          "          these four: --broker as above; --token-file FILE "
          "(else $%s or\n"
          "          $%s); exit status 0 done, 1 refused by the broker, 2 "
          "usage,\n"
          "          3 the broker cannot be reached\n"
          "          --tls-ca FILE         the CA that verifies the broker "
          "($GPUPOOL_TLS_CA)\n"
          "          --insecure            plain TCP to a broker on loopback "
          "($GPUPOOL_INSECURE=1)\n"
          "version   print the version and the protocol versions spoken\n"
          "help      print this text\n"
          "\n"
          "Settings not given come from the environment, then from the "
          "[client] section of\n"
          "$%s (default $XDG_CONFIG_HOME/gpupool/client.conf or\n"
          "~/.config/gpupool/client.conf): keys broker, token, token_file, "
          "memory, labels,\n"
          "server. Also read: %s (seconds, default 10), %s (seconds,\n"
          "default 5), %s (where libcuda.so.1 is; default: beside gpupool).\n",
          GP_DEFAULT_BROKER_PORT, GP_ENV_BROKER, GP_ENV_TOKEN_FILE, GP_ENV_MEM,
          GP_ENV_LABELS, GP_ENV_SERVER_NAME, GP_DEFAULT_SERVER_PORT,
          GP_ENV_SERVER, GP_ENV_TRACE, GP_ENV_TOKEN, GP_ENV_TOKEN_FILE,
          GP_ENV_CONFIG, GP_ENV_CONNECT_TIMEOUT, GP_ENV_IO_TIMEOUT,
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

/* An option's value: "--opt VALUE" or "--opt=VALUE" at argv[*i]. Returns
 * the value (advancing *i past it), NULL when argv[*i] is not |opt|, or
 * |missing| when the value is missing. */
static const char missing[] = "";
static const char *opt_value(int argc, char **argv, int *i, const char *opt) {
  size_t n = strlen(opt);
  const char *a = argv[*i];
  if (strncmp(a, opt, n) != 0)
    return NULL;
  if (a[n] == '=')
    return a + n + 1;
  if (a[n] != '\0')
    return NULL;
  if (*i + 1 >= argc)
    return missing;
  return argv[++*i];
}

/* Appends "k=v" to the comma-separated |labels|. Returns 0, or -1 after
 * saying why. */
static int add_label(char *labels, size_t cap, const char *kv) {
  const char *eq = strchr(kv, '=');
  if (eq == NULL || eq == kv || strchr(kv, ',') != NULL) {
    fprintf(stderr, "gpupool attach: --label wants KEY=VALUE (no comma), "
            "not %s\n", kv);
    return -1;
  }
  size_t used = strlen(labels);
  if (used + strlen(kv) + 2 > cap) {
    fprintf(stderr, "gpupool attach: too many labels\n");
    return -1;
  }
  snprintf(labels + used, cap - used, "%s%s", used ? "," : "", kv);
  return 0;
}

static int set(const char *name, const char *value) {
  if (setenv(name, value, 1) != 0) {
    fprintf(stderr, "gpupool: cannot set %s: %s\n", name, strerror(errno));
    return -1;
  }
  return 0;
}

/* The settings of attach, decided (docs/client.md, "The pool"). */
struct attach_opts {
  const char *broker, *token_file, *mem, *server;
  char labels[2048];
  bool have_labels, trace;
  /* TLS (docs/security.md): passed on as GPUPOOL_TLS_CA, GPUPOOL_INSECURE
   * and GPUPOOL_INSECURE_ANY_ADDRESS. */
  const char *tls_ca;
  bool insecure, insecure_any_address;
};

/* Puts the pool's settings of |o| in the environment the program will see.
 * Returns 0, or -1 after saying why. */
static int attach_env(const struct attach_opts *o) {
  struct gp__conf *cf = calloc(1, sizeof(*cf));
  struct gp__pool *pool = calloc(1, sizeof(*pool));
  char why[1024];
  int ret = -1;
  if (cf == NULL || pool == NULL) {
    fprintf(stderr, "gpupool: out of memory\n");
    goto out;
  }
  if (gp__conf_load(cf, why, sizeof(why)) < 0 ||
      gp__pool_resolve(cf, o->broker, NULL, 0, pool, why, sizeof(why)) < 0) {
    fprintf(stderr, "gpupool attach: %s\n", why);
    goto out;
  }
  if (pool->broker[0] == '\0') {
    if (o->token_file || o->mem || o->have_labels) {
      fprintf(stderr, "gpupool attach: --token-file, --mem and --label ask "
              "a broker: give --broker HOST[:PORT] or set %s\n",
              GP_ENV_BROKER);
      goto out;
    }
    const char *server = o->server ? o->server : pool->server;
    if (*server == '\0') {
      fprintf(stderr, "gpupool attach: no server: give --server HOST[:PORT] "
              "or --broker HOST[:PORT], or set %s or %s\n", GP_ENV_SERVER,
              GP_ENV_BROKER);
      goto out;
    }
    struct gp__hostport hp;
    if (gp__parse_hostport(server, GP_DEFAULT_SERVER_PORT,
                           o->server ? "--server" : pool->server_from, &hp,
                           why, sizeof(why)) < 0) {
      fprintf(stderr, "gpupool attach: %s\n", why);
      goto out;
    }
    ret = set(GP_ENV_SERVER, server);
    goto out;
  }

  /* Through the broker: the library must ask it, whatever GPUPOOL_SERVER
   * the environment had. */
  unsetenv(GP_ENV_SERVER);
  if (set(GP_ENV_BROKER, pool->broker) < 0 ||
      (o->server && set(GP_ENV_SERVER_NAME, o->server) < 0))
    goto out;
  if (o->token_file) {
    char path[PATH_MAX], tok[GP__MAX_TOKEN];
    if (gp__read_token_file(o->token_file, tok, sizeof(tok), why,
                            sizeof(why)) < 0) {
      fprintf(stderr, "gpupool attach: %s\n", why);
      goto out;
    }
    explicit_bzero(tok, sizeof(tok));
    /* The program may change its directory before cuInit. */
    if (realpath(o->token_file, path) == NULL) {
      fprintf(stderr, "gpupool attach: %s: %s\n", o->token_file,
              strerror(errno));
      goto out;
    }
    unsetenv(GP_ENV_TOKEN); /* it would win over the file */
    if (set(GP_ENV_TOKEN_FILE, path) < 0)
      goto out;
  }
  if (o->mem) {
    uint64_t bytes;
    if (gp__parse_mem(o->mem, &bytes) < 0) {
      fprintf(stderr, "gpupool attach: --mem %s is not a size (such as "
              "512M, 8G)\n", o->mem);
      goto out;
    }
    if (set(GP_ENV_MEM, o->mem) < 0)
      goto out;
  }
  if (o->have_labels && set(GP_ENV_LABELS, o->labels) < 0)
    goto out;
  ret = 0;
out:
  free(cf);
  if (pool != NULL)
    explicit_bzero(pool, sizeof(*pool));
  free(pool);
  return ret;
}

static int cmd_attach(int argc, char **argv) {
  struct attach_opts o = {0};
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if ((v = opt_value(argc, argv, &i, "--server")) != NULL) {
      o.server = v;
    } else if ((v = opt_value(argc, argv, &i, "--broker")) != NULL) {
      o.broker = v;
    } else if ((v = opt_value(argc, argv, &i, "--token-file")) != NULL) {
      o.token_file = v;
    } else if ((v = opt_value(argc, argv, &i, "--mem")) != NULL) {
      o.mem = v;
    } else if ((v = opt_value(argc, argv, &i, "--label")) != NULL) {
      if (v != missing && add_label(o.labels, sizeof(o.labels), v) < 0)
        return EXIT_GP_FAILED;
      o.have_labels = true;
    } else if ((v = opt_value(argc, argv, &i, "--tls-ca")) != NULL) {
      o.tls_ca = v;
    } else if (strcmp(a, "--trace") == 0) {
      o.trace = true;
      continue;
    } else if (strcmp(a, "--insecure") == 0) {
      o.insecure = true;
      continue;
    } else if (strcmp(a, "--insecure-any-address") == 0) {
      o.insecure_any_address = true;
      continue;
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
    if (v == missing || *v == '\0') {
      fprintf(stderr, "gpupool attach: %s needs a value\n", a);
      return EXIT_GP_FAILED;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "gpupool attach: no program to run\n");
    usage(stderr);
    return EXIT_GP_FAILED;
  }

  if (o.insecure_any_address && !o.insecure) {
    fprintf(stderr, "gpupool attach: --insecure-any-address goes with "
            "--insecure\n");
    return EXIT_GP_FAILED;
  }
  char dir[PATH_MAX], ca[PATH_MAX];
  if (o.tls_ca != NULL && realpath(o.tls_ca, ca) == NULL) {
    /* Absolute: the program may change its directory before cuInit. */
    fprintf(stderr, "gpupool attach: --tls-ca %s: %s\n", o.tls_ca,
            strerror(errno));
    return EXIT_GP_FAILED;
  }
  if ((o.tls_ca && set(GP_ENV_TLS_CA, ca) != 0) ||
      (o.insecure && set(GP_ENV_INSECURE, "1") != 0) ||
      (o.insecure_any_address && set(GP_ENV_INSECURE_ANY_ADDRESS, "1") != 0))
    return EXIT_GP_FAILED;
  if (lib_dir(dir, sizeof(dir)) < 0 || attach_env(&o) < 0)
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
  if (set("LD_LIBRARY_PATH", path) != 0 ||
      (o.trace && set(GP_ENV_TRACE, "1") != 0)) {
    free(path);
    return EXIT_GP_FAILED;
  }
  free(path);

  execvp(argv[i], &argv[i]);
  int err = errno;
  fprintf(stderr, "gpupool: cannot run %s: %s\n", argv[i], strerror(err));
  return err == ENOENT || err == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Writes |s| as a JSON string: quotes, backslashes and control characters
 * escaped, and every byte that is not part of well-formed UTF-8 written as
 * U+FFFD, so the output parses whatever the broker sent. */
static void json_str(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  fputc('"', f);
  while (*p) {
    unsigned c = *p;
    if (c == '"' || c == '\\') {
      fprintf(f, "\\%c", c);
      p++;
    } else if (c < 0x20 || c == 0x7f) {
      fprintf(f, "\\u%04x", c);
      p++;
    } else if (c < 0x80) {
      fputc((int)c, f);
      p++;
    } else {
      /* The length of a UTF-8 sequence, and its smallest code point (no
       * overlong forms), surrogates and anything over U+10FFFF refused. */
      int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      if (c >= 0xf5)
        n = 0;
      unsigned cp = n == 4 ? c & 7 : n == 3 ? c & 15 : c & 31;
      int k = 1;
      for (; k < n && (p[k] & 0xc0) == 0x80; k++)
        cp = (cp << 6) | (p[k] & 0x3f);
      bool ok = n > 0 && k == n && !(n == 3 && cp < 0x800) &&
                !(n == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
                !(cp >= 0xd800 && cp <= 0xdfff);
      if (ok) {
        fwrite(p, 1, (size_t)n, f);
        p += n;
      } else {
        fputs("\\ufffd", f);
        p++;
      }
    }
  }
  fputc('"', f);
}

/* A string that may be empty: null when it is. */
static void json_str_or_null(FILE *f, const char *s) {
  if (s == NULL || *s == '\0')
    fputs("null", f);
  else
    json_str(f, s);
}

/* The JSON object of docs/broker.md ("The CLI") for |st|. */
static void print_json(FILE *f, const Gpupool__BrokerStatusReply *st) {
  fprintf(f, "{\"uptime_ms\": %llu, \"servers\": [",
          (unsigned long long)st->uptime_ms);
  for (size_t i = 0; i < st->n_servers; i++) {
    const Gpupool__BrokerServerStatus *sv = st->servers[i];
    fputs(i ? ", {\"name\": " : "{\"name\": ", f);
    json_str(f, sv->name);
    fputs(", \"address\": ", f);
    json_str(f, sv->address);
    fprintf(f, ", \"up\": %s, \"draining\": %s, \"last_heartbeat_ms\": %llu, "
            "\"labels\": {", sv->up ? "true" : "false",
            sv->draining ? "true" : "false",
            (unsigned long long)sv->last_heartbeat_ms);
    for (size_t k = 0; k < sv->n_labels; k++) {
      if (k)
        fputs(", ", f);
      json_str(f, sv->labels[k]->key);
      fputs(": ", f);
      json_str(f, sv->labels[k]->value);
    }
    fputs("}, \"version\": ", f);
    json_str(f, sv->version);
    fputs(", \"gpus\": [", f);
    for (size_t k = 0; k < sv->n_gpus; k++) {
      const Gpupool__BrokerGpuStatus *g = sv->gpus[k];
      fputs(k ? ", {\"uuid\": " : "{\"uuid\": ", f);
      json_str(f, g->uuid);
      fputs(", \"name\": ", f);
      json_str(f, g->name);
      fprintf(f, ", \"total_mem\": %llu, \"reserved\": %llu, "
              "\"memory_used\": %llu, \"sessions\": %u, \"utilisation\": ",
              (unsigned long long)g->total_mem,
              (unsigned long long)g->reserved,
              (unsigned long long)g->memory_used, g->sessions);
      if (g->utilisation < 0)
        fputs("null", f);
      else
        fprintf(f, "%d", g->utilisation);
      fputs(", \"mig_profile\": ", f);
      json_str_or_null(f, g->mig_profile);
      fprintf(f, ", \"cc\": \"%d.%d\"}", g->cc_major, g->cc_minor);
    }
    fputs("]}", f);
  }
  fputs("], \"sessions\": [", f);
  for (size_t i = 0; i < st->n_sessions; i++) {
    const Gpupool__BrokerSessionStatus *se = st->sessions[i];
    fprintf(f, "%s{\"session_id\": \"%016llx\", \"tenant\": ", i ? ", " : "",
            (unsigned long long)se->session_id);
    json_str(f, se->tenant);
    fputs(", \"server\": ", f);
    json_str(f, se->server);
    fputs(", \"gpu_uuid\": ", f);
    json_str(f, se->gpu_uuid);
    fprintf(f, ", \"memory_limit\": %llu, \"memory_used\": %llu, "
            "\"age_ms\": %llu, \"idle_ms\": %llu, \"state\": ",
            (unsigned long long)se->memory_limit,
            (unsigned long long)se->memory_used,
            (unsigned long long)se->age_ms, (unsigned long long)se->idle_ms);
    json_str(f, se->state);
    fputs(", \"client\": ", f);
    json_str(f, se->client);
    fputc('}', f);
  }
  fputs("]}\n", f);
}

/* ---- Tables ------------------------------------------------------------------ */

#define TABLE_COLS 12

/* Rows of cells, printed with each column as wide as its widest cell. */
struct table {
  int ncols;
  size_t nrows, cap;
  char **cells; /* nrows * ncols, each malloc'd */
};

/* One line of output: the broker's strings may hold anything, so every
 * control character in |s| becomes '?'. */
static void one_line(char *s) {
  for (char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
}

/* Adds a row of |t->ncols| cells, copied from |cells| (NULL: empty).
 * Returns 0, or -1 when out of memory. */
static int table_add(struct table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*c));
    if (c == NULL)
      return -1;
    t->cells = c;
    t->cap = cap;
  }
  for (int k = 0; k < t->ncols; k++) {
    char *d = strdup(cells[k] ? cells[k] : "");
    if (d == NULL) {
      while (k-- > 0)
        free(t->cells[t->nrows * (size_t)t->ncols + (size_t)k]);
      return -1;
    }
    one_line(d);
    t->cells[t->nrows * (size_t)t->ncols + (size_t)k] = d;
  }
  t->nrows++;
  return 0;
}

static void table_print(FILE *f, const struct table *t, const char *indent) {
  size_t w[TABLE_COLS] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (int k = 0; k < t->ncols; k++) {
      size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)k]);
      if (n > w[k])
        w[k] = n;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    fputs(indent, f);
    for (int k = 0; k < t->ncols; k++) {
      const char *c = t->cells[r * (size_t)t->ncols + (size_t)k];
      if (k == t->ncols - 1)
        fprintf(f, "%s\n", c);
      else
        fprintf(f, "%-*s  ", (int)w[k], c);
    }
  }
}

static void table_free(struct table *t) {
  for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof(*t));
}

/* |ms| as a short duration: "0.4s", "12s", "3m04s", "2h05m", "3d04h". */
static void duration(char *out, size_t len, uint64_t ms) {
  uint64_t s = ms / 1000;
  if (ms < 10000)
    snprintf(out, len, "%.1fs", (double)ms / 1000.0);
  else if (s < 60)
    snprintf(out, len, "%llus", (unsigned long long)s);
  else if (s < 3600)
    snprintf(out, len, "%llum%02llus", (unsigned long long)(s / 60),
             (unsigned long long)(s % 60));
  else if (s < 86400)
    snprintf(out, len, "%lluh%02llum", (unsigned long long)(s / 3600),
             (unsigned long long)(s / 60 % 60));
  else
    snprintf(out, len, "%llud%02lluh", (unsigned long long)(s / 86400),
             (unsigned long long)(s / 3600 % 24));
}

static void mib(char *out, size_t len, uint64_t bytes) {
  snprintf(out, len, "%llu", (unsigned long long)(bytes >> 20));
}

static int print_status(FILE *f, const Gpupool__BrokerStatusReply *st) {
  char up[32];
  duration(up, sizeof(up), st->uptime_ms);
  fprintf(f, "broker up %s, %zu server%s, %zu session%s\n", up,
          st->n_servers, st->n_servers == 1 ? "" : "s", st->n_sessions,
          st->n_sessions == 1 ? "" : "s");
  for (size_t i = 0; i < st->n_servers; i++) {
    const Gpupool__BrokerServerStatus *sv = st->servers[i];
    char hb[32], labels[1024] = "";
    duration(hb, sizeof(hb), sv->last_heartbeat_ms);
    for (size_t k = 0; k < sv->n_labels; k++) {
      size_t n = strlen(labels);
      snprintf(labels + n, sizeof(labels) - n, "%s%s=%s", k ? "," : "",
               sv->labels[k]->key, sv->labels[k]->value);
    }
    char line[2048];
    snprintf(line, sizeof(line), "%s  %s  %s%s  last heartbeat %s ago%s%s"
             "%s%s", sv->name, sv->address, sv->up ? "up" : "down",
             sv->draining ? ", draining" : "", hb, labels[0] ? "  labels " : "",
             labels, sv->version && *sv->version ? "  " : "",
             sv->version ? sv->version : "");
    one_line(line);
    fprintf(f, "\n%s\n", line);

    struct table g = {.ncols = 9};
    const char *head[] = {"GPU",      "NAME",         "TOTAL MiB",
                          "RESERVED MiB", "USED MiB", "SESSIONS",
                          "UTIL",     "MIG",          "CC"};
    if (table_add(&g, head) < 0)
      return -1;
    for (size_t k = 0; k < sv->n_gpus; k++) {
      const Gpupool__BrokerGpuStatus *gs = sv->gpus[k];
      char tot[24], res[24], used[24], ses[16], util[16], cc[24];
      mib(tot, sizeof(tot), gs->total_mem);
      mib(res, sizeof(res), gs->reserved);
      mib(used, sizeof(used), gs->memory_used);
      snprintf(ses, sizeof(ses), "%u", gs->sessions);
      if (gs->utilisation < 0)
        snprintf(util, sizeof(util), "-");
      else
        snprintf(util, sizeof(util), "%d%%", gs->utilisation);
      snprintf(cc, sizeof(cc), "%d.%d", gs->cc_major, gs->cc_minor);
      const char *r[] = {gs->uuid, gs->name, tot, res, used, ses, util,
                         gs->mig_profile && *gs->mig_profile ? gs->mig_profile
                                                             : "-",
                         cc};
      if (table_add(&g, r) < 0) {
        table_free(&g);
        return -1;
      }
    }
    if (sv->n_gpus == 0)
      fprintf(f, "  (no GPUs)\n");
    else
      table_print(f, &g, "  ");
    table_free(&g);
  }
  if (st->n_servers == 0)
    fprintf(f, "no servers registered\n");
  return 0;
}

static int print_sessions(FILE *f, const Gpupool__BrokerStatusReply *st) {
  if (st->n_sessions == 0) {
    fprintf(f, "no sessions\n");
    return 0;
  }
  struct table t = {.ncols = 10};
  const char *head[] = {"SESSION", "TENANT", "SERVER", "GPU",
                        "LIMIT MiB", "USED MiB", "AGE", "IDLE",
                        "STATE", "CLIENT"};
  int ret = -1;
  if (table_add(&t, head) < 0)
    goto out;
  for (size_t i = 0; i < st->n_sessions; i++) {
    const Gpupool__BrokerSessionStatus *se = st->sessions[i];
    char id[24], lim[24], used[24], age[32], idle[32];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)se->session_id);
    mib(lim, sizeof(lim), se->memory_limit);
    mib(used, sizeof(used), se->memory_used);
    duration(age, sizeof(age), se->age_ms);
    duration(idle, sizeof(idle), se->idle_ms);
    const char *r[] = {id,  se->tenant, se->server, se->gpu_uuid, lim, used,
                       age, idle,       se->state,  se->client};
    if (table_add(&t, r) < 0)
      goto out;
  }
  table_print(f, &t, "");
  ret = 0;
out:
  table_free(&t);
  return ret;
}

/* ---- The broker's commands ----------------------------------------------------- */

/* GPUPOOL_CONNECT_TIMEOUT in milliseconds (default 10 s). */
static int connect_timeout_ms(void) {
  const char *v = getenv(GP_ENV_CONNECT_TIMEOUT);
  if (v == NULL || *v == '\0')
    return 10000;
  char *end;
  double s = strtod(v, &end);
  if (*end != '\0' || !(s > 0) || s > 86400) {
    fprintf(stderr, "gpupool: %s=%s is not a number of seconds; using 10\n",
            GP_ENV_CONNECT_TIMEOUT, v);
    return 10000;
  }
  return s * 1000 < 1 ? 1 : (int)(s * 1000);
}

/* status, sessions, drain and undrain: one request each. */
static int cmd_broker(const char *cmd, int argc, char **argv) {
  const char *broker = NULL, *token_file = NULL, *name = NULL;
  const char *tls_ca = NULL;
  bool json = false, insecure = false;
  bool is_drain = strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if ((v = opt_value(argc, argv, &i, "--broker")) != NULL)
      broker = v;
    else if ((v = opt_value(argc, argv, &i, "--token-file")) != NULL)
      token_file = v;
    else if ((v = opt_value(argc, argv, &i, "--tls-ca")) != NULL)
      tls_ca = v;
    else if (strcmp(a, "--insecure") == 0)
      insecure = true;
    else if (!is_drain && strcmp(a, "--json") == 0)
      json = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "gpupool %s: unknown option %s\n", cmd, a);
      return EXIT_USAGE;
    } else if (is_drain && name == NULL) {
      name = a;
    } else {
      fprintf(stderr, "gpupool %s: unexpected argument %s\n", cmd, a);
      return EXIT_USAGE;
    }
    if (v != NULL && (v == missing || *v == '\0')) {
      fprintf(stderr, "gpupool %s: %s needs a value\n", cmd, a);
      return EXIT_USAGE;
    }
  }
  if (is_drain && (name == NULL || *name == '\0')) {
    fprintf(stderr, "gpupool %s: which server? (gpupool %s NAME)\n", cmd,
            cmd);
    return EXIT_USAGE;
  }

  int ret = EXIT_USAGE;
  char why[1024];
  struct gp__conf *cf = calloc(1, sizeof(*cf));
  struct gp__pool *pool = calloc(1, sizeof(*pool));
  ProtobufCMessage *m = NULL;
  if (cf == NULL || pool == NULL) {
    fprintf(stderr, "gpupool: out of memory\n");
    goto out;
  }
  /* A broker named on the command line is asked even when GPUPOOL_SERVER
   * would otherwise mean "no broker". */
  if (gp__conf_load(cf, why, sizeof(why)) < 0 ||
      gp__pool_resolve(cf, broker ? broker
                                  : getenv(GP_ENV_BROKER) ? NULL
                                                          : cf->broker,
                       token_file, GP__RESOLVE_TOKEN, pool, why,
                       sizeof(why)) < 0) {
    fprintf(stderr, "gpupool %s: %s\n", cmd, why);
    goto out;
  }
  /* The command line wins over the environment and client.conf. */
  if (tls_ca)
    snprintf(pool->tls.ca, sizeof(pool->tls.ca), "%s", tls_ca);
  if (insecure)
    pool->tls.insecure = true;
  if (pool->broker[0] == '\0') {
    fprintf(stderr, "gpupool %s: no broker: give --broker HOST[:PORT], or "
            "set %s or `broker` in the configuration file\n", cmd,
            GP_ENV_BROKER);
    goto out;
  }

  int timeout = connect_timeout_ms();
  int rc;
  if (is_drain) {
    Gpupool__BrokerDrain req = GPUPOOL__BROKER_DRAIN__INIT;
    req.token.data = (uint8_t *)pool->token;
    req.token.len = strlen(pool->token);
    req.server = (char *)name;
    req.drain = strcmp(cmd, "drain") == 0;
    rc = gp__broker_rpc(pool->broker, &pool->tls, timeout,
                        GP_MSG_BROKER_DRAIN, &req.base, &m, why, sizeof(why));
  } else {
    Gpupool__BrokerStatusRequest req = GPUPOOL__BROKER_STATUS_REQUEST__INIT;
    req.token.data = (uint8_t *)pool->token;
    req.token.len = strlen(pool->token);
    rc = gp__broker_rpc(pool->broker, &pool->tls, timeout,
                        GP_MSG_BROKER_STATUS, &req.base, &m, why, sizeof(why));
  }
  if (rc != GP__BRPC_OK) {
    fprintf(stderr, "gpupool %s: %s\n", cmd, why);
    ret = EXIT_UNREACHABLE;
    goto out;
  }
  int32_t result = 0, deferred = 0;
  gp_msg_reply_status(m, &result, &deferred);
  if (result != 0) {
    /* Every reply of the broker has its `message` as field 3. */
    const char *msg = is_drain ? ((Gpupool__BrokerDrainReply *)m)->message
                               : ((Gpupool__BrokerStatusReply *)m)->message;
    fprintf(stderr, "gpupool %s: the broker refused: %s\n", cmd,
            msg && *msg ? msg : gp_strerror(result));
    ret = EXIT_REFUSED;
    goto out;
  }
  if (is_drain) {
    printf("%s: %s\n", name, strcmp(cmd, "drain") == 0
                                 ? "draining (no new sessions; running ones "
                                   "go on)"
                                 : "taking new sessions again");
  } else {
    const Gpupool__BrokerStatusReply *st = (Gpupool__BrokerStatusReply *)m;
    if (json)
      print_json(stdout, st);
    else if ((strcmp(cmd, "status") == 0 ? print_status(stdout, st)
                                         : print_sessions(stdout, st)) < 0) {
      fprintf(stderr, "gpupool: out of memory\n");
      ret = EXIT_REFUSED;
      goto out;
    }
  }
  if (fflush(stdout) != 0) {
    fprintf(stderr, "gpupool %s: cannot write the answer: %s\n", cmd,
            strerror(errno));
    ret = EXIT_REFUSED;
    goto out;
  }
  ret = 0;
out:
  protobuf_c_message_free_unpacked(m, NULL);
  free(cf);
  if (pool != NULL)
    explicit_bzero(pool, sizeof(*pool));
  free(pool);
  return ret;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_GP_FAILED;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "attach") == 0)
    return cmd_attach(argc - 1, argv + 1);
  if (strcmp(cmd, "status") == 0 || strcmp(cmd, "sessions") == 0 ||
      strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0)
    return cmd_broker(cmd, argc - 1, argv + 1);
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
