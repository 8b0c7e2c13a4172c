/* The client's configuration: client.conf and the environment
 * (docs/client.md, "The pool"). A small INI reader of our own rather than
 * libinih: the library is loaded into arbitrary programs, so it carries no
 * other shared library and exports nothing but cu* (libcuda.vers), and the
 * format needed is one section of six keys. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "gpupool/gpupool.h"

#define LINE_MAX_LEN 8192

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                   s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

/* Drops a comment that starts with ';' or '#' after a blank. */
static void strip_comment(char *s) {
  for (char *p = s; *p; p++)
    if ((*p == ';' || *p == '#') && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
      *p = '\0';
      return;
    }
}

/* Where client.conf is: |*must| is set when the file was named explicitly
 * (so a missing one is an error). Returns 0, or -1 when there is no place
 * to look (no $HOME). */
static int conf_path(char *out, size_t len, int *must) {
  const char *p = secure_getenv(GP_ENV_CONFIG);
  *must = 0;
  if (p != NULL && *p != '\0') {
    *must = 1;
    return snprintf(out, len, "%s", p) < (int)len ? 0 : -1;
  }
  const char *xdg = secure_getenv("XDG_CONFIG_HOME");
  if (xdg != NULL && *xdg == '/')
    return snprintf(out, len, "%s/gpupool/client.conf", xdg) < (int)len ? 0
                                                                          : -1;
  const char *home = secure_getenv("HOME");
  if (home == NULL || *home == '\0')
    return -1;
  return snprintf(out, len, "%s/.config/gpupool/client.conf", home) < (int)len
             ? 0
             : -1;
}

struct key {
  const char *name;
  size_t off, len;
};

#define KEY(f) {#f, offsetof(struct gp__conf, f), sizeof(((struct gp__conf *)0)->f)}
static const struct key keys[] = {
    KEY(broker), KEY(token), KEY(token_file),
    KEY(memory), KEY(labels),  KEY(server),
    KEY(tls_ca), KEY(insecure),
};

int gp__conf_load(struct gp__conf *cf, char *why, size_t why_len) {
  memset(cf, 0, sizeof(*cf));
  char path[4096];
  int must;
  if (conf_path(path, sizeof(path), &must) < 0)
    return 0;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    if (!must && errno == ENOENT)
      return 0;
    snprintf(why, why_len, "cannot read the configuration file %s: %s", path,
             strerror(errno));
    return -1;
  }
  snprintf(cf->path, sizeof(cf->path), "%s", path);
  char *line = malloc(LINE_MAX_LEN);
  int ret = -1, lineno = 0, in_client = 0;
  unsigned seen = 0;
  if (line == NULL) {
    snprintf(why, why_len, "out of memory");
    goto out;
  }
  while (fgets(line, LINE_MAX_LEN, f) != NULL) {
    lineno++;
    size_t n = strlen(line);
    if (n == LINE_MAX_LEN - 1 && line[n - 1] != '\n') {
      snprintf(why, why_len, "%s:%d: line too long", path, lineno);
      goto out;
    }
    char *s = trim(line);
    if (*s == '\0' || *s == ';' || *s == '#')
      continue;
    strip_comment(s);
    s = trim(s);
    if (*s == '[') {
      char *end = strchr(s, ']');
      if (end == NULL || *trim(end + 1) != '\0') {
        snprintf(why, why_len, "%s:%d: a section line is `[name]`", path,
                 lineno);
        goto out;
      }
      *end = '\0';
      if (strcmp(trim(s + 1), "client") != 0) {
        snprintf(why, why_len, "%s:%d: unknown section [%s] (only [client])",
                 path, lineno, trim(s + 1));
        goto out;
      }
      in_client = 1;
      continue;
    }
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(why, why_len, "%s:%d: expected `key = value`", path, lineno);
      goto out;
    }
    *eq = '\0';
    char *k = trim(s), *v = trim(eq + 1);
    if (!in_client) {
      snprintf(why, why_len, "%s:%d: `%s` outside the [client] section",
               path, lineno, k);
      goto out;
    }
    size_t i = 0;
    while (i < sizeof(keys) / sizeof(keys[0]) && strcmp(keys[i].name, k) != 0)
      i++;
    if (i == sizeof(keys) / sizeof(keys[0])) {
      snprintf(why, why_len, "%s:%d: unknown key `%s` (known: broker, token, "
               "token_file, memory, labels, server)", path, lineno, k);
      goto out;
    }
    if (seen & (1u << i)) {
      snprintf(why, why_len, "%s:%d: `%s` given twice", path, lineno, k);
      goto out;
    }
    seen |= 1u << i;
    if (strlen(v) >= keys[i].len) {
      snprintf(why, why_len, "%s:%d: the value of `%s` is too long", path,
               lineno, k);
      goto out;
    }
    memcpy((char *)cf + keys[i].off, v, strlen(v) + 1);
  }
  if (ferror(f)) {
    snprintf(why, why_len, "cannot read the configuration file %s: %s", path,
             strerror(errno));
    goto out;
  }
  /* A token in a file others may read is no secret. */
  if (cf->token[0] != '\0') {
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
      snprintf(why, why_len, "%s holds a token and is readable by others "
               "(chmod 600 it, or use token_file)", path);
      goto out;
    }
  }
  ret = 0;
