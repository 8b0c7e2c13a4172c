/* cuda.h as the driver itself sees it, for the files that define driver
 * entry points.
 *
 * __CUDA_API_VERSION_INTERNAL is how NVIDIA builds the driver: it turns off
 * the macros that rename a call to its newest version (cuMemAlloc to
 * cuMemAlloc_v2) and declares every legacy, versioned and per-thread-stream
 * (_ptds, _ptsz) entry point under its own name, so each definition below is
 * checked against the exact prototype the toolkit gives it.
 */
#ifndef GP_CLIENT_CUAPI_H
#define GP_CLIENT_CUAPI_H

#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>

/* Marks a definition as one of the library's exported entry points (the
 * library is built with hidden visibility; libcuda.vers exports cu*). */
#define GP_API __attribute__((visibility("default")))

/* Exports |variant| as a second name of the entry point |base|, defined in
 * the same file: for ABI variants that behave exactly alike (a cuX and cuX_v2
 * whose prototypes agree; not the _ptds/_ptsz forms, whose NULL stream is
 * another one: api_ptsz.c). The compiler checks that the toolkit declares
 * both with the same type. GPUPOOL_TRACE names |base|. */
#define GP_ALIAS(variant, base)                                             \
  extern __typeof__(base) variant                                           \
      __attribute__((visibility("default"), alias(#base)))

#endif
