/*
 * config.c - libconfig file → validated agent_conf. See config.h.
 */
#include "config.h"
#include "redact_config.h"
#include "route.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

const lf_conf_key conf_top_keys[TK__COUNT] = {
    [TK_LOG_LEVEL] = {"log_level", LF_CONF_ENUM, 0, "info", 0, 0, log_levels,
                      "Threshold of the agent's own log on stderr."},
    [TK_STATE_DIR] = {"state_dir", LF_CONF_STRING, 0, "/var/lib/logferry", 1,
                      4096, NULL,
                      "Directory for cursors, dead letters and status."},
    [TK_MODULE_DIR] = {"module_dir", LF_CONF_STRING, 0, LF_DEFAULT_MODULE_DIR,
                       1, 4096, NULL,
                       "Directory the sink modules lf_sink_<type>.so are "
                       "loaded from."},
};

const lf_conf_key conf_spool_keys[PK__COUNT] = {
    [PK_DIR] = {"dir", LF_CONF_STRING, 0, "/var/spool/logferry", 1, 4096, NULL,
                "Spool directory the applications write segments into."},
    [PK_MAX_BYTES] = {"max_bytes", LF_CONF_SIZE, 0, "0", 0, INT64_MAX, NULL,
                      "Size the spool should not exceed (0: no limit); "
                      "reported by status and enforced by the writers' "
                      "overflow policy."},
    [PK_RESCAN] = {"rescan_interval", LF_CONF_DURATION, 0, "1s", 10, 600000,
                   NULL,
                   "Period of the full directory rescan that backs up "
                   "inotify."},
    [PK_MAX_AGE] = {"max_age", LF_CONF_DURATION, 0, "0", 0, INT64_MAX, NULL,
                    "No record stays on the local disk longer than this, "
                    "delivered or not (0: no limit). A record overstays by at "
                    "most its writer's rotation interval; dead letters obey "
                    "it too."},
    [PK_KEEP_DELIVERED] = {"keep_delivered", LF_CONF_DURATION, 0, "0", 0,
                           INT64_MAX, NULL,
                           "Keep segments every sink has delivered this long "
                           "(for `logferry replay`); max_age still applies."},
};

const lf_conf_key conf_delivery_keys[DK__COUNT] = {
    [DK_SHUTDOWN_DEADLINE] = {"shutdown_deadline", LF_CONF_DURATION, 0, "10s",
                              0, 3600000, NULL,
                              "On SIGTERM/SIGINT, how long in-flight "
                              "batches may take to finish before the agent "
                              "exits anyway (cursors stay safe)."},
};

