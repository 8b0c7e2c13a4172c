/* Integration: the gpupool CLI. `gpupool attach --server HOST:PORT -- PROG`
 * runs PROG with gpupool's libcuda.so.1 found first and the server passed
 * on; its exit status is the program's (127: not found, 125: gpupool's own
 * failure). `gpupool version` prints the version. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef GPT_VERSION
#define GPT_VERSION "unknown"
#endif

static struct gpt_server server;



static const char *cli(void) {
  const char *c = getenv("GPUPOOL_TEST_CLI");
  if (c == NULL || *c == '\0') gpt_skip("GPUPOOL_TEST_CLI is not set");
  return c;
}

static const char *probe(void) {
  const char *p = getenv("GPUPOOL_TEST_PROBE");
  if (p == NULL || *p == '\0') gpt_skip("GPUPOOL_TEST_PROBE is not set");
  return p;
}

/* Starts the server but leaves GPUPOOL_SERVER unset: attach passes it. */
static void start(void) {
  if (gpt_server_start(&server, NULL) != 0) gpt__abort_scenario();
  unsetenv("GPUPOOL_SERVER");
  /* Nothing in this environment may point at the library already. */
  unsetenv("LD_PRELOAD");
}

static void test_cli_version(int argc, char **argv) {
  struct gpt_run r;
  const char *v[] = {cli(), "version", NULL};
  gpt_run(&r, v, NULL, 10);
  CHECK_EQ_I(r.status, 0);
  if (!CHECK_TRUE(strstr(r.out, GPT_VERSION) != NULL))
    fprintf(stderr, "    output: %s\n    wanted: %s\n", r.out, GPT_VERSION);
  (void)argc;
  (void)argv;
}

static void test_cli_attach(int argc, char **argv) {
  start();
  struct gpt_run r;

  /* A program that dlopens libcuda.so.1 gets gpupool's and a device. */
  const char *a[] = {cli(), "attach", "--server", server.addr, "--", probe(), NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "device: gpupool emulated device") != NULL);
  const char *lib = getenv("GPUPOOL_TEST_LIBCUDA");
  const char *line = strstr(r.out, "library: ");
  if (lib != NULL && CHECK_TRUE(line != NULL)) {
    char got[PATH_MAX] = "", want[PATH_MAX] = "", path[PATH_MAX];
    sscanf(line + 9, "%4095s", path);
    if (realpath(path, got) == NULL) snprintf(got, sizeof got, "%s", path);
    if (realpath(lib, want) == NULL) snprintf(want, sizeof want, "%s", lib);
    CHECK_STR_EQ(got, want);
  }

  /* The program's exit status is attach's. */
  const char *b[] = {cli(), "attach", "--server", server.addr, "--", probe(), "3", NULL};
  gpt_run(&r, b, NULL, 30);
  CHECK_EQ_I(r.status, 3);
  const char *c[] = {cli(), "attach", "--server", server.addr, "--",
                     "/bin/sh", "-c", "exit 42", NULL};
  gpt_run(&r, c, NULL, 30);
  CHECK_EQ_I(r.status, 42);
  /* Killed by a signal: as a shell reports it. */
  const char *d[] = {cli(), "attach", "--server", server.addr, "--",
                     "/bin/sh", "-c", "kill -TERM $$", NULL};
  gpt_run(&r, d, NULL, 30);
  CHECK_EQ_I(r.status, 128 + SIGTERM);

  /* The environment the program sees. */
  const char *e[] = {cli(), "attach", "--server", server.addr, "--",
                     "/bin/sh", "-c", "echo \"server=$GPUPOOL_SERVER\"", NULL};
  gpt_run(&r, e, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  char want[128];
  snprintf(want, sizeof want, "server=%s", server.addr);
  CHECK_TRUE(strstr(r.out, want) != NULL);

  /* Not found: 127. */
  const char *f[] = {cli(), "attach", "--server", server.addr, "--",
                     "/nonexistent/gpupool-test-program", NULL};
  gpt_run(&r, f, NULL, 30);
  CHECK_EQ_I(r.status, 127);
  /* Bare name looked up in PATH. */
  const char *g[] = {cli(), "attach", "--server", server.addr, "--",
                     "gpupool-no-such-program-anywhere", NULL};
  gpt_run(&r, g, NULL, 30);
  CHECK_EQ_I(r.status, 127);

  /* gpupool's own failures: 125. */
  const char *h[] = {cli(), "attach", "--server", server.addr, "--", NULL};
  gpt_run(&r, h, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  const char *i[] = {cli(), "attach", "--no-such-flag", "--", "/bin/true", NULL};
  gpt_run(&r, i, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  /* No server given, none in the environment. */
  const char *j[] = {cli(), "attach", "--", probe(), NULL};
  gpt_run(&r, j, NULL, 30);
  CHECK_EQ_I(r.status, 125);
  /* Found but not executable: 126. */
  char path[300];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/gpupool-cli-XXXXXX",
           tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
  int fd = mkstemp(path);
  if (CHECK_TRUE(fd >= 0)) {
    close(fd);
    chmod(path, 0644);
    const char *k[] = {cli(), "attach", "--server", server.addr, "--", path, NULL};
    gpt_run(&r, k, NULL, 30);
    CHECK_EQ_I(r.status, 126);
    unlink(path);
  }

  /* --server=ADDR, and the server from the environment. */
  char opt[128];
  snprintf(opt, sizeof opt, "--server=%s", server.addr);
  const char *l[] = {cli(), "attach", opt, "--", probe(), NULL};
  gpt_run(&r, l, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  setenv("GPUPOOL_SERVER", server.addr, 1);
  const char *m[] = {cli(), "attach", probe(), NULL}; /* no "--" needed */
  gpt_run(&r, m, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "device: gpupool emulated device") != NULL);
  unsetenv("GPUPOOL_SERVER");
  CHECK_TRUE(gpt_server_alive(&server));
  (void)argc;
  (void)argv;
}

static void test_cli_trace(int argc, char **argv) {
  start();
  setenv("GPUPOOL_TRACE", "1", 1);
  struct gpt_run r;
  const char *a[] = {cli(), "attach", "--server", server.addr, "--", probe(), NULL};
  gpt_run(&r, a, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  /* One line per driver call, naming it. */
  CHECK_TRUE(strstr(r.out, "cuInit") != NULL);
  CHECK_TRUE(strstr(r.out, "cuDeviceGetName") != NULL);
  unsetenv("GPUPOOL_TRACE");
  /* --trace does the same. */
  const char *b[] = {cli(), "attach", "--server", server.addr, "--trace", "--",
                     probe(), NULL};
  gpt_run(&r, b, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "cuInit") != NULL);
  /* And without either, no trace. */
  const char *c[] = {cli(), "attach", "--server", server.addr, "--", probe(), NULL};
  gpt_run(&r, c, NULL, 30);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "cuInit") == NULL);
  (void)argc;
  (void)argv;
}

