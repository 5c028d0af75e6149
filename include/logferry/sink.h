/*
 * logferry/sink.h - the contract between the agent and a sink module.
 *
 * A sink module is a shared object the agent loads with dlopen() from its
 * module directory (file name "lf_sink_<type>.so"). It exports exactly one
 * symbol, LF_SINK_ENTRY_SYMBOL, a function returning a pointer to a const
 * lf_sink_ops table. The table starts with {abi_version, struct_size, name}
 * so the agent can refuse a module built against another ABI before it
 * touches anything else; the table only ever grows at the end.
 *
 * Division of work: the core owns policy (batching limits, retries and
 * backoff, cursors, dead letters, retention, redaction, routing); the sink
 * owns its protocol: it formats and sends a batch and says what became of
 * each record. Services the sink needs (logging, counters, the record→JSON
 * encoder, the clock) are lent by the host through lf_host, so a module
 * links against nothing of the agent's.
 *
 * Threading: the agent calls create/deliver/poll/flush/destroy of one
 * instance from one thread at a time, though not always the same thread
 * (with batch_prefetch, deliver() runs on a deliverer thread while another
 * reads the next batch): keep no thread-local state between calls.
 * Different instances may run on different threads concurrently; host
 * services are thread-safe, except settle(), which belongs to the thread
 * running the instance's deliver/poll/flush.
 */
#ifndef LOGFERRY_SINK_H
#define LOGFERRY_SINK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Major version: bumped when an existing member changes meaning or
 * place. Members added at the end of lf_sink_ops or lf_host do not bump
 * it; struct_size tells who has what. */
#define LF_SINK_ABI_VERSION 1u

#define LF_SINK_ENTRY_SYMBOL "logferry_sink_module"

/* ---- configuration ------------------------------------------------- */

/* Each module declares its keys in one table. The agent validates the
 * user's config against it (unknown keys, wrong types and out-of-range
 * values are errors naming file:line), fills in defaults, and documents it
 * in docs/CONFIG.md (`logferry config-doc`). */
typedef enum lf_conf_type {
    LF_CONF_BOOL = 1,
    LF_CONF_INT = 2,      /* 64-bit integer */
    LF_CONF_SIZE = 3,     /* bytes: integer, or string "64K", "10MB", "1G" */
    LF_CONF_DURATION = 4, /* milliseconds: integer, or "500ms", "5s", "2m",
                             "1h", "7d" */
    LF_CONF_STRING = 5,
    LF_CONF_ENUM = 6,    /* string, one of enum_values */
    LF_CONF_STRLIST = 7, /* list or array of strings */
} lf_conf_type;

typedef struct lf_conf_key {
    const char *name;
    lf_conf_type type;
    int required;                   /* no default: must be given */
    const char *def;                /* default, as config text ("64MB", "true");
                                       NULL = absent (string NULL, number 0) */
    int64_t min, max;               /* bounds for INT/SIZE/DURATION (min > max:
                                       unbounded); for STRING the length bounds */
    const char *const *enum_values; /* NULL-terminated, for LF_CONF_ENUM */
    const char *doc;                /* one sentence for the reference */
} lf_conf_key;

/* A value after validation; which member is set follows the key's type. */
typedef struct lf_conf_value {
    int present;             /* given by the user (not the default) */
    int b;                   /* BOOL */
    int64_t i;               /* INT, SIZE (bytes), DURATION (ms), ENUM index */
    const char *s;           /* STRING, ENUM (the name); NULL if absent */
    const char *const *list; /* STRLIST, NULL-terminated */
    size_t n;                /* STRLIST length */
    int line;                /* config line it came from, 0 for a default */
} lf_conf_value;

/* ---- records and batches -------------------------------------------- */

/* Where a record sits in the spool. */
typedef struct lf_position {
    const char *segment; /* segment file name (not a path) */
    uint64_t offset;     /* byte offset of the frame */
} lf_position;

/* One record as the host hands it over. Sinks read its fields through
 * host->field() and render it with host->to_json(); `payload` is the
 * encoded InvocationRecord (after redaction), for sinks that ship the
 * binary form. Everything is borrowed for the duration of deliver(). */
typedef struct lf_record {
    const uint8_t *payload;
    size_t len;
    int64_t event_time_ns;
    lf_position pos;
    const void *internal; /* host's decoded form; opaque to sinks */
} lf_record;

/* What became of one record of a batch, when deliver() answers
 * LF_DELIVER_PARTIAL. Zero (LF_REC_OK) means accepted. */
