/* Integration: real nvcc-built kernels, end to end. The kernels of
 * tests/cuda/e2e_*.cu, compiled by nvcc at build time into fatbins and PTX
 * (tests/integration/meson.build passes their paths in GPT_KERNELS_*), go
 * through the whole stack: this program's driver-API calls, gpupool's
 * libcuda.so.1, the wire, gpupool-server and the emu backend's PTX engine.
 * Every result is compared with a CPU reference: bit for bit where the
 * operation is exactly rounded (inputs are chosen so that sums are exact
 * whatever order atomics land in), within the CUDA Programming Guide's
 * documented ULP bounds for the maths library.
 *
 * Without nvcc (GPT_KERNELS_NVCC=0) every scenario prints why and exits 77.
 *
 * The emulated device interprets PTX on the server's CPU and CI has two
 * cores, so each scenario's work is sized to run in well under a few
 * seconds (big_launch, the largest, takes about half a second).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* The images, by the environment variable that holds each one's path. */
#define IMG_BASIC "GPT_KERNELS_BASIC"               /* nvcc -fatbin */
#define IMG_BASIC_PTX "GPT_KERNELS_BASIC_PTX"       /* -ptx -arch=compute_75 */
#define IMG_BASIC_SM90 "GPT_KERNELS_BASIC_SM90"     /* -fatbin -arch=sm_90 */
#define IMG_BASIC_LZ4 "GPT_KERNELS_BASIC_LZ4"       /* --compress-mode=speed */
#define IMG_BASIC_SMONLY "GPT_KERNELS_BASIC_SMONLY" /* sm_75 SASS, no PTX */
#define IMG_ATOMICS "GPT_KERNELS_ATOMICS"
#define IMG_MATH "GPT_KERNELS_MATH"
#define IMG_MATH_PTX "GPT_KERNELS_MATH_PTX"
#define IMG_PRINTF "GPT_KERNELS_PRINTF"
#define IMG_HALF "GPT_KERNELS_HALF"
#define IMG_CG "GPT_KERNELS_CG"

static struct gpt_server server;

/* ---- Helpers ------------------------------------------------------------- */

static void need_nvcc(void) {
  const char *v = getenv("GPT_KERNELS_NVCC");
  if (v == NULL || strcmp(v, "1") != 0)
    gpt_skip("nvcc was not found when the build was configured, so there are "
             "no nvcc-built kernels to run (install the CUDA toolkit's nvcc "
             "and reconfigure)");
}

static CUcontext start(void) {
  need_nvcc();
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  return gpt_init_context(NULL);
}

static const char *image_path(const char *var) {
  const char *p = getenv(var);
  if (p == NULL || *p == '\0') {
    gpt__check_fail(__FILE__, __LINE__, var, "%s",
                    "not set: run the tests with meson test");
    gpt__abort_scenario();
  }
  return p;
}

/* The bytes of the image named by |var|, NUL-terminated (PTX text must be)
 * but with *len not counting the NUL. The caller frees. */
static void *read_image(const char *var, size_t *len) {
  const char *path = image_path(var);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    gpt__check_fail(__FILE__, __LINE__, path, "cannot open: %s",
                    strerror(errno));
    gpt__abort_scenario();
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = gpt_xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (nb == NULL) gpt__abort_scenario();
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    if (got == 0) break;
    n += got;
  }
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

/* cuModuleLoadData of the image named by |var|; ends the scenario if it
 * fails. */
static CUmodule load(const char *var) {
  void *img = read_image(var, NULL);
  CUmodule m = NULL;
  REQUIRE_OK(cuModuleLoadData(&m, img));
  REQUIRE_TRUE(m != NULL);
  /* The driver keeps what it needs: the caller may free the image. */
  memset(img, 0, 16);
  free(img);
  return m;
}

/* Zeroed host memory; ends the scenario if there is none. */
static void *xcalloc(size_t n, size_t size) {
  void *p = gpt_xmalloc(n * size);
  memset(p, 0, n * size);
  return p;
}

static CUfunction fn(CUmodule m, const char *name) {
  CUfunction f = NULL;
  CUresult r = cuModuleGetFunction(&f, m, name);
  if (r != CUDA_SUCCESS) {
    gpt__check_fail(__FILE__, __LINE__, "cuModuleGetFunction", "%s: %s",
                    name, gpt_cu_name(r));
    gpt__abort_scenario();
  }
  gpt__check_pass();
  return f;
}

static CUdeviceptr dalloc(size_t n) {
  CUdeviceptr d = 0;
  REQUIRE_OK(cuMemAlloc(&d, n));
  return d;
}

/* A device copy of |n| bytes at |h|. */
static CUdeviceptr upload(const void *h, size_t n) {
  CUdeviceptr d = dalloc(n);
  REQUIRE_OK(cuMemcpyHtoD(d, h, n));
  return d;
}

/* |n| bytes of device memory in a new buffer (the caller frees), first
 * filled with 0xee so that bytes never written show. */
static void *download(CUdeviceptr d, size_t n) {
  void *h = gpt_xmalloc(n);
  memset(h, 0xee, n);
  CHECK_OK(cuMemcpyDtoH(h, d, n));
  return h;
}

/* A one-dimensional launch on the default stream. */
static CUresult launch1(CUfunction f, unsigned grid, unsigned block,
                        unsigned shared, void **params) {
  return cuLaunchKernel(f, grid, 1, 1, block, 1, 1, shared, NULL, params,
                        NULL);
}

/* A small deterministic generator (splitmix64), so that every run checks
 * the same values. */
struct rng {
  uint64_t s;
};
static uint64_t rng_next(struct rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/* Uniform in [lo, hi). */
static double rng_uniform(struct rng *r, double lo, double hi) {
  return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1p-53;
}
static int rng_int(struct rng *r, int lo, int hi) { /* [lo, hi] */
  return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- Element-wise checks ----------------------------------------------------
 *
 * Each element is one check. The first few differences are printed with
 * their index; the rest are summed up in one more failed check, so that a
 * wholly wrong array does not flood the log.
 */

#define SHOW_DIFFS 8

struct diffs {
  const char *file, *what;
  int line;
  size_t bad, n;
};

static void diff_begin(struct diffs *d, const char *file, int line,
                       const char *what, size_t n) {
  d->file = file;
  d->line = line;
  d->what = what;
  d->bad = 0;
  d->n = n;
}

static void diff_elem(struct diffs *d, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diff_elem(struct diffs *d, bool ok, const char *fmt, ...) {
  if (ok) {
    gpt__check_pass();
    return;
  }
  if (d->bad++ < SHOW_DIFFS) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gpt__check_fail(d->file, d->line, d->what, "%s", msg);
  }
}

static bool diff_end(struct diffs *d) {
  if (d->bad > SHOW_DIFFS)
    gpt__check_fail(d->file, d->line, d->what,
                    "... and %zu more; %zu of %zu elements differ",
                    d->bad - SHOW_DIFFS, d->bad, d->n);
  return d->bad == 0;
}

static bool check_u32s(const char *file, int line, const char *what,
                       const uint32_t *got, const uint32_t *want, size_t n) {
  struct diffs d;
  diff_begin(&d, file, line, what, n);
  for (size_t i = 0; i < n; i++)
    diff_elem(&d, got[i] == want[i], "[%zu]: got %u (0x%08x), expected %u (0x%08x)",
              i, got[i], got[i], want[i], want[i]);
  return diff_end(&d);
}
#define CHECK_U32S(got, want, n) \
  check_u32s(__FILE__, __LINE__, #got, (const uint32_t *)(got), (const uint32_t *)(want), n)
#define CHECK_I32S CHECK_U32S

static bool check_u64s(const char *file, int line, const char *what,
                       const uint64_t *got, const uint64_t *want, size_t n) {
  struct diffs d;
  diff_begin(&d, file, line, what, n);
  for (size_t i = 0; i < n; i++)
    diff_elem(&d, got[i] == want[i],
              "[%zu]: got %llu (0x%llx, as signed %lld), expected %llu (0x%llx, as signed %lld)",
              i, (unsigned long long)got[i], (unsigned long long)got[i],
              (long long)got[i], (unsigned long long)want[i],
              (unsigned long long)want[i], (long long)want[i]);
  return diff_end(&d);
}
#define CHECK_U64S(got, want, n) \
  check_u64s(__FILE__, __LINE__, #got, (const uint64_t *)(got), (const uint64_t *)(want), n)

/* Floats compare by bit pattern: exactly rounded results must match to the
 * bit, signed zeros included. */
static bool check_f32s(const char *file, int line, const char *what,
                       const float *got, const float *want, size_t n) {
  struct diffs d;
  diff_begin(&d, file, line, what, n);
  for (size_t i = 0; i < n; i++)
    diff_elem(&d, memcmp(&got[i], &want[i], sizeof(float)) == 0,
              "[%zu]: got %.9g (%a), expected %.9g (%a)", i, (double)got[i],
              (double)got[i], (double)want[i], (double)want[i]);
  return diff_end(&d);
}
#define CHECK_F32S(got, want, n) check_f32s(__FILE__, __LINE__, #got, got, want, n)

static bool check_f64s(const char *file, int line, const char *what,
                       const double *got, const double *want, size_t n) {
  struct diffs d;
  diff_begin(&d, file, line, what, n);
  for (size_t i = 0; i < n; i++)
    diff_elem(&d, memcmp(&got[i], &want[i], sizeof(double)) == 0,
              "[%zu]: got %.17g (%a), expected %.17g (%a)", i, got[i], got[i],
              want[i], want[i]);
  return diff_end(&d);
}
#define CHECK_F64S(got, want, n) check_f64s(__FILE__, __LINE__, #got, got, want, n)

/* ---- Capturing this process's stdout or stderr ---------------------------------- */

struct capture {
  int fd;       /* the descriptor captured: 1 or 2 */
  int saved;    /* a copy of the original */
  int file;     /* the temporary file it goes to meanwhile */
};

/* From now on, what is written on |fd| goes to a temporary file. */
static void capture_begin(struct capture *c, int fd) {
  char path[256];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/gpupool-capture-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  fflush(stdout);
  fflush(stderr);
  c->fd = fd;
  c->file = mkstemp(path);
  REQUIRE_TRUE(c->file >= 0);
  unlink(path);
  c->saved = dup(fd);
  REQUIRE_TRUE(c->saved >= 0);
  REQUIRE_TRUE(dup2(c->file, fd) == fd);
}

/* Restores |fd| and returns what was written meanwhile, NUL-terminated (the
 * caller frees). */
static char *capture_end(struct capture *c) {
  fflush(stdout);
  fflush(stderr);
  dup2(c->saved, c->fd);
  close(c->saved);
  off_t size = lseek(c->file, 0, SEEK_END);
  char *text = gpt_xmalloc((size_t)(size > 0 ? size : 0) + 1);
  size_t n = 0;
  if (size > 0 && lseek(c->file, 0, SEEK_SET) == 0) {
    ssize_t got;
    while (n < (size_t)size &&
           (got = read(c->file, text + n, (size_t)size - n)) > 0)
      n += (size_t)got;
  }
  text[n] = '\0';
  close(c->file);
  return text;
}

/* ---- vector_add ----------------------------------------------------------------- */

/* Runs vectorAdd on |n| elements (seeded by |seed|) in the current context
 * and checks every element, and that the elements past |n| stay as they
 * were. Returns true if all was right. */
static bool run_vector_add(CUfunction f, int n, uint64_t seed) {
  unsigned before = gpt_checks_failed();
  struct rng r = {seed};
  const int pad = 64;
  float *a = gpt_xmalloc(n * sizeof(float)), *b = gpt_xmalloc(n * sizeof(float));
  float *want = gpt_xmalloc((n + pad) * sizeof(float));
  for (int i = 0; i < n; i++) {
    a[i] = (float)rng_uniform(&r, -1000, 1000);
    b[i] = (float)rng_uniform(&r, -1, 1);
    want[i] = a[i] + b[i];
  }
  memset(want + n, 0xab, pad * sizeof(float));
  CUdeviceptr da = upload(a, n * sizeof(float));
  CUdeviceptr db = upload(b, n * sizeof(float));
  CUdeviceptr dc = dalloc((n + pad) * sizeof(float));
  CHECK_OK(cuMemsetD8(dc, 0xab, (n + pad) * sizeof(float)));
  void *params[] = {&da, &db, &dc, &n};
  CHECK_OK(launch1(f, (unsigned)(n + 255) / 256, 256, 0, params));
  CHECK_OK(cuCtxSynchronize());
  float *got = download(dc, (n + pad) * sizeof(float));
  CHECK_F32S(got, want, (size_t)n + pad);
  CHECK_OK(cuMemFree(da));
  CHECK_OK(cuMemFree(db));
  CHECK_OK(cuMemFree(dc));
  free(a);
  free(b);
  free(want);
  free(got);
  return gpt_checks_failed() == before;
}

static void test_kernels_vector_add(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "vectorAdd");
  run_vector_add(f, 50000, 1);
  run_vector_add(f, 1, 2);
  run_vector_add(f, 257, 3);

  /* Its parameters as the driver reports them: three pointers and an int. */
  static const size_t offs[] = {0, 8, 16, 24}, sizes[] = {8, 8, 8, 4};
  for (unsigned i = 0; i < 4; i++) {
    size_t off = 99, size = 99;
    CHECK_OK(cuFuncGetParamInfo(f, i, &off, &size));
    CHECK_EQ_U(off, offs[i]);
    CHECK_EQ_U(size, sizes[i]);
  }
  size_t off, size;
  CHECK_CU(cuFuncGetParamInfo(f, 4, &off, &size), CUDA_ERROR_INVALID_VALUE);
  int v = -1;
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f));
  CHECK_GE_I(v, 256);
  CHECK_LE_I(v, 1024);
  v = -1;
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f));
  CHECK_EQ_I(v, 0);

  /* Names that are not there. */
  CUfunction g = NULL;
  CHECK_CU(cuModuleGetFunction(&g, m, "noSuchKernel"), CUDA_ERROR_NOT_FOUND);
  CHECK_CU(cuModuleGetFunction(&g, m, "vectoradd"), CUDA_ERROR_NOT_FOUND);

  /* Launch configurations the device cannot run: nothing runs, nothing
   * sticks. */
  int n = 16;
  CUdeviceptr d = dalloc(64);
  void *params[] = {&d, &d, &d, &n};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1025, 1, 1, 0, NULL, params, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuLaunchKernel(f, 0, 1, 1, 32, 1, 1, 0, NULL, params, NULL),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuCtxSynchronize());
  run_vector_add(f, 1000, 4);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- saxpy_daxpy ------------------------------------------------------------------ */

