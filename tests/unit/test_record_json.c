/*
 * test_record_json.c - the record -> JSON encoder and the field accessor.
 *
 * jansson is the independent judge of "valid JSON with these values"; the
 * expected sanitisation of invalid UTF-8 comes from a reference written
 * differently from the encoder (it reasons about the code point range a
 * prefix can still reach rather than per-lead byte ranges), and expected
 * times come from gmtime_r().
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record_json.h"

/* ---- helpers ------------------------------------------------------------ */

#define REC_INIT LOGFERRY__V1__INVOCATION_RECORD__INIT
#define ATTR_INIT LOGFERRY__V1__INVOCATION_RECORD__ATTRIBUTES_ENTRY__INIT
typedef Logferry__V1__InvocationRecord rec_t;
typedef Logferry__V1__InvocationRecord__AttributesEntry attr_t;

static const uint8_t RID[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

/* Render to a malloc'ed string; the caller frees. */
static char *render(const rec_t *r)
{
    char *buf = NULL;
    size_t cap = 0;
    size_t n = rjson_render_alloc(r, &buf, &cap, SIZE_MAX - 1);
    ck_assert_uint_ne(n, (size_t)-1);
    ck_assert_uint_eq(strlen(buf), n);
    ck_assert_uint_eq(rjson_render(r, NULL, 0), n);
    return buf;
}

static json_t *parse(const char *s, size_t flags)
{
    json_error_t err;
    json_t *j = json_loads(s, flags, &err);
    if (!j)
        ck_abort_msg("jansson rejected output: %s at %d: %.200s", err.text,
                     err.position, s);
    ck_assert(json_is_object(j));
    return j;
}

static void assert_jstr(json_t *obj, const char *key, const char *want,
                        size_t want_len)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(v != NULL, "missing key %s", key);
    ck_assert_msg(json_is_string(v), "key %s not a string", key);
    ck_assert_uint_eq(json_string_length(v), want_len);
    ck_assert(memcmp(json_string_value(v), want, want_len) == 0);
}

static void assert_jint(json_t *obj, const char *key, long long want)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(v != NULL, "missing key %s", key);
    ck_assert_msg(json_is_integer(v), "key %s not an integer", key);
    ck_assert_int_eq(json_integer_value(v), want);
}

/* Reference sanitiser: replace each maximal ill-formed subpart with one
 * U+FFFD. A prefix is "still possible" when the code points its
 * completions span meet the scalar values allowed for that length. */
static uint32_t fill_cp(const uint8_t *p, size_t have, size_t len, int fill)
{
    static const uint8_t lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = p[0] & lead_mask[len];
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | ((i < have ? p[i] : (fill ? 0xbf : 0x80)) & 0x3f);
    return cp;
}

static int prefix_possible(const uint8_t *p, size_t have, size_t len)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t lo = fill_cp(p, have, len, 0), hi = fill_cp(p, have, len, 1);
    if (hi < min_cp[len] || lo > 0x10ffff)
        return 0;
    if (lo >= 0xd800 && hi <= 0xdfff)
        return 0;
    return 1;
}

static size_t ref_sanitize(const char *in, size_t n, char *out)
{
    const uint8_t *s = (const uint8_t *)in;
    size_t o = 0, i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 1) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        size_t k = 1;
        if (len && prefix_possible(s + i, 1, len)) {
            while (k < len && i + k < n && (s[i + k] & 0xc0) == 0x80 &&
                   prefix_possible(s + i, k + 1, len))
                k++;
        }
        if (len && k == len) {
            memcpy(out + o, s + i, len);
            o += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += k;
    }
    return o;
}

/* Expected "time" via gmtime_r, with floor division for pre-1970. */
static void ref_time(int64_t ns, char out[64])
{
    int64_t s = ns / 1000000000, r = ns % 1000000000;
    if (r < 0) {
        r += 1000000000;
        s--;
    }
    time_t t = (time_t)s;
    struct tm tm;
    ck_assert(gmtime_r(&t, &tm) != NULL);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(r / 1000000));
}

static void full_record(rec_t *r, attr_t *a, attr_t **ap)
{
    static const char *const keys[3] = {"tier", "feature", "zeta"};
    static const char *const vals[3] = {"gold", "chat", "last"};
    for (int i = 0; i < 3; i++) {
        attr_t e = ATTR_INIT;
        e.key = (char *)keys[i];
        e.value = (char *)vals[i];
        a[i] = e;
        ap[i] = &a[i];
    }
    r->record_id.data = (uint8_t *)RID;
    r->record_id.len = 16;
    r->event_time_ns = 1795613284123456789; /* 2026-11-25T13:28:04.123Z */
    r->tenant_id = "tenant-a";
    r->account_id = "123456789012";
    r->app = "checkout";
    r->region = "us-east-1";
    r->model_id = "anthropic.claude-3-haiku-20240307-v1:0";
    r->operation = "Converse";
    r->input_tokens = 1234;
    r->output_tokens = 567;
    r->cache_read_tokens = 89;
    r->cache_write_tokens = 10;
    r->latency_ms = 2345;
    r->time_to_first_token_ms = 321;
    r->status = LOGFERRY__V1__STATUS__STATUS_THROTTLED;
    r->error_type = "ThrottlingException";
    r->error_message = "Rate exceeded";
    r->request_id = "req-1";
    r->trace_id = "1-5759e988-bd862e3fe1be46a994272793";
    r->session_id = "sess-9";
    r->prompt_text = "Hello, \"model\"";
    r->completion_text = "Hi\nthere";
    r->n_attributes = 3;
    r->attributes = ap;
}

