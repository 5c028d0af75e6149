/*
 * redact.c - compiled redaction rules and their application to a decoded
 * record (contract in redact.h).
 *
 * A value goes through the rules that name its field, in order, bouncing
 * between the two output buffers of the caller's scratch; only the final
 * result is written back to the record, over the old string when it fits
 * (most masks shorten a value), so the usual record costs no allocation.
 * The built-in detectors live in redact_detect.c; custom patterns add
 * their matches to the same span list, which is sorted and merged before
 * the spans are masked or hashed.
 */
#include "redact.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pcre2.h>

#include "record_json.h"
#include "redact_detect.h"

/* ---- names ------------------------------------------------------------- */

static const char *const det_names[REDACT_DET_COUNT] = {
    [REDACT_DET_EMAIL] = "email",
    [REDACT_DET_CARD] = "card",
    [REDACT_DET_SSN] = "ssn",
    [REDACT_DET_PHONE] = "phone",
    [REDACT_DET_IPV4] = "ipv4",
    [REDACT_DET_IPV6] = "ipv6",
    [REDACT_DET_AWS_KEY_ID] = "aws_key_id",
    [REDACT_DET_AWS_SECRET] = "aws_secret",
    [REDACT_DET_BEARER] = "bearer",
    [REDACT_DET_API_TOKEN] = "api_token",
    [REDACT_DET_JWT] = "jwt",
};

const char *redact_detector_name(unsigned d)
{
    return d < REDACT_DET_COUNT ? det_names[d] : NULL;
}

int redact_detector_parse(const char *name, uint32_t *mask)
{
    if (!name)
        return -1;
    if (strcmp(name, "all") == 0) {
        *mask |= REDACT_DET_ALL;
        return 0;
    }
    if (strcmp(name, "ip") == 0) {
        *mask |=
            REDACT_DET_BIT(REDACT_DET_IPV4) | REDACT_DET_BIT(REDACT_DET_IPV6);
        return 0;
    }
    for (unsigned d = 0; d < REDACT_DET_COUNT; d++) {
        if (strcmp(name, det_names[d]) == 0) {
            *mask |= REDACT_DET_BIT(d);
            return 0;
        }
    }
    return -1;
}

int redact_action_parse(const char *name, redact_action *out)
{
    static const struct {
        const char *name;
        redact_action a;
    } acts[] = {{"drop", REDACT_DROP},
                {"mask", REDACT_MASK},
                {"hash", REDACT_HASH},
                {"truncate", REDACT_TRUNCATE}};
    for (size_t i = 0; name && i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(name, acts[i].name) == 0) {
            *out = acts[i].a;
            return 0;
        }
    }
    return -1;
}

/* ---- compiled rules ---------------------------------------------------- */

/* The fields a value can belong to. */
enum {
    F_PROMPT = 1u << 0,
    F_COMPLETION = 1u << 1,
    F_ERROR = 1u << 2,
    F_ATTR_ALL = 1u << 3, /* every attribute value */
    F_ATTR_KEY = 1u << 4, /* some attributes, by key (rule.attr_keys) */
};

typedef struct rx {
    pcre2_code *code;
    int jit;
} rx;

typedef struct rule {
    char *name;
    unsigned fields;
    char **attr_keys;
    size_t n_attr_keys;
    redact_action action;
    uint32_t detect;
    rx *rx;
    size_t n_rx;
    int spans;      /* detect or patterns: act on matches only */
    char *tok_pre;  /* mask token, split at "{type}" */
    char *tok_post; /* NULL: the token has no "{type}" */
    size_t pre_len, post_len;
    char fill; /* keep-length mask */
    /* hash: HMAC-SHA256 as two SHA-256 states that have absorbed the key
       XOR ipad and XOR opad; each value costs two state copies instead of
       a key schedule (5x faster than HMAC()). Read-only after compile. */
    EVP_MD *sha256;
    EVP_MD_CTX *hm_in, *hm_out;
    size_t trunc; /* truncate */
} rule;

