/* Reading the test inputs nvcc builds (their paths come in environment
 * variables set by tests/unit/meson.build). For Check test programs. */
#ifndef GP_TESTS_UNIT_BLOB_H
#define GP_TESTS_UNIT_BLOB_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct blob {
  uint8_t *data; /* |len| bytes and a NUL after them */
  size_t len;
};

/* Reads the file named by environment variable |var|, failing the test if
 * it cannot; the caller frees b.data. */
static inline struct blob blob_from_env(const char *var) {
  const char *path = getenv(var);
  struct blob b = {NULL, 0};
  FILE *f;
  long n;

  ck_assert_msg(path != NULL && path[0] != '\0', "%s is not set", var);
  f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  ck_assert_int_gt(n, 0);
  rewind(f);
  b.data = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(b.data);
  ck_assert_uint_eq(fread(b.data, 1, (size_t)n, f), (size_t)n);
  b.data[n] = 0;
  b.len = (size_t)n;
  fclose(f);
  return b;
}

#endif
