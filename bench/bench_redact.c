/*
 * bench_redact.c - cost of redaction per record (agent/redact.h).
 *
 * Builds a pool of typical records (~300 bytes encoded, a 200-byte
 * English prompt; by default 20% of prompts carry one PII value of a
 * random kind, -p changes that) and runs redact_apply() over the pool
 * again and again on one thread, timing with the process CPU clock. Each
 * application first restores the prompt (a 200-byte memcpy); that restore
 * loop is timed alone and subtracted, and both figures are printed.
 *
 *   bench_redact [-n pool_records] [-t seconds_per_row] [-p pii_percent]
 *                [-s seed]
 *
 * Rows: every built-in detector on (the target: >= 500,000 records per
 * CPU-second), each detector alone, a custom PCRE2 pattern, whole-field
 * mask and hash, and decode + redact + re-encode as the agent will run it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redact.h"

typedef Logferry__V1__InvocationRecord rec_t;

#define PROMPT_LEN 200

static uint64_t rng = 0x243f6a8885a308d3ull;

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

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the pool --------------------------------------------------------------
 */

static const char *const words[] = {
    "the",     "customer", "asked",    "about",     "their",     "order",
    "and",     "wants",    "a",        "refund",    "for",       "items",
    "that",    "arrived",  "damaged",  "please",    "summarise", "following",
    "meeting", "notes",    "in",       "three",     "bullet",    "points",
    "keeping", "names",    "dates",    "translate", "this",      "paragraph",
    "into",    "French",   "write",    "short",     "reply",     "explaining",
    "policy",  "on",       "returns",  "is",        "it",        "possible",
    "to",      "change",   "delivery", "address",   "after",     "shipping",
    "thanks",  "again",    "version",  "2.14.0",    "released",  "2024-05-17",
    "ticket",  "#48213",   "with",     "status",    "open",      "Hello,",
    "team.",   "Best",     "regards,", "Could",     "you",       "check",
    "why",     "my",       "account",  "was",       "charged",   "twice?",
    "The",     "invoice",  "shows",    "$129.99",   "instead",   "of",
    "$64.99."};

static void pii_value(char *o, size_t cap)
{
    static const char *const fixed[] = {
        "ann.smith@example.com",
        "4111 1111 1111 1111",
        "123-45-6789",
        "+1 415 555 2671",
        "(415) 555-2671",
        "10.20.30.40",
        "2001:db8:85a3::8a2e:370:7334",
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "Bearer abcdef0123456789abcdef",
        "sk-proj-Ab3dEf5hIj7lMn9pQr1tUv3xYz5AbCdEfGh",
        "ghp_1234567890abcdefghijABCDEFGHIJ123456",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N"};
    snprintf(o, cap, "%s", fixed[rn(sizeof fixed / sizeof fixed[0])]);
}

/* A PROMPT_LEN-byte prompt, with a PII value at a random word boundary
 * when `pii` is set. */
static void make_prompt(char *o, int pii)
{
    char v[128] = "";
    if (pii)
        pii_value(v, sizeof v);
    size_t n = 0, at = pii ? rn(PROMPT_LEN - (unsigned)strlen(v) - 2) : 0;
    int placed = !pii;
    char buf[PROMPT_LEN * 2];
    while (n < PROMPT_LEN) {
        const char *w =
            placed || n < at ? words[rn(sizeof words / sizeof words[0])] : v;
        if (!placed && n >= at)
            placed = 1;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? " " : "", w);
    }
    /* Cut to length without cutting the PII value. */
    memcpy(o, buf, PROMPT_LEN);
    o[PROMPT_LEN] = '\0';
    if (pii && !strstr(o, v)) {
        size_t vl = strlen(v);
        memcpy(o + PROMPT_LEN - vl - 1, v, vl);
        o[PROMPT_LEN - vl - 2] = ' ';
        o[PROMPT_LEN - 1] = '.';
    }
}

typedef struct pool {
    size_t n;
    rec_t *recs;
    char (*orig)[PROMPT_LEN + 1];
    char (*work)[PROMPT_LEN + 64];
    uint8_t **enc;
    size_t *enc_len;
    double avg_encoded;
} pool;

