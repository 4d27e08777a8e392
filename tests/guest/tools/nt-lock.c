/*
 * nt-lock: take a POSIX (fcntl) byte-range lock on a file, for the lock tests that run in the
 * Linux-client VM (its busybox has no such tool). Built statically on the host by
 * tests/harness/linux-client/lock-tree.sh; written for rnfs, no code taken from elsewhere.
 *
 *   nt-lock [-s|-x] [-n] [-r START:LEN] [-t SECS] [-m MARK] [-h FLAG] [-a TEXT] [-u UID:GID] FILE
 *
 *   -s / -x      shared (read) or exclusive (write) lock; default -x
 *   -n           do not wait: F_SETLK instead of F_SETLKW
 *   -r START:LEN the byte range (LEN 0 = to the end of the file, the default 0:0)
 *   -t SECS      longest wait for the lock, and longest hold with -h (default 300)
 *   -m MARK      create the file MARK once the lock is held (a signal to the test script)
 *   -h FLAG      hold the lock until the file FLAG exists (polled every 100 ms)
 *   -a TEXT      then append TEXT and a newline through the locked descriptor, and fsync
 *   -u UID:GID   switch to this user and group (no supplementary groups) before opening FILE:
 *                another user means another NFSv4 open owner on the server
 *
 * Exit status: 0 the lock was taken (and the append, if any, succeeded), then released by
 * exiting; 1 refused with -n because another owner holds a conflicting lock (EAGAIN/EACCES);
 * 2 usage or another error; 3 timed out waiting for the lock or for FLAG; 4 the append failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

static int usage(void)
{
    fprintf(stderr, "usage: nt-lock [-s|-x] [-n] [-r START:LEN] [-t SECS] [-m MARK] [-h FLAG] [-a TEXT] [-u UID:GID] FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    int type = F_WRLCK, nowait = 0, opt, fd;
    long uid = -1, gid = -1;
    long long start = 0, len = 0;
    unsigned secs = 300;
    const char *mark = NULL, *flag = NULL, *text = NULL, *file;
    struct flock fl;
    struct sigaction sa;

    while ((opt = getopt(argc, argv, "sxnr:t:m:h:a:u:")) != -1) {
        switch (opt) {
        case 's': type = F_RDLCK; break;
        case 'x': type = F_WRLCK; break;
        case 'n': nowait = 1; break;
        case 'r':
            if (sscanf(optarg, "%lld:%lld", &start, &len) != 2 || start < 0 || len < 0)
                return usage();
            break;
        case 't': secs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': mark = optarg; break;
        case 'h': flag = optarg; break;
        case 'a': text = optarg; break;
        case 'u':
            if (sscanf(optarg, "%ld:%ld", &uid, &gid) != 2 || uid < 0 || gid < 0)
                return usage();
            break;
        default: return usage();
        }
    }
    if (optind != argc - 1 || secs == 0)
        return usage();
    file = argv[optind];
    if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0)) {
        fprintf(stderr, "nt-lock: switch to %ld:%ld: %s\n", uid, gid, strerror(errno));
        return 2;
    }
    fd = open(file, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        fprintf(stderr, "nt-lock: open %s: %s\n", file, strerror(errno));
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: the alarm interrupts F_SETLKW */
    sigaction(SIGALRM, &sa, NULL);
    memset(&fl, 0, sizeof fl);
    fl.l_type = (short)type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    alarm(secs);
    if (fcntl(fd, nowait ? F_SETLK : F_SETLKW, &fl) < 0) {
        int e = errno;
        if (nowait && (e == EAGAIN || e == EACCES)) {
            printf("nt-lock: %s %lld:%lld: conflict (%s)\n", file, start, len, strerror(e));
            return 1;
        }
        if (e == EINTR) {
            printf("nt-lock: %s %lld:%lld: not granted within %u s\n", file, start, len, secs);
            return 3;
        }
        fprintf(stderr, "nt-lock: fcntl %s: %s\n", file, strerror(e));
        return 2;
    }
    alarm(0);
    printf("nt-lock: %s %lld:%lld: %s lock held by pid %d\n", file, start, len,
           type == F_RDLCK ? "shared" : "exclusive", (int)getpid());
    fflush(stdout);
    if (mark) {
        int m = open(mark, O_WRONLY | O_CREAT, 0644);
        if (m < 0) {
            fprintf(stderr, "nt-lock: create %s: %s\n", mark, strerror(errno));
            return 2;
        }
        close(m);
    }
    if (flag) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        unsigned long waited = 0;
        while (access(flag, F_OK) != 0) {
            if (waited++ >= (unsigned long)secs * 10) {
                printf("nt-lock: %s did not appear within %u s\n", flag, secs);
                return 3;
            }
            nanosleep(&tick, NULL);
        }
    }
    if (text) {
        struct stat st;
        size_t n = strlen(text);
        char *buf = malloc(n + 1);
        if (!buf)
            return 2;
        memcpy(buf, text, n);
        buf[n] = '\n';
        if (fstat(fd, &st) < 0 || pwrite(fd, buf, n + 1, st.st_size) != (ssize_t)(n + 1) ||
            fsync(fd) < 0) {
            printf("nt-lock: append to %s through the locked descriptor: %s\n", file, strerror(errno));
            return 4;
        }
        free(buf);
        printf("nt-lock: appended %zu bytes to %s through the locked descriptor\n", n + 1, file);
    }
    if (close(fd) < 0) {
        printf("nt-lock: close %s: %s\n", file, strerror(errno));
        return 4;
    }
    return 0;
}
