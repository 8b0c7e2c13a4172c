/* The emulated device's identity and attribute set.
 *
 * The values model a compute capability 7.5 (Turing) part: limits are what
 * such a GPU reports, so that programs size their launches and buffers as
 * they would on real hardware; capabilities the emulator does not provide
 * are 0. docs/emulated-device.md lists every value with the reason; keep the
 * two in step. The multiprocessor count is filled in at run time.
 */
#include "emu.h"

#include <cuda.h>
#include <stdio.h>
#include <string.h>

struct attr_def {
  bool set;
  int value;
};

#define A(name, v) [CU_DEVICE_ATTRIBUTE_##name] = {true, (v)}

/* Indexed by CUdevice_attribute. */
static const struct attr_def attr_table[CU_DEVICE_ATTRIBUTE_MAX] = {
  A(MAX_THREADS_PER_BLOCK, 1024),
  A(MAX_BLOCK_DIM_X, 1024),
  A(MAX_BLOCK_DIM_Y, 1024),
  A(MAX_BLOCK_DIM_Z, 64),
  A(MAX_GRID_DIM_X, 2147483647),
  A(MAX_GRID_DIM_Y, 65535),
  A(MAX_GRID_DIM_Z, 65535),
  A(MAX_SHARED_MEMORY_PER_BLOCK, 49152),
  A(TOTAL_CONSTANT_MEMORY, 65536),
  A(WARP_SIZE, 32),
  A(MAX_PITCH, 2147483647),
  A(MAX_REGISTERS_PER_BLOCK, 65536),
  A(CLOCK_RATE, 1590000),                      /* kHz */
  A(TEXTURE_ALIGNMENT, 512),
  A(GPU_OVERLAP, 1),
  A(MULTIPROCESSOR_COUNT, 0),                  /* run time: host cores */
  A(KERNEL_EXEC_TIMEOUT, 0),
  A(INTEGRATED, 0),
  A(CAN_MAP_HOST_MEMORY, 0),
  A(COMPUTE_MODE, CU_COMPUTEMODE_DEFAULT),
  A(MAXIMUM_TEXTURE1D_WIDTH, 131072),
  A(MAXIMUM_TEXTURE2D_WIDTH, 131072),
  A(MAXIMUM_TEXTURE2D_HEIGHT, 65536),
  A(MAXIMUM_TEXTURE3D_WIDTH, 16384),
  A(MAXIMUM_TEXTURE3D_HEIGHT, 16384),
  A(MAXIMUM_TEXTURE3D_DEPTH, 16384),
  A(MAXIMUM_TEXTURE2D_LAYERED_WIDTH, 32768),
  A(MAXIMUM_TEXTURE2D_LAYERED_HEIGHT, 32768),
  A(MAXIMUM_TEXTURE2D_LAYERED_LAYERS, 2048),
  A(SURFACE_ALIGNMENT, 512),
  A(CONCURRENT_KERNELS, 1),
  A(ECC_ENABLED, 0),
  A(PCI_BUS_ID, 0xe0),
  A(PCI_DEVICE_ID, 0),
  A(TCC_DRIVER, 0),
  A(MEMORY_CLOCK_RATE, 5001000),               /* kHz */
  A(GLOBAL_MEMORY_BUS_WIDTH, 256),             /* bits */
  A(L2_CACHE_SIZE, 4194304),
  A(MAX_THREADS_PER_MULTIPROCESSOR, 1024),
  A(ASYNC_ENGINE_COUNT, 2),
  A(UNIFIED_ADDRESSING, 1),
  A(MAXIMUM_TEXTURE1D_LAYERED_WIDTH, 32768),
  A(MAXIMUM_TEXTURE1D_LAYERED_LAYERS, 2048),
  A(CAN_TEX2D_GATHER, 0),
  A(MAXIMUM_TEXTURE2D_GATHER_WIDTH, 32768),
  A(MAXIMUM_TEXTURE2D_GATHER_HEIGHT, 32768),
  A(MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE, 8192),
  A(MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE, 8192),
  A(MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE, 32768),
  A(PCI_DOMAIN_ID, 0),
  A(TEXTURE_PITCH_ALIGNMENT, 32),
  A(MAXIMUM_TEXTURECUBEMAP_WIDTH, 32768),
  A(MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH, 32768),
  A(MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS, 2046),
  A(MAXIMUM_SURFACE1D_WIDTH, 32768),
  A(MAXIMUM_SURFACE2D_WIDTH, 131072),
  A(MAXIMUM_SURFACE2D_HEIGHT, 65536),
  A(MAXIMUM_SURFACE3D_WIDTH, 16384),
  A(MAXIMUM_SURFACE3D_HEIGHT, 16384),
  A(MAXIMUM_SURFACE3D_DEPTH, 16384),
  A(MAXIMUM_SURFACE1D_LAYERED_WIDTH, 32768),
  A(MAXIMUM_SURFACE1D_LAYERED_LAYERS, 2048),
  A(MAXIMUM_SURFACE2D_LAYERED_WIDTH, 32768),
  A(MAXIMUM_SURFACE2D_LAYERED_HEIGHT, 32768),
  A(MAXIMUM_SURFACE2D_LAYERED_LAYERS, 2048),
  A(MAXIMUM_SURFACECUBEMAP_WIDTH, 32768),
  A(MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH, 32768),
  A(MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS, 2046),
  A(MAXIMUM_TEXTURE1D_LINEAR_WIDTH, 268435456),
  A(MAXIMUM_TEXTURE2D_LINEAR_WIDTH, 131072),
  A(MAXIMUM_TEXTURE2D_LINEAR_HEIGHT, 65000),
  A(MAXIMUM_TEXTURE2D_LINEAR_PITCH, 2097120),
  A(MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH, 32768),
  A(MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT, 32768),
  A(COMPUTE_CAPABILITY_MAJOR, 7),
  A(COMPUTE_CAPABILITY_MINOR, 5),
  A(MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH, 32768),
  A(STREAM_PRIORITIES_SUPPORTED, 1),
  A(GLOBAL_L1_CACHE_SUPPORTED, 1),
  A(LOCAL_L1_CACHE_SUPPORTED, 1),
  A(MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 65536),
  A(MAX_REGISTERS_PER_MULTIPROCESSOR, 65536),
  A(MANAGED_MEMORY, 0),
  A(MULTI_GPU_BOARD, 0),
  A(MULTI_GPU_BOARD_GROUP_ID, 0),
  A(HOST_NATIVE_ATOMIC_SUPPORTED, 0),
  A(SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO, 32),
  A(PAGEABLE_MEMORY_ACCESS, 0),
  A(CONCURRENT_MANAGED_ACCESS, 0),
  A(COMPUTE_PREEMPTION_SUPPORTED, 0),
  A(CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, 0),
  A(CAN_USE_STREAM_MEM_OPS_V1, 0),
  A(CAN_USE_64_BIT_STREAM_MEM_OPS_V1, 0),
  A(CAN_USE_STREAM_WAIT_VALUE_NOR_V1, 0),
  A(COOPERATIVE_LAUNCH, 0),
  A(COOPERATIVE_MULTI_DEVICE_LAUNCH, 0),
  A(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 65536),
  A(CAN_FLUSH_REMOTE_WRITES, 0),
  A(HOST_REGISTER_SUPPORTED, 0),
  A(PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, 0),
  A(DIRECT_MANAGED_MEM_ACCESS_FROM_HOST, 0),
  A(VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0),
  A(HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, 0),
  A(HANDLE_TYPE_WIN32_HANDLE_SUPPORTED, 0),
  A(HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED, 0),
  A(MAX_BLOCKS_PER_MULTIPROCESSOR, 16),
  A(GENERIC_COMPRESSION_SUPPORTED, 0),
  A(MAX_PERSISTING_L2_CACHE_SIZE, 0),
  A(MAX_ACCESS_POLICY_WINDOW_SIZE, 0),
  A(GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED, 0),
  A(RESERVED_SHARED_MEMORY_PER_BLOCK, 0),
  A(SPARSE_CUDA_ARRAY_SUPPORTED, 0),
  A(READ_ONLY_HOST_REGISTER_SUPPORTED, 0),
  A(TIMELINE_SEMAPHORE_INTEROP_SUPPORTED, 0),
  A(MEMORY_POOLS_SUPPORTED, 1),
  A(GPU_DIRECT_RDMA_SUPPORTED, 0),
  A(GPU_DIRECT_RDMA_FLUSH_WRITES_OPTIONS, 0),
  A(GPU_DIRECT_RDMA_WRITES_ORDERING, 0),
  A(MEMPOOL_SUPPORTED_HANDLE_TYPES, 0),
  A(CLUSTER_LAUNCH, 0),
  A(DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED, 0),
  A(CAN_USE_64_BIT_STREAM_MEM_OPS, 0),
  A(CAN_USE_STREAM_WAIT_VALUE_NOR, 0),
  A(DMA_BUF_SUPPORTED, 0),
  A(IPC_EVENT_SUPPORTED, 0),
  A(MEM_SYNC_DOMAIN_COUNT, 1),
  A(TENSOR_MAP_ACCESS_SUPPORTED, 0),
  A(HANDLE_TYPE_FABRIC_SUPPORTED, 0),
  A(UNIFIED_FUNCTION_POINTERS, 0),
  A(NUMA_CONFIG, CU_DEVICE_NUMA_CONFIG_NONE),
  A(NUMA_ID, -1),
  A(MULTICAST_SUPPORTED, 0),
  A(MPS_ENABLED, 0),
  A(HOST_NUMA_ID, -1),
  A(D3D12_CIG_SUPPORTED, 0),
  A(MEM_DECOMPRESS_ALGORITHM_MASK, 0),
  A(MEM_DECOMPRESS_MAXIMUM_LENGTH, 0),
  A(VULKAN_CIG_SUPPORTED, 0),
  A(GPU_PCI_DEVICE_ID, 0),
  A(GPU_PCI_SUBSYSTEM_ID, 0),
  A(HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0),
  A(HOST_NUMA_MEMORY_POOLS_SUPPORTED, 0),
  A(HOST_NUMA_MULTINODE_IPC_SUPPORTED, 0),
  A(HOST_MEMORY_POOLS_SUPPORTED, 0),
  A(HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0),
  A(HOST_ALLOC_DMA_BUF_SUPPORTED, 0),
  A(ONLY_PARTIAL_HOST_NATIVE_ATOMIC_SUPPORTED, 0),
};

