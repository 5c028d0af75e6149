/*
 * cwl_sink.c - the "cloudwatch" sink: records to Amazon CloudWatch Logs,
 * each into its own tenant's account, log group and log stream.
 *
 * Place in the pipeline: the last hop. The core hands over a batch that
 * mixes many tenants; deliver() works out each record's destination from
 * the templates (role_arn, external_id, log_group, log_stream over record
 * fields), renders it (JSON or EMF), groups the records per destination,
 * sorts and splits each group into PutLogEvents requests within every
 * service limit (cwl_plan.c) and sends the destinations in parallel on a
 * small pool of threads (cwl_api.c). The answer is per record, so one
 * tenant's throttling or AccessDenied never blocks, loses or duplicates
 * another's records.
 *
 * A core batch mixes many streams, so each stream's share of it is small;
 * rather than send small requests, a share under min_request_bytes is
 * held (LF_REC_HOLD) in a file until the stream has enough or its time is
 * up (cwl_hold.c), and settled with host->settle once sent. poll() and
 * flush() send what is due without a new batch.
 *
 * Credentials and signing belong to the host (lf_host.aws_*): this module
 * names an identity (role ARN, ExternalId, session name) and gets an
 * opaque handle; it never sees a key.
 *
 * Never logged at INFO or above: record content, ExternalIds, secrets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cwl.h"

/* What the core puts in one batch by default. Request size no longer
 * depends on it (small shares are held until they fill a request), while
 * memory does: the core keeps ~2.6 KB per batched record (two batches
 * with its read-ahead, on up to 4096 records) and the sink its JSON.
 * Measured with 50 tenants (docs/BENCHMARKS.md): 4096 records peaked at
 * 45 MB, 2048 at 33 MB, 1024 at 27 MB; the price is more of a busy
 * stream's share going through its file (~0.4 us more CPU per record
 * for one stream). */
#define CWL_BATCH_RECORDS 1024u
#define CWL_BATCH_BYTES (512u * 1024u)
/* The rendered messages of one batch are kept until it is answered. */
#define CWL_MSGS_MAX ((size_t)1 << 30)
/* A PutLogEvents body: messages escaped (at most twice their size, as
 * to_json output holds no raw control characters) plus ~40 bytes per
 * event. */
#define CWL_BODY_MAX ((size_t)3 * CWL_MAX_REQUEST_BYTES)
#define CWL_KEY_MAX                                                            \
    (CWL_ARN_MAX + CWL_EXTID_MAX + 2 * CWL_NAME_MAX + CWL_SESSION_MAX + 8)
#define NO_DEST UINT32_MAX
#define MS_NS 1000000LL

enum {
    K_REGION,
    K_ENDPOINT,
    K_ROLE_ARN,
    K_EXTERNAL_ID,
    K_SESSION_NAME,
    K_LOG_GROUP,
    K_LOG_STREAM,
    K_DEF_GROUP,
    K_DEF_STREAM,
    K_DEF_ROLE,
    K_DEF_EXTID,
    K_CREATE_GROUP,
    K_CREATE_STREAM,
    K_RETENTION,
    K_KMS,
    K_TAGS,
    K_CLASS,
    K_FORMAT,
    K_EMF_NS,
    K_FLUSH,
    K_CONCURRENCY,
    K_OVERSIZE,
    K_OUT_OF_RANGE,
    K_STATE_MAX,
    K_STATE_IDLE,
    K_MIN_REQUEST,
    K_MAX_HELD,
    K_COUNT
};

static const char *const classes[] = {"STANDARD", "INFREQUENT_ACCESS", NULL};
static const char *const formats[] = {"json", "emf", NULL};
static const char *const oversizes[] = {"truncate", "dead_letter", NULL};
static const char *const ranges[] = {"dead_letter", "drop", NULL};

