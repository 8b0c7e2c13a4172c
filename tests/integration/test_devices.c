/* Integration: devices. gpupool-server's --devices, --list-devices and its
 * inventory (the probe process, NVML through tests/fakes' stand-in
 * libnvidia-ml.so.1), and the client's CUDA_VISIBLE_DEVICES, against real
 * servers on loopback.
 *
 * The server's flags are checked by running the binary and reading its
 * exit status and output; the inventory with the emu backend, with
 * --backend cuda --cuda-lib <gpupool's libcuda.so.1> (the probe then
 * talks to a running emu server, so the device it lists comes through
 * CUDA calls), with and without the NVML stand-in on LD_LIBRARY_PATH. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct gpt_server server;



static const char *need_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') {
    gpt__check_fail(__FILE__, __LINE__, name, "%s", "not set: run the "
                    "tests with meson test");
    gpt__abort_scenario();
  }
  return v;
}

static const char *server_bin(void) { return need_env("GPUPOOL_TEST_SERVER"); }
static const char *libcuda(void) { return need_env("GPUPOOL_TEST_LIBCUDA"); }

/* |out| has a line containing every one of the NULL-ended |parts|;
 * returns it (copied to static storage) or NULL. */
static const char *line_with(const char *out, const char *const *parts) {
  static char line[1024];
  const char *p = out;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len >= sizeof line) len = sizeof line - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    bool all = true;
    for (int i = 0; parts[i] && all; i++)
      all = strstr(line, parts[i]) != NULL;
    if (all) return line;
    if (!nl) break;
    p = nl + 1;
  }
  return NULL;
}

/* Splits a table row into whitespace-separated words; the NAME column may
 * hold spaces, so the caller picks columns from either end. Returns the
 * number of words. */
static int words(const char *line, char w[][64], int max) {
  int n = 0;
  const char *p = line;
  while (*p && n < max) {
    while (*p == ' ') p++;
    if (!*p) break;
    size_t k = 0;
    while (p[k] && p[k] != ' ') k++;
    snprintf(w[n++], 64, "%.*s", (int)k, p);
    p += k;
  }
  return n;
}

/* The row of |uuid| in --list-devices output, split: w[0] ordinal, w[1]
 * UUID, and from the end: OFFERED, MIG, UTIL, USED ("N MiB" is two words
 * or "-"), TOTAL. Returns the number of words, 0 if no such row. */
static int row(const char *out, const char *uuid, char w[][64]) {
  const char *parts[] = {uuid, NULL};
  const char *l = line_with(out, parts);
  return l ? words(l, w, 24) : 0;
}

/* The emulated device's UUID as nvidia-smi would print it, from
 * cuDeviceGetUuid through the harness's server. */
