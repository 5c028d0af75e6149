/*
 * cwl.h - internals of the "cloudwatch" sink (CloudWatch Logs), shared by
 * its files. Nothing here is part of any public contract: the module's
 * only export is the lf_sink_ops table (cwl_sink.c).
 *
 * Files, in the order a record passes through them:
 *   cwl_template.c  ${field} templates: which account, group and stream
 *   cwl_json.c      growable capped buffers, JSON strings, EMF rendering
 *   cwl_plan.c      per-destination sort and split into PutLogEvents
 *                   requests that keep every service limit
 *   cwl_state.c     per-(identity, group, stream) state and credentials
 *                   handles: made on demand, bounded, evicted when idle
 *   cwl_api.c       the CloudWatch Logs calls and what their answers mean
 *   cwl_pool.c      the small fixed thread pool for parallel streams
 *   cwl_hold.c      a stream's small share held in an unlinked file
 *                   until it fills a request (LF_REC_HOLD, settle)
 *   cwl_sink.c      config keys, create/deliver/poll/flush/destroy
 */
#ifndef LOGFERRY_SINK_CWL_H
#define LOGFERRY_SINK_CWL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <logferry/sink.h>

#include "../shared/awsname.h"
#include "../shared/sbuf.h"
#include "../shared/tmpl.h"

/* ---- PutLogEvents rules (CloudWatch Logs quotas, not configurable) ---- */

#define CWL_MAX_REQUEST_BYTES 1048576 /* sum of (UTF-8 message + 26) */
#define CWL_EVENT_OVERHEAD 26
#define CWL_MAX_EVENT_BYTES (CWL_MAX_REQUEST_BYTES - CWL_EVENT_OVERHEAD)
#define CWL_MAX_EVENTS 10000
#define CWL_MAX_SPAN_MS (24LL * 3600 * 1000)
#define CWL_MAX_AGE_MS (14LL * 24 * 3600 * 1000)
#define CWL_MAX_AHEAD_MS (2LL * 3600 * 1000)

/* Name limits of the service. */
#define CWL_NAME_MAX 512            /* log group and log stream names */
#define CWL_ARN_MAX LF_ROLE_ARN_MAX /* role ARN */
#define CWL_EXTID_MAX 1224          /* ExternalId */
#define CWL_SESSION_MAX 64          /* RoleSessionName */

/* ---- JSON strings (cwl_json.c) -------------------------------------- */

/* Append s[0..n) as a quoted JSON string. Invalid UTF-8 becomes U+FFFD
 * (one per invalid byte), control characters are escaped. Returns 0/-1. */
int cwl_json_str(sbuf *b, const char *s, size_t n);

/* Same for text known to be valid UTF-8 (host->to_json output): only '"',
 * '\\' and control characters are escaped. */
int cwl_json_str_utf8(sbuf *b, const char *s, size_t n);

/* Write v in decimal at out (at most 20 bytes, no NUL); returns the end. */
char *cwl_fmt_i64(char *out, int64_t v);

/* Length of the longest prefix of s[0..n) that is at most `max` bytes and
 * does not end inside a UTF-8 sequence. */
size_t cwl_utf8_cut(const char *s, size_t n, size_t max);

/* ---- templates (cwl_template.c) --------------------------------------- */

/* What characters a substituted field value may hold, per destination
 * part; a value with others makes the record unroutable rather than
 * letting "a/b" and "a_b" share a destination. */
typedef enum cwl_charset {
    CWL_CS_GROUP = 0,   /* [A-Za-z0-9._/#-] */
    CWL_CS_STREAM = 1,  /* anything but ':' '*' and control characters */
    CWL_CS_ARN = 2,     /* [A-Za-z0-9_+=,.@-]: no ':' or '/' */
    CWL_CS_EXTID = 3,   /* [A-Za-z0-9_+=,.@:/-] */
    CWL_CS_SESSION = 4, /* [A-Za-z0-9_+=,.@-] */
} cwl_charset;

typedef lf_tmpl cwl_tmpl;

/* A template (sinks/shared/tmpl.h) for a part of charset cs; ${hostname}
 * is the agent's host name, fixed at parse time. Free with
 * lf_tmpl_free(); expand with lf_tmpl_expand(). */
