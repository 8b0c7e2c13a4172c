/* The table of compiled-in backends. */
#include <string.h>

#include "backend.h"

static const struct gp_backend_ops *const backends[] = {
  &gp__backend_emu,
  &gp__backend_cuda,
};

const struct gp_backend_ops *gp__backend_find(const char *name) {
  size_t i;

  for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
    if (strcmp(backends[i]->name, name) == 0)
      return backends[i];
  return NULL;
}
