/* Integration: CUDA runtime-API programs, built by nvcc as anyone builds
 * them, run unmodified through `gpupool attach` against a live server.
 *
 * tests/integration/meson.build has nvcc build each tests/cuda/rt_*.cu at
 * build time: with nvcc's default flags (cudart linked statically), some
 * also with `-cudart shared` and with `-rdc=true`, rt_ptds.cu with
 * `--default-stream per-thread`, rt_no_ptx.cu with sm_75 machine code only,
 * rt_cublas_sgemm.cu with -lcublas. Each build is one scenario here, named
 * after the build (vector_add, vector_add_shared, ...); the program's path
 * comes in $GPT_RT_<NAME> (the name in capitals). A scenario starts its own
 * `gpupool-server --backend emu`, runs
 *
 *     gpupool attach --server 127.0.0.1:PORT -- PROGRAM
 *
 * with stdout and stderr captured apart, and checks the exit status and the
 * output: every program is self-checking and ends with "rt_NAME: PASS"; the
 * ones whose point is their output (device printf, the sticky illegal
 * address, the missing PTX, cuBLAS) are checked line by line here.
 *
 * The toolkit's lib64 (for libcudart.so.13 and libcublas.so.13) is on
 * LD_LIBRARY_PATH, set by meson; `gpupool attach` puts gpupool's own
 * library directory in front of it. In a build with AddressSanitizer, meson
 * also sets LD_PRELOAD to its runtime: the programs are not instrumented,
 * and the runtime must be loaded before the library that is. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct gpt_server server;

/* One program run: its exit status and what it wrote. */
struct run {
  int status;  /* exit status, 128+signal, -1: did not finish */
  char *out;   /* stdout, NUL-terminated */
  char *err;   /* stderr */
  size_t out_len, err_len;
};

#define RUN_MAX_OUTPUT (4u << 20)

/* Appends what |fd| has to |*buf|; returns false at EOF or error. */
static bool drain(int fd, char **buf, size_t *len, size_t *cap) {
  char tmp[8192];
  ssize_t got = read(fd, tmp, sizeof tmp);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (got <= 0) return false;
  if (*len + (size_t)got + 1 > *cap) {
    size_t ncap = *cap * 2;
    while (ncap < *len + (size_t)got + 1) ncap *= 2;
    if (ncap > RUN_MAX_OUTPUT) return false; /* a runaway program */
    *buf = realloc(*buf, ncap);
    if (*buf == NULL) abort();
    *cap = ncap;
  }
  memcpy(*buf + *len, tmp, (size_t)got);
  *len += (size_t)got;
  (*buf)[*len] = '\0';
  return true;
}

/* Runs `gpupool attach --server ADDR -- |prog|` (this process's
 * environment) for at most |timeout_s|, stdout and stderr captured apart;
 * prints both to this test's log. */
static void run(struct run *r, const char *prog, int timeout_s) {
  const char *cli = getenv("GPUPOOL_TEST_CLI");
  if (cli == NULL || *cli == '\0') gpt_skip("GPUPOOL_TEST_CLI is not set");
  const char *argv[] = {cli, "attach", "--server", server.addr, "--", prog, NULL};
  memset(r, 0, sizeof *r);
  r->status = -1;
  size_t cap_o = 65536, cap_e = 65536;
  r->out = gpt_xmalloc(cap_o);
  r->err = gpt_xmalloc(cap_e);
  r->out[0] = r->err[0] = '\0';
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
    perror("pipe2");
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    _exit(126);
  }
  close(po[1]);
  close(pe[1]);
  bool open_o = true, open_e = true;
  double start = gpt_now(), deadline = start + timeout_s;
  while (open_o || open_e) {
    int left = (int)((deadline - gpt_now()) * 1000);
    if (left <= 0) break;
    struct pollfd pf[2] = {{open_o ? po[0] : -1, POLLIN, 0},
                           {open_e ? pe[0] : -1, POLLIN, 0}};
    if (poll(pf, 2, left) <= 0) continue;
    if (pf[0].revents && !drain(po[0], &r->out, &r->out_len, &cap_o))
      open_o = false;
    if (pf[1].revents && !drain(pe[0], &r->err, &r->err_len, &cap_e))
      open_e = false;
  }
  close(po[0]);
  close(pe[0]);
  int st;
  pid_t w;
  while ((w = waitpid(pid, &st, WNOHANG)) == 0 && gpt_now() < deadline)
    gpt_sleep_ms(5);
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fprintf(stderr, "%s did not finish in %d s; killed\n", prog, timeout_s);
  } else if (w == pid) {
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  printf("$ gpupool attach --server %s -- %s\n-> %d in %.2f s\n"
         "--- stdout\n%s--- stderr\n%s---\n",
         server.addr, prog, r->status, gpt_now() - start, r->out, r->err);
}

