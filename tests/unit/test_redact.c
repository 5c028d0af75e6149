/*
 * test_redact.c - the redaction engine (agent/redact.h) and its detectors.
 *
 *   - tests/data/redact/detect_vectors.txt: hand-picked edge cases, one per
 *     line, each run through a mask rule;
 *   - recall: for every detector a corpus built here from random but valid
 *     values (seeded, so reproducible) in 20 contexts: start, middle, end,
 *     punctuation, JSON, several lines, Unicode text around, upper and
 *     lower case. Structured detectors must find 100%;
 *   - false positives: a corpus of PII-free look-alikes (order numbers,
 *     timestamps, versions, UUIDs, digests, prices, code, ...). The rate
 *     per detector is printed and held under the bound documented in
 *     docs/REDACTION.md;
 *   - the actions, hashing with key files, UTF-8 safe truncation,
 *     attributes, rule errors, records without text, 1 MiB and
 *     adversarial inputs in bounded time, fail-closed, threads.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "redact.h"
#include "redact_detect.h"

typedef Logferry__V1__InvocationRecord rec_t;
typedef Logferry__V1__InvocationRecord__AttributesEntry attr_t;

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *pick(const char *const *v, size_t n)
{
    return v[rn((unsigned)n)];
}
#define PICK(arr) pick((arr), sizeof(arr) / sizeof((arr)[0]))

static void rand_from(char *out, size_t n, const char *alphabet)
{
    size_t a = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rn((unsigned)a)];
    out[n] = '\0';
}

static const char ALNUM[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char HEXL[] = "0123456789abcdef";
static const char DIG[] = "0123456789";

static void b64url(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = B64URL[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = B64URL[v & 63];
    }
    out[o] = '\0';
}

static redact_rules *compile1(const redact_rule_spec *sp)
{
    char err[512];
    redact_rules *r = redact_compile(sp, 1, err, sizeof err);
    ck_assert_msg(r != NULL, "compile: %s", err);
    return r;
}

static char *tmp_key_file(const char *content, size_t len)
{
    static int seq;
    char *path = malloc(128);
    snprintf(path, 128, "/tmp/lf_redact_key_%d_%d", (int)getpid(), seq++);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(content, 1, len, f), len);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- data-driven vectors
 * ----------------------------------------------------- */

static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

START_TEST(test_vectors)
{
    char path[512];
    snprintf(path, sizeof path, "%s/redact/detect_vectors.txt", LF_TEST_DATA);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s", path);
    redact_scratch *s = redact_scratch_new();
    char line[4096];
    int lineno = 0, cases = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *dets = line, *in = strchr(line, '\t');
        ck_assert_msg(in != NULL, "line %d: no input", lineno);
        *in++ = '\0';
        char *exp = strchr(in, '\t');
        ck_assert_msg(exp != NULL, "line %d: no expected", lineno);
        *exp++ = '\0';
        unescape(in);
        unescape(exp);
        uint32_t mask = 0;
        for (char *sv, *t = strtok_r(dets, ",", &sv); t;
             t = strtok_r(NULL, ",", &sv))
            ck_assert_msg(redact_detector_parse(t, &mask) == 0,
                          "line %d: detector %s", lineno, t);
        const char *field = "prompt_text";
        redact_rule_spec sp = {.fields = &field,
                               .n_fields = 1,
                               .action = REDACT_MASK,
                               .detect = mask,
                               .mask_token = "[{type}]"};
        redact_rules *r = compile1(&sp);
        const char *out;
        size_t on;
        int rc =
            redact_string(r, s, "prompt_text", in, strlen(in), &out, &on, NULL);
        const char *want = strcmp(exp, "-") == 0 ? in : exp;
        if (rc < 0 || on != strlen(want) || memcmp(out, want, on) != 0) {
            fprintf(stderr, "%s:%d: %s\n  in:   %s\n  got:  %.*s\n  want: %s\n",
                    path, lineno, dets, in, (int)on, out, want);
            bad++;
        }
        cases++;
        redact_rules_free(r);
    }
    fclose(f);
    redact_scratch_free(s);
    printf("detect_vectors: %d cases, %d failed\n", cases, bad);
    ck_assert_int_gt(cases, 100);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* ---- corpus: PII generators
 * --------------------------------------------------- */

/* One generated value: `pre` is context the detector needs and that is
 * not sensitive ("Bearer ", "aws_secret_access_key = "), `pii` the value
 * that must be covered by a span. */
typedef struct item {
    char pre[64];
    char pii[1100];
    int outside_grammar; /* phone formats the detector does not claim */
} item;

