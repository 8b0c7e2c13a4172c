/* Messages on stderr: call traces (GPUPOOL_TRACE), one-line notices, and
 * the "not supported yet" line of the generated stubs. */
#include "trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuerrors.h"
#include "gpupool/gpupool.h"
#include "stubs.h"

bool gp__trace_on;

/* Reads GPUPOOL_TRACE when the library is loaded, before any entry point
 * can be called. Any value other than empty or "0" turns tracing on. */
__attribute__((constructor)) static void trace_init(void) {
  const char *v = getenv(GP_ENV_TRACE);
  gp__trace_on = v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

/* Writes all of |buf| to stderr with write(2): one line from one call is
 * one write, so lines from different threads do not interleave, and the
 * application's stdio buffers are left alone. */
static void write_stderr(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

/* Formats "gpupool: " PREFIX-less text into |buf|, ending it with a
 * newline even when it had to be cut short. Returns its length. The text
 * may carry what a server or a broker said, so it is made one line of
 * harmless characters: line breaks become spaces and other control
 * characters (a terminal's escape sequences) '?'. */
static size_t finish_line(char *buf, size_t cap, int n) {
  size_t len = n < 0 ? 0 : (size_t)n;
  if (len > cap - 2)
    len = cap - 2;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c == '\n' || c == '\r')
      buf[i] = ' ';
    else if ((c < 0x20 && c != '\t') || c == 0x7f)
      buf[i] = '?';
  }
  buf[len++] = '\n';
  buf[len] = '\0';
  return len;
}

void gp__log(const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof(buf), "gpupool: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
  va_end(ap);
  write_stderr(buf, finish_line(buf, sizeof(buf), n));
}

void gp__trace(const char *fn, CUresult r, const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof(buf), "gpupool: %s(", fn);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
  va_end(ap);
  if ((size_t)n < sizeof(buf))
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, ") = %s",
                  gp__cu_error_name((int)r));
  write_stderr(buf, finish_line(buf, sizeof(buf), n));
}

int gp__unsupported(const char *name, atomic_bool *said) {
  if (!atomic_exchange(said, true))
    gp__log("%s is not supported yet", name);
  if (gp__trace_on)
    gp__trace(name, CUDA_ERROR_NOT_SUPPORTED, "...");
  return CUDA_ERROR_NOT_SUPPORTED;
}
