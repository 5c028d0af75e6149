/*
 * awshttp.c - libcurl transport, AWS error parsing and the single error
 * classification for AWS callers. See awshttp.h for the contract.
 */
#include "aws/awshttp.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <expat.h>
#include <jansson.h>

#include "aws/awsbuf.h"
#include "log.h"

#ifndef LF_VERSION
#define LF_VERSION "0"
#endif

#define MAX_RETRY_AFTER_MS (20u * 60u * 1000u)

/* ---- classification tables -------------------------------------------- */

/* Throttling and transient server-side codes: try again after backoff.
 * From botocore's retry handler (THROTTLING_ERRORS, TRANSIENT_ERRORS) and
 * the service docs of Logs, S3 and STS. */
static const char *const retryable_codes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceUnavailableError",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceException",
    "RequestTimeout",
    "RequestTimeoutException",
    "OperationAborted",
    "IDPCommunicationError",
    /* Clock skew: a re-signed retry with a fresh timestamp can succeed. */
    "RequestTimeTooSkewed",
    "RequestInTheFuture",
    NULL,
};

/* The credentials are stale: refresh and retry. */
static const char *const expired_codes[] = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    NULL,
};

/* The credentials are unknown to AWS. Right after an AssumeRole the new
 * key may not have propagated, and a cached key may have been revoked, so
 * one refresh is worth it; if the fresh key is refused the same way, it is
 * permanent (awshttp_error_after_refresh). */
static const char *const refresh_once_codes[] = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidToken",
    "InvalidAccessKeyId",
    NULL,
};

static int in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return 1;
    return 0;
}

const char *awshttp_class_name(awshttp_class c)
{
    switch (c) {
    case AWSHTTP_OK:
        return "ok";
    case AWSHTTP_RETRYABLE:
        return "retryable";
    case AWSHTTP_PERMANENT:
        return "permanent";
    case AWSHTTP_AUTH_EXPIRED:
        return "auth-expired";
    }
    return "?";
}

static void copy_cut(char *dst, size_t cap, const char *src, size_t n)
{
    if (!cap)
        return;
    if (n >= cap)
        n = cap - 1;
    /* Control characters would break log lines; AWS never sends any in a
       code or message that matters. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    dst[n] = '\0';
}

/* "com.amazonaws.logs#ThrottlingException" -> "ThrottlingException";
 * "ThrottlingException:http://internal..." -> "ThrottlingException". */
static void set_code(awshttp_error *e, const char *raw)
{
    if (!raw)
        return;
    const char *hash = strrchr(raw, '#');
    const char *s = hash ? hash + 1 : raw;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, ": \t\r\n");
    copy_cut(e->code, sizeof e->code, s, n);
}

uint32_t awshttp_parse_retry_after(const char *v, int64_t now)
{
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return 0;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end)
            return 0;
        if (s > MAX_RETRY_AFTER_MS / 1000u)
            return MAX_RETRY_AFTER_MS;
        return (uint32_t)(s * 1000u);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    /* IMF-fixdate, the only form RFC 9110 asks senders to use. */
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return 0;
    int64_t t = (int64_t)timegm(&tm);
    if (t <= now)
        return 0;
    int64_t ms = (t - now) * 1000;
    return ms > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : (uint32_t)ms;
}

/* ---- XML ---------------------------------------------------------------- */

typedef struct xml_state {
    const char *const *names;
    size_t n;
    awsbuf *bufs;
    int *state; /* 0 unseen, 1 capturing, 2 done */
    int *at_depth;
    int depth;
    int err;
    XML_Parser p;
} xml_state;

static const char *local_name(const char *qname)
{
    const char *c = strrchr(qname, ':');
    return c ? c + 1 : qname;
}

static void XMLCALL xml_start(void *ud, const XML_Char *name,
                              const XML_Char **attrs)
{
    (void)attrs;
    xml_state *x = ud;
    x->depth++;
    const char *ln = local_name(name);
    for (size_t i = 0; i < x->n; i++) {
        if (x->state[i] == 0 && strcmp(ln, x->names[i]) == 0) {
            x->state[i] = 1;
            x->at_depth[i] = x->depth;
        }
    }
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
    (void)name;
    xml_state *x = ud;
    for (size_t i = 0; i < x->n; i++)
        if (x->state[i] == 1 && x->at_depth[i] == x->depth)
            x->state[i] = 2;
    x->depth--;
}

