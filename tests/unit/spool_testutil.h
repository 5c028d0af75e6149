/*
 * spool_testutil.h - helpers shared by the spool unit tests
 * (test_spool_writer.c, test_spool_reader.c): scratch directories, segment
 * listing and reading a whole spool back through spool_reader.
 * Header-only (static functions) so each test stays one Check program.
 */
#ifndef LOGFERRY_SPOOL_TESTUTIL_H
#define LOGFERRY_SPOOL_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <logferry/writer.h>

#include "spool_codec.h"
#include "spool_reader.h"

/* A fresh directory under $TMPDIR or /tmp; caller frees the string. */
static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = NULL;
    ck_assert(asprintf(&p, "%s/lf-%s-XXXXXX", base ? base : "/tmp", tag) > 0);
    ck_assert_ptr_nonnull(mkdtemp(p));
    return p;
}

static inline int tu_rm_cb(const char *path, const struct stat *sb, int flag,
                           struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void tu_rm_rf(const char *dir)
{
    nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int tu_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Segment paths in `dir`, sorted (= creation order). Caller frees each
   string and the array. */
static inline size_t tu_segments(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    char **v = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (spool_segment_name_parse(de->d_name, NULL, NULL, NULL) != 0)
            continue;
        v = realloc(v, (n + 1) * sizeof *v);
        ck_assert(asprintf(&v[n], "%s/%s", dir, de->d_name) > 0);
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof *v, tu_strcmp);
    *out = v;
    return n;
}

static inline void tu_free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

typedef struct tu_frame {
    uint8_t *data; /* malloc'ed copy of the payload */
    size_t len;
    uint64_t offset;
    size_t segment; /* index in tu_segments() order */
} tu_frame;

typedef struct tu_spool {
    tu_frame *frames;
    size_t n;
    size_t segments;
    uint64_t damaged_regions;
    uint64_t damaged_bytes;
} tu_spool;

/* Read every frame of every segment of `dir`, as the agent would once the
   writers are gone (next(), then finish()). Caller frees with
   tu_spool_free(). */
static inline void tu_read_spool(const char *dir, tu_spool *s)
{
    memset(s, 0, sizeof *s);
    char **segs;
    s->segments = tu_segments(dir, &segs);
    size_t cap = 0;
    for (size_t i = 0; i < s->segments; i++) {
        spool_reader *r;
        char err[256];
        ck_assert_msg(spool_reader_open(segs[i], &r, err, sizeof err) == 0,
                      "%s", err);
        spool_read_event ev;
        spool_read_result rc;
        int finishing = 0;
        for (;;) {
            rc = finishing ? spool_reader_finish(r, &ev)
                           : spool_reader_next(r, &ev);
            ck_assert_msg(rc != SPOOL_READ_ERROR, "%s", spool_reader_errmsg(r));
            if (rc == SPOOL_READ_END) {
                if (finishing)
                    break;
                finishing = 1;
                continue;
            }
            if (rc == SPOOL_READ_DAMAGE) {
                s->damaged_regions++;
                s->damaged_bytes += ev.length;
                continue;
            }
            if (s->n == cap) {
                cap = cap ? cap * 2 : 256;
                s->frames = realloc(s->frames, cap * sizeof *s->frames);
            }
            tu_frame *f = &s->frames[s->n++];
            f->len = ev.length;
            f->offset = ev.offset;
            f->segment = i;
            f->data = malloc(ev.length ? ev.length : 1);
            memcpy(f->data, ev.payload, ev.length);
        }
        spool_reader_close(r);
    }
    tu_free_list(segs, s->segments);
}

static inline void tu_spool_free(tu_spool *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->frames[i].data);
    free(s->frames);
    memset(s, 0, sizeof *s);
}

/* A typical ~300-byte invocation record; strings are static. */
static inline void tu_sample_record(Logferry__V1__InvocationRecord *rec,
                                    const char *request_id)
{
    logferry__v1__invocation_record__init(rec);
    rec->tenant_id = "tenant-a";
    rec->account_id = "123456789012";
    rec->app = "unit-test";
    rec->region = "us-east-1";
    rec->model_id = "anthropic.claude-3-haiku-20240307-v1:0";
    rec->operation = "Converse";
    rec->input_tokens = 1234;
    rec->output_tokens = 321;
    rec->latency_ms = 812;
    rec->status = LOGFERRY__V1__STATUS__STATUS_OK;
    rec->request_id = (char *)request_id;
    rec->trace_id = "1-5759e988-bd862e3fe1be46a994272793";
    rec->prompt_text = "Summarise the following meeting notes in three "
                       "bullet points, keeping names and dates.";
}

/* Decode a frame payload as an InvocationRecord (caller frees with
   logferry__v1__invocation_record__free_unpacked(x, NULL)). */
static inline Logferry__V1__InvocationRecord *tu_decode(const tu_frame *f)
{
    Logferry__V1__InvocationRecord *r =
        logferry__v1__invocation_record__unpack(NULL, f->len, f->data);
    ck_assert_ptr_nonnull(r);
    return r;
}

#endif
