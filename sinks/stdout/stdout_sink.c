/*
 * stdout_sink.c - the "stdout" sink: records as NDJSON on standard output.
 *
 * Place in the pipeline: for containers whose runtime collects stdout, and
 * for trying the agent out. Each record is host->to_json() plus "\n",
 * written with write(2) on fd 1 in pieces of whole lines (no stdio, so
 * nothing waits in a buffer after deliver() returns).
 *
 * Answers: OK once the batch is written (stdout cannot be synced, so
 * "durable" means "handed to the reader"). RETRY when stdout would block
 * before any of the batch went out (EAGAIN on a non-blocking pipe), and on
 * errors such as EPIPE (the reader went away; the core keeps the records
 * and backs off). Never FAIL: no record is wrong for stdout.
 *
 * A batch half written when stdout blocks is finished rather than retried,
 * waiting up to STDOUT_STALL_MS for the reader, since retrying would tear a
 * line and duplicate the first half.
 *
 * The agent must ignore SIGPIPE, or a closed stdout kills it before this
 * sink sees EPIPE; create() warns when it does not.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <logferry/sink.h>

/* Bytes per write(); also the batch buffer, unless one line needs more. */
#define STDOUT_PIECE (1u * 1024u * 1024u)
/* Longest line we build (see file_sink.c for the bound on a record). */
#define STDOUT_LINE_MAX (32u * 1024u * 1024u)
/* How long a half-written batch waits for a stalled reader. */
#define STDOUT_STALL_MS 30000

typedef struct stdout_sink {
    const lf_host *host;
    int fd;
    char *buf;
    size_t cap;
    unsigned failed_batches; /* in a row, to log a streak once */
} stdout_sink;

/* Write buf[0..len). *sent counts the bytes of the batch written so far.
 * Returns 0, or -1 with errno set (EAGAIN only when nothing of the batch
 * was written yet). */
static int write_piece(stdout_sink *ss, const char *buf, size_t len,
                       uint64_t *sent)
{
    int64_t deadline = 0;
    while (len > 0) {
        ssize_t n = write(ss->fd, buf, len);
        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
            *sent += (uint64_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || *sent == 0)
            return -1;
        /* Mid-batch: wait for the reader rather than tear a line. */
        int64_t now = ss->host->mono_ns(ss->host);
        if (deadline == 0)
            deadline = now + (int64_t)STDOUT_STALL_MS * 1000000;
        if (now >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = ss->fd, .events = POLLOUT};
        int wait_ms = (int)((deadline - now) / 1000000) + 1;
        if (poll(&p, 1, wait_ms < 1000 ? wait_ms : 1000) < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

static int buf_reserve(stdout_sink *ss, size_t need)
{
    if (need <= ss->cap)
        return 0;
    char *nb = realloc(ss->buf, need);
    if (!nb)
        return -1;
    ss->buf = nb;
    ss->cap = need;
    return 0;
}

static lf_deliver_status stdout_failed(stdout_sink *ss, int e, uint64_t sent)
{
    const lf_host *h = ss->host;
    if (e == EAGAIN || e == EWOULDBLOCK) {
        h->counter_add(h, "would_block", 1);
        return LF_DELIVER_RETRY; /* nothing written; not worth a log line */
    }
    /* First failure of a streak at ERROR, repeats at DEBUG. */
    h->log(h, ss->failed_batches ? LF_LOG_DEBUG : LF_LOG_ERROR,
           "write to standard output: %s%s; will retry", strerror(e),
           sent ? " (part of the batch was written and will repeat)" : "");
    ss->failed_batches++;
    h->counter_add(h, "write_errors", 1);
    return LF_DELIVER_RETRY;
}

static lf_deliver_status stdout_deliver(void *inst, lf_batch *batch)
{
    stdout_sink *ss = inst;
    const lf_host *h = ss->host;
    size_t len = 0, failed = 0, i = 0;
    uint64_t sent = 0;

    while (i < batch->count) {
        size_t n =
            h->to_json(h, &batch->records[i], ss->buf + len, ss->cap - len);
        if (n < ss->cap - len) { /* fits; the NUL's byte takes the '\n' */
            ss->buf[len + n] = '\n';
            len += n + 1;
            i++;
            if (len < STDOUT_PIECE)
                continue;
        } else if (len == 0) {
            if (n < STDOUT_LINE_MAX && buf_reserve(ss, n + 1) == 0)
                continue;
            batch->verdict[i++] = LF_REC_FAIL;
            batch->fail_reason = "JSON line too long for the stdout sink";
            failed++;
            continue;
        }
        if (write_piece(ss, ss->buf, len, &sent) != 0)
            return stdout_failed(ss, errno, sent);
        len = 0;
    }
    if (len > 0 && write_piece(ss, ss->buf, len, &sent) != 0)
        return stdout_failed(ss, errno, sent);

    if (ss->cap > STDOUT_PIECE) {
        char *nb = realloc(ss->buf, STDOUT_PIECE);
        if (nb) {
            ss->buf = nb;
            ss->cap = STDOUT_PIECE;
        }
    }
    if (ss->failed_batches) {
        h->log(h, LF_LOG_INFO,
               "writing to standard output again after %u failed batches",
               ss->failed_batches);
        ss->failed_batches = 0;
    }
    h->counter_add(h, "bytes", sent);
    h->counter_add(h, "records", batch->count - failed);
    if (failed) {
        h->counter_add(h, "records_refused", failed);
        return LF_DELIVER_PARTIAL;
    }
    return LF_DELIVER_OK;
}

static void stdout_destroy(void *inst)
{
    stdout_sink *ss = inst;
    if (!ss)
        return;
    free(ss->buf);
    free(ss);
}

/* Borrows host; the instance and its buffer are freed by
 * stdout_destroy(). The sink has no config keys. */
static int stdout_create(const lf_conf_value *values, const lf_host *host,
                         void **out, char *err, size_t errlen)
{
    (void)values;
    stdout_sink *ss = calloc(1, sizeof *ss);
    if (!ss)
        goto nomem;
    ss->host = host;
    ss->fd = STDOUT_FILENO;
    ss->buf = malloc(STDOUT_PIECE);
    if (!ss->buf)
        goto nomem;
    ss->cap = STDOUT_PIECE;

    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        host->log(host, LF_LOG_WARN,
                  "SIGPIPE is not ignored: if the reader of standard output "
                  "goes away the agent will be killed");
    *out = ss;
    return 0;

nomem:
    snprintf(err, errlen, "out of memory");
    stdout_destroy(ss);
    return -1;
}

static const lf_sink_ops ops = {
    .abi_version = LF_SINK_ABI_VERSION,
    .struct_size = sizeof(lf_sink_ops),
    .name = "stdout",
    .description = "Writes records as JSON lines to standard output.",
    .config_keys = NULL,
    .n_config_keys = 0,
    .create = stdout_create,
    .deliver = stdout_deliver,
    .flush = NULL,
    .destroy = stdout_destroy,
};

LF_SINK_MODULE(ops)
