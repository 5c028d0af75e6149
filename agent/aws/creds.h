/*
 * creds.h - AWS credentials: the standard providers, STS AssumeRole with
 * ExternalId on top of any of them, and one shared, thread-safe cache.
 *
 * Place in the pipeline: a sink that writes into a customer's account
 * asks the host for credentials for (base provider, role ARN,
 * ExternalId); every sink using the same triple shares one cache entry,
 * so STS sees one AssumeRole per refresh, not one per sink.
 *
 * Providers, in the standard chain order (creds_chain_provider):
 *   1. environment   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *                    AWS_SESSION_TOKEN
 *   2. shared files  AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
 *                    AWS_CONFIG_FILE (~/.aws/config, "[profile x]"),
 *                    AWS_PROFILE; a profile's role_arn + source_profile /
 *                    credential_source + external_id + role_session_name +
 *                    duration_seconds is a chained AssumeRole
 *   3. web identity  AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *                    [+ AWS_ROLE_SESSION_NAME] -> AssumeRoleWithWebIdentity
 *   4. container     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (against
 *                    169.254.170.2) or _FULL_URI, with
 *                    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN
 *   5. IMDSv2        token PUT, then the role's credentials;
 *                    AWS_EC2_METADATA_DISABLED, and the endpoint from the
 *                    config, else AWS_EC2_METADATA_SERVICE_ENDPOINT
 * The environment is read through creds_ctx.env: production passes the
 * process environment (creds_env_process()), tests a table. Those
 * variables are the product's documented behaviour, not test hooks.
 *
 * Secrets: no log line or error message of this module holds a secret
 * key, a session token or an ExternalId; access key ids appear only as
 * creds_redact_key_id() shows them.
 */
#ifndef LOGFERRY_AWS_CREDS_H
#define LOGFERRY_AWS_CREDS_H

#include <stddef.h>
#include <stdint.h>

#include "aws/awshttp.h"

#define CREDS_MAX_FIELD 8192 /* cap on a key, secret or session token */

/* ---- values ---------------------------------------------------------------
 */

/* One set of credentials. Strings are owned (malloc); release with
 * creds_value_free(), which also wipes them. */
typedef struct creds_value {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL for long-term keys */
    int64_t expiration;  /* Unix seconds; 0 = does not expire */
} creds_value;

void creds_value_free(creds_value *v); /* accepts NULL */

/* Deep copy; dst is overwritten (not freed first). Returns 0 or -ENOMEM. */
int creds_value_copy(creds_value *dst, const creds_value *src);

/* The view sigv4 and awshttp take; borrows from v. */
sigv4_creds creds_value_sigv4(const creds_value *v);

/* ---- redaction ---------------------------------------------------------- */

/* "AKIAIOSFODNN7EXAMPLE" -> "AKIA...LE" (first 4, last 2); shorter than 8
 * characters -> "[redacted]". Writes at most cap bytes; returns out. */
char *creds_redact_key_id(const char *akid, char *out, size_t cap);

/* A secret, session token or ExternalId -> "[redacted, N chars]" (length
 * only: an ExternalId can be guessable, so not even a hash). NULL ->
 * "[none]". Returns out. */
char *creds_redact_secret(const char *s, char *out, size_t cap);

/* ---- context: everything injected ---------------------------------------- */

typedef const char *(*creds_getenv_fn)(void *ud, const char *name);

typedef struct creds_env {
    creds_getenv_fn get;
    void *ud;
} creds_env;

/* The process environment (getenv). Static; never freed. */
const creds_env *creds_env_process(void);

/* Borrowed by every provider and cache made with it: must outlive them. */
typedef struct creds_ctx {
    const creds_env *env;     /* NULL: creds_env_process() */
    awshttp_client *http;     /* required for STS, IMDS, container */
    int64_t (*now)(void *ud); /* wall clock, Unix seconds; NULL: time() */
    void *clock_ud;
    uint64_t (*rand)(void *ud); /* jitter; NULL: a process-wide PRNG */
    void *rand_ud;
    awshttp_log_fn log; /* NULL: the agent log, prefix "aws creds" */
    void *log_ud;
    /* STS region; NULL: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1 */
    const char *region;
    const char *sts_endpoint;       /* override, e.g. http://127.0.0.1:5000 */
    const char *imds_endpoint;      /* config override of the IMDS URL */
    const char *container_endpoint; /* override of http://169.254.170.2 */
    const char *hostname; /* for the default session name; NULL: system */
    /* HOME for ~/.aws; NULL: $HOME from env */
    const char *home;
} creds_ctx;

/* ---- providers ---------------------------------------------------------- */

/* fetch() results besides 0: */
#define CREDS_NOT_FOUND 1 /* this provider is not configured here */
#define CREDS_ERROR (-1)  /* configured but failed: see err */

typedef struct creds_provider creds_provider;
struct creds_provider {
    const char *kind; /* "env", "static", "profile", "web-identity",
                         "container", "imds", "assume-role", "chain" */
    /* Stable identity for the cache key: same identity = same
       credentials. Holds no secret (ExternalIds enter as a hash). */
    char identity[512];
    /* For log lines: kind and non-secret details ("assume-role
       arn:aws:iam::111122223333:role/x"). */
    char desc[320];
    /* Fetch fresh credentials into *out (owned by the caller on success).
       Returns 0, CREDS_NOT_FOUND or CREDS_ERROR with *err filled
       (classified as for any AWS call; the message never holds a secret).
       Thread-safe; the cache calls it for one refresh at a time. */
    int (*fetch)(creds_provider *p, creds_value *out, awshttp_error *err);
    void (*destroy)(creds_provider *p); /* frees p itself */
    const creds_ctx *ctx;
    void *impl;
};

