/* The pool's state and the placement decision (docs/broker.md,
 * "Registration" and "Placement"). No I/O and no clock: every function
 * that depends on time takes it as arguments (|now_ms| on a monotonic
 * clock, |now_unix| in seconds since the epoch), so the daemon, the unit
 * tests and bench/placement.c drive the same code in-process.
 *
 * A pool is not thread-safe: one thread (the broker's event loop) owns it.
 *
 * Memory: servers and their GPUs are allocated at registration; sessions
 * come from a free list that grows in chunks, and the session index is an
 * open-addressing hash table that grows by doubling, so placing and ending
 * sessions allocates nothing once the pool has reached its working size.
 */
#ifndef GP_BROKER_PLACEMENT_H
#define GP_BROKER_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what a registration may carry (each checked before anything
 * is stored; bigger registrations are refused with GP_EINVAL). */
#define BRK_NAME_MAX 63u          /* server and tenant names */
#define BRK_ADDR_MAX 255u         /* host:port */
#define BRK_UUID_MAX 63u
#define BRK_GPU_NAME_MAX 95u
#define BRK_MIG_MAX 31u
#define BRK_VERSION_MAX 127u
#define BRK_CLIENT_MAX 95u
#define BRK_LABEL_KEY_MAX 63u
#define BRK_LABEL_VALUE_MAX 255u
#define BRK_MAX_LABELS 64u        /* per server, and per request */
#define BRK_MAX_GPUS 64u          /* per server */
#define BRK_MAX_SERVERS 4096u
#define BRK_MAX_SESSIONS (1u << 20) /* in the whole pool */

enum brk_state {
  BRK_GRANTED = 0, /* a grant was given; not yet seen running */
  BRK_RUNNING = 1, /* listed by its server's registration or heartbeat */
};

struct brk_label {
  char *key, *value;
};

struct brk_server;

struct brk_gpu {
  struct brk_server *server;
  char uuid[BRK_UUID_MAX + 1];
  char name[BRK_GPU_NAME_MAX + 1];
  char mig_profile[BRK_MIG_MAX + 1];
  int32_t cc_major, cc_minor;
  uint64_t total_mem;
  /* The broker's own accounting: sum of its sessions' memory limits, and
   * how many sessions (granted or running) it has. */
  uint64_t reserved;
  uint32_t sessions;
  /* The server's last heartbeat. */
  uint64_t memory_used;
  int32_t utilisation; /* percent, -1: unknown */
};

struct brk_session;

struct brk_server {
  char name[BRK_NAME_MAX + 1];
  char address[BRK_ADDR_MAX + 1];
  char version[BRK_VERSION_MAX + 1];
  struct brk_label *labels;
  uint32_t nlabels;
  struct brk_gpu *gpus;
  uint32_t ngpus;
  bool up;
  bool draining;
  uint64_t registered_ms;
  uint64_t last_heartbeat_ms; /* registration counts as one */
  /* For the daemon: the timestamp_unix of its last accepted registration
   * (a later one must be greater: a replayed registration is refused). */
  uint64_t last_register_unix;
  /* Its sessions, a doubly-linked list through brk_session.snext/sprev. */
  struct brk_session *sessions;
  uint32_t nsessions;
  /* For the daemon: the connection that registered it (NULL: none). */
  void *conn;
  uint32_t index; /* in pool->servers */
};

struct brk_session {
  uint64_t id;
  char tenant[BRK_NAME_MAX + 1];
  int32_t tenant_index; /* in pool->tenants; -1: not a configured tenant */
  struct brk_server *server;
  uint32_t gpu;         /* index in server->gpus */
  uint64_t memory_limit;
  uint64_t memory_used;
  uint64_t idle_ms;
  uint64_t expires_unix;
  uint64_t created_ms;
  enum brk_state state;
  uint32_t seen;        /* the heartbeat generation that last listed it */
  char client[BRK_CLIENT_MAX + 1];
  struct brk_session *snext, *sprev; /* the server's list */
  struct brk_session *free_next;     /* the pool's free list */
};

