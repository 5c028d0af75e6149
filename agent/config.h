/*
 * config.h - the agent's configuration, read with libconfig.
 *
 * Every key, the agent's own and each sink module's, is declared in one
 * lf_conf_key table (name, type, default, bounds, required, doc). The
 * loader checks the file against the tables: an unknown key, a wrong type
 * or an out-of-range value is an error naming file:line and the key, and
 * `logferry check` reports every error, not just the first. The same
 * tables print docs/CONFIG.md (`logferry config-doc`).
 */
#ifndef LOGFERRY_CONFIG_H
#define LOGFERRY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "logferry/sink.h"
#include "sink_loader.h"

/* A list of error messages ("file:line: ..."), owned. */
typedef struct conf_errors {
    char **msg;
    size_t n, cap;
} conf_errors;

void conf_errors_add(conf_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conf_errors_free(conf_errors *e);

/* Values of one block of keys, parallel to `keys`. Strings are copies
 * owned by the block. */
typedef struct conf_block {
    const lf_conf_key *keys;
    size_t n;
    lf_conf_value *v;
    char **owned; /* strings and lists to free */
    size_t n_owned, cap_owned;
} conf_block;

void conf_block_free(conf_block *b);

/* Common keys every sink block accepts, besides the module's own. */
enum {
    SK_NAME,
    SK_TYPE,
    SK_ENABLED,
    SK_BATCH_RECORDS,
    SK_BATCH_BYTES,
    SK_BATCH_LINGER,
    SK_BACKOFF_BASE,
    SK_BACKOFF_CAP,
    SK_CURSOR_COMMIT,
    SK_MAX_RETRY,
    SK_BATCH_PREFETCH,
    SK__COUNT
};

/* Values of batch_prefetch, in the order of its enum_values. */
enum { SK_PREFETCH_AUTO, SK_PREFETCH_ON, SK_PREFETCH_OFF };

typedef struct sink_conf {
    char *name;
    char *type;
    int line;
    conf_block common; /* SK_* */
    conf_block module; /* the module's config_keys */
    const lf_sink_ops *ops;
    char *fingerprint;           /* canonical text of both blocks, for reload */
    struct redact_rules *redact; /* the sink's own `redact` list; owned */
} sink_conf;

/* Keys of the top level and of the "spool" and "delivery" groups. */
enum { TK_LOG_LEVEL, TK_STATE_DIR, TK_MODULE_DIR, TK__COUNT };
enum {
    PK_DIR,
    PK_MAX_BYTES,
    PK_RESCAN,
    PK_MAX_AGE,
    PK_KEEP_DELIVERED,
    PK__COUNT
};
enum { DK_SHUTDOWN_DEADLINE, DK__COUNT };
enum {
    AK_REGION,
    AK_PROFILE,
    AK_ACCESS_KEY_ID,
    AK_SECRET_ACCESS_KEY,
    AK_SESSION_TOKEN,
    AK_STS_ENDPOINT,
    AK_IMDS_ENDPOINT,
    AK_CONTAINER_ENDPOINT,
    AK_CA_FILE,
    AK_CA_PATH,
    AK_INSECURE_TLS,
    AK_CONNECT_TIMEOUT,
    AK_REQUEST_TIMEOUT,
    AK_MAX_RESPONSE,
    AK__COUNT
};

typedef struct agent_conf {
    char *path;
    conf_block top;      /* TK_* */
    conf_block spool;    /* PK_* */
    conf_block delivery; /* DK_* */
    conf_block aws;      /* AK_* */
    sink_conf *sinks;
    size_t n_sinks;
    struct route_table *routes; /* NULL: every sink gets every record */
} agent_conf;

/* Read and validate `path`. Sink modules named by `type` are loaded
 * through `reg` (from the module_dir of the file, or `module_dir_override`
 * when not NULL) to validate their keys. Returns a config the caller frees
 * with agent_conf_free(), or NULL with every problem in `errs`. */
agent_conf *agent_conf_load(const char *path, const char *module_dir_override,
                            sink_registry *reg, conf_errors *errs);
void agent_conf_free(agent_conf *c);

/* Accessors for the common values. */
static inline const char *conf_str(const conf_block *b, int k)
{
    return b->v[k].s;
}
static inline int64_t conf_int(const conf_block *b, int k)
{
    return b->v[k].i;
}

/* Parse "64MB", "10K", "123" into bytes; "5s", "250ms", "2h", "7d" into
 * milliseconds. Return 0, or -1 if the text is not valid. */
int conf_parse_size(const char *s, int64_t *out);
int conf_parse_duration(const char *s, int64_t *out);

/* The agent's own key tables, for config-doc. */
extern const lf_conf_key conf_top_keys[TK__COUNT];
extern const lf_conf_key conf_spool_keys[PK__COUNT];
extern const lf_conf_key conf_delivery_keys[DK__COUNT];
extern const lf_conf_key conf_aws_keys[AK__COUNT];
extern const lf_conf_key conf_sink_common_keys[SK__COUNT];

/* Write the Markdown reference for a key table to `out`. */
void conf_doc_table(FILE *out, const lf_conf_key *keys, size_t n);

#endif
