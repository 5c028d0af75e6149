/*
 * test_aws_creds.c - credential providers, AssumeRole with ExternalId and
 * the shared cache, against a fake STS / IMDS / container endpoint on
 * 127.0.0.1 (test_aws_server.h). The environment is a table and the clock
 * and random source are injected: no test touches the process
 * environment or sleeps to make time pass.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "test_aws_server.h"

#define T0 1440938160
#define EXT_ID "ext-Secret-123"
#define DEV_AKID "AKIADEVDEVDEV0000001"
#define DEV_SECRET "devSECRETdevSECRETdevSECRET0001"
#define ROLE "arn:aws:iam::123456789012:role/logs-writer"

/* ---- injected environment, clock, randomness, log -------------------- */

typedef struct kv {
    const char *k, *v;
} kv;

static kv envtab[32];

static const char *tab_getenv(void *ud, const char *name)
{
    (void)ud;
    for (int i = 0; i < 32 && envtab[i].k; i++)
        if (strcmp(envtab[i].k, name) == 0)
            return envtab[i].v;
    return NULL;
}

static void env_set(const char *k, const char *v)
{
    for (int i = 0; i < 31; i++) {
        if (!envtab[i].k || strcmp(envtab[i].k, k) == 0) {
            envtab[i].k = k;
            envtab[i].v = v;
            return;
        }
    }
}

static const creds_env tabenv = {tab_getenv, NULL};
static _Atomic int64_t now_s = T0;

static int64_t test_clock(void *ud)
{
    (void)ud;
    return atomic_load(&now_s);
}

static uint64_t test_rand(void *ud)
{
    (void)ud;
    return 0; /* no jitter: refresh times are exact */
}

static char logbuf[65536];
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

static void capture_log(void *ud, lf_log_level lvl, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&logmu);
    size_t l = strlen(logbuf);
    snprintf(logbuf + l, sizeof logbuf - l, "[%d] %s\n", (int)lvl, msg);
    pthread_mutex_unlock(&logmu);
}

/* Every secret the tests hand out; none may reach a log line. */
static const char *const secrets[] = {
    DEV_SECRET,   EXT_ID,      "STSSECRET",  "STSTOKEN",
    "WEBIDTOKEN", "IMDSTOKEN", "IMDSSECRET", "CONTAINERAUTH",
    "CTRSECRET",  "ENVSECRET", NULL};

static void assert_no_secrets(const char *text, const char *what)
{
    for (int i = 0; secrets[i]; i++)
        ck_assert_msg(strstr(text, secrets[i]) == NULL,
                      "%s contains secret '%s':\n%s", what, secrets[i], text);
}

/* ---- fake AWS endpoints -------------------------------------------------- */

static atomic_int sts_calls, sts_fail, sts_delay_ms, sts_lifetime = 3600;
static atomic_int imds_puts, imds_revoke, ctr_calls;
static char imds_token_now[32] = "IMDSTOKEN1";
static char last_sts_body[8192], last_sts_auth[1024];
static char last_ctr_auth[256];
static test_server srv;

