/* Cursors: round trip, atomic replacement, damage detected with file and
 * line, a crash mid-write never leaves a half cursor in place. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cursor.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/lf-cursor-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.cursor", dir);
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(missing_file_is_empty)
{
    cursor c;
    char err[256];
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), 0);
    ck_assert_uint_eq(c.n, 0);
    cursor_free(&c);
}
END_TEST

START_TEST(round_trip)
{
    cursor c;
    char err[256];
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), 0);
    cursor_get(&c, "a.lfs")->offset = 1234;
    cursor_entry *b = cursor_get(&c, "b.lfs");
    b->offset = 99;
    b->done = 1;
    ck_assert_int_eq(cursor_save(&c, err, sizeof err), 0);
    cursor_free(&c);
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), 0);
    ck_assert_uint_eq(c.n, 2);
    ck_assert_uint_eq(cursor_find(&c, "a.lfs")->offset, 1234);
    ck_assert_int_eq(cursor_find(&c, "a.lfs")->done, 0);
    ck_assert_int_eq(cursor_find(&c, "b.lfs")->done, 1);
    cursor_remove(&c, "a.lfs");
    ck_assert_ptr_null(cursor_find(&c, "a.lfs"));
    cursor_free(&c);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(damage_is_reported)
{
    cursor c;
    char err[256];
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), 0);
    cursor_get(&c, "a.lfs")->offset = 1234;
    ck_assert_int_eq(cursor_save(&c, err, sizeof err), 0);
    cursor_free(&c);
    /* Flip a digit of the offset: the CRC catches it. */
    int fd = open(path, O_RDWR);
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    char *p = strstr(buf, "1234");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pwrite(fd, "9", 1, p - buf), 1);
    close(fd);
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "checksum mismatch"));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_uint_eq(c.n, 0);
    cursor_free(&c);
    /* A truncated file. */
    ck_assert_int_eq(truncate(path, 30), 0);
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    cursor_free(&c);
    /* Not a cursor at all. */
    FILE *f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    ck_assert_int_eq(cursor_load(&c, path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":1: not a logferry cursor"));
    cursor_free(&c);
}
END_TEST

/* A child rewrites the cursor in a loop and is killed at random moments:
 * the file is always one complete version, never a mix or a stub. */
START_TEST(atomic_under_kill)
{
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            cursor c;
            char err[256];
            cursor_load(&c, path, err, sizeof err);
            for (unsigned long i = 1;; i++) {
                for (int k = 0; k < 50; k++) {
                    char name[32];
                    snprintf(name, sizeof name, "seg-%02d.lfs", k);
                    cursor_get(&c, name)->offset = i;
                }
                if (cursor_save(&c, err, sizeof err) != 0)
                    _exit(1);
            }
        }
        usleep(2000 + (unsigned)(rand() % 20000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cursor c;
        char err[256];
        int rc = cursor_load(&c, path, err, sizeof err);
        ck_assert_msg(rc == 0, "round %d: %s", round, err);
        if (c.n) {
            ck_assert_uint_eq(c.n, 50);
            uint64_t v = c.e[0].offset;
            for (size_t k = 0; k < c.n; k++)
                ck_assert_uint_eq(c.e[k].offset, v);
        }
        cursor_free(&c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cursor");
    TCase *tc = tcase_create("cursor");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, missing_file_is_empty);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, damage_is_reported);
    tcase_add_test(tc, atomic_under_kill);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
