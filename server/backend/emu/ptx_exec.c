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

/* Starvation (see starve_check): every STARVE_STEPS steps of a diverged
 * warp the lanes that have waited longest run for STARVE_BOOST steps; lanes
 * that have not run for STARVE_LIMIT steps while the others spin fail the
 * launch. */
#define STARVE_STEPS (1u << 16)
#define STARVE_BOOST 256u
#define STARVE_LIMIT (1u << 24)

/* Steps a warp runs before the other warps of its block get a turn. */
#define SLICE_STEPS (1u << 16)

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

/* The 16-bit float types, scalar and paired. */
static inline bool is_half(int t) {
  return (unsigned)(t - PTX_T_F16) <= PTX_T_BF16X2 - PTX_T_F16;
}

static bool is_half2(int t) {
  return t == PTX_T_F16X2 || t == PTX_T_BF16X2;
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

/* The checks of the half-precision forms (is_half(t) or is_half(t2)). */
static int half_supported(const struct ptx_insn *in, char *why,
                          size_t whylen) {
  int t = in->type, t2 = in->type2;
  unsigned n = in->nops;

  if (in->flags & ~(PTX_F_FTZ | PTX_F_SAT | PTX_F_NAN | PTX_F_BOOLOP |
                    PTX_F_DUAL | PTX_F_GUARD | PTX_F_GUARDNEG))
    NO("modifier");
  if (in->mode && in->op != PTX_OP_SETP && in->op != PTX_OP_SET &&
      in->op != PTX_OP_ATOM && in->op != PTX_OP_RED)
    NO("modifier");
  switch (in->op) {
  case PTX_OP_ADD:
  case PTX_OP_SUB:
  case PTX_OP_MUL:
  case PTX_OP_FMA:
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if (n != (in->op == PTX_OP_FMA ? 4u : 3u) || !dst_ok(&in->ops[0]) ||
        !srcs_ok(in, 1) || t2 != PTX_T_NONE)
      NO("operands");
    if (in->rnd != PTX_RND_NONE && in->rnd != PTX_RND_RN)
      NO("rounding (only .rn)");
    if ((in->flags & PTX_F_SAT) &&
        (in->op == PTX_OP_MIN || in->op == PTX_OP_MAX))
      NO(".sat");
    return 0;
  case PTX_OP_NEG:
  case PTX_OP_ABS:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        t2 != PTX_T_NONE || (in->flags & PTX_F_SAT))
      NO("operands");
    return 0;
  case PTX_OP_SETP:
    if (n != ((in->flags & PTX_F_BOOLOP) ? 5u : 4u) ||
        !dst_ok(&in->ops[0]) ||
        !(in->ops[1].kind == PTX_OPD_NONE || dst_ok(&in->ops[1])) ||
        !srcs_ok(in, 2) || in->cmp == PTX_CMP_NONE || in->cmp == PTX_CMP_LO ||
        in->cmp == PTX_CMP_LS || in->cmp == PTX_CMP_HI ||
        in->cmp == PTX_CMP_HS || t2 != PTX_T_NONE)
      NO("operands or comparison");
    if (is_half2(t) && in->ops[1].kind == PTX_OPD_NONE)
      NO("setp of a pair needs two predicates");
    return 0;
  case PTX_OP_SET:
    if (n != ((in->flags & PTX_F_BOOLOP) ? 4u : 3u) ||
        !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        in->cmp == PTX_CMP_NONE || in->cmp == PTX_CMP_LO ||
        in->cmp == PTX_CMP_LS || in->cmp == PTX_CMP_HI ||
        in->cmp == PTX_CMP_HS)
      NO("operands or comparison");
    if (is_half2(t2) ? !(t == t2 || t == PTX_T_U32 || t == PTX_T_S32)
                     : !(t == t2 || t == PTX_T_U16 || t == PTX_T_S16 ||
                         t == PTX_T_U32 || t == PTX_T_S32 ||
                         t == PTX_T_F32))
      NO("types");
    return 0;
  case PTX_OP_CVT:
    if (is_half2(t) && t2 == PTX_T_F32 && n == 3) {
      /* cvt.rn.f16x2.f32 d, a, b: a to the upper half, b to the lower */
      if (!dst_ok(&in->ops[0]) || !srcs_ok(in, 1) || in->rnd != PTX_RND_RN)
        NO("operands");
      return 0;
    }
    if (is_half2(t) || is_half2(t2))
      NO("types");
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (!(is_int(t) || is_f(t) || is_half(t)) ||
        !(is_int(t2) || is_f(t2) || is_half(t2)))
      NO("types");
    if (is_int(t)) { /* half to integer */
      if (in->rnd < PTX_RND_RNI)
        NO("float to integer needs .rni/.rzi/.rmi/.rpi");
    } else if (t == t2) {
      if (in->rnd && in->rnd < PTX_RND_RNI)
        NO("rounding");
    } else if (is_half(t)) { /* to half: a rounding step */
      if (in->rnd < PTX_RND_RN || in->rnd > PTX_RND_RP)
        NO("conversion to a 16-bit float needs .rn/.rz/.rm/.rp");
    } else if (in->rnd) { /* half to f32/f64: exact */
      NO("rounding of an exact conversion");
    }
    return 0;
  case PTX_OP_ATOM:
  case PTX_OP_RED: {
    unsigned m0 = in->op == PTX_OP_ATOM ? 1 : 0;
    if (in->mode != PTX_MODE_ADD)
      NO("only add on 16-bit floats");
    if (n != m0 + 2u || in->ops[m0].kind != PTX_OPD_MEM ||
        (m0 && !dst_ok(&in->ops[0])) || !srcs_ok(in, m0 + 1))
      NO("operands");
    if (in->space != PTX_SP_GLOBAL && in->space != PTX_SP_SHARED &&
        in->space != PTX_SP_GENERIC)
      NO("state space");
    return 0;
  }
  case PTX_OP_MOV:
  case PTX_OP_LD:
  case PTX_OP_ST:
    return 1; /* the general checks apply */
  default:
    NO("not implemented for 16-bit floats");
  }
}

