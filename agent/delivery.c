/*
 * delivery.c - the per-sink delivery loop. See delivery.h for the
 * guarantees; docs/ARCHITECTURE.md for the reasoning.
 */
#include "delivery.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "arena.h"
#include "aws_host.h"
#include "cursor.h"
#include "held.h"
#include "log.h"
#include "record_decode.h"
#include "record_json.h"
#include "redact.h"
#include "route.h"
#include "spool_codec.h"
#include "spool_reader.h"

#define DEFAULT_BATCH_RECORDS 4096u
#define DEFAULT_BATCH_BYTES (4u * 1024u * 1024u)
#define ARENA_CHUNK (1u * 1024u * 1024u)
/* batch_prefetch = "auto" reads ahead for batches up to this many records. */
#define PREFETCH_AUTO_RECORDS 4096u

/* ---- per-segment state of one sink ---------------------------------- */

typedef struct parked {
    char *segment; /* owned copy of the segment name */
    uint64_t offset;
    uint8_t *data; /* owned copy of the frame payload */
    size_t len;
    int64_t due_ns;   /* mono time of the next attempt */
    int64_t since_ns; /* mono time of the first refusal */
    unsigned attempts;
} parked;

/* Parked records are bounded: past this the sink stops reading new ones
 * and the oldest parked records are retried in place. */
#define PARKED_MAX_BYTES (16u * 1024u * 1024u)
#define PARKED_MAX_RECORDS 50000u

/* Records a sink holds (LF_REC_HOLD) cost 24 bytes each here; past this
 * many the runner reads nothing new until the sink settles some. */
#define HELD_MAX_RECORDS 1000000u

typedef struct seg_state {
    char *name;
    uint64_t read_off;  /* next frame to read */
    uint64_t acked_off; /* everything before is delivered */
    int finishing;      /* writer gone: read with spool_reader_finish() */
    int complete;       /* writer gone and read to the end */
    int done;           /* complete and acknowledged; durably recorded */
    int present;        /* seen in the latest listing */
    /* read_off and complete as they were when the batch now with the sink
       was handed over; advance() acknowledges up to these, not up to what
       was read since for the next batch. */
    uint64_t sent_off;
    int sent_complete;
} seg_state;

/* One batch: its records, their retry state and the arena they live in.
 * A runner has two: while the sink delivers one (on the runner's
 * deliverer thread), the runner reads and decodes the next into the
 * other, so reading the spool overlaps the sink's write and fsync. */
typedef struct batch_slot {
    lf_record *recs;
    uint8_t *verdict;
    unsigned *rec_attempts; /* per record: retries so far */
    int64_t *rec_since;     /* per record: first refusal (mono) */
    size_t n_recs;
    size_t batch_bytes;
    arena arena;                 /* payload copies, decoded records */
    ProtobufCAllocator pb_alloc; /* over arena */
    /* The records' pos.segment is a copy in the arena: the segment's own
       name is freed if the segment vanishes from the spool while the batch
       waits (linger) or is read ahead. Cached for the last segment. */
    const char *seg_src, *seg_copy;
} batch_slot;

struct sink_runner {
    sink_conf conf;
    const delivery_env *env;
    void *inst;
    sink_host host;
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int finished;

    pthread_mutex_t cur_lock; /* guards cur (read by the GC) */
    cursor cur;
    int cur_dirty;
    int64_t last_commit_ns;

    seg_state *segs;
    size_t n_segs, cap_segs;
    uint64_t seen_gen;
    int synced_once;
    uint64_t replayed;      /* records offered (replay mode counts them) */
    const char **done_segs; /* replay: segments read to their end */
    size_t n_done_segs;
    route_table *routes; /* shared, referenced */

    /* Records a sink refused with LF_REC_RETRY while it accepted others
       (one tenant's account throttled or down): they wait here with their
       own backoff while the rest keeps flowing. The cursor stays at the
       oldest parked record of each segment. */
    struct parked *parked;
    size_t n_parked, cap_parked;
    size_t parked_bytes;
    /* Records the sink holds (LF_REC_HOLD): not offered again and not
       passed by the cursor until the sink settles them. Owned like the
       parked records. */
    held_set held;
    int can_hold;             /* the sink has poll() and so may hold */
    int64_t poll_at;          /* mono time the sink asked for its next poll() */
    redact_scratch *rscratch; /* NULL until a rule set needs it */

    uint32_t max_records, max_bytes;
    int64_t linger_ms;
    batch_slot slots[2];
    batch_slot *b; /* the batch being filled: one of slots */

    /* The deliverer thread runs deliver_batch() on the other slot while
       the runner fills b. Only the runner posts work and waits for it, so
       at most one batch is with the sink, as the ABI promises. While it
       runs, the deliverer alone touches that slot, the parked records,
       rng and attempt; the runner alone the segments, readers and b. */
    int writer_live; /* the last fill stopped at a segment still written */
    int prefetch;
    pthread_t dl_thread;
    int dl_started;
    pthread_mutex_t dl_lock;
    pthread_cond_t dl_cond;
    batch_slot *dl_job; /* posted, not yet finished; NULL when idle */
    int dl_result;
    int dl_quit;

    spool_reader *rd; /* cached reader */
    size_t rd_seg;    /* index into segs of the cached reader */

    uint64_t rng;
    unsigned attempt;
};

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: jitter only needs to be spread, not secret. */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t sink_runner_replayed(const sink_runner *r)
{
    return r->replayed;
}

size_t sink_runner_finished_segments(sink_runner *r, const char ***names)
{
    *names = r->done_segs;
    return r->n_done_segs;
}

const char *sink_runner_name(const sink_runner *r)
{
    return r->conf.name;
}

const sink_conf *sink_runner_conf(const sink_runner *r)
{
    return &r->conf;
}

sink_host *sink_runner_host(sink_runner *r)
{
    return &r->host;
}

#define RLOG(r, lvl, ...) log_msg(lvl, (r)->host.prefix, __VA_ARGS__)

static int host_settle(const lf_host *h, const lf_settled *v, size_t n,
                       const char *reason, uint32_t retry_after_ms);

