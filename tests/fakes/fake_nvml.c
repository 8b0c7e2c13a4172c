/* A test double for NVIDIA's management library, libnvidia-ml.so.1: a
 * stand-in built only for gpupool's tests (into build/tests/fakes/), for
 * machines without an NVIDIA driver. It is not NVML and does nothing NVML
 * does; it answers the few calls gpupool-server's nvml.c makes with fixed
 * values, through the same ABI (the types NVML's public header
 * documents), so that --list-devices can be tested with LD_LIBRARY_PATH
 * pointing here.
 *
 * It reports two GPUs:
 *   0: "Fake GPU Alpha", 40960 MiB total, 1234 MiB used, 37% busy, MIG off.
 *      Its UUID is $GP_FAKE_NVML_UUID0 when set (a test sets it to the
 *      emulated device's, so NVML's record merges with the probe's), else
 *      GPU-11111111-2222-3333-4444-555555555555.
 *   1: "Fake GPU Beta", GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 81920 MiB
 *      total, 2048 MiB used, 5% busy, MIG on, with MIG devices at indices 0
 *      and 2 of 7 (index 1 is empty, as NVML answers NOT_FOUND for it):
 *        MIG-00000000-1111-2222-3333-444444444444 "Fake GPU Beta MIG 1g.10gb",
 *          9984 MiB, 12 MiB used
 *        MIG-99999999-8888-7777-6666-555555555555 "Fake GPU Beta MIG 3g.40gb",
 *          40192 MiB, 100 MiB used
 *      MIG devices have no utilisation (NOT_SUPPORTED), as on real GPUs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_NOT_FOUND = 6,
};

typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;

struct fake_device {
  const char *name;
  const char *uuid;
  unsigned long long total_mib, used_mib;
  int util;            /* -1: not supported */
  int mig;             /* GPU: MIG mode; MIG device: 1 */
};

typedef struct fake_device *nvmlDevice_t;

static struct fake_device gpus[2] = {
  {"Fake GPU Alpha", "GPU-11111111-2222-3333-4444-555555555555", 40960, 1234,
   37, 0},
  {"Fake GPU Beta", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", 81920, 2048,
   5, 1},
};

static struct fake_device migs[2] = {
  {"Fake GPU Beta MIG 1g.10gb", "MIG-00000000-1111-2222-3333-444444444444",
   9984, 12, -1, 1},
  {"Fake GPU Beta MIG 3g.40gb", "MIG-99999999-8888-7777-6666-555555555555",
   40192, 100, -1, 1},
};

static int initialised;
static char uuid0[96];

static int known(nvmlDevice_t d) {
  return d == &gpus[0] || d == &gpus[1] || d == &migs[0] || d == &migs[1];
}

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  const char *u = getenv("GP_FAKE_NVML_UUID0");
  if (u != NULL && *u != '\0') {
    snprintf(uuid0, sizeof(uuid0), "%s", u);
    gpus[0].uuid = uuid0;
  }
  initialised = 1;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  initialised = 0;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (count == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  *count = 2;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i,
                                                       nvmlDevice_t *dev) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (dev == NULL || i >= 2)
    return NVML_ERROR_INVALID_ARGUMENT;
  *dev = &gpus[i];
  return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *s, char *out, unsigned len) {
  if (out == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(s) + 1 > len)
    return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(out, s, strlen(s) + 1);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name,
                                           unsigned int len) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (!known(d))
    return NVML_ERROR_INVALID_ARGUMENT;
  return copy_string(d->name, name, len);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid,
                                           unsigned int len) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (!known(d))
    return NVML_ERROR_INVALID_ARGUMENT;
  return copy_string(d->uuid, uuid, len);
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d,
                                                 nvmlMemory_t *m) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (!known(d) || m == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  m->total = d->total_mib << 20;
  m->used = d->used_mib << 20;
  m->free = m->total - m->used;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d,
                                                       nvmlUtilization_t *u) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (!known(d) || u == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  if (d->util < 0)
    return NVML_ERROR_NOT_SUPPORTED;
  u->gpu = (unsigned)d->util;
  u->memory = (unsigned)d->util / 2;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d,
                                              unsigned int *current,
                                              unsigned int *pending) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (d != &gpus[0] && d != &gpus[1])
    return NVML_ERROR_INVALID_ARGUMENT;
  if (current == NULL || pending == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  *current = *pending = (unsigned)d->mig;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d,
                                                        unsigned int *count) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if ((d != &gpus[0] && d != &gpus[1]) || count == NULL)
    return NVML_ERROR_INVALID_ARGUMENT;
  *count = d->mig ? 7 : 0;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(
    nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig) {
  if (!initialised)
    return NVML_ERROR_UNINITIALIZED;
  if (d != &gpus[1] || mig == NULL || index >= 7)
    return NVML_ERROR_INVALID_ARGUMENT;
  if (index == 0)
    *mig = &migs[0];
  else if (index == 2)
    *mig = &migs[1];
  else
    return NVML_ERROR_NOT_FOUND;
  return NVML_SUCCESS;
}
