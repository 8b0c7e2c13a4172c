/* libFuzzer target for the emu backend's image reader
 * (server/backend/emu/fatbin.c): the input is a module image as a client
 * might send it to cuModuleLoadData. It is classified, its fatbin entries
 * are listed, and its PTX is extracted; the reader must never read outside
 * the input, and what it reports must hold together. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emu/fatbin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char msg[EMU_FATBIN_MSG_SIZE];
  enum emu_image_kind kind;
  struct emu_fatbin_iter it;
  struct emu_fatbin_entry e;
  char *ptx = NULL;
  size_t len = 0;
  int rc;

  rc = emu_image_classify(data, size, &kind, msg, sizeof(msg));
  if (rc == 0 && kind == EMU_IMAGE_FATBIN) {
    emu_fatbin_iter_init(&it, data, size);
    while ((rc = emu_fatbin_next(&it, &e, msg, sizeof(msg))) == 1) {
      if (e.payload_offset > size || e.payload_size > size - e.payload_offset)
        __builtin_trap();
      if (e.compressed_size > e.payload_size)
        __builtin_trap();
      if (e.header_offset + e.header_size != e.payload_offset)
        __builtin_trap();
    }
    if (rc > 0 || emu_fatbin_next(&it, &e, msg, sizeof(msg)) != 0)
      __builtin_trap();
  }

  rc = emu_image_get_ptx(data, size, &ptx, &len, msg, sizeof(msg));
  if (rc == 0) {
    if (ptx == NULL || strlen(ptx) != len || len > EMU_FATBIN_PTX_MAX)
      __builtin_trap();
    free(ptx);
  } else {
    if (rc > 0 || ptx != NULL || memchr(msg, '\0', sizeof(msg)) == NULL ||
        msg[0] == '\0')
      __builtin_trap();
  }
  return 0;
}
