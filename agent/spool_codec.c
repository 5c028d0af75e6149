/*
 * spool_codec.c - encode/decode of segment headers, frames and segment
 * names. Pure functions over caller buffers; see spool_codec.h.
 */
#include "spool_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"

/* Offsets inside the 64-byte header (spool_format.h). */
#define HDR_OFF_VERSION 8
#define HDR_OFF_HEADER_SIZE 10
#define HDR_OFF_FLAGS 12
#define HDR_OFF_WRITER_ID 16
#define HDR_OFF_CREATED_NS 24
#define HDR_OFF_SEQ 32
#define HDR_OFF_PID 40
#define HDR_OFF_RESERVED 44
#define HDR_OFF_CRC 60

_Static_assert(HDR_OFF_CRC + 4 == SPOOL_HEADER_SIZE, "header layout");
_Static_assert(HDR_OFF_RESERVED + 16 == HDR_OFF_CRC, "header layout");

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

void spool_header_encode(const spool_header *h, uint8_t out[SPOOL_HEADER_SIZE])
{
    memset(out, 0, SPOOL_HEADER_SIZE);
    memcpy(out, SPOOL_MAGIC, SPOOL_MAGIC_LEN);
    put_le16(out + HDR_OFF_VERSION, h->version);
    put_le16(out + HDR_OFF_HEADER_SIZE, h->header_size);
    put_le32(out + HDR_OFF_FLAGS, h->flags);
    put_le64(out + HDR_OFF_WRITER_ID, h->writer_id);
    put_le64(out + HDR_OFF_CREATED_NS, (uint64_t)h->created_ns);
    put_le64(out + HDR_OFF_SEQ, h->seq);
    put_le32(out + HDR_OFF_PID, h->pid);
    put_le32(out + HDR_OFF_CRC, crc32c(out, HDR_OFF_CRC));
}

