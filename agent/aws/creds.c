/*
 * creds.c - credential providers, STS AssumeRole and the shared cache.
 * See creds.h for the chain order and the secrecy rule; every log line
 * and error text here goes through creds_redact_* or carries no
 * credential material at all.
 */
#include "aws/creds.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "aws/awsbuf.h"
#include "log.h"

#define MAX_FILE_BYTES (1024 * 1024) /* shared config / credentials file */
#define MAX_TOKEN_FILE (64 * 1024)   /* web identity / container token */
#define MAX_PROFILE_DEPTH 5
#define IMDS_TOKEN_TTL 21600
#define LINK_LOCAL_TIMEOUT_MS 2000

/* ---- values and redaction ------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void creds_value_free(creds_value *v)
{
    if (!v)
        return;
    wipe_free(v->access_key_id);
    wipe_free(v->secret_access_key);
    wipe_free(v->session_token);
    memset(v, 0, sizeof *v);
}

int creds_value_copy(creds_value *dst, const creds_value *src)
{
    memset(dst, 0, sizeof *dst);
    dst->expiration = src->expiration;
    if ((src->access_key_id &&
         !(dst->access_key_id = strdup(src->access_key_id))) ||
        (src->secret_access_key &&
         !(dst->secret_access_key = strdup(src->secret_access_key))) ||
        (src->session_token &&
         !(dst->session_token = strdup(src->session_token)))) {
        creds_value_free(dst);
        return -ENOMEM;
    }
    return 0;
}

sigv4_creds creds_value_sigv4(const creds_value *v)
{
    sigv4_creds c = {v->access_key_id, v->secret_access_key, v->session_token};
    return c;
}

char *creds_redact_key_id(const char *akid, char *out, size_t cap)
{
    size_t n = akid ? strlen(akid) : 0;
    if (n < 8)
        snprintf(out, cap, "[redacted]");
    else
        snprintf(out, cap, "%.4s...%s", akid, akid + n - 2);
    return out;
}

char *creds_redact_secret(const char *s, char *out, size_t cap)
{
    if (!s)
        snprintf(out, cap, "[none]");
    else
        snprintf(out, cap, "[redacted, %zu chars]", strlen(s));
    return out;
}

/* Replace every occurrence of `secret` in msg (an error text from a
 * server) by "[redacted]": an AWS message is not supposed to echo an
 * ExternalId or a key, but an emulator or proxy might. */
static void scrub(char *msg, size_t cap, const char *secret)
{
    if (!secret || strlen(secret) < 2)
        return;
    size_t sl = strlen(secret);
    char *p;
    while ((p = strstr(msg, secret))) {
        const char *r = "[redacted]";
        size_t rl = strlen(r), tail = strlen(p + sl);
        if ((size_t)(p - msg) + rl + tail + 1 > cap)
            tail = cap - 1 - (size_t)(p - msg) - rl;
        memmove(p + rl, p + sl, tail);
        memcpy(p, r, rl);
        p[rl + tail] = '\0';
    }
}

/* ---- context helpers --------------------------------------------------------
 */

