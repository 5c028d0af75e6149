/*
 * file_sink.c - the "file" sink: records as NDJSON appended to a local file.
 *
 * Place in the pipeline: the last hop for local archives and for feeding
 * other shippers that tail a file. Each record is host->to_json() plus
 * "\n". A batch is acknowledged (LF_DELIVER_OK) only once its bytes are
 * written and, with fsync = true, fdatasync()ed.
 *
 * A batch is written in pieces of about FILE_PIECE as it is rendered, and
 * with fsync = true each piece's writeback is started at once
 * (sync_file_range, a hint only): the device writes piece k while piece
 * k+1 is rendered, so the fdatasync() that still ends every batch, and
 * alone decides the acknowledgement, waits for little more than the last
 * piece and the journal commit. Writing the whole batch and then syncing
 * it left the device idle while rendering and the agent idle while
 * syncing (bench/bench_e2e.py: fdatasync was ~1/3 of the drain's time).
 *
 * A batch is all or nothing in the file: on a write or sync error the file
 * is truncated back to its size before the batch, so no partial line
 * stays, and the answer is LF_DELIVER_RETRY (the core backs off and offers
 * the batch again).
 *
 * The path is stat()ed before every batch: if the file was deleted or
 * moved away (logrotate without copytruncate), a fresh one is opened at the
 * path. The sink's own rotation renames the file to
 * <path>.<UTC yyyymmddThhmmssZ>.<n>, never replacing an existing file, and
 * happens between batches, so a file can pass rotate_bytes by one batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <logferry/sink.h>

#include "../shared/fdio.h"

/* One write() covers at most this much of a batch; the batch buffer is
 * this big unless a single line needs more. Small enough that the device
 * starts on a batch early (see the top of the file) and that the piece just
 * rendered is still in the CPU's cache when write() copies it into the page
 * cache (L2 is 1 MiB per core on the benchmark VM), large enough that
 * syscalls stay few. With 4 MB pieces that copy ran from L3/DRAM, and 2-3x
 * slower whenever another process streamed memory on the other core (the
 * spool's writer): it was most of the extra agent CPU of bench_e2e's live
 * case over its backlog case (agent system time 0.52-0.61 s per 1M records
 * with 4 MB pieces, 0.26-0.35 s with 1 MB; 512 KB measured as 1 MB). */
#define FILE_PIECE (1024u * 1024u)
/* Longest line we build. A record is at most 4 MiB encoded and escaping
 * grows text at most 6x, so real records stay well below this. */
#define FILE_LINE_MAX (32u * 1024u * 1024u)
/* Rotation suffixes tried per second before giving up. */
#define FILE_ROTATE_TRIES 1000

enum { K_PATH, K_ROTATE_BYTES, K_ROTATE_AGE, K_FSYNC, K_MODE, K_COUNT };

static const lf_conf_key file_keys[K_COUNT] = {
    [K_PATH] = {"path", LF_CONF_STRING, 1, NULL, 1, PATH_MAX - 32, NULL,
                "File the records are appended to, one JSON object per "
                "line; missing directories above it are created."},
    [K_ROTATE_BYTES] = {"rotate_bytes", LF_CONF_SIZE, 0, "100MB", 0, INT64_MAX,
                        NULL,
                        "Rotate the file before a batch once it has reached "
                        "this size; 0 never rotates by size."},
    [K_ROTATE_AGE] = {"rotate_age", LF_CONF_DURATION, 0, "0", 0, INT64_MAX,
                      NULL,
                      "Rotate a non-empty file this long after the sink "
                      "opened it; 0 never rotates by age."},
    [K_FSYNC] = {"fsync", LF_CONF_BOOL, 0, "true", 1, 0, NULL,
                 "fdatasync() each batch before acknowledging it; false "
                 "trades crash safety for speed."},
    [K_MODE] = {"mode", LF_CONF_STRING, 0, "0640", 1, 4, NULL,
                "Permissions, in octal, of files the sink creates (the "
                "umask still applies)."},
};

typedef struct file_sink {
    const lf_host *host;
    const char *path; /* borrowed from the config values */
    int64_t rotate_bytes;
    int64_t rotate_age_ns;
    int fsync;
    mode_t mode;

    int fd; /* -1 when closed (reopened at the next batch) */
    dev_t dev;
    ino_t ino;
    int64_t opened_ns; /* host clock when we opened it, for rotate_age */
    off_t dirty_from;  /* >= 0: a failed batch left bytes past this */

    char *buf; /* batch buffer: FILE_PIECE, more for one long line */
    size_t cap;

    unsigned failed_batches; /* in a row, to log a streak once */
} file_sink;

