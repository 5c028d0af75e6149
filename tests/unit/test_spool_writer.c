/*
 * test_spool_writer.c - liblogferry (include/logferry/writer.h): segment
 * creation, stamping, raw appends, rotation by size and age, durability
 * modes, 8 threads appending at once, spool size limits (REFUSE and
 * DROP_OLDEST), a full file system (tmpfs) and a failed write cut back
 * (RLIMIT_FSIZE). Never asserts timings: waits poll with a generous cap.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool_testutil.h"

#define POLL_LIMIT_MS 20000 /* how long a poll waits before failing */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int append_n(lf_writer *w, long from, long n)
{
    for (long i = from; i < from + n; i++) {
        Logferry__V1__InvocationRecord rec;
        char id[24];
        snprintf(id, sizeof id, "%ld", i);
        tu_sample_record(&rec, id);
        int rc = lf_writer_append(w, &rec);
        if (rc != LF_OK)
            return rc;
    }
    return LF_OK;
}

/* Frames of one segment file as a reader sees them while it may be live:
   returns the count, *rest = bytes after the last frame. */
static size_t seg_frames(const char *path, uint64_t *rest)
{
    spool_reader *r;
    char err[512];
    ck_assert_msg(spool_reader_open(path, &r, err, sizeof err) == 0, "%s", err);
    spool_read_event ev;
    size_t n = 0;
    spool_read_result rc;
    while ((rc = spool_reader_next(r, &ev)) == SPOOL_READ_FRAME)
        n++;
    ck_assert_int_eq(rc, SPOOL_READ_END);
    if (rest)
        *rest = ev.length;
    spool_reader_close(r);
    return n;
}

static size_t count_segments(const char *dir)
{
    char **v;
    size_t n = tu_segments(dir, &v);
    tu_free_list(v, n);
    return n;
}

static uint64_t spool_bytes(const char *dir)
{
    char **v;
    size_t n = tu_segments(dir, &v);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(v[i], &st) == 0)
            total += (uint64_t)st.st_size;
    }
    tu_free_list(v, n);
    return total;
}

/* Records of the spool must be "from".."from+n-1" in order. */
static void expect_sequence(const tu_spool *sp, size_t first, long from, long n)
{
    ck_assert_uint_ge(sp->n, first + (size_t)n);
    for (long i = 0; i < n; i++) {
        Logferry__V1__InvocationRecord *rec = tu_decode(&sp->frames[first + i]);
        ck_assert_msg(atol(rec->request_id) == from + i, "record %ld is %s",
                      from + i, rec->request_id);
        logferry__v1__invocation_record__free_unpacked(rec, NULL);
    }
}

/* ---- open ------------------------------------------------------------- */

START_TEST(test_open_creates_spool)
{
    char *base = tu_mkdtemp("wr-open");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/spool", base);
    lf_writer *w;
    char err[256];
    ck_assert_int_eq(lf_writer_open(dir, NULL, &w, err, sizeof err), LF_OK);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);

    char **segs;
    ck_assert_uint_eq(tu_segments(dir, &segs), 1);
    ck_assert_int_eq(stat(segs[0], &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, SPOOL_HEADER_SIZE);
    uint64_t wid, seq;
    ck_assert_int_eq(
        spool_segment_name_parse(strrchr(segs[0], '/') + 1, NULL, &wid, &seq),
        0);
    ck_assert_uint_eq(seq, 0);
    spool_reader *r;
    ck_assert_int_eq(spool_reader_open(segs[0], &r, err, sizeof err), 0);
    ck_assert_uint_eq(spool_reader_header(r)->writer_id, wid);
    ck_assert_uint_eq(spool_reader_header(r)->seq, 0);
    ck_assert_uint_eq(spool_reader_header(r)->flags, 0);
    ck_assert_int_eq(spool_reader_is_live(r), 1);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.segments, 1);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    ck_assert_int_eq(spool_reader_is_live(r), 0);
    spool_reader_close(r);

    /* No temporary file is left behind. */
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        ck_assert_msg(!strstr(de->d_name, ".tmp"), "%s", de->d_name);
    closedir(d);
    tu_free_list(segs, 1);
    tu_rm_rf(base);
    free(base);
}
END_TEST

