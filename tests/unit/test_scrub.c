/*
 * test_scrub.c - per-record retention (agent/scrub.h) and purged frames
 * (spool_format.h): the frame codec, readers skipping purged frames, the
 * scrubber purging exactly the records whose limit passed (content gone
 * from the file, offsets of the others unchanged), pending records purged
 * when due (future event times included), a segment its writer still
 * appends to, dead-letter segments, a half-done purge, a segment that
 * cannot be written, and forgetting removed segments.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "scrub.h"
#include "spool_testutil.h"
#include "spool_writer_internal.h"
#include "tail.h"

#define HOUR_MS (3600LL * 1000)
#define HOUR_NS (HOUR_MS * 1000000LL)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The rule under test: records with prompt text 1 h, others none. */
static int64_t limit_prompt(void *ctx, const Logferry__V1__InvocationRecord *r)
{
    (void)ctx;
    return r->prompt_text && r->prompt_text[0] ? HOUR_MS : 0;
}

typedef struct seen {
    uint64_t off[4096];
    size_t n;
    int calls;
} seen;

static void on_purged(void *ctx, const char *name, const uint64_t *off,
                      size_t n)
{
    seen *s = ctx;
    (void)name;
    s->calls++;
    for (size_t i = 0; i < n; i++) {
        if (s->n)
            ck_assert_uint_gt(off[i], s->off[s->n - 1]);
        s->off[s->n++] = off[i];
    }
}

/* Append record i: even ones carry prompt text "secret-<i>". */
static void append(lf_writer *w, int i, int64_t t)
{
    Logferry__V1__InvocationRecord rec = LOGFERRY__V1__INVOCATION_RECORD__INIT;
    char prompt[32], model[32];
    snprintf(prompt, sizeof prompt, "secret-%06d", i);
    snprintf(model, sizeof model, "model-%06d", i);
    rec.model_id = model;
    rec.event_time_ns = t;
    if (i % 2 == 0)
        rec.prompt_text = prompt;
    ck_assert_int_eq(lf_writer_append(w, &rec), LF_OK);
}

static lf_writer *open_writer(const char *dir)
{
    lf_writer_options o;
    lf_writer_options_init(&o);
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    return w;
}

/* Whether `needle` occurs in the file's bytes. */
static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Read every record of a segment: their model ids in order, and offsets. */
static size_t read_all(const char *path, char ids[][32], uint64_t *offs,
                       spool_reader_stats *st)
{
    spool_reader *rd;
    ck_assert_int_eq(spool_reader_open(path, &rd, NULL, 0), 0);
    spool_read_event ev;
    spool_read_result r;
    size_t n = 0;
    while ((r = spool_reader_finish(rd, &ev)) != SPOOL_READ_END) {
        ck_assert_int_eq(r, SPOOL_READ_FRAME);
        Logferry__V1__InvocationRecord *rec =
            logferry__v1__invocation_record__unpack(NULL, ev.length,
                                                    ev.payload);
        ck_assert_ptr_nonnull(rec);
        snprintf(ids[n], 32, "%s", rec->model_id);
        offs[n++] = ev.offset;
        logferry__v1__invocation_record__free_unpacked(rec, NULL);
    }
    if (st)
        spool_reader_get_stats(rd, st);
    spool_reader_close(rd);
    return n;
}

static char **names_of(const char *dir, size_t *n)
{
    char err[256];
    char **v = spool_list_segments(dir, n, err, sizeof err);
    ck_assert_ptr_nonnull(v);
    return v;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char *one_segment(const char *dir)
{
    size_t n;
    char **v = names_of(dir, &n);
    ck_assert_uint_eq(n, 1);
    char *p = NULL;
    ck_assert(asprintf(&p, "%s/%s", dir, v[0]) > 0);
    free_names(v, n);
    return p;
}

static void pass(scrubber *s, const char *dir, int64_t now, scrub_stats *st)
{
    size_t n;
    char **v = names_of(dir, &n);
    scrubber_pass(s, v, n, now, st);
    free_names(v, n);
}

/* A spool of one segment with records 0..n-1 at event time t0 + dt_ns,
   and a scrubber on it. keep_open leaves the writer in f->w. */
typedef struct fixture {
    char *dir, *path;
    int64_t t0;
    lf_writer *w;
    scrubber *s;
    seen sn;
    scrub_stats st;
} fixture;

static fixture *fx_new(int n, int64_t dt_ns, int keep_open)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp("scrub");
    f->t0 = now_ns();
    f->w = open_writer(f->dir);
    for (int i = 0; i < n; i++)
        append(f->w, i, f->t0 + dt_ns);
    if (keep_open) {
        ck_assert_int_eq(lf_writer_flush(f->w), LF_OK);
    } else {
        ck_assert_int_eq(lf_writer_close(f->w), LF_OK);
        f->w = NULL;
    }
    f->path = one_segment(f->dir);
    f->s = scrubber_new(f->dir, limit_prompt, on_purged, &f->sn);
    return f;
}