static void test_kernels_saxpy_daxpy(int argc, char **argv) {
  start();
  /* This one loads through cuModuleLoad(path). */
  CUmodule m = NULL;
  REQUIRE_OK(cuModuleLoad(&m, image_path(IMG_BASIC)));
  CUfunction fs = fn(m, "saxpy"), fd = fn(m, "daxpy");
  struct rng r = {11};
  int n = 10007;

  float *x = gpt_xmalloc(n * sizeof(float)), *y = gpt_xmalloc(n * sizeof(float));
  float *want = gpt_xmalloc(n * sizeof(float));
  float a = 2.5f;
  for (int i = 0; i < n; i++) {
    x[i] = (float)rng_uniform(&r, -100, 100);
    y[i] = (float)rng_uniform(&r, -100, 100);
    want[i] = fmaf(a, x[i], y[i]);
  }
  CUdeviceptr dx = upload(x, n * sizeof(float)), dy = upload(y, n * sizeof(float));
  void *ps[] = {&n, &a, &dx, &dy};
  CHECK_OK(launch1(fs, (unsigned)(n + 127) / 128, 128, 0, ps));
  CHECK_OK(cuCtxSynchronize());
  float *got = download(dy, n * sizeof(float));
  CHECK_F32S(got, want, (size_t)n);
  free(got);

  /* daxpy on a stream of its own. */
  double *xd = gpt_xmalloc(n * sizeof(double)), *yd = gpt_xmalloc(n * sizeof(double));
  double *wantd = gpt_xmalloc(n * sizeof(double));
  double ad = -1.25;
  for (int i = 0; i < n; i++) {
    xd[i] = rng_uniform(&r, -1e6, 1e6);
    yd[i] = rng_uniform(&r, -1, 1);
    wantd[i] = fma(ad, xd[i], yd[i]);
  }
  CUstream s;
  REQUIRE_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr dxd = upload(xd, n * sizeof(double)), dyd = upload(yd, n * sizeof(double));
  void *pd[] = {&n, &ad, &dxd, &dyd};
  CHECK_OK(cuLaunchKernel(fd, (unsigned)(n + 63) / 64, 1, 1, 64, 1, 1, 0, s, pd, NULL));
  CHECK_OK(cuStreamSynchronize(s));
  double *gotd = download(dyd, n * sizeof(double));
  CHECK_F64S(gotd, wantd, (size_t)n);

  /* Twice more in a row, then one synchronisation: y = a*x + (a*x + y). */
  for (int i = 0; i < n; i++) wantd[i] = fma(ad, xd[i], fma(ad, xd[i], wantd[i]));
  CHECK_OK(cuLaunchKernel(fd, (unsigned)(n + 63) / 64, 1, 1, 64, 1, 1, 0, s, pd, NULL));
  CHECK_OK(cuLaunchKernel(fd, (unsigned)(n + 63) / 64, 1, 1, 64, 1, 1, 0, s, pd, NULL));
  CHECK_OK(cuStreamSynchronize(s));
  free(gotd);
  gotd = download(dyd, n * sizeof(double));
  CHECK_F64S(gotd, wantd, (size_t)n);
  CHECK_OK(cuStreamDestroy(s));
  CHECK_OK(cuModuleUnload(m));
  free(x);
  free(y);
  free(want);
  free(xd);
  free(yd);
  free(wantd);
  free(gotd);
  (void)argc;
  (void)argv;
}

/* ---- matrixmul ------------------------------------------------------------------------ */

#define TILE 16

/* The kernel's exact sequence of fmaf, zero padding included. */
static void matmul_ref(float *C, const float *A, const float *B, int m, int n,
                       int k) {
  int tiles = (k + TILE - 1) / TILE;
  for (int row = 0; row < m; row++)
    for (int col = 0; col < n; col++) {
      float c = 0.0f;
      for (int t = 0; t < tiles; t++)
        for (int j = 0; j < TILE; j++) {
          int kk = t * TILE + j;
          float a = kk < k ? A[row * k + kk] : 0.0f;
          float b = kk < k ? B[kk * n + col] : 0.0f;
          c = fmaf(a, b, c);
        }
      C[row * n + col] = c;
    }
}

static void run_matmul(CUfunction f, int m, int n, int k, uint64_t seed) {
  struct rng r = {seed};
  float *A = gpt_xmalloc((size_t)m * k * sizeof(float));
  float *B = gpt_xmalloc((size_t)k * n * sizeof(float));
  float *want = gpt_xmalloc((size_t)m * n * sizeof(float));
  for (int i = 0; i < m * k; i++) A[i] = (float)rng_uniform(&r, -1, 1);
  for (int i = 0; i < k * n; i++) B[i] = (float)rng_uniform(&r, -1, 1);
  matmul_ref(want, A, B, m, n, k);
  CUdeviceptr dA = upload(A, (size_t)m * k * sizeof(float));
  CUdeviceptr dB = upload(B, (size_t)k * n * sizeof(float));
  CUdeviceptr dC = dalloc((size_t)m * n * sizeof(float));
  void *params[] = {&dC, &dA, &dB, &m, &n, &k};
  CHECK_OK(cuLaunchKernel(f, (unsigned)(n + TILE - 1) / TILE,
                          (unsigned)(m + TILE - 1) / TILE, 1, TILE, TILE, 1, 0,
                          NULL, params, NULL));
  CHECK_OK(cuCtxSynchronize());
  float *got = download(dC, (size_t)m * n * sizeof(float));
  printf("matrixMul %d x %d x %d\n", m, n, k);
  CHECK_F32S(got, want, (size_t)m * n);
  CHECK_OK(cuMemFree(dA));
  CHECK_OK(cuMemFree(dB));
  CHECK_OK(cuMemFree(dC));
  free(A);
  free(B);
  free(want);
  free(got);
}

static void test_kernels_matrixmul(int argc, char **argv) {
  start();
  /* This one loads through cuModuleLoadFatBinary. */
  void *img = read_image(IMG_BASIC, NULL);
  CUmodule m = NULL;
  REQUIRE_OK(cuModuleLoadFatBinary(&m, img));
  free(img);
  CUfunction f = fn(m, "matrixMul");
  int v = -1;
  CHECK_OK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f));
  CHECK_EQ_I(v, 2 * TILE * TILE * (int)sizeof(float));
  run_matmul(f, 64, 64, 64, 21);   /* whole tiles */
  run_matmul(f, 50, 45, 37, 22);   /* none of them multiples of 16 */
  run_matmul(f, 1, 17, 3, 23);
  run_matmul(f, 33, 1, 16, 24);
  run_matmul(f, 96, 80, 112, 25);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- shuffle_reduce ---------------------------------------------------------------------- */

static void test_kernels_shuffle_reduce(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_ATOMICS);
  CUfunction f = fn(m, "shuffleReduce");
  struct rng r = {31};
  const int block = 128, grid = 32, threads = block * grid;
  int n = threads - 77; /* the last warps see zeros past n */
  int *in = gpt_xmalloc(threads * sizeof(int));
  for (int i = 0; i < threads; i++) in[i] = i < n ? rng_int(&r, -1000, 1000) : 0;
  int *wsum = xcalloc(threads / 32, sizeof(int));
  int *wxor = gpt_xmalloc(threads * sizeof(int)), *wup = gpt_xmalloc(threads * sizeof(int));
  int total = 0;
  for (int i = 0; i < threads; i++) {
    int lane = i & 31;
    wsum[i / 32] += in[i];
    total += in[i];
    wxor[i] = in[(i & ~31) | (lane ^ 5)];
    wup[i] = lane >= 3 ? in[i - 3] : in[i];
  }
  /* |total| <= 4096 * 1000 < 2^24: the float sum is exact in any order. */
  float ftotal = (float)total;

  CUdeviceptr din = upload(in, threads * sizeof(int));
  CUdeviceptr dws = dalloc(threads / 32 * sizeof(int));
  CUdeviceptr dt = dalloc(sizeof(int)), dft = dalloc(sizeof(float));
  CUdeviceptr dx = dalloc(threads * sizeof(int)), du = dalloc(threads * sizeof(int));
  CHECK_OK(cuMemsetD32(dt, 0, 1));
  CHECK_OK(cuMemsetD32(dft, 0, 1));
  void *params[] = {&din, &n, &dws, &dt, &dft, &dx, &du};
  CHECK_OK(launch1(f, grid, block, 0, params));
  CHECK_OK(cuCtxSynchronize());
  int *gws = download(dws, threads / 32 * sizeof(int));
  int *gx = download(dx, threads * sizeof(int)), *gu = download(du, threads * sizeof(int));
  int gt = 0;
  float gft = 0;
  CHECK_OK(cuMemcpyDtoH(&gt, dt, sizeof gt));
  CHECK_OK(cuMemcpyDtoH(&gft, dft, sizeof gft));
  CHECK_I32S(gws, wsum, (size_t)threads / 32);
  CHECK_I32S(gx, wxor, (size_t)threads);
  CHECK_I32S(gu, wup, (size_t)threads);
  CHECK_EQ_I(gt, total);
  CHECK_F32S(&gft, &ftotal, 1);
  free(in);
  free(wsum);
  free(wxor);
  free(wup);
  free(gws);
  free(gx);
  free(gu);
  (void)argc;
  (void)argv;
}

/* ---- histogram -------------------------------------------------------------------------- */

static void test_kernels_histogram(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_ATOMICS);
  CUfunction f = fn(m, "histograms");
  struct rng r = {41};
  int n = 20000, nbins = 61;
  int *key = gpt_xmalloc(n * sizeof(int));
  float *wf = gpt_xmalloc(n * sizeof(float));
  double *wd = gpt_xmalloc(n * sizeof(double)), *pm = gpt_xmalloc(n * sizeof(double));
  static const double factors[] = {0.5, 2.0, -1.0, 1.0, -2.0, 0.25, 4.0, -0.5};
  for (int i = 0; i < n; i++) {
    key[i] = rng_int(&r, 0, nbins - 1);
    /* Multiples of 1/4 and of 2^-20, powers of two: every sum and product
     * below is exact, whatever the order. */
    wf[i] = (float)rng_int(&r, -200, 200) / 4.0f;
    wd[i] = (double)rng_int(&r, -(1 << 22), 1 << 22) * 0x1p-20;
    pm[i] = factors[rng_int(&r, 0, 7)];
  }
  unsigned *counts = xcalloc(nbins, sizeof(unsigned));
  float *fsum = xcalloc(nbins, sizeof(float)), *fmx = gpt_xmalloc(nbins * sizeof(float));
  double *dsum = xcalloc(nbins, sizeof(double)), *dprod = gpt_xmalloc(nbins * sizeof(double));
  int *imin = gpt_xmalloc(nbins * sizeof(int)), *imax = gpt_xmalloc(nbins * sizeof(int));
  unsigned *bor = xcalloc(nbins, sizeof(unsigned)), *band = gpt_xmalloc(nbins * sizeof(unsigned));
  unsigned *bxor = xcalloc(nbins, sizeof(unsigned));
  int *exch = gpt_xmalloc(nbins * sizeof(int));
  for (int b = 0; b < nbins; b++) {
    fmx[b] = -INFINITY;
    dprod[b] = 1.0;
    imin[b] = INT_MAX;
    imax[b] = INT_MIN;
    band[b] = 0xffffffffu;
    exch[b] = -1;
  }
  /* Device copies start from these initial values. */
  CUdeviceptr dkey = upload(key, n * sizeof(int)), dwf = upload(wf, n * sizeof(float));
  CUdeviceptr dwd = upload(wd, n * sizeof(double)), dpm = upload(pm, n * sizeof(double));
  CUdeviceptr dcounts = upload(counts, nbins * sizeof(unsigned));
  CUdeviceptr dgcounts = upload(counts, nbins * sizeof(unsigned));
  CUdeviceptr dfsum = upload(fsum, nbins * sizeof(float));
  CUdeviceptr ddsum = upload(dsum, nbins * sizeof(double));
  CUdeviceptr dfmx = upload(fmx, nbins * sizeof(float));
  CUdeviceptr ddprod = upload(dprod, nbins * sizeof(double));
  CUdeviceptr dimin = upload(imin, nbins * sizeof(int));
  CUdeviceptr dimax = upload(imax, nbins * sizeof(int));
  CUdeviceptr dbor = upload(bor, nbins * sizeof(unsigned));
  CUdeviceptr dband = upload(band, nbins * sizeof(unsigned));
  CUdeviceptr dbxor = upload(bxor, nbins * sizeof(unsigned));
  CUdeviceptr dexch = upload(exch, nbins * sizeof(int));

  for (int i = 0; i < n; i++) {
    int k = key[i];
    counts[k]++;
    fsum[k] += wf[i];
    dsum[k] += wd[i];
    if (wf[i] > fmx[k]) fmx[k] = wf[i];
    dprod[k] *= pm[i];
    int h = (int)((long long)i * 7919 % 10007) - 5000;
    if (h < imin[k]) imin[k] = h;
    if (h > imax[k]) imax[k] = h;
    bor[k] |= 1u << (i % 32);
    band[k] &= ~(1u << (i % 32));
    bxor[k] ^= 1u << (i % 32);
  }

  void *params[] = {&dkey, &dwf, &dwd, &dpm, &n, &nbins, &dcounts, &dgcounts,
                    &dfsum, &ddsum, &dfmx, &ddprod, &dimin, &dimax, &dbor,
                    &dband, &dbxor, &dexch};
  CHECK_OK(launch1(f, 16, 256, 0, params));
  CHECK_OK(cuCtxSynchronize());

  unsigned *g_counts = download(dcounts, nbins * sizeof(unsigned));
  unsigned *g_gcounts = download(dgcounts, nbins * sizeof(unsigned));
  float *g_fsum = download(dfsum, nbins * sizeof(float));
  double *g_dsum = download(ddsum, nbins * sizeof(double));
  float *g_fmx = download(dfmx, nbins * sizeof(float));
  double *g_dprod = download(ddprod, nbins * sizeof(double));
  int *g_imin = download(dimin, nbins * sizeof(int));
  int *g_imax = download(dimax, nbins * sizeof(int));
  unsigned *g_bor = download(dbor, nbins * sizeof(unsigned));
  unsigned *g_band = download(dband, nbins * sizeof(unsigned));
  unsigned *g_bxor = download(dbxor, nbins * sizeof(unsigned));
  int *g_exch = download(dexch, nbins * sizeof(int));
  CHECK_U32S(g_counts, counts, (size_t)nbins);
  CHECK_U32S(g_gcounts, counts, (size_t)nbins);
  CHECK_F32S(g_fsum, fsum, (size_t)nbins);
  CHECK_F64S(g_dsum, dsum, (size_t)nbins);
  CHECK_F32S(g_fmx, fmx, (size_t)nbins);
  CHECK_F64S(g_dprod, dprod, (size_t)nbins);
  CHECK_I32S(g_imin, imin, (size_t)nbins);
  CHECK_I32S(g_imax, imax, (size_t)nbins);
  CHECK_U32S(g_bor, bor, (size_t)nbins);
  CHECK_U32S(g_band, band, (size_t)nbins);
  CHECK_U32S(g_bxor, bxor, (size_t)nbins);
  /* atomicExch: the last write wins, which is any element of the bin. */
  for (int b = 0; b < nbins; b++) {
    int e = g_exch[b];
    if (counts[b] == 0)
      CHECK_EQ_I(e, -1);
    else if (CHECK_TRUE(e >= 0 && e < n))
      CHECK_EQ_I(key[e], b);
  }
  unsigned total = 0;
  for (int b = 0; b < nbins; b++) total += g_counts[b];
  CHECK_EQ_U(total, (unsigned)n);
  free(key);
  free(wf);
  free(wd);
  free(pm);
  free(counts);
  free(fsum);
  free(fmx);
  free(dsum);
  free(dprod);
  free(imin);
  free(imax);
  free(bor);
  free(band);
  free(bxor);
  free(exch);
  free(g_counts);
  free(g_gcounts);
  free(g_fsum);
  free(g_dsum);
  free(g_fmx);
  free(g_dprod);
  free(g_imin);
  free(g_imax);
  free(g_bor);
  free(g_band);
  free(g_bxor);
  free(g_exch);
  (void)argc;
  (void)argv;
}

