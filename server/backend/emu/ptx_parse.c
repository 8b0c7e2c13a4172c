/* The PTX parser: text -> struct ptx_module (see ptx.h, ptx_internal.h).
 *
 * One pass over the tokens builds the symbol table, the functions and their
 * decoded instructions; registers become numbered slots (names in { }
 * scopes are renamed by giving every declaration its own slots); labels and
 * symbols are resolved at the end of each function and of the module
 * ("link"): shared variables get their offsets in the block's shared
 * memory (module-scope ones first, then each function's own, then the
 * .extern dynamic array), local variables their offsets in the thread's
 * local memory, parameters their offsets in the parameter buffer, and
 * module .global/.const variables a host buffer holding their initialiser.
 *
 * Every instruction is checked with ptx_exec_supported() as it is decoded,
 * so a module that loads runs only instructions the interpreter has.
 *
 * Several texts (the units of a program built with -rdc=true) are parsed
 * one after the other into the same module: when a unit ends, its
 * module-scope names leave the lookup indexes, so the next unit sees none
 * of them; before the layout, link_units() points every .extern
 * declaration at the definition another unit made .visible or .weak. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emu/ptx_internal.h"

/* Bounds on sizes the PTX text controls, checked before allocating. */
#define MAX_REGS_PER_FUNC 16384u
#define MAX_VAR_SIZE (256u << 20)
#define MAX_PARAMS 4096u
#define MAX_REG_DECLS 1024u

/* ---- types ---------------------------------------------------------- */

static const struct {
  const char *name;
  uint8_t size;
  bool sgn, flt;
} type_tab[PTX_T_COUNT] = {
  [PTX_T_NONE] = {"", 0, false, false},
  [PTX_T_B8] = {"b8", 1, false, false},
  [PTX_T_B16] = {"b16", 2, false, false},
  [PTX_T_B32] = {"b32", 4, false, false},
  [PTX_T_B64] = {"b64", 8, false, false},
  [PTX_T_U8] = {"u8", 1, false, false},
  [PTX_T_U16] = {"u16", 2, false, false},
  [PTX_T_U32] = {"u32", 4, false, false},
  [PTX_T_U64] = {"u64", 8, false, false},
  [PTX_T_S8] = {"s8", 1, true, false},
  [PTX_T_S16] = {"s16", 2, true, false},
  [PTX_T_S32] = {"s32", 4, true, false},
  [PTX_T_S64] = {"s64", 8, true, false},
  [PTX_T_F16] = {"f16", 2, false, true},
  [PTX_T_F16X2] = {"f16x2", 4, false, true},
  [PTX_T_BF16] = {"bf16", 2, false, true},
  [PTX_T_BF16X2] = {"bf16x2", 4, false, true},
  [PTX_T_F32] = {"f32", 4, false, true},
  [PTX_T_F64] = {"f64", 8, false, true},
  [PTX_T_PRED] = {"pred", 1, false, false},
};

unsigned ptx_type_size(int t) {
  return t > 0 && t < PTX_T_COUNT ? type_tab[t].size : 0;
}

bool ptx_type_signed(int t) {
  return t > 0 && t < PTX_T_COUNT && type_tab[t].sgn;
}

bool ptx_type_float(int t) {
  return t > 0 && t < PTX_T_COUNT && type_tab[t].flt;
}

const char *ptx_type_name(int t) {
  return t > 0 && t < PTX_T_COUNT ? type_tab[t].name : "?";
}

/* |s| (without the dot) as a type, or PTX_T_NONE. */
static int type_from(const char *s, size_t n) {
  for (int t = 1; t < PTX_T_COUNT; t++)
    if (strlen(type_tab[t].name) == n && memcmp(type_tab[t].name, s, n) == 0)
      return t;
  return PTX_T_NONE;
}

/* ---- parser state --------------------------------------------------- */

struct rdecl {               /* a .reg declaration in scope */
  const char *name;
  uint32_t len;
  bool range;                /* %r<N>: names %r0 .. %r(N-1) */
  uint32_t count;
  uint32_t base;
  uint32_t depth;
};

struct label {
  const char *name;
  uint32_t len;
  uint32_t index;            /* instruction index (def), or insn (ref) */
  uint32_t slot;             /* ref: operand: index < PTX_MAX_OPS */
  uint32_t line;
};

/* A hash index of names (symbols, functions): |head| buckets of chains
 * through |next|, entries are indexes into the module's arrays. Keeps a
 * load linear in the text whatever the number of names. */
struct name_index {
  uint32_t *head;            /* cap buckets, UINT32_MAX: empty */
  uint32_t *next;            /* per entry */
  uint32_t cap, n, capnext;
};

static uint32_t name_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static void name_index_free(struct name_index *x) {
  free(x->head);
  free(x->next);
  memset(x, 0, sizeof(*x));
}

struct parser {
  struct ptx_lexer lx;
  struct ptx_token tok;      /* the current token */
  struct ptx_module *m;
  char *err;
  size_t errlen;
  /* the function being parsed */
  int32_t fidx;
  uint32_t depth;
  struct rdecl *regs;
  uint32_t nregdecl, capregdecl;
  struct label *defs, *refs;
  uint32_t ndefs, capdefs, nrefs, caprefs;
  uint32_t capinsns, capvec;
  uint32_t capsyms, capfuncs;
  struct name_index syms, funcs;  /* by name, for the lookups of a load */
  uint32_t *scoped;          /* symbols declared in inner { } blocks */
  uint32_t nscoped, capscoped;
  /* the unit being parsed, and the linkage directive (.visible, .extern
   * ...) before the module-scope declaration being parsed */
  uint16_t unit;
  uint8_t linkage;
};

/* The unit holding line |line| of the module's text, and the line within
 * it (the texts sit one after the other). */
static uint32_t unit_of_line(const struct ptx_module *m, uint32_t line,
                             uint32_t *local) {
  uint32_t u = 0;

  while (u + 1 < m->nunits && m->unit_line[u + 1] <= line)
    u++;
  *local = line - m->unit_line[u] + 1;
  return u;
}

