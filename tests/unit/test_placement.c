/* Unit tests of the pool's state and placement (broker/placement.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpupool/errors.h"
#include "placement.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static const struct brk_tenant tenants[] = {
  {.name = "alice"},
  {.name = "bob", .max_sessions = 2},
  {.name = "carol", .max_memory = 3 * GiB},
};
enum { ALICE = 0, BOB = 1, CAROL = 2 };

static struct brk_pool pool;
static char why[256];

static void setup(void) {
  ck_assert_int_eq(brk_pool_init(&pool, tenants, 3, 1 * GiB), 0);
  why[0] = '\0';
}

static void teardown(void) {
  brk_pool_free(&pool);
}

/* Registers |name| with GPUs "NAME-g0".. of the given sizes (GiB) and the
 * labels "k=v" given as one string "k=v,k=v" (NULL: none). */
static struct brk_server *reg_sessions(const char *name, int ngpus,
                                       const uint64_t *gib,
                                       const char *labels,
                                       const struct brk_session_info *ss,
                                       uint32_t nss, uint64_t now_ms) {
  struct brk_gpu_info gpus[8];
  char uuids[8][32], lbuf[256], *save = NULL, *tok;
  struct brk_label lab[8];
  struct brk_register r = {0};
  struct brk_server *s = NULL;
  uint32_t nl = 0;
  int i;

  for (i = 0; i < ngpus; i++) {
    snprintf(uuids[i], sizeof(uuids[i]), "GPU-%s-%d", name, i);
    gpus[i] = (struct brk_gpu_info){uuids[i], "Test GPU", "", gib[i] * GiB,
                                    8, 0};
  }
  if (labels) {
    snprintf(lbuf, sizeof(lbuf), "%s", labels);
    for (tok = strtok_r(lbuf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
      char *eq = strchr(tok, '=');
      *eq = '\0';
      lab[nl].key = tok;
      lab[nl++].value = eq + 1;
    }
  }
  r.name = name;
  r.address = "127.0.0.1:7000";
  r.version = "test";
  r.labels = lab;
  r.nlabels = nl;
  r.gpus = gpus;
  r.ngpus = (uint32_t)ngpus;
  r.sessions = ss;
  r.nsessions = nss;
  ck_assert_msg(brk_pool_register(&pool, &r, now_ms, &s, why, sizeof(why)) ==
                    0, "register %s: %s", name, why);
  return s;
}

static struct brk_server *reg(const char *name, int ngpus, const uint64_t *gib,
                              const char *labels) {
  return reg_sessions(name, ngpus, gib, labels, NULL, 0, 0);
}

/* Places a request and grants it; returns the session. */
static struct brk_session *take(int32_t tenant, uint64_t mem,
                                const struct brk_request *extra) {
  static uint64_t next_id = 1;
  struct brk_request req = {.tenant = tenant, .memory = mem};
  struct brk_decision d;
  struct brk_session *s = NULL;
  int r;

  if (extra) {
    req = *extra;
    req.tenant = tenant;
    req.memory = mem;
  }
  r = brk_place(&pool, &req, &d, why, sizeof(why));
  ck_assert_msg(r == 0, "place: %d %s", r, why);
  ck_assert_int_eq(brk_pool_grant(&pool, &d, tenant, next_id++, 1000, "t", 0,
                                  &s), 0);
  return s;
}

static int try_place(int32_t tenant, uint64_t mem,
                     const struct brk_request *extra,
                     struct brk_decision *d) {
  struct brk_request req = {.tenant = tenant, .memory = mem};

  if (extra) {
    req = *extra;
    req.tenant = tenant;
    req.memory = mem;
  }
  return brk_place(&pool, &req, d, why, sizeof(why));
}

static const char *uuid_of(const struct brk_session *s) {
  return s->server->gpus[s->gpu].uuid;
}

/* The lowest-scoring candidate, found by brute force over every GPU. */
static const struct brk_gpu *brute_best(uint64_t mem) {
  const struct brk_gpu *best = NULL;
  uint32_t i, k;

  for (i = 0; i < pool.nservers; i++)
    for (k = 0; k < pool.servers[i]->ngpus; k++) {
      const struct brk_gpu *g = &pool.servers[i]->gpus[k];
      if (!pool.servers[i]->up || pool.servers[i]->draining ||
          g->total_mem < g->reserved || g->total_mem - g->reserved < mem)
        continue;
      if (!best || brk_gpu_cmp(g, best) < 0)
        best = g;
    }
  return best;
}

START_TEST(test_placement_score_order_every_step) {
  static const uint64_t a[] = {8, 4}, b[] = {16}, c[] = {2, 2, 2};
  static const uint64_t sizes[] = {1, 2, 1, 3, 1, 1, 2, 1};
  int i;

  reg("a", 2, a, NULL);
  reg("b", 1, b, NULL);
  reg("c", 3, c, NULL);
  /* Every decision is the minimum of the score over all candidates,
   * found by brute force, until nothing fits. */
  for (i = 0; i < 24; i++) {
    uint64_t mem = sizes[i % 8] * 512 * MiB;
    const struct brk_gpu *want = brute_best(mem);
    struct brk_decision d;
    struct brk_session *s;
    if (!want) {
      ck_assert_int_eq(try_place(ALICE, mem, NULL, &d), GP_ENOFIT);
      break;
    }
    s = take(ALICE, mem, NULL);
    ck_assert_str_eq(uuid_of(s), want->uuid);
  }
}
END_TEST

START_TEST(test_placement_first_steps_by_hand) {
  static const uint64_t a[] = {8, 4}, b[] = {16};
  struct brk_session *s;

  reg("b", 1, b, NULL);
  reg("a", 2, a, NULL);
  /* All at 0/total, 0 sessions, utilisation unknown: name order, a first,
   * then UUID order: GPU-a-0. */
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-a-0");
  /* a-0 at 1/8; a-1 and b-0 at 0: a-1 (name). */
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-a-1");
  /* a-0 1/8, a-1 1/4, b-0 0: b. */
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-b-0");
  /* a-0 1/8 = 0.125, b-0 1/16: b again. */
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-b-0");
  /* a-0 1/8 = b-0 2/16: equal fractions; sessions 1 < 2: a-0. */
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-a-0");
}
END_TEST

START_TEST(test_placement_exact_fractions) {
  /* Fractions that differ by less than a double can tell apart:
   * (2^53+1)/(2^54+4) < 1/2 exactly, but both round to 0.5. */
  struct brk_server sa = {.name = "a"}, sb = {.name = "b"};
  struct brk_gpu x = {.server = &sa, .uuid = "x"}, y = {.server = &sb,
                                                        .uuid = "y"};

  x.reserved = (1ull << 53) + 1;
  x.total_mem = (1ull << 54) + 4;
  y.reserved = 1;
  y.total_mem = 2;
  y.sessions = 0;
  x.sessions = 5; /* would lose on sessions if the fractions tied */
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), -1);
  ck_assert_int_eq(brk_gpu_cmp(&y, &x), 1);
  /* Equal fractions of different totals tie on the fraction. */
  x.reserved = 3ull << 40;
  x.total_mem = 12ull << 40;
  y.reserved = 1;
  y.total_mem = 4;
  x.sessions = y.sessions = 1;
  x.utilisation = y.utilisation = -1;
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), -1); /* "a" < "b" */
  /* Large values whose products overflow 64 bits. */
  x.reserved = UINT64_MAX - 1;
  x.total_mem = UINT64_MAX;
  y.reserved = UINT64_MAX - 2;
  y.total_mem = UINT64_MAX - 1;
  /* (M-1)/M > (M-2)/(M-1) */
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), 1);
}
END_TEST

