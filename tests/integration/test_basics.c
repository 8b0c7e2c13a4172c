/* Integration: initialisation, versions, error strings, device queries, and
 * every driver function outside this set answering
 * CUDA_ERROR_NOT_SUPPORTED. */
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cu_tables.h"
#include "harness.h"

/* The older entry points that cuda.h only declares for the driver's own
 * build; real programs built against older toolkits link to them. */
#undef cuDeviceGetUuid
CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev);

#define EMU_NAME "gpupool emulated device"
#define EMU_MEMORY (1ull << 30) /* the harness's --emu-memory 1G */

static struct gpt_server server;

static void start_server(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
}

/* ---- init ---------------------------------------------------------------------- */

static void test_basics_init(int argc, char **argv) {
  int version = 0, count = -1;
  CUdevice dev;

  /* Before cuInit: the version is known, everything else is refused. */
  CHECK_OK(cuDriverGetVersion(&version));
  CHECK_GE_I(version, CUDA_VERSION);
  CHECK_CU(cuDriverGetVersion(NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
  CHECK_CU(cuDeviceGet(&dev, 0), CUDA_ERROR_NOT_INITIALIZED);

  start_server();
  /* cuInit's flags must be 0. */
  CHECK_CU(cuInit(1), CUDA_ERROR_INVALID_VALUE);
  REQUIRE_OK(cuInit(0));
  CHECK_OK(cuInit(0)); /* a second call is harmless */
  CHECK_OK(cuDriverGetVersion(&version));
  /* cudart refuses a driver older than itself: the version reported must be
   * at least the toolkit's that programs are built with. */
  CHECK_GE_I(version, CUDA_VERSION);
  CHECK_LT_I(version, 100000);
  printf("driver version %d, cuda.h %d\n", version, CUDA_VERSION);
  CHECK_OK(cuDeviceGetCount(&count));
  CHECK_EQ_I(count, 1);
  CHECK_CU(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
  (void)argc;
  (void)argv;
}

/* ---- errors --------------------------------------------------------------------- */

static void test_basics_error_strings(int argc, char **argv) {
  /* No server and no cuInit: names and strings are local and always work. */
  for (size_t i = 0; i < gpt_cu_results_count; i++) {
    const char *name = NULL, *str = NULL;
    CUresult code = (CUresult)gpt_cu_results[i].value;
    if (!CHECK_OK(cuGetErrorName(code, &name))) {
      fprintf(stderr, "    (for %s)\n", gpt_cu_results[i].name);
      continue;
    }
    CHECK_STR_EQ(name, gpt_cu_results[i].name);
    if (CHECK_OK(cuGetErrorString(code, &str))) {
      CHECK_TRUE(str != NULL && str[0] != '\0');
    }
  }
  printf("%zu CUresult names checked\n", gpt_cu_results_count);

  /* The strings programs print, as the real driver words them. */
  static const struct {
    CUresult code;
    const char *text;
  } strings[] = {
      {CUDA_SUCCESS, "no error"},
      {CUDA_ERROR_INVALID_VALUE, "invalid argument"},
      {CUDA_ERROR_OUT_OF_MEMORY, "out of memory"},
      {CUDA_ERROR_NOT_INITIALIZED, "initialization error"},
      {CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected"},
      {CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"},
      {CUDA_ERROR_INVALID_CONTEXT, "invalid device context"},
      {CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"},
      {CUDA_ERROR_NOT_READY, "device not ready"},
      {CUDA_ERROR_NOT_SUPPORTED, "operation not supported"},
      {CUDA_ERROR_UNKNOWN, "unknown error"},
  };
  for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
    const char *str = NULL;
    CHECK_OK(cuGetErrorString(strings[i].code, &str));
    CHECK_STR_EQ(str, strings[i].text);
  }

  /* An unknown code: CUDA_ERROR_INVALID_VALUE and a NULL string. */
  const char *str = "unchanged", *name = "unchanged";
  CHECK_CU(cuGetErrorString((CUresult)12345, &str), CUDA_ERROR_INVALID_VALUE);
  CHECK_TRUE(str == NULL);
  CHECK_CU(cuGetErrorName((CUresult)12345, &name), CUDA_ERROR_INVALID_VALUE);
  CHECK_TRUE(name == NULL);
  CHECK_CU(cuGetErrorName(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuGetErrorString(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
  (void)argc;
  (void)argv;
}

/* ---- devices -------------------------------------------------------------------- */

/* Attributes cuda.h marks deprecated that a current driver may refuse. */
static bool deprecated_attribute(int attr) {
  switch (attr) {
    case 15: case 44: case 69: case 92: case 93: case 94: case 96:
      return true;
    default:
      return false;
  }
}

static int attr(CUdevice dev, CUdevice_attribute a) {
  int v = -12345;
  CHECK_OK(cuDeviceGetAttribute(&v, a, dev));
  return v;
}

static void test_basics_devices(int argc, char **argv) {
  CUdevice dev = -1;
  start_server();
  REQUIRE_OK(cuInit(0));
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  CHECK_EQ_I(dev, 0);
  CHECK_CU(cuDeviceGet(&dev, 1), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuDeviceGet(&dev, -1), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
  REQUIRE_OK(cuDeviceGet(&dev, 0));

  /* Name, whole and truncated. */
  char name[256];
  memset(name, 'x', sizeof name);
  CHECK_OK(cuDeviceGetName(name, sizeof name, dev));
  CHECK_STR_EQ(name, EMU_NAME);
  memset(name, 'x', sizeof name);
  CHECK_OK(cuDeviceGetName(name, 8, dev));
  CHECK_LE_U(strnlen(name, 8), 7);
  CHECK_TRUE(strncmp(name, EMU_NAME, strnlen(name, 8)) == 0);
  CHECK_CU(cuDeviceGetName(NULL, 64, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetName(name, sizeof name, 7), CUDA_ERROR_INVALID_DEVICE);

  /* UUID: both entry points, stable, not all zero. */
  CUuuid u1, u2, u3;
  memset(&u1, 0, sizeof u1);
  memset(&u2, 0xff, sizeof u2);
  memset(&u3, 0x55, sizeof u3);
  CHECK_OK(cuDeviceGetUuid_v2(&u1, dev));
  CHECK_OK(cuDeviceGetUuid_v2(&u2, dev));
  CHECK_OK(cuDeviceGetUuid(&u3, dev));
  CHECK_MEM_EQ(u2.bytes, u1.bytes, sizeof u1.bytes);
  CHECK_MEM_EQ(u3.bytes, u1.bytes, sizeof u1.bytes);
  static const CUuuid zero;
  CHECK_TRUE(memcmp(u1.bytes, zero.bytes, sizeof zero.bytes) != 0);
  CHECK_CU(cuDeviceGetUuid_v2(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetUuid_v2(&u1, 3), CUDA_ERROR_INVALID_DEVICE);

  /* Total memory is the server's --emu-memory. */
  size_t total = 0;
  CHECK_OK(cuDeviceTotalMem_v2(&total, dev));
  CHECK_EQ_U(total, EMU_MEMORY);
  CHECK_CU(cuDeviceTotalMem_v2(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceTotalMem_v2(&total, 2), CUDA_ERROR_INVALID_DEVICE);

  /* Compute capability 7.5, three ways. */
  int major = -1, minor = -1;
  CHECK_OK(cuDeviceComputeCapability(&major, &minor, dev));
  CHECK_EQ_I(major, 7);
  CHECK_EQ_I(minor, 5);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), 7);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), 5);
  CHECK_CU(cuDeviceComputeCapability(&major, &minor, 5),
           CUDA_ERROR_INVALID_DEVICE);

  /* What compute capability 7.5 fixes, and that programs size launches by. */
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE), 32);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK), 1024);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X), 1024);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y), 1024);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z), 64);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X), 2147483647);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y), 65535);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z), 65535);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK), 49152);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY), 65536);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK), 65536);
  CHECK_GT_I(attr(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), 0);
  CHECK_GT_I(attr(dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE), 0);
  CHECK_EQ_I(attr(dev, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING), 1);

  /* Every attribute this cuda.h names is answered. */
  int answered = 0;
  for (size_t i = 0; i < gpt_cu_device_attributes_count; i++) {
    int a = gpt_cu_device_attributes[i].value, v = -1;
    CUresult r = cuDeviceGetAttribute(&v, (CUdevice_attribute)a, dev);
    if (r == CUDA_SUCCESS) {
      answered++;
      gpt__check_pass();
    } else if (deprecated_attribute(a) && r == CUDA_ERROR_INVALID_VALUE) {
      gpt__check_pass();
    } else {
      gpt__check_fail(__FILE__, __LINE__, gpt_cu_device_attributes[i].name,
                      "cuDeviceGetAttribute(%d) returned %s (%d)", a,
                      gpt_cu_name(r), (int)r);
    }
  }
  printf("%d of %zu attributes answered\n", answered,
         gpt_cu_device_attributes_count);
  int v;
  CHECK_CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MAX, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetAttribute(&v, (CUdevice_attribute)0, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 1),
           CUDA_ERROR_INVALID_DEVICE);

  /* cuDeviceGetProperties agrees with the attributes. */
  CUdevprop p;
  memset(&p, 0, sizeof p);
  CHECK_OK(cuDeviceGetProperties(&p, dev));
  CHECK_EQ_I(p.maxThreadsPerBlock, attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
  CHECK_EQ_I(p.maxThreadsDim[0], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X));
  CHECK_EQ_I(p.maxThreadsDim[1], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y));
  CHECK_EQ_I(p.maxThreadsDim[2], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z));
  CHECK_EQ_I(p.maxGridSize[0], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X));
  CHECK_EQ_I(p.maxGridSize[1], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y));
  CHECK_EQ_I(p.maxGridSize[2], attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z));
  CHECK_EQ_I(p.sharedMemPerBlock, attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK));
  CHECK_EQ_I(p.totalConstantMemory, attr(dev, CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY));
  CHECK_EQ_I(p.SIMDWidth, attr(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE));
  CHECK_EQ_I(p.memPitch, attr(dev, CU_DEVICE_ATTRIBUTE_MAX_PITCH));
  CHECK_EQ_I(p.regsPerBlock, attr(dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK));
  CHECK_EQ_I(p.clockRate, attr(dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE));
  CHECK_EQ_I(p.textureAlign, attr(dev, CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT));
  CHECK_CU(cuDeviceGetProperties(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuDeviceGetProperties(&p, 4), CUDA_ERROR_INVALID_DEVICE);
  (void)argc;
  (void)argv;
}

