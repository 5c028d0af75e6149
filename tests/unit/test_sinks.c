/*
 * test_sinks.c - the built sink modules (file, stdout, example), loaded
 * with dlopen() as the agent loads them and driven through a test host
 * whose to_json/field are record_json.
 *
 * Write failures are real ones: ENOSPC from a small tmpfs mounted in a
 * private mount namespace (skipped, with a note, where that is not
 * allowed), and EFBIG from RLIMIT_FSIZE, which cuts a write short in the
 * middle of a batch on any file system.
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <logferry/sink.h>

#include "record_json.h"

typedef Logferry__V1__InvocationRecord rec_t;

/* ---- test host --------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    char data[RJSON_FIELD_SCRATCH];
} chunk;

typedef struct test_host {
    lf_host pub;
    char log[1 << 16];
    size_t log_len;
    struct {
        char name[48];
        uint64_t v;
    } counters[32];
    size_t n_counters;
    int64_t now;
    chunk *scratch; /* field() answers, freed between batches */
} test_host;

static test_host *th_of(const lf_host *h)
{
    return h->priv;
}

static void th_log(const lf_host *h, lf_log_level level, const char *fmt, ...)
{
    test_host *t = th_of(h);
    static const char *const lv[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    va_list ap;
    va_start(ap, fmt);
    if (t->log_len < sizeof t->log - 1) {
        int n = snprintf(t->log + t->log_len, sizeof t->log - t->log_len,
                         "%s: ", lv[level]);
        if (n > 0)
            t->log_len += (size_t)n;
    }
    if (t->log_len < sizeof t->log - 1) {
        int n =
            vsnprintf(t->log + t->log_len, sizeof t->log - t->log_len, fmt, ap);
        if (n > 0)
            t->log_len += (size_t)n;
        if (t->log_len >= sizeof t->log - 1)
            t->log_len = sizeof t->log - 2;
        t->log[t->log_len++] = '\n';
        t->log[t->log_len] = '\0';
    }
    va_end(ap);
}

static void th_counter_add(const lf_host *h, const char *name, uint64_t d)
{
    test_host *t = th_of(h);
    size_t i;
    for (i = 0; i < t->n_counters; i++)
        if (strcmp(t->counters[i].name, name) == 0)
            break;
    if (i == t->n_counters) {
        ck_assert_uint_lt(i, 32);
        snprintf(t->counters[i].name, sizeof t->counters[i].name, "%s", name);
        t->n_counters++;
    }
    t->counters[i].v += d;
}

static uint64_t th_counter(test_host *t, const char *name)
{
    for (size_t i = 0; i < t->n_counters; i++)
        if (strcmp(t->counters[i].name, name) == 0)
            return t->counters[i].v;
    return 0;
}

static size_t th_to_json(const lf_host *h, const lf_record *rec, char *dst,
                         size_t cap)
{
    (void)h;
    return rjson_render(rec->internal, dst, cap);
}

static size_t th_field(const lf_host *h, const lf_record *rec, const char *name,
                       const char **out)
{
    test_host *t = th_of(h);
    chunk *c = malloc(sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->next = t->scratch;
    t->scratch = c;
    return rjson_field(rec->internal, name, c->data, sizeof c->data, out);
}

static int64_t th_now(const lf_host *h)
{
    return th_of(h)->now;
}

static int64_t th_mono(const lf_host *h)
{
    (void)h;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void th_reset_batch(test_host *t)
{
    while (t->scratch) {
        chunk *n = t->scratch->next;
        free(t->scratch);
        t->scratch = n;
    }
}

static test_host *th_new(void)
{
    test_host *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->pub.abi_version = LF_SINK_ABI_VERSION;
    t->pub.struct_size = sizeof(lf_host);
    t->pub.log = th_log;
    t->pub.counter_add = th_counter_add;
    t->pub.to_json = th_to_json;
    t->pub.field = th_field;
    t->pub.now_ns = th_now;
    t->pub.mono_ns = th_mono;
    t->pub.priv = t;
    t->now = 1795613284123456789; /* 2026-11-25T13:28:04.123Z */
    return t;
}

static void th_free(test_host *t)
{
    th_reset_batch(t);
    free(t);
}

/* ---- modules and config ------------------------------------------------ */

static const lf_sink_ops *load(const char *type)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sinks/lf_sink_%s.so", LF_BUILD_DIR, type);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
    lf_sink_entry_fn entry;
    *(void **)(&entry) = dlsym(h, LF_SINK_ENTRY_SYMBOL);
    ck_assert_msg(entry != NULL, "%s lacks %s", path, LF_SINK_ENTRY_SYMBOL);
    const lf_sink_ops *ops = entry();
    ck_assert_uint_eq(ops->abi_version, LF_SINK_ABI_VERSION);
    ck_assert_uint_eq(ops->struct_size, sizeof(lf_sink_ops));
    ck_assert_str_eq(ops->name, type);
    return ops; /* the handle stays open for the test process */
}

static int64_t parse_num(const char *s, int is_duration)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1;
    if (is_duration) {
        if (!strcmp(end, "ms") || !*end)
            mul = 1;
        else if (!strcmp(end, "s"))
            mul = 1000;
        else if (!strcmp(end, "m"))
            mul = 60000;
        else if (!strcmp(end, "h"))
            mul = 3600000;
        else if (!strcmp(end, "d"))
            mul = 86400000;
        else
            ck_abort_msg("duration default %s", s);
    } else {
        if (*end == 'K')
            mul = 1024;
        else if (*end == 'M')
            mul = 1024.0 * 1024;
        else if (*end == 'G')
            mul = 1024.0 * 1024 * 1024;
        else if (*end)
            ck_abort_msg("size default %s", s);
    }
    return (int64_t)(v * mul);
}

/* Values as the agent would hand them: defaults filled in. Freed with
 * free(). */
static lf_conf_value *conf_defaults(const lf_sink_ops *ops)
{
    lf_conf_value *v = calloc(ops->n_config_keys + 1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < ops->n_config_keys; i++) {
        const lf_conf_key *k = &ops->config_keys[i];
        if (!k->def)
            continue;
        switch (k->type) {
        case LF_CONF_BOOL:
            v[i].b = strcmp(k->def, "true") == 0;
            break;
        case LF_CONF_INT:
            v[i].i = strtoll(k->def, NULL, 10);
            break;
        case LF_CONF_SIZE:
        case LF_CONF_DURATION:
            v[i].i = parse_num(k->def, k->type == LF_CONF_DURATION);
            break;
        default:
            v[i].s = k->def;
            break;
        }
    }
    return v;
}

static lf_conf_value *conf_key(const lf_sink_ops *ops, lf_conf_value *v,
                               const char *name)
{
    for (size_t i = 0; i < ops->n_config_keys; i++)
        if (strcmp(ops->config_keys[i].name, name) == 0) {
            v[i].present = 1;
            v[i].line = 1;
            return &v[i];
        }
    ck_abort_msg("module %s has no key %s", ops->name, name);
    return NULL;
}

/* ---- records ----------------------------------------------------------- */

/* A batch of decoded records with ids first..first+n-1, made the way the
 * agent gets them: packed by the writer, unpacked by protobuf-c. */
typedef struct recs {
    size_t n;
    rec_t **dec;
    uint8_t **payload;
    lf_record *lr;
    uint8_t *verdict;
} recs;

static void id_bytes(uint64_t idx, uint8_t id[16])
{
    for (int i = 0; i < 8; i++)
        id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++)
        id[8 + i] = (uint8_t)(idx >> (56 - 8 * i));
}