/* ---- math ---------------------------------------------------------------------------------
 *
 * Maximum ULP errors from the CUDA C++ Programming Guide's appendix
 * "Mathematical Functions" (Standard Functions, tables "Single-Precision
 * Mathematical Standard Library Functions with Maximum ULP Error" and its
 * double-precision twin; Intrinsic Functions for __expf), for nvcc's
 * defaults (-prec-div=true, -prec-sqrt=true, no fast maths). The guide
 * states each bound as the distance in ulps between the function's result
 * and the correctly rounded (to nearest even) exact result.
 *
 * The reference here is the host's libm one precision up (double for the
 * float functions, x87 long double for the double ones): its error is far
 * below half an ulp of the result type, but rounding it to the result type
 * could still land on the wrong side of a midpoint, so rather than count
 * ulps from a possibly misrounded value the check measures the real
 * distance from the reference in units of the ulp at the reference
 * (Muller's ulp(x): the gap between the two floating-point numbers around
 * x) and allows B + 1/2: |got - cr| <= B with |cr - exact| <= 1/2 implies
 * it, and it does not depend on how the reference rounds.
 */

#define NF_F32 10
#define NF_F64 8

static const char *const f32_names[NF_F32] = {
    "sinf", "cosf", "expf", "logf", "powf", "sqrtf", "tanhf", "erff", "rsqrtf",
    "__expf"};
/* Documented maximum ulp error of each; __expf's depends on x (below). */
static const double f32_bound[NF_F32] = {
    2, /* sinf(x): 2 (full range) */
    2, /* cosf(x): 2 (full range) */
    2, /* expf(x): 2 (full range) */
    1, /* logf(x): 1 (full range) */
    4, /* powf(x,y): 4 (full range) */
    0, /* sqrtf(x): 0 when compiled with -prec-sqrt=true (the default) */
    2, /* tanhf(x): 2 (full range) */
    2, /* erff(x): 2 (full range) */
    2, /* rsqrtf(x): 2 (full range) */
    2, /* __expf(x): 2 + floor(abs(1.173 * x)), added below */
};

static const char *const f64_names[NF_F64] = {"sin", "cos", "exp", "log",
                                              "pow", "sqrt", "tanh", "erf"};
static const double f64_bound[NF_F64] = {
    2, /* sin(x): 2 (full range) */
    2, /* cos(x): 2 (full range) */
    1, /* exp(x): 1 (full range) */
    1, /* log(x): 1 (full range) */
    2, /* pow(x,y): 2 (full range) */
    0, /* sqrt(x): 0 (IEEE-754 round-to-nearest-even) */
    1, /* tanh(x): 1 (full range) */
    2, /* erf(x): 2 (full range) */
};

/* The reference's own error, in ulps of the result type: ample for libm's
 * double and long double functions, whose errors are a few ulps of *their*
 * type (2^-29 and 2^-11 ulps of the result type). */
#define REF_SLACK 0.01

/* The gap between the floats around |r| (never below the smallest
 * subnormal's). */
static double ulp_f32(double r) {
  int e;
  if (r == 0) return 0x1p-149;
  frexp(fabs(r), &e); /* 2^(e-1) <= |r| < 2^e */
  return e - 24 < -149 ? 0x1p-149 : ldexp(1.0, e - 24);
}

static long double ulp_f64(long double r) {
  int e;
  if (r == 0) return 0x1p-1074L;
  frexpl(fabsl(r), &e);
  return e - 53 < -1074 ? 0x1p-1074L : ldexpl(1.0L, e - 53);
}

/* The error of |got| in ulps of the reference |ref| (0 when |got| is what
 * |ref| rounds to; infinite when only one is NaN or infinite). */
static double err_f32(float got, double ref) {
  float cr = (float)ref;
  if (isnan(ref) || isnan(got)) return isnan(ref) && isnan(got) ? 0 : INFINITY;
  if (got == cr) return 0;
  if (isinf(got) || isinf(cr)) return INFINITY;
  return fabs((double)got - ref) / ulp_f32(ref);
}

static double err_f64(double got, long double ref) {
  double cr = (double)ref;
  if (isnan(ref) || isnan(got)) return isnan(ref) && isnan(got) ? 0 : INFINITY;
  if (got == cr) return 0;
  if (isinf(got) || isinf(cr)) return INFINITY;
  return (double)(fabsl((long double)got - ref) / ulp_f64(ref));
}

static void ref_f32(float x, float y, double *o) {
  double v = x, a = fabs(v);
  o[0] = sin(v);
  o[1] = cos(v);
  o[2] = exp(v);
  o[3] = log(a);
  o[4] = pow(a, (double)y);
  o[5] = sqrt(a);
  o[6] = tanh(v);
  o[7] = erf(v);
  o[8] = 1.0 / sqrt(a);
  o[9] = exp(v);
}

static void ref_f64(double x, double y, long double *o) {
  long double v = x, a = fabsl(v);
  o[0] = sinl(v);
  o[1] = cosl(v);
  o[2] = expl(v);
  o[3] = logl(a);
  o[4] = powl(a, (long double)y);
  o[5] = sqrtl(a);
  o[6] = tanhl(v);
  o[7] = erfl(v);
}

/* Inputs: values across the interesting ranges, then random ones. None is
 * 0 (log and rsqrt would be infinite, which the comparison allows but
 * proves little) or so close to a type's overflow that the correctly
 * rounded result's finiteness is in doubt. */
static const float math_x32[] = {
    1e-30f, -1e-30f, 0.5f, 1.0f, 2.0f, 3.14159274f, -3.14159274f, 100.5f,
    -87.0f, 88.5f, 1e4f, -3e5f, 1.5e7f, 1e30f, 6.5f, -0.125f,
    1.5707964f, 0.1f, -9.99f, 0x1p-20f};
static const double math_x64[] = {
    1e-300, -1e-300, 0.5, 1.0, 2.0, 3.141592653589793, -3.141592653589793,
    100.5, -708.0, 700.0, 1e4, -3e5, 1.5e7, 1e22, 1e300, 6.5, -0.125,
    1.5707963267948966, 0.1, -9.99};
#define MATH_N 1024

static void run_math(CUmodule m, const char *label, const float *x32,
                     const float *y32, const double *x64, const double *y64,
                     int n) {
  CUfunction f32 = fn(m, "mathF32"), f64 = fn(m, "mathF64");
  CUdeviceptr dx = upload(x32, n * sizeof(float)), dy = upload(y32, n * sizeof(float));
  CUdeviceptr dout = dalloc((size_t)n * NF_F32 * sizeof(float));
  void *p32[] = {&dx, &dy, &dout, &n};
  CHECK_OK(launch1(f32, (unsigned)(n + 31) / 32, 32, 0, p32));
  CUdeviceptr dxd = upload(x64, n * sizeof(double)), dyd = upload(y64, n * sizeof(double));
  CUdeviceptr doutd = dalloc((size_t)n * NF_F64 * sizeof(double));
  void *p64[] = {&dxd, &dyd, &doutd, &n};
  CHECK_OK(launch1(f64, (unsigned)(n + 31) / 32, 32, 0, p64));
  CHECK_OK(cuCtxSynchronize());
  float *g32 = download(dout, (size_t)n * NF_F32 * sizeof(float));
  double *g64 = download(doutd, (size_t)n * NF_F64 * sizeof(double));

  double worst32[NF_F32] = {0}, worst64[NF_F64] = {0};
  struct diffs d;
  diff_begin(&d, __FILE__, __LINE__, "float maths within the documented ulps",
             (size_t)n * NF_F32);
  for (int i = 0; i < n; i++) {
    double ref[NF_F32];
    ref_f32(x32[i], y32[i], ref);
    for (int k = 0; k < NF_F32; k++) {
      double bound = f32_bound[k];
      if (k == 9) bound += floor(fabs(1.173 * (double)x32[i]));
      float got = g32[(size_t)i * NF_F32 + k];
      double e = err_f32(got, ref[k]);
      if (e > worst32[k]) worst32[k] = e;
      diff_elem(&d, e <= bound + 0.5 + REF_SLACK,
                "%s: %s(%.9g%s%.9g) = %.9g (%a), reference %.17g: %.2f ulp, "
                "bound %g (+1/2)",
                label, f32_names[k], (double)x32[i], k == 4 ? ", " : "",
                k == 4 ? (double)y32[i] : 0.0, (double)got, (double)got,
                ref[k], e, bound);
    }
  }
  diff_end(&d);
  diff_begin(&d, __FILE__, __LINE__, "double maths within the documented ulps",
             (size_t)n * NF_F64);
  for (int i = 0; i < n; i++) {
    long double ref[NF_F64];
    ref_f64(x64[i], y64[i], ref);
    for (int k = 0; k < NF_F64; k++) {
      double got = g64[(size_t)i * NF_F64 + k];
      double e = err_f64(got, ref[k]);
      if (e > worst64[k]) worst64[k] = e;
      diff_elem(&d, e <= f64_bound[k] + 0.5 + REF_SLACK,
                "%s: %s(%.17g%s%.17g) = %.17g (%a), reference %.20Lg: %.2f "
                "ulp, bound %g (+1/2)",
                label, f64_names[k], x64[i], k == 4 ? ", " : "",
                k == 4 ? y64[i] : 0.0, got, got, ref[k], e, f64_bound[k]);
    }
  }
  diff_end(&d);
  printf("%s: worst errors in ulps (bound):", label);
  for (int k = 0; k < NF_F32; k++)
    printf(" %s %.2f (%g%s)", f32_names[k], worst32[k], f32_bound[k],
           k == 9 ? " + floor(1.173|x|)" : "");
  for (int k = 0; k < NF_F64; k++)
    printf(" %s %.2f (%g)", f64_names[k], worst64[k], f64_bound[k]);
  printf("\n");
  CHECK_OK(cuMemFree(dx));
  CHECK_OK(cuMemFree(dy));
  CHECK_OK(cuMemFree(dout));
  CHECK_OK(cuMemFree(dxd));
  CHECK_OK(cuMemFree(dyd));
  CHECK_OK(cuMemFree(doutd));
  free(g32);
  free(g64);
}

static void test_kernels_math(int argc, char **argv) {
  start();
  struct rng r = {51};
  const int n = MATH_N;
  float x32[MATH_N], y32[MATH_N];
  double x64[MATH_N], y64[MATH_N];
  const int ns32 = (int)(sizeof math_x32 / sizeof math_x32[0]);
  const int ns64 = (int)(sizeof math_x64 / sizeof math_x64[0]);
  for (int i = 0; i < n; i++) {
    double v;
    if (i < n / 2)
      v = rng_uniform(&r, -10, 10);
    else if (i < n * 3 / 4)
      v = rng_uniform(&r, -100, 100);
    else /* magnitudes from 2^-20 to 2^20, either sign */
      v = ldexp(rng_uniform(&r, 1, 2), rng_int(&r, -20, 20)) *
          (rng_next(&r) & 1 ? -1 : 1);
    x32[i] = (float)v;
    x64[i] = v;
    double w = rng_uniform(&r, -4, 4);
    y32[i] = (float)w;
    y64[i] = w;
  }
  for (int i = 0; i < ns32; i++) x32[i] = math_x32[i];
  for (int i = 0; i < ns64; i++) x64[i] = math_x64[i];

  /* nvcc's default fatbin and its PTX built alone: the same code, so the
   * same answers; both within the bounds. */
  CUmodule m = load(IMG_MATH);
  run_math(m, "fatbin", x32, y32, x64, y64, n);
  CUmodule mp = load(IMG_MATH_PTX);
  run_math(mp, "ptx", x32, y32, x64, y64, n);
  CHECK_OK(cuModuleUnload(m));
  CHECK_OK(cuModuleUnload(mp));
  (void)argc;
  (void)argv;
}

/* ---- gridstride64 -------------------------------------------------------------------------- */

