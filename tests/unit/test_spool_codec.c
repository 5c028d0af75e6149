/*
 * test_spool_codec.c - segment header, frame and name codecs
 * (agent/spool_codec.h): round trips, every validation failure, frame
 * classification at every truncation point, and resync.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "spool_codec.h"

static spool_header sample_header(void)
{
    spool_header h = {
        .version = SPOOL_VERSION,
        .header_size = SPOOL_HEADER_SIZE,
        .flags = SPOOL_FLAG_DEAD_LETTER,
        .writer_id = 0x0123456789abcdefull,
        .created_ns = 1732540000123456789LL,
        .seq = 42,
        .pid = 4321,
    };
    return h;
}

START_TEST(test_header_round_trip)
{
    spool_header h = sample_header(), d;
    uint8_t b[SPOOL_HEADER_SIZE];
    spool_header_encode(&h, b);
    ck_assert_mem_eq(b, "LFSPOOL\0", 8);
    ck_assert_int_eq(b[8], 1);   /* version, little-endian */
    ck_assert_int_eq(b[10], 64); /* header_size */
    for (int i = 44; i < 60; i++)
        ck_assert_int_eq(b[i], 0); /* reserved */
    ck_assert_int_eq(spool_header_decode(b, sizeof b, &d), SPOOL_HEADER_OK);
    ck_assert_uint_eq(d.version, h.version);
    ck_assert_uint_eq(d.header_size, h.header_size);
    ck_assert_uint_eq(d.flags, h.flags);
    ck_assert_uint_eq(d.writer_id, h.writer_id);
    ck_assert_int_eq(d.created_ns, h.created_ns);
    ck_assert_uint_eq(d.seq, h.seq);
    ck_assert_uint_eq(d.pid, h.pid);
}
END_TEST

START_TEST(test_header_validation)
{
    spool_header h = sample_header(), d;
    uint8_t good[SPOOL_HEADER_SIZE], b[SPOOL_HEADER_SIZE];
    spool_header_encode(&h, good);

    ck_assert_int_eq(spool_header_decode(good, 63, &d), SPOOL_HEADER_SHORT);

    memcpy(b, good, sizeof b);
    b[0] = 'X';
    ck_assert_int_eq(spool_header_decode(b, sizeof b, &d),
                     SPOOL_HEADER_BAD_MAGIC);

    h.version = 2;
    spool_header_encode(&h, b);
    ck_assert_int_eq(spool_header_decode(b, sizeof b, &d),
                     SPOOL_HEADER_BAD_VERSION);

    h = sample_header();
    h.header_size = 128;
    spool_header_encode(&h, b);
    ck_assert_int_eq(spool_header_decode(b, sizeof b, &d),
                     SPOOL_HEADER_BAD_SIZE);

    /* Any flipped bit in the checksummed fields is caught. */
    for (int byte = 12; byte < 64; byte++) {
        memcpy(b, good, sizeof b);
        b[byte] ^= 0x10;
        ck_assert_msg(spool_header_decode(b, sizeof b, &d) ==
                          SPOOL_HEADER_BAD_CRC,
                      "byte %d", byte);
    }
    for (int st = SPOOL_HEADER_OK; st <= SPOOL_HEADER_BAD_CRC; st++)
        ck_assert_ptr_nonnull(spool_header_strerror((spool_header_status)st));
}
END_TEST

/* Build a frame for `len` bytes of pattern into a malloc'ed buffer. */
static uint8_t *make_frame(uint32_t len, uint8_t seed)
{
    uint8_t *f = malloc(SPOOL_FRAME_HDR + len + 1);
    for (uint32_t i = 0; i < len; i++)
        f[SPOOL_FRAME_HDR + i] = (uint8_t)(seed + i * 7);
    spool_frame_header_encode(f, f + SPOOL_FRAME_HDR, len);
    return f;
}

