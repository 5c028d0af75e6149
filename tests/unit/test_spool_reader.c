/*
 * test_spool_reader.c - agent/spool_reader.h: reading segments a writer
 * made, damage in the middle (exact region, every intact frame still read),
 * truncation mid-frame, a corrupt tail of a live segment (END, not damage),
 * a writer killed with SIGKILL, growth while tailing, seeking, headers.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool_testutil.h"

/* ---- hand-built segments ------------------------------------------------ */

#define SEG_MAXF 1024

typedef struct seg {
    char *dir;
    char path[512];
    size_t n;
    uint64_t off[SEG_MAXF + 1]; /* off[n] = end of the last frame */
    uint32_t len[SEG_MAXF];
} seg;

static void put_bytes(const char *path, uint64_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Payload byte i of frame k: recognisable, and never 'L' so that payloads
   hold no accidental sync words. */
static uint8_t pay(size_t k, size_t i)
{
    uint8_t b = (uint8_t)(k * 31 + i * 7);
    return b == 0x4c ? 0x4d : b;
}

static void frame_bytes(size_t k, uint32_t len, uint8_t **out, size_t *n)
{
    uint8_t *f = malloc(SPOOL_FRAME_HDR + len);
    ck_assert_ptr_nonnull(f);
    for (uint32_t i = 0; i < len; i++)
        f[SPOOL_FRAME_HDR + i] = pay(k, i);
    spool_frame_header_encode(f, f + SPOOL_FRAME_HDR, len);
    *out = f;
    *n = SPOOL_FRAME_HDR + len;
}

/* A segment of `n` frames, frame k holding lenfn(k) bytes. */
static void seg_build(seg *s, const char *tag, size_t n,
                      uint32_t (*lenfn)(size_t))
{
    memset(s, 0, sizeof *s);
    s->dir = tu_mkdtemp(tag);
    char name[SPOOL_SEGMENT_NAME_MAX];
    spool_segment_name(name, sizeof name, 1000, 0xabc, 0);
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, name);
    int fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    spool_header h = {.version = SPOOL_VERSION,
                      .header_size = SPOOL_HEADER_SIZE,
                      .writer_id = 0xabc,
                      .created_ns = 1000,
                      .pid = 1};
    uint8_t hb[SPOOL_HEADER_SIZE];
    spool_header_encode(&h, hb);
    ck_assert_int_eq(write(fd, hb, sizeof hb), (ssize_t)sizeof hb);
    uint64_t off = SPOOL_HEADER_SIZE;
    s->n = n;
    for (size_t k = 0; k < n; k++) {
        uint8_t *f;
        size_t fn;
        s->len[k] = lenfn(k);
        frame_bytes(k, s->len[k], &f, &fn);
        ck_assert_int_eq(write(fd, f, fn), (ssize_t)fn);
        free(f);
        s->off[k] = off;
        off += fn;
    }
    s->off[n] = off;
    close(fd);
}

static void seg_free(seg *s)
{
    tu_rm_rf(s->dir);
    free(s->dir);
}

static spool_reader *open_reader(const char *path)
{
    spool_reader *r;
    char err[512];
    ck_assert_msg(spool_reader_open(path, &r, err, sizeof err) == 0, "%s", err);
    return r;
}

/* Expect FRAME k of segment s. */
static void expect_frame(spool_reader *r, const seg *s, size_t k)
{
    spool_read_event ev;
    spool_read_result rc = spool_reader_next(r, &ev);
    ck_assert_msg(rc == SPOOL_READ_FRAME, "frame %zu: got %d (%s)", k, rc,
                  spool_reader_errmsg(r));
    ck_assert_uint_eq(ev.offset, s->off[k]);
    ck_assert_uint_eq(ev.length, s->len[k]);
    for (uint32_t i = 0; i < s->len[k]; i++)
        if (ev.payload[i] != pay(k, i))
            ck_abort_msg("frame %zu byte %u differs", k, i);
}

static void expect(spool_read_result got, spool_read_event *ev,
                   spool_read_result want, uint64_t off, uint64_t len)
{
    ck_assert_int_eq(got, want);
    ck_assert_uint_eq(ev->offset, off);
    ck_assert_uint_eq(ev->length, len);
}

