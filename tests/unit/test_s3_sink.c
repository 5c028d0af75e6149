/*
 * test_s3_sink.c - the s3 sink module (build/sinks/lf_sink_s3.so), loaded
 * with dlopen() as the agent loads it, driven through a fake lf_host: a
 * controllable clock, records whose fields come from a small struct, and
 * an aws_call that plays a tiny in-memory S3 (PutObject, the multipart
 * family, ListMultipartUploads) with faults on demand.
 *
 * Covered: key rendering and routing, refusals, rolling by records, size
 * and age, checksum and object headers, multipart state persisted and
 * recovered (abort of the recorded upload, of a "pending" one found by
 * listing), re-delivered positions skipped after a crash, torn staging
 * tails, permanent and retryable failures, the staging cap, config
 * errors.
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include <logferry/sink.h>

#include "crc32c.h"

#define MODULE LF_BUILD_DIR "/sinks/lf_sink_s3.so"
#define ENDPOINT "http://s3.test:9000"

/* ---- records ------------------------------------------------------------ */

typedef struct frec {
    int id;
    const char *tenant, *account, *date, *hour;
} frec;

/* ---- the fake S3 -------------------------------------------------------- */

typedef struct fobj {
    char path[1200]; /* bucket/key (decoded) */
    char *body;
    size_t len;
    char headers[2048]; /* "name: value\n" as sent */
} fobj;

typedef struct fupload {
    char id[32];
    char path[1200];
    char *parts[64];
    size_t plen[64];
    int live;
} fupload;

typedef struct freq {
    char method[8];
    char url[1400];
    char headers[2048];
} freq;

typedef struct fault {
    char op[32]; /* PutObject, UploadPart, AbortMultipartUpload, ... */
    int count;   /* -1: until cleared */
    int skip;    /* let this many through first */
    lf_aws_class cls;
    long status;
    char code[64];
} fault;

typedef struct fake {
    lf_host pub;
    char dir[PATH_MAX];
    pthread_mutex_t lock;
    atomic_llong mono, now;
    char log[1 << 17];
    size_t log_len;
    struct {
        char name[48];
        uint64_t v;
    } counters[64];
    size_t n_counters;
    fobj objs[256];
    size_t n_objs;
    fupload ups[16];
    size_t n_ups, next_up;
    freq reqs[512];
    size_t n_reqs;
    fault faults[4];
    size_t n_faults;
    char last_role[256], last_extid[256];
    int acquires;
} fake;

static fake *F;

static void f_log(const lf_host *h, lf_log_level level, const char *fmt, ...)
{
    fake *f = h->priv;
    (void)level;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (getenv("S3_TEST_LOG"))
        fprintf(stderr, "log: %s\n", line);
    pthread_mutex_lock(&f->lock);
    if (n > 0 && f->log_len + (size_t)n + 2 < sizeof f->log) {
        memcpy(f->log + f->log_len, line, (size_t)n);
        f->log_len += (size_t)n;
        f->log[f->log_len++] = '\n';
        f->log[f->log_len] = '\0';
    }
    pthread_mutex_unlock(&f->lock);
}