START_TEST(test_frame_round_trip)
{
    uint32_t lens[] = {0, 1, 11, 12, 300, 4096};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        uint32_t len = lens[k];
        uint8_t *f = make_frame(len, (uint8_t)k);
        ck_assert_mem_eq(f, "LFRM", 4);
        ck_assert_uint_eq(f[4] | f[5] << 8 | f[6] << 16 | (uint32_t)f[7] << 24,
                          len);
        /* crc = crc32c(len bytes, then payload) */
        uint32_t crc = crc32c_extend(crc32c(f + 4, 4), f + 12, len);
        ck_assert_uint_eq(
            f[8] | f[9] << 8 | f[10] << 16 | (uint32_t)f[11] << 24, crc);
        spool_frame fr;
        ck_assert_int_eq(spool_frame_check(f, SPOOL_FRAME_HDR + len, &fr),
                         SPOOL_FRAME_OK);
        ck_assert_ptr_eq(fr.payload, f + SPOOL_FRAME_HDR);
        ck_assert_uint_eq(fr.len, len);
        ck_assert_uint_eq(fr.size, SPOOL_FRAME_HDR + len);
        /* Extra bytes after the frame do not matter. */
        ck_assert_int_eq(spool_frame_check(f, SPOOL_FRAME_HDR + len + 1, &fr),
                         SPOOL_FRAME_OK);
        /* Every truncation is INCOMPLETE, never BAD. */
        for (size_t cut = 0; cut < SPOOL_FRAME_HDR + len; cut++) {
            ck_assert_msg(spool_frame_check(f, cut, &fr) ==
                              SPOOL_FRAME_INCOMPLETE,
                          "len %u cut %zu", len, cut);
            size_t want = cut < 8 ? SPOOL_FRAME_HDR : SPOOL_FRAME_HDR + len;
            ck_assert_uint_eq(fr.size, want);
        }
        free(f);
    }
}
END_TEST

START_TEST(test_frame_bad)
{
    uint8_t *f = make_frame(100, 1);
    spool_frame fr;

    f[0] ^= 1;
    ck_assert_int_eq(spool_frame_check(f, 112, &fr), SPOOL_FRAME_BAD);
    ck_assert_int_eq(fr.fault, SPOOL_FAULT_SYNC);
    /* A wrong sync byte is BAD even before the header is complete. */
    ck_assert_int_eq(spool_frame_check(f, 1, &fr), SPOOL_FRAME_BAD);
    f[0] ^= 1;

    f[50] ^= 0x80;
    ck_assert_int_eq(spool_frame_check(f, 112, &fr), SPOOL_FRAME_BAD);
    ck_assert_int_eq(fr.fault, SPOOL_FAULT_CRC);
    f[50] ^= 0x80;

    f[9] ^= 1; /* the stored crc itself */
    ck_assert_int_eq(spool_frame_check(f, 112, &fr), SPOOL_FRAME_BAD);
    ck_assert_int_eq(fr.fault, SPOOL_FAULT_CRC);
    f[9] ^= 1;

    /* Length over the maximum: BAD as soon as the length field is read. */
    uint32_t big = SPOOL_MAX_PAYLOAD + 1;
    memcpy(f + 4, &big, 4);
    ck_assert_int_eq(spool_frame_check(f, 8, &fr), SPOOL_FRAME_BAD);
    ck_assert_int_eq(fr.fault, SPOOL_FAULT_LENGTH);
    free(f);

    /* The maximum itself is a legal length (INCOMPLETE here). */
    uint8_t h[12] = {'L', 'F', 'R', 'M'};
    uint32_t max = SPOOL_MAX_PAYLOAD;
    memcpy(h + 4, &max, 4);
    ck_assert_int_eq(spool_frame_check(h, 12, &fr), SPOOL_FRAME_INCOMPLETE);
    ck_assert_uint_eq(fr.size, SPOOL_FRAME_HDR + SPOOL_MAX_PAYLOAD);
}
END_TEST

