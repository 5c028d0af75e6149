/*
 * test_cwl_sink.c - the cloudwatch sink (sinks/cloudwatch) against a fake
 * host whose aws_call is a small in-memory CloudWatch Logs: accounts (from
 * the role ARN of the credentials handle), log groups with retention,
 * streams with their events, the PutLogEvents limits checked like the
 * fault proxy does, and faults on demand (throttling, AccessDenied,
 * poisoned events, rejectedLogEventsInfo, deleted groups).
 *
 * The module's sources are compiled into this program (a unity build), so
 * its internal pieces (templates, the request planner, JSON strings) are
 * tested directly as well as through its lf_sink_ops table.
 *
 * EMF output is checked against tests/data/emf/emf.schema.json with a
 * small JSON Schema runner (type, required, properties, items, min/max
 * items and length, minimum, enum, pattern) plus the specification's
 * rules a schema cannot state (see tests/data/emf/README.md).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <logferry/sink.h>

#include "record_json.h"

#include "../../sinks/cloudwatch/cwl_api.c"
#include "../../sinks/cloudwatch/cwl_hold.c"
#include "../../sinks/cloudwatch/cwl_json.c"
#include "../../sinks/cloudwatch/cwl_plan.c"
#include "../../sinks/cloudwatch/cwl_pool.c"
#include "../../sinks/cloudwatch/cwl_sink.c"
#include "../../sinks/cloudwatch/cwl_state.c"
#include "../../sinks/cloudwatch/cwl_template.c"
#include "../../sinks/shared/awsname.c"
#include "../../sinks/shared/fdio.c"
#include "../../sinks/shared/sbuf.c"
#include "../../sinks/shared/tmpl.c"

typedef Logferry__V1__InvocationRecord rec_t;

#define NOW_S 1764000000LL /* 2025-11-24T16:00:00Z */
#define NOW_NS (NOW_S * 1000000000LL)
#define MS 1000000LL
#define OPS_ACCOUNT "123456789012"
#define URL "http://127.0.0.1:9/"

/* ---- the fake CloudWatch Logs ---------------------------------------- */

typedef struct fev {
    int64_t ts;
    char *msg;
    size_t len;
} fev;

typedef struct fstream {
    char account[16];
    char group[520];
    char name[520];
    fev *ev;
    size_t n, cap;
} fstream;

typedef struct fgroup {
    char account[16];
    char name[520];
    int retention;
    int live;
    char kms[128];
    char klass[32];
    char tags[256];
} fgroup;

typedef struct fcreds {
    char role[256];
    char extid[256];
    char account[16];
} fcreds;

typedef struct scratch {
    struct scratch *next;
    char data[RJSON_FIELD_SCRATCH];
} scratch;

typedef struct fake {
    lf_host pub;
    pthread_mutex_t lock;
    char *log;
    size_t log_len;
    struct {
        char name[48];
        uint64_t v;
    } counters[64];
    size_t n_counters;
    int64_t now_ns;
    scratch *scr;

    fgroup groups[512];
    size_t n_groups;
    fstream *streams;
    size_t n_streams, cap_streams;

    unsigned calls[8]; /* by op, see OPS */
    unsigned violations;
    unsigned inflight, max_inflight;
    unsigned acquired, released, live_creds;
    int call_delay_ms;

    /* faults */
    char throttle_account[16];
    int throttle_left;            /* -1: until cleared */
    uint32_t throttle_retry_ms;   /* retry_after_ms in the answer */
    int check_extid;              /* tenant roles need "ext-<account>" */
    const char *poison;           /* message substring: invalid event */
    int64_t reject_old_before_ms; /* rejectedLogEventsInfo tooOld */
    int refuse_acquire;           /* aws_creds_acquire fails for roles */
    int creds_refused_left;       /* LF_AWS_AUTH CredentialsRefused */

    /* holding: what settle() was given, and its answer to RETRY */
    int64_t mono_skew_ns; /* added to the monotonic clock */
    struct settled_rec {
        uint64_t offset;
        uint8_t verdict;
        char reason[128];
    } * settled;
    size_t n_settled, cap_settled;
    unsigned settle_calls;
    uint32_t settle_retry_after;
    int refuse_retry;      /* settle answers -1 to RETRY ones */
    uint64_t put_cw[4096]; /* CloudWatch bytes of each accepted request */
    size_t n_puts;
    char dir[256]; /* instance_dir */
} fake;

enum { OP_PUT, OP_CGROUP, OP_CSTREAM, OP_DESCRIBE, OP_RETENTION, OP_OTHER };
static const char *const OPS[] = {"PutLogEvents",       "CreateLogGroup",
                                  "CreateLogStream",    "DescribeLogGroups",
                                  "PutRetentionPolicy", NULL};

static fake *F(const lf_host *h)
{
    return h->priv;
}

static void fk_log(const lf_host *h, lf_log_level level, const char *fmt, ...)
{
    fake *f = F(h);
    static const char *const lv[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "%s: ", lv[level]);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&f->lock);
    size_t l = strlen(line);
    if (f->log_len + l + 2 < (1u << 20)) {
        memcpy(f->log + f->log_len, line, l);
        f->log_len += l;
        f->log[f->log_len++] = '\n';
        f->log[f->log_len] = '\0';
    }
    pthread_mutex_unlock(&f->lock);
}

static void fk_counter(const lf_host *h, const char *name, uint64_t d)
{
    fake *f = F(h);
    pthread_mutex_lock(&f->lock);
    size_t i;
    for (i = 0; i < f->n_counters; i++)
        if (strcmp(f->counters[i].name, name) == 0)
            break;
    if (i == f->n_counters && i < 64) {
        snprintf(f->counters[i].name, 48, "%s", name);
        f->n_counters++;
    }
    if (i < 64)
        f->counters[i].v += d;
    pthread_mutex_unlock(&f->lock);
}

static uint64_t counter(fake *f, const char *name)
{
    for (size_t i = 0; i < f->n_counters; i++)
        if (strcmp(f->counters[i].name, name) == 0)
            return f->counters[i].v;
    return 0;
}

static size_t fk_to_json(const lf_host *h, const lf_record *rec, char *dst,
                         size_t cap)
{
    (void)h;
    return rjson_render(rec->internal, dst, cap);
}

/* Only the deliver thread calls field(), as the real host requires. */
static size_t fk_field(const lf_host *h, const lf_record *rec, const char *name,
                       const char **out)
{
    fake *f = F(h);
    scratch *s = malloc(sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->next = f->scr;
    f->scr = s;
    return rjson_field(rec->internal, name, s->data, sizeof s->data, out);
}

static int64_t fk_now(const lf_host *h)
{
    return F(h)->now_ns;
}

static int64_t fk_mono(const lf_host *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + F(h)->mono_skew_ns;
}

/* Records what it is given; refuses RETRY ones when asked to, as a core
 * whose retry parking is full does. */
static int fk_settle(const lf_host *h, const lf_settled *v, size_t n,
                     const char *reason, uint32_t retry_after_ms)
{
    fake *f = F(h);
    ck_assert_uint_gt(n, 0);
    int retry = v[0].verdict == LF_REC_RETRY;
    for (size_t i = 0; i < n; i++) {
        /* one verdict kind per call */
        ck_assert_uint_eq(v[i].verdict, v[0].verdict);
        ck_assert_str_eq(v[i].pos.segment, "seg.lfs");
        /* the payload as deliver() saw it: it starts with the record id */
        ck_assert_uint_ge(v[i].len, 16);
        ck_assert_uint_eq(v[i].payload[8], (uint8_t)(v[i].pos.offset + 8));
    }
    f->settle_calls++;
    if (retry && f->refuse_retry)
        return -1;
    if (retry)
        f->settle_retry_after = retry_after_ms;
    for (size_t i = 0; i < n; i++) {
        if (f->n_settled == f->cap_settled) {
            f->cap_settled = f->cap_settled ? 2 * f->cap_settled : 256;
            f->settled =
                realloc(f->settled, f->cap_settled * sizeof *f->settled);
            ck_assert_ptr_nonnull(f->settled);
        }
        struct settled_rec *r = &f->settled[f->n_settled++];
        r->offset = v[i].pos.offset;
        r->verdict = v[i].verdict;
        snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    }
    return 0;
}

static lf_aws_creds *fk_acquire(const lf_host *h, const lf_aws_identity *id,
                                char *err, size_t errlen)
{
    fake *f = F(h);
    ck_assert_str_eq(id->region, "us-east-1");
    if (id->role_arn && f->refuse_acquire) {
        snprintf(err, errlen, "role ARN refused by the test");
        return NULL;
    }
    fcreds *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    snprintf(c->role, sizeof c->role, "%s", id->role_arn ? id->role_arn : "");
    snprintf(c->extid, sizeof c->extid, "%s",
             id->external_id ? id->external_id : "");
    if (id->role_arn)
        snprintf(c->account, sizeof c->account, "%.12s", id->role_arn + 13);
    else
        snprintf(c->account, sizeof c->account, OPS_ACCOUNT);
    pthread_mutex_lock(&f->lock);
    f->acquired++;
    f->live_creds++;
    pthread_mutex_unlock(&f->lock);
    return (lf_aws_creds *)c;
}

static void fk_release(const lf_host *h, lf_aws_creds *c)
{
    fake *f = F(h);
    if (!c)
        return;
    pthread_mutex_lock(&f->lock);
    f->released++;
    f->live_creds--;
    pthread_mutex_unlock(&f->lock);
    free(c);
}

static lf_aws_class answer_with(lf_aws_result *out, lf_aws_class cls,
                                long status, const char *code, const char *msg,
                                const char *body)
{
    out->cls = cls;
    out->status = status;
    snprintf(out->code, sizeof out->code, "%s", code ? code : "");
    snprintf(out->message, sizeof out->message, "%s", msg ? msg : "");
    char *b = strdup(body ? body : "{}");
    out->body = b;
    out->body_len = strlen(b);
    out->priv = b;
    return cls;
}

static lf_aws_class error_answer(lf_aws_result *out, const char *code,
                                 const char *msg)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", code,
             msg);
    return answer_with(out, LF_AWS_PERMANENT, 400, code, msg, body);
}

static fgroup *find_group(fake *f, const char *acct, const char *name)
{
    for (size_t i = 0; i < f->n_groups; i++)
        if (f->groups[i].live && strcmp(f->groups[i].account, acct) == 0 &&
            strcmp(f->groups[i].name, name) == 0)
            return &f->groups[i];
    return NULL;
}

static fgroup *add_group(fake *f, const char *acct, const char *name,
                         int retention)
{
    ck_assert_uint_lt(f->n_groups, 512);
    fgroup *g = &f->groups[f->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->account, sizeof g->account, "%s", acct);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->retention = retention;
    g->live = 1;
    return g;
}

static fstream *find_stream(fake *f, const char *acct, const char *group,
                            const char *name)
{
    for (size_t i = 0; i < f->n_streams; i++)
        if (strcmp(f->streams[i].account, acct) == 0 &&
            strcmp(f->streams[i].group, group) == 0 &&
            strcmp(f->streams[i].name, name) == 0)
            return &f->streams[i];
    return NULL;
}