static void f_counter(const lf_host *h, const char *name, uint64_t d)
{
    fake *f = h->priv;
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

static uint64_t counter(const char *name)
{
    uint64_t v = 0;
    pthread_mutex_lock(&F->lock);
    for (size_t i = 0; i < F->n_counters; i++)
        if (strcmp(F->counters[i].name, name) == 0)
            v = F->counters[i].v;
    pthread_mutex_unlock(&F->lock);
    return v;
}

static size_t f_json(const lf_host *h, const lf_record *r, char *dst,
                     size_t cap)
{
    (void)h;
    const frec *x = r->internal;
    char tmp[256];
    int n = snprintf(tmp, sizeof tmp, "{\"id\":%d,\"tenant_id\":\"%s\"}", x->id,
                     x->tenant ? x->tenant : "");
    if (cap) {
        size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(dst, tmp, k);
        dst[k] = '\0';
    }
    return (size_t)n;
}

static size_t f_field(const lf_host *h, const lf_record *r, const char *name,
                      const char **out)
{
    (void)h;
    const frec *x = r->internal;
    const char *v = NULL;
    if (strcmp(name, "tenant_id") == 0)
        v = x->tenant;
    else if (strcmp(name, "account_id") == 0)
        v = x->account;
    else if (strcmp(name, "date") == 0)
        v = x->date;
    else if (strcmp(name, "hour") == 0)
        v = x->hour;
    else if (strncmp(name, "attributes.", 11) == 0)
        v = "";
    else
        return (size_t)-1;
    *out = v ? v : "";
    return strlen(*out);
}

static int64_t f_now(const lf_host *h)
{
    return atomic_load(&((fake *)h->priv)->now);
}

static int64_t f_mono(const lf_host *h)
{
    return atomic_load(&((fake *)h->priv)->mono);
}

struct lf_aws_creds {
    int dummy;
};
static struct lf_aws_creds the_creds;

static lf_aws_creds *f_acquire(const lf_host *h, const lf_aws_identity *id,
                               char *err, size_t errlen)
{
    fake *f = h->priv;
    if (id->external_id && strcmp(id->external_id, "refuse-me") == 0) {
        snprintf(err, errlen, "ExternalId refused");
        return NULL;
    }
    pthread_mutex_lock(&f->lock);
    snprintf(f->last_role, sizeof f->last_role, "%s",
             id->role_arn ? id->role_arn : "");
    snprintf(f->last_extid, sizeof f->last_extid, "%s",
             id->external_id ? id->external_id : "");
    f->acquires++;
    pthread_mutex_unlock(&f->lock);
    return &the_creds;
}

static void f_release(const lf_host *h, lf_aws_creds *c)
{
    (void)h;
    (void)c;
}

/* Percent-decode s[0..n) into out. */
static void pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hx[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hx, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

static int qparam(const char *q, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= nl && strncmp(p, name, nl) == 0 &&
            (len == nl || p[nl] == '=')) {
            const char *v = len > nl ? p + nl + 1 : p + len;
            pct_decode(v, (size_t)(p + len - v), out, cap);
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

typedef struct fres {
    char headers[256];
    char *body;
} fres;

static lf_aws_class answer(lf_aws_result *out, lf_aws_class cls, long status,
                           const char *code, const char *body,
                           const char *headers)
{
    fres *r = calloc(1, sizeof *r);
    r->body = strdup(body ? body : "");
    snprintf(r->headers, sizeof r->headers, "%s", headers ? headers : "");
    out->priv = r;
    out->body = r->body;
    out->body_len = strlen(r->body);
    out->cls = cls;
    out->status = status;
    snprintf(out->code, sizeof out->code, "%s", code ? code : "");
    snprintf(out->message, sizeof out->message, "%s", code ? code : "");
    snprintf(out->request_id, sizeof out->request_id, "req-1");
    return cls;
}

static lf_aws_class f_call(const lf_host *h, lf_aws_creds *c,
                           const lf_aws_request *req, lf_aws_result *out)
{
    fake *f = h->priv;
    (void)c;
    memset(out, 0, sizeof *out);
    ck_assert_str_eq(req->service, "s3");
    ck_assert_int_eq(req->s3, 1);
    ck_assert(strncmp(req->url, ENDPOINT "/", strlen(ENDPOINT) + 1) == 0);
    const char *path = req->url + strlen(ENDPOINT) + 1;
    const char *qm = strchr(path, '?');
    char dpath[1200], q[1400] = "";
    pct_decode(path, qm ? (size_t)(qm - path) : strlen(path), dpath,
               sizeof dpath);
    if (qm)
        snprintf(q, sizeof q, "%s", qm + 1);
    char up[64] = "", pn[16] = "";
    int has_up = qparam(q, "uploadId", up, sizeof up);
    int has_uploads = qparam(q, "uploads", pn, sizeof pn);
    qparam(q, "partNumber", pn, sizeof pn);
    const char *op = !strcmp(req->method, "PUT")
                         ? (has_up ? "UploadPart" : "PutObject")
                     : !strcmp(req->method, "POST")
                         ? (has_uploads ? "CreateMultipartUpload"
                                        : "CompleteMultipartUpload")
                     : !strcmp(req->method, "DELETE") ? "AbortMultipartUpload"
                                                      : "ListMultipartUploads";
    pthread_mutex_lock(&f->lock);
    if (f->n_reqs < 512) {
        freq *r = &f->reqs[f->n_reqs++];
        snprintf(r->method, sizeof r->method, "%s", req->method);
        snprintf(r->url, sizeof r->url, "%s", req->url);
        size_t o = 0;
        for (size_t i = 0; i < req->n_headers && o < sizeof r->headers; i++)
            o += (size_t)snprintf(r->headers + o, sizeof r->headers - o,
                                  "%s: %s\n", req->headers[i].name,
                                  req->headers[i].value);
    }
    for (size_t i = 0; i < f->n_faults; i++) {
        fault *ft = &f->faults[i];
        if (strcmp(ft->op, op) != 0 || ft->count == 0)
            continue;
        if (ft->skip > 0) {
            ft->skip--;
            continue;
        }
        if (ft->count > 0)
            ft->count--;
        pthread_mutex_unlock(&f->lock);
        return answer(out, ft->cls, ft->status, ft->code, "", NULL);
    }
    lf_aws_class rc;
    if (!strcmp(op, "PutObject")) {
        fobj *o = NULL;
        for (size_t i = 0; i < f->n_objs; i++)
            if (!strcmp(f->objs[i].path, dpath))
                o = &f->objs[i];
        if (!o)
            o = &f->objs[f->n_objs++];
        snprintf(o->path, sizeof o->path, "%s", dpath);
        free(o->body);
        o->body = malloc(req->body_len + 1);
        memcpy(o->body, req->body, req->body_len);
        o->len = req->body_len;
        snprintf(o->headers, sizeof o->headers, "%s",
                 f->reqs[f->n_reqs - 1].headers);
        rc = answer(out, LF_AWS_OK, 200, NULL, "", "ETag: \"x\"");
    } else if (!strcmp(op, "CreateMultipartUpload")) {
        fupload *u = &f->ups[f->n_ups++];
        memset(u, 0, sizeof *u);
        snprintf(u->id, sizeof u->id, "UP-%zu", ++f->next_up);
        snprintf(u->path, sizeof u->path, "%s", dpath);
        u->live = 1;
        char body[256];
        snprintf(body, sizeof body,
                 "<?xml version=\"1.0\"?><InitiateMultipartUploadResult>"
                 "<Bucket>b</Bucket><Key>k</Key><UploadId>%s</UploadId>"
                 "</InitiateMultipartUploadResult>",
                 u->id);
        rc = answer(out, LF_AWS_OK, 200, NULL, body, NULL);
    } else {
        fupload *u = NULL;
        for (size_t i = 0; i < f->n_ups; i++)
            if (f->ups[i].live && !strcmp(f->ups[i].id, up))
                u = &f->ups[i];
        if (!strcmp(op, "ListMultipartUploads")) {
            char body[4096] = "<ListMultipartUploadsResult>";
            char prefix[1200] = "";
            qparam(q, "prefix", prefix, sizeof prefix);
            const char *slash = strchr(dpath, '/');
            size_t bl = slash ? (size_t)(slash - dpath) : strlen(dpath);
            for (size_t i = 0; i < f->n_ups; i++) {
                const char *key = f->ups[i].path + bl + 1;
                if (f->ups[i].live && !strncmp(f->ups[i].path, dpath, bl) &&
                    !strncmp(key, prefix, strlen(prefix)))
                    snprintf(body + strlen(body), sizeof body - strlen(body),
                             "<Upload><Key>%s</Key><UploadId>%s</UploadId>"
                             "</Upload>",
                             key, f->ups[i].id);
            }
            strcat(body, "<IsTruncated>false</IsTruncated>"
                         "</ListMultipartUploadsResult>");
            rc = answer(out, LF_AWS_OK, 200, NULL, body, NULL);
        } else if (!u) {
            rc = answer(out, LF_AWS_PERMANENT, 404, "NoSuchUpload", "", NULL);
        } else if (!strcmp(op, "UploadPart")) {
            int n = atoi(pn);
            ck_assert(n >= 1 && n <= 64);
            free(u->parts[n - 1]);
            u->parts[n - 1] = malloc(req->body_len + 1);
            memcpy(u->parts[n - 1], req->body, req->body_len);
            u->plen[n - 1] = req->body_len;
            char et[64];
            snprintf(et, sizeof et, "ETag: \"etag-%d\"", n);
            rc = answer(out, LF_AWS_OK, 200, NULL, "", et);
        } else if (!strcmp(op, "AbortMultipartUpload")) {
            u->live = 0;
            rc = answer(out, LF_AWS_OK, 204, NULL, "", NULL);
        } else { /* complete: parts in order, as listed in the body */
            fobj *o = &f->objs[f->n_objs++];
            snprintf(o->path, sizeof o->path, "%s", u->path);
            size_t total = 0;
            for (int i = 0; i < 64 && u->parts[i]; i++)
                total += u->plen[i];
            o->body = malloc(total + 1);
            o->len = 0;
            for (int i = 0; i < 64 && u->parts[i]; i++) {
                char want[64];
                snprintf(want, sizeof want,
                         "<PartNumber>%d</PartNumber><ETag>&quot;etag-%d",
                         i + 1, i + 1);
                ck_assert_msg(req->body_len &&
                                  strstr((const char *)req->body, want),
                              "part %d missing from Complete", i + 1);
                memcpy(o->body + o->len, u->parts[i], u->plen[i]);
                o->len += u->plen[i];
                free(u->parts[i]);
                u->parts[i] = NULL;
            }
            u->live = 0;
            rc = answer(out, LF_AWS_OK, 200, NULL,
                        "<CompleteMultipartUploadResult/>", NULL);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static size_t f_header(const lf_host *h, const lf_aws_result *r,
                       const char *name, char *out, size_t cap)
{
    (void)h;
    const fres *x = r->priv;
    size_t nl = strlen(name);
    if (!x || strncasecmp(x->headers, name, nl) != 0 || x->headers[nl] != ':')
        return (size_t)-1;
    return (size_t)snprintf(out, cap, "%s", x->headers + nl + 2);
}

static void f_free(const lf_host *h, lf_aws_result *r)
{
    (void)h;
    fres *x = r->priv;
    if (x) {
        free(x->body);
        free(x);
    }
    r->priv = NULL;
}

static void fake_init(fake *f, const char *dir)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    atomic_store(&f->mono, 1000000000LL);
    atomic_store(&f->now, 1735787000LL * 1000000000LL);
    f->pub = (lf_host){
        .abi_version = LF_SINK_ABI_VERSION,
        .struct_size = sizeof(lf_host),
        .log = f_log,
        .counter_add = f_counter,
        .to_json = f_json,
        .field = f_field,
        .now_ns = f_now,
        .mono_ns = f_mono,
        .priv = f,
        .aws_creds_acquire = f_acquire,
        .aws_creds_release = f_release,
        .aws_call = f_call,
        .aws_result_header = f_header,
        .aws_result_free = f_free,
        .instance_dir = f->dir,
    };
}

static void fake_free(fake *f)
{
    for (size_t i = 0; i < f->n_objs; i++)
        free(f->objs[i].body);
    for (size_t i = 0; i < f->n_ups; i++)
        for (int k = 0; k < 64; k++)
            free(f->ups[i].parts[k]);
}

static void add_fault(const char *op, int count, lf_aws_class cls, long status,
                      const char *code)
{
    pthread_mutex_lock(&F->lock);
    fault *ft = &F->faults[F->n_faults++];
    memset(ft, 0, sizeof *ft);
    snprintf(ft->op, sizeof ft->op, "%s", op);
    ft->count = count;
    ft->cls = cls;
    ft->status = status;
    snprintf(ft->code, sizeof ft->code, "%s", code);
    pthread_mutex_unlock(&F->lock);
}

static void clear_faults(void)
{
    pthread_mutex_lock(&F->lock);
    F->n_faults = 0;
    pthread_mutex_unlock(&F->lock);
}

/* ---- the module and its config -------------------------------------- */

static void *dl;
static const lf_sink_ops *ops;
static char tmpdir[256];
static lf_conf_value vals[64];
static char valtext[64][256];

static void load_module(void)
{
    dl = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl, "dlopen %s: %s", MODULE, dlerror());
    lf_sink_entry_fn fn = (lf_sink_entry_fn)dlsym(dl, LF_SINK_ENTRY_SYMBOL);
    ck_assert(fn);
    ops = fn();
    ck_assert_str_eq(ops->name, "s3");
}

static int64_t parse_num(const char *s, lf_conf_type t)
{
    char *end;
    double v = strtod(s, &end);
    if (t == LF_CONF_SIZE) {
        if (*end == 'K')
            v *= 1024;
        else if (*end == 'M')
            v *= 1024 * 1024;
        else if (*end == 'G')
            v *= 1024.0 * 1024 * 1024;
    } else if (t == LF_CONF_DURATION) {
        if (!strcmp(end, "s"))
            v *= 1000;
        else if (!strcmp(end, "m"))
            v *= 60000;
        else if (!strcmp(end, "h"))
            v *= 3600000;
    }
    return (int64_t)v;
}

static int key_index(const char *name)
{
    for (size_t i = 0; i < ops->n_config_keys; i++)
        if (!strcmp(ops->config_keys[i].name, name))
            return (int)i;
    ck_abort_msg("no key %s", name);
    return -1;
}

static void set_value(int i, const char *text)
{
    const lf_conf_key *k = &ops->config_keys[i];
    lf_conf_value *v = &vals[i];
    memset(v, 0, sizeof *v);
    if (!text)
        return;
    snprintf(valtext[i], sizeof valtext[i], "%s", text);
    v->present = 1;
    switch (k->type) {
    case LF_CONF_BOOL:
        v->b = !strcmp(text, "true");
        break;
    case LF_CONF_INT:
    case LF_CONF_SIZE:
    case LF_CONF_DURATION:
        v->i = parse_num(text, k->type);
        break;
    case LF_CONF_ENUM:
        v->s = valtext[i];
        for (int e = 0; k->enum_values[e]; e++)
            if (!strcmp(k->enum_values[e], text))
                v->i = e;
        break;
    default:
        v->s = valtext[i];
    }
}

static const char *tags_list[4];

/* Defaults, the test's common settings, then overrides "key=value". */
static void config(const char *const *over)
{
    for (size_t i = 0; i < ops->n_config_keys; i++)
        set_value((int)i, ops->config_keys[i].def);
    set_value(key_index("bucket"), "b-${account_id}");
    set_value(key_index("region"), "eu-west-1");
    set_value(key_index("endpoint"), ENDPOINT);
    set_value(key_index("path_style"), "true");
    set_value(key_index("role_arn"),
              "arn:aws:iam::${account_id}:role/LogWriter");
    set_value(key_index("external_id"), "ext-${account_id}");
    set_value(key_index("upload_concurrency"), "1");
    for (; over && *over; over++) {
        char k[64];
        const char *eq = strchr(*over, '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - *over), *over);
        if (!strcmp(k, "tags")) {
            int i = key_index("tags");
            memset(&vals[i], 0, sizeof vals[i]);
            tags_list[0] = "retention=90d";
            tags_list[1] = "team=a b";
            tags_list[2] = NULL;
            vals[i].list = tags_list;
            vals[i].n = 2;
            continue;
        }
        set_value(key_index(k), strcmp(eq + 1, "NULL") ? eq + 1 : NULL);
    }
}

static void *create_ok(void)
{
    void *inst = NULL;
    char err[512] = "";
    int rc = ops->create(vals, &F->pub, &inst, err, sizeof err);
    ck_assert_msg(rc == 0, "create: %s", err);
    return inst;
}

static void setup(void)
{
    const char *base = getenv("TMPDIR"); /* as tu_mkdtemp() does */
    snprintf(tmpdir, sizeof tmpdir, "%s/lf-s3-unit-XXXXXX",
             base && *base ? base : "/tmp");
    ck_assert(mkdtemp(tmpdir));
    F = calloc(1, sizeof *F);
    fake_init(F, tmpdir);
    load_module();
    config(NULL);
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    fake_free(F);
    free(F);
    dlclose(dl);
}

/* ---- batches ---------------------------------------------------------- */

#define SEG_A "18c0000000000001-00000000000000aa-00000001.lfs"
#define SEG_B "18c0000000000002-00000000000000aa-00000002.lfs"

typedef struct tbatch {
    lf_record recs[512];
    frec fr[512];
    uint8_t verdict[512];
    lf_batch b;
} tbatch;

/* n records with ids id0.., offsets off0 + 100 * k in segment seg, the
 * tenant/account of tenants[k % nt]. */
static lf_batch *mk(tbatch *t, const char *seg, int id0, uint64_t off0,
                    size_t n, const char *const *tenants, size_t nt)
{
    memset(t, 0, sizeof *t);
    for (size_t k = 0; k < n; k++) {
        frec *x = &t->fr[k];
        x->id = id0 + (int)k;
        const char *tn = tenants[k % nt];
        x->tenant = tn;
        x->account = !strcmp(tn, "t1")   ? "111111111111"
                     : !strcmp(tn, "t2") ? "222222222222"
                                         : tn;
        x->date = "2025-01-02";
        x->hour = "03";
        t->recs[k] = (lf_record){.payload = (const uint8_t *)"x",
                                 .len = 1,
                                 .pos = {seg, off0 + 100 * k},
                                 .internal = x};
    }
    t->b = (lf_batch){t->recs, n, t->verdict, NULL, 0};
    return &t->b;
}

static const char *const T1[] = {"t1"};
static const char *const T12[] = {"t1", "t2"};

/* Decompress an object body (zstd). Returns malloc'd text. */
static char *unzstd(const char *p, size_t n, size_t *outlen)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    ZSTD_inBuffer in = {p, n, 0};
    while (in.pos < in.size) {
        if (cap - len < (1 << 16))
            out = realloc(out, cap *= 2);
        ZSTD_outBuffer ob = {out + len, cap - len - 1, 0};
        size_t rc = ZSTD_decompressStream(z, &ob, &in);
        ck_assert_msg(!ZSTD_isError(rc), "zstd: %s", ZSTD_getErrorName(rc));
        len += ob.pos;
    }
    ZSTD_freeDStream(z);
    out[len] = '\0';
    *outlen = len;
    return out;
}

/* ids found in every stored object, with a count per id; returns the
 * number of objects. */
static size_t ids_in_objects(int *count, int max)
{
    memset(count, 0, (size_t)max * sizeof *count);
    pthread_mutex_lock(&F->lock);
    size_t n = F->n_objs;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *t = unzstd(F->objs[i].body, F->objs[i].len, &len);
        for (char *p = t; (p = strstr(p, "{\"id\":"));) {
            int id = atoi(p + 6);
            ck_assert(id >= 0 && id < max);
            count[id]++;
            p += 6;
        }
        free(t);
    }
    pthread_mutex_unlock(&F->lock);
    return n;
}

static int count_files(const char *suffix)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (l > sl && !strcmp(de->d_name + l - sl, suffix))
            n++;
    }
    closedir(d);
    return n;
}

static const fobj *obj(size_t i)
{
    ck_assert_uint_lt(i, F->n_objs);
    return &F->objs[i];
}

static const char *hdr(const char *headers, const char *name, char *out,
                       size_t cap)
{
    char want[128];
    snprintf(want, sizeof want, "%s: ", name);
    const char *p = strstr(headers, want);
    if (!p)
        return NULL;
    p += strlen(want);
    size_t n = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)n, p);
    return out;
}

