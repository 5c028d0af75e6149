/*
 * record_input.c - JSON / name=value → InvocationRecord. See
 * record_input.h.
 */
#include "record_input.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Logferry__V1__InvocationRecord rec_t;

enum kind { K_STR, K_U64, K_U32, K_I64 };

static const struct field {
    const char *name;
    enum kind kind;
    size_t off;
} fields[] = {
    {"event_time_ns", K_I64, offsetof(rec_t, event_time_ns)},
    {"tenant_id", K_STR, offsetof(rec_t, tenant_id)},
    {"account_id", K_STR, offsetof(rec_t, account_id)},
    {"app", K_STR, offsetof(rec_t, app)},
    {"region", K_STR, offsetof(rec_t, region)},
    {"model_id", K_STR, offsetof(rec_t, model_id)},
    {"operation", K_STR, offsetof(rec_t, operation)},
    {"input_tokens", K_U64, offsetof(rec_t, input_tokens)},
    {"output_tokens", K_U64, offsetof(rec_t, output_tokens)},
    {"cache_read_tokens", K_U64, offsetof(rec_t, cache_read_tokens)},
    {"cache_write_tokens", K_U64, offsetof(rec_t, cache_write_tokens)},
    {"latency_ms", K_U32, offsetof(rec_t, latency_ms)},
    {"time_to_first_token_ms", K_U32, offsetof(rec_t, time_to_first_token_ms)},
    {"error_type", K_STR, offsetof(rec_t, error_type)},
    {"error_message", K_STR, offsetof(rec_t, error_message)},
    {"request_id", K_STR, offsetof(rec_t, request_id)},
    {"trace_id", K_STR, offsetof(rec_t, trace_id)},
    {"session_id", K_STR, offsetof(rec_t, session_id)},
    {"prompt_text", K_STR, offsetof(rec_t, prompt_text)},
    {"completion_text", K_STR, offsetof(rec_t, completion_text)},
};

static const char *const statuses[] = {"unspecified", "ok",      "error",
                                       "throttled",   "timeout", "cancelled",
                                       "filtered"};

void record_input_init(record_input *ri)
{
    memset(ri, 0, sizeof *ri);
    logferry__v1__invocation_record__init(&ri->rec);
}

void record_input_free(record_input *ri)
{
    if (!ri)
        return;
    for (size_t i = 0; i < ri->n_owned; i++)
        free(ri->owned[i]);
    free(ri->owned);
    free(ri->attrs);
    free(ri->attr_store);
    record_input_init(ri);
}

static char *own(record_input *ri, const char *s)
{
    char **o = realloc(ri->owned, (ri->n_owned + 1) * sizeof *o);
    if (!o)
        return NULL;
    ri->owned = o;
    char *c = strdup(s);
    if (c)
        ri->owned[ri->n_owned++] = c;
    return c;
}

static int add_attr(record_input *ri, const char *k, const char *v, char *err,
                    size_t errlen)
{
    size_t n = ri->rec.n_attributes;
    /* Re-point the array at the grown store after each realloc. */
    Logferry__V1__InvocationRecord__AttributesEntry *st =
        realloc(ri->attr_store, (n + 1) * sizeof *st);
    if (!st)
        goto oom;
    ri->attr_store = st;
    Logferry__V1__InvocationRecord__AttributesEntry **a =
        realloc(ri->attrs, (n + 1) * sizeof *a);
    if (!a)
        goto oom;
    ri->attrs = a;
    logferry__v1__invocation_record__attributes_entry__init(&st[n]);
    st[n].key = own(ri, k);
    st[n].value = own(ri, v);
    if (!st[n].key || !st[n].value)
        goto oom;
    for (size_t i = 0; i <= n; i++)
        a[i] = &st[i];
    ri->rec.attributes = a;
    ri->rec.n_attributes = n + 1;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int record_input_set(record_input *ri, const char *name, const char *value,
                     char *err, size_t errlen)
{
    if (strncmp(name, "attributes.", 11) == 0 && name[11])
        return add_attr(ri, name + 11, value, err, errlen);
    if (strcmp(name, "status") == 0) {
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
            if (strcmp(statuses[i], value) == 0) {
                ri->rec.status = (Logferry__V1__Status)i;
                return 0;
            }
        char *end;
        long v = strtol(value, &end, 10);
        if (*value && !*end && v >= 0 && v < 1000) {
            ri->rec.status = (Logferry__V1__Status)v;
            return 0;
        }
        snprintf(err, errlen,
                 "status: unknown value (use ok, error, "
                 "throttled, timeout, cancelled, filtered)");
        return -1;
    }
    if (strcmp(name, "record_id") == 0) {
        if (strlen(value) != 32) {
            snprintf(err, errlen, "record_id: expected 32 hex digits");
            return -1;
        }
        for (int i = 0; i < 16; i++) {
            int h = hexval(value[2 * i]), l = hexval(value[2 * i + 1]);
            if (h < 0 || l < 0) {
                snprintf(err, errlen, "record_id: expected 32 hex digits");
                return -1;
            }
            ri->record_id[i] = (uint8_t)(h * 16 + l);
        }
        ri->rec.record_id.data = ri->record_id;
        ri->rec.record_id.len = 16;
        return 0;
    }
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (strcmp(fields[i].name, name) != 0)
            continue;
        char *base = (char *)&ri->rec + fields[i].off;
        if (fields[i].kind == K_STR) {
            char *c = own(ri, value);
            if (!c) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            *(char **)base = c;
            return 0;
        }
        char *end;
        errno = 0;
        if (fields[i].kind == K_I64) {
            long long v = strtoll(value, &end, 10);
            if (!*value || *end || errno)
                goto badnum;
            *(int64_t *)base = v;
        } else {
            if (value[0] == '-')
                goto badnum;
            unsigned long long v = strtoull(value, &end, 10);
            if (!*value || *end || errno ||
                (fields[i].kind == K_U32 && v > UINT32_MAX))
                goto badnum;
            if (fields[i].kind == K_U32)
                *(uint32_t *)base = (uint32_t)v;
            else
                *(uint64_t *)base = v;
        }
        return 0;
    badnum:
        snprintf(err, errlen, "%s: expected a non-negative integer", name);
        return -1;
    }
    snprintf(err, errlen, "%s: not a field of InvocationRecord", name);
    return -1;
}

int record_input_from_json(record_input *ri, json_t *obj, char *err,
                           size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "expected a JSON object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "time") == 0)
            continue;
        if (strcmp(key, "attributes") == 0) {
            if (!json_is_object(v)) {
                snprintf(err, errlen, "attributes: expected an object");
                return -1;
            }
            const char *ak;
            json_t *av;
            json_object_foreach(v, ak, av)
            {
                if (!json_is_string(av)) {
                    snprintf(err, errlen, "attributes.%s: expected a string",
                             ak);
                    return -1;
                }
                if (add_attr(ri, ak, json_string_value(av), err, errlen))
                    return -1;
            }
            continue;
        }
        char num[32];
        const char *text;
        if (json_is_string(v))
            text = json_string_value(v);
        else if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
        } else {
            snprintf(err, errlen, "%s: expected a string or an integer", key);
            return -1;
        }
        if (record_input_set(ri, key, text, err, errlen))
            return -1;
    }
    return 0;
}
