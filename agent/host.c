/*
 * host.c - lf_host services for sink instances. See host.h.
 */
#include "host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "log.h"
#include "record_json.h"

static sink_host *self(const lf_host *h)
{
    return (sink_host *)h->priv;
}

static void host_log(const lf_host *h, lf_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, self(h)->prefix, fmt, ap);
    va_end(ap);
}

void sink_host_count(sink_host *h, const char *name, uint64_t delta)
{
    pthread_mutex_lock(&h->lock);
    size_t i;
    for (i = 0; i < h->n_counters; i++)
        if (strcmp(h->counters[i].name, name) == 0)
            break;
    if (i == h->n_counters) {
        if (i == HOST_MAX_COUNTERS) {
            /* Bounded: a sink inventing names per record cannot grow us. */
            pthread_mutex_unlock(&h->lock);
            return;
        }
        snprintf(h->counters[i].name, HOST_COUNTER_NAME, "%s", name);
        h->n_counters++;
    }
    h->counters[i].value += delta;
    pthread_mutex_unlock(&h->lock);
}

static void host_counter_add(const lf_host *h, const char *name, uint64_t delta)
{
    sink_host_count(self(h), name, delta);
}

static size_t host_to_json(const lf_host *h, const lf_record *rec, char *dst,
                           size_t cap)
{
    (void)h;
    return rjson_render(rec->internal, dst, cap);
}

static size_t host_field(const lf_host *hp, const lf_record *rec,
                         const char *name, const char **out)
{
    sink_host *h = self(hp);
    /* A sink may call field() from its own worker threads. */
    pthread_mutex_lock(&h->lock);
    char *scratch = arena_alloc(&h->scratch, RJSON_FIELD_SCRATCH);
    pthread_mutex_unlock(&h->lock);
    if (!scratch)
        return (size_t)-1;
    return rjson_field(rec->internal, name, scratch, RJSON_FIELD_SCRATCH, out);
}

int64_t host_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t host_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t host_now(const lf_host *h)
{
    (void)h;
    return host_now_ns();
}

static int64_t host_mono(const lf_host *h)
{
    (void)h;
    return host_mono_ns();
}

int sink_host_init(sink_host *h, const char *type, const char *name)
{
    memset(h, 0, sizeof *h);
    h->pub.abi_version = LF_SINK_ABI_VERSION;
    h->pub.struct_size = sizeof(lf_host);
    h->pub.log = host_log;
    h->pub.counter_add = host_counter_add;
    h->pub.to_json = host_to_json;
    h->pub.field = host_field;
    h->pub.now_ns = host_now;
    h->pub.mono_ns = host_mono;
    h->pub.priv = h;
    snprintf(h->prefix, sizeof h->prefix, "sink %s[%s]", type, name);
    /* field() answers live until the next batch. */
    h->scratch = arena_make(64u * 1024u);
    return pthread_mutex_init(&h->lock, NULL) == 0 ? 0 : -1;
}

void sink_host_reset_batch(sink_host *h)
{
    arena_reset(&h->scratch);
}

int sink_host_set_instance_dir(sink_host *h, const char *state_dir,
                               const char *name, char *err, size_t errlen)
{
    size_t n = strlen(state_dir) + strlen(name) + 16;
    char *p = malloc(n);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(p, n, "%s/sinks/%s", state_dir, name);
    if (agent_mkdirs(p) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    free(h->instance_dir);
    h->instance_dir = p;
    h->pub.instance_dir = p;
    return 0;
}

void sink_host_destroy(sink_host *h)
{
    if (!h)
        return;
    free(h->instance_dir);
    h->instance_dir = NULL;
    arena_free(&h->scratch);
    pthread_mutex_destroy(&h->lock);
}

void sink_host_counters_json(sink_host *h, FILE *out)
{
    pthread_mutex_lock(&h->lock);
    fputc('{', out);
    for (size_t i = 0; i < h->n_counters; i++)
        fprintf(out, "%s\"%s\":%llu", i ? "," : "", h->counters[i].name,
                (unsigned long long)h->counters[i].value);
    fputc('}', out);
    pthread_mutex_unlock(&h->lock);
}