static void run_free(struct run *r) {
  free(r->out);
  free(r->err);
}

/* |s| holds |line| as a whole line. Returns its offset, or -1. */
static long find_line(const char *s, const char *line) {
  size_t n = strlen(line);
  for (const char *p = s; (p = strstr(p, line)) != NULL; p++)
    if ((p == s || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
      return p - s;
  return -1;
}

#define CHECK_HAS_LINE(text, line)                                           \
  __extension__({                                                            \
    bool ok_ = find_line(text, line) >= 0;                                   \
    if (!CHECK_TRUE(find_line(text, line) >= 0))                             \
      fprintf(stderr, "    missing line: \"%s\"\n", line);                   \
    ok_;                                                                     \
  })

#define CHECK_CONTAINS(text, part)                                           \
  __extension__({                                                            \
    bool ok_ = strstr(text, part) != NULL;                                   \
    if (!CHECK_TRUE(strstr(text, part) != NULL))                             \
      fprintf(stderr, "    missing text: \"%s\"\n", part);                   \
    ok_;                                                                     \
  })

/* The last line of |s| (without its newline) into |buf|. */
static const char *last_line(const char *s, char *buf, size_t len) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '\n') n--;
  size_t b = n;
  while (b > 0 && s[b - 1] != '\n') b--;
  snprintf(buf, len, "%.*s", (int)(n - b), s + b);
  return buf;
}

/* The path of the build named |name|, from $GPT_RT_<NAME>. */
static const char *program(const char *name) {
  char var[96] = "GPT_RT_";
  size_t k = strlen(var);
  for (const char *p = name; *p && k + 1 < sizeof var; p++)
    var[k++] = (char)toupper((unsigned char)*p);
  var[k] = '\0';
  const char *path = getenv(var);
  if (path == NULL || *path == '\0')
    gpt_skip("%s is not set: nvcc did not build %s", var, name);
  if (access(path, X_OK) != 0)
    gpt_skip("%s: %s", path, strerror(errno));
  return path;
}

/* Starts a server and runs the build |name| through attach. */
static void start_and_run(struct run *r, const char *name, int timeout_s) {
  const char *prog = program(name);
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  unsetenv("GPUPOOL_SERVER"); /* attach passes it */
  run(r, prog, timeout_s);
}

/* Starts a server, runs the build |name| through attach, and checks what
 * every program must do: exit with status 0, end stdout with the line
 * |verdict|, and hit no function gpupool lacks (its stubs say "is not
 * supported yet" on stderr). The caller checks the rest and frees |r|. */
static void run_program(struct run *r, const char *name, const char *verdict,
                        int timeout_s) {
  start_and_run(r, name, timeout_s);
  CHECK_EQ_I(r->status, 0);
  char got[512];
  CHECK_STR_EQ(last_line(r->out, got, sizeof got), verdict);
  if (!CHECK_TRUE(strstr(r->err, "is not supported yet") == NULL))
    fprintf(stderr, "    the program reached a function gpupool lacks\n");
  /* The server survived the program. */
  CHECK_TRUE(gpt_server_alive(&server));
}