static recs *recs_new(uint64_t first, size_t n)
{
    recs *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    b->n = n;
    b->dec = calloc(n, sizeof *b->dec);
    b->payload = calloc(n, sizeof *b->payload);
    b->lr = calloc(n, sizeof *b->lr);
    b->verdict = calloc(n, 1);
    ck_assert(b->dec && b->payload && b->lr && b->verdict);
    for (size_t i = 0; i < n; i++) {
        rec_t r = LOGFERRY__V1__INVOCATION_RECORD__INIT;
        Logferry__V1__InvocationRecord__AttributesEntry a =
            LOGFERRY__V1__INVOCATION_RECORD__ATTRIBUTES_ENTRY__INIT;
        Logferry__V1__InvocationRecord__AttributesEntry *ap = &a;
        uint8_t id[16];
        char tenant[32], prompt[64];
        id_bytes(first + i, id);
        snprintf(tenant, sizeof tenant, "tenant-%u", (unsigned)(i % 3));
        snprintf(prompt, sizeof prompt, "prompt \"%llu\"\n\xff caf\xc3\xa9",
                 (unsigned long long)(first + i));
        r.record_id.data = id;
        r.record_id.len = 16;
        r.event_time_ns = 1795613284123456789 + (int64_t)(first + i);
        r.tenant_id = tenant;
        r.model_id = "anthropic.claude-3-haiku-20240307-v1:0";
        r.operation = "Converse";
        r.input_tokens = first + i;
        r.output_tokens = 42;
        r.latency_ms = 1234;
        r.status = LOGFERRY__V1__STATUS__STATUS_OK;
        r.request_id = "5f2c8a7e-1b3d-4e6f-9a0b-c1d2e3f4a5b6";
        r.prompt_text = prompt;
        a.key = "tier";
        a.value = "gold";
        r.n_attributes = 1;
        r.attributes = &ap;
        size_t len = logferry__v1__invocation_record__get_packed_size(&r);
        b->payload[i] = malloc(len);
        ck_assert_ptr_nonnull(b->payload[i]);
        logferry__v1__invocation_record__pack(&r, b->payload[i]);
        b->dec[i] =
            logferry__v1__invocation_record__unpack(NULL, len, b->payload[i]);
        ck_assert_ptr_nonnull(b->dec[i]);
        b->lr[i].payload = b->payload[i];
        b->lr[i].len = len;
        b->lr[i].event_time_ns = r.event_time_ns;
        b->lr[i].pos.segment = "test.lfs";
        b->lr[i].pos.offset = (first + i) * 100;
        b->lr[i].internal = b->dec[i];
    }
    return b;
}

