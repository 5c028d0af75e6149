/*
 * sigv4.c - AWS Signature Version 4. See sigv4.h for the request model
 * and the service rules; the steps below follow the AWS General Reference
 * ("Create a signed AWS API request"): canonical request, string to sign,
 * signing key, signature.
 */
#include "aws/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "aws/awsbuf.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define MAX_QUERY_PARAMS 256
#define EMPTY_SHA256                                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- small helpers ---------------------------------------------------- */

static const char hexdig[] = "0123456789abcdef";
static const char HEXDIG[] = "0123456789ABCDEF";

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    /* SHA256() of a NULL pointer with length 0 is fine in OpenSSL 3, but
       pass a valid pointer anyway. */
    SHA256(p ? p : (const void *)"", n, md);
    to_hex(md, sizeof md, out);
}

static int hmac256(const void *key, size_t klen, const void *msg, size_t mlen,
                   uint8_t out[32])
{
    unsigned int olen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) ||
        olen != 32)
        return -EINVAL;
    return 0;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t sigv4_uri_encode(const char *in, size_t n, int keep_slash, char *out,
                        size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            if (o + 1 < cap)
                out[o] = (char)c;
            o++;
        } else {
            if (o + 3 < cap) {
                out[o] = '%';
                out[o + 1] = HEXDIG[c >> 4];
                out[o + 2] = HEXDIG[c & 15];
            }
            o += 3;
        }
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return o;
}

/* Append the SigV4 encoding of in[0..n) to b. */
static void enc_add(awsbuf *b, const char *in, size_t n, int keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            awsbuf_addc(b, (char)c);
        } else {
            char e[3] = {'%', HEXDIG[c >> 4], HEXDIG[c & 15]};
            awsbuf_add(b, e, 3);
        }
    }
}

/* Decode %XY escapes of in[0..n) into b; a '%' not followed by two hex
 * digits is kept as a literal '%'. '+' stays '+': SigV4 reads the query
 * as RFC 3986, not as a form. */
static void dec_add(awsbuf *b, const char *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%' && i + 2 < n && hexval(in[i + 1]) >= 0 &&
            hexval(in[i + 2]) >= 0) {
            awsbuf_addc(b, (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2])));
            i += 2;
        } else {
            awsbuf_addc(b, in[i]);
        }
    }
}

/* Decode then encode: canonical form of an already-encoded component. */
static void reencode_add(awsbuf *b, const char *in, size_t n, int keep_slash)
{
    awsbuf tmp;
    awsbuf_init(&tmp, SIGV4_MAX_FIELD);
    dec_add(&tmp, in, n);
    if (tmp.err) {
        if (!b->err)
            b->err = tmp.err;
    } else {
        enc_add(b, tmp.data ? tmp.data : "", tmp.len, keep_slash);
    }
    awsbuf_free(&tmp);
}

int sigv4_amz_date(int64_t now, char out[17])
{
    time_t t = (time_t)now;
    struct tm tm;
    if ((int64_t)t != now || !gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 ||
        tm.tm_year + 1900 > 9999)
        return -EINVAL;
    /* strftime: the field widths are bounded, unlike %d of an int. */
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -EINVAL;
    return 0;
}

/* ---- signing key ------------------------------------------------------ */

