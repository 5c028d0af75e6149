/*
 * record_decode.c - InvocationRecord decoding without protobuf-c's
 * descriptors (contract in record_decode.h).
 *
 * Two passes over the bytes. The first checks the whole encoding by
 * protobuf-c 1.4's rules, stores the numbers in the record and remembers
 * where the last occurrence of each string field lies. The second takes
 * the memory for the result in one piece, copies the encoding into it
 * whole and points the strings, record_id and unknown fields into that
 * copy (NUL-terminating strings in place, see below); it re-walks the
 * bytes only when there are map entries or unknown fields, from the first
 * of them on. protobuf-c, by contrast, scans into a table of members,
 * looks each field up in its descriptor, calls the allocator and memcpy
 * once per string, and unpacks every map entry as a message of its own.
 *
 * The rules that decide what protobuf-c accepts (protobuf-c.c:
 * parse_tag_and_wiretype, scan_length_prefixed_data, the varint scan in
 * protobuf_c_message_unpack) are reproduced in next_field(), including
 * their quirks: a tag reads at most 5 bytes into a 32-bit field number and
 * may be non-minimal ("80 00" is field 0, an unknown field), only a
 * one-byte tag of field 0 is refused; a varint reads at most 10 bytes and
 * its excess bits are dropped.
 */
#include "record_decode.h"

#include <limits.h>
#include <string.h>

typedef Logferry__V1__InvocationRecord rec_t;
typedef Logferry__V1__InvocationRecord__AttributesEntry attr_t;
typedef ProtobufCMessageUnknownField ufield_t;

enum { WT_VARINT = 0, WT_64BIT = 1, WT_LEN = 2, WT_32BIT = 5 };

/* ---- the schema --------------------------------------------------------- */

/* Order matters: record_scan() tests kind <= K_STR and kind <= K_U64. */
enum { K_UNKNOWN = 0, K_BYTES, K_STR, K_I64, K_U64, K_U32, K_ENUM, K_MAP };

#define F_RECORD_ID 1
#define F_LAST 23

typedef struct field_def {
    uint8_t kind;
    uint8_t off; /* offsetof the member in rec_t */
} field_def;

#define FD(k, m)                                                               \
    {                                                                          \
        k, offsetof(rec_t, m)                                                  \
    }

/* Indexed by field number (proto/logferry.proto). */
static const field_def fields[F_LAST + 1] = {
    [1] = FD(K_BYTES, record_id),
    [2] = FD(K_I64, event_time_ns),
    [3] = FD(K_STR, tenant_id),
    [4] = FD(K_STR, account_id),
    [5] = FD(K_STR, app),
    [6] = FD(K_STR, region),
    [7] = FD(K_STR, model_id),
    [8] = FD(K_STR, operation),
    [9] = FD(K_U64, input_tokens),
    [10] = FD(K_U64, output_tokens),
    [11] = FD(K_U64, cache_read_tokens),
    [12] = FD(K_U64, cache_write_tokens),
    [13] = FD(K_U32, latency_ms),
    [14] = FD(K_U32, time_to_first_token_ms),
    [15] = FD(K_ENUM, status),
    [16] = FD(K_STR, error_type),
    [17] = FD(K_STR, error_message),
    [18] = FD(K_STR, request_id),
    [19] = FD(K_STR, trace_id),
    [20] = FD(K_STR, session_id),
    [21] = FD(K_STR, prompt_text),
    [22] = FD(K_STR, completion_text),
    [23] = FD(K_MAP, attributes),
};

_Static_assert(sizeof(rec_t) <= 256, "field_def.off is 8 bits");

static const rec_t rec_init = LOGFERRY__V1__INVOCATION_RECORD__INIT;
static const attr_t attr_init =
    LOGFERRY__V1__INVOCATION_RECORD__ATTRIBUTES_ENTRY__INIT;

/* The record's memory block holds, in this order, the attribute pointer
 * array, the entries, the unknown-field structs (the record's, then the
 * entries'), then the bytes. Keep the structs' sizes multiples of their
 * alignment so that each array stays aligned. */
_Static_assert(sizeof(attr_t *) % _Alignof(attr_t) == 0,
               "entry array alignment");
_Static_assert((sizeof(attr_t *) + sizeof(attr_t)) % _Alignof(ufield_t) == 0,
               "unknown-field array alignment");

/* ---- the wire ------------------------------------------------------------ */

typedef struct wire_field {
    uint32_t num;        /* field number */
    unsigned wt;         /* wire type */
    const uint8_t *data; /* just past the tag */
    size_t len;          /* bytes at data: the varint, the fixed bytes, or
                            the length prefix and the payload */
    size_t pref;         /* length prefix bytes (WT_LEN) */
} wire_field;

/* Read the field at p (p < end). Returns the position after it, or NULL if
 * protobuf-c would refuse it. Inlined into each loop: it is most of the
 * work. */