cwl_tmpl *cwl_tmpl_parse(const char *text, cwl_charset cs, const char *hostname,
                         char *err, size_t errlen);

/* Whether `s` is a valid log group / log stream name (whole-value checks
 * after expansion; role ARNs: lf_valid_role_arn()). */
int cwl_valid_group(const char *s, size_t n);
int cwl_valid_stream(const char *s, size_t n);

/* ---- splitting into requests (cwl_plan.c) ------------------------------ */

/* One event of a destination, after the time and size checks. */
typedef struct cwl_event {
    int64_t ts_ms;
    uint32_t rec; /* index in the batch */
    uint32_t len; /* message bytes (UTF-8) */
    size_t off;   /* message offset in the message arena */
} cwl_event;

/* A request: events [start, end) of the sorted array. */
typedef struct cwl_chunk {
    uint32_t start, end;
} cwl_chunk;

/* Sort ev[0..n) by timestamp, keeping their order among equal ones. */
void cwl_plan_sort(cwl_event *ev, size_t n);

/* Split sorted ev[0..n) into requests that keep every PutLogEvents rule:
 * at most max_events events, at most max_bytes of (len + 26) summed, a
 * span of at most CWL_MAX_SPAN_MS. Every event must satisfy len + 26 <=
 * max_bytes. Writes at most n chunks into out and returns how many. */
size_t cwl_plan_split(const cwl_event *ev, size_t n, size_t max_events,
                      size_t max_bytes, cwl_chunk *out);

/* ---- state: destinations, groups, credentials (cwl_state.c) ----------- */

typedef enum cwl_ent_kind {
    CWL_ENT_CREDS = 0,  /* key: role \x1f extid \x1f session */
    CWL_ENT_GROUP = 1,  /* key: role \x1f extid \x1f group */
    CWL_ENT_STREAM = 2, /* key: role \x1f extid \x1f group \x1f stream */
} cwl_ent_kind;

typedef struct cwl_ent {
    struct cwl_ent *hnext;       /* hash chain */
    struct cwl_ent *prev, *next; /* LRU list, most recent first */
    uint32_t hash;
    uint8_t kind;
    uint8_t pinned;    /* in use by the deliver() running now */
    int64_t used_ns;   /* host mono clock at last use */
    int64_t warned_ns; /* last WARN logged about it */

    /* CWL_ENT_CREDS */
    lf_aws_creds *creds;

    /* CWL_ENT_GROUP; guarded by the state lock while workers run */
    uint8_t group_ready; /* exists (or assumed to) and retention done */
    uint8_t group_busy;  /* a worker is preparing it */
    int32_t retention;   /* days as known; 0: never expires / unknown */

    /* CWL_ENT_STREAM */
    uint8_t stream_created; /* created or seen to exist */

    size_t klen;
    char key[]; /* NUL-terminated */
} cwl_ent;

typedef struct cwl_state {
    cwl_ent **slots;
    size_t n_slots, count, max;
    cwl_ent *head, *tail; /* LRU */
    const lf_host *host;
} cwl_state;

int cwl_state_init(cwl_state *st, const lf_host *h, size_t max);
/* Release every entry (credentials handles too). Accepts a zeroed st. */
void cwl_state_free(cwl_state *st);

/* The entry for (kind, key), made on demand, marked used and pinned.
 * Returns NULL when out of memory. Not thread-safe: the deliver thread
 * only. */
cwl_ent *cwl_state_get(cwl_state *st, cwl_ent_kind kind, const char *key,
                       size_t klen, int64_t now);

/* Unpin everything pinned; then evict unpinned entries idle for longer
 * than idle_ns and, past max, the least recently used ones. Returns the
 * number evicted. */
size_t cwl_state_sweep(cwl_state *st, int64_t now, int64_t idle_ns);

/* ---- a fixed pool of threads (cwl_pool.c) ------------------------------ */

typedef struct cwl_pool cwl_pool;

/* n - 1 threads; the caller of cwl_pool_run is the n-th worker. n = 1
 * makes no thread. Returns NULL with err set on failure. */
cwl_pool *cwl_pool_create(unsigned n, char *err, size_t errlen);

/* Call fn(arg, i) for every i in [0, count), spread over the pool, and
 * return when all calls have returned. One run at a time. */
