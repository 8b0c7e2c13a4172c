/* Integration: how cudart binds to libcuda.so.1. The program does what
 * cudart 13 does: dlopen("libcuda.so.1", RTLD_NOW), dlsym() of
 * cuGetProcAddress_v2 alone, and every other entry point, cuGetExportTable
 * included, through it. Then the private export tables: their sizes and
 * slots, the primary context's handle, the integrity check (recomputed here
 * from its documented message), context-local storage with destructors that
 * call the driver (so they must run without the library's lock), and the
 * fatbin loaders of CUDART_INTERFACE.
 *
 * Entry points are typed with the toolkit's own cudaTypedefs.h. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cudaTypedefs.h>

#include "gpupool/gpupool.h"
#include "harness.h"
#include "md2.h"
#include "msg.h"
#include "raw.h"
#include "wire.h"

static struct gpt_server server;
static PFN_cuGetProcAddress_v12000 gpa;

/* What the program uses, each looked up at the version cudart 13 asks for
 * (or the one whose variant the scenario wants). */
static struct {
  PFN_cuInit_v2000 init;
  PFN_cuDriverGetVersion_v2020 driver_version;
  PFN_cuGetExportTable_v3000 export_table;
  PFN_cuDeviceGet_v2000 device_get;
  PFN_cuDeviceGetUuid_v9020 device_uuid;
  PFN_cuDeviceGetAttribute_v2000 device_attr;
  PFN_cuCtxCreate_v12050 ctx_create;
  PFN_cuCtxDestroy_v4000 ctx_destroy;
  PFN_cuCtxGetCurrent_v4000 ctx_get_current;
  PFN_cuCtxSetCurrent_v4000 ctx_set_current;
  PFN_cuCtxPopCurrent_v4000 ctx_pop;
  PFN_cuCtxSynchronize_v13000 ctx_synchronize;
  PFN_cuCtxGetApiVersion_v3020 ctx_api_version;
  PFN_cuDevicePrimaryCtxRetain_v7000 primary_retain;
  PFN_cuDevicePrimaryCtxRelease_v11000 primary_release;
  PFN_cuDevicePrimaryCtxReset_v11000 primary_reset;
  PFN_cuDevicePrimaryCtxGetState_v7000 primary_state;
  PFN_cuMemAlloc_v3020 mem_alloc;
  PFN_cuMemFree_v3020 mem_free;
  PFN_cuMemcpyHtoD_v7000_ptds htod;
  PFN_cuMemcpyDtoH_v3020 dtoh;
  PFN_cuModuleGetFunction_v2000 module_function;
  PFN_cuModuleUnload_v2000 module_unload;
  PFN_cuLaunchKernel_v7000_ptsz launch;
  PFN_cuModuleLoadData_v2000 module_load_data;
  PFN_cuStreamSynchronize_v7000_ptsz stream_synchronize;
} drv;

/* cuGetProcAddress_v2 from libcuda.so.1, loaded the way cudart loads it;
 * the library must be the one under test. */
static void open_driver(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (h == NULL) {
    gpt__check_fail(__FILE__, __LINE__, "dlopen(libcuda.so.1)", "%s",
                    dlerror());
    gpt__abort_scenario();
  }
  gpa = (PFN_cuGetProcAddress_v12000)dlsym(h, "cuGetProcAddress_v2");
  REQUIRE_TRUE(gpa != NULL);
  Dl_info info;
  char got[PATH_MAX], want[PATH_MAX];
  const char *lib = getenv("GPUPOOL_TEST_LIBCUDA");
  REQUIRE_TRUE(lib != NULL && dladdr((void *)gpa, &info) != 0);
  REQUIRE_TRUE(realpath(info.dli_fname, got) != NULL);
  REQUIRE_TRUE(realpath(lib, want) != NULL);
  CHECK_STR_EQ(got, want);
}

/* |name| at |version| with |flags|, which must be found. */
static void *get(const char *name, int version, cuuint64_t flags) {
  void *p = NULL;
  CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
  CUresult r = gpa(name, &p, version, flags, &st);
  if (!CHECK_OK(r) || !CHECK_EQ_I(st, CU_GET_PROC_ADDRESS_SUCCESS) ||
      !CHECK_TRUE(p != NULL)) {
    fprintf(stderr, "    (looking up %s at %d)\n", name, version);
    gpt__abort_scenario();
  }
  return p;
}

#define PTDS CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM

static void bind_all(void) {
  open_driver();
  drv.init = get("cuInit", 2000, 0);
  drv.driver_version = get("cuDriverGetVersion", 2020, 0);
  drv.export_table = get("cuGetExportTable", 3000, 0);
  drv.device_get = get("cuDeviceGet", 2000, 0);
  drv.device_uuid = get("cuDeviceGetUuid", 9020, 0);
  drv.device_attr = get("cuDeviceGetAttribute", 2000, 0);
  drv.ctx_create = get("cuCtxCreate", 12050, 0);
  drv.ctx_destroy = get("cuCtxDestroy", 4000, 0);
  drv.ctx_get_current = get("cuCtxGetCurrent", 4000, 0);
  drv.ctx_set_current = get("cuCtxSetCurrent", 4000, 0);
  drv.ctx_pop = get("cuCtxPopCurrent", 4000, 0);
  drv.ctx_synchronize = get("cuCtxSynchronize", 13000, 0);
  drv.ctx_api_version = get("cuCtxGetApiVersion", 3020, 0);
  drv.primary_retain = get("cuDevicePrimaryCtxRetain", 7000, 0);
  drv.primary_release = get("cuDevicePrimaryCtxRelease", 11000, 0);
  drv.primary_reset = get("cuDevicePrimaryCtxReset", 11000, 0);
  drv.primary_state = get("cuDevicePrimaryCtxGetState", 7000, 0);
  drv.mem_alloc = get("cuMemAlloc", 3020, 0);
  drv.mem_free = get("cuMemFree", 3020, 0);
  drv.htod = get("cuMemcpyHtoD", 13000, PTDS);
  drv.dtoh = get("cuMemcpyDtoH", 13000, 0);
  drv.module_function = get("cuModuleGetFunction", 2000, 0);
  drv.module_unload = get("cuModuleUnload", 2000, 0);
  drv.launch = get("cuLaunchKernel", 13000, PTDS);
  drv.module_load_data = get("cuModuleLoadData", 2000, 0);
  drv.stream_synchronize = get("cuStreamSynchronize", 13000, PTDS);
}

