/* The sink loader refuses modules it cannot trust, naming the file and the
 * versions; it loads a good one. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sink_loader.h"

#define MODDIR LF_BUILD_DIR "/tests/modules"

static char err[1024];

static const lf_sink_ops *load(const char *dir, const char *type)
{
    sink_registry *r = sink_registry_new();
    err[0] = 0;
    const lf_sink_ops *o = sink_registry_get(r, dir, type, err, sizeof err);
    /* The table lives in the module: only look at it while it is loaded. */
    int ok = o != NULL;
    sink_registry_free(r);
    return ok ? (const lf_sink_ops *)1 : NULL;
}

START_TEST(refuses_other_abi)
{
    ck_assert_ptr_null(load(MODDIR, "badabi"));
    ck_assert_ptr_nonnull(strstr(err, "lf_sink_badabi.so"));
    ck_assert_ptr_nonnull(strstr(err, "not binary compatible"));
    ck_assert_ptr_nonnull(strstr(err, "module ABI version 2"));
    ck_assert_ptr_nonnull(strstr(err, "agent ABI version 1"));
}
END_TEST

START_TEST(refuses_short_table)
{
    ck_assert_ptr_null(load(MODDIR, "smalltable"));
    ck_assert_ptr_nonnull(strstr(err, "ops table of 16 bytes"));
}
END_TEST

START_TEST(refuses_missing_symbol)
{
    ck_assert_ptr_null(load(MODDIR, "nosymbol"));
    ck_assert_ptr_nonnull(strstr(err, "missing symbol logferry_sink_module"));
}
END_TEST

START_TEST(refuses_wrong_name)
{
    ck_assert_ptr_null(load(MODDIR, "wrongname"));
    ck_assert_ptr_nonnull(strstr(err, "calls itself 'someoneelse'"));
}
END_TEST

START_TEST(refuses_missing_file_and_bad_type)
{
    ck_assert_ptr_null(load(MODDIR, "absent"));
    ck_assert_ptr_nonnull(strstr(err, MODDIR "/lf_sink_absent.so"));
    ck_assert_ptr_null(load(MODDIR, "../../etc/x"));
    ck_assert_ptr_nonnull(strstr(err, "not a valid module name"));
}
END_TEST

START_TEST(loads_file_sink)
{
    sink_registry *r = sink_registry_new();
    const lf_sink_ops *o =
        sink_registry_get(r, LF_BUILD_DIR "/sinks", "file", err, sizeof err);
    ck_assert_msg(o != NULL, "%s", err);
    ck_assert_str_eq(o->name, "file");
    ck_assert_uint_eq(o->abi_version, LF_SINK_ABI_VERSION);
    /* Loaded once, then cached. */
    ck_assert_ptr_eq(
        sink_registry_get(r, LF_BUILD_DIR "/sinks", "file", err, sizeof err),
        o);
    sink_registry_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("abi");
    tcase_add_test(tc, refuses_other_abi);
    tcase_add_test(tc, refuses_short_table);
    tcase_add_test(tc, refuses_missing_symbol);
    tcase_add_test(tc, refuses_wrong_name);
    tcase_add_test(tc, refuses_missing_file_and_bad_type);
    tcase_add_test(tc, loads_file_sink);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
