/* Unit tests of the PTX engine (server/backend/emu/ptx_*.c): the parser on
 * inline PTX, single instructions with edge values, and the kernels of
 * tests/cuda/ptx_kernels.cu as nvcc compiles them (GP_TEST_PTX_KERNELS,
 * set by tests/unit/meson.build), compared with a CPU reference.
 *
 * Device memory here is host memory: the lookup callback knows the test's
 * buffers by their host address, plus one buffer mapped at a fake device
 * address to check that translation goes through the callback. Without
 * nvcc the inline cases run and the program exits 77 (skipped). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/emu/ptx.h"

/* ---- helpers -------------------------------------------------------- */

static char errbuf[512];

/* The test's "allocations": device base -> host buffer. */
struct region {
  uint64_t base, size;
  void *host;
};
static struct region regions[16];
static unsigned nregions;

static int lookup(void *opaque, uint64_t addr, uint64_t *base,
                  uint64_t *size, void **host) {
  (void)opaque;
  for (unsigned i = 0; i < nregions; i++)
    if (addr - regions[i].base < regions[i].size) {
      *base = regions[i].base;
      *size = regions[i].size;
      *host = regions[i].host;
      return 0;
    }
  return -1;
}

static const struct ptx_mem_ops mem_ops = {lookup, NULL};

/* A zeroed buffer of |size| bytes visible to kernels at its host address. */
static void *dev_alloc(size_t size) {
  void *p = calloc(1, size);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_lt(nregions, 16);
  regions[nregions].base = (uint64_t)(uintptr_t)p;
  regions[nregions].size = size;
  regions[nregions].host = p;
  nregions++;
  return p;
}

static uint64_t dptr(const void *p) {
  return (uint64_t)(uintptr_t)p;
}

static void dev_reset(void) {
  for (unsigned i = 0; i < nregions; i++)
    if (regions[i].base == dptr(regions[i].host))
      free(regions[i].host);
  nregions = 0;
}

static struct ptx_module *load_ok(const char *text) {
  struct ptx_module *m = NULL;
  int rc = ptx_module_load(text, strlen(text), &m, errbuf, sizeof(errbuf));
  ck_assert_msg(rc == PTX_OK, "load failed (%d): %s", rc, errbuf);
  ck_assert_ptr_nonnull(m);
  return m;
}

/* Loading |text| fails with |code| and a message containing |needle|. */
static void load_fails(const char *text, int code, const char *needle) {
  struct ptx_module *m = (struct ptx_module *)1;
  int rc = ptx_module_load(text, strlen(text), &m, errbuf, sizeof(errbuf));
  ck_assert_msg(rc == code, "expected %d, got %d: %s", code, rc, errbuf);
  ck_assert_ptr_null(m);
  ck_assert_msg(strstr(errbuf, needle) != NULL, "'%s' not in '%s'", needle,
                errbuf);
}

/* Packs the parameters of |k| from |vals| (|n| values, each of the
 * parameter's size) into |buf|. */
static size_t pack(const struct ptx_kernel *k, uint8_t *buf,
                   const void *const *vals, unsigned n) {
  ck_assert_uint_eq(ptx_kernel_param_count(k), n);
  memset(buf, 0, 256);
  for (unsigned i = 0; i < n; i++) {
    struct ptx_param_info pi;
    ck_assert_int_eq(ptx_kernel_param(k, i, &pi), PTX_OK);
    ck_assert_uint_le(pi.offset + pi.size, 256);
    memcpy(buf + pi.offset, vals[i], pi.size);
  }
  return ptx_kernel_params_size(k);
}

static int launch(const struct ptx_kernel *k, unsigned gx, unsigned gy,
                  unsigned bx, unsigned by, uint32_t dyn, const void *params,
                  size_t psize, unsigned threads) {
  struct ptx_launch l = {
    .grid = {gx, gy, 1},
    .block = {bx, by, 1},
    .dyn_shared = dyn,
    .params = params,
    .params_size = psize,
    .mem = &mem_ops,
    .max_threads = threads,
  };
  return ptx_launch(k, &l, errbuf, sizeof(errbuf));
}

#define HDR ".version 9.0\n.target sm_75\n.address_size 64\n"

/* A one-kernel module "t(out, in)" whose body sees %rd0 = out, %rd1 = in,
 * %r0 = %tid.x, and declares %p<8> %rs<8> %r<32> %f<32> %rd<32> %fd<32>. */
static char *body_ptx(const char *body) {
  static const char pre[] =
      HDR ".visible .entry t(.param .u64 t_out, .param .u64 t_in)\n{\n"
      ".reg .pred %p<8>;\n.reg .b16 %rs<8>;\n.reg .b32 %r<32>;\n"
      ".reg .f32 %f<32>;\n.reg .b64 %rd<32>;\n.reg .f64 %fd<32>;\n"
      "ld.param.u64 %rd0, [t_out];\nld.param.u64 %rd1, [t_in];\n"
      "mov.u32 %r0, %tid.x;\n";
  static const char post[] = "\nret;\n}\n";
  size_t n = strlen(pre) + strlen(body) + strlen(post) + 1;
  char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  snprintf(s, n, "%s%s%s", pre, body, post);
  return s;
}

/* Runs |body| with |threads| threads in one block; |in| (16 u64) is the
 * input and |out| (256 u64) the output. Returns the launch status. */
static int run_body(const char *body, const uint64_t *in, uint64_t *out,
                    unsigned threads) {
  char *text = body_ptx(body);
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "t");
  uint64_t *din = dev_alloc(16 * 8), *dout = dev_alloc(256 * 8);
  uint64_t params[2] = {dptr(dout), dptr(din)};
  int rc;

  ck_assert_ptr_nonnull(k);
  if (in)
    memcpy(din, in, 16 * 8);
  rc = launch(k, 1, 1, threads, 1, 0, params, sizeof(params), 1);
  memcpy(out, dout, 256 * 8);
  ptx_module_free(m);
  free(text);
  dev_reset();
  return rc;
}

static uint64_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bitsf(uint64_t v) {
  uint32_t u = (uint32_t)v;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static double bitsd(uint64_t v) {
  double d;
  memcpy(&d, &v, 8);
  return d;
}

/* ---- parser --------------------------------------------------------- */

START_TEST(test_ptx_parse_param_layout) {
  static const char text[] =
      HDR
      "// a comment\n/* a block\n comment */\n"
      ".visible .entry k(\n"
      "  .param .u32 k_param_0,\n"
      "  .param .align 8 .b8 k_param_1[40],\n"
      "  .param .u8 k_param_2,\n"
      "  .param .f64 k_param_3,\n"
      "  .param .u16 k_param_4,\n"
      "  .param .align 16 .b8 k_param_5[20],\n"
      "  .param .u64 .ptr .global .align 1 k_param_6\n"
      ")\n.maxntid 256, 1, 1\n{\n ret;\n}\n";
  static const struct ptx_param_info want[] = {
    {0, 4, 4}, {8, 40, 8}, {48, 1, 1}, {56, 8, 8}, {64, 2, 2},
    {80, 20, 16}, {104, 8, 8},
  };
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "k");
  struct ptx_param_info pi;

  ck_assert_ptr_nonnull(k);
  ck_assert_str_eq(ptx_kernel_name(k), "k");
  ck_assert_uint_eq(ptx_kernel_param_count(k), 7);
  for (unsigned i = 0; i < 7; i++) {
    ck_assert_int_eq(ptx_kernel_param(k, i, &pi), PTX_OK);
    ck_assert_uint_eq(pi.offset, want[i].offset);
    ck_assert_uint_eq(pi.size, want[i].size);
    ck_assert_uint_eq(pi.align, want[i].align);
  }
  ck_assert_int_eq(ptx_kernel_param(k, 7, &pi), PTX_E_INVALID);
  ck_assert_uint_eq(ptx_kernel_params_size(k), 112);
  ck_assert_uint_eq(ptx_kernel_max_threads(k), 256);
  {
    uint8_t params[112] = {0};
    ck_assert_int_eq(launch(k, 1, 1, 512, 1, 0, params, 112, 1),
                     PTX_E_CONFIG);
    ck_assert_int_eq(launch(k, 1, 1, 256, 1, 0, params, 112, 1), PTX_OK);
  }
  ck_assert_ptr_null(ptx_module_kernel(m, "nope"));
  ptx_module_free(m);
}
END_TEST

START_TEST(test_ptx_parse_operand_forms) {
  /* Every operand form in one kernel: registers and ranges, special
   * registers, immediates (decimal, hex, negative, hex floats), vectors,
   * memory with offsets, predicates and negated predicates, labels before
   * and after use, WARP_SZ, scoped registers, symbols. */
  static const char body[] =
      "mov.u32 %r1, 0x10;\n"                     /* 16 */
      "mov.u32 %r2, -3;\n"
      "mov.f32 %f1, 0f3F800000;\n"               /* 1.0f */
      "mov.f64 %fd1, 0d4000000000000000;\n"      /* 2.0 */
      "mov.u32 %r3, WARP_SZ;\n"
      "mov.u32 %r4, %ntid.x;\n"
      "{\n .reg .b32 %r1;\n mov.u32 %r1, 99;\n mov.u32 %r5, %r1;\n}\n"
      "mov.b64 %rd2, {%r1, %r2};\n"
      "mov.b64 {%r6, %r7}, %rd2;\n"
      "setp.eq.s32 %p1, %r1, 16;\n"
      "@!%p1 bra $L_bad;\n"
      "@%p1 bra $L_ok;\n"
      "$L_bad:\n mov.u32 %r8, 1;\n bra.uni $L_end;\n"
      "$L_ok:\n mov.u32 %r8, 2;\n"
      "$L_end:\n"
      "st.global.v2.u32 [%rd0+-0], {%r1, %r2};\n"
      "st.global.f32 [%rd0+8], %f1;\n"
      "st.global.f64 [%rd0+16], %fd1;\n"
      "st.global.u32 [%rd0+24], %r3;\n"
      "st.global.u32 [%rd0+28], %r4;\n"
      "st.global.u32 [%rd0+32], %r5;\n"
      "st.global.u32 [%rd0+36], %r1;\n"
      "st.global.u64 [%rd0+40], %rd2;\n"
      "st.global.v2.u32 [%rd0+48], {%r6, %r7};\n"
      "st.global.u32 [%rd0+56], %r8;\n"
      "ld.global.v4.u32 {%r9, %r10, _, %r12}, [%rd1];\n"
      "add.s64 %rd3, %rd0, 64;\n"
      "st.global.v4.u32 [%rd3], {%r9, %r10, 7, %r12};\n";
  uint64_t in[16] = {0x0000000200000001ull, 0x0000000400000003ull};
  uint64_t out[256];
  const uint32_t *o32 = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, in, out, 1), PTX_OK);
  ck_assert_uint_eq(o32[0], 16);
  ck_assert_uint_eq(o32[1], (uint32_t)-3);
  ck_assert_uint_eq(o32[2], 0x3F800000u);
  ck_assert(bitsd(out[2]) == 2.0);
  ck_assert_uint_eq(o32[6], 32);
  ck_assert_uint_eq(o32[7], 1);
  ck_assert_uint_eq(o32[8], 99);     /* the scoped %r1 */
  ck_assert_uint_eq(o32[9], 16);     /* the outer %r1 is untouched */
  ck_assert_uint_eq(out[5], 0xFFFFFFFD00000010ull);
  ck_assert_uint_eq(o32[12], 16);
  ck_assert_uint_eq(o32[13], (uint32_t)-3);
  ck_assert_uint_eq(o32[14], 2);
  ck_assert_uint_eq(o32[16], 1);
  ck_assert_uint_eq(o32[17], 2);
  ck_assert_uint_eq(o32[18], 7);
  ck_assert_uint_eq(o32[19], 4);
}
END_TEST

START_TEST(test_ptx_parse_errors_name_line_and_text) {
  /* Words that are no PTX at all are malformed PTX (CUDA_ERROR_INVALID_PTX),
   * not an unsupported feature. */
  load_fails(HDR "this is not ptx\n", PTX_E_PARSE,
             "line 4: expected a directive, found 'this'");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "frobnicate.u32 %r1, %r2;\nret;\n}\n",
             PTX_E_PARSE, "line 7: 'frobnicate.u32' is not a PTX instruction");
  /* Unsupported instructions are refused at load with the line and text. */
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "vabsdiff4.u32.u32.u32 %r1, %r1, %r2, %r2;\nret;\n}\n",
             PTX_E_UNSUPPORTED,
             "line 7: unsupported instruction 'vabsdiff4.u32.u32.u32");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b16 %rs<3>;\n"
                 "add.cc.u16 %rs1, %rs1, %rs2;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "'add.cc.u16 %rs1, %rs1, %rs2;': carry");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "mma.sync.aligned.m16n8k16 %r1, %r1, %r2;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "line 7: unsupported instruction 'mma");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "redux.sync.add.u32 %r1, %r2, -1;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "line 7: unsupported instruction 'redux");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b16 %h<3>;\n"
                 "min.xorsign.abs.f16 %h1, %h1, %h2;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "min.xorsign.abs.f16");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "bar.sync 16;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "barrier number above 15");
  load_fails(HDR ".extern .func (.param .b64 r) malloc(.param .b64 a);\n"
                 ".visible .entry k()\n{\n"
                 ".reg .b64 %rd<3>;\n{\n.param .b64 param0;\n"
                 "st.param.b64 [param0], %rd1;\n.param .b64 retval0;\n"
                 "call.uni (retval0), malloc, (param0);\n}\n"
                 "ret;\n}\n",
             PTX_E_UNSUPPORTED, "call of 'malloc', which has no body here "
             "(device malloc/free are not implemented)");
  /* A function named vprintf with another signature is no builtin. */
  load_fails(HDR ".extern .func (.param .b32 r) vprintf(.param .b64 a);\n"
                 ".visible .entry k()\n{\n"
                 ".reg .b64 %rd<3>;\n{\n.param .b64 param0;\n"
                 "st.param.b64 [param0], %rd1;\n.param .b32 retval0;\n"
                 "call.uni (retval0), vprintf, (param0);\n}\n"
                 "ret;\n}\n",
             PTX_E_UNSUPPORTED, "call of 'vprintf', which has no body");
  /* Malformed text. */
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<3>;\n"
                 "mov.u32 %r9, 1;\nret;\n}\n",
             PTX_E_PARSE, "undeclared register '%r9'");
  load_fails(HDR ".visible .entry k()\n{\nbra $L_nowhere;\n}\n",
             PTX_E_PARSE, "unknown label");
  load_fails(HDR ".visible .entry k()\n{\nret;\n", PTX_E_PARSE, "missing '}'");
  load_fails(HDR ".visible .entry k()\n{\nret\n}\n", PTX_E_PARSE, "line");
  load_fails(HDR "/* unterminated", PTX_E_PARSE, "unterminated comment");
  load_fails(HDR ".visible .entry k()\n{\n.reg .b32 %r<2>;\n"
                 "mov.b32 %r1, 0f3F80;\nret;\n}\n",
             PTX_E_PARSE, "malformed number");
  load_fails(".version 9.0\n.address_size 32\n", PTX_E_UNSUPPORTED,
             "address_size");
  load_fails(HDR ".visible .entry k()\n{\n.reg .f32 %f<2>;\n"
                 "add.f32 %f1, %f1, 1;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "integer literal 1 for a .f32 operand");
  {
    struct ptx_module *m;
    ck_assert_int_eq(ptx_module_load(NULL, 0, &m, errbuf, sizeof(errbuf)),
                     PTX_E_INVALID);
    ck_assert_int_eq(ptx_module_load("", PTX_MAX_TEXT + 1ull, &m, errbuf,
                                     sizeof(errbuf)),
                     PTX_E_INVALID);
  }
}
END_TEST

START_TEST(test_ptx_parse_module_variables) {
  /* Module-scope .global/.const with initialisers, a .func prototype and
   * definition, dynamic shared memory, static shared in the kernel. */
  static const char text[] =
      HDR
      ".global .align 4 .u32 counter = 5;\n"
      ".const .align 8 .f64 tab[3] = {0d3FF0000000000000, 2.5, -1};\n"
      ".global .align 1 .b8 bytes[4] = {1, 2, 3, 255};\n"
      ".extern .shared .align 16 .b8 dyn[];\n"
      ".func (.param .b32 f_ret) f(.param .b32 f_a);\n"
      ".func (.param .b32 f_ret) f(.param .b32 f_a)\n{\n"
      ".reg .b32 %r<2>;\nld.param.b32 %r1, [f_a];\n"
      "st.param.b32 [f_ret], %r1;\nret;\n}\n"
      ".visible .entry k(.param .u64 k_out)\n{\n"
      ".reg .b32 %r<8>;\n.reg .b64 %rd<8>;\n.reg .f64 %fd<4>;\n"
      ".shared .align 8 .b8 sh[24];\n"
      "ld.param.u64 %rd1, [k_out];\n"
      "ld.global.u32 %r1, [counter];\n"
      "add.s32 %r1, %r1, 1;\n"
      "st.global.u32 [counter], %r1;\n"
      "mov.u64 %rd2, tab;\n"
      "ld.const.f64 %fd1, [%rd2+8];\n"
      "ld.const.f64 %fd2, [tab+16];\n"
      "add.f64 %fd1, %fd1, %fd2;\n"
      "ld.global.u8 %r2, [bytes+3];\n"
      "mov.u32 %r3, dyn;\n"
      "mov.u32 %r4, sh;\n"
      "st.shared.u32 [%r3+4], %r2;\n"
      "ld.shared.u32 %r5, [%r3+4];\n"
      "st.global.f64 [%rd1], %fd1;\n"
      "st.global.u32 [%rd1+8], %r5;\n"
      "st.global.u32 [%rd1+12], %r3;\n"
      "st.global.u32 [%rd1+16], %r4;\n"
      "ret;\n}\n";
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "k");
  uint64_t addr = 0, size = 0, params[1];
  uint8_t *out = dev_alloc(64);
  uint32_t v;

  ck_assert_ptr_nonnull(k);
  ck_assert_ptr_null(ptx_module_kernel(m, "f")); /* a .func, not a kernel */
  ck_assert_int_eq(ptx_module_global(m, "counter", &addr, &size), PTX_OK);
  ck_assert_uint_eq(size, 4);
  memcpy(&v, (void *)(uintptr_t)addr, 4);
  ck_assert_uint_eq(v, 5);
  ck_assert_int_eq(ptx_module_global(m, "tab", &addr, &size), PTX_OK);
  ck_assert_uint_eq(size, 24);
  ck_assert_int_eq(ptx_module_global(m, "missing", &addr, &size),
                   PTX_E_NOT_FOUND);
  ck_assert_uint_eq(ptx_kernel_shared_size(k), 24);
  params[0] = dptr(out);
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 16, params, 8, 1), PTX_OK);
  ck_assert_int_eq(ptx_module_global(m, "counter", &addr, &size), PTX_OK);
  memcpy(&v, (void *)(uintptr_t)addr, 4);
  ck_assert_uint_eq(v, 6);
  {
    double d;
    uint32_t u[3];
    memcpy(&d, out, 8);
    memcpy(u, out + 8, 12);
    ck_assert(d == 1.5);
    ck_assert_uint_eq(u[0], 255);
    ck_assert_uint_eq(u[1], 32); /* dynamic shared after 24 static, 16-aligned */
    ck_assert_uint_eq(u[2], 0);
  }
  /* Dynamic shared memory beyond what the launch gave faults. */
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 4, params, 8, 1),
                   PTX_E_ILLEGAL_ADDRESS);
  ptx_module_free(m);
  dev_reset();
}
END_TEST

