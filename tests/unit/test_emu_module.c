/* Unit tests of the emu backend's modules and launches
 * (server/backend/emu/module.c, launch.c, and the sticky context errors of
 * emu.c), driving gp__backend_emu's operations table directly; and images
 * of several PTX units (-rdc=true programs) that the module loader links.
 *
 * The cases on inline PTX run everywhere. The cases on images that nvcc
 * builds from tests/cuda/emu_module_kernels.cu and emu_module_printf.cu
 * (PTX, fatbins, a cubin; paths in GP_TEST_* variables set by
 * tests/unit/meson.build) run when nvcc was found at build time; without
 * it they are skipped and the program exits 77 after the others pass. */
#include <check.h>
#include <stdbool.h>
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "backend.h"
#include "backend/emu/emu.h"
#include "log.h"

#define MiB (1ull << 20)

static const struct gp_backend_ops *ops = &gp__backend_emu;
static struct gp_backend *be;
static struct gp_func_desc fd; /* 32 KiB: not on the stack */
static char msg[512];

static void setup(void) {
  struct gp_backend_config cfg = {.emu_memory = 16 * MiB, .emu_sm_count = 4};
  ck_assert_int_eq(ops->open(&cfg, &be), CUDA_SUCCESS);
  memset(&fd, 0, sizeof(fd));
  msg[0] = 0;
}

static void teardown(void) {
  ops->close(be);
  be = NULL;
}

/* ---- inline PTX --------------------------------------------------------- */

/* store(p, off): p[off] = 1 (u32). addTab(p): p[tid] = ctab[tid % 4] +
 * gcount. spin(): loops for ever. */
static const char kernels_ptx[] =
    ".version 7.5\n"
    ".target sm_75\n"
    ".address_size 64\n"
    "\n"
    ".global .align 4 .u32 gcount = 7;\n"
    ".const .align 4 .b8 ctab[16] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, "
    "4, 0, 0, 0};\n"
    "\n"
    ".visible .entry store(\n"
    "  .param .u64 store_p,\n"
    "  .param .u64 store_off\n"
    ")\n"
    "{\n"
    "  .reg .b64 %rd<5>;\n"
    "  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [store_p];\n"
    "  ld.param.u64 %rd2, [store_off];\n"
    "  shl.b64 %rd3, %rd2, 2;\n"
    "  add.s64 %rd4, %rd1, %rd3;\n"
    "  mov.u32 %r1, 1;\n"
    "  st.global.u32 [%rd4], %r1;\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry addTab(\n"
    "  .param .u64 addTab_p\n"
    ")\n"
    "{\n"
    "  .reg .b64 %rd<6>;\n"
    "  .reg .b32 %r<6>;\n"
    "  ld.param.u64 %rd1, [addTab_p];\n"
    "  mov.u32 %r1, %tid.x;\n"
    "  and.b32 %r2, %r1, 3;\n"
    "  mul.wide.u32 %rd2, %r2, 4;\n"
    "  mov.u64 %rd3, ctab;\n"
    "  add.s64 %rd3, %rd3, %rd2;\n"
    "  ld.const.u32 %r3, [%rd3];\n"
    "  ld.global.u32 %r4, [gcount];\n"
    "  add.s32 %r5, %r3, %r4;\n"
    "  mul.wide.u32 %rd4, %r1, 4;\n"
    "  add.s64 %rd5, %rd1, %rd4;\n"
    "  st.global.u32 [%rd5], %r5;\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry spin()\n"
    "{\n"
    "$L_top:\n"
    "  bra.uni $L_top;\n"
    "}\n";

/* Creates context |ctx| and loads the inline module into it as |mod|,
 * naming its kernels |mod|+1 (store), |mod|+2 (addTab), |mod|+3 (spin). */
