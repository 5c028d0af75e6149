/* Configuration: every error names file:line and the key; defaults and
 * units; all errors reported at once. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static agent_conf *load_text(const char *text, conf_errors *errs,
                             sink_registry *reg)
{
    char path[] = "/tmp/lf-test-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    agent_conf *c = agent_conf_load(path, LF_BUILD_DIR "/sinks", reg, errs);
    unlink(path);
    return c;
}

static int has_error(const conf_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->msg[i], needle))
            return 1;
    return 0;
}

static void dump_errors(const conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  %s\n", e->msg[i]);
}

START_TEST(valid_with_defaults_and_units)
{
    sink_registry *reg = sink_registry_new();
    conf_errors e = {0};
    agent_conf *c = load_text("state_dir = \"/tmp/s\";\n"
                              "spool: { dir = \"/tmp/sp\"; max_bytes = \"1G\";"
                              " rescan_interval = \"2s\"; };\n"
                              "sinks = ( { name = \"a\"; type = \"file\"; "
                              "path = \"/tmp/o\"; backoff_cap = \"1m\"; } );\n",
                              &e, reg);
    dump_errors(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(conf_int(&c->spool, PK_MAX_BYTES), 1LL << 30);
    ck_assert_int_eq(conf_int(&c->spool, PK_RESCAN), 2000);
    ck_assert_int_eq(conf_int(&c->top, TK_LOG_LEVEL), LF_LOG_INFO);
    ck_assert_int_eq(c->n_sinks, 1);
    ck_assert_str_eq(c->sinks[0].name, "a");
    ck_assert_int_eq(conf_int(&c->sinks[0].common, SK_BACKOFF_CAP), 60000);
    ck_assert_int_eq(conf_int(&c->sinks[0].common, SK_BACKOFF_BASE), 200);
    ck_assert_int_eq(conf_int(&c->sinks[0].common, SK_ENABLED), 1);
    ck_assert_int_eq(conf_int(&c->delivery, DK_SHUTDOWN_DEADLINE), 10000);
    agent_conf_free(c);
    conf_errors_free(&e);
    sink_registry_free(reg);
}
END_TEST

START_TEST(every_error_with_file_line_and_key)
{
    sink_registry *reg = sink_registry_new();
    conf_errors e = {0};
    agent_conf *c = load_text("log_level = \"loud\";\n"             /* 1 */
                              "colour = 3;\n"                       /* 2 */
                              "spool: { rescan_interval = 1; };\n"  /* 3 */
                              "sinks = (\n"                         /* 4 */
                              " { name = \"a\"; type = \"file\";\n" /* 5 */
                              "   path = 7; nope = true;\n"         /* 6 */
                              "   backoff_base = \"fast\"; },\n"    /* 7 */
                              " { name = \"a\"; type = \"file\"; "
                              "path = \"/x\"; },\n"      /* 8 */
                              " { type = \"ghost\"; }\n" /* 9 */
                              ");\n",
                              &e, reg);
    ck_assert_ptr_null(c);
    dump_errors(&e);
    ck_assert(has_error(&e, ":1: log_level: not one of the allowed values "
                            "(allowed: error, warn, info, debug)"));
    ck_assert(has_error(&e, ":2: colour: unknown key"));
    ck_assert(has_error(&e, ":3: spool.rescan_interval: value 1 out of range"));
    ck_assert(has_error(&e, ":6: sinks[a].path: expected a string"));
    ck_assert(has_error(&e, ":6: sinks[a].nope: unknown key"));
    ck_assert(has_error(&e, ":7: sinks[a].backoff_base: expected a duration"));
    ck_assert(
        has_error(&e, ":8: sinks[a].name: duplicate name (also at line 5)"));
    ck_assert(has_error(&e, "sinks[2].type: cannot load sink module"));
    ck_assert(has_error(&e, "lf_sink_ghost.so"));
    ck_assert(has_error(&e, "sinks[2].name: required key is missing"));
    ck_assert_uint_ge(e.n, 9);
    conf_errors_free(&e);
    sink_registry_free(reg);
}
END_TEST

START_TEST(syntax_error_and_missing_file)
{
    sink_registry *reg = sink_registry_new();
    conf_errors e = {0};
    ck_assert_ptr_null(load_text("sinks = ( { name = \"a\" \n", &e, reg));
    ck_assert(has_error(&e, "syntax error"));
    conf_errors_free(&e);
    ck_assert_ptr_null(agent_conf_load("/nonexistent/lf.conf", NULL, reg, &e));
    ck_assert(has_error(&e, "/nonexistent/lf.conf: cannot read"));
    conf_errors_free(&e);
    ck_assert_ptr_null(load_text("state_dir = \"/tmp\";\n", &e, reg));
    ck_assert(has_error(&e, "no sink is configured"));
    conf_errors_free(&e);
    sink_registry_free(reg);
}
END_TEST

START_TEST(unit_parsers)
{
    int64_t v;
    ck_assert_int_eq(conf_parse_size("64MB", &v), 0);
    ck_assert_int_eq(v, 64LL << 20);
    ck_assert_int_eq(conf_parse_size("512K", &v), 0);
    ck_assert_int_eq(v, 512LL << 10);
    ck_assert_int_eq(conf_parse_size("2GiB", &v), 0);
    ck_assert_int_eq(v, 2LL << 30);
    ck_assert_int_eq(conf_parse_size("100", &v), 0);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(conf_parse_size("12X", &v), -1);
    ck_assert_int_eq(conf_parse_size("-1", &v), -1);
    ck_assert_int_eq(conf_parse_size("", &v), -1);
    ck_assert_int_eq(conf_parse_duration("250ms", &v), 0);
    ck_assert_int_eq(v, 250);
    ck_assert_int_eq(conf_parse_duration("1.5s", &v), 0);
    ck_assert_int_eq(v, 1500);
    ck_assert_int_eq(conf_parse_duration("7d", &v), 0);
    ck_assert_int_eq(v, 7LL * 86400000);
    ck_assert_int_eq(conf_parse_duration("5 parsecs", &v), -1);
}
END_TEST

START_TEST(fingerprint_tracks_changes)
{
    sink_registry *reg = sink_registry_new();
    conf_errors e = {0};
    agent_conf *a = load_text("sinks = ( { name = \"a\"; type = \"file\"; "
                              "path = \"/x\"; } );\n",
                              &e, reg);
    agent_conf *b = load_text("sinks = ( { name = \"a\"; type = \"file\"; "
                              "path = \"/x\"; } );\n",
                              &e, reg);
    agent_conf *c = load_text("sinks = ( { name = \"a\"; type = \"file\"; "
                              "path = \"/y\"; } );\n",
                              &e, reg);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(a->sinks[0].fingerprint, b->sinks[0].fingerprint);
    ck_assert_str_ne(a->sinks[0].fingerprint, c->sinks[0].fingerprint);
    agent_conf_free(a);
    agent_conf_free(b);
    agent_conf_free(c);
    sink_registry_free(reg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, valid_with_defaults_and_units);
    tcase_add_test(tc, every_error_with_file_line_and_key);
    tcase_add_test(tc, syntax_error_and_missing_file);
    tcase_add_test(tc, unit_parsers);
    tcase_add_test(tc, fingerprint_tracks_changes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