static inline __attribute__((always_inline)) const uint8_t *
next_field(const uint8_t *p, const uint8_t *end, wire_field *f)
{
    size_t rem = (size_t)(end - p);
    uint32_t b = p[0];

    f->wt = b & 7;
    f->num = (b & 0x7f) >> 3;
    if (b < 0x80) { /* fields 1-15 */
        if (b < 8)
            return NULL; /* one-byte tag, field number 0 */
        p++;
    } else if (rem >= 2 && p[1] < 0x80) { /* fields 16-2047 */
        f->num |= (uint32_t)p[1] << 4;
        p += 2;
    } else {
        size_t max = rem < 5 ? rem : 5, i = 1;
        unsigned shift = 4;
        for (;; i++, shift += 7) {
            if (i == max)
                return NULL;
            if (!(p[i] & 0x80)) {
                f->num |= (uint32_t)p[i] << shift;
                break;
            }
            f->num |= (uint32_t)(p[i] & 0x7f) << shift;
        }
        p += i + 1;
    }

    rem = (size_t)(end - p);
    f->data = p;
    f->pref = 0;
    switch (f->wt) {
    case WT_VARINT: {
        size_t max = rem < 10 ? rem : 10, i = 0;
        while (i < max && (p[i] & 0x80))
            i++;
        if (i == max)
            return NULL;
        f->len = i + 1;
        break;
    }
    case WT_LEN: {
        if (rem && p[0] < 0x80) { /* the usual one-byte length */
            if (p[0] > rem - 1)
                return NULL;
            f->pref = 1;
            f->len = 1 + (size_t)p[0];
            break;
        }
        size_t max = rem < 5 ? rem : 5, i = 0;
        uint64_t val = 0;
        for (;; i++) {
            if (i == max)
                return NULL;
            val |= (uint64_t)(p[i] & 0x7f) << (7 * i);
            if (!(p[i] & 0x80))
                break;
        }
        if (val > INT_MAX || val > rem - (i + 1))
            return NULL;
        f->pref = i + 1;
        f->len = i + 1 + (size_t)val;
        break;
    }
    case WT_64BIT:
        if (rem < 8)
            return NULL;
        f->len = 8;
        break;
    case WT_32BIT:
        if (rem < 4)
            return NULL;
        f->len = 4;
        break;
    default: /* 3, 4 (groups), 6, 7 */
        return NULL;
    }
    return p + f->len;
}

/* A varint's value modulo 2^64, as protobuf-c's parse_uint64(); narrower
 * members take its low bits, as parse_uint32() gives them. */
static inline uint64_t varint_value(const uint8_t *p, size_t n)
{
    if (n == 1)
        return p[0];
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    return v;
}

/* ---- pass 1: check and count --------------------------------------- */

/* The wire type each kind of field must come with. */
static const uint8_t kind_wt[] = {
    [K_BYTES] = WT_LEN,  [K_STR] = WT_LEN,    [K_I64] = WT_VARINT,
    [K_U64] = WT_VARINT, [K_U32] = WT_VARINT, [K_ENUM] = WT_VARINT,
    [K_MAP] = WT_LEN,
};

typedef struct scan {
    uint32_t present;           /* bit n: field n seen */
    size_t str_off[F_LAST + 1]; /* last occurrence's payload, from buf */
    size_t str_len[F_LAST + 1]; /* (only where present) */
    size_t n_attr;
    size_t n_unknown;       /* the record's */
    size_t n_entry_unknown; /* all entries' together */
    const uint8_t *rest;    /* first map entry or unknown field */
} scan;

/* Check one map entry's encoding; count its unknown fields. */
static int entry_scan(const uint8_t *p, size_t n, scan *s)
{
    const uint8_t *end = p + n;
    while (p < end) {
        wire_field f;
        p = next_field(p, end, &f);
        if (!p)
            return -1;
        if (f.num == 1 || f.num == 2) {
            if (f.wt != WT_LEN)
                return -1;
        } else {
            s->n_entry_unknown++;
        }
    }
    return 0;
}

/* Check the encoding; store the numbers in out (which holds rec_init). */
static int record_scan(const uint8_t *buf, const uint8_t *end, scan *s,
                       rec_t *out)
{
    char *base = (char *)out;
    const uint8_t *p = buf;
    while (p < end) {
        wire_field f;
        const uint8_t *next = next_field(p, end, &f);
        if (!next)
            return -1;
        if (f.num - 1u < F_LAST) {
            unsigned kind = fields[f.num].kind;
            if (f.wt != kind_wt[kind])
                return -1;
            if (kind <= K_STR) {
                s->present |= 1u << f.num;
                s->str_off[f.num] = (size_t)(f.data - buf) + f.pref;
                s->str_len[f.num] = f.len - f.pref;
            } else if (kind == K_MAP) {
                if (entry_scan(f.data + f.pref, f.len - f.pref, s) != 0)
                    return -1;
                s->n_attr++;
                if (!s->rest)
                    s->rest = p;
            } else {
                uint64_t v = varint_value(f.data, f.len);
                if (kind <= K_U64) {
                    memcpy(base + fields[f.num].off, &v, sizeof v);
                } else {
                    /* protobuf-c keeps an enum as int32, unchecked. */
                    uint32_t v32 = (uint32_t)v;
                    memcpy(base + fields[f.num].off, &v32, sizeof v32);
                }
            }
        } else {
            s->n_unknown++;
            if (!s->rest)
                s->rest = p;
        }
        p = next;
    }
    return 0;
}

