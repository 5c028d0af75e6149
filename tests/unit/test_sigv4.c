/*
 * test_sigv4.c - runs the SigV4 vectors in tests/data/sigv4/ through
 * agent/aws/sigv4.c, plus a few direct checks of the API.
 *
 * The runner walks the folders named in tests/data/sigv4/
 * logferry-params.json (credentials, time and region per folder, as
 * README.md gives them), so a new case directory needs no code. A case
 * directory is recognised by its files:
 *   classic    <case>/<case>.req + .creq + .sts + (.authz | .url) [+ .sreq]
 *              [+ chunks.txt for aws-chunked uploads]
 *   aws-c-auth <case>/context.json + request.txt + header-* + query-*
 * Everything that differs per case is read from the case itself:
 *   - the session token comes from the .req, or else from the .sreq; it is
 *     signed when the .creq signs x-amz-security-token and added after
 *     signing otherwise (post-sts-header-after);
 *   - X-Amz-Date and x-amz-content-sha256 in a .req are the signer's to
 *     add: they are taken out (and X-Amz-Date checked against the time);
 *   - the payload hash is the last line of the .creq: when it is not the
 *     SHA-256 of the body (UNSIGNED-PAYLOAD, STREAMING-...) it is passed
 *     as the payload hash;
 *   - a .url means a presigned request; X-Amz-Expires comes from it.
 * Each mismatch prints the case, what differs, and both texts.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "aws/sigv4.h"

#define MAX_HDRS 96

/* ---- files and text ---------------------------------------------------- */

/* Join path pieces; a path that does not fit fails the test rather than
 * being cut. */
static void pjoin(char *out, size_t cap, const char *a, const char *b,
                  const char *c)
{
    int n = snprintf(out, cap, "%s%s%s", a, b, c);
    ck_assert_msg(n >= 0 && (size_t)n < cap, "path too long: %s%s%s", a, b, c);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *read_case_file(const char *dir, const char *base, const char *ext)
{
    char p[1024];
    char d2[1024];
    pjoin(d2, sizeof d2, dir, "/", base);
    pjoin(p, sizeof p, d2, ext, "");
    return read_file(p, NULL);
}

static int exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    pjoin(p, sizeof p, dir, "/", name);
    return stat(p, &st) == 0;
}

static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Collapse whitespace runs and trim, as the canonical form does. */
static void collapse(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    int pend = 0;
    for (; *in && k + 2 < cap; in++) {
        if (strchr(" \t\r\n", *in)) {
            pend = k > 0;
            continue;
        }
        if (pend)
            out[k++] = ' ';
        pend = 0;
        out[k++] = *in;
    }
    out[k] = '\0';
}

/* "A, B" and "A,B" are the same Authorization value (the S3 docs write
 * it without spaces). */
static void squeeze_commas(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; *in && k + 1 < cap; in++) {
        out[k++] = *in;
        if (*in == ',')
            while (in[1] == ' ')
                in++;
    }
    out[k] = '\0';
}

/* ---- a raw HTTP request -------------------------------------------------- */

typedef struct hreq {
    char *method, *path, *query;
    sigv4_header h[MAX_HDRS];
    size_t nh;
    char *body;
    size_t body_len;
} hreq;

static void hreq_free(hreq *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nh; i++) {
        free((char *)r->h[i].name);
        free((char *)r->h[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Parse "METHOD target HTTP/1.1\n" + headers + "\n" + body. The target
 * may hold spaces ("/example space/"), so it runs to the last space.
 * Lines starting with a blank continue the previous header (folding). */
static int hreq_parse(const char *text, size_t len, hreq *r)
{
    memset(r, 0, sizeof *r);
    const char *end = text + len;
    const char *eol = memchr(text, '\n', len);
    if (!eol)
        eol = end;
    size_t ll = (size_t)(eol - text);
    if (ll && text[ll - 1] == '\r')
        ll--;
    char *line = strndup(text, ll);
    char *sp1 = strchr(line, ' '), *sp2 = strrchr(line, ' ');
    if (!sp1 || sp1 == sp2) {
        free(line);
        return -1;
    }
    r->method = strndup(line, (size_t)(sp1 - line));
    char *target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    free(line);
    char *qm = strchr(target, '?');
    if (qm) {
        r->query = strdup(qm + 1);
        *qm = '\0';
    }
    r->path = target;

    const char *p = eol < end ? eol + 1 : end;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l == 0) {
            p = e < end ? e + 1 : end;
            break;
        }
        if ((*p == ' ' || *p == '\t') && r->nh) {
            /* folded continuation: keep it, the signer collapses it */
            sigv4_header *h = &r->h[r->nh - 1];
            size_t ol = strlen(h->value);
            char *nv = malloc(ol + 1 + l + 1);
            memcpy(nv, h->value, ol);
            nv[ol] = '\n';
            memcpy(nv + ol + 1, p, l);
            nv[ol + 1 + l] = '\0';
            free((char *)h->value);
            h->value = nv;
        } else {
            const char *c = memchr(p, ':', l);
            if (!c || r->nh >= MAX_HDRS)
                return -1;
            r->h[r->nh].name = strndup(p, (size_t)(c - p));
            r->h[r->nh].value = strndup(c + 1, l - (size_t)(c - p) - 1);
            r->nh++;
        }
        p = e < end ? e + 1 : end;
        if (e == end)
            break;
    }
    r->body_len = (size_t)(end - p);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, p, r->body_len);
    r->body[r->body_len] = '\0';
    return 0;
}