static void fx_pass(fixture *f, int64_t now)
{
    pass(f->s, f->dir, now, &f->st);
}

static void fx_free(fixture *f)
{
    if (f->w)
        ck_assert_int_eq(lf_writer_close(f->w), LF_OK);
    scrubber_free(f->s);
    tu_rm_rf(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
}

START_TEST(purged_frame_codec)
{
    uint8_t f[SPOOL_FRAME_HDR + 40] = {0};
    spool_frame_purged_header_encode(f, 40);
    spool_frame fr;
    ck_assert_int_eq(spool_frame_check(f, sizeof f, &fr), SPOOL_FRAME_OK);
    ck_assert_int_eq(fr.purged, 1);
    ck_assert_uint_eq(fr.size, sizeof f);
    /* The header alone is not enough: the frame's bytes must be there. */
    ck_assert_int_eq(spool_frame_check(f, SPOOL_FRAME_HDR, &fr),
                     SPOOL_FRAME_INCOMPLETE);
    ck_assert_int_eq(fr.purged, 1);
    /* A damaged length is caught by the header CRC. */
    f[4] ^= 8; /* len 32: the frame is whole, its CRC wrong */
    ck_assert_int_eq(spool_frame_check(f, sizeof f, &fr), SPOOL_FRAME_BAD);
    ck_assert_int_eq(fr.fault, SPOOL_FAULT_CRC);
    /* Resync finds a purged frame after garbage. */
    uint8_t g[8 + sizeof f];
    memset(g, 0x11, 8);
    spool_frame_purged_header_encode(g + 8, 40);
    memset(g + 8 + SPOOL_FRAME_HDR, 0, 40);
    size_t at;
    ck_assert_int_eq(spool_frame_resync(g, sizeof g, 0, &at), SPOOL_FRAME_OK);
    ck_assert_uint_eq(at, 8);
}
END_TEST

START_TEST(purges_expired_records_in_place)
{
    fixture *f = fx_new(200, -2 * HOUR_NS, 0);
    static char ids0[200][32], ids1[200][32];
    uint64_t off0[200], off1[200];
    ck_assert_uint_eq(read_all(f->path, ids0, off0, NULL), 200);
    struct stat st0, st1;
    ck_assert_int_eq(stat(f->path, &st0), 0);
    ck_assert(file_has(f->path, "secret-000000"));

    fx_pass(f, f->t0);
    ck_assert_uint_eq(f->st.purged, 100);
    ck_assert_uint_eq(f->st.segments, 1);
    ck_assert_uint_eq(f->st.errors, 0);
    ck_assert_uint_eq(f->sn.n, 100);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(f->sn.off[i], off0[2 * i]);
    /* Content gone, size and the other records' offsets unchanged. */
    ck_assert(!file_has(f->path, "secret-"));
    ck_assert_int_eq(stat(f->path, &st1), 0);
    ck_assert_int_eq(st1.st_size, st0.st_size);
    spool_reader_stats rs;
    ck_assert_uint_eq(read_all(f->path, ids1, off1, &rs), 100);
    ck_assert_uint_eq(rs.purged_frames, 100);
    ck_assert_uint_eq(rs.damaged_regions, 0);
    for (size_t i = 0; i < 100; i++) {
        ck_assert_str_eq(ids1[i], ids0[2 * i + 1]);
        ck_assert_uint_eq(off1[i], off0[2 * i + 1]);
    }
    /* A second pass has nothing to do and reads nothing. */
    fx_pass(f, f->t0 + 1000);
    ck_assert_uint_eq(f->st.purged, 0);
    ck_assert_uint_eq(f->st.frames_read, 0);
    ck_assert_int_eq(scrubber_next_due(f->s), 0);
    fx_free(f);
}
END_TEST

START_TEST(pending_records_purged_when_due)
{
    const int64_t age = 30 * 60 * 1000000000LL; /* 30 min old */
    fixture *f = fx_new(100, -age, 1);
    int64_t t0 = f->t0;
    append(f->w, 100, t0 + 10 * HOUR_NS); /* a future time */
    ck_assert_int_eq(lf_writer_flush(f->w), LF_OK);
    fx_pass(f, t0);
    ck_assert_uint_eq(f->st.purged, 0);
    ck_assert_uint_eq(f->st.frames_read, 101);
    int64_t due = scrubber_next_due(f->s);
    ck_assert_int_eq(due, t0 - age + HOUR_NS);
    /* Not yet due: nothing is read again. */
    fx_pass(f, due - 1);
    ck_assert_uint_eq(f->st.frames_read, 0);
    ck_assert_uint_eq(f->st.purged, 0);
    /* Due: the 50 with prompt text go; the future one waits for first
       sight + 1 h, not for its own time + 1 h. */
    fx_pass(f, due);
    ck_assert_uint_eq(f->st.purged, 50);
    ck_assert(!file_has(f->path, "secret-000098"));
    ck_assert(file_has(f->path, "secret-000100"));
    ck_assert_int_eq(scrubber_next_due(f->s), t0 + HOUR_NS);
    fx_pass(f, t0 + HOUR_NS);
    ck_assert_uint_eq(f->st.purged, 1);
    ck_assert(!file_has(f->path, "secret-"));
    ck_assert_int_eq(scrubber_next_due(f->s), 0);
    fx_free(f);
}
END_TEST

START_TEST(live_segment_keeps_growing)
{
    fixture *f = fx_new(50, -2 * HOUR_NS, 1);
    fx_pass(f, f->t0);
    ck_assert_uint_eq(f->st.purged, 25);
    /* The writer goes on appending after the purge. */
    for (int i = 50; i < 100; i++)
        append(f->w, i, f->t0 - 2 * HOUR_NS);
    ck_assert_int_eq(lf_writer_flush(f->w), LF_OK);
    fx_pass(f, f->t0);
    ck_assert_uint_eq(f->st.frames_read, 50); /* only the new frames */
    ck_assert_uint_eq(f->st.purged, 25);
    ck_assert_int_eq(lf_writer_close(f->w), LF_OK);
    f->w = NULL;
    static char ids[100][32];
    uint64_t offs[100];
    spool_reader_stats rs;
    ck_assert_uint_eq(read_all(f->path, ids, offs, &rs), 50);
    ck_assert_uint_eq(rs.purged_frames, 50);
    for (int i = 0; i < 50; i++) {
        char want[32];
        snprintf(want, sizeof want, "model-%06d", 2 * i + 1);
        ck_assert_str_eq(ids[i], want);
    }
    ck_assert(!file_has(f->path, "secret-"));
    fx_free(f);
}
END_TEST

START_TEST(dead_letters_judged_by_their_record)
{
    char *dir = tu_mkdtemp("scrub");
    int64_t t0 = now_ns();
    lf_writer_options o;
    lf_writer_options_init(&o);
    lf_writer *w;
    char err[256];
    ck_assert_int_eq(spool_writer_open_flags(dir, &o, SPOOL_FLAG_DEAD_LETTER,
                                             &w, err, sizeof err),
                     LF_OK);
    for (int i = 0; i < 10; i++) {
        Logferry__V1__InvocationRecord rec =
            LOGFERRY__V1__INVOCATION_RECORD__INIT;
        char prompt[32];
        snprintf(prompt, sizeof prompt, "secret-%06d", i);
        rec.event_time_ns = t0 - 2 * HOUR_NS;
        if (i % 2 == 0)
            rec.prompt_text = prompt;
        uint8_t rb[256];
        size_t rl = logferry__v1__invocation_record__pack(&rec, rb);
        Logferry__V1__DeadLetter d = LOGFERRY__V1__DEAD_LETTER__INIT;
        d.record.data = rb;
        d.record.len = rl;
        d.sink = "s";
        d.reason = "refused";
        uint8_t db[512];
        size_t dl = logferry__v1__dead_letter__pack(&d, db);
        ck_assert_int_eq(lf_writer_append_raw(w, db, dl), LF_OK);
    }
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    char *path = one_segment(dir);
    scrubber *s = scrubber_new(dir, limit_prompt, NULL, NULL);
    scrub_stats st;
    pass(s, dir, t0, &st);
    ck_assert_uint_eq(st.purged, 5);
    ck_assert(!file_has(path, "secret-"));
    scrubber_free(s);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(half_done_purge_is_damage_not_content)
{
    /* A crash after the payload was zeroed and before the header was
       rewritten: the frame reads as damage, never as a record. */
    fixture *f = fx_new(3, 0, 0);
    static char ids[3][32];
    uint64_t offs[3];
    ck_assert_uint_eq(read_all(f->path, ids, offs, NULL), 3);
    int fd = open(f->path, O_RDWR);
    uint8_t z[20] = {0};
    ck_assert_int_eq(pwrite(fd, z, sizeof z, (off_t)offs[0] + SPOOL_FRAME_HDR),
                     (ssize_t)sizeof z);
    close(fd);
    spool_reader *rd;
    ck_assert_int_eq(spool_reader_open(f->path, &rd, NULL, 0), 0);
    spool_read_event ev;
    ck_assert_int_eq(spool_reader_finish(rd, &ev), SPOOL_READ_DAMAGE);
    ck_assert_uint_eq(ev.offset, offs[0]);
    ck_assert_int_eq(spool_reader_finish(rd, &ev), SPOOL_READ_FRAME);
    ck_assert_uint_eq(ev.offset, offs[1]);
    spool_reader_close(rd);
    /* The scrubber zeroes the damage and judges the rest. */
    fx_pass(f, f->t0 + 2 * HOUR_NS);
    ck_assert_uint_eq(f->st.purged, 1); /* record 2; record 1 has no prompt */
    ck_assert_uint_eq(f->st.damaged_bytes, offs[1] - offs[0]);
    ck_assert(!file_has(f->path, "secret-"));
    fx_free(f);
}
END_TEST

START_TEST(unwritable_segment_retried)
{
    if (geteuid() == 0)
        return; /* root writes read-only files */
    fixture *f = fx_new(4, -2 * HOUR_NS, 0);
    ck_assert_int_eq(chmod(f->path, 0400), 0);
    fx_pass(f, f->t0);
    ck_assert_uint_eq(f->st.purged, 0);
    ck_assert_uint_eq(f->st.errors, 1);
    ck_assert(file_has(f->path, "secret-"));
    ck_assert_int_le(scrubber_next_due(f->s), f->t0); /* due again at once */
    ck_assert_int_eq(chmod(f->path, 0600), 0);
    fx_pass(f, f->t0 + 1);
    ck_assert_uint_eq(f->st.purged, 2);
    ck_assert_uint_eq(f->st.errors, 0);
    ck_assert(!file_has(f->path, "secret-"));
    fx_free(f);
}
END_TEST

START_TEST(removed_segments_forgotten)
{
    fixture *f = fx_new(1, 0, 0);
    fx_pass(f, f->t0);
    ck_assert_int_eq(scrubber_next_due(f->s), f->t0 + HOUR_NS);
    ck_assert_int_eq(unlink(f->path), 0);
    fx_pass(f, f->t0 + 2 * HOUR_NS);
    ck_assert_uint_eq(f->st.purged, 0);
    ck_assert_uint_eq(f->st.errors, 0);
    ck_assert_int_eq(scrubber_next_due(f->s), 0);
    fx_free(f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("scrub");
    TCase *t = tcase_create("scrub");
    tcase_add_test(t, purged_frame_codec);
    tcase_add_test(t, purges_expired_records_in_place);
    tcase_add_test(t, pending_records_purged_when_due);
    tcase_add_test(t, live_segment_keeps_growing);
    tcase_add_test(t, dead_letters_judged_by_their_record);
    tcase_add_test(t, half_done_purge_is_damage_not_content);
    tcase_add_test(t, unwritable_segment_retried);
    tcase_add_test(t, removed_segments_forgotten);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