sink_runner *sink_runner_new(sink_conf *sc, const delivery_env *env, char *err,
                             size_t errlen)
{
    sink_runner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->conf = *sc;
    memset(sc, 0, sizeof *sc);
    r->env = env;
    pthread_mutex_init(&r->cur_lock, NULL);
    if (sink_host_init(&r->host, r->conf.type, r->conf.name) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (env->aws)
        aws_host_attach(env->aws, &r->host.pub);
    r->host.pub.settle = host_settle;
    r->can_hold = r->conf.ops->struct_size >=
                      offsetof(lf_sink_ops, poll) + sizeof(r->conf.ops->poll) &&
                  r->conf.ops->poll;
    r->routes = route_table_ref(env->routes);
    r->host.pub.max_age_ms = env->max_age_ms;
    if (sink_host_set_instance_dir(&r->host, env->state_dir, r->conf.name, err,
                                   errlen) != 0)
        goto fail;
    r->max_records = (uint32_t)conf_int(&r->conf.common, SK_BATCH_RECORDS);
    if (!r->max_records)
        r->max_records = r->conf.ops->max_batch_records
                             ? r->conf.ops->max_batch_records
                             : DEFAULT_BATCH_RECORDS;
    r->max_bytes = (uint32_t)conf_int(&r->conf.common, SK_BATCH_BYTES);
    if (!r->max_bytes)
        r->max_bytes = r->conf.ops->max_batch_bytes
                           ? r->conf.ops->max_batch_bytes
                           : DEFAULT_BATCH_BYTES;
    /* The sink's preferred linger unless the user set one. */
    r->linger_ms = conf_int(&r->conf.common, SK_BATCH_LINGER);
    if (!r->conf.common.v[SK_BATCH_LINGER].present &&
        r->conf.ops->struct_size >=
            offsetof(lf_sink_ops, batch_linger_ms) + sizeof(uint32_t))
        r->linger_ms = r->conf.ops->batch_linger_ms;
    /* A second batch in memory costs ~1 KB per typical record: auto
       reads ahead for batches up to PREFETCH_AUTO_RECORDS (~4 MB), so a
       sink with large batches (cloudwatch: 10,000) keeps its memory
       budget. A replay delivers what it reads once: nothing to overlap. */
    int64_t pf = conf_int(&r->conf.common, SK_BATCH_PREFETCH);
    r->prefetch =
        !env->replay &&
        (pf == SK_PREFETCH_ON ||
         (pf == SK_PREFETCH_AUTO && r->max_records <= PREFETCH_AUTO_RECORDS));
    for (int k = 0; k < 2; k++) {
        batch_slot *sl = &r->slots[k];
        sl->arena = arena_make(ARENA_CHUNK);
        sl->pb_alloc = arena_pb_allocator(&sl->arena);
        if (k == 1 && !r->prefetch)
            break; /* the second slot is never used */
        sl->recs = calloc(r->max_records, sizeof *sl->recs);
        sl->verdict = calloc(r->max_records, 1);
        sl->rec_attempts = calloc(r->max_records, sizeof *sl->rec_attempts);
        sl->rec_since = calloc(r->max_records, sizeof *sl->rec_since);
        if (!sl->recs || !sl->verdict || !sl->rec_attempts || !sl->rec_since) {
            snprintf(err, errlen, "out of memory for a batch of %u records",
                     r->max_records);
            goto fail;
        }
    }
    r->b = &r->slots[0];
    pthread_mutex_init(&r->dl_lock, NULL);
    pthread_cond_init(&r->dl_cond, NULL);
    if (getrandom(&r->rng, sizeof r->rng, 0) != sizeof r->rng)
        r->rng = (uint64_t)host_mono_ns();

    char path[PATH_MAX], cerr[512];
    /* A replay keeps its position in memory only: it never moves or
       disturbs the live cursor. */
    snprintf(path, sizeof path, "%s/cursors/%s.%s", env->state_dir,
             r->conf.name, env->replay ? "replay-unused" : "cursor");
    if (env->replay) {
        memset(&r->cur, 0, sizeof r->cur);
    } else if (cursor_load(&r->cur, path, cerr, sizeof cerr) != 0) {
        /* Starting over re-delivers what the spool still holds: duplicates,
           never a loss. Say so loudly. */
        RLOG(r, LF_LOG_ERROR,
             "msg=\"cursor unreadable, delivering the spool from the "
             "start\" error=\"%s\"",
             cerr);
    }
    return r;
fail:
    sink_runner_free(r);
    return NULL;
}

void sink_runner_free(sink_runner *r)
{
    if (!r)
        return;
    if (r->inst && r->conf.ops)
        r->conf.ops->destroy(r->inst);
    if (r->rd)
        spool_reader_close(r->rd);
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->segs[i].name);
    route_table_free(r->routes);
    redact_scratch_free(r->rscratch);
    redact_rules_free(r->conf.redact);
    free(r->done_segs);
    free(r->segs);
    for (size_t i = 0; i < r->n_parked; i++) {
        free(r->parked[i].segment);
        free(r->parked[i].data);
    }
    free(r->parked);
    held_clear(&r->held);
    for (int k = 0; k < 2; k++) {
        free(r->slots[k].rec_attempts);
        free(r->slots[k].rec_since);
        free(r->slots[k].recs);
        free(r->slots[k].verdict);
        arena_free(&r->slots[k].arena);
    }
    pthread_mutex_destroy(&r->dl_lock);
    pthread_cond_destroy(&r->dl_cond);
    cursor_free(&r->cur);
    sink_host_destroy(&r->host);
    pthread_mutex_destroy(&r->cur_lock);
    conf_block_free(&r->conf.common);
    conf_block_free(&r->conf.module);
    free(r->conf.fingerprint);
    free(r);
}

int sink_runner_done_with(sink_runner *r, const char *name)
{
    pthread_mutex_lock(&r->cur_lock);
    cursor_entry *e = cursor_find(&r->cur, name);
    int done = e && e->done;
    pthread_mutex_unlock(&r->cur_lock);
    return done;
}

uint64_t sink_runner_offset(sink_runner *r, const char *name)
{
    pthread_mutex_lock(&r->cur_lock);
    cursor_entry *e = cursor_find(&r->cur, name);
    uint64_t off = e ? e->offset : 0;
    pthread_mutex_unlock(&r->cur_lock);
    return off;
}

/* ---- cursor --------------------------------------------------------- */

static int commit_cursor(sink_runner *r)
{
    if (r->env->replay) {
        /* Dead letters still must be durable; no cursor to write. */
        if (r->env->dead_letters) {
            pthread_mutex_lock(r->env->dead_lock);
            lf_writer_flush(r->env->dead_letters);
            pthread_mutex_unlock(r->env->dead_lock);
        }
        r->cur_dirty = 0;
        r->last_commit_ns = host_mono_ns();
        return 0;
    }
    /* Dead letters written for this batch must be durable before the
       cursor says the records are behind us. */
    if (r->env->dead_letters) {
        pthread_mutex_lock(r->env->dead_lock);
        int rc = lf_writer_flush(r->env->dead_letters);
        pthread_mutex_unlock(r->env->dead_lock);
        if (rc != LF_OK) {
            RLOG(r, LF_LOG_ERROR,
                 "msg=\"dead-letter flush failed, cursor not advanced\" "
                 "error=\"%s\"",
                 lf_writer_errmsg(r->env->dead_letters));
            return -1;
        }
    }
    char err[512];
    pthread_mutex_lock(&r->cur_lock);
    /* Forget segments that are gone from the spool and finished. */
    for (size_t i = 0; i < r->cur.n;) {
        int known = 0;
        for (size_t j = 0; j < r->n_segs; j++)
            if (strcmp(r->segs[j].name, r->cur.e[i].segment) == 0)
                known = 1;
        if (!known)
            cursor_remove(&r->cur, r->cur.e[i].segment);
        else
            i++;
    }
    for (size_t j = 0; j < r->n_segs; j++) {
        cursor_entry *e = cursor_get(&r->cur, r->segs[j].name);
        if (e) {
            e->offset = r->segs[j].acked_off;
            e->done = r->segs[j].done;
        }
    }
    int rc = cursor_save(&r->cur, err, sizeof err);
    pthread_mutex_unlock(&r->cur_lock);
    if (rc != 0) {
        RLOG(r, LF_LOG_ERROR, "msg=\"cursor write failed\" error=\"%s\"", err);
        sink_host_count(&r->host, "cursor_errors", 1);
        return -1;
    }
    r->cur_dirty = 0;
    r->last_commit_ns = host_mono_ns();
    return 0;
}

/* ---- segments ------------------------------------------------------- */