static const lf_conf_key cwl_keys[K_COUNT] = {
    [K_REGION] = {"region", LF_CONF_STRING, 1, NULL, 1, 64, NULL,
                  "AWS region of the log groups, e.g. \"eu-west-1\"; also "
                  "the STS region for role_arn."},
    [K_ENDPOINT] = {"endpoint", LF_CONF_STRING, 0, NULL, 1, 1024, NULL,
                    "CloudWatch Logs endpoint URL (VPC endpoint, FIPS, "
                    "emulator); default https://logs.<region>."
                    "amazonaws.com."},
    [K_ROLE_ARN] = {"role_arn", LF_CONF_STRING, 0, NULL, 1, 2048, NULL,
                    "Role to assume per record, a template, e.g. "
                    "\"arn:aws:iam::${account_id}:role/LogWriter\"; unset: "
                    "the agent's own credentials."},
    [K_EXTERNAL_ID] = {"external_id", LF_CONF_STRING, 0, NULL, 2, 2048, NULL,
                       "ExternalId for role_arn, a template (e.g. "
                       "\"logferry-${tenant_id}\"); never logged."},
    [K_SESSION_NAME] = {"session_name", LF_CONF_STRING, 0, NULL, 2, 256, NULL,
                        "Role session name, a template; unset: "
                        "logferry-<hostname>."},
    [K_LOG_GROUP] = {"log_group", LF_CONF_STRING, 1, NULL, 1, 1024, NULL,
                     "Log group, a template over record fields, e.g. "
                     "\"/llm/${tenant_id}\"."},
    [K_LOG_STREAM] = {"log_stream", LF_CONF_STRING, 0, "${hostname}", 1, 1024,
                      NULL,
                      "Log stream, a template, e.g. "
                      "\"${app}/${hostname}/${date}\"."},
    [K_DEF_GROUP] = {"default_log_group", LF_CONF_STRING, 0, NULL, 1, 512, NULL,
                     "Log group for records whose templates cannot be "
                     "filled (an empty or invalid field); unset: such "
                     "records are dead-lettered. Never another tenant's."},
    [K_DEF_STREAM] = {"default_log_stream", LF_CONF_STRING, 0, "${hostname}", 1,
                      1024, NULL,
                      "Log stream in default_log_group, a template."},
    [K_DEF_ROLE] = {"default_role_arn", LF_CONF_STRING, 0, NULL, 1, 2048, NULL,
                    "Role for default_log_group (not a template); unset: "
                    "the agent's own credentials."},
    [K_DEF_EXTID] = {"default_external_id", LF_CONF_STRING, 0, NULL, 2, 1224,
                     NULL, "ExternalId for default_role_arn."},
    [K_CREATE_GROUP] = {"create_group", LF_CONF_BOOL, 0, "false", 0, 0, NULL,
                        "Create missing log groups (with retention_days, "
                        "kms_key_id, tags, log_group_class)."},
    [K_CREATE_STREAM] = {"create_stream", LF_CONF_BOOL, 0, "true", 0, 0, NULL,
                         "Create missing log streams."},
    [K_RETENTION] = {"retention_days", LF_CONF_INT, 0, "0", 0, 3653, NULL,
                     "Retention applied to groups it creates and to "
                     "existing groups whose retention differs (logged); one "
                     "of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, "
                     "400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, "
                     "3653; 0 leaves retention alone."},
    [K_KMS] = {"kms_key_id", LF_CONF_STRING, 0, NULL, 1, 2048, NULL,
               "KMS key ARN for log groups it creates."},
    [K_TAGS] = {"tags", LF_CONF_STRLIST, 0, NULL, 0, 0, NULL,
                "Tags \"key=value\" for log groups it creates."},
    [K_CLASS] = {"log_group_class", LF_CONF_ENUM, 0, NULL, 0, 0, classes,
                 "Class of log groups it creates; unset: the service's "
                 "default (STANDARD)."},
    [K_FORMAT] = {"format", LF_CONF_ENUM, 0, "json", 0, 0, formats,
                  "Message format: the record as JSON, or CloudWatch "
                  "Embedded Metric Format (metrics InputTokens, "
                  "OutputTokens, LatencyMs, Invocations, Errors by ModelId, "
                  "TenantId, App)."},
    [K_EMF_NS] = {"emf_namespace", LF_CONF_STRING, 0, "logferry", 1, 255, NULL,
                  "CloudWatch metric namespace for format = \"emf\"."},
    [K_FLUSH] = {"flush_interval", LF_CONF_DURATION, 0, "1s", 0, 10000, NULL,
                 "Longest a record is held back to fill a larger request "
                 "(never over half of spool.max_age); with an agent that "
                 "cannot hold records, how long a small batch waits after "
                 "the previous send; 0 sends every batch at once."},
    [K_CONCURRENCY] = {"concurrency", LF_CONF_INT, 0, "4", 1, 64, NULL,
                       "Log streams sent to in parallel within one batch."},
    [K_OVERSIZE] = {"oversize", LF_CONF_ENUM, 0, "truncate", 0, 0, oversizes,
                    "An event over 1,048,550 bytes: truncate it (with a "
                    "marker) or dead-letter it; counted either way."},
    [K_OUT_OF_RANGE] = {"out_of_range", LF_CONF_ENUM, 0, "dead_letter", 0, 0,
                        ranges,
                        "Events older than 14 days or the group's retention, "
                        "or over 2 h in the future (also when the service "
                        "refuses them): dead-letter or drop; counted."},
    [K_STATE_MAX] = {"state_max_entries", LF_CONF_INT, 0, "10000", 16, 1000000,
                     NULL,
                     "Destinations, groups and identities remembered (LRU)."},
    [K_STATE_IDLE] = {"state_idle", LF_CONF_DURATION, 0, "1h", 1000,
                      30LL * 24 * 3600 * 1000, NULL,
                      "Forget a destination (and release its credentials) "
                      "after this long unused."},
    [K_MIN_REQUEST] = {"min_request_bytes", LF_CONF_SIZE, 0, "1000000", 0,
                       CWL_MAX_REQUEST_BYTES, NULL,
                       "A stream's events that make less than this "
                       "(as CloudWatch counts: message bytes + 26 each) wait "
                       "in a temporary file in the sink's directory for "
                       "more, up to flush_interval; 0 never holds. The "
                       "default leaves room for the partial requests a "
                       "drained backlog ends with, so the mean stays over "
                       "900 KB."},
    [K_MAX_HELD] = {"max_held_streams", LF_CONF_INT, 0, "256", 1, 65536, NULL,
                    "Streams holding events at once (one open file each); "
                    "past it the one held longest is sent early."},
};

static const int retention_allowed[] = {
    1,   3,   5,   7,   14,   30,   60,   90,   120,  150,  180,
    365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
};

/* ---- create / destroy ---------------------------------------------------- */

static void cwl_destroy(void *inst)
{
    cwl_sink *s = inst;
    if (!s)
        return;
    cwl_pool_destroy(s->pool);
    cwl_state_free(&s->state);
    lf_tmpl_free(s->t_role);
    lf_tmpl_free(s->t_extid);
    lf_tmpl_free(s->t_session);
    lf_tmpl_free(s->t_group);
    lf_tmpl_free(s->t_stream);
    lf_tmpl_free(s->t_def_stream);
    free(s->url);
    free(s->tags_json);
    free(s->emf_mid);
    sbuf_free(&s->msgs);
    sbuf_free(&s->keys);
    sbuf_free(&s->names);
    if (s->bodies)
        for (unsigned i = 0; i < s->concurrency; i++)
            sbuf_free(&s->bodies[i]);
    free(s->bodies);
    free(s->body_busy);
    free(s->dests);
    free(s->work);
    free(s->dslots);
    free(s->events);
    free(s->events2);
    free(s->rec_dest);
    free(s->rec_reason);
    free(s->rec_ev);
    free(s->chunks);
    free(s->verd);
    cwl_hold_free(s);
    free(s->hslots);
    free(s->hrecs);
    free(s->settled);
    free(s->retry_idx);
    sbuf_free(&s->wbuf);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->group_cv);
    free(s);
}

static cwl_tmpl *tmpl_opt(cwl_sink *s, const lf_conf_value *v, cwl_charset cs,
                          const char *key, char *err, size_t errlen, int *bad)
{
    if (!v->s)
        return NULL;
    char why[400];
    cwl_tmpl *t = cwl_tmpl_parse(v->s, cs, s->hostname, why, sizeof why);
    if (!t) {
        snprintf(err, errlen, "%s: %s", key, why);
        *bad = 1;
    }
    return t;
}