static void XMLCALL xml_text(void *ud, const XML_Char *s, int len)
{
    xml_state *x = ud;
    for (size_t i = 0; i < x->n; i++) {
        if (x->state[i] != 1)
            continue;
        if (awsbuf_add(&x->bufs[i], s, (size_t)len) != 0) {
            x->err = x->bufs[i].err;
            XML_StopParser(x->p, XML_FALSE);
            return;
        }
    }
}

/* Refuse DTDs outright: AWS answers never have one, and it closes the
 * door on entity expansion tricks. */
static void XMLCALL xml_doctype(void *ud, const XML_Char *name,
                                const XML_Char *sysid, const XML_Char *pubid,
                                int has_internal)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal;
    xml_state *x = ud;
    x->err = -EINVAL;
    XML_StopParser(x->p, XML_FALSE);
}

int awshttp_xml_fields(const char *body, size_t len, const char *const *names,
                       char **values, size_t n, size_t cap)
{
    if (!values || (n && !names))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        values[i] = NULL;
    if (!body || len == 0 || len > (size_t)INT32_MAX)
        return -EINVAL;
    int rc = 0;
    xml_state x;
    memset(&x, 0, sizeof x);
    x.names = names;
    x.n = n;
    x.bufs = calloc(n ? n : 1, sizeof *x.bufs);
    x.state = calloc(n ? n : 1, sizeof *x.state);
    x.at_depth = calloc(n ? n : 1, sizeof *x.at_depth);
    x.p = XML_ParserCreate("UTF-8");
    if (!x.bufs || !x.state || !x.at_depth || !x.p) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        awsbuf_init(&x.bufs[i], cap);
    XML_SetUserData(x.p, &x);
    XML_SetElementHandler(x.p, xml_start, xml_end);
    XML_SetCharacterDataHandler(x.p, xml_text);
    XML_SetStartDoctypeDeclHandler(x.p, xml_doctype);
    if (XML_Parse(x.p, body, (int)len, XML_TRUE) != XML_STATUS_OK) {
        rc = x.err ? x.err : -EINVAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (x.state[i] == 2) {
            values[i] = awsbuf_take(&x.bufs[i]);
            if (!values[i]) {
                rc = -ENOMEM;
                goto out;
            }
        }
    }
out:
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(values[i]);
            values[i] = NULL;
        }
    if (x.bufs)
        for (size_t i = 0; i < n; i++)
            awsbuf_free(&x.bufs[i]);
    free(x.bufs);
    free(x.state);
    free(x.at_depth);
    if (x.p)
        XML_ParserFree(x.p);
    return rc;
}

/* ---- error bodies ---------------------------------------------------------
 */

static void trim_copy(char *dst, size_t cap, const char *s)
{
    if (!s)
        return;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    copy_cut(dst, cap, s, n);
}

static void parse_json_error(const char *body, size_t len, awshttp_error *e)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return;
    }
    static const char *const code_keys[] = {"__type", "code", "Code", NULL};
    static const char *const msg_keys[] = {"message", "Message", "errorMessage",
                                           NULL};
    for (int i = 0; code_keys[i] && !e->code[0]; i++)
        set_code(e, json_string_value(json_object_get(j, code_keys[i])));
    for (int i = 0; msg_keys[i] && !e->message[0]; i++)
        trim_copy(e->message, sizeof e->message,
                  json_string_value(json_object_get(j, msg_keys[i])));
    json_decref(j);
}

static void parse_xml_error(const char *body, size_t len, awshttp_error *e)
{
    static const char *const names[] = {"Code", "Message", "RequestId",
                                        "RequestID"};
    char *v[4];
    if (awshttp_xml_fields(body, len, names, v, 4, 4096) != 0)
        return;
    if (v[0]) {
        char tmp[256];
        trim_copy(tmp, sizeof tmp, v[0]);
        set_code(e, tmp);
    }
    trim_copy(e->message, sizeof e->message, v[1]);
    if (!e->request_id[0])
        trim_copy(e->request_id, sizeof e->request_id, v[2] ? v[2] : v[3]);
    for (int i = 0; i < 4; i++)
        free(v[i]);
}

