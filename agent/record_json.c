/*
 * record_json.c - InvocationRecord -> JSON, and field access by name.
 *
 * This is on the delivery hot path (every record of every JSON sink goes
 * through it), so it is written by hand: no printf, integers and times
 * formatted with lookup tables, and strings copied in runs, eight bytes at
 * a time while they hold nothing that needs escaping. The output contract
 * is in record_json.h.
 *
 * Output is written through a small cursor (jw) that keeps counting when
 * the destination is full, which is what gives rjson_render() its
 * snprintf-style "needed length" result without a second code path.
 */
#include "record_json.h"

#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- output cursor ---------------------------------------------------- */

/* Writes go to [p, end); what does not fit is only counted in `over`, so
 * the needed length is (p - start) + over whatever cap was. */
typedef struct jw {
    char *p, *end, *start;
    size_t over;
} jw;

static void jw_put_slow(jw *w, const void *s, size_t n)
{
    size_t left = (size_t)(w->end - w->p);
    memcpy(w->p, s, left);
    w->p = w->end;
    w->over += n - left;
}

/* The fast branch copies a compile-time size for literals and keys. */
static inline void jw_put(jw *w, const void *s, size_t n)
{
    if (__builtin_expect((size_t)(w->end - w->p) >= n, 1)) {
        memcpy(w->p, s, n);
        w->p += n;
    } else {
        jw_put_slow(w, s, n);
    }
}

static inline void jw_ch(jw *w, char c)
{
    if (__builtin_expect(w->p < w->end, 1))
        *w->p++ = c;
    else
        w->over++;
}

#define JW_LIT(w, lit) jw_put((w), (lit), sizeof(lit) - 1)

/* ---- numbers ---------------------------------------------------------- */

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Decimal digits of v, right-aligned in out[0..20); returns the index of
 * the first digit. Two digits per division halves the divisions. */
static inline size_t fmt_u64(char out[20], uint64_t v)
{
    size_t i = 20;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        out[--i] = digit_pairs[d + 1];
        out[--i] = digit_pairs[d];
    }
    if (v >= 10) {
        unsigned d = (unsigned)v * 2;
        out[--i] = digit_pairs[d + 1];
        out[--i] = digit_pairs[d];
    } else {
        out[--i] = (char)('0' + v);
    }
    return i;
}

/* Formats a signed value into out[0..21); returns the first index. */
static inline size_t fmt_i64(char out[21], int64_t v)
{
    /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t i = fmt_u64(out + 1, mag) + 1;
    if (v < 0)
        out[--i] = '-';
    return i;
}

static inline void jw_u64(jw *w, uint64_t v)
{
    char tmp[20];
    size_t i = fmt_u64(tmp, v);
    jw_put(w, tmp + i, 20 - i);
}

static inline void jw_i64(jw *w, int64_t v)
{
    char tmp[21];
    size_t i = fmt_i64(tmp, v);
    jw_put(w, tmp + i, 21 - i);
}

/* ---- time ------------------------------------------------------------- */

typedef struct civil {
    int64_t year;
    unsigned month, day, hour, min, sec, ms;
} civil;

/* Split nanoseconds since the epoch into UTC calendar fields. Floor
 * division, so times before 1970 land in the right millisecond; the days
 * to date step is H. Hinnant's civil_from_days (proleptic Gregorian),
 * which is exact over the whole int64 range (years 1677..2262). Written
 * out rather than gmtime_r() because it is branch-light and needs no libc
 * time-zone state. */
static void civil_from_ns(int64_t ns, civil *c)
{
    int64_t secs = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    c->ms = (unsigned)(rem / 1000000);
    c->hour = (unsigned)(sod / 3600);
    c->min = (unsigned)(sod / 60 % 60);
    c->sec = (unsigned)(sod % 60);

    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c->day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    c->month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    c->year = yoe + era * 400 + (c->month <= 2);
}