/* "k=v" tags as a JSON object, or NULL when there are none. */
static int make_tags(cwl_sink *s, const lf_conf_value *v, char *err,
                     size_t errlen)
{
    if (!v->list || v->n == 0)
        return 0;
    if (v->n > 50) {
        snprintf(err, errlen, "tags: at most 50 tags per log group");
        return -1;
    }
    sbuf b = {0};
    sbuf_put(&b, "{", 1);
    for (size_t i = 0; i < v->n; i++) {
        const char *eq = strchr(v->list[i], '=');
        if (!eq || eq == v->list[i] || eq - v->list[i] > 128 ||
            strlen(eq + 1) > 256) {
            snprintf(err, errlen,
                     "tags: \"%.64s\" is not key=value (key 1-128, value "
                     "0-256 characters)",
                     v->list[i]);
            sbuf_free(&b);
            return -1;
        }
        if (i)
            sbuf_put(&b, ",", 1);
        cwl_json_str(&b, v->list[i], (size_t)(eq - v->list[i]));
        sbuf_put(&b, ":", 1);
        cwl_json_str(&b, eq + 1, strlen(eq + 1));
    }
    if (sbuf_put(&b, "}", 2) != 0) { /* with the NUL */
        snprintf(err, errlen, "out of memory");
        sbuf_free(&b);
        return -1;
    }
    s->tags_json = b.p;
    return 0;
}

/* The constant middle of every EMF object: metric directives, then the
 * first member name. */
static int make_emf(cwl_sink *s, const char *ns)
{
    sbuf b = {0};
    int err = sbuf_puts(&b, ",\"CloudWatchMetrics\":[{\"Namespace\":");
    err |= cwl_json_str(&b, ns, strlen(ns));
    err |= sbuf_puts(
        &b, ",\"Dimensions\":[[\"ModelId\",\"TenantId\",\"App\"]],"
            "\"Metrics\":[{\"Name\":\"InputTokens\",\"Unit\":\"Count\"},"
            "{\"Name\":\"OutputTokens\",\"Unit\":\"Count\"},"
            "{\"Name\":\"LatencyMs\",\"Unit\":\"Milliseconds\"},"
            "{\"Name\":\"Invocations\",\"Unit\":\"Count\"},"
            "{\"Name\":\"Errors\",\"Unit\":\"Count\"}]}]},\"ModelId\":");
    err |= sbuf_put(&b, "", 1);
    if (err) {
        sbuf_free(&b);
        return -1;
    }
    s->emf_mid = b.p;
    return 0;
}

/* Owns nothing of `v` or `host` (both outlive the instance); everything
 * the instance allocates is freed by cwl_destroy(). */
/* Build an instance; with host == NULL only check the values (for
 * `logferry check`): nothing is started and nothing is kept. */