static void emu_uuid(char out[48]) {
  CUdevice dev;
  CUuuid u;
  gpt_init_context(&dev);
  REQUIRE_OK(cuDeviceGetUuid(&u, dev));
  const unsigned char *b = (const unsigned char *)u.bytes;
  snprintf(out, 48,
           "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}

/* ---- --devices ------------------------------------------------------------------- */

static void test_devices_server_flags(int argc, char **argv) {
  struct gpt_run r;
  static const char *bad[] = {
      "", "0,", ",", "0,,1", "-1", "x", "all,0", "65536", "GPU-1234",
      "GPU-23d1a775-bf03-83f4-aed8-2b294173328g", "MIG-GPU-1/2/3", "0,0",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *a[] = {server_bin(), "--devices", bad[i], "--list-devices",
                       NULL};
    gpt_run(&r, a, NULL, 20);
    CHECK_EQ_I(r.status, 2);
    CHECK_TRUE(strstr(r.out, "--devices") != NULL);
    CHECK_TRUE(strstr(r.out, "Try 'gpupool-server --help'") != NULL);
    /* One line of reason, then the hint. */
    int lines = 0;
    for (const char *p = r.out; *p; p++) lines += *p == '\n';
    CHECK_EQ_I(lines, 2);
  }
  /* The emu backend has one device: 0 or all, nothing else, even when
   * well formed. */
  static const char *emu_bad[] = {
      "1", "0,1", "GPU-23d1a775-bf03-83f4-aed8-2b294173328f",
      "MIG-23d1a775-bf03-83f4-aed8-2b294173328f",
  };
  for (size_t i = 0; i < sizeof emu_bad / sizeof emu_bad[0]; i++) {
    const char *a[] = {server_bin(), "--devices", emu_bad[i], NULL};
    gpt_run(&r, a, NULL, 20);
    CHECK_EQ_I(r.status, 2);
    CHECK_TRUE(strstr(r.out, "emu backend has one device") != NULL);
  }
  static const char *good[] = {"all", "0"};
  for (size_t i = 0; i < 2; i++) {
    const char *a[] = {server_bin(), "--devices", good[i], "--list-devices",
                       NULL};
    gpt_run(&r, a, NULL, 20);
    CHECK_EQ_I(r.status, 0);
    CHECK_TRUE(strstr(r.out, "gpupool emulated device") != NULL);
  }
  const char *nolib[] = {server_bin(), "--cuda-lib", "", NULL};
  gpt_run(&r, nolib, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  const char *noval[] = {server_bin(), "--devices", NULL};
  gpt_run(&r, noval, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  /* --help documents the flags. */
  const char *help[] = {server_bin(), "--help", NULL};
  gpt_run(&r, help, NULL, 20);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "--devices all|LIST") != NULL);
  CHECK_TRUE(strstr(r.out, "--list-devices") != NULL);
  CHECK_TRUE(strstr(r.out, "--cuda-lib PATH") != NULL);
  /* A running server with a bad --devices never listens. */
  const char *start[] = {server_bin(), "--listen", "127.0.0.1:0", "--devices",
                         "2", NULL};
  gpt_run(&r, start, NULL, 20);
  CHECK_EQ_I(r.status, 2);
  (void)argc;
  (void)argv;
}

/* ---- the emu backend's inventory ----------------------------------------------------- */

static void test_devices_list_emu(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char uuid[48];
  emu_uuid(uuid);
  struct gpt_run r;
  const char *a[] = {server_bin(), "--list-devices", "--emu-memory", "3G",
                     NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  char w[24][64];
  int n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) {
    CHECK_STR_EQ(w[0], "0");
    CHECK_STR_EQ(w[1], uuid);
    CHECK_STR_EQ(w[n - 1], "yes");   /* offered */
    CHECK_STR_EQ(w[n - 2], "-");     /* MIG */
    CHECK_STR_EQ(w[n - 3], "-");     /* utilisation */
    CHECK_STR_EQ(w[n - 4], "-");     /* memory used: absent, not 0 */
    CHECK_STR_EQ(w[n - 5], "MiB");
    CHECK_STR_EQ(w[n - 6], "3072");  /* --emu-memory 3G */
  }
  CHECK_TRUE(strstr(r.out, "gpupool emulated device") != NULL);
  const char *hdr[] = {"ORD", "UUID", "NAME", "MEM TOTAL", "MEM USED", "UTIL",
                       "MIG", "OFFERED", NULL};
  CHECK_TRUE(line_with(r.out, hdr) != NULL);
  (void)argc;
  (void)argv;
}

/* ---- --backend cuda through gpupool's own library (a relay's view) -------------- */

static void test_devices_probe(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char uuid[48], mig[48], other[48];
  emu_uuid(uuid);
  snprintf(other, sizeof other, "%s", uuid);
  other[strlen(other) - 1] = other[strlen(other) - 1] == '0' ? '1' : '0';
  snprintf(mig, sizeof mig, "MIG-%s", other + 4);
  /* No NVML: whatever the environment had, it is not on the path. */
  const char *env[] = {"LD_LIBRARY_PATH", NULL};
  struct gpt_run r;
  char w[24][64];
  int n;

  const char *a[] = {server_bin(), "--list-devices", "--backend", "cuda",
                     "--cuda-lib", libcuda(), NULL};
  gpt_run(&r, a, env, 60);
  CHECK_EQ_I(r.status, 0);
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) {
    CHECK_STR_EQ(w[0], "0");
    CHECK_STR_EQ(w[n - 1], "yes");
    CHECK_STR_EQ(w[n - 3], "-");
    CHECK_STR_EQ(w[n - 4], "-");
    CHECK_STR_EQ(w[n - 6], "1024");  /* the harness's --emu-memory 1G */
  }
  CHECK_TRUE(strstr(r.out, "gpupool emulated device") != NULL);
  CHECK_TRUE(strstr(r.out, "NVML") != NULL);  /* says it is absent */

  /* Ordinal and UUID select the same device. */
  const char *by_uuid[] = {server_bin(), "--list-devices", "--backend",
                           "cuda", "--cuda-lib", libcuda(), "--devices",
                           uuid, NULL};
  gpt_run(&r, by_uuid, env, 60);
  CHECK_EQ_I(r.status, 0);
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) CHECK_STR_EQ(w[n - 1], "yes");

  /* Devices the driver does not show: a startup error, exit 1. */
  const char *by_ord[] = {server_bin(), "--list-devices", "--backend", "cuda",
                          "--cuda-lib", libcuda(), "--devices", "1", NULL};
  gpt_run(&r, by_ord, env, 60);
  CHECK_EQ_I(r.status, 1);
  CHECK_TRUE(strstr(r.out, "no device 1 (the driver shows 1)") != NULL);
  const char *by_other[] = {server_bin(), "--list-devices", "--backend",
                            "cuda", "--cuda-lib", libcuda(), "--devices",
                            other, NULL};
  gpt_run(&r, by_other, env, 60);
  CHECK_EQ_I(r.status, 1);
  CHECK_TRUE(strstr(r.out, other) != NULL);

  /* A MIG UUID without NVML: offered as given, with a warning. */
  const char *by_mig[] = {server_bin(), "--list-devices", "--backend", "cuda",
                          "--cuda-lib", libcuda(), "--devices", mig, NULL};
  gpt_run(&r, by_mig, env, 60);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "warn: --devices: MIG devices are offered "
                    "unchecked") != NULL);
  n = row(r.out, mig, w);
  if (CHECK_GE_I(n, 8)) {
    CHECK_STR_EQ(w[0], "-");
    CHECK_STR_EQ(w[n - 1], "yes");
  }
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) CHECK_STR_EQ(w[n - 1], "no");

  /* A driver library that is not there: exit 1, saying so. */
  const char *nolib[] = {server_bin(), "--list-devices", "--backend", "cuda",
                         "--cuda-lib", "/nonexistent/libcuda.so.1", NULL};
  gpt_run(&r, nolib, env, 60);
  CHECK_EQ_I(r.status, 1);
  CHECK_TRUE(strstr(r.out, "cannot load the driver library") != NULL);

  /* A server that cannot reach the devices' server: the probe's cuInit
   * fails, and so does start-up. */
  const char *noserver[] = {"LD_LIBRARY_PATH", "GPUPOOL_SERVER=127.0.0.1:1",
                            NULL};
  gpt_run(&r, a, noserver, 60);
  CHECK_EQ_I(r.status, 1);
  CHECK_TRUE(strstr(r.out, "cuInit") != NULL);
  (void)argc;
  (void)argv;
}