static const char *process_getenv(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

static const creds_env process_env = {process_getenv, NULL};

const creds_env *creds_env_process(void)
{
    return &process_env;
}

static const char *env_get(const creds_ctx *ctx, const char *name)
{
    const creds_env *e = ctx->env ? ctx->env : &process_env;
    const char *v = e->get(e->ud, name);
    return v && *v ? v : NULL;
}

static int64_t ctx_now(const creds_ctx *ctx)
{
    return ctx->now ? ctx->now(ctx->clock_ud) : (int64_t)time(NULL);
}

static _Atomic uint64_t prng_state;

static uint64_t ctx_rand(const creds_ctx *ctx)
{
    if (ctx->rand)
        return ctx->rand(ctx->rand_ud);
    /* splitmix64 over an atomic counter seeded once: jitter only needs
       to spread refreshes apart, not to be unpredictable. */
    uint64_t s = atomic_load(&prng_state);
    if (s == 0) {
        uint64_t seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
        atomic_compare_exchange_strong(&prng_state, &s, seed | 1);
    }
    uint64_t z = atomic_fetch_add(&prng_state, 0x9e3779b97f4a7c15ull) +
                 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void clog_(const creds_ctx *ctx, lf_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void clog_(const creds_ctx *ctx, lf_log_level lvl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->log)
        ctx->log(ctx->log_ud, lvl, msg);
    else
        log_msg(lvl, "aws creds", "%s", msg);
}

static void set_err(awshttp_error *e, awshttp_class cls, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_err(awshttp_error *e, awshttp_class cls, const char *code,
                    const char *fmt, ...)
{
    memset(e, 0, sizeof *e);
    e->cls = cls;
    snprintf(e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *ctx_region(const creds_ctx *ctx, const char *pref)
{
    if (pref && *pref)
        return pref;
    if (ctx->region && *ctx->region)
        return ctx->region;
    const char *r = env_get(ctx, "AWS_REGION");
    if (!r)
        r = env_get(ctx, "AWS_DEFAULT_REGION");
    return r ? r : "us-east-1";
}

/* ISO 8601 "2015-08-30T13:36:00Z", optional fraction and +hh:mm offset. */
static int64_t parse_iso8601(const char *s)
{
    int Y, M, D, h, m, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec,
                     &n) != 6)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    int64_t t = (int64_t)timegm(&tm);
    const char *p = s + n;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
            return -1;
        int64_t off = (int64_t)oh * 3600 + om * 60;
        t += *p == '+' ? -off : off;
    } else if (*p != 'Z' && *p != '\0') {
        return -1;
    }
    return t;
}

static char *read_small_file(const char *path, size_t cap, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    awsbuf b;
    awsbuf_init(&b, cap);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (awsbuf_add(&b, chunk, n) != 0)
            break;
    fclose(f);
    if (b.err) {
        *err = b.err == -E2BIG ? EFBIG : ENOMEM;
        awsbuf_free(&b);
        return NULL;
    }
    return awsbuf_take(&b);
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static int dup_field(char **dst, const char *src)
{
    if (!src || !*src || strlen(src) > CREDS_MAX_FIELD)
        return -1;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static creds_provider *provider_new(const creds_ctx *ctx, const char *kind)
{
    creds_provider *p = calloc(1, sizeof *p);
    if (p) {
        p->kind = kind;
        p->ctx = ctx;
        snprintf(p->desc, sizeof p->desc, "%s", kind);
    }
    return p;
}

void creds_provider_destroy(creds_provider *p)
{
    if (p)
        p->destroy(p);
}

/* ---- static and environment -------------------------------------------------
 */

typedef struct static_impl {
    creds_value v;
} static_impl;

static int static_fetch(creds_provider *p, creds_value *out, awshttp_error *err)
{
    static_impl *s = p->impl;
    if (creds_value_copy(out, &s->v) != 0) {
        set_err(err, AWSHTTP_RETRYABLE, "OutOfMemory", "out of memory");
        return CREDS_ERROR;
    }
    return 0;
}

static int notfound_fetch(creds_provider *p, creds_value *out,
                          awshttp_error *err)
{
    (void)out;
    set_err(err, AWSHTTP_PERMANENT, "NoCredentials", "%s: not configured",
            p->desc);
    return CREDS_NOT_FOUND;
}

static void static_destroy(creds_provider *p)
{
    static_impl *s = p->impl;
    if (s) {
        creds_value_free(&s->v);
        free(s);
    }
    free(p);
}

static creds_provider *make_static(const creds_ctx *ctx, const char *kind,
                                   const char *akid, const char *secret,
                                   const char *token, char *err, size_t errlen)
{
    creds_provider *p = provider_new(ctx, kind);
    static_impl *s = calloc(1, sizeof *s);
    if (!p || !s) {
        free(p);
        free(s);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    p->impl = s;
    p->destroy = static_destroy;
    p->fetch = static_fetch;
    if (dup_field(&s->v.access_key_id, akid) != 0 ||
        dup_field(&s->v.secret_access_key, secret) != 0 ||
        (token && *token && dup_field(&s->v.session_token, token) != 0)) {
        errf(err, errlen,
             "%s: access key id and secret are required (at "
             "most %d bytes each)",
             kind, CREDS_MAX_FIELD);
        static_destroy(p);
        return NULL;
    }
    snprintf(p->identity, sizeof p->identity, "%s:%s", kind, akid);
    char r[32];
    snprintf(p->desc, sizeof p->desc, "%s key_id=%s", kind,
             creds_redact_key_id(akid, r, sizeof r));
    return p;
}

creds_provider *creds_static_provider(const creds_ctx *ctx, const char *akid,
                                      const char *secret, const char *token,
                                      char *err, size_t errlen)
{
    return make_static(ctx, "static", akid, secret, token, err, errlen);
}

static creds_provider *make_notfound(const creds_ctx *ctx, const char *kind,
                                     const char *identity)
{
    creds_provider *p = provider_new(ctx, kind);
    if (!p)
        return NULL;
    p->fetch = notfound_fetch;
    p->destroy = static_destroy;
    snprintf(p->identity, sizeof p->identity, "%s", identity);
    return p;
}

creds_provider *creds_env_provider(const creds_ctx *ctx, char *err,
                                   size_t errlen)
{
    const char *a = env_get(ctx, "AWS_ACCESS_KEY_ID");
    const char *s = env_get(ctx, "AWS_SECRET_ACCESS_KEY");
    const char *t = env_get(ctx, "AWS_SESSION_TOKEN");
    if (!a && !s) {
        creds_provider *p = make_notfound(ctx, "env", "env:none");
        if (!p)
            errf(err, errlen, "out of memory");
        return p;
    }
    if (!a || !s) {
        errf(err, errlen, "environment: %s is set but %s is not",
             a ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
             a ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return NULL;
    }
    return make_static(ctx, "env", a, s, t, err, errlen);
}

/* ---- STS (AssumeRole, AssumeRoleWithWebIdentity)
 * ------------------------------ */

static void form_add(awsbuf *b, const char *k, const char *v)
{
    char enc[3 * 4096 + 1];
    if (b->len)
        awsbuf_addc(b, '&');
    awsbuf_adds(b, k);
    awsbuf_addc(b, '=');
    size_t need = sigv4_uri_encode(v, strlen(v), 0, enc, sizeof enc);
    if (need >= sizeof enc) {
        b->err = b->err ? b->err : -E2BIG;
        return;
    }
    awsbuf_add(b, enc, need);
}

/* POST a query-protocol STS call and read <Credentials>. `signer` NULL
 * sends it unsigned (AssumeRoleWithWebIdentity). The error message is
 * scrubbed of every string in `hide`. */
static int sts_call(const creds_ctx *ctx, const char *endpoint,
                    const char *region, const char *body,
                    const sigv4_creds *signer, const char *const *hide,
                    size_t n_hide, creds_value *out, awshttp_error *err)
{
    if (!ctx->http) {
        set_err(err, AWSHTTP_PERMANENT, "NoHttpClient",
                "no HTTP client for STS");
        return CREDS_ERROR;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s/", endpoint);
    sigv4_header h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "POST";
    rq.url = url;
    rq.headers = h;
    rq.n_headers = 1;
    rq.body = body;
    rq.body_len = strlen(body);
    rq.creds = signer;
    rq.region = region;
    rq.service = "sts";
    rq.now = ctx_now(ctx);
    awshttp_response resp;
    awshttp_class cls = awshttp_perform(ctx->http, &rq, &resp, err);
    int rc = CREDS_ERROR;
    if (cls != AWSHTTP_OK) {
        for (size_t i = 0; i < n_hide; i++)
            scrub(err->message, sizeof err->message, hide[i]);
        goto out;
    }
    static const char *const names[] = {"AccessKeyId", "SecretAccessKey",
                                        "SessionToken", "Expiration"};
    char *v[4];
    if (awshttp_xml_fields(resp.body, resp.body_len, names, v, 4,
                           CREDS_MAX_FIELD) != 0 ||
        !v[0] || !v[1] || !v[2] || !v[3]) {
        for (int i = 0; i < 4; i++)
            wipe_free(v[i]);
        set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                "STS answer without complete <Credentials>");
        err->http_status = resp.status;
        goto out;
    }
    for (int i = 0; i < 3; i++)
        rtrim(v[i]);
    out->access_key_id = v[0];
    out->secret_access_key = v[1];
    out->session_token = v[2];
    out->expiration = parse_iso8601(v[3]);
    free(v[3]);
    if (out->expiration <= 0) {
        creds_value_free(out);
        set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                "STS answer with an unreadable Expiration");
        goto out;
    }
    rc = 0;
out:
    awshttp_response_free(&resp);
    return rc;
}

static int sts_endpoint(const creds_ctx *ctx, const char *override,
                        const char *region, char *out, size_t cap)
{
    return awshttp_endpoint(override ? override : ctx->sts_endpoint, "sts",
                            region, out, cap);
}

/* ---- validation ------------------------------------------------------------
 */

static int charset_ok(const char *s, const char *extra)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(isalnum(c) || c == '_' || strchr(extra, c)))
            return 0;
    }
    return 1;
}

int creds_validate_role_arn(const char *arn, char *err, size_t errlen)
{
    /* arn:<partition>:iam::<12 digits>:role/<path/name> */
    if (!arn || strlen(arn) > 2048 || strncmp(arn, "arn:aws", 7) != 0) {
        errf(err, errlen,
             "role ARN must look like "
             "arn:aws:iam::123456789012:role/name");
        return -1;
    }
    const char *p = arn + 7;
    while (*p == '-' || (*p >= 'a' && *p <= 'z'))
        p++;
    if (strncmp(p, ":iam::", 6) != 0)
        goto bad;
    p += 6;
    for (int i = 0; i < 12; i++, p++)
        if (!isdigit((unsigned char)*p))
            goto bad;
    if (strncmp(p, ":role/", 6) != 0 || !p[6] || !charset_ok(p + 6, "+=,.@/-"))
        goto bad;
    return 0;
bad:
    errf(err, errlen,
         "invalid role ARN \"%.200s\": want "
         "arn:aws[-partition]:iam::<12-digit account>:role/<name>",
         arn);
    return -1;
}

int creds_validate_external_id(const char *id, char *err, size_t errlen)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 2 || n > 1224 || !charset_ok(id, "+=,.@:/-")) {
        /* Never echo it: it is a shared secret with the customer. */
        errf(err, errlen,
             "invalid ExternalId (%zu chars): want 2-1224 "
             "characters of [A-Za-z0-9_+=,.@:/-]",
             n);
        return -1;
    }
    return 0;
}

int creds_validate_session_name(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 2 || n > 64 || !charset_ok(name, "+=,.@-")) {
        errf(err, errlen,
             "invalid role session name \"%.64s\": want 2-64 "
             "characters of [A-Za-z0-9_+=,.@-]",
             name ? name : "");
        return -1;
    }
    return 0;
}

void creds_default_session_name(const char *hostname, char *out, size_t cap)
{
    char host[256] = "";
    if (hostname)
        snprintf(host, sizeof host, "%s", hostname);
    else if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    if (!host[0])
        snprintf(host, sizeof host, "unknown");
    char name[65];
    int n = snprintf(name, sizeof name, "logferry-%s", host);
    (void)n;
    for (char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(isalnum(c) || strchr("_+=,.@-", c)))
            *p = '-';
    }
    snprintf(out, cap, "%s", name);
}

/* ---- AssumeRole
 * -------------------------------------------------------------- */