int sigv4_derive_key(const char *access_key_id, const char *secret, int64_t now,
                     const char *region, const char *service, sigv4_key *key)
{
    char amz[17];
    if (!access_key_id || !secret || !region || !service || !key || !*region ||
        !*service || sigv4_amz_date(now, amz))
        return -EINVAL;
    size_t slen = strlen(secret);
    if (strlen(access_key_id) >= sizeof key->access_key_id || slen > 1024)
        return -E2BIG;
    memset(key, 0, sizeof *key);
    memcpy(key->date, amz, 8);
    key->date[8] = '\0';
    int n = snprintf(key->scope, sizeof key->scope, "%s/%s/%s/aws4_request",
                     key->date, region, service);
    if (n < 0 || (size_t)n >= sizeof key->scope) {
        sigv4_key_clear(key);
        return -E2BIG;
    }
    snprintf(key->access_key_id, sizeof key->access_key_id, "%s",
             access_key_id);

    char k0[1024 + 5];
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen);
    uint8_t a[32], b[32];
    int rc = hmac256(k0, slen + 4, key->date, 8, a);
    if (!rc)
        rc = hmac256(a, 32, region, strlen(region), b);
    if (!rc)
        rc = hmac256(b, 32, service, strlen(service), a);
    if (!rc)
        rc = hmac256(a, 32, "aws4_request", 12, key->key);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    if (rc) {
        sigv4_key_clear(key);
        return rc;
    }
    key->valid = 1;
    return 0;
}

void sigv4_key_clear(sigv4_key *key)
{
    if (key)
        OPENSSL_cleanse(key, sizeof *key);
}

static int key_matches(const sigv4_key *k, const char *akid, const char *date,
                       const char *region, const char *service)
{
    if (!k->valid || strcmp(k->access_key_id, akid) != 0 ||
        memcmp(k->date, date, 8) != 0)
        return 0;
    /* scope is date/region/service/aws4_request */
    const char *p = k->scope + 9;
    size_t rl = strlen(region), sl = strlen(service);
    return strncmp(p, region, rl) == 0 && p[rl] == '/' &&
           strncmp(p + rl + 1, service, sl) == 0 &&
           strcmp(p + rl + 1 + sl, "/aws4_request") == 0;
}

int sigv4_chunk_signature(const sigv4_key *key, const char *amz_date,
                          const char *prev_sig, const void *chunk, size_t len,
                          char out[65])
{
    if (!key || !key->valid || !amz_date || strlen(amz_date) != 16 ||
        !prev_sig || strlen(prev_sig) != 64 || (!chunk && len))
        return -EINVAL;
    char chash[65];
    sigv4_sha256_hex(chunk, len, chash);
    char sts[512];
    int n = snprintf(sts, sizeof sts,
                     "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n%s\n%s", amz_date,
                     key->scope, prev_sig, EMPTY_SHA256, chash);
    if (n < 0 || (size_t)n >= sizeof sts)
        return -EINVAL;
    uint8_t mac[32];
    if (hmac256(key->key, 32, sts, (size_t)n, mac))
        return -EINVAL;
    to_hex(mac, 32, out);
    return 0;
}

/* ---- canonical request pieces ------------------------------------------ */

typedef struct hdr {
    char *name;  /* lowercase, owned */
    char *value; /* canonical value, owned */
    size_t order;
} hdr;

static int hdr_cmp(const void *a, const void *b)
{
    const hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

/* Canonical header value: folded lines and runs of whitespace become one
 * space, leading and trailing whitespace goes (botocore: ' '.join(split)). */
static char *canon_value(const char *v, int *err)
{
    size_t n = strlen(v);
    if (n > SIGV4_MAX_FIELD) {
        *err = -E2BIG;
        return NULL;
    }
    char *o = malloc(n + 1);
    if (!o) {
        *err = -ENOMEM;
        return NULL;
    }
    size_t k = 0;
    int pending = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_ws(v[i])) {
            pending = k > 0;
            continue;
        }
        if (pending)
            o[k++] = ' ';
        pending = 0;
        o[k++] = v[i];
    }
    o[k] = '\0';
    return o;
}

