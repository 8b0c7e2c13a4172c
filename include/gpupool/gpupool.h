/* gpupool public constants: version, default ports and the environment
 * variables that the client library and the tools read. */
#ifndef GPUPOOL_GPUPOOL_H
#define GPUPOOL_GPUPOOL_H

#include "gpupool/errors.h"

/* The wire protocol versions this build speaks; the handshake picks the
 * highest one both ends support. */
#define GP_PROTOCOL_VERSION_MIN 1
#define GP_PROTOCOL_VERSION_MAX 1

/* HelloReply.features bits (docs/protocol.md, HELLO). */
/* The server keeps module images that other sessions uploaded: a client
 * names a new image by its digest first, and uploads it only when asked
 * (need_image). */
#define GP_FEATURE_SHARED_IMAGES (1ull << 0)
/* The server accepts zstd-compressed MEMCPY_HTOD payloads and compresses
 * MEMCPY_DTOH replies when asked (protocol/zchunk.h). */
#define GP_FEATURE_ZSTD (1ull << 1)

#define GP_DEFAULT_SERVER_PORT 7471
#define GP_DEFAULT_BROKER_PORT 7470

/* Environment variables read by the client library (libcuda.so.1). */
#define GP_ENV_SERVER "GPUPOOL_SERVER"           /* host[:port] of the pool server */
#define GP_ENV_TRACE "GPUPOOL_TRACE"             /* 1: log every driver call to stderr */
#define GP_ENV_CONNECT_TIMEOUT "GPUPOOL_CONNECT_TIMEOUT" /* seconds, default 10 */
#define GP_ENV_LIB_DIR "GPUPOOL_LIB_DIR"         /* gpupool attach: where libcuda.so.1 is */
#define GP_ENV_IO_TIMEOUT "GPUPOOL_IO_TIMEOUT"   /* seconds a dead link may go unnoticed, default 5 */
#define GP_ENV_BROKER "GPUPOOL_BROKER"           /* host[:port] of the broker */
#define GP_ENV_TOKEN "GPUPOOL_TOKEN"             /* the tenant's API token */
#define GP_ENV_TOKEN_FILE "GPUPOOL_TOKEN_FILE"   /* a file holding it */
#define GP_ENV_MEM "GPUPOOL_MEM"                 /* memory to ask the broker for (8G) */
#define GP_ENV_LABELS "GPUPOOL_LABELS"           /* k=v[,k=v...] the server must have */
#define GP_ENV_POLL_US "GPUPOOL_POLL_US"         /* busy-poll window, us (50; 0: off) */
#define GP_ENV_COMPRESS "GPUPOOL_COMPRESS"       /* auto (default), on or off */
#define GP_ENV_LINK_MBPS "GPUPOOL_LINK_MBPS"     /* the link's speed, Mbit/s */
#define GP_ENV_STATS "GPUPOOL_STATS"             /* FILE: counters written at exit */
#define GP_ENV_SERVER_NAME "GPUPOOL_SERVER_NAME" /* through the broker: this server only */
#define GP_ENV_TLS_CA "GPUPOOL_TLS_CA"           /* CA file that verifies servers and the broker */
#define GP_ENV_INSECURE "GPUPOOL_INSECURE"       /* 1: plain TCP, loopback peers only */
#define GP_ENV_INSECURE_ANY_ADDRESS "GPUPOOL_INSECURE_ANY_ADDRESS" /* 1: plain TCP to any address */
#define GP_ENV_CONFIG "GPUPOOL_CONFIG"           /* client.conf path (default
                                                    $XDG_CONFIG_HOME/gpupool/client.conf) */

#endif