/* ---- pass 2: copy -------------------------------------------------------- */

/* The decoded strings, record_id and unknown-field bytes all point into
 * one copy of the encoding. Each string is terminated by writing a NUL
 * over the byte after it, which is always a tag (of the next field in its
 * message, or of the record's next field after a map entry) or the extra
 * byte past the end: never part of another value, and never read again,
 * since pass 2 walks the caller's buffer. */

static void fill_unknown(ufield_t *u, const wire_field *f, const uint8_t *buf,
                         uint8_t *copy)
{
    u->tag = f->num;
    u->wire_type = (ProtobufCWireType)f->wt;
    u->len = f->len;
    u->data = copy + (f->data - buf);
}

/* Fill one entry from its (checked) encoding at p; *uf is where its
 * unknown fields go, advanced past them. */
static void entry_fill(const uint8_t *p, size_t n, attr_t *e, ufield_t **uf,
                       const uint8_t *buf, uint8_t *copy)
{
    const uint8_t *end = p + n;
    *e = attr_init;
    while (p < end) {
        wire_field f;
        p = next_field(p, end, &f);
        if (!p)
            break; /* cannot happen: entry_scan passed */
        if (f.num == 1 || f.num == 2) {
            char *str = (char *)copy + (f.data - buf) + f.pref;
            str[f.len - f.pref] = '\0';
            if (f.num == 1)
                e->key = str;
            else
                e->value = str;
        } else {
            if (!e->base.unknown_fields)
                e->base.unknown_fields = *uf;
            fill_unknown(&e->base.unknown_fields[e->base.n_unknown_fields++],
                         &f, buf, copy);
        }
    }
    *uf += e->base.n_unknown_fields;
}

int rdec_unpack(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                Logferry__V1__InvocationRecord *out)
{
    scan s;

    *out = rec_init;
    if (len == 0)
        return RDEC_OK;
    /* Keeps the size arithmetic below from overflowing (a record takes at
       most ~17 bytes of memory per byte); far above any frame. */
    if (len > SIZE_MAX / 32)
        return RDEC_ENOMEM;
    const uint8_t *end = buf + len;
    s.present = 0;
    s.n_attr = s.n_unknown = s.n_entry_unknown = 0;
    s.rest = NULL;
    if (record_scan(buf, end, &s, out) != 0) {
        *out = rec_init;
        return RDEC_EMALFORMED;
    }
    if (!s.present && !s.rest)
        return RDEC_OK; /* numbers only */

    size_t n_uf = s.n_unknown + s.n_entry_unknown;
    size_t need = s.n_attr * (sizeof(attr_t *) + sizeof(attr_t)) +
                  n_uf * sizeof(ufield_t) + len + 1;
    char *blk = alloc->alloc(alloc->allocator_data, need);
    if (!blk) {
        *out = rec_init;
        return RDEC_ENOMEM;
    }
    attr_t **arr = (attr_t **)(void *)blk;
    attr_t *ents = (attr_t *)(void *)(arr + s.n_attr);
    ufield_t *uf = (ufield_t *)(void *)(ents + s.n_attr);
    uint8_t *copy = (uint8_t *)(uf + n_uf);
    memcpy(copy, buf, len);
    copy[len] = 0;

    char *base = (char *)out;
    for (uint32_t m = s.present; m; m &= m - 1) {
        unsigned n = (unsigned)__builtin_ctz(m);
        uint8_t *v = copy + s.str_off[n];
        if (n == F_RECORD_ID) {
            /* protobuf-c leaves data NULL for an empty value. */
            if (s.str_len[n]) {
                out->record_id.data = v;
                out->record_id.len = s.str_len[n];
            }
            continue;
        }
        char *str = (char *)v;
        str[s.str_len[n]] = '\0';
        memcpy(base + fields[n].off, &str, sizeof str);
    }
    if (!s.rest)
        return RDEC_OK;

    if (s.n_unknown) {
        out->base.unknown_fields = uf;
        uf += s.n_unknown;
    }
    if (s.n_attr)
        out->attributes = arr;
    /* Entries and unknown fields, in wire order (checked by pass 1). */
    for (const uint8_t *p = s.rest; p < end;) {
        wire_field f;
        p = next_field(p, end, &f);
        if (!p)
            break; /* cannot happen: record_scan passed */
        unsigned kind = f.num <= F_LAST ? fields[f.num].kind : K_UNKNOWN;
        if (kind == K_MAP) {
            attr_t *e = &ents[out->n_attributes];
            entry_fill(f.data + f.pref, f.len - f.pref, e, &uf, buf, copy);
            arr[out->n_attributes++] = e;
        } else if (kind == K_UNKNOWN) {
            fill_unknown(
                &out->base.unknown_fields[out->base.n_unknown_fields++], &f,
                buf, copy);
        }
    }
    return RDEC_OK;
}