/* Bring segs in line with the spool listing. */
static void sync_segments(sink_runner *r)
{
    size_t n;
    uint64_t gen;
    char **names = spool_watch_list(r->env->watch, &n, &gen);
    if (!names)
        return;
    for (size_t i = 0; i < r->n_segs; i++)
        r->segs[i].present = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t created;
        if (r->env->replay &&
            (spool_segment_name_parse(names[i], &created, NULL, NULL) != 0 ||
             created >= r->env->replay_started_ns))
            continue; /* written after the replay began (its own dead
                         letters, among others) */
        size_t j;
        for (j = 0; j < r->n_segs; j++)
            if (strcmp(r->segs[j].name, names[i]) == 0)
                break;
        if (j < r->n_segs) {
            r->segs[j].present = 1;
            continue;
        }
        if (r->n_segs == r->cap_segs) {
            size_t nc = r->cap_segs ? r->cap_segs * 2 : 16;
            seg_state *ns = realloc(r->segs, nc * sizeof *ns);
            if (!ns)
                break;
            r->segs = ns;
            r->cap_segs = nc;
        }
        seg_state *s = &r->segs[r->n_segs];
        memset(s, 0, sizeof *s);
        s->name = names[i];
        names[i] = NULL;
        s->present = 1;
        pthread_mutex_lock(&r->cur_lock);
        cursor_entry *e = cursor_find(&r->cur, s->name);
        if (e) {
            s->read_off = s->acked_off = e->offset;
            s->done = s->complete = e->done;
        }
        s->sent_off = s->read_off;
        s->sent_complete = s->complete;
        pthread_mutex_unlock(&r->cur_lock);
        r->n_segs++;
        /* Record it in the cursor even before anything is delivered, so a
           removal while the agent is down can be reported. */
        r->cur_dirty = 1;
    }
    /* On the first listing, segments the cursor knows but the spool no
       longer holds were removed while the agent was not running. */
    if (!r->synced_once) {
        r->synced_once = 1;
        pthread_mutex_lock(&r->cur_lock);
        for (size_t k = 0; k < r->cur.n; k++) {
            int here = 0;
            for (size_t i = 0; i < n && !here; i++)
                here = names[i] == NULL
                           ? 0
                           : strcmp(names[i], r->cur.e[k].segment) == 0;
            for (size_t j = 0; j < r->n_segs && !here; j++)
                here = strcmp(r->segs[j].name, r->cur.e[k].segment) == 0;
            if (!here && !r->cur.e[k].done) {
                RLOG(r, LF_LOG_WARN,
                     "msg=\"segment removed before it was delivered\" "
                     "segment=%s delivered_up_to=%llu",
                     r->cur.e[k].segment,
                     (unsigned long long)r->cur.e[k].offset);
                sink_host_count(&r->host, "segments_lost", 1);
            }
        }
        pthread_mutex_unlock(&r->cur_lock);
    }
    spool_watch_free_list(names, n);
    /* Drop what vanished. A segment gone before we finished it was
       deleted under us (operator, or a writer's drop-oldest policy). */
    for (size_t i = 0; i < r->n_segs;) {
        seg_state *s = &r->segs[i];
        if (s->present) {
            i++;
            continue;
        }
        if (!s->done) {
            RLOG(r, LF_LOG_WARN,
                 "msg=\"segment removed before it was delivered (retention "
                 "or an operator)\" segment=%s delivered_up_to=%llu",
                 s->name, (unsigned long long)s->acked_off);
            sink_host_count(&r->host, "segments_lost", 1);
        }
        if (r->rd && r->rd_seg == i) {
            spool_reader_close(r->rd);
            r->rd = NULL;
        }
        if (r->rd && r->rd_seg == r->n_segs - 1)
            r->rd_seg = i;
        free(s->name);
        r->segs[i] = r->segs[--r->n_segs];
        r->cur_dirty = 1;
    }
    /* Keep creation order (names sort by creation time). */
    for (size_t i = 1; i < r->n_segs; i++)
        for (size_t j = i;
             j > 0 && strcmp(r->segs[j - 1].name, r->segs[j].name) > 0; j--) {
            seg_state t = r->segs[j];
            r->segs[j] = r->segs[j - 1];
            r->segs[j - 1] = t;
            if (r->rd && r->rd_seg == j)
                r->rd_seg = j - 1;
            else if (r->rd && r->rd_seg == j - 1)
                r->rd_seg = j;
        }
    r->seen_gen = gen;
}

static spool_reader *reader_for(sink_runner *r, size_t i)
{
    seg_state *s = &r->segs[i];
    if (r->rd && r->rd_seg == i)
        return r->rd;
    if (r->rd) {
        spool_reader_close(r->rd);
        r->rd = NULL;
    }
    char path[PATH_MAX], err[512];
    snprintf(path, sizeof path, "%s/%s", r->env->spool_dir, s->name);
    spool_reader *rd = NULL;
    if (spool_reader_open(path, &rd, err, sizeof err) != 0) {
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT)
            return NULL; /* deleted; the next listing says so */
        /* A bad header: nothing in it can be trusted as records. */
        RLOG(r, LF_LOG_ERROR,
             "msg=\"segment unreadable, skipped\" segment=%s error=\"%s\"",
             s->name, err);
        sink_host_count(&r->host, "segments_unreadable", 1);
        s->complete = 1;
        return NULL;
    }
    if (s->read_off > 0 && spool_reader_seek(rd, s->read_off) != 0) {
        spool_reader_close(rd);
        return NULL;
    }
    r->rd = rd;
    r->rd_seg = i;
    return rd;
}

static void report_damage(sink_runner *r, seg_state *s, uint64_t off,
                          uint64_t len, const char *what)
{
    RLOG(r, LF_LOG_WARN,
         "msg=\"%s skipped, records in it are not delivered\" segment=%s "
         "offset=%llu length=%llu",
         what, s->name, (unsigned long long)off, (unsigned long long)len);
    sink_host_count(&r->host, "corrupt_regions", 1);
    sink_host_count(&r->host, "corrupt_bytes", len);
}

/* ---- dead letters --------------------------------------------------- */

static void dead_letter(sink_runner *r, const lf_record *rec,
                        const char *reason)
{
    sink_host_count(&r->host, "dead_lettered", 1);
    if (!r->env->dead_letters) {
        RLOG(r, LF_LOG_ERROR,
             "msg=\"record refused and no dead-letter spool\" segment=%s "
             "offset=%llu reason=\"%s\"",
             rec->pos.segment, (unsigned long long)rec->pos.offset, reason);
        return;
    }
    Logferry__V1__DeadLetter dl = LOGFERRY__V1__DEAD_LETTER__INIT;
    dl.record.data = (uint8_t *)rec->payload;
    dl.record.len = rec->len;
    dl.sink = r->conf.name;
    dl.reason = (char *)(reason ? reason : "refused by the sink");
    dl.time_ns = host_now_ns();
    dl.segment = (char *)rec->pos.segment;
    dl.offset = rec->pos.offset;
    size_t n = logferry__v1__dead_letter__get_packed_size(&dl);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    logferry__v1__dead_letter__pack(&dl, buf);
    int rc = lf_writer_append_raw(r->env->dead_letters, buf, n);
    free(buf);
    if (rc != LF_OK)
        RLOG(r, LF_LOG_ERROR,
             "msg=\"dead-letter write failed\" segment=%s offset=%llu "
             "error=\"%s\"",
             rec->pos.segment, (unsigned long long)rec->pos.offset,
             lf_strerror(rc));
}

/* ---- reading a batch ------------------------------------------------ */

