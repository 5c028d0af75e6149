/*
 * spool_codec.h - pure encode/decode of the spool format (spool_format.h):
 * segment headers, frame headers, frame classification and resync, and
 * segment file names. No I/O and no allocation: every function works on
 * caller-owned buffers, so the writer library and the agent's reader share
 * one definition of "valid".
 */
#ifndef LOGFERRY_SPOOL_CODEC_H
#define LOGFERRY_SPOOL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "spool_format.h"

/* ---- segment header ---------------------------------------------------- */

typedef enum spool_header_status {
    SPOOL_HEADER_OK = 0,
    SPOOL_HEADER_SHORT,       /* fewer than SPOOL_HEADER_SIZE bytes */
    SPOOL_HEADER_BAD_MAGIC,   /* not a spool segment */
    SPOOL_HEADER_BAD_VERSION, /* written by a newer (or broken) writer */
    SPOOL_HEADER_BAD_SIZE,    /* header_size is not the one of its version */
    SPOOL_HEADER_BAD_CRC,     /* header bytes damaged */
} spool_header_status;

/* Encode `h` into the 64 bytes at `out` (caller-owned): magic, fields,
 * zero reserved bytes and the CRC. h->version and h->header_size are
 * written as given; set them to SPOOL_VERSION / SPOOL_HEADER_SIZE. */
void spool_header_encode(const spool_header *h, uint8_t out[SPOOL_HEADER_SIZE]);

/* Decode and validate the header in the first `len` bytes of `buf`
 * (borrowed). On SPOOL_HEADER_OK *out holds the fields; otherwise *out is
 * unspecified. Checks, in order: length, magic, version, header_size, CRC. */
spool_header_status spool_header_decode(const uint8_t *buf, size_t len,
                                        spool_header *out);

/* Static text for a header status; never NULL. */
const char *spool_header_strerror(spool_header_status st);

/* ---- frames ------------------------------------------------------------ */

/* CRC stored in a frame of `len` payload bytes at `payload`. */
uint32_t spool_frame_crc(const void *payload, uint32_t len);

/* Write the 12-byte frame header for `len` payload bytes at `payload`
 * (borrowed) into `out` (caller-owned, may directly precede the payload).
 * The caller keeps len <= SPOOL_MAX_PAYLOAD. */
void spool_frame_header_encode(uint8_t out[SPOOL_FRAME_HDR],
                               const void *payload, uint32_t len);

/* Write the 12-byte header of a purged frame of `len` payload bytes into
 * `out` (caller-owned). The payload itself must be zeroed by the caller
 * first (agent/scrub.c), so a crash in between leaves damage, never a
 * "purged" frame that still holds its record. */
void spool_frame_purged_header_encode(uint8_t out[SPOOL_FRAME_HDR],
                                      uint32_t len);

typedef enum spool_frame_status {
    SPOOL_FRAME_OK = 0,         /* a complete frame with a valid CRC */
    SPOOL_FRAME_INCOMPLETE = 1, /* could be a frame; more bytes needed */
    SPOOL_FRAME_BAD = 2,        /* cannot be a frame, whatever follows */
} spool_frame_status;

typedef enum spool_frame_fault {
    SPOOL_FAULT_NONE = 0,
    SPOOL_FAULT_SYNC,   /* sync word wrong */
    SPOOL_FAULT_LENGTH, /* len > SPOOL_MAX_PAYLOAD */
    SPOOL_FAULT_CRC,    /* CRC mismatch */
} spool_frame_fault;

typedef struct spool_frame {
    const uint8_t *payload;  /* OK: points into the caller's buffer (the
                                zeros of a purged frame) */
    uint32_t len;            /* OK: payload bytes; INCOMPLETE: the length
                                field if the header is whole, else 0 */
    size_t size;             /* OK: SPOOL_FRAME_HDR + len. INCOMPLETE: bytes
                                needed from the frame start to decide */
    spool_frame_fault fault; /* BAD: why */
    int purged;              /* OK: a purged frame (SPOOL_FRAME_PURGED),
                                no record in it */
} spool_frame;

/* Classify the `avail` bytes at `buf` (borrowed) as the start of a frame,
 * a record frame or a purged one (out->purged; its payload is not checked).
 * A partial header whose available bytes agree with the sync word, or a
 * whole header whose payload runs past `avail`, is INCOMPLETE; a length
 * over SPOOL_MAX_PAYLOAD is BAD as soon as the length field is there.
 * *out (may be NULL) describes the result. */
spool_frame_status spool_frame_check(const uint8_t *buf, size_t avail,
                                     spool_frame *out);

/* Scan `buf[from..avail)` (borrowed) for the first offset at which
 * spool_frame_check() is not BAD. Returns SPOOL_FRAME_OK or
 * SPOOL_FRAME_INCOMPLETE with *at set to that offset (relative to buf),
 * or SPOOL_FRAME_BAD (*at = avail) if no offset in range can start a frame.
 * An INCOMPLETE answer stops the scan: whether a valid frame follows it can
 * only be decided with more bytes, or by treating it as BAD and scanning
 * again from *at + 1 once the input is known to be final. */
spool_frame_status spool_frame_resync(const uint8_t *buf, size_t avail,
                                      size_t from, size_t *at);

/* ---- segment names ----------------------------------------------------- */

/* "<created_ns:016x>-<writer_id:016x>-<seq:08u>.lfs" plus NUL fits. */
#define SPOOL_SEGMENT_NAME_MAX 64

/* Write the segment file name into `out` (caller-owned, `outlen` bytes).
 * Returns 0, or -1 if it does not fit. */
int spool_segment_name(char *out, size_t outlen, int64_t created_ns,
                       uint64_t writer_id, uint64_t seq);

/* Parse a segment file name (no directory part). Returns 0 and sets the
 * out-parameters (each may be NULL), or -1 if `name` is not exactly a
 * segment name (hidden temporary names are not). */
int spool_segment_name_parse(const char *name, int64_t *created_ns,
                             uint64_t *writer_id, uint64_t *seq);

#endif
