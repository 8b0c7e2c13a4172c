/* The device probe: the supervisor never initialises CUDA (a driver
 * initialised in the parent of every worker would be shared state that
 * fork and a hung GPU can break), so it runs this binary once more, with
 * --probe-devices, to ask the driver which devices there are. The probe
 * writes one line per device on its fd 3 and exits; the supervisor reads
 * the lines strictly (devices.c) with a deadline.
 *
 * With --backend cuda the probe opens the driver library (--cuda-lib) as
 * the cuda backend does (backend/cuda/driver.c: dlopen, cuGetProcAddress
 * at each entry point's typedef version, cuInit); any other backend is
 * asked through its operations table.
 *
 * Lines (each at most GP_PROBE_LINE_MAX bytes):
 *   device ORDINAL GPU-UUID TOTAL_BYTES NAME
 *   cc ORDINAL MAJOR MINOR          optional, after its device's line: the
 *                                   compute capability
 *   end COUNT                       the list is complete
 *   error TEXT                      the probe failed (and exits non-zero)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#include "backend/cuda/cuda_be.h"
#include "devices.h"
#include "gpupool/errors.h"
#include "server.h"

/* How long the supervisor waits for the whole list. A driver that hangs in
 * cuInit (or a relay whose server does not answer) must not hang start-up
 * for ever. */
#define GP_PROBE_TIMEOUT_MS 30000

extern char **environ;

/* ---- The probe role ---------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int say(const char *fmt, ...) {
  char line[GP_PROBE_LINE_MAX];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  if ((size_t)n > sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  return write(GP_WORKER_FD, line, (size_t)n) == n ? 0 : -1;
}

/* Writes a device's line; the name's unprintable characters become '?'
 * and it is cut to fit, so the supervisor's strict reading accepts it. */
