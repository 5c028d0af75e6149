/*
 * agent.c - the `logferry run` main loop. See agent.h.
 *
 * Threads: this one watches the spool (inotify + rescans), handles signals
 * through a signalfd, garbage-collects delivered segments and writes the
 * status file; one thread per sink instance delivers (delivery.c).
 */
#include "agent.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws_host.h"
#include "config.h"
#include "delivery.h"
#include "log.h"
#include "record_json.h"
#include "retention.h"
#include "route.h"
#include "scrub.h"
#include "sink_loader.h"
#include "spool_format.h"
#include "spool_writer_internal.h"
#include "tail.h"

typedef struct agent {
    agent_conf *conf;
    char *conf_path;
    const char *module_dir_override;
    sink_registry *reg;
    spool_watch watch;
    delivery_env env;
    lf_writer *dead;
    pthread_mutex_t dead_lock;
    sink_runner **runners;
    size_t n_runners;
    char *spool_dir, *state_dir; /* fixed for the life of the process */
    aws_host *aws;
    int warned_live_age;
    /* Per-route retention (scrub.h): one scrubber for the spool, one for
       the dead letters; made while some route has a max_age. */
    scrubber *scrub_spool, *scrub_dead;
    char scratch[RJSON_FIELD_SCRATCH]; /* route matching on this thread */
} agent;