static awshttp_class class_of_code(const char *code)
{
    if (!code[0])
        return AWSHTTP_OK; /* unknown: let the status decide */
    if (in_list(retryable_codes, code))
        return AWSHTTP_RETRYABLE;
    if (in_list(expired_codes, code) || in_list(refresh_once_codes, code))
        return AWSHTTP_AUTH_EXPIRED;
    return AWSHTTP_OK;
}

static awshttp_class class_of_status(long status)
{
    if (status >= 200 && status < 300)
        return AWSHTTP_OK;
    if (status == 429 || status == 408 || status >= 500)
        return AWSHTTP_RETRYABLE;
    return AWSHTTP_PERMANENT;
}

void awshttp_classify(long status, const char *body, size_t len,
                      const char *amzn_error_type, const char *request_id,
                      const char *retry_after, int64_t now, awshttp_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = status;
    trim_copy(out->request_id, sizeof out->request_id, request_id);
    if (status >= 200 && status < 300) {
        out->cls = AWSHTTP_OK;
        return;
    }
    if (body && len) {
        size_t i = 0;
        while (i < len && isspace((unsigned char)body[i]))
            i++;
        if (i < len && body[i] == '{')
            parse_json_error(body + i, len - i, out);
        else if (i < len && body[i] == '<')
            parse_xml_error(body + i, len - i, out);
    }
    if (!out->code[0] && amzn_error_type)
        set_code(out, amzn_error_type);
    out->retry_after_ms = awshttp_parse_retry_after(retry_after, now);
    awshttp_class c = class_of_code(out->code);
    out->cls = c != AWSHTTP_OK ? c : class_of_status(status);
    if (out->cls == AWSHTTP_OK) /* 1xx/3xx that reached here */
        out->cls = AWSHTTP_PERMANENT;
}

void awshttp_classify_transport(int curl_code, long status, awshttp_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = status;
    out->curl_code = curl_code;
    const char *code = "TransportError";
    awshttp_class c = AWSHTTP_RETRYABLE;
    switch ((CURLcode)curl_code) {
    case CURLE_OPERATION_TIMEDOUT:
        code = "Timeout";
        break;
    case CURLE_COULDNT_CONNECT:
        code = "ConnectionFailed";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        code = "NameResolutionFailed";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        code = "ConnectionReset";
        break;
    case CURLE_PARTIAL_FILE:
        code = "PartialBody";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        code = "TlsVerificationFailed";
        c = AWSHTTP_PERMANENT;
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        code = "InvalidRequest";
        c = AWSHTTP_PERMANENT;
        break;
    case CURLE_OUT_OF_MEMORY:
        code = "OutOfMemory";
        break;
    default:
        break;
    }
    out->cls = c;
    snprintf(out->code, sizeof out->code, "%s", code);
    snprintf(out->message, sizeof out->message, "%s",
             curl_easy_strerror((CURLcode)curl_code));
}

void awshttp_error_after_refresh(awshttp_error *e)
{
    if (!e || e->cls != AWSHTTP_AUTH_EXPIRED)
        return;
    e->cls = in_list(refresh_once_codes, e->code) ? AWSHTTP_PERMANENT
                                                  : AWSHTTP_RETRYABLE;
}

/* ---- endpoint helper -------------------------------------------------------
 */