static const char *const FIELD_ORDER[] = {
    "time",
    "record_id",
    "event_time_ns",
    "tenant_id",
    "account_id",
    "app",
    "region",
    "model_id",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "latency_ms",
    "time_to_first_token_ms",
    "status",
    "error_type",
    "error_message",
    "request_id",
    "trace_id",
    "session_id",
    "prompt_text",
    "completion_text",
    "attributes",
};
#define N_ORDER (sizeof FIELD_ORDER / sizeof FIELD_ORDER[0])

/* ---- every field ---------------------------------------------------- */

START_TEST(test_every_field)
{
    rec_t r = REC_INIT;
    attr_t a[3];
    attr_t *ap[3];
    full_record(&r, a, ap);
    char *s = render(&r);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);

    ck_assert_uint_eq(json_object_size(j), N_ORDER);
    assert_jstr(j, "time", "2026-11-25T13:28:04.123Z", 24);
    assert_jstr(j, "record_id", "00112233445566778899aabbccddeeff", 32);
    assert_jint(j, "event_time_ns", 1795613284123456789);
    assert_jstr(j, "tenant_id", "tenant-a", 8);
    assert_jstr(j, "account_id", "123456789012", 12);
    assert_jstr(j, "app", "checkout", 8);
    assert_jstr(j, "region", "us-east-1", 9);
    assert_jstr(j, "model_id", r.model_id, strlen(r.model_id));
    assert_jstr(j, "operation", "Converse", 8);
    assert_jint(j, "input_tokens", 1234);
    assert_jint(j, "output_tokens", 567);
    assert_jint(j, "cache_read_tokens", 89);
    assert_jint(j, "cache_write_tokens", 10);
    assert_jint(j, "latency_ms", 2345);
    assert_jint(j, "time_to_first_token_ms", 321);
    assert_jstr(j, "status", "throttled", 9);
    assert_jstr(j, "error_type", "ThrottlingException", 19);
    assert_jstr(j, "error_message", "Rate exceeded", 13);
    assert_jstr(j, "request_id", "req-1", 5);
    assert_jstr(j, "trace_id", r.trace_id, strlen(r.trace_id));
    assert_jstr(j, "session_id", "sess-9", 6);
    assert_jstr(j, "prompt_text", "Hello, \"model\"", 14);
    assert_jstr(j, "completion_text", "Hi\nthere", 8);
    json_t *at = json_object_get(j, "attributes");
    ck_assert(json_is_object(at));
    ck_assert_uint_eq(json_object_size(at), 3);
    assert_jstr(at, "tier", "gold", 4);
    assert_jstr(at, "feature", "chat", 4);
    assert_jstr(at, "zeta", "last", 4);

    /* Keys in field-number order, "time" first. */
    ck_assert(strncmp(s, "{\"time\":\"", 9) == 0);
    const char *prev = s;
    for (size_t i = 0; i < N_ORDER; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", FIELD_ORDER[i]);
        const char *at_key = strstr(s, key);
        ck_assert_msg(at_key != NULL, "no %s", key);
        ck_assert_msg(at_key >= prev, "%s out of order", key);
        prev = at_key;
    }
    /* Attribute keys sorted. */
    ck_assert_ptr_nonnull(
        strstr(s, "\"attributes\":{\"feature\":\"chat\",\"tier\":\"gold\","
                  "\"zeta\":\"last\"}}"));
    json_decref(j);
    free(s);
}
END_TEST

START_TEST(test_golden_small)
{
    rec_t r = REC_INIT;
    r.record_id.data = (uint8_t *)RID;
    r.record_id.len = 16;
    r.event_time_ns = 1000000;
    r.tenant_id = "t";
    r.input_tokens = 7;
    r.status = LOGFERRY__V1__STATUS__STATUS_OK;
    char *s = render(&r);
    ck_assert_str_eq(s, "{\"time\":\"1970-01-01T00:00:00.001Z\","
                        "\"record_id\":\"00112233445566778899aabbccddeeff\","
                        "\"event_time_ns\":1000000,\"tenant_id\":\"t\","
                        "\"input_tokens\":7,\"status\":\"ok\"}");
    free(s);
}
END_TEST

START_TEST(test_defaults_omitted)
{
    rec_t r = REC_INIT;
    char *s = render(&r);
    /* record_id, time and event_time_ns stay even when empty/zero. */
    ck_assert_str_eq(s, "{\"time\":\"1970-01-01T00:00:00.000Z\","
                        "\"record_id\":\"\",\"event_time_ns\":0}");
    free(s);

    /* NULL strings (hand-built records) read as "". */
    rec_t n = REC_INIT;
    n.tenant_id = NULL;
    n.prompt_text = NULL;
    s = render(&n);
    ck_assert_ptr_null(strstr(s, "tenant_id"));
    free(s);
}
END_TEST

