/*
 * s3_template.c - the s3 side of the shared template engine
 * (sinks/shared/tmpl.h): what each templated part (bucket, role_arn,
 * external_id, session_name, key_template) may hold, the instance's
 * constants (${hostname}, ${prefix}, ${ext}) and the ${first} marker, and
 * the whole-value checks after expansion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

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

static const char *check(int cs, const char *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!char_ok((s3_charset)cs, (unsigned char)v[k]))
            return "holds a character not allowed here";
    /* A key segment "." or ".." would be normalised away by some
       clients, merging two tenants' paths. */
    if (cs == S3_CS_KEY &&
        ((n == 1 && v[0] == '.') || (n == 2 && v[0] == '.' && v[1] == '.')))
        return "is '.' or '..'";
    return NULL;
}

s3_tmpl *s3_tmpl_parse(const char *text, s3_charset cs, const s3_tmpl_vars *v,
                       int allow_first, char *err, size_t errlen)
{
    const lf_tmpl_var vars[] = {
        {"hostname", v && v->hostname ? v->hostname : ""},
        {"prefix", v && v->prefix ? v->prefix : ""},
        {"ext", v && v->ext ? v->ext : ""},
        {NULL, NULL},
    };
    const lf_tmpl_spec spec = {(int)cs, check, vars,
                               allow_first ? "first" : NULL, S3_FIRST_MARK};
    return lf_tmpl_parse(text, &spec, err, errlen);
}

int s3_tmpl_expand(s3_tmpl *t, const lf_host *h, const lf_record *rec,
                   sbuf *out, char *why, size_t whylen)
{
    /* Destination parts are short (a key is at most 1,024 bytes). */
    size_t want = 2048;
    if (out->max && out->max > out->len && out->max - out->len < want)
        want = out->max - out->len;
    if (sbuf_reserve(out, want) != 0 || out->cap == out->len) {
        snprintf(why, whylen, "expansion too long");
        return -1;
    }
    long n = lf_tmpl_expand(t, h, rec, out->p + out->len, out->cap - out->len,
                            why, whylen);
    if (n < 0)
        return -1;
    out->len += (size_t)n;
    return 0;
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