static void test_kernels_gridstride64(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "gridStride64");
  const unsigned grid = 5, block = 64, threads = grid * block;
  long long mult = 65537, stride = (long long)threads * mult; /* ~2^24.3 */
  /* n = 207 strides + 100: about 2^32.01, so every thread's last indices
   * lie past 2^32, and threads 0..99 make one more iteration than the
   * others. */
  long long n = 207 * stride + 100;
  int nbins = 97;

  uint64_t *count = xcalloc(threads, 8), *last = xcalloc(threads, 8), *sum = xcalloc(threads, 8);
  uint32_t *bins = xcalloc(nbins, 4);
  uint64_t max_last = 0, min_count = UINT64_MAX, max_count = 0;
  for (long long t = 0; t < threads; t++) {
    for (long long i = t; i < n; i += stride) {
      count[t]++;
      last[t] = (uint64_t)i;
      sum[t] += (uint64_t)i;
      bins[i % nbins]++;
    }
    if (last[t] > max_last) max_last = last[t];
    if (count[t] < min_count) min_count = count[t];
    if (count[t] > max_count) max_count = count[t];
  }
  /* The test's own premise: indices past 2^32, and threads that stop at
   * different counts. */
  REQUIRE_TRUE(max_last > (1ull << 32));
  REQUIRE_TRUE(min_count < max_count);

  CUdeviceptr dc = dalloc(threads * 8), dl = dalloc(threads * 8), ds = dalloc(threads * 8);
  CUdeviceptr db = dalloc(nbins * 4);
  CHECK_OK(cuMemsetD32(db, 0, nbins));
  void *params[] = {&dc, &dl, &ds, &db, &nbins, &n, &mult};
  double t0 = gpt_now();
  CHECK_OK(launch1(f, grid, block, 0, params));
  CHECK_OK(cuCtxSynchronize());
  printf("gridStride64: %u threads, %llu to %llu iterations each, %.2f s\n",
         threads, (unsigned long long)min_count, (unsigned long long)max_count,
         gpt_now() - t0);
  uint64_t *gc = download(dc, threads * 8), *gl = download(dl, threads * 8);
  uint64_t *gs = download(ds, threads * 8);
  uint32_t *gb = download(db, nbins * 4);
  CHECK_U64S(gc, count, threads);
  CHECK_U64S(gl, last, threads);
  CHECK_U64S(gs, sum, threads);
  CHECK_U32S(gb, bins, (size_t)nbins);
  free(count);
  free(last);
  free(sum);
  free(bins);
  free(gc);
  free(gl);
  free(gs);
  free(gb);
  (void)argc;
  (void)argv;
}

/* ---- struct_arg ------------------------------------------------------------------------------ */

/* The kernel's structures as the host compiler lays them out; on x86-64
 * and AArch64 that is what nvcc assumes too (the static assertions pin
 * it). The device pointer is a CUdeviceptr, of a pointer's size and
 * alignment. */
struct mixed {
  char c;
  short s;
  int i;
  double d;
  CUdeviceptr p;
  int q[3];
  char tail;
};
struct small {
  short a;
  char b;
};
_Static_assert(sizeof(struct mixed) == 40, "struct mixed is 40 bytes");
_Static_assert(_Alignof(struct mixed) == 8, "struct mixed is 8-aligned");
_Static_assert(offsetof(struct mixed, d) == 8, "d at 8");
_Static_assert(offsetof(struct mixed, q) == 24, "q at 24");
_Static_assert(offsetof(struct mixed, tail) == 36, "tail at 36");
_Static_assert(sizeof(struct small) == 4, "struct small is 4 bytes");

#define SA_THREADS 32

static void struct_ref(const struct mixed *mx, unsigned char k,
                       const struct small *sm, long long *out, float *p) {
  for (int t = 0; t < SA_THREADS; t++) {
    out[t * 8 + 0] = mx->c;
    out[t * 8 + 1] = mx->s;
    out[t * 8 + 2] = mx->i;
    out[t * 8 + 3] = (long long)(mx->d * 1000.0);
    out[t * 8 + 4] = mx->q[t % 3];
    out[t * 8 + 5] = mx->tail;
    out[t * 8 + 6] = k;
    out[t * 8 + 7] = sm->a * 1000 + sm->b;
    p[t] = (float)mx->i + (float)t;
  }
}

static void test_kernels_struct_arg(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "structArg");

  /* The layout the driver reports matches the C one. */
  static const size_t offs[] = {0, 40, 42, 48}, sizes[] = {40, 1, 4, 8};
  for (unsigned i = 0; i < 4; i++) {
    size_t off = 99, size = 99;
    CHECK_OK(cuFuncGetParamInfo(f, i, &off, &size));
    CHECK_EQ_U(off, offs[i]);
    CHECK_EQ_U(size, sizes[i]);
  }

  CUdeviceptr dout = dalloc(SA_THREADS * 8 * sizeof(long long));
  CUdeviceptr dp = dalloc(SA_THREADS * sizeof(float));
  long long want[SA_THREADS * 8];
  float wantp[SA_THREADS];

  /* kernelParams: one pointer per parameter. */
  struct mixed mx;
  memset(&mx, 0x5a, sizeof mx); /* padding holds junk, as it may */
  mx.c = -5;
  mx.s = -1234;
  mx.i = 123456789;
  mx.d = 3.25;
  mx.p = dp;
  mx.q[0] = 7;
  mx.q[1] = -8;
  mx.q[2] = 9;
  mx.tail = '~';
  unsigned char k = 200;
  struct small sm = {-321, 'x'};
  void *params[] = {&mx, &k, &sm, &dout};
  CHECK_OK(launch1(f, 1, SA_THREADS, 0, params));
  CHECK_OK(cuCtxSynchronize());
  struct_ref(&mx, k, &sm, want, wantp);
  long long *got = download(dout, sizeof want);
  float *gotp = download(dp, sizeof wantp);
  CHECK_U64S(got, want, (size_t)SA_THREADS * 8);
  CHECK_F32S(gotp, wantp, SA_THREADS);
  free(got);
  free(gotp);

  /* extra: the packed buffer, laid out by the C rules (each parameter at
   * its alignment), as cudart packs it. */
  mx.c = 17;
  mx.s = 31000;
  mx.i = -77;
  mx.d = -0.5;
  mx.q[0] = -1;
  mx.q[1] = 2000000000;
  mx.q[2] = 0;
  mx.tail = 1;
  k = 3;
  sm.a = 9;
  sm.b = -2;
  unsigned char buf[56];
  memset(buf, 0xcc, sizeof buf);
  memcpy(buf + 0, &mx, sizeof mx);
  memcpy(buf + 40, &k, 1);
  memcpy(buf + 42, &sm, sizeof sm);
  memcpy(buf + 48, &dout, 8);
  size_t bufsize = sizeof buf;
  void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
                   CU_LAUNCH_PARAM_BUFFER_SIZE, &bufsize, CU_LAUNCH_PARAM_END};
  CHECK_OK(cuLaunchKernel(f, 1, 1, 1, SA_THREADS, 1, 1, 0, NULL, NULL, extra));
  CHECK_OK(cuCtxSynchronize());
  struct_ref(&mx, k, &sm, want, wantp);
  got = download(dout, sizeof want);
  gotp = download(dp, sizeof wantp);
  CHECK_U64S(got, want, (size_t)SA_THREADS * 8);
  CHECK_F32S(gotp, wantp, SA_THREADS);
  free(got);
  free(gotp);

  /* A buffer of the wrong size is refused and runs nothing. */
  size_t short_size = 48;
  void *bad[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
                 CU_LAUNCH_PARAM_BUFFER_SIZE, &short_size, CU_LAUNCH_PARAM_END};
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, SA_THREADS, 1, 1, 0, NULL, NULL, bad),
           CUDA_ERROR_INVALID_VALUE);
  /* So is giving both kernelParams and extra (cuda.h says so). */
  CHECK_CU(cuLaunchKernel(f, 1, 1, 1, SA_THREADS, 1, 1, 0, NULL, params, extra),
           CUDA_ERROR_INVALID_VALUE);
  CHECK_OK(cuCtxSynchronize());
  (void)argc;
  (void)argv;
}

/* ---- printf ---------------------------------------------------------------------------------- */

/* Splits |text| into lines (in place); returns how many, at most |max|. */
static int split_lines(char *text, char **lines, int max) {
  int n = 0;
  char *p = text;
  while (*p && n < max) {
    char *nl = strchr(p, '\n');
    lines[n++] = p;
    if (nl == NULL) break;
    *nl = '\0';
    p = nl + 1;
  }
  return n;
}

#define PF_BLOCKS 2
#define PF_THREADS 8
#define PF_N (PF_BLOCKS * PF_THREADS)

static void test_kernels_printf(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_PRINTF);
  CUfunction fk = fn(m, "printfKernel"), fp = fn(m, "printfPlain");
  float vals[PF_N];
  for (int g = 0; g < PF_N; g++) vals[g] = (float)g * 1.5f - 3.25f;
  CUdeviceptr dv = upload(vals, sizeof vals);
  int tag = 7;
  void *params[] = {&dv, &tag};

  struct capture cap;
  capture_begin(&cap, 1);
  CUresult r1 = launch1(fk, PF_BLOCKS, PF_THREADS, 0, params);
  CUresult r2 = cuCtxSynchronize();
  CUresult r3 = launch1(fp, 3, 2, 0, NULL);
  CUresult r4 = cuCtxSynchronize();
  char *text = capture_end(&cap);
  CHECK_OK(r1);
  CHECK_OK(r2);
  CHECK_OK(r3);
  CHECK_OK(r4);

  /* What C's printf makes of the same formats and values. */
  enum { MAXL = 128 };
  char want[MAXL][320];
  int nw = 0;
  for (int b = 0; b < PF_BLOCKS; b++)
    for (int t = 0; t < PF_THREADS; t++) {
      int g = b * PF_THREADS + t;
      snprintf(want[nw++], sizeof want[0], "first b=%d t=%d tag=%d v=%f", b,
               t, tag, (double)vals[g]);
      snprintf(want[nw++], sizeof want[0], "second g=%d word=%s neg=%.1f", g,
               "gpupool", -(double)vals[g]);
    }
  snprintf(want[nw++], sizeof want[0],
           "all: %d %i %u %x %X %o %ld %lld %llu %5d|%-5d|%05d %c %s %.3s "
           "%e %.2E %g %G %a %10.4f %-8.2f| %%",
           -42, 7, 4000000000u, 0xbeefu, 0xcafeu, 8u, -1234567890123L,
           -9000000000000000000LL, 18000000000000000000ULL, 12, 34, -56, 'Z',
           "gpupool", "truncated", 12345.678, -0.000123, 0.0001, 1e20, 1.0,
           3.14159265, -2.5);
  int nfirst = nw;
  for (int b = 0; b < 3; b++) {
    snprintf(want[nw++], sizeof want[0], "no arguments here");
    for (int t = 0; t < 2; t++)
      snprintf(want[nw++], sizeof want[0], "plain line from block %d", b);
  }

  size_t len = strlen(text);
  CHECK_TRUE(len > 0 && text[len - 1] == '\n'); /* whole lines */
  char *got[MAXL + 8];
  int ng = split_lines(text, got, MAXL + 8);
  if (ng > 0 && got[ng - 1][0] == '\0') ng--; /* after the last newline */
  CHECK_EQ_I(ng, nw);

  /* The same lines, as a multiset: order across threads is unspecified. */
  bool used[MAXL + 8] = {false};
  int pos[MAXL];
  for (int w = 0; w < nw; w++) {
    pos[w] = -1;
    for (int g = 0; g < ng; g++)
      if (!used[g] && strcmp(got[g], want[w]) == 0) {
        used[g] = true;
        pos[w] = g;
        break;
      }
    if (pos[w] < 0)
      gpt__check_fail(__FILE__, __LINE__, "device printf line", "missing: \"%s\"",
                      want[w]);
    else
      gpt__check_pass();
  }
  for (int g = 0; g < ng; g++)
    if (!used[g])
      gpt__check_fail(__FILE__, __LINE__, "device printf line",
                      "unexpected: \"%s\"", got[g]);

  /* Within a thread, in program order; the first kernel's lines all before
   * the second's (a synchronisation came between). */
  for (int g = 0; g < PF_N; g++)
    if (pos[2 * g] >= 0 && pos[2 * g + 1] >= 0) CHECK_LT_I(pos[2 * g], pos[2 * g + 1]);
  int last_first = -1, first_second = INT_MAX;
  for (int w = 0; w < nw; w++) {
    if (pos[w] < 0) continue;
    if (w < nfirst && pos[w] > last_first) last_first = pos[w];
    if (w >= nfirst && pos[w] < first_second) first_second = pos[w];
  }
  CHECK_LT_I(last_first, first_second);

  /* Nothing more comes later: output is not printed twice. */
  capture_begin(&cap, 1);
  CUresult r5 = cuCtxSynchronize();
  char *more = capture_end(&cap);
  CHECK_OK(r5);
  CHECK_STR_EQ(more, "");
  free(more);
  free(text);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- half ------------------------------------------------------------------------------------ */

/* binary16 references. A finite value is (-1)^neg * mag * 2^e with an
 * integer |mag|; h_round() rounds such an exact value to binary16 in one of
 * IEEE's four modes, subnormals and overflow included. */
enum rmode { RN, RZ, RD, RU };

static uint16_t h_round(bool neg, unsigned __int128 mag, int e, enum rmode mode) {
  uint16_t sign = neg ? 0x8000 : 0;
  if (mag == 0) return sign;
  int len = 0;
  for (unsigned __int128 t = mag; t; t >>= 1) len++;
  int p = len - 1 + e;        /* 2^p <= value < 2^(p+1) */
  int q = p - 10 > -24 ? p - 10 : -24; /* the quantum at that exponent */
  int shift = q - e;
  unsigned __int128 r;
  bool inexact = false, above_half = false, at_half = false;
  if (shift <= 0) {
    r = mag << -shift;
  } else if (shift > 120) {
    r = 0;
    inexact = true; /* far below half a quantum */
  } else {
    r = mag >> shift;
    unsigned __int128 rem = mag - (r << shift), half = (unsigned __int128)1 << (shift - 1);
    inexact = rem != 0;
    above_half = rem > half;
    at_half = rem == half;
  }
  bool up = false;
  switch (mode) {
    case RN: up = above_half || (at_half && (r & 1)); break;
    case RZ: up = false; break;
    case RU: up = inexact && !neg; break;
    case RD: up = inexact && neg; break;
  }
  r += up;
  if (r == 2048) { /* carried into the next binade */
    r = 1024;
    q++;
  }
  if (r < 1024) return sign | (uint16_t)r; /* subnormal (q == -24) or 0 */
  int E = q + 25;
  if (E >= 31) { /* overflow: infinity or the largest finite, by mode */
    bool to_inf = mode == RN || (mode == RU && !neg) || (mode == RD && neg);
    return sign | (to_inf ? 0x7c00 : 0x7bff);
  }
  return sign | (uint16_t)(E << 10) | (uint16_t)(r - 1024);
}

