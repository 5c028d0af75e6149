/*
 * aws_host.c - lf_host.aws_* on top of agent/aws/{awshttp,creds,sigv4}.
 * See aws_host.h.
 */
#include "aws_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/awshttp.h"
#include "aws/creds.h"
#include "host.h"
#include "log.h"

struct aws_host {
    awshttp_client *http;
    creds_ctx ctx;
    creds_cache *cache;
    char *region, *profile, *sts_endpoint, *imds_endpoint, *container_endpoint;
    char *akid, *secret, *token; /* static keys, if configured */
};

/* What a sink holds: the shared cache entry and the identity's region. */
struct lf_aws_creds {
    creds_handle *h;
    char region[64];
    char desc[320]; /* "assume-role arn:...": for errors, no secret */
};

static void aws_log(void *ud, lf_log_level level, const char *msg)
{
    (void)ud;
    log_msg(level, "aws", "%s", msg);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

aws_host *aws_host_create(const conf_block *c, char *err, size_t errlen)
{
    aws_host *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    awshttp_config hc = {
        .connect_timeout_ms = (long)c->v[AK_CONNECT_TIMEOUT].i,
        .total_timeout_ms = (long)c->v[AK_REQUEST_TIMEOUT].i,
        .max_response_bytes = (size_t)c->v[AK_MAX_RESPONSE].i,
        .ca_file = c->v[AK_CA_FILE].s,
        .ca_path = c->v[AK_CA_PATH].s,
        .insecure = c->v[AK_INSECURE_TLS].b,
        .log = aws_log,
    };
    a->http = awshttp_client_create(&hc, err, errlen);
    if (!a->http)
        goto fail;
    a->region = dup_or_null(c->v[AK_REGION].s);
    a->profile = dup_or_null(c->v[AK_PROFILE].s);
    a->sts_endpoint = dup_or_null(c->v[AK_STS_ENDPOINT].s);
    a->imds_endpoint = dup_or_null(c->v[AK_IMDS_ENDPOINT].s);
    a->container_endpoint = dup_or_null(c->v[AK_CONTAINER_ENDPOINT].s);
    a->akid = dup_or_null(c->v[AK_ACCESS_KEY_ID].s);
    a->secret = dup_or_null(c->v[AK_SECRET_ACCESS_KEY].s);
    a->token = dup_or_null(c->v[AK_SESSION_TOKEN].s);
    a->ctx = (creds_ctx){
        .http = a->http,
        .log = aws_log,
        .region = a->region,
        .sts_endpoint = a->sts_endpoint,
        .imds_endpoint = a->imds_endpoint,
        .container_endpoint = a->container_endpoint,
    };
    a->cache = creds_cache_create(&a->ctx, NULL);
    if (!a->cache) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (a->akid) {
        char red[64];
        log_warn("msg=\"static AWS keys in the config file; prefer the "
                 "environment, a profile or an instance/container role\" "
                 "access_key_id=%s",
                 creds_redact_key_id(a->akid, red, sizeof red));
    }
    return a;
fail:
    aws_host_destroy(a);
    return NULL;
}

void aws_host_destroy(aws_host *a)
{
    if (!a)
        return;
    creds_cache_destroy(a->cache);
    awshttp_client_destroy(a->http);
    free(a->region);
    free(a->profile);
    free(a->sts_endpoint);
    free(a->imds_endpoint);
    free(a->container_endpoint);
    if (a->secret)
        memset(a->secret, 0, strlen(a->secret));
    if (a->token)
        memset(a->token, 0, strlen(a->token));
    free(a->akid);
    free(a->secret);
    free(a->token);
    free(a);
}

size_t aws_host_identities(aws_host *a)
{
    return creds_cache_entries(a->cache);
}

static aws_host *of(const lf_host *h)
{
    return ((sink_host *)h->priv)->aws;
}

static lf_aws_creds *h_acquire(const lf_host *h, const lf_aws_identity *id,
                               char *err, size_t errlen)
{
    aws_host *a = of(h);
    if (!a || !id || !id->region || !*id->region) {
        snprintf(err, errlen, "%s",
                 !a ? "AWS services are not available"
                    : "an AWS identity needs a region");
        return NULL;
    }
    lf_aws_creds *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->region, sizeof c->region, "%s", id->region);
    creds_provider *p =
        a->akid ? creds_static_provider(&a->ctx, a->akid, a->secret, a->token,
                                        err, errlen)
                : creds_chain_provider(&a->ctx, a->profile, err, errlen);
    if (!p)
        goto fail;
    if (id->role_arn && *id->role_arn) {
        creds_role_opts o = {
            .role_arn = id->role_arn,
            .external_id =
                id->external_id && *id->external_id ? id->external_id : NULL,
            .session_name = id->session_name,
            .duration_s = id->duration_s,
            .region = id->region,
            .endpoint = id->sts_endpoint,
        };
        /* Takes `p` over, also on failure. */
        p = creds_assume_role_provider(&a->ctx, p, &o, err, errlen);
        if (!p)
            goto fail;
    }
    snprintf(c->desc, sizeof c->desc, "%s", p->desc);
    c->h = creds_cache_acquire(a->cache, p);
    if (!c->h) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return c;
fail:
    free(c);
    return NULL;
}

static void h_release(const lf_host *h, lf_aws_creds *c)
{
    (void)h;
    if (!c)
        return;
    creds_cache_release(c->h);
    free(c);
}

