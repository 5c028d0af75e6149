/*
 * record_json.h - InvocationRecord -> JSON, and field access by name.
 *
 * Place in the pipeline: after decode, retention and redaction, the host
 * lends these to sinks as host->to_json and host->field, so every sink
 * renders a record the same way and none links the protobuf schema.
 *
 * The JSON object (no newline) has "time" first (event_time_ns as RFC 3339
 * UTC with milliseconds), then the schema fields in field-number order under
 * their schema names. Fields holding their proto3 default (empty string,
 * zero, STATUS_UNSPECIFIED, no attributes) are left out, except record_id
 * (lowercase hex) and event_time_ns, which are always present. status is
 * lowercase text without the prefix ("ok", "throttled"), or a JSON number
 * for a value this build does not know. 64-bit integers are JSON numbers.
 * attributes is an object with keys in byte order; of duplicate keys the
 * last one wins, as in protobuf. Strings are escaped for JSON; invalid
 * UTF-8 (overlongs, surrogates, > U+10FFFF, truncated sequences, stray
 * continuation bytes) becomes U+FFFD, one per maximal invalid subpart (the
 * Unicode / WHATWG practice), so the output is always valid UTF-8.
 *
 * Strings are read as C strings (protobuf-c NUL-terminates them); a NULL
 * string pointer reads as "".
 */
#ifndef LOGFERRY_RECORD_JSON_H
#define LOGFERRY_RECORD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <logferry/logferry.pb-c.h>

/* Scratch a caller of rjson_field() should provide: enough for every
 * number, "time", and a 16-byte record_id in hex, with the NUL. */
#define RJSON_FIELD_SCRATCH 64

/* Render `r` as one JSON object into dst, snprintf-style: writes at most
 * cap bytes including a terminating NUL (written whenever cap > 0) and
 * returns the length the full output needs, excluding the NUL. A return
 * value >= cap means the output was cut short; it is then incomplete JSON
 * but dst is never overrun. dst may be NULL when cap is 0 (measuring).
 * Borrows r and dst; allocates nothing unless the record has more than 32
 * attributes (a temporary index for sorting, freed before return). */
size_t rjson_render(const Logferry__V1__InvocationRecord *r, char *dst,
                    size_t cap);

/* Render `r` into a caller-owned heap buffer *buf of *cap bytes, growing it
 * with realloc() as needed (*buf may be NULL and *cap 0 at first). The
 * result is NUL-terminated. Returns its length, or (size_t)-1 when it would
 * need more than max_len bytes or memory runs out; *buf and *cap then still
 * describe a valid buffer (possibly grown). The caller frees *buf. */
size_t rjson_render_alloc(const Logferry__V1__InvocationRecord *r, char **buf,
                          size_t *cap, size_t max_len);

/* Text value of a field by name, for templates and routing keys: every
 * scalar field by schema name, "status" as text ("ok", "unspecified", or
 * the number), "attributes.KEY" ("" when the key is absent; the last of
 * duplicates), "time" (as in the JSON), "date" (YYYY-MM-DD of event time,
 * UTC) and "hour" (HH, UTC). Sets *out and returns the length of the value,
 * or returns (size_t)-1 for an unknown name (*out is then untouched).
 *
 * *out is NUL-terminated. It either points into r (string fields and
 * attributes, raw bytes as stored, not sanitised) and lives as long as r,
 * or into scratch (numbers, times, status, record_id hex) and lives as long
 * as scratch. A value longer than scratch_cap - 1 is cut to fit (only a
 * record_id longer than 16 bytes can be, given RJSON_FIELD_SCRATCH);
 * the return value is always the length of what *out holds. */
size_t rjson_field(const Logferry__V1__InvocationRecord *r, const char *name,
                   char *scratch, size_t scratch_cap, const char **out);

/* Whether rjson_field() knows `name`; for validating templates when the
 * config is loaded rather than per record. "attributes." needs a
 * non-empty KEY. */
int rjson_field_known(const char *name);

#endif