START_TEST(test_status_names)
{
    static const struct {
        int v;
        const char *json; /* NULL: omitted */
        const char *field;
    } cases[] = {
        {0, NULL, "unspecified"},        {1, "\"ok\"", "ok"},
        {2, "\"error\"", "error"},       {3, "\"throttled\"", "throttled"},
        {4, "\"timeout\"", "timeout"},   {5, "\"cancelled\"", "cancelled"},
        {6, "\"filtered\"", "filtered"}, {7, "7", "7"},
        {1000, "1000", "1000"},          {-3, "-3", "-3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rec_t r = REC_INIT;
        r.status = (Logferry__V1__Status)cases[i].v;
        char *s = render(&r);
        json_t *j = parse(s, JSON_REJECT_DUPLICATES);
        const char *st = strstr(s, "\"status\":");
        if (!cases[i].json) {
            ck_assert_ptr_null(st);
        } else {
            ck_assert_ptr_nonnull(st);
            ck_assert(strncmp(st + 9, cases[i].json, strlen(cases[i].json)) ==
                      0);
        }
        char scratch[RJSON_FIELD_SCRATCH];
        const char *out;
        size_t n = rjson_field(&r, "status", scratch, sizeof scratch, &out);
        ck_assert_uint_eq(n, strlen(cases[i].field));
        ck_assert_str_eq(out, cases[i].field);
        json_decref(j);
        free(s);
    }
}
END_TEST

START_TEST(test_integer_extremes)
{
    rec_t r = REC_INIT;
    r.input_tokens = UINT64_MAX;
    r.output_tokens = (uint64_t)INT64_MAX;
    r.cache_read_tokens = 1;
    r.cache_write_tokens = 10;
    r.latency_ms = UINT32_MAX;
    r.time_to_first_token_ms = 99;
    r.event_time_ns = INT64_MIN;
    char *s = render(&r);
    /* UINT64_MAX is valid JSON but beyond jansson's json_int_t, so check
       the text for it and let jansson judge the rest. */
    ck_assert_ptr_nonnull(strstr(s, "\"input_tokens\":18446744073709551615,"));
    ck_assert_ptr_nonnull(strstr(s, "\"event_time_ns\":-9223372036854775808,"));
    free(s);

    r.input_tokens = 100;
    s = render(&r);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);
    assert_jint(j, "input_tokens", 100);
    assert_jint(j, "output_tokens", INT64_MAX);
    assert_jint(j, "cache_read_tokens", 1);
    assert_jint(j, "cache_write_tokens", 10);
    assert_jint(j, "latency_ms", UINT32_MAX);
    assert_jint(j, "time_to_first_token_ms", 99);
    assert_jint(j, "event_time_ns", INT64_MIN);
    json_decref(j);
    free(s);
}
END_TEST

START_TEST(test_record_id_lengths)
{
    rec_t r = REC_INIT;
    uint8_t id[40];
    for (size_t i = 0; i < sizeof id; i++)
        id[i] = (uint8_t)(i * 37 + 5);
    for (size_t len = 0; len <= sizeof id; len++) {
        r.record_id.data = id;
        r.record_id.len = len;
        char *s = render(&r);
        json_t *j = parse(s, JSON_REJECT_DUPLICATES);
        char want[2 * sizeof id + 1];
        for (size_t i = 0; i < len; i++)
            snprintf(want + 2 * i, 3, "%02x", id[i]);
        want[2 * len] = '\0';
        assert_jstr(j, "record_id", want, 2 * len);
        json_decref(j);
        free(s);
    }
}
END_TEST

/* ---- escaping -------------------------------------------------------- */

START_TEST(test_escape_controls)
{
    char in[40];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        in[n++] = (char)c;
    in[n++] = '"';
    in[n++] = '\\';
    in[n++] = 0x7f;
    in[n++] = '/';
    in[n] = '\0';

    rec_t r = REC_INIT;
    r.error_message = in;
    char *s = render(&r);
    const char *want =
        "\"error_message\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006"
        "\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012"
        "\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b"
        "\\u001c\\u001d\\u001e\\u001f\\\"\\\\\x7f/\"";
    ck_assert_msg(strstr(s, want) != NULL, "got %s", s);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);
    assert_jstr(j, "error_message", in, n);
    json_decref(j);
    free(s);
}
END_TEST

