/*
 * retention.c - segment ages and purges. See retention.h.
 */
#include "retention.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool_format.h"
#include "spool_reader.h"
#include "tail.h"

int retention_segment_age(const char *path, int64_t now_ns, int64_t *age_ms,
                          int *live)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    *age_ms = (now_ns - mt) / 1000000LL;
    *live = 0;
    spool_reader *rd;
    char err[256];
    if (spool_reader_open(path, &rd, err, sizeof err) == 0) {
        *live = spool_reader_is_live(rd) == 1;
        spool_reader_close(rd);
    }
    return 0;
}

int retention_segment_created_age(const char *path, int64_t now_ns,
                                  int64_t *age_ms)
{
    spool_reader *rd;
    char err[256];
    if (spool_reader_open(path, &rd, err, sizeof err) != 0)
        return -1;
    *age_ms = (now_ns - spool_reader_header(rd)->created_ns) / 1000000LL;
    spool_reader_close(rd);
    return 0;
}

uint64_t retention_frames_from(const char *path, uint64_t offset)
{
    spool_reader *rd;
    char err[256];
    if (spool_reader_open(path, &rd, err, sizeof err) != 0)
        return 0;
    uint64_t n = 0;
    if (offset <= SPOOL_HEADER_SIZE || spool_reader_seek(rd, offset) == 0) {
        spool_read_event ev;
        spool_read_result st;
        while ((st = spool_reader_finish(rd, &ev)) != SPOOL_READ_END &&
               st != SPOOL_READ_ERROR)
            n += st == SPOOL_READ_FRAME;
    }
    spool_reader_close(rd);
    return n;
}

unsigned retention_sweep_dir(const char *dir, int64_t max_age_ms,
                             int64_t now_ns, uint64_t *records)
{
    size_t n;
    char err[512];
    char **names = spool_list_segments(dir, &n, err, sizeof err);
    if (!names)
        return 0;
    unsigned removed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int64_t age;
        int live;
        if (retention_segment_age(path, now_ns, &age, &live) != 0 || live ||
            age < max_age_ms)
            continue;
        uint64_t frames = retention_frames_from(path, 0);
        if (unlink(path) == 0) {
            removed++;
            *records += frames;
        } else if (errno != ENOENT) {
            log_warn("msg=\"cannot purge expired segment\" path=%s "
                     "error=\"%s\"",
                     path, strerror(errno));
        }
    }
    spool_watch_free_list(names, n);
    return removed;
}
