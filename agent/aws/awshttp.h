/*
 * awshttp.h - HTTP for every AWS caller of the agent (CloudWatch Logs and
 * S3 sinks, STS and the credential providers), over libcurl.
 *
 * What it owns, so no sink re-does it: keep-alive connection reuse per
 * endpoint, timeouts, TLS verification, proxies (libcurl's standard
 * http_proxy / https_proxy / no_proxy environment variables, left on),
 * a cap on response bodies, SigV4 signing of the request, parsing AWS
 * error bodies (JSON and XML whatever the service claims, since e.g.
 * moto answers Logs authentication errors as XML) and ONE classification
 * of failures for every caller (awshttp_error).
 *
 * Logging: one line per request at DEBUG (method, scheme://host/path,
 * status, time; never the query, which may carry a presigned signature or
 * token), the insecure-TLS warning at WARN. Bodies and header values are
 * never logged at any level.
 *
 * Thread-safety: one client may be used from any number of threads; the
 * handle pool is mutex-protected and a handle serves one request at a
 * time.
 */
#ifndef LOGFERRY_AWS_AWSHTTP_H
#define LOGFERRY_AWS_AWSHTTP_H

#include <stddef.h>
#include <stdint.h>

#include "aws/sigv4.h"
#include "logferry/sink.h"

#define AWSHTTP_DEFAULT_MAX_RESPONSE (8u * 1024u * 1024u)
#define AWSHTTP_MAX_RESPONSE_HEADERS (64u * 1024u)

/* ---- error classification --------------------------------------------- */

typedef enum awshttp_class {
    AWSHTTP_OK = 0,
    /* Try again later (backoff, honour retry_after_ms): throttling codes,
       429, 5xx, 408, connection refused/reset, timeouts, partial bodies,
       DNS failures. */
    AWSHTTP_RETRYABLE = 1,
    /* Retrying the same request will not help: validation, access denied,
       not found, bad signature, TLS verification failure, an oversized
       response, other 4xx. */
    AWSHTTP_PERMANENT = 2,
    /* The credentials were refused as expired or unknown: invalidate the
       cached credentials, refresh, and retry once. ExpiredToken,
       ExpiredTokenException, RequestExpired, and the "refresh once" group
       InvalidClientTokenId, UnrecognizedClientException, InvalidToken,
       InvalidAccessKeyId (see awshttp_error_after_refresh()). */
    AWSHTTP_AUTH_EXPIRED = 3,
} awshttp_class;

typedef struct awshttp_error {
    awshttp_class cls;
    long http_status;        /* 0 when no response arrived */
    char code[128];          /* AWS error code, "ThrottlingException"; "" */
    char message[512];       /* AWS message, cut to fit; never a secret */
    char request_id[128];    /* x-amzn-RequestId / x-amz-request-id / body */
    int curl_code;           /* CURLcode, 0 when the transfer completed */
    uint32_t retry_after_ms; /* from Retry-After; 0 = not given */
} awshttp_error;

/* Name of a class: "ok", "retryable", "permanent", "auth-expired". */
const char *awshttp_class_name(awshttp_class c);

/* Classify an HTTP answer. `body` (len bytes, need not be NUL-terminated,
 * may be NULL) is parsed as JSON when it starts with '{' and as XML when it
 * starts with '<', whatever the Content-Type. `amzn_error_type` is the
 * x-amzn-ErrorType header (may be NULL), used when the body has no code;
 * `request_id` the request-id header (may be NULL); `retry_after` the
 * Retry-After header (may be NULL), read relative to `now` (Unix
 * seconds) when it is a date. Fills *out completely; nothing allocated. */
void awshttp_classify(long status, const char *body, size_t len,
                      const char *amzn_error_type, const char *request_id,
                      const char *retry_after, int64_t now, awshttp_error *out);

/* Classify a transfer that failed before a full answer arrived
 * (`curl_code` is a CURLcode). `status` is the HTTP status if one was
 * read, else 0. */
void awshttp_classify_transport(int curl_code, long status, awshttp_error *out);

/* Policy after a refresh: call this on the error of the retry made with
 * freshly refreshed credentials. An AUTH_EXPIRED answer of the "refresh
 * once" group (InvalidClientTokenId & co.: the key itself is unknown)
 * becomes PERMANENT; ExpiredToken / RequestExpired become RETRYABLE
 * (clock skew or propagation delay; backoff rather than a refresh storm).
 * Other classes are unchanged. */
void awshttp_error_after_refresh(awshttp_error *e);

/* Retry-After value: delta-seconds or an HTTP-date, relative to `now`.
 * Returns milliseconds, capped at 20 minutes; 0 when absent or invalid. */
uint32_t awshttp_parse_retry_after(const char *v, int64_t now);