static void recs_free(recs *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        logferry__v1__invocation_record__free_unpacked(b->dec[i], NULL);
        free(b->payload[i]);
    }
    free(b->dec);
    free(b->payload);
    free(b->lr);
    free(b->verdict);
    free(b);
}

static lf_deliver_status deliver(const lf_sink_ops *ops, void *inst,
                                 test_host *t, recs *b)
{
    memset(b->verdict, 0, b->n);
    lf_batch batch = {.records = b->lr, .count = b->n, .verdict = b->verdict};
    th_reset_batch(t);
    lf_deliver_status st = ops->deliver(inst, &batch);
    th_reset_batch(t);
    return st;
}

/* ---- reading output back --------------------------------------------- */

#define MAX_IDS 20000

/* Parse every line of buf[0..len) as a record's JSON, count each id in
 * seen[], and check the content matches what recs_new() made. Every line
 * must be complete. Returns the number of lines. */
static size_t check_lines(const char *buf, size_t len, unsigned *seen)
{
    size_t lines = 0, off = 0;
    if (len)
        ck_assert_msg(buf[len - 1] == '\n', "torn last line");
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        ck_assert_ptr_nonnull(nl);
        json_error_t err;
        json_t *j = json_loadb(buf + off, (size_t)(nl - buf - off), 0, &err);
        ck_assert_msg(j != NULL, "bad line: %s", err.text);
        const char *rid = json_string_value(json_object_get(j, "record_id"));
        ck_assert_ptr_nonnull(rid);
        ck_assert_uint_eq(strlen(rid), 32);
        ck_assert(strncmp(rid, "a0a1a2a3a4a5a6a7", 16) == 0);
        uint64_t idx = strtoull(rid + 16, NULL, 16);
        ck_assert_uint_lt(idx, MAX_IDS);
        seen[idx]++;
        ck_assert_int_eq(json_integer_value(json_object_get(j, "input_tokens")),
                         (long long)idx);
        char want[64];
        snprintf(want, sizeof want, "prompt \"%llu\"\n\xef\xbf\xbd caf\xc3\xa9",
                 (unsigned long long)idx);
        ck_assert_str_eq(json_string_value(json_object_get(j, "prompt_text")),
                         want);
        json_decref(j);
        lines++;
        off = (size_t)(nl - buf) + 1;
    }
    return lines;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static size_t check_file(const char *path, unsigned *seen)
{
    size_t len;
    char *buf = slurp(path, &len);
    size_t n = check_lines(buf, len, seen);
    free(buf);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    return st.st_size;
}