/* Empty the batch being filled (r->b). */
static void batch_reset(sink_runner *r)
{
    r->b->n_recs = 0;
    r->b->batch_bytes = 0;
    r->b->seg_src = r->b->seg_copy = NULL;
    /* With redaction on, the arena held text the rules removed: do not
       leave it lying in memory for the next batch to sit on. */
    if (route_global_redact(r->routes) || r->conf.redact)
        arena_wipe(&r->b->arena);
    arena_reset(&r->b->arena);
}

/* Apply one rule set to msg (k: 0 global, 1 route, 2 sink); returns the
 * number of values changed and adds per-rule counters. */
static int redact_with(sink_runner *r, int k, const redact_rules *rules,
                       Logferry__V1__InvocationRecord *msg)
{
    if (!rules)
        return 0;
    if (!r->rscratch && !(r->rscratch = redact_scratch_new()))
        return 0;
    redact_rule_stats st[64];
    size_t n = redact_rule_count(rules);
    if (n > 64)
        n = 64;
    memset(st, 0, sizeof st);
    int changed = redact_apply(rules, r->rscratch, msg, &r->b->pb_alloc,
                               redact_rule_count(rules) <= 64 ? st : NULL);
    if (changed > 0) {
        char name[HOST_COUNTER_NAME];
        for (size_t i = 0; i < n; i++)
            if (st[i].matches || st[i].fail_closed) {
                snprintf(name, sizeof name, "redact.%s%s",
                         k == 1 ? "route." : "", redact_rule_name(rules, i));
                sink_host_count(&r->host, name,
                                st[i].matches + st[i].fail_closed);
            }
    }
    return changed;
}

/* After redaction changed a record, its spool bytes no longer match:
 * encode it again so binary sinks and dead letters get the redacted form. */
static int repack(sink_runner *r, Logferry__V1__InvocationRecord *msg,
                  uint8_t **data, size_t *len)
{
    size_t n = logferry__v1__invocation_record__get_packed_size(msg);
    uint8_t *buf = arena_alloc(&r->b->arena, n ? n : 1);
    if (!buf)
        return -1;
    logferry__v1__invocation_record__pack(msg, buf);
    *data = buf;
    *len = n;
    return 0;
}

/* Add one frame to the batch. Returns 0, or -1 if the batch is full (the
 * frame was not taken). */
static int batch_add_one(sink_runner *r, seg_state *s, uint64_t off,
                         const uint8_t *payload, size_t len)
{
    if (r->b->n_recs == r->max_records ||
        (r->b->n_recs > 0 && r->b->batch_bytes + len > r->max_bytes))
        return -1;
    if (r->env->dead_letter_source) {
        /* Unwrap: replay the record a sink refused earlier. */
        Logferry__V1__DeadLetter *dl =
            logferry__v1__dead_letter__unpack(&r->b->pb_alloc, len, payload);
        if (!dl) {
            RLOG(r, LF_LOG_WARN,
                 "msg=\"undecodable dead letter skipped\" segment=%s "
                 "offset=%llu",
                 s->name, (unsigned long long)off);
            return 0;
        }
        if (!r->env->replay_any_sink &&
            strcmp(dl->sink ? dl->sink : "", r->conf.name) != 0)
            return 0;
        payload = dl->record.data;
        len = dl->record.len;
    }
    uint8_t *copy = arena_alloc(&r->b->arena, len ? len : 1);
    Logferry__V1__InvocationRecord *msg =
        arena_alloc(&r->b->arena, sizeof *msg);
    if (!copy || !msg)
        return -1;
    memcpy(copy, payload, len);
    /* The hand-written decoder (3x protobuf-c, checked against it by
       tests/unit/test_record_decode.c) is the hot path's largest saving. */
    int drc = rdec_unpack(copy, len, &r->b->pb_alloc, msg);
    if (drc == RDEC_ENOMEM)
        return -1; /* as when the arena cannot take the copy */
    if (drc != RDEC_OK) {
        /* A frame whose CRC holds but whose bytes are no record: an
           application appended garbage raw. Keep it as a dead letter. */
        /* Bytes we cannot decode cannot be redacted either: with rules
           configured, keep only the fact, not the bytes. */
        int redacting = route_global_redact(r->routes) || r->conf.redact;
        lf_record bad = {copy, redacting ? 0 : len, 0, {s->name, off}, NULL};
        RLOG(r, LF_LOG_WARN,
             "msg=\"undecodable record dead-lettered\" segment=%s "
             "offset=%llu length=%zu",
             s->name, (unsigned long long)off, len);
        sink_host_count(&r->host, "decode_errors", 1);
        dead_letter(r, &bad, "undecodable InvocationRecord");
        return 0;
    }
    if (r->env->replay &&
        ((r->env->since_ns && msg->event_time_ns < r->env->since_ns) ||
         (r->env->until_ns && msg->event_time_ns >= r->env->until_ns) ||
         (r->env->tenant &&
          strcmp(msg->tenant_id ? msg->tenant_id : "", r->env->tenant) != 0)))
        return 0; /* outside the replay's filter */
    /* Redaction comes before anything can see the record: the top-level
       rules first (they also cover unrouted dead letters), then the
       route's, then the sink's own. */
    int changed = redact_with(r, 0, route_global_redact(r->routes), msg);
    char scratch[RJSON_FIELD_SCRATCH];
    int route_idx = -1;
    route_verdict rv =
        route_decide(r->routes, r->conf.name, msg, scratch, &route_idx);
    if (rv == ROUTE_SKIP)
        return 0; /* another sink's record */
    if (rv == ROUTE_UNROUTED) {
        /* Never to a destination no route chose: dead-letter it, once. */
        if (!r->env->replay && route_owns_unrouted(r->routes, r->conf.name) &&
            !route_unrouted_drop(r->routes)) {
            if (changed && repack(r, msg, &copy, &len) != 0)
                return -1;
            lf_record un = {copy, len, msg->event_time_ns, {s->name, off}, msg};
            sink_host_count(&r->host, "unrouted", 1);
            dead_letter(r, &un, "no route accepts the record");
        }
        return 0;
    }
    changed += redact_with(r, 1, route_redact(r->routes, route_idx), msg);
    changed += redact_with(r, 2, r->conf.redact, msg);
    if (changed) {
        sink_host_count(&r->host, "redacted_records", 1);
        if (repack(r, msg, &copy, &len) != 0)
            return -1;
    }
    if (r->b->seg_src != s->name) {
        size_t nl = strlen(s->name) + 1;
        char *nc = arena_alloc(&r->b->arena, nl);
        if (!nc)
            return -1;
        memcpy(nc, s->name, nl);
        r->b->seg_src = s->name;
        r->b->seg_copy = nc;
    }
    r->replayed++;
    r->b->rec_attempts[r->b->n_recs] = 0;
    r->b->rec_since[r->b->n_recs] = 0;
    lf_record *rec = &r->b->recs[r->b->n_recs++];
    rec->payload = copy;
    rec->len = len;
    rec->event_time_ns = msg->event_time_ns;
    rec->pos.segment = r->b->seg_copy;
    rec->pos.offset = off;
    rec->internal = msg;
    r->b->batch_bytes += len;
    return 0;
}

/* Add one frame's record to the batch (batch_add_one), and give the arena
 * back whatever it took for a record that was not added: routed to
 * another sink, outside a replay's filter, dead-lettered, or refused
 * because the batch is full. Skipped records do not count towards the
 * batch limits, so without this a sink that receives few of the records
 * would hold every skipped one until its batch filled. */
