/*
 * bench_decode.c - protobuf-c's unpack against rdec_unpack()
 * (agent/record_decode.h), per record, as the delivery loop decodes.
 *
 * Encodes a pool of typical invocation records (the shape bench_append
 * writes, with the id and time the writer stamps: ~340 bytes; request ids
 * differ) and decodes them round after round on one thread into a
 * per-batch arena (agent/arena.c, as in delivery.c: (1 MiB chunks, reset every
 * 4096 records). Only the decode call is timed, with the process CPU clock (the
 * VM is shared); the payload copy delivery.c makes first is the same for
 * both decoders and is left out. Each row prints the best and the median
 * round.
 *
 *   bench_decode [-n records_per_round] [-r rounds] [-a attributes]
 *
 * -a adds that many map entries (short key and value) to every record.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "record_decode.h"

typedef Logferry__V1__InvocationRecord rec_t;
typedef Logferry__V1__InvocationRecord__AttributesEntry attr_t;

#define POOL 1024
#define BATCH 4096
#define ARENA_CHUNK (1u * 1024u * 1024u)
#define MAX_ROUNDS 64

/* ---- the records ------------------------------------------------------ */

typedef struct encoded {
    uint8_t *b;
    size_t n;
} encoded;

static void encode_pool(encoded *pool, unsigned n_attr)
{
    static const char *keys[] = {"feature", "tier", "region_hint", "ab", "k"};
    static const char *vals[] = {"summarise", "gold", "eu", "b", "v"};
    attr_t attr[8], *attrs[8];
    for (unsigned i = 0; i < n_attr && i < 8; i++) {
        logferry__v1__invocation_record__attributes_entry__init(&attr[i]);
        attr[i].key = (char *)keys[i % 5];
        attr[i].value = (char *)vals[i % 5];
        attrs[i] = &attr[i];
    }
    for (unsigned i = 0; i < POOL; i++) {
        rec_t rec;
        uint8_t rid[16];
        char req[40];
        logferry__v1__invocation_record__init(&rec);
        for (unsigned k = 0; k < sizeof rid; k++)
            rid[k] = (uint8_t)(i * 31 + k * 7);
        snprintf(req, sizeof req, "0b5f8a2c-4e1d-4c39-9d7a-%012u", i);
        rec.record_id.data = rid;
        rec.record_id.len = sizeof rid;
        rec.event_time_ns = 1717000000000000000ll + (int64_t)i * 1000003;
        rec.tenant_id = "tenant-a";
        rec.account_id = "123456789012";
        rec.app = "checkout-assistant";
        rec.region = "us-east-1";
        rec.model_id = "anthropic.claude-3-haiku-20240307-v1:0";
        rec.operation = "Converse";
        rec.input_tokens = 1234;
        rec.output_tokens = 321;
        rec.cache_read_tokens = 512;
        rec.latency_ms = 812;
        rec.time_to_first_token_ms = 140;
        rec.status = LOGFERRY__V1__STATUS__STATUS_OK;
        rec.request_id = req;
        rec.trace_id = "1-5759e988-bd862e3fe1be46a994272793";
        rec.session_id = "sess-7f3a9c";
        rec.prompt_text = "Summarise the following meeting notes in three "
                          "bullet points, keeping names and dates.";
        rec.n_attributes = n_attr < 8 ? n_attr : 8;
        rec.attributes = rec.n_attributes ? attrs : NULL;
        pool[i].n = logferry__v1__invocation_record__get_packed_size(&rec);
        pool[i].b = malloc(pool[i].n);
        if (!pool[i].b) {
            perror("malloc");
            exit(1);
        }
        logferry__v1__invocation_record__pack(&rec, pool[i].b);
    }
}

/* ---- timing ------------------------------------------------------------ */

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum { DEC_PROTOBUF_C, DEC_RDEC };

