/*
 * testsink.c - a sink for end-to-end tests of the core's policies. It
 * appends accepted records ("<record_id> <tenant_id>\n") to `path` and
 * misbehaves on purpose:
 *   fail_tenant     records of this tenant are refused for good (FAIL)
 *   retry_tenant    records of this tenant are refused once (RETRY), and
 *                   accepted when offered again
 *   retry_calls     every Nth deliver() call answers RETRY for the batch
 * It lets tests check dead letters, that partial answers re-send only the
 * records not accepted, and backoff. Not installed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <logferry/sink.h>

enum {
    K_PATH,
    K_FAIL_TENANT,
    K_RETRY_TENANT,
    K_RETRY_CALLS,
    K_BLOCK_TENANT,
    K_COUNT
};

static const lf_conf_key keys[K_COUNT] = {
    [K_PATH] = {"path", LF_CONF_STRING, 1, NULL, 1, 4096, NULL, "Output."},
    [K_FAIL_TENANT] = {"fail_tenant", LF_CONF_STRING, 0, NULL, 0, 64, NULL,
                       "Refuse this tenant's records for good."},
    [K_RETRY_TENANT] = {"retry_tenant", LF_CONF_STRING, 0, NULL, 0, 64, NULL,
                        "Refuse this tenant's records once."},
    [K_RETRY_CALLS] = {"retry_calls", LF_CONF_INT, 0, "0", 0, 1000, NULL,
                       "Answer RETRY to every Nth call (0: never)."},
    [K_BLOCK_TENANT] = {"block_tenant", LF_CONF_STRING, 0, NULL, 0, 64, NULL,
                        "Refuse this tenant's records (RETRY) until the "
                        "file <path>.unblock exists."},
};

typedef struct ts {
    const lf_host *h;
    int fd;
    const char *fail, *retry, *block;
    char unblock[4200];
    long retry_calls, calls;
    char **seen; /* record ids refused once */
    size_t n_seen;
} ts;

static int create(const lf_conf_value *v, const lf_host *h, void **out,
                  char *err, size_t errlen)
{
    ts *t = calloc(1, sizeof *t);
    if (!t)
        return snprintf(err, errlen, "oom"), -1;
    t->h = h;
    t->fail = v[K_FAIL_TENANT].s;
    t->retry = v[K_RETRY_TENANT].s;
    t->retry_calls = (long)v[K_RETRY_CALLS].i;
    t->block = v[K_BLOCK_TENANT].s;
    snprintf(t->unblock, sizeof t->unblock, "%s.unblock", v[K_PATH].s);
    t->fd = open(v[K_PATH].s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (t->fd < 0) {
        snprintf(err, errlen, "cannot open %s", v[K_PATH].s);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

static int seen_before(ts *t, const char *id)
{
    for (size_t i = 0; i < t->n_seen; i++)
        if (strcmp(t->seen[i], id) == 0)
            return 1;
    char **n = realloc(t->seen, (t->n_seen + 1) * sizeof *n);
    if (!n)
        return 1;
    t->seen = n;
    t->seen[t->n_seen++] = strdup(id);
    return 0;
}

static lf_deliver_status deliver(void *inst, lf_batch *b)
{
    ts *t = inst;
    if (t->retry_calls && ++t->calls % t->retry_calls == 0)
        return LF_DELIVER_RETRY;
    int partial = 0;
    for (size_t i = 0; i < b->count; i++) {
        const char *tenant = "", *id = "";
        t->h->field(t->h, &b->records[i], "tenant_id", &tenant);
        t->h->field(t->h, &b->records[i], "record_id", &id);
        if (t->block && strcmp(tenant, t->block) == 0 &&
            access(t->unblock, F_OK) != 0) {
            b->verdict[i] = LF_REC_RETRY;
            partial = 1;
        } else if (t->fail && strcmp(tenant, t->fail) == 0) {
            b->verdict[i] = LF_REC_FAIL;
            partial = 1;
        } else if (t->retry && strcmp(tenant, t->retry) == 0 &&
                   !seen_before(t, id)) {
            b->verdict[i] = LF_REC_RETRY;
            partial = 1;
        } else {
            char line[128];
            int n = snprintf(line, sizeof line, "%s %s\n", id, tenant);
            if (write(t->fd, line, (size_t)n) != n)
                return LF_DELIVER_RETRY; /* test module: keep it simple */
        }
    }
    fdatasync(t->fd);
    b->fail_reason = "tenant refused by testsink";
    b->retry_after_ms = 10;
    return partial ? LF_DELIVER_PARTIAL : LF_DELIVER_OK;
}

static void destroy(void *inst)
{
    ts *t = inst;
    if (!t)
        return;
    for (size_t i = 0; i < t->n_seen; i++)
        free(t->seen[i]);
    free(t->seen);
    close(t->fd);
    free(t);
}

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "testsink",
    .description = "Test module: refuses records on purpose.",
    .config_keys = keys,
    .n_config_keys = K_COUNT,
    .create = create,
    .deliver = deliver,
    .destroy = destroy,
};
LF_SINK_MODULE(ops)