typedef enum lf_rec_verdict {
    LF_REC_OK = 0,
    LF_REC_RETRY = 1, /* not accepted; send again later */
    LF_REC_FAIL = 2,  /* refused for good; goes to dead letters */
    LF_REC_HOLD = 3,  /* taken, not yet at the destination: see below */
} lf_rec_verdict;

/* Holding records (LF_REC_HOLD, added in ABI 1).
 *
 * A sink that wants larger requests than one batch gives it (many
 * destinations, each with a small share of every batch) may keep records
 * back: it answers LF_REC_HOLD for them, keeps what it needs to send them
 * (outside memory if it cares about its footprint; nothing of it needs to
 * be durable) and later tells the host what became of each one with
 * lf_host.settle. Until then the host neither offers a held record again
 * nor moves its cursor past it, so a crash or a stop while records are
 * held re-delivers them after the restart: at least once, as for any
 * other record, and nothing the sink keeps needs to survive a crash.
 *
 * Only a sink whose table has poll (and a host whose lf_host has settle)
 * may answer LF_REC_HOLD; a host treats HOLD from any other sink as
 * LF_REC_RETRY. The host calls poll() while records are held, so a sink
 * can send what it holds when no new records come; deliver() calls are
 * chances to do so as well. flush() at a stop should send and settle what
 * it can within a bounded time; what stays held is delivered again. */

/* One held record's outcome, for lf_host.settle. */
typedef struct lf_settled {
    lf_position pos;        /* as deliver() saw it (the segment name may be
                               the sink's own copy) */
    const uint8_t *payload; /* its payload as deliver() saw it: kept as the
                               dead letter (FAIL) or offered again (RETRY) */
    size_t len;
    uint8_t verdict; /* LF_REC_OK, LF_REC_RETRY or LF_REC_FAIL */
} lf_settled;

typedef struct lf_batch {
    const lf_record *records;
    size_t count;
    /* Host-owned array of `count` verdicts, zeroed before each call. The
       sink fills it only when it answers LF_DELIVER_PARTIAL. */
    uint8_t *verdict;
    /* Out: a reason for the records marked LF_REC_FAIL (static or valid
       until the next call on this instance), kept with the dead letter. */
    const char *fail_reason;
    /* Out: how long to wait before retrying (e.g. from Retry-After); 0 lets
       the core's backoff decide. */
    uint32_t retry_after_ms;
} lf_batch;

typedef enum lf_deliver_status {
    LF_DELIVER_OK = 0,      /* every record is durable at the destination */
    LF_DELIVER_RETRY = 1,   /* nothing can be counted as delivered; the
                               whole batch will be offered again */
    LF_DELIVER_FAIL = 2,    /* the whole batch is refused for good */
    LF_DELIVER_PARTIAL = 3, /* see batch->verdict, record by record */
} lf_deliver_status;

/* ---- host services ---------------------------------------------------- */

typedef enum lf_log_level {
    LF_LOG_ERROR = 0,
    LF_LOG_WARN = 1,
    LF_LOG_INFO = 2,
    LF_LOG_DEBUG = 3,
} lf_log_level;

typedef struct lf_host lf_host;

/* ---- AWS services (lent to sinks; see lf_host.aws_*) ------------------ */

/* Whose credentials a request is signed with. The host resolves the base
 * credentials through the standard chain (environment, shared files and
 * profiles, web identity, container, IMDSv2, or static keys from the
 * agent's config) and, when role_arn is set, assumes that role with STS.
 * Temporary credentials are cached per (base, role, ExternalId) and shared
 * by every sink instance asking for the same identity. */
typedef struct lf_aws_identity {
    const char *region;       /* required: STS region and default signing
                                 region */
    const char *role_arn;     /* NULL: the base credentials themselves */
    const char *external_id;  /* NULL: none; 2-1224 chars of [\w+=,.@:/-] */
    const char *session_name; /* NULL: "logferry-<hostname>" */
    uint32_t duration_s;      /* 0: 3600; 900..43200 */
    const char *sts_endpoint; /* NULL: the agent's aws.sts_endpoint, else
                                 https://sts.<region>.amazonaws.com */
} lf_aws_identity;

/* Opaque handle to cached credentials; thread-safe. */
typedef struct lf_aws_creds lf_aws_creds;

typedef struct lf_aws_header {
    const char *name;
    const char *value;
} lf_aws_header;