static void wait_objects(size_t n, int secs)
{
    for (int i = 0; i < secs * 100; i++) {
        pthread_mutex_lock(&F->lock);
        size_t have = F->n_objs;
        pthread_mutex_unlock(&F->lock);
        if (have >= n)
            return;
        usleep(10000);
    }
    ck_abort_msg("%zu objects expected", n);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_key_rendering_and_routing)
{
    const char *over[] = {"key_template=${prefix}/tenant=${tenant_id}/"
                          "dt=${date}/hour=${hour}/x-${first}.ndjson${ext}",
                          NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    lf_batch *b = mk(&t, SEG_A, 0, 64, 6, T12, 2);
    ck_assert_int_eq(ops->deliver(s, b), LF_DELIVER_OK);
    ck_assert_int_eq(count_files(".stage"), 2);
    ck_assert_int_eq(F->n_objs, 0); /* staged, not uploaded yet */
    ck_assert_int_eq(ops->flush(s), 0);
    ck_assert_int_eq(F->n_objs, 2);
    int have[2] = {0, 0};
    for (size_t i = 0; i < 2; i++) {
        const fobj *o = obj(i);
        int t2 = strstr(o->path, "b-222222222222/") == o->path;
        ck_assert(t2 || strstr(o->path, "b-111111111111/") == o->path);
        char want[256];
        snprintf(want, sizeof want,
                 "b-%s/logferry/tenant=%s/dt=2025-01-02/hour=03/"
                 "x-18c0000000000001-00000000000000aa-00000001-%012x"
                 ".ndjson.zst",
                 t2 ? "222222222222" : "111111111111", t2 ? "t2" : "t1",
                 t2 ? 164 : 64);
        ck_assert_str_eq(o->path, want);
        have[t2] = 1;
    }
    ck_assert(have[0] && have[1]);
    /* The '=' of the key is percent-encoded on the wire. */
    ck_assert(strstr(F->reqs[0].url, "/tenant%3Dt"));
    ck_assert_str_eq(F->last_role, "arn:aws:iam::222222222222:role/LogWriter");
    ck_assert_str_eq(F->last_extid, "ext-222222222222");
    int cnt[16];
    ck_assert_uint_eq(ids_in_objects(cnt, 16), 2);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(cnt[i], 1);
    ck_assert_int_eq(count_files(".stage"), 0);
    ck_assert_uint_eq(counter("objects"), 2);
    ck_assert_uint_eq(counter("records_uploaded"), 6);
    ck_assert_uint_gt(counter("bytes_out"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_unroutable_records_refused)
{
    void *s = create_ok();
    tbatch t;
    const char *const tn[] = {"t1", "", "12/34", "t2"};
    lf_batch *b = mk(&t, SEG_A, 0, 64, 4, tn, 4);
    t.fr[2].account = "12/34"; /* not 12 digits, and a '/' */
    ck_assert_int_eq(ops->deliver(s, b), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t.verdict[0], LF_REC_OK);
    ck_assert_int_eq(t.verdict[1], LF_REC_FAIL); /* empty tenant, account */
    ck_assert_int_eq(t.verdict[2], LF_REC_FAIL);
    ck_assert_int_eq(t.verdict[3], LF_REC_OK);
    ck_assert_ptr_nonnull(b->fail_reason);
    ck_assert(strstr(b->fail_reason, "account_id") ||
              strstr(b->fail_reason, "tenant_id"));
    /* An identity the host refuses is refused too, not retried. */
    tbatch t2;
    b = mk(&t2, SEG_A, 10, 1064, 1, T1, 1);
    const char *over[] = {"external_id=refuse-me", NULL};
    ops->destroy(s);
    config(over);
    s = create_ok();
    ck_assert_int_eq(ops->deliver(s, b), LF_DELIVER_PARTIAL);
    ck_assert_int_eq(t2.verdict[0], LF_REC_FAIL);
    ck_assert(strstr(b->fail_reason, "identity refused"));
    ops->destroy(s);
}
END_TEST

START_TEST(test_roll_by_records_and_bytes)
{
    const char *over[] = {"roll_records=3", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 64, 10, T1, 1)),
                     LF_DELIVER_OK);
    wait_objects(3, 5); /* three full objects roll at once */
    ck_assert_int_eq(ops->flush(s), 0);
    ck_assert_uint_eq(F->n_objs, 4);
    int cnt[16];
    ids_in_objects(cnt, 16);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(cnt[i], 1);
    /* Each object's key names its own first record. */
    for (size_t i = 0; i < 4; i++)
        ck_assert(strstr(obj(i)->path, "-000000000040.") ||
                  strstr(obj(i)->path, "-00000000016c.") ||
                  strstr(obj(i)->path, "-000000000298.") ||
                  strstr(obj(i)->path, "-0000000003c4."));
    ops->destroy(s);

    /* By size: 2 KB of NDJSON. */
    const char *over2[] = {"roll_bytes=1024", NULL};
    config(over2);
    s = create_ok();
    size_t before = F->n_objs;
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_B, 100 + 40 * k,
                                            64 + 4000 * k, 40, T1, 1)),
                         LF_DELIVER_OK);
    }
    wait_objects(before + 3, 5);
    ops->destroy(s);
}
END_TEST