const lf_conf_key conf_aws_keys[AK__COUNT] = {
    [AK_REGION] = {"region", LF_CONF_STRING, 0, NULL, 1, 64, NULL,
                   "Default region for STS (else AWS_REGION, "
                   "AWS_DEFAULT_REGION, us-east-1)."},
    [AK_PROFILE] = {"profile", LF_CONF_STRING, 0, NULL, 1, 128, NULL,
                    "Profile of the shared config/credentials files (else "
                    "AWS_PROFILE, default)."},
    [AK_ACCESS_KEY_ID] = {"access_key_id", LF_CONF_STRING, 0, NULL, 16, 128,
                          NULL,
                          "Static access key id. Allowed, with a warning: "
                          "prefer the environment, profiles or roles."},
    [AK_SECRET_ACCESS_KEY] = {"secret_access_key", LF_CONF_STRING, 0, NULL, 1,
                              256, NULL,
                              "Static secret key (with access_key_id)."},
    [AK_SESSION_TOKEN] = {"session_token", LF_CONF_STRING, 0, NULL, 1, 8192,
                          NULL, "Static session token (optional)."},
    [AK_STS_ENDPOINT] = {"sts_endpoint", LF_CONF_STRING, 0, NULL, 1, 512, NULL,
                         "STS endpoint override (VPC endpoint, FIPS, "
                         "emulator); else https://sts.<region>.amazonaws.com."},
    [AK_IMDS_ENDPOINT] = {"imds_endpoint", LF_CONF_STRING, 0, NULL, 1, 512,
                          NULL,
                          "Instance metadata endpoint override (else "
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT, "
                          "http://169.254.169.254)."},
    [AK_CONTAINER_ENDPOINT] = {"container_endpoint", LF_CONF_STRING, 0, NULL, 1,
                               512, NULL,
                               "Container credentials host override for "
                               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI."},
    [AK_CA_FILE] = {"ca_file", LF_CONF_STRING, 0, NULL, 1, 4096, NULL,
                    "CA bundle for TLS verification (else the system's)."},
    [AK_CA_PATH] = {"ca_path", LF_CONF_STRING, 0, NULL, 1, 4096, NULL,
                    "CA directory for TLS verification."},
    [AK_INSECURE_TLS] = {"insecure_tls", LF_CONF_BOOL, 0, "false", 0, 0, NULL,
                         "Skip TLS verification. For tests only; logged "
                         "loudly."},
    [AK_CONNECT_TIMEOUT] = {"connect_timeout", LF_CONF_DURATION, 0, "5s", 100,
                            600000, NULL, "TCP+TLS connect timeout."},
    [AK_REQUEST_TIMEOUT] = {"request_timeout", LF_CONF_DURATION, 0, "30s", 100,
                            3600000, NULL,
                            "Total time allowed for one AWS request."},
    [AK_MAX_RESPONSE] = {"max_response_bytes", LF_CONF_SIZE, 0, "8MB", 1024,
                         1LL << 30, NULL,
                         "Largest AWS answer accepted; larger is an error."},
};

static const char *const prefetch_modes[] = {"auto", "on", "off", NULL};

const lf_conf_key conf_sink_common_keys[SK__COUNT] = {
    [SK_NAME] = {"name", LF_CONF_STRING, 1, NULL, 1, 64, NULL,
                 "Instance name, unique; names the cursor and log lines."},
    [SK_TYPE] = {"type", LF_CONF_STRING, 1, NULL, 1, 64, NULL,
                 "Module type: loads <module_dir>/lf_sink_<type>.so."},
    [SK_ENABLED] = {"enabled", LF_CONF_BOOL, 0, "true", 0, 0, NULL,
                    "A disabled sink is validated but not run."},
    [SK_BATCH_RECORDS] = {"batch_max_records", LF_CONF_INT, 0, "0", 0, 1000000,
                          NULL, "Records per batch (0: the module's default)."},
    [SK_BATCH_BYTES] = {"batch_max_bytes", LF_CONF_SIZE, 0, "0", 0,
                        256LL * 1024 * 1024, NULL,
                        "Encoded bytes per batch (0: the module's default)."},
    [SK_BATCH_LINGER] = {"batch_linger", LF_CONF_DURATION, 0, "0", 0, 60000,
                         NULL,
                         "How long a batch that is not full waits for more "
                         "records before it is sent (default: the module's "
                         "choice, else 0)."},
    [SK_BACKOFF_BASE] = {"backoff_base", LF_CONF_DURATION, 0, "200ms", 1,
                         600000, NULL,
                         "First retry delay; doubles per failure, with full "
                         "jitter."},
    [SK_BACKOFF_CAP] = {"backoff_cap", LF_CONF_DURATION, 0, "30s", 1, 3600000,
                        NULL, "Longest retry delay."},
    [SK_CURSOR_COMMIT] = {"cursor_commit_interval", LF_CONF_DURATION, 0,
                          "100ms", 0, 60000, NULL,
                          "Least time between two durable cursor writes while "
                          "busy (0: after every batch). Bounds re-delivery "
                          "after a crash; the cursor is always written when "
                          "the sink goes idle and on shutdown."},
    [SK_MAX_RETRY] = {"max_retry_duration", LF_CONF_DURATION, 0, "0", 0,
                      INT64_MAX, NULL,
                      "Give up on records the sink keeps answering RETRY "
                      "for after this long and dead-letter them with the "
                      "reason (0: retry until spool.max_age removes them)."},
    [SK_BATCH_PREFETCH] = {"batch_prefetch", LF_CONF_ENUM, 0, "auto", 0, 0,
                           prefetch_modes,
                           "Read and decode the next batch while the sink "
                           "delivers the current one, which holds a second "
                           "batch in memory (~1 KB per typical record); "
                           "auto does so when batch_max_records is at most "
                           "4096. Acknowledgements are unchanged."},
};

/* ---- errors --------------------------------------------------------- */

void conf_errors_add(conf_errors *e, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (e->n == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 8;
        char **m = realloc(e->msg, nc * sizeof *m);
        if (!m)
            return;
        e->msg = m;
        e->cap = nc;
    }
    char *s = strdup(buf);
    if (s)
        e->msg[e->n++] = s;
}

void conf_errors_free(conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msg[i]);
    free(e->msg);
    memset(e, 0, sizeof *e);
}

