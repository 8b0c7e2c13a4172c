/* The supervisor's view of the GPUs through NVIDIA's management library
 * (libnvidia-ml.so.1, loaded with dlopen: a server without it still runs,
 * and its inventory lacks what only NVML says). NVML does not initialise
 * CUDA, so the supervisor may call it.
 *
 * The types and constants below are the ABI that NVML's public header
 * documents; only what this file calls is declared.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "devices.h"
#include "gpupool/errors.h"

typedef int nvml_return;           /* nvmlReturn_t; 0 is NVML_SUCCESS */
typedef struct nvml_device *nvml_device; /* nvmlDevice_t */

struct nvml_memory {               /* nvmlMemory_t */
  unsigned long long total, free, used;
};

struct nvml_utilization {          /* nvmlUtilization_t */
  unsigned int gpu, memory;
};

#define NVML_SUCCESS 0
#define NVML_DEVICE_MIG_ENABLE 1
/* NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE. */
#define NVML_BUFFER 96

struct nvml {
  void *lib;
  nvml_return (*init)(void);
  nvml_return (*shutdown)(void);
  nvml_return (*count)(unsigned *);
  nvml_return (*by_index)(unsigned, nvml_device *);
  nvml_return (*name)(nvml_device, char *, unsigned);
  nvml_return (*uuid)(nvml_device, char *, unsigned);
  nvml_return (*memory)(nvml_device, struct nvml_memory *);
  nvml_return (*utilization)(nvml_device, struct nvml_utilization *);
  /* MIG: may be missing from an old library (then no MIG devices). */
  nvml_return (*mig_mode)(nvml_device, unsigned *, unsigned *);
  nvml_return (*max_mig)(nvml_device, unsigned *);
  nvml_return (*mig_by_index)(nvml_device, unsigned, nvml_device *);
};

static void *sym(struct nvml *n, const char *name, bool *missing) {
  void *p = dlsym(n->lib, name);
  if (!p)
    *missing = true;
  return p;
}

/* A MIG device's profile is the last word of its NVML name, which NVML
 * forms as "<GPU name> MIG <profile>" (e.g. "NVIDIA A100-SXM4-40GB MIG
 * 1g.5gb"). Empty when the name has no " MIG " in it. */
static void profile_from_name(const char *name, char *out, size_t len) {
  const char *p = NULL, *q = name;

  while ((q = strstr(q, " MIG ")) != NULL)
    p = q++;
  out[0] = '\0';
  if (p && p[5] != '\0')
    snprintf(out, len, "%s", p + 5);
}

/* Fills |rec| from NVML's answers for |dev|. The UUID must be "GPU-" or
 * "MIG-" and 36 characters of UUID; anything else is GP_EPROTO (the
 * device is then left out). */
static int describe(struct nvml *n, nvml_device dev, bool mig,
                    struct gp_device_rec *rec) {
  char name[NVML_BUFFER + 1] = "", uuid[NVML_BUFFER + 1] = "";
  struct nvml_memory mem;
  struct nvml_utilization util;
  size_t i;

  gp__device_rec_init(rec);
  rec->mig = mig;
  if (n->uuid(dev, uuid, NVML_BUFFER) != NVML_SUCCESS)
    return GP_EPROTO;
  uuid[NVML_BUFFER] = '\0';
  if (strncmp(uuid, mig ? "MIG-" : "GPU-", 4) != 0 ||
      gp__uuid_parse(uuid + 4, rec->uuid) != 0)
    return GP_EPROTO;
  gp__uuid_format(mig ? "MIG-" : "GPU-", rec->uuid, rec->uuid_str);
  if (n->name(dev, name, NVML_BUFFER) == NVML_SUCCESS) {
    name[NVML_BUFFER] = '\0';
    for (i = 0; name[i]; i++)
      if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
        name[i] = '?';
    snprintf(rec->name, sizeof(rec->name), "%s", name);
  }
  if (n->memory(dev, &mem) == NVML_SUCCESS) {
    rec->has_total = rec->has_used = true;
    rec->mem_total = mem.total;
    rec->mem_used = mem.used;
  }
  /* MIG devices have no utilisation counters (NVML_ERROR_NOT_SUPPORTED):
   * absent then. */
  if (n->utilization(dev, &util) == NVML_SUCCESS && util.gpu <= 100)
    rec->util = (int)util.gpu;
  if (mig)
    profile_from_name(rec->name, rec->mig_profile, sizeof(rec->mig_profile));
  return 0;
}

