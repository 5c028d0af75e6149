/*
 * cwl_api.c - the CloudWatch Logs calls of one destination and what their
 * answers mean for its records.
 *
 * Runs on the pool's threads, one destination (identity, group, stream)
 * per task, its requests in time order. Each record of the destination
 * ends with a verdict: accepted (left 0), LF_REC_RETRY or LF_REC_FAIL.
 *
 *   ThrottlingException, 5xx, resets, timeouts  -> this request and the
 *       rest of the stream RETRY; the core backs off (retry_after_ms from
 *       the answer), other destinations go on.
 *   ResourceNotFoundException                   -> create the stream (and
 *       the group when create_group is on), then send once more.
 *   ResourceAlreadyExistsException              -> success.
 *   InvalidParameterException                   -> split the request in
 *       halves until the event it is about is alone; FAIL that one.
 *   rejectedLogEventsInfo in an accepted answer -> those events are
 *       counted by kind and dead-lettered (or dropped), never retried.
 *   anything else permanent (AccessDenied, ...) -> FAIL, with a reason
 *       naming the role and the group, never the ExternalId.
 *
 * Sequence tokens are not sent: the service ignores them since 2023.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

/* At most this many extra calls to isolate bad events in one request. */
#define CWL_SPLIT_BUDGET 64
/* Log a repeating problem of one stream at most this often above DEBUG. */
#define CWL_WARN_EVERY_NS (60LL * 1000000000LL)
#define DAY_MS (24LL * 3600 * 1000)

typedef enum put_out {
    PUT_OK = 0,    /* go on with the next request */
    PUT_RETRY = 1, /* stop: the rest of the stream is RETRY */
    PUT_FAIL = 2,  /* stop: the rest of the stream FAILs (stop_reason) */
} put_out;

typedef enum res_out {
    RES_OK = 0,
    RES_RETRY = 1,
    RES_FAIL = 2,
    RES_NO_GROUP = 3, /* CreateLogStream: the group does not exist */
} res_out;

typedef struct ctx {
    cwl_sink *s;
    cwl_dest *d;
    cwl_event *ev; /* the destination's events, sorted */
    sbuf *body;
    uint32_t *sent;    /* indexes in ev of the events of one request */
    int64_t cutoff_ms; /* events before this were settled already */
    int recreated;     /* the one ResourceNotFound recovery was used */
    unsigned splits;
    char stop_reason[CWL_REASON_LEN];
} ctx;

/* ---- records' verdicts and reasons ------------------------------------ */

void cwl_fail_record(cwl_sink *s, uint32_t rec, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    size_t i;
    for (i = 0; i < s->n_reasons; i++)
        if (strcmp(s->reasons[i].text, reason) == 0)
            break;
    if (i == s->n_reasons && i < CWL_MAX_REASONS) {
        snprintf(s->reasons[i].text, CWL_REASON_LEN, "%s", reason);
        s->reasons[i].count = 0;
        s->n_reasons++;
    }
    if (i < CWL_MAX_REASONS) {
        s->reasons[i].count++;
        s->rec_reason[rec] = (uint8_t)i;
    } else {
        s->other_refusals++;
        s->rec_reason[rec] = UINT8_MAX;
    }
    s->verd[rec] = LF_REC_FAIL;
    pthread_mutex_unlock(&s->lock);
}

/* Mark the events [lo, hi) not settled yet. */
static void mark(ctx *c, size_t lo, size_t hi, lf_rec_verdict v,
                 const char *reason)
{
    for (size_t j = lo; j < hi; j++) {
        if (c->ev[j].ts_ms < c->cutoff_ms)
            continue;
        if (v == LF_REC_FAIL)
            cwl_fail_record(c->s, c->ev[j].rec, reason);
        else
            c->s->verd[c->ev[j].rec] = (uint8_t)v;
    }
}

static const char *who(const cwl_dest *d)
{
    return d->role ? d->role : "the agent's own credentials";
}