static inline void put2(char *p, unsigned v)
{
    p[0] = digit_pairs[v * 2];
    p[1] = digit_pairs[v * 2 + 1];
}

#define TIME_LEN 24 /* "2026-11-25T13:28:04.123Z" */

/* "YYYY-MM-DDTHH:MM:SS" of the second last formatted on this thread. */
#define SEC_LEN 19

/* The years int64 nanoseconds can reach all have four digits. */
static void fmt_time(char out[TIME_LEN], int64_t ns)
{
    /* Records mostly come in time order, so consecutive ones share their
       second: the calendar arithmetic is done once per second and thread
       (sinks may render on threads of their own). */
    static _Thread_local int64_t last_sec = INT64_MIN; /* never a second */
    static _Thread_local char last[SEC_LEN];
    int64_t secs = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        secs--;
    }
    unsigned ms = (unsigned)(rem / 1000000);
    if (secs != last_sec) {
        civil c;
        civil_from_ns(ns, &c);
        put2(last, (unsigned)(c.year / 100));
        put2(last + 2, (unsigned)(c.year % 100));
        last[4] = '-';
        put2(last + 5, c.month);
        last[7] = '-';
        put2(last + 8, c.day);
        last[10] = 'T';
        put2(last + 11, c.hour);
        last[13] = ':';
        put2(last + 14, c.min);
        last[16] = ':';
        put2(last + 17, c.sec);
        last_sec = secs;
    }
    memcpy(out, last, SEC_LEN);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    put2(out + 21, ms % 100);
    out[23] = 'Z';
}

/* ---- strings ---------------------------------------------------------- */

/* 1: ASCII that needs escaping ('"', '\\', controls); 2: a non-ASCII
 * byte (validate as UTF-8); 0: copy as is. DEL (0x7f) is legal in JSON. */
/* clang-format off */
static const uint8_t byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};
/* clang-format on */

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Nonzero when some byte of v needs a look: >= 0x80, < 0x20, '"' or '\\'.
 * The "has a zero byte" tests can flag a byte that is fine, but only above
 * (at a higher address than) one that truly needs a look, since a borrow
 * only runs upwards: the lowest flag is exact, so ctz of the result / 8 is
 * the offset of the first byte to look at (little-endian loads). */
static inline uint64_t word_needs_look(uint64_t v)
{
    uint64_t lt20 = (v - ONES * 0x20) & ~v;
    uint64_t q = v ^ (ONES * '"');
    uint64_t bs = v ^ (ONES * '\\');
    uint64_t eq = ((q - ONES) & ~q) | ((bs - ONES) & ~bs);
    return (v | lt20 | eq) & HIGHS;
}

/* Length of the well-formed UTF-8 sequence at p (2..4), or minus the
 * length of its maximal ill-formed subpart (>= 1) to be replaced by one
 * U+FFFD. Second-byte ranges exclude overlongs (E0, F0), surrogates (ED)
 * and code points above U+10FFFF (F4); C0, C1 and F5..FF never start a
 * sequence (RFC 3629, Unicode table 3-7). */
static inline int utf8_seq(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0xC2)
        return -1; /* stray continuation byte or C0/C1 overlong lead */
    if (c < 0xE0) {
        need = 1;
    } else if (c < 0xF0) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    size_t avail = (size_t)(end - p);
    if (avail < 2 || p[1] < lo || p[1] > hi)
        return -1;
    for (int i = 2; i <= need; i++)
        if ((size_t)i >= avail || (p[i] & 0xC0) != 0x80)
            return -i;
    return need + 1;
}

static const char hex_lower[16] = "0123456789abcdef";

/* The escape for an ASCII byte of class 1, into out[0..6); returns its
 * length. */
