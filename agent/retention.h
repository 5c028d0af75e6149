/*
 * retention.h - how long segments stay on the local disk.
 *
 * Two rules, applied by the agent's garbage collector on every rescan:
 *  - spool.keep_delivered: a segment every sink has finished is removed
 *    once it is this old (default 0: at once).
 *  - spool.max_age: no record stays longer than this, delivered or not.
 *    A complete segment is purged once its last write is max_age old, so
 *    its oldest record overstays by at most the time its writer kept it
 *    open (the writer's rotation interval, rotate_age_ms, default 60 s).
 *    A segment its writer still holds open cannot be removed without
 *    losing what the writer appends next; the agent reports it instead.
 *    The same rule applies to the dead-letter spool.
 * Purges are counted and logged with counts only, never content.
 */
#ifndef LOGFERRY_RETENTION_H
#define LOGFERRY_RETENTION_H

#include <stdint.h>

/* Age of segment `path` in ms since its last write (mtime), and whether a
 * writer still holds it (live). Returns 0, or -1 if it cannot be read
 * (errno; ENOENT when it is gone). */
int retention_segment_age(const char *path, int64_t now_ns, int64_t *age_ms,
                          int *live);

/* Age in ms of the oldest record in a segment: from its header's creation
 * time. Returns 0 or -1. */
int retention_segment_created_age(const char *path, int64_t now_ns,
                                  int64_t *age_ms);

/* Number of intact frames at or after `offset` in segment `path` (the
 * records a sink at that position has not delivered). 0 if unreadable. */
uint64_t retention_frames_from(const char *path, uint64_t offset);

/* Apply max_age to every complete segment of `dir` (the dead-letter
 * spool). Returns the number of segments removed; adds their frames to
 * *records. */
unsigned retention_sweep_dir(const char *dir, int64_t max_age_ms,
                             int64_t now_ns, uint64_t *records);

#endif