/* ---- units ---------------------------------------------------------- */

int conf_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mul = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mul > 1 && *end == 'i')
        end++;
    if (toupper((unsigned char)*end) == 'B')
        end++;
    if (*end || v * mul > 9.2e18)
        return -1;
    *out = (int64_t)(v * mul);
    return 0;
}

int conf_parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    double mul;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else if (strcmp(end, "d") == 0)
        mul = 86400000;
    else if (*end == 0)
        mul = 1; /* a bare number is milliseconds */
    else
        return -1;
    if (v * mul > 9.2e15)
        return -1;
    *out = (int64_t)(v * mul + 0.5);
    return 0;
}

/* ---- blocks --------------------------------------------------------- */

static char *block_own(conf_block *b, char *p)
{
    if (!p)
        return NULL;
    if (b->n_owned == b->cap_owned) {
        size_t nc = b->cap_owned ? b->cap_owned * 2 : 8;
        char **o = realloc(b->owned, nc * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        b->owned = o;
        b->cap_owned = nc;
    }
    b->owned[b->n_owned++] = p;
    return p;
}

void conf_block_free(conf_block *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->v);
    memset(b, 0, sizeof *b);
}

static int in_bounds(const lf_conf_key *k, int64_t v)
{
    return k->min > k->max || (v >= k->min && v <= k->max);
}

/* Convert text (a default, or a string the user gave for a number) to a
 * value. Returns 0 or -1 with a reason in why. */
static int value_from_text(conf_block *b, const lf_conf_key *k,
                           const char *text, lf_conf_value *v, const char **why)
{
    switch (k->type) {
    case LF_CONF_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 ||
            strcmp(text, "on") == 0)
            v->b = 1;
        else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0 ||
                 strcmp(text, "off") == 0)
            v->b = 0;
        else
            return *why = "expected true or false", -1;
        v->i = v->b;
        return 0;
    case LF_CONF_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 0);
        if (end == text || *end || errno)
            return *why = "expected an integer", -1;
        v->i = x;
        return 0;
    }
    case LF_CONF_SIZE:
        if (conf_parse_size(text, &v->i))
            return *why = "expected a size such as 512K, 64MB or 1G", -1;
        return 0;
    case LF_CONF_DURATION:
        if (conf_parse_duration(text, &v->i))
            return *why = "expected a duration such as 250ms, 5s, 2m, 1h "
                          "or 7d",
                   -1;
        return 0;
    case LF_CONF_ENUM:
        for (int i = 0; k->enum_values[i]; i++)
            if (strcmp(k->enum_values[i], text) == 0) {
                v->i = i;
                v->s = k->enum_values[i];
                return 0;
            }
        return *why = "not one of the allowed values", -1;
    case LF_CONF_STRING:
        v->s = block_own(b, strdup(text));
        return v->s ? 0 : (*why = "out of memory", -1);
    case LF_CONF_STRLIST: {
        /* A default list is written "a,b,c". */
        size_t n = 1;
        for (const char *p = text; *p; p++)
            n += *p == ',';
        char **list = calloc(n + 1, sizeof *list);
        char *copy = strdup(text);
        if (!list || !copy || !block_own(b, (char *)list) ||
            !block_own(b, copy)) {
            return *why = "out of memory", -1;
        }
        size_t i = 0;
        for (char *save, *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            list[i++] = t;
        v->list = (const char *const *)list;
        v->n = i;
        return 0;
    }
    }
    return *why = "unknown type", -1;
}

static const char *type_word(lf_conf_type t)
{
    switch (t) {
    case LF_CONF_BOOL:
        return "boolean";
    case LF_CONF_INT:
        return "integer";
    case LF_CONF_SIZE:
        return "size";
    case LF_CONF_DURATION:
        return "duration";
    case LF_CONF_STRING:
        return "string";
    case LF_CONF_ENUM:
        return "enum";
    case LF_CONF_STRLIST:
        return "list of strings";
    }
    return "?";
}

/* Read one setting into v according to k. Errors go to errs prefixed
 * with file:line and the key's dotted name `where`. */
