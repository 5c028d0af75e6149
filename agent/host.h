/*
 * host.h - the services the agent lends to one sink instance (lf_host of
 * logferry/sink.h): logging with the instance's prefix, named counters,
 * the record→JSON encoder, field access and the clocks.
 *
 * One sink_host per instance; the delivery thread of the instance owns it.
 * Counters are also read by the status writer on another thread, so they
 * are guarded by a mutex.
 */
#ifndef LOGFERRY_HOST_H
#define LOGFERRY_HOST_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "logferry/sink.h"

#define HOST_MAX_COUNTERS 64
#define HOST_COUNTER_NAME 48

typedef struct host_counter {
    char name[HOST_COUNTER_NAME];
    uint64_t value;
} host_counter;

typedef struct sink_host {
    lf_host pub; /* what the sink sees; pub.priv points back here */
    char prefix[160];
    pthread_mutex_t lock;
    host_counter counters[HOST_MAX_COUNTERS];
    size_t n_counters;
    arena scratch;        /* memory for field() answers of one batch */
    struct aws_host *aws; /* AWS services, shared by all hosts; NULL */
    char *instance_dir;   /* owned; pub.instance_dir points here */
} sink_host;

/* Set up a host for the sink instance `name` of module `type`. Returns 0
 * or -1 (out of memory). Release with sink_host_destroy(). */
int sink_host_init(sink_host *h, const char *type, const char *name);

/* Create <state_dir>/sinks/<name> (0700) and lend it as
 * pub.instance_dir. Returns 0, or -1 with err set. */
int sink_host_set_instance_dir(sink_host *h, const char *state_dir,
                               const char *name, char *err, size_t errlen);

/* Free what the host holds. Accepts NULL. */
void sink_host_destroy(sink_host *h);

/* Forget the field() answers of the previous batch; call before each
 * deliver(). */
void sink_host_reset_batch(sink_host *h);

/* Add to a counter from the agent side (same as the sink's counter_add). */
void sink_host_count(sink_host *h, const char *name, uint64_t delta);

/* Print the counters as a JSON object into `out` (status file). */
void sink_host_counters_json(sink_host *h, FILE *out);

/* The clocks every host hands out (wall and monotonic, ns). */
int64_t host_now_ns(void);
int64_t host_mono_ns(void);

#endif