static int cwl_build(const lf_conf_value *v, const lf_host *host, void **out,
                     char *err, size_t errlen)
{
    if (host && !LF_HOST_HAS(host, aws_result_free)) {
        snprintf(err, errlen,
                 "this agent does not lend the AWS services the cloudwatch "
                 "sink needs (host table too old)");
        return -1;
    }
    cwl_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->group_cv, NULL);
    s->host = host;
    s->region = v[K_REGION].s;
    for (const char *p = s->region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-')) {
            snprintf(err, errlen, "region: \"%s\" is not a region name",
                     s->region);
            goto fail;
        }

    /* Endpoint: the override as given, else the regional one. */
    char url[1100];
    if (v[K_ENDPOINT].s) {
        const char *e = v[K_ENDPOINT].s;
        if (strncmp(e, "https://", 8) != 0 && strncmp(e, "http://", 7) != 0) {
            snprintf(err, errlen, "endpoint: \"%s\" is not an http(s) URL", e);
            goto fail;
        }
        size_t n = strlen(e);
        while (n > 0 && e[n - 1] == '/')
            n--;
        snprintf(url, sizeof url, "%.*s/", (int)n, e);
    } else {
        snprintf(url, sizeof url, "https://logs.%s.amazonaws.com%s/", s->region,
                 strncmp(s->region, "cn-", 3) == 0 ? ".cn" : "");
    }
    if (!(s->url = strdup(url)))
        goto oom;

    if (gethostname(s->hostname, sizeof s->hostname - 1) != 0 ||
        !s->hostname[0])
        snprintf(s->hostname, sizeof s->hostname, "localhost");
    int bad = 0;
    s->t_role =
        tmpl_opt(s, &v[K_ROLE_ARN], CWL_CS_ARN, "role_arn", err, errlen, &bad);
    if (!bad)
        s->t_extid = tmpl_opt(s, &v[K_EXTERNAL_ID], CWL_CS_EXTID, "external_id",
                              err, errlen, &bad);
    if (!bad)
        s->t_session = tmpl_opt(s, &v[K_SESSION_NAME], CWL_CS_SESSION,
                                "session_name", err, errlen, &bad);
    if (!bad)
        s->t_group = tmpl_opt(s, &v[K_LOG_GROUP], CWL_CS_GROUP, "log_group",
                              err, errlen, &bad);
    if (!bad)
        s->t_stream = tmpl_opt(s, &v[K_LOG_STREAM], CWL_CS_STREAM, "log_stream",
                               err, errlen, &bad);
    if (!bad)
        s->t_def_stream = tmpl_opt(s, &v[K_DEF_STREAM], CWL_CS_STREAM,
                                   "default_log_stream", err, errlen, &bad);
    if (bad)
        goto fail;
    if (!s->t_group || !s->t_stream || !s->t_def_stream) {
        snprintf(err, errlen, "log_group and log_stream must be set");
        goto fail;
    }
    if (s->t_extid && !s->t_role) {
        snprintf(err, errlen, "external_id: needs role_arn");
        goto fail;
    }
    if (s->t_session && !s->t_role) {
        snprintf(err, errlen, "session_name: needs role_arn");
        goto fail;
    }
    s->def_group = v[K_DEF_GROUP].s;
    s->def_role = v[K_DEF_ROLE].s;
    s->def_extid = v[K_DEF_EXTID].s;
    if (s->def_group && !cwl_valid_group(s->def_group, strlen(s->def_group))) {
        snprintf(err, errlen,
                 "default_log_group: \"%s\" is not a valid log group name "
                 "([A-Za-z0-9._/#-], 1-512)",
                 s->def_group);
        goto fail;
    }
    if (s->def_role && !lf_valid_role_arn(s->def_role, strlen(s->def_role))) {
        snprintf(err, errlen, "default_role_arn: \"%s\" is not a role ARN",
                 s->def_role);
        goto fail;
    }
    if (s->def_extid && !s->def_role) {
        snprintf(err, errlen, "default_external_id: needs default_role_arn");
        goto fail;
    }
    if ((s->def_role || v[K_DEF_STREAM].present) && !s->def_group) {
        snprintf(err, errlen,
                 "default_role_arn/default_log_stream: need "
                 "default_log_group");
        goto fail;
    }

    s->create_group = v[K_CREATE_GROUP].b;
    s->create_stream = v[K_CREATE_STREAM].b;
    s->retention_days = (int)v[K_RETENTION].i;
    if (s->retention_days) {
        size_t i, n = sizeof retention_allowed / sizeof *retention_allowed;
        for (i = 0; i < n && retention_allowed[i] != s->retention_days; i++)
            ;
        if (i == n) {
            snprintf(err, errlen,
                     "retention_days: %d is not a value CloudWatch Logs "
                     "allows (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, "
                     "365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, "
                     "3288, 3653)",
                     s->retention_days);
            goto fail;
        }
    }
    s->kms_key_id = v[K_KMS].s;
    s->group_class = v[K_CLASS].present ? v[K_CLASS].s : NULL;
    if (make_tags(s, &v[K_TAGS], err, errlen) != 0)
        goto fail;
    s->emf = v[K_FORMAT].i == 1;
    if (s->emf && make_emf(s, v[K_EMF_NS].s ? v[K_EMF_NS].s : "logferry"))
        goto oom;
    s->hold_ns = v[K_FLUSH].i * MS_NS;
    s->min_req = (uint64_t)v[K_MIN_REQUEST].i;
    s->max_held = (size_t)v[K_MAX_HELD].i;
    s->concurrency = (unsigned)v[K_CONCURRENCY].i;
    s->truncate_oversize = v[K_OVERSIZE].i == 0;
    s->drop_out_of_range = v[K_OUT_OF_RANGE].i == 1;
    s->idle_ns = v[K_STATE_IDLE].i * MS_NS;
    if (!host) {
        cwl_destroy(s); /* the values are fine */
        return 0;
    }

    s->msgs.max = CWL_MSGS_MAX;
    s->bodies = calloc(s->concurrency, sizeof *s->bodies);
    s->body_busy = calloc(s->concurrency, 1);
    if (!s->bodies || !s->body_busy)
        goto oom;
    for (unsigned i = 0; i < s->concurrency; i++)
        s->bodies[i].max = CWL_BODY_MAX;
    if (cwl_state_init(&s->state, host, (size_t)v[K_STATE_MAX].i) != 0)
        goto oom;
    /* Holding needs a host that settles (and so lends max_age_ms) and a
       directory for the files; retention: nothing waits longer than
       half of spool.max_age. */
    s->hold_on =
        s->min_req > 0 && LF_HOST_HAS(host, settle) && host->instance_dir;
    if (s->hold_on && host->max_age_ms > 0 &&
        s->hold_ns > host->max_age_ms / 2 * MS_NS)
        s->hold_ns = host->max_age_ms / 2 * MS_NS;
    s->hold_on = s->hold_on && s->hold_ns > 0;
    if (s->hold_on) {
        s->n_hslots = 64;
        while (s->n_hslots < 2 * s->max_held)
            s->n_hslots *= 2;
        if (!(s->hslots = calloc(s->n_hslots, sizeof *s->hslots)))
            goto oom;
    }
    char perr[256];
    if (!(s->pool = cwl_pool_create(s->concurrency, perr, sizeof perr))) {
        snprintf(err, errlen, "%s", perr);
        goto fail;
    }
    host->log(host, LF_LOG_INFO,
              "CloudWatch Logs at %s, region %s, log group %s, stream %s, "
              "role %s, format %s, %u in parallel, %s",
              s->url, s->region, lf_tmpl_text(s->t_group),
              lf_tmpl_text(s->t_stream),
              s->t_role ? lf_tmpl_text(s->t_role) : "(own credentials)",
              s->emf ? "emf" : "json", s->concurrency,
              s->hold_on ? "holding small shares" : "never holding");
    *out = s;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    cwl_destroy(s);
    return -1;
}

static int cwl_create(const lf_conf_value *v, const lf_host *host, void **out,
                      char *err, size_t errlen)
{
    return cwl_build(v, host, out, err, errlen);
}

static int cwl_validate(const lf_conf_value *v, char *err, size_t errlen)
{
    void *unused = NULL;
    return cwl_build(v, NULL, &unused, err, errlen);
}

/* ---- deliver: routing ---------------------------------------------------- */

int cwl_grow_records(cwl_sink *s, size_t n)
{
    if (n <= s->cap_recs)
        return 0;
    size_t c = s->cap_recs ? s->cap_recs : 1024;
    while (c < n)
        c *= 2;
    void *p;
#define GROW(f)                                                                \
    if (!(p = realloc(s->f, c * sizeof *s->f)))                                \
        return -1;                                                             \
    s->f = p;
    GROW(events)
    GROW(events2)
    GROW(rec_dest)
    GROW(rec_reason)
    GROW(rec_ev)
    GROW(chunks)
    GROW(verd)
#undef GROW
    s->cap_recs = c;
    return 0;
}

static uint32_t hash_key(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 16777619u;
    }
    return h;
}

static int dslots_grow(cwl_sink *s)
{
    size_t n = s->n_dslots ? s->n_dslots * 2 : 256;
    uint32_t *sl = calloc(n, sizeof *sl);
    if (!sl)
        return -1;
    for (size_t i = 0; i < s->n_dests; i++) {
        size_t j = s->dests[i].hash & (n - 1);
        while (sl[j])
            j = (j + 1) & (n - 1);
        sl[j] = (uint32_t)i + 1;
    }
    free(s->dslots);
    s->dslots = sl;
    s->n_dslots = n;
    return 0;
}

/* Index of the destination with this key in this deliver(), added if
 * new; -1 when out of memory. */
