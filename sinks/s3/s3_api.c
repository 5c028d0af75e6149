/*
 * s3_api.c - the S3 calls of the sink (PutObject, the multipart upload
 * family, ListMultipartUploads) through the host's aws_call, which signs
 * them (S3 rules) with the identity's credentials: this file never sees
 * a secret.
 *
 * Every call retries RETRYABLE answers with capped exponential backoff
 * and full jitter, honouring Retry-After, up to upload_retries times; a
 * PERMANENT or AUTH answer is returned at once. What to do about a final
 * failure (keep the object staged, try again later) is s3_upload.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "s3.h"

#define XML_TEXT_MAX 2048

/* ---- URLs ------------------------------------------------------------- */

int s3_object_url(const s3_sink *s, const char *bucket, const char *key,
                  const char *q, sbuf *out)
{
    out->len = 0;
    /* Virtual-host style puts the bucket in the TLS name; a dotted bucket
       would not match the certificate's wildcard, so it goes path style. */
    int path = s->path_style || (s->https && strchr(bucket, '.'));
    if (path) {
        if (sbuf_puts(out, s->endpoint) || sbuf_puts(out, "/") ||
            s3_uri_encode(out, bucket, strlen(bucket), 0))
            return -1;
        if (key &&
            (sbuf_puts(out, "/") || s3_uri_encode(out, key, strlen(key), 1)))
            return -1;
    } else {
        const char *sep = strstr(s->endpoint, "://");
        size_t sl = (size_t)(sep - s->endpoint) + 3;
        if (sbuf_put(out, s->endpoint, sl) || sbuf_puts(out, bucket) ||
            sbuf_puts(out, ".") || sbuf_puts(out, s->endpoint + sl) ||
            sbuf_puts(out, "/"))
            return -1;
        if (key && s3_uri_encode(out, key, strlen(key), 1))
            return -1;
    }
    if (q && *q && (sbuf_puts(out, "?") || sbuf_puts(out, q)))
        return -1;
    return 0;
}

/* ---- XML answers ------------------------------------------------------ */

typedef struct xml_ctx {
    int depth;
    char text[XML_TEXT_MAX];
    size_t tlen;
    int overflow;
    /* s3_xml_find */
    const char *want;
    char *out;
    size_t cap;
    long found;
    /* s3_xml_uploads */
    int in_upload;
    s3_upload_ref cur;
    int cur_key, cur_id;
    s3_upload_ref **refs;
    size_t *n;
    int truncated;
    char *next_key, *next_id;
    size_t key_cap, id_cap;
    int oom;
} xml_ctx;

static void x_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    (void)atts;
    xml_ctx *x = ud;
    x->depth++;
    x->tlen = 0;
    x->overflow = 0;
    if (x->refs && strcmp(name, "Upload") == 0) {
        x->in_upload = 1;
        memset(&x->cur, 0, sizeof x->cur);
        x->cur_key = x->cur_id = 0;
    }
}

static void x_text(void *ud, const XML_Char *s, int len)
{
    xml_ctx *x = ud;
    if (len <= 0)
        return;
    if (x->tlen + (size_t)len >= XML_TEXT_MAX) {
        x->overflow = 1;
        return;
    }
    memcpy(x->text + x->tlen, s, (size_t)len);
    x->tlen += (size_t)len;
}

static void copy_text(const xml_ctx *x, char *out, size_t cap)
{
    size_t n = x->tlen < cap - 1 ? x->tlen : cap - 1;
    memcpy(out, x->text, n);
    out[n] = '\0';
}