static void load_inline(uint64_t ctx, uint64_t mod) {
  ck_assert_int_eq(ops->ctx_create(be, ctx, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_load(be, ctx, mod, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, mod, "store", mod + 1, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, mod, "addTab", mod + 2, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, mod, "spin", mod + 3, &fd),
                   CUDA_SUCCESS);
}

/* A launch of |function| in |ctx| on the default stream with |grid| x
 * |block| threads (x only) and |size| parameter bytes. */
static struct gp_launch_desc launch_desc(uint64_t ctx, uint64_t function,
                                         uint32_t grid, uint32_t block,
                                         const void *params, size_t size) {
  struct gp_launch_desc l;

  memset(&l, 0, sizeof(l));
  l.ctx = ctx;
  l.function = function;
  l.grid[0] = grid;
  l.grid[1] = l.grid[2] = 1;
  l.block[0] = block;
  l.block[1] = l.block[2] = 1;
  l.params = params;
  l.params_size = size;
  return l;
}

/* Runs store(p, off) in |ctx| (function |function|). */
static int run_store(uint64_t ctx, uint64_t function, uint64_t p,
                     uint64_t off) {
  uint64_t params[2] = {p, off};
  struct gp_launch_desc l = launch_desc(ctx, function, 1, 1, params,
                                        sizeof(params));
  return ops->launch(be, &l);
}

/* Bytes of arena in use. */
static uint64_t used(uint64_t ctx) {
  uint64_t fr, total;
  ck_assert_int_eq(ops->mem_get_info(be, ctx, &fr, &total), CUDA_SUCCESS);
  return total - fr;
}

START_TEST(test_emu_module_load_errors) {
  static const char bad_ptx[] =
      ".version 7.5\n.target sm_75\n.address_size 64\n"
      ".visible .entry k()\n{\n  .reg .b32 %r<2>;\n"
      "  mov.u32 %r1, %r9;\n  ret;\n}\n";
  static const char unsupported_ptx[] =
      ".version 7.5\n.target sm_75\n.address_size 64\n"
      ".visible .entry k()\n{\n  .reg .b32 %r<4>;\n"
      "  vadd.u32.u32.u32 %r1, %r2, %r3;\n  ret;\n}\n";
  static const uint8_t wrapper[24] = {0xb1, 0x43, 0x62, 0x46, 1, 0, 0, 0};
  static const uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  static const char junk[] = "this is not a module";

  ck_assert_int_eq(ops->module_load(be, 1, 10, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_load(be, 1, 0, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->module_load(be, 1, 10, NULL, 0, msg, sizeof(msg)),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->module_load(be, 1, 10, junk, sizeof(junk) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_msg(strstr(msg, "not a PTX, ELF or fatbin") != NULL, "%s", msg);
  ck_assert_int_eq(ops->module_load(be, 1, 10, wrapper, sizeof(wrapper), msg,
                                    sizeof(msg)),
                   CUDA_ERROR_INVALID_IMAGE);
  ck_assert_msg(strstr(msg, "wrapper") != NULL, "%s", msg);
  ck_assert_int_eq(ops->module_load(be, 1, 10, elf, sizeof(elf), msg,
                                    sizeof(msg)),
                   CUDA_ERROR_NO_BINARY_FOR_GPU);
  ck_assert_msg(strstr(msg, "needs PTX") != NULL, "%s", msg);
  ck_assert_int_eq(ops->module_load(be, 1, 10, bad_ptx, sizeof(bad_ptx) - 1,
                                    msg, sizeof(msg)),
                   CUDA_ERROR_INVALID_PTX);
  ck_assert_msg(strstr(msg, "%r9") != NULL, "%s", msg);
  ck_assert_int_eq(ops->module_load(be, 1, 10, unsupported_ptx,
                                    sizeof(unsupported_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_NOT_SUPPORTED);
  ck_assert_msg(strstr(msg, "vadd") != NULL && strstr(msg, "7") != NULL,
                "%s", msg);
  /* Nothing was left behind by the failures; then a good load, and the
   * same id again. */
  ck_assert_uint_eq(used(1), 0);
  ck_assert_int_eq(ops->module_load(be, 1, 10, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, NULL, 0),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_load(be, 1, 10, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_INVALID_VALUE);
  /* Two module variables, one 512-byte allocation each. */
  ck_assert_uint_eq(used(1), 1024);
}
END_TEST

START_TEST(test_emu_module_function_and_globals) {
  uint64_t g = 0, t = 0, size = 0, out = 0, base = 0, bsize = 0;
  uint32_t v = 100, res[8], tab[4];
  int i;

  load_inline(1, 10);
  ck_assert_int_eq(ops->module_get_function(be, 10, "store", 20, &fd),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(fd.nparams, 2);
  ck_assert_uint_eq(fd.params[0].offset, 0);
  ck_assert_uint_eq(fd.params[0].size, 8);
  ck_assert_uint_eq(fd.params[1].offset, 8);
  ck_assert_uint_eq(fd.params[1].size, 8);
  ck_assert_uint_eq(fd.params_size, 16);
  ck_assert_int_eq(fd.max_threads_per_block, 1024);
  ck_assert_int_eq(fd.shared_size_bytes, 0);
  ck_assert_int_eq(fd.local_size_bytes, 0);
  ck_assert_int_eq(fd.const_size_bytes, 16);
  ck_assert_int_gt(fd.num_regs, 0);
  ck_assert_int_eq(fd.ptx_version, 75);
  ck_assert_int_eq(fd.binary_version, 75);
  /* Function ids: 0 and ids in use are refused; unknown names and
   * modules. */
  ck_assert_int_eq(ops->module_get_function(be, 10, "store", 20, &fd),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->module_get_function(be, 10, "store", 0, &fd),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->module_get_function(be, 10, "nope", 21, &fd),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(ops->module_get_function(be, 10, "gcount", 21, &fd),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(ops->module_get_function(be, 99, "store", 21, &fd),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_get_function(be, 10, "", 21, &fd),
                   CUDA_ERROR_INVALID_VALUE);

  /* Globals: addresses that work with every memory operation. */
  ck_assert_int_eq(ops->module_get_global(be, 10, "gcount", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 4);
  ck_assert_int_eq(ops->module_get_global(be, 10, "ctab", &t, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 16);
  ck_assert_int_eq(ops->module_get_global(be, 10, "store", &t, &size),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(ops->module_get_global(be, 11, "gcount", &t, &size),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_get_global(be, 10, "ctab", &t, &size),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, g, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(v, 7);
  ck_assert_int_eq(ops->memcpy_dtoh(be, tab, t, 16, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(tab[3], 4);
  ck_assert_int_eq(ops->memcpy_dtoh(be, tab, t, 17, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_get_address_range(be, g, &base, &bsize),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(base, g);
  ck_assert_uint_eq(bsize, 4);
  v = 100;
  ck_assert_int_eq(ops->memcpy_htod(be, g, &v, 4, 0), CUDA_SUCCESS);
  tab[0] = 10;
  ck_assert_int_eq(ops->memcpy_htod(be, t, tab, 4, 0), CUDA_SUCCESS);
  /* cuMemFree of a module variable is refused; it stays usable. */
  ck_assert_int_eq(ops->mem_free(be, g), CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_free(be, t), CUDA_ERROR_INVALID_VALUE);

  /* Kernels see what the copies wrote. */
  ck_assert_int_eq(ops->mem_alloc(be, 1, sizeof(res), &out), CUDA_SUCCESS);
  {
    struct gp_launch_desc l = launch_desc(1, 12, 1, 8, &out, sizeof(out));
    ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  }
  ck_assert_int_eq(ops->memcpy_dtoh(be, res, out, sizeof(res), 0),
                   CUDA_SUCCESS);
  for (i = 0; i < 8; i++)
    ck_assert_uint_eq(res[i], (i % 4 == 0 ? 10u : (uint32_t)(i % 4) + 1) +
                                  100u);
  /* A kernel writes module variables; a memset reaches them too. */
  ck_assert_int_eq(run_store(1, 11, g, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, g, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(v, 1);
  ck_assert_int_eq(ops->memset(be, g, 0x55, 1, 4, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, g, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(v, 0x55555555u);
}
END_TEST

START_TEST(test_emu_module_launch_config) {
  uint64_t out = 0, other = 0, params[2];
  struct gp_launch_desc l;

  load_inline(1, 10);
  load_inline(2, 30);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 4096, &out), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 1, 5, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 2, 6, 0, 0), CUDA_SUCCESS);
  params[0] = out;
  params[1] = 3;

  l = launch_desc(1, 11, 1, 1, params, sizeof(params));
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  l.stream = 5;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  /* Handles: context, function, stream. */
  l.stream = 6; /* of context 2 */
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_HANDLE);
  l.stream = 7;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_HANDLE);
  l.stream = 0;
  l.ctx = 3;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_CONTEXT);
  l.ctx = 1;
  l.function = 31; /* store of context 2 */
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_HANDLE);
  l.function = 99;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_HANDLE);
  l.function = 11;

  /* Dimensions. */
  l.block[0] = 0;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.block[0] = 1025;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.block[0] = 32;
  l.block[1] = 33; /* 1056 threads */
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.block[0] = 1;
  l.block[1] = 1;
  l.block[2] = 65;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.block[2] = 1;
  l.grid[0] = 0;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.grid[0] = 0x80000000u;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.grid[0] = 1;
  l.grid[1] = 65536;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.grid[1] = 1;
  l.grid[2] = 65536;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.grid[2] = 1;
  /* Shared memory: the opt-in limit, 64 KiB. */
  l.shared_mem = 65537;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.shared_mem = 65536;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  l.shared_mem = 0;
  /* Parameters: exactly the kernel's size. */
  l.params_size = 8;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.params_size = 24;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.params_size = 16;
  l.params = NULL;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.params = params;

  /* None of that made the context fail. */
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 16, &other), CUDA_SUCCESS);
}
END_TEST

START_TEST(test_emu_module_fault_is_sticky) {
  uint64_t a = 0, b2 = 0, c = 0, g = 0, size = 0, fr, total, base, bsize;
  uint32_t v = 0, w = 0;
  void *host;
  float ms;

  load_inline(1, 10);
  load_inline(2, 30);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 64, &a), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 2, 64, &b2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_create(be, 1, 5, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 6, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_create(be, 1, 7, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_record(be, 6, 5), CUDA_SUCCESS);
  ck_assert_int_eq(ops->event_record(be, 7, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_global(be, 10, "gcount", &g, &size),
                   CUDA_SUCCESS);

  /* Context 1's kernel may not write context 2's memory: an illegal
   * address, and context 2's bytes are untouched. */
  ck_assert_int_eq(run_store(1, 11, b2, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &w, b2, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(w, 0);

  /* Every operation that touches context 1 now fails the same way. */
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(run_store(1, 11, a, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 64, &c), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_alloc_pitch(be, 1, 64, 2, 4, &c, &size),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_get_info(be, 1, &fr, &total),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_get_address_range(be, a, &base, &bsize),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_htod(be, a, &v, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, a, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, g, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_dtod(be, b2, a, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memcpy_dtod(be, a, b2, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->memset(be, a, 0, 1, 4, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_host_view(be, a, 4, 0, &host),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->mem_free(be, a), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->stream_create(be, 1, 8, 0, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->stream_synchronize(be, 5),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->stream_query(be, 0, 5), CUDA_ERROR_ILLEGAL_ADDRESS);
  /* The default stream of the failed context, named through it. */
  ck_assert_int_eq(ops->stream_query(be, 1, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->stream_wait_event(be, 5, 6, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->stream_destroy(be, 5), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_create(be, 1, 9, 0),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_record(be, 6, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_query(be, 6), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_synchronize(be, 6),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_elapsed_time(be, 6, 7, &ms),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->event_destroy(be, 6), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->module_load(be, 1, 50, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->module_get_function(be, 10, "addTab", 51, &fd),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->module_get_global(be, 10, "gcount", &g, &size),
                   CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_ERROR_ILLEGAL_ADDRESS);

  /* Context 2 and stream 0 are fine. */
  ck_assert_int_eq(ops->ctx_synchronize(be, 2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->stream_synchronize(be, 0), CUDA_SUCCESS);
  ck_assert_int_eq(run_store(2, 31, b2, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &w, b2 + 4, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(w, 1);
  ck_assert_int_eq(ops->mem_alloc(be, 2, 64, &c), CUDA_SUCCESS);

  /* Destroying context 1 works, frees everything it had, and clears the
   * error: the ids are free again. */
  ck_assert_int_eq(ops->ctx_destroy(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_ERROR_INVALID_CONTEXT);
  ck_assert_int_eq(ops->stream_synchronize(be, 5), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->event_query(be, 6), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, a, 4, 0),
                   CUDA_ERROR_INVALID_VALUE);
  load_inline(1, 10);
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_SUCCESS);
}
END_TEST

START_TEST(test_emu_module_oob_in_own_context) {
  uint64_t a = 0;

  load_inline(1, 10);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 64, &a), CUDA_SUCCESS);
  ck_assert_int_eq(run_store(1, 11, a, 15), CUDA_SUCCESS);
  /* Past the requested size (the 512-byte rounding does not count). */
  ck_assert_int_eq(run_store(1, 11, a, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

START_TEST(test_emu_module_unload) {
  uint64_t g = 0, size = 0, a = 0, before;
  uint32_t v;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  before = used(1);
  load_inline(2, 10); /* another context's module stays */
  ck_assert_int_eq(ops->module_load(be, 1, 20, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, 20, "store", 21, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_global(be, 20, "gcount", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 64, &a), CUDA_SUCCESS);
  ck_assert_int_eq(run_store(1, 21, a, 0), CUDA_SUCCESS);

  ck_assert_int_eq(ops->module_unload(be, 20), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_unload(be, 20), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_unload(be, 0), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(run_store(1, 21, a, 0), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_get_global(be, 20, "gcount", &g, &size),
                   CUDA_ERROR_INVALID_HANDLE);
  /* Its variables are gone: their addresses are no allocation now. */
  ck_assert_int_eq(ops->memcpy_dtoh(be, &v, g, 4, 0),
                   CUDA_ERROR_INVALID_VALUE);
  ck_assert_int_eq(ops->mem_free(be, a), CUDA_SUCCESS);
  ck_assert_uint_eq(used(1), before + 1024); /* context 2's module */
  /* The ids may be used again. */
  ck_assert_int_eq(ops->module_load(be, 1, 20, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, 20, "store", 21, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(run_store(2, 11, a, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
}
END_TEST

START_TEST(test_emu_module_ctx_destroy_unloads) {
  uint64_t a = 0;

  load_inline(1, 10);
  ck_assert_int_eq(ops->primary_ctx_retain(be, 2, 0, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_load(be, 2, 20, kernels_ptx,
                                    sizeof(kernels_ptx) - 1, msg,
                                    sizeof(msg)),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_get_function(be, 20, "store", 21, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, 64, &a), CUDA_SUCCESS);
  ck_assert_int_eq(ops->ctx_destroy(be, 1), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->module_get_function(be, 10, "store", 11, &fd),
                   CUDA_ERROR_INVALID_HANDLE);
  ck_assert_uint_eq(used(2), 1024);
  ck_assert_int_eq(ops->primary_ctx_release(be, 2), CUDA_SUCCESS);
  ck_assert_int_eq(ops->module_unload(be, 20), CUDA_ERROR_INVALID_HANDLE);
  ck_assert_int_eq(ops->ctx_create(be, 3, 0, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(used(3), 0);
  /* The function ids died with their modules: free for a new module. */
  load_inline(4, 10);
  ck_assert_int_eq(ops->module_get_function(be, 10, "store", 21, &fd),
                   CUDA_SUCCESS);
  /* close (teardown) frees what is still loaded. */
}
END_TEST

START_TEST(test_emu_module_cancel) {
  struct gp_launch_desc l;
  int cancel = 1;

  load_inline(1, 10);
  l = launch_desc(1, 13, 2, 32, NULL, 0);
  l.cancel = &cancel;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_LAUNCH_TIMEOUT);
  ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_ERROR_LAUNCH_TIMEOUT);
}
END_TEST

START_TEST(test_emu_module_output_empty) {
  const void *data = (const void *)1;
  size_t len = 1;
  uint64_t dropped = 1;

  ops->output_peek(be, &data, &len, &dropped);
  ck_assert_uint_eq(len, 0);
  ck_assert_uint_eq(dropped, 0);
  ops->output_consumed(be);
  ops->output_peek(be, &data, &len, &dropped);
  ck_assert_uint_eq(len, 0);
}
END_TEST


/* ---- images of several units: linking ----------------------------------- */

/* A growing byte buffer for building images. */
struct img {
  uint8_t *p;
  size_t n;
};

static void img_put(struct img *b, const void *src, size_t n) {
  b->p = realloc(b->p, b->n + n + 8);
  ck_assert_ptr_nonnull(b->p);
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

static void img_le(struct img *b, uint64_t v, unsigned n) {
  uint8_t t[8];
  for (unsigned i = 0; i < n; i++)
    t[i] = (uint8_t)(v >> (8 * i));
  img_put(b, t, n);
}

static void img_zero(struct img *b, size_t n) {
  static const uint8_t z[64];
  while (n > 0) {
    size_t k = n < sizeof(z) ? n : sizeof(z);
    img_put(b, z, k);
    n -= k;
  }
}

/* Appends a fatbin (at an 8-byte boundary, as the client lays a
 * version-2 wrapper's fatbins out) with one uncompressed entry of |kind|
 * (1 PTX, 2 ELF) for sm_75 holding |n| bytes at |payload|. */
static void img_fatbin(struct img *b, unsigned kind, const void *payload,
                       size_t n) {
  unsigned hs = kind == 1 ? 80 : 64;
  size_t padded = (n + 7) & ~(size_t)7;

  img_zero(b, (8 - b->n % 8) % 8);
  img_le(b, 0xBA55ED50u, 4);
  img_le(b, 1, 2);
  img_le(b, 16, 2);
  img_le(b, hs + padded, 8);
  img_le(b, kind, 2);          /* +0 kind */
  img_le(b, 0x0101, 2);
  img_le(b, hs, 4);            /* +4 header size */
  img_le(b, padded, 8);        /* +8 payload size */
  img_le(b, 0, 4);             /* +16 compressed size */
  img_le(b, 0, 8);
  img_le(b, 75, 4);            /* +28 sm */
  img_le(b, 0, 8);
  img_le(b, 0x11, 8);          /* +40 flags: 64-bit, Linux */
  img_le(b, 0, 8);
  img_le(b, 0, 8);             /* +56 uncompressed size */
  img_zero(b, hs - 64);
  img_put(b, payload, n);
  img_zero(b, padded - n);
}

static void img_ptx(struct img *b, const char *ptx) {
  img_fatbin(b, 1, ptx, strlen(ptx) + 1);
}

/* Appends a fatbin holding a minimal 64-bit cubin whose symbol table has a
 * section symbol and, when |func|, a defined function symbol. */
static void img_cubin(struct img *b, bool func) {
  struct img e = {NULL, 0};
  uint64_t shoff = 64 + 3 * 24;

  /* ELF header */
  img_put(&e, "\x7f" "ELF\x02\x01\x01", 7);
  img_zero(&e, 9);
  img_le(&e, 2, 2);            /* ET_EXEC */
  img_le(&e, 190, 2);          /* EM_CUDA */
  img_le(&e, 1, 4);
  img_le(&e, 0, 8);            /* entry */
  img_le(&e, 0, 8);            /* phoff */
  img_le(&e, shoff, 8);        /* shoff */
  img_le(&e, 0, 4);            /* flags */
  img_le(&e, 64, 2);           /* ehsize */
  img_le(&e, 0, 2);
  img_le(&e, 0, 2);
  img_le(&e, 64, 2);           /* shentsize */
  img_le(&e, 2, 2);            /* shnum */
  img_le(&e, 0, 2);
  /* Symbols at 64: null, a section symbol, a function or a second section
   * symbol. */
  img_zero(&e, 24);
  img_le(&e, 0, 4);
  img_le(&e, 3, 1);            /* STB_LOCAL, STT_SECTION */
  img_le(&e, 0, 1);
  img_le(&e, 1, 2);
  img_zero(&e, 16);
  img_le(&e, 0, 4);
  img_le(&e, func ? 0x12 : 3, 1); /* STB_GLOBAL, STT_FUNC */
  img_le(&e, 0, 1);
  img_le(&e, 1, 2);            /* defined in section 1 */
  img_zero(&e, 16);
  /* Section headers: null, the symbol table. */
  img_zero(&e, 64);
  img_le(&e, 0, 4);
  img_le(&e, 2, 4);            /* SHT_SYMTAB */
  img_le(&e, 0, 8);
  img_le(&e, 0, 8);
  img_le(&e, 64, 8);           /* offset */
  img_le(&e, 3 * 24, 8);       /* size */
  img_le(&e, 0, 4);
  img_le(&e, 1, 4);
  img_le(&e, 8, 8);
  img_le(&e, 24, 8);           /* entsize */
  img_fatbin(b, 2, e.p, e.n);
  free(e.p);
}

/* Starts the image of a -rdc=true program over: the device linker's
 * output (a cubin, no PTX) comes first, then each object's fatbin. */
static void img_rdc(struct img *b) {
  b->n = 0;
  img_cubin(b, true);
}

#define UNIT_HDR ".version 7.5\n.target sm_75\n.address_size 64\n"

/* Unit 1 of a two-unit program: kA(out) writes twice(21), its own helper(0)
 * and priv, then adds 1 to the other unit's shared_count and writes what
 * it read. */
static const char unit_a[] =
    UNIT_HDR
    ".extern .func (.param .b32 twice_r) twice(.param .b32 twice_x);\n"
    ".extern .global .align 4 .u32 shared_count;\n"
    ".global .align 4 .u32 priv = 1000;\n"
    ".func (.param .b32 h_r) helper(.param .b32 h_x)\n"
    "{\n"
    "  .reg .b32 %r<3>;\n"
    "  ld.param.u32 %r1, [h_x];\n"
    "  add.s32 %r2, %r1, 1;\n"
    "  st.param.u32 [h_r], %r2;\n"
    "  ret;\n"
    "}\n"
    ".visible .entry kA(.param .u64 kA_out)\n"
    "{\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .b64 %rd<3>;\n"
    "  ld.param.u64 %rd1, [kA_out];\n"
    "  {\n"
    "  .param .b32 p0;\n"
    "  .param .b32 r0;\n"
    "  st.param.u32 [p0], 21;\n"
    "  call.uni (r0), twice, (p0);\n"
    "  ld.param.u32 %r1, [r0];\n"
    "  }\n"
    "  {\n"
    "  .param .b32 p1;\n"
    "  .param .b32 r1;\n"
    "  st.param.u32 [p1], 0;\n"
    "  call.uni (r1), helper, (p1);\n"
    "  ld.param.u32 %r2, [r1];\n"
    "  }\n"
    "  ld.global.u32 %r3, [priv];\n"
    "  mov.u64 %rd2, shared_count;\n"
    "  atom.global.add.u32 %r4, [%rd2], 1;\n"
    "  st.global.u32 [%rd1], %r1;\n"
    "  st.global.u32 [%rd1+4], %r2;\n"
    "  st.global.u32 [%rd1+8], %r3;\n"
    "  st.global.u32 [%rd1+12], %r4;\n"
    "  ret;\n"
    "}\n";

/* Unit 2: defines twice and shared_count (10), and its own priv (2000)
 * and helper (x + 2); kB(out) writes helper(0), priv, shared_count. */
static const char unit_b[] =
    UNIT_HDR
    ".visible .global .align 4 .u32 shared_count = 10;\n"
    ".global .align 4 .u32 priv = 2000;\n"
    ".func (.param .b32 h_r) helper(.param .b32 h_x)\n"
    "{\n"
    "  .reg .b32 %r<3>;\n"
    "  ld.param.u32 %r1, [h_x];\n"
    "  add.s32 %r2, %r1, 2;\n"
    "  st.param.u32 [h_r], %r2;\n"
    "  ret;\n"
    "}\n"
    ".visible .func (.param .b32 t_r) twice(.param .b32 t_x)\n"
    "{\n"
    "  .reg .b32 %r<3>;\n"
    "  ld.param.u32 %r1, [t_x];\n"
    "  shl.b32 %r2, %r1, 1;\n"
    "  st.param.u32 [t_r], %r2;\n"
    "  ret;\n"
    "}\n"
    ".visible .entry kB(.param .u64 kB_out)\n"
    "{\n"
    "  .reg .b32 %r<4>;\n"
    "  .reg .b64 %rd<2>;\n"
    "  ld.param.u64 %rd1, [kB_out];\n"
    "  {\n"
    "  .param .b32 p0;\n"
    "  .param .b32 r0;\n"
    "  st.param.u32 [p0], 0;\n"
    "  call.uni (r0), helper, (p0);\n"
    "  ld.param.u32 %r1, [r0];\n"
    "  }\n"
    "  ld.global.u32 %r2, [priv];\n"
    "  ld.global.u32 %r3, [shared_count];\n"
    "  st.global.u32 [%rd1], %r1;\n"
    "  st.global.u32 [%rd1+4], %r2;\n"
    "  st.global.u32 [%rd1+8], %r3;\n"
    "  ret;\n"
    "}\n";

/* Runs kernel |name| of |mod| (as function |fn|) on one thread with an
 * output buffer of |n| u32, read back into |res|. */
static void run_out(uint64_t ctx, uint64_t mod, const char *name,
                    uint64_t fn, uint32_t *res, size_t n) {
  uint64_t d;
  struct gp_launch_desc l;

  ck_assert_int_eq(ops->module_get_function(be, mod, name, fn, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, ctx, n * 4, &d), CUDA_SUCCESS);
  l = launch_desc(ctx, fn, 1, 1, &d, sizeof(d));
  ck_assert_msg(ops->launch(be, &l) == CUDA_SUCCESS, "%s", name);
  ck_assert_int_eq(ops->memcpy_dtoh(be, res, d, n * 4, 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_free(be, d), CUDA_SUCCESS);
}

static int load_img(uint64_t ctx, uint64_t mod, const struct img *b) {
  return ops->module_load(be, ctx, mod, b->p, b->n, msg, sizeof(msg));
}

START_TEST(test_emu_module_link_units) {
  struct img b = {NULL, 0};
  uint32_t res[4];
  uint64_t g, size;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* The device-link output (a cubin that defines things) comes first and
   * is passed over; each unit's fatbin brings PTX. */
  img_rdc(&b);
  img_ptx(&b, unit_a);
  img_ptx(&b, unit_b);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  /* twice() from unit 2, each unit's own helper and priv, one
   * shared_count. */
  run_out(1, 10, "kA", 11, res, 4);
  ck_assert_uint_eq(res[0], 42);
  ck_assert_uint_eq(res[1], 1);
  ck_assert_uint_eq(res[2], 1000);
  ck_assert_uint_eq(res[3], 10);
  run_out(1, 10, "kB", 12, res, 3);
  ck_assert_uint_eq(res[0], 2);
  ck_assert_uint_eq(res[1], 2000);
  ck_assert_uint_eq(res[2], 11);
  /* The variable is the definition's: a copy to it reaches both units. */
  ck_assert_int_eq(ops->module_get_global(be, 10, "shared_count", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 4);
  ck_assert_int_eq(ops->memcpy_dtoh(be, res, g, 4, 0), CUDA_SUCCESS);
  ck_assert_uint_eq(res[0], 11);
  res[0] = 500;
  ck_assert_int_eq(ops->memcpy_htod(be, g, res, 4, 0), CUDA_SUCCESS);
  run_out(1, 10, "kA", 13, res, 4);
  ck_assert_uint_eq(res[3], 500);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_SUCCESS);
  ck_assert_uint_eq(used(1), 0);

  /* A first fatbin with PTX is the whole program: the fatbins after it
   * (here the same unit again, which linked would define everything
   * twice) are not linked in. */
  b.n = 0;
  img_ptx(&b, unit_b);
  img_ptx(&b, unit_b);
  ck_assert_msg(load_img(1, 30, &b) == CUDA_SUCCESS, "%s", msg);
  run_out(1, 30, "kB", 31, res, 3);
  ck_assert_uint_eq(res[2], 10);
  ck_assert_int_eq(ops->module_unload(be, 30), CUDA_SUCCESS);

  /* The order of the units does not matter; a unit may declare a kernel
   * that a later one defines. */
  img_rdc(&b);
  img_ptx(&b, UNIT_HDR ".extern .entry kB(.param .u64 kB_out);\n");
  img_ptx(&b, unit_b);
  img_ptx(&b, unit_a);
  ck_assert_msg(load_img(1, 20, &b) == CUDA_SUCCESS, "%s", msg);
  run_out(1, 20, "kA", 21, res, 4);
  ck_assert_uint_eq(res[0], 42);
  ck_assert_uint_eq(res[1], 1);
  ck_assert_uint_eq(res[2], 1000);
  ck_assert_uint_eq(res[3], 10);
  run_out(1, 20, "kB", 22, res, 3);
  ck_assert_uint_eq(res[2], 11);
  /* Its kernels, in the order of the units (the declaration is none). */
  {
    const char *name = NULL;
    ck_assert_int_eq(ops->module_kernel(be, 20, 0, &name), CUDA_SUCCESS);
    ck_assert_str_eq(name, "kB");
    ck_assert_int_eq(ops->module_kernel(be, 20, 1, &name), CUDA_SUCCESS);
    ck_assert_str_eq(name, "kA");
    ck_assert_int_eq(ops->module_kernel(be, 20, 2, &name),
                     CUDA_ERROR_NOT_FOUND);
    ck_assert_int_eq(ops->module_kernel(be, 99, 0, &name),
                     CUDA_ERROR_INVALID_HANDLE);
  }
  free(b.p);
}
END_TEST

/* Unit |i| of the weak-linkage program: a .weak (or, with |strong|,
 * .visible) pick() returning |v|, a .weak counter wv, and kernel k<i>
 * writing pick() and wv + 1 (and storing wv + 1). */
static char *weak_unit(int i, int v, bool strong) {
  char *t = NULL;
  ck_assert_int_ge(
      asprintf(&t,
               UNIT_HDR
               ".weak .global .align 4 .u32 wv = 5;\n"
               "%s .func (.param .b32 p_r) pick()\n"
               "{\n"
               "  st.param.u32 [p_r], %d;\n"
               "  ret;\n"
               "}\n"
               ".visible .entry k%d(.param .u64 out)\n"
               "{\n"
               "  .reg .b32 %%r<4>;\n"
               "  .reg .b64 %%rd<2>;\n"
               "  ld.param.u64 %%rd1, [out];\n"
               "  {\n"
               "  .param .b32 r0;\n"
               "  call.uni (r0), pick;\n"
               "  ld.param.u32 %%r1, [r0];\n"
               "  }\n"
               "  ld.global.u32 %%r2, [wv];\n"
               "  add.s32 %%r3, %%r2, 1;\n"
               "  st.global.u32 [wv], %%r3;\n"
               "  st.global.u32 [%%rd1], %%r1;\n"
               "  st.global.u32 [%%rd1+4], %%r3;\n"
               "  ret;\n"
               "}\n",
               strong ? ".visible" : ".weak", v, i),
      0);
  return t;
}

START_TEST(test_emu_module_link_weak) {
  struct img b = {NULL, 0};
  char *u1 = weak_unit(1, 1, false), *u2 = weak_unit(2, 2, false),
       *u3 = weak_unit(3, 3, true);
  uint32_t res[2];

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* Two .weak definitions: the first is kept, for both units; one wv. */
  img_rdc(&b);
  img_ptx(&b, u1);
  img_ptx(&b, u2);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  run_out(1, 10, "k1", 11, res, 2);
  ck_assert_uint_eq(res[0], 1);
  ck_assert_uint_eq(res[1], 6);
  run_out(1, 10, "k2", 12, res, 2);
  ck_assert_uint_eq(res[0], 1);
  ck_assert_uint_eq(res[1], 7);
  /* A .visible definition wins over .weak ones, wherever it is. */
  img_rdc(&b);
  img_ptx(&b, u1);
  img_ptx(&b, u3);
  img_ptx(&b, u2);
  ck_assert_msg(load_img(1, 20, &b) == CUDA_SUCCESS, "%s", msg);
  run_out(1, 20, "k1", 21, res, 2);
  ck_assert_uint_eq(res[0], 3);
  run_out(1, 20, "k2", 22, res, 2);
  ck_assert_uint_eq(res[0], 3);
  free(u1);
  free(u2);
  free(u3);
  free(b.p);
}
END_TEST

/* Unit |i| of a program whose units all instantiate one template kernel
 * (nvcc -rdc=true emits fill<int> as ".weak .entry _Z4fillIiEvPT_"): its
 * copy (|linkage| .weak, or .visible) writes |v|; own<i> is the unit's
 * own kernel. */
static char *tmpl_unit(int i, const char *linkage, int v) {
  char *t = NULL;
  ck_assert_int_ge(
      asprintf(&t,
               UNIT_HDR
               "%s .entry _Z4fillIiEvPT_(.param .u64 _Z4fillIiEvPT__param_0)\n"
               "{\n"
               "  .reg .b64 %%rd<2>;\n"
               "  ld.param.u64 %%rd1, [_Z4fillIiEvPT__param_0];\n"
               "  st.global.u32 [%%rd1], %d;\n"
               "  ret;\n"
               "}\n"
               ".visible .entry own%d(.param .u64 out)\n"
               "{\n"
               "  .reg .b64 %%rd<2>;\n"
               "  ld.param.u64 %%rd1, [out];\n"
               "  st.global.u32 [%%rd1], %d;\n"
               "  ret;\n"
               "}\n",
               linkage, v, i, 100 + i),
      0);
  return t;
}

/* The names module_kernel() lists for |mod|, joined by spaces. */
static void kernel_list(uint64_t mod, char *out, size_t outlen) {
  const char *name;
  size_t len = 0;
  uint32_t i;

  out[0] = 0;
  for (i = 0; ops->module_kernel(be, mod, i, &name) == CUDA_SUCCESS; i++) {
    len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? " " : "",
                            name);
    ck_assert_uint_lt(len, outlen);
  }
  ck_assert_int_eq(ops->module_kernel(be, mod, i, &name),
                   CUDA_ERROR_NOT_FOUND);
}

START_TEST(test_emu_module_link_template_kernel_once) {
  struct img b = {NULL, 0};
  char *u1 = tmpl_unit(1, ".weak", 1), *u2 = tmpl_unit(2, ".weak", 2),
       *u3 = tmpl_unit(3, ".visible", 3);
  char list[256];
  uint32_t res[1];

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* Both units instantiate it: one kernel, the first unit's copy, listed
   * where that copy is. */
  img_rdc(&b);
  img_ptx(&b, u1);
  img_ptx(&b, u2);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  kernel_list(10, list, sizeof(list));
  ck_assert_str_eq(list, "_Z4fillIiEvPT_ own1 own2");
  run_out(1, 10, "_Z4fillIiEvPT_", 11, res, 1);
  ck_assert_uint_eq(res[0], 1);
  run_out(1, 10, "own2", 12, res, 1);
  ck_assert_uint_eq(res[0], 102);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_SUCCESS);
  /* A .visible definition wins wherever it is: the list has it in its
   * place, and the name finds it, not the .weak copy before it. */
  img_rdc(&b);
  img_ptx(&b, u1);
  img_ptx(&b, u3);
  img_ptx(&b, u2);
  ck_assert_msg(load_img(1, 20, &b) == CUDA_SUCCESS, "%s", msg);
  kernel_list(20, list, sizeof(list));
  ck_assert_str_eq(list, "own1 _Z4fillIiEvPT_ own3 own2");
  run_out(1, 20, "_Z4fillIiEvPT_", 21, res, 1);
  ck_assert_uint_eq(res[0], 3);
  ck_assert_int_eq(ops->module_unload(be, 20), CUDA_SUCCESS);
  ck_assert_uint_eq(used(1), 0);
  free(u1);
  free(u2);
  free(u3);
  free(b.p);
}
END_TEST

START_TEST(test_emu_module_link_errors) {
  struct img b = {NULL, 0};
  char *bad_sig = NULL;
  static const char uses_var[] =
      UNIT_HDR ".extern .global .align 4 .u32 nowhere;\n"
      ".visible .entry kv(.param .u64 o)\n{\n  .reg .b32 %r<2>;\n"
      "  ld.global.u32 %r1, [nowhere];\n  ret;\n}\n";
  static const char declares_only[] =
      UNIT_HDR ".extern .global .align 4 .u32 unused_var;\n"
      ".extern .func (.param .b32 r) unused_fn(.param .b32 x);\n"
      ".visible .entry kd()\n{\n  ret;\n}\n";
  static const char bad_line[] =
      UNIT_HDR "\n.visible .entry kx()\n{\n  bogus.op %r1;\n}\n";
  static const char var_twice[] =
      UNIT_HDR ".visible .global .align 4 .u32 shared_count;\n"
               ".visible .global .align 4 .u32 twice;\n";

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* Alone, unit 1 cannot resolve twice(). */
  img_ptx(&b, unit_a);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_NOT_FOUND);
  ck_assert_msg(strstr(msg, "unresolved external variable 'shared_count'") ||
                    strstr(msg, "unresolved external function 'twice'"),
                "%s", msg);
  /* Nor with a unit that does not define it either. */
  img_rdc(&b);
  img_ptx(&b, unit_a);
  img_ptx(&b, declares_only);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_NOT_FOUND);
  ck_assert_msg(strstr(msg, "unresolved external") && strstr(msg, "unit 1"),
                "%s", msg);
  /* A variable used and defined nowhere. */
  img_rdc(&b);
  img_ptx(&b, uses_var);
  img_ptx(&b, unit_b);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_NOT_FOUND);
  ck_assert_msg(strstr(msg, "unresolved external variable 'nowhere'"), "%s",
                msg);
  /* Declared and never used: nothing to resolve. */
  img_rdc(&b);
  img_ptx(&b, declares_only);
  img_ptx(&b, unit_b);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_SUCCESS);
  /* Two .visible definitions of twice(). */
  img_rdc(&b);
  img_ptx(&b, unit_a);
  img_ptx(&b, unit_b);
  img_ptx(&b, unit_b);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_INVALID_PTX);
  ck_assert_msg(strstr(msg, "is defined in unit 2 and again in unit 3") &&
                    strstr(msg, "duplicate"),
                "%s", msg);
  /* A declaration that does not match the definition. */
  bad_sig = strdup(unit_b);
  ck_assert_ptr_nonnull(bad_sig);
  {
    char *p = strstr(bad_sig, "twice(.param .b32 t_x)");
    ck_assert_ptr_nonnull(p);
    memcpy(p, "twice(.param .b64 t_x)", 22);
    p = strstr(bad_sig, "ld.param.u32 %r1, [t_x]");
    ck_assert_ptr_nonnull(p);
  }
  img_rdc(&b);
  img_ptx(&b, unit_a);
  img_ptx(&b, bad_sig);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_INVALID_PTX);
  ck_assert_msg(strstr(msg, "'twice' is declared in unit 1 with other "
                            "parameters than its definition in unit 2"),
                "%s", msg);
  /* A function in one unit, a variable in another. */
  img_rdc(&b);
  img_ptx(&b, unit_a);
  img_ptx(&b, var_twice);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_INVALID_PTX);
  ck_assert_msg(strstr(msg, "'twice' is a variable"), "%s", msg);
  /* A parse error names the unit and its own line. */
  img_rdc(&b);
  img_ptx(&b, unit_b);
  img_ptx(&b, bad_line);
  ck_assert_int_ne(load_img(1, 10, &b), CUDA_SUCCESS);
  ck_assert_msg(strstr(msg, "unit 2, line 7") != NULL, "%s", msg);
  ck_assert_uint_eq(used(1), 0);
  free(bad_sig);
  free(b.p);
}
END_TEST

START_TEST(test_emu_module_link_machine_code) {
  struct img b = {NULL, 0};

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* What nvcc's device-link step makes for a program without -rdc: a
   * cubin that defines nothing, no PTX. An empty module. */
  img_cubin(&b, false);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  ck_assert_int_eq(ops->module_get_function(be, 10, "kA", 11, &fd),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_SUCCESS);
  /* A cubin that defines something, without PTX: the device cannot run
   * it. */
  b.n = 0;
  img_cubin(&b, true);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_NO_BINARY_FOR_GPU);
  ck_assert_msg(strstr(msg, "needs PTX"), "%s", msg);
  /* An object (a fatbin after the first) with machine code only, beside
   * one with PTX. */
  img_rdc(&b);
  img_ptx(&b, unit_b);
  img_cubin(&b, true);
  ck_assert_int_eq(load_img(1, 10, &b), CUDA_ERROR_NO_BINARY_FOR_GPU);
  ck_assert_msg(strstr(msg, "fatbin 3") && strstr(msg, "needs PTX"), "%s",
                msg);
  /* An empty cubin after a unit is nothing to run either way. */
  img_rdc(&b);
  img_ptx(&b, unit_b);
  img_cubin(&b, false);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  /* unit_b's two variables, 512 bytes of arena each. */
  ck_assert_uint_eq(used(1), 1024);
  free(b.p);
}
END_TEST

/* ---- images nvcc built -------------------------------------------------- */

/* Loads the image in |var| into |ctx| as |mod|; returns the CUresult. */
static int load_var(uint64_t ctx, uint64_t mod, const char *var) {
  struct blob b = blob_from_env(var);
  int r = ops->module_load(be, ctx, mod, b.data, b.len, msg, sizeof(msg));
  free(b.data);
  return r;
}

/* Runs vecAdd of module |mod| (function id |fn|) in |ctx| on n = 1000. */
static void check_vecadd(uint64_t ctx, uint64_t mod, uint64_t fn) {
  enum { N = 1000 };
  static float a[N], b[N], c[N];
  uint64_t da, db, dc;
  struct {
    uint64_t a, b, c;
    int32_t n;
    int32_t pad;
  } p;
  struct gp_launch_desc l;
  int i;

  ck_assert_int_eq(ops->module_get_function(be, mod, "vecAdd", fn, &fd),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(fd.nparams, 4);
  ck_assert_uint_eq(fd.params[3].offset, 24);
  ck_assert_uint_eq(fd.params[3].size, 4);
  ck_assert_uint_eq(fd.params_size, 28);
  for (i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)i;
  }
  ck_assert_int_eq(ops->mem_alloc(be, ctx, sizeof(a), &da), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, ctx, sizeof(b), &db), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, ctx, sizeof(c), &dc), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_htod(be, da, a, sizeof(a), 0), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_htod(be, db, b, sizeof(b), 0), CUDA_SUCCESS);
  p.a = da;
  p.b = db;
  p.c = dc;
  p.n = N;
  l = launch_desc(ctx, fn, (N + 255) / 256, 256, &p, 28);
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, c, dc, sizeof(c), 0), CUDA_SUCCESS);
  for (i = 0; i < N; i++)
    ck_assert_float_eq(c[i], 1.5f * (float)i);
}

/* __CUDA_ARCH__ of the PTX that module |mod| runs (its archOf kernel). */
static int arch_of(uint64_t ctx, uint64_t mod, uint64_t fn) {
  uint64_t d;
  int arch = 0;
  struct gp_launch_desc l;

  ck_assert_int_eq(ops->module_get_function(be, mod, "archOf", fn, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, ctx, 4, &d), CUDA_SUCCESS);
  l = launch_desc(ctx, fn, 1, 1, &d, sizeof(d));
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &arch, d, 4, 0), CUDA_SUCCESS);
  return arch;
}

START_TEST(test_emu_module_nvcc_ptx) {
  enum { N = 600 };
  static float out[N];
  uint64_t d, g, size;
  int32_t counter = -1;
  float tab[3], scale[4];
  struct {
    uint64_t out;
    int32_t n;
  } p;
  struct gp_launch_desc l;
  int i;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_msg(load_var(1, 10, "GP_TEST_EMU_PTX") == CUDA_SUCCESS, "%s",
                msg);
  check_vecadd(1, 10, 11);

  /* Module variables: initialisers, a kernel's atomics, host copies. */
  ck_assert_int_eq(ops->module_get_global(be, 10, "counter", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 4);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &counter, g, 4, 0), CUDA_SUCCESS);
  ck_assert_int_eq(counter, 0);
  ck_assert_int_eq(ops->module_get_global(be, 10, "table", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 1024);
  ck_assert_int_eq(ops->memcpy_dtoh(be, tab, g, sizeof(tab), 0),
                   CUDA_SUCCESS);
  ck_assert_float_eq(tab[2], 3.0f);
  ck_assert_int_eq(ops->module_get_global(be, 10, "scale", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 16);
  for (i = 0; i < 4; i++)
    scale[i] = (float)(i + 1);
  ck_assert_int_eq(ops->memcpy_htod(be, g, scale, sizeof(scale), 0),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_free(be, g), CUDA_ERROR_INVALID_VALUE);

  ck_assert_int_eq(ops->module_get_function(be, 10, "useGlobals", 12, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(fd.const_size_bytes, 16);
  ck_assert_int_eq(fd.ptx_version, 75); /* .target sm_75, not .version */
  ck_assert_int_eq(fd.binary_version, 75);
  ck_assert_int_eq(ops->mem_alloc(be, 1, sizeof(out), &d), CUDA_SUCCESS);
  p.out = d;
  p.n = N;
  l = launch_desc(1, 12, 3, 256, &p, 12);
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, d, sizeof(out), 0),
                   CUDA_SUCCESS);
  for (i = 0; i < N; i++) {
    float t = (i & 255) < 3 ? (float)((i & 255) + 1) : 0.0f;
    ck_assert_float_eq(out[i], (float)((i & 3) + 1) * t);
  }
  ck_assert_int_eq(ops->module_get_global(be, 10, "counter", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, &counter, g, 4, 0), CUDA_SUCCESS);
  ck_assert_int_eq(counter, N);

  /* __launch_bounds__(64) and static shared memory. */
  ck_assert_int_eq(ops->module_get_function(be, 10, "bounded", 13, &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(fd.max_threads_per_block, 64);
  ck_assert_int_eq(fd.shared_size_bytes, 512);
  l = launch_desc(1, 13, 1, 65, &d, 8);
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);
  l.block[0] = 64;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  l.shared_mem = 65536 - 512;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  l.shared_mem++;
  ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_INVALID_VALUE);

  /* Out of bounds: an illegal address, and the context has failed. */
  {
    struct {
      uint64_t p;
      int64_t off;
    } w = {d, N - 1};
    ck_assert_int_eq(ops->module_get_function(be, 10, "writeAt", 14, &fd),
                     CUDA_SUCCESS);
    l = launch_desc(1, 14, 1, 1, &w, sizeof(w));
    ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
    w.off = 1u << 20;
    ck_assert_int_eq(ops->launch(be, &l), CUDA_ERROR_ILLEGAL_ADDRESS);
    ck_assert_int_eq(ops->ctx_synchronize(be, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
  }
}
END_TEST

START_TEST(test_emu_module_nvcc_fatbins) {
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* nvcc's default (sm_75 code and compute_75 PTX), compressed. */
  ck_assert_msg(load_var(1, 10, "GP_TEST_EMU_FATBIN") == CUDA_SUCCESS, "%s",
                msg);
  check_vecadd(1, 10, 11);
  ck_assert_int_eq(arch_of(1, 10, 12), 750);
  /* compute_75 and compute_90 PTX: the device's compute_75 runs. */
  ck_assert_msg(load_var(1, 20, "GP_TEST_EMU_MULTI") == CUDA_SUCCESS, "%s",
                msg);
  ck_assert_int_eq(arch_of(1, 20, 21), 750);
  /* Only PTX newer than the device: the engine runs it. */
  ck_assert_msg(load_var(1, 30, "GP_TEST_EMU_PTX90") == CUDA_SUCCESS, "%s",
                msg);
  ck_assert_int_eq(arch_of(1, 30, 31), 900);
  check_vecadd(1, 30, 32);
}
END_TEST

START_TEST(test_emu_module_nvcc_machine_code_only) {
  uint64_t before;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  before = used(1);
  ck_assert_int_eq(load_var(1, 10, "GP_TEST_EMU_SMONLY"),
                   CUDA_ERROR_NO_BINARY_FOR_GPU);
  ck_assert_msg(strstr(msg, "needs PTX") != NULL &&
                    strstr(msg, "arch=compute_75,code=compute_75") != NULL,
                "%s", msg);
  ck_assert_int_eq(load_var(1, 10, "GP_TEST_EMU_CUBIN"),
                   CUDA_ERROR_NO_BINARY_FOR_GPU);
  ck_assert_msg(strstr(msg, "needs PTX") != NULL, "%s", msg);
  ck_assert_uint_eq(used(1), before);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_ERROR_INVALID_HANDLE);
}
END_TEST

START_TEST(test_emu_module_nvcc_printf) {
  const void *data;
  size_t len, total, want;
  uint64_t dropped;
  int32_t x = 7;
  int blk, t;
  char line[64];
  struct gp_launch_desc l;
  char *text;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  ck_assert_msg(load_var(1, 10, "GP_TEST_EMU_PRINTF") == CUDA_SUCCESS, "%s",
                msg);
  ck_assert_int_eq(ops->module_get_function(be, 10, "hello", 11, &fd),
                   CUDA_SUCCESS);
  l = launch_desc(1, 11, 2, 2, &x, sizeof(x));
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ops->output_peek(be, &data, &len, &dropped);
  ck_assert_uint_eq(dropped, 0);
  text = strndup(data, len);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "hello 7 from block 0 thread 0\n") &&
                    strstr(text, "hello 7 from block 0 thread 1\n") &&
                    strstr(text, "hello 7 from block 1 thread 0\n") &&
                    strstr(text, "hello 7 from block 1 thread 1\n"),
                "%s", text);
  ck_assert_uint_eq(len, 4 * strlen("hello 7 from block 0 thread 0\n"));
  free(text);
  ops->output_consumed(be);
  ops->output_peek(be, &data, &len, &dropped);
  ck_assert_uint_eq(len, 0);

  /* More than the 1 MiB buffer (64 x 1024 lines of 30 to 35 bytes): what
   * does not fit is counted, in whole lines. */
  l = launch_desc(1, 11, 64, 1024, &x, sizeof(x));
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ops->output_peek(be, &data, &len, &dropped);
  total = len + dropped;
  ck_assert_uint_le(len, 1u << 20);
  ck_assert_uint_gt(len, (1u << 20) - 64);
  ck_assert_uint_gt(dropped, 0);
  ck_assert_uint_eq(((const char *)data)[len - 1], '\n');
  /* Every byte of every line is kept or counted. */
  want = 0;
  for (blk = 0; blk < 64; blk++)
    for (t = 0; t < 1024; t++)
      want += (size_t)snprintf(line, sizeof(line),
                               "hello 7 from block %d thread %d\n", blk, t);
  ck_assert_uint_eq(total, want);
  ops->output_consumed(be);
  ops->output_peek(be, &data, &len, &dropped);
  ck_assert_uint_eq(len, 0);
  ck_assert_uint_eq(dropped, 0);
}
END_TEST

/* The image of a -rdc=true program as the client sends it: the device-link
 * output, then each object's fatbin, at 8-byte boundaries. */
static void rdc_image(struct img *b, bool with_b) {
  const char *vars[] = {"GP_TEST_EMU_RDC_DLINK", "GP_TEST_EMU_RDC_A",
                        "GP_TEST_EMU_RDC_B"};
  for (int i = 0; i < (with_b ? 3 : 2); i++) {
    struct blob f = blob_from_env(vars[i]);
    img_zero(b, (8 - b->n % 8) % 8);
    img_put(b, f.data, f.len);
    free(f.data);
  }
}

START_TEST(test_emu_module_nvcc_rdc) {
  enum { N = 300 };
  static float in[N], out[N];
  struct img b = {NULL, 0};
  uint64_t din, dout, dcnt, g, size;
  int32_t cnt[2];
  struct {
    uint64_t out, in;
    int32_t n;
  } p;
  struct gp_launch_desc l;
  int i;

  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  rdc_image(&b, true);
  ck_assert_msg(load_img(1, 10, &b) == CUDA_SUCCESS, "%s", msg);
  ck_assert_int_eq(ops->module_get_function(be, 10, "_Z9lib_applyPfPKfi", 11,
                                            &fd),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(fd.params_size, 20);
  for (i = 0; i < N; i++)
    in[i] = (float)i * 0.25f;
  ck_assert_int_eq(ops->mem_alloc(be, 1, sizeof(in), &din), CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, sizeof(out), &dout), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_htod(be, din, in, sizeof(in), 0),
                   CUDA_SUCCESS);
  p.out = dout;
  p.in = din;
  p.n = N;
  l = launch_desc(1, 11, (N + 127) / 128, 128, &p, 20);
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, out, dout, sizeof(out), 0),
                   CUDA_SUCCESS);
  for (i = 0; i < N; i++)
    ck_assert_float_eq(out[i], in[i] * 3.0f + 1.0f + (float)(i % 3) +
                                   (float)(2 * i));
  /* The other unit's kernel sees the hits; its static function is its
   * own. */
  ck_assert_int_eq(ops->module_get_function(be, 10, "_Z9lib_countPi", 12,
                                            &fd),
                   CUDA_SUCCESS);
  ck_assert_int_eq(ops->mem_alloc(be, 1, sizeof(cnt), &dcnt), CUDA_SUCCESS);
  l = launch_desc(1, 12, 1, 1, &dcnt, sizeof(dcnt));
  ck_assert_int_eq(ops->launch(be, &l), CUDA_SUCCESS);
  ck_assert_int_eq(ops->memcpy_dtoh(be, cnt, dcnt, sizeof(cnt), 0),
                   CUDA_SUCCESS);
  ck_assert_int_eq(cnt[0], N);
  ck_assert_int_eq(cnt[1], 110);
  ck_assert_int_eq(ops->module_get_global(be, 10, "lib_hits", &g, &size),
                   CUDA_SUCCESS);
  ck_assert_uint_eq(size, 4);
  ck_assert_int_eq(ops->memcpy_dtoh(be, cnt, g, 4, 0), CUDA_SUCCESS);
  ck_assert_int_eq(cnt[0], N);
  free(b.p);

  /* Without lib_rdc_b's fatbin, lib_scale() is defined nowhere. */
  b.p = NULL;
  b.n = 0;
  rdc_image(&b, false);
  ck_assert_int_eq(load_img(1, 20, &b), CUDA_ERROR_NOT_FOUND);
  ck_assert_msg(strstr(msg, "_Z9lib_scalef"), "%s", msg);
  free(b.p);
}
END_TEST

START_TEST(test_emu_module_nvcc_plain_dlink) {
  ck_assert_int_eq(ops->ctx_create(be, 1, 0, 0), CUDA_SUCCESS);
  /* nvcc's device-link fatbin of a program without -rdc: loads, empty. */
  ck_assert_msg(load_var(1, 10, "GP_TEST_EMU_PLAIN_DLINK") == CUDA_SUCCESS,
                "%s", msg);
  ck_assert_int_eq(ops->module_get_function(be, 10, "_Z6vecAddPKfS0_Pfi", 11,
                                            &fd),
                   CUDA_ERROR_NOT_FOUND);
  ck_assert_int_eq(ops->module_unload(be, 10), CUDA_SUCCESS);
}
END_TEST

static Suite *emu_module_suite(bool nvcc, int *skipped) {
  Suite *s = suite_create("emu_module");
  TCase *tc = tcase_create("inline");
  TCase *nv = tcase_create("nvcc");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_emu_module_load_errors);
  tcase_add_test(tc, test_emu_module_function_and_globals);
  tcase_add_test(tc, test_emu_module_launch_config);
  tcase_add_test(tc, test_emu_module_fault_is_sticky);
  tcase_add_test(tc, test_emu_module_oob_in_own_context);
  tcase_add_test(tc, test_emu_module_unload);
  tcase_add_test(tc, test_emu_module_ctx_destroy_unloads);
  tcase_add_test(tc, test_emu_module_cancel);
  tcase_add_test(tc, test_emu_module_output_empty);
  tcase_add_test(tc, test_emu_module_link_units);
  tcase_add_test(tc, test_emu_module_link_weak);
  tcase_add_test(tc, test_emu_module_link_template_kernel_once);
  tcase_add_test(tc, test_emu_module_link_errors);
  tcase_add_test(tc, test_emu_module_link_machine_code);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(nv, setup, teardown);
  tcase_add_test(nv, test_emu_module_nvcc_ptx);
  tcase_add_test(nv, test_emu_module_nvcc_fatbins);
  tcase_add_test(nv, test_emu_module_nvcc_machine_code_only);
  tcase_add_test(nv, test_emu_module_nvcc_printf);
  tcase_add_test(nv, test_emu_module_nvcc_rdc);
  tcase_add_test(nv, test_emu_module_nvcc_plain_dlink);
  tcase_set_timeout(nv, 60);
  if (nvcc)
    suite_add_tcase(s, nv);
  else
    *skipped = 6;
  return s;
}

int main(void) {
  const char *nvcc = getenv("GP_TEST_NVCC");
  int skipped = 0, failed;
  SRunner *sr;

  if (nvcc == NULL) {
    fprintf(stderr, "test_emu_module: GP_TEST_NVCC is not set; run it with "
                    "`meson test unit_emu_module`, which sets it and the "
                    "paths of the nvcc-built images\n");
    return EXIT_FAILURE;
  }
  /* The backend's log lines (module loads, kernel faults) help read a
   * failure. */
  gp__log_set_level(GP_LOG_DEBUG);
  sr = srunner_create(emu_module_suite(strcmp(nvcc, "1") == 0, &skipped));
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0)
    return EXIT_FAILURE;
  if (skipped != 0) {
    printf("SKIP: nvcc was not found at build time, so the %d cases on "
           "nvcc-built images did not run; the inline cases passed\n",
           skipped);
    return 77;
  }
  return EXIT_SUCCESS;
}