long cwl_dest_index(cwl_sink *s, const char *key, size_t klen, int is_def)
{
    uint32_t h = hash_key(key, klen);
    if ((s->n_dests + 1) * 2 > s->n_dslots && dslots_grow(s) != 0)
        return -1;
    size_t j = h & (s->n_dslots - 1);
    while (s->dslots[j]) {
        cwl_dest *d = &s->dests[s->dslots[j] - 1];
        if (d->hash == h && d->key_len == klen &&
            memcmp(s->keys.p + d->key_off, key, klen) == 0)
            return (long)s->dslots[j] - 1;
        j = (j + 1) & (s->n_dslots - 1);
    }
    if (s->n_dests == s->cap_dests) {
        size_t c = s->cap_dests ? s->cap_dests * 2 : 64;
        cwl_dest *nd = realloc(s->dests, c * sizeof *nd);
        if (!nd)
            return -1;
        s->dests = nd;
        uint32_t *nw = realloc(s->work, c * sizeof *nw);
        if (!nw)
            return -1;
        s->work = nw;
        s->cap_dests = c;
    }
    size_t off = s->keys.len;
    if (sbuf_put(&s->keys, key, klen) != 0)
        return -1;
    cwl_dest *d = &s->dests[s->n_dests];
    memset(d, 0, sizeof *d);
    d->hash = h;
    d->key_off = off;
    d->key_len = klen;
    d->is_default = (uint8_t)is_def;
    s->dslots[j] = (uint32_t)++s->n_dests;
    return (long)s->n_dests - 1;
}

/* Expand one template into key+*kl, then the separator. */
static int key_part(cwl_sink *s, cwl_tmpl *t, const char *lit,
                    const lf_record *rec, char *key, size_t *kl, size_t max,
                    const char *what, char *why)
{
    char wb[128];
    long n = 0;
    if (t) {
        n = lf_tmpl_expand(t, s->host, rec, key + *kl, max + 1, wb, sizeof wb);
        if (n < 0) {
            snprintf(why, CWL_REASON_LEN, "%s: %s", what, wb);
            return -1;
        }
    } else if (lit) {
        n = (long)strlen(lit);
        memcpy(key + *kl, lit, (size_t)n);
    }
    *kl += (size_t)n;
    key[(*kl)++] = '\x1f';
    return 0;
}

/* The key "role \x1f extid \x1f group \x1f stream \x1f session" of the
 * record's destination. Its prefixes of 3 and 4 parts key the group and
 * stream state. Returns the length, or -1 with why set. */
static long route_key(cwl_sink *s, const lf_record *rec, char *key, int def,
                      char *why)
{
    size_t kl = 0, p;
    if (!def) {
        if (key_part(s, s->t_role, NULL, rec, key, &kl, CWL_ARN_MAX, "role_arn",
                     why) ||
            key_part(s, s->t_extid, NULL, rec, key, &kl, CWL_EXTID_MAX,
                     "external_id", why))
            return -1;
    } else {
        if (key_part(s, NULL, s->def_role, rec, key, &kl, CWL_ARN_MAX, "",
                     why) ||
            key_part(s, NULL, s->def_extid, rec, key, &kl, CWL_EXTID_MAX, "",
                     why))
            return -1;
    }
    p = kl;
    if (key_part(s, def ? NULL : s->t_group, def ? s->def_group : NULL, rec,
                 key, &kl, CWL_NAME_MAX, "log_group", why))
        return -1;
    if (!cwl_valid_group(key + p, kl - p - 1)) {
        snprintf(why, CWL_REASON_LEN,
                 "log_group: \"%.*s\" is not a valid log group name",
                 (int)(kl - p - 1 > 200 ? 200 : kl - p - 1), key + p);
        return -1;
    }
    p = kl;
    if (key_part(s, def ? s->t_def_stream : s->t_stream, NULL, rec, key, &kl,
                 CWL_NAME_MAX, def ? "default_log_stream" : "log_stream", why))
        return -1;
    if (!cwl_valid_stream(key + p, kl - p - 1)) {
        snprintf(why, CWL_REASON_LEN, "log_stream: not a valid stream name");
        return -1;
    }
    if (!def && key_part(s, s->t_session, NULL, rec, key, &kl, CWL_SESSION_MAX,
                         "session_name", why))
        return -1;
    if (def)
        key[kl++] = '\x1f';
    /* Whole-value checks of the identity. */
    const char *role = key;
    size_t rl = (size_t)((char *)memchr(key, '\x1f', kl) - key);
    if (rl && !lf_valid_role_arn(role, rl)) {
        snprintf(why, CWL_REASON_LEN,
                 "role_arn: \"%.*s\" is not a role ARN (12-digit account)",
                 (int)(rl > 200 ? 200 : rl), role);
        return -1;
    }
    const char *ext = key + rl + 1;
    size_t el = (size_t)((char *)memchr(ext, '\x1f', kl - rl - 1) - ext);
    if (el == 1) {
        snprintf(why, CWL_REASON_LEN, "external_id: shorter than 2 characters");
        return -1;
    }
    return (long)kl - 1; /* without the last separator */
}

/* Split every destination key into NUL-terminated parts in s->names. */
static int name_dests(cwl_sink *s)
{
    s->names.len = 0;
    if (sbuf_reserve(&s->names, s->keys.len + s->n_dests) != 0)
        return -1;
    for (size_t i = 0; i < s->n_dests; i++) {
        cwl_dest *d = &s->dests[i];
        char *p = s->names.p + s->names.len;
        memcpy(p, s->keys.p + d->key_off, d->key_len);
        p[d->key_len] = '\0';
        s->names.len += d->key_len + 1;
        const char *parts[5];
        size_t np = 0;
        parts[np++] = p;
        for (size_t j = 0; j < d->key_len && np < 5; j++)
            if (p[j] == '\x1f') {
                p[j] = '\0';
                parts[np++] = p + j + 1;
            }
        d->role = parts[0][0] ? parts[0] : NULL;
        d->extid = parts[1][0] ? parts[1] : NULL;
        d->group = parts[2];
        d->stream = parts[3];
        d->session = parts[4][0] ? parts[4] : NULL;
    }
    return 0;
}

/* ---- deliver: rendering -------------------------------------------------- */

