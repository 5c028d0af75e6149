/*
 * route.c - routes: match records to sinks. See route.h.
 */
#include "route.h"

#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_json.h"
#include "redact_config.h"

typedef struct route_cond {
    char *field;
    char *pattern;
    int glob; /* pattern holds * ? [ */
} route_cond;

typedef struct route {
    char *name;
    route_cond *conds;
    size_t n_conds;
    char **sinks;
    size_t n_sinks;
    redact_rules *redact;
    int64_t max_age_ms; /* retention of the records it routes (0: none) */
} route;

struct route_table {
    route *routes;
    size_t n;
    int fan_out;
    int drop_unrouted;
    char *owner;          /* the sink that dead-letters unrouted records */
    char *text;           /* canonical form, for reload comparisons */
    redact_rules *redact; /* top-level rules, for every record */
    int64_t min_max_age;  /* smallest route max_age (0: no route has one) */
    _Atomic int refs;
};

static void route_clear(route *r)
{
    redact_rules_free(r->redact);
    free(r->name);
    for (size_t i = 0; i < r->n_conds; i++) {
        free(r->conds[i].field);
        free(r->conds[i].pattern);
    }
    free(r->conds);
    for (size_t i = 0; i < r->n_sinks; i++)
        free(r->sinks[i]);
    free(r->sinks);
}

route_table *route_table_ref(route_table *t)
{
    if (t)
        atomic_fetch_add(&t->refs, 1);
    return t;
}

void route_table_free(route_table *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) > 1)
        return;
    free(t->owner);
    free(t->text);
    redact_rules_free(t->redact);
    for (size_t i = 0; i < t->n; i++)
        route_clear(&t->routes[i]);
    free(t->routes);
    free(t);
}

size_t route_count(const route_table *t)
{
    return t ? t->n : 0;
}

int route_unrouted_drop(const route_table *t)
{
    return t && t->drop_unrouted;
}