/* A tenant and what it uses now (granted and running sessions). */
struct brk_tenant {
  char name[BRK_NAME_MAX + 1];
  uint32_t max_sessions; /* 0: no limit */
  uint64_t max_memory;   /* 0: no limit */
  uint32_t sessions;
  uint64_t memory;
};

struct brk_pool {
  struct brk_server **servers;
  uint32_t nservers, cap_servers;
  struct brk_tenant *tenants;
  uint32_t ntenants;
  uint64_t default_memory;
  /* Sessions by id: open addressing, linear probing, |index_cap| a power
   * of two, at most half full. */
  struct brk_session **index;
  uint32_t index_cap;
  uint32_t nsessions;
  /* Unused session structs, and the chunks they came from. */
  struct brk_session *free_sessions;
  void **chunks;
  uint32_t nchunks, cap_chunks;
  uint32_t hb_gen;
};

/* ---- Set-up -------------------------------------------------------------- */

/* Initialises |p| with a copy of the |n| tenants (usage counters zeroed)
 * and |default_memory| (for requests that name none). Returns 0 or
 * GP_ENOMEM. */
int brk_pool_init(struct brk_pool *p, const struct brk_tenant *tenants,
                  uint32_t n, uint64_t default_memory);

/* Releases everything |p| holds. Safe on a zeroed struct. */
void brk_pool_free(struct brk_pool *p);

/* ---- Servers -------------------------------------------------------------- */

/* What a server registers with (the daemon fills it from BrokerRegister).
 * Strings are copied; the struct is not kept. */
struct brk_gpu_info {
  const char *uuid, *name, *mig_profile;
  uint64_t total_mem;
  int32_t cc_major, cc_minor;
};

struct brk_session_info {
  uint64_t session_id;
  const char *tenant;
  const char *gpu_uuid;
  uint64_t memory_limit;
  uint64_t memory_used;
  uint64_t expires_unix;
  uint64_t idle_ms;
};

struct brk_register {
  const char *name, *address, *version;
  const struct brk_label *labels; /* const char * pairs, copied */
  uint32_t nlabels;
  const struct brk_gpu_info *gpus;
  uint32_t ngpus;
  const struct brk_session_info *sessions;
  uint32_t nsessions;
};

/* True when |name| is 1 to BRK_NAME_MAX of [A-Za-z0-9._-]. */
bool brk_name_valid(const char *name);

/* Registers a server, or replaces the one of the same name (keeping its
 * draining flag). The server is up, its last heartbeat now. Its listed
 * sessions become running sessions on it (adopted when the pool did not
 * know them, moved here when they were elsewhere); its other running
 * sessions are dropped (it no longer runs them); its granted sessions are
 * kept when their GPU is still offered. Validates everything first: an
 * invalid name, a duplicate or empty GPU UUID, a session on a GPU it does
 * not offer, anything over the BRK_* limits: GP_EINVAL and the reason in
 * |why| (|whylen| bytes), the pool unchanged. GP_ENOMEM. On success
 * |*out| is the server (owned by the pool). */
int brk_pool_register(struct brk_pool *p, const struct brk_register *r,
                      uint64_t now_ms, struct brk_server **out, char *why,
                      size_t whylen);

/* The server named |name|, or NULL. */
struct brk_server *brk_pool_server(const struct brk_pool *p,
                                   const char *name);

/* A heartbeat's GPU load and session, as BrokerGpuLoad and BrokerSession. */
struct brk_gpu_load {
  const char *uuid;
  uint64_t memory_used;
  int32_t utilisation;
};

/* Whether a session a server lists (registration or heartbeat) may be
 * accounted: a memory limit above 0 and at most its GPU's total memory.
 * Others are ignored (the daemon logs them), so that sums of limits stay
 * meaningful. */
bool brk_listed_limit_ok(uint64_t memory_limit, uint64_t total_mem);

/* Applies a heartbeat from |s|: it is up, its last heartbeat now; the
 * load of each listed GPU it offers (others are ignored); each listed
 * session becomes running with its memory used and idle time (adopted when
 * unknown, as at registration; sessions on GPUs it does not offer are
 * ignored); running sessions on |s| no longer listed are dropped. Returns
 * the number of sessions dropped, or GP_ENOMEM (the heartbeat applied in
 * part). */
