/* The pool's state and the placement decision: see placement.h. */
#include "placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpupool/errors.h"

#define SESSION_CHUNK 256u
#define INDEX_MIN_CAP 64u
#define NO_GPU UINT32_MAX

/* ---- Small helpers --------------------------------------------------------- */

/* Copies |src| (NULL: "") into |dst| of |cap| bytes, cutting it short. */
static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;

  if (n >= cap)
    n = cap - 1;
  if (n)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

static bool str_empty(const char *s) {
  return !s || !*s;
}

/* Writes a byte count for messages: "1.5 GiB", "512 MiB", "100 bytes". */
static void fmt_size(uint64_t n, char *out, size_t len) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)n;
  int u = -1;

  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    u++;
  }
  if (u < 0)
    snprintf(out, len, "%llu bytes", (unsigned long long)n);
  else if (v == (double)(uint64_t)v)
    snprintf(out, len, "%.0f %s", v, units[u]);
  else
    snprintf(out, len, "%.1f %s", v, units[u]);
}

bool brk_name_valid(const char *name) {
  size_t n = 0;

  if (!name)
    return false;
  for (; name[n]; n++) {
    char c = name[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return n >= 1 && n <= BRK_NAME_MAX;
}

static int32_t tenant_by_name(const struct brk_pool *p, const char *name) {
  uint32_t i;

  for (i = 0; i < p->ntenants; i++)
    if (strcmp(p->tenants[i].name, name) == 0)
      return (int32_t)i;
  return -1;
}

static uint32_t gpu_by_uuid(const struct brk_gpu *gpus, uint32_t n,
                            const char *uuid) {
  uint32_t i;

  if (!uuid)
    return NO_GPU;
  for (i = 0; i < n; i++)
    if (strcmp(gpus[i].uuid, uuid) == 0)
      return i;
  return NO_GPU;
}

/* ---- The session index ------------------------------------------------------ */

static uint32_t hash_id(uint64_t id) {
  /* splitmix64's finaliser: ids are random already, but tests use small
   * ones. */
  id ^= id >> 30;
  id *= 0xbf58476d1ce4e5b9ull;
  id ^= id >> 27;
  id *= 0x94d049bb133111ebull;
  id ^= id >> 31;
  return (uint32_t)id;
}

static int index_grow(struct brk_pool *p, uint32_t cap) {
  struct brk_session **old = p->index, **tab;
  uint32_t oldcap = p->index_cap, i;

  tab = calloc(cap, sizeof(*tab));
  if (!tab)
    return GP_ENOMEM;
  for (i = 0; i < oldcap; i++) {
    struct brk_session *s = old[i];
    uint32_t j;
    if (!s)
      continue;
    for (j = hash_id(s->id) & (cap - 1); tab[j]; j = (j + 1) & (cap - 1)) {
    }
    tab[j] = s;
  }
  free(old);
  p->index = tab;
  p->index_cap = cap;
  return 0;
}

struct brk_session *brk_pool_session(const struct brk_pool *p, uint64_t id) {
  uint32_t j, mask = p->index_cap - 1;

  if (p->index_cap == 0)
    return NULL;
  for (j = hash_id(id) & mask; p->index[j]; j = (j + 1) & mask)
    if (p->index[j]->id == id)
      return p->index[j];
  return NULL;
}

static void index_insert(struct brk_pool *p, struct brk_session *s) {
  uint32_t j, mask = p->index_cap - 1;

  for (j = hash_id(s->id) & mask; p->index[j]; j = (j + 1) & mask) {
  }
  p->index[j] = s;
  p->nsessions++;
}

/* Linear probing's deletion without tombstones: later entries of the
 * cluster move back into the hole when their home slot allows it. */
static void index_remove(struct brk_pool *p, const struct brk_session *s) {
  uint32_t mask = p->index_cap - 1, i, j, home;

  for (i = hash_id(s->id) & mask; p->index[i] != s; i = (i + 1) & mask) {
  }
  p->index[i] = NULL;
  for (j = (i + 1) & mask; p->index[j]; j = (j + 1) & mask) {
    home = hash_id(p->index[j]->id) & mask;
    /* Move j into the hole i unless home lies cyclically in (i, j]. */
    if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
      p->index[i] = p->index[j];
      p->index[j] = NULL;
      i = j;
    }
  }
  p->nsessions--;
}

/* Makes room for |n| more sessions: free structs and index slots, so
 * that what follows cannot fail half-way. */
static int reserve_sessions(struct brk_pool *p, uint32_t n) {
  uint32_t nfree = 0, cap;
  struct brk_session *s;

  if (n > BRK_MAX_SESSIONS || p->nsessions > BRK_MAX_SESSIONS - n)
    return GP_ENOMEM;
  for (s = p->free_sessions; s && nfree < n; s = s->free_next)
    nfree++;
  while (nfree < n) {
    struct brk_session *chunk;
    uint32_t k;
    if (p->nchunks == p->cap_chunks) {
      uint32_t nc = p->cap_chunks ? p->cap_chunks * 2 : 16;
      void **c = realloc(p->chunks, nc * sizeof(*c));
      if (!c)
        return GP_ENOMEM;
      p->chunks = c;
      p->cap_chunks = nc;
    }
    chunk = calloc(SESSION_CHUNK, sizeof(*chunk));
    if (!chunk)
      return GP_ENOMEM;
    p->chunks[p->nchunks++] = chunk;
    for (k = 0; k < SESSION_CHUNK; k++) {
      chunk[k].free_next = p->free_sessions;
      p->free_sessions = &chunk[k];
    }
    nfree += SESSION_CHUNK;
  }
  cap = p->index_cap ? p->index_cap : INDEX_MIN_CAP;
  while ((uint64_t)(p->nsessions + n) * 2 > cap)
    cap *= 2;
  if (cap != p->index_cap)
    return index_grow(p, cap);
  return 0;
}

/* ---- Sessions on servers ---------------------------------------------------- */

/* Sums of memory limits saturate rather than wrap: a server may list
 * sessions the broker did not grant, and a wrapped sum would show a full
 * GPU (or a tenant at its quota) as empty. Saturated sums stay wrong only
 * while the listed sessions that caused them live. */
static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_sub(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

/* Adds |s| to its server's list, its GPU's and its tenant's accounting. */
static void session_attach(struct brk_pool *p, struct brk_session *s) {
  struct brk_server *srv = s->server;
  struct brk_gpu *g = &srv->gpus[s->gpu];

  s->sprev = NULL;
  s->snext = srv->sessions;
  if (srv->sessions)
    srv->sessions->sprev = s;
  srv->sessions = s;
  srv->nsessions++;
  g->reserved = sat_add(g->reserved, s->memory_limit);
  g->sessions++;
  if (s->tenant_index >= 0) {
    p->tenants[s->tenant_index].sessions++;
    p->tenants[s->tenant_index].memory =
        sat_add(p->tenants[s->tenant_index].memory, s->memory_limit);
  }
}

/* The reverse of session_attach(). */
static void session_detach(struct brk_pool *p, struct brk_session *s) {
  struct brk_server *srv = s->server;
  struct brk_gpu *g = &srv->gpus[s->gpu];

  if (s->sprev)
    s->sprev->snext = s->snext;
  else
    srv->sessions = s->snext;
  if (s->snext)
    s->snext->sprev = s->sprev;
  s->snext = s->sprev = NULL;
  srv->nsessions--;
  g->reserved = sat_sub(g->reserved, s->memory_limit);
  g->sessions--;
  if (s->tenant_index >= 0) {
    p->tenants[s->tenant_index].sessions--;
    p->tenants[s->tenant_index].memory =
        sat_sub(p->tenants[s->tenant_index].memory, s->memory_limit);
  }
}

/* Returns a detached session's struct to the free list. */
static void session_release(struct brk_pool *p, struct brk_session *s) {
  index_remove(p, s);
  memset(s, 0, sizeof(*s));
  s->free_next = p->free_sessions;
  p->free_sessions = s;
}

/* Takes a struct from the free list (reserve_sessions() made sure there is
 * one) and indexes it under |id|. */
static struct brk_session *session_new(struct brk_pool *p, uint64_t id) {
  struct brk_session *s = p->free_sessions;

  p->free_sessions = s->free_next;
  memset(s, 0, sizeof(*s));
  s->id = id;
  index_insert(p, s);
  return s;
}

static void session_drop(struct brk_pool *p, struct brk_session *s) {
  session_detach(p, s);
  session_release(p, s);
}

/* Applies a session a server lists (registration or heartbeat) as running
 * on |srv|'s GPU |gpu|: adopts it, moves it, or updates it. Marks it seen
 * in generation |gen|. Needs one reserved session. */
static void session_listed(struct brk_pool *p, struct brk_server *srv,
                           uint32_t gpu, const struct brk_session_info *si,
                           uint32_t gen, uint64_t now_ms) {
  struct brk_session *s = brk_pool_session(p, si->session_id);

  if (s && s->server == srv && s->gpu == gpu &&
      s->memory_limit == si->memory_limit) {
    /* The usual case: nothing to re-account. */
  } else {
    if (s) {
      session_detach(p, s);
    } else {
      s = session_new(p, si->session_id);
      copy_str(s->tenant, sizeof(s->tenant), si->tenant);
      s->tenant_index = tenant_by_name(p, s->tenant);
      s->created_ms = now_ms;
      s->expires_unix = si->expires_unix;
    }
    s->server = srv;
    s->gpu = gpu;
    s->memory_limit = si->memory_limit;
    session_attach(p, s);
  }
  s->state = BRK_RUNNING;
  s->memory_used = si->memory_used;
  s->idle_ms = si->idle_ms;
  s->seen = gen;
}

bool brk_listed_limit_ok(uint64_t memory_limit, uint64_t total_mem) {
  return memory_limit != 0 && memory_limit <= total_mem;
}

/* ---- Set-up ------------------------------------------------------------------ */

int brk_pool_init(struct brk_pool *p, const struct brk_tenant *tenants,
                  uint32_t n, uint64_t default_memory) {
  uint32_t i;

  memset(p, 0, sizeof(*p));
  p->default_memory = default_memory;
  if (n) {
    p->tenants = calloc(n, sizeof(*p->tenants));
    if (!p->tenants)
      return GP_ENOMEM;
    for (i = 0; i < n; i++) {
      p->tenants[i] = tenants[i];
      p->tenants[i].sessions = 0;
      p->tenants[i].memory = 0;
    }
    p->ntenants = n;
  }
  return 0;
}

static void server_free(struct brk_server *s) {
  free(s->labels);
  free(s->gpus);
  free(s);
}

void brk_pool_free(struct brk_pool *p) {
  uint32_t i;

  for (i = 0; i < p->nservers; i++)
    server_free(p->servers[i]);
  free(p->servers);
  free(p->tenants);
  free(p->index);
  for (i = 0; i < p->nchunks; i++)
    free(p->chunks[i]);
  free(p->chunks);
  memset(p, 0, sizeof(*p));
}

/* ---- Servers ---------------------------------------------------------------- */

struct brk_server *brk_pool_server(const struct brk_pool *p,
                                   const char *name) {
  uint32_t i;

  if (!name)
    return NULL;
  for (i = 0; i < p->nservers; i++)
    if (strcmp(p->servers[i]->name, name) == 0)
      return p->servers[i];
  return NULL;
}

/* True when one of the first |n| GPUs of a registration has |uuid|. */
static bool gpu_by_uuid_info(const struct brk_gpu_info *gpus, uint32_t n,
                             const char *uuid) {
  uint32_t i;

  for (i = 0; i < n; i++)
    if (strcmp(gpus[i].uuid, uuid) == 0)
      return true;
  return false;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), GP_EINVAL)

static int check_register(const struct brk_pool *p,
                          const struct brk_register *r, char *why,
                          size_t whylen) {
  uint32_t i, j;

  if (!brk_name_valid(r->name))
    return WHY("server name '%.80s' is not 1 to %u of [A-Za-z0-9._-]",
               r->name ? r->name : "", BRK_NAME_MAX);
  if (str_empty(r->address) || strlen(r->address) > BRK_ADDR_MAX)
    return WHY("server %s: no address, or one longer than %u bytes", r->name,
               BRK_ADDR_MAX);
  if (r->nlabels > BRK_MAX_LABELS)
    return WHY("server %s: %u labels (at most %u)", r->name, r->nlabels,
               BRK_MAX_LABELS);
  for (i = 0; i < r->nlabels; i++) {
    const struct brk_label *l = &r->labels[i];
    if (str_empty(l->key) || strlen(l->key) > BRK_LABEL_KEY_MAX ||
        !l->value || strlen(l->value) > BRK_LABEL_VALUE_MAX)
      return WHY("server %s: label %u has an empty or too long key or "
                 "value", r->name, i);
    for (j = 0; j < i; j++)
      if (strcmp(r->labels[j].key, l->key) == 0)
        return WHY("server %s: label '%s' given twice", r->name, l->key);
  }
  if (r->ngpus > BRK_MAX_GPUS)
    return WHY("server %s: %u GPUs (at most %u)", r->name, r->ngpus,
               BRK_MAX_GPUS);
  for (i = 0; i < r->ngpus; i++) {
    const char *u = r->gpus[i].uuid;
    if (str_empty(u) || strlen(u) > BRK_UUID_MAX)
      return WHY("server %s: GPU %u has an empty or too long UUID", r->name,
                 i);
    if (gpu_by_uuid_info(r->gpus, i, u))
      return WHY("server %s: GPU %s listed twice", r->name, u);
  }
  if (r->nsessions > BRK_MAX_SESSIONS)
    return WHY("server %s: too many sessions", r->name);
  for (i = 0; i < r->nsessions; i++) {
    const struct brk_session_info *si = &r->sessions[i];
    bool found = false;
    if (si->session_id == 0)
      return WHY("server %s: a session with id 0", r->name);
    for (j = 0; j < r->ngpus && !found; j++)
      found = si->gpu_uuid && strcmp(r->gpus[j].uuid, si->gpu_uuid) == 0;
    if (!found)
      return WHY("server %s: session %016llx on GPU '%.64s', which it does "
                 "not offer", r->name, (unsigned long long)si->session_id,
                 si->gpu_uuid ? si->gpu_uuid : "");
  }
  if (!brk_pool_server(p, r->name) && p->nservers >= BRK_MAX_SERVERS)
    return WHY("the pool has %u servers already (at most %u)", p->nservers,
               BRK_MAX_SERVERS);
  return 0;
}

/* One block holding the label array and its strings. */
static struct brk_label *copy_labels(const struct brk_label *l, uint32_t n) {
  size_t bytes = n * sizeof(*l), off;
  struct brk_label *out;
  uint32_t i;

  for (i = 0; i < n; i++)
    bytes += strlen(l[i].key) + strlen(l[i].value) + 2;
  out = malloc(bytes ? bytes : 1);
  if (!out)
    return NULL;
  off = n * sizeof(*l);
  for (i = 0; i < n; i++) {
    size_t k = strlen(l[i].key) + 1, v = strlen(l[i].value) + 1;
    out[i].key = (char *)out + off;
    memcpy(out[i].key, l[i].key, k);
    off += k;
    out[i].value = (char *)out + off;
    memcpy(out[i].value, l[i].value, v);
    off += v;
  }
  return out;
}

int brk_pool_register(struct brk_pool *p, const struct brk_register *r,
                      uint64_t now_ms, struct brk_server **out, char *why,
                      size_t whylen) {
  struct brk_server *srv, *fresh = NULL;
  struct brk_label *labels = NULL;
  struct brk_gpu *gpus = NULL;
  struct brk_session *s, *next, *kept = NULL;
  uint32_t i, gen;
  int ret;

  ret = check_register(p, r, why, whylen);
  if (ret != 0)
    return ret;
  /* Everything that can fail comes first: the pool is untouched until
   * nothing can. */
  labels = copy_labels(r->labels, r->nlabels);
  gpus = calloc(r->ngpus ? r->ngpus : 1, sizeof(*gpus));
  srv = brk_pool_server(p, r->name);
  if (!srv) {
    fresh = calloc(1, sizeof(*fresh));
    if (fresh && p->nservers == p->cap_servers) {
      uint32_t nc = p->cap_servers ? p->cap_servers * 2 : 16;
      struct brk_server **a = realloc(p->servers, nc * sizeof(*a));
      if (a) {
        p->servers = a;
        p->cap_servers = nc;
      } else {
        free(fresh);
        fresh = NULL;
      }
    }
  }
  if (!labels || !gpus || (!srv && !fresh) ||
      reserve_sessions(p, r->nsessions) != 0) {
    free(labels);
    free(gpus);
    free(fresh);
    snprintf(why, whylen, "out of memory");
    return GP_ENOMEM;
  }
  if (fresh) {
    srv = fresh;
    srv->index = p->nservers;
    p->servers[p->nservers++] = srv;
    srv->registered_ms = now_ms;
  }

  /* Mark the sessions it lists, to tell which of its running ones it no
   * longer runs. */
  gen = ++p->hb_gen;
  for (i = 0; i < r->nsessions; i++) {
    s = brk_pool_session(p, r->sessions[i].session_id);
    if (s)
      s->seen = gen;
  }
  /* Take its sessions off the old GPU array, noting each one's GPU in the
   * new one (NO_GPU: no longer offered). */
  for (s = srv->sessions; s; s = next) {
    const char *uuid = srv->gpus[s->gpu].uuid;
    uint32_t k;
    next = s->snext;
    for (k = 0; k < r->ngpus && strcmp(r->gpus[k].uuid, uuid) != 0; k++) {
    }
    session_detach(p, s);
    s->gpu = k < r->ngpus ? k : NO_GPU;
    s->snext = kept;
    kept = s;
  }
  free(srv->labels);
  free(srv->gpus);
  srv->labels = labels;
  srv->nlabels = r->nlabels;
  srv->gpus = gpus;
  srv->ngpus = r->ngpus;
  for (i = 0; i < r->ngpus; i++) {
    struct brk_gpu *g = &gpus[i];
    g->server = srv;
    copy_str(g->uuid, sizeof(g->uuid), r->gpus[i].uuid);
    copy_str(g->name, sizeof(g->name), r->gpus[i].name);
    copy_str(g->mig_profile, sizeof(g->mig_profile), r->gpus[i].mig_profile);
    g->cc_major = r->gpus[i].cc_major;
    g->cc_minor = r->gpus[i].cc_minor;
    g->total_mem = r->gpus[i].total_mem;
    g->utilisation = -1;
  }
  copy_str(srv->name, sizeof(srv->name), r->name);
  copy_str(srv->address, sizeof(srv->address), r->address);
  copy_str(srv->version, sizeof(srv->version), r->version);
  srv->up = true;
  srv->last_heartbeat_ms = now_ms;
  for (s = kept; s; s = next) {
    next = s->snext;
    s->snext = NULL;
    if (s->gpu == NO_GPU || (s->state == BRK_RUNNING && s->seen != gen)) {
      session_release(p, s);
    } else {
      session_attach(p, s);
    }
  }
  for (i = 0; i < r->nsessions; i++) {
    const struct brk_session_info *si = &r->sessions[i];
    uint32_t k = gpu_by_uuid(gpus, r->ngpus, si->gpu_uuid);
    if (!brk_listed_limit_ok(si->memory_limit, gpus[k].total_mem))
      continue;
    session_listed(p, srv, k, si, gen, now_ms);
  }
  *out = srv;
  return 0;
}

int brk_pool_heartbeat(struct brk_pool *p, struct brk_server *srv,
                       const struct brk_gpu_load *gpus, uint32_t ngpus,
                       const struct brk_session_info *sessions,
                       uint32_t nsessions, uint64_t now_ms) {
  struct brk_session *s, *next;
  uint32_t i, gen, k;
  int dropped = 0, ret;

  srv->up = true;
  srv->last_heartbeat_ms = now_ms;
  for (i = 0; i < ngpus; i++) {
    k = gpu_by_uuid(srv->gpus, srv->ngpus, gpus[i].uuid);
    if (k == NO_GPU)
      continue;
    srv->gpus[k].memory_used = gpus[i].memory_used;
    srv->gpus[k].utilisation =
        gpus[i].utilisation >= 0 && gpus[i].utilisation <= 100
            ? gpus[i].utilisation
            : -1;
  }
  ret = reserve_sessions(p, nsessions);
  if (ret != 0)
    return ret;
  gen = ++p->hb_gen;
  for (i = 0; i < nsessions; i++) {
    k = gpu_by_uuid(srv->gpus, srv->ngpus, sessions[i].gpu_uuid);
    if (k == NO_GPU || sessions[i].session_id == 0 ||
        !brk_listed_limit_ok(sessions[i].memory_limit,
                             srv->gpus[k].total_mem))
      continue;
    session_listed(p, srv, k, &sessions[i], gen, now_ms);
  }
  for (s = srv->sessions; s; s = next) {
    next = s->snext;
    if (s->state == BRK_RUNNING && s->seen != gen) {
      session_drop(p, s);
      dropped++;
    }
  }
  return dropped;
}

void brk_pool_drain(struct brk_pool *p, struct brk_server *s, bool drain) {
  (void)p;
  s->draining = drain;
}

void brk_pool_remove_server(struct brk_pool *p, struct brk_server *srv) {
  uint32_t i = srv->index;

  while (srv->sessions)
    session_drop(p, srv->sessions);
  p->servers[i] = p->servers[--p->nservers];
  p->servers[i]->index = i;
  server_free(srv);
}

uint32_t brk_pool_mark_down(struct brk_pool *p, uint64_t now_ms,
                            uint64_t down_after_ms,
                            void (*cb)(struct brk_server *, void *),
                            void *arg) {
  uint32_t i, n = 0;

  for (i = 0; i < p->nservers; i++) {
    struct brk_server *s = p->servers[i];
    if (s->up && now_ms >= s->last_heartbeat_ms &&
        now_ms - s->last_heartbeat_ms >= down_after_ms) {
      s->up = false;
      n++;
      if (cb)
        cb(s, arg);
    }
  }
  return n;
}

/* ---- Sessions ----------------------------------------------------------------- */

int brk_pool_end(struct brk_pool *p, uint64_t id, const struct brk_server *s) {
  struct brk_session *ss = brk_pool_session(p, id);

  if (!ss || (s && ss->server != s))
    return GP_ENOENT;
  session_drop(p, ss);
  return 0;
}

uint32_t brk_pool_expire(struct brk_pool *p, uint64_t now_unix,
                         uint64_t grace_s,
                         void (*cb)(const struct brk_session *, void *),
                         void *arg) {
  uint32_t i, n = 0;

  for (i = 0; i < p->nservers; i++) {
    struct brk_session *s, *next;
    for (s = p->servers[i]->sessions; s; s = next) {
      next = s->snext;
      if (s->state == BRK_GRANTED &&
          sat_add(s->expires_unix, grace_s) <= now_unix) {
        if (cb)
          cb(s, arg);
        session_drop(p, s);
        n++;
      }
    }
  }
  return n;
}

int brk_pool_grant(struct brk_pool *p, const struct brk_decision *d,
                   int32_t tenant, uint64_t id, uint64_t expires_unix,
                   const char *client, uint64_t now_ms,
                   struct brk_session **out) {
  struct brk_session *s;
  int ret;

  if (id == 0 || brk_pool_session(p, id))
    return GP_EINVAL;
  if (tenant < 0 || (uint32_t)tenant >= p->ntenants || !d->server ||
      d->gpu >= d->server->ngpus)
    return GP_EINVAL;
  ret = reserve_sessions(p, 1);
  if (ret != 0)
    return ret;
  s = session_new(p, id);
  copy_str(s->tenant, sizeof(s->tenant), p->tenants[tenant].name);
  s->tenant_index = tenant;
  s->server = d->server;
  s->gpu = d->gpu;
  s->memory_limit = d->memory;
  s->expires_unix = expires_unix;
  s->created_ms = now_ms;
  s->state = BRK_GRANTED;
  copy_str(s->client, sizeof(s->client), client);
  session_attach(p, s);
  *out = s;
  return 0;
}

struct brk_session *brk_pool_next_session(const struct brk_pool *p,
                                          uint32_t *pos) {
  while (*pos < p->index_cap) {
    struct brk_session *s = p->index[(*pos)++];
    if (s)
      return s;
  }
  return NULL;
}

/* ---- Placement ------------------------------------------------------------------ */

int brk_gpu_cmp(const struct brk_gpu *a, const struct brk_gpu *b) {
  /* reserved_a / total_a against reserved_b / total_b, exactly: the cross
   * products of two 64-bit numbers fit in 128 bits. A GPU of total 0 is
   * never a candidate; for the comparison it counts as full. */
  unsigned __int128 l = (unsigned __int128)a->reserved * b->total_mem;
  unsigned __int128 r = (unsigned __int128)b->reserved * a->total_mem;
  int32_t ua, ub;
  int c;

  if (a->total_mem == 0 || b->total_mem == 0) {
    if (a->total_mem != b->total_mem)
      return a->total_mem == 0 ? 1 : -1;
  } else if (l != r) {
    return l < r ? -1 : 1;
  }
  if (a->sessions != b->sessions)
    return a->sessions < b->sessions ? -1 : 1;
  ua = a->utilisation < 0 ? 0 : a->utilisation;
  ub = b->utilisation < 0 ? 0 : b->utilisation;
  if (ua != ub)
    return ua < ub ? -1 : 1;
  c = strcmp(a->server->name, b->server->name);
  if (c == 0)
    c = strcmp(a->uuid, b->uuid);
  return c < 0 ? -1 : c > 0;
}

static bool has_labels(const struct brk_server *s, const struct brk_label *l,
                       uint32_t n) {
  uint32_t i, j;

  for (i = 0; i < n; i++) {
    for (j = 0; j < s->nlabels; j++)
      if (strcmp(s->labels[j].key, l[i].key) == 0)
        break;
    if (j == s->nlabels || strcmp(s->labels[j].value, l[i].value) != 0)
      return false;
  }
  return true;
}

/* "k=v,k=v" of the request's labels, for messages. */
static void fmt_labels(const struct brk_label *l, uint32_t n, char *out,
                       size_t len) {
  size_t off = 0;
  uint32_t i;

  out[0] = '\0';
  for (i = 0; i < n && off < len; i++) {
    int k = snprintf(out + off, len - off, "%s%s=%s", i ? "," : "", l[i].key,
                     l[i].value);
    if (k < 0)
      break;
    off += (size_t)k;
  }
}

int brk_place(const struct brk_pool *p, const struct brk_request *req,
              struct brk_decision *out, char *why, size_t whylen) {
  const struct brk_tenant *t;
  const struct brk_gpu *best = NULL, *best_pref = NULL, *roomiest = NULL;
  const char *named = str_empty(req->server) ? NULL : req->server;
  const char *prefer = str_empty(req->prefer_server) ? NULL
                                                     : req->prefer_server;
  uint32_t i, k, n_named = 0, n_up = 0, n_labels = 0, n_down = 0;
  uint64_t mem = req->memory ? req->memory : p->default_memory;
  uint64_t largest = 0;
  char a[32], b[32], lab[256];

  if (req->tenant < 0 || (uint32_t)req->tenant >= p->ntenants) {
    snprintf(why, whylen, "unknown token");
    return GP_EAUTH;
  }
  if (req->gpu_count > 1) {
    snprintf(why, whylen, "%u GPUs asked for: a session has one GPU",
             req->gpu_count);
    return GP_ENOTSUP;
  }
  if (req->nlabels > BRK_MAX_LABELS) {
    snprintf(why, whylen, "%u labels (at most %u)", req->nlabels,
             BRK_MAX_LABELS);
    return GP_EINVAL;
  }
  if (mem == 0) {
    snprintf(why, whylen, "no memory amount asked for, and no default");
    return GP_EINVAL;
  }
  t = &p->tenants[req->tenant];
  if (t->max_sessions && t->sessions >= t->max_sessions) {
    snprintf(why, whylen, "quota: tenant %s has %u sessions, its "
             "max_sessions is %u", t->name, t->sessions, t->max_sessions);
    return GP_EQUOTA;
  }
  if (t->max_memory && (mem > t->max_memory ||
                        t->memory > t->max_memory - mem)) {
    fmt_size(t->memory, a, sizeof(a));
    fmt_size(mem, b, sizeof(b));
    fmt_size(t->max_memory, lab, sizeof(lab));
    snprintf(why, whylen, "quota: tenant %s has %s in sessions; %s more "
             "would exceed its max_memory of %s", t->name, a, b, lab);
    return GP_EQUOTA;
  }

  for (i = 0; i < p->nservers; i++) {
    const struct brk_server *s = p->servers[i];
    bool pref;
    if (named && strcmp(s->name, named) != 0)
      continue;
    n_named++;
    if (!s->up || s->draining) {
      n_down += !s->up;
      continue;
    }
    n_up++;
    if (req->nlabels && !has_labels(s, req->labels, req->nlabels))
      continue;
    n_labels++;
    pref = prefer && strcmp(s->name, prefer) == 0;
    for (k = 0; k < s->ngpus; k++) {
      const struct brk_gpu *g = &s->gpus[k];
      uint64_t free_mem = g->total_mem > g->reserved
                              ? g->total_mem - g->reserved : 0;
      if (free_mem < mem) {
        if (!roomiest || free_mem > largest) {
          roomiest = g;
          largest = free_mem;
        }
        continue;
      }
      if (!best || brk_gpu_cmp(g, best) < 0)
        best = g;
      if (pref && (!best_pref || brk_gpu_cmp(g, best_pref) < 0))
        best_pref = g;
    }
  }
  if (best_pref)
    best = best_pref;
  if (best) {
    out->server = best->server;
    out->gpu = (uint32_t)(best - best->server->gpus);
    out->memory = mem;
    return 0;
  }

  /* Nothing fits: the reason of the step where the last candidates went. */
  if (p->nservers == 0) {
    snprintf(why, whylen, "no server registered");
  } else if (n_named == 0) {
    snprintf(why, whylen, "no server named %.64s", named);
  } else if (n_up == 0) {
    if (named)
      snprintf(why, whylen, "server %s is %s", named,
               n_down ? "down" : "draining");
    else
      snprintf(why, whylen, "no server is up (%u registered: %u down, %u "
               "draining)", p->nservers, n_down, p->nservers - n_down);
  } else if (n_labels == 0) {
    fmt_labels(req->labels, req->nlabels, lab, sizeof(lab));
    if (named)
      snprintf(why, whylen, "server %s does not have the labels %s", named,
               lab);
    else
      snprintf(why, whylen, "no up server has the labels %s", lab);
  } else {
    fmt_size(mem, a, sizeof(a));
    fmt_size(largest, b, sizeof(b));
    if (roomiest)
      snprintf(why, whylen, "not enough free memory: %s asked for, the "
               "largest free is %s (%s on %s)", a, b, roomiest->uuid,
               roomiest->server->name);
    else
      snprintf(why, whylen, "not enough free memory: %s asked for, and the "
               "servers that fit offer no GPU", a);
  }
  return GP_ENOFIT;
}
