/*
 * delivery.h - one sink instance's delivery loop.
 *
 * Each configured sink runs in its own thread with its own cursor, so a
 * sink that is down never holds up another. The loop reads frames from the
 * spool at the sink's position, decodes them, hands them to the sink in
 * batches within the sink's limits, and advances the durable cursor only
 * past records the sink acknowledged (or that were dead-lettered after a
 * permanent refusal). A RETRY answer backs off exponentially with full
 * jitter and offers the same records again; nothing is dropped because a
 * retry count ran out.
 */
#ifndef LOGFERRY_DELIVERY_H
#define LOGFERRY_DELIVERY_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "host.h"
#include "logferry/writer.h"
#include "tail.h"

typedef struct sink_runner sink_runner;

/* What the runners share with the agent. */
typedef struct delivery_env {
    spool_watch *watch;
    const char *spool_dir;
    const char *state_dir;
    lf_writer *dead_letters;    /* thread-safe; NULL: none */
    pthread_mutex_t *dead_lock; /* serialises flush+cursor ordering */
    int rescan_ms;
    struct aws_host *aws;       /* AWS services for sinks; NULL: none */
    struct route_table *routes; /* NULL: every record to every sink */
    int64_t max_age_ms;         /* spool.max_age, lent to sinks */

    /* `logferry replay`: read what the spool holds once, filtered, without
       a durable cursor, then stop (sink_runner_join returns). */
    int replay;
    int64_t since_ns, until_ns; /* event time window; 0: open */
    const char *tenant;         /* only this tenant; NULL: all */
    int dead_letter_source;     /* frames are DeadLetters: replay those of
                                   this sink (all if replay_any_sink) */
    int replay_any_sink;
    int64_t replay_started_ns; /* segments created later are not read */
} delivery_env;

/* Create the instance of `sc` (calls the module's create) and load its
 * cursor. Takes ownership of *sc's contents (sc is zeroed). Returns NULL
 * with err set if create fails. */
sink_runner *sink_runner_new(sink_conf *sc, const delivery_env *env, char *err,
                             size_t errlen);

/* Start / stop the thread. Stop asks the loop to finish its in-flight
 * batch, save the cursor and flush the sink; join waits up to
 * deadline_ms and returns 0 if the thread ended, -1 if it is still busy
 * (the caller may then exit without destroying: the cursor on disk is
 * always consistent). */
int sink_runner_start(sink_runner *r, char *err, size_t errlen);
void sink_runner_stop(sink_runner *r);
int sink_runner_join(sink_runner *r, int64_t deadline_ms);

/* Destroy the instance and free. Accepts NULL. Only after join. */
void sink_runner_free(sink_runner *r);

/* Whether this sink has finished segment `name` (durably recorded). */
int sink_runner_done_with(sink_runner *r, const char *name);

/* The durable position of this sink in segment `name`: 0 if it has none
 * yet. */
uint64_t sink_runner_offset(sink_runner *r, const char *name);

/* After a replay: how many records it offered, and the segments it read
 * to their end (for `replay --dead-letter` to remove). The list is owned
 * by the runner. */
uint64_t sink_runner_replayed(const sink_runner *r);
size_t sink_runner_finished_segments(sink_runner *r, const char ***names);

const char *sink_runner_name(const sink_runner *r);
const sink_conf *sink_runner_conf(const sink_runner *r);
sink_host *sink_runner_host(sink_runner *r);

#endif