/* Destroy any provider. Accepts NULL. */
void creds_provider_destroy(creds_provider *p);

/* Each constructor returns a provider the caller owns (destroy with
 * creds_provider_destroy) or NULL with a reason in err (errlen bytes). */
creds_provider *creds_env_provider(const creds_ctx *ctx, char *err,
                                   size_t errlen);
/* Static keys from the agent config; the caller logs a warning that
 * long-term keys sit in a config file. Strings are copied. */
creds_provider *creds_static_provider(const creds_ctx *ctx, const char *akid,
                                      const char *secret, const char *token,
                                      char *err, size_t errlen);
/* Profile `profile` (NULL: AWS_PROFILE, else "default") of the shared
 * files, read now. A missing default profile gives a provider that
 * answers CREDS_NOT_FOUND; a missing named profile, a source_profile
 * loop or an invalid role setting is an error (NULL). */
creds_provider *creds_profile_provider(const creds_ctx *ctx,
                                       const char *profile, char *err,
                                       size_t errlen);
creds_provider *creds_web_identity_provider(const creds_ctx *ctx, char *err,
                                            size_t errlen);
creds_provider *creds_container_provider(const creds_ctx *ctx, char *err,
                                         size_t errlen);
creds_provider *creds_imds_provider(const creds_ctx *ctx, char *err,
                                    size_t errlen);
/* The standard chain above; `profile` as for creds_profile_provider. The
 * first provider that is configured answers (success or error); once one
 * has succeeded the chain sticks to it. */
creds_provider *creds_chain_provider(const creds_ctx *ctx, const char *profile,
                                     char *err, size_t errlen);

/* ---- AssumeRole ------------------------------------------------------------
 */

typedef struct creds_role_opts {
    const char *role_arn;     /* required */
    const char *external_id;  /* NULL: none */
    const char *session_name; /* NULL: "logferry-<hostname>", sanitised */
    uint32_t duration_s;      /* 0: 3600; 900..43200 */
    const char *region;       /* NULL: ctx region */
    const char *endpoint;     /* NULL: ctx->sts_endpoint, else regional */
} creds_role_opts;

/* Validation, each 0 if valid, else -1 with the reason in err (which
 * never repeats the ExternalId). */
int creds_validate_role_arn(const char *arn, char *err, size_t errlen);
int creds_validate_external_id(const char *id, char *err, size_t errlen);
int creds_validate_session_name(const char *name, char *err, size_t errlen);

/* Default session name "logferry-<hostname>" with characters outside
 * [\w+=,.@-] replaced by '-', cut to 64. */
void creds_default_session_name(const char *hostname, char *out, size_t cap);

/* AssumeRole (query protocol, POST Action=AssumeRole&Version=2011-06-15)
 * signed with the credentials of `base`. Takes ownership of `base` (also
 * on failure). Validates the options. */
creds_provider *creds_assume_role_provider(const creds_ctx *ctx,
                                           creds_provider *base,
                                           const creds_role_opts *opts,
                                           char *err, size_t errlen);

/* ---- the shared cache
 * -------------------------------------------------------- */

typedef struct creds_cache_opts {
    uint32_t refresh_ahead_s; /* 0: 300 (never more than half a lifetime) */
    uint32_t jitter_s;        /* 0: 60; refresh up to this much earlier */
    uint32_t backoff_base_s;  /* 0: 1 */
    uint32_t backoff_max_s;   /* 0: 120; while the current keys are still
                                 valid, at most half their remaining life */
    uint32_t min_valid_s;     /* 0: 10; creds closer to expiry are unusable */
} creds_cache_opts;

typedef struct creds_cache creds_cache;
typedef struct creds_handle creds_handle;

/* One cache for the agent. `opts` may be NULL. Free with
 * creds_cache_destroy() after every handle is released. NULL on ENOMEM. */
creds_cache *creds_cache_create(const creds_ctx *ctx,
                                const creds_cache_opts *opts);
void creds_cache_destroy(creds_cache *c); /* accepts NULL */

/* Join the entry for p->identity, creating it if needed. Takes ownership
 * of `p`: if an entry with that identity exists, p is destroyed and the
 * entry's provider is used. Returns a handle, released with
 * creds_cache_release(); NULL on ENOMEM (p destroyed). */
creds_handle *creds_cache_acquire(creds_cache *c, creds_provider *p);
void creds_cache_release(creds_handle *h); /* accepts NULL */

/* Number of live entries (for tests and `logferry status`). */
size_t creds_cache_entries(creds_cache *c);

/* Current credentials into *out (a copy the caller frees with
 * creds_value_free). Refreshes when they are missing, inside the
 * refresh-ahead window, or invalidated; only one refresh per entry runs
 * at a time: other callers get the current credentials while they are
 * still valid, or wait for it. A failed refresh keeps still-valid
 * credentials in use (returns 0) and schedules the next attempt with
 * capped exponential backoff; calls before then do not reach the
 * provider. Returns 0 or CREDS_ERROR with *err (the last failure). */
int creds_get(creds_handle *h, creds_value *out, awshttp_error *err);

/* Tell the cache an AWS answer refused `used` as expired or unknown
 * (AWSHTTP_AUTH_EXPIRED). If they are still the entry's current
 * credentials they are dropped, so the next creds_get() refreshes at
 * once; if another caller already refreshed, nothing happens. */
void creds_invalidate(creds_handle *h, const creds_value *used);

/* Number of fetches the entry made (for tests and status). */
uint64_t creds_handle_fetches(creds_handle *h);

#endif
