/*
 * held.h - the records a sink holds (LF_REC_HOLD in logferry/sink.h):
 * taken by the sink, not yet at its destination, so the cursor must not
 * pass them, and not to be offered again until the sink settles them.
 *
 * Kept per spool segment as an array of frame offsets sorted ascending
 * (records arrive in spool order, so adding is nearly always an append),
 * with settled entries marked and swept lazily: the lowest offset still
 * held, which is all the cursor needs, is O(1) amortised, and settling one
 * is a binary search. 24 bytes per held record; nothing of the record's
 * content is kept (the sink keeps that).
 *
 * Not thread-safe: the owner (the sink runner) serialises access.
 */
#ifndef LOGFERRY_HELD_H
#define LOGFERRY_HELD_H

#include <stddef.h>
#include <stdint.h>

typedef struct held_ent {
    uint64_t offset;
    int64_t since_ns;  /* mono time of the record's first refusal, or 0 */
    uint32_t attempts; /* refusals so far (the retry backoff grows on) */
    uint32_t gone;     /* settled; swept later */
} held_ent;

typedef struct held_seg {
    char *name; /* owned */
    held_ent *e;
    size_t lo, n, cap; /* e[lo..n) may still hold live entries */
    size_t live;
    size_t hint; /* where the last settle was: the next is usually a few
                    entries on (one destination's records, interleaved
                    with the others') */
} held_seg;

typedef struct held_set {
    held_seg *segs;
    size_t n_segs, cap_segs;
    size_t count; /* live entries over all segments */
} held_set;

/* Hold (segment, offset). since_ns/attempts are remembered for when the
 * record is settled as RETRY. Holding a position already held changes
 * nothing. Returns 0, or -1 when out of memory (nothing held). */
int held_add(held_set *hs, const char *segment, uint64_t offset,
             int64_t since_ns, uint32_t attempts);

/* Stop holding (segment, offset); its since/attempts are stored in the
 * out-parameters (either may be NULL). Returns 0, or -1 when the position
 * is not held. */
int held_take(held_set *hs, const char *segment, uint64_t offset,
              int64_t *since_ns, uint32_t *attempts);

/* Whether anything of `segment` is held, and if so its lowest offset in
 * *offset. */
int held_lowest(held_set *hs, const char *segment, uint64_t *offset);

/* Free everything; hs is left empty and reusable. */
void held_clear(held_set *hs);

#endif