/* A 12.2 driver (the stand-in of tests/fakes), which refuses any
 * cuGetProcAddress version above its own: the probe asks for each function
 * at its typedef's version, so the device is listed. */
static void test_devices_probe_old_driver(int argc, char **argv) {
  const char *env[] = {"LD_LIBRARY_PATH", NULL};
  const char *uuid = "GPU-12021202-1202-1202-1202-120212021202";
  struct gpt_run r;
  char w[24][64];
  int n;

  const char *a[] = {server_bin(), "--list-devices", "--backend", "cuda",
                     "--cuda-lib", need_env("GPUPOOL_TEST_FAKE_CUDA122"),
                     NULL};
  gpt_run(&r, a, env, 60);
  CHECK_EQ_I(r.status, 0);
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) {
    CHECK_STR_EQ(w[0], "0");
    CHECK_STR_EQ(w[n - 1], "yes");
    CHECK_STR_EQ(w[n - 6], "8192");
  }
  CHECK_TRUE(strstr(r.out, "Fake 12.2 GPU") != NULL);

  /* A probe that lists its devices, then hangs on its way out: killed at
   * the probe's deadline (30 s), and start-up goes on. */
  const char *hang[] = {"LD_LIBRARY_PATH", "GP_FAKE_CUDA_HANG_AT_EXIT=1",
                        NULL};
  double t0 = gpt_now();
  gpt_run(&r, a, hang, 50);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(gpt_now() - t0 < 45);
  CHECK_TRUE(strstr(r.out, "did not exit within 30 s") != NULL);
  n = row(r.out, uuid, w);
  CHECK_GE_I(n, 11);
  (void)argc;
  (void)argv;
}

