/* Device selection and the GPU inventory of gpupool-server (devices.c,
 * nvml.c, probe.c). See docs/server.md, "Devices".
 *
 * The supervisor never initialises CUDA. It learns the devices from a
 * probe process (this binary run with --probe-devices, which initialises
 * the driver and writes one line per device on a pipe) and, when NVIDIA's
 * management library is installed, from NVML (which does not initialise
 * CUDA). The two lists are merged by UUID into one inventory; --devices
 * chooses which devices are offered; each session's worker is given the
 * offered device with the fewest live sessions.
 *
 * Nothing here is thread-safe: the supervisor's loop thread (or main(),
 * before it) owns the inventory.
 */
#ifndef GP_SERVER_DEVICES_H
#define GP_SERVER_DEVICES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The most devices an inventory holds (GPUs and MIG devices together), and
 * the most entries --devices may list. */
#define GP_DEVICES_MAX 64

/* "GPU-" or "MIG-", 36 characters of UUID, NUL. */
#define GP_UUID_STR_LEN 41

/* The longest device name kept (NVML's limit is 96 with the NUL). */
#define GP_DEVNAME_MAX 96

/* The longest line a probe may write, newline included. */
#define GP_PROBE_LINE_MAX 256

/* ---- --devices ------------------------------------------------------------- */

enum gp_devsel_kind {
  GP_DEVSEL_ORDINAL,      /* a CUDA ordinal as the probe numbers them */
  GP_DEVSEL_GPU,          /* GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */
  GP_DEVSEL_MIG,          /* MIG-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */
};

struct gp_devsel_entry {
  enum gp_devsel_kind kind;
  int ordinal;            /* GP_DEVSEL_ORDINAL */
  uint8_t uuid[16];       /* GP_DEVSEL_GPU, GP_DEVSEL_MIG */
  char text[GP_UUID_STR_LEN]; /* the entry as written (for messages) */
};

/* --devices, parsed. all: every device the driver shows. */
struct gp_devsel {
  bool all;
  int n;
  struct gp_devsel_entry e[GP_DEVICES_MAX];
};

/* Parses --devices |s|: "all", or a comma-separated list of ordinals
 * (decimal, at most 65535), GPU UUIDs and MIG UUIDs written as nvidia-smi
 * prints them (hex digits in either case). Returns 0, or GP_EINVAL with
 * |why| set to a one-line reason (static storage or |buf|, |buflen|
 * bytes). */
int gp__devsel_parse(const char *s, struct gp_devsel *out, char *buf,
                     size_t buflen, const char **why);

/* ---- UUIDs ------------------------------------------------------------------ */

/* Parses 8-4-4-4-12 hex digits (no prefix) at |s| into |uuid|; exactly 36
 * characters, then |s| must end. Returns 0 or GP_EINVAL. */
int gp__uuid_parse(const char *s, uint8_t uuid[16]);

/* Writes |prefix| ("GPU-" or "MIG-") and |uuid| as 8-4-4-4-12 lowercase hex
 * digits into |out| (GP_UUID_STR_LEN bytes). */
void gp__uuid_format(const char *prefix, const uint8_t uuid[16],
                     char out[GP_UUID_STR_LEN]);

/* ---- The inventory ---------------------------------------------------------- */

/* One device. Fields a source did not give are absent: has_* false,
 * util -1, empty strings; --list-devices prints them as "-". */
struct gp_device_rec {
  int ordinal;            /* CUDA ordinal in the probe's list, -1: not
                           * visible to CUDA (an NVML-only device) */
  bool mig;               /* a MIG device (from NVML) */
  uint8_t uuid[16];
  char uuid_str[GP_UUID_STR_LEN]; /* "GPU-..." or "MIG-..." */
  char name[GP_DEVNAME_MAX];
  bool has_total;
  uint64_t mem_total;     /* bytes */
  bool has_used;
  uint64_t mem_used;      /* bytes (NVML) */
  int util;               /* GPU utilisation in percent (NVML), -1: absent */
  bool mig_enabled;       /* a GPU in MIG mode (NVML) */
  char mig_profile[32];   /* e.g. "1g.5gb" (NVML, MIG devices only) */
  int parent;             /* a MIG device: index of its GPU's record, or
                           * -1 */
  int cc_major, cc_minor; /* compute capability (the probe's "cc" line),
                           * 0.0: unknown */
  bool offered;           /* chosen by --devices */
  unsigned sessions;      /* live sessions on it (supervisor) */
};

struct gp_inventory {
  int n;
  struct gp_device_rec d[GP_DEVICES_MAX];
  int offer[GP_DEVICES_MAX]; /* offered devices' indices, in the order
                           * --devices names them */
  int noffer;
  bool have_nvml;         /* NVML answered */
};

