/*
 * cwl_json.c - JSON string writing for the cloudwatch sink.
 *
 * Request bodies carry each record's JSON as a JSON string, so the
 * escaping here is on the hot path (cwl_json_str_utf8(), 16 bytes at a
 * time where the CPU has SSSE3). Names and field values come from records as
 * raw bytes, so cwl_json_str() also repairs invalid UTF-8.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <tmmintrin.h>
#endif

static const char hexd[] = "0123456789abcdef";

/* Escape one byte below 0x20, or '"' / '\\'; dst holds 6 bytes. */
static size_t esc_byte(unsigned char c, char *dst)
{
    switch (c) {
    case '"':
        return memcpy(dst, "\\\"", 2), 2;
    case '\\':
        return memcpy(dst, "\\\\", 2), 2;
    case '\n':
        return memcpy(dst, "\\n", 2), 2;
    case '\r':
        return memcpy(dst, "\\r", 2), 2;
    case '\t':
        return memcpy(dst, "\\t", 2), 2;
    default:
        memcpy(dst, "\\u00", 4);
        dst[4] = hexd[c >> 4];
        dst[5] = hexd[c & 15];
        return 6;
    }
}

/* 1 for the bytes JSON needs escaped inside a string: '"', '\\' and the
 * controls. */
static const unsigned char needs_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1,
};

/* Escape s[j] (a byte needs_esc marks) at o; returns the new end. The
 * caller reserved 2 bytes for it, and 6 only when it is a control byte
 * (see below). */
static char *esc_at(char *o, unsigned char c)
{
    if (c == '"' || c == '\\') {
        o[0] = '\\';
        o[1] = (char)c;
        return o + 2;
    }
    return o + esc_byte(c, o);
}

#if defined(__x86_64__) || defined(__i386__)
#define CWL_HAVE_SSSE3 1
/* For a mask of the 8 bytes of a half-block that need a backslash (bit
 * i: byte i): the pshufb control that spreads the 8 bytes over 8 +
 * popcount(mask) output bytes, leaving a hole (0x80 reads as 0) before
 * each flagged byte, and the backslashes to OR into the holes. Filled
 * once, when the module is loaded. */
static uint8_t esc_shuf[256][16], esc_bsl[256][16], esc_len[256];
static int esc_ssse3; /* set once, before any thread runs */

__attribute__((constructor)) static void esc_tables(void)
{
    __builtin_cpu_init(); /* required before cpu_supports in a constructor */
    esc_ssse3 = __builtin_cpu_supports("ssse3") != 0;
    for (int m = 0; m < 256; m++) {
        int p = 0;
        memset(esc_shuf[m], 0x80, 16);
        for (int i = 0; i < 8; i++) {
            if (m >> i & 1)
                esc_bsl[m][p++] = '\\';
            esc_shuf[m][p++] = (uint8_t)i;
        }
        esc_len[m] = (uint8_t)p; /* a table: no popcnt in the base ISA */
    }
}

/* Escape whole 16-byte blocks of s[*i..n) into *o while they hold no
 * control byte: a block without '"' or '\\' is stored as is; one with
 * some becomes two shuffled halves. Stops at the first block with a
 * control byte, or with fewer than 16 bytes left. Each store writes 16
 * bytes: the caller reserved 16 past the longest output. */
__attribute__((target("ssse3"))) static void esc_blocks(const char *s, size_t n,
                                                        size_t *ip, char **op)
{
    size_t i = *ip;
    char *o = *op;
    const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
                  lo = _mm_set1_epi8(0x1f);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, lo), v);
        if (_mm_movemask_epi8(ctl))
            break;
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)));
        if (!m) {
            _mm_storeu_si128((__m128i *)(void *)o, v);
            o += 16;
            i += 16;
            continue;
        }
        unsigned m0 = m & 0xff, m1 = m >> 8;
        __m128i a = _mm_or_si128(
            _mm_shuffle_epi8(v, _mm_loadu_si128((const void *)esc_shuf[m0])),
            _mm_loadu_si128((const void *)esc_bsl[m0]));
        _mm_storeu_si128((__m128i *)(void *)o, a);
        o += esc_len[m0];
        __m128i h = _mm_srli_si128(v, 8);
        __m128i c = _mm_or_si128(
            _mm_shuffle_epi8(h, _mm_loadu_si128((const void *)esc_shuf[m1])),
            _mm_loadu_si128((const void *)esc_bsl[m1]));
        _mm_storeu_si128((__m128i *)(void *)o, c);
        o += esc_len[m1];
        i += 16;
    }
    *ip = i;
    *op = o;
}
#endif

/* The sink's hottest loop: every byte of every message goes through it,
 * and record JSON has a quote every few bytes, so scanning for runs and
 * copying them (one memcpy per run) was slow. On a typical 660-byte record
 * (microbenchmark, data in cache): runs with memcpy 540 ns, a byte loop
 * 410 ns, SSE2 blocks that stop at each quote 345 ns, SSSE3 blocks that
 * shuffle the backslashes in (esc_blocks) 185 ns. Where the CPU has no
 * SSSE3, the byte loop. Escaped text is at most twice as long unless it
 * holds control bytes (6 each), which host->to_json output never does:
 * reserve 2n (+16 for the whole-block stores) once, and more only when a
 * control byte shows up. */
int cwl_json_str_utf8(sbuf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX / 2 - 32 || sbuf_reserve(b, 2 * n + 2 + 16) != 0)
        return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    size_t i = 0;
    for (;;) {
#ifdef CWL_HAVE_SSSE3
        if (esc_ssse3)
            esc_blocks(s, n, &i, &o);
#endif
        /* The tail, or one block with a control byte. */
        size_t stop = n - i > 16 ? i + 16 : n;
        while (i < stop) {
            unsigned char c = (unsigned char)s[i++];
            if (!needs_esc[c]) {
                *o++ = (char)c;
                continue;
            }
            if (c < 0x20) {
                b->len = (size_t)(o - b->p);
                if (sbuf_reserve(b, 6 + 2 * (n - i) + 1 + 16) != 0)
                    return -1;
                o = b->p + b->len;
            }
            o = esc_at(o, c);
        }
        if (i >= n)
            break;
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->p);
    return 0;
}

char *cwl_fmt_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *out++ = '-';
    while (n)
        *out++ = tmp[--n];
    return out;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid
 * (overlongs, surrogates, > U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

int cwl_json_str(sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (sbuf_put(b, "\"", 1) != 0)
        return -1;
    size_t i = 0;
    while (i < n) {
        char tmp[6];
        if (u[i] < 0x20 || u[i] == '"' || u[i] == '\\') {
            if (sbuf_put(b, tmp, esc_byte(u[i], tmp)) != 0)
                return -1;
            i++;
            continue;
        }
        size_t len = utf8_seq(u + i, n - i);
        if (len == 0) {
            if (sbuf_put(b, "\xEF\xBF\xBD", 3) != 0)
                return -1;
            i++;
            continue;
        }
        if (sbuf_put(b, s + i, len) != 0)
            return -1;
        i += len;
    }
    return sbuf_put(b, "\"", 1);
}

size_t cwl_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t cut = max;
    /* Back off continuation bytes, then drop the lead byte whose sequence
       would be cut short. */
    size_t back = 0;
    while (cut > 0 && back < 3 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
        cut--;
        back++;
    }
    return cut;
}
