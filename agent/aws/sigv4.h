/*
 * sigv4.h - AWS Signature Version 4 (AWS4-HMAC-SHA256).
 *
 * The one signer of the agent: the HTTP layer (awshttp) signs every AWS
 * request through it, and sinks reach it only through the host services,
 * so nobody re-implements signing. It is pure computation: the clock is a
 * parameter, nothing is logged, no global state, thread-safe.
 *
 * Request model. The caller describes the request as it will go on the
 * wire: method, path and query in their URL (percent-encoded) form, the
 * headers it will send (Host included) and the body. The signer adds
 * what SigV4 adds (X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256
 * and Authorization, or the X-Amz-* query parameters when presigning) and
 * returns them; it never rewrites the caller's own headers. Every header
 * the caller passes is signed, as botocore does, so pass only headers
 * that will be sent unchanged (not User-Agent if a proxy may rewrite it,
 * never Expect).
 *
 * Service rules (AWS General Reference, "Create a canonical request"):
 *   - every service but S3: the path has its dot segments and repeated
 *     slashes removed, then every byte other than unreserved and '/' is
 *     percent-encoded, so a '%' on the wire becomes %25 ("double
 *     encoding");
 *   - S3 (service "s3", or SIGV4_S3): the path is neither normalized nor
 *     double-encoded: percent escapes are decoded and re-encoded once, so
 *     "/a$b" and "/a%24b" both sign as "/a%24b"; and the
 *     x-amz-content-sha256 header carries the payload hash or
 *     UNSIGNED-PAYLOAD.
 * The query is split on '&' and the first '=', each part decoded and
 * re-encoded (RFC 3986 unreserved set; '+' is a literal plus), and sorted
 * by name then value.
 */
#ifndef LOGFERRY_AWS_SIGV4_H
#define LOGFERRY_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

/* Limits. A request crossing one is refused with -E2BIG: AWS refuses such
 * requests anyway and the caps keep a hostile input from growing memory. */
#define SIGV4_MAX_HEADERS 64          /* caller's headers */
#define SIGV4_MAX_FIELD (16u * 1024u) /* one header value, path or query */
#define SIGV4_MAX_CANONICAL (128u * 1024u)

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

/* Credentials used to sign. Borrowed for the duration of a call. */
typedef struct sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" for long-term keys */
} sigv4_creds;

typedef struct sigv4_header {
    const char *name;
    const char *value;
} sigv4_header;

/* The request as it will be sent. Everything is borrowed. */
typedef struct sigv4_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path as sent, "/..." ("" means "/") */
    const char *query;  /* URL query without '?', as sent; NULL = none */
    const sigv4_header *headers; /* must include Host */
    size_t n_headers;
    const void *body; /* hashed unless sigv4_options.payload_hash is set */
    size_t body_len;
} sigv4_request;

/* Flags; zero is plain header signing for a non-S3 service. */
enum {
    /* Apply S3 rules (see above) whatever the service name. */
    SIGV4_S3 = 1u << 0,
    /* Do not normalize the path (non-S3 services that want it raw). */
    SIGV4_NO_NORMALIZE = 1u << 1,
    /* Add and sign x-amz-content-sha256 also for a non-S3 service. */
    SIGV4_CONTENT_SHA256 = 1u << 2,
    /* Presign: put the signature in the query (X-Amz-Signature) instead of
       an Authorization header. */
    SIGV4_PRESIGN = 1u << 3,
    /* Add the session token after signing instead of signing it (some
       services want it that way; AWS test suite post-sts-header-after). */
    SIGV4_TOKEN_AFTER = 1u << 4,
};

typedef struct sigv4_options {
    const char *region;  /* "us-east-1" */
    const char *service; /* signing name: "logs", "s3", "sts", ... */
    int64_t now;         /* signing time, Unix seconds (the injected clock) */
    unsigned flags;
    /* NULL: hex SHA-256 of the body. Otherwise used verbatim, e.g.
       SIGV4_UNSIGNED_PAYLOAD or a hash the caller computed while
       streaming. When presigning S3 without it, UNSIGNED-PAYLOAD. */
    const char *payload_hash;
    uint32_t expires; /* presign: X-Amz-Expires, 1..604800 s; 0 = 3600 */
} sigv4_options;

