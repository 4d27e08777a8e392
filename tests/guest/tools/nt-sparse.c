/*
 * nt-sparse: the data/hole map of a file through lseek(2) SEEK_DATA/SEEK_HOLE, and the writes
 * that make a sparse file, for the NFSv4.2 SEEK check of the Linux-client VM (busybox has no
 * such tool). The same binary runs on the host, on the server's copy of the file, so the two
 * maps compare as strings. Built statically by tests/harness/linux-client/lock-tree.sh;
 * written for rnfs, no code taken from elsewhere.
 *
 *   nt-sparse map FILE              prints "size N data A-B data C-D ..." (one line)
 *   nt-sparse write FILE OFFSET LEN writes LEN bytes (a pattern, never zero) at OFFSET
 *   nt-sparse size FILE SIZE        sets the size (ftruncate)
 *   nt-sparse copy SRC DST          copies SRC to a new DST with copy_file_range(2) (on an
 *                                   NFSv4.2 mount: COPY), looping until it copies nothing;
 *                                   prints "copied N bytes in C calls"
 *   nt-sparse clone SRC DST         FICLONE of SRC into a new DST (on NFSv4.2: CLONE); prints
 *                                   "cloned" or "clone not supported" (EOPNOTSUPP, EXDEV)
 *
 * Exit status: 0 done, 1 a system call failed (its errno printed), 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int usage(void) {
  fprintf(stderr,
          "usage: nt-sparse map FILE | write FILE OFFSET LEN | size FILE SIZE | copy SRC DST"
          " | clone SRC DST\n");
  return 2;
}

static int fail(const char *what, const char *file) {
  fprintf(stderr, "nt-sparse: %s %s: %s\n", what, file, strerror(errno));
  return 1;
}

static int map(const char *file) {
  int fd = open(file, O_RDONLY);
  struct stat st;
  if (fd < 0) return fail("open", file);
  if (fstat(fd, &st) < 0) return fail("fstat", file);
  printf("size %lld", (long long)st.st_size);
  off_t at = 0;
  while (at < st.st_size) {
    off_t d = lseek(fd, at, SEEK_DATA);
    if (d < 0 && errno == ENXIO) break; /* no data before the end */
    if (d < 0) return fail("SEEK_DATA", file);
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h < 0) return fail("SEEK_HOLE", file);
    if (h <= d) {
      fprintf(stderr, "nt-sparse: %s: SEEK_HOLE from %lld gave %lld\n", file, (long long)d,
              (long long)h);
      return 1;
    }
    printf(" data %lld-%lld", (long long)d, (long long)h);
    at = h;
  }
  printf("\n");
  return 0;
}

static int write_at(const char *file, long long off, long long len) {
  int fd = open(file, O_WRONLY | O_CREAT, 0644);
  char buf[65536];
  if (fd < 0) return fail("open", file);
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(0x41 + i % 26);
  while (len > 0) {
    size_t n = len < (long long)sizeof buf ? (size_t)len : sizeof buf;
    ssize_t w = pwrite(fd, buf, n, (off_t)off);
    if (w <= 0) return fail("pwrite", file);
    off += w;
    len -= w;
  }
  if (fsync(fd) < 0) return fail("fsync", file);
  return close(fd) < 0 ? fail("close", file) : 0;
}

static int copy(const char *src, const char *dst) {
  int in = open(src, O_RDONLY);
  if (in < 0) return fail("open", src);
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) return fail("open", dst);
  long long total = 0, calls = 0;
  for (;;) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
    if (n < 0) return fail("copy_file_range", dst);
    calls++;
    if (n == 0) break;
    total += n;
  }
  if (fsync(out) < 0) return fail("fsync", dst);
  printf("copied %lld bytes in %lld calls\n", total, calls);
  close(in);
  return close(out) < 0 ? fail("close", dst) : 0;
}

static int clone_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY);
  if (in < 0) return fail("open", src);
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) return fail("open", dst);
  if (ioctl(out, FICLONE, in) < 0) {
    if (errno != EOPNOTSUPP && errno != EXDEV) return fail("FICLONE", dst);
    printf("clone not supported\n");
  } else {
    printf("cloned\n");
  }
  close(in);
  return close(out) < 0 ? fail("close", dst) : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "map") == 0) return map(argv[2]);
  if (argc == 5 && strcmp(argv[1], "write") == 0)
    return write_at(argv[2], atoll(argv[3]), atoll(argv[4]));
  if (argc == 4 && strcmp(argv[1], "size") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return fail("open", argv[2]);
    if (ftruncate(fd, (off_t)atoll(argv[3])) < 0) return fail("ftruncate", argv[2]);
    return close(fd) < 0 ? fail("close", argv[2]) : 0;
  }
  if (argc == 4 && strcmp(argv[1], "copy") == 0) return copy(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "clone") == 0) return clone_file(argv[2], argv[3]);
  return usage();
}