int ptx_exec_supported(const struct ptx_insn *in, char *why, size_t whylen) {
  int t = in->type, t2 = in->type2;
  unsigned n = in->nops;
  int rc;

  if ((in->flags & (PTX_F_CC | PTX_F_CARRYIN)) &&
      (!(in->op == PTX_OP_ADD || in->op == PTX_OP_SUB ||
         in->op == PTX_OP_MAD) ||
       !is_int(t) || ptx_type_size(t) < 4 || in->mode == PTX_MODE_WIDE ||
       (in->flags & PTX_F_SAT)))
    NO("carry (.cc, addc, subc, madc) on this instruction");
  if (in->vec != 1 && in->op != PTX_OP_LD && in->op != PTX_OP_ST)
    NO("vector modifier");
  if ((in->flags & PTX_F_NAN) && !(is_half(t) || t == PTX_T_F32))
    NO(".NaN");
  if (is_half(t) || is_half(t2)) {
    if ((rc = half_supported(in, why, whylen)) <= 0)
      return rc;
    /* mov, ld, st: they move bits */
    t = ptx_type_size(t) == 4 ? PTX_T_B32 : PTX_T_B16;
    t2 = PTX_T_NONE;
  }
  if (t2 != PTX_T_NONE && in->op != PTX_OP_CVT && in->op != PTX_OP_SET &&
      in->op != PTX_OP_DP4A && in->op != PTX_OP_DP2A)
    NO("second type");
  if ((in->flags & PTX_F_SAT) &&
      !(in->op == PTX_OP_CVT ||
        ((in->op == PTX_OP_ADD || in->op == PTX_OP_SUB ||
          in->op == PTX_OP_MUL || in->op == PTX_OP_FMA ||
          in->op == PTX_OP_MAD) && t == PTX_T_F32) ||
        ((in->op == PTX_OP_ADD || in->op == PTX_OP_SUB) &&
         t == PTX_T_S32) ||
        ((in->op == PTX_OP_MAD || in->op == PTX_OP_MAD24) &&
         t == PTX_T_S32 && in->mode == PTX_MODE_HI) ||
        is_half(in->type)))
    NO(".sat");
  if ((in->flags & PTX_F_FTZ) && !(t == PTX_T_F32 || t2 == PTX_T_F32) &&
      !(t == PTX_T_F64 && (in->flags & PTX_F_APPROX) &&
        (in->op == PTX_OP_RCP || in->op == PTX_OP_RSQRT)) &&
      !is_half(in->type) && !is_half(in->type2))
    NO(".ftz");
  if (in->mode && in->op != PTX_OP_MUL && in->op != PTX_OP_MAD &&
      in->op != PTX_OP_SHFL && in->op != PTX_OP_VOTE &&
      in->op != PTX_OP_ATOM && in->op != PTX_OP_RED &&
      in->op != PTX_OP_TESTP && in->op != PTX_OP_SETP &&
      in->op != PTX_OP_SET && in->op != PTX_OP_MUL24 &&
      in->op != PTX_OP_MAD24 && in->op != PTX_OP_BAR &&
      in->op != PTX_OP_SHF && in->op != PTX_OP_BFIND &&
      in->op != PTX_OP_MATCH && in->op != PTX_OP_DP2A)
    NO("modifier");
  if (in->rnd && !(is_f(t) || is_half(in->type) || in->op == PTX_OP_CVT))
    NO("rounding modifier");
  if (is_half(in->type) || is_half(in->type2))
    return 0;

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
  case PTX_OP_BAR: {
    /* bar.sync / barrier.sync a{, b}; bar.arrive a, b;
     * bar.red.popc.u32 d, a{, b}, {!}c; bar.red.{and,or}.pred p, a{, b},
     * {!}c */
    bool red = in->flags & PTX_F_RED, arrive = in->flags & PTX_F_ARRIVE;
    unsigned first = red ? 1 : 0, nsrc = n - first - (red ? 1 : 0);
    if (((in->flags & PTX_F_SYNC) != 0) + red + arrive != 1)
      NO("barrier form");
    if (red ? (n < 3 || n > 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
               (in->mode == PTX_MODE_POPC ? t != PTX_T_U32
                                          : t != PTX_T_PRED ||
                                                (in->mode != PTX_MODE_AND &&
                                                 in->mode != PTX_MODE_OR)))
            : (n < 1 || n > 2 || !srcs_ok(in, 0) || t != PTX_T_NONE))
      NO("operands");
    if (arrive && nsrc != 2)
      NO("bar.arrive needs a thread count");
    for (unsigned i = first; i < first + nsrc; i++)
      if (in->ops[i].kind == PTX_OPD_IMM &&
          (i == first ? (uint64_t)in->ops[i].imm > 15
                      : in->ops[i].imm <= 0 || in->ops[i].imm % 32 ||
                            in->ops[i].imm > PTX_MAX_BLOCK_THREADS))
        NO(i == first ? "barrier number above 15"
                      : "thread count not a multiple of 32 in 32..1024");
    return 0;
  }
  case PTX_OP_WARPSYNC:
    if (n != 1 || !srcs_ok(in, 0) || !(in->flags & PTX_F_SYNC))
      NO("operands");
    return 0;
  case PTX_OP_SET:
    if (n != ((in->flags & PTX_F_BOOLOP) ? 4u : 3u) ||
        !dst_ok(&in->ops[0]) || !srcs_ok(in, 1))
      NO("operands");
    if (t != PTX_T_U32 && t != PTX_T_S32 && t != PTX_T_F32)
      NO("destination type");
    if (!(is_int16up(t2) || is_f(t2)) || in->cmp == PTX_CMP_NONE)
      NO("source type or comparison");
    if (!is_f(t2) && in->cmp >= PTX_CMP_EQU)
      NO("unordered comparison of integers");
    if (!ptx_type_signed(t2) && !is_f(t2) && t2 >= PTX_T_B8 &&
        t2 <= PTX_T_B64 && in->cmp != PTX_CMP_EQ && in->cmp != PTX_CMP_NE)
      NO("ordered comparison of .b types");
    if (is_f(t2) && in->cmp >= PTX_CMP_LO && in->cmp <= PTX_CMP_HS)
      NO("unsigned comparison of floats");
    return 0;
  case PTX_OP_MUL24:
  case PTX_OP_MAD24:
    if (n != (in->op == PTX_OP_MUL24 ? 3u : 4u) || !dst_ok(&in->ops[0]) ||
        !srcs_ok(in, 1))
      NO("operands");
    if ((t != PTX_T_U32 && t != PTX_T_S32) ||
        (in->mode != PTX_MODE_LO && in->mode != PTX_MODE_HI))
      NO("type or mode");
    return 0;
  case PTX_OP_SAD:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        !is_int16up(t) || t == PTX_T_B16 || t == PTX_T_B32 ||
        t == PTX_T_B64)
      NO("operands or type");
    return 0;
  case PTX_OP_BFIND:
    if (n != 2 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        (t != PTX_T_U32 && t != PTX_T_S32 && t != PTX_T_U64 &&
         t != PTX_T_S64))
      NO("operands or type");
    return 0;
  case PTX_OP_SHF:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        t != PTX_T_B32 || !in->mode)
      NO("operands, type or direction");
    return 0;
  case PTX_OP_DP4A:
  case PTX_OP_DP2A:
    if (n != 4 || !dst_ok(&in->ops[0]) || !srcs_ok(in, 1) ||
        (t != PTX_T_U32 && t != PTX_T_S32) ||
        (t2 != PTX_T_U32 && t2 != PTX_T_S32) ||
        (in->op == PTX_OP_DP2A) != (in->mode == PTX_MODE_LO ||
                                    in->mode == PTX_MODE_HI))
      NO("operands or types");
    return 0;
  case PTX_OP_MATCH:
    if (!(in->flags & PTX_F_SYNC) || n != 4 || !dst_ok(&in->ops[0]) ||
        !(in->ops[1].kind == PTX_OPD_NONE ||
          (dst_ok(&in->ops[1]) && in->mode == PTX_MODE_ALL)) ||
        !srcs_ok(in, 2) || (t != PTX_T_B32 && t != PTX_T_B64) ||
        (in->mode != PTX_MODE_ANY && in->mode != PTX_MODE_ALL))
      NO("operands or type");
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
  uint32_t wait;                /* lanes waiting at a barrier (bar_id) */
  int64_t upc;                  /* PC of every runnable lane, or -1 */
  uint32_t cc;                  /* carry flag of each lane */
  uint32_t park;                /* lanes at a warp collective (shfl, vote,
                                   match, bar.warp.sync) waiting for the
                                   rest of its member mask */
  /* starvation (see starve_check) */
  uint32_t diverged;            /* diverged steps since the last check */
  uint32_t ran;                 /* lanes scheduled since the last check */
  uint32_t boost;               /* steps left of running boost_mask */
  uint32_t boost_mask;          /* lanes that have waited longest */
  uint32_t stuck;               /* lanes starved for STARVE_LIMIT steps */
  uint32_t sample_pc;           /* where the warp's state is compared */
  bool sampling;                /* compare it when pc comes back there */
  bool have_base;               /* state_hash holds a state at sample_pc */
  uint64_t state_hash;
  uint16_t starved[32];         /* checks in a row a lane did not run */
  uint32_t *rstack;             /* 32 x call_depth: PCs of the calls */
  uint8_t depth[32];            /* calls in progress per lane */
  uint8_t bar_id[32];           /* the barrier a waiting lane waits at */
  uint32_t id;
  uint16_t tid[3][32];
};

/* A named barrier of a block (bar.sync/bar.arrive/bar.red a{, b}). */
struct barrier {
  uint32_t arrived;             /* threads since it last completed */
  uint32_t count;               /* threads it waits for; 0: every thread
                                   of the block that has not exited */
  uint32_t popc;                /* bar.red: threads whose predicate held */
  uint32_t nfalse;              /* bar.red: threads whose predicate did
                                   not */
};