/* Every id in [0, n) seen exactly once, none beyond. */
static void assert_exactly_once(const unsigned *seen, size_t n)
{
    for (size_t i = 0; i < MAX_IDS; i++)
        ck_assert_msg(seen[i] == (i < n ? 1u : 0u), "record %zu seen %u times",
                      i, seen[i]);
}

static char *tmpdir(void)
{
    char *d = strdup("/tmp/lf_test_sinks.XXXXXX");
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A file sink on dir/out.ndjson with the given overrides. */
static void *file_sink_new(const lf_sink_ops *ops, test_host *t,
                           const char *path, int64_t rotate_bytes,
                           int64_t rotate_age_ms, lf_conf_value **vals_out)
{
    lf_conf_value *v = conf_defaults(ops);
    conf_key(ops, v, "path")->s = path;
    if (rotate_bytes >= 0)
        conf_key(ops, v, "rotate_bytes")->i = rotate_bytes;
    if (rotate_age_ms >= 0)
        conf_key(ops, v, "rotate_age")->i = rotate_age_ms;
    void *inst = NULL;
    char err[256] = "";
    ck_assert_msg(ops->create(v, &t->pub, &inst, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_ptr_nonnull(inst);
    *vals_out = v; /* must outlive the instance */
    return inst;
}

/* ---- all modules ---------------------------------------------------- */

START_TEST(test_modules_well_formed)
{
    static const char *const types[] = {"file", "stdout", "example"};
    for (size_t m = 0; m < 3; m++) {
        const lf_sink_ops *ops = load(types[m]);
        ck_assert_ptr_nonnull(ops->description);
        ck_assert_ptr_nonnull(ops->create);
        ck_assert_ptr_nonnull(ops->deliver);
        ck_assert_ptr_nonnull(ops->destroy);
        for (size_t i = 0; i < ops->n_config_keys; i++) {
            const lf_conf_key *k = &ops->config_keys[i];
            ck_assert_ptr_nonnull(k->name);
            ck_assert_ptr_nonnull(k->doc);
            ck_assert(k->type >= LF_CONF_BOOL && k->type <= LF_CONF_STRLIST);
            ck_assert_msg(k->required == (k->def == NULL), "%s.%s", ops->name,
                          k->name);
        }
        ops->destroy(NULL); /* accepts NULL */
    }
}
END_TEST

/* ---- file ------------------------------------------------------------- */

START_TEST(test_file_batches_exactly_once)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);

    for (uint64_t first = 0; first < 1000; first += 250) {
        recs *b = recs_new(first, 250);
        ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
        recs_free(b);
    }
    recs *empty = recs_new(0, 0);
    ck_assert_int_eq(deliver(ops, fs, t, empty), LF_DELIVER_OK);
    recs_free(empty);
    ck_assert_int_eq(ops->flush(fs), 0);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), 1000);
    assert_exactly_once(seen, 1000);
    ck_assert_uint_eq(th_counter(t, "records"), 1000);
    ck_assert_uint_eq(th_counter(t, "bytes"), (uint64_t)file_size(path));

    /* Created with the configured mode (umask permitting). */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0137, 0);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_rotation_by_size_never_overwrites)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512], decoy[600];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    /* The clock stands still, so every rotation wants the same stamp; a
       file already holding the first name must survive untouched. */
    snprintf(decoy, sizeof decoy, "%s.20261125T132804Z.0", path);
    FILE *f = fopen(decoy, "w");
    ck_assert_ptr_nonnull(f);
    fputs("do not overwrite\n", f);
    fclose(f);

    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, 8192, -1, &v);
    size_t batch_bytes_max = 0;
    for (uint64_t first = 0; first < 600; first += 20) {
        off_t before = file_size(path);
        recs *b = recs_new(first, 20);
        ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
        recs_free(b);
        off_t after = file_size(path);
        if (after > before && (size_t)(after - before) > batch_bytes_max)
            batch_bytes_max = (size_t)(after - before);
    }
    ops->destroy(fs);

    size_t dlen;
    char *d = slurp(decoy, &dlen);
    ck_assert_str_eq(d, "do not overwrite\n");
    free(d);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    size_t total = check_file(path, seen), rotated = 0;
    for (int n = 1; n < 1000; n++) {
        char p[600];
        snprintf(p, sizeof p, "%s.20261125T132804Z.%d", path, n);
        if (access(p, F_OK) != 0)
            break;
        off_t sz = file_size(p);
        ck_assert_int_ge(sz, 8192);
        ck_assert_uint_le((size_t)sz, 8192 + batch_bytes_max);
        total += check_file(p, seen);
        rotated++;
    }
    ck_assert_uint_ge(rotated, 5);
    ck_assert_uint_eq(th_counter(t, "rotations"), rotated);
    ck_assert_uint_eq(total, 600);
    assert_exactly_once(seen, 600);

    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_rotation_by_age)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512], p[600];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, 0, 60000, &v);

    recs *b = recs_new(0, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    t->now += 30 * 1000000000LL; /* 30 s: not yet */
    b = recs_new(10, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_uint_eq(th_counter(t, "rotations"), 0);

    t->now += 31 * 1000000000LL; /* 61 s after opening */
    b = recs_new(20, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_uint_eq(th_counter(t, "rotations"), 1);
    snprintf(p, sizeof p, "%s.20261125T132905Z.0", path);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(p, seen), 20);
    ck_assert_uint_eq(check_file(path, seen), 10);
    assert_exactly_once(seen, 30);

    /* An empty file is not rotated however old. */
    ops->destroy(fs);
    free(v);
    unlink(path);
    fs = file_sink_new(ops, t, path, 0, 1000, &v);
    t->now += 3600 * 1000000000LL;
    b = recs_new(0, 0);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_uint_eq(th_counter(t, "rotations"), 1);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_deleted_or_moved_is_reopened)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512], moved[600];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    snprintf(moved, sizeof moved, "%s.1", path);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);
    unsigned *seen = calloc(MAX_IDS, sizeof *seen);

    recs *b = recs_new(0, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_int_eq(unlink(path), 0);

    b = recs_new(10, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_uint_eq(check_file(path, seen), 10); /* only the new batch */
    ck_assert_uint_eq(seen[10], 1);
    ck_assert_uint_eq(seen[0], 0);

    /* logrotate-style: moved away, then we must write to a new file. */
    ck_assert_int_eq(rename(path, moved), 0);
    b = recs_new(20, 10);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    memset(seen, 0, MAX_IDS * sizeof *seen);
    ck_assert_uint_eq(check_file(moved, seen), 10);
    ck_assert_uint_eq(check_file(path, seen), 10);
    for (int i = 10; i < 30; i++)
        ck_assert_uint_eq(seen[i], 1);
    ck_assert_uint_eq(th_counter(t, "reopens"), 2);
    ck_assert_ptr_nonnull(strstr(t->log, "moved or deleted"));

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_efbig_mid_batch_truncates_and_retries)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);

    recs *b = recs_new(0, 50);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    off_t good = file_size(path);

    /* Let the next batch get 1000 bytes in, then fail with EFBIG: a real
       short write followed by an error, mid-line. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)good + 1000;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

    b = recs_new(50, 50);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_RETRY);
    ck_assert_int_eq(file_size(path), good); /* no partial line stays */
    ck_assert_ptr_nonnull(strstr(t->log, path));
    ck_assert_ptr_nonnull(strstr(t->log, "truncated back"));
    ck_assert_uint_eq(th_counter(t, "write_errors"), 1);
    /* Still failing: logged again, but quietly. */
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_RETRY);
    ck_assert_int_eq(file_size(path), good);
    ck_assert_ptr_nonnull(strstr(t->log, "DEBUG: write"));

    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);
    ck_assert_ptr_nonnull(strstr(t->log, "again after 2 failed batches"));

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), 100);
    assert_exactly_once(seen, 100);
    ck_assert_uint_eq(th_counter(t, "records"), 100);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_enospc_on_tmpfs)
{
    /* A private mount namespace keeps the tmpfs from leaking out of this
       (forked) test process, even if it dies. */
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr,
                "test_file_enospc_on_tmpfs: skipped, cannot make a "
                "private mount namespace: %s\n",
                strerror(errno));
        return;
    }
    char *dir = tmpdir();
    if (mount("tmpfs", dir, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr, "test_file_enospc_on_tmpfs: skipped, mount: %s\n",
                strerror(errno));
        rmdir(dir);
        free(dir);
        return;
    }
    char path[512], filler[512];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    static char zeros[64 * 1024];
    ck_assert_int_eq(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);

    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);

    uint64_t next = 0;
    recs *b = NULL;
    lf_deliver_status st = LF_DELIVER_OK;
    for (int i = 0; i < 1000 && st == LF_DELIVER_OK; i++) {
        off_t before = file_size(path);
        recs_free(b);
        b = recs_new(next, 40);
        st = deliver(ops, fs, t, b);
        if (st == LF_DELIVER_OK)
            next += 40;
        else
            ck_assert_int_eq(file_size(path), before);
    }
    ck_assert_int_eq(st, LF_DELIVER_RETRY);
    ck_assert_ptr_nonnull(strstr(t->log, "No space left on device"));
    ck_assert_ptr_nonnull(strstr(t->log, path));

    /* Space comes back: the same batch goes through, once. */
    ck_assert_int_eq(unlink(filler), 0);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    next += 40;
    recs_free(b);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), next);
    assert_exactly_once(seen, next);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_open_failure_retries_then_recovers)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(path, sizeof path, "%s/out.ndjson", sub);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);

    /* The directory is replaced by a plain file: nothing can be written
       (and it cannot be re-created), RETRY. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(sub), 0);
    FILE *blk = fopen(sub, "w");
    ck_assert_ptr_nonnull(blk);
    fclose(blk);
    recs *b = recs_new(0, 5);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_RETRY);
    ck_assert_ptr_nonnull(strstr(t->log, "open"));
    ck_assert_int_eq(unlink(sub), 0);
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    recs_free(b);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), 5);
    assert_exactly_once(seen, 5);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    unlink(path);
    rmdir(sub);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_create_errors)
{
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    lf_conf_value *v = conf_defaults(ops);
    void *inst = NULL;
    char err[256] = "";

    /* A path that cannot be a file: its "directory" is a regular file. */
    char *dir = tmpdir(), path[1100], blocker[512];
    snprintf(blocker, sizeof blocker, "%s/plainfile", dir);
    FILE *bf = fopen(blocker, "w");
    ck_assert_ptr_nonnull(bf);
    fclose(bf);
    snprintf(path, sizeof path, "%s/x/out.ndjson", blocker);
    conf_key(ops, v, "path")->s = path;
    ck_assert_int_eq(ops->create(v, &t->pub, &inst, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_null(inst);

    /* Missing directories above the file are created. */
    snprintf(path, sizeof path, "%s/a/b/out.ndjson", dir);
    conf_key(ops, v, "path")->s = path;
    ck_assert_int_eq(ops->create(v, &t->pub, &inst, err, sizeof err), 0);
    ops->destroy(inst);
    inst = NULL;
    ck_assert_int_eq(access(path, F_OK), 0);

    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    conf_key(ops, v, "path")->s = path;
    conf_key(ops, v, "mode")->s = "0999";
    ck_assert_int_eq(ops->create(v, &t->pub, &inst, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "mode"));

    free(v);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_long_line)
{
    /* One record whose JSON is bigger than the 4 MiB batch buffer. */
    const lf_sink_ops *ops = load("file");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/out.ndjson", dir);
    lf_conf_value *v;
    void *fs = file_sink_new(ops, t, path, -1, -1, &v);

    recs *b = recs_new(0, 3);
    size_t big = 5u << 20;
    char *text = malloc(big + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', big);
    text[big] = '\0';
    char *saved = b->dec[1]->completion_text;
    b->dec[1]->completion_text = text;
    ck_assert_int_eq(deliver(ops, fs, t, b), LF_DELIVER_OK);
    b->dec[1]->completion_text = saved;
    recs_free(b);
    free(text);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), 3);
    assert_exactly_once(seen, 3);
    ck_assert_uint_gt((size_t)file_size(path), big);

    ops->destroy(fs);
    free(v);
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- stdout ----------------------------------------------------------- */

/* Point fd 1 at `fd` for the test; returns the saved descriptor. */
static int stdout_redirect(int fd)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    return saved;
}

