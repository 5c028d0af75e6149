/*
 * s3_upload.c - the uploader threads of the s3 sink.
 *
 * Each thread takes a sealed object (rolled by size, record count, age,
 * a flush, or found on disk at start) and sends the concatenation of its
 * blocks' payloads, which deliver() already compressed: PutObject when
 * the object is at most multipart_threshold, otherwise a multipart upload
 * in part_size parts, so at most about max(threshold, part) bytes are in
 * memory per thread. Every block's CRC is checked on the way.
 *
 * Multipart uploads never leak: before CreateMultipartUpload a marker
 * file "obj-<id>.mpu" says "pending", after it the upload id. Whoever
 * next handles the object (the same thread after a failure, or the next
 * agent after a crash) first aborts the recorded id and every other
 * upload in progress for exactly this key (ListMultipartUploads), then
 * starts over. Keys are unique per object, so nothing else is touched.
 *
 * On success the positions table is saved (so the records stay known as
 * delivered once their staging file is gone), then the staging file and
 * marker are deleted. A crash in between uploads the same bytes to the
 * same key again: an overwrite, not a duplicate.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "s3.h"

#define WAKE_MAX_MS 500

int s3_positions_save(s3_sink *s)
{
    sbuf b = {0};
    pthread_mutex_lock(&s->pos_file_lock);
    pthread_mutex_lock(&s->lock);
    int rc = s3_pos_serialise(&s->pos, &b);
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        rc = s3_write_file_atomic(s->dir, "positions", b.p, b.len);
    pthread_mutex_unlock(&s->pos_file_lock);
    sbuf_free(&b);
    return rc;
}

/* ---- one object ------------------------------------------------------- */

typedef struct up_state {
    s3_call c;
    s3_obj *o;
    char id[1024];
    int mpu;
    unsigned parts;
    char (*etags)[128];
    char (*crcs)[12];
    unsigned cap_parts;
    uint64_t sent;
    s3_err e;
    const char *step; /* what failed, for the log */
} up_state;

static void marker_path(const s3_sink *s, const s3_obj *o, char *p, size_t n)
{
    s3_obj_path(s, o->id, "mpu", p, n);
}

