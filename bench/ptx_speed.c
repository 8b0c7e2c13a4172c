/* bench_ptx_speed: how fast the PTX engine (server/backend/emu/ptx_*.c)
 * interprets a compute-bound kernel, next to native C doing the same
 * arithmetic in the same process. See bench/README.md.
 *
 * Usage: bench_ptx_speed [iterations per thread, default 64]
 *
 * The kernel gives each of 2^20 threads a 32-bit linear congruential
 * generator stepped |iterations| times: per step one mad, one add, one
 * setp and one bra (4 thread-instructions). The native loop runs the same
 * steps one thread after the other, scalar, as a CPU core would. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/emu/ptx.h"

#define THREADS (1u << 20)
#define BLOCK 256u

static const char kernel_ptx[] =
    ".version 9.0\n"
    ".target sm_75\n"
    ".address_size 64\n"
    ".visible .entry lcg(.param .u64 out, .param .u32 iters)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .b64 %rd<4>;\n"
    "  ld.param.u64 %rd1, [out];\n"
    "  ld.param.u32 %r1, [iters];\n"
    "  mov.u32 %r2, %ctaid.x;\n"
    "  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n"
    "  mad.lo.s32 %r5, %r2, %r3, %r4;\n"
    "  mov.u32 %r7, %r5;\n"
    "  mov.u32 %r6, 0;\n"
    "$L_loop:\n"
    "  mad.lo.u32 %r5, %r5, 1664525, 1013904223;\n"
    "  add.u32 %r6, %r6, 1;\n"
    "  setp.lt.u32 %p1, %r6, %r1;\n"
    "  @%p1 bra $L_loop;\n"
    "  mul.wide.u32 %rd2, %r7, 4;\n"
    "  add.s64 %rd3, %rd1, %rd2;\n"
    "  st.global.u32 [%rd3], %r5;\n"
    "  ret;\n"
    "}\n";

/* Global memory for the kernel: one buffer, at its host address. */
struct region {
  uint64_t base, size;
  void *host;
};

static int lookup(void *opaque, uint64_t addr, uint64_t *base,
                  uint64_t *size, void **host) {
  const struct region *r = opaque;

  if (addr - r->base >= r->size)
    return -1;
  *base = r->base;
  *size = r->size;
  *host = r->host;
  return 0;
}

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One thread of the kernel, natively. noinline keeps the compiler from
 * interleaving threads (vectorising across them), which the engine cannot
 * do either. */
static __attribute__((noinline)) uint32_t native_thread(uint32_t x,
                                                        uint32_t iters) {
  uint32_t i = 0;

  do {
    x = x * 1664525u + 1013904223u;
    i++;
  } while (i < iters);
  return x;
}

/* Runs the kernel once with |max_threads|; returns the seconds it took
 * and sets |*insns| to the thread-instructions it executed. */
static double run_engine(const struct ptx_kernel *k, uint32_t *out,
                         uint32_t iters, unsigned max_threads,
                         uint64_t *insns) {
  struct region reg = {(uint64_t)(uintptr_t)out, THREADS * 4ull, out};
  struct ptx_mem_ops mem = {lookup, &reg};
  uint8_t params[16];
  uint64_t po = (uint64_t)(uintptr_t)out, n0;
  struct ptx_launch l;
  char err[512];
  double t0, t1;
  int rc;

  memset(params, 0, sizeof(params));
  memcpy(params, &po, 8);
  memcpy(params + 8, &iters, 4);
  memset(&l, 0, sizeof(l));
  l.grid[0] = THREADS / BLOCK;
  l.grid[1] = l.grid[2] = 1;
  l.block[0] = BLOCK;
  l.block[1] = l.block[2] = 1;
  l.params = params;
  l.params_size = ptx_kernel_params_size(k);
  l.mem = &mem;
  l.max_threads = max_threads;
  n0 = ptx_stat_thread_insns();
  t0 = now();
  rc = ptx_launch(k, &l, err, sizeof(err));
  t1 = now();
  if (rc != PTX_OK) {
    fprintf(stderr, "bench_ptx_speed: launch failed (%d): %s\n", rc, err);
    exit(1);
  }
  *insns = ptx_stat_thread_insns() - n0;
  return t1 - t0;
}

int main(int argc, char **argv) {
  uint32_t iters = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 64;
  struct ptx_module *m;
  const struct ptx_kernel *k;
  uint32_t *out = calloc(THREADS, 4), *ref = calloc(THREADS, 4);
  volatile uint32_t sink = 0;
  uint64_t insns, insns_mt;
  double te, tn, tm, t0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned hosts;
  char err[512];

  if (!out || !ref || iters == 0) {
    fprintf(stderr, "usage: bench_ptx_speed [iterations >= 1]\n");
    return 2;
  }
  if (ptx_module_load(kernel_ptx, strlen(kernel_ptx), &m, err,
                      sizeof(err)) != PTX_OK ||
      !(k = ptx_module_kernel(m, "lcg"))) {
    fprintf(stderr, "bench_ptx_speed: %s\n", err);
    return 1;
  }

  te = run_engine(k, out, iters, 1, &insns);

  /* The same work natively: every thread's steps, one thread after the
   * other; the results are checked against the engine's, so none of it
   * can be optimised away. */
  t0 = now();
  for (uint32_t t = 0; t < THREADS; t++)
    ref[t] = native_thread(t, iters);
  tn = now() - t0;
  for (uint32_t t = 0; t < THREADS; t++) {
    sink += ref[t];
    if (ref[t] != out[t]) {
      fprintf(stderr, "bench_ptx_speed: thread %u: engine %u, native %u\n",
              t, out[t], ref[t]);
      return 1;
    }
  }

  memset(out, 0, THREADS * 4ull);
  tm = run_engine(k, out, iters, 0, &insns_mt);
  hosts = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu;
  if (hosts > THREADS / BLOCK)
    hosts = THREADS / BLOCK;

  printf("engine, 1 host thread:  %8.1f M thread-instructions/s "
         "(%llu in %.3f s)\n",
         (double)insns / te / 1e6, (unsigned long long)insns, te);
  printf("native C, 1 thread:     %8.1f M thread-instructions/s "
         "(the same work in %.3f s)\n",
         (double)insns / tn / 1e6, tn);
  printf("native / engine:        %8.1f\n", te / tn);
  printf("engine, max_threads=0:  %8.1f M thread-instructions/s on %u host "
         "threads (%.3f s)\n",
         (double)insns_mt / tm / 1e6, hosts, tm);
  ptx_module_free(m);
  free(out);
  free(ref);
  return sink == 0xdeadbeef ? 3 : 0; /* uses the sink */
}
