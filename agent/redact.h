/*
 * redact.h - the redaction engine: rules that rewrite the sensitive text of
 * a decoded InvocationRecord before any sink or dead letter sees it.
 *
 * Place in the pipeline: tail -> decode -> retention -> REDACTION ->
 * routing -> batch -> sink. The agent compiles the configured rules once
 * (redact_compile, at load and on SIGHUP), keeps one scratch per delivery
 * thread, and calls redact_apply() on every decoded record. A record whose
 * fields changed must be re-encoded before its bytes go anywhere: the
 * encoded payload read from the spool still holds the original text.
 *
 * What a rule does, to which fields (docs/REDACTION.md has the config
 * syntax and the detectors' measured false-positive rates):
 *   fields   prompt_text, completion_text, error_message, attributes.KEY
 *            (every entry with that key), attributes.* (every value), and
 *            *text (all of the above: every free-text field). Identity and
 *            routing fields (tenant_id, account_id, model_id, ...) cannot
 *            be redacted; naming one, or an unknown field, is an error.
 *   actions  drop      the value becomes "";
 *            mask      the value becomes a fixed token ("[REDACTED]" by
 *                      default), or with mask_fill every character (code
 *                      point) becomes that ASCII character;
 *            hash      "hmac:" + the first 32 hex digits of
 *                      HMAC-SHA256(key, value), so equal values can still
 *                      be joined; the key is read from key_file once;
 *            truncate  the value is cut to at most truncate_bytes bytes,
 *                      never inside a UTF-8 sequence.
 *   detect   with built-in detectors (detect) and/or custom PCRE2 patterns
 *            (patterns), the rule scans the value and masks or hashes only
 *            the matched spans; with action drop, a value holding any match
 *            is dropped whole. truncate cannot be combined with detection.
 * Rules run in the order given; each sees the output of the ones before.
 *
 * Guarantees: a field is never left half-redacted. If redaction of a value
 * cannot complete (out of memory, a custom pattern hitting its match
 * limit), the value is cleared ("fail closed") and counted. Nothing here
 * logs; error messages name the rule, the caller's file:line, key file
 * paths and pattern offsets, never record content or key bytes.
 *
 * Thread safety: a compiled redact_rules is immutable and may be shared by
 * any number of threads; a redact_scratch belongs to one thread at a time.
 */
#ifndef LOGFERRY_REDACT_H
#define LOGFERRY_REDACT_H

#include <stddef.h>
#include <stdint.h>

#include <logferry/logferry.pb-c.h>

/* ---- detectors ---------------------------------------------------------- */

/* The built-in detectors, as bits of redact_rule_spec.detect. Names (for
 * the config and for "{type}" in mask tokens) by redact_detector_name(). */
typedef enum redact_detector {
    REDACT_DET_EMAIL = 0,  /* "email" */
    REDACT_DET_CARD,       /* "card": 13-19 digits, Luhn, first digit 2-6 */
    REDACT_DET_SSN,        /* "ssn": AAA-GG-SSSS / AAA GG SSSS, valid */
    REDACT_DET_PHONE,      /* "phone": +E.164 and separated NANP */
    REDACT_DET_IPV4,       /* "ipv4" */
    REDACT_DET_IPV6,       /* "ipv6": full and compressed forms */
    REDACT_DET_AWS_KEY_ID, /* "aws_key_id": AKIA/ASIA/ABIA/ACCA + 16 */
    REDACT_DET_AWS_SECRET, /* "aws_secret": 40 base64 chars after "secret" */
    REDACT_DET_BEARER,     /* "bearer": the token after "Bearer " */
    REDACT_DET_API_TOKEN,  /* "api_token": sk-, gh?_, github_pat_, xox?-,
                              AIza */
    REDACT_DET_JWT,        /* "jwt" */
    REDACT_DET_COUNT
} redact_detector;

#define REDACT_DET_BIT(d) (1u << (d))
#define REDACT_DET_ALL ((1u << REDACT_DET_COUNT) - 1u)

/* The config name of detector d ("email", ...), or NULL if out of range. */
const char *redact_detector_name(unsigned d);

/* Parse a detector name into *mask bits (OR-ed in): one of the names
 * above, "ip" (ipv4 and ipv6) or "all" (every built-in detector). Returns
 * 0, or -1 for an unknown name (*mask untouched). */
int redact_detector_parse(const char *name, uint32_t *mask);

/* ---- rules -------------------------------------------------------------- */

typedef enum redact_action {
    REDACT_DROP = 1,
    REDACT_MASK = 2,
    REDACT_HASH = 3,
    REDACT_TRUNCATE = 4,
} redact_action;

/* "drop", "mask", "hash", "truncate" -> *out. Returns 0, or -1. */
int redact_action_parse(const char *name, redact_action *out);

/* Smallest key_file content accepted for hash, in bytes (after trailing
 * CR/LF are stripped), and the largest. */
#define REDACT_KEY_MIN 16
#define REDACT_KEY_MAX 4096

/* Longest mask token, in bytes. */
#define REDACT_TOKEN_MAX 64

/* One rule as the config describes it. Everything is borrowed for the
 * duration of redact_compile() only. */