#undef A

_Static_assert(CU_DEVICE_ATTRIBUTE_MAX - 1 <= GP_DEVICE_MAX_ATTRS,
               "gp_device_desc cannot hold every attribute");

/* The UUID is a hash of a fixed string and the server's name, so it is the
 * same on every run of a server and differs between the servers of a pool
 * (servers without a name share one): 64-bit FNV-1a twice with different
 * offset bases, marked as an RFC 9562 version 8 (vendor-specific) UUID. */
static void device_uuid(int ordinal, const char *seed, uint8_t out[16]) {
  char text[160];
  uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
  size_t i, k;

  if (seed && *seed)
    snprintf(text, sizeof(text), "gpupool emulated device %d of %.100s",
             ordinal, seed);
  else
    snprintf(text, sizeof(text), "gpupool emulated device %d", ordinal);
  for (k = 0; k < 2; k++)
    for (i = 0; text[i]; i++) {
      h[k] ^= (uint8_t)text[i];
      h[k] *= 0x100000001b3ull;
    }
  /* FNV-1a leaves names that differ only at their end with nearly the
   * same high bits; a final mix (SplitMix64's) makes their UUIDs look as
   * different as they are. The unnamed UUID stays as it always was. */
  for (k = 0; seed && *seed && k < 2; k++) {
    h[k] = (h[k] ^ (h[k] >> 30)) * 0xbf58476d1ce4e5b9ull;
    h[k] = (h[k] ^ (h[k] >> 27)) * 0x94d049bb133111ebull;
    h[k] ^= h[k] >> 31;
  }
  for (i = 0; i < 8; i++) {
    out[i] = (uint8_t)(h[0] >> (56 - 8 * i));
    out[8 + i] = (uint8_t)(h[1] >> (56 - 8 * i));
  }
  out[6] = (uint8_t)((out[6] & 0x0f) | 0x80); /* version 8 */
  out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10 */
}

void emu_device_describe(int sm_count, uint64_t total_mem, const char *seed,
                         struct gp_device_desc *out) {
  int a;

  memset(out, 0, sizeof(*out));
  snprintf(out->name, sizeof(out->name), "%s", EMU_DEVICE_NAME);
  device_uuid(0, seed, out->uuid);
  out->total_mem = total_mem;
  for (a = 1; a < CU_DEVICE_ATTRIBUTE_MAX; a++) {
    struct gp_device_attr *d = &out->attrs[out->nattrs++];
    d->attr = a;
    d->value = attr_table[a].value;
    if (a == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
      d->value = sm_count;
  }
}

int emu_device_missing_attr(void) {
  int a;

  for (a = 1; a < CU_DEVICE_ATTRIBUTE_MAX; a++)
    if (!attr_table[a].set)
      return a;
  return 0;
}