static void x_end(void *ud, const XML_Char *name)
{
    xml_ctx *x = ud;
    x->depth--;
    if (x->want && x->found < 0 && strcmp(name, x->want) == 0 && !x->overflow) {
        copy_text(x, x->out, x->cap);
        x->found = (long)strlen(x->out);
    }
    if (!x->refs)
        goto done;
    if (x->in_upload) {
        if (strcmp(name, "Key") == 0 && !x->overflow &&
            x->tlen < sizeof x->cur.key) {
            copy_text(x, x->cur.key, sizeof x->cur.key);
            x->cur_key = 1;
        } else if (strcmp(name, "UploadId") == 0 && !x->overflow &&
                   x->tlen < sizeof x->cur.id) {
            copy_text(x, x->cur.id, sizeof x->cur.id);
            x->cur_id = 1;
        } else if (strcmp(name, "Upload") == 0) {
            x->in_upload = 0;
            if (x->cur_key && x->cur_id) {
                s3_upload_ref *nr =
                    realloc(*x->refs, (*x->n + 1) * sizeof **x->refs);
                if (!nr) {
                    x->oom = 1;
                } else {
                    *x->refs = nr;
                    nr[(*x->n)++] = x->cur;
                }
            }
        }
    } else if (strcmp(name, "IsTruncated") == 0) {
        x->truncated = x->tlen == 4 && memcmp(x->text, "true", 4) == 0;
    } else if (strcmp(name, "NextKeyMarker") == 0) {
        copy_text(x, x->next_key, x->key_cap);
    } else if (strcmp(name, "NextUploadIdMarker") == 0) {
        copy_text(x, x->next_id, x->id_cap);
    }
done:
    x->tlen = 0;
}