static void luhn_fix(char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t k = 1; k < n; k++) {
        unsigned v = (unsigned)(d[n - 1 - k] - '0');
        if (k & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    d[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

static void gen_email(item *it)
{
    static const char *const first[] = {
        "john",   "Ann",    "marie-claire", "o.brien",   "x",
        "jürgen", "li_wei", "ZOË",          "test.user", "a1b2"};
    static const char *const sep[] = {".", "_", "", "-", "+tag."};
    static const char *const dom[] = {
        "example.com",     "mail.example.co.uk", "sub-domain.example.org",
        "EXAMPLE.COM",     "münchen.de",         "xn--mnchen-3ya.de",
        "corp.example.io", "gmail.com",          "a.b.c.d.example.museum"};
    char local[96];
    snprintf(local, sizeof local, "%s%s%s%u", PICK(first), PICK(sep),
             rn(2) ? "doe" : "Smith", rn(100));
    if (rn(4) == 0)
        for (char *p = local; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
    snprintf(it->pii, sizeof it->pii, "%s@%s", local, PICK(dom));
}

static void gen_card(item *it)
{
    static const struct {
        const char *prefix;
        int len;
    } nets[] = {{"4", 16},    {"4", 13},    {"4", 19},    {"51", 16},
                {"55", 16},   {"2221", 16}, {"2720", 16}, {"34", 15},
                {"37", 15},   {"6011", 16}, {"65", 16},   {"36", 14},
                {"3528", 16}, {"62", 17},   {"62", 19},   {"6759", 18}};
    int k = (int)rn(sizeof nets / sizeof nets[0]);
    char d[20];
    size_t pl = strlen(nets[k].prefix), n = (size_t)nets[k].len;
    memcpy(d, nets[k].prefix, pl);
    rand_from(d + pl, n - pl, DIG);
    luhn_fix(d, n);
    int fmt = (int)rn(3);
    char sepc = fmt == 1 ? ' ' : '-';
    size_t o = 0;
    if (fmt == 0) {
        memcpy(it->pii, d, n);
        o = n;
    } else if (n == 15) { /* Amex 4-6-5 */
        for (size_t i = 0; i < n; i++) {
            if (i == 4 || i == 10)
                it->pii[o++] = sepc;
            it->pii[o++] = d[i];
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i && i % 4 == 0)
                it->pii[o++] = sepc;
            it->pii[o++] = d[i];
        }
    }
    it->pii[o] = '\0';
}

static void gen_ssn(item *it)
{
    unsigned area;
    do
        area = 1 + rn(899);
    while (area == 666);
    char sep = rn(3) ? '-' : ' ';
    snprintf(it->pii, sizeof it->pii, "%03u%c%02u%c%04u", area, sep, 1 + rn(99),
             sep, 1 + rn(9999));
}

static void gen_phone(item *it)
{
    unsigned a = 200 + rn(800), x = 200 + rn(800), l = rn(10000);
    switch (rn(17)) {
    case 0:
        snprintf(it->pii, sizeof it->pii, "+1 %u %u %04u", a, x, l);
        break;
    case 1:
        snprintf(it->pii, sizeof it->pii, "+1%u%u%04u", a, x, l);
        break;
    case 2:
        snprintf(it->pii, sizeof it->pii, "+1-%u-%u-%04u", a, x, l);
        break;
    case 3:
        snprintf(it->pii, sizeof it->pii, "+44 20 %04u %04u", rn(10000), l);
        break;
    case 4:
        snprintf(it->pii, sizeof it->pii, "+33 %u %02u %02u %02u %02u",
                 1 + rn(9), rn(100), rn(100), rn(100), rn(100));
        break;
    case 5:
        snprintf(it->pii, sizeof it->pii, "+49 30 %07u", rn(10000000));
        break;
    case 6:
        snprintf(it->pii, sizeof it->pii, "+81 3-%04u-%04u", rn(10000), l);
        break;
    case 7:
        snprintf(it->pii, sizeof it->pii, "+44 (0)20 %04u %04u", rn(10000), l);
        break;
    case 8:
        snprintf(it->pii, sizeof it->pii, "+91 %05u %05u", 90000 + rn(10000),
                 rn(100000));
        break;
    case 9:
        snprintf(it->pii, sizeof it->pii, "(%u) %u-%04u", a, x, l);
        break;
    case 10:
        snprintf(it->pii, sizeof it->pii, "%u-%u-%04u", a, x, l);
        break;
    case 11:
        snprintf(it->pii, sizeof it->pii, "%u.%u.%04u", a, x, l);
        break;
    case 12:
        snprintf(it->pii, sizeof it->pii, "%u %u %04u", a, x, l);
        break;
    case 13:
        snprintf(it->pii, sizeof it->pii, "1-%u-%u-%04u", a, x, l);
        break;
    case 14:
        snprintf(it->pii, sizeof it->pii, "1 (%u) %u-%04u", a, x, l);
        break;
    case 15: /* national formats without a plus: not claimed */
        snprintf(it->pii, sizeof it->pii, "020 %04u %04u", rn(10000), l);
        it->outside_grammar = 1;
        break;
    default:
        snprintf(it->pii, sizeof it->pii, "%u%u%04u", a, x, l);
        it->outside_grammar = 1;
        break;
    }
}

static void gen_ipv4(item *it)
{
    switch (rn(5)) {
    case 0:
        snprintf(it->pii, sizeof it->pii, "10.%u.%u.%u", rn(256), rn(256),
                 rn(256));
        break;
    case 1:
        snprintf(it->pii, sizeof it->pii, "192.168.%u.%u", rn(256), rn(256));
        break;
    case 2:
        strcpy(it->pii, rn(2) ? "0.0.0.0" : "255.255.255.255");
        break;
    default:
        snprintf(it->pii, sizeof it->pii, "%u.%u.%u.%u", rn(256), rn(256),
                 rn(256), rn(256));
    }
}

static void gen_ipv6(item *it)
{
    static const unsigned prefixes[] = {0x2001, 0x2400, 0x2600, 0x2a00, 0x2a03,
                                        0xfe80, 0xfd00, 0xfc12, 0x2406, 0x2804};
    unsigned g[8];
    int upper = rn(3) == 0;
    int kind = (int)rn(6);
    if (kind == 0) {
        strcpy(it->pii, "::1");
        return;
    }
    if (kind == 1) {
        snprintf(it->pii, sizeof it->pii, "::ffff:%u.%u.%u.%u", rn(256),
                 rn(256), rn(256), rn(256));
        return;
    }
    g[0] = prefixes[rn(sizeof prefixes / sizeof prefixes[0])];
    for (int i = 1; i < 8; i++)
        g[i] = rn(4) == 0 ? rn(256) : rn(65536);
    int zs = -1, zl = 0;
    if (kind >= 3) { /* a run of zeros, compressed as RFC 5952 says */
        zs = 1 + (int)rn(6);
        zl = 2 + (int)rn((unsigned)(8 - zs - 1));
        if (zs + zl > 8)
            zl = 8 - zs;
        for (int i = zs; i < zs + zl; i++)
            g[i] = 0;
    }
    char *o = it->pii;
    o[0] = '\0';
    for (int i = 0; i < 8; i++) {
        if (i == zs) {
            strcat(o, "::");
            i += zl - 1;
            continue;
        }
        char grp[8];
        snprintf(grp, sizeof grp, upper ? "%X" : "%x", g[i]);
        if (kind == 2 && rn(2)) /* full form with leading zeros */
            snprintf(grp, sizeof grp, upper ? "%04X" : "%04x", g[i]);
        size_t l = strlen(o);
        if (l && o[l - 1] != ':')
            strcat(o, ":");
        strcat(o, grp);
    }
}

static void gen_aws_key_id(item *it)
{
    char rest[17];
    rand_from(rest, 16,
              rn(2) ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
                    : "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    snprintf(it->pii, sizeof it->pii, "%s%s", rn(2) ? "AKIA" : "ASIA", rest);
}

static void gen_aws_secret(item *it)
{
    static const char *const pre[] = {"aws_secret_access_key = ",
                                      "AWS_SECRET_ACCESS_KEY=",
                                      "\"SecretAccessKey\": \"",
                                      "secret_key: ",
                                      "export AWS_SECRET_ACCESS_KEY=\"",
                                      "SECRET=",
                                      "client secret is "};
    snprintf(it->pre, sizeof it->pre, "%s", PICK(pre));
    rand_from(it->pii, 40, B64);
}

static void gen_bearer(item *it)
{
    static const char *const kw[] = {"Authorization: Bearer ", "bearer ",
                                     "BEARER\t", "Bearer  "};
    snprintf(it->pre, sizeof it->pre, "%s", PICK(kw));
    switch (rn(3)) {
    case 0:
        rand_from(it->pii, 20 + rn(40), B64URL);
        break;
    case 1: { /* Google-style "ya29." access token */
        char t[160];
        rand_from(t, 100 + rn(60), B64URL);
        snprintf(it->pii, sizeof it->pii, "ya29.%s", t);
        break;
    }
    default: {
        char t[40];
        rand_from(t, 32, HEXL);
        snprintf(it->pii, sizeof it->pii, "%s", t);
    }
    }
}

static void gen_api_token(item *it)
{
    char a[200], b[200];
    switch (rn(9)) {
    case 0:
        rand_from(a, 48, ALNUM);
        snprintf(it->pii, sizeof it->pii, "sk-%s", a);
        break;
    case 1:
        rand_from(a, 100 + rn(60), B64URL);
        snprintf(it->pii, sizeof it->pii, "sk-proj-%s", a);
        break;
    case 2:
        rand_from(a, 93, B64URL);
        snprintf(it->pii, sizeof it->pii, "sk-ant-api03-%sAA", a);
        break;
    case 3: {
        static const char *const gh[] = {"ghp_", "gho_", "ghs_", "ghu_",
                                         "ghr_"};
        rand_from(a, 36, ALNUM);
        snprintf(it->pii, sizeof it->pii, "%s%s", PICK(gh), a);
        break;
    }
    case 4:
        rand_from(a, 22, ALNUM);
        rand_from(b, 59, ALNUM);
        snprintf(it->pii, sizeof it->pii, "github_pat_%s_%s", a, b);
        break;
    case 5: {
        static const char *const sl[] = {"xoxb", "xoxp", "xoxa", "xoxr"};
        rand_from(a, 24, ALNUM);
        snprintf(it->pii, sizeof it->pii, "%s-%u%08u-%u%09u-%s", PICK(sl),
                 1 + rn(9), rn(100000000), 1 + rn(9), rn(1000000000), a);
        break;
    }
    case 6:
        rand_from(a, 35, B64URL);
        snprintf(it->pii, sizeof it->pii, "AIza%s", a);
        break;
    case 7:
        rand_from(a, 24, ALNUM);
        snprintf(it->pii, sizeof it->pii, "xoxa-2-%s", a);
        break;
    default:
        rand_from(a, 32, ALNUM);
        snprintf(it->pii, sizeof it->pii, "sk-%s", a);
        break;
    }
}

static void gen_jwt(item *it)
{
    static const char *const hdr[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                      "{\"alg\":\"RS256\",\"kid\":\"%s\"}",
                                      "{\"typ\":\"JWT\",\"alg\":\"ES256\"}",
                                      "{\"alg\":\"none\"}"};
    char h[128], p[256], kid[17], hb[200], pb[400], sig[400];
    const char *hf = PICK(hdr);
    rand_from(kid, 16, ALNUM);
    snprintf(h, sizeof h, hf, kid);
    snprintf(p, sizeof p,
             "{\"sub\":\"%u\",\"name\":\"User %u\",\"iat\":%u,\"email\":"
             "\"u%u@example.com\"}",
             rn(1000000), rn(1000), 1700000000 + rn(10000000), rn(1000));
    b64url((const unsigned char *)h, strlen(h), hb);
    b64url((const unsigned char *)p, strlen(p), pb);
    if (strstr(h, "none"))
        sig[0] = '\0';
    else
        rand_from(sig, strstr(h, "RS256") ? 342 : 43, B64URL);
    snprintf(it->pii, sizeof it->pii, "%s.%s.%s", hb, pb, sig);
}

typedef struct detector_case {
    redact_detector det;
    void (*gen)(item *);
    int structured; /* recall must be 100% */
} detector_case;

static const detector_case cases[] = {
    {REDACT_DET_EMAIL, gen_email, 1},
    {REDACT_DET_CARD, gen_card, 1},
    {REDACT_DET_SSN, gen_ssn, 1},
    {REDACT_DET_PHONE, gen_phone, 0},
    {REDACT_DET_IPV4, gen_ipv4, 1},
    {REDACT_DET_IPV6, gen_ipv6, 1},
    {REDACT_DET_AWS_KEY_ID, gen_aws_key_id, 1},
    {REDACT_DET_AWS_SECRET, gen_aws_secret, 1},
    {REDACT_DET_BEARER, gen_bearer, 1},
    {REDACT_DET_API_TOKEN, gen_api_token, 1},
    {REDACT_DET_JWT, gen_jwt, 1},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Contexts: where the value sits. "%s" is replaced by pre + pii. */
static const char *const contexts[] = {
    "%s",
    "%s is at the start of this text",
    "contact: %s, please",
    "this one ends with %s",
    "this one ends with %s.",
    "(%s)",
    "<%s>",
    "\"%s\"",
    "'%s'",
    "[%s]",
    "{\"user\":{\"value\":\"%s\",\"n\":1}}",
    "line one\nvalue: %s\nline three",
    "line one\r\n%s\r\n",
    "\xe2\x86\x92 %s \xe2\x86\x90",                       /* → x ← */
    "\xe7\x94\xb5\xe8\xaf\x9d\xef\xbc\x9a%s\xe3\x80\x82", /* 电话：x。 */
    "\xc2\xab%s\xc2\xbb",                                 /* «x» */
    "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 %s \xe2\x80\x94 "
    "r\xc3\xa9sum\xc3\xa9",
    "key=%s&other=1",
    "\t%s\t",
    "user said: %s; ok",
};
#define N_CTX (sizeof contexts / sizeof contexts[0])

/* Build the text for item `it` in context c; [*a, *b) is where the pii is. */
static void place(const item *it, int c, char *buf, size_t cap, size_t *a,
                  size_t *b)
{
    const char *ctx = contexts[c];
    const char *pct = strstr(ctx, "%s");
    size_t head = (size_t)(pct - ctx);
    /* A cut text would test something else: fail loudly instead. */
    int n = snprintf(buf, cap, "%.*s%s%s%s", (int)head, ctx, it->pre, it->pii,
                     pct + 2);
    ck_assert(n >= 0 && (size_t)n < cap);
    *a = head + strlen(it->pre);
    *b = *a + strlen(it->pii);
}

static int covered(const redact_spans *sp, size_t a, size_t b, int *exact)
{
    for (size_t i = 0; i < sp->n; i++) {
        if (sp->v[i].start <= a && sp->v[i].end >= b) {
            *exact = sp->v[i].start == a && sp->v[i].end == b;
            return 1;
        }
    }
    return 0;
}

#define PER_CONTEXT 60

START_TEST(test_recall_corpus)
{
    rng = 0x5eed0001;
    redact_spans sp = {0};
    char text[4096];
    redact_scratch *s = redact_scratch_new();
    const char *field = "prompt_text";
    redact_rule_spec all = {.fields = &field,
                            .n_fields = 1,
                            .action = REDACT_MASK,
                            .detect = REDACT_DET_ALL};
    redact_rules *r_all = compile1(&all);
    printf("\nrecall per detector (%d values x %zu contexts each)\n",
           PER_CONTEXT, N_CTX);
    printf("%-11s %7s %7s %9s %7s %12s\n", "detector", "texts", "found",
           "recall", "exact", "all-on+gone");
    for (size_t k = 0; k < N_CASES; k++) {
        unsigned total = 0, found = 0, exact_n = 0, all_ok = 0;
        unsigned og_total = 0, og_found = 0;
        for (size_t c = 0; c < N_CTX; c++) {
            for (int j = 0; j < PER_CONTEXT; j++) {
                item it = {0};
                cases[k].gen(&it);
                size_t a, b;
                place(&it, (int)c, text, sizeof text, &a, &b);
                size_t n = strlen(text);
                sp.n = 0;
                ck_assert_int_eq(
                    redact_detect(text, n, REDACT_DET_BIT(cases[k].det), &sp),
                    0);
                redact_spans_normalize(&sp);
                int exact = 0, hit = covered(&sp, a, b, &exact);
                if (it.outside_grammar) {
                    og_total++;
                    og_found += (unsigned)hit;
                    continue;
                }
                total++;
                if (hit) {
                    found++;
                    exact_n += (unsigned)exact;
                } else {
                    fprintf(stderr, "MISSED %s: [%s]\n",
                            redact_detector_name(cases[k].det), text);
                }
                /* With every detector on, through the rule engine: the
                   value must be gone from the output. */
                const char *out;
                size_t on;
                redact_string(r_all, s, "prompt_text", text, n, &out, &on,
                              NULL);
                char *o = strndup(out, on);
                if (!strstr(o, it.pii))
                    all_ok++;
                else if (cases[k].structured)
                    fprintf(stderr, "LEAKED with all on %s: [%s] -> [%s]\n",
                            redact_detector_name(cases[k].det), text, o);
                free(o);
            }
        }
        printf("%-11s %7u %7u %8.2f%% %6.1f%% %11.2f%%\n",
               redact_detector_name(cases[k].det), total, found,
               100.0 * found / total, 100.0 * exact_n / (found ? found : 1),
               100.0 * all_ok / total);
        if (og_total)
            printf("%-11s %7u %7u %8.2f%%   (formats outside the grammar: "
                   "national without +, ten bare digits)\n",
                   "  phone*", og_total, og_found, 100.0 * og_found / og_total);
        if (cases[k].structured) {
            ck_assert_uint_eq(found, total);
            ck_assert_uint_eq(all_ok, total);
        } else {
            ck_assert_uint_eq(found, total); /* every claimed format */
        }
    }
    redact_spans_free(&sp);
    redact_rules_free(r_all);
    redact_scratch_free(s);
}
END_TEST

/* ---- corpus: PII-free look-alikes
 * --------------------------------------------- */

static void lk_order(char *o, size_t cap)
{
    char d[11];
    rand_from(d, 10, DIG);
    snprintf(o, cap, "Order #%s shipped", d);
}

/* 13-19 digits that fail Luhn (ticket ids, account refs) */
static void lk_nonluhn(char *o, size_t cap)
{
    char d[20];
    size_t n = 13 + rn(7);
    rand_from(d, n, DIG);
    d[0] = (char)('2' + rn(5));
    luhn_fix(d, n);
    d[n - 1] = (char)('0' + (d[n - 1] - '0' + 1 + rn(9)) % 10);
    snprintf(o, cap, "ref %s", d);
}

static void lk_epoch(char *o, size_t cap)
{
    static const char *const unit[] = {"s", "ms", "us", "ns"};
    int u = (int)rn(4);
    unsigned long long t = 1600000000ull + rnd() % 200000000ull;
    for (int i = 0; i < u; i++)
        t = t * 1000 + rn(1000);
    snprintf(o, cap, "ts_%s=%llu", unit[u], t);
}

static void lk_iso_time(char *o, size_t cap)
{
    if (rn(2))
        snprintf(o, cap, "2024-%02u-%02uT%02u:%02u:%02u.%03uZ", 1 + rn(12),
                 1 + rn(28), rn(24), rn(60), rn(60), rn(1000));
    else
        snprintf(o, cap, "20%02u-%02u-%02u %02u:%02u:%02u+02:00", 20 + rn(6),
                 1 + rn(12), 1 + rn(28), rn(24), rn(60), rn(60));
}

static void lk_date(char *o, size_t cap)
{
    unsigned d = 1 + rn(28), m = 1 + rn(12), y = 1990 + rn(40);
    switch (rn(4)) {
    case 0:
        snprintf(o, cap, "%u-%02u-%02u", y, m, d);
        break;
    case 1:
        snprintf(o, cap, "%02u/%02u/%u", d, m, y);
        break;
    case 2:
        snprintf(o, cap, "%02u.%02u.%u", d, m, y);
        break;
    default:
        snprintf(o, cap, "%02u:%02u:%02u", rn(24), rn(60), rn(60));
    }
}

static void lk_uuid(char *o, size_t cap)
{
    char h[33];
    rand_from(h, 32, HEXL);
    snprintf(o, cap, "%.8s-%.4s-4%.3s-a%.3s-%.12s", h, h + 8, h + 12, h + 16,
             h + 20);
    if (rn(2))
        for (char *p = o; *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 32);
}

static void lk_digest(char *o, size_t cap)
{
    char h[65];
    size_t n = rn(3) == 0 ? 7 : rn(2) ? 40 : 64;
    rand_from(h, n, HEXL);
    snprintf(o, cap, "%s %s",
             n == 7    ? "commit"
             : n == 40 ? "sha1"
                       : "sha256",
             h);
}

static void lk_semver(char *o, size_t cap)
{
    switch (rn(4)) {
    case 0:
        snprintf(o, cap, "v%u.%u.%u", rn(10), rn(30), rn(20));
        break;
    case 1:
        snprintf(o, cap, "%u.%u.%u", rn(10), rn(30), rn(20));
        break;
    case 2:
        snprintf(o, cap, "%u.%u.%u-rc.%u", rn(10), rn(30), rn(20), rn(5));
        break;
    default:
        snprintf(o, cap, "1.%u.%u-beta+exp.sha.%x", rn(30), rn(20),
                 (unsigned)rnd());
    }
}

static void lk_price(char *o, size_t cap)
{
    switch (rn(4)) {
    case 0:
        snprintf(o, cap, "$%u,%03u.%02u", rn(1000), rn(1000), rn(100));
        break;
    case 1:
        snprintf(o, cap, "\xe2\x82\xac%u.%02u", rn(1000), rn(100));
        break;
    case 2:
        snprintf(o, cap, "USD %u,%03u,%03u.%02u", rn(100), rn(1000), rn(1000),
                 rn(100));
        break;
    default:
        snprintf(o, cap, "%u.%u%%", rn(100), rn(10));
    }
}

static void lk_numbers(char *o, size_t cap)
{
    switch (rn(6)) {
    case 0:
        snprintf(o, cap, "ZIP %05u-%04u", rn(100000), rn(10000));
        break;
    case 1:
        snprintf(o, cap, "id %09u", rn(1000000000));
        break;
    case 2:
        snprintf(o, cap, "ISBN 978-%u-%02u-%06u-%u", rn(10), rn(100),
                 rn(1000000), rn(10));
        break;
    case 3:
        snprintf(o, cap, "%u %03u %03u people", 1 + rn(9), rn(1000), rn(1000));
        break;
    case 4:
        snprintf(o, cap, "+%u points, room %u, ext. %04u", rn(100), rn(1000),
                 rn(10000));
        break;
    default:
        snprintf(o, cap, "build %u.%02u.%02u.%04u", 2020 + rn(6), 1 + rn(12),
                 1 + rn(28), rn(10000));
    }
}

static void lk_invalid_ssn(char *o, size_t cap)
{
    switch (rn(5)) {
    case 0:
        snprintf(o, cap, "000-%02u-%04u", 1 + rn(99), 1 + rn(9999));
        break;
    case 1:
        snprintf(o, cap, "666-%02u-%04u", 1 + rn(99), 1 + rn(9999));
        break;
    case 2:
        snprintf(o, cap, "%u-%02u-%04u", 900 + rn(100), 1 + rn(99),
                 1 + rn(9999));
        break;
    case 3:
        snprintf(o, cap, "%03u-00-%04u", 1 + rn(899), 1 + rn(9999));
        break;
    default:
        snprintf(o, cap, "%03u-%02u-0000", 1 + rn(899), 1 + rn(99));
    }
}

static void lk_invalid_ip(char *o, size_t cap)
{
    switch (rn(3)) {
    case 0:
        snprintf(o, cap, "%u.%u.%u.%u", 256 + rn(700), rn(256), rn(256),
                 rn(256));
        break;
    case 1:
        snprintf(o, cap, "%u.%u.%u", rn(256), rn(256), rn(256));
        break;
    default:
        snprintf(o, cap, "%u.%u.%u.%u.%u", rn(256), rn(256), rn(256), rn(256),
                 rn(256));
    }
}

static void lk_colons(char *o, size_t cap)
{
    char h[13];
    rand_from(h, 12, HEXL);
    switch (rn(5)) {
    case 0:
        snprintf(o, cap, "mac %.2s:%.2s:%.2s:%.2s:%.2s:%.2s", h, h + 2, h + 4,
                 h + 6, h + 8, h + 10);
        break;
    case 1:
        snprintf(o, cap, "std::vector<int> v; Foo::bar(); a[1::2]; x[::%u]",
                 rn(9));
        break;
    case 2:
        snprintf(o, cap, "aspect %u:%u at %02u:%02u", 1 + rn(21), 1 + rn(9),
                 rn(24), rn(60));
        break;
    case 3:
        snprintf(o, cap, "dead::beef cafe::babe %.4s:%.4s", h, h + 4);
        break;
    default:
        snprintf(o, cap, "%02u:%02u:%02u.%03u", rn(24), rn(60), rn(60),
                 rn(1000));
    }
}

static void lk_at(char *o, size_t cap)
{
    static const char *const v[] = {"ping @alice about it",
                                    "@app.route(\"/health\")",
                                    "npm i @types/node",
                                    "user@localhost",
                                    "ssh://git@github.com/org/repo.git",
                                    "@Override public void",
                                    "price @ 3.50 each",
                                    "tweet by @Example_Co"};
    snprintf(o, cap, "%s", PICK(v));
}

static void lk_words(char *o, size_t cap)
{
    static const char *const v[] = {"pip install scikit-learn",
                                    "sk-learn is handy",
                                    "ghost town",
                                    "xoxo, gossip girl",
                                    "the bearer of bad news",
                                    "bearer bonds were issued",
                                    "secret sauce recipe",
                                    "eyJustKidding.yes.no",
                                    "AIza is not a key",
                                    "the AKIA prefix",
                                    "skip-the-line-tickets",
                                    "github_pat_short",
                                    "Bearer token expired"};
    snprintf(o, cap, "%s", PICK(v));
}

static void lk_blob(char *o, size_t cap)
{
    char b[61];
    switch (rn(3)) {
    case 0: /* 40 base64 chars with no "secret" nearby */
        rand_from(b, 40, B64);
        snprintf(o, cap, "checksum %s", b);
        break;
    case 1: /* a SHA-1 right after the keyword */
        rand_from(b, 40, HEXL);
        snprintf(o, cap, "secret_hash: %s", b);
        break;
    default:
        rand_from(b, 60, B64);
        snprintf(o, cap, "data:image/png;base64,%s==", b);
    }
}

static void lk_paths(char *o, size_t cap)
{
    switch (rn(4)) {
    case 0:
        snprintf(o, cap, "https://example.com/a/%u?q=%u&page=%u", rn(1000),
                 rn(1000), rn(10));
        break;
    case 1:
        snprintf(o, cap, "/var/log/app-%u.log:%u", rn(100), rn(10000));
        break;
    case 2:
        snprintf(o, cap, "color #%06x, 0x%08x", rn(0xffffff), (unsigned)rnd());
        break;
    default:
        snprintf(o, cap, "duration PT%uM%uS, cpu %um, mem %uMi", rn(60), rn(60),
                 rn(4000), rn(8000));
    }
}

/* Random 16-digit ids with no control over Luhn: about one in ten passes,
 * and half start with 2-6; such an id is a card number by every test a
 * detector can make. */
static void lk_id16(char *o, size_t cap)
{
    char d[17];
    rand_from(d, 16, DIG);
    snprintf(o, cap, "%s %s", rn(2) ? "invoice" : "user id", d);
}

/* Browser user agents: "Chrome/124.0.0.0" is a dotted quad. */
static void lk_user_agent(char *o, size_t cap)
{
    if (rn(2))
        snprintf(o, cap,
                 "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
                 "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%u.0.0.0 "
                 "Safari/537.36",
                 100 + rn(30));
    else
        snprintf(o, cap,
                 "Mozilla/5.0 (X11; Linux x86_64; rv:%u.0) Gecko/20100101 "
                 "Firefox/%u.0",
                 100 + rn(30), 100 + rn(30));
}

typedef struct lookalike {
    const char *name;
    void (*gen)(char *, size_t);
} lookalike;

static const lookalike lookalikes[] = {
    {"order numbers (10 digits)", lk_order},
    {"13-19 digit refs failing Luhn", lk_nonluhn},
    {"epoch timestamps s/ms/us/ns", lk_epoch},
    {"ISO 8601 timestamps", lk_iso_time},
    {"dates and times", lk_date},
    {"UUIDs", lk_uuid},
    {"hex digests (git, SHA-1, SHA-256)", lk_digest},
    {"semantic versions", lk_semver},
    {"prices and percentages", lk_price},
    {"ZIP+4, ids, ISBN, counts, builds", lk_numbers},
    {"invalid SSNs (000/666/9xx/00/0000)", lk_invalid_ssn},
    {"invalid IPv4 (>255, 3 or 5 parts)", lk_invalid_ip},
    {"MACs, C++ paths, ratios, times", lk_colons},
    {"@mentions, decorators, git remotes", lk_at},
    {"words near token prefixes", lk_words},
    {"base64 blobs, SHA-1 after secret", lk_blob},
    {"URLs, paths, colours, durations", lk_paths},
    {"random 16-digit ids", lk_id16},
    {"browser user agents", lk_user_agent},
};
#define N_LK (sizeof lookalikes / sizeof lookalikes[0])
#define LK_PER 400

/* Bounds on the false-positive rate per detector over the whole look-alike
 * corpus, in percent; docs/REDACTION.md states them with the measured
 * values. */
static const double fp_bound[REDACT_DET_COUNT] = {
    [REDACT_DET_EMAIL] = 1.5,      [REDACT_DET_CARD] = 0.5,
    [REDACT_DET_SSN] = 0.1,        [REDACT_DET_PHONE] = 0.5,
    [REDACT_DET_IPV4] = 0.5,       [REDACT_DET_IPV6] = 0.5,
    [REDACT_DET_AWS_KEY_ID] = 0.1, [REDACT_DET_AWS_SECRET] = 0.1,
    [REDACT_DET_BEARER] = 0.1,     [REDACT_DET_API_TOKEN] = 0.1,
    [REDACT_DET_JWT] = 0.1,
};

START_TEST(test_fp_corpus)
{
    rng = 0x5eed0002;
    redact_spans sp = {0};
    char text[1024], val[512];
    unsigned total = 0, hits[REDACT_DET_COUNT] = {0};
    unsigned by_cat[N_LK][REDACT_DET_COUNT];
    memset(by_cat, 0, sizeof by_cat);
    for (size_t c = 0; c < N_LK; c++) {
        for (int j = 0; j < LK_PER; j++) {
            lookalikes[c].gen(val, sizeof val);
            item it = {0};
            snprintf(it.pii, sizeof it.pii, "%s", val);
            size_t a, b;
            place(&it, (int)rn(N_CTX), text, sizeof text, &a, &b);
            total++;
            for (unsigned d = 0; d < REDACT_DET_COUNT; d++) {
                sp.n = 0;
                redact_detect(text, strlen(text), REDACT_DET_BIT(d), &sp);
                if (sp.n) {
                    hits[d]++;
                    by_cat[c][d]++;
                }
            }
        }
    }
    printf("\nfalse positives on %u PII-free look-alikes (%zu kinds x %d)\n",
           total, N_LK, LK_PER);
    printf("%-11s %6s %8s %8s  %s\n", "detector", "hits", "rate", "bound",
           "where");
    for (unsigned d = 0; d < REDACT_DET_COUNT; d++) {
        double rate = 100.0 * hits[d] / total;
        printf("%-11s %6u %7.3f%% %7.2f%%  ", redact_detector_name(d), hits[d],
               rate, fp_bound[d]);
        for (size_t c = 0; c < N_LK; c++)
            if (by_cat[c][d])
                printf("[%s: %u] ", lookalikes[c].name, by_cat[c][d]);
        printf("\n");
        ck_assert_msg(rate <= fp_bound[d], "%s: %.3f%% > %.2f%%",
                      redact_detector_name(d), rate, fp_bound[d]);
    }
    redact_spans_free(&sp);
}
END_TEST

/* ---- actions
 * --------------------------------------------------------------------- */

/* A record whose strings are heap copies, as protobuf-c unpack leaves
 * them; freed with free_unpacked(NULL). */
static rec_t *new_rec(const char *prompt, const char *completion,
                      const char *error, size_t n_attr, ...)
{
    rec_t *r = malloc(sizeof *r);
    logferry__v1__invocation_record__init(r);
    r->tenant_id = strdup("tenant-a");
    r->model_id = strdup("anthropic.claude-3-haiku");
    if (prompt)
        r->prompt_text = strdup(prompt);
    if (completion)
        r->completion_text = strdup(completion);
    if (error)
        r->error_message = strdup(error);
    va_list ap;
    va_start(ap, n_attr);
    if (n_attr) {
        r->attributes = malloc(n_attr * sizeof *r->attributes);
        r->n_attributes = n_attr;
        for (size_t i = 0; i < n_attr; i++) {
            attr_t *a = malloc(sizeof *a);
            logferry__v1__invocation_record__attributes_entry__init(a);
            a->key = strdup(va_arg(ap, const char *));
            a->value = strdup(va_arg(ap, const char *));
            r->attributes[i] = a;
        }
    }
    va_end(ap);
    return r;
}

static void free_rec(rec_t *r)
{
    logferry__v1__invocation_record__free_unpacked(r, NULL);
}

static const char *attr(const rec_t *r, size_t i)
{
    return r->attributes[i]->value;
}

START_TEST(test_drop)
{
    const char *f[] = {"prompt_text", "error_message"};
    redact_rule_spec sp = {.name = "no-prompts",
                           .fields = f,
                           .n_fields = 2,
                           .action = REDACT_DROP};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();
    redact_rule_stats st[1] = {{0}};
    rec_t *rec = new_rec("my secret prompt", "the answer", "bad input x", 0);
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, st), 2);
    ck_assert_str_eq(rec->prompt_text, "");
    ck_assert_str_eq(rec->error_message, "");
    ck_assert_str_eq(rec->completion_text, "the answer");
    ck_assert_str_eq(rec->tenant_id, "tenant-a");
    ck_assert_uint_eq(st[0].records, 1);
    ck_assert_uint_eq(st[0].fields, 2);
    ck_assert_str_eq(redact_rule_name(r, 0), "no-prompts");
    free_rec(rec);
    redact_scratch_free(s);
    redact_rules_free(r);
}
END_TEST

START_TEST(test_mask)
{
    const char *f[] = {"completion_text"};
    redact_rule_spec sp[3] = {
        {.fields = f, .n_fields = 1, .action = REDACT_MASK},
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_MASK,
         .mask_token = "<gone:{type}>",
         .name = "cmask"},
        {.fields = f, .n_fields = 1, .action = REDACT_MASK, .mask_fill = '*'},
    };
    redact_scratch *s = redact_scratch_new();
    const char *out;
    size_t on;

    redact_rules *r = compile1(&sp[0]);
    ck_assert_int_eq(
        redact_string(r, s, "completion_text", "hello", 5, &out, &on, NULL), 1);
    ck_assert_str_eq(out, "[REDACTED]");
    /* Already masked: unchanged, not counted. */
    ck_assert_int_eq(redact_string(r, s, "completion_text", "[REDACTED]", 10,
                                   &out, &on, NULL),
                     0);
    /* Other fields are not touched by this rule. */
    ck_assert_int_eq(
        redact_string(r, s, "prompt_text", "hello", 5, &out, &on, NULL), 0);
    redact_rules_free(r);

    r = compile1(&sp[1]);
    redact_string(r, s, "completion_text", "hello", 5, &out, &on, NULL);
    ck_assert_str_eq(out, "<gone:cmask>");
    redact_rules_free(r);

    /* keep-length: one fill character per code point */
    r = compile1(&sp[2]);
    const char *u = "h\xc3\xa9llo \xf0\x9f\x98\x80!"; /* "héllo 😀!" */
    redact_string(r, s, "completion_text", u, strlen(u), &out, &on, NULL);
    ck_assert_str_eq(out, "********");
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_detect_actions)
{
    const char *f[] = {"*text"};
    char *key = tmp_key_file("0123456789abcdef0123456789abcdef", 32);
    redact_rule_spec sp[4] = {
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_MASK,
         .detect =
             REDACT_DET_BIT(REDACT_DET_EMAIL) | REDACT_DET_BIT(REDACT_DET_CARD),
         .mask_token = "[{type}]"},
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_MASK,
         .detect = REDACT_DET_BIT(REDACT_DET_EMAIL),
         .mask_fill = 'x'},
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_HASH,
         .detect = REDACT_DET_BIT(REDACT_DET_EMAIL),
         .key_file = key},
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_DROP,
         .detect = REDACT_DET_BIT(REDACT_DET_SSN)},
    };
    redact_scratch *s = redact_scratch_new();
    const char *out;
    size_t on;
    const char *t = "mail ann@example.com or bob@example.org, card "
                    "4111 1111 1111 1111.";

    redact_rule_stats st[1] = {{0}};
    redact_rules *r = compile1(&sp[0]);
    redact_string(r, s, "prompt_text", t, strlen(t), &out, &on, st);
    ck_assert_str_eq(out, "mail [email] or [email], card [card].");
    ck_assert_uint_eq(st[0].matches, 3);
    ck_assert_uint_eq(st[0].fields, 1);
    redact_rules_free(r);

    r = compile1(&sp[1]);
    redact_string(r, s, "error_message", "to ann@example.com!", 19, &out, &on,
                  NULL);
    ck_assert_str_eq(out, "to xxxxxxxxxxxxxxx!");
    redact_rules_free(r);

    /* Hashing spans: equal addresses hash equal, so they can be joined. */
    r = compile1(&sp[2]);
    const char *t2 = "ann@example.com wrote to ann@example.com";
    redact_string(r, s, "attributes.user", t2, strlen(t2), &out, &on, NULL);
    ck_assert_uint_eq(on, 37 + 10 + 37);
    ck_assert_int_eq(strncmp(out, "hmac:", 5), 0);
    ck_assert_int_eq(memcmp(out, out + 47, 37), 0);
    ck_assert_ptr_null(strstr(out, "ann@"));
    redact_rules_free(r);

    /* drop + detect: a value holding a match is dropped whole */
    r = compile1(&sp[3]);
    ck_assert_int_eq(redact_string(r, s, "prompt_text", "my ssn 123-45-6789",
                                   18, &out, &on, NULL),
                     1);
    ck_assert_uint_eq(on, 0);
    ck_assert_int_eq(
        redact_string(r, s, "prompt_text", "no ssn here", 11, &out, &on, NULL),
        0);
    redact_rules_free(r);

    unlink(key);
    free(key);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_custom_pattern)
{
    const char *f[] = {"prompt_text"};
    const char *pats[] = {"\\bEMP-\\d{6}\\b", "(?i)project\\s+(falcon|osprey)"};
    redact_rule_spec sp = {.name = "internal",
                           .fields = f,
                           .n_fields = 1,
                           .action = REDACT_MASK,
                           .patterns = pats,
                           .n_patterns = 2,
                           .mask_token = "[{type}]",
                           .detect = REDACT_DET_BIT(REDACT_DET_EMAIL)};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();
    const char *out;
    size_t on;
    const char *t = "EMP-123456 on PROJECT Falcon, mail a@b.io; EMP-1234567 "
                    "stays. caf\xc3\xa9 EMP-000001";
    redact_string(r, s, "prompt_text", t, strlen(t), &out, &on, NULL);
    ck_assert_str_eq(out, "[internal] on [internal], mail [email]; "
                          "EMP-1234567 stays. caf\xc3\xa9 [internal]");
    /* Invalid UTF-8 in the value does not stop matching. */
    const char *bad = "\xff\xfe EMP-999999 \xc3";
    redact_string(r, s, "prompt_text", bad, strlen(bad), &out, &on, NULL);
    ck_assert_str_eq(out, "\xff\xfe [internal] \xc3");
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_hash_stable)
{
    const char *k1 = "0123456789abcdef0123456789abcdef";
    char *p1 = tmp_key_file(k1, 32);
    char *p1nl = tmp_key_file("0123456789abcdef0123456789abcdef\n", 33);
    char *p2 = tmp_key_file("another key, also 32 bytes long!", 32);
    const char *f[] = {"prompt_text"};
    redact_rule_spec sp = {
        .fields = f, .n_fields = 1, .action = REDACT_HASH, .key_file = p1};
    redact_scratch *s = redact_scratch_new();
    const char *v = "alice@example.com", *out;
    size_t on;
    char a[64], b[64], c[64], d[64];

    redact_rules *r = compile1(&sp);
    redact_string(r, s, "prompt_text", v, strlen(v), &out, &on, NULL);
    snprintf(a, sizeof a, "%s", out);
    redact_rules_free(r);
    /* "Restart": a new rule set from the same file. */
    r = compile1(&sp);
    redact_string(r, s, "prompt_text", v, strlen(v), &out, &on, NULL);
    snprintf(b, sizeof b, "%s", out);
    redact_rules_free(r);
    /* A trailing newline in the key file is not part of the key. */
    sp.key_file = p1nl;
    r = compile1(&sp);
    redact_string(r, s, "prompt_text", v, strlen(v), &out, &on, NULL);
    snprintf(c, sizeof c, "%s", out);
    redact_rules_free(r);
    sp.key_file = p2;
    r = compile1(&sp);
    redact_string(r, s, "prompt_text", v, strlen(v), &out, &on, NULL);
    snprintf(d, sizeof d, "%s", out);
    redact_rules_free(r);

    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c);
    ck_assert_str_ne(a, d);
    ck_assert_uint_eq(strlen(a), 37);
    /* The known answer, so stability holds across builds too: the first
       16 bytes of HMAC-SHA256 as computed by
         printf %s alice@example.com |
         openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef */
    ck_assert_str_eq(a, "hmac:841240d2a5b6654b3ae21fc4499db7b7");

    unlink(p1);
    unlink(p1nl);
    unlink(p2);
    free(p1);
    free(p1nl);
    free(p2);
    redact_scratch_free(s);
}
END_TEST

