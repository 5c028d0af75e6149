/*
 * tmpl.h - "${name}" templates over record fields, for the sink modules
 * that pick a destination per record (cloudwatch: role, ExternalId, log
 * group and stream; s3: bucket, role, ExternalId, object key).
 *
 * Not a sink module: sinks/shared/ is compiled into the modules that use
 * it (CMakeLists.txt), so each .so stays self-contained.
 *
 * A template decides whose account a record goes to, so expansion is
 * strict: a field that is unknown, empty, or whose value the caller's
 * check refuses leaves the record unroutable (the sink dead-letters it or
 * uses its configured default), never a name that could belong to someone
 * else. Usable names: the text-like fields of the schema (tenant_id,
 * account_id, app, region, model_id, operation, status, session_id,
 * trace_id), attributes.KEY, date (YYYY-MM-DD) and hour (HH) of the event
 * time, plus the caller's constant variables (folded in at parse time)
 * and at most one marker (a name that expands to one reserved byte the
 * caller replaces later, as s3 does for ${first}). Numbers and free text
 * (prompts) make no sense in a destination and are refused at parse time.
 */
#ifndef LOGFERRY_SINK_TMPL_H
#define LOGFERRY_SINK_TMPL_H

#include <stddef.h>

#include <logferry/sink.h>

typedef struct lf_tmpl lf_tmpl;

/* Checks one field's value (n bytes at v, borrowed) for the part it goes
 * into (`cs`, the caller's own code). Returns NULL if allowed, else a
 * static phrase that follows the field name in the reason, such as "holds
 * characters not allowed in a log group name". Never quotes the value. */
typedef const char *(*lf_tmpl_check)(int cs, const char *v, size_t n);

/* A constant: ${name} is replaced by value when the template is parsed. */
typedef struct lf_tmpl_var {
    const char *name;
    const char *value;
} lf_tmpl_var;

typedef struct lf_tmpl_spec {
    int cs;                  /* passed to check */
    lf_tmpl_check check;     /* required */
    const lf_tmpl_var *vars; /* constants, ending with {NULL, NULL}; or NULL */
    const char *mark_name;   /* allowed marker name, or NULL */
    char mark;               /* the byte it expands to */
} lf_tmpl_spec;

/* Parse `text` (copied). Returns the template, to free with
 * lf_tmpl_free(), or NULL with a reason in err (errlen bytes), naming the
 * usable names when one is unknown. */
lf_tmpl *lf_tmpl_parse(const char *text, const lf_tmpl_spec *spec, char *err,
                       size_t errlen);
void lf_tmpl_free(lf_tmpl *t);

/* The text as configured (owned by t). */
const char *lf_tmpl_text(const lf_tmpl *t);
/* Whether no record field is used (constants and the marker are not). */
int lf_tmpl_is_static(const lf_tmpl *t);
/* Whether the marker appears. */
int lf_tmpl_has_mark(const lf_tmpl *t);

/* Expand for `rec` into out (cap bytes, NUL-terminated). Returns the
 * length, or -1 when the record cannot fill it: a field unknown to the
 * host, empty, refused by the check, or a result longer than cap - 1;
 * `why` (whylen bytes) then names the field and the problem, never its
 * value. date and hour are asked of the host once per UTC hour of event
 * time and kept in t, so one template is used by one thread at a time. */
long lf_tmpl_expand(lf_tmpl *t, const lf_host *h, const lf_record *rec,
                    char *out, size_t cap, char *why, size_t whylen);

#endif
