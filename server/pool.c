/* Names, labels and worker report lines: see pool.h. */
#include "pool.h"

#include <string.h>

#include "gpupool/errors.h"

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* True when every character of |s| (|n| of them) is alphanumeric or in
 * |extra|. */
static bool all_of(const char *s, size_t n, const char *extra) {
  size_t i;

  for (i = 0; i < n; i++)
    if (!is_alnum(s[i]) && !(s[i] != '\0' && strchr(extra, s[i])))
      return false;
  return true;
}

bool gp__pool_name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;

  return n >= 1 && n <= GP_POOL_NAME_MAX && all_of(s, n, "._-");
}

int gp__label_parse(const char *s, char *key, char *value, const char **why) {
  const char *eq = strchr(s, '=');
  size_t kl, vl;

  if (!eq) {
    *why = "expected KEY=VALUE";
    return GP_EINVAL;
  }
  kl = (size_t)(eq - s);
  vl = strlen(eq + 1);
  if (kl == 0 || kl > GP_LABEL_KEY_MAX || !is_alnum(s[0]) ||
      !all_of(s, kl, "._/-")) {
    *why = "the key must be 1 to 63 of A-Z a-z 0-9 . _ / -, starting with a "
           "letter or digit";
    return GP_EINVAL;
  }
  if (vl > GP_LABEL_VALUE_MAX || !all_of(eq + 1, vl, "._:/@+-")) {
    *why = "the value must be at most 127 of A-Z a-z 0-9 . _ : / @ + -";
    return GP_EINVAL;
  }
  memcpy(key, s, kl);
  key[kl] = '\0';
  memcpy(value, eq + 1, vl + 1);
  return 0;
}

void gp__tenant_clean(const char *in, char *out) {
  size_t i = 0;

  for (; in && in[i] && i < GP_TENANT_MAX; i++)
    out[i] = all_of(&in[i], 1, "._@-") ? in[i] : '_';
  out[i] = '\0';
  if (i == 0)
    strcpy(out, "-");
}

/* Takes a decimal number without leading zeros (at most 20 digits, no
 * overflow) ending at |stop| from |*p|, and steps past |stop|. */
static int take_u64(const char **p, char stop, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  size_t n = 0;

  while (s[n] >= '0' && s[n] <= '9') {
    unsigned d = (unsigned)(s[n] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return GP_EPROTO;
    v = v * 10 + d;
    n++;
  }
  if (n == 0 || s[n] != stop || (n > 1 && s[0] == '0'))
    return GP_EPROTO;
  *p = s + n + (stop ? 1 : 0);
  *out = v;
  return 0;
}

/* Exactly 16 lower-case hex digits, then |stop|. */
static int take_id(const char **p, char stop, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  int i;

  for (i = 0; i < 16; i++) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else
      return GP_EPROTO;
    v = v << 4 | d;
  }
  if (s[16] != stop)
    return GP_EPROTO;
  *p = s + 17;
  *out = v;
  return 0;
}

/* A word of 1 to |max| characters of [A-Za-z0-9] and |extra|, then a
 * space, copied into |out|. */
static int take_word(const char **p, size_t max, const char *extra,
                     char *out) {
  const char *sp = strchr(*p, ' ');
  size_t n;

  if (!sp)
    return GP_EPROTO;
  n = (size_t)(sp - *p);
  if (n == 0 || n > max || !all_of(*p, n, extra))
    return GP_EPROTO;
  memcpy(out, *p, n);
  out[n] = '\0';
  *p = sp + 1;
  return 0;
}

int gp__report_parse(const char *line, struct gp_report *out) {
  const char *p = line;
  uint8_t uuid[16];

  memset(out, 0, sizeof(*out));
  if (strnlen(line, GP_REPORT_LINE_MAX) >= GP_REPORT_LINE_MAX)
    return GP_EPROTO;
  if (strncmp(p, "claim ", 6) == 0) {
    p += 6;
    out->kind = GP_REPORT_CLAIM;
    if (take_id(&p, ' ', &out->session_id) != 0 ||
        take_u64(&p, '\0', &out->expires_unix) != 0)
      return GP_EPROTO;
    return 0;
  }
  if (strncmp(p, "admitted ", 9) == 0) {
    p += 9;
    out->kind = GP_REPORT_ADMITTED;
    if (take_id(&p, ' ', &out->session_id) != 0 ||
        take_word(&p, GP_TENANT_MAX, "._@-", out->tenant) != 0)
      return GP_EPROTO;
    if ((strncmp(p, "GPU-", 4) != 0 && strncmp(p, "MIG-", 4) != 0) ||
        strlen(p) < 41 || p[40] != ' ')
      return GP_EPROTO;
    memcpy(out->gpu_uuid, p, 40);
    out->gpu_uuid[40] = '\0';
    if (gp__uuid_parse(out->gpu_uuid + 4, uuid) != 0)
      return GP_EPROTO;
    p += 41;
    if (take_u64(&p, ' ', &out->limit) != 0 ||
        take_u64(&p, '\0', &out->expires_unix) != 0)
      return GP_EPROTO;
    return 0;
  }
  if (strncmp(p, "used ", 5) == 0) {
    p += 5;
    out->kind = GP_REPORT_USED;
    if (take_u64(&p, ' ', &out->used) != 0 ||
        take_u64(&p, '\0', &out->idle_ms) != 0)
      return GP_EPROTO;
    return 0;
  }
  return GP_EPROTO;
}