static int perr(struct parser *P, int code, uint32_t line, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int perr(struct parser *P, int code, uint32_t line, const char *fmt,
                ...) {
  va_list ap;
  int n = 0;

  if (P->errlen == 0)
    return code;
  if (line && P->m && P->m->nunits > 1) {
    uint32_t local, u = unit_of_line(P->m, line, &local);
    n = snprintf(P->err, P->errlen, "unit %u, line %u: ", u + 1, local);
  } else if (line) {
    n = snprintf(P->err, P->errlen, "line %u: ", line);
  }
  if (n < 0 || (size_t)n >= P->errlen)
    return code;
  va_start(ap, fmt);
  vsnprintf(P->err + n, P->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return code;
}

/* Makes room for |need| elements of |elem| bytes in |*p| (capacity |*cap|,
 * doubled). Returns 0 or PTX_E_NOMEM. */
static int grow(void *pp, uint32_t *cap, uint32_t need, size_t elem) {
  void **p = pp;
  uint32_t nc;
  void *q;

  if (need <= *cap)
    return 0;
  nc = *cap ? *cap : 8;
  while (nc < need) {
    if (nc > UINT32_MAX / 2)
      return PTX_E_NOMEM;
    nc *= 2;
  }
  q = realloc(*p, (size_t)nc * elem);
  if (!q)
    return PTX_E_NOMEM;
  memset((char *)q + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
  *p = q;
  *cap = nc;
  return 0;
}

/* Adds entry |i| (== x->n) named |name|; |names| yields the name of an
 * entry for rehashing (NULL: removed). Returns 0 or PTX_E_NOMEM. */
static int name_index_add(struct name_index *x, uint32_t i, const char *name,
                          const char *(*names)(const void *, uint32_t),
                          const void *ctx) {
  if (grow(&x->next, &x->capnext, i + 1, sizeof(*x->next)) < 0)
    return PTX_E_NOMEM;
  if ((uint64_t)(i + 1) * 2 > x->cap) {
    uint32_t nc = x->cap ? x->cap * 2 : 64;
    uint32_t *h;
    while ((uint64_t)(i + 1) * 2 > nc)
      nc *= 2;
    if (!(h = malloc((size_t)nc * sizeof(*h))))
      return PTX_E_NOMEM;
    memset(h, 0xff, (size_t)nc * sizeof(*h));
    free(x->head);
    x->head = h;
    x->cap = nc;
    for (uint32_t j = 0; j < i; j++) {
      const char *nm = names(ctx, j);
      uint32_t b;
      if (!nm) /* removed */
        continue;
      b = name_hash(nm, strlen(nm)) & (nc - 1);
      x->next[j] = x->head[b];
      x->head[b] = j;
    }
  }
  {
    uint32_t b = name_hash(name, strlen(name)) & (x->cap - 1);
    x->next[i] = x->head[b];
    x->head[b] = i;
  }
  x->n = i + 1;
  return 0;
}

/* Unlinks entry |i| named |name| (symbols whose { } scope closed: they
 * are recent, so near the head of their chain). */
static void name_index_remove(struct name_index *x, uint32_t i,
                              const char *name) {
  uint32_t *pp;

  if (!x->cap)
    return;
  pp = &x->head[name_hash(name, strlen(name)) & (x->cap - 1)];
  while (*pp != UINT32_MAX && *pp != i)
    pp = &x->next[*pp];
  if (*pp == i)
    *pp = x->next[i];
}

static const char *sym_name(const void *m, uint32_t i) {
  const struct ptx_symbol *y = &((const struct ptx_module *)m)->syms[i];
  return y->hidden || y->closed ? NULL : y->name;
}

static const char *func_name(const void *m, uint32_t i) {
  const struct ptx_func *f = &((const struct ptx_module *)m)->funcs[i];
  return f->closed ? NULL : f->name;
}

static int nomem(struct parser *P) {
  return perr(P, PTX_E_NOMEM, 0, "out of memory");
}

static int next(struct parser *P) {
  return ptx_lex_next(&P->lx, &P->tok, P->err, P->errlen);
}

static bool tok_is(const struct ptx_token *t, const char *w) {
  size_t n = strlen(w);
  return t->kind == PTX_TOK_WORD && t->len == n && memcmp(t->s, w, n) == 0;
}

static bool is_punct(struct parser *P, char c) {
  return P->tok.kind == PTX_TOK_PUNCT && P->tok.punct == c;
}

static int expect_punct(struct parser *P, char c) {
  if (!is_punct(P, c))
    return perr(P, PTX_E_PARSE, P->tok.line, "expected '%c' before '%.*s'",
                c, (int)(P->tok.len > 40 ? 40 : P->tok.len), P->tok.s);
  return next(P);
}

static int expect_int(struct parser *P, uint64_t *v) {
  if (P->tok.kind != PTX_TOK_INT)
    return perr(P, PTX_E_PARSE, P->tok.line, "expected a number before '%.*s'",
                (int)(P->tok.len > 40 ? 40 : P->tok.len), P->tok.s);
  *v = P->tok.ival;
  return next(P);
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

/* Skips the rest of the current line (.loc, .file, .version ...). */
static int skip_line(struct parser *P) {
  uint32_t line = P->tok.line;
  int rc = 0;

  while (P->tok.kind != PTX_TOK_EOF && P->tok.line == line)
    if ((rc = next(P)) < 0)
      break;
  return rc;
}

/* Skips through the ';' that ends the statement. */
static int skip_statement(struct parser *P) {
  int rc;

  while (!is_punct(P, ';')) {
    if (P->tok.kind == PTX_TOK_EOF)
      return perr(P, PTX_E_PARSE, P->tok.line, "missing ';'");
    if ((rc = next(P)) < 0)
      return rc;
  }
  return next(P);
}

/* Skips a balanced { } group (.section bodies). */
static int skip_braces(struct parser *P) {
  int depth = 0, rc;

  do {
    if (P->tok.kind == PTX_TOK_EOF)
      return perr(P, PTX_E_PARSE, P->tok.line, "missing '}'");
    if (is_punct(P, '{'))
      depth++;
    else if (is_punct(P, '}'))
      depth--;
    if ((rc = next(P)) < 0)
      return rc;
  } while (depth > 0);
  return 0;
}

/* ---- symbols -------------------------------------------------------- */

/* The symbol |name| visible from function |f| (its own first), or -1. */
static int32_t find_sym(const struct ptx_module *m, int32_t f, const char *s,
                        size_t n) {
  int32_t found = -1;

  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *y = &m->syms[i];
    if ((y->func == f || y->func == -1) && !y->hidden && y->alias < 0 &&
        strlen(y->name) == n &&
        memcmp(y->name, s, n) == 0) {
      if (y->func == f)
        return (int32_t)i;
      found = (int32_t)i;
    }
  }
  return found;
}

/* find_sym(), and the function |s| of the unit being parsed, through the
 * parser's indexes. */
static int32_t psym(const struct parser *P, int32_t f, const char *s,
                    size_t n) {
  const struct name_index *x = &P->syms;
  int32_t found = -1;

  if (!x->cap)
    return -1;
  for (uint32_t i = x->head[name_hash(s, n) & (x->cap - 1)];
       i != UINT32_MAX; i = x->next[i]) {
    const struct ptx_symbol *y = &P->m->syms[i];
    if ((y->func == f || y->func == -1) && !y->hidden && !y->closed &&
        strlen(y->name) == n && memcmp(y->name, s, n) == 0) {
      if (y->func == f)
        return (int32_t)i;
      found = (int32_t)i;
    }
  }
  return found;
}

static int32_t pfunc(const struct parser *P, const char *s, size_t n) {
  const struct name_index *x = &P->funcs;

  if (!x->cap)
    return -1;
  for (uint32_t i = x->head[name_hash(s, n) & (x->cap - 1)];
       i != UINT32_MAX; i = x->next[i])
    if (!P->m->funcs[i].closed && strlen(P->m->funcs[i].name) == n &&
        memcmp(P->m->funcs[i].name, s, n) == 0)
      return (int32_t)i;
  return -1;
}

/* Adds a symbol; on success |*idx| is its index. */
static int add_sym(struct parser *P, const char *name, size_t n, int space,
                   int type, uint32_t align, uint64_t size, bool is_extern,
                   int32_t func, uint32_t line, uint32_t *idx) {
  struct ptx_symbol *y;
  int32_t old = psym(P, func, name, n);

  if (old >= 0 && P->m->syms[old].func == func)
    return perr(P, PTX_E_PARSE, line, "'%.*s' declared twice", (int)n, name);
  if (grow(&P->m->syms, &P->capsyms, P->m->nsyms + 1, sizeof(*y)) < 0)
    return nomem(P);
  y = &P->m->syms[P->m->nsyms];
  memset(y, 0, sizeof(*y));
  if (!(y->name = dupn(name, n)))
    return nomem(P);
  y->space = (uint8_t)space;
  y->type = (uint8_t)type;
  y->align = align;
  y->size = size;
  y->is_extern = is_extern;
  y->func = func;
  y->depth = func >= 0 ? P->depth : 0;
  y->unit = P->unit;
  y->alias = -1;
  y->linkage = func == -1 ? P->linkage : PTX_LINK_INTERNAL;
  *idx = P->m->nsyms++;
  if (name_index_add(&P->syms, *idx, y->name, sym_name, P->m) < 0)
    return nomem(P);
  if (func >= 0 && P->depth >= 2) {
    if (grow(&P->scoped, &P->capscoped, P->nscoped + 1,
             sizeof(*P->scoped)) < 0)
      return nomem(P);
    P->scoped[P->nscoped++] = *idx;
  }
  return 0;
}

/* Writes initialiser value |t| into |dst| as element type |type|. */
static int put_init(struct parser *P, uint8_t *dst, int type, bool neg) {
  const struct ptx_token *t = &P->tok;
  unsigned sz = ptx_type_size(type);
  uint64_t bits;

  if (type == PTX_T_F32 || type == PTX_T_F64) {
    double d;
    if (t->kind == PTX_TOK_F32) {
      uint32_t b = (uint32_t)t->ival;
      float f;
      memcpy(&f, &b, 4);
      d = f;
    } else if (t->kind == PTX_TOK_F64) {
      memcpy(&d, &t->ival, 8);
    } else if (t->kind == PTX_TOK_FLOAT) {
      d = t->fval;
    } else if (t->kind == PTX_TOK_INT) {
      d = (double)t->ival;
    } else {
      goto unsupported;
    }
    if (neg)
      d = -d;
    if (type == PTX_T_F32) {
      float f = (float)d;
      uint32_t b;
      if (t->kind == PTX_TOK_F32 && !neg)
        b = (uint32_t)t->ival; /* keep NaN payloads */
      else
        memcpy(&b, &f, 4);
      bits = b;
    } else {
      if (t->kind == PTX_TOK_F64 && !neg)
        bits = t->ival;
      else
        memcpy(&bits, &d, 8);
    }
  } else if (t->kind == PTX_TOK_INT || t->kind == PTX_TOK_F32 ||
             t->kind == PTX_TOK_F64) {
    if (ptx_type_float(type))
      goto unsupported;
    bits = neg ? (uint64_t)0 - t->ival : t->ival;
  } else {
    goto unsupported;
  }
  memcpy(dst, &bits, sz); /* little-endian host, as the device */
  return next(P);
unsupported:
  return perr(P, PTX_E_UNSUPPORTED, t->line,
              "unsupported initialiser '%.*s' for .%s",
              (int)(t->len > 40 ? 40 : t->len), t->s, ptx_type_name(type));
}

/* Parses "= value" or "= { values }" into |y->data| (already sized, or
 * sized here for an unsized array). */
static int parse_init(struct parser *P, struct ptx_symbol *y, bool unsized) {
  unsigned esz = ptx_type_size(y->type);
  uint64_t n = 0, cap = unsized ? 0 : y->size / esz;
  int depth = 0, rc;
  uint32_t line = P->tok.line;

  if ((rc = next(P)) < 0) /* '=' */
    return rc;
  do {
    bool neg = false;
    if (is_punct(P, '{')) {
      depth++;
      if ((rc = next(P)) < 0)
        return rc;
      continue;
    }
    if (is_punct(P, '}')) {
      depth--;
      if ((rc = next(P)) < 0)
        return rc;
    } else {
      if (is_punct(P, '-')) {
        neg = true;
        if ((rc = next(P)) < 0)
          return rc;
      }
      if (n >= cap) {
        uint64_t nc;
        uint8_t *d;
        if (!unsized)
          return perr(P, PTX_E_PARSE, line, "too many initialisers for '%s'",
                      y->name);
        nc = cap ? cap * 2 : 16;
        if (nc * esz > MAX_VAR_SIZE)
          return perr(P, PTX_E_UNSUPPORTED, line, "'%s' is too large",
                      y->name);
        if (!(d = realloc(y->data, nc * esz)))
          return nomem(P);
        memset(d + cap * esz, 0, (nc - cap) * esz);
        y->data = d;
        cap = nc;
      }
      if ((rc = put_init(P, y->data + n * esz, y->type, neg)) < 0)
        return rc;
      n++;
    }
    if (depth > 0 && is_punct(P, ',')) {
      if ((rc = next(P)) < 0)
        return rc;
    }
  } while (depth > 0);
  if (unsized)
    y->size = n * esz;
  return 0;
}

/* A variable declaration after its state-space word (already consumed):
 * [.align N] [.vN] .type name [ [N] | [] ] [= init] {, name ...} ; */
static int parse_var(struct parser *P, int space, bool is_extern,
                     int32_t func) {
  uint32_t align = 0, line = P->tok.line;
  int type = PTX_T_NONE, rc;
  uint64_t v = 0;

  while (P->tok.kind == PTX_TOK_WORD && P->tok.s[0] == '.') {
    if (tok_is(&P->tok, ".align")) {
      if ((rc = next(P)) < 0 || (rc = expect_int(P, &v)) < 0)
        return rc;
      if (v == 0 || v > 4096 || (v & (v - 1)))
        return perr(P, PTX_E_PARSE, line, "bad alignment %llu",
                    (unsigned long long)v);
      align = (uint32_t)v;
      continue;
    }
    type = type_from(P->tok.s + 1, P->tok.len - 1);
    if (type == PTX_T_NONE || type == PTX_T_PRED)
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "unsupported variable attribute '%.*s'", (int)P->tok.len,
                  P->tok.s);
    if ((rc = next(P)) < 0)
      return rc;
  }
  if (type == PTX_T_NONE)
    return perr(P, PTX_E_PARSE, line, "variable without a type");
  if (!align)
    align = ptx_type_size(type);
  for (;;) {
    const char *name;
    uint32_t nlen, idx;
    uint64_t count = 1;
    bool unsized = false;
    struct ptx_symbol *y;

    if (P->tok.kind != PTX_TOK_WORD)
      return perr(P, PTX_E_PARSE, line, "expected a variable name");
    name = P->tok.s;
    nlen = P->tok.len;
    if ((rc = next(P)) < 0)
      return rc;
    if (is_punct(P, '[')) {
      if ((rc = next(P)) < 0)
        return rc;
      if (is_punct(P, ']')) {
        unsized = true;
        count = 0;
      } else {
        if ((rc = expect_int(P, &count)) < 0)
          return rc;
      }
      if ((rc = expect_punct(P, ']')) < 0)
        return rc;
      if (is_punct(P, '['))
        return perr(P, PTX_E_UNSUPPORTED, line,
                    "multi-dimensional variable '%.*s'", (int)nlen, name);
    }
    if (count > MAX_VAR_SIZE / ptx_type_size(type))
      return perr(P, PTX_E_UNSUPPORTED, line, "'%.*s' is too large",
                  (int)nlen, name);
    if (space == PTX_SP_SHARED && unsized && !is_extern)
      return perr(P, PTX_E_PARSE, line, "unsized shared '%.*s' not .extern",
                  (int)nlen, name);
    if ((rc = add_sym(P, name, nlen, space, type, align,
                      count * ptx_type_size(type),
                      is_extern && space == PTX_SP_SHARED, func, line,
                      &idx)) < 0)
      return rc;
    y = &P->m->syms[idx];
    if (space == PTX_SP_GLOBAL || space == PTX_SP_CONST) {
      if (y->size && !(y->data = calloc(1, y->size)))
        return nomem(P);
      if (is_punct(P, '=')) {
        if (is_extern)
          return perr(P, PTX_E_PARSE, line,
                      "initialiser on external variable '%s'", y->name);
        if ((rc = parse_init(P, y, unsized)) < 0)
          return rc;
      }
    } else if (is_punct(P, '=')) {
      return perr(P, PTX_E_PARSE, line, "initialiser on '%s'", y->name);
    }
    if (!is_punct(P, ','))
      break;
    if ((rc = next(P)) < 0)
      return rc;
  }
  return expect_punct(P, ';');
}

/* ---- registers ------------------------------------------------------ */

static bool all_digits(const char *s, size_t n) {
  if (n == 0 || (n > 1 && s[0] == '0') || n > 9)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* The slot of register |name| in the innermost scope that declares it, or
 * PTX_NOREG. */
static uint32_t find_reg(const struct parser *P, const char *s, size_t n) {
  for (uint32_t i = P->nregdecl; i-- > 0;) {
    const struct rdecl *r = &P->regs[i];
    if (!r->range) {
      if (r->len == n && memcmp(r->name, s, n) == 0)
        return r->base;
    } else if (n > r->len && memcmp(r->name, s, r->len) == 0 &&
               all_digits(s + r->len, n - r->len)) {
      uint32_t k = (uint32_t)strtoul(s + r->len, NULL, 10);
      if (k < r->count)
        return r->base + k;
    }
  }
  return PTX_NOREG;
}

/* .reg .type name, name<N>, ... ; (".reg" consumed; |type| is the type
 * when it came in one word with it, ".reg.b32", else PTX_T_NONE) */
static int parse_reg_decl(struct parser *P, int type) {
  struct ptx_func *f = &P->m->funcs[P->fidx];
  uint32_t line = P->tok.line;
  int rc;

  while (P->tok.kind == PTX_TOK_WORD && P->tok.s[0] == '.') {
    type = type_from(P->tok.s + 1, P->tok.len - 1);
    if (type == PTX_T_NONE)
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "unsupported register declaration '.reg %.*s'",
                  (int)P->tok.len, P->tok.s);
    if ((rc = next(P)) < 0)
      return rc;
  }
  for (;;) {
    struct rdecl *r;
    uint64_t count = 1;
    bool range = false;

    if (P->tok.kind != PTX_TOK_WORD)
      return perr(P, PTX_E_PARSE, line, "expected a register name");
    /* find_reg() scans the declarations in scope: bound them. */
    if (P->nregdecl >= MAX_REG_DECLS)
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "more than %u register declarations in scope",
                  MAX_REG_DECLS);
    if (grow(&P->regs, &P->capregdecl, P->nregdecl + 1, sizeof(*r)) < 0)
      return nomem(P);
    r = &P->regs[P->nregdecl];
    r->name = P->tok.s;
    r->len = P->tok.len;
    if ((rc = next(P)) < 0)
      return rc;
    if (is_punct(P, '<')) {
      if ((rc = next(P)) < 0 || (rc = expect_int(P, &count)) < 0 ||
          (rc = expect_punct(P, '>')) < 0)
        return rc;
      range = true;
    }
    if (count > MAX_REGS_PER_FUNC || f->nregs + count > MAX_REGS_PER_FUNC)
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "more than %u registers in '%s'", MAX_REGS_PER_FUNC,
                  f->name);
    r->range = range;
    r->count = (uint32_t)count;
    r->base = f->nregs;
    r->depth = P->depth;
    f->nregs += (uint32_t)count;
    f->decl_regs += (uint32_t)count;
    P->nregdecl++;
    if (!is_punct(P, ','))
      break;
    if ((rc = next(P)) < 0)
      return rc;
  }
  return expect_punct(P, ';');
}

/* ---- instructions --------------------------------------------------- */

/* Every instruction name of the PTX ISA (up to 9.0), implemented or not:
 * tells an instruction the engine lacks from text that is not PTX. */
static const char *const isa_opcodes[] = {
  "abs", "activemask", "add", "addc", "alloca", "and", "applypriority",
  "atom", "bar", "barrier", "bfe", "bfi", "bfind", "bmsk", "bra", "brev",
  "brkpt", "brx", "call", "clusterlaunchcontrol", "clz", "cnot", "copysign",
  "cos", "cp", "createpolicy", "cvt", "cvta", "discard", "div", "dp2a",
  "dp4a", "elect", "ex2", "exit", "fence", "fma", "fns", "getctarank",
  "griddepcontrol", "isspacep", "istypeof", "ld", "ldmatrix", "ldu", "lg2",
  "lop3", "mad", "mad24", "madc", "mapa", "match", "max", "mbarrier",
  "membar", "min", "mma", "mov", "movmatrix", "mul", "mul24", "multimem",
  "nanosleep", "neg", "not", "or", "pmevent", "popc", "prefetch",
  "prefetchu", "prmt", "rcp", "red", "redux", "rem", "ret", "rsqrt", "sad",
  "selp", "set", "setmaxnreg", "setp", "shf", "shfl", "shl", "shr", "sin",
  "slct", "sqrt", "st", "stackrestore", "stacksave", "stmatrix", "sub",
  "subc", "suld", "suq", "sured", "sust", "szext", "tanh", "tcgen05",
  "tensormap", "testp", "tex", "tld4", "trap", "txq", "vabsdiff",
  "vabsdiff2", "vabsdiff4", "vadd", "vadd2", "vadd4", "vavrg2", "vavrg4",
  "vmad", "vmax", "vmax2", "vmax4", "vmin", "vmin2", "vmin4", "vote", "vset",
  "vset2", "vset4", "vshl", "vshr", "vsub", "vsub2", "vsub4", "wgmma",
  "wmma", "xor",
};

static bool ptx_isa_opcode(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof(isa_opcodes) / sizeof(isa_opcodes[0]); i++)
    if (strlen(isa_opcodes[i]) == n && memcmp(isa_opcodes[i], s, n) == 0)
      return true;
  return false;
}