typedef struct lf_aws_request {
    const char *method;           /* "POST", "PUT", ... */
    const char *url;              /* absolute; path and query already
                                     percent-encoded; sent and signed as given */
    const char *service;          /* signing name: "logs", "s3" */
    const char *region;           /* NULL: the identity's region */
    const lf_aws_header *headers; /* besides Host and the signing headers */
    size_t n_headers;
    const void *body;
    size_t body_len;
    int s3;               /* S3 signing rules (no path normalisation,
                             x-amz-content-sha256) */
    int unsigned_payload; /* with s3: UNSIGNED-PAYLOAD */
    uint32_t timeout_ms;  /* 0: the agent's aws.request_timeout */
} lf_aws_request;

/* One classification for every AWS answer. */
typedef enum lf_aws_class {
    LF_AWS_OK = 0,
    LF_AWS_RETRYABLE = 1, /* throttling, 429, 5xx, timeouts, resets */
    LF_AWS_PERMANENT = 2, /* validation, access denied, not found, ... */
    LF_AWS_AUTH = 3,      /* credentials refused even after a refresh */
} lf_aws_class;

typedef struct lf_aws_result {
    lf_aws_class cls;
    long status;      /* HTTP status; 0 if no answer arrived */
    const char *body; /* NUL-terminated; owned by the host */
    size_t body_len;
    char code[128];    /* AWS error code ("ThrottlingException") */
    char message[512]; /* AWS message; never holds a secret */
    char request_id[128];
    uint32_t retry_after_ms;
    void *priv; /* host's; release with aws_result_free */
} lf_aws_result;

struct lf_host {
    uint32_t abi_version;
    uint32_t struct_size;