START_TEST(test_placement_ties_sessions_utilisation_names) {
  struct brk_server sa = {.name = "a"}, sb = {.name = "b"};
  struct brk_gpu x = {.server = &sb, .uuid = "GPU-1", .total_mem = 8},
                 y = {.server = &sa, .uuid = "GPU-2", .total_mem = 8};

  x.utilisation = y.utilisation = -1;
  /* Name first: a < b. */
  ck_assert_int_eq(brk_gpu_cmp(&y, &x), -1);
  /* Same server: UUID byte order. */
  x.server = &sa;
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), -1);
  /* Utilisation before names; unknown counts as 0. */
  x.utilisation = 10;
  y.utilisation = -1;
  ck_assert_int_eq(brk_gpu_cmp(&y, &x), -1);
  y.utilisation = 0;
  x.utilisation = -1;
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), -1); /* tie at 0, then UUID */
  /* Sessions before utilisation. */
  x.sessions = 1;
  y.utilisation = 90;
  ck_assert_int_eq(brk_gpu_cmp(&y, &x), -1);
  /* Reserved fraction before sessions. */
  y.reserved = 1;
  ck_assert_int_eq(brk_gpu_cmp(&x, &y), -1);
  ck_assert_int_eq(brk_gpu_cmp(&x, &x), 0);
}
END_TEST