static void iso(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fake_aws(test_server *s, const ts_req *r, ts_resp *o)
{
    (void)s;
    char exp[32], h[512];
    iso(atomic_load(&now_s) + atomic_load(&sts_lifetime), exp, sizeof exp);
    if (strcmp(r->method, "POST") == 0 && strcmp(r->target, "/") == 0) {
        int n = atomic_fetch_add(&sts_calls, 1) + 1;
        snprintf(last_sts_body, sizeof last_sts_body, "%s", r->body);
        if (ts_header(r, "Authorization", last_sts_auth, sizeof last_sts_auth) <
            0)
            last_sts_auth[0] = '\0';
        o->delay_ms = atomic_load(&sts_delay_ms);
        int f = atomic_load(&sts_fail);
        if (f == 1) {
            o->status = 503;
            snprintf(o->body, sizeof o->body,
                     "<ErrorResponse><Error><Code>ServiceUnavailable</Code>"
                     "<Message>try later</Message></Error></ErrorResponse>");
            return;
        }
        if (f == 2) { /* a server that echoes the ExternalId back */
            o->status = 403;
            snprintf(o->body, sizeof o->body,
                     "<ErrorResponse><Error><Code>AccessDenied</Code>"
                     "<Message>not authorized with ExternalId %s</Message>"
                     "</Error></ErrorResponse>",
                     EXT_ID);
            return;
        }
        const char *act = strstr(r->body, "Action=AssumeRoleWithWebIdentity")
                              ? "AssumeRoleWithWebIdentity"
                              : "AssumeRole";
        snprintf(o->body, sizeof o->body,
                 "<%sResponse xmlns=\"https://sts.amazonaws.com/doc/"
                 "2011-06-15/\"><%sResult><Credentials><AccessKeyId>"
                 "ASIASTS%09d</AccessKeyId><SecretAccessKey>STSSECRET%d"
                 "</SecretAccessKey><SessionToken>STSTOKEN%d</SessionToken>"
                 "<Expiration>%s</Expiration></Credentials></%sResult>"
                 "</%sResponse>",
                 act, act, n, n, n, exp, act, act);
        return;
    }
    if (strcmp(r->method, "PUT") == 0 &&
        strcmp(r->target, "/latest/api/token") == 0) {
        if (ts_header(r, "X-aws-ec2-metadata-token-ttl-seconds", h, sizeof h) <
            0) {
            o->status = 400;
            return;
        }
        int n = atomic_fetch_add(&imds_puts, 1) + 1;
        snprintf(imds_token_now, sizeof imds_token_now, "IMDSTOKEN%d", n);
        snprintf(o->body, sizeof o->body, "%s", imds_token_now);
        return;
    }
    if (strncmp(r->target, "/latest/meta-data/iam/security-credentials/", 43) ==
        0) {
        if (ts_header(r, "X-aws-ec2-metadata-token", h, sizeof h) < 0 ||
            strcmp(h, imds_token_now) != 0 ||
            atomic_exchange(&imds_revoke, 0)) {
            o->status = 401;
            return;
        }
        if (r->target[43] == '\0')
            snprintf(o->body, sizeof o->body, "my-role\n");
        else
            snprintf(o->body, sizeof o->body,
                     "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\","
                     "\"AccessKeyId\":\"ASIAIMDS00000001\","
                     "\"SecretAccessKey\":\"IMDSSECRET1\",\"Token\":"
                     "\"IMDSTOKEN-SESSION\",\"Expiration\":\"%s\"}",
                     exp);
        return;
    }
    if (strncmp(r->target, "/creds", 6) == 0) {
        atomic_fetch_add(&ctr_calls, 1);
        if (ts_header(r, "Authorization", last_ctr_auth, sizeof last_ctr_auth) <
            0)
            last_ctr_auth[0] = '\0';
        snprintf(o->body, sizeof o->body,
                 "{\"AccessKeyId\":\"ASIACTR000000001\",\"SecretAccessKey\":"
                 "\"CTRSECRET1\",\"Token\":\"CTRTOKEN\",\"Expiration\":"
                 "\"%s\"}",
                 exp);
        return;
    }
    o->status = 404;
}

/* ---- fixture ----------------------------------------------------------------
 */

static awshttp_client *http;
static creds_ctx ctx;
static char endpoint[64], tmpdir[64];

static void setup(void)
{
    memset(envtab, 0, sizeof envtab);
    logbuf[0] = '\0';
    atomic_store(&now_s, T0);
    atomic_store(&sts_calls, 0);
    atomic_store(&sts_fail, 0);
    atomic_store(&sts_delay_ms, 0);
    atomic_store(&sts_lifetime, 3600);
    atomic_store(&imds_puts, 0);
    atomic_store(&imds_revoke, 0);
    atomic_store(&ctr_calls, 0);
    ck_assert_int_eq(ts_start(&srv, fake_aws, NULL), 0);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv.port);
    awshttp_config hc;
    memset(&hc, 0, sizeof hc);
    hc.log = capture_log;
    char err[128];
    http = awshttp_client_create(&hc, err, sizeof err);
    ck_assert_ptr_nonnull(http);
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &tabenv;
    ctx.http = http;
    ctx.now = test_clock;
    ctx.rand = test_rand;
    ctx.log = capture_log;
    ctx.region = "eu-west-1";
    ctx.sts_endpoint = endpoint;
    ctx.hostname = "test-host";
    ctx.home = "/nonexistent";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lf-creds-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    /* the IMDS default (169.254.169.254) must never be dialled here */
    env_set("AWS_EC2_METADATA_DISABLED", "true");
}

