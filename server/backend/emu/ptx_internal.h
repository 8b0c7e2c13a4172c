/* Private header of the PTX engine (ptx_lex.c, ptx_parse.c, ptx_exec.c):
 * the token, the decoded instruction and the module as the parser builds
 * them and the interpreter runs them. */
#ifndef GP_SERVER_EMU_PTX_INTERNAL_H
#define GP_SERVER_EMU_PTX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/emu/ptx.h"

/* ---- tokens (ptx_lex.c) ---------------------------------------------- */

enum ptx_tok_kind {
  PTX_TOK_EOF,
  PTX_TOK_WORD,     /* identifier, directive, opcode.with.modifiers, %reg */
  PTX_TOK_INT,      /* ival */
  PTX_TOK_F32,      /* 0fXXXXXXXX: ival holds the 32 bits */
  PTX_TOK_F64,      /* 0dXXXXXXXXXXXXXXXX: ival holds the 64 bits */
  PTX_TOK_FLOAT,    /* decimal float: fval */
  PTX_TOK_STRING,   /* "...": s/len exclude the quotes */
  PTX_TOK_PUNCT,    /* punct */
};

struct ptx_token {
  int kind;
  const char *s;    /* into the text */
  uint32_t len;
  uint32_t line;    /* 1-based */
  char punct;
  uint64_t ival;
  double fval;
};

struct ptx_lexer {
  const char *p, *end;
  uint32_t line;
};

void ptx_lex_init(struct ptx_lexer *lx, const char *text, size_t len);

/* Reads the next token into |t|. Returns 0, or PTX_E_PARSE with |err| set
 * for a character or literal PTX does not have. At the end it yields
 * PTX_TOK_EOF forever. */
int ptx_lex_next(struct ptx_lexer *lx, struct ptx_token *t, char *err,
                 size_t errlen);

/* ---- types and opcodes ---------------------------------------------- */

enum ptx_type {
  PTX_T_NONE,
  PTX_T_B8, PTX_T_B16, PTX_T_B32, PTX_T_B64,
  PTX_T_U8, PTX_T_U16, PTX_T_U32, PTX_T_U64,
  PTX_T_S8, PTX_T_S16, PTX_T_S32, PTX_T_S64,
  PTX_T_F16, PTX_T_F16X2, PTX_T_BF16, PTX_T_BF16X2, /* together */
  PTX_T_F32, PTX_T_F64,
  PTX_T_PRED,
  PTX_T_COUNT
};

/* Bytes of a value of type |t| (pred: 1, none: 0). */
unsigned ptx_type_size(int t);
bool ptx_type_signed(int t);
bool ptx_type_float(int t);   /* f16, f16x2, bf16, bf16x2, f32, f64 */
const char *ptx_type_name(int t);

enum ptx_space {
  PTX_SP_GENERIC, PTX_SP_GLOBAL, PTX_SP_SHARED, PTX_SP_LOCAL, PTX_SP_PARAM,
  PTX_SP_CONST
};

enum ptx_op {
  PTX_OP_INVALID,
  PTX_OP_MOV, PTX_OP_LD, PTX_OP_ST, PTX_OP_CVTA,
  PTX_OP_ADD, PTX_OP_SUB, PTX_OP_MUL, PTX_OP_MAD, PTX_OP_FMA, PTX_OP_DIV,
  PTX_OP_REM, PTX_OP_MIN, PTX_OP_MAX, PTX_OP_ABS, PTX_OP_NEG,
  PTX_OP_AND, PTX_OP_OR, PTX_OP_XOR, PTX_OP_NOT, PTX_OP_CNOT,
  PTX_OP_SHL, PTX_OP_SHR,
  PTX_OP_SETP, PTX_OP_SELP, PTX_OP_BRA, PTX_OP_RET, PTX_OP_EXIT,
  PTX_OP_CVT, PTX_OP_RCP, PTX_OP_SQRT, PTX_OP_RSQRT, PTX_OP_EX2,
  PTX_OP_LG2, PTX_OP_SIN, PTX_OP_COS, PTX_OP_TANH,
  /* the warp collectives, together (run_warp tests the range) */
  PTX_OP_SHFL, PTX_OP_VOTE, PTX_OP_MATCH, PTX_OP_WARPSYNC,
  PTX_OP_ATOM, PTX_OP_RED, PTX_OP_BAR,
  PTX_OP_MEMBAR, PTX_OP_POPC, PTX_OP_CLZ, PTX_OP_BFE, PTX_OP_BFI,
  PTX_OP_BREV, PTX_OP_PRMT, PTX_OP_LOP3, PTX_OP_COPYSIGN, PTX_OP_TESTP,
  PTX_OP_TRAP, PTX_OP_NOP, PTX_OP_ACTIVEMASK, PTX_OP_CALL,
  PTX_OP_SET, PTX_OP_MUL24, PTX_OP_MAD24, PTX_OP_SAD, PTX_OP_BFIND,
  PTX_OP_SHF, PTX_OP_DP4A, PTX_OP_DP2A,
  PTX_OP_COUNT
};