static bool h_isnan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* Exact: every binary16 is a float. */
static float h2f(uint16_t h) {
  int E = (h >> 10) & 31, M = h & 0x3ff;
  float v;
  if (E == 31)
    v = M ? NAN : INFINITY;
  else if (E == 0)
    v = ldexpf((float)M, -24);
  else
    v = ldexpf((float)(M | 1024), E - 25);
  return (h & 0x8000) ? -v : v;
}

/* A finite half as a signed integer count of 2^-24. */
static long long h_units(uint16_t h) {
  int E = (h >> 10) & 31, M = h & 0x3ff;
  long long v = E == 0 ? M : (long long)(M | 1024) << (E - 1);
  return (h & 0x8000) ? -v : v;
}

static uint16_t f2h(float f, enum rmode mode) {
  uint32_t b;
  memcpy(&b, &f, 4);
  bool neg = b >> 31;
  int E = (b >> 23) & 0xff;
  uint32_t M = b & 0x7fffff;
  if (E == 0xff) return M ? 0x7fff : (neg ? 0xfc00 : 0x7c00);
  if (E == 0) return h_round(neg, M, -149, mode);
  return h_round(neg, M | 0x800000u, E - 150, mode);
}

/* Finite operands are rounded exactly; with an infinity or a NaN among
 * them the result is exact in float arithmetic (an infinity, a NaN, or an
 * operand), so float does it. */
static bool h_special(uint16_t a, uint16_t b) {
  return (a & 0x7c00) == 0x7c00 || (b & 0x7c00) == 0x7c00;
}

static uint16_t h_add(uint16_t a, uint16_t b) {
  if (h_special(a, b)) return f2h(h2f(a) + h2f(b), RN);
  long long s = h_units(a) + h_units(b);
  if (s == 0) /* exact zero: -0 only for (-0) + (-0) */
    return (a & b & 0x8000) ? 0x8000 : 0;
  return h_round(s < 0, (unsigned __int128)(s < 0 ? -s : s), -24, RN);
}

static uint16_t h_sub(uint16_t a, uint16_t b) {
  return h_add(a, b ^ 0x8000);
}

static uint16_t h_mul(uint16_t a, uint16_t b) {
  if (h_special(a, b)) return f2h(h2f(a) * h2f(b), RN);
  long long x = h_units(a), y = h_units(b);
  bool neg = ((a ^ b) & 0x8000) != 0;
  unsigned __int128 p = (unsigned __int128)(x < 0 ? -x : x) * (unsigned __int128)(y < 0 ? -y : y);
  return h_round(neg, p, -48, RN); /* a zero product keeps the sign */
}

static uint16_t h_fma(uint16_t a, uint16_t b, uint16_t c) {
  if (h_special(a, b) || h_special(c, 0)) return f2h(fmaf(h2f(a), h2f(b), h2f(c)), RN);
  __int128 p = (__int128)h_units(a) * h_units(b); /* units of 2^-48 */
  __int128 s = p + (__int128)h_units(c) * ((__int128)1 << 24);
  if (s == 0) {
    /* exact zero: -0 only when the product and c are both -0 ... or both
     * zeros of negative sign; a cancellation gives +0. */
    bool pneg = ((a ^ b) & 0x8000) != 0;
    bool pzero = p == 0, czero = h_units(c) == 0;
    return (pzero && czero && pneg && (c & 0x8000)) ? 0x8000 : 0;
  }
  return h_round(s < 0, (unsigned __int128)(s < 0 ? -s : s), -48, RN);
}

static bool h_same(uint16_t got, uint16_t want) {
  if (h_isnan(want)) return h_isnan(got); /* any NaN */
  return got == want;
}

static bool check_h16s(const char *file, int line, const char *what,
                       const uint16_t *got, const uint16_t *want, size_t n,
                       const uint16_t *in_a, const uint16_t *in_b,
                       const uint16_t *in_c, size_t stride) {
  struct diffs d;
  diff_begin(&d, file, line, what, n);
  for (size_t i = 0; i < n; i++) {
    size_t j = i / stride;
    diff_elem(&d, h_same(got[i], want[i]),
              "[%zu] (inputs 0x%04x 0x%04x 0x%04x = %g %g %g): got 0x%04x (%g), "
              "expected 0x%04x (%g)",
              i, in_a ? in_a[j] : 0, in_b ? in_b[j] : 0, in_c ? in_c[j] : 0,
              in_a ? (double)h2f(in_a[j]) : 0.0, in_b ? (double)h2f(in_b[j]) : 0.0,
              in_c ? (double)h2f(in_c[j]) : 0.0, got[i], (double)h2f(got[i]),
              want[i], (double)h2f(want[i]));
  }
  return diff_end(&d);
}
#define CHECK_H16S(got, want, n, a, b, c, stride) \
  check_h16s(__FILE__, __LINE__, #got, got, want, n, a, b, c, stride)

/* A random binary16 operand: mostly ordinary values, some subnormals,
 * zeros, values near the top of the range, a few infinities and NaNs. */
static uint16_t h_random(struct rng *r) {
  int kind = rng_int(r, 0, 99);
  uint16_t sign = (rng_next(r) & 1) ? 0x8000 : 0;
  if (kind < 60) /* exponents around 1: sums and products stay normal */
    return sign | (uint16_t)(rng_int(r, 10, 20) << 10) | (uint16_t)rng_int(r, 0, 1023);
  if (kind < 75) /* any finite */
    return sign | (uint16_t)rng_int(r, 0, 0x7bff);
  if (kind < 85) /* subnormal or tiny */
    return sign | (uint16_t)rng_int(r, 0, 0x0bff);
  if (kind < 93) /* large: overflows when added or multiplied */
    return sign | (uint16_t)rng_int(r, 0x7000, 0x7bff);
  if (kind < 96) return sign; /* zero */
  if (kind < 98) return sign | 0x7c00; /* infinity */
  return 0x7e00; /* NaN */
}

#define HN 512

static void test_kernels_half(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_HALF);
  struct rng r = {61};

  /* float -> half in all four modes, and back. */
  {
    static const float edge[] = {
        1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -1.0f - 0x1p-11f, /* ties */
        65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e10f, -1e10f,
        0x1p-24f, 0x1p-25f, 3 * 0x1p-25f, 0x1p-26f, -0x1p-25f, 0x1.8p-24f,
        0x1p-14f, 0x1.ffcp-15f, 0.0f, -0.0f, 1e-30f, -1e-30f,
        0.1f, -2.71828f, 3.14159f, 1024.5f, 2049.0f, 2051.0f,
    };
    const int ne = (int)(sizeof edge / sizeof edge[0]);
    int n = HN;
    float *f = gpt_xmalloc(n * sizeof(float));
    for (int i = 0; i < n; i++) {
      if (i < ne)
        f[i] = edge[i];
      else if (i < ne + 8)
        f[i] = i & 1 ? INFINITY : -INFINITY;
      else if (i == ne + 8)
        f[i] = NAN;
      else /* magnitudes 2^-30 .. 2^17, any mantissa */
        f[i] = ldexpf((float)rng_uniform(&r, 1, 2), rng_int(&r, -30, 17)) *
               (rng_next(&r) & 1 ? -1.0f : 1.0f);
    }
    uint16_t *want[4];
    float *wback = gpt_xmalloc(n * sizeof(float));
    for (int mo = 0; mo < 4; mo++) {
      want[mo] = gpt_xmalloc(n * 2);
      for (int i = 0; i < n; i++) want[mo][i] = f2h(f[i], (enum rmode)mo);
    }
    for (int i = 0; i < n; i++) wback[i] = h2f(want[RN][i]);
    CUfunction fc = fn(m, "halfConvert");
    CUdeviceptr df = upload(f, n * sizeof(float));
    CUdeviceptr drn = dalloc(n * 2), dback = dalloc(n * sizeof(float));
    CUdeviceptr drz = dalloc(n * 2), drd = dalloc(n * 2), dru = dalloc(n * 2);
    void *params[] = {&df, &drn, &dback, &drz, &drd, &dru, &n};
    CHECK_OK(launch1(fc, (unsigned)(n + 63) / 64, 64, 0, params));
    CHECK_OK(cuCtxSynchronize());
    uint16_t *grn = download(drn, n * 2), *grz = download(drz, n * 2);
    uint16_t *grd = download(drd, n * 2), *gru = download(dru, n * 2);
    float *gback = download(dback, n * sizeof(float));
    /* The float inputs are shown by their index only. */
    CHECK_H16S(grn, want[RN], (size_t)n, NULL, NULL, NULL, 1);
    CHECK_H16S(grz, want[RZ], (size_t)n, NULL, NULL, NULL, 1);
    CHECK_H16S(grd, want[RD], (size_t)n, NULL, NULL, NULL, 1);
    CHECK_H16S(gru, want[RU], (size_t)n, NULL, NULL, NULL, 1);
    /* Back to float: exact, NaN as any NaN. */
    for (int i = 0; i < n; i++)
      if (isnan(wback[i]) && isnan(gback[i])) gback[i] = wback[i];
    CHECK_F32S(gback, wback, (size_t)n);
    for (int mo = 0; mo < 4; mo++) free(want[mo]);
    free(f);
    free(wback);
    free(grn);
    free(grz);
    free(grd);
    free(gru);
    free(gback);
  }

  /* Scalar arithmetic and comparisons. */
  int n = HN;
  uint16_t *a = gpt_xmalloc(n * 2), *b = gpt_xmalloc(n * 2), *c = gpt_xmalloc(n * 2);
  for (int i = 0; i < n; i++) {
    a[i] = h_random(&r);
    b[i] = h_random(&r);
    c[i] = h_random(&r);
  }
  /* Some equal pairs and signed zeros, for the comparisons. */
  for (int i = 0; i < 16; i++) b[i] = a[i];
  a[16] = 0x0000; b[16] = 0x8000;
  a[17] = 0x8000; b[17] = 0x8000; c[17] = 0x8000;
  a[18] = 0x3c00; b[18] = 0xbc00; /* 1 + -1 = +0 */
  {
    uint16_t *want = gpt_xmalloc(n * 4 * 2);
    uint32_t *wcmp = gpt_xmalloc(n * 4);
    for (int i = 0; i < n; i++) {
      want[i * 4 + 0] = h_add(a[i], b[i]);
      want[i * 4 + 1] = h_mul(a[i], b[i]);
      want[i * 4 + 2] = h_fma(a[i], b[i], c[i]);
      want[i * 4 + 3] = h_sub(a[i], b[i]);
      float x = h2f(a[i]), y = h2f(b[i]);
      bool un = isnan(x) || isnan(y);
      /* __hmax: the larger; NaN loses to a number; +0 > -0. */
      float mx;
      if (isnan(x))
        mx = y;
      else if (isnan(y))
        mx = x;
      else if (x == 0 && y == 0)
        mx = (signbit(x) && signbit(y)) ? -0.0f : 0.0f;
      else
        mx = x > y ? x : y;
      uint32_t mk = 0;
      mk |= x < y ? 1u : 0u;
      mk |= x > y ? 2u : 0u;
      mk |= x == y ? 4u : 0u;
      mk |= x <= y ? 8u : 0u;
      mk |= (!un && x != y) ? 16u : 0u;
      mk |= mx == x ? 32u : 0u;
      mk |= isnan(x) ? 64u : 0u;
      wcmp[i] = mk;
    }
    CUfunction fs = fn(m, "halfScalar");
    CUdeviceptr da = upload(a, n * 2), db = upload(b, n * 2), dc = upload(c, n * 2);
    CUdeviceptr dout = dalloc(n * 4 * 2), dcmp = dalloc(n * 4);
    void *params[] = {&da, &db, &dc, &dout, &dcmp, &n};
    CHECK_OK(launch1(fs, (unsigned)(n + 63) / 64, 64, 0, params));
    CHECK_OK(cuCtxSynchronize());
    uint16_t *got = download(dout, n * 4 * 2);
    uint32_t *gcmp = download(dcmp, n * 4);
    CHECK_H16S(got, want, (size_t)n * 4, a, b, c, 4);
    CHECK_U32S(gcmp, wcmp, (size_t)n);
    free(want);
    free(wcmp);
    free(got);
    free(gcmp);
  }

  /* The same on __half2 pairs: (a[2i], a[2i+1]) and so on. */
  {
    int n2 = n / 2;
    uint16_t *want = gpt_xmalloc(n2 * 3 * 4);
    uint16_t *wlt = gpt_xmalloc(n2 * 4);
    uint32_t *wboth = gpt_xmalloc(n2 * 4);
    for (int i = 0; i < n2; i++) {
      bool both = true;
      for (int h = 0; h < 2; h++) {
        int j = 2 * i + h;
        want[(i * 3 + 0) * 2 + h] = h_add(a[j], b[j]);
        want[(i * 3 + 1) * 2 + h] = h_mul(a[j], b[j]);
        want[(i * 3 + 2) * 2 + h] = h_fma(a[j], b[j], c[j]);
        bool lt = h2f(a[j]) < h2f(b[j]);
        wlt[i * 2 + h] = lt ? 0x3c00 : 0;
        both = both && lt;
      }
      wboth[i] = both;
    }
    /* The per-element inputs, repeated for the three results of a pair. */
    uint16_t *ia = gpt_xmalloc(n2 * 6 * 2), *ib = gpt_xmalloc(n2 * 6 * 2), *ic = gpt_xmalloc(n2 * 6 * 2);
    for (int i = 0; i < n2; i++)
      for (int k = 0; k < 3; k++)
        for (int h = 0; h < 2; h++) {
          ia[(i * 3 + k) * 2 + h] = a[2 * i + h];
          ib[(i * 3 + k) * 2 + h] = b[2 * i + h];
          ic[(i * 3 + k) * 2 + h] = c[2 * i + h];
        }
    CUfunction f2 = fn(m, "half2Ops");
    CUdeviceptr da = upload(a, n * 2), db = upload(b, n * 2), dc = upload(c, n * 2);
    CUdeviceptr dout = dalloc(n2 * 3 * 4), dlt = dalloc(n2 * 4), dboth = dalloc(n2 * 4);
    void *params[] = {&da, &db, &dc, &dout, &dlt, &dboth, &n2};
    CHECK_OK(launch1(f2, (unsigned)(n2 + 63) / 64, 64, 0, params));
    CHECK_OK(cuCtxSynchronize());
    uint16_t *got = download(dout, n2 * 3 * 4), *glt = download(dlt, n2 * 4);
    uint32_t *gboth = download(dboth, n2 * 4);
    CHECK_H16S(got, want, (size_t)n2 * 6, ia, ib, ic, 1);
    CHECK_H16S(glt, wlt, (size_t)n2 * 2, a, b, NULL, 1);
    CHECK_U32S(gboth, wboth, (size_t)n2);
    free(want);
    free(wlt);
    free(wboth);
    free(ia);
    free(ib);
    free(ic);
    free(got);
    free(glt);
    free(gboth);
  }

  /* A half2 dot product per thread: 32 threads, 16 steps of __hfma2. */
  {
    enum { T = 32, L = 16 };
    uint16_t *pa = gpt_xmalloc(T * L * 4), *pb = gpt_xmalloc(T * L * 4);
    for (int i = 0; i < T * L * 2; i++) {
      pa[i] = f2h((float)rng_uniform(&r, -2, 2), RN);
      pb[i] = f2h((float)rng_uniform(&r, -2, 2), RN);
    }
    float want[T];
    for (int t = 0; t < T; t++) {
      uint16_t lo = 0, hi = 0;
      for (int k = 0; k < L; k++) {
        int j = (t * L + k) * 2;
        lo = h_fma(pa[j], pb[j], lo);
        hi = h_fma(pa[j + 1], pb[j + 1], hi);
      }
      want[t] = h2f(lo) + h2f(hi);
    }
    CUfunction fd = fn(m, "half2Dot");
    CUdeviceptr da = upload(pa, T * L * 4), db = upload(pb, T * L * 4);
    CUdeviceptr dout = dalloc(T * sizeof(float));
    int len = L;
    void *params[] = {&da, &db, &dout, &len};
    CHECK_OK(launch1(fd, 1, T, 0, params));
    CHECK_OK(cuCtxSynchronize());
    float *got = download(dout, T * sizeof(float));
    CHECK_F32S(got, want, T);
    free(pa);
    free(pb);
    free(got);
  }
  free(a);
  free(b);
  free(c);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- cg_tiles -------------------------------------------------------------------------------- */

static void test_kernels_cg_tiles(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_CG);
  CUfunction f = fn(m, "cgTiles");
  struct rng r = {71};
  enum { BLOCK = 64, GRID = 3, N = BLOCK * GRID };
  int in[N];
  for (int i = 0; i < N; i++) in[i] = rng_int(&r, -50, 50);
  in[5] = 0; /* some 8-tiles hold a zero, others not */
  in[70] = 0;
  for (int i = 8; i < 16; i++) in[i] = i; /* a tile with no zero */

  int *want = gpt_xmalloc(N * 8 * sizeof(int));
  for (int g = 0; g < N; g++) {
    int tx = g % BLOCK;
    int w0 = g - g % 32, t0 = g - g % 8;
    int s32 = 0, s8 = 0, mx8 = INT_MIN, scan = 0, any0 = 0;
    unsigned odd = 0, pos = 0;
    for (int j = 0; j < 32; j++) {
      s32 += in[w0 + j];
      if (in[w0 + j] > 0) pos |= 1u << j;
    }
    for (int j = 0; j < 8; j++) {
      int v = in[t0 + j];
      s8 += v;
      if (v > mx8) mx8 = v;
      if (v & 1) odd |= 1u << j;
      if (v == 0) any0 = 1;
      if (t0 + j <= g) scan += v;
    }
    int *o = want + g * 8;
    o[0] = s32;
    o[1] = s8;
    o[2] = (int)odd;
    o[3] = (int)pos;
    o[4] = s32;
    o[5] = mx8;
    o[6] = scan;
    o[7] = (tx / 32) * 1000 + (tx / 8) * 100 + (tx % 8) * 10 + any0 * 2 + 1;
  }
  CUdeviceptr din = upload(in, sizeof in), dout = dalloc(N * 8 * sizeof(int));
  void *params[] = {&din, &dout};
  CHECK_OK(launch1(f, GRID, BLOCK, 0, params));
  CHECK_OK(cuCtxSynchronize());
  int *got = download(dout, N * 8 * sizeof(int));
  CHECK_I32S(got, want, (size_t)N * 8);
  free(want);
  free(got);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- dyn_shared ------------------------------------------------------------------------------ */

static void run_dyn_shared(CUfunction f, int n, unsigned block, uint64_t seed) {
  struct rng r = {seed};
  unsigned grid = ((unsigned)n + block - 1) / block;
  int *in = gpt_xmalloc(n * sizeof(int)), *want = gpt_xmalloc(n * sizeof(int));
  double *wsums = gpt_xmalloc(grid * sizeof(double));
  for (int i = 0; i < n; i++) in[i] = rng_int(&r, -100000, 100000);
  for (unsigned b = 0; b < grid; b++) {
    double s = 0;
    for (unsigned t = 0; t < block; t++) {
      long long base = (long long)b * block;
      long long rev = base + (block - 1 - t);
      if (base + t < n) want[base + t] = rev < n ? in[rev] : 0;
      int v = base + t < n ? in[base + t] : 0;
      s += (double)v * 0.5;
    }
    wsums[b] = s;
  }
  unsigned shared = ((block * 4 + 7) & ~7u) + block * 8;
  CUdeviceptr din = upload(in, n * sizeof(int)), dout = dalloc(n * sizeof(int));
  CUdeviceptr dsums = dalloc(grid * sizeof(double));
  void *params[] = {&din, &dout, &dsums, &n};
  CHECK_OK(launch1(f, grid, block, shared, params));
  CHECK_OK(cuCtxSynchronize());
  int *got = download(dout, n * sizeof(int));
  double *gsums = download(dsums, grid * sizeof(double));
  CHECK_I32S(got, want, (size_t)n);
  CHECK_F64S(gsums, wsums, grid);
  CHECK_OK(cuMemFree(din));
  CHECK_OK(cuMemFree(dout));
  CHECK_OK(cuMemFree(dsums));
  free(in);
  free(want);
  free(wsums);
  free(got);
  free(gsums);
}

static void test_kernels_dyn_shared(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "dynShared");
  run_dyn_shared(f, 1000, 128, 81); /* the last block partly past n */
  run_dyn_shared(f, 96, 32, 82);
  run_dyn_shared(f, 700, 1024, 83); /* one block, 12 KiB of shared */

  /* The most a block may have without opting in (cuda.h:
   * CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK), and one word more. */
  CUdevice dev;
  int max_shared = 0;
  REQUIRE_OK(cuCtxGetDevice(&dev));
  REQUIRE_OK(cuDeviceGetAttribute(&max_shared,
                                  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, dev));
  int n = 64;
  CUdeviceptr din = dalloc(n * sizeof(int)), dout = dalloc(n * sizeof(int));
  CUdeviceptr dsums = dalloc(sizeof(double));
  CHECK_OK(cuMemsetD32(din, 3, n));
  void *params[] = {&din, &dout, &dsums, &n};
  CHECK_OK(launch1(f, 1, 64, (unsigned)max_shared, params));
  CHECK_OK(cuCtxSynchronize());
  double s = 0;
  CHECK_OK(cuMemcpyDtoH(&s, dsums, sizeof s));
  CHECK_TRUE(s == 64 * 1.5);
  CHECK_CU(launch1(f, 1, 64, (unsigned)max_shared + 4, params),
           CUDA_ERROR_INVALID_VALUE);
  /* A refused configuration does not stick. */
  CHECK_OK(cuCtxSynchronize());
  run_dyn_shared(f, 100, 64, 84);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- oob_write ------------------------------------------------------------------------------- */

/* A second client: a process of its own with its own session, which runs
 * vectorAdd each time it hears "run" and answers "ok" or "fail". */
static void child_vector_add(int argc, char **argv) {
  need_nvcc();
  gpt_init_context(NULL);
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "vectorAdd");
  gpt_child_say("ready");
  char line[64];
  uint64_t seed = 100;
  while (gpt_child_hear(line, sizeof line, 60000) >= 0) {
    if (strcmp(line, "run") != 0) break;
    gpt_child_say("%s", run_vector_add(f, 5000, seed++) ? "ok" : "fail");
  }
  (void)argc;
  (void)argv;
}