/* ---- NVML (the stand-in of tests/fakes) -------------------------------------------- */

static void test_devices_nvml(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char uuid[48], path[4200], uuid0[128];
  emu_uuid(uuid);
  snprintf(path, sizeof path, "LD_LIBRARY_PATH=%s",
           need_env("GPUPOOL_TEST_FAKE_NVML_DIR"));
  /* The stand-in's GPU 0 is the emulated device, so its record merges
   * with the probe's by UUID. */
  snprintf(uuid0, sizeof uuid0, "GP_FAKE_NVML_UUID0=%s", uuid);
  const char *env[] = {path, uuid0, NULL};
  struct gpt_run r;
  char w[24][64];
  int n;

  const char *a[] = {server_bin(), "--list-devices", "--backend", "cuda",
                     "--cuda-lib", libcuda(), NULL};
  gpt_run(&r, a, env, 60);
  CHECK_EQ_I(r.status, 0);
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 12)) {
    CHECK_STR_EQ(w[0], "0");
    CHECK_STR_EQ(w[n - 1], "yes");
    CHECK_STR_EQ(w[n - 2], "-");
    CHECK_STR_EQ(w[n - 3], "37%");       /* NVML's utilisation */
    CHECK_STR_EQ(w[n - 5], "1234");      /* NVML's memory used */
    CHECK_STR_EQ(w[n - 7], "1024");      /* the driver's total stands */
  }
  /* The driver's name stands too. */
  CHECK_TRUE(strstr(r.out, "gpupool emulated device") != NULL);
  CHECK_TRUE(strstr(r.out, "Fake GPU Alpha") == NULL);
  n = row(r.out, "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", w);
  if (CHECK_GE_I(n, 12)) {
    CHECK_STR_EQ(w[0], "-");             /* not visible to CUDA */
    CHECK_STR_EQ(w[n - 1], "no");
    CHECK_STR_EQ(w[n - 2], "enabled");   /* MIG mode */
    CHECK_STR_EQ(w[n - 3], "5%");
    CHECK_STR_EQ(w[n - 5], "2048");
    CHECK_STR_EQ(w[n - 7], "81920");
  }
  n = row(r.out, "MIG-00000000-1111-2222-3333-444444444444", w);
  if (CHECK_GE_I(n, 12)) {
    CHECK_STR_EQ(w[n - 1], "no");
    CHECK_STR_EQ(w[n - 2], "1g.10gb");
    CHECK_STR_EQ(w[n - 3], "-");         /* MIG: no utilisation */
    CHECK_STR_EQ(w[n - 5], "12");
    CHECK_STR_EQ(w[n - 7], "9984");
  }
  n = row(r.out, "MIG-99999999-8888-7777-6666-555555555555", w);
  if (CHECK_GE_I(n, 12)) CHECK_STR_EQ(w[n - 2], "3g.40gb");
  /* The MIG slot the stand-in leaves empty is not listed: header and
   * four devices. */
  int lines = 0;
  for (const char *p = r.out; *p; p++) lines += *p == '\n';
  CHECK_EQ_I(lines, 5);

  /* A MIG device NVML lists is accepted (no warning), one it does not
   * list is a startup error. */
  const char *mig_ok[] = {server_bin(), "--list-devices", "--backend", "cuda",
                          "--cuda-lib", libcuda(), "--devices",
                          "MIG-99999999-8888-7777-6666-555555555555,0", NULL};
  gpt_run(&r, mig_ok, env, 60);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "unchecked") == NULL);
  n = row(r.out, "MIG-99999999-8888-7777-6666-555555555555", w);
  if (CHECK_GE_I(n, 12)) CHECK_STR_EQ(w[n - 1], "yes");
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 12)) CHECK_STR_EQ(w[n - 1], "yes");
  const char *mig_bad[] = {server_bin(), "--list-devices", "--backend",
                           "cuda", "--cuda-lib", libcuda(), "--devices",
                           "MIG-99999999-8888-7777-6666-555555555554", NULL};
  gpt_run(&r, mig_bad, env, 60);
  CHECK_EQ_I(r.status, 1);
  CHECK_TRUE(strstr(r.out, "NVML lists no MIG device "
                    "MIG-99999999-8888-7777-6666-555555555554") != NULL);
  /* A GPU NVML knows but the driver does not show cannot be offered. */
  const char *hidden[] = {server_bin(), "--list-devices", "--backend", "cuda",
                          "--cuda-lib", libcuda(), "--devices",
                          "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", NULL};
  gpt_run(&r, hidden, env, 60);
  CHECK_EQ_I(r.status, 1);

  /* Without the stand-in, the same fields are absent, not 0. */
  const char *none[] = {"LD_LIBRARY_PATH", NULL};
  gpt_run(&r, a, none, 60);
  CHECK_EQ_I(r.status, 0);
  n = row(r.out, uuid, w);
  if (CHECK_GE_I(n, 11)) {
    CHECK_STR_EQ(w[n - 3], "-");
    CHECK_STR_EQ(w[n - 4], "-");
  }
  CHECK_TRUE(strstr(r.out, "Fake GPU") == NULL);
  (void)argc;
  (void)argv;
}

