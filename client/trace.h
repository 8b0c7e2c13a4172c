/* GPUPOOL_TRACE=1: one line on stderr per driver call, with its arguments
 * and its result:
 *
 *   gpupool: cuMemAlloc_v2(dptr=0x7f0000000000, size=4096) = CUDA_SUCCESS
 *
 * Every implemented entry point ends with GP_TRACE(result, fmt, args...);
 * with tracing off that is one predictable branch on a flag, and the
 * arguments are not even evaluated. Output parameters are printed with the
 * value they received (0 when the call failed).
 */
#ifndef GP_CLIENT_TRACE_H
#define GP_CLIENT_TRACE_H

#include <stdbool.h>

#include "cuapi.h"

/* Set once, from GPUPOOL_TRACE, by the library's constructor before any
 * entry point can run, and never changed after. It is a plain global
 * rather than a field of struct gp__client because every entry point reads
 * it, and reading it must cost no more than a load. */
extern bool gp__trace_on;

/* Prints "gpupool: " and the formatted text as one line on stderr, in one
 * write. Any thread. */
void gp__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes "gpupool: FN(ARGS) = RESULT" as one write to stderr. */
void gp__trace(const char *fn, CUresult r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The trace line of a call that is not an entry point of its own (a slot
 * of an export table): |name| stands where the function's name would. */
#define GP_TRACE_AS(name, r, ...)                           \
  do {                                                      \
    if (__builtin_expect(gp__trace_on, 0))                  \
      gp__trace((name), (r), __VA_ARGS__);                  \
  } while (0)

#define GP_TRACE(r, ...) GP_TRACE_AS(__func__, r, __VA_ARGS__)

/* The value an output pointer received, for the trace: |*p| after a
 * successful call, else 0. */
#define GP_OUT(r, p) ((r) == CUDA_SUCCESS && (p) != NULL ? *(p) : 0)

#endif
