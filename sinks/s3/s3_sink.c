/*
 * s3_sink.c - the "s3" sink: records as compressed NDJSON objects in each
 * tenant's bucket, partitioned by key template, written idempotently.
 *
 * Place in the pipeline: the archive hop. deliver() answers OK once the
 * records are durable on LOCAL disk: each record's JSON line is appended
 * to the staging file of its open object under host->instance_dir and
 * fdatasync()ed. Uploader threads (s3_upload.c) roll objects by size,
 * record count or age, compress and upload them; the core is never held
 * up by S3, and a bucket that is down only grows the staging directory
 * (up to max_staged_bytes, then deliver() answers RETRY).
 *
 * Routing: bucket, role_arn, external_id, session_name and key_template
 * are ${field} templates over the record, so each tenant's records go to
 * its own bucket with its own credentials; a record whose templates
 * cannot be filled is refused (a dead letter), never sent elsewhere.
 *
 * Exactly one object per record, across crashes: the key holds ${first},
 * the spool position of the object's first record, so re-uploading a
 * staged object after a crash overwrites the same key; records the core
 * re-delivers (staged, but the cursor was not committed before a crash)
 * are recognised by their position and not staged twice. docs/S3.md has
 * the full argument.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "s3.h"

#define WBUF_FLUSH (4u * 1024u * 1024u)
#define RAW_MAX (4u * 1024u * 1024u) /* NDJSON per block, before a new one */
#define POS_KEEP_NS (24LL * 3600 * 1000000000LL)
#define POS_MAX_ENTRIES 100000u
#define PRUNE_EVERY_NS (60LL * 1000000000LL)
#define GROUP_MAX (S3_BUCKET_MAX + S3_ARN_MAX + S3_EXTID_MAX + 4096)

enum {
    K_BUCKET,
    K_REGION,
    K_ENDPOINT,
    K_PATH_STYLE,
    K_ROLE_ARN,
    K_EXTERNAL_ID,
    K_SESSION_NAME,
    K_PREFIX,
    K_KEY_TEMPLATE,
    K_COMPRESSION,
    K_LEVEL,
    K_ROLL_BYTES,
    K_ROLL_RECORDS,
    K_ROLL_AGE,
    K_MPU_THRESHOLD,
    K_PART_SIZE,
    K_CHECKSUM,
    K_SSE,
    K_KMS_KEY,
    K_STORAGE_CLASS,
    K_TAGS,
    K_MAX_OPEN,
    K_MAX_STAGED,
    K_UPLOADERS,
    K_UPLOAD_RETRIES,
    K_RETRY_INTERVAL,
    K_RETRY_INTERVAL_MAX,
    K_PERMANENT_RETRY,
    K_FLUSH_TIMEOUT,
    K_FSYNC,
    K_COUNT
};

static const char *const compressions[] = {"zstd", "gzip", "none", NULL};
static const char *const checksums[] = {"crc32c", "md5", NULL};
static const char *const sses[] = {"none", "AES256", "aws:kms", NULL};
static const char *const classes[] = {
    "STANDARD",   "REDUCED_REDUNDANCY",  "STANDARD_IA",
    "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
    "GLACIER_IR", "DEEP_ARCHIVE",        "EXPRESS_ONEZONE",
    NULL};

#define DEFAULT_KEY                                                            \
    "${prefix}/tenant=${tenant_id}/dt=${date}/hour=${hour}/"                   \
    "${hostname}-${first}.ndjson${ext}"

