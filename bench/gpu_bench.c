/* gpu_bench: a few driver-API measurements that mean the same thing on a
 * real GPU and through gpupool, so that the two can be put side by side.
 * See bench/README.md.
 *
 * Usage: gpu_bench [--quick] [--calls N] [--launches N] [--big-mib N]
 *                  [--sgemm-n N]
 *
 * The program calls the CUDA driver API only (cuda.h), and measures
 * whatever libcuda.so.1 the dynamic loader gives it: linked in the build
 * tree against gpupool's library (found through the RUNPATH), it talks to
 * the server named by GPUPOOL_SERVER; run with LD_LIBRARY_PATH naming the
 * folder of NVIDIA's libcuda.so.1 (which the loader searches before the
 * RUNPATH), it runs on the local GPU. It starts no server. The line
 * "info libcuda PATH" says which library it got.
 *
 * Output, one line each, for scripts (scripts/gpu-check.sh) to read:
 *   info KEY VALUE...        what ran where (library, device, driver)
 *   metric NAME VALUE UNIT   one measurement (every value positive)
 *   check NAME ok|FAILED ... a result compared against the CPU's
 * It exits 0 when every check passed, 1 when a result was wrong or a call
 * failed, 2 on bad arguments. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

/* How much is measured. */
struct plan {
  bool quick;
  int calls;          /* synchronous calls timed, per kind */
  unsigned launches;  /* launches per launch-rate run */
  int launch_reps;    /* launch-rate runs */
  size_t small;       /* bytes of the small copies */
  int small_reps;     /* copies timed per small size, direction, kind */
  size_t big;         /* bytes of the large copies */
  int big_reps;       /* ... and per large size */
  unsigned sgemm_n;   /* the SGEMM's matrices are n x n */
  int sgemm_reps;     /* SGEMM launches timed */
};

static const struct plan full_plan = {
    false, 2000, 20000, 5, 1u << 20, 50, 256u << 20, 5, 8192, 3};
static const struct plan quick_plan = {
    true, 200, 2000, 3, 1u << 20, 10, 16u << 20, 3, 128, 2};

/* The SGEMM's tile: blocks of TILE x TILE threads, each computing one
 * element of C. */
#define TILE 16

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die_cu(const char *what, CUresult r) {
  const char *name = NULL;

  cuGetErrorName(r, &name);
  fprintf(stderr, "gpu_bench: %s: %s (%d)\n", what, name ? name : "?",
          (int)r);
  exit(1);
}

