/* Device queries. All of them are answered from the handshake's device
 * table, without a round trip: cudart alone asks about a hundred of them at
 * start-up. The table is written once, before cuInit reports success, and
 * only read afterwards, so no lock is needed. */
#include <string.h>

#include "client.h"
#include "trace.h"

/* The device |dev|: CUDA_SUCCESS and |*out|, or CUDA_ERROR_INVALID_DEVICE.
 * The caller has checked gp__ready(). */
static CUresult get_device(CUdevice dev, const struct gp__device **out) {
  struct gp__client *c = gp__client();
  if (dev < 0 || dev >= c->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  *out = &c->devices[dev];
  return CUDA_SUCCESS;
}

int gp__dev_attr(const struct gp__ctx *ctx, CUdevice_attribute a, int def) {
  if ((int)a <= 0 || (int)a >= GP__NATTR)
    return def;
  int v = gp__client()->devices[ctx->device].attr[a];
  return v > 0 ? v : def;
}

static CUresult do_get_count(int *count) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (count == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  *count = gp__client()->ndevices;
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceGetCount(int *count) {
  CUresult r = do_get_count(count);
  GP_TRACE(r, "count=%d", GP_OUT(r, count));
  return r;
}

static CUresult do_get(CUdevice *device, int ordinal) {
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (device == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if (ordinal < 0 || ordinal >= gp__client()->ndevices)
    return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  CUresult r = do_get(device, ordinal);
  GP_TRACE(r, "device=%d, ordinal=%d", GP_OUT(r, device), ordinal);
  return r;
}

static CUresult do_get_name(char *name, int len, CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (name == NULL || len <= 0)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  /* Truncated to fit, always terminated, like the real driver. */
  size_t n = strlen(d->name);
  if (n > (size_t)len - 1)
    n = (size_t)len - 1;
  memcpy(name, d->name, n);
  name[n] = '\0';
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  CUresult r = do_get_name(name, len, dev);
  GP_TRACE(r, "name=\"%s\", len=%d, dev=%d", r == CUDA_SUCCESS ? name : "",
           len, dev);
  return r;
}

static CUresult do_get_uuid(CUuuid *uuid, CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (uuid == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  memcpy(uuid->bytes, d->uuid, sizeof(uuid->bytes));
  return CUDA_SUCCESS;
}

/* The two versions differ only for MIG instances (v2 gives the instance's
 * UUID); a pool device is never one, so both return the same bytes. */
GP_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) {
  CUresult r = do_get_uuid(uuid, dev);
  GP_TRACE(r, "uuid=%p, dev=%d", (void *)uuid, dev);
  return r;
}

GP_ALIAS(cuDeviceGetUuid_v2, cuDeviceGetUuid);

/* Only the size_t version: the legacy cuDeviceTotalMem writes an unsigned
 * int, which cannot hold any modern device's memory; it stays a stub. */
static CUresult do_total_mem(size_t *bytes, CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (bytes == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  *bytes = (size_t)d->total_mem;
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  CUresult r = do_total_mem(bytes, dev);
  GP_TRACE(r, "bytes=%zu, dev=%d", GP_OUT(r, bytes), dev);
  return r;
}

static CUresult do_get_attribute(int *pi, CUdevice_attribute attrib,
                                 CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (pi == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  /* An attribute this cuda.h does not define is an invalid value, as in
   * the real driver. One it defines but the server did not list reads 0
   * ("not supported" for the boolean ones). */
  if ((int)attrib <= 0 || (int)attrib >= GP__NATTR)
    return CUDA_ERROR_INVALID_VALUE;
  *pi = d->attr[attrib];
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib,
                                     CUdevice dev) {
  CUresult r = do_get_attribute(pi, attrib, dev);
  GP_TRACE(r, "pi=%d, attrib=%d, dev=%d", GP_OUT(r, pi), (int)attrib, dev);
  return r;
}

static CUresult do_compute_capability(int *major, int *minor, CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (major == NULL || minor == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  *major = d->attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR];
  *minor = d->attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceComputeCapability(int *major, int *minor,
                                          CUdevice dev) {
  CUresult r = do_compute_capability(major, minor, dev);
  GP_TRACE(r, "major=%d, minor=%d, dev=%d", GP_OUT(r, major),
           GP_OUT(r, minor), dev);
  return r;
}

static CUresult do_get_properties(CUdevprop *p, CUdevice dev) {
  const struct gp__device *d;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (p == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = get_device(dev, &d)) != CUDA_SUCCESS)
    return r;
  const int *a = d->attr;
  p->maxThreadsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
  p->maxThreadsDim[0] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X];
  p->maxThreadsDim[1] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y];
  p->maxThreadsDim[2] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z];
  p->maxGridSize[0] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X];
  p->maxGridSize[1] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y];
  p->maxGridSize[2] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z];
  p->sharedMemPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK];
  p->totalConstantMemory = a[CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY];
  p->SIMDWidth = a[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
  p->memPitch = a[CU_DEVICE_ATTRIBUTE_MAX_PITCH];
  p->regsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK];
  p->clockRate = a[CU_DEVICE_ATTRIBUTE_CLOCK_RATE];
  p->textureAlign = a[CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT];
  return CUDA_SUCCESS;
}

GP_API CUresult cuDeviceGetProperties(CUdevprop *prop, CUdevice dev) {
  CUresult r = do_get_properties(prop, dev);
  GP_TRACE(r, "prop=%p, dev=%d", (void *)prop, dev);
  return r;
}
