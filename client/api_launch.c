/* Kernel launches: cuLaunchKernel and cuLaunchKernelEx.
 *
 * A launch is checked here for everything the driver checks at call time
 * (the handles, the dimensions against the device's limits and the
 * function's, the dynamic shared memory, the way the parameters are
 * given), its parameters are packed into the layout the server reported
 * for the function (cuFuncGetParamInfo's), and it goes out as one
 * LAUNCH_KERNEL frame sent without waiting, the packed bytes as its
 * payload. What goes wrong while the kernel runs comes back as a deferred
 * error, returned by the next synchronising call, as with CUDA.
 *
 * The function may be a CUkernel (cudart launches those): it is resolved
 * to its function in the current context, the first launch there loading
 * the library and looking the kernel up (round trips that happen once).
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "trace.h"

/* Parameter buffers up to this size are packed on the stack; larger ones
 * (up to GP__MAX_PARAM_BYTES) on the heap, as a launch may come from a
 * thread with a small stack. */
#define GP__PARAM_STACK 1024

/* How many key/value pairs an `extra` list may hold before it is taken for
 * one that is not terminated. */
#define GP__EXTRA_MAX 64

/* What the launch attributes of cuLaunchKernelEx ask for beyond a plain
 * launch. */
struct launch_opts {
  /* Events recorded on the launch's stream after the kernel: the kernel's
   * completion is a correct (if late) moment for both the programmatic
   * event and the launch-completion event. */
  CUevent events[2];
  int nevents;
};

/* The errors after which a context is unusable until it is destroyed:
 * every later call in it returns the same error (cuda.h's descriptions of
 * these codes). */
static bool is_sticky(CUresult r) {
  switch (r) {
  case CUDA_ERROR_ILLEGAL_ADDRESS:
  case CUDA_ERROR_LAUNCH_TIMEOUT:
  case CUDA_ERROR_ASSERT:
  case CUDA_ERROR_HARDWARE_STACK_ERROR:
  case CUDA_ERROR_ILLEGAL_INSTRUCTION:
  case CUDA_ERROR_MISALIGNED_ADDRESS:
  case CUDA_ERROR_INVALID_ADDRESS_SPACE:
  case CUDA_ERROR_INVALID_PC:
  case CUDA_ERROR_LAUNCH_FAILED:
    return true;
  default:
    return false;
  }
}

CUresult gp__note_fault_locked(struct gp__client *c, CUresult r) {
  struct gp__ctx *ctx;
  (void)c;
  if (is_sticky(r) && gp__current_ctx(&ctx) == CUDA_SUCCESS &&
      ctx->fault == CUDA_SUCCESS)
    ctx->fault = r;
  return r;
}

/* The grid and block dimensions: none 0, none over the device's limits
 * (CUDA_ERROR_INVALID_VALUE, as the driver's "invalid configuration"), and
 * no more threads per block than the function can run
 * (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, as when its registers do not fit). */
static CUresult check_dims(const struct gp__func *f, const unsigned grid[3],
                           const unsigned block[3]) {
  static const CUdevice_attribute grid_attr[3] = {
      CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y,
      CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z};
  static const CUdevice_attribute block_attr[3] = {
      CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y,
      CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z};
  const struct gp__ctx *ctx = f->mod->ctx;
  /* A limit the server did not report (0) is not checked here; the server
   * checks. */
  for (int i = 0; i < 3; i++) {
    if (grid[i] == 0 || block[i] == 0)
      return CUDA_ERROR_INVALID_VALUE;
    unsigned g = (unsigned)gp__dev_attr(ctx, grid_attr[i], 0);
    unsigned b = (unsigned)gp__dev_attr(ctx, block_attr[i], 0);
    if ((g != 0 && grid[i] > g) || (b != 0 && block[i] > b))
      return CUDA_ERROR_INVALID_VALUE;
  }
  uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
  unsigned dev_max = (unsigned)gp__dev_attr(
      ctx, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 0);
  if (dev_max != 0 && threads > dev_max)
    return CUDA_ERROR_INVALID_VALUE;
  if (threads > (unsigned)f->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK])
    return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  return CUDA_SUCCESS;
}

/* Packs the parameters into |buf| (f->params_size bytes): from
 * |kernel_params|, one pointer per parameter, or else from the buffer an
 * `extra` list names. Returns CUDA_ERROR_INVALID_VALUE when they are not
 * given at all (for a function that has parameters), through a NULL
 * pointer, with an unknown `extra` key, or in a buffer smaller than the
 * function's. */