/* Keys longer than SHA-256's block are hashed first (RFC 2104); checked
 * against OpenSSL's one-shot HMAC() for several key and value lengths. */
START_TEST(test_hash_matches_hmac)
{
    static const size_t klen[] = {16, 63, 64, 65, 100, 4096};
    const char *f[] = {"prompt_text"};
    redact_scratch *s = redact_scratch_new();
    for (size_t i = 0; i < sizeof klen / sizeof klen[0]; i++) {
        char key[4096];
        for (size_t j = 0; j < klen[i]; j++)
            key[j] = (char)('A' + (j * 7 + i) % 26);
        char *p = tmp_key_file(key, klen[i]);
        redact_rule_spec sp = {
            .fields = f, .n_fields = 1, .action = REDACT_HASH, .key_file = p};
        redact_rules *r = compile1(&sp);
        for (size_t vl = 1; vl < 300; vl += 37) {
            char v[300];
            memset(v, 'v', vl);
            const char *out;
            size_t on;
            redact_string(r, s, "prompt_text", v, vl, &out, &on, NULL);
            unsigned char md[32];
            unsigned ml = 0;
            HMAC(EVP_sha256(), key, (int)klen[i], (unsigned char *)v, vl, md,
                 &ml);
            char want[38] = "hmac:";
            for (int j = 0; j < 16; j++)
                snprintf(want + 5 + 2 * j, 3, "%02x", md[j]);
            ck_assert_str_eq(out, want);
        }
        redact_rules_free(r);
        unlink(p);
        free(p);
    }
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_key_file_errors)
{
    char err[512];
    const char *f[] = {"prompt_text"};
    const char *secret = "short-key-123";
    char *p = tmp_key_file(secret, strlen(secret));
    redact_rule_spec sp = {.name = "h",
                           .where = "conf/x.conf:7",
                           .fields = f,
                           .n_fields = 1,
                           .action = REDACT_HASH,
                           .key_file = p};
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "conf/x.conf:7: redact rule h:"));
    ck_assert_ptr_nonnull(strstr(err, p));
    ck_assert_ptr_nonnull(strstr(err, "at least 16"));
    ck_assert_ptr_null(strstr(err, secret));
    sp.key_file = "/nonexistent/hmac.key";
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/hmac.key"));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    sp.key_file = "/tmp";
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    sp.key_file = NULL;
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "needs key_file"));
    unlink(p);
    free(p);
}
END_TEST