static void value_from_setting(conf_block *b, const lf_conf_key *k,
                               config_setting_t *s, lf_conf_value *v,
                               const char *file, const char *where,
                               conf_errors *errs)
{
    int line = config_setting_source_line(s);
    int st = config_setting_type(s);
    const char *why = NULL;
    v->present = 1;
    v->line = line;
    switch (k->type) {
    case LF_CONF_BOOL:
        if (st != CONFIG_TYPE_BOOL)
            why = "expected true or false";
        else
            v->i = v->b = config_setting_get_bool(s);
        break;
    case LF_CONF_INT:
    case LF_CONF_SIZE:
    case LF_CONF_DURATION:
        if (st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64)
            v->i = config_setting_get_int64(s);
        else if (st == CONFIG_TYPE_STRING && k->type != LF_CONF_INT)
            value_from_text(b, k, config_setting_get_string(s), v, &why);
        else
            why = k->type == LF_CONF_INT ? "expected an integer"
                  : k->type == LF_CONF_SIZE
                      ? "expected a size (integer bytes or \"64MB\")"
                      : "expected a duration (integer ms or \"5s\")";
        if (!why && !in_bounds(k, v->i)) {
            conf_errors_add(errs,
                            "%s:%d: %s: value %lld out of range [%lld, %lld]",
                            file, line, where, (long long)v->i,
                            (long long)k->min, (long long)k->max);
            return;
        }
        break;
    case LF_CONF_STRING:
    case LF_CONF_ENUM:
        if (st != CONFIG_TYPE_STRING) {
            why = "expected a string";
            break;
        }
        value_from_text(b, k, config_setting_get_string(s), v, &why);
        if (!why && k->type == LF_CONF_STRING &&
            !in_bounds(k, (int64_t)strlen(v->s)))
            why = "string length out of range";
        break;
    case LF_CONF_STRLIST: {
        if (st != CONFIG_TYPE_ARRAY && st != CONFIG_TYPE_LIST) {
            why = "expected a list of strings, e.g. [\"a\", \"b\"]";
            break;
        }
        int n = config_setting_length(s);
        char **list = calloc((size_t)n + 1, sizeof *list);
        if (!list || !block_own(b, (char *)list)) {
            why = "out of memory";
            break;
        }
        for (int i = 0; i < n; i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                why = "expected a list of strings";
                break;
            }
            list[i] = block_own(b, strdup(config_setting_get_string(e)));
        }
        v->list = (const char *const *)list;
        v->n = (size_t)n;
        break;
    }
    }
    if (why) {
        if (k->type == LF_CONF_ENUM && strcmp(why, "expected a string") != 0) {
            char allowed[512] = "";
            for (int i = 0; k->enum_values[i]; i++) {
                strncat(allowed, i ? ", " : "",
                        sizeof allowed - strlen(allowed) - 1);
                strncat(allowed, k->enum_values[i],
                        sizeof allowed - strlen(allowed) - 1);
            }
            conf_errors_add(errs, "%s:%d: %s: %s (allowed: %s)", file, line,
                            where, why, allowed);
        } else {
            conf_errors_add(errs, "%s:%d: %s: %s (%s)", file, line, where, why,
                            type_word(k->type));
        }
    }
}

static int block_init(conf_block *b, const lf_conf_key *keys, size_t n)
{
    memset(b, 0, sizeof *b);
    b->keys = keys;
    b->n = n;
    b->v = calloc(n ? n : 1, sizeof *b->v);
    return b->v ? 0 : -1;
}

/* Fill defaults for keys not given, and report missing required ones. */
static void block_finish(conf_block *b, const char *file, int line,
                         const char *where, conf_errors *errs)
{
    for (size_t i = 0; i < b->n; i++) {
        const lf_conf_key *k = &b->keys[i];
        if (b->v[i].present)
            continue;
        if (k->required) {
            conf_errors_add(errs, "%s:%d: %s%s%s: required key is missing",
                            file, line, where, *where ? "." : "", k->name);
            continue;
        }
        if (k->def) {
            const char *why = NULL;
            if (value_from_text(b, k, k->def, &b->v[i], &why))
                conf_errors_add(errs, "internal: default of %s: %s", k->name,
                                why);
        }
    }
}

/* Match every member of group `g` against one or two key tables. Members
 * named in `skip` are left to the caller. */
