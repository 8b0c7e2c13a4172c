/* The server's module images on disk, shared by all its sessions
 * (docs/server.md, "Modules"): a directory of files named by the
 * lowercase hex SHA-256 of their bytes.
 *
 * A worker writes an image there only after it checked the uploaded bytes
 * against their digest, through a temporary file (O_EXCL, mode 0600) and a
 * rename, so a name never shows a half-written file. A worker reading an
 * image checks its SHA-256 again before use: a file that does not match
 * (damaged, truncated, planted) is deleted and treated as absent. Symlinks
 * and other non-regular files are never followed or read.
 *
 * The directory stays under a size limit: the worker that adds a file
 * deletes the least recently used ones (by mtime; a use sets it). Workers
 * do this concurrently; a file another worker deleted first is no error.
 */
#ifndef GP_SERVER_DISK_CACHE_H
#define GP_SERVER_DISK_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GP_DISK_CACHE_DEFAULT_SIZE (1ull << 30)

/* The most directory entries one eviction looks at: bounded work. */
#define GP_DISK_CACHE_SCAN_MAX 8192

/* Temporary files older than this are a crashed writer's; eviction
 * deletes them. */
#define GP_DISK_CACHE_STALE_TMP_S 3600

/* The prefix of temporary files' names. */
#define GP_DISK_CACHE_TMP_PREFIX ".tmp-"

/* |sha256| as 64 lowercase hex digits and a NUL. */
void gp__disk_cache_name(const uint8_t sha256[32], char out[65]);

/* True if |name| is an image's file name: exactly 64 lowercase hex
 * digits. */
int gp__disk_cache_is_image_name(const char *name);

/* One image file, as eviction sees it. */
struct gp_disk_entry {
  uint64_t size;
  struct timespec mtime;
  int keep;      /* never chosen (the file just added) */
  int victim;    /* out: to delete */
};

/* Chooses which of the |n| entries to delete so that the rest fit in
 * |limit| bytes: the least recently modified first, never one marked
 * |keep|. Sets |victim| on each chosen; returns how many bytes remain. */
uint64_t gp__disk_cache_plan(struct gp_disk_entry *e, size_t n,
                             uint64_t limit);

/* Opens |path| as the cache directory. Returns an O_DIRECTORY fd, or -1
 * with errno set. */
int gp__disk_cache_open(const char *path);

/* Looks up |sha256| in the directory |dirfd|. On a hit, *data (malloc'ed;
 * the caller frees it) and *len hold the bytes, which matched the digest,
 * and the file's mtime is set to now; returns 1. Returns 0 when there is
 * no usable file (none, over |max| bytes, not a regular file, or bytes
 * that do not match: those are deleted), -1 when out of memory. |why|
 * says what was wrong with a file that was found but not used ("" if
 * nothing). */
int gp__disk_cache_get(int dirfd, const uint8_t sha256[32], uint64_t max,
                       uint8_t **data, size_t *len, char *why,
                       size_t whylen);

/* Stores |len| bytes at |data|, whose SHA-256 the caller checked is
 * |sha256|, then evicts down to |limit| bytes. An image over |limit| is
 * not stored. Returns 0, or -1 with |why| (the cache is only a cache: the
 * caller logs it and goes on). */
int gp__disk_cache_put(int dirfd, const uint8_t sha256[32], const void *data,
                       size_t len, uint64_t limit, char *why, size_t whylen);

/* The name of a supervisor's private directory: this prefix, its pid, a
 * dash and mkdtemp's six characters. */
#define GP_DISK_CACHE_PRIVATE_PREFIX "gpupool-images-"

/* Removes (as gp__disk_cache_remove_dir does) the private directories in
 * |tmpdir| that belong to this user and to a process that no longer
 * exists. */
void gp__disk_cache_reap_private(const char *tmpdir);

/* Deletes the images and temporary files in |path| and then |path|
 * itself (the supervisor's private default directory, at exit). */
void gp__disk_cache_remove_dir(const char *path);

#endif