START_TEST(test_truncate_utf8)
{
    const char *f[] = {"prompt_text"};
    redact_scratch *s = redact_scratch_new();
    /* "aé€😀" = 1 + 2 + 3 + 4 bytes; cut points in bytes */
    const char *t = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    static const struct {
        size_t max;
        size_t want;
    } v[] = {{1, 1}, {2, 1}, {3, 3}, {4, 3},   {5, 3},   {6, 6},
             {7, 6}, {8, 6}, {9, 6}, {10, 10}, {11, 10}, {100, 10}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        redact_rule_spec sp = {.fields = f,
                               .n_fields = 1,
                               .action = REDACT_TRUNCATE,
                               .truncate_bytes = v[i].max};
        redact_rules *r = compile1(&sp);
        const char *out;
        size_t on;
        int rc =
            redact_string(r, s, "prompt_text", t, strlen(t), &out, &on, NULL);
        ck_assert_msg(on == v[i].want, "max %zu: got %zu want %zu", v[i].max,
                      on, v[i].want);
        ck_assert_int_eq(rc, v[i].want < 10);
        ck_assert_int_eq(memcmp(out, t, on), 0);
        redact_rules_free(r);
    }
    /* In a record: shortened in place. */
    redact_rule_spec sp = {.fields = f,
                           .n_fields = 1,
                           .action = REDACT_TRUNCATE,
                           .truncate_bytes = 4};
    redact_rules *r = compile1(&sp);
    rec_t *rec = new_rec(t, NULL, NULL, 0);
    char *before = rec->prompt_text;
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, NULL), 1);
    ck_assert_ptr_eq(rec->prompt_text, before);
    ck_assert_str_eq(rec->prompt_text, "a\xc3\xa9");
    free_rec(rec);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_attributes)
{
    const char *f1[] = {"attributes.user_email"};
    const char *f2[] = {"attributes.*"};
    redact_rule_spec sp[2] = {
        {.fields = f1, .n_fields = 1, .action = REDACT_MASK},
        {.fields = f2,
         .n_fields = 1,
         .action = REDACT_MASK,
         .detect = REDACT_DET_BIT(REDACT_DET_IPV4),
         .mask_token = "[ip]"},
    };
    redact_scratch *s = redact_scratch_new();
    redact_rules *r = compile1(&sp[0]);
    rec_t *rec = new_rec("p", NULL, NULL, 3, "user_email", "a@b.co", "tier",
                         "gold", "user_email", "c@d.co");
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, NULL), 2);
    ck_assert_str_eq(attr(rec, 0), "[REDACTED]");
    ck_assert_str_eq(attr(rec, 1), "gold");
    ck_assert_str_eq(attr(rec, 2), "[REDACTED]");
    ck_assert_str_eq(rec->prompt_text, "p");
    free_rec(rec);
    redact_rules_free(r);

    r = compile1(&sp[1]);
    rec = new_rec("from 10.0.0.1", NULL, NULL, 2, "client_ip", "10.1.2.3",
                  "route", "via 192.168.0.1:80");
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, NULL), 2);
    ck_assert_str_eq(attr(rec, 0), "[ip]");
    ck_assert_str_eq(attr(rec, 1), "via [ip]:80");
    ck_assert_str_eq(rec->prompt_text, "from 10.0.0.1"); /* not an attribute */
    ck_assert_str_eq(rec->attributes[0]->key, "client_ip");
    free_rec(rec);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_star_text_and_order)
{
    /* *text reaches every free-text field; rules run in order. */
    const char *all[] = {"*text"};
    const char *p[] = {"prompt_text"};
    redact_rule_spec sp[2] = {
        {.fields = all,
         .n_fields = 1,
         .action = REDACT_MASK,
         .detect = REDACT_DET_ALL,
         .mask_token = "[{type}]"},
        {.fields = p,
         .n_fields = 1,
         .action = REDACT_TRUNCATE,
         .truncate_bytes = 12},
    };
    char err[256];
    redact_rules *r = redact_compile(sp, 2, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_uint_eq(redact_rule_count(r), 2);
    ck_assert_str_eq(redact_rule_name(r, 1), "#2");
    redact_scratch *s = redact_scratch_new();
    redact_rule_stats st[2] = {{0}};
    rec_t *rec =
        new_rec("mail ann@example.com now", "call +1 415 555 2671",
                "host 10.2.3.4 refused", 1, "k", "AKIAIOSFODNN7EXAMPLE");
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, st), 4);
    ck_assert_str_eq(rec->prompt_text, "mail [email]");
    ck_assert_str_eq(rec->completion_text, "call [phone]");
    ck_assert_str_eq(rec->error_message, "host [ipv4] refused");
    ck_assert_str_eq(attr(rec, 0), "[aws_key_id]");
    ck_assert_uint_eq(st[0].records, 1);
    ck_assert_uint_eq(st[0].fields, 4);
    ck_assert_uint_eq(st[0].matches, 4);
    ck_assert_uint_eq(st[1].fields, 1);
    free_rec(rec);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

