/* What gpupool-server's parts say to each other about the pool
 * (docs/broker.md, docs/server.md "The pool"): the syntax of --name and
 * --label, and the lines a worker and its supervisor exchange on the
 * worker's report socket (fd GP_WORKER_REPORT_FD).
 *
 * Worker reports. The worker writes, one line each, at most
 * GP_REPORT_LINE_MAX bytes with the newline:
 *
 *   claim SESSION_ID EXPIRES          before admitting a grant: has this
 *                                     session id been used on this server?
 *   admitted SESSION_ID TENANT GPU_UUID LIMIT EXPIRES
 *                                     the session runs under that grant
 *   used BYTES IDLE_MS                the session's allocated bytes and the
 *                                     time since its last request
 *
 * SESSION_ID is 16 lower-case hex digits; EXPIRES, LIMIT, BYTES, IDLE_MS
 * decimal without leading zeros; TENANT 1 to 63 of [A-Za-z0-9._@-]; GPU_UUID
 * "GPU-" or "MIG-" and 36 characters. The supervisor answers a claim with
 * "ok" (the id is now taken until EXPIRES) or "used". A worker is trusted
 * less than the supervisor: anything else it writes is refused by the
 * strict parser below, and the supervisor ignores that worker's reports
 * from then on.
 *
 * Pure functions, thread-safe.
 */
#ifndef GP_SERVER_POOL_H
#define GP_SERVER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices.h"

/* --name: 1 to 63 of [A-Za-z0-9._-]. */
#define GP_POOL_NAME_MAX 63
/* --label KEY=VALUE: KEY 1 to 63 of [A-Za-z0-9._/-], starting with a letter
 * or digit; VALUE 0 to 127 of [A-Za-z0-9._:/@+-]. */
#define GP_LABEL_KEY_MAX 63
#define GP_LABEL_VALUE_MAX 127
/* A tenant's name as reported: 1 to 63 of [A-Za-z0-9._@-]. */
#define GP_TENANT_MAX 63

/* The longest report line, newline included. */
#define GP_REPORT_LINE_MAX 256

/* True when |s| is a valid --name. */
bool gp__pool_name_ok(const char *s);

/* Splits and checks a --label |s|: the key (|key|, GP_LABEL_KEY_MAX + 1
 * bytes) and value (|value|, GP_LABEL_VALUE_MAX + 1 bytes). Returns 0, or
 * GP_EINVAL with a reason in |*why| (static storage). */
int gp__label_parse(const char *s, char *key, char *value, const char **why);

/* Writes into |out| (GP_TENANT_MAX + 1 bytes) |in| with every character
 * outside the tenant syntax replaced by '_', cut to GP_TENANT_MAX; "-" when
 * |in| is empty or NULL. */
void gp__tenant_clean(const char *in, char *out);

enum gp_report_kind {
  GP_REPORT_CLAIM,
  GP_REPORT_ADMITTED,
  GP_REPORT_USED,
};

struct gp_report {
  enum gp_report_kind kind;
  uint64_t session_id;          /* claim, admitted */
  uint64_t expires_unix;        /* claim, admitted */
  char tenant[GP_TENANT_MAX + 1];      /* admitted */
  char gpu_uuid[GP_UUID_STR_LEN];      /* admitted */
  uint64_t limit;               /* admitted */
  uint64_t used;                /* used */
  uint64_t idle_ms;             /* used */
};

/* Parses one report line |line| (without its newline). Returns 0 and fills
 * |out|, or GP_EPROTO for anything that is not exactly one of the forms
 * above. */
int gp__report_parse(const char *line, struct gp_report *out);

#endif
