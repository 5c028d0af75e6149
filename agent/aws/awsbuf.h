/*
 * awsbuf.h - a growable byte buffer with a hard cap, shared by the AWS
 * modules (signer, HTTP, credentials) for canonical requests, response
 * bodies and parsed fields. Crossing the cap is a reported condition,
 * never a silent truncation or an unbounded allocation (STYLE: every
 * buffer has a cap).
 *
 * Internal to agent/aws/; sinks never see it.
 */
#ifndef LOGFERRY_AWS_AWSBUF_H
#define LOGFERRY_AWS_AWSBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct awsbuf {
    char *data;   /* owned; always NUL-terminated once anything was added */
    size_t len;   /* bytes used, not counting the NUL */
    size_t alloc; /* bytes allocated */
    size_t cap;   /* most bytes `len` may reach */
    int err;      /* sticky: 0, -ENOMEM or -E2BIG after a failed append */
} awsbuf;

/* Start an empty buffer that may hold at most `cap` bytes. Allocates
 * nothing until the first append. */
void awsbuf_init(awsbuf *b, size_t cap);

/* Append bytes. On failure (allocation, or len would pass cap) the buffer
 * keeps what it had, the error sticks in b->err and later appends are
 * no-ops, so a caller may append many pieces and check once. Returns 0 or
 * the error. */
int awsbuf_add(awsbuf *b, const void *p, size_t n);
int awsbuf_adds(awsbuf *b, const char *s);
int awsbuf_addc(awsbuf *b, char c);
int awsbuf_printf(awsbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Hand the contents over: returns the NUL-terminated string (an empty
 * string if nothing was added), owned by the caller who frees it with
 * free(); the buffer is reset to empty. NULL on allocation failure or if
 * b->err is set (the buffer is freed either way). */
char *awsbuf_take(awsbuf *b);

/* Free the contents; the buffer can be reused. Accepts NULL. */
void awsbuf_free(awsbuf *b);

#endif