/* How long a program may run (each takes a few seconds on 2 cores); the
 * scenario's watchdog (in the table) leaves room to report it. */
#define PROGRAM_LIMIT_S 45

/* The programs whose self-check is the whole test. */
#define SIMPLE(name, verdict)                                  \
  static void test_cudart_##name(int argc, char **argv) {      \
    struct run r;                                              \
    run_program(&r, #name, verdict, PROGRAM_LIMIT_S);          \
    run_free(&r);                                              \
    (void)argc;                                                \
    (void)argv;                                                \
  }

SIMPLE(vector_add, "rt_vector_add: PASS")
SIMPLE(vector_add_shared, "rt_vector_add: PASS")
SIMPLE(vector_add_rdc, "rt_vector_add: PASS")
SIMPLE(matrix_mul, "rt_matrix_mul: PASS")
SIMPLE(streams, "rt_streams: PASS")
SIMPLE(streams_shared, "rt_streams: PASS")
SIMPLE(symbols, "rt_symbols: PASS")
SIMPLE(symbols_shared, "rt_symbols: PASS")
SIMPLE(symbols_rdc, "rt_symbols: PASS")
SIMPLE(func_attrs, "rt_func_attrs: PASS")
SIMPLE(template, "rt_template: PASS")
SIMPLE(device_reset, "rt_device_reset: PASS")
SIMPLE(device_reset_shared, "rt_device_reset: PASS")
SIMPLE(host_func, "rt_host_func: PASS")
SIMPLE(malloc_async, "rt_malloc_async: PASS")
SIMPLE(threads, "rt_threads: PASS")
SIMPLE(ptds, "rt_ptds: PASS")
SIMPLE(cublas_blas, "rt_cublas_blas: PASS")
SIMPLE(pointer_2d, "rt_pointer_2d: PASS")

/* examples/rt_demo.cu, the program scripts/demo.sh builds with plain nvcc
 * and runs: every result matches, and the device's printf lines arrive. */
static void test_cudart_demo(int argc, char **argv) {
  struct run r;
  run_program(&r, "demo", "rt_demo: all results match the host's",
              PROGRAM_LIMIT_S);
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < 2; t++) {
      char line[96];
      snprintf(line, sizeof line,
               "hello from block %d, thread %d of the device (tag 42)", b, t);
      CHECK_HAS_LINE(r.out, line);
    }
  CHECK_TRUE(strstr(r.out, "MISMATCH") == NULL);
  run_free(&r);
  (void)argc;
  (void)argv;
}

/* ---- printf -------------------------------------------------------------- */

/* The three lines thread (b, t) of kernel |tag| prints in rt_printf.cu. */
static void printf_lines(int tag, int b, int t, char lines[3][160]) {
  int v = tag * 100 + b * 10 + t;
  snprintf(lines[0], 160, "k%d b%d t%d step 0: int %d hex %x", tag, b, t,
           v - 1000, (unsigned)(v * 4099));
  snprintf(lines[1], 160, "k%d b%d t%d step 1: float %.3f sci %.2e", tag, b,
           t, (double)(v * 0.125f), (double)v * 1.0e6);
  snprintf(lines[2], 160, "k%d b%d t%d step 2: str %s char %c long %lld",
           tag, b, t, b % 2 ? "odd" : "even", 'a' + t, (long long)v << 35);
}

/* Kernel |tag| ran |blocks| x |threads|: each of its lines appears exactly
 * once, after |from| and before |to|, and each thread's in program order. */