static const struct {
    const char *in, *want;
} bad_utf8[] = {
    {"\x80", "\xef\xbf\xbd"},
    {"\xbf", "\xef\xbf\xbd"},
    {"a\x80\x80z", "a\xef\xbf\xbd\xef\xbf\xbdz"},
    {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong NUL */
    {"\xc1\xbf", "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
    {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xe0\x9f\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf0\x80\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf0\x8f\xbf\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* D800 */
    {"\xed\xbf\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* DFFF */
    {"\xed\xa0\xbd\xed\xb8\x80", /* CESU-8 surrogate pair */
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
     "\xef\xbf\xbd"},
    {"\xf4\x90\x80\x80", /* U+110000 */
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf5\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf8\x88\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xfe", "\xef\xbf\xbd"},
    {"\xff", "\xef\xbf\xbd"},
    {"\xc3", "\xef\xbf\xbd"},                 /* truncated at end */
    {"\xe2\x82", "\xef\xbf\xbd"},             /* truncated at end */
    {"\xf0\x9f\x98", "\xef\xbf\xbd"},         /* truncated at end */
    {"a\xe2\x82z", "a\xef\xbf\xbdz"},         /* truncated mid-string */
    {"\xf0\x9f\x98\x41", "\xef\xbf\xbd\x41"}, /* truncated by ASCII */
    {"\xc3\x28", "\xef\xbf\xbd("},
    {"\xe2\x28\xa1", "\xef\xbf\xbd(\xef\xbf\xbd"},
    {"\xc3\xa9\xff\xc3\xa9", "\xc3\xa9\xef\xbf\xbd\xc3\xa9"},
    {"abcdefgh\xffijklmnop", "abcdefgh\xef\xbf\xbdijklmnop"},
    {"abcdefg\xe2\x82", "abcdefg\xef\xbf\xbd"},
    {"\"\xff\\", "\"\xef\xbf\xbd\\"},
};

START_TEST(test_invalid_utf8)
{
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        const char *in = bad_utf8[i].in, *want = bad_utf8[i].want;
        char ref[64];
        size_t rn = ref_sanitize(in, strlen(in), ref);
        ck_assert_msg(rn == strlen(want) && memcmp(ref, want, rn) == 0,
                      "reference disagrees with table, case %zu", i);

        rec_t r = REC_INIT;
        attr_t e = ATTR_INIT, *ep = &e;
        r.tenant_id = (char *)in;
        r.completion_text = (char *)in;
        e.key = (char *)in;
        e.value = (char *)in;
        r.n_attributes = 1;
        r.attributes = &ep;
        char *s = render(&r);
        json_t *j = parse(s, JSON_REJECT_DUPLICATES);
        assert_jstr(j, "tenant_id", want, strlen(want));
        assert_jstr(j, "completion_text", want, strlen(want));
        json_t *at = json_object_get(j, "attributes");
        char key[64];
        memcpy(key, want, strlen(want) + 1);
        assert_jstr(at, key, want, strlen(want));
        json_decref(j);
        free(s);
    }
}
END_TEST

START_TEST(test_valid_utf8_passes)
{
    static const char *const ok[] = {
        "\xc2\x80",          /* U+0080 */
        "\xc3\xa9t\xc3\xa9", /* été */
        "\xdf\xbf",          /* U+07FF */
        "\xe0\xa0\x80",      /* U+0800 */
        "\xe2\x82\xac",      /* € */
        "\xed\x9f\xbf",      /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",      /* U+E000, just above */
        "\xef\xbf\xbd",      /* U+FFFD itself */
        "\xef\xbf\xbf",      /* U+FFFF */
        "\xf0\x90\x80\x80",  /* U+10000 */
        "\xf0\x9f\x98\x80",  /* 😀 */
        "\xf4\x8f\xbf\xbf",  /* U+10FFFF */
        "\xe2\x80\xa8",      /* U+2028: legal raw in JSON */
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        rec_t r = REC_INIT;
        r.prompt_text = (char *)ok[i];
        char *s = render(&r);
        char want[96];
        snprintf(want, sizeof want, "\"prompt_text\":\"%s\"", ok[i]);
        ck_assert_msg(strstr(s, want) != NULL, "case %zu not raw", i);
        json_t *j = parse(s, JSON_REJECT_DUPLICATES);
        assert_jstr(j, "prompt_text", ok[i], strlen(ok[i]));
        json_decref(j);
        free(s);
    }
}
END_TEST

START_TEST(test_one_megabyte)
{
    static const char piece[] = "h\xc3\xa9llo w\xc3\xb6rld \"q\" \\ \n\t"
                                "\xf0\x9f\x98\x80 \xff\xed\xa0\x80 plain "
                                "ascii run of text ";
    size_t n = 1 << 20, pl = sizeof piece - 1;
    char *in = malloc(n + 1);
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < n; i++)
        in[i] = piece[i % pl];
    in[n] = '\0';
    char *want = malloc(3 * n);
    ck_assert_ptr_nonnull(want);
    size_t wn = ref_sanitize(in, n, want);

    rec_t r = REC_INIT;
    r.prompt_text = in;
    char *s = render(&r);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);
    assert_jstr(j, "prompt_text", want, wn);
    json_decref(j);
    free(s);
    free(want);
    free(in);
}
END_TEST

/* ---- truncation --------------------------------------------------------- */

START_TEST(test_truncation_safe)
{
    rec_t r = REC_INIT;
    attr_t a[3];
    attr_t *ap[3];
    full_record(&r, a, ap);
    r.prompt_text = "x\xff\x01\xe2\x82\xac\"";
    char *full = render(&r);
    size_t n = strlen(full);

    ck_assert_uint_eq(rjson_render(&r, NULL, 0), n);
    char *buf = malloc(n + 16);
    ck_assert_ptr_nonnull(buf);
    for (size_t cap = 0; cap <= n + 2; cap++) {
        memset(buf, 0x5a, n + 16);
        size_t got = rjson_render(&r, buf, cap);
        ck_assert_uint_eq(got, n);
        if (cap > 0) {
            size_t w = cap - 1 < n ? cap - 1 : n;
            ck_assert(memcmp(buf, full, w) == 0);
            ck_assert_int_eq(buf[w], '\0');
        }
        for (size_t k = cap; k < n + 16; k++)
            ck_assert_msg(buf[k] == 0x5a, "wrote past cap %zu at %zu", cap, k);
    }
    free(buf);
    free(full);
}
END_TEST

START_TEST(test_render_alloc)
{
    rec_t r = REC_INIT;
    r.prompt_text = "some text that is long enough to need growth";
    char *buf = NULL;
    size_t cap = 0;
    size_t n = rjson_render_alloc(&r, &buf, &cap, 4096);
    ck_assert_uint_ne(n, (size_t)-1);
    ck_assert_uint_gt(cap, n);
    /* Reuses the buffer it already has. */
    char *same = buf;
    ck_assert_uint_eq(rjson_render_alloc(&r, &buf, &cap, 4096), n);
    ck_assert_ptr_eq(buf, same);
    /* Too big for the limit: refused, buffer still valid. */
    r.completion_text = "padding padding padding padding padding padding "
                        "padding padding padding padding padding padding";
    ck_assert_uint_eq(rjson_render_alloc(&r, &buf, &cap, n + 10), (size_t)-1);
    ck_assert_ptr_nonnull(buf);
    free(buf);
}
END_TEST

/* ---- attributes ------------------------------------------------------- */

START_TEST(test_attributes_sorted_and_deduplicated)
{
    attr_t e[5] = {ATTR_INIT, ATTR_INIT, ATTR_INIT, ATTR_INIT, ATTR_INIT};
    attr_t *ep[6];
    const char *kv[5][2] = {{"b", "1"},
                            {"a", "2"},
                            {"b", "3"},
                            {"\xc3\xa9", "4"},
                            {"", "empty-key"}};
    for (int i = 0; i < 5; i++) {
        e[i].key = (char *)kv[i][0];
        e[i].value = (char *)kv[i][1];
        ep[i] = &e[i];
    }
    ep[5] = NULL; /* a hole is skipped, not a crash */
    rec_t r = REC_INIT;
    r.n_attributes = 6;
    r.attributes = ep;
    char *s = render(&r);
    ck_assert_msg(strstr(s, "\"attributes\":{\"\":\"empty-key\",\"a\":\"2\","
                            "\"b\":\"3\",\"\xc3\xa9\":\"4\"}}") != NULL,
                  "got %s", s);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);
    json_decref(j);
    free(s);

    char scratch[RJSON_FIELD_SCRATCH];
    const char *out;
    ck_assert_uint_eq(
        rjson_field(&r, "attributes.b", scratch, sizeof scratch, &out), 1);
    ck_assert_str_eq(out, "3");
    ck_assert_uint_eq(
        rjson_field(&r, "attributes.nope", scratch, sizeof scratch, &out), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_many_attributes)
{
    enum { N = 300 };
    attr_t *e = calloc(N, sizeof *e);
    attr_t **ep = calloc(N, sizeof *ep);
    char(*keys)[16] = calloc(N, sizeof *keys);
    ck_assert(e && ep && keys);
    for (int i = 0; i < N; i++) {
        attr_t init = ATTR_INIT;
        e[i] = init;
        /* Descending, with every 7th a duplicate of its predecessor. */
        int k = (i % 7 == 6) ? N - i : N - i - 1;
        snprintf(keys[i], sizeof keys[i], "k%05d", k);
        e[i].key = keys[i];
        e[i].value = keys[i];
        ep[i] = &e[i];
    }
    rec_t r = REC_INIT;
    r.n_attributes = N;
    r.attributes = ep;
    char *s = render(&r);
    json_t *j = parse(s, JSON_REJECT_DUPLICATES);
    json_t *at = json_object_get(j, "attributes");
    char prev[16] = "";
    const char *p = strstr(s, "\"attributes\":{") + 14;
    size_t count = 0;
    while (*p == '"') {
        const char *q = strchr(p + 1, '"');
        char key[16];
        memcpy(key, p + 1, (size_t)(q - p - 1));
        key[q - p - 1] = '\0';
        ck_assert_msg(count == 0 || strcmp(prev, key) < 0, "%s after %s", key,
                      prev);
        ck_assert_ptr_nonnull(json_object_get(at, key));
        memcpy(prev, key, sizeof prev);
        count++;
        p = q + 1 + 1 + 1 + strlen(key) + 1; /* :"value" with value == key */
        if (*p != ',')
            break;
        p++;
    }
    ck_assert_uint_eq(count, json_object_size(at));
    json_decref(j);
    free(s);
    free(keys);
    free(ep);
    free(e);
}
END_TEST

/* ---- time ---------------------------------------------------------- */

START_TEST(test_time_edges)
{
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.000Z"},
        {999999, "1970-01-01T00:00:00.000Z"},
        {1000000, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000000, "1969-12-31T23:59:59.999Z"},
        {-1000001, "1969-12-31T23:59:59.998Z"},
        {-86400000000000, "1969-12-31T00:00:00.000Z"},
        {951782400000000000, "2000-02-29T00:00:00.000Z"},
        {951868799999000000, "2000-02-29T23:59:59.999Z"},
        {4107456000000000000, "2100-02-28T00:00:00.000Z"},
        {4107542400000000000, "2100-03-01T00:00:00.000Z"}, /* not leap */
        {1795613284123456789, "2026-11-25T13:28:04.123Z"},
        {INT64_MAX, "2262-04-11T23:47:16.854Z"},
        {INT64_MIN, "1677-09-21T00:12:43.145Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rec_t r = REC_INIT;
        r.event_time_ns = cases[i].ns;
        char ref[64];
        ref_time(cases[i].ns, ref);
        ck_assert_str_eq(ref, cases[i].want);

        char *s = render(&r);
        json_t *j = parse(s, JSON_REJECT_DUPLICATES);
        assert_jstr(j, "time", cases[i].want, 24);
        assert_jint(j, "event_time_ns", cases[i].ns);
        json_decref(j);
        free(s);

        char scratch[RJSON_FIELD_SCRATCH];
        const char *out;
        ck_assert_uint_eq(
            rjson_field(&r, "time", scratch, sizeof scratch, &out), 24);
        ck_assert_str_eq(out, cases[i].want);
        ck_assert_uint_eq(
            rjson_field(&r, "date", scratch, sizeof scratch, &out), 10);
        ck_assert(strncmp(out, cases[i].want, 10) == 0);
        ck_assert_uint_eq(
            rjson_field(&r, "hour", scratch, sizeof scratch, &out), 2);
        ck_assert(strncmp(out, cases[i].want + 11, 2) == 0);
    }
}
END_TEST

/* ---- field accessor ------------------------------------------------- */

START_TEST(test_field_every_name)
{
    rec_t r = REC_INIT;
    attr_t a[3];
    attr_t *ap[3];
    full_record(&r, a, ap);
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"record_id", "00112233445566778899aabbccddeeff"},
        {"event_time_ns", "1795613284123456789"},
        {"tenant_id", "tenant-a"},
        {"account_id", "123456789012"},
        {"app", "checkout"},
        {"region", "us-east-1"},
        {"model_id", "anthropic.claude-3-haiku-20240307-v1:0"},
        {"operation", "Converse"},
        {"input_tokens", "1234"},
        {"output_tokens", "567"},
        {"cache_read_tokens", "89"},
        {"cache_write_tokens", "10"},
        {"latency_ms", "2345"},
        {"time_to_first_token_ms", "321"},
        {"status", "throttled"},
        {"error_type", "ThrottlingException"},
        {"error_message", "Rate exceeded"},
        {"request_id", "req-1"},
        {"trace_id", "1-5759e988-bd862e3fe1be46a994272793"},
        {"session_id", "sess-9"},
        {"prompt_text", "Hello, \"model\""},
        {"completion_text", "Hi\nthere"},
        {"attributes.tier", "gold"},
        {"attributes.feature", "chat"},
        {"time", "2026-11-25T13:28:04.123Z"},
        {"date", "2026-11-25"},
        {"hour", "13"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char scratch[RJSON_FIELD_SCRATCH];
        const char *out = NULL;
        size_t n =
            rjson_field(&r, cases[i].name, scratch, sizeof scratch, &out);
        ck_assert_msg(n == strlen(cases[i].want), "%s: len %zu", cases[i].name,
                      n);
        ck_assert_str_eq(out, cases[i].want);
        ck_assert(rjson_field_known(cases[i].name));
    }

    /* Zeros are values, not absences, for the accessor. */
    rec_t z = REC_INIT;
    char scratch[RJSON_FIELD_SCRATCH];
    const char *out;
    ck_assert_uint_eq(
        rjson_field(&z, "input_tokens", scratch, sizeof scratch, &out), 1);
    ck_assert_str_eq(out, "0");
    ck_assert_uint_eq(
        rjson_field(&z, "tenant_id", scratch, sizeof scratch, &out), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(
        rjson_field(&z, "record_id", scratch, sizeof scratch, &out), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_field_unknown_and_small_scratch)
{
    static const char *const unknown[] = {
        "",           "tenant",      "tenant_id ",  "TENANT_ID",
        "attributes", "attributes.", "attribute.x", "dates",
        "base",       "time_ns",     "record_id.x",
    };
    rec_t r = REC_INIT;
    r.record_id.data = (uint8_t *)RID;
    r.record_id.len = 16;
    r.input_tokens = 123456;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        char scratch[RJSON_FIELD_SCRATCH];
        const char *out = "untouched";
        ck_assert_uint_eq(
            rjson_field(&r, unknown[i], scratch, sizeof scratch, &out),
            (size_t)-1);
        ck_assert_str_eq(out, "untouched");
        ck_assert_msg(!rjson_field_known(unknown[i]), "%s", unknown[i]);
    }
    ck_assert(!rjson_field_known(NULL));
    ck_assert(rjson_field_known("attributes.x.y"));

    /* Scratch too small: cut to fit, NUL-terminated, never overrun. */
    char small[8];
    memset(small, 0x5a, sizeof small);
    const char *out;
    ck_assert_uint_eq(rjson_field(&r, "record_id", small, 5, &out), 4);
    ck_assert_str_eq(out, "0011");
    ck_assert_int_eq(small[5], 0x5a);
    ck_assert_uint_eq(rjson_field(&r, "input_tokens", small, 4, &out), 3);
    ck_assert_str_eq(out, "123");
    ck_assert_uint_eq(rjson_field(&r, "input_tokens", small, 0, &out), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

/* ---- through protobuf-c ------------------------------------------- */

START_TEST(test_pack_unpack_roundtrip)
{
    rec_t r = REC_INIT;
    attr_t a[3];
    attr_t *ap[3];
    full_record(&r, a, ap);
    char *want = render(&r);

    size_t len = logferry__v1__invocation_record__get_packed_size(&r);
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    logferry__v1__invocation_record__pack(&r, buf);
    rec_t *d = logferry__v1__invocation_record__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(d);
    char *got = render(d);
    ck_assert_str_eq(got, want);
    logferry__v1__invocation_record__free_unpacked(d, NULL);

    /* A decoded empty record: protobuf-c's empty strings, no id. */
    rec_t e = REC_INIT;
    len = logferry__v1__invocation_record__get_packed_size(&e);
    logferry__v1__invocation_record__pack(&e, buf);
    d = logferry__v1__invocation_record__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(d);
    char *s = render(d);
    ck_assert_str_eq(s, "{\"time\":\"1970-01-01T00:00:00.000Z\","
                        "\"record_id\":\"\",\"event_time_ns\":0}");
    logferry__v1__invocation_record__free_unpacked(d, NULL);
    free(s);
    free(got);
    free(want);
    free(buf);
}
END_TEST

/* ---- fuzz ---------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, same sequence on every run and platform. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Random bytes 1..255, biased towards what matters: ASCII, controls,
 * quotes, well-formed sequences and near misses. */
static void rand_str(char *out, size_t max)
{
    static const char *const bits[] = {
        "\xc3\xa9",     "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xed\xa0\x80", "\xf4\x90\x80", "\xc0\xaf",
        "\xe0\x80",     "\"",           "\\",
        "\n",           "\x7f",         "\xef\xbf\xbd",
    };
    size_t n = (size_t)(rng() % max), i = 0;
    while (i < n) {
        uint64_t k = rng() % 10;
        if (k < 4) {
            out[i++] = (char)(rng() % 255 + 1);
        } else if (k < 7) {
            out[i++] = (char)(rng() % 95 + 32);
        } else {
            const char *b = bits[rng() % (sizeof bits / sizeof bits[0])];
            size_t bl = strlen(b);
            if (i + bl > n)
                break;
            memcpy(out + i, b, bl);
            i += bl;
        }
    }
    out[i] = '\0';
}

#define FUZZ_STR 80
#define FUZZ_ATTRS 6

START_TEST(test_fuzz)
{
    rng_state = 0x6c6f67666572727aull;
    char strs[14][FUZZ_STR + 1];
    char ak[FUZZ_ATTRS][FUZZ_STR + 1], av[FUZZ_ATTRS][FUZZ_STR + 1];
    attr_t e[FUZZ_ATTRS];
    attr_t *ep[FUZZ_ATTRS];
    uint8_t id[32];
    char *buf = NULL;
    size_t cap = 0;

    for (int it = 0; it < 10000; it++) {
        rec_t r = REC_INIT;
        char **sf[14] = {
            &r.tenant_id,       &r.account_id, &r.app,        &r.region,
            &r.model_id,        &r.operation,  &r.error_type, &r.error_message,
            &r.request_id,      &r.trace_id,   &r.session_id, &r.prompt_text,
            &r.completion_text, NULL,
        };
        static const char *const sname[13] = {
            "tenant_id",       "account_id", "app",        "region",
            "model_id",        "operation",  "error_type", "error_message",
            "request_id",      "trace_id",   "session_id", "prompt_text",
            "completion_text",
        };
        for (int i = 0; i < 13; i++) {
            rand_str(strs[i], FUZZ_STR);
            *sf[i] = strs[i];
        }
        r.record_id.len = rng() % 4 ? 16 : rng() % 32;
        for (size_t i = 0; i < r.record_id.len; i++)
            id[i] = (uint8_t)rng();
        r.record_id.data = id;
        r.event_time_ns = (int64_t)rng();
        /* jansson's integers are signed 64-bit; stay within them. */
        r.input_tokens = rng() >> (1 + rng() % 63);
        r.output_tokens = rng() >> 1;
        r.cache_read_tokens = rng() % 3 ? 0 : rng() >> 40;
        r.cache_write_tokens = rng() >> 60;
        r.latency_ms = (uint32_t)rng();
        r.time_to_first_token_ms = (uint32_t)(rng() % 2 ? rng() : 0);
        r.status = (Logferry__V1__Status)(rng() % 9);
        r.n_attributes = rng() % (FUZZ_ATTRS + 1);
        for (size_t i = 0; i < r.n_attributes; i++) {
            attr_t init = ATTR_INIT;
            e[i] = init;
            rand_str(ak[i], rng() % 2 ? 4 : FUZZ_STR);
            rand_str(av[i], FUZZ_STR);
            e[i].key = ak[i];
            e[i].value = av[i];
            ep[i] = &e[i];
        }
        r.attributes = ep;

        size_t n = rjson_render_alloc(&r, &buf, &cap, SIZE_MAX - 1);
        ck_assert_uint_ne(n, (size_t)-1);
        json_error_t err;
        /* Duplicates allowed here: two different invalid keys can both
           sanitise to U+FFFD; jansson then keeps the later, as modelled
           below. */
        json_t *j = json_loads(buf, 0, &err);
        ck_assert_msg(j != NULL, "iteration %d: %s: %s", it, err.text, buf);

        char want[3 * FUZZ_STR + 1];
        for (int i = 0; i < 13; i++) {
            size_t wn = ref_sanitize(strs[i], strlen(strs[i]), want);
            if (wn == 0)
                ck_assert_ptr_null(json_object_get(j, sname[i]));
            else
                assert_jstr(j, sname[i], want, wn);
        }
        char t[64];
        ref_time(r.event_time_ns, t);
        assert_jstr(j, "time", t, 24);
        assert_jint(j, "event_time_ns", r.event_time_ns);
        ck_assert_uint_eq(json_string_length(json_object_get(j, "record_id")),
                          2 * r.record_id.len);
        if (r.input_tokens)
            assert_jint(j, "input_tokens", (long long)r.input_tokens);
        if (r.latency_ms)
            assert_jint(j, "latency_ms", r.latency_ms);

        /* Attributes: sorted by raw key, last duplicate wins, then keys
           that sanitise alike collapse to the later one. */
        json_t *want_at = json_object();
        /* Simple O(n^2) model: walk raw keys in sorted order. */
        int used[FUZZ_ATTRS] = {0};
        for (;;) {
            size_t pick = SIZE_MAX;
            for (size_t y = 0; y < r.n_attributes; y++) {
                if (used[y])
                    continue;
                if (pick == SIZE_MAX || strcmp(ak[y], ak[pick]) < 0 ||
                    (strcmp(ak[y], ak[pick]) == 0 && y > pick))
                    pick = y;
            }
            if (pick == SIZE_MAX)
                break;
            for (size_t y = 0; y < r.n_attributes; y++)
                if (strcmp(ak[y], ak[pick]) == 0)
                    used[y] = 1;
            char kk[3 * FUZZ_STR + 1], vv[3 * FUZZ_STR + 1];
            kk[ref_sanitize(ak[pick], strlen(ak[pick]), kk)] = '\0';
            size_t vn = ref_sanitize(av[pick], strlen(av[pick]), vv);
            json_object_set_new(want_at, kk, json_stringn(vv, vn));
        }
        json_t *at = json_object_get(j, "attributes");
        if (json_object_size(want_at) == 0)
            ck_assert_ptr_null(at);
        else
            ck_assert_msg(json_equal(at, want_at), "iteration %d attrs", it);
        json_decref(want_at);
        json_decref(j);

        /* A random short cap must not overrun and must report n. */
        size_t small = (size_t)(rng() % (n + 1));
        char *tb = malloc(small + 1);
        ck_assert_ptr_nonnull(tb);
        tb[small] = 0x5a;
        ck_assert_uint_eq(rjson_render(&r, tb, small), n);
        ck_assert_int_eq(tb[small], 0x5a);
        if (small)
            ck_assert(memcmp(tb, buf, small - 1) == 0);
        free(tb);
    }
    free(buf);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("record_json");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_every_field);
    tcase_add_test(tc, test_golden_small);
    tcase_add_test(tc, test_defaults_omitted);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_integer_extremes);
    tcase_add_test(tc, test_record_id_lengths);
    tcase_add_test(tc, test_escape_controls);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_valid_utf8_passes);
    tcase_add_test(tc, test_one_megabyte);
    tcase_add_test(tc, test_truncation_safe);
    tcase_add_test(tc, test_render_alloc);
    tcase_add_test(tc, test_attributes_sorted_and_deduplicated);
    tcase_add_test(tc, test_many_attributes);
    tcase_add_test(tc, test_time_edges);
    tcase_add_test(tc, test_field_every_name);
    tcase_add_test(tc, test_field_unknown_and_small_scratch);
    tcase_add_test(tc, test_pack_unpack_roundtrip);
    tcase_add_test(tc, test_fuzz);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