/* Loading mangled text never crashes, leaks or hangs: it loads or fails
 * with a message (run under ASan in build-ptx-asan). */
static void mutate_and_load(const char *text, size_t len, unsigned iters) {
  static const char alphabet[] = "{}[]()<>;:,.%@!-+|_ \n/*0123456789xfdXF"
                                 "abcdeuvsr$";
  char *buf = malloc(len + 1);
  unsigned s = 12345;

  ck_assert_ptr_nonnull(buf);
  for (unsigned it = 0; it < iters; it++) {
    struct ptx_module *m = NULL;
    size_t n = len;
    int rc;
    memcpy(buf, text, len);
    for (unsigned k = 0; k < 1 + it % 4; k++) {
      size_t pos;
      s = s * 1103515245u + 12345u;
      pos = (s >> 8) % (n ? n : 1);
      switch ((s >> 4) % 4) {
      case 0:
      case 1:
        buf[pos] = alphabet[(s >> 16) % (sizeof(alphabet) - 1)];
        break;
      case 2: /* delete a short range */
        if (n > pos + 8) {
          memmove(buf + pos, buf + pos + 8, n - pos - 8);
          n -= 8;
        }
        break;
      default:
        n = pos; /* truncate */
        break;
      }
    }
    buf[n] = 0;
    rc = ptx_module_load(buf, n, &m, errbuf, sizeof(errbuf));
    if (rc == PTX_OK)
      ptx_module_free(m);
    else
      ck_assert_msg(errbuf[0] != 0 && m == NULL, "rc %d without message", rc);
  }
  free(buf);
}

START_TEST(test_ptx_parse_survives_mutations) {
  static const char text[] =
      HDR
      ".global .align 4 .b8 tab[8] = {1, 2, 3, 4, 5, 6, 7, 8};\n"
      ".extern .shared .align 16 .b8 dyn[];\n"
      ".func (.param .b32 f_r) f(.param .b32 f_a)\n{\n.reg .b32 %r<3>;\n"
      "ld.param.b32 %r1, [f_a];\nst.param.b32 [f_r], %r1;\nret;\n}\n"
      ".visible .entry k(.param .u64 k_p, .param .align 8 .b8 k_s[16])\n"
      "{\n.reg .pred %p<3>;\n.reg .b32 %r<9>;\n.reg .b64 %rd<5>;\n"
      ".reg .f32 %f<3>;\n.shared .align 4 .b8 sh[64];\n"
      "ld.param.u64 %rd1, [k_p];\nld.param.v2.u32 {%r1, %r2}, [k_s+8];\n"
      "mov.u32 %r3, %tid.x;\nsetp.lt.u32 %p1|%p2, %r3, 16;\n"
      "@!%p1 bra $L_x;\n{\n.reg .b32 %r1;\nmov.u32 %r1, sh;\n}\n"
      "{\n.param .b32 a;\nst.param.b32 [a], %r3;\n.param .b32 r;\n"
      "call.uni (r), f, (a);\nld.param.b32 %r4, [r];\n}\n"
      "mov.f32 %f1, 0f3F800000;\n"
      "shfl.sync.down.b32 %r5|%p2, %r4, 1, 31, -1;\n"
      "atom.global.add.u32 %r6, [%rd1+4], %r5;\n"
      "$L_x:\nbar.sync 0;\nret;\n}\n";

  mutate_and_load(text, strlen(text), 3000);
}
END_TEST

/* ptx_global_ops that place variables at fake device addresses. */
static unsigned gops_live;

static int gops_alloc(void *opaque, uint64_t size, uint32_t align,
                      uint64_t *addr, void **host) {
  (void)opaque;
  ck_assert_uint_le(align, 4096);
  *host = calloc(1, size);
  ck_assert_ptr_nonnull(*host);
  *addr = 0x200000000ull + 0x10000ull * nregions;
  regions[nregions].base = *addr;
  regions[nregions].size = size;
  regions[nregions].host = *host;
  nregions++;
  gops_live++;
  return 0;
}

static void gops_release(void *opaque, uint64_t addr) {
  (void)opaque;
  for (unsigned i = 0; i < nregions; i++)
    if (regions[i].base == addr) {
      free(regions[i].host);
      regions[i].base = regions[i].size = 0;
      gops_live--;
    }
}

START_TEST(test_ptx_module_variables_in_device_memory) {
  static const char text[] =
      HDR
      ".global .align 4 .u32 counter = 5;\n"
      ".const .align 4 .u32 add[2] = {10, 20};\n"
      ".visible .entry k()\n{\n.reg .b32 %r<4>;\n.reg .b64 %rd<3>;\n"
      "mov.u64 %rd1, counter;\n"
      "ld.global.u32 %r1, [%rd1];\n"
      "ld.const.u32 %r2, [add+4];\n"
      "add.s32 %r1, %r1, %r2;\n"
      "st.u32 [%rd1], %r1;\n"              /* generic store */
      "ret;\n}\n";
  struct ptx_global_ops ops = {gops_alloc, gops_release, NULL};
  struct ptx_module *m = NULL;
  uint64_t addr, size;
  uint32_t v;

  ck_assert_int_eq(ptx_module_load_with(text, strlen(text), &ops, &m,
                                        errbuf, sizeof(errbuf)),
                   PTX_OK);
  ck_assert_uint_eq(gops_live, 2);
  ck_assert_int_eq(ptx_module_global(m, "counter", &addr, &size), PTX_OK);
  ck_assert_uint_eq(addr, 0x200000000ull); /* not a host address */
  ck_assert_int_eq(launch(ptx_module_kernel(m, "k"), 1, 1, 1, 1, 0, NULL, 0,
                          1),
                   PTX_OK);
  memcpy(&v, regions[0].host, 4);
  ck_assert_uint_eq(v, 25);
  ptx_module_free(m);
  ck_assert_uint_eq(gops_live, 0);
  nregions = 0;
}
END_TEST

/* ---- single instructions -------------------------------------------- */

START_TEST(test_ptx_int_arithmetic_edges) {
  static const char body[] =
      "ld.global.u32 %r1, [%rd1];\n"       /* 0x80000000 */
      "ld.global.u32 %r2, [%rd1+4];\n"     /* 0xffffffff (-1) */
      "ld.global.u32 %r3, [%rd1+8];\n"     /* 0 */
      "ld.global.u32 %r4, [%rd1+12];\n"    /* 7 */
      "ld.global.u64 %rd2, [%rd1+16];\n"   /* 0xffffffffffffffff */
      "ld.global.u64 %rd3, [%rd1+24];\n"   /* 3 */
      "div.s32 %r5, %r1, %r2;\n st.global.u32 [%rd0], %r5;\n"
      "rem.s32 %r5, %r1, %r2;\n st.global.u32 [%rd0+4], %r5;\n"
      "div.u32 %r5, %r4, %r3;\n st.global.u32 [%rd0+8], %r5;\n"
      "rem.u32 %r5, %r4, %r3;\n st.global.u32 [%rd0+12], %r5;\n"
      "div.s32 %r5, %r4, -2;\n st.global.u32 [%rd0+16], %r5;\n"
      "rem.s32 %r5, -7, 2;\n st.global.u32 [%rd0+20], %r5;\n"
      "shl.b32 %r5, %r4, 32;\n st.global.u32 [%rd0+24], %r5;\n"
      "shr.u32 %r5, %r1, 33;\n st.global.u32 [%rd0+28], %r5;\n"
      "shr.s32 %r5, %r1, 40;\n st.global.u32 [%rd0+32], %r5;\n"
      "shr.s32 %r5, %r1, 4;\n st.global.u32 [%rd0+36], %r5;\n"
      "mul.hi.u32 %r5, %r2, %r2;\n st.global.u32 [%rd0+40], %r5;\n"
      "mul.hi.s32 %r5, %r2, %r2;\n st.global.u32 [%rd0+44], %r5;\n"
      "mul.wide.s32 %rd4, %r2, %r4;\n st.global.u64 [%rd0+48], %rd4;\n"
      "mul.wide.u32 %rd4, %r2, %r4;\n st.global.u64 [%rd0+56], %rd4;\n"
      "mul.hi.u64 %rd4, %rd2, %rd3;\n st.global.u64 [%rd0+64], %rd4;\n"
      "mul.hi.s64 %rd4, %rd2, %rd3;\n st.global.u64 [%rd0+72], %rd4;\n"
      "mad.lo.s32 %r5, %r4, %r4, %r2;\n st.global.u32 [%rd0+80], %r5;\n"
      "min.s32 %r5, %r1, %r4;\n st.global.u32 [%rd0+84], %r5;\n"
      "min.u32 %r5, %r1, %r4;\n st.global.u32 [%rd0+88], %r5;\n"
      "max.s64 %rd4, %rd2, %rd3;\n st.global.u64 [%rd0+96], %rd4;\n"
      "abs.s32 %r5, %r1;\n st.global.u32 [%rd0+104], %r5;\n"
      "neg.s32 %r5, %r4;\n st.global.u32 [%rd0+108], %r5;\n"
      "not.b32 %r5, %r4;\n st.global.u32 [%rd0+112], %r5;\n"
      "xor.b32 %r5, %r4, 5;\n st.global.u32 [%rd0+116], %r5;\n"
      "div.u64 %rd4, %rd2, 0;\n st.global.u64 [%rd0+120], %rd4;\n"
      "add.s32 %r5, %r1, %r1;\n st.global.u32 [%rd0+128], %r5;\n"
      "sub.s64 %rd4, 0, %rd3;\n st.global.u64 [%rd0+136], %rd4;\n"
      "shr.s64 %rd4, %rd2, 64;\n st.global.u64 [%rd0+144], %rd4;\n";
  uint64_t in[16] = {0xffffffff80000000ull, 0x0000000700000000ull,
                     0xffffffffffffffffull, 3};
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, in, out, 1), PTX_OK);
  ck_assert_uint_eq(o[0], 0x80000000u);      /* INT_MIN / -1 wraps */
  ck_assert_uint_eq(o[1], 0);                /* INT_MIN % -1 */
  ck_assert_uint_eq(o[2], 0xffffffffu);      /* x / 0 */
  ck_assert_uint_eq(o[3], 7);                /* x % 0 */
  ck_assert_uint_eq(o[4], (uint32_t)-3);
  ck_assert_uint_eq(o[5], (uint32_t)-1);
  ck_assert_uint_eq(o[6], 0);                /* shl by 32 */
  ck_assert_uint_eq(o[7], 0);                /* shr.u by 33 */
  ck_assert_uint_eq(o[8], 0xffffffffu);      /* shr.s by 40: sign */
  ck_assert_uint_eq(o[9], 0xf8000000u);
  ck_assert_uint_eq(o[10], 0xfffffffeu);
  ck_assert_uint_eq(o[11], 0);
  ck_assert_uint_eq(out[6], (uint64_t)-7);
  ck_assert_uint_eq(out[7], 0xffffffffull * 7);
  ck_assert_uint_eq(out[8], 2);
  ck_assert_uint_eq(out[9], (uint64_t)-1);
  ck_assert_uint_eq(o[20], 48);
  ck_assert_uint_eq(o[21], 0x80000000u);
  ck_assert_uint_eq(o[22], 7);
  ck_assert_uint_eq(out[12], 3);
  ck_assert_uint_eq(o[26], 0x80000000u);     /* abs(INT_MIN) */
  ck_assert_uint_eq(o[27], (uint32_t)-7);
  ck_assert_uint_eq(o[28], ~7u);
  ck_assert_uint_eq(o[29], 2);
  ck_assert_uint_eq(out[15], ~0ull);
  ck_assert_uint_eq(o[32], 0);
  ck_assert_uint_eq(out[17], (uint64_t)-3);
  ck_assert_uint_eq(out[18], ~0ull);
}
END_TEST

START_TEST(test_ptx_bit_instructions) {
  static const char body[] =
      "mov.u32 %r1, 0xf0f00001;\n"
      "popc.b32 %r2, %r1;\n st.global.u32 [%rd0], %r2;\n"
      "clz.b32 %r2, %r1;\n st.global.u32 [%rd0+4], %r2;\n"
      "clz.b32 %r2, 0;\n st.global.u32 [%rd0+8], %r2;\n"
      "brev.b32 %r2, 1;\n st.global.u32 [%rd0+12], %r2;\n"
      "bfe.u32 %r2, %r1, 28, 4;\n st.global.u32 [%rd0+16], %r2;\n"
      "bfe.s32 %r2, %r1, 28, 4;\n st.global.u32 [%rd0+20], %r2;\n"
      "bfe.u32 %r2, %r1, 30, 8;\n st.global.u32 [%rd0+24], %r2;\n"
      "bfi.b32 %r2, 0xff, 0, 8, 4;\n st.global.u32 [%rd0+28], %r2;\n"
      "prmt.b32 %r2, 0x33221100, 0x77665544, 0x7531;\n"
      " st.global.u32 [%rd0+32], %r2;\n"
      "prmt.b32 %r2, 0x00008000, 0, 0x9991;\n st.global.u32 [%rd0+36], %r2;\n"
      "lop3.b32 %r2, 0xff00ff00, 0xf0f0f0f0, 0xcccccccc, 0x80;\n"
      " st.global.u32 [%rd0+40], %r2;\n"
      "lop3.b32 %r2, 0xff00ff00, 0xf0f0f0f0, 0xcccccccc, 0x96;\n"
      " st.global.u32 [%rd0+44], %r2;\n"
      "mov.u64 %rd2, 0x100;\n"
      "popc.b64 %r2, %rd2;\n st.global.u32 [%rd0+48], %r2;\n"
      "clz.b64 %r2, %rd2;\n st.global.u32 [%rd0+52], %r2;\n"
      "bfe.s64 %rd3, %rd2, 8, 1;\n st.global.u64 [%rd0+56], %rd3;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 1), PTX_OK);
  ck_assert_uint_eq(o[0], 9);
  ck_assert_uint_eq(o[1], 0);
  ck_assert_uint_eq(o[2], 32);
  ck_assert_uint_eq(o[3], 0x80000000u);
  ck_assert_uint_eq(o[4], 0xf);
  ck_assert_uint_eq(o[5], 0xffffffffu);
  ck_assert_uint_eq(o[6], 3);                /* field clipped at bit 31 */
  ck_assert_uint_eq(o[7], 0xf00);
  ck_assert_uint_eq(o[8], 0x77553311u);
  ck_assert_uint_eq(o[9], 0xffffff80u);      /* sign-replicate byte 1 */
  ck_assert_uint_eq(o[10], 0xff00ff00u & 0xf0f0f0f0u & 0xccccccccu);
  ck_assert_uint_eq(o[11], 0xff00ff00u ^ 0xf0f0f0f0u ^ 0xccccccccu);
  ck_assert_uint_eq(o[12], 1);
  ck_assert_uint_eq(o[13], 55);
  ck_assert_uint_eq(out[7], ~0ull);
}
END_TEST