static void check_kernel_lines(const char *out, int tag, int blocks,
                               int threads, long from, long to) {
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < threads; t++) {
      char lines[3][160];
      printf_lines(tag, b, t, lines);
      long prev = from;
      for (int k = 0; k < 3; k++) {
        long at = find_line(out, lines[k]);
        if (!CHECK_TRUE(at >= 0)) {
          fprintf(stderr, "    missing line: \"%s\"\n", lines[k]);
          continue;
        }
        /* Exactly once. */
        CHECK_TRUE(find_line(out + at + 1, lines[k]) < 0);
        if (!CHECK_TRUE(at > prev && at < to))
          fprintf(stderr, "    out of order: \"%s\" at %ld, not within "
                          "(%ld, %ld)\n", lines[k], at, prev, to);
        prev = at;
      }
    }
}

static void test_cudart_printf(int argc, char **argv) {
  struct run r;
  run_program(&r, "printf", "rt_printf: PASS", PROGRAM_LIMIT_S);
  long l1 = find_line(r.out, "host: kernel 1 launched");
  long s1 = find_line(r.out, "host: kernel 1 synchronized");
  long s2 = find_line(r.out, "host: kernel 2 synchronized");
  REQUIRE_TRUE(l1 >= 0 && s1 > l1 && s2 > s1);
  check_kernel_lines(r.out, 1, 2, 4, l1, s1);
  check_kernel_lines(r.out, 2, 3, 2, s1, s2);
  /* Nothing else: 3 host lines, 24 + 18 device lines, the verdict. */
  int lines = 0;
  for (const char *p = r.out; *p; p++) lines += *p == '\n';
  CHECK_EQ_I(lines, 3 + 3 * 8 + 3 * 6 + 1);
  run_free(&r);
  (void)argc;
  (void)argv;
}

/* ---- oob ------------------------------------------------------------------- */

/* cudart's own string for cudaErrorIllegalAddress, on every call after the
 * fault. */
static void test_cudart_oob(int argc, char **argv) {
  struct run r;
  run_program(&r, "oob", "rt_oob: PASS", PROGRAM_LIMIT_S);
  CHECK_HAS_LINE(r.out, "launch: cudaSuccess: no error");
  static const char *const after[] = {"synchronize", "malloc after",
                                      "memcpy after", "synchronize again",
                                      "last error"};
  for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
    char line[160];
    snprintf(line, sizeof line,
             "%s: cudaErrorIllegalAddress: an illegal memory access was "
             "encountered", after[i]);
    CHECK_HAS_LINE(r.out, line);
  }
  run_free(&r);
  (void)argc;
  (void)argv;
}

/* ---- no_ptx ----------------------------------------------------------------- */

/* sm_75 machine code only: the launch fails with cudart's error for a
 * missing kernel image, and gpupool says on stderr what to rebuild with. */
static void test_cudart_no_ptx(int argc, char **argv) {
  struct run r;
  run_program(&r, "no_ptx", "rt_no_ptx: PASS", PROGRAM_LIMIT_S);
  CHECK_HAS_LINE(r.out, "launch: cudaErrorNoKernelImageForDevice: no kernel "
                        "image is available for execution on the device");
  CHECK_HAS_LINE(r.out, "synchronize: cudaSuccess: no error");
  CHECK_CONTAINS(r.err, "the fatbin has machine code only (sm_75, built with "
                        "code=sm_XX), no PTX: the emulated device needs PTX; "
                        "rebuild with nvcc's default or -gencode "
                        "arch=compute_75,code=compute_75");
  run_free(&r);
  (void)argc;
  (void)argv;
}

/* ---- cublas_sgemm ------------------------------------------------------------- */

