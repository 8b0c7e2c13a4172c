/* The CUresult table generated from cuda.h (cuerrors.c). */
#ifndef GP_CLIENT_CUERRORS_H
#define GP_CLIENT_CUERRORS_H

struct gp__cu_error {
  int value;
  const char *name; /* "CUDA_ERROR_INVALID_VALUE" */
  const char *desc; /* "invalid argument", as the real driver says it */
};

/* Every CUresult that cuda.h defines, sorted by value. */
extern const struct gp__cu_error gp__cu_errors[];
extern const int gp__cu_nerrors;

/* The table entry of |value|, or NULL when cuda.h defines no such code.
 * Thread-safe. */
const struct gp__cu_error *gp__cu_error_find(int value);

/* The name of |value| for messages and traces; "CUresult(<n>)" style text
 * is never returned: unknown codes give "CUDA_ERROR_UNRECOGNIZED". */
const char *gp__cu_error_name(int value);

#endif