static void pool_init(pool *p, size_t n, unsigned pii_pct)
{
    static char rid[16][17];
    p->n = n;
    p->recs = calloc(n, sizeof *p->recs);
    p->orig = calloc(n, sizeof *p->orig);
    p->work = calloc(n, sizeof *p->work);
    p->enc = calloc(n, sizeof *p->enc);
    p->enc_len = calloc(n, sizeof *p->enc_len);
    if (!p->recs || !p->orig || !p->work || !p->enc || !p->enc_len) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int i = 0; i < 16; i++)
        snprintf(rid[i], sizeof rid[i], "req-%012x", (unsigned)rnd());
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        rec_t *r = &p->recs[i];
        logferry__v1__invocation_record__init(r);
        r->tenant_id = "tenant-a";
        r->account_id = "123456789012";
        r->app = "support-bot";
        r->region = "us-east-1";
        r->model_id = "anthropic.claude-3-haiku-20240307-v1:0";
        r->operation = "Converse";
        r->input_tokens = 1234;
        r->output_tokens = 321;
        r->latency_ms = 812;
        r->status = LOGFERRY__V1__STATUS__STATUS_OK;
        r->request_id = rid[i % 16];
        r->event_time_ns = 1715940000000000000ll + (int64_t)i;
        make_prompt(p->orig[i], rn(100) < pii_pct);
        r->prompt_text = p->orig[i];
        p->enc_len[i] = logferry__v1__invocation_record__get_packed_size(r);
        p->enc[i] = malloc(p->enc_len[i]);
        logferry__v1__invocation_record__pack(r, p->enc[i]);
        total += (double)p->enc_len[i];
        r->prompt_text = p->work[i];
    }
    p->avg_encoded = total / (double)n;
}

static void pool_free(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->enc[i]);
    free(p->recs);
    free(p->orig);
    free(p->work);
    free(p->enc);
    free(p->enc_len);
}

/* A bump arena for replacement strings and decoded records; reset per
 * pass, as the agent resets its per-batch arena. */
typedef struct arena {
    char *buf;
    size_t used, cap;
} arena;

static void *arena_alloc(void *ud, size_t n)
{
    arena *a = ud;
    n = (n + 15) & ~(size_t)15;
    if (a->cap - a->used < n) {
        fprintf(stderr, "bench arena exhausted\n");
        exit(1);
    }
    void *p = a->buf + a->used;
    a->used += n;
    return p;
}

static void arena_nofree(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

/* ---- measuring --------------------------------------------------------------
 */

typedef enum mode { M_RESTORE, M_APPLY, M_PIPELINE } mode;

/* Records per CPU-second running `mode` over the pool for at least `secs`
 * of CPU time. */
static double run(pool *p, const redact_rules *r, redact_scratch *s, mode m,
                  double secs, redact_rule_stats *st)
{
    arena ar = {NULL, 0, 64u * 1024u * 1024u};
    ar.buf = malloc(ar.cap);
    ProtobufCAllocator pa = {arena_alloc, arena_nofree, &ar};
    uint64_t recs = 0;
    volatile size_t sink = 0;
    double t0 = cpu_now(), t;
    do {
        ar.used = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (m == M_PIPELINE) {
                rec_t *d = logferry__v1__invocation_record__unpack(
                    &pa, p->enc_len[i], p->enc[i]);
                if (redact_apply(r, s, d, &pa, st) > 0) {
                    size_t len =
                        logferry__v1__invocation_record__get_packed_size(d);
                    uint8_t *out = arena_alloc(&ar, len);
                    sink += logferry__v1__invocation_record__pack(d, out);
                }
                continue;
            }
            rec_t *rec = &p->recs[i];
            memcpy(p->work[i], p->orig[i], PROMPT_LEN + 1);
            rec->prompt_text = p->work[i];
            if (m == M_APPLY)
                sink += (size_t)redact_apply(r, s, rec, &pa, st);
        }
        recs += p->n;
        t = cpu_now() - t0;
    } while (t < secs);
    free(ar.buf);
    (void)sink;
    return (double)recs / t;
}

static redact_rules *rules1(uint32_t detect, const char *const *pats,
                            size_t npats, redact_action a, const char *key_file)
{
    static const char *const f[] = {"*text"};
    redact_rule_spec sp = {.name = "bench",
                           .fields = f,
                           .n_fields = 1,
                           .action = a,
                           .detect = detect,
                           .patterns = pats,
                           .n_patterns = npats,
                           .key_file = key_file};
    char err[512];
    redact_rules *r = redact_compile(&sp, 1, err, sizeof err);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return r;
}

static void row(const char *name, double rps, double base_rps)
{
    double ns = 1e9 / rps - 1e9 / base_rps;
    printf("%-38s %10.0f %12.0f %13.0f\n", name, 1e9 / rps, rps,
           ns > 0 ? 1e9 / ns : 0.0);
}

