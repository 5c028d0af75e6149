/*
 * sbuf.c - growable buffers with a cap. See sbuf.h.
 */
#include "sbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sbuf_reserve(sbuf *b, size_t more)
{
    if (more > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + more;
    if (need <= b->cap)
        return 0;
    if (b->max && need > b->max)
        return -1;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    if (b->max && nc > b->max)
        nc = b->max;
    char *np = realloc(b->p, nc);
    if (!np)
        return -1;
    b->p = np;
    b->cap = nc;
    return 0;
}

int sbuf_put(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n + 1) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int sbuf_puts(sbuf *b, const char *s)
{
    return sbuf_put(b, s, strlen(s));
}

int sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof tmp)
        return sbuf_put(b, tmp, (size_t)n);
    if (sbuf_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sbuf_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
