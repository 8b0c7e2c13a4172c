/* Placement speed: broker/placement.c on 1,000 simulated servers,
 * in-process (see bench/README.md).
 *
 *   bench_placement [requests] [servers]
 *
 * Registers |servers| (default 1000) servers of 1 to 8 GPUs of 16, 24, 40,
 * 48 or 80 GiB, with zone and model labels, heartbeats giving each GPU a
 * utilisation, then makes |requests| (default 200000) placement decisions
 * (place + grant) with session ends interleaved so that about 4 sessions
 * per GPU stay live. Requests vary in memory (0.5 to 8 GiB), a fifth ask
 * for a label, one in twenty prefers a server. Prints decisions per second
 * and the time of one decision as a ratio against a baseline measured in
 * the same process: one linear pass over the same GPUs that reads each
 * GPU's free memory (the least any placement over every GPU must do).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpupool/errors.h"
#include "placement.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void) {
  /* xorshift64*: deterministic, so every run does the same work. */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The baseline: one pass over every GPU of every up server, reading its
 * free memory. Returns a sum so the pass cannot be optimised away. */
__attribute__((noinline)) static uint64_t linear_pass(
    const struct brk_pool *p, uint64_t mem) {
  uint64_t fits = 0;
  uint32_t i, k;

  for (i = 0; i < p->nservers; i++) {
    const struct brk_server *s = p->servers[i];
    if (!s->up || s->draining)
      continue;
    for (k = 0; k < s->ngpus; k++)
      fits += s->gpus[k].total_mem - s->gpus[k].reserved >= mem;
  }
  return fits;
}

int main(int argc, char **argv) {
  static const uint64_t sizes[] = {16, 24, 40, 48, 80};
  static const char *const zones[] = {"eu", "us", "ap"};
  static const char *const models[] = {"a100", "h100", "l40s", "t4"};
  static const uint64_t mems[] = {512 * MiB, 1 * GiB, 2 * GiB, 4 * GiB,
                                  8 * GiB};
  struct brk_tenant t = {.name = "bench"};
  struct brk_pool pool;
  uint64_t nreq = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
  uint32_t nsrv = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000;
  uint64_t *live, nlive = 0, target, placed = 0, nofit = 0, ends = 0;
  uint64_t next_id = 1, i, ngpus = 0, passes;
  volatile uint64_t sink = 0;
  char names[64], why[256];
  double t0, t_place, t_base;
  uint32_t s;

  if (nreq == 0 || nsrv == 0 || nsrv > BRK_MAX_SERVERS) {
    fprintf(stderr, "usage: bench_placement [requests] [servers (1 to "
            "%u)]\n", BRK_MAX_SERVERS);
    return 2;
  }
  if (brk_pool_init(&pool, &t, 1, 1 * GiB) != 0)
    return 1;
  for (s = 0; s < nsrv; s++) {
    struct brk_gpu_info gpus[8];
    struct brk_gpu_load loads[8];
    char uuids[8][40], addr[32];
    struct brk_label labels[2] = {
      {"zone", (char *)zones[s % 3]},
      {"model", (char *)models[(s / 3) % 4]},
    };
    struct brk_register r = {0};
    struct brk_server *srv;
    uint32_t n = 1 + (uint32_t)(next_rand() % 8), k;
    uint64_t size = sizes[next_rand() % 5] * GiB;

    for (k = 0; k < n; k++) {
      snprintf(uuids[k], sizeof(uuids[k]), "GPU-%08x-%04x", s, k);
      gpus[k] = (struct brk_gpu_info){uuids[k], "Simulated", "", size, 9, 0};
      loads[k] = (struct brk_gpu_load){uuids[k], 0,
                                       (int32_t)(next_rand() % 101) - 1};
    }
    snprintf(names, sizeof(names), "srv%04u", s);
    snprintf(addr, sizeof(addr), "10.0.%u.%u:7171", s / 250, s % 250);
    r.name = names;
    r.address = addr;
    r.version = "bench";
    r.labels = labels;
    r.nlabels = 2;
    r.gpus = gpus;
    r.ngpus = n;
    if (brk_pool_register(&pool, &r, 0, &srv, why, sizeof(why)) != 0 ||
        brk_pool_heartbeat(&pool, srv, loads, n, NULL, 0, 0) < 0) {
      fprintf(stderr, "register: %s\n", why);
      return 1;
    }
    ngpus += n;
  }
  target = ngpus * 4;
  live = calloc(target + 1, sizeof(*live));
  if (!live)
    return 1;

  t0 = now_s();
  for (i = 0; i < nreq; i++) {
    struct brk_label want = {"zone", (char *)zones[next_rand() % 3]};
    struct brk_request req = {.tenant = 0};
    struct brk_decision d;
    struct brk_session *ss;
    uint64_t roll = next_rand();

    req.memory = mems[roll % 5];
    if ((roll >> 8) % 5 == 0) {
      req.labels = &want;
      req.nlabels = 1;
    }
    if ((roll >> 16) % 20 == 0) {
      snprintf(names, sizeof(names), "srv%04u",
               (unsigned)((roll >> 24) % nsrv));
      req.prefer_server = names;
    }
    /* Interleaved ends: at the target, one random live session ends
     * before each request. */
    if (nlive >= target) {
      uint64_t k = next_rand() % nlive;
      if (brk_pool_end(&pool, live[k], NULL) != 0)
        return 1;
      live[k] = live[--nlive];
      ends++;
    }
    if (brk_place(&pool, &req, &d, why, sizeof(why)) != 0) {
      nofit++;
      continue;
    }
    if (brk_pool_grant(&pool, &d, 0, next_id, UINT64_MAX, NULL, 0, &ss) != 0)
      return 1;
    live[nlive++] = next_id++;
    placed++;
  }
  t_place = now_s() - t0;

  /* The baseline, on the pool as the run left it: enough passes to take
   * about as long as the decisions did. */
  passes = nreq;
  t0 = now_s();
  for (i = 0; i < passes; i++)
    sink += linear_pass(&pool, mems[i % 5]);
  t_base = now_s() - t0;

  printf("servers:                %u (%llu GPUs), %llu sessions live at "
         "the end\n", nsrv, (unsigned long long)ngpus,
         (unsigned long long)pool.nsessions);
  printf("requests:               %llu (%llu placed, %llu nothing fit), "
         "%llu ends interleaved\n", (unsigned long long)nreq,
         (unsigned long long)placed, (unsigned long long)nofit,
         (unsigned long long)ends);
  printf("decisions per second:   %.0f (%.2f us each, with the grant and "
         "the ends)\n", (double)nreq / t_place, t_place / (double)nreq * 1e6);
  printf("baseline linear pass:   %.2f us over the same GPUs\n",
         t_base / (double)passes * 1e6);
  printf("decision / pass:        %.2f\n",
         (t_place / (double)nreq) / (t_base / (double)passes));
  free(live);
  brk_pool_free(&pool);
  return 0;
}
