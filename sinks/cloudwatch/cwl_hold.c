/*
 * cwl_hold.c - holding a stream's small share of a batch until it fills a
 * request (LF_REC_HOLD and lf_host.settle, see logferry/sink.h).
 *
 * A core batch mixes every tenant: with 50 busy streams each gets ~1/50
 * of it, far from the ~1 MB a PutLogEvents request may carry. Keeping 50
 * streams' shares in memory until they fill requests would cost ~50 MB,
 * so a share under min_request_bytes goes to a file of its stream
 * instead, and only totals stay in memory (cwl_held). The core neither
 * offers held records again nor moves its cursor past them, so nothing
 * here needs to be durable: each file is unlinked as soon as it is made,
 * never synced, and a crash or kill -9 leaves nothing behind; the core
 * delivers the records again after the restart.
 *
 * Per run (deliver, poll or flush, on the calling thread):
 *   plan   each destination of the batch either appends its events to
 *          its file (one write; verdict HOLD), or, when held + new reach
 *          min_request_bytes or the held ones are due (flush_interval,
 *          at most half of spool.max_age), has its file read back into
 *          the message arena and merged ahead of its new events (held
 *          first: spool order among equal timestamps). Held streams with
 *          nothing new that are due are read back too. Reading back is
 *          bounded per run (CWL_READBACK_MAX, oldest first); what does not
 *          fit waits for the next call.
 *   tails  after the split, a last request under min_request_bytes of a
 *          stream that is not due is held again rather than sent.
 *   settle after sending, read-back records are settled with the host,
 *          one call per verdict (and per reason for refusals); RETRY ones
 *          the host cannot park (-1) are held again and sent later.
 *
 * File format (native byte order, the file never outlives the process):
 * per event a cwl_hold_hdr, the segment name and its NUL, the message,
 * the payload.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../shared/fdio.h"
#include "cwl.h"

/* File bytes read back per run: two streams' worth (a full held stream
 * is ~1.5 MB with its payloads and headers), so 50 streams due at once do
 * not put 50 MB in memory; the rest waits for the next call. It must
 * stay above what one batch adds (~1 KB per record: ~1 MB for 1024) or
 * held streams fall behind and end up sending their shares unmerged. */
#define CWL_READBACK_MAX ((uint64_t)3 << 20)
/* A stream whose read-back must wait keeps appending up to this much (as
 * CloudWatch counts); past it its new events are sent on their own. */
#define CWL_HELD_CAP ((uint64_t)2 * CWL_MAX_REQUEST_BYTES)

enum { PLAN_SEND = 0, PLAN_READ = 1, PLAN_APPEND = 2, PLAN_SKIP = 3 };

/* ---- the table of held streams ---------------------------------------- */

static cwl_held **held_slot(cwl_sink *s, uint32_t hash)
{
    return &s->hslots[hash & (s->n_hslots - 1)];
}