int main(int argc, char **argv)
{
    size_t n = 4096;
    double secs = 1.0;
    unsigned pii_pct = 20;
    int opt;
    while ((opt = getopt(argc, argv, "n:t:p:s:")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 't':
            secs = strtod(optarg, NULL);
            break;
        case 'p':
            pii_pct = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            rng = strtoull(optarg, NULL, 0) | 1;
            break;
        default:
            fprintf(stderr, "usage: bench_redact [-n pool_records] [-t "
                            "seconds_per_row] [-p pii_percent] [-s seed]\n");
            return 2;
        }
    }
    if (!n || pii_pct > 100) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    pool p;
    pool_init(&p, n, pii_pct);
    redact_scratch *s = redact_scratch_new();

    const char *tmp = getenv("TMPDIR");
    char key_path[4096];
    snprintf(key_path, sizeof key_path, "%s/bench_redact_key_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    int kfd = mkstemp(key_path);
    if (kfd < 0 || write(kfd, "bench-key-0123456789abcdef", 26) != 26) {
        perror("key file");
        return 1;
    }
    close(kfd);

    printf("bench_redact: %zu records, %d-byte prompts, %u%% with one PII "
           "value, %.0f bytes encoded on average, %.1f s CPU per row\n",
           n, PROMPT_LEN, pii_pct, p.avg_encoded, secs);
    double base = run(&p, NULL, s, M_RESTORE, secs, NULL);
    printf("baseline (prompt restore only): %.1f ns/record, subtracted in "
           "the last column\n\n",
           1e9 / base);
    printf("%-38s %10s %12s %13s\n", "rules", "ns/record", "records/s",
           "net records/s");

    redact_rules *r = rules1(REDACT_DET_ALL, NULL, 0, REDACT_MASK, NULL);
    redact_rule_stats st[1] = {{0}};
    double all = run(&p, r, s, M_APPLY, secs, st);
    row("all built-in detectors (mask)", all, base);
    double all_pipe = run(&p, r, s, M_PIPELINE, secs, NULL);
    printf("%-38s %10.0f %12.0f %13s\n",
           "  decode + all + re-encode if changed", 1e9 / all_pipe, all_pipe,
           "-");
    redact_rules *none = redact_compile(NULL, 0, NULL, 0);
    double pipe0 = run(&p, none, s, M_PIPELINE, secs, NULL);
    printf("%-38s %10.0f %12.0f %13s\n", "  decode only (no rules)",
           1e9 / pipe0, pipe0, "-");
    redact_rules_free(none);
    redact_rules_free(r);

    for (unsigned d = 0; d < REDACT_DET_COUNT; d++) {
        char name[64];
        snprintf(name, sizeof name, "  %s alone", redact_detector_name(d));
        r = rules1(REDACT_DET_BIT(d), NULL, 0, REDACT_MASK, NULL);
        row(name, run(&p, r, s, M_APPLY, secs, NULL), base);
        redact_rules_free(r);
    }

    static const char *const email_re[] = {
        "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"};
    r = rules1(0, email_re, 1, REDACT_MASK, NULL);
    row("custom PCRE2 e-mail pattern (JIT)", run(&p, r, s, M_APPLY, secs, NULL),
        base);
    redact_rules_free(r);
    r = rules1(REDACT_DET_ALL, email_re, 1, REDACT_MASK, NULL);
    row("all built-ins + that pattern", run(&p, r, s, M_APPLY, secs, NULL),
        base);
    redact_rules_free(r);
    r = rules1(0, NULL, 0, REDACT_MASK, NULL);
    row("mask whole prompt", run(&p, r, s, M_APPLY, secs, NULL), base);
    redact_rules_free(r);
    r = rules1(0, NULL, 0, REDACT_HASH, key_path);
    row("hash whole prompt (HMAC-SHA256)", run(&p, r, s, M_APPLY, secs, NULL),
        base);
    redact_rules_free(r);
    r = rules1(REDACT_DET_ALL, NULL, 0, REDACT_HASH, key_path);
    row("all built-ins, hash the spans", run(&p, r, s, M_APPLY, secs, NULL),
        base);
    redact_rules_free(r);

    printf("\nall-detector rule: %llu values masked in %llu of the records "
           "run\n",
           (unsigned long long)st[0].matches,
           (unsigned long long)st[0].records);
    unlink(key_path);
    redact_scratch_free(s);
    pool_free(&p);
    return 0;
}