/* examples/vector_demo through the CLI, as scripts/demo.sh runs it. */
static void test_cli_demo(int argc, char **argv) {
  start();
  const char *demo = getenv("GPUPOOL_TEST_DEMO");
  if (demo == NULL || *demo == '\0') gpt_skip("GPUPOOL_TEST_DEMO is not set");
  struct gpt_run r;
  const char *a[] = {cli(), "attach", "--server", server.addr, "--", demo, NULL};
  gpt_run(&r, a, NULL, 100);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "all results byte-exact") != NULL);
  (void)argc;
  (void)argv;
}

/* examples/kernel_demo (nvcc-built kernels) through the CLI, as
 * scripts/demo.sh runs it: every result matches the host's, and the
 * device printf lines reach the program's stdout. */
static void test_cli_kernel_demo(int argc, char **argv) {
  start();
  const char *demo = getenv("GPUPOOL_TEST_KERNEL_DEMO");
  if (demo == NULL || *demo == '\0')
    gpt_skip("GPUPOOL_TEST_KERNEL_DEMO is not set: nvcc is missing, so "
             "kernel_demo was not built");
  struct gpt_run r;
  const char *a[] = {cli(), "attach", "--server", server.addr, "--", demo, NULL};
  gpt_run(&r, a, NULL, 100);
  CHECK_EQ_I(r.status, 0);
  CHECK_TRUE(strstr(r.out, "all results match the host's") != NULL);
  for (int b = 0; b < 3; b++) {
    char line[64];
    snprintf(line, sizeof line, "hello from block %d of 3 (tag 42)\n", b);
    CHECK_TRUE(strstr(r.out, line) != NULL);
  }
  (void)argc;
  (void)argv;
}

int main(int argc, char **argv) {
  static const struct gpt_scenario table[] = {
      {"version", test_cli_version, 30},
      {"attach", test_cli_attach, 120},
      {"trace", test_cli_trace, 60},
      {"demo", test_cli_demo, 120},
      {"kernel_demo", test_cli_kernel_demo, 120},
      {NULL, NULL, 0},
  };
  return gpt_main(argc, argv, table);
}