static fstream *add_stream(fake *f, const char *acct, const char *group,
                           const char *name)
{
    if (f->n_streams == f->cap_streams) {
        f->cap_streams = f->cap_streams ? f->cap_streams * 2 : 64;
        f->streams = realloc(f->streams, f->cap_streams * sizeof *f->streams);
        ck_assert_ptr_nonnull(f->streams);
    }
    fstream *s = &f->streams[f->n_streams++];
    memset(s, 0, sizeof *s);
    snprintf(s->account, sizeof s->account, "%s", acct);
    snprintf(s->group, sizeof s->group, "%s", group);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void delete_group(fake *f, const char *acct, const char *name)
{
    fgroup *g = find_group(f, acct, name);
    ck_assert_ptr_nonnull(g);
    g->live = 0;
    /* Its streams and events go with it. */
    for (size_t i = 0; i < f->n_streams; i++)
        if (strcmp(f->streams[i].account, acct) == 0 &&
            strcmp(f->streams[i].group, name) == 0)
            snprintf(f->streams[i].group, sizeof f->streams[i].group,
                     "(deleted)%s", name);
}

/* The PutLogEvents limits, as tests/aws/faultproxy.py checks them. */
static const char *limits_broken(json_t *events)
{
    size_t n = json_array_size(events);
    if (n < 1 || n > 10000)
        return "event_count";
    size_t total = 0;
    int64_t first = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(events, i);
        size_t len = json_string_length(json_object_get(e, "message"));
        int64_t ts = json_integer_value(json_object_get(e, "timestamp"));
        if (len == 0)
            return "empty_message";
        if (len > 1048550)
            return "event_size";
        total += len + 26;
        if (i == 0)
            first = ts;
        else if (ts < prev)
            return "order";
        if (ts - first > 24LL * 3600 * 1000)
            return "span";
        prev = ts;
    }
    return total > 1048576 ? "batch_size" : NULL;
}

static lf_aws_class put_events(fake *f, fcreds *c, json_t *req,
                               lf_aws_result *out)
{
    const char *g = json_string_value(json_object_get(req, "logGroupName"));
    const char *s = json_string_value(json_object_get(req, "logStreamName"));
    json_t *events = json_object_get(req, "logEvents");
    ck_assert_ptr_null(json_object_get(req, "sequenceToken"));
    const char *broken = limits_broken(events);
    if (broken) {
        f->violations++;
        fprintf(stderr, "limit broken: %s\n", broken);
        return error_answer(out, "InvalidParameterException", broken);
    }
    if (!find_group(f, c->account, g))
        return error_answer(out, "ResourceNotFoundException",
                            "The specified log group does not exist.");
    fstream *st = find_stream(f, c->account, g, s);
    if (!st)
        return error_answer(out, "ResourceNotFoundException",
                            "The specified log stream does not exist.");
    size_t n = json_array_size(events);
    uint64_t cw = 0;
    for (size_t i = 0; i < n; i++)
        cw += json_string_length(
                  json_object_get(json_array_get(events, i), "message")) +
              26;
    if (f->poison)
        for (size_t i = 0; i < n; i++) {
            const char *m = json_string_value(
                json_object_get(json_array_get(events, i), "message"));
            if (strstr(m, f->poison))
                return error_answer(out, "InvalidParameterException",
                                    "Log event is malformed.");
        }
    long last_old = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(events, i);
        int64_t ts = json_integer_value(json_object_get(e, "timestamp"));
        if (ts < f->reject_old_before_ms) {
            last_old = (long)i; /* moto's convention: the last one */
            continue;
        }
        if (st->n == st->cap) {
            st->cap = st->cap ? st->cap * 2 : 256;
            st->ev = realloc(st->ev, st->cap * sizeof *st->ev);
            ck_assert_ptr_nonnull(st->ev);
        }
        json_t *m = json_object_get(e, "message");
        st->ev[st->n].ts = ts;
        st->ev[st->n].len = json_string_length(m);
        st->ev[st->n].msg = malloc(st->ev[st->n].len + 1);
        memcpy(st->ev[st->n].msg, json_string_value(m), st->ev[st->n].len + 1);
        st->n++;
    }
    if (f->n_puts < 4096)
        f->put_cw[f->n_puts++] = cw;
    char body[256];
    if (last_old >= 0)
        snprintf(body, sizeof body,
                 "{\"nextSequenceToken\":\"49\",\"rejectedLogEventsInfo\":"
                 "{\"tooOldLogEventEndIndex\":%ld}}",
                 last_old);
    else
        snprintf(body, sizeof body, "{\"nextSequenceToken\":\"49\"}");
    return answer_with(out, LF_AWS_OK, 200, NULL, NULL, body);
}

static lf_aws_class fk_call_locked(fake *f, fcreds *c, int op, json_t *req,
                                   lf_aws_result *out)
{
    if (f->check_extid && c->role[0]) {
        char want[64];
        snprintf(want, sizeof want, "ext-%s", c->account);
        if (strcmp(c->extid, want) != 0) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "User: arn:aws:iam::" OPS_ACCOUNT
                     ":user/ops is not authorized to perform: "
                     "sts:AssumeRole on resource: %s",
                     c->role);
            /* as the host reports a refused AssumeRole */
            answer_with(out, LF_AWS_AUTH, 403, "AccessDenied", msg, "");
            return out->cls;
        }
    }
    if (f->creds_refused_left) {
        f->creds_refused_left--;
        answer_with(out, LF_AWS_AUTH, 0, "CredentialsRefused",
                    "assume-role ...: fresh credentials were refused", "");
        return out->cls;
    }
    if (f->throttle_left && strcmp(f->throttle_account, c->account) == 0) {
        if (f->throttle_left > 0)
            f->throttle_left--;
        answer_with(out, LF_AWS_RETRYABLE, 400, "ThrottlingException",
                    "Rate exceeded", "{\"__type\":\"ThrottlingException\"}");
        out->retry_after_ms = f->throttle_retry_ms;
        return out->cls;
    }
    const char *g = json_string_value(json_object_get(req, "logGroupName"));
    switch (op) {
    case OP_PUT:
        return put_events(f, c, req, out);
    case OP_CGROUP: {
        if (find_group(f, c->account, g))
            return error_answer(out, "ResourceAlreadyExistsException",
                                "The specified log group already exists");
        fgroup *ng = add_group(f, c->account, g, 0);
        json_t *v;
        if ((v = json_object_get(req, "kmsKeyId")))
            snprintf(ng->kms, sizeof ng->kms, "%s", json_string_value(v));
        if ((v = json_object_get(req, "logGroupClass")))
            snprintf(ng->klass, sizeof ng->klass, "%s", json_string_value(v));
        if ((v = json_object_get(req, "tags"))) {
            char *d = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
            snprintf(ng->tags, sizeof ng->tags, "%s", d);
            free(d);
        }
        return answer_with(out, LF_AWS_OK, 200, NULL, NULL, "");
    }
    case OP_CSTREAM: {
        const char *s =
            json_string_value(json_object_get(req, "logStreamName"));
        if (!find_group(f, c->account, g))
            return error_answer(out, "ResourceNotFoundException",
                                "The specified log group does not exist.");
        if (find_stream(f, c->account, g, s))
            return error_answer(out, "ResourceAlreadyExistsException",
                                "The specified log stream already exists");
        add_stream(f, c->account, g, s);
        return answer_with(out, LF_AWS_OK, 200, NULL, NULL, "");
    }
    case OP_DESCRIBE: {
        const char *p =
            json_string_value(json_object_get(req, "logGroupNamePrefix"));
        ck_assert_int_eq(json_integer_value(json_object_get(req, "limit")), 1);
        fgroup *best = NULL;
        for (size_t i = 0; i < f->n_groups; i++) {
            fgroup *x = &f->groups[i];
            if (x->live && strcmp(x->account, c->account) == 0 &&
                strncmp(x->name, p, strlen(p)) == 0 &&
                (!best || strcmp(x->name, best->name) < 0))
                best = x;
        }
        char body[1200];
        if (!best)
            snprintf(body, sizeof body, "{\"logGroups\":[]}");
        else if (best->retention)
            snprintf(body, sizeof body,
                     "{\"logGroups\":[{\"logGroupName\":\"%s\","
                     "\"retentionInDays\":%d,\"storedBytes\":0}],"
                     "\"nextToken\":\"x\"}",
                     best->name, best->retention);
        else
            snprintf(body, sizeof body,
                     "{\"logGroups\":[{\"logGroupName\":\"%s\"}]}", best->name);
        return answer_with(out, LF_AWS_OK, 200, NULL, NULL, body);
    }
    case OP_RETENTION: {
        fgroup *x = find_group(f, c->account, g);
        if (!x)
            return error_answer(out, "ResourceNotFoundException",
                                "The specified log group does not exist.");
        x->retention =
            (int)json_integer_value(json_object_get(req, "retentionInDays"));
        return answer_with(out, LF_AWS_OK, 200, NULL, NULL, "");
    }
    }
    return error_answer(out, "UnknownOperationException", "no such op");
}

