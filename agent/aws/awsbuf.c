/*
 * awsbuf.c - capped growable buffer for the AWS modules. See awsbuf.h.
 */
#include "aws/awsbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void awsbuf_init(awsbuf *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
}

int awsbuf_add(awsbuf *b, const void *p, size_t n)
{
    if (b->err)
        return b->err;
    if (n > b->cap || b->len > b->cap - n) {
        b->err = -E2BIG;
        return b->err;
    }
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc ? b->alloc : 256;
        while (want < b->len + n + 1)
            want *= 2;
        /* Never allocate much beyond what the cap can ever use. */
        if (want > b->cap + 1)
            want = b->cap + 1;
        char *d = realloc(b->data, want);
        if (!d) {
            b->err = -ENOMEM;
            return b->err;
        }
        b->data = d;
        b->alloc = want;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int awsbuf_adds(awsbuf *b, const char *s)
{
    return awsbuf_add(b, s, strlen(s));
}

int awsbuf_addc(awsbuf *b, char c)
{
    return awsbuf_add(b, &c, 1);
}

int awsbuf_printf(awsbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = b->err ? b->err : -EINVAL;
        return b->err;
    }
    if ((size_t)n < sizeof small)
        return awsbuf_add(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->err = b->err ? b->err : -ENOMEM;
        return b->err;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = awsbuf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

char *awsbuf_take(awsbuf *b)
{
    if (b->err) {
        awsbuf_free(b);
        return NULL;
    }
    char *d = b->data;
    if (!d)
        d = calloc(1, 1);
    b->data = NULL;
    b->len = b->alloc = 0;
    return d;
}

void awsbuf_free(awsbuf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
    b->err = 0;
}