START_TEST(test_placement_utilisation_from_heartbeat) {
  static const uint64_t one[] = {8};
  struct brk_server *a = reg("a", 1, one, NULL), *b = reg("b", 1, one, NULL);
  struct brk_gpu_load la = {"GPU-a-0", 0, 70}, lb = {"GPU-b-0", 0, 20};
  struct brk_session *s;

  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, &la, 1, NULL, 0, 1), 0);
  ck_assert_int_eq(brk_pool_heartbeat(&pool, b, &lb, 1, NULL, 0, 1), 0);
  s = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(s), "GPU-b-0");
  /* An out-of-range utilisation is unknown (0). */
  la.utilisation = 250;
  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, &la, 1, NULL, 0, 2), 0);
  ck_assert_int_eq(a->gpus[0].utilisation, -1);
}
END_TEST

START_TEST(test_placement_labels) {
  static const uint64_t one[] = {8};
  struct brk_label want[2] = {{"zone", "eu"}, {"gpu", "h100"}};
  struct brk_request req = {.labels = want, .nlabels = 2};
  struct brk_decision d;
  struct brk_session *s;

  reg("a", 1, one, "zone=eu");
  reg("b", 1, one, "zone=us,gpu=h100");
  reg("c", 1, one, "gpu=h100,zone=eu,extra=1");
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "c");
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "c");
  req.nlabels = 1; /* zone=eu: a or c; a is emptier */
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "a");
  want[0].value = "ap";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no up server has the labels zone=ap");
}
END_TEST

START_TEST(test_placement_named_and_preferred_server) {
  static const uint64_t one[] = {4};
  struct brk_request req = {0};
  struct brk_decision d;
  struct brk_session *s;

  reg("a", 1, one, NULL);
  reg("b", 1, one, NULL);
  /* b is fuller than a, but named. */
  req.server = "b";
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "b");
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "b");
  /* Preferred: b while it fits, even though a is emptier. */
  req.server = NULL;
  req.prefer_server = "b";
  s = take(ALICE, 2 * GiB, &req);
  ck_assert_str_eq(s->server->name, "b");
  /* b is full: anywhere else. */
  s = take(ALICE, 1 * GiB, &req);
  ck_assert_str_eq(s->server->name, "a");
  /* Named and full: not enough memory, naming the largest free. */
  req.prefer_server = NULL;
  req.server = "b";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "not enough free memory: 1 GiB asked for, the "
                        "largest free is 0 bytes (GPU-b-0 on b)");
  req.server = "zz";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no server named zz");
  /* A preferred server that does not exist is no obstacle. */
  req.server = NULL;
  req.prefer_server = "zz";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), 0);
}
END_TEST

START_TEST(test_placement_quota_sessions) {
  static const uint64_t one[] = {64};
  struct brk_decision d;
  struct brk_session *s;

  reg("a", 1, one, NULL);
  take(BOB, 1 * GiB, NULL);
  s = take(BOB, 1 * GiB, NULL);
  ck_assert_uint_eq(pool.tenants[BOB].sessions, 2);
  ck_assert_int_eq(try_place(BOB, 1 * GiB, NULL, &d), GP_EQUOTA);
  ck_assert_str_eq(why, "quota: tenant bob has 2 sessions, its max_sessions "
                        "is 2");
  /* Others are not limited by bob's quota. */
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), 0);
  /* An end frees the slot. */
  ck_assert_int_eq(brk_pool_end(&pool, s->id, NULL), 0);
  ck_assert_int_eq(try_place(BOB, 1 * GiB, NULL, &d), 0);
}
END_TEST