static lf_aws_class fk_call(const lf_host *h, lf_aws_creds *cr,
                            const lf_aws_request *rq, lf_aws_result *out)
{
    fake *f = F(h);
    fcreds *c = (fcreds *)cr;
    memset(out, 0, sizeof *out);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(rq->method, "POST");
    ck_assert_str_eq(rq->service, "logs");
    ck_assert_str_eq(rq->url, URL);
    const char *target = NULL, *ctype = NULL;
    for (size_t i = 0; i < rq->n_headers; i++) {
        if (strcmp(rq->headers[i].name, "X-Amz-Target") == 0)
            target = rq->headers[i].value;
        if (strcmp(rq->headers[i].name, "Content-Type") == 0)
            ctype = rq->headers[i].value;
    }
    ck_assert_ptr_nonnull(target);
    ck_assert_str_eq(ctype, "application/x-amz-json-1.1");
    ck_assert(strncmp(target, "Logs_20140328.", 14) == 0);
    int op = OP_OTHER;
    for (int i = 0; OPS[i]; i++)
        if (strcmp(target + 14, OPS[i]) == 0)
            op = i;
    json_error_t jerr;
    json_t *req = json_loadb(rq->body, rq->body_len, 0, &jerr);
    ck_assert_msg(req != NULL, "request body is not JSON: %s", jerr.text);

    pthread_mutex_lock(&f->lock);
    f->calls[op]++;
    f->inflight++;
    if (f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    int delay = f->call_delay_ms;
    pthread_mutex_unlock(&f->lock);
    if (delay)
        usleep((useconds_t)delay * 1000);
    pthread_mutex_lock(&f->lock);
    lf_aws_class cls = fk_call_locked(f, c, op, req, out);
    f->inflight--;
    pthread_mutex_unlock(&f->lock);
    json_decref(req);
    return cls;
}

static size_t fk_header(const lf_host *h, const lf_aws_result *r,
                        const char *name, char *out, size_t cap)
{
    (void)h, (void)r, (void)name, (void)out, (void)cap;
    return (size_t)-1;
}

static void fk_result_free(const lf_host *h, lf_aws_result *r)
{
    (void)h;
    free(r->priv);
    r->priv = NULL;
    r->body = NULL;
}

static fake *fake_new(void)
{
    fake *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->log = calloc(1, 1u << 20);
    pthread_mutex_init(&f->lock, NULL);
    f->pub.abi_version = LF_SINK_ABI_VERSION;
    f->pub.struct_size = sizeof(lf_host);
    f->pub.log = fk_log;
    f->pub.counter_add = fk_counter;
    f->pub.to_json = fk_to_json;
    f->pub.field = fk_field;
    f->pub.now_ns = fk_now;
    f->pub.mono_ns = fk_mono;
    f->pub.priv = f;
    f->pub.aws_creds_acquire = fk_acquire;
    f->pub.aws_creds_release = fk_release;
    f->pub.aws_call = fk_call;
    f->pub.aws_result_header = fk_header;
    f->pub.aws_result_free = fk_result_free;
    f->now_ns = NOW_NS;
    f->reject_old_before_ms = INT64_MIN;
    return f;
}

static void fake_scratch_reset(fake *f)
{
    while (f->scr) {
        scratch *n = f->scr->next;
        free(f->scr);
        f->scr = n;
    }
}

static void fake_free(fake *f)
{
    fake_scratch_reset(f);
    for (size_t i = 0; i < f->n_streams; i++) {
        for (size_t j = 0; j < f->streams[i].n; j++)
            free(f->streams[i].ev[j].msg);
        free(f->streams[i].ev);
    }
    free(f->streams);
    free(f->settled);
    free(f->log);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ---- records ------------------------------------------------------------ */

typedef struct recs {
    rec_t *r;
    lf_record *lr;
    uint8_t (*ids)[16];
    size_t n, cap;
} recs;

static char *dupz(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A record of `tenant` in `account` (NULL: none) at `ts_ns`. */
static rec_t *add_rec(recs *rs, const char *tenant, const char *account,
                      int64_t ts_ns, const char *prompt)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
        rs->lr = realloc(rs->lr, rs->cap * sizeof *rs->lr);
        rs->ids = realloc(rs->ids, rs->cap * sizeof *rs->ids);
        ck_assert(rs->r && rs->lr && rs->ids);
        for (size_t i = 0; i < rs->n; i++) {
            rs->lr[i].internal = &rs->r[i];
            rs->lr[i].payload = rs->ids[i];
            rs->r[i].record_id.data = rs->ids[i];
        }
    }
    size_t i = rs->n++;
    rec_t *r = &rs->r[i];
    logferry__v1__invocation_record__init(r);
    for (int k = 0; k < 16; k++)
        rs->ids[i][k] = (uint8_t)((i >> (8 * (k % 4))) + (unsigned)k);
    r->record_id.data = rs->ids[i];
    r->record_id.len = 16;
    r->event_time_ns = ts_ns;
    r->tenant_id = dupz(tenant);
    r->account_id = dupz(account);
    r->app = dupz("chat");
    r->model_id = dupz("anthropic.claude-3-haiku");
    r->input_tokens = 100 + i % 7;
    r->output_tokens = 20 + i % 5;
    r->latency_ms = (uint32_t)(300 + i % 11);
    r->status = LOGFERRY__V1__STATUS__STATUS_OK;
    char p[64];
    snprintf(p, sizeof p, "prompt %zu", i);
    r->prompt_text = dupz(prompt ? prompt : p);
    lf_record *lr = &rs->lr[i];
    memset(lr, 0, sizeof *lr);
    lr->payload = rs->ids[i]; /* unique per record: settle checks it */
    lr->len = 16;
    lr->event_time_ns = ts_ns;
    lr->pos.segment = "seg.lfs";
    lr->pos.offset = i;
    lr->internal = r;
    return r;
}

static void recs_free(recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].tenant_id);
        free(rs->r[i].account_id);
        free(rs->r[i].app);
        free(rs->r[i].model_id);
        free(rs->r[i].prompt_text);
    }
    free(rs->r);
    free(rs->lr);
    free(rs->ids);
    memset(rs, 0, sizeof *rs);
}

static char *acct_of(int t)
{
    static __thread char b[8][16];
    static __thread int k;
    char *p = b[k++ % 8];
    snprintf(p, 16, "%012lld", 100000000001LL + t);
    return p;
}

/* ---- config ------------------------------------------------------------- */

typedef struct kv {
    const char *k, *v;
} kv;

static int64_t parse_duration(const char *s)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (strcmp(end, "ms") == 0 || !*end)
        return n;
    if (strcmp(end, "s") == 0)
        return n * 1000;
    if (strcmp(end, "m") == 0)
        return n * 60000;
    if (strcmp(end, "h") == 0)
        return n * 3600000;
    return n * 86400000;
}

/* Values for cwl_keys: `set` over the defaults, as the agent fills them.
 * The common test settings come first; `set` may override them. */
static lf_conf_value *conf_of(const kv *set)
{
    static const kv base[] = {
        {"region", "us-east-1"},
        {"endpoint", "http://127.0.0.1:9"},
        {"log_group", "/llm/${tenant_id}"},
        {"log_stream", "${app}"},
        {"role_arn", "arn:aws:iam::${account_id}:role/LogWriter"},
        {"external_id", "ext-${account_id}"},
        {"create_group", "true"},
        {"flush_interval", "0"},
        {NULL, NULL}};
    lf_conf_value *v = calloc(K_COUNT, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int k = 0; k < K_COUNT; k++) {
        const lf_conf_key *key = &cwl_keys[k];
        const char *text = key->def;
        int present = 0;
        for (const kv *p = base; p->k; p++)
            if (strcmp(p->k, key->name) == 0)
                text = p->v, present = 1;
        for (const kv *p = set; p && p->k; p++)
            if (strcmp(p->k, key->name) == 0)
                text = p->v, present = 1;
        v[k].present = present;
        if (!text)
            continue;
        switch (key->type) {
        case LF_CONF_BOOL:
            v[k].b = strcmp(text, "true") == 0;
            v[k].i = v[k].b;
            break;
        case LF_CONF_INT:
        case LF_CONF_SIZE:
            v[k].i = strtoll(text, NULL, 10);
            break;
        case LF_CONF_DURATION:
            v[k].i = parse_duration(text);
            break;
        case LF_CONF_STRING:
            v[k].s = text;
            break;
        case LF_CONF_ENUM:
            for (int e = 0; key->enum_values[e]; e++)
                if (strcmp(key->enum_values[e], text) == 0) {
                    v[k].i = e;
                    v[k].s = key->enum_values[e];
                }
            ck_assert_ptr_nonnull(v[k].s);
            break;
        case LF_CONF_STRLIST: {
            const char **l = calloc(8, sizeof *l);
            char *copy = strdup(text), *save;
            size_t n = 0;
            for (char *t = strtok_r(copy, ",", &save); t && n < 7;
                 t = strtok_r(NULL, ",", &save))
                l[n++] = t;
            v[k].list = l;
            v[k].n = n;
            break;
        }
        }
    }
    return v;
}

static void conf_free(lf_conf_value *v)
{
    if (v[K_TAGS].list) {
        free((void *)v[K_TAGS].list[0]);
        free((void *)v[K_TAGS].list);
    }
    free(v);
}

typedef struct sut {
    fake *f;
    lf_conf_value *v;
    void *inst;
    uint8_t *verdict;
    const char *reason;
    uint32_t retry_after_ms;
} sut;

/* With `hold`, the fake host settles and lends an instance_dir (a fresh
 * directory under $TMPDIR), so the sink may hold records. */
static sut *sut_make(const kv *set, int hold)
{
    sut *t = calloc(1, sizeof *t);
    t->f = fake_new();
    if (hold) {
        const char *tmp = getenv("TMPDIR");
        snprintf(t->f->dir, sizeof t->f->dir, "%s/cwl-hold-test-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(t->f->dir));
        t->f->pub.instance_dir = t->f->dir;
        t->f->pub.settle = fk_settle;
    }
    t->v = conf_of(set);
    char err[512] = "";
    const lf_sink_ops *o = logferry_sink_module();
    int rc = o->create(t->v, &t->f->pub, &t->inst, err, sizeof err);
    ck_assert_msg(rc == 0, "create: %s", err);
    return t;
}

static sut *sut_new(const kv *set)
{
    return sut_make(set, 0);
}

/* Entries in a directory besides . and .. */
static size_t dir_entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void sut_free(sut *t)
{
    logferry_sink_module()->destroy(t->inst);
    if (t->f->dir[0]) {
        /* held files are unlinked when made: nothing is ever left */
        ck_assert_uint_eq(dir_entries(t->f->dir), 0);
        rmdir(t->f->dir);
    }
    /* every credentials handle acquired was released */
    ck_assert_uint_eq(t->f->live_creds, 0);
    fake_free(t->f);
    conf_free(t->v);
    free(t->verdict);
    free(t);
}

static lf_deliver_status sut_deliver(sut *t, recs *rs, size_t from, size_t n)
{
    free(t->verdict);
    t->verdict = calloc(n ? n : 1, 1);
    lf_batch b = {rs->lr + from, n, t->verdict, NULL, 0};
    lf_deliver_status st = logferry_sink_module()->deliver(t->inst, &b);
    fake_scratch_reset(t->f);
    t->reason = b.fail_reason;
    t->retry_after_ms = b.retry_after_ms;
    if (st == LF_DELIVER_RETRY)
        memset(t->verdict, LF_REC_RETRY, n);
    else if (st == LF_DELIVER_FAIL)
        memset(t->verdict, LF_REC_FAIL, n);
    return st;
}

static size_t count_verdict(const sut *t, size_t n, int v)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += t->verdict[i] == v;
    return k;
}

/* Stream content checks: every event is a record of this tenant, in time
 * order; returns the number of events. */
static size_t check_stream(fake *f, const char *account, const char *group,
                           const char *stream, const char *tenant)
{
    fstream *s = find_stream(f, account, group, stream);
    ck_assert_msg(s != NULL, "no stream %s/%s in %s", group, stream, account);
    char want[96];
    snprintf(want, sizeof want, "\"tenant_id\":\"%s\"", tenant);
    for (size_t i = 0; i < s->n; i++) {
        ck_assert_msg(strstr(s->ev[i].msg, want) != NULL,
                      "a record of another tenant in %s: %.200s", group,
                      s->ev[i].msg);
        if (i)
            ck_assert_int_le(s->ev[i - 1].ts, s->ev[i].ts);
    }
    return s->n;
}

/* ---- internals: planner, templates, JSON ------------------------------- */

