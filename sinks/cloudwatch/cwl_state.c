/*
 * cwl_state.c - what the sink remembers between batches, per identity,
 * log group and log stream: credentials handles (so the host's cache is
 * asked once per identity, not per record), whether a group is ready
 * (exists, retention applied) and whether a stream was created.
 *
 * With thousands of tenants this must not grow without bound: entries are
 * made on demand, kept in LRU order, and evicted when idle longer than
 * state_idle or when there are more than state_max_entries. An evicted
 * entry costs at most a repeated CreateLogStream/DescribeLogGroups (both
 * idempotent) when its destination shows up again. Entries in use by the
 * running deliver() are pinned and never evicted.
 *
 * The table itself is touched only by the deliver thread; workers change
 * fields of pinned entries under the sink's state lock.
 */
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

static uint32_t key_hash(uint8_t kind, const char *k, size_t n)
{
    uint32_t h = 2166136261u ^ kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 16777619u;
    }
    return h;
}

int cwl_state_init(cwl_state *st, const lf_host *h, size_t max)
{
    memset(st, 0, sizeof *st);
    st->host = h;
    st->max = max;
    st->n_slots = 64;
    while (st->n_slots < max / 2)
        st->n_slots *= 2;
    st->slots = calloc(st->n_slots, sizeof *st->slots);
    return st->slots ? 0 : -1;
}

static void lru_unlink(cwl_state *st, cwl_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        st->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(cwl_state *st, cwl_ent *e)
{
    e->prev = NULL;
    e->next = st->head;
    if (st->head)
        st->head->prev = e;
    st->head = e;
    if (!st->tail)
        st->tail = e;
}

static void ent_free(cwl_state *st, cwl_ent *e)
{
    if (e->creds && st->host && LF_HOST_HAS(st->host, aws_creds_release))
        st->host->aws_creds_release(st->host, e->creds);
    free(e);
}

static void ent_remove(cwl_state *st, cwl_ent *e)
{
    cwl_ent **pp = &st->slots[e->hash & (st->n_slots - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(st, e);
    st->count--;
    ent_free(st, e);
}

void cwl_state_free(cwl_state *st)
{
    cwl_ent *e = st->head;
    while (e) {
        cwl_ent *n = e->next;
        ent_free(st, e);
        e = n;
    }
    free(st->slots);
    memset(st, 0, sizeof *st);
}

cwl_ent *cwl_state_get(cwl_state *st, cwl_ent_kind kind, const char *key,
                       size_t klen, int64_t now)
{
    uint32_t h = key_hash((uint8_t)kind, key, klen);
    cwl_ent **slot = &st->slots[h & (st->n_slots - 1)];
    for (cwl_ent *e = *slot; e; e = e->hnext)
        if (e->hash == h && e->kind == kind && e->klen == klen &&
            memcmp(e->key, key, klen) == 0) {
            e->used_ns = now;
            e->pinned = 1;
            if (st->head != e) {
                lru_unlink(st, e);
                lru_push_front(st, e);
            }
            return e;
        }
    cwl_ent *e = calloc(1, sizeof *e + klen + 1);
    if (!e)
        return NULL;
    e->hash = h;
    e->kind = (uint8_t)kind;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->used_ns = now;
    e->pinned = 1;
    e->hnext = *slot;
    *slot = e;
    lru_push_front(st, e);
    st->count++;
    return e;
}

size_t cwl_state_sweep(cwl_state *st, int64_t now, int64_t idle_ns)
{
    for (cwl_ent *e = st->head; e; e = e->next)
        e->pinned = 0;
    size_t evicted = 0;
    /* The tail is the least recently used: idle ones sit there. */
    cwl_ent *e = st->tail;
    while (e) {
        cwl_ent *prev = e->prev;
        if (now - e->used_ns > idle_ns || st->count > st->max) {
            ent_remove(st, e);
            evicted++;
        } else {
            break;
        }
        e = prev;
    }
    return evicted;
}
