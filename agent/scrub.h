/*
 * scrub.h - per-record retention: remove, in place, the records of a
 * segment whose own retention limit has passed while the segment stays.
 *
 * Why in place. spool.max_age removes whole segments (retention.h), which
 * is enough when every record has the same limit. Per-route rules (route.h,
 * e.g. records with prompt text 1 h, metadata 7 days) mix limits in one
 * segment, and the segment must stay for the records still allowed. The
 * scrubber overwrites an expired record's payload with zeros and turns its
 * frame into a purged frame of the same length (spool_format.h): offsets do
 * not move, so every cursor stays valid, and readers skip it. It works on
 * segments a writer still appends to, since a writer only ever appends.
 *
 * When a record expires. Its limit comes from a caller's callback (the
 * routes). Its age counts from its event_time, or from when the scrubber
 * first saw it if that is earlier (an event_time in the future must not
 * postpone the purge), or from the segment's creation when it has none.
 * A pass purges everything due at that time, so a record overstays its
 * limit by at most the interval between passes (the agent runs one per
 * spool rescan) plus the pass itself.
 *
 * Cost (docs/BENCHMARKS.md). A pass decodes each new frame once. Frames with a limit that have
 * not expired are remembered by range (chunks of SCRUB_CHUNK bytes with the
 * earliest due time in them), not one by one, and only chunks that are due
 * are read again. Memory is a few dozen bytes per pending chunk.
 *
 * Crash safety. Under spool_scrub_lock(), the payloads of a segment's due
 * frames are zeroed and made durable (fdatasync) before their headers are
 * rewritten as purged, then synced again: a crash in between leaves frames
 * whose CRC fails (damage, reported once) and never a purged-looking frame
 * that still holds its record. A reader of the same process that meets a
 * half-done frame waits for the lock and then reads a purged one.
 * Damaged regions (bytes that are no frame, so nothing can deliver them)
 * are zeroed too: after such a crash they may hold part of a record that
 * was being purged, and nothing else could ever find it again. Readers
 * still report them as damage, zeros or not.
 *
 * A scrubber is used by one thread (the agent's main loop).
 */
#ifndef LOGFERRY_SCRUB_H
#define LOGFERRY_SCRUB_H

#include <stddef.h>
#include <stdint.h>

#include <logferry/logferry.pb-c.h>

/* Bytes of frames one pending range covers at most. */
#define SCRUB_CHUNK (256u * 1024u)

typedef struct scrubber scrubber;

/* Retention limit of one record in milliseconds (0: no per-record limit).
 * The record is borrowed for the call. */
typedef int64_t (*scrub_limit_fn)(void *ctx,
                                  const Logferry__V1__InvocationRecord *rec);

/* Told, once per segment and pass, the offsets (ascending) of the frames
 * just purged in segment `name`. Borrowed for the call. */
typedef void (*scrub_purged_fn)(void *ctx, const char *name,
                                const uint64_t *offsets, size_t n);

typedef struct scrub_stats {
    uint64_t frames_read;   /* frames decoded in this pass */
    uint64_t purged;        /* frames purged in this pass */
    unsigned segments;      /* segments with at least one purge */
    uint64_t damaged_bytes; /* bytes of damaged regions zeroed */
    unsigned errors;        /* segments that could not be scrubbed */
} scrub_stats;

/* A scrubber for the segments of directory `dir` (copied). Frames of
 * dead-letter segments (SPOOL_FLAG_DEAD_LETTER) are judged by the record
 * they carry. NULL when out of memory. */
scrubber *scrubber_new(const char *dir, scrub_limit_fn limit,
                       scrub_purged_fn purged, void *ctx);

/* One pass over `names` (the segment file names now in the directory,
 * borrowed): purge what is due at `now_ns` (wall clock, ns since the
 * epoch), remember what will be due, forget segments no longer listed.
 * Problems (a segment that cannot be opened for writing, a write error)
 * are logged once per segment with its path, counted in out->errors, and
 * the segment is tried again on the next pass. *out may be NULL. */
void scrubber_pass(scrubber *s, char *const *names, size_t n, int64_t now_ns,
                   scrub_stats *out);

/* Earliest due time of anything remembered (0: nothing pending). */
int64_t scrubber_next_due(const scrubber *s);

/* Free the scrubber. Accepts NULL. */
void scrubber_free(scrubber *s);

#endif