static void stdout_restore(int saved)
{
    dup2(saved, STDOUT_FILENO);
    close(saved);
}

static void *stdout_sink_new(const lf_sink_ops *ops, test_host *t)
{
    void *inst = NULL;
    char err[256] = "";
    ck_assert_msg(ops->create(NULL, &t->pub, &inst, err, sizeof err) == 0, "%s",
                  err);
    return inst;
}

START_TEST(test_stdout_lines)
{
    const lf_sink_ops *ops = load("stdout");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/stdout.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    int saved = stdout_redirect(fd);

    void *ss = stdout_sink_new(ops, t);
    for (uint64_t first = 0; first < 3000; first += 1000) {
        recs *b = recs_new(first, 1000);
        ck_assert_int_eq(deliver(ops, ss, t, b), LF_DELIVER_OK);
        recs_free(b);
    }
    ops->destroy(ss);
    stdout_restore(saved);
    close(fd);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_eq(check_file(path, seen), 3000);
    assert_exactly_once(seen, 3000);
    ck_assert_uint_eq(th_counter(t, "bytes"), (uint64_t)file_size(path));
    free(seen);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

typedef struct drain {
    int fd;
    char *buf;
    size_t len, cap;
} drain;

static void *drain_slowly(void *arg)
{
    drain *d = arg;
    for (;;) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL); /* a slow reader: the writer must wait */
        if (d->cap - d->len < 4096) {
            d->cap *= 2;
            d->buf = realloc(d->buf, d->cap);
            if (!d->buf)
                abort();
        }
        ssize_t n = read(d->fd, d->buf + d->len, 4096);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            break;
        }
        d->len += (size_t)n;
    }
    return NULL;
}

