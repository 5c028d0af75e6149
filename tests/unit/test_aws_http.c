/*
 * test_aws_http.c - awshttp against a canned HTTP server on 127.0.0.1
 * (test_aws_server.h): keep-alive reuse per endpoint, signing on the
 * wire, error answers, the response cap, timeouts, resets, refused
 * connections, Retry-After, and what the module logs.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awshttp.h"
#include "aws/sigv4.h"
#include "test_aws_server.h"

/* ---- canned answers chosen by the request path ---------------------- */

static void handler(test_server *s, const ts_req *r, ts_resp *o)
{
    (void)s;
    const char *t = r->target;
    if (strncmp(t, "/ok", 3) == 0) {
        snprintf(o->headers, sizeof o->headers,
                 "x-amzn-RequestId: rid-ok\r\nContent-Type: "
                 "application/json\r\n");
        snprintf(o->body, sizeof o->body, "{\"echo\":%zu}", r->body_len);
    } else if (strncmp(t, "/throttle", 9) == 0) {
        o->status = 400;
        snprintf(o->headers, sizeof o->headers,
                 "x-amzn-RequestId: rid-th\r\nRetry-After: 2\r\n");
        snprintf(o->body, sizeof o->body,
                 "{\"__type\":\"com.amazonaws.logs#ThrottlingException\","
                 "\"message\":\"Rate exceeded\"}");
    } else if (strncmp(t, "/xml403", 7) == 0) {
        o->status = 403;
        snprintf(o->headers, sizeof o->headers,
                 "X-Amzn-ErrorType: InvalidClientTokenId\r\n");
        snprintf(o->body, sizeof o->body,
                 "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse>"
                 "<Errors><Error><Code>InvalidClientTokenId</Code><Message>"
                 "The security token included in the request is invalid."
                 "</Message><Type>Sender</Type></Error></Errors>"
                 "</ErrorResponse>");
    } else if (strncmp(t, "/big", 4) == 0) {
        memset(o->body, 'x', 5000);
        o->body_len = 5000;
    } else if (strncmp(t, "/slow", 5) == 0) {
        o->delay_ms = 1500;
    } else if (strncmp(t, "/midbody", 8) == 0) {
        snprintf(o->body, sizeof o->body, "0123456789abcdefghij");
        o->action = TS_CLOSE_MID_BODY;
    } else if (strncmp(t, "/noanswer", 9) == 0) {
        o->action = TS_CLOSE_NO_ANSWER;
    } else if (strncmp(t, "/503", 4) == 0) {
        o->status = 503;
        snprintf(o->headers, sizeof o->headers, "Retry-After: 7\r\n");
    } else {
        o->status = 404;
    }
}

static test_server srv;
static char logbuf[16384];
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

static void capture_log(void *ud, lf_log_level lvl, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&logmu);
    size_t l = strlen(logbuf);
    snprintf(logbuf + l, sizeof logbuf - l, "[%d] %s\n", (int)lvl, msg);
    pthread_mutex_unlock(&logmu);
}