START_TEST(test_open_errors)
{
    char *base = tu_mkdtemp("wr-err");
    char path[512], err[512];
    lf_writer *w = (lf_writer *)1;

    snprintf(path, sizeof path, "%s/file", base);
    close(open(path, O_WRONLY | O_CREAT, 0600));
    ck_assert_int_eq(lf_writer_open(path, NULL, &w, err, sizeof err),
                     LF_ERR_INVAL);
    ck_assert_ptr_null(w);
    ck_assert_msg(strstr(err, path) && strstr(err, "Not a directory"), "%s",
                  err);

    snprintf(path, sizeof path, "%s/no/such/dir", base);
    ck_assert_int_eq(lf_writer_open(path, NULL, &w, err, sizeof err),
                     LF_ERR_IO);
    ck_assert_msg(strstr(err, path), "%s", err);

    snprintf(path, sizeof path, "%s/ok", base);
    lf_writer_options o;
    struct {
        const char *field;
        void (*set)(lf_writer_options *);
    } bad[] = {
        {"rotate_bytes", NULL},      {"buffer_bytes", NULL},
        {"fsync_interval_ms", NULL}, {"struct_size", NULL},
        {"durability", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lf_writer_options_init(&o);
        switch (i) {
        case 0:
            o.rotate_bytes = 100;
            break;
        case 1:
            o.buffer_bytes = 0;
            break;
        case 2:
            o.fsync_interval_ms = 0;
            break;
        case 3:
            o.struct_size = 3;
            break;
        case 4:
            o.durability = (lf_durability)7;
            break;
        }
        ck_assert_int_eq(lf_writer_open(path, &o, &w, err, sizeof err),
                         LF_ERR_INVAL);
        ck_assert_msg(strstr(err, bad[i].field), "%s: %s", bad[i].field, err);
    }
    ck_assert_int_eq(lf_writer_open(path, NULL, NULL, NULL, 0), LF_ERR_INVAL);
    ck_assert_int_eq(lf_writer_open(NULL, NULL, &w, NULL, 0), LF_ERR_INVAL);
    tu_rm_rf(base);
    free(base);
}
END_TEST

START_TEST(test_misc_api)
{
    for (int c = 0; c >= -8; c--) {
        ck_assert_ptr_nonnull(lf_strerror(c));
        ck_assert_str_ne(lf_strerror(c), lf_strerror(-100));
    }
    ck_assert_int_eq(lf_writer_close(NULL), LF_OK);
    ck_assert_str_eq(lf_writer_errmsg(NULL), "");
    ck_assert_int_eq(lf_writer_append(NULL, NULL), LF_ERR_INVAL);
    ck_assert_int_eq(lf_writer_flush(NULL), LF_ERR_INVAL);
}
END_TEST

/* ---- record content ---------------------------------------------------- */

START_TEST(test_stamping)
{
    char *dir = tu_mkdtemp("wr-stamp");
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, NULL, &w, NULL, 0), LF_OK);

    Logferry__V1__InvocationRecord rec;
    tu_sample_record(&rec, "stamped");
    int64_t t0 = now_ns();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(lf_writer_append(w, &rec), LF_OK);
    int64_t t1 = now_ns();
    /* the caller's record is not modified */
    ck_assert_uint_eq(rec.record_id.len, 0);
    ck_assert_int_eq(rec.event_time_ns, 0);

    uint8_t id[16] = "0123456789abcdef";
    tu_sample_record(&rec, "given");
    rec.record_id.data = id;
    rec.record_id.len = sizeof id;
    rec.event_time_ns = 42;
    ck_assert_int_eq(lf_writer_append(w, &rec), LF_OK);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, 1001);
    uint8_t(*ids)[16] = malloc(1000 * sizeof *ids);
    for (size_t i = 0; i < 1000; i++) {
        Logferry__V1__InvocationRecord *r = tu_decode(&sp.frames[i]);
        ck_assert_str_eq(r->request_id, "stamped");
        ck_assert_uint_eq(r->record_id.len, 16);
        memcpy(ids[i], r->record_id.data, 16);
        ck_assert_int_ge(r->event_time_ns, t0);
        ck_assert_int_le(r->event_time_ns, t1);
        logferry__v1__invocation_record__free_unpacked(r, NULL);
    }
    for (size_t i = 0; i < 1000; i++)
        for (size_t j = i + 1; j < 1000; j++)
            ck_assert_msg(memcmp(ids[i], ids[j], 16) != 0, "dup id %zu %zu", i,
                          j);
    Logferry__V1__InvocationRecord *r = tu_decode(&sp.frames[1000]);
    ck_assert_uint_eq(r->record_id.len, 16);
    ck_assert_mem_eq(r->record_id.data, id, 16);
    ck_assert_int_eq(r->event_time_ns, 42);
    /* Nothing was added to a record that had both. */
    ck_assert_uint_eq(sp.frames[1000].len,
                      logferry__v1__invocation_record__get_packed_size(&rec));
    logferry__v1__invocation_record__free_unpacked(r, NULL);
    free(ids);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_append_raw_and_limits)
{
    char *dir = tu_mkdtemp("wr-raw");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.buffer_bytes = 4096; /* the 10 KB record below bypasses the buffer */
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);

    ck_assert_int_eq(lf_writer_append_raw(w, "hello", 5), LF_OK);
    ck_assert_int_eq(lf_writer_append_raw(w, NULL, 0), LF_OK);
    char *big = malloc(10000);
    memset(big, 'b', 10000);
    ck_assert_int_eq(lf_writer_append_raw(w, big, 10000), LF_OK);
    ck_assert_int_eq(append_n(w, 0, 3), LF_OK);
    free(big);

    ck_assert_int_eq(lf_writer_append_raw(w, "x", LF_MAX_RECORD_BYTES + 1),
                     LF_ERR_TOO_BIG);
    ck_assert_int_eq(lf_writer_append_raw(w, NULL, 1), LF_ERR_INVAL);
    ck_assert_int_eq(lf_writer_append_raw(NULL, "x", 1), LF_ERR_INVAL);

    Logferry__V1__DeadLetter dl = LOGFERRY__V1__DEAD_LETTER__INIT;
    ck_assert_int_eq(
        lf_writer_append(w, (const Logferry__V1__InvocationRecord *)&dl),
        LF_ERR_INVAL);

    Logferry__V1__InvocationRecord rec;
    tu_sample_record(&rec, "huge");
    char *prompt = malloc(LF_MAX_RECORD_BYTES + 1);
    memset(prompt, 'p', LF_MAX_RECORD_BYTES);
    prompt[LF_MAX_RECORD_BYTES] = '\0';
    rec.prompt_text = prompt;
    ck_assert_int_eq(lf_writer_append(w, &rec), LF_ERR_TOO_BIG);
    /* Fits before stamping, not after: still refused, nothing written. */
    prompt[LF_MAX_RECORD_BYTES - 20] = '\0';
    rec.prompt_text = prompt;
    ck_assert_int_eq(lf_writer_append(w, &rec), LF_ERR_TOO_BIG);
    free(prompt);

    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.records, 6);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, 6);
    ck_assert_uint_eq(sp.frames[0].len, 5);
    ck_assert_mem_eq(sp.frames[0].data, "hello", 5);
    ck_assert_uint_eq(sp.frames[1].len, 0);
    ck_assert_uint_eq(sp.frames[2].len, 10000);
    expect_sequence(&sp, 3, 0, 3);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- rotation ---------------------------------------------------------- */

