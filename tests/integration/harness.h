/* The integration test harness: starts a real gpupool-server on loopback,
 * points the client library at it, runs one named scenario, counts checks.
 *
 * Every integration program is a set of scenarios; `prog NAME` runs one and
 * exits 0 when every check passed, 1 otherwise (77, meson's "skipped", when
 * the scenario cannot run here). Scenarios whose name starts with "child_"
 * are roles that a scenario runs in a process of its own (gpt_spawn()), not
 * tests by themselves.
 *
 * The programs are linked only to gpupool's libcuda.so.1. The server binary
 * comes from $GPUPOOL_TEST_SERVER and the CLI from $GPUPOOL_TEST_CLI, both
 * set by tests/integration/meson.build.
 *
 * Nothing here is thread-safe except the CHECK macros, which may be used
 * from any thread.
 */
#ifndef GPT_HARNESS_H
#define GPT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cuda.h>

/* ---- Checks ---------------------------------------------------------------
 *
 * Each CHECK evaluates its arguments once, counts one check, and on failure
 * prints file:line, the expression, the expected and the actual value, then
 * carries on. REQUIRE_* do the same but end the scenario at once (its
 * remaining checks would only repeat the failure).
 */

void gpt__check_fail(const char *file, int line, const char *expr,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void gpt__check_pass(void);
void gpt__abort_scenario(void) __attribute__((noreturn));
/* The CUresult's enum name ("CUDA_ERROR_INVALID_VALUE"), from the harness's
 * own table (not the library under test); "CUresult(n)" when unknown. The
 * result points to static storage for unknown codes: not reentrant then. */
const char *gpt_cu_name(CUresult r);

#define GPT__CHECK(cond, expr, ...)                                  \
  do {                                                              \
    if (cond)                                                       \
      gpt__check_pass();                                            \
    else                                                            \
      gpt__check_fail(__FILE__, __LINE__, expr, __VA_ARGS__);       \
  } while (0)

/* |call| returned |expected| (a CUresult). Evaluates to true if so. */
#define CHECK_CU(call, expected)                                            \
  __extension__({                                                           \
    CUresult gpt_r_ = (call);                                               \
    CUresult gpt_e_ = (expected);                                           \
    GPT__CHECK(gpt_r_ == gpt_e_, #call,                                     \
               "expected %s (%d), got %s (%d)", gpt_cu_name(gpt_e_),        \
               (int)gpt_e_, gpt_cu_name(gpt_r_), (int)gpt_r_);              \
    gpt_r_ == gpt_e_;                                                       \
  })
#define CHECK_OK(call) CHECK_CU(call, CUDA_SUCCESS)
#define REQUIRE_CU(call, expected)                                          \
  do {                                                                      \
    if (!CHECK_CU(call, expected)) gpt__abort_scenario();                   \
  } while (0)
#define REQUIRE_OK(call) REQUIRE_CU(call, CUDA_SUCCESS)

/* Integer comparisons, printed as signed (I) or unsigned (U) 64-bit. */
#define GPT__CHECK_CMP(a, op, b, T, fmt)                                      \
  __extension__({                                                           \
    T gpt_a_ = (T)(a);                                                      \
    T gpt_b_ = (T)(b);                                                      \
    GPT__CHECK(gpt_a_ op gpt_b_, #a " " #op " " #b,                         \
               "left %" fmt " (0x%llx), right %" fmt " (0x%llx)", gpt_a_,   \
               (unsigned long long)gpt_a_, gpt_b_,                          \
               (unsigned long long)gpt_b_);                                 \
    gpt_a_ op gpt_b_;                                                       \
  })
#define CHECK_EQ_I(a, b) GPT__CHECK_CMP(a, ==, b, long long, "lld")
#define CHECK_NE_I(a, b) GPT__CHECK_CMP(a, !=, b, long long, "lld")
#define CHECK_LT_I(a, b) GPT__CHECK_CMP(a, <, b, long long, "lld")
#define CHECK_LE_I(a, b) GPT__CHECK_CMP(a, <=, b, long long, "lld")
#define CHECK_GT_I(a, b) GPT__CHECK_CMP(a, >, b, long long, "lld")
#define CHECK_GE_I(a, b) GPT__CHECK_CMP(a, >=, b, long long, "lld")
#define CHECK_EQ_U(a, b) GPT__CHECK_CMP(a, ==, b, unsigned long long, "llu")
#define CHECK_NE_U(a, b) GPT__CHECK_CMP(a, !=, b, unsigned long long, "llu")
#define CHECK_LT_U(a, b) GPT__CHECK_CMP(a, <, b, unsigned long long, "llu")
#define CHECK_LE_U(a, b) GPT__CHECK_CMP(a, <=, b, unsigned long long, "llu")
#define CHECK_GT_U(a, b) GPT__CHECK_CMP(a, >, b, unsigned long long, "llu")
#define CHECK_GE_U(a, b) GPT__CHECK_CMP(a, >=, b, unsigned long long, "llu")
#define CHECK_EQ_PTR(a, b) \
  CHECK_EQ_U((uintptr_t)(const void *)(a), (uintptr_t)(const void *)(b))

/* A condition with no values worth printing beyond the expression. */
#define CHECK_TRUE(cond)                                          \
  __extension__({                                                 \
    bool gpt_c_ = (cond);                                         \
    GPT__CHECK(gpt_c_, #cond, "%s", "condition is false");        \
    gpt_c_;                                                       \
  })

#define REQUIRE_TRUE(cond)                   \
  do {                                       \
    if (!CHECK_TRUE(cond)) gpt__abort_scenario(); \
  } while (0)

/* Doubles (timings). */
#define CHECK_LE_D(a, b)                                                    \
  __extension__({                                                           \
    double gpt_a_ = (a), gpt_b_ = (b);                                      \
    GPT__CHECK(gpt_a_ <= gpt_b_, #a " <= " #b, "left %.6f, right %.6f",     \
               gpt_a_, gpt_b_);                                             \
    gpt_a_ <= gpt_b_;                                                       \
  })
#define CHECK_GE_D(a, b) CHECK_LE_D(b, a)

/* NUL-terminated strings; NULL prints as (null). */
int gpt__streq(const char *a, const char *b);
#define CHECK_STR_EQ(a, b)                                                  \
  __extension__({                                                           \
    const char *gpt_a_ = (a), *gpt_b_ = (b);                                \
    int gpt_ok_ = gpt__streq(gpt_a_, gpt_b_);                               \
    GPT__CHECK(gpt_ok_, #a " == " #b, "left \"%s\", right \"%s\"",          \
               gpt_a_ ? gpt_a_ : "(null)", gpt_b_ ? gpt_b_ : "(null)");     \
    gpt_ok_;                                                                \
  })

/* |n| bytes at |actual| equal those at |expected|. On failure prints the
 * first differing offset, both bytes there and how many bytes differ. */
bool gpt__mem_eq(const char *file, int line, const char *expr,
                 const void *actual, const void *expected, size_t n);
#define CHECK_MEM_EQ(actual, expected, n) \
  gpt__mem_eq(__FILE__, __LINE__, #actual " == " #expected, actual, expected, n)

/* Every one of the |n| bytes at |p| is |byte|. */
bool gpt__mem_all(const char *file, int line, const char *expr, const void *p,
                  int byte, size_t n);
#define CHECK_MEM_ALL(p, byte, n) \
  gpt__mem_all(__FILE__, __LINE__, #p " all " #byte, p, byte, n)

/* Number of checks run and failed so far in this process. */
unsigned gpt_checks_run(void);
unsigned gpt_checks_failed(void);

/* ---- Scenarios -------------------------------------------------------------- */

struct gpt_scenario {
  const char *name;
  /* argc/argv hold the arguments after the scenario's name. */
  void (*run)(int argc, char **argv);
  unsigned timeout_s; /* watchdog; 0: 60 s */
};

/* Runs the scenario named by argv[1] from the table (ended by a NULL name):
 * arms a watchdog (SIGALRM: prints that the scenario hung, kills the servers
 * it started, exits 1), runs it, stops any server still running, prints the
 * counts and returns the exit status. With no argument, lists the names. */
int gpt_main(int argc, char **argv, const struct gpt_scenario *table);

/* Ends the scenario as skipped (exit 77) with a reason. */
void gpt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- The server --------------------------------------------------------------- */

struct gpt_server {
  pid_t pid;          /* the supervisor; also its process group's id */
  int port;
  char addr[64];      /* "127.0.0.1:PORT" */
  char dir[256];      /* temporary folder holding the port file */
  int status;         /* wait status once reaped */
  bool reaped;
  /* GPT_SERVER_MODE=relay: the emu server behind this one (the one the
   * client talks to runs --backend cuda on gpupool's client library,
   * which connects here); NULL in the other modes. */
  struct gpt_server *behind;
  /* Plain TCP (--insecure): set by gpt_server_start() (see there). */
  bool insecure;
};

/* The build's test certificates (ca.pem, server.pem/.key, broker.pem/.key)
 * from $GPT_CERTS (tests/integration/meson.build), NULL when unset. */
const char *gpt_certs_dir(void);

/* The server mode of this test run, from GPT_SERVER_MODE: "emu" (the
 * default: one --backend emu server), "relay" (a --backend cuda server A
 * whose workers dlopen $GPUPOOL_TEST_CLIENT_LIB, relaying to a --backend
 * emu server B; the client talks to A), or "cuda" (one --backend cuda
 * server on the machine's real driver; --emu-* arguments are dropped). */
const char *gpt_server_mode(void);

/* Starts $GPUPOOL_TEST_SERVER --listen 127.0.0.1:0 --port-file DIR/port
 * --tls-cert/--tls-key/--tls-ca (the test certificates of $GPT_CERTS)
 * --backend emu --emu-memory 1G, then the NULL-terminated |extra| arguments
 * (may be NULL; a later flag overrides an earlier one, so extra may give
 * --emu-memory again), in a process group of its own that dies with this
 * process. Waits up to 10 s for the port and sets GPUPOOL_SERVER to
 * s->addr. Returns 0, or -1 after printing why (a failed check).
 *
 * In relay mode (gpt_server_mode()) it first starts the emu server B with
 * the --emu-* and --log-level arguments of |extra|, then the server A the
 * client talks to (s->addr), --backend cuda --cuda-lib
 * $GPUPOOL_TEST_CLIENT_LIB with GPUPOOL_SERVER=B in its environment and the
 * other arguments of |extra| (--log-level too); s->behind is B. Stopping,
 * signalling and killing act on A; gpt_server_stop stops B after it.
 *
 * TLS (docs/testing.md): by default the server (both, in relay mode) runs
 * TLS with the test certificates, and this process sets GPUPOOL_TLS_CA to
 * their CA and unsets GPUPOOL_INSECURE, so every client it runs (children
 * inherit, the relay's workers too) verifies the server. With "--insecure"
 * in |extra|, or "--broker" (a pool server: --insecure is added, its
 * broker link being plain TCP for now), the server runs plain TCP,
 * s->insecure is set and so is GPUPOOL_INSECURE=1 for the clients. The
 * environment follows the server started last. */
int gpt_server_start(struct gpt_server *s, const char *const *extra);

/* SIGTERM, then waits up to |grace_ms| for it to exit, then SIGKILLs the
 * whole group. Returns the server's exit status (0..255), 128+signal if a
 * signal ended it, -1 if it had to be killed. Safe to call twice. */
int gpt_server_stop(struct gpt_server *s, int grace_ms);

/* Sends |sig| to the supervisor only (|group| false; its workers must then
 * die by themselves) or to its whole process group. */
void gpt_server_signal(struct gpt_server *s, int sig, bool group);

/* True while the supervisor process exists and has not exited. */
bool gpt_server_alive(struct gpt_server *s);

/* The pids of the supervisor's direct children (its session workers), from
 * /proc/PID/task/PID/children; returns how many were stored (at most
 * |max|), 0 when the kernel does not provide that file. */
int gpt_server_workers(struct gpt_server *s, pid_t *pids, int max);

/* ---- Child processes ----------------------------------------------------------- */

struct gpt_child {
  pid_t pid;
  int to_fd;    /* write end: lines to the child's stdin */
  int from_fd;  /* read end: lines the child writes with gpt_child_say() */
  int status;
  bool reaped;
};

/* Runs this same program again as `prog ROLE ARGS...` (a "child_" scenario)
 * with the current environment. The child reads commands on stdin and
 * answers on fd 3. Returns 0 or -1. */
int gpt_spawn(struct gpt_child *c, const char *role, const char *const *args);

/* Sends a line to the child (a newline is added). Returns 0 or -1. */
int gpt_child_send(struct gpt_child *c, const char *line);

/* Reads one line from the child into |buf| (without the newline), waiting at
 * most |timeout_ms|. Returns its length, or -1 on timeout, EOF or error. */
int gpt_child_recv(struct gpt_child *c, char *buf, size_t len, int timeout_ms);

/* Waits up to |timeout_ms| for the child to exit (SIGKILL after that).
 * Returns its exit status, 128+signal if a signal ended it, -1 on timeout. */
int gpt_child_wait(struct gpt_child *c, int timeout_ms);

/* In a child role: one line to the parent / one line from it (stdin). */
void gpt_child_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gpt_child_hear(char *buf, size_t len, int timeout_ms);

/* ---- Helpers ---------------------------------------------------------------------- */

/* Seconds on CLOCK_MONOTONIC (comparable between processes). */
/* A program run to its end by gpt_run(). */
struct gpt_run {
  int status;        /* exit status, 128+signal, -1: did not finish */
  double secs;       /* how long it ran */
  char out[32768];   /* stdout and stderr together (the rest is cut) */
};

/* Runs |argv| (argv[0] a path) with stdout and stderr captured into
 * |r->out|, for at most |timeout_s| (then SIGKILL, status -1). In the
 * child, each of |env| ("NAME=VALUE" sets, "NAME" unsets; NULL-ended, or
 * NULL) is applied to this process's environment first. Prints the
 * command, its status, time and output on stdout, for the test's log. */
void gpt_run(struct gpt_run *r, const char *const *argv,
             const char *const *env, int timeout_s);

double gpt_now(void);
void gpt_sleep_ms(int ms);

/* Fills |n| bytes with a pattern that depends on |seed| and on each byte's
 * position, so that shifted or misplaced data never matches. */
void gpt_fill(void *buf, size_t n, uint64_t seed);

/* malloc() that ends the scenario on failure. */
/* The running test program's own path (/proc/self/exe), to run it again
 * in a child role; NULL if it cannot be read. */
const char *gpt_self_exe(void);

/* PTX of `spin(u64 ns, u64 *out)`: spins on %globaltimer for |ns|
 * nanoseconds of wall-clock time (whatever the device's speed), then
 * stores the time in |*out|. */
extern const char gpt_spin_ptx[];

void *gpt_xmalloc(size_t n);

/* cuInit(0), the first device, a new context current on this thread. Ends
 * the scenario if any step fails. */
CUcontext gpt_init_context(CUdevice *dev);

/* ---- The broker (docs/broker.md) --------------------------------------------------
 *
 * A gpupool-broker from $GPUPOOL_TEST_BROKER with a config file and a grant
 * key written into a temporary folder of its own (|dir|), which lives until
 * gpt_broker_stop(). Pool servers are started with gpt_server_start() and
 * the broker flags (--broker b->addr --name NAME --grant-key-file
 * b->key_file). */

struct gpt_broker {
  struct gpt_server proc; /* the broker's process, port and address */
  /* Its TLS flags (gpt_broker_start_tls()); none: the test certificates
   * ($GPT_CERTS: broker.pem, broker.key, ca.pem). */
  const char *tls_args[8];
  int port;               /* the port it listens on (kept across restarts) */
  char addr[64];          /* "127.0.0.1:PORT" */
  char dir[256];          /* holds grant.key (0600) and broker.conf */
  char key_file[320];
  char config_file[320];
};

/* Writes DIR/grant.key (64 random hex digits and a newline, mode 0600) and
 * DIR/broker.conf: "[broker]\ngrant_key_file = DIR/grant.key\n" then
 * |config| verbatim (more [broker] keys, then the tenant and admin
 * sections). Starts the broker on 127.0.0.1:0 and waits up to 10 s for its
 * port file. Returns 0, or -1 after a failed check saying why. */
int gpt_broker_start(struct gpt_broker *b, const char *config);

/* ---- TLS for the broker and its pool servers (docs/security.md) ----------
 *
 * $GPT_CERTS (tests/integration/meson.build) is the folder of the test
 * certificates (tests/certs: ca.pem, server.pem/.key, broker.pem/.key),
 * $GPT_CERTS_OTHER another CA's. gpt_broker_start() runs the broker with
 * broker.pem/broker.key and --tls-ca ca.pem, and sets GPUPOOL_TLS_CA to
 * ca.pem for the clients (the library and the CLI) this process starts. */

/* "$GPT_CERTS/NAME" (|other|: $GPT_CERTS_OTHER), in static storage that
 * holds 16 such paths in turn. Ends the scenario when the variable is not
 * set. */
const char *gpt_cert(const char *name, bool other);

/* Appends a pool server's flags for its broker link to |args| from index
 * |n| (--tls-cert server.pem --tls-key server.key --tls-ca ca.pem); returns
 * the new count. */
int gpt_pool_tls_args(const char **args, int n);

/* gpt_broker_start() with the broker's TLS flags |tls| (NULL-ended, at
 * most 7: e.g. {"--insecure", NULL}) in place of the test certificates. */
int gpt_broker_start_tls(struct gpt_broker *b, const char *config,
                         const char *const *tls);

/* Starts the broker again with the same config, on the same port (after
 * gpt_broker_kill() or gpt_server_stop(&b->proc, ...)); waits up to 10 s
 * for the port to be free and the broker's port file. Returns 0 or -1. */
int gpt_broker_restart(struct gpt_broker *b);

/* SIGKILLs the broker (not its folder). */
void gpt_broker_kill(struct gpt_broker *b);

/* Stops the broker if it runs (SIGTERM, then SIGKILL after |grace_ms|) and
 * removes its folder. Returns what gpt_server_stop() returns. */
int gpt_broker_stop(struct gpt_broker *b, int grace_ms);

/* Writes |text| to DIR/NAME with |mode|; the path into |path| (|len|
 * bytes). Returns 0 or -1. */
int gpt_write_file(const char *dir, const char *name, const char *text,
                   int mode, char *path, size_t len);

#endif