START_TEST(test_placement_quota_memory) {
  static const uint64_t one[] = {64};
  struct brk_decision d;

  reg("a", 1, one, NULL);
  take(CAROL, 2 * GiB, NULL);
  /* 2 + 1 = 3: exactly the limit, allowed. */
  take(CAROL, 1 * GiB, NULL);
  ck_assert_uint_eq(pool.tenants[CAROL].memory, 3 * GiB);
  ck_assert_int_eq(try_place(CAROL, 1, NULL, &d), GP_EQUOTA);
  ck_assert_ptr_nonnull(strstr(why, "max_memory of 3 GiB"));
  /* A request over the limit by itself, on an empty account. */
  brk_pool_free(&pool);
  setup();
  reg("a", 1, one, NULL);
  ck_assert_int_eq(try_place(CAROL, 4 * GiB, NULL, &d), GP_EQUOTA);
  /* The default memory (1 GiB) counts. */
  ck_assert_int_eq(try_place(CAROL, 0, NULL, &d), 0);
  ck_assert_uint_eq(d.memory, 1 * GiB);
}
END_TEST

START_TEST(test_placement_down_and_draining_skipped) {
  static const uint64_t one[] = {8};
  struct brk_server *a, *b;
  struct brk_decision d;

  a = reg_sessions("a", 1, one, NULL, NULL, 0, 0);
  b = reg_sessions("b", 1, one, NULL, NULL, 0, 500);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), 0);
  ck_assert_ptr_eq(d.server, a);
  /* a's last heartbeat at 0, b's at 500: at 1000 with 1000 ms, a only. */
  ck_assert_uint_eq(brk_pool_mark_down(&pool, 999, 1000, NULL, NULL), 0);
  ck_assert_uint_eq(brk_pool_mark_down(&pool, 1000, 1000, NULL, NULL), 1);
  ck_assert(!a->up);
  ck_assert(b->up);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), 0);
  ck_assert_ptr_eq(d.server, b);
  brk_pool_drain(&pool, b, true);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no server is up (2 registered: 1 down, 1 "
                        "draining)");
  /* A heartbeat brings a back. */
  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, NULL, 0, NULL, 0, 1100), 0);
  ck_assert(a->up);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), 0);
  ck_assert_ptr_eq(d.server, a);
  brk_pool_drain(&pool, b, false);
  ck_assert(!b->draining);
}
END_TEST