/* Whether to log a repeating problem of this stream above DEBUG now. */
static int warn_due(ctx *c)
{
    cwl_sink *s = c->s;
    int64_t now = s->host->mono_ns(s->host);
    pthread_mutex_lock(&s->lock);
    int due = !c->d->stm->warned_ns ||
              now - c->d->stm->warned_ns >= CWL_WARN_EVERY_NS;
    if (due)
        c->d->stm->warned_ns = now;
    pthread_mutex_unlock(&s->lock);
    return due;
}

/* ---- one call ----------------------------------------------------------- */

/* Whether a refusal is about the credentials (expired, unknown, being
 * refreshed by the host) rather than about what we asked: those are
 * retried. AccessDenied (a role we may not assume, a policy without
 * logs:PutLogEvents) is the tenant's configuration: refused for good. */
static int creds_trouble(const lf_aws_result *res, lf_aws_class cls)
{
    static const char *const codes[] = {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidToken",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "CredentialsRefused",
        "NoCredentials",
        NULL,
    };
    if (strstr(res->code, "AccessDenied"))
        return 0;
    if (cls == LF_AWS_AUTH)
        return 1;
    for (size_t i = 0; codes[i]; i++)
        if (strcmp(res->code, codes[i]) == 0)
            return 1;
    return 0;
}

static lf_aws_class logs_call(ctx *c, const char *op, const sbuf *body,
                              lf_aws_result *res)
{
    const lf_host *h = c->s->host;
    char target[64];
    snprintf(target, sizeof target, "Logs_20140328.%s", op);
    const lf_aws_header hd[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Amz-Target", target},
    };
    lf_aws_request rq = {
        .method = "POST",
        .url = c->s->url,
        .service = "logs",
        .region = c->s->region,
        .headers = hd,
        .n_headers = 2,
        .body = body->p,
        .body_len = body->len,
    };
    memset(res, 0, sizeof *res);
    lf_aws_class cls = h->aws_call(h, c->d->creds->creds, &rq, res);
    /* A transport failure with no code still must not look permanent. */
    if (cls == LF_AWS_PERMANENT && res->status == 0 && !res->code[0])
        cls = LF_AWS_RETRYABLE;
    if (cls != LF_AWS_OK && cls != LF_AWS_RETRYABLE &&
        creds_trouble(res, cls)) {
        /* The identity's credentials, not the records: the host paces
           its refresh, so come back after the core's backoff. */
        h->counter_add(h, "credentials_retry", 1);
        if (warn_due(c))
            h->log(h, LF_LOG_WARN,
                   "%s to %s as %s: credentials refused (%s), will retry", op,
                   c->d->group, who(c->d),
                   res->code[0] ? res->code : "no code");
        cls = LF_AWS_RETRYABLE;
    } else if (cls == LF_AWS_RETRYABLE) {
        h->counter_add(
            h, strstr(res->code, "Throttl") ? "throttled" : "retryable_errors",
            1);
    }
    res->cls = cls;
    return cls;
}

static void res_free(ctx *c, lf_aws_result *res)
{
    c->s->host->aws_result_free(c->s->host, res);
}

/* "code: what, as whom: message" for a permanent refusal. */
static void refusal(ctx *c, const char *op, const lf_aws_result *res)
{
    const cwl_dest *d = c->d;
    if (strstr(res->code, "AccessDenied"))
        c->s->host->counter_add(c->s->host, "access_denied", 1);
    snprintf(c->stop_reason, sizeof c->stop_reason,
             "%s: %s to log group %s as %s: %.200s",
             res->code[0] ? res->code : "refused", op, d->group, who(d),
             res->message[0] ? res->message : "(no message)");
}

static int is_code(const lf_aws_result *res, const char *code)
{
    return strcmp(res->code, code) == 0;
}

/* ---- groups and streams ------------------------------------------------- */

static int json_name(sbuf *b, const char *key, const char *v, int first)
{
    return sbuf_puts(b, first ? "{\"" : ",\"") || sbuf_puts(b, key) ||
           sbuf_puts(b, "\":") || cwl_json_str(b, v, strlen(v));
}