START_TEST(test_rotate_by_size)
{
    char *dir = tu_mkdtemp("wr-rot");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.rotate_bytes = 4096;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    ck_assert_int_eq(append_n(w, 0, 100), LF_OK);
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);

    char **segs;
    size_t n = tu_segments(dir, &segs);
    ck_assert_uint_ge(n, 5);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.segments, n);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        stat(segs[i], &st);
        ck_assert_int_le(st.st_size, 4096);
        uint64_t seq;
        ck_assert_int_eq(spool_segment_name_parse(strrchr(segs[i], '/') + 1,
                                                  NULL, NULL, &seq),
                         0);
        ck_assert_uint_eq(seq, i);
        spool_reader *r;
        ck_assert_int_eq(spool_reader_open(segs[i], &r, NULL, 0), 0);
        /* sealed segments are complete; only the last one is live */
        ck_assert_int_eq(spool_reader_is_live(r), i == n - 1);
        spool_reader_close(r);
    }
    tu_free_list(segs, n);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, 100);
    ck_assert_uint_eq(sp.damaged_regions, 0);
    expect_sequence(&sp, 0, 0, 100);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

static size_t wait_segments(const char *dir, size_t want)
{
    size_t n = 0;
    for (int ms = 0; ms < POLL_LIMIT_MS; ms += 5) {
        if ((n = count_segments(dir)) >= want)
            break;
        sleep_ms(5);
    }
    return n;
}