START_TEST(test_errors)
{
    char err[512];
    const char *ok[] = {"prompt_text"};
    const char *unknown[] = {"prompt"};
    const char *ident[] = {"tenant_id"};
    const char *emptyattr[] = {"attributes."};
    const char *badre[] = {"ok", "foo(bar"};

    redact_rule_spec sp = {.name = "r1",
                           .where = "/etc/logferry.conf:12",
                           .fields = unknown,
                           .n_fields = 1,
                           .action = REDACT_DROP};
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_str_eq(err, "/etc/logferry.conf:12: redact rule r1: unknown "
                          "field \"prompt\"; redactable: prompt_text, "
                          "completion_text, error_message, attributes.KEY, "
                          "attributes.* or *text");
    sp.fields = ident;
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "\"tenant_id\" cannot be redacted"));
    sp.fields = emptyattr;
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "unknown field \"attributes.\""));

    sp.fields = ok;
    sp.action = REDACT_MASK;
    sp.patterns = badre;
    sp.n_patterns = 2;
    ck_assert_ptr_null(redact_compile(&sp, 1, err, sizeof err));
    ck_assert_str_eq(err, "/etc/logferry.conf:12: redact rule r1: pattern 2: "
                          "missing closing parenthesis at offset 7");

    /* The second rule of a set is named by its index when unnamed. */
    redact_rule_spec two[2] = {
        {.fields = ok, .n_fields = 1, .action = REDACT_DROP},
        {.fields = ok,
         .n_fields = 1,
         .action = REDACT_TRUNCATE,
         .detect = REDACT_DET_ALL,
         .truncate_bytes = 3,
         .where = "f:3"},
    };
    ck_assert_ptr_null(redact_compile(two, 2, err, sizeof err));
    ck_assert_str_eq(err, "f:3: redact rule #2: action truncate cannot be "
                          "combined with detect or patterns");

    const struct {
        redact_rule_spec sp;
        const char *msg;
    } bad[] = {
        {{.fields = ok, .n_fields = 0, .action = REDACT_DROP},
         "no field given"},
        {{.fields = ok, .n_fields = 1, .action = 0}, "unknown action"},
        {{.fields = ok, .n_fields = 1, .action = REDACT_TRUNCATE},
         "byte limit of 1 or more"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_DROP,
          .mask_token = "x"},
         "only used by action mask"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_MASK,
          .mask_token = "x",
          .mask_fill = '*'},
         "exclude each other"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_MASK,
          .mask_fill = '\n'},
         "printable ASCII"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_MASK,
          .mask_token = "0123456789012345678901234567890123456789"
                        "01234567890123456789012345"},
         "longer than 64"},
        {{.fields = ok, .n_fields = 1, .action = REDACT_MASK, .key_file = "/x"},
         "only used by action hash"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_DROP,
          .truncate_bytes = 5},
         "only used by action truncate"},
        {{.fields = ok,
          .n_fields = 1,
          .action = REDACT_MASK,
          .detect = 1u << 20},
         "unknown detector"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(redact_compile(&bad[i].sp, 1, err, sizeof err));
        ck_assert_msg(strstr(err, bad[i].msg) != NULL, "case %zu: %s", i, err);
        ck_assert_msg(strncmp(err, "redact rule #1: ", 16) == 0, "%s", err);
    }
    /* A short error buffer is never overrun. */
    char tiny[8];
    ck_assert_ptr_null(redact_compile(&bad[0].sp, 1, tiny, sizeof tiny));
    ck_assert_uint_eq(strlen(tiny), 7);
    ck_assert_ptr_null(redact_compile(&bad[0].sp, 1, NULL, 0));

    /* Names for the config. */
    uint32_t m = 0;
    ck_assert_int_eq(redact_detector_parse("ip", &m), 0);
    ck_assert_uint_eq(m, REDACT_DET_BIT(REDACT_DET_IPV4) |
                             REDACT_DET_BIT(REDACT_DET_IPV6));
    ck_assert_int_eq(redact_detector_parse("credit_card", &m), -1);
    redact_action a;
    ck_assert_int_eq(redact_action_parse("hash", &a), 0);
    ck_assert_int_eq(a, REDACT_HASH);
    ck_assert_int_eq(redact_action_parse("erase", &a), -1);
    for (unsigned d = 0; d < REDACT_DET_COUNT; d++) {
        m = 0;
        ck_assert_int_eq(redact_detector_parse(redact_detector_name(d), &m), 0);
        ck_assert_uint_eq(m, REDACT_DET_BIT(d));
    }
    ck_assert_ptr_null(redact_detector_name(REDACT_DET_COUNT));
}
END_TEST

