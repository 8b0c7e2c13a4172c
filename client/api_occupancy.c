/* The occupancy calculator: cuOccupancy*, answered on the client from the
 * function's attributes (from the server when it was looked up, and as
 * cuFuncSetAttribute changed them) and its device's (from the handshake),
 * the way the hardware allots resources to thread blocks. NVIDIA documents
 * the method in the toolkit's cuda_occupancy.h; docs/client.md gives the
 * formula.
 *
 * Active blocks per multiprocessor, for a block of B threads and D bytes of
 * dynamic shared memory, is the least of:
 *  - warps:     floor(maxThreadsPerSM / warpSize) / ceil(B / warpSize);
 *  - blocks:    the device's MAX_BLOCKS_PER_MULTIPROCESSOR;
 *  - registers: a warp gets ceil(regs * warpSize / 256) * 256 registers;
 *               each of the 4 sub-partitions holds
 *               floor((regsPerSM / 4) / thatPerWarp) warps, and the block's
 *               warps, rounded up to 4, must fit regsPerBlock;
 *  - shared:    the block takes static + reserved + D bytes rounded up to
 *               the allocation unit (256 bytes before compute capability
 *               8.0, 128 after), and the multiprocessor has its shared
 *               memory carve-out (the preference, rounded up to a size the
 *               architecture offers, or more if one block needs more);
 * and 0 when the block is larger than the device or the function allows,
 * when D exceeds the function's MAX_DYNAMIC_SHARED_SIZE_BYTES, or when the
 * block's registers or shared memory exceed a block's limit.
 *
 * Thread block clusters are not supported (launches accept clusters of one
 * block only): the cluster calls answer for a cluster of one block, and a
 * cluster of more is CUDA_ERROR_NOT_SUPPORTED.
 */
#include <limits.h>

#include "client.h"
#include "trace.h"

/* The register allocation unit, per warp, on every architecture since
 * compute capability 3.0; the register file's sub-partitions per
 * multiprocessor (2 on 6.0). */
#define GP__REG_UNIT 256
#define GP__SUBPARTITIONS 4
#define GP__MAX_REGS_PER_THREAD 255

/* What the calculation needs about the device. */
struct occ_dev {
  int cc;                /* major * 10 + minor */
  int warp;
  int max_threads_block;
  int max_threads_sm;
  int max_blocks_sm;
  int regs_sm;
  int regs_block;
  int smem_sm;
  int smem_block;
  int smem_optin;
  int smem_reserved;
  int sms;
};

/* ... and about the function. */
struct occ_func {
  int max_threads;
  int regs;
  int smem_static;
  int max_dynamic;
  int carveout;          /* percent of the maximum shared memory, or -1 */
};

/* Fills |d| and |f| for function |h|, under the lock. Returns
 * CUDA_ERROR_INVALID_HANDLE for no live function, CUDA_ERROR_UNKNOWN when
 * the device did not report what the calculation needs. */
static CUresult gather(CUfunction h, struct occ_dev *d, struct occ_func *f) {
  struct gp__client *c = gp__client();
  CUresult r = CUDA_SUCCESS;
  gp__lock();
  /* A CUkernel (cudart's handle) stands for its function in the current
   * context. */
  struct gp__func *fn;
  if ((r = gp__func_resolve_locked(c, h, &fn, "cuOccupancy")) !=
      CUDA_SUCCESS)
    goto out;
  const struct gp__ctx *ctx = fn->mod->ctx;
  const int *a = c->devices[ctx->device].attr;
  d->cc = a[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR] * 10 +
          a[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
  d->warp = a[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
  d->max_threads_block = a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
  d->max_threads_sm = a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR];
  d->max_blocks_sm = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR];
  d->regs_sm = a[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR];
  d->regs_block = a[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK];
  d->smem_sm = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR];
  d->smem_block = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK];
  d->smem_optin = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN];
  d->smem_reserved = a[CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK];
  d->sms = a[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT];
  if (d->smem_optin < d->smem_block)
    d->smem_optin = d->smem_block;
  if (d->smem_reserved < 0)
    d->smem_reserved = 0;
  if (d->cc <= 0 || d->warp <= 0 || d->max_threads_block <= 0 ||
      d->max_threads_sm <= 0 || d->max_blocks_sm <= 0 || d->regs_sm <= 0 ||
      d->regs_block <= 0 || d->smem_sm <= 0 || d->smem_block <= 0 ||
      d->sms <= 0) {
    r = CUDA_ERROR_UNKNOWN;
    goto out;
  }
  f->max_threads = fn->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
  f->regs = fn->attr[CU_FUNC_ATTRIBUTE_NUM_REGS];
  f->smem_static = fn->attr[CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES];
  f->max_dynamic = fn->attr[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES];
  /* The shared memory preference: the function's carve-out, else its
   * cache preference, else its context's (cuda.h: a function's preference
   * comes before the context's). */
  f->carveout = fn->attr[CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT];
  if (f->carveout < 0) {
    CUfunc_cache cache = fn->cache_config != CU_FUNC_CACHE_PREFER_NONE
                             ? fn->cache_config
                             : ctx->cache_config;
    f->carveout = cache == CU_FUNC_CACHE_PREFER_SHARED ? 100
                  : cache == CU_FUNC_CACHE_PREFER_L1   ? 0
                  : cache == CU_FUNC_CACHE_PREFER_EQUAL ? 50
                                                        : -1;
  }
  if (f->max_threads <= 0)
    f->max_threads = d->max_threads_block;
  if (f->regs < 0)
    f->regs = 0;
  if (f->smem_static < 0)
    f->smem_static = 0;
  if (f->max_dynamic < 0)
    f->max_dynamic = 0;
