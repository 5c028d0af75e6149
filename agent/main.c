/*
 * main.c - the `logferry` command line: run, check, emit, dump, status,
 * config-doc. Each subcommand takes -c FILE (default: the installed
 * config) and --help.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "aws/awshttp.h"
#include "aws_host.h"
#include "host.h"
#include "config.h"
#include "cursor.h"
#include "log.h"
#include "logferry/writer.h"
#include "record_input.h"
#include "record_json.h"
#include "route.h"
#include "delivery.h"
#include "sink_loader.h"
#include "spool_format.h"
#include "spool_writer_internal.h"
#include "tail.h"
#include "spool_reader.h"

static const char *usage_main =
    "usage: logferry <command> [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  run         tail the spool and deliver records to the sinks\n"
    "  check       validate the configuration and exit (non-zero on error)\n"
    "  emit        append records to the spool (flags, or JSON lines on "
    "stdin)\n"
    "  dump        print spool or dead-letter segments as NDJSON\n"
    "  status      per sink: cursor, backlog, oldest undelivered record\n"
    "  replay      re-deliver spooled or dead-lettered records to one sink\n"
    "  config-doc  print the configuration reference (Markdown)\n"
    "  aws-check   resolve AWS credentials (and a role) and ask STS who we "
    "are\n"
    "\n"
    "  logferry <command> --help   options of a command\n"
    "  logferry --version\n";

/* Options every command shares. */
typedef struct common_opts {
    const char *conf;
    const char *module_dir;
} common_opts;

static void print_conf_errors(const conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->msg[i]);
}

static agent_conf *load_conf(const common_opts *o, sink_registry *reg)
{
    conf_errors errs = {0};
    agent_conf *c = agent_conf_load(o->conf, o->module_dir, reg, &errs);
    if (!c) {
        print_conf_errors(&errs);
        fprintf(stderr, "%s: %zu error%s\n", o->conf, errs.n,
                errs.n == 1 ? "" : "s");
    }
    conf_errors_free(&errs);
    return c;
}

/* Parse -c/--config and --module-dir, leaving other options to `extra`.
 * Returns the index of the first operand, or -1 after printing help. */
typedef int (*opt_fn)(int c, const char *arg, void *ud);

static int parse_opts(int argc, char **argv, const char *help,
                      const char *shortopts, const struct option *more,
                      opt_fn extra, void *ud, common_opts *o)
{
    struct option opts[32] = {
        {"config", required_argument, NULL, 'c'},
        {"module-dir", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
    };
    size_t n = 3;
    for (size_t i = 0; more && more[i].name && n < 31; i++)
        opts[n++] = more[i];
    char so[64];
    snprintf(so, sizeof so, "c:h%s", shortopts ? shortopts : "");
    o->conf = LF_DEFAULT_CONF;
    o->module_dir = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, so, opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->conf = optarg;
            break;
        case 'M':
            o->module_dir = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return -1;
        default:
            if (extra && extra(c, optarg, ud) == 0)
                break;
            fputs(help, stderr);
            return -2;
        }
    }
    return optind;
}

#define COMMON_HELP                                                            \
    "  -c, --config FILE   configuration file (default " LF_DEFAULT_CONF ")\n" \
    "      --module-dir D  load sink modules from D instead of module_dir\n"   \
    "  -h, --help          this text\n"

/* ---- run / check ---------------------------------------------------- */