static int xml_run(const char *xml, size_t len, xml_ctx *x)
{
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p)
        return -1;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, x_start, x_end);
    XML_SetCharacterDataHandler(p, x_text);
    int ok = XML_Parse(p, xml, (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    return ok && !x->oom ? 0 : -1;
}

long s3_xml_find(const char *xml, size_t len, const char *name, char *out,
                 size_t cap)
{
    if (!xml || !len || len > INT32_MAX || cap == 0)
        return -1;
    xml_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->want = name;
    x->out = out;
    x->cap = cap;
    x->found = -1;
    long rc = xml_run(xml, len, x) == 0 ? x->found : -1;
    free(x);
    return rc;
}

int s3_xml_uploads(const char *xml, size_t len, s3_upload_ref **refs, size_t *n,
                   int *truncated, char *next_key, size_t key_cap,
                   char *next_id, size_t id_cap)
{
    if (!xml || !len || len > INT32_MAX)
        return -1;
    xml_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->refs = refs;
    x->n = n;
    x->next_key = next_key;
    x->next_id = next_id;
    x->key_cap = key_cap;
    x->id_cap = id_cap;
    next_key[0] = next_id[0] = '\0';
    int rc = xml_run(xml, len, x);
    *truncated = x->truncated;
    free(x);
    return rc;
}

/* ---- calls ------------------------------------------------------------ */

int s3_sleep_ms(s3_sink *s, uint64_t ms)
{
    while (ms > 0) {
        if (atomic_load(&s->stop))
            return 1;
        uint64_t k = ms > 50 ? 50 : ms;
        struct timespec ts = {0, (long)k * 1000000L};
        nanosleep(&ts, NULL);
        ms -= k;
    }
    return atomic_load(&s->stop) ? 1 : 0;
}

static uint64_t rng_next(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_err(s3_err *e, const lf_aws_result *r)
{
    e->cls = r->cls;
    e->status = r->status;
    snprintf(e->code, sizeof e->code, "%s", r->code);
    snprintf(e->message, sizeof e->message, "%s", r->message);
    snprintf(e->request_id, sizeof e->request_id, "%s", r->request_id);
    e->retry_after_ms = r->retry_after_ms;
}

/* Perform req with retries. On return *res holds the last answer (free it
 * with aws_result_free) and *e describes a failure. */
static lf_aws_class call(s3_call *c, lf_aws_request *req, lf_aws_result *res,
                         s3_err *e)
{
    s3_sink *s = c->s;
    const lf_host *h = s->host;
    req->service = "s3";
    req->region = c->region;
    req->s3 = 1;
    /* Over TLS the payload needs no signature of its own (and its SHA-256
       no CPU): TLS protects it and the checksum header covers it. */
    req->unsigned_payload = s->https;
    memset(e, 0, sizeof *e);
    for (unsigned attempt = 0;; attempt++) {
        lf_aws_class cls = h->aws_call(h, c->creds, req, res);
        if (cls == LF_AWS_OK)
            return cls;
        fill_err(e, res);
        if (cls != LF_AWS_RETRYABLE || attempt >= s->request_retries ||
            atomic_load(&s->stop))
            return cls;
        h->aws_result_free(h, res);
        h->counter_add(h, "request_retries", 1);
        uint64_t ceil = (uint64_t)(s->retry_base_ns / 1000000);
        for (unsigned i = 0; i < attempt && ceil < 10000; i++)
            ceil *= 2;
        if (ceil > 10000)
            ceil = 10000;
        uint64_t ms = rng_next(&c->u->rng) % (ceil + 1);
        if (e->retry_after_ms > ms)
            ms = e->retry_after_ms;
        if (s3_sleep_ms(s, ms))
            return cls;
    }
}

/* Headers common to PutObject and CreateMultipartUpload. Returns the
 * number written into hd (room for 12). */
static size_t object_headers(const s3_call *c, lf_aws_header *hd,
                             char *records_txt)
{
    const s3_sink *s = c->s;
    size_t n = 0;
    hd[n++] = (lf_aws_header){"Content-Type", "application/x-ndjson"};
    const char *enc = s3_codec_encoding(c->d->codec);
    if (enc)
        hd[n++] = (lf_aws_header){"Content-Encoding", enc};
    if (s->sse) {
        hd[n++] = (lf_aws_header){"x-amz-server-side-encryption", s->sse};
        if (s->kms_key_id)
            hd[n++] = (lf_aws_header){
                "x-amz-server-side-encryption-aws-kms-key-id", s->kms_key_id};
    }
    if (s->storage_class)
        hd[n++] = (lf_aws_header){"x-amz-storage-class", s->storage_class};
    if (s->tagging)
        hd[n++] = (lf_aws_header){"x-amz-tagging", s->tagging};
    hd[n++] = (lf_aws_header){"x-amz-meta-logferry-records", records_txt};
    return n;
}

/* Checksum headers for a body; crc_b64 gets the CRC32C value when that is
 * the sink's checksum (9 bytes). Returns the number of headers added. */
static size_t checksum_headers(const s3_call *c, const void *body, size_t n,
                               lf_aws_header *hd, char *crc_b64, char *md5)
{
    if (c->s->checksum_md5) {
        if (s3_md5_base64(body, n, md5) != 0)
            return 0;
        hd[0] = (lf_aws_header){"Content-MD5", md5};
        return 1;
    }
    s3_crc32c_header(s3_crc32c(0, body, n), crc_b64);
    hd[0] = (lf_aws_header){"x-amz-sdk-checksum-algorithm", "CRC32C"};
    hd[1] = (lf_aws_header){"x-amz-checksum-crc32c", crc_b64};
    return 2;
}

lf_aws_class s3_put_object(s3_call *c, const void *body, size_t n,
                           uint64_t records, s3_err *e)
{
    sbuf url = {0};
    lf_aws_header hd[16];
    char rec[24], crc[12], md5[32];
    snprintf(rec, sizeof rec, "%llu", (unsigned long long)records);
    size_t nh = object_headers(c, hd, rec);
    nh += checksum_headers(c, body, n, hd + nh, crc, md5);
    if (s3_object_url(c->s, c->d->bucket, c->d->key, NULL, &url)) {
        memset(e, 0, sizeof *e);
        e->cls = LF_AWS_RETRYABLE;
        snprintf(e->message, sizeof e->message, "out of memory");
        return e->cls;
    }
    lf_aws_request req = {.method = "PUT",
                          .url = url.p,
                          .headers = hd,
                          .n_headers = nh,
                          .body = body,
                          .body_len = n};
    lf_aws_result res;
    lf_aws_class cls = call(c, &req, &res, e);
    c->s->host->aws_result_free(c->s->host, &res);
    sbuf_free(&url);
    return cls;
}

static lf_aws_class oom(s3_err *e)
{
    memset(e, 0, sizeof *e);
    e->cls = LF_AWS_RETRYABLE;
    snprintf(e->message, sizeof e->message, "out of memory");
    return e->cls;
}

/* An answer that arrived as 200 but carries <Error> (CompleteMultipart-
 * Upload can do that): classify it by its code. */
static lf_aws_class error_in_ok(const lf_aws_result *res, s3_err *e)
{
    char code[128];
    if (!res->body_len || !strstr(res->body, "<Error>") ||
        s3_xml_find(res->body, res->body_len, "Code", code, sizeof code) < 0)
        return LF_AWS_OK;
    memset(e, 0, sizeof *e);
    e->status = res->status;
    snprintf(e->code, sizeof e->code, "%s", code);
    s3_xml_find(res->body, res->body_len, "Message", e->message,
                sizeof e->message);
    e->cls = strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0
                 ? LF_AWS_RETRYABLE
                 : LF_AWS_PERMANENT;
    return e->cls;
}

lf_aws_class s3_create_mpu(s3_call *c, uint64_t records, char *id, size_t cap,
                           s3_err *e)
{
    sbuf url = {0};
    lf_aws_header hd[16];
    char rec[24];
    snprintf(rec, sizeof rec, "%llu", (unsigned long long)records);
    size_t nh = object_headers(c, hd, rec);
    if (!c->s->checksum_md5)
        hd[nh++] = (lf_aws_header){"x-amz-checksum-algorithm", "CRC32C"};
    if (s3_object_url(c->s, c->d->bucket, c->d->key, "uploads", &url))
        return oom(e);
    lf_aws_request req = {
        .method = "POST", .url = url.p, .headers = hd, .n_headers = nh};
    lf_aws_result res;
    lf_aws_class cls = call(c, &req, &res, e);
    if (cls == LF_AWS_OK &&
        s3_xml_find(res.body, res.body_len, "UploadId", id, cap) <= 0) {
        memset(e, 0, sizeof *e);
        cls = e->cls = LF_AWS_RETRYABLE;
        e->status = res.status;
        snprintf(e->message, sizeof e->message,
                 "CreateMultipartUpload answer without an UploadId");
    }
    c->s->host->aws_result_free(c->s->host, &res);
    sbuf_free(&url);
    return cls;
}

static int upload_query(sbuf *q, const char *id, unsigned part)
{
    if (part && sbuf_printf(q, "partNumber=%u&", part))
        return -1;
    return sbuf_puts(q, "uploadId") || sbuf_puts(q, "=") ||
           s3_uri_encode(q, id, strlen(id), 0);
}

lf_aws_class s3_upload_part(s3_call *c, const char *id, unsigned part,
                            const void *body, size_t n, char *etag,
                            size_t etag_cap, char *crc_b64, s3_err *e)
{
    sbuf url = {0}, q = {0};
    lf_aws_header hd[4];
    char md5[32];
    crc_b64[0] = '\0';
    size_t nh = checksum_headers(c, body, n, hd, crc_b64, md5);
    if (upload_query(&q, id, part) ||
        s3_object_url(c->s, c->d->bucket, c->d->key, q.p, &url)) {
        sbuf_free(&q);
        sbuf_free(&url);
        return oom(e);
    }
    lf_aws_request req = {.method = "PUT",
                          .url = url.p,
                          .headers = hd,
                          .n_headers = nh,
                          .body = body,
                          .body_len = n};
    lf_aws_result res;
    lf_aws_class cls = call(c, &req, &res, e);
    if (cls == LF_AWS_OK &&
        c->s->host->aws_result_header(c->s->host, &res, "ETag", etag,
                                      etag_cap) == (size_t)-1) {
        memset(e, 0, sizeof *e);
        cls = e->cls = LF_AWS_RETRYABLE;
        e->status = res.status;
        snprintf(e->message, sizeof e->message, "UploadPart without an ETag");
    }
    c->s->host->aws_result_free(c->s->host, &res);
    sbuf_free(&q);
    sbuf_free(&url);
    return cls;
}

lf_aws_class s3_complete_mpu(s3_call *c, const char *id, char (*etags)[128],
                             char (*crcs)[12], unsigned n, s3_err *e)
{
    sbuf url = {0}, q = {0}, body = {0};
    lf_aws_class cls;
    if (upload_query(&q, id, 0) ||
        s3_object_url(c->s, c->d->bucket, c->d->key, q.p, &url) ||
        sbuf_puts(&body, "<CompleteMultipartUpload xmlns=\"http://"
                         "s3.amazonaws.com/doc/2006-03-01/\">")) {
        cls = oom(e);
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        if (sbuf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>",
                        i + 1) ||
            s3_xml_escape(&body, etags[i], strlen(etags[i])) ||
            sbuf_puts(&body, "</ETag>") ||
            (crcs && crcs[i][0] &&
             sbuf_printf(&body, "<ChecksumCRC32C>%s</ChecksumCRC32C>",
                         crcs[i])) ||
            sbuf_puts(&body, "</Part>")) {
            cls = oom(e);
            goto out;
        }
    }
    if (sbuf_puts(&body, "</CompleteMultipartUpload>")) {
        cls = oom(e);
        goto out;
    }
    lf_aws_header hd[1] = {{"Content-Type", "application/xml"}};
    lf_aws_request req = {.method = "POST",
                          .url = url.p,
                          .headers = hd,
                          .n_headers = 1,
                          .body = body.p,
                          .body_len = body.len};
    for (unsigned attempt = 0;; attempt++) {
        lf_aws_result res;
        cls = call(c, &req, &res, e);
        if (cls == LF_AWS_OK)
            cls = error_in_ok(&res, e);
        c->s->host->aws_result_free(c->s->host, &res);
        if (cls != LF_AWS_RETRYABLE || attempt >= c->s->request_retries ||
            s3_sleep_ms(c->s, 200))
            break;
    }
out:
    sbuf_free(&url);
    sbuf_free(&q);
    sbuf_free(&body);
    return cls;
}

lf_aws_class s3_abort_mpu(s3_call *c, const char *id, s3_err *e)
{
    sbuf url = {0}, q = {0};
    if (upload_query(&q, id, 0) ||
        s3_object_url(c->s, c->d->bucket, c->d->key, q.p, &url)) {
        sbuf_free(&q);
        sbuf_free(&url);
        return oom(e);
    }
    lf_aws_request req = {.method = "DELETE", .url = url.p};
    lf_aws_result res;
    lf_aws_class cls = call(c, &req, &res, e);
    /* Already gone (completed or aborted before a crash): done. */
    if (cls != LF_AWS_OK &&
        (res.status == 404 || strcmp(e->code, "NoSuchUpload") == 0))
        cls = LF_AWS_OK;
    c->s->host->aws_result_free(c->s->host, &res);
    sbuf_free(&q);
    sbuf_free(&url);
    return cls;
}

lf_aws_class s3_list_mpu(s3_call *c, s3_upload_ref **out, size_t *n, s3_err *e)
{
    *out = NULL;
    *n = 0;
    s3_upload_ref *all = NULL;
    size_t n_all = 0;
    char next_key[S3_KEY_MAX + 1] = "", next_id[1024] = "";
    lf_aws_class cls = LF_AWS_OK;
    /* The prefix is the key's leading run of unreserved characters, not
       the whole key: the answer is filtered to exactly our key anyway,
       and moto 5.2.1 (the test double) refuses the signature of any
       percent-encoded query value, boto3's as much as ours. This runs
       only when recovering, so a page more or less does not matter. */
    size_t plen = strspn(c->d->key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_.~");
    for (int page = 0; page < 1000; page++) {
        sbuf q = {0}, url = {0};
        int bad = sbuf_puts(&q, "prefix=") ||
                  s3_uri_encode(&q, c->d->key, plen, 0) ||
                  sbuf_puts(&q, "&uploads=");
        if (next_key[0])
            bad |= sbuf_puts(&q, "&key-marker=") ||
                   s3_uri_encode(&q, next_key, strlen(next_key), 0);
        if (next_id[0])
            bad |= sbuf_puts(&q, "&upload-id-marker=") ||
                   s3_uri_encode(&q, next_id, strlen(next_id), 0);
        bad = bad || s3_object_url(c->s, c->d->bucket, NULL, q.p, &url);
        if (bad) {
            sbuf_free(&q);
            sbuf_free(&url);
            free(all);
            return oom(e);
        }
        lf_aws_request req = {.method = "GET", .url = url.p};
        lf_aws_result res;
        cls = call(c, &req, &res, e);
        int truncated = 0;
        if (cls == LF_AWS_OK &&
            s3_xml_uploads(res.body, res.body_len, &all, &n_all, &truncated,
                           next_key, sizeof next_key, next_id,
                           sizeof next_id) != 0) {
            memset(e, 0, sizeof *e);
            cls = e->cls = LF_AWS_RETRYABLE;
            snprintf(e->message, sizeof e->message,
                     "ListMultipartUploads answer unreadable");
        }
        c->s->host->aws_result_free(c->s->host, &res);
        sbuf_free(&q);
        sbuf_free(&url);
        if (cls != LF_AWS_OK || !truncated || (!next_key[0] && !next_id[0]))
            break;
    }
    if (cls != LF_AWS_OK) {
        free(all);
        return cls;
    }
    /* The prefix also matches longer keys: keep exactly ours. */
    size_t k = 0;
    for (size_t i = 0; i < n_all; i++)
        if (strcmp(all[i].key, c->d->key) == 0)
            all[k++] = all[i];
    *out = all;
    *n = k;
    return LF_AWS_OK;
}