/* Parses one line of the probe's output (without its newline): "device
 * ORDINAL GPU-UUID TOTAL_BYTES NAME". NAME is the rest of the line,
 * printable ASCII, 1 to GP_DEVNAME_MAX - 1 characters. Strict: any other
 * form is GP_EPROTO. Fills |out| (the NVML fields absent). */
int gp__probe_parse_line(const char *line, struct gp_device_rec *out);

/* Parses the probe's optional line after a device's: "cc ORDINAL MAJOR
 * MINOR" (its compute capability; MAJOR 1 to 99, MINOR 0 to 99, decimal
 * without leading zeros). Strict: any other form is GP_EPROTO. */
int gp__probe_parse_cc(const char *line, int *ordinal, int *major,
                       int *minor);

/* Initialises |rec| with every field absent. */
void gp__device_rec_init(struct gp_device_rec *rec);

/* Appends the probe's device |rec| to |inv| (the probe's devices go in
 * first, in ordinal order). Returns 0, GP_EINVAL for a second device with
 * the same ordinal, or GP_ENOMEM when the inventory is full. */
int gp__inventory_add_probe(struct gp_inventory *inv,
                            const struct gp_device_rec *rec);

/* Adds NVML's device |rec|: merged into the record with the same UUID if
 * there is one (the driver's ordinal, name and total memory stand; NVML
 * adds memory used, utilisation, MIG mode and profile, and a MIG device's
 * MIG- label), else appended. |*index| (may be NULL) gets its place.
 * Returns 0 or GP_ENOMEM (full). */
int gp__inventory_add_nvml(struct gp_inventory *inv,
                           const struct gp_device_rec *rec, int *index);

/* Marks the devices |sel| chooses as offered. An ordinal or GPU UUID the
 * probe did not list, or a MIG UUID NVML does not list (when NVML
 * answered), is GP_ENOENT; a device named twice is GP_EINVAL; both with
 * a one-line reason in |why| (|whylen| bytes). A MIG UUID without NVML is
 * appended as given (offered, every other field absent) and |*warn| set.
 * "all" offers every device the probe listed. Offering nothing is
 * GP_ENOENT. */
int gp__inventory_select(struct gp_inventory *inv, const struct gp_devsel *sel,
                         char *why, size_t whylen, bool *warn);

/* The index of the offered device with the fewest live sessions (ties:
 * the first in the inventory), or -1 when none is offered. */
int gp__inventory_pick(const struct gp_inventory *inv);

/* Prints the inventory as --list-devices does: a header and one row per
 * device. */
void gp__inventory_print(const struct gp_inventory *inv, FILE *f);

/* One line describing device |i|, for the start-up log. */
void gp__inventory_describe(const struct gp_inventory *inv, int i, char *out,
                            size_t len);

/* A copy of the NULL-terminated environment |env| with |name| set to
 * |value| (replacing every existing definition of it, added when absent).
 * The caller frees the result with gp__env_free(). Returns NULL when out of
 * memory. */
char **gp__env_with(char *const *env, const char *name, const char *value);
void gp__env_free(char **env);

/* ---- Sources (nvml.c, probe.c) ------------------------------------------------ */

struct gp_server_config;

/* Loads NVIDIA's management library (libnvidia-ml.so.1) and appends every
 * GPU and, for a GPU in MIG mode, every MIG device to |inv|. Returns 0
 * (inv->have_nvml set), or GP_ENOENT when the library is not there or
 * does not initialise (|why| says which; the inventory is left as it
 * was). Never initialises CUDA. */
int gp__nvml_load(struct gp_inventory *inv, char *why, size_t whylen);

/* Supervisor side: runs this binary with --probe-devices (same backend and
 * --cuda-lib), reads its lines and adds the devices to |inv|. Returns 0,
 * or GP_EIO / GP_EPROTO / GP_ETIMEDOUT with |why| set. */
int gp__probe_devices(const struct gp_server_config *cfg,
                      struct gp_inventory *inv, char *why, size_t whylen);

/* The probe role: lists the backend's devices on fd GP_WORKER_FD, one
 * line each, then "end COUNT", or one "error ..." line. Returns the process
 * exit status. */
int gp__probe_run(const struct gp_server_config *cfg);

/* The whole start-up inventory: NVML (when |nvml|), the probe, then
 * --devices. Returns 0 or the process exit status with the reason logged:
 * GP_EXIT_FAILURE (a device not found, the probe failed). */
int gp__inventory_build(const struct gp_server_config *cfg,
                        struct gp_inventory *inv);

#endif