START_TEST(test_roll_by_age)
{
    const char *over[] = {"roll_age=60s", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 64, 2, T1, 1)),
                     LF_DELIVER_OK);
    usleep(700000);
    ck_assert_uint_eq(F->n_objs, 0);
    atomic_fetch_add(&F->mono, 61LL * 1000000000LL);
    wait_objects(1, 3); /* the uploader notices within its tick */
    ops->destroy(s);
}
END_TEST

static void md5_b64(const void *p, size_t n, char *out)
{
    unsigned char md[16];
    unsigned int l;
    EVP_Digest(p, n, md, &l, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 16);
}

START_TEST(test_checksum_and_object_headers)
{
    const char *over[] = {"sse=aws:kms", "sse_kms_key_id=alias/logs",
                          "storage_class=GLACIER_IR", "tags=", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 64, 5, T1, 1)),
                     LF_DELIVER_OK);
    ops->flush(s);
    const fobj *o = obj(0);
    char v[256], want[16];
    uint32_t c = crc32c(o->body, o->len);
    unsigned char be[4] = {c >> 24, c >> 16, c >> 8, c};
    EVP_EncodeBlock((unsigned char *)want, be, 4);
    ck_assert_str_eq(hdr(o->headers, "x-amz-checksum-crc32c", v, sizeof v),
                     want);
    ck_assert_str_eq(
        hdr(o->headers, "x-amz-sdk-checksum-algorithm", v, sizeof v), "CRC32C");
    ck_assert_str_eq(hdr(o->headers, "Content-Type", v, sizeof v),
                     "application/x-ndjson");
    ck_assert_str_eq(hdr(o->headers, "Content-Encoding", v, sizeof v), "zstd");
    ck_assert_str_eq(
        hdr(o->headers, "x-amz-server-side-encryption", v, sizeof v),
        "aws:kms");
    ck_assert_str_eq(hdr(o->headers,
                         "x-amz-server-side-encryption-aws-kms-key-id", v,
                         sizeof v),
                     "alias/logs");
    ck_assert_str_eq(hdr(o->headers, "x-amz-storage-class", v, sizeof v),
                     "GLACIER_IR");
    ck_assert_str_eq(hdr(o->headers, "x-amz-tagging", v, sizeof v),
                     "retention=90d&team=a%20b");
    ck_assert_str_eq(
        hdr(o->headers, "x-amz-meta-logferry-records", v, sizeof v), "5");
    ops->destroy(s);

    /* MD5 instead, gzip, no SSE / class / tags. */
    const char *over2[] = {"checksum=md5", "compression=gzip", NULL};
    config(over2);
    s = create_ok();
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_B, 10, 64, 5, T1, 1)),
                     LF_DELIVER_OK);
    ops->flush(s);
    o = obj(1);
    char m[32];
    md5_b64(o->body, o->len, m);
    ck_assert_str_eq(hdr(o->headers, "Content-MD5", v, sizeof v), m);
    ck_assert_ptr_null(hdr(o->headers, "x-amz-checksum-crc32c", v, sizeof v));
    ck_assert_str_eq(hdr(o->headers, "Content-Encoding", v, sizeof v), "gzip");
    ck_assert_ptr_null(
        hdr(o->headers, "x-amz-server-side-encryption", v, sizeof v));
    ck_assert_ptr_null(hdr(o->headers, "x-amz-storage-class", v, sizeof v));
    ck_assert_ptr_null(hdr(o->headers, "x-amz-tagging", v, sizeof v));
    ck_assert((unsigned char)o->body[0] == 0x1f &&
              (unsigned char)o->body[1] == 0x8b);
    ck_assert(strstr(o->path, ".ndjson.gz"));
    ops->destroy(s);
}
END_TEST

