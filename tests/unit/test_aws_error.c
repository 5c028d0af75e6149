/*
 * test_aws_error.c - the one AWS error classification (awshttp_classify)
 * on canned answers: JSON 1.1 (Logs), XML (S3, STS / query protocol) and
 * moto's XML 403 for Logs authentication errors; transport failures;
 * Retry-After; the "refresh once" policy; the XML field helper.
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awshttp.h"

typedef struct ecase {
    const char *name;
    long status;
    const char *body;
    const char *error_type_hdr; /* x-amzn-ErrorType */
    const char *request_id_hdr;
    awshttp_class want;
    const char *want_code;
    const char *want_msg; /* prefix; NULL: don't check */
    const char *want_rid; /* NULL: don't check */
} ecase;

static const ecase cases[] = {
    {"logs throttling json", 400,
     "{\"__type\":\"com.amazonaws.logs#ThrottlingException\","
     "\"message\":\"Rate exceeded\"}",
     NULL, "rid-1", AWSHTTP_RETRYABLE, "ThrottlingException", "Rate exceeded",
     "rid-1"},
    {"logs bare __type json", 400,
     "{\"__type\":\"ServiceUnavailableException\",\"Message\":\"try\"}", NULL,
     NULL, AWSHTTP_RETRYABLE, "ServiceUnavailableException", "try", NULL},
    {"logs resource not found", 400,
     "{\"__type\":\"ResourceNotFoundException\",\"message\":\"The specified "
     "log group does not exist.\"}",
     NULL, NULL, AWSHTTP_PERMANENT, "ResourceNotFoundException",
     "The specified log group", NULL},
    {"logs invalid parameter", 400,
     "{\"__type\":\"InvalidParameterException\",\"message\":\"bad\"}", NULL,
     NULL, AWSHTTP_PERMANENT, "InvalidParameterException", "bad", NULL},
    {"logs access denied", 400,
     "{\"__type\":\"AccessDeniedException\",\"Message\":\"no\"}", NULL, NULL,
     AWSHTTP_PERMANENT, "AccessDeniedException", "no", NULL},
    {"logs expired token json", 400,
     "{\"__type\":\"ExpiredTokenException\",\"message\":\"The security token "
     "included in the request is expired\"}",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "ExpiredTokenException", NULL, NULL},
    {"logs unrecognized client json", 400,
     "{\"__type\":\"UnrecognizedClientException\",\"message\":\"The security "
     "token included in the request is invalid.\"}",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "UnrecognizedClientException", NULL,
     NULL},
    {"logs internal failure 500", 500,
     "{\"__type\":\"InternalFailure\",\"message\":\"oops\"}", NULL, NULL,
     AWSHTTP_RETRYABLE, "InternalFailure", NULL, NULL},
    {"json code in header only", 400, "{}",
     "ThrottlingException:http://internal.amazon.com/coral/", NULL,
     AWSHTTP_RETRYABLE, "ThrottlingException", NULL, NULL},
    {"moto xml 403 for logs", 403,
     "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors>"
     "<Error><Code>InvalidClientTokenId</Code><Message>The security token "
     "included in the request is invalid.</Message><Type>Sender</Type>"
     "</Error></Errors></ErrorResponse>",
     "InvalidClientTokenId", NULL, AWSHTTP_AUTH_EXPIRED, "InvalidClientTokenId",
     "The security token", NULL},
    {"moto xml signature mismatch", 403,
     "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors>"
     "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
     "signature we calculated does not match</Message><Type>Sender</Type>"
     "</Error></Errors></ErrorResponse>",
     NULL, NULL, AWSHTTP_PERMANENT, "SignatureDoesNotMatch", NULL, NULL},
    {"moto xml access denied", 403,
     "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: "
     "arn:aws:iam::123456789012:user/x is not authorized</Message></Error>"
     "</Errors></ErrorResponse>",
     NULL, NULL, AWSHTTP_PERMANENT, "AccessDenied", "User: arn", NULL},
    {"sts query throttling", 400,
     "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
     "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate "
     "exceeded</Message></Error><RequestId>abc-123</RequestId>"
     "</ErrorResponse>",
     NULL, NULL, AWSHTTP_RETRYABLE, "Throttling", "Rate exceeded", "abc-123"},
    {"sts expired token", 400,
     "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>"
     "<Message>The security token included in the request is expired"
     "</Message></Error><RequestId>r2</RequestId></ErrorResponse>",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "ExpiredToken", NULL, "r2"},
    {"sts access denied assume role", 403,
     "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
     "<Message>User is not authorized to perform: sts:AssumeRole</Message>"
     "</Error><RequestId>r3</RequestId></ErrorResponse>",
     NULL, NULL, AWSHTTP_PERMANENT, "AccessDenied", NULL, "r3"},
    {"sts validation", 400,
     "<ErrorResponse><Error><Code>ValidationError</Code><Message>1 "
     "validation error</Message></Error></ErrorResponse>",
     NULL, NULL, AWSHTTP_PERMANENT, "ValidationError", NULL, NULL},
    {"query RequestExpired", 400,
     "<Response><Errors><Error><Code>RequestExpired</Code><Message>Request "
     "has expired.</Message></Error></Errors><RequestID>e1</RequestID>"
     "</Response>",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "RequestExpired", NULL, "e1"},
    {"query RequestLimitExceeded", 503,
     "<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error>"
     "</Errors></Response>",
     NULL, NULL, AWSHTTP_RETRYABLE, "RequestLimitExceeded", NULL, NULL},
    {"s3 slowdown", 503,
     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
     "<Message>Please reduce your request rate.</Message><RequestId>s3rid"
     "</RequestId><HostId>h</HostId></Error>",
     NULL, NULL, AWSHTTP_RETRYABLE, "SlowDown", "Please reduce", "s3rid"},
    {"s3 access denied", 403,
     "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
     "<RequestId>x</RequestId></Error>",
     NULL, "hdr-rid", AWSHTTP_PERMANENT, "AccessDenied", "Access Denied",
     "hdr-rid"},
    {"s3 no such bucket", 404,
     "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does "
     "not exist</Message></Error>",
     NULL, NULL, AWSHTTP_PERMANENT, "NoSuchBucket", NULL, NULL},
    {"s3 expired token", 400,
     "<Error><Code>ExpiredToken</Code><Message>The provided token has "
     "expired.</Message></Error>",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "ExpiredToken", NULL, NULL},
    {"s3 invalid access key", 403,
     "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id "
     "you provided does not exist in our records.</Message></Error>",
     NULL, NULL, AWSHTTP_AUTH_EXPIRED, "InvalidAccessKeyId", NULL, NULL},
    {"s3 internal error", 500,
     "<Error><Code>InternalError</Code><Message>We encountered an internal "
     "error.</Message></Error>",
     NULL, NULL, AWSHTTP_RETRYABLE, "InternalError", NULL, NULL},
    {"s3 request timeout 400", 400,
     "<Error><Code>RequestTimeout</Code><Message>Your socket connection to "
     "the server was not read from or written to</Message></Error>",
     NULL, NULL, AWSHTTP_RETRYABLE, "RequestTimeout", NULL, NULL},
    {"bare 429", 429, "", NULL, NULL, AWSHTTP_RETRYABLE, "", NULL, NULL},
    {"bare 502 html", 502, "<html><body>Bad Gateway</body></html>", NULL, NULL,
     AWSHTTP_RETRYABLE, "", NULL, NULL},
    {"bare 503", 503, NULL, NULL, NULL, AWSHTTP_RETRYABLE, "", NULL, NULL},
    {"bare 408", 408, NULL, NULL, NULL, AWSHTTP_RETRYABLE, "", NULL, NULL},
    {"bare 400 garbage", 400, "not json or xml", NULL, NULL, AWSHTTP_PERMANENT,
     "", NULL, NULL},
    {"malformed json", 400, "{\"__type\": ", NULL, NULL, AWSHTTP_PERMANENT, "",
     NULL, NULL},
    {"malformed xml 500", 500, "<Error><Code>Thr", NULL, NULL,
     AWSHTTP_RETRYABLE, "", NULL, NULL},
    {"xml with doctype refused", 400,
     "<!DOCTYPE x [<!ENTITY a \"ThrottlingException\">]><Error><Code>&a;"
     "</Code></Error>",
     NULL, NULL, AWSHTTP_PERMANENT, "", NULL, NULL},
    {"301 redirect", 301,
     "<Error><Code>PermanentRedirect</Code><Message>use the other "
     "endpoint</Message></Error>",
     NULL, NULL, AWSHTTP_PERMANENT, "PermanentRedirect", NULL, NULL},
    {"200 ok", 200, "{}", NULL, "ok-rid", AWSHTTP_OK, "", NULL, "ok-rid"},
    {"204 ok", 204, NULL, NULL, NULL, AWSHTTP_OK, "", NULL, NULL},
};

