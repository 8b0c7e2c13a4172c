/* The server's module images on disk (see disk_cache.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_cache.h"
#include "image_cache.h"

void gp__disk_cache_name(const uint8_t sha256[32], char out[65]) {
  static const char hex[] = "0123456789abcdef";
  int i;

  for (i = 0; i < 32; i++) {
    out[2 * i] = hex[sha256[i] >> 4];
    out[2 * i + 1] = hex[sha256[i] & 15];
  }
  out[64] = '\0';
}

int gp__disk_cache_is_image_name(const char *name) {
  int i;

  for (i = 0; i < 64; i++)
    if (!((name[i] >= '0' && name[i] <= '9') ||
          (name[i] >= 'a' && name[i] <= 'f')))
      return 0;
  return name[64] == '\0';
}

static int older(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec != b->tv_sec ? a->tv_sec < b->tv_sec
                                : a->tv_nsec < b->tv_nsec;
}

uint64_t gp__disk_cache_plan(struct gp_disk_entry *e, size_t n,
                             uint64_t limit) {
  uint64_t total = 0;
  size_t i;

  for (i = 0; i < n; i++) {
    e[i].victim = 0;
    total += e[i].size;
  }
  /* n is bounded (GP_DISK_CACHE_SCAN_MAX) and eviction is rare: one pass
   * for the oldest per file deleted is enough. */
  while (total > limit) {
    size_t best = n;
    for (i = 0; i < n; i++)
      if (!e[i].keep && !e[i].victim &&
          (best == n || older(&e[i].mtime, &e[best].mtime)))
        best = i;
    if (best == n)
      break;
    e[best].victim = 1;
    total -= e[best].size;
  }
  return total;
}

int gp__disk_cache_open(const char *path) {
  return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int gp__disk_cache_get(int dirfd, const uint8_t sha256[32], uint64_t max,
                       uint8_t **data, size_t *len, char *why,
                       size_t whylen) {
  uint8_t digest[32];
  char name[65];
  struct stat st;
  uint8_t *buf;
  size_t got = 0;
  int fd;

  why[0] = '\0';
  *data = NULL;
  *len = 0;
  gp__disk_cache_name(sha256, name);
  /* O_NONBLOCK: a FIFO planted under the name must not block the open. */
  fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) {
      snprintf(why, whylen, "%s is a symlink: deleted", name);
      unlinkat(dirfd, name, 0);
    } else if (errno != ENOENT) {
      snprintf(why, whylen, "cannot open %s: %s", name, strerror(errno));
    }
    return 0;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, whylen, "%s is not a regular file", name);
    close(fd);
    return 0;
  }
  if (st.st_size <= 0 || (uint64_t)st.st_size > max) {
    snprintf(why, whylen, "%s has %lld bytes: deleted", name,
             (long long)st.st_size);
    close(fd);
    unlinkat(dirfd, name, 0);
    return 0;
  }
  buf = malloc((size_t)st.st_size);
  if (!buf) {
    close(fd);
    return -1;
  }
  /* Read to the size fstat gave; a file that is shorter (or longer) now
   * fails the digest below like any other damage. */
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  if (got != (size_t)st.st_size || gp__sha256(buf, got, digest) != 0 ||
      memcmp(digest, sha256, 32) != 0) {
    snprintf(why, whylen, "%s does not match its SHA-256: deleted", name);
    free(buf);
    close(fd);
    unlinkat(dirfd, name, 0);
    return 0;
  }
  /* Used now: last to be evicted. */
  futimens(fd, NULL);
  close(fd);
  *data = buf;
  *len = got;
  return 1;
}

/* Deletes the least recently used images (and stale temporary files) of
 * |dirfd| until at most |limit| bytes remain, never |keep|. Looks at no
 * more than GP_DISK_CACHE_SCAN_MAX entries. */
