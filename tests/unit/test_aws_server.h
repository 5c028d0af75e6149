/*
 * test_aws_server.h - a tiny HTTP/1.1 server on 127.0.0.1 for the AWS unit
 * tests (awshttp, credential providers). One thread, poll() over the
 * listening socket and up to TS_MAX_CONNS keep-alive connections; each
 * request goes to a handler the test supplies, which picks the canned
 * answer (status, headers, body) or a fault (delay, close mid-body, close
 * without answering). It records every request and counts connections,
 * so a test can check keep-alive reuse and what was sent.
 *
 * Header-only (static functions) because each test file is its own
 * program. Not a general HTTP server: requests need Content-Length (no
 * chunked bodies), which is what libcurl sends for our buffered bodies.
 */
#ifndef LOGFERRY_TEST_AWS_SERVER_H
#define LOGFERRY_TEST_AWS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS_MAX_CONNS 16
#define TS_MAX_REQ (256 * 1024)
#define TS_LOG 32

typedef struct ts_req {
    char method[16];
    char target[2048];
    char headers[8192]; /* raw header lines */
    char *body;         /* NUL-terminated */
    size_t body_len;
} ts_req;

enum { TS_OK = 0, TS_CLOSE_MID_BODY, TS_CLOSE_NO_ANSWER };

typedef struct ts_resp {
    int status;
    char headers[2048]; /* extra lines, each ending in \r\n */
    char body[64 * 1024];
    size_t body_len; /* 0: strlen(body) */
    int delay_ms;
    int action;
} ts_resp;

typedef struct test_server test_server;
typedef void (*ts_handler)(test_server *s, const ts_req *req, ts_resp *resp);

struct test_server {
    int lfd;
    int port;
    pthread_t th;
    atomic_int stop;
    ts_handler handler;
    void *ud;
    pthread_mutex_t mu;
    int n_conns; /* connections accepted */
    int n_reqs;
    ts_req log[TS_LOG]; /* last requests (bodies freed on stop) */
};

static __attribute__((unused)) int ts_header(const ts_req *r, const char *name,
                                             char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - p);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        if (!e)
            break;
        p = e + 2;
    }
    return -1;
}

static __attribute__((unused)) void ts_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Read one request from fd into *r. Returns 0, or -1 when the peer
 * closed or sent garbage. */
static int ts_read_req(int fd, ts_req *r)
{
    static __thread char buf[TS_MAX_REQ];
    size_t n = 0;
    char *end = NULL;
    memset(r, 0, sizeof *r);
    while (!end) {
        if (n + 1 >= sizeof buf)
            return -1;
        ssize_t got = recv(fd, buf + n, 1, 0); /* byte-wise: no overread */
        if (got <= 0)
            return -1;
        n += (size_t)got;
        buf[n] = '\0';
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            end = buf + n;
    }
    char *sp1 = strchr(buf, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    char *eol = strstr(buf, "\r\n");
    if (!sp1 || !sp2 || !eol)
        return -1;
    snprintf(r->method, sizeof r->method, "%.*s", (int)(sp1 - buf), buf);
    snprintf(r->target, sizeof r->target, "%.*s", (int)(sp2 - sp1 - 1),
             sp1 + 1);
    snprintf(r->headers, sizeof r->headers, "%.*s", (int)(end - (eol + 2) - 2),
             eol + 2);
    char cl[32];
    size_t blen = 0;
    if (ts_header(r, "Content-Length", cl, sizeof cl) > 0)
        blen = (size_t)strtoul(cl, NULL, 10);
    if (blen > TS_MAX_REQ)
        return -1;
    r->body = malloc(blen + 1);
    size_t k = 0;
    while (k < blen) {
        ssize_t got = recv(fd, r->body + k, blen - k, 0);
        if (got <= 0) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        k += (size_t)got;
    }
    r->body[blen] = '\0';
    r->body_len = blen;
    return 0;
}

static void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Serve one request on fd; returns -1 when the connection is done. */
static int ts_serve_one(test_server *s, int fd)
{
    ts_req r;
    if (ts_read_req(fd, &r) != 0)
        return -1;
    ts_resp *resp = calloc(1, sizeof *resp);
    resp->status = 200;
    s->handler(s, &r, resp);
    pthread_mutex_lock(&s->mu);
    ts_req *slot = &s->log[s->n_reqs % TS_LOG];
    free(slot->body);
    *slot = r;
    s->n_reqs++;
    pthread_mutex_unlock(&s->mu);
    if (resp->delay_ms)
        ts_sleep_ms(resp->delay_ms);
    int rc = 0;
    if (resp->action == TS_CLOSE_NO_ANSWER) {
        rc = -1;
    } else {
        size_t bl = resp->body_len ? resp->body_len : strlen(resp->body);
        char head[4096];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
                          resp->status, bl, resp->headers);
        ts_send_all(fd, head, (size_t)hn);
        if (resp->action == TS_CLOSE_MID_BODY) {
            ts_send_all(fd, resp->body, bl / 2);
            rc = -1;
        } else {
            ts_send_all(fd, resp->body, bl);
        }
    }
    free(resp);
    return rc;
}

static void *ts_main(void *arg)
{
    test_server *s = arg;
    struct pollfd fds[TS_MAX_CONNS + 1];
    int nconn = 0;
    fds[0].fd = s->lfd;
    fds[0].events = POLLIN;
    while (!atomic_load(&s->stop)) {
        int pr = poll(fds, (nfds_t)(nconn + 1), 50);
        if (pr <= 0)
            continue;
        if ((fds[0].revents & POLLIN) && nconn < TS_MAX_CONNS) {
            int c = accept(s->lfd, NULL, NULL);
            if (c >= 0) {
                fds[1 + nconn].fd = c;
                fds[1 + nconn].events = POLLIN;
                fds[1 + nconn].revents = 0;
                nconn++;
                pthread_mutex_lock(&s->mu);
                s->n_conns++;
                pthread_mutex_unlock(&s->mu);
            }
        }
        for (int i = 1; i <= nconn; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (ts_serve_one(s, fds[i].fd) != 0) {
                close(fds[i].fd);
                fds[i] = fds[nconn];
                nconn--;
                i--;
            }
        }
    }
    for (int i = 1; i <= nconn; i++)
        close(fds[i].fd);
    return NULL;
}

/* Start a server on 127.0.0.1, a free port. Returns 0 or -1. */
static __attribute__((unused)) int ts_start(test_server *s, ts_handler h,
                                            void *ud)
{
    memset(s, 0, sizeof *s);
    s->handler = h;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->lfd < 0)
        return -1;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->lfd, 16) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0) {
        close(s->lfd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, ts_main, s) == 0 ? 0 : -1;
}

static __attribute__((unused)) void ts_stop(test_server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    for (int i = 0; i < TS_LOG; i++)
        free(s->log[i].body);
    pthread_mutex_destroy(&s->mu);
}

/* Copy of the n-th request (0 = first), bodies not copied. */
static __attribute__((unused)) ts_req ts_request(test_server *s, int n)
{
    pthread_mutex_lock(&s->mu);
    ts_req r = s->log[n % TS_LOG];
    pthread_mutex_unlock(&s->mu);
    r.body = NULL;
    return r;
}

static __attribute__((unused)) int ts_count(test_server *s, int conns)
{
    pthread_mutex_lock(&s->mu);
    int v = conns ? s->n_conns : s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* A free port nobody listens on (bound then closed), for "refused". */
static __attribute__((unused)) int ts_dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

#endif