START_TEST(test_plan_split_limits)
{
    /* Random sizes, times spread over 3 days, unsorted. */
    size_t n = 30000;
    cwl_event *ev = calloc(n, sizeof *ev);
    cwl_chunk *ch = calloc(n, sizeof *ch);
    srand(7);
    for (size_t i = 0; i < n; i++) {
        ev[i].rec = (uint32_t)i;
        ev[i].ts_ms = (int64_t)(rand() % (3 * 86400)) * 1000;
        ev[i].len = (uint32_t)(i % 97 == 0 ? 200000 + rand() % 50000
                                           : 1 + rand() % 400);
    }
    cwl_plan_sort(ev, n);
    for (size_t i = 1; i < n; i++) {
        ck_assert_int_le(ev[i - 1].ts_ms, ev[i].ts_ms);
        if (ev[i - 1].ts_ms == ev[i].ts_ms)
            ck_assert_uint_lt(ev[i - 1].rec, ev[i].rec); /* stable */
    }
    size_t nc =
        cwl_plan_split(ev, n, CWL_MAX_EVENTS, CWL_MAX_REQUEST_BYTES, ch);
    size_t covered = 0;
    for (size_t c = 0; c < nc; c++) {
        ck_assert_uint_eq(ch[c].start, covered);
        ck_assert_uint_gt(ch[c].end, ch[c].start);
        size_t bytes = 0;
        for (size_t i = ch[c].start; i < ch[c].end; i++)
            bytes += ev[i].len + 26;
        ck_assert_uint_le(bytes, 1048576);
        ck_assert_uint_le(ch[c].end - ch[c].start, 10000);
        ck_assert_int_le(ev[ch[c].end - 1].ts_ms - ev[ch[c].start].ts_ms,
                         24LL * 3600 * 1000);
        covered = ch[c].end;
    }
    ck_assert_uint_eq(covered, n);

    /* Exactly at the limits: fits; one byte more: split. */
    for (size_t i = 0; i < 2; i++) {
        ev[i].ts_ms = 0;
        ev[i].len = 1048576 / 2 - 26;
    }
    ck_assert_uint_eq(cwl_plan_split(ev, 2, 10000, 1048576, ch), 1);
    ev[1].len++;
    ck_assert_uint_eq(cwl_plan_split(ev, 2, 10000, 1048576, ch), 2);
    ev[0].len = CWL_MAX_EVENT_BYTES;
    ck_assert_uint_eq(cwl_plan_split(ev, 1, 10000, 1048576, ch), 1);
    /* 10,000 events per request, not 10,001 */
    for (size_t i = 0; i < 10001; i++) {
        ev[i].ts_ms = (int64_t)i;
        ev[i].len = 1;
    }
    ck_assert_uint_eq(cwl_plan_split(ev, 10001, 10000, 1048576, ch), 2);
    ck_assert_uint_eq(ch[0].end, 10000);
    /* span: exactly 24 h together, 24 h + 1 ms apart */
    ev[0].ts_ms = 0;
    ev[1].ts_ms = 24LL * 3600 * 1000;
    ev[2].ts_ms = 24LL * 3600 * 1000 + 1;
    ck_assert_uint_eq(cwl_plan_split(ev, 3, 10000, 1048576, ch), 2);
    ck_assert_uint_eq(ch[0].end, 2);
    free(ev);
    free(ch);
}
END_TEST

START_TEST(test_templates)
{
    char err[256], why[128], out[600];
    ck_assert_ptr_null(
        cwl_tmpl_parse("/x/${tenant", CWL_CS_GROUP, "h", err, 256));
    ck_assert_ptr_null(
        cwl_tmpl_parse("/x/${prompt_text}", CWL_CS_GROUP, "h", err, 256));
    ck_assert_ptr_nonnull(strstr(err, "unknown or unusable field"));
    ck_assert_ptr_null(cwl_tmpl_parse("/x/${}", CWL_CS_GROUP, "h", err, 256));

    fake *f = fake_new();
    recs rs = {0};
    add_rec(&rs, "t-1", "100000000001", NOW_NS, NULL);
    add_rec(&rs, "", "100000000001", NOW_NS, NULL);
    add_rec(&rs, "a/b", "100000000001:role/x", NOW_NS, NULL);
    cwl_tmpl *g = cwl_tmpl_parse("/llm/${tenant_id}/${date}", CWL_CS_GROUP, "h",
                                 err, 256);
    cwl_tmpl *r = cwl_tmpl_parse("arn:aws:iam::${account_id}:role/W",
                                 CWL_CS_ARN, "h", err, 256);
    cwl_tmpl *h =
        cwl_tmpl_parse("${hostname}-x", CWL_CS_STREAM, "box", err, 256);
    ck_assert(g && r && h);
    ck_assert(!lf_tmpl_is_static(g) && lf_tmpl_is_static(h));
    ck_assert_int_gt(
        lf_tmpl_expand(g, &f->pub, &rs.lr[0], out, 600, why, sizeof why), 0);
    ck_assert_str_eq(out, "/llm/t-1/2025-11-24");
    ck_assert_int_gt(
        lf_tmpl_expand(h, &f->pub, &rs.lr[0], out, 600, why, sizeof why), 0);
    ck_assert_str_eq(out, "box-x");
    /* empty field: unroutable, never "/llm//..." */
    ck_assert_int_eq(
        lf_tmpl_expand(g, &f->pub, &rs.lr[1], out, 600, why, sizeof why), -1);
    ck_assert_str_eq(why, "record has no tenant_id");
    /* "a/b" is a valid group name character-wise: it stays */
    ck_assert_int_gt(
        lf_tmpl_expand(g, &f->pub, &rs.lr[2], out, 600, why, sizeof why), 0);
    /* an account_id that would change the ARN's structure: refused */
    ck_assert_int_eq(
        lf_tmpl_expand(r, &f->pub, &rs.lr[2], out, 600, why, sizeof why), -1);
    ck_assert_ptr_nonnull(strstr(why, "not allowed in a role ARN"));
    /* too long for the part */
    ck_assert_int_eq(
        lf_tmpl_expand(g, &f->pub, &rs.lr[0], out, 10, why, sizeof why), -1);
    ck_assert(
        lf_valid_role_arn("arn:aws:iam::100000000001:role/LogWriter", 40));
    ck_assert(
        !lf_valid_role_arn("arn:aws:iam::10000000000:role/LogWriter", 39));
    ck_assert(!cwl_valid_group("a b", 3));
    ck_assert(!cwl_valid_stream("a:b", 3));
    lf_tmpl_free(g);
    lf_tmpl_free(r);
    lf_tmpl_free(h);
    fake_scratch_reset(f);
    recs_free(&rs);
    fake_free(f);
}
END_TEST