/* setp/set comparison (ptx_insn.cmp). */
enum ptx_cmp {
  PTX_CMP_NONE, PTX_CMP_EQ, PTX_CMP_NE, PTX_CMP_LT, PTX_CMP_LE, PTX_CMP_GT,
  PTX_CMP_GE, PTX_CMP_LO, PTX_CMP_LS, PTX_CMP_HI, PTX_CMP_HS, PTX_CMP_EQU,
  PTX_CMP_NEU, PTX_CMP_LTU, PTX_CMP_LEU, PTX_CMP_GTU, PTX_CMP_GEU,
  PTX_CMP_NUM, PTX_CMP_NAN
};

/* Rounding (ptx_insn.rnd). */
enum ptx_rnd {
  PTX_RND_NONE, PTX_RND_RN, PTX_RND_RZ, PTX_RND_RM, PTX_RND_RP,
  PTX_RND_RNI, PTX_RND_RZI, PTX_RND_RMI, PTX_RND_RPI
};

/* ptx_insn.mode, by opcode. */
enum {
  PTX_MODE_NONE = 0,
  /* mul, mad */
  PTX_MODE_LO, PTX_MODE_HI, PTX_MODE_WIDE,
  /* shfl */
  PTX_MODE_UP, PTX_MODE_DOWN, PTX_MODE_BFLY, PTX_MODE_IDX,
  /* vote */
  PTX_MODE_BALLOT, PTX_MODE_ANY, PTX_MODE_ALL, PTX_MODE_UNI,
  /* atom, red */
  PTX_MODE_ADD, PTX_MODE_MIN, PTX_MODE_MAX, PTX_MODE_EXCH, PTX_MODE_CAS,
  PTX_MODE_AND, PTX_MODE_OR, PTX_MODE_XOR, PTX_MODE_INC, PTX_MODE_DEC,
  /* testp */
  PTX_MODE_FINITE, PTX_MODE_INFINITE, PTX_MODE_NUMBER, PTX_MODE_NOTANUMBER,
  PTX_MODE_NORMAL, PTX_MODE_SUBNORMAL,
  /* bar.red */
  PTX_MODE_POPC,
  /* shf */
  PTX_MODE_SHFL_L, PTX_MODE_SHFL_R,
  /* bfind */
  PTX_MODE_SHIFTAMT,
};

/* ptx_insn.flags */
#define PTX_F_FTZ      0x0001u
#define PTX_F_SAT      0x0002u
#define PTX_F_APPROX   0x0004u
#define PTX_F_FULL     0x0008u
#define PTX_F_GUARD    0x0010u  /* executes only where guard is true */
#define PTX_F_GUARDNEG 0x0020u  /* ... where it is false (@!%p) */
#define PTX_F_TO       0x0040u  /* cvta.to */
#define PTX_F_CC       0x0080u  /* .cc: writes the carry flag */
#define PTX_F_DUAL     0x0100u  /* first operand was d|p: ops[1] is p */
#define PTX_F_BOOLOP   0x0200u  /* setp with .and/.or/.xor: mode holds it */
#define PTX_F_SYNC     0x0400u  /* shfl.sync, vote.sync */
#define PTX_F_CARRYIN  0x0800u  /* addc, subc, madc */
#define PTX_F_NAN      0x1000u  /* min/max.NaN: a NaN operand wins */
#define PTX_F_CLAMP    0x2000u  /* shf.clamp (else .wrap) */
#define PTX_F_ARRIVE   0x4000u  /* bar.arrive / barrier.arrive */
#define PTX_F_RED      0x8000u  /* bar.red: mode holds popc/and/or */

/* Operand kinds. */
enum {
  PTX_OPD_NONE, PTX_OPD_REG, PTX_OPD_IMM, PTX_OPD_SREG, PTX_OPD_MEM,
  PTX_OPD_VEC, PTX_OPD_LABEL, PTX_OPD_SYM, PTX_OPD_SINK
};

#define PTX_NOREG UINT32_MAX

