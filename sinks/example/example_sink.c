/*
 * example_sink.c - the smallest complete sink; the tutorial of
 * docs/ARCHITECTURE.md. It appends "<tenant_id> <record_id>" lines to the
 * file named by the key `path` and counts what it wrote.
 *
 * Build: the C files of sinks/<name>/ become build/sinks/lf_sink_<name>.so.
 * Use:   sinks = ( { name = "demo"; type = "example"; path = "/tmp/x"; } );
 *
 * A sink includes only <logferry/sink.h>: everything else (logging,
 * counters, field access, JSON) is lent by the host through lf_host.
 * It is not production grade: a failed write may leave part of a batch
 * behind, and tenant ids are written unescaped (see sinks/file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <logferry/sink.h>

/* 1. Config keys. The agent validates the user's config against this
 *    table, fills in defaults and hands us `values` in the same order, so
 *    an enum of indices makes values[K_PATH].s read well. */
enum { K_PATH, K_COUNT };

static const lf_conf_key example_keys[K_COUNT] = {
    [K_PATH] = {.name = "path",
                .type = LF_CONF_STRING,
                .required = 1,
                .min = 1, /* for strings, bounds are lengths */
                .max = 4096,
                .doc = "File the lines are appended to."},
};

/* 2. The instance: whatever one configured sink needs between calls. */
typedef struct example_sink {
    const lf_host *host; /* lent until destroy() */
    FILE *out;
} example_sink;

/* 3. destroy() frees the instance and must accept NULL, because create()
 *    uses it to clean up after a half-built instance. */
static void example_destroy(void *inst)
{
    example_sink *ex = inst;
    if (!ex)
        return;
    if (ex->out)
        fclose(ex->out);
    free(ex);
}

/* 4. create() reads the config and opens resources. On failure it writes
 *    a reason into err (the agent prefixes the sink name) and returns -1.
 *    The instance is ours; the agent frees it by calling destroy(). */
static int example_create(const lf_conf_value *values, const lf_host *host,
                          void **out, char *err, size_t errlen)
{
    example_sink *ex = calloc(1, sizeof *ex);
    if (!ex) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ex->host = host;
    ex->out = fopen(values[K_PATH].s, "a");
    if (!ex->out) {
        snprintf(err, errlen, "path: cannot open %s: %s", values[K_PATH].s,
                 strerror(errno));
        example_destroy(ex);
        return -1;
    }
    host->log(host, LF_LOG_INFO, "appending to %s", values[K_PATH].s);
    *out = ex;
    return 0;
}

/* 5. deliver() gets a batch of records. Read fields by schema name with
 *    host->field (values stay valid until we return). Answer OK only when
 *    the whole batch is durable (here: flushed and fsync()ed); RETRY makes
 *    the core back off and offer the same batch again, so records are
 *    never lost. */
static lf_deliver_status example_deliver(void *inst, lf_batch *batch)
{
    example_sink *ex = inst;
    const lf_host *h = ex->host;

    for (size_t i = 0; i < batch->count; i++) {
        const char *tenant, *id;
        if (h->field(h, &batch->records[i], "tenant_id", &tenant) ==
                (size_t)-1 ||
            h->field(h, &batch->records[i], "record_id", &id) == (size_t)-1)
            return LF_DELIVER_FAIL; /* cannot happen: both names exist */
        fprintf(ex->out, "%s %s\n", tenant, id);
    }
    if (fflush(ex->out) != 0 || fsync(fileno(ex->out)) != 0) {
        /* Log with context, never record content; the host adds the
           "sink example[name]: " prefix. */
        h->log(h, LF_LOG_ERROR, "write failed: %s", strerror(errno));
        clearerr(ex->out);
        return LF_DELIVER_RETRY;
    }
    /* Counters show up in `logferry status`. */
    h->counter_add(h, "records", batch->count);
    return LF_DELIVER_OK;
}

/* 6. The ops table: {abi_version, struct_size, name} first, so the agent
 *    can refuse a module built for another ABI before touching the rest. */
static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "example",
    .description = "Tutorial sink: writes \"<tenant_id> <record_id>\" lines.",
    .config_keys = example_keys,
    .n_config_keys = K_COUNT,
    .create = example_create,
    .deliver = example_deliver,
    .flush = NULL, /* optional; nothing is buffered after deliver() */
    .destroy = example_destroy,
};

/* 7. Export the one symbol the agent looks for. */
LF_SINK_MODULE(ops)