static awshttp_client *mkclient(size_t cap)
{
    awshttp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_response_bytes = cap;
    cfg.log = capture_log;
    cfg.total_timeout_ms = 5000;
    char err[128];
    awshttp_client *c = awshttp_client_create(&cfg, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static void setup(void)
{
    ck_assert_int_eq(ts_start(&srv, handler, NULL), 0);
    logbuf[0] = '\0';
}

static void teardown(void)
{
    ts_stop(&srv);
}

static awshttp_class get(awshttp_client *c, const char *path,
                         awshttp_response *resp, awshttp_error *err)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.url = url;
    rq.now = 1440938160;
    return awshttp_perform(c, &rq, resp, err);
}

START_TEST(test_keepalive_reuse)
{
    awshttp_client *c = mkclient(0);
    for (int i = 0; i < 5; i++) {
        awshttp_response r;
        awshttp_error e;
        ck_assert_int_eq(get(c, "/ok", &r, &e), AWSHTTP_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "{\"echo\":0}");
        ck_assert_str_eq(e.request_id, "rid-ok");
        char v[64];
        ck_assert_int_gt(
            awshttp_response_header(&r, "content-type", v, sizeof v), 0);
        ck_assert_str_eq(v, "application/json");
        ck_assert_int_eq(awshttp_response_header(&r, "nope", v, sizeof v), -1);
        awshttp_response_free(&r);
    }
    ck_assert_int_eq(ts_count(&srv, 0), 5);
    ck_assert_int_eq(ts_count(&srv, 1), 1); /* one connection, reused */
    awshttp_client_destroy(c);
    awshttp_client_destroy(NULL);
}
END_TEST

START_TEST(test_signed_on_the_wire)
{
    awshttp_client *c = mkclient(0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/a%%20b?x=1&a=2",
             srv.port);
    const char *body = "{\"logGroupName\":\"g\"}";
    sigv4_header hs[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Amz-Target", "Logs_20140328.PutLogEvents"},
    };
    sigv4_creds cr = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                      "SESSIONTOKEN"};
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "POST";
    rq.url = url;
    rq.headers = hs;
    rq.n_headers = 2;
    rq.body = body;
    rq.body_len = strlen(body);
    rq.creds = &cr;
    rq.region = "us-east-1";
    rq.service = "logs";
    rq.now = 1440938160;
    awshttp_response r;
    awshttp_error e;
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_OK);
    ck_assert_str_eq(r.body, "{\"echo\":20}");
    awshttp_response_free(&r);

    ts_req got = ts_request(&srv, 0);
    ck_assert_str_eq(got.method, "POST");
    ck_assert_str_eq(got.target, "/ok/a%20b?x=1&a=2");
    char v[1024], host[64];
    ck_assert_int_gt(ts_header(&got, "X-Amz-Date", v, sizeof v), 0);
    ck_assert_str_eq(v, "20150830T123600Z");
    ck_assert_int_gt(ts_header(&got, "X-Amz-Security-Token", v, sizeof v), 0);
    ck_assert_str_eq(v, "SESSIONTOKEN");
    ck_assert_int_eq(ts_header(&got, "Expect", v, sizeof v), -1);
    ck_assert_int_eq(ts_header(&got, "Accept", v, sizeof v), -1);
    ck_assert_int_gt(ts_header(&got, "Content-Type", v, sizeof v), 0);
    ck_assert_str_eq(v, "application/x-amz-json-1.1");
    ck_assert_int_gt(ts_header(&got, "Host", host, sizeof host), 0);

    /* Re-sign what arrived: the server-side view must verify. */
    sigv4_header sh[] = {{"Host", host}, hs[0], hs[1]};
    sigv4_request sr = {"POST", "/ok/a%20b", "x=1&a=2",   sh,
                        3,      body,        strlen(body)};
    sigv4_options so = {"us-east-1", "logs", 1440938160, 0, NULL, 0};
    sigv4_result res;
    ck_assert_int_eq(sigv4_sign(&sr, &cr, &so, NULL, &res), 0);
    ck_assert_int_gt(ts_header(&got, "Authorization", v, sizeof v), 0);
    ck_assert_str_eq(v, res.authorization);
    sigv4_result_free(&res);

    /* Nothing secret in the log; the query is not logged either. */
    ck_assert_ptr_null(strstr(logbuf, "wJalr"));
    ck_assert_ptr_null(strstr(logbuf, "SESSIONTOKEN"));
    ck_assert_ptr_null(strstr(logbuf, "x=1"));
    ck_assert_ptr_nonnull(strstr(logbuf, "POST http://127.0.0.1:"));
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_put_head_delete)
{
    awshttp_client *c = mkclient(0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/key", srv.port);
    const char bin[] = {0, 1, 2, 0, 3};
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.url = url;
    awshttp_response r;
    awshttp_error e;
    rq.method = "PUT";
    rq.body = bin;
    rq.body_len = sizeof bin;
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_OK);
    ck_assert_str_eq(r.body, "{\"echo\":5}");
    awshttp_response_free(&r);
    ts_req got = ts_request(&srv, 0);
    ck_assert_str_eq(got.method, "PUT");
    char v[64];
    /* curl's default form type must not sneak in */
    ck_assert_int_eq(ts_header(&got, "Content-Type", v, sizeof v), -1);

    rq.method = "DELETE";
    rq.body = NULL;
    rq.body_len = 0;
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_OK);
    awshttp_response_free(&r);
    ck_assert_str_eq(ts_request(&srv, 1).method, "DELETE");
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_error_answers)
{
    awshttp_client *c = mkclient(0);
    awshttp_response r;
    awshttp_error e;
    ck_assert_int_eq(get(c, "/throttle", &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_str_eq(e.code, "ThrottlingException");
    ck_assert_str_eq(e.message, "Rate exceeded");
    ck_assert_str_eq(e.request_id, "rid-th");
    ck_assert_uint_eq(e.retry_after_ms, 2000);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(r.body); /* error body handed over */
    awshttp_response_free(&r);

    ck_assert_int_eq(get(c, "/xml403", &r, &e), AWSHTTP_AUTH_EXPIRED);
    ck_assert_str_eq(e.code, "InvalidClientTokenId");
    ck_assert_int_eq(e.http_status, 403);
    awshttp_response_free(&r);

    ck_assert_int_eq(get(c, "/503", &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_uint_eq(e.retry_after_ms, 7000);
    awshttp_response_free(&r);

    ck_assert_int_eq(get(c, "/missing", &r, &e), AWSHTTP_PERMANENT);
    ck_assert_int_eq(e.http_status, 404);
    awshttp_response_free(&r);
    /* errors do not cost the connection */
    ck_assert_int_eq(ts_count(&srv, 1), 1);
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_body_cap)
{
    awshttp_client *c = mkclient(1000);
    awshttp_response r;
    awshttp_error e;
    ck_assert_int_eq(get(c, "/big", &r, &e), AWSHTTP_PERMANENT);
    ck_assert_str_eq(e.code, "ResponseTooLarge");
    ck_assert_ptr_null(r.body);
    awshttp_response_free(&r);
    /* under the cap is fine */
    ck_assert_int_eq(get(c, "/ok", &r, &e), AWSHTTP_OK);
    awshttp_response_free(&r);
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_transport_failures)
{
    awshttp_client *c = mkclient(0);
    awshttp_response r;
    awshttp_error e;
    char url[256];
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.url = url;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", srv.port);
    rq.timeout_ms = 300;
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_str_eq(e.code, "Timeout");
    awshttp_response_free(&r);
    rq.timeout_ms = 0;

    ck_assert_int_eq(get(c, "/midbody", &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_str_eq(e.code, "PartialBody");
    awshttp_response_free(&r);

    ck_assert_int_eq(get(c, "/noanswer", &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_str_eq(e.code, "ConnectionReset");
    awshttp_response_free(&r);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", ts_dead_port());
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_RETRYABLE);
    ck_assert_str_eq(e.code, "ConnectionFailed");
    awshttp_response_free(&r);

    /* the client still works afterwards */
    ck_assert_int_eq(get(c, "/ok", &r, &e), AWSHTTP_OK);
    awshttp_response_free(&r);
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_bad_requests)
{
    awshttp_client *c = mkclient(0);
    awshttp_response r;
    awshttp_error e;
    awshttp_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.url = "ftp://127.0.0.1/x";
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_PERMANENT);
    ck_assert_str_eq(e.code, "InvalidRequest");
    rq.url = "not a url";
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_PERMANENT);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", srv.port);
    rq.url = url;
    sigv4_header inj[] = {{"X-A", "v\r\nX-Injected: 1"}};
    rq.headers = inj;
    rq.n_headers = 1;
    ck_assert_int_eq(awshttp_perform(c, &rq, &r, &e), AWSHTTP_PERMANENT);
    ck_assert_int_eq(ts_count(&srv, 0), 0);
    awshttp_client_destroy(c);
}
END_TEST

START_TEST(test_insecure_warns)
{
    awshttp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.insecure = 1;
    cfg.log = capture_log;
    char err[64];
    awshttp_client *c = awshttp_client_create(&cfg, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(strstr(logbuf, "TLS VERIFICATION IS OFF"));
    ck_assert_ptr_nonnull(strstr(logbuf, "[1]")); /* WARN */
    awshttp_client_destroy(c);
}
END_TEST

int main(void)
{
    /* The servers are on 127.0.0.1: keep any proxy of the CI machine
       out of the way (libcurl reads these variables). */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    Suite *s = suite_create("aws_http");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_keepalive_reuse);
    tcase_add_test(tc, test_signed_on_the_wire);
    tcase_add_test(tc, test_put_head_delete);
    tcase_add_test(tc, test_error_answers);
    tcase_add_test(tc, test_body_cap);
    tcase_add_test(tc, test_transport_failures);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_insecure_warns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