/* Runs the child through one "run" and checks its answer. */
static void child_run(struct gpt_child *c) {
  char line[64] = "";
  CHECK_EQ_I(gpt_child_send(c, "run"), 0);
  CHECK_GT_I(gpt_child_recv(c, line, sizeof line, 30000), 0);
  CHECK_STR_EQ(line, "ok");
}

static void spawn_ready(struct gpt_child *c) {
  char line[64] = "";
  REQUIRE_TRUE(gpt_spawn(c, "child_vector_add", NULL) == 0);
  CHECK_GT_I(gpt_child_recv(c, line, sizeof line, 30000), 0);
  CHECK_STR_EQ(line, "ready");
}

static void test_kernels_oob_write(int argc, char **argv) {
  CUcontext ctx = start();
  struct gpt_child other;
  spawn_ready(&other);
  child_run(&other);

  CUmodule m = load(IMG_BASIC);
  CUfunction add = fn(m, "vectorAdd"), bad = fn(m, "oobWrite");
  CHECK_TRUE(run_vector_add(add, 1000, 91));
  CUdeviceptr d = dalloc(4096);
  /* 4 TiB past a live allocation: no device memory is there. */
  long long off = 1ll << 40;
  void *params[] = {&d, &off};
  CHECK_OK(launch1(bad, 1, 32, 0, params));
  /* The fault shows at the next synchronisation, and stays: every later
   * call in this context returns it. */
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  int word = 0;
  CHECK_CU(cuMemcpyDtoH(&word, d, sizeof word), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CU(cuMemcpyHtoD(d, &word, sizeof word), CUDA_ERROR_ILLEGAL_ADDRESS);
  int n = 16;
  void *p2[] = {&d, &d, &d, &n};
  CHECK_CU(launch1(add, 1, 32, 0, p2), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);

  /* Meanwhile another client of the same server is not affected. */
  child_run(&other);

  /* The faulted context can be destroyed (the real driver may report the
   * error once more on the way), and a new one works. */
  CUresult r = cuCtxDestroy(ctx);
  CHECK_TRUE(r == CUDA_SUCCESS || r == CUDA_ERROR_ILLEGAL_ADDRESS);
  CUcontext ctx2;
  CUdevice dev;
  REQUIRE_OK(cuDeviceGet(&dev, 0));
  REQUIRE_OK(cuCtxCreate(&ctx2, NULL, 0, dev));
  CUmodule m2 = load(IMG_BASIC);
  CHECK_TRUE(run_vector_add(fn(m2, "vectorAdd"), 3000, 92));

  /* So does a new process, and the old client still. */
  struct gpt_child fresh;
  spawn_ready(&fresh);
  child_run(&fresh);
  child_run(&other);
  CHECK_EQ_I(gpt_child_send(&fresh, "quit"), 0);
  CHECK_EQ_I(gpt_child_send(&other, "quit"), 0);
  CHECK_EQ_I(gpt_child_wait(&fresh, 10000), 0);
  CHECK_EQ_I(gpt_child_wait(&other, 10000), 0);
  CHECK_OK(cuCtxDestroy(ctx2));
  (void)argc;
  (void)argv;
}

/* ---- no_ptx ------------------------------------------------------------------------------------ */

static void test_kernels_no_ptx(int argc, char **argv) {
  start();
  void *img = read_image(IMG_BASIC_SMONLY, NULL);
  CUmodule m = NULL;
  /* sm_75 machine code only: nothing the emulated device can run. The
   * client says on stderr what to rebuild with. */
  struct capture cap;
  capture_begin(&cap, 2);
  CUresult r = cuModuleLoadData(&m, img);
  char *err = capture_end(&cap);
  fputs(err, stderr); /* keep it in the test's log */
  CHECK_EQ_I(r, CUDA_ERROR_NO_BINARY_FOR_GPU);
  CHECK_TRUE(strstr(err, "compute_75") != NULL);
  free(err);
  CHECK_CU(cuModuleLoadFatBinary(&m, img), CUDA_ERROR_NO_BINARY_FOR_GPU);
  free(img);

  /* Other refusals the driver documents. */
  CHECK_CU(cuModuleLoad(&m, "/nonexistent/gpupool/e2e.fatbin"),
           CUDA_ERROR_FILE_NOT_FOUND);
  CHECK_CU(cuModuleLoadData(&m, NULL), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuModuleLoadData(NULL, "x"), CUDA_ERROR_INVALID_VALUE);
  /* Text that is no module: refused as an image or as PTX. */
  r = cuModuleLoadData(&m, ".version 9.0\n.target sm_75\nthis is not ptx\n");
  CHECK_TRUE(r == CUDA_ERROR_INVALID_PTX || r == CUDA_ERROR_INVALID_IMAGE);

  /* The session is fine afterwards. */
  CUmodule good = load(IMG_BASIC);
  CHECK_TRUE(run_vector_add(fn(good, "vectorAdd"), 2000, 101));
  (void)argc;
  (void)argv;
}

/* ---- arch_variants ---------------------------------------------------------------------------- */

/* saxpy and vectorAdd from |m|, checked. */
static void run_variant(CUmodule m, const char *label) {
  printf("variant %s\n", label);
  CUfunction fs = fn(m, "saxpy");
  struct rng r = {111};
  int n = 3000;
  float a = -0.75f;
  float *x = gpt_xmalloc(n * sizeof(float)), *y = gpt_xmalloc(n * sizeof(float));
  float *want = gpt_xmalloc(n * sizeof(float));
  for (int i = 0; i < n; i++) {
    x[i] = (float)rng_uniform(&r, -10, 10);
    y[i] = (float)rng_uniform(&r, -10, 10);
    want[i] = fmaf(a, x[i], y[i]);
  }
  CUdeviceptr dx = upload(x, n * sizeof(float)), dy = upload(y, n * sizeof(float));
  void *params[] = {&n, &a, &dx, &dy};
  CHECK_OK(launch1(fs, (unsigned)(n + 127) / 128, 128, 0, params));
  CHECK_OK(cuCtxSynchronize());
  float *got = download(dy, n * sizeof(float));
  CHECK_F32S(got, want, (size_t)n);
  CHECK_OK(cuMemFree(dx));
  CHECK_OK(cuMemFree(dy));
  free(x);
  free(y);
  free(want);
  free(got);
  CHECK_TRUE(run_vector_add(fn(m, "vectorAdd"), 777, 112));
}

static void test_kernels_arch_variants(int argc, char **argv) {
  start();
  /* PTX text (NUL-terminated, as cuModuleLoadData wants it). */
  CUmodule m = load(IMG_BASIC_PTX);
  run_variant(m, "ptx");
  CHECK_OK(cuModuleUnload(m));

  /* The same PTX through cuModuleLoadDataEx with JIT options. */
  void *ptx = read_image(IMG_BASIC_PTX, NULL);
  char log[1024] = "", elog[1024] = "";
  CUjit_option opts[] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                         CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[] = {log, (void *)(uintptr_t)sizeof log, elog,
                  (void *)(uintptr_t)sizeof elog};
  m = NULL;
  CHECK_OK(cuModuleLoadDataEx(&m, ptx, 4, opts, vals));
  free(ptx);
  if (m) {
    run_variant(m, "ptx, cuModuleLoadDataEx");
    CHECK_OK(cuModuleUnload(m));
  }

  /* A fatbin built for sm_90 (sm_90 SASS and compute_90 PTX). */
  void *img = read_image(IMG_BASIC_SM90, NULL);
  m = NULL;
  CHECK_OK(cuModuleLoadDataEx(&m, img, 0, NULL, NULL));
  free(img);
  if (m) {
    run_variant(m, "sm_90 fatbin");
    CHECK_OK(cuModuleUnload(m));
  }

  /* LZ4-compressed (--compress-mode=speed). */
  img = read_image(IMG_BASIC_LZ4, NULL);
  m = NULL;
  CHECK_OK(cuModuleLoadFatBinary(&m, img));
  free(img);
  if (m) {
    run_variant(m, "LZ4 fatbin");
    CHECK_OK(cuModuleUnload(m));
  }

  /* nvcc's default (compressed) fatbin. */
  m = load(IMG_BASIC);
  run_variant(m, "default fatbin");
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- module_twice ------------------------------------------------------------------------------ */

static int read_int_global(CUmodule m, const char *name) {
  CUdeviceptr d = 0;
  size_t size = 0;
  int v = -1;
  if (CHECK_OK(cuModuleGetGlobal(&d, &size, m, name)) && CHECK_EQ_U(size, sizeof v))
    CHECK_OK(cuMemcpyDtoH(&v, d, sizeof v));
  return v;
}

static void test_kernels_module_twice(int argc, char **argv) {
  start();
  void *img = read_image(IMG_BASIC, NULL);
  CUmodule m1 = NULL, m2 = NULL;
  REQUIRE_OK(cuModuleLoadData(&m1, img));
  REQUIRE_OK(cuModuleLoadData(&m2, img));
  free(img);
  CHECK_TRUE(m1 != m2);

  /* Each copy has its own variables. */
  CUdeviceptr c1 = 0, c2 = 0, t1 = 0, coef1 = 0, coef2 = 0;
  size_t s = 0;
  CHECK_OK(cuModuleGetGlobal(&c1, &s, m1, "e2eCounter"));
  CHECK_EQ_U(s, 4);
  CHECK_OK(cuModuleGetGlobal(&c2, NULL, m2, "e2eCounter")); /* size optional */
  CHECK_NE_U(c1, 0);
  CHECK_NE_U(c1, c2);
  CHECK_EQ_I(read_int_global(m1, "e2eCounter"), 0);
  CUdeviceptr d;
  CHECK_CU(cuModuleGetGlobal(&d, &s, m1, "noSuchVariable"), CUDA_ERROR_NOT_FOUND);

  /* Initialised data arrives initialised. */
  int table[4] = {0}, want_table[4] = {11, 22, 33, 44};
  CHECK_OK(cuModuleGetGlobal(&t1, &s, m1, "e2eTable"));
  CHECK_EQ_U(s, sizeof table);
  CHECK_OK(cuMemcpyDtoH(table, t1, sizeof table));
  CHECK_I32S(table, want_table, 4);

  CUfunction b1 = fn(m1, "bumpCounter"), b2 = fn(m2, "bumpCounter");
  int by = 5;
  void *pb[] = {&by};
  CHECK_OK(launch1(b1, 2, 32, 0, pb));
  CHECK_OK(launch1(b1, 1, 1, 0, pb));
  by = 7;
  CHECK_OK(launch1(b2, 1, 32, 0, pb));
  CHECK_OK(cuCtxSynchronize());
  CHECK_EQ_I(read_int_global(m1, "e2eCounter"), 10);
  CHECK_EQ_I(read_int_global(m2, "e2eCounter"), 7);
  /* Written from the host, read by the kernel. */
  int hundred = 100;
  CHECK_OK(cuMemcpyHtoD(c2, &hundred, sizeof hundred));
  CHECK_OK(launch1(b2, 1, 1, 0, pb));
  CHECK_OK(cuCtxSynchronize());
  CHECK_EQ_I(read_int_global(m2, "e2eCounter"), 107);

  /* __constant__ memory: set in m1 only; m2's stays zero. */
  CHECK_OK(cuModuleGetGlobal(&coef1, &s, m1, "e2eCoef"));
  CHECK_EQ_U(s, 4 * sizeof(float));
  CHECK_OK(cuModuleGetGlobal(&coef2, &s, m2, "e2eCoef"));
  CHECK_NE_U(coef1, coef2);
  float coef[4] = {0.5f, -2.0f, 3.25f, 1e-3f};
  CHECK_OK(cuMemcpyHtoD(coef1, coef, sizeof coef));
  int n = 1000;
  float *in = gpt_xmalloc(n * sizeof(float));
  float *w1 = gpt_xmalloc(n * sizeof(float)), *w2 = gpt_xmalloc(n * sizeof(float));
  struct rng r = {121};
  for (int i = 0; i < n; i++) {
    in[i] = (float)rng_uniform(&r, -50, 50);
    w1[i] = fmaf(coef[i % 4], in[i], (float)want_table[i % 4]);
    w2[i] = fmaf(0.0f, in[i], (float)want_table[i % 4]);
  }
  CUdeviceptr din = upload(in, n * sizeof(float));
  CUdeviceptr do1 = dalloc(n * sizeof(float)), do2 = dalloc(n * sizeof(float));
  void *pa1[] = {&din, &do1, &n}, *pa2[] = {&din, &do2, &n};
  CHECK_OK(launch1(fn(m1, "applyCoef"), (unsigned)(n + 127) / 128, 128, 0, pa1));
  CHECK_OK(launch1(fn(m2, "applyCoef"), (unsigned)(n + 127) / 128, 128, 0, pa2));
  CHECK_OK(cuCtxSynchronize());
  float *g1 = download(do1, n * sizeof(float)), *g2 = download(do2, n * sizeof(float));
  CHECK_F32S(g1, w1, (size_t)n);
  CHECK_F32S(g2, w2, (size_t)n);
  free(in);
  free(w1);
  free(w2);
  free(g1);
  free(g2);

  /* C++ kernels by their mangled names (and not by the plain ones). */
  CUfunction g = NULL;
  CHECK_CU(cuModuleGetFunction(&g, m1, "scaleBy"), CUDA_ERROR_NOT_FOUND);
  CUfunction sc = fn(m1, "_Z7scaleByPffi"), fi = fn(m2, "_Z4fillIiEvPT_S0_i");
  {
    int cnt = 3000, base = -1500;
    float k = 0.375f;
    float *x = gpt_xmalloc(cnt * sizeof(float)), *wx = gpt_xmalloc(cnt * sizeof(float));
    int *wi = gpt_xmalloc(cnt * sizeof(int));
    for (int i = 0; i < cnt; i++) {
      x[i] = (float)rng_uniform(&r, -1e3, 1e3);
      wx[i] = x[i] * k;
      wi[i] = base + i;
    }
    CUdeviceptr dx = upload(x, cnt * sizeof(float)), di = dalloc(cnt * sizeof(int));
    void *ps[] = {&dx, &k, &cnt}, *pf[] = {&di, &base, &cnt};
    CHECK_OK(launch1(sc, 4, 64, 0, ps)); /* grid-stride: fewer threads than elements */
    CHECK_OK(launch1(fi, (unsigned)(cnt + 255) / 256, 256, 0, pf));
    CHECK_OK(cuCtxSynchronize());
    float *gx = download(dx, cnt * sizeof(float));
    int *gi = download(di, cnt * sizeof(int));
    CHECK_F32S(gx, wx, (size_t)cnt);
    CHECK_I32S(gi, wi, (size_t)cnt);
    free(x);
    free(wx);
    free(wi);
    free(gx);
    free(gi);
  }

  /* Unloading one copy leaves the other working. */
  CHECK_OK(cuModuleUnload(m1));
  CHECK_TRUE(run_vector_add(fn(m2, "vectorAdd"), 1500, 122));
  CHECK_EQ_I(read_int_global(m2, "e2eCounter"), 107);
  CHECK_OK(cuModuleUnload(m2));
  (void)argc;
  (void)argv;
}

/* ---- big_launch ---------------------------------------------------------------------------------- */

static void test_kernels_big_launch(int argc, char **argv) {
  start();
  CUmodule m = load(IMG_BASIC);
  CUfunction f = fn(m, "saxpy");
  int n = 1 << 20;
  float a = 1.5f;
  struct rng r = {131};
  float *x = gpt_xmalloc(n * sizeof(float)), *y = gpt_xmalloc(n * sizeof(float));
  float *want = gpt_xmalloc(n * sizeof(float));
  for (int i = 0; i < n; i++) {
    x[i] = (float)rng_uniform(&r, -1, 1);
    y[i] = (float)i;
    want[i] = fmaf(a, x[i], y[i]);
  }
  CUdeviceptr dx = upload(x, n * sizeof(float)), dy = upload(y, n * sizeof(float));
  void *params[] = {&n, &a, &dx, &dy};

  /* cuLaunchKernelEx: 4096 blocks of 256 threads. */
  CUlaunchConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.gridDimX = (unsigned)n / 256;
  cfg.gridDimY = cfg.gridDimZ = 1;
  cfg.blockDimX = 256;
  cfg.blockDimY = cfg.blockDimZ = 1;
  cfg.sharedMemBytes = 0;
  cfg.hStream = NULL;
  cfg.attrs = NULL;
  cfg.numAttrs = 0;
  double t0 = gpt_now();
  CHECK_OK(cuLaunchKernelEx(&cfg, f, params, NULL));
  CHECK_OK(cuCtxSynchronize());
  double t1 = gpt_now();
  float *got = download(dy, n * sizeof(float));
  CHECK_F32S(got, want, (size_t)n);
  free(got);

  /* And again with cuLaunchKernel in 1024-thread blocks: y = a*x + y. */
  for (int i = 0; i < n; i++) want[i] = fmaf(a, x[i], want[i]);
  CHECK_OK(launch1(f, (unsigned)n / 1024, 1024, 0, params));
  CHECK_OK(cuCtxSynchronize());
  double t2 = gpt_now();
  got = download(dy, n * sizeof(float));
  CHECK_F32S(got, want, (size_t)n);
  printf("saxpy on 2^20 elements: %.2f s (4096 x 256), %.2f s (1024 x 1024)\n",
         t1 - t0, t2 - t1);
  free(got);

  /* A 3-D grid of 3-D blocks: every thread sees its own coordinates. */
  {
    const unsigned g[3] = {7, 5, 3}, b[3] = {8, 6, 4};
    const size_t per = 13, nthreads = (size_t)g[0] * g[1] * g[2] * b[0] * b[1] * b[2];
    uint32_t *w = gpt_xmalloc(nthreads * per * 4);
    size_t i = 0;
    for (unsigned bz = 0; bz < g[2]; bz++)
      for (unsigned by = 0; by < g[1]; by++)
        for (unsigned bx = 0; bx < g[0]; bx++)
          for (unsigned tz = 0; tz < b[2]; tz++)
            for (unsigned ty = 0; ty < b[1]; ty++)
              for (unsigned tx = 0; tx < b[0]; tx++, i++) {
                uint32_t *o = w + i * per;
                o[0] = tx, o[1] = ty, o[2] = tz;
                o[3] = bx, o[4] = by, o[5] = bz;
                o[6] = b[0], o[7] = b[1], o[8] = b[2];
                o[9] = g[0], o[10] = g[1], o[11] = g[2];
                o[12] = (uint32_t)(i % (b[0] * b[1] * b[2])) % 32;
              }
    CUdeviceptr dw = dalloc(nthreads * per * 4);
    void *pw[] = {&dw};
    CHECK_OK(cuLaunchKernel(fn(m, "whereAmI"), g[0], g[1], g[2], b[0], b[1], b[2], 0,
                            NULL, pw, NULL));
    CHECK_OK(cuCtxSynchronize());
    uint32_t *gw = download(dw, nthreads * per * 4);
    CHECK_U32S(gw, w, nthreads * per);
    free(w);
    free(gw);
  }
  free(x);
  free(y);
  free(want);
  CHECK_OK(cuModuleUnload(m));
  (void)argc;
  (void)argv;
}

/* ---- the server's image cache, shared by its sessions --------------------------------- */

/* A session of its own that loads the image named by argv[0] with
 * GPUPOOL_TRACE on (its stderr into the file argv[1]), runs vectorAdd when
 * the image is BASIC, and answers "cached" when the load went out by
 * digest only (the trace's ", cached"), "uploaded" when the bytes were
 * sent, then "ok" or "fail" for the kernel. */
static void child_load(int argc, char **argv) {
  need_nvcc();
  REQUIRE_TRUE(argc >= 2);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE_TRUE(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  gpt_init_context(NULL);
  CUmodule m = load(argv[0]);
  bool ok = true;
  if (strcmp(argv[0], IMG_BASIC) == 0)
    ok = run_vector_add(fn(m, "vectorAdd"), 4096, 7);
  CHECK_OK(cuModuleUnload(m));
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  FILE *f = fopen(argv[1], "r");
  REQUIRE_TRUE(f != NULL);
  char line[1024];
  int loads = 0, cached = 0;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "cuModuleLoadData(") == NULL) continue;
    loads++;
    if (strstr(line, ", cached]") != NULL) cached++;
  }
  fclose(f);
  CHECK_EQ_I(loads, 1);
  gpt_child_say("%s", cached ? "cached" : "uploaded");
  gpt_child_say("%s", ok ? "ok" : "fail");
}