/* fsync() the directory holding path, so a create or rename in it
 * survives a crash. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return -1;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

/* Open (or create) the file for appending and remember its identity.
 * Returns 0, or -1 with errno set. */
/* A crash (kill -9, power loss) in the middle of a write can leave the
 * last line cut short. Its records were never acknowledged, so the agent
 * delivers them again; cut the stub away first so the file holds only
 * whole JSON lines. Returns 0, or -1 with errno. */
static int repair_torn_line(file_sink *fs, int fd, off_t size)
{
    char buf[64 * 1024];
    off_t end = size;
    while (end > 0 && size - end < (off_t)FILE_LINE_MAX) {
        size_t n = end > (off_t)sizeof buf ? sizeof buf : (size_t)end;
        ssize_t r = pread(fd, buf, n, end - (off_t)n);
        if (r != (ssize_t)n)
            return r < 0 ? -1 : (errno = EIO, -1);
        for (size_t i = n; i > 0; i--)
            if (buf[i - 1] == '\n') {
                off_t keep = end - (off_t)n + (off_t)i;
                if (keep == size)
                    return 0;
                fs->host->log(fs->host, LF_LOG_WARN,
                              "%s ended in a torn line (an earlier crash); "
                              "removed %lld bytes, those records are "
                              "delivered again",
                              fs->path, (long long)(size - keep));
                fs->host->counter_add(fs->host, "torn_lines_removed", 1);
                return ftruncate(fd, keep) == 0 && fdatasync(fd) == 0 ? 0 : -1;
            }
        end -= (off_t)n;
    }
    if (end == 0) {
        fs->host->log(fs->host, LF_LOG_WARN,
                      "%s holds one torn line (an earlier crash); removed "
                      "%lld bytes, those records are delivered again",
                      fs->path, (long long)size);
        return ftruncate(fd, 0) == 0 ? 0 : -1;
    }
    /* No newline in the last FILE_LINE_MAX bytes: not a file we wrote. */
    fs->host->log(fs->host, LF_LOG_WARN,
                  "%s does not end with a newline; appending anyway", fs->path);
    return 0;
}

/* Create the directories above `path` that are missing (0750). */
static void make_parents(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(tmp, 0750); /* EEXIST is fine; open() reports the rest */
        *p = '/';
    }
}

static int file_open(file_sink *fs)
{
    int created = 0;
    int fd = open(fs->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        make_parents(fs->path);
        fd = open(fs->path,
                  O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                  fs->mode);
        created = fd >= 0;
        if (fd < 0 && errno == EEXIST) /* lost a race: it exists now */
            fd = open(fs->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY);
    }
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0 &&
        repair_torn_line(fs, fd, st.st_size) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (created && fs->fsync && fsync_parent(fs->path) != 0)
        fs->host->log(fs->host, LF_LOG_WARN, "fsync of the directory of %s: %s",
                      fs->path, strerror(errno));
    fs->fd = fd;
    fs->dev = st.st_dev;
    fs->ino = st.st_ino;
    fs->opened_ns = fs->host->now_ns(fs->host);
    fs->dirty_from = -1;
    return 0;
}

static void file_close(file_sink *fs)
{
    if (fs->fd >= 0)
        close(fs->fd);
    fs->fd = -1;
    fs->dirty_from = -1;
}

/* Rename the current file to <path>.<UTC time>.<n> with the first n that
 * is free. renameat2(RENAME_NOREPLACE) makes "free" atomic; where the file
 * system lacks it, link() (which also refuses to replace) plus unlink(). */