/* PTX_OPD_MEM / PTX_OPD_SYM flags: resolved against the symbol table at
 * link time; DYNSHARED means "add the block's dynamic shared base". */
#define PTX_OPF_NEG       0x01u   /* !%p */
#define PTX_OPF_SYM       0x02u   /* reg holds a symbol index (pre-link) */
#define PTX_OPF_DYNSHARED 0x04u

/* Special registers (PTX_OPD_SREG: sreg). */
enum {
  PTX_SR_TID_X, PTX_SR_TID_Y, PTX_SR_TID_Z,
  PTX_SR_NTID_X, PTX_SR_NTID_Y, PTX_SR_NTID_Z,
  PTX_SR_CTAID_X, PTX_SR_CTAID_Y, PTX_SR_CTAID_Z,
  PTX_SR_NCTAID_X, PTX_SR_NCTAID_Y, PTX_SR_NCTAID_Z,
  PTX_SR_LANEID, PTX_SR_WARPID, PTX_SR_NWARPID,
  PTX_SR_LANEMASK_EQ, PTX_SR_LANEMASK_LT, PTX_SR_LANEMASK_LE,
  PTX_SR_LANEMASK_GT, PTX_SR_LANEMASK_GE,
  PTX_SR_CLOCK, PTX_SR_CLOCK64, PTX_SR_GLOBALTIMER, PTX_SR_SMID,
  PTX_SR_NSMID, PTX_SR_DYN_SMEM, PTX_SR_COUNT
};

struct ptx_operand {
  uint8_t kind;
  uint8_t flags;    /* PTX_OPF_* */
  uint8_t sreg;     /* SREG */
  uint8_t count;    /* VEC: elements */
  uint32_t reg;     /* REG: slot; MEM: base slot or PTX_NOREG; VEC: first
                       element in ptx_func.vec; LABEL: instruction index;
                       SYM / MEM with PTX_OPF_SYM: symbol index until link */
  int64_t imm;      /* IMM: the bits; MEM, SYM: byte offset */
};

#define PTX_MAX_OPS 6

/* call: ops[0] VEC of return-value symbols (0 or 1) or NONE, ops[1]
 * LABEL whose reg is the callee's function index, ops[2] VEC of argument
 * symbols or NONE; the symbol elements keep the symbol index in reg and
 * get its local address in imm at link. */
struct ptx_insn {
  uint8_t op;       /* enum ptx_op */
  uint8_t type;     /* the instruction type (cvt: destination) */
  uint8_t type2;    /* cvt: source type; other: second type (e.g. mul.wide
                       result is implied) */
  uint8_t space;    /* ld/st/atom/red/cvta */
  uint8_t vec;      /* 1, 2 or 4 */
  uint8_t cmp;      /* setp */
  uint8_t rnd;
  uint8_t mode;
  uint16_t flags;
  uint8_t nops;
  uint8_t pad;
  uint32_t guard;   /* predicate slot when PTX_F_GUARD */
  uint32_t line;    /* PTX source line */
  struct ptx_operand ops[PTX_MAX_OPS];
};

/* ---- module --------------------------------------------------------- */

/* Linkage of a module-scope variable or a function (ptx_symbol.linkage,
 * ptx_func.linkage), from the directive before it. A module built from
 * several units (ptx_module_link_with()) resolves EXTERN declarations to
 * the VISIBLE or WEAK definition of another unit; INTERNAL names are
 * private to their unit. */
enum {
  PTX_LINK_INTERNAL = 0, /* no directive: this unit only */
  PTX_LINK_VISIBLE,      /* .visible */
  PTX_LINK_WEAK,         /* .weak or .common: one definition is kept */
  PTX_LINK_EXTERN,       /* .extern: defined by another unit */
};

struct ptx_symbol {
  char *name;       /* owned */
  uint8_t space;    /* PTX_SP_GLOBAL/SHARED/LOCAL/PARAM/CONST */
  uint8_t type;     /* element type */
  bool is_extern;   /* .extern .shared x[] (dynamic shared) */
  int32_t func;     /* owning function, -1: module scope */
  uint32_t align;
  uint64_t size;    /* bytes */
  uint64_t addr;    /* after link: offset in its space, or the host
                       address for global/const */
  uint8_t *data;    /* global/const: the host bytes (owned unless
                       from_gops) */
  bool from_gops;   /* data and addr came from ptx_global_ops.alloc */
  uint32_t depth;   /* parse: { } depth of the declaration (0: outside a
                       body, 1: the body) */
  bool hidden;      /* parse: its { } scope has closed */
  uint8_t linkage;  /* PTX_LINK_*, module scope only */
  bool closed;      /* parse: its unit has ended (no longer looked up) */
  uint16_t unit;    /* the unit (PTX text) that declares it */
  int32_t alias;    /* link: the definition this declaration stands for
                       (it then has no storage of its own), or -1 */
};