static void block_read(conf_block *b, conf_block *b2, config_setting_t *g,
                       const char *file, const char *where,
                       const char *const *skip, conf_errors *errs)
{
    int n = g ? config_setting_length(g) : 0;
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        int skipped = 0;
        for (int j = 0; skip && skip[j]; j++)
            if (strcmp(skip[j], name) == 0)
                skipped = 1;
        if (skipped)
            continue;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", where, *where ? "." : "", name);
        int found = 0;
        conf_block *blocks[2] = {b, b2};
        for (int bi = 0; bi < 2 && !found; bi++) {
            conf_block *blk = blocks[bi];
            if (!blk)
                continue;
            for (size_t k = 0; k < blk->n; k++)
                if (strcmp(blk->keys[k].name, name) == 0) {
                    value_from_setting(blk, &blk->keys[k], s, &blk->v[k], file,
                                       path, errs);
                    found = 1;
                    break;
                }
        }
        if (!found)
            conf_errors_add(errs, "%s:%d: %s: unknown key", file,
                            config_setting_source_line(s), path);
    }
}

/* Canonical text of a block's values, for telling on reload whether a
 * sink's configuration changed. */
static void fingerprint_add(char **fp, size_t *len, const conf_block *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const lf_conf_value *v = &b->v[i];
        char buf[128];
        const char *txt = buf;
        switch (b->keys[i].type) {
        case LF_CONF_STRING:
        case LF_CONF_ENUM:
            txt = v->s ? v->s : "";
            break;
        case LF_CONF_STRLIST:
            buf[0] = 0;
            txt = "";
            break;
        default:
            snprintf(buf, sizeof buf, "%lld", (long long)v->i);
        }
        size_t need = strlen(b->keys[i].name) + strlen(txt) + 4;
        for (size_t j = 0; b->keys[i].type == LF_CONF_STRLIST && j < v->n; j++)
            need += strlen(v->list[j]) + 1;
        char *p = realloc(*fp, *len + need + 1);
        if (!p)
            return;
        *fp = p;
        *len += (size_t)sprintf(p + *len, "%s=%s", b->keys[i].name, txt);
        for (size_t j = 0; b->keys[i].type == LF_CONF_STRLIST && j < v->n; j++)
            *len += (size_t)sprintf(p + *len, "%s,", v->list[j]);
        p[(*len)++] = '\n';
        p[*len] = 0;
    }
}

static void sink_conf_clear(sink_conf *s)
{
    redact_rules_free(s->redact);
    conf_block_free(&s->common);
    conf_block_free(&s->module);
    free(s->fingerprint);
    memset(s, 0, sizeof *s);
}

void agent_conf_free(agent_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_sinks; i++)
        sink_conf_clear(&c->sinks[i]);
    free(c->sinks);
    conf_block_free(&c->top);
    conf_block_free(&c->spool);
    conf_block_free(&c->delivery);
    conf_block_free(&c->aws);
    route_table_free(c->routes);
    free(c->path);
    free(c);
}

