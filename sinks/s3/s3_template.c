/*
 * s3_template.c - "${name}" templates for bucket, role_arn, external_id,
 * session_name and key_template, and the whole-value checks after them.
 *
 * A template decides whose bucket and account a record goes to, so
 * expansion is strict: a field that is empty, unknown, or holds
 * characters the part does not allow makes the record unroutable (a dead
 * letter), never a name that could belong to someone else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

#define TMPL_MAX_PARTS 32

typedef enum part_kind {
    P_TEXT = 0,   /* literal (static variables are folded into text) */
    P_FIELD = 1,  /* a record field through host->field */
    P_FIRST = 2,  /* ${first}: S3_FIRST_MARK */
    P_HOURLY = 3, /* date or hour: host->field, cached per UTC hour */
} part_kind;

typedef struct tmpl_part {
    part_kind kind;
    char *text; /* literal text or the field name; owned */
    size_t len;
} tmpl_part;

struct s3_tmpl {
    s3_charset cs;
    size_t n;
    tmpl_part parts[TMPL_MAX_PARTS];
    int has_field, has_first;
    /* date and hour change once an hour: the host's answer is kept for
       the hour of the last record (deliver() thread only). */
    int64_t hour_bucket;
    int hour_valid;
    char hourly[TMPL_MAX_PARTS][16];
};

/* Record fields a template may use: the text-like fields of the schema,
 * plus date/hour derived from the event time. Numbers and free text
 * (prompts) make no sense in a destination and are refused at load. */
static const char *const tmpl_fields[] = {
    "tenant_id", "account_id", "app",      "region", "model_id", "operation",
    "status",    "session_id", "trace_id", "date",   "hour",     NULL,
};

static int field_allowed(const char *name, size_t len)
{
    if (len > 11 && memcmp(name, "attributes.", 11) == 0)
        return 1;
    for (size_t i = 0; tmpl_fields[i]; i++)
        if (strlen(tmpl_fields[i]) == len &&
            memcmp(tmpl_fields[i], name, len) == 0)
            return 1;
    return 0;
}

void s3_tmpl_free(s3_tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t);
}

