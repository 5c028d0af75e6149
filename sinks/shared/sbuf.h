/*
 * sbuf.h - a growable byte buffer with a cap, for the sink modules'
 * request bodies, staged blocks and destination keys. Compiled into the
 * modules that use it (sinks/shared/, not a module).
 *
 * The bytes are always NUL-terminated after a successful put/printf (the
 * terminator is not counted in len), so a buffer of text can be handed to
 * C string functions as is.
 */
#ifndef LOGFERRY_SINK_SBUF_H
#define LOGFERRY_SINK_SBUF_H

#include <stddef.h>

typedef struct sbuf {
    char *p;    /* owned; NULL until the first growth */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* cap <= max, terminator included; 0: no cap */
} sbuf;

/* Make room for `more` bytes past len. Returns 0, or -1 (over max or out
 * of memory; the buffer is unchanged). */
int sbuf_reserve(sbuf *b, size_t more);
/* Append n bytes at p (borrowed) / a C string / formatted text. Return 0,
 * or -1 with the buffer unchanged. */
int sbuf_put(sbuf *b, const void *p, size_t n);
int sbuf_puts(sbuf *b, const char *s);
int sbuf_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free the memory and zero the buffer (max is kept). */
void sbuf_free(sbuf *b);

#endif