static void evict(int dirfd, const char *keep, uint64_t limit) {
  struct gp_disk_entry *e;
  char (*names)[65];
  struct dirent *d;
  struct timespec now;
  uint64_t total = 0;
  size_t n = 0, seen = 0, i;
  DIR *dir;
  int fd;

  e = calloc(GP_DISK_CACHE_SCAN_MAX, sizeof(*e));
  names = calloc(GP_DISK_CACHE_SCAN_MAX, sizeof(*names));
  fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!e || !names || !dir) {
    if (dir)
      closedir(dir);
    else if (fd >= 0)
      close(fd);
    free(e);
    free(names);
    return;
  }
  clock_gettime(CLOCK_REALTIME, &now);
  while (seen < GP_DISK_CACHE_SCAN_MAX && (d = readdir(dir)) != NULL) {
    struct stat st;
    int image = gp__disk_cache_is_image_name(d->d_name);
    int tmp = strncmp(d->d_name, GP_DISK_CACHE_TMP_PREFIX,
                      sizeof(GP_DISK_CACHE_TMP_PREFIX) - 1) == 0;
    if (!image && !tmp)
      continue;
    seen++;
    if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    if (tmp) {
      if (st.st_mtim.tv_sec + GP_DISK_CACHE_STALE_TMP_S < now.tv_sec)
        unlinkat(dirfd, d->d_name, 0);
      continue;
    }
    e[n].size = (uint64_t)st.st_size;
    e[n].mtime = st.st_mtim;
    e[n].keep = strcmp(d->d_name, keep) == 0;
    memcpy(names[n], d->d_name, 65);
    total += e[n].size;
    n++;
  }
  closedir(dir);
  if (total > limit) {
    gp__disk_cache_plan(e, n, limit);
    for (i = 0; i < n; i++)
      if (e[i].victim)
        unlinkat(dirfd, names[i], 0); /* gone already: just as well */
  }
  free(e);
  free(names);
}

int gp__disk_cache_put(int dirfd, const uint8_t sha256[32], const void *data,
                       size_t len, uint64_t limit, char *why, size_t whylen) {
  static unsigned counter;
  char name[65], tmp[96];
  uint8_t rnd[8];
  size_t done = 0;
  int fd, tries;

  why[0] = '\0';
  if (len == 0 || len > limit) {
    snprintf(why, whylen, "a %zu-byte image does not fit in %llu bytes",
             len, (unsigned long long)limit);
    return -1;
  }
  gp__disk_cache_name(sha256, name);
  fd = -1;
  for (tries = 0; tries < 8 && fd < 0; tries++) {
    uint64_t r = 0;
    if (getentropy(rnd, sizeof(rnd)) == 0)
      memcpy(&r, rnd, sizeof(r));
    snprintf(tmp, sizeof(tmp), "%s%ld-%u-%016llx", GP_DISK_CACHE_TMP_PREFIX,
             (long)getpid(), counter++, (unsigned long long)r);
    fd = openat(dirfd, tmp,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0) {
    snprintf(why, whylen, "cannot create a file in the image cache: %s",
             strerror(errno));
    return -1;
  }
  while (done < len) {
    ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      snprintf(why, whylen, "cannot write to the image cache: %s",
               n < 0 ? strerror(errno) : "short write");
      close(fd);
      unlinkat(dirfd, tmp, 0);
      return -1;
    }
    done += (size_t)n;
  }
  if (close(fd) != 0 || renameat(dirfd, tmp, dirfd, name) != 0) {
    snprintf(why, whylen, "cannot store %s in the image cache: %s", name,
             strerror(errno));
    unlinkat(dirfd, tmp, 0);
    return -1;
  }
  evict(dirfd, name, limit);
  return 0;
}

void gp__disk_cache_remove_dir(const char *path) {
  struct dirent *d;
  DIR *dir;
  int fd;

  fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return;
  }
  while ((d = readdir(dir)) != NULL)
    if (gp__disk_cache_is_image_name(d->d_name) ||
        strncmp(d->d_name, GP_DISK_CACHE_TMP_PREFIX,
                sizeof(GP_DISK_CACHE_TMP_PREFIX) - 1) == 0)
      unlinkat(fd, d->d_name, 0);
  closedir(dir);
  rmdir(path);
}

void gp__disk_cache_reap_private(const char *tmpdir) {
  const size_t plen = sizeof(GP_DISK_CACHE_PRIVATE_PREFIX) - 1;
  struct dirent *d;
  size_t seen = 0;
  DIR *dir;

  dir = opendir(tmpdir);
  if (!dir)
    return;
  while (seen++ < GP_DISK_CACHE_SCAN_MAX && (d = readdir(dir)) != NULL) {
    char path[4096], *end;
    struct stat st;
    long pid;

    if (strncmp(d->d_name, GP_DISK_CACHE_PRIVATE_PREFIX, plen) != 0)
      continue;
    errno = 0;
    pid = strtol(d->d_name + plen, &end, 10);
    if (errno || pid <= 0 || end[0] != '-' || strlen(end + 1) != 6)
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmpdir, d->d_name) >=
        sizeof(path))
      continue;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid())
      continue;
    gp__disk_cache_remove_dir(path);
  }
  closedir(dir);
}