static uint32_t len_varied(size_t k)
{
    return (uint32_t)(1 + (k * 977) % 2000);
}

static uint32_t len_10k(size_t k)
{
    return 10000 + (uint32_t)(k % 7);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_read_writer_segment)
{
    char *dir = tu_mkdtemp("rd-writer");
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, NULL, &w, NULL, 0), LF_OK);
    for (int i = 0; i < 50; i++) {
        Logferry__V1__InvocationRecord rec;
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        tu_sample_record(&rec, id);
        ck_assert_int_eq(lf_writer_append(w, &rec), LF_OK);
    }
    ck_assert_int_eq(lf_writer_close(w), LF_OK);

    char **segs;
    ck_assert_uint_eq(tu_segments(dir, &segs), 1);
    spool_reader *r = open_reader(segs[0]);
    const spool_header *h = spool_reader_header(r);
    uint64_t wid;
    const char *base = strrchr(segs[0], '/') + 1;
    ck_assert_int_eq(spool_segment_name_parse(base, NULL, &wid, NULL), 0);
    ck_assert_uint_eq(h->writer_id, wid);
    ck_assert_uint_eq(h->pid, (uint32_t)getpid());
    ck_assert_int_eq(spool_reader_is_live(r), 0);
    spool_read_event ev;
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_FRAME);
        Logferry__V1__InvocationRecord *rec =
            logferry__v1__invocation_record__unpack(NULL, ev.length,
                                                    ev.payload);
        ck_assert_ptr_nonnull(rec);
        ck_assert_int_eq(atoi(rec->request_id), i);
        logferry__v1__invocation_record__free_unpacked(rec, NULL);
    }
    struct stat st;
    stat(segs[0], &st);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, (uint64_t)st.st_size,
           0);
    expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_END,
           (uint64_t)st.st_size, 0);
    spool_reader_stats rs;
    spool_reader_get_stats(r, &rs);
    ck_assert_uint_eq(rs.frames, 50);
    ck_assert_uint_eq(rs.damaged_regions, 0);
    spool_reader_close(r);
    tu_free_list(segs, 1);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* Garbage over the end of frame 40 and the start of frame 41: frames
   0..39 and 42..99 are read, and exactly [off[40], off[42]) is damage. */
static void damage_case(uint32_t (*lenfn)(size_t), size_t n, size_t k)
{
    seg s;
    seg_build(&s, "rd-damage", n, lenfn);
    uint64_t from = s.off[k] + 5, to = s.off[k + 1] + 20;
    size_t glen = (size_t)(to - from);
    uint8_t *g = malloc(glen);
    uint32_t x = 12345;
    for (size_t i = 0; i < glen; i++) {
        x = x * 1103515245u + 12345u;
        g[i] = (uint8_t)(x >> 16);
    }
    put_bytes(s.path, from, g, glen);
    free(g);

    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    for (size_t i = 0; i < k; i++)
        expect_frame(r, &s, i);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_DAMAGE, s.off[k],
           s.off[k + 2] - s.off[k]);
    ck_assert_uint_eq(spool_reader_tell(r), s.off[k + 2]);
    for (size_t i = k + 2; i < n; i++)
        expect_frame(r, &s, i);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[n], 0);
    spool_reader_stats rs;
    spool_reader_get_stats(r, &rs);
    ck_assert_uint_eq(rs.frames, n - 2);
    ck_assert_uint_eq(rs.damaged_regions, 1);
    ck_assert_uint_eq(rs.damaged_bytes, s.off[k + 2] - s.off[k]);
    spool_reader_close(r);
    seg_free(&s);
}

START_TEST(test_damage_in_the_middle)
{
    damage_case(len_varied, 100, 40);
}
END_TEST

START_TEST(test_damage_across_read_window)
{
    /* 10 KB frames: frame 104 straddles the 1 MiB read window. */
    size_t k = (SPOOL_READER_WINDOW - SPOOL_HEADER_SIZE) / 10015;
    damage_case(len_10k, 300, k);
}
END_TEST