START_TEST(test_stdout_nonblocking_pipe)
{
    const lf_sink_ops *ops = load("stdout");
    test_host *t = th_new();
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    int saved = stdout_redirect(p[1]);
    void *ss = stdout_sink_new(ops, t);

    /* Pipe already full: nothing of the batch can go, so RETRY. */
    static char junk[4096];
    size_t stuffed = 0;
    for (;;) {
        ssize_t n = write(p[1], junk, sizeof junk);
        if (n < 0)
            break;
        stuffed += (size_t)n;
    }
    recs *b = recs_new(0, 500);
    ck_assert_int_eq(deliver(ops, ss, t, b), LF_DELIVER_RETRY);
    ck_assert_uint_eq(th_counter(t, "would_block"), 1);

    /* Empty it, then a batch several pipe-fulls long with a slow reader:
       the sink waits between pieces instead of tearing lines. */
    for (size_t got = 0; got < stuffed;) {
        ssize_t n = read(p[0], junk, sizeof junk);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    drain d = {p[0], malloc(1 << 16), 0, 1 << 16};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, drain_slowly, &d), 0);
    ck_assert_int_eq(deliver(ops, ss, t, b), LF_DELIVER_OK);
    recs_free(b);
    ops->destroy(ss);
    stdout_restore(saved);
    close(p[1]);
    pthread_join(th, NULL);
    close(p[0]);

    unsigned *seen = calloc(MAX_IDS, sizeof *seen);
    ck_assert_uint_gt(d.len, 3 * 65536);
    ck_assert_uint_eq(check_lines(d.buf, d.len, seen), 500);
    assert_exactly_once(seen, 500);
    free(d.buf);
    free(seen);
    th_free(t);
}
END_TEST