static const struct {
  const char *name;
  uint8_t op;
} op_tab[] = {
  {"mov", PTX_OP_MOV}, {"ld", PTX_OP_LD}, {"ldu", PTX_OP_LD},
  {"st", PTX_OP_ST}, {"cvta", PTX_OP_CVTA}, {"add", PTX_OP_ADD},
  {"sub", PTX_OP_SUB}, {"mul", PTX_OP_MUL}, {"mad", PTX_OP_MAD},
  {"fma", PTX_OP_FMA}, {"div", PTX_OP_DIV}, {"rem", PTX_OP_REM},
  {"min", PTX_OP_MIN}, {"max", PTX_OP_MAX}, {"abs", PTX_OP_ABS},
  {"neg", PTX_OP_NEG}, {"and", PTX_OP_AND}, {"or", PTX_OP_OR},
  {"xor", PTX_OP_XOR}, {"not", PTX_OP_NOT}, {"cnot", PTX_OP_CNOT},
  {"shl", PTX_OP_SHL}, {"shr", PTX_OP_SHR}, {"setp", PTX_OP_SETP},
  {"selp", PTX_OP_SELP}, {"bra", PTX_OP_BRA}, {"ret", PTX_OP_RET},
  {"exit", PTX_OP_EXIT}, {"cvt", PTX_OP_CVT}, {"rcp", PTX_OP_RCP},
  {"sqrt", PTX_OP_SQRT}, {"rsqrt", PTX_OP_RSQRT}, {"ex2", PTX_OP_EX2},
  {"lg2", PTX_OP_LG2}, {"sin", PTX_OP_SIN}, {"cos", PTX_OP_COS},
  {"tanh", PTX_OP_TANH}, {"shfl", PTX_OP_SHFL}, {"vote", PTX_OP_VOTE},
  {"atom", PTX_OP_ATOM}, {"red", PTX_OP_RED}, {"bar", PTX_OP_BAR},
  {"barrier", PTX_OP_BAR}, {"membar", PTX_OP_MEMBAR},
  {"fence", PTX_OP_MEMBAR}, {"popc", PTX_OP_POPC}, {"clz", PTX_OP_CLZ},
  {"bfe", PTX_OP_BFE}, {"bfi", PTX_OP_BFI}, {"brev", PTX_OP_BREV},
  {"prmt", PTX_OP_PRMT}, {"lop3", PTX_OP_LOP3},
  {"copysign", PTX_OP_COPYSIGN}, {"testp", PTX_OP_TESTP},
  {"trap", PTX_OP_TRAP}, {"nanosleep", PTX_OP_NOP},
  {"activemask", PTX_OP_ACTIVEMASK}, {"call", PTX_OP_CALL},
  {"addc", PTX_OP_ADD}, {"subc", PTX_OP_SUB}, {"madc", PTX_OP_MAD},
  {"set", PTX_OP_SET}, {"mul24", PTX_OP_MUL24}, {"mad24", PTX_OP_MAD24},
  {"sad", PTX_OP_SAD}, {"bfind", PTX_OP_BFIND}, {"shf", PTX_OP_SHF},
  {"dp4a", PTX_OP_DP4A}, {"dp2a", PTX_OP_DP2A}, {"match", PTX_OP_MATCH},
};

static const char *const cmp_names[] = {
  [PTX_CMP_EQ] = "eq", [PTX_CMP_NE] = "ne", [PTX_CMP_LT] = "lt",
  [PTX_CMP_LE] = "le", [PTX_CMP_GT] = "gt", [PTX_CMP_GE] = "ge",
  [PTX_CMP_LO] = "lo", [PTX_CMP_LS] = "ls", [PTX_CMP_HI] = "hi",
  [PTX_CMP_HS] = "hs", [PTX_CMP_EQU] = "equ", [PTX_CMP_NEU] = "neu",
  [PTX_CMP_LTU] = "ltu", [PTX_CMP_LEU] = "leu", [PTX_CMP_GTU] = "gtu",
  [PTX_CMP_GEU] = "geu", [PTX_CMP_NUM] = "num", [PTX_CMP_NAN] = "nan",
};

static const struct {
  const char *name;
  uint8_t val;
} rnd_tab[] = {
  {"rn", PTX_RND_RN}, {"rz", PTX_RND_RZ}, {"rm", PTX_RND_RM},
  {"rp", PTX_RND_RP}, {"rni", PTX_RND_RNI}, {"rzi", PTX_RND_RZI},
  {"rmi", PTX_RND_RMI}, {"rpi", PTX_RND_RPI},
};

static const struct {
  const char *name;
  uint8_t op;     /* PTX_OP_INVALID: any opcode */
  uint8_t mode;
} mode_tab[] = {
  {"lo", PTX_OP_INVALID, PTX_MODE_LO}, {"hi", PTX_OP_INVALID, PTX_MODE_HI},
  {"wide", PTX_OP_INVALID, PTX_MODE_WIDE},
  {"up", PTX_OP_SHFL, PTX_MODE_UP}, {"down", PTX_OP_SHFL, PTX_MODE_DOWN},
  {"bfly", PTX_OP_SHFL, PTX_MODE_BFLY}, {"idx", PTX_OP_SHFL, PTX_MODE_IDX},
  {"ballot", PTX_OP_VOTE, PTX_MODE_BALLOT},
  {"any", PTX_OP_VOTE, PTX_MODE_ANY}, {"all", PTX_OP_VOTE, PTX_MODE_ALL},
  {"uni", PTX_OP_VOTE, PTX_MODE_UNI},
  {"any", PTX_OP_MATCH, PTX_MODE_ANY}, {"all", PTX_OP_MATCH, PTX_MODE_ALL},
  {"l", PTX_OP_SHF, PTX_MODE_SHFL_L}, {"r", PTX_OP_SHF, PTX_MODE_SHFL_R},
  {"shiftamt", PTX_OP_BFIND, PTX_MODE_SHIFTAMT},
  {"finite", PTX_OP_TESTP, PTX_MODE_FINITE},
  {"infinite", PTX_OP_TESTP, PTX_MODE_INFINITE},
  {"number", PTX_OP_TESTP, PTX_MODE_NUMBER},
  {"notanumber", PTX_OP_TESTP, PTX_MODE_NOTANUMBER},
  {"normal", PTX_OP_TESTP, PTX_MODE_NORMAL},
  {"subnormal", PTX_OP_TESTP, PTX_MODE_SUBNORMAL},
};

static const struct {
  const char *name;
  uint8_t mode;
} atom_tab[] = {
  {"add", PTX_MODE_ADD}, {"min", PTX_MODE_MIN}, {"max", PTX_MODE_MAX},
  {"exch", PTX_MODE_EXCH}, {"cas", PTX_MODE_CAS}, {"and", PTX_MODE_AND},
  {"or", PTX_MODE_OR}, {"xor", PTX_MODE_XOR}, {"inc", PTX_MODE_INC},
  {"dec", PTX_MODE_DEC},
};

/* Modifiers with no effect on what the emulator computes: cache and
 * eviction hints, memory-order and scope qualifiers (every access is
 * sequentially consistent here), .uni, .aligned, .nc. */
static const char *const ignored_mods[] = {
  "uni", "aligned", "nc", "ca", "cg", "cs", "lu", "cv", "wb", "wt",
  "volatile", "relaxed", "acquire", "release", "acq_rel", "sc", "gpu",
  "sys", "cta", "gl", "weak",
};

static bool mod_is(const char *s, size_t n, const char *w) {
  return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Decodes one ".modifier" of opcode |in->op|. Returns 0, or -1 when the
 * modifier is unknown. */
static int decode_mod(struct ptx_insn *in, const char *s, size_t n) {
  int t;

  if ((t = type_from(s, n)) != PTX_T_NONE) {
    if (in->type == PTX_T_NONE)
      in->type = (uint8_t)t;
    else if (in->type2 == PTX_T_NONE)
      in->type2 = (uint8_t)t;
    else
      return -1;
    return 0;
  }
  if (mod_is(s, n, "global")) {
    in->space = PTX_SP_GLOBAL;
  } else if (mod_is(s, n, "shared") || mod_is(s, n, "shared::cta")) {
    in->space = PTX_SP_SHARED;
  } else if (mod_is(s, n, "local")) {
    in->space = PTX_SP_LOCAL;
  } else if (mod_is(s, n, "param") || mod_is(s, n, "param::entry")) {
    in->space = PTX_SP_PARAM;
  } else if (mod_is(s, n, "const")) {
    in->space = PTX_SP_CONST;
  } else if (mod_is(s, n, "to") && in->op == PTX_OP_CVTA) {
    in->flags |= PTX_F_TO;
  } else if (mod_is(s, n, "v2") || mod_is(s, n, "v4")) {
    in->vec = (uint8_t)(s[1] - '0');
  } else if (mod_is(s, n, "ftz")) {
    in->flags |= PTX_F_FTZ;
  } else if (mod_is(s, n, "sat")) {
    in->flags |= PTX_F_SAT;
  } else if (mod_is(s, n, "approx")) {
    in->flags |= PTX_F_APPROX;
  } else if (mod_is(s, n, "full")) {
    in->flags |= PTX_F_FULL;
  } else if (mod_is(s, n, "cc")) {
    in->flags |= PTX_F_CC;
  } else if (mod_is(s, n, "sync") &&
             (in->op == PTX_OP_SHFL || in->op == PTX_OP_VOTE ||
              in->op == PTX_OP_BAR || in->op == PTX_OP_MATCH ||
              in->op == PTX_OP_WARPSYNC)) {
    in->flags |= PTX_F_SYNC;
  } else if (in->op == PTX_OP_BAR && mod_is(s, n, "arrive")) {
    in->flags |= PTX_F_ARRIVE;
  } else if (in->op == PTX_OP_BAR && mod_is(s, n, "red")) {
    in->flags |= PTX_F_RED;
  } else if (in->op == PTX_OP_BAR && (in->flags & PTX_F_RED) && !in->mode &&
             (mod_is(s, n, "popc") || mod_is(s, n, "and") ||
              mod_is(s, n, "or"))) {
    in->mode = s[0] == 'p' ? PTX_MODE_POPC
               : s[0] == 'a' ? PTX_MODE_AND : PTX_MODE_OR;
  } else if ((in->op == PTX_OP_MIN || in->op == PTX_OP_MAX) &&
             mod_is(s, n, "NaN")) {
    in->flags |= PTX_F_NAN;
  } else if (in->op == PTX_OP_SHF && mod_is(s, n, "clamp")) {
    in->flags |= PTX_F_CLAMP;
  } else if (in->op == PTX_OP_SHF && mod_is(s, n, "wrap")) {
    /* the default */
  } else if ((in->op == PTX_OP_ATOM || in->op == PTX_OP_RED) &&
             mod_is(s, n, "noftz")) {
    /* atom.add.noftz.f16: half-precision atomics never flush */
  } else if (n > 4 && (memcmp(s, "L1::", 4) == 0 ||
                       memcmp(s, "L2::", 4) == 0) &&
             in->op != PTX_OP_BAR) {
    /* cache hints: no effect */
  } else {
    bool cmp_op = in->op == PTX_OP_SETP || in->op == PTX_OP_SET;
    if (cmp_op && in->cmp == PTX_CMP_NONE) {
      for (int c = PTX_CMP_EQ; c <= PTX_CMP_NAN; c++)
        if (mod_is(s, n, cmp_names[c])) {
          in->cmp = (uint8_t)c;
          return 0;
        }
    }
    if (cmp_op && in->cmp != PTX_CMP_NONE) {
      if (mod_is(s, n, "and") || mod_is(s, n, "or") || mod_is(s, n, "xor")) {
        in->flags |= PTX_F_BOOLOP;
        in->mode = s[0] == 'a' ? PTX_MODE_AND
                   : s[0] == 'o' ? PTX_MODE_OR : PTX_MODE_XOR;
        return 0;
      }
    }
    if (in->op == PTX_OP_ATOM || in->op == PTX_OP_RED) {
      for (size_t i = 0; i < sizeof(atom_tab) / sizeof(atom_tab[0]); i++)
        if (mod_is(s, n, atom_tab[i].name)) {
          if (in->mode)
            return -1;
          in->mode = atom_tab[i].mode;
          return 0;
        }
    }
    for (size_t i = 0; i < sizeof(rnd_tab) / sizeof(rnd_tab[0]); i++)
      if (mod_is(s, n, rnd_tab[i].name)) {
        in->rnd = rnd_tab[i].val;
        return 0;
      }
    for (size_t i = 0; i < sizeof(mode_tab) / sizeof(mode_tab[0]); i++)
      if (mod_is(s, n, mode_tab[i].name) &&
          (mode_tab[i].op == PTX_OP_INVALID || mode_tab[i].op == in->op)) {
        in->mode = mode_tab[i].mode;
        return 0;
      }
    for (size_t i = 0; i < sizeof(ignored_mods) / sizeof(ignored_mods[0]);
         i++)
      if (mod_is(s, n, ignored_mods[i]))
        return 0;
    if (in->op == PTX_OP_BAR && mod_is(s, n, "warp") && !in->flags) {
      in->op = PTX_OP_WARPSYNC; /* bar.warp.sync membermask */
      return 0;
    }
    return -1;
  }
  return 0;
}

static const struct {
  const char *name;
  uint8_t id;
} sreg_tab[] = {
  {"%tid.x", PTX_SR_TID_X}, {"%tid.y", PTX_SR_TID_Y},
  {"%tid.z", PTX_SR_TID_Z}, {"%ntid.x", PTX_SR_NTID_X},
  {"%ntid.y", PTX_SR_NTID_Y}, {"%ntid.z", PTX_SR_NTID_Z},
  {"%ctaid.x", PTX_SR_CTAID_X}, {"%ctaid.y", PTX_SR_CTAID_Y},
  {"%ctaid.z", PTX_SR_CTAID_Z}, {"%nctaid.x", PTX_SR_NCTAID_X},
  {"%nctaid.y", PTX_SR_NCTAID_Y}, {"%nctaid.z", PTX_SR_NCTAID_Z},
  {"%laneid", PTX_SR_LANEID}, {"%warpid", PTX_SR_WARPID},
  {"%nwarpid", PTX_SR_NWARPID}, {"%lanemask_eq", PTX_SR_LANEMASK_EQ},
  {"%lanemask_lt", PTX_SR_LANEMASK_LT}, {"%lanemask_le", PTX_SR_LANEMASK_LE},
  {"%lanemask_gt", PTX_SR_LANEMASK_GT}, {"%lanemask_ge", PTX_SR_LANEMASK_GE},
  {"%clock", PTX_SR_CLOCK}, {"%clock64", PTX_SR_CLOCK64},
  {"%globaltimer", PTX_SR_GLOBALTIMER}, {"%smid", PTX_SR_SMID},
  {"%nsmid", PTX_SR_NSMID}, {"%dynamic_smem_size", PTX_SR_DYN_SMEM},
};

/* Adds a label reference to resolve at the end of the function. */
static int add_ref(struct parser *P, uint32_t insn, uint32_t slot) {
  struct label *r;

  if (grow(&P->refs, &P->caprefs, P->nrefs + 1, sizeof(*r)) < 0)
    return nomem(P);
  r = &P->refs[P->nrefs++];
  r->name = P->tok.s;
  r->len = P->tok.len;
  r->index = insn;
  r->slot = slot;
  r->line = P->tok.line;
  return 0;
}

/* An immediate: [-] INT | F32 | F64 | FLOAT. The raw literal kind is kept
 * in |*lit| so that the caller can convert it to the operand's type. */
static int parse_imm(struct parser *P, struct ptx_operand *o, int *lit,
                     double *fval) {
  bool neg = false;
  int rc;

  if (is_punct(P, '-')) {
    neg = true;
    if ((rc = next(P)) < 0)
      return rc;
  }
  *lit = P->tok.kind;
  o->kind = PTX_OPD_IMM;
  switch (P->tok.kind) {
  case PTX_TOK_INT:
    o->imm = (int64_t)(neg ? (uint64_t)0 - P->tok.ival : P->tok.ival);
    break;
  case PTX_TOK_F32:
    o->imm = (int64_t)(P->tok.ival ^ (neg ? 0x80000000u : 0));
    break;
  case PTX_TOK_F64:
    o->imm = (int64_t)(P->tok.ival ^ (neg ? 0x8000000000000000ull : 0));
    break;
  case PTX_TOK_FLOAT:
    *fval = neg ? -P->tok.fval : P->tok.fval;
    break;
  default:
    return perr(P, PTX_E_PARSE, P->tok.line, "bad operand '%.*s'",
                (int)(P->tok.len > 40 ? 40 : P->tok.len), P->tok.s);
  }
  return next(P);
}

/* Converts a float literal operand to the bits of |type|. */
static int fix_imm(struct parser *P, struct ptx_operand *o, int lit,
                   double fval, int type, uint32_t line) {
  if (o->kind != PTX_OPD_IMM)
    return 0;
  /* An integer literal where a float is expected: bits or value? PTX
   * writes floats as 0f/0d; refuse rather than guess (0 is both). */
  if (lit == PTX_TOK_INT && o->imm != 0 &&
      (type == PTX_T_F32 || type == PTX_T_F64))
    return perr(P, PTX_E_UNSUPPORTED, line,
                "integer literal %lld for a .%s operand", (long long)o->imm,
                ptx_type_name(type));
  if (lit == PTX_TOK_FLOAT || lit == PTX_TOK_F32 || lit == PTX_TOK_F64) {
    double d = fval;
    if (lit == PTX_TOK_F32) {
      uint32_t b = (uint32_t)o->imm;
      float f;
      if (type == PTX_T_F32 || ptx_type_size(type) == 4)
        return 0;
      memcpy(&f, &b, 4);
      d = f;
    } else if (lit == PTX_TOK_F64) {
      uint64_t b = (uint64_t)o->imm;
      if (type == PTX_T_F64 || ptx_type_size(type) == 8)
        return 0;
      memcpy(&d, &b, 8);
    }
    if (type == PTX_T_F32) {
      float f = (float)d;
      uint32_t b;
      memcpy(&b, &f, 4);
      o->imm = b;
    } else if (type == PTX_T_F64) {
      uint64_t b;
      memcpy(&b, &d, 8);
      o->imm = (int64_t)b;
    } else {
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "float literal for a .%s operand", ptx_type_name(type));
    }
  }
  return 0;
}