static CUresult pack_params(const struct gp__func *f, void **kernel_params,
                            void **extra, uint8_t *buf) {
  if (kernel_params != NULL) {
    /* Padding between parameters goes out as zeros, not stack garbage. */
    memset(buf, 0, f->params_size);
    for (uint32_t i = 0; i < f->nparams; i++) {
      if (kernel_params[i] == NULL)
        return CUDA_ERROR_INVALID_VALUE;
      memcpy(buf + f->params[i].offset, kernel_params[i], f->params[i].size);
    }
    return CUDA_SUCCESS;
  }
  if (extra == NULL)
    return f->params_size == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  /* Key/value pairs up to CU_LAUNCH_PARAM_END (which is NULL). */
  const void *src = NULL;
  const size_t *size = NULL;
  int i;
  for (i = 0; i < 2 * GP__EXTRA_MAX && extra[i] != CU_LAUNCH_PARAM_END;
       i += 2) {
    if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
      src = extra[i + 1];
    else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE)
      size = extra[i + 1];
    else
      return CUDA_ERROR_INVALID_VALUE;
  }
  if (i == 2 * GP__EXTRA_MAX)
    return CUDA_ERROR_INVALID_VALUE;
  if (f->params_size == 0)
    return CUDA_SUCCESS;
  if (src == NULL || size == NULL || *size < f->params_size)
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(buf, src, f->params_size);
  return CUDA_SUCCESS;
}

static CUresult launch(CUfunction h, const unsigned grid[3],
                       const unsigned block[3], unsigned shared, CUstream hs,
                       void **kernel_params, void **extra,
                       const struct launch_opts *opts, const char *api) {
  struct gp__client *c = gp__client();
  struct gp__ctx *ctx;
  uint8_t stack_buf[GP__PARAM_STACK];
  uint8_t *buf = stack_buf;
  uint64_t sid = 0;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;

  gp__lock();
  /* The stream before anything else is looked up: the launch must follow
   * the host functions queued before it, and waiting for them lets go of
   * the lock. A stream of another context is refused. */
  if ((r = gp__work_stream_locked(c, hs, true, GP__STREAM_OF_CTX, &ctx,
                                  &sid)) != CUDA_SUCCESS)
    goto out;
  /* A faulted context refuses all work, as on a GPU. Checked after the
   * wait above, during which another thread may have noted a fault. */
  if ((r = ctx->fault) != CUDA_SUCCESS)
    goto out;
  /* A CUkernel (what cudart launches) stands for its function in this
   * context: its library is loaded here at the first launch. */
  struct gp__func *f;
  if ((r = gp__func_resolve_locked(c, h, &f, api)) != CUDA_SUCCESS)
    goto out;
  /* A function belongs to the context its module was loaded in; the
   * driver does not launch it in another. */
  if (f->mod->ctx != ctx) {
    r = CUDA_ERROR_INVALID_HANDLE;
    goto out;
  }
  if (kernel_params != NULL && extra != NULL) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  if ((r = check_dims(f, grid, block)) != CUDA_SUCCESS)
    goto out;
  if (shared > (unsigned)f->attr[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES]) {
    r = CUDA_ERROR_INVALID_VALUE;
    goto out;
  }
  /* Thread block clusters are not supported yet; a required cluster of
   * one block is no cluster at all. */
  if (f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH] > 1 ||
      f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT] > 1 ||
      f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH] > 1) {
    r = CUDA_ERROR_NOT_SUPPORTED;
    goto out;
  }
  struct gp__event *ev[2];
  for (int i = 0; i < opts->nevents; i++) {
    ev[i] = (struct gp__event *)gp__handles_find(&c->handles, opts->events[i],
                                                 GP__KIND_EVENT);
    /* The event must be of the stream's context, as for cuEventRecord. */
    if (ev[i] == NULL || ev[i]->ctx != ctx) {
      r = CUDA_ERROR_INVALID_HANDLE;
      goto out;
    }
  }
  if (f->params_size > sizeof(stack_buf) &&
      (buf = malloc(f->params_size)) == NULL) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  if ((r = pack_params(f, kernel_params, extra, buf)) != CUDA_SUCCESS)
    goto out;

  Gpupool__LaunchKernel m = GPUPOOL__LAUNCH_KERNEL__INIT;
  m.ctx = ctx->id;
  m.function = f->id;
  m.grid_x = grid[0];
  m.grid_y = grid[1];
  m.grid_z = grid[2];
  m.block_x = block[0];
  m.block_y = block[1];
  m.block_z = block[2];
  m.shared_mem = shared;
  m.stream = sid;
  r = gp__send_locked(c, GP_MSG_LAUNCH_KERNEL, &m.base,
                      f->params_size ? buf : NULL, f->params_size, true, NULL);
  for (int i = 0; r == CUDA_SUCCESS && i < opts->nevents; i++) {
    Gpupool__EventRecord er = GPUPOOL__EVENT_RECORD__INIT;
    er.event = ev[i]->id;
    er.stream = sid;
    r = gp__send_locked(c, GP_MSG_EVENT_RECORD, &er.base, NULL, 0, true,
                        NULL);
    if (r == CUDA_SUCCESS)
      ev[i]->recorded = true;
  }
out:
  gp__unlock();
  if (buf != stack_buf)
    free(buf);
  return r;
}