static int write_marker(up_state *st, const char *text)
{
    char name[64];
    snprintf(name, sizeof name, "obj-%016" PRIx64 ".mpu", st->o->id);
    st->o->mpu_marker = 1;
    if (s3_write_file_atomic(st->c.s->dir, name, text, strlen(text)) != 0) {
        memset(&st->e, 0, sizeof st->e);
        st->e.cls = LF_AWS_RETRYABLE;
        snprintf(st->e.message, sizeof st->e.message,
                 "cannot write the multipart marker: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Abort what a marker and the bucket say is in progress for our key. */
static int clear_old_uploads(up_state *st)
{
    s3_sink *s = st->c.s;
    char path[PATH_MAX];
    marker_path(s, st->o, path, sizeof path);
    char *text = NULL;
    long n = s3_read_file(path, 4096, &text);
    if (n < 0 && errno == ENOENT) {
        st->o->mpu_marker = 0;
        return 0;
    }
    lf_aws_class cls = LF_AWS_OK;
    if (n > 7 && strncmp(text, "upload ", 7) == 0) {
        char *id = text + 7;
        id[strcspn(id, "\n")] = '\0';
        st->step = "AbortMultipartUpload";
        cls = s3_abort_mpu(&st->c, id, &st->e);
        if (cls == LF_AWS_OK)
            s->host->counter_add(s->host, "multipart_aborted", 1);
    }
    free(text);
    if (cls != LF_AWS_OK)
        return -1;
    /* "pending", or a crash between CreateMultipartUpload and the marker
       update: ask the bucket. */
    s3_upload_ref *refs = NULL;
    size_t nr = 0;
    st->step = "ListMultipartUploads";
    cls = s3_list_mpu(&st->c, &refs, &nr, &st->e);
    for (size_t i = 0; cls == LF_AWS_OK && i < nr; i++) {
        st->step = "AbortMultipartUpload";
        cls = s3_abort_mpu(&st->c, refs[i].id, &st->e);
        if (cls == LF_AWS_OK)
            s->host->counter_add(s->host, "multipart_aborted", 1);
    }
    free(refs);
    if (cls != LF_AWS_OK)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    st->o->mpu_marker = 0;
    return 0;
}

static int send_part(up_state *st, const char *p, size_t n)
{
    s3_sink *s = st->c.s;
    if (st->parts == S3_MAX_PARTS) {
        memset(&st->e, 0, sizeof st->e);
        st->e.cls = LF_AWS_PERMANENT;
        snprintf(st->e.message, sizeof st->e.message,
                 "more than %d parts: raise part_size", S3_MAX_PARTS);
        return -1;
    }
    if (st->parts == st->cap_parts) {
        unsigned nc = st->cap_parts ? st->cap_parts * 2 : 16;
        void *ne = realloc(st->etags, nc * sizeof *st->etags);
        if (ne)
            st->etags = ne;
        void *nk = realloc(st->crcs, nc * sizeof *st->crcs);
        if (nk)
            st->crcs = nk;
        if (!ne || !nk) {
            memset(&st->e, 0, sizeof st->e);
            st->e.cls = LF_AWS_RETRYABLE;
            snprintf(st->e.message, sizeof st->e.message, "out of memory");
            return -1;
        }
        st->cap_parts = nc;
    }
    st->step = "UploadPart";
    lf_aws_class cls = s3_upload_part(&st->c, st->id, st->parts + 1, p, n,
                                      st->etags[st->parts], sizeof st->etags[0],
                                      st->crcs[st->parts], &st->e);
    if (cls != LF_AWS_OK)
        return -1;
    st->parts++;
    s->host->counter_add(s->host, "parts", 1);
    return 0;
}

/* Send whole parts from the buffer (all of it when final), starting the
 * multipart upload first if it is not started yet. */
static int drain(up_state *st, int final)
{
    s3_sink *s = st->c.s;
    sbuf *out = &st->c.u->out;
    if (!st->mpu) {
        st->step = "CreateMultipartUpload";
        if (write_marker(st, "pending\n") != 0)
            return -1;
        if (s3_create_mpu(&st->c, st->o->records, st->id, sizeof st->id,
                          &st->e) != LF_AWS_OK)
            return -1;
        char text[1100];
        snprintf(text, sizeof text, "upload %s\n", st->id);
        st->mpu = 1;
        if (write_marker(st, text) != 0)
            return -1;
    }
    size_t done = 0;
    while (out->len - done >= s->part_size ||
           (final && (out->len - done > 0 || st->parts == 0))) {
        size_t n = out->len - done;
        if (n > s->part_size)
            n = s->part_size;
        if (send_part(st, out->p + done, n) != 0)
            return -1;
        done += n;
        if (atomic_load(&s->stop)) {
            memset(&st->e, 0, sizeof st->e);
            st->e.cls = LF_AWS_RETRYABLE;
            snprintf(st->e.message, sizeof st->e.message, "stopping");
            return -1;
        }
        if (final && out->len == done)
            break;
    }
    memmove(out->p, out->p + done, out->len - done);
    out->len -= done;
    return 0;
}

/* 0 when all n bytes at off were read; -1 on an error or a short file. */
static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
    return fd_pread_upto(fd, p, n, off) == (ssize_t)n ? 0 : -1;
}

/* Send the object: the concatenation of its blocks' payloads (already
 * compressed frames). Its size is known, so PutObject or multipart is
 * decided up front. Returns 0, or -1 with st->e / st->step set. */
static int stream_object(up_state *st, int fd)
{
    s3_sink *s = st->c.s;
    s3_uploader *u = st->c.u;
    s3_obj *o = st->o;
    uint64_t off = o->data_start, end = o->size;
    int multipart = o->stored > s->mpu_threshold;
    u->out.len = 0;
    while (off < end) {
        uint8_t bh[S3_BLOCK_HDR + 256];
        size_t want = end - off < sizeof bh ? (size_t)(end - off) : sizeof bh;
        s3_block b;
        long hl = -1;
        if (pread_all(fd, bh, want, off) == 0)
            hl = s3_block_decode(bh, want, &b);
        if (hl <= 0 || end - off < (uint64_t)hl + b.payload_len) {
            s->host->log(s->host, LF_LOG_ERROR,
                         "msg=\"staged data damaged, the rest of this "
                         "object is not uploaded\" object=%016" PRIx64
                         " offset=%" PRIu64 " length=%" PRIu64,
                         o->id, off, end - off);
            s->host->counter_add(s->host, "staged_damaged_bytes", end - off);
            break;
        }
        uint64_t p = off + (uint64_t)hl;
        off = p + b.payload_len;
        if (sbuf_reserve(&u->out, b.payload_len + 1) != 0)
            goto oom;
        char *dst = u->out.p + u->out.len;
        if (pread_all(fd, dst, b.payload_len, p) != 0 ||
            s3_crc32c(0, dst, b.payload_len) != b.payload_crc) {
            s->host->log(s->host, LF_LOG_ERROR,
                         "msg=\"staged block fails its CRC, skipped\" "
                         "object=%016" PRIx64 " offset=%" PRIu64 " records=%u",
                         o->id, p, b.n_records);
            s->host->counter_add(s->host, "staged_damaged_bytes",
                                 b.payload_len);
            continue;
        }
        u->out.len += b.payload_len;
        st->sent += b.payload_len;
        if (multipart && u->out.len >= s->part_size && drain(st, 0) != 0)
            return -1;
    }
    if (multipart) {
        if (drain(st, 1) != 0)
            return -1;
        st->step = "CompleteMultipartUpload";
        return s3_complete_mpu(&st->c, st->id, st->etags,
                               s->checksum_md5 ? NULL : st->crcs, st->parts,
                               &st->e) == LF_AWS_OK
                   ? 0
                   : -1;
    }
    st->step = "PutObject";
    return s3_put_object(&st->c, u->out.p, u->out.len, o->records, &st->e) ==
                   LF_AWS_OK
               ? 0
               : -1;
oom:
    memset(&st->e, 0, sizeof st->e);
    st->e.cls = LF_AWS_RETRYABLE;
    snprintf(st->e.message, sizeof st->e.message, "out of memory");
    return -1;
}

/* Upload object o. Returns 0 when it is in the bucket and its files are
 * gone; -1 with *e and *step describing the failure. */
static int upload_one(s3_uploader *u, s3_obj *o, s3_err *e, const char **step)
{
    s3_sink *s = u->sink;
    const lf_host *h = s->host;
    up_state st;
    memset(&st, 0, sizeof st);
    st.o = o;
    st.c.s = s;
    st.c.u = u;
    st.c.d = &o->dest;
    st.c.region = o->dest.region;
    st.step = "credentials";
    int rc = -1;
    int fd = -1;
    char err[512];
    st.c.creds = s3_ident_get(s, &o->dest, err, sizeof err);
    if (!st.c.creds) {
        st.e.cls = LF_AWS_AUTH;
        snprintf(st.e.message, sizeof st.e.message, "%s", err);
        goto out;
    }
    /* The staging file goes to disk before anything relies on it alone
       (a checkpoint may drop the log that covers it). */
    pthread_mutex_lock(&s->wal_lock);
    if (o->fd >= 0) {
        if (o->unsynced && s->fsync && fdatasync(o->fd) != 0) {
            pthread_mutex_unlock(&s->wal_lock);
            st.e.cls = LF_AWS_RETRYABLE;
            snprintf(st.e.message, sizeof st.e.message,
                     "fdatasync of the staging file: %s", strerror(errno));
            st.step = "sync";
            goto out;
        }
        close(o->fd);
        o->fd = -1;
        o->unsynced = 0;
    }
    pthread_mutex_unlock(&s->wal_lock);
    if (o->mpu_marker && clear_old_uploads(&st) != 0)
        goto out;
    if (o->records == 0) { /* nothing staged in it: just remove it */
        rc = 0;
        goto done;
    }
    char path[PATH_MAX];
    s3_obj_path(s, o->id, "stage", path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st.e.cls = LF_AWS_RETRYABLE;
        snprintf(st.e.message, sizeof st.e.message, "open staging file: %s",
                 strerror(errno));
        st.step = "read";
        goto out;
    }
    int rc_stream = stream_object(&st, fd);
    /* Keep no big buffer between objects. */
    if (u->out.cap > 2 * s->part_size)
        sbuf_free(&u->out);
    if (rc_stream != 0) {
        if (st.mpu) {
            /* Do not leave the parts behind; if the abort fails too the
               marker stays and the next attempt aborts first. */
            s3_err ae;
            if (s3_abort_mpu(&st.c, st.id, &ae) == LF_AWS_OK) {
                char mp[PATH_MAX];
                marker_path(s, o, mp, sizeof mp);
                if (unlink(mp) == 0 || errno == ENOENT)
                    o->mpu_marker = 0;
                h->counter_add(h, "multipart_aborted", 1);
            }
        }
        goto out;
    }
    rc = 0;
done:
    /* First the positions, so that a crash from here on does not make the
       records look new when the core delivers them again; then the log
       says the upload is done, so that a replay never brings back part of
       the object once its file is gone. */
    if (s3_positions_save(s) != 0) {
        h->log(h, LF_LOG_ERROR,
               "msg=\"cannot save the positions table; object uploaded but "
               "kept staged\" error=\"%s\"",
               strerror(errno));
        st.e.cls = LF_AWS_RETRYABLE;
        snprintf(st.e.message, sizeof st.e.message, "positions not saved");
        st.step = "positions";
        rc = -1;
        goto out;
    }
    if (s->fsync) {
        pthread_mutex_lock(&s->wal_lock);
        int wrc = s3_wal_append(s, S3_WAL_DONE, o->id, 0, "", 0);
        if (wrc == 0)
            wrc = fdatasync(s->wal_fd);
        pthread_mutex_unlock(&s->wal_lock);
        if (wrc != 0) {
            st.e.cls = LF_AWS_RETRYABLE;
            snprintf(st.e.message, sizeof st.e.message,
                     "cannot log the upload as done: %s", strerror(errno));
            st.step = "WAL";
            rc = -1;
            goto out;
        }
    }
    char sp[PATH_MAX], mp[PATH_MAX];
    s3_obj_path(s, o->id, "stage", sp, sizeof sp);
    marker_path(s, o, mp, sizeof mp);
    unlink(sp);
    unlink(mp);
    s3_fsync_dir(s->dir);
    if (o->records) {
        h->counter_add(h, "objects", 1);
        h->counter_add(h, "records_uploaded", o->records);
        h->counter_add(h, "bytes_in", o->payload);
        h->counter_add(h, "bytes_out", st.sent);
        if (st.mpu)
            h->counter_add(h, "multipart_objects", 1);
        h->log(h, LF_LOG_DEBUG,
               "msg=\"uploaded\" bucket=%s key=%s records=%" PRIu64
               " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 " parts=%u",
               o->dest.bucket, o->dest.key, o->records, o->payload, st.sent,
               st.parts);
    }
out:
    if (fd >= 0)
        close(fd);
    free(st.etags);
    free(st.crcs);
    *e = st.e;
    *step = st.step;
    return rc;
}

/* spool.max_age passed for o before it could be uploaded (its bucket was
 * down for that long): delete its records, as the spool deletes its own.
 * Returns 0, or -1 to try again at the next tick. */
static int expire_object(s3_uploader *u, s3_obj *o)
{
    s3_sink *s = u->sink;
    const lf_host *h = s->host;
    pthread_mutex_lock(&s->wal_lock);
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
        o->unsynced = 0;
    }
    pthread_mutex_unlock(&s->wal_lock);
    if (o->mpu_marker) {
        /* Best effort: the bucket is likely what is failing. */
        up_state st;
        memset(&st, 0, sizeof st);
        st.o = o;
        st.c = (s3_call){s, u, NULL, &o->dest, o->dest.region};
        char err[256];
        st.c.creds = s3_ident_get(s, &o->dest, err, sizeof err);
        if (!st.c.creds || clear_old_uploads(&st) != 0)
            h->log(h, LF_LOG_WARN,
                   "msg=\"a multipart upload may stay open in the bucket; "
                   "an AbortIncompleteMultipartUpload lifecycle rule "
                   "removes it\" bucket=%s key=%s",
                   o->dest.bucket, o->dest.key);
    }
    /* Logged as done first, or a replay would bring part of it back. */
    if (s->fsync) {
        pthread_mutex_lock(&s->wal_lock);
        int rc = s3_wal_append(s, S3_WAL_DONE, o->id, 0, "", 0);
        if (rc == 0)
            rc = fdatasync(s->wal_fd);
        pthread_mutex_unlock(&s->wal_lock);
        if (rc != 0)
            return -1;
    }
    char sp[PATH_MAX], mp[PATH_MAX];
    s3_obj_path(s, o->id, "stage", sp, sizeof sp);
    marker_path(s, o, mp, sizeof mp);
    unlink(sp);
    unlink(mp);
    s3_fsync_dir(s->dir);
    h->log(h, LF_LOG_WARN,
           "msg=\"staged records reached spool.max_age before they could be "
           "uploaded; deleted\" bucket=%s key=%s role=%s records=%" PRIu64
           " age_s=%lld",
           o->dest.bucket, o->dest.key, o->dest.role ? o->dest.role : "-",
           o->records, (long long)((h->now_ns(h) - o->born_ns) / 1000000000LL));
    h->counter_add(h, "objects_expired", 1);
    h->counter_add(h, "records_expired", o->records);
    return 0;
}

/* A sealed object past spool.max_age, or NULL. Lock held. */
static s3_obj *expired_locked(s3_sink *s)
{
    if (!s->max_age_ns)
        return NULL;
    int64_t wall = s->host->now_ns(s->host);
    for (s3_obj *o = s->sealed.next; o != &s->sealed; o = o->next)
        if (o->state == S3_OBJ_SEALED && o->born_ns &&
            wall - o->born_ns >= s->max_age_ns)
            return o;
    return NULL;
}

/* ---- the threads ------------------------------------------------------ */

static void seal_aged_locked(s3_sink *s, int64_t now)
{
    if (s->delivering)
        return;
    for (s3_obj *o = s->open_list.next, *nx; o != &s->open_list; o = nx) {
        nx = o->next;
        if (now - o->opened_mono >= s->roll_age_ns)
            s3_seal_locked(s, o);
    }
}

static s3_obj *pick_locked(s3_sink *s, int64_t now, int64_t *wake)
{
    for (s3_obj *o = s->sealed.next; o != &s->sealed; o = o->next) {
        if (o->state != S3_OBJ_SEALED)
            continue;
        if (o->flush_tried < s->flush_gen || o->next_try_mono <= now)
            return o;
        if (o->next_try_mono < *wake)
            *wake = o->next_try_mono;
    }
    return NULL;
}

static void log_failure(s3_sink *s, s3_obj *o, const s3_err *e,
                        const char *step, int64_t delay_ns)
{
    const lf_host *h = s->host;
    int permanent = e->cls != LF_AWS_RETRYABLE;
    /* First failure of an object, then at 2, 4, 8... so a bucket that is
       gone for a day does not fill the log. */
    unsigned f = o->failures;
    lf_log_level lvl = (f & (f - 1)) == 0
                           ? (permanent ? LF_LOG_ERROR : LF_LOG_WARN)
                           : LF_LOG_DEBUG;
    h->log(h, lvl,
           "msg=\"upload failed, object kept staged\" step=%s bucket=%s "
           "key=%s role=%s class=%s status=%ld code=%s request_id=%s "
           "attempt=%u retry_in_s=%lld error=\"%s\"",
           step, o->dest.bucket, o->dest.key, o->dest.role ? o->dest.role : "-",
           permanent ? (e->cls == LF_AWS_AUTH ? "auth" : "permanent")
                     : "retryable",
           e->status, e->code[0] ? e->code : "-",
           e->request_id[0] ? e->request_id : "-", f,
           (long long)(delay_ns / 1000000000LL), e->message);
}

static void *uploader_main(void *arg)
{
    s3_uploader *u = arg;
    s3_sink *s = u->sink;
    const lf_host *h = s->host;
    pthread_mutex_lock(&s->lock);
    while (!atomic_load(&s->stop)) {
        int64_t now = h->mono_ns(h);
        seal_aged_locked(s, now);
        int64_t wake = now + (int64_t)WAKE_MAX_MS * 1000000LL;
        s3_obj *x = expired_locked(s);
        if (x) {
            x->state = S3_OBJ_UPLOADING;
            pthread_mutex_unlock(&s->lock);
            int rc = expire_object(u, x);
            pthread_mutex_lock(&s->lock);
            if (rc == 0) {
                x->prev->next = x->next;
                x->next->prev = x->prev;
                s->n_sealed--;
                s->staged_bytes -= x->size;
                pthread_mutex_unlock(&s->lock);
                s3_obj_free(x);
                pthread_mutex_lock(&s->lock);
            } else {
                x->state = S3_OBJ_SEALED;
            }
            pthread_cond_broadcast(&s->done_cond);
            continue;
        }
        s3_obj *o = pick_locked(s, now, &wake);
        if (o) {
            o->state = S3_OBJ_UPLOADING;
            o->flush_tried = s->flush_gen;
            pthread_mutex_unlock(&s->lock);
            s3_err e;
            const char *step = "";
            int rc = upload_one(u, o, &e, &step);
            pthread_mutex_lock(&s->lock);
            if (rc == 0) {
                o->prev->next = o->next;
                o->next->prev = o->prev;
                s->n_sealed--;
                s->staged_bytes -= o->size;
                pthread_cond_broadcast(&s->done_cond);
                pthread_mutex_unlock(&s->lock);
                s3_obj_free(o);
                pthread_mutex_lock(&s->lock);
                continue;
            }
            o->failures++;
            int64_t delay;
            if (e.cls == LF_AWS_RETRYABLE) {
                delay = s->object_retry_ns;
                for (unsigned i = 1;
                     i < o->failures && delay < s->object_retry_max_ns; i++)
                    delay *= 2;
                if (delay > s->object_retry_max_ns)
                    delay = s->object_retry_max_ns;
            } else {
                delay = s->permanent_retry_ns;
            }
            o->next_try_mono = h->mono_ns(h) + delay;
            o->state = S3_OBJ_SEALED;
            if (!atomic_load(&s->stop) || e.cls != LF_AWS_RETRYABLE) {
                h->counter_add(h, "upload_errors", 1);
                log_failure(s, o, &e, step, delay);
            }
            pthread_cond_broadcast(&s->done_cond);
            continue;
        }
        /* The log too must not keep records past spool.max_age. */
        if (s->fsync && s->max_age_ns) {
            pthread_mutex_unlock(&s->lock);
            s3_wal_checkpoint(s, S3_CKPT_IF_OLD);
            pthread_mutex_lock(&s->lock);
            if (atomic_load(&s->stop))
                break;
        }
        /* Wake for the next open object's age, a retry, or a signal. */
        for (s3_obj *op = s->open_list.next; op != &s->open_list; op = op->next)
            if (op->opened_mono + s->roll_age_ns < wake)
                wake = op->opened_mono + s->roll_age_ns;
        int64_t ms = (wake - now) / 1000000LL;
        if (ms < 1)
            ms = 1;
        if (ms > WAKE_MAX_MS)
            ms = WAKE_MAX_MS;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int s3_uploaders_start(s3_sink *s, char *err, size_t errlen)
{
    s->up = calloc(s->n_uploaders, sizeof *s->up);
    if (!s->up) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < s->n_uploaders; i++) {
        s3_uploader *u = &s->up[i];
        u->sink = s;
        /* An object below the threshold, or a part, plus one block. */
        u->out.max = (s->mpu_threshold > s->part_size ? s->mpu_threshold
                                                      : s->part_size) +
                     2u * S3_LINE_MAX;
        if (getrandom(&u->rng, sizeof u->rng, 0) != sizeof u->rng)
            u->rng = (uint64_t)s->host->mono_ns(s->host) + i;
        int rc = pthread_create(&u->thread, NULL, uploader_main, u);
        if (rc) {
            snprintf(err, errlen, "cannot start an uploader thread: %s",
                     strerror(rc));
            return -1;
        }
        u->started = 1;
    }
    return 0;
}

void s3_uploaders_stop(s3_sink *s)
{
    if (!s->up)
        return;
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->stop, 1);
    pthread_cond_broadcast(&s->cond);
    pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->n_uploaders; i++) {
        s3_uploader *u = &s->up[i];
        if (u->started)
            pthread_join(u->thread, NULL);
        sbuf_free(&u->out);
    }
    free(s->up);
    s->up = NULL;
}