int agent_mkdirs(const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void print_errors(const conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        log_error("msg=\"config error\" detail=\"%s\"", e->msg[i]);
}

/* Create and start the runner for sink config `sc` (taken over). */
static int add_runner(agent *a, sink_conf *sc)
{
    if (!conf_int(&sc->common, SK_ENABLED)) {
        log_info("msg=\"sink disabled in config\" sink=%s", sc->name);
        return 0;
    }
    char err[1024];
    sink_runner *r = sink_runner_new(sc, &a->env, err, sizeof err);
    if (!r) {
        log_error("msg=\"sink not started\" error=\"%s\"", err);
        return -1;
    }
    sink_runner **nr =
        realloc(a->runners, (a->n_runners + 1) * sizeof *a->runners);
    if (!nr || sink_runner_start(r, err, sizeof err) != 0) {
        if (nr)
            a->runners = nr;
        log_error("msg=\"sink not started\" sink=%s error=\"%s\"",
                  sink_runner_name(r), nr ? err : "out of memory");
        sink_runner_free(r);
        return -1;
    }
    a->runners = nr;
    a->runners[a->n_runners++] = r;
    return 0;
}

/* Stop runner i, wait for it, and remove it from the list. */
static int remove_runner(agent *a, size_t i, int64_t deadline_ms)
{
    int rc = 0;
    sink_runner *r = a->runners[i];
    sink_runner_stop(r);
    spool_watch_kick(&a->watch);
    if (sink_runner_join(r, deadline_ms) != 0) {
        /* Its thread still runs sink code: leaking it is the only safe
           choice; its cursor on disk is consistent. */
        log_error("msg=\"sink did not stop within the deadline, abandoned\" "
                  "sink=%s deadline_ms=%lld",
                  sink_runner_name(r), (long long)deadline_ms);
        rc = -1;
    } else {
        sink_runner_free(r);
    }
    a->runners[i] = a->runners[--a->n_runners];
    return rc;
}

/* The bound on how long anything may stay on disk that sinks must obey
 * for data they stage: the smallest of spool.max_age and the routes'
 * max_age (0: none). */
static int64_t staged_bound(const agent_conf *c)
{
    int64_t g = conf_int(&c->spool, PK_MAX_AGE);
    int64_t r = route_min_max_age(c->routes);
    return !g || (r && r < g) ? r : g;
}

static int64_t scrub_limit(void *ctx, const Logferry__V1__InvocationRecord *rec)
{
    agent *a = ctx;
    return route_max_age(a->conf->routes, rec, a->scratch);
}

/* Count, per sink, the purged records it had not acknowledged yet. */
static void scrub_counted(void *ctx, const char *name, const uint64_t *off,
                          size_t n)
{
    agent *a = ctx;
    for (size_t j = 0; j < a->n_runners; j++) {
        sink_runner *r = a->runners[j];
        if (sink_runner_done_with(r, name))
            continue;
        uint64_t cur = sink_runner_offset(r, name);
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (off[mid] < cur)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (n > lo)
            sink_host_count(sink_runner_host(r), "retention_purged", n - lo);
    }
}

static void drop_scrubbers(agent *a)
{
    scrubber_free(a->scrub_spool);
    scrubber_free(a->scrub_dead);
    a->scrub_spool = a->scrub_dead = NULL;
}

/* Apply the routes' max_age to the records of the segments that stay
 * (scrub.h); names are those still in the spool. */
static void apply_route_retention(agent *a, char **names, size_t n, int64_t now)
{
    if (route_min_max_age(a->conf->routes) <= 0) {
        drop_scrubbers(a);
        return;
    }
    char dl[PATH_MAX];
    snprintf(dl, sizeof dl, "%s/deadletter", a->state_dir);
    if (!a->scrub_spool)
        a->scrub_spool =
            scrubber_new(a->env.spool_dir, scrub_limit, scrub_counted, a);
    if (!a->scrub_dead)
        a->scrub_dead = scrubber_new(dl, scrub_limit, NULL, a);
    scrub_stats st;
    if (a->scrub_spool) {
        scrubber_pass(a->scrub_spool, names, n, now, &st);
        if (st.purged)
            log_info("msg=\"retention rules purged records\" where=spool "
                     "segments=%u records=%llu",
                     st.segments, (unsigned long long)st.purged);
    }
    size_t nd;
    char err[512];
    char **dn = spool_list_segments(dl, &nd, err, sizeof err);
    if (a->scrub_dead && dn) {
        scrubber_pass(a->scrub_dead, dn, nd, now, &st);
        if (st.purged)
            log_info("msg=\"retention rules purged records\" "
                     "where=dead_letters segments=%u records=%llu",
                     st.segments, (unsigned long long)st.purged);
    }
    if (dn)
        spool_watch_free_list(dn, nd);
}

/* Remove what may go: segments every running sink has finished (after
 * spool.keep_delivered), and anything older than spool.max_age, delivered
 * or not (retention.h). This is the one place the agent deletes spool
 * data. */
static void collect_garbage(agent *a)
{
    int64_t max_age = conf_int(&a->conf->spool, PK_MAX_AGE);
    int64_t keep = conf_int(&a->conf->spool, PK_KEEP_DELIVERED);
    int64_t now = host_now_ns();
    size_t n;
    uint64_t gen;
    char **names = spool_watch_list(&a->watch, &n, &gen);
    if (!names)
        return;
    char **left = malloc((n ? n : 1) * sizeof *left);
    size_t n_left = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", a->env.spool_dir, names[i]);
        if (left)
            left[n_left++] = names[i];
        int all = a->n_runners > 0;
        for (size_t j = 0; j < a->n_runners && all; j++)
            all = sink_runner_done_with(a->runners[j], names[i]);
        int64_t age = 0;
        int live = 0;
        if ((all && keep > 0) || max_age > 0) {
            if (retention_segment_age(path, now, &age, &live) != 0)
                continue;
        }
        const char *why = NULL;
        if (all && age >= keep)
            why = "delivered";
        else if (max_age > 0 && age >= max_age && !live)
            why = "expired";
        if (!why) {
            int64_t created;
            if (max_age > 0 && live &&
                retention_segment_created_age(path, now, &created) == 0 &&
                created >= max_age && !a->warned_live_age) {
                /* Deleting it would lose what the writer appends next. */
                log_warn("msg=\"segment still open by its writer past "
                         "spool.max_age; set the writers' rotate_age below "
                         "max_age\" segment=%s age_ms=%lld",
                         names[i], (long long)created);
                a->warned_live_age = 1;
            }
            continue;
        }
        if (*why == 'e') {
            /* Count, per sink, what leaves undelivered. */
            for (size_t j = 0; j < a->n_runners; j++) {
                sink_runner *r = a->runners[j];
                if (sink_runner_done_with(r, names[i]))
                    continue;
                uint64_t lost = retention_frames_from(
                    path, sink_runner_offset(r, names[i]));
                if (lost) {
                    sink_host_count(sink_runner_host(r), "retention_purged",
                                    lost);
                    log_warn("msg=\"retention purged undelivered records\" "
                             "sink=%s segment=%s records=%llu age_ms=%lld",
                             sink_runner_name(r), names[i],
                             (unsigned long long)lost, (long long)age);
                }
            }
        }
        if (unlink(path) == 0) {
            log_msg(*why == 'e' ? LF_LOG_INFO : LF_LOG_DEBUG, NULL,
                    "msg=\"segment removed\" reason=%s segment=%s age_ms=%lld",
                    why, names[i], (long long)age);
            n_left -= left != NULL;
        } else if (errno != ENOENT) {
            log_warn("msg=\"cannot remove segment\" path=%s error=\"%s\"", path,
                     strerror(errno));
        }
    }
    if (left)
        apply_route_retention(a, left, n_left, now);
    free(left);
    spool_watch_free_list(names, n);
    if (max_age > 0) {
        char dl[PATH_MAX];
        uint64_t records = 0;
        snprintf(dl, sizeof dl, "%s/deadletter", a->state_dir);
        unsigned k = retention_sweep_dir(dl, max_age, now, &records);
        if (k)
            log_info("msg=\"retention purged dead letters\" segments=%u "
                     "records=%llu",
                     k, (unsigned long long)records);
    }
}