/* Enough records to pass a 64 KB threshold uncompressed. */
static void big_batches(void *s, int n_batches)
{
    tbatch t;
    for (int k = 0; k < n_batches; k++)
        ck_assert_int_eq(
            ops->deliver(s, mk(&t, SEG_A, 500 * k, 64 + 50000 * (uint64_t)k,
                               500, T1, 1)),
            LF_DELIVER_OK);
}

START_TEST(test_multipart_upload)
{
    /* Below S3's 5 MB minimum: the fake does not care, the config
       validator of the agent would. */
    const char *over[] = {"compression=none", "multipart_threshold=65536",
                          "part_size=65536", NULL};
    config(over);
    void *s = create_ok();
    big_batches(s, 6); /* 3000 records, ~90 KB per 1000 */
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 1);
    ck_assert_uint_eq(counter("multipart_objects"), 1);
    ck_assert_uint_ge(counter("parts"), 2);
    /* Parts carry their own checksums; the object is the whole NDJSON. */
    size_t parts = 0;
    for (size_t i = 0; i < F->n_reqs; i++)
        if (strstr(F->reqs[i].url, "partNumber=")) {
            parts++;
            ck_assert(strstr(F->reqs[i].headers, "x-amz-checksum-crc32c: "));
        }
    ck_assert_uint_eq(parts, counter("parts"));
    const fobj *o = obj(0);
    size_t lines = 0;
    for (size_t i = 0; i < o->len; i++)
        lines += o->body[i] == '\n';
    ck_assert_uint_eq(lines, 3000);
    ck_assert_int_eq(count_files(".mpu"), 0);
    ck_assert_int_eq(count_files(".stage"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_crash_mid_multipart_recovered)
{
    const char *over[] = {"compression=none", "multipart_threshold=65536",
                          "part_size=65536", "upload_retries=0", NULL};
    config(over);
    void *s = create_ok();
    big_batches(s, 6);
    /* Part 2 fails for good and so does the abort: the upload id stays
       recorded, as after a crash in the middle of the upload. */
    add_fault("UploadPart", -1, LF_AWS_PERMANENT, 403, "AccessDenied");
    F->faults[0].skip = 1;
    add_fault("AbortMultipartUpload", -1, LF_AWS_RETRYABLE, 503,
              "ServiceUnavailable");
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 0);
    ck_assert_int_eq(count_files(".mpu"), 1);
    ck_assert_int_eq(count_files(".stage"), 1);
    ck_assert(F->ups[0].live);
    ops->destroy(s); /* "crash" */
    clear_faults();

    /* The next run aborts the recorded upload, lists for others, and
       uploads again from the staging file. */
    s = create_ok();
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 1);
    for (size_t i = 0; i < F->n_ups; i++)
        ck_assert_msg(!F->ups[i].live, "upload %s left open", F->ups[i].id);
    int aborted = 0, listed = 0;
    for (size_t i = 0; i < F->n_reqs; i++) {
        aborted += !strcmp(F->reqs[i].method, "DELETE") &&
                   strstr(F->reqs[i].url, "uploadId=UP-1");
        listed += !strcmp(F->reqs[i].method, "GET");
    }
    ck_assert_int_ge(aborted, 1);
    ck_assert_int_ge(listed, 1);
    ck_assert_int_eq(count_files(".mpu"), 0);
    ck_assert_int_eq(count_files(".stage"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_pending_marker_lists_and_aborts)
{
    /* A crash between CreateMultipartUpload and recording its id: the
       marker says "pending"; the bucket has an upload for our key. */
    const char *over[] = {"roll_age=60s", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 64, 3, T1, 1)),
                     LF_DELIVER_OK);
    ops->destroy(s);
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char stage[300] = "";
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".stage"))
            snprintf(stage, sizeof stage, "%s", de->d_name);
    closedir(d);
    ck_assert(stage[0]);
    char mpath[PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/%.*s.mpu", tmpdir,
             (int)(strlen(stage) - 6), stage);
    FILE *m = fopen(mpath, "w");
    fputs("pending\n", m);
    fclose(m);
    /* The orphan, and another key's upload that must stay. */
    fupload *u = &F->ups[F->n_ups++];
    snprintf(u->id, sizeof u->id, "ORPHAN");
    snprintf(u->path, sizeof u->path,
             "b-111111111111/logferry/tenant=t1/dt=2025-01-02/hour=03/"
             "%s-18c0000000000001-00000000000000aa-00000001-000000000040"
             ".ndjson.zst",
             "HOST");
    u->live = 1;
    fupload *other = &F->ups[F->n_ups++];
    snprintf(other->id, sizeof other->id, "OTHER");
    snprintf(other->path, sizeof other->path,
             "b-111111111111/logferry/other-key");
    other->live = 1;
    /* The orphan's key has our host name in it. */
    char host[256];
    gethostname(host, sizeof host);
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
    char *h = strstr(u->path, "HOST");
    char rest[1200];
    snprintf(rest, sizeof rest, "%s", h + 4);
    snprintf(h, sizeof u->path - (size_t)(h - u->path), "%s%s", host, rest);

    s = create_ok();
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 1);
    ck_assert_str_eq(F->objs[0].path, u->path);
    ck_assert_msg(!u->live, "orphaned upload not aborted");
    ck_assert_msg(other->live, "another key's upload was touched");
    ck_assert_int_eq(count_files(".mpu"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_redelivery_after_crash_skipped)
{
    const char *over[] = {"roll_age=60s", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    /* ids 0-9 at offsets 100..1000, staged; then a "crash" before the
       core committed its cursor. */
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 10, T1, 1)),
                     LF_DELIVER_OK);
    ops->destroy(s);
    s = create_ok();
    /* The core re-delivers from its cursor (id 5) and goes on. */
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 5, 600, 10, T1, 1)),
                     LF_DELIVER_OK);
    ck_assert_uint_eq(counter("records_redelivered_skipped"), 5);
    ops->flush(s);
    int cnt[32];
    ck_assert_uint_eq(ids_in_objects(cnt, 32), 2);
    for (int i = 0; i < 15; i++)
        ck_assert_int_eq(cnt[i], 1);
    /* Keys: the first record of each object. */
    int first100 = 0, first1100 = 0;
    for (size_t i = 0; i < 2; i++) {
        first100 += strstr(obj(i)->path, "-000000000064.") != NULL;
        first1100 += strstr(obj(i)->path, "-00000000044c.") != NULL;
    }
    ck_assert_int_eq(first100 + first1100, 2);
    ops->destroy(s);

    /* Uploaded and deleted from staging: the positions table still
       knows them. */
    s = create_ok();
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 15, T1, 1)),
                     LF_DELIVER_OK);
    ck_assert_uint_eq(counter("records_redelivered_skipped"), 20);
    ck_assert_int_eq(count_files(".stage"), 0);
    /* Another segment is its own stream of positions. */
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_B, 15, 100, 3, T1, 1)),
                     LF_DELIVER_OK);
    ck_assert_int_eq(count_files(".stage"), 1);
    ops->destroy(s);
}
END_TEST

