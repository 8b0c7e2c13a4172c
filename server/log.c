/* The server's log: see log.h. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "gpupool/errors.h"

#define LOG_LINE_MAX 1024

/* Process-wide by nature (stderr is); an atomic so any thread may log. */
static _Atomic int log_level = GP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static const char *log_program = "gpupool-server";

void gp__log_set_program(const char *name) {
  log_program = name;
}

void gp__log_set_level(enum gp_log_level level) {
  atomic_store(&log_level, (int)level);
}

enum gp_log_level gp__log_level(void) {
  return (enum gp_log_level)atomic_load(&log_level);
}

int gp__log_parse_level(const char *s, enum gp_log_level *out) {
  int i;

  for (i = 0; i <= GP_LOG_DEBUG; i++)
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum gp_log_level)i;
      return 0;
    }
  return GP_EINVAL;
}

const char *gp__log_level_name(enum gp_log_level level) {
  return (unsigned)level <= GP_LOG_DEBUG ? level_names[level] : "?";
}

void gp__vlog(enum gp_log_level level, const char *fmt, va_list ap) {
  char line[LOG_LINE_MAX];
  struct timespec ts;
  struct tm tm;
  size_t n;
  int k;

  if ((int)level > atomic_load(&log_level))
    return;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
  k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld] %s: ",
               ts.tv_nsec / 1000000, log_program, (long)getpid(), gp__log_level_name(level));
  if (k > 0)
    n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
  k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  if (k > 0)
    n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
  if (n >= sizeof(line) - 1)
    n = sizeof(line) - 2;
  line[n++] = '\n';
  /* One write per line; a failed log write has nowhere to be reported. */
  if (write(STDERR_FILENO, line, n) < 0)
    return;
}

void gp__log(enum gp_log_level level, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  gp__vlog(level, fmt, ap);
  va_end(ap);
}
