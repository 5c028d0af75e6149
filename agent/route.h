/*
 * route.h - which sinks a record goes to.
 *
 * Routes are read from the `routes` list of the config. Each has a match
 * (record fields such as tenant_id, account_id, model_id, app, status or
 * attributes.KEY, each an exact value or a shell glob; all must match)
 * and the sinks it sends to. `route_mode` is "first" (default: the first
 * route that matches decides) or "all" (fan-out: every matching route
 * adds its sinks). A record no route accepts is dead-lettered (by the
 * first running sink, once) unless `unrouted = "drop"`; it never falls
 * through to some other destination. With no routes configured, every
 * sink receives every record.
 *
 * A route may also set `max_age`, a retention rule for what it routes
 * (route_max_age() below).
 *
 * Each sink's delivery thread evaluates the routes for the records it
 * reads; routes are immutable once loaded and shared by all threads.
 */
#ifndef LOGFERRY_ROUTE_H
#define LOGFERRY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>
#include <logferry/logferry.pb-c.h>

#include "config.h"

typedef struct route_table route_table;

/* Read `routes`, `route_mode`, `unrouted` and the top-level `redact`
 * list from the root of `cfg`
 * (file `path` for messages), checking fields and sink names against
 * `sinks`/`n_sinks`. Returns a table (NULL when no routes are configured
 * and nothing is wrong), or NULL with errors added to errs. */
route_table *route_table_load(const config_t *cfg, const char *path,
                              const sink_conf *sinks, size_t n_sinks,
                              conf_errors *errs, int *failed);
/* Share / release a table (reference counted; free at the last). */
route_table *route_table_ref(route_table *t);
void route_table_free(route_table *t);

/* Canonical text of the routes ("" for NULL), to tell on reload whether
 * they changed. */
const char *route_table_text(const route_table *t);

/* Whether `sink` is the one that dead-letters unrouted records (the first
 * enabled sink of the config), so they are dead-lettered once. */
int route_owns_unrouted(const route_table *t, const char *sink);

typedef enum route_verdict {
    ROUTE_SEND = 0,     /* this sink takes the record */
    ROUTE_SKIP = 1,     /* the record is routed elsewhere */
    ROUTE_UNROUTED = 2, /* no route accepts it */
} route_verdict;

/* Decide for the sink named `sink`. A NULL table sends everything.
 * `scratch` (RJSON_FIELD_SCRATCH bytes) is for rendering number fields.
 * On ROUTE_SEND, *route_idx (if not NULL) is the index of the route that
 * sends it, or -1 when there are no routes. */
route_verdict route_decide(const route_table *t, const char *sink,
                           const Logferry__V1__InvocationRecord *r,
                           char *scratch, int *route_idx);

/* Redaction rules: the top-level `redact` list, and those of route i
 * (NULL: none). */
const struct redact_rules *route_global_redact(const route_table *t);
const struct redact_rules *route_redact(const route_table *t, int i);

/* Whether unrouted records are dropped (else dead-lettered). */
int route_unrouted_drop(const route_table *t);

/* Retention rules per route. A route may carry `max_age`: the records it
 * routes stay on the local disk (spool, dead letters, sink staging) no
 * longer than that, delivered or not (agent/scrub.c enforces it).
 * route_max_age() answers for one record: the max_age of the route that
 * routes it ("first" mode) or the smallest of all matching routes' ("all"
 * mode); 0 when none applies. `scratch` as for route_decide().
 * route_min_max_age() is the smallest max_age of any route (0: none), the
 * bound staged data must obey. Both answer 0 for NULL. */
int64_t route_max_age(const route_table *t,
                      const Logferry__V1__InvocationRecord *r, char *scratch);
int64_t route_min_max_age(const route_table *t);

/* The Markdown reference of routes for `logferry config-doc` (static). */
const char *route_doc(void);

/* Number of routes (0 for NULL). */
size_t route_count(const route_table *t);

#endif