START_TEST(test_ptx_float_edges) {
  static const char body[] =
      "ld.global.f32 %f1, [%rd1];\n"       /* NaN */
      "ld.global.f32 %f2, [%rd1+4];\n"     /* +inf */
      "ld.global.f32 %f3, [%rd1+8];\n"     /* 2.5 */
      "ld.global.f32 %f4, [%rd1+12];\n"    /* -3.5 */
      "ld.global.f64 %fd1, [%rd1+16];\n"   /* 1 + 2^-30 */
      "setp.lt.f32 %p1, %f1, %f3;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0], %r1;\n"
      "setp.ltu.f32 %p1, %f1, %f3;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0+4], %r1;\n"
      "setp.nan.f32 %p1, %f3, %f1;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0+8], %r1;\n"
      "setp.num.f32 %p1, %f3, %f4;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0+12], %r1;\n"
      "setp.neu.f32 %p1, %f1, %f1;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0+16], %r1;\n"
      "setp.gt.f32 %p1|%p2, %f3, %f4;\n selp.u32 %r1, 1, 0, %p2;\n"
      " st.global.u32 [%rd0+20], %r1;\n"
      "min.f32 %f5, %f1, %f3;\n st.global.f32 [%rd0+24], %f5;\n"
      "cvt.rzi.s32.f32 %r1, %f1;\n st.global.u32 [%rd0+28], %r1;\n"
      "cvt.rzi.s32.f32 %r1, %f2;\n st.global.u32 [%rd0+32], %r1;\n"
      "cvt.rni.s32.f32 %r1, %f3;\n st.global.u32 [%rd0+36], %r1;\n"
      "cvt.rni.s32.f32 %r1, %f4;\n st.global.u32 [%rd0+40], %r1;\n"
      "cvt.rmi.s32.f32 %r1, %f3;\n st.global.u32 [%rd0+44], %r1;\n"
      "cvt.rpi.s32.f32 %r1, %f3;\n st.global.u32 [%rd0+48], %r1;\n"
      "cvt.rzi.u32.f32 %r1, %f4;\n st.global.u32 [%rd0+52], %r1;\n"
      "cvt.rn.f32.f64 %f5, %fd1;\n st.global.f32 [%rd0+56], %f5;\n"
      "cvt.rp.f32.f64 %f5, %fd1;\n st.global.f32 [%rd0+60], %f5;\n"
      "cvt.f64.f32 %fd2, %f4;\n st.global.f64 [%rd0+64], %fd2;\n"
      "mov.u32 %r2, 16777217;\n"
      "cvt.rn.f32.u32 %f5, %r2;\n st.global.f32 [%rd0+72], %f5;\n"
      "cvt.rp.f32.u32 %f5, %r2;\n st.global.f32 [%rd0+76], %f5;\n"
      "neg.f32 %f5, %f3;\n st.global.f32 [%rd0+80], %f5;\n"
      "abs.f32 %f5, %f4;\n st.global.f32 [%rd0+84], %f5;\n"
      "div.rn.f32 %f5, %f3, 0f00000000;\n st.global.f32 [%rd0+88], %f5;\n"
      "sqrt.rn.f32 %f5, %f4;\n st.global.f32 [%rd0+92], %f5;\n"
      "rcp.rn.f64 %fd2, 0d4010000000000000;\n st.global.f64 [%rd0+96], %fd2;\n"
      "fma.rn.f32 %f5, %f3, %f3, %f4;\n st.global.f32 [%rd0+104], %f5;\n"
      "ex2.approx.ftz.f32 %f5, %f3;\n st.global.f32 [%rd0+108], %f5;\n"
      "lg2.approx.f32 %f5, %f3;\n st.global.f32 [%rd0+112], %f5;\n"
      "sin.approx.f32 %f5, %f3;\n st.global.f32 [%rd0+116], %f5;\n"
      "cos.approx.f32 %f5, %f3;\n st.global.f32 [%rd0+120], %f5;\n"
      "rsqrt.approx.f32 %f5, 0f40800000;\n st.global.f32 [%rd0+124], %f5;\n"
      "testp.infinite.f32 %p1, %f2;\n selp.u32 %r1, 1, 0, %p1;\n"
      " st.global.u32 [%rd0+128], %r1;\n"
      "copysign.f32 %f5, %f4, %f3;\n st.global.f32 [%rd0+132], %f5;\n"
      "add.sat.f32 %f5, %f3, 0f00000000;\n st.global.f32 [%rd0+136], %f5;\n"
      "mul.rz.f32 %f5, 0f3F800001, 0f3F7FFFFF;\n"
      " st.global.f32 [%rd0+140], %f5;\n"
      "mul.rp.f32 %f5, 0f3F800001, 0f3F7FFFFF;\n"
      " st.global.f32 [%rd0+144], %f5;\n";
  uint64_t in[16];
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;
  const float *of = (const float *)out;
  float fin[4] = {NAN, INFINITY, 2.5f, -3.5f};
  double d = 1.0 + ldexp(1.0, -30);

  memcpy(in, fin, 16);
  memcpy(&in[2], &d, 8);
  ck_assert_int_eq(run_body(body, in, out, 1), PTX_OK);
  ck_assert_uint_eq(o[0], 0);
  ck_assert_uint_eq(o[1], 1);
  ck_assert_uint_eq(o[2], 1);
  ck_assert_uint_eq(o[3], 1);
  ck_assert_uint_eq(o[4], 1);
  ck_assert_uint_eq(o[5], 0);          /* the negated output of setp */
  ck_assert(of[6] == 2.5f);            /* min ignores a NaN */
  ck_assert_uint_eq(o[7], 0);          /* NaN -> 0 */
  ck_assert_uint_eq(o[8], 0x7fffffffu);/* +inf saturates */
  ck_assert_uint_eq(o[9], 2);          /* 2.5 to nearest even */
  ck_assert_uint_eq(o[10], (uint32_t)-4);
  ck_assert_uint_eq(o[11], 2);
  ck_assert_uint_eq(o[12], 3);
  ck_assert_uint_eq(o[13], 0);         /* negative to unsigned: 0 */
  ck_assert(of[14] == 1.0f);
  ck_assert(of[15] == nextafterf(1.0f, 2.0f));
  ck_assert(bitsd(out[8]) == -3.5);
  ck_assert(of[18] == 16777216.0f);
  ck_assert(of[19] == 16777218.0f);
  ck_assert(of[20] == -2.5f);
  ck_assert(of[21] == 3.5f);
  ck_assert(isinf(of[22]) && of[22] > 0);
  ck_assert(isnan(of[23]));
  ck_assert(bitsd(out[12]) == 0.25);
  ck_assert(of[26] == 2.75f);
  ck_assert_float_eq_tol(of[27], exp2f(2.5f), 1e-5f);
  ck_assert_float_eq_tol(of[28], log2f(2.5f), 1e-6f);
  ck_assert_float_eq_tol(of[29], sinf(2.5f), 1e-6f);
  ck_assert_float_eq_tol(of[30], cosf(2.5f), 1e-6f);
  ck_assert_float_eq_tol(of[31], 0.5f, 1e-7f);
  ck_assert_uint_eq(o[32], 1);
  ck_assert(of[33] == -2.5f);
  ck_assert(of[34] == 1.0f);
  ck_assert(of[35] == 1.0f);           /* (1+u)(1-u/2) toward zero */
  ck_assert(of[36] == nextafterf(1.0f, 2.0f));
  (void)fbits;
  (void)bitsf;
  (void)dbits;
}
END_TEST

START_TEST(test_ptx_setp_boolop_and_predicates) {
  static const char body[] =
      "setp.lt.s32 %p1, %r0, 4;\n"
      "setp.ge.and.s32 %p2|%p3, %r0, 2, %p1;\n"   /* 2 <= t < 4 */
      "setp.eq.or.u32 %p4, %r0, 7, !%p1;\n"       /* t == 7 || t >= 4 */
      "selp.u32 %r1, 1, 0, %p2;\n"
      "selp.u32 %r2, 2, 0, %p3;\n"
      "selp.u32 %r3, 4, 0, %p4;\n"
      "or.b32 %r1, %r1, %r2;\n or.b32 %r1, %r1, %r3;\n"
      "and.pred %p5, %p1, %p2;\n not.pred %p6, %p5;\n"
      "@%p6 add.u32 %r1, %r1, 8;\n"
      "mul.wide.u32 %rd2, %r0, 4;\n add.s64 %rd3, %rd0, %rd2;\n"
      "st.global.u32 [%rd3], %r1;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 8), PTX_OK);
  for (uint32_t t = 0; t < 8; t++) {
    bool p1 = t < 4, p2 = t >= 2 && p1, p3 = !(t >= 2) && p1;
    bool p4 = t == 7 || !p1;
    uint32_t want = (p2 ? 1 : 0) | (p3 ? 2 : 0) | (p4 ? 4 : 0) |
                    (!(p1 && p2) ? 8 : 0);
    ck_assert_uint_eq(o[t], want);
  }
}
END_TEST

START_TEST(test_ptx_divergence_reconverges) {
  /* Odd lanes loop t times, even lanes skip; all store after the join. */
  static const char body[] =
      "mov.u32 %r1, 0;\n"
      "and.b32 %r2, %r0, 1;\n"
      "setp.eq.s32 %p1, %r2, 0;\n"
      "@%p1 bra $L_join;\n"
      "mov.u32 %r3, 0;\n"
      "$L_loop:\n"
      "add.s32 %r1, %r1, 10;\n"
      "add.s32 %r3, %r3, 1;\n"
      "setp.lt.u32 %p2, %r3, %r0;\n"
      "@%p2 bra $L_loop;\n"
      "$L_join:\n"
      "activemask.b32 %r4;\n"
      "add.s32 %r1, %r1, %r4;\n"
      "mul.wide.u32 %rd2, %r0, 4;\n add.s64 %rd3, %rd0, %rd2;\n"
      "st.global.u32 [%rd3], %r1;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 40), PTX_OK);
  for (uint32_t t = 0; t < 40; t++) {
    /* all lanes of a warp are together again at the join */
    uint32_t mask = t < 32 ? 0xffffffffu : 0xffu;
    ck_assert_uint_eq(o[t], ((t & 1) ? 10 * t : 0) + mask);
  }
}
END_TEST

START_TEST(test_ptx_shfl_and_vote) {
  static const char body[] =
      "mul.lo.u32 %r1, %r0, 3;\n"
      "shfl.sync.down.b32 %r2|%p1, %r1, 5, 31, -1;\n"
      "shfl.sync.up.b32 %r3|%p2, %r1, 3, 0, -1;\n"
      "shfl.sync.bfly.b32 %r4, %r1, 6, 31, -1;\n"
      "shfl.sync.idx.b32 %r5|%p3, %r1, 9, 0x1c1f, -1;\n" /* width 4 */
      "selp.u32 %r6, 1, 0, %p1;\n selp.u32 %r7, 2, 0, %p2;\n"
      "or.b32 %r6, %r6, %r7;\n"
      "setp.gt.u32 %p4, %r0, 20;\n"
      "vote.sync.ballot.b32 %r8, %p4, -1;\n"
      "vote.sync.any.pred %p5, %p4, -1;\n"
      "vote.sync.all.pred %p6, %p4, -1;\n"
      "selp.u32 %r9, 1, 0, %p5;\n selp.u32 %r10, 2, 0, %p6;\n"
      "or.b32 %r9, %r9, %r10;\n"
      "mul.wide.u32 %rd2, %r0, 32;\n add.s64 %rd3, %rd0, %rd2;\n"
      "st.global.v4.u32 [%rd3], {%r2, %r3, %r4, %r5};\n"
      "st.global.v4.u32 [%rd3+16], {%r6, %r8, %r9, 0};\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 32), PTX_OK);
  for (uint32_t t = 0; t < 32; t++) {
    const uint32_t *r = o + t * 8;
    uint32_t down = t + 5 < 32 ? t + 5 : t, up = t >= 3 ? t - 3 : t;
    ck_assert_uint_eq(r[0], down * 3);
    ck_assert_uint_eq(r[1], up * 3);
    ck_assert_uint_eq(r[2], (t ^ 6) * 3);
    ck_assert_uint_eq(r[3], ((t & ~3u) | (9 & 3)) * 3);
    ck_assert_uint_eq(r[4], (t + 5 < 32 ? 1u : 0u) | (t >= 3 ? 2u : 0u));
    ck_assert_uint_eq(r[5], 0xffe00000u);
    ck_assert_uint_eq(r[6], 1);
  }
}
END_TEST

/* Lanes of one warp in 8-lane tiles vote with their own tile's mask, all
 * in one instruction (cooperative groups' tile.ballot/any/all): each sees
 * only its tile's votes. */
START_TEST(test_ptx_vote_per_lane_member_masks) {
  static const char body[] =
      "and.b32 %r1, %r0, -8;\n"            /* tile base lane */
      "mov.u32 %r2, 255;\n shl.b32 %r3, %r2, %r1;\n" /* the tile's mask */
      "and.b32 %r4, %r0, 3;\n setp.eq.u32 %p1, %r4, 1;\n"
      "setp.lt.u32 %p2, %r0, 20;\n"        /* tiles 0, 1 all, tile 2 half */
      "vote.sync.ballot.b32 %r5, %p1, %r3;\n"
      "vote.sync.all.pred %p3, %p2, %r3;\n"
      "vote.sync.any.pred %p4, %p2, %r3;\n"
      "selp.u32 %r6, 1, 0, %p3;\n selp.u32 %r7, 2, 0, %p4;\n"
      "or.b32 %r6, %r6, %r7;\n"
      "mul.wide.u32 %rd2, %r0, 8;\n add.s64 %rd3, %rd0, %rd2;\n"
      "st.global.v2.u32 [%rd3], {%r5, %r6};\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 32), PTX_OK);
  for (uint32_t t = 0; t < 32; t++) {
    uint32_t base = t & ~7u, tile = t / 8;
    ck_assert_uint_eq(o[t * 2], (0x22u << base));
    ck_assert_uint_eq(o[t * 2 + 1], tile < 2 ? 3u : tile == 2 ? 2u : 0u);
  }
}
END_TEST

START_TEST(test_ptx_shfl_waits_for_member_lanes) {
  /* Odd lanes take a detour placed after the shuffle, so the even lanes
   * reach it first (lower PC); the shuffle must still see all 32. */
  static const char body[] =
      "and.b32 %r1, %r0, 1;\n"
      "setp.ne.s32 %p1, %r1, 0;\n"
      "mov.u32 %r2, %r0;\n"
      "@%p1 bra $L_late;\n"
      "$L_back:\n"
      "shfl.sync.bfly.b32 %r3, %r2, 1, 31, -1;\n"
      "vote.sync.ballot.b32 %r4, %p1, -1;\n"
      "mul.wide.u32 %rd2, %r0, 8;\n add.s64 %rd3, %rd0, %rd2;\n"
      "st.global.v2.u32 [%rd3], {%r3, %r4};\n"
      "ret;\n"
      "$L_late:\n"
      "add.s32 %r2, %r2, 100;\n"
      "bra.uni $L_back;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 32), PTX_OK);
  for (uint32_t t = 0; t < 32; t++) {
    uint32_t src = t ^ 1;
    ck_assert_uint_eq(o[t * 2], src + ((src & 1) ? 100 : 0));
    ck_assert_uint_eq(o[t * 2 + 1], 0xaaaaaaaau);
  }
}
END_TEST

START_TEST(test_ptx_atomics) {
  static const char body[] =
      "atom.global.add.u32 %r1, [%rd0], 1;\n"
      "atom.global.max.s32 %r1, [%rd0+4], %r0;\n"
      "atom.global.min.u32 %r1, [%rd0+8], %r0;\n"
      "atom.global.inc.u32 %r1, [%rd0+12], 9;\n"
      "atom.global.exch.b32 %r1, [%rd0+16], 5;\n"
      "atom.global.add.f32 %f1, [%rd0+20], 0f3F000000;\n"
      "atom.global.add.f64 %fd1, [%rd0+24], 0d3FD0000000000000;\n"
      "atom.global.cas.b32 %r2, [%rd0+32], 0, %r0;\n"
      "atom.global.or.b32 %r1, [%rd0+36], 1;\n"
      "shl.b32 %r3, 1, %r0;\n"
      "red.global.or.b32 [%rd0+40], %r3;\n"
      "atom.global.add.u64 %rd2, [%rd0+48], 3;\n"
      "atom.global.dec.u32 %r1, [%rd0+56], 100;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;
  const float *of = (const float *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 20), PTX_OK);
  ck_assert_uint_eq(o[0], 20);
  ck_assert_uint_eq(o[1], 19);
  ck_assert_uint_eq(o[2], 0);
  ck_assert_uint_eq(o[3], 20 % 10);
  ck_assert_uint_eq(o[4], 5);
  ck_assert(of[5] == 10.0f);
  ck_assert(bitsd(out[3]) == 5.0);
  ck_assert_uint_lt(o[8], 20); /* one lane won the CAS */
  ck_assert_uint_eq(o[9], 1);
  ck_assert_uint_eq(o[10], 0xfffff);
  ck_assert_uint_eq(out[6], 60);
  ck_assert_uint_eq(o[14], 100 - 19);
}
END_TEST

START_TEST(test_ptx_generic_shared_local) {
  static const char text[] =
      HDR
      ".visible .entry g(.param .u64 g_out, .param .u32 g_x)\n{\n"
      ".local .align 8 .b8 depot[16];\n"
      ".shared .align 4 .b8 sh[128];\n"
      ".reg .b32 %r<8>;\n.reg .b64 %rd<12>;\n.reg .b64 %SP, %SPL;\n"
      "ld.param.u64 %rd1, [g_out];\n"
      "ld.param.u32 %r1, [g_x];\n"
      "mov.u64 %SPL, depot;\n"
      "cvta.local.u64 %SP, %SPL;\n"
      "mov.u32 %r2, %tid.x;\n"
      "st.u32 [%SP+4], %r2;\n"                 /* generic -> local */
      "mov.u64 %rd2, sh;\n"
      "cvta.shared.u64 %rd3, %rd2;\n"
      "mul.wide.u32 %rd4, %r2, 4;\n"
      "add.s64 %rd5, %rd3, %rd4;\n"
      "add.s32 %r3, %r2, %r1;\n"
      "st.u32 [%rd5], %r3;\n"                  /* generic -> shared */
      "bar.sync 0;\n"
      "xor.b32 %r4, %r2, 1;\n"
      "mul.wide.u32 %rd6, %r4, 4;\n"
      "add.s64 %rd7, %rd2, %rd6;\n"
      "ld.shared.u32 %r5, [%rd7];\n"           /* the neighbour's value */
      "ld.local.u32 %r6, [%SPL+4];\n"
      "cvta.to.shared.u64 %rd8, %rd5;\n"
      "cvt.u32.u64 %r7, %rd8;\n"
      "cvta.to.global.u64 %rd9, %rd1;\n"
      "mul.wide.u32 %rd10, %r2, 12;\n"
      "add.s64 %rd11, %rd9, %rd10;\n"
      "st.global.u32 [%rd11], %r5;\n"
      "st.global.u32 [%rd11+4], %r6;\n"
      "st.global.u32 [%rd11+8], %r7;\n"
      "ret;\n}\n";
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "g");
  uint32_t *out = dev_alloc(32 * 12);
  uint8_t params[256];
  uint64_t po = dptr(out);
  uint32_t x = 1000;
  const void *vals[] = {&po, &x};
  size_t ps = pack(k, params, vals, 2);

  ck_assert_uint_eq(ptx_kernel_local_size(k), 16);
  ck_assert_int_eq(launch(k, 1, 1, 32, 1, 0, params, ps, 1), PTX_OK);
  for (uint32_t t = 0; t < 32; t++) {
    ck_assert_uint_eq(out[t * 3], (t ^ 1) + 1000);
    ck_assert_uint_eq(out[t * 3 + 1], t);
    ck_assert_uint_eq(out[t * 3 + 2], t * 4);
  }
  ptx_module_free(m);
  dev_reset();
}
END_TEST

