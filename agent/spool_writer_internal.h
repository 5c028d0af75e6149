/*
 * spool_writer_internal.h - what the agent needs of the writer library
 * beyond the public writer.h. Not exported from liblogferry.so.
 */
#ifndef LOGFERRY_SPOOL_WRITER_INTERNAL_H
#define LOGFERRY_SPOOL_WRITER_INTERNAL_H

#include <stdint.h>

#include "logferry/writer.h"

/* lf_writer_open(), with SPOOL_FLAG_* bits set in the header of every
 * segment the writer creates (the agent's dead-letter spool sets
 * SPOOL_FLAG_DEAD_LETTER so readers know its frames hold DeadLetters).
 * Same contract as lf_writer_open() otherwise. */
int spool_writer_open_flags(const char *dir, const lf_writer_options *opt,
                            uint32_t header_flags, lf_writer **out,
                            char *errbuf, size_t errlen);

#endif