static void teardown(void)
{
    assert_no_secrets(logbuf, "log");
    awshttp_client_destroy(http);
    ts_stop(&srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_tmp(const char *name, const char *text)
{
    static char paths[8][128];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static int fetch(creds_provider *p, creds_value *v, awshttp_error *e)
{
    memset(v, 0, sizeof *v);
    return p->fetch(p, v, e);
}

/* ---- environment and static
 * -------------------------------------------------- */

START_TEST(test_env_provider)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    creds_provider *p = creds_env_provider(&ctx, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    env_set("AWS_ACCESS_KEY_ID", "AKIAENV0000000000001");
    p = creds_env_provider(&ctx, err, sizeof err);
    ck_assert_ptr_null(p); /* secret missing */
    ck_assert_ptr_nonnull(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    ck_assert_ptr_null(strstr(err, "AKIAENV"));

    env_set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
    env_set("AWS_SESSION_TOKEN", "ENVSECRET-TOKEN");
    p = creds_env_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "AKIAENV0000000000001");
    ck_assert_str_eq(v.secret_access_key, "ENVSECRET");
    ck_assert_str_eq(v.session_token, "ENVSECRET-TOKEN");
    ck_assert_int_eq(v.expiration, 0);
    assert_no_secrets(p->desc, "desc");
    assert_no_secrets(p->identity, "identity");
    creds_value_free(&v);
    creds_value_free(NULL);
    creds_provider_destroy(p);
    creds_provider_destroy(NULL);

    p = creds_static_provider(&ctx, "AKIASTATIC0000000001", "ENVSECRET2", NULL,
                              err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_ptr_null(v.session_token);
    creds_value_free(&v);
    creds_provider_destroy(p);
    ck_assert_ptr_null(
        creds_static_provider(&ctx, "AKIA", NULL, NULL, err, sizeof err));
}
END_TEST

/* ---- validation and redaction
 * -------------------------------------------------- */

START_TEST(test_validation)
{
    char err[256];
    static const char *good_arns[] = {
        ROLE, "arn:aws-cn:iam::123456789012:role/a",
        "arn:aws-us-gov:iam::123456789012:role/path/to/Name+=,.@-_1", NULL};
    static const char *bad_arns[] = {
        "arn:aws:iam::12345678901:role/a",
        "arn:aws:iam::123456789012:user/a",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:sts::123456789012:role/a",
        "arn:aws:iam:us-east-1:123456789012:role/a",
        "arn:aws:iam::123456789012:role/a b",
        "",
        NULL};
    for (int i = 0; good_arns[i]; i++)
        ck_assert_msg(creds_validate_role_arn(good_arns[i], err, sizeof err) ==
                          0,
                      "%s: %s", good_arns[i], err);
    for (int i = 0; bad_arns[i]; i++)
        ck_assert_msg(creds_validate_role_arn(bad_arns[i], err, sizeof err) ==
                          -1,
                      "accepted %s", bad_arns[i]);
    ck_assert_int_eq(creds_validate_role_arn(NULL, err, sizeof err), -1);

    ck_assert_int_eq(creds_validate_external_id("ab", err, sizeof err), 0);
    ck_assert_int_eq(
        creds_validate_external_id("a-b_c+d=e,f.g@h:i/j", err, sizeof err), 0);
    ck_assert_int_eq(creds_validate_external_id("a", err, sizeof err), -1);
    ck_assert_int_eq(
        creds_validate_external_id("Secret Value!", err, sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "Secret"));
    char longid[1300];
    memset(longid, 'x', 1225);
    longid[1225] = '\0';
    ck_assert_int_eq(creds_validate_external_id(longid, err, sizeof err), -1);
    longid[1224] = '\0';
    ck_assert_int_eq(creds_validate_external_id(longid, err, sizeof err), 0);

    ck_assert_int_eq(creds_validate_session_name("ok", err, sizeof err), 0);
    ck_assert_int_eq(creds_validate_session_name("a:b", err, sizeof err), -1);
    ck_assert_int_eq(creds_validate_session_name("a", err, sizeof err), -1);
    char name[80];
    creds_default_session_name("my host/x.example.com", name, sizeof name);
    ck_assert_str_eq(name, "logferry-my-host-x.example.com");
    char longhost[200];
    memset(longhost, 'h', 199);
    longhost[199] = '\0';
    creds_default_session_name(longhost, name, sizeof name);
    ck_assert_uint_eq(strlen(name), 64);
    ck_assert_int_eq(creds_validate_session_name(name, err, sizeof err), 0);
    creds_default_session_name(NULL, name, sizeof name);
    ck_assert_int_eq(creds_validate_session_name(name, err, sizeof err), 0);

    /* the AssumeRole constructor applies them, and takes the base */
    creds_provider *base = creds_static_provider(&ctx, DEV_AKID, DEV_SECRET,
                                                 NULL, err, sizeof err);
    creds_role_opts o = {ROLE, "x", NULL, 0, NULL, NULL};
    ck_assert_ptr_null(
        creds_assume_role_provider(&ctx, base, &o, err, sizeof err));
    base = creds_static_provider(&ctx, DEV_AKID, DEV_SECRET, NULL, err,
                                 sizeof err);
    o.external_id = EXT_ID;
    o.duration_s = 899;
    ck_assert_ptr_null(
        creds_assume_role_provider(&ctx, base, &o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "900"));
}
END_TEST

START_TEST(test_redact)
{
    char b[64];
    ck_assert_str_eq(creds_redact_key_id("AKIAIOSFODNN7EXAMPLE", b, sizeof b),
                     "AKIA...LE");
    ck_assert_str_eq(creds_redact_key_id("AKIA", b, sizeof b), "[redacted]");
    ck_assert_str_eq(creds_redact_key_id(NULL, b, sizeof b), "[redacted]");
    ck_assert_str_eq(creds_redact_secret(DEV_SECRET, b, sizeof b),
                     "[redacted, 31 chars]");
    ck_assert_str_eq(creds_redact_secret(NULL, b, sizeof b), "[none]");
}
END_TEST

/* ---- shared files
 * ------------------------------------------------------------------- */

static void write_profiles(void)
{
    const char *cred = write_tmp(
        "credentials", "# comment\n[default]\naws_access_key_id = "
                       "AKIADEFAULT000000001\naws_secret_access_key = "
                       "ENVSECRET-default\n\n[dev]\nAWS_ACCESS_KEY_ID=" DEV_AKID
                       "\naws_secret_access_key=" DEV_SECRET "\r\n");
    const char *conf = write_tmp(
        "config",
        "[default]\nregion = eu-west-1\n"
        "[profile dev]\nregion = eu-central-1\ns3 =\n  max_concurrent = 2\n"
        "[profile chained]\nrole_arn = " ROLE "\nsource_profile = dev\n"
        "external_id = " EXT_ID "\nrole_session_name = sess-1\n"
        "duration_seconds = 900\n"
        "[profile chained2]\nrole_arn = arn:aws:iam::210987654321:role/second\n"
        "source_profile = chained\n"
        "[profile loop-a]\nrole_arn = " ROLE "\nsource_profile = loop-b\n"
        "[profile loop-b]\nrole_arn = " ROLE "\nsource_profile = loop-a\n"
        "[profile from-env]\nrole_arn = " ROLE
        "\ncredential_source = Environment\n"
        "[profile bad-dur]\nrole_arn = " ROLE "\nsource_profile = dev\n"
        "duration_seconds = 60\n"
        "[profile half]\naws_access_key_id = AKIAHALF\n"
        "[profile empty]\nregion = us-west-2\n"
        "[sso-session x]\nsso_region = us-east-1\n");
    env_set("AWS_SHARED_CREDENTIALS_FILE", cred);
    env_set("AWS_CONFIG_FILE", conf);
}

START_TEST(test_profile_static)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    /* no files at all: default profile absent -> not found */
    creds_provider *p = creds_profile_provider(&ctx, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    write_profiles();
    p = creds_profile_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "AKIADEFAULT000000001");
    creds_value_free(&v);
    creds_provider_destroy(p);

    env_set("AWS_PROFILE", "dev");
    p = creds_profile_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, DEV_AKID);
    ck_assert_str_eq(v.secret_access_key, DEV_SECRET);
    creds_value_free(&v);
    assert_no_secrets(p->desc, "desc");
    creds_provider_destroy(p);

    /* explicit name beats AWS_PROFILE; errors name the profile only */
    ck_assert_ptr_null(creds_profile_provider(&ctx, "nope", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    ck_assert_ptr_null(creds_profile_provider(&ctx, "loop-a", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "loop"));
    ck_assert_ptr_null(creds_profile_provider(&ctx, "half", err, sizeof err));
    ck_assert_ptr_null(
        creds_profile_provider(&ctx, "bad-dur", err, sizeof err));
    ck_assert_ptr_null(
        creds_profile_provider(&ctx, "sso-session x", err, sizeof err));
    p = creds_profile_provider(&ctx, "empty", err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    /* ~ expansion with the injected home */
    char home[128];
    snprintf(home, sizeof home, "%s", tmpdir);
    ctx.home = home;
    char path[160];
    snprintf(path, sizeof path, "%s/.aws", tmpdir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.aws/credentials", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("[default]\naws_access_key_id=AKIAHOME000000000001\n"
          "aws_secret_access_key=ENVSECRET-home\n",
          f);
    fclose(f);
    memset(envtab, 0, sizeof envtab);
    p = creds_profile_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "AKIAHOME000000000001");
    creds_value_free(&v);
    creds_provider_destroy(p);
}
END_TEST

START_TEST(test_profile_chained_role)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    write_profiles();
    creds_provider *p =
        creds_profile_provider(&ctx, "chained", err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_str_eq(p->kind, "assume-role");
    assert_no_secrets(p->identity, "identity");
    assert_no_secrets(p->desc, "desc");
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_int_eq(atomic_load(&sts_calls), 1);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000001");
    ck_assert_str_eq(v.secret_access_key, "STSSECRET1");
    ck_assert_str_eq(v.session_token, "STSTOKEN1");
    ck_assert_int_eq(v.expiration, T0 + 3600);
    creds_value_free(&v);
    /* what STS saw: query protocol, every parameter, signed by dev */
    ck_assert_ptr_nonnull(strstr(last_sts_body, "Action=AssumeRole&"));
    ck_assert_ptr_nonnull(strstr(last_sts_body, "Version=2011-06-15"));
    ck_assert_ptr_nonnull(strstr(
        last_sts_body,
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Flogs-writer"));
    ck_assert_ptr_nonnull(strstr(last_sts_body, "ExternalId=" EXT_ID));
    ck_assert_ptr_nonnull(strstr(last_sts_body, "RoleSessionName=sess-1"));
    ck_assert_ptr_nonnull(strstr(last_sts_body, "DurationSeconds=900"));
    ck_assert_ptr_nonnull(strstr(last_sts_auth, "Credential=" DEV_AKID
                                                "/20150830/eu-west-1/sts/"));
    creds_provider_destroy(p);

    /* two hops: chained2 <- chained <- dev; default session name */
    p = creds_profile_provider(&ctx, "chained2", err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_int_eq(atomic_load(&sts_calls), 3);
    ck_assert_ptr_nonnull(
        strstr(last_sts_auth, "Credential=ASIASTS000000002/"));
    ck_assert_ptr_nonnull(
        strstr(last_sts_body, "RoleSessionName=logferry-test-host"));
    ck_assert_ptr_null(strstr(last_sts_body, "ExternalId"));
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* credential_source = Environment */
    env_set("AWS_ACCESS_KEY_ID", "AKIAENV0000000000009");
    env_set("AWS_SECRET_ACCESS_KEY", "ENVSECRET9");
    p = creds_profile_provider(&ctx, "from-env", err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_ptr_nonnull(
        strstr(last_sts_auth, "Credential=AKIAENV0000000000009/"));
    creds_value_free(&v);
    creds_provider_destroy(p);
}
END_TEST

START_TEST(test_sts_errors_scrubbed)
{
    char err[256];
    creds_value v;
    awshttp_error e;
    creds_provider *base = creds_static_provider(&ctx, DEV_AKID, DEV_SECRET,
                                                 NULL, err, sizeof err);
    creds_role_opts o = {ROLE, EXT_ID, NULL, 0, NULL, NULL};
    creds_provider *p =
        creds_assume_role_provider(&ctx, base, &o, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    atomic_store(&sts_fail, 2);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_ERROR);
    ck_assert_int_eq(e.cls, AWSHTTP_PERMANENT);
    ck_assert_str_eq(e.code, "AccessDenied");
    ck_assert_ptr_nonnull(strstr(e.message, "[redacted]"));
    assert_no_secrets(e.message, "error message");
    atomic_store(&sts_fail, 1);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_ERROR);
    ck_assert_int_eq(e.cls, AWSHTTP_RETRYABLE);
    creds_provider_destroy(p);
}
END_TEST

/* ---- web identity, container, IMDS
 * ---------------------------------------------- */

START_TEST(test_web_identity)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    creds_provider *p = creds_web_identity_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    env_set("AWS_WEB_IDENTITY_TOKEN_FILE",
            write_tmp("token", "WEBIDTOKEN.abc+/=\n"));
    env_set("AWS_ROLE_ARN", ROLE);
    env_set("AWS_ROLE_SESSION_NAME", "pod-1");
    p = creds_web_identity_provider(&ctx, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000001");
    ck_assert_ptr_nonnull(
        strstr(last_sts_body, "Action=AssumeRoleWithWebIdentity"));
    ck_assert_ptr_nonnull(
        strstr(last_sts_body, "WebIdentityToken=WEBIDTOKEN.abc%2B%2F%3D"));
    ck_assert_ptr_nonnull(strstr(last_sts_body, "RoleSessionName=pod-1"));
    ck_assert_str_eq(last_sts_auth, ""); /* unsigned */
    creds_value_free(&v);
    /* the token file is read again at each fetch (it rotates) */
    write_tmp("token", "WEBIDTOKEN2");
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_ptr_nonnull(
        strstr(last_sts_body, "WebIdentityToken=WEBIDTOKEN2"));
    creds_value_free(&v);
    creds_provider_destroy(p);

    env_set("AWS_ROLE_ARN", "not-an-arn");
    ck_assert_ptr_null(creds_web_identity_provider(&ctx, err, sizeof err));
}
END_TEST

START_TEST(test_container)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    creds_provider *p = creds_container_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    /* relative URI against the (overridden) 169.254.170.2 */
    ctx.container_endpoint = endpoint;
    env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds?id=1");
    env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "CONTAINERAUTH-1");
    p = creds_container_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIACTR000000001");
    ck_assert_str_eq(v.session_token, "CTRTOKEN");
    ck_assert_int_eq(v.expiration, T0 + 3600);
    ck_assert_str_eq(last_ctr_auth, "CONTAINERAUTH-1");
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* full URI with a token file, which wins over the token variable */
    char full[128];
    snprintf(full, sizeof full, "%s/creds", endpoint);
    env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", NULL);
    env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", full);
    env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            write_tmp("ctr", "CONTAINERAUTH-file\n"));
    p = creds_container_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(last_ctr_auth, "CONTAINERAUTH-file");
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* plain http to an arbitrary host is refused */
    env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds");
    ck_assert_ptr_null(creds_container_provider(&ctx, err, sizeof err));
    env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://example.com/creds");
    p = creds_container_provider(&ctx, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    creds_provider_destroy(p);
}
END_TEST

START_TEST(test_imds)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    /* disabled (fixture) */
    creds_provider *p = creds_imds_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);

    env_set("AWS_EC2_METADATA_DISABLED", NULL);
    env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    p = creds_imds_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIAIMDS00000001");
    ck_assert_str_eq(v.secret_access_key, "IMDSSECRET1");
    ck_assert_int_eq(v.expiration, T0 + 3600);
    creds_value_free(&v);
    ck_assert_int_eq(atomic_load(&imds_puts), 1);
    /* the session token is reused */
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_int_eq(atomic_load(&imds_puts), 1);
    /* a 401 (token no longer valid) costs one new token, then works */
    atomic_store(&imds_revoke, 1);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_int_eq(atomic_load(&imds_puts), 2);
    /* the token expires by the injected clock */
    atomic_store(&now_s, T0 + 21600);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_int_eq(atomic_load(&imds_puts), 3);
    creds_provider_destroy(p);

    /* nobody answering: not on EC2 -> not found */
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", ts_dead_port());
    env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", dead);
    p = creds_imds_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    creds_provider_destroy(p);
    /* the config override beats the variable */
    ctx.imds_endpoint = endpoint;
    p = creds_imds_provider(&ctx, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    creds_value_free(&v);
    creds_provider_destroy(p);
}
END_TEST

START_TEST(test_chain)
{
    char err[256] = "";
    creds_value v;
    awshttp_error e;
    creds_provider *p = creds_chain_provider(&ctx, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(fetch(p, &v, &e), CREDS_NOT_FOUND);
    ck_assert_str_eq(e.code, "NoCredentials");
    creds_provider_destroy(p);

    /* only IMDS */
    env_set("AWS_EC2_METADATA_DISABLED", "false");
    env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    p = creds_chain_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIAIMDS00000001");
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* environment first, even with a profile present */
    write_profiles();
    env_set("AWS_ACCESS_KEY_ID", "AKIAENV0000000000001");
    env_set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
    p = creds_chain_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "AKIAENV0000000000001");
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* then the profile */
    env_set("AWS_ACCESS_KEY_ID", NULL);
    env_set("AWS_SECRET_ACCESS_KEY", NULL);
    env_set("AWS_PROFILE", "dev");
    p = creds_chain_provider(&ctx, NULL, err, sizeof err);
    ck_assert_int_eq(fetch(p, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, DEV_AKID);
    creds_value_free(&v);
    creds_provider_destroy(p);

    /* a broken profile is a configuration error, not a silent skip */
    env_set("AWS_PROFILE", "loop-a");
    ck_assert_ptr_null(creds_chain_provider(&ctx, NULL, err, sizeof err));
}
END_TEST

/* ---- the cache
 * ----------------------------------------------------------------- */

static creds_provider *role_provider(const char *ext)
{
    char err[256];
    creds_provider *base = creds_static_provider(&ctx, DEV_AKID, DEV_SECRET,
                                                 NULL, err, sizeof err);
    creds_role_opts o = {ROLE, ext, NULL, 0, NULL, NULL};
    creds_provider *p =
        creds_assume_role_provider(&ctx, base, &o, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    return p;
}

static creds_cache_opts copts = {0, 0, 0, 0, 0};

START_TEST(test_cache_sharing)
{
    creds_cache *c = creds_cache_create(&ctx, &copts);
    creds_handle *a = creds_cache_acquire(c, role_provider(EXT_ID));
    creds_handle *b = creds_cache_acquire(c, role_provider(EXT_ID));
    ck_assert_uint_eq(creds_cache_entries(c), 1);
    creds_handle *d = creds_cache_acquire(c, role_provider("other-ext"));
    ck_assert_uint_eq(creds_cache_entries(c), 2);

    creds_value v1, v2;
    awshttp_error e;
    ck_assert_int_eq(creds_get(a, &v1, &e), 0);
    ck_assert_int_eq(creds_get(b, &v2, &e), 0);
    ck_assert_str_eq(v1.access_key_id, v2.access_key_id);
    ck_assert_int_eq(atomic_load(&sts_calls), 1); /* one AssumeRole for two */
    creds_value_free(&v1);
    creds_value_free(&v2);
    ck_assert_int_eq(creds_get(d, &v1, &e), 0);
    ck_assert_int_eq(atomic_load(&sts_calls), 2);
    creds_value_free(&v1);

    creds_cache_release(a);
    ck_assert_uint_eq(creds_cache_entries(c), 2);
    creds_cache_release(b);
    creds_cache_release(d);
    creds_cache_release(NULL);
    ck_assert_uint_eq(creds_cache_entries(c), 0);
    creds_cache_destroy(c);
    creds_cache_destroy(NULL);
}
END_TEST

START_TEST(test_refresh_ahead_by_clock)
{
    creds_cache *c = creds_cache_create(&ctx, &copts);
    creds_handle *h = creds_cache_acquire(c, role_provider(EXT_ID));
    creds_value v;
    awshttp_error e;
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000001");
    creds_value_free(&v);
    /* 5 minutes ahead of expiry (jitter 0 from the injected RNG) */
    atomic_store(&now_s, T0 + 3600 - 301);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000001");
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 1);
    atomic_store(&now_s, T0 + 3600 - 300);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000002");
    ck_assert_int_eq(v.expiration, T0 + 3600 - 300 + 3600);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 2);

    /* short-lived credentials refresh at half their life, not at once */
    atomic_store(&sts_lifetime, 400);
    atomic_store(&now_s, T0 + 2 * 3600);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 3);
    atomic_store(&now_s, T0 + 2 * 3600 + 199);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 3);
    atomic_store(&now_s, T0 + 2 * 3600 + 200);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 4);
    creds_cache_release(h);
    creds_cache_destroy(c);
}
END_TEST

START_TEST(test_jitter)
{
    /* with a random source, refreshes spread over the jitter window */
    creds_cache_opts o = {300, 60, 0, 0, 0};
    creds_cache *c = creds_cache_create(&ctx, &o);
    creds_handle *h = creds_cache_acquire(c, role_provider(EXT_ID));
    ctx.rand = NULL; /* the process PRNG */
    creds_value v;
    awshttp_error e;
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    /* never later than 300 s before expiry, never earlier than 360 s */
    atomic_store(&now_s, T0 + 3600 - 361);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 1);
    atomic_store(&now_s, T0 + 3600 - 300);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    ck_assert_uint_eq(creds_handle_fetches(h), 2);
    creds_cache_release(h);
    creds_cache_destroy(c);
}
END_TEST