START_TEST(test_json_strings)
{
    sbuf b = {0};
    ck_assert_int_eq(
        cwl_json_str(&b, "a\"\\\n\x01\xff\xc3\xa9\xed\xa0\x80", 11), 0);
    ck_assert_int_eq(sbuf_put(&b, "", 1), 0);
    ck_assert_str_eq(b.p, "\"a\\\"\\\\\\n\\u0001\xef\xbf\xbd\xc3\xa9"
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* The fast escaper against the careful one and against jansson, on
       random valid UTF-8 with quotes, backslashes and control bytes at
       every offset of the 8-byte blocks. */
    static const char *const parts[] = {"a",
                                        "Z",
                                        "\"",
                                        "\\",
                                        "\n",
                                        "\x01",
                                        "\x1f",
                                        " ",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "0123456789abcdef"};
    srand(3);
    for (int round = 0; round < 2000; round++) {
        char in[2048];
        size_t n = 0, want = (size_t)(rand() % 300);
        while (n < want) {
            const char *p = parts[rand() % 12];
            memcpy(in + n, p, strlen(p));
            n += strlen(p);
        }
        sbuf fast = {0}, slow = {0};
        ck_assert_int_eq(cwl_json_str_utf8(&fast, in, n), 0);
        ck_assert_int_eq(cwl_json_str(&slow, in, n), 0);
        ck_assert_uint_eq(fast.len, slow.len);
        ck_assert(memcmp(fast.p, slow.p, fast.len) == 0);
        json_error_t e;
        json_t *j = json_loadb(fast.p, fast.len, JSON_DECODE_ANY, &e);
        ck_assert_msg(j != NULL, "round %d: %s", round, e.text);
        ck_assert_uint_eq(json_string_length(j), n);
        ck_assert(memcmp(json_string_value(j), in, n) == 0);
        json_decref(j);
        sbuf_free(&fast);
        sbuf_free(&slow);
    }
    char num[24];
    ck_assert(memcmp(num, "-9223372036854775808",
                     (size_t)(cwl_fmt_i64(num, INT64_MIN) - num)) == 0);
    *cwl_fmt_i64(num, 0) = '\0';
    ck_assert_str_eq(num, "0");
    *cwl_fmt_i64(num, 1764000000123) = '\0';
    ck_assert_str_eq(num, "1764000000123");

    /* cut on a character boundary: "é" (2 bytes) is not split */
    ck_assert_uint_eq(cwl_utf8_cut("ab\xc3\xa9", 4, 3), 2);
    ck_assert_uint_eq(cwl_utf8_cut("ab\xc3\xa9", 4, 4), 4);
    ck_assert_uint_eq(cwl_utf8_cut("\xf0\x9f\x98\x80z", 5, 3), 0);
    /* capped buffers refuse to grow past max (which counts the NUL) */
    sbuf c = {.max = 9};
    ck_assert_int_eq(sbuf_put(&c, "12345678", 8), 0);
    ck_assert_int_eq(sbuf_put(&c, "9", 1), -1);
    sbuf_free(&b);
    sbuf_free(&c);
}
END_TEST

/* ---- deliver ------------------------------------------------------------ */

START_TEST(test_many_tenants_each_in_own_account)
{
    sut *t = sut_new((const kv[]){{"concurrency", "4"}, {NULL, NULL}});
    recs rs = {0};
    srand(11);
    int tenants = 20, per = 50;
    for (int i = 0; i < tenants * per; i++) {
        int tn = rand() % tenants;
        char ten[32];
        snprintf(ten, sizeof ten, "tenant-%d", tn);
        /* out of order within a minute */
        add_rec(&rs, ten, acct_of(tn), NOW_NS - (rand() % 60000) * MS, NULL);
    }
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_OK);
    size_t total = 0;
    for (int tn = 0; tn < tenants; tn++) {
        char g[64], ten[32];
        snprintf(ten, sizeof ten, "tenant-%d", tn);
        snprintf(g, sizeof g, "/llm/%s", ten);
        total += check_stream(t->f, acct_of(tn), g, "chat", ten);
        /* and nowhere else: no group of this name in another account */
        for (size_t i = 0; i < t->f->n_groups; i++)
            if (strcmp(t->f->groups[i].name, g) == 0)
                ck_assert_str_eq(t->f->groups[i].account, acct_of(tn));
    }
    ck_assert_uint_eq(total, rs.n);
    ck_assert_uint_eq(t->f->violations, 0);
    ck_assert_uint_eq(t->f->calls[OP_PUT], (unsigned)tenants);
    ck_assert_uint_eq(t->f->calls[OP_CGROUP], (unsigned)tenants);
    ck_assert_uint_le(t->f->max_inflight, 4);
    /* CreateLogStream, "no group", CreateLogGroup, CreateLogStream */
    ck_assert_uint_eq(t->f->calls[OP_CSTREAM], 2u * tenants);
    /* a second batch reuses state: no more create calls */
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 100), LF_DELIVER_OK);
    ck_assert_uint_eq(t->f->calls[OP_CSTREAM], 2u * tenants);
    ck_assert_uint_eq(t->f->acquired, (unsigned)tenants);
    ck_assert_ptr_null(strstr(t->f->log, "prompt "));
    ck_assert_ptr_null(strstr(t->f->log, "ext-1"));
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_large_batch_split_within_limits)
{
    sut *t = sut_new(NULL);
    recs rs = {0};
    /* 12,000 events over 30 h, ~2 KB each: splits by count, bytes and
       span, all within limits. */
    char big[2100];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 12000; i++)
        add_rec(&rs, "solo", acct_of(0),
                NOW_NS -
                    (int64_t)(30LL * 3600 * 1000 * (12000 - i) / 12000) * MS,
                i % 3 ? "short" : big);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_OK);
    ck_assert_uint_eq(t->f->violations, 0);
    ck_assert_uint_eq(
        check_stream(t->f, acct_of(0), "/llm/solo", "chat", "solo"), 12000);
    ck_assert_uint_ge(t->f->calls[OP_PUT], 9); /* 8+ MB of messages */
    ck_assert_uint_eq(counter(t->f, "put_events"), 12000);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_group_deleted_is_recreated)
{
    sut *t = sut_new((const kv[]){{"retention_days", "30"},
                                  {"kms_key_id", "arn:aws:kms:k"},
                                  {"tags", "team=llm,env=test"},
                                  {"log_group_class", "INFREQUENT_ACCESS"},
                                  {NULL, NULL}});
    recs rs = {0};
    for (int i = 0; i < 10; i++)
        add_rec(&rs, "t0", acct_of(0), NOW_NS - (10 - i) * 1000 * MS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 5), LF_DELIVER_OK);
    fgroup *g = find_group(t->f, acct_of(0), "/llm/t0");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->retention, 30);
    ck_assert_str_eq(g->kms, "arn:aws:kms:k");
    ck_assert_str_eq(g->klass, "INFREQUENT_ACCESS");
    ck_assert_str_eq(g->tags, "{\"env\":\"test\",\"team\":\"llm\"}");

    delete_group(t->f, acct_of(0), "/llm/t0");
    ck_assert_int_eq(sut_deliver(t, &rs, 5, 5), LF_DELIVER_OK);
    g = find_group(t->f, acct_of(0), "/llm/t0");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->retention, 30);
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      5);
    ck_assert_uint_eq(counter(t->f, "groups_created"), 2);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_missing_group_without_create_fails)
{
    sut *t = sut_new((const kv[]){{"create_group", "false"}, {NULL, NULL}});
    add_group(t->f, acct_of(1), "/llm/t1", 0);
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    add_rec(&rs, "t1", acct_of(1), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 2), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t->verdict[0], LF_REC_FAIL);
    ck_assert_int_eq(t->verdict[1], LF_REC_OK);
    ck_assert_ptr_nonnull(
        strstr(t->reason, "log group /llm/t0 does not exist"));
    ck_assert_ptr_nonnull(
        strstr(t->reason, "arn:aws:iam::100000000001:role/LogWriter"));
    ck_assert_ptr_nonnull(strstr(t->reason, "create_group is off"));
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_throttled_tenant_retries_alone)
{
    sut *t = sut_new(NULL);
    recs rs = {0};
    for (int i = 0; i < 30; i++)
        add_rec(&rs, i % 3 ? "ok" : "slow", acct_of(i % 3 ? 1 : 2),
                NOW_NS - (30 - i) * MS, NULL);
    snprintf(t->f->throttle_account, 16, "%s", acct_of(2));
    t->f->throttle_left = 3;
    t->f->throttle_retry_ms = 1600;
    /* "slow" is throttled from its first call (CreateLogStream) on;
       "ok" goes through. */
    lf_deliver_status st = sut_deliver(t, &rs, 0, rs.n);
    ck_assert_int_eq(st, LF_DELIVER_PARTIAL);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_RETRY), 10);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_OK), 20);
    ck_assert_uint_eq(t->retry_after_ms, 1600);
    /* The core offers only the RETRY ones again, until accepted. */
    int rounds = 0;
    for (rounds = 1; rounds < 10; rounds++) {
        recs again = {0};
        for (size_t i = 0; i < rs.n; i++)
            if (i % 3 == 0)
                add_rec(&again, "slow", acct_of(2), rs.r[i].event_time_ns,
                        NULL);
        st = sut_deliver(t, &again, 0, again.n);
        recs_free(&again);
        if (st == LF_DELIVER_OK)
            break;
        ck_assert_int_eq(st, LF_DELIVER_RETRY);
    }
    ck_assert_int_eq(rounds, 3);
    ck_assert_int_eq(st, LF_DELIVER_OK);
    ck_assert_uint_eq(check_stream(t->f, acct_of(1), "/llm/ok", "chat", "ok"),
                      20);
    ck_assert_uint_eq(
        check_stream(t->f, acct_of(2), "/llm/slow", "chat", "slow"), 10);
    ck_assert_uint_ge(counter(t->f, "throttled"), 1);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_access_denied_names_role_not_external_id)
{
    sut *t = sut_new(
        (const kv[]){{"external_id", "ext-${tenant_id}"}, {NULL, NULL}});
    t->f->check_extid = 1;
    recs rs = {0};
    /* tenant_id equal to the account: right ExternalId; else wrong */
    for (int i = 0; i < 40; i++) {
        int bad = i % 4 == 0;
        add_rec(&rs, bad ? "wrong" : acct_of(5), acct_of(bad ? 6 : 5),
                NOW_NS - (40 - i) * MS, NULL);
    }
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_PARTIAL);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_FAIL), 10);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_OK), 30);
    for (int i = 0; i < 40; i += 4)
        ck_assert_int_eq(t->verdict[i], LF_REC_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "AccessDenied"));
    ck_assert_ptr_nonnull(
        strstr(t->reason, "arn:aws:iam::100000000007:role/LogWriter"));
    ck_assert_ptr_nonnull(strstr(t->reason, "/llm/wrong"));
    ck_assert_ptr_null(strstr(t->reason, "ext-wrong"));
    ck_assert_ptr_null(strstr(t->f->log, "ext-"));
    ck_assert_uint_ge(counter(t->f, "access_denied"), 1);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_credentials_trouble_is_retried)
{
    /* The host pacing a refresh (CredentialsRefused, LF_AWS_AUTH) is not
       the records' fault: RETRY, then accepted. */
    sut *t = sut_new(NULL);
    add_group(t->f, acct_of(0), "/llm/t0", 0);
    t->f->creds_refused_left = 2;
    recs rs = {0};
    for (int i = 0; i < 5; i++)
        add_rec(&rs, "t0", acct_of(0), NOW_NS - (5 - i) * MS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 5), LF_DELIVER_RETRY);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 5), LF_DELIVER_RETRY);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 5), LF_DELIVER_OK);
    ck_assert_uint_eq(counter(t->f, "credentials_retry"), 2);
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      5);
    ck_assert_ptr_nonnull(strstr(t->f->log, "credentials refused"));
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_identity_refused_by_host)
{
    sut *t = sut_new(NULL);
    t->f->refuse_acquire = 1;
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 1), LF_DELIVER_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "role ARN refused by the test"));
    ck_assert_ptr_nonnull(strstr(t->reason, "/llm/t0"));
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_invalid_event_isolated_by_splitting)
{
    sut *t = sut_new(NULL);
    t->f->poison = "POISON";
    recs rs = {0};
    for (int i = 0; i < 1000; i++)
        add_rec(&rs, "t0", acct_of(0), NOW_NS - (1000 - i) * MS,
                i == 637 ? "POISON" : NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_PARTIAL);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_FAIL), 1);
    ck_assert_int_eq(t->verdict[637], LF_REC_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "InvalidParameterException"));
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      999);
    /* ~2 log2(1000) calls, not 1000 */
    ck_assert_uint_le(t->f->calls[OP_PUT], 25);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_rejected_events_fail_never_retry)
{
    sut *t = sut_new(NULL);
    /* The service refuses events older than an hour (as if its clock
       differed from ours). */
    t->f->reject_old_before_ms = (NOW_NS / MS) - 3600 * 1000;
    recs rs = {0};
    for (int i = 0; i < 10; i++)
        add_rec(&rs, "t0", acct_of(0), NOW_NS - (int64_t)(10 - i) * 600000 * MS,
                NULL);
    /* events 0..3 are 100..70 min old: refused */
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_PARTIAL);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(t->verdict[i], i <= 3 ? LF_REC_FAIL : LF_REC_OK);
    ck_assert_uint_eq(counter(t->f, "rejected_too_old"), 4);
    ck_assert_ptr_nonnull(strstr(t->reason, "older than 14 days"));
    recs_free(&rs);
    sut_free(t);

    /* out_of_range = drop: counted, accepted, not dead-lettered */
    t = sut_new((const kv[]){{"out_of_range", "drop"}, {NULL, NULL}});
    t->f->reject_old_before_ms = (NOW_NS / MS) - 3600 * 1000;
    for (int i = 0; i < 10; i++)
        add_rec(&rs, "t0", acct_of(0), NOW_NS - (int64_t)(10 - i) * 600000 * MS,
                NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_OK);
    ck_assert_uint_eq(counter(t->f, "rejected_too_old"), 4);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_out_of_range_not_sent)
{
    sut *t = sut_new(NULL);
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS - 15LL * 86400 * 1000000000LL, NULL);
    add_rec(&rs, "t0", acct_of(0), NOW_NS + 3LL * 3600 * 1000000000LL, NULL);
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 3), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t->verdict[0], LF_REC_FAIL);
    ck_assert_int_eq(t->verdict[1], LF_REC_FAIL);
    ck_assert_int_eq(t->verdict[2], LF_REC_OK);
    ck_assert_uint_eq(counter(t->f, "events_too_old"), 1);
    ck_assert_uint_eq(counter(t->f, "events_too_new"), 1);
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      1);
    ck_assert_ptr_nonnull(strstr(t->reason, "2 different refusals"));
    recs_free(&rs);
    sut_free(t);

    /* retention shorter than 14 days: older than it is not sent either */
    t = sut_new((const kv[]){{"retention_days", "3"}, {NULL, NULL}});
    add_rec(&rs, "t0", acct_of(0), NOW_NS - 4LL * 86400 * 1000000000LL, NULL);
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 2), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t->verdict[0], LF_REC_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "3-day retention"));
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      1);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_oversize_truncate_or_dead_letter)
{
    size_t big = 2u * 1024 * 1024;
    char *p = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)('a' + i % 26);
    /* a multi-byte character right where the cut falls */
    memcpy(p + 1048400, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 9);
    p[big] = '\0';
    sut *t = sut_new(NULL);
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS - MS, p);
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 2), LF_DELIVER_OK);
    fstream *s = find_stream(t->f, acct_of(0), "/llm/t0", "chat");
    ck_assert_uint_eq(s->n, 2);
    ck_assert_uint_le(s->ev[0].len, CWL_MAX_EVENT_BYTES);
    ck_assert_uint_gt(s->ev[0].len, CWL_MAX_EVENT_BYTES - 100);
    ck_assert_ptr_nonnull(strstr(s->ev[0].msg, "[truncated by logferry: "));
    ck_assert_uint_eq(counter(t->f, "events_truncated"), 1);
    ck_assert_uint_eq(t->f->violations, 0);
    recs_free(&rs);
    sut_free(t);

    t = sut_new((const kv[]){{"oversize", "dead_letter"}, {NULL, NULL}});
    add_rec(&rs, "t0", acct_of(0), NOW_NS - MS, p);
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 2), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t->verdict[0], LF_REC_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "over the CloudWatch Logs limit"));
    ck_assert_uint_eq(counter(t->f, "events_oversize"), 1);
    recs_free(&rs);
    sut_free(t);
    free(p);
}
END_TEST