GP_API CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX,
                               unsigned int gridDimY, unsigned int gridDimZ,
                               unsigned int blockDimX, unsigned int blockDimY,
                               unsigned int blockDimZ,
                               unsigned int sharedMemBytes, CUstream hStream,
                               void **kernelParams, void **extra) {
  const unsigned grid[3] = {gridDimX, gridDimY, gridDimZ};
  const unsigned block[3] = {blockDimX, blockDimY, blockDimZ};
  const struct launch_opts none = {.nevents = 0};
  CUresult r = launch(f, grid, block, sharedMemBytes, hStream, kernelParams,
                      extra, &none, "cuLaunchKernel");
  GP_TRACE(r, "f=%p, grid=(%u,%u,%u), block=(%u,%u,%u), sharedMemBytes=%u, "
           "hStream=%p, kernelParams=%p, extra=%p", (void *)f, gridDimX,
           gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
           sharedMemBytes, (void *)hStream, (void *)kernelParams,
           (void *)extra);
  return r;
}

/* A cluster dimension that is no cluster: unset (all 0) or one block. */
static bool trivial_cluster(unsigned x, unsigned y, unsigned z) {
  return (x == 0 && y == 0 && z == 0) || (x == 1 && y == 1 && z == 1);
}

/* What the attributes of a cuLaunchKernelEx ask for. Those that are hints
 * or only allow more overlap than a serial execution has are accepted and
 * need nothing (access policy window, synchronization policy, cluster
 * scheduling policy, programmatic stream serialization, priority, memory
 * synchronisation domains, shared memory carveout, NVLink scheduling);
 * cooperative launches and clusters of more than one block are
 * CUDA_ERROR_NOT_SUPPORTED for now; the graph-only attribute and unknown
 * ones are CUDA_ERROR_INVALID_VALUE. */
static CUresult parse_attrs(const CUlaunchConfig *cfg,
                            struct launch_opts *opts) {
  opts->nevents = 0;
  if (cfg->numAttrs > 0 && cfg->attrs == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < cfg->numAttrs; i++) {
    const CUlaunchAttribute *a = &cfg->attrs[i];
    const CUlaunchAttributeValue *v = &a->value;
    switch (a->id) {
    case CU_LAUNCH_ATTRIBUTE_IGNORE:
    case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW:
    case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY:
    case CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
    case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
    case CU_LAUNCH_ATTRIBUTE_PRIORITY:
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN:
    case CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
    case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
      break;
    case CU_LAUNCH_ATTRIBUTE_COOPERATIVE:
      if (v->cooperative != 0)
        return CUDA_ERROR_NOT_SUPPORTED;
      break;
    case CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION:
      if (!trivial_cluster(v->clusterDim.x, v->clusterDim.y, v->clusterDim.z))
        return CUDA_ERROR_NOT_SUPPORTED;
      break;
    case CU_LAUNCH_ATTRIBUTE_PREFERRED_CLUSTER_DIMENSION:
      if (!trivial_cluster(v->preferredClusterDim.x, v->preferredClusterDim.y,
                           v->preferredClusterDim.z))
        return CUDA_ERROR_NOT_SUPPORTED;
      break;
    /* Both events may be recorded when the kernel completes: the
     * programmatic event fires once every block has triggered it or
     * exited, the completion event once every block has started, and
     * completion comes after both. */
    case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT:
    case CU_LAUNCH_ATTRIBUTE_LAUNCH_COMPLETION_EVENT: {
      CUevent e = a->id == CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT
                      ? v->programmaticEvent.event
                      : v->launchCompletionEvent.event;
      if (opts->nevents == 2)
        return CUDA_ERROR_INVALID_VALUE;
      opts->events[opts->nevents++] = e;
      break;
    }
    default:
      /* CU_LAUNCH_ATTRIBUTE_DEVICE_UPDATABLE_KERNEL_NODE is for graphs. */
      return CUDA_ERROR_INVALID_VALUE;
    }
  }
  return CUDA_SUCCESS;
}

static CUresult launch_ex(const CUlaunchConfig *cfg, CUfunction f,
                          void **kernel_params, void **extra) {
  struct launch_opts opts;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (cfg == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = parse_attrs(cfg, &opts)) != CUDA_SUCCESS)
    return r;
  const unsigned grid[3] = {cfg->gridDimX, cfg->gridDimY, cfg->gridDimZ};
  const unsigned block[3] = {cfg->blockDimX, cfg->blockDimY, cfg->blockDimZ};
  return launch(f, grid, block, cfg->sharedMemBytes, cfg->hStream,
                kernel_params, extra, &opts, "cuLaunchKernelEx");
}

GP_API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
                                 void **kernelParams, void **extra) {
  CUresult r = launch_ex(config, f, kernelParams, extra);
  if (config != NULL)
    GP_TRACE(r, "config={grid=(%u,%u,%u), block=(%u,%u,%u), "
             "sharedMemBytes=%u, hStream=%p, numAttrs=%u}, f=%p, "
             "kernelParams=%p, extra=%p", config->gridDimX, config->gridDimY,
             config->gridDimZ, config->blockDimX, config->blockDimY,
             config->blockDimZ, config->sharedMemBytes,
             (void *)config->hStream, config->numAttrs, (void *)f,
             (void *)kernelParams, (void *)extra);
  else
    GP_TRACE(r, "config=NULL, f=%p, kernelParams=%p, extra=%p", (void *)f,
             (void *)kernelParams, (void *)extra);
  return r;
}
