/* The broker's config file: see broker.h and docs/broker.md. Parsed with
 * libinih, through a line reader of our own that counts lines (so every
 * error names its line, whatever options the library was built with),
 * checks section headers as they go by (inih reports a section only with
 * its first key) and refuses lines longer than inih's buffer instead of
 * letting it split them.
 */
#include "broker.h"
#include "daemon_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "gpupool/errors.h"

/* Which keys of a section were given, to refuse a key given twice. */
enum {
  K_GRANT_KEY_FILE = 1 << 0,
  K_HEARTBEAT_MS = 1 << 1,
  K_DOWN_AFTER_MS = 1 << 2,
  K_GRANT_TTL_S = 1 << 3,
  K_DEFAULT_MEMORY = 1 << 4,
  K_TOKEN = 1 << 5,
  K_MAX_SESSIONS = 1 << 6,
  K_MAX_MEMORY = 1 << 7,
};

struct parse {
  struct brk_config *cfg;
  FILE *f;
  int line;          /* of the line inih is handling */
  char why[256];     /* the first error, without file and line */
  int why_line;      /* its line; 0: none */
  int nomem;
  unsigned broker_keys, admin_keys;
  unsigned *tenant_keys; /* per tenant */
  int key_line;      /* of grant_key_file */
  int down_line;      /* of down_after_ms; 0: defaulted */
  int heartbeat_line; /* of heartbeat_ms; 0: defaulted */
};

__attribute__((format(printf, 2, 3)))
static int fail(struct parse *ps, const char *fmt, ...) {
  va_list ap;

  if (ps->why_line == 0) {
    va_start(ap, fmt);
    vsnprintf(ps->why, sizeof(ps->why), fmt, ap);
    va_end(ap);
    ps->why_line = ps->line;
  }
  return 0; /* inih: an error on this line */
}


/* A decimal in [lo, hi]. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
  unsigned long long v;
  char *end;

  if (!s || *s < '0' || *s > '9')
    return GP_EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return GP_EINVAL;
  *out = (uint32_t)v;
  return 0;
}

/* 64 hex digits, stored lower-case. */
static int parse_hash(const char *s, char out[65]) {
  int i;

  if (strlen(s) != 64)
    return GP_EINVAL;
  for (i = 0; i < 64; i++) {
    if (!isxdigit((unsigned char)s[i]))
      return GP_EINVAL;
    out[i] = (char)tolower((unsigned char)s[i]);
  }
  out[64] = '\0';
  return 0;
}

/* Marks |bit| given in |*seen|; false if it was already. */
static bool once(unsigned *seen, unsigned bit) {
  if (*seen & bit)
    return false;
  *seen |= bit;
  return true;
}