/* ---- body helpers ------------------------------------------------------ */

/* Extract the text of the first element of each local name in `names`
 * (namespace prefixes ignored) from an XML document, e.g. {"AccessKeyId",
 * "SecretAccessKey", "SessionToken", "Expiration"} from an AssumeRole
 * answer. values[i] gets a malloc'ed string the caller frees, or NULL if
 * the element is absent. Each value is capped at `cap` bytes (over it:
 * -E2BIG). Returns 0, -EINVAL (not well-formed XML) or -ENOMEM; on error
 * every values[i] is NULL. The document is not logged. */
int awshttp_xml_fields(const char *body, size_t len, const char *const *names,
                       char **values, size_t n, size_t cap);

/* ---- the client --------------------------------------------------------- */

/* Log sink for this module; NULL in the config means the agent log
 * (log_msg with prefix "aws http"). `msg` never holds a secret. */
typedef void (*awshttp_log_fn)(void *ud, lf_log_level level, const char *msg);

typedef struct awshttp_config {
    long connect_timeout_ms;   /* 0: 5000 */
    long total_timeout_ms;     /* 0: 30000; per request override below */
    size_t max_response_bytes; /* 0: AWSHTTP_DEFAULT_MAX_RESPONSE */
    const char *ca_file;       /* NULL: system default bundle */
    const char *ca_path;
    int insecure;             /* skip TLS verification: tests only */
    size_t pool_per_endpoint; /* idle handles kept per endpoint; 0: 4 */
    size_t max_endpoints;     /* endpoints with a pool; 0: 32 */
    const char *user_agent;   /* NULL: "logferry/<version>" */
    awshttp_log_fn log;
    void *log_ud;
} awshttp_config;

typedef struct awshttp_client awshttp_client;

/* Create a client. `cfg` may be NULL for defaults; its strings are
 * copied. Logs a WARN line when `insecure` is set. Returns the client,
 * which the caller frees with awshttp_client_destroy(), or NULL with a
 * reason in err (errlen bytes). */
awshttp_client *awshttp_client_create(const awshttp_config *cfg, char *err,
                                      size_t errlen);

/* Close every pooled connection and free the client. Accepts NULL. No
 * request may be in flight. */
void awshttp_client_destroy(awshttp_client *c);

/* One request. Everything is borrowed for the duration of the call. */
typedef struct awshttp_request {
    const char *method; /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    /* Absolute URL, path and query already percent-encoded (see
       sigv4_uri_encode); sent exactly as given (no dot-segment removal),
       so the signed path is the sent path. */
    const char *url;
    const sigv4_header *headers; /* besides Host, which is derived */
    size_t n_headers;
    const void *body;
    size_t body_len;
    /* Signing: creds NULL sends the request unsigned (web identity STS,
       IMDS, container endpoint). */
    const sigv4_creds *creds;
    const char *region;
    const char *service;
    unsigned sign_flags;      /* SIGV4_* flags */
    const char *payload_hash; /* see sigv4_options */
    int64_t now;              /* signing time and Retry-After reference */
    long timeout_ms;          /* 0: client default */
    int no_proxy;             /* bypass proxies (link-local endpoints) */
} awshttp_request;

typedef struct awshttp_response {
    long status; /* 0 if no answer */
    char *body;  /* owned, NUL-terminated, body_len bytes */
    size_t body_len;
    char *headers; /* owned: raw header block of the final answer */
} awshttp_response;

/* Send a request and read the answer. Returns err->cls: AWSHTTP_OK for a
 * 2xx answer, otherwise the classification (transport failure, AWS error
 * body, status). *resp receives whatever answer arrived (also on errors,
 * for callers that read an error body); the caller always releases it
 * with awshttp_response_free(). A body over max_response_bytes is an
 * error (PERMANENT, code "ResponseTooLarge") and is not returned. */
awshttp_class awshttp_perform(awshttp_client *c, const awshttp_request *req,
                              awshttp_response *resp, awshttp_error *err);

/* Free what a response owns and zero it. Accepts NULL. */
void awshttp_response_free(awshttp_response *r);

/* Value of a response header (case-insensitive name), whitespace
 * trimmed, copied into out (cap bytes). Returns the length, or -1 when
 * absent or if it does not fit. */
int awshttp_response_header(const awshttp_response *r, const char *name,
                            char *out, size_t cap);

/* Endpoint URL of a service: `override` if it is set (VPC endpoints,
 * FIPS, emulators; a trailing '/' is dropped), else
 * https://<prefix>.<region>.amazonaws.com (".amazonaws.com.cn" for cn-
 * regions). Returns 0, or -1 if it does not fit in cap or region is
 * malformed. */
int awshttp_endpoint(const char *override, const char *prefix,
                     const char *region, char *out, size_t cap);

#endif
