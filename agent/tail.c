/*
 * tail.c - spool directory watching. See tail.h.
 */
#include "tail.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "spool_format.h"

static int is_segment_name(const char *n)
{
    size_t len = strlen(n), sl = strlen(SPOOL_SEGMENT_SUFFIX);
    /* Hidden names are segments still being created. */
    return n[0] != '.' && len > sl &&
           strcmp(n + len - sl, SPOOL_SEGMENT_SUFFIX) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void spool_watch_free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int spool_watch_open(spool_watch *w, const char *dir, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->ifd = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->dir = strdup(dir);
    if (!w->dir) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (agent_mkdirs(dir) != 0) {
        snprintf(err, errlen, "spool %s: cannot create: %s", dir,
                 strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "spool %s: not a directory", dir);
        return -1;
    }
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd >= 0 &&
        inotify_add_watch(w->ifd, dir,
                          IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE |
                              IN_DELETE | IN_MOVED_FROM) < 0) {
        log_warn("msg=\"inotify unavailable, relying on rescans\" spool=%s "
                 "error=\"%s\"",
                 dir, strerror(errno));
        close(w->ifd);
        w->ifd = -1;
    }
    return spool_watch_scan(w, err, errlen);
}

void spool_watch_close(spool_watch *w)
{
    if (!w->dir)
        return;
    if (w->ifd >= 0)
        close(w->ifd);
    spool_watch_free_list(w->names, w->n);
    free(w->dir);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    memset(w, 0, sizeof *w);
}

char **spool_list_segments(const char *dir, size_t *n_out, char *err,
                           size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot read: %s", dir, strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d))) {
        if (!is_segment_name(e->d_name))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap *= 2) * sizeof *nn);
            if (!nn) {
                spool_watch_free_list(names, n);
                names = NULL;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            spool_watch_free_list(names, n);
            names = NULL;
            break;
        }
        n++;
    }
    closedir(d);
    if (!names) {
        snprintf(err, errlen, "%s: out of memory listing", dir);
        return NULL;
    }
    qsort(names, n, sizeof *names, cmp_str);
    *n_out = n;
    return names;
}

int spool_watch_scan(spool_watch *w, char *err, size_t errlen)
{
    size_t n;
    char **names = spool_list_segments(w->dir, &n, err, errlen);
    if (!names)
        return -1;
    pthread_mutex_lock(&w->lock);
    spool_watch_free_list(w->names, w->n);
    w->names = names;
    w->n = n;
    /* A rescan also stands in for lost IN_MODIFY events: always wake. */
    w->gen++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int spool_watch_poll(spool_watch *w, int timeout_ms)
{
    if (w->ifd < 0) {
        struct timespec ts = {timeout_ms / 1000,
                              (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    struct pollfd p = {.fd = w->ifd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -1 : 0;
    char buf[64 * 1024] __attribute__((aligned(8)));
    int listing = 0, any = 0;
    for (;;) {
        ssize_t len = read(w->ifd, buf, sizeof buf);
        if (len <= 0)
            break;
        for (char *p2 = buf; p2 < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p2;
            any = 1;
            if (ev->mask & (IN_Q_OVERFLOW | IN_CREATE | IN_MOVED_TO |
                            IN_DELETE | IN_MOVED_FROM))
                listing = 1;
            p2 += sizeof *ev + ev->len;
        }
    }
    if (listing) {
        char err[512];
        if (spool_watch_scan(w, err, sizeof err) != 0)
            log_error("msg=\"spool rescan failed\" error=\"%s\"", err);
    } else if (any) {
        spool_watch_kick(w);
    }
    return any;
}

char **spool_watch_list(spool_watch *w, size_t *n, uint64_t *gen)
{
    pthread_mutex_lock(&w->lock);
    char **out = malloc((w->n ? w->n : 1) * sizeof *out);
    size_t i = 0;
    for (; out && i < w->n; i++)
        if (!(out[i] = strdup(w->names[i])))
            break;
    if (out && i < w->n) {
        spool_watch_free_list(out, i);
        out = NULL;
    }
    *n = out ? w->n : 0;
    *gen = w->gen;
    pthread_mutex_unlock(&w->lock);
    return out;
}

uint64_t spool_watch_wait(spool_watch *w, uint64_t seen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (w->gen == seen && !w->stopping)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
            break;
    uint64_t g = w->gen;
    pthread_mutex_unlock(&w->lock);
    return g;
}

void spool_watch_kick(spool_watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->gen++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}