out:
  gp__unlock();
  return r;
}

static long div_up(long x, long y) { return (x + y - 1) / y; }
static long round_up(long x, long y) { return div_up(x, y) * y; }

static int smem_unit(const struct occ_dev *d) { return d->cc >= 80 ? 128 : 256; }

/* The shared memory sizes (KiB) a multiprocessor can be configured with,
 * by architecture; NULL where it is fixed (before Volta) or not known (a
 * newer architecture: its reported size is used as is). */
static const int *carveouts(const struct occ_dev *d, int *n) {
  static const int volta[] = {0, 8, 16, 32, 64, 96};
  static const int turing[] = {32, 64};
  static const int ga100[] = {0, 8, 16, 32, 64, 100, 132, 164};
  static const int ga10x[] = {0, 8, 16, 32, 64, 100};
  static const int hopper[] = {0, 8, 16, 32, 64, 100, 132, 164, 196, 228};
#define PICK(a)                                 \
  do {                                          \
    *n = (int)(sizeof(a) / sizeof((a)[0]));     \
    return a;                                   \
  } while (0)
  switch (d->cc / 10) {
  case 7:
    if (d->cc == 75)
      PICK(turing);
    PICK(volta);
  case 8:
    if (d->cc == 80 || d->cc == 87)
      PICK(ga100);
    PICK(ga10x);
  case 9:
  case 10:
  case 11:
    PICK(hopper);
  case 12:
    PICK(ga10x);
  default:
    *n = 0;
    return NULL;
  }
#undef PICK
}

/* |bytes| rounded up to a shared memory size the multiprocessor offers; -1
 * when it offers none that large. */
static long carveout_up(const struct occ_dev *d, long bytes) {
  int n;
  const int *sizes = carveouts(d, &n);
  if (sizes == NULL)
    return bytes <= d->smem_sm ? d->smem_sm : -1;
  for (int i = 0; i < n; i++)
    if (bytes <= (long)sizes[i] * 1024)
      return (long)sizes[i] * 1024;
  return -1;
}

/* The shared memory the preference gives a multiprocessor. */
static long smem_preferred(const struct occ_dev *d, const struct occ_func *f) {
  if (f->carveout < 0)
    return d->smem_sm;
  long v = carveout_up(d, (long)f->carveout * d->smem_sm / 100);
  return v < 0 ? d->smem_sm : v;
}

/* The most shared memory one block of |f| may have: the opt-in limit once
 * the function has been allowed more than the default (cuFuncSetAttribute
 * of MAX_DYNAMIC_SHARED_SIZE_BYTES), plus what the driver reserves per
 * block from compute capability 8.0. */
static long smem_block_limit(const struct occ_dev *d,
                             const struct occ_func *f) {
  long lim = (long)f->smem_static + f->max_dynamic > d->smem_block
                 ? d->smem_optin
                 : d->smem_block;
  return d->cc >= 80 ? lim + d->smem_reserved : lim;
}

/* Active blocks of |block| threads and |dyn| bytes of dynamic shared
 * memory per multiprocessor. */
