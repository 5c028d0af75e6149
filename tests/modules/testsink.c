/*
 * testsink.c - a sink for end-to-end tests of the core's policies. It
 * appends accepted records ("<record_id> <tenant_id>\n") to `path` and
 * misbehaves on purpose:
 *   fail_tenant     records of this tenant are refused for good (FAIL)
 *   retry_tenant    records of this tenant are refused once (RETRY), and
 *                   accepted when offered again
 *   retry_calls     every Nth deliver() call answers RETRY for the batch
 *   hold            hold records (LF_REC_HOLD) and settle them once this
 *                   many are held, at poll() after hold_poll, and at
 *                   flush(); the tenant rules above then apply at settle
 * It lets tests check dead letters, that partial answers re-send only the
 * records not accepted, backoff, and the core's side of holding. Not
 * installed.
 */
#include <fcntl.h>
#include <stdint.h>
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
    K_HOLD,
    K_HOLD_POLL,
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
    [K_HOLD] = {"hold", LF_CONF_INT, 0, "0", 0, 10000000, NULL,
                "Hold records until this many are held (0: never hold)."},
    [K_HOLD_POLL] = {"hold_poll", LF_CONF_DURATION, 0, "200ms", 1, 3600000,
                     NULL,
                     "Settle everything held at the first poll() "
                     "this long after the first record was held."},
};

/* A record kept back, with what settling it needs. */
typedef struct held {
    char *segment;
    uint64_t offset;
    uint8_t *payload;
    size_t len;
    char line[128]; /* what accepting it writes */
    char tenant[64];
    char id[64];
} held;

typedef struct ts {
    const lf_host *h;
    int fd;
    const char *fail, *retry, *block;
    char unblock[4200];
    long retry_calls, calls;
    char **seen; /* record ids refused once */
    size_t n_seen;
    long hold;
    int64_t hold_poll_ns, first_held_ns;
    held *held;
    size_t n_held, cap_held;
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
    t->hold = LF_HOST_HAS(h, settle) ? (long)v[K_HOLD].i : 0;
    t->hold_poll_ns = v[K_HOLD_POLL].i * 1000000LL;
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

static void free_held(held *x)
{
    free(x->segment);
    free(x->payload);
}

/* Settle held records [0, n) by the tenant rules, one settle() call per
 * verdict as the ABI asks; RETRY ones the host refuses stay held. */
static void settle_held(ts *t, size_t n)
{
    lf_settled *v = calloc(n ? n : 1, sizeof *v);
    uint8_t *verdict = calloc(n ? n : 1, 1), *keep = calloc(n ? n : 1, 1);
    if (!v || !verdict || !keep) {
        free(v);
        free(verdict);
        free(keep);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        held *x = &t->held[i];
        if (t->fail && strcmp(x->tenant, t->fail) == 0)
            verdict[i] = LF_REC_FAIL;
        else if (t->retry && strcmp(x->tenant, t->retry) == 0 &&
                 !seen_before(t, x->id))
            verdict[i] = LF_REC_RETRY;
    }
    static const uint8_t order[3] = {LF_REC_OK, LF_REC_FAIL, LF_REC_RETRY};
    for (int pass = 0; pass < 3; pass++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            held *x = &t->held[i];
            if (verdict[i] != order[pass])
                continue;
            if (verdict[i] == LF_REC_OK) {
                size_t ll = strlen(x->line);
                if (write(t->fd, x->line, ll) != (ssize_t)ll) {
                    keep[i] = 1; /* not written: settle it later */
                    continue;
                }
            }
            v[k++] = (lf_settled){
                {x->segment, x->offset}, x->payload, x->len, verdict[i]};
        }
        if (order[pass] == LF_REC_OK)
            fdatasync(t->fd);
        if (k &&
            t->h->settle(t->h, v, k, "tenant refused by testsink", 10) != 0)
            for (size_t i = 0; i < n; i++) /* RETRY refused: keep them */
                if (verdict[i] == LF_REC_RETRY)
                    keep[i] = 1;
    }
    size_t w = 0;
    for (size_t i = 0; i < t->n_held; i++) {
        if (i < n && !keep[i])
            free_held(&t->held[i]);
        else
            t->held[w++] = t->held[i];
    }
    t->n_held = w;
    t->first_held_ns = w ? t->h->mono_ns(t->h) : 0;
    free(v);
    free(verdict);
    free(keep);
}

static int hold_one(ts *t, const lf_record *rec, const char *id,
                    const char *tenant)
{
    if (t->n_held == t->cap_held) {
        size_t nc = t->cap_held ? t->cap_held * 2 : 256;
        held *nh = realloc(t->held, nc * sizeof *nh);
        if (!nh)
            return -1;
        t->held = nh;
        t->cap_held = nc;
    }
    held *x = &t->held[t->n_held];
    memset(x, 0, sizeof *x);
    x->segment = strdup(rec->pos.segment);
    x->payload = malloc(rec->len ? rec->len : 1);
    if (!x->segment || !x->payload) {
        free_held(x);
        return -1;
    }
    memcpy(x->payload, rec->payload, rec->len);
    x->len = rec->len;
    x->offset = rec->pos.offset;
    snprintf(x->line, sizeof x->line, "%s %s\n", id, tenant);
    snprintf(x->tenant, sizeof x->tenant, "%s", tenant);
    snprintf(x->id, sizeof x->id, "%s", id);
    if (!t->n_held++)
        t->first_held_ns = t->h->mono_ns(t->h);
    return 0;
}

static lf_deliver_status deliver_holding(ts *t, lf_batch *b)
{
    /* Settle what was held before this batch when enough is held. */
    if (t->n_held >= (size_t)t->hold)
        settle_held(t, t->n_held);
    for (size_t i = 0; i < b->count; i++) {
        const char *tenant = "", *id = "";
        t->h->field(t->h, &b->records[i], "tenant_id", &tenant);
        t->h->field(t->h, &b->records[i], "record_id", &id);
        b->verdict[i] = hold_one(t, &b->records[i], id, tenant) == 0
                            ? LF_REC_HOLD
                            : LF_REC_RETRY;
    }
    b->retry_after_ms = 10;
    return LF_DELIVER_PARTIAL;
}

static int64_t poll(void *inst)
{
    ts *t = inst;
    if (!t->n_held)
        return -1;
    int64_t wait = t->first_held_ns + t->hold_poll_ns - t->h->mono_ns(t->h);
    if (wait <= 0) {
        settle_held(t, t->n_held);
        if (!t->n_held)
            return -1;
        wait = t->hold_poll_ns;
    }
    return wait / 1000000 + 1;
}

static int flush(void *inst)
{
    ts *t = inst;
    if (t->n_held)
        settle_held(t, t->n_held);
    return 0;
}

static lf_deliver_status deliver(void *inst, lf_batch *b)
{
    ts *t = inst;
    if (t->retry_calls && ++t->calls % t->retry_calls == 0)
        return LF_DELIVER_RETRY;
    if (t->hold)
        return deliver_holding(t, b);
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
    for (size_t i = 0; i < t->n_held; i++)
        free_held(&t->held[i]);
    free(t->held);
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
    .flush = flush,
    .destroy = destroy,
    .poll = poll,
};
LF_SINK_MODULE(ops)