static int cmd_run(int argc, char **argv)
{
    common_opts o;
    int i = parse_opts(argc, argv,
                       "usage: logferry run [-c FILE] [--module-dir DIR]\n"
                       "Tail the spool and deliver to the configured sinks "
                       "until SIGTERM/SIGINT;\nSIGHUP reloads the "
                       "configuration.\n" COMMON_HELP,
                       NULL, NULL, NULL, NULL, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    return agent_run(o.conf, o.module_dir);
}

static int cmd_check(int argc, char **argv)
{
    common_opts o;
    int i = parse_opts(argc, argv,
                       "usage: logferry check [-c FILE] [--module-dir DIR]\n"
                       "Validate the configuration, loading each sink "
                       "module; print every error\nas file:line and exit 1 "
                       "if there is any.\n" COMMON_HELP,
                       NULL, NULL, NULL, NULL, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    sink_registry *reg = sink_registry_new();
    agent_conf *c = load_conf(&o, reg);
    int rc = c ? 0 : 1;
    if (c)
        printf("%s: ok (%zu sink%s)\n", o.conf, c->n_sinks,
               c->n_sinks == 1 ? "" : "s");
    agent_conf_free(c);
    sink_registry_free(reg);
    return rc;
}

/* ---- emit ------------------------------------------------------------ */

typedef struct emit_opts {
    const char *spool;
    long count;
    int json;
    int durable;
    record_input ri;
    int bad;
} emit_opts;

static const char *const emit_fields[] = {"tenant_id",
                                          "account_id",
                                          "app",
                                          "region",
                                          "model_id",
                                          "operation",
                                          "input_tokens",
                                          "output_tokens",
                                          "cache_read_tokens",
                                          "cache_write_tokens",
                                          "latency_ms",
                                          "time_to_first_token_ms",
                                          "status",
                                          "error_type",
                                          "error_message",
                                          "request_id",
                                          "trace_id",
                                          "session_id",
                                          "prompt_text",
                                          "completion_text",
                                          "event_time_ns",
                                          "record_id",
                                          NULL};

static int emit_extra(int c, const char *arg, void *ud)
{
    emit_opts *e = ud;
    char err[256];
    if (c == 'S') {
        e->spool = arg;
        return 0;
    }
    if (c == 'n') {
        e->count = strtol(arg, NULL, 10);
        return e->count > 0 ? 0 : -1;
    }
    if (c == 'j') {
        e->json = 1;
        return 0;
    }
    if (c == 'D') {
        e->durable = 1;
        return 0;
    }
    if (c == 'a') {
        const char *eq = strchr(arg, '=');
        if (!eq) {
            fprintf(stderr, "--attr expects KEY=VALUE\n");
            return -1;
        }
        char key[256];
        snprintf(key, sizeof key, "attributes.%.*s", (int)(eq - arg), arg);
        if (record_input_set(&e->ri, key, eq + 1, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        return 0;
    }
    if (c >= 1000 &&
        c < 1000 + (int)(sizeof emit_fields / sizeof *emit_fields)) {
        if (record_input_set(&e->ri, emit_fields[c - 1000], arg, err,
                             sizeof err)) {
            fprintf(stderr, "%s\n", err);
            e->bad = 1;
        }
        return 0;
    }
    return -1;
}

static const char *spool_dir_of(const common_opts *o, const char *override,
                                sink_registry *reg, agent_conf **keep)
{
    if (override)
        return override;
    *keep = load_conf(o, reg);
    return *keep ? conf_str(&(*keep)->spool, PK_DIR) : NULL;
}

static int cmd_emit(int argc, char **argv)
{
    static char help[4096];
    int hl = snprintf(help, sizeof help,
                      "usage: logferry emit [-c FILE] [--spool DIR] [-n N] "
                      "[--FIELD VALUE...] [--attr K=V...]\n"
                      "       logferry emit [-c FILE] --json < records.ndjson\n"
                      "Append records to the spool of the configuration (or "
                      "--spool DIR).\nWith --json, each stdin line is a JSON "
                      "object whose keys are the\nschema's field names (as "
                      "`logferry dump` prints them).\n" COMMON_HELP
                      "      --spool DIR     spool directory (overrides the "
                      "config)\n"
                      "  -n, --count N       append the record N times "
                      "(default 1)\n"
                      "      --json          read JSON lines from stdin\n"
                      "      --durable       fsync every record\n"
                      "      --attr K=V      add an attribute\n"
                      "  fields:");
    for (int i = 0; emit_fields[i]; i++)
        hl += snprintf(help + hl, sizeof help - (size_t)hl, " --%s",
                       emit_fields[i]);
    snprintf(help + hl, sizeof help - (size_t)hl, "\n");
    struct option more[40] = {
        {"spool", required_argument, NULL, 'S'},
        {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"durable", no_argument, NULL, 'D'},
        {"attr", required_argument, NULL, 'a'},
    };
    size_t nm = 5;
    for (int i = 0; emit_fields[i]; i++)
        more[nm++] =
            (struct option){emit_fields[i], required_argument, NULL, 1000 + i};
    emit_opts e = {.count = 1};
    record_input_init(&e.ri);
    common_opts o;
    int rc = 1;
    sink_registry *reg = sink_registry_new();
    agent_conf *conf = NULL;
    lf_writer *w = NULL;
    int i = parse_opts(argc, argv, help, "n:", more, emit_extra, &e, &o);
    if (i < 0 || e.bad) {
        rc = i == -1 ? 0 : 2;
        goto out;
    }
    const char *spool = spool_dir_of(&o, e.spool, reg, &conf);
    if (!spool)
        goto out;
    /* The writer creates the spool directory itself; from the command
       line, also its parents, as the agent does. */
    if (agent_mkdirs(spool) != 0)
        fprintf(stderr, "emit: cannot create %s: %s\n", spool, strerror(errno));
    lf_writer_options wo;
    lf_writer_options_init(&wo);
    if (e.durable)
        wo.durability = LF_DURABILITY_EVERY;
    char err[512];
    int wrc = lf_writer_open(spool, &wo, &w, err, sizeof err);
    if (wrc != LF_OK) {
        fprintf(stderr, "emit: cannot open spool %s: %s (%s)\n", spool,
                lf_strerror(wrc), err);
        goto out;
    }
    long appended = 0;
    if (e.json) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long lineno = 0;
        int bad = 0;
        while ((len = getline(&line, &cap, stdin)) > 0) {
            lineno++;
            if (len == 1 && line[0] == '\n')
                continue;
            json_error_t je;
            json_t *j = json_loadb(line, (size_t)len, 0, &je);
            record_input ri;
            record_input_init(&ri);
            if (!j) {
                fprintf(stderr, "stdin:%ld: invalid JSON: %s\n", lineno,
                        je.text);
                bad++;
            } else if (record_input_from_json(&ri, j, err, sizeof err)) {
                fprintf(stderr, "stdin:%ld: %s\n", lineno, err);
                bad++;
            } else if ((wrc = lf_writer_append(w, &ri.rec)) != LF_OK) {
                fprintf(stderr, "stdin:%ld: append failed: %s (%s)\n", lineno,
                        lf_strerror(wrc), lf_writer_errmsg(w));
                bad++;
            } else {
                appended++;
            }
            json_decref(j);
            record_input_free(&ri);
        }
        free(line);
        rc = bad ? 1 : 0;
    } else {
        rc = 0;
        for (long k = 0; k < e.count; k++) {
            if ((wrc = lf_writer_append(w, &e.ri.rec)) != LF_OK) {
                fprintf(stderr, "emit: append failed: %s (%s)\n",
                        lf_strerror(wrc), lf_writer_errmsg(w));
                rc = 1;
                break;
            }
            appended++;
        }
    }
    wrc = lf_writer_close(w);
    w = NULL;
    if (wrc != LF_OK) {
        fprintf(stderr, "emit: close failed: %s\n", lf_strerror(wrc));
        rc = 1;
    }
    fprintf(stderr, "emit: %ld record%s appended to %s\n", appended,
            appended == 1 ? "" : "s", spool);
out:
    if (w)
        lf_writer_close(w);
    record_input_free(&e.ri);
    agent_conf_free(conf);
    sink_registry_free(reg);
    return rc;
}

/* ---- dump ----------------------------------------------------------- */

typedef struct dump_totals {
    unsigned long long records, damaged, damaged_bytes, undecodable, purged;
} dump_totals;

static void json_str(FILE *out, const char *s)
{
    /* json_string() fails on invalid UTF-8; names we print are ASCII. */
    json_t *v = json_string(s ? s : "");
    char *j = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    fputs(j ? j : "\"\"", out);
    free(j);
    json_decref(v);
}

static void print_record_json(FILE *out, const uint8_t *p, size_t len,
                              dump_totals *t)
{
    Logferry__V1__InvocationRecord *r =
        logferry__v1__invocation_record__unpack(NULL, len, p);
    if (!r) {
        fputs("null,\"error\":\"undecodable record\"", out);
        t->undecodable++;
        return;
    }
    char *buf = NULL;
    size_t cap = 0;
    if (rjson_render_alloc(r, &buf, &cap, 64u * 1024 * 1024) == (size_t)-1)
        fputs("null", out);
    else
        fputs(buf, out);
    free(buf);
    logferry__v1__invocation_record__free_unpacked(r, NULL);
}

static int dump_segment(const char *path, const char *name, int dead,
                        dump_totals *t)
{
    spool_reader *rd;
    char err[512];
    if (spool_reader_open(path, &rd, err, sizeof err) != 0) {
        fprintf(stderr, "dump: %s\n", err);
        return -1;
    }
    int finishing = 0;
    /* The header says what the frames hold; --dead-letter only picks the
       directory. */
    dead = (spool_reader_header(rd)->flags & SPOOL_FLAG_DEAD_LETTER) != 0;
    for (;;) {
        spool_read_event f;
        spool_read_result st =
            finishing ? spool_reader_finish(rd, &f) : spool_reader_next(rd, &f);
        if (st == SPOOL_READ_FRAME) {
            printf("{\"segment\":");
            json_str(stdout, name);
            printf(",\"offset\":%llu,", (unsigned long long)f.offset);
            t->records++;
            if (!dead) {
                printf("\"record\":");
                print_record_json(stdout, f.payload, f.length, t);
            } else {
                Logferry__V1__DeadLetter *d = logferry__v1__dead_letter__unpack(
                    NULL, f.length, f.payload);
                if (!d) {
                    printf("\"record\":null,\"error\":\"undecodable dead "
                           "letter\"");
                    t->undecodable++;
                } else {
                    printf("\"sink\":");
                    json_str(stdout, d->sink);
                    printf(",\"reason\":");
                    json_str(stdout, d->reason);
                    printf(",\"dead_lettered_ns\":%lld,\"source_segment\":",
                           (long long)d->time_ns);
                    json_str(stdout, d->segment);
                    printf(",\"source_offset\":%llu,\"record\":",
                           (unsigned long long)d->offset);
                    print_record_json(stdout, d->record.data, d->record.len, t);
                    logferry__v1__dead_letter__free_unpacked(d, NULL);
                }
            }
            printf("}\n");
            continue;
        }
        if (st == SPOOL_READ_DAMAGE) {
            printf("{\"segment\":");
            json_str(stdout, name);
            printf(
                ",\"damage\":{\"offset\":%llu,\"length\":%llu,\"tail\":%s}}\n",
                (unsigned long long)f.offset, (unsigned long long)f.length,
                finishing ? "true" : "false");
            fprintf(stderr,
                    "dump: %s: corrupt region at offset %llu, %llu bytes "
                    "skipped\n",
                    path, (unsigned long long)f.offset,
                    (unsigned long long)f.length);
            t->damaged++;
            t->damaged_bytes += f.length;
            continue;
        }
        if (st == SPOOL_READ_ERROR) {
            fprintf(stderr, "dump: %s: %s\n", path, spool_reader_errmsg(rd));
            spool_reader_close(rd);
            return -1;
        }
        /* END. A live writer may still complete the tail: that is not
           damage. Once the writer is gone, finish() reports a torn tail. */
        if (finishing || spool_reader_is_live(rd) != 0)
            break;
        finishing = 1;
    }
    spool_reader_stats rs;
    spool_reader_get_stats(rd, &rs);
    t->purged += rs.purged_frames;
    spool_reader_close(rd);
    return 0;
}

/* Call fn for each segment of dir in creation order. */
static int for_each_segment(const char *dir,
                            int (*fn)(const char *path, const char *name,
                                      void *ud),
                            void *ud)
{
    size_t n;
    char err[512];
    char **names = spool_list_segments(dir, &n, err, sizeof err);
    if (!names) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        int pl = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (pl < 0 || (size_t)pl >= sizeof path) {
            fprintf(stderr, "%s/%s: path too long\n", dir, names[i]);
            rc = -1;
            continue;
        }
        if (fn(path, names[i], ud) != 0)
            rc = -1;
    }
    spool_watch_free_list(names, n);
    return rc;
}

typedef struct dump_ctx {
    int dead;
    dump_totals t;
} dump_ctx;

static int dump_one(const char *path, const char *name, void *ud)
{
    dump_ctx *c = ud;
    return dump_segment(path, name, c->dead, &c->t);
}

static int dump_extra(int c, const char *arg, void *ud)
{
    (void)arg;
    if (c == 'd') {
        ((dump_ctx *)ud)->dead = 1;
        return 0;
    }
    return -1;
}

static int cmd_dump(int argc, char **argv)
{
    struct option more[] = {{"dead-letter", no_argument, NULL, 'd'},
                            {NULL, 0, NULL, 0}};
    dump_ctx ctx = {0};
    common_opts o;
    int i = parse_opts(
        argc, argv,
        "usage: logferry dump [-c FILE] [--dead-letter] [SEGMENT|DIR...]\n"
        "Print each frame as one JSON line {segment, offset, record} and each "
        "damaged\nregion as {segment, damage:{offset, length}}; a summary goes "
        "to stderr.\nWithout operands: the spool of the configuration (with "
        "--dead-letter: its\ndead-letter spool). Exit status 1 if a file "
        "cannot be read, 3 if damage\nwas found.\n" COMMON_HELP
        "      --dead-letter   read dead-letter segments\n",
        NULL, more, dump_extra, &ctx, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    int rc = 0;
    if (i < argc) {
        for (; i < argc; i++) {
            struct stat st;
            if (stat(argv[i], &st) != 0) {
                fprintf(stderr, "dump: %s: %s\n", argv[i], strerror(errno));
                rc = 1;
                continue;
            }
            if (S_ISDIR(st.st_mode)) {
                if (for_each_segment(argv[i], dump_one, &ctx) != 0)
                    rc = 1;
            } else {
                const char *slash = strrchr(argv[i], '/');
                if (dump_segment(argv[i], slash ? slash + 1 : argv[i], ctx.dead,
                                 &ctx.t) != 0)
                    rc = 1;
            }
        }
    } else {
        sink_registry *reg = sink_registry_new();
        agent_conf *c = load_conf(&o, reg);
        if (!c) {
            sink_registry_free(reg);
            return 1;
        }
        char dir[PATH_MAX];
        if (ctx.dead)
            snprintf(dir, sizeof dir, "%s/deadletter",
                     conf_str(&c->top, TK_STATE_DIR));
        else
            snprintf(dir, sizeof dir, "%s", conf_str(&c->spool, PK_DIR));
        if (for_each_segment(dir, dump_one, &ctx) != 0)
            rc = 1;
        agent_conf_free(c);
        sink_registry_free(reg);
    }
    fflush(stdout);
    fprintf(stderr,
            "dump: %llu record%s, %llu damaged region%s (%llu bytes), "
            "%llu purged by retention rules%s\n",
            ctx.t.records, ctx.t.records == 1 ? "" : "s", ctx.t.damaged,
            ctx.t.damaged == 1 ? "" : "s", ctx.t.damaged_bytes, ctx.t.purged,
            ctx.t.undecodable ? ", some records undecodable" : "");
    if (rc == 0 && ctx.t.damaged)
        rc = 3;
    return rc;
}

/* ---- status --------------------------------------------------------- */

typedef struct backlog {
    const cursor *cur;
    unsigned long long records, bytes, segments;
    int64_t oldest_ns;
} backlog;

static int backlog_one(const char *path, const char *name, void *ud)
{
    backlog *b = ud;
    cursor_entry *e = cursor_find((cursor *)b->cur, name);
    if (e && e->done)
        return 0;
    spool_reader *rd;
    char err[512];
    if (spool_reader_open(path, &rd, err, sizeof err) != 0)
        return 0;
    if (e && e->offset)
        spool_reader_seek(rd, e->offset);
    int counted = 0;
    for (;;) {
        spool_read_event f;
        spool_read_result st = spool_reader_next(rd, &f);
        if (st == SPOOL_READ_FRAME) {
            if (!counted++) {
                Logferry__V1__InvocationRecord *r =
                    logferry__v1__invocation_record__unpack(NULL, f.length,
                                                            f.payload);
                if (r && r->event_time_ns &&
                    (b->oldest_ns == 0 || r->event_time_ns < b->oldest_ns))
                    b->oldest_ns = r->event_time_ns;
                if (r)
                    logferry__v1__invocation_record__free_unpacked(r, NULL);
            }
            b->records++;
            b->bytes += SPOOL_FRAME_HDR + f.length;
            continue;
        }
        if (st == SPOOL_READ_DAMAGE)
            continue;
        break;
    }
    if (counted)
        b->segments++;
    spool_reader_close(rd);
    return 0;
}

static void fmt_time(int64_t ns, char *out, size_t len)
{
    time_t s = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_status(int argc, char **argv)
{
    common_opts o;
    int i = parse_opts(
        argc, argv,
        "usage: logferry status [-c FILE]\n"
        "Per sink: cursor position, backlog in records and "
        "bytes, and the time of\nthe oldest undelivered "
        "record; then the counters of the running agent.\n" COMMON_HELP,
        NULL, NULL, NULL, NULL, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    sink_registry *reg = sink_registry_new();
    agent_conf *c = load_conf(&o, reg);
    if (!c) {
        sink_registry_free(reg);
        return 1;
    }
    const char *state = conf_str(&c->top, TK_STATE_DIR);
    const char *spool = conf_str(&c->spool, PK_DIR);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/status.json", state);
    json_t *live = json_load_file(path, 0, NULL);
    for (size_t k = 0; k < c->n_sinks; k++) {
        const char *name = c->sinks[k].name;
        cursor cur;
        char err[512];
        snprintf(path, sizeof path, "%s/cursors/%s.cursor", state, name);
        int crc = cursor_load(&cur, path, err, sizeof err);
        backlog b = {.cur = &cur};
        for_each_segment(spool, backlog_one, &b);
        printf("sink %s (%s)\n", name, c->sinks[k].type);
        if (crc != 0)
            printf("  cursor: unreadable: %s\n", err);
        else if (cur.n == 0)
            printf("  cursor: none yet (starts at the beginning of the "
                   "spool)\n");
        for (size_t j = 0; j < cur.n; j++)
            printf("  cursor: %s offset %llu%s\n", cur.e[j].segment,
                   (unsigned long long)cur.e[j].offset,
                   cur.e[j].done ? " (done)" : "");
        printf("  backlog: %llu records, %llu bytes in %llu segment%s\n",
               b.records, b.bytes, b.segments, b.segments == 1 ? "" : "s");
        if (b.oldest_ns) {
            char t[64];
            fmt_time(b.oldest_ns, t, sizeof t);
            printf("  oldest undelivered: %s\n", t);
        }
        json_t *counters =
            live ? json_object_get(json_object_get(live, "sinks"), name) : NULL;
        if (counters) {
            const char *key;
            json_t *v;
            printf("  counters:");
            json_object_foreach(counters, key, v)
                printf(" %s=%lld", key, (long long)json_integer_value(v));
            printf("\n");
        }
        cursor_free(&cur);
    }
    json_decref(live);
    agent_conf_free(c);
    sink_registry_free(reg);
    return 0;
}

/* ---- aws-check ------------------------------------------------------ */

typedef struct awscheck_opts {
    const char *region, *role_arn, *external_id, *session_name;
    long repeat, interval_ms;
} awscheck_opts;

static int awscheck_extra(int c, const char *arg, void *ud)
{
    awscheck_opts *o = ud;
    switch (c) {
    case 'r':
        o->region = arg;
        return 0;
    case 'R':
        o->role_arn = arg;
        return 0;
    case 'E':
        o->external_id = arg;
        return 0;
    case 'N':
        o->session_name = arg;
        return 0;
    case 'n':
        o->repeat = strtol(arg, NULL, 10);
        return o->repeat > 0 ? 0 : -1;
    case 'i':
        o->interval_ms = strtol(arg, NULL, 10);
        return 0;
    }
    return -1;
}

/* Ask STS who we are, with the credentials the agent would use: proves
 * the credential chain, the role and the ExternalId before a sink needs
 * them. */
static int cmd_aws_check(int argc, char **argv)
{
    struct option more[] = {{"region", required_argument, NULL, 'r'},
                            {"role-arn", required_argument, NULL, 'R'},
                            {"external-id", required_argument, NULL, 'E'},
                            {"session-name", required_argument, NULL, 'N'},
                            {"repeat", required_argument, NULL, 'n'},
                            {"interval-ms", required_argument, NULL, 'i'},
                            {NULL, 0, NULL, 0}};
    awscheck_opts ao = {.repeat = 1, .interval_ms = 1000};
    common_opts o;
    int i = parse_opts(
        argc, argv,
        "usage: logferry aws-check [-c FILE] [--region R] [--role-arn ARN "
        "[--external-id ID]]\n"
        "Resolve AWS credentials as the agent does (the aws group of the "
        "config, the\nstandard chain, then AssumeRole if --role-arn is "
        "given) and call STS\nGetCallerIdentity; print the account and ARN. "
        "Exit 0 if it worked, 1 if not.\n" COMMON_HELP
        "      --region R          STS region (default: aws.region, else "
        "us-east-1)\n"
        "      --role-arn ARN      assume this role\n"
        "      --external-id ID    with this ExternalId\n"
        "      --session-name N    role session name\n"
        "  -n, --repeat N          call N times (credential refresh "
        "checks)\n"
        "      --interval-ms MS    between calls (default 1000)\n",
        "n:", more, awscheck_extra, &ao, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    sink_registry *reg = sink_registry_new();
    agent_conf *c = load_conf(&o, reg);
    int rc = 1;
    aws_host *aws = NULL;
    sink_host host;
    int host_ok = 0;
    lf_aws_creds *cr = NULL;
    if (!c)
        goto out;
    log_set_level((lf_log_level)conf_int(&c->top, TK_LOG_LEVEL));
    char err[1024];
    if (!(aws = aws_host_create(&c->aws, err, sizeof err))) {
        fprintf(stderr, "aws-check: %s\n", err);
        goto out;
    }
    if (sink_host_init(&host, "cli", "aws-check") != 0)
        goto out;
    host_ok = 1;
    aws_host_attach(aws, &host.pub);
    const char *region = ao.region ? ao.region
                         : conf_str(&c->aws, AK_REGION)
                             ? conf_str(&c->aws, AK_REGION)
                             : "us-east-1";
    lf_aws_identity id = {.region = region,
                          .role_arn = ao.role_arn,
                          .external_id = ao.external_id,
                          .session_name = ao.session_name};
    cr = host.pub.aws_creds_acquire(&host.pub, &id, err, sizeof err);
    if (!cr) {
        fprintf(stderr, "aws-check: %s\n", err);
        goto out;
    }
    char url[512];
    if (awshttp_endpoint(conf_str(&c->aws, AK_STS_ENDPOINT), "sts", region, url,
                         sizeof url) != 0) {
        fprintf(stderr, "aws-check: bad region or endpoint\n");
        goto out;
    }
    static const char body[] = "Action=GetCallerIdentity&Version=2011-06-15";
    lf_aws_header hd[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    lf_aws_request req = {.method = "POST",
                          .url = url,
                          .service = "sts",
                          .headers = hd,
                          .n_headers = 1,
                          .body = body,
                          .body_len = sizeof body - 1};
    rc = 0;
    for (long k = 0; k < ao.repeat; k++) {
        if (k) {
            struct timespec ts = {ao.interval_ms / 1000,
                                  (ao.interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        lf_aws_result res;
        lf_aws_class cls = host.pub.aws_call(&host.pub, cr, &req, &res);
        if (cls == LF_AWS_OK) {
            static const char *const names[] = {"Account", "Arn"};
            char *vals[2] = {NULL, NULL};
            if (awshttp_xml_fields(res.body, res.body_len, names, vals, 2,
                                   2048) == 0 &&
                vals[0])
                printf("account=%s arn=%s\n", vals[0], vals[1] ? vals[1] : "");
            else {
                fprintf(stderr, "aws-check: unexpected STS answer\n");
                rc = 1;
            }
            free(vals[0]);
            free(vals[1]);
        } else {
            fprintf(stderr,
                    "aws-check: %s: http=%ld code=%s message=\"%s\" "
                    "request_id=%s\n",
                    cls == LF_AWS_RETRYABLE ? "retryable error"
                    : cls == LF_AWS_AUTH    ? "authentication failed"
                                            : "refused",
                    res.status, res.code, res.message, res.request_id);
            rc = 1;
        }
        host.pub.aws_result_free(&host.pub, &res);
        fflush(stdout);
    }
out:
    if (cr)
        host.pub.aws_creds_release(&host.pub, cr);
    if (host_ok)
        sink_host_destroy(&host);
    aws_host_destroy(aws);
    agent_conf_free(c);
    sink_registry_free(reg);
    return rc;
}

/* ---- replay --------------------------------------------------------- */

typedef struct replay_opts {
    const char *sink, *tenant;
    int64_t since_ns, until_ns;
    int dead, any_sink, bad;
} replay_opts;

/* "2026-11-25T13:00:00Z", with optional fraction, or "@<unix seconds>". */
static int parse_time_arg(const char *s, int64_t *out)
{
    if (s[0] == '@') {
        char *end;
        long long v = strtoll(s + 1, &end, 10);
        if (*end || end == s + 1)
            return -1;
        *out = v * 1000000000LL;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t frac = 0, scale = 100000000;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    if (strcmp(p, "Z") != 0)
        return -1;
    *out = (int64_t)timegm(&tm) * 1000000000LL + frac;
    return 0;
}

static int replay_extra(int c, const char *arg, void *ud)
{
    replay_opts *o = ud;
    switch (c) {
    case 's':
        o->sink = arg;
        return 0;
    case 't':
        o->tenant = arg;
        return 0;
    case 'd':
        o->dead = 1;
        return 0;
    case 'A':
        o->any_sink = 1;
        return 0;
    case 'S':
    case 'U':
        if (parse_time_arg(arg, c == 'S' ? &o->since_ns : &o->until_ns)) {
            fprintf(stderr,
                    "replay: bad time '%s' (use 2026-11-25T13:00:00Z "
                    "or @<unix seconds>)\n",
                    arg);
            o->bad = 1;
        }
        return 0;
    }
    return -1;
}

/* Re-deliver what the spool (or the dead-letter spool) still holds to one
 * sink, without touching the live cursors; may run beside the agent. */
static int cmd_replay(int argc, char **argv)
{
    struct option more[] = {{"sink", required_argument, NULL, 's'},
                            {"since", required_argument, NULL, 'S'},
                            {"until", required_argument, NULL, 'U'},
                            {"tenant", required_argument, NULL, 't'},
                            {"dead-letter", no_argument, NULL, 'd'},
                            {"any-sink", no_argument, NULL, 'A'},
                            {NULL, 0, NULL, 0}};
    replay_opts ro = {0};
    common_opts o;
    int i = parse_opts(
        argc, argv,
        "usage: logferry replay [-c FILE] --sink NAME [--since T] [--until T] "
        "[--tenant X]\n"
        "       logferry replay [-c FILE] --sink NAME --dead-letter "
        "[--any-sink]\n"
        "Re-deliver the records still in the spool to sink NAME (a "
        "destination that\nlost data, or a sink added later), filtered by "
        "event time [since, until) and\ntenant. Live cursors are not moved; "
        "it can run while the agent runs. Delivered\nsegments stay only for "
        "spool.keep_delivered. With --dead-letter, re-send the\nrecords NAME "
        "refused earlier (--any-sink: refused by any sink); dead-letter\n"
        "segments replayed to the end are removed, records refused again are\n"
        "dead-lettered again. T is 2026-11-25T13:00:00Z or @<unix "
        "seconds>.\n" COMMON_HELP,
        NULL, more, replay_extra, &ro, &o);
    if (i < 0 || ro.bad)
        return i == -1 ? 0 : 2;
    if (!ro.sink) {
        fprintf(stderr, "replay: --sink NAME is required\n");
        return 2;
    }
    sink_registry *reg = sink_registry_new();
    agent_conf *c = load_conf(&o, reg);
    int rc = 1;
    aws_host *aws = NULL;
    lf_writer *dead = NULL;
    spool_watch watch = {0};
    sink_runner *r = NULL;
    pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
    char err[1024], dir[PATH_MAX], dldir[PATH_MAX];
    if (!c)
        goto out;
    log_set_level((lf_log_level)conf_int(&c->top, TK_LOG_LEVEL));
    sink_conf *sc = NULL;
    for (size_t k = 0; k < c->n_sinks; k++)
        if (strcmp(c->sinks[k].name, ro.sink) == 0)
            sc = &c->sinks[k];
    if (!sc) {
        fprintf(stderr, "replay: no sink named '%s' in %s\n", ro.sink, o.conf);
        goto out;
    }
    const char *state = conf_str(&c->top, TK_STATE_DIR);
    snprintf(dldir, sizeof dldir, "%s/deadletter", state);
    snprintf(dir, sizeof dir, "%s",
             ro.dead ? dldir : conf_str(&c->spool, PK_DIR));
    int64_t started = host_now_ns();
    if (!(aws = aws_host_create(&c->aws, err, sizeof err)) ||
        spool_watch_open(&watch, dir, err, sizeof err) != 0) {
        fprintf(stderr, "replay: %s\n", err);
        goto out;
    }
    lf_writer_options wo;
    lf_writer_options_init(&wo);
    if (spool_writer_open_flags(dldir, &wo, SPOOL_FLAG_DEAD_LETTER, &dead, err,
                                sizeof err) != LF_OK) {
        fprintf(stderr, "replay: dead-letter spool %s: %s\n", dldir, err);
        goto out;
    }
    delivery_env env = {
        .watch = &watch,
        .spool_dir = dir,
        .state_dir = state,
        .dead_letters = dead,
        .dead_lock = &dead_lock,
        .rescan_ms = 200,
        .aws = aws,
        .routes = c->routes,
        .max_age_ms = conf_int(&c->spool, PK_MAX_AGE),
        .replay = 1,
        .since_ns = ro.since_ns,
        .until_ns = ro.until_ns,
        .tenant = ro.tenant,
        .dead_letter_source = ro.dead,
        .replay_any_sink = ro.any_sink,
        .replay_started_ns = started,
    };
    if (!(r = sink_runner_new(sc, &env, err, sizeof err)) ||
        sink_runner_start(r, err, sizeof err) != 0) {
        fprintf(stderr, "replay: %s\n", err);
        goto out;
    }
    sink_runner_join(r, INT64_MAX / 2000000);
    const char **done;
    size_t n_done = sink_runner_finished_segments(r, &done);
    unsigned removed = 0;
    if (ro.dead)
        for (size_t k = 0; k < n_done; k++) {
            char path[PATH_MAX + 80];
            snprintf(path, sizeof path, "%s/%s", dir, done[k]);
            removed += unlink(path) == 0;
        }
    fprintf(stderr, "replay: %llu record%s offered to sink %s",
            (unsigned long long)sink_runner_replayed(r),
            sink_runner_replayed(r) == 1 ? "" : "s", ro.sink);
    if (ro.dead)
        fprintf(stderr, "; %u dead-letter segment%s replayed and removed",
                removed, removed == 1 ? "" : "s");
    fprintf(stderr, "\n");
    rc = 0;
out:
    sink_runner_free(r);
    if (dead)
        lf_writer_close(dead);
    spool_watch_close(&watch);
    aws_host_destroy(aws);
    agent_conf_free(c);
    sink_registry_free(reg);
    return rc;
}

/* ---- config-doc ------------------------------------------------------ */

static int cmd_config_doc(int argc, char **argv)
{
    common_opts o;
    int i = parse_opts(argc, argv,
                       "usage: logferry config-doc [--module-dir DIR] "
                       "[TYPE...]\n"
                       "Print the configuration reference in Markdown, from "
                       "the key tables of the\nagent and of each sink module "
                       "(default: file stdout cloudwatch s3).\n" COMMON_HELP,
                       NULL, NULL, NULL, NULL, &o);
    if (i < 0)
        return i == -1 ? 0 : 2;
    const char *dir = o.module_dir ? o.module_dir : LF_DEFAULT_MODULE_DIR;
    printf("# Configuration reference\n\n"
           "Generated by `logferry config-doc` from the key tables in the "
           "code; do not edit by hand.\n\n"
           "The file is read with libconfig. Sizes take K, M, G, T suffixes "
           "(binary: 1K = 1024 bytes), with an optional B; durations take "
           "ms, s, m, h, d (a bare number is milliseconds). An unknown key, "
           "a wrong type or an out-of-range value is an error naming "
           "file:line; `logferry check` lists them all.\n\n");
    printf("## Top level\n\n");
    conf_doc_table(stdout, conf_top_keys, TK__COUNT);
    printf("\n## `spool`\n\n");
    conf_doc_table(stdout, conf_spool_keys, PK__COUNT);
    printf("\n## `delivery`\n\n");
    conf_doc_table(stdout, conf_delivery_keys, DK__COUNT);
    printf("\n## `aws`: credentials and HTTP for the AWS sinks\n\n");
    conf_doc_table(stdout, conf_aws_keys, AK__COUNT);
    printf("\n## `sinks`: keys of every sink\n\n");
    conf_doc_table(stdout, conf_sink_common_keys, SK__COUNT);
    printf("\n%s", route_doc());
    static char *defaults[] = {"file", "stdout", "cloudwatch", "s3", NULL};
    char **types = i < argc ? argv + i : defaults;
    int n = i < argc ? argc - i : 4;
    sink_registry *reg = sink_registry_new();
    int rc = 0;
    for (int k = 0; k < n; k++) {
        char err[1024];
        const lf_sink_ops *ops =
            sink_registry_get(reg, dir, types[k], err, sizeof err);
        if (!ops) {
            fprintf(stderr, "config-doc: %s\n", err);
            rc = 1;
            continue;
        }
        printf("\n## Sink `%s`\n\n%s\n\n", ops->name,
               ops->description ? ops->description : "");
        conf_doc_table(stdout, ops->config_keys, ops->n_config_keys);
    }
    sink_registry_free(reg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("logferry %s (sink ABI %u)\n", LF_VERSION, LF_SINK_ABI_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"run", cmd_run},
                {"check", cmd_check},
                {"emit", cmd_emit},
                {"dump", cmd_dump},
                {"status", cmd_status},
                {"config-doc", cmd_config_doc},
                {"aws-check", cmd_aws_check},
                {"replay", cmd_replay}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "logferry: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
