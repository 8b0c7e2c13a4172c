/* gpupool's internal error codes.
 *
 * Functions in gpupool return an int: 0 on success, a negative GP_E* code on
 * failure. Codes below GP_E_FATAL mean the connection they happened on is
 * finished and must be closed; codes above it leave the connection usable.
 * Numbers are never reused (see STYLE.md, rule 10).
 */
#ifndef GPUPOOL_ERRORS_H
#define GPUPOOL_ERRORS_H

#define GP_OK 0

/* Recoverable: the call failed, the connection is still good. */
#define GP_EINVAL (-1)   /* an argument is out of range */
#define GP_ENOMEM (-2)   /* an allocation failed */
#define GP_EAGAIN (-3)   /* more input is needed before anything can be said */
#define GP_ENOTSUP (-4)  /* not implemented (yet) */
#define GP_ENOENT (-5)   /* no such object */
/* The broker's and the grants' answers (docs/broker.md). */
#define GP_EAUTH (-6)    /* unknown token, or a server's bad registration */
#define GP_EQUOTA (-7)   /* over the tenant's quota */
#define GP_ENOFIT (-8)   /* no up GPU fits the request */
#define GP_EPERM (-9)    /* the admin token is needed */
#define GP_EGRANT (-10)  /* a grant that is forged, expired or not for us */
#define GP_EIDLE (-11)   /* the session was reclaimed after being idle */
#define GP_EKTIMEOUT (-12) /* a kernel ran over the server's
                            * --kernel-timeout: the session was ended */

/* Fatal: the connection must be closed. */
#define GP_E_FATAL (-100)
#define GP_EPROTO (-101)    /* malformed frame or message */
#define GP_ETOOBIG (-102)   /* a length is over its limit */
#define GP_EVERSION (-103)  /* no protocol version in common */
#define GP_EIO (-104)       /* the transport failed (errno has the reason) */
#define GP_ECLOSED (-105)   /* the peer closed the connection */
#define GP_ETIMEDOUT (-106) /* the peer did not answer in time */
#define GP_ETLS (-107)      /* TLS failed (handshake, certificate, ALPN) */

/* True when |err| ends the connection it happened on. */
#define GP_IS_FATAL(err) ((err) <= GP_E_FATAL)

/* A short constant English description of |err|; never NULL. */
const char *gp_strerror(int err);

#endif