START_TEST(test_placement_enofit_reasons) {
  static const uint64_t small[] = {2, 3};
  struct brk_request req = {0};
  struct brk_label lab = {"zone", "eu"};
  struct brk_decision d;
  struct brk_server *a;

  /* 1. Nothing registered. */
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no server registered");
  a = reg("a", 2, small, "zone=us");
  /* 2. None up. */
  brk_pool_mark_down(&pool, 10000, 1000, NULL, NULL);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, NULL, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no server is up (1 registered: 1 down, 0 "
                        "draining)");
  req.server = "a";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "server a is down");
  brk_pool_heartbeat(&pool, a, NULL, 0, NULL, 0, 10000);
  brk_pool_drain(&pool, a, true);
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "server a is draining");
  brk_pool_drain(&pool, a, false);
  /* 3. The name, then the labels. */
  req.server = "b";
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no server named b");
  req.server = "a";
  req.labels = &lab;
  req.nlabels = 1;
  ck_assert_int_eq(try_place(ALICE, 1 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "server a does not have the labels zone=eu");
  /* 4. Memory: the largest free amount is named. */
  req.labels = NULL;
  req.nlabels = 0;
  req.server = NULL;
  ck_assert_int_eq(try_place(ALICE, 4 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "not enough free memory: 4 GiB asked for, the "
                        "largest free is 3 GiB (GPU-a-1 on a)");
  /* The most specific reason: labels that match nowhere beat memory. */
  req.labels = &lab;
  req.nlabels = 1;
  ck_assert_int_eq(try_place(ALICE, 4 * GiB, &req, &d), GP_ENOFIT);
  ck_assert_str_eq(why, "no up server has the labels zone=eu");
  /* Other refusals. */
  ck_assert_int_eq(try_place(-1, 1, NULL, &d), GP_EAUTH);
  req.gpu_count = 2;
  ck_assert_int_eq(brk_place(&pool, &(struct brk_request){.tenant = 0,
                                                          .gpu_count = 2},
                             &d, why, sizeof(why)), GP_ENOTSUP);
}
END_TEST

START_TEST(test_placement_expiry_of_grants) {
  static const uint64_t one[] = {4};
  struct brk_server *a = reg("a", 1, one, NULL);
  struct brk_session_info run = {0};
  struct brk_request req = {.tenant = ALICE, .memory = 1 * GiB};
  struct brk_decision d;
  struct brk_session *s1, *s2;

  ck_assert_int_eq(brk_place(&pool, &req, &d, why, sizeof(why)), 0);
  ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, 11, 100, NULL, 0, &s1),
                   0);
  ck_assert_int_eq(brk_place(&pool, &req, &d, why, sizeof(why)), 0);
  ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, 12, 100, NULL, 0, &s2),
                   0);
  /* The id is taken. */
  ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, 12, 100, NULL, 0, &s2),
                   GP_EINVAL);
  ck_assert_uint_eq(a->gpus[0].reserved, 2 * GiB);
  /* 12 is seen running: it stays past its expiry. */
  run.session_id = 12;
  run.tenant = "alice";
  run.gpu_uuid = "GPU-a-0";
  run.memory_limit = 1 * GiB;
  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, NULL, 0, &run, 1, 5), 0);
  ck_assert_int_eq(brk_pool_session(&pool, 12)->state, BRK_RUNNING);
  ck_assert_uint_eq(brk_pool_expire(&pool, 99, 0, NULL, NULL), 0);
  ck_assert_uint_eq(brk_pool_expire(&pool, 100, 0, NULL, NULL), 1);
  ck_assert_ptr_null(brk_pool_session(&pool, 11));
  ck_assert_ptr_nonnull(brk_pool_session(&pool, 12));
  ck_assert_uint_eq(a->gpus[0].reserved, 1 * GiB);
  ck_assert_uint_eq(a->gpus[0].sessions, 1);
  ck_assert_uint_eq(pool.tenants[ALICE].sessions, 1);
  /* A heartbeat that no longer lists it releases it. */
  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, NULL, 0, NULL, 0, 6), 1);
  ck_assert_ptr_null(brk_pool_session(&pool, 12));
  ck_assert_uint_eq(a->gpus[0].reserved, 0);
  ck_assert_uint_eq(pool.tenants[ALICE].memory, 0);
  ck_assert_uint_eq(pool.nsessions, 0);
}
END_TEST

/* A grant used just before it expired is kept for the grace (the time a
 * heartbeat takes to list it). */
START_TEST(test_placement_expiry_grace) {
  static const uint64_t one[] = {4};
  struct brk_server *a = reg("a", 1, one, NULL);
  struct brk_request req = {.tenant = ALICE, .memory = 1 * GiB};
  struct brk_decision d;
  struct brk_session *s;

  ck_assert_int_eq(brk_place(&pool, &req, &d, why, sizeof(why)), 0);
  ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, 7, 100, NULL, 0, &s), 0);
  ck_assert_uint_eq(brk_pool_expire(&pool, 100, 3, NULL, NULL), 0);
  ck_assert_uint_eq(brk_pool_expire(&pool, 102, 3, NULL, NULL), 0);
  ck_assert_uint_eq(a->gpus[0].reserved, 1 * GiB);
  ck_assert_uint_eq(brk_pool_expire(&pool, 103, 3, NULL, NULL), 1);
  ck_assert_uint_eq(a->gpus[0].reserved, 0);
  /* A grace that would overflow the expiry saturates: never dropped. */
  ck_assert_int_eq(brk_place(&pool, &req, &d, why, sizeof(why)), 0);
  ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, 8, 100, NULL, 0, &s), 0);
  ck_assert_uint_eq(brk_pool_expire(&pool, UINT64_MAX - 1, UINT64_MAX, NULL,
                                    NULL), 0);
}
END_TEST