int awshttp_endpoint(const char *override, const char *prefix,
                     const char *region, char *out, size_t cap)
{
    int n;
    if (override && *override) {
        size_t l = strlen(override);
        while (l && override[l - 1] == '/')
            l--;
        n = snprintf(out, cap, "%.*s", (int)l, override);
    } else {
        if (!prefix || !region || !*region)
            return -1;
        for (const char *p = region; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-'))
                return -1;
        const char *suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn"
                                                            : "amazonaws.com";
        n = snprintf(out, cap, "https://%s.%s.%s", prefix, region, suffix);
    }
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* ---- the client -------------------------------------------------------------
 */

typedef struct pool_slot {
    char key[300]; /* scheme://host:port */
    CURL **idle;
    size_t n_idle;
} pool_slot;

struct awshttp_client {
    awshttp_config cfg; /* strings point to the copies below */
    char *ca_file, *ca_path, *user_agent;
    pthread_mutex_t mu;
    pool_slot *slots;
    size_t n_slots;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = (int)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void hlog(const awshttp_client *c, lf_log_level lvl, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));
static void hlog(const awshttp_client *c, lf_log_level lvl, const char *fmt,
                 ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cfg.log)
        c->cfg.log(c->cfg.log_ud, lvl, msg);
    else
        log_msg(lvl, "aws http", "%s", msg);
}

awshttp_client *awshttp_client_create(const awshttp_config *cfg, char *err,
                                      size_t errlen)
{
    awshttp_client *c = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != 0) {
        snprintf(err, errlen, "curl_global_init failed: %s",
                 curl_easy_strerror((CURLcode)curl_init_rc));
        goto fail;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    if (cfg)
        c->cfg = *cfg;
    if (c->cfg.connect_timeout_ms <= 0)
        c->cfg.connect_timeout_ms = 5000;
    if (c->cfg.total_timeout_ms <= 0)
        c->cfg.total_timeout_ms = 30000;
    if (!c->cfg.max_response_bytes)
        c->cfg.max_response_bytes = AWSHTTP_DEFAULT_MAX_RESPONSE;
    if (!c->cfg.pool_per_endpoint)
        c->cfg.pool_per_endpoint = 4;
    if (!c->cfg.max_endpoints)
        c->cfg.max_endpoints = 32;
    if ((c->cfg.ca_file && !(c->ca_file = strdup(c->cfg.ca_file))) ||
        (c->cfg.ca_path && !(c->ca_path = strdup(c->cfg.ca_path))))
        goto nomem;
    if (c->cfg.user_agent)
        c->user_agent = strdup(c->cfg.user_agent);
    else if (asprintf(&c->user_agent, "logferry/%s", LF_VERSION) < 0)
        c->user_agent = NULL;
    if (!c->user_agent)
        goto nomem;
    c->cfg.ca_file = c->ca_file;
    c->cfg.ca_path = c->ca_path;
    c->cfg.user_agent = c->user_agent;
    c->slots = calloc(c->cfg.max_endpoints, sizeof *c->slots);
    if (!c->slots)
        goto nomem;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        snprintf(err, errlen, "mutex init failed");
        free(c->slots);
        c->slots = NULL;
        goto fail;
    }
    if (c->cfg.insecure)
        hlog(c, LF_LOG_WARN,
             "TLS VERIFICATION IS OFF (insecure=true): certificates and host "
             "names are not checked, anyone on the path can read and alter "
             "AWS traffic and credentials. For tests only.");
    return c;

nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (c) {
        free(c->slots);
        free(c->ca_file);
        free(c->ca_path);
        free(c->user_agent);
        free(c);
    }
    return NULL;
}

void awshttp_client_destroy(awshttp_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_slots; i++) {
        for (size_t j = 0; j < c->slots[i].n_idle; j++)
            curl_easy_cleanup(c->slots[i].idle[j]);
        free(c->slots[i].idle);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c->ca_file);
    free(c->ca_path);
    free(c->user_agent);
    free(c);
}