static inline size_t escape_ascii(char out[6], uint8_t c)
{
    out[0] = '\\';
    switch (c) {
    case '"':
        out[1] = '"';
        return 2;
    case '\\':
        out[1] = '\\';
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    case '\b':
        out[1] = 'b';
        return 2;
    case '\f':
        out[1] = 'f';
        return 2;
    default:
        out[1] = 'u';
        out[2] = '0';
        out[3] = '0';
        out[4] = hex_lower[c >> 4];
        out[5] = hex_lower[c & 15];
        return 6;
    }
}

/* The first byte in [q, end) that needs a look (word_needs_look), or end.
 * Bytes in [p, q) are known to need none: ASCII that is copied as is, or
 * well-formed UTF-8 (p <= q). Strings are short (most under 64 bytes), so
 * the tail matters as much as the loop: fewer than a step's bytes left are
 * checked with one load of the string's last bytes, overlapping ones known
 * clean, instead of a byte loop (which took a quarter of the rendering). */
static inline const uint8_t *skip_clean(const uint8_t *p, const uint8_t *q,
                                        const uint8_t *end)
{
#ifdef __SSE2__
    /* A signed "< 0x20" also catches the bytes >= 0x80: they need a look. */
    const __m128i sp = _mm_set1_epi8(0x20), dq = _mm_set1_epi8('"'),
                  bs = _mm_set1_epi8('\\');
#define NEEDS_LOOK16(v)                                                        \
    ((unsigned)_mm_movemask_epi8(_mm_or_si128(                                 \
        _mm_cmplt_epi8((v), sp),                                               \
        _mm_or_si128(_mm_cmpeq_epi8((v), dq), _mm_cmpeq_epi8((v), bs)))))
    while (end - q >= 16) {
        unsigned m = NEEDS_LOOK16(_mm_loadu_si128((const void *)q));
        if (m)
            return q + __builtin_ctz(m);
        q += 16;
    }
    if (q < end && end - p >= 16) {
        unsigned k = 16 - (unsigned)(end - q); /* leading bytes known clean */
        unsigned m = NEEDS_LOOK16(_mm_loadu_si128((const void *)(end - 16))) &
                     (~0u << k);
        return m ? end - 16 + __builtin_ctz(m) : end;
    }
#undef NEEDS_LOOK16
#endif
    while (end - q >= 8) {
        uint64_t v;
        memcpy(&v, q, 8);
        uint64_t m = word_needs_look(v);
        if (m)
            return q + (__builtin_ctzll(m) >> 3);
        q += 8;
    }
    if (q < end && end - p >= 8) {
        /* Bytes known clean cause no borrow: masking their flags off
           leaves exact ones. */
        size_t k = 8 - (size_t)(end - q);
        uint64_t v;
        memcpy(&v, end - 8, 8);
        uint64_t m = word_needs_look(v) & (~0ull << (8 * k));
        return m ? end - 8 + (__builtin_ctzll(m) >> 3) : end;
    }
    while (q < end && byte_class[*q] == 0)
        q++;
    return q;
}

/* Length of the run at p that needs no change: plain ASCII and well-formed
 * UTF-8. *bad is set to the length of an ill-formed subpart found at the
 * end of the run (0 if the run ends at an ASCII escape or at `end`). */
static inline size_t clean_run(const uint8_t *p, const uint8_t *end, int *bad)
{
    const uint8_t *q = p;
    *bad = 0;
    for (;;) {
        q = skip_clean(p, q, end);
        if (q == end || byte_class[*q] == 1)
            return (size_t)(q - p);
        int seq = utf8_seq(q, end);
        if (seq < 0) {
            *bad = -seq;
            return (size_t)(q - p);
        }
        q += seq;
    }
}

/* Append the escaped body of s[0..n) (no quotes). Runs are copied with
 * one memcpy each; the loop stops only for an escape or an ill-formed
 * sequence. When the worst case (6 output bytes per input byte) fits, it
 * writes without bounds checks; otherwise every write goes through the
 * counting cursor. */