static res_out put_retention(ctx *c, int32_t from)
{
    cwl_sink *s = c->s;
    sbuf *b = c->body;
    b->len = 0;
    if (json_name(b, "logGroupName", c->d->group, 1) ||
        sbuf_printf(b, ",\"retentionInDays\":%d}", s->retention_days))
        return RES_RETRY;
    lf_aws_result res;
    lf_aws_class cls = logs_call(c, "PutRetentionPolicy", b, &res);
    res_out out = RES_OK;
    if (cls == LF_AWS_OK) {
        s->host->counter_add(s->host, "retention_set", 1);
        if (from >= 0) {
            char was[32];
            if (from > 0)
                snprintf(was, sizeof was, "%d days", (int)from);
            else
                snprintf(was, sizeof was, "never expire");
            s->host->log(s->host, LF_LOG_INFO,
                         "retention of log group %s (%s) changed from %s to "
                         "%d days",
                         c->d->group, who(c->d), was, s->retention_days);
        }
        pthread_mutex_lock(&s->lock);
        c->d->grp->retention = s->retention_days;
        pthread_mutex_unlock(&s->lock);
    } else {
        refusal(c, "PutRetentionPolicy", &res);
        s->host->log(s->host, LF_LOG_WARN,
                     "cannot set retention of log group %s: %s", c->d->group,
                     c->stop_reason);
        out = cls == LF_AWS_RETRYABLE ? RES_RETRY : RES_FAIL;
    }
    res_free(c, &res);
    return out;
}

static res_out create_group(ctx *c)
{
    cwl_sink *s = c->s;
    sbuf *b = c->body;
    b->len = 0;
    int err = json_name(b, "logGroupName", c->d->group, 1);
    if (s->kms_key_id)
        err |= json_name(b, "kmsKeyId", s->kms_key_id, 0);
    if (s->group_class)
        err |= json_name(b, "logGroupClass", s->group_class, 0);
    if (s->tags_json)
        err |= sbuf_puts(b, ",\"tags\":") || sbuf_puts(b, s->tags_json);
    if (err || sbuf_put(b, "}", 1))
        return RES_RETRY;
    lf_aws_result res;
    lf_aws_class cls = logs_call(c, "CreateLogGroup", b, &res);
    res_out out = RES_OK;
    if (cls == LF_AWS_OK) {
        s->host->counter_add(s->host, "groups_created", 1);
        s->host->log(s->host, LF_LOG_INFO, "created log group %s (%s)",
                     c->d->group, who(c->d));
    } else if (is_code(&res, "ResourceAlreadyExistsException")) {
        /* Someone else made it: fine. */
    } else {
        refusal(c, "CreateLogGroup", &res);
        out = cls == LF_AWS_RETRYABLE ||
                      is_code(&res, "OperationAbortedException")
                  ? RES_RETRY
                  : RES_FAIL;
        if (cls == LF_AWS_RETRYABLE &&
            res.retry_after_ms > c->d->retry_after_ms)
            c->d->retry_after_ms = res.retry_after_ms;
    }
    res_free(c, &res);
    if (out == RES_OK && s->retention_days)
        put_retention(c, -1); /* best effort: checked again later */
    return out;
}

static res_out create_stream(ctx *c)
{
    cwl_sink *s = c->s;
    sbuf *b = c->body;
    b->len = 0;
    if (json_name(b, "logGroupName", c->d->group, 1) ||
        json_name(b, "logStreamName", c->d->stream, 0) || sbuf_put(b, "}", 1))
        return RES_RETRY;
    lf_aws_result res;
    lf_aws_class cls = logs_call(c, "CreateLogStream", b, &res);
    res_out out = RES_OK;
    if (cls == LF_AWS_OK) {
        s->host->counter_add(s->host, "streams_created", 1);
        s->host->log(s->host, LF_LOG_DEBUG, "created log stream %s in %s",
                     c->d->stream, c->d->group);
    } else if (is_code(&res, "ResourceAlreadyExistsException")) {
        /* exists: what we wanted */
    } else if (is_code(&res, "ResourceNotFoundException")) {
        out = RES_NO_GROUP;
    } else {
        refusal(c, "CreateLogStream", &res);
        out = cls == LF_AWS_RETRYABLE ? RES_RETRY : RES_FAIL;
        if (cls == LF_AWS_RETRYABLE &&
            res.retry_after_ms > c->d->retry_after_ms)
            c->d->retry_after_ms = res.retry_after_ms;
    }
    res_free(c, &res);
    if (out == RES_OK) {
        pthread_mutex_lock(&s->lock);
        c->d->stm->stream_created = 1;
        pthread_mutex_unlock(&s->lock);
    }
    return out;
}

