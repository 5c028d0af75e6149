/*
 * fdio.h - whole reads and writes on file descriptors for the sink
 * modules (their outputs, staging files and logs), retrying short
 * transfers and EINTR. Compiled into the modules (sinks/shared/).
 */
#ifndef LOGFERRY_SINK_FDIO_H
#define LOGFERRY_SINK_FDIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all n bytes at p (borrowed) at the file position / at offset
 * off. Return 0, or -1 with errno set by the failing call. */
int fd_write_all(int fd, const void *p, size_t n);
int fd_pwrite_all(int fd, const void *p, size_t n, uint64_t off);

/* Read up to n bytes at offset off into p, stopping early only at the
 * end of the file. Returns the bytes read, or -1 with errno set. */
ssize_t fd_pread_upto(int fd, void *p, size_t n, uint64_t off);

#endif