static const lf_conf_key s3_keys[K_COUNT] = {
    [K_BUCKET] = {"bucket", LF_CONF_STRING, 1, NULL, 1, 512, NULL,
                  "Bucket, a template over record fields (e.g. "
                  "\"logs-${account_id}\"); a record whose expansion is not "
                  "a valid bucket name is refused."},
    [K_REGION] = {"region", LF_CONF_STRING, 1, NULL, 1, 64, NULL,
                  "Region of the buckets, used for signing, STS and the "
                  "default endpoint."},
    [K_ENDPOINT] = {"endpoint", LF_CONF_STRING, 0, NULL, 1, 512, NULL,
                    "Endpoint override, scheme://host[:port] (default "
                    "https://s3.<region>.amazonaws.com)."},
    [K_PATH_STYLE] = {"path_style", LF_CONF_BOOL, 0, "false", 0, 0, NULL,
                      "Address buckets as <endpoint>/<bucket>/<key> "
                      "instead of <bucket>.<host>/<key> (needed by most "
                      "S3-compatible servers)."},
    [K_ROLE_ARN] = {"role_arn", LF_CONF_STRING, 0, NULL, 1, 2048, NULL,
                    "Role to assume for the upload, a template (e.g. "
                    "\"arn:aws:iam::${account_id}:role/LogWriter\"); unset: "
                    "the agent's own credentials."},
    [K_EXTERNAL_ID] = {"external_id", LF_CONF_STRING, 0, NULL, 2, 1224, NULL,
                       "ExternalId for the AssumeRole call, a template; "
                       "never logged."},
    [K_SESSION_NAME] = {"session_name", LF_CONF_STRING, 0, NULL, 2, 64, NULL,
                        "Role session name, a template (default "
                        "logferry-<hostname>)."},
    [K_PREFIX] = {"prefix", LF_CONF_STRING, 0, "logferry", 0, 512, NULL,
                  "Text that ${prefix} stands for in key_template (a "
                  "leading '/' and empty path segments are dropped from "
                  "keys)."},
    [K_KEY_TEMPLATE] = {"key_template", LF_CONF_STRING, 0, DEFAULT_KEY, 1, 1024,
                        NULL,
                        "Object key template; must contain ${first} (the "
                        "spool position of the object's first record), "
                        "which makes re-uploads after a crash overwrite "
                        "instead of duplicating."},
    [K_COMPRESSION] = {"compression", LF_CONF_ENUM, 0, "zstd", 0, 0,
                       compressions,
                       "Object encoding: zstd, gzip (for tools without "
                       "zstd) or none."},
    [K_LEVEL] = {"compression_level", LF_CONF_INT, 0, "0", 0, 22, NULL,
                 "Compression level; 0 is the codec's default (zstd 3, "
                 "gzip 6); gzip takes 1-9."},
    [K_ROLL_BYTES] = {"roll_bytes", LF_CONF_SIZE, 0, "64MB", 1024,
                      5LL * 1024 * 1024 * 1024, NULL,
                      "Close an object once it holds this much "
                      "uncompressed NDJSON (it may pass it by one batch)."},
    [K_ROLL_RECORDS] = {"roll_records", LF_CONF_INT, 0, "0", 0, 100000000, NULL,
                        "Close an object at this many records; 0: no "
                        "limit."},
    [K_ROLL_AGE] = {"roll_age", LF_CONF_DURATION, 0, "5m", 100, 86400000, NULL,
                    "Close an object this long after its first record "
                    "was staged (at most half of spool.max_age)."},
    [K_MPU_THRESHOLD] = {"multipart_threshold", LF_CONF_SIZE, 0, "8MB",
                         5LL * 1024 * 1024, 5LL * 1024 * 1024 * 1024, NULL,
                         "Compressed size above which an object is sent as "
                         "a multipart upload instead of one PutObject."},
    [K_PART_SIZE] = {"part_size", LF_CONF_SIZE, 0, "8MB", 5LL * 1024 * 1024,
                     512LL * 1024 * 1024, NULL,
                     "Size of each multipart part (the last may be "
                     "smaller); about this much is in memory per "
                     "uploader."},
    [K_CHECKSUM] = {"checksum", LF_CONF_ENUM, 0, "crc32c", 0, 0, checksums,
                    "Integrity checksum sent with every upload and part: "
                    "crc32c (x-amz-checksum-crc32c) or md5 (Content-MD5)."},
    [K_SSE] = {"sse", LF_CONF_ENUM, 0, "none", 0, 0, sses,
               "Server-side encryption header: none (the bucket's "
               "default), AES256 or aws:kms."},
    [K_KMS_KEY] = {"sse_kms_key_id", LF_CONF_STRING, 0, NULL, 1, 2048, NULL,
                   "KMS key id or ARN for sse = \"aws:kms\" (default: the "
                   "account's aws/s3 key)."},
    [K_STORAGE_CLASS] = {"storage_class", LF_CONF_ENUM, 0, "STANDARD", 0, 0,
                         classes, "Storage class of the objects."},
    [K_TAGS] = {"tags", LF_CONF_STRLIST, 0, NULL, 0, 0, NULL,
                "Object tags as \"key=value\" strings (at most 10), e.g. a "
                "retention class for the bucket's lifecycle rules."},
    [K_MAX_OPEN] = {"max_open_objects", LF_CONF_INT, 0, "256", 1, 4096, NULL,
                    "Objects open for appending at once (one file "
                    "descriptor each); past it the least recently used is "
                    "closed and uploaded."},
    [K_MAX_STAGED] = {"max_staged_bytes", LF_CONF_SIZE, 0, "2GB", 0, INT64_MAX,
                      NULL,
                      "Staged (compressed) bytes at which deliver() answers "
                      "RETRY: records wait in the spool instead; 0: no "
                      "limit."},
    [K_UPLOADERS] = {"upload_concurrency", LF_CONF_INT, 0, "2", 1, 16, NULL,
                     "Uploader threads (objects uploaded in parallel)."},
    [K_UPLOAD_RETRIES] = {"upload_retries", LF_CONF_INT, 0, "4", 0, 20, NULL,
                          "Retries of a throttled or failed request (with "
                          "backoff) before the object is put back for "
                          "later."},
    [K_RETRY_INTERVAL] = {"retry_interval", LF_CONF_DURATION, 0, "5s", 10,
                          3600000, NULL,
                          "Wait before an object whose upload failed for a "
                          "transient reason is tried again; doubles up to "
                          "retry_interval_max."},
    [K_RETRY_INTERVAL_MAX] = {"retry_interval_max", LF_CONF_DURATION, 0, "2m",
                              10, 86400000, NULL,
                              "Cap of the wait between attempts of one "
                              "object."},
    [K_PERMANENT_RETRY] = {"permanent_retry_interval", LF_CONF_DURATION, 0,
                           "5m", 10, 86400000, NULL,
                           "Wait before retrying an object refused for a "
                           "permanent reason (AccessDenied, NoSuchBucket): "
                           "it stays staged until the bucket is fixed."},
    [K_FLUSH_TIMEOUT] = {"flush_timeout", LF_CONF_DURATION, 0, "5s", 0, 3600000,
                         NULL,
                         "How long a flush (agent shutdown) waits for "
                         "staged objects to upload; the rest goes after the "
                         "next start."},
    [K_FSYNC] = {"fsync", LF_CONF_BOOL, 0, "true", 0, 0, NULL,
                 "fdatasync() staged data before acknowledging it; false "
                 "trades crash safety for speed."},
};

/* ---- objects ---------------------------------------------------------- */

void s3_obj_path(const s3_sink *s, uint64_t id, const char *ext, char *out,
                 size_t cap)
{
    snprintf(out, cap, "%s/obj-%016" PRIx64 ".%s", s->dir, id, ext);
}

void s3_obj_free(s3_obj *o)
{
    if (!o)
        return;
    if (o->fd >= 0)
        close(o->fd);
    free(o->group);
    free(o->hdr);
    s3_dest_free(&o->dest);
    free(o);
}

/* Eight bytes at a time: every record's destination is hashed. */
static uint32_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, v;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return (uint32_t)(h ^ (h >> 29));
}

static void list_remove(s3_obj *o)
{
    o->prev->next = o->next;
    o->next->prev = o->prev;
    o->prev = o->next = o;
}

static void list_append(s3_obj *head, s3_obj *o)
{
    o->prev = head->prev;
    o->next = head;
    head->prev->next = o;
    head->prev = o;
}