static lf_aws_class map_class(awshttp_class c)
{
    switch (c) {
    case AWSHTTP_OK:
        return LF_AWS_OK;
    case AWSHTTP_RETRYABLE:
        return LF_AWS_RETRYABLE;
    case AWSHTTP_AUTH_EXPIRED:
        return LF_AWS_AUTH;
    case AWSHTTP_PERMANENT:
    default:
        return LF_AWS_PERMANENT;
    }
}

static void fill_error(lf_aws_result *out, const awshttp_error *e)
{
    out->cls = map_class(e->cls);
    out->status = e->http_status;
    snprintf(out->code, sizeof out->code, "%s", e->code);
    snprintf(out->message, sizeof out->message, "%s", e->message);
    snprintf(out->request_id, sizeof out->request_id, "%s", e->request_id);
    out->retry_after_ms = e->retry_after_ms;
}

static lf_aws_class h_call(const lf_host *h, lf_aws_creds *c,
                           const lf_aws_request *req, lf_aws_result *out)
{
    aws_host *a = of(h);
    memset(out, 0, sizeof *out);
    out->body = "";
    awshttp_response *resp = calloc(1, sizeof *resp);
    if (!resp) {
        out->cls = LF_AWS_RETRYABLE;
        snprintf(out->message, sizeof out->message, "out of memory");
        return out->cls;
    }
    out->priv = resp;
    /* sigv4_header and lf_aws_header have the same members; copy rather
       than cast so the two stay free to evolve. */
    sigv4_header stackh[16], *hdrs = stackh;
    if (req->n_headers > 16 &&
        !(hdrs = malloc(req->n_headers * sizeof *hdrs))) {
        out->cls = LF_AWS_RETRYABLE;
        snprintf(out->message, sizeof out->message, "out of memory");
        return out->cls;
    }
    for (size_t i = 0; i < req->n_headers; i++)
        hdrs[i] = (sigv4_header){req->headers[i].name, req->headers[i].value};

    awshttp_error e;
    memset(&e, 0, sizeof e);
    for (int attempt = 0; attempt < 2; attempt++) {
        creds_value cv = {0};
        if (creds_get(c->h, &cv, &e) != 0) {
            /* No credentials at all: a sink treats a retryable cause
               (STS throttled, IMDS down) as RETRY and the rest as an
               authentication failure naming the identity. */
            fill_error(out, &e);
            if (out->cls != LF_AWS_RETRYABLE)
                out->cls = LF_AWS_AUTH;
            /* Name the identity, then as much of the cause as fits. */
            int n = snprintf(out->message, sizeof out->message,
                             "credentials for %.300s: ", c->desc);
            if (n > 0 && (size_t)n < sizeof out->message)
                snprintf(out->message + n, sizeof out->message - (size_t)n,
                         "%.64s%s%.200s", e.code, *e.code ? ": " : "",
                         e.message);
            break;
        }
        sigv4_creds sc = creds_value_sigv4(&cv);
        awshttp_request r = {
            .method = req->method,
            .url = req->url,
            .headers = hdrs,
            .n_headers = req->n_headers,
            .body = req->body,
            .body_len = req->body_len,
            .creds = &sc,
            .region = req->region ? req->region : c->region,
            .service = req->service,
            .sign_flags = req->s3 ? SIGV4_S3 | SIGV4_CONTENT_SHA256 : 0,
            .payload_hash =
                req->s3 && req->unsigned_payload ? "UNSIGNED-PAYLOAD" : NULL,
            .now = (int64_t)time(NULL),
            .timeout_ms = (long)req->timeout_ms,
        };
        awshttp_response_free(resp);
        memset(&e, 0, sizeof e);
        awshttp_class cls = awshttp_perform(a->http, &r, resp, &e);
        if (cls == AWSHTTP_AUTH_EXPIRED && attempt == 0) {
            /* Refresh once and try again. */
            creds_invalidate(c->h, &cv);
            creds_value_free(&cv);
            continue;
        }
        creds_value_free(&cv);
        if (cls == AWSHTTP_AUTH_EXPIRED)
            awshttp_error_after_refresh(&e);
        fill_error(out, &e);
        out->status = resp->status;
        out->body = resp->body ? resp->body : "";
        out->body_len = resp->body_len;
        break;
    }
    if (hdrs != stackh)
        free(hdrs);
    return out->cls;
}

static size_t h_header(const lf_host *h, const lf_aws_result *r,
                       const char *name, char *out, size_t cap)
{
    (void)h;
    if (!r->priv)
        return (size_t)-1;
    int n = awshttp_response_header(r->priv, name, out, cap);
    return n < 0 ? (size_t)-1 : (size_t)n;
}

static void h_free(const lf_host *h, lf_aws_result *r)
{
    (void)h;
    if (!r || !r->priv)
        return;
    awshttp_response_free(r->priv);
    free(r->priv);
    r->priv = NULL;
    r->body = "";
    r->body_len = 0;
}

void aws_host_attach(aws_host *a, lf_host *h)
{
    ((sink_host *)h->priv)->aws = a;
    h->aws_creds_acquire = h_acquire;
    h->aws_creds_release = h_release;
    h->aws_call = h_call;
    h->aws_result_header = h_header;
    h->aws_result_free = h_free;
}
