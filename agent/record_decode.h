/*
 * record_decode.h - a schema-specific decoder for InvocationRecord.
 *
 * Place in the pipeline: delivery decodes every spool frame into an
 * InvocationRecord that retention, redaction, routing and the JSON renderer
 * read. protobuf-c's generic unpack was the largest single cost of a drain
 * (docs/BENCHMARKS.md); this decoder knows the schema, so it walks the bytes
 * twice without descriptors and takes the record's memory in one piece. It
 * is held to protobuf-c's behaviour by tests/unit/test_record_decode.c, a
 * differential test on random, duplicated, unknown-field-laden and mutated
 * encodings. bench/bench_decode.c measures the gain.
 *
 * When a field is added to proto/logferry.proto, add it to the field table
 * in record_decode.c as well: until then it decodes as an unknown field
 * (kept, re-encoded by pack(), but invisible), and the test fails.
 */
#ifndef LOGFERRY_RECORD_DECODE_H
#define LOGFERRY_RECORD_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <logferry/logferry.pb-c.h>

#define RDEC_OK 0
#define RDEC_EMALFORMED (-1) /* not an InvocationRecord protobuf-c accepts */
#define RDEC_ENOMEM (-2)     /* alloc->alloc returned NULL */

/* Decode the len bytes at buf into *out, the way protobuf-c 1.4's
 * logferry__v1__invocation_record__unpack() does:
 * - the same field values: the last occurrence of a singular field wins;
 *   strings are NUL-terminated copies (a string holding a NUL reads as cut
 *   there, as with protobuf-c); an absent string stays
 *   protobuf_c_empty_string; record_id is {0, NULL} when absent or empty;
 *   status keeps values this build does not name; attributes are the map
 *   entries in wire order, duplicates included (readers take the last);
 * - unknown fields (wire types 0, 1, 2, 5) kept in base.unknown_fields,
 *   in each entry's too, byte for byte, so get_packed_size() and pack()
 *   on the result give what they give on protobuf-c's;
 * - the same encodings rejected: a tag, varint or length prefix cut short
 *   or longer than protobuf-c reads (5, 10 and 5 bytes), a one-byte tag
 *   with field number 0, a length past the end of its message (or above
 *   INT_MAX), wire types 3, 4, 6 and 7 anywhere (proto3 has no groups), a
 *   known field with the wrong wire type, in the record or in an entry.
 *   Strings are not checked for UTF-8, as protobuf-c 1.4 does not; the JSON
 *   renderer repairs them.
 *
 * Memory: *out is the caller's. Everything it points to afterwards is
 * taken from `alloc` in a single alloc->alloc() call, made only once the
 * whole encoding has been checked: the attribute array and entries, the
 * unknown-field structs, and one copy of the encoding (len + 1 bytes) that
 * the strings, record_id and unknown-field data point into, each string
 * NUL-terminated in place. buf is not referenced after the call and must
 * not change during it. alloc must not be NULL and must return memory
 * aligned for any type (as malloc does); rdec never calls alloc->free.
 * The record is freed by releasing alloc's memory wholesale (resetting the
 * agent's per-batch arena): never pass it to
 * logferry__v1__invocation_record__free_unpacked(), and code that frees
 * parts of it through alloc->free (redact_apply) must be given an
 * allocator whose free does nothing, like that arena. Writing a string in
 * place within its length, as redact_apply does, is fine.
 *
 * The memory taken is len + 1 bytes plus, on LP64, 48 per map entry and
 * 24 per unknown field: at most about 17 times len (a record made of
 * empty map entries), as with protobuf-c. The caller bounds len (spool
 * frames are at most SPOOL_MAX_PAYLOAD).
 *
 * Returns RDEC_OK; RDEC_EMALFORMED, having taken nothing from alloc; or
 * RDEC_ENOMEM. On failure *out is an empty record, as after
 * logferry__v1__invocation_record__init(). buf may be NULL when len is 0. */
int rdec_unpack(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                Logferry__V1__InvocationRecord *out);

#endif