/* Append half a block to the (only) staging file, as a crash in the
 * middle of a write leaves it. */
static void tear_staging_file(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char path[PATH_MAX] = "";
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".stage"))
            snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
    closedir(d);
    ck_assert(path[0]);
    int fd = open(path, O_WRONLY | O_APPEND);
    const char junk[] = "FSBK\x10\x00\x00\x00{\"id\":99}\n{\"id\":98";
    ck_assert_int_eq(write(fd, junk, sizeof junk - 1),
                     (ssize_t)sizeof junk - 1);
    close(fd);
}

START_TEST(test_torn_staging_tail)
{
    /* Without the WAL (fsync = false) the scan cuts the torn block. */
    const char *over[] = {"roll_age=60s", "fsync=false", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 5, T1, 1)),
                     LF_DELIVER_OK);
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 5, 600, 5, T1, 1)),
                     LF_DELIVER_OK);
    ops->destroy(s);
    tear_staging_file();
    s = create_ok();
    ops->flush(s);
    ck_assert(strstr(F->log, "torn block"));
    int cnt[128];
    ck_assert_uint_eq(ids_in_objects(cnt, 128), 1);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(cnt[i], 1);
    ck_assert_int_eq(cnt[98] + cnt[99], 0);
    ops->destroy(s);

    /* With it, replay cuts the file at the last logged block. */
    const char *over2[] = {"roll_age=60s", NULL};
    config(over2);
    s = create_ok();
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_B, 20, 100, 5, T1, 1)),
                     LF_DELIVER_OK);
    ops->destroy(s);
    tear_staging_file();
    s = create_ok();
    ck_assert(strstr(F->log, "WAL replayed"));
    ops->flush(s);
    ck_assert_uint_eq(ids_in_objects(cnt, 128), 2);
    for (int i = 20; i < 25; i++)
        ck_assert_int_eq(cnt[i], 1);
    ck_assert_int_eq(cnt[98] + cnt[99], 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_wal_restores_unsynced_staging)
{
    /* Power loss: what was only in the page cache of a staging file is
       gone; the WAL, synced before deliver() answered, has it. */
    const char *over[] = {"roll_age=60s", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 6, T12, 2)),
                     LF_DELIVER_OK);
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 6, 700, 6, T12, 2)),
                     LF_DELIVER_OK);
    ops->destroy(s);
    /* Lose everything of both staging files, even their names. */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    int lost = 0;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".stage")) {
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
            ck_assert_int_eq(unlink(p), 0);
            lost++;
        }
    closedir(d);
    ck_assert_int_eq(lost, 2);
    s = create_ok();
    ck_assert_int_eq(count_files(".stage"), 2);
    ops->flush(s);
    int cnt[32];
    ck_assert_uint_eq(ids_in_objects(cnt, 32), 2);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(cnt[i], 1);
    ops->destroy(s);

    /* Uploaded objects are logged DONE: a replay brings none back. */
    size_t before = F->n_objs;
    s = create_ok();
    ck_assert_int_eq(count_files(".stage"), 0);
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, before);
    ops->destroy(s);
}
END_TEST