static void start(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  REQUIRE_OK(drv.init(0));
}

/* ---- The export tables' ids (memory order) ------------------------------------ */

static const CUuuid CUDART_INTERFACE = {{(char)0x6B, (char)0xD5, (char)0xFB,
    (char)0x6C, (char)0x5B, (char)0xF4, (char)0xE7, (char)0x4A, (char)0x89,
    (char)0x87, (char)0xD9, (char)0x39, (char)0x12, (char)0xFD, (char)0x9D,
    (char)0xF9}};
static const CUuuid TOOLS_HOOKS = {{(char)0xA0, (char)0x94, (char)0x79,
    (char)0x8C, (char)0x2E, (char)0x74, (char)0x2E, (char)0x74, (char)0x93,
    (char)0xF2, (char)0x08, (char)0x00, (char)0x20, (char)0x0C, (char)0x0A,
    (char)0x66}};
static const CUuuid TOOLS_TLS = {{(char)0x42, (char)0xD8, (char)0x5A,
    (char)0x81, (char)0x23, (char)0xF6, (char)0xCB, (char)0x47, (char)0x82,
    (char)0x98, (char)0xF6, (char)0xE7, (char)0x8A, (char)0x3A, (char)0xEC,
    (char)0xDC}};
static const CUuuid CONTEXT_LOCAL_STORAGE = {{(char)0xC6, (char)0x93,
    (char)0x33, (char)0x6E, (char)0x11, (char)0x21, (char)0xDF, (char)0x11,
    (char)0xA8, (char)0xC3, (char)0x68, (char)0xF3, (char)0x55, (char)0xD8,
    (char)0x95, (char)0x93}};
static const CUuuid CONTEXT_CHECKS = {{(char)0x26, (char)0x3E, (char)0x88,
    (char)0x60, (char)0x7C, (char)0xD2, (char)0x61, (char)0x43, (char)0x92,
    (char)0xF6, (char)0xBB, (char)0xD5, (char)0x00, (char)0x6D, (char)0xFA,
    (char)0x7E}};
static const CUuuid INTEGRITY_CHECK = {{(char)0xD4, (char)0x08, (char)0x20,
    (char)0x55, (char)0xBD, (char)0xE6, (char)0x70, (char)0x4B, (char)0x8D,
    (char)0x34, (char)0xBA, (char)0x12, (char)0x3C, (char)0x66, (char)0xE1,
    (char)0xF2}};
static const CUuuid CONTEXT_ID = {{(char)0x21, (char)0x31, (char)0x8C,
    (char)0x60, (char)0x97, (char)0x14, (char)0x32, (char)0x48, (char)0x8C,
    (char)0xA6, (char)0x41, (char)0xFF, (char)0x73, (char)0x24, (char)0xC8,
    (char)0xF2}};
static const CUuuid LOGGER = {{(char)0xF8, (char)0xCF, (char)0xF9,
    (char)0x51, (char)0x21, (char)0x46, (char)0x8B, (char)0x4E, (char)0xB9,
    (char)0xE2, (char)0xFB, (char)0x46, (char)0x9E, (char)0x7C, (char)0x0D,
    (char)0xD9}};

/* The slots as cudart reads them. */
typedef void (*cls_dtor)(CUcontext, void *, void *);
struct cudart_interface {
  size_t size;
  CUresult (*load_wrapper)(CUmodule *, const void *);
  CUresult (*primary_ctx)(CUcontext *, CUdevice);
  void *unused3[3];
  CUresult (*load_wrapper_ex)(CUmodule *, const void *, void *, void *,
                              unsigned);
  void (*slot7)(size_t);
  CUresult (*load_fatbin_ex)(const void *, CUmodule *, void *, void *,
                             unsigned);
  void *unused9[3];
  CUresult (*load_compilers)(void);
};
struct tools_hooks {
  size_t size;
  void *unused1;
  void (*slot2)(void **, size_t *);
  void *unused3[3];
  void (*slot6)(void **, size_t *);
};
struct cls_table {
  CUresult (*put)(CUcontext, void *, void *, cls_dtor);
  CUresult (*del)(CUcontext, void *);
  CUresult (*get)(void **, CUcontext, void *);
};
struct context_checks {
  size_t size;
  void *unused1;
  CUresult (*slot2)(CUcontext, uint32_t *, void **);
  uint32_t (*slot3)(void);
};
struct integrity {
  size_t size;
  CUresult (*check)(uint32_t, uint64_t, uint64_t *);
  void *unused2;
};
struct logger {
  size_t size;
  void (*log)(const char *, int, const char *, va_list *);
};

static const void *table(const CUuuid *id) {
  const void *t = NULL;
  if (!CHECK_OK(drv.export_table(&t, id)) || !CHECK_TRUE(t != NULL))
    gpt__abort_scenario();
  return t;
}

/* ---- proc: look-ups and the entry points they give ---------------------------- */

