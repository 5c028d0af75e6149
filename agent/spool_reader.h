/*
 * spool_reader.h - the agent's reading side of one spool segment.
 *
 * The agent tails segments that their writers may still be appending to.
 * A reader walks the frames of one segment with bounded memory (a window
 * of SPOOL_READER_WINDOW bytes plus room for one maximal frame) and tells
 * the caller, frame by frame, what it found:
 *
 *   SPOOL_READ_FRAME   a complete frame with a valid CRC at ev.offset;
 *                      ev.payload / ev.length hold the encoded record
 *                      (borrowed, valid until the next call on the reader).
 *   SPOOL_READ_END     no complete frame at the position yet. The position
 *                      is unchanged; ev.offset is it and ev.length the bytes
 *                      that follow it in the file (0 = clean end; more = a
 *                      frame being written, or bytes that may never become
 *                      one).
 *   SPOOL_READ_DAMAGE  bytes [ev.offset, ev.offset + ev.length) cannot hold
 *                      a frame and were skipped: either a valid frame was
 *                      found after them (the reader is now positioned at
 *                      it) or, after spool_reader_finish(), the file ends.
 *                      Counted in spool_reader_stats; never delivered.
 *   SPOOL_READ_ERROR   read error or a file truncated below the position;
 *                      spool_reader_errmsg() names the path.
 *
 * Purged frames (a record a retention rule removed in place) are skipped
 * without a result and counted in spool_reader_stats.
 *
 * Live and complete segments. A writer holds an exclusive flock() on its
 * segment for as long as it may append (spool_format.h). While it does,
 * bytes at the tail that do not form a valid frame may be a frame being
 * written right now, so spool_reader_next() answers END for them, never
 * DAMAGE, unless a valid frame follows them (a writer appends in order,
 * so what lies before a valid frame is final). Only once
 * spool_reader_is_live() says the lock is free is the file final; then
 * spool_reader_finish() (and next() after it) report a torn tail as
 * DAMAGE and move to the end of the file. A tailing loop reads:
 *
 *     while ((rc = spool_reader_next(r, &ev)) != SPOOL_READ_END)
 *         ...FRAME: deliver; DAMAGE: count; ERROR: give up...
 *     if (spool_reader_is_live(r) == 1)
 *         ...wait for the file to grow, then call next() again...
 *     else
 *         while ((rc = spool_reader_finish(r, &ev)) != SPOOL_READ_END)
 *             ...FRAME: deliver; DAMAGE: count; ERROR: give up...
 *         ...the segment is done...
 *
 * finish() reads the file again after the liveness check, so frames a
 * writer appended just before it closed are still delivered.
 *
 * A reader is not thread-safe; use one per thread.
 */
#ifndef LOGFERRY_SPOOL_READER_H
#define LOGFERRY_SPOOL_READER_H

#include <stddef.h>
#include <stdint.h>

#include "spool_format.h"

/* Bytes read ahead per pread(); the buffer grows past it only to hold one
   frame of up to SPOOL_MAX_PAYLOAD bytes. */
#define SPOOL_READER_WINDOW (1u << 20)

typedef struct spool_reader spool_reader;

typedef enum spool_read_result {
    SPOOL_READ_ERROR = -1,
    SPOOL_READ_FRAME = 0,
    SPOOL_READ_END = 1,
    SPOOL_READ_DAMAGE = 2,
} spool_read_result;

typedef struct spool_read_event {
    uint64_t offset;        /* file offset (see the results above) */
    uint64_t length;        /* payload / remaining / damaged bytes */
    const uint8_t *payload; /* FRAME only; owned by the reader */
} spool_read_event;

typedef struct spool_reader_stats {
    uint64_t frames;          /* FRAME results */
    uint64_t damaged_regions; /* DAMAGE results */
    uint64_t damaged_bytes;   /* their total length */
    uint64_t purged_frames;   /* purged frames skipped (spool_format.h) */
    uint64_t purged_bytes;    /* their total size, headers included */
} spool_reader_stats;

/* Open segment `path` read-only and validate its header. On success *out
 * owns a reader positioned at the first frame, released with
 * spool_reader_close(). On failure returns -1, *out is NULL and `errbuf`
 * (if not NULL) receives "<path>: <reason>". */
int spool_reader_open(const char *path, spool_reader **out, char *errbuf,
                      size_t errlen);

/* The validated header (owned by the reader). */
const spool_header *spool_reader_header(const spool_reader *r);

/* Move to `offset`, a frame boundary the caller kept (a cursor). Offsets
 * below the header or past the end of the file are refused (-1, errmsg).
 * An offset that is not a frame boundary reads as damage up to the next
 * frame. Returns 0 on success. */
int spool_reader_seek(spool_reader *r, uint64_t offset);

/* The current position: where the next frame is expected. */
uint64_t spool_reader_tell(const spool_reader *r);

/* Read the next result into *ev (see the top of this file). */
spool_read_result spool_reader_next(spool_reader *r, spool_read_event *ev);

/* Declare the segment complete (its writer's lock is free, so it will not
 * grow) and read on: like next(), except that bytes at the tail that never
 * became a valid frame are reported as DAMAGE up to the end of the file
 * instead of END. The reader stays in this mode; END then always has
 * ev.length == 0. */
spool_read_result spool_reader_finish(spool_reader *r, spool_read_event *ev);

/* Is a writer still holding the segment? Tries a shared flock() without
 * blocking on the reader's own open file description (never the writer's):
 * returns 1 if it would block (live), 0 if it was free (complete; the lock
 * is dropped at once), -1 on error (errmsg). */
int spool_reader_is_live(spool_reader *r);

/* Copy the counters. */
void spool_reader_get_stats(const spool_reader *r, spool_reader_stats *out);

/* Detail of the last failure, or "" (owned by the reader). */
const char *spool_reader_errmsg(const spool_reader *r);

/* The process-wide lock the in-place purge (agent/scrub.c) holds while it
 * rewrites a frame; readers take it only to re-read a frame whose CRC did
 * not match. Not re-entrant. */
void spool_scrub_lock(void);
void spool_scrub_unlock(void);

/* Close the file and free the reader. Accepts NULL. */
void spool_reader_close(spool_reader *r);

#endif
