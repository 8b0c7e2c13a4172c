/* The PTX tokenizer: words (directives, opcodes with their modifiers,
 * registers, labels), integer and float literals, strings, punctuation.
 * Comments and whitespace are skipped; lines are counted for messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emu/ptx_internal.h"

void ptx_lex_init(struct ptx_lexer *lx, const char *text, size_t len) {
  lx->p = text;
  lx->end = text + len;
  lx->line = 1;
}

static bool is_word_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == '$' || c == '%' || c == '.';
}

static bool is_word_char(char c) {
  return is_word_start(c) || (c >= '0' && c <= '9');
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Skips blanks and comments; counts newlines. Returns 0 or PTX_E_PARSE for
 * an unterminated block comment. */
static int skip_space(struct ptx_lexer *lx, char *err, size_t errlen) {
  while (lx->p < lx->end) {
    char c = *lx->p;
    if (c == '\n') {
      lx->line++;
      lx->p++;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
               c == '\v') {
      lx->p++;
    } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '/') {
      while (lx->p < lx->end && *lx->p != '\n')
        lx->p++;
    } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
      uint32_t start = lx->line;
      lx->p += 2;
      for (;;) {
        if (lx->p + 1 >= lx->end) {
          snprintf(err, errlen, "line %u: unterminated comment", start);
          return PTX_E_PARSE;
        }
        if (lx->p[0] == '*' && lx->p[1] == '/') {
          lx->p += 2;
          break;
        }
        if (*lx->p == '\n')
          lx->line++;
        lx->p++;
      }
    } else {
      break;
    }
  }
  return 0;
}

/* Reads a fixed number of hex digits (0f: 8, 0d: 16) into |*v|. */
static int lex_hexfloat(struct ptx_lexer *lx, int digits, uint64_t *v) {
  uint64_t x = 0;
  int i;

  for (i = 0; i < digits; i++) {
    int h;
    if (lx->p >= lx->end || (h = hexval(*lx->p)) < 0)
      return -1;
    x = x << 4 | (uint64_t)h;
    lx->p++;
  }
  if (lx->p < lx->end && is_word_char(*lx->p))
    return -1;
  *v = x;
  return 0;
}

static int lex_number(struct ptx_lexer *lx, struct ptx_token *t, char *err,
                      size_t errlen) {
  const char *s = lx->p;

  if (lx->end - s >= 2 && s[0] == '0' && (s[1] == 'f' || s[1] == 'F' ||
                                         s[1] == 'd' || s[1] == 'D')) {
    bool f = s[1] == 'f' || s[1] == 'F';
    lx->p += 2;
    if (lex_hexfloat(lx, f ? 8 : 16, &t->ival) < 0)
      goto bad;
    t->kind = f ? PTX_TOK_F32 : PTX_TOK_F64;
    goto done;
  }
  if (lx->end - s >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    uint64_t x = 0;
    int n = 0, h;
    lx->p += 2;
    while (lx->p < lx->end && (h = hexval(*lx->p)) >= 0) {
      if (++n > 16)
        goto bad;
      x = x << 4 | (uint64_t)h;
      lx->p++;
    }
    if (n == 0)
      goto bad;
    t->kind = PTX_TOK_INT;
    t->ival = x;
  } else {
    const char *q = s;
    bool isfloat = false;
    while (q < lx->end && *q >= '0' && *q <= '9')
      q++;
    if (q < lx->end && (*q == '.' || *q == 'e' || *q == 'E'))
      isfloat = true;
    if (isfloat) {
      char buf[64];
      char *e;
      size_t n = 0;
      while (s + n < lx->end && n < sizeof(buf) - 1 &&
             (is_word_char(s[n]) || ((s[n] == '-' || s[n] == '+') && n > 0 &&
                                     (s[n - 1] == 'e' || s[n - 1] == 'E'))))
        n++;
      memcpy(buf, s, n);
      buf[n] = 0;
      t->fval = strtod(buf, &e);
      if (e == buf || *e)
        goto bad;
      lx->p = s + n;
      t->kind = PTX_TOK_FLOAT;
      goto done;
    }
    {
      uint64_t x = 0;
      bool octal = s[0] == '0' && q - s > 1;
      for (const char *d = s; d < q; d++) {
        uint64_t nx;
        unsigned dv = (unsigned)(*d - '0');
        if (octal && dv > 7)
          goto bad;
        nx = x * (octal ? 8 : 10) + dv;
        if (nx / (octal ? 8 : 10) != x)
          goto bad;
        x = nx;
      }
      lx->p = q;
      t->kind = PTX_TOK_INT;
      t->ival = x;
    }
  }
  if (lx->p < lx->end && (*lx->p == 'U' || *lx->p == 'u'))
    lx->p++;
  if (lx->p < lx->end && is_word_char(*lx->p))
    goto bad;
done:
  t->s = s;
  t->len = (uint32_t)(lx->p - s);
  return 0;
bad:
  snprintf(err, errlen, "line %u: malformed number '%.*s'", lx->line,
           (int)(lx->p - s < 40 ? lx->p - s + 1 : 40), s);
  return PTX_E_PARSE;
}

int ptx_lex_next(struct ptx_lexer *lx, struct ptx_token *t, char *err,
                 size_t errlen) {
  int rc;
  char c;

  memset(t, 0, sizeof(*t));
  if ((rc = skip_space(lx, err, errlen)) < 0)
    return rc;
  t->line = lx->line;
  if (lx->p >= lx->end) {
    t->kind = PTX_TOK_EOF;
    t->s = lx->end;
    return 0;
  }
  c = *lx->p;
  if (c >= '0' && c <= '9')
    return lex_number(lx, t, err, errlen);
  if (is_word_start(c)) {
    const char *s = lx->p;
    /* '::' belongs to words (.L2::evict_last); a single ':' ends a label. */
    while (lx->p < lx->end &&
           (is_word_char(*lx->p) ||
            (*lx->p == ':' && lx->p + 1 < lx->end && lx->p[1] == ':'))) {
      lx->p += *lx->p == ':' ? 2 : 1;
    }
    t->kind = PTX_TOK_WORD;
    t->s = s;
    t->len = (uint32_t)(lx->p - s);
    return 0;
  }
  if (c == '"') {
    const char *s = ++lx->p;
    while (lx->p < lx->end && *lx->p != '"' && *lx->p != '\n') {
      if (*lx->p == '\\' && lx->p + 1 < lx->end)
        lx->p++;
      lx->p++;
    }
    if (lx->p >= lx->end || *lx->p != '"') {
      snprintf(err, errlen, "line %u: unterminated string", t->line);
      return PTX_E_PARSE;
    }
    t->kind = PTX_TOK_STRING;
    t->s = s;
    t->len = (uint32_t)(lx->p - s);
    lx->p++;
    return 0;
  }
  if (strchr(",;:{}[]()+-<>@!|=*/~&^?", c) && c != 0) {
    t->kind = PTX_TOK_PUNCT;
    t->punct = c;
    t->s = lx->p++;
    t->len = 1;
    return 0;
  }
  snprintf(err, errlen, "line %u: unexpected character 0x%02x", t->line,
           (unsigned char)c);
  return PTX_E_PARSE;
}