START_TEST(test_unroutable_never_reaches_another_tenant)
{
    sut *t = sut_new(NULL);
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    add_rec(&rs, "t9", NULL, NOW_NS, NULL);       /* no account */
    add_rec(&rs, NULL, acct_of(0), NOW_NS, NULL); /* no tenant */
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 3), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t->verdict[0], LF_REC_OK);
    ck_assert_int_eq(t->verdict[1], LF_REC_FAIL);
    ck_assert_int_eq(t->verdict[2], LF_REC_FAIL);
    ck_assert_ptr_nonnull(strstr(t->reason, "record has no account_id"));
    ck_assert_ptr_nonnull(strstr(t->reason, "record has no tenant_id"));
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      1);
    recs_free(&rs);
    sut_free(t);

    /* with a default destination: there, with the agent's own account */
    t = sut_new((const kv[]){{"default_log_group", "/llm/unassigned"},
                             {"default_log_stream", "${hostname}"},
                             {NULL, NULL}});
    add_group(t->f, OPS_ACCOUNT, "/llm/unassigned", 0);
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    add_rec(&rs, "t9", NULL, NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 2), LF_DELIVER_OK);
    ck_assert_uint_eq(counter(t->f, "records_to_default"), 1);
    char host[256];
    gethostname(host, sizeof host);
    check_stream(t->f, OPS_ACCOUNT, "/llm/unassigned", host, "t9");
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_retention_applied_to_existing_group)
{
    sut *t = sut_new((const kv[]){{"retention_days", "7"}, {NULL, NULL}});
    add_group(t->f, acct_of(0), "/llm/t0", 30);
    add_group(t->f, acct_of(0), "/llm/t0-other", 1); /* same prefix */
    add_group(t->f, acct_of(1), "/llm/t1", 7);
    add_group(t->f, acct_of(2), "/llm/t2", 0); /* never expire */
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
    add_rec(&rs, "t1", acct_of(1), NOW_NS, NULL);
    add_rec(&rs, "t2", acct_of(2), NOW_NS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 3), LF_DELIVER_OK);
    ck_assert_int_eq(find_group(t->f, acct_of(0), "/llm/t0")->retention, 7);
    ck_assert_int_eq(find_group(t->f, acct_of(0), "/llm/t0-other")->retention,
                     1);
    ck_assert_int_eq(find_group(t->f, acct_of(2), "/llm/t2")->retention, 7);
    ck_assert_uint_eq(t->f->calls[OP_RETENTION], 2);
    ck_assert_uint_eq(t->f->calls[OP_CGROUP], 0);
    ck_assert_ptr_nonnull(
        strstr(t->f->log, "retention of log group /llm/t0 "
                          "(arn:aws:iam::100000000001:role/LogWriter) changed "
                          "from 30 days to 7 days"));
    ck_assert_ptr_nonnull(strstr(t->f->log, "from never expire to 7 days"));
    /* checked once per group, not per batch */
    ck_assert_int_eq(sut_deliver(t, &rs, 0, 3), LF_DELIVER_OK);
    ck_assert_uint_eq(t->f->calls[OP_DESCRIBE], 3);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_parallel_streams_bounded)
{
    sut *t = sut_new((const kv[]){{"concurrency", "3"},
                                  {"log_stream", "${app}-${attributes.s}"},
                                  {NULL, NULL}});
    t->f->call_delay_ms = 20;
    recs rs = {0};
    for (int i = 0; i < 12; i++) {
        rec_t *r = add_rec(&rs, "t0", acct_of(0), NOW_NS, NULL);
        r->n_attributes = 1;
        r->attributes = malloc(sizeof *r->attributes);
        r->attributes[0] =
            malloc(sizeof(Logferry__V1__InvocationRecord__AttributesEntry));
        logferry__v1__invocation_record__attributes_entry__init(
            r->attributes[0]);
        char s[8];
        snprintf(s, sizeof s, "s%d", i % 6);
        r->attributes[0]->key = strdup("s");
        r->attributes[0]->value = strdup(s);
    }
    add_group(t->f, acct_of(0), "/llm/t0", 0);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_OK);
    ck_assert_uint_eq(t->f->max_inflight, 3);
    ck_assert_uint_eq(t->f->calls[OP_PUT], 6);
    for (size_t i = 0; i < rs.n; i++) {
        free(rs.r[i].attributes[0]->key);
        free(rs.r[i].attributes[0]->value);
        free(rs.r[i].attributes[0]);
        free(rs.r[i].attributes);
    }
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_state_bounded_and_credentials_released)
{
    sut *t = sut_new((const kv[]){{"state_max_entries", "16"}, {NULL, NULL}});
    recs rs = {0};
    for (int i = 0; i < 100; i++) {
        char ten[16];
        snprintf(ten, sizeof ten, "t%d", i);
        add_rec(&rs, ten, acct_of(i), NOW_NS, NULL);
    }
    for (int round = 0; round < 5; round++)
        ck_assert_int_eq(sut_deliver(t, &rs, (size_t)round * 20, 20),
                         LF_DELIVER_OK);
    cwl_sink *s = t->inst;
    ck_assert_uint_le(s->state.count, 16);
    ck_assert_uint_ge(counter(t->f, "state_evicted"), 80);
    ck_assert_uint_le(t->f->live_creds, 16);
    ck_assert_uint_eq(t->f->acquired, 100);
    recs_free(&rs);
    sut_free(t); /* checks every handle was released */
}
END_TEST

START_TEST(test_config_errors)
{
    static const struct {
        kv set[3];
        const char *msg;
    } cases[] = {
        {{{"retention_days", "10"}}, "retention_days: 10 is not a value"},
        {{{"log_group", "/x/${prompt_text}"}},
         "log_group: unknown or unusable field"},
        {{{"role_arn", NULL}, {"external_id", "x-${tenant_id}"}},
         "external_id: needs role_arn"},
        {{{"tags", "novalue"}}, "tags: \"novalue\" is not key=value"},
        {{{"endpoint", "ftp://x"}}, "endpoint: \"ftp://x\" is not"},
        {{{"default_log_group", "bad name"}}, "default_log_group:"},
        {{{"region", "us east"}}, "region:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fake *f = fake_new();
        lf_conf_value *v = conf_of(cases[i].set);
        if (!cases[i].set[0].v) /* a NULL value: unset the key */
            v[K_ROLE_ARN].s = NULL;
        void *inst = NULL;
        char err[512] = "";
        ck_assert_int_eq(
            logferry_sink_module()->create(v, &f->pub, &inst, err, sizeof err),
            -1);
        ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: %s", i,
                      err);
        conf_free(v);
        fake_free(f);
    }
    /* A host without the AWS services is refused, not crashed into. */
    fake *f = fake_new();
    f->pub.struct_size = offsetof(lf_host, aws_creds_acquire);
    lf_conf_value *v = conf_of(NULL);
    void *inst = NULL;
    char err[512] = "";
    ck_assert_int_eq(
        logferry_sink_module()->create(v, &f->pub, &inst, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "AWS services"));
    conf_free(v);
    fake_free(f);
}
END_TEST

/* ---- EMF against the schema --------------------------------------------- */

static int js_type_is(json_t *v, const char *t)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    return 0;
}

/* The JSON Schema keywords emf.schema.json uses. Returns NULL or a
 * description of the first violation (static buffer). */
static const char *js_check(json_t *schema, json_t *v, const char *path)
{
    static char err[512];
    json_t *k;
    if ((k = json_object_get(schema, "type")) && json_is_string(k) &&
        !js_type_is(v, json_string_value(k))) {
        snprintf(err, sizeof err, "%s: not of type %s", path,
                 json_string_value(k));
        return err;
    }
    if ((k = json_object_get(schema, "enum"))) {
        size_t i;
        json_t *e;
        int any = 0;
        json_array_foreach(k, i, e) any |= json_equal(e, v);
        if (!any) {
            snprintf(err, sizeof err, "%s: not in enum", path);
            return err;
        }
    }
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if ((k = json_object_get(schema, "minLength")) &&
            n < (size_t)json_integer_value(k))
            return snprintf(err, sizeof err, "%s: too short", path), err;
        if ((k = json_object_get(schema, "maxLength")) &&
            n > (size_t)json_integer_value(k))
            return snprintf(err, sizeof err, "%s: too long", path), err;
        if ((k = json_object_get(schema, "pattern"))) {
            int ec;
            PCRE2_SIZE eo;
            pcre2_code *re =
                pcre2_compile((PCRE2_SPTR)json_string_value(k),
                              PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
            ck_assert_ptr_nonnull(re);
            pcre2_match_data *md =
                pcre2_match_data_create_from_pattern(re, NULL);
            int rc = pcre2_match(re, (PCRE2_SPTR)json_string_value(v), n, 0, 0,
                                 md, NULL);
            pcre2_match_data_free(md);
            pcre2_code_free(re);
            if (rc < 0)
                return snprintf(err, sizeof err, "%s: does not match pattern",
                                path),
                       err;
        }
    }
    if (json_is_number(v) && (k = json_object_get(schema, "minimum")) &&
        json_number_value(v) < json_number_value(k))
        return snprintf(err, sizeof err, "%s: below minimum", path), err;
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if ((k = json_object_get(schema, "minItems")) &&
            n < (size_t)json_integer_value(k))
            return snprintf(err, sizeof err, "%s: too few items", path), err;
        if ((k = json_object_get(schema, "maxItems")) &&
            n > (size_t)json_integer_value(k))
            return snprintf(err, sizeof err, "%s: too many items", path), err;
        if ((k = json_object_get(schema, "items"))) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                char p[256];
                snprintf(p, sizeof p, "%s[%zu]", path, i);
                const char *r = js_check(k, e, p);
                if (r)
                    return r;
            }
        }
    }
    if (json_is_object(v)) {
        if ((k = json_object_get(schema, "required"))) {
            size_t i;
            json_t *e;
            json_array_foreach(k, i,
                               e) if (!json_object_get(v, json_string_value(e)))
            {
                snprintf(err, sizeof err, "%s: '%s' is required", path,
                         json_string_value(e));
                return err;
            }
        }
        if ((k = json_object_get(schema, "properties"))) {
            const char *name;
            json_t *sub;
            json_object_foreach(k, name, sub)
            {
                json_t *m = json_object_get(v, name);
                char p[256];
                snprintf(p, sizeof p, "%s.%s", path, name);
                const char *r = m ? js_check(sub, m, p) : NULL;
                if (r)
                    return r;
            }
        }
    }
    return NULL;
}

