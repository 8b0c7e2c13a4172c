/* Unit tests of server/disk_cache.c: file names, the eviction plan, and
 * storing and finding images in a real directory (damaged, cut short,
 * symlinked and non-regular files are never served). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_cache.h"
#include "image_cache.h"

START_TEST(test_disk_cache_names) {
  uint8_t sha[32];
  char name[65];

  for (int i = 0; i < 32; i++)
    sha[i] = (uint8_t)(i * 17 + 3);
  gp__disk_cache_name(sha, name);
  ck_assert_uint_eq(strlen(name), 64);
  ck_assert(strncmp(name, "031425", 6) == 0);
  ck_assert(gp__disk_cache_is_image_name(name));
  name[10] = 'A';
  ck_assert(!gp__disk_cache_is_image_name(name));
  name[10] = 'g';
  ck_assert(!gp__disk_cache_is_image_name(name));
  ck_assert(!gp__disk_cache_is_image_name(""));
  ck_assert(!gp__disk_cache_is_image_name(".tmp-1-2-3"));
  gp__disk_cache_name(sha, name);
  name[63] = '\0';
  ck_assert(!gp__disk_cache_is_image_name(name));
  char longer[70];
  gp__disk_cache_name(sha, longer);
  strcat(longer, "0");
  ck_assert(!gp__disk_cache_is_image_name(longer));
}
END_TEST

START_TEST(test_disk_cache_plan) {
  struct gp_disk_entry e[4];

  memset(e, 0, sizeof(e));
  for (int i = 0; i < 4; i++) {
    e[i].size = 100;
    e[i].mtime.tv_sec = 1000 + i;
  }
  e[2].mtime.tv_sec = 500;   /* the oldest */
  e[0].mtime.tv_nsec = 5;    /* 1000.000000005: older than e[1] and e[3] */
  /* Everything fits: nothing goes. */
  ck_assert_uint_eq(gp__disk_cache_plan(e, 4, 400), 400);
  for (int i = 0; i < 4; i++)
    ck_assert(!e[i].victim);
  /* Room for two: the two oldest go, by mtime. */
  ck_assert_uint_eq(gp__disk_cache_plan(e, 4, 250), 200);
  ck_assert(e[2].victim && e[0].victim && !e[1].victim && !e[3].victim);
  /* Nanoseconds count. */
  e[1].mtime.tv_sec = 1000;
  e[1].mtime.tv_nsec = 4;
  ck_assert_uint_eq(gp__disk_cache_plan(e, 4, 250), 200);
  ck_assert(e[2].victim && e[1].victim && !e[0].victim);
  /* A kept entry is never chosen, even if the rest cannot fit. */
  e[2].keep = 1;
  ck_assert_uint_eq(gp__disk_cache_plan(e, 4, 50), 100);
  ck_assert(!e[2].victim && e[0].victim && e[1].victim && e[3].victim);
  ck_assert_uint_eq(gp__disk_cache_plan(e, 0, 0), 0);
}
END_TEST

static char dir[64];
static int dfd;

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/gp_unit_cache_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  dfd = gp__disk_cache_open(dir);
  ck_assert_int_ge(dfd, 0);
}

static void teardown(void) {
  close(dfd);
  gp__disk_cache_remove_dir(dir);
}

static void path_of(const uint8_t sha[32], char *out, size_t len) {
  char name[65];
  gp__disk_cache_name(sha, name);
  snprintf(out, len, "%s/%s", dir, name);
}