START_TEST(test_rotate_by_age)
{
    char *dir = tu_mkdtemp("wr-age");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.rotate_age_ms = 30;
    o.fsync_interval_ms = 5;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);

    /* An empty segment never ages out. */
    sleep_ms(150);
    ck_assert_uint_eq(count_segments(dir), 1);

    /* The background thread rotates a segment holding a record... */
    ck_assert_int_eq(append_n(w, 0, 1), LF_OK);
    ck_assert_uint_eq(wait_segments(dir, 2), 2);
    /* ...and then leaves the new, empty one alone. */
    sleep_ms(150);
    ck_assert_uint_eq(count_segments(dir), 2);
    ck_assert_int_eq(append_n(w, 1, 1), LF_OK);
    ck_assert_uint_eq(wait_segments(dir, 3), 3);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, 2);
    ck_assert_uint_eq(sp.frames[0].segment, 0);
    ck_assert_uint_eq(sp.frames[1].segment, 1);
    expect_sequence(&sp, 0, 0, 2);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_rotate_by_age_on_append)
{
    /* The background thread is kept out of it (long interval): the age is
       checked by append itself. */
    char *dir = tu_mkdtemp("wr-age2");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.rotate_age_ms = 20;
    o.fsync_interval_ms = 600000;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    ck_assert_int_eq(append_n(w, 0, 1), LF_OK);
    sleep_ms(60);
    ck_assert_int_eq(append_n(w, 1, 1), LF_OK);
    ck_assert_uint_eq(count_segments(dir), 2);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, 2);
    ck_assert_uint_eq(sp.frames[1].segment, 1);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- durability -------------------------------------------------------- */

static char *only_segment(const char *dir)
{
    char **v;
    ck_assert_uint_eq(tu_segments(dir, &v), 1);
    char *p = v[0];
    free(v);
    return p;
}

START_TEST(test_durability_every)
{
    char *dir = tu_mkdtemp("wr-every");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = LF_DURABILITY_EVERY;
    o.fsync_interval_ms = 600000;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    char *seg = only_segment(dir);
    for (long i = 0; i < 20; i++) {
        ck_assert_int_eq(append_n(w, i, 1), LF_OK);
        /* written before append returned */
        ck_assert_uint_eq(seg_frames(seg, NULL), (size_t)i + 1);
    }
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.records, 20);
    ck_assert_uint_ge(ws.fsyncs, 20);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    free(seg);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_durability_interval)
{
    char *dir = tu_mkdtemp("wr-interval");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.fsync_interval_ms = 10;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    char *seg = only_segment(dir);
    ck_assert_int_eq(append_n(w, 0, 10), LF_OK);
    /* The background thread writes and syncs without being asked. */
    lf_writer_stats ws = {0};
    size_t n = 0;
    for (int ms = 0; ms < POLL_LIMIT_MS; ms += 5) {
        n = seg_frames(seg, NULL);
        lf_writer_get_stats(w, &ws);
        if (n == 10 && ws.fsyncs > 0)
            break;
        sleep_ms(5);
    }
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_gt(ws.fsyncs, 0);
    ck_assert_int_eq(append_n(w, 10, 5), LF_OK);
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_uint_eq(seg_frames(seg, NULL), 15);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    free(seg);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_durability_none)
{
    char *dir = tu_mkdtemp("wr-none");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = LF_DURABILITY_NONE;
    o.fsync_interval_ms = 600000;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    char *seg = only_segment(dir);
    ck_assert_int_eq(append_n(w, 0, 10), LF_OK);
    ck_assert_uint_eq(seg_frames(seg, NULL), 0); /* still in the buffer */
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_uint_eq(seg_frames(seg, NULL), 10);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.fsyncs, 0);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    free(seg);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

#define NTHREADS 8
#define PER_THREAD 20000

typedef struct thr_arg {
    lf_writer *w;
    int t;
    int failures;
} thr_arg;