/* Loads |var| in a new session (child_load); checks that the kernel ran
 * and that the image went out by digest only (|want_cached|) or was sent. */
static void session_load(const char *var, const char *trace,
                         bool want_cached) {
  struct gpt_child c;
  const char *args[] = {var, trace, NULL};
  char line[64] = "", ok[64] = "";
  setenv("GPUPOOL_TRACE", "1", 1);
  int r = gpt_spawn(&c, "child_load", args);
  unsetenv("GPUPOOL_TRACE");
  REQUIRE_TRUE(r == 0);
  CHECK_GT_I(gpt_child_recv(&c, line, sizeof line, 60000), 0);
  CHECK_GT_I(gpt_child_recv(&c, ok, sizeof ok, 60000), 0);
  CHECK_EQ_I(gpt_child_wait(&c, 30000), 0);
  CHECK_STR_EQ(line, want_cached ? "cached" : "uploaded");
  CHECK_STR_EQ(ok, "ok");
}

/* The image files in |dir| (64 hex digits), at most |max| names. */
static int cache_files(const char *dir, char names[][65], int max) {
  DIR *d = opendir(dir);
  REQUIRE_TRUE(d != NULL);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (strlen(e->d_name) != 64 || strspn(e->d_name, "0123456789abcdef") != 64)
      continue;
    if (n < max) memcpy(names[n], e->d_name, 65);
    n++;
  }
  closedir(d);
  return n;
}