/* One operand (not a vector element list). */
static int parse_operand(struct parser *P, struct ptx_insn *in,
                         uint32_t insn_index, uint32_t slot,
                         struct ptx_operand *o, int *lit, double *fval) {
  int rc;

  memset(o, 0, sizeof(*o));
  *lit = PTX_TOK_INT;
  if (is_punct(P, '!')) {
    o->flags |= PTX_OPF_NEG;
    if ((rc = next(P)) < 0)
      return rc;
  }
  if (is_punct(P, '[')) {
    bool neg = false;
    o->kind = PTX_OPD_MEM;
    o->reg = PTX_NOREG;
    if ((rc = next(P)) < 0)
      return rc;
    if (P->tok.kind == PTX_TOK_WORD) {
      /* registers need not start with '%' (inline assembly's "r", "h") */
      if ((o->reg = find_reg(P, P->tok.s, P->tok.len)) != PTX_NOREG) {
        /* a register */
      } else if (P->tok.s[0] == '%') {
        return perr(P, PTX_E_PARSE, P->tok.line,
                    "undeclared register '%.*s'", (int)P->tok.len, P->tok.s);
      } else {
        int32_t y = psym(P, P->fidx, P->tok.s, P->tok.len);
        if (y < 0)
          return perr(P, PTX_E_PARSE, P->tok.line, "unknown symbol '%.*s'",
                      (int)P->tok.len, P->tok.s);
        o->flags |= PTX_OPF_SYM;
        o->reg = (uint32_t)y;
      }
      if ((rc = next(P)) < 0)
        return rc;
      if (is_punct(P, '+') || is_punct(P, '-')) {
        neg = is_punct(P, '-');
        if ((rc = next(P)) < 0)
          return rc;
        if (is_punct(P, '-')) {
          neg = !neg;
          if ((rc = next(P)) < 0)
            return rc;
        }
        if (P->tok.kind != PTX_TOK_INT)
          return perr(P, PTX_E_PARSE, P->tok.line, "bad address offset");
        o->imm = (int64_t)(neg ? (uint64_t)0 - P->tok.ival : P->tok.ival);
        if ((rc = next(P)) < 0)
          return rc;
      }
    } else if (P->tok.kind == PTX_TOK_INT) {
      o->imm = (int64_t)P->tok.ival;
      if ((rc = next(P)) < 0)
        return rc;
    } else {
      return perr(P, PTX_E_PARSE, P->tok.line, "bad address");
    }
    return expect_punct(P, ']');
  }
  if (P->tok.kind == PTX_TOK_WORD) {
    const char *s = P->tok.s;
    uint32_t n = P->tok.len;
    uint32_t r = find_reg(P, s, n);
    if (r != PTX_NOREG) { /* with or without '%' */
      o->kind = PTX_OPD_REG;
      o->reg = r;
      return next(P);
    }
    if (s[0] == '%') {
      for (size_t i = 0; i < sizeof(sreg_tab) / sizeof(sreg_tab[0]); i++)
        if (mod_is(s, n, sreg_tab[i].name)) {
          o->kind = PTX_OPD_SREG;
          o->sreg = sreg_tab[i].id;
          return next(P);
        }
      /* A name in a declared range's family (%r9 with %r<9>) is a typo;
       * anything else may be a special register we lack. */
      for (uint32_t i = 0; i < P->nregdecl; i++)
        if (P->regs[i].range && n > P->regs[i].len &&
            memcmp(P->regs[i].name, s, P->regs[i].len) == 0 &&
            all_digits(s + P->regs[i].len, n - P->regs[i].len))
          return perr(P, PTX_E_PARSE, P->tok.line,
                      "undeclared register '%.*s'", (int)n, s);
      return perr(P, PTX_E_UNSUPPORTED, P->tok.line,
                  "unknown register '%.*s'", (int)n, s);
    }
    if (mod_is(s, n, "WARP_SZ")) {
      o->kind = PTX_OPD_IMM;
      o->imm = 32;
      return next(P);
    }
    if (mod_is(s, n, "_")) {
      o->kind = PTX_OPD_SINK;
      return next(P);
    }
    {
      int32_t y = psym(P, P->fidx, s, n);
      if (y >= 0) {
        bool neg = false;
        o->kind = PTX_OPD_SYM;
        o->flags |= PTX_OPF_SYM;
        o->reg = (uint32_t)y;
        if ((rc = next(P)) < 0)
          return rc;
        if (is_punct(P, '+') || is_punct(P, '-')) {
          neg = is_punct(P, '-');
          if ((rc = next(P)) < 0)
            return rc;
          if (P->tok.kind != PTX_TOK_INT)
            return perr(P, PTX_E_PARSE, P->tok.line, "bad symbol offset");
          o->imm = (int64_t)(neg ? (uint64_t)0 - P->tok.ival : P->tok.ival);
          return next(P);
        }
        return 0;
      }
    }
    /* A label (maybe defined later) or a function name. */
    o->kind = PTX_OPD_LABEL;
    if (in->op != PTX_OP_CALL &&
        (rc = add_ref(P, insn_index, slot)) < 0)
      return rc;
    return next(P);
  }
  return parse_imm(P, o, lit, fval);
}

/* "{a, b, ...}" into the function's vector pool. */
static int parse_vec(struct parser *P, struct ptx_insn *in, uint32_t idx,
                     struct ptx_operand *o) {
  struct ptx_func *f = &P->m->funcs[P->fidx];
  uint32_t first = f->nvec, n = 0;
  int rc;

  if ((rc = next(P)) < 0)
    return rc;
  for (;;) {
    struct ptx_operand e;
    int lit;
    double fval = 0;
    if ((rc = parse_operand(P, in, idx, PTX_MAX_OPS, &e, &lit, &fval)) < 0)
      return rc;
    if (e.kind != PTX_OPD_REG && e.kind != PTX_OPD_IMM &&
        e.kind != PTX_OPD_SINK)
      return perr(P, PTX_E_UNSUPPORTED, P->tok.line,
                  "unsupported vector element");
    if ((rc = fix_imm(P, &e, lit, fval, in->type, P->tok.line)) < 0)
      return rc;
    if (grow(&f->vec, &P->capvec, f->nvec + 1, sizeof(e)) < 0)
      return nomem(P);
    f->vec[f->nvec++] = e;
    if (++n > 8)
      return perr(P, PTX_E_UNSUPPORTED, P->tok.line, "vector too long");
    if (is_punct(P, '}'))
      break;
    if ((rc = expect_punct(P, ',')) < 0)
      return rc;
  }
  memset(o, 0, sizeof(*o));
  o->kind = PTX_OPD_VEC;
  o->reg = first;
  o->count = (uint8_t)n;
  return next(P);
}

/* "(sym, ...)" of a call into the function's vector pool as symbol
 * elements (reg: the symbol index). */
static int parse_call_list(struct parser *P, struct ptx_operand *o,
                           uint32_t line) {
  struct ptx_func *f = &P->m->funcs[P->fidx];
  uint32_t first = f->nvec, n = 0;
  int rc;

  if ((rc = expect_punct(P, '(')) < 0)
    return rc;
  while (!is_punct(P, ')')) {
    struct ptx_operand e;
    int32_t y;
    if (P->tok.kind != PTX_TOK_WORD ||
        (y = psym(P, P->fidx, P->tok.s, P->tok.len)) < 0 ||
        P->m->syms[y].space != PTX_SP_PARAM)
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "call argument '%.*s' is not a .param variable",
                  (int)(P->tok.len > 40 ? 40 : P->tok.len), P->tok.s);
    memset(&e, 0, sizeof(e));
    e.kind = PTX_OPD_SYM;
    e.reg = (uint32_t)y;
    if (grow(&f->vec, &P->capvec, f->nvec + 1, sizeof(e)) < 0)
      return nomem(P);
    f->vec[f->nvec++] = e;
    if (++n > 255)
      return perr(P, PTX_E_UNSUPPORTED, line, "too many call arguments");
    if ((rc = next(P)) < 0)
      return rc;
    if (is_punct(P, ',') && (rc = next(P)) < 0)
      return rc;
  }
  memset(o, 0, sizeof(*o));
  o->kind = PTX_OPD_VEC;
  o->reg = first;
  o->count = (uint8_t)n;
  return next(P);
}

/* call[.uni] [(ret),] func [, (args)] ;  Indirect calls (through a
 * register, with a prototype) are refused. */
static int parse_call(struct parser *P, struct ptx_insn *in, uint32_t line) {
  int32_t callee;
  int rc;

  in->nops = 3;
  if (is_punct(P, '(')) {
    if ((rc = parse_call_list(P, &in->ops[0], line)) < 0 ||
        (rc = expect_punct(P, ',')) < 0)
      return rc;
    if (in->ops[0].count > 1)
      return perr(P, PTX_E_UNSUPPORTED, line, "several return values");
  }
  if (P->tok.kind != PTX_TOK_WORD ||
      (callee = pfunc(P, P->tok.s, P->tok.len)) < 0)
    return perr(P, PTX_E_UNSUPPORTED, line,
                "unsupported call target '%.*s' (indirect calls are not "
                "implemented)",
                (int)(P->tok.len > 40 ? 40 : P->tok.len), P->tok.s);
  in->ops[1].kind = PTX_OPD_LABEL;
  in->ops[1].reg = (uint32_t)callee;
  if ((rc = next(P)) < 0)
    return rc;
  if (is_punct(P, ',')) {
    if ((rc = next(P)) < 0 || (rc = parse_call_list(P, &in->ops[2], line)) < 0)
      return rc;
  }
  if (!is_punct(P, ';'))
    return perr(P, PTX_E_UNSUPPORTED, line,
                "unsupported call form (prototype or extra operands)");
  return next(P);
}

