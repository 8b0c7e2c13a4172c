/* Descriptions of gpupool's internal error codes. */
#include "gpupool/errors.h"

const char *gp_strerror(int err) {
  switch (err) {
  case GP_OK: return "success";
  case GP_EINVAL: return "invalid argument";
  case GP_ENOMEM: return "out of memory";
  case GP_EAGAIN: return "more input needed";
  case GP_ENOTSUP: return "not supported";
  case GP_ENOENT: return "no such object";
  case GP_EAUTH: return "not authenticated (unknown token or key)";
  case GP_EQUOTA: return "over the tenant's quota";
  case GP_ENOFIT: return "no GPU in the pool fits the request";
  case GP_EPERM: return "the admin token is needed";
  case GP_EGRANT: return "grant refused (forged, expired or not for this server)";
  case GP_EIDLE: return "session reclaimed after being idle";
  case GP_EKTIMEOUT: return "a kernel ran over the server's kernel timeout";
  case GP_EPROTO: return "protocol error (malformed frame or message)";
  case GP_ETOOBIG: return "length over the protocol limit";
  case GP_EVERSION: return "no protocol version in common";
  case GP_EIO: return "transport error";
  case GP_ECLOSED: return "connection closed by peer";
  case GP_ETIMEDOUT: return "peer did not answer in time";
  case GP_ETLS: return "TLS failed (handshake, certificate or ALPN)";
  default: return "unknown error";
  }
}