/* Listed sessions with a memory limit of 0 or above their GPU's memory
 * are ignored; sums of huge limits saturate instead of wrapping. */
START_TEST(test_placement_listed_limits) {
  static const uint64_t one[] = {4};
  struct brk_session_info ss[3] = {
    {.session_id = 1, .tenant = "alice", .gpu_uuid = "GPU-a-0",
     .memory_limit = 0},
    {.session_id = 2, .tenant = "alice", .gpu_uuid = "GPU-a-0",
     .memory_limit = 5 * GiB},
    {.session_id = 3, .tenant = "alice", .gpu_uuid = "GPU-a-0",
     .memory_limit = 1 * GiB},
  };
  struct brk_server *a = reg_sessions("a", 1, one, NULL, ss, 3, 0), *h;
  struct brk_gpu_info big = {"GPU-h-0", "Huge", "", UINT64_MAX, 9, 0};
  struct brk_register r = {.name = "h", .address = "127.0.0.1:1",
                           .version = "t", .gpus = &big, .ngpus = 1};
  struct brk_session_info hs[2] = {
    {.session_id = 10, .tenant = "alice", .gpu_uuid = "GPU-h-0",
     .memory_limit = 3ull << 62},
    {.session_id = 11, .tenant = "alice", .gpu_uuid = "GPU-h-0",
     .memory_limit = 3ull << 62},
  };
  struct brk_request req = {.tenant = ALICE, .memory = 1 * GiB,
                            .server = "h"};
  struct brk_decision d;

  ck_assert_ptr_null(brk_pool_session(&pool, 1));
  ck_assert_ptr_null(brk_pool_session(&pool, 2));
  ck_assert_ptr_nonnull(brk_pool_session(&pool, 3));
  ck_assert_uint_eq(a->gpus[0].reserved, 1 * GiB);
  ck_assert_uint_eq(a->gpus[0].sessions, 1);
  /* The same in a heartbeat: 2 is not adopted, 3 stays. */
  ck_assert_int_eq(brk_pool_heartbeat(&pool, a, NULL, 0, ss, 3, 1), 0);
  ck_assert_ptr_null(brk_pool_session(&pool, 2));
  ck_assert_uint_eq(a->gpus[0].reserved, 1 * GiB);
  ck_assert_uint_eq(pool.tenants[ALICE].memory, 1 * GiB);

  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &h, why, sizeof(why)), 0);
  ck_assert_int_eq(brk_pool_heartbeat(&pool, h, NULL, 0, hs, 2, 1), 0);
  ck_assert_uint_eq(h->gpus[0].reserved, UINT64_MAX);
  ck_assert_uint_eq(pool.tenants[ALICE].memory, UINT64_MAX);
  /* Full: a wrapped sum (2^63) would have left room. */
  ck_assert_int_eq(brk_place(&pool, &req, &d, why, sizeof(why)), GP_ENOFIT);
  ck_assert_int_eq(brk_pool_end(&pool, 10, h), 0);
  ck_assert_int_eq(brk_pool_end(&pool, 11, h), 0);
  ck_assert_uint_eq(h->gpus[0].reserved, 0);
  /* A saturated sum does not come back exactly (alice's 1 GiB on a was
   * absorbed), but it does not wrap below 0 either. */
  ck_assert_uint_le(pool.tenants[ALICE].memory, 1 * GiB);
  ck_assert_uint_eq(a->gpus[0].reserved, 1 * GiB);
}
END_TEST

