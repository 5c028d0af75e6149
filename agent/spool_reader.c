/*
 * spool_reader.c - read the frames of one spool segment for the agent;
 * see spool_reader.h for the contract (results, live vs complete).
 *
 * Memory: one buffer that starts at SPOOL_READER_WINDOW and grows at most
 * to the window plus one maximal frame. Bytes past the last validated
 * frame are never trusted across calls: an END drops them so the next call
 * reads them again. That covers a writer that cut a partial frame off after
 * a failed write (ENOSPC) and later wrote other bytes there; a writer never
 * removes a whole frame, so a file shorter than the position is an error.
 */
#include "spool_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_codec.h"

#define RD_BUF_MAX                                                             \
    ((size_t)SPOOL_READER_WINDOW + SPOOL_FRAME_HDR + SPOOL_MAX_PAYLOAD)
#define RD_ERRMSG_MAX 512

struct spool_reader {
    char *path;
    int fd;
    spool_header hdr;
    uint64_t pos;  /* where the next frame is expected */
    bool complete; /* finish() was called: the file will not grow */
    uint8_t *buf;  /* file bytes [buf_off, buf_off + buf_len) */
    size_t alloc;  /* allocated size of buf, <= RD_BUF_MAX */
    uint64_t buf_off;
    size_t buf_len;
    spool_reader_stats stats;
    char errmsg[RD_ERRMSG_MAX];
};

/* Held by the scrubber around each in-place purge (it zeroes a payload,
   then rewrites the header), and by a reader that meets a CRC mismatch
   before it calls that damage: the frame may have been half-purged while
   it was read, and reading it again under the lock tells. */
static pthread_mutex_t scrub_mu = PTHREAD_MUTEX_INITIALIZER;

void spool_scrub_lock(void)
{
    pthread_mutex_lock(&scrub_mu);
}

void spool_scrub_unlock(void)
{
    pthread_mutex_unlock(&scrub_mu);
}

__attribute__((format(printf, 3, 4))) static void
rd_fail(spool_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(r->errmsg, sizeof r->errmsg, "%s: ", r->path);
    if (n < 0 || (size_t)n >= sizeof r->errmsg)
        return;
    va_start(ap, fmt);
    int m = vsnprintf(r->errmsg + n, sizeof r->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    if (err && m >= 0 && (size_t)(n + m) < sizeof r->errmsg)
        snprintf(r->errmsg + n + m, sizeof r->errmsg - (size_t)(n + m), ": %s",
                 strerror(err));
}

/* Make the buffer hold file bytes from `off` on: at least `need` of them
   unless the file ends first (`need` <= RD_BUF_MAX - SPOOL_READER_WINDOW).
   Reads ahead to fill the allocation. Returns the bytes available from
   `off`, or -1 on a read error. */
static ssize_t rd_fill(spool_reader *r, uint64_t off, size_t need)
{
    if (off < r->buf_off || off > r->buf_off + r->buf_len) {
        r->buf_off = off;
        r->buf_len = 0;
    }
    size_t have = (size_t)(r->buf_off + r->buf_len - off);
    if (have >= need)
        return (ssize_t)have;
    if (off > r->buf_off) {
        memmove(r->buf, r->buf + (off - r->buf_off), have);
        r->buf_off = off;
        r->buf_len = have;
    }
    if (need > r->alloc) {
        /* Only a frame longer than the window gets here. */
        size_t n = need + SPOOL_READER_WINDOW;
        if (n > RD_BUF_MAX)
            n = RD_BUF_MAX;
        uint8_t *nb = realloc(r->buf, n);
        if (!nb) {
            rd_fail(r, ENOMEM, "read buffer of %zu bytes", n);
            return -1;
        }
        r->buf = nb;
        r->alloc = n;
    }
    while (r->buf_len < need) {
        ssize_t k = pread(r->fd, r->buf + r->buf_len, r->alloc - r->buf_len,
                          (off_t)(r->buf_off + r->buf_len));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rd_fail(r, errno, "read at offset %llu",
                    (unsigned long long)(r->buf_off + r->buf_len));
            return -1;
        }
        if (k == 0)
            break; /* end of file, for now */
        r->buf_len += (size_t)k;
    }
    return (ssize_t)r->buf_len;
}