/* [@[!]%p] opcode.mods operands ; */
static int parse_insn(struct parser *P) {
  struct ptx_func *f = &P->m->funcs[P->fidx];
  struct ptx_insn *in;
  const char *text = P->tok.s, *s, *dot;
  uint32_t line = P->tok.line, idx = f->ninsns, n;
  int lits[PTX_MAX_OPS];
  double fvals[PTX_MAX_OPS];
  char why[160];
  int rc;

  if (grow(&f->insns, &P->capinsns, f->ninsns + 1, sizeof(*in)) < 0)
    return nomem(P);
  in = &f->insns[idx];
  memset(in, 0, sizeof(*in));
  in->line = line;
  in->vec = 1;
  if (is_punct(P, '@')) {
    if ((rc = next(P)) < 0)
      return rc;
    if (is_punct(P, '!')) {
      in->flags |= PTX_F_GUARDNEG;
      if ((rc = next(P)) < 0)
        return rc;
    }
    if (P->tok.kind != PTX_TOK_WORD ||
        (in->guard = find_reg(P, P->tok.s, P->tok.len)) == PTX_NOREG)
      return perr(P, PTX_E_PARSE, line, "bad guard predicate '%.*s'",
                  (int)P->tok.len, P->tok.s);
    in->flags |= PTX_F_GUARD;
    if ((rc = next(P)) < 0)
      return rc;
  }
  if (P->tok.kind != PTX_TOK_WORD)
    return perr(P, PTX_E_PARSE, line, "expected an instruction");
  s = P->tok.s;
  n = P->tok.len;
  dot = memchr(s, '.', n);
  {
    size_t bn = dot ? (size_t)(dot - s) : n;
    for (size_t i = 0; i < sizeof(op_tab) / sizeof(op_tab[0]); i++)
      if (mod_is(s, bn, op_tab[i].name))
        in->op = op_tab[i].op;
  }
  if (in->op == PTX_OP_INVALID) {
    /* An instruction of the PTX ISA that the engine lacks is refused as
     * unsupported; a word that is no PTX instruction at all is malformed
     * PTX, as ptxas would say. */
    if (!ptx_isa_opcode(s, dot ? (size_t)(dot - s) : n))
      return perr(P, PTX_E_PARSE, line, "'%.*s' is not a PTX instruction",
                  (int)(n > 60 ? 60 : n), s);
    goto unsupported_text;
  }
  if (mod_is(s, dot ? (size_t)(dot - s) : n, "addc") ||
      mod_is(s, dot ? (size_t)(dot - s) : n, "subc") ||
      mod_is(s, dot ? (size_t)(dot - s) : n, "madc"))
    in->flags |= PTX_F_CARRYIN;
  while (dot) {
    const char *ms = dot + 1, *me;
    dot = memchr(ms, '.', (size_t)(s + n - ms));
    me = dot ? dot : s + n;
    if (decode_mod(in, ms, (size_t)(me - ms)) < 0)
      goto unsupported_text;
  }
  if ((rc = next(P)) < 0)
    return rc;
  if (in->op == PTX_OP_CALL) {
    if ((rc = parse_call(P, in, line)) < 0)
      return rc;
    goto decoded;
  }
  while (!is_punct(P, ';')) {
    struct ptx_operand *o;
    if (in->nops >= PTX_MAX_OPS)
      return perr(P, PTX_E_UNSUPPORTED, line, "too many operands");
    o = &in->ops[in->nops];
    lits[in->nops] = PTX_TOK_INT;
    fvals[in->nops] = 0;
    if (is_punct(P, '{')) {
      if ((rc = parse_vec(P, in, idx, o)) < 0)
        return rc;
    } else if ((rc = parse_operand(P, in, idx, in->nops, o, &lits[in->nops],
                                   &fvals[in->nops])) < 0) {
      return rc;
    }
    in->nops++;
    if (is_punct(P, '|') && in->nops == 1) {
      in->flags |= PTX_F_DUAL;
      if ((rc = next(P)) < 0)
        return rc;
      continue;
    }
    if (is_punct(P, ';'))
      break;
    if ((rc = expect_punct(P, ',')) < 0)
      return rc;
  }
  if ((rc = next(P)) < 0)
    return rc;
decoded:
  /* setp, shfl and match always have the second destination in ops[1]. */
  if ((in->op == PTX_OP_SETP || in->op == PTX_OP_SHFL ||
       in->op == PTX_OP_MATCH) &&
      !(in->flags & PTX_F_DUAL) && in->nops >= 1) {
    if (in->nops >= PTX_MAX_OPS)
      return perr(P, PTX_E_UNSUPPORTED, line, "too many operands");
    memmove(&in->ops[2], &in->ops[1],
            sizeof(in->ops[0]) * (size_t)(in->nops - 1));
    memmove(&lits[2], &lits[1], sizeof(lits[0]) * (size_t)(in->nops - 1));
    memmove(&fvals[2], &fvals[1], sizeof(fvals[0]) * (size_t)(in->nops - 1));
    memset(&in->ops[1], 0, sizeof(in->ops[1]));
    in->nops++;
  } else if ((in->flags & PTX_F_DUAL) && in->op != PTX_OP_SETP &&
             in->op != PTX_OP_SHFL && in->op != PTX_OP_MATCH) {
    goto unsupported_text;
  }
  for (unsigned i = 0; i < in->nops; i++) {
    int t = in->type;
    /* the sources of cvt (two for cvt.f16x2.f32) and set have the second
     * type */
    if ((in->op == PTX_OP_CVT || in->op == PTX_OP_SET) && i >= 1 && i <= 2)
      t = in->type2;
    if ((rc = fix_imm(P, &in->ops[i], lits[i], fvals[i], t, line)) < 0)
      return rc;
  }
  why[0] = 0;
  if (ptx_exec_supported(in, why, sizeof(why)) < 0) {
    const char *e = P->tok.s;
    /* the text of the statement, up to its ';' */
    while (e > text && e[-1] != ';')
      e--;
    if (e <= text)
      e = text + n;
    return perr(P, PTX_E_UNSUPPORTED, line,
                "unsupported instruction '%.*s'%s%s",
                (int)(e - text > 100 ? 100 : e - text), text,
                why[0] ? ": " : "", why);
  }
  f->ninsns++;
  return 0;
unsupported_text:
  return perr(P, PTX_E_UNSUPPORTED, line, "unsupported instruction '%.*s'",
              (int)(n > 100 ? 100 : n), s);
}

/* ---- functions ------------------------------------------------------ */

/* ( .param [.align N] .type [.ptr ...] name [ [N] ] , ... ) */
static int parse_params(struct parser *P, struct ptx_func *f,
                        int32_t fidx, bool is_ret) {
  uint32_t off = 0;
  int rc;

  if ((rc = expect_punct(P, '(')) < 0)
    return rc;
  while (!is_punct(P, ')')) {
    uint32_t align = 0, line = P->tok.line, idx;
    int type = PTX_T_NONE;
    bool ptr = false;
    uint64_t count = 1, v = 0;
    struct ptx_param *pp;

    if (!tok_is(&P->tok, ".param"))
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "unsupported parameter '%.*s' (only .param)",
                  (int)P->tok.len, P->tok.s);
    if ((rc = next(P)) < 0)
      return rc;
    while (P->tok.kind == PTX_TOK_WORD && P->tok.s[0] == '.') {
      if (tok_is(&P->tok, ".align")) {
        if ((rc = next(P)) < 0 || (rc = expect_int(P, &v)) < 0)
          return rc;
        if (v == 0 || v > 4096 || (v & (v - 1)))
          return perr(P, PTX_E_PARSE, line, "bad alignment");
        if (!ptr) /* after .ptr it is the pointee's alignment */
          align = (uint32_t)v;
        continue;
      }
      if (tok_is(&P->tok, ".ptr")) {
        ptr = true;
      } else if (ptr && (tok_is(&P->tok, ".global") ||
                         tok_is(&P->tok, ".shared") ||
                         tok_is(&P->tok, ".local") ||
                         tok_is(&P->tok, ".const"))) {
        /* the pointee's space */
      } else {
        type = type_from(P->tok.s + 1, P->tok.len - 1);
        if (type == PTX_T_NONE || type == PTX_T_PRED)
          return perr(P, PTX_E_UNSUPPORTED, line,
                      "unsupported parameter attribute '%.*s'",
                      (int)P->tok.len, P->tok.s);
      }
      if ((rc = next(P)) < 0)
        return rc;
    }
    if (type == PTX_T_NONE || P->tok.kind != PTX_TOK_WORD)
      return perr(P, PTX_E_PARSE, line, "bad parameter declaration");
    if (f->nparams >= MAX_PARAMS)
      return perr(P, PTX_E_UNSUPPORTED, line, "too many parameters");
    {
      const char *name = P->tok.s;
      uint32_t nlen = P->tok.len;
      uint64_t size, end;
      if ((rc = next(P)) < 0)
        return rc;
      if (is_punct(P, '[')) {
        if ((rc = next(P)) < 0 || (rc = expect_int(P, &count)) < 0 ||
            (rc = expect_punct(P, ']')) < 0)
          return rc;
      }
      if (!align)
        align = ptx_type_size(type);
      size = count * ptx_type_size(type);
      off = (off + align - 1) & ~(align - 1);
      end = (uint64_t)off + size;
      if (count == 0 || size > 65536 || end > 65536)
        return perr(P, PTX_E_UNSUPPORTED, line,
                    "parameter '%.*s' too large", (int)nlen, name);
      if (is_ret) {
        /* return values of a .func: a symbol, not an argument */
        if ((rc = add_sym(P, name, nlen, PTX_SP_PARAM, type, align, size,
                          false, fidx, line, &idx)) < 0)
          return rc;
        if (f->ret_sym >= 0)
          return perr(P, PTX_E_UNSUPPORTED, line, "several return values");
        f->ret_sym = (int32_t)idx;
        off = (uint32_t)end;
      } else {
        uint32_t cap = f->nparams;
        if ((rc = add_sym(P, name, nlen, PTX_SP_PARAM, type, align, size,
                          false, fidx, line, &idx)) < 0)
          return rc;
        P->m->syms[idx].addr = off;
        /* exact-size growth: parameter lists are short */
        if (grow(&f->params, &cap, f->nparams + 1, sizeof(*pp)) < 0)
          return nomem(P);
        pp = &f->params[f->nparams++];
        if (!(pp->name = dupn(name, nlen)))
          return nomem(P);
        pp->info.offset = off;
        pp->info.size = (uint32_t)size;
        pp->info.align = align;
        pp->sym = idx;
        off = (uint32_t)end;
        f->params_size = off;
      }
    }
    if (is_punct(P, ','))
      if ((rc = next(P)) < 0)
        return rc;
  }
  return next(P);
}