static const char *hreq_get(const hreq *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->h[i].name, name) == 0)
            return r->h[i].value;
    return NULL;
}

/* Remove every `name` header; return the first value (owned) or NULL. */
static char *hreq_take(hreq *r, const char *name)
{
    char *v = NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->nh; i++) {
        if (strcasecmp(r->h[i].name, name) == 0) {
            if (!v)
                v = (char *)r->h[i].value;
            else
                free((char *)r->h[i].value);
            free((char *)r->h[i].name);
        } else {
            r->h[k++] = r->h[i];
        }
    }
    r->nh = k;
    if (v) {
        char *t = v;
        while (*t == ' ')
            t++;
        memmove(v, t, strlen(t) + 1);
    }
    return v;
}

/* ---- bookkeeping -----------------------------------------------------------
 */

static int n_ran, n_passed, n_skipped, n_failed;
static char skipped_list[8192], notes_list[4096];

static void skip_case(const char *name, const char *why)
{
    n_skipped++;
    size_t l = strlen(skipped_list);
    snprintf(skipped_list + l, sizeof skipped_list - l, "  skipped %s: %s\n",
             name, why);
}

/* Compare two texts; on a mismatch print both, and the first differing
 * line, in a form that diffs well. Returns 1 when equal. */
static int same(const char *cname, const char *what, const char *want,
                const char *got)
{
    if (want && got && strcmp(want, got) == 0)
        return 1;
    fprintf(stderr, "FAIL %s: %s differs\n", cname, what);
    if (want && got) {
        int line = 1;
        const char *a = want, *b = got;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++;
            b++;
        }
        fprintf(stderr, "  first difference on line %d\n", line);
    }
    fprintf(stderr, "--- expected\n%s\n+++ got\n%s\n---\n",
            want ? want : "(missing)", got ? got : "(missing)");
    return 0;
}

static int64_t parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return -1;
    return (int64_t)timegm(&tm);
}

/* Third field of the scope line ("date/region/service/aws4_request") of a
 * string to sign. */
static int scope_service(const char *sts, char *out, size_t cap)
{
    const char *l = sts;
    for (int i = 0; i < 2 && l; i++) {
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    if (!l)
        return -1;
    const char *s1 = strchr(l, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    const char *s3 = s2 ? strchr(s2 + 1, '/') : NULL;
    if (!s3 || (size_t)(s3 - s2) > cap)
        return -1;
    snprintf(out, cap, "%.*s", (int)(s3 - s2 - 1), s2 + 1);
    return 0;
}

/* Canonical multiset of query parameters: each decoded and re-encoded
 * (so raw UTF-8 and %E1.. compare equal), then sorted. */
static int qcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *canon_query(const char *q)
{
    char *params[300];
    size_t n = 0;
    char *dup = strdup(q ? q : "");
    for (char *save = NULL, *t = strtok_r(dup, "&", &save); t && n < 300;
         t = strtok_r(NULL, "&", &save)) {
        /* decode */
        char dec[8192];
        size_t k = 0;
        for (size_t i = 0; t[i] && k + 1 < sizeof dec; i++) {
            unsigned hv;
            if (t[i] == '%' && sscanf(t + i + 1, "%2x", &hv) == 1) {
                dec[k++] = (char)hv;
                i += 2;
            } else {
                dec[k++] = t[i];
            }
        }
        dec[k] = '\0';
        char *eq = strchr(dec, '=');
        char enc[24576];
        size_t o = sigv4_uri_encode(dec, eq ? (size_t)(eq - dec) : k, 0, enc,
                                    sizeof enc);
        if (eq && o + 1 < sizeof enc) {
            enc[o++] = '=';
            sigv4_uri_encode(eq + 1, strlen(eq + 1), 0, enc + o,
                             sizeof enc - o);
        }
        params[n++] = strdup(enc);
    }
    free(dup);
    qsort(params, n, sizeof params[0], qcmp);
    size_t tot = 1;
    for (size_t i = 0; i < n; i++)
        tot += strlen(params[i]) + 1;
    char *out = calloc(1, tot);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, "&");
        strcat(out, params[i]);
        free(params[i]);
    }
    return out;
}