/* No complete frame at pos yet. Forget the unvalidated bytes so the next
   call rereads them, and report how many follow pos in the file. */
static spool_read_result rd_end(spool_reader *r, spool_read_event *ev)
{
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        rd_fail(r, errno, "fstat");
        return SPOOL_READ_ERROR;
    }
    if ((uint64_t)st.st_size < r->pos) {
        rd_fail(r, 0, "truncated to %lld bytes, below position %llu",
                (long long)st.st_size, (unsigned long long)r->pos);
        return SPOOL_READ_ERROR;
    }
    if (r->pos >= r->buf_off && r->pos <= r->buf_off + r->buf_len)
        r->buf_len = (size_t)(r->pos - r->buf_off);
    ev->offset = r->pos;
    ev->length = (uint64_t)st.st_size - r->pos;
    return SPOOL_READ_END;
}

static spool_read_result rd_damage(spool_reader *r, spool_read_event *ev,
                                   uint64_t start, uint64_t end)
{
    ev->offset = start;
    ev->length = end - start;
    r->pos = end;
    r->stats.damaged_regions++;
    r->stats.damaged_bytes += end - start;
    return SPOOL_READ_DAMAGE;
}

/* The bytes at pos cannot start a frame: find where the next valid one
   starts. Scans through the file a window at a time; a candidate that
   needs more bytes than the file has stops a live scan (END, position
   unchanged) and is passed over once the segment is complete. */
static spool_read_result rd_resync(spool_reader *r, spool_read_event *ev)
{
    const uint64_t start = r->pos;
    uint64_t at = start + 1;
    for (;;) {
        ssize_t have = rd_fill(r, at, SPOOL_FRAME_HDR);
        if (have < 0)
            return SPOOL_READ_ERROR;
        if (have == 0) {
            /* End of file with no candidate after the damage. */
            if (!r->complete)
                return rd_end(r, ev);
            return rd_damage(r, ev, start, at);
        }
        const uint8_t *b = r->buf + (at - r->buf_off);
        size_t rel;
        spool_frame_status st = spool_frame_resync(b, (size_t)have, 0, &rel);
        if (st == SPOOL_FRAME_OK)
            return rd_damage(r, ev, start, at + rel);
        if (st == SPOOL_FRAME_BAD) {
            at += (uint64_t)have;
            continue;
        }
        /* A candidate that needs more bytes: read them, then decide. */
        uint64_t cand = at + rel;
        spool_frame f;
        spool_frame_check(b + rel, (size_t)have - rel, &f);
        ssize_t h2 = rd_fill(r, cand, f.size);
        if (h2 < 0)
            return SPOOL_READ_ERROR;
        if ((size_t)h2 >= f.size) {
            at = cand; /* now OK or BAD; scan again from it */
            continue;
        }
        if (!r->complete)
            return rd_end(r, ev); /* maybe a frame still being written */
        at = cand + 1;            /* it never will be */
    }
}

