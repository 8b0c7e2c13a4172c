/* The server's log: one line per event on stderr,
 *
 *   2025-01-31T12:00:00.123Z gpupool-server[1234] info: message
 *
 * Supervisor and workers share the stream (workers inherit it), so every
 * line names its process. A line is written with one write(2), so lines of
 * different processes do not interleave. Thread-safe.
 */
#ifndef GP_SERVER_LOG_H
#define GP_SERVER_LOG_H

#include <stdarg.h>

enum gp_log_level {
  GP_LOG_ERROR = 0,
  GP_LOG_WARN = 1,
  GP_LOG_INFO = 2,
  GP_LOG_DEBUG = 3,
};

/* Sets the program name each line carries (default "gpupool-server";
 * gpupool-broker builds this file in too). |name| must stay valid. Call
 * before any thread logs. */
void gp__log_set_program(const char *name);

/* Sets the lowest level that is written (default GP_LOG_INFO). */
void gp__log_set_level(enum gp_log_level level);

/* The current level. */
enum gp_log_level gp__log_level(void);

/* Parses "error", "warn", "info" or "debug". Returns 0 or GP_EINVAL. */
int gp__log_parse_level(const char *s, enum gp_log_level *out);

/* The name of |level| ("info"). */
const char *gp__log_level_name(enum gp_log_level level);

/* Writes one line at |level| if the level is enabled; a trailing newline
 * is added. Lines longer than 1 KiB are cut. Never fails. */
void gp__log(enum gp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void gp__vlog(enum gp_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define gp__error(...) gp__log(GP_LOG_ERROR, __VA_ARGS__)
#define gp__warn(...) gp__log(GP_LOG_WARN, __VA_ARGS__)
#define gp__info(...) gp__log(GP_LOG_INFO, __VA_ARGS__)
#define gp__debug(...) gp__log(GP_LOG_DEBUG, __VA_ARGS__)

#endif
