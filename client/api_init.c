/* cuInit and cuDriverGetVersion. */
#include "client.h"
#include "trace.h"

static CUresult do_init(unsigned int flags) {
  struct gp__client *c = gp__client();
  if (flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (atomic_load(&c->forked))
    return CUDA_ERROR_NOT_INITIALIZED;
  gp__lock();
  CUresult r;
  switch (atomic_load(&c->init)) {
  case GP__INIT_OK:
    r = atomic_load(&c->dead) ? CUDA_ERROR_DEVICE_UNAVAILABLE : CUDA_SUCCESS;
    break;
  case GP__INIT_FAILED:
    /* Sticky, as in the real driver: a failed cuInit is not retried. */
    r = c->init_result;
    break;
  default:
    r = gp__connect_locked(c);
    c->init_result = r;
    atomic_store(&c->init, r == CUDA_SUCCESS ? GP__INIT_OK : GP__INIT_FAILED);
    break;
  }
  gp__unlock();
  return r;
}

GP_API CUresult cuInit(unsigned int Flags) {
  CUresult r = do_init(Flags);
  GP_TRACE(r, "flags=%u", Flags);
  return r;
}

/* The lowest driver version reported after cuInit: cudart refuses a
 * driver older than its own major version (cudaErrorInsufficientDriver),
 * so a server whose driver (or emulation) says less would make every
 * runtime-API program built with this toolkit fail. The server's own
 * version still shows through when it is newer. */
#define GP__MIN_DRIVER_VERSION ((CUDA_VERSION / 1000) * 1000)

int gp__driver_version(void) {
  struct gp__client *c = gp__client();
  if (atomic_load(&c->init) != GP__INIT_OK)
    return CUDA_VERSION;
  return c->driver_version > GP__MIN_DRIVER_VERSION ? c->driver_version
                                                    : GP__MIN_DRIVER_VERSION;
}

/* Before cuInit: the CUDA version this library was built against. After:
 * what the server says its driver is, raised to GP__MIN_DRIVER_VERSION.
 * Never needs the connection. */
static CUresult do_driver_version(int *v) {
  if (v == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  *v = gp__driver_version();
  return CUDA_SUCCESS;
}

GP_API CUresult cuDriverGetVersion(int *driverVersion) {
  CUresult r = do_driver_version(driverVersion);
  GP_TRACE(r, "driverVersion=%d", GP_OUT(r, driverVersion));
  return r;
}