START_TEST(test_refresh_on_expired_answer)
{
    creds_cache *c = creds_cache_create(&ctx, &copts);
    creds_handle *h = creds_cache_acquire(c, role_provider(EXT_ID));
    creds_value v, old;
    awshttp_error e;
    ck_assert_int_eq(creds_get(h, &old, &e), 0);
    atomic_store(&now_s, T0 + 100);
    /* e.g. PutLogEvents answered ExpiredTokenException */
    creds_invalidate(h, &old);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000002");
    ck_assert_uint_eq(creds_handle_fetches(h), 2);
    /* a second sink reporting the same old key changes nothing */
    creds_invalidate(h, &old);
    creds_value_free(&v);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_eq(v.access_key_id, "ASIASTS000000002");
    ck_assert_uint_eq(creds_handle_fetches(h), 2);
    /* keys refused right after a refresh: paced, not a refresh loop */
    creds_invalidate(h, &v);
    creds_value_free(&v);
    ck_assert_int_eq(creds_get(h, &v, &e), CREDS_ERROR);
    ck_assert_int_eq(e.cls, AWSHTTP_AUTH_EXPIRED);
    ck_assert_uint_eq(creds_handle_fetches(h), 2);
    atomic_store(&now_s, T0 + 102);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_uint_eq(creds_handle_fetches(h), 3);
    creds_value_free(&v);
    creds_value_free(&old);
    creds_invalidate(h, NULL);
    creds_cache_release(h);
    creds_cache_destroy(c);
}
END_TEST