/* The stream, or its group when group_missing, is not there: make what
 * we may. */
static res_out make_stream(ctx *c, int group_missing)
{
    cwl_sink *s = c->s;
    res_out r;
    if (!group_missing) {
        if (!s->create_stream)
            goto no_stream;
        r = create_stream(c);
        if (r != RES_NO_GROUP)
            return r;
    }
    pthread_mutex_lock(&s->lock);
    c->d->grp->group_ready = 0; /* check retention again once it is back */
    pthread_mutex_unlock(&s->lock);
    if (!s->create_group) {
        snprintf(c->stop_reason, sizeof c->stop_reason,
                 "log group %s does not exist (as %s) and create_group is "
                 "off",
                 c->d->group, who(c->d));
        return RES_FAIL;
    }
    r = create_group(c);
    if (r != RES_OK)
        return r;
    if (!s->create_stream)
        goto no_stream;
    r = create_stream(c);
    if (r == RES_NO_GROUP) { /* created a moment ago: not visible yet */
        snprintf(c->stop_reason, sizeof c->stop_reason,
                 "log group %s not found right after creating it", c->d->group);
        return RES_RETRY;
    }
    return r;

no_stream:
    snprintf(c->stop_reason, sizeof c->stop_reason,
             "log stream %s of log group %s does not exist (as %s) and "
             "create_stream is off",
             c->d->stream, c->d->group, who(c->d));
    return RES_FAIL;
}

/* Learn the group's retention (DescribeLogGroups with the name as prefix:
 * names sort, so an exact match is the first answer) and set it where it
 * differs; create the group if it is missing and we may. Best effort: a
 * failure here never blocks records (PutLogEvents tells what is really
 * wrong). Returns 1 when done, 0 to try again with the next batch. */