static int read_route(route *r, config_setting_t *g, size_t idx,
                      const char *path, const sink_conf *sinks, size_t n_sinks,
                      conf_errors *errs, char **rtext)
{
    int line = config_setting_source_line(g);
    int bad = 0;
    const char *name = NULL;
    char where[96];
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        conf_errors_add(errs, "%s:%d: routes[%zu]: expected a group", path,
                        line, idx);
        return -1;
    }
    config_setting_lookup_string(g, "name", &name);
    snprintf(where, sizeof where, "routes[%s]", name ? name : "");
    if (!name)
        snprintf(where, sizeof where, "routes[%zu]", idx);
    r->name = strdup(name ? name : where);
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *k = config_setting_name(m);
        if (strcmp(k, "name") && strcmp(k, "match") && strcmp(k, "sinks") &&
            strcmp(k, "redact") && strcmp(k, "max_age")) {
            conf_errors_add(errs, "%s:%d: %s.%s: unknown key", path,
                            config_setting_source_line(m), where, k);
            bad = 1;
        }
    }
    config_setting_t *match = config_setting_get_member(g, "match");
    if (match && config_setting_type(match) != CONFIG_TYPE_GROUP) {
        conf_errors_add(errs,
                        "%s:%d: %s.match: expected a group "
                        "{ field = \"value or glob\"; ... }",
                        path, config_setting_source_line(match), where);
        bad = 1;
    } else if (match) {
        int n = config_setting_length(match);
        r->conds = calloc(n ? (size_t)n : 1, sizeof *r->conds);
        for (int i = 0; r->conds && i < n; i++) {
            config_setting_t *c = config_setting_get_elem(match, (unsigned)i);
            /* libconfig names cannot hold '.', so attributes.KEY is
               written attributes_KEY or as a quoted "attributes.KEY"
               string key is not possible: accept attr_KEY. */
            const char *f = config_setting_name(c);
            char field[256];
            if (strncmp(f, "attr_", 5) == 0)
                snprintf(field, sizeof field, "attributes.%s", f + 5);
            else
                snprintf(field, sizeof field, "%s", f);
            int cl = config_setting_source_line(c);
            if (!rjson_field_known(field)) {
                conf_errors_add(errs, "%s:%d: %s.match.%s: not a record field",
                                path, cl, where, f);
                bad = 1;
                continue;
            }
            if (config_setting_type(c) != CONFIG_TYPE_STRING) {
                conf_errors_add(errs,
                                "%s:%d: %s.match.%s: expected a string "
                                "(exact value or glob)",
                                path, cl, where, f);
                bad = 1;
                continue;
            }
            const char *pat = config_setting_get_string(c);
            route_cond *rc = &r->conds[r->n_conds++];
            rc->field = strdup(field);
            rc->pattern = strdup(pat);
            rc->glob = strpbrk(pat, "*?[") != NULL;
        }
    }
    config_setting_t *ma = config_setting_get_member(g, "max_age");
    if (ma) {
        const char *v = config_setting_type(ma) == CONFIG_TYPE_STRING
                            ? config_setting_get_string(ma)
                            : NULL;
        if (!v || conf_parse_duration(v, &r->max_age_ms) != 0 ||
            r->max_age_ms <= 0) {
            conf_errors_add(errs,
                            "%s:%d: %s.max_age: expected a duration above 0 "
                            "such as \"1h\" or \"7d\"",
                            path, config_setting_source_line(ma), where);
            bad = 1;
        }
    }
    char rw[160];
    snprintf(rw, sizeof rw, "%s.redact", where);
    int rfail = 0;
    r->redact = redact_config_load(config_setting_get_member(g, "redact"), path,
                                   rw, errs, &rfail, rtext);
    if (rfail)
        bad = 1;
    config_setting_t *ss = config_setting_get_member(g, "sinks");
    if (!ss ||
        (config_setting_type(ss) != CONFIG_TYPE_ARRAY &&
         config_setting_type(ss) != CONFIG_TYPE_LIST) ||
        config_setting_length(ss) == 0) {
        conf_errors_add(errs,
                        "%s:%d: %s.sinks: required, a list of sink names "
                        "such as [\"local\"]",
                        path, ss ? (int)config_setting_source_line(ss) : line,
                        where);
        return -1;
    }
    int n = config_setting_length(ss);
    r->sinks = calloc((size_t)n, sizeof *r->sinks);
    for (int i = 0; r->sinks && i < n; i++) {
        config_setting_t *e = config_setting_get_elem(ss, (unsigned)i);
        const char *s = config_setting_get_string(e);
        int known = 0;
        for (size_t k = 0; s && k < n_sinks; k++)
            known |= sinks[k].name && strcmp(sinks[k].name, s) == 0;
        if (!known) {
            conf_errors_add(errs, "%s:%d: %s.sinks: no sink named '%s'", path,
                            config_setting_source_line(ss), where,
                            s ? s : "(not a string)");
            bad = 1;
            continue;
        }
        r->sinks[r->n_sinks++] = strdup(s);
    }
    return bad ? -1 : 0;
}

