/* CUDA_VISIBLE_DEVICES, as NVIDIA's driver reads it: which of the server's
 * devices this process sees, and in which order. Applied once, at cuInit,
 * to the handshake's device table; from then on a CUdevice is an index
 * into the visible list, and gp__device.server_ordinal is what goes on the
 * wire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "trace.h"

/* |uuid| as nvidia-smi writes it, without the "GPU-" prefix:
 * 8-4-4-4-12 lowercase hex digits. */
static void uuid_text(const uint8_t u[16], char out[37]) {
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
           u[11], u[12], u[13], u[14], u[15]);
}

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* The one device whose UUID text starts with |prefix| (|len| characters,
 * hex digits in either case), or -1 when none or several do. */
static int match_uuid(const uint8_t (*uuids)[16], int n, const char *prefix,
                      size_t len) {
  int found = -1;

  if (len > 36)
    return -1;
  for (int i = 0; i < n; i++) {
    char text[37];
    size_t k;
    uuid_text(uuids[i], text);
    for (k = 0; k < len && lower((unsigned char)prefix[k]) == text[k]; k++)
      ;
    if (k < len)
      continue;
    if (found >= 0)
      return -1;
    found = i;
  }
  return found;
}

/* The device one entry of the list names, or -1 when it names none (the
 * list ends there). */
static int entry_device(const char *e, size_t len, const uint8_t (*uuids)[16],
                        int n) {
  size_t k = 0;

  /* An ordinal is read as strtoul would: leading blanks, then the digits;
   * anything after them is ignored ("1gpu" is 1). */
  while (k < len && (e[k] == ' ' || e[k] == '\t'))
    k++;
  if (k < len && e[k] >= '0' && e[k] <= '9') {
    long v = 0;
    for (; k < len && e[k] >= '0' && e[k] <= '9'; k++) {
      v = v * 10 + (e[k] - '0');
      if (v >= n)
        return -1;
    }
    return (int)v;
  }
  /* A UUID, or the start of one, as nvidia-smi prints it. A pool device
   * does not say whether it is a MIG device, so MIG- is looked up among
   * the same UUIDs. */
  if (len >= 4 && (strncmp(e, "GPU-", 4) == 0 || strncmp(e, "MIG-", 4) == 0))
    return match_uuid(uuids, n, e + 4, len - 4);
  return -1;
}

int gp__visible_devices(const char *spec, const uint8_t (*uuids)[16], int n,
                        int *map) {
  const char *p = spec;
  int count = 0;

  if (spec == NULL) {
    for (int i = 0; i < n; i++)
      map[i] = i;
    return n;
  }
  while (*p != '\0') {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    int d = entry_device(p, len, uuids, n);
    if (d < 0)
      break;
    /* A device listed twice makes the whole list invalid, as with the
     * driver: nothing is visible. */
    for (int i = 0; i < count; i++)
      if (map[i] == d)
        return 0;
    map[count++] = d;
    if (end == NULL)
      break;
    p = end + 1;
  }
  return count;
}

int gp__apply_visible_devices(struct gp__client *c, char *why,
                              size_t why_len) {
  const char *spec = getenv("CUDA_VISIBLE_DEVICES");
  uint8_t (*uuids)[16] = NULL;
  int *map = NULL, n = c->ndevices, count, ret = -1;
  struct gp__device *vis = NULL;

  for (int i = 0; i < n; i++)
    c->devices[i].server_ordinal = i;
  if (spec == NULL || n == 0)
    return 0;
  uuids = calloc((size_t)n, sizeof(*uuids));
  map = calloc((size_t)n, sizeof(*map));
  if (uuids == NULL || map == NULL) {
    snprintf(why, why_len, "out of memory");
    goto out;
  }
  for (int i = 0; i < n; i++)
    memcpy(uuids[i], c->devices[i].uuid, 16);
  count = gp__visible_devices(spec, (const uint8_t (*)[16])uuids, n, map);
  if (count == 0) {
    snprintf(why, why_len, "CUDA_VISIBLE_DEVICES='%.64s' names none of the "
             "%d device%s of server %s", spec, n, n == 1 ? "" : "s",
             c->addr);
    goto out;
  }
  vis = calloc((size_t)count, sizeof(*vis));
  if (vis == NULL) {
    snprintf(why, why_len, "out of memory");
    goto out;
  }
  for (int i = 0; i < count; i++)
    vis[i] = c->devices[map[i]];
  free(c->devices);
  c->devices = vis;
  c->ndevices = count;
  ret = 0;
out:
  free(uuids);
  free(map);
  return ret;
}