static int add_part(s3_tmpl *t, part_kind k, const char *s, size_t n, char *err,
                    size_t errlen)
{
    /* Adjacent literals merge, so folded variables cost no part. */
    if (k == P_TEXT && t->n > 0 && t->parts[t->n - 1].kind == P_TEXT) {
        tmpl_part *p = &t->parts[t->n - 1];
        char *nt = realloc(p->text, p->len + n + 1);
        if (!nt)
            goto oom;
        memcpy(nt + p->len, s, n);
        p->len += n;
        nt[p->len] = '\0';
        p->text = nt;
        return 0;
    }
    if (t->n == TMPL_MAX_PARTS) {
        snprintf(err, errlen, "more than %d parts", TMPL_MAX_PARTS);
        return -1;
    }
    tmpl_part *p = &t->parts[t->n];
    p->kind = k;
    p->len = n;
    p->text = malloc(n + 1);
    if (!p->text)
        goto oom;
    memcpy(p->text, s, n);
    p->text[n] = '\0';
    t->n++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

s3_tmpl *s3_tmpl_parse(const char *text, s3_charset cs, const s3_tmpl_vars *v,
                       int allow_first, char *err, size_t errlen)
{
    s3_tmpl *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cs = cs;
    const char *p = text;
    while (*p) {
        const char *open = strstr(p, "${");
        if (!open) {
            if (add_part(t, P_TEXT, p, strlen(p), err, errlen))
                goto fail;
            break;
        }
        if (open > p && add_part(t, P_TEXT, p, (size_t)(open - p), err, errlen))
            goto fail;
        const char *name = open + 2, *close = strchr(name, '}');
        if (!close) {
            snprintf(err, errlen, "'${' without a closing '}'");
            goto fail;
        }
        size_t len = (size_t)(close - name);
        const char *fold = NULL;
        if (len == 8 && memcmp(name, "hostname", 8) == 0)
            fold = v && v->hostname ? v->hostname : "";
        else if (len == 6 && memcmp(name, "prefix", 6) == 0)
            fold = v && v->prefix ? v->prefix : "";
        else if (len == 3 && memcmp(name, "ext", 3) == 0)
            fold = v && v->ext ? v->ext : "";
        if (fold) {
            if (*fold && add_part(t, P_TEXT, fold, strlen(fold), err, errlen))
                goto fail;
        } else if (len == 5 && memcmp(name, "first", 5) == 0) {
            if (!allow_first) {
                snprintf(err, errlen, "${first} is only for key_template");
                goto fail;
            }
            if (t->has_first) {
                snprintf(err, errlen, "${first} appears twice");
                goto fail;
            }
            if (add_part(t, P_FIRST, "", 0, err, errlen))
                goto fail;
            t->has_first = 1;
        } else if (field_allowed(name, len)) {
            int hourly = (len == 4 && memcmp(name, "date", 4) == 0) ||
                         (len == 4 && memcmp(name, "hour", 4) == 0);
            if (add_part(t, hourly ? P_HOURLY : P_FIELD, name, len, err,
                         errlen))
                goto fail;
            t->has_field = 1;
        } else {
            snprintf(err, errlen,
                     "unknown or unusable field '${%.*s}' (use tenant_id, "
                     "account_id, app, region, model_id, operation, status, "
                     "session_id, trace_id, date, hour, attributes.KEY, "
                     "hostname, prefix, ext%s)",
                     (int)(len > 64 ? 64 : len), name,
                     allow_first ? ", first" : "");
            goto fail;
        }
        p = close + 1;
    }
    return t;
fail:
    s3_tmpl_free(t);
    return NULL;
}

int s3_tmpl_is_static(const s3_tmpl *t)
{
    return !t->has_field;
}

int s3_tmpl_has_first(const s3_tmpl *t)
{
    return t->has_first;
}

static int char_ok(s3_charset cs, unsigned char c)
{
    int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                (c >= 'A' && c <= 'Z');
    switch (cs) {
    case S3_CS_BUCKET:
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' ||
               c == '-';
    case S3_CS_ARN:
    case S3_CS_SESSION:
        return alnum || strchr("_+=,.@-", c) != NULL;
    case S3_CS_EXTID:
        return alnum || strchr("_+=,.@:/-", c) != NULL;
    case S3_CS_KEY:
        return alnum || strchr("!_.*'()=+,@:-", c) != NULL;
    }
    return 0;
}

/* Floor division: hours before 1970 belong to the hour below. */
static int64_t hour_of(int64_t ns)
{
    int64_t q = ns / 3600000000000LL;
    return (ns % 3600000000000LL < 0) ? q - 1 : q;
}

int s3_tmpl_expand(s3_tmpl *t, const lf_host *h, const lf_record *rec,
                   s3_buf *out, char *why, size_t whylen)
{
    if (t->hour_valid && hour_of(rec->event_time_ns) != t->hour_bucket)
        t->hour_valid = 0;
    int cacheable = 1;
    for (size_t i = 0; i < t->n; i++) {
        const tmpl_part *p = &t->parts[i];
        if (p->kind == P_TEXT) {
            if (s3_buf_put(out, p->text, p->len))
                goto full;
            continue;
        }
        if (p->kind == P_FIRST) {
            char m = S3_FIRST_MARK;
            if (s3_buf_put(out, &m, 1))
                goto full;
            continue;
        }
        if (p->kind == P_HOURLY && t->hour_valid) {
            if (s3_buf_puts(out, t->hourly[i]))
                goto full;
            continue;
        }
        const char *val = NULL;
        size_t n = h->field(h, rec, p->text, &val);
        if (n == (size_t)-1 || !val) {
            snprintf(why, whylen, "field %s is unknown to this agent", p->text);
            return -1;
        }
        if (n == 0) {
            snprintf(why, whylen, "field %s is empty", p->text);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            if (!char_ok(t->cs, (unsigned char)val[k])) {
                snprintf(why, whylen,
                         "field %s holds a character not allowed here",
                         p->text);
                return -1;
            }
        if (t->cs == S3_CS_KEY &&
            ((n == 1 && val[0] == '.') ||
             (n == 2 && val[0] == '.' && val[1] == '.'))) {
            snprintf(why, whylen, "field %s is '.' or '..'", p->text);
            return -1;
        }
        if (s3_buf_put(out, val, n))
            goto full;
        if (p->kind == P_HOURLY) {
            if (n < sizeof t->hourly[i]) {
                memcpy(t->hourly[i], val, n);
                t->hourly[i][n] = '\0';
            } else {
                cacheable = 0;
            }
        }
    }
    /* Every hourly part was just filled from the host (or taken from
       the cache of this very hour). */
    t->hour_bucket = hour_of(rec->event_time_ns);
    t->hour_valid = cacheable;
    return 0;
full:
    snprintf(why, whylen, "expansion too long");
    return -1;
}

/* ---- whole values ----------------------------------------------------- */

int s3_valid_bucket(const char *s, size_t n)
{
    /* 3-63 of [a-z0-9.-], starting and ending with a letter or digit, no
       "..", not an IPv4 address, none of the reserved prefixes/suffixes. */
    if (n < 3 || n > S3_BUCKET_MAX)
        return 0;
    int digits_dots = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-'))
            return 0;
        if (c == '.' && i > 0 && s[i - 1] == '.')
            return 0;
        if (!((c >= '0' && c <= '9') || c == '.'))
            digits_dots = 0;
    }
    int edge = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9');
    char l = s[n - 1];
    edge &= (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (!edge || digits_dots)
        return 0;
    if (n >= 4 && memcmp(s, "xn--", 4) == 0)
        return 0;
    if (n >= 8 && memcmp(s + n - 8, "-s3alias", 8) == 0)
        return 0;
    return 1;
}

int s3_valid_role_arn(const char *s, size_t n)
{
    /* arn:<partition>:iam::<12 digits>:role/<path/name> */
    if (n > S3_ARN_MAX || n < 4 || memcmp(s, "arn:", 4) != 0)
        return 0;
    const char *p = s + 4, *end = s + n;
    const char *c = memchr(p, ':', (size_t)(end - p));
    if (!c || c == p)
        return 0;
    for (const char *q = p; q < c; q++)
        if (!((*q >= 'a' && *q <= 'z') || *q == '-'))
            return 0;
    p = c + 1;
    if (end - p < 6 || memcmp(p, "iam::", 5) != 0)
        return 0;
    p += 5;
    for (int i = 0; i < 12; i++, p++)
        if (p >= end || *p < '0' || *p > '9')
            return 0;
    if (end - p < 7 || memcmp(p, ":role/", 6) != 0)
        return 0;
    p += 6;
    if (p >= end || end[-1] == '/')
        return 0;
    for (; p < end; p++)
        if (!(char_ok(S3_CS_ARN, (unsigned char)*p) || *p == '/'))
            return 0;
    return 1;
}

int s3_valid_extid(const char *s, size_t n)
{
    if (n < 2 || n > S3_EXTID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(S3_CS_EXTID, (unsigned char)s[i]))
            return 0;
    return 1;
}

/* ---- ${first} and the final key --------------------------------------- */

int64_t s3_segment_born(const char *seg)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = seg[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return seg[16] == '-' && v <= INT64_MAX ? (int64_t)v : 0;
}

size_t s3_position_text(const lf_position *pos, char *out, size_t cap)
{
    const char *seg = pos->segment ? pos->segment : "";
    size_t n = strlen(seg);
    if (n > 4 && memcmp(seg + n - 4, ".lfs", 4) == 0)
        n -= 4;
    if (n + 14 > cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)seg[i];
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                 (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
        out[i] = ok ? (char)c : '_';
    }
    int m =
        snprintf(out + n, cap - n, "-%012llx", (unsigned long long)pos->offset);
    if (m < 0 || (size_t)m >= cap - n)
        return 0;
    return n + (size_t)m;
}

size_t s3_key_finish(const char *key, size_t n, const lf_position *first,
                     char *out, size_t cap)
{
    char ft[320];
    size_t fl = s3_position_text(first, ft, sizeof ft);
    if (!fl)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece = &key[i];
        size_t plen = 1;
        if (key[i] == S3_FIRST_MARK) {
            piece = ft;
            plen = fl;
        }
        for (size_t k = 0; k < plen; k++) {
            char c = piece[k];
            /* No leading '/', no empty path segments. */
            if (c == '/' && (o == 0 || out[o - 1] == '/'))
                continue;
            if (o + 1 >= cap || o + 1 > S3_KEY_MAX)
                return 0;
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return o;
}