static int say_device(int ordinal, const uint8_t uuid[16], uint64_t total,
                      const char *name) {
  char u[GP_UUID_STR_LEN], clean[GP_DEVNAME_MAX];
  size_t i;

  gp__uuid_format("GPU-", uuid, u);
  for (i = 0; name[i] && i < sizeof(clean) - 1; i++)
    clean[i] = (unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e
                   ? '?' : name[i];
  clean[i] = '\0';
  if (i == 0)
    snprintf(clean, sizeof(clean), "?");
  return say("device %d %s %llu %s", ordinal, u, (unsigned long long)total,
             clean);
}

/* The device's compute capability as a "cc" line, when its attributes
 * name it. */
static int say_cc(int ordinal, const struct gp_device_desc *d) {
  int major = 0, minor = -1, i;

  for (i = 0; i < d->nattrs && i < GP_DEVICE_MAX_ATTRS; i++) {
    if (d->attrs[i].attr == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
      major = d->attrs[i].value;
    if (d->attrs[i].attr == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
      minor = d->attrs[i].value;
  }
  if (major < 1 || major > 99 || minor < 0 || minor > 99)
    return 0;
  return say("cc %d %d %d", ordinal, major, minor);
}

/* The driver's entry points come from the cuda backend's own table
 * (backend/cuda/driver.c): each requested at its PFN typedef's version,
 * which every driver at least that new accepts (a version above the
 * driver's own is refused with CUDA_ERROR_INVALID_VALUE), through
 * cuGetProcAddress_v2 or, from an 11.x driver, cuGetProcAddress. So the
 * probe accepts exactly the drivers a worker can open. */
static int probe_driver(const char *path) {
  struct cub_driver d;
  char why[512];
  int n = 0, i;
  CUresult r;

  r = (CUresult)cub_driver_open(&d, path, why, sizeof(why));
  if (r == CUDA_ERROR_NOT_FOUND) {
    say("error cannot load the driver library: %s", why);
    return GP_EXIT_BACKEND;
  }
  if (r != CUDA_SUCCESS) {
    say("error %s", why);
    return GP_EXIT_BACKEND;
  }
  /* cuDeviceGetUuid is optional for a session, not for the inventory. */
  if (!d.cuDeviceGetUuid) {
    say("error the driver (version %d) does not provide cuDeviceGetUuid "
        "at version 11040", d.version);
    return GP_EXIT_BACKEND;
  }
  r = d.cuDeviceGetCount(&n);
  if (r != CUDA_SUCCESS) {
    say("error cuDeviceGetCount returned CUresult %d", (int)r);
    return GP_EXIT_BACKEND;
  }
  if (n < 0 || n > GP_DEVICES_MAX) {
    say("error the driver shows %d devices (at most %d)", n, GP_DEVICES_MAX);
    return GP_EXIT_BACKEND;
  }
  for (i = 0; i < n; i++) {
    CUdevice dev;
    CUuuid u;
    char nm[GP_DEVNAME_MAX];
    size_t bytes = 0;
    /* cuDeviceGetUuid_v2 (11040): a MIG device's own UUID. */
    if ((r = d.cuDeviceGet(&dev, i)) != CUDA_SUCCESS ||
        (r = d.cuDeviceGetName(nm, sizeof(nm), dev)) != CUDA_SUCCESS ||
        (r = d.cuDeviceGetUuid(&u, dev)) != CUDA_SUCCESS ||
        (r = d.cuDeviceTotalMem(&bytes, dev)) != CUDA_SUCCESS) {
      say("error device %d: CUresult %d", i, (int)r);
      return GP_EXIT_BACKEND;
    }
    if (say_device(i, (const uint8_t *)u.bytes, bytes, nm) != 0)
      return GP_EXIT_CONN_LOST;
    /* The compute capability is extra: a driver that cannot say leaves
     * it unknown. */
    {
      int major = 0, minor = 0;
      if (d.cuDeviceGetAttribute(&major,
                                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                 dev) == CUDA_SUCCESS &&
          d.cuDeviceGetAttribute(&minor,
                                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                 dev) == CUDA_SUCCESS &&
          major >= 1 && major <= 99 && minor >= 0 && minor <= 99 &&
          say("cc %d %d %d", i, major, minor) != 0)
        return GP_EXIT_CONN_LOST;
    }
  }
  /* The library stays loaded: unloading a driver at exit gains nothing. */
  return say("end %d", n) == 0 ? GP_EXIT_OK : GP_EXIT_CONN_LOST;
}

static int probe_backend(const struct gp_server_config *cfg) {
  const struct gp_backend_ops *ops = cfg->backend;
  struct gp_backend *b = NULL;
  struct gp_device_desc *desc;
  int n = 0, i, r, status = GP_EXIT_OK;

  desc = malloc(sizeof(*desc));
  if (!desc) {
    say("error out of memory");
    return GP_EXIT_BACKEND;
  }
  r = ops->open(&cfg->bcfg, &b);
  if (r == CUDA_SUCCESS)
    r = ops->device_count(b, &n);
  if (r != CUDA_SUCCESS || n < 0 || n > GP_DEVICES_MAX) {
    say("error the %s backend does not open (CUresult %d)", ops->name, r);
    status = GP_EXIT_BACKEND;
    goto out;
  }
  for (i = 0; i < n; i++) {
    if ((r = ops->device_describe(b, i, desc)) != CUDA_SUCCESS) {
      say("error device %d: CUresult %d", i, r);
      status = GP_EXIT_BACKEND;
      goto out;
    }
    if (say_device(i, desc->uuid, desc->total_mem, desc->name) != 0 ||
        say_cc(i, desc) != 0) {
      status = GP_EXIT_CONN_LOST;
      goto out;
    }
  }
  if (say("end %d", n) != 0)
    status = GP_EXIT_CONN_LOST;
out:
  if (b)
    ops->close(b);
  free(desc);
  return status;
}

int gp__probe_run(const struct gp_server_config *cfg) {
  int fl = fcntl(GP_WORKER_FD, F_GETFL);

  signal(SIGPIPE, SIG_IGN);
  if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) {
    gp__error("--probe-devices: fd %d is not open for writing",
              GP_WORKER_FD);
    return GP_EXIT_USAGE;
  }
  if (strcmp(cfg->backend_name, "cuda") == 0)
    return probe_driver(cfg->bcfg.cuda_lib);
  if (!cfg->backend) {
    say("error unknown backend '%s'", cfg->backend_name);
    return GP_EXIT_USAGE;
  }
  return probe_backend(cfg);
}

/* ---- The supervisor's side ----------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Handles one complete line. Returns 1 when it was "end", 0 to go on, or
 * an error with |why| set. */
static int take_line(const char *line, struct gp_inventory *inv, int *ndev,
                     char *why, size_t whylen) {
  struct gp_device_rec rec;
  char *stop;
  long v;
  int r;

  if (strncmp(line, "device ", 7) == 0) {
    if (gp__probe_parse_line(line, &rec) != 0) {
      snprintf(why, whylen, "the probe wrote a malformed line: '%.80s'",
               line);
      return GP_EPROTO;
    }
    if (rec.ordinal != *ndev) {
      snprintf(why, whylen, "the probe listed device %d in place %d",
               rec.ordinal, *ndev);
      return GP_EPROTO;
    }
    r = gp__inventory_add_probe(inv, &rec);
    if (r != 0) {
      snprintf(why, whylen, "the probe listed more than %d devices",
               GP_DEVICES_MAX);
      return GP_EPROTO;
    }
    (*ndev)++;
    return 0;
  }
  if (strncmp(line, "cc ", 3) == 0) {
    int ord, major, minor;
    /* Optional, right after its device's line. */
    if (gp__probe_parse_cc(line, &ord, &major, &minor) != 0 ||
        *ndev == 0 || ord != *ndev - 1 || inv->n == 0 ||
        inv->d[inv->n - 1].ordinal != ord || inv->d[inv->n - 1].cc_major) {
      snprintf(why, whylen, "the probe wrote a malformed line: '%.80s'",
               line);
      return GP_EPROTO;
    }
    inv->d[inv->n - 1].cc_major = major;
    inv->d[inv->n - 1].cc_minor = minor;
    return 0;
  }
  if (strncmp(line, "end ", 4) == 0) {
    errno = 0;
    v = strtol(line + 4, &stop, 10);
    if (errno != 0 || *stop != '\0' || v != *ndev || line[4] < '0' ||
        line[4] > '9') {
      snprintf(why, whylen, "the probe ended its list wrongly: '%.80s'",
               line);
      return GP_EPROTO;
    }
    return 1;
  }
  if (strncmp(line, "error ", 6) == 0) {
    snprintf(why, whylen, "%.200s", line + 6);
    return GP_EIO;
  }
  snprintf(why, whylen, "the probe wrote a malformed line: '%.80s'", line);
  return GP_EPROTO;
}

/* Reads the probe's lines from |fd| until "end", an error, EOF or
 * |*deadline_at| (now_ms() time). */
static int read_lines(int fd, pid_t pid, struct gp_inventory *inv, char *why,
                      size_t whylen, const int64_t *deadline_at) {
  char buf[GP_PROBE_LINE_MAX * 2];
  size_t have = 0;
  int64_t deadline = *deadline_at;
  int ndev = 0;

  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    int64_t left = deadline - now_ms();
    char *nl;
    ssize_t got;
    int r;

    /* Whole lines first. */
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      *nl = '\0';
      r = take_line(buf, inv, &ndev, why, whylen);
      if (r != 0)
        return r == 1 ? 0 : r;
      have -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, have);
    }
    if (have >= GP_PROBE_LINE_MAX) {
      snprintf(why, whylen, "the probe wrote a line over %d bytes",
               GP_PROBE_LINE_MAX);
      return GP_EPROTO;
    }
    if (left <= 0) {
      snprintf(why, whylen, "the probe (pid %d) did not finish within %d s",
               (int)pid, GP_PROBE_TIMEOUT_MS / 1000);
      return GP_ETIMEDOUT;
    }
    r = poll(&pf, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    got = read(fd, buf + have, sizeof(buf) - have);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      snprintf(why, whylen, "the probe exited without listing the devices "
               "(see its messages above)");
      return GP_EIO;
    }
    have += (size_t)got;
  }
}