static int emf_dim(cwl_sink *s, const lf_record *rec, const char *field)
{
    const char *v;
    size_t n = s->host->field(s->host, rec, field, &v);
    if (n == (size_t)-1 || n == 0) {
        v = "unknown"; /* a dimension value must not be empty */
        n = 7;
    }
    return cwl_json_str(&s->msgs, v, n);
}

static int emf_num(cwl_sink *s, const lf_record *rec, const char *name,
                   const char *field)
{
    const char *v;
    size_t n = s->host->field(s->host, rec, field, &v);
    if (n == (size_t)-1 || n == 0) {
        v = "0";
        n = 1;
    }
    return sbuf_printf(&s->msgs, ",\"%s\":", name) || sbuf_put(&s->msgs, v, n);
}

/* The record's JSON with its closing brace replaced by the EMF members. */
static int emf_tail(cwl_sink *s, const lf_record *rec, int64_t ts_ms)
{
    const char *st;
    size_t n = s->host->field(s->host, rec, "status", &st);
    int errors = n != (size_t)-1 &&
                 (strcmp(st, "error") == 0 || strcmp(st, "throttled") == 0 ||
                  strcmp(st, "timeout") == 0);
    sbuf *m = &s->msgs;
    return sbuf_printf(m, ",\"_aws\":{\"Timestamp\":%lld", (long long)ts_ms) ||
           sbuf_puts(m, s->emf_mid) || emf_dim(s, rec, "model_id") ||
           sbuf_puts(m, ",\"TenantId\":") || emf_dim(s, rec, "tenant_id") ||
           sbuf_puts(m, ",\"App\":") || emf_dim(s, rec, "app") ||
           emf_num(s, rec, "InputTokens", "input_tokens") ||
           emf_num(s, rec, "OutputTokens", "output_tokens") ||
           emf_num(s, rec, "LatencyMs", "latency_ms") ||
           sbuf_printf(m, ",\"Invocations\":1,\"Errors\":%d}", errors);
}

/* Render the record's message at the end of s->msgs: 0 with *off and *len
 * set; 1 when refused for good (*why set); -1 out of memory. */
static int render(cwl_sink *s, const lf_record *rec, int64_t ts_ms, size_t *off,
                  uint32_t *len, char *why)
{
    const lf_host *h = s->host;
    sbuf *m = &s->msgs;
    size_t start = m->len, total;
    if (sbuf_reserve(m, 64 * 1024) != 0)
        return -1;
    size_t avail = m->cap - start;
    size_t n = h->to_json(h, rec, m->p + start, avail);
    if (n >= avail) {
        if (n > CWL_MAX_EVENT_BYTES) {
            total = n;
            goto oversize;
        }
        if (sbuf_reserve(m, n + 1) != 0)
            return -1;
        n = h->to_json(h, rec, m->p + start, n + 1);
    }
    m->len = start + n;
    if (s->emf && n > 0 && m->p[m->len - 1] == '}') {
        m->len--;
        if (emf_tail(s, rec, ts_ms) != 0) {
            m->len = start;
            return -1;
        }
    }
    total = m->len - start;
    if (total <= CWL_MAX_EVENT_BYTES) {
        *off = start;
        *len = (uint32_t)total;
        return 0;
    }

oversize:
    m->len = start;
    h->counter_add(h, "events_oversize", 1);
    if (!s->truncate_oversize) {
        snprintf(why, CWL_REASON_LEN,
                 "event of %zu bytes is over the CloudWatch Logs limit of %d "
                 "bytes (oversize = \"dead_letter\")",
                 total, CWL_MAX_EVENT_BYTES);
        return 1;
    }
    /* The first bytes of the JSON, cut on a character boundary, then a
       marker saying how long it was. */
    char marker[80];
    int ml = snprintf(marker, sizeof marker,
                      "...[truncated by logferry: %zu bytes]", total);
    if (sbuf_reserve(m, CWL_MAX_EVENT_BYTES + 1) != 0)
        return -1;
    h->to_json(h, rec, m->p + start, CWL_MAX_EVENT_BYTES + 1);
    size_t keep = cwl_utf8_cut(m->p + start, CWL_MAX_EVENT_BYTES,
                               CWL_MAX_EVENT_BYTES - (size_t)ml);
    memcpy(m->p + start + keep, marker, (size_t)ml);
    m->len = start + keep + (size_t)ml;
    *off = start;
    *len = (uint32_t)(keep + (size_t)ml);
    h->counter_add(h, "events_truncated", 1);
    return 0;
}

/* ---- deliver ---------------------------------------------------------- */

/* Without holding (a host that cannot settle), flush_interval keeps its
 * old meaning: a small batch (the spool is drained) waits so that
 * trickling records, and records the core offers again after a
 * throttle, are sent about once per interval, not one by one. */