START_TEST(test_stdout_epipe_retries)
{
    const lf_sink_ops *ops = load("stdout");
    test_host *t = th_new();
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    int saved = stdout_redirect(p[1]);
    void *ss = stdout_sink_new(ops, t);
    ck_assert_ptr_null(strstr(t->log, "SIGPIPE"));

    recs *b = recs_new(0, 5);
    ck_assert_int_eq(deliver(ops, ss, t, b), LF_DELIVER_RETRY);
    ck_assert_int_eq(deliver(ops, ss, t, b), LF_DELIVER_RETRY);
    recs_free(b);
    ops->destroy(ss);
    stdout_restore(saved);
    close(p[1]);
    ck_assert_ptr_nonnull(strstr(t->log, "ERROR: write to standard output: "
                                         "Broken pipe"));
    ck_assert_uint_eq(th_counter(t, "write_errors"), 2);
    th_free(t);
}
END_TEST

START_TEST(test_stdout_warns_without_sigpipe_ignored)
{
    const lf_sink_ops *ops = load("stdout");
    test_host *t = th_new();
    signal(SIGPIPE, SIG_DFL);
    void *ss = stdout_sink_new(ops, t);
    ck_assert_ptr_nonnull(strstr(t->log, "WARN: SIGPIPE is not ignored"));
    ops->destroy(ss);
    th_free(t);
}
END_TEST