struct ptx_param {
  char *name;       /* owned */
  struct ptx_param_info info;
  uint32_t sym;     /* its symbol */
};

struct ptx_module;

/* Functions the engine provides itself: declared .extern in the PTX,
 * called like any .func (ptx_func.builtin). */
enum {
  PTX_BUILTIN_NONE,
  PTX_BUILTIN_VPRINTF,     /* (.b32) vprintf(.b64 fmt, .b64 args) */
  PTX_BUILTIN_ASSERTFAIL,  /* __assertfail(.b64 msg, .b64 file, .b32
                              line, .b64 func, .b64 charsize) */
};

/* A function; kernels (is_entry) are handed out as struct ptx_kernel. */
struct ptx_func {
  struct ptx_module *mod;     /* the module that owns it */
  char *name;       /* owned */
  bool is_entry;
  bool defined;     /* has a body */
  uint8_t builtin;  /* PTX_BUILTIN_*: no body, the engine runs it */
  uint32_t line;
  struct ptx_param *params;   /* owned, nparams */
  uint32_t nparams;
  uint32_t params_size;
  struct ptx_insn *insns;     /* owned, ninsns */
  uint32_t ninsns;
  struct ptx_operand *vec;    /* owned: elements of VEC operands */
  uint32_t nvec;
  uint32_t nregs;             /* register slots: its own while parsing;
                                 for a kernel after link, the frame with
                                 every function it can call */
  uint32_t shared_size;       /* static shared bytes (link) */
  uint32_t dyn_shared_base;   /* where .extern .shared starts (link) */
  uint32_t local_size;        /* local bytes per thread (link; a kernel's
                                 includes its callees') */
  /* link: where the function's code, vector elements, registers and local
   * variables sit in the module-wide arrays and the thread's frame */
  uint32_t code_base, vec_base, reg_base, local_base;
  uint32_t own_regs, own_local;
  uint32_t decl_regs;         /* registers its .reg directives declare */
  uint32_t call_depth;        /* deepest call chain below it */
  uint32_t maxntid;           /* .maxntid/.reqntid product, 0: none */
  uint32_t reqntid[3];        /* .reqntid, 0: none */
  int32_t ret_sym;            /* its return-value symbol, or -1 */
  uint8_t visit;              /* link: call-graph walk state */
  uint8_t linkage;            /* PTX_LINK_* */
  bool closed;                /* parse: its unit has ended */
  bool superseded;            /* link: a .weak definition another unit's
                                 kept definition of the name stands for
                                 (no kernel, calls go to the kept one) */
  uint16_t unit;              /* the unit (PTX text) that declares it */
};

struct ptx_module {
  struct ptx_func *funcs;     /* owned */
  uint32_t nfuncs;
  struct ptx_symbol *syms;    /* owned */
  uint32_t nsyms;
  uint32_t module_shared;     /* bytes of module-scope static shared */
  struct ptx_insn *code;      /* owned: every function's code, linked */
  uint32_t ncode;
  struct ptx_operand *vec;    /* owned: every function's vector elements */
  uint32_t nvec;
  char *text;                 /* owned: a copy of the PTX, for messages */
  struct ptx_global_ops gops; /* alloc NULL: host buffers */
  size_t text_len;
  int ptx_version;            /* .version x.y as x * 10 + y, 0: none */
  int target;                 /* .target sm_NN as NN, 0: none */
  uint32_t const_size;        /* bytes of module .const variables */
  uint32_t nunits;            /* PTX texts linked into the module */
  uint32_t *unit_line;        /* owned: the line of |text| where each
                                 unit starts (the texts are stored one
                                 after the other, a newline between) */
  uint32_t *entries;          /* owned: the index in |funcs| of each
                                 kernel (a defined .entry not superseded),
                                 in the order of the text */
  uint32_t nentries;
};

/* The deepest call chain the engine accepts. */
#define PTX_MAX_CALL_DEPTH 32

/* Checks at load time that the interpreter implements |in|. Returns 0, or
 * PTX_E_UNSUPPORTED and writes a short reason to |why|. (ptx_exec.c) */
int ptx_exec_supported(const struct ptx_insn *in, char *why, size_t whylen);

#endif