START_TEST(test_disk_cache_put_get) {
  uint8_t data[1000], sha[32], *got;
  char why[256], path[200];
  size_t len;
  struct stat st;

  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 7);
  ck_assert_int_eq(gp__sha256(data, sizeof(data), sha), 0);
  /* Absent. */
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  ck_assert_str_eq(why, "");
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha, data, sizeof(data), 1 << 20,
                                      why, sizeof(why)), 0);
  path_of(sha, path, sizeof(path));
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0600);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 1);
  ck_assert_uint_eq(len, sizeof(data));
  ck_assert(memcmp(got, data, len) == 0);
  free(got);
  /* Over the reader's bound: not served. */
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 999, &got, &len, why,
                                      sizeof(why)), 0);
  ck_assert_ptr_null(got);
  /* An image over the limit is not stored. */
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha, data, sizeof(data), 999,
                                      why, sizeof(why)), -1);

  /* A flipped byte: not served, and deleted. */
  gp__disk_cache_put(dfd, sha, data, sizeof(data), 1 << 20, why, sizeof(why));
  int fd = open(path, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t b = data[500] ^ 0x80;
  ck_assert_int_eq(pwrite(fd, &b, 1, 500), 1);
  close(fd);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  ck_assert_ptr_null(got);
  ck_assert(strstr(why, "does not match") != NULL);
  ck_assert_int_ne(lstat(path, &st), 0);

  /* Cut short (and empty): the same. */
  gp__disk_cache_put(dfd, sha, data, sizeof(data), 1 << 20, why, sizeof(why));
  ck_assert_int_eq(truncate(path, 999), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  ck_assert_int_ne(lstat(path, &st), 0);
  gp__disk_cache_put(dfd, sha, data, sizeof(data), 1 << 20, why, sizeof(why));
  ck_assert_int_eq(truncate(path, 0), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);

  /* A symlink to the right bytes: not followed, removed. */
  char other[200];
  snprintf(other, sizeof(other), "%s/other", dir);
  fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
  close(fd);
  ck_assert_int_eq(symlink(other, path), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  ck_assert(strstr(why, "symlink") != NULL);
  ck_assert_int_ne(lstat(path, &st), 0);
  ck_assert_int_eq(lstat(other, &st), 0); /* its target untouched */
  unlink(other);

  /* A FIFO or a directory under the name: not read (nor blocked on). */
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  unlink(path);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 0);
  rmdir(path);
  /* Storing replaces whatever file was there. */
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha, data, sizeof(data), 1 << 20,
                                      why, sizeof(why)), 0);
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha, 1 << 20, &got, &len, why,
                                      sizeof(why)), 1);
  free(got);
}
END_TEST

START_TEST(test_disk_cache_evict) {
  uint8_t data[3][400], sha[3][32], *got;
  char why[256], path[200];
  size_t len;
  struct stat st;
  struct timespec t[2] = {{0, 0}, {0, 0}};

  for (int k = 0; k < 3; k++) {
    memset(data[k], 'a' + k, sizeof(data[k]));
    gp__sha256(data[k], sizeof(data[k]), sha[k]);
  }
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha[0], data[0], 400, 1000, why,
                                      sizeof(why)), 0);
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha[1], data[1], 400, 1000, why,
                                      sizeof(why)), 0);
  /* Make the first the older one, then use it: the second is now the
   * least recently used. */
  for (int k = 0; k < 2; k++) {
    path_of(sha[k], path, sizeof(path));
    t[0].tv_sec = t[1].tv_sec = 1000000 + k;
    ck_assert_int_eq(utimensat(AT_FDCWD, path, t, 0), 0);
  }
  ck_assert_int_eq(gp__disk_cache_get(dfd, sha[0], 1000, &got, &len, why,
                                      sizeof(why)), 1);
  free(got);
  /* A stale temporary file from a crashed writer goes too; a fresh one
   * stays (another writer's). */
  char stale[200], fresh[200];
  snprintf(stale, sizeof(stale), "%s/.tmp-1-2-3", dir);
  snprintf(fresh, sizeof(fresh), "%s/.tmp-4-5-6", dir);
  close(open(stale, O_WRONLY | O_CREAT, 0600));
  close(open(fresh, O_WRONLY | O_CREAT, 0600));
  t[0].tv_sec = t[1].tv_sec = 1000;
  ck_assert_int_eq(utimensat(AT_FDCWD, stale, t, 0), 0);
  ck_assert_int_eq(gp__disk_cache_put(dfd, sha[2], data[2], 400, 1000, why,
                                      sizeof(why)), 0);
  path_of(sha[0], path, sizeof(path));
  ck_assert_int_eq(lstat(path, &st), 0);
  path_of(sha[1], path, sizeof(path));
  ck_assert_int_ne(lstat(path, &st), 0);
  path_of(sha[2], path, sizeof(path));
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert_int_ne(lstat(stale, &st), 0);
  ck_assert_int_eq(lstat(fresh, &st), 0);
  unlink(fresh);
}
END_TEST

static Suite *disk_cache_suite(void) {
  Suite *s = suite_create("disk_cache");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, test_disk_cache_names);
  tcase_add_test(tc, test_disk_cache_plan);
  suite_add_tcase(s, tc);
  tc = tcase_create("files");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_disk_cache_put_get);
  tcase_add_test(tc, test_disk_cache_evict);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(disk_cache_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