spool_header_status spool_header_decode(const uint8_t *buf, size_t len,
                                        spool_header *out)
{
    if (len < SPOOL_HEADER_SIZE)
        return SPOOL_HEADER_SHORT;
    if (memcmp(buf, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0)
        return SPOOL_HEADER_BAD_MAGIC;
    out->version = get_le16(buf + HDR_OFF_VERSION);
    out->header_size = get_le16(buf + HDR_OFF_HEADER_SIZE);
    /* Version before CRC: a newer format may checksum differently, and
       "unsupported version" is the message an operator can act on. */
    if (out->version != SPOOL_VERSION)
        return SPOOL_HEADER_BAD_VERSION;
    if (out->header_size != SPOOL_HEADER_SIZE)
        return SPOOL_HEADER_BAD_SIZE;
    if (get_le32(buf + HDR_OFF_CRC) != crc32c(buf, HDR_OFF_CRC))
        return SPOOL_HEADER_BAD_CRC;
    out->flags = get_le32(buf + HDR_OFF_FLAGS);
    out->writer_id = get_le64(buf + HDR_OFF_WRITER_ID);
    out->created_ns = (int64_t)get_le64(buf + HDR_OFF_CREATED_NS);
    out->seq = get_le64(buf + HDR_OFF_SEQ);
    out->pid = get_le32(buf + HDR_OFF_PID);
    return SPOOL_HEADER_OK;
}

const char *spool_header_strerror(spool_header_status st)
{
    switch (st) {
    case SPOOL_HEADER_OK:
        return "ok";
    case SPOOL_HEADER_SHORT:
        return "file shorter than a segment header";
    case SPOOL_HEADER_BAD_MAGIC:
        return "bad magic (not a spool segment)";
    case SPOOL_HEADER_BAD_VERSION:
        return "unsupported segment version";
    case SPOOL_HEADER_BAD_SIZE:
        return "bad header size for its version";
    case SPOOL_HEADER_BAD_CRC:
        return "header checksum mismatch";
    }
    return "unknown header status";
}

uint32_t spool_frame_crc(const void *payload, uint32_t len)
{
    uint8_t lenb[4];
    put_le32(lenb, len);
    return crc32c_extend(crc32c(lenb, sizeof lenb), payload, len);
}

void spool_frame_header_encode(uint8_t out[SPOOL_FRAME_HDR],
                               const void *payload, uint32_t len)
{
    put_le32(out, SPOOL_FRAME_SYNC);
    put_le32(out + 4, len);
    put_le32(out + 8, spool_frame_crc(payload, len));
}

void spool_frame_purged_header_encode(uint8_t out[SPOOL_FRAME_HDR],
                                      uint32_t len)
{
    put_le32(out, SPOOL_FRAME_PURGED);
    put_le32(out + 4, len);
    put_le32(out + 8, crc32c(out + 4, 4));
}

spool_frame_status spool_frame_check(const uint8_t *buf, size_t avail,
                                     spool_frame *out)
{
    spool_frame tmp;
    if (!out)
        out = &tmp;
    memset(out, 0, sizeof *out);

    uint8_t sync[4], purged[4];
    put_le32(sync, SPOOL_FRAME_SYNC);
    put_le32(purged, SPOOL_FRAME_PURGED);
    size_t n = avail < 4 ? avail : 4;
    if (memcmp(buf, sync, n) != 0) {
        if (memcmp(buf, purged, n) != 0) {
            out->fault = SPOOL_FAULT_SYNC;
            return SPOOL_FRAME_BAD;
        }
        out->purged = 1; /* only a whole "LFRP" gets here */
    }
    if (avail < 8) {
        out->size = SPOOL_FRAME_HDR;
        return SPOOL_FRAME_INCOMPLETE;
    }
    uint32_t len = get_le32(buf + 4);
    if (len > SPOOL_MAX_PAYLOAD) {
        out->fault = SPOOL_FAULT_LENGTH;
        return SPOOL_FRAME_BAD;
    }
    out->len = len;
    out->size = (size_t)SPOOL_FRAME_HDR + len;
    if (avail < out->size)
        return SPOOL_FRAME_INCOMPLETE;
    if (out->purged) {
        /* Only the length is covered: the payload is zeros by
           construction, and a purge must not depend on reading it. */
        if (get_le32(buf + 8) != crc32c(buf + 4, 4)) {
            out->fault = SPOOL_FAULT_CRC;
            return SPOOL_FRAME_BAD;
        }
        out->payload = buf + SPOOL_FRAME_HDR;
        return SPOOL_FRAME_OK;
    }
    if (get_le32(buf + 8) != spool_frame_crc(buf + SPOOL_FRAME_HDR, len)) {
        out->fault = SPOOL_FAULT_CRC;
        return SPOOL_FRAME_BAD;
    }
    out->payload = buf + SPOOL_FRAME_HDR;
    return SPOOL_FRAME_OK;
}

spool_frame_status spool_frame_resync(const uint8_t *buf, size_t avail,
                                      size_t from, size_t *at)
{
    const uint8_t first = (uint8_t)(SPOOL_FRAME_SYNC & 0xff);
    size_t i = from;
    while (i < avail) {
        /* Every candidate starts with the sync word's first byte. */
        const uint8_t *p = memchr(buf + i, first, avail - i);
        if (!p)
            break;
        i = (size_t)(p - buf);
        spool_frame_status st = spool_frame_check(p, avail - i, NULL);
        if (st != SPOOL_FRAME_BAD) {
            *at = i;
            return st;
        }
        i++;
    }
    *at = avail;
    return SPOOL_FRAME_BAD;
}

int spool_segment_name(char *out, size_t outlen, int64_t created_ns,
                       uint64_t writer_id, uint64_t seq)
{
    int n =
        snprintf(out, outlen, "%016" PRIx64 "-%016" PRIx64 "-%08" PRIu64 "%s",
                 (uint64_t)created_ns, writer_id, seq, SPOOL_SEGMENT_SUFFIX);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

/* Parse exactly `ndigits` lowercase hex digits (the names are written with
   %016x, so anything else is not one of ours). */
static int parse_hex(const char *s, int ndigits, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < ndigits; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

int spool_segment_name_parse(const char *name, int64_t *created_ns,
                             uint64_t *writer_id, uint64_t *seq)
{
    uint64_t c, w, q = 0;
    if (strlen(name) >= SPOOL_SEGMENT_NAME_MAX)
        return -1;
    if (parse_hex(name, 16, &c) || name[16] != '-' ||
        parse_hex(name + 17, 16, &w) || name[33] != '-')
        return -1;
    const char *p = name + 34;
    int ndigits = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (q > (UINT64_MAX - d) / 10)
            return -1;
        q = q * 10 + d;
        p++;
        ndigits++;
    }
    /* %08u pads to 8 digits and grows past them; fewer is not ours. */
    if (ndigits < 8 || strcmp(p, SPOOL_SEGMENT_SUFFIX) != 0)
        return -1;
    if (created_ns)
        *created_ns = (int64_t)c;
    if (writer_id)
        *writer_id = w;
    if (seq)
        *seq = q;
    return 0;
}