void cwl_pool_run(cwl_pool *p, void (*fn)(void *arg, size_t i), void *arg,
                  size_t count);

/* Stop and join the threads; accepts NULL. */
void cwl_pool_destroy(cwl_pool *p);

/* ---- held streams (cwl_hold.c) ------------------------------------------ */

/* One stream whose events wait in an unlinked temporary file for more of
 * its kind (see cwl_hold.c). Only totals live in memory; the events are
 * in the file, one cwl_hold_hdr each followed by the segment name (with
 * its NUL), the message and the payload. */
typedef struct cwl_held {
    struct cwl_held *hnext; /* hash chain */
    uint32_t hash;
    int fd;            /* unlinked at creation: gone after any crash */
    uint64_t fsize;    /* bytes written */
    uint64_t cw_bytes; /* sum of (message + 26), as CloudWatch counts */
    uint32_t n;        /* events */
    int64_t since_ns;  /* host mono time the oldest event was held */
    int64_t min_ts, max_ts;
    uint64_t gen;       /* last run that looked at it */
    uint8_t is_default; /* the default destination */
    uint8_t tried;      /* flush(): attempted once already */
    size_t klen;
    char key[]; /* destination key, NUL-terminated */
} cwl_held;

/* The header of one held event in a file (native byte order: the file
 * never outlives the process). */
typedef struct cwl_hold_hdr {
    int64_t ts_ms;
    uint64_t offset; /* spool position */
    uint32_t msg_len, pay_len, seg_len;
    uint32_t pad;
} cwl_hold_hdr;

/* A held event read back for this run: where its header sits in
 * cwl_sink.msgs and which destination of the run it belongs to. */
typedef struct cwl_hrec {
    size_t at;
    uint32_t dest;
} cwl_hrec;

/* ---- the instance (cwl_sink.c) and its calls (cwl_api.c) -------------- */

#define CWL_MAX_REASONS 16
#define CWL_REASON_LEN 400

/* A refusal shared by records of one deliver(); the batch carries one
 * fail_reason, so distinct ones are counted and summarised. */
typedef struct cwl_reason {
    char text[CWL_REASON_LEN];
    size_t count;
} cwl_reason;

/* One (identity, group, stream) of the running deliver(). */
typedef struct cwl_dest {
    uint32_t hash;
    size_t key_off, key_len; /* in cwl_sink.keys */
    /* NUL-terminated parts (in cwl_sink.names); role/extid/session NULL
       when not set */
    const char *role, *extid, *session, *group, *stream;
    cwl_ent *creds, *grp, *stm;
    size_t ev_start, ev_n;   /* events of this destination */
    size_t ch_start, ch_n;   /* its requests */
    uint32_t retry_after_ms; /* out */
    uint8_t is_default;      /* the default destination */
    /* holding (cwl_hold.c) */
    uint64_t cw_bytes;       /* of the batch's events */
    int64_t min_ts, max_ts;  /* of the batch's events */
    cwl_held *held;          /* its held stream, while it has one */
    size_t hr_start, n_read; /* its events read back (in hrecs) */
    int64_t read_since_ns;   /* since_ns of what was read back */
    uint8_t plan;            /* enum in cwl_hold.c */
    uint8_t keep_tail;       /* a last request under min_request_bytes
                                is held again instead of sent */
} cwl_dest;