/* ---- no server ----------------------------------------------------------------------- */

static void test_basics_no_server(int argc, char **argv) {
  /* A loopback port that is bound but not listening refuses connections;
   * holding it keeps anyone else from taking it meanwhile. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE_TRUE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  setenv("GPUPOOL_SERVER", addr, 1);
  setenv("GPUPOOL_CONNECT_TIMEOUT", "3", 1);

  double t0 = gpt_now();
  CHECK_CU(cuInit(0), CUDA_ERROR_NO_DEVICE);
  double took = gpt_now() - t0;
  CHECK_LE_D(took, 5.0);
  printf("cuInit with no server: %.3f s\n", took);
  int count = -1;
  CHECK_TRUE(cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0);
  close(fd);
  (void)argc;
  (void)argv;
}

/* ---- not supported ----------------------------------------------------------------------- */

/* The functions this issue implements, by the symbol programs link to. */
static const char *const implemented[] = {
    "cuInit", "cuDriverGetVersion", "cuGetErrorName", "cuGetErrorString",
    "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetUuid",
    "cuDeviceGetUuid_v2", "cuDeviceTotalMem_v2", "cuDeviceGetAttribute",
    "cuDeviceComputeCapability", "cuDeviceGetProperties",
    "cuCtxCreate", "cuCtxCreate_v2", "cuCtxCreate_v3", "cuCtxCreate_v4",
    "cuCtxDestroy_v2", "cuCtxPushCurrent_v2", "cuCtxPopCurrent_v2",
    "cuCtxGetCurrent", "cuCtxSetCurrent", "cuCtxGetDevice", "cuCtxSynchronize",
    "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2",
    "cuDevicePrimaryCtxReset_v2", "cuDevicePrimaryCtxGetState",
    "cuDevicePrimaryCtxSetFlags_v2",
    "cuMemAlloc_v2", "cuMemFree_v2", "cuMemGetInfo_v2", "cuMemAllocPitch_v2",
    "cuMemGetAddressRange_v2", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2",
    "cuMemcpyDtoD_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2", "cuMemcpy", "cuMemsetD8_v2", "cuMemsetD16_v2",
    "cuMemsetD32_v2", "cuMemsetD8Async", "cuMemsetD16Async", "cuMemsetD32Async",
    "cuStreamCreate", "cuStreamCreateWithPriority", "cuStreamDestroy_v2",
    "cuStreamSynchronize", "cuStreamQuery", "cuStreamWaitEvent",
    "cuEventCreate", "cuEventRecord", "cuEventQuery", "cuEventSynchronize",
    "cuEventElapsedTime_v2", "cuEventDestroy_v2",
    "cuMemHostAlloc", "cuMemFreeHost", "cuMemAllocHost_v2",
    /* Beyond the list, implemented by the client (cudart asks for
     * them) and tested with the rest: test_context.c, test_streams.c,
     * test_memory.c. */
    "cuCtxGetApiVersion", "cuCtxGetDevice_v2", "cuCtxGetFlags",
    "cuCtxGetStreamPriorityRange", "cuCtxSynchronize_v2",
    "cuMemHostGetDevicePointer_v2", "cuMemHostGetFlags", "cuMemcpyAsync",
    "cuStreamGetCtx", "cuStreamGetFlags", "cuStreamGetPriority",
    /* Modules, functions and launches: test_modules.c. */
    "cuModuleLoad", "cuModuleLoadData", "cuModuleLoadDataEx",
    "cuModuleLoadFatBinary", "cuModuleUnload", "cuModuleGetLoadingMode",
    "cuModuleGetFunction", "cuModuleGetGlobal_v2", "cuFuncGetAttribute",
    "cuFuncSetAttribute", "cuFuncSetCacheConfig", "cuFuncGetModule",
    "cuFuncGetName", "cuFuncGetParamInfo", "cuFuncIsLoaded", "cuFuncLoad",
    "cuLaunchKernel", "cuLaunchKernelEx",
    /* cudart's binding: test_binding.c, tests/unit/test_proc.c. */
    "cuGetProcAddress",
    /* Pointer attributes, 2D/3D copies and memsets, memory pools:
     * test_memory2.c. */
    "cuPointerGetAttribute", "cuPointerGetAttributes", "cuPointerSetAttribute",
    "cuMemcpy2D_v2", "cuMemcpy2DUnaligned_v2", "cuMemcpy2DAsync_v2",
    "cuMemcpy3D_v2", "cuMemcpy3DAsync_v2", "cuMemsetD2D8_v2",
    "cuMemsetD2D16_v2", "cuMemsetD2D32_v2", "cuMemsetD2D8Async",
    "cuMemsetD2D16Async", "cuMemsetD2D32Async",
    "cuDeviceGetDefaultMemPool", "cuDeviceGetMemPool", "cuDeviceSetMemPool",
    "cuMemPoolCreate", "cuMemPoolDestroy", "cuMemPoolTrimTo",
    "cuMemPoolSetAttribute", "cuMemPoolGetAttribute", "cuMemPoolSetAccess",
    "cuMemPoolGetAccess", "cuMemAllocAsync", "cuMemAllocFromPoolAsync",
    "cuMemFreeAsync",
    /* Streams and contexts: test_streams2.c. */
    "cuCtxGetLimit", "cuCtxSetLimit", "cuCtxGetCacheConfig",
    "cuCtxSetCacheConfig", "cuCtxGetSharedMemConfig",
    "cuCtxSetSharedMemConfig", "cuCtxSetFlags", "cuCtxGetId",
    "cuCtxResetPersistingL2Cache", "cuEventRecordWithFlags",
    "cuLaunchHostFunc", "cuStreamAddCallback", "cuStreamAttachMemAsync",
    "cuStreamCopyAttributes", "cuStreamGetAttribute", "cuStreamSetAttribute",
    "cuStreamGetCtx_v2", "cuStreamGetDevice", "cuStreamGetId",
    /* Capture status queries (no stream ever captures): test_streams2
     * (stream_ids), test_cudart (cublas_blas). */
    "cuStreamIsCapturing", "cuStreamGetCaptureInfo", "cuStreamGetCaptureInfo_v2",
    "cuStreamGetCaptureInfo_v3", "cuThreadExchangeStreamCaptureMode",
    "cuOccupancyAvailableDynamicSMemPerBlock",
    "cuOccupancyMaxActiveBlocksPerMultiprocessor",
    "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",
    "cuOccupancyMaxActiveClusters", "cuOccupancyMaxPotentialBlockSize",
    "cuOccupancyMaxPotentialBlockSizeWithFlags",
    "cuOccupancyMaxPotentialClusterSize",
    /* Libraries and kernels: test_libraries.c. */
    "cuLibraryLoadData", "cuLibraryLoadFromFile", "cuLibraryUnload",
    "cuLibraryGetKernel", "cuLibraryGetModule", "cuLibraryGetGlobal",
    "cuLibraryGetManaged", "cuLibraryGetUnifiedFunction",
    "cuKernelGetFunction", "cuKernelGetAttribute", "cuKernelSetAttribute",
    "cuKernelGetName", "cuKernelGetParamInfo", "cuKernelGetLibrary",
    "cuKernelSetCacheConfig", "cuLibraryGetKernelCount",
    "cuLibraryEnumerateKernels", "cuModuleGetFunctionCount",
    "cuModuleEnumerateFunctions",
    NULL};

/* Entry points that the next issues implement (cudart's loader): they must
 * exist, but what they answer now is not this test's business, and calling
 * them with null arguments proves nothing. */
static const char *const later[] = {"cuGetProcAddress_v2", "cuGetExportTable",
                                    NULL};

static bool listed(const char *const *list, const char *name) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], name) == 0) return true;
  return false;
}