static void pace(cwl_sink *s, const lf_batch *b)
{
    if (s->hold_on || !s->hold_ns || !s->last_send_ns)
        return;
    size_t bytes = 0;
    for (size_t i = 0; i < b->count; i++)
        bytes += b->records[i].len;
    if (b->count >= CWL_BATCH_RECORDS / 2 || bytes >= CWL_BATCH_BYTES / 2)
        return;
    int64_t wait = s->last_send_ns + s->hold_ns - s->host->mono_ns(s->host);
    if (wait <= 0)
        return;
    struct timespec ts = {(time_t)(wait / 1000000000LL),
                          (long)(wait % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Floor division: an event at -1 ns is at -1 ms. */
static int64_t ns_to_ms(int64_t ns)
{
    int64_t q = ns / MS_NS;
    return (ns % MS_NS < 0) ? q - 1 : q;
}

/* Credentials handle, group and stream state of every destination. A
 * destination whose identity is refused fails here, records and all. */
static void attach_state(cwl_sink *s, int64_t mono)
{
    const lf_host *h = s->host;
    char key[CWL_KEY_MAX];
    for (size_t i = 0; i < s->n_dests; i++) {
        cwl_dest *d = &s->dests[i];
        const char *k = s->keys.p + d->key_off;
        /* prefixes: role,extid,group (3 parts) and +stream (4) */
        size_t cut3 = 0, cut4 = 0, seps = 0;
        for (size_t j = 0; j < d->key_len && !cut4; j++) {
            if (k[j] != '\x1f')
                continue;
            seps++;
            if (seps == 3)
                cut3 = j;
            else if (seps == 4)
                cut4 = j;
        }
        d->grp = cwl_state_get(&s->state, CWL_ENT_GROUP, k, cut3, mono);
        d->stm = cwl_state_get(&s->state, CWL_ENT_STREAM, k, cut4, mono);
        int kl =
            snprintf(key, sizeof key, "%s\x1f%s\x1f%s", d->role ? d->role : "",
                     d->extid ? d->extid : "", d->session ? d->session : "");
        d->creds =
            cwl_state_get(&s->state, CWL_ENT_CREDS, key, (size_t)kl, mono);
        const char *why = NULL;
        char err[300], reason[CWL_REASON_LEN];
        if (!d->grp || !d->stm || !d->creds) {
            why = "out of memory";
        } else if (!d->creds->creds) {
            lf_aws_identity id = {
                .region = s->region,
                .role_arn = d->role,
                .external_id = d->extid,
                .session_name = d->session,
            };
            err[0] = '\0';
            d->creds->creds = h->aws_creds_acquire(h, &id, err, sizeof err);
            if (!d->creds->creds) {
                snprintf(reason, sizeof reason,
                         "cannot use role %s for log group %s: %s",
                         d->role ? d->role : "(own credentials)", d->group,
                         err[0] ? err : "refused by the agent");
                why = reason;
                h->log(h, LF_LOG_WARN, "%s", reason);
            }
        }
        if (!why)
            continue;
        if (strcmp(why, "out of memory") == 0) {
            for (size_t j = 0; j < d->ev_n; j++)
                s->verd[s->events[d->ev_start + j].rec] = LF_REC_RETRY;
        } else {
            for (size_t j = 0; j < d->ev_n; j++)
                cwl_fail_record(s, s->events[d->ev_start + j].rec, why);
        }
        d->ev_n = 0;
    }
}

/* The batch's answer from the verdicts of its records (the first
 * b->count of s->verd), copied into b->verdict. */
static lf_deliver_status answer(cwl_sink *s, lf_batch *b)
{
    size_t n_ok = 0, n_retry = 0, n_fail = 0, n_hold = 0;
    memcpy(b->verdict, s->verd, b->count);
    for (size_t i = 0; i < b->count; i++) {
        if (b->verdict[i] == LF_REC_OK)
            n_ok++;
        else if (b->verdict[i] == LF_REC_RETRY)
            n_retry++;
        else if (b->verdict[i] == LF_REC_HOLD)
            n_hold++;
        else
            n_fail++;
    }
    uint32_t ra = 0;
    for (size_t i = 0; i < s->n_dests; i++)
        if (s->dests[i].retry_after_ms > ra)
            ra = s->dests[i].retry_after_ms;
    b->retry_after_ms = n_retry ? ra : 0;
    if (n_fail) {
        if (s->n_reasons == 1 && !s->other_refusals) {
            snprintf(s->fail_reason, sizeof s->fail_reason, "%s",
                     s->reasons[0].text);
        } else {
            /* One reason per batch in the ABI: name them all, counted. */
            size_t len =
                (size_t)snprintf(s->fail_reason, sizeof s->fail_reason,
                                 "%zu different refusals:",
                                 s->n_reasons + (s->other_refusals ? 1 : 0));
            for (size_t i = 0; i < s->n_reasons && len < sizeof s->fail_reason;
                 i++)
                len += (size_t)snprintf(
                    s->fail_reason + len, sizeof s->fail_reason - len,
                    " [%zu records] %s;", s->reasons[i].count,
                    s->reasons[i].text);
            if (s->other_refusals && len < sizeof s->fail_reason)
                snprintf(s->fail_reason + len, sizeof s->fail_reason - len,
                         " [%zu records] other reasons", s->other_refusals);
        }
        b->fail_reason = s->fail_reason;
    }
    if (n_hold)
        return LF_DELIVER_PARTIAL;
    if (n_fail == 0 && n_retry == 0)
        return LF_DELIVER_OK;
    if (n_retry == b->count)
        return LF_DELIVER_RETRY;
    if (n_fail == b->count && s->n_reasons == 1 && !s->other_refusals)
        return LF_DELIVER_FAIL;
    return LF_DELIVER_PARTIAL;
}

/* One run: the batch `b` (count 0 from poll() and flush()) and whatever
 * held streams are due, routed, grouped, held or sent, and settled.
 * Returns the batch's answer (verdicts in b->verdict). */
static lf_deliver_status run(cwl_sink *s, lf_batch *b, int flush)
{
    const lf_host *h = s->host;
    if (cwl_grow_records(s, b->count ? b->count : 1) != 0)
        return LF_DELIVER_RETRY;
    s->batch = b;
    s->n_recs = b->count;
    memset(s->verd, 0, b->count);
    s->n_hrecs = 0;
    s->msgs.len = s->keys.len = 0;
    s->n_dests = 0;
    s->n_reasons = 0;
    s->other_refusals = 0;
    if (s->dslots)
        memset(s->dslots, 0, s->n_dslots * sizeof *s->dslots);
    s->now_ms = ns_to_ms(h->now_ns(h));
    int64_t mono = h->mono_ns(h);
    uint64_t unroutable = 0, to_default = 0, too_old = 0, too_new = 0;

    char why[CWL_REASON_LEN], kb[CWL_KEY_MAX];
    for (size_t i = 0; i < b->count; i++) {
        const lf_record *rec = &b->records[i];
        s->rec_dest[i] = NO_DEST;
        int64_t ts = ns_to_ms(rec->event_time_ns);
        if (ts < s->now_ms - CWL_MAX_AGE_MS ||
            ts > s->now_ms + CWL_MAX_AHEAD_MS) {
            int old = ts < s->now_ms;
            old ? too_old++ : too_new++;
            if (!s->drop_out_of_range)
                cwl_fail_record(s, (uint32_t)i,
                                old ? "event older than 14 days (CloudWatch "
                                      "Logs refuses it)"
                                    : "event more than 2 h in the future "
                                      "(CloudWatch Logs refuses it)");
            continue;
        }
        long kl = route_key(s, rec, kb, 0, why);
        int def = 0;
        if (kl < 0) {
            char first[CWL_REASON_LEN];
            snprintf(first, sizeof first, "%s", why);
            if (s->def_group && (kl = route_key(s, rec, kb, 1, why)) >= 0) {
                def = 1;
                to_default++;
            } else {
                char r[CWL_REASON_LEN + 64];
                snprintf(r, sizeof r, "no destination for the record: %s%s",
                         first,
                         s->def_group ? "; default_log_stream failed too"
                                      : " (no default_log_group)");
                r[CWL_REASON_LEN - 1] = '\0';
                cwl_fail_record(s, (uint32_t)i, r);
                unroutable++;
                continue;
            }
        }
        size_t off;
        uint32_t len;
        int rc = render(s, rec, ts, &off, &len, why);
        if (rc == 1) {
            cwl_fail_record(s, (uint32_t)i, why);
            continue;
        }
        long d = rc == 0 ? cwl_dest_index(s, kb, (size_t)kl, def) : -1;
        if (d < 0) {
            s->verd[i] = LF_REC_RETRY; /* out of memory: next time */
            continue;
        }
        s->rec_dest[i] = (uint32_t)d;
        s->rec_ev[i] = (cwl_event){ts, (uint32_t)i, len, off};
        cwl_dest *dd = &s->dests[d];
        if (dd->ev_n == 0 || ts < dd->min_ts)
            dd->min_ts = ts;
        if (dd->ev_n == 0 || ts > dd->max_ts)
            dd->max_ts = ts;
        dd->ev_n++;
        dd->cw_bytes += len + CWL_EVENT_OVERHEAD;
    }
    if (unroutable)
        h->counter_add(h, "records_unroutable", unroutable);
    if (to_default)
        h->counter_add(h, "records_to_default", to_default);
    if (too_old)
        h->counter_add(h, "events_too_old", too_old);
    if (too_new)
        h->counter_add(h, "events_too_new", too_new);

    /* Group the events by destination, in batch order. */
    size_t pos = 0;
    for (size_t d = 0; d < s->n_dests; d++) {
        s->dests[d].ev_start = pos;
        pos += s->dests[d].ev_n;
        s->dests[d].ev_n = 0;
    }
    for (size_t i = 0; i < b->count; i++) {
        uint32_t d = s->rec_dest[i];
        if (d == NO_DEST)
            continue;
        cwl_dest *dd = &s->dests[d];
        s->events[dd->ev_start + dd->ev_n++] = s->rec_ev[i];
    }
    /* A failed plan changed nothing; past it, held records were read
       back and must be settled whatever happens. */
    if (s->hold_on && cwl_hold_plan(s, flush) != 0) {
        cwl_state_sweep(&s->state, mono, s->idle_ns);
        return LF_DELIVER_RETRY;
    }
    if (name_dests(s) != 0) {
        for (size_t i = 0; i < s->n_recs; i++)
            if (s->verd[i] == LF_REC_OK)
                s->verd[i] = LF_REC_RETRY;
        if (s->hold_on)
            cwl_hold_settle(s);
        cwl_state_sweep(&s->state, mono, s->idle_ns);
        return answer(s, b);
    }
    attach_state(s, mono);

    /* Sort and split each destination into requests. */
    size_t nch = 0;
    for (size_t d = 0; d < s->n_dests; d++) {
        cwl_dest *dd = &s->dests[d];
        cwl_plan_sort(s->events + dd->ev_start, dd->ev_n);
        dd->ch_start = nch;
        dd->ch_n =
            cwl_plan_split(s->events + dd->ev_start, dd->ev_n, CWL_MAX_EVENTS,
                           CWL_MAX_REQUEST_BYTES, s->chunks + nch);
        nch += dd->ch_n;
    }

    if (s->hold_on)
        cwl_hold_tails(s);

    /* Only destinations with requests go to the pool: with holding most
       have none, and one alone is sent here without waking a thread. */
    s->n_work = 0;
    for (size_t d = 0; d < s->n_dests; d++)
        if (s->dests[d].ch_n)
            s->work[s->n_work++] = (uint32_t)d;
    cwl_pool_run(s->pool, cwl_send_dest, s, s->n_work);
    s->deliveries++;
    if (s->hold_on)
        cwl_hold_settle(s);

    size_t evicted = cwl_state_sweep(&s->state, h->mono_ns(h), s->idle_ns);
    if (evicted)
        h->counter_add(h, "state_evicted", evicted);
    return answer(s, b);
}

static lf_deliver_status cwl_deliver(void *inst, lf_batch *b)
{
    cwl_sink *s = inst;
    if (b->count == 0)
        return LF_DELIVER_OK;
    pace(s, b);
    lf_deliver_status st = run(s, b, 0);
    s->last_send_ns = s->host->mono_ns(s->host);
    return st;
}

/* Send what is due of the held streams (no new records). */
static int64_t cwl_poll(void *inst)
{
    cwl_sink *s = inst;
    if (!s->hold_on || s->n_held == 0)
        return -1;
    uint8_t none;
    lf_batch empty = {.verdict = &none};
    run(s, &empty, 0);
    return cwl_hold_next_ms(s);
}

/* At a stop: every held stream gets one attempt; the read-back budget
 * may need several runs for that. What stays held is delivered again
 * by the core after the restart. */
static int cwl_flush(void *inst)
{
    cwl_sink *s = inst;
    if (!s->hold_on)
        return 0;
    size_t rounds = s->n_held + 1;
    cwl_hold_untry(s);
    uint8_t none;
    lf_batch empty = {.verdict = &none};
    for (size_t i = 0; i < rounds && s->n_held; i++) {
        run(s, &empty, 1);
        if (!s->hold_more)
            break;
    }
    return s->n_held ? -1 : 0;
}

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "cloudwatch",
    .description = "Sends records to Amazon CloudWatch Logs, each into its "
                   "own tenant's account, log group and stream, within "
                   "every PutLogEvents limit.",
    .config_keys = cwl_keys,
    .n_config_keys = K_COUNT,
    .max_batch_records = CWL_BATCH_RECORDS,
    .max_batch_bytes = CWL_BATCH_BYTES,
    .create = cwl_create,
    .deliver = cwl_deliver,
    .flush = cwl_flush,
    .destroy = cwl_destroy,
    .validate = cwl_validate,
    .poll = cwl_poll,
};

LF_SINK_MODULE(ops)