int brk_pool_heartbeat(struct brk_pool *p, struct brk_server *s,
                       const struct brk_gpu_load *gpus, uint32_t ngpus,
                       const struct brk_session_info *sessions,
                       uint32_t nsessions, uint64_t now_ms);

/* Sets or clears |s|'s draining flag (a draining server gets no new
 * sessions; its sessions are not touched). */
void brk_pool_drain(struct brk_pool *p, struct brk_server *s, bool drain);

/* Removes |s| and its sessions (for tests and shutdown; the daemon never
 * forgets a registered server). */
void brk_pool_remove_server(struct brk_pool *p, struct brk_server *s);

/* Marks down every up server whose last heartbeat is |down_after_ms| or
 * more before |now_ms|. Calls |cb| (may be NULL) for each with |arg|.
 * Returns how many went down. */
uint32_t brk_pool_mark_down(struct brk_pool *p, uint64_t now_ms,
                            uint64_t down_after_ms,
                            void (*cb)(struct brk_server *, void *),
                            void *arg);

/* ---- Sessions ------------------------------------------------------------ */

/* The session |id|, or NULL. */
struct brk_session *brk_pool_session(const struct brk_pool *p, uint64_t id);

/* Ends session |id| (its reservation released at once). Returns 0, or
 * GP_ENOENT when the pool does not know it, or it is not on |s| (when |s|
 * is not NULL). */
int brk_pool_end(struct brk_pool *p, uint64_t id, const struct brk_server *s);

/* Drops every granted session whose expiry plus |grace_s| is at or before
 * |now_unix| (not seen running in time). The grace covers a session
 * admitted just before its grant expired, until the server's next
 * heartbeat lists it. Calls |cb| (may be NULL) for each before it goes.
 * Returns how many were dropped. */
uint32_t brk_pool_expire(struct brk_pool *p, uint64_t now_unix,
                         uint64_t grace_s,
                         void (*cb)(const struct brk_session *, void *),
                         void *arg);

/* ---- Placement ----------------------------------------------------------- */

struct brk_request {
  int32_t tenant;                 /* index in pool->tenants; <0: unknown */
  uint64_t memory;                /* 0: the pool's default */
  uint32_t gpu_count;             /* 0 or 1 */
  const struct brk_label *labels; /* all must be among the server's */
  uint32_t nlabels;
  const char *server;             /* NULL or "": any */
  const char *prefer_server;      /* NULL or "": none */
};

struct brk_decision {
  struct brk_server *server;
  uint32_t gpu;
  uint64_t memory; /* the memory limit: the request's or the default */
};

/* Chooses the GPU for |req| (docs/broker.md, "Placement", steps 1-4)
 * without changing the pool. Returns 0 and |*out|, or GP_EAUTH (no
 * tenant), GP_ENOTSUP (gpu_count > 1), GP_EINVAL (too many labels),
 * GP_EQUOTA or GP_ENOFIT with the reason in |why|. Allocates nothing. */
int brk_place(const struct brk_pool *p, const struct brk_request *req,
              struct brk_decision *out, char *why, size_t whylen);

/* Adds the session |id| (not 0, not in use) that |d| placed, in state
 * granted, reserving its memory (step 5). |client| may be NULL. Returns 0
 * and |*out| (owned by the pool), GP_EINVAL for a used id, or GP_ENOMEM. */
int brk_pool_grant(struct brk_pool *p, const struct brk_decision *d,
                   int32_t tenant, uint64_t id, uint64_t expires_unix,
                   const char *client, uint64_t now_ms,
                   struct brk_session **out);

/* Iterates the sessions: |*pos| starts at 0; returns the next session or
 * NULL at the end. The pool must not change in between. */
struct brk_session *brk_pool_next_session(const struct brk_pool *p,
                                          uint32_t *pos);

/* -1, 0 or 1 as GPU |a| scores below, equal to or above |b| (lower is
 * better; docs/broker.md, "Placement", step 3). For tests. */
int brk_gpu_cmp(const struct brk_gpu *a, const struct brk_gpu *b);

#endif