static int label_cmp(const void *a, const void *b) {
  const struct label *x = a, *y = b;
  uint32_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Points every branch at its label: the definitions sorted by name, each
 * reference found by binary search. */
static int resolve_labels(struct parser *P, struct ptx_func *f) {
  if (P->ndefs > 1)
    qsort(P->defs, P->ndefs, sizeof(*P->defs), label_cmp);
  for (uint32_t j = 1; j < P->ndefs; j++)
    if (label_cmp(&P->defs[j - 1], &P->defs[j]) == 0)
      return perr(P, PTX_E_PARSE, P->defs[j].line,
                  "label '%.*s' defined twice", (int)P->defs[j].len,
                  P->defs[j].name);
  for (uint32_t i = 0; i < P->nrefs; i++) {
    struct label *r = &P->refs[i];
    struct ptx_operand *o;
    const struct label *d =
        P->ndefs ? bsearch(r, P->defs, P->ndefs, sizeof(*P->defs), label_cmp)
                 : NULL;
    uint32_t j = d ? (uint32_t)(d - P->defs) : P->ndefs;
    if (j == P->ndefs)
      return perr(P, PTX_E_PARSE, r->line, "unknown label or symbol '%.*s'",
                  (int)r->len, r->name);
    if (r->index >= f->ninsns || r->slot >= PTX_MAX_OPS)
      return perr(P, PTX_E_PARSE, r->line, "misplaced label '%.*s'",
                  (int)r->len, r->name);
    o = &f->insns[r->index].ops[r->slot];
    o->reg = P->defs[j].index;
    if (f->insns[r->index].op != PTX_OP_BRA)
      return perr(P, PTX_E_UNSUPPORTED, r->line,
                  "label '%.*s' used as a value", (int)r->len, r->name);
  }
  return 0;
}

/* The body after '{' through the matching '}'. */
static int parse_body(struct parser *P, struct ptx_func *f) {
  int rc;

  P->depth = 1;
  P->nregdecl = P->ndefs = P->nrefs = P->nscoped = 0;
  P->capinsns = P->capvec = 0;
  while (P->depth > 0) {
    const struct ptx_token *t = &P->tok;
    if (t->kind == PTX_TOK_EOF)
      return perr(P, PTX_E_PARSE, t->line, "missing '}' in '%s'", f->name);
    if (is_punct(P, '{')) {
      P->depth++;
      if ((rc = next(P)) < 0)
        return rc;
    } else if (is_punct(P, '}')) {
      while (P->nregdecl > 0 && P->regs[P->nregdecl - 1].depth == P->depth)
        P->nregdecl--;
      while (P->nscoped > 0 &&
             P->m->syms[P->scoped[P->nscoped - 1]].depth >= P->depth) {
        uint32_t y = P->scoped[--P->nscoped];
        P->m->syms[y].hidden = true;
        name_index_remove(&P->syms, y, P->m->syms[y].name);
      }
      P->depth--;
      if ((rc = next(P)) < 0)
        return rc;
    } else if (tok_is(t, ".reg")) {
      if ((rc = next(P)) < 0 || (rc = parse_reg_decl(P, PTX_T_NONE)) < 0)
        return rc;
    } else if (t->kind == PTX_TOK_WORD && t->len > 5 &&
               memcmp(t->s, ".reg.", 5) == 0) {
      /* ".reg.b16 hl, hu;" as cuda_fp16.hpp's inline assembly writes it */
      int type = type_from(t->s + 5, t->len - 5);
      if (type == PTX_T_NONE)
        return perr(P, PTX_E_UNSUPPORTED, t->line,
                    "unsupported register declaration '%.*s'", (int)t->len,
                    t->s);
      if ((rc = next(P)) < 0 || (rc = parse_reg_decl(P, type)) < 0)
        return rc;
    } else if (tok_is(t, ".local") || tok_is(t, ".shared") ||
               tok_is(t, ".global") || tok_is(t, ".const") ||
               tok_is(t, ".param")) {
      int sp = tok_is(t, ".local") ? PTX_SP_LOCAL
               : tok_is(t, ".shared") ? PTX_SP_SHARED
               : tok_is(t, ".global") ? PTX_SP_GLOBAL
               : tok_is(t, ".const") ? PTX_SP_CONST : PTX_SP_PARAM;
      if ((rc = next(P)) < 0 || (rc = parse_var(P, sp, false, P->fidx)) < 0)
        return rc;
    } else if (tok_is(t, ".pragma")) {
      if ((rc = skip_statement(P)) < 0)
        return rc;
    } else if (tok_is(t, ".loc") || tok_is(t, ".file")) {
      if ((rc = skip_line(P)) < 0)
        return rc;
    } else if (t->kind == PTX_TOK_WORD && t->s[0] != '.' && t->s[0] != '%') {
      /* a label "name:", or an instruction */
      struct ptx_lexer save = P->lx;
      struct ptx_token cur = P->tok;
      if ((rc = next(P)) < 0)
        return rc;
      if (is_punct(P, ':')) {
        struct label *d;
        if (grow(&P->defs, &P->capdefs, P->ndefs + 1, sizeof(*d)) < 0)
          return nomem(P);
        d = &P->defs[P->ndefs++];
        d->name = cur.s;
        d->len = cur.len;
        d->index = f->ninsns;
        d->line = cur.line;
        if ((rc = next(P)) < 0)
          return rc;
        continue;
      }
      P->lx = save;
      P->tok = cur;
      if ((rc = parse_insn(P)) < 0)
        return rc;
    } else if (is_punct(P, '@')) {
      if ((rc = parse_insn(P)) < 0)
        return rc;
    } else {
      return perr(P, PTX_E_UNSUPPORTED, t->line,
                  "unsupported statement '%.*s'",
                  (int)(t->len > 40 ? 40 : t->len), t->s);
    }
  }
  /* An implicit ret at the end: a label after the last instruction has a
   * target, and no function runs on into the next one's code. */
  {
    struct ptx_insn *in;
    if (grow(&f->insns, &P->capinsns, f->ninsns + 1, sizeof(*in)) < 0)
      return nomem(P);
    in = &f->insns[f->ninsns++];
    memset(in, 0, sizeof(*in));
    in->op = PTX_OP_RET;
    in->vec = 1;
    in->line = P->tok.line;
  }
  return resolve_labels(P, f);
}

/* .entry / .func after the keyword. */
static int parse_func(struct parser *P, bool is_entry, uint32_t line) {
  struct ptx_func *f;
  int32_t fidx, old;
  bool has_ret = false;
  struct ptx_lexer ret_lx = P->lx;
  struct ptx_token ret_tok = P->tok;
  int rc;

  if (!is_entry && is_punct(P, '(')) {
    /* Return parameters come before the name: remember where they are,
     * skip them, and parse them into symbols once the function exists. */
    has_ret = true;
    ret_lx = P->lx;
    ret_tok = P->tok;
    while (!is_punct(P, ')')) {
      if (P->tok.kind == PTX_TOK_EOF)
        return perr(P, PTX_E_PARSE, line, "missing ')'");
      if ((rc = next(P)) < 0)
        return rc;
    }
    if ((rc = next(P)) < 0)
      return rc;
  }
  if (P->tok.kind != PTX_TOK_WORD)
    return perr(P, PTX_E_PARSE, line, "expected a function name");
  old = pfunc(P, P->tok.s, P->tok.len);
  if (old >= 0) {
    fidx = old;
    if (P->m->funcs[old].defined)
      return perr(P, PTX_E_PARSE, line, "'%s' defined twice",
                  P->m->funcs[old].name);
  } else {
    if (grow(&P->m->funcs, &P->capfuncs, P->m->nfuncs + 1, sizeof(*f)) < 0)
      return nomem(P);
    fidx = (int32_t)P->m->nfuncs++;
    f = &P->m->funcs[fidx];
    memset(f, 0, sizeof(*f));
    f->mod = P->m;
    f->ret_sym = -1;
    f->unit = P->unit;
    f->linkage = P->linkage;
    if (!(f->name = dupn(P->tok.s, P->tok.len)) ||
        name_index_add(&P->funcs, (uint32_t)fidx, f->name, func_name,
                       P->m) < 0)
      return nomem(P);
  }
  f = &P->m->funcs[fidx];
  f->is_entry = is_entry;
  f->line = line;
  P->fidx = fidx;
  P->depth = 0;
  if ((rc = next(P)) < 0)
    return rc;
  if (old >= 0) {
    /* a definition after a prototype: parameters again */
    for (uint32_t i = 0; i < f->nparams; i++)
      free(f->params[i].name);
    free(f->params);
    f->params = NULL;
    f->nparams = 0;
    f->params_size = 0;
    f->ret_sym = -1;
    for (uint32_t i = 0; i < P->m->nsyms; i++)
      if (P->m->syms[i].func == fidx)
        P->m->syms[i].func = -2; /* hidden */
  }
  if (has_ret) {
    struct ptx_lexer after_lx = P->lx;
    struct ptx_token after_tok = P->tok;
    P->lx = ret_lx;
    P->tok = ret_tok;
    if ((rc = parse_params(P, f, fidx, true)) < 0)
      return rc;
    P->lx = after_lx;
    P->tok = after_tok;
  }
  if (is_punct(P, '(')) {
    if ((rc = parse_params(P, f, fidx, false)) < 0)
      return rc;
  }
  /* performance directives */
  while (P->tok.kind == PTX_TOK_WORD && P->tok.s[0] == '.') {
    if (tok_is(&P->tok, ".noreturn")) {
      if ((rc = next(P)) < 0)
        return rc;
      continue;
    }
    if (tok_is(&P->tok, ".pragma")) {
      if ((rc = skip_statement(P)) < 0)
        return rc;
      continue;
    }
    if (tok_is(&P->tok, ".maxntid") || tok_is(&P->tok, ".reqntid") ||
        tok_is(&P->tok, ".minnctapersm") || tok_is(&P->tok, ".maxnctapersm") ||
        tok_is(&P->tok, ".maxnreg")) {
      bool ntid = tok_is(&P->tok, ".maxntid") || tok_is(&P->tok, ".reqntid");
      bool req = tok_is(&P->tok, ".reqntid");
      uint64_t prod = 1;
      unsigned k = 0;
      if ((rc = next(P)) < 0)
        return rc;
      while (P->tok.kind == PTX_TOK_INT || is_punct(P, ',')) {
        if (P->tok.kind == PTX_TOK_INT) {
          if (P->tok.ival == 0 || P->tok.ival > PTX_MAX_BLOCK_THREADS)
            prod = (uint64_t)PTX_MAX_BLOCK_THREADS + 1;
          else
            prod *= P->tok.ival;
          if (req && k < 3)
            f->reqntid[k] = (uint32_t)P->tok.ival;
          k++;
          if (prod > PTX_MAX_BLOCK_THREADS)
            prod = (uint64_t)PTX_MAX_BLOCK_THREADS + 1;
        }
        if ((rc = next(P)) < 0)
          return rc;
      }
      if (ntid) {
        if (k == 0 || k > 3 || prod > PTX_MAX_BLOCK_THREADS)
          return perr(P, PTX_E_UNSUPPORTED, line, "bad thread count");
        if (!f->maxntid || prod < f->maxntid)
          f->maxntid = (uint32_t)prod;
        if (req)
          for (; k < 3; k++)
            f->reqntid[k] = 1;
      }
      continue;
    }
    return perr(P, PTX_E_UNSUPPORTED, P->tok.line,
                "unsupported function directive '%.*s'", (int)P->tok.len,
                P->tok.s);
  }
  if (is_punct(P, ';')) /* a prototype */
    return next(P);
  if ((rc = expect_punct(P, '{')) < 0)
    return rc;
  /* The definition's own directive decides; one declared .extern or
   * .visible before and defined here without one is still visible. */
  if (P->linkage != PTX_LINK_INTERNAL)
    f->linkage = P->linkage == PTX_LINK_EXTERN ? PTX_LINK_VISIBLE
                                               : P->linkage;
  else if (f->linkage == PTX_LINK_EXTERN)
    f->linkage = PTX_LINK_VISIBLE;
  f->defined = true;
  rc = parse_body(P, f);
  P->fidx = -1;
  return rc;
}

/* ---- link ----------------------------------------------------------- */

static uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

/* Is symbol |y| a formal parameter of kernel |f|? */
static bool is_kernel_param(const struct ptx_func *f, uint32_t y) {
  if (!f->is_entry)
    return false;
  for (uint32_t i = 0; i < f->nparams; i++)
    if (f->params[i].sym == y)
      return true;
  return false;
}

/* The PTX_BUILTIN_* that the body-less function |g| is, by its name and
 * parameters, or PTX_BUILTIN_NONE. */
static uint8_t builtin_of(const struct ptx_module *m,
                          const struct ptx_func *g) {
  static const uint32_t assert_sizes[] = {8, 8, 4, 8, 8};

  if (strcmp(g->name, "vprintf") == 0 && g->nparams == 2 &&
      g->params[0].info.size == 8 && g->params[1].info.size == 8 &&
      (g->ret_sym < 0 || m->syms[g->ret_sym].size == 4))
    return PTX_BUILTIN_VPRINTF;
  if (strcmp(g->name, "__assertfail") == 0 && g->nparams == 5 &&
      g->ret_sym < 0) {
    for (unsigned i = 0; i < 5; i++)
      if (g->params[i].info.size != assert_sizes[i])
        return PTX_BUILTIN_NONE;
    return PTX_BUILTIN_ASSERTFAIL;
  }
  return PTX_BUILTIN_NONE;
}

/* Walks the call graph below |f|: refuses recursion, calls to functions
 * without a body and chains deeper than PTX_MAX_CALL_DEPTH; sets
 * call_depth, and grows nregs / local_size to cover every callee. */
static int walk_calls(struct parser *P, uint32_t fi, uint32_t level) {
  struct ptx_module *m = P->m;
  struct ptx_func *f = &m->funcs[fi];
  int rc;

  if (f->visit == 2)
    return 0;
  if (f->visit == 1)
    return perr(P, PTX_E_UNSUPPORTED, f->line,
                "recursive call of '%s' is not implemented", f->name);
  if (level > PTX_MAX_CALL_DEPTH)
    return perr(P, PTX_E_UNSUPPORTED, f->line, "calls nested too deeply");
  f->visit = 1;
  for (uint32_t k = 0; k < f->ninsns; k++) {
    const struct ptx_insn *in = &m->code[f->code_base + k];
    struct ptx_func *g;
    if (in->op != PTX_OP_CALL)
      continue;
    g = &m->funcs[in->ops[1].reg];
    if (!g->defined && !g->builtin && !(g->builtin = builtin_of(m, g)))
      return perr(P, PTX_E_UNSUPPORTED, in->line,
                  "call of '%s', which has no body here%s", g->name,
                  strcmp(g->name, "malloc") == 0 ||
                          strcmp(g->name, "free") == 0
                      ? " (device malloc/free are not implemented)" : "");
    if (g->builtin)
      continue;
    if (g->is_entry)
      return perr(P, PTX_E_UNSUPPORTED, in->line, "call of a kernel");
    if ((rc = walk_calls(P, in->ops[1].reg, level + 1)) < 0)
      return rc;
    if (g->call_depth + 1 > f->call_depth)
      f->call_depth = g->call_depth + 1;
    if (g->nregs > f->nregs)
      f->nregs = g->nregs;
    if (g->local_size > f->local_size)
      f->local_size = g->local_size;
  }
  if (f->call_depth > PTX_MAX_CALL_DEPTH)
    return perr(P, PTX_E_UNSUPPORTED, f->line, "calls nested too deeply");
  f->visit = 2;
  return 0;
}

/* Resolves a symbol operand of function |f| to its address. */
static uint64_t sym_addr(const struct ptx_module *m, const struct ptx_func *f,
                         uint32_t y) {
  return m->syms[y].is_extern ? f->dyn_shared_base : m->syms[y].addr;
}

/* Lays out memory, registers and code once the whole module is parsed:
 *  - shared: module-scope variables from 0, then each kernel's own; the
 *    .extern dynamic array after the largest kernel's, so that every
 *    function finds it at the same offset;
 *  - local: kernels from 0 (they never run together), then every .func
 *    in its own range; .param variables other than kernel parameters
 *    (call arguments, .func parameters and return values) live there too;
 *  - registers: kernels from slot 0, every .func in its own range, so a
 *    call needs no register frames (recursion is refused);
 *  - code: all functions in one array, PCs module-wide. */
static int link_module(struct parser *P) {
  struct ptx_module *m = P->m;
  uint64_t off = 0, kshared = 0, klocal = 0, kregs = 0, lbase, rbase;
  uint64_t ncode = 0, nvec = 0, csize = 0;
  uint32_t dalign = 16, dyn_base;

  for (uint32_t i = 0; i < m->nsyms; i++) {
    struct ptx_symbol *y = &m->syms[i];
    if (y->func == -2 || y->alias >= 0)
      continue; /* a prototype's parameters; a declaration of another
                   unit's variable (placed below) */
    if (y->space == PTX_SP_GLOBAL || y->space == PTX_SP_CONST) {
      if (y->space == PTX_SP_CONST && y->func == -1)
        csize = align_up(csize, y->align ? y->align : 1) + y->size;
      if (!y->data && !(y->data = calloc(1, y->size ? y->size : 1)))
        return nomem(P);
      y->addr = (uint64_t)(uintptr_t)y->data;
      if (m->gops.alloc) {
        uint64_t addr = 0;
        void *host = NULL;
        if (m->gops.alloc(m->gops.opaque, y->size ? y->size : 1,
                          y->align ? y->align : 1, &addr, &host) < 0 ||
            !host)
          return perr(P, PTX_E_NOMEM, 0,
                      "no device memory for variable '%s'", y->name);
        memcpy(host, y->data, y->size);
        free(y->data);
        y->data = host;
        y->addr = addr;
        y->from_gops = true;
      }
    } else if (y->space == PTX_SP_SHARED && y->is_extern) {
      if (y->align > dalign)
        dalign = y->align;
    } else if (y->space == PTX_SP_SHARED &&
               (y->func == -1 || !m->funcs[y->func].is_entry)) {
      /* A .func's .shared variable is one per block, like a module's: it
       * sits with them, so every kernel that calls the .func finds it. */
      if (off + y->align + y->size > PTX_MAX_SHARED)
        return perr(P, PTX_E_UNSUPPORTED, 0, "too much shared memory");
      off = align_up(off, y->align);
      y->addr = off;
      off += y->size;
    }
  }
  if (off > PTX_MAX_SHARED)
    return perr(P, PTX_E_UNSUPPORTED, 0, "too much shared memory");
  /* A .extern declaration resolved by link_units() is its definition's
   * address and has no bytes of its own (so no lookup by address finds
   * it). */
  for (uint32_t i = 0; i < m->nsyms; i++) {
    struct ptx_symbol *y = &m->syms[i];
    if (y->alias < 0)
      continue;
    free(y->data);
    y->data = NULL;
    y->size = 0;
    y->addr = m->syms[y->alias].addr;
  }
  m->module_shared = (uint32_t)off;
  m->const_size = csize > UINT32_MAX ? UINT32_MAX : (uint32_t)csize;
  kshared = off;
  /* One pass over the symbols, each function's running offsets kept in
   * its shared_size and own_local. */
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    m->funcs[fi].shared_size = m->module_shared;
    m->funcs[fi].own_local = 0;
  }
  for (uint32_t i = 0; i < m->nsyms; i++) {
    struct ptx_symbol *y = &m->syms[i];
    struct ptx_func *f;
    uint64_t at;
    if (y->func < 0)
      continue;
    f = &m->funcs[y->func];
    if (y->space == PTX_SP_SHARED && !y->is_extern) {
      if (!f->is_entry)
        continue; /* placed with the module's, above */
      at = align_up(f->shared_size, y->align);
      if (at + y->size > PTX_MAX_SHARED)
        return perr(P, PTX_E_UNSUPPORTED, f->line,
                    "too much shared memory in '%s'", f->name);
      y->addr = at;
      f->shared_size = (uint32_t)(at + y->size);
    } else if (y->space == PTX_SP_LOCAL ||
               (y->space == PTX_SP_PARAM && !is_kernel_param(f, i))) {
      y->space = PTX_SP_LOCAL;
      at = align_up(f->own_local, y->align ? y->align : 1);
      if (at + y->size > PTX_MAX_SHARED)
        return perr(P, PTX_E_UNSUPPORTED, f->line,
                    "too much local memory in '%s'", f->name);
      y->addr = at;
      f->own_local = (uint32_t)(at + y->size);
    }
  }
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    struct ptx_func *f = &m->funcs[fi];
    f->own_local = (uint32_t)align_up(f->own_local, 16);
    f->own_regs = f->nregs;
    if (f->is_entry) {
      kshared = f->shared_size > kshared ? f->shared_size : kshared;
      klocal = f->own_local > klocal ? f->own_local : klocal;
      kregs = f->nregs > kregs ? f->nregs : kregs;
    }
    ncode += f->ninsns;
    nvec += f->nvec;
  }
  dyn_base = (uint32_t)align_up(kshared, dalign);
  if (dyn_base > PTX_MAX_SHARED)
    return perr(P, PTX_E_UNSUPPORTED, 0, "too much shared memory");
  lbase = klocal;
  rbase = kregs;
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    struct ptx_func *f = &m->funcs[fi];
    f->dyn_shared_base = dyn_base;
    if (f->is_entry)
      continue;
    f->local_base = (uint32_t)lbase;
    f->reg_base = (uint32_t)rbase;
    lbase += f->own_local;
    rbase += f->own_regs;
    if (lbase > PTX_MAX_SHARED || rbase > 4 * 16384u)
      return perr(P, PTX_E_UNSUPPORTED, f->line,
                  "functions need too many registers or too much local "
                  "memory");
  }
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].func >= 0 && m->syms[i].space == PTX_SP_LOCAL)
      m->syms[i].addr += m->funcs[m->syms[i].func].local_base;
  if (ncode > UINT32_MAX / 2 || nvec > UINT32_MAX / 2)
    return perr(P, PTX_E_UNSUPPORTED, 0, "module too large");
  m->code = calloc(ncode ? ncode : 1, sizeof(*m->code));
  m->vec = calloc(nvec ? nvec : 1, sizeof(*m->vec));
  if (!m->code || !m->vec)
    return nomem(P);
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    struct ptx_func *f = &m->funcs[fi];
    f->code_base = m->ncode;
    f->vec_base = m->nvec;
    if (f->ninsns)
      memcpy(&m->code[m->ncode], f->insns, f->ninsns * sizeof(*f->insns));
    if (f->nvec)
      memcpy(&m->vec[m->nvec], f->vec, f->nvec * sizeof(*f->vec));
    m->ncode += f->ninsns;
    m->nvec += f->nvec;
    for (uint32_t k = 0; k < f->ninsns; k++) {
      struct ptx_insn *in = &m->code[f->code_base + k];
      if (in->flags & PTX_F_GUARD)
        in->guard += f->reg_base;
      for (unsigned j = 0; j < in->nops; j++) {
        struct ptx_operand *o = &in->ops[j];
        switch (o->kind) {
        case PTX_OPD_REG:
          o->reg += f->reg_base;
          break;
        case PTX_OPD_SYM:
          o->kind = PTX_OPD_IMM;
          o->imm = (int64_t)(sym_addr(m, f, o->reg) + (uint64_t)o->imm);
          o->reg = PTX_NOREG;
          o->flags &= (uint8_t)~PTX_OPF_SYM;
          break;
        case PTX_OPD_MEM:
          if (o->flags & PTX_OPF_SYM) {
            const struct ptx_symbol *y = &m->syms[o->reg];
            if (in->space == PTX_SP_PARAM && y->space == PTX_SP_LOCAL)
              in->space = PTX_SP_LOCAL;
            o->imm = (int64_t)(sym_addr(m, f, o->reg) + (uint64_t)o->imm);
            o->reg = PTX_NOREG;
            o->flags &= (uint8_t)~PTX_OPF_SYM;
          } else if (o->reg != PTX_NOREG) {
            o->reg += f->reg_base;
            /* .param variables of a .func live in local memory: an
             * address computed in a register cannot be told apart. */
            if (in->space == PTX_SP_PARAM &&
                (!f->is_entry || in->op != PTX_OP_LD))
              return perr(P, PTX_E_UNSUPPORTED, in->line,
                          "parameter access through a register in '%s'",
                          f->name);
          }
          break;
        case PTX_OPD_VEC:
          for (unsigned e = 0; e < o->count; e++) {
            struct ptx_operand *el = &m->vec[f->vec_base + o->reg + e];
            if (el->kind == PTX_OPD_REG)
              el->reg += f->reg_base;
            else if (el->kind == PTX_OPD_SYM)
              el->imm = (int64_t)m->syms[el->reg].addr; /* keep reg */
          }
          o->reg += f->vec_base;
          break;
        case PTX_OPD_LABEL:
          if (in->op == PTX_OP_BRA)
            o->reg += f->code_base;
          break;
        default:
          break;
        }
      }
    }
  }
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    struct ptx_func *f = &m->funcs[fi];
    f->nregs = f->reg_base + f->own_regs;
    f->local_size = f->local_base + f->own_local;
  }
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    int rc;
    if (m->funcs[fi].defined && (rc = walk_calls(P, fi, 0)) < 0)
      return rc;
  }
  /* Call arguments and return values must be in local memory by now. */
  for (uint32_t k = 0; k < m->ncode; k++) {
    const struct ptx_insn *in = &m->code[k];
    if (in->op != PTX_OP_CALL)
      continue;
    for (unsigned j = 0; j < 3; j += 2)
      if (in->ops[j].kind == PTX_OPD_VEC)
        for (unsigned e = 0; e < in->ops[j].count; e++)
          if (m->syms[m->vec[in->ops[j].reg + e].reg].space != PTX_SP_LOCAL)
            return perr(P, PTX_E_UNSUPPORTED, in->line,
                        "call passes a kernel parameter");
  }
  return 0;
}

