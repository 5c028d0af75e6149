/*
 * crc32c.c - CRC-32C for spool headers and frames.
 *
 * Two implementations with one contract: the SSE4.2 `crc32` instruction
 * (x86-64, compiled with a target attribute so the build needs no
 * -msse4.2) and a portable slicing-by-8 table walk. The first call picks
 * one for the whole process; the choice is published with pthread_once so
 * concurrent first calls are safe.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define CRC32C_HAVE_X86 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t crc32c_table[8][256];
static uint32_t (*crc32c_impl)(uint32_t, const void *, size_t);
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][i] = c;
    }
    /* table[k][i]: the CRC of byte i followed by k zero bytes, which lets
       the loop below fold 8 input bytes with 8 independent lookups. */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc32c_table[0][i];
        for (int k = 1; k < 8; k++) {
            c = (c >> 8) ^ crc32c_table[0][c & 0xff];
            crc32c_table[k][i] = c;
        }
    }
}

int crc32c_hw_available(void)
{
#ifdef CRC32C_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    return 0;
#endif
}

static void crc32c_init(void)
{
    /* The tables are built even when the hardware path wins, so that
       crc32c_extend_sw() is always usable (tests compare the two). */
    crc32c_build_tables();
#ifdef CRC32C_HAVE_X86
    if (crc32c_hw_available()) {
        crc32c_impl = crc32c_extend_hw;
        return;
    }
#endif
    crc32c_impl = crc32c_extend_sw;
}

static uint32_t crc32c_sw_run(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t c = ~crc;
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        len--;
    }
    while (len >= 8) {
        /* Byte-wise loads keep this endian-neutral; compilers merge them
           into one load on little-endian machines. */
        uint32_t lo = ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) ^
                      c;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
            crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
            crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
            crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        len--;
    }
    return ~c;
}

uint32_t crc32c_extend_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_sw_run(crc, buf, len);
}

#ifdef CRC32C_HAVE_X86
__attribute__((target("sse4.2"))) uint32_t
crc32c_extend_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    return ~(uint32_t)c;
}
#else
uint32_t crc32c_extend_hw(uint32_t crc, const void *buf, size_t len)
{
    /* No hardware path on this architecture: callers must check
       crc32c_hw_available() first; stay correct if they do not. */
    return crc32c_extend_sw(crc, buf, len);
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_impl(crc, buf, len);
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_extend(0, buf, len);
}
