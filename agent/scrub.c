/*
 * scrub.c - per-record retention by in-place purge. See scrub.h.
 */
#include "scrub.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "log.h"
#include "record_decode.h"
#include "spool_codec.h"
#include "spool_format.h"
#include "spool_reader.h"

/* Purges applied per write-out: bounds the list's memory (24 bytes each)
   during the first pass after a long outage. */
#define SCRUB_BATCH 16384u

/* One write-out: a frame to purge, or a damaged region to zero. */
typedef struct purge {
    uint64_t off, len; /* frame: payload length; damage: region length */
    int damage;
    int ok; /* frame: still the one read, zeroed */
} purge;

/* Frames with a limit that has not passed, as a range of frame offsets. */
typedef struct pending {
    uint64_t start, end; /* [start, end): whole frames */
    int64_t due_ns;      /* earliest due time in the range */
    int64_t seen_ns;     /* when the range was first read */
} pending;

typedef struct seg {
    char *name;
    int64_t created_ns;
    int dead_letter;
    int known;           /* header read */
    uint64_t scanned_to; /* frames before it have been judged once */
    pending *p;
    size_t np, cap;
    int listed; /* in this pass's names */
    int warned; /* a problem was logged (once per segment) */
} seg;

struct scrubber {
    char *dir;
    scrub_limit_fn limit;
    scrub_purged_fn purged;
    void *ctx;
    seg *segs; /* sorted by name */
    size_t n, cap;
    arena ar;
    /* what to purge in the segment being scrubbed */
    purge *q;
    uint64_t *offs; /* purged frame offsets for the callback */
    size_t nq;
    uint8_t *buf; /* one span being rewritten */
    size_t buf_cap;
    scrub_stats st;
};

scrubber *scrubber_new(const char *dir, scrub_limit_fn limit,
                       scrub_purged_fn purged, void *ctx)
{
    scrubber *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->dir = strdup(dir);
    s->q = malloc(SCRUB_BATCH * sizeof *s->q);
    s->offs = malloc(SCRUB_BATCH * sizeof *s->offs);
    if (!s->dir || !s->q || !s->offs) {
        scrubber_free(s);
        return NULL;
    }
    s->limit = limit;
    s->purged = purged;
    s->ctx = ctx;
    s->ar = arena_make(64 * 1024);
    return s;
}

static void seg_clear(seg *g)
{
    free(g->name);
    free(g->p);
}

void scrubber_free(scrubber *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        seg_clear(&s->segs[i]);
    free(s->segs);
    arena_free(&s->ar);
    free(s->q);
    free(s->offs);
    free(s->buf);
    free(s->dir);
    free(s);
}

int64_t scrubber_next_due(const scrubber *s)
{
    int64_t due = 0;
    for (size_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->segs[i].np; k++)
            if (!due || s->segs[i].p[k].due_ns < due)
                due = s->segs[i].p[k].due_ns;
    return due;
}

/* The state of `name`, created in order if new; NULL when out of memory. */
static seg *seg_get(scrubber *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->segs[mid].name, name);
        if (c == 0)
            return &s->segs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        seg *ns = realloc(s->segs, nc * sizeof *ns);
        if (!ns)
            return NULL;
        s->segs = ns;
        s->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm)
        return NULL;
    memmove(&s->segs[lo + 1], &s->segs[lo], (s->n - lo) * sizeof *s->segs);
    s->n++;
    memset(&s->segs[lo], 0, sizeof s->segs[lo]);
    s->segs[lo].name = nm;
    return &s->segs[lo];
}

static int add_pending(seg *g, pending p)
{
    if (g->np == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 4;
        pending *np = realloc(g->p, nc * sizeof *np);
        if (!np)
            return -1;
        g->p = np;
        g->cap = nc;
    }
    g->p[g->np++] = p;
    return 0;
}

/* Builds the pending ranges of one read: consecutive frames with a limit
   go into one range until it would pass SCRUB_CHUNK bytes. */
typedef struct builder {
    pending cur;
    int open;
} builder;