static void jw_str_body(jw *w, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s, *end = p + n;
    char esc[6];
    int bad;

    if (n <= SIZE_MAX / 6 && (size_t)(w->end - w->p) >= 6 * n) {
        char *o = w->p;
        while (p < end) {
            size_t run = clean_run(p, end, &bad);
            memcpy(o, p, run);
            o += run;
            p += run;
            if (p == end)
                break;
            if (bad) {
                memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
                o += 3;
                p += bad;
            } else {
                size_t k = escape_ascii(esc, *p++);
                memcpy(o, esc, k);
                o += k;
            }
        }
        w->p = o;
        return;
    }
    while (p < end) {
        size_t run = clean_run(p, end, &bad);
        jw_put(w, p, run);
        p += run;
        if (p == end)
            break;
        if (bad) {
            JW_LIT(w, "\xEF\xBF\xBD");
            p += bad;
        } else {
            jw_put(w, esc, escape_ascii(esc, *p++));
        }
    }
}

static inline void jw_str(jw *w, const char *s, size_t n)
{
    jw_ch(w, '"');
    jw_str_body(w, s, n);
    jw_ch(w, '"');
}

static inline void jw_cstr(jw *w, const char *s)
{
    jw_str(w, s, strlen(s));
}

/* ---- the record ------------------------------------------------------- */

static const char *const status_names[] = {
    "unspecified", "ok",        "error",    "throttled",
    "timeout",     "cancelled", "filtered",
};
#define N_STATUS (sizeof status_names / sizeof status_names[0])

static inline const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* `key` is the literal ",\"name\":"; with the opening quote appended it
 * costs one fixed-size copy. */
#define JW_STR_FIELD(w, key, s)                                                \
    do {                                                                       \
        const char *s_ = (s);                                                  \
        if (s_ && s_[0]) {                                                     \
            JW_LIT(w, key "\"");                                               \
            jw_str_body(w, s_, strlen(s_));                                    \
            jw_ch(w, '"');                                                     \
        }                                                                      \
    } while (0)

#define JW_U64_FIELD(w, key, v)                                                \
    do {                                                                       \
        uint64_t v_ = (v);                                                     \
        if (v_) {                                                              \
            JW_LIT(w, key);                                                    \
            jw_u64(w, v_);                                                     \
        }                                                                      \
    } while (0)

typedef struct attr_ref {
    const char *k, *v;
    size_t i; /* position in the record, to keep the last of duplicates */
} attr_ref;

