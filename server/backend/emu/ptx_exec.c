/* The PTX interpreter: runs a kernel of a parsed module (ptx_parse.c).
 *
 * A block runs on one host thread. Its warps hold their registers
 * lane-major (slot r of lane l at r * 32 + l) and a program counter per
 * lane; each step executes the instruction at the lowest PC among the
 * lanes that can run, for every lane at that PC, so divergent lanes
 * re-converge without control-flow analysis and shfl/vote see exactly the
 * lanes that are together. A warp runs until all its lanes have exited or
 * wait at bar.sync; when every warp of the block is in that state the
 * barrier opens. The blocks of the grid are handed out to a pool of host
 * threads through an atomic counter.
 *
 * ptx_exec_supported() is the single list of what is implemented: the
 * parser calls it for every instruction, and the executor refuses (as an
 * internal error) anything that slipped past it. */
#include <fenv.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/emu/ptx_internal.h"

#define MAX_HOST_THREADS 64u

/* After this many steps of a diverged warp, the highest-PC lanes run for
 * STARVE_BOOST steps (see run_warp). */
#define STARVE_STEPS (1u << 16)
#define STARVE_BOOST 256u

static uint64_t stat_thread_insns;

uint64_t ptx_stat_thread_insns(void) {
  return __atomic_load_n(&stat_thread_insns, __ATOMIC_RELAXED);
}

/* ---- what is implemented -------------------------------------------- */

static bool is_int(int t) {
  return t >= PTX_T_B8 && t <= PTX_T_S64;
}

static bool is_int16up(int t) {
  return is_int(t) && ptx_type_size(t) >= 2;
}

static bool is_f(int t) {
  return t == PTX_T_F32 || t == PTX_T_F64;
}

/* A value operand; a symbol becomes an immediate at link time. */
static bool src_ok(const struct ptx_operand *o) {
  return o->kind == PTX_OPD_REG || o->kind == PTX_OPD_IMM ||
         o->kind == PTX_OPD_SREG || o->kind == PTX_OPD_SYM;
}

static bool dst_ok(const struct ptx_operand *o) {
  return o->kind == PTX_OPD_REG;
}

/* Every operand from |from| on is a plain source. */
static bool srcs_ok(const struct ptx_insn *in, unsigned from) {
  for (unsigned i = from; i < in->nops; i++)
    if (!src_ok(&in->ops[i]))
      return false;
  return true;
}

static bool rnd_float(int r) {
  return r == PTX_RND_NONE || (r >= PTX_RND_RN && r <= PTX_RND_RP);
}

#define NO(...)                                                          \
  do {                                                                   \
    snprintf(why, whylen, __VA_ARGS__);                                  \
    return PTX_E_UNSUPPORTED;                                            \
  } while (0)

int ptx_exec_supported(const struct ptx_insn *in, char *why, size_t whylen) {
  int t = in->type, t2 = in->type2;
  unsigned n = in->nops;

  if ((in->flags & (PTX_F_CC | PTX_F_CARRYIN)) &&
      (!(in->op == PTX_OP_ADD || in->op == PTX_OP_SUB ||
         in->op == PTX_OP_MAD) ||
       !is_int(t) || ptx_type_size(t) < 4 || in->mode == PTX_MODE_WIDE ||
       (in->flags & PTX_F_SAT)))
    NO("carry (.cc, addc, subc, madc) on this instruction");
  if (t == PTX_T_F16 || t == PTX_T_F16X2 || t == PTX_T_BF16 ||
      t2 == PTX_T_F16 || t2 == PTX_T_F16X2 || t2 == PTX_T_BF16)
    NO("half-precision types are not implemented");
  if (in->vec != 1 && in->op != PTX_OP_LD && in->op != PTX_OP_ST)
    NO("vector modifier");
  if (t2 != PTX_T_NONE && in->op != PTX_OP_CVT)
    NO("second type");
  if ((in->flags & PTX_F_SAT) && !(in->op == PTX_OP_CVT ||
                                   ((in->op == PTX_OP_ADD ||
                                     in->op == PTX_OP_SUB ||
                                     in->op == PTX_OP_MUL ||
                                     in->op == PTX_OP_FMA ||
                                     in->op == PTX_OP_MAD) &&
                                    t == PTX_T_F32)))
    NO(".sat");
  if ((in->flags & PTX_F_FTZ) && !(t == PTX_T_F32 || t2 == PTX_T_F32) &&
      !(t == PTX_T_F64 && (in->flags & PTX_F_APPROX) &&
        (in->op == PTX_OP_RCP || in->op == PTX_OP_RSQRT)))
    NO(".ftz");
  if (in->mode && in->op != PTX_OP_MUL && in->op != PTX_OP_MAD &&
      in->op != PTX_OP_SHFL && in->op != PTX_OP_VOTE &&
      in->op != PTX_OP_ATOM && in->op != PTX_OP_RED &&
      in->op != PTX_OP_TESTP && in->op != PTX_OP_SETP)
    NO("modifier");
  if (in->rnd && !(is_f(t) || in->op == PTX_OP_CVT))
    NO("rounding modifier");

  switch (in->op) {
  case PTX_OP_MOV:
    if (n != 2 || t == PTX_T_NONE)
      NO("operands");
    if (in->ops[0].kind == PTX_OPD_VEC || in->ops[1].kind == PTX_OPD_VEC) {
      const struct ptx_operand *v =
          in->ops[0].kind == PTX_OPD_VEC ? &in->ops[0] : &in->ops[1];
      const struct ptx_operand *s =
          in->ops[0].kind == PTX_OPD_VEC ? &in->ops[1] : &in->ops[0];
      unsigned sz = ptx_type_size(t);
      if (v->count < 2 || sz % v->count || sz / v->count < 1 ||
          (s == &in->ops[0] ? !dst_ok(s) : !src_ok(s)) || is_f(t) ||
          t == PTX_T_PRED)
        NO("vector move");
      return 0;
    }
    if (!dst_ok(&in->ops[0]) || !src_ok(&in->ops[1]))
      NO("operands");
    return 0;
  case PTX_OP_LD:
  case PTX_OP_ST: {
    const struct ptx_operand *mem = &in->ops[in->op == PTX_OP_LD ? 1 : 0];
    const struct ptx_operand *val = &in->ops[in->op == PTX_OP_LD ? 0 : 1];
    if (n != 2 || mem->kind != PTX_OPD_MEM)
      NO("operands");
    if (t == PTX_T_NONE || t == PTX_T_PRED || ptx_type_size(t) > 8)
      NO("type");
    /* st.param appears only in .func bodies and call sequences (calls
     * are refused); executed, it faults as a write to read-only memory. */
    if (in->op == PTX_OP_ST && in->space == PTX_SP_CONST)
      NO("store to this state space");
    if (in->vec > 1) {
      if (val->kind != PTX_OPD_VEC || val->count != in->vec)
        NO("vector operand");
      return 0;
    }
    if (in->op == PTX_OP_LD ? !dst_ok(val) : !src_ok(val))
      NO("operands");
    return 0;
  }
  case PTX_OP_CVTA:
    if (n != 2 || !dst_ok(&in->ops[0]) || !src_ok(&in->ops[1]))
      NO("operands");
    if (t != PTX_T_U64 && t != PTX_T_U32 && t != PTX_T_B64 &&
        t != PTX_T_B32)
      NO("type");
    if (in->space != PTX_SP_GLOBAL && in->space != PTX_SP_SHARED &&
        in->space != PTX_SP_LOCAL && in->space != PTX_SP_PARAM)
      NO("state space");
    return 0;
  case PTX_OP_ADD:
  case PTX_OP_SUB:
  case PTX_OP_MIN:
  case PTX_OP_MAX:
  case PTX_OP_REM:
  case PTX_OP_DIV:
    if (n != 3 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (in->op == PTX_OP_REM ? !is_int16up(t)
                             : !(is_int16up(t) || is_f(t)))
      NO("type");
    if (is_f(t) && !rnd_float(in->rnd))
      NO("rounding");
    if ((in->flags & PTX_F_APPROX) && !(in->op == PTX_OP_DIV &&
                                        t == PTX_T_F32))
      NO(".approx");
    return 0;
  case PTX_OP_MUL:
  case PTX_OP_MAD:
  case PTX_OP_FMA: {
    unsigned want = in->op == PTX_OP_MUL ? 3 : 4;
    if (n != want || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (is_f(t)) {
      if (!rnd_float(in->rnd) || in->mode)
        NO("modifiers");
      return 0;
    }
    if (in->op == PTX_OP_FMA || !is_int16up(t))
      NO("type");
    if (in->mode == PTX_MODE_WIDE && ptx_type_size(t) > 4)
      NO(".wide of a 64-bit type");
    return 0;
  }
  case PTX_OP_ABS:
  case PTX_OP_NEG:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!(is_f(t) || (is_int16up(t) && ptx_type_signed(t))))
      NO("type");
    return 0;
  case PTX_OP_AND:
  case PTX_OP_OR:
  case PTX_OP_XOR:
  case PTX_OP_NOT:
  case PTX_OP_CNOT:
    if (n != (in->op == PTX_OP_NOT || in->op == PTX_OP_CNOT ? 2u : 3u) ||
        !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!(is_int16up(t) || (t == PTX_T_PRED && in->op != PTX_OP_CNOT)))
      NO("type");
    return 0;
  case PTX_OP_SHL:
  case PTX_OP_SHR:
    if (n != 3 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!is_int16up(t))
      NO("type");
    return 0;
  case PTX_OP_SETP:
    if (n != ((in->flags & PTX_F_BOOLOP) ? 5u : 4u) ||
        !dst_ok(&in->ops[0]) ||
        !(in->ops[1].kind == PTX_OPD_NONE || dst_ok(&in->ops[1])) ||
        !srcs_ok(in, 2))
      NO("operands");
    if (!(is_int16up(t) || is_f(t)) || in->cmp == PTX_CMP_NONE)
      NO("type or comparison");
    if (!is_f(t) && in->cmp >= PTX_CMP_EQU)
      NO("unordered comparison of integers");
    if (!ptx_type_signed(t) && !is_f(t) &&
        t >= PTX_T_B8 && t <= PTX_T_B64 && in->cmp != PTX_CMP_EQ &&
        in->cmp != PTX_CMP_NE)
      NO("ordered comparison of .b types");
    if (is_f(t) && in->cmp >= PTX_CMP_LO && in->cmp <= PTX_CMP_HS)
      NO("unsigned comparison of floats");
    return 0;
  case PTX_OP_SELP:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!(is_int16up(t) || is_f(t)))
      NO("type");
    return 0;
  case PTX_OP_BRA:
    if (n != 1 || in->ops[0].kind != PTX_OPD_LABEL)
      NO("indirect branch");
    return 0;
  case PTX_OP_RET:
  case PTX_OP_EXIT:
  case PTX_OP_TRAP:
  case PTX_OP_MEMBAR:
    if (n != 0)
      NO("operands");
    return 0;
  case PTX_OP_NOP:
    return 0;
  case PTX_OP_CVT:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!(is_int(t) || is_f(t)) || !(is_int(t2) || is_f(t2)))
      NO("types");
    if (is_int(t) && is_int(t2)) {
      if (in->rnd)
        NO("rounding on an integer conversion");
    } else if (is_int(t)) {
      if (in->rnd < PTX_RND_RNI)
        NO("float to integer needs .rni/.rzi/.rmi/.rpi");
    } else if (is_int(t2)) {
      if (!rnd_float(in->rnd))
        NO("rounding");
    } else if (t == t2) {
      if (in->rnd && in->rnd < PTX_RND_RNI)
        NO("rounding");
    } else if (t == PTX_T_F32) {
      if (!rnd_float(in->rnd))
        NO("rounding");
    } else if (in->rnd) {
      NO("rounding on f32 to f64");
    }
    return 0;
  case PTX_OP_RCP:
  case PTX_OP_SQRT:
  case PTX_OP_RSQRT:
  case PTX_OP_EX2:
  case PTX_OP_LG2:
  case PTX_OP_SIN:
  case PTX_OP_COS:
  case PTX_OP_TANH:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (in->op == PTX_OP_RCP || in->op == PTX_OP_SQRT ||
        in->op == PTX_OP_RSQRT) {
      if (!is_f(t) || !rnd_float(in->rnd))
        NO("type");
      if (in->op == PTX_OP_RSQRT && !(in->flags & PTX_F_APPROX))
        NO("rsqrt needs .approx");
      return 0;
    }
    if (t != PTX_T_F32 || !(in->flags & PTX_F_APPROX))
      NO("only .approx.f32");
    return 0;
  case PTX_OP_SHFL:
    if (!(in->flags & PTX_F_SYNC))
      NO("shfl without .sync");
    if (n != 6 || !dst_ok(&in->ops[0]) ||
        !(in->ops[1].kind == PTX_OPD_NONE || dst_ok(&in->ops[1])) ||
        !srcs_ok(in, 2))
      NO("operands");
    if (ptx_type_size(t) != 4 || is_f(t) || in->mode < PTX_MODE_UP ||
        in->mode > PTX_MODE_IDX)
      NO("type or mode");
    return 0;
  case PTX_OP_VOTE:
    if (!(in->flags & PTX_F_SYNC))
      NO("vote without .sync");
    if (n != 3 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (in->mode == PTX_MODE_BALLOT ? t != PTX_T_B32 : t != PTX_T_PRED)
      NO("type");
    return 0;
  case PTX_OP_ATOM:
  case PTX_OP_RED: {
    unsigned m0 = in->op == PTX_OP_ATOM ? 1 : 0;
    unsigned want = (in->op == PTX_OP_ATOM ? 3 : 2) +
                    (in->mode == PTX_MODE_CAS ? 1 : 0);
    bool b32 = ptx_type_size(t) == 4, b64 = ptx_type_size(t) == 8;
    if (n != want || in->ops[m0].kind != PTX_OPD_MEM ||
        (m0 && !dst_ok(&in->ops[0])) || !srcs_ok(in, m0 + 1))
      NO("operands");
    if (in->space != PTX_SP_GLOBAL && in->space != PTX_SP_SHARED &&
        in->space != PTX_SP_GENERIC)
      NO("state space");
    switch (in->mode) {
    case PTX_MODE_ADD:
      if (!(t == PTX_T_U32 || t == PTX_T_S32 || t == PTX_T_U64 ||
            t == PTX_T_S64 || is_f(t)))
        NO("type");
      return 0;
    case PTX_MODE_MIN:
    case PTX_MODE_MAX:
      if (!((b32 || b64) && is_int(t) && t != PTX_T_B32 && t != PTX_T_B64))
        NO("type");
      return 0;
    case PTX_MODE_EXCH:
    case PTX_MODE_CAS:
    case PTX_MODE_AND:
    case PTX_MODE_OR:
    case PTX_MODE_XOR:
      if (!((b32 || b64) && is_int(t)))
        NO("type");
      return 0;
    case PTX_MODE_INC:
    case PTX_MODE_DEC:
      if (t != PTX_T_U32)
        NO("type");
      return 0;
    default:
      NO("operation");
    }
  }
  case PTX_OP_BAR:
    if (!(in->flags & PTX_F_SYNC))
      NO("only bar.sync / barrier.sync");
    if (n != 1 || in->ops[0].kind != PTX_OPD_IMM || in->ops[0].imm != 0)
      NO("only barrier 0 without a thread count");
    return 0;
  case PTX_OP_POPC:
  case PTX_OP_CLZ:
  case PTX_OP_BREV:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (t != PTX_T_B32 && t != PTX_T_B64)
      NO("type");
    return 0;
  case PTX_OP_BFE:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (t != PTX_T_U32 && t != PTX_T_S32 && t != PTX_T_U64 &&
        t != PTX_T_S64)
      NO("type");
    return 0;
  case PTX_OP_BFI:
    if (n != 5 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (t != PTX_T_B32 && t != PTX_T_B64)
      NO("type");
    return 0;
  case PTX_OP_PRMT:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        t != PTX_T_B32)
      NO("operands or mode");
    return 0;
  case PTX_OP_LOP3:
    if (n != 5 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        in->ops[4].kind != PTX_OPD_IMM || t != PTX_T_B32)
      NO("operands");
    return 0;
  case PTX_OP_COPYSIGN:
  case PTX_OP_TESTP:
    if (n != (in->op == PTX_OP_TESTP ? 2u : 3u) || !dst_ok(&in->ops[0]) ||
        !srcs_ok(in, 1) || !is_f(t))
      NO("operands");
    if (in->op == PTX_OP_TESTP && !in->mode)
      NO("testp without a test");
    return 0;
  case PTX_OP_ACTIVEMASK:
    if (n != 1 || !dst_ok(&in->ops[0]) || t != PTX_T_B32)
      NO("operands");
    return 0;
  case PTX_OP_CALL:
    if (n != 3 || in->ops[1].kind != PTX_OPD_LABEL ||
        (in->ops[0].kind != PTX_OPD_NONE && in->ops[0].kind != PTX_OPD_VEC) ||
        (in->ops[2].kind != PTX_OPD_NONE && in->ops[2].kind != PTX_OPD_VEC))
      NO("call form");
    return 0;
  default:
    NO("not implemented");
  }
}