static int broker_key(struct parse *ps, const char *name, const char *value) {
  struct brk_config *cfg = ps->cfg;
  unsigned bit;
  uint64_t size;

  if (strcmp(name, "grant_key_file") == 0) {
    bit = K_GRANT_KEY_FILE;
  } else if (strcmp(name, "heartbeat_ms") == 0) {
    bit = K_HEARTBEAT_MS;
  } else if (strcmp(name, "down_after_ms") == 0) {
    bit = K_DOWN_AFTER_MS;
  } else if (strcmp(name, "grant_ttl_s") == 0) {
    bit = K_GRANT_TTL_S;
  } else if (strcmp(name, "default_memory") == 0) {
    bit = K_DEFAULT_MEMORY;
  } else {
    return fail(ps, "unknown key '%s' in [broker] (grant_key_file, "
                "heartbeat_ms, down_after_ms, grant_ttl_s, default_memory)",
                name);
  }
  if (!once(&ps->broker_keys, bit))
    return fail(ps, "%s given twice in [broker]", name);
  switch (bit) {
  case K_GRANT_KEY_FILE:
    if (!*value)
      return fail(ps, "grant_key_file: empty");
    free(cfg->grant_key_file);
    cfg->grant_key_file = strdup(value);
    if (!cfg->grant_key_file)
      ps->nomem = 1;
    ps->key_line = ps->line;
    return 1;
  case K_HEARTBEAT_MS:
    /* The range a server accepts (server/broker_link.c clamps the
     * broker's answer to it): a period outside it would be silently
     * changed there, and the broker would mark the server down. */
    if (parse_u32(value, 100, 60000, &cfg->heartbeat_ms) != 0)
      return fail(ps, "heartbeat_ms: '%s' is not a number of milliseconds "
                  "from 100 to 60000", value);
    ps->heartbeat_line = ps->line;
    return 1;
  case K_DOWN_AFTER_MS:
    if (parse_u32(value, 200, 3600000, &cfg->down_after_ms) != 0)
      return fail(ps, "down_after_ms: '%s' is not a number of milliseconds "
                  "from 200 to 3600000", value);
    ps->down_line = ps->line;
    return 1;
  case K_GRANT_TTL_S:
    if (parse_u32(value, 1, 86400, &cfg->grant_ttl_s) != 0)
      return fail(ps, "grant_ttl_s: '%s' is not a number of seconds from 1 "
                  "to 86400", value);
    return 1;
  default:
    if (gp__parse_size(value, &size) != 0 || size == 0)
      return fail(ps, "default_memory: '%s' is not a size above 0 (e.g. "
                  "512M, 2G)", value);
    cfg->default_memory = size;
    return 1;
  }
}

static int tenant_key(struct parse *ps, uint32_t ti, const char *name,
                      const char *value) {
  struct brk_tenant_cfg *t = &ps->cfg->tenants[ti];
  unsigned bit;
  uint64_t size;

  if (strcmp(name, "token_sha256") == 0)
    bit = K_TOKEN;
  else if (strcmp(name, "max_sessions") == 0)
    bit = K_MAX_SESSIONS;
  else if (strcmp(name, "max_memory") == 0)
    bit = K_MAX_MEMORY;
  else
    return fail(ps, "unknown key '%s' in [tenant.%s] (token_sha256, "
                "max_sessions, max_memory)", name, t->t.name);
  if (!once(&ps->tenant_keys[ti], bit))
    return fail(ps, "%s given twice in [tenant.%s]", name, t->t.name);
  if (bit == K_TOKEN) {
    if (parse_hash(value, t->token_sha256) != 0)
      return fail(ps, "token_sha256: not 64 hex digits (the SHA-256 of the "
                  "token, e.g. from sha256sum)");
  } else if (bit == K_MAX_SESSIONS) {
    if (parse_u32(value, 0, BRK_MAX_SESSIONS, &t->t.max_sessions) != 0)
      return fail(ps, "max_sessions: '%s' is not a number from 0 to %u",
                  value, BRK_MAX_SESSIONS);
  } else {
    if (gp__parse_size(value, &size) != 0)
      return fail(ps, "max_memory: '%s' is not a size (e.g. 32G; 0: no "
                  "limit)", value);
    t->t.max_memory = size;
  }
  return 1;
}

/* The tenant named |name| (after "tenant."), added if new; -1 when full
 * or out of memory. */
static int tenant_index(struct parse *ps, const char *name) {
  struct brk_config *cfg = ps->cfg;
  struct brk_tenant_cfg *nt;
  unsigned *nk;
  uint32_t i;

  for (i = 0; i < cfg->ntenants; i++)
    if (strcmp(cfg->tenants[i].t.name, name) == 0)
      return (int)i;
  if (cfg->ntenants >= BRK_MAX_TENANTS)
    return -1;
  nt = realloc(cfg->tenants, (cfg->ntenants + 1) * sizeof(*nt));
  if (!nt) {
    ps->nomem = 1;
    return -1;
  }
  cfg->tenants = nt;
  nk = realloc(ps->tenant_keys, (cfg->ntenants + 1) * sizeof(*nk));
  if (!nk) {
    ps->nomem = 1;
    return -1;
  }
  ps->tenant_keys = nk;
  memset(&nt[cfg->ntenants], 0, sizeof(*nt));
  snprintf(nt[cfg->ntenants].t.name, sizeof(nt[cfg->ntenants].t.name), "%s",
           name);
  nk[cfg->ntenants] = 0;
  return (int)cfg->ntenants++;
}

