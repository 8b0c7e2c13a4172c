/* The emulated device's shared memory (--emu-shared-memory, docs/
 * emulated-device.md "Shared device memory"): one server-wide mapping that
 * every session's allocations come from, so that what one session leaves
 * in device memory is what the next one may get, as on a real GPU.
 *
 * The supervisor creates it (a memfd: a header page or more, then the
 * device memory) and passes it to each worker on a fixed fd. Every worker
 * maps it MAP_SHARED at the same address when it can, so device addresses
 * name the same bytes in every session. The header holds a process-shared
 * robust mutex and the table of allocated blocks, sorted by offset, each
 * with the pid of the worker that owns it. Allocation is first fit over
 * the gaps between blocks. When a worker exits, the supervisor frees its
 * blocks (emu_shared_reap()); their contents stay.
 *
 * Which blocks a session may touch is not decided here: each worker's
 * arena (arena.h) keeps its own allocations, and only those pass its
 * bounds checks. Another session's addresses are never in that list.
 */
#ifndef GP_EMU_SHARED_H
#define GP_EMU_SHARED_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The most blocks allocated at once across all sessions; beyond it an
 * allocation fails with CUDA_ERROR_OUT_OF_MEMORY. */
#define EMU_SHARED_MAX_BLOCKS 65536u

struct emu_shared; /* the header, inside the mapping */

/* Creates the shared memory for |size| bytes of device memory (rounded up
 * to the page size): a memfd, sized and with an empty table. Returns the
 * fd (close-on-exec set; the caller hands it to workers), or -1 with errno
 * set. */
int emu_shared_create(uint64_t size);

/* Maps the header of the shared memory on |fd| (the supervisor's view: no
 * device memory). Returns it, or NULL with errno set. */
struct emu_shared *emu_shared_map_header(int fd);

/* Maps all of the shared memory on |fd|, the device memory at |hint| when
 * the kernel lets us (else anywhere). Sets |*mem| and |*size| to the
 * device memory. Returns the header, or NULL with errno set. */
struct emu_shared *emu_shared_map(int fd, uint64_t hint_end, uint8_t **mem,
                                  uint64_t *size);

/* Unmaps what emu_shared_map() (|all| true) or emu_shared_map_header()
 * (|all| false) mapped. */
void emu_shared_unmap(struct emu_shared *s, bool all);

/* Takes |span| bytes (a multiple of 512) for |owner|, first fit, and sets
 * |*off| to their offset in the device memory. Returns 0, or -1 when no
 * gap holds them or the table is full. */
int emu_shared_take(struct emu_shared *s, uint64_t span, pid_t owner,
                    uint64_t *off);

/* Frees the block at |off| if |owner| holds it. Returns 0 or -1. */
int emu_shared_put(struct emu_shared *s, uint64_t off, pid_t owner);

/* Frees every block of |owner| (a worker that exited), zeroing them first
 * when |zero_fd| (the memfd) is not -1: a worker that ends normally gives
 * its blocks back itself, after its own scrub, so what is left here is a
 * crashed or killed worker's. Returns the bytes freed. */
uint64_t emu_shared_reap(struct emu_shared *s, pid_t owner, int zero_fd);

/* Bytes of device memory no block holds. */
uint64_t emu_shared_free_bytes(struct emu_shared *s);

#endif