START_TEST(test_no_text_untouched)
{
    const char *f[] = {"*text"};
    redact_rule_spec sp = {.fields = f, .n_fields = 1, .action = REDACT_DROP};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();
    redact_rule_stats st[1] = {{0}};
    rec_t rec;
    logferry__v1__invocation_record__init(&rec); /* static "" strings */
    rec.tenant_id = "t";
    ck_assert_int_eq(redact_apply(r, s, &rec, NULL, st), 0);
    ck_assert_ptr_eq(rec.prompt_text, protobuf_c_empty_string);
    ck_assert_uint_eq(st[0].records, 0);
    rec.prompt_text = NULL;
    ck_assert_int_eq(redact_apply(r, s, &rec, NULL, st), 0);
    /* An empty rule set changes nothing. */
    redact_rules *none = redact_compile(NULL, 0, NULL, 0);
    ck_assert_ptr_nonnull(none);
    rec_t *h = new_rec("ann@example.com", NULL, NULL, 0);
    ck_assert_int_eq(redact_apply(none, s, h, NULL, NULL), 0);
    ck_assert_str_eq(h->prompt_text, "ann@example.com");
    /* Text without PII: untouched, same pointer. */
    redact_rule_spec det = {.fields = f,
                            .n_fields = 1,
                            .action = REDACT_MASK,
                            .detect = REDACT_DET_ALL};
    redact_rules *rd = compile1(&det);
    rec_t *c = new_rec("Summarise the release notes for v2.14.0, dated "
                       "2024-05-17, build 550e8400-e29b-41d4-a716-446655440000",
                       "Sure.", NULL, 1, "feature", "chat");
    char *before = c->prompt_text;
    ck_assert_int_eq(redact_apply(rd, s, c, NULL, NULL), 0);
    ck_assert_ptr_eq(c->prompt_text, before);
    free_rec(c);
    free_rec(h);
    redact_rules_free(rd);
    redact_rules_free(none);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

/* ---- allocation: in place, or from the record's allocator -----------------
 */

typedef struct count_alloc {
    int allocs, frees;
} count_alloc;

static void *ca_alloc(void *ud, size_t n)
{
    ((count_alloc *)ud)->allocs++;
    return malloc(n);
}

static void ca_free(void *ud, void *p)
{
    ((count_alloc *)ud)->frees++;
    free(p);
}

START_TEST(test_allocator_and_roundtrip)
{
    const char *f[] = {"prompt_text", "completion_text"};
    redact_rule_spec sp = {.fields = f,
                           .n_fields = 2,
                           .action = REDACT_MASK,
                           .detect = REDACT_DET_ALL,
                           .mask_token = "[REDACTED:{type}]"};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();

    /* Encode a record as the writer would, decode it as the agent does. */
    rec_t in;
    logferry__v1__invocation_record__init(&in);
    in.tenant_id = "t1";
    in.prompt_text = "a@b.io"; /* grows: needs a new string */
    in.completion_text = "card 4111111111111111 ok"; /* shrinks: in place */
    size_t len = logferry__v1__invocation_record__get_packed_size(&in);
    uint8_t *buf = malloc(len);
    logferry__v1__invocation_record__pack(&in, buf);

    count_alloc ca = {0};
    ProtobufCAllocator pa = {ca_alloc, ca_free, &ca};
    rec_t *rec = logferry__v1__invocation_record__unpack(&pa, len, buf);
    ck_assert_ptr_nonnull(rec);
    int a0 = ca.allocs, f0 = ca.frees;
    char *completion = rec->completion_text;
    ck_assert_int_eq(redact_apply(r, s, rec, &pa, NULL), 2);
    ck_assert_str_eq(rec->prompt_text, "[REDACTED:email]");
    ck_assert_str_eq(rec->completion_text, "card [REDACTED:card] ok");
    ck_assert_ptr_eq(rec->completion_text, completion);
    ck_assert_int_eq(ca.allocs - a0, 1);
    ck_assert_int_eq(ca.frees - f0, 1);

    /* Re-encode: what a sink gets holds no PII. */
    size_t len2 = logferry__v1__invocation_record__get_packed_size(rec);
    uint8_t *buf2 = malloc(len2);
    logferry__v1__invocation_record__pack(rec, buf2);
    ck_assert_ptr_null(memmem(buf2, len2, "a@b.io", 6));
    ck_assert_ptr_null(memmem(buf2, len2, "4111111111111111", 16));
    rec_t *back = logferry__v1__invocation_record__unpack(NULL, len2, buf2);
    ck_assert_str_eq(back->prompt_text, "[REDACTED:email]");
    ck_assert_str_eq(back->tenant_id, "t1");
    logferry__v1__invocation_record__free_unpacked(back, NULL);
    logferry__v1__invocation_record__free_unpacked(rec, &pa);
    ck_assert_int_eq(ca.allocs, ca.frees);

    /* NULL allocator: malloc/free, and free_unpacked(NULL) stays right. */
    rec = logferry__v1__invocation_record__unpack(NULL, len, buf);
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, NULL), 2);
    ck_assert_str_eq(rec->prompt_text, "[REDACTED:email]");
    logferry__v1__invocation_record__free_unpacked(rec, NULL);

    free(buf);
    free(buf2);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