START_TEST(test_failing_refresh_keeps_valid)
{
    creds_cache *c = creds_cache_create(&ctx, &copts);
    creds_handle *h = creds_cache_acquire(c, role_provider(EXT_ID));
    creds_value v;
    awshttp_error e;
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    creds_value_free(&v);
    atomic_store(&sts_fail, 1);
    /* call every second through the refresh window: the old key is
       served throughout, STS is asked with growing gaps */
    int calls = 0;
    for (int64_t t = T0 + 3300; t < T0 + 3590; t++) {
        atomic_store(&now_s, t);
        ck_assert_int_eq(creds_get(h, &v, &e), 0);
        ck_assert_str_eq(v.access_key_id, "ASIASTS000000001");
        creds_value_free(&v);
        calls++;
    }
    uint64_t f = creds_handle_fetches(h);
    ck_assert_uint_gt(f, 3);
    /* 290 calls; attempts grow apart, then tighten (half the remaining
       life, at least 5 s) as expiry nears */
    ck_assert_uint_lt(f, 20);
    ck_assert_ptr_nonnull(strstr(logbuf, "keeping current key_id=ASIA...01"));
    /* past expiry (minus the safety margin): an error, with the cause */
    atomic_store(&now_s, T0 + 3600);
    int rc = creds_get(h, &v, &e);
    ck_assert_int_eq(rc, CREDS_ERROR);
    ck_assert_str_eq(e.code, "ServiceUnavailable");
    ck_assert_int_eq(e.cls, AWSHTTP_RETRYABLE);
    /* STS back: the next attempt after the backoff succeeds */
    atomic_store(&sts_fail, 0);
    atomic_store(&now_s, T0 + 3600 + 121);
    ck_assert_int_eq(creds_get(h, &v, &e), 0);
    ck_assert_str_ne(v.access_key_id, "ASIASTS000000001");
    creds_value_free(&v);
    (void)calls;
    creds_cache_release(h);
    creds_cache_destroy(c);
}
END_TEST

