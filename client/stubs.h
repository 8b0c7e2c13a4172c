/* The generated tables (stubs.c, procs.c) and what they call.
 *
 * This header must not include cuda.h: the generated files declare every
 * entry point without parameters, which would clash with its prototypes.
 */
#ifndef GP_CLIENT_STUBS_H
#define GP_CLIENT_STUBS_H

#include <stdatomic.h>
#include <stdint.h>

/* Says once, on stderr, "gpupool: |name| is not supported yet" (the first
 * caller that flips |*said| prints it), logs the call when tracing, and
 * returns CUDA_ERROR_NOT_SUPPORTED. Thread-safe. */
int gp__unsupported(const char *name, atomic_bool *said);

/* ---- cuGetProcAddress's table ----------------------------------------------
 *
 * Every function cuda.h declares (each exported by the library) has an
 * index i, sorted by name, the same in the three arrays below. */

typedef int (*gp__api_fn)(void);

/* The function's name. */
extern const char *const gp__api_names[];
/* The exported entry point, as the dynamic linker resolved it: a strong
 * definition in client/api_*.c when gpupool implements the function, else
 * the generated stub (procs.c). */
extern const gp__api_fn gp__api_fns[];
/* The generated stub's own address (stubs.c). gp__api_fns[i] equal to
 * gp__api_stubs[i] means "not implemented". */
extern const gp__api_fn gp__api_stubs[];

/* No per-thread default stream form. */
#define GP__PROC_NONE 0xFFFFu

/* One ABI variant of a base name: the CUDA version it appeared in (0 for a
 * name that cudaTypedefs.h does not describe: any version gets it), the
 * index of its entry point (GP__PROC_NONE for a variant the generator was
 * told cuda.h lacks: a look-up at that version finds nothing), and that of
 * its _ptds/_ptsz form or GP__PROC_NONE. */
struct gp__proc_variant {
  uint32_t version;
  uint16_t fn;
  uint16_t pt;
};

/* A base name, as cuGetProcAddress is asked for it: its variants are
 * gp__proc_variants[first .. first + n), oldest first. */
struct gp__proc {
  const char *name;
  uint16_t first;
  uint16_t n;
};

extern const struct gp__proc_variant gp__proc_variants[];
/* Sorted by name in strcmp order. */
extern const struct gp__proc gp__procs[];
extern const int gp__nprocs;

#endif