/* The specification's rules beyond the schema. */
static const char *emf_rules(json_t *root)
{
    static char err[256];
    json_t *dirs =
        json_object_get(json_object_get(root, "_aws"), "CloudWatchMetrics");
    size_t i, j, k;
    json_t *d, *set, *ref, *m;
    json_array_foreach(dirs, i, d)
    {
        json_array_foreach(json_object_get(d, "Dimensions"), j, set)
        {
            json_array_foreach(set, k, ref)
            {
                json_t *val = json_object_get(root, json_string_value(ref));
                if (!json_is_string(val))
                    return snprintf(err, sizeof err,
                                    "dimension %s: no string member",
                                    json_string_value(ref)),
                           err;
            }
        }
        json_array_foreach(json_object_get(d, "Metrics"), j, m)
        {
            const char *name = json_string_value(json_object_get(m, "Name"));
            json_t *val = json_object_get(root, name);
            int ok = json_is_number(val);
            if (json_is_array(val)) {
                ok = json_array_size(val) <= 100;
                json_t *x;
                json_array_foreach(val, k, x) ok &= json_is_number(x);
            }
            if (!ok)
                return snprintf(err, sizeof err, "metric %s: no number member",
                                name),
                       err;
        }
    }
    return NULL;
}

static json_t *load_schema(void)
{
    json_error_t e;
    json_t *s = json_load_file(LF_TEST_DATA "/emf/emf.schema.json", 0, &e);
    ck_assert_msg(s != NULL, "schema: %s", e.text);
    return s;
}

static const char *emf_valid(json_t *schema, json_t *doc)
{
    const char *r = js_check(schema, doc, "$");
    return r ? r : emf_rules(doc);
}

START_TEST(test_emf_schema_cases)
{
    /* The runner itself, on the cases in tests/data/emf. */
    json_t *schema = load_schema();
    const char *dirs[] = {"valid", "invalid"};
    int ran = 0;
    for (int v = 0; v < 2; v++) {
        char path[1024];
        snprintf(path, sizeof path, LF_TEST_DATA "/emf/%s", dirs[v]);
        DIR *dir = opendir(path);
        ck_assert_ptr_nonnull(dir);
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strstr(de->d_name, ".json"))
                continue;
            char f[1400];
            snprintf(f, sizeof f, "%s/%s", path, de->d_name);
            json_error_t e;
            json_t *doc = json_load_file(f, 0, &e);
            ck_assert_msg(doc != NULL, "%s: %s", f, e.text);
            const char *r = emf_valid(schema, doc);
            ck_assert_msg(v == 0 ? r == NULL : r != NULL, "%s/%s: %s", dirs[v],
                          de->d_name, r ? r : "accepted");
            json_decref(doc);
            ran++;
        }
        closedir(dir);
    }
    ck_assert_int_ge(ran, 9);
    printf("EMF schema cases: %d\n", ran);
    json_decref(schema);
}
END_TEST

START_TEST(test_emf_output_valid)
{
    sut *t = sut_new((const kv[]){{"format", "emf"},
                                  {"emf_namespace", "LLM/Invocations"},
                                  {"log_stream", "emf"},
                                  {NULL, NULL}});
    recs rs = {0};
    add_rec(&rs, "t0", acct_of(0), NOW_NS - 3 * MS, NULL);
    rec_t *r = add_rec(&rs, "t0", acct_of(0), NOW_NS - 2 * MS, "é\"\\\n");
    r->status = LOGFERRY__V1__STATUS__STATUS_THROTTLED;
    free(r->app);
    r->app = NULL; /* no App: the dimension still has a value */
    r = add_rec(&rs, "t0", acct_of(0), NOW_NS - MS, NULL);
    free(r->model_id);
    r->model_id = strdup("bad\xff\xfe utf8");
    lf_deliver_status st = sut_deliver(t, &rs, 0, 3);
    ck_assert_msg(st == LF_DELIVER_OK, "%d: %s", st, t->reason);
    json_t *schema = load_schema();
    size_t seen = 0;
    for (size_t si = 0; si < t->f->n_streams; si++) {
        fstream *s = &t->f->streams[si];
        for (size_t i = 0; i < s->n; i++) {
            json_error_t e;
            json_t *doc = json_loadb(s->ev[i].msg, s->ev[i].len, 0, &e);
            ck_assert_msg(doc != NULL, "not JSON: %s", e.text);
            const char *why = emf_valid(schema, doc);
            ck_assert_msg(why == NULL, "EMF invalid: %s", why);
            json_t *aws = json_object_get(doc, "_aws");
            ck_assert_int_eq(
                json_integer_value(json_object_get(aws, "Timestamp")),
                s->ev[i].ts);
            json_t *dir =
                json_array_get(json_object_get(aws, "CloudWatchMetrics"), 0);
            ck_assert_str_eq(
                json_string_value(json_object_get(dir, "Namespace")),
                "LLM/Invocations");
            /* the record's own fields are all still there */
            ck_assert_ptr_nonnull(json_object_get(doc, "record_id"));
            ck_assert_str_eq(
                json_string_value(json_object_get(doc, "TenantId")), "t0");
            ck_assert_int_eq(
                json_integer_value(json_object_get(doc, "Invocations")), 1);
            int throttled =
                strcmp(json_string_value(json_object_get(doc, "status")),
                       "throttled") == 0;
            ck_assert_int_eq(json_integer_value(json_object_get(doc, "Errors")),
                             throttled);
            if (throttled)
                ck_assert_str_eq(json_string_value(json_object_get(doc, "App")),
                                 "unknown");
            ck_assert_int_eq(
                json_integer_value(json_object_get(doc, "InputTokens")),
                (json_int_t)json_integer_value(
                    json_object_get(doc, "input_tokens")));
            json_decref(doc);
            seen++;
        }
    }
    ck_assert_uint_eq(seen, 3);
    json_decref(schema);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

/* ---- holding small shares (LF_REC_HOLD, settle, poll, flush) ----------- */

static int64_t sut_poll(sut *t)
{
    int64_t ms = logferry_sink_module()->poll(t->inst);
    fake_scratch_reset(t->f);
    return ms;
}

static cwl_sink *S(sut *t)
{
    return t->inst;
}

/* Count how each record of rs ended: OK in a deliver() answer (`got`
 * marks them, from `from`) or settled OK later; never both, never twice. */
static void mark_ok(uint8_t *got, const sut *t, size_t from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t->verdict[i] == LF_REC_OK) {
            ck_assert_uint_eq(got[from + i], 0);
            got[from + i] = 1;
        }
}

static void mark_settled(uint8_t *got, const fake *f, size_t *seen)
{
    for (; *seen < f->n_settled; (*seen)++) {
        const struct settled_rec *r = &f->settled[*seen];
        if (r->verdict != LF_REC_OK)
            continue;
        ck_assert_msg(got[r->offset] == 0, "record %llu settled twice",
                      (unsigned long long)r->offset);
        got[r->offset] = 1;
    }
}