START_TEST(test_wal_checkpoint)
{
    /* Past S3_WAL_MAX (32 MB) of log the staging files are synced and a
       new log starts; nothing is lost across it. Incompressible-ish
       lines: compression none. */
    const char *over[] = {"roll_age=60s", "compression=none", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    int id = 0;
    for (int k = 0; counter("wal_checkpoints") == 0 && k < 4000; k++) {
        ck_assert_int_eq(
            ops->deliver(
                s, mk(&t, SEG_A, id, 100 + 100 * (uint64_t)id, 500, T1, 1)),
            LF_DELIVER_OK);
        id += 500;
    }
    ck_assert_uint_ge(counter("wal_checkpoints"), 1);
    ck_assert_int_eq(count_files(".log"), 1);
    ops->destroy(s);
    s = create_ok();
    ops->flush(s);
    ck_assert_uint_ge(F->n_objs, 1);
    ops->destroy(s);
}
END_TEST

START_TEST(test_permanent_failure_kept_and_logged)
{
    const char *over[] = {"permanent_retry_interval=1h", NULL};
    config(over);
    void *s = create_ok();
    add_fault("PutObject", -1, LF_AWS_PERMANENT, 403, "AccessDenied");
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 4, T1, 1)),
                     LF_DELIVER_OK);
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 0);
    ck_assert_int_eq(count_files(".stage"), 1);
    ck_assert_uint_ge(counter("upload_errors"), 1);
    ck_assert(strstr(F->log, "bucket=b-111111111111"));
    ck_assert(strstr(F->log, "role=arn:aws:iam::111111111111:role/LogWriter"));
    ck_assert(strstr(F->log, "AccessDenied"));
    ck_assert_ptr_null(strstr(F->log, "ext-111111111111"));
    /* Only one attempt: permanent errors are not retried in a loop. */
    size_t puts = 0;
    for (size_t i = 0; i < F->n_reqs; i++)
        puts += !strcmp(F->reqs[i].method, "PUT");
    ck_assert_uint_eq(puts, 1);
    /* The bucket is fixed; the next flush uploads it. */
    clear_faults();
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 1);
    ck_assert_int_eq(count_files(".stage"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_retryable_then_ok)
{
    const char *over[] = {"upload_retries=3", NULL};
    config(over);
    void *s = create_ok();
    add_fault("PutObject", 2, LF_AWS_RETRYABLE, 503, "SlowDown");
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 4, T1, 1)),
                     LF_DELIVER_OK);
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 1);
    ck_assert_uint_eq(counter("request_retries"), 2);
    ck_assert_uint_eq(counter("upload_errors"), 0);
    ops->destroy(s);
}
END_TEST