static void table_remove(s3_sink *s, s3_obj *o)
{
    s3_obj **pp = &s->slots[o->hash & (s->n_slots - 1)];
    while (*pp && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = o->hnext;
    o->hnext = NULL;
}

/* Move an open object to the upload queue. Lock held; the deliver thread
 * is not using the object (delivering == 0, or it is the caller). */
void s3_seal_locked(s3_sink *s, s3_obj *o)
{
    if (o->state != S3_OBJ_OPEN)
        return;
    if (!o->full)
        table_remove(s, o);
    list_remove(o);
    s->n_open--;
    /* The file stays open: its uploader syncs and closes it (under
       wal_lock), so no fdatasync runs under this lock. */
    free(o->group);
    o->group = NULL;
    o->state = S3_OBJ_SEALED;
    o->next_try_mono = 0;
    list_append(&s->sealed, o);
    s->n_sealed++;
    pthread_cond_signal(&s->cond);
}

static s3_obj *table_find(const s3_sink *s, const char *g, size_t n, uint32_t h)
{
    for (s3_obj *o = s->slots[h & (s->n_slots - 1)]; o; o = o->hnext)
        if (o->hash == h && strncmp(o->group, g, n) == 0 && !o->group[n])
            return o;
    return NULL;
}

/* ---- identities ------------------------------------------------------- */

lf_aws_creds *s3_ident_get(s3_sink *s, const s3_dest *d, char *err,
                           size_t errlen)
{
    char key[S3_ARN_MAX + S3_EXTID_MAX + 256];
    int kl = snprintf(key, sizeof key, "%s\x1f%s\x1f%s\x1f%s", d->region,
                      d->role ? d->role : "", d->extid ? d->extid : "",
                      d->session ? d->session : "");
    if (kl < 0 || (size_t)kl >= sizeof key) {
        snprintf(err, errlen, "identity too long");
        return NULL;
    }
    lf_aws_creds *c = NULL;
    pthread_mutex_lock(&s->ident_lock);
    for (size_t i = 0; i < s->n_idents; i++)
        if (strcmp(s->idents[i].key, key) == 0) {
            c = s->idents[i].creds;
            goto out;
        }
    s3_ident *ni = realloc(s->idents, (s->n_idents + 1) * sizeof *ni);
    if (!ni) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    s->idents = ni;
    char *k = strdup(key);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    char session[S3_SESSION_MAX + 1];
    if (!d->session)
        snprintf(session, sizeof session, "logferry-%.40s", s->hostname);
    lf_aws_identity id = {
        .region = d->region,
        .role_arn = d->role,
        .external_id = d->extid,
        .session_name = d->role ? (d->session ? d->session : session) : NULL,
    };
    c = s->host->aws_creds_acquire(s->host, &id, err, errlen);
    if (!c) {
        free(k);
        goto out;
    }
    s->idents[s->n_idents++] = (s3_ident){k, c};
out:
    pthread_mutex_unlock(&s->ident_lock);
    return c;
}

/* ---- routing ---------------------------------------------------------- */

/* Expand the record's destination into s->group: bucket, role, extid,
 * session and key (with S3_FIRST_MARK), separated by \x1f. Returns 0 or
 * -1 with why set. */
static int route(s3_sink *s, const lf_record *rec, char *why, size_t whylen)
{
    const lf_host *h = s->host;
    sbuf *g = &s->group;
    g->len = 0;
    if (s3_tmpl_expand(s->t_bucket, h, rec, g, why, whylen))
        return -1;
    if (!s3_valid_bucket(g->p, g->len)) {
        snprintf(why, whylen, "bucket: the expansion is not a bucket name");
        return -1;
    }
    if (sbuf_put(g, "\x1f", 1))
        goto full;
    size_t at = g->len;
    if (s->t_role) {
        if (s3_tmpl_expand(s->t_role, h, rec, g, why, whylen))
            return -1;
        if (!lf_valid_role_arn(g->p + at, g->len - at)) {
            snprintf(why, whylen, "role_arn: the expansion is not a role ARN");
            return -1;
        }
    }
    if (sbuf_put(g, "\x1f", 1))
        goto full;
    at = g->len;
    if (s->t_extid) {
        if (s3_tmpl_expand(s->t_extid, h, rec, g, why, whylen))
            return -1;
        if (!s3_valid_extid(g->p + at, g->len - at)) {
            snprintf(why, whylen, "external_id: the expansion is not valid");
            return -1;
        }
    }
    if (sbuf_put(g, "\x1f", 1))
        goto full;
    at = g->len;
    if (s->t_session) {
        if (s3_tmpl_expand(s->t_session, h, rec, g, why, whylen))
            return -1;
        if (g->len - at < 2 || g->len - at > S3_SESSION_MAX) {
            snprintf(why, whylen, "session_name: 2-64 characters");
            return -1;
        }
    }
    if (sbuf_put(g, "\x1f", 1))
        goto full;
    if (s3_tmpl_expand(s->t_key, h, rec, g, why, whylen))
        return -1;
    return 0;
full:
    snprintf(why, whylen, "destination too long");
    return -1;
}

static char *dup_part(const char *p, size_t n)
{
    if (n == 0)
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Open a new object for the destination in s->group, whose first record
 * is rec. Returns it; or NULL with *permanent = 1 and why set when the
 * destination is refused for good (key too long, identity refused), or
 * *permanent = 0 when the staging file could not be created. */
static s3_obj *obj_open(s3_sink *s, uint32_t hash, const lf_record *rec,
                        int *permanent, char *why, size_t whylen)
{
    const char *g = s->group.p, *end = g + s->group.len, *parts[5];
    size_t lens[5];
    for (int i = 0; i < 5; i++) {
        const char *sep = i < 4 ? memchr(g, '\x1f', (size_t)(end - g)) : end;
        parts[i] = g;
        lens[i] = (size_t)(sep - g);
        g = sep + 1;
    }
    *permanent = 1;
    s3_obj *o = calloc(1, sizeof *o);
    if (!o) {
        *permanent = 0;
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    o->fd = -1;
    o->prev = o->next = o;
    char key[S3_KEY_MAX + 1];
    size_t kl = s3_key_finish(parts[4], lens[4], &rec->pos, key, sizeof key);
    if (!kl) {
        snprintf(why, whylen, "key: empty or longer than %d bytes", S3_KEY_MAX);
        goto fail;
    }
    o->dest.bucket = dup_part(parts[0], lens[0]);
    o->dest.role = dup_part(parts[1], lens[1]);
    o->dest.extid = dup_part(parts[2], lens[2]);
    o->dest.session = dup_part(parts[3], lens[3]);
    o->dest.key = strdup(key);
    o->dest.region = strdup(s->region);
    o->dest.codec = s->codec;
    o->group = dup_part(s->group.p, s->group.len);
    if (!o->dest.bucket || !o->dest.key || !o->dest.region || !o->group ||
        (lens[1] && !o->dest.role) || (lens[2] && !o->dest.extid) ||
        (lens[3] && !o->dest.session)) {
        *permanent = 0;
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    char err[512];
    if (!s3_ident_get(s, &o->dest, err, sizeof err)) {
        snprintf(why, whylen, "identity refused: %.200s", err);
        goto fail;
    }
    *permanent = 0;
    o->id = s->next_id++;
    o->hash = hash;
    char path[PATH_MAX];
    s3_obj_path(s, o->id, "stage", path, sizeof path);
    o->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (o->fd < 0) {
        snprintf(why, whylen, "create obj-%016" PRIx64 ".stage: %.100s", o->id,
                 strerror(errno));
        goto fail;
    }
    sbuf hb = {0};
    int rc = s3_stage_header(&o->dest, s->host->now_ns(s->host), &hb);
    if (rc == 0)
        rc = fd_pwrite_all(o->fd, hb.p, hb.len, 0);
    if (rc != 0) {
        snprintf(why, whylen, "write obj-%016" PRIx64 ".stage: %.100s", o->id,
                 hb.len ? strerror(errno) : "header too long");
        sbuf_free(&hb);
        unlink(path);
        goto fail;
    }
    o->size = o->data_start = hb.len;
    o->hdr = (uint8_t *)hb.p; /* for the WAL; freed once logged */
    o->hdr_len = hb.len;
    o->opened_mono = s->host->mono_ns(s->host);
    o->state = S3_OBJ_OPEN;
    o->created_now = 1;
    pthread_mutex_lock(&s->lock);
    size_t k = hash & (s->n_slots - 1);
    o->hnext = s->slots[k];
    s->slots[k] = o;
    list_append(&s->open_list, o);
    s->n_open++;
    s->staged_bytes += o->size;
    pthread_mutex_unlock(&s->lock);
    return o;
fail:
    s3_obj_free(o);
    return NULL;
}

/* ---- deliver ---------------------------------------------------------- */

static int grow_arrays(s3_sink *s, size_t n)
{
    if (n <= s->cap_recs)
        return 0;
    size_t *nx = realloc(s->rec_next, n * sizeof *nx);
    if (nx)
        s->rec_next = nx;
    s3_obj **ro = realloc(s->rec_obj, n * sizeof *ro);
    if (ro)
        s->rec_obj = ro;
    struct s3_run *rn = realloc(s->runs, n * sizeof *rn);
    if (rn)
        s->runs = rn;
    s3_obj **t = realloc(s->touched, n * sizeof *t);
    if (t)
        s->touched = t;
    if (!nx || !ro || !rn || !t)
        return -1;
    s->cap_recs = n;
    return 0;
}

/* Put the files of the objects touched by a failed deliver() back as they
 * were: new objects go, the others are cut back to their last whole
 * batch. Returns RETRY. */
static lf_deliver_status rollback(s3_sink *s, const char *what, int e)
{
    const lf_host *h = s->host;
    for (size_t i = 0; i < s->n_touched; i++) {
        s3_obj *o = s->touched[i];
        o->touched = 0;
        if (o->created_now) {
            char path[PATH_MAX];
            s3_obj_path(s, o->id, "stage", path, sizeof path);
            unlink(path);
            pthread_mutex_lock(&s->lock);
            if (!o->full)
                table_remove(s, o);
            list_remove(o);
            s->n_open--;
            s->staged_bytes -= o->size;
            pthread_mutex_unlock(&s->lock);
            s3_obj_free(o);
            continue;
        }
        if (o->w_len && (ftruncate(o->fd, (off_t)o->size) != 0 ||
                         (s->fsync && fdatasync(o->fd) != 0)))
            o->dirty = 1;
        o->w_len = o->w_records = 0;
        o->w_payload = o->w_stored = 0;
        if (o->full) {
            pthread_mutex_lock(&s->lock);
            s3_seal_locked(s, o);
            pthread_mutex_unlock(&s->lock);
        }
    }
    s->n_touched = 0;
    if (s->wal_held) {
        /* Records of a batch that was not acknowledged must not be
           replayed; if the log cannot be cut, start a new one first. */
        if (ftruncate(s->wal_fd, (off_t)s->wal_before) != 0)
            s->wal_broken = 1;
        s->wal_size = s->wal_before;
        s->wal_held = 0;
        pthread_mutex_unlock(&s->wal_lock);
    }
    pthread_mutex_lock(&s->lock);
    s->delivering = 0;
    pthread_mutex_unlock(&s->lock);
    h->log(h, LF_LOG_ERROR,
           "msg=\"staging failed, batch not acknowledged\" step=%s "
           "error=\"%s\"",
           what, strerror(e));
    h->counter_add(h, "staging_errors", 1);
    return LF_DELIVER_RETRY;
}

/* Compress the lines in s->raw into one block of segment seg at the end
 * of s->wbuf. Returns 0 or -1. */
static int emit_block(s3_sink *s, s3_obj *o, const char *seg, uint32_t n,
                      uint64_t first, uint64_t last)
{
    sbuf *w = &s->wbuf;
    size_t blk = w->len;
    if (s3_block_begin(w, seg) ||
        s3_codec_frame(&s->cctx, o->dest.codec, s->level, s->raw.p, s->raw.len,
                       w))
        return -1;
    size_t hdr = S3_BLOCK_HDR + strlen(seg);
    s3_block_end(w, blk, n, first, last, (uint32_t)s->raw.len);
    o->w_payload += s->raw.len;
    o->w_stored += w->len - blk - hdr;
    int64_t born = s3_segment_born(seg);
    if (born && (!o->w_born || born < o->w_born))
        o->w_born = born;
    s->raw.len = 0;
    return 0;
}

/* Write s->wbuf at the end of o's staging file and, when durability is
 * on, log the same bytes (wal_lock held). Returns 0 or -1 with errno. */
static int put_piece(s3_sink *s, s3_obj *o)
{
    sbuf *w = &s->wbuf;
    uint64_t at = o->size + o->w_len;
    if (fd_pwrite_all(o->fd, w->p, w->len, at) ||
        (s->fsync && s3_wal_append(s, S3_WAL_BLK, o->id, at, w->p, w->len)))
        return -1;
    o->w_len += w->len;
    o->unsynced = 1;
    w->len = 0;
    return 0;
}

/* Write the batch's records of object o: their NDJSON lines, one block
 * (one compressed frame) per run of a spool segment, written in pieces of
 * about WBUF_FLUSH. Returns 0, or -1 with errno. */
static int write_object(s3_sink *s, s3_obj *o, lf_batch *b, size_t *failed)
{
    const lf_host *h = s->host;
    sbuf *w = &s->wbuf, *raw = &s->raw;
    w->len = raw->len = 0;
    const char *seg = NULL; /* segment of the block being built */
    uint32_t n = 0;
    uint64_t first = 0, last = 0;
    for (size_t i = o->first_rec;; i = s->rec_next[i]) {
        const lf_record *r = &b->records[i];
        if (seg && (strcmp(seg, r->pos.segment) != 0 || raw->len >= RAW_MAX)) {
            if (n > 0 && emit_block(s, o, seg, n, first, last))
                goto oom;
            seg = NULL;
        }
        if (!seg && w->len >= WBUF_FLUSH) {
            if (put_piece(s, o))
                return -1;
        }
        if (!seg) {
            seg = r->pos.segment;
            n = 0;
            raw->len = 0;
        }
        for (;;) {
            if (sbuf_reserve(raw, 4096))
                goto oom;
            size_t room = raw->cap - raw->len;
            size_t need = h->to_json(h, r, raw->p + raw->len, room);
            if (need < room) { /* the NUL's byte takes the newline */
                raw->p[raw->len + need] = '\n';
                raw->len += need + 1;
                if (n++ == 0)
                    first = r->pos.offset;
                last = r->pos.offset;
                break;
            }
            if (need + 1 > S3_LINE_MAX) {
                b->verdict[i] = LF_REC_FAIL;
                b->fail_reason = "JSON line too long for the s3 sink";
                (*failed)++;
                break;
            }
            if (sbuf_reserve(raw, need + 1))
                goto oom;
        }
        if (i == o->last_rec)
            break;
    }
    if (seg && n > 0 && emit_block(s, o, seg, n, first, last))
        goto oom;
    if (w->len && put_piece(s, o))
        return -1;
    /* Give back the memory of a huge line. */
    if (raw->cap > 2 * RAW_MAX)
        sbuf_free(raw);
    if (w->cap > 2 * WBUF_FLUSH)
        sbuf_free(w);
    return 0;
oom:
    errno = ENOMEM;
    return -1;
}

static int repair_dirty(s3_sink *s)
{
    for (s3_obj *o = s->open_list.next; o != &s->open_list; o = o->next)
        if (o->dirty) {
            if (ftruncate(o->fd, (off_t)o->size) != 0 ||
                (s->fsync && fdatasync(o->fd) != 0))
                return -1;
            o->dirty = 0;
        }
    return 0;
}

static int is_due(const s3_sink *s, const s3_obj *o, int64_t now)
{
    return o->payload >= s->roll_bytes ||
           (s->roll_records && o->records >= s->roll_records) ||
           now - o->opened_mono >= s->roll_age_ns;
}

static lf_deliver_status s3_deliver(void *inst, lf_batch *b)
{
    s3_sink *s = inst;
    const lf_host *h = s->host;
    char why[256];
    size_t failed = 0, skipped = 0, staged = 0;

    pthread_mutex_lock(&s->lock);
    s->delivering = 1;
    uint64_t staged_bytes = s->staged_bytes;
    pthread_mutex_unlock(&s->lock);
    s->n_touched = 0;
    s->n_runs = 0;

    if (repair_dirty(s) != 0)
        return rollback(s, "truncate", errno);
    if (s->wal_broken) {
        if (s3_wal_checkpoint(s, S3_CKPT_FORCE) != 0)
            return rollback(s, "WAL checkpoint", errno);
        s->wal_broken = 0;
    }
    if (s->max_staged && staged_bytes >= s->max_staged) {
        int64_t now = h->mono_ns(h);
        if (now - s->last_full_log_ns > 60LL * 1000000000LL) {
            h->log(h, LF_LOG_WARN,
                   "msg=\"staging full, records wait in the spool\" "
                   "staged_bytes=%" PRIu64 " max_staged_bytes=%" PRIu64,
                   staged_bytes, s->max_staged);
            s->last_full_log_ns = now;
        }
        h->counter_add(h, "staging_full", 1);
        pthread_mutex_lock(&s->lock);
        s->delivering = 0;
        pthread_mutex_unlock(&s->lock);
        b->retry_after_ms = 1000;
        return LF_DELIVER_RETRY;
    }
    if (grow_arrays(s, b->count) != 0)
        return rollback(s, "memory", ENOMEM);

    /* Pass 1: route each record to an object, skipping what is staged. */
    const char *pseg = NULL;
    s3_pos_ent *pent = NULL;
    s3_obj *last_obj = NULL;
    for (size_t i = 0; i < b->count; i++) {
        const lf_record *r = &b->records[i];
        s->rec_obj[i] = NULL;
        if (route(s, r, why, sizeof why) != 0) {
            b->verdict[i] = LF_REC_FAIL;
            snprintf(s->fail_reason, sizeof s->fail_reason, "%s", why);
            b->fail_reason = s->fail_reason;
            failed++;
            continue;
        }
        if (r->pos.segment != pseg &&
            (!pseg || strcmp(r->pos.segment, pseg) != 0)) {
            pseg = r->pos.segment;
            pent = s3_pos_find(&s->pos, pseg);
        }
        if (pent && r->pos.offset <= pent->max_off) {
            /* Staged (or uploaded) before a crash; the core lost our OK.
               Refuse it again if it was refused then, else accept. */
            if (h->to_json(h, r, NULL, 0) + 1 > S3_LINE_MAX) {
                b->verdict[i] = LF_REC_FAIL;
                b->fail_reason = "JSON line too long for the s3 sink";
                failed++;
            } else {
                skipped++;
            }
            continue;
        }
        uint32_t hash = hash_bytes(s->group.p, s->group.len);
        s3_obj *o = last_obj && last_obj->hash == hash && !last_obj->full &&
                            strcmp(last_obj->group, s->group.p) == 0
                        ? last_obj
                        : table_find(s, s->group.p, s->group.len, hash);
        if (!o) {
            int permanent;
            o = obj_open(s, hash, r, &permanent, why, sizeof why);
            if (!o && permanent) {
                b->verdict[i] = LF_REC_FAIL;
                snprintf(s->fail_reason, sizeof s->fail_reason, "%s", why);
                b->fail_reason = s->fail_reason;
                failed++;
                continue;
            }
            if (!o)
                return rollback(s, "open", errno ? errno : EIO);
        }
        last_obj = o;
        if (!o->touched) {
            o->touched = 1;
            o->first_rec = i;
            o->w_len = 0;
            o->w_payload = o->w_stored = 0;
            o->w_records = 0;
            o->w_born = 0;
            s->touched[s->n_touched++] = o;
        } else {
            s->rec_next[o->last_rec] = i;
        }
        o->last_rec = i;
        s->rec_obj[i] = o;
        o->w_records++;
        staged++;
        /* Roll at a record count exactly: the next record of this
           destination opens a new object. */
        if (s->roll_records && o->records + o->w_records >= s->roll_records) {
            pthread_mutex_lock(&s->lock);
            table_remove(s, o);
            pthread_mutex_unlock(&s->lock);
            o->full = 1;
            last_obj = NULL;
        }
        if (s->n_runs && s->runs[s->n_runs - 1].seg == r->pos.segment)
            s->runs[s->n_runs - 1].max_off = r->pos.offset;
        else
            s->runs[s->n_runs++] =
                (struct s3_run){r->pos.segment, r->pos.offset};
    }

    /* Pass 2: write each object's blocks, and log them; pass 3: one
       fdatasync of the log makes the whole batch durable. */
    pthread_mutex_lock(&s->wal_lock);
    s->wal_before = s->wal_size;
    s->wal_held = 1;
    for (size_t t = 0; t < s->n_touched; t++) {
        s3_obj *o = s->touched[t];
        uint32_t want = o->w_records;
        size_t before = failed;
        if (o->hdr && s->fsync &&
            s3_wal_append(s, S3_WAL_OBJ, o->id, 0, o->hdr, o->hdr_len))
            return rollback(s, "write of the WAL", errno);
        if (write_object(s, o, b, &failed) != 0)
            return rollback(s, "write", errno);
        o->w_records = want - (uint32_t)(failed - before);
        staged -= failed - before;
    }
    if (s->fsync && fdatasync(s->wal_fd) != 0)
        return rollback(s, "fdatasync of the WAL", errno);
    for (size_t t = 0; t < s->n_touched; t++) {
        free(s->touched[t]->hdr);
        s->touched[t]->hdr = NULL;
    }
    s->wal_held = 0;
    pthread_mutex_unlock(&s->wal_lock);

    /* Commit: sizes, positions, rolls. */
    int64_t now = h->mono_ns(h), wall = h->now_ns(h);
    uint64_t written = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_runs; i++)
        if (s3_pos_update(&s->pos, s->runs[i].seg, s->runs[i].max_off, wall)) {
            /* Out of memory: the positions are durable in the staging
               files anyway; only the de-duplication of a crash loses. */
            h->log(h, LF_LOG_WARN, "msg=\"positions table: out of memory\"");
            break;
        }
    for (size_t t = 0; t < s->n_touched; t++) {
        s3_obj *o = s->touched[t];
        o->size += o->w_len;
        o->payload += o->w_payload;
        o->stored += o->w_stored;
        /* A segment name that tells no time: count from now. */
        if (!o->w_born && o->w_len)
            o->w_born = wall;
        if (o->w_born && (!o->born_ns || o->w_born < o->born_ns))
            o->born_ns = o->w_born;
        o->records += o->w_records;
        s->staged_bytes += o->w_len;
        written += o->w_payload;
        o->touched = o->created_now = 0;
        /* Most recently used at the end of the list. */
        list_remove(o);
        list_append(&s->open_list, o);
        if (o->full || is_due(s, o, now))
            s3_seal_locked(s, o);
    }
    while (s->n_open > s->max_open)
        s3_seal_locked(s, s->open_list.next);
    if (wall - s->last_prune_ns > PRUNE_EVERY_NS) {
        s3_pos_prune(&s->pos, wall - POS_KEEP_NS, POS_MAX_ENTRIES);
        s->last_prune_ns = wall;
    }
    s->delivering = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    s->n_touched = 0;
    if (s->fsync)
        s3_wal_checkpoint(s, S3_CKPT_IF_BIG);

    h->counter_add(h, "records", staged);
    h->counter_add(h, "staged_bytes_in", written);
    if (skipped)
        h->counter_add(h, "records_redelivered_skipped", skipped);
    if (failed) {
        h->counter_add(h, "records_refused", failed);
        return LF_DELIVER_PARTIAL;
    }
    return LF_DELIVER_OK;
}

/* ---- flush ------------------------------------------------------------ */

/* Upload everything staged, waiting up to flush_timeout; what is left
 * (a bucket down) stays staged and durable. */
static int s3_flush(void *inst)
{
    s3_sink *s = inst;
    const lf_host *h = s->host;
    pthread_mutex_lock(&s->lock);
    while (s->open_list.next != &s->open_list)
        s3_seal_locked(s, s->open_list.next);
    uint64_t g = ++s->flush_gen;
    pthread_cond_broadcast(&s->cond);
    int64_t deadline = h->mono_ns(h) + s->flush_timeout_ns;
    size_t left = 0;
    while (!atomic_load(&s->stop)) {
        left = 0;
        for (s3_obj *o = s->sealed.next; o != &s->sealed; o = o->next)
            if (o->state == S3_OBJ_UPLOADING || o->flush_tried < g)
                left++;
        if (!left || h->mono_ns(h) >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->done_cond, &s->lock, &ts);
    }
    size_t staged = s->n_sealed;
    pthread_mutex_unlock(&s->lock);
    if (staged)
        h->log(h, LF_LOG_INFO,
               "msg=\"flush: objects still staged, they are uploaded "
               "later\" objects=%zu",
               staged);
    return 0;
}

/* ---- create / destroy ------------------------------------------------- */

static void free_config(s3_sink *s);

static void s3_destroy(void *inst)
{
    s3_sink *s = inst;
    if (!s)
        return;
    s3_uploaders_stop(s);
    for (s3_obj *o = s->open_list.next, *nx; o && o != &s->open_list; o = nx) {
        nx = o->next;
        s3_obj_free(o);
    }
    for (s3_obj *o = s->sealed.next, *nx; o && o != &s->sealed; o = nx) {
        nx = o->next;
        s3_obj_free(o);
    }
    for (size_t i = 0; i < s->n_idents; i++) {
        s->host->aws_creds_release(s->host, s->idents[i].creds);
        free(s->idents[i].key);
    }
    free(s->idents);
    free_config(s);
    free(s->slots);
    s3_pos_free(&s->pos);
    sbuf_free(&s->group);
    sbuf_free(&s->raw);
    sbuf_free(&s->wbuf);
    s3_codec_free(&s->cctx);
    free(s->rec_next);
    free(s->rec_obj);
    free(s->runs);
    free(s->touched);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pos_file_lock);
    pthread_mutex_destroy(&s->ident_lock);
    pthread_mutex_destroy(&s->wal_lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->done_cond);
    free(s);
}

typedef struct scan_ctx {
    s3_sink *s;
    int64_t born;
} scan_ctx;

static int pos_from_block(void *ud, const s3_block *b)
{
    scan_ctx *x = ud;
    int64_t born = s3_segment_born(b->seg);
    if (born && (!x->born || born < x->born))
        x->born = born;
    return s3_pos_update(&x->s->pos, b->seg, b->last_off,
                         x->s->host->now_ns(x->s->host));
}

/* Take over what a previous run left in the directory: staged objects
 * (torn tails cut), multipart markers, the positions table. */
static int recover(s3_sink *s, char *err, size_t errlen)
{
    const lf_host *h = s->host;
    char path[PATH_MAX], perr[256];
    snprintf(path, sizeof path, "%s/positions", s->dir);
    if (s3_pos_load(&s->pos, path, perr, sizeof perr) != 0) {
        /* Only de-duplication after a crash depends on it: warn, go on
           with what the staging files say. */
        h->log(h, LF_LOG_ERROR,
               "msg=\"positions table unreadable, starting without it\" "
               "error=\"%s\"",
               perr);
    }
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", s->dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    size_t found = 0, records = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        uint64_t id;
        char ext[16];
        int at = 0;
        if (n[0] == '.' && strstr(n, ".tmp")) {
            snprintf(path, sizeof path, "%s/%s", s->dir, n);
            unlink(path);
            continue;
        }
        if (sscanf(n, "obj-%16" SCNx64 ".%15s%n", &id, ext, &at) != 2 || n[at])
            continue;
        if (id >= s->next_id)
            s->next_id = id + 1;
        snprintf(path, sizeof path, "%s/%s", s->dir, n);
        if (strcmp(ext, "mpu") == 0) {
            char sp[PATH_MAX];
            s3_obj_path(s, id, "stage", sp, sizeof sp);
            if (access(sp, F_OK) != 0) /* uploaded; the marker is stale */
                unlink(path);
            continue;
        }
        if (strcmp(ext, "stage") != 0)
            continue;
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            closedir(d);
            return -1;
        }
        s3_stage_scan sc;
        char serr[256];
        scan_ctx sx = {s, 0};
        if (s3_stage_scan_fd(fd, &sc, pos_from_block, &sx, serr, sizeof serr) !=
            0) {
            /* The header is synced with the first records; without it
               nothing in the file was ever acknowledged. */
            h->log(h, LF_LOG_WARN,
                   "msg=\"staging file without a usable header removed\" "
                   "file=%s error=\"%s\"",
                   n, serr);
            close(fd);
            unlink(path);
            continue;
        }
        if (sc.valid_len < sc.file_len) {
            h->log(h, LF_LOG_WARN,
                   "msg=\"staging file ended in a torn block (a crash); "
                   "cut, those records come again from the spool\" file=%s "
                   "bytes=%" PRIu64,
                   n, sc.file_len - sc.valid_len);
            if (ftruncate(fd, (off_t)sc.valid_len) != 0 || fdatasync(fd) != 0)
                h->log(h, LF_LOG_WARN, "msg=\"cannot truncate\" file=%s", n);
        }
        close(fd);
        s3_obj *o = calloc(1, sizeof *o);
        if (!o) {
            s3_dest_free(&sc.dest);
            closedir(d);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        o->fd = -1;
        o->id = id;
        o->dest = sc.dest;
        o->size = sc.valid_len;
        o->data_start = sc.data_start;
        o->payload = sc.raw_bytes;
        o->stored = sc.stored_bytes;
        o->records = sc.records;
        o->born_ns = sx.born ? sx.born : sc.created_ns;
        o->state = S3_OBJ_SEALED;
        char mp[PATH_MAX];
        s3_obj_path(s, id, "mpu", mp, sizeof mp);
        o->mpu_marker = access(mp, F_OK) == 0;
        list_append(&s->sealed, o);
        s->n_sealed++;
        s->staged_bytes += o->size;
        found++;
        records += sc.records;
    }
    closedir(d);
    if (found)
        h->log(h, LF_LOG_INFO,
               "msg=\"staged objects from an earlier run, uploading them\" "
               "objects=%zu records=%zu",
               found, records);
    return 0;
}

/* Build the x-amz-tagging value from "key=value" strings. */
static int build_tagging(s3_sink *s, const lf_conf_value *v, char *err,
                         size_t errlen)
{
    if (!v->list || v->n == 0)
        return 0;
    if (v->n > S3_MAX_TAGS) {
        snprintf(err, errlen, "tags: at most %d", S3_MAX_TAGS);
        return -1;
    }
    sbuf b = {0};
    for (size_t i = 0; i < v->n; i++) {
        const char *t = v->list[i], *eq = strchr(t, '=');
        size_t kl = eq ? (size_t)(eq - t) : 0;
        if (!eq || kl < 1 || kl > 128 || strlen(eq + 1) > 256) {
            snprintf(err, errlen,
                     "tags: '%.64s' is not key=value (key 1-128, value 0-256 "
                     "characters)",
                     t);
            sbuf_free(&b);
            return -1;
        }
        if ((i && sbuf_puts(&b, "&")) || s3_uri_encode(&b, t, kl, 0) ||
            sbuf_puts(&b, "=") ||
            s3_uri_encode(&b, eq + 1, strlen(eq + 1), 0)) {
            snprintf(err, errlen, "out of memory");
            sbuf_free(&b);
            return -1;
        }
    }
    s->tagging = b.p;
    return 0;
}

static s3_tmpl *tmpl(const lf_conf_value *v, const char *name, s3_charset cs,
                     const s3_tmpl_vars *vars, int allow_first, char *err,
                     size_t errlen)
{
    char e[400];
    if (!v->s)
        return NULL;
    s3_tmpl *t = s3_tmpl_parse(v->s, cs, vars, allow_first, e, sizeof e);
    if (!t)
        snprintf(err, errlen, "%s: %s", name, e);
    return t;
}

static int enum_index(const lf_conf_value *v, const char *const *names, int def)
{
    if (v->s)
        for (int i = 0; names[i]; i++)
            if (strcmp(v->s, names[i]) == 0)
                return i;
    return def;
}

/* Read and check the values into s (templates, endpoint, tags): what
 * validate() and create() share. Creates nothing outside s; free with
 * free_config(). Returns 0 or -1 with err set. */
static int parse_config(s3_sink *s, const lf_conf_value *v, char *err,
                        size_t errlen)
{
    s->region = v[K_REGION].s;
    s->path_style = v[K_PATH_STYLE].b;
    s->codec = (s3_codec_kind)enum_index(&v[K_COMPRESSION], compressions, 0);
    s->level = (int)v[K_LEVEL].i;
    s->roll_bytes = (uint64_t)v[K_ROLL_BYTES].i;
    s->roll_records = (uint64_t)v[K_ROLL_RECORDS].i;
    s->roll_age_ns = v[K_ROLL_AGE].i * 1000000LL;
    s->mpu_threshold = (uint64_t)v[K_MPU_THRESHOLD].i;
    s->part_size = (uint64_t)v[K_PART_SIZE].i;
    s->checksum_md5 = enum_index(&v[K_CHECKSUM], checksums, 0) == 1;
    int sse = enum_index(&v[K_SSE], sses, 0);
    s->sse = sse ? sses[sse] : NULL;
    s->kms_key_id = v[K_KMS_KEY].s;
    int sc = enum_index(&v[K_STORAGE_CLASS], classes, 0);
    s->storage_class = sc ? classes[sc] : NULL;
    s->max_open = (size_t)v[K_MAX_OPEN].i;
    s->max_staged = (uint64_t)v[K_MAX_STAGED].i;
    s->n_uploaders = (unsigned)v[K_UPLOADERS].i;
    s->request_retries = (unsigned)v[K_UPLOAD_RETRIES].i;
    s->retry_base_ns = 200LL * 1000000LL;
    s->object_retry_ns = v[K_RETRY_INTERVAL].i * 1000000LL;
    s->object_retry_max_ns = v[K_RETRY_INTERVAL_MAX].i * 1000000LL;
    s->permanent_retry_ns = v[K_PERMANENT_RETRY].i * 1000000LL;
    s->flush_timeout_ns = v[K_FLUSH_TIMEOUT].i * 1000000LL;
    s->fsync = v[K_FSYNC].b;

    if (!s->region || !*s->region) {
        snprintf(err, errlen, "region: must be set");
        return -1;
    }
    if (s->codec == S3_CODEC_GZIP && s->level > 9) {
        snprintf(err, errlen, "compression_level: gzip takes 1-9");
        return -1;
    }
    if (s->max_open < 1 || s->n_uploaders < 1 || !s->part_size ||
        s->roll_age_ns <= 0) {
        snprintf(err, errlen,
                 "max_open_objects, upload_concurrency, "
                 "part_size and roll_age must be positive");
        return -1;
    }
    if (s->roll_bytes / s->part_size + 1 > S3_MAX_PARTS) {
        snprintf(err, errlen,
                 "part_size: too small for roll_bytes (at most "
                 "%d parts)",
                 S3_MAX_PARTS);
        return -1;
    }
    if (s->kms_key_id && (!s->sse || strcmp(s->sse, "aws:kms") != 0)) {
        snprintf(err, errlen, "sse_kms_key_id: only with sse = \"aws:kms\"");
        return -1;
    }

    /* Endpoint: scheme://host[:port], nothing after. */
    const char *ep = v[K_ENDPOINT].s;
    if (ep) {
        size_t el = strlen(ep);
        while (el && ep[el - 1] == '/')
            el--;
        int https = strncmp(ep, "https://", 8) == 0;
        const char *hostp = ep + (https ? 8 : 7);
        if ((!https && strncmp(ep, "http://", 7) != 0) ||
            (size_t)(hostp - ep) >= el ||
            memchr(hostp, '/', el - (size_t)(hostp - ep)) ||
            strpbrk(ep, "?# \t")) {
            snprintf(err, errlen, "endpoint: '%s' is not scheme://host[:port]",
                     ep);
            return -1;
        }
        s->endpoint = strndup(ep, el);
        s->https = https;
    } else {
        size_t n = strlen(s->region) + 32;
        if ((s->endpoint = malloc(n)))
            snprintf(s->endpoint, n, "https://s3.%s.amazonaws.com", s->region);
        s->https = 1;
    }
    if (!s->endpoint) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    /* Host name for ${hostname} and the session name, key-safe. */
    if (gethostname(s->hostname, sizeof s->hostname - 1) != 0)
        snprintf(s->hostname, sizeof s->hostname, "localhost");
    for (char *p = s->hostname; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            *p = '_';

    const char *prefix = v[K_PREFIX].s ? v[K_PREFIX].s : "";
    for (const char *p = prefix; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "prefix: control characters");
            return -1;
        }
    s3_tmpl_vars vars = {s->hostname, prefix, s3_codec_ext(s->codec)};
    const char *kt = v[K_KEY_TEMPLATE].s ? v[K_KEY_TEMPLATE].s : DEFAULT_KEY;
    for (const char *p = kt; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "key_template: control characters");
            return -1;
        }
    lf_conf_value kv = v[K_KEY_TEMPLATE];
    kv.s = kt;
    if (!(s->t_bucket = tmpl(&v[K_BUCKET], "bucket", S3_CS_BUCKET, &vars, 0,
                             err, errlen)) ||
        !(s->t_key =
              tmpl(&kv, "key_template", S3_CS_KEY, &vars, 1, err, errlen)))
        return -1;
    if (!lf_tmpl_has_mark(s->t_key)) {
        snprintf(err, errlen,
                 "key_template: must contain ${first}, or a re-upload after "
                 "a crash could replace an object holding other records");
        return -1;
    }
    if ((v[K_ROLE_ARN].s &&
         !(s->t_role = tmpl(&v[K_ROLE_ARN], "role_arn", S3_CS_ARN, &vars, 0,
                            err, errlen))) ||
        (v[K_EXTERNAL_ID].s &&
         !(s->t_extid = tmpl(&v[K_EXTERNAL_ID], "external_id", S3_CS_EXTID,
                             &vars, 0, err, errlen))) ||
        (v[K_SESSION_NAME].s &&
         !(s->t_session = tmpl(&v[K_SESSION_NAME], "session_name",
                               S3_CS_SESSION, &vars, 0, err, errlen))))
        return -1;
    if (s->t_extid && !s->t_role) {
        snprintf(err, errlen, "external_id: needs role_arn");
        return -1;
    }
    /* Static parts are checked now, so a typo is a config error. */
    if (lf_tmpl_is_static(s->t_bucket) &&
        !s3_valid_bucket(v[K_BUCKET].s, strlen(v[K_BUCKET].s))) {
        snprintf(err, errlen, "bucket: '%s' is not a valid bucket name",
                 v[K_BUCKET].s);
        return -1;
    }
    if (s->t_role && lf_tmpl_is_static(s->t_role) &&
        !lf_valid_role_arn(v[K_ROLE_ARN].s, strlen(v[K_ROLE_ARN].s))) {
        snprintf(err, errlen, "role_arn: not a role ARN");
        return -1;
    }
    if (build_tagging(s, &v[K_TAGS], err, errlen) != 0)
        return -1;

    return 0;
}