    /* Log one event, prefixed with the instance ("sink file[local]: ...").
       Never log record content or secrets at INFO or above. */
    void (*log)(const lf_host *h, lf_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* Add to a named counter of this instance (shown by `logferry status`).
       `name` is copied. */
    void (*counter_add)(const lf_host *h, const char *name, uint64_t delta);

    /* Render the record as one JSON object (no newline) into dst, at most
       cap bytes, and return the length it needs. If that is >= cap the
       output is incomplete: grow dst and call again. Field names are the
       schema's; times are RFC 3339 UTC with milliseconds; strings are
       escaped and invalid UTF-8 is replaced with U+FFFD. */
    size_t (*to_json)(const lf_host *h, const lf_record *rec, char *dst,
                      size_t cap);

    /* Text value of a record field by schema name ("tenant_id", "model_id",
       "attributes.KEY", "status", "event_time_ns", ...). Returns the length
       and sets *out to a string valid for the duration of deliver(), or
       returns (size_t)-1 when the field does not exist. Numbers and enums
       are rendered as text. */
    size_t (*field)(const lf_host *h, const lf_record *rec, const char *name,
                    const char **out);

    /* Wall clock and monotonic clock, in nanoseconds. Sinks use these, not
       the system calls, so tests can drive time. */
    int64_t (*now_ns)(const lf_host *h);
    int64_t (*mono_ns)(const lf_host *h);

    /* Owned by the host; do not touch. */
    void *priv;

    /* ---- AWS (added in ABI 1; a sink checks struct_size covers them) ----
     * Credentials and signing are the host's: a sink never sees a secret.
     *
     * aws_creds_acquire: a handle for `id` (borrowed for the call); NULL
     * with a reason in err (no secret in it) if the identity is invalid
     * (bad ARN, ExternalId, session name). Obtaining the credentials
     * themselves happens on first use, so a destination that is down does
     * not fail create(). Release with aws_creds_release (accepts NULL).
     *
     * aws_call: sign `req` with the handle's credentials (refreshed ahead
     * of expiry) and perform it with connection reuse. On an expired or
     * unrecognised token answer the credentials are refreshed and the call
     * made once more. Fills *out (always; free it with aws_result_free)
     * and returns out->cls. Blocking; thread-safe.
     *
     * aws_result_header: copy response header `name` into out (cap bytes);
     * returns its length, or (size_t)-1 if absent. */
    lf_aws_creds *(*aws_creds_acquire)(const lf_host *h,
                                       const lf_aws_identity *id, char *err,
                                       size_t errlen);
    void (*aws_creds_release)(const lf_host *h, lf_aws_creds *c);
    lf_aws_class (*aws_call)(const lf_host *h, lf_aws_creds *c,
                             const lf_aws_request *req, lf_aws_result *out);
    size_t (*aws_result_header)(const lf_host *h, const lf_aws_result *r,
                                const char *name, char *out, size_t cap);
    void (*aws_result_free)(const lf_host *h, lf_aws_result *r);

    /* A directory of this instance's own (<state_dir>/sinks/<name>, mode
     * 0700, created by the host) for data the sink must keep across
     * restarts: staged objects, upload ids. The agent's retention rules
     * (spool.max_age) apply to what a sink stages here. */
    const char *instance_dir;

    /* spool.max_age in milliseconds (0: none). Data a sink stages on disk
     * (under instance_dir) must not stay longer than this either. */
    int64_t max_age_ms;

    /* Settle records this instance answered LF_REC_HOLD in earlier
     * deliver() calls (see "Holding records"). Call it only from inside
     * deliver(), poll() or flush() of the instance, on the thread running
     * them. v[0..n) in any order; `reason` (copied) goes with the FAIL
     * ones, `retry_after_ms` with the RETRY ones (0: the host's backoff).
     * OK and FAIL are always taken. RETRY ones are parked by the host and
     * offered again later, from the payload given, unless the host's retry
     * parking is full: then it takes none of this call's RETRY ones and
     * returns -1, and the sink keeps them and settles them again later.
     * Returns 0 otherwise. A position the host does not hold (settled
     * twice, or its segment removed meanwhile) is ignored. */
    int (*settle)(const lf_host *h, const lf_settled *v, size_t n,
                  const char *reason, uint32_t retry_after_ms);
};

/* Whether host `h` lends member `m` (the table only grows at the end). */
#define LF_HOST_HAS(h, m)                                                      \
    ((h)->struct_size >= offsetof(lf_host, m) + sizeof((h)->m) && (h)->m)

/* ---- the module ------------------------------------------------------- */

typedef struct lf_sink_ops {
    uint32_t abi_version; /* LF_SINK_ABI_VERSION the module was built with */
    uint32_t struct_size; /* sizeof(lf_sink_ops) the module was built with */
    const char *name;     /* the type name, as in `type = "file"` */
    const char *description;

    const lf_conf_key *config_keys; /* table of n_config_keys keys */
    size_t n_config_keys;

    /* Batch limits the core applies before calling deliver(): */
    uint32_t max_batch_records; /* 0: host default */
    uint32_t max_batch_bytes;   /* sum of payload lengths; 0: default */

    /* Create an instance. `values` is parallel to config_keys and, like
       `host`, stays valid until destroy(). On success store the instance in
       *out and return 0; on failure return -1 and write a reason into err
       (errlen bytes, NUL-terminated). */
    int (*create)(const lf_conf_value *values, const lf_host *host, void **out,
                  char *err, size_t errlen);

    /* Deliver a batch (ordered as in the spool). Blocking is allowed; the
       core calls deliver again only after this returns. */
    lf_deliver_status (*deliver)(void *inst, lf_batch *batch);

    /* Make everything delivered so far durable; called before the agent
       stops. Returns 0 or -1. May be NULL. */
    int (*flush)(void *inst);

    /* Free the instance. Accepts NULL. */
    void (*destroy)(void *inst);

    /* ---- added in ABI 1 (the host checks struct_size) ---- */

    /* How long the core lets a batch that is not full wait for more
       records before deliver() (the user's batch_linger overrides). */
    uint32_t batch_linger_ms;

    /* Check the values without creating anything (no file, no network):
       `logferry check` and config loading call it, so a bad setting is an
       error naming the sink before the agent runs. Return 0, or -1 with a
       reason in err. May be NULL. */
    int (*validate)(const lf_conf_value *values, char *err, size_t errlen);

    /* For sinks that hold records (LF_REC_HOLD): called while the
       instance holds any, when the time it asked for has come (and with
       nothing else to do, at least every spool.rescan_interval), never
       during deliver(). Send what is due and settle it. Returns the
       milliseconds after which it wants the next call (0: at once once
       the core has looked at the spool again), or -1 when it holds
       nothing. May be NULL: the sink never holds. */
    int64_t (*poll)(void *inst);
} lf_sink_ops;

typedef const lf_sink_ops *(*lf_sink_entry_fn)(void);

/* Define the entry point: LF_SINK_MODULE(my_ops); */
#define LF_SINK_MODULE(ops)                                                    \
    __attribute__((visibility("default"))) const lf_sink_ops *                 \
    logferry_sink_module(void);                                                \
    const lf_sink_ops *logferry_sink_module(void)                              \
    {                                                                          \
        return &(ops);                                                         \
    }

#ifdef __cplusplus
}
#endif

#endif
