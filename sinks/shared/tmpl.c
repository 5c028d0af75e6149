/*
 * tmpl.c - "${name}" templates for sink destinations. See tmpl.h.
 */
#include "tmpl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPL_MAX_PARTS 32

typedef enum part_kind {
    P_TEXT = 0,   /* literal (constants are folded into text) */
    P_FIELD = 1,  /* a record field through host->field */
    P_MARK = 2,   /* the marker byte */
    P_HOURLY = 3, /* date or hour: host->field, kept per UTC hour */
} part_kind;

typedef struct tmpl_part {
    part_kind kind;
    char *text; /* literal text or the field name; owned */
    size_t len;
} tmpl_part;

struct lf_tmpl {
    lf_tmpl_spec spec;
    char *src;
    size_t n;
    tmpl_part parts[TMPL_MAX_PARTS];
    int has_field, has_mark;
    int64_t hour_bucket;
    int hour_valid;
    char hourly[TMPL_MAX_PARTS][16];
};

static const char *const fields[] = {
    "tenant_id", "account_id", "app",      "region", "model_id", "operation",
    "status",    "session_id", "trace_id", "date",   "hour",     NULL,
};

static int field_allowed(const char *name, size_t len)
{
    if (len > 11 && memcmp(name, "attributes.", 11) == 0)
        return 1;
    for (size_t i = 0; fields[i]; i++)
        if (strlen(fields[i]) == len && memcmp(fields[i], name, len) == 0)
            return 1;
    return 0;
}

static int is_name(const char *name, size_t len, const char *want)
{
    return want && strlen(want) == len && memcmp(name, want, len) == 0;
}

void lf_tmpl_free(lf_tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->src);
    free(t);
}

static int add_part(lf_tmpl *t, part_kind k, const char *s, size_t n, char *err,
                    size_t errlen)
{
    /* Adjacent literals merge, so folded constants cost no part. */
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

static void unknown(const lf_tmpl_spec *sp, const char *name, size_t len,
                    char *err, size_t errlen)
{
    int k = snprintf(err, errlen,
                     "unknown or unusable field '${%.*s}' (use tenant_id, "
                     "account_id, app, region, model_id, operation, status, "
                     "session_id, trace_id, date, hour, attributes.KEY",
                     (int)(len > 64 ? 64 : len), name);
    for (const lf_tmpl_var *v = sp->vars; v && v->name && k > 0; v++)
        if ((size_t)k < errlen)
            k += snprintf(err + k, errlen - (size_t)k, ", %s", v->name);
    if (sp->mark_name && k > 0 && (size_t)k < errlen)
        k += snprintf(err + k, errlen - (size_t)k, ", %s", sp->mark_name);
    if (k > 0 && (size_t)k < errlen)
        snprintf(err + k, errlen - (size_t)k, ")");
}

lf_tmpl *lf_tmpl_parse(const char *text, const lf_tmpl_spec *spec, char *err,
                       size_t errlen)
{
    lf_tmpl *t = calloc(1, sizeof *t);
    if (!t || !(t->src = strdup(text))) {
        snprintf(err, errlen, "out of memory");
        free(t);
        return NULL;
    }
    t->spec = *spec;
    t->spec.vars = NULL; /* folded below; not kept */
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
        for (const lf_tmpl_var *v = spec->vars; v && v->name && !fold; v++)
            if (is_name(name, len, v->name))
                fold = v->value ? v->value : "";
        if (len == 0) {
            snprintf(err, errlen, "empty field name '${}'");
            goto fail;
        } else if (fold) {
            if (*fold && add_part(t, P_TEXT, fold, strlen(fold), err, errlen))
                goto fail;
        } else if (is_name(name, len, spec->mark_name)) {
            if (t->has_mark) {
                snprintf(err, errlen, "${%s} appears twice", spec->mark_name);
                goto fail;
            }
            if (add_part(t, P_MARK, "", 0, err, errlen))
                goto fail;
            t->has_mark = 1;
        } else if (field_allowed(name, len)) {
            int hourly =
                is_name(name, len, "date") || is_name(name, len, "hour");
            if (add_part(t, hourly ? P_HOURLY : P_FIELD, name, len, err,
                         errlen))
                goto fail;
            t->has_field = 1;
        } else {
            unknown(spec, name, len, err, errlen);
            goto fail;
        }
        p = close + 1;
    }
    return t;
fail:
    lf_tmpl_free(t);
    return NULL;
}

const char *lf_tmpl_text(const lf_tmpl *t)
{
    return t->src;
}

int lf_tmpl_is_static(const lf_tmpl *t)
{
    return !t->has_field;
}

int lf_tmpl_has_mark(const lf_tmpl *t)
{
    return t->has_mark;
}

/* Floor division: hours before 1970 belong to the hour below. */
static int64_t hour_of(int64_t ns)
{
    int64_t q = ns / 3600000000000LL;
    return (ns % 3600000000000LL < 0) ? q - 1 : q;
}

long lf_tmpl_expand(lf_tmpl *t, const lf_host *h, const lf_record *rec,
                    char *out, size_t cap, char *why, size_t whylen)
{
    if (t->hour_valid && hour_of(rec->event_time_ns) != t->hour_bucket)
        t->hour_valid = 0;
    int cacheable = 1;
    size_t len = 0;
    for (size_t i = 0; i < t->n; i++) {
        const tmpl_part *p = &t->parts[i];
        const char *v = p->text;
        size_t n = p->len;
        if (p->kind == P_MARK) {
            v = &t->spec.mark;
            n = 1;
        } else if (p->kind == P_HOURLY && t->hour_valid) {
            v = t->hourly[i];
            n = strlen(v);
        } else if (p->kind != P_TEXT) {
            n = h->field(h, rec, p->text, &v);
            if (n == (size_t)-1 || !v) {
                snprintf(why, whylen, "field %s is unknown to this agent",
                         p->text);
                return -1;
            }
            if (n == 0) {
                snprintf(why, whylen, "record has no %s", p->text);
                return -1;
            }
            const char *bad = t->spec.check(t->spec.cs, v, n);
            if (bad) {
                snprintf(why, whylen, "%s %s", p->text, bad);
                return -1;
            }
            if (p->kind == P_HOURLY) {
                if (n < sizeof t->hourly[i]) {
                    memcpy(t->hourly[i], v, n);
                    t->hourly[i][n] = '\0';
                } else {
                    cacheable = 0;
                }
            }
        }
        if (n >= cap - len) {
            snprintf(why, whylen, "expansion longer than %zu bytes", cap - 1);
            return -1;
        }
        memcpy(out + len, v, n);
        len += n;
    }
    out[len] = '\0';
    /* Every hourly part was just filled from the host, or from the cache
       of this very hour. */
    t->hour_bucket = hour_of(rec->event_time_ns);
    t->hour_valid = cacheable;
    return (long)len;
}