out:
  free(line);
  fclose(f);
  return ret;
}

int gp__parse_mem(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0)
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  default: break;
  }
  if (shift && strcmp(end, "iB") == 0)
    end += 2;
  else if (*end == 'B' || *end == 'b')
    end++;
  if (*end != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

/* Copies |len| bytes of |s| into |dst| (|cap| bytes) without the blanks
 * around them. Returns the length, or -1 when it does not fit. */
static int copy_trimmed(char *dst, size_t cap, const char *s, size_t len) {
  while (len > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  if (len >= cap)
    return -1;
  memcpy(dst, s, len);
  dst[len] = '\0';
  return (int)len;
}

int gp__parse_labels(const char *s, const char *what, struct gp__label *out,
                     char *why, size_t why_len) {
  int n = 0;
  const char *p = s;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '\0')
    return 0;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (n == GP__MAX_LABELS) {
      snprintf(why, why_len, "%s: more than %d labels", what, GP__MAX_LABELS);
      return -1;
    }
    if (eq == NULL) {
      snprintf(why, why_len, "%s: `%.*s` is not key=value", what, (int)len, p);
      return -1;
    }
    int kl = copy_trimmed(out[n].key, sizeof(out[n].key), p, (size_t)(eq - p));
    int vl = copy_trimmed(out[n].value, sizeof(out[n].value), eq + 1,
                          len - (size_t)(eq - p) - 1);
    if (kl <= 0 || vl < 0) {
      snprintf(why, why_len, "%s: bad label `%.*s` (an empty key, or over %d "
               "bytes)", what, (int)len, p, GP__MAX_LABEL_LEN - 1);
      return -1;
    }
    n++;
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  return n;
}

int gp__read_token_file(const char *path, char *out, size_t out_len, char *why,
                        size_t why_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    snprintf(why, why_len, "cannot read the token file %s: %s", path,
             strerror(errno));
    return -1;
  }
  int ret = -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, why_len, "the token file %s is not a regular file", path);
    goto out;
  }
  if ((st.st_mode & 077) != 0) {
    snprintf(why, why_len, "the token file %s is readable by others (chmod "
             "600 it)", path);
    goto out;
  }
  size_t got = 0;
  while (got < out_len - 1) {
    ssize_t r = read(fd, out + got, out_len - 1 - got);
    if (r < 0) {
      snprintf(why, why_len, "cannot read the token file %s: %s", path,
               strerror(errno));
      goto out;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  out[got] = '\0';
  /* The token is the first line; found by length, not by string
   * functions, so that a NUL inside it is seen rather than silently
   * cutting it short. */
  char *nl = memchr(out, '\n', got);
  size_t n = nl != NULL ? (size_t)(nl - out) : got;
  if (nl == NULL && got == out_len - 1) {
    snprintf(why, why_len, "the token in %s is too long (over %zu bytes)",
             path, out_len - 2);
    goto out;
  }
  if (memchr(out, '\0', n) != NULL) {
    snprintf(why, why_len, "the token file %s holds a NUL byte", path);
    goto out;
  }
  out[n] = '\0';
  if (n > 0 && out[n - 1] == '\r')
    out[--n] = '\0';
  if (n == 0) {
    snprintf(why, why_len, "the token file %s is empty", path);
    goto out;
  }
  ret = 0;
out:
  if (ret != 0)
    memset(out, 0, out_len);
  close(fd);
  return ret;
}

/* secure_getenv() with "" as unset. */
static const char *env(const char *name) {
  const char *v = secure_getenv(name);
  return v != NULL && *v != '\0' ? v : NULL;
}

static int copy_setting(char *dst, size_t cap, const char *v, const char *what,
                        char *why, size_t why_len) {
  if (strlen(v) >= cap) {
    snprintf(why, why_len, "%s is too long", what);
    return -1;
  }
  strcpy(dst, v);
  return 0;
}

int gp__pool_resolve(const struct gp__conf *cf, const char *broker_arg,
                     const char *token_file_arg, unsigned what,
                     struct gp__pool *pool, char *why, size_t why_len) {
  memset(pool, 0, sizeof(*pool));
  /* TLS to the broker: GPUPOOL_INSECURE, GPUPOOL_TLS_CA, client.conf. */
  if (gp__tls_opts_resolve(cf, &pool->tls, why, why_len) < 0)
    return -1;
  const char *broker;
  if (broker_arg != NULL)
    broker = broker_arg;
  else if (secure_getenv(GP_ENV_BROKER) != NULL)
    broker = secure_getenv(GP_ENV_BROKER); /* set but empty: no broker */
  else if (env(GP_ENV_SERVER) != NULL)
    broker = "";
  else
    broker = cf->broker;
  if (copy_setting(pool->broker, sizeof(pool->broker), broker, GP_ENV_BROKER,
                   why, why_len) < 0)
    return -1;

  const char *server, *from;
  if (pool->broker[0] != '\0') {
    server = env(GP_ENV_SERVER_NAME);
    from = GP_ENV_SERVER_NAME;
  } else {
    server = env(GP_ENV_SERVER);
    from = GP_ENV_SERVER;
  }
  if (server == NULL && cf->server[0] != '\0') {
    server = cf->server;
    from = "`server` in the configuration file";
  }
  pool->server_from = from;
  if (server != NULL &&
      copy_setting(pool->server, sizeof(pool->server), server, from, why,
                   why_len) < 0)
    return -1;
  if (pool->broker[0] == '\0' || !(what & GP__RESOLVE_REQUEST))
    goto token;

  /* The memory and the labels. */
  const char *mem = env(GP_ENV_MEM);
  const char *mem_from = GP_ENV_MEM;
  if (mem == NULL && cf->memory[0] != '\0') {
    mem = cf->memory;
    mem_from = "`memory` in the configuration file";
  }
  if (mem != NULL && gp__parse_mem(mem, &pool->memory) < 0) {
    snprintf(why, why_len, "%s=%s is not a size (such as 512M, 8G)", mem_from,
             mem);
    return -1;
  }
  const char *labels = secure_getenv(GP_ENV_LABELS) ? secure_getenv(GP_ENV_LABELS)
                                             : cf->labels;
  const char *labels_from = secure_getenv(GP_ENV_LABELS)
                                ? GP_ENV_LABELS
                                : "`labels` in the configuration file";
  pool->nlabels = gp__parse_labels(labels, labels_from, pool->labels, why,
                                   why_len);
  if (pool->nlabels < 0)
    return -1;

token:
  if (pool->broker[0] == '\0' || !(what & GP__RESOLVE_TOKEN))
    return 0;
  const char *tok;
  if (token_file_arg != NULL)
    return gp__read_token_file(token_file_arg, pool->token,
                               sizeof(pool->token), why, why_len);
  if ((tok = env(GP_ENV_TOKEN)) != NULL)
    return copy_setting(pool->token, sizeof(pool->token), tok, GP_ENV_TOKEN,
                        why, why_len);
  if ((tok = env(GP_ENV_TOKEN_FILE)) != NULL)
    return gp__read_token_file(tok, pool->token, sizeof(pool->token), why,
                               why_len);
  if (cf->token[0] != '\0') {
    strcpy(pool->token, cf->token);
    return 0;
  }
  if (cf->token_file[0] != '\0')
    return gp__read_token_file(cf->token_file, pool->token,
                               sizeof(pool->token), why, why_len);
  snprintf(why, why_len, "no token for the broker %s: set %s or %s, or "
           "`token_file` in the configuration file", pool->broker,
           GP_ENV_TOKEN, GP_ENV_TOKEN_FILE);
  return -1;
}