/* A derived signing key, valid for one (access key, date, region,
 * service). Deriving costs four HMACs; a caller signing many requests
 * keeps one per scope and passes it to sigv4_sign(), which uses it only
 * if it matches and derives a fresh one otherwise. Contains key material:
 * keep it out of logs and wipe it with sigv4_key_clear(). */
typedef struct sigv4_key {
    uint8_t key[32];
    char access_key_id[129];
    char date[9];    /* YYYYMMDD */
    char scope[160]; /* date/region/service/aws4_request */
    int valid;
} sigv4_key;

/* Result of signing. Owns its strings; release with sigv4_result_free().
 * `add_headers` are the headers the caller must send in addition to its
 * own (names are static strings, values point into the result):
 * X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256 and
 * Authorization, those that apply. When presigning there are none and
 * `query` is the full query string to send instead of the request's. */
typedef struct sigv4_result {
    char *canonical_request; /* for tests and debugging; no secrets, but
                                contains the session token if signed */
    char *string_to_sign;
    char signature[65];  /* lowercase hex */
    char amz_date[17];   /* YYYYMMDDTHHMMSSZ */
    char *authorization; /* header value; NULL when presigning */
    char *query;         /* presign only: query string to send */
    sigv4_header add_headers[4];
    size_t n_add_headers;
    /* private storage behind add_headers */
    char *token_;
    char payload_hash_[72];
} sigv4_result;

/* Sign `req`. `key` may be NULL; if not, it is used when it matches the
 * credentials and scope, and otherwise overwritten with the newly derived
 * key (so one sigv4_key per caller acts as a one-entry cache; not
 * thread-safe: give each thread its own, or pass NULL).
 * On success returns 0 and fills *out, which the caller releases with
 * sigv4_result_free(). On failure returns -EINVAL (missing field, no Host
 * header, bad name), -E2BIG (a cap above) or -ENOMEM, and *out holds
 * nothing to free (it is zeroed). Headers the signer owns (Authorization,
 * X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256) are refused in
 * req->headers with -EINVAL: use the flags and payload_hash instead. */
int sigv4_sign(const sigv4_request *req, const sigv4_creds *creds,
               const sigv4_options *opt, sigv4_key *key, sigv4_result *out);

/* Free what a result owns and zero it. Accepts NULL. */
void sigv4_result_free(sigv4_result *r);

/* Derive the signing key for `secret` on the UTC day of `now` in
 * region/service into *key (the caller owns *key; nothing is allocated).
 * Returns 0, or -EINVAL / -E2BIG for missing or over-long arguments. */
int sigv4_derive_key(const char *access_key_id, const char *secret, int64_t now,
                     const char *region, const char *service, sigv4_key *key);

/* Wipe key material. Accepts NULL. */
void sigv4_key_clear(sigv4_key *key);

/* Signature of one chunk of an aws-chunked (STREAMING-AWS4-HMAC-SHA256-
 * PAYLOAD) upload: string to sign "AWS4-HMAC-SHA256-PAYLOAD\n<amz_date>\n
 * <scope>\n<prev_sig>\n<sha256("")>\n<sha256(chunk)>". `prev_sig` is the
 * seed signature of the request for the first chunk. Writes 64 hex chars
 * and a NUL to out. Returns 0 or -EINVAL. */
int sigv4_chunk_signature(const sigv4_key *key, const char *amz_date,
                          const char *prev_sig, const void *chunk, size_t len,
                          char out[65]);

/* Percent-encode `in` (n bytes) with the SigV4 rules: unreserved bytes
 * (A-Z a-z 0-9 - _ . ~) stay, '/' stays when keep_slash, every other byte
 * becomes %XY (upper case). Writes at most cap bytes including the NUL
 * into out and returns the length it needed (>= cap: truncated). For
 * building S3 keys and query values the same way the signer reads them. */
size_t sigv4_uri_encode(const char *in, size_t n, int keep_slash, char *out,
                        size_t cap);

/* Hex SHA-256 of a buffer into out (64 chars + NUL). */
void sigv4_sha256_hex(const void *p, size_t n, char out[65]);

/* Format `now` (Unix seconds) as YYYYMMDDTHHMMSSZ. Returns 0 or -EINVAL
 * when the time cannot be represented. */
int sigv4_amz_date(int64_t now, char out[17]);

#endif