static int active_blocks(const struct occ_dev *d, const struct occ_func *f,
                         long block, long dyn) {
  if (block <= 0 || block > d->max_threads_block || block > f->max_threads ||
      dyn > f->max_dynamic)
    return 0;
  long warps = div_up(block, d->warp);

  long by_warps = (d->max_threads_sm / d->warp) / warps;
  long by_blocks = d->max_blocks_sm;

  long by_regs = INT_MAX;
  if (f->regs > GP__MAX_REGS_PER_THREAD)
    return 0;
  if (f->regs > 0) {
    long per_warp = round_up((long)f->regs * d->warp, GP__REG_UNIT);
    int parts = d->cc == 60 ? 2 : GP__SUBPARTITIONS;
    /* The hardware checks a block as if its warps were spread over every
     * sub-partition. */
    if (per_warp * warps > d->regs_block ||
        per_warp * round_up(warps, parts) > d->regs_block)
      return 0;
    long warps_per_part = (d->regs_sm / parts) / per_warp;
    by_regs = warps_per_part * parts / warps;
  }

  long by_smem = INT_MAX;
  long reserved = d->cc >= 80 ? d->smem_reserved : 0;
  long need = round_up((long)f->smem_static + reserved + dyn, smem_unit(d));
  if (need > smem_block_limit(d, f))
    return 0;
  if (need > 0) {
    long sm = smem_preferred(d, f);
    if (sm < need) {
      /* A block that needs more than the preference gets a larger
       * configuration. */
      sm = carveout_up(d, need);
      if (sm < 0)
        return 0;
    }
    by_smem = sm / need;
  }

  long n = by_warps;
  if (by_blocks < n)
    n = by_blocks;
  if (by_regs < n)
    n = by_regs;
  if (by_smem < n)
    n = by_smem;
  return (int)n;
}

/* The flags of the *WithFlags calls. CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE
 * concerns the partitioned global caching of compute capability 5.2 to 6.x
 * (kernels built to cache global loads in L1), which this calculator takes
 * as off: it changes nothing here. */
static bool flags_ok(unsigned flags) {
  return (flags & ~(unsigned)CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE) == 0;
}

static CUresult max_active(int *num, CUfunction h, int block, size_t dyn,
                           unsigned flags) {
  struct occ_dev d;
  struct occ_func f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (num == NULL || block <= 0 || !flags_ok(flags))
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gather(h, &d, &f)) != CUDA_SUCCESS)
    return r;
  *num = dyn > (size_t)INT_MAX ? 0 : active_blocks(&d, &f, block, (long)dyn);
  return CUDA_SUCCESS;
}

GP_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(
    int *numBlocks, CUfunction func, int blockSize, size_t dynamicSMemSize) {
  CUresult r = max_active(numBlocks, func, blockSize, dynamicSMemSize, 0);
  GP_TRACE(r, "numBlocks=%d, func=%p, blockSize=%d, dynamicSMemSize=%zu",
           GP_OUT(r, numBlocks), (void *)func, blockSize, dynamicSMemSize);
  return r;
}

GP_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    int *numBlocks, CUfunction func, int blockSize, size_t dynamicSMemSize,
    unsigned int flags) {
  CUresult r = max_active(numBlocks, func, blockSize, dynamicSMemSize, flags);
  GP_TRACE(r, "numBlocks=%d, func=%p, blockSize=%d, dynamicSMemSize=%zu, "
           "flags=0x%x", GP_OUT(r, numBlocks), (void *)func, blockSize,
           dynamicSMemSize, flags);
  return r;
}

/* Tries every block size from the largest allowed down, a warp at a time
 * (the largest allowed first, even when it is not a whole number of
 * warps), and keeps the one with the most active threads per
 * multiprocessor, the larger block on a tie. |b2d| is application code:
 * it is called with no lock held. */
static CUresult potential_block_size(int *min_grid, int *block_out,
                                     CUfunction h, CUoccupancyB2DSize b2d,
                                     size_t dyn, int limit, unsigned flags) {
  struct occ_dev d;
  struct occ_func f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (min_grid == NULL || block_out == NULL || limit < 0 || !flags_ok(flags))
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gather(h, &d, &f)) != CUDA_SUCCESS)
    return r;
  int max = d.max_threads_block < f.max_threads ? d.max_threads_block
                                                : f.max_threads;
  if (limit > 0 && limit < max)
    max = limit;
  int best_block = 0, best_blocks = 0;
  long best_threads = 0;
  for (long b = round_up(max, d.warp); b > 0; b -= d.warp) {
    int block = b < max ? (int)b : max;
    size_t need = b2d != NULL ? b2d(block) : dyn;
    int n = need > (size_t)INT_MAX ? 0
                                   : active_blocks(&d, &f, block, (long)need);
    if ((long)n * block > best_threads) {
      best_threads = (long)n * block;
      best_block = block;
      best_blocks = n;
    }
    if (best_threads == d.max_threads_sm)
      break; /* a full multiprocessor: nothing smaller does better */
  }
  *min_grid = best_blocks * d.sms;
  *block_out = best_block;
  return CUDA_SUCCESS;
}