int gp__probe_devices(const struct gp_server_config *cfg,
                      struct gp_inventory *inv, char *why, size_t whylen) {
  posix_spawn_file_actions_t fa;
  char mem[32];
  char *argv[16];
  int p[2], i = 0, r, st;
  int64_t deadline;
  pid_t pid;

  snprintf(mem, sizeof(mem), "%llu",
           (unsigned long long)cfg->bcfg.emu_memory);
  argv[i++] = "gpupool-server";
  argv[i++] = "--probe-devices";
  argv[i++] = "--backend";
  argv[i++] = (char *)cfg->backend_name;
  argv[i++] = "--emu-memory";
  argv[i++] = mem;
  argv[i++] = "--cuda-lib";
  argv[i++] = (char *)cfg->bcfg.cuda_lib;
  argv[i++] = "--log-level";
  argv[i++] = (char *)gp__log_level_name(cfg->log_level);
  if (cfg->name) {
    argv[i++] = "--name";
    argv[i++] = (char *)cfg->name;
  }
  argv[i] = NULL;

  if (pipe2(p, O_CLOEXEC) != 0) {
    snprintf(why, whylen, "pipe: %s", strerror(errno));
    return GP_EIO;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  /* dup2 clears close-on-exec on the copy: the probe keeps fd 3 only. */
  posix_spawn_file_actions_adddup2(&fa, p[1], GP_WORKER_FD);
  deadline = now_ms() + GP_PROBE_TIMEOUT_MS;
  r = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (r != 0) {
    close(p[0]);
    snprintf(why, whylen, "cannot start the probe: %s", strerror(r));
    return GP_EIO;
  }
  r = read_lines(p[0], pid, inv, why, whylen, &deadline);
  close(p[0]);
  /* A probe that failed has nothing more to say; one that listed its
   * devices must still exit by the deadline (a driver can hang in its
   * exit handlers). */
  if (r != 0)
    kill(pid, SIGKILL);
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR))
      break;
    if (w == 0 && now_ms() >= deadline) {
      gp__warn("the device probe (pid %d) did not exit within %d s of "
               "starting: killed", (int)pid, GP_PROBE_TIMEOUT_MS / 1000);
      kill(pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
      break;
    }
    if (w == 0) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  return r;
}

int gp__inventory_build(const struct gp_server_config *cfg,
                        struct gp_inventory *inv) {
  char why[512];
  bool warn = false;
  int r;

  memset(inv, 0, sizeof(*inv));
  r = gp__probe_devices(cfg, inv, why, sizeof(why));
  if (r != 0) {
    gp__error("cannot list the devices (backend %s): %s", cfg->backend_name,
              why);
    return GP_EXIT_FAILURE;
  }
  /* NVML knows real GPUs only; the emulated device is none of them. */
  if (strcmp(cfg->backend_name, "cuda") == 0) {
    if (gp__nvml_load(inv, why, sizeof(why)) != 0)
      gp__info("NVML: %s: memory use, utilisation and MIG devices are not "
               "shown", why);
  }
  r = gp__inventory_select(inv, &cfg->devsel, why, sizeof(why), &warn);
  if (r != 0) {
    gp__error("%s", why);
    return GP_EXIT_FAILURE;
  }
  if (warn)
    gp__warn("--devices: MIG devices are offered unchecked: NVML "
             "(libnvidia-ml.so.1) is not available to list them");
  return 0;
}