typedef struct cwl_sink {
    const lf_host *host;

    /* configuration (strings borrowed from the config values) */
    const char *region;
    char *url; /* endpoint + "/" */
    cwl_tmpl *t_role, *t_extid, *t_session, *t_group, *t_stream;
    cwl_tmpl *t_def_stream;
    const char *def_group, *def_role, *def_extid;
    int create_group, create_stream;
    int retention_days; /* 0: leave retention alone */
    const char *kms_key_id;
    char *tags_json; /* {"k":"v",...} or NULL */
    const char *group_class;
    int emf;
    char *emf_mid;    /* from ,"CloudWatchMetrics" up to "ModelId": */
    int64_t hold_ns;  /* longest a record is held */
    uint64_t min_req; /* min_request_bytes; 0: never hold */
    size_t max_held;  /* max_held_streams */
    unsigned concurrency;
    int truncate_oversize;
    int drop_out_of_range;
    int64_t idle_ns;
    char hostname[256];

    /* runtime */
    cwl_pool *pool;
    cwl_state state;
    pthread_mutex_t lock;    /* entry fields, reasons, bodies */
    pthread_cond_t group_cv; /* a group finished preparing */
    int64_t last_send_ns;    /* mono time of the last deliver() */
    uint64_t deliveries;

    /* held streams (cwl_hold.c); touched by the calling thread only */
    int hold_on;       /* min_req, hold_ns, host settle, instance_dir */
    cwl_held **hslots; /* hash table of held streams */
    size_t n_hslots, n_held;
    uint64_t gen;    /* bumped per run */
    int hold_more;   /* due work left for the next call (budget) */
    cwl_hrec *hrecs; /* read back in this run */
    size_t n_hrecs, cap_hrecs;
    lf_settled *settled; /* cap_settled each */
    size_t *retry_idx;
    size_t cap_settled;
    sbuf wbuf;         /* held events' headers, for one pwritev */
    struct iovec *iov; /* cap_iov */
    size_t cap_iov;

    /* per deliver(): reused between calls */
    lf_batch *batch;
    size_t n_recs; /* batch records, then read-back ones: verdict index */
    uint8_t *verd; /* verdict per n_recs */
    int64_t now_ms;
    sbuf msgs;  /* rendered messages */
    sbuf keys;  /* destination keys */
    sbuf names; /* NUL-separated destination parts */
    cwl_dest *dests;
    size_t n_dests, cap_dests;
    uint32_t *work; /* dests with requests, cap_dests of them */
    size_t n_work;
    uint32_t *dslots; /* open-addressing index into dests */
    size_t n_dslots;
    cwl_event *events;  /* grouped by destination */
    cwl_event *events2; /* the same laid out again (cwl_hold.c) */
    uint32_t *rec_dest;
    uint8_t *rec_reason; /* index into reasons, for LF_REC_FAIL */
    cwl_event *rec_ev;   /* per record, before grouping */
    cwl_chunk *chunks;
    size_t cap_recs;
    cwl_reason reasons[CWL_MAX_REASONS];
    size_t n_reasons;
    size_t other_refusals;
    sbuf *bodies; /* one per thread, taken from a free list */
    uint8_t *body_busy;
    char fail_reason[1024];
} cwl_sink;

/* Room for n records (batch and read back) in the per-record arrays;
 * contents kept. Returns 0 or -1 (out of memory). */
int cwl_grow_records(cwl_sink *s, size_t n);

/* Index of the destination with this key in this run, added if new; -1
 * when out of memory. May move s->dests. */
long cwl_dest_index(cwl_sink *s, const char *key, size_t klen, int is_def);

/* Hold-aware planning of one run (deliver, poll or flush), between
 * grouping and naming the destinations: decides per destination whether
 * its events wait (written to its file, verdict LF_REC_HOLD), or go now
 * merged after what it held (read back into msgs, within a budget).
 * `flush`: every held stream not tried yet is sent. Returns 0, or -1 when
 * out of memory (nothing held was lost: the files are untouched). */
int cwl_hold_plan(cwl_sink *s, int flush);

/* After splitting: hold the last request of a destination with keep_tail
 * when it is under min_request_bytes. */
void cwl_hold_tails(cwl_sink *s);

/* After sending: settle what was read back (one host->settle call per
 * verdict and reason), hold again what the host could not park, close
 * emptied files. */
void cwl_hold_settle(cwl_sink *s);

/* A flush starts: every held stream gets its one attempt. */
void cwl_hold_untry(cwl_sink *s);

/* Milliseconds until a held stream is due: 0 if due work is left, -1
 * when nothing is held. */
int64_t cwl_hold_next_ms(cwl_sink *s);

/* Close and free every held stream (their records are delivered again
 * by the host after a restart). Accepts a sink without any. */
void cwl_hold_free(cwl_sink *s);

/* Refuse record `rec` for good with `reason` (copied; deduplicated). Any
 * thread. */
void cwl_fail_record(cwl_sink *s, uint32_t rec, const char *reason);

/* Deliver the events of destination work[i] (cwl_pool_run callback; arg
 * is the cwl_sink): prepare the group if needed, send its requests in
 * order, and set the verdicts of its records. */
void cwl_send_dest(void *arg, size_t i);

#endif
