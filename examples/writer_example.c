/*
 * writer_example.c - how an application logs model invocations with
 * liblogferry: open a writer on a spool directory, append records, close.
 * The logferry agent tails the spool and ships the records.
 *
 * Build against an installed logferry (pkg-config file logferry.pc):
 *
 *     cc -o writer_example writer_example.c \
 *         $(pkg-config --cflags --libs logferry)
 *
 * Run:  writer_example SPOOL_DIR [N]     (N records, default 10)
 */
#include <stdio.h>
#include <stdlib.h>

#include <logferry/writer.h>

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SPOOL_DIR [N]\n", argv[0]);
        return 2;
    }
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 10;
    if (n < 0) {
        fprintf(stderr, "N must be >= 0\n");
        return 2;
    }

    lf_writer_options opt;
    lf_writer_options_init(&opt);
    opt.durability = LF_DURABILITY_INTERVAL; /* the default, made visible */

    lf_writer *w;
    char err[256];
    int rc = lf_writer_open(argv[1], &opt, &w, err, sizeof err);
    if (rc != LF_OK) {
        fprintf(stderr, "open %s: %s (%s)\n", argv[1], lf_strerror(rc), err);
        return 1;
    }

    long ok = 0;
    for (long i = 0; i < n; i++) {
        Logferry__V1__InvocationRecord rec =
            LOGFERRY__V1__INVOCATION_RECORD__INIT;
        char request_id[32];
        snprintf(request_id, sizeof request_id, "req-%06ld", i);
        /* record_id and event_time_ns are left unset: the writer stamps a
           random id and the append time. */
        rec.tenant_id = "tenant-a";
        rec.account_id = "123456789012";
        rec.app = "writer_example";
        rec.region = "us-east-1";
        rec.model_id = "anthropic.claude-3-haiku-20240307-v1:0";
        rec.operation = "Converse";
        rec.input_tokens = 42 + (uint64_t)i;
        rec.output_tokens = 128;
        rec.latency_ms = 350;
        rec.status = LOGFERRY__V1__STATUS__STATUS_OK;
        rec.request_id = request_id;
        rec.prompt_text = "Summarise the attached meeting notes.";
        rc = lf_writer_append(w, &rec);
        if (rc != LF_OK) {
            fprintf(stderr, "append %ld: %s (%s)\n", i, lf_strerror(rc),
                    lf_writer_errmsg(w));
            break;
        }
        ok++;
    }

    lf_writer_stats st;
    lf_writer_get_stats(w, &st);
    rc = lf_writer_close(w); /* flushes and fsyncs */
    if (rc != LF_OK)
        fprintf(stderr, "close: %s\n", lf_strerror(rc));
    printf("appended %ld of %ld records (%llu bytes) to %s in %llu "
           "segment(s)\n",
           ok, n, (unsigned long long)st.bytes, argv[1],
           (unsigned long long)st.segments);
    return (ok == n && rc == LF_OK) ? 0 : 1;
}