static int valid_name_char(unsigned char c)
{
    /* RFC 9110 token characters. */
    return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static char *lower_name(const char *s, int *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256) {
        *err = -EINVAL;
        return NULL;
    }
    char *o = malloc(n + 1);
    if (!o) {
        *err = -ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!valid_name_char(c)) {
            free(o);
            *err = -EINVAL;
            return NULL;
        }
        o[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    o[n] = '\0';
    return o;
}

/* Headers the signer owns; a caller passing one is a bug. */
static int reserved_header(const char *lname)
{
    return strcmp(lname, "authorization") == 0 ||
           strcmp(lname, "x-amz-date") == 0 ||
           strcmp(lname, "x-amz-security-token") == 0 ||
           strcmp(lname, "x-amz-content-sha256") == 0;
}

/* Remove dot segments and empty segments the way botocore and aws-c-auth
 * do: "/a/./b/../c//" -> "/a/c/"; a trailing slash survives only if
 * something is left before it. */
static void normalize_path_add(awsbuf *out, const char *p, size_t n)
{
    /* segment starts/lengths; at most n/2+1 segments */
    size_t cap = n / 2 + 2;
    size_t *st = malloc(cap * sizeof *st), *ln = malloc(cap * sizeof *ln);
    if (!st || !ln) {
        free(st);
        free(ln);
        if (!out->err)
            out->err = -ENOMEM;
        return;
    }
    size_t k = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t l = j - i;
        if (l == 0 || (l == 1 && p[i] == '.')) {
            /* skip */
        } else if (l == 2 && p[i] == '.' && p[i + 1] == '.') {
            if (k)
                k--;
        } else {
            st[k] = i;
            ln[k] = l;
            k++;
        }
        i = j + 1;
    }
    awsbuf_addc(out, '/');
    for (size_t s = 0; s < k; s++) {
        if (s)
            awsbuf_addc(out, '/');
        awsbuf_add(out, p + st[s], ln[s]);
    }
    if (k && n && p[n - 1] == '/')
        awsbuf_addc(out, '/');
    free(st);
    free(ln);
}

static void canonical_uri(awsbuf *b, const char *path, int s3, int normalize)
{
    if (!path || !*path)
        path = "/";
    size_t n = strlen(path);
    if (s3) {
        if (path[0] != '/')
            awsbuf_addc(b, '/');
        reencode_add(b, path, n, 1);
        return;
    }
    awsbuf tmp;
    awsbuf_init(&tmp, SIGV4_MAX_FIELD + 1);
    if (normalize) {
        normalize_path_add(&tmp, path, n);
    } else {
        if (path[0] != '/')
            awsbuf_addc(&tmp, '/');
        awsbuf_add(&tmp, path, n);
    }
    if (tmp.err) {
        if (!b->err)
            b->err = tmp.err;
    } else {
        /* Encoding the wire form again is the "double encoding" every
           service but S3 expects. */
        enc_add(b, tmp.data, tmp.len, 1);
    }
    awsbuf_free(&tmp);
}

typedef struct qparam {
    char *k;
    char *v;
} qparam;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static char *reencode_dup(const char *s, size_t n, int *err)
{
    awsbuf b;
    awsbuf_init(&b, 3 * SIGV4_MAX_FIELD);
    reencode_add(&b, s, n, 0);
    if (b.err)
        *err = b.err;
    return awsbuf_take(&b);
}

static char *enc_dup(const char *s, int *err)
{
    awsbuf b;
    awsbuf_init(&b, 3 * SIGV4_MAX_FIELD);
    enc_add(&b, s, strlen(s), 0);
    if (b.err)
        *err = b.err;
    return awsbuf_take(&b);
}

typedef struct qlist {
    qparam p[MAX_QUERY_PARAMS];
    size_t n;
} qlist;

static int qlist_push(qlist *q, char *k, char *v)
{
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    if (q->n >= MAX_QUERY_PARAMS) {
        free(k);
        free(v);
        return -E2BIG;
    }
    q->p[q->n].k = k;
    q->p[q->n].v = v;
    q->n++;
    return 0;
}

static void qlist_free(qlist *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].k);
        free(q->p[i].v);
    }
    q->n = 0;
}

