/* The helpers of benchutil.h. */
#include "benchutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The full plan: a few seconds per measurement on a 2-core machine
 * against the emulated device. */
const struct bu_plan bu_full_plan = {
    .quick = 0,
    .calls = 20000,
    .launches = 10000,
    .launch_reps = 9,
    .sizes = {4u << 10, 1u << 20, 64u << 20, 256u << 20},
    .size_reps = {2000, 100, 7, 3},
    .comp_size = 64u << 20,
    .comp_reps = 5,
    .vadd_n = 1u << 20,
    .vadd_iters = 10,
};

/* --quick: a crash test, figures from a few samples each. */
const struct bu_plan bu_quick_plan = {
    .quick = 1,
    .calls = 300,
    .launches = 1000,
    .launch_reps = 3,
    .sizes = {4u << 10, 64u << 10, 1u << 20, 4u << 20},
    .size_reps = {50, 20, 5, 3},
    .comp_size = 1u << 20,
    .comp_reps = 3,
    .vadd_n = 1u << 12,
    .vadd_iters = 3,
};

double bu_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

void bu_sort(double *v, int n) { qsort(v, (size_t)n, sizeof(*v), cmp_double); }

double bu_pct(const double *v, int n, double q) {
  /* Nearest rank: ceil(q/100 * n), 1-based. */
  int rank = (int)((q / 100.0) * n + 0.999999);

  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return v[rank - 1];
}

double bu_median(double *v, int n) {
  bu_sort(v, n);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void *bu_xmalloc(const char *prog, size_t n) {
  void *p = malloc(n ? n : 1);

  if (p == NULL) {
    fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
    exit(1);
  }
  return p;
}

const char *bu_size_label(size_t bytes, char *buf, size_t cap) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    snprintf(buf, cap, "%zuMiB", bytes >> 20);
  else if (bytes >= 1024 && bytes % 1024 == 0)
    snprintf(buf, cap, "%zuKiB", bytes >> 10);
  else
    snprintf(buf, cap, "%zuB", bytes);
  return buf;
}

void bu_fill_random(void *p, size_t n, uint64_t seed) {
  uint8_t *b = p;
  uint64_t x = seed | 1;
  size_t i = 0;

  for (; i + 8 <= n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    memcpy(b + i, &v, 8);
  }
  for (; i < n; i++) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
  }
}