static void read_sink(agent_conf *c, config_setting_t *g, size_t idx,
                      const char *module_dir, sink_registry *reg,
                      conf_errors *errs)
{
    const char *file = c->path;
    sink_conf *s = &c->sinks[idx];
    s->line = config_setting_source_line(g);
    char where[128];
    snprintf(where, sizeof where, "sinks[%zu]", idx);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        conf_errors_add(errs,
                        "%s:%d: %s: expected a group { name = ...; "
                        "type = ...; }",
                        file, s->line, where);
        return;
    }
    if (block_init(&s->common, conf_sink_common_keys, SK__COUNT))
        return;
    /* name and type first: the module's keys depend on the type. */
    const char *name = NULL, *type = NULL;
    config_setting_lookup_string(g, "name", &name);
    config_setting_lookup_string(g, "type", &type);
    if (name)
        snprintf(where, sizeof where, "sinks[%s]", name);
    const lf_conf_key *mkeys = NULL;
    size_t n_mkeys = 0;
    if (type) {
        char err[1024];
        s->ops = sink_registry_get(reg, module_dir, type, err, sizeof err);
        if (!s->ops) {
            conf_errors_add(errs, "%s:%d: %s.type: %s", file, s->line, where,
                            err);
        } else {
            mkeys = s->ops->config_keys;
            n_mkeys = s->ops->n_config_keys;
        }
    }
    if (block_init(&s->module, mkeys, n_mkeys))
        return;
    static const char *const sink_skip[] = {"redact", NULL};
    char rw[160];
    snprintf(rw, sizeof rw, "%s.redact", where);
    int rfail = 0;
    char *rtext = NULL;
    s->redact = redact_config_load(config_setting_get_member(g, "redact"), file,
                                   rw, errs, &rfail, &rtext);
    if (s->ops) {
        block_read(&s->common, &s->module, g, file, where, sink_skip, errs);
    } else {
        /* Without the module its keys cannot be judged: check only ours. */
        static const char *const none[] = {NULL};
        (void)none;
        int n = config_setting_length(g);
        for (int i = 0; i < n; i++) {
            config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
            if (strcmp(config_setting_name(m), "redact") == 0)
                continue;
            for (size_t k = 0; k < SK__COUNT; k++)
                if (strcmp(conf_sink_common_keys[k].name,
                           config_setting_name(m)) == 0) {
                    char p[256];
                    snprintf(p, sizeof p, "%s.%s", where,
                             config_setting_name(m));
                    value_from_setting(&s->common, &conf_sink_common_keys[k], m,
                                       &s->common.v[k], file, p, errs);
                }
        }
    }
    size_t before = errs->n;
    block_finish(&s->common, file, s->line, where, errs);
    block_finish(&s->module, file, s->line, where, errs);
    /* The module's own checks (template fields, allowed values), without
       creating anything: `logferry check` catches them before a run. */
    if (s->ops && errs->n == before &&
        s->ops->struct_size >=
            offsetof(lf_sink_ops, validate) + sizeof(s->ops->validate) &&
        s->ops->validate) {
        char verr[1024];
        if (s->ops->validate(s->module.v, verr, sizeof verr) != 0)
            conf_errors_add(errs, "%s:%d: %s: %s", file, s->line, where, verr);
    }
    s->name = (char *)s->common.v[SK_NAME].s;
    s->type = (char *)s->common.v[SK_TYPE].s;
    if (s->name) {
        for (const char *p = s->name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
                *p != '.') {
                conf_errors_add(errs,
                                "%s:%d: %s.name: only letters, digits, '-', "
                                "'_' and '.' are allowed (it names files)",
                                file, s->common.v[SK_NAME].line, where);
                break;
            }
    }
    size_t len = 0;
    fingerprint_add(&s->fingerprint, &len, &s->common);
    fingerprint_add(&s->fingerprint, &len, &s->module);
    if (rtext) {
        char *fp = realloc(s->fingerprint, len + strlen(rtext) + 1);
        if (fp) {
            memcpy(fp + len, rtext, strlen(rtext) + 1);
            s->fingerprint = fp;
        }
        free(rtext);
    }
}