typedef struct role_impl {
    creds_provider *base;
    char *role_arn, *external_id, *session_name, *region, *endpoint;
    uint32_t duration_s;
} role_impl;

static int role_fetch(creds_provider *p, creds_value *out, awshttp_error *err)
{
    role_impl *r = p->impl;
    const creds_ctx *ctx = p->ctx;
    creds_value base;
    memset(&base, 0, sizeof base);
    int rc = r->base->fetch(r->base, &base, err);
    if (rc == CREDS_NOT_FOUND) {
        set_err(err, AWSHTTP_PERMANENT, "NoCredentials",
                "AssumeRole %.200s: the source credentials (%s) are not "
                "configured",
                r->role_arn, r->base->desc);
        return CREDS_ERROR;
    }
    if (rc != 0)
        return CREDS_ERROR;

    char dur[16];
    snprintf(dur, sizeof dur, "%u", (unsigned)r->duration_s);
    awsbuf b;
    awsbuf_init(&b, 16384);
    form_add(&b, "Action", "AssumeRole");
    form_add(&b, "Version", "2011-06-15");
    form_add(&b, "RoleArn", r->role_arn);
    form_add(&b, "RoleSessionName", r->session_name);
    form_add(&b, "DurationSeconds", dur);
    if (r->external_id)
        form_add(&b, "ExternalId", r->external_id);
    char *body = awsbuf_take(&b);
    char ep[512];
    if (!body || sts_endpoint(ctx, r->endpoint, r->region, ep, sizeof ep)) {
        free(body);
        creds_value_free(&base);
        set_err(err, AWSHTTP_PERMANENT, "InvalidRequest",
                "AssumeRole: cannot build the request");
        return CREDS_ERROR;
    }
    sigv4_creds sc = creds_value_sigv4(&base);
    const char *hide[] = {r->external_id, base.secret_access_key,
                          base.session_token};
    rc = sts_call(ctx, ep, r->region, body, &sc, hide, 3, out, err);
    if (r->external_id)
        OPENSSL_cleanse(body, strlen(body));
    free(body);
    creds_value_free(&base);
    if (rc != 0)
        clog_(ctx, LF_LOG_DEBUG,
              "AssumeRole %.200s failed: class=%s code=%s status=%ld "
              "request_id=%s",
              r->role_arn, awshttp_class_name(err->cls), err->code,
              err->http_status, err->request_id);
    return rc;
}

static void role_destroy(creds_provider *p)
{
    role_impl *r = p->impl;
    if (r) {
        creds_provider_destroy(r->base);
        free(r->role_arn);
        wipe_free(r->external_id);
        free(r->session_name);
        free(r->region);
        free(r->endpoint);
        free(r);
    }
    free(p);
}

creds_provider *creds_assume_role_provider(const creds_ctx *ctx,
                                           creds_provider *base,
                                           const creds_role_opts *o, char *err,
                                           size_t errlen)
{
    creds_provider *p = NULL;
    role_impl *r = NULL;
    char session[80];
    if (!base || !o) {
        errf(err, errlen, "AssumeRole needs a base provider and options");
        goto fail;
    }
    if (creds_validate_role_arn(o->role_arn, err, errlen) != 0)
        goto fail;
    if (o->external_id &&
        creds_validate_external_id(o->external_id, err, errlen) != 0)
        goto fail;
    if (o->session_name)
        snprintf(session, sizeof session, "%s", o->session_name);
    else
        creds_default_session_name(ctx->hostname, session, sizeof session);
    if (creds_validate_session_name(o->session_name ? o->session_name : session,
                                    err, errlen) != 0)
        goto fail;
    uint32_t dur = o->duration_s ? o->duration_s : 3600;
    if (dur < 900 || dur > 43200) {
        errf(err, errlen, "AssumeRole duration %u s is outside 900..43200",
             (unsigned)dur);
        goto fail;
    }
    const char *region = ctx_region(ctx, o->region);
    char ep[512];
    if (sts_endpoint(ctx, o->endpoint, region, ep, sizeof ep) != 0) {
        errf(err, errlen, "invalid STS region or endpoint");
        goto fail;
    }
    p = provider_new(ctx, "assume-role");
    r = calloc(1, sizeof *r);
    if (!p || !r)
        goto nomem;
    p->impl = r;
    p->fetch = role_fetch;
    p->destroy = role_destroy;
    r->duration_s = dur;
    if (!(r->role_arn = strdup(o->role_arn)) ||
        !(r->session_name = strdup(session)) || !(r->region = strdup(region)) ||
        (o->external_id && !(r->external_id = strdup(o->external_id))) ||
        (o->endpoint && !(r->endpoint = strdup(o->endpoint))))
        goto nomem;
    r->base = base;
    base = NULL;

    /* Identity: readable role ARN, then a hash of everything that makes
       the credentials differ (ExternalId included, never in clear). */
    char material[4096], h[65];
    snprintf(material, sizeof material, "%s\n%s\n%s\n%s\n%u\n%s\n%s",
             r->base->identity, r->role_arn,
             r->external_id ? r->external_id : "", r->session_name, dur, ep,
             region);
    sigv4_sha256_hex(material, strlen(material), h);
    OPENSSL_cleanse(material, sizeof material);
    snprintf(p->identity, sizeof p->identity, "assume-role:%.300s:%.32s",
             r->role_arn, h);
    char ext[48];
    snprintf(p->desc, sizeof p->desc, "assume-role %.200s external_id=%s",
             r->role_arn, creds_redact_secret(r->external_id, ext, sizeof ext));
    return p;

nomem:
    errf(err, errlen, "out of memory");
fail:
    if (p) {
        p->impl = r; /* role_destroy frees r and r->base if set */
        role_destroy(p);
    } else {
        free(r);
    }
    creds_provider_destroy(base); /* NULL once r owns it */
    return NULL;
}

/* ---- shared files
 * -------------------------------------------------------------- */

typedef struct ini_kv {
    char *section, *key, *value;
} ini_kv;

typedef struct ini {
    ini_kv *kv;
    size_t n, cap;
    char **sections;
    size_t n_sections;
} ini;

static void ini_free(ini *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->kv[i].section);
        free(f->kv[i].key);
        wipe_free(f->kv[i].value);
    }
    free(f->kv);
    for (size_t i = 0; i < f->n_sections; i++)
        free(f->sections[i]);
    free(f->sections);
    memset(f, 0, sizeof *f);
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

/* Parse an AWS shared file. In the config file "[profile x]" is profile
 * x and "[default]" the default; other sections ("sso-session", "services")
 * are not profiles and are skipped. Indented lines continue a nested
 * value and are ignored. Returns 0 (also for a missing file), or -1 with
 * err. */