typedef struct redact_rule_spec {
    const char *name;  /* for errors and counters; NULL: "#<1-based index>" */
    const char *where; /* "file:line" prefix for errors, or NULL */
    const char *const *fields; /* field selectors (see above), >= 1 */
    size_t n_fields;
    redact_action action;
    uint32_t detect;             /* REDACT_DET_BIT()s; 0: none */
    const char *const *patterns; /* custom PCRE2 patterns (UTF-8) */
    size_t n_patterns;
    const char *mask_token; /* mask: replacement (NULL: "[REDACTED]");
                               "{type}" in it expands to the detector name,
                               or the rule name for patterns and whole
                               values */
    char mask_fill;         /* mask: keep the length, in code points, with
                               this printable ASCII character (0: token) */
    const char *key_file;   /* hash: path of the HMAC key (required) */
    size_t truncate_bytes;  /* truncate: maximum bytes kept (>= 1) */
} redact_rule_spec;

typedef struct redact_rules redact_rules;

/* Compile n rules (n may be 0: a set that changes nothing). Reads every
 * key_file once, compiles patterns with PCRE2 JIT (interpreter when JIT is
 * unavailable). On error returns NULL and writes one line to err (errlen
 * bytes, may be 0): "<where>: redact rule <name>: <what>", e.g. a bad
 * pattern's PCRE2 message and offset, an unknown field, a key file that
 * cannot be read or is too short (its path, never its content). The caller
 * owns the result and frees it with redact_rules_free(). */
redact_rules *redact_compile(const redact_rule_spec *specs, size_t n, char *err,
                             size_t errlen);

/* Free a rule set (wiping the keys it holds). Accepts NULL. */
void redact_rules_free(redact_rules *r);

/* Number of rules, and the name of rule i (as given, or "#<i+1>"); the
 * name lives as long as r. */
size_t redact_rule_count(const redact_rules *r);
const char *redact_rule_name(const redact_rules *r, size_t i);

/* ---- applying ------------------------------------------------------------ */

/* Per-thread working memory: output buffers, the detector span list and
 * PCRE2 match data. It grows to the largest field seen (each buffer is
 * capped at REDACT_FIELD_MAX) and is reused, so steady-state redaction
 * allocates nothing but the replacement strings that outgrow the original
 * ones. One scratch serves any rule set. Returns NULL when out of memory;
 * free with redact_scratch_free() (accepts NULL). */
typedef struct redact_scratch redact_scratch;
redact_scratch *redact_scratch_new(void);
void redact_scratch_free(redact_scratch *s);

/* Largest field value redacted in the ordinary way (16 MiB; decoded
 * records are at most 4 MiB). A longer value is cleared (fail closed). */
#define REDACT_FIELD_MAX (16u * 1024u * 1024u)

/* Counters of one rule; redact_apply() adds to them. Sum them across
 * threads to report. */
typedef struct redact_rule_stats {
    uint64_t records;     /* records in which the rule changed something */
    uint64_t fields;      /* field values it changed */
    uint64_t matches;     /* spans it masked/hashed (detect/patterns), or
                             values it changed (whole-value actions) */
    uint64_t fail_closed; /* values cleared because redaction could not
                             complete */
} redact_rule_stats;

/* Redact the record's text fields in place, running every rule on the
 * fields it names. A changed value is written over the old string when it
 * fits (the old bytes beyond it are zeroed); otherwise a new string is
 * taken from `alloc` and the old one is zeroed and handed to alloc->free.
 * Pass the allocator the record was unpacked with (the agent's per-batch
 * arena), or NULL for malloc/free (protobuf-c's default), so that
 * free_unpacked() stays correct. Returned strings live as long as the
 * record's allocator keeps them. The record's non-empty strings must be
 * writable, as protobuf-c's unpack leaves them (not literals); empty ones
 * (protobuf_c_empty_string) and NULL are never written.
 *
 * Only the record is rewritten: the encoded bytes it was decoded from
 * (spool payload, batch copy) still hold the original text, so a caller
 * must not forward or dead-letter those when the return value is > 0.
 *
 * st is NULL or an array of redact_rule_count(r) counters to add to.
 * Returns the number of values changed (0: the record is untouched and its
 * spool bytes can be forwarded as they are; > 0: re-encode it). Never
 * fails: a value that cannot be redacted is cleared and counted in
 * fail_closed. */
int redact_apply(const redact_rules *r, redact_scratch *s,
                 Logferry__V1__InvocationRecord *rec,
                 const ProtobufCAllocator *alloc, redact_rule_stats *st);

/* Run the rules that target `field` ("prompt_text", "attributes.user",
 * ...) on one value of len bytes. *out is set to the result and *out_len
 * to its length: either `text` itself (unchanged) or a NUL-terminated
 * string inside s, valid until the next call with s. Returns 1 if changed,
 * 0 if not, -1 for an unknown field name. For tests, tools and callers
 * outside the record path. */
int redact_string(const redact_rules *r, redact_scratch *s, const char *field,
                  const char *text, size_t len, const char **out,
                  size_t *out_len, redact_rule_stats *st);

#endif
