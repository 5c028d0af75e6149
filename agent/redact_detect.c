/*
 * redact_detect.c - the built-in detectors of the redaction engine.
 *
 * One pass over the text. Each byte is looked up once in a table that says
 * which detectors may start there; most prose bytes start none, or are not
 * at a word start, and cost nothing more. At a candidate position the
 * detectors for that byte are tried in a fixed order and the first match
 * wins; the scan then resumes after it. "aws_secret" is the exception: it
 * is anchored on the keyword "secret", found with memmem() before the main
 * pass.
 *
 * Word starts: a detector that begins with a letter or a digit only starts
 * where the previous byte is not [A-Za-z0-9_], as \b would say, so
 * "v1.2.3.4", "abc4111111111111111" or "task-1234" never start a match in
 * the middle of a word. Bytes >= 0x80 are not word bytes, so any Unicode
 * text around a value is a boundary.
 *
 * Linear time: every detector reads a bounded number of bytes from its
 * start (caps below), except those that measure a token run; the runs of
 * [A-Za-z0-9_-] are memoised (tok_end), so a run is measured once however
 * many starts it holds ("sk-a-sk-a-sk-a-..."). The other runs measured
 * (alphanumeric after "ghp_", token68 after "Bearer ") hold no further
 * start positions.
 */
#include "redact_detect.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte classes ---------------------------------------------------------
 */

enum {
    C_WORD = 1u << 0,   /* [A-Za-z0-9_] */
    C_DIGIT = 1u << 1,  /* [0-9] */
    C_HEX = 1u << 2,    /* [0-9A-Fa-f] */
    C_UPPER = 1u << 3,  /* [A-Z] */
    C_LOWER = 1u << 4,  /* [a-z] */
    C_LOCAL = 1u << 5,  /* e-mail local part: [A-Za-z0-9._%+-] */
    C_DOMAIN = 1u << 6, /* domain label: [A-Za-z0-9-] */
    C_TOK = 1u << 7,    /* base64url and API tokens: [A-Za-z0-9_-] */
    C_B64 = 1u << 8,    /* base64: [A-Za-z0-9+/] */
    C_T68 = 1u << 9,    /* RFC 6750 token68: [A-Za-z0-9-._~+/] */
    C_ALNUM = 1u << 10, /* [A-Za-z0-9] */
};

/* tab: C_* classes of each byte. trig[pw][c]: REDACT_DET_BIT()s of the
 * detectors that may start at byte c when the previous byte is (pw = 1)
 * or is not (pw = 0) a word byte; everything but '@' needs pw = 0. The
 * scan does one trig load per byte and branches only on a candidate, so
 * the branch is rarely taken and well predicted. */
static uint32_t tab[256];
static uint16_t trig[2][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

#define CL(c) (tab[(unsigned char)(c)])
#define DBIT(d) REDACT_DET_BIT(d)

static void tab_init(void)
{
    for (int c = 0; c < 256; c++) {
        uint32_t k = 0;
        int up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z';
        int dg = c >= '0' && c <= '9';
        int hx = dg || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (up || lo || dg) {
            k |= C_ALNUM | C_WORD | C_LOCAL | C_DOMAIN | C_TOK | C_B64 | C_T68;
        }
        k |= up ? C_UPPER : 0;
        k |= lo ? C_LOWER : 0;
        k |= dg ? C_DIGIT : 0;
        k |= hx ? C_HEX : 0;
        if (c == '_')
            k |= C_WORD | C_LOCAL | C_TOK | C_T68;
        if (c == '-')
            k |= C_LOCAL | C_DOMAIN | C_TOK | C_T68;
        if (c == '.')
            k |= C_LOCAL | C_T68;
        if (c == '%')
            k |= C_LOCAL;
        if (c == '+')
            k |= C_LOCAL | C_B64 | C_T68;
        if (c == '/')
            k |= C_B64 | C_T68;
        if (c == '~')
            k |= C_T68;

        uint32_t t = 0;
        if (dg) {
            t |= DBIT(REDACT_DET_CARD) | DBIT(REDACT_DET_SSN) |
                 DBIT(REDACT_DET_PHONE) | DBIT(REDACT_DET_IPV4) |
                 DBIT(REDACT_DET_IPV6);
        }
        if (hx || c == ':')
            t |= DBIT(REDACT_DET_IPV6);
        if (c == '@')
            t |= DBIT(REDACT_DET_EMAIL);
        if (c == '+' || c == '(')
            t |= DBIT(REDACT_DET_PHONE);
        if (c == 'A')
            t |= DBIT(REDACT_DET_AWS_KEY_ID) | DBIT(REDACT_DET_API_TOKEN);
        if (c == 's' || c == 'g' || c == 'x')
            t |= DBIT(REDACT_DET_API_TOKEN);
        if (c == 'b' || c == 'B')
            t |= DBIT(REDACT_DET_BEARER);
        if (c == 'e')
            t |= DBIT(REDACT_DET_JWT);
        tab[c] = k;
        trig[0][c] = (uint16_t)t;
        trig[1][c] = (uint16_t)(c == '@' ? t : 0);
    }
}

/* ---- spans ------------------------------------------------------------- */

int redact_spans_push(redact_spans *sp, size_t start, size_t end,
                      unsigned label)
{
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 16;
        redact_span *v = realloc(sp->v, cap * sizeof *v);
        if (!v)
            return -1;
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->n++] = (redact_span){start, end, label};
    return 0;
}