START_TEST(test_table)
{
    const ecase *c = &cases[_i];
    awshttp_error e;
    awshttp_classify(c->status, c->body, c->body ? strlen(c->body) : 0,
                     c->error_type_hdr, c->request_id_hdr, NULL, 0, &e);
    ck_assert_msg(e.cls == c->want, "%s: class %s, want %s", c->name,
                  awshttp_class_name(e.cls), awshttp_class_name(c->want));
    ck_assert_msg(strcmp(e.code, c->want_code) == 0, "%s: code '%s' want '%s'",
                  c->name, e.code, c->want_code);
    ck_assert_int_eq(e.http_status, c->status);
    if (c->want_msg)
        ck_assert_msg(strncmp(e.message, c->want_msg, strlen(c->want_msg)) == 0,
                      "%s: message '%s'", c->name, e.message);
    if (c->want_rid)
        ck_assert_msg(strcmp(e.request_id, c->want_rid) == 0,
                      "%s: request id '%s'", c->name, e.request_id);
}
END_TEST

START_TEST(test_after_refresh)
{
    awshttp_error e;
    const char *b = "{\"__type\":\"InvalidClientTokenId\"}";
    awshttp_classify(403, b, strlen(b), NULL, NULL, NULL, 0, &e);
    ck_assert_int_eq(e.cls, AWSHTTP_AUTH_EXPIRED);
    awshttp_error_after_refresh(&e);
    ck_assert_int_eq(e.cls, AWSHTTP_PERMANENT);

    b = "{\"__type\":\"ExpiredTokenException\"}";
    awshttp_classify(400, b, strlen(b), NULL, NULL, NULL, 0, &e);
    awshttp_error_after_refresh(&e);
    ck_assert_int_eq(e.cls, AWSHTTP_RETRYABLE);

    b = "{\"__type\":\"ThrottlingException\"}";
    awshttp_classify(400, b, strlen(b), NULL, NULL, NULL, 0, &e);
    awshttp_error_after_refresh(&e);
    ck_assert_int_eq(e.cls, AWSHTTP_RETRYABLE);
    awshttp_error_after_refresh(NULL);
}
END_TEST