static void thr_id(uint8_t id[16], int t, int i)
{
    memset(id, 0, 16);
    memcpy(id, "thrd", 4);
    memcpy(id + 4, &t, sizeof t);
    memcpy(id + 8, &i, sizeof i);
}

static void *thr_main(void *p)
{
    thr_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        Logferry__V1__InvocationRecord rec;
        char rid[32];
        uint8_t id[16];
        snprintf(rid, sizeof rid, "%d:%d", a->t, i);
        tu_sample_record(&rec, rid);
        if (a->t % 2 == 0) { /* even threads bring their own ids */
            thr_id(id, a->t, i);
            rec.record_id.data = id;
            rec.record_id.len = 16;
        }
        if (lf_writer_append(a->w, &rec) != LF_OK)
            a->failures++;
    }
    return NULL;
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

START_TEST(test_threads)
{
    char *dir = tu_mkdtemp("wr-threads");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.rotate_bytes = 1024 * 1024; /* rotations race with appends too */
    o.fsync_interval_ms = 5;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    pthread_t th[NTHREADS];
    thr_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (thr_arg){.w = w, .t = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, thr_main, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].failures, 0);
    }
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, NTHREADS * PER_THREAD);
    ck_assert_uint_eq(sp.damaged_regions, 0);
    uint8_t *seen = calloc(NTHREADS * PER_THREAD, 1);
    int last[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        last[t] = -1;
    uint8_t(*ids)[16] = malloc(sp.n * sizeof *ids);
    for (size_t k = 0; k < sp.n; k++) {
        Logferry__V1__InvocationRecord *r = tu_decode(&sp.frames[k]);
        int t, i;
        ck_assert_int_eq(sscanf(r->request_id, "%d:%d", &t, &i), 2);
        ck_assert(t >= 0 && t < NTHREADS && i >= 0 && i < PER_THREAD);
        ck_assert_msg(!seen[t * PER_THREAD + i], "%d:%d twice", t, i);
        seen[t * PER_THREAD + i] = 1;
        /* one thread's records keep their order */
        ck_assert_int_gt(i, last[t]);
        last[t] = i;
        ck_assert_uint_eq(r->record_id.len, 16);
        memcpy(ids[k], r->record_id.data, 16);
        if (t % 2 == 0) {
            uint8_t want[16];
            thr_id(want, t, i);
            ck_assert_mem_eq(ids[k], want, 16);
        }
        logferry__v1__invocation_record__free_unpacked(r, NULL);
    }
    qsort(ids, sp.n, 16, id_cmp);
    for (size_t k = 1; k < sp.n; k++)
        ck_assert_msg(memcmp(ids[k - 1], ids[k], 16) != 0,
                      "record_id repeated");
    free(ids);
    free(seen);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- spool size limit -------------------------------------------------- */

START_TEST(test_spool_full_refuse)
{
    char *dir = tu_mkdtemp("wr-refuse");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.spool_max_bytes = 64 * 1024;
    o.rotate_bytes = 8 * 1024;
    o.buffer_bytes = 4096;
    o.fsync_interval_ms = 10;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    long ok = 0;
    int rc = LF_OK;
    while (ok < 100000 && (rc = append_n(w, ok, 1)) == LF_OK)
        ok++;
    ck_assert_int_eq(rc, LF_ERR_SPOOL_FULL);
    ck_assert_msg(strstr(lf_writer_errmsg(w), "spool_max_bytes"), "%s",
                  lf_writer_errmsg(w));
    ck_assert_int_eq(append_n(w, ok, 1), LF_ERR_SPOOL_FULL);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_eq(ws.refused, 2);
    ck_assert_uint_eq(ws.records, (uint64_t)ok);
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_uint_le(spool_bytes(dir), o.spool_max_bytes);
    ck_assert_uint_gt(spool_bytes(dir), o.spool_max_bytes / 2);

    /* The agent ships and deletes the oldest segment: appends resume once
       the writer re-measures the spool (at most a second later). */
    char **segs;
    size_t n = tu_segments(dir, &segs);
    tu_spool before;
    tu_read_spool(dir, &before);
    ck_assert_uint_eq(before.n, (size_t)ok); /* nothing refused was kept */
    expect_sequence(&before, 0, 0, ok);
    long in_first = 0;
    while ((size_t)in_first < before.n && before.frames[in_first].segment == 0)
        in_first++;
    tu_spool_free(&before);
    ck_assert_int_eq(unlink(segs[0]), 0);
    tu_free_list(segs, n);
    rc = LF_ERR_SPOOL_FULL;
    for (int ms = 0; ms < POLL_LIMIT_MS && rc == LF_ERR_SPOOL_FULL; ms += 20) {
        rc = append_n(w, ok, 1);
        if (rc == LF_ERR_SPOOL_FULL)
            sleep_ms(20);
    }
    ck_assert_int_eq(rc, LF_OK);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, (size_t)(ok - in_first + 1));
    expect_sequence(&sp, 0, in_first, ok - in_first + 1);
    tu_spool_free(&sp);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_spool_full_drop_oldest)
{
    char *dir = tu_mkdtemp("wr-drop");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.rotate_bytes = 8 * 1024;
    o.buffer_bytes = 4096;

    /* An old writer's complete segments, and a live writer's segment. */
    lf_writer *old, *live, *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &old, NULL, 0), LF_OK);
    ck_assert_int_eq(append_n(old, 0, 100), LF_OK);
    ck_assert_int_eq(lf_writer_close(old), LF_OK);
    size_t old_segments = count_segments(dir);
    ck_assert_uint_ge(old_segments, 3);
    ck_assert_int_eq(lf_writer_open(dir, &o, &live, NULL, 0), LF_OK);
    ck_assert_int_eq(append_n(live, 0, 5), LF_OK);
    ck_assert_int_eq(lf_writer_flush(live), LF_OK);
    char **segs;
    size_t n = tu_segments(dir, &segs);
    char *live_seg = strdup(segs[n - 1]);
    tu_free_list(segs, n);

    o.spool_max_bytes = 64 * 1024;
    o.overflow = LF_OVERFLOW_DROP_OLDEST;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    ck_assert_int_eq(append_n(w, 0, 2000), LF_OK); /* ~500 KB: never refused */
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_uint_le(spool_bytes(dir), o.spool_max_bytes);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_ge(ws.dropped_segments, old_segments);
    ck_assert_uint_eq(ws.refused, 0);
    struct stat st;
    ck_assert_int_eq(stat(live_seg, &st), 0); /* live: never dropped */

    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    ck_assert_int_eq(lf_writer_close(live), LF_OK);
    tu_spool sp;
    tu_read_spool(dir, &sp);
    /* the newest records survive, in order, after the live writer's 5 */
    size_t kept = sp.n - 5;
    expect_sequence(&sp, 0, 0, 5);
    expect_sequence(&sp, 5, 2000 - (long)kept, (long)kept);
    tu_spool_free(&sp);
    free(live_seg);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- a full file system ------------------------------------------------ */