START_TEST(test_resync)
{
    /* garbage(37) | frame A (50) | garbage(20) | frame B (10) */
    uint8_t buf[256];
    size_t n = 0;
    for (int i = 0; i < 37; i++)
        buf[n++] = (uint8_t)(0x4c + (i % 3)); /* sync-ish noise */
    size_t a_off = n;
    uint8_t *a = make_frame(50, 9);
    memcpy(buf + n, a, 62);
    n += 62;
    for (int i = 0; i < 20; i++)
        buf[n++] = 0xee;
    size_t b_off = n;
    uint8_t *b = make_frame(10, 3);
    memcpy(buf + n, b, 22);
    n += 22;

    size_t at;
    ck_assert_int_eq(spool_frame_resync(buf, n, 0, &at), SPOOL_FRAME_OK);
    ck_assert_uint_eq(at, a_off);
    ck_assert_int_eq(spool_frame_resync(buf, n, a_off + 1, &at),
                     SPOOL_FRAME_OK);
    ck_assert_uint_eq(at, b_off);
    /* Frame B cut short: a candidate that needs more bytes. */
    ck_assert_int_eq(spool_frame_resync(buf, n - 1, a_off + 1, &at),
                     SPOOL_FRAME_INCOMPLETE);
    ck_assert_uint_eq(at, b_off);
    /* Only the first two bytes of B's sync: still a candidate. */
    ck_assert_int_eq(spool_frame_resync(buf, b_off + 2, a_off + 1, &at),
                     SPOOL_FRAME_INCOMPLETE);
    ck_assert_uint_eq(at, b_off);
    /* Nothing at all. */
    ck_assert_int_eq(spool_frame_resync(buf, b_off, a_off + 1, &at),
                     SPOOL_FRAME_BAD);
    ck_assert_uint_eq(at, b_off);
    ck_assert_int_eq(spool_frame_resync(buf, n, n, &at), SPOOL_FRAME_BAD);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_segment_names)
{
    char name[SPOOL_SEGMENT_NAME_MAX];
    ck_assert_int_eq(spool_segment_name(name, sizeof name, 0x18eb4d61524c480a,
                                        0xa04d0a88adf835a0ull, 7),
                     0);
    ck_assert_str_eq(name, "18eb4d61524c480a-a04d0a88adf835a0-00000007.lfs");
    int64_t c;
    uint64_t w, q;
    ck_assert_int_eq(spool_segment_name_parse(name, &c, &w, &q), 0);
    ck_assert_int_eq(c, 0x18eb4d61524c480a);
    ck_assert_uint_eq(w, 0xa04d0a88adf835a0ull);
    ck_assert_uint_eq(q, 7);

    /* seq grows past 8 digits */
    ck_assert_int_eq(
        spool_segment_name(name, sizeof name, 1, 2, 123456789012ull), 0);
    ck_assert_int_eq(spool_segment_name_parse(name, NULL, NULL, &q), 0);
    ck_assert_uint_eq(q, 123456789012ull);
    ck_assert_int_eq(spool_segment_name(name, 10, 1, 2, 3), -1);

    const char *bad[] = {
        ".18eb4d61524c480a-a04d0a88adf835a0-00000007.lfs.tmp",
        "18EB4D61524C480A-a04d0a88adf835a0-00000007.lfs",
        "18eb4d61524c480a-a04d0a88adf835a0-0000007.lfs",
        "18eb4d61524c480a-a04d0a88adf835a0-00000007.lf",
        "18eb4d61524c480a-a04d0a88adf835a0-00000007.lfsx",
        "18eb4d61524c480-a04d0a88adf835a0-00000007.lfs",
        "18eb4d61524c480a_a04d0a88adf835a0-00000007.lfs",
        "18eb4d61524c480a-a04d0a88adf835a0-99999999999999999999999.lfs",
        "",
        "x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(spool_segment_name_parse(bad[i], NULL, NULL, NULL) == -1,
                      "%s", bad[i]);

    /* Names sort in creation order. */
    char a[SPOOL_SEGMENT_NAME_MAX], b[SPOOL_SEGMENT_NAME_MAX];
    spool_segment_name(a, sizeof a, 0x0fffffffffffffffLL, 9, 1);
    spool_segment_name(b, sizeof b, 0x1000000000000000LL, 1, 0);
    ck_assert_int_lt(strcmp(a, b), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool_codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_header_round_trip);
    tcase_add_test(tc, test_header_validation);
    tcase_add_test(tc, test_frame_round_trip);
    tcase_add_test(tc, test_frame_bad);
    tcase_add_test(tc, test_resync);
    tcase_add_test(tc, test_segment_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