#define CU(call)                                 \
  do {                                           \
    CUresult r_ = (call);                        \
    if (r_ != CUDA_SUCCESS)                      \
      die_cu(#call, r_);                         \
  } while (0)

static void *xmalloc(size_t n) {
  void *p = malloc(n);

  if (p == NULL) {
    fprintf(stderr, "gpu_bench: out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* The median of |n| values; sorts |v|. */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void metric(const char *name, double value, const char *unit) {
  printf("metric %s %.6g %s\n", name, value, unit);
  fflush(stdout);
}

/* A sequence that is cheap to generate and unlikely to be produced by a
 * copy gone wrong (a shifted, truncated or zeroed buffer). */
static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void fill(void *buf, size_t n, uint64_t seed) {
  uint8_t *p = buf;
  uint64_t s = seed | 1, v = 0;

  for (size_t i = 0; i < n; i++) {
    if (i % 8 == 0)
      v = next_rand(&s);
    p[i] = (uint8_t)(v >> (8 * (i % 8)));
  }
}

/* ---- Synchronous calls -------------------------------------------------- */

/* The median round trip of cuCtxSynchronize with nothing queued, and of a
 * 4-byte cuMemcpyDtoH and cuMemcpyHtoD. The DtoH copies read a word set by
 * cuMemsetD32 and check it. Returns false if a copy read a wrong value. */
static bool bench_sync(const struct plan *p) {
  double *t = xmalloc((size_t)p->calls * sizeof(*t));
  CUdeviceptr d;
  uint32_t word = 0, bad = 0;

  CU(cuMemAlloc(&d, 4));
  CU(cuMemsetD32(d, 0x5eedf00du, 1));
  for (int i = 0; i < 20; i++)
    CU(cuCtxSynchronize());

  for (int i = 0; i < p->calls; i++) {
    double t0 = now();
    CU(cuCtxSynchronize());
    t[i] = now() - t0;
  }
  metric("sync_roundtrip", median(t, p->calls) * 1e6, "us");

  for (int i = 0; i < p->calls; i++) {
    double t0 = now();
    word = 0;
    CU(cuMemcpyDtoH(&word, d, 4));
    t[i] = now() - t0;
    bad += word != 0x5eedf00du;
  }
  metric("dtoh_4B", median(t, p->calls) * 1e6, "us");

  for (int i = 0; i < p->calls; i++) {
    double t0 = now();
    word = (uint32_t)i;
    CU(cuMemcpyHtoD(d, &word, 4));
    t[i] = now() - t0;
  }
  metric("htod_4B", median(t, p->calls) * 1e6, "us");
  CU(cuMemcpyDtoH(&word, d, 4));
  if (word != (uint32_t)(p->calls - 1))
    bad++;

  CU(cuMemFree(d));
  free(t);
  if (bad != 0) {
    printf("check small_copies FAILED: %u of %d 4-byte copies read a "
           "wrong value\n", bad, p->calls + 1);
    return false;
  }
  printf("check small_copies ok\n");
  return true;
}

/* ---- Launches ----------------------------------------------------------- */

/* An empty kernel, and the SGEMM (built by sgemm_ptx()). PTX ISA 7.0 and
 * sm_75: any driver from CUDA 11 on JIT-compiles it for its GPU. */
static const char empty_ptx[] =
    ".version 7.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    ".visible .entry empty()\n"
    "{\n"
    "  ret;\n"
    "}\n";

/* Launch throughput: |launches| launches of the empty kernel (one block
 * of one thread, no parameters, the default stream) then one
 * cuCtxSynchronize; the median over the runs of launches per second. */
static void bench_launch(const struct plan *p, CUfunction empty) {
  double *rate = xmalloc((size_t)p->launch_reps * sizeof(*rate));

  for (int i = 0; i < 100; i++)
    CU(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
  CU(cuCtxSynchronize());
  for (int r = 0; r < p->launch_reps; r++) {
    double t0 = now();
    for (unsigned i = 0; i < p->launches; i++)
      CU(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    CU(cuCtxSynchronize());
    rate[r] = p->launches / (now() - t0);
  }
  metric("launch_rate", median(rate, p->launch_reps), "launches/s");
  free(rate);
}

/* ---- Bandwidth ---------------------------------------------------------- */

/* The name of a copy size: "1MiB", "256MiB", "4KiB". */
static void size_name(char *out, size_t cap, size_t bytes) {
  if (bytes % (1u << 20) == 0)
    snprintf(out, cap, "%zuMiB", bytes >> 20);
  else if (bytes % 1024 == 0)
    snprintf(out, cap, "%zuKiB", bytes >> 10);
  else
    snprintf(out, cap, "%zuB", bytes);
}

/* Times |reps| synchronous copies of |n| bytes from |src| to |d|, then as
 * many from |d| to |dst|, and checks that |dst| holds what |src| held.
 * Prints htod_KIND_SIZE and dtoh_KIND_SIZE in GB/s (10^9 bytes per second,
 * the median copy). Returns false if the bytes came back wrong. */
static bool bench_copy(const char *kind, void *src, void *dst, CUdeviceptr d,
                       size_t n, int reps, uint64_t seed) {
  double *t = xmalloc((size_t)reps * sizeof(*t));
  char size[32], name[96];
  bool ok;

  size_name(size, sizeof(size), n);
  fill(src, n, seed);
  memset(dst, 0, n);
  /* One copy each way untimed: the first touch of device pages, and of
   * the host buffers' pages where a library pins or maps them. */
  CU(cuMemcpyHtoD(d, src, n));
  CU(cuMemcpyDtoH(dst, d, n));
  memset(dst, 0, n);

  for (int r = 0; r < reps; r++) {
    double t0 = now();
    CU(cuMemcpyHtoD(d, src, n));
    t[r] = now() - t0;
  }
  snprintf(name, sizeof(name), "htod_%s_%s", kind, size);
  metric(name, (double)n / median(t, reps) / 1e9, "GB/s");
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    CU(cuMemcpyDtoH(dst, d, n));
    t[r] = now() - t0;
  }
  snprintf(name, sizeof(name), "dtoh_%s_%s", kind, size);
  metric(name, (double)n / median(t, reps) / 1e9, "GB/s");

  ok = memcmp(src, dst, n) == 0;
  if (!ok) {
    size_t i = 0;
    while (((uint8_t *)src)[i] == ((uint8_t *)dst)[i])
      i++;
    printf("check copy_%s_%s FAILED: the bytes read back differ from "
           "those written, first at offset %zu\n", kind, size, i);
  }
  free(t);
  return ok;
}

/* H2D and D2H bandwidth at the plan's two sizes, from pageable memory
 * (malloc'd and touched, as applications' buffers are) and from pinned
 * memory (cuMemAllocHost). Returns false if a copy came back wrong. */
static bool bench_bandwidth(const struct plan *p) {
  size_t sizes[2] = {p->small, p->big};
  int reps[2] = {p->small_reps, p->big_reps};
  void *src, *dst;
  CUdeviceptr d;
  bool ok = true;

  CU(cuMemAlloc(&d, p->big));
  src = xmalloc(p->big);
  dst = xmalloc(p->big);
  for (int i = 0; i < 2; i++)
    ok &= bench_copy("pageable", src, dst, d, sizes[i], reps[i],
                     0x1234u + (uint64_t)i);
  free(src);
  free(dst);

  CU(cuMemAllocHost(&src, p->big));
  CU(cuMemAllocHost(&dst, p->big));
  for (int i = 0; i < 2; i++)
    ok &= bench_copy("pinned", src, dst, d, sizes[i], reps[i],
                     0x9876u + (uint64_t)i);
  CU(cuMemFreeHost(src));
  CU(cuMemFreeHost(dst));
  CU(cuMemFree(d));
  if (ok)
    printf("check copies ok\n");
  return ok;
}

/* ---- SGEMM -------------------------------------------------------------- */

/* Writes into |buf| the PTX of sgemm(a, b, c, n): C = A B for row-major
 * n x n matrices, n a multiple of TILE, launched as (n/TILE, n/TILE)
 * blocks of (TILE, TILE) threads. Each block steps along k one tile at a
 * time: every thread loads one element of A's and one of B's tile into
 * shared memory, the block waits, each thread takes the TILE products of
 * its row and column (one fma.rn each, k in order), and the block waits
 * again before the next tile overwrites the shared arrays. */
static void sgemm_ptx(char *buf, size_t cap) {
  size_t len;

  len = (size_t)snprintf(buf, cap,
      ".version 7.0\n"
      ".target sm_75\n"
      ".address_size 64\n"
      ".visible .entry sgemm(.param .u64 pa, .param .u64 pb, .param .u64 pc,"
      " .param .u32 pn)\n"
      "{\n"
      "  .reg .pred %%p<2>;\n"
      "  .reg .b32 %%r<32>;\n"
      "  .reg .f32 %%f<8>;\n"
      "  .reg .b64 %%rd<16>;\n"
      "  .shared .align 4 .f32 as[%d];\n"
      "  .shared .align 4 .f32 bs[%d];\n"
      "  ld.param.u64 %%rd1, [pa];\n"
      "  ld.param.u64 %%rd2, [pb];\n"
      "  ld.param.u64 %%rd3, [pc];\n"
      "  ld.param.u32 %%r5, [pn];\n"
      "  cvta.to.global.u64 %%rd1, %%rd1;\n"
      "  cvta.to.global.u64 %%rd2, %%rd2;\n"
      "  cvta.to.global.u64 %%rd3, %%rd3;\n"
      "  mov.u32 %%r1, %%tid.x;\n"
      "  mov.u32 %%r2, %%tid.y;\n"
      "  mov.u32 %%r3, %%ctaid.x;\n"
      "  mov.u32 %%r4, %%ctaid.y;\n"
      "  mad.lo.u32 %%r6, %%r4, %d, %%r2;\n"  /* row */
      "  mad.lo.u32 %%r7, %%r3, %d, %%r1;\n"  /* col */
      "  mov.f32 %%f1, 0f00000000;\n"
      "  mad.lo.u32 %%r8, %%r2, %d, %%r1;\n"
      "  shl.b32 %%r9, %%r8, 2;\n"
      "  mov.u32 %%r10, as;\n"
      "  mov.u32 %%r11, bs;\n"
      "  add.u32 %%r12, %%r10, %%r9;\n"       /* &as[ty][tx] */
      "  add.u32 %%r13, %%r11, %%r9;\n"       /* &bs[ty][tx] */
      "  mul.lo.u32 %%r14, %%r2, %d;\n"
      "  add.u32 %%r15, %%r10, %%r14;\n"      /* &as[ty][0] */
      "  shl.b32 %%r16, %%r1, 2;\n"
      "  add.u32 %%r17, %%r11, %%r16;\n"      /* &bs[0][tx] */
      "  mov.u32 %%r18, 0;\n"                 /* k0 */
      "LOOP:\n"
      "  add.u32 %%r19, %%r18, %%r1;\n"
      "  mad.lo.u32 %%r20, %%r6, %%r5, %%r19;\n"
      "  mul.wide.u32 %%rd5, %%r20, 4;\n"
      "  add.s64 %%rd6, %%rd1, %%rd5;\n"
      "  ld.global.f32 %%f2, [%%rd6];\n"      /* A[row][k0 + tx] */
      "  st.shared.f32 [%%r12], %%f2;\n"
      "  add.u32 %%r21, %%r18, %%r2;\n"
      "  mad.lo.u32 %%r22, %%r21, %%r5, %%r7;\n"
      "  mul.wide.u32 %%rd7, %%r22, 4;\n"
      "  add.s64 %%rd8, %%rd2, %%rd7;\n"
      "  ld.global.f32 %%f3, [%%rd8];\n"      /* B[k0 + ty][col] */
      "  st.shared.f32 [%%r13], %%f3;\n"
      "  bar.sync 0;\n",
      TILE * TILE, TILE * TILE, TILE, TILE, TILE, TILE * 4);
  for (int k = 0; k < TILE && len < cap; k++)
    len += (size_t)snprintf(buf + len, cap - len,
        "  ld.shared.f32 %%f4, [%%r15+%d];\n"
        "  ld.shared.f32 %%f5, [%%r17+%d];\n"
        "  fma.rn.f32 %%f1, %%f4, %%f5, %%f1;\n",
        4 * k, 4 * TILE * k);
  if (len < cap)
    snprintf(buf + len, cap - len,
        "  bar.sync 0;\n"
        "  add.u32 %%r18, %%r18, %d;\n"
        "  setp.lt.u32 %%p1, %%r18, %%r5;\n"
        "  @%%p1 bra LOOP;\n"
        "  mad.lo.u32 %%r23, %%r6, %%r5, %%r7;\n"
        "  mul.wide.u32 %%rd9, %%r23, 4;\n"
        "  add.s64 %%rd10, %%rd3, %%rd9;\n"
        "  st.global.f32 [%%rd10], %%f1;\n"
        "  ret;\n"
        "}\n",
        TILE);
}

/* A[i][k] * B[k][j] summed over k, in the order the kernel takes. */
static float sgemm_ref(const float *a, const float *b, unsigned n,
                       unsigned i, unsigned j) {
  float acc = 0;

  for (unsigned k = 0; k < n; k++)
    acc += a[(size_t)i * n + k] * b[(size_t)k * n + j];
  return acc;
}

/* Runs the SGEMM of size n (the median of |sgemm_reps| launch +
 * cuCtxSynchronize, after one untimed launch that pays for the JIT) and
 * checks C against the CPU: every element for n <= 512, else 4096
 * elements (the four corners, the rest spread by a fixed sequence).
 * The inputs are multiples of 1/16 in [-1, 1], so every product is a
 * multiple of 2^-8 and every partial sum (at most n <= 32768 in
 * magnitude) fits a float's 24 bits exactly: the results are exact in any
 * order of summation, and compared bit for bit. Returns false if an
 * element is wrong. */
static bool bench_sgemm(const struct plan *p, CUmodule mod) {
  unsigned n = p->sgemm_n;
  size_t elems = (size_t)n * n, bytes = elems * sizeof(float);
  float *a = xmalloc(bytes), *b = xmalloc(bytes), *c = xmalloc(bytes);
  double *t = xmalloc((size_t)p->sgemm_reps * sizeof(*t));
  CUdeviceptr da, db, dc;
  CUfunction f;
  void *args[4];
  uint64_t s = 0x5eed;
  unsigned checked = 0, wrong = 0, grid = n / TILE;
  char name[64];
  double med;

  for (size_t i = 0; i < elems; i++) {
    a[i] = (float)((int)(next_rand(&s) % 33) - 16) / 16.0f;
    b[i] = (float)((int)(next_rand(&s) % 33) - 16) / 16.0f;
  }
  CU(cuModuleGetFunction(&f, mod, "sgemm"));
  CU(cuMemAlloc(&da, bytes));
  CU(cuMemAlloc(&db, bytes));
  CU(cuMemAlloc(&dc, bytes));
  CU(cuMemcpyHtoD(da, a, bytes));
  CU(cuMemcpyHtoD(db, b, bytes));
  CU(cuMemsetD32(dc, 0x7fc00000u, elems)); /* NaN: an unwritten C shows */
  args[0] = &da;
  args[1] = &db;
  args[2] = &dc;
  args[3] = &n;

  CU(cuLaunchKernel(f, grid, grid, 1, TILE, TILE, 1, 0, NULL, args, NULL));
  CU(cuCtxSynchronize());
  for (int r = 0; r < p->sgemm_reps; r++) {
    double t0 = now();
    CU(cuLaunchKernel(f, grid, grid, 1, TILE, TILE, 1, 0, NULL, args,
                      NULL));
    CU(cuCtxSynchronize());
    t[r] = now() - t0;
  }
  med = median(t, p->sgemm_reps);
  snprintf(name, sizeof(name), "sgemm_%u_time", n);
  metric(name, med * 1e3, "ms");
  snprintf(name, sizeof(name), "sgemm_%u_rate", n);
  metric(name, 2.0 * n * n * n / med / 1e9, "GFLOP/s");

  CU(cuMemcpyDtoH(c, dc, bytes));
  for (unsigned x = 0; x < (n <= 512 ? n * n : 4096u); x++) {
    unsigned i, j;
    float want;

    if (n <= 512) {
      i = x / n;
      j = x % n;
    } else if (x < 4) {
      i = x & 1 ? n - 1 : 0;
      j = x & 2 ? n - 1 : 0;
    } else {
      i = (unsigned)(next_rand(&s) % n);
      j = (unsigned)(next_rand(&s) % n);
    }
    want = sgemm_ref(a, b, n, i, j);
    checked++;
    if (memcmp(&want, &c[(size_t)i * n + j], sizeof(want)) != 0) {
      if (wrong < 5)
        printf("gpu_bench: sgemm C[%u][%u] = %.9g, the CPU has %.9g\n", i,
               j, c[(size_t)i * n + j], want);
      wrong++;
    }
  }
  if (wrong != 0)
    printf("check sgemm FAILED: %u of %u elements checked are wrong "
           "(n=%u)\n", wrong, checked, n);
  else
    printf("check sgemm ok (n=%u, %u elements checked)\n", n, checked);

  CU(cuMemFree(da));
  CU(cuMemFree(db));
  CU(cuMemFree(dc));
  free(a);
  free(b);
  free(c);
  free(t);
  return wrong == 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: gpu_bench [--quick] [--calls N] [--launches N] "
          "[--big-mib N] [--sgemm-n N]\n"
          "  --sgemm-n N must be a multiple of %d, 16..32768\n", TILE);
  exit(2);
}

/* Parses a positive integer argument no larger than |max|. */
static unsigned long parse_count(const char *s, unsigned long max) {
  char *end;
  unsigned long v;

  if (s == NULL || *s < '0' || *s > '9')
    usage();
  v = strtoul(s, &end, 10);
  if (*end != '\0' || v == 0 || v > max)
    usage();
  return v;
}

/* Prints which library the loader bound cuInit to. */
static void print_library(void) {
  Dl_info info;
  CUresult (*init)(unsigned) = cuInit;
  void *addr;

  memcpy(&addr, &init, sizeof(addr));
  if (dladdr(addr, &info) != 0 && info.dli_fname != NULL)
    printf("info libcuda %s\n", info.dli_fname);
  else
    printf("info libcuda unknown\n");
}

int main(int argc, char **argv) {
  struct plan p = full_plan;
  static char ptx[16384];
  CUdevice dev;
  CUcontext ctx;
  CUmodule empty_mod, sgemm_mod;
  CUfunction empty;
  char name[256];
  int driver = 0, major = 0, minor = 0;
  bool ok = true;

  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0)
      p = quick_plan;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      continue;
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "--calls") == 0)
      p.calls = (int)parse_count(argv[++i], 10000000);
    else if (strcmp(argv[i], "--launches") == 0)
      p.launches = (unsigned)parse_count(argv[++i], 100000000);
    else if (strcmp(argv[i], "--big-mib") == 0)
      p.big = (size_t)parse_count(argv[++i], 65536) << 20;
    else if (strcmp(argv[i], "--sgemm-n") == 0)
      p.sgemm_n = (unsigned)parse_count(argv[++i], 32768);
    else
      usage();
  }
  if (p.sgemm_n % TILE != 0)
    usage();
  if (p.big < p.small)
    p.small = p.big;

  print_library();
  CU(cuInit(0));
  CU(cuDriverGetVersion(&driver));
  CU(cuDeviceGet(&dev, 0));
  CU(cuDeviceGetName(name, sizeof(name), dev));
  CU(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                          dev));
  CU(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                          dev));
  printf("info driver_version %d\n", driver);
  printf("info device %s (compute capability %d.%d)\n", name, major, minor);
  printf("info plan %s: calls %d, launches %u x %d, copies %zu B x %d and "
         "%zu B x %d, sgemm n=%u x %d\n", p.quick ? "quick" : "full",
         p.calls, p.launches, p.launch_reps, p.small, p.small_reps, p.big,
         p.big_reps, p.sgemm_n, p.sgemm_reps);
  fflush(stdout);

  CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CU(cuCtxSetCurrent(ctx));
  CU(cuModuleLoadData(&empty_mod, empty_ptx));
  CU(cuModuleGetFunction(&empty, empty_mod, "empty"));
  sgemm_ptx(ptx, sizeof(ptx));
  CU(cuModuleLoadData(&sgemm_mod, ptx));

  ok &= bench_sync(&p);
  bench_launch(&p, empty);
  ok &= bench_bandwidth(&p);
  ok &= bench_sgemm(&p, sgemm_mod);

  CU(cuModuleUnload(empty_mod));
  CU(cuModuleUnload(sgemm_mod));
  CU(cuDevicePrimaryCtxRelease(dev));
  printf("info result %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