/* Sorted "name:value" lines of a header list, names lowercased and
 * values collapsed, for comparing a signed request header by header. */
static char *header_set(const sigv4_header *h, size_t n, const sigv4_header *h2,
                        size_t n2)
{
    char *lines[MAX_HDRS + 8];
    size_t k = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        const sigv4_header *hh = pass ? h2 : h;
        size_t nn = pass ? n2 : n;
        for (size_t i = 0; i < nn && k < MAX_HDRS + 8; i++) {
            char v[8192], line[8400];
            collapse(hh[i].value, v, sizeof v);
            size_t nl = strlen(hh[i].name);
            for (size_t j = 0; j < nl && j < 200; j++)
                line[j] = (char)((hh[i].name[j] >= 'A' && hh[i].name[j] <= 'Z')
                                     ? hh[i].name[j] + 32
                                     : hh[i].name[j]);
            snprintf(line + (nl < 200 ? nl : 200), sizeof line - 200, ":%s", v);
            lines[k++] = strdup(line);
        }
    }
    qsort(lines, k, sizeof lines[0], qcmp);
    size_t tot = 1;
    for (size_t i = 0; i < k; i++)
        tot += strlen(lines[i]) + 1;
    char *out = calloc(1, tot);
    for (size_t i = 0; i < k; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
        free(lines[i]);
    }
    return out;
}

/* ---- classic cases ------------------------------------------------------- */

static int check_chunks(const char *cname, const char *dir,
                        const sigv4_result *res, const sigv4_creds *cr,
                        const sigv4_options *opt)
{
    char *txt = read_case_file(dir, "chunks.txt", "");
    if (!txt)
        return 1;
    sigv4_key key;
    int ok = sigv4_derive_key(cr->access_key_id, cr->secret_access_key,
                              opt->now, opt->region, opt->service, &key) == 0;
    char prev[65];
    snprintf(prev, sizeof prev, "%s", res->signature);
    int nchunks = 0;
    for (char *save = NULL, *l = strtok_r(txt, "\n", &save); l && ok;
         l = strtok_r(NULL, "\n", &save)) {
        unsigned size;
        char ch;
        const char *sig = strstr(l, "chunk-signature=");
        if (strncmp(l, "chunk ", 6) != 0 || !sig ||
            sscanf(strchr(l, ':') + 1, " %u bytes of '%c'", &size, &ch) != 2)
            continue;
        sig += strlen("chunk-signature=");
        char *data = malloc(size + 1);
        memset(data, ch, size);
        char got[65];
        ok = sigv4_chunk_signature(&key, res->amz_date, prev, data, size,
                                   got) == 0;
        free(data);
        char want[65];
        snprintf(want, sizeof want, "%.64s", sig);
        char what[64];
        snprintf(what, sizeof what, "chunk %d signature", ++nchunks);
        ok = ok && same(cname, what, want, got);
        snprintf(prev, sizeof prev, "%s", got);
    }
    sigv4_key_clear(&key);
    free(txt);
    if (ok && nchunks == 0) {
        fprintf(stderr, "FAIL %s: chunks.txt has no chunk lines\n", cname);
        ok = 0;
    }
    return ok;
}