START_TEST(test_transport)
{
    static const struct {
        int cc;
        awshttp_class want;
        const char *code;
    } t[] = {
        {CURLE_OPERATION_TIMEDOUT, AWSHTTP_RETRYABLE, "Timeout"},
        {CURLE_COULDNT_CONNECT, AWSHTTP_RETRYABLE, "ConnectionFailed"},
        {CURLE_COULDNT_RESOLVE_HOST, AWSHTTP_RETRYABLE, "NameResolutionFailed"},
        {CURLE_RECV_ERROR, AWSHTTP_RETRYABLE, "ConnectionReset"},
        {CURLE_SEND_ERROR, AWSHTTP_RETRYABLE, "ConnectionReset"},
        {CURLE_GOT_NOTHING, AWSHTTP_RETRYABLE, "ConnectionReset"},
        {CURLE_PARTIAL_FILE, AWSHTTP_RETRYABLE, "PartialBody"},
        {CURLE_PEER_FAILED_VERIFICATION, AWSHTTP_PERMANENT,
         "TlsVerificationFailed"},
        {CURLE_SSL_CACERT_BADFILE, AWSHTTP_PERMANENT, "TlsVerificationFailed"},
        {CURLE_URL_MALFORMAT, AWSHTTP_PERMANENT, "InvalidRequest"},
        {CURLE_SSL_CONNECT_ERROR, AWSHTTP_RETRYABLE, "TransportError"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        awshttp_error e;
        awshttp_classify_transport(t[i].cc, 0, &e);
        ck_assert_int_eq(e.cls, t[i].want);
        ck_assert_str_eq(e.code, t[i].code);
        ck_assert_int_eq(e.curl_code, t[i].cc);
        ck_assert(e.message[0] != '\0');
    }
}
END_TEST

START_TEST(test_retry_after)
{
    ck_assert_uint_eq(awshttp_parse_retry_after("3", 0), 3000);
    ck_assert_uint_eq(awshttp_parse_retry_after(" 0 ", 0), 0);
    ck_assert_uint_eq(awshttp_parse_retry_after("999999", 0), 20u * 60000u);
    ck_assert_uint_eq(awshttp_parse_retry_after("3x", 0), 0);
    ck_assert_uint_eq(awshttp_parse_retry_after(NULL, 0), 0);
    ck_assert_uint_eq(awshttp_parse_retry_after("", 0), 0);
    /* Sun, 30 Aug 2015 12:36:10 GMT is now + 10 s */
    ck_assert_uint_eq(
        awshttp_parse_retry_after("Sun, 30 Aug 2015 12:36:10 GMT", 1440938160),
        10000);
    ck_assert_uint_eq(
        awshttp_parse_retry_after("Sun, 30 Aug 2015 12:35:10 GMT", 1440938160),
        0);
    awshttp_error e;
    awshttp_classify(503, NULL, 0, NULL, NULL, "2", 0, &e);
    ck_assert_int_eq(e.cls, AWSHTTP_RETRYABLE);
    ck_assert_uint_eq(e.retry_after_ms, 2000);
}
END_TEST

START_TEST(test_xml_fields)
{
    const char *doc =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/"
        "2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIAX"
        "</AccessKeyId><SecretAccessKey>s/e+c</SecretAccessKey><SessionToken>"
        "tok&amp;en</SessionToken><Expiration>2015-08-30T13:36:00Z"
        "</Expiration></Credentials></AssumeRoleResult>"
        "</AssumeRoleResponse>";
    const char *names[] = {"AccessKeyId", "SecretAccessKey", "SessionToken",
                           "Expiration", "Missing"};
    char *v[5];
    ck_assert_int_eq(awshttp_xml_fields(doc, strlen(doc), names, v, 5, 4096),
                     0);
    ck_assert_str_eq(v[0], "ASIAX");
    ck_assert_str_eq(v[1], "s/e+c");
    ck_assert_str_eq(v[2], "tok&en");
    ck_assert_str_eq(v[3], "2015-08-30T13:36:00Z");
    ck_assert_ptr_null(v[4]);
    for (int i = 0; i < 5; i++)
        free(v[i]);
    /* cap */
    ck_assert_int_eq(awshttp_xml_fields(doc, strlen(doc), names, v, 5, 4),
                     -E2BIG);
    ck_assert_ptr_null(v[0]);
    /* not XML */
    ck_assert_int_eq(awshttp_xml_fields("nope", 4, names, v, 5, 4096), -EINVAL);
}
END_TEST

START_TEST(test_endpoint)
{
    char b[128];
    ck_assert_int_eq(awshttp_endpoint(NULL, "sts", "eu-west-1", b, sizeof b),
                     0);
    ck_assert_str_eq(b, "https://sts.eu-west-1.amazonaws.com");
    ck_assert_int_eq(awshttp_endpoint("", "logs", "cn-north-1", b, sizeof b),
                     0);
    ck_assert_str_eq(b, "https://logs.cn-north-1.amazonaws.com.cn");
    ck_assert_int_eq(
        awshttp_endpoint("http://127.0.0.1:5000/", "logs", "x", b, sizeof b),
        0);
    ck_assert_str_eq(b, "http://127.0.0.1:5000");
    ck_assert_int_eq(awshttp_endpoint(NULL, "sts", "eu/../x", b, sizeof b), -1);
    ck_assert_int_eq(awshttp_endpoint(NULL, "sts", "us-east-1", b, 10), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("aws_error");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_table, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_after_refresh);
    tcase_add_test(tc, test_transport);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_xml_fields);
    tcase_add_test(tc, test_endpoint);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