GP_API CUresult cuOccupancyMaxPotentialBlockSize(
    int *minGridSize, int *blockSize, CUfunction func,
    CUoccupancyB2DSize blockSizeToDynamicSMemSize, size_t dynamicSMemSize,
    int blockSizeLimit) {
  CUresult r = potential_block_size(minGridSize, blockSize, func,
                                    blockSizeToDynamicSMemSize,
                                    dynamicSMemSize, blockSizeLimit, 0);
  GP_TRACE(r, "minGridSize=%d, blockSize=%d, func=%p, b2d=%p, "
           "dynamicSMemSize=%zu, blockSizeLimit=%d", GP_OUT(r, minGridSize),
           GP_OUT(r, blockSize), (void *)func,
           (void *)(uintptr_t)blockSizeToDynamicSMemSize, dynamicSMemSize,
           blockSizeLimit);
  return r;
}

GP_API CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(
    int *minGridSize, int *blockSize, CUfunction func,
    CUoccupancyB2DSize blockSizeToDynamicSMemSize, size_t dynamicSMemSize,
    int blockSizeLimit, unsigned int flags) {
  CUresult r = potential_block_size(minGridSize, blockSize, func,
                                    blockSizeToDynamicSMemSize,
                                    dynamicSMemSize, blockSizeLimit, flags);
  GP_TRACE(r, "minGridSize=%d, blockSize=%d, func=%p, b2d=%p, "
           "dynamicSMemSize=%zu, blockSizeLimit=%d, flags=0x%x",
           GP_OUT(r, minGridSize), GP_OUT(r, blockSize), (void *)func,
           (void *)(uintptr_t)blockSizeToDynamicSMemSize, dynamicSMemSize,
           blockSizeLimit, flags);
  return r;
}

/* The dynamic shared memory each of |nblocks| blocks of |block| threads
 * can have on one multiprocessor: its shared memory (a block's whole limit
 * for one block, else the preferred configuration) shared evenly, in
 * allocation units, capped at a block's limit, less the static part, and
 * capped at the function's MAX_DYNAMIC_SHARED_SIZE_BYTES.
 * CUDA_ERROR_INVALID_VALUE when that many blocks cannot be active at once
 * even without dynamic shared memory. */
static CUresult available_dynamic(size_t *out, CUfunction h, int nblocks,
                                  int block) {
  struct occ_dev d;
  struct occ_func f;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (out == NULL || nblocks <= 0 || block <= 0)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gather(h, &d, &f)) != CUDA_SUCCESS)
    return r;
  if (active_blocks(&d, &f, block, 0) < nblocks)
    return CUDA_ERROR_INVALID_VALUE;
  long lim = smem_block_limit(&d, &f);
  long sm = nblocks == 1 ? lim : smem_preferred(&d, &f);
  long each = sm / nblocks / smem_unit(&d) * smem_unit(&d);
  if (each > lim)
    each = lim;
  each -= f.smem_static + (d.cc >= 80 ? d.smem_reserved : 0);
  if (each < 0)
    each = 0;
  if (each > f.max_dynamic)
    each = f.max_dynamic;
  *out = (size_t)each;
  return CUDA_SUCCESS;
}

GP_API CUresult cuOccupancyAvailableDynamicSMemPerBlock(
    size_t *dynamicSmemSize, CUfunction func, int numBlocks, int blockSize) {
  CUresult r = available_dynamic(dynamicSmemSize, func, numBlocks, blockSize);
  GP_TRACE(r, "dynamicSmemSize=%zu, func=%p, numBlocks=%d, blockSize=%d",
           GP_OUT(r, dynamicSmemSize), (void *)func, numBlocks, blockSize);
  return r;
}

/* ---- Clusters ------------------------------------------------------------------------ */