START_TEST(test_truncated_mid_frame)
{
    /* cut inside the header of the last frame, then inside its payload */
    size_t cuts[] = {3, 7, 12, 100};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        seg s;
        seg_build(&s, "rd-trunc", 10, len_varied);
        ck_assert_int_eq(truncate(s.path, (off_t)(s.off[9] + cuts[c])), 0);
        spool_reader *r = open_reader(s.path);
        spool_read_event ev;
        for (size_t i = 0; i < 9; i++)
            expect_frame(r, &s, i);
        /* Unknown whether the writer is still at it: END, twice. */
        expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[9],
               cuts[c]);
        expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[9],
               cuts[c]);
        ck_assert_int_eq(spool_reader_is_live(r), 0);
        expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_DAMAGE, s.off[9],
               cuts[c]);
        expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_END,
               s.off[9] + cuts[c], 0);
        spool_reader_close(r);
        seg_free(&s);
    }
}
END_TEST

START_TEST(test_truncated_below_position)
{
    /* Writers never remove a whole frame: a file cut below frames already
       read is an error, named with the path. */
    seg s;
    seg_build(&s, "rd-short", 5, len_varied);
    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    for (size_t i = 0; i < 5; i++)
        expect_frame(r, &s, i);
    ck_assert_int_eq(truncate(s.path, (off_t)s.off[3]), 0);
    ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_ERROR);
    ck_assert_ptr_nonnull(strstr(spool_reader_errmsg(r), s.path));
    ck_assert_ptr_nonnull(strstr(spool_reader_errmsg(r), "truncated"));
    spool_reader_close(r);
    seg_free(&s);
}
END_TEST

START_TEST(test_live_corrupt_tail_is_not_damage)
{
    seg s;
    seg_build(&s, "rd-live", 5, len_varied);
    int lockfd = open(s.path, O_RDONLY);
    ck_assert_int_eq(flock(lockfd, LOCK_EX), 0); /* plays the writer */

    uint8_t junk[30];
    memset(junk, 0xee, sizeof junk);
    append_bytes(s.path, junk, sizeof junk);

    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    for (size_t i = 0; i < 5; i++)
        expect_frame(r, &s, i);
    ck_assert_int_eq(spool_reader_is_live(r), 1);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[5], 30);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[5], 30);

    /* A valid frame after the junk settles it: the junk is damage. */
    uint8_t *f;
    size_t fn;
    frame_bytes(5, 77, &f, &fn);
    append_bytes(s.path, f, fn);
    free(f);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_DAMAGE, s.off[5], 30);
    ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_FRAME);
    ck_assert_uint_eq(ev.offset, s.off[5] + 30);
    ck_assert_uint_eq(ev.length, 77);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[5] + 30 + fn,
           0);

    close(lockfd); /* the writer is gone */
    ck_assert_int_eq(spool_reader_is_live(r), 0);
    spool_reader_close(r);
    seg_free(&s);
}
END_TEST

START_TEST(test_incomplete_candidate_then_frame)
{
    /* frames | "LFRM" len=1000 + 50 junk bytes | one valid frame. The fake
       header may be a frame still being written while the segment is live;
       once complete, the valid frame after it must still be read. */
    seg s;
    seg_build(&s, "rd-cand", 3, len_varied);
    uint8_t fake[62];
    memset(fake, 0x11, sizeof fake);
    uint32_t flen = 1000;
    memcpy(fake, "LFRM", 4);
    memcpy(fake + 4, &flen, 4);
    append_bytes(s.path, fake, sizeof fake);
    uint8_t *f;
    size_t fn;
    frame_bytes(3, 40, &f, &fn);
    append_bytes(s.path, f, fn);
    free(f);
    uint64_t fake_off = s.off[3], real_off = s.off[3] + sizeof fake;

    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    for (size_t i = 0; i < 3; i++)
        expect_frame(r, &s, i);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, fake_off,
           sizeof fake + fn);
    expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_DAMAGE, fake_off,
           sizeof fake);
    ck_assert_int_eq(spool_reader_finish(r, &ev), SPOOL_READ_FRAME);
    ck_assert_uint_eq(ev.offset, real_off);
    expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_END, real_off + fn, 0);
    spool_reader_close(r);
    seg_free(&s);
}
END_TEST

/* The child: a writer that appends `n` records ("0", "1", ...), flushes,
   optionally tears a frame at the end of its segment, says so on `fd`, and
   waits to be killed. With n < 0 it appends forever. */