static void write_status(agent *a)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/status.json", a->state_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "{\"pid\":%d,\"time_ns\":%lld,\"sinks\":{", (int)getpid(),
            (long long)host_now_ns());
    for (size_t i = 0; i < a->n_runners; i++) {
        fprintf(f, "%s\"%s\":", i ? "," : "", sink_runner_name(a->runners[i]));
        sink_host_counters_json(sink_runner_host(a->runners[i]), f);
    }
    fprintf(f, "}}\n");
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void reload(agent *a)
{
    conf_errors errs = {0};
    agent_conf *nc =
        agent_conf_load(a->conf_path, a->module_dir_override, a->reg, &errs);
    if (!nc) {
        print_errors(&errs);
        log_error("msg=\"reload refused, keeping the running configuration\" "
                  "errors=%zu",
                  errs.n);
        conf_errors_free(&errs);
        return;
    }
    conf_errors_free(&errs);
    if (strcmp(conf_str(&nc->spool, PK_DIR), a->env.spool_dir) != 0 ||
        strcmp(conf_str(&nc->top, TK_STATE_DIR), a->env.state_dir) != 0)
        log_warn("msg=\"spool.dir and state_dir changes need a restart; "
                 "keeping the running ones\"");
    log_set_level((lf_log_level)conf_int(&nc->top, TK_LOG_LEVEL));
    int64_t deadline = conf_int(&a->conf->delivery, DK_SHUTDOWN_DEADLINE);
    size_t kept = 0, stopped = 0, started = 0;
    /* Routes decide what every sink reads: if they changed, every sink
       restarts on the new ones (cursors are kept). */
    int routes_changed = strcmp(route_table_text(nc->routes),
                                route_table_text(a->conf->routes)) != 0;
    a->env.routes = nc->routes;
    a->env.max_age_ms = staged_bound(nc);
    if (routes_changed)
        drop_scrubbers(a); /* due times were computed with the old rules */
    /* Stop sinks that are gone or changed. */
    for (size_t i = 0; i < a->n_runners;) {
        const sink_conf *old = sink_runner_conf(a->runners[i]);
        int keep = 0;
        for (size_t j = 0; j < nc->n_sinks; j++)
            if (strcmp(nc->sinks[j].name, old->name) == 0 &&
                strcmp(nc->sinks[j].fingerprint, old->fingerprint) == 0 &&
                conf_int(&nc->sinks[j].common, SK_ENABLED) && !routes_changed)
                keep = 1;
        if (keep) {
            i++;
            kept++;
        } else {
            log_info("msg=\"stopping sink for reload\" sink=%s", old->name);
            remove_runner(a, i, deadline);
            stopped++;
        }
    }
    /* Start the new and changed ones. */
    for (size_t j = 0; j < nc->n_sinks; j++) {
        int running = 0;
        for (size_t i = 0; i < a->n_runners; i++)
            if (strcmp(sink_runner_name(a->runners[i]), nc->sinks[j].name) == 0)
                running = 1;
        if (!running && conf_int(&nc->sinks[j].common, SK_ENABLED) &&
            add_runner(a, &nc->sinks[j]) == 0)
            started++;
    }
    /* Runners own their sink_conf; the rest of the old config can go. */
    agent_conf_free(a->conf);
    a->conf = nc;
    log_info("msg=\"configuration reloaded\" sinks_kept=%zu "
             "sinks_stopped=%zu sinks_started=%zu",
             kept, stopped, started);
    spool_watch_kick(&a->watch);
}