/* ---- linking units ---------------------------------------------------- */

/* Ends unit P->unit, whose module-scope variables start at index |sym0|
 * and functions at |func0|: they leave the lookup indexes, so that the
 * next unit resolves none of its names to them. */
static void close_unit(struct parser *P, uint32_t sym0, uint32_t func0) {
  struct ptx_module *m = P->m;

  for (uint32_t i = sym0; i < m->nsyms; i++) {
    struct ptx_symbol *y = &m->syms[i];
    if (!y->hidden)
      name_index_remove(&P->syms, i, y->name);
    y->closed = true;
  }
  for (uint32_t i = func0; i < m->nfuncs; i++) {
    name_index_remove(&P->funcs, i, m->funcs[i].name);
    m->funcs[i].closed = true;
  }
}

/* A name with linkage across units: a module-scope .global/.const
 * variable or a function. */
struct link_ent {
  const char *name;
  uint32_t idx;             /* in syms or funcs */
  bool is_func;
};

static int link_ent_cmp(const void *a, const void *b) {
  const struct link_ent *x = a, *y = b;
  int c = strcmp(x->name, y->name);

  if (c != 0)
    return c;
  if (x->is_func != y->is_func)
    return x->is_func ? 1 : -1;
  /* Indexes grow with the unit: earlier units first. */
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Functions the engine provides or names that walk_calls() explains:
 * not a link error when no unit defines them. */
static bool engine_name(const char *name) {
  return strcmp(name, "vprintf") == 0 || strcmp(name, "__assertfail") == 0 ||
         strcmp(name, "malloc") == 0 || strcmp(name, "free") == 0;
}

static uint16_t ent_unit(const struct ptx_module *m,
                         const struct link_ent *e) {
  return e->is_func ? m->funcs[e->idx].unit : m->syms[e->idx].unit;
}

static uint8_t ent_linkage(const struct ptx_module *m,
                           const struct link_ent *e) {
  return e->is_func ? m->funcs[e->idx].linkage : m->syms[e->idx].linkage;
}

static bool ent_defined(const struct ptx_module *m,
                        const struct link_ent *e) {
  if (e->is_func)
    return m->funcs[e->idx].defined;
  return m->syms[e->idx].linkage != PTX_LINK_EXTERN;
}

/* True when declaration |d| of a function may stand for definition |f|:
 * the same kind, parameter sizes and return value. */
static bool same_signature(const struct ptx_module *m,
                           const struct ptx_func *d,
                           const struct ptx_func *f) {
  if (d->is_entry != f->is_entry || d->nparams != f->nparams ||
      (d->ret_sym < 0) != (f->ret_sym < 0))
    return false;
  for (uint32_t i = 0; i < d->nparams; i++)
    if (d->params[i].info.size != f->params[i].info.size)
      return false;
  return d->ret_sym < 0 || m->syms[d->ret_sym].size == m->syms[f->ret_sym].size;
}

/* Resolves the names units share (see ptx_module_link_with()): every
 * .extern declaration, and every .weak definition but the one kept, is
 * pointed at the definition: variables through their |alias|, functions by
 * rewriting the calls; a function definition not kept is marked
 * |superseded| (a template kernel every unit instantiates is one kernel).
 * Runs after the last unit, before link_module(). */
static int link_units(struct parser *P) {
  struct ptx_module *m = P->m;
  struct link_ent *ents = NULL;
  uint32_t *target = NULL;
  bool *called = NULL, *used = NULL;
  size_t n = 0;
  int rc = 0;

  ents = calloc((size_t)m->nsyms + m->nfuncs + 1, sizeof(*ents));
  target = calloc((size_t)m->nfuncs + 1, sizeof(*target));
  called = calloc((size_t)m->nfuncs + 1, sizeof(*called));
  used = calloc((size_t)m->nsyms + 1, sizeof(*used));
  if (!ents || !target || !called || !used) {
    rc = nomem(P);
    goto out;
  }
  for (uint32_t i = 0; i < m->nfuncs; i++) {
    const struct ptx_func *f = &m->funcs[i];
    target[i] = i;
    for (uint32_t k = 0; k < f->ninsns; k++) {
      const struct ptx_insn *in = &f->insns[k];
      if (in->op == PTX_OP_CALL)
        called[in->ops[1].reg] = true;
      for (unsigned j = 0; j < in->nops; j++)
        if (in->ops[j].kind == PTX_OPD_SYM ||
            (in->ops[j].kind == PTX_OPD_MEM &&
             (in->ops[j].flags & PTX_OPF_SYM)))
          used[in->ops[j].reg] = true;
    }
    if (f->linkage != PTX_LINK_INTERNAL)
      ents[n++] = (struct link_ent){f->name, i, true};
  }
  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *y = &m->syms[i];
    if (y->func == -1 && !y->hidden && y->linkage != PTX_LINK_INTERNAL &&
        (y->space == PTX_SP_GLOBAL || y->space == PTX_SP_CONST))
      ents[n++] = (struct link_ent){y->name, i, false};
  }
  qsort(ents, n, sizeof(*ents), link_ent_cmp);
  for (size_t g = 0, e; g < n; g = e) {
    const struct link_ent *def = NULL;
    for (e = g; e < n && strcmp(ents[e].name, ents[g].name) == 0; e++) {
      const struct link_ent *x = &ents[e];
      if (x->is_func != ents[g].is_func) {
        rc = perr(P, PTX_E_PARSE, 0,
                  "'%s' is a variable in unit %u and a function in unit %u",
                  x->name, ent_unit(m, &ents[g]) + 1, ent_unit(m, x) + 1);
        goto out;
      }
      if (!ent_defined(m, x))
        continue;
      if (def && ent_linkage(m, def) == PTX_LINK_VISIBLE &&
          ent_linkage(m, x) == PTX_LINK_VISIBLE) {
        rc = perr(P, PTX_E_PARSE, 0,
                  "'%s' is defined in unit %u and again in unit %u "
                  "(duplicate definition)",
                  x->name, ent_unit(m, def) + 1, ent_unit(m, x) + 1);
        goto out;
      }
      /* A .visible definition wins over .weak ones, else the first. */
      if (!def || (ent_linkage(m, x) == PTX_LINK_VISIBLE &&
                   ent_linkage(m, def) != PTX_LINK_VISIBLE))
        def = x;
    }
    for (size_t k = g; k < e; k++) {
      const struct link_ent *x = &ents[k];
      if (x == def)
        continue;
      if (!def) {
        bool needed = x->is_func ? called[x->idx] : used[x->idx];
        if (!needed || (x->is_func && engine_name(x->name)))
          continue;
        rc = perr(P, PTX_E_NOT_FOUND, 0,
                  "unresolved external %s '%s' (used in unit %u): no unit "
                  "of the image defines it%s",
                  x->is_func ? "function" : "variable", x->name,
                  ent_unit(m, x) + 1,
                  strncmp(x->name, "cuda", 4) == 0
                      ? " (the device runtime, dynamic parallelism, is not "
                        "implemented)"
                      : "");
        goto out;
      }
      if (x->is_func) {
        if (!same_signature(m, &m->funcs[x->idx], &m->funcs[def->idx])) {
          rc = perr(P, PTX_E_PARSE, 0,
                    "'%s' is declared in unit %u with other parameters than "
                    "its definition in unit %u",
                    x->name, ent_unit(m, x) + 1, ent_unit(m, def) + 1);
          goto out;
        }
        target[x->idx] = def->idx;
        if (m->funcs[x->idx].defined)
          m->funcs[x->idx].superseded = true;
      } else {
        m->syms[x->idx].alias = (int32_t)def->idx;
      }
    }
  }
  for (uint32_t i = 0; i < m->nfuncs; i++) {
    struct ptx_func *f = &m->funcs[i];
    for (uint32_t k = 0; k < f->ninsns; k++)
      if (f->insns[k].op == PTX_OP_CALL)
        f->insns[k].ops[1].reg = target[f->insns[k].ops[1].reg];
  }
out:
  free(ents);
  free(target);
  free(called);
  free(used);
  return rc;
}

