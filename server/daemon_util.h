/* What gpupool-server and gpupool-broker share as daemons: command-line
 * and config values, peers' names for logs, the port file, listening.
 * Built into both programs (server/meson.build, broker/meson.build).
 */
#ifndef GP_SERVER_DAEMON_UTIL_H
#define GP_SERVER_DAEMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* Parses a size with an optional K, M, G or T suffix (powers of 1024;
 * "KiB"-style and "B" suffixes are accepted too). Returns 0 or GP_EINVAL
 * (not a number, unknown suffix, or overflow). */
int gp__parse_size(const char *s, uint64_t *out);

/* Parses a decimal number of at most |max| (digits only). Returns 0 or
 * GP_EINVAL. */
int gp__parse_uint(const char *s, unsigned long long max,
                   unsigned long long *out);

/* Parses "HOST", "HOST:PORT", "[V6ADDR]" or "[V6ADDR]:PORT" into |host| and
 * |*port| (|default_port| when absent). Returns 0 or GP_EINVAL with a
 * reason in |why|. */
int gp__parse_listen(const char *s, int default_port, char *host,
                     size_t hostlen, int *port, const char **why);

/* "ADDR:PORT" or "[V6ADDR]:PORT" of |sa| into |out|; "?" for another
 * family. */
void gp__addr_to_string(const struct sockaddr *sa, char *out, size_t len);

/* Writes "PORT\n" to |path| through a temporary file and a rename, so a
 * reader never sees a partial file. Returns 0 or -1 (errno set). */
int gp__write_port_file(const char *path, int port);

/* Binds |listener| (initialised on its loop) to HOST:PORT and listens with
 * |cb|; |bound| gets the address as text and |*bound_port| the port (the
 * kernel's choice for port 0). Logs why and returns GP_EINVAL when the
 * host does not resolve, GP_EIO when bind or listen fails; 0 otherwise. */
int gp__listen_tcp(uv_tcp_t *listener, const char *host, int port,
                   int backlog, uv_connection_cb cb, char *bound, size_t len,
                   int *bound_port);

#endif