struct redact_rules {
    rule *r;
    size_t n;
    unsigned fields; /* union of the rules' fields */
};

static void rule_clear(rule *ru)
{
    free(ru->name);
    for (size_t i = 0; i < ru->n_attr_keys; i++)
        free(ru->attr_keys[i]);
    free(ru->attr_keys);
    for (size_t i = 0; i < ru->n_rx; i++)
        pcre2_code_free(ru->rx[i].code);
    free(ru->rx);
    free(ru->tok_pre);
    free(ru->tok_post);
    EVP_MD_CTX_free(ru->hm_in);
    EVP_MD_CTX_free(ru->hm_out);
    EVP_MD_free(ru->sha256);
}

void redact_rules_free(redact_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rule_clear(&r->r[i]);
    free(r->r);
    free(r);
}

size_t redact_rule_count(const redact_rules *r)
{
    return r ? r->n : 0;
}

const char *redact_rule_name(const redact_rules *r, size_t i)
{
    return r && i < r->n ? r->r[i].name : NULL;
}

/* ---- compiling --------------------------------------------------------- */

typedef struct cerr {
    char *buf;
    size_t len;
    const redact_rule_spec *spec;
    const char *name;
} cerr;

static void fail(cerr *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(cerr *e, const char *fmt, ...)
{
    if (!e->len)
        return;
    const char *w = e->spec && e->spec->where ? e->spec->where : NULL;
    int n = snprintf(e->buf, e->len, "%s%sredact rule %s: ", w ? w : "",
                     w ? ": " : "", e->name ? e->name : "?");
    if (n < 0 || (size_t)n >= e->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
    va_end(ap);
}

static int add_attr_key(rule *ru, const char *key)
{
    for (size_t i = 0; i < ru->n_attr_keys; i++)
        if (strcmp(ru->attr_keys[i], key) == 0)
            return 0;
    char **v = realloc(ru->attr_keys, (ru->n_attr_keys + 1) * sizeof *v);
    if (!v)
        return -1;
    ru->attr_keys = v;
    if (!(v[ru->n_attr_keys] = strdup(key)))
        return -1;
    ru->n_attr_keys++;
    ru->fields |= F_ATTR_KEY;
    return 0;
}

static int parse_field(rule *ru, const char *f, cerr *e)
{
    static const char *const redactable =
        "prompt_text, completion_text, error_message, attributes.KEY, "
        "attributes.* or *text";
    if (!f || !*f) {
        fail(e, "empty field name; redactable: %s", redactable);
        return -1;
    }
    if (strcmp(f, "prompt_text") == 0) {
        ru->fields |= F_PROMPT;
    } else if (strcmp(f, "completion_text") == 0) {
        ru->fields |= F_COMPLETION;
    } else if (strcmp(f, "error_message") == 0) {
        ru->fields |= F_ERROR;
    } else if (strcmp(f, "*text") == 0) {
        ru->fields |= F_PROMPT | F_COMPLETION | F_ERROR | F_ATTR_ALL;
    } else if (strcmp(f, "attributes.*") == 0) {
        ru->fields |= F_ATTR_ALL;
    } else if (strncmp(f, "attributes.", 11) == 0 && f[11]) {
        if (add_attr_key(ru, f + 11)) {
            fail(e, "out of memory");
            return -1;
        }
    } else if (rjson_field_known(f)) {
        fail(e,
             "field \"%s\" cannot be redacted (identity and routing "
             "fields stay as written); redactable: %s",
             f, redactable);
        return -1;
    } else {
        fail(e, "unknown field \"%s\"; redactable: %s", f, redactable);
        return -1;
    }
    return 0;
}

/* RFC 2104: a key longer than the block is hashed first; the inner and
 * outer states absorb (key XOR 0x36..) and (key XOR 0x5c..). */
static int hmac_prepare(rule *ru, const unsigned char *key, size_t len)
{
    unsigned char k[64] = {0}, pad[64];
    unsigned kl;
    int ok = 0;
    ru->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ru->hm_in = EVP_MD_CTX_new();
    ru->hm_out = EVP_MD_CTX_new();
    if (!ru->sha256 || !ru->hm_in || !ru->hm_out)
        goto out;
    if (len > sizeof k) {
        if (!EVP_Digest(key, len, k, &kl, ru->sha256, NULL))
            goto out;
    } else {
        memcpy(k, key, len);
    }
    for (size_t i = 0; i < sizeof k; i++)
        pad[i] = k[i] ^ 0x36;
    if (!EVP_DigestInit_ex(ru->hm_in, ru->sha256, NULL) ||
        !EVP_DigestUpdate(ru->hm_in, pad, sizeof pad))
        goto out;
    for (size_t i = 0; i < sizeof k; i++)
        pad[i] = k[i] ^ 0x5c;
    if (!EVP_DigestInit_ex(ru->hm_out, ru->sha256, NULL) ||
        !EVP_DigestUpdate(ru->hm_out, pad, sizeof pad))
        goto out;
    ok = 1;
out:
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    return ok ? 0 : -1;
}

/* Read the HMAC key: the file's bytes, less trailing CR/LF (so an editor's
 * final newline does not change the key). Errors name the path only. The
 * key bytes are wiped once the HMAC states are prepared. */
static int read_key(rule *ru, const char *path, cerr *e)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(e, "key_file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        fail(e, "key_file %s: not a regular file", path);
        goto fail;
    }
    buf = malloc(REDACT_KEY_MAX + 3);
    if (!buf) {
        fail(e, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, REDACT_KEY_MAX + 3 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(e, "key_file %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == REDACT_KEY_MAX + 3)
            break;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len > REDACT_KEY_MAX) {
        fail(e, "key_file %s: longer than %d bytes", path, REDACT_KEY_MAX);
        goto fail;
    }
    if (len < REDACT_KEY_MIN) {
        fail(e, "key_file %s: %zu bytes, at least %d needed", path, len,
             REDACT_KEY_MIN);
        goto fail;
    }
    if (hmac_prepare(ru, buf, len)) {
        fail(e, "key_file %s: cannot set up HMAC-SHA256", path);
        goto fail;
    }
    OPENSSL_cleanse(buf, REDACT_KEY_MAX + 3);
    free(buf);
    close(fd);
    return 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, REDACT_KEY_MAX + 3);
        free(buf);
    }
    close(fd);
    return -1;
}

static int compile_patterns(rule *ru, const redact_rule_spec *sp, cerr *e)
{
    if (!sp->n_patterns)
        return 0;
    ru->rx = calloc(sp->n_patterns, sizeof *ru->rx);
    if (!ru->rx) {
        fail(e, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sp->n_patterns; i++) {
        const char *pat = sp->patterns[i];
        if (!pat || !*pat) {
            fail(e, "pattern %zu is empty", i + 1);
            return -1;
        }
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *c =
            pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
        if (!c) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
                snprintf((char *)msg, sizeof msg, "error %d", ec);
            fail(e, "pattern %zu: %s at offset %zu", i + 1, (char *)msg,
                 (size_t)eo);
            return -1;
        }
        ru->rx[ru->n_rx].code = c;
        ru->rx[ru->n_rx].jit = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
        ru->n_rx++;
    }
    return 0;
}

static int compile_rule(rule *ru, const redact_rule_spec *sp, size_t idx,
                        cerr *e)
{
    char num[32];
    snprintf(num, sizeof num, "#%zu", idx + 1);
    ru->name = strdup(sp->name && *sp->name ? sp->name : num);
    if (!ru->name) {
        fail(e, "out of memory");
        return -1;
    }
    e->name = ru->name;
    ru->action = sp->action;
    ru->detect = sp->detect;
    ru->spans = sp->detect || sp->n_patterns;

    if (sp->action < REDACT_DROP || sp->action > REDACT_TRUNCATE) {
        fail(e, "unknown action %d", (int)sp->action);
        return -1;
    }
    if (!sp->n_fields || !sp->fields) {
        fail(e, "no field given");
        return -1;
    }
    for (size_t i = 0; i < sp->n_fields; i++)
        if (parse_field(ru, sp->fields[i], e))
            return -1;
    if (sp->detect & ~REDACT_DET_ALL) {
        fail(e, "unknown detector (bits 0x%x)",
             (unsigned)(sp->detect & ~REDACT_DET_ALL));
        return -1;
    }
    if (sp->n_patterns && !sp->patterns) {
        fail(e, "patterns missing");
        return -1;
    }
    if (ru->spans && sp->action == REDACT_TRUNCATE) {
        fail(e, "action truncate cannot be combined with detect or "
                "patterns");
        return -1;
    }
    if ((sp->mask_token || sp->mask_fill) && sp->action != REDACT_MASK) {
        fail(e, "mask_token and mask_fill are only used by action mask");
        return -1;
    }
    if (sp->key_file && sp->action != REDACT_HASH) {
        fail(e, "key_file is only used by action hash");
        return -1;
    }
    if (sp->truncate_bytes && sp->action != REDACT_TRUNCATE) {
        fail(e, "a byte limit is only used by action truncate");
        return -1;
    }

    switch (sp->action) {
    case REDACT_DROP:
        break;
    case REDACT_MASK: {
        if (sp->mask_token && sp->mask_fill) {
            fail(e, "mask_token and mask_fill exclude each other");
            return -1;
        }
        if (sp->mask_fill) {
            if (sp->mask_fill < 0x20 || sp->mask_fill > 0x7e) {
                fail(e, "mask_fill must be a printable ASCII character");
                return -1;
            }
            ru->fill = sp->mask_fill;
            break;
        }
        const char *tok = sp->mask_token ? sp->mask_token : "[REDACTED]";
        if (strlen(tok) > REDACT_TOKEN_MAX) {
            fail(e, "mask_token longer than %d bytes", REDACT_TOKEN_MAX);
            return -1;
        }
        const char *ty = strstr(tok, "{type}");
        size_t pre = ty ? (size_t)(ty - tok) : strlen(tok);
        ru->tok_pre = strndup(tok, pre);
        ru->pre_len = pre;
        if (ty) {
            ru->tok_post = strdup(ty + 6);
            ru->post_len = ru->tok_post ? strlen(ru->tok_post) : 0;
        }
        if (!ru->tok_pre || (ty && !ru->tok_post)) {
            fail(e, "out of memory");
            return -1;
        }
        break;
    }
    case REDACT_HASH:
        if (!sp->key_file || !*sp->key_file) {
            fail(e, "action hash needs key_file");
            return -1;
        }
        if (read_key(ru, sp->key_file, e))
            return -1;
        break;
    case REDACT_TRUNCATE:
        if (!sp->truncate_bytes) {
            fail(e, "action truncate needs a byte limit of 1 or more (use "
                    "drop to clear a field)");
            return -1;
        }
        ru->trunc = sp->truncate_bytes;
        break;
    }
    return compile_patterns(ru, sp, e);
}

redact_rules *redact_compile(const redact_rule_spec *specs, size_t n, char *err,
                             size_t errlen)
{
    cerr e = {err, errlen, NULL, NULL};
    if (errlen)
        err[0] = '\0';
    redact_rules *r = calloc(1, sizeof *r);
    if (!r || (n && !(r->r = calloc(n, sizeof *r->r)))) {
        fail(&e, "out of memory");
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        e.spec = &specs[i];
        e.name = specs[i].name;
        r->n = i + 1; /* so that a failure frees this one too */
        if (compile_rule(&r->r[i], &specs[i], i, &e)) {
            redact_rules_free(r);
            return NULL;
        }
        r->fields |= r->r[i].fields;
    }
    /* Build the detector tables now rather than on the first record. */
    redact_spans none = {0};
    redact_detect("", 0, REDACT_DET_ALL, &none);
    return r;
}

/* ---- scratch ------------------------------------------------------------ */

struct redact_scratch {
    char *buf[2];
    size_t cap[2];
    redact_spans spans;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    EVP_MD_CTX *hctx;       /* HMAC working state */
    unsigned char *touched; /* per rule: changed something in this record */
    size_t touched_cap;
};

redact_scratch *redact_scratch_new(void)
{
    redact_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    /* One ovector pair is all we read; a pattern with groups then reports
       0 ("ovector too small") on a match, which is still a match. */
    s->md = pcre2_match_data_create(1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    s->hctx = EVP_MD_CTX_new();
    if (!s->md || !s->mctx || !s->jit || !s->hctx) {
        redact_scratch_free(s);
        return NULL;
    }
    pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    return s;
}

void redact_scratch_free(redact_scratch *s)
{
    if (!s)
        return;
    for (int k = 0; k < 2; k++) {
        if (s->buf[k])
            OPENSSL_cleanse(s->buf[k], s->cap[k]);
        free(s->buf[k]);
    }
    redact_spans_free(&s->spans);
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    EVP_MD_CTX_free(s->hctx);
    free(s->touched);
    free(s);
}

/* ---- output buffer ------------------------------------------------------ */

/* Appends to s->buf[k], growing it up to REDACT_FIELD_MAX + 1 bytes; past
 * that, or out of memory, `fail` is set and further output is dropped. */
typedef struct obuf {
    redact_scratch *s;
    int k;
    size_t n;
    int fail;
} obuf;

static int ob_reserve(obuf *o, size_t more)
{
    redact_scratch *s = o->s;
    if (o->fail)
        return -1;
    if (more > REDACT_FIELD_MAX - o->n) {
        o->fail = 1;
        return -1;
    }
    size_t need = o->n + more + 1;
    if (need <= s->cap[o->k])
        return 0;
    size_t cap = s->cap[o->k] ? s->cap[o->k] : 256;
    while (cap < need)
        cap *= 2;
    if (cap > REDACT_FIELD_MAX + 1)
        cap = REDACT_FIELD_MAX + 1;
    char *b = realloc(s->buf[o->k], cap);
    if (!b) {
        o->fail = 1;
        return -1;
    }
    s->buf[o->k] = b;
    s->cap[o->k] = cap;
    return 0;
}

static void ob_put(obuf *o, const void *p, size_t len)
{
    if (!len || ob_reserve(o, len))
        return;
    memcpy(o->s->buf[o->k] + o->n, p, len);
    o->n += len;
}

static void ob_fill(obuf *o, char c, size_t len)
{
    if (!len || ob_reserve(o, len))
        return;
    memset(o->s->buf[o->k] + o->n, c, len);
    o->n += len;
}

static const char *ob_finish(obuf *o)
{
    if (ob_reserve(o, 0))
        return NULL;
    o->s->buf[o->k][o->n] = '\0';
    return o->s->buf[o->k];
}

/* ---- actions --------------------------------------------------------------
 */

static size_t utf8_chars(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

/* The largest cut <= max that is not inside a UTF-8 sequence: step back
 * over continuation bytes (at most three) to the lead byte. */
static size_t utf8_cut(const char *p, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t c = max;
    while (c > 0 && max - c < 3 && ((unsigned char)p[c] & 0xC0) == 0x80)
        c--;
    return ((unsigned char)p[c] & 0xC0) == 0x80 ? max : c;
}

#define HASH_HEX 32
#define HASH_LEN (5 + HASH_HEX) /* "hmac:" + hex */

static int put_hash(const rule *ru, obuf *o, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char inner[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
    unsigned il = 0, mdlen = 0;
    char out[HASH_LEN];
    EVP_MD_CTX *c = o->s->hctx;
    if (!EVP_MD_CTX_copy_ex(c, ru->hm_in) || !EVP_DigestUpdate(c, p, n) ||
        !EVP_DigestFinal_ex(c, inner, &il) ||
        !EVP_MD_CTX_copy_ex(c, ru->hm_out) || !EVP_DigestUpdate(c, inner, il) ||
        !EVP_DigestFinal_ex(c, md, &mdlen) || mdlen < HASH_HEX / 2)
        return -1;
    memcpy(out, "hmac:", 5);
    for (int i = 0; i < HASH_HEX / 2; i++) {
        out[5 + 2 * i] = hex[md[i] >> 4];
        out[5 + 2 * i + 1] = hex[md[i] & 15];
    }
    ob_put(o, out, HASH_LEN);
    return 0;
}

static void put_token(const rule *ru, obuf *o, const char *type)
{
    ob_put(o, ru->tok_pre, ru->pre_len);
    if (ru->tok_post) {
        ob_put(o, type, strlen(type));
        ob_put(o, ru->tok_post, ru->post_len);
    }
}

/* Mask or hash in[a, b) into o. */
static int replace(const rule *ru, obuf *o, const char *in, size_t a, size_t b,
                   const char *type)
{
    if (ru->action == REDACT_HASH)
        return put_hash(ru, o, in + a, b - a);
    if (ru->fill)
        ob_fill(o, ru->fill, utf8_chars(in + a, b - a));
    else
        put_token(ru, o, type);
    return 0;
}

/* Add the custom patterns' matches to s->spans. */
static int match_patterns(const rule *ru, redact_scratch *s, const char *in,
                          size_t n)
{
    for (size_t k = 0; k < ru->n_rx; k++) {
        const rx *x = &ru->rx[k];
        size_t off = 0;
        while (off <= n) {
            int rc = x->jit ? pcre2_jit_match(x->code, (PCRE2_SPTR)in, n, off,
                                              0, s->md, s->mctx)
                            : pcre2_match(x->code, (PCRE2_SPTR)in, n, off, 0,
                                          s->md, s->mctx);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return -1; /* match or depth limit, JIT stack: fail closed */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
            size_t a = ov[0], b = ov[1];
            if (b > a && redact_spans_push(&s->spans, a, b,
                                           REDACT_DET_COUNT + (unsigned)k))
                return -1;
            if (b > off) {
                off = b;
            } else {
                off++;
                while (off < n && ((unsigned char)in[off] & 0xC0) == 0x80)
                    off++;
            }
        }
    }
    return 0;
}

/* Run one rule on in[0, n) and write the result into o. Returns 1 if the
 * value changed, 0 if not (o's content is then meaningless), -1 if the
 * rule could not complete. *matches gets what the rule counts. */
static int rule_run(const rule *ru, redact_scratch *s, const char *in, size_t n,
                    obuf *o, uint64_t *matches)
{
    *matches = 0;
    if (ru->spans) {
        s->spans.n = 0;
        if (ru->detect && redact_detect(in, n, ru->detect, &s->spans))
            return -1;
        if (match_patterns(ru, s, in, n))
            return -1;
        if (!s->spans.n)
            return 0;
        redact_spans_normalize(&s->spans);
        *matches = s->spans.n;
        if (ru->action == REDACT_DROP)
            return 1; /* o stays empty */
        size_t at = 0;
        for (size_t i = 0; i < s->spans.n; i++) {
            const redact_span *sp = &s->spans.v[i];
            ob_put(o, in + at, sp->start - at);
            const char *type =
                sp->label < REDACT_DET_COUNT ? det_names[sp->label] : ru->name;
            if (replace(ru, o, in, sp->start, sp->end, type))
                return -1;
            at = sp->end;
        }
        ob_put(o, in + at, n - at);
        return o->fail ? -1 : 1;
    }

    switch (ru->action) {
    case REDACT_DROP:
        break;
    case REDACT_MASK:
    case REDACT_HASH:
        if (replace(ru, o, in, 0, n, ru->name))
            return -1;
        break;
    case REDACT_TRUNCATE: {
        size_t c = utf8_cut(in, n, ru->trunc);
        if (c == n)
            return 0;
        ob_put(o, in, c);
        break;
    }
    }
    if (o->fail)
        return -1;
    if (o->n == n && memcmp(o->s->buf[o->k], in, n) == 0)
        return 0; /* already masked */
    *matches = 1;
    return 1;
}

static int rule_wants(const rule *ru, unsigned fbit, const char *attr_key)
{
    if (ru->fields & fbit)
        return 1;
    if (attr_key && (ru->fields & F_ATTR_KEY)) {
        for (size_t i = 0; i < ru->n_attr_keys; i++)
            if (strcmp(ru->attr_keys[i], attr_key) == 0)
                return 1;
    }
    return 0;
}

/* Run every rule that applies to one value. Returns 1 with *res and *res_n set
 * (a NUL-terminated scratch buffer) if the value changed, 0 if not, -1 if
 * a rule could not complete. *last is the last rule that changed it or
 * failed, for the fail_closed count. */
static int run_rules(const redact_rules *R, redact_scratch *s, unsigned fbit,
                     const char *attr_key, const char *in, size_t n,
                     const char **res, size_t *res_n, size_t *last,
                     redact_rule_stats *st)
{
    const char *cur = in;
    int cur_k = -1, changed = 0;
    if (n > REDACT_FIELD_MAX) {
        for (size_t i = 0; i < R->n; i++)
            if (rule_wants(&R->r[i], fbit, attr_key)) {
                *last = i;
                return -1;
            }
        return 0;
    }
    for (size_t i = 0; i < R->n; i++) {
        const rule *ru = &R->r[i];
        if (!rule_wants(ru, fbit, attr_key))
            continue;
        obuf o = {s, cur_k == 0 ? 1 : 0, 0, 0};
        uint64_t m = 0;
        int rc = rule_run(ru, s, cur, n, &o, &m);
        if (rc < 0) {
            *last = i;
            return -1;
        }
        if (rc == 0)
            continue;
        const char *out = ob_finish(&o);
        if (!out) {
            *last = i;
            return -1;
        }
        cur = out;
        cur_k = o.k;
        n = o.n;
        changed = 1;
        *last = i;
        s->touched[i] = 1;
        if (st) {
            st[i].fields++;
            st[i].matches += m;
        }
    }
    if (!changed)
        return 0;
    *res = cur;
    *res_n = n;
    return 1;
}

static int touched_reset(redact_scratch *s, size_t n)
{
    if (n > s->touched_cap) {
        unsigned char *t = realloc(s->touched, n);
        if (!t)
            return -1;
        s->touched = t;
        s->touched_cap = n;
    }
    memset(s->touched, 0, n);
    return 0;
}

static void touched_count(const redact_rules *R, redact_scratch *s,
                          redact_rule_stats *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < R->n; i++)
        st[i].records += s->touched[i];
}

static void fail_closed(redact_scratch *s, size_t rule_i, redact_rule_stats *st)
{
    s->touched[rule_i] = 1;
    if (st)
        st[rule_i].fail_closed++;
}

/* Redact the string in *slot. Returns 1 if it changed. */
static int redact_slot(const redact_rules *R, redact_scratch *s, char **slot,
                       unsigned fbit, const char *attr_key,
                       const ProtobufCAllocator *alloc, redact_rule_stats *st)
{
    char *old = *slot;
    if (!old || !*old)
        return 0;
    size_t n = strlen(old), rn = 0, last = 0;
    const char *res = NULL;
    int rc = run_rules(R, s, fbit, attr_key, old, n, &res, &rn, &last, st);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        OPENSSL_cleanse(old, n);
        fail_closed(s, last, st);
        return 1;
    }
    if (rn <= n) {
        memcpy(old, res, rn);
        if (rn < n)
            OPENSSL_cleanse(old + rn, n - rn);
        old[rn] = '\0';
        return 1;
    }
    char *nw =
        alloc ? alloc->alloc(alloc->allocator_data, rn + 1) : malloc(rn + 1);
    if (!nw) {
        OPENSSL_cleanse(old, n);
        fail_closed(s, last, st);
        return 1;
    }
    memcpy(nw, res, rn + 1);
    OPENSSL_cleanse(old, n);
    if (alloc)
        alloc->free(alloc->allocator_data, old);
    else
        free(old);
    *slot = nw;
    return 1;
}

int redact_apply(const redact_rules *R, redact_scratch *s,
                 Logferry__V1__InvocationRecord *rec,
                 const ProtobufCAllocator *alloc, redact_rule_stats *st)
{
    if (!R || !R->n || !rec || !s)
        return 0;
    if (touched_reset(s, R->n)) {
        /* Cannot even count: clear every field the rules name. */
        int c = 0;
        char *f[3] = {rec->prompt_text, rec->completion_text,
                      rec->error_message};
        for (int i = 0; i < 3; i++)
            if ((R->fields & (F_PROMPT << i)) && f[i] && *f[i]) {
                OPENSSL_cleanse(f[i], strlen(f[i]));
                c++;
            }
        for (size_t i = 0; i < rec->n_attributes; i++) {
            Logferry__V1__InvocationRecord__AttributesEntry *a =
                rec->attributes[i];
            if (a && a->value && *a->value &&
                (R->fields & (F_ATTR_ALL | F_ATTR_KEY))) {
                OPENSSL_cleanse(a->value, strlen(a->value));
                c++;
            }
        }
        return c;
    }
    int changed = 0;
    if (R->fields & F_PROMPT)
        changed +=
            redact_slot(R, s, &rec->prompt_text, F_PROMPT, NULL, alloc, st);
    if (R->fields & F_COMPLETION)
        changed += redact_slot(R, s, &rec->completion_text, F_COMPLETION, NULL,
                               alloc, st);
    if (R->fields & F_ERROR)
        changed +=
            redact_slot(R, s, &rec->error_message, F_ERROR, NULL, alloc, st);
    if (R->fields & (F_ATTR_ALL | F_ATTR_KEY)) {
        for (size_t i = 0; i < rec->n_attributes; i++) {
            Logferry__V1__InvocationRecord__AttributesEntry *a =
                rec->attributes[i];
            if (a)
                changed += redact_slot(R, s, &a->value, F_ATTR_ALL,
                                       a->key ? a->key : "", alloc, st);
        }
    }
    touched_count(R, s, st);
    return changed;
}

int redact_string(const redact_rules *R, redact_scratch *s, const char *field,
                  const char *text, size_t len, const char **out,
                  size_t *out_len, redact_rule_stats *st)
{
    unsigned fbit;
    const char *key = NULL;
    if (!field)
        return -1;
    if (strcmp(field, "prompt_text") == 0) {
        fbit = F_PROMPT;
    } else if (strcmp(field, "completion_text") == 0) {
        fbit = F_COMPLETION;
    } else if (strcmp(field, "error_message") == 0) {
        fbit = F_ERROR;
    } else if (strncmp(field, "attributes.", 11) == 0 && field[11]) {
        fbit = F_ATTR_ALL;
        key = field + 11;
    } else {
        return -1;
    }
    *out = text;
    *out_len = len;
    if (!R || !R->n || !s || !len)
        return 0;
    if (touched_reset(s, R->n))
        return *out = "", *out_len = 0, 1;
    const char *res;
    size_t rn, last = 0;
    int rc = run_rules(R, s, fbit, key, text, len, &res, &rn, &last, st);
    if (rc < 0) {
        fail_closed(s, last, st);
        res = "";
        rn = 0;
        rc = 1;
    }
    if (rc > 0) {
        *out = res;
        *out_len = rn;
    }
    touched_count(R, s, st);
    return rc;
}