agent_conf *agent_conf_load(const char *path, const char *module_dir_override,
                            sink_registry *reg, conf_errors *errs)
{
    size_t errs_before = errs->n;
    config_t cfg;
    config_init(&cfg);
    agent_conf *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        conf_errors_add(errs, "%s: out of memory", path);
        goto fail;
    }
    if (!config_read_file(&cfg, path)) {
        if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
            conf_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        else
            conf_errors_add(errs, "%s:%d: syntax error: %s",
                            config_error_file(&cfg) ? config_error_file(&cfg)
                                                    : path,
                            config_error_line(&cfg), config_error_text(&cfg));
        goto fail;
    }
    config_setting_t *root = config_root_setting(&cfg);
    if (block_init(&c->top, conf_top_keys, TK__COUNT) ||
        block_init(&c->spool, conf_spool_keys, PK__COUNT) ||
        block_init(&c->delivery, conf_delivery_keys, DK__COUNT) ||
        block_init(&c->aws, conf_aws_keys, AK__COUNT))
        goto fail;
    static const char *const groups[] = {"spool",    "delivery", "aws",
                                         "sinks",    "routes",   "route_mode",
                                         "unrouted", "redact",   NULL};
    block_read(&c->top, NULL, root, path, "", groups, errs);
    config_setting_t *g;
    if ((g = config_setting_get_member(root, "spool"))) {
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            conf_errors_add(errs, "%s:%d: spool: expected a group", path,
                            config_setting_source_line(g));
        else
            block_read(&c->spool, NULL, g, path, "spool", NULL, errs);
    }
    if ((g = config_setting_get_member(root, "delivery"))) {
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            conf_errors_add(errs, "%s:%d: delivery: expected a group", path,
                            config_setting_source_line(g));
        else
            block_read(&c->delivery, NULL, g, path, "delivery", NULL, errs);
    }
    if ((g = config_setting_get_member(root, "aws"))) {
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            conf_errors_add(errs, "%s:%d: aws: expected a group", path,
                            config_setting_source_line(g));
        else
            block_read(&c->aws, NULL, g, path, "aws", NULL, errs);
    }
    if (!c->aws.v[AK_ACCESS_KEY_ID].present !=
        !c->aws.v[AK_SECRET_ACCESS_KEY].present)
        conf_errors_add(errs,
                        "%s:%d: aws: access_key_id and secret_access_key go "
                        "together",
                        path,
                        c->aws.v[AK_ACCESS_KEY_ID].line +
                            c->aws.v[AK_SECRET_ACCESS_KEY].line);
    block_finish(&c->top, path, 1, "", errs);
    block_finish(&c->spool, path, 1, "spool", errs);
    block_finish(&c->delivery, path, 1, "delivery", errs);
    block_finish(&c->aws, path, 1, "aws", errs);
    if (c->top.v[TK_LOG_LEVEL].s == NULL)
        c->top.v[TK_LOG_LEVEL].i = LF_LOG_INFO;

    const char *module_dir =
        module_dir_override ? module_dir_override : c->top.v[TK_MODULE_DIR].s;
    if (module_dir_override) {
        c->top.v[TK_MODULE_DIR].s =
            block_own(&c->top, strdup(module_dir_override));
        module_dir = c->top.v[TK_MODULE_DIR].s;
    }
    g = config_setting_get_member(root, "sinks");
    if (!g) {
        conf_errors_add(errs,
                        "%s: sinks: no sink is configured; add "
                        "sinks = ( { name = \"...\"; type = \"file\"; "
                        "... } );",
                        path);
    } else if (config_setting_type(g) != CONFIG_TYPE_LIST &&
               config_setting_type(g) != CONFIG_TYPE_ARRAY) {
        conf_errors_add(errs, "%s:%d: sinks: expected a list ( {...}, {...} )",
                        path, config_setting_source_line(g));
    } else {
        int n = config_setting_length(g);
        c->sinks = calloc(n ? (size_t)n : 1, sizeof *c->sinks);
        if (!c->sinks)
            goto fail;
        c->n_sinks = (size_t)n;
        for (int i = 0; i < n; i++)
            read_sink(c, config_setting_get_elem(g, (unsigned)i), (size_t)i,
                      module_dir, reg, errs);
        for (size_t i = 0; i < c->n_sinks; i++)
            for (size_t j = 0; j < i; j++)
                if (c->sinks[i].name && c->sinks[j].name &&
                    strcmp(c->sinks[i].name, c->sinks[j].name) == 0)
                    conf_errors_add(errs,
                                    "%s:%d: sinks[%s].name: duplicate name "
                                    "(also at line %d)",
                                    path, c->sinks[i].line, c->sinks[i].name,
                                    c->sinks[j].line);
    }
    if (errs->n == errs_before) {
        int rfail;
        c->routes =
            route_table_load(&cfg, path, c->sinks, c->n_sinks, errs, &rfail);
    }
    if (errs->n > errs_before)
        goto fail;
    config_destroy(&cfg);
    return c;
fail:
    config_destroy(&cfg);
    agent_conf_free(c);
    return NULL;
}

void conf_doc_table(FILE *out, const lf_conf_key *keys, size_t n)
{
    fprintf(out, "| key | type | default | range | description |\n");
    fprintf(out, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const lf_conf_key *k = &keys[i];
        char range[256] = "";
        if (k->type == LF_CONF_ENUM) {
            for (int j = 0; k->enum_values[j]; j++) {
                strncat(range, j ? ", " : "", sizeof range - strlen(range) - 1);
                strncat(range, k->enum_values[j],
                        sizeof range - strlen(range) - 1);
            }
        } else if ((k->type == LF_CONF_INT || k->type == LF_CONF_SIZE ||
                    k->type == LF_CONF_DURATION) &&
                   k->min <= k->max) {
            snprintf(range, sizeof range, "%lld … %lld%s", (long long)k->min,
                     (long long)k->max,
                     k->type == LF_CONF_DURATION ? " ms"
                     : k->type == LF_CONF_SIZE   ? " bytes"
                                                 : "");
        }
        fprintf(out, "| `%s` | %s | %s | %s | %s |\n", k->name,
                type_word(k->type),
                k->required ? "**required**"
                : k->def    ? k->def
                            : "(none)",
                range, k->doc ? k->doc : "");
    }
}
