/*
 * test_arena.c - agent/arena.h: allocation alignment, reset keeping one
 * chunk, and arena_release() giving back exactly what came after a mark
 * (within a chunk, across chunks, back to an empty arena), with and
 * without wiping.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static size_t chunks(const arena *a)
{
    size_t n = 0;
    for (const arena_chunk *c = a->head; c; c = c->next)
        n++;
    return n;
}

START_TEST(alloc_and_reset)
{
    arena a = arena_make(1024);
    char *p = arena_alloc(&a, 10), *q = arena_alloc(&a, 1);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    ck_assert_uint_eq((uintptr_t)q % 16, 0);
    ck_assert_ptr_eq(q, p + 16);
    ck_assert_ptr_nonnull(arena_alloc(&a, 4096)); /* its own chunk */
    ck_assert_uint_eq(chunks(&a), 2);
    arena_reset(&a);
    ck_assert_uint_eq(chunks(&a), 1);
    ck_assert_uint_eq(a.head->used, 0);
    arena_free(&a);
    ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(release_within_and_across_chunks)
{
    arena a = arena_make(256);
    char *keep = arena_alloc(&a, 32);
    memset(keep, 'k', 32);
    arena_mark m = arena_get_mark(&a);
    char *gone = arena_alloc(&a, 64);
    memset(gone, 's', 64);
    arena_release(&a, m, 1);
    ck_assert_uint_eq(a.head->used, 32);
    ck_assert_int_eq(gone[0], 0); /* wiped */
    ck_assert_int_eq(keep[31], 'k');
    /* Reused at once: the next allocation lands where the released one was. */
    ck_assert_ptr_eq(arena_alloc(&a, 64), gone);
    /* Across chunks: the chunks made since the mark are freed. */
    m = arena_get_mark(&a);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_nonnull(arena_alloc(&a, 200));
    ck_assert_uint_gt(chunks(&a), 1);
    arena_release(&a, m, 0);
    ck_assert_uint_eq(chunks(&a), 1);
    ck_assert_uint_eq(a.head->used, 96);
    arena_free(&a);
}
END_TEST

START_TEST(release_to_empty_keeps_a_chunk)
{
    arena a = arena_make(256);
    arena_mark m = arena_get_mark(&a);
    ck_assert_ptr_null(m.chunk);
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(arena_alloc(&a, 200));
    arena_release(&a, m, 1);
    ck_assert_uint_eq(chunks(&a), 1);
    ck_assert_uint_eq(a.head->used, 0);
    arena_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *t = tcase_create("arena");
    tcase_add_test(t, alloc_and_reset);
    tcase_add_test(t, release_within_and_across_chunks);
    tcase_add_test(t, release_to_empty_keeps_a_chunk);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