/* cuBLAS 13 binds to gpupool's library and initialises (three copies of
 * cudart: the program's, libcublas's and libcublasLt's), allocates and
 * copies, and chooses its SGEMM kernels for a compute capability 7.5
 * device: volta_sgemm_*_nn from libcublasLt.so.13. They are in a fatbin
 * that holds sm_75 machine code only, no PTX (cuBLAS 13 ships PTX only for
 * compute_120, and one compute_75 entry in libcublasLt that is not these),
 * and the emulated device runs PTX only: cuLibraryGetKernel answers
 * CUDA_ERROR_NO_BINARY_FOR_GPU for each, and cublasSgemm returns
 * CUBLAS_STATUS_EXECUTION_FAILED. This scenario asserts exactly that, so
 * that it fails when the behaviour changes (a toolkit with other kernels,
 * or a device that runs them: then rt_cublas_sgemm prints its PASS and
 * this becomes an ordinary test). See docs/testing.md. */
static void test_cudart_cublas_sgemm(int argc, char **argv) {
  struct run r;
  setenv("GPUPOOL_TRACE", "1", 1); /* the kernels' names are in the trace */
  start_and_run(&r, "cublas_sgemm", PROGRAM_LIMIT_S);
  CHECK_EQ_I(r.status, 1); /* the program's own failure, no crash */
  CHECK_CONTAINS(r.out, "cuBLAS version ");
  /* cublasCreate, cudaMalloc and cublasSetMatrix worked. */
  CHECK_CONTAINS(r.err, "cuMemcpyHtoD_v2(");
  CHECK_CONTAINS(r.err, "cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, "
                        "&alpha, dA, m, dB, k, &beta, dC, m) failed: the "
                        "function failed to launch on the GPU (13)");
  CHECK_CONTAINS(r.err, "gpupool: cuLibraryGetKernel: the server could not "
                        "load the library's fatbin image (");
  CHECK_CONTAINS(r.err, "the fatbin has machine code only (sm_75, built with "
                        "code=sm_XX), no PTX: the emulated device needs PTX");
  static const char *const kernels[] = {
      "volta_sgemm_128x128_nn", "volta_sgemm_128x64_nn",
      "volta_sgemm_128x32_nn", "volta_sgemm_32x128_nn",
      "volta_sgemm_64x64_nn"};
  for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
    char line[128];
    snprintf(line, sizeof line, "name=\"%s\") = CUDA_ERROR_NO_BINARY_FOR_GPU",
             kernels[i]);
    CHECK_CONTAINS(r.err, line);
  }
  /* No kernel was launched, and nothing gpupool lacks was reached. */
  CHECK_TRUE(strstr(r.err, "cuLaunchKernel(") == NULL);
  CHECK_TRUE(strstr(r.err, "is not supported yet") == NULL);
  CHECK_TRUE(gpt_server_alive(&server));
  run_free(&r);
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"vector_add", test_cudart_vector_add, 60},
      {"vector_add_shared", test_cudart_vector_add_shared, 60},
      {"vector_add_rdc", test_cudart_vector_add_rdc, 60},
      {"matrix_mul", test_cudart_matrix_mul, 60},
      {"streams", test_cudart_streams, 60},
      {"streams_shared", test_cudart_streams_shared, 60},
      {"symbols", test_cudart_symbols, 60},
      {"symbols_shared", test_cudart_symbols_shared, 60},
      {"symbols_rdc", test_cudart_symbols_rdc, 60},
      {"func_attrs", test_cudart_func_attrs, 60},
      {"template", test_cudart_template, 60},
      {"printf", test_cudart_printf, 60},
      {"device_reset", test_cudart_device_reset, 60},
      {"device_reset_shared", test_cudart_device_reset_shared, 60},
      {"host_func", test_cudart_host_func, 60},
      {"malloc_async", test_cudart_malloc_async, 60},
      {"threads", test_cudart_threads, 60},
      {"oob", test_cudart_oob, 60},
      {"no_ptx", test_cudart_no_ptx, 60},
      {"ptds", test_cudart_ptds, 60},
      {"pointer_2d", test_cudart_pointer_2d, 60},
      {"demo", test_cudart_demo, 60},
      {"cublas_sgemm", test_cudart_cublas_sgemm, 60},
      {"cublas_blas", test_cudart_cublas_blas, 60},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
