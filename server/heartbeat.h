/* The worker's heartbeat: while one request runs for more than 200 ms
 * (a kernel on the emulated device, a synchronize on a GPU), a thread of
 * the worker sends the client a BUSY notice twice a second, so that a
 * client waiting for a reply can tell a busy server from a frozen one
 * (see docs/protocol.md, "Server notices"). The same thread watches the
 * connection: when the client hangs up during a long request, it raises a
 * cancel flag the backend checks, so an abandoned kernel stops; if the
 * request still runs GP_HEARTBEAT_ABANDON_MS later, it ends the worker.
 *
 * The worker's own thread and the heartbeat thread never write to the wire
 * at once: gp__heartbeat_idle() returns only once the heartbeat thread has
 * finished any frame it was writing, and the heartbeat thread writes only
 * between gp__heartbeat_busy() and gp__heartbeat_idle(), when the worker
 * does not touch the wire.
 */
#ifndef GP_SERVER_HEARTBEAT_H
#define GP_SERVER_HEARTBEAT_H

#include <stdbool.h>

#include "wire.h"

/* A request running this long gets a BUSY notice, and then one per
 * period: well under a second, so that even a client with a one-second
 * reply-silence timeout (GPUPOOL_IO_TIMEOUT=1) keeps waiting. */
#define GP_HEARTBEAT_FIRST_MS 200
#define GP_HEARTBEAT_PERIOD_MS 500

/* A request still running this long after the client hung up (the backend
 * could not cancel it: a driver call waiting for a GPU kernel) ends the
 * worker process, with status GP_EXIT_CONN_LOST. */
#define GP_HEARTBEAT_ABANDON_MS 2000

struct gp_heartbeat;

/* Starts the heartbeat thread for |wire| (which must outlive it). Returns
 * 0, or GP_ENOMEM when the thread cannot start (the worker then serves
 * without heartbeats; long requests may then time a client out). */
int gp__heartbeat_start(struct gp_wire *wire, struct gp_heartbeat **out);

/* A request starts executing (the wire holds no half-written frame). */
void gp__heartbeat_busy(struct gp_heartbeat *hb);

/* The request is done; the caller may use the wire again. */
void gp__heartbeat_idle(struct gp_heartbeat *hb);

/* A flag that becomes non-zero (read it with __atomic_load_n) once the
 * client has hung up during the current request; cleared by
 * gp__heartbeat_busy(). Never NULL, even for a NULL |hb|. */
const int *gp__heartbeat_cancel_flag(struct gp_heartbeat *hb);

/* --kernel-timeout (docs/security.md): a request that runs a kernel
 * (gp__heartbeat_kernel()) for longer than |ms| (0: never) ends the
 * session. The heartbeat thread then sends the client a ProtocolError
 * (code GP_EKTIMEOUT, "kernel NAME ran over the server's --kernel-timeout
 * of N s; the session was ended") in place of the reply, which its pending
 * call returns as CUDA_ERROR_LAUNCH_TIMEOUT, raises the cancel flag (the
 * emulated device stops the kernel), and, if the request still runs
 * GP_HEARTBEAT_ABANDON_MS later, ends the worker with status
 * GP_EXIT_KERNEL_TIMEOUT. Call before the first request. */
void gp__heartbeat_set_kernel_timeout(struct gp_heartbeat *hb, unsigned ms);

/* The current request (between gp__heartbeat_busy() and _idle()) runs or
 * waits for kernel |name| (copied; cut to 127 bytes). */
void gp__heartbeat_kernel(struct gp_heartbeat *hb, const char *name);

/* True once a kernel ran over the kernel timeout: the client has been
 * told, the session is over, and nothing more may be written. */
bool gp__heartbeat_timed_out(struct gp_heartbeat *hb);

/* Stops the thread and frees |hb|; NULL is a no-op. */
void gp__heartbeat_stop(struct gp_heartbeat *hb);

#endif