static spool_read_result rd_next(spool_reader *r, spool_read_event *ev)
{
    memset(ev, 0, sizeof *ev);
    uint64_t reread_at = UINT64_MAX;
    for (;;) {
        ssize_t have = rd_fill(r, r->pos, SPOOL_FRAME_HDR);
        if (have < 0)
            return SPOOL_READ_ERROR;
        spool_frame f;
        const uint8_t *p = r->buf + (r->pos - r->buf_off);
        spool_frame_status st = spool_frame_check(p, (size_t)have, &f);
        if (st == SPOOL_FRAME_BAD && f.fault == SPOOL_FAULT_CRC &&
            reread_at != r->pos) {
            /* Perhaps purged while we read it: look again, under the
               scrubber's lock, before calling it damage. */
            reread_at = r->pos;
            spool_scrub_lock();
            r->buf_len = 0;
            have = rd_fill(r, r->pos, f.size);
            spool_scrub_unlock();
            if (have < 0)
                return SPOOL_READ_ERROR;
            continue;
        }
        if (st == SPOOL_FRAME_OK && f.purged) {
            r->pos += f.size;
            r->stats.purged_frames++;
            r->stats.purged_bytes += f.size;
            continue;
        }
        if (st == SPOOL_FRAME_OK) {
            ev->offset = r->pos;
            ev->length = f.len;
            ev->payload = f.payload;
            r->pos += f.size;
            r->stats.frames++;
            return SPOOL_READ_FRAME;
        }
        if (st == SPOOL_FRAME_INCOMPLETE) {
            ssize_t h2 = rd_fill(r, r->pos, f.size);
            if (h2 < 0)
                return SPOOL_READ_ERROR;
            if ((size_t)h2 >= f.size)
                continue; /* complete now: classify again */
            if (h2 == 0 || !r->complete)
                return rd_end(r, ev);
            /* complete segment: a torn frame at the tail is damage */
        }
        return rd_resync(r, ev);
    }
}

spool_read_result spool_reader_next(spool_reader *r, spool_read_event *ev)
{
    return rd_next(r, ev);
}

spool_read_result spool_reader_finish(spool_reader *r, spool_read_event *ev)
{
    r->complete = true;
    return rd_next(r, ev);
}

int spool_reader_open(const char *path, spool_reader **out, char *errbuf,
                      size_t errlen)
{
    *out = NULL;
    spool_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: out of memory", path);
        free(r);
        return -1;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rd_fail(r, errno, "open");
        goto fail;
    }
    r->alloc = SPOOL_READER_WINDOW;
    if (!(r->buf = malloc(r->alloc))) {
        rd_fail(r, ENOMEM, "read buffer");
        goto fail;
    }
    ssize_t have = rd_fill(r, 0, SPOOL_HEADER_SIZE);
    if (have < 0)
        goto fail;
    spool_header_status hs = spool_header_decode(r->buf, (size_t)have, &r->hdr);
    if (hs != SPOOL_HEADER_OK) {
        rd_fail(r, 0, "%s", spool_header_strerror(hs));
        goto fail;
    }
    r->pos = r->hdr.header_size;
    *out = r;
    return 0;

fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", r->errmsg);
    spool_reader_close(r);
    return -1;
}

const spool_header *spool_reader_header(const spool_reader *r)
{
    return &r->hdr;
}

int spool_reader_seek(spool_reader *r, uint64_t offset)
{
    struct stat st;
    if (offset < r->hdr.header_size) {
        rd_fail(r, 0, "seek to %llu, inside the header",
                (unsigned long long)offset);
        return -1;
    }
    if (fstat(r->fd, &st) != 0) {
        rd_fail(r, errno, "fstat");
        return -1;
    }
    if (offset > (uint64_t)st.st_size) {
        rd_fail(r, 0, "seek to %llu, past the end (%lld bytes)",
                (unsigned long long)offset, (long long)st.st_size);
        return -1;
    }
    r->pos = offset;
    return 0;
}

uint64_t spool_reader_tell(const spool_reader *r)
{
    return r->pos;
}

int spool_reader_is_live(spool_reader *r)
{
    if (flock(r->fd, LOCK_SH | LOCK_NB) == 0) {
        flock(r->fd, LOCK_UN);
        return 0;
    }
    if (errno == EWOULDBLOCK)
        return 1;
    rd_fail(r, errno, "flock");
    return -1;
}

void spool_reader_get_stats(const spool_reader *r, spool_reader_stats *out)
{
    *out = r->stats;
}

const char *spool_reader_errmsg(const spool_reader *r)
{
    return r->errmsg;
}

void spool_reader_close(spool_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r->path);
    free(r);
}