/* ---- launch state --------------------------------------------------- */

struct launch {
  const struct ptx_func *f;
  const struct ptx_module *m;
  const struct ptx_launch *l;
  uint64_t nblocks;
  uint64_t next_block;          /* atomic */
  int err_code;                 /* atomic: first fault */
  pthread_mutex_t lock;         /* guards err */
  char *err;
  size_t errlen;
  uint32_t nthreads, nwarps;    /* per block */
  uint32_t shared_size;         /* static + dynamic */
};

struct warp {
  uint64_t *r;                  /* nregs x 32, lane-major */
  uint8_t *local;               /* 32 x local_size */
  uint32_t pc[32];
  uint32_t live;                /* lanes that exist and have not exited */
  uint32_t wait;                /* lanes waiting at the barrier */
  int64_t upc;                  /* PC of every runnable lane, or -1 */
  uint32_t cc;                  /* carry flag of each lane */
  uint32_t park;                /* lanes at a shfl/vote.sync waiting for
                                   the rest of its member mask */
  uint32_t diverged;            /* steps since the warp was last uniform */
  uint32_t boost;               /* steps left of highest-PC-first */
  uint32_t *rstack;             /* 32 x call_depth: PCs of the calls */
  uint8_t depth[32];            /* calls in progress per lane */
  uint32_t id;
  uint16_t tid[3][32];
};

struct block {
  struct launch *L;
  uint32_t ctaid[3];
  uint8_t *shared;
  struct warp *warps;
  uint64_t insns;
  /* the last global allocation found */
  uint64_t c_base, c_size;
  uint8_t *c_host;
};