START_TEST(test_ptx_faults_are_reported) {
  static const char text[] =
      HDR
      ".visible .entry f(.param .u64 f_p, .param .u32 f_mode)\n{\n"
      ".reg .pred %p<3>;\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n"
      "ld.param.u64 %rd1, [f_p];\n"
      "ld.param.u32 %r1, [f_mode];\n"
      "setp.eq.s32 %p1, %r1, 1;\n"
      "@%p1 bra $L_mis;\n"
      "setp.eq.s32 %p2, %r1, 2;\n"
      "@%p2 bra $L_trap;\n"
      "st.global.u32 [%rd1+64], %r1;\n"        /* line 15 */
      "ret;\n"
      "$L_mis:\n"
      "st.global.u32 [%rd1+2], %r1;\n"
      "ret;\n"
      "$L_trap:\n"
      "trap;\n"
      "}\n";
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "f");
  uint8_t *buf = dev_alloc(64);
  uint64_t params[2] = {dptr(buf), 0};
  char want[64];

  ck_assert_int_eq(launch(k, 4, 1, 8, 1, 0, params, 12, 2),
                   PTX_E_ILLEGAL_ADDRESS);
  ck_assert_ptr_nonnull(strstr(errbuf, "kernel 'f'"));
  ck_assert_msg(strstr(errbuf, "PTX line 15 'st.global.u32 [%rd1+64], "
                              "%r1;'") != NULL, "%s", errbuf);
  snprintf(want, sizeof(want), "0x%llx",
           (unsigned long long)(dptr(buf) + 64));
  ck_assert_msg(strstr(errbuf, want) != NULL, "%s", errbuf);
  params[1] = 1;
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, 12, 1),
                   PTX_E_MISALIGNED);
  params[1] = 2;
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, 12, 1), PTX_E_TRAP);
  /* Bad configurations run nothing. */
  ck_assert_int_eq(launch(k, 1, 1, 2048, 1, 0, params, 12, 1), PTX_E_CONFIG);
  ck_assert_int_eq(launch(k, 0, 1, 1, 1, 0, params, 12, 1), PTX_E_CONFIG);
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, 8, 1), PTX_E_CONFIG);
  ptx_module_free(m);
  dev_reset();
}
END_TEST

static int cancel_flag;

static void *cancel_later(void *arg) {
  (void)arg;
  usleep(50 * 1000);
  __atomic_store_n(&cancel_flag, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

START_TEST(test_ptx_spin_loop_is_cancelled) {
  static const char text[] =
      HDR ".visible .entry spin()\n{\n$L_top:\nbra.uni $L_top;\n}\n";
  struct ptx_module *m = load_ok(text);
  struct ptx_launch l = {
    .grid = {4, 1, 1}, .block = {64, 1, 1}, .max_threads = 2,
    .cancel = &cancel_flag,
  };
  pthread_t th;

  cancel_flag = 0;
  ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, NULL), 0);
  ck_assert_int_eq(ptx_launch(ptx_module_kernel(m, "spin"), &l, errbuf,
                              sizeof(errbuf)),
                   PTX_E_CANCELLED);
  pthread_join(th, NULL);
  ck_assert_msg(strstr(errbuf, "kernel 'spin'") && strstr(errbuf, "line 7"),
                "%s", errbuf);
  ptx_module_free(m);
}
END_TEST

START_TEST(test_ptx_translation_uses_lookup) {
  /* A buffer at a fake device address: only the callback maps it. */
  static const char body[] =
      "ld.global.u64 %rd2, [%rd1];\n"
      "ld.global.u32 %r1, [%rd2+4];\n"
      "add.u32 %r1, %r1, 1;\n"
      "st.global.u32 [%rd2+8], %r1;\n"
      "st.global.u32 [%rd0], %r1;\n";
  uint32_t backing[4] = {0, 41, 0, 0};
  uint64_t in[16] = {0x100000000ull};
  uint64_t out[256];

  regions[nregions].base = 0x100000000ull;
  regions[nregions].size = sizeof(backing);
  regions[nregions].host = backing;
  nregions++;
  ck_assert_int_eq(run_body(body, in, out, 1), PTX_OK);
  ck_assert_uint_eq(backing[2], 42);
  ck_assert_uint_eq((uint32_t)out[0], 42);
}
END_TEST

START_TEST(test_ptx_carry_chains) {
  /* 96-bit add and subtract through .cc / addc / subc, and a 64x64->128
   * multiply from 32-bit madc pieces. */
  static const char body[] =
      "mov.u32 %r1, 0xffffffff;\n"
      "add.cc.u32 %r2, %r1, 1;\n"
      "addc.cc.u32 %r3, %r1, 0;\n"
      "addc.u32 %r4, 5, 0;\n"
      "st.global.v4.u32 [%rd0], {%r2, %r3, %r4, 0};\n"
      "sub.cc.u32 %r2, 0, 1;\n"
      "subc.cc.u32 %r3, 0, 0;\n"
      "subc.u32 %r4, 7, 0;\n"
      "st.global.v4.u32 [%rd0+16], {%r2, %r3, %r4, 0};\n"
      "mad.lo.cc.u32 %r5, %r1, %r1, 3;\n"     /* lo(x*x) + 3 */
      "madc.hi.u32 %r6, %r1, %r1, 0;\n"       /* hi(x*x) + carry */
      "st.global.v2.u32 [%rd0+32], {%r5, %r6};\n"
      "mov.u64 %rd2, -1;\n"
      "add.cc.u64 %rd3, %rd2, 2;\n"
      "addc.u64 %rd4, 0, 0;\n"
      "st.global.v2.u64 [%rd0+48], {%rd3, %rd4};\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;
  unsigned __int128 sq = (unsigned __int128)0xffffffffu * 0xffffffffu + 3;

  ck_assert_int_eq(run_body(body, NULL, out, 1), PTX_OK);
  ck_assert_uint_eq(o[0], 0);
  ck_assert_uint_eq(o[1], 0);
  ck_assert_uint_eq(o[2], 6);
  ck_assert_uint_eq(o[4], 0xffffffffu);
  ck_assert_uint_eq(o[5], 0xffffffffu);
  ck_assert_uint_eq(o[6], 6);
  ck_assert_uint_eq(o[8], (uint32_t)sq);
  ck_assert_uint_eq(o[9], (uint32_t)(sq >> 32));
  ck_assert_uint_eq(out[6], 1);
  ck_assert_uint_eq(out[7], 1);
}
END_TEST

START_TEST(test_ptx_func_calls) {
  /* A .func with parameters, a return value and a local array, called
   * by some lanes only, from a nested .func as well. */
  static const char text[] =
      HDR
      ".func (.param .b32 sq_ret) sq(.param .b32 sq_a);\n"
      ".func (.param .b32 tw_ret) twice(.param .b32 tw_a, "
      ".param .align 4 .b8 tw_s[8])\n{\n"
      ".local .align 4 .b8 dep[16];\n"
      ".reg .b32 %r<6>;\n.reg .b64 %rd<2>;\n"
      "ld.param.b32 %r1, [tw_a];\n"
      "ld.param.b32 %r4, [tw_s+4];\n"
      "mov.u64 %rd1, dep;\n"
      "st.local.u32 [%rd1+12], %r1;\n"
      "ld.local.u32 %r2, [%rd1+12];\n"
      "{\n.param .b32 p0;\nst.param.b32 [p0], %r2;\n"
      ".param .b32 r0;\ncall.uni (r0), sq, (p0);\n"
      "ld.param.b32 %r3, [r0];\n}\n"
      "add.s32 %r3, %r3, %r2;\n"
      "add.s32 %r3, %r3, %r4;\n"
      "st.param.b32 [tw_ret], %r3;\nret;\n}\n"
      ".func (.param .b32 sq_ret) sq(.param .b32 sq_a)\n{\n"
      ".reg .b32 %r<3>;\n"
      "ld.param.b32 %r1, [sq_a];\n"
      "mul.lo.s32 %r2, %r1, %r1;\n"
      "st.param.b32 [sq_ret], %r2;\nret;\n}\n"
      ".visible .entry k(.param .u64 k_out)\n{\n"
      ".reg .pred %p<2>;\n.reg .b32 %r<6>;\n.reg .b64 %rd<4>;\n"
      "ld.param.u64 %rd1, [k_out];\n"
      "mov.u32 %r1, %tid.x;\n"
      "mov.u32 %r2, 0;\n"
      "and.b32 %r3, %r1, 3;\n"
      "setp.eq.s32 %p1, %r3, 0;\n"
      "@%p1 bra $L_skip;\n"
      "{\n.param .b32 a0;\nst.param.b32 [a0], %r1;\n"
      ".param .align 4 .b8 a1[8];\nst.param.b32 [a1+4], 1000;\n"
      ".param .b32 rv;\ncall.uni (rv), twice, (a0, a1);\n"
      "ld.param.b32 %r2, [rv];\n}\n"
      "$L_skip:\n"
      "mul.wide.u32 %rd2, %r1, 4;\n add.s64 %rd3, %rd1, %rd2;\n"
      "st.global.u32 [%rd3], %r2;\n"
      "ret;\n}\n";
  struct ptx_module *m = load_ok(text);
  const struct ptx_kernel *k = ptx_module_kernel(m, "k");
  uint32_t *out = dev_alloc(64 * 4);
  uint64_t params[1] = {dptr(out)};

  ck_assert_int_eq(launch(k, 1, 1, 64, 1, 0, params, 8, 1), PTX_OK);
  for (uint32_t t = 0; t < 64; t++)
    ck_assert_uint_eq(out[t], (t & 3) == 0 ? 0 : t * t + t + 1000);
  ptx_module_free(m);
  dev_reset();
  /* Recursion is refused at load. */
  load_fails(HDR ".func f()\n{\ncall.uni f;\nret;\n}\n"
                 ".visible .entry k()\n{\ncall.uni f;\nret;\n}\n",
             PTX_E_UNSUPPORTED, "recursive");
}
END_TEST

/* ---- 16-bit floats -------------------------------------------------- */

