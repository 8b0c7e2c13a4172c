/* The client's side of the pool (docs/broker.md, "The client", "The CLI"):
 * addresses and connecting (dial.c), the client's configuration from the
 * environment and client.conf (clientconf.c), and the broker's requests
 * (broker.c).
 *
 * Shared by libcuda.so.1 and the gpupool CLI, so nothing here uses the
 * library's state (struct gp__client) or its stderr helpers: failures are
 * described in a caller's |why| buffer. Everything here is thread-safe
 * except where a comment says otherwise (getenv() is read, never written).
 */
#ifndef GP_CLIENT_BROKER_H
#define GP_CLIENT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* ---- Addresses and connecting (dial.c) ------------------------------------- */

struct gp__hostport {
  char host[256];
  int port;
  char addr[300]; /* "host:port" or "[v6]:port", for messages */
};

/* Splits "host[:port]" or "[v6addr][:port]" into |hp| (|def_port| when no
 * port is given). |what| names the setting in messages ("GPUPOOL_SERVER").
 * Returns 0, or -1 with |why| filled. */
int gp__parse_hostport(const char *s, int def_port, const char *what,
                       struct gp__hostport *hp, char *why, size_t why_len);

/* Resolves |hp| and connects to it within |timeout_ms|. Returns the
 * blocking, close-on-exec socket, or -1 with |why| filled ("cannot
 * resolve", "cannot connect to ...: no answer within 2.0 s", ...). */
int gp__dial(const struct gp__hostport *hp, int timeout_ms, char *why,
             size_t why_len);

/* Milliseconds on CLOCK_MONOTONIC. */
long long gp__mono_ms(void);

struct gp_wire;
struct gp__conf;

/* How the client secures its links (docs/security.md, "The client"). */
struct gp__tls_opts {
  bool insecure;      /* plain TCP */
  bool any_address;   /* plain TCP to a peer that is not on loopback */
  char ca[4096];      /* CA file; empty: the system's default store */
};

/* Resolves the TLS settings: $GPUPOOL_INSECURE, else `insecure` in |cf|
 * (NULL: no file); $GPUPOOL_INSECURE_ANY_ADDRESS; $GPUPOOL_TLS_CA, else
 * `tls_ca`. Boolean values: 1/true/yes or 0/false/no/empty. Returns 0, or
 * -1 with |why| (a value that is no boolean). */
int gp__tls_opts_resolve(const struct gp__conf *cf, struct gp__tls_opts *o,
                         char *why, size_t why_len);

/* Dials |hp| within |timeout_ms| and sets up |w| over it: TLS 1.3
 * verifying the peer's certificate for hp->host against o->ca (or the
 * system store), with ALPN gpupool/1; or, with o->insecure, plain TCP,
 * refused unless the peer's address is loopback or o->any_address. |peer|
 * names the peer in messages ("server", "broker"). Returns 0, or -1 with
 * |why| saying what failed and what to check. */
int gp__connect_wire(const struct gp__hostport *hp,
                     const struct gp__tls_opts *o, int timeout_ms,
                     const char *peer, struct gp_wire *w, char *why,
                     size_t why_len);

/* ---- Configuration (clientconf.c) ------------------------------------------ */

#define GP__MAX_LABELS 32
#define GP__MAX_LABEL_LEN 128 /* key or value, bytes */
#define GP__MAX_TOKEN 4096

/* The [client] section of client.conf. Every string is empty when unset. */
struct gp__conf {
  char path[4096];     /* the file read; empty: none was found */
  char broker[300];
  char token[GP__MAX_TOKEN];
  char token_file[4096];
  char memory[64];
  char labels[2048];
  char server[300];    /* a server name with a broker, else HOST[:PORT] */
  char tls_ca[4096];   /* CA file verifying servers and the broker */
  char insecure[16];   /* "1"/"true"/"yes": plain TCP (loopback only) */
};

/* Reads the client configuration file into |cf| (zeroed first): the file
 * $GPUPOOL_CONFIG, else $XDG_CONFIG_HOME/gpupool/client.conf, else
 * $HOME/.config/gpupool/client.conf. A missing default file is no error; a
 * missing $GPUPOOL_CONFIG is. INI: `[client]` then `key = value` lines;
 * `;` or `#` start a comment (at the start of a line, or after blanks).
 * Returns 0, or -1 with |why| naming the file, the line and the fault (an
 * unknown section or key, a line that is no `key = value`, a value too
 * long). */
int gp__conf_load(struct gp__conf *cf, char *why, size_t why_len);

/* A size: digits, then optionally K, M, G or T (powers of 1024), then
 * optionally B or iB ("8G", "512MiB", "1024"). Returns 0, or -1. */
int gp__parse_mem(const char *s, uint64_t *out);

