/*
 * spool_fill.c - fill a spool with N typical invocation records (~300
 * bytes encoded, short prompt) through liblogferry, for the end-to-end
 * and backlog benchmarks (bench/bench_e2e.py).
 *
 *   spool_fill DIR N [durability: none|interval|every]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <logferry/writer.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spool_fill DIR N [none|interval|every]\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    lf_writer_options o;
    lf_writer_options_init(&o);
    if (argc > 3 && strcmp(argv[3], "none") == 0)
        o.durability = LF_DURABILITY_NONE;
    else if (argc > 3 && strcmp(argv[3], "every") == 0)
        o.durability = LF_DURABILITY_EVERY;
    lf_writer *w;
    char err[256];
    int rc = lf_writer_open(argv[1], &o, &w, err, sizeof err);
    if (rc != LF_OK) {
        fprintf(stderr, "spool_fill: %s: %s\n", lf_strerror(rc), err);
        return 1;
    }
    Logferry__V1__InvocationRecord r = LOGFERRY__V1__INVOCATION_RECORD__INIT;
    char tenant[32], reqid[48];
    r.tenant_id = tenant;
    r.account_id = "123456789012";
    r.app = "checkout-assistant";
    r.region = "us-east-1";
    r.model_id = "anthropic.claude-3-haiku-20240307-v1:0";
    r.operation = "Converse";
    r.output_tokens = 321;
    r.cache_read_tokens = 512;
    r.time_to_first_token_ms = 140;
    r.status = LOGFERRY__V1__STATUS__STATUS_OK;
    r.request_id = reqid;
    r.trace_id = "1-5759e988-bd862e3fe1be46a994272793";
    r.session_id = "sess-7f3a9c";
    r.prompt_text = "Summarise the following meeting notes in three bullet "
                    "points, keeping names and dates.";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        snprintf(tenant, sizeof tenant, "tenant-%ld", i % 50);
        snprintf(reqid, sizeof reqid, "req-%016lx", (unsigned long)i);
        r.input_tokens = 1000 + (uint64_t)(i % 977);
        r.latency_ms = 500 + (uint32_t)(i % 1500);
        if ((rc = lf_writer_append(w, &r)) != LF_OK) {
            fprintf(stderr, "spool_fill: append %ld: %s (%s)\n", i,
                    lf_strerror(rc), lf_writer_errmsg(w));
            lf_writer_close(w);
            return 1;
        }
    }
    rc = lf_writer_close(w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s =
        (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("spool_fill: %ld records in %.3f s (%.0f records/s)\n", n, s, n / s);
    return rc == LF_OK ? 0 : 1;
}
