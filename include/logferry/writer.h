/*
 * logferry/writer.h - the application's side of logferry.
 *
 * An application appends invocation records to a local spool directory and
 * never waits on the network or on the agent: lf_writer_append() copies the
 * encoded record into an in-process buffer and returns. The agent tails the
 * spool and delivers the records to the configured sinks.
 *
 * Each process writes its own segment files, so processes never contend for
 * a lock. One lf_writer may be shared by any number of threads of a process.
 *
 * Durability (lf_writer_options.durability) says when an appended record
 * survives a crash:
 *   LF_DURABILITY_NONE      written to the file when the buffer fills, on
 *                           lf_writer_flush() and every fsync_interval_ms;
 *                           never fsynced. Survives nothing until written.
 *   LF_DURABILITY_INTERVAL  (default) group commit: a background thread
 *                           writes and fsyncs every fsync_interval_ms. A
 *                           crash of the process or the machine loses at
 *                           most that window.
 *   LF_DURABILITY_EVERY     lf_writer_append() returns once the record is
 *                           written and fdatasync()ed.
 *
 * Spool size limit (spool_max_bytes, 0 = none): when the spool directory
 * holds more than this, the overflow policy applies:
 *   LF_OVERFLOW_REFUSE      (default) append fails with LF_ERR_SPOOL_FULL;
 *                           nothing already in the spool is touched. The
 *                           application decides what to drop.
 *   LF_OVERFLOW_DROP_OLDEST the writer deletes the oldest complete segments
 *                           (of any writer) until the spool fits, logging
 *                           nothing (it is a library) but counting them in
 *                           lf_writer_stats.dropped_segments. Live segments
 *                           (its own open one, other writers') are never
 *                           deleted: if only they remain, append fails with
 *                           LF_ERR_SPOOL_FULL. Keep spool_max_bytes well
 *                           above rotate_bytes.
 *
 * All functions return LF_OK (0) or a negative lf_status. lf_strerror()
 * names the code; lf_writer_errmsg() gives the detail of the last failure
 * of this writer (path and errno text).
 */
#ifndef LOGFERRY_WRITER_H
#define LOGFERRY_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <logferry/logferry.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LF_WRITER_VERSION "0.1.0"

/* liblogferry.so is built with hidden visibility; only these functions
   (and the generated protobuf-c code) are its ABI. */
#if defined(LF_BUILDING_LIB) && defined(__GNUC__)
#define LF_API __attribute__((visibility("default")))
#else
#define LF_API
#endif

typedef enum lf_status {
    LF_OK = 0,
    LF_ERR_INVAL = -1,      /* bad argument or option */
    LF_ERR_IO = -2,         /* open/write/fsync failed; see lf_writer_errmsg */
    LF_ERR_SPOOL_FULL = -3, /* spool over spool_max_bytes, policy REFUSE */
    LF_ERR_NOMEM = -4,
    LF_ERR_TOO_BIG = -5,  /* record larger than LF_MAX_RECORD_BYTES */
    LF_ERR_CLOSED = -6,   /* writer failed earlier and cannot go on */
    LF_ERR_ENCODE = -7,   /* the record could not be encoded */
    LF_ERR_NO_SPACE = -8, /* the file system is full (ENOSPC/EDQUOT);
                             nothing partial was left in the segment */
} lf_status;

/* Largest encoded record a frame can carry (4 MiB). */
#define LF_MAX_RECORD_BYTES (4u * 1024u * 1024u)

typedef enum lf_durability {
    LF_DURABILITY_NONE = 0,
    LF_DURABILITY_INTERVAL = 1,
    LF_DURABILITY_EVERY = 2,
} lf_durability;

typedef enum lf_overflow {
    LF_OVERFLOW_REFUSE = 0,
    LF_OVERFLOW_DROP_OLDEST = 1,
} lf_overflow;

typedef struct lf_writer_options {
    /* Set by lf_writer_options_init(); lets the library grow the struct. */
    uint32_t struct_size;
    /* Start a new segment when the current one reaches this size.
       Default 64 MiB; minimum 4 KiB. */
    uint64_t rotate_bytes;
    /* Start a new segment when the current one is this old and not empty.
       Default 60000 ms; 0 disables. It bounds how long a record can sit in
       a segment that is still open, hence retention precision. */
    uint32_t rotate_age_ms;
    lf_durability durability;
    /* Group-commit period for LF_DURABILITY_INTERVAL, and the period the
       background thread writes the buffer out in every mode. Default 50. */
    uint32_t fsync_interval_ms;
    /* 0 = no limit (default). */
    uint64_t spool_max_bytes;
    lf_overflow overflow;
    /* In-process buffer; a record bigger than it is written directly.
       Default 256 KiB; 4 KiB to 64 MiB. */
    uint32_t buffer_bytes;
} lf_writer_options;

typedef struct lf_writer_stats {
    uint64_t records;  /* appended successfully */
    uint64_t bytes;    /* frame bytes appended */
    uint64_t segments; /* segments opened */
    uint64_t fsyncs;
    uint64_t refused;          /* appends refused (spool full, no space) */
    uint64_t dropped_segments; /* deleted by LF_OVERFLOW_DROP_OLDEST */
} lf_writer_stats;

typedef struct lf_writer lf_writer;

/* Fill *opt with the defaults above. */
LF_API void lf_writer_options_init(lf_writer_options *opt);

/* Open a writer on spool directory `dir`, creating it (mode 0700) if it
 * does not exist. `opt` may be NULL for defaults; it is copied. On success
 * *out owns a writer the caller releases with lf_writer_close(). On
 * failure *out is NULL and the return code says why; if `errbuf` is not
 * NULL, up to `errlen` bytes of detail (path, errno text) are written. */
LF_API int lf_writer_open(const char *dir, const lf_writer_options *opt,
                          lf_writer **out, char *errbuf, size_t errlen);

/* Encode and append one record. The record is borrowed for the call only.
 * If record_id is empty the writer sets 16 random bytes; if event_time_ns
 * is 0 it sets the current time. The record itself is not modified. */
LF_API int lf_writer_append(lf_writer *w,
                            const Logferry__V1__InvocationRecord *rec);

/* Append bytes that already hold an encoded InvocationRecord (borrowed).
 * They are framed as they are: no id or time is added, and they are not
 * validated beyond the size limit (the agent rejects what it cannot
 * decode, and counts it). */
LF_API int lf_writer_append_raw(lf_writer *w, const void *buf, size_t len);

/* Write everything appended so far to the segment file and, unless the
 * durability is NONE, fdatasync it. Returns once done. */
LF_API int lf_writer_flush(lf_writer *w);

/* Flush, seal the open segment (release its lock), stop the background
 * thread and free the writer. Accepts NULL. Returns the flush result; the
 * writer is freed either way. */
LF_API int lf_writer_close(lf_writer *w);

/* Copy the counters (thread-safe). */
LF_API void lf_writer_get_stats(lf_writer *w, lf_writer_stats *out);

/* Detail of this writer's last failure, or "" (valid until the next call
 * on the writer from any thread; copy it if needed). */
LF_API const char *lf_writer_errmsg(lf_writer *w);

/* Static text for an lf_status code; never NULL. */
LF_API const char *lf_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