struct gp__label {
  char key[GP__MAX_LABEL_LEN];
  char value[GP__MAX_LABEL_LEN];
};

/* Parses "k=v[,k=v...]" (blanks around keys and values are dropped; an empty
 * string is no labels) into |out| (at most GP__MAX_LABELS). |what| names the
 * setting in messages. Returns the count, or -1 with |why| filled. */
int gp__parse_labels(const char *s, const char *what, struct gp__label *out,
                     char *why, size_t why_len);

/* Reads a token from |path|: its first line without the line end. The file
 * must be a regular file readable by its owner only (like the broker's key
 * files); an empty token is refused. Returns 0, or -1 with |why| filled. */
int gp__read_token_file(const char *path, char *out, size_t out_len, char *why,
                        size_t why_len);

/* Where the broker settings come from; see gp__pool_resolve(). */
struct gp__pool {
  char broker[300];      /* empty: no broker (connect to |server| directly) */
  char server[300];      /* with a broker: a server name (may be empty);
                            without: HOST[:PORT] (may be empty) */
  const char *server_from; /* the setting |server| came from, for messages */
  char token[GP__MAX_TOKEN]; /* with a broker and GP__RESOLVE_TOKEN */
  uint64_t memory;       /* bytes; 0: the broker's default */
  struct gp__label labels[GP__MAX_LABELS];
  int nlabels;
  struct gp__tls_opts tls; /* how to reach the broker (and servers) */
};

#define GP__RESOLVE_TOKEN 1u   /* read the token */
#define GP__RESOLVE_REQUEST 2u /* parse the memory and the labels */

/* Decides how to reach the pool from the environment and |cf| (the
 * environment wins; docs/client.md, "The pool"):
 *   broker: $GPUPOOL_BROKER when set (set but empty: no broker); else none
 *           when $GPUPOOL_SERVER is set and not empty; else `broker`.
 *   server: with a broker $GPUPOOL_SERVER_NAME, else `server` (a name);
 *           without, $GPUPOOL_SERVER, else `server` (an address).
 *   token:  $GPUPOOL_TOKEN, else the file $GPUPOOL_TOKEN_FILE, else
 *           `token`, else the file `token_file` (only with a broker and
 *           GP__RESOLVE_TOKEN in |what|; none at all is an error then).
 *   memory: $GPUPOOL_MEM, else `memory`; labels: $GPUPOOL_LABELS, else
 *           `labels` (only with a broker and GP__RESOLVE_REQUEST).
 * |broker_arg| and |token_file_arg| (the CLI's --broker and --token-file;
 * NULL: none) come before everything else. Returns 0, or -1 with |why|. */
int gp__pool_resolve(const struct gp__conf *cf, const char *broker_arg,
                     const char *token_file_arg, unsigned what,
                     struct gp__pool *pool, char *why, size_t why_len);

/* ---- The broker's requests (broker.c) -------------------------------------- */

/* Results of gp__broker_rpc(). */
#define GP__BRPC_OK 0          /* the answer is in |*reply| */
#define GP__BRPC_UNREACHABLE 1 /* no connection, or no (sane) answer */

/* One request to the broker at |broker| (HOST[:PORT], default port 7470):
 * connects within |timeout_ms| (TLS as |tls| says: gp__connect_wire()), sends |req| as a frame of |type|, reads the
 * answer (waiting at most |timeout_ms| for it), closes. A ProtocolError
 * frame in answer counts as unreachable, with its message in |why|. On
 * GP__BRPC_OK the caller frees |*reply| with
 * protobuf_c_message_free_unpacked() and reads its own `result`. */
int gp__broker_rpc(const char *broker, const struct gp__tls_opts *tls,
                   int timeout_ms, uint16_t type, const ProtobufCMessage *req,
                   ProtobufCMessage **reply, char *why, size_t why_len);

/* What the broker granted (BrokerSessionGrant). */
struct gp__grant {
  struct gp__hostport server; /* where to connect */
  char server_name[64];
  uint8_t grant[1024];        /* HelloRequest.grant, unread */
  size_t grant_len;
  uint64_t session_id;
  /* The private half of the key the grant is bound to (docs/security.md,
   * "Grants bound to the channel"): signs HelloRequest.grant_proof. */
  uint8_t binding_priv[32];
  bool bound;
};

/* Asks the broker of |pool| for a session (BROKER_REQUEST_SESSION with
 * |pool|'s token, memory, labels and server name, and |client| as the
 * client string) and fills |g|. Returns 0; 1 when the broker refused (|why|
 * has "the broker refused the session: MESSAGE"); -1 when it could not be
 * asked or answered nonsense (|why| says so). */
int gp__broker_request_session(const struct gp__pool *pool, int timeout_ms,
                               const char *client, struct gp__grant *g,
                               char *why, size_t why_len);

#endif
