/*
 * cwl_template.c - "${field}" templates for role_arn, external_id,
 * session_name, log_group and log_stream.
 *
 * A template decides whose account a record goes to, so expansion is
 * strict: a field that is empty, unknown, or holds characters the
 * destination part does not allow leaves the record unroutable (it goes
 * to the configured default destination or to dead letters), never to a
 * name that could belong to someone else.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

#define TMPL_MAX_PARTS 32

typedef struct tmpl_part {
    const char *text; /* literal text, or the field name */
    size_t len;
    int field; /* 0 literal, 1 record field, 2 hostname */
} tmpl_part;

struct cwl_tmpl {
    cwl_charset cs;
    size_t n;
    tmpl_part parts[TMPL_MAX_PARTS];
    char *src;  /* copy of the configured text */
    char *text; /* parts point here */
};

/* Record fields a template may use: the schema's text-like fields plus
 * the derived date/hour. Numbers and free text (prompts) make no sense in
 * a destination name and are refused at load time. */
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

void cwl_tmpl_free(cwl_tmpl *t)
{
    if (!t)
        return;
    free(t->src);
    free(t->text);
    free(t);
}

cwl_tmpl *cwl_tmpl_parse(const char *text, cwl_charset cs, char *err,
                         size_t errlen)
{
    cwl_tmpl *t = calloc(1, sizeof *t);
    if (!t || !(t->src = strdup(text)) || !(t->text = strdup(text))) {
        snprintf(err, errlen, "out of memory");
        cwl_tmpl_free(t);
        return NULL;
    }
    t->cs = cs;
    char *p = t->text;
    while (*p) {
        if (t->n == TMPL_MAX_PARTS) {
            snprintf(err, errlen, "more than %d parts", TMPL_MAX_PARTS);
            goto fail;
        }
        tmpl_part *part = &t->parts[t->n];
        char *open = strstr(p, "${");
        if (open != p) {
            part->text = p;
            part->len = open ? (size_t)(open - p) : strlen(p);
            part->field = 0;
            p += part->len;
            t->n++;
            continue;
        }
        char *close = strchr(open + 2, '}');
        if (!close) {
            snprintf(err, errlen, "'${' without a closing '}'");
            goto fail;
        }
        part->text = open + 2;
        part->len = (size_t)(close - open - 2);
        *close = '\0';
        if (part->len == 0) {
            snprintf(err, errlen, "empty field name '${}'");
            goto fail;
        }
        if (strcmp(part->text, "hostname") == 0) {
            part->field = 2;
        } else if (field_allowed(part->text, part->len)) {
            part->field = 1;
        } else {
            snprintf(err, errlen,
                     "unknown field '${%s}' (use tenant_id, account_id, "
                     "app, region, model_id, operation, status, "
                     "session_id, trace_id, date, hour, hostname or "
                     "attributes.KEY)",
                     part->text);
            goto fail;
        }
        p = close + 1;
        t->n++;
    }
    return t;

fail:
    cwl_tmpl_free(t);
    return NULL;
}

int cwl_tmpl_is_static(const cwl_tmpl *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].field == 1)
            return 0;
    return 1;
}

const char *cwl_tmpl_text(const cwl_tmpl *t)
{
    return t->src;
}

static int char_ok(cwl_charset cs, unsigned char c)
{
    if (isalnum(c) && c < 0x80)
        return 1;
    switch (cs) {
    case CWL_CS_GROUP:
        return c == '.' || c == '_' || c == '/' || c == '#' || c == '-';
    case CWL_CS_STREAM:
        return c >= 0x20 && c != ':' && c != '*' && c != 0x7f;
    case CWL_CS_ARN:
    case CWL_CS_SESSION:
        return strchr("_+=,.@-", c) != NULL && c != 0;
    case CWL_CS_EXTID:
        return strchr("_+=,.@:/-", c) != NULL && c != 0;
    }
    return 0;
}

static const char *const cs_what[] = {
    "a log group name", "a log stream name", "a role ARN",
    "an ExternalId",    "a session name",
};

long cwl_tmpl_expand(const cwl_tmpl *t, const lf_host *h, const lf_record *rec,
                     const char *hostname, char *out, size_t cap, char *why_buf)
{
    size_t len = 0;
    for (size_t i = 0; i < t->n; i++) {
        const tmpl_part *part = &t->parts[i];
        const char *v = part->text;
        size_t n = part->len;
        if (part->field == 2) {
            v = hostname;
            n = strlen(hostname);
        } else if (part->field == 1) {
            n = h->field(h, rec, part->text, &v);
            if (n == (size_t)-1) {
                snprintf(why_buf, 128, "field %.64s unknown to the agent",
                         part->text);
                return -1;
            }
            if (n == 0) {
                snprintf(why_buf, 128, "record has no %.64s", part->text);
                return -1;
            }
            for (size_t j = 0; j < n; j++)
                if (!char_ok(t->cs, (unsigned char)v[j])) {
                    snprintf(why_buf, 128,
                             "%.64s holds characters not allowed in %s",
                             part->text, cs_what[t->cs]);
                    return -1;
                }
        }
        if (n >= cap - len) {
            snprintf(why_buf, 128, "%s longer than %zu bytes", cs_what[t->cs],
                     cap - 1);
            return -1;
        }
        memcpy(out + len, v, n);
        len += n;
    }
    out[len] = '\0';
    return (long)len;
}

int cwl_valid_group(const char *s, size_t n)
{
    if (n < 1 || n > CWL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(CWL_CS_GROUP, (unsigned char)s[i]))
            return 0;
    return 1;
}

int cwl_valid_stream(const char *s, size_t n)
{
    if (n < 1 || n > CWL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(CWL_CS_STREAM, (unsigned char)s[i]))
            return 0;
    return 1;
}

/* arn:<partition>:iam::<12 digits>:role/<path and name>. The host checks
 * the ARN again when acquiring credentials; this check runs per record so
 * a malformed account_id is caught as that record's problem. */
int cwl_valid_role_arn(const char *s, size_t n)
{
    if (n > CWL_ARN_MAX || n < 4 || memcmp(s, "arn:", 4) != 0)
        return 0;
    const char *p = s + 4, *end = s + n;
    const char *c = memchr(p, ':', (size_t)(end - p));
    if (!c || c == p)
        return 0;
    for (const char *q = p; q < c; q++)
        if (!(islower((unsigned char)*q) || *q == '-'))
            return 0;
    p = c + 1;
    if (end - p < 5 || memcmp(p, "iam::", 5) != 0)
        return 0;
    p += 5;
    if (end - p < 13)
        return 0;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)p[i]))
            return 0;
    p += 12;
    if (end - p < 7 || memcmp(p, ":role/", 6) != 0)
        return 0;
    p += 6;
    for (; p < end; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_+=,.@-/", *p)) || *p == 0)
            return 0;
    return 1;
}
