/* cuGetErrorName and cuGetErrorString, from the table generated from
 * cuda.h (cuerrors.c). Both work before cuInit and after the connection is
 * lost: they never need the server. */
#include <stddef.h>

#include "cuapi.h"
#include "cuerrors.h"
#include "trace.h"

const struct gp__cu_error *gp__cu_error_find(int value) {
  int lo = 0, hi = gp__cu_nerrors - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (gp__cu_errors[mid].value == value)
      return &gp__cu_errors[mid];
    if (gp__cu_errors[mid].value < value)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

const char *gp__cu_error_name(int value) {
  const struct gp__cu_error *e = gp__cu_error_find(value);
  return e != NULL ? e->name : "CUDA_ERROR_UNRECOGNIZED";
}

/* As the real driver: an unknown code is CUDA_ERROR_INVALID_VALUE with
 * *pStr set to NULL; a NULL pStr is CUDA_ERROR_INVALID_VALUE. */
static CUresult lookup(CUresult error, const char **pStr, bool name) {
  if (pStr == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  const struct gp__cu_error *e = gp__cu_error_find((int)error);
  if (e == NULL) {
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
  }
  *pStr = name ? e->name : e->desc;
  return CUDA_SUCCESS;
}

GP_API CUresult cuGetErrorName(CUresult error, const char **pStr) {
  CUresult r = lookup(error, pStr, true);
  GP_TRACE(r, "error=%d, pStr=\"%s\"", (int)error,
           r == CUDA_SUCCESS ? *pStr : "");
  return r;
}

GP_API CUresult cuGetErrorString(CUresult error, const char **pStr) {
  CUresult r = lookup(error, pStr, false);
  GP_TRACE(r, "error=%d, pStr=\"%s\"", (int)error,
           r == CUDA_SUCCESS ? *pStr : "");
  return r;
}