typedef struct worker {
    creds_handle *h;
    int rc;
    char akid[64];
} worker;

static void *get_thread(void *arg)
{
    worker *w = arg;
    creds_value v;
    awshttp_error e;
    w->rc = creds_get(w->h, &v, &e);
    if (w->rc == 0)
        snprintf(w->akid, sizeof w->akid, "%s", v.access_key_id);
    creds_value_free(&v);
    return NULL;
}

START_TEST(test_single_flight)
{
    creds_cache *c = creds_cache_create(&ctx, &copts);
    worker w[6];
    pthread_t th[6];
    atomic_store(&sts_delay_ms, 300);
    for (int i = 0; i < 6; i++) {
        w[i].h = creds_cache_acquire(c, role_provider(EXT_ID));
        w[i].rc = -2;
    }
    ck_assert_uint_eq(creds_cache_entries(c), 1);
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, get_thread, &w[i]);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&sts_calls), 1);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_str_eq(w[i].akid, "ASIASTS000000001");
        creds_cache_release(w[i].h);
    }
    creds_cache_destroy(c);
}
END_TEST

int main(void)
{
    /* The servers are on 127.0.0.1: keep any proxy of the CI machine
       out of the way (libcurl reads these variables). */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    Suite *s = suite_create("aws_creds");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_env_provider);
    tcase_add_test(tc, test_validation);
    tcase_add_test(tc, test_redact);
    tcase_add_test(tc, test_profile_static);
    tcase_add_test(tc, test_profile_chained_role);
    tcase_add_test(tc, test_sts_errors_scrubbed);
    tcase_add_test(tc, test_web_identity);
    tcase_add_test(tc, test_container);
    tcase_add_test(tc, test_imds);
    tcase_add_test(tc, test_chain);
    tcase_add_test(tc, test_cache_sharing);
    tcase_add_test(tc, test_refresh_ahead_by_clock);
    tcase_add_test(tc, test_jitter);
    tcase_add_test(tc, test_refresh_on_expired_answer);
    tcase_add_test(tc, test_failing_refresh_keeps_valid);
    tcase_add_test(tc, test_single_flight);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