START_TEST(test_staging_cap_answers_retry)
{
    const char *over[] = {"max_staged_bytes=100", "roll_age=60s", NULL};
    config(over);
    void *s = create_ok();
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 4, T1, 1)),
                     LF_DELIVER_OK);
    lf_batch *b = mk(&t, SEG_A, 4, 500, 4, T1, 1);
    ck_assert_int_eq(ops->deliver(s, b), LF_DELIVER_RETRY);
    ck_assert_uint_gt(b->retry_after_ms, 0);
    ops->flush(s); /* uploads; staging is empty again */
    ck_assert_int_eq(ops->deliver(s, b), LF_DELIVER_OK);
    ops->destroy(s);
}
END_TEST

START_TEST(test_config_errors)
{
    struct {
        const char *set[3], *want;
    } cases[] = {
        {{"key_template=${prefix}/${tenant_id}.ndjson"}, "${first}"},
        {{"endpoint=ftp://x"}, "endpoint"},
        {{"endpoint=http://host/path"}, "endpoint"},
        {{"bucket=Not_A_Bucket"}, "bucket"},
        {{"bucket=b-${prompt_text}"}, "prompt_text"},
        {{"role_arn=arn:aws:iam::12:role/x"}, "role_arn"},
        {{"compression=gzip", "compression_level=12"}, "gzip"},
        {{"sse_kms_key_id=k"}, "sse_kms_key_id"},
        {{"role_arn=NULL", "external_id=x-1"}, "needs role_arn"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        config(cases[i].set);
        void *inst = NULL;
        char err[512] = "";
        int rc = ops->create(vals, &F->pub, &inst, err, sizeof err);
        ck_assert_msg(rc == -1, "case %zu accepted", i);
        ck_assert_msg(strstr(err, cases[i].want), "case %zu: %s", i, err);
    }
    /* Two instances on one directory: the second waits its turn. */
    config(NULL);
    void *a = create_ok(), *b = NULL;
    char err[512];
    ck_assert_int_eq(ops->create(vals, &F->pub, &b, err, sizeof err), -1);
    ck_assert(strstr(err, "in use"));
    ops->destroy(a);
}
END_TEST

START_TEST(test_validate_creates_nothing)
{
    ck_assert_ptr_nonnull(ops->validate);
    char err[512] = "";
    config(NULL);
    ck_assert_int_eq(ops->validate(vals, err, sizeof err), 0);
    const char *bad[] = {"key_template=${tenant_id}.json", NULL};
    config(bad);
    ck_assert_int_eq(ops->validate(vals, err, sizeof err), -1);
    ck_assert(strstr(err, "${first}"));
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(n, 0);
    ck_assert_uint_gt(ops->batch_linger_ms, 0);
}
END_TEST

START_TEST(test_max_age_deletes_what_cannot_be_uploaded)
{
    /* spool.max_age = 10 s; the bucket refuses for good. The object closes
       at max_age / 2 (not roll_age), fails, and once its oldest spool
       segment is 10 s old it is deleted, log included. */
    F->pub.max_age_ms = 10000;
    int64_t born = 0x18c0000000000001LL; /* SEG_A's creation time */
    atomic_store(&F->now, born + 1000000000LL);
    const char *over[] = {"roll_age=60s", "permanent_retry_interval=1h", NULL};
    config(over);
    void *s = create_ok();
    add_fault("PutObject", -1, LF_AWS_PERMANENT, 403, "AccessDenied");
    tbatch t;
    ck_assert_int_eq(ops->deliver(s, mk(&t, SEG_A, 0, 100, 4, T1, 1)),
                     LF_DELIVER_OK);
    atomic_fetch_add(&F->mono, 6LL * 1000000000LL); /* > max_age / 2 */
    for (int i = 0; i < 300 && counter("upload_errors") == 0; i++)
        usleep(10000);
    ck_assert_uint_eq(counter("upload_errors"), 1);
    ck_assert_int_eq(count_files(".stage"), 1);
    /* The log is rotated at max_age / 4 so it keeps no old records. */
    atomic_store(&F->now, born + 9500000000LL);
    for (int i = 0; i < 300 && counter("wal_checkpoints") == 0; i++)
        usleep(10000);
    ck_assert_uint_ge(counter("wal_checkpoints"), 1);
    atomic_store(&F->now, born + 10500000000LL);
    for (int i = 0; i < 300 && counter("records_expired") == 0; i++)
        usleep(10000);
    ck_assert_uint_eq(counter("records_expired"), 4);
    ck_assert_int_eq(count_files(".stage"), 0);
    ck_assert(strstr(F->log, "spool.max_age"));
    ck_assert_uint_eq(F->n_objs, 0);
    ops->destroy(s);
    /* Nothing comes back from the log. */
    clear_faults();
    s = create_ok();
    ck_assert_int_eq(count_files(".stage"), 0);
    ops->flush(s);
    ck_assert_uint_eq(F->n_objs, 0);
    ops->destroy(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("s3_sink");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_key_rendering_and_routing);
    tcase_add_test(tc, test_unroutable_records_refused);
    tcase_add_test(tc, test_roll_by_records_and_bytes);
    tcase_add_test(tc, test_roll_by_age);
    tcase_add_test(tc, test_checksum_and_object_headers);
    tcase_add_test(tc, test_multipart_upload);
    tcase_add_test(tc, test_crash_mid_multipart_recovered);
    tcase_add_test(tc, test_pending_marker_lists_and_aborts);
    tcase_add_test(tc, test_redelivery_after_crash_skipped);
    tcase_add_test(tc, test_torn_staging_tail);
    tcase_add_test(tc, test_wal_restores_unsynced_staging);
    tcase_add_test(tc, test_wal_checkpoint);
    tcase_add_test(tc, test_permanent_failure_kept_and_logged);
    tcase_add_test(tc, test_retryable_then_ok);
    tcase_add_test(tc, test_staging_cap_answers_retry);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_validate_creates_nothing);
    tcase_add_test(tc, test_max_age_deletes_what_cannot_be_uploaded);
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