static int check_retention(ctx *c)
{
    cwl_sink *s = c->s;
    sbuf *b = c->body;
    b->len = 0;
    if (json_name(b, "logGroupNamePrefix", c->d->group, 1) ||
        sbuf_puts(b, ",\"limit\":1}"))
        return 0;
    lf_aws_result res;
    lf_aws_class cls = logs_call(c, "DescribeLogGroups", b, &res);
    if (cls != LF_AWS_OK) {
        refusal(c, "DescribeLogGroups", &res);
        res_free(c, &res);
        if (warn_due(c))
            s->host->log(s->host, LF_LOG_WARN,
                         "cannot check retention of log group %s: %s",
                         c->d->group, c->stop_reason);
        return cls != LF_AWS_RETRYABLE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(res.body ? res.body : "", res.body_len, 0, &jerr);
    res_free(c, &res);
    json_t *g = json_array_get(json_object_get(root, "logGroups"), 0);
    const char *name = json_string_value(json_object_get(g, "logGroupName"));
    int found = name && strcmp(name, c->d->group) == 0;
    int32_t cur =
        (int32_t)json_integer_value(json_object_get(g, "retentionInDays"));
    json_decref(root);
    if (!found) {
        if (!s->create_group)
            return 1; /* PutLogEvents will say it is missing */
        return create_group(c) != RES_RETRY;
    }
    if (cur == s->retention_days) {
        pthread_mutex_lock(&s->lock);
        c->d->grp->retention = cur;
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    return put_retention(c, cur) != RES_RETRY;
}

/* Once per group entry, one worker at a time; others wait for it. */
static void prepare_group(ctx *c)
{
    cwl_sink *s = c->s;
    cwl_ent *g = c->d->grp;
    if (!s->retention_days)
        return;
    pthread_mutex_lock(&s->lock);
    while (g->group_busy)
        pthread_cond_wait(&s->group_cv, &s->lock);
    if (g->group_ready) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    g->group_busy = 1;
    pthread_mutex_unlock(&s->lock);
    int ready = check_retention(c);
    pthread_mutex_lock(&s->lock);
    g->group_busy = 0;
    if (ready)
        g->group_ready = 1;
    pthread_cond_broadcast(&s->group_cv);
    pthread_mutex_unlock(&s->lock);
}

/* ---- PutLogEvents -------------------------------------------------------- */

/* Body of the events [lo, hi) not settled yet; their indexes go to
 * c->sent. Returns how many, or -1 if the body cannot be built. */
static long build_put(ctx *c, size_t lo, size_t hi)
{
    sbuf *b = c->body;
    const char *msgs = c->s->msgs.p;
    b->len = 0;
    if (json_name(b, "logGroupName", c->d->group, 1) ||
        json_name(b, "logStreamName", c->d->stream, 0) ||
        sbuf_puts(b, ",\"logEvents\":["))
        return -1;
    long n = 0;
    static const char head[] = "{\"timestamp\":", mid[] = ",\"message\":";
    for (size_t j = lo; j < hi; j++) {
        const cwl_event *e = &c->ev[j];
        if (e->ts_ms < c->cutoff_ms)
            continue;
        if (sbuf_reserve(b, sizeof head + sizeof mid + 24) != 0)
            return -1;
        char *o = b->p + b->len;
        if (n)
            *o++ = ',';
        memcpy(o, head, sizeof head - 1);
        o = cwl_fmt_i64(o + sizeof head - 1, e->ts_ms);
        memcpy(o, mid, sizeof mid - 1);
        b->len = (size_t)(o + sizeof mid - 1 - b->p);
        if (cwl_json_str_utf8(b, msgs + e->off, e->len) || sbuf_put(b, "}", 1))
            return -1;
        c->sent[n++] = (uint32_t)j;
    }
    if (sbuf_puts(b, "]}"))
        return -1;
    return n;
}

static long long info_index(json_t *info, const char *key)
{
    json_t *v = json_object_get(info, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* An accepted answer may still refuse some events. The documentation
 * calls tooOldLogEventEndIndex "the index of the last log event that is
 * too old" and "exclusive" at once, and emulators differ, so the event
 * at that index counts as refused too (with every event of the same
 * timestamp): a record is dead-lettered twice rather than lost. */
static void handle_rejected(ctx *c, const char *body, size_t len, long n)
{
    cwl_sink *s = c->s;
    if (!body || !strstr(body, "rejectedLogEventsInfo"))
        return;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *info = json_object_get(root, "rejectedLogEventsInfo");
    long long too_new = info_index(info, "tooNewLogEventStartIndex");
    long long too_old = info_index(info, "tooOldLogEventEndIndex");
    long long expired = info_index(info, "expiredLogEventEndIndex");
    json_decref(root);
    int64_t new_ts =
        too_new >= 0 && too_new < n ? c->ev[c->sent[too_new]].ts_ms : INT64_MAX;
    int64_t old_ts =
        too_old >= 0 && too_old < n ? c->ev[c->sent[too_old]].ts_ms : INT64_MIN;
    int64_t exp_ts =
        expired >= 0 && expired < n ? c->ev[c->sent[expired]].ts_ms : INT64_MIN;
    uint64_t k_new = 0, k_old = 0, k_exp = 0;
    for (long j = 0; j < n; j++) {
        const cwl_event *e = &c->ev[c->sent[j]];
        const char *why;
        if (e->ts_ms >= new_ts) {
            why = "CloudWatch Logs refused the event as more than 2 h in "
                  "the future (rejectedLogEventsInfo)";
            k_new++;
        } else if (e->ts_ms <= exp_ts) {
            why = "CloudWatch Logs refused the event as older than the "
                  "log group's retention (rejectedLogEventsInfo)";
            k_exp++;
        } else if (e->ts_ms <= old_ts) {
            why = "CloudWatch Logs refused the event as older than 14 days "
                  "(rejectedLogEventsInfo)";
            k_old++;
        } else {
            continue;
        }
        if (!s->drop_out_of_range)
            cwl_fail_record(s, e->rec, why);
    }
    if (k_new)
        s->host->counter_add(s->host, "rejected_too_new", k_new);
    if (k_old)
        s->host->counter_add(s->host, "rejected_too_old", k_old);
    if (k_exp)
        s->host->counter_add(s->host, "rejected_expired", k_exp);
    if ((k_new || k_old || k_exp) && warn_due(c))
        s->host->log(s->host, LF_LOG_WARN,
                     "log group %s stream %s: CloudWatch Logs refused %llu "
                     "too new, %llu too old, %llu expired events (%s)",
                     c->d->group, c->d->stream, (unsigned long long)k_new,
                     (unsigned long long)k_old, (unsigned long long)k_exp,
                     s->drop_out_of_range ? "dropped" : "dead-lettered");
}

static put_out put_range(ctx *c, size_t lo, size_t hi)
{
    cwl_sink *s = c->s;
    const lf_host *h = s->host;
    long n = build_put(c, lo, hi);
    if (n == 0)
        return PUT_OK;
    if (n < 0) {
        mark(c, lo, hi, LF_REC_RETRY, NULL);
        return PUT_RETRY;
    }
    uint64_t bytes = 0;
    for (long j = 0; j < n; j++)
        bytes += c->ev[c->sent[j]].len + CWL_EVENT_OVERHEAD;
    lf_aws_result res;
    lf_aws_class cls = logs_call(c, "PutLogEvents", c->body, &res);
    h->counter_add(h, "put_calls", 1);
    if (cls == LF_AWS_OK) {
        h->counter_add(h, "put_events", (uint64_t)n);
        h->counter_add(h, "put_bytes", bytes);
        handle_rejected(c, res.body, res.body_len, n);
        res_free(c, &res);
        return PUT_OK;
    }
    if (cls == LF_AWS_RETRYABLE) {
        if (res.retry_after_ms > c->d->retry_after_ms)
            c->d->retry_after_ms = res.retry_after_ms;
        h->log(h, warn_due(c) ? LF_LOG_INFO : LF_LOG_DEBUG,
               "PutLogEvents to %s stream %s: %s (HTTP %ld), will retry",
               c->d->group, c->d->stream, res.code[0] ? res.code : "no answer",
               res.status);
        res_free(c, &res);
        mark(c, lo, hi, LF_REC_RETRY, NULL);
        return PUT_RETRY;
    }
    if (is_code(&res, "DataAlreadyAcceptedException")) {
        res_free(c, &res);
        return PUT_OK;
    }
    if (is_code(&res, "ResourceNotFoundException")) {
        int stream_only = strstr(res.message, "log stream") != NULL;
        res_free(c, &res);
        pthread_mutex_lock(&s->lock);
        c->d->stm->stream_created = 0;
        pthread_mutex_unlock(&s->lock);
        if (c->recreated) {
            mark(c, lo, hi, LF_REC_RETRY, NULL);
            return PUT_RETRY;
        }
        c->recreated = 1;
        h->log(h, warn_due(c) ? LF_LOG_INFO : LF_LOG_DEBUG,
               "log %s %s%s%s not found; %s", stream_only ? "stream" : "group",
               stream_only ? c->d->stream : c->d->group,
               stream_only ? " in " : "", stream_only ? c->d->group : "",
               "creating it where allowed and sending again");
        res_out r = make_stream(c, !stream_only);
        if (r == RES_OK)
            return put_range(c, lo, hi);
        if (r == RES_FAIL) {
            mark(c, lo, hi, LF_REC_FAIL, c->stop_reason);
            return PUT_FAIL;
        }
        mark(c, lo, hi, LF_REC_RETRY, NULL);
        return PUT_RETRY;
    }
    if (is_code(&res, "InvalidParameterException")) {
        refusal(c, "PutLogEvents", &res);
        res_free(c, &res);
        if (n == 1) {
            h->counter_add(h, "events_invalid", 1);
            mark(c, c->sent[0], c->sent[0] + 1, LF_REC_FAIL, c->stop_reason);
            return PUT_OK;
        }
        if (c->splits >= CWL_SPLIT_BUDGET) {
            h->counter_add(h, "events_invalid", (uint64_t)n);
            mark(c, lo, hi, LF_REC_FAIL, c->stop_reason);
            return PUT_OK;
        }
        /* Halve the events actually sent, so each half makes progress. */
        c->splits++;
        h->counter_add(h, "split_calls", 1);
        size_t mid = c->sent[n / 2];
        put_out o = put_range(c, lo, mid);
        if (o == PUT_OK)
            return put_range(c, mid, hi);
        mark(c, mid, hi, o == PUT_RETRY ? LF_REC_RETRY : LF_REC_FAIL,
             c->stop_reason);
        return o;
    }
    /* AccessDenied and other refusals hold for the whole stream. */
    refusal(c, "PutLogEvents", &res);
    h->counter_add(h, "put_refused", 1);
    if (warn_due(c))
        h->log(h, LF_LOG_WARN, "records refused for good: %s", c->stop_reason);
    res_free(c, &res);
    mark(c, lo, hi, LF_REC_FAIL, c->stop_reason);
    return PUT_FAIL;
}

/* ---- one destination ---------------------------------------------------- */

/* A body buffer per running task, from the sink's free list. */
static sbuf *body_take(cwl_sink *s)
{
    pthread_mutex_lock(&s->lock);
    sbuf *b = NULL;
    for (unsigned i = 0; i < s->concurrency; i++)
        if (!s->body_busy[i]) {
            s->body_busy[i] = 1;
            b = &s->bodies[i];
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return b;
}

static void body_give(cwl_sink *s, sbuf *b)
{
    pthread_mutex_lock(&s->lock);
    s->body_busy[b - s->bodies] = 0;
    pthread_mutex_unlock(&s->lock);
}

void cwl_send_dest(void *arg, size_t i)
{
    cwl_sink *s = arg;
    cwl_dest *d = &s->dests[s->work[i]];
    if (d->ch_n == 0)
        return;
    ctx c = {
        .s = s, .d = d, .ev = s->events + d->ev_start, .cutoff_ms = INT64_MIN};
    c.body = body_take(s);
    size_t most = 0;
    for (size_t k = 0; k < d->ch_n; k++) {
        const cwl_chunk *ch = &s->chunks[d->ch_start + k];
        if (ch->end - ch->start > most)
            most = ch->end - ch->start;
    }
    c.sent = malloc(most * sizeof *c.sent);
    if (!c.body || !c.sent) {
        mark(&c, 0, d->ev_n, LF_REC_RETRY, NULL);
        goto out;
    }

    prepare_group(&c);

    /* Older than the group's retention (when shorter than 14 days): the
       service would refuse it. Events are sorted: a prefix. */
    pthread_mutex_lock(&s->lock);
    int32_t ret = d->grp->retention;
    int need_stream = s->create_stream && !d->stm->stream_created;
    pthread_mutex_unlock(&s->lock);
    if (ret > 0 && ret < 14) {
        int64_t cutoff = s->now_ms - ret * DAY_MS;
        size_t k = 0;
        while (k < d->ev_n && c.ev[k].ts_ms < cutoff)
            k++;
        if (k) {
            s->host->counter_add(s->host, "events_too_old", k);
            if (!s->drop_out_of_range) {
                char why[CWL_REASON_LEN];
                snprintf(why, sizeof why,
                         "event older than the %d-day retention of log "
                         "group %s",
                         ret, d->group);
                mark(&c, 0, k, LF_REC_FAIL, why);
            }
            c.cutoff_ms = cutoff;
        }
    }

    if (need_stream) {
        res_out r = create_stream(&c);
        if (r == RES_NO_GROUP) {
            c.recreated = 1;
            r = make_stream(&c, 1);
        }
        if (r == RES_FAIL) {
            mark(&c, 0, d->ev_n, LF_REC_FAIL, c.stop_reason);
            goto out;
        }
        if (r == RES_RETRY) {
            mark(&c, 0, d->ev_n, LF_REC_RETRY, NULL);
            goto out;
        }
    }

    for (size_t k = 0; k < d->ch_n; k++) {
        const cwl_chunk *ch = &s->chunks[d->ch_start + k];
        put_out o = put_range(&c, ch->start, ch->end);
        if (o == PUT_OK)
            continue;
        /* Keep the stream's order: nothing after a refused request. */
        mark(&c, ch->end, d->ev_n, o == PUT_RETRY ? LF_REC_RETRY : LF_REC_FAIL,
             c.stop_reason);
        break;
    }
out:
    free(c.sent);
    if (c.body)
        body_give(s, c.body);
}
