/* The generated stubs (stubs.c) and what they call. */
#ifndef GP_CLIENT_STUBS_H
#define GP_CLIENT_STUBS_H

#include <stdatomic.h>

/* Says once, on stderr, "gpupool: |name| is not supported yet" (the first
 * caller that flips |*said| prints it), logs the call when tracing, and
 * returns CUDA_ERROR_NOT_SUPPORTED. Thread-safe. */
int gp__unsupported(const char *name, atomic_bool *said);

/* How many functions cuda.h declares, each exported by the library. */
extern const int gp__cuda_api_count;

#endif