START_TEST(test_hold_small_shares_fill_requests)
{
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "20000"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    int tenants = 5, per = 10, batches = 12;
    size_t bn = (size_t)tenants * per, total = bn * (size_t)batches;
    for (size_t i = 0; i < total; i++) {
        char ten[32];
        snprintf(ten, sizeof ten, "tenant-%zu", i % (size_t)tenants);
        add_rec(&rs, ten, acct_of((int)(i % (size_t)tenants)),
                NOW_NS - (int64_t)(total - i) * MS, NULL);
    }
    uint8_t *got = calloc(total, 1);
    size_t seen = 0;
    for (int b = 0; b < batches; b++) {
        lf_deliver_status st = sut_deliver(t, &rs, (size_t)b * bn, bn);
        ck_assert(st == LF_DELIVER_PARTIAL || st == LF_DELIVER_OK);
        ck_assert_uint_eq(count_verdict(t, bn, LF_REC_RETRY), 0);
        ck_assert_uint_eq(count_verdict(t, bn, LF_REC_FAIL), 0);
        if (b == 0) {
            /* every share is small: all held, nothing sent, and the
               files are already unlinked */
            ck_assert_uint_eq(count_verdict(t, bn, LF_REC_HOLD), bn);
            ck_assert_uint_eq(t->f->calls[OP_PUT], 0);
            ck_assert_uint_eq(S(t)->n_held, (size_t)tenants);
            ck_assert_uint_eq(dir_entries(t->f->dir), 0);
        }
        mark_ok(got, t, (size_t)b * bn, bn);
        mark_settled(got, t->f, &seen);
    }
    ck_assert_uint_gt(t->f->n_puts, 0);
    /* every request sent while backlogged fills min_request_bytes */
    for (size_t i = 0; i < t->f->n_puts; i++)
        ck_assert_uint_ge(t->f->put_cw[i], 20000);
    ck_assert_uint_gt(counter(t->f, "events_held"), 0);
    /* a stop sends the rest */
    ck_assert_int_eq(logferry_sink_module()->flush(t->inst), 0);
    ck_assert_uint_eq(S(t)->n_held, 0);
    mark_settled(got, t->f, &seen);
    for (size_t i = 0; i < total; i++)
        ck_assert_msg(got[i], "record %zu never delivered", i);
    size_t n = 0;
    for (int tn = 0; tn < tenants; tn++) {
        char g[64], ten[32];
        snprintf(ten, sizeof ten, "tenant-%d", tn);
        snprintf(g, sizeof g, "/llm/%s", ten);
        n += check_stream(t->f, acct_of(tn), g, "chat", ten);
    }
    ck_assert_uint_eq(n, total); /* none twice */
    ck_assert_uint_eq(t->f->violations, 0);
    ck_assert_int_eq(sut_poll(t), -1);
    free(got);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_merge_keeps_order_and_limits)
{
    /* One stream, the largest min_request_bytes, ~2 KB events, many with
       equal timestamps across batches: merged requests keep every limit
       and spool order among equal times (held events first). */
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "1048576"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    /* batches of ~200 KB, then of ~1 MB (held tails of a request's
       worth) */
    size_t total = 3000, bn = 100;
    char *big = malloc(2100);
    for (size_t i = 0; i < total; i++) {
        snprintf(big, 2100, "prompt %zu %01900d", i, 0);
        add_rec(&rs, "solo", acct_of(0),
                NOW_NS - (int64_t)(total - i) / 70 * MS, big);
    }
    free(big);
    uint8_t *got = calloc(total, 1);
    size_t seen = 0;
    for (size_t from = 0; from < total; from += bn) {
        bn = from < total / 2 ? 100 : 490;
        if (from + bn > total)
            bn = total - from;
        sut_deliver(t, &rs, from, bn);
        ck_assert_uint_eq(count_verdict(t, bn, LF_REC_RETRY), 0);
        mark_ok(got, t, from, bn);
        mark_settled(got, t->f, &seen);
        ck_assert_uint_le(S(t)->n_held, 1);
    }
    for (size_t i = 0; i < t->f->n_puts; i++)
        ck_assert_uint_ge(t->f->put_cw[i], 1000000);
    ck_assert_int_eq(logferry_sink_module()->flush(t->inst), 0);
    mark_settled(got, t->f, &seen);
    for (size_t i = 0; i < total; i++)
        ck_assert_msg(got[i], "record %zu never delivered", i);
    ck_assert_uint_eq(
        check_stream(t->f, acct_of(0), "/llm/solo", "chat", "solo"), total);
    fstream *st = find_stream(t->f, acct_of(0), "/llm/solo", "chat");
    long prev = -1;
    for (size_t i = 0; i < st->n; i++) {
        const char *p = strstr(st->ev[i].msg, "prompt ");
        ck_assert_ptr_nonnull(p);
        long k = strtol(p + 7, NULL, 10);
        ck_assert_int_gt(k, prev); /* spool order */
        prev = k;
    }
    ck_assert_uint_eq(t->f->violations, 0);
    free(got);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_large_events)
{
    /* Shares of ~1 MB of large events with large payloads (1.6 MB to
       write): the write buffer is given back after such a write and the
       file's bookkeeping must stay exact. */
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "1048576"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    char *big = malloc(340001);
    memset(big, 'z', 340000);
    big[340000] = '\0';
    for (int i = 0; i < 12; i++)
        add_rec(&rs, "solo", acct_of(0), NOW_NS - (12 - i) * MS, big);
    free(big);
    uint8_t *pay[12];
    for (int i = 0; i < 12; i++) {
        pay[i] = calloc(1, 200000);
        memcpy(pay[i], rs.ids[i], 16);
        rs.lr[i].payload = pay[i];
        rs.lr[i].len = 200000;
    }
    uint8_t got[12] = {0};
    size_t seen = 0;
    for (size_t from = 0; from < 12; from += 3) {
        sut_deliver(t, &rs, from, 3);
        ck_assert_uint_eq(count_verdict(t, 3, LF_REC_RETRY), 0);
        mark_ok(got, t, from, 3);
        mark_settled(got, t->f, &seen);
    }
    ck_assert_int_eq(logferry_sink_module()->flush(t->inst), 0);
    mark_settled(got, t->f, &seen);
    for (size_t i = 0; i < 12; i++)
        ck_assert_msg(got[i], "record %zu never delivered", i);
    ck_assert_ptr_null(strstr(t->f->log, "ERROR"));
    ck_assert_uint_eq(
        check_stream(t->f, acct_of(0), "/llm/solo", "chat", "solo"), 12);
    ck_assert_uint_eq(t->f->violations, 0);
    for (int i = 0; i < 12; i++)
        free(pay[i]);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_poll_due_and_retry_refused)
{
    sut *t = sut_make((const kv[]){{"flush_interval", "1s"},
                                   {"min_request_bytes", "100000"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    for (int i = 0; i < 20; i++)
        add_rec(&rs, "a", acct_of(1), NOW_NS - (20 - i) * MS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_PARTIAL);
    ck_assert_uint_eq(count_verdict(t, rs.n, LF_REC_HOLD), rs.n);
    int64_t ms = sut_poll(t);
    ck_assert_int_gt(ms, 0);
    ck_assert_int_le(ms, 1000);
    ck_assert_uint_eq(t->f->calls[OP_PUT], 0); /* not due yet */

    /* Due, but throttled, and the core's parking is full: kept. */
    snprintf(t->f->throttle_account, 16, "%s", acct_of(1));
    t->f->throttle_left = -1;
    t->f->throttle_retry_ms = 1600;
    t->f->refuse_retry = 1;
    t->f->mono_skew_ns += 1000 * MS;
    ck_assert_int_ge(sut_poll(t), 0);
    ck_assert_uint_ge(t->f->settle_calls, 1);
    ck_assert_uint_eq(t->f->n_settled, 0);
    ck_assert_uint_eq(S(t)->n_held, 1);
    ck_assert_uint_eq(counter(t->f, "settle_refused"), rs.n);

    /* Still throttled, the core parks them now: RETRY, with the answer's
       retry_after, and nothing is held any more. */
    t->f->refuse_retry = 0;
    t->f->mono_skew_ns += 1000 * MS;
    ck_assert_int_eq(sut_poll(t), -1);
    ck_assert_uint_eq(t->f->n_settled, rs.n);
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_uint_eq(t->f->settled[i].verdict, LF_REC_RETRY);
    ck_assert_uint_eq(t->f->settle_retry_after, 1600);
    ck_assert_uint_eq(S(t)->n_held, 0);
    ck_assert_uint_eq(dir_entries(t->f->dir), 0);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_refusal_settled_with_reason)
{
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "100000"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    for (int i = 0; i < 10; i++)
        add_rec(&rs, "a", acct_of(1), NOW_NS - (10 - i) * MS,
                i == 4 ? "poisoned" : NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_PARTIAL);
    t->f->poison = "poisoned";
    ck_assert_int_eq(logferry_sink_module()->flush(t->inst), 0);
    ck_assert_uint_eq(t->f->n_settled, 10);
    size_t ok = 0;
    for (size_t i = 0; i < 10; i++) {
        const struct settled_rec *r = &t->f->settled[i];
        if (r->verdict == LF_REC_OK) {
            ok++;
            continue;
        }
        ck_assert_uint_eq(r->verdict, LF_REC_FAIL);
        ck_assert_uint_eq(r->offset, 4);
        ck_assert_ptr_nonnull(strstr(r->reason, "InvalidParameterException"));
    }
    ck_assert_uint_eq(ok, 9);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_max_streams_sends_oldest)
{
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "100000"},
                                   {"max_held_streams", "2"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    for (int i = 0; i < 40; i++) {
        char ten[16];
        snprintf(ten, sizeof ten, "t%d", i / 10);
        add_rec(&rs, ten, acct_of(i / 10), NOW_NS - (40 - i) * MS, NULL);
    }
    for (int b = 0; b < 4; b++) {
        sut_deliver(t, &rs, (size_t)b * 10, 10);
        ck_assert_uint_eq(count_verdict(t, 10, LF_REC_HOLD), 10);
        ck_assert_uint_le(S(t)->n_held, 2);
    }
    /* t0 and t1 were sent early, oldest first, to make room */
    ck_assert_uint_eq(t->f->calls[OP_PUT], 2);
    ck_assert_uint_eq(check_stream(t->f, acct_of(0), "/llm/t0", "chat", "t0"),
                      10);
    ck_assert_uint_eq(check_stream(t->f, acct_of(1), "/llm/t1", "chat", "t1"),
                      10);
    ck_assert_int_eq(logferry_sink_module()->flush(t->inst), 0);
    ck_assert_uint_eq(t->f->n_settled, 40);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_hold_readback_bounded)
{
    /* 40 streams each hold ~270 KB; one batch makes them all full. Only
       CWL_READBACK_MAX of files is read back per call; poll() sends the
       rest. */
    sut *t = sut_make((const kv[]){{"flush_interval", "10s"},
                                   {"min_request_bytes", "300000"},
                                   {NULL, NULL}},
                      1);
    recs rs = {0};
    char *big = malloc(5100);
    memset(big, 'q', 5000);
    big[5000] = '\0';
    int tenants = 40;
    for (int r = 0; r < 60; r++)
        for (int tn = 0; tn < tenants; tn++) {
            char ten[16];
            snprintf(ten, sizeof ten, "t%d", tn);
            add_rec(&rs, ten, acct_of(tn), NOW_NS - (60 - r) * MS, big);
        }
    free(big);
    size_t first = 50 * (size_t)tenants;
    sut_deliver(t, &rs, 0, first);
    ck_assert_uint_eq(count_verdict(t, first, LF_REC_HOLD), first);
    ck_assert_uint_eq(S(t)->n_held, (size_t)tenants);
    sut_deliver(t, &rs, first, rs.n - first);
    /* streams whose read-back waits keep their new events held too */
    size_t held2 = count_verdict(t, rs.n - first, LF_REC_HOLD);
    unsigned sent = t->f->calls[OP_PUT];
    ck_assert_uint_gt(sent, 0);
    ck_assert_uint_lt(sent, (unsigned)tenants); /* not all at once */
    int rounds = 0;
    while (S(t)->n_held && rounds++ < 100)
        ck_assert_int_eq(sut_poll(t), S(t)->n_held ? 0 : -1);
    ck_assert_uint_eq(S(t)->n_held, 0);
    ck_assert_uint_eq(t->f->n_settled, first + held2);
    for (size_t i = 0; i < t->f->n_puts; i++)
        ck_assert_uint_ge(t->f->put_cw[i], 300000);
    ck_assert_uint_eq(t->f->violations, 0);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

START_TEST(test_no_hold_without_settle)
{
    /* A host without settle gets the old behaviour: nothing held. */
    sut *t = sut_new((const kv[]){{"flush_interval", "1s"}, {NULL, NULL}});
    recs rs = {0};
    for (int i = 0; i < 5; i++)
        add_rec(&rs, "a", acct_of(1), NOW_NS - (5 - i) * MS, NULL);
    ck_assert_int_eq(sut_deliver(t, &rs, 0, rs.n), LF_DELIVER_OK);
    ck_assert_uint_eq(t->f->calls[OP_PUT], 1);
    ck_assert_int_eq(sut_poll(t), -1);
    recs_free(&rs);
    sut_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cwl");
    TCase *tc = tcase_create("internals");
    tcase_add_test(tc, test_plan_split_limits);
    tcase_add_test(tc, test_templates);
    tcase_add_test(tc, test_json_strings);
    suite_add_tcase(s, tc);
    tc = tcase_create("deliver");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_many_tenants_each_in_own_account);
    tcase_add_test(tc, test_large_batch_split_within_limits);
    tcase_add_test(tc, test_group_deleted_is_recreated);
    tcase_add_test(tc, test_missing_group_without_create_fails);
    tcase_add_test(tc, test_throttled_tenant_retries_alone);
    tcase_add_test(tc, test_access_denied_names_role_not_external_id);
    tcase_add_test(tc, test_identity_refused_by_host);
    tcase_add_test(tc, test_credentials_trouble_is_retried);
    tcase_add_test(tc, test_invalid_event_isolated_by_splitting);
    tcase_add_test(tc, test_rejected_events_fail_never_retry);
    tcase_add_test(tc, test_out_of_range_not_sent);
    tcase_add_test(tc, test_oversize_truncate_or_dead_letter);
    tcase_add_test(tc, test_unroutable_never_reaches_another_tenant);
    tcase_add_test(tc, test_retention_applied_to_existing_group);
    tcase_add_test(tc, test_parallel_streams_bounded);
    tcase_add_test(tc, test_state_bounded_and_credentials_released);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("hold");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hold_small_shares_fill_requests);
    tcase_add_test(tc, test_hold_merge_keeps_order_and_limits);
    tcase_add_test(tc, test_hold_large_events);
    tcase_add_test(tc, test_hold_poll_due_and_retry_refused);
    tcase_add_test(tc, test_hold_refusal_settled_with_reason);
    tcase_add_test(tc, test_hold_max_streams_sends_oldest);
    tcase_add_test(tc, test_hold_readback_bounded);
    tcase_add_test(tc, test_no_hold_without_settle);
    suite_add_tcase(s, tc);
    tc = tcase_create("emf");
    tcase_add_test(tc, test_emf_schema_cases);
    tcase_add_test(tc, test_emf_output_valid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