static int builder_add(seg *g, builder *b, uint64_t start, uint64_t end,
                       int64_t due, int64_t seen)
{
    if (b->open && end - b->cur.start <= SCRUB_CHUNK &&
        b->cur.seen_ns == seen) {
        b->cur.end = end;
        if (due < b->cur.due_ns)
            b->cur.due_ns = due;
        return 0;
    }
    if (b->open && add_pending(g, b->cur) != 0)
        return -1;
    b->cur = (pending){start, end, due, seen};
    b->open = 1;
    return 0;
}

static int builder_close(seg *g, builder *b)
{
    int rc = b->open ? add_pending(g, b->cur) : 0;
    b->open = 0;
    return rc;
}

/* When the record in a frame must be gone: 0 when no rule limits it (or
   it cannot be decoded: spool.max_age still applies to it). */
static int64_t frame_due(scrubber *s, const seg *g, const uint8_t *payload,
                         size_t len, int64_t seen_ns)
{
    arena_reset(&s->ar);
    ProtobufCAllocator al = arena_pb_allocator(&s->ar);
    const uint8_t *rb = payload;
    size_t rl = len;
    if (g->dead_letter) {
        Logferry__V1__DeadLetter *d =
            logferry__v1__dead_letter__unpack(&al, len, payload);
        if (!d || d->record.len == 0)
            return 0;
        rb = d->record.data;
        rl = d->record.len;
    }
    Logferry__V1__InvocationRecord rec;
    if (rdec_unpack(rb, rl, &al, &rec) != RDEC_OK)
        return 0;
    s->st.frames_read++;
    int64_t lim = s->limit(s->ctx, &rec);
    if (lim <= 0)
        return 0;
    int64_t base = rec.event_time_ns > 0 ? rec.event_time_ns : g->created_ns;
    if (base > seen_ns)
        base = seen_ns;
    if (lim > (INT64_MAX - base) / 1000000LL)
        return INT64_MAX;
    return base + lim * 1000000LL;
}

static void seg_problem(scrubber *s, seg *g, const char *what, int err)
{
    s->st.errors++;
    if (g->warned)
        return;
    g->warned = 1;
    log_warn("msg=\"cannot apply retention rules to segment, will retry\" "
             "path=%s/%s problem=\"%s%s%s\"",
             s->dir, g->name, what, err ? ": " : "", err ? strerror(err) : "");
}

static const uint8_t zeros[64 * 1024];

static int zero_range(int fd, uint64_t off, uint64_t n)
{
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, k, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (uint64_t)w;
        n -= (uint64_t)w;
    }
    return 0;
}

/* Read, change and write back [off, off + len) through s->buf. `edit`
   changes the bytes in place; the frames not purged are written back as
   they were read (nothing else writes complete frames). Returns 0, or -1
   with errno. */