static int attr_cmp(const void *a, const void *b)
{
    const attr_ref *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    if (c)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Up to this many attributes are sorted on the stack with insertion sort
 * (the common case: a handful); more go through qsort on the heap. */
#define ATTR_STACK 32

static void jw_attributes(jw *w, const Logferry__V1__InvocationRecord *r)
{
    attr_ref stack[ATTR_STACK], *a = stack;
    size_t m = 0;
    if (r->n_attributes > ATTR_STACK) {
        a = malloc(r->n_attributes * sizeof *a);
        /* Out of memory: still render every attribute, just unsorted and
           without folding duplicates; the JSON stays valid. */
    }
    if (a) {
        for (size_t i = 0; i < r->n_attributes; i++) {
            const Logferry__V1__InvocationRecord__AttributesEntry *e =
                r->attributes[i];
            if (!e)
                continue;
            a[m].k = str_or_empty(e->key);
            a[m].v = str_or_empty(e->value);
            a[m].i = i;
            m++;
        }
        if (m > ATTR_STACK) {
            qsort(a, m, sizeof *a, attr_cmp);
        } else {
            for (size_t i = 1; i < m; i++) {
                attr_ref t = a[i];
                size_t j = i;
                while (j > 0 && attr_cmp(&a[j - 1], &t) > 0) {
                    a[j] = a[j - 1];
                    j--;
                }
                a[j] = t;
            }
        }
        if (m == 0)
            goto out;
        JW_LIT(w, ",\"attributes\":{");
        int first = 1;
        for (size_t i = 0; i < m; i++) {
            if (i + 1 < m && strcmp(a[i].k, a[i + 1].k) == 0)
                continue; /* a later entry with this key wins */
            if (!first)
                jw_ch(w, ',');
            first = 0;
            jw_cstr(w, a[i].k);
            jw_ch(w, ':');
            jw_cstr(w, a[i].v);
        }
        jw_ch(w, '}');
    } else {
        int first = 1;
        for (size_t i = 0; i < r->n_attributes; i++) {
            const Logferry__V1__InvocationRecord__AttributesEntry *e =
                r->attributes[i];
            if (!e)
                continue;
            JW_LIT(w, first ? ",\"attributes\":{" : ",");
            first = 0;
            jw_cstr(w, str_or_empty(e->key));
            jw_ch(w, ':');
            jw_cstr(w, str_or_empty(e->value));
        }
        if (!first)
            jw_ch(w, '}');
    }
out:
    if (a != stack)
        free(a);
}

static void jw_hex(jw *w, const uint8_t *p, size_t n)
{
    char tmp[64];
    while (n) {
        size_t k = n < sizeof tmp / 2 ? n : sizeof tmp / 2;
        for (size_t i = 0; i < k; i++) {
            tmp[2 * i] = hex_lower[p[i] >> 4];
            tmp[2 * i + 1] = hex_lower[p[i] & 15];
        }
        jw_put(w, tmp, 2 * k);
        p += k;
        n -= k;
    }
}

size_t rjson_render(const Logferry__V1__InvocationRecord *r, char *dst,
                    size_t cap)
{
    char dummy;
    /* cap 0 (dst may be NULL): measure only, through an empty window. */
    char *start = cap ? dst : &dummy;
    jw w = {start, start + (cap ? cap - 1 : 0), start, 0};
    char t[TIME_LEN];

    fmt_time(t, r->event_time_ns);
    JW_LIT(&w, "{\"time\":\"");
    jw_put(&w, t, TIME_LEN);
    JW_LIT(&w, "\",\"record_id\":\"");
    jw_hex(&w, r->record_id.data, r->record_id.data ? r->record_id.len : 0);
    JW_LIT(&w, "\",\"event_time_ns\":");
    jw_i64(&w, r->event_time_ns);
    JW_STR_FIELD(&w, ",\"tenant_id\":", r->tenant_id);
    JW_STR_FIELD(&w, ",\"account_id\":", r->account_id);
    JW_STR_FIELD(&w, ",\"app\":", r->app);
    JW_STR_FIELD(&w, ",\"region\":", r->region);
    JW_STR_FIELD(&w, ",\"model_id\":", r->model_id);
    JW_STR_FIELD(&w, ",\"operation\":", r->operation);
    JW_U64_FIELD(&w, ",\"input_tokens\":", r->input_tokens);
    JW_U64_FIELD(&w, ",\"output_tokens\":", r->output_tokens);
    JW_U64_FIELD(&w, ",\"cache_read_tokens\":", r->cache_read_tokens);
    JW_U64_FIELD(&w, ",\"cache_write_tokens\":", r->cache_write_tokens);
    JW_U64_FIELD(&w, ",\"latency_ms\":", r->latency_ms);
    JW_U64_FIELD(&w, ",\"time_to_first_token_ms\":", r->time_to_first_token_ms);
    if (r->status != 0) {
        /* The enum is open in proto3: a newer writer may send a value this
           build has no name for; keep it as a number rather than lose it. */
        int st = (int)r->status;
        JW_LIT(&w, ",\"status\":");
        if (st > 0 && (size_t)st < N_STATUS) {
            jw_cstr(&w, status_names[st]);
        } else {
            jw_i64(&w, st);
        }
    }
    JW_STR_FIELD(&w, ",\"error_type\":", r->error_type);
    JW_STR_FIELD(&w, ",\"error_message\":", r->error_message);
    JW_STR_FIELD(&w, ",\"request_id\":", r->request_id);
    JW_STR_FIELD(&w, ",\"trace_id\":", r->trace_id);
    JW_STR_FIELD(&w, ",\"session_id\":", r->session_id);
    JW_STR_FIELD(&w, ",\"prompt_text\":", r->prompt_text);
    JW_STR_FIELD(&w, ",\"completion_text\":", r->completion_text);
    if (r->n_attributes)
        jw_attributes(&w, r);
    jw_ch(&w, '}');

    if (cap)
        *w.p = '\0'; /* p <= end = dst + cap - 1 */
    return (size_t)(w.p - w.start) + w.over;
}

size_t rjson_render_alloc(const Logferry__V1__InvocationRecord *r, char **buf,
                          size_t *cap, size_t max_len)
{
    size_t n = rjson_render(r, *buf, *cap);
    if (n < *cap)
        return n;
    if (n > max_len || n == SIZE_MAX)
        return (size_t)-1;
    char *nb = realloc(*buf, n + 1);
    if (!nb)
        return (size_t)-1;
    *buf = nb;
    *cap = n + 1;
    return rjson_render(r, *buf, *cap);
}

/* ---- field access ----------------------------------------------------- */

typedef enum fkind {
    F_STR,
    F_U64,
    F_U32,
    F_I64,
    F_RID,
    F_STATUS,
    F_TIME,
    F_DATE,
    F_HOUR,
} fkind;

typedef struct field_def {
    const char *name;
    uint8_t len;
    uint8_t kind;
    uint16_t off;
} field_def;

#define FD(n, k, member)                                                       \
    {                                                                          \
        n, sizeof(n) - 1, k, offsetof(Logferry__V1__InvocationRecord, member)  \
    }
#define FD_DERIVED(n, k)                                                       \
    {                                                                          \
        n, sizeof(n) - 1, k, 0                                                 \
    }

/* Scalar schema fields, then the derived ones. Compared by length first,
 * so a lookup costs a few integer compares and one memcmp. */
static const field_def fields[] = {
    FD("record_id", F_RID, record_id),
    FD("event_time_ns", F_I64, event_time_ns),
    FD("tenant_id", F_STR, tenant_id),
    FD("account_id", F_STR, account_id),
    FD("app", F_STR, app),
    FD("region", F_STR, region),
    FD("model_id", F_STR, model_id),
    FD("operation", F_STR, operation),
    FD("input_tokens", F_U64, input_tokens),
    FD("output_tokens", F_U64, output_tokens),
    FD("cache_read_tokens", F_U64, cache_read_tokens),
    FD("cache_write_tokens", F_U64, cache_write_tokens),
    FD("latency_ms", F_U32, latency_ms),
    FD("time_to_first_token_ms", F_U32, time_to_first_token_ms),
    FD("status", F_STATUS, status),
    FD("error_type", F_STR, error_type),
    FD("error_message", F_STR, error_message),
    FD("request_id", F_STR, request_id),
    FD("trace_id", F_STR, trace_id),
    FD("session_id", F_STR, session_id),
    FD("prompt_text", F_STR, prompt_text),
    FD("completion_text", F_STR, completion_text),
    FD_DERIVED("time", F_TIME),
    FD_DERIVED("date", F_DATE),
    FD_DERIVED("hour", F_HOUR),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

#define ATTR_PREFIX "attributes."
#define ATTR_PREFIX_LEN (sizeof(ATTR_PREFIX) - 1)

static const field_def *field_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].len == len && memcmp(fields[i].name, name, len) == 0)
            return &fields[i];
    return NULL;
}

