/*
 * bench_scrub.c - cost of per-route retention (agent/scrub.h) on a spool
 * filled by spool_fill: the first pass judges every record (decode +
 * rule), the pass at the due time purges the half the rule matches in
 * place, a last pass finds nothing new.
 *
 *   build/bench/spool_fill /tmp/scrub-spool 1000000
 *   build/bench/bench_scrub /tmp/scrub-spool
 *
 * The rule stands in for a route condition: tenant_id matched with a glob
 * (half of spool_fill's 50 tenants), limit 1 h. The spool is modified.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "scrub.h"
#include "tail.h"

static int64_t limit(void *ctx, const Logferry__V1__InvocationRecord *r)
{
    (void)ctx;
    return fnmatch("tenant-*[02468]", r->tenant_id, 0) == 0 ? 3600000 : 0;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(scrubber *s, const char *dir, int64_t now, const char *what)
{
    size_t n;
    char err[512];
    char **names = spool_list_segments(dir, &n, err, sizeof err);
    if (!names) {
        fprintf(stderr, "bench_scrub: %s\n", err);
        exit(1);
    }
    double c0 = cpu_s(), w0 = wall_s();
    scrub_stats st;
    scrubber_pass(s, names, n, now, &st);
    double c = cpu_s() - c0, w = wall_s() - w0;
    printf("%-28s segments %zu, records judged %llu, purged %llu: "
           "%.3f s wall, %.3f s CPU (%.3f us CPU per judged record)\n",
           what, n, (unsigned long long)st.frames_read,
           (unsigned long long)st.purged, w, c,
           st.frames_read ? c * 1e6 / (double)st.frames_read : 0.0);
    spool_watch_free_list(names, n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_scrub SPOOL_DIR\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    scrubber *s = scrubber_new(argv[1], limit, NULL, NULL);
    if (!s)
        return 1;
    run(s, argv[1], now, "first pass (nothing due)");
    run(s, argv[1], now + 3600000000000LL + 1000000000LL,
        "due pass (purge half)");
    run(s, argv[1], now + 7200000000000LL, "later pass (nothing new)");
    scrubber_free(s);
    return 0;
}
