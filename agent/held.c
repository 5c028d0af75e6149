/*
 * held.c - records a sink holds; see held.h.
 */
#include "held.h"

#include <stdlib.h>
#include <string.h>

static held_seg *seg_lookup(held_set *hs, const char *name)
{
    /* A handful of segments at most are in flight at once: a scan beats a
       hash table here. */
    for (size_t i = 0; i < hs->n_segs; i++)
        if (strcmp(hs->segs[i].name, name) == 0)
            return &hs->segs[i];
    return NULL;
}

static void seg_drop(held_set *hs, held_seg *s)
{
    free(s->name);
    free(s->e);
    *s = hs->segs[--hs->n_segs];
}

/* Index of the first entry in [a, b) with offset >= off (b if none). */
static size_t lower_bound(const held_seg *s, size_t a, size_t b, uint64_t off)
{
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->e[m].offset < off)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* lower_bound over [lo, n), searching outwards from s->hint first:
 * settles come in runs of rising offsets (one destination's records at a
 * time), so the next is usually close ahead and a gallop touches a few
 * neighbouring entries instead of a binary search's cache misses over the
 * array. */
static size_t find_near(const held_seg *s, uint64_t off)
{
    size_t h = s->hint;
    if (h < s->lo || h >= s->n || s->e[h].offset >= off)
        return lower_bound(s, s->lo, s->n, off);
    size_t step = 1, prev = h;
    while (h + step < s->n && s->e[h + step].offset < off) {
        prev = h + step;
        step *= 2;
    }
    return lower_bound(s, prev + 1, h + step < s->n ? h + step : s->n, off);
}

/* Skip settled entries at the front, and compact when the dead prefix is
 * most of the array, so memory follows what is still held. */
static void sweep_front(held_seg *s)
{
    while (s->lo < s->n && s->e[s->lo].gone)
        s->lo++;
    if (s->lo > 64 && s->lo * 2 > s->n) {
        memmove(s->e, s->e + s->lo, (s->n - s->lo) * sizeof *s->e);
        s->n -= s->lo;
        s->hint = s->hint >= s->lo ? s->hint - s->lo : 0;
        s->lo = 0;
    }
}

int held_add(held_set *hs, const char *segment, uint64_t offset,
             int64_t since_ns, uint32_t attempts)
{
    held_seg *s = seg_lookup(hs, segment);
    if (!s) {
        if (hs->n_segs == hs->cap_segs) {
            size_t nc = hs->cap_segs ? hs->cap_segs * 2 : 8;
            held_seg *ns = realloc(hs->segs, nc * sizeof *ns);
            if (!ns)
                return -1;
            hs->segs = ns;
            hs->cap_segs = nc;
        }
        s = &hs->segs[hs->n_segs];
        memset(s, 0, sizeof *s);
        if (!(s->name = strdup(segment)))
            return -1;
        hs->n_segs++;
    }
    size_t at = lower_bound(s, s->lo, s->n, offset);
    if (at < s->n && s->e[at].offset == offset) {
        if (!s->e[at].gone)
            return 0; /* already held */
        /* Held again after being settled (offered again after a RETRY):
           reuse the slot, order is unchanged. */
        s->e[at] = (held_ent){offset, since_ns, attempts, 0};
        s->live++;
        hs->count++;
        return 0;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        held_ent *ne = realloc(s->e, nc * sizeof *ne);
        if (!ne) {
            if (s->live == 0 && s->n == 0)
                seg_drop(hs, s);
            return -1;
        }
        s->e = ne;
        s->cap = nc;
    }
    /* Nearly always an append: records are held in spool order. */
    memmove(s->e + at + 1, s->e + at, (s->n - at) * sizeof *s->e);
    s->e[at] = (held_ent){offset, since_ns, attempts, 0};
    s->n++;
    s->live++;
    hs->count++;
    return 0;
}

int held_take(held_set *hs, const char *segment, uint64_t offset,
              int64_t *since_ns, uint32_t *attempts)
{
    held_seg *s = seg_lookup(hs, segment);
    if (!s)
        return -1;
    size_t at = find_near(s, offset);
    if (at >= s->n || s->e[at].offset != offset || s->e[at].gone)
        return -1;
    s->hint = at;
    if (since_ns)
        *since_ns = s->e[at].since_ns;
    if (attempts)
        *attempts = s->e[at].attempts;
    s->e[at].gone = 1;
    s->live--;
    hs->count--;
    if (s->live == 0)
        seg_drop(hs, s);
    else
        sweep_front(s);
    return 0;
}

int held_lowest(held_set *hs, const char *segment, uint64_t *offset)
{
    held_seg *s = seg_lookup(hs, segment);
    if (!s)
        return 0;
    /* live > 0 here, and sweep_front keeps e[lo] live. */
    *offset = s->e[s->lo].offset;
    return 1;
}

void held_clear(held_set *hs)
{
    for (size_t i = 0; i < hs->n_segs; i++) {
        free(hs->segs[i].name);
        free(hs->segs[i].e);
    }
    free(hs->segs);
    memset(hs, 0, sizeof *hs);
}