static int ini_load(const char *path, int is_config, ini *f, char *err,
                    size_t errlen)
{
    memset(f, 0, sizeof *f);
    int e = 0;
    char *text = read_small_file(path, MAX_FILE_BYTES, &e);
    if (!text) {
        if (e == ENOENT || e == ENOTDIR)
            return 0;
        errf(err, errlen, "%s: %s", path,
             e == EFBIG ? "file too large" : strerror(e));
        return -1;
    }
    char *section = NULL;
    int lineno = 0, rc = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (!len || line[0] == '#' || line[0] == ';' ||
            isspace((unsigned char)line[0]))
            continue;
        if (line[0] == '[') {
            char *close = strchr(line, ']');
            free(section);
            section = NULL;
            if (!close) {
                errf(err, errlen, "%s:%d: unterminated section header", path,
                     lineno);
                rc = -1;
                break;
            }
            char *name = trim_dup(line + 1, (size_t)(close - line - 1));
            if (!name) {
                rc = -1;
                break;
            }
            if (!is_config || strcmp(name, "default") == 0) {
                section = name;
            } else if (strncmp(name, "profile", 7) == 0 &&
                       isspace((unsigned char)name[7])) {
                section = trim_dup(name + 8, strlen(name + 8));
                free(name);
            } else {
                free(name); /* not a profile section */
            }
            if (section) {
                char **ns =
                    realloc(f->sections, (f->n_sections + 1) * sizeof *ns);
                char *copy = strdup(section);
                if (!ns || !copy) {
                    free(copy);
                    if (ns)
                        f->sections = ns;
                    rc = -1;
                    break;
                }
                f->sections = ns;
                f->sections[f->n_sections++] = copy;
            }
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq) {
            errf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        if (!section)
            continue;
        if (f->n == f->cap) {
            size_t nc = f->cap ? f->cap * 2 : 16;
            ini_kv *nk = realloc(f->kv, nc * sizeof *nk);
            if (!nk) {
                rc = -1;
                break;
            }
            f->kv = nk;
            f->cap = nc;
        }
        ini_kv *kv = &f->kv[f->n];
        kv->section = strdup(section);
        kv->key = trim_dup(line, (size_t)(eq - line));
        kv->value = trim_dup(eq + 1, strlen(eq + 1));
        if (!kv->section || !kv->key || !kv->value) {
            free(kv->section);
            free(kv->key);
            free(kv->value);
            rc = -1;
            break;
        }
        /* configparser lowercases option names; so do we */
        for (char *k = kv->key; *k; k++)
            *k = (char)tolower((unsigned char)*k);
        f->n++;
    }
    free(section);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (rc && err && !err[0])
        errf(err, errlen, "%s: out of memory", path);
    if (rc)
        ini_free(f);
    return rc;
}

static const char *ini_get(const ini *f, const char *section, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < f->n; i++) /* last one wins */
        if (strcmp(f->kv[i].section, section) == 0 &&
            strcmp(f->kv[i].key, key) == 0)
            v = f->kv[i].value;
    return v && *v ? v : NULL;
}

static int ini_has(const ini *f, const char *section)
{
    for (size_t i = 0; i < f->n_sections; i++)
        if (strcmp(f->sections[i], section) == 0)
            return 1;
    return 0;
}

typedef struct files {
    ini config, cred;
} files;

/* The credentials file wins over the config file, as in the SDKs. */
static const char *prof_get(const files *fs, const char *profile,
                            const char *key)
{
    const char *v = ini_get(&fs->cred, profile, key);
    return v ? v : ini_get(&fs->config, profile, key);
}