route_table *route_table_load(const config_t *cfg, const char *path,
                              const sink_conf *sinks, size_t n_sinks,
                              conf_errors *errs, int *failed)
{
    *failed = 0;
    config_setting_t *root = config_root_setting(cfg);
    config_setting_t *g = config_setting_get_member(root, "routes");
    const char *mode = NULL, *unrouted = NULL;
    config_lookup_string(cfg, "route_mode", &mode);
    config_lookup_string(cfg, "unrouted", &unrouted);
    if (mode && strcmp(mode, "first") && strcmp(mode, "all")) {
        conf_errors_add(
            errs, "%s:%d: route_mode: expected \"first\" or \"all\"", path,
            config_setting_source_line(
                config_setting_get_member(root, "route_mode")));
        *failed = 1;
    }
    if (unrouted && strcmp(unrouted, "dead_letter") &&
        strcmp(unrouted, "drop")) {
        conf_errors_add(
            errs, "%s:%d: unrouted: expected \"dead_letter\" or \"drop\"", path,
            config_setting_source_line(
                config_setting_get_member(root, "unrouted")));
        *failed = 1;
    }
    char *rtext = NULL;
    int rfail = 0;
    redact_rules *global =
        redact_config_load(config_setting_get_member(root, "redact"), path,
                           "redact", errs, &rfail, &rtext);
    if (rfail)
        *failed = 1;
    if (!g && !global) {
        free(rtext);
        return NULL;
    }
    if (g && config_setting_type(g) != CONFIG_TYPE_LIST) {
        conf_errors_add(errs, "%s:%d: routes: expected a list ( {...}, ... )",
                        path, config_setting_source_line(g));
        *failed = 1;
        redact_rules_free(global);
        free(rtext);
        return NULL;
    }
    route_table *t = calloc(1, sizeof *t);
    int n = g ? config_setting_length(g) : 0;
    if (!t || !(t->routes = calloc(n ? (size_t)n : 1, sizeof *t->routes))) {
        free(t);
        redact_rules_free(global);
        free(rtext);
        *failed = 1;
        return NULL;
    }
    t->redact = global;
    t->fan_out = mode && strcmp(mode, "all") == 0;
    t->drop_unrouted = unrouted && strcmp(unrouted, "drop") == 0;
    for (int i = 0; i < n; i++) {
        if (read_route(&t->routes[t->n++],
                       config_setting_get_elem(g, (unsigned)i), (size_t)i, path,
                       sinks, n_sinks, errs, &rtext) != 0)
            *failed = 1;
    }
    if (*failed) {
        route_table_free(t);
        free(rtext);
        return NULL;
    }
    for (size_t k = 0; k < n_sinks && !t->owner; k++)
        if (sinks[k].name && conf_int(&sinks[k].common, SK_ENABLED))
            t->owner = strdup(sinks[k].name);
    for (size_t i = 0; i < t->n; i++)
        if (t->routes[i].max_age_ms > 0 &&
            (!t->min_max_age || t->routes[i].max_age_ms < t->min_max_age))
            t->min_max_age = t->routes[i].max_age_ms;
    /* Canonical text: mode, then each route's conditions and sinks. */
    size_t cap = 64 + (rtext ? strlen(rtext) : 0), len = 0;
    for (size_t i = 0; i < t->n; i++) {
        cap += strlen(t->routes[i].name) + 32;
        for (size_t k = 0; k < t->routes[i].n_conds; k++)
            cap += strlen(t->routes[i].conds[k].field) +
                   strlen(t->routes[i].conds[k].pattern) + 4;
        for (size_t k = 0; k < t->routes[i].n_sinks; k++)
            cap += strlen(t->routes[i].sinks[k]) + 2;
    }
    t->text = malloc(cap);
    if (t->text) {
        len += (size_t)snprintf(t->text, cap, "%d%d;%s;", t->fan_out,
                                t->drop_unrouted, rtext ? rtext : "");
        for (size_t i = 0; i < t->n; i++) {
            const route *ro = &t->routes[i];
            len += (size_t)snprintf(t->text + len, cap - len, "%s@%lld{",
                                    ro->name, (long long)ro->max_age_ms);
            for (size_t k = 0; k < ro->n_conds; k++)
                len +=
                    (size_t)snprintf(t->text + len, cap - len, "%s=%s;",
                                     ro->conds[k].field, ro->conds[k].pattern);
            for (size_t k = 0; k < ro->n_sinks; k++)
                len += (size_t)snprintf(t->text + len, cap - len, "%s,",
                                        ro->sinks[k]);
            len += (size_t)snprintf(t->text + len, cap - len, "}");
        }
    }
    free(rtext);
    atomic_store(&t->refs, 1);
    return t;
}

