/*
 * test_crc32c.c - CRC-32C against published vectors (RFC 3720 B.4, the
 * "123456789" check value) and the hardware path against the table path.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

typedef struct crc_vector {
    const char *name;
    uint8_t data[48];
    size_t len;
    uint32_t crc;
} crc_vector;

static crc_vector vectors[6];
static size_t nvectors;

static void build_vectors(void)
{
    crc_vector *v = vectors;
    nvectors = 0;
    /* RFC 3720 B.4 */
    v[0] = (crc_vector){.name = "32 zeros", .len = 32, .crc = 0x8A9136AAu};
    v[1] = (crc_vector){.name = "32 ones", .len = 32, .crc = 0x62A8AB43u};
    memset(v[1].data, 0xff, 32);
    v[2] = (crc_vector){.name = "incrementing", .len = 32, .crc = 0x46DD794Eu};
    v[3] = (crc_vector){.name = "decrementing", .len = 32, .crc = 0x113FDB5Cu};
    for (int i = 0; i < 32; i++) {
        v[2].data[i] = (uint8_t)i;
        v[3].data[i] = (uint8_t)(31 - i);
    }
    static const uint8_t read_pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    v[4] =
        (crc_vector){.name = "iSCSI read PDU", .len = 48, .crc = 0xD9963A56u};
    memcpy(v[4].data, read_pdu, 48);
    v[5] = (crc_vector){.name = "123456789", .len = 9, .crc = 0xE3069283u};
    memcpy(v[5].data, "123456789", 9);
    nvectors = 6;
}

START_TEST(test_vectors)
{
    build_vectors();
    for (size_t i = 0; i < nvectors; i++) {
        const crc_vector *v = &vectors[i];
        ck_assert_msg(crc32c(v->data, v->len) == v->crc, "%s: %08x != %08x",
                      v->name, crc32c(v->data, v->len), v->crc);
        ck_assert_msg(crc32c_extend_sw(0, v->data, v->len) == v->crc, "sw %s",
                      v->name);
        if (crc32c_hw_available())
            ck_assert_msg(crc32c_extend_hw(0, v->data, v->len) == v->crc,
                          "hw %s", v->name);
    }
    ck_assert_uint_eq(crc32c("", 0), 0);
}
END_TEST

START_TEST(test_extend_composes)
{
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = crc32c(s, n);
    ck_assert_uint_eq(whole, 0x22620404u); /* published CRC-32C value */
    for (size_t cut = 0; cut <= n; cut++)
        ck_assert_uint_eq(crc32c_extend(crc32c(s, cut), s + cut, n - cut),
                          whole);
}
END_TEST

START_TEST(test_hw_matches_sw)
{
    if (!crc32c_hw_available()) {
        fprintf(stderr, "test_hw_matches_sw: no SSE4.2 on this CPU, "
                        "only the table path is tested\n");
        return;
    }
    uint8_t *buf = malloc(1024 + 16);
    uint64_t x = 0x243f6a8885a308d3ull; /* fixed seed: deterministic */
    for (size_t i = 0; i < 1024 + 16; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len <= 1024; len++) {
            uint32_t seed = (uint32_t)(len * 2654435761u);
            uint32_t a = crc32c_extend_sw(seed, buf + align, len);
            uint32_t b = crc32c_extend_hw(seed, buf + align, len);
            ck_assert_msg(a == b, "align %zu len %zu: sw %08x hw %08x", align,
                          len, a, b);
        }
    }
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crc32c");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_extend_composes);
    tcase_add_test(tc, test_hw_matches_sw);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