static void add_migs(struct nvml *n, nvml_device gpu, int parent,
                     struct gp_inventory *inv) {
  unsigned cur = 0, pending = 0, max = 0, k;

  if (!n->mig_mode || !n->max_mig || !n->mig_by_index)
    return;
  if (n->mig_mode(gpu, &cur, &pending) != NVML_SUCCESS ||
      cur != NVML_DEVICE_MIG_ENABLE)
    return;
  inv->d[parent].mig_enabled = true;
  if (n->max_mig(gpu, &max) != NVML_SUCCESS)
    return;
  if (max > GP_DEVICES_MAX)
    max = GP_DEVICES_MAX;
  /* Indices without a MIG device answer NVML_ERROR_NOT_FOUND. */
  for (k = 0; k < max; k++) {
    struct gp_device_rec rec;
    nvml_device mig;
    if (n->mig_by_index(gpu, k, &mig) != NVML_SUCCESS)
      continue;
    if (describe(n, mig, true, &rec) != 0)
      continue;
    rec.parent = parent;
    if (gp__inventory_add_nvml(inv, &rec, NULL) != 0)
      return;
  }
}

int gp__nvml_load(struct gp_inventory *inv, char *why, size_t whylen) {
  struct nvml n;
  bool missing = false;
  unsigned count = 0, i;
  nvml_return r;

  memset(&n, 0, sizeof(n));
  n.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!n.lib) {
    snprintf(why, whylen, "libnvidia-ml.so.1 is not installed");
    return GP_ENOENT;
  }
  n.init = sym(&n, "nvmlInit_v2", &missing);
  n.shutdown = sym(&n, "nvmlShutdown", &missing);
  n.count = sym(&n, "nvmlDeviceGetCount_v2", &missing);
  n.by_index = sym(&n, "nvmlDeviceGetHandleByIndex_v2", &missing);
  n.name = sym(&n, "nvmlDeviceGetName", &missing);
  n.uuid = sym(&n, "nvmlDeviceGetUUID", &missing);
  n.memory = sym(&n, "nvmlDeviceGetMemoryInfo", &missing);
  n.utilization = sym(&n, "nvmlDeviceGetUtilizationRates", &missing);
  if (missing) {
    snprintf(why, whylen, "libnvidia-ml.so.1 lacks the functions needed");
    dlclose(n.lib);
    return GP_ENOENT;
  }
  n.mig_mode = dlsym(n.lib, "nvmlDeviceGetMigMode");
  n.max_mig = dlsym(n.lib, "nvmlDeviceGetMaxMigDeviceCount");
  n.mig_by_index = dlsym(n.lib, "nvmlDeviceGetMigDeviceHandleByIndex");

  r = n.init();
  if (r != NVML_SUCCESS) {
    snprintf(why, whylen, "nvmlInit_v2 failed (NVML error %d)", r);
    dlclose(n.lib);
    return GP_ENOENT;
  }
  if (n.count(&count) != NVML_SUCCESS)
    count = 0;
  for (i = 0; i < count; i++) {
    struct gp_device_rec rec;
    nvml_device dev;
    int at;
    if (n.by_index(i, &dev) != NVML_SUCCESS || describe(&n, dev, false,
                                                         &rec) != 0)
      continue;
    if (gp__inventory_add_nvml(inv, &rec, &at) != 0)
      break;
    add_migs(&n, dev, at, inv);
  }
  inv->have_nvml = true;
  n.shutdown();
  dlclose(n.lib);
  return 0;
}