/* ---- module --------------------------------------------------------- */

/* ".version 9.0": the number token's text as major * 10 + minor, or 0. */
static int parse_version(const struct ptx_token *t) {
  const char *p = t->s, *e = t->s + t->len;
  int major = 0, minor = 0;

  if (t->kind != PTX_TOK_FLOAT && t->kind != PTX_TOK_INT)
    return 0;
  while (p < e && *p >= '0' && *p <= '9' && major < 1000)
    major = major * 10 + (*p++ - '0');
  if (p < e && *p == '.')
    for (p++; p < e && *p >= '0' && *p <= '9' && minor < 1000; p++)
      minor = minor * 10 + (*p - '0');
  return major * 10 + minor;
}

/* ".target sm_75" (or sm_90a, compute_75): the number, or 0. */
static int parse_target(const struct ptx_token *t) {
  const char *p = t->s, *e = t->s + t->len;
  int v = 0;

  if (t->kind != PTX_TOK_WORD)
    return 0;
  while (p < e && *p != '_')
    p++;
  for (p++; p < e && *p >= '0' && *p <= '9' && v < 100000; p++)
    v = v * 10 + (*p - '0');
  return v;
}

/* One unit's text, from its first token to its end. */
static int parse_unit(struct parser *P) {
  int rc;

  P->linkage = PTX_LINK_INTERNAL;
  if ((rc = next(P)) < 0)
    return rc;
  while (P->tok.kind != PTX_TOK_EOF) {
    const struct ptx_token *t = &P->tok;
    uint32_t line = t->line;
    if (tok_is(t, ".version") || tok_is(t, ".target") ||
        tok_is(t, ".address_size") || tok_is(t, ".file") ||
        tok_is(t, ".loc")) {
      if (tok_is(t, ".version") || tok_is(t, ".target")) {
        bool ver = tok_is(t, ".version");
        if ((rc = next(P)) < 0)
          return rc;
        /* Units may differ: the module reports the newest. */
        int v = ver ? parse_version(&P->tok) : parse_target(&P->tok);
        int *dst = ver ? &P->m->ptx_version : &P->m->target;
        if (v > *dst)
          *dst = v;
      }
      if (tok_is(t, ".address_size")) {
        if ((rc = next(P)) < 0)
          return rc;
        if (P->tok.kind != PTX_TOK_INT || P->tok.ival != 64)
          return perr(P, PTX_E_UNSUPPORTED, line,
                      "only .address_size 64 is supported");
      }
      if ((rc = skip_line(P)) < 0)
        return rc;
      continue;
    }
    if (tok_is(t, ".section")) {
      if ((rc = next(P)) < 0)
        return rc;
      while (!is_punct(P, '{')) {
        if (P->tok.kind == PTX_TOK_EOF)
          return perr(P, PTX_E_PARSE, line, "bad .section");
        if ((rc = next(P)) < 0)
          return rc;
      }
      if ((rc = skip_braces(P)) < 0)
        return rc;
      continue;
    }
    if (tok_is(t, ".visible") || tok_is(t, ".weak") ||
        tok_is(t, ".common") || tok_is(t, ".extern")) {
      P->linkage = tok_is(t, ".visible") ? PTX_LINK_VISIBLE
                   : tok_is(t, ".extern") ? PTX_LINK_EXTERN
                                          : PTX_LINK_WEAK;
      if ((rc = next(P)) < 0)
        return rc;
      continue;
    }
    if (tok_is(t, ".entry") || tok_is(t, ".func")) {
      bool entry = tok_is(t, ".entry");
      if ((rc = next(P)) < 0 || (rc = parse_func(P, entry, line)) < 0)
        return rc;
    } else if (tok_is(t, ".global") || tok_is(t, ".const") ||
               tok_is(t, ".shared")) {
      int sp = tok_is(t, ".global") ? PTX_SP_GLOBAL
               : tok_is(t, ".const") ? PTX_SP_CONST : PTX_SP_SHARED;
      if ((rc = next(P)) < 0 ||
          (rc = parse_var(P, sp, P->linkage == PTX_LINK_EXTERN, -1)) < 0)
        return rc;
    } else if (tok_is(t, ".pragma")) {
      if ((rc = skip_statement(P)) < 0)
        return rc;
    } else if (t->kind != PTX_TOK_WORD || t->len == 0 || t->s[0] != '.') {
      /* Not a directive at all: malformed PTX. */
      return perr(P, PTX_E_PARSE, line, "expected a directive, found '%.*s'",
                  (int)(t->len > 40 ? 40 : t->len), t->s);
    } else {
      return perr(P, PTX_E_UNSUPPORTED, line,
                  "unsupported directive '%.*s'",
                  (int)(t->len > 40 ? 40 : t->len), t->s);
    }
    P->linkage = PTX_LINK_INTERNAL;
  }
  return 0;
}

int ptx_module_load(const char *text, size_t len, struct ptx_module **out,
                    char *err, size_t errlen) {
  return ptx_module_load_with(text, len, NULL, out, err, errlen);
}

int ptx_module_load_with(const char *text, size_t len,
                         const struct ptx_global_ops *gops,
                         struct ptx_module **out, char *err, size_t errlen) {
  return ptx_module_link_with(&text, &len, 1, gops, out, err, errlen);
}

/* Counts the newlines of |n| bytes at |p|. */
static uint32_t count_lines(const char *p, size_t n) {
  uint32_t k = 0;

  for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
    k++;
  return k;
}

/* Copies the units into m->text, one after the other with a newline
 * between them (a single unit as it is), and notes where each starts. */
static int join_units(struct parser *P, const char *const *texts,
                      const size_t *lens, unsigned n, size_t total,
                      size_t *offs) {
  struct ptx_module *m = P->m;
  size_t pos = 0;
  uint32_t line = 1;

  if (!(m->text = malloc(total ? total : 1)) ||
      !(m->unit_line = calloc(n, sizeof(*m->unit_line))))
    return nomem(P);
  for (unsigned u = 0; u < n; u++) {
    offs[u] = pos;
    m->unit_line[u] = line;
    memcpy(m->text + pos, texts[u], lens[u]);
    pos += lens[u];
    line += count_lines(texts[u], lens[u]);
    if (n > 1) {
      m->text[pos++] = '\n';
      line++;
    }
  }
  m->text_len = pos;
  m->nunits = n;
  return 0;
}

/* Lists the module's kernels in m->entries: the defined .entry functions
 * that link_units() kept, in the order of the text. */
static int index_entries(struct parser *P) {
  struct ptx_module *m = P->m;
  uint32_t n = 0;

  for (uint32_t i = 0; i < m->nfuncs; i++)
    if (m->funcs[i].is_entry && m->funcs[i].defined &&
        !m->funcs[i].superseded)
      n++;
  if (n && !(m->entries = malloc(n * sizeof(*m->entries))))
    return nomem(P);
  for (uint32_t i = 0; i < m->nfuncs; i++)
    if (m->funcs[i].is_entry && m->funcs[i].defined &&
        !m->funcs[i].superseded)
      m->entries[m->nentries++] = i;
  return 0;
}

int ptx_module_link_with(const char *const *texts, const size_t *lens,
                         unsigned n, const struct ptx_global_ops *gops,
                         struct ptx_module **out, char *err, size_t errlen) {
  struct parser P;
  size_t total = 0, *offs = NULL;
  int rc;

  if (errlen)
    err[0] = 0;
  if (out)
    *out = NULL;
  if (!texts || !lens || !out || n == 0 || n > PTX_MAX_UNITS) {
    if (errlen)
      snprintf(err, errlen, "invalid argument");
    return PTX_E_INVALID;
  }
  /* The limit is on the joined text (join_units()): every unit and, when
   * there are several, the newline after each. |total| stays within it,
   * so the subtractions cannot wrap. */
  for (unsigned u = 0; u < n; u++) {
    size_t sep = n > 1;
    if (!texts[u] || lens[u] > PTX_MAX_TEXT - total ||
        sep > PTX_MAX_TEXT - total - lens[u]) {
      if (errlen)
        snprintf(err, errlen, "%s", !texts[u] ? "invalid argument"
                                              : "PTX text too large");
      return PTX_E_INVALID;
    }
    total += lens[u] + sep;
  }
  memset(&P, 0, sizeof(P));
  P.err = err;
  P.errlen = errlen;
  P.fidx = -1;
  if (!(P.m = calloc(1, sizeof(*P.m))) ||
      !(offs = calloc(n, sizeof(*offs)))) {
    rc = nomem(&P);
    goto out;
  }
  if (gops)
    P.m->gops = *gops;
  if ((rc = join_units(&P, texts, lens, n, total, offs)) < 0)
    goto out;
  for (unsigned u = 0; u < n; u++) {
    uint32_t sym0 = P.m->nsyms, func0 = P.m->nfuncs;
    P.unit = (uint16_t)u;
    ptx_lex_init(&P.lx, P.m->text + offs[u], lens[u]);
    P.lx.line = P.m->unit_line[u];
    if ((rc = parse_unit(&P)) < 0)
      goto out;
    if (n > 1)
      close_unit(&P, sym0, func0);
  }
  if ((rc = link_units(&P)) < 0 || (rc = index_entries(&P)) < 0)
    goto out;
  rc = link_module(&P);
out:
  free(offs);
  free(P.regs);
  free(P.defs);
  free(P.refs);
  name_index_free(&P.syms);
  name_index_free(&P.funcs);
  free(P.scoped);
  if (rc < 0) {
    ptx_module_free(P.m);
    return rc;
  }
  *out = P.m;
  return PTX_OK;
}

void ptx_module_free(struct ptx_module *m) {
  if (!m)
    return;
  for (uint32_t i = 0; i < m->nfuncs; i++) {
    struct ptx_func *f = &m->funcs[i];
    for (uint32_t j = 0; j < f->nparams; j++)
      free(f->params[j].name);
    free(f->params);
    free(f->insns);
    free(f->vec);
    free(f->name);
  }
  for (uint32_t i = 0; i < m->nsyms; i++) {
    free(m->syms[i].name);
    if (m->syms[i].from_gops) {
      if (m->gops.release)
        m->gops.release(m->gops.opaque, m->syms[i].addr);
    } else {
      free(m->syms[i].data);
    }
  }
  free(m->funcs);
  free(m->syms);
  free(m->code);
  free(m->vec);
  free(m->text);
  free(m->unit_line);
  free(m->entries);
  free(m);
}

/* ---- queries -------------------------------------------------------- */

static const struct ptx_func *kfunc(const struct ptx_kernel *k) {
  return (const struct ptx_func *)(const void *)k;
}

const struct ptx_kernel *ptx_module_kernel(const struct ptx_module *m,
                                           const char *name) {
  if (!m || !name)
    return NULL;
  /* Only kernels: linked units may declare a name before the unit that
   * defines it, or define a .weak one that another unit's stands for. */
  for (uint32_t i = 0; i < m->nentries; i++)
    if (strcmp(m->funcs[m->entries[i]].name, name) == 0)
      return ptx_module_kernel_at(m, i);
  return NULL;
}

const struct ptx_kernel *ptx_module_kernel_at(const struct ptx_module *m,
                                              uint32_t i) {
  if (!m || i >= m->nentries)
    return NULL;
  return (const struct ptx_kernel *)(const void *)&m->funcs[m->entries[i]];
}

uint32_t ptx_module_kernel_count(const struct ptx_module *m) {
  return m ? m->nentries : 0;
}

int ptx_module_global(const struct ptx_module *m, const char *name,
                      uint64_t *addr, uint64_t *size) {
  int32_t i;

  if (!m || !name)
    return PTX_E_INVALID;
  i = find_sym(m, -1, name, strlen(name));
  if (i < 0 || (m->syms[i].space != PTX_SP_GLOBAL &&
                m->syms[i].space != PTX_SP_CONST))
    return PTX_E_NOT_FOUND;
  if (addr)
    *addr = m->syms[i].addr;
  if (size)
    *size = m->syms[i].size;
  return PTX_OK;
}

const char *ptx_kernel_name(const struct ptx_kernel *k) {
  return kfunc(k)->name;
}

unsigned ptx_kernel_param_count(const struct ptx_kernel *k) {
  return kfunc(k)->nparams;
}

int ptx_kernel_param(const struct ptx_kernel *k, unsigned i,
                     struct ptx_param_info *out) {
  const struct ptx_func *f = kfunc(k);

  if (i >= f->nparams || !out)
    return PTX_E_INVALID;
  *out = f->params[i].info;
  return PTX_OK;
}

uint32_t ptx_kernel_params_size(const struct ptx_kernel *k) {
  return kfunc(k)->params_size;
}

uint32_t ptx_kernel_max_threads(const struct ptx_kernel *k) {
  return kfunc(k)->maxntid ? kfunc(k)->maxntid : PTX_MAX_BLOCK_THREADS;
}

uint32_t ptx_kernel_shared_size(const struct ptx_kernel *k) {
  return kfunc(k)->shared_size;
}

uint32_t ptx_kernel_local_size(const struct ptx_kernel *k) {
  return kfunc(k)->local_size;
}

uint32_t ptx_kernel_num_regs(const struct ptx_kernel *k) {
  return kfunc(k)->decl_regs > 255 ? 255 : kfunc(k)->decl_regs;
}

int ptx_module_ptx_version(const struct ptx_module *m) {
  return m ? m->ptx_version : 0;
}

int ptx_module_target(const struct ptx_module *m) {
  return m ? m->target : 0;
}

uint32_t ptx_module_const_size(const struct ptx_module *m) {
  return m ? m->const_size : 0;
}