static void run_classic(const char *cname, const char *dir, const char *base,
                        json_t *folder, json_t *params)
{
    char *req_txt = NULL, *creq = NULL, *sts = NULL, *authz = NULL, *url = NULL,
         *sreq_txt = NULL, *token = NULL, *date = NULL, *csha = NULL,
         *sreq_token = NULL;
    hreq req, sreq;
    memset(&req, 0, sizeof req);
    memset(&sreq, 0, sizeof sreq);
    sigv4_result res;
    memset(&res, 0, sizeof res);
    size_t req_len = 0;
    int ok = 1;

    char p[1024];
    pjoin(p, sizeof p, dir, "/", base);
    pjoin(p + strlen(p), sizeof p - strlen(p), ".req", "", "");
    req_txt = read_file(p, &req_len);
    creq = read_case_file(dir, base, ".creq");
    sts = read_case_file(dir, base, ".sts");
    authz = read_case_file(dir, base, ".authz");
    url = read_case_file(dir, base, ".url");
    sreq_txt = read_case_file(dir, base, ".sreq");
    if (!req_txt || !creq || !sts || (!authz && !url)) {
        skip_case(cname, "needs .req, .creq, .sts and .authz or .url");
        goto out;
    }
    n_ran++;
    if (hreq_parse(req_txt, req_len, &req) != 0) {
        fprintf(stderr, "FAIL %s: cannot parse .req\n", cname);
        ok = 0;
        goto out;
    }
    if (sreq_txt) {
        if (hreq_parse(sreq_txt, strlen(sreq_txt), &sreq) != 0) {
            fprintf(stderr, "FAIL %s: cannot parse .sreq\n", cname);
            ok = 0;
            goto out;
        }
        sreq_token = hreq_take(&sreq, "X-Amz-Security-Token");
    }

    sigv4_options opt;
    memset(&opt, 0, sizeof opt);
    opt.region = json_string_value(json_object_get(folder, "region"));
    opt.now = parse_time(json_string_value(json_object_get(folder, "time")));
    char service[64];
    const char *svc = json_string_value(json_object_get(folder, "service"));
    if (svc) {
        snprintf(service, sizeof service, "%s", svc);
    } else if (scope_service(sts, service, sizeof service) != 0) {
        fprintf(stderr, "FAIL %s: no service in .sts scope\n", cname);
        ok = 0;
        goto out;
    }
    opt.service = service;

    date = hreq_take(&req, "X-Amz-Date");
    char amz[17];
    sigv4_amz_date(opt.now, amz);
    if (date && strcmp(date, amz) != 0) {
        fprintf(stderr,
                "FAIL %s: .req X-Amz-Date %s is not the folder time %s\n",
                cname, date, amz);
        ok = 0;
    }
    token = hreq_take(&req, "X-Amz-Security-Token");
    if (!token && sreq_token)
        token = strdup(sreq_token);
    if (token && !strstr(creq, "\nx-amz-security-token:"))
        opt.flags |= SIGV4_TOKEN_AFTER;
    csha = hreq_take(&req, "x-amz-content-sha256");
    if (csha && strcmp(service, "s3") != 0)
        opt.flags |= SIGV4_CONTENT_SHA256;
    const char *last = strrchr(creq, '\n');
    last = last ? last + 1 : creq;
    char bh[65];
    sigv4_sha256_hex(req.body, req.body_len, bh);
    if (strcmp(last, bh) != 0)
        opt.payload_hash = last;
    if (url) {
        opt.flags |= SIGV4_PRESIGN;
        const char *e = strstr(url, "X-Amz-Expires=");
        opt.expires = e ? (uint32_t)strtoul(e + 14, NULL, 10) : 0;
    }

    sigv4_creds cr = {
        json_string_value(json_object_get(folder, "access_key_id")),
        json_string_value(json_object_get(folder, "secret_access_key")), token};
    sigv4_request sr = {req.method, req.path, req.query,   req.h,
                        req.nh,     req.body, req.body_len};
    int rc = sigv4_sign(&sr, &cr, &opt, NULL, &res);
    if (rc != 0) {
        fprintf(stderr, "FAIL %s: sigv4_sign returned %d\n", cname, rc);
        ok = 0;
        goto out;
    }
    ok &= same(cname, "canonical request (.creq)", creq, res.canonical_request);
    ok &= same(cname, "string to sign (.sts)", sts, res.string_to_sign);
    if (authz) {
        char a[4096], b[4096];
        const char *mine = NULL;
        for (size_t i = 0; i < res.n_add_headers; i++)
            if (strcmp(res.add_headers[i].name, "Authorization") == 0)
                mine = res.add_headers[i].value;
        squeeze_commas(authz, a, sizeof a);
        squeeze_commas(mine ? mine : "", b, sizeof b);
        ok &= same(cname, "Authorization (.authz)", a, b);
    }
    if (url) {
        char mine[8192];
        snprintf(mine, sizeof mine, "https://%s%s?%s", hreq_get(&req, "Host"),
                 req.path, res.query);
        rstrip(url);
        ok &= same(cname, "presigned URL (.url)", url, mine);
    }
    json_t *stale =
        json_object_get(json_object_get(params, "stale_sreq"), cname);
    if (stale) {
        size_t l = strlen(notes_list);
        snprintf(notes_list + l, sizeof notes_list - l,
                 "  note %s: .sreq not compared: %s\n", cname,
                 json_string_value(stale));
    }
    if (sreq_txt && !stale && !url) {
        /* The signed request: Authorization and each header the signer
           added must be what the .sreq shows. */
        const char *want_auth = hreq_get(&sreq, "Authorization");
        for (size_t i = 0; i < res.n_add_headers; i++) {
            const char *n = res.add_headers[i].name;
            const char *w =
                strcasecmp(n, "X-Amz-Security-Token") == 0
                    ? sreq_token
                    : (strcmp(n, "Authorization") == 0 ? want_auth
                                                       : hreq_get(&sreq, n));
            char a[4096] = "", b[4096] = "", what[128];
            squeeze_commas(w ? w : "(absent)", a, sizeof a);
            squeeze_commas(res.add_headers[i].value, b, sizeof b);
            char *ta = a, *tb = b;
            while (*ta == ' ')
                ta++;
            snprintf(what, sizeof what, ".sreq header %s", n);
            ok &= same(cname, what, ta, tb);
        }
    }
    if (ok && exists(dir, "chunks.txt"))
        ok &= check_chunks(cname, dir, &res, &cr, &opt);

out:
    if (req_txt && creq && sts && (authz || url)) {
        if (ok)
            n_passed++;
        else
            n_failed++;
    }
    sigv4_result_free(&res);
    hreq_free(&req);
    hreq_free(&sreq);
    free(req_txt);
    free(creq);
    free(sts);
    free(authz);
    free(url);
    free(sreq_txt);
    free(token);
    free(date);
    free(csha);
    free(sreq_token);
}