static int file_rotate(file_sink *fs)
{
    char name[PATH_MAX];
    time_t secs = (time_t)(fs->host->now_ns(fs->host) / 1000000000);
    struct tm tm;
    char stamp[32];
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);

    for (int n = 0; n < FILE_ROTATE_TRIES; n++) {
        int len = snprintf(name, sizeof name, "%s.%s.%d", fs->path, stamp, n);
        if (len < 0 || (size_t)len >= sizeof name) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int rc =
            renameat2(AT_FDCWD, fs->path, AT_FDCWD, name, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = link(fs->path, name);
            if (rc == 0 && unlink(fs->path) != 0) {
                int e = errno;
                unlink(name);
                errno = e;
                return -1;
            }
        }
        if (rc == 0) {
            if (fs->fsync)
                fsync_parent(fs->path);
            fs->host->log(fs->host, LF_LOG_INFO, "rotated %s to %s", fs->path,
                          name);
            fs->host->counter_add(fs->host, "rotations", 1);
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

/* Make fs->fd the file now at fs->path, rotated if due. Returns 0 with
 * *size the file's size, or -1 with errno set and *what naming the step
 * that failed. */
static int file_prepare(file_sink *fs, off_t *size, const char **what)
{
    struct stat st;

    /* A failed batch we could not truncate away: finish that first, or
       the next batch would append after a torn line. */
    *what = "truncate";
    if (fs->fd >= 0 && fs->dirty_from >= 0) {
        if (ftruncate(fs->fd, fs->dirty_from) != 0)
            return -1;
        fs->dirty_from = -1;
    }
    if (fs->fd >= 0) {
        if (stat(fs->path, &st) != 0 || st.st_dev != fs->dev ||
            st.st_ino != fs->ino) {
            fs->host->log(fs->host, LF_LOG_INFO,
                          "%s was moved or deleted; opening a new file",
                          fs->path);
            fs->host->counter_add(fs->host, "reopens", 1);
            file_close(fs);
        }
    }
    *what = "open";
    if (fs->fd < 0 && file_open(fs) != 0)
        return -1;
    if (fstat(fs->fd, &st) != 0)
        return -1;

    int64_t age = fs->host->now_ns(fs->host) - fs->opened_ns;
    if ((fs->rotate_bytes > 0 && st.st_size >= fs->rotate_bytes) ||
        (fs->rotate_age_ns > 0 && st.st_size > 0 && age >= fs->rotate_age_ns)) {
        if (file_rotate(fs) != 0) {
            /* Keep appending: a missed rotation loses nothing. */
            fs->host->log(fs->host, LF_LOG_WARN, "cannot rotate %s: %s",
                          fs->path, strerror(errno));
            fs->opened_ns = fs->host->now_ns(fs->host);
        } else {
            file_close(fs);
            if (file_open(fs) != 0 || fstat(fs->fd, &st) != 0)
                return -1;
        }
    }
    *size = st.st_size;
    return 0;
}

/* Grow the batch buffer to hold need bytes. */
static int buf_reserve(file_sink *fs, size_t need)
{
    if (need <= fs->cap)
        return 0;
    char *nb = realloc(fs->buf, need);
    if (!nb)
        return -1;
    fs->buf = nb;
    fs->cap = need;
    return 0;
}

/* A batch failed at step `what` with errno e after the file had `before`
 * bytes (-1: we never got that far). Cut the file back so no partial line
 * stays, log, and ask the core to retry. */
static lf_deliver_status file_failed(file_sink *fs, const char *what, int e,
                                     off_t before)
{
    const lf_host *h = fs->host;
    const char *note = "";
    if (fs->fd >= 0 && before >= 0) {
        if (ftruncate(fs->fd, before) == 0) {
            note = " (truncated back to the last whole batch)";
        } else {
            note = " (cannot truncate the partial batch yet)";
            fs->dirty_from = before; /* file_prepare() tries again */
        }
    }
    /* The first failure of a streak at ERROR, repeats at DEBUG: the core
       retries with backoff and would otherwise fill the log. */
    h->log(h, fs->failed_batches ? LF_LOG_DEBUG : LF_LOG_ERROR,
           "%s %s: %s%s; will retry", what, fs->path, strerror(e), note);
    fs->failed_batches++;
    h->counter_add(h, "write_errors", 1);
    /* After a failed fdatasync the kernel may have dropped the dirty pages
       and their error state: start over with a new descriptor. */
    if (strcmp(what, "fdatasync") == 0 && fs->dirty_from < 0)
        file_close(fs);
    return LF_DELIVER_RETRY;
}

/* Write piece buf[0..len) at file offset `at` (where O_APPEND puts it: the
 * batch's start plus what the batch wrote so far). With fsync on, start its
 * writeback now so the device works while the next piece is rendered; the
 * batch's fdatasync() still waits for all of it. Returns 0, or -1 with
 * errno set by the write. */
static int write_piece(file_sink *fs, const char *buf, size_t len, off_t at)
{
    if (fd_write_all(fs->fd, buf, len) != 0)
        return -1;
    /* Only a hint: an error here (a pipe, a file system without it) changes
       nothing, fdatasync() reports what matters. */
    if (fs->fsync)
        (void)sync_file_range(fs->fd, at, (off_t)len, SYNC_FILE_RANGE_WRITE);
    return 0;
}

/* Render the batch into fs->buf and write it in pieces of about
 * FILE_PIECE; each piece holds whole lines only. */
static lf_deliver_status file_deliver(void *inst, lf_batch *batch)
{
    file_sink *fs = inst;
    const lf_host *h = fs->host;
    const char *what;
    off_t before = -1;
    size_t len = 0, failed = 0, i = 0;
    uint64_t bytes = 0;

    if (file_prepare(fs, &before, &what) != 0)
        return file_failed(fs, what, errno, -1);
    what = "write";
    while (i < batch->count) {
        size_t n =
            h->to_json(h, &batch->records[i], fs->buf + len, fs->cap - len);
        if (n < fs->cap - len) { /* fits; the NUL's byte takes the '\n' */
            fs->buf[len + n] = '\n';
            len += n + 1;
            i++;
            if (len < FILE_PIECE)
                continue;
        } else if (len == 0) {
            /* One line longer than the buffer: grow, bounded, and render
               it again; past the bound it is refused for good. */
            if (n < FILE_LINE_MAX && buf_reserve(fs, n + 1) == 0)
                continue;
            batch->verdict[i++] = LF_REC_FAIL;
            batch->fail_reason = "JSON line too long for the file sink";
            failed++;
            continue;
        }
        /* Buffer full (or past FILE_PIECE): write it, then go on with the
           record that did not fit, if any. */
        if (write_piece(fs, fs->buf, len, before + (off_t)bytes) != 0)
            return file_failed(fs, what, errno, before);
        bytes += len;
        len = 0;
    }
    if (len > 0 && write_piece(fs, fs->buf, len, before + (off_t)bytes) != 0)
        return file_failed(fs, what, errno, before);
    bytes += len;
    if (fs->fsync && bytes > 0 && fdatasync(fs->fd) != 0)
        return file_failed(fs, "fdatasync", errno, before);

    if (fs->cap > FILE_PIECE) { /* give back a long line's memory */
        char *nb = realloc(fs->buf, FILE_PIECE);
        if (nb) {
            fs->buf = nb;
            fs->cap = FILE_PIECE;
        }
    }
    if (fs->failed_batches) {
        h->log(h, LF_LOG_INFO, "writing to %s again after %u failed batches",
               fs->path, fs->failed_batches);
        fs->failed_batches = 0;
    }
    h->counter_add(h, "bytes", bytes);
    h->counter_add(h, "records", batch->count - failed);
    if (failed) {
        h->counter_add(h, "records_refused", failed);
        return LF_DELIVER_PARTIAL;
    }
    return LF_DELIVER_OK;
}

static int file_flush(void *inst)
{
    file_sink *fs = inst;
    /* With fsync = false the user chose not to sync, also at shutdown. */
    if (fs->fsync && fs->fd >= 0 && fdatasync(fs->fd) != 0) {
        fs->host->log(fs->host, LF_LOG_ERROR, "fdatasync %s: %s", fs->path,
                      strerror(errno));
        return -1;
    }
    return 0;
}

static void file_destroy(void *inst)
{
    file_sink *fs = inst;
    if (!fs)
        return;
    file_close(fs);
    free(fs->buf);
    free(fs);
}

/* Owns nothing of `values` or `host` (both outlive the instance); the
 * instance and its buffer are freed by file_destroy(). */
static int file_create(const lf_conf_value *values, const lf_host *host,
                       void **out, char *err, size_t errlen)
{
    file_sink *fs = calloc(1, sizeof *fs);
    if (!fs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fs->fd = -1;
    fs->dirty_from = -1;
    fs->host = host;
    fs->path = values[K_PATH].s;
    fs->rotate_bytes = values[K_ROTATE_BYTES].i;
    fs->rotate_age_ns = values[K_ROTATE_AGE].i * 1000000;
    fs->fsync = values[K_FSYNC].b;

    if (!fs->path || !fs->path[0]) {
        snprintf(err, errlen, "path: must not be empty");
        goto fail;
    }
    const char *mode = values[K_MODE].s ? values[K_MODE].s : "0640";
    char *end;
    errno = 0;
    long m = strtol(mode, &end, 8);
    if (errno || end == mode || *end || m < 0 || m > 07777) {
        snprintf(err, errlen, "mode: '%s' is not an octal file mode", mode);
        goto fail;
    }
    fs->mode = (mode_t)m;

    fs->buf = malloc(FILE_PIECE);
    if (!fs->buf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    fs->cap = FILE_PIECE;
    /* Open now so a wrong path is a config error, not a retry loop. */
    if (file_open(fs) != 0) {
        snprintf(err, errlen, "path: cannot open %s: %s", fs->path,
                 strerror(errno));
        goto fail;
    }
    *out = fs;
    return 0;

fail:
    file_destroy(fs);
    return -1;
}

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "file",
    .description = "Appends records as JSON lines to a local file, with "
                   "rotation by size or age.",
    .config_keys = file_keys,
    .n_config_keys = K_COUNT,
    .create = file_create,
    .deliver = file_deliver,
    .flush = file_flush,
    .destroy = file_destroy,
    /* A little patience turns a trickle into fewer fsyncs. */
    .batch_linger_ms = 20,
};

LF_SINK_MODULE(ops)