static cwl_held *held_find(cwl_sink *s, uint32_t hash, const char *key,
                           size_t klen)
{
    for (cwl_held *e = *held_slot(s, hash); e; e = e->hnext)
        if (e->hash == hash && e->klen == klen &&
            memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

/* A new held stream for destination d, its file made in instance_dir and
 * unlinked at once. NULL (logged) when the file cannot be made. */
static cwl_held *held_new(cwl_sink *s, const cwl_dest *d)
{
    const lf_host *h = s->host;
    const char *key = s->keys.p + d->key_off;
    cwl_held *e = calloc(1, sizeof *e + d->key_len + 1);
    if (!e)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/cwl-hold-XXXXXX", h->instance_dir);
    e->fd = mkostemp(path, O_CLOEXEC);
    if (e->fd < 0) {
        h->log(h, LF_LOG_WARN,
               "cannot make a file to hold events in %s: %s; sending "
               "them at once",
               h->instance_dir, strerror(errno));
        free(e);
        return NULL;
    }
    unlink(path);
    e->hash = d->hash;
    e->is_default = d->is_default;
    e->klen = d->key_len;
    memcpy(e->key, key, d->key_len);
    e->gen = s->gen;
    cwl_held **slot = held_slot(s, e->hash);
    e->hnext = *slot;
    *slot = e;
    s->n_held++;
    return e;
}

static void held_drop(cwl_sink *s, cwl_held *e)
{
    cwl_held **pp = held_slot(s, e->hash);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    close(e->fd);
    free(e);
    s->n_held--;
}

void cwl_hold_free(cwl_sink *s)
{
    for (size_t i = 0; i < s->n_hslots; i++)
        while (s->hslots[i])
            held_drop(s, s->hslots[i]);
}

/* Whether e's oldest event has waited long enough: all of it goes. */
static int held_late(const cwl_sink *s, const cwl_held *e, int64_t now)
{
    return e->n && now - e->since_ns >= s->hold_ns;
}

/* Whether e should be sent now: late, or holding a request's worth
 * already (its read-back had to wait for the budget). */
static int held_due(const cwl_sink *s, const cwl_held *e, int64_t now)
{
    return held_late(s, e, now) || e->cw_bytes >= s->min_req ||
           e->n >= CWL_MAX_EVENTS;
}

/* ---- writing and reading back ------------------------------------------ */

/* Where record `rec` of this run comes from: the batch, or a read-back
 * header in msgs. */
static void rec_source(const cwl_sink *s, uint32_t rec, const char **seg,
                       uint32_t *seg_len, uint64_t *off, const uint8_t **pay,
                       uint32_t *pay_len)
{
    if (rec < s->batch->count) {
        const lf_record *r = &s->batch->records[rec];
        *seg = r->pos.segment;
        *seg_len = (uint32_t)strlen(r->pos.segment);
        *off = r->pos.offset;
        *pay = r->payload;
        *pay_len = (uint32_t)r->len;
        return;
    }
    const char *at = s->msgs.p + s->hrecs[rec - s->batch->count].at;
    cwl_hold_hdr hd;
    memcpy(&hd, at, sizeof hd);
    *seg = at + sizeof hd;
    *seg_len = hd.seg_len;
    *off = hd.offset;
    *pay = (const uint8_t *)at + sizeof hd + hd.seg_len + 1 + hd.msg_len;
    *pay_len = hd.pay_len;
}

/* Append ev[0..n) (batch or read-back events of one destination) to e's
 * file with one write, copied together in wbuf first (measured: pwritev
 * from where messages and payloads are costs more in the kernel than the
 * copy saves). `since`: when the oldest of them was first held. Returns
 * 0, or -1 with e unchanged (what a failed write left past e->fsize is
 * never read). */
static int held_append(cwl_sink *s, cwl_held *e, const cwl_event *ev, size_t n,
                       int64_t since)
{
    sbuf *w = &s->wbuf;
    w->len = 0;
    uint64_t cw = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t j = 0; j < n; j++) {
        const char *seg;
        const uint8_t *pay;
        uint32_t seg_len, pay_len;
        uint64_t off;
        rec_source(s, ev[j].rec, &seg, &seg_len, &off, &pay, &pay_len);
        cwl_hold_hdr hd = {ev[j].ts_ms, off, ev[j].len, pay_len, seg_len, 0};
        size_t need = sizeof hd + seg_len + 1 + ev[j].len + pay_len;
        if (sbuf_reserve(w, need) != 0)
            return -1;
        char *o = w->p + w->len;
        memcpy(o, &hd, sizeof hd);
        o += sizeof hd;
        memcpy(o, seg, seg_len + 1);
        o += seg_len + 1;
        memcpy(o, s->msgs.p + ev[j].off, ev[j].len);
        memcpy(o + ev[j].len, pay, pay_len);
        w->len += need;
        cw += ev[j].len + CWL_EVENT_OVERHEAD;
        lo = ev[j].ts_ms < lo ? ev[j].ts_ms : lo;
        hi = ev[j].ts_ms > hi ? ev[j].ts_ms : hi;
    }
    if (fd_pwrite_all(e->fd, w->p, w->len, e->fsize) != 0) {
        s->host->log(s->host, LF_LOG_WARN,
                     "cannot hold events in %s: %s; sending them at once",
                     s->host->instance_dir, strerror(errno));
        return -1;
    }
    if (e->n == 0) {
        e->since_ns = since;
        e->min_ts = lo;
        e->max_ts = hi;
    } else {
        e->since_ns = since < e->since_ns ? since : e->since_ns;
        e->min_ts = lo < e->min_ts ? lo : e->min_ts;
        e->max_ts = hi > e->max_ts ? hi : e->max_ts;
    }
    e->fsize += w->len;
    e->cw_bytes += cw;
    e->n += (uint32_t)n;
    /* A request's worth (a held tail) is not kept for the next share. */
    if (w->cap > ((size_t)1 << 20))
        sbuf_free(w);
    return 0;
}

static int grow_hrecs(cwl_sink *s, size_t n)
{
    if (n <= s->cap_hrecs)
        return 0;
    size_t c = s->cap_hrecs ? s->cap_hrecs : 1024;
    while (c < n)
        c *= 2;
    cwl_hrec *p = realloc(s->hrecs, c * sizeof *p);
    if (!p)
        return -1;
    s->hrecs = p;
    s->cap_hrecs = c;
    return 0;
}

/* Read destination di's held stream back into msgs: its events become
 * records n_recs.. of this run (rec_ev, verdicts zeroed) and the file is
 * emptied. Returns 0, or -1 with nothing changed. */
static int held_read(cwl_sink *s, size_t di)
{
    cwl_held *e = s->dests[di].held;
    sbuf *m = &s->msgs;
    if (sbuf_reserve(m, e->fsize) != 0 ||
        grow_hrecs(s, s->n_hrecs + e->n) != 0 ||
        cwl_grow_records(s, s->n_recs + e->n) != 0)
        return -1;
    ssize_t got = fd_pread_upto(e->fd, m->p + m->len, e->fsize, 0);
    if (got != (ssize_t)e->fsize) {
        s->host->log(s->host, LF_LOG_ERROR,
                     "cannot read held events back: %s; trying again later",
                     got < 0 ? strerror(errno) : "short file");
        return -1;
    }
    cwl_dest *d = &s->dests[di];
    size_t base = m->len, pos = 0;
    m->len += e->fsize;
    d->hr_start = s->n_hrecs;
    d->n_read = e->n;
    d->read_since_ns = e->since_ns;
    for (uint32_t j = 0; j < e->n; j++) {
        cwl_hold_hdr hd;
        /* The file is ours and unlinked: a mismatch is a bug, not input,
           but it must not read past what was read. */
        if (pos + sizeof hd > e->fsize)
            goto corrupt;
        memcpy(&hd, m->p + base + pos, sizeof hd);
        if (pos + sizeof hd + (uint64_t)hd.seg_len + 1 + hd.msg_len +
                hd.pay_len >
            e->fsize)
            goto corrupt;
        uint32_t rec = (uint32_t)s->n_recs++;
        s->hrecs[s->n_hrecs++] = (cwl_hrec){base + pos, (uint32_t)di};
        s->verd[rec] = LF_REC_OK;
        s->rec_ev[rec] = (cwl_event){hd.ts_ms, rec, hd.msg_len,
                                     base + pos + sizeof hd + hd.seg_len + 1};
        pos += sizeof hd + hd.seg_len + 1 + hd.msg_len + hd.pay_len;
    }
    /* Everything is in memory now; give the disk space back. */
    if (ftruncate(e->fd, 0) != 0) {
        /* harmless: the next write starts at offset 0 anyway */
    }
    e->fsize = e->cw_bytes = 0;
    e->n = 0;
    return 0;

corrupt:
    s->host->log(s->host, LF_LOG_ERROR,
                 "%u held events do not match their file; they are "
                 "delivered again after a restart",
                 (unsigned)e->n);
    m->len = base;
    s->n_recs -= s->n_hrecs - d->hr_start;
    s->n_hrecs = d->hr_start;
    d->n_read = 0;
    e->fsize = e->cw_bytes = 0; /* not tried again */
    e->n = 0;
    return -1;
}

/* ---- planning ---------------------------------------------------------- */

typedef struct cand {
    int64_t since;
    uint32_t di;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return (x->since > y->since) - (x->since < y->since);
}

/* Read back d's stream now if the run's budget allows; else decide what
 * its new events do meanwhile. */
static void read_or_defer(cwl_sink *s, size_t di, uint64_t *used, int flush)
{
    cwl_dest *d = &s->dests[di];
    cwl_held *e = d->held;
    uint64_t size = e->fsize;
    if ((*used == 0 || *used + size <= CWL_READBACK_MAX) &&
        held_read(s, di) == 0) {
        *used += size;
        e->tried = (uint8_t)(e->tried | flush);
        return;
    }
    s->hold_more = 1;
    d = &s->dests[di];
    if (d->ev_n == 0) {
        d->plan = PLAN_SKIP;
    } else if (!flush && e->cw_bytes + d->cw_bytes <= CWL_HELD_CAP &&
               e->n + d->ev_n <= 2 * CWL_MAX_EVENTS) {
        d->plan = PLAN_APPEND;
    } else {
        d->plan = PLAN_SEND; /* the new events alone; e waits */
        d->keep_tail = 0;
    }
}

/* The table is full: read back the stream held longest (not one of this
 * run) so that it is sent now and its place is free after the run.
 * Returns 1 if one was, 0 if none can be (the caller sends instead). */
static int evict(cwl_sink *s, uint64_t *used)
{
    cwl_held *v = NULL;
    for (size_t i = 0; i < s->n_hslots; i++)
        for (cwl_held *e = s->hslots[i]; e; e = e->hnext)
            if (e->gen != s->gen && e->n && (!v || e->since_ns < v->since_ns))
                v = e;
    if (!v || (*used && *used + v->fsize > CWL_READBACK_MAX))
        return 0;
    long di = cwl_dest_index(s, v->key, v->klen, v->is_default);
    if (di < 0)
        return 0;
    cwl_dest *d = &s->dests[di];
    d->held = v;
    d->plan = PLAN_READ;
    v->gen = s->gen;
    uint64_t size = v->fsize;
    if (held_read(s, (size_t)di) != 0) {
        d->plan = PLAN_SKIP;
        return 0;
    }
    *used += size;
    return 1;
}

/* Hold the events of batch destination di (plan APPEND). */
static void append_dest(cwl_sink *s, size_t di, uint64_t *used, int64_t now)
{
    cwl_dest *d = &s->dests[di];
    if (!d->held) {
        if (s->n_held >= s->max_held && !evict(s, used)) {
            s->dests[di].plan = PLAN_SEND;
            return;
        }
        d = &s->dests[di]; /* evict() may have moved the array */
        d->held = held_new(s, d);
        if (!d->held) {
            d->plan = PLAN_SEND;
            return;
        }
    }
    const cwl_event *ev = s->events + d->ev_start;
    if (held_append(s, d->held, ev, d->ev_n, now) != 0) {
        d->plan = PLAN_SEND;
        d->keep_tail = 0;
        return;
    }
    for (size_t j = 0; j < d->ev_n; j++)
        s->verd[ev[j].rec] = LF_REC_HOLD;
    s->host->counter_add(s->host, "events_held", d->ev_n);
    d->ev_n = 0;
}

int cwl_hold_plan(cwl_sink *s, int flush)
{
    int64_t now = s->host->mono_ns(s->host);
    uint64_t used = 0;
    size_t n_batch = s->n_dests;
    s->gen++;
    s->hold_more = 0;

    for (size_t i = 0; i < n_batch; i++) {
        cwl_dest *d = &s->dests[i];
        cwl_held *e = held_find(s, d->hash, s->keys.p + d->key_off, d->key_len);
        d->held = e;
        if (e && e->n) {
            e->gen = s->gen;
            int64_t lo = e->min_ts < d->min_ts ? e->min_ts : d->min_ts;
            int64_t hi = e->max_ts > d->max_ts ? e->max_ts : d->max_ts;
            int full = e->cw_bytes + d->cw_bytes >= s->min_req ||
                       e->n + d->ev_n >= CWL_MAX_EVENTS;
            int due =
                flush || held_late(s, e, now) || hi - lo > CWL_MAX_SPAN_MS;
            d->plan = full || due ? PLAN_READ : PLAN_APPEND;
            d->keep_tail = (uint8_t)!due;
        } else {
            if (e)
                e->gen = s->gen;
            int full = d->cw_bytes >= s->min_req || d->ev_n >= CWL_MAX_EVENTS;
            d->plan = full || flush ? PLAN_SEND : PLAN_APPEND;
            d->keep_tail = (uint8_t)!flush;
        }
    }
    /* Held streams with nothing new that are due (at a flush: all not
       tried yet). */
    for (size_t i = 0; i < s->n_hslots; i++)
        for (cwl_held *e = s->hslots[i]; e; e = e->hnext) {
            if (e->gen == s->gen || !e->n ||
                !(flush ? !e->tried : held_due(s, e, now)))
                continue;
            long di = cwl_dest_index(s, e->key, e->klen, e->is_default);
            if (di < 0)
                return -1;
            s->dests[di].held = e;
            s->dests[di].plan = PLAN_READ;
            /* full but not late: a small last request may wait more */
            s->dests[di].keep_tail = (uint8_t)(!flush && !held_late(s, e, now));
            e->gen = s->gen;
        }

    /* Read back, the streams held longest first, within the budget. */
    size_t nc = 0;
    cand *cs = malloc((s->n_dests + 1) * sizeof *cs);
    if (!cs)
        return -1;
    for (size_t i = 0; i < s->n_dests; i++)
        if (s->dests[i].plan == PLAN_READ)
            cs[nc++] = (cand){s->dests[i].held->since_ns, (uint32_t)i};
    qsort(cs, nc, sizeof *cs, cand_cmp);
    for (size_t k = 0; k < nc; k++)
        read_or_defer(s, cs[k].di, &used, flush);
    free(cs);

    for (size_t i = 0; i < n_batch; i++)
        if (s->dests[i].plan == PLAN_APPEND)
            append_dest(s, i, &used, now);

    if (s->n_hrecs == 0)
        return 0;
    /* Lay the events out again: per destination what it held, then its
       new events (the stable sort keeps that order among equal times). */
    cwl_event *ne = s->events2; /* as large as events: no failure here */
    size_t pos = 0, base = s->batch->count;
    for (size_t i = 0; i < s->n_dests; i++) {
        cwl_dest *d = &s->dests[i];
        size_t start = pos;
        if (d->plan == PLAN_READ)
            for (size_t j = 0; j < d->n_read; j++)
                ne[pos++] = s->rec_ev[base + d->hr_start + j];
        memcpy(ne + pos, s->events + d->ev_start, d->ev_n * sizeof *ne);
        pos += d->ev_n;
        d->ev_start = start;
        d->ev_n = pos - start;
    }
    s->events2 = s->events;
    s->events = ne;
    return 0;
}

void cwl_hold_tails(cwl_sink *s)
{
    int64_t now = s->host->mono_ns(s->host);
    for (size_t i = 0; i < s->n_dests; i++) {
        cwl_dest *d = &s->dests[i];
        if (!d->keep_tail || d->ch_n == 0)
            continue;
        const cwl_chunk *last = &s->chunks[d->ch_start + d->ch_n - 1];
        const cwl_event *ev = s->events + d->ev_start;
        uint64_t cw = 0;
        int64_t since = now;
        size_t fresh = 0;
        for (uint32_t j = last->start; j < last->end; j++) {
            cw += ev[j].len + CWL_EVENT_OVERHEAD;
            if (ev[j].rec >= s->batch->count)
                since = d->read_since_ns; /* held before: keeps its age */
            else
                fresh++;
        }
        /* Full by its event count: it cannot grow, send it. */
        if (cw >= s->min_req || last->end - last->start >= CWL_MAX_EVENTS)
            continue;
        cwl_held *e = d->held;
        if (!e) {
            if (s->n_held >= s->max_held || !(e = held_new(s, d)))
                continue;
            d->held = e;
        }
        if (held_append(s, e, ev + last->start, last->end - last->start,
                        since) != 0)
            continue;
        for (uint32_t j = last->start; j < last->end; j++)
            s->verd[ev[j].rec] = LF_REC_HOLD;
        if (fresh)
            s->host->counter_add(s->host, "events_held", fresh);
        d->ev_n = last->start;
        d->ch_n--;
    }
}

/* ---- settling ------------------------------------------------------------ */

static lf_settled settled_of(const cwl_sink *s, size_t k)
{
    const char *seg;
    const uint8_t *pay;
    uint32_t seg_len, pay_len;
    uint64_t off;
    rec_source(s, (uint32_t)(s->batch->count + k), &seg, &seg_len, &off, &pay,
               &pay_len);
    lf_settled v = {{seg, off}, pay, pay_len, s->verd[s->batch->count + k]};
    return v;
}

/* RETRY records the host could not park: hold them again, per
 * destination (their hrecs are contiguous per destination). */
static void hold_again(cwl_sink *s, const size_t *which, size_t n)
{
    int64_t now = s->host->mono_ns(s->host);
    size_t base = s->batch->count;
    /* s->events is free after sending: gather the events there. */
    for (size_t k = 0; k < n;) {
        uint32_t di = s->hrecs[which[k]].dest;
        size_t m = 0;
        while (k < n && s->hrecs[which[k]].dest == di)
            s->events[m++] = s->rec_ev[base + which[k++]];
        cwl_dest *d = &s->dests[di];
        cwl_held *e = held_find(s, d->hash, s->keys.p + d->key_off, d->key_len);
        /* Over max_held_streams if need be: these must not be lost. */
        if (!e)
            e = held_new(s, d);
        if (e && held_append(s, e, s->events, m, now) == 0) {
            e->tried = 1; /* not again within this flush */
            continue;
        }
        s->host->log(s->host, LF_LOG_ERROR,
                     "%zu records of log group %s could neither be parked "
                     "for a retry nor held; they are delivered again after "
                     "a restart",
                     m, d->group);
    }
}

void cwl_hold_settle(cwl_sink *s)
{
    const lf_host *h = s->host;
    size_t n = s->n_hrecs, base = s->batch->count;
    if (n) {
        if (n > s->cap_settled) {
            lf_settled *p = realloc(s->settled, n * sizeof *p);
            size_t *w = p ? realloc(s->retry_idx, n * sizeof *w) : NULL;
            if (p)
                s->settled = p;
            if (w)
                s->retry_idx = w;
            if (!p || !w)
                return; /* settled at the next chance: still held by the core */
            s->cap_settled = n;
        }
        lf_settled *v = s->settled;
        size_t k = 0;
        for (size_t j = 0; j < n; j++)
            if (s->verd[base + j] == LF_REC_OK)
                v[k++] = settled_of(s, j);
        if (k)
            h->settle(h, v, k, NULL, 0);
        /* Refusals: one call per reason. */
        for (size_t r = 0; r <= s->n_reasons; r++) {
            uint8_t want = r < s->n_reasons ? (uint8_t)r : UINT8_MAX;
            k = 0;
            for (size_t j = 0; j < n; j++)
                if (s->verd[base + j] == LF_REC_FAIL &&
                    s->rec_reason[base + j] == want)
                    v[k++] = settled_of(s, j);
            if (k)
                h->settle(h, v, k,
                          r < s->n_reasons ? s->reasons[r].text
                                           : "refused (one of many reasons)",
                          0);
        }
        uint32_t ra = 0;
        for (size_t i = 0; i < s->n_dests; i++)
            if (s->dests[i].retry_after_ms > ra)
                ra = s->dests[i].retry_after_ms;
        k = 0;
        for (size_t j = 0; j < n; j++)
            if (s->verd[base + j] == LF_REC_RETRY) {
                s->retry_idx[k] = j;
                v[k++] = settled_of(s, j);
            }
        if (k && h->settle(h, v, k, NULL, ra) != 0) {
            h->counter_add(h, "settle_refused", k);
            hold_again(s, s->retry_idx, k);
        }
    }
    /* Streams left empty give their file back. */
    for (size_t i = 0; i < s->n_hslots; i++) {
        cwl_held **pp = &s->hslots[i];
        while (*pp) {
            cwl_held *e = *pp;
            if (e->n == 0)
                held_drop(s, e);
            else
                pp = &e->hnext;
        }
    }
}

void cwl_hold_untry(cwl_sink *s)
{
    for (size_t i = 0; i < s->n_hslots; i++)
        for (cwl_held *e = s->hslots[i]; e; e = e->hnext)
            e->tried = 0;
}

int64_t cwl_hold_next_ms(cwl_sink *s)
{
    if (s->hold_more)
        return 0;
    int64_t now = s->host->mono_ns(s->host), best = -1;
    for (size_t i = 0; i < s->n_hslots; i++)
        for (cwl_held *e = s->hslots[i]; e; e = e->hnext) {
            if (!e->n)
                continue;
            int64_t left = e->since_ns + s->hold_ns - now;
            left = left > 0 ? (left + 999999) / 1000000 : 0;
            if (best < 0 || left < best)
                best = left;
        }
    return best;
}
