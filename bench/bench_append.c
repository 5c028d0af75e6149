/*
 * bench_append.c - latency of lf_writer_append() per durability mode.
 *
 * Appends a typical invocation record (~300 bytes encoded, short prompt)
 * N times per mode into a fresh spool and prints the per-append latency
 * percentiles and the throughput. Each append is timed on its own with
 * CLOCK_MONOTONIC (about 20 ns of the figures is the clock itself).
 *
 *   bench_append [-n records] [-e records_in_every_mode] [-t threads]
 *                [-d scratch_dir]
 *
 * EVERY mode fdatasyncs per record, so it gets its own, smaller count.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <logferry/writer.h>

typedef struct bench_thread {
    lf_writer *w;
    long n;
    uint64_t *lat; /* n latencies in ns */
    int failures;
} bench_thread;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sample_record(Logferry__V1__InvocationRecord *rec, char *rid)
{
    logferry__v1__invocation_record__init(rec);
    rec->tenant_id = "tenant-a";
    rec->account_id = "123456789012";
    rec->app = "checkout-assistant";
    rec->region = "us-east-1";
    rec->model_id = "anthropic.claude-3-haiku-20240307-v1:0";
    rec->operation = "Converse";
    rec->input_tokens = 1234;
    rec->output_tokens = 321;
    rec->cache_read_tokens = 512;
    rec->latency_ms = 812;
    rec->time_to_first_token_ms = 140;
    rec->status = LOGFERRY__V1__STATUS__STATUS_OK;
    rec->request_id = rid;
    rec->trace_id = "1-5759e988-bd862e3fe1be46a994272793";
    rec->session_id = "sess-7f3a9c";
    rec->prompt_text = "Summarise the following meeting notes in three "
                       "bullet points, keeping names and dates.";
}

static void *bench_run(void *p)
{
    bench_thread *b = p;
    Logferry__V1__InvocationRecord rec;
    char rid[40] = "0b5f8a2c-4e1d-4c39-9d7a-000000000000";
    sample_record(&rec, rid);
    for (long i = 0; i < b->n; i++) {
        snprintf(rid + 24, sizeof rid - 24, "%012ld", i % 1000000000000L);
        uint64_t t0 = mono_ns();
        int rc = lf_writer_append(b->w, &rec);
        b->lat[i] = mono_ns() - t0;
        if (rc != LF_OK)
            b->failures++;
    }
    return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int bench_mode(const char *base, const char *name, lf_durability dur,
                      long n, int threads)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    lf_writer_options o;
    lf_writer_options_init(&o);
    o.durability = dur;
    lf_writer *w;
    char err[256];
    int rc = lf_writer_open(dir, &o, &w, err, sizeof err);
    if (rc != LF_OK) {
        fprintf(stderr, "open %s: %s (%s)\n", dir, lf_strerror(rc), err);
        return -1;
    }
    /* Warm up: page in the buffer, seed the id generator, size caches. */
    bench_thread warm = {.w = w, .n = 1000};
    warm.lat = malloc((size_t)warm.n * sizeof *warm.lat);
    bench_run(&warm);
    free(warm.lat);

    bench_thread *bt = calloc((size_t)threads, sizeof *bt);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    long per = n / threads;
    uint64_t t0 = mono_ns();
    for (int t = 0; t < threads; t++) {
        bt[t].w = w;
        bt[t].n = per;
        bt[t].lat = malloc((size_t)per * sizeof *bt[t].lat);
        pthread_create(&th[t], NULL, bench_run, &bt[t]);
    }
    int failures = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        failures += bt[t].failures;
    }
    uint64_t elapsed = mono_ns() - t0;
    lf_writer_stats st;
    lf_writer_get_stats(w, &st);
    uint64_t c0 = mono_ns();
    rc = lf_writer_close(w);
    uint64_t close_ns = mono_ns() - c0;

    long total = per * threads;
    uint64_t *all = malloc((size_t)total * sizeof *all);
    for (int t = 0; t < threads; t++) {
        memcpy(all + (long)t * per, bt[t].lat, (size_t)per * sizeof *all);
        free(bt[t].lat);
    }
    qsort(all, (size_t)total, sizeof *all, u64_cmp);
#define PCT(p) (all[(size_t)((double)(total - 1) * (p))] / 1000.0)
    printf("%-8s n=%-8ld p50=%8.2f us  p99=%8.2f us  p999=%8.2f us  "
           "max=%9.1f us  %9.0f rec/s  %6.1f MB/s  fsyncs=%llu  "
           "segments=%llu  close=%.1f ms%s\n",
           name, total, PCT(0.50), PCT(0.99), PCT(0.999),
           all[total - 1] / 1000.0, (double)total * 1e9 / (double)elapsed,
           (double)st.bytes / 1e6 * 1e9 / (double)elapsed,
           (unsigned long long)st.fsyncs, (unsigned long long)st.segments,
           close_ns / 1e6, (failures || rc) ? "  FAILURES" : "");
#undef PCT
    free(all);
    free(bt);
    free(th);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return failures || rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    long n = 1000000, n_every = 2000;
    int threads = 1, opt;
    const char *dir = NULL;
    while ((opt = getopt(argc, argv, "n:e:t:d:")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'e':
            n_every = atol(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-n records] [-e every_records] "
                    "[-t threads] [-d scratch_dir]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 1 || n_every < 1 || threads < 1 || threads > 256) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    char base[4096];
    snprintf(base, sizeof base, "%s/lf-bench-XXXXXX", dir ? dir : "/tmp");
    if (!mkdtemp(base)) {
        fprintf(stderr, "mkdtemp %s: %s\n", base, strerror(errno));
        return 1;
    }
    Logferry__V1__InvocationRecord rec;
    char rid[40] = "0b5f8a2c-4e1d-4c39-9d7a-000000000000";
    sample_record(&rec, rid);
    printf("record: %zu bytes encoded (+ 18 id + 10 time stamped, + 12 frame "
           "header); %d thread(s); spool %s\n",
           logferry__v1__invocation_record__get_packed_size(&rec), threads,
           base);
    int rc = 0;
    rc |= bench_mode(base, "none", LF_DURABILITY_NONE, n, threads);
    rc |= bench_mode(base, "interval", LF_DURABILITY_INTERVAL, n, threads);
    rc |= bench_mode(base, "every", LF_DURABILITY_EVERY, n_every, threads);
    rmdir(base);
    return rc ? 1 : 0;
}