static int span_cmp(const void *a, const void *b)
{
    const redact_span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

void redact_spans_normalize(redact_spans *sp)
{
    if (sp->n < 2)
        return;
    /* Spans mostly arrive in order; check before sorting. */
    for (size_t i = 1; i < sp->n; i++) {
        if (sp->v[i].start < sp->v[i - 1].start) {
            qsort(sp->v, sp->n, sizeof *sp->v, span_cmp);
            break;
        }
    }
    size_t o = 0;
    for (size_t i = 1; i < sp->n; i++) {
        if (sp->v[i].start < sp->v[o].end) {
            if (sp->v[i].end > sp->v[o].end)
                sp->v[o].end = sp->v[i].end;
        } else {
            sp->v[++o] = sp->v[i];
        }
    }
    sp->n = o + 1;
}

void redact_spans_free(redact_spans *sp)
{
    free(sp->v);
    *sp = (redact_spans){0};
}

/* ---- scan state and helpers -----------------------------------------------
 */

#define NONE ((size_t)-1)

/* Memo of recently measured [A-Za-z0-9_-] runs: [start, end) and the last
 * digit or capital letter in it (NONE if none). Three slots: a JWT needs
 * three runs. */
typedef struct tok_memo {
    size_t start, end, last_du;
} tok_memo;

typedef struct scan {
    const char *s;
    size_t n;
    tok_memo m[3];
    unsigned next;
} scan;

/* End of the [A-Za-z0-9_-] run starting at or containing i (i itself when
 * s[i] is not in the class), and in *ld the last digit or capital letter
 * of that run at or after its measured start (NONE if none). */
static size_t tok_end(scan *sc, size_t i, size_t *ld)
{
    for (int k = 0; k < 3; k++) {
        if (i >= sc->m[k].start && i < sc->m[k].end) {
            *ld = sc->m[k].last_du;
            return sc->m[k].end;
        }
    }
    size_t e = i, last = NONE;
    while (e < sc->n && (CL(sc->s[e]) & C_TOK)) {
        if (CL(sc->s[e]) & (C_DIGIT | C_UPPER))
            last = e;
        e++;
    }
    if (e > i) {
        sc->m[sc->next] = (tok_memo){i, e, last};
        sc->next = (sc->next + 1) % 3;
    }
    *ld = last;
    return e;
}

static inline int is_digit_at(const scan *sc, size_t i)
{
    return i < sc->n && (CL(sc->s[i]) & C_DIGIT);
}

static inline int is_word_at(const scan *sc, size_t i)
{
    return i < sc->n && (CL(sc->s[i]) & C_WORD);
}

/* Three (four) digits at i. */
static int digits_at(const scan *sc, size_t i, size_t k)
{
    if (i > sc->n || sc->n - i < k)
        return 0;
    for (size_t j = 0; j < k; j++)
        if (!(CL(sc->s[i + j]) & C_DIGIT))
            return 0;
    return 1;
}

static unsigned num_at(const char *s, size_t k)
{
    unsigned v = 0;
    for (size_t j = 0; j < k; j++)
        v = v * 10 + (unsigned)(s[j] - '0');
    return v;
}

/* A number ends cleanly at e: end of text, or a byte that is neither a
 * word byte nor '.'/'-' followed by a digit (which would make it part of
 * a longer dotted or dashed number). */
static int num_end_ok(const scan *sc, size_t e)
{
    if (e >= sc->n)
        return 1;
    char c = sc->s[e];
    if (CL(c) & C_WORD)
        return 0;
    if ((c == '.' || c == '-') && is_digit_at(sc, e + 1))
        return 0;
    return 1;
}

/* A number starting at i is not the tail of a dotted or dashed number. */
static int num_start_ok(const scan *sc, size_t i)
{
    if (i < 2)
        return 1;
    char c = sc->s[i - 1];
    return !((c == '.' || c == '-') && (CL(sc->s[i - 2]) & C_DIGIT));
}

static inline int is_phone_sep(char c)
{
    return c == ' ' || c == '-' || c == '.';
}

/* ---- e-mail ----------------------------------------------------------------
 */

#define EMAIL_LOCAL_MAX 256
#define EMAIL_DOMAIN_MAX 253

/* Latin letters outside ASCII (U+00C0-U+024F but for U+00D7 and U+00F7)
 * as a 2-byte UTF-8 sequence. They count as letters of the local part and
 * of domain labels, so an internationalised address (jürgen@münchen.de)
 * is masked whole. Other non-ASCII text (CJK, quotes, arrows) is a
 * boundary. */
static int latin2(unsigned char a, unsigned char b)
{
    if ((b & 0xC0) != 0x80)
        return 0;
    if (a == 0xC3)
        return b != 0x97 && b != 0xB7;
    return a >= 0xC4 && a <= 0xC9;
}

/* At '@': local part [A-Za-z0-9._%+-] (and Latin letters) back from the
 * '@', up to 256 bytes, not starting with '.'; domain of labels
 * [A-Za-z0-9-] (and Latin letters) joined by '.', at most 253 bytes, at
 * least two labels, ending in a TLD of two or more ASCII letters; trailing
 * '.' and '-' are not part of it ("mail a@b.com."). */
static size_t det_email(scan *sc, size_t at, size_t *ms)
{
    const char *s = sc->s;
    size_t n = sc->n;
    size_t lim = at > EMAIL_LOCAL_MAX ? at - EMAIL_LOCAL_MAX : 0;
    size_t b = at;
    while (b > lim) {
        unsigned char c = (unsigned char)s[b - 1];
        if (CL(c) & C_LOCAL) {
            b--;
        } else if (b - 1 > lim && latin2((unsigned char)s[b - 2], c)) {
            b -= 2;
        } else {
            break;
        }
    }
    while (b < at && s[b] == '.')
        b++;
    if (b == at)
        return 0;

    size_t p = at + 1;
    size_t dlim = n - p > EMAIL_DOMAIN_MAX ? p + EMAIL_DOMAIN_MAX : n;
    size_t e = p;
    while (e < dlim) {
        unsigned char c = (unsigned char)s[e];
        if ((CL(c) & C_DOMAIN) || c == '.') {
            e++;
        } else if (e + 1 < dlim && latin2(c, (unsigned char)s[e + 1])) {
            e += 2;
        } else {
            break;
        }
    }
    while (e > p && (s[e - 1] == '.' || s[e - 1] == '-'))
        e--;
    if (e == p || s[p] == '.' || s[p] == '-')
        return 0;
    size_t t = e;
    while (t > p && s[t - 1] != '.')
        t--;
    if (t == p || t - 1 == p || s[t - 2] == '.')
        return 0; /* no dot, or an empty label before the TLD */
    if (e - t < 2)
        return 0;
    for (size_t j = t; j < e; j++)
        if (!(CL(s[j]) & (C_UPPER | C_LOWER)))
            return 0;
    *ms = b;
    return e;
}

/* ---- payment cards
 * ----------------------------------------------------------- */

static int luhn_ok(const unsigned char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned v = d[n - 1 - k];
        if (k & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* 13-19 digits, contiguous or in groups joined by one ' ' or one '-' (the
 * same one throughout), first digit 2-6 (Visa, Mastercard, Amex, Discover,
 * Diners, JCB, UnionPay, Maestro; this also rules out epoch timestamps in
 * ms/us/ns, which start with 1), passing the Luhn check. A match ends at a
 * group end: "4111 1111 1111 1111 2027" yields the card without the year.
 * The longest valid candidate wins. */
static size_t det_card(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n;
    if (!num_start_ok(sc, i) || s[i] < '2' || s[i] > '6')
        return 0;
    unsigned char d[19];
    size_t nd = 0, ends[19], cnt[19];
    int ng = 0;
    char sep = 0;
    size_t p = i;
    for (;;) {
        size_t q = p;
        while (q < n && (CL(s[q]) & C_DIGIT) && q - p <= 19)
            q++;
        size_t g = q - p;
        if (nd + g > 19 || is_word_at(sc, q))
            break;
        if (q + 1 < n && s[q] == '.' && is_digit_at(sc, q + 1))
            break;
        for (size_t k = 0; k < g; k++)
            d[nd++] = (unsigned char)(s[p + k] - '0');
        ends[ng] = q;
        cnt[ng] = nd;
        ng++;
        if (q + 1 < n && (s[q] == ' ' || s[q] == '-') &&
            is_digit_at(sc, q + 1) && (!sep || s[q] == sep)) {
            sep = s[q];
            p = q + 1;
            continue;
        }
        break;
    }
    for (int k = ng - 1; k >= 0; k--)
        if (cnt[k] >= 13 && luhn_ok(d, cnt[k]))
            return ends[k];
    return 0;
}

/* ---- US social security numbers ---------------------------------------------
 */

/* AAA-GG-SSSS or AAA GG SSSS (not contiguous: nine bare digits are too
 * often something else). Never issued, so not matched: area 000, 666 and
 * 900-999, group 00, serial 0000. */
static size_t det_ssn(scan *sc, size_t i)
{
    const char *s = sc->s;
    if (sc->n - i < 11)
        return 0;
    char sep = s[i + 3];
    if ((sep != '-' && sep != ' ') || s[i + 6] != sep)
        return 0;
    if (!digits_at(sc, i, 3) || !digits_at(sc, i + 4, 2) ||
        !digits_at(sc, i + 7, 4))
        return 0;
    size_t e = i + 11;
    if (!num_end_ok(sc, e) || !num_start_ok(sc, i))
        return 0;
    if (sep == ' ' &&
        ((e + 1 < sc->n && s[e] == ' ' && is_digit_at(sc, e + 1)) ||
         (i >= 2 && s[i - 1] == ' ' && is_digit_at(sc, i - 2))))
        return 0; /* part of a longer space-grouped number */
    unsigned area = num_at(s + i, 3), group = num_at(s + i + 4, 2),
             serial = num_at(s + i + 7, 4);
    if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
        return 0;
    return e;
}

/* ---- phone numbers
 * ------------------------------------------------------------ */

/* NANP with separators: [1<sep>] (AAA)[ -]EEE<sep>NNNN or
 * AAA<sep>EEE<sep>NNNN, sep one of ' ', '-', '.', dots all or none; area
 * and exchange start with 2-9. Ten bare digits are not matched (order
 * numbers). */
static size_t det_nanp(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n, p = i, area;
    char s1 = 0;
    if (!num_start_ok(sc, i))
        return 0;
    if (s[p] == '1' && p + 2 < n && is_phone_sep(s[p + 1]) &&
        (s[p + 2] == '(' || is_digit_at(sc, p + 2)))
        p += 2;
    if (p < n && s[p] == '(') {
        if (!digits_at(sc, p + 1, 3) || p + 4 >= n || s[p + 4] != ')')
            return 0;
        area = p + 1;
        p += 5;
        if (p < n && (s[p] == ' ' || s[p] == '-'))
            p++;
    } else {
        if (!digits_at(sc, p, 3) || p + 3 >= n || !is_phone_sep(s[p + 3]))
            return 0;
        area = p;
        s1 = s[p + 3];
        p += 4;
    }
    if (s[area] < '2' || !digits_at(sc, p, 3) || s[p] < '2')
        return 0;
    p += 3;
    if (p >= n || !is_phone_sep(s[p]))
        return 0;
    char s2 = s[p++];
    if (s1 && (s1 == '.') != (s2 == '.'))
        return 0;
    if (!digits_at(sc, p, 4))
        return 0;
    p += 4;
    return num_end_ok(sc, p) ? p : 0;
}

/* International with a plus: '+', a first digit 1-9, then digit groups
 * joined by one ' ', '-' or '.', or parenthesised groups ("+44 (0)20 ...");
 * 8 to 15 digits in all (E.164 allows 15). The longest prefix ending at a
 * group end with 8-15 digits wins. */
static size_t det_e164(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n, p = i + 1, best = 0;
    unsigned nd = 0;
    if (p >= n || s[p] < '1' || s[p] > '9')
        return 0;
    for (int g = 0; g < 16; g++) {
        size_t q = p;
        int paren = s[q] == '(';
        q += (size_t)paren;
        size_t g0 = q;
        while (q < n && (CL(s[q]) & C_DIGIT) && q - g0 < 16)
            q++;
        size_t len = q - g0;
        if (!len)
            break;
        if (paren) {
            if (q >= n || s[q] != ')')
                break;
            q++;
        }
        if (nd + len > 15 ||
            (is_word_at(sc, q) && !(paren && is_digit_at(sc, q))))
            break;
        nd += (unsigned)len;
        p = q;
        if (nd >= 8)
            best = p;
        if (p + 1 < n && is_phone_sep(s[p]) &&
            (is_digit_at(sc, p + 1) || s[p + 1] == '(')) {
            p++;
            continue;
        }
        if (paren && is_digit_at(sc, p))
            continue;
        break;
    }
    return best;
}

/* ---- IP addresses
 * --------------------------------------------------------------- */

/* Dotted quad at p: four decimal octets 0-255 without leading zeros.
 * Returns the end, or 0. No boundary checks. */
static size_t parse_ipv4(const scan *sc, size_t p)
{
    const char *s = sc->s;
    for (int k = 0; k < 4; k++) {
        if (k) {
            if (p >= sc->n || s[p] != '.')
                return 0;
            p++;
        }
        size_t q = p;
        while (q < sc->n && (CL(s[q]) & C_DIGIT) && q - p < 4)
            q++;
        size_t len = q - p;
        if (len == 0 || len > 3 || (len > 1 && s[p] == '0') ||
            num_at(s + p, len) > 255)
            return 0;
        p = q;
    }
    return p;
}

/* Not inside a longer dotted number on either side (so "1.2.3.4.5" and
 * the tail of "v10.1.2.3.4" are not addresses). Preceded by a letter it
 * is not a word start: "v1.2.3.4" is a version. One more version form is
 * excluded: a product token "Name/N.0.0.0", which is how browsers have
 * reported their version since the user-agent reduction
 * ("Chrome/124.0.0.0"); a network address x.0.0.0 after a word and a
 * slash is worth little. */
static size_t det_ipv4(scan *sc, size_t i)
{
    if (!num_start_ok(sc, i))
        return 0;
    size_t e = parse_ipv4(sc, i);
    if (!e || !num_end_ok(sc, e))
        return 0;
    if (i >= 2 && sc->s[i - 1] == '/' &&
        (CL(sc->s[i - 2]) & (C_UPPER | C_LOWER)) && e - i >= 7 &&
        memcmp(sc->s + e - 6, ".0.0.0", 6) == 0)
        return 0;
    return e;
}

/* Full form (eight groups of 1-4 hex digits) or compressed with one "::",
 * optionally ending in a dotted quad; upper or lower case. Compressed
 * forms are common look-alikes in code ("std::max", "a[1::2]"), so one is
 * taken only if it is "::1", ends in a dotted quad, or has a group of
 * three or more hex digits and a decimal digit somewhere ("fe80::1",
 * "2001:db8::", not "dead::beef" or "10::20"). A zone ("%eth0") is left
 * out of the span. */
static size_t det_ipv6(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n, p = i;
    int groups = 0, dc = -1, has_digit = 0, long_group = 0, v4 = 0;
    if (i > 0 && (s[i - 1] == ':' || s[i - 1] == '.') &&
        (i < 2 || (CL(s[i - 2]) & C_HEX)))
        return 0; /* inside "10:30:00" or a dotted number */
    if (s[p] == ':') {
        if (p + 1 >= n || s[p + 1] != ':')
            return 0;
        dc = 0;
        p += 2;
    }
    for (;;) {
        size_t h = 0;
        int dig = 0;
        while (p + h < n && h < 5 && (CL(s[p + h]) & C_HEX)) {
            dig |= (CL(s[p + h]) & C_DIGIT) != 0;
            h++;
        }
        if (h == 0)
            break;
        if (h > 4)
            return 0;
        if (p + h < n && s[p + h] == '.' && is_digit_at(sc, p + h + 1) &&
            groups <= 6) {
            size_t e = parse_ipv4(sc, p);
            if (!e)
                return 0;
            groups += 2;
            v4 = 1;
            p = e;
            break;
        }
        groups++;
        has_digit |= dig;
        long_group |= h >= 3;
        p += h;
        if (groups > 8)
            return 0;
        if (p + 1 < n && s[p] == ':' && s[p + 1] == ':') {
            if (dc >= 0)
                return 0;
            dc = groups;
            p += 2;
            continue;
        }
        if (p + 1 < n && s[p] == ':' && (CL(s[p + 1]) & C_HEX)) {
            p++;
            continue;
        }
        break;
    }
    if (dc < 0 ? groups != 8 : groups > 7)
        return 0;
    if (dc >= 0 && !v4 && !(long_group && has_digit) &&
        !(dc == 0 && groups == 1 && p - i == 3 && s[i + 2] == '1'))
        return 0;
    if (is_word_at(sc, p) ||
        (p < n && s[p] == ':' && p + 1 < n && s[p + 1] == ':'))
        return 0;
    if (p + 1 < n && s[p] == '.' && is_digit_at(sc, p + 1))
        return 0;
    return p;
}

/* ---- AWS
 * --------------------------------------------------------------------- */

/* AKIA/ASIA (and ABIA/ACCA) followed by 16 of [A-Z0-9], as one word. */
static size_t det_aws_key_id(scan *sc, size_t i)
{
    const char *s = sc->s;
    if (sc->n - i < 20)
        return 0;
    if (memcmp(s + i, "AKIA", 4) && memcmp(s + i, "ASIA", 4) &&
        memcmp(s + i, "ABIA", 4) && memcmp(s + i, "ACCA", 4))
        return 0;
    for (size_t k = 4; k < 20; k++)
        if (!(CL(s[i + k]) & (C_UPPER | C_DIGIT)))
            return 0;
    return is_word_at(sc, i + 20) ? 0 : i + 20;
}

#define SECRET_WINDOW 48

/* A secret access key is 40 base64 characters; alone that is any SHA-1
 * hex digest or path, so it is taken only within 48 bytes after the word
 * "secret" ("secret", "Secret", "SECRET": aws_secret_access_key,
 * SecretAccessKey, AWS_SECRET_ACCESS_KEY), as a whole run of [A-Za-z0-9+/]
 * not followed by '=', holding both upper and lower case letters (which a
 * hex digest does not). */
static int det_aws_secret(scan *sc, redact_spans *out)
{
    static const char *const kw[2] = {"ecret", "ECRET"};
    const char *s = sc->s;
    size_t n = sc->n;
    for (int k = 0; k < 2; k++) {
        size_t from = 1;
        while (from + 5 <= n) {
            /* Search at most 512 bytes at a time: same result, but a memmem
               wrapper that checks its whole haystack (sanitizers) stays
               linear too. */
            size_t chunk = n - from > 512 ? from + 512 : n;
            const char *hit = memmem(s + from, chunk - from, kw[k], 5);
            if (!hit) {
                if (chunk == n)
                    break;
                from = chunk - 4;
                continue;
            }
            size_t h = (size_t)(hit - s);
            from = h + 5;
            if ((s[h - 1] | 0x20) != 's')
                continue;
            size_t lim = n - from > SECRET_WINDOW ? from + SECRET_WINDOW : n;
            for (size_t q = from; q < lim; q++) {
                if (!(CL(s[q]) & C_B64) || (CL(s[q - 1]) & C_B64))
                    continue;
                size_t e = q;
                uint32_t seen = 0;
                while (e < n && (CL(s[e]) & C_B64) && e - q <= 40)
                    seen |= CL(s[e++]);
                if (e - q == 40 && (e == n || s[e] != '=') &&
                    (seen & C_UPPER) && (seen & C_LOWER)) {
                    if (redact_spans_push(out, q, e, REDACT_DET_AWS_SECRET))
                        return -1;
                    from = e;
                    break;
                }
            }
        }
    }
    return 0;
}

/* ---- tokens
 * ----------------------------------------------------------------------- */

/* "Bearer" (any case) as a word, one or more spaces or tabs, then an RFC
 * 6750 token68 of 8+ characters holding a digit, or of 20+ characters
 * (so "bearer of bad news" is prose). The span is the token only. */
static size_t det_bearer(scan *sc, size_t i, size_t *ms)
{
    const char *s = sc->s;
    size_t n = sc->n;
    static const char kw[] = "bearer";
    if (n - i < 8)
        return 0;
    for (size_t k = 0; k < 6; k++)
        if ((s[i + k] | 0x20) != kw[k])
            return 0;
    size_t p = i + 6, sp = p;
    while (p < n && p - sp < 8 && (s[p] == ' ' || s[p] == '\t'))
        p++;
    if (p == sp)
        return 0;
    size_t t = p;
    uint32_t seen = 0;
    while (p < n && (CL(s[p]) & C_T68))
        seen |= CL(s[p++]);
    while (p < n && s[p] == '=')
        p++;
    size_t len = p - t;
    if (!((len >= 8 && (seen & C_DIGIT)) || len >= 20))
        return 0;
    *ms = t;
    return p;
}

static int in_set(char c, const char *set)
{
    return c && strchr(set, c) != NULL;
}

/* Vendor API tokens, each a whole run:
 *   sk-[A-Za-z0-9_-]{20,} holding a digit or a capital letter (OpenAI
 *     sk-, sk-proj-; Anthropic sk-ant-; not "sk-some-kebab-case-name");
 *   gh[posur]_[A-Za-z0-9]{30,} and github_pat_[A-Za-z0-9_]{22,} (GitHub);
 *   xox[bpares]-[A-Za-z0-9_-]{10,} (Slack);
 *   AIza[A-Za-z0-9_-]{35,} (Google API keys). */
static size_t det_api_token(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n, left = n - i, e, ld;
    switch (s[i]) {
    case 's':
        if (left > 3 && s[i + 1] == 'k' && s[i + 2] == '-') {
            e = tok_end(sc, i, &ld);
            if (e - i >= 23 && ld != NONE && ld >= i + 3)
                return e;
        }
        return 0;
    case 'g':
        if (left > 4 && s[i + 1] == 'h' && in_set(s[i + 2], "posur") &&
            s[i + 3] == '_') {
            e = i + 4;
            while (e < n && (CL(s[e]) & C_ALNUM))
                e++;
            return e - i >= 34 && !is_word_at(sc, e) ? e : 0;
        }
        if (left > 11 && memcmp(s + i, "github_pat_", 11) == 0) {
            e = i + 11;
            while (e < n && (CL(s[e]) & C_WORD))
                e++;
            return e - i >= 33 ? e : 0;
        }
        return 0;
    case 'x':
        if (left > 5 && s[i + 1] == 'o' && s[i + 2] == 'x' &&
            in_set(s[i + 3], "bpares") && s[i + 4] == '-') {
            e = tok_end(sc, i, &ld);
            return e - i >= 15 ? e : 0;
        }
        return 0;
    case 'A':
        if (left > 4 && memcmp(s + i, "AIza", 4) == 0) {
            e = tok_end(sc, i, &ld);
            return e - i >= 39 ? e : 0;
        }
        return 0;
    }
    return 0;
}

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* The last byte that the unpadded base64url text p[0, n) decodes to, or
 * -1 if n is not a possible length. */
static int b64url_last(const char *p, size_t n)
{
    int v[4];
    size_t r = n % 4, q = r ? r : 4;
    if (n < 2 || r == 1)
        return -1;
    for (size_t k = 0; k < q; k++)
        if ((v[k] = b64url_val(p[n - q + k])) < 0)
            return -1;
    if (r == 2)
        return (v[0] << 2 | v[1] >> 4) & 0xFF;
    if (r == 3)
        return ((v[1] & 15) << 4 | v[2] >> 2) & 0xFF;
    return ((v[2] & 3) << 6 | v[3]) & 0xFF;
}

/* A JWS: a header of 15+ characters that is base64url of a JSON object
 * (starts "eyJ", i.e. '{"', and decodes to a last byte '}'), '.', a
 * payload of 2+, '.', a signature (possibly empty: alg "none"); a JWE's
 * five segments are taken whole. */
static size_t det_jwt(scan *sc, size_t i)
{
    const char *s = sc->s;
    size_t n = sc->n, ld;
    if (n - i < 3 || memcmp(s + i, "eyJ", 3))
        return 0;
    size_t e = tok_end(sc, i, &ld);
    if (e - i < 15 || e >= n || s[e] != '.' || b64url_last(s + i, e - i) != '}')
        return 0;
    size_t e2 = tok_end(sc, e + 1, &ld);
    if (e2 - (e + 1) < 2 || e2 >= n || s[e2] != '.')
        return 0;
    size_t end = tok_end(sc, e2 + 1, &ld);
    for (int k = 3;
         k < 5 && end + 1 < n && s[end] == '.' && (CL(s[end + 1]) & C_TOK); k++)
        end = tok_end(sc, end + 1, &ld);
    return end;
}

/* ---- the scan
 * --------------------------------------------------------------------- */

/* Try the detectors in `t` (a subset of trig[pw][s[i]] & mask) at i; on a
 * match return its end and set *ms to its start and *label. */
static size_t try_at(scan *sc, size_t i, uint32_t t, size_t *ms,
                     unsigned *label)
{
    const char *s = sc->s;
    size_t n = sc->n, e;
    unsigned char c = (unsigned char)s[i];
    *ms = i;
#define TRY(det, expr)                                                         \
    do {                                                                       \
        if ((t & DBIT(det)) && (e = (expr)) != 0) {                            \
            *label = (det);                                                    \
            return e;                                                          \
        }                                                                      \
    } while (0)

    switch (c) {
    case '@':
        TRY(REDACT_DET_EMAIL, det_email(sc, i, ms));
        return 0;
    case '+':
        TRY(REDACT_DET_PHONE, det_e164(sc, i));
        return 0;
    case '(':
        TRY(REDACT_DET_PHONE, det_nanp(sc, i));
        return 0;
    case ':':
        if (i > 0 && s[i - 1] == ':')
            return 0;
        TRY(REDACT_DET_IPV6, det_ipv6(sc, i));
        return 0;
    }

    /* A word start. IPv6 first: its groups start with digits or letters,
     * and only it has a ':' within five bytes. */
    if (t & DBIT(REDACT_DET_IPV6)) {
        size_t h = 0;
        while (i + h < n && h < 5 && (CL(s[i + h]) & C_HEX))
            h++;
        if (h <= 4 && i + h < n && s[i + h] == ':')
            TRY(REDACT_DET_IPV6, det_ipv6(sc, i));
    }
    if (CL(c) & C_DIGIT) {
        size_t d = 0;
        while (i + d < n && (CL(s[i + d]) & C_DIGIT) && d < 20)
            d++;
        char nx = i + d < n ? s[i + d] : 0;
        if (d <= 3 && nx == '.')
            TRY(REDACT_DET_IPV4, det_ipv4(sc, i));
        if (d == 3 && (nx == '-' || nx == ' '))
            TRY(REDACT_DET_SSN, det_ssn(sc, i));
        if ((d == 3 || (d == 1 && c == '1')) && is_phone_sep(nx))
            TRY(REDACT_DET_PHONE, det_nanp(sc, i));
        if (d >= 13 || ((nx == ' ' || nx == '-') && is_digit_at(sc, i + d + 1)))
            TRY(REDACT_DET_CARD, det_card(sc, i));
        return 0;
    }
    if (c == 'b' || c == 'B')
        TRY(REDACT_DET_BEARER, det_bearer(sc, i, ms));
    if (c == 'e')
        TRY(REDACT_DET_JWT, det_jwt(sc, i));
    if (c == 'A')
        TRY(REDACT_DET_AWS_KEY_ID, det_aws_key_id(sc, i));
    TRY(REDACT_DET_API_TOKEN, det_api_token(sc, i));
    return 0;
#undef TRY
}

int redact_detect(const char *text, size_t len, uint32_t mask,
                  redact_spans *out)
{
    pthread_once(&tab_once, tab_init);
    scan sc = {.s = text, .n = len};
    for (int k = 0; k < 3; k++)
        sc.m[k] = (tok_memo){NONE, NONE, NONE};
    mask &= REDACT_DET_ALL;
    if ((mask & DBIT(REDACT_DET_AWS_SECRET)) && det_aws_secret(&sc, out))
        return -1;
    mask &= ~DBIT(REDACT_DET_AWS_SECRET);
    if (!mask)
        return 0;

    const unsigned char *u = (const unsigned char *)text;
    unsigned pw = 0; /* the previous byte is a word byte */
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        uint32_t t = trig[pw][c] & mask;
        pw = tab[c] & C_WORD;
        if (__builtin_expect(!t, 1)) {
            i++;
            continue;
        }
        size_t ms;
        unsigned label = 0;
        size_t e = try_at(&sc, i, t, &ms, &label);
        if (e) {
            if (redact_spans_push(out, ms, e, label))
                return -1;
            i = e;
            pw = tab[u[e - 1]] & C_WORD;
        } else {
            i++;
        }
    }
    return 0;
}