START_TEST(test_placement_reregistration_adopts_sessions) {
  static const uint64_t two[] = {8, 8}, one[] = {8};
  struct brk_session_info ss[2] = {
    {.session_id = 77, .tenant = "alice", .gpu_uuid = "GPU-a-1",
     .memory_limit = 2 * GiB, .memory_used = 5, .idle_ms = 9},
    {.session_id = 78, .tenant = "stranger", .gpu_uuid = "GPU-a-0",
     .memory_limit = 1 * GiB},
  };
  struct brk_server *a, *a2;
  struct brk_session *g, *s;

  /* A restarted broker learns the sessions a server lists. */
  a = reg_sessions("a", 2, two, NULL, ss, 2, 0);
  s = brk_pool_session(&pool, 77);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(s->state, BRK_RUNNING);
  ck_assert_str_eq(uuid_of(s), "GPU-a-1");
  ck_assert_uint_eq(s->memory_used, 5);
  ck_assert_uint_eq(a->gpus[1].reserved, 2 * GiB);
  ck_assert_uint_eq(pool.tenants[ALICE].memory, 2 * GiB);
  ck_assert_int_eq(brk_pool_session(&pool, 78)->tenant_index, -1);
  /* A granted session waiting for admission on a-0. */
  g = take(ALICE, 1 * GiB, NULL);
  ck_assert_str_eq(uuid_of(g), "GPU-a-0");
  /* The server restarts with one GPU, running only 78 (now on a-0 still):
   * 77 is gone (not listed), the grant is kept (its GPU is offered). */
  a2 = reg_sessions("a", 1, one, "new=1", &ss[1], 1, 10);
  ck_assert_ptr_eq(a2, a);
  ck_assert_uint_eq(pool.nservers, 1);
  ck_assert_uint_eq(a->ngpus, 1);
  ck_assert_uint_eq(a->nlabels, 1);
  ck_assert_ptr_null(brk_pool_session(&pool, 77));
  ck_assert_ptr_nonnull(brk_pool_session(&pool, 78));
  ck_assert_ptr_nonnull(brk_pool_session(&pool, g->id));
  ck_assert_int_eq(g->state, BRK_GRANTED);
  ck_assert_uint_eq(a->gpus[0].reserved, 2 * GiB);
  ck_assert_uint_eq(a->gpus[0].sessions, 2);
  ck_assert_uint_eq(pool.tenants[ALICE].memory, 1 * GiB);
  ck_assert_uint_eq(pool.tenants[ALICE].sessions, 1);
  /* Restart with no GPU a-0: the grant on it goes too. */
  static const uint64_t other[] = {8};
  struct brk_gpu_info gi = {"GPU-other", "x", "", 8 * GiB, 8, 0};
  struct brk_register r = {.name = "a", .address = "h:1", .gpus = &gi,
                           .ngpus = 1};
  (void)other;
  ck_assert_int_eq(brk_pool_register(&pool, &r, 20, &a2, why, sizeof(why)),
                   0);
  ck_assert_uint_eq(pool.nsessions, 0);
  ck_assert_uint_eq(pool.tenants[ALICE].sessions, 0);
  ck_assert_uint_eq(a->gpus[0].reserved, 0);
}
END_TEST

START_TEST(test_placement_session_moves_between_servers) {
  static const uint64_t one[] = {8};
  struct brk_session_info si = {.session_id = 5, .tenant = "alice",
                                .gpu_uuid = "GPU-a-0",
                                .memory_limit = 1 * GiB};
  struct brk_server *a, *b;

  a = reg_sessions("a", 1, one, NULL, &si, 1, 0);
  b = reg("b", 1, one, NULL);
  si.gpu_uuid = "GPU-b-0";
  ck_assert_int_eq(brk_pool_heartbeat(&pool, b, NULL, 0, &si, 1, 1), 0);
  ck_assert_ptr_eq(brk_pool_session(&pool, 5)->server, b);
  ck_assert_uint_eq(a->gpus[0].reserved, 0);
  ck_assert_uint_eq(a->nsessions, 0);
  ck_assert_uint_eq(b->gpus[0].reserved, 1 * GiB);
  ck_assert_uint_eq(pool.tenants[ALICE].sessions, 1);
  /* An end from the wrong server is refused. */
  ck_assert_int_eq(brk_pool_end(&pool, 5, a), GP_ENOENT);
  ck_assert_int_eq(brk_pool_end(&pool, 5, b), 0);
  ck_assert_int_eq(brk_pool_end(&pool, 5, b), GP_ENOENT);
}
END_TEST