/* Decode n records; returns CPU ns. sink keeps the work observable. */
static double run(int which, const encoded *pool, long n, arena *a,
                  ProtobufCAllocator *alloc, uint64_t *sink)
{
    double t0 = cpu_ns();
    for (long i = 0; i < n; i++) {
        if (i % BATCH == 0)
            arena_reset(a);
        const encoded *e = &pool[i % POOL];
        const rec_t *r;
        if (which == DEC_PROTOBUF_C) {
            r = logferry__v1__invocation_record__unpack(alloc, e->n, e->b);
        } else {
            rec_t *m = arena_alloc(a, sizeof *m);
            if (m && rdec_unpack(e->b, e->n, alloc, m) != RDEC_OK)
                m = NULL;
            r = m;
        }
        if (!r) {
            fprintf(stderr, "decode failed\n");
            exit(1);
        }
        *sink += r->latency_ms + (uint8_t)r->request_id[30] + r->n_attributes;
    }
    return cpu_ns() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The two decoders must agree on the pool before they are timed. */
static void check_equal(const encoded *pool, ProtobufCAllocator *alloc)
{
    for (unsigned i = 0; i < POOL; i++) {
        rec_t *a = logferry__v1__invocation_record__unpack(alloc, pool[i].n,
                                                           pool[i].b);
        rec_t b;
        if (!a || rdec_unpack(pool[i].b, pool[i].n, alloc, &b) != RDEC_OK ||
            strcmp(a->request_id, b.request_id) != 0 ||
            strcmp(a->prompt_text, b.prompt_text) != 0 ||
            a->event_time_ns != b.event_time_ns ||
            a->n_attributes != b.n_attributes ||
            logferry__v1__invocation_record__get_packed_size(a) != pool[i].n ||
            logferry__v1__invocation_record__get_packed_size(&b) != pool[i].n) {
            fprintf(stderr, "decoders disagree on record %u\n", i);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int rounds = 7, opt;
    unsigned n_attr = 0;
    while ((opt = getopt(argc, argv, "n:r:a:")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'a':
            n_attr = (unsigned)atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-n records_per_round] [-r rounds] "
                    "[-a attributes]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 1 || rounds < 1 || rounds > MAX_ROUNDS || n_attr > 8) {
        fprintf(stderr, "need n >= 1, 1 <= rounds <= %d, attributes <= 8\n",
                MAX_ROUNDS);
        return 2;
    }

    static encoded pool[POOL];
    encode_pool(pool, n_attr);
    arena a = arena_make(ARENA_CHUNK);
    ProtobufCAllocator alloc = arena_pb_allocator(&a);
    check_equal(pool, &alloc);
    arena_reset(&a);

    printf("record: %zu bytes encoded, %u attributes; %ld records x %d "
           "rounds\n",
           pool[0].n, n_attr, n, rounds);
    printf("%-26s %12s %12s %14s\n", "decoder", "best ns/rec", "median",
           "records/CPU-s");
    static const char *names[] = {"protobuf-c unpack", "rdec_unpack"};
    double best[2];
    uint64_t sink = 0;
    for (int which = DEC_PROTOBUF_C; which <= DEC_RDEC; which++) {
        double t[MAX_ROUNDS];
        run(which, pool, n / 10 + 1, &a, &alloc, &sink); /* warm up */
        for (int r = 0; r < rounds; r++)
            t[r] = run(which, pool, n, &a, &alloc, &sink) / (double)n;
        qsort(t, (size_t)rounds, sizeof t[0], cmp_double);
        best[which] = t[0];
        printf("%-26s %12.1f %12.1f %14.0f\n", names[which], t[0],
               t[rounds / 2], 1e9 / t[rounds / 2]);
    }
    printf("speed-up (best): %.2fx   [checksum %llu]\n",
           best[DEC_PROTOBUF_C] / best[DEC_RDEC], (unsigned long long)sink);

    arena_free(&a);
    for (unsigned i = 0; i < POOL; i++)
        free(pool[i].b);
    return 0;
}