static int batch_add(sink_runner *r, seg_state *s, uint64_t off,
                     const uint8_t *payload, size_t len)
{
    arena_mark m = arena_get_mark(&r->b->arena);
    size_t before = r->b->n_recs;
    int rc = batch_add_one(r, s, off, payload, len);
    if (r->b->n_recs == before)
        arena_release(&r->b->arena, m,
                      route_global_redact(r->routes) || r->conf.redact);
    return rc;
}

static seg_state *seg_find(sink_runner *r, const char *name)
{
    for (size_t i = 0; i < r->n_segs; i++)
        if (strcmp(r->segs[i].name, name) == 0)
            return &r->segs[i];
    return NULL;
}

static int parked_full(const sink_runner *r)
{
    return r->parked_bytes >= PARKED_MAX_BYTES ||
           r->n_parked >= PARKED_MAX_RECORDS;
}

/* Exponential backoff with full jitter: a random delay in
 * [0, min(cap, base * 2^attempts)] ms, at least retry_after_ms. Used for a
 * whole batch (backoff_sleep) and for each parked record. */
static int64_t backoff_delay_ms(sink_runner *r, unsigned attempts,
                                uint32_t retry_after_ms)
{
    int64_t base = conf_int(&r->conf.common, SK_BACKOFF_BASE);
    int64_t cap = conf_int(&r->conf.common, SK_BACKOFF_CAP);
    int64_t ceil = base;
    for (unsigned i = 0; i < attempts && ceil < cap; i++)
        ceil *= 2;
    if (ceil > cap)
        ceil = cap;
    /* Full jitter: spread retries of many agents over the whole window. */
    int64_t ms = (int64_t)(rng_next(&r->rng) % (uint64_t)(ceil + 1));
    return (int64_t)retry_after_ms > ms ? (int64_t)retry_after_ms : ms;
}

/* Park a copy of the record at (segment, offset) with this payload, to be
 * offered again after its backoff. attempts: refusals before this one;
 * since: mono time of the first (0: now). Returns 0, or -1 when the
 * parking is full or memory is short. */
static int park_copy(sink_runner *r, const char *segment, uint64_t offset,
                     const uint8_t *payload, size_t len, unsigned attempts,
                     int64_t since, uint32_t retry_after_ms)
{
    if (parked_full(r))
        return -1;
    if (r->n_parked == r->cap_parked) {
        size_t nc = r->cap_parked ? r->cap_parked * 2 : 256;
        parked *np = realloc(r->parked, nc * sizeof *np);
        if (!np)
            return -1;
        r->parked = np;
        r->cap_parked = nc;
    }
    parked *p = &r->parked[r->n_parked];
    p->segment = strdup(segment);
    p->data = malloc(len ? len : 1);
    if (!p->segment || !p->data) {
        free(p->segment);
        free(p->data);
        return -1;
    }
    memcpy(p->data, payload, len);
    p->len = len;
    p->offset = offset;
    p->attempts = attempts + 1;
    p->since_ns = since ? since : host_mono_ns();
    p->due_ns = host_mono_ns() +
                backoff_delay_ms(r, p->attempts, retry_after_ms) * 1000000LL;
    r->parked_bytes += len;
    r->n_parked++;
    return 0;
}

/* Park record i of batch sl. Returns 0, or -1 when the parking is full. */
static int park(sink_runner *r, const batch_slot *sl, size_t i,
                uint32_t retry_after_ms)
{
    const lf_record *rec = &sl->recs[i];
    return park_copy(r, rec->pos.segment, rec->pos.offset, rec->payload,
                     rec->len, sl->rec_attempts[i], sl->rec_since[i],
                     retry_after_ms);
}

static void unpark_at(sink_runner *r, size_t k)
{
    r->parked_bytes -= r->parked[k].len;
    free(r->parked[k].segment);
    free(r->parked[k].data);
    r->parked[k] = r->parked[--r->n_parked];
}

/* Move parked records whose time has come into the batch. */
static void fill_from_parked(sink_runner *r)
{
    int64_t now = host_mono_ns();
    for (size_t k = 0; k < r->n_parked;) {
        parked *p = &r->parked[k];
        if (p->due_ns > now) {
            k++;
            continue;
        }
        seg_state *s = seg_find(r, p->segment);
        if (!s) {
            /* Its segment is gone (retention): nothing left to retry. */
            sink_host_count(&r->host, "parked_lost", 1);
            unpark_at(r, k);
            continue;
        }
        size_t before = r->b->n_recs;
        if (batch_add(r, s, p->offset, p->data, p->len) != 0)
            return; /* batch full */
        if (r->b->n_recs > before) {
            r->b->rec_attempts[before] = p->attempts;
            r->b->rec_since[before] = p->since_ns;
        }
        unpark_at(r, k);
    }
}

/* Mono time of the earliest parked retry, or 0. */
static int64_t parked_next_due(const sink_runner *r)
{
    int64_t due = 0;
    for (size_t k = 0; k < r->n_parked; k++)
        if (!due || r->parked[k].due_ns < due)
            due = r->parked[k].due_ns;
    return due;
}

/* Fill the batch from the segments in creation order. Returns 1 if the
 * batch is full (more is waiting), 0 otherwise. ahead: reading ahead while
 * the deliverer owns the parked records: leave them alone (they are taken
 * at the next fill that is not ahead; a parking that fills up meanwhile
 * lets at most this one more batch be read). */
static int fill_batch(sink_runner *r, int ahead)
{
    r->writer_live = 0;
    if (!ahead && r->n_parked)
        fill_from_parked(r);
    if (r->b->n_recs == r->max_records)
        return 1;
    if (!ahead && (parked_full(r) || r->held.count >= HELD_MAX_RECORDS))
        return 0; /* backpressure: retry what is parked first, or let the
                     sink settle what it holds */
    for (size_t i = 0; i < r->n_segs; i++) {
        seg_state *s = &r->segs[i];
        if (s->complete)
            continue;
        spool_reader *rd = reader_for(r, i);
        if (!rd)
            continue;
        for (;;) {
            spool_read_event ev;
            spool_read_result st = s->finishing ? spool_reader_finish(rd, &ev)
                                                : spool_reader_next(rd, &ev);
            if (st == SPOOL_READ_FRAME) {
                if (batch_add(r, s, ev.offset, ev.payload, ev.length) != 0) {
                    /* Full: read this frame again next time. */
                    spool_reader_seek(rd, ev.offset);
                    return 1;
                }
                s->read_off = ev.offset + SPOOL_FRAME_HDR + ev.length;
                continue;
            }
            if (st == SPOOL_READ_DAMAGE) {
                report_damage(r, s, ev.offset, ev.length,
                              s->finishing ? "torn or corrupt tail"
                                           : "corrupt region");
                s->read_off = ev.offset + ev.length;
                continue;
            }
            if (st == SPOOL_READ_ERROR) {
                RLOG(r, LF_LOG_ERROR,
                     "msg=\"read error, will retry\" segment=%s offset=%llu "
                     "error=\"%s\"",
                     s->name, (unsigned long long)s->read_off,
                     spool_reader_errmsg(rd));
                spool_reader_close(rd);
                r->rd = NULL;
                break;
            }
            /* END: nothing more for now. */
            if (s->finishing) {
                s->complete = 1;
                spool_reader_close(rd);
                r->rd = NULL;
                break;
            }
            int live = spool_reader_is_live(rd);
            if (live != 0) {
                if (live < 0)
                    RLOG(r, LF_LOG_WARN,
                         "msg=\"cannot tell if the writer is alive\" "
                         "segment=%s error=\"%s\"",
                         s->name, spool_reader_errmsg(rd));
                r->writer_live = 1;
                break;
            }
            /* The writer is gone: the file is final. finish() reads what
               it wrote last and reports a torn tail as damage. */
            s->finishing = 1;
        }
    }
    return 0;
}

