/* Device selection and the inventory: parsing --devices and the probe's
 * lines, merging the probe's devices with NVML's, choosing the device of a
 * new session, and the environment its worker gets. No I/O but printing;
 * see devices.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "gpupool/errors.h"

/* ---- UUIDs ------------------------------------------------------------------ */

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int gp__uuid_parse(const char *s, uint8_t uuid[16]) {
  int i, k = 0, hi = -1;

  for (i = 0; i < 36; i++) {
    int v;
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return GP_EINVAL;
      continue;
    }
    v = hexval((unsigned char)s[i]);
    if (v < 0)
      return GP_EINVAL;
    if (hi < 0) {
      hi = v;
    } else {
      uuid[k++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  return s[36] == '\0' ? 0 : GP_EINVAL;
}

void gp__uuid_format(const char *prefix, const uint8_t u[16],
                     char out[GP_UUID_STR_LEN]) {
  snprintf(out, GP_UUID_STR_LEN,
           "%.4s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           prefix, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8],
           u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* ---- --devices ------------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int fail(const char **why, char *buf, size_t buflen, const char *fmt,
                ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, buflen, fmt, ap);
  va_end(ap);
  *why = buf;
  return GP_EINVAL;
}

static bool same_entry(const struct gp_devsel_entry *a,
                       const struct gp_devsel_entry *b) {
  if (a->kind != b->kind)
    return false;
  if (a->kind == GP_DEVSEL_ORDINAL)
    return a->ordinal == b->ordinal;
  return memcmp(a->uuid, b->uuid, 16) == 0;
}

int gp__devsel_parse(const char *s, struct gp_devsel *out, char *buf,
                     size_t buflen, const char **why) {
  const char *p = s;

  memset(out, 0, sizeof(*out));
  if (strcmp(s, "all") == 0) {
    out->all = true;
    return 0;
  }
  if (*s == '\0')
    return fail(why, buf, buflen, "the list is empty (use 'all' or a "
                "comma-separated list)");
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    struct gp_devsel_entry *e;
    char text[GP_UUID_STR_LEN];
    int i;

    if (len == 0)
      return fail(why, buf, buflen, "an entry is empty");
    if (len >= sizeof(text))
      return fail(why, buf, buflen, "'%.*s...' is not an ordinal, a GPU-... "
                  "UUID or a MIG-... UUID", 40, p);
    if (out->n == GP_DEVICES_MAX)
      return fail(why, buf, buflen, "more than %d entries", GP_DEVICES_MAX);
    memcpy(text, p, len);
    text[len] = '\0';
    e = &out->e[out->n];
    snprintf(e->text, sizeof(e->text), "%s", text);
    if (text[0] >= '0' && text[0] <= '9') {
      char *stop;
      unsigned long v;
      errno = 0;
      v = strtoul(text, &stop, 10);
      if (errno != 0 || *stop != '\0' || v > 65535)
        return fail(why, buf, buflen, "'%s' is not an ordinal (0 to 65535)",
                    text);
      e->kind = GP_DEVSEL_ORDINAL;
      e->ordinal = (int)v;
    } else if (strncmp(text, "GPU-", 4) == 0 &&
               gp__uuid_parse(text + 4, e->uuid) == 0) {
      e->kind = GP_DEVSEL_GPU;
    } else if (strncmp(text, "MIG-", 4) == 0 &&
               gp__uuid_parse(text + 4, e->uuid) == 0) {
      e->kind = GP_DEVSEL_MIG;
    } else if (strcmp(text, "all") == 0) {
      return fail(why, buf, buflen, "'all' cannot be part of a list");
    } else {
      return fail(why, buf, buflen, "'%s' is not an ordinal, a GPU UUID "
                  "(GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) or a MIG UUID "
                  "(MIG-...)", text);
    }
    for (i = 0; i < out->n; i++)
      if (same_entry(&out->e[i], e))
        return fail(why, buf, buflen, "'%s' is listed twice", text);
    out->n++;
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

/* ---- Probe lines ----------------------------------------------------------- */

void gp__device_rec_init(struct gp_device_rec *rec) {
  memset(rec, 0, sizeof(*rec));
  rec->ordinal = -1;
  rec->util = -1;
  rec->parent = -1;
}

/* Reads a decimal number of at most |maxdigits| digits at |*p| ending at
 * |stop| (a character that must follow). Returns 0 or GP_EPROTO. */
static int take_number(const char **p, char stop, int maxdigits,
                       uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  int n = 0;

  while (*s >= '0' && *s <= '9') {
    if (++n > maxdigits)
      return GP_EPROTO;
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
      return GP_EPROTO;
    v = v * 10 + (uint64_t)(*s - '0');
    s++;
  }
  /* No leading zeros except "0" itself, so each value has one spelling. */
  if (n == 0 || *s != stop || (n > 1 && **p == '0'))
    return GP_EPROTO;
  *p = s + 1;
  *out = v;
  return 0;
}

int gp__probe_parse_line(const char *line, struct gp_device_rec *out) {
  const char *p = line;
  char uuid[37];
  uint64_t v;
  size_t n, i;

  gp__device_rec_init(out);
  if (strlen(line) >= GP_PROBE_LINE_MAX || strncmp(p, "device ", 7) != 0)
    return GP_EPROTO;
  p += 7;
  if (take_number(&p, ' ', 5, &v) != 0 || v > 65535)
    return GP_EPROTO;
  out->ordinal = (int)v;
  if (strncmp(p, "GPU-", 4) != 0 || strlen(p) < 41 || p[40] != ' ')
    return GP_EPROTO;
  memcpy(uuid, p + 4, 36);
  uuid[36] = '\0';
  if (gp__uuid_parse(uuid, out->uuid) != 0)
    return GP_EPROTO;
  gp__uuid_format("GPU-", out->uuid, out->uuid_str);
  p += 41;
  if (take_number(&p, ' ', 20, &v) != 0)
    return GP_EPROTO;
  out->has_total = true;
  out->mem_total = v;
  n = strlen(p);
  if (n == 0 || n >= sizeof(out->name))
    return GP_EPROTO;
  for (i = 0; i < n; i++)
    if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
      return GP_EPROTO;
  memcpy(out->name, p, n + 1);
  return 0;
}

int gp__probe_parse_cc(const char *line, int *ordinal, int *major,
                       int *minor) {
  const char *p = line;
  uint64_t o, ma, mi;

  if (strlen(line) >= GP_PROBE_LINE_MAX || strncmp(p, "cc ", 3) != 0)
    return GP_EPROTO;
  p += 3;
  if (take_number(&p, ' ', 5, &o) != 0 || o > 65535 ||
      take_number(&p, ' ', 2, &ma) != 0 || ma == 0 ||
      take_number(&p, '\0', 2, &mi) != 0)
    return GP_EPROTO;
  *ordinal = (int)o;
  *major = (int)ma;
  *minor = (int)mi;
  return 0;
}

/* ---- The inventory ---------------------------------------------------------- */

static int find_uuid(const struct gp_inventory *inv, const uint8_t uuid[16]) {
  int i;

  for (i = 0; i < inv->n; i++)
    if (memcmp(inv->d[i].uuid, uuid, 16) == 0)
      return i;
  return -1;
}

int gp__inventory_add_probe(struct gp_inventory *inv,
                            const struct gp_device_rec *rec) {
  int i;

  for (i = 0; i < inv->n; i++)
    if (inv->d[i].ordinal == rec->ordinal)
      return GP_EINVAL;
  if (inv->n == GP_DEVICES_MAX)
    return GP_ENOMEM;
  inv->d[inv->n++] = *rec;
  return 0;
}

int gp__inventory_add_nvml(struct gp_inventory *inv,
                           const struct gp_device_rec *rec, int *index) {
  int i = find_uuid(inv, rec->uuid);
  struct gp_device_rec *d;

  if (i < 0) {
    if (inv->n == GP_DEVICES_MAX)
      return GP_ENOMEM;
    i = inv->n++;
    inv->d[i] = *rec;
    if (index)
      *index = i;
    return 0;
  }
  /* The driver's name and total memory stand; NVML adds what CUDA does not
   * say (use, utilisation) and whether it is a MIG device. */
  d = &inv->d[i];
  d->mig = rec->mig;
  memcpy(d->uuid_str, rec->uuid_str, sizeof(d->uuid_str));
  if (!d->has_total) {
    d->has_total = rec->has_total;
    d->mem_total = rec->mem_total;
  }
  if (d->name[0] == '\0')
    memcpy(d->name, rec->name, sizeof(d->name));
  d->has_used = rec->has_used;
  d->mem_used = rec->mem_used;
  d->util = rec->util;
  d->mig_enabled = rec->mig_enabled;
  memcpy(d->mig_profile, rec->mig_profile, sizeof(d->mig_profile));
  d->parent = rec->parent;
  if (index)
    *index = i;
  return 0;
}

__attribute__((format(printf, 4, 5)))
static int sel_fail(int err, char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return err;
}

static int cuda_count(const struct gp_inventory *inv) {
  int i, n = 0;

  for (i = 0; i < inv->n; i++)
    if (inv->d[i].ordinal >= 0)
      n++;
  return n;
}

static int mig_count(const struct gp_inventory *inv) {
  int i, n = 0;

  for (i = 0; i < inv->n; i++)
    if (inv->d[i].mig)
      n++;
  return n;
}

static int offer(struct gp_inventory *inv, int i, const char *text,
                 char *why, size_t whylen) {
  if (inv->d[i].offered)
    return sel_fail(GP_EINVAL, why, whylen, "--devices: '%s' names device "
                    "%s, which an earlier entry named too", text,
                    inv->d[i].uuid_str);
  inv->d[i].offered = true;
  inv->offer[inv->noffer++] = i;
  return 0;
}

int gp__inventory_select(struct gp_inventory *inv, const struct gp_devsel *sel,
                         char *why, size_t whylen, bool *warn) {
  int k, i, r;

  *warn = false;
  if (sel->all) {
    for (i = 0; i < inv->n; i++)
      if (inv->d[i].ordinal >= 0 && (r = offer(inv, i, "all", why,
                                                  whylen)) != 0)
        return r;
    if (inv->noffer == 0)
      return sel_fail(GP_ENOENT, why, whylen, "the driver shows no devices");
    return 0;
  }
  for (k = 0; k < sel->n; k++) {
    const struct gp_devsel_entry *e = &sel->e[k];
    switch (e->kind) {
    case GP_DEVSEL_ORDINAL:
      for (i = 0; i < inv->n && inv->d[i].ordinal != e->ordinal; i++)
        ;
      if (i == inv->n)
        return sel_fail(GP_ENOENT, why, whylen, "--devices: no device %d "
                        "(the driver shows %d)", e->ordinal,
                        cuda_count(inv));
      break;
    case GP_DEVSEL_GPU:
      i = find_uuid(inv, e->uuid);
      if (i < 0 || inv->d[i].ordinal < 0)
        return sel_fail(GP_ENOENT, why, whylen, "--devices: the driver "
                        "shows no device %s", e->text);
      break;
    case GP_DEVSEL_MIG:
      i = find_uuid(inv, e->uuid);
      if (inv->have_nvml) {
        if (i < 0 || !inv->d[i].mig)
          return sel_fail(GP_ENOENT, why, whylen, "--devices: NVML lists no "
                          "MIG device %s (it lists %d)", e->text,
                          mig_count(inv));
      } else if (i >= 0) {
        /* The driver shows it (cuDeviceGetUuid_v2 gives a MIG device's
         * own UUID) and the entry says it is a MIG device: its
         * CUDA_VISIBLE_DEVICES name is MIG-. */
        inv->d[i].mig = true;
        gp__uuid_format("MIG-", e->uuid, inv->d[i].uuid_str);
      } else {
        /* Without NVML there is no list to check a MIG device against:
         * it is offered as written, and the driver judges it when a
         * session starts. */
        if (inv->n == GP_DEVICES_MAX)
          return sel_fail(GP_EINVAL, why, whylen, "--devices: more than %d "
                          "devices", GP_DEVICES_MAX);
        i = inv->n++;
        gp__device_rec_init(&inv->d[i]);
        inv->d[i].mig = true;
        memcpy(inv->d[i].uuid, e->uuid, 16);
        gp__uuid_format("MIG-", e->uuid, inv->d[i].uuid_str);
        *warn = true;
      }
      break;
    default:
      return sel_fail(GP_EINVAL, why, whylen, "--devices: bad entry");
    }
    if ((r = offer(inv, i, e->text, why, whylen)) != 0)
      return r;
  }
  if (inv->noffer == 0)
    return sel_fail(GP_ENOENT, why, whylen, "--devices: no device offered");
  return 0;
}

int gp__inventory_pick(const struct gp_inventory *inv) {
  int k, best = -1;

  for (k = 0; k < inv->noffer; k++) {
    int i = inv->offer[k];
    if (best < 0 || inv->d[i].sessions < inv->d[best].sessions)
      best = i;
  }
  return best;
}

static void fmt_mib(bool has, uint64_t bytes, char *out, size_t len) {
  if (has)
    snprintf(out, len, "%llu MiB", (unsigned long long)(bytes >> 20));
  else
    snprintf(out, len, "-");
}

void gp__inventory_print(const struct gp_inventory *inv, FILE *f) {
  int i;

  fprintf(f, "%-3s  %-40s  %-32s  %11s  %11s  %4s  %-10s  %s\n", "ORD",
          "UUID", "NAME", "MEM TOTAL", "MEM USED", "UTIL", "MIG", "OFFERED");
  for (i = 0; i < inv->n; i++) {
    const struct gp_device_rec *d = &inv->d[i];
    char ord[16] = "-", total[32], used[32], util[16] = "-";
    if (d->ordinal >= 0)
      snprintf(ord, sizeof(ord), "%d", d->ordinal);
    fmt_mib(d->has_total, d->mem_total, total, sizeof(total));
    fmt_mib(d->has_used, d->mem_used, used, sizeof(used));
    if (d->util >= 0)
      snprintf(util, sizeof(util), "%d%%", d->util);
    fprintf(f, "%-3s  %-40s  %-32s  %11s  %11s  %4s  %-10s  %s\n", ord,
            d->uuid_str, d->name[0] ? d->name : "-", total, used, util,
            d->mig_profile[0] ? d->mig_profile
                              : d->mig_enabled ? "enabled" : "-",
            d->offered ? "yes" : "no");
  }
}

void gp__inventory_describe(const struct gp_inventory *inv, int i, char *out,
                            size_t len) {
  const struct gp_device_rec *d = &inv->d[i];
  char ord[16] = "-", total[32];

  if (d->ordinal >= 0)
    snprintf(ord, sizeof(ord), "%d", d->ordinal);
  fmt_mib(d->has_total, d->mem_total, total, sizeof(total));
  snprintf(out, len, "device %s: %s '%s', %s%s%s", ord, d->uuid_str,
           d->name[0] ? d->name : "-", total,
           d->mig_profile[0] ? ", MIG " : "", d->mig_profile);
}

/* ---- The worker's environment ---------------------------------------------- */

char **gp__env_with(char *const *env, const char *name, const char *value) {
  size_t n = 0, k = 0, i, nl = strlen(name);
  char **out;
  char *def;

  while (env && env[n])
    n++;
  out = calloc(n + 2, sizeof(*out));
  def = malloc(nl + strlen(value) + 2);
  if (!out || !def) {
    free(out);
    free(def);
    return NULL;
  }
  sprintf(def, "%s=%s", name, value);
  /* The new definition first; old ones of the same name are left out, so
   * no reader of the environment can find the old value. */
  out[k++] = def;
  for (i = 0; i < n; i++)
    if (!(strncmp(env[i], name, nl) == 0 && env[i][nl] == '='))
      out[k++] = env[i];
  out[k] = NULL;
  return out;
}

void gp__env_free(char **env) {
  /* Only the first string is ours; the rest belong to the environment. */
  if (env)
    free(env[0]);
  free(env);
}