/* True for a section name we know: broker, admin, tenant.NAME. */
static bool section_ok(const char *s) {
  return strcmp(s, "broker") == 0 || strcmp(s, "admin") == 0 ||
         (strncmp(s, "tenant.", 7) == 0 && brk_name_valid(s + 7));
}

static int on_key(void *user, const char *section, const char *name,
                  const char *value) {
  struct parse *ps = user;
  int ti;

  if (strcmp(section, "broker") == 0)
    return broker_key(ps, name, value);
  if (strcmp(section, "admin") == 0) {
    if (strcmp(name, "token_sha256") != 0)
      return fail(ps, "unknown key '%s' in [admin] (token_sha256)", name);
    if (!once(&ps->admin_keys, K_TOKEN))
      return fail(ps, "token_sha256 given twice in [admin]");
    if (parse_hash(value, ps->cfg->admin_sha256) != 0)
      return fail(ps, "token_sha256: not 64 hex digits (the SHA-256 of the "
                  "token, e.g. from sha256sum)");
    ps->cfg->has_admin = true;
    return 1;
  }
  if (strncmp(section, "tenant.", 7) == 0 && brk_name_valid(section + 7)) {
    ti = tenant_index(ps, section + 7);
    if (ti < 0)
      return fail(ps, ps->nomem ? "out of memory"
                                : "too many tenants (at most %u)",
                  BRK_MAX_TENANTS);
    return tenant_key(ps, (uint32_t)ti, name, value);
  }
  if (strcmp(section, "") == 0)
    return fail(ps, "key '%s' outside any section", name);
  /* Reported with its header already (read_line()). */
  return fail(ps, "unknown section [%s]", section);
}

/* inih's line reader: fgets() that counts lines, refuses over-long ones
 * and checks section headers itself. */
static char *read_line(char *str, int num, void *stream) {
  struct parse *ps = stream;
  char *p, *end;
  size_t n;

  if (!fgets(str, num, ps->f))
    return NULL;
  ps->line++;
  n = strlen(str);
  if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ps->f)) {
    int c;
    fail(ps, "line longer than %d bytes", num - 2);
    while ((c = fgetc(ps->f)) != EOF && c != '\n') {
    }
    str[0] = '\0';
    return str;
  }
  for (p = str; *p == ' ' || *p == '\t'; p++) {
  }
  if (*p == '[') {
    end = strchr(p, ']');
    if (end) {
      char name[128];
      size_t len = (size_t)(end - p - 1);
      if (len >= sizeof(name))
        len = sizeof(name) - 1;
      memcpy(name, p + 1, len);
      name[len] = '\0';
      if (!section_ok(name)) {
        if (strncmp(name, "tenant.", 7) == 0)
          fail(ps, "[%s]: a tenant's name is 1 to %u of [A-Za-z0-9._-]",
               name, BRK_NAME_MAX);
        else
          fail(ps, "unknown section [%s] (broker, tenant.NAME, admin)",
               name);
      } else if (strncmp(name, "tenant.", 7) == 0 &&
                 tenant_index(ps, name + 7) < 0) {
        fail(ps, ps->nomem ? "out of memory" : "too many tenants");
      }
    } else {
      fail(ps, "a section header without ']'");
    }
  }
  return str;
}