/* Take an idle handle for this endpoint, or make one. */
static CURL *pool_get(awshttp_client *c, const char *key)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_slots; i++) {
        if (strcmp(c->slots[i].key, key) == 0 && c->slots[i].n_idle) {
            h = c->slots[i].idle[--c->slots[i].n_idle];
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_reset(h); /* keeps its live connections */
    else
        h = curl_easy_init();
    return h;
}

/* Give a handle back; its open connection is then reused by the next
 * request to the same endpoint. Dropped (closed) if the pool is full. */
static void pool_put(awshttp_client *c, const char *key, CURL *h, int keep)
{
    if (!keep) {
        curl_easy_cleanup(h);
        return;
    }
    pthread_mutex_lock(&c->mu);
    pool_slot *s = NULL;
    for (size_t i = 0; i < c->n_slots && !s; i++)
        if (strcmp(c->slots[i].key, key) == 0)
            s = &c->slots[i];
    if (!s && c->n_slots < c->cfg.max_endpoints) {
        s = &c->slots[c->n_slots];
        s->idle = calloc(c->cfg.pool_per_endpoint, sizeof *s->idle);
        if (s->idle) {
            snprintf(s->key, sizeof s->key, "%s", key);
            c->n_slots++;
        } else {
            s = NULL;
        }
    }
    if (s && s->n_idle < c->cfg.pool_per_endpoint) {
        s->idle[s->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

typedef struct xfer {
    awsbuf body;
    awsbuf hdrs;
    int too_big;
} xfer;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = sz * n;
    if (awsbuf_add(&x->body, p, len) != 0) {
        x->too_big = x->body.err == -E2BIG;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = sz * n;
    /* A new status line (after 100 Continue or an interim answer) starts
       the header block of the final answer over. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        size_t cap = x->hdrs.cap;
        awsbuf_free(&x->hdrs);
        awsbuf_init(&x->hdrs, cap);
    }
    awsbuf_add(&x->hdrs, p, len); /* over the cap: headers dropped */
    return len;
}

static int hdr_lookup(const char *block, const char *name, char *out,
                      size_t cap)
{
    if (!block)
        return -1;
    size_t nl = strlen(name);
    const char *p = block;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && isspace((unsigned char)v[vl - 1]))
                vl--;
            if (vl >= cap)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return -1;
}

int awshttp_response_header(const awshttp_response *r, const char *name,
                            char *out, size_t cap)
{
    if (!r || !name || !out || !cap)
        return -1;
    return hdr_lookup(r->headers, name, out, cap);
}

void awshttp_response_free(awshttp_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static void fail_req(awshttp_error *err, const char *msg)
{
    memset(err, 0, sizeof *err);
    err->cls = AWSHTTP_PERMANENT;
    snprintf(err->code, sizeof err->code, "InvalidRequest");
    snprintf(err->message, sizeof err->message, "%s", msg);
}

static int slist_add(struct curl_slist **l, const char *name, const char *value)
{
    char *line = NULL;
    /* "Name;" is curl's way to send a header with an empty value. */
    int n = *value ? asprintf(&line, "%s: %s", name, value)
                   : asprintf(&line, "%s;", name);
    if (n < 0)
        return -1;
    struct curl_slist *t = curl_slist_append(*l, line);
    free(line);
    if (!t)
        return -1;
    *l = t;
    return 0;
}

awshttp_class awshttp_perform(awshttp_client *c, const awshttp_request *req,
                              awshttp_response *resp, awshttp_error *err)
{
    CURLU *u = NULL;
    CURL *h = NULL;
    struct curl_slist *hl = NULL;
    sigv4_result sig;
    memset(&sig, 0, sizeof sig);
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL,
         *query = NULL;
    sigv4_header *sh = NULL;
    xfer x;
    awsbuf_init(&x.body, c ? c->cfg.max_response_bytes : 0);
    awsbuf_init(&x.hdrs, AWSHTTP_MAX_RESPONSE_HEADERS);
    x.too_big = 0;
    char key[300] = "";
    int keep = 0;

    memset(resp, 0, sizeof *resp);
    if (!c || !req || !req->method || !req->url ||
        (req->n_headers && !req->headers) || (req->body_len && !req->body)) {
        fail_req(err, "missing method, URL or headers");
        goto out;
    }
    u = curl_url();
    /* PATH_AS_IS: the path is signed as given, so it must be sent as
       given (curl would otherwise squash "/../" of an S3 key). */
    if (!u || curl_url_set(u, CURLUPART_URL, req->url, CURLU_PATH_AS_IS) ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
        curl_url_get(u, CURLUPART_PATH, &path, 0)) {
        fail_req(err, "malformed URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
        query = NULL;
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        fail_req(err, "URL scheme must be http or https");
        goto out;
    }
    snprintf(key, sizeof key, "%s://%s:%s", scheme, host, port);
    int default_port =
        (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
        (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0);
    char hosthdr[300];
    snprintf(hosthdr, sizeof hosthdr, "%s%s%s", host, default_port ? "" : ":",
             default_port ? "" : port);

    /* Headers: Host, the caller's, then what the signer adds. */
    sh = calloc(req->n_headers + 1, sizeof *sh);
    if (!sh) {
        fail_req(err, "out of memory");
        goto out;
    }
    sh[0] = (sigv4_header){"Host", hosthdr};
    int has_accept = 0, has_ctype = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const sigv4_header *hd = &req->headers[i];
        if (!hd->name || !hd->value || has_crlf(hd->name) ||
            has_crlf(hd->value) || strcasecmp(hd->name, "Host") == 0) {
            fail_req(err, "invalid header (NULL, CR/LF, or Host)");
            goto out;
        }
        if (strcasecmp(hd->name, "Accept") == 0)
            has_accept = 1;
        if (strcasecmp(hd->name, "Content-Type") == 0)
            has_ctype = 1;
        sh[i + 1] = *hd;
    }
    if (req->creds) {
        sigv4_request sr = {req->method,        path,      query,        sh,
                            req->n_headers + 1, req->body, req->body_len};
        sigv4_options so = {
            req->region,       req->service,
            req->now,          req->sign_flags & ~(unsigned)SIGV4_PRESIGN,
            req->payload_hash, 0};
        int rc = sigv4_sign(&sr, req->creds, &so, NULL, &sig);
        if (rc) {
            char m[96];
            snprintf(m, sizeof m, "signing failed (%s)",
                     rc == -E2BIG ? "request over a size cap"
                                  : "invalid request or credentials");
            fail_req(err, m);
            goto out;
        }
    }
    int bad = 0;
    for (size_t i = 0; i < req->n_headers + 1; i++)
        bad |= slist_add(&hl, sh[i].name, sh[i].value);
    for (size_t i = 0; i < sig.n_add_headers; i++)
        bad |=
            slist_add(&hl, sig.add_headers[i].name, sig.add_headers[i].value);
    /* No "Expect: 100-continue" round trip, and no default Accept that
       was not asked for. */
    struct curl_slist *t = curl_slist_append(hl, "Expect:");
    bad |= !t;
    hl = t ? t : hl;
    if (!has_accept) {
        t = curl_slist_append(hl, "Accept:");
        bad |= !t;
        hl = t ? t : hl;
    }
    /* Nor the form Content-Type curl puts on a POST body by itself. */
    if (!has_ctype) {
        t = curl_slist_append(hl, "Content-Type:");
        bad |= !t;
        hl = t ? t : hl;
    }
    if (bad) {
        fail_req(err, "out of memory");
        goto out;
    }

    h = pool_get(c, key);
    if (!h) {
        fail_req(err, "curl_easy_init failed");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms
                                         : c->cfg.total_timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->cfg.insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->cfg.insecure ? 0L : 2L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->ca_path)
        curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path);
    if (req->no_proxy)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") == 0 && !req->body_len) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (req->body_len || strcmp(req->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                             req->body_len ? req->body : "");
        }
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode cc = curl_easy_perform(h);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                     (t1.tv_nsec - t0.tv_nsec) / 1000000);

    if (x.too_big) {
        memset(err, 0, sizeof *err);
        err->cls = AWSHTTP_PERMANENT;
        err->http_status = status;
        err->curl_code = (int)cc;
        snprintf(err->code, sizeof err->code, "ResponseTooLarge");
        snprintf(err->message, sizeof err->message,
                 "response body over the %zu byte cap",
                 c->cfg.max_response_bytes);
        resp->status = status;
    } else if (cc != CURLE_OK) {
        awshttp_classify_transport((int)cc, status, err);
        resp->status = status;
    } else {
        keep = 1;
        resp->status = status;
        resp->headers = awsbuf_take(&x.hdrs);
        resp->body_len = x.body.len;
        resp->body = awsbuf_take(&x.body);
        if (!resp->body || !resp->headers) {
            awshttp_response_free(resp);
            fail_req(err, "out of memory");
        } else {
            char rid[128] = "", ra[64] = "", et[256] = "";
            if (hdr_lookup(resp->headers, "x-amzn-RequestId", rid, sizeof rid) <
                0)
                hdr_lookup(resp->headers, "x-amz-request-id", rid, sizeof rid);
            hdr_lookup(resp->headers, "Retry-After", ra, sizeof ra);
            hdr_lookup(resp->headers, "x-amzn-ErrorType", et, sizeof et);
            awshttp_classify(status, resp->body, resp->body_len,
                             et[0] ? et : NULL, rid, ra[0] ? ra : NULL,
                             req->now, err);
        }
    }
    err->curl_code = (int)cc;
    /* Path only: the query may hold a presigned signature or a token. */
    hlog(c, LF_LOG_DEBUG,
         "%s %s://%s%s -> status=%ld class=%s code=%s request_id=%s "
         "ms=%ld",
         req->method, scheme, hosthdr, path, status,
         awshttp_class_name(err->cls), err->code[0] ? err->code : "-",
         err->request_id[0] ? err->request_id : "-", ms);

out:
    if (h)
        pool_put(c, key, h, keep);
    curl_slist_free_all(hl);
    sigv4_result_free(&sig);
    free(sh);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    awsbuf_free(&x.body);
    awsbuf_free(&x.hdrs);
    return err->cls;
}