/* binary16 |h| as a double, decoded here independently of the engine. */
static double ref_h2d(uint16_t h) {
  int e = (h >> 10) & 31, f = h & 1023;
  double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY)
                                              : ldexp(f + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* |x| rounded to binary16 (mode 0: to nearest even, 1: toward zero,
 * 2: down, 3: up) by a search over the ordered bit patterns. */
static uint16_t ref_d2h(double x, int mode) {
  uint16_t sign = signbit(x) ? 0x8000 : 0, lo = 0, hi = 0x7c00;
  double a = fabs(x), vlo, vhi;
  bool up;

  if (isnan(x))
    return 0x7fff;
  if (isinf(x))
    return sign | 0x7c00;
  if (a >= 65536) {
    bool inf = mode == 0 || (mode == 3 && !sign) || (mode == 2 && sign);
    return sign | (inf ? 0x7c00 : 0x7bff);
  }
  while (hi - lo > 1) { /* value(lo) <= a < value(hi); 0x7c00 is 65536 */
    uint16_t mid = (uint16_t)((lo + hi) / 2);
    if (ref_h2d(mid) <= a)
      lo = mid;
    else
      hi = mid;
  }
  vlo = ref_h2d(lo);
  vhi = hi == 0x7c00 ? 65536.0 : ref_h2d(hi);
  if (vlo == a)
    return sign | lo;
  switch (mode) {
  case 0: up = a - vlo > vhi - a || (a - vlo == vhi - a && (lo & 1)); break;
  case 1: up = false; break;
  case 2: up = sign != 0; break;
  default: up = sign == 0; break;
  }
  return sign | (up ? hi : lo);
}

/* bfloat16 of f32 |f| to nearest even: the upper half of its bits. */
static uint16_t ref_f2bf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (isnan(f))
    return 0x7fff;
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static float ref_bf2f(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* A kernel "t(out, in)" of |n| threads in blocks of 128 whose |body|
 * sees %r0 = the thread's index, %rd0 = out, %rd1 = in, %rd2 = 4 x index,
 * %rd3 = 8 x index, %rd4 = 32 x index, and the registers of body_ptx(). */
static int run_io(const char *body, void *out, const void *in, unsigned n) {
  static const char pre[] =
      "mov.u32 %r1, %ctaid.x;\nmad.lo.u32 %r0, %r1, 128, %r0;\n"
      "mul.wide.u32 %rd2, %r0, 4;\nmul.wide.u32 %rd3, %r0, 8;\n"
      "mul.wide.u32 %rd4, %r0, 32;\n";
  size_t len = strlen(pre) + strlen(body) + 1;
  char *full = malloc(len), *text;
  struct ptx_module *m;
  uint64_t params[2] = {dptr(out), dptr(in)};
  int rc;

  ck_assert_ptr_nonnull(full);
  snprintf(full, len, "%s%s", pre, body);
  text = body_ptx(full);
  m = load_ok(text);
  rc = launch(ptx_module_kernel(m, "t"), (n + 127) / 128, 1,
              n < 128 ? n : 128, 1, 0, params, sizeof(params), 2);
  ptx_module_free(m);
  free(text);
  free(full);
  return rc;
}

START_TEST(test_ptx_half_conversions_round_once) {
  /* f32 -> f16 in the four rounding modes and f32 -> bf16, against
   * references computed here, on edge values and a sweep of exponents. */
  static const char body[] =
      "add.s64 %rd5, %rd1, %rd2;\nld.global.f32 %f1, [%rd5];\n"
      "add.s64 %rd6, %rd0, %rd4;\n"
      "{\n.reg .f16 h<4>;\n"
      "cvt.rn.f16.f32 h0, %f1;\ncvt.rz.f16.f32 h1, %f1;\n"
      "cvt.rm.f16.f32 h2, %f1;\ncvt.rp.f16.f32 h3, %f1;\n"
      "st.global.v4.b16 [%rd6], {h0, h1, h2, h3};\n"
      "cvt.f32.f16 %f2, h0;\nst.global.f32 [%rd6+8], %f2;\n"
      "cvt.f64.f16 %fd1, h2;\nst.global.f64 [%rd6+16], %fd1;\n}\n"
      "cvt.rn.bf16.f32 %rs1, %f1;\nst.global.b16 [%rd6+12], %rs1;\n"
      "cvt.f32.bf16 %f3, %rs1;\nst.global.f32 [%rd6+24], %f3;\n";
  enum { N = 2048 };
  float *in = dev_alloc(N * 4);
  uint8_t *out = dev_alloc(N * 32);
  static const float edge[] = {
    0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f,
    1e9f, -1e9f, INFINITY, -INFINITY, NAN, 0x1p-24f, 0x1p-25f,
    0x3p-26f, 0x3p-25f, 0x1p-14f, 0x1p-14f - 0x1p-25f, 1.0f + 0x1p-11f,
    1.0f + 0x3p-11f, 2049.0f, 2051.0f, -2051.0f, 0x1p-30f, -0x1p-25f,
    -65520.0f, 3.14159265f, -1e-7f, 0x1.ffcp15f, 0x1.ffdp15f, 0.1f,
  };
  unsigned s = 99;

  for (unsigned i = 0; i < N; i++) {
    if (i < sizeof(edge) / sizeof(edge[0])) {
      in[i] = edge[i];
    } else {
      s = s * 1103515245u + 12345u;
      in[i] = ldexpf(1.0f + (float)(s >> 9) / 8388608.0f,
                     (int)((s >> 3) % 50) - 30) * ((s & 1) ? -1.0f : 1.0f);
    }
  }
  ck_assert_int_eq(run_io(body, out, in, N), PTX_OK);
  for (unsigned i = 0; i < N; i++) {
    const uint8_t *o = out + i * 32;
    uint16_t h[4], bf;
    float back, bback;
    double down;
    memcpy(h, o, 8);
    memcpy(&back, o + 8, 4);
    memcpy(&bf, o + 12, 2);
    memcpy(&down, o + 16, 8);
    memcpy(&bback, o + 24, 4);
    for (int mode = 0; mode < 4; mode++)
      ck_assert_msg(h[mode] == ref_d2h(in[i], mode),
                    "%a mode %d: got 0x%04x, want 0x%04x", (double)in[i],
                    mode, h[mode], ref_d2h(in[i], mode));
    ck_assert_msg(back == (float)ref_h2d(h[0]) ||
                      (isnan(back) && isnan(in[i])),
                  "%a back %a", (double)in[i], (double)back);
    ck_assert(down == ref_h2d(h[2]) || (isnan(down) && isnan(in[i])));
    ck_assert_msg(bf == ref_f2bf(in[i]), "%a bf16 0x%04x want 0x%04x",
                  (double)in[i], bf, ref_f2bf(in[i]));
    ck_assert(bback == ref_bf2f(bf) || isnan(in[i]));
  }
  dev_reset();
}
END_TEST

START_TEST(test_ptx_half_conversions_ints_and_f64) {
  static const char body[] =
      /* f64 -> f16 in one rounding: 1 + 2^-11 + 2^-40 rounds up (through
       * f32 it would be a tie and round down) */
      "cvt.rn.f16.f64 %rs1, 0d3FF0020000010000;\n"
      "st.global.b16 [%rd0], %rs1;\n"
      "cvt.rn.f16.s32 %rs1, 2049;\n st.global.b16 [%rd0+2], %rs1;\n"
      "cvt.rn.f16.s32 %rs1, 2051;\n st.global.b16 [%rd0+4], %rs1;\n"
      "cvt.rn.f16.s32 %rs1, -70000;\n st.global.b16 [%rd0+6], %rs1;\n"
      "cvt.rz.f16.u32 %rs1, 70000;\n st.global.b16 [%rd0+8], %rs1;\n"
      "mov.u64 %rd2, 0x0100000000000001;\n"
      "cvt.rn.f16.u64 %rs1, %rd2;\n st.global.b16 [%rd0+10], %rs1;\n"
      /* 2^56 + 2^48 + 1 to bf16: just above a tie, so up (through a
       * double it would be the tie and round down) */
      "mov.u64 %rd2, 0x0101000000000001;\n"
      "cvt.rn.bf16.u64 %rs1, %rd2;\n st.global.b16 [%rd0+12], %rs1;\n"
      "mov.b16 %rs2, 0xC100;\n"                    /* -2.5 */
      "cvt.rzi.s32.f16 %r1, %rs2;\n st.global.u32 [%rd0+16], %r1;\n"
      "cvt.rni.s32.f16 %r1, %rs2;\n st.global.u32 [%rd0+20], %r1;\n"
      "cvt.rmi.u32.f16 %r1, %rs2;\n st.global.u32 [%rd0+24], %r1;\n"
      "mov.b16 %rs3, 0x7BFF;\n"                    /* 65504 */
      "cvt.rpi.s16.f16 %rs1, %rs3;\n st.global.b16 [%rd0+28], %rs1;\n"
      "mov.b16 %rs3, 0x7E00;\n"                    /* NaN */
      "cvt.rzi.s32.f16 %r1, %rs3;\n st.global.u32 [%rd0+32], %r1;\n"
      "cvt.rmi.f16.f16 %rs1, %rs2;\n st.global.b16 [%rd0+36], %rs1;\n"
      "cvt.rni.f16.f16 %rs1, %rs2;\n st.global.b16 [%rd0+38], %rs1;\n"
      "cvt.rn.f16x2.f32 %r1, 0f3F800000, 0fC0000000;\n"
      " st.global.u32 [%rd0+40], %r1;\n"          /* {-2 lo, 1 hi} */
      "mov.b16 %rs3, 0x0001;\n"                    /* 2^-24 */
      "cvt.ftz.f32.f16 %f1, %rs3;\n st.global.f32 [%rd0+44], %f1;\n"
      "cvt.sat.rn.f16.f32 %rs1, 0f40000000;\n st.global.b16 [%rd0+48], %rs1;\n";
  uint64_t out[256];
  const uint16_t *h = (const uint16_t *)out;
  const uint32_t *u = (const uint32_t *)out;
  const float *f = (const float *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 1), PTX_OK);
  ck_assert_uint_eq(h[0], 0x3c01);
  ck_assert_uint_eq(h[1], 0x6800);         /* 2048 */
  ck_assert_uint_eq(h[2], 0x6802);         /* 2052 */
  ck_assert_uint_eq(h[3], 0xfc00);         /* -inf */
  ck_assert_uint_eq(h[4], 0x7bff);         /* 65504 toward zero */
  ck_assert_uint_eq(h[5], 0x7c00);
  ck_assert_uint_eq(h[6], 0x5b81);         /* 2^56 + 2^49 */
  ck_assert_uint_eq(u[4], (uint32_t)-2);
  ck_assert_uint_eq(u[5], (uint32_t)-2);
  ck_assert_uint_eq(u[6], 0);
  ck_assert_uint_eq(h[14], 0x7fff);        /* saturated */
  ck_assert_uint_eq(u[8], 0);
  ck_assert_uint_eq(h[18], 0xc200);        /* floor(-2.5) = -3 */
  ck_assert_uint_eq(h[19], 0xc000);        /* -2.5 to even: -2 */
  ck_assert_uint_eq(u[10], 0x3c00c000u);
  ck_assert(f[11] == 0x1p-24f);            /* no f32 subnormal to flush */
  ck_assert_uint_eq(h[24], 0x3c00);        /* .sat: 1 */
}
END_TEST

START_TEST(test_ptx_half_arithmetic_edges) {
  static const char body[] =
      "mov.b16 %rs1, 0x7BFF;\n mov.b16 %rs2, 0x4C00;\n" /* 65504, 16 */
      "add.f16 %rs3, %rs1, %rs2;\n st.global.b16 [%rd0], %rs3;\n"
      "mov.b16 %rs1, 0x3A00;\n mov.b16 %rs2, 0x3800;\n" /* 0.75, 0.5 */
      "add.sat.f16 %rs3, %rs1, %rs2;\n st.global.b16 [%rd0+2], %rs3;\n"
      "sub.sat.f16 %rs3, %rs2, %rs1;\n st.global.b16 [%rd0+4], %rs3;\n"
      "mov.b16 %rs1, 0x0001;\n"                          /* 2^-24 */
      "add.f16 %rs3, %rs1, %rs1;\n st.global.b16 [%rd0+6], %rs3;\n"
      "add.ftz.f16 %rs3, %rs1, %rs1;\n st.global.b16 [%rd0+8], %rs3;\n"
      "mov.b16 %rs1, 0x0400;\n"                          /* 2^-14 */
      "mul.f16 %rs3, %rs1, %rs2;\n st.global.b16 [%rd0+10], %rs3;\n"
      "mul.ftz.f16 %rs3, %rs1, %rs2;\n st.global.b16 [%rd0+12], %rs3;\n"
      /* (1 + 2^-10)(1 + 2^-10) + 0 = 1 + 2^-9 + 2^-20: one rounding */
      "mov.b16 %rs1, 0x3C01;\n mov.b16 %rs4, 0;\n"
      "fma.rn.f16 %rs3, %rs1, %rs1, %rs4;\n st.global.b16 [%rd0+14], %rs3;\n"
      "mov.b16 %rs5, 0x7E00;\n"                          /* NaN */
      "min.f16 %rs3, %rs5, %rs2;\n st.global.b16 [%rd0+16], %rs3;\n"
      "min.NaN.f16 %rs3, %rs5, %rs2;\n st.global.b16 [%rd0+18], %rs3;\n"
      "mov.b16 %rs6, 0x8000;\n"                          /* -0 */
      "max.f16 %rs3, %rs6, %rs4;\n st.global.b16 [%rd0+20], %rs3;\n"
      "min.f16 %rs3, %rs4, %rs6;\n st.global.b16 [%rd0+22], %rs3;\n"
      "neg.f16 %rs3, %rs2;\n st.global.b16 [%rd0+24], %rs3;\n"
      "abs.f16 %rs3, %rs6;\n st.global.b16 [%rd0+26], %rs3;\n"
      "add.f16 %rs3, %rs5, %rs2;\n st.global.b16 [%rd0+28], %rs3;\n"
      /* pairs */
      "mov.b32 %r1, 0x3C004000;\n mov.b32 %r2, 0x40003C00;\n" /* {2,1} {1,2} */
      "add.f16x2 %r3, %r1, %r2;\n st.global.b32 [%rd0+32], %r3;\n"
      "fma.rn.f16x2 %r3, %r1, %r2, %r1;\n st.global.b32 [%rd0+36], %r3;\n"
      "setp.lt.f16x2 %p1|%p2, %r1, %r2;\n"
      "selp.u32 %r4, 1, 0, %p1;\n selp.u32 %r5, 2, 0, %p2;\n"
      "or.b32 %r4, %r4, %r5;\n st.global.u32 [%rd0+40], %r4;\n"
      "set.lt.f16x2.f16x2 %r3, %r1, %r2;\n st.global.b32 [%rd0+44], %r3;\n"
      "set.gt.u32.f16x2 %r3, %r1, %r2;\n st.global.b32 [%rd0+48], %r3;\n"
      "neg.f16x2 %r3, %r1;\n st.global.b32 [%rd0+52], %r3;\n"
      "max.f16x2 %r3, %r1, %r2;\n st.global.b32 [%rd0+56], %r3;\n"
      "setp.eq.f16 %p3, %rs5, %rs5;\n selp.u32 %r4, 1, 0, %p3;\n"
      " st.global.u32 [%rd0+60], %r4;\n"
      "setp.nan.f16 %p3, %rs5, %rs2;\n selp.u32 %r4, 1, 0, %p3;\n"
      " st.global.u32 [%rd0+64], %r4;\n"
      "set.eq.f16.f16 %rs3, %rs2, %rs2;\n st.global.b16 [%rd0+68], %rs3;\n"
      /* bf16 */
      "mov.b16 %rs1, 0x3FC0;\n mov.b16 %rs2, 0x4000;\n"  /* 1.5, 2 */
      "mul.rn.bf16 %rs3, %rs1, %rs2;\n st.global.b16 [%rd0+70], %rs3;\n"
      "mov.b32 %r1, 0x3FC04000;\n"
      "add.rn.bf16x2 %r3, %r1, %r1;\n st.global.b32 [%rd0+72], %r3;\n"
      /* atomics on 16-bit floats */
      "mov.b16 %rs1, 0x3C00;\n"
      "add.s64 %rd5, %rd0, 80;\n"
      "atom.global.add.noftz.f16 %rs3, [%rd5], %rs1;\n"
      "mov.b32 %r1, 0x3C004000;\n"
      "atom.global.add.noftz.f16x2 %r3, [%rd5+4], %r1;\n";
  uint64_t out[256];
  const uint16_t *h = (const uint16_t *)out;
  const uint32_t *u = (const uint32_t *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 3), PTX_OK);
  ck_assert_uint_eq(h[0], 0x7c00);         /* 65520 is a tie: to inf */
  ck_assert_uint_eq(h[1], 0x3c00);         /* 1.25 saturates to 1 */
  ck_assert_uint_eq(h[2], 0x0000);         /* -0.25 saturates to 0 */
  ck_assert_uint_eq(h[3], 0x0002);         /* subnormals add exactly */
  ck_assert_uint_eq(h[4], 0x0000);         /* .ftz flushes them */
  ck_assert_uint_eq(h[5], 0x0200);         /* 2^-15: a subnormal result */
  ck_assert_uint_eq(h[6], 0x0000);
  ck_assert_uint_eq(h[7], ref_d2h(ref_h2d(0x3c01) * ref_h2d(0x3c01), 0));
  ck_assert_uint_eq(h[8], 0x3800);         /* min ignores a NaN */
  ck_assert_uint_eq(h[9], 0x7fff);         /* .NaN: the canonical NaN */
  ck_assert_uint_eq(h[10], 0x0000);        /* max(-0, +0) = +0 */
  ck_assert_uint_eq(h[11], 0x8000);        /* min(+0, -0) = -0 */
  ck_assert_uint_eq(h[12], 0xb800);
  ck_assert_uint_eq(h[13], 0x0000);
  ck_assert_uint_eq(h[14], 0x7fff);        /* NaN + x */
  ck_assert_uint_eq(u[8], 0x42004200u);    /* {3, 3} */
  ck_assert_uint_eq(u[9], 0x42004400u);    /* {2*1+2, 1*2+1} */
  ck_assert_uint_eq(u[10], 2);             /* low: 2<1 no, high: 1<2 */
  ck_assert_uint_eq(u[11], 0x3c000000u);
  ck_assert_uint_eq(u[12], 0x0000ffffu);
  ck_assert_uint_eq(u[13], 0xbc00c000u);
  ck_assert_uint_eq(u[14], 0x40004000u);
  ck_assert_uint_eq(u[15], 0);             /* NaN == NaN is false */
  ck_assert_uint_eq(u[16], 1);
  ck_assert_uint_eq(h[34], 0x3c00);
  ck_assert_uint_eq(h[35], 0x4040);        /* 3 */
  ck_assert_uint_eq(u[18], 0x40404080u);   /* {4, 3} */
  ck_assert_uint_eq(h[40], 0x4200);        /* three lanes added 1: 3 */
  ck_assert_uint_eq(u[21], 0x42004600u);   /* {6, 3} */
}
END_TEST

START_TEST(test_ptx_bf16_fma_rounds_once) {
  /* a * b exactly halfway between two bf16 values, plus a tiny c: the
   * exact sum lies just above the tie and must round up, where rounding
   * the fma to double first would lose c and round the tie to even. */
  static const char body[] =
      "ld.global.b16 %rs1, [%rd1];\n ld.global.b16 %rs2, [%rd1+2];\n"
      "ld.global.b16 %rs3, [%rd1+4];\n"
      "fma.rn.bf16 %rs4, %rs1, %rs2, %rs3;\n st.global.b16 [%rd0], %rs4;\n";
  uint64_t in[16] = {0}, out[256];
  uint16_t a = 0, b = 0, want = 0, *hin = (uint16_t *)in;
  float fa = 0, fb = 0;

  /* find a and b in [1, 2) whose product is a tie whose lower neighbour
   * is even: the sum just above it rounds to the odd upper one */
  for (unsigned i = 0; i < 128 && !a; i++)
    for (unsigned j = 0; j < 128 && !a; j++) {
      float x = ref_bf2f((uint16_t)(0x3f80 + i)),
            y = ref_bf2f((uint16_t)(0x3f80 + j));
      double p = (double)x * y;
      uint16_t n = ref_f2bf((float)p); /* p is exact in float */
      for (int k = -1; k <= 0 && !a; k++) {
        uint16_t lo = (uint16_t)(n + k);
        double vlo = ref_bf2f(lo), vhi = ref_bf2f((uint16_t)(lo + 1));
        if (p > vlo && p < vhi && p - vlo == vhi - p && !(lo & 1)) {
          a = (uint16_t)(0x3f80 + i);
          b = (uint16_t)(0x3f80 + j);
          want = (uint16_t)(lo + 1);
          fa = x;
          fb = y;
        }
      }
    }
  ck_assert_uint_ne(a, 0);
  hin[0] = a;
  hin[1] = b;
  hin[2] = ref_f2bf(0x1p-40f);
  ck_assert_int_eq(run_body(body, in, out, 1), PTX_OK);
  ck_assert_msg((uint16_t)out[0] == want, "%a*%a: got 0x%04x want 0x%04x",
                (double)fa, (double)fb, (unsigned)(uint16_t)out[0], want);
}
END_TEST

/* ---- more integer instructions, set, match, bar.warp.sync ----------- */

START_TEST(test_ptx_more_integer_instructions) {
  static const char body[] =
      "mul24.lo.s32 %r1, 0x00800000, 2;\n st.global.u32 [%rd0], %r1;\n"
      "mul24.hi.u32 %r1, 0xffffff, 0xffffff;\n st.global.u32 [%rd0+4], %r1;\n"
      "mad24.lo.u32 %r1, 3, 5, 7;\n st.global.u32 [%rd0+8], %r1;\n"
      "add.sat.s32 %r1, 0x7fffffff, 1;\n st.global.u32 [%rd0+12], %r1;\n"
      "sub.sat.s32 %r1, 0x80000000, 1;\n st.global.u32 [%rd0+16], %r1;\n"
      "mad.hi.sat.s32 %r1, 0x7fffffff, 0x7fffffff, 0x7fffffff;\n"
      " st.global.u32 [%rd0+20], %r1;\n"
      "sad.s32 %r1, -5, 3, 10;\n st.global.u32 [%rd0+24], %r1;\n"
      "sad.u32 %r1, 3, 5, 1;\n st.global.u32 [%rd0+28], %r1;\n"
      "bfind.u32 %r1, 0x00f00000;\n st.global.u32 [%rd0+32], %r1;\n"
      "bfind.s32 %r1, -1;\n st.global.u32 [%rd0+36], %r1;\n"
      "bfind.s32 %r1, 0xfff0ffff;\n st.global.u32 [%rd0+40], %r1;\n"
      "bfind.shiftamt.u32 %r1, 1;\n st.global.u32 [%rd0+44], %r1;\n"
      "shf.l.wrap.b32 %r1, 0x80000001, 3, 36;\n st.global.u32 [%rd0+48], %r1;\n"
      "shf.r.clamp.b32 %r1, 0x80000001, 3, 40;\n st.global.u32 [%rd0+52], %r1;\n"
      "shf.r.wrap.b32 %r1, 0x80000001, 3, 4;\n st.global.u32 [%rd0+56], %r1;\n"
      "dp4a.u32.s32 %r1, 0x01020304, 0xff010203, 10;\n"
      " st.global.u32 [%rd0+60], %r1;\n"
      "dp2a.lo.u32.u32 %r1, 0x00020003, 0x04030201, 0;\n"
      " st.global.u32 [%rd0+64], %r1;\n"
      "dp2a.hi.u32.u32 %r1, 0x00020003, 0x04030201, 0;\n"
      " st.global.u32 [%rd0+68], %r1;\n"
      "min.NaN.f32 %f1, 0f7FC00000, 0f3F800000;\n st.global.f32 [%rd0+72], %f1;\n"
      "set.lt.u32.s32 %r1, -1, 0;\n st.global.u32 [%rd0+76], %r1;\n"
      "set.lt.f32.u32 %r1, 0xffffffff, 0;\n st.global.u32 [%rd0+80], %r1;\n"
      "set.eq.and.f32.f32 %r1, 0f3F800000, 0f3F800000, %p7;\n"
      " st.global.u32 [%rd0+84], %r1;\n"
      "setp.ne.u32 %p6, %r0, 99;\n"
      "set.equ.or.s32.f64 %r1, 0d7FF8000000000000, 0d0000000000000000, "
      "!%p6;\n"
      " st.global.u32 [%rd0+88], %r1;\n";
  uint64_t out[256];
  const uint32_t *o = (const uint32_t *)out;
  const float *of = (const float *)out;

  ck_assert_int_eq(run_body(body, NULL, out, 1), PTX_OK);
  ck_assert_uint_eq(o[0], 0xff000000u);
  ck_assert_uint_eq(o[1], 0xfffffe00u);
  ck_assert_uint_eq(o[2], 22);
  ck_assert_uint_eq(o[3], 0x7fffffffu);
  ck_assert_uint_eq(o[4], 0x80000000u);
  ck_assert_uint_eq(o[5], 0x7fffffffu);
  ck_assert_uint_eq(o[6], 18);
  ck_assert_uint_eq(o[7], 3);
  ck_assert_uint_eq(o[8], 23);
  ck_assert_uint_eq(o[9], 0xffffffffu);
  ck_assert_uint_eq(o[10], 19);
  ck_assert_uint_eq(o[11], 31);
  ck_assert_uint_eq(o[12], 0x38);          /* 36 mod 32 = 4 */
  ck_assert_uint_eq(o[13], 3);             /* clamped to 32: b */
  ck_assert_uint_eq(o[14], 0x38000000u);
  ck_assert_uint_eq(o[15], 29);
  ck_assert_uint_eq(o[16], 7);
  ck_assert_uint_eq(o[17], 17);
  ck_assert(isnan(of[18]));
  ck_assert_uint_eq(o[19], 0xffffffffu);
  ck_assert_uint_eq(o[20], 0);             /* unsigned: 2^32-1 < 0 no */
  ck_assert_uint_eq(o[21], 0);             /* and with %p7 (false) */
  ck_assert_uint_eq(o[22], 0xffffffffu);   /* NaN: unordered equal */
}
END_TEST