/* ---- aws-c-auth cases -----------------------------------------------------
 */

static char *trimmed(const char *dir, const char *name)
{
    char *s = read_case_file(dir, name, "");
    if (s)
        rstrip(s);
    return s;
}

static void run_awsc_variant(const char *cname, const char *dir, json_t *ctx,
                             const hreq *req, int presign)
{
    const char *pre = presign ? "query-" : "header-";
    char f[4][64];
    const char *names[4] = {"canonical-request.txt", "string-to-sign.txt",
                            "signature.txt", "signed-request.txt"};
    char *want[4];
    for (int i = 0; i < 4; i++) {
        snprintf(f[i], sizeof f[i], "%s%s", pre, names[i]);
        want[i] = i == 3 ? read_case_file(dir, f[i], "") : trimmed(dir, f[i]);
    }
    char vname[512];
    snprintf(vname, sizeof vname, "%s [%s]", cname,
             presign ? "presigned" : "header");
    if (!want[0] || !want[1] || !want[2]) {
        skip_case(vname, "no expected canonical request / string to sign / "
                         "signature for this variant");
        goto out;
    }
    n_ran++;
    json_t *c = json_object_get(ctx, "credentials");
    sigv4_creds cr = {
        json_string_value(json_object_get(c, "access_key_id")),
        json_string_value(json_object_get(c, "secret_access_key")),
        json_string_value(json_object_get(c, "token"))};
    sigv4_options opt;
    memset(&opt, 0, sizeof opt);
    opt.region = json_string_value(json_object_get(ctx, "region"));
    opt.service = json_string_value(json_object_get(ctx, "service"));
    opt.now = parse_time(json_string_value(json_object_get(ctx, "timestamp")));
    if (!json_is_true(json_object_get(ctx, "normalize")))
        opt.flags |= SIGV4_NO_NORMALIZE;
    if (json_is_true(json_object_get(ctx, "sign_body")))
        opt.flags |= SIGV4_CONTENT_SHA256;
    if (json_is_true(json_object_get(ctx, "omit_session_token")))
        opt.flags |= SIGV4_TOKEN_AFTER;
    if (presign) {
        opt.flags |= SIGV4_PRESIGN;
        opt.expires = (uint32_t)json_integer_value(
            json_object_get(ctx, "expiration_in_seconds"));
    }
    sigv4_request sr = {req->method, req->path, req->query,   req->h,
                        req->nh,     req->body, req->body_len};
    sigv4_result res;
    int ok = 1;
    int rc = sigv4_sign(&sr, &cr, &opt, NULL, &res);
    if (rc != 0) {
        fprintf(stderr, "FAIL %s: sigv4_sign returned %d\n", vname, rc);
        ok = 0;
        goto done;
    }
    ok &= same(vname, f[0], want[0], res.canonical_request);
    ok &= same(vname, f[1], want[1], res.string_to_sign);
    ok &= same(vname, f[2], want[2], res.signature);
    if (want[3]) {
        hreq sq;
        if (hreq_parse(want[3], strlen(want[3]), &sq) != 0) {
            fprintf(stderr, "FAIL %s: cannot parse %s\n", vname, f[3]);
            ok = 0;
        } else {
            char *a = header_set(sq.h, sq.nh, NULL, 0);
            char *b =
                header_set(req->h, req->nh, res.add_headers, res.n_add_headers);
            ok &= same(vname, "signed request headers", a, b);
            free(a);
            free(b);
            ok &= same(vname, "signed request path", sq.path, req->path);
            if (presign) {
                char *qa = canon_query(sq.query), *qb = canon_query(res.query);
                ok &= same(vname, "presigned query parameters", qa, qb);
                free(qa);
                free(qb);
            }
            hreq_free(&sq);
        }
    }
done:
    sigv4_result_free(&res);
    if (ok)
        n_passed++;
    else
        n_failed++;
out:
    for (int i = 0; i < 4; i++)
        free(want[i]);
}

