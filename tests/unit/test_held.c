/*
 * test_held.c - agent/held.h: the lowest held offset per segment (what the
 * cursor may not pass), settling in any order, holding twice, holding
 * again after a settle, out-of-order adds, and a random workload checked
 * against a plain model.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "held.h"

START_TEST(lowest_follows_settles)
{
    held_set hs;
    memset(&hs, 0, sizeof hs);
    uint64_t lo;
    ck_assert_int_eq(held_lowest(&hs, "a", &lo), 0);
    for (uint64_t off = 0; off < 1000; off += 10)
        ck_assert_int_eq(held_add(&hs, "a", off, 0, 0), 0);
    ck_assert_int_eq(held_add(&hs, "b", 5, 77, 3), 0);
    ck_assert_uint_eq(hs.count, 101);
    ck_assert_int_eq(held_lowest(&hs, "a", &lo), 1);
    ck_assert_uint_eq(lo, 0);
    /* Settling in the middle leaves the lowest alone. */
    ck_assert_int_eq(held_take(&hs, "a", 500, NULL, NULL), 0);
    ck_assert_int_eq(held_lowest(&hs, "a", &lo), 1);
    ck_assert_uint_eq(lo, 0);
    /* Twice, or never held: refused. */
    ck_assert_int_eq(held_take(&hs, "a", 500, NULL, NULL), -1);
    ck_assert_int_eq(held_take(&hs, "a", 501, NULL, NULL), -1);
    ck_assert_int_eq(held_take(&hs, "zz", 0, NULL, NULL), -1);
    ck_assert_int_eq(held_take(&hs, "a", 0, NULL, NULL), 0);
    ck_assert_int_eq(held_take(&hs, "a", 10, NULL, NULL), 0);
    ck_assert_int_eq(held_lowest(&hs, "a", &lo), 1);
    ck_assert_uint_eq(lo, 20);
    /* since/attempts come back. */
    int64_t since = 0;
    uint32_t att = 0;
    ck_assert_int_eq(held_take(&hs, "b", 5, &since, &att), 0);
    ck_assert_int_eq(since, 77);
    ck_assert_uint_eq(att, 3);
    ck_assert_int_eq(held_lowest(&hs, "b", &lo), 0);
    /* Settle the rest: the segment is gone and so is its memory. */
    for (uint64_t off = 20; off < 1000; off += 10)
        if (off != 500)
            ck_assert_int_eq(held_take(&hs, "a", off, NULL, NULL), 0);
    ck_assert_uint_eq(hs.count, 0);
    ck_assert_uint_eq(hs.n_segs, 0);
    held_clear(&hs);
}
END_TEST

START_TEST(twice_again_and_out_of_order)
{
    held_set hs;
    memset(&hs, 0, sizeof hs);
    uint64_t lo;
    ck_assert_int_eq(held_add(&hs, "s", 100, 0, 0), 0);
    ck_assert_int_eq(held_add(&hs, "s", 100, 5, 5), 0); /* no change */
    ck_assert_uint_eq(hs.count, 1);
    ck_assert_int_eq(held_add(&hs, "s", 300, 0, 0), 0);
    /* A record offered again after a RETRY may be older than the rest. */
    ck_assert_int_eq(held_add(&hs, "s", 40, 0, 1), 0);
    ck_assert_int_eq(held_lowest(&hs, "s", &lo), 1);
    ck_assert_uint_eq(lo, 40);
    ck_assert_int_eq(held_take(&hs, "s", 300, NULL, NULL), 0);
    ck_assert_int_eq(held_add(&hs, "s", 300, 9, 2), 0); /* held again */
    int64_t since;
    uint32_t att;
    ck_assert_int_eq(held_take(&hs, "s", 300, &since, &att), 0);
    ck_assert_int_eq(since, 9);
    ck_assert_uint_eq(att, 2);
    ck_assert_uint_eq(hs.count, 2);
    held_clear(&hs);
    ck_assert_uint_eq(hs.count, 0);
}
END_TEST

/* Random adds and takes over three segments against a bitmap model. */
START_TEST(random_against_model)
{
    enum { SEGS = 3, OFFS = 4096 };
    static const char *names[SEGS] = {"x.lfs", "y.lfs", "z.lfs"};
    static uint8_t model[SEGS][OFFS];
    memset(model, 0, sizeof model);
    held_set hs;
    memset(&hs, 0, sizeof hs);
    uint64_t rng = 12345;
    size_t live = 0;
    for (int step = 0; step < 200000; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int seg = (int)((rng >> 33) % SEGS);
        uint64_t off = (rng >> 40) % OFFS;
        if ((rng >> 20) & 1) {
            ck_assert_int_eq(held_add(&hs, names[seg], off, 0, 0), 0);
            live += !model[seg][off];
            model[seg][off] = 1;
        } else {
            int rc = held_take(&hs, names[seg], off, NULL, NULL);
            ck_assert_int_eq(rc, model[seg][off] ? 0 : -1);
            live -= model[seg][off];
            model[seg][off] = 0;
        }
        if (step % 97 == 0) {
            ck_assert_uint_eq(hs.count, live);
            for (int k = 0; k < SEGS; k++) {
                uint64_t lo, want = OFFS;
                for (uint64_t o = 0; o < OFFS && want == OFFS; o++)
                    if (model[k][o])
                        want = o;
                int has = held_lowest(&hs, names[k], &lo);
                ck_assert_int_eq(has, want != OFFS);
                if (has)
                    ck_assert_uint_eq(lo, want);
            }
        }
    }
    held_clear(&hs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("held");
    TCase *t = tcase_create("held");
    tcase_add_test(t, lowest_follows_settles);
    tcase_add_test(t, twice_again_and_out_of_order);
    tcase_add_test(t, random_against_model);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