/* ---- example ---------------------------------------------------------- */

START_TEST(test_example_sink)
{
    const lf_sink_ops *ops = load("example");
    test_host *t = th_new();
    char *dir = tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/example.txt", dir);
    lf_conf_value *v = conf_defaults(ops);
    conf_key(ops, v, "path")->s = path;
    void *inst = NULL;
    char err[256] = "";
    ck_assert_msg(ops->create(v, &t->pub, &inst, err, sizeof err) == 0, "%s",
                  err);
    recs *b = recs_new(0, 4);
    ck_assert_int_eq(deliver(ops, inst, t, b), LF_DELIVER_OK);
    recs_free(b);
    ops->destroy(inst);

    size_t len;
    char *got = slurp(path, &len);
    ck_assert_str_eq(got, "tenant-0 a0a1a2a3a4a5a6a70000000000000000\n"
                          "tenant-1 a0a1a2a3a4a5a6a70000000000000001\n"
                          "tenant-2 a0a1a2a3a4a5a6a70000000000000002\n"
                          "tenant-0 a0a1a2a3a4a5a6a70000000000000003\n");
    ck_assert_uint_eq(th_counter(t, "records"), 4);
    ck_assert_ptr_nonnull(strstr(t->log, path));
    free(got);
    free(v);
    th_free(t);
    rm_rf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sinks");
    TCase *tc = tcase_create("modules");
    tcase_add_test(tc, test_modules_well_formed);
    tcase_add_test(tc, test_file_batches_exactly_once);
    tcase_add_test(tc, test_file_rotation_by_size_never_overwrites);
    tcase_add_test(tc, test_file_rotation_by_age);
    tcase_add_test(tc, test_file_deleted_or_moved_is_reopened);
    tcase_add_test(tc, test_file_efbig_mid_batch_truncates_and_retries);
    tcase_add_test(tc, test_file_enospc_on_tmpfs);
    tcase_add_test(tc, test_file_open_failure_retries_then_recovers);
    tcase_add_test(tc, test_file_create_errors);
    tcase_add_test(tc, test_file_long_line);
    tcase_add_test(tc, test_stdout_lines);
    tcase_add_test(tc, test_stdout_nonblocking_pipe);
    tcase_add_test(tc, test_stdout_epipe_retries);
    tcase_add_test(tc, test_stdout_warns_without_sigpipe_ignored);
    tcase_add_test(tc, test_example_sink);
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