static int route_matches(const route *ro,
                         const Logferry__V1__InvocationRecord *r, char *scratch)
{
    for (size_t i = 0; i < ro->n_conds; i++) {
        const route_cond *c = &ro->conds[i];
        const char *v = NULL;
        if (rjson_field(r, c->field, scratch, RJSON_FIELD_SCRATCH, &v) ==
            (size_t)-1)
            return 0;
        if (c->glob ? fnmatch(c->pattern, v, 0) != 0
                    : strcmp(c->pattern, v) != 0)
            return 0;
    }
    return 1;
}

const char *route_table_text(const route_table *t)
{
    return t && t->text ? t->text : "";
}

int route_owns_unrouted(const route_table *t, const char *sink)
{
    return t && t->owner && strcmp(t->owner, sink) == 0;
}

const redact_rules *route_global_redact(const route_table *t)
{
    return t ? t->redact : NULL;
}

const redact_rules *route_redact(const route_table *t, int i)
{
    return t && i >= 0 && (size_t)i < t->n ? t->routes[i].redact : NULL;
}

route_verdict route_decide(const route_table *t, const char *sink,
                           const Logferry__V1__InvocationRecord *r,
                           char *scratch, int *route_idx)
{
    if (route_idx)
        *route_idx = -1;
    if (!t || t->n == 0)
        return ROUTE_SEND;
    int matched = 0;
    for (size_t i = 0; i < t->n; i++) {
        const route *ro = &t->routes[i];
        if (!route_matches(ro, r, scratch))
            continue;
        matched = 1;
        for (size_t k = 0; k < ro->n_sinks; k++)
            if (strcmp(ro->sinks[k], sink) == 0) {
                if (route_idx)
                    *route_idx = (int)i;
                return ROUTE_SEND;
            }
        if (!t->fan_out)
            return ROUTE_SKIP;
    }
    return matched ? ROUTE_SKIP : ROUTE_UNROUTED;
}

int64_t route_min_max_age(const route_table *t)
{
    return t ? t->min_max_age : 0;
}

int64_t route_max_age(const route_table *t,
                      const Logferry__V1__InvocationRecord *r, char *scratch)
{
    if (!t || !t->min_max_age)
        return 0;
    int64_t best = 0;
    for (size_t i = 0; i < t->n; i++) {
        const route *ro = &t->routes[i];
        if (!route_matches(ro, r, scratch))
            continue;
        if (ro->max_age_ms > 0 && (!best || ro->max_age_ms < best))
            best = ro->max_age_ms;
        /* As for delivery: in "first" mode the first match decides. */
        if (!t->fan_out)
            break;
    }
    return best;
}

const char *route_doc(void)
{
    return "## Routes, retention rules per route, redaction\n\n"
           "Top level: `routes = ( {...}, ... )`, `route_mode` (\"first\", "
           "the default: the first matching route decides; \"all\": every "
           "matching route adds its sinks), `unrouted` (\"dead_letter\", the "
           "default, or \"drop\": what happens to a record no route "
           "accepts; it never goes to another destination) and `redact` "
           "(rules for every record, docs/REDACTION.md). With no routes, "
           "every sink receives every record.\n\n"
           "| key of a route | type | description |\n"
           "|---|---|---|\n"
           "| `name` | string | Names the route in errors and logs (default "
           "its position). |\n"
           "| `match` | group | Conditions that must all hold: record field = "
           "exact value or shell glob, e.g. `{ tenant_id = \"acme-*\"; "
           "prompt_text = \"?*\"; }` (`?*`: not empty); `attr_KEY` for "
           "attributes.KEY. No match: every record. |\n"
           "| `sinks` | list of strings, required | Sink instances that "
           "receive the records. |\n"
           "| `max_age` | duration | Retention rule: the records this route "
           "routes stay on the local disk (spool, dead letters, sink "
           "staging) no longer than this, delivered or not; removed in place "
           "within one spool rescan of it (docs/ARCHITECTURE.md). In \"all\" "
           "mode the smallest of the matching routes applies. Unset: only "
           "spool.max_age. |\n"
           "| `redact` | list | Redaction rules for the records of this "
           "route, after the top-level ones (docs/REDACTION.md). |\n";
}