int brk_config_load(struct brk_config *cfg, const char *path, char *why,
                    size_t whylen) {
  struct parse ps;
  char kwhy[256];
  uint32_t i, j;
  int r, ret = GP_EINVAL;

  memset(cfg, 0, sizeof(*cfg));
  memset(&ps, 0, sizeof(ps));
  cfg->heartbeat_ms = 1000;
  cfg->down_after_ms = 5000;
  cfg->grant_ttl_s = 60;
  cfg->default_memory = 1ull << 30;
  cfg->path = strdup(path);
  if (!cfg->path)
    return GP_ENOMEM;
  ps.cfg = cfg;
  ps.f = fopen(path, "r");
  if (!ps.f) {
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
    return GP_EINVAL;
  }
  r = ini_parse_stream(read_line, &ps, on_key, &ps);
  fclose(ps.f);
  if (ps.nomem) {
    snprintf(why, whylen, "%s: out of memory", path);
    ret = GP_ENOMEM;
    goto out;
  }
  if (ps.why_line) {
    snprintf(why, whylen, "%s:%d: %s", path, ps.why_line, ps.why);
    goto out;
  }
  if (r != 0) {
    /* inih's own complaint: a line that is neither a section, a key with
     * '=' nor a comment. */
    snprintf(why, whylen, "%s:%d: not 'key = value', a [section] or a "
             "comment", path, r);
    goto out;
  }
  if (!cfg->grant_key_file) {
    snprintf(why, whylen, "%s: [broker] has no grant_key_file (required)",
             path);
    goto out;
  }
  /* One late or lost heartbeat must not mark a server down. The line
   * named is the later of the two keys (the one that made them clash);
   * with both defaulted they cannot clash. */
  if ((uint64_t)cfg->down_after_ms < 2ull * cfg->heartbeat_ms) {
    snprintf(why, whylen, "%s:%d: down_after_ms (%u) must be at least twice "
             "heartbeat_ms (%u)", path,
             ps.down_line > ps.heartbeat_line ? ps.down_line
                                              : ps.heartbeat_line,
             cfg->down_after_ms, cfg->heartbeat_ms);
    goto out;
  }
  for (i = 0; i < cfg->ntenants; i++) {
    if (!(ps.tenant_keys[i] & K_TOKEN)) {
      snprintf(why, whylen, "%s: [tenant.%s] has no token_sha256 (required)",
               path, cfg->tenants[i].t.name);
      goto out;
    }
    for (j = 0; j < i; j++)
      if (strcmp(cfg->tenants[i].token_sha256,
                 cfg->tenants[j].token_sha256) == 0) {
        snprintf(why, whylen, "%s: tenants %s and %s have the same "
                 "token_sha256", path, cfg->tenants[j].t.name,
                 cfg->tenants[i].t.name);
        goto out;
      }
    if (cfg->has_admin &&
        strcmp(cfg->tenants[i].token_sha256, cfg->admin_sha256) == 0) {
      snprintf(why, whylen, "%s: tenant %s has the admin's token_sha256",
               path, cfg->tenants[i].t.name);
      goto out;
    }
  }
  if (gp_key_load(cfg->grant_key_file, cfg->key, &cfg->keylen, kwhy,
                  sizeof(kwhy)) != 0) {
    snprintf(why, whylen, "%s:%d: grant_key_file: %s", path, ps.key_line,
             kwhy);
    goto out;
  }
  ret = 0;
out:
  free(ps.tenant_keys);
  return ret;
}

void brk_config_free(struct brk_config *cfg) {
  free(cfg->path);
  free(cfg->grant_key_file);
  free(cfg->tenants);
  /* The key does not outlive the config. */
  explicit_bzero(cfg->key, sizeof(cfg->key));
  memset(cfg, 0, sizeof(*cfg));
}

int brk_config_token(const struct brk_config *cfg, const uint8_t *token,
                     size_t len) {
  char hex[65];
  int found = BRK_TOKEN_UNKNOWN;
  uint32_t i;

  if (!token || len == 0)
    return BRK_TOKEN_UNKNOWN;
  gp_sha256_hex(token, len, hex);
  /* Every hash is compared, whichever matches, so the time taken does not
   * say which tenant a token belongs to. */
  for (i = 0; i < cfg->ntenants; i++)
    if (gp_ct_equal(hex, cfg->tenants[i].token_sha256, 64))
      found = (int)i;
  if (cfg->has_admin && gp_ct_equal(hex, cfg->admin_sha256, 64))
    found = BRK_TOKEN_ADMIN;
  explicit_bzero(hex, sizeof(hex));
  return found;
}