START_TEST(test_ptx_match_and_warp_sync) {
  /* match.any/all, and bar.warp.sync waiting for the member lanes: odd
   * lanes store to shared memory on a detour placed after it, even lanes
   * reach it first; after it everyone reads a neighbour's value. */
  static const char text[] =
      HDR
      ".visible .entry w(.param .u64 w_out)\n{\n"
      ".shared .align 4 .b8 sh[128];\n"
      ".reg .pred %p<4>;\n.reg .b32 %r<12>;\n.reg .b64 %rd<6>;\n"
      "ld.param.u64 %rd1, [w_out];\n"
      "mov.u32 %r1, %tid.x;\n"
      "and.b32 %r2, %r1, 3;\n"
      "match.any.sync.b32 %r3, %r2, -1;\n"
      "match.all.sync.b32 %r4|%p1, 5, -1;\n"
      "match.all.sync.b32 %r5|%p2, %r1, -1;\n"
      "selp.u32 %r6, 1, 0, %p1;\n selp.u32 %r7, 2, 0, %p2;\n"
      "or.b32 %r6, %r6, %r7;\n"
      "mov.u32 %r8, sh;\n"
      "shl.b32 %r9, %r1, 2;\n add.s32 %r9, %r8, %r9;\n"
      "and.b32 %r10, %r1, 1;\n setp.ne.s32 %p3, %r10, 0;\n"
      "@%p3 bra $L_late;\n"
      "st.shared.u32 [%r9], %r1;\n"
      "$L_back:\n"
      "bar.warp.sync -1;\n"
      "xor.b32 %r10, %r1, 1;\n shl.b32 %r10, %r10, 2;\n"
      "add.s32 %r10, %r8, %r10;\n ld.shared.u32 %r11, [%r10];\n"
      "mul.wide.u32 %rd2, %r1, 16;\n add.s64 %rd3, %rd1, %rd2;\n"
      "st.global.v4.u32 [%rd3], {%r3, %r4, %r6, %r11};\n"
      "ret;\n"
      "$L_late:\n"
      "add.s32 %r11, %r1, 1000;\n st.shared.u32 [%r9], %r11;\n"
      "bra.uni $L_back;\n}\n";
  struct ptx_module *m = load_ok(text);
  uint32_t *out = dev_alloc(32 * 16);
  uint64_t params[1] = {dptr(out)};

  ck_assert_int_eq(launch(ptx_module_kernel(m, "w"), 1, 1, 32, 1, 0, params,
                          8, 1),
                   PTX_OK);
  for (uint32_t t = 0; t < 32; t++) {
    uint32_t n = t ^ 1;
    ck_assert_uint_eq(out[t * 4], 0x11111111u << (t & 3));
    ck_assert_uint_eq(out[t * 4 + 1], 0xffffffffu);
    ck_assert_uint_eq(out[t * 4 + 2], 1);
    ck_assert_uint_eq(out[t * 4 + 3], (n & 1) ? n + 1000 : n);
  }
  ptx_module_free(m);
  dev_reset();
}
END_TEST

START_TEST(test_ptx_barriers_named_and_deadlocked) {
  /* A .shared variable of a .func, a block barrier with a thread count
   * that can never be reached, and one that the exited threads do not
   * hold up. */
  static const char text[] =
      HDR
      ".func f(.param .b32 f_t)\n{\n"
      ".shared .align 4 .b8 fsh[256];\n"
      ".reg .b32 %r<4>;\n"
      "ld.param.b32 %r1, [f_t];\n"
      "mov.u32 %r2, fsh;\n shl.b32 %r3, %r1, 2;\n add.s32 %r2, %r2, %r3;\n"
      "st.shared.u32 [%r2], %r1;\nret;\n}\n"
      ".func (.param .b32 g_r) g(.param .b32 g_t)\n{\n"
      ".shared .align 4 .b8 fsh2[256];\n"
      ".reg .b32 %r<4>;\n"
      "ld.param.b32 %r1, [g_t];\n"
      "mov.u32 %r2, fsh;\n" /* not visible here: its own name space */
      "st.param.b32 [g_r], %r1;\nret;\n}\n"
      ".visible .entry k(.param .u64 k_out, .param .u32 k_mode)\n{\n"
      ".reg .pred %p<3>;\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n"
      "ld.param.u64 %rd1, [k_out];\n ld.param.u32 %r5, [k_mode];\n"
      "mov.u32 %r1, %tid.x;\n"
      "setp.eq.s32 %p1, %r5, 1;\n @%p1 bra $L_dead;\n"
      "setp.ge.u32 %p2, %r1, 48;\n @%p2 bra $L_exit;\n"
      "{\n.param .b32 a;\nst.param.b32 [a], %r1;\ncall.uni f, (a);\n}\n"
      "bar.sync 0;\n"
      "xor.b32 %r2, %r1, 1;\n"
      "{\n.param .b32 a;\nst.param.b32 [a], %r2;\n.param .b32 r;\n"
      "call.uni (r), g, (a);\nld.param.b32 %r2, [r];\n}\n"
      "mul.wide.u32 %rd2, %r1, 4;\n add.s64 %rd3, %rd1, %rd2;\n"
      "st.global.u32 [%rd3], %r2;\n"
      "$L_exit:\nret;\n"
      "$L_dead:\nbar.sync 1, 64;\nret;\n}\n";
  /* g's "mov.u32 %r2, fsh" must not resolve: fsh belongs to f */
  load_fails(text, PTX_E_UNSUPPORTED, "'mov.u32 %r2, fsh;'");
  {
    char *fixed = strdup(text), *p;
    struct ptx_module *m;
    uint32_t *out = dev_alloc(64 * 4);
    uint64_t params[2] = {dptr(out), 0};
    ck_assert_ptr_nonnull(fixed);
    p = strstr(fixed, "mov.u32 %r2, fsh;\" /*") ? NULL
        : strstr(strstr(fixed, ".func (.param"), "mov.u32 %r2, fsh;");
    ck_assert_ptr_nonnull(p);
    memcpy(p, "mov.u32 %r2, 0  ;", 17);
    m = load_ok(fixed);
    ck_assert_uint_ge(ptx_kernel_shared_size(ptx_module_kernel(m, "k")),
                      512);
    ck_assert_int_eq(launch(ptx_module_kernel(m, "k"), 1, 1, 64, 1, 0,
                            params, 12, 1),
                     PTX_OK);
    for (uint32_t t = 0; t < 48; t++)
      ck_assert_uint_eq(out[t], t ^ 1);
    params[1] = 1;
    ck_assert_int_eq(launch(ptx_module_kernel(m, "k"), 1, 1, 32, 1, 0,
                            params, 12, 1),
                     PTX_E_DEADLOCK);
    ck_assert_msg(strstr(errbuf, "barrier 1 never completes: 32 of 64") &&
                      strstr(errbuf, "bar.sync 1, 64"),
                  "%s", errbuf);
    ptx_module_free(m);
    free(fixed);
    dev_reset();
  }
}
END_TEST

START_TEST(test_ptx_module_queries) {
  static const char text[] =
      ".version 8.7\n.target sm_86\n.address_size 64\n"
      ".const .align 4 .u32 c1 = 5;\n"
      ".const .align 8 .f64 c2[3];\n"
      ".global .align 4 .u32 g1;\n"
      ".visible .entry k()\n{\n"
      ".reg .pred %p<2>;\n.reg .b32 %r<5>;\n.reg .b64 %rd1;\n"
      "{\n.reg .b32 %t<3>;\n}\nret;\n}\n"
      ".visible .entry big()\n{\n.reg .b32 %r<300>;\nret;\n}\n";
  struct ptx_module *m = load_ok(text);

  ck_assert_int_eq(ptx_module_ptx_version(m), 87);
  ck_assert_int_eq(ptx_module_target(m), 86);
  ck_assert_uint_eq(ptx_module_const_size(m), 32);
  ck_assert_uint_eq(ptx_kernel_num_regs(ptx_module_kernel(m, "k")), 11);
  ck_assert_uint_eq(ptx_kernel_num_regs(ptx_module_kernel(m, "big")), 255);
  ptx_module_free(m);
  m = load_ok(HDR ".visible .entry k()\n{\nret;\n}\n");
  ck_assert_int_eq(ptx_module_ptx_version(m), 90);
  ck_assert_int_eq(ptx_module_target(m), 75);
  ck_assert_uint_eq(ptx_module_const_size(m), 0);
  ck_assert_uint_eq(ptx_kernel_num_regs(ptx_module_kernel(m, "k")), 0);
  ptx_module_free(m);
}
END_TEST

/* ptx_module_link_with() takes at most PTX_MAX_TEXT bytes of joined text:
 * the units and, when there are several, a newline after each. */
START_TEST(test_ptx_link_size_limit_counts_separators) {
  const size_t max = PTX_MAX_TEXT, s = strlen(HDR);
  char *big = malloc(max);
  const char *texts[3];
  size_t lens[3];
  struct ptx_module *m = NULL;

  ck_assert_ptr_nonnull(big);
  memset(big, ' ', max);
  memcpy(big, HDR, s);
  texts[0] = big;
  texts[1] = texts[2] = HDR;
  lens[1] = lens[2] = s;
  /* Joined: exactly the limit. */
  lens[0] = max - 2 - s;
  ck_assert_msg(ptx_module_link_with(texts, lens, 2, NULL, &m, errbuf,
                                     sizeof(errbuf)) == PTX_OK,
                "%s", errbuf);
  ck_assert_ptr_nonnull(m);
  ptx_module_free(m);
  /* One byte over, through the separators only. */
  lens[0] = max - 1 - s;
  m = (struct ptx_module *)1;
  ck_assert_int_eq(ptx_module_link_with(texts, lens, 2, NULL, &m, errbuf,
                                        sizeof(errbuf)),
                   PTX_E_INVALID);
  ck_assert_ptr_null(m);
  ck_assert_msg(strstr(errbuf, "too large"), "%s", errbuf);
  /* A first unit of the whole limit leaves no room for its newline, let
   * alone for the units after it. */
  for (unsigned n = 2; n <= 3; n++) {
    lens[0] = max;
    ck_assert_int_eq(ptx_module_link_with(texts, lens, n, NULL, &m, errbuf,
                                          sizeof(errbuf)),
                     PTX_E_INVALID);
    lens[0] = max - 1;
    ck_assert_int_eq(ptx_module_link_with(texts, lens, n, NULL, &m, errbuf,
                                          sizeof(errbuf)),
                     PTX_E_INVALID);
  }
  /* Lengths that would wrap a sum. */
  lens[0] = s;
  lens[1] = SIZE_MAX;
  ck_assert_int_eq(ptx_module_link_with(texts, lens, 2, NULL, &m, errbuf,
                                        sizeof(errbuf)),
                   PTX_E_INVALID);
  lens[1] = SIZE_MAX - s;
  ck_assert_int_eq(ptx_module_link_with(texts, lens, 2, NULL, &m, errbuf,
                                        sizeof(errbuf)),
                   PTX_E_INVALID);
  free(big);
}
END_TEST

/* A .weak .entry that two linked units define (nvcc -rdc=true emits a
 * template kernel's instantiation so) is one kernel, listed once; with
 * many kernels the list is still in the order of the text. */
START_TEST(test_ptx_link_weak_entries_listed_once) {
  enum { N = 1500 };
  char *u[2] = {NULL, NULL};
  size_t cap = 64 * N + 64, lens[2];
  struct ptx_module *m = NULL;

  for (int k = 0; k < 2; k++) {
    size_t len;
    ck_assert_ptr_nonnull(u[k] = malloc(cap));
    len = (size_t)snprintf(u[k], cap, "%s", HDR);
    for (int i = 0; i < N; i++)
      len += (size_t)snprintf(u[k] + len, cap - len,
                              ".weak .entry w%d()\n{\nret;\n}\n"
                              ".visible .entry %c%d()\n{\nret;\n}\n",
                              i, k ? 'b' : 'a', i);
    ck_assert_uint_lt(len, cap);
    lens[k] = len;
  }
  ck_assert_msg(ptx_module_link_with((const char *const *)u, lens, 2, NULL,
                                     &m, errbuf, sizeof(errbuf)) == PTX_OK,
                "%s", errbuf);
  /* w0 a0 w1 a1 ... (unit 1), then b0 b1 ... (unit 2's w are unit 1's). */
  ck_assert_uint_eq(ptx_module_kernel_count(m), 3 * N);
  for (uint32_t i = 0; i < 3 * N; i++) {
    const struct ptx_kernel *k = ptx_module_kernel_at(m, i);
    char want[32];
    ck_assert_ptr_nonnull(k);
    if (i < 2 * N)
      snprintf(want, sizeof(want), "%c%u", i % 2 ? 'a' : 'w', i / 2);
    else
      snprintf(want, sizeof(want), "b%u", i - 2 * N);
    ck_assert_str_eq(ptx_kernel_name(k), want);
    ck_assert_ptr_eq(ptx_module_kernel(m, want), k);
  }
  ck_assert_ptr_null(ptx_module_kernel_at(m, 3 * N));
  ck_assert_ptr_null(ptx_module_kernel_at(m, UINT32_MAX));
  ptx_module_free(m);
  /* One unit: every kernel, the .weak ones included. */
  ck_assert_msg(ptx_module_link_with((const char *const *)u, lens, 1, NULL,
                                     &m, errbuf, sizeof(errbuf)) == PTX_OK,
                "%s", errbuf);
  ck_assert_uint_eq(ptx_module_kernel_count(m), 2 * N);
  ck_assert_str_eq(ptx_kernel_name(ptx_module_kernel_at(m, 0)), "w0");
  ck_assert_str_eq(ptx_kernel_name(ptx_module_kernel_at(m, 2 * N - 1)),
                   "a1499"); /* N - 1 */
  ptx_module_free(m);
  ck_assert_uint_eq(ptx_module_kernel_count(NULL), 0);
  ck_assert_ptr_null(ptx_module_kernel_at(NULL, 0));
  free(u[0]);
  free(u[1]);
}
END_TEST

/* ---- nvcc-built kernels --------------------------------------------- */

static char *kernels_text;
static size_t kernels_len;

static bool read_kernels(void) {
  const char *path = getenv("GP_TEST_PTX_KERNELS");
  FILE *f;
  long n;

  if (!path || !*path)
    return false;
  if (!(f = fopen(path, "rb")))
    return false;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  kernels_text = malloc((size_t)n + 1);
  if (!kernels_text || fread(kernels_text, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    return false;
  }
  fclose(f);
  kernels_len = (size_t)n;
  kernels_text[n] = 0;
  return true;
}

static struct ptx_module *kmod;

static void kernels_setup(void) {
  int rc = ptx_module_load(kernels_text, kernels_len, &kmod, errbuf,
                           sizeof(errbuf));
  ck_assert_msg(rc == PTX_OK, "nvcc output does not load: %s", errbuf);
}

static void kernels_teardown(void) {
  ptx_module_free(kmod);
  kmod = NULL;
  dev_reset();
}

static const struct ptx_kernel *kern(const char *name) {
  const struct ptx_kernel *k = ptx_module_kernel(kmod, name);
  ck_assert_msg(k != NULL, "no kernel %s", name);
  return k;
}

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

START_TEST(test_ptx_nvcc_vector_add) {
  const struct ptx_kernel *k = kern("vectorAdd");
  int n = 1000;
  float *a = dev_alloc(n * 4), *b = dev_alloc(n * 4), *c = dev_alloc(n * 4);
  uint64_t pa = dptr(a), pb = dptr(b), pc = dptr(c);
  const void *vals[] = {&pa, &pb, &pc, &n};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 4);
  unsigned s = 1;

  for (int i = 0; i < n; i++) {
    a[i] = frand(&s);
    b[i] = frand(&s);
  }
  ck_assert_int_eq(launch(k, (n + 255) / 256, 1, 256, 1, 0, params, ps,
                          (unsigned)_i + 1),
                   PTX_OK);
  for (int i = 0; i < n; i++)
    ck_assert(c[i] == a[i] + b[i]);
}
END_TEST

START_TEST(test_ptx_nvcc_saxpy_daxpy) {
  const struct ptx_kernel *ks = kern("saxpy"), *kd = kern("daxpy");
  int n = 777;
  float alpha = 1.75f;
  double dalpha = -0.3;
  float *x = dev_alloc(n * 4), *y = dev_alloc(n * 4), *y0 = malloc(n * 4);
  double *dx = dev_alloc(n * 8), *dy = dev_alloc(n * 8),
         *dy0 = malloc(n * 8);
  uint64_t px = dptr(x), py = dptr(y), pdx = dptr(dx), pdy = dptr(dy);
  const void *vs[] = {&n, &alpha, &px, &py};
  const void *vd[] = {&n, &dalpha, &pdx, &pdy};
  uint8_t params[256];
  size_t ps;
  unsigned s = 7;

  for (int i = 0; i < n; i++) {
    x[i] = frand(&s);
    y[i] = y0[i] = frand(&s);
    dx[i] = frand(&s);
    dy[i] = dy0[i] = frand(&s);
  }
  ps = pack(ks, params, vs, 4);
  ck_assert_int_eq(launch(ks, 4, 1, 256, 1, 0, params, ps, 2), PTX_OK);
  ps = pack(kd, params, vd, 4);
  ck_assert_int_eq(launch(kd, 4, 1, 256, 1, 0, params, ps, 2), PTX_OK);
  /* nvcc fuses a * x + y into fma; with -G it does not. */
  for (int i = 0; i < n; i++) {
    ck_assert(y[i] == fmaf(x[i], alpha, y0[i]) ||
              y[i] == x[i] * alpha + y0[i]);
    ck_assert(dy[i] == fma(dx[i], dalpha, dy0[i]) ||
              dy[i] == dx[i] * dalpha + dy0[i]);
  }
  free(y0);
  free(dy0);
}
END_TEST

