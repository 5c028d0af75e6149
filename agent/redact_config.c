/*
 * redact_config.c - libconfig list -> compiled redaction rules. See
 * redact_config.h.
 */
#include "redact_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULE_MAX_LIST 64

static void text_add(char **text, const char *fmt, const char *a, const char *b)
{
    size_t old = *text ? strlen(*text) : 0;
    size_t add = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *n = realloc(*text, old + add);
    if (!n)
        return;
    snprintf(n + old, add, fmt, a, b);
    *text = n;
}

/* Read a list of strings into out (at most RULE_MAX_LIST). Returns the
 * count, or -1 if `s` is not a list of strings. */
static int read_strings(config_setting_t *s, const char **out)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return t == CONFIG_TYPE_STRING
                   ? (out[0] = config_setting_get_string(s), 1)
                   : -1;
    int n = config_setting_length(s);
    if (n > RULE_MAX_LIST)
        return -1;
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return -1;
        out[i] = config_setting_get_string(e);
    }
    return n;
}

redact_rules *redact_config_load(config_setting_t *list, const char *path,
                                 const char *where, conf_errors *errs,
                                 int *failed, char **text)
{
    if (!list)
        return NULL;
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        conf_errors_add(errs, "%s:%d: %s: expected a list ( { ... }, ... )",
                        path, config_setting_source_line(list), where);
        *failed = 1;
        return NULL;
    }
    int n = config_setting_length(list);
    if (n == 0)
        return NULL;
    redact_rule_spec *specs = calloc((size_t)n, sizeof *specs);
    /* Per rule: fields, patterns, and the "file:line" string. */
    const char *(*fields)[RULE_MAX_LIST] = calloc((size_t)n, sizeof *fields);
    const char *(*pats)[RULE_MAX_LIST] = calloc((size_t)n, sizeof *pats);
    char(*locs)[512] = calloc((size_t)n, sizeof *locs);
    redact_rules *rules = NULL;
    int bad = 0;
    if (!specs || !fields || !pats || !locs) {
        conf_errors_add(errs, "%s: out of memory", path);
        bad = 1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        int line = config_setting_source_line(g);
        snprintf(locs[i], sizeof locs[i], "%s:%d: %s[%d]", path, line, where,
                 i);
        redact_rule_spec *sp = &specs[i];
        sp->where = locs[i];
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            conf_errors_add(errs,
                            "%s: expected a group { fields = [...]; "
                            "action = \"...\"; }",
                            locs[i]);
            bad = 1;
            continue;
        }
        for (int k = 0; k < config_setting_length(g); k++) {
            config_setting_t *m = config_setting_get_elem(g, (unsigned)k);
            const char *key = config_setting_name(m);
            int ml = config_setting_source_line(m);
            const char *sv = config_setting_type(m) == CONFIG_TYPE_STRING
                                 ? config_setting_get_string(m)
                                 : NULL;
            if (!strcmp(key, "name") && sv) {
                sp->name = sv;
            } else if (!strcmp(key, "fields")) {
                int c = read_strings(m, fields[i]);
                if (c <= 0) {
                    conf_errors_add(errs,
                                    "%s:%d: %s[%d].fields: expected a "
                                    "list of field names",
                                    path, ml, where, i);
                    bad = 1;
                } else {
                    sp->fields = fields[i];
                    sp->n_fields = (size_t)c;
                }
            } else if (!strcmp(key, "patterns")) {
                int c = read_strings(m, pats[i]);
                if (c < 0) {
                    conf_errors_add(errs,
                                    "%s:%d: %s[%d].patterns: expected a "
                                    "list of regular expressions",
                                    path, ml, where, i);
                    bad = 1;
                } else {
                    sp->patterns = pats[i];
                    sp->n_patterns = (size_t)c;
                }
            } else if (!strcmp(key, "detect")) {
                const char *names[RULE_MAX_LIST];
                int c = read_strings(m, names);
                for (int j = 0; j < c; j++)
                    if (redact_detector_parse(names[j], &sp->detect) != 0) {
                        conf_errors_add(errs,
                                        "%s:%d: %s[%d].detect: unknown "
                                        "detector '%s'",
                                        path, ml, where, i, names[j]);
                        bad = 1;
                    }
                if (c < 0) {
                    conf_errors_add(errs,
                                    "%s:%d: %s[%d].detect: expected a "
                                    "list of detector names",
                                    path, ml, where, i);
                    bad = 1;
                }
            } else if (!strcmp(key, "action") && sv) {
                if (redact_action_parse(sv, &sp->action) != 0) {
                    conf_errors_add(errs,
                                    "%s:%d: %s[%d].action: expected drop, "
                                    "mask, hash or truncate",
                                    path, ml, where, i);
                    bad = 1;
                }
            } else if (!strcmp(key, "mask") && sv) {
                sp->mask_token = sv;
            } else if (!strcmp(key, "mask_fill") && sv && strlen(sv) == 1) {
                sp->mask_fill = sv[0];
            } else if (!strcmp(key, "key_file") && sv) {
                sp->key_file = sv;
            } else if (!strcmp(key, "bytes") &&
                       config_setting_type(m) == CONFIG_TYPE_INT &&
                       config_setting_get_int(m) > 0) {
                sp->truncate_bytes = (size_t)config_setting_get_int(m);
            } else {
                conf_errors_add(errs,
                                "%s:%d: %s[%d].%s: unknown key or wrong "
                                "type",
                                path, ml, where, i, key);
                bad = 1;
            }
        }
        /* Canonical text for reloads (the key file by path: a changed key
           needs a restart or a new path). */
        text_add(text, "%s%s{", where, sp->name ? sp->name : "");
        for (size_t k = 0; k < sp->n_fields; k++)
            text_add(text, "f=%s%s;", sp->fields[k], "");
        for (size_t k = 0; k < sp->n_patterns; k++)
            text_add(text, "p=%s%s;", sp->patterns[k], "");
        char num[64];
        snprintf(num, sizeof num, "a=%d,d=%u,b=%zu,f=%d,", (int)sp->action,
                 (unsigned)sp->detect, sp->truncate_bytes, sp->mask_fill);
        text_add(text, "%s%s", num, "");
        text_add(text, "m=%s,k=%s}", sp->mask_token ? sp->mask_token : "",
                 sp->key_file ? sp->key_file : "");
    }
    if (!bad) {
        char err[1024];
        rules = redact_compile(specs, (size_t)n, err, sizeof err);
        if (!rules) {
            conf_errors_add(errs, "%s", err);
            bad = 1;
        }
    }
out:
    if (bad)
        *failed = 1;
    free(specs);
    free(fields);
    free(pats);
    free(locs);
    return rules;
}
