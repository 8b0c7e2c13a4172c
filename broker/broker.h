/* gpupool-broker's internals (docs/broker.md): the config file (config.c)
 * and the daemon (daemon.c). The pool's state and placement are in
 * placement.h.
 */
#ifndef GP_BROKER_BROKER_H
#define GP_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grant.h"
#include "placement.h"

#define BRK_DEFAULT_HOST "127.0.0.1"
#define BRK_DEFAULT_PORT 7470

/* Exit statuses. */
#define BRK_EXIT_OK 0
#define BRK_EXIT_FAILURE 1
#define BRK_EXIT_USAGE 2 /* a bad flag or config file */

#define BRK_MAX_TENANTS 4096u
#define BRK_REGISTER_WINDOW_S 300 /* a registration's timestamp, +-   */

/* A tenant as configured: its quota and the hash of its token. */
struct brk_tenant_cfg {
  struct brk_tenant t;   /* name and quotas */
  char token_sha256[65]; /* lower-case hex */
};

struct brk_config {
  char *path;
  /* [broker] */
  char *grant_key_file;
  uint8_t key[GP_KEY_MAX_LEN];
  size_t keylen;
  uint32_t heartbeat_ms;   /* default 1000 */
  uint32_t down_after_ms;  /* default 5000 */
  uint32_t grant_ttl_s;    /* default 60 */
  uint64_t default_memory; /* default 1 GiB */
  /* [tenant.NAME] */
  struct brk_tenant_cfg *tenants;
  uint32_t ntenants;
  /* [admin] */
  bool has_admin;
  char admin_sha256[65];
};

/* Reads the config file |path| (docs/broker.md, "The config file") and the
 * grant key it names. Returns 0, or GP_EINVAL with a one-line reason in
 * |why| (|whylen| bytes) naming the file and, where there is one, the line
 * ("broker.conf:7: max_memory: 'lots' is not a size"), or GP_ENOMEM.
 * |cfg| is freed with brk_config_free() either way. */
int brk_config_load(struct brk_config *cfg, const char *path, char *why,
                    size_t whylen);

/* Releases what |cfg| holds, and wipes the key. */
void brk_config_free(struct brk_config *cfg);


#define BRK_TOKEN_ADMIN (-2)
#define BRK_TOKEN_UNKNOWN (-1)

/* Which tenant |len| bytes of |token| belong to: its index in
 * cfg->tenants, BRK_TOKEN_ADMIN, or BRK_TOKEN_UNKNOWN. The token's SHA-256
 * is compared with every hash, each in constant time, whichever matches. */
int brk_config_token(const struct brk_config *cfg, const uint8_t *token,
                     size_t len);

#define BRK_HANDSHAKE_MS_DEFAULT 10000u
#define BRK_HANDSHAKE_MS_MIN 100u
#define BRK_HANDSHAKE_MS_MAX 600000u

/* TLS on the broker's connections (docs/security.md). */
struct brk_tls {
  const char *cert, *key, *ca; /* PEM files; NULL with |insecure| */
  bool insecure;               /* plain TCP */
  unsigned handshake_ms;       /* --handshake-timeout */
};

/* Runs the broker on |host|:|port| until SIGINT or SIGTERM; writes the
 * bound port to |port_file| (may be NULL). SIGHUP reloads the TLS files.
 * Returns an exit status (BRK_EXIT_USAGE when the TLS files are refused). */
int brk_daemon_run(const struct brk_config *cfg, const struct brk_tls *tls,
                   const char *host, int port, const char *port_file);

#endif