static void child_writer(const char *dir, long n, int tear, int fd,
                         lf_durability dur)
{
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = dur;
    o.buffer_bytes = 4096;
    lf_writer *w;
    if (lf_writer_open(dir, &o, &w, NULL, 0) != LF_OK)
        _exit(2);
    for (long i = 0; n < 0 || i < n; i++) {
        Logferry__V1__InvocationRecord rec;
        char id[24];
        snprintf(id, sizeof id, "%ld", i);
        tu_sample_record(&rec, id);
        if (lf_writer_append(w, &rec) != LF_OK)
            _exit(3);
        if (n < 0 && i == 200 && write(fd, "g", 1) != 1)
            _exit(4);
    }
    if (lf_writer_flush(w) != LF_OK)
        _exit(5);
    if (tear) {
        /* What the kernel leaves of a write cut short by the death of the
           process: the first bytes of a frame. */
        char **segs;
        size_t ns = tu_segments(dir, &segs);
        uint8_t f[200];
        memset(f + SPOOL_FRAME_HDR, 'x', sizeof f - SPOOL_FRAME_HDR);
        spool_frame_header_encode(f, f + SPOOL_FRAME_HDR,
                                  sizeof f - SPOOL_FRAME_HDR);
        append_bytes(segs[ns - 1], f, 57);
        tu_free_list(segs, ns);
    }
    if (write(fd, "r", 1) != 1)
        _exit(6);
    for (;;)
        pause();
}

START_TEST(test_torn_tail_after_kill)
{
    char *dir = tu_mkdtemp("rd-kill");
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child_writer(dir, 20, 1, p[1], LF_DURABILITY_INTERVAL);
    }
    close(p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);

    char **segs;
    ck_assert_uint_eq(tu_segments(dir, &segs), 1);
    spool_reader *r = open_reader(segs[0]);
    spool_read_event ev;
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_FRAME);
    uint64_t tail = spool_reader_tell(r);
    ck_assert_int_eq(spool_reader_is_live(r), 1);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, tail, 57);

    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(spool_reader_is_live(r), 0);
    expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_DAMAGE, tail, 57);
    expect(spool_reader_finish(r, &ev), &ev, SPOOL_READ_END, tail + 57, 0);
    spool_reader_close(r);
    tu_free_list(segs, 1);
    close(p[0]);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_kill_mid_stream)
{
    /* A writer killed while appending flat out: whatever it left, every
       frame read is whole and in order, and damage can only be a tail. */
    char *dir = tu_mkdtemp("rd-kill2");
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child_writer(dir, -1, 0, p[1], LF_DURABILITY_NONE);
    }
    close(p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);

    tu_spool sp;
    tu_read_spool(dir, &sp);
    ck_assert_uint_ge(sp.n, 150); /* at least the buffers written by then */
    for (size_t i = 0; i < sp.n; i++) {
        Logferry__V1__InvocationRecord *rec = tu_decode(&sp.frames[i]);
        ck_assert_int_eq(atol(rec->request_id), (long)i);
        logferry__v1__invocation_record__free_unpacked(rec, NULL);
    }
    ck_assert_uint_le(sp.damaged_regions, 1);
    tu_spool_free(&sp);
    close(p[0]);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_growth_while_tailing)
{
    char *dir = tu_mkdtemp("rd-grow");
    lf_writer *w;
    ck_assert_int_eq(lf_writer_open(dir, NULL, &w, NULL, 0), LF_OK);
    char **segs;
    ck_assert_uint_eq(tu_segments(dir, &segs), 1);
    spool_reader *r = open_reader(segs[0]);
    spool_read_event ev;
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, SPOOL_HEADER_SIZE,
           0);
    ck_assert_int_eq(spool_reader_is_live(r), 1);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            Logferry__V1__InvocationRecord rec;
            tu_sample_record(&rec, "g");
            ck_assert_int_eq(lf_writer_append(w, &rec), LF_OK);
        }
        ck_assert_int_eq(lf_writer_flush(w), LF_OK);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_FRAME);
        ck_assert_int_eq(spool_reader_next(r, &ev), SPOOL_READ_END);
        ck_assert_uint_eq(ev.length, 0);
    }
    ck_assert_int_eq(lf_writer_close(w), LF_OK);
    ck_assert_int_eq(spool_reader_is_live(r), 0);
    ck_assert_int_eq(spool_reader_finish(r, &ev), SPOOL_READ_END);
    ck_assert_uint_eq(ev.length, 0);
    spool_reader_close(r);
    tu_free_list(segs, 1);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_seek)
{
    seg s;
    seg_build(&s, "rd-seek", 10, len_varied);
    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    ck_assert_int_eq(spool_reader_seek(r, s.off[5]), 0);
    expect_frame(r, &s, 5);
    ck_assert_int_eq(spool_reader_seek(r, 10), -1);
    ck_assert_ptr_nonnull(strstr(spool_reader_errmsg(r), s.path));
    ck_assert_int_eq(spool_reader_seek(r, s.off[10] + 1), -1);
    ck_assert_int_eq(spool_reader_seek(r, s.off[10]), 0);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[10], 0);
    /* Not a frame boundary: damage up to the next frame. */
    ck_assert_int_eq(spool_reader_seek(r, s.off[5] + 1), 0);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_DAMAGE, s.off[5] + 1,
           s.off[6] - s.off[5] - 1);
    expect_frame(r, &s, 6);
    /* Backwards, into bytes no longer buffered. */
    ck_assert_int_eq(spool_reader_seek(r, s.off[1]), 0);
    expect_frame(r, &s, 1);
    spool_reader_close(r);
    seg_free(&s);
}
END_TEST