typedef CUresult (*any_fn)(uintptr_t, uintptr_t, uintptr_t, uintptr_t,
                           uintptr_t, uintptr_t, uintptr_t, uintptr_t);

static void test_basics_not_supported(int argc, char **argv) {
  start_server();
  CUdevice dev;
  CUcontext ctx = gpt_init_context(&dev);
  (void)ctx;

  int missing = 0, wrong = 0, checked = 0;
  for (size_t i = 0; i < gpt_cu_functions_count; i++) {
    const char *name = gpt_cu_functions[i];
    void *sym = dlsym(RTLD_DEFAULT, name);
    if (sym == NULL) {
      missing++;
      gpt__check_fail(__FILE__, __LINE__, name, "%s",
                      "not exported by libcuda.so.1");
      continue;
    }
    if (listed(implemented, name) || listed(later, name)) {
      gpt__check_pass();
      continue;
    }
    /* Every argument zero: a stub must not read them. Name first, so a
     * crash shows which one. */
    fprintf(stderr, "%s ", name);
    CUresult r = ((any_fn)sym)(0, 0, 0, 0, 0, 0, 0, 0);
    checked++;
    if (r == CUDA_ERROR_NOT_SUPPORTED) {
      gpt__check_pass();
    } else {
      wrong++;
      gpt__check_fail(__FILE__, __LINE__, name,
                      "expected CUDA_ERROR_NOT_SUPPORTED, got %s (%d)",
                      gpt_cu_name(r), (int)r);
    }
  }
  fputc('\n', stderr);
  printf("%zu functions in cuda.h: %d missing, %d outside the set called, "
         "%d of them not answering CUDA_ERROR_NOT_SUPPORTED\n",
         gpt_cu_functions_count, missing, checked, wrong);

  /* The session still works after all that. */
  CUdeviceptr p;
  CHECK_OK(cuMemAlloc(&p, 4096));
  CHECK_OK(cuMemFree(p));
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"init", test_basics_init, 30},
      {"error_strings", test_basics_error_strings, 30},
      {"devices", test_basics_devices, 30},
      {"no_server", test_basics_no_server, 30},
      {"not_supported", test_basics_not_supported, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