/* ---- delivering ----------------------------------------------------- */

static void backoff_sleep(sink_runner *r, size_t n_recs,
                          uint32_t retry_after_ms, int quiet)
{
    int64_t ms = backoff_delay_ms(r, r->attempt, retry_after_ms);
    r->attempt++;
    if (!quiet && (r->attempt & (r->attempt - 1)) == 0)
        RLOG(r, LF_LOG_INFO,
             "msg=\"delivery failed, retrying\" records=%zu retry_in_ms=%lld "
             "attempt=%u",
             n_recs, (long long)ms, r->attempt);
    int64_t until = host_mono_ns() + ms * 1000000LL;
    while (!atomic_load(&r->stop)) {
        int64_t left = (until - host_mono_ns()) / 1000000LL;
        if (left <= 0)
            break;
        struct timespec ts = {0, (long)(left > 50 ? 50 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Offer the batch until every record is accepted or dead-lettered.
 * Returns 0 when done, -1 when stopping with records not delivered. */
/* Whether max_retry_duration has run out since `since` (0: no failure
 * yet). If so, dead-letter the n records still pending and say so. */
static int give_up(sink_runner *r, int64_t since, lf_record *recs, size_t n,
                   const char *last_reason)
{
    int64_t max = conf_int(&r->conf.common, SK_MAX_RETRY);
    if (max <= 0 || since == 0 || host_mono_ns() - since < max * 1000000LL)
        return 0;
    char reason[256];
    snprintf(reason, sizeof reason,
             "gave up after max_retry_duration (%lld ms) of retries%s%.160s",
             (long long)max, last_reason ? "; last: " : "",
             last_reason ? last_reason : "");
    for (size_t i = 0; i < n; i++)
        dead_letter(r, &recs[i], reason);
    sink_host_count(&r->host, "gave_up", n);
    RLOG(r, LF_LOG_WARN,
         "msg=\"retries exhausted, records dead-lettered\" records=%zu "
         "max_retry_duration_ms=%lld",
         n, (long long)max);
    return 1;
}

static int deliver_batch(sink_runner *r, batch_slot *sl)
{
    r->attempt = 0;
    lf_record *recs = sl->recs;
    size_t n = sl->n_recs;
    int64_t failing_since = 0;
    /* field() answers of the previous batch are no longer needed. */
    sink_host_reset_batch(&r->host);
    while (n > 0) {
        lf_batch b = {recs, n, sl->verdict, NULL, 0};
        memset(sl->verdict, 0, n);
        lf_deliver_status st = r->conf.ops->deliver(r->inst, &b);
        switch (st) {
        case LF_DELIVER_OK:
            sink_host_count(&r->host, "delivered", n);
            r->attempt = 0;
            return 0;
        case LF_DELIVER_FAIL:
            for (size_t i = 0; i < n; i++)
                dead_letter(r, &recs[i], b.fail_reason);
            RLOG(r, LF_LOG_WARN,
                 "msg=\"batch refused, dead-lettered\" records=%zu "
                 "reason=\"%s\"",
                 n, b.fail_reason ? b.fail_reason : "unspecified");
            return 0;
        case LF_DELIVER_PARTIAL: {
            size_t keep = 0, ok = 0, failed = 0, parked_now = 0, held_now = 0;
            for (size_t i = 0; i < n; i++) {
                /* Only a sink that can be polled may hold: otherwise
                   nothing would ever settle the record. */
                if (sl->verdict[i] == LF_REC_HOLD && !r->can_hold)
                    sl->verdict[i] = LF_REC_RETRY;
                if (sl->verdict[i] == LF_REC_HOLD &&
                    held_add(&r->held, recs[i].pos.segment, recs[i].pos.offset,
                             sl->rec_since[i], sl->rec_attempts[i]) == 0) {
                    held_now++;
                } else if (sl->verdict[i] == LF_REC_HOLD) {
                    /* No memory to remember it: offer it again. */
                    sl->rec_attempts[keep] = sl->rec_attempts[i];
                    sl->rec_since[keep] = sl->rec_since[i];
                    recs[keep++] = recs[i];
                } else if (sl->verdict[i] == LF_REC_FAIL) {
                    dead_letter(r, &recs[i], b.fail_reason);
                    failed++;
                } else if (sl->verdict[i] == LF_REC_RETRY) {
                    /* Only the records not accepted go again: retrying the
                       whole batch would duplicate the accepted ones. They
                       wait parked, so the destinations that work keep
                       flowing; in place only if the parking is full. */
                    if (give_up(r, sl->rec_since[i], &recs[i], 1,
                                b.fail_reason)) {
                        /* retried for too long: dead-lettered */
                    } else if (!r->env->replay &&
                               park(r, sl, i, b.retry_after_ms) == 0) {
                        parked_now++;
                    } else {
                        sl->rec_attempts[keep] = sl->rec_attempts[i];
                        sl->rec_since[keep] = sl->rec_since[i];
                        recs[keep++] = recs[i];
                    }
                } else {
                    ok++;
                }
            }
            sink_host_count(&r->host, "delivered", ok);
            if (held_now)
                sink_host_count(&r->host, "held", held_now);
            if (failed)
                RLOG(r, LF_LOG_WARN,
                     "msg=\"records refused, dead-lettered\" records=%zu "
                     "reason=\"%s\"",
                     failed, b.fail_reason ? b.fail_reason : "unspecified");
            if (parked_now) {
                sink_host_count(&r->host, "parked", parked_now);
                if ((r->n_parked & (r->n_parked - 1)) == 0 ||
                    parked_now == r->n_parked)
                    RLOG(r, LF_LOG_INFO,
                         "msg=\"records refused for now, parked for retry\" "
                         "records=%zu parked=%zu reason=\"%s\"",
                         parked_now, r->n_parked,
                         b.fail_reason ? b.fail_reason : "unspecified");
            }
            n = keep;
            if (n == 0)
                return 0;
            if (!failing_since)
                failing_since = host_mono_ns();
            if (give_up(r, failing_since, recs, n, b.fail_reason))
                return 0;
            if (atomic_load(&r->stop))
                return -1;
            backoff_sleep(r, n, b.retry_after_ms, 0);
            break;
        }
        case LF_DELIVER_RETRY:
        default:
            sink_host_count(&r->host, "retries", 1);
            if (!failing_since)
                failing_since = host_mono_ns();
            if (give_up(r, failing_since, recs, n, b.fail_reason))
                return 0;
            if (atomic_load(&r->stop))
                return -1;
            backoff_sleep(r, n, b.retry_after_ms, 0);
            break;
        }
        if (atomic_load(&r->stop))
            return -1;
    }
    return 0;
}

/* ---- records the sink holds ---------------------------------------- */

/* lf_host.settle: what became of records the sink answered LF_REC_HOLD.
 * Runs on the thread running the sink's deliver(), poll() or flush(),
 * which owns the held and parked records then (the ABI's rule). */
static int host_settle(const lf_host *h, const lf_settled *v, size_t n,
                       const char *reason, uint32_t retry_after_ms)
{
    sink_host *sh = h->priv;
    sink_runner *r = (sink_runner *)((char *)sh - offsetof(sink_runner, host));
    /* RETRY ones go to the parking, all of this call's or none: a sink
       that is told "not now" keeps them all and tries again later. A
       replay has no parking: the sink keeps them. */
    size_t n_retry = 0, retry_bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].verdict == LF_REC_RETRY) {
            n_retry++;
            retry_bytes += v[i].len;
        }
    int take_retry =
        n_retry == 0 ||
        (!r->env->replay && r->n_parked + n_retry <= PARKED_MAX_RECORDS &&
         r->parked_bytes + retry_bytes <= PARKED_MAX_BYTES);
    size_t ok = 0, failed = 0, retried = 0, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        const lf_settled *x = &v[i];
        if (x->verdict == LF_REC_RETRY && !take_retry)
            continue;
        if (x->verdict != LF_REC_OK && x->verdict != LF_REC_FAIL &&
            x->verdict != LF_REC_RETRY) {
            unknown++; /* still held: a verdict this host does not know */
            continue;
        }
        int64_t since = 0;
        uint32_t attempts = 0;
        if (!x->pos.segment ||
            held_take(&r->held, x->pos.segment, x->pos.offset, &since,
                      &attempts) != 0) {
            unknown++; /* settled twice, or never held */
            continue;
        }
        if (x->verdict == LF_REC_OK) {
            ok++;
        } else if (x->verdict == LF_REC_FAIL) {
            lf_record rec = {x->payload, x->len, 0, x->pos, NULL};
            dead_letter(r, &rec, reason ? reason : "refused by the sink");
            failed++;
        } else if (park_copy(r, x->pos.segment, x->pos.offset, x->payload,
                             x->len, attempts, since, retry_after_ms) == 0) {
            retried++;
        } else if (held_add(&r->held, x->pos.segment, x->pos.offset, since,
                            attempts) != 0) {
            /* Out of memory twice over: the record is neither parked nor
               held, so the cursor could pass it. Say so; it is still in
               the spool for `logferry replay`. */
            RLOG(r, LF_LOG_ERROR,
                 "msg=\"out of memory settling a held record, it may not be "
                 "delivered\" segment=%s offset=%llu",
                 x->pos.segment, (unsigned long long)x->pos.offset);
        } else {
            unknown++; /* held again: the sink is told all or nothing */
        }
    }
    if (ok)
        sink_host_count(&r->host, "delivered", ok);
    if (failed) {
        RLOG(r, LF_LOG_WARN,
             "msg=\"held records refused, dead-lettered\" records=%zu "
             "reason=\"%s\"",
             failed, reason ? reason : "unspecified");
    }
    if (retried)
        sink_host_count(&r->host, "parked", retried);
    if (unknown)
        sink_host_count(&r->host, "settle_ignored", unknown);
    return take_retry ? 0 : -1;
}

/* Give a sink that holds records its poll() once the time it asked for
 * has come. Only where no deliver() runs: the runner calls it with the
 * deliverer idle. */
static void poll_sink(sink_runner *r)
{
    if (!r->can_hold || !r->inst)
        return;
    if (r->held.count == 0) {
        r->poll_at = 0;
        return;
    }
    if (r->poll_at && host_mono_ns() < r->poll_at)
        return;
    int64_t ms = r->conf.ops->poll(r->inst);
    /* "Nothing held" while records are held here: the sink lost track of
       some. Keep asking at the rescan pace rather than spinning; they
       settle or are delivered again after a restart. */
    if (ms < 0)
        ms = r->held.count ? r->env->rescan_ms : 0;
    if (ms < 1)
        ms = 1;
    r->poll_at = host_mono_ns() + ms * 1000000LL;
}

/* Record what the batch about to be delivered covers: everything read so
 * far. advance() acknowledges up to this, whatever is read after it. */
static void mark_sent(sink_runner *r)
{
    for (size_t i = 0; i < r->n_segs; i++) {
        r->segs[i].sent_off = r->segs[i].read_off;
        r->segs[i].sent_complete = r->segs[i].complete;
    }
}

/* After a delivered batch: move acked offsets up to what it covered (see
 * mark_sent), and mark finished segments. Returns 1 if a segment became
 * done. */
static int advance(sink_runner *r)
{
    int newly_done = 0;
    for (size_t i = 0; i < r->n_segs; i++) {
        seg_state *s = &r->segs[i];
        uint64_t upto = s->sent_off;
        int held = 0;
        for (size_t k = 0; k < r->n_parked; k++)
            if (strcmp(r->parked[k].segment, s->name) == 0) {
                held = 1;
                if (r->parked[k].offset < upto)
                    upto = r->parked[k].offset;
            }
        uint64_t lowest;
        if (held_lowest(&r->held, s->name, &lowest)) {
            held = 1;
            if (lowest < upto)
                upto = lowest;
        }
        if (s->acked_off != upto) {
            s->acked_off = upto;
            r->cur_dirty = 1;
        }
        if (s->sent_complete && !s->done && !held) {
            s->done = 1;
            newly_done = 1;
            r->cur_dirty = 1;
        }
    }
    return newly_done;
}

/* ---- reading ahead while the sink delivers -------------------------- */

/* The deliverer thread: delivers each posted slot, one at a time. */
static void *deliverer_main(void *arg)
{
    sink_runner *r = arg;
    pthread_mutex_lock(&r->dl_lock);
    for (;;) {
        while (!r->dl_job && !r->dl_quit)
            pthread_cond_wait(&r->dl_cond, &r->dl_lock);
        if (!r->dl_job)
            break; /* quit, and nothing posted */
        batch_slot *sl = r->dl_job;
        pthread_mutex_unlock(&r->dl_lock);
        int rc = deliver_batch(r, sl);
        pthread_mutex_lock(&r->dl_lock);
        r->dl_result = rc;
        r->dl_job = NULL;
        pthread_cond_broadcast(&r->dl_cond);
    }
    pthread_mutex_unlock(&r->dl_lock);
    return NULL;
}

static void deliverer_stop(sink_runner *r)
{
    if (!r->dl_started)
        return;
    pthread_mutex_lock(&r->dl_lock);
    r->dl_quit = 1;
    pthread_cond_broadcast(&r->dl_cond);
    pthread_mutex_unlock(&r->dl_lock);
    pthread_join(r->dl_thread, NULL);
    r->dl_started = 0;
}

/* Deliver the batch r->b (what mark_sent() recorded) on the deliverer
 * thread while reading the next batch into the other slot, then wait for
 * the delivery. The sink's write and fsync (the file sink waits on the
 * disk for about a third of the time) overlap reading, checking and
 * decoding the next batch. *more: in, whether the delivered batch was
 * full; out, whether the batch read ahead is. Returns what deliver_batch()
 * returned; r->b is then the batch read ahead, not yet delivered and not
 * covered by the acknowledgement. */
static int deliver_reading_ahead(sink_runner *r, int *more)
{
    if (!r->dl_started) {
        if (pthread_create(&r->dl_thread, NULL, deliverer_main, r) != 0) {
            /* Not fatal: deliver in place, as without batch_prefetch. */
            RLOG(r, LF_LOG_WARN,
                 "msg=\"cannot start the deliverer thread, "
                 "not reading ahead\"");
            r->prefetch = 0;
            int rc = deliver_batch(r, r->b);
            batch_reset(r);
            *more = 0;
            return rc;
        }
        r->dl_started = 1;
    }
    /* Parked records go first at the next fill: do not read past them, or
       full batches read ahead would keep them waiting. The deliverer may
       park more meanwhile; the count is read before it starts. */
    int ahead = r->n_parked == 0;
    pthread_mutex_lock(&r->dl_lock);
    r->dl_job = r->b;
    pthread_cond_broadcast(&r->dl_cond);
    pthread_mutex_unlock(&r->dl_lock);

    r->b = r->b == &r->slots[0] ? &r->slots[1] : &r->slots[0];
    batch_reset(r);
    /* Only what is already in the spool: never wait for a writer here. */
    *more = ahead ? fill_batch(r, 1) : 0;

    pthread_mutex_lock(&r->dl_lock);
    while (r->dl_job)
        pthread_cond_wait(&r->dl_cond, &r->dl_lock);
    int rc = r->dl_result;
    pthread_mutex_unlock(&r->dl_lock);
    return rc;
}

static void *runner_main(void *arg)
{
    sink_runner *r = arg;
    RLOG(r, LF_LOG_INFO,
         "msg=\"started\" batch_max_records=%u "
         "batch_max_bytes=%u",
         r->max_records, r->max_bytes);
    int64_t commit_ns = conf_int(&r->conf.common, SK_CURSOR_COMMIT) * 1000000LL;
    uint64_t gen = 0;
    int more = 0, undelivered = 0;
    /* A sink that cannot be created yet (a destination down, credentials
       not there yet) is retried with backoff, and its segments are kept
       for it meanwhile: a restart of the destination loses nothing. */
    while (!r->inst && !atomic_load(&r->stop)) {
        char err[1024];
        if (r->conf.ops->create(r->conf.module.v, &r->host.pub, &r->inst, err,
                                sizeof err) == 0)
            break;
        r->inst = NULL;
        /* The same failure every few seconds for hours says nothing new:
           log the 1st, 2nd, 4th, 8th... attempt. */
        if ((r->attempt & (r->attempt + 1)) == 0)
            RLOG(r, LF_LOG_ERROR,
                 "msg=\"cannot create sink, will retry\" attempt=%u "
                 "error=\"%s\"",
                 r->attempt + 1, err);
        sink_host_count(&r->host, "create_errors", 1);
        backoff_sleep(r, 0, 0, 1);
    }
    r->attempt = 0;
    while (!atomic_load(&r->stop)) {
        /* Records read ahead are delivered without waiting for more. */
        if (!more && r->b->n_recs == 0 && !r->env->replay) {
            int wait_ms = r->env->rescan_ms;
            int64_t due = parked_next_due(r);
            if (r->can_hold && r->held.count && (!due || r->poll_at < due))
                due = r->poll_at ? r->poll_at : host_mono_ns();
            if (due) {
                int64_t left = (due - host_mono_ns()) / 1000000LL + 1;
                if (left < wait_ms)
                    wait_ms = left > 0 ? (int)left : 0;
            }
            gen = spool_watch_wait(r->env->watch, r->seen_gen, wait_ms);
            if (atomic_load(&r->stop))
                break;
        }
        poll_sink(r);
        if (gen != r->seen_gen || r->n_segs == 0)
            sync_segments(r);
        /* An empty batch may still hold arena memory (records skipped by
           routing, dead-lettered): start it over. */
        if (r->b->n_recs == 0)
            batch_reset(r);
        more = fill_batch(r, 0); /* tops up a batch read ahead */
        /* Linger: a batch that is not full waits a little for more, so a
           trickle makes fewer, larger requests (and fewer fsyncs). Only
           while a writer is appending: once every segment is complete
           nothing more is coming but a new segment, and waiting would only
           delay the last records (20 ms of the file sink's linger at the end
           of every burst). */
        if (!more && r->b->n_recs > 0 && r->linger_ms > 0 && !r->env->replay &&
            r->writer_live) {
            int64_t until = host_mono_ns() + r->linger_ms * 1000000LL;
            while (!more && r->writer_live && !atomic_load(&r->stop)) {
                int64_t left = (until - host_mono_ns()) / 1000000LL;
                if (left <= 0)
                    break;
                gen = spool_watch_wait(r->env->watch, r->seen_gen, (int)left);
                if (gen != r->seen_gen)
                    sync_segments(r);
                more = fill_batch(r, 0);
            }
        }
        mark_sent(r);
        if (r->b->n_recs > 0) {
            int rc;
            if (r->prefetch) {
                rc = deliver_reading_ahead(r, &more);
            } else {
                rc = deliver_batch(r, r->b);
                batch_reset(r);
            }
            if (rc != 0) {
                undelivered = 1;
                break; /* stopping: the batch stays unacknowledged */
            }
        } else if (r->env->replay && !more) {
            /* A replay reads what is there when it starts, once. */
            for (size_t i = 0; i < r->n_segs; i++) {
                const char **f =
                    realloc(r->done_segs, (r->n_done_segs + 1) * sizeof *f);
                if (!f)
                    break;
                r->done_segs = f;
                if (r->segs[i].complete)
                    r->done_segs[r->n_done_segs++] = r->segs[i].name;
            }
            break;
        }
        int newly_done = advance(r);
        int64_t now = host_mono_ns();
        /* Commit when a segment finished (so the GC may delete it), when
           going idle, and at most every commit interval while busy. */
        if (r->cur_dirty &&
            (newly_done || !more || now - r->last_commit_ns >= commit_ns))
            commit_cursor(r);
    }
    deliverer_stop(r);
    batch_reset(r); /* what was read ahead is not acknowledged */
    /* Flush before the last commit: a sink that holds records sends and
       settles them now, and the cursor can then move past them. */
    if (r->inst && r->conf.ops->flush && r->conf.ops->flush(r->inst) != 0)
        RLOG(r, LF_LOG_ERROR, "msg=\"flush at shutdown failed\"");
    if (r->held.count)
        RLOG(r, LF_LOG_WARN,
             "msg=\"records still held by the sink at the stop, %s\" "
             "records=%zu",
             r->env->replay ? "not delivered by this replay"
                            : "delivered again at the next start",
             r->held.count);
    /* Unless a batch was cut short (its records are not all delivered),
       everything up to what was last handed over is settled, parked or
       held, and advance() knows which. */
    if (!undelivered)
        advance(r);
    if (r->cur_dirty)
        commit_cursor(r);
    RLOG(r, LF_LOG_INFO, "msg=\"stopped\"");
    atomic_store(&r->finished, 1);
    return NULL;
}

int sink_runner_start(sink_runner *r, char *err, size_t errlen)
{
    int e = pthread_create(&r->thread, NULL, runner_main, r);
    if (e) {
        snprintf(err, errlen, "sink %s: cannot start thread: %s", r->conf.name,
                 strerror(e));
        return -1;
    }
    r->started = 1;
    return 0;
}

void sink_runner_stop(sink_runner *r)
{
    atomic_store(&r->stop, 1);
}

int sink_runner_join(sink_runner *r, int64_t deadline_ms)
{
    if (!r->started)
        return 0;
    int64_t until = host_mono_ns() + deadline_ms * 1000000LL;
    while (!atomic_load(&r->finished)) {
        if (host_mono_ns() >= until)
            return -1;
        spool_watch_kick(r->env->watch);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_join(r->thread, NULL);
    r->started = 0;
    return 0;
}