int rjson_field_known(const char *name)
{
    if (!name)
        return 0;
    size_t len = strlen(name);
    if (len > ATTR_PREFIX_LEN &&
        memcmp(name, ATTR_PREFIX, ATTR_PREFIX_LEN) == 0)
        return 1;
    return field_find(name, len) != NULL;
}

/* Copy src into scratch, cut to fit; *out always gets a NUL-terminated
 * string. */
static size_t to_scratch(const char *src, size_t n, char *scratch, size_t cap,
                         const char **out)
{
    if (cap == 0) {
        *out = "";
        return 0;
    }
    if (n > cap - 1)
        n = cap - 1;
    memcpy(scratch, src, n);
    scratch[n] = '\0';
    *out = scratch;
    return n;
}

size_t rjson_field(const Logferry__V1__InvocationRecord *r, const char *name,
                   char *scratch, size_t scratch_cap, const char **out)
{
    size_t len = strlen(name);

    if (len > ATTR_PREFIX_LEN &&
        memcmp(name, ATTR_PREFIX, ATTR_PREFIX_LEN) == 0) {
        const char *key = name + ATTR_PREFIX_LEN, *val = "";
        for (size_t i = 0; i < r->n_attributes; i++) {
            const Logferry__V1__InvocationRecord__AttributesEntry *e =
                r->attributes[i];
            if (e && strcmp(str_or_empty(e->key), key) == 0)
                val = str_or_empty(e->value); /* keep going: last wins */
        }
        *out = val;
        return strlen(val);
    }

    const field_def *f = field_find(name, len);
    if (!f)
        return (size_t)-1;

    const char *base = (const char *)r + f->off;
    char tmp[64];
    size_t i;
    switch ((fkind)f->kind) {
    case F_STR: {
        const char *s;
        memcpy(&s, base, sizeof s);
        *out = str_or_empty(s);
        return strlen(*out);
    }
    case F_U64: {
        uint64_t v;
        memcpy(&v, base, sizeof v);
        i = fmt_u64(tmp, v);
        return to_scratch(tmp + i, 20 - i, scratch, scratch_cap, out);
    }
    case F_U32: {
        uint32_t v;
        memcpy(&v, base, sizeof v);
        i = fmt_u64(tmp, v);
        return to_scratch(tmp + i, 20 - i, scratch, scratch_cap, out);
    }
    case F_I64: {
        int64_t v;
        memcpy(&v, base, sizeof v);
        i = fmt_i64(tmp, v);
        return to_scratch(tmp + i, 21 - i, scratch, scratch_cap, out);
    }
    case F_STATUS: {
        int st = (int)r->status;
        if (st >= 0 && (size_t)st < N_STATUS) {
            *out = status_names[st];
            return strlen(*out);
        }
        i = fmt_i64(tmp, st);
        return to_scratch(tmp + i, 21 - i, scratch, scratch_cap, out);
    }
    case F_RID: {
        /* Hex straight into scratch, whole bytes only. */
        size_t n = r->record_id.data ? r->record_id.len : 0;
        if (scratch_cap == 0) {
            *out = "";
            return 0;
        }
        if (n > (scratch_cap - 1) / 2)
            n = (scratch_cap - 1) / 2;
        for (i = 0; i < n; i++) {
            scratch[2 * i] = hex_lower[r->record_id.data[i] >> 4];
            scratch[2 * i + 1] = hex_lower[r->record_id.data[i] & 15];
        }
        scratch[2 * n] = '\0';
        *out = scratch;
        return 2 * n;
    }
    case F_TIME:
    case F_DATE:
    case F_HOUR:
        fmt_time(tmp, r->event_time_ns);
        if (f->kind == F_TIME)
            return to_scratch(tmp, TIME_LEN, scratch, scratch_cap, out);
        if (f->kind == F_DATE)
            return to_scratch(tmp, 10, scratch, scratch_cap, out);
        return to_scratch(tmp + 11, 2, scratch, scratch_cap, out);
    }
    return (size_t)-1;
}
