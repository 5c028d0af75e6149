/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of spool segment headers and frames (see spool_format.h).
 *
 * Part of liblogferry (hidden there) and of the agent. The hardware path
 * (SSE4.2 `crc32` instruction) is chosen at run time; the portable
 * slicing-by-8 path gives the same results everywhere else.
 */
#ifndef LOGFERRY_CRC32C_H
#define LOGFERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend `crc`, the CRC-32C of some earlier bytes (0 for none), over `len`
 * bytes at `buf` (borrowed, any alignment). crc32c_extend(crc32c(a), b)
 * equals the CRC-32C of a followed by b. Thread-safe. */
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);

/* CRC-32C of `len` bytes at `buf`: crc32c_extend(0, buf, len). */
uint32_t crc32c(const void *buf, size_t len);

/* The two implementations behind crc32c_extend(), for tests and benches.
 * crc32c_extend_hw() must only be called when crc32c_hw_available(). */
uint32_t crc32c_extend_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_extend_hw(uint32_t crc, const void *buf, size_t len);
int crc32c_hw_available(void);

#endif