static void run_awsc(const char *cname, const char *dir)
{
    json_error_t jerr;
    char p[1024];
    pjoin(p, sizeof p, dir, "/context.json", "");
    json_t *ctx = json_load_file(p, 0, &jerr);
    size_t len = 0;
    pjoin(p, sizeof p, dir, "/request.txt", "");
    char *txt = read_file(p, &len);
    hreq req;
    if (!ctx || !txt || hreq_parse(txt, len, &req) != 0) {
        n_ran++;
        n_failed++;
        fprintf(stderr, "FAIL %s: cannot read context.json / request.txt\n",
                cname);
        json_decref(ctx);
        free(txt);
        return;
    }
    run_awsc_variant(cname, dir, ctx, &req, 0);
    run_awsc_variant(cname, dir, ctx, &req, 1);
    hreq_free(&req);
    json_decref(ctx);
    free(txt);
}

/* ---- the walk ---------------------------------------------------------------
 */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *root, const char *rel, json_t *folder,
                 json_t *params)
{
    char dir[1024];
    pjoin(dir, sizeof dir, root, "/", rel);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    char reqname[512];
    snprintf(reqname, sizeof reqname, "%s.req", base);
    const char *fmt = json_string_value(json_object_get(folder, "format"));
    json_t *skip = json_object_get(json_object_get(params, "skip"), rel);

    int is_classic = exists(dir, reqname);
    int is_awsc = exists(dir, "context.json");
    if (is_classic || is_awsc) {
        if (skip)
            skip_case(rel, json_string_value(skip));
        else if (is_awsc && fmt && strcmp(fmt, "aws-c-auth") == 0)
            run_awsc(rel, dir);
        else if (is_classic && fmt && strcmp(fmt, "classic") == 0)
            run_classic(rel, dir, base, folder, params);
        else
            skip_case(rel, "case format does not match the folder's format "
                           "in logferry-params.json");
        return;
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        if (e->d_name[0] == '.')
            continue;
        char sub[1024];
        struct stat st;
        int sl = snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (sl > 0 && (size_t)sl < sizeof sub && stat(sub, &st) == 0 &&
            S_ISDIR(st.st_mode))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_cmp);
    for (size_t i = 0; i < n; i++) {
        char r2[1024];
        pjoin(r2, sizeof r2, rel, "/", names[i]);
        walk(root, r2, folder, params);
        free(names[i]);
    }
}

START_TEST(test_vectors)
{
    const char *root = LF_TEST_DATA "/sigv4";
    json_error_t jerr;
    char p[1024];
    pjoin(p, sizeof p, root, "/logferry-params.json", "");
    json_t *params = json_load_file(p, 0, &jerr);
    ck_assert_msg(params != NULL, "%s: %s", p, jerr.text);
    json_t *folders = json_object_get(params, "folders");

    /* Every folder on disk is either run or reported. */
    DIR *d = opendir(root);
    ck_assert_ptr_nonnull(d);
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        struct stat st;
        int pl = snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        if (pl > 0 && (size_t)pl < sizeof p && e->d_name[0] != '.' &&
            stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_cmp);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_object_get(folders, names[i]);
        if (f)
            walk(root, names[i], f, params);
        else
            skip_case(names[i], "folder has no entry in logferry-params.json");
        free(names[i]);
    }
    json_decref(params);

    printf("%s%s", notes_list, skipped_list);
    printf("sigv4: %d cases ran, %d passed, %d skipped\n", n_ran, n_passed,
           n_skipped);
    fflush(stdout);
    ck_assert_msg(n_failed == 0, "%d SigV4 cases failed (details above)",
                  n_failed);
    ck_assert_int_eq(n_passed, n_ran);
    /* A walk that finds nothing must not pass quietly. */
    ck_assert_int_ge(n_ran, 100);
}
END_TEST