static int fault(struct block *b, const struct warp *w, unsigned lane,
                 const struct ptx_insn *in, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The text of PTX line |line| (1-based), blanks trimmed, at most 80
 * characters. */
static void line_text(const struct ptx_module *m, uint32_t line,
                      const char **s, int *n) {
  const char *p = m->text, *end = m->text + m->text_len, *e;

  for (uint32_t l = 1; l < line && p < end; p++)
    if (*p == '\n')
      l++;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  e = p;
  while (e < end && *e != '\n' && e - p < 80)
    e++;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
    e--;
  *s = p;
  *n = (int)(e - p);
}

/* Records the first fault of the launch; returns |code|. */
static int fault(struct block *b, const struct warp *w, unsigned lane,
                 const struct ptx_insn *in, int code, const char *fmt, ...) {
  struct launch *L = b->L;
  int expected = 0;

  if (!in && w && w->pc[lane] < L->m->ncode)
    in = &L->m->code[w->pc[lane]];
  pthread_mutex_lock(&L->lock);
  if (__atomic_compare_exchange_n(&L->err_code, &expected, code, false,
                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
      L->errlen) {
    char what[200];
    const char *src = "";
    int srclen = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (in)
      line_text(L->m, in->line, &src, &srclen);
    snprintf(L->err, L->errlen,
             "kernel '%s', block (%u,%u,%u) thread (%u,%u,%u), PTX line %u "
             "'%.*s': %s",
             L->f->name, b->ctaid[0], b->ctaid[1], b->ctaid[2],
             w ? w->tid[0][lane] : 0, w ? w->tid[1][lane] : 0,
             w ? w->tid[2][lane] : 0, in ? in->line : 0, srclen, src, what);
  }
  pthread_mutex_unlock(&L->lock);
  return code;
}

/* ---- values --------------------------------------------------------- */

/* Without -mpopcnt __builtin_popcount is a libgcc call. */
static inline unsigned popc32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return (((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24;
}

static inline float f32v(uint64_t v) {
  uint32_t u = (uint32_t)v;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint64_t f32b(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline double f64v(uint64_t v) {
  double d;
  memcpy(&d, &v, 8);
  return d;
}

static inline uint64_t f64b(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static inline uint64_t mask_of(unsigned bytes) {
  return bytes >= 8 ? ~0ull : (1ull << (bytes * 8)) - 1;
}

static inline int64_t sext(uint64_t v, unsigned bytes) {
  unsigned sh = 64 - bytes * 8;
  return bytes >= 8 ? (int64_t)v : (int64_t)(v << sh) >> sh;
}

static inline float ftz32(float x) {
  return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x;
}

static inline float sat32(float x) {
  return isnan(x) ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}

static int fe_mode(int rnd) {
  switch (rnd) {
  case PTX_RND_RZ:
  case PTX_RND_RZI:
    return FE_TOWARDZERO;
  case PTX_RND_RM:
  case PTX_RND_RMI:
    return FE_DOWNWARD;
  case PTX_RND_RP:
  case PTX_RND_RPI:
    return FE_UPWARD;
  default:
    return FE_TONEAREST;
  }
}

/* Switches the host rounding mode for a directed-rounding instruction;
 * returns the mode to restore, or -1 when nothing changed. Only the
 * calling thread's mode changes. */
static int rnd_push(const struct ptx_insn *in) {
  int old;

  if (in->rnd != PTX_RND_RZ && in->rnd != PTX_RND_RM &&
      in->rnd != PTX_RND_RP)
    return -1;
  old = fegetround();
  fesetround(fe_mode(in->rnd));
  return old;
}

static void rnd_pop(int old) {
  if (old >= 0)
    fesetround(old);
}

static uint64_t sreg_val(const struct block *b, const struct warp *w,
                         unsigned sr, unsigned lane) {
  const struct ptx_launch *l = b->L->l;

  switch (sr) {
  case PTX_SR_TID_X: case PTX_SR_TID_Y: case PTX_SR_TID_Z:
    return w->tid[sr - PTX_SR_TID_X][lane];
  case PTX_SR_NTID_X: case PTX_SR_NTID_Y: case PTX_SR_NTID_Z:
    return l->block[sr - PTX_SR_NTID_X];
  case PTX_SR_CTAID_X: case PTX_SR_CTAID_Y: case PTX_SR_CTAID_Z:
    return b->ctaid[sr - PTX_SR_CTAID_X];
  case PTX_SR_NCTAID_X: case PTX_SR_NCTAID_Y: case PTX_SR_NCTAID_Z:
    return l->grid[sr - PTX_SR_NCTAID_X];
  case PTX_SR_LANEID:
    return lane;
  case PTX_SR_WARPID:
    return w->id;
  case PTX_SR_NWARPID:
    return b->L->nwarps;
  case PTX_SR_LANEMASK_EQ:
    return 1u << lane;
  case PTX_SR_LANEMASK_LT:
    return (1u << lane) - 1;
  case PTX_SR_LANEMASK_LE:
    return (uint32_t)((2ull << lane) - 1);
  case PTX_SR_LANEMASK_GT:
    return (uint32_t)~((2ull << lane) - 1);
  case PTX_SR_LANEMASK_GE:
    return ~((1u << lane) - 1);
  case PTX_SR_CLOCK:
  case PTX_SR_CLOCK64:
    return b->insns;
  case PTX_SR_GLOBALTIMER: {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  }
  case PTX_SR_SMID:
    return 0;
  case PTX_SR_NSMID:
    return 1;
  case PTX_SR_DYN_SMEM:
    return l->dyn_shared;
  default:
    return 0;
  }
}

static inline uint64_t opv(const struct block *b, const struct warp *w,
                           const struct ptx_operand *o, unsigned lane) {
  switch (o->kind) {
  case PTX_OPD_REG:
    return w->r[(size_t)o->reg * 32 + lane];
  case PTX_OPD_IMM:
    return (uint64_t)o->imm;
  case PTX_OPD_SREG:
    return sreg_val(b, w, o->sreg, lane);
  default:
    return 0;
  }
}

static inline bool predv(const struct block *b, const struct warp *w,
                         const struct ptx_operand *o, unsigned lane) {
  bool p = (opv(b, w, o, lane) & 1) != 0;
  return (o->flags & PTX_OPF_NEG) ? !p : p;
}

#define REG(w, o, lane) ((w)->r[(size_t)(o)->reg * 32 + (lane)])

#define FOR_LANES(mask, l)                                               \
  for (uint32_t m_##l = (mask), l = 0;                                   \
       m_##l && ((l = (uint32_t)__builtin_ctz(m_##l)), 1);               \
       m_##l &= m_##l - 1)

/* ---- memory --------------------------------------------------------- */

/* Finds the host address of [addr, addr+n) in |space| for |lane|, or
 * records a fault and returns NULL. */
static uint8_t *xlat(struct block *b, struct warp *w, unsigned lane,
                     const struct ptx_insn *in, int space, uint64_t addr,
                     uint64_t n, bool write) {
  struct launch *L = b->L;
  const struct ptx_module *m = L->m;

  if (space == PTX_SP_GENERIC) {
    if (addr - PTX_GENERIC_SHARED < PTX_GENERIC_WINDOW) {
      space = PTX_SP_SHARED;
      addr -= PTX_GENERIC_SHARED;
    } else if (addr - PTX_GENERIC_LOCAL < PTX_GENERIC_WINDOW) {
      space = PTX_SP_LOCAL;
      addr -= PTX_GENERIC_LOCAL;
    } else if (addr - PTX_GENERIC_PARAM < PTX_GENERIC_WINDOW) {
      space = PTX_SP_PARAM;
      addr -= PTX_GENERIC_PARAM;
    } else {
      space = PTX_SP_GLOBAL;
    }
  }
  switch (space) {
  case PTX_SP_SHARED:
    if (addr > L->shared_size || n > L->shared_size - addr)
      break;
    return b->shared + addr;
  case PTX_SP_LOCAL:
    if (addr > L->f->local_size || n > L->f->local_size - addr)
      break;
    return w->local + (size_t)lane * L->f->local_size + addr;
  case PTX_SP_PARAM:
    if (write || addr > L->l->params_size || n > L->l->params_size - addr)
      break;
    return (uint8_t *)(uintptr_t)L->l->params + addr;
  case PTX_SP_GLOBAL:
  case PTX_SP_CONST:
    if (addr - b->c_base < b->c_size && n <= b->c_size - (addr - b->c_base))
      return b->c_host + (addr - b->c_base);
    for (uint32_t i = 0; i < m->nsyms; i++) {
      const struct ptx_symbol *y = &m->syms[i];
      if ((y->space == PTX_SP_GLOBAL || y->space == PTX_SP_CONST) &&
          addr - y->addr < y->size && n <= y->size - (addr - y->addr)) {
        b->c_base = y->addr;
        b->c_size = y->size;
        b->c_host = y->data;
        return y->data + (addr - y->addr);
      }
    }
    if (space == PTX_SP_GLOBAL && L->l->mem && L->l->mem->lookup) {
      uint64_t base = 0, size = 0;
      void *host = NULL;
      if (L->l->mem->lookup(L->l->mem->opaque, addr, &base, &size, &host) ==
              0 &&
          addr - base < size && n <= size - (addr - base)) {
        b->c_base = base;
        b->c_size = size;
        b->c_host = host;
        return (uint8_t *)host + (addr - base);
      }
    }
    break;
  default:
    break;
  }
  static const char *const names[] = {"generic", "global", "shared",
                                      "local", "param", "const"};
  fault(b, w, lane, in, PTX_E_ILLEGAL_ADDRESS,
        "illegal %s %s of %llu bytes at address 0x%llx",
        names[space < 6 ? space : 0], write ? "write" : "read",
        (unsigned long long)n, (unsigned long long)addr);
  return NULL;
}

static inline uint64_t load_n(const uint8_t *p, unsigned n) {
  switch (n) {
  case 1: return *p;
  case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
  case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
  default: { uint64_t v; memcpy(&v, p, 8); return v; }
  }
}

static inline void store_n(uint8_t *p, uint64_t v, unsigned n) {
  switch (n) {
  case 1: *p = (uint8_t)v; break;
  case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
  case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
  default: memcpy(p, &v, 8); break;
  }
}

static inline uint64_t mem_addr(const struct warp *w,
                                const struct ptx_operand *o, unsigned lane) {
  uint64_t a = o->reg == PTX_NOREG ? 0 : w->r[(size_t)o->reg * 32 + lane];
  return a + (uint64_t)o->imm;
}

/* Shared and local addresses are 32-bit: a register holding one may carry
 * the upper half of a wider value. */
static inline uint64_t space_addr(int space, uint64_t a) {
  return space == PTX_SP_SHARED || space == PTX_SP_LOCAL ? (uint32_t)a : a;
}

static int exec_ldst(struct block *b, struct warp *w,
                     const struct ptx_insn *in, uint32_t ex) {
  const struct ptx_module *m = b->L->m;
  bool ld = in->op == PTX_OP_LD;
  const struct ptx_operand *mem = &in->ops[ld ? 1 : 0];
  const struct ptx_operand *val = &in->ops[ld ? 0 : 1];
  unsigned sz = ptx_type_size(in->type), nv = in->vec;
  bool sg = ptx_type_signed(in->type);

  FOR_LANES(ex, l) {
    uint64_t a = space_addr(in->space, mem_addr(w, mem, l));
    uint8_t *p;
    if (a % (sz * nv))
      return fault(b, w, l, in, PTX_E_MISALIGNED,
                   "misaligned %u-byte access at address 0x%llx", sz * nv,
                   (unsigned long long)a);
    if (!(p = xlat(b, w, l, in, in->space, a, (uint64_t)sz * nv, !ld)))
      return PTX_E_ILLEGAL_ADDRESS;
    if (nv == 1) {
      if (ld) {
        uint64_t v = load_n(p, sz);
        REG(w, val, l) = sg ? (uint64_t)sext(v, sz) : v;
      } else {
        store_n(p, opv(b, w, val, l), sz);
      }
      continue;
    }
    for (unsigned i = 0; i < nv; i++) {
      const struct ptx_operand *e = &m->vec[val->reg + i];
      if (ld) {
        uint64_t v = load_n(p + i * sz, sz);
        if (e->kind == PTX_OPD_REG)
          REG(w, e, l) = sg ? (uint64_t)sext(v, sz) : v;
      } else {
        store_n(p + i * sz, opv(b, w, e, l), sz);
      }
    }
  }
  return 0;
}

/* ---- atomics -------------------------------------------------------- */

#define CAS_LOOP(T, p, old, expr)                                          \
  do {                                                                     \
    T nv_;                                                                 \
    old = __atomic_load_n(p, __ATOMIC_RELAXED);                            \
    do {                                                                   \
      nv_ = (expr);                                                        \
    } while (!__atomic_compare_exchange_n(p, &old, nv_, true,              \
                                          __ATOMIC_SEQ_CST,                \
                                          __ATOMIC_RELAXED));              \
  } while (0)

static uint64_t atom32(uint32_t *p, int mode, int t, uint32_t v,
                       uint32_t c) {
  uint32_t old;

  switch (mode) {
  case PTX_MODE_ADD:
    if (t == PTX_T_F32) {
      CAS_LOOP(uint32_t, p, old, (uint32_t)f32b(f32v(old) + f32v(v)));
      return old;
    }
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_MIN:
    if (t == PTX_T_S32)
      CAS_LOOP(uint32_t, p, old,
               (int32_t)old < (int32_t)v ? old : v);
    else
      CAS_LOOP(uint32_t, p, old, old < v ? old : v);
    return old;
  case PTX_MODE_MAX:
    if (t == PTX_T_S32)
      CAS_LOOP(uint32_t, p, old,
               (int32_t)old > (int32_t)v ? old : v);
    else
      CAS_LOOP(uint32_t, p, old, old > v ? old : v);
    return old;
  case PTX_MODE_EXCH:
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_CAS:
    old = v;
    __atomic_compare_exchange_n(p, &old, c, false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return old;
  case PTX_MODE_AND:
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_OR:
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_XOR:
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_INC:
    CAS_LOOP(uint32_t, p, old, old >= v ? 0 : old + 1);
    return old;
  case PTX_MODE_DEC:
    CAS_LOOP(uint32_t, p, old, (old == 0 || old > v) ? v : old - 1);
    return old;
  default:
    return 0;
  }
}

static uint64_t atom64(uint64_t *p, int mode, int t, uint64_t v,
                       uint64_t c) {
  uint64_t old;

  switch (mode) {
  case PTX_MODE_ADD:
    if (t == PTX_T_F64) {
      CAS_LOOP(uint64_t, p, old, f64b(f64v(old) + f64v(v)));
      return old;
    }
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_MIN:
    if (t == PTX_T_S64)
      CAS_LOOP(uint64_t, p, old, (int64_t)old < (int64_t)v ? old : v);
    else
      CAS_LOOP(uint64_t, p, old, old < v ? old : v);
    return old;
  case PTX_MODE_MAX:
    if (t == PTX_T_S64)
      CAS_LOOP(uint64_t, p, old, (int64_t)old > (int64_t)v ? old : v);
    else
      CAS_LOOP(uint64_t, p, old, old > v ? old : v);
    return old;
  case PTX_MODE_EXCH:
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_CAS:
    old = v;
    __atomic_compare_exchange_n(p, &old, c, false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return old;
  case PTX_MODE_AND:
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_OR:
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
  case PTX_MODE_XOR:
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
  default:
    return 0;
  }
}

static int exec_atom(struct block *b, struct warp *w,
                     const struct ptx_insn *in, uint32_t ex) {
  bool has_d = in->op == PTX_OP_ATOM;
  const struct ptx_operand *mem = &in->ops[has_d ? 1 : 0];
  unsigned sz = ptx_type_size(in->type);
  unsigned vi = has_d ? 2 : 1;

  FOR_LANES(ex, l) {
    uint64_t a = space_addr(in->space, mem_addr(w, mem, l));
    uint64_t v = opv(b, w, &in->ops[vi], l), c = 0, old;
    uint8_t *p;
    if (in->mode == PTX_MODE_CAS)
      c = opv(b, w, &in->ops[vi + 1], l);
    if (a % sz)
      return fault(b, w, l, in, PTX_E_MISALIGNED,
                   "misaligned %u-byte atomic at address 0x%llx", sz,
                   (unsigned long long)a);
    if (!(p = xlat(b, w, l, in, in->space, a, sz, true)))
      return PTX_E_ILLEGAL_ADDRESS;
    if (sz == 4)
      old = atom32((uint32_t *)(void *)p, in->mode, in->type, (uint32_t)v,
                   (uint32_t)c);
    else
      old = atom64((uint64_t *)(void *)p, in->mode, in->type, v, c);
    if (has_d)
      REG(w, &in->ops[0], l) = old;
  }
  return 0;
}

/* ---- arithmetic ----------------------------------------------------- */

/* Integer add/sub/mul/mad/min/max/div/rem/and/or/xor/shl/shr. */
/* |sz| and |s| are the size and signedness of |in->type|, passed in so
 * that the per-lane loop does not look them up; always inlined, so the
 * switch is hoisted out of that loop. */
static inline __attribute__((always_inline)) uint64_t
int_op(const struct ptx_insn *in, unsigned sz, bool s, uint64_t a,
       uint64_t b, uint64_t c) {
  unsigned bits = sz * 8;
  uint64_t m = mask_of(sz), ua = a & m, ub = b & m, r;
  int64_t sa = sext(a, sz), sb = sext(b, sz);

  switch (in->op) {
  case PTX_OP_ADD:
    return (ua + ub) & m;
  case PTX_OP_SUB:
    return (ua - ub) & m;
  case PTX_OP_MUL:
  case PTX_OP_MAD:
    if (in->mode == PTX_MODE_WIDE) {
      r = s ? (uint64_t)(sa * sb) : ua * ub; /* sz <= 4: exact */
      m = mask_of(sz * 2);
    } else if (in->mode == PTX_MODE_HI) {
      if (sz == 8)
        r = s ? (uint64_t)(((__int128)sa * sb) >> 64)
              : (uint64_t)(((unsigned __int128)ua * ub) >> 64);
      else
        r = s ? (uint64_t)((sa * sb) >> bits) : (ua * ub) >> bits;
    } else {
      r = ua * ub;
    }
    if (in->op == PTX_OP_MAD)
      r += c;
    return r & m;
  case PTX_OP_MIN:
    return (s ? (sa < sb ? ua : ub) : (ua < ub ? ua : ub));
  case PTX_OP_MAX:
    return (s ? (sa > sb ? ua : ub) : (ua > ub ? ua : ub));
  case PTX_OP_DIV:
    /* Division by zero does not trap on a GPU; like it, give all ones
     * (unsigned) or -1/+1 by the dividend's sign (signed). */
    if (ub == 0)
      return s ? (uint64_t)(sa < 0 ? 1 : -1) & m : m;
    if (s) {
      if (sb == -1)
        return (0 - ua) & m;
      return (uint64_t)(sa / sb) & m;
    }
    return ua / ub;
  case PTX_OP_REM:
    if (ub == 0)
      return ua;
    if (s) {
      if (sb == -1)
        return 0;
      return (uint64_t)(sa % sb) & m;
    }
    return ua % ub;
  case PTX_OP_AND:
    return ua & ub;
  case PTX_OP_OR:
    return ua | ub;
  case PTX_OP_XOR:
    return ua ^ ub;
  case PTX_OP_SHL: {
    uint32_t n = (uint32_t)b;
    return n >= bits ? 0 : (ua << n) & m;
  }
  case PTX_OP_SHR: {
    uint32_t n = (uint32_t)b;
    if (s)
      return (uint64_t)(n >= bits ? (sa < 0 ? -1 : 0) : sa >> n) & m;
    return n >= bits ? 0 : ua >> n;
  }
  default:
    return 0;
  }
}

static float f32_op(const struct ptx_insn *in, float a, float b, float c) {
  bool ftz = in->flags & PTX_F_FTZ;
  float r;

  if (ftz) {
    a = ftz32(a);
    b = ftz32(b);
    c = ftz32(c);
  }
  switch (in->op) {
  case PTX_OP_ADD: r = a + b; break;
  case PTX_OP_SUB: r = a - b; break;
  case PTX_OP_MUL: r = a * b; break;
  case PTX_OP_MAD:
  case PTX_OP_FMA: r = fmaf(a, b, c); break;
  case PTX_OP_DIV: r = a / b; break;
  case PTX_OP_MIN: r = fminf(a, b); break;
  case PTX_OP_MAX: r = fmaxf(a, b); break;
  case PTX_OP_RCP: r = 1.0f / a; break;
  case PTX_OP_SQRT: r = sqrtf(a); break;
  case PTX_OP_RSQRT: r = 1.0f / sqrtf(a); break;
  case PTX_OP_EX2: r = exp2f(a); break;
  case PTX_OP_LG2: r = log2f(a); break;
  case PTX_OP_SIN: r = sinf(a); break;
  case PTX_OP_COS: r = cosf(a); break;
  case PTX_OP_TANH: r = tanhf(a); break;
  case PTX_OP_COPYSIGN: r = copysignf(b, a); break;
  default: r = 0; break;
  }
  if (ftz)
    r = ftz32(r);
  if (in->flags & PTX_F_SAT)
    r = sat32(r);
  return r;
}

static double ftz64(double x) {
  return fpclassify(x) == FP_SUBNORMAL ? copysign(0.0, x) : x;
}

static double f64_op(const struct ptx_insn *in, double a, double b,
                     double c) {
  if (in->flags & PTX_F_FTZ) /* rcp/rsqrt.approx.ftz.f64 only */
    return ftz64(in->op == PTX_OP_RCP ? 1.0 / ftz64(a)
                                      : 1.0 / sqrt(ftz64(a)));
  switch (in->op) {
  case PTX_OP_ADD: return a + b;
  case PTX_OP_SUB: return a - b;
  case PTX_OP_MUL: return a * b;
  case PTX_OP_MAD:
  case PTX_OP_FMA: return fma(a, b, c);
  case PTX_OP_DIV: return a / b;
  case PTX_OP_MIN: return fmin(a, b);
  case PTX_OP_MAX: return fmax(a, b);
  case PTX_OP_RCP: return 1.0 / a;
  case PTX_OP_SQRT: return sqrt(a);
  case PTX_OP_RSQRT: return 1.0 / sqrt(a);
  case PTX_OP_COPYSIGN: return copysign(b, a);
  default: return 0;
  }
}

static bool cmp_f(int cmp, double a, double b) {
  bool un = isnan(a) || isnan(b);

  switch (cmp) {
  case PTX_CMP_EQ: return !un && a == b;
  case PTX_CMP_NE: return !un && a != b;
  case PTX_CMP_LT: return !un && a < b;
  case PTX_CMP_LE: return !un && a <= b;
  case PTX_CMP_GT: return !un && a > b;
  case PTX_CMP_GE: return !un && a >= b;
  case PTX_CMP_EQU: return un || a == b;
  case PTX_CMP_NEU: return un || a != b;
  case PTX_CMP_LTU: return un || a < b;
  case PTX_CMP_LEU: return un || a <= b;
  case PTX_CMP_GTU: return un || a > b;
  case PTX_CMP_GEU: return un || a >= b;
  case PTX_CMP_NUM: return !un;
  case PTX_CMP_NAN: return un;
  default: return false;
  }
}

static inline __attribute__((always_inline)) bool
cmp_i(int cmp, unsigned sz, bool s, uint64_t a, uint64_t b) {
  uint64_t ua = a & mask_of(sz), ub = b & mask_of(sz);
  int64_t sa = sext(a, sz), sb = sext(b, sz);

  switch (cmp) {
  case PTX_CMP_EQ: return ua == ub;
  case PTX_CMP_NE: return ua != ub;
  case PTX_CMP_LT: return s ? sa < sb : ua < ub;
  case PTX_CMP_LE: return s ? sa <= sb : ua <= ub;
  case PTX_CMP_GT: return s ? sa > sb : ua > ub;
  case PTX_CMP_GE: return s ? sa >= sb : ua >= ub;
  case PTX_CMP_LO: return ua < ub;
  case PTX_CMP_LS: return ua <= ub;
  case PTX_CMP_HI: return ua > ub;
  case PTX_CMP_HS: return ua >= ub;
  default: return false;
  }
}

static bool bool_op(int mode, bool a, bool c) {
  switch (mode) {
  case PTX_MODE_AND: return a && c;
  case PTX_MODE_OR: return a || c;
  case PTX_MODE_XOR: return a != c;
  default: return a;
  }
}

/* Float |x| to the integer type |t| with the integer rounding |rnd|:
 * NaN gives 0, out-of-range values saturate (as the GPU does). */
static uint64_t f2i(double x, int t, int rnd) {
  unsigned sz = ptx_type_size(t);
  bool s = ptx_type_signed(t);

  if (isnan(x))
    return 0;
  switch (rnd) {
  case PTX_RND_RNI: x = nearbyint(x); break; /* ties to even */
  case PTX_RND_RMI: x = floor(x); break;
  case PTX_RND_RPI: x = ceil(x); break;
  default: x = trunc(x); break;
  }
  if (s) {
    double lo = -ldexp(1.0, (int)sz * 8 - 1), hi = -lo;
    if (x <= lo)
      return (uint64_t)(int64_t)lo & mask_of(sz);
    if (x >= hi)
      return mask_of(sz) >> 1;
    return (uint64_t)(int64_t)x & mask_of(sz);
  }
  if (x <= 0)
    return 0;
  if (x >= ldexp(1.0, (int)sz * 8))
    return mask_of(sz);
  return (uint64_t)x;
}

static uint64_t cvt_val(const struct ptx_insn *in, uint64_t a) {
  int dt = in->type, st = in->type2;
  unsigned dsz = ptx_type_size(dt), ssz = ptx_type_size(st);
  bool ftz = in->flags & PTX_F_FTZ, sat = in->flags & PTX_F_SAT;

  if (is_int(dt) && is_int(st)) {
    if (ptx_type_signed(st)) {
      int64_t v = sext(a, ssz);
      if (sat) {
        int64_t lo = ptx_type_signed(dt) ? -(int64_t)(mask_of(dsz) >> 1) - 1
                                         : 0;
        int64_t hi = ptx_type_signed(dt) ? (int64_t)(mask_of(dsz) >> 1)
                                         : (int64_t)(dsz >= 8 ? INT64_MAX
                                                             : mask_of(dsz));
        v = v < lo ? lo : v > hi ? hi : v;
      }
      return (uint64_t)v & mask_of(dsz);
    } else {
      uint64_t v = a & mask_of(ssz);
      if (sat) {
        uint64_t hi = ptx_type_signed(dt) ? mask_of(dsz) >> 1 : mask_of(dsz);
        v = v > hi ? hi : v;
      }
      return v & mask_of(dsz);
    }
  }
  if (is_int(dt)) {
    double x = st == PTX_T_F32 ? (double)f32v(a) : f64v(a);
    if (ftz && st == PTX_T_F32)
      x = ftz32((float)x);
    return f2i(x, dt, in->rnd);
  }
  if (is_int(st)) {
    /* the rounding mode is set by the caller (rnd_push) */
    if (ptx_type_signed(st)) {
      int64_t v = sext(a, ssz);
      if (dt == PTX_T_F32) {
        float f = (float)v;
        return f32b(sat ? sat32(f) : f);
      }
      return f64b((double)v);
    } else {
      uint64_t v = a & mask_of(ssz);
      if (dt == PTX_T_F32) {
        float f = (float)v;
        return f32b(sat ? sat32(f) : f);
      }
      return f64b((double)v);
    }
  }
  /* float to float */
  if (dt == PTX_T_F32) {
    float f;
    if (st == PTX_T_F64) {
      f = (float)f64v(a);
    } else {
      f = f32v(a);
      if (ftz)
        f = ftz32(f);
      switch (in->rnd) {
      case PTX_RND_RNI: f = nearbyintf(f); break;
      case PTX_RND_RZI: f = truncf(f); break;
      case PTX_RND_RMI: f = floorf(f); break;
      case PTX_RND_RPI: f = ceilf(f); break;
      default: break;
      }
    }
    if (ftz)
      f = ftz32(f);
    return f32b(sat ? sat32(f) : f);
  }
  {
    double d = st == PTX_T_F32 ? (double)(ftz ? ftz32(f32v(a)) : f32v(a))
                               : f64v(a);
    switch (in->rnd) {
    case PTX_RND_RNI: d = nearbyint(d); break;
    case PTX_RND_RZI: d = trunc(d); break;
    case PTX_RND_RMI: d = floor(d); break;
    case PTX_RND_RPI: d = ceil(d); break;
    default: break;
    }
    if (sat)
      d = isnan(d) ? 0.0 : d < 0 ? 0.0 : d > 1 ? 1.0 : d;
    return f64b(d);
  }
}

static bool testp(int mode, double x) {
  switch (mode) {
  case PTX_MODE_FINITE: return isfinite(x);
  case PTX_MODE_INFINITE: return isinf(x);
  case PTX_MODE_NUMBER: return !isnan(x);
  case PTX_MODE_NOTANUMBER: return isnan(x);
  case PTX_MODE_NORMAL: return isnormal(x);
  case PTX_MODE_SUBNORMAL: return fpclassify(x) == FP_SUBNORMAL;
  default: return false;
  }
}

static uint64_t bfe(int t, uint64_t a, uint32_t pos, uint32_t len) {
  unsigned bits = ptx_type_size(t) * 8, msb = bits - 1;
  bool s = ptx_type_signed(t);
  uint64_t r = 0;
  unsigned sbit = 0;

  pos &= 0xff;
  len &= 0xff;
  if (s && len)
    sbit = (a >> (pos + len - 1 > msb ? msb : pos + len - 1)) & 1;
  for (unsigned i = 0; i < bits; i++) {
    unsigned bit = (i < len && pos + i <= msb) ? (a >> (pos + i)) & 1 : sbit;
    r |= (uint64_t)bit << i;
  }
  return r;
}

static uint64_t bfi(int t, uint64_t a, uint64_t b, uint32_t pos,
                    uint32_t len) {
  unsigned bits = ptx_type_size(t) * 8;
  uint64_t r = b & mask_of(bits / 8);

  pos &= 0xff;
  len &= 0xff;
  for (unsigned i = 0; i < len && pos + i < bits; i++) {
    uint64_t bit = (a >> i) & 1;
    r = (r & ~(1ull << (pos + i))) | bit << (pos + i);
  }
  return r;
}

static uint32_t prmt(uint32_t a, uint32_t b, uint32_t c) {
  uint64_t x = (uint64_t)b << 32 | a;
  uint32_t r = 0;

  for (unsigned i = 0; i < 4; i++) {
    unsigned sel = (c >> (i * 4)) & 0xf;
    uint32_t byte = (uint32_t)(x >> ((sel & 7) * 8)) & 0xff;
    if (sel & 8)
      byte = (byte & 0x80) ? 0xff : 0;
    r |= byte << (i * 8);
  }
  return r;
}

static uint32_t lop3(uint32_t a, uint32_t b, uint32_t c, uint32_t lut) {
  uint32_t r = 0;

  for (unsigned k = 0; k < 8; k++)
    if (lut & (1u << k))
      r |= ((k & 4) ? a : ~a) & ((k & 2) ? b : ~b) & ((k & 1) ? c : ~c);
  return r;
}

static uint64_t brev(uint64_t v, unsigned bits) {
  uint64_t r = 0;

  for (unsigned i = 0; i < bits; i++)
    r |= ((v >> i) & 1) << (bits - 1 - i);
  return r;
}

/* ---- one step ------------------------------------------------------- */

static inline void advance(struct warp *w, uint32_t mask, uint32_t pc) {
  FOR_LANES(mask, l)
    w->pc[l] = pc;
}

/* add/sub/mad with .cc (carry out to the lane's flag) and/or addc/subc/
 * madc (carry in from it). sub's carry is the borrow: subc computes
 * a - (b + CF). */
static void exec_carry(struct block *b, struct warp *w,
                       const struct ptx_insn *in, uint32_t ex) {
  unsigned sz = ptx_type_size(in->type), bits = sz * 8;
  uint64_t m = mask_of(sz);
  bool s = ptx_type_signed(in->type);
  uint32_t cc = w->cc;

  FOR_LANES(ex, l) {
    uint64_t a = opv(b, w, &in->ops[1], l), bv = opv(b, w, &in->ops[2], l);
    unsigned __int128 cin = (in->flags & PTX_F_CARRYIN) ? (cc >> l) & 1 : 0;
    unsigned __int128 r;
    if (in->op == PTX_OP_SUB) {
      r = (unsigned __int128)(a & m) - (bv & m) - cin;
    } else {
      uint64_t x = a & m;
      if (in->op == PTX_OP_MAD) {
        uint64_t c = opv(b, w, &in->ops[3], l) & m;
        unsigned __int128 p;
        if (s)
          p = (unsigned __int128)((__int128)sext(a, sz) * sext(bv, sz));
        else
          p = (unsigned __int128)(a & m) * (bv & m);
        x = (uint64_t)(in->mode == PTX_MODE_HI ? p >> bits : p) & m;
        bv = c;
      }
      r = (unsigned __int128)x + (bv & m) + cin;
    }
    w->r[(size_t)in->ops[0].reg * 32 + l] = (uint64_t)r & m;
    if (in->flags & PTX_F_CC) {
      if ((r >> bits) & 1)
        w->cc |= 1u << l;
      else
        w->cc &= ~(1u << l);
    }
  }
}

/* Copies |n| bytes between two local addresses of |lane|. Returns 0 or a
 * fault code. */
static int local_copy(struct block *b, struct warp *w, unsigned lane,
                      const struct ptx_insn *in, uint64_t dst, uint64_t src,
                      uint64_t n) {
  uint8_t *d, *s;

  if (!n)
    return 0;
  if (!(s = xlat(b, w, lane, in, PTX_SP_LOCAL, src, n, false)) ||
      !(d = xlat(b, w, lane, in, PTX_SP_LOCAL, dst, n, true)))
    return PTX_E_ILLEGAL_ADDRESS;
  memmove(d, s, n);
  return 0;
}

/* call: copies the arguments into the callee's parameters (all in local
 * memory, see link_module()), pushes the call's PC and jumps. */
static int exec_call(struct block *b, struct warp *w,
                     const struct ptx_insn *in, uint32_t pc, uint32_t mask,
                     uint32_t ex, bool whole) {
  const struct ptx_module *m = b->L->m;
  const struct ptx_func *g = &m->funcs[in->ops[1].reg];
  const struct ptx_operand *args = &in->ops[2];
  uint32_t maxd = b->L->f->call_depth;
  int rc;

  FOR_LANES(ex, l) {
    if (w->depth[l] >= maxd)
      return fault(b, w, l, in, PTX_E_UNSUPPORTED,
                   "internal error: call stack overflow");
    if (args->kind == PTX_OPD_VEC)
      for (unsigned i = 0; i < args->count && i < g->nparams; i++) {
        const struct ptx_operand *e = &m->vec[args->reg + i];
        const struct ptx_symbol *src = &m->syms[e->reg];
        const struct ptx_symbol *dst = &m->syms[g->params[i].sym];
        if ((rc = local_copy(b, w, l, in, dst->addr, src->addr,
                             src->size < dst->size ? src->size
                                                   : dst->size)) < 0)
          return rc;
      }
    w->rstack[l * maxd + w->depth[l]++] = pc;
  }
  advance(w, ex, g->code_base);
  advance(w, mask & ~ex, pc + 1);
  w->upc = !whole ? -1 : ex == mask ? (int64_t)g->code_base
                       : ex == 0 ? (int64_t)pc + 1 : -1;
  return 0;
}

/* ret: in a kernel the lane exits; in a .func it copies the return value
 * into the caller's variable and resumes after the call. */
static int exec_ret(struct block *b, struct warp *w,
                    const struct ptx_insn *in, uint32_t pc, uint32_t mask,
                    uint32_t ex, bool whole) {
  const struct ptx_module *m = b->L->m;
  uint32_t maxd = b->L->f->call_depth;
  int rc;

  FOR_LANES(ex, l) {
    uint32_t cpc;
    const struct ptx_insn *call;
    const struct ptx_func *g;
    if (w->depth[l] == 0) {
      w->live &= ~(1u << l);
      continue;
    }
    cpc = w->rstack[l * maxd + --w->depth[l]];
    call = &m->code[cpc];
    g = &m->funcs[call->ops[1].reg];
    if (call->ops[0].kind == PTX_OPD_VEC && call->ops[0].count == 1 &&
        g->ret_sym >= 0) {
      const struct ptx_symbol *dst = &m->syms[m->vec[call->ops[0].reg].reg];
      const struct ptx_symbol *src = &m->syms[g->ret_sym];
      if ((rc = local_copy(b, w, l, in, dst->addr, src->addr,
                           src->size < dst->size ? src->size
                                                 : dst->size)) < 0)
        return rc;
    }
    w->pc[l] = cpc + 1;
  }
  advance(w, mask & ~ex, pc + 1);
  w->upc = ex == 0 && whole ? (int64_t)pc + 1 : -1;
  return 0;
}

/* Executes |in| (at |pc|) for lanes |ex| of the lanes |mask| that sit at
 * it; moves every lane of |mask| on. Returns 0 or a fault code. */
static int step(struct block *b, struct warp *w, const struct ptx_insn *in,
                uint32_t pc, uint32_t mask, uint32_t ex) {
  const struct ptx_module *m = b->L->m;
  const struct ptx_operand *d = &in->ops[0];
  const struct ptx_operand *o1 = &in->ops[1], *o2 = &in->ops[2],
                           *o3 = &in->ops[3];
  bool whole = mask == (w->live & ~w->wait);
  int t = in->type, rc = 0, oldr;

  switch (in->op) {
  case PTX_OP_BRA:
    if (whole && (ex == mask || ex == 0)) { /* stays uniform: lazy PCs */
      w->upc = ex ? (int64_t)in->ops[0].reg : (int64_t)pc + 1;
      return 0;
    }
    advance(w, ex, in->ops[0].reg);
    advance(w, mask & ~ex, pc + 1);
    w->upc = -1;
    return 0;
  case PTX_OP_RET:
    return exec_ret(b, w, in, pc, mask, ex, whole);
  case PTX_OP_CALL:
    return exec_call(b, w, in, pc, mask, ex, whole);
  case PTX_OP_EXIT:
    w->live &= ~ex;
    advance(w, mask & ~ex, pc + 1);
    w->upc = ex == 0 && whole ? (int64_t)pc + 1 : -1;
    return 0;
  case PTX_OP_BAR:
    w->wait |= ex;
    advance(w, ex, pc); /* opening the barrier moves them on */
    advance(w, mask & ~ex, pc + 1);
    w->upc = -1;
    return 0;
  case PTX_OP_TRAP:
    if (ex)
      return fault(b, w, (unsigned)__builtin_ctz(ex), in, PTX_E_TRAP,
                   "trap");
    break;
  case PTX_OP_NOP:
    break;
  case PTX_OP_MEMBAR:
    if (ex)
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
    break;
  case PTX_OP_MOV:
    if (o1->kind == PTX_OPD_VEC) {
      unsigned esz = ptx_type_size(t) / o1->count;
      FOR_LANES(ex, l) {
        uint64_t v = 0;
        for (unsigned i = 0; i < o1->count; i++)
          v |= (opv(b, w, &m->vec[o1->reg + i], l) & mask_of(esz))
               << (i * esz * 8);
        REG(w, d, l) = v;
      }
    } else if (d->kind == PTX_OPD_VEC) {
      unsigned esz = ptx_type_size(t) / d->count;
      FOR_LANES(ex, l) {
        uint64_t v = opv(b, w, o1, l);
        for (unsigned i = 0; i < d->count; i++) {
          const struct ptx_operand *e = &m->vec[d->reg + i];
          if (e->kind == PTX_OPD_REG)
            REG(w, e, l) = (v >> (i * esz * 8)) & mask_of(esz);
        }
      }
    } else {
      FOR_LANES(ex, l)
        REG(w, d, l) = opv(b, w, o1, l);
    }
    break;
  case PTX_OP_LD:
  case PTX_OP_ST:
    rc = exec_ldst(b, w, in, ex);
    break;
  case PTX_OP_ATOM:
  case PTX_OP_RED:
    rc = exec_atom(b, w, in, ex);
    break;
  case PTX_OP_CVTA: {
    uint64_t win = in->space == PTX_SP_SHARED ? PTX_GENERIC_SHARED
                   : in->space == PTX_SP_LOCAL ? PTX_GENERIC_LOCAL
                   : in->space == PTX_SP_PARAM ? PTX_GENERIC_PARAM : 0;
    uint64_t tm = mask_of(ptx_type_size(t));
    FOR_LANES(ex, l) {
      uint64_t a = opv(b, w, o1, l);
      if (win == 0)
        REG(w, d, l) = a & tm;
      else if (in->flags & PTX_F_TO)
        REG(w, d, l) = (a - win) & tm;
      else
        REG(w, d, l) = ((a & 0xffffffffu) + win) & tm;
    }
    break;
  }
  case PTX_OP_ADD:
  case PTX_OP_SUB:
  case PTX_OP_MUL:
  case PTX_OP_MAD:
  case PTX_OP_FMA:
  case PTX_OP_DIV:
  case PTX_OP_REM:
  case PTX_OP_MIN:
  case PTX_OP_MAX:
  case PTX_OP_AND:
  case PTX_OP_OR:
  case PTX_OP_XOR:
  case PTX_OP_SHL:
  case PTX_OP_SHR:
  case PTX_OP_RCP:
  case PTX_OP_SQRT:
  case PTX_OP_RSQRT:
  case PTX_OP_EX2:
  case PTX_OP_LG2:
  case PTX_OP_SIN:
  case PTX_OP_COS:
  case PTX_OP_TANH:
  case PTX_OP_COPYSIGN: {
    bool three = in->op == PTX_OP_MAD || in->op == PTX_OP_FMA;
    bool one = in->nops == 2;
    if (t == PTX_T_F32) {
      oldr = rnd_push(in);
      FOR_LANES(ex, l) {
        float a = f32v(opv(b, w, o1, l));
        float bb = one ? 0.0f : f32v(opv(b, w, o2, l));
        float c = three ? f32v(opv(b, w, o3, l)) : 0.0f;
        REG(w, d, l) = f32b(f32_op(in, a, bb, c));
      }
      rnd_pop(oldr);
    } else if (t == PTX_T_F64) {
      oldr = rnd_push(in);
      FOR_LANES(ex, l) {
        double a = f64v(opv(b, w, o1, l));
        double bb = one ? 0.0 : f64v(opv(b, w, o2, l));
        double c = three ? f64v(opv(b, w, o3, l)) : 0.0;
        REG(w, d, l) = f64b(f64_op(in, a, bb, c));
      }
      rnd_pop(oldr);
    } else if (t == PTX_T_PRED) {
      FOR_LANES(ex, l)
        REG(w, d, l) = int_op(in, 1, false, opv(b, w, o1, l),
                              opv(b, w, o2, l), 0) & 1;
    } else if (in->flags & (PTX_F_CC | PTX_F_CARRYIN)) {
      exec_carry(b, w, in, ex);
    } else {
      unsigned sz = ptx_type_size(t);
      bool sg = ptx_type_signed(t);
      if (three)
        FOR_LANES(ex, l)
          REG(w, d, l) = int_op(in, sz, sg, opv(b, w, o1, l),
                                opv(b, w, o2, l), opv(b, w, o3, l));
      else
        FOR_LANES(ex, l)
          REG(w, d, l) = int_op(in, sz, sg, opv(b, w, o1, l),
                                opv(b, w, o2, l), 0);
    }
    break;
  }
  case PTX_OP_ABS:
  case PTX_OP_NEG:
  case PTX_OP_NOT:
  case PTX_OP_CNOT: {
    unsigned sz = ptx_type_size(t);
    uint64_t tm = mask_of(sz), sign = 1ull << (sz * 8 - 1);
    FOR_LANES(ex, l) {
      uint64_t a = opv(b, w, o1, l) & tm, r;
      if (in->op == PTX_OP_NOT)
        r = t == PTX_T_PRED ? (a & 1) ^ 1 : ~a & tm;
      else if (in->op == PTX_OP_CNOT)
        r = a == 0;
      else if (ptx_type_float(t)) {
        r = in->op == PTX_OP_NEG ? a ^ sign : a & ~sign;
        if (t == PTX_T_F32 && (in->flags & PTX_F_FTZ))
          r = f32b(ftz32(f32v(r)));
      } else if (in->op == PTX_OP_NEG)
        r = (0 - a) & tm;
      else
        r = (a & sign) ? (0 - a) & tm : a;
      REG(w, d, l) = r;
    }
    break;
  }
  case PTX_OP_SETP: {
    const struct ptx_operand *q = &in->ops[1], *a = &in->ops[2],
                             *bo = &in->ops[3], *c = &in->ops[4];
    bool boolop = in->flags & PTX_F_BOOLOP;
    unsigned sz = ptx_type_size(t);
    bool sg = ptx_type_signed(t);
    FOR_LANES(ex, l) {
      bool r, cv = boolop ? predv(b, w, c, l) : false;
      uint64_t va = opv(b, w, a, l), vb = opv(b, w, bo, l);
      if (t == PTX_T_F32)
        r = cmp_f(in->cmp, (double)f32v(va), (double)f32v(vb));
      else if (t == PTX_T_F64)
        r = cmp_f(in->cmp, f64v(va), f64v(vb));
      else
        r = cmp_i(in->cmp, sz, sg, va, vb);
      REG(w, d, l) = boolop ? bool_op(in->mode, r, cv) : r;
      if (q->kind == PTX_OPD_REG)
        REG(w, q, l) = boolop ? bool_op(in->mode, !r, cv) : !r;
    }
    break;
  }
  case PTX_OP_SELP:
    FOR_LANES(ex, l)
      REG(w, d, l) = predv(b, w, o3, l) ? opv(b, w, o1, l)
                                        : opv(b, w, o2, l);
    break;
  case PTX_OP_CVT:
    oldr = is_int(in->type2) || (t == PTX_T_F32 && in->type2 == PTX_T_F64)
               ? rnd_push(in) : -1;
    FOR_LANES(ex, l)
      REG(w, d, l) = cvt_val(in, opv(b, w, o1, l));
    rnd_pop(oldr);
    break;
  case PTX_OP_TESTP:
    FOR_LANES(ex, l) {
      uint64_t a = opv(b, w, o1, l);
      REG(w, d, l) = testp(in->mode, t == PTX_T_F32 ? (double)f32v(a)
                                                    : f64v(a));
    }
    break;
  case PTX_OP_SHFL: {
    uint32_t src[32];
    const struct ptx_operand *p = &in->ops[1], *a = &in->ops[2],
                             *bo = &in->ops[3], *c = &in->ops[4];
    for (unsigned j = 0; j < 32; j++)
      src[j] = (uint32_t)opv(b, w, a, j);
    FOR_LANES(ex, l) {
      uint32_t bv = (uint32_t)opv(b, w, bo, l) & 31;
      uint32_t cv = (uint32_t)opv(b, w, c, l);
      uint32_t seg = (cv >> 8) & 31, cl = cv & 31;
      int32_t maxl = (int32_t)((l & seg) | (cl & ~seg));
      int32_t minl = (int32_t)(l & seg), j;
      bool ok;
      switch (in->mode) {
      case PTX_MODE_UP:
        j = (int32_t)l - (int32_t)bv;
        ok = j >= maxl;
        break;
      case PTX_MODE_DOWN:
        j = (int32_t)l + (int32_t)bv;
        ok = j <= maxl;
        break;
      case PTX_MODE_BFLY:
        j = (int32_t)(l ^ bv);
        ok = j <= maxl;
        break;
      default:
        j = minl | (int32_t)(bv & ~seg);
        ok = j <= maxl;
        break;
      }
      if (!ok)
        j = (int32_t)l;
      REG(w, d, l) = src[j & 31];
      if (p->kind == PTX_OPD_REG)
        REG(w, p, l) = ok;
    }
    break;
  }
  case PTX_OP_VOTE: {
    uint32_t ballot = 0, act = 0;
    FOR_LANES(ex, l) {
      uint32_t mm = (uint32_t)opv(b, w, o2, l);
      if (!(mm & (1u << l)))
        continue;
      act |= 1u << l;
      if (predv(b, w, o1, l))
        ballot |= 1u << l;
    }
    FOR_LANES(ex, l) {
      uint64_t r;
      switch (in->mode) {
      case PTX_MODE_BALLOT: r = ballot; break;
      case PTX_MODE_ANY: r = ballot != 0; break;
      case PTX_MODE_ALL: r = ballot == act; break;
      default: r = ballot == 0 || ballot == act; break;
      }
      REG(w, d, l) = r;
    }
    break;
  }
  case PTX_OP_ACTIVEMASK:
    FOR_LANES(ex, l)
      REG(w, d, l) = mask;
    break;
  case PTX_OP_POPC:
  case PTX_OP_CLZ:
  case PTX_OP_BREV: {
    unsigned bits = ptx_type_size(t) * 8;
    FOR_LANES(ex, l) {
      uint64_t a = opv(b, w, o1, l) & mask_of(bits / 8), r;
      if (in->op == PTX_OP_POPC)
        r = (uint64_t)__builtin_popcountll(a);
      else if (in->op == PTX_OP_CLZ)
        r = a == 0 ? bits : (uint64_t)__builtin_clzll(a) - (64 - bits);
      else
        r = brev(a, bits);
      REG(w, d, l) = r;
    }
    break;
  }
  case PTX_OP_BFE:
    FOR_LANES(ex, l)
      REG(w, d, l) = bfe(t, opv(b, w, o1, l), (uint32_t)opv(b, w, o2, l),
                         (uint32_t)opv(b, w, o3, l)) &
                     mask_of(ptx_type_size(t));
    break;
  case PTX_OP_BFI:
    FOR_LANES(ex, l)
      REG(w, d, l) = bfi(t, opv(b, w, o1, l), opv(b, w, o2, l),
                         (uint32_t)opv(b, w, o3, l),
                         (uint32_t)opv(b, w, &in->ops[4], l));
    break;
  case PTX_OP_PRMT:
    FOR_LANES(ex, l)
      REG(w, d, l) = prmt((uint32_t)opv(b, w, o1, l),
                          (uint32_t)opv(b, w, o2, l),
                          (uint32_t)opv(b, w, o3, l));
    break;
  case PTX_OP_LOP3:
    FOR_LANES(ex, l)
      REG(w, d, l) = lop3((uint32_t)opv(b, w, o1, l),
                          (uint32_t)opv(b, w, o2, l),
                          (uint32_t)opv(b, w, o3, l),
                          (uint32_t)in->ops[4].imm & 0xff);
    break;
  default:
    if (ex)
      return fault(b, w, (unsigned)__builtin_ctz(ex), in, PTX_E_UNSUPPORTED,
                   "internal error: instruction not implemented");
    break;
  }
  if (rc < 0)
    return rc;
  /* While every runnable lane is at one PC (upc >= 0) their pc[] entries
   * are stale and upc is the truth; pc[] is written when they split. */
  if (whole) {
    w->upc = (int64_t)pc + 1;
  } else {
    advance(w, mask, pc + 1);
    w->upc = -1;
  }
  return 0;
}

/* Runs warp |w| until none of its lanes can run (all exited or waiting at
 * the barrier). Returns 0, a fault code, or 1 when another block faulted. */
static int run_warp(struct block *b, struct warp *w) {
  const struct ptx_module *m = b->L->m;
  uint64_t n = 0;
  int rc = 0;

  for (;;) {
    uint32_t run = w->live & ~w->wait & ~w->park, mask, ex, pc;
    const struct ptx_insn *in;
    bool force = false;
    if (!run) {
      if (!w->park)
        break;
      /* Parked lanes wait for lanes that exited or sit at bar.sync: the
       * GPU would hang or be undefined; run them with whoever is there. */
      run = w->park;
      w->upc = -1;
      force = true;
    }
    if ((++n & 1023) == 0) {
      const int *cancel = b->L->l->cancel;
      if (__atomic_load_n(&b->L->err_code, __ATOMIC_RELAXED)) {
        rc = 1;
        break;
      }
      if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
        unsigned ln = (unsigned)__builtin_ctz(run);
        uint32_t at = w->upc >= 0 ? (uint32_t)w->upc : w->pc[ln];
        rc = fault(b, w, ln, at < m->ncode ? &m->code[at] : NULL,
                   PTX_E_CANCELLED, "cancelled");
        break;
      }
    }
    if (w->upc >= 0) {
      pc = (uint32_t)w->upc;
      mask = run;
      w->diverged = 0;
    } else if (w->boost) {
      /* Lanes that lowest-PC-first has starved (a spin lock whose holder
       * sits at a higher PC than the waiters) get to run for a while, as
       * independent thread scheduling allows. */
      w->boost--;
      pc = 0;
      mask = 0;
      FOR_LANES(run, l) {
        if (w->pc[l] > pc || !mask) {
          pc = w->pc[l];
          mask = 1u << l;
        } else if (w->pc[l] == pc) {
          mask |= 1u << l;
        }
      }
    } else {
      pc = UINT32_MAX;
      mask = 0;
      FOR_LANES(run, l) {
        if (w->pc[l] < pc) {
          pc = w->pc[l];
          mask = 1u << l;
        } else if (w->pc[l] == pc) {
          mask |= 1u << l;
        }
      }
      if (++w->diverged >= STARVE_STEPS) {
        w->diverged = 0;
        w->boost = STARVE_BOOST;
      }
    }
    if (pc >= m->ncode) { /* cannot happen: every body ends in ret */
      w->live &= ~mask;
      w->upc = -1;
      continue;
    }
    in = &m->code[pc];
    if (force)
      w->park &= ~mask;
    if ((in->op == PTX_OP_SHFL || in->op == PTX_OP_VOTE) && !force) {
      /* A warp-synchronous collective runs once every lane of its member
       * mask has reached it: lanes that come first park here. */
      const struct ptx_operand *mo = &in->ops[in->op == PTX_OP_SHFL ? 5 : 2];
      uint32_t need = (uint32_t)opv(b, w, mo, (unsigned)__builtin_ctz(mask)) &
                      w->live & ~w->wait;
      uint32_t here = mask;
      FOR_LANES(w->park, l)
        if (w->pc[l] == pc)
          here |= 1u << l;
      if (need & ~here) {
        advance(w, mask, pc); /* they may have stale PCs (upc) */
        w->park |= mask;
        w->upc = -1;
        continue;
      }
      w->park &= ~here;
      mask = here;
    }
    ex = mask;
    if (in->flags & PTX_F_GUARD) {
      bool neg = in->flags & PTX_F_GUARDNEG;
      ex = 0;
      FOR_LANES(mask, l)
        if (((w->r[(size_t)in->guard * 32 + l] & 1) != 0) != neg)
          ex |= 1u << l;
    }
    b->insns += (uint64_t)popc32(ex);
    if ((rc = step(b, w, in, pc, mask, ex)) < 0)
      break;
  }
  return rc;
}

/* Runs block |idx| of the grid with the block state |b| (buffers already
 * allocated). Returns 0, a fault code or 1 (another block faulted). */
static int run_block(struct block *b, uint64_t idx) {
  struct launch *L = b->L;
  const struct ptx_launch *l = L->l;
  const struct ptx_func *f = L->f;
  uint32_t bx = l->block[0], by = l->block[1];
  int rc;

  b->ctaid[0] = (uint32_t)(idx % l->grid[0]);
  b->ctaid[1] = (uint32_t)(idx / l->grid[0] % l->grid[1]);
  b->ctaid[2] = (uint32_t)(idx / l->grid[0] / l->grid[1]);
  memset(b->shared, 0, L->shared_size);
  for (uint32_t wi = 0; wi < L->nwarps; wi++) {
    struct warp *w = &b->warps[wi];
    memset(w->r, 0, (size_t)f->nregs * 32 * sizeof(uint64_t));
    memset(w->local, 0, (size_t)f->local_size * 32);
    for (unsigned ln = 0; ln < 32; ln++)
      w->pc[ln] = f->code_base;
    memset(w->depth, 0, sizeof(w->depth));
    w->live = w->wait = w->cc = w->park = 0;
    w->diverged = w->boost = 0;
    w->upc = f->code_base;
    w->id = wi;
    for (unsigned ln = 0; ln < 32; ln++) {
      uint32_t t = wi * 32 + ln;
      if (t < L->nthreads)
        w->live |= 1u << ln;
      w->tid[0][ln] = (uint16_t)(t % bx);
      w->tid[1][ln] = (uint16_t)(t / bx % by);
      w->tid[2][ln] = (uint16_t)(t / bx / by);
    }
  }
  for (;;) {
    bool any_live = false, any_wait = false;
    for (uint32_t wi = 0; wi < L->nwarps; wi++) {
      struct warp *w = &b->warps[wi];
      if ((rc = run_warp(b, w)) != 0)
        return rc;
      any_live |= w->live != 0;
      any_wait |= w->wait != 0;
    }
    if (!any_live)
      return 0;
    if (!any_wait)
      return fault(b, NULL, 0, NULL, PTX_E_DEADLOCK, "no progress");
    /* Every live lane waits at the barrier: open it. */
    for (uint32_t wi = 0; wi < L->nwarps; wi++) {
      struct warp *w = &b->warps[wi];
      FOR_LANES(w->wait, ln)
        w->pc[ln]++;
      w->wait = 0;
      w->upc = -1;
    }
  }
}

static void *worker(void *arg) {
  struct launch *L = arg;
  const struct ptx_func *f = L->f;
  struct block b;
  uint64_t idx;
  int rc = 0;

  memset(&b, 0, sizeof(b));
  b.L = L;
  b.shared = malloc(L->shared_size ? L->shared_size : 1);
  b.warps = calloc(L->nwarps, sizeof(*b.warps));
  if (!b.shared || !b.warps)
    goto nomem;
  for (uint32_t wi = 0; wi < L->nwarps; wi++) {
    b.warps[wi].r = malloc((size_t)(f->nregs ? f->nregs : 1) * 32 *
                           sizeof(uint64_t));
    b.warps[wi].local = malloc((size_t)(f->local_size ? f->local_size : 1) *
                               32);
    b.warps[wi].rstack = malloc((size_t)(f->call_depth ? f->call_depth : 1) *
                                32 * sizeof(uint32_t));
    if (!b.warps[wi].r || !b.warps[wi].local || !b.warps[wi].rstack)
      goto nomem;
  }
  while (!__atomic_load_n(&L->err_code, __ATOMIC_RELAXED)) {
    idx = __atomic_fetch_add(&L->next_block, 1, __ATOMIC_RELAXED);
    if (idx >= L->nblocks)
      break;
    if ((rc = run_block(&b, idx)) != 0)
      break;
  }
  goto out;
nomem:
  fault(&b, NULL, 0, NULL, PTX_E_NOMEM, "out of host memory");
out:
  __atomic_fetch_add(&stat_thread_insns, b.insns, __ATOMIC_RELAXED);
  if (b.warps)
    for (uint32_t wi = 0; wi < L->nwarps; wi++) {
      free(b.warps[wi].r);
      free(b.warps[wi].local);
      free(b.warps[wi].rstack);
    }
  free(b.warps);
  free(b.shared);
  return NULL;
}

int ptx_launch(const struct ptx_kernel *k, const struct ptx_launch *l,
               char *err, size_t errlen) {
  const struct ptx_func *f = (const struct ptx_func *)(const void *)k;
  struct launch L;
  pthread_t th[MAX_HOST_THREADS];
  unsigned nth, started = 0;
  uint64_t threads, shared;

  if (errlen)
    err[0] = 0;
  if (!f || !l || !f->is_entry) {
    if (errlen)
      snprintf(err, errlen, "invalid argument");
    return PTX_E_INVALID;
  }
  threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
  shared = (uint64_t)f->dyn_shared_base + l->dyn_shared;
  if (!l->grid[0] || !l->grid[1] || !l->grid[2] || !threads ||
      threads > PTX_MAX_BLOCK_THREADS || shared > PTX_MAX_SHARED ||
      (f->maxntid && threads > f->maxntid) ||
      (f->reqntid[0] && (l->block[0] != f->reqntid[0] ||
                         l->block[1] != f->reqntid[1] ||
                         l->block[2] != f->reqntid[2])) ||
      (uint64_t)f->local_size * threads > PTX_MAX_LOCAL_PER_BLOCK ||
      (uint64_t)f->nregs * 8 * ((threads + 31) & ~31ull) >
          PTX_MAX_LOCAL_PER_BLOCK ||
      l->params_size < f->params_size || (f->params_size && !l->params)) {
    if (errlen)
      snprintf(err, errlen,
               "kernel '%s': bad launch configuration (grid %ux%ux%u, block "
               "%ux%ux%u, %llu bytes of shared memory, %zu of %u parameter "
               "bytes)",
               f->name, l->grid[0], l->grid[1], l->grid[2], l->block[0],
               l->block[1], l->block[2], (unsigned long long)shared,
               l->params_size, f->params_size);
    return PTX_E_CONFIG;
  }
  memset(&L, 0, sizeof(L));
  L.f = f;
  L.m = f->mod;
  L.l = l;
  L.nblocks = (uint64_t)l->grid[0] * l->grid[1] * l->grid[2];
  L.nthreads = (uint32_t)threads;
  L.nwarps = (uint32_t)((threads + 31) / 32);
  L.shared_size = (uint32_t)shared;
  L.err = err;
  L.errlen = errlen;
  pthread_mutex_init(&L.lock, NULL);
  nth = l->max_threads;
  if (nth == 0) {
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    nth = nc < 1 ? 1 : (unsigned)nc;
  }
  if (nth > MAX_HOST_THREADS)
    nth = MAX_HOST_THREADS;
  if (nth > L.nblocks)
    nth = (unsigned)L.nblocks;
  /* The caller's thread is one of the workers. */
  for (unsigned i = 1; i < nth; i++) {
    if (pthread_create(&th[started], NULL, worker, &L) != 0)
      break; /* fewer threads: still correct */
    started++;
  }
  worker(&L);
  for (unsigned i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  pthread_mutex_destroy(&L.lock);
  return L.err_code;
}
