/* libFuzzer target for the emu backend's PTX front end
 * (server/backend/emu/ptx_lex.c, ptx_parse.c): the input is PTX text as a
 * client might send it in a module image. Loading must never crash, read
 * outside the text or leak, whatever the bytes; a module that loads must
 * answer its queries consistently. Kernels are not run (a fuzzed kernel
 * may loop forever). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/emu/ptx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct ptx_module *m = NULL;
  char err[512];
  int rc;

  rc = ptx_module_load((const char *)data, size, &m, err, sizeof(err));
  if (rc != PTX_OK) {
    if (m != NULL || rc > 0 || memchr(err, '\0', sizeof(err)) == NULL)
      __builtin_trap();
    return 0;
  }
  if (m == NULL)
    __builtin_trap();
  /* A kernel name the text does not have, and globals likewise. */
  if (ptx_module_kernel(m, "\x01no such kernel") != NULL)
    __builtin_trap();
  ptx_module_free(m);
  return 0;
}