/* ---- direct checks --------------------------------------------------------
 */

static const char *SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

START_TEST(test_derived_key_vector)
{
    /* README: 20120215/us-east-1/iam -> f4780e2d... */
    sigv4_key k;
    ck_assert_int_eq(sigv4_derive_key("AKIDEXAMPLE", SUITE_SECRET, 1329264000,
                                      "us-east-1", "iam", &k),
                     0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", k.key[i]);
    ck_assert_str_eq(
        hex,
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    ck_assert_str_eq(k.scope, "20120215/us-east-1/iam/aws4_request");
    sigv4_key_clear(&k);
    ck_assert_int_eq(k.valid, 0);
}
END_TEST

START_TEST(test_iam_general_reference)
{
    /* AWS General Reference example: GET /?Action=ListUsers... on IAM. */
    sigv4_header h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
        {"Host", "iam.amazonaws.com"}};
    sigv4_request r = {"GET", "/", "Action=ListUsers&Version=2010-05-08", h, 2,
                       NULL,  0};
    sigv4_creds c = {"AKIDEXAMPLE", SUITE_SECRET, NULL};
    sigv4_options o = {"us-east-1", "iam", 1440938160, 0, NULL, 0};
    sigv4_key k;
    memset(&k, 0, sizeof k);
    sigv4_result res;
    ck_assert_int_eq(sigv4_sign(&r, &c, &o, &k, &res), 0);
    const char *last = strrchr(res.string_to_sign, '\n') + 1;
    ck_assert_int_eq(strncmp(last, "f536975d", 8), 0);
    ck_assert_str_eq(last + 64 - 9, "43b7e1a59");
    ck_assert_str_eq(
        res.signature,
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", k.key[i]);
    ck_assert_str_eq(
        hex,
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
    sigv4_result_free(&res);
    sigv4_key_clear(&k);
}
END_TEST

static void sign_simple(const char *service, const char *path, unsigned flags,
                        sigv4_key *k, sigv4_result *res, int want_rc)
{
    sigv4_header h[] = {{"Host", "example.amazonaws.com"}};
    sigv4_request r = {"GET", path, NULL, h, 1, NULL, 0};
    sigv4_creds c = {"AKIDEXAMPLE", SUITE_SECRET, NULL};
    sigv4_options o = {"us-east-1", service, 1440938160, flags, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r, &c, &o, k, res), want_rc);
}

static char *creq_uri(const sigv4_result *r)
{
    static char line[512];
    const char *a = strchr(r->canonical_request, '\n') + 1;
    const char *b = strchr(a, '\n');
    snprintf(line, sizeof line, "%.*s", (int)(b - a), a);
    return line;
}

START_TEST(test_path_rules)
{
    sigv4_result r;
    /* non-S3: normalized, then encoded again ('%' -> %25) */
    sign_simple("logs", "/a/./b/../c//d%20e", 0, NULL, &r, 0);
    ck_assert_str_eq(creq_uri(&r), "/a/c/d%2520e");
    sigv4_result_free(&r);
    /* S3: no normalization, single encoding, "$" and "%24" agree */
    sign_simple("s3", "/my-object//example//photo.user", 0, NULL, &r, 0);
    ck_assert_str_eq(creq_uri(&r), "/my-object//example//photo.user");
    sigv4_result_free(&r);
    sign_simple("s3", "/a$b%24c%20d", 0, NULL, &r, 0);
    ck_assert_str_eq(creq_uri(&r), "/a%24b%24c%20d");
    ck_assert_ptr_nonnull(strstr(r.canonical_request, "x-amz-content-sha256:"));
    sigv4_result_free(&r);
    /* explicit S3 rules for another signing name */
    sign_simple("s3-outposts", "/x//y", SIGV4_S3, NULL, &r, 0);
    ck_assert_str_eq(creq_uri(&r), "/x//y");
    sigv4_result_free(&r);
    sign_simple("logs", "", 0, NULL, &r, 0);
    ck_assert_str_eq(creq_uri(&r), "/");
    sigv4_result_free(&r);
}
END_TEST

START_TEST(test_key_cache)
{
    sigv4_key k;
    memset(&k, 0, sizeof k);
    sigv4_result a, b, c;
    sign_simple("logs", "/", 0, NULL, &a, 0);
    sign_simple("logs", "/", 0, &k, &b, 0);
    ck_assert_int_eq(k.valid, 1);
    ck_assert_str_eq(k.scope, "20150830/us-east-1/logs/aws4_request");
    ck_assert_str_eq(a.signature, b.signature);
    /* reused as is */
    sign_simple("logs", "/", 0, &k, &c, 0);
    ck_assert_str_eq(a.signature, c.signature);
    sigv4_result_free(&c);
    /* other service: key rederived, not misused */
    sign_simple("sts", "/", 0, &k, &c, 0);
    ck_assert_str_eq(k.scope, "20150830/us-east-1/sts/aws4_request");
    sigv4_result d;
    sign_simple("sts", "/", 0, NULL, &d, 0);
    ck_assert_str_eq(c.signature, d.signature);
    sigv4_result_free(&a);
    sigv4_result_free(&b);
    sigv4_result_free(&c);
    sigv4_result_free(&d);
    sigv4_key_clear(&k);
}
END_TEST

START_TEST(test_rejects)
{
    sigv4_result r;
    sigv4_creds c = {"AKIDEXAMPLE", SUITE_SECRET, NULL};
    sigv4_options o = {"us-east-1", "logs", 1440938160, 0, NULL, 0};
    /* no Host */
    sigv4_header h0[] = {{"Content-Type", "x"}};
    sigv4_request r0 = {"GET", "/", NULL, h0, 1, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r0, &c, &o, NULL, &r), -EINVAL);
    ck_assert_ptr_null(r.canonical_request);
    /* a header the signer owns */
    sigv4_header h1[] = {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}};
    sigv4_request r1 = {"GET", "/", NULL, h1, 2, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r1, &c, &o, NULL, &r), -EINVAL);
    /* a bad header name */
    sigv4_header h2[] = {{"Host", "h"}, {"Bad Name", "v"}};
    sigv4_request r2 = {"GET", "/", NULL, h2, 2, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r2, &c, &o, NULL, &r), -EINVAL);
    /* caps: too many headers, an over-long value */
    sigv4_header many[SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < SIGV4_MAX_HEADERS + 1; i++)
        many[i] = (sigv4_header){"Host", "h"};
    sigv4_request r3 = {"GET", "/", NULL, many, SIGV4_MAX_HEADERS + 1, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r3, &c, &o, NULL, &r), -E2BIG);
    char *big = malloc(SIGV4_MAX_FIELD + 2);
    memset(big, 'a', SIGV4_MAX_FIELD + 1);
    big[SIGV4_MAX_FIELD + 1] = '\0';
    sigv4_header h4[] = {{"Host", "h"}, {"X-Big", big}};
    sigv4_request r4 = {"GET", "/", NULL, h4, 2, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r4, &c, &o, NULL, &r), -E2BIG);
    sigv4_request r5 = {"GET", big, NULL, h4, 1, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r5, &c, &o, NULL, &r), -E2BIG);
    free(big);
    /* presign expiry over 7 days */
    sigv4_options o2 = o;
    o2.flags = SIGV4_PRESIGN;
    o2.expires = 604801;
    ck_assert_int_eq(sigv4_sign(&r4, &c, &o2, NULL, &r), -EINVAL);
    /* no secret */
    sigv4_creds c2 = {"AKIDEXAMPLE", NULL, NULL};
    sigv4_request r6 = {"GET", "/", NULL, h4, 1, NULL, 0};
    ck_assert_int_eq(sigv4_sign(&r6, &c2, &o, NULL, &r), -EINVAL);
    sigv4_result_free(NULL);
    sigv4_key_clear(NULL);
}
END_TEST

START_TEST(test_uri_encode)
{
    char out[16];
    ck_assert_uint_eq(sigv4_uri_encode("a b/c~", 6, 1, out, sizeof out), 8);
    ck_assert_str_eq(out, "a%20b/c~");
    ck_assert_uint_eq(sigv4_uri_encode("a b/c~", 6, 0, out, sizeof out), 10);
    ck_assert_str_eq(out, "a%20b%2Fc~");
    /* truncation reports the length needed and stays terminated */
    ck_assert_uint_eq(sigv4_uri_encode("////////", 8, 0, out, 8), 24);
    ck_assert_uint_lt(strlen(out), 8);
    char d[17];
    ck_assert_int_eq(sigv4_amz_date(1440938160, d), 0);
    ck_assert_str_eq(d, "20150830T123600Z");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sigv4");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_derived_key_vector);
    tcase_add_test(tc, test_iam_general_reference);
    tcase_add_test(tc, test_path_rules);
    tcase_add_test(tc, test_key_cache);
    tcase_add_test(tc, test_rejects);
    tcase_add_test(tc, test_uri_encode);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