static uint32_t len_big(size_t k)
{
    return k == 1 ? SPOOL_MAX_PAYLOAD : k == 3 ? 3u * 1024 * 1024 : 100;
}

START_TEST(test_big_frames)
{
    seg s;
    seg_build(&s, "rd-big", 5, len_big);
    spool_reader *r = open_reader(s.path);
    spool_read_event ev;
    for (size_t i = 0; i < 5; i++)
        expect_frame(r, &s, i);
    expect(spool_reader_next(r, &ev), &ev, SPOOL_READ_END, s.off[5], 0);
    spool_reader_close(r);
    seg_free(&s);
}
END_TEST

START_TEST(test_bad_headers)
{
    char *dir = tu_mkdtemp("rd-hdr");
    char path[512], err[512];
    spool_reader *r;
    snprintf(path, sizeof path, "%s/x.lfs", dir);

    ck_assert_int_eq(spool_reader_open(path, &r, err, sizeof err), -1);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, strerror(ENOENT)));

    spool_header h = {.version = SPOOL_VERSION,
                      .header_size = SPOOL_HEADER_SIZE};
    uint8_t hb[SPOOL_HEADER_SIZE];
    struct {
        int byte;
        const char *want;
    } cases[] = {
        {0, "bad magic"},
        {8, "unsupported segment version"},
        {30, "checksum"},
        {-1, "shorter than a segment header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spool_header_encode(&h, hb);
        size_t n = sizeof hb;
        if (cases[i].byte >= 0)
            hb[cases[i].byte] ^= 0x40;
        else
            n = 20;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_eq(write(fd, hb, n), (ssize_t)n);
        close(fd);
        ck_assert_int_eq(spool_reader_open(path, &r, err, sizeof err), -1);
        ck_assert_msg(strstr(err, path) && strstr(err, cases[i].want),
                      "case %zu: %s", i, err);
    }
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool_reader");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_read_writer_segment);
    tcase_add_test(tc, test_damage_in_the_middle);
    tcase_add_test(tc, test_damage_across_read_window);
    tcase_add_test(tc, test_truncated_mid_frame);
    tcase_add_test(tc, test_truncated_below_position);
    tcase_add_test(tc, test_live_corrupt_tail_is_not_damage);
    tcase_add_test(tc, test_incomplete_candidate_then_frame);
    tcase_add_test(tc, test_torn_tail_after_kill);
    tcase_add_test(tc, test_kill_mid_stream);
    tcase_add_test(tc, test_growth_while_tailing);
    tcase_add_test(tc, test_seek);
    tcase_add_test(tc, test_big_frames);
    tcase_add_test(tc, test_bad_headers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