static void test_binding_proc(int argc, char **argv) {
  bind_all();
  void *p = (void *)0x1;
  CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;

  /* Before cuInit, as cudart starts: the empty look-up, the logger, the
   * version. */
  CHECK_CU(gpa("", &p, 0, 0, &st), CUDA_ERROR_NOT_FOUND);
  CHECK_EQ_I(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  CHECK_TRUE(p == NULL);
  const void *t = NULL;
  CHECK_OK(drv.export_table(&t, &LOGGER));
  CHECK_TRUE(t != NULL);
  int version = 0;
  CHECK_OK(drv.driver_version(&version));
  CHECK_EQ_I(version, CUDA_VERSION);

  start();
  CHECK_OK(drv.driver_version(&version));
  /* cudart refuses a driver older than its own major version. */
  CHECK_GE_I(version, 13000);
  CHECK_GE_I(version, (CUDA_VERSION / 1000) * 1000);
  printf("driver version %d\n", version);

  /* The same pointers as the variants' own exported names. */
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  REQUIRE_TRUE(h != NULL);
  CHECK_EQ_PTR((void *)drv.ctx_create, dlsym(h, "cuCtxCreate_v4"));
  CHECK_EQ_PTR((void *)drv.ctx_synchronize, dlsym(h, "cuCtxSynchronize_v2"));
  CHECK_EQ_PTR((void *)drv.mem_alloc, dlsym(h, "cuMemAlloc_v2"));
  CHECK_EQ_PTR((void *)drv.htod, dlsym(h, "cuMemcpyHtoD_v2_ptds"));
  CHECK_EQ_PTR((void *)drv.launch, dlsym(h, "cuLaunchKernel_ptsz"));
  CHECK_EQ_PTR(get("cuCtxGetDevice", 13000, 0),
               dlsym(h, "cuCtxGetDevice_v2"));
  CHECK_EQ_PTR(get("cuDeviceTotalMem", 3020, 0),
               dlsym(h, "cuDeviceTotalMem_v2"));
  CHECK_EQ_PTR(get("cuDevicePrimaryCtxSetFlags", 11000, 0),
               dlsym(h, "cuDevicePrimaryCtxSetFlags_v2"));
  dlclose(h);

  /* Not implemented, unknown, too old. */
  CHECK_CU(gpa("cuGraphicsMapResources", &p, 13000, 0, &st),
           CUDA_ERROR_NOT_FOUND);
  CHECK_EQ_I(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  CHECK_CU(gpa("cuNoSuchThing", &p, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
  CHECK_EQ_I(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  CHECK_CU(gpa("cuCtxCreate", &p, 1000, 0, &st), CUDA_ERROR_NOT_FOUND);
  CHECK_EQ_I(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  CHECK_CU(gpa("cuInit", &p, 13000, 16, &st), CUDA_ERROR_INVALID_VALUE);

  /* The pointers work: a context through cuCtxCreate_v4, memory through
   * the _v2 and _ptds forms. */
  CUdevice dev;
  CUcontext ctx = NULL;
  REQUIRE_OK(drv.device_get(&dev, 0));
  REQUIRE_OK(drv.ctx_create(&ctx, NULL, 0, dev));
  CUdeviceptr d = 0;
  unsigned char in[4096], out[4096];
  gpt_fill(in, sizeof in, 42);
  REQUIRE_OK(drv.mem_alloc(&d, sizeof in));
  CHECK_OK(drv.htod(d, in, sizeof in));
  CHECK_OK(drv.dtoh(out, d, sizeof out));
  CHECK_MEM_EQ(out, in, sizeof in);
  CHECK_OK(drv.mem_free(d));
  CHECK_OK(drv.ctx_synchronize(ctx));
  CHECK_OK(drv.ctx_destroy(ctx));
  (void)argc;
  (void)argv;
}

/* ---- tables: every export table's shape --------------------------------------- */

/* The integrity message as the facts document describes it, recomputed
 * here: u32 driver version, u32 version, u32 pid, u32 thread, u64 the
 * CUDART_INTERFACE and INTEGRITY_CHECK tables, u64 the check's own
 * address, u64 the time; per device its UUID and i32 PCI domain, bus,
 * device; little-endian, unpadded; HMAC-MD2 under the check's key. */
static void expected_integrity(uint32_t v, uint64_t secs,
                               const struct cudart_interface *ci,
                               const struct integrity *ic, uint64_t out[2]) {
  static const uint8_t key[16] = {0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9,
                                  0xA7, 0x52, 0xAA, 0x08, 0x41, 0x36,
                                  0x0B, 0xF5, 0x5A, 0x9F};
  uint8_t msg[48 + 28];
  uint8_t *p = msg;
  int dv = 0;
  CHECK_OK(drv.driver_version(&dv));
  uint64_t fields[8] = {(uint32_t)dv,  v, (uint32_t)getpid(),
                        (uint32_t)(uintptr_t)pthread_self(),
                        (uintptr_t)ci, (uintptr_t)ic,
                        (uintptr_t)ic->check, secs};
  for (int f = 0; f < 8; f++)
    for (int b = 0; b < (f < 4 ? 4 : 8); b++)
      *p++ = (uint8_t)(fields[f] >> (8 * b));
  CUuuid u;
  CHECK_OK(drv.device_uuid(&u, 0));
  memcpy(p, u.bytes, 16);
  p += 16;
  static const CUdevice_attribute pci[3] = {CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
                                            CU_DEVICE_ATTRIBUTE_PCI_BUS_ID,
                                            CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID};
  for (int a = 0; a < 3; a++) {
    int x = -1;
    CHECK_OK(drv.device_attr(&x, pci[a], 0));
    for (int b = 0; b < 4; b++)
      *p++ = (uint8_t)((uint32_t)x >> (8 * b));
  }
  CHECK_EQ_I(p - msg, (long long)sizeof msg);
  uint8_t mac[16];
  gp__hmac_md2(key, sizeof key, msg, sizeof msg, mac);
  memcpy(out, mac, 16);
}

struct thread_check {
  const struct integrity *ic;
  uint64_t out[2];
  CUresult r;
};

static void *check_in_thread(void *arg) {
  struct thread_check *tc = arg;
  tc->r = tc->ic->check(13002, 1700000000, tc->out);
  return NULL;
}

static void test_binding_tables(int argc, char **argv) {
  bind_all();
  start();
  CUdevice dev;
  REQUIRE_OK(drv.device_get(&dev, 0));

  /* CUDART_INTERFACE: 13 slots; slot 2 is the primary context's handle,
   * not activated, the same handle a retain returns. */
  const struct cudart_interface *ci = table(&CUDART_INTERFACE);
  CHECK_EQ_U(ci->size, 13 * 8);
  REQUIRE_TRUE(ci->primary_ctx != NULL);
  CUcontext prim = NULL, retained = NULL;
  unsigned flags = 99;
  int active = -1;
  CHECK_OK(ci->primary_ctx(&prim, dev));
  CHECK_TRUE(prim != NULL);
  CHECK_OK(drv.primary_state(dev, &flags, &active));
  CHECK_EQ_I(active, 0);
  CHECK_CU(ci->primary_ctx(NULL, dev), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(ci->primary_ctx(&retained, 7), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(ci->primary_ctx(&retained, -1), CUDA_ERROR_INVALID_DEVICE);
  CHECK_OK(drv.primary_retain(&retained, dev));
  CHECK_EQ_PTR(retained, prim);
  CHECK_OK(drv.primary_state(dev, &flags, &active));
  CHECK_EQ_I(active, 1);
  CHECK_OK(drv.primary_release(dev));
  CHECK_TRUE(ci->slot7 != NULL);
  ci->slot7(0);
  CHECK_TRUE(ci->load_compilers != NULL && ci->load_compilers() == 0);
  CHECK_TRUE(ci->load_wrapper != NULL && ci->load_wrapper_ex != NULL &&
             ci->load_fatbin_ex != NULL);
  CHECK_TRUE(ci->unused3[0] == NULL && ci->unused9[2] == NULL);

  /* TOOLS_RUNTIME_CALLBACK_HOOKS: 7 slots (cudart checks the size); slots
   * 2 and 6 give zeroed buffers of 1024 and 14 elements. */
  const struct tools_hooks *th = table(&TOOLS_HOOKS);
  CHECK_EQ_U(th->size, 7 * 8);
  void *buf = NULL;
  size_t n = 0;
  REQUIRE_TRUE(th->slot2 != NULL && th->slot6 != NULL);
  th->slot2(&buf, &n);
  CHECK_TRUE(buf != NULL);
  CHECK_EQ_U(n, 1024);
  if (buf != NULL) CHECK_MEM_ALL(buf, 0, 1024 * sizeof(uint32_t));
  th->slot6(&buf, &n);
  CHECK_TRUE(buf != NULL);
  CHECK_EQ_U(n, 14);
  if (buf != NULL) CHECK_MEM_ALL(buf, 0, 14 * sizeof(uint32_t));
  th->slot2(NULL, NULL); /* no crash */

  /* TOOLS_TLS: 4 slots; slot 2 the current context (cuBLASLt), which
   * CONTEXT_ID's slot 4 turns into an id never reused. */
  const struct tools_tls {
    size_t size;
    void *unused1;
    int (*current_ctx)(void **);
    void *unused3;
  } *tls = table(&TOOLS_TLS);
  CHECK_EQ_U(tls->size, 4 * 8);
  const struct context_id_table {
    size_t size;
    void *unused[3];
    int (*context_id)(CUcontext, unsigned long long *);
    void *unused5[34];
    int (*stream_id)(CUcontext, CUstream, unsigned long long *);
    void *unused40[11];
    int (*stream)(CUcontext, CUstream, CUstream *, int);
  } *cid = table(&CONTEXT_ID);
  CHECK_EQ_U(cid->size, 64 * 8);
  REQUIRE_TRUE(tls->current_ctx != NULL && cid->context_id != NULL);
  void *cur = (void *)0x1;
  CHECK_CU(tls->current_ctx(&cur), CUDA_ERROR_INVALID_CONTEXT); /* none */
  CHECK_TRUE(cur == NULL);
  CHECK_CU(tls->current_ctx(NULL), CUDA_ERROR_INVALID_VALUE);
  CUcontext c1 = NULL, c2 = NULL;
  unsigned long long id1 = 0, id2 = 0, id1b = 0;
  REQUIRE_OK(drv.ctx_create(&c1, NULL, 0, dev));
  CHECK_OK(tls->current_ctx(&cur));
  CHECK_EQ_PTR(cur, c1);
  CHECK_OK(cid->context_id(c1, &id1));
  CHECK_OK(cid->context_id(c1, &id1b));
  CHECK_EQ_U(id1b, id1);
  REQUIRE_OK(drv.ctx_create(&c2, NULL, 0, dev));
  CHECK_OK(cid->context_id(c2, &id2));
  CHECK_NE_U(id2, id1);
  CHECK_OK(drv.ctx_destroy(c2));
  CHECK_CU(cid->context_id(c2, &id2), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cid->context_id(c1, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cid->context_id(NULL, &id2), CUDA_ERROR_INVALID_VALUE);
  /* A context made after one is destroyed, maybe at its address, gets
   * an id of its own. */
  CHECK_OK(drv.ctx_destroy(c1));
  REQUIRE_OK(drv.ctx_create(&c2, NULL, 0, dev));
  CHECK_OK(cid->context_id(c2, &id2));
  CHECK_NE_U(id2, id1);

  /* Slots 51 and 39 (cuBLAS, per-stream state): a stream of the current
   * context as a handle, then its id, which is cuStreamGetId's. */
  PFN_cuStreamCreate_v2000 stream_create = get("cuStreamCreate", 2000, 0);
  PFN_cuStreamGetId_v12000 stream_get_id = get("cuStreamGetId", 12000, 0);
  PFN_cuStreamDestroy_v4000 stream_destroy = get("cuStreamDestroy", 4000, 0);
  REQUIRE_TRUE(cid->stream != NULL && cid->stream_id != NULL);
  CUstream s1 = NULL, as = (CUstream)0x1, pt = NULL;
  unsigned long long sid = 0, api_id = 0, legacy = 0, per_thread = 0;
  REQUIRE_OK(stream_create(&s1, 0));
  CHECK_OK(cid->stream(c2, s1, &as, 0));
  CHECK_EQ_PTR(as, s1);
  CHECK_OK(cid->stream_id(c2, as, &sid));
  CHECK_OK(stream_get_id(s1, &api_id));
  CHECK_EQ_U(sid, api_id);
  /* NULL: the legacy stream, or the per-thread one when asked. */
  CHECK_OK(cid->stream(c2, NULL, &as, 0));
  CHECK_OK(cid->stream_id(c2, as, &legacy));
  CHECK_OK(cid->stream(c2, NULL, &pt, 1));
  CHECK_EQ_PTR(pt, CU_STREAM_PER_THREAD);
  CHECK_OK(cid->stream_id(c2, pt, &per_thread));
  CHECK_NE_U(legacy, per_thread);
  CHECK_NE_U(legacy, sid);
  CHECK_NE_U(per_thread, sid);
  /* Not a stream, not the current context, no output. */
  CHECK_CU(cid->stream(c2, (CUstream)&sid, &as, 0),
           CUDA_ERROR_INVALID_HANDLE);
  CHECK_TRUE(as == NULL);
  CHECK_CU(cid->stream(c1, s1, &as, 0), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cid->stream(c2, s1, NULL, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cid->stream_id(c2, s1, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(stream_destroy(s1));
  CHECK_CU(cid->stream_id(c2, s1, &sid), CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(drv.ctx_destroy(c2));

  /* CONTEXT_LOCAL_STORAGE: three functions, no size (scenario cls). */
  const struct cls_table *cls = table(&CONTEXT_LOCAL_STORAGE);
  CHECK_TRUE(cls->put != NULL && cls->del != NULL && cls->get != NULL);

  /* CONTEXT_CHECKS: 4 slots; slot 2 says "not wrapped", slot 3 0. */
  const struct context_checks *cc = table(&CONTEXT_CHECKS);
  CHECK_EQ_U(cc->size, 4 * 8);
  uint32_t wrapped = 0xdeadbeef;
  void *inner = NULL;
  REQUIRE_TRUE(cc->slot2 != NULL && cc->slot3 != NULL);
  CHECK_OK(cc->slot2(prim, &wrapped, &inner));
  CHECK_EQ_U(wrapped, 0);
  CHECK_EQ_U(cc->slot3(), 0);

  /* INTEGRITY_CHECK: 3 slots; constants for versions ending in 0 and 1,
   * else the HMAC of the documented message. */
  const struct integrity *ic = table(&INTEGRITY_CHECK);
  CHECK_EQ_U(ic->size, 3 * 8);
  REQUIRE_TRUE(ic->check != NULL);
  uint64_t out[2] = {0, 0}, want[2];
  CHECK_OK(ic->check(13000, 1700000000, out));
  CHECK_EQ_U(out[0], 0x3341181C03CB675Cull);
  CHECK_EQ_U(out[1], 0x8ED383AA1F4CD1E8ull);
  CHECK_OK(ic->check(12990, 5, out));
  CHECK_EQ_U(out[0], 0x3341181C03CB675Cull);
  CHECK_OK(ic->check(13001, 1700000000, out));
  CHECK_EQ_U(out[0], 0x1841181C03CB675Cull);
  CHECK_EQ_U(out[1], 0x8ED383AA1F4CD1E8ull);
  uint64_t secs = (uint64_t)time(NULL);
  for (uint32_t v = 13002; v <= 13009; v++) {
    CHECK_OK(ic->check(v, secs, out));
    expected_integrity(v, secs, ci, ic, want);
    CHECK_EQ_U(out[0], want[0]);
    CHECK_EQ_U(out[1], want[1]);
  }
  /* The answer is bound to the time and to the calling thread. */
  uint64_t other[2];
  CHECK_OK(ic->check(13002, secs, out));
  CHECK_OK(ic->check(13002, secs + 1, other));
  CHECK_TRUE(memcmp(out, other, sizeof out) != 0);
  struct thread_check tc = {.ic = ic};
  pthread_t thr;
  REQUIRE_TRUE(pthread_create(&thr, NULL, check_in_thread, &tc) == 0);
  pthread_join(thr, NULL);
  CHECK_OK(tc.r);
  CHECK_OK(ic->check(13002, 1700000000, out));
  CHECK_TRUE(memcmp(out, tc.out, sizeof out) != 0);
  CHECK_CU(ic->check(13002, secs, NULL), CUDA_ERROR_INVALID_VALUE);

  /* The logger: its one function, callable. */
  const struct logger *lg = table(&LOGGER);
  CHECK_TRUE(lg->log != NULL);

  /* The same table twice; unknown ids and bad arguments. */
  CHECK_EQ_PTR(table(&CUDART_INTERFACE), ci);
  CUuuid bad = INTEGRITY_CHECK;
  bad.bytes[15] ^= 1;
  const void *t = (const void *)0x1;
  CHECK_CU(drv.export_table(&t, &bad), CUDA_ERROR_INVALID_VALUE);
  CHECK_TRUE(t == NULL);
  CUuuid zero;
  memset(&zero, 0, sizeof zero);
  CHECK_CU(drv.export_table(&t, &zero), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(drv.export_table(NULL, &CUDART_INTERFACE),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(drv.export_table(&t, NULL), CUDA_ERROR_INVALID_VALUE);
  (void)argc;
  (void)argv;
}

/* ---- cls: context-local storage and its destructors --------------------------- */

static const struct cls_table *cls;

/* What each destructor call saw. The destructor calls the driver: a
 * function that takes the library's lock (CLS get on the primary context,
 * cuDevicePrimaryCtxGetState). Were the destructors run with the lock held,
 * that would deadlock and the watchdog would end the scenario. */
#define MAX_DTORS 16
static struct dtor_call {
  CUcontext ctx;
  void *key;
  void *value;
  CUresult state_r;
  CUresult get_r;
} dtors[MAX_DTORS];
static int ndtors;
static CUcontext probe_ctx;   /* the context the destructor queries */
static void *probe_key;

static void dtor(CUcontext ctx, void *key, void *value) {
  if (ndtors == MAX_DTORS) return;
  struct dtor_call *d = &dtors[ndtors++];
  unsigned flags;
  int active;
  void *v = NULL;
  d->ctx = ctx;
  d->key = key;
  d->value = value;
  d->state_r = drv.primary_state(0, &flags, &active);
  d->get_r = cls->get(&v, probe_ctx, probe_key);
}

static void test_binding_cls(int argc, char **argv) {
  bind_all();
  int k1, k2, k3, v1, v1b, v2, v3, vb, v4;
  void *v = NULL;
  CUcontext prim = NULL, b = NULL;

  cls = table(&CONTEXT_LOCAL_STORAGE);
  CHECK_CU(cls->get(&v, NULL, &k1), CUDA_ERROR_NOT_INITIALIZED);
  CHECK_CU(cls->put(NULL, &k1, &v1, dtor), CUDA_ERROR_NOT_INITIALIZED);
  start();
  CUdevice dev;
  REQUIRE_OK(drv.device_get(&dev, 0));

  /* No current context yet. */
  CHECK_CU(cls->get(&v, NULL, &k1), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cls->get(NULL, NULL, &k1), CUDA_ERROR_INVALID_VALUE);

  /* cudart's order: the primary handle, made current, then retained. */
  const struct cudart_interface *ci = table(&CUDART_INTERFACE);
  REQUIRE_OK(ci->primary_ctx(&prim, dev));
  /* An inactive primary context may be asked: it has nothing yet. */
  CHECK_CU(cls->get(&v, prim, &k1), CUDA_ERROR_INVALID_HANDLE);
  REQUIRE_OK(drv.ctx_set_current(prim));
  CUcontext r = NULL;
  REQUIRE_OK(drv.primary_retain(&r, dev));
  CHECK_EQ_PTR(r, prim);

  /* Absent: 400 (CUDA_ERROR_INVALID_HANDLE), value NULL. */
  v = &v2;
  CHECK_CU(cls->get(&v, NULL, &k1), CUDA_ERROR_INVALID_HANDLE);
  CHECK_TRUE(v == NULL);
  CHECK_EQ_I(CUDA_ERROR_INVALID_HANDLE, 400);

  /* put, get (NULL is the current context), replace. */
  CHECK_OK(cls->put(NULL, &k1, &v1, dtor));
  CHECK_OK(cls->get(&v, NULL, &k1));
  CHECK_EQ_PTR(v, &v1);
  CHECK_OK(cls->get(&v, prim, &k1));
  CHECK_EQ_PTR(v, &v1);
  CHECK_OK(cls->put(prim, &k2, &v2, NULL));
  CHECK_OK(cls->put(NULL, &k1, &v1b, dtor));
  CHECK_OK(cls->get(&v, NULL, &k1));
  CHECK_EQ_PTR(v, &v1b);
  CHECK_OK(cls->get(&v, NULL, &k2));
  CHECK_EQ_PTR(v, &v2);

  /* Per context: a new context sees none of the primary's values. */
  REQUIRE_OK(drv.ctx_create(&b, NULL, 0, dev));
  CHECK_CU(cls->get(&v, NULL, &k1), CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(cls->put(NULL, &k1, &vb, dtor));
  CHECK_OK(cls->get(&v, b, &k1));
  CHECK_EQ_PTR(v, &vb);
  CHECK_OK(cls->get(&v, prim, &k1));
  CHECK_EQ_PTR(v, &v1b);

  /* delete: gone, and its destructor never runs. */
  CHECK_CU(cls->del(b, &k3), CUDA_ERROR_INVALID_HANDLE);
  CHECK_OK(cls->put(b, &k3, &v3, dtor));
  CHECK_OK(cls->del(b, &k3));
  CHECK_CU(cls->get(&v, b, &k3), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cls->get(&v, (CUcontext)&v3, &k1), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cls->put((CUcontext)&v3, &k1, &v1, dtor),
           CUDA_ERROR_INVALID_CONTEXT);

  /* cuCtxDestroy runs b's destructor, without the lock. */
  probe_ctx = prim;
  probe_key = &k1;
  ndtors = 0;
  CHECK_OK(drv.ctx_destroy(b));
  if (CHECK_EQ_I(ndtors, 1)) {
    CHECK_EQ_PTR(dtors[0].ctx, b);
    CHECK_EQ_PTR(dtors[0].key, &k1);
    CHECK_EQ_PTR(dtors[0].value, &vb);
    CHECK_OK(dtors[0].state_r);
    CHECK_OK(dtors[0].get_r);
  }
  CHECK_CU(cls->get(&v, b, &k1), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_OK(cls->get(&v, prim, &k1)); /* the primary's are untouched */
  CHECK_EQ_PTR(v, &v1b);

  /* A reset of the primary context runs its destructors (k2 has none)
   * and empties its storage; the destructor's own CLS query of the reset
   * context finds nothing. */
  CUcontext cur = NULL;
  CHECK_OK(drv.ctx_get_current(&cur));
  CHECK_EQ_PTR(cur, prim);
  ndtors = 0;
  CHECK_OK(drv.primary_reset(dev));
  if (CHECK_EQ_I(ndtors, 1)) {
    CHECK_EQ_PTR(dtors[0].ctx, prim);
    CHECK_EQ_PTR(dtors[0].key, &k1);
    CHECK_EQ_PTR(dtors[0].value, &v1b);
    CHECK_OK(dtors[0].state_r);
    CHECK_CU(dtors[0].get_r, CUDA_ERROR_INVALID_HANDLE);
  }
  CHECK_CU(cls->get(&v, prim, &k1), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cls->get(&v, prim, &k2), CUDA_ERROR_INVALID_HANDLE);
  ndtors = 0;
  CHECK_OK(drv.primary_reset(dev)); /* inactive: nothing to run */
  CHECK_EQ_I(ndtors, 0);

  /* The release that brings the count to 0 runs them too, not before. */
  REQUIRE_OK(drv.primary_retain(&r, dev)); /* count 2, active again */
  CHECK_OK(cls->put(prim, &k1, &v4, dtor));
  CHECK_OK(drv.primary_release(dev));
  CHECK_EQ_I(ndtors, 0);
  CHECK_OK(cls->get(&v, prim, &k1));
  CHECK_EQ_PTR(v, &v4);
  CHECK_OK(drv.primary_release(dev));
  if (CHECK_EQ_I(ndtors, 1)) {
    CHECK_EQ_PTR(dtors[0].ctx, prim);
    CHECK_EQ_PTR(dtors[0].value, &v4);
    CHECK_OK(dtors[0].state_r);
  }
  CHECK_CU(cls->get(&v, prim, &k1), CUDA_ERROR_INVALID_HANDLE);
  (void)argc;
  (void)argv;
}

/* ---- cls_busy: storage lookups while another thread waits on the device ------- */

/* spin(ns): spins on %globaltimer for |ns| nanoseconds. */
static const char spin_ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry spin(\n"
    "  .param .u64 spin_ns\n"
    ")\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [spin_ns];\n"
    "  mov.u64 %rd2, %globaltimer;\n"
    "  add.u64 %rd3, %rd2, %rd1;\n"
    "$L__spin_loop:\n"
    "  mov.u64 %rd4, %globaltimer;\n"
    "  setp.lt.u64 %p1, %rd4, %rd3;\n"
    "  @%p1 bra $L__spin_loop;\n"
    "  ret;\n"
    "}\n";

struct busy_sync {
  CUcontext ctx;
  CUfunction spin;
  atomic_int launched, done;
  CUresult launch_r, sync_r;
  double took;
};

/* Launches a 2 s kernel on the thread's stream and waits for it. */
static void *busy_sync_thread(void *arg) {
  struct busy_sync *b = arg;
  b->launch_r = drv.ctx_set_current(b->ctx);
  uint64_t ns = 2000000000ull;
  void *args[] = {&ns};
  if (b->launch_r == CUDA_SUCCESS)
    b->launch_r = drv.launch(b->spin, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
  double t0 = gpt_now();
  atomic_store(&b->launched, 1);
  b->sync_r = drv.stream_synchronize(NULL);
  b->took = gpt_now() - t0;
  atomic_store(&b->done, 1);
  return NULL;
}

/* cudart asks for its context's storage at the start of every runtime
 * call: a thread's lookups of its current context's storage go on while
 * another thread sits in cuStreamSynchronize behind a long kernel (which
 * holds the connection for the whole wait). */
static void test_binding_cls_busy(int argc, char **argv) {
  bind_all();
  start();
  cls = table(&CONTEXT_LOCAL_STORAGE);
  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  int key, val;
  REQUIRE_OK(drv.device_get(&dev, 0));
  REQUIRE_OK(drv.ctx_create(&ctx, NULL, 0, dev));
  REQUIRE_OK(cls->put(NULL, &key, &val, NULL));
  static struct busy_sync b;
  b.ctx = ctx;
  REQUIRE_OK(drv.module_load_data(&mod, spin_ptx));
  REQUIRE_OK(drv.module_function(&b.spin, mod, "spin"));
  pthread_t t;
  REQUIRE_TRUE(pthread_create(&t, NULL, busy_sync_thread, &b) == 0);
  for (int i = 0; i < 500 && !atomic_load(&b.launched); i++)
    gpt_sleep_ms(10);
  gpt_sleep_ms(200); /* in its synchronize by now */
  double t0 = gpt_now(), worst = 0;
  int bad = 0;
  for (int i = 0; i < 2000; i++) {
    void *v = NULL;
    double t1 = gpt_now();
    /* NULL and the current context's own handle both name it. */
    CUresult r = cls->get(&v, (i & 1) ? ctx : NULL, &key);
    double dt = gpt_now() - t1;
    if (dt > worst) worst = dt;
    bad += r != CUDA_SUCCESS || v != &val;
  }
  double took = gpt_now() - t0;
  int still_syncing = !atomic_load(&b.done);
  CHECK_EQ_I(bad, 0);
  CHECK_LE_D(took, 0.5);
  CHECK_EQ_I(still_syncing, 1);
  /* A value stored and deleted meanwhile: the same. */
  int key2, val2;
  void *v = NULL;
  t0 = gpt_now();
  CHECK_OK(cls->put(NULL, &key2, &val2, NULL));
  CHECK_OK(cls->get(&v, ctx, &key2));
  CHECK_EQ_PTR(v, &val2);
  CHECK_OK(cls->del(NULL, &key2));
  CHECK_LE_D(gpt_now() - t0, 0.5);
  still_syncing = !atomic_load(&b.done);
  CHECK_EQ_I(still_syncing, 1);
  printf("2000 storage lookups took %.4f s (the slowest %.6f s) while "
         "another thread synchronized behind a 2 s kernel\n", took, worst);
  pthread_join(t, NULL);
  CHECK_OK(b.launch_r);
  CHECK_OK(b.sync_r);
  CHECK_GE_D(b.took, 1.5);
  CHECK_OK(drv.module_unload(mod));
  CHECK_OK(drv.ctx_destroy(ctx));
  (void)argc;
  (void)argv;
}

/* ---- fatbin_slots: CUDART_INTERFACE's loaders ---------------------------------- */

/* The wrapper cudart registers (section .nvFatBinSegment). */
struct fatbin_wrapper {
  uint32_t magic; /* 0x466243B1 */
  uint32_t version;
  const void *fatbin;
  const void *filename_or_fatbins;
};

static void *read_fatbin(size_t *len) {
  const char *nv = getenv("GPT_KERNELS_NVCC");
  if (nv == NULL || strcmp(nv, "1") != 0)
    gpt_skip("nvcc was not found when the build was configured: no fatbin "
             "to load");
  const char *path = getenv("GPT_KERNELS_BASIC");
  REQUIRE_TRUE(path != NULL && *path != '\0');
  FILE *f = fopen(path, "rb");
  REQUIRE_TRUE(f != NULL);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  REQUIRE_TRUE(n > 16);
  void *buf = gpt_xmalloc((size_t)n);
  REQUIRE_TRUE(fread(buf, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* vectorAdd from |mod| adds two vectors correctly. */
static void check_vector_add(CUmodule mod) {
  CUfunction fn = NULL;
  REQUIRE_OK(drv.module_function(&fn, mod, "vectorAdd"));
  enum { N = 1000 };
  float a[N], b[N], c[N];
  for (int i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)i;
  }
  CUdeviceptr da, db, dc;
  REQUIRE_OK(drv.mem_alloc(&da, sizeof a));
  REQUIRE_OK(drv.mem_alloc(&db, sizeof b));
  REQUIRE_OK(drv.mem_alloc(&dc, sizeof c));
  CHECK_OK(drv.htod(da, a, sizeof a));
  CHECK_OK(drv.htod(db, b, sizeof b));
  int n = N;
  void *args[] = {&da, &db, &dc, &n};
  CHECK_OK(drv.launch(fn, (N + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args,
                      NULL));
  CHECK_OK(drv.dtoh(c, dc, sizeof c));
  int bad = 0;
  for (int i = 0; i < N; i++) bad += c[i] != a[i] + b[i];
  CHECK_EQ_I(bad, 0);
  drv.mem_free(da);
  drv.mem_free(db);
  drv.mem_free(dc);
}

static void test_binding_fatbin_slots(int argc, char **argv) {
  size_t len;
  void *fatbin = read_fatbin(&len);
  bind_all();
  start();
  CUdevice dev;
  CUcontext ctx;
  REQUIRE_OK(drv.device_get(&dev, 0));
  REQUIRE_OK(drv.ctx_create(&ctx, NULL, 0, dev));
  const struct cudart_interface *ci = table(&CUDART_INTERFACE);
  struct fatbin_wrapper w = {0x466243B1, 1, fatbin, NULL};

  CUmodule m1 = NULL, m6 = NULL, m8 = NULL;
  CHECK_OK(ci->load_wrapper(&m1, &w));
  if (m1 != NULL) {
    check_vector_add(m1);
    CHECK_OK(drv.module_unload(m1));
  }
  CHECK_OK(ci->load_wrapper_ex(&m6, &w, NULL, NULL, 0));
  if (m6 != NULL) {
    check_vector_add(m6);
    CHECK_OK(drv.module_unload(m6));
  }
  CHECK_OK(ci->load_fatbin_ex(fatbin, &m8, NULL, NULL, 0));
  if (m8 != NULL) {
    check_vector_add(m8);
    CHECK_OK(drv.module_unload(m8));
  }
  /* Arguments they do not understand are refused, not ignored. */
  int junk;
  CHECK_CU(ci->load_wrapper_ex(&m6, &w, &junk, NULL, 0),
           CUDA_ERROR_NOT_SUPPORTED);
  CHECK_CU(ci->load_fatbin_ex(fatbin, &m8, NULL, &junk, 0),
           CUDA_ERROR_NOT_SUPPORTED);
  /* Not an image. */
  struct fatbin_wrapper junk_w = {0x12345678, 1, fatbin, NULL};
  CHECK_CU(ci->load_wrapper(&m1, &junk_w), CUDA_ERROR_INVALID_IMAGE);
  CHECK_OK(drv.ctx_destroy(ctx));
  free(fatbin);
  (void)argc;
  (void)argv;
}

/* ---- driver_version_*: what a server's older or newer driver shows ---------- */

/* A one-session stand-in for gpupool-server, in a child process: answers
 * the HELLO with |driver_version| and one device, then reads (and drops)
 * frames until the client goes. Sets GPUPOOL_SERVER to it. Returns the
 * child's pid. */
static pid_t fake_server(int driver_version) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE_TRUE(ls >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  REQUIRE_TRUE(bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0);
  REQUIRE_TRUE(listen(ls, 1) == 0);
  REQUIRE_TRUE(getsockname(ls, (struct sockaddr *)&sa, &len) == 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  setenv("GPUPOOL_SERVER", addr, 1);
  pid_t pid = fork();
  REQUIRE_TRUE(pid >= 0);
  if (pid > 0) {
    close(ls);
    return pid;
  }
  alarm(30); /* never outlive a stuck test */
  int fd = accept(ls, NULL, NULL);
  struct gp_wire w;
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  if (fd < 0 || gpt_wire_accept(&w, fd) != 0 ||
      gp_wire_recv_header(&w, &h) != 0 || h.type != GP_MSG_HELLO ||
      gp_wire_recv_msg(&w, &h, &m) != 0)
    _exit(2);
  protobuf_c_message_free_unpacked(m, NULL);
  Gpupool__DeviceAttribute a[3] = {GPUPOOL__DEVICE_ATTRIBUTE__INIT,
                                   GPUPOOL__DEVICE_ATTRIBUTE__INIT,
                                   GPUPOOL__DEVICE_ATTRIBUTE__INIT};
  a[0].attr = CU_DEVICE_ATTRIBUTE_PCI_BUS_ID;
  a[0].value = 0x41;
  a[1].attr = CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID;
  a[1].value = 3;
  a[2].attr = CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID;
  a[2].value = 1;
  Gpupool__DeviceAttribute *ap[3] = {&a[0], &a[1], &a[2]};
  uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  Gpupool__DeviceInfo di = GPUPOOL__DEVICE_INFO__INIT;
  di.ordinal = 0;
  di.name = (char *)"stand-in device";
  di.uuid.data = uuid;
  di.uuid.len = sizeof uuid;
  di.total_mem = 1ull << 30;
  di.n_attributes = 3;
  di.attributes = ap;
  Gpupool__DeviceInfo *dp[1] = {&di};
  Gpupool__HelloReply rep = GPUPOOL__HELLO_REPLY__INIT;
  rep.version = GP_PROTOCOL_VERSION_MIN;
  rep.server_name = (char *)"stand-in";
  rep.driver_version = driver_version;
  rep.n_devices = 1;
  rep.devices = dp;
  if (gp_wire_send(&w, GP_MSG_HELLO, GP_FRAME_F_REPLY, h.request_id,
                   &rep.base, NULL, 0) != 0 ||
      gp_wire_flush(&w) != 0)
    _exit(3);
  while (gp_wire_recv_header(&w, &h) == 0 &&
         gp_wire_discard(&w, (size_t)h.msg_len + h.payload_len) == 0) {
  }
  _exit(0);
}

/* After cuInit, the version reported is the server's, but never below the
 * toolkit's major version; the integrity check signs that same value. */
static void check_driver_version(int server_version, int want) {
  bind_all();
  pid_t pid = fake_server(server_version);
  REQUIRE_OK(drv.init(0));
  int v = 0;
  CHECK_OK(drv.driver_version(&v));
  CHECK_EQ_I(v, want);
  CHECK_GE_I(v, (CUDA_VERSION / 1000) * 1000);
  const struct cudart_interface *ci = table(&CUDART_INTERFACE);
  const struct integrity *ic = table(&INTEGRITY_CHECK);
  uint64_t out[2], exp[2];
  CHECK_OK(ic->check(13002, 1700000000, out));
  expected_integrity(13002, 1700000000, ci, ic, exp);
  CHECK_EQ_U(out[0], exp[0]);
  CHECK_EQ_U(out[1], exp[1]);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void test_binding_driver_version_old(int argc, char **argv) {
  check_driver_version(12080, (CUDA_VERSION / 1000) * 1000);
  (void)argc;
  (void)argv;
}

static void test_binding_driver_version_new(int argc, char **argv) {
  check_driver_version(CUDA_VERSION + 50, CUDA_VERSION + 50);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"proc", test_binding_proc, 30},
      {"tables", test_binding_tables, 30},
      {"cls", test_binding_cls, 30},
      {"cls_busy", test_binding_cls_busy, 30},
      {"fatbin_slots", test_binding_fatbin_slots, 60},
      {"driver_version_old", test_binding_driver_version_old, 30},
      {"driver_version_new", test_binding_driver_version_new, 30},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