static void free_config(s3_sink *s)
{
    lf_tmpl_free(s->t_bucket);
    lf_tmpl_free(s->t_role);
    lf_tmpl_free(s->t_extid);
    lf_tmpl_free(s->t_session);
    lf_tmpl_free(s->t_key);
    free(s->endpoint);
    free(s->tagging);
}

static int s3_validate(const lf_conf_value *v, char *err, size_t errlen)
{
    s3_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = parse_config(s, v, err, errlen);
    free_config(s);
    free(s);
    return rc;
}

/* Keeps pointers into `values` and `host` (both outlive the instance);
 * the instance is freed by s3_destroy(). */
static int s3_create(const lf_conf_value *v, const lf_host *host, void **out,
                     char *err, size_t errlen)
{
    if (!LF_HOST_HAS(host, aws_call) || !LF_HOST_HAS(host, instance_dir)) {
        snprintf(err, errlen,
                 "this agent lends no AWS services or instance "
                 "directory to sinks (too old)");
        return -1;
    }
    s3_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->host = host;
    s->dir = host->instance_dir;
    s->lock_fd = -1;
    s->open_list.prev = s->open_list.next = &s->open_list;
    s->sealed.prev = s->sealed.next = &s->sealed;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->pos_file_lock, NULL);
    pthread_mutex_init(&s->ident_lock, NULL);
    pthread_mutex_init(&s->wal_lock, NULL);
    s->wal_fd = -1;
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->done_cond, NULL);
    s->group.max = GROUP_MAX;

    if (parse_config(s, v, err, errlen) != 0)
        goto fail;
    /* spool.max_age holds for staged records too: objects close early
       enough to be uploaded in time, and what cannot be is deleted. */
    if (host->struct_size >=
        offsetof(lf_host, max_age_ms) + sizeof host->max_age_ms)
        s->max_age_ns = host->max_age_ms * 1000000LL;
    if (s->max_age_ns > 0 && s->roll_age_ns > s->max_age_ns / 2)
        s->roll_age_ns = s->max_age_ns / 2 > 0 ? s->max_age_ns / 2 : 1;

    s->n_slots = 1;
    while (s->n_slots < 2 * s->max_open + 16)
        s->n_slots *= 2;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    if (!s->slots) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    /* One instance per directory: a stopping one may still upload. */
    char lp[PATH_MAX];
    snprintf(lp, sizeof lp, "%s/lock", s->dir);
    s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "staging directory %s is in use (%s)", s->dir,
                 strerror(errno));
        goto fail;
    }
    if (s3_wal_recover(s, err, errlen) != 0 || recover(s, err, errlen) != 0)
        goto fail;
    s->last_prune_ns = host->now_ns(host);
    if (s3_uploaders_start(s, err, errlen) != 0)
        goto fail;
    host->log(host, LF_LOG_INFO,
              "msg=\"ready\" endpoint=%s path_style=%d compression=%s "
              "roll_bytes=%" PRIu64 " roll_age_ms=%lld staged_objects=%zu",
              s->endpoint, s->path_style, compressions[s->codec], s->roll_bytes,
              (long long)(s->roll_age_ns / 1000000), s->n_sealed);
    *out = s;
    return 0;
fail:
    s3_destroy(s);
    return -1;
}

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "s3",
    .description = "Archives records as compressed NDJSON objects in each "
                   "tenant's S3 bucket, staged on local disk first and "
                   "uploaded idempotently.",
    .config_keys = s3_keys,
    .n_config_keys = K_COUNT,
    .create = s3_create,
    .deliver = s3_deliver,
    .flush = s3_flush,
    .destroy = s3_destroy,
    /* Staging is local: waiting a little for fuller batches costs nothing
       visible (objects wait minutes anyway) and makes bigger frames. */
    .batch_linger_ms = 250,
    .validate = s3_validate,
};

LF_SINK_MODULE(ops)