static int expand_path(const creds_ctx *ctx, const char *p, char *out,
                       size_t cap)
{
    if (p[0] == '~' && p[1] == '/') {
        const char *home = ctx->home ? ctx->home : env_get(ctx, "HOME");
        if (!home)
            return -1;
        int n = snprintf(out, cap, "%s%s", home, p + 1);
        return (n < 0 || (size_t)n >= cap) ? -1 : 0;
    }
    int n = snprintf(out, cap, "%s", p);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static creds_provider *provider_for_source(const creds_ctx *ctx,
                                           const char *src, char *err,
                                           size_t errlen)
{
    if (strcmp(src, "Environment") == 0)
        return creds_env_provider(ctx, err, errlen);
    if (strcmp(src, "Ec2InstanceMetadata") == 0)
        return creds_imds_provider(ctx, err, errlen);
    if (strcmp(src, "EcsContainer") == 0)
        return creds_container_provider(ctx, err, errlen);
    errf(err, errlen,
         "credential_source \"%.64s\" is not one of "
         "Environment, Ec2InstanceMetadata, EcsContainer",
         src);
    return NULL;
}

static creds_provider *resolve_profile(const creds_ctx *ctx, const files *fs,
                                       const char *name, int depth,
                                       int as_source, const char **visited,
                                       char *err, size_t errlen)
{
    if (!ini_has(&fs->config, name) && !ini_has(&fs->cred, name)) {
        errf(err, errlen,
             "profile \"%.64s\" not found in the shared "
             "config or credentials file",
             name);
        return NULL;
    }
    const char *akid = prof_get(fs, name, "aws_access_key_id");
    const char *secret = prof_get(fs, name, "aws_secret_access_key");
    const char *token = prof_get(fs, name, "aws_session_token");
    const char *role = prof_get(fs, name, "role_arn");
    char kind[16] = "profile";

    /* A source profile with keys is used for its keys, even if it names a
       role itself (the SDKs' rule). */
    if ((as_source || !role) && akid && secret) {
        creds_provider *p =
            make_static(ctx, "profile", akid, secret, token, err, errlen);
        if (p) {
            char r[32];
            snprintf(p->desc, sizeof p->desc, "profile %.64s key_id=%s", name,
                     creds_redact_key_id(akid, r, sizeof r));
        }
        return p;
    }
    if (!role) {
        if (akid || secret) {
            errf(err, errlen,
                 "profile \"%.64s\": aws_access_key_id and "
                 "aws_secret_access_key must both be set",
                 name);
            return NULL;
        }
        creds_provider *p = make_notfound(ctx, kind, "profile:empty");
        if (p)
            snprintf(p->desc, sizeof p->desc, "profile %.64s (no keys)", name);
        else
            errf(err, errlen, "out of memory");
        return p;
    }

    const char *src_prof = prof_get(fs, name, "source_profile");
    const char *src_cred = prof_get(fs, name, "credential_source");
    creds_provider *base = NULL;
    if (src_prof && src_cred) {
        errf(err, errlen,
             "profile \"%.64s\": source_profile and "
             "credential_source are exclusive",
             name);
        return NULL;
    }
    if (src_prof) {
        for (int i = 0; i < depth; i++)
            if (strcmp(visited[i], src_prof) == 0 &&
                strcmp(src_prof, name) != 0) {
                errf(err, errlen,
                     "profile \"%.64s\": source_profile loop "
                     "through \"%.64s\"",
                     name, src_prof);
                return NULL;
            }
        if (depth + 1 >= MAX_PROFILE_DEPTH) {
            errf(err, errlen, "profile \"%.64s\": role chain deeper than %d",
                 name, MAX_PROFILE_DEPTH);
            return NULL;
        }
        visited[depth + 1] = src_prof;
        if (strcmp(src_prof, name) == 0) {
            /* source_profile = itself: its own keys sign the call */
            if (!akid || !secret) {
                errf(err, errlen,
                     "profile \"%.64s\" is its own "
                     "source_profile but has no keys",
                     name);
                return NULL;
            }
            base =
                make_static(ctx, "profile", akid, secret, token, err, errlen);
        } else {
            base = resolve_profile(ctx, fs, src_prof, depth + 1, 1, visited,
                                   err, errlen);
        }
    } else if (src_cred) {
        base = provider_for_source(ctx, src_cred, err, errlen);
    } else {
        errf(err, errlen,
             "profile \"%.64s\": role_arn needs source_profile "
             "or credential_source",
             name);
        return NULL;
    }
    if (!base)
        return NULL;

    creds_role_opts o;
    memset(&o, 0, sizeof o);
    o.role_arn = role;
    o.external_id = prof_get(fs, name, "external_id");
    o.session_name = prof_get(fs, name, "role_session_name");
    o.region = prof_get(fs, name, "region");
    const char *d = prof_get(fs, name, "duration_seconds");
    if (d) {
        char *end;
        unsigned long v = strtoul(d, &end, 10);
        if (*end || v < 900 || v > 43200) {
            errf(err, errlen,
                 "profile \"%.64s\": duration_seconds must be "
                 "900..43200",
                 name);
            creds_provider_destroy(base);
            return NULL;
        }
        o.duration_s = (uint32_t)v;
    }
    char e2[256] = "";
    creds_provider *p =
        creds_assume_role_provider(ctx, base, &o, e2, sizeof e2);
    if (!p)
        errf(err, errlen, "profile \"%.64s\": %s", name, e2);
    return p;
}

creds_provider *creds_profile_provider(const creds_ctx *ctx,
                                       const char *profile, char *err,
                                       size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    const char *explicit_profile =
        profile ? profile : env_get(ctx, "AWS_PROFILE");
    const char *name = explicit_profile ? explicit_profile : "default";
    const char *cf = env_get(ctx, "AWS_CONFIG_FILE");
    const char *cr = env_get(ctx, "AWS_SHARED_CREDENTIALS_FILE");
    char cfp[1024], crp[1024];
    files fs;
    memset(&fs, 0, sizeof fs);
    creds_provider *p = NULL;
    if (expand_path(ctx, cf ? cf : "~/.aws/config", cfp, sizeof cfp) != 0)
        cfp[0] = '\0';
    if (expand_path(ctx, cr ? cr : "~/.aws/credentials", crp, sizeof crp) != 0)
        crp[0] = '\0';
    if ((cfp[0] && ini_load(cfp, 1, &fs.config, err, errlen) != 0) ||
        (crp[0] && ini_load(crp, 0, &fs.cred, err, errlen) != 0))
        goto out;
    if (!explicit_profile && !ini_has(&fs.config, name) &&
        !ini_has(&fs.cred, name)) {
        p = make_notfound(ctx, "profile", "profile:none");
        if (p)
            snprintf(p->desc, sizeof p->desc, "profile default (absent)");
        else
            errf(err, errlen, "out of memory");
        goto out;
    }
    const char *visited[MAX_PROFILE_DEPTH + 1] = {name};
    p = resolve_profile(ctx, &fs, name, 0, 0, visited, err, errlen);
out:
    ini_free(&fs.config);
    ini_free(&fs.cred);
    return p;
}

/* ---- web identity
 * --------------------------------------------------------------- */

typedef struct webid_impl {
    char *token_file, *role_arn, *session_name, *region;
} webid_impl;

static int webid_fetch(creds_provider *p, creds_value *out, awshttp_error *err)
{
    webid_impl *w = p->impl;
    if (!w->token_file)
        return notfound_fetch(p, out, err);
    int e = 0;
    char *tok = read_small_file(w->token_file, MAX_TOKEN_FILE, &e);
    if (!tok) {
        set_err(err, AWSHTTP_RETRYABLE, "TokenFileUnreadable",
                "web identity token file %.200s: %s", w->token_file,
                e == EFBIG ? "too large" : strerror(e));
        return CREDS_ERROR;
    }
    rtrim(tok);
    awsbuf b;
    awsbuf_init(&b, 3 * MAX_TOKEN_FILE + 4096);
    form_add(&b, "Action", "AssumeRoleWithWebIdentity");
    form_add(&b, "Version", "2011-06-15");
    form_add(&b, "RoleArn", w->role_arn);
    form_add(&b, "RoleSessionName", w->session_name);
    /* form_add has a 4 KiB field limit; tokens (JWTs) can be larger */
    awsbuf_adds(&b, "&WebIdentityToken=");
    for (const char *t = tok; *t && !b.err; t++) {
        char enc[4];
        size_t n = sigv4_uri_encode(t, 1, 0, enc, sizeof enc);
        awsbuf_add(&b, enc, n);
    }
    wipe_free(tok);
    char *body = awsbuf_take(&b);
    char ep[512];
    if (!body || sts_endpoint(p->ctx, NULL, w->region, ep, sizeof ep) != 0) {
        free(body);
        set_err(err, AWSHTTP_PERMANENT, "InvalidRequest",
                "AssumeRoleWithWebIdentity: cannot build the request");
        return CREDS_ERROR;
    }
    /* Unsigned: the token is the proof. */
    int rc = sts_call(p->ctx, ep, w->region, body, NULL, NULL, 0, out, err);
    wipe_free(body);
    return rc;
}

static void webid_destroy(creds_provider *p)
{
    webid_impl *w = p->impl;
    if (w) {
        free(w->token_file);
        free(w->role_arn);
        free(w->session_name);
        free(w->region);
        free(w);
    }
    free(p);
}

creds_provider *creds_web_identity_provider(const creds_ctx *ctx, char *err,
                                            size_t errlen)
{
    creds_provider *p = provider_new(ctx, "web-identity");
    webid_impl *w = calloc(1, sizeof *w);
    if (!p || !w) {
        free(p);
        free(w);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    p->impl = w;
    p->fetch = webid_fetch;
    p->destroy = webid_destroy;
    const char *tf = env_get(ctx, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *ra = env_get(ctx, "AWS_ROLE_ARN");
    if (!tf || !ra) {
        snprintf(p->identity, sizeof p->identity, "web-identity:none");
        return p; /* not configured: fetch answers NOT_FOUND */
    }
    if (creds_validate_role_arn(ra, err, errlen) != 0) {
        webid_destroy(p);
        return NULL;
    }
    char session[80];
    const char *sn = env_get(ctx, "AWS_ROLE_SESSION_NAME");
    if (sn)
        snprintf(session, sizeof session, "%s", sn);
    else
        creds_default_session_name(ctx->hostname, session, sizeof session);
    if (creds_validate_session_name(session, err, errlen) != 0) {
        webid_destroy(p);
        return NULL;
    }
    if (!(w->token_file = strdup(tf)) || !(w->role_arn = strdup(ra)) ||
        !(w->session_name = strdup(session)) ||
        !(w->region = strdup(ctx_region(ctx, NULL)))) {
        webid_destroy(p);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(p->identity, sizeof p->identity, "web-identity:%.300s:%.150s", ra,
             session);
    snprintf(p->desc, sizeof p->desc, "web-identity %.250s", ra);
    return p;
}

/* ---- container and IMDS: JSON credentials over link-local HTTP
 * ------------------ */

/* {"AccessKeyId","SecretAccessKey","Token","Expiration"[, "Code"]} */
static int parse_json_creds(const char *body, size_t len, creds_value *out,
                            awshttp_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    const char *code = j ? json_string_value(json_object_get(j, "Code")) : NULL;
    const char *a =
        j ? json_string_value(json_object_get(j, "AccessKeyId")) : NULL;
    const char *s =
        j ? json_string_value(json_object_get(j, "SecretAccessKey")) : NULL;
    const char *t = j ? json_string_value(json_object_get(j, "Token")) : NULL;
    const char *x =
        j ? json_string_value(json_object_get(j, "Expiration")) : NULL;
    int rc = CREDS_ERROR;
    if (code && strcmp(code, "Success") != 0) {
        set_err(err, AWSHTTP_RETRYABLE, "MetadataNotReady",
                "credentials endpoint answered Code=%.64s", code);
    } else if (dup_field(&out->access_key_id, a) != 0 ||
               dup_field(&out->secret_access_key, s) != 0 ||
               (t && dup_field(&out->session_token, t) != 0)) {
        creds_value_free(out);
        set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                "credentials endpoint answer lacks AccessKeyId / "
                "SecretAccessKey");
    } else {
        out->expiration = x ? parse_iso8601(x) : 0;
        if (x && out->expiration <= 0) {
            creds_value_free(out);
            set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                    "credentials endpoint answer with an unreadable "
                    "Expiration");
        } else {
            rc = 0;
        }
    }
    json_decref(j);
    return rc;
}

static int link_local_get(const creds_ctx *ctx, const char *method,
                          const char *url, const sigv4_header *h, size_t nh,
                          awshttp_response *resp, awshttp_error *err)
{
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = method;
    rq.url = url;
    rq.headers = h;
    rq.n_headers = nh;
    rq.now = ctx_now(ctx);
    rq.timeout_ms = LINK_LOCAL_TIMEOUT_MS;
    rq.no_proxy = 1; /* a proxy must never see metadata traffic */
    return awshttp_perform(ctx->http, &rq, resp, err) == AWSHTTP_OK ? 0 : -1;
}

typedef struct container_impl {
    char *url;
    char *token;      /* AWS_CONTAINER_AUTHORIZATION_TOKEN */
    char *token_file; /* ..._TOKEN_FILE, read at each fetch */
} container_impl;

static int container_fetch(creds_provider *p, creds_value *out,
                           awshttp_error *err)
{
    container_impl *c = p->impl;
    if (!c->url)
        return notfound_fetch(p, out, err);
    if (!p->ctx->http) {
        set_err(err, AWSHTTP_PERMANENT, "NoHttpClient", "no HTTP client");
        return CREDS_ERROR;
    }
    char *tok = NULL;
    if (c->token_file) {
        int e = 0;
        tok = read_small_file(c->token_file, MAX_TOKEN_FILE, &e);
        if (!tok) {
            set_err(err, AWSHTTP_RETRYABLE, "TokenFileUnreadable",
                    "container authorization token file %.200s: %s",
                    c->token_file, e == EFBIG ? "too large" : strerror(e));
            return CREDS_ERROR;
        }
        rtrim(tok);
    } else if (c->token) {
        tok = strdup(c->token);
    }
    if (tok && strpbrk(tok, "\r\n")) {
        wipe_free(tok);
        set_err(err, AWSHTTP_PERMANENT, "InvalidToken",
                "container authorization token holds a line break");
        return CREDS_ERROR;
    }
    sigv4_header h[] = {{"Authorization", tok ? tok : ""},
                        {"Accept", "application/json"}};
    awshttp_response resp;
    int rc = link_local_get(p->ctx, "GET", c->url, tok ? h : h + 1, tok ? 2 : 1,
                            &resp, err);
    wipe_free(tok);
    if (rc == 0)
        rc = parse_json_creds(resp.body, resp.body_len, out, err);
    else
        rc = CREDS_ERROR;
    if (resp.body)
        OPENSSL_cleanse(resp.body, resp.body_len);
    awshttp_response_free(&resp);
    return rc;
}

static void container_destroy(creds_provider *p)
{
    container_impl *c = p->impl;
    if (c) {
        free(c->url);
        wipe_free(c->token);
        free(c->token_file);
        free(c);
    }
    free(p);
}

/* Plain-http full URIs only to loopback or the ECS / EKS agent
 * addresses, as the SDKs allow: the token must not travel in clear to an
 * arbitrary host. */
static int container_host_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;
    if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
        !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
        !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
        if (strcmp(scheme, "https") == 0)
            ok = 1;
        else if (strcmp(scheme, "http") == 0)
            ok = strncmp(host, "127.", 4) == 0 ||
                 strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
                 strcmp(host, "169.254.170.2") == 0 ||
                 strcmp(host, "169.254.170.23") == 0 ||
                 strcasecmp(host, "[fd00:ec2::23]") == 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

creds_provider *creds_container_provider(const creds_ctx *ctx, char *err,
                                         size_t errlen)
{
    creds_provider *p = provider_new(ctx, "container");
    container_impl *c = calloc(1, sizeof *c);
    if (!p || !c) {
        free(p);
        free(c);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    p->impl = c;
    p->fetch = container_fetch;
    p->destroy = container_destroy;
    const char *rel = env_get(ctx, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_get(ctx, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    snprintf(p->identity, sizeof p->identity, "container:none");
    if (!rel && !full)
        return p;
    char url[1024];
    if (rel) {
        const char *host = ctx->container_endpoint ? ctx->container_endpoint
                                                   : "http://169.254.170.2";
        snprintf(url, sizeof url, "%s%s%s", host, rel[0] == '/' ? "" : "/",
                 rel);
    } else {
        if (!container_host_ok(full)) {
            errf(err, errlen,
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI must be "
                 "https, or http to a loopback or ECS/EKS "
                 "agent address");
            container_destroy(p);
            return NULL;
        }
        snprintf(url, sizeof url, "%s", full);
    }
    const char *tf = env_get(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tk = env_get(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (!(c->url = strdup(url)) || (tf && !(c->token_file = strdup(tf))) ||
        (!tf && tk && !(c->token = strdup(tk)))) {
        container_destroy(p);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(p->identity, sizeof p->identity, "container:%.480s", url);
    snprintf(p->desc, sizeof p->desc, "container");
    return p;
}

typedef struct imds_impl {
    char *endpoint; /* NULL: disabled */
    pthread_mutex_t mu;
    char token[256];
    int64_t token_until;
    int ever_ok;
} imds_impl;

static int imds_token(creds_provider *p, imds_impl *m, awshttp_error *err)
{
    int64_t now = ctx_now(p->ctx);
    if (m->token[0] && now < m->token_until)
        return 0;
    char url[600], ttl[16];
    snprintf(url, sizeof url, "%s/latest/api/token", m->endpoint);
    snprintf(ttl, sizeof ttl, "%d", IMDS_TOKEN_TTL);
    sigv4_header h[] = {{"X-aws-ec2-metadata-token-ttl-seconds", ttl}};
    awshttp_response r;
    int rc = link_local_get(p->ctx, "PUT", url, h, 1, &r, err);
    if (rc == 0) {
        size_t n = r.body_len;
        while (n && isspace((unsigned char)r.body[n - 1]))
            n--;
        if (n == 0 || n >= sizeof m->token || memchr(r.body, '\n', n)) {
            set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                    "IMDS token answer is empty or too long");
            rc = -1;
        } else {
            memcpy(m->token, r.body, n);
            m->token[n] = '\0';
            m->token_until = now + IMDS_TOKEN_TTL - 60;
        }
    }
    awshttp_response_free(&r);
    return rc;
}

static int imds_get(creds_provider *p, imds_impl *m, const char *path,
                    awshttp_response *r, awshttp_error *err)
{
    char url[800];
    snprintf(url, sizeof url, "%s%s", m->endpoint, path);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (imds_token(p, m, err) != 0)
            return -1;
        sigv4_header h[] = {{"X-aws-ec2-metadata-token", m->token}};
        if (link_local_get(p->ctx, "GET", url, h, 1, r, err) == 0)
            return 0;
        if (err->http_status != 401 || attempt)
            return -1;
        /* token expired early (instance reboot, clock jump): get a new one */
        awshttp_response_free(r);
        OPENSSL_cleanse(m->token, sizeof m->token);
        m->token_until = 0;
    }
    return -1;
}

static int is_unreachable(const awshttp_error *e)
{
    return e->http_status == 0 &&
           (strcmp(e->code, "ConnectionFailed") == 0 ||
            strcmp(e->code, "Timeout") == 0 ||
            strcmp(e->code, "NameResolutionFailed") == 0);
}

static int imds_fetch(creds_provider *p, creds_value *out, awshttp_error *err)
{
    imds_impl *m = p->impl;
    if (!m->endpoint)
        return notfound_fetch(p, out, err);
    if (!p->ctx->http) {
        set_err(err, AWSHTTP_PERMANENT, "NoHttpClient", "no HTTP client");
        return CREDS_ERROR;
    }
    pthread_mutex_lock(&m->mu);
    int rc = CREDS_ERROR;
    awshttp_response r;
    memset(&r, 0, sizeof r);
    if (imds_get(p, m, "/latest/meta-data/iam/security-credentials/", &r,
                 err) != 0) {
        /* Not on EC2 (nothing answers) or no role attached (404): this
           provider is simply not configured, unless it worked before. */
        if (!m->ever_ok && (is_unreachable(err) || err->http_status == 404))
            rc = CREDS_NOT_FOUND;
        goto out;
    }
    char role[256];
    size_t n = strcspn(r.body, "\r\n");
    if (n == 0 || n >= sizeof role) {
        set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                "IMDS lists no role");
        goto out;
    }
    memcpy(role, r.body, n);
    role[n] = '\0';
    rtrim(role);
    awshttp_response_free(&r);
    char path[400];
    awsbuf pb;
    awsbuf_init(&pb, sizeof path - 1);
    awsbuf_adds(&pb, "/latest/meta-data/iam/security-credentials/");
    char enc[3 * sizeof role];
    sigv4_uri_encode(role, strlen(role), 0, enc, sizeof enc);
    awsbuf_adds(&pb, enc);
    if (pb.err) {
        awsbuf_free(&pb);
        set_err(err, AWSHTTP_RETRYABLE, "MalformedResponse",
                "IMDS role name too long");
        goto out;
    }
    snprintf(path, sizeof path, "%s", pb.data);
    awsbuf_free(&pb);
    if (imds_get(p, m, path, &r, err) != 0)
        goto out;
    rc = parse_json_creds(r.body, r.body_len, out, err);
    if (rc == 0)
        m->ever_ok = 1;
out:
    if (r.body)
        OPENSSL_cleanse(r.body, r.body_len);
    awshttp_response_free(&r);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void imds_destroy(creds_provider *p)
{
    imds_impl *m = p->impl;
    if (m) {
        free(m->endpoint);
        pthread_mutex_destroy(&m->mu);
        OPENSSL_cleanse(m->token, sizeof m->token);
        free(m);
    }
    free(p);
}

creds_provider *creds_imds_provider(const creds_ctx *ctx, char *err,
                                    size_t errlen)
{
    creds_provider *p = provider_new(ctx, "imds");
    imds_impl *m = calloc(1, sizeof *m);
    if (!p || !m || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(p);
        free(m);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    p->impl = m;
    p->fetch = imds_fetch;
    p->destroy = imds_destroy;
    snprintf(p->identity, sizeof p->identity, "imds:disabled");
    const char *dis = env_get(ctx, "AWS_EC2_METADATA_DISABLED");
    if (dis && strcasecmp(dis, "true") == 0)
        return p;
    const char *ep = ctx->imds_endpoint;
    if (!ep)
        ep = env_get(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!ep) {
        const char *mode =
            env_get(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        ep = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                   : "http://169.254.169.254";
    }
    size_t l = strlen(ep);
    while (l && ep[l - 1] == '/')
        l--;
    if (l == 0 || l > 400 || !(m->endpoint = strndup(ep, l))) {
        errf(err, errlen, "invalid IMDS endpoint");
        imds_destroy(p);
        return NULL;
    }
    snprintf(p->identity, sizeof p->identity, "imds:%s", m->endpoint);
    snprintf(p->desc, sizeof p->desc, "imds %s", m->endpoint);
    return p;
}

/* ---- the chain
 * ------------------------------------------------------------------ */

#define CHAIN_N 5

typedef struct chain_impl {
    creds_provider *p[CHAIN_N];
    atomic_int chosen; /* -1 until one succeeded */
} chain_impl;

static int chain_fetch(creds_provider *p, creds_value *out, awshttp_error *err)
{
    chain_impl *c = p->impl;
    int k = atomic_load(&c->chosen);
    if (k >= 0)
        return c->p[k]->fetch(c->p[k], out, err);
    for (int i = 0; i < CHAIN_N; i++) {
        int rc = c->p[i]->fetch(c->p[i], out, err);
        if (rc == CREDS_NOT_FOUND)
            continue;
        if (rc == 0) {
            atomic_store(&c->chosen, i);
            clog_(p->ctx, LF_LOG_INFO, "credentials from %s", c->p[i]->desc);
        }
        return rc;
    }
    set_err(err, AWSHTTP_PERMANENT, "NoCredentials",
            "no AWS credentials found (tried environment, shared files, web "
            "identity, container, instance metadata)");
    return CREDS_NOT_FOUND;
}

static void chain_destroy(creds_provider *p)
{
    chain_impl *c = p->impl;
    if (c) {
        for (int i = 0; i < CHAIN_N; i++)
            creds_provider_destroy(c->p[i]);
        free(c);
    }
    free(p);
}

creds_provider *creds_chain_provider(const creds_ctx *ctx, const char *profile,
                                     char *err, size_t errlen)
{
    creds_provider *p = provider_new(ctx, "chain");
    chain_impl *c = calloc(1, sizeof *c);
    if (!p || !c) {
        free(p);
        free(c);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    p->impl = c;
    p->fetch = chain_fetch;
    p->destroy = chain_destroy;
    atomic_init(&c->chosen, -1);
    if (!(c->p[0] = creds_env_provider(ctx, err, errlen)) ||
        !(c->p[1] = creds_profile_provider(ctx, profile, err, errlen)) ||
        !(c->p[2] = creds_web_identity_provider(ctx, err, errlen)) ||
        !(c->p[3] = creds_container_provider(ctx, err, errlen)) ||
        !(c->p[4] = creds_imds_provider(ctx, err, errlen))) {
        chain_destroy(p);
        return NULL;
    }
    char material[CHAIN_N * 520] = "";
    for (int i = 0; i < CHAIN_N; i++) {
        strcat(material, c->p[i]->identity);
        strcat(material, "\n");
    }
    char h[65];
    sigv4_sha256_hex(material, strlen(material), h);
    snprintf(p->identity, sizeof p->identity, "chain:%.32s", h);
    return p;
}

/* ---- the cache
 * ------------------------------------------------------------------ */

typedef struct entry {
    char key[512];
    creds_provider *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refreshing;
    int have;
    creds_value cur;
    int64_t fetched_at;
    int64_t refresh_at;
    int64_t next_attempt;
    unsigned fails;
    awshttp_error last_err;
    uint64_t fetches;
    int refs;
    struct entry *next;
} entry;

struct creds_cache {
    const creds_ctx *ctx;
    creds_cache_opts o;
    pthread_mutex_t mu;
    entry *head;
    size_t n;
};

struct creds_handle {
    creds_cache *c;
    entry *e;
};

creds_cache *creds_cache_create(const creds_ctx *ctx,
                                const creds_cache_opts *opts)
{
    creds_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = ctx;
    if (opts)
        c->o = *opts;
    if (!c->o.refresh_ahead_s)
        c->o.refresh_ahead_s = 300;
    if (!c->o.jitter_s)
        c->o.jitter_s = 60;
    if (!c->o.backoff_base_s)
        c->o.backoff_base_s = 1;
    if (!c->o.backoff_max_s)
        c->o.backoff_max_s = 120;
    if (!c->o.min_valid_s)
        c->o.min_valid_s = 10;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void entry_free(entry *e)
{
    creds_provider_destroy(e->p);
    creds_value_free(&e->cur);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void creds_cache_destroy(creds_cache *c)
{
    if (!c)
        return;
    entry *e = c->head;
    while (e) {
        entry *n = e->next;
        entry_free(e);
        e = n;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

creds_handle *creds_cache_acquire(creds_cache *c, creds_provider *p)
{
    creds_handle *h = calloc(1, sizeof *h);
    if (!c || !p || !h) {
        free(h);
        creds_provider_destroy(p);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    entry *e = c->head;
    while (e && strcmp(e->key, p->identity) != 0)
        e = e->next;
    if (e) {
        creds_provider_destroy(p);
    } else {
        e = calloc(1, sizeof *e);
        if (!e || pthread_mutex_init(&e->mu, NULL) != 0) {
            free(e);
            pthread_mutex_unlock(&c->mu);
            free(h);
            creds_provider_destroy(p);
            return NULL;
        }
        pthread_cond_init(&e->cv, NULL);
        snprintf(e->key, sizeof e->key, "%s", p->identity);
        e->p = p;
        e->next = c->head;
        c->head = e;
        c->n++;
    }
    e->refs++;
    pthread_mutex_unlock(&c->mu);
    h->c = c;
    h->e = e;
    return h;
}

void creds_cache_release(creds_handle *h)
{
    if (!h)
        return;
    creds_cache *c = h->c;
    pthread_mutex_lock(&c->mu);
    if (--h->e->refs == 0) {
        entry **pp = &c->head;
        while (*pp != h->e)
            pp = &(*pp)->next;
        *pp = h->e->next;
        c->n--;
        entry_free(h->e);
    }
    pthread_mutex_unlock(&c->mu);
    free(h);
}

size_t creds_cache_entries(creds_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t creds_handle_fetches(creds_handle *h)
{
    pthread_mutex_lock(&h->e->mu);
    uint64_t n = h->e->fetches;
    pthread_mutex_unlock(&h->e->mu);
    return n;
}

static int usable(const creds_cache *c, const entry *e, int64_t now)
{
    return e->have && (e->cur.expiration == 0 ||
                       now < e->cur.expiration - (int64_t)c->o.min_valid_s);
}

static int64_t backoff_s(const creds_cache *c, unsigned fails)
{
    uint64_t d = c->o.backoff_base_s;
    for (unsigned i = 1; i < fails && d < c->o.backoff_max_s; i++)
        d *= 2;
    if (d > c->o.backoff_max_s)
        d = c->o.backoff_max_s;
    /* "equal jitter": half fixed, half random, so entries that failed
       together do not retry together */
    uint64_t half = d / 2;
    return (int64_t)(d - half + (half ? ctx_rand(c->ctx) % (half + 1) : 0));
}

static int copy_out(entry *e, creds_value *out, awshttp_error *err)
{
    if (creds_value_copy(out, &e->cur) != 0) {
        set_err(err, AWSHTTP_RETRYABLE, "OutOfMemory", "out of memory");
        return CREDS_ERROR;
    }
    return 0;
}

int creds_get(creds_handle *h, creds_value *out, awshttp_error *err)
{
    creds_cache *c = h->c;
    entry *e = h->e;
    const creds_ctx *ctx = c->ctx;
    awshttp_error scratch;
    if (!err)
        err = &scratch;
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int64_t now = ctx_now(ctx);
        int ok = usable(c, e, now);
        if (ok && now < e->refresh_at) {
            int rc = copy_out(e, out, err);
            pthread_mutex_unlock(&e->mu);
            return rc;
        }
        if (e->refreshing) {
            if (ok) {
                int rc = copy_out(e, out, err);
                pthread_mutex_unlock(&e->mu);
                return rc;
            }
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        if (now < e->next_attempt) {
            /* backing off after a failure: no call to the provider */
            int rc;
            if (ok) {
                rc = copy_out(e, out, err);
            } else {
                *err = e->last_err;
                rc = CREDS_ERROR;
            }
            pthread_mutex_unlock(&e->mu);
            return rc;
        }
        break;
    }

    e->refreshing = 1;
    pthread_mutex_unlock(&e->mu);
    creds_value fresh;
    memset(&fresh, 0, sizeof fresh);
    awshttp_error ferr;
    memset(&ferr, 0, sizeof ferr);
    int rc = e->p->fetch(e->p, &fresh, &ferr);
    pthread_mutex_lock(&e->mu);
    e->refreshing = 0;
    e->fetches++;
    int64_t now = ctx_now(ctx);
    if (rc == 0 && fresh.expiration != 0 &&
        fresh.expiration <= now + (int64_t)c->o.min_valid_s) {
        creds_value_free(&fresh);
        set_err(&ferr, AWSHTTP_RETRYABLE, "ExpiredCredentials",
                "%s returned credentials that are already expired", e->p->desc);
        rc = CREDS_ERROR;
    }
    char kid[32];
    if (rc == 0) {
        creds_value_free(&e->cur);
        e->cur = fresh;
        e->have = 1;
        e->fails = 0;
        e->next_attempt = 0;
        e->fetched_at = now;
        if (fresh.expiration == 0) {
            e->refresh_at = INT64_MAX;
        } else {
            int64_t life = fresh.expiration - now;
            int64_t ahead = c->o.refresh_ahead_s;
            if (ahead > life / 2)
                ahead = life / 2;
            int64_t jmax = c->o.jitter_s;
            if (jmax > life / 4)
                jmax = life / 4;
            int64_t jit =
                jmax > 0 ? (int64_t)(ctx_rand(ctx) % (uint64_t)(jmax + 1)) : 0;
            e->refresh_at = fresh.expiration - ahead - jit;
        }
        clog_(ctx, LF_LOG_INFO,
              "credentials refreshed from %s key_id=%s expires_in=%llds",
              e->p->desc,
              creds_redact_key_id(e->cur.access_key_id, kid, sizeof kid),
              e->cur.expiration ? (long long)(e->cur.expiration - now) : -1LL);
        rc = copy_out(e, out, err);
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        return rc;
    }
    if (rc == CREDS_NOT_FOUND && !ferr.code[0])
        set_err(&ferr, AWSHTTP_PERMANENT, "NoCredentials", "%s: no credentials",
                e->p->desc);
    e->fails++;
    int64_t delay = backoff_s(c, e->fails);
    int ok = usable(c, e, now);
    if (ok && e->cur.expiration) {
        /* Keep trying before the current keys run out: never wait more
           than half of what is left (but at least 5 s). */
        int64_t left = e->cur.expiration - (int64_t)c->o.min_valid_s - now;
        int64_t cap = left / 2 > 5 ? left / 2 : 5;
        if (delay > cap)
            delay = cap;
    }
    e->next_attempt = now + delay;
    e->last_err = ferr;
    if (ok)
        clog_(ctx, LF_LOG_WARN,
              "credentials refresh from %s failed (%s %s, status %ld): "
              "keeping current key_id=%s valid for %llds, next attempt in "
              "%llds",
              e->p->desc, awshttp_class_name(ferr.cls), ferr.code,
              ferr.http_status,
              creds_redact_key_id(e->cur.access_key_id, kid, sizeof kid),
              (long long)(e->cur.expiration - now), (long long)delay);
    else
        clog_(ctx, LF_LOG_ERROR,
              "credentials from %s unavailable (%s %s, status %ld: %s); next "
              "attempt in %llds",
              e->p->desc, awshttp_class_name(ferr.cls), ferr.code,
              ferr.http_status, ferr.message, (long long)delay);
    pthread_cond_broadcast(&e->cv);
    if (ok) {
        rc = copy_out(e, out, err);
    } else {
        *err = ferr;
        rc = CREDS_ERROR;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void creds_invalidate(creds_handle *h, const creds_value *used)
{
    if (!h || !used || !used->access_key_id)
        return;
    creds_cache *c = h->c;
    entry *e = h->e;
    pthread_mutex_lock(&e->mu);
    if (e->have && e->cur.access_key_id &&
        strcmp(e->cur.access_key_id, used->access_key_id) == 0) {
        int64_t now = ctx_now(c->ctx);
        char kid[32];
        clog_(c->ctx, LF_LOG_INFO,
              "credentials key_id=%s from %s refused by AWS; refreshing",
              creds_redact_key_id(e->cur.access_key_id, kid, sizeof kid),
              e->p->desc);
        creds_value_free(&e->cur);
        e->have = 0;
        e->refresh_at = 0;
        /* Refused right after a refresh: the provider keeps handing out
           refused keys, so pace the next fetch instead of looping. */
        if (now - e->fetched_at < 10) {
            e->fails++;
            e->next_attempt = now + backoff_s(c, e->fails);
            set_err(&e->last_err, AWSHTTP_AUTH_EXPIRED, "CredentialsRefused",
                    "%s: fresh credentials were refused", e->p->desc);
        } else {
            e->next_attempt = 0;
        }
    }
    pthread_mutex_unlock(&e->mu);
}
