/* What the programs of scripts/bench.sh share: the clock, statistics over
 * samples, and the plan (the sizes and counts of each measurement), so
 * that a gpupool figure and its TCP baseline are taken over the same
 * sizes. See bench/README.md. */
#ifndef GP_BENCH_BENCHUTIL_H
#define GP_BENCH_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The copy sizes of figures (3) and (4) of scripts/bench.sh. */
#define BU_NSIZES 4

/* How much is measured: the full run, or --quick's. */
struct bu_plan {
  int quick;
  int calls;                   /* synchronous round trips timed */
  unsigned launches;           /* launches per launch-rate run */
  int launch_reps;             /* launch-rate runs */
  size_t sizes[BU_NSIZES];     /* bytes of each copy size */
  int size_reps[BU_NSIZES];    /* copies timed per size and direction */
  size_t comp_size;            /* bytes of the compression copies */
  int comp_reps;               /* ... copies timed per pattern */
  unsigned vadd_n;             /* floats per vector of the vectorAdd loop */
  int vadd_iters;              /* its iterations */
};

extern const struct bu_plan bu_full_plan, bu_quick_plan;

/* The 24-byte frame header of protocol/frame.h, and the size at which the
 * client's write buffer is flushed without a reply to wait for
 * (protocol/wire.c: half of GP_WIRE_WBUF_SIZE). */
#define BU_HEADER 24
#define BU_FLUSH_AT (128u << 10)

/* Seconds on the monotonic clock. */
double bu_now(void);

/* Sorts |v| (|n| values) in place. */
void bu_sort(double *v, int n);

/* The |q|th percentile (0-100) of |n| values that bu_sort() has sorted:
 * the smallest value with at least q% of the samples at or below it. */
double bu_pct(const double *v, int n, double q);

/* The median of |n| values; sorts |v|. */
double bu_median(double *v, int n);

/* malloc() that exits with a message naming |prog| when out of memory. */
void *bu_xmalloc(const char *prog, size_t n);

/* A size as the tables print it: "4KiB", "1MiB", "256MiB". */
const char *bu_size_label(size_t bytes, char *buf, size_t cap);

/* Fills |n| bytes with a deterministic pseudo-random sequence from |seed|
 * (xorshift64*): data no compressor can shrink. */
void bu_fill_random(void *p, size_t n, uint64_t seed);

#endif
