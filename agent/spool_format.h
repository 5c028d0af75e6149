/*
 * spool_format.h - the on-disk spool format, shared by the writer library
 * (liblogferry) and the agent. docs/ARCHITECTURE.md describes it for
 * people; this file is the reference for code. All integers are
 * little-endian.
 *
 * A spool is a directory (0700) of segment files (0600) named
 *   <created_ns:016x>-<writer_id:016x>-<seq:08u>.lfs
 * so that a plain sort of the names is the order of creation. A writer
 * creates a segment under a hidden temporary name (".<name>.tmp"), takes
 * an exclusive flock() on it, writes the header, then renames it into
 * place: the agent never sees a segment without its writer's lock. The
 * lock is held until the writer rotates or closes, so "lock free" means
 * "complete": sealed, or its writer died.
 *
 * Segment = header (64 bytes) + frames.
 *   header: magic "LFSPOOL\0" | u16 version | u16 header_size | u32 flags
 *           | u64 writer_id | i64 created_ns | u64 seq | u32 pid
 *           | 16 bytes reserved (zero) | u32 crc32c(bytes 0..59)
 *   frame:  u32 sync (SPOOL_FRAME_SYNC) | u32 len | u32 crc | len bytes
 *           crc = crc32c(the 4 bytes of len, then the payload)
 * A frame never exceeds SPOOL_FRAME_HDR + SPOOL_MAX_PAYLOAD (the same 4 MiB
 * as LF_MAX_RECORD_BYTES in logferry/writer.h). A reader
 * that meets a bad sync, an impossible length or a CRC mismatch scans
 * forward for the next offset where sync, length and CRC all hold: the
 * damage between is reported and skipped, never delivered.
 */
#ifndef LOGFERRY_SPOOL_FORMAT_H
#define LOGFERRY_SPOOL_FORMAT_H

#include <stdint.h>

#define SPOOL_MAGIC "LFSPOOL\0"
#define SPOOL_MAGIC_LEN 8
#define SPOOL_VERSION 1u
#define SPOOL_HEADER_SIZE 64u
#define SPOOL_FRAME_SYNC 0x4d52464cu   /* "LFRM" read as little-endian */
#define SPOOL_FRAME_PURGED 0x5052464cu /* "LFRP" */
#define SPOOL_FRAME_HDR 12u
/* Largest frame payload; equal to LF_MAX_RECORD_BYTES (writer.h), kept here
   so the format is self-contained. A longer length field is damage. */
#define SPOOL_MAX_PAYLOAD (4u * 1024u * 1024u)
#define SPOOL_SEGMENT_SUFFIX ".lfs"
/* Header flag: frames hold DeadLetter messages, not InvocationRecords. */
#define SPOOL_FLAG_DEAD_LETTER 0x1u

typedef struct spool_header {
    uint16_t version;
    uint16_t header_size;
    uint32_t flags;
    uint64_t writer_id;
    int64_t created_ns;
    uint64_t seq;
    uint32_t pid;
} spool_header;

#endif