START_TEST(test_ptx_nvcc_matrix_mul_shared) {
  const struct ptx_kernel *k = kern("matrixMul");
  int wa = 48, ha = 32, wb = 64; /* multiples of the 16x16 tile */
  float *A = dev_alloc((size_t)wa * ha * 4), *B = dev_alloc((size_t)wb * wa * 4);
  float *C = dev_alloc((size_t)wb * ha * 4);
  uint64_t pc = dptr(C), pa = dptr(A), pb = dptr(B);
  const void *vals[] = {&pc, &pa, &pb, &wa, &wb};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 5);
  unsigned s = 3;

  for (int i = 0; i < wa * ha; i++)
    A[i] = frand(&s);
  for (int i = 0; i < wb * wa; i++)
    B[i] = frand(&s);
  ck_assert_uint_eq(ptx_kernel_shared_size(k), 2048);
  ck_assert_int_eq(launch(k, wb / 16, ha / 16, 16, 16, 0, params, ps, 0),
                   PTX_OK);
  for (int r = 0; r < ha; r++)
    for (int c = 0; c < wb; c++) {
      float ref = 0;
      for (int i = 0; i < wa; i++)
        ref = fmaf(A[r * wa + i], B[i * wb + c], ref);
      ck_assert_float_eq_tol(C[r * wb + c], ref, 1e-4f);
    }
}
END_TEST

START_TEST(test_ptx_nvcc_shuffle_reduction) {
  const struct ptx_kernel *k = kern("reduceShfl");
  int n = 10000;
  float *in = dev_alloc(n * 4), *out = dev_alloc(4);
  uint64_t pi = dptr(in), po = dptr(out);
  const void *vals[] = {&pi, &po, &n};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 3);
  double ref = 0;

  for (int i = 0; i < n; i++) {
    in[i] = (float)(i % 17) * 0.25f;
    ref += in[i];
  }
  ck_assert_int_eq(launch(k, 5, 1, 256, 1, 8 * 4, params, ps, 2), PTX_OK);
  ck_assert_float_eq_tol(*out, (float)ref, 1e-2f);
}
END_TEST

START_TEST(test_ptx_nvcc_atomic_histogram) {
  const struct ptx_kernel *k = kern("histogram");
  int n = 100000;
  uint8_t *data = dev_alloc(n);
  uint32_t *bins = dev_alloc(256 * 4), ref[256] = {0};
  uint64_t pd = dptr(data), pb = dptr(bins);
  const void *vals[] = {&pd, &pb, &n};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 3);
  unsigned s = 11;

  for (int i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    data[i] = (uint8_t)(s >> 16);
    ref[data[i]]++;
  }
  ck_assert_int_eq(launch(k, 8, 1, 192, 1, 0, params, ps, 4), PTX_OK);
  for (int i = 0; i < 256; i++)
    ck_assert_uint_eq(bins[i], ref[i]);
}
END_TEST

START_TEST(test_ptx_nvcc_grid_stride_64) {
  const struct ptx_kernel *k = kern("gridStride64");
  long long n = 10007;
  double sc = 1.5;
  double *x = dev_alloc(n * 8), *y = dev_alloc(n * 8);
  uint64_t px = dptr(x), py = dptr(y);
  const void *vals[] = {&px, &py, &n, &sc};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 4);

  for (long long i = 0; i < n; i++)
    x[i] = (double)i * 0.5;
  ck_assert_int_eq(launch(k, 3, 1, 128, 1, 0, params, ps, 0), PTX_OK);
  for (long long i = 0; i < n; i++)
    ck_assert(y[i] == fma(x[i], sc, (double)(i & 7)));
}
END_TEST

START_TEST(test_ptx_nvcc_struct_param_and_ballot) {
  const struct ptx_kernel *k = kern("structArg"), *kb = kern("ballot");
  struct ptx_param_info pi;
  struct {
    float a, b;
    int n;
    double d;
    float *p;
    int q[4];
  } arg = {1.25f, 2.5f, 7, 3.75, NULL, {10, 20, 30, 40}};
  int *out = dev_alloc(32 * 4);
  float *pf = dev_alloc(32 * 4);
  uint64_t po = dptr(out);
  const void *vals[] = {&arg, &po};
  uint8_t params[256];
  size_t ps;

  ck_assert_int_eq(ptx_kernel_param(k, 0, &pi), PTX_OK);
  ck_assert_uint_eq(pi.size, sizeof(arg));
  ck_assert_uint_eq(pi.align, 8);
  arg.p = pf;
  ps = pack(k, params, vals, 2);
  ck_assert_int_eq(launch(k, 1, 1, 32, 1, 0, params, ps, 1), PTX_OK);
  for (int t = 0; t < 32; t++) {
    ck_assert_int_eq(out[t], 3 + 7 + 3 + arg.q[t & 3]);
    ck_assert(pf[t] == 1.25f);
  }
  {
    const void *vb[] = {&po};
    ps = pack(kb, params, vb, 1);
    ck_assert_int_eq(launch(kb, 1, 1, 32, 1, 0, params, ps, 1), PTX_OK);
    for (int t = 0; t < 32; t++) {
      unsigned b = 0xaaaaaaaau;
      unsigned clz = t == 0 ? 32 : (unsigned)__builtin_clz((unsigned)t);
      ck_assert_uint_eq((unsigned)out[t], b + 16 + clz);
    }
  }
}
END_TEST

START_TEST(test_ptx_nvcc_out_of_bounds_faults) {
  const struct ptx_kernel *k = kern("oob");
  int *p = dev_alloc(16);
  uint64_t pp = dptr(p);
  long long off = 3;
  const void *vals[] = {&pp, &off};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 2);

  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, ps, 1), PTX_OK);
  ck_assert_int_eq(p[3], 1);
  off = 4;
  ps = pack(k, params, vals, 2);
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, ps, 1),
                   PTX_E_ILLEGAL_ADDRESS);
  ck_assert_ptr_nonnull(strstr(errbuf, "kernel 'oob'"));
  ck_assert_ptr_nonnull(strstr(errbuf, "illegal global write"));
}
END_TEST

/* |got| is within |rel| of |want| (relative, or absolute near 0). */
static void near(double got, double want, double rel, const char *what,
                 int i) {
  double tol = rel * (fabs(want) > 1 ? fabs(want) : 1);
  ck_assert_msg(got == want || fabs(got - want) <= tol ||
                    (isnan(got) && isnan(want)),
                "%s[%d]: got %.17g, want %.17g", what, i, got, want);
}

START_TEST(test_ptx_nvcc_math_library) {
  const struct ptx_kernel *kf = kern("mathf"), *kd = kern("mathd");
  enum { N = 200 };
  int n = N;
  float *x = dev_alloc(N * 4), *y = dev_alloc(N * 8 * 4);
  double *dx = dev_alloc(N * 8), *dy = dev_alloc(N * 6 * 8);
  uint64_t px = dptr(x), py = dptr(y), pdx = dptr(dx), pdy = dptr(dy);
  const void *vf[] = {&px, &py, &n}, *vd[] = {&pdx, &pdy, &n};
  uint8_t params[256];
  size_t ps;

  for (int i = 0; i < N; i++) {
    /* small, medium and huge arguments (the last take the slow path of
     * the trigonometric argument reduction, a .func call) */
    double v = i < 100 ? (i - 50) * 0.173 : i < 180 ? (i - 140) * 37.1
                                                    : (i - 170) * 1.7e7;
    x[i] = (float)v;
    dx[i] = v;
  }
  ps = pack(kf, params, vf, 3);
  ck_assert_int_eq(launch(kf, 2, 1, 128, 1, 0, params, ps, 2), PTX_OK);
  ps = pack(kd, params, vd, 3);
  ck_assert_int_eq(launch(kd, 2, 1, 128, 1, 0, params, ps, 2), PTX_OK);
  for (int i = 0; i < N; i++) {
    float v = x[i];
    double d = dx[i];
    near(y[i * 8 + 0], sin((double)v), 2e-6, "sinf", i);
    near(y[i * 8 + 1], cos((double)v), 2e-6, "cosf", i);
    near(y[i * 8 + 2], (float)exp((double)(v * 0.1f)), 2e-6, "expf", i);
    near(y[i * 8 + 3], log(fabs((double)v) + 1.0), 2e-6, "logf", i);
    near(y[i * 8 + 4], (float)pow(fabs((double)v), (double)1.3f), 4e-6,
         "powf", i);
    near(y[i * 8 + 5], sqrt(fabs((double)v)) + tanh((double)(v * 0.01f)),
         2e-6, "sqrtf+tanhf", i);
    near(y[i * 8 + 6], erf((double)(v * 0.001f)), 2e-6, "erff", i);
    near(y[i * 8 + 7], atan2((double)v, 1.5), 2e-6, "atan2f", i);
    near(dy[i * 6 + 0], sin(d), 1e-14, "sin", i);
    near(dy[i * 6 + 1], cos(d), 1e-14, "cos", i);
    near(dy[i * 6 + 2], exp(d * 1e-3), 1e-14, "exp", i);
    near(dy[i * 6 + 3], log(fabs(d) + 1.0), 1e-14, "log", i);
    near(dy[i * 6 + 4], pow(fabs(d), 1.3), 1e-14, "pow", i);
    ck_assert(dy[i * 6 + 5] == d / 3.0 + sqrt(fabs(d)));
  }
}
END_TEST

START_TEST(test_ptx_nvcc_noinline_call_and_cg) {
  const struct ptx_kernel *k = kern("callFunc"), *kc = kern("cgReduce");
  int n = 300;
  float *x = dev_alloc(n * 4), *y = dev_alloc(n * 4);
  int *in = dev_alloc(64 * 4), *out = dev_alloc(65 * 4);
  uint64_t px = dptr(x), py = dptr(y), pin = dptr(in), pout = dptr(out);
  const void *vals[] = {&px, &py, &n}, *vc[] = {&pin, &pout};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 3);
  int sum = 0;

  for (int i = 0; i < n; i++)
    x[i] = (float)i * 0.5f;
  ck_assert_int_eq(launch(k, 3, 1, 128, 1, 0, params, ps, 1), PTX_OK);
  for (int i = 0; i < n; i++)
    ck_assert(y[i] == ((i & 1) ? x[i] * (float)i + 1.0f : x[i]));
  for (int i = 0; i < 64; i++) {
    in[i] = (i * 7) % 11;
    sum += in[i];
  }
  ps = pack(kc, params, vc, 2);
  ck_assert_int_eq(launch(kc, 1, 1, 64, 1, 0, params, ps, 1), PTX_OK);
  ck_assert_int_eq(out[0], sum);
  for (int i = 0; i < 64; i++) {
    int base = i & ~7, any = 0;
    for (int j = 0; j < 8; j++)
      any |= in[base + j] > 5;
    ck_assert_int_eq(out[1 + i], in[base + 3] + any * 1000);
  }
}
END_TEST

START_TEST(test_ptx_nvcc_spin_lock_completes) {
  const struct ptx_kernel *k = kern("spinLock");
  int *lock = dev_alloc(4), *counter = dev_alloc(4);
  uint64_t pl = dptr(lock), pc = dptr(counter);
  const void *vals[] = {&pl, &pc};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 2);

  ck_assert_int_eq(launch(k, 2, 1, 64, 1, 0, params, ps, 1), PTX_OK);
  ck_assert_int_eq(*counter, 128);
  ck_assert_int_eq(*lock, 0);
}
END_TEST

/* What a launch printed: every print call's text, in the order they
 * came. */
struct capture {
  pthread_mutex_t lock;
  char *buf;
  size_t len, cap;
  unsigned calls;
};

static void capture_print(void *opaque, const char *text, size_t len) {
  struct capture *c = opaque;

  pthread_mutex_lock(&c->lock);
  if (c->len + len + 1 > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4096;
    while (cap < c->len + len + 1)
      cap *= 2;
    c->buf = realloc(c->buf, cap);
    ck_assert_ptr_nonnull(c->buf);
    c->cap = cap;
  }
  memcpy(c->buf + c->len, text, len);
  c->len += len;
  c->buf[c->len] = 0;
  c->calls++;
  /* one call is one whole printf: it ends its line */
  ck_assert_msg(len > 0 && text[len - 1] == '\n', "partial text '%.*s'",
                (int)len, text);
  pthread_mutex_unlock(&c->lock);
}

static int launch_print(const struct ptx_kernel *k, unsigned gx, unsigned bx,
                        const void *params, size_t psize, unsigned threads,
                        struct capture *c) {
  struct ptx_launch l = {
    .grid = {gx, 1, 1},
    .block = {bx, 1, 1},
    .params = params,
    .params_size = psize,
    .mem = &mem_ops,
    .max_threads = threads,
    .print = capture_print,
    .print_opaque = c,
  };
  return ptx_launch(k, &l, errbuf, sizeof(errbuf));
}

static void capture_init(struct capture *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->lock, NULL);
}

static void capture_free(struct capture *c) {
  free(c->buf);
  pthread_mutex_destroy(&c->lock);
}

START_TEST(test_ptx_nvcc_printf_conversions) {
  const struct ptx_kernel *k = kern("printfAll");
  int i = -42;
  long long ll = -1234567890123LL;
  unsigned u = 3000000000u;
  float f = 3.14159265f;
  double d = -12345.678901;
  char *s = dev_alloc(64);
  uint64_t ps = dptr(s);
  const void *vals[] = {&i, &ll, &u, &f, &d, &ps};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 6);
  struct capture c;
  char want[2048];
  int n = 0;

  strcpy(s, "hello, device");
  n += snprintf(want + n, sizeof(want) - (size_t)n,
                "i=%d ll=%lld u=%u x=%x X=%#X o=%o c=%c s=%s lit=%s %%\n", i,
                ll, u, u, u, u, 'Z', s, "lit");
  n += snprintf(want + n, sizeof(want) - (size_t)n,
                "f=%.3f e=%e E=%.2E g=%g G=%G a=%a A=%A F=%F\n", (double)f,
                d, d, d, d, d, d, d);
  n += snprintf(want + n, sizeof(want) - (size_t)n,
                "[%5d|%-5d|%05d|%+d|% d|%*d|%-*d|%.*f|%.0f|%#.0f]\n", i, i, i,
                i, i, 7, i, 6, i, 2, d, d, d);
  n += snprintf(want + n, sizeof(want) - (size_t)n,
                "[%hhd|%hd|%hu|%ld|%lu|%zu|%lx|%10.4e|%-12.3g|%.10s|%8s]\n",
                (char)i, (short)i, (unsigned short)u, (long)ll,
                (unsigned long)ll, (size_t)ll, (unsigned long)ll, d, d, s,
                "ab");
  n += snprintf(want + n, sizeof(want) - (size_t)n, "p=%p null=%p\n",
                (void *)s, (void *)0);
  capture_init(&c);
  ck_assert_int_eq(launch_print(k, 1, 1, params, psz, 1, &c), PTX_OK);
  ck_assert_uint_eq(c.calls, 5);
  ck_assert_str_eq(c.buf, want);
  /* Without a print callback the output is dropped. */
  ck_assert_int_eq(launch(k, 1, 1, 1, 1, 0, params, psz, 1), PTX_OK);
  capture_free(&c);
}
END_TEST

START_TEST(test_ptx_nvcc_printf_many_threads) {
  const struct ptx_kernel *k = kern("printfMany");
  int tag = 77;
  const void *vals[] = {&tag};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 1);
  enum { BLOCKS = 5, THREADS = 100 };
  static bool seen[BLOCKS][THREADS];
  unsigned done = 0;
  struct capture c;

  capture_init(&c);
  memset(seen, 0, sizeof(seen));
  ck_assert_int_eq(launch_print(k, BLOCKS, THREADS, params, psz, 2, &c),
                   PTX_OK);
  ck_assert_uint_eq(c.calls, BLOCKS * THREADS + BLOCKS);
  for (char *line = c.buf, *nl; *line; line = nl + 1) {
    int t, b, g;
    nl = strchr(line, '\n');
    ck_assert_ptr_nonnull(nl);
    if (strncmp(line, "block done\n", 11) == 0) {
      done++;
      continue;
    }
    ck_assert_int_eq(sscanf(line, "thread %d of block %d tag %d", &t, &b, &g),
                     3);
    ck_assert(t >= 0 && t < THREADS && b >= 0 && b < BLOCKS && g == 77);
    ck_assert_msg(!seen[b][t], "line twice: %.*s", (int)(nl - line), line);
    seen[b][t] = true;
  }
  ck_assert_uint_eq(done, BLOCKS);
  capture_free(&c);
}
END_TEST

START_TEST(test_ptx_nvcc_printf_return_and_bad_string) {
  const struct ptx_kernel *k = kern("printfRet");
  int *out = dev_alloc(8);
  uint64_t po = dptr(out), bad = 0x1000;
  const void *vals[] = {&po, &bad};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 2);
  struct capture c;

  capture_init(&c);
  ck_assert_int_eq(launch_print(k, 1, 1, params, psz, 1, &c), PTX_OK);
  ck_assert_str_eq(c.buf, "12345\n<bad address>|\n");
  ck_assert_int_eq(out[0], 6);   /* the bytes printed */
  ck_assert_int_eq(out[1], 15);
  capture_free(&c);
}
END_TEST