static void cache_dir_start(char *dir, const char *size) {
  need_nvcc();
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  const char *extra[] = {"--image-cache", dir, "--image-cache-size",
                         size ? size : "1G", NULL};
  if (gpt_server_start(&server, extra) != 0) gpt__abort_scenario();
}

static void cache_dir_remove(const char *dir) {
  char names[16][65], path[1200];
  int n = cache_files(dir, names, 16);
  for (int i = 0; i < n && i < 16; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  snprintf(path, sizeof path, "%s/trace", dir);
  unlink(path);
  CHECK_EQ_I(rmdir(dir), 0);
}

static void read_file(const char *path, uint8_t **data, size_t *len) {
  struct stat st;
  REQUIRE_TRUE(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
  *data = gpt_xmalloc((size_t)st.st_size + 1);
  int fd = open(path, O_RDONLY);
  REQUIRE_TRUE(fd >= 0);
  REQUIRE_TRUE(read(fd, *data, (size_t)st.st_size) == st.st_size);
  close(fd);
  *len = (size_t)st.st_size;
}

/* A second session loading an image the first uploaded sends only its
 * digest: the server takes it from its image cache, and the kernel runs. */
static void test_kernels_shared_cache(int argc, char **argv) {
  char dir[] = "/tmp/gpt_imgcache_XXXXXX", trace[300], path[300];
  cache_dir_start(dir, NULL);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  char names[4][65];
  CHECK_EQ_I(cache_files(dir, names, 4), 0);
  session_load(IMG_BASIC, trace, false);
  REQUIRE_TRUE(cache_files(dir, names, 4) == 1);
  snprintf(path, sizeof path, "%s/%s", dir, names[0]);
  struct stat st1, st2;
  REQUIRE_TRUE(stat(path, &st1) == 0);
  CHECK_EQ_U(st1.st_mode & 0777, 0600);
  /* The server stores a received image anew (a new file): the same inode
   * after the second session means it did not receive the bytes again. */
  session_load(IMG_BASIC, trace, true);
  REQUIRE_TRUE(stat(path, &st2) == 0);
  CHECK_EQ_U(st2.st_ino, st1.st_ino);
  CHECK_EQ_I(cache_files(dir, names, 4), 1);
  /* Another image is another file; the first stays. */
  session_load(IMG_ATOMICS, trace, false);
  CHECK_EQ_I(cache_files(dir, names, 4), 2);
  session_load(IMG_ATOMICS, trace, true);
  session_load(IMG_BASIC, trace, true);
  gpt_server_stop(&server, 5000);
  /* A directory the operator named stays, with its images. */
  CHECK_EQ_I(cache_files(dir, names, 4), 2);
  cache_dir_remove(dir);
  (void)argc;
  (void)argv;
}

/* A cached file that does not hold the bytes of its name (a flipped byte,
 * cut short, a symlink) is never served: the next session is asked for the
 * image, uploads it, and the file is right again. */
static void test_kernels_shared_cache_damage(int argc, char **argv) {
  char dir[] = "/tmp/gpt_imgcache_XXXXXX", trace[300], path[300], other[320];
  cache_dir_start(dir, NULL);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  session_load(IMG_BASIC, trace, false);
  char names[4][65];
  REQUIRE_TRUE(cache_files(dir, names, 4) == 1);
  snprintf(path, sizeof path, "%s/%s", dir, names[0]);
  uint8_t *good, *now;
  size_t len, nlen;
  read_file(path, &good, &len);
  REQUIRE_TRUE(len > 64);

  /* One byte flipped, in the middle. */
  int fd = open(path, O_RDWR);
  REQUIRE_TRUE(fd >= 0);
  uint8_t b = good[len / 2] ^ 0x01;
  REQUIRE_TRUE(pwrite(fd, &b, 1, (off_t)(len / 2)) == 1);
  close(fd);
  session_load(IMG_BASIC, trace, false);
  read_file(path, &now, &nlen);
  CHECK_EQ_U(nlen, len);
  CHECK_MEM_EQ(now, good, len);
  free(now);

  /* Cut short. */
  REQUIRE_TRUE(truncate(path, (off_t)(len / 2)) == 0);
  session_load(IMG_BASIC, trace, false);
  read_file(path, &now, &nlen);
  CHECK_EQ_U(nlen, len);
  CHECK_MEM_EQ(now, good, len);
  free(now);

  /* A symlink to the right bytes is still not served (nor followed). */
  snprintf(other, sizeof other, "%s/elsewhere", dir);
  fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE_TRUE(fd >= 0);
  REQUIRE_TRUE(write(fd, good, len) == (ssize_t)len);
  close(fd);
  REQUIRE_TRUE(unlink(path) == 0 && symlink(other, path) == 0);
  session_load(IMG_BASIC, trace, false);
  struct stat st;
  REQUIRE_TRUE(lstat(path, &st) == 0);
  CHECK_TRUE(S_ISREG(st.st_mode));
  read_file(path, &now, &nlen);
  CHECK_MEM_EQ(now, good, len);
  free(now);
  unlink(other);

  /* And intact, it is served again. */
  session_load(IMG_BASIC, trace, true);
  free(good);
  gpt_server_stop(&server, 5000);
  cache_dir_remove(dir);
  (void)argc;
  (void)argv;
}

static bool has_file(const char *dir, const char *name) {
  char path[1200];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return lstat(path, &st) == 0;
}

/* The one image file in |dir| not in |known| (|n| names). */
static void new_file(const char *dir, char known[][65], int n, char *out) {
  char names[8][65];
  int m = cache_files(dir, names, 8);
  REQUIRE_TRUE(m == n + 1);
  for (int i = 0; i < m; i++) {
    bool seen = false;
    for (int j = 0; j < n; j++) seen |= strcmp(names[i], known[j]) == 0;
    if (!seen) memcpy(out, names[i], 65);
  }
}

static off_t file_size(const char *dir, const char *name) {
  char path[1200];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  REQUIRE_TRUE(stat(path, &st) == 0);
  return st.st_size;
}

/* Over the size limit, the least recently used image goes: a use by
 * another session counts. */
static void test_kernels_shared_cache_evict(int argc, char **argv) {
  char dir[] = "/tmp/gpt_imgcache_XXXXXX", trace[300], size[32];
  /* First, the sizes of the three images, with room for all. */
  cache_dir_start(dir, NULL);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  char k[3][65];
  session_load(IMG_BASIC, trace, false);
  new_file(dir, k, 0, k[0]);
  session_load(IMG_ATOMICS, trace, false);
  new_file(dir, k, 1, k[1]);
  session_load(IMG_MATH, trace, false);
  new_file(dir, k, 2, k[2]);
  off_t a = file_size(dir, k[0]), b = file_size(dir, k[1]),
        c = file_size(dir, k[2]);
  gpt_server_stop(&server, 5000);
  cache_dir_remove(dir);

  /* A limit that holds A and B, and A and C, but not all three. */
  off_t limit = a + (b > c ? b : c);
  REQUIRE_TRUE(limit < a + b + c);
  snprintf(size, sizeof size, "%lld", (long long)limit);
  snprintf(dir, sizeof dir, "/tmp/gpt_imgcache_XXXXXX");
  cache_dir_start(dir, size);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  session_load(IMG_BASIC, trace, false);    /* A */
  gpt_sleep_ms(20);
  session_load(IMG_ATOMICS, trace, false);  /* B */
  CHECK_TRUE(has_file(dir, k[0]) && has_file(dir, k[1]));
  gpt_sleep_ms(20);
  session_load(IMG_BASIC, trace, true);     /* A used: B is the oldest */
  gpt_sleep_ms(20);
  session_load(IMG_MATH, trace, false);     /* C: B goes */
  CHECK_TRUE(has_file(dir, k[0]));
  CHECK_TRUE(!has_file(dir, k[1]));
  CHECK_TRUE(has_file(dir, k[2]));
  char names[8][65];
  CHECK_EQ_I(cache_files(dir, names, 8), 2);
  /* B again: uploaded, and now A is the oldest. */
  session_load(IMG_ATOMICS, trace, false);
  CHECK_TRUE(!has_file(dir, k[0]));
  CHECK_TRUE(has_file(dir, k[1]) && has_file(dir, k[2]));
  /* An image over the whole limit is served but not kept. */
  gpt_server_stop(&server, 5000);
  cache_dir_remove(dir);
  snprintf(dir, sizeof dir, "/tmp/gpt_imgcache_XXXXXX");
  snprintf(size, sizeof size, "%lld", (long long)(a - 1));
  cache_dir_start(dir, size);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  session_load(IMG_BASIC, trace, false);
  CHECK_EQ_I(cache_files(dir, names, 8), 0);
  session_load(IMG_BASIC, trace, false);
  gpt_server_stop(&server, 5000);
  cache_dir_remove(dir);
  (void)argc;
  (void)argv;
}

/* --image-cache none: every session uploads its images, as before. By
 * default the server keeps a private directory, removed when it stops. */
static void test_kernels_shared_cache_off(int argc, char **argv) {
  need_nvcc();
  char dir[] = "/tmp/gpt_imgcache_XXXXXX", trace[300];
  REQUIRE_TRUE(mkdtemp(dir) != NULL);
  snprintf(trace, sizeof trace, "%s/trace", dir);
  const char *none[] = {"--image-cache", "none", NULL};
  if (gpt_server_start(&server, none) != 0) gpt__abort_scenario();
  session_load(IMG_BASIC, trace, false);
  session_load(IMG_BASIC, trace, false);
  gpt_server_stop(&server, 5000);

  /* The default: a directory of the server's own, 0700. */
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] != '/') tmp = "/tmp";
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  char prefix[64], priv[512] = "";
  snprintf(prefix, sizeof prefix, "gpupool-images-%ld-", (long)server.pid);
  DIR *d = opendir(tmp);
  REQUIRE_TRUE(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      snprintf(priv, sizeof priv, "%s/%s", tmp, e->d_name);
  closedir(d);
  REQUIRE_TRUE(priv[0] != '\0');
  struct stat st;
  REQUIRE_TRUE(lstat(priv, &st) == 0);
  CHECK_TRUE(S_ISDIR(st.st_mode));
  CHECK_EQ_U(st.st_mode & 0777, 0700);
  session_load(IMG_BASIC, trace, false);
  session_load(IMG_BASIC, trace, true);
  char names[4][65];
  CHECK_EQ_I(cache_files(priv, names, 4), 1);
  CHECK_EQ_I(gpt_server_stop(&server, 5000), 0);
  CHECK_TRUE(lstat(priv, &st) != 0);
  unlink(trace);
  CHECK_EQ_I(rmdir(dir), 0);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"vector_add", test_kernels_vector_add, 60},
      {"saxpy_daxpy", test_kernels_saxpy_daxpy, 60},
      {"matrixmul", test_kernels_matrixmul, 60},
      {"shuffle_reduce", test_kernels_shuffle_reduce, 60},
      {"histogram", test_kernels_histogram, 90},
      {"math", test_kernels_math, 90},
      {"gridstride64", test_kernels_gridstride64, 60},
      {"struct_arg", test_kernels_struct_arg, 60},
      {"printf", test_kernels_printf, 60},
      {"half", test_kernels_half, 60},
      {"cg_tiles", test_kernels_cg_tiles, 60},
      {"dyn_shared", test_kernels_dyn_shared, 60},
      {"oob_write", test_kernels_oob_write, 90},
      {"no_ptx", test_kernels_no_ptx, 60},
      {"arch_variants", test_kernels_arch_variants, 60},
      {"module_twice", test_kernels_module_twice, 60},
      {"big_launch", test_kernels_big_launch, 120},
      {"shared_cache", test_kernels_shared_cache, 120},
      {"shared_cache_damage", test_kernels_shared_cache_damage, 120},
      {"shared_cache_evict", test_kernels_shared_cache_evict, 120},
      {"shared_cache_off", test_kernels_shared_cache_off, 120},
      {"child_vector_add", child_vector_add, 120},
      {"child_load", child_load, 120},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