/* The cluster a launch of |h| with |cfg| would use: the function's
 * required dimensions if it has any, else |cfg|'s cluster attribute (all 0
 * when neither says). */
static CUresult cluster_dims(CUfunction h, const CUlaunchConfig *cfg,
                             unsigned dims[3], bool *given) {
  struct gp__client *c = gp__client();
  *given = false;
  dims[0] = dims[1] = dims[2] = 0;
  gp__lock();
  struct gp__func *f = NULL;
  CUresult r = gp__func_resolve_locked(c, h, &f, "cuOccupancy");
  if (r == CUDA_SUCCESS &&
      f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH] > 0) {
    dims[0] = (unsigned)f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH];
    dims[1] = (unsigned)f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT];
    dims[2] = (unsigned)f->attr[CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH];
    *given = true;
  }
  gp__unlock();
  if (r != CUDA_SUCCESS || *given)
    return r;
  if (cfg->numAttrs > 0 && cfg->attrs == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < cfg->numAttrs; i++)
    if (cfg->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) {
      dims[0] = cfg->attrs[i].value.clusterDim.x;
      dims[1] = cfg->attrs[i].value.clusterDim.y;
      dims[2] = cfg->attrs[i].value.clusterDim.z;
      *given = true;
    }
  return CUDA_SUCCESS;
}

static bool one_block(const unsigned dims[3]) {
  /* A dimension of 0 in a required size is one block, as at launch. */
  return dims[0] <= 1 && dims[1] <= 1 && dims[2] <= 1;
}

/* Launches take clusters of one block only, so that is the largest
 * cluster there is; a function that requires a larger one cannot be
 * launched here at all. The configuration's own cluster size is ignored,
 * as cuda.h says. */
static CUresult max_cluster_size(int *size, CUfunction h,
                                 const CUlaunchConfig *cfg) {
  unsigned dims[3];
  bool given;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (size == NULL || cfg == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  CUlaunchConfig bare = *cfg;
  bare.numAttrs = 0; /* only the function's requirement counts here */
  if ((r = cluster_dims(h, &bare, dims, &given)) != CUDA_SUCCESS)
    return r;
  if (given && !one_block(dims))
    return CUDA_ERROR_NOT_SUPPORTED;
  *size = 1;
  return CUDA_SUCCESS;
}

GP_API CUresult cuOccupancyMaxPotentialClusterSize(int *clusterSize,
                                                   CUfunction func,
                                                   const CUlaunchConfig *config) {
  CUresult r = max_cluster_size(clusterSize, func, config);
  GP_TRACE(r, "clusterSize=%d, func=%p, config=%p", GP_OUT(r, clusterSize),
           (void *)func, (const void *)config);
  return r;
}

/* Clusters of one block: as many as there can be active blocks of the
 * configuration on the whole device. A cluster size must be given (by the
 * function or the configuration), as cuda.h requires. */
static CUresult max_active_clusters(int *num, CUfunction h,
                                    const CUlaunchConfig *cfg) {
  struct occ_dev d;
  struct occ_func f;
  unsigned dims[3];
  bool given;
  CUresult r = gp__ready();
  if (r != CUDA_SUCCESS)
    return r;
  if (num == NULL || cfg == NULL)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = cluster_dims(h, cfg, dims, &given)) != CUDA_SUCCESS)
    return r;
  if (!given || dims[0] == 0 || dims[1] == 0 || dims[2] == 0)
    return CUDA_ERROR_INVALID_CLUSTER_SIZE;
  if (!one_block(dims))
    return CUDA_ERROR_NOT_SUPPORTED;
  uint64_t block = (uint64_t)cfg->blockDimX * cfg->blockDimY * cfg->blockDimZ;
  if (block == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if ((r = gather(h, &d, &f)) != CUDA_SUCCESS)
    return r;
  int per_sm = block > (uint64_t)INT_MAX
                   ? 0
                   : active_blocks(&d, &f, (long)block,
                                   (long)cfg->sharedMemBytes);
  *num = per_sm * d.sms;
  return CUDA_SUCCESS;
}

GP_API CUresult cuOccupancyMaxActiveClusters(int *numClusters,
                                             CUfunction func,
                                             const CUlaunchConfig *config) {
  CUresult r = max_active_clusters(numClusters, func, config);
  GP_TRACE(r, "numClusters=%d, func=%p, config=%p", GP_OUT(r, numClusters),
           (void *)func, (const void *)config);
  return r;
}