START_TEST(test_ptx_nvcc_assert_fails_launch) {
  const struct ptx_kernel *k = kern("assertKernel");
  int *x = dev_alloc(32 * 4);
  uint64_t px = dptr(x);
  const void *vals[] = {&px};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 1);
  struct capture c;

  capture_init(&c);
  ck_assert_int_eq(launch_print(k, 1, 32, params, psz, 1, &c), PTX_OK);
  ck_assert_uint_eq(c.calls, 0);
  x[5] = 12;
  ck_assert_int_eq(launch_print(k, 1, 32, params, psz, 1, &c), PTX_E_ASSERT);
  ck_assert_uint_eq(c.calls, 1);
  ck_assert_msg(strstr(c.buf, "ptx_kernels.cu:") &&
                    strstr(c.buf, "assertKernel") &&
                    strstr(c.buf, "block: [0,0,0], thread: [5,0,0] Assertion "
                                  "`x[threadIdx.x] < 10` failed.\n"),
                "%s", c.buf);
  ck_assert_msg(strstr(errbuf, "kernel 'assertKernel'") &&
                    strstr(errbuf, "thread (5,0,0)") &&
                    strstr(errbuf, "assertion"),
                "%s", errbuf);
  capture_free(&c);
}
END_TEST

START_TEST(test_ptx_nvcc_barrier_reductions_and_named) {
  const struct ptx_kernel *k = kern("syncReduce"), *kn = kern("namedBarrier");
  enum { B = 3, T = 96 };
  int *in = dev_alloc(B * T * 4), *out = dev_alloc(B * 3 * 4);
  int *nout = dev_alloc(64 * 4);
  uint64_t pi = dptr(in), po = dptr(out), pn = dptr(nout);
  const void *vals[] = {&pi, &po}, *vn[] = {&pn};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 2);

  for (int i = 0; i < B * T; i++)
    in[i] = (i * 37) % 11 - 5;
  in[T + 7] = 42;          /* block 1: or true */
  in[2 * T + 9] = -200;    /* block 2: and false */
  ck_assert_int_eq(launch(k, B, 1, T, 1, 0, params, psz, 2), PTX_OK);
  for (int b = 0; b < B; b++) {
    int cnt = 0, all = 1, any = 0;
    for (int t = 0; t < T; t++) {
      int v = in[b * T + t];
      cnt += v > 0;
      all &= v > -100;
      any |= v == 42;
    }
    ck_assert_int_eq(out[b * 3], cnt);
    ck_assert_int_eq(out[b * 3 + 1], all);
    ck_assert_int_eq(out[b * 3 + 2], any);
  }
  psz = pack(kn, params, vn, 1);
  ck_assert_int_eq(launch(kn, 1, 1, 96, 1, 0, params, psz, 1), PTX_OK);
  for (int t = 32; t < 96; t++)
    ck_assert_int_eq(nout[t - 32], (t & 31) * 3 + (t >> 5));
}
END_TEST

START_TEST(test_ptx_nvcc_warp_intrinsics) {
  const struct ptx_kernel *k = kern("warpIntrinsics");
  int *in = dev_alloc(32 * 4);
  unsigned *out = dev_alloc(32 * 8 * 4);
  uint64_t pi = dptr(in), po = dptr(out);
  const void *vals[] = {&pi, &po};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 2);

  for (int t = 0; t < 32; t++)
    in[t] = t < 31 ? t * 37 + 5 : 0x12345;
  ck_assert_int_eq(launch(k, 1, 1, 32, 1, 0, params, psz, 1), PTX_OK);
  for (int t = 0; t < 32; t++) {
    const unsigned *o = out + t * 8;
    int v = in[t];
    unsigned any = 0, ffs = (unsigned)__builtin_ffs(v);
    unsigned clz = v ? (unsigned)__builtin_clz((unsigned)v) : 32;
    uint64_t cat = (uint64_t)(unsigned)t << 32 | (unsigned)v;
    unsigned fl = (unsigned)((cat << (t & 31)) >> 32);
    unsigned fr = (unsigned)(cat >> (t + 20 > 32 ? 32 : t + 20));
    int dp = 5;
    for (int j = 0; j < 32; j++)
      if ((in[j] & 3) == (v & 3))
        any |= 1u << j;
    for (int j = 0; j < 4; j++)
      dp += (int8_t)(v >> (8 * j)) * (int8_t)((t * 0x01020304) >> (8 * j));
    ck_assert_uint_eq(o[0], any);
    ck_assert_uint_eq(o[1], 0);        /* in[31] >> 8 differs */
    ck_assert_uint_eq(o[2], 0);
    ck_assert_uint_eq(o[3], ffs + clz * 100);
    ck_assert_uint_eq(o[4], fl ^ fr);
    ck_assert_uint_eq(o[5], (unsigned)(abs(v - t * 1000) + 7) +
                                ((unsigned)v > (unsigned)t
                                     ? (unsigned)v - (unsigned)t
                                     : (unsigned)t - (unsigned)v) + 1);
    ck_assert_uint_eq(o[6], (unsigned)dp);
    {
      int64_t s24 = (int64_t)((int32_t)((unsigned)v << 8) >> 8) * t;
      uint64_t u24 = (uint64_t)((unsigned)v & 0xffffff) * (unsigned)t;
      int32_t hi = (int32_t)(((int64_t)v * t) >> 32);
      ck_assert_uint_eq(o[7], (unsigned)s24 + (unsigned)u24 + (unsigned)hi);
    }
  }
}
END_TEST

START_TEST(test_ptx_nvcc_half_math) {
  const struct ptx_kernel *k = kern("halfMath");
  float *in = dev_alloc(192 * 4), *out = dev_alloc(64 * 4 * 4);
  uint16_t *hout = dev_alloc(64 * 8 * 2);
  uint32_t *h2out = dev_alloc(64 * 4 * 4);
  uint64_t pi = dptr(in), po = dptr(out), ph = dptr(hout), p2 = dptr(h2out);
  const void *vals[] = {&pi, &po, &ph, &p2};
  uint8_t params[256];
  size_t psz = pack(k, params, vals, 4);
  static const float special[] = {
    1.0f + 0x1p-11f, 2049.0f, 2051.0f, 65504.0f, 0.5f, -0.25f, 1e-5f,
    -3e-6f, 40000.0f, 0x1p-20f, 7.0f, -7.0f, 0.1f, 300.0f, 1.0f, -1.0f,
  };
  unsigned s = 5;

  for (int i = 0; i < 192; i++) {
    s = s * 1103515245u + 12345u;
    if (i % 64 < 40)
      in[i] = frand(&s) * 16.0f;
    else if (i % 64 < 48)
      in[i] = frand(&s) * 1e-5f;
    else
      in[i] = special[i % 16] * ((i & 64) ? -1.0f : 1.0f);
  }
  ck_assert_int_eq(launch(k, 1, 1, 64, 1, 0, params, psz, 1), PTX_OK);
  for (int i = 0; i < 64; i++) {
    float x = in[i], y = in[i + 64], z = in[i + 128];
    uint16_t a = ref_d2h(x, 0), b = ref_d2h(y, 0), c = ref_d2h(z, 0);
    double va = ref_h2d(a), vb = ref_h2d(b), vc = ref_h2d(c);
    const uint16_t *h = hout + i * 8;
    const uint32_t *h2 = h2out + i * 4;
    uint16_t p[2] = {a, b}, q[2] = {c, a}, r[2], sm[2];
    for (int j = 0; j < 2; j++) {
      double vp = ref_h2d(p[j]), vq = ref_h2d(q[j]);
      uint16_t sum = ref_d2h(vp + vq, 0);
      r[j] = ref_d2h(fma(vp, vq, ref_h2d(sum)), 0);
      sm[j] = ref_d2h(vp * vq, 0);
    }
    ck_assert_uint_eq(h[0], ref_d2h(va + vb, 0));
    ck_assert_uint_eq(h[1], ref_d2h(va - vb, 0));
    ck_assert_uint_eq(h[2], ref_d2h(va * vb, 0));
    ck_assert_msg(h[3] == ref_d2h(fma(va, vb, vc), 0), "fma %d: %04x %04x",
                  i, h[3], ref_d2h(fma(va, vb, vc), 0));
    ck_assert_uint_eq(h[4], ref_d2h(va > vb ? va : vb, 0));
    ck_assert_uint_eq(h[5], (a & 0x7fff) | 0x8000);
    ck_assert_uint_eq(h[6], ref_d2h(x, 1));
    ck_assert_uint_eq(h[7], (unsigned)(va < vb) | (unsigned)(va > vb) << 1 |
                                (unsigned)(va == vb) << 2);
    ck_assert_uint_eq(h2[0], r[0] | (uint32_t)r[1] << 16);
    ck_assert_uint_eq(h2[1], sm[0] | (uint32_t)sm[1] << 16);
    ck_assert_uint_eq(h2[2], sm[0] | (uint32_t)r[1] << 16);
    ck_assert_uint_eq(h2[3], va <= vc && vb <= va);
    ck_assert(out[i * 4] == (float)va + (float)va * 0.5f);
    ck_assert(out[i * 4 + 1] ==
              (float)(int)trunc(vb) + (float)(vc <= 0 ? 0 : (int)floor(vc)));
    ck_assert(out[i * 4 + 2] == (float)ref_h2d(ref_d2h(i * 1001 - 30000, 0)));
    if (fabs(va) < 8)
      near(out[i * 4 + 3], exp(va), 2e-3, "h2exp", i);
  }
}
END_TEST

START_TEST(test_ptx_nvcc_lock_then_wait_completes) {
  /* Lanes of one warp (and two warps of the block) take turns through a
   * lock, then wait for each other: needs the starved lock holder to run,
   * and the warps to take turns. */
  const struct ptx_kernel *k = kern("lockThenWait"), *kf = kern("warpFlag");
  int *lock = dev_alloc(4), *counter = dev_alloc(4), *done = dev_alloc(4);
  int *flag = dev_alloc(4), *out = dev_alloc(32 * 4);
  uint64_t pl = dptr(lock), pc = dptr(counter), pd = dptr(done);
  uint64_t pf = dptr(flag), po = dptr(out);
  const void *vals[] = {&pl, &pc, &pd}, *vf[] = {&pf, &po};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 3);

  ck_assert_int_eq(launch(k, 1, 1, 64, 1, 0, params, ps, 1), PTX_OK);
  ck_assert_int_eq(*counter, 64);
  ck_assert_int_eq(*done, 64);
  ck_assert_int_eq(*lock, 0);
  ps = pack(kf, params, vf, 2);
  ck_assert_int_eq(launch(kf, 1, 1, 64, 1, 0, params, ps, 1), PTX_OK);
  for (int t = 0; t < 32; t++)
    ck_assert_int_eq(out[t], 7);
}
END_TEST

START_TEST(test_ptx_nvcc_intra_warp_deadlock_is_reported) {
  const struct ptx_kernel *k = kern("lockDeadlock");
  int *lock = dev_alloc(4), *out = dev_alloc(32 * 4);
  uint64_t pl = dptr(lock), po = dptr(out);
  const void *vals[] = {&pl, &po};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 2);
  struct timespec t0, t1;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(launch(k, 1, 1, 32, 1, 0, params, ps, 1), PTX_E_DEADLOCK);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ck_assert_msg(strstr(errbuf, "kernel 'lockDeadlock'") &&
                    strstr(errbuf, "block (0,0,0)") &&
                    strstr(errbuf, "warp 0") &&
                    strstr(errbuf, "vote.sync.ballot") &&
                    strstr(errbuf, "a lock between lanes of one warp cannot "
                                   "make progress on the emulated device"),
                "%s", errbuf);
  printf("intra-warp deadlock reported after %.2f s: %s\n",
         (double)(t1.tv_sec - t0.tv_sec) +
             (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
         errbuf);
}
END_TEST

START_TEST(test_ptx_nvcc_module_queries) {
  ck_assert_int_eq(ptx_module_ptx_version(kmod), 90);
  ck_assert_int_eq(ptx_module_target(kmod), 75);
  ck_assert_uint_gt(ptx_kernel_num_regs(kern("mathf")), 10);
  ck_assert_uint_le(ptx_kernel_num_regs(kern("mathf")), 255);
}
END_TEST

START_TEST(test_ptx_nvcc_text_survives_mutations) {
  mutate_and_load(kernels_text, kernels_len, 300);
}
END_TEST

START_TEST(test_ptx_nvcc_speed) {
  /* Not a pass/fail check: prints thread-instructions per second. */
  const struct ptx_kernel *k = kern("spin");
  int iters = 2000;
  unsigned *out = dev_alloc(64 * 128 * 4);
  uint64_t po = dptr(out);
  const void *vals[] = {&po, &iters};
  uint8_t params[256];
  size_t ps = pack(k, params, vals, 2);
  struct timespec t0, t1;
  uint64_t n0 = ptx_stat_thread_insns(), n1;
  double sec;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(launch(k, 64, 1, 128, 1, 0, params, ps, 1), PTX_OK);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  n1 = ptx_stat_thread_insns();
  sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  for (unsigned t = 0; t < 64 * 128; t++) {
    unsigned x = t % 128;
    for (int i = 0; i < iters; i++)
      x = x * 1664525u + 1013904223u;
    ck_assert_uint_eq(out[t], x);
  }
  printf("ptx speed: %.0f million thread-instructions/s on one host thread "
         "(%llu in %.3f s)\n",
         (double)(n1 - n0) / sec / 1e6, (unsigned long long)(n1 - n0), sec);
}
END_TEST

static Suite *ptx_suite(bool with_kernels) {
  Suite *s = suite_create("ptx");
  TCase *tp = tcase_create("parse");
  TCase *ti = tcase_create("instructions");
  TCase *tk = tcase_create("nvcc");

  tcase_add_test(tp, test_ptx_parse_param_layout);
  tcase_add_test(tp, test_ptx_parse_operand_forms);
  tcase_add_test(tp, test_ptx_parse_errors_name_line_and_text);
  tcase_add_test(tp, test_ptx_parse_module_variables);
  tcase_add_test(tp, test_ptx_module_variables_in_device_memory);
  tcase_add_test(tp, test_ptx_parse_survives_mutations);
  tcase_add_test(tp, test_ptx_link_size_limit_counts_separators);
  tcase_add_test(tp, test_ptx_link_weak_entries_listed_once);
  suite_add_tcase(s, tp);

  tcase_add_test(ti, test_ptx_int_arithmetic_edges);
  tcase_add_test(ti, test_ptx_bit_instructions);
  tcase_add_test(ti, test_ptx_float_edges);
  tcase_add_test(ti, test_ptx_setp_boolop_and_predicates);
  tcase_add_test(ti, test_ptx_divergence_reconverges);
  tcase_add_test(ti, test_ptx_shfl_and_vote);
  tcase_add_test(ti, test_ptx_vote_per_lane_member_masks);
  tcase_add_test(ti, test_ptx_shfl_waits_for_member_lanes);
  tcase_add_test(ti, test_ptx_atomics);
  tcase_add_test(ti, test_ptx_generic_shared_local);
  tcase_add_test(ti, test_ptx_faults_are_reported);
  tcase_add_test(ti, test_ptx_translation_uses_lookup);
  tcase_add_test(ti, test_ptx_carry_chains);
  tcase_add_test(ti, test_ptx_spin_loop_is_cancelled);
  tcase_add_test(ti, test_ptx_func_calls);
  tcase_add_test(ti, test_ptx_half_conversions_round_once);
  tcase_add_test(ti, test_ptx_half_conversions_ints_and_f64);
  tcase_add_test(ti, test_ptx_half_arithmetic_edges);
  tcase_add_test(ti, test_ptx_bf16_fma_rounds_once);
  tcase_add_test(ti, test_ptx_more_integer_instructions);
  tcase_add_test(ti, test_ptx_match_and_warp_sync);
  tcase_add_test(ti, test_ptx_barriers_named_and_deadlocked);
  tcase_add_test(ti, test_ptx_module_queries);
  suite_add_tcase(s, ti);

  if (with_kernels) {
    tcase_add_checked_fixture(tk, kernels_setup, kernels_teardown);
    tcase_add_loop_test(tk, test_ptx_nvcc_vector_add, 0, 3);
    tcase_add_test(tk, test_ptx_nvcc_saxpy_daxpy);
    tcase_add_test(tk, test_ptx_nvcc_matrix_mul_shared);
    tcase_add_test(tk, test_ptx_nvcc_shuffle_reduction);
    tcase_add_test(tk, test_ptx_nvcc_atomic_histogram);
    tcase_add_test(tk, test_ptx_nvcc_grid_stride_64);
    tcase_add_test(tk, test_ptx_nvcc_struct_param_and_ballot);
    tcase_add_test(tk, test_ptx_nvcc_out_of_bounds_faults);
    tcase_add_test(tk, test_ptx_nvcc_math_library);
    tcase_add_test(tk, test_ptx_nvcc_noinline_call_and_cg);
    tcase_add_test(tk, test_ptx_nvcc_spin_lock_completes);
    tcase_add_test(tk, test_ptx_nvcc_printf_conversions);
    tcase_add_test(tk, test_ptx_nvcc_printf_many_threads);
    tcase_add_test(tk, test_ptx_nvcc_printf_return_and_bad_string);
    tcase_add_test(tk, test_ptx_nvcc_assert_fails_launch);
    tcase_add_test(tk, test_ptx_nvcc_barrier_reductions_and_named);
    tcase_add_test(tk, test_ptx_nvcc_warp_intrinsics);
    tcase_add_test(tk, test_ptx_nvcc_half_math);
    tcase_add_test(tk, test_ptx_nvcc_lock_then_wait_completes);
    tcase_add_test(tk, test_ptx_nvcc_intra_warp_deadlock_is_reported);
    tcase_add_test(tk, test_ptx_nvcc_module_queries);
    tcase_add_test(tk, test_ptx_nvcc_text_survives_mutations);
    tcase_add_test(tk, test_ptx_nvcc_speed);
    tcase_set_timeout(tk, 60);
    suite_add_tcase(s, tk);
  }
  return s;
}

int main(void) {
  bool with_kernels = read_kernels();
  SRunner *sr = srunner_create(ptx_suite(with_kernels));
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  free(kernels_text);
  if (failed)
    return 1;
  if (!with_kernels) {
    printf("test_ptx: GP_TEST_PTX_KERNELS unset or unreadable (nvcc not "
           "found at configure time): nvcc-built kernels not run\n");
    return 77;
  }
  return 0;
}