static int rewrite_span(scrubber *s, int fd, uint64_t off, size_t len,
                        size_t first, size_t last,
                        void (*edit)(scrubber *, uint8_t *, uint64_t, size_t,
                                     size_t))
{
    if (len > s->buf_cap) {
        uint8_t *nb = realloc(s->buf, len);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        s->buf = nb;
        s->buf_cap = len;
    }
    ssize_t r = pread(fd, s->buf, len, (off_t)off);
    if (r != (ssize_t)len) {
        if (r >= 0)
            errno = EIO; /* shorter than frames we read: not ours to fix */
        return -1;
    }
    edit(s, s->buf, off, first, last);
    return pwrite(fd, s->buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* Phase 1: check each queued frame is still the one read, zero its
   payload. */
static void edit_zero(scrubber *s, uint8_t *b, uint64_t base, size_t first,
                      size_t last)
{
    for (size_t i = first; i <= last; i++) {
        purge *p = &s->q[i];
        if (p->damage)
            continue;
        uint8_t *h = b + (p->off - base);
        spool_frame f;
        p->ok = spool_frame_check(h, SPOOL_FRAME_HDR, &f) ==
                    SPOOL_FRAME_INCOMPLETE &&
                !f.purged && f.len == p->len;
        if (p->ok)
            memset(h + SPOOL_FRAME_HDR, 0, (size_t)p->len);
    }
}

/* Phase 2, once the zeros are durable: the headers. */
static void edit_header(scrubber *s, uint8_t *b, uint64_t base, size_t first,
                        size_t last)
{
    for (size_t i = first; i <= last; i++)
        if (!s->q[i].damage && s->q[i].ok)
            spool_frame_purged_header_encode(b + (s->q[i].off - base),
                                             (uint32_t)s->q[i].len);
}

static uint64_t purge_end(const purge *p)
{
    return p->off + p->len + (p->damage ? 0 : SPOOL_FRAME_HDR);
}

/* Apply `edit` to the queued frames, a span of whole frames (at most
   SCRUB_CHUNK bytes, or one larger frame) at a time: two system calls per
   span instead of three per frame. */
static int each_span(scrubber *s, int fd,
                     void (*edit)(scrubber *, uint8_t *, uint64_t, size_t,
                                  size_t))
{
    size_t i = 0;
    while (i < s->nq) {
        if (s->q[i].damage) {
            i++;
            continue;
        }
        size_t j = i, k = i;
        uint64_t start = s->q[i].off, end = purge_end(&s->q[i]);
        while (++k < s->nq && purge_end(&s->q[k]) - start <= SCRUB_CHUNK)
            if (!s->q[k].damage) {
                j = k;
                end = purge_end(&s->q[k]);
            }
        if (rewrite_span(s, fd, start, (size_t)(end - start), i, j, edit) != 0)
            return -1;
        i = j + 1;
    }
    return 0;
}

static int cmp_purge(const void *a, const void *b)
{
    const purge *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Apply the queue of g: damaged regions and payloads to zeros, durable,
   then the frames' headers rewritten as purged, durable. A frame whose
   header is no longer the one read is left alone. On failure everything
   queued goes back into the pending list, due at once. */
static void flush_purges(scrubber *s, seg *g, int64_t now_ns)
{
    if (s->nq == 0)
        return;
    qsort(s->q, s->nq, sizeof *s->q, cmp_purge);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->dir, g->name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    int err = 0;
    const char *what = NULL;
    uint64_t zeroed = 0;
    if (fd < 0) {
        err = errno;
        what = "open for writing";
    } else {
        spool_scrub_lock();
        /* Damage first, so a span read afterwards already holds its
           zeros. */
        for (size_t i = 0; i < s->nq && !what; i++) {
            if (!s->q[i].damage)
                continue;
            if (zero_range(fd, s->q[i].off, s->q[i].len) != 0) {
                err = errno;
                what = "write zeros";
            }
            zeroed += s->q[i].len;
        }
        if (!what && each_span(s, fd, edit_zero) != 0) {
            err = errno;
            what = "zero payloads";
        }
        if (!what && fdatasync(fd) != 0) {
            err = errno;
            what = "fdatasync";
        }
        if (!what && each_span(s, fd, edit_header) != 0) {
            err = errno;
            what = "write purged headers";
        }
        spool_scrub_unlock();
        if (!what && fdatasync(fd) != 0) {
            err = errno;
            what = "fdatasync";
        }
        close(fd);
    }
    if (what) {
        seg_problem(s, g, what, err);
        /* Try again next pass: the frames are due, and one whose header
           was already rewritten reads as purged and is passed over. */
        for (size_t i = 0; i < s->nq; i++)
            add_pending(
                g, (pending){s->q[i].off, purge_end(&s->q[i]), now_ns, now_ns});
        s->nq = 0;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->nq; i++)
        if (!s->q[i].damage && s->q[i].ok)
            s->offs[k++] = s->q[i].off;
    s->nq = 0;
    s->st.damaged_bytes += zeroed;
    if (k) {
        s->st.purged += k;
        if (s->purged)
            s->purged(s->ctx, g->name, s->offs, k);
    }
}

static void enqueue(scrubber *s, seg *g, uint64_t off, uint64_t len, int damage,
                    int64_t now_ns)
{
    s->q[s->nq++] = (purge){off, len, damage, 0};
    if (s->nq == SCRUB_BATCH)
        flush_purges(s, g, now_ns);
}

/* Judge the frames of [from, to) (to = UINT64_MAX: up to the end for
   now), first read at seen_ns: queue what is due, remember what will be.
   Returns the position reached, or 0 on a read error. */
static uint64_t scan(scrubber *s, seg *g, spool_reader *rd, uint64_t from,
                     uint64_t to, int64_t seen_ns, int64_t now_ns)
{
    if (spool_reader_seek(rd, from) != 0)
        return 0;
    builder b = {0};
    uint64_t pos = from;
    for (;;) {
        spool_read_event ev;
        spool_read_result st = spool_reader_next(rd, &ev);
        if (st == SPOOL_READ_ERROR)
            return 0;
        if (st == SPOOL_READ_END)
            break;
        if (st == SPOOL_READ_DAMAGE) {
            /* Final bytes that are no frame: possibly part of a record a
               purge was removing when the agent died. Nothing can deliver
               them; the readers have reported them or will (zeros read as
               the same damage). */
            pos = ev.offset + ev.length;
            if (ev.offset < to)
                enqueue(s, g, ev.offset, ev.length, 1, now_ns);
            continue;
        }
        if (ev.offset >= to)
            break;
        uint64_t end = ev.offset + SPOOL_FRAME_HDR + ev.length;
        pos = end;
        if (ev.length == 0)
            continue; /* an empty record holds nothing to remove */
        int64_t due = frame_due(s, g, ev.payload, ev.length, seen_ns);
        if (!due)
            continue;
        if (due > now_ns) {
            builder_add(g, &b, ev.offset, end, due, seen_ns);
            continue;
        }
        enqueue(s, g, ev.offset, ev.length, 0, now_ns);
    }
    builder_close(g, &b);
    if (to == UINT64_MAX)
        pos = spool_reader_tell(rd);
    return pos;
}

static int cmp_pending(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static void scrub_segment(scrubber *s, seg *g, int64_t now_ns)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->dir, g->name);
    uint64_t before = s->st.purged;
    int due = 0;
    for (size_t k = 0; k < g->np && !due; k++)
        due = g->p[k].due_ns <= now_ns;
    if (!due && g->known) {
        struct stat st;
        if (stat(path, &st) != 0 || (uint64_t)st.st_size <= g->scanned_to)
            return; /* nothing new, nothing due */
    }
    spool_reader *rd;
    char err[512];
    if (spool_reader_open(path, &rd, err, sizeof err) != 0) {
        if (access(path, F_OK) == 0)
            seg_problem(s, g, err, 0);
        return;
    }
    if (!g->known) {
        const spool_header *h = spool_reader_header(rd);
        g->created_ns = h->created_ns;
        g->dead_letter = (h->flags & SPOOL_FLAG_DEAD_LETTER) != 0;
        g->scanned_to = h->header_size;
        g->known = 1;
    }
    if (due) {
        /* Take the due ranges out, read them again. */
        size_t nd = 0, keep = 0;
        pending *d = malloc(g->np * sizeof *d);
        if (!d) {
            spool_reader_close(rd);
            return;
        }
        for (size_t k = 0; k < g->np; k++) {
            if (g->p[k].due_ns <= now_ns)
                d[nd++] = g->p[k];
            else
                g->p[keep++] = g->p[k];
        }
        g->np = keep;
        for (size_t k = 0; k < nd; k++)
            if (!scan(s, g, rd, d[k].start, d[k].end, d[k].seen_ns, now_ns))
                add_pending(g, d[k]); /* read error: keep it */
        free(d);
    }
    uint64_t pos = scan(s, g, rd, g->scanned_to, UINT64_MAX, now_ns, now_ns);
    if (pos)
        g->scanned_to = pos;
    else
        seg_problem(s, g, spool_reader_errmsg(rd), 0);
    spool_reader_close(rd);
    flush_purges(s, g, now_ns);
    if (s->st.purged > before)
        s->st.segments++;
    if (g->np > 1)
        qsort(g->p, g->np, sizeof *g->p, cmp_pending);
}

void scrubber_pass(scrubber *s, char *const *names, size_t n, int64_t now_ns,
                   scrub_stats *out)
{
    memset(&s->st, 0, sizeof s->st);
    for (size_t i = 0; i < s->n; i++)
        s->segs[i].listed = 0;
    for (size_t i = 0; i < n; i++) {
        seg *g = seg_get(s, names[i]);
        if (!g)
            break;
        g->listed = 1;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].listed)
            scrub_segment(s, &s->segs[i], now_ns);
    /* Forget segments that are gone. */
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->segs[i].listed)
            s->segs[k++] = s->segs[i];
        else
            seg_clear(&s->segs[i]);
    }
    s->n = k;
    arena_reset(&s->ar);
    if (out)
        *out = s->st;
}
