/*
 * awsname.c - whole-value checks of AWS names. See awsname.h.
 */
#include "awsname.h"

#include <string.h>

static int name_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("_+=,.@-/", c));
}

int lf_valid_role_arn(const char *s, size_t n)
{
    if (n > LF_ROLE_ARN_MAX || n < 4 || memcmp(s, "arn:", 4) != 0)
        return 0;
    const char *p = s + 4, *end = s + n;
    const char *c = memchr(p, ':', (size_t)(end - p));
    if (!c || c == p)
        return 0;
    for (const char *q = p; q < c; q++)
        if (!((*q >= 'a' && *q <= 'z') || *q == '-'))
            return 0;
    p = c + 1;
    if (end - p < 6 || memcmp(p, "iam::", 5) != 0)
        return 0;
    p += 5;
    for (int i = 0; i < 12; i++, p++)
        if (p >= end || *p < '0' || *p > '9')
            return 0;
    if (end - p < 7 || memcmp(p, ":role/", 6) != 0)
        return 0;
    p += 6;
    if (end[-1] == '/')
        return 0;
    for (; p < end; p++)
        if (!name_char((unsigned char)*p))
            return 0;
    return 1;
}