/* Split the wire query into canonical (encoded) name/value pairs. */
static int parse_query(qlist *q, const char *query)
{
    if (!query)
        return 0;
    if (strlen(query) > SIGV4_MAX_FIELD)
        return -E2BIG;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            int err = 0;
            char *k = reencode_dup(p, kl, &err);
            char *v =
                eq ? reencode_dup(eq + 1, len - kl - 1, &err) : strdup("");
            if (err) {
                free(k);
                free(v);
                return err;
            }
            int rc = qlist_push(q, k, v);
            if (rc)
                return rc;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return 0;
}

static void add_query(awsbuf *b, const qlist *q)
{
    for (size_t i = 0; i < q->n; i++) {
        if (i)
            awsbuf_addc(b, '&');
        awsbuf_adds(b, q->p[i].k);
        awsbuf_addc(b, '=');
        awsbuf_adds(b, q->p[i].v);
    }
}

/* ---- sign --------------------------------------------------------------- */

void sigv4_result_free(sigv4_result *r)
{
    if (!r)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->authorization);
    free(r->query);
    if (r->token_)
        OPENSSL_cleanse(r->token_, strlen(r->token_));
    free(r->token_);
    memset(r, 0, sizeof *r);
}

int sigv4_sign(const sigv4_request *req, const sigv4_creds *creds,
               const sigv4_options *opt, sigv4_key *key, sigv4_result *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!req || !creds || !opt || !req->method || !*req->method ||
        !creds->access_key_id || !*creds->access_key_id ||
        !creds->secret_access_key || !opt->region || !*opt->region ||
        !opt->service || !*opt->service || (req->n_headers && !req->headers) ||
        (req->body_len && !req->body))
        return -EINVAL;
    if (req->n_headers > SIGV4_MAX_HEADERS)
        return -E2BIG;

    const int s3 = (opt->flags & SIGV4_S3) || strcmp(opt->service, "s3") == 0;
    const int presign = (opt->flags & SIGV4_PRESIGN) != 0;
    const int normalize = !s3 && !(opt->flags & SIGV4_NO_NORMALIZE);
    const char *token = creds->session_token && *creds->session_token
                            ? creds->session_token
                            : NULL;
    const int token_signed = token && !(opt->flags & SIGV4_TOKEN_AFTER);
    const int content_hdr =
        !presign && (s3 || (opt->flags & SIGV4_CONTENT_SHA256));
    uint32_t expires = opt->expires ? opt->expires : 3600;
    if (presign && expires > 604800)
        return -EINVAL;

    int rc = 0;
    hdr hs[SIGV4_MAX_HEADERS + 4];
    size_t nh = 0;
    qlist *q = calloc(1, sizeof *q);
    awsbuf cr, sts, tmp;
    awsbuf_init(&cr, SIGV4_MAX_CANONICAL);
    awsbuf_init(&sts, 1024);
    awsbuf_init(&tmp, SIGV4_MAX_CANONICAL);
    sigv4_key local;
    memset(&local, 0, sizeof local);
    char *signed_headers = NULL;
    if (!q) {
        rc = -ENOMEM;
        goto fail;
    }

    if ((rc = sigv4_amz_date(opt->now, out->amz_date)))
        goto fail;

    /* Payload hash. */
    if (opt->payload_hash) {
        if (strlen(opt->payload_hash) >= sizeof out->payload_hash_ ||
            !*opt->payload_hash) {
            rc = -EINVAL;
            goto fail;
        }
        strcpy(out->payload_hash_, opt->payload_hash);
    } else if (presign && s3) {
        strcpy(out->payload_hash_, SIGV4_UNSIGNED_PAYLOAD);
    } else {
        sigv4_sha256_hex(req->body, req->body_len, out->payload_hash_);
    }

    /* Headers: the caller's, then those the signer adds. */
    int have_host = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        int err = 0;
        if (!req->headers[i].name || !req->headers[i].value) {
            rc = -EINVAL;
            goto fail;
        }
        hs[nh].name = lower_name(req->headers[i].name, &err);
        hs[nh].value =
            hs[nh].name ? canon_value(req->headers[i].value, &err) : NULL;
        hs[nh].order = nh;
        if (err || !hs[nh].name || !hs[nh].value) {
            free(hs[nh].name);
            free(hs[nh].value);
            rc = err ? err : -ENOMEM;
            goto fail;
        }
        nh++;
        if (reserved_header(hs[nh - 1].name)) {
            rc = -EINVAL;
            goto fail;
        }
        if (strcmp(hs[nh - 1].name, "host") == 0)
            have_host = 1;
    }
    if (!have_host) {
        rc = -EINVAL;
        goto fail;
    }
    if (!presign) {
        const char *add[3][2] = {{"x-amz-date", out->amz_date}, {0}, {0}};
        size_t na = 1;
        if (token_signed) {
            add[na][0] = "x-amz-security-token";
            add[na++][1] = token;
        }
        if (content_hdr) {
            add[na][0] = "x-amz-content-sha256";
            add[na++][1] = out->payload_hash_;
        }
        for (size_t i = 0; i < na; i++) {
            int err = 0;
            hs[nh].name = strdup(add[i][0]);
            hs[nh].value = canon_value(add[i][1], &err);
            hs[nh].order = nh;
            if (!hs[nh].name || !hs[nh].value) {
                free(hs[nh].name);
                free(hs[nh].value);
                rc = err ? err : -ENOMEM;
                goto fail;
            }
            nh++;
        }
    }
    qsort(hs, nh, sizeof hs[0], hdr_cmp);

    /* Signed header list (names, deduplicated, sorted). */
    awsbuf sh;
    awsbuf_init(&sh, 8192);
    for (size_t i = 0; i < nh; i++) {
        if (i && strcmp(hs[i].name, hs[i - 1].name) == 0)
            continue;
        if (sh.len)
            awsbuf_addc(&sh, ';');
        awsbuf_adds(&sh, hs[i].name);
    }
    signed_headers = awsbuf_take(&sh);
    if (!signed_headers) {
        rc = -E2BIG;
        goto fail;
    }

    /* Query, with the presign parameters. */
    if ((rc = parse_query(q, req->query))) {
        goto fail;
    }
    char scope[200];
    int sn = snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request",
                      out->amz_date, opt->region, opt->service);
    if (sn < 0 || (size_t)sn >= sizeof scope) {
        rc = -E2BIG;
        goto fail;
    }
    if (presign) {
        char credential[400], exp[16];
        snprintf(credential, sizeof credential, "%s/%s", creds->access_key_id,
                 scope);
        snprintf(exp, sizeof exp, "%u", (unsigned)expires);
        int err = 0;
        rc = qlist_push(q, strdup("X-Amz-Algorithm"), strdup(ALGORITHM));
        if (!rc)
            rc = qlist_push(q, strdup("X-Amz-Credential"),
                            enc_dup(credential, &err));
        if (!rc)
            rc = qlist_push(q, strdup("X-Amz-Date"), strdup(out->amz_date));
        if (!rc)
            rc = qlist_push(q, strdup("X-Amz-Expires"), strdup(exp));
        if (!rc)
            rc = qlist_push(q, strdup("X-Amz-SignedHeaders"),
                            enc_dup(signed_headers, &err));
        if (!rc && token_signed)
            rc = qlist_push(q, strdup("X-Amz-Security-Token"),
                            enc_dup(token, &err));
        if (!rc && err)
            rc = err;
        if (rc) {
            goto fail;
        }
    }
    qsort(q->p, q->n, sizeof q->p[0], qparam_cmp);

    /* Canonical request. */
    awsbuf_adds(&cr, req->method);
    awsbuf_addc(&cr, '\n');
    if (req->path && strlen(req->path) > SIGV4_MAX_FIELD) {
        rc = -E2BIG;
        goto fail;
    }
    canonical_uri(&cr, req->path, s3, normalize);
    awsbuf_addc(&cr, '\n');
    add_query(&cr, q);
    awsbuf_addc(&cr, '\n');
    for (size_t i = 0; i < nh; i++) {
        if (i && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            /* Repeated header: values joined in the order given. */
            awsbuf_addc(&cr, ',');
            awsbuf_adds(&cr, hs[i].value);
            continue;
        }
        if (i)
            awsbuf_addc(&cr, '\n');
        awsbuf_adds(&cr, hs[i].name);
        awsbuf_addc(&cr, ':');
        awsbuf_adds(&cr, hs[i].value);
    }
    awsbuf_adds(&cr, "\n\n");
    awsbuf_adds(&cr, signed_headers);
    awsbuf_addc(&cr, '\n');
    awsbuf_adds(&cr, out->payload_hash_);
    if (cr.err) {
        rc = cr.err;
        goto fail;
    }

    /* String to sign. */
    char crhash[65];
    sigv4_sha256_hex(cr.data, cr.len, crhash);
    awsbuf_printf(&sts, ALGORITHM "\n%s\n%s\n%s", out->amz_date, scope, crhash);
    if (sts.err) {
        rc = sts.err;
        goto fail;
    }

    /* Key and signature. */
    sigv4_key *k = key ? key : &local;
    if (!key_matches(k, creds->access_key_id, out->amz_date, opt->region,
                     opt->service) &&
        (rc = sigv4_derive_key(creds->access_key_id, creds->secret_access_key,
                               opt->now, opt->region, opt->service, k))) {
        goto fail;
    }
    uint8_t mac[32];
    if ((rc = hmac256(k->key, 32, sts.data, sts.len, mac))) {
        goto fail;
    }
    to_hex(mac, 32, out->signature);

    /* What the caller sends. */
    if (presign) {
        add_query(&tmp, q);
        awsbuf_printf(&tmp, "&X-Amz-Signature=%s", out->signature);
        if (token && !token_signed) {
            awsbuf_adds(&tmp, "&X-Amz-Security-Token=");
            enc_add(&tmp, token, strlen(token), 0);
        }
        out->query = awsbuf_take(&tmp);
        if (!out->query) {
            rc = -E2BIG;
            goto fail;
        }
    } else {
        awsbuf_printf(&tmp,
                      ALGORITHM " Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s",
                      creds->access_key_id, scope, signed_headers,
                      out->signature);
        out->authorization = awsbuf_take(&tmp);
        if (!out->authorization) {
            rc = -ENOMEM;
            goto fail;
        }
        size_t a = 0;
        out->add_headers[a++] = (sigv4_header){"X-Amz-Date", out->amz_date};
        if (token) {
            out->token_ = strdup(token);
            if (!out->token_) {
                rc = -ENOMEM;
                goto fail;
            }
            out->add_headers[a++] =
                (sigv4_header){"X-Amz-Security-Token", out->token_};
        }
        if (content_hdr)
            out->add_headers[a++] =
                (sigv4_header){"x-amz-content-sha256", out->payload_hash_};
        out->add_headers[a++] =
            (sigv4_header){"Authorization", out->authorization};
        out->n_add_headers = a;
    }
    out->canonical_request = awsbuf_take(&cr);
    out->string_to_sign = awsbuf_take(&sts);
    if (!out->canonical_request || !out->string_to_sign) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = 0;
    goto done;

fail:
    sigv4_result_free(out);
done:
    for (size_t i = 0; i < nh; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    if (q)
        qlist_free(q);
    free(q);
    awsbuf_free(&cr);
    awsbuf_free(&sts);
    awsbuf_free(&tmp);
    free(signed_headers);
    sigv4_key_clear(&local);
    return rc;
}