struct block {
  struct launch *L;
  uint32_t ctaid[3];
  uint8_t *shared;
  struct warp *warps;
  uint64_t insns;
  struct barrier bars[16];
  uint32_t bar_pending;         /* barriers with arrivals */
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
    char what[320];
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

/* ---- 16-bit floats -------------------------------------------------- */

/* IEEE binary16 (f16: 5 exponent bits, 10 fraction bits) and bfloat16
 * (bf16: 8 and 7). Values are computed in double, which holds every
 * 16-bit float, sum and product exactly enough that one rounding to the
 * 16-bit format gives the correctly rounded result (bf16 fma excepted:
 * see fma_odd). */
enum { HALF_F16, HALF_BF16 };

/* The NaN the GPU produces for both formats. */
#define HALF_NAN 0x7fffu

static int half_fmt(int t) {
  return t == PTX_T_BF16 || t == PTX_T_BF16X2 ? HALF_BF16 : HALF_F16;
}

static unsigned half_mbits(int fmt) {
  return fmt == HALF_F16 ? 10 : 7;
}

static double half_to_double(uint32_t h, int fmt) {
  unsigned mb = half_mbits(fmt), eb = 15 - mb;
  int bias = (1 << (eb - 1)) - 1;
  uint32_t e = (h >> mb) & ((1u << eb) - 1), f = h & ((1u << mb) - 1);
  double v;

  if (e == (1u << eb) - 1)
    v = f ? NAN : INFINITY;
  else if (e == 0)
    v = ldexp((double)f, 1 - bias - (int)mb);
  else
    v = ldexp((double)(f | 1u << mb), (int)e - bias - (int)mb);
  return (h & 0x8000u) ? -v : v;
}

/* |x| rounded to |fmt| with |rnd| (PTX_RND_RZ/RM/RP, else to nearest,
 * ties to even) in one step: subnormals kept, overflow to infinity or to
 * the largest finite value as the direction says, NaN to HALF_NAN. */
static uint32_t double_to_half(double x, int fmt, int rnd) {
  unsigned mb = half_mbits(fmt), eb = 15 - mb;
  int bias = (1 << (eb - 1)) - 1, e;
  uint32_t sign = signbit(x) ? 0x8000u : 0, efull = (1u << eb) - 1;
  double a = fabs(x), q, fl;
  uint64_t n;

  if (isnan(x))
    return HALF_NAN;
  if (isinf(x))
    return sign | efull << mb;
  if (a == 0)
    return sign;
  frexp(a, &e);
  e -= 1;                      /* a is in [2^e, 2^(e+1)) */
  if (e < 1 - bias)
    e = 1 - bias;              /* subnormal: the smallest exponent's step */
  if (e > bias)
    goto overflow;
  q = ldexp(a, (int)mb - e);   /* |x| in units of the last place: exact */
  fl = floor(q);
  n = (uint64_t)fl;
  if (q != fl) {
    double frac = q - fl;      /* exact */
    bool up;
    switch (rnd) {
    case PTX_RND_RZ: up = false; break;
    case PTX_RND_RM: up = sign != 0; break;
    case PTX_RND_RP: up = sign == 0; break;
    default: up = frac > 0.5 || (frac == 0.5 && (n & 1)); break;
    }
    n += up;
  }
  if (n >> (mb + 1)) {         /* rounded up into the next binade */
    n >>= 1;
    e++;
    if (e > bias)
      goto overflow;
  }
  if (n < (1u << mb))          /* subnormal (or zero) */
    return sign | (uint32_t)n;
  return sign | (uint32_t)(e + bias) << mb | ((uint32_t)n & ((1u << mb) - 1));
overflow:
  if (rnd == PTX_RND_RZ || (rnd == PTX_RND_RM && !sign) ||
      (rnd == PTX_RND_RP && sign))
    return sign | (efull - 1) << mb | ((1u << mb) - 1);
  return sign | efull << mb;
}

/* Integer |v| (signed when |sg|) rounded to |fmt| in one step: values
 * beyond double's 53 bits are first rounded to odd, which keeps the final
 * rounding correct. */
static uint32_t int_to_half(uint64_t v, bool sg, int fmt, int rnd) {
  bool neg = sg && (int64_t)v < 0;
  uint64_t mag = neg ? 0 - v : v;
  double d;

  if (mag >> 53) {
    int top = 63 - __builtin_clzll(mag), sh = top - 52;
    uint64_t m = mag >> sh;
    if (mag & ((1ull << sh) - 1))
      m |= 1;
    d = ldexp((double)m, sh);
  } else {
    d = (double)mag;
  }
  return double_to_half(neg ? -d : d, fmt, rnd);
}

/* a * b + c rounded to odd (truncated, the last bit set when inexact):
 * rounding that to bf16 is correct, where rounding fma() to nearest and
 * then to bf16 could round twice. Only the calling thread's rounding mode
 * changes, and is restored. */
static double fma_odd(double a, double b, double c) {
  int old = fegetround();
  double r;
  bool inexact;

  fesetround(FE_TOWARDZERO);
  feclearexcept(FE_INEXACT);
  r = fma(a, b, c);
  inexact = fetestexcept(FE_INEXACT) != 0;
  fesetround(old);
  if (inexact && isfinite(r)) {
    uint64_t u;
    memcpy(&u, &r, 8);
    u |= 1;
    memcpy(&r, &u, 8);
  }
  return r;
}

/* A subnormal 16-bit float to a zero of its sign (.ftz). */
static uint32_t half_ftz(uint32_t h, int fmt) {
  unsigned mb = half_mbits(fmt);
  return (h & (0x7fffu >> mb << mb)) == 0 ? h & 0x8000u : h;
}

static bool half_isnan(uint32_t h, int fmt) {
  unsigned mb = half_mbits(fmt);
  return (h & 0x7fffu) > (0x7fffu >> mb << mb);
}

/* One half of add/sub/mul/fma/min/max/neg/abs.f16 and friends. */
static uint32_t half_arith1(const struct ptx_insn *in, int fmt, uint32_t a,
                            uint32_t b, uint32_t c) {
  bool ftz = in->flags & PTX_F_FTZ;
  double x, y, r;
  uint32_t h;

  if (ftz) {
    a = half_ftz(a, fmt);
    b = half_ftz(b, fmt);
    c = half_ftz(c, fmt);
  }
  switch (in->op) {
  case PTX_OP_NEG:
    return a ^ 0x8000u;
  case PTX_OP_ABS:
    return a & 0x7fffu;
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if (half_isnan(a, fmt) || half_isnan(b, fmt)) {
      if ((in->flags & PTX_F_NAN) ||
          (half_isnan(a, fmt) && half_isnan(b, fmt)))
        return HALF_NAN;
      return half_isnan(a, fmt) ? b : a;
    }
    x = half_to_double(a, fmt);
    y = half_to_double(b, fmt);
    if (x == y) /* -0 is below +0 */
      return in->op == PTX_OP_MIN ? (a | b) : (a & b);
    return (in->op == PTX_OP_MIN) == (x < y) ? a : b;
  default:
    break;
  }
  x = half_to_double(a, fmt);
  y = half_to_double(b, fmt);
  switch (in->op) {
  case PTX_OP_ADD: r = x + y; break;
  case PTX_OP_SUB: r = x - y; break;
  case PTX_OP_MUL: r = x * y; break;
  default: /* fma */
    r = fmt == HALF_F16 ? fma(x, y, half_to_double(c, fmt))
                        : fma_odd(x, y, half_to_double(c, fmt));
    break;
  }
  if (isnan(r))
    return (in->flags & PTX_F_SAT) ? 0 : HALF_NAN;
  if ((in->flags & PTX_F_SAT) && !(r > 0))
    r = 0;
  else if ((in->flags & PTX_F_SAT) && r > 1)
    r = 1;
  h = double_to_half(r, fmt, PTX_RND_RN);
  return ftz ? half_ftz(h, fmt) : h;
}

/* add/sub/mul/fma/min/max/neg/abs of 16-bit floats, each half of a pair
 * on its own. */
static uint64_t half_arith(const struct ptx_insn *in, uint64_t a, uint64_t b,
                           uint64_t c) {
  int fmt = half_fmt(in->type);
  uint64_t r = half_arith1(in, fmt, a & 0xffff, b & 0xffff, c & 0xffff);

  if (is_half2(in->type))
    r |= (uint64_t)half_arith1(in, fmt, (a >> 16) & 0xffff,
                               (b >> 16) & 0xffff, (c >> 16) & 0xffff)
         << 16;
  return r;
}

/* The value of one half for a comparison (.ftz flushes it). */
static double half_cmp_val(const struct ptx_insn *in, int fmt, uint32_t h) {
  if (in->flags & PTX_F_FTZ)
    h = half_ftz(h, fmt);
  return half_to_double(h, fmt);
}

/* atom.add of a 16-bit float or a pair at |p|: returns the old bits. */
static uint64_t atom_half(uint8_t *p, int t, uint64_t v) {
  int fmt = half_fmt(t);

  if (is_half2(t)) {
    uint32_t *q = (uint32_t *)(void *)p, old, nv;
    old = __atomic_load_n(q, __ATOMIC_RELAXED);
    do {
      nv = double_to_half(half_to_double(old & 0xffff, fmt) +
                              half_to_double(v & 0xffff, fmt),
                          fmt, PTX_RND_RN) |
           double_to_half(half_to_double(old >> 16, fmt) +
                              half_to_double((v >> 16) & 0xffff, fmt),
                          fmt, PTX_RND_RN)
               << 16;
    } while (!__atomic_compare_exchange_n(q, &old, nv, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    return old;
  } else {
    uint16_t *q = (uint16_t *)(void *)p, old, nv;
    old = __atomic_load_n(q, __ATOMIC_RELAXED);
    do {
      nv = (uint16_t)double_to_half(half_to_double(old, fmt) +
                                        half_to_double(v & 0xffff, fmt),
                                    fmt, PTX_RND_RN);
    } while (!__atomic_compare_exchange_n(q, &old, nv, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    return old;
  }
}

/* ---- memory --------------------------------------------------------- */

/* Finds the host address of [addr, addr+n) in |*spacep| for |lane|, or
 * returns NULL with |*spacep| and |*addrp| set to the space and address a
 * generic address resolved to. */
static uint8_t *xlat_quiet(struct block *b, struct warp *w, unsigned lane,
                           int *spacep, uint64_t *addrp, uint64_t n,
                           bool write) {
  struct launch *L = b->L;
  const struct ptx_module *m = L->m;
  int space = *spacep;
  uint64_t addr = *addrp;

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
  *spacep = space;
  *addrp = addr;
  return NULL;
}

/* xlat_quiet() that records a fault when the address is bad. */
static uint8_t *xlat(struct block *b, struct warp *w, unsigned lane,
                     const struct ptx_insn *in, int space, uint64_t addr,
                     uint64_t n, bool write) {
  static const char *const names[] = {"generic", "global", "shared",
                                      "local", "param", "const"};
  int sp = space;
  uint64_t a = addr;
  uint8_t *p = xlat_quiet(b, w, lane, &sp, &a, n, write);

  if (p)
    return p;
  fault(b, w, lane, in, PTX_E_ILLEGAL_ADDRESS,
        "illegal %s %s of %llu bytes at address 0x%llx",
        names[sp < 6 ? sp : 0], write ? "write" : "read",
        (unsigned long long)n, (unsigned long long)a);
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

/* ---- device printf -------------------------------------------------- */

/* nvcc turns printf(fmt, ...) into vprintf(fmt, args): |fmt| is a generic
 * address of the format string, |args| of a buffer (the caller's local
 * stack) holding the arguments one after the other, each aligned to its
 * own size: int, char and short as 4 bytes, long, long long, size_t and
 * pointers (%s, %p) as 8, float promoted to double. The text is made here
 * with C's rules, as CUDA's driver makes it on the host. */

/* The longest format string and %s argument read from the device, the
 * most arguments one call formats (CUDA's limit: the rest of the format is
 * printed as it stands), and the longest text one call produces. */
#define PRINTF_MAX_STR 4096u
#define PRINTF_MAX_ARGS 32u
#define PRINTF_MAX_OUT 65536u

/* Growing output text, cut at PRINTF_MAX_OUT. */
struct pbuf {
  char *s;
  size_t len, cap;
  bool nomem;
};

static void pb_put(struct pbuf *o, const char *s, size_t n) {
  if (n > PRINTF_MAX_OUT - o->len)
    n = PRINTF_MAX_OUT - o->len;
  if (!n || o->nomem)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    char *p;
    while (cap < o->len + n + 1)
      cap *= 2;
    if (!(p = realloc(o->s, cap))) {
      o->nomem = true;
      return;
    }
    o->s = p;
    o->cap = cap;
  }
  memcpy(o->s + o->len, s, n);
  o->len += n;
}

static void pb_pad(struct pbuf *o, char c, size_t n) {
  char chunk[64];

  memset(chunk, c, sizeof(chunk));
  if (n > PRINTF_MAX_OUT)
    n = PRINTF_MAX_OUT;
  while (n > 0 && o->len < PRINTF_MAX_OUT && !o->nomem) {
    size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
    pb_put(o, chunk, k);
    n -= k;
  }
}

/* Where vprintf reads the device: the lane's view of memory. */
struct preader {
  struct block *b;
  struct warp *w;
  unsigned lane;
};

/* Reads |n| (1, 4 or 8) bytes at generic address |addr|; returns 0, or -1
 * when they are not all readable. Never faults the launch. */
static int pread_n(const struct preader *r, uint64_t addr, unsigned n,
                   uint64_t *v) {
  int space = PTX_SP_GENERIC;
  uint8_t *p = xlat_quiet(r->b, r->w, r->lane, &space, &addr, n, false);

  if (!p)
    return -1;
  *v = load_n(p, n);
  return 0;
}

/* Reads a NUL-terminated string of at most |max| bytes at generic address
 * |addr| into |out| (|max| + 1 bytes). Returns its length, or -1 when its
 * first byte is not readable; a string that runs into unreadable memory
 * or past |max| ends there. */
static long pread_str(const struct preader *r, uint64_t addr, char *out,
                      size_t max) {
  size_t n = 0;

  while (n < max) {
    /* whole chunks while they are readable, then byte by byte */
    uint64_t a = addr + n;
    int space = PTX_SP_GENERIC;
    size_t k = max - n < 64 ? max - n : 64;
    uint8_t *p = xlat_quiet(r->b, r->w, r->lane, &space, &a, k, false);
    const uint8_t *z;
    if (!p) {
      uint64_t c;
      if (pread_n(r, addr + n, 1, &c) < 0)
        break;
      if (!c)
        break;
      out[n++] = (char)c;
      continue;
    }
    if ((z = memchr(p, 0, k))) {
      memcpy(out + n, p, (size_t)(z - p));
      n += (size_t)(z - p);
      break;
    }
    memcpy(out + n, p, k);
    n += k;
  }
  out[n] = 0;
  if (n == 0) {
    uint64_t c;
    if (pread_n(r, addr, 1, &c) < 0)
      return -1;
  }
  return (long)n;
}

/* One conversion specification. */
struct pspec {
  bool minus, plus, space, alt, zero;
  long width;                   /* -1: none */
  long prec;                    /* -1: none */
  int len;                      /* 'H' hh, 'h', 'l' (l ll z j t q L), 0 */
  char conv;
};

/* Pads |body| (|n| bytes, after |prefix|: a sign and/or 0x) to the
 * width: spaces before or after, or zeros between prefix and body. */
static void put_field(struct pbuf *o, const struct pspec *sp,
                      const char *prefix, const char *body, size_t n,
                      bool zero_ok) {
  size_t pn = strlen(prefix), total = pn + n;
  size_t pad = sp->width > 0 && (size_t)sp->width > total
                   ? (size_t)sp->width - total : 0;

  if (sp->minus) {
    pb_put(o, prefix, pn);
    pb_put(o, body, n);
    pb_pad(o, ' ', pad);
  } else if (sp->zero && zero_ok) {
    pb_put(o, prefix, pn);
    pb_pad(o, '0', pad);
    pb_put(o, body, n);
  } else {
    pb_pad(o, ' ', pad);
    pb_put(o, prefix, pn);
    pb_put(o, body, n);
  }
}

static void put_int(struct pbuf *o, const struct pspec *sp, uint64_t raw) {
  char digits[64], prefix[4] = "";
  const char *xd = sp->conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
  bool sg = sp->conv == 'd' || sp->conv == 'i', neg = false;
  unsigned base = sp->conv == 'o' ? 8 : (sp->conv == 'x' || sp->conv == 'X')
                                             ? 16 : 10;
  uint64_t v;
  size_t n = 0, zeros = 0;
  char *body;

  switch (sp->len) { /* the argument's C type */
  case 'H': v = sg ? (uint64_t)(int64_t)(int8_t)raw : (uint8_t)raw; break;
  case 'h': v = sg ? (uint64_t)(int64_t)(int16_t)raw : (uint16_t)raw; break;
  case 'l': v = raw; break;
  default: v = sg ? (uint64_t)(int64_t)(int32_t)raw : (uint32_t)raw; break;
  }
  if (sg && (int64_t)v < 0) {
    neg = true;
    v = 0 - v;
  }
  if (v && sp->alt && base == 16)
    strcpy(prefix, sp->conv == 'X' ? "0X" : "0x");
  if (v && sp->alt && base == 8)
    zeros = 1; /* a leading 0, unless the precision gives one */
  for (uint64_t x = v; x; x /= base)
    digits[sizeof(digits) - 1 - n++] = xd[x % base];
  if (sp->prec < 0 && n == 0)
    digits[sizeof(digits) - 1 - n++] = '0';
  if (sp->prec == 0 && n == 0 && sp->alt && base == 8)
    zeros = 1;
  if (sp->prec > 0 && (size_t)sp->prec > n)
    zeros = (size_t)sp->prec - n;
  if (neg)
    memmove(prefix + 1, prefix, 3), prefix[0] = '-';
  else if (sg && sp->plus)
    prefix[0] = '+';
  else if (sg && sp->space)
    prefix[0] = ' ';
  if (zeros > PRINTF_MAX_OUT)
    zeros = PRINTF_MAX_OUT;
  if (!(body = malloc(zeros + n + 1))) {
    o->nomem = true;
    return;
  }
  memset(body, '0', zeros);
  memcpy(body + zeros, digits + sizeof(digits) - n, n);
  put_field(o, sp, prefix, body, zeros + n, sp->prec < 0);
  free(body);
}

/* C's %e %f %g %a of |m| >= 0 (or NaN) into |buf|, as snprintf. */
static int fmt_double(char *buf, size_t size, char conv, bool alt, int prec,
                      double m) {
  switch (conv) {
  case 'e': return alt ? snprintf(buf, size, "%#.*e", prec, m)
                       : snprintf(buf, size, "%.*e", prec, m);
  case 'E': return alt ? snprintf(buf, size, "%#.*E", prec, m)
                       : snprintf(buf, size, "%.*E", prec, m);
  case 'f': return alt ? snprintf(buf, size, "%#.*f", prec, m)
                       : snprintf(buf, size, "%.*f", prec, m);
  case 'F': return alt ? snprintf(buf, size, "%#.*F", prec, m)
                       : snprintf(buf, size, "%.*F", prec, m);
  case 'g': return alt ? snprintf(buf, size, "%#.*g", prec, m)
                       : snprintf(buf, size, "%.*g", prec, m);
  case 'G': return alt ? snprintf(buf, size, "%#.*G", prec, m)
                       : snprintf(buf, size, "%.*G", prec, m);
  case 'a': return alt ? snprintf(buf, size, "%#.*a", prec, m)
                       : snprintf(buf, size, "%.*a", prec, m);
  default: return alt ? snprintf(buf, size, "%#.*A", prec, m)
                      : snprintf(buf, size, "%.*A", prec, m);
  }
}

/* The digits come from the C library (correctly rounded decimal and hex
 * conversion); the sign, width and padding are applied here. */
static void put_double(struct pbuf *o, const struct pspec *sp, double v) {
  char prefix[4] = "", small[128], *body = small;
  int prec = sp->prec > 4096 ? 4096 : (int)sp->prec, n;
  bool fin = isfinite(v);
  double m = fabs(v);
  size_t skip = 0;

  if (signbit(v))
    strcpy(prefix, "-");
  else if (sp->plus)
    strcpy(prefix, "+");
  else if (sp->space)
    strcpy(prefix, " ");
  n = fmt_double(small, sizeof(small), sp->conv, sp->alt, prec, m);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(small)) {
    if (!(body = malloc((size_t)n + 1))) {
      o->nomem = true;
      return;
    }
    fmt_double(body, (size_t)n + 1, sp->conv, sp->alt, prec, m);
  }
  if (fin && (sp->conv == 'a' || sp->conv == 'A') && n >= 2) {
    size_t k = strlen(prefix); /* 0x: zeros go after it */
    prefix[k] = body[0];
    prefix[k + 1] = body[1];
    prefix[k + 2] = 0;
    skip = 2;
  }
  put_field(o, sp, prefix, body + skip, (size_t)n - skip, fin);
  if (body != small)
    free(body);
}

/* Parses the specification after '%' at |*pp|; returns false when it is
 * incomplete or its conversion unknown. Widths and precisions from '*'
 * are taken by the caller (marked -2). */
static bool parse_spec(const char **pp, struct pspec *sp) {
  const char *p = *pp;

  memset(sp, 0, sizeof(*sp));
  sp->width = sp->prec = -1;
  for (;; p++) {
    if (*p == '-') sp->minus = true;
    else if (*p == '+') sp->plus = true;
    else if (*p == ' ') sp->space = true;
    else if (*p == '#') sp->alt = true;
    else if (*p == '0') sp->zero = true;
    else break;
  }
  if (*p == '*') {
    sp->width = -2;
    p++;
  } else {
    for (; *p >= '0' && *p <= '9'; p++)
      sp->width = (sp->width < 0 ? 0 : sp->width) * 10 + (*p - '0') > 10000000
                      ? 10000000
                      : (sp->width < 0 ? 0 : sp->width) * 10 + (*p - '0');
  }
  if (*p == '.') {
    p++;
    sp->prec = 0;
    if (*p == '*') {
      sp->prec = -2;
      p++;
    } else {
      for (; *p >= '0' && *p <= '9'; p++)
        sp->prec = sp->prec * 10 + (*p - '0') > 10000000
                       ? 10000000 : sp->prec * 10 + (*p - '0');
    }
  }
  if (p[0] == 'h' && p[1] == 'h') {
    sp->len = 'H';
    p += 2;
  } else if (p[0] == 'l' && p[1] == 'l') {
    sp->len = 'l';
    p += 2;
  } else if (*p == 'h') {
    sp->len = 'h';
    p++;
  } else if (*p && strchr("lLqjzt", *p)) {
    sp->len = 'l';
    p++;
  }
  if (!*p || !strchr("diuxXocspeEfFgGaAn%", *p))
    return false;
  sp->conv = *p++;
  *pp = p;
  return true;
}

/* vprintf(|fmt|, |args|) for one lane into |o|. Returns the number of
 * bytes of the text, or -1 when the format string cannot be read. */
static int format_printf(const struct preader *r, uint64_t fmt,
                         uint64_t args, struct pbuf *o) {
  char *f = malloc(PRINTF_MAX_STR + 1), *sbuf = NULL;
  const char *p;
  uint64_t off = 0;
  unsigned nargs = 0;

  if (!f) {
    o->nomem = true;
    return -1;
  }
  if (pread_str(r, fmt, f, PRINTF_MAX_STR) < 0) {
    free(f);
    return -1;
  }
  for (p = f; *p;) {
    const char *spec = p, *q;
    struct pspec sp;
    uint64_t v = 0;
    unsigned size;
    bool bad = false;
    if (*p != '%') {
      q = strchr(p, '%');
      if (!q)
        q = p + strlen(p);
      pb_put(o, p, (size_t)(q - p));
      p = q;
      continue;
    }
    p++;
    if (!parse_spec(&p, &sp)) {
      pb_put(o, spec, 1); /* "%" of an unknown conversion, as it stands */
      continue;
    }
    if (sp.conv == '%') {
      pb_put(o, "%", 1);
      continue;
    }
    /* '*' arguments first, in order, then the value */
    for (int k = 0; k < 2; k++) {
      long *field = k == 0 ? &sp.width : &sp.prec;
      uint64_t iv;
      if (*field != -2)
        continue;
      if (nargs >= PRINTF_MAX_ARGS)
        goto as_is;
      off = (off + 3) & ~3ull;
      if (pread_n(r, args + off, 4, &iv) < 0) {
        bad = true;
        iv = 0;
      }
      off += 4;
      nargs++;
      if (k == 0) {
        int32_t wv = (int32_t)iv;
        sp.minus |= wv < 0;
        sp.width = wv < 0 ? -(long)wv : wv;
        if (sp.width > 10000000)
          sp.width = 10000000;
      } else {
        sp.prec = (int32_t)iv < 0 ? -1 : (int32_t)iv;
      }
    }
    if (nargs >= PRINTF_MAX_ARGS)
      goto as_is;
    size = sp.conv == 'c' || (strchr("diuxXo", sp.conv) && sp.len != 'l')
               ? 4 : 8;
    off = (off + size - 1) & ~(uint64_t)(size - 1);
    if (pread_n(r, args + off, size, &v) < 0)
      bad = true;
    off += size;
    nargs++;
    if (bad) {
      pb_put(o, "<bad address>", 13);
      continue;
    }
    switch (sp.conv) {
    case 'c': {
      char c = (char)v;
      sp.zero = false;
      put_field(o, &sp, "", &c, 1, false);
      break;
    }
    case 's': {
      long n;
      size_t max = sp.prec >= 0 && (size_t)sp.prec < PRINTF_MAX_STR
                       ? (size_t)sp.prec : PRINTF_MAX_STR;
      sp.zero = false;
      if (v == 0) {
        const char *nul = sp.prec < 0 || sp.prec >= 6 ? "(null)" : "";
        put_field(o, &sp, "", nul, strlen(nul), false);
        break;
      }
      if (!sbuf && !(sbuf = malloc(PRINTF_MAX_STR + 1))) {
        o->nomem = true;
        break;
      }
      if ((n = pread_str(r, v, sbuf, max)) < 0)
        pb_put(o, "<bad address>", 13);
      else
        put_field(o, &sp, "", sbuf, (size_t)n, false);
      break;
    }
    case 'p': {
      struct pspec hx = sp;
      if (v == 0) {
        sp.zero = false;
        put_field(o, &sp, "", "(nil)", 5, false);
        break;
      }
      hx.conv = 'x';
      hx.alt = true;
      hx.len = 'l';
      put_int(o, &hx, v);
      break;
    }
    case 'n':
      break; /* writes nothing back, as CUDA's printf */
    case 'e': case 'E': case 'f': case 'F':
    case 'g': case 'G': case 'a': case 'A': {
      double d;
      memcpy(&d, &v, 8);
      put_double(o, &sp, d);
      break;
    }
    default:
      put_int(o, &sp, v);
      break;
    }
    continue;
  as_is:
    pb_put(o, spec, (size_t)(p - spec));
  }
  free(sbuf);
  free(f);
  return (int)o->len;
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
    if (is_half(in->type))
      old = atom_half(p, in->type, v);
    else if (sz == 4)
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
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if ((in->flags & PTX_F_NAN) && (isnan(a) || isnan(b)))
      r = f32v(0x7fffffffu);
    else
      r = in->op == PTX_OP_MIN ? fminf(a, b) : fmaxf(a, b);
    break;
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

/* ---- fast paths ----------------------------------------------------- */

/* The common instructions with register or immediate sources, with every
 * decision taken once per instruction rather than once per lane: a
 * source is a row of 32 lane values, or an immediate read through a
 * lane mask of 0. They return false for anything else, which the general
 * code below them handles. */

static inline bool src_rows_ok(const struct ptx_insn *in, unsigned from,
                               unsigned to) {
  for (unsigned i = from; i < to; i++)
    if (in->ops[i].kind != PTX_OPD_REG && in->ops[i].kind != PTX_OPD_IMM)
      return false;
  return true;
}

static inline const uint64_t *src_row(const struct warp *w,
                                      const struct ptx_operand *o,
                                      uint32_t *lm) {
  if (o->kind == PTX_OPD_REG) {
    *lm = 31;
    return &w->r[(size_t)o->reg * 32];
  }
  *lm = 0;
  return (const uint64_t *)(const void *)&o->imm;
}

/* add, sub, mul.lo, mad.lo, mul.wide/mad.wide of 32-bit types, and, or,
 * xor, shl, shr on integers. */
static bool int_fast(struct warp *w, const struct ptx_insn *in,
                     uint32_t ex) {
  static const uint64_t zero = 0;
  unsigned sz = ptx_type_size(in->type), bits = sz * 8;
  bool sg = ptx_type_signed(in->type);
  uint64_t m = mask_of(sz), *d = &w->r[(size_t)in->ops[0].reg * 32];
  uint32_t la, lb, lc = 0;
  const uint64_t *a, *b, *c = NULL;
  bool wide = in->mode == PTX_MODE_WIDE;

  if (!src_rows_ok(in, 1, in->nops) || in->nops < 3 ||
      (in->mode && in->mode != PTX_MODE_LO && !wide))
    return false;
  a = src_row(w, &in->ops[1], &la);
  b = src_row(w, &in->ops[2], &lb);
  if (in->nops > 3)
    c = src_row(w, &in->ops[3], &lc);
  switch (in->op) {
  case PTX_OP_ADD:
    FOR_LANES(ex, l)
      d[l] = (a[l & la] + b[l & lb]) & m;
    return true;
  case PTX_OP_SUB:
    FOR_LANES(ex, l)
      d[l] = (a[l & la] - b[l & lb]) & m;
    return true;
  case PTX_OP_AND:
    FOR_LANES(ex, l)
      d[l] = a[l & la] & b[l & lb] & m;
    return true;
  case PTX_OP_OR:
    FOR_LANES(ex, l)
      d[l] = (a[l & la] | b[l & lb]) & m;
    return true;
  case PTX_OP_XOR:
    FOR_LANES(ex, l)
      d[l] = (a[l & la] ^ b[l & lb]) & m;
    return true;
  case PTX_OP_SHL:
    FOR_LANES(ex, l) {
      uint32_t n = (uint32_t)b[l & lb];
      d[l] = n >= bits ? 0 : (a[l & la] << n) & m;
    }
    return true;
  case PTX_OP_SHR:
    if (sg)
      FOR_LANES(ex, l) {
        uint32_t n = (uint32_t)b[l & lb];
        d[l] = (uint64_t)(sext(a[l & la], sz) >> (n >= bits ? bits - 1 : n)) &
               m;
      }
    else
      FOR_LANES(ex, l) {
        uint32_t n = (uint32_t)b[l & lb];
        d[l] = n >= bits ? 0 : (a[l & la] & m) >> n;
      }
    return true;
  case PTX_OP_MUL:
  case PTX_OP_MAD:
    if (wide && sz != 4)
      return false;
    if (in->op == PTX_OP_MUL) { /* mad with nothing to add */
      c = &zero;
      lc = 0;
    }
    if (!wide)
      FOR_LANES(ex, l)
        d[l] = (a[l & la] * b[l & lb] + c[l & lc]) & m;
    else if (sg)
      FOR_LANES(ex, l)
        d[l] = (uint64_t)((int64_t)(int32_t)a[l & la] *
                          (int32_t)b[l & lb]) + c[l & lc];
    else
      FOR_LANES(ex, l)
        d[l] = (uint64_t)(uint32_t)a[l & la] * (uint32_t)b[l & lb] +
               c[l & lc];
    return true;
  default:
    return false;
  }
}

/* setp on integers without a boolean operation: signed comparisons become
 * unsigned ones of the values with their sign bit flipped (lo, ls, hi, hs
 * compare unsigned whatever the type). */
static bool setp_int_fast(struct warp *w, const struct ptx_insn *in,
                          uint32_t ex) {
  unsigned sz = ptx_type_size(in->type);
  uint64_t m = mask_of(sz), *p = &w->r[(size_t)in->ops[0].reg * 32];
  uint64_t flip = ptx_type_signed(in->type) ? 1ull << (sz * 8 - 1) : 0;
  uint64_t *q = in->ops[1].kind == PTX_OPD_REG
                    ? &w->r[(size_t)in->ops[1].reg * 32] : NULL;
  uint32_t la, lb;
  const uint64_t *a, *b;

  if ((in->flags & PTX_F_BOOLOP) || !src_rows_ok(in, 2, 4))
    return false;
  if (in->cmp >= PTX_CMP_LO && in->cmp <= PTX_CMP_HS)
    flip = 0;
  a = src_row(w, &in->ops[2], &la);
  b = src_row(w, &in->ops[3], &lb);
#define SETP_LOOP(expr)                                                  \
  FOR_LANES(ex, l) {                                                     \
    uint64_t x = (a[l & la] & m) ^ flip, y = (b[l & lb] & m) ^ flip;     \
    bool r = (expr);                                                     \
    p[l] = r;                                                            \
    if (q)                                                               \
      q[l] = !r;                                                         \
  }
  switch (in->cmp) {
  case PTX_CMP_EQ: SETP_LOOP(x == y); return true;
  case PTX_CMP_NE: SETP_LOOP(x != y); return true;
  case PTX_CMP_LT: case PTX_CMP_LO: SETP_LOOP(x < y); return true;
  case PTX_CMP_LE: case PTX_CMP_LS: SETP_LOOP(x <= y); return true;
  case PTX_CMP_GT: case PTX_CMP_HI: SETP_LOOP(x > y); return true;
  case PTX_CMP_GE: case PTX_CMP_HS: SETP_LOOP(x >= y); return true;
  default: return false;
  }
#undef SETP_LOOP
}

/* add, sub, mul, fma/mad of f32 in the default rounding, without .ftz or
 * .sat. */
static bool f32_fast(struct warp *w, const struct ptx_insn *in,
                     uint32_t ex) {
  uint64_t *d = &w->r[(size_t)in->ops[0].reg * 32];
  uint32_t la, lb, lc = 0;
  const uint64_t *a, *b, *c = NULL;

  if ((in->flags & (PTX_F_FTZ | PTX_F_SAT)) ||
      (in->rnd != PTX_RND_NONE && in->rnd != PTX_RND_RN) ||
      in->nops < 3 || !src_rows_ok(in, 1, in->nops))
    return false;
  a = src_row(w, &in->ops[1], &la);
  b = src_row(w, &in->ops[2], &lb);
  if (in->nops > 3)
    c = src_row(w, &in->ops[3], &lc);
  switch (in->op) {
  case PTX_OP_ADD:
    FOR_LANES(ex, l)
      d[l] = f32b(f32v(a[l & la]) + f32v(b[l & lb]));
    return true;
  case PTX_OP_SUB:
    FOR_LANES(ex, l)
      d[l] = f32b(f32v(a[l & la]) - f32v(b[l & lb]));
    return true;
  case PTX_OP_MUL:
    FOR_LANES(ex, l)
      d[l] = f32b(f32v(a[l & la]) * f32v(b[l & lb]));
    return true;
  case PTX_OP_FMA:
  case PTX_OP_MAD:
    FOR_LANES(ex, l)
      d[l] = f32b(fmaf(f32v(a[l & la]), f32v(b[l & lb]), f32v(c[l & lc])));
    return true;
  default:
    return false;
  }
}

/* ---- more instructions ---------------------------------------------- */

/* add.sat.s32, sub.sat.s32, mad.hi.sat.s32: the result clamped to the
 * s32 range. */
static uint64_t int_sat(const struct ptx_insn *in, uint64_t a, uint64_t b,
                        uint64_t c) {
  int64_t x = (int32_t)a, y = (int32_t)b, r;

  if (in->op == PTX_OP_ADD)
    r = x + y;
  else if (in->op == PTX_OP_SUB)
    r = x - y;
  else
    r = ((x * y) >> 32) + (int32_t)c;
  r = r < INT32_MIN ? INT32_MIN : r > INT32_MAX ? INT32_MAX : r;
  return (uint32_t)r;
}

/* mul24 / mad24: the 48-bit product of the low 24 bits of a and b; .lo
 * keeps its bits 0..31, .hi its bits 16..47. */
static uint64_t mul24(const struct ptx_insn *in, uint64_t a, uint64_t b,
                      uint64_t c) {
  bool s = in->type == PTX_T_S32;
  int64_t x = s ? sext(a, 3) : (int64_t)(a & 0xffffff);
  int64_t y = s ? sext(b, 3) : (int64_t)(b & 0xffffff);
  int64_t p = x * y;
  uint32_t r = (uint32_t)(in->mode == PTX_MODE_HI ? p >> 16 : p);

  if (in->op == PTX_OP_MUL24)
    return r;
  if (in->flags & PTX_F_SAT) { /* mad24.hi.sat.s32 */
    int64_t v = (int64_t)(int32_t)r + (int32_t)c;
    return (uint32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX
                                                                : v);
  }
  return (uint32_t)(r + (uint32_t)c);
}

/* sad: c + |a - b|. */
static uint64_t sad(int t, uint64_t a, uint64_t b, uint64_t c) {
  unsigned sz = ptx_type_size(t);
  uint64_t m = mask_of(sz), d;

  if (ptx_type_signed(t)) {
    int64_t x = sext(a, sz), y = sext(b, sz);
    d = x > y ? (uint64_t)x - (uint64_t)y : (uint64_t)y - (uint64_t)x;
  } else {
    d = (a & m) > (b & m) ? (a & m) - (b & m) : (b & m) - (a & m);
  }
  return (c + d) & m;
}

/* bfind: the position of the most significant bit that differs from the
 * sign (signed) or is set (unsigned); .shiftamt: the left shift that
 * brings it to the top. 0xffffffff when there is none. */
static uint64_t bfind(const struct ptx_insn *in, uint64_t a) {
  unsigned bits = ptx_type_size(in->type) * 8;
  uint64_t v = a & mask_of(bits / 8);
  unsigned pos;

  if (ptx_type_signed(in->type) && (v >> (bits - 1)))
    v = ~v & mask_of(bits / 8);
  if (!v)
    return 0xffffffffu;
  pos = 63 - (unsigned)__builtin_clzll(v);
  return in->mode == PTX_MODE_SHIFTAMT ? bits - 1 - pos : pos;
}

/* shf.l / shf.r: the funnel shift of b:a by c (.wrap: c mod 32, .clamp:
 * at most 32). */
static uint64_t shf(const struct ptx_insn *in, uint64_t a, uint64_t b,
                    uint64_t c) {
  uint32_t lo = (uint32_t)a, hi = (uint32_t)b, n = (uint32_t)c;

  n = (in->flags & PTX_F_CLAMP) ? (n > 32 ? 32 : n) : n & 31;
  if (in->mode == PTX_MODE_SHFL_L)
    return n == 0 ? hi : n == 32 ? lo : (hi << n) | (lo >> (32 - n));
  return n == 0 ? lo : n == 32 ? hi : (lo >> n) | (hi << (32 - n));
}

/* dp4a: c + the dot product of the four bytes of a and of b; dp2a: of the
 * two 16-bit halves of a and two bytes of b (.lo: bytes 0-1, .hi: 2-3). */
static uint64_t dot(const struct ptx_insn *in, uint64_t a, uint64_t b,
                    uint64_t c) {
  bool sa = in->type == PTX_T_S32, sb = in->type2 == PTX_T_S32;
  uint32_t r = (uint32_t)c;

  if (in->op == PTX_OP_DP4A) {
    for (unsigned i = 0; i < 4; i++) {
      int32_t x = sa ? (int8_t)(a >> (8 * i)) : (int32_t)(uint8_t)(a >> (8 * i));
      int32_t y = sb ? (int8_t)(b >> (8 * i)) : (int32_t)(uint8_t)(b >> (8 * i));
      r += (uint32_t)(x * y);
    }
  } else {
    unsigned first = in->mode == PTX_MODE_HI ? 2 : 0;
    for (unsigned i = 0; i < 2; i++) {
      int32_t x = sa ? (int16_t)(a >> (16 * i))
                     : (int32_t)(uint16_t)(a >> (16 * i));
      uint64_t by = b >> (8 * (first + i));
      int32_t y = sb ? (int8_t)by : (int32_t)(uint8_t)by;
      r += (uint32_t)(x * y);
    }
  }
  return r;
}

/* setp on 16-bit floats: a pair sets p from the low halves and q from the
 * high ones. */
static void exec_setp_half(struct block *b, struct warp *w,
                           const struct ptx_insn *in, uint32_t ex) {
  const struct ptx_operand *d = &in->ops[0], *q = &in->ops[1],
                           *a = &in->ops[2], *bo = &in->ops[3],
                           *c = &in->ops[4];
  bool boolop = in->flags & PTX_F_BOOLOP, two = is_half2(in->type);
  int fmt = half_fmt(in->type);

  FOR_LANES(ex, l) {
    uint64_t va = opv(b, w, a, l), vb = opv(b, w, bo, l);
    bool cv = boolop ? predv(b, w, c, l) : false;
    bool r0 = cmp_f(in->cmp, half_cmp_val(in, fmt, va & 0xffff),
                    half_cmp_val(in, fmt, vb & 0xffff));
    bool r1 = two ? cmp_f(in->cmp, half_cmp_val(in, fmt, (va >> 16) & 0xffff),
                          half_cmp_val(in, fmt, (vb >> 16) & 0xffff))
                  : !r0;
    REG(w, d, l) = boolop ? bool_op(in->mode, r0, cv) : r0;
    if (q->kind == PTX_OPD_REG)
      REG(w, q, l) = boolop ? bool_op(in->mode, r1, cv) : r1;
  }
}

/* set: like setp, the result as a value: all ones (integer types), 1.0
 * (float types) or 0, per half for a pair. */
static void exec_set(struct block *b, struct warp *w,
                     const struct ptx_insn *in, uint32_t ex) {
  const struct ptx_operand *d = &in->ops[0], *a = &in->ops[1],
                           *bo = &in->ops[2], *c = &in->ops[3];
  bool boolop = in->flags & PTX_F_BOOLOP;
  int dt = in->type, st = in->type2;
  unsigned ssz = ptx_type_size(st);
  bool sg = ptx_type_signed(st);

  FOR_LANES(ex, l) {
    uint64_t va = opv(b, w, a, l), vb = opv(b, w, bo, l), r = 0;
    bool cv = boolop ? predv(b, w, c, l) : false;
    if (is_half(st)) {
      int fmt = half_fmt(st);
      unsigned nh = is_half2(st) ? 2 : 1;
      /* per half: 1.0 of the destination format, or all ones */
      uint64_t one = dt == PTX_T_F16 || dt == PTX_T_F16X2 ? 0x3c00u
                     : dt == PTX_T_BF16 || dt == PTX_T_BF16X2 ? 0x3f80u
                     : dt == PTX_T_F32 ? 0x3f800000u
                     : mask_of(nh == 2 ? 2 : ptx_type_size(dt));
      for (unsigned i = 0; i < nh; i++) {
        bool t = cmp_f(in->cmp,
                       half_cmp_val(in, fmt, (va >> (16 * i)) & 0xffff),
                       half_cmp_val(in, fmt, (vb >> (16 * i)) & 0xffff));
        if (boolop)
          t = bool_op(in->mode, t, cv);
        if (t)
          r |= one << (16 * i);
      }
    } else {
      bool t;
      if (st == PTX_T_F32) {
        float x = f32v(va), y = f32v(vb);
        if (in->flags & PTX_F_FTZ) {
          x = ftz32(x);
          y = ftz32(y);
        }
        t = cmp_f(in->cmp, (double)x, (double)y);
      } else if (st == PTX_T_F64) {
        t = cmp_f(in->cmp, f64v(va), f64v(vb));
      } else {
        t = cmp_i(in->cmp, ssz, sg, va, vb);
      }
      if (boolop)
        t = bool_op(in->mode, t, cv);
      r = !t ? 0 : dt == PTX_T_F32 ? 0x3f800000u : 0xffffffffu;
    }
    REG(w, d, l) = r;
  }
}

/* cvt where either type is a 16-bit float. .ftz flushes f32 subnormals
 * only (of the source, or the f32 result, which a 16-bit float never
 * makes): 16-bit subnormals are kept. */
static uint64_t cvt_half(const struct ptx_insn *in, uint64_t a) {
  int dt = in->type, st = in->type2;
  bool ftz = in->flags & PTX_F_FTZ, sat = in->flags & PTX_F_SAT;
  unsigned ssz = ptx_type_size(st);
  uint32_t h;
  double x;

  if (is_int(st)) {
    bool sg = ptx_type_signed(st);
    uint64_t v = sg ? (uint64_t)sext(a, ssz) : a & mask_of(ssz);
    if (sat) /* to [0, 1] */
      return double_to_half(sg ? ((int64_t)v <= 0 ? 0.0 : 1.0)
                               : (v == 0 ? 0.0 : 1.0),
                            half_fmt(dt), PTX_RND_RN);
    return int_to_half(v, sg, half_fmt(dt), in->rnd);
  }
  if (is_half(st))
    x = half_to_double((uint32_t)a & 0xffff, half_fmt(st));
  else if (st == PTX_T_F32)
    x = (double)(ftz ? ftz32(f32v(a)) : f32v(a));
  else
    x = f64v(a);
  if (is_int(dt))
    return f2i(x, dt, in->rnd);
  switch (in->rnd) { /* to an integral value, same type */
  case PTX_RND_RNI: x = nearbyint(x); break;
  case PTX_RND_RZI: x = trunc(x); break;
  case PTX_RND_RMI: x = floor(x); break;
  case PTX_RND_RPI: x = ceil(x); break;
  default: break;
  }
  if (sat)
    x = isnan(x) ? 0.0 : !(x > 0) ? 0.0 : x > 1 ? 1.0 : x;
  if (dt == PTX_T_F32)
    return f32b((float)x); /* exact: the source is a 16-bit float */
  if (dt == PTX_T_F64)
    return f64b(x);
  h = double_to_half(x, half_fmt(dt),
                     in->rnd >= PTX_RND_RNI ? PTX_RND_RN : in->rnd);
  return h;
}

/* match.any / match.all among the lanes |ex| (the member lanes, gathered
 * by run_warp). */
static void exec_match(struct block *b, struct warp *w,
                       const struct ptx_insn *in, uint32_t ex) {
  const struct ptx_operand *d = &in->ops[0], *p = &in->ops[1];
  uint64_t vals[32], tm = mask_of(ptx_type_size(in->type));

  FOR_LANES(ex, l)
    vals[l] = opv(b, w, &in->ops[2], l) & tm;
  FOR_LANES(ex, l) {
    uint32_t mm = (uint32_t)opv(b, w, &in->ops[3], l) & ex, same = 0;
    FOR_LANES(mm, j)
      if (vals[j] == vals[l])
        same |= 1u << j;
    if (in->mode == PTX_MODE_ANY) {
      REG(w, d, l) = same;
    } else {
      REG(w, d, l) = same == mm ? mm : 0;
      if (p->kind == PTX_OPD_REG)
        REG(w, p, l) = same == mm;
    }
  }
}

/* bar.sync / bar.arrive / bar.red for lanes |ex| of |mask| (the guard
 * false for the others). Returns 0 when |ex| now waits (PCs set), 1 when
 * the lanes move on as after any instruction, or a fault code. */
static int exec_bar(struct block *b, struct warp *w,
                    const struct ptx_insn *in, uint32_t pc, uint32_t mask,
                    uint32_t ex) {
  bool red = in->flags & PTX_F_RED, arrive = in->flags & PTX_F_ARRIVE;
  unsigned first = red ? 1 : 0, nsrc = in->nops - first - (red ? 1u : 0u);
  unsigned lane;
  uint64_t id, cnt = 0;
  struct barrier *B;

  if (!ex)
    return 1;
  lane = (unsigned)__builtin_ctz(ex);
  id = opv(b, w, &in->ops[first], lane);
  if (nsrc == 2)
    cnt = opv(b, w, &in->ops[first + 1], lane);
  if (id > 15)
    return fault(b, w, lane, in, PTX_E_TRAP,
                 "barrier %llu does not exist (0 to 15)",
                 (unsigned long long)id);
  if (nsrc == 2 && (cnt == 0 || cnt > PTX_MAX_BLOCK_THREADS))
    return fault(b, w, lane, in, PTX_E_TRAP, "barrier thread count %llu",
                 (unsigned long long)cnt);
  B = &b->bars[id];
  if (B->arrived == 0) {
    B->count = (uint32_t)cnt;
    B->popc = B->nfalse = 0;
  } else if (B->count != cnt) {
    return fault(b, w, lane, in, PTX_E_TRAP,
                 "barrier %u used with thread counts %u and %u",
                 (unsigned)id, B->count, (unsigned)cnt);
  }
  B->arrived += popc32(ex);
  if (red)
    FOR_LANES(ex, l) {
      if (predv(b, w, &in->ops[in->nops - 1], l))
        B->popc++;
      else
        B->nfalse++;
    }
  b->bar_pending |= 1u << id;
  if (arrive)
    return 1;
  w->wait |= ex;
  FOR_LANES(ex, l)
    w->bar_id[l] = (uint8_t)id;
  advance(w, ex, pc); /* completing the barrier moves them on */
  advance(w, mask & ~ex, pc + 1);
  w->upc = -1;
  return 0;
}

/* Completes every barrier that the threads it waits for have all reached
 * (a thread count, or every thread of the block that has not exited): its
 * waiting lanes move on, bar.red's get the result. Returns whether one
 * completed. */
static bool check_bars(struct block *b) {
  struct launch *L = b->L;
  const struct ptx_module *m = L->m;
  uint32_t live = 0;
  bool done = false;

  if (!b->bar_pending)
    return false;
  for (uint32_t wi = 0; wi < L->nwarps; wi++)
    live += popc32(b->warps[wi].live);
  FOR_LANES(b->bar_pending, id) {
    struct barrier *B = &b->bars[id];
    if (B->arrived < (B->count ? B->count : live))
      continue;
    for (uint32_t wi = 0; wi < L->nwarps; wi++) {
      struct warp *w = &b->warps[wi];
      uint32_t rel = 0;
      FOR_LANES(w->wait, l)
        if (w->bar_id[l] == id)
          rel |= 1u << l;
      FOR_LANES(rel, l) {
        const struct ptx_insn *in = &m->code[w->pc[l]];
        if (in->flags & PTX_F_RED)
          REG(w, &in->ops[0], l) = in->mode == PTX_MODE_POPC ? B->popc
                                   : in->mode == PTX_MODE_AND
                                       ? B->nfalse == 0 : B->popc != 0;
        w->pc[l]++;
      }
      if (rel) {
        w->wait &= ~rel;
        w->upc = -1;
      }
    }
    memset(B, 0, sizeof(*B));
    b->bar_pending &= ~(1u << id);
    done = true;
  }
  return done;
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

/* Argument |i| (8 or 4 bytes) of a call of a builtin, from |lane|'s
 * copy of the caller's .param variable. */
static uint64_t builtin_arg(struct block *b, struct warp *w, unsigned lane,
                            const struct ptx_insn *in, unsigned i,
                            unsigned size) {
  const struct ptx_module *m = b->L->m;
  const struct ptx_operand *args = &in->ops[2];
  const struct ptx_symbol *y;
  int space = PTX_SP_LOCAL;
  uint64_t addr;
  uint8_t *p;

  if (args->kind != PTX_OPD_VEC || i >= args->count)
    return 0;
  y = &m->syms[m->vec[args->reg + i].reg];
  addr = y->addr;
  if (y->size < size ||
      !(p = xlat_quiet(b, w, lane, &space, &addr, size, false)))
    return 0;
  return load_n(p, size);
}

/* vprintf and __assertfail for the lanes |ex|. */
static int exec_builtin(struct block *b, struct warp *w,
                        const struct ptx_insn *in, const struct ptx_func *g,
                        uint32_t ex) {
  const struct ptx_launch *l = b->L->l;
  const struct ptx_module *m = b->L->m;
  int rc = 0;

  FOR_LANES(ex, lane) {
    struct preader rd = {b, w, lane};
    struct pbuf o = {NULL, 0, 0, false};
    int n;
    if (g->builtin == PTX_BUILTIN_VPRINTF) {
      n = format_printf(&rd, builtin_arg(b, w, lane, in, 0, 8),
                        builtin_arg(b, w, lane, in, 1, 8), &o);
      if (in->ops[0].kind == PTX_OPD_VEC && in->ops[0].count == 1) {
        const struct ptx_symbol *y = &m->syms[m->vec[in->ops[0].reg].reg];
        int space = PTX_SP_LOCAL;
        uint64_t addr = y->addr;
        uint8_t *p = y->size >= 4 ? xlat_quiet(b, w, lane, &space, &addr, 4,
                                               true)
                                  : NULL;
        if (p)
          store_n(p, (uint64_t)(uint32_t)n, 4);
      }
    } else { /* __assertfail(message, file, line, function, charsize) */
      char *msg = malloc(3 * (PRINTF_MAX_STR + 1)), *file, *func;
      if (!msg) {
        o.nomem = true;
      } else {
        file = msg + PRINTF_MAX_STR + 1;
        func = file + PRINTF_MAX_STR + 1;
        if (pread_str(&rd, builtin_arg(b, w, lane, in, 0, 8), msg,
                      PRINTF_MAX_STR) < 0)
          strcpy(msg, "?");
        if (pread_str(&rd, builtin_arg(b, w, lane, in, 1, 8), file,
                      PRINTF_MAX_STR) < 0)
          strcpy(file, "?");
        if (pread_str(&rd, builtin_arg(b, w, lane, in, 3, 8), func,
                      PRINTF_MAX_STR) < 0)
          strcpy(func, "?");
        {
          /* CUDA's own wording */
          char line[16], where[96];
          int n1 = snprintf(line, sizeof(line), ":%u: ",
                            (unsigned)builtin_arg(b, w, lane, in, 2, 4));
          int n2 = snprintf(where, sizeof(where),
                            ": block: [%u,%u,%u], thread: [%u,%u,%u] "
                            "Assertion `",
                            b->ctaid[0], b->ctaid[1], b->ctaid[2],
                            w->tid[0][lane], w->tid[1][lane],
                            w->tid[2][lane]);
          pb_put(&o, file, strlen(file));
          pb_put(&o, line, n1 > 0 ? (size_t)n1 : 0);
          pb_put(&o, func, strlen(func));
          pb_put(&o, where, n2 > 0 ? (size_t)n2 : 0);
          pb_put(&o, msg, strlen(msg));
          pb_put(&o, "` failed.\n", 10);
        }
        if (!rc)
          rc = fault(b, w, lane, in, PTX_E_ASSERT,
                     "device assertion `%.80s` failed (%.60s:%u)", msg, file,
                     (unsigned)builtin_arg(b, w, lane, in, 2, 4));
        free(msg);
      }
    }
    if (o.nomem) {
      free(o.s);
      return fault(b, w, lane, in, PTX_E_NOMEM, "out of host memory");
    }
    if (l->print && o.len)
      l->print(l->print_opaque, o.s, o.len);
    free(o.s);
  }
  return rc;
}

/* call: copies the arguments into the callee's parameters (all in local
 * memory, see link_module()), pushes the call's PC and jumps; a builtin
 * runs here and the lanes move on. */
static int exec_call(struct block *b, struct warp *w,
                     const struct ptx_insn *in, uint32_t pc, uint32_t mask,
                     uint32_t ex, bool whole) {
  const struct ptx_module *m = b->L->m;
  const struct ptx_func *g = &m->funcs[in->ops[1].reg];
  const struct ptx_operand *args = &in->ops[2];
  uint32_t maxd = b->L->f->call_depth;
  int rc;

  if (g->builtin) {
    if ((rc = exec_builtin(b, w, in, g, ex)) < 0)
      return rc;
    if (whole) {
      w->upc = (int64_t)pc + 1;
    } else {
      advance(w, mask, pc + 1);
      w->upc = -1;
    }
    return 0;
  }

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
    if ((rc = exec_bar(b, w, in, pc, mask, ex)) != 1)
      return rc;
    rc = 0;
    break;
  case PTX_OP_WARPSYNC: /* run_warp gathered the member lanes */
    break;
  case PTX_OP_MATCH:
    exec_match(b, w, in, ex);
    break;
  case PTX_OP_SET:
    exec_set(b, w, in, ex);
    break;
  case PTX_OP_MUL24:
  case PTX_OP_MAD24:
    FOR_LANES(ex, l)
      REG(w, d, l) = mul24(in, opv(b, w, o1, l), opv(b, w, o2, l),
                           in->nops > 3 ? opv(b, w, o3, l) : 0);
    break;
  case PTX_OP_SAD:
    FOR_LANES(ex, l)
      REG(w, d, l) = sad(t, opv(b, w, o1, l), opv(b, w, o2, l),
                         opv(b, w, o3, l));
    break;
  case PTX_OP_BFIND:
    FOR_LANES(ex, l)
      REG(w, d, l) = bfind(in, opv(b, w, o1, l));
    break;
  case PTX_OP_SHF:
    FOR_LANES(ex, l)
      REG(w, d, l) = shf(in, opv(b, w, o1, l), opv(b, w, o2, l),
                         opv(b, w, o3, l));
    break;
  case PTX_OP_DP4A:
  case PTX_OP_DP2A:
    FOR_LANES(ex, l)
      REG(w, d, l) = dot(in, opv(b, w, o1, l), opv(b, w, o2, l),
                         opv(b, w, o3, l));
    break;
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
    if (is_int(t) && !(in->flags & (PTX_F_CC | PTX_F_CARRYIN | PTX_F_SAT)) &&
        int_fast(w, in, ex))
      break;
    if (t == PTX_T_F32) {
      if (f32_fast(w, in, ex))
        break;
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
    } else if ((in->flags & (PTX_F_CC | PTX_F_CARRYIN | PTX_F_SAT)) ||
               is_half(t)) {
      if (is_half(t))
        FOR_LANES(ex, l)
          REG(w, d, l) = half_arith(in, opv(b, w, o1, l), opv(b, w, o2, l),
                                    three ? opv(b, w, o3, l) : 0);
      else if (in->flags & PTX_F_SAT)
        FOR_LANES(ex, l)
          REG(w, d, l) = int_sat(in, opv(b, w, o1, l), opv(b, w, o2, l),
                                 three ? opv(b, w, o3, l) : 0);
      else
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
    if (is_half(t)) {
      FOR_LANES(ex, l)
        REG(w, d, l) = half_arith(in, opv(b, w, o1, l), 0, 0);
      break;
    }
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
    if (is_int(t) && setp_int_fast(w, in, ex))
      break;
    if (is_half(t)) {
      exec_setp_half(b, w, in, ex);
      break;
    }
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
    if (is_half(t) || is_half(in->type2)) {
      if (in->nops == 3) /* cvt.rn.f16x2.f32 d, hi, lo */
        FOR_LANES(ex, l)
          REG(w, d, l) = cvt_half(in, opv(b, w, o1, l)) << 16 |
                         cvt_half(in, opv(b, w, o2, l));
      else
        FOR_LANES(ex, l)
          REG(w, d, l) = cvt_half(in, opv(b, w, o1, l));
      break;
    }
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
    /* Each lane votes among the lanes of its own member mask: lanes of a
     * warp split into tiles (cooperative groups) pass different masks to
     * one instruction. */
    uint32_t votes = 0;
    FOR_LANES(ex, l)
      if (predv(b, w, o1, l))
        votes |= 1u << l;
    FOR_LANES(ex, l) {
      uint32_t act = (uint32_t)opv(b, w, o2, l) & ex;
      uint32_t ballot = votes & act;
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

/* A hash of the warp's whole state (PCs, masks, registers): equal hashes
 * a check apart mean that the warp went round in a loop that changed
 * nothing, which a spin-wait does and a computation does not. */
static uint64_t warp_hash(const struct block *b, const struct warp *w) {
  uint64_t h = 0x9e3779b97f4a7c15ull, n = (uint64_t)b->L->f->nregs * 32;

  for (unsigned l = 0; l < 32; l++)
    h = (h ^ w->pc[l]) * 0x100000001b3ull;
  h = (h ^ w->live ^ (uint64_t)w->wait << 32) * 0x100000001b3ull;
  h = (h ^ w->park ^ (uint64_t)w->cc << 32) * 0x100000001b3ull;
  for (uint64_t i = 0; i < n; i++)
    h = (h ^ w->r[i]) * 0x100000001b3ull;
  return h;
}

/* Called every STARVE_STEPS steps of a diverged warp, about to run |pc|.
 * Lowest-PC-first runs one group of lanes while the others wait, which
 * starves a lane that holds a lock the lower-PC lanes spin on. A GPU with
 * independent thread scheduling lets every lane progress, so here the
 * lanes that have gone longest without running (not those waiting at a
 * barrier or for the members of a warp collective) run alone for
 * STARVE_BOOST steps.
 *
 * Lanes that have still not run for STARVE_LIMIT steps are "stuck". Then
 * the warp's state is compared each time the running lanes come back to
 * the same PC (sample_pc): unchanged, they spin in a loop that changes
 * nothing, and the stuck lanes will never run (typically lanes parked at
 * a shuffle or vote while the lanes they wait for spin on a lock one of
 * them holds, which hangs a GPU too): starve_sample() fails the launch. */
static void starve_check(struct block *b, struct warp *w, uint32_t run,
                         uint32_t pc) {
  uint32_t cand = w->live & ~w->wait, best = 32;

  w->diverged = 0;
  w->stuck = 0;
  FOR_LANES(cand, l) {
    if (w->ran & (1u << l))
      w->starved[l] = 0;
    else if (w->starved[l] < UINT16_MAX)
      w->starved[l]++;
    if (w->starved[l] >= STARVE_LIMIT / STARVE_STEPS)
      w->stuck |= 1u << l;
    if ((run & (1u << l)) && w->starved[l] &&
        (best == 32 || w->starved[l] > w->starved[best]))
      best = l;
  }
  w->ran = 0;
  if (!w->stuck) {
    w->have_base = w->sampling = false;
  } else if (!w->have_base || w->sampling) {
    /* a first state, or the PC did not come back there since the last
     * check (not a tight loop): start again from here */
    w->sample_pc = pc;
    w->state_hash = warp_hash(b, w);
    w->have_base = w->sampling = true;
  } else {
    w->sampling = true; /* compare on the next visit */
  }
  if (best < 32) {
    w->boost = STARVE_BOOST;
    w->boost_mask = 0;
    FOR_LANES(run, l)
      if (w->pc[l] == w->pc[best])
        w->boost_mask |= 1u << l;
  }
}

/* The warp is back at sample_pc: fails the launch if nothing changed
 * since the last time (see starve_check). Returns 0 or PTX_E_DEADLOCK. */
static int starve_sample(struct block *b, struct warp *w) {
  uint64_t h = warp_hash(b, w);
  unsigned l;

  if (h != w->state_hash) {
    w->state_hash = h;
    w->sampling = false; /* the next check arms it again */
    return 0;
  }
  l = (unsigned)__builtin_ctz(w->stuck);
  return fault(b, w, l, &b->L->m->code[w->pc[l]], PTX_E_DEADLOCK,
               "warp %u lanes 0x%08x wait here for %u steps while the "
               "others spin unchanged: a lock between lanes of one warp "
               "cannot make progress on the emulated device",
               w->id, w->stuck, STARVE_LIMIT);
}

/* Runs warp |w| until none of its lanes can run (all exited or waiting at
 * a barrier) or it has had SLICE_STEPS steps, so that the other warps of
 * the block get their turn (one of them may be what it waits for).
 * Returns 0, a fault code, or 1 when another block faulted. */
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
      if (n >= SLICE_STEPS && b->L->nwarps > 1)
        break;
    }
    if (w->upc >= 0) {
      pc = (uint32_t)w->upc;
      mask = run;
      if (w->diverged) { /* uniform again: nobody starves */
        w->diverged = w->ran = w->boost = w->stuck = 0;
        w->sampling = w->have_base = false;
        memset(w->starved, 0, sizeof(w->starved));
      }
    } else {
      /* lowest PC first; while boosting, among the boosted lanes */
      uint32_t cand = run;
      if (w->boost) {
        if ((cand = run & w->boost_mask) != 0)
          w->boost--;
        else
          cand = run, w->boost = 0;
      }
      pc = UINT32_MAX;
      mask = 0;
      FOR_LANES(cand, l) {
        if (w->pc[l] < pc) {
          pc = w->pc[l];
          mask = 1u << l;
        } else if (w->pc[l] == pc) {
          mask |= 1u << l;
        }
      }
      w->ran |= mask;
      if (++w->diverged >= STARVE_STEPS)
        starve_check(b, w, run & ~w->park, pc);
      else if (w->sampling && pc == w->sample_pc &&
                 (rc = starve_sample(b, w)) < 0) {
        break;
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
    if ((unsigned)(in->op - PTX_OP_SHFL) <= PTX_OP_WARPSYNC - PTX_OP_SHFL &&
        !force) {
      /* A warp-synchronous collective runs once every lane of its member
       * mask has reached it: lanes that come first park here. */
      const struct ptx_operand *mo =
          &in->ops[in->op == PTX_OP_SHFL ? 5 : in->op == PTX_OP_VOTE ? 2
                   : in->op == PTX_OP_MATCH ? 3 : 0];
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

/* The message of a block whose barriers can never complete. */
static int barrier_deadlock(struct block *b) {
  struct launch *L = b->L;
  uint32_t live = 0;

  for (uint32_t wi = 0; wi < L->nwarps; wi++)
    live += popc32(b->warps[wi].live);
  for (uint32_t wi = 0; wi < L->nwarps; wi++) {
    struct warp *w = &b->warps[wi];
    if (w->wait) {
      unsigned l = (unsigned)__builtin_ctz(w->wait);
      const struct barrier *B = &b->bars[w->bar_id[l]];
      return fault(b, w, l, NULL, PTX_E_DEADLOCK,
                   "barrier %u never completes: %u of %u threads arrived "
                   "(the others exited or wait elsewhere)",
                   w->bar_id[l], B->arrived, B->count ? B->count : live);
    }
  }
  return fault(b, NULL, 0, NULL, PTX_E_DEADLOCK, "no progress");
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
  memset(b->bars, 0, sizeof(b->bars));
  b->bar_pending = 0;
  for (uint32_t wi = 0; wi < L->nwarps; wi++) {
    struct warp *w = &b->warps[wi];
    memset(w->r, 0, (size_t)f->nregs * 32 * sizeof(uint64_t));
    memset(w->local, 0, (size_t)f->local_size * 32);
    for (unsigned ln = 0; ln < 32; ln++)
      w->pc[ln] = f->code_base;
    memset(w->depth, 0, sizeof(w->depth));
    memset(w->starved, 0, sizeof(w->starved));
    w->live = w->wait = w->cc = w->park = 0;
    w->diverged = w->ran = w->boost = w->boost_mask = w->stuck = 0;
    w->sampling = w->have_base = false;
    w->state_hash = 0;
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
    bool any_live = false, progress = false;
    for (uint32_t wi = 0; wi < L->nwarps; wi++) {
      struct warp *w = &b->warps[wi];
      if (w->live & ~w->wait) {
        if ((rc = run_warp(b, w)) != 0)
          return rc;
        progress = true;
      }
      progress |= check_bars(b);
    }
    for (uint32_t wi = 0; wi < L->nwarps; wi++)
      any_live |= b->warps[wi].live != 0;
    if (!any_live)
      return 0;
    if (!progress)
      return barrier_deadlock(b);
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