/* ---- fail closed
 * -------------------------------------------------------------- */

START_TEST(test_fail_closed)
{
    /* A catastrophic pattern hits PCRE2's match limit: the value is
       cleared, never left as it was. */
    const char *f[] = {"prompt_text"};
    const char *pats[] = {"^(a+)+$"};
    redact_rule_spec sp = {.name = "evil",
                           .fields = f,
                           .n_fields = 1,
                           .action = REDACT_MASK,
                           .patterns = pats,
                           .n_patterns = 1};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();
    redact_rule_stats st[1] = {{0}};
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, "b ann@example.com");
    rec_t *rec = new_rec(text, NULL, NULL, 0);
    double t0 = cpu_now();
    ck_assert_int_eq(redact_apply(r, s, rec, NULL, st), 1);
    double dt = cpu_now() - t0;
    ck_assert_str_eq(rec->prompt_text, "");
    ck_assert_uint_eq(st[0].fail_closed, 1);
    ck_assert_uint_eq(st[0].records, 1);
    printf("fail-closed on match limit after %.3f s CPU\n", dt);
    free_rec(rec);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

/* ---- big and adversarial inputs ---------------------------------------------
 */

#define MIB (1024u * 1024u)

/* CPU-time bounds are for optimised builds; sanitizers (and their memmem
 * interceptor in particular) make the scans several times slower. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TIME_SCALE 10.0
#else
#define TIME_SCALE 1.0
#endif

static double time_redact(const redact_rules *r, redact_scratch *s,
                          const char *text, size_t n, size_t *changed_out)
{
    const char *out;
    size_t on;
    double t0 = cpu_now();
    int rc = redact_string(r, s, "prompt_text", text, n, &out, &on, NULL);
    double dt = cpu_now() - t0;
    ck_assert_int_ge(rc, 0);
    if (changed_out)
        *changed_out = (size_t)rc;
    return dt;
}

START_TEST(test_long_prompt)
{
    rng = 0x5eed0003;
    const char *f[] = {"prompt_text"};
    const char *pats[] = {"\\bEMP-\\d{6}\\b"};
    redact_rule_spec sp = {.fields = f,
                           .n_fields = 1,
                           .action = REDACT_MASK,
                           .detect = REDACT_DET_ALL,
                           .patterns = pats,
                           .n_patterns = 1,
                           .mask_token = "[{type}]"};
    redact_rules *r = compile1(&sp);
    redact_scratch *s = redact_scratch_new();
    char *big = malloc(MIB + 1);
    size_t n = 0;
    unsigned planted = 0;
    while (n < MIB - 600) {
        item it = {0};
        const detector_case *dc = &cases[rn(N_CASES)];
        dc->gen(&it);
        int w = snprintf(big + n, MIB + 1 - n,
                         "Some ordinary words of a long prompt, line %u. %s%s "
                         "and then more text.\n",
                         planted, it.pre, it.pii);
        n += (size_t)w;
        planted++;
    }
    big[n] = '\0';
    const char *out;
    size_t on;
    double t0 = cpu_now();
    ck_assert_int_eq(
        redact_string(r, s, "prompt_text", big, n, &out, &on, NULL), 1);
    double dt = cpu_now() - t0;
    ck_assert_ptr_null(strstr(out, "@example.com"));
    printf("1 MiB prompt, %u planted values, all detectors: %.1f ms CPU\n",
           planted, dt * 1e3);
    ck_assert_msg(dt < 2.0 * TIME_SCALE, "1 MiB took %.2f s", dt);

    /* Adversarial inputs: many candidate starts, nothing (or everything)
       matching. Each must stay linear: well under a second per MiB. */
    static const char *const unit[] = {
        "sk-a-",   "eyJa-",      "eyJhbGciOiJIUzI1NiJ9.-",
        "1 ",      "a@",         "::",
        "secret ", "+1 ",        "1.",
        "(",       "Bearer ",    "xoxb-a-",
        "@a.",     "1-",         "fe80:",
        "AKIA",    "4111 1111 ", "@",
        "a.",      "\xc3\xa9@"};
    for (size_t u = 0; u < sizeof unit / sizeof unit[0]; u++) {
        size_t ul = strlen(unit[u]);
        n = 0;
        while (n + ul <= MIB) {
            memcpy(big + n, unit[u], ul);
            n += ul;
        }
        big[n] = '\0';
        double t = time_redact(r, s, big, n, NULL);
        printf("  adversarial %-24s x%zu: %6.1f ms\n", unit[u], n / ul,
               t * 1e3);
        ck_assert_msg(t < 1.0 * TIME_SCALE, "%s: %.2f s", unit[u], t);
    }
    free(big);
    redact_rules_free(r);
    redact_scratch_free(s);
}
END_TEST