/* Mount a small tmpfs in a private mount namespace of this test process
   (Check forks one per test), so nothing outlives the test. */
static int mount_small_tmpfs(const char *where, const char *size)
{
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", where, "tmpfs", 0, size) != 0) {
        fprintf(stderr,
                "SKIP ENOSPC case: cannot mount a tmpfs at %s (%s); "
                "needs root with CAP_SYS_ADMIN\n",
                where, strerror(errno));
        return -1;
    }
    return 0;
}

static void enospc_case(lf_durability dur)
{
    char *base = tu_mkdtemp("wr-enospc");
    if (mount_small_tmpfs(base, "size=256k") != 0) {
        tu_rm_rf(base);
        free(base);
        return;
    }
    char dir[512], filler[512];
    snprintf(dir, sizeof dir, "%s/spool", base);
    snprintf(filler, sizeof filler, "%s/filler", base);
    /* Space to give back later. */
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    char blk[4096];
    memset(blk, 'f', sizeof blk);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(write(fd, blk, sizeof blk), (ssize_t)sizeof blk);
    close(fd);

    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = dur;
    o.buffer_bytes = 16 * 1024;
    o.fsync_interval_ms = 600000; /* only appends and flush write */
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    long ok = 0;
    int rc = LF_OK;
    while (ok < 100000 && (rc = append_n(w, ok, 1)) == LF_OK)
        ok++;
    ck_assert_int_eq(rc, LF_ERR_NO_SPACE);
    ck_assert_msg(strstr(lf_writer_errmsg(w), "No space left"), "%s",
                  lf_writer_errmsg(w));
    /* No partial frame in the file: every byte is a whole frame. */
    char *seg = only_segment(dir);
    uint64_t rest = 1;
    size_t in_file = seg_frames(seg, &rest);
    ck_assert_uint_eq(rest, 0);
    if (dur == LF_DURABILITY_EVERY)
        ck_assert_uint_eq(in_file, (size_t)ok); /* refused = not appended */
    else
        ck_assert_uint_lt(in_file, (size_t)ok); /* the rest is buffered */
    /* It persists... */
    ck_assert_int_eq(append_n(w, ok, 1), LF_ERR_NO_SPACE);
    /* EVERY took the refused records back: nothing waits to be written. */
    ck_assert_int_eq(lf_writer_flush(w),
                     dur == LF_DURABILITY_EVERY ? LF_OK : LF_ERR_NO_SPACE);
    lf_writer_stats ws;
    lf_writer_get_stats(w, &ws);
    ck_assert_uint_ge(ws.refused, 2);
    /* ...until space comes back. */
    ck_assert_int_eq(unlink(filler), 0);
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_int_eq(append_n(w, ok, 10), LF_OK);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, (size_t)ok + 10);
    ck_assert_uint_eq(sp.damaged_regions, 0);
    expect_sequence(&sp, 0, 0, ok + 10);
    tu_spool_free(&sp);
    free(seg);
    umount2(base, MNT_DETACH);
    tu_rm_rf(base);
    free(base);
}