/* ---- CUDA_VISIBLE_DEVICES in the client ---------------------------------------------- */

/* cuInit, then "init RESULT COUNT UUID" (UUID "-" when there is no
 * device); with a device, a context and an allocation on it must work. */
static void child_visible(int argc, char **argv) {
  CUresult r = cuInit(0);
  int count = -1;
  char uuid[48] = "-";
  if (r == CUDA_SUCCESS) {
    CHECK_OK(cuDeviceGetCount(&count));
    CUdevice dev;
    CUuuid u;
    if (count > 0 && CHECK_OK(cuDeviceGet(&dev, 0)) &&
        CHECK_OK(cuDeviceGetUuid(&u, dev))) {
      const unsigned char *b = (const unsigned char *)u.bytes;
      snprintf(uuid, sizeof uuid,
               "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
               "%02x%02x%02x%02x%02x%02x",
               b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
               b[10], b[11], b[12], b[13], b[14], b[15]);
      CUcontext ctx;
      CUdeviceptr d;
      CHECK_OK(cuCtxCreate(&ctx, NULL, 0, dev));
      CHECK_OK(cuMemAlloc(&d, 4096));
      CHECK_OK(cuMemFree(d));
      CHECK_OK(cuCtxDestroy(ctx));
      /* Ordinal 1 does not exist in a one-device list. */
      CHECK_CU(cuDeviceGet(&dev, count), CUDA_ERROR_INVALID_DEVICE);
    }
  } else {
    CHECK_CU(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
  }
  gpt_child_say("init %s %d %s", gpt_cu_name(r), r == CUDA_SUCCESS ? count : 0,
                uuid);
  (void)argc;
  (void)argv;
}

/* Runs child_visible with CUDA_VISIBLE_DEVICES |spec| (NULL: unset) and
 * checks its cuInit result, device count and the device's UUID. */
static void visible_case(const char *spec, const char *result, int count,
                         const char *uuid) {
  struct gpt_child c;
  char line[256], want[256];
  if (spec) setenv("CUDA_VISIBLE_DEVICES", spec, 1);
  else unsetenv("CUDA_VISIBLE_DEVICES");
  printf("CUDA_VISIBLE_DEVICES=%s%s%s\n", spec ? "'" : "(unset)",
         spec ? spec : "", spec ? "'" : "");
  int r = gpt_spawn(&c, "child_visible", NULL);
  unsetenv("CUDA_VISIBLE_DEVICES");
  if (!CHECK_EQ_I(r, 0)) return;
  snprintf(want, sizeof want, "init %s %d %s", result, count,
           count ? uuid : "-");
  if (CHECK_GE_I(gpt_child_recv(&c, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, want);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
}

static void test_devices_visible(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char uuid[48], upper[48], prefix[16], wrong[48];
  emu_uuid(uuid);
  /* The UUID string this process built from cuDeviceGetUuid is the one
   * --list-devices prints: it round-trips. */
  struct gpt_run rr;
  const char *a[] = {server_bin(), "--list-devices", NULL};
  gpt_run(&rr, a, NULL, 30);
  CHECK_TRUE(strstr(rr.out, uuid) != NULL);

  for (int i = 0; uuid[i]; i++)
    upper[i + 1] = 0, upper[i] = (char)(i >= 4 && uuid[i] >= 'a' &&
                                        uuid[i] <= 'f' ? uuid[i] - 32
                                                       : uuid[i]);
  snprintf(prefix, sizeof prefix, "%.9s", uuid);  /* GPU- and 5 digits */
  snprintf(wrong, sizeof wrong, "GPU-ffffffff-ffff-ffff-ffff-ffffffffffff");
  if (strcmp(uuid, wrong) == 0) wrong[5] = 'e';

  visible_case(NULL, "CUDA_SUCCESS", 1, uuid);
  visible_case("0", "CUDA_SUCCESS", 1, uuid);
  visible_case("1", "CUDA_ERROR_NO_DEVICE", 0, NULL);
  visible_case(uuid, "CUDA_SUCCESS", 1, uuid);
  visible_case(upper, "CUDA_SUCCESS", 1, uuid);
  visible_case(prefix, "CUDA_SUCCESS", 1, uuid);
  visible_case(wrong, "CUDA_ERROR_NO_DEVICE", 0, NULL);
  visible_case("GPU-ffff", strncmp(uuid, "GPU-ffff", 8) == 0
                               ? "CUDA_SUCCESS" : "CUDA_ERROR_NO_DEVICE",
               strncmp(uuid, "GPU-ffff", 8) == 0, uuid);
  visible_case("0,7", "CUDA_SUCCESS", 1, uuid);
  visible_case("7,0", "CUDA_ERROR_NO_DEVICE", 0, NULL);
  visible_case("", "CUDA_ERROR_NO_DEVICE", 0, NULL);
  visible_case("-1", "CUDA_ERROR_NO_DEVICE", 0, NULL);
  visible_case("0,0", "CUDA_ERROR_NO_DEVICE", 0, NULL);
  (void)argc;
  (void)argv;
}

/* ---- A session's device (needs the cuda backend) ------------------------------------ */

/* Holds a session open: a context and an allocation, then "ready", then
 * waits for a line. */
static void child_hold(int argc, char **argv) {
  char line[64];
  CUdevice dev;
  int n = 0;
  gpt_init_context(&dev);
  CHECK_OK(cuDeviceGetCount(&n));
  CUdeviceptr d;
  REQUIRE_OK(cuMemAlloc(&d, 1 << 20));
  gpt_child_say("ready %d", n);
  gpt_child_hear(line, sizeof line, 30000);
  CHECK_OK(cuMemFree(d));
  (void)argc;
  (void)argv;
}

/* The value of |name| in process |pid|'s initial environment, or "". */
static void env_of(pid_t pid, const char *name, char *out, size_t len) {
  char path[64], buf[65536];
  snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  size_t nl = strlen(name);
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
    if (strncmp(buf + i, name, nl) == 0 && buf[i + nl] == '=')
      snprintf(out, len, "%s", buf + i + nl + 1);
}

/* Starts a relay: the server binary with --backend cuda --cuda-lib
 * <gpupool's libcuda.so.1> and GPUPOOL_SERVER=|behind|, dying with this
 * process. Returns its pid and sets |*port|, or -1. */
static pid_t start_relay(const char *behind, int *port) {
  char dir[256], port_file[300];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/gpupool-dev-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(port_file, sizeof port_file, "%s/port", dir);
  /* TLS with the test certificates, as gpt_server_start() does; its
   * workers verify |behind| with GPUPOOL_TLS_CA (inherited). */
  char cert[512], key[512];
  snprintf(cert, sizeof cert, "%s/server.pem", need_env("GPT_CERTS"));
  snprintf(key, sizeof key, "%s/server.key", need_env("GPT_CERTS"));
  const char *argv[] = {server_bin(), "--listen", "127.0.0.1:0", "--port-file",
                        port_file, "--backend", "cuda", "--cuda-lib",
                        libcuda(), "--tls-cert", cert, "--tls-key", key, NULL};
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    setenv("GPUPOOL_SERVER", behind, 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  *port = 0;
  for (double end = gpt_now() + 20; gpt_now() < end; gpt_sleep_ms(10)) {
    char buf[32] = "";
    FILE *f = fopen(port_file, "r");
    if (f == NULL) continue;
    bool got = fgets(buf, sizeof buf, f) != NULL && strchr(buf, '\n');
    fclose(f);
    if (got) {
      *port = atoi(buf);
      break;
    }
  }
  unlink(port_file);
  rmdir(dir);
  if (*port <= 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

/* The live children of |pid| (its workers). */
static int children(pid_t pid, pid_t *out, int max) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
  FILE *f = fopen(path, "r");
  int n = 0, v;
  if (f == NULL) return 0;
  while (n < max && fscanf(f, "%d", &v) == 1) out[n++] = v;
  fclose(f);
  return n;
}

/* A relay (--backend cuda onto gpupool's own library, GPUPOOL_SERVER an
 * emu server) gives each session's worker CUDA_VISIBLE_DEVICES naming the
 * device it chose; the sessions work through it. */
static void test_devices_session_device(int argc, char **argv) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char uuid[48], emu_addr[64];
  emu_uuid(uuid);
  snprintf(emu_addr, sizeof emu_addr, "%s", server.addr);
  int port;
  pid_t relay = start_relay(emu_addr, &port);
  REQUIRE_TRUE(relay > 0);
  char relay_addr[64];
  snprintf(relay_addr, sizeof relay_addr, "127.0.0.1:%d", port);
  setenv("GPUPOOL_SERVER", relay_addr, 1);

  struct gpt_child a, b;
  char line[128], cvd[128];
  bool ok = CHECK_TRUE(gpt_spawn(&a, "child_hold", NULL) == 0) &&
            CHECK_TRUE(gpt_spawn(&b, "child_hold", NULL) == 0);
  if (ok && CHECK_GE_I(gpt_child_recv(&a, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, "ready 1");
  if (ok && CHECK_GE_I(gpt_child_recv(&b, line, sizeof line, 30000), 0))
    CHECK_STR_EQ(line, "ready 1");
  pid_t pids[8];
  int n = children(relay, pids, 8);
  CHECK_EQ_I(n, 2);
  for (int i = 0; i < n; i++) {
    env_of(pids[i], "CUDA_VISIBLE_DEVICES", cvd, sizeof cvd);
    printf("relay worker %d: CUDA_VISIBLE_DEVICES=%s\n", (int)pids[i], cvd);
    CHECK_STR_EQ(cvd, uuid);
  }
  /* The emu server's workers (this process's session, and the relay
   * workers' sessions there) get nothing. */
  n = children(server.pid, pids, 8);
  CHECK_EQ_I(n, 3);
  for (int i = 0; i < n; i++) {
    env_of(pids[i], "CUDA_VISIBLE_DEVICES", cvd, sizeof cvd);
    CHECK_STR_EQ(cvd, "");
  }
  if (ok) {
    gpt_child_send(&a, "done");
    gpt_child_send(&b, "done");
    CHECK_EQ_I(gpt_child_wait(&a, 30000), 0);
    CHECK_EQ_I(gpt_child_wait(&b, 30000), 0);
  }
  int st = 0;
  kill(relay, SIGTERM);
  waitpid(relay, &st, 0);
  CHECK_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"server_flags", test_devices_server_flags, 60},
      {"list_emu", test_devices_list_emu, 60},
      {"probe", test_devices_probe, 120},
      {"probe_old_driver", test_devices_probe_old_driver, 90},
      {"nvml", test_devices_nvml, 120},
      {"visible", test_devices_visible, 120},
      {"child_visible", child_visible, 60},
      {"session_device", test_devices_session_device, 120},
      {"child_hold", child_hold, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
