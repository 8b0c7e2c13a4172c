/* Shared by the runtime-API test programs tests/cuda/rt_*.cu: checks that
 * print what went wrong and end the program with status 1.
 *
 * Each program is self-checking: it exits 0 after printing a last line
 * "<name>: PASS", or prints what differed and exits 1. CK() wraps every
 * CUDA runtime call; EXPECT() and EXPECT_EQ() count a failed comparison and
 * carry on, so one run shows every difference; rt_finish() prints the
 * verdict. */
#ifndef RT_CHECK_H
#define RT_CHECK_H

#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

static int rt_failed;

#define CK(call)                                                          \
  do {                                                                    \
    cudaError_t ck_e_ = (call);                                           \
    if (ck_e_ != cudaSuccess) {                                           \
      fprintf(stderr, "%s:%d: %s failed: %s (%s, %d)\n", __FILE__,        \
              __LINE__, #call, cudaGetErrorString(ck_e_),                 \
              cudaGetErrorName(ck_e_), (int)ck_e_);                       \
      exit(1);                                                            \
    }                                                                     \
  } while (0)

/* A kernel launch: the launch itself, then what it did. */
#define CK_LAUNCH() CK(cudaGetLastError())

#define EXPECT(cond)                                                      \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      rt_failed++;                                                        \
    }                                                                     \
  } while (0)

/* Integers, printed as long long. */
#define EXPECT_EQ(a, b)                                                   \
  do {                                                                    \
    long long ex_a_ = (long long)(a), ex_b_ = (long long)(b);             \
    if (ex_a_ != ex_b_) {                                                 \
      fprintf(stderr, "%s:%d: expected %s == %s: %lld != %lld\n",         \
              __FILE__, __LINE__, #a, #b, ex_a_, ex_b_);                  \
      rt_failed++;                                                        \
    }                                                                     \
  } while (0)

/* Compares |n| elements, printing the first 8 differences and the count.
 * Exact comparison: the programs choose inputs whose results are exactly
 * representable, or repeat the device's roundings on the host. */
template <typename T>
static int rt_compare(const char *what, const T *got, const T *want,
                      size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (got[i] == want[i]) continue;
    if (bad < 8)
      fprintf(stderr, "%s[%zu]: got %.17g, want %.17g\n", what, i,
              (double)got[i], (double)want[i]);
    bad++;
  }
  if (bad != 0) {
    fprintf(stderr, "%s: %zu of %zu elements differ\n", what, bad, n);
    rt_failed++;
  }
  return bad == 0;
}

static int rt_finish(const char *name) {
  if (rt_failed != 0) {
    printf("%s: FAIL (%d checks failed)\n", name, rt_failed);
    return 1;
  }
  printf("%s: PASS\n", name);
  return 0;
}

#endif