/* ---- threads
 * ------------------------------------------------------------------- */

typedef struct thr {
    const redact_rules *r;
    const char *want_hash;
    int bad;
} thr;

/* Rules and their HMAC states are shared; each thread has its scratch. */
static void *thr_main(void *arg)
{
    thr *t = arg;
    redact_scratch *s = redact_scratch_new();
    const char *in = "ann@example.com 4111 1111 1111 1111 10.0.0.1 "
                     "sk-abcdefghij0123456789abcdef";
    const char *want = "[email] [card] [ipv4] [api_token]";
    for (int i = 0; i < 20000; i++) {
        const char *out;
        size_t on;
        redact_string(t->r, s, "prompt_text", in, strlen(in), &out, &on, NULL);
        if (strcmp(out, want) != 0)
            t->bad++;
        redact_string(t->r, s, "attributes.user", "ann", 3, &out, &on, NULL);
        if (strcmp(out, t->want_hash) != 0)
            t->bad++;
    }
    redact_scratch_free(s);
    return NULL;
}

START_TEST(test_threads)
{
    const char *f[] = {"prompt_text"};
    const char *fa[] = {"attributes.user"};
    char *key = tmp_key_file("0123456789abcdef0123456789abcdef", 32);
    redact_rule_spec sp[2] = {
        {.fields = f,
         .n_fields = 1,
         .action = REDACT_MASK,
         .detect = REDACT_DET_ALL,
         .mask_token = "[{type}]"},
        {.fields = fa, .n_fields = 1, .action = REDACT_HASH, .key_file = key}};
    char err[256];
    redact_rules *r = redact_compile(sp, 2, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    redact_scratch *s = redact_scratch_new();
    const char *h;
    size_t hn;
    redact_string(r, s, "attributes.user", "ann", 3, &h, &hn, NULL);
    char want_hash[64];
    snprintf(want_hash, sizeof want_hash, "%s", h);
    redact_scratch_free(s);
    pthread_t th[4];
    thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr){r, want_hash, 0};
        pthread_create(&th[i], NULL, thr_main, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].bad, 0);
    }
    redact_rules_free(r);
    unlink(key);
    free(key);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redact");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_recall_corpus);
    tcase_add_test(tc, test_fp_corpus);
    tcase_add_test(tc, test_drop);
    tcase_add_test(tc, test_mask);
    tcase_add_test(tc, test_detect_actions);
    tcase_add_test(tc, test_custom_pattern);
    tcase_add_test(tc, test_hash_stable);
    tcase_add_test(tc, test_hash_matches_hmac);
    tcase_add_test(tc, test_key_file_errors);
    tcase_add_test(tc, test_truncate_utf8);
    tcase_add_test(tc, test_attributes);
    tcase_add_test(tc, test_star_text_and_order);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_no_text_untouched);
    tcase_add_test(tc, test_allocator_and_roundtrip);
    tcase_add_test(tc, test_fail_closed);
    tcase_add_test(tc, test_long_prompt);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