START_TEST(test_enospc_interval)
{
    enospc_case(LF_DURABILITY_INTERVAL);
}
END_TEST

START_TEST(test_enospc_every)
{
    enospc_case(LF_DURABILITY_EVERY);
}
END_TEST

START_TEST(test_failed_write_is_cut_back)
{
    /* A write that fails part way (here EFBIG from RLIMIT_FSIZE) must not
       leave the frames it did write: the writer truncates back to the last
       whole frame, reports LF_ERR_IO with the path, keeps the buffer and
       succeeds once writing works again. */
    char *dir = tu_mkdtemp("wr-fsize");
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = LF_DURABILITY_NONE;
    o.buffer_bytes = 4096;
    o.fsync_interval_ms = 600000;
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, &o, &w, NULL, 0), LF_OK);
    char *seg = only_segment(dir);

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 10000; /* not a multiple of anything the writer uses */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    long ok = 0;
    int rc = LF_OK;
    while (ok < 1000 && (rc = append_n(w, ok, 1)) == LF_OK)
        ok++;
    ck_assert_int_eq(rc, LF_ERR_IO);
    ck_assert_msg(strstr(lf_writer_errmsg(w), seg) &&
                      strstr(lf_writer_errmsg(w), strerror(EFBIG)),
                  "%s", lf_writer_errmsg(w));
    struct stat st;
    ck_assert_int_eq(stat(seg, &st), 0);
    ck_assert_int_lt(st.st_size, 10000); /* the partial frame was removed */
    ck_assert_int_gt(st.st_size, 10000 - 400); /* whole frames were kept */
    uint64_t rest = 1;
    size_t in_file = seg_frames(seg, &rest);
    ck_assert_uint_eq(rest, 0);
    ck_assert_uint_lt(in_file, (size_t)ok);

    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(lf_writer_flush(w), LF_OK);
    ck_assert_int_eq(append_n(w, ok, 1), LF_OK);
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_eq(sp.n, (size_t)ok + 1);
    expect_sequence(&sp, 0, 0, ok + 1);
    tu_spool_free(&sp);
    free(seg);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool_writer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_open_creates_spool);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_misc_api);
    tcase_add_test(tc, test_stamping);
    tcase_add_test(tc, test_append_raw_and_limits);
    tcase_add_test(tc, test_rotate_by_size);
    tcase_add_test(tc, test_rotate_by_age);
    tcase_add_test(tc, test_rotate_by_age_on_append);
    tcase_add_test(tc, test_durability_every);
    tcase_add_test(tc, test_durability_interval);
    tcase_add_test(tc, test_durability_none);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_spool_full_refuse);
    tcase_add_test(tc, test_spool_full_drop_oldest);
    tcase_add_test(tc, test_enospc_interval);
    tcase_add_test(tc, test_enospc_every);
    tcase_add_test(tc, test_failed_write_is_cut_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
