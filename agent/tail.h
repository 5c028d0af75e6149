/*
 * tail.h - watches the spool directory for segments.
 *
 * inotify reports new, grown and removed segments at once; a periodic
 * rescan backs it up (inotify queue overflow, file systems without
 * inotify). Every change bumps a generation number that delivery threads
 * wait on, so a sink wakes when there is something to read and sleeps
 * otherwise.
 */
#ifndef LOGFERRY_TAIL_H
#define LOGFERRY_TAIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct spool_watch {
    char *dir;
    int ifd; /* inotify descriptor, -1 when unavailable */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t gen; /* bumped on every change */
    char **names; /* sorted segment names present at the last scan */
    size_t n;
    int stopping;
} spool_watch;

/* The segment names of directory `dir` (hidden temporary names left
 * out), sorted, i.e. in creation order. Returns an array the caller frees
 * with spool_watch_free_list() and sets *n; NULL with err set when the
 * directory cannot be read. */
char **spool_list_segments(const char *dir, size_t *n, char *err,
                           size_t errlen);

/* Create the spool directory if needed (0700), start watching it and scan
 * it once. Returns 0, or -1 with err naming the directory. */
int spool_watch_open(spool_watch *w, const char *dir, char *err, size_t errlen);

/* Stop watching and free. Accepts a zeroed struct. */
void spool_watch_close(spool_watch *w);

/* Re-read the directory listing; wakes waiters if it changed. Returns 0 or
 * -1 with err (directory unreadable: the old listing is kept). */
int spool_watch_scan(spool_watch *w, char *err, size_t errlen);

/* Wait up to timeout_ms for inotify events and handle them (main thread).
 * Returns 1 if anything happened, 0 on timeout, -1 on error. */
int spool_watch_poll(spool_watch *w, int timeout_ms);

/* Copy of the current listing; the caller frees each name and the array
 * (spool_watch_free_list). *gen receives the generation it belongs to. */
char **spool_watch_list(spool_watch *w, size_t *n, uint64_t *gen);
void spool_watch_free_list(char **names, size_t n);

/* Block until the generation differs from `seen`, the watch is stopping,
 * or timeout_ms passes. Returns the current generation. */
uint64_t spool_watch_wait(spool_watch *w, uint64_t seen, int timeout_ms);

/* Wake every waiter (used on shutdown and reload). */
void spool_watch_kick(spool_watch *w);

#endif
