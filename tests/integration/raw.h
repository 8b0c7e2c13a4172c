/* A client that speaks gpupool's frames itself, for the scenarios that
 * must say what the client library never would (a forged grant, another
 * session's ids, a half-sent frame) or talk to a broker as a server does.
 * Built into the programs that need it (tests/integration/meson.build),
 * with the protocol library.
 */
#ifndef GPT_RAW_H
#define GPT_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "wire.h"

struct gpt_raw {
  struct gp_wire w;
  uint32_t next;      /* the next request id */
  bool open;
};

/* gpt_raw_call()'s result when the connection failed (neither a CUresult
 * nor a GP_E* code). */
#define GPT_RAW_FAILED (-100000)

/* Connects |w| to a harness server on 127.0.0.1:|port| as the client
 * library would: TLS verified against $GPUPOOL_TLS_CA, or plain TCP when
 * GPUPOOL_INSECURE=1 (both as gpt_server_start() leaves them). Returns 0,
 * or -1 after printing why. */
int gpt_wire_connect(struct gp_wire *w, int port);

/* Sets up |w| on an accepted socket |fd| as a TLS server with the test
 * certificates (a stand-in for gpupool-server), or plain when
 * GPUPOOL_INSECURE=1. Takes |fd| (closed on failure). Returns 0 or -1. */
int gpt_wire_accept(struct gp_wire *w, int fd);

/* Connects to 127.0.0.1:|port| (gpt_wire_connect()); each later read or
 * write waits at most |timeout_ms|. False when the connection fails. */
bool gpt_raw_open(struct gpt_raw *r, int port, int timeout_ms);

/* TLS to the broker (docs/security.md): gpt_raw_open() with a TLS 1.3
 * handshake verifying the peer for 127.0.0.1 against |ca|, presenting
 * |cert|/|key| when given (a pool server's client certificate; both NULL:
 * none). |why| (may be NULL) gets the reason of a failure. */
bool gpt_raw_open_tls(struct gpt_raw *r, int port, int timeout_ms,
                      const char *ca, const char *cert, const char *key,
                      char *why, size_t why_len);

/* The port of "HOST:PORT" (0 when there is none). */
int gpt_raw_port(const char *addr);

void gpt_raw_close(struct gpt_raw *r);

/* Sends one request (|payload|, |len| bytes, may be NULL) and reads its
 * reply, skipping notices: returns the reply's result, or GPT_RAW_FAILED.
 * When the result is 0 and the reply's payload is exactly |out_len| bytes
 * it lands in |out|; otherwise it is read and dropped. The reply message
 * goes to |*rep| when asked for (free it with
 * protobuf_c_message_free_unpacked). */
int gpt_raw_call(struct gpt_raw *r, uint16_t type, const ProtobufCMessage *m,
                 const void *payload, size_t len, void *out, size_t out_len,
                 ProtobufCMessage **rep);

/* For the frames no client library sends (test_hostile.c). Each goes
 * through the connection's own transport, whatever it is. */

/* Writes |n| bytes as they are. False when the connection failed. */
bool gpt_raw_send_bytes(struct gpt_raw *r, const void *p, size_t n);

/* Writes a valid frame header announcing |msg_len| and |payload_len|
 * bytes (the caller sends them, or not). */
bool gpt_raw_send_header(struct gpt_raw *r, uint16_t type, uint16_t flags,
                         uint32_t msg_len, uint32_t payload_len);

/* Reads the next frame that is not a notice: returns its type, with the
 * ProtocolError's code or the reply's result in |*code|; -1 when the
 * connection ended (closed, reset or timed out) first. */
int gpt_raw_next(struct gpt_raw *r, int *code);

#endif