START_TEST(test_placement_register_refusals) {
  struct brk_gpu_info g[2] = {{"GPU-x", "", "", GiB, 8, 0},
                              {"GPU-x", "", "", GiB, 8, 0}};
  struct brk_label l[2] = {{"k", "v"}, {"k", "w"}};
  struct brk_session_info si = {.session_id = 1, .gpu_uuid = "GPU-nope"};
  struct brk_register r = {.name = "bad name", .address = "h:1", .gpus = g,
                           .ngpus = 1};
  struct brk_server *s;

  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &s, why, sizeof(why)),
                   GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(why, "is not 1 to 63"));
  r.name = "ok";
  r.address = "";
  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &s, why, sizeof(why)),
                   GP_EINVAL);
  r.address = "h:1";
  r.ngpus = 2;
  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &s, why, sizeof(why)),
                   GP_EINVAL);
  ck_assert_str_eq(why, "server ok: GPU GPU-x listed twice");
  r.ngpus = 1;
  r.labels = l;
  r.nlabels = 2;
  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &s, why, sizeof(why)),
                   GP_EINVAL);
  ck_assert_str_eq(why, "server ok: label 'k' given twice");
  r.nlabels = 0;
  r.sessions = &si;
  r.nsessions = 1;
  ck_assert_int_eq(brk_pool_register(&pool, &r, 0, &s, why, sizeof(why)),
                   GP_EINVAL);
  ck_assert_ptr_nonnull(strstr(why, "which it does not offer"));
  ck_assert_uint_eq(pool.nservers, 0);
  ck_assert(!brk_name_valid(""));
  ck_assert(brk_name_valid("pool-01.a_b"));
  ck_assert(!brk_name_valid("x/y"));
}
END_TEST

/* Many sessions through the index: growth, deletion with backward shift,
 * and lookups that stay right throughout. */
START_TEST(test_placement_index_many_sessions) {
  static const uint64_t big[] = {1024};
  struct brk_server *a = reg("a", 1, big, NULL);
  struct brk_decision d = {.server = a, .gpu = 0, .memory = MiB};
  struct brk_session *s;
  uint64_t id;
  uint32_t n = 0, pos = 0;

  for (id = 1; id <= 5000; id++)
    ck_assert_int_eq(brk_pool_grant(&pool, &d, ALICE, id * 7919, 10, NULL, 0,
                                    &s), 0);
  for (id = 1; id <= 5000; id += 2)
    ck_assert_int_eq(brk_pool_end(&pool, id * 7919, NULL), 0);
  for (id = 1; id <= 5000; id++)
    ck_assert((brk_pool_session(&pool, id * 7919) != NULL) == (id % 2 == 0));
  while (brk_pool_next_session(&pool, &pos))
    n++;
  ck_assert_uint_eq(n, 2500);
  ck_assert_uint_eq(a->gpus[0].sessions, 2500);
  ck_assert_uint_eq(a->gpus[0].reserved, 2500 * MiB);
  ck_assert_uint_eq(brk_pool_expire(&pool, 10, 0, NULL, NULL), 2500);
  ck_assert_uint_eq(pool.nsessions, 0);
  ck_assert_uint_eq(pool.tenants[ALICE].sessions, 0);
}
END_TEST

static Suite *placement_suite(void) {
  Suite *s = suite_create("placement");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_placement_score_order_every_step);
  tcase_add_test(tc, test_placement_first_steps_by_hand);
  tcase_add_test(tc, test_placement_exact_fractions);
  tcase_add_test(tc, test_placement_ties_sessions_utilisation_names);
  tcase_add_test(tc, test_placement_utilisation_from_heartbeat);
  tcase_add_test(tc, test_placement_labels);
  tcase_add_test(tc, test_placement_named_and_preferred_server);
  tcase_add_test(tc, test_placement_quota_sessions);
  tcase_add_test(tc, test_placement_quota_memory);
  tcase_add_test(tc, test_placement_down_and_draining_skipped);
  tcase_add_test(tc, test_placement_enofit_reasons);
  tcase_add_test(tc, test_placement_expiry_of_grants);
  tcase_add_test(tc, test_placement_expiry_grace);
  tcase_add_test(tc, test_placement_listed_limits);
  tcase_add_test(tc, test_placement_reregistration_adopts_sessions);
  tcase_add_test(tc, test_placement_session_moves_between_servers);
  tcase_add_test(tc, test_placement_register_refusals);
  tcase_add_test(tc, test_placement_index_many_sessions);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(placement_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