int agent_run(const char *conf_path, const char *module_dir_override)
{
    agent a = {0};
    int rc = 1, sfd = -1;
    conf_errors errs = {0};
    pthread_mutex_init(&a.dead_lock, NULL);
    a.module_dir_override = module_dir_override;
    a.reg = sink_registry_new();
    a.conf_path = strdup(conf_path);
    if (!a.reg || !a.conf_path)
        goto out;
    a.conf = agent_conf_load(conf_path, module_dir_override, a.reg, &errs);
    if (!a.conf) {
        print_errors(&errs);
        log_error("msg=\"not starting: configuration has errors\" file=%s "
                  "errors=%zu",
                  conf_path, errs.n);
        goto out;
    }
    log_set_level((lf_log_level)conf_int(&a.conf->top, TK_LOG_LEVEL));

    a.state_dir = strdup(conf_str(&a.conf->top, TK_STATE_DIR));
    a.spool_dir = strdup(conf_str(&a.conf->spool, PK_DIR));
    if (!a.state_dir || !a.spool_dir)
        goto out;
    const char *state = a.state_dir, *spool = a.spool_dir;
    char path[PATH_MAX], err[1024];
    snprintf(path, sizeof path, "%s/cursors", state);
    if (agent_mkdirs(path) != 0) {
        log_error("msg=\"cannot create state directory\" path=%s error=\"%s\"",
                  path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/deadletter", state);
    lf_writer_options wo;
    lf_writer_options_init(&wo);
    /* Dead letters obey spool.max_age: rotate well inside it so a sealed
       segment can be purged on time. */
    int64_t max_age = conf_int(&a.conf->spool, PK_MAX_AGE);
    wo.rotate_age_ms = 60000;
    if (max_age > 0 && max_age / 2 < wo.rotate_age_ms)
        wo.rotate_age_ms = max_age / 2 > 500 ? (uint32_t)(max_age / 2) : 500;
    if (spool_writer_open_flags(path, &wo, SPOOL_FLAG_DEAD_LETTER, &a.dead, err,
                                sizeof err) != LF_OK) {
        log_error("msg=\"cannot open dead-letter spool\" path=%s error=\"%s\"",
                  path, err);
        goto out;
    }
    /* The aws group is read once: changing it needs a restart. */
    a.aws = aws_host_create(&a.conf->aws, err, sizeof err);
    if (!a.aws) {
        log_error("msg=\"cannot set up AWS services\" error=\"%s\"", err);
        goto out;
    }
    if (spool_watch_open(&a.watch, spool, err, sizeof err) != 0) {
        log_error("msg=\"cannot watch spool\" error=\"%s\"", err);
        goto out;
    }
    a.env = (delivery_env){
        .watch = &a.watch,
        .spool_dir = spool,
        .state_dir = state,
        .dead_letters = a.dead,
        .dead_lock = &a.dead_lock,
        .rescan_ms = (int)conf_int(&a.conf->spool, PK_RESCAN),
        .aws = a.aws,
        .routes = a.conf->routes,
        .max_age_ms = staged_bound(a.conf),
    };

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Block before starting threads so only the signalfd sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        log_error("msg=\"signalfd failed\" error=\"%s\"", strerror(errno));
        goto out;
    }

    size_t started = 0;
    for (size_t i = 0; i < a.conf->n_sinks; i++)
        if (add_runner(&a, &a.conf->sinks[i]) == 0)
            started++;
    log_info("msg=\"logferry running\" version=%s config=%s spool=%s "
             "sinks=%zu",
             LF_VERSION, conf_path, spool, a.n_runners);

    int64_t rescan_ns = conf_int(&a.conf->spool, PK_RESCAN) * 1000000LL;
    int64_t next_scan = host_mono_ns() + rescan_ns;
    int64_t next_status = host_mono_ns();
    int stopping = 0;
    while (!stopping) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
                              {.fd = a.watch.ifd, .events = POLLIN}};
        int np = a.watch.ifd >= 0 ? 2 : 1;
        int r = poll(p, (nfds_t)np, 200);
        if (r < 0 && errno != EINTR)
            break;
        if (np == 2 && (p[1].revents & POLLIN))
            spool_watch_poll(&a.watch, 0);
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    log_info("msg=\"SIGHUP: reloading configuration\"");
                    reload(&a);
                } else {
                    log_info("msg=\"stopping\" signal=%s",
                             si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    stopping = 1;
                }
            }
        }
        int64_t now = host_mono_ns();
        if (now >= next_scan) {
            if (spool_watch_scan(&a.watch, err, sizeof err) != 0)
                log_error("msg=\"spool scan failed\" error=\"%s\"", err);
            collect_garbage(&a);
            next_scan = now + rescan_ns;
        }
        if (now >= next_status) {
            write_status(&a);
            next_status = now + 1000000000LL;
        }
    }
    int64_t deadline = conf_int(&a.conf->delivery, DK_SHUTDOWN_DEADLINE);
    for (size_t i = 0; i < a.n_runners; i++)
        sink_runner_stop(a.runners[i]);
    a.watch.stopping = 1;
    spool_watch_kick(&a.watch);
    int64_t until = host_mono_ns() + deadline * 1000000LL;
    int abandoned = 0;
    for (size_t i = 0; i < a.n_runners; i++) {
        int64_t left = (until - host_mono_ns()) / 1000000LL;
        if (sink_runner_join(a.runners[i], left > 0 ? left : 0) != 0) {
            log_error("msg=\"sink did not stop within the deadline\" "
                      "sink=%s deadline_ms=%lld",
                      sink_runner_name(a.runners[i]), (long long)deadline);
            abandoned = 1;
        }
    }
    rc = 0;
    if (abandoned) {
        /* A sink thread is still inside the module: freeing what it may
           touch would trade a clean exit for a crash. The cursors on disk
           are consistent. */
        log_info("msg=\"stopped\" abandoned_sinks=1");
        return rc;
    }
    /* Final counters while the runners still exist, then the last GC. */
    write_status(&a);
    collect_garbage(&a);
    log_info("msg=\"stopped\"");
out:
    if (sfd >= 0)
        close(sfd);
    for (size_t i = 0; i < a.n_runners; i++)
        sink_runner_free(a.runners[i]);
    free(a.runners);
    if (a.dead)
        lf_writer_close(a.dead);
    spool_watch_close(&a.watch);
    drop_scrubbers(&a);
    aws_host_destroy(a.aws);
    agent_conf_free(a.conf);
    sink_registry_free(a.reg);
    conf_errors_free(&errs);
    free(a.conf_path);
    free(a.spool_dir);
    free(a.state_dir);
    pthread_mutex_destroy(&a.dead_lock);
    return rc;
}
