/* A pool server's connection to the broker (docs/broker.md, docs/server.md
 * "The broker link"): in the supervisor's libuv loop, a client connection
 * that registers the server, sends heartbeats and session ends, and
 * reconnects with backoff whenever anything fails. The server serves its
 * sessions whatever happens to the broker.
 *
 * Everything here runs on the supervisor's loop thread.
 */
#ifndef GP_SERVER_BROKER_LINK_H
#define GP_SERVER_BROKER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "devices.h"
#include "pool.h"

struct gp_server_config;

/* A running session under a grant, as the broker is told of it. */
struct gp_pool_session {
  uint64_t session_id;
  char tenant[GP_TENANT_MAX + 1];
  char gpu_uuid[GP_UUID_STR_LEN];
  uint64_t memory_limit;
  uint64_t memory_used;
  uint64_t expires_unix;
  uint64_t idle_ms;
};

/* Fills |out| with at most |max| running sessions; returns how many. */
typedef size_t (*gp_pool_sessions_fn)(void *arg, struct gp_pool_session *out,
                                      size_t max);

struct gp_broker_link;

/* TLS on the link (docs/security.md): the server's certificate and key
 * are its client certificate, |ca| verifies the broker for the host of
 * --broker; |insecure|: plain TCP. The files are read at start and again
 * at each reconnection (a failure then keeps the last ones read). */
struct gp_broker_link_tls {
  const char *cert, *key, *ca;
  bool insecure;
};

/* Starts the link on |loop| for the server |cfg| (--broker, --name,
 * --label, --grant-key-file) with |tls|, offering the devices of |inv| that are
 * offered, reachable by clients at |address| (HOST:PORT). |sessions| is
 * asked for the running sessions at every registration and heartbeat.
 * |cfg| and |inv| must outlive the link. Returns 0 and |*out|, GP_EINVAL
 * (the key cannot be read; logged) or GP_ENOMEM. */
int gp__broker_link_start(uv_loop_t *loop, const struct gp_server_config *cfg,
                          const struct gp_broker_link_tls *tls,
                          const struct gp_inventory *inv, const char *address,
                          gp_pool_sessions_fn sessions, void *arg,
                          struct gp_broker_link **out);

/* Tells the broker that session |id| has ended (|reason|: "ended", "idle",
 * "crashed"). Dropped when the link is not registered: the next
 * registration lists only the sessions still running. */
void gp__broker_link_session_end(struct gp_broker_link *l, uint64_t id,
                                 const char *reason);

/* Closes the link's handles (after flushing what was queued). The loop
 * then has nothing of the link's left once its callbacks have run; free
 * it with gp__broker_link_free() after uv_run() has returned. */
void gp__broker_link_stop(struct gp_broker_link *l);
void gp__broker_link_free(struct gp_broker_link *l);

#endif
