/*
 * cwl_template.c - what CloudWatch names may hold: the character sets of
 * the templated parts (role_arn, external_id, session_name, log_group,
 * log_stream) given to the shared template engine (sinks/shared/tmpl.h),
 * and the whole-value checks after expansion.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

static int char_ok(cwl_charset cs, unsigned char c)
{
    if (isalnum(c) && c < 0x80)
        return 1;
    switch (cs) {
    case CWL_CS_GROUP:
        return c == '.' || c == '_' || c == '/' || c == '#' || c == '-';
    case CWL_CS_STREAM:
        return c >= 0x20 && c != ':' && c != '*' && c != 0x7f;
    case CWL_CS_ARN:
    case CWL_CS_SESSION:
        return strchr("_+=,.@-", c) != NULL && c != 0;
    case CWL_CS_EXTID:
        return strchr("_+=,.@:/-", c) != NULL && c != 0;
    }
    return 0;
}

static const char *const refused[] = {
    "holds characters not allowed in a log group name",
    "holds characters not allowed in a log stream name",
    "holds characters not allowed in a role ARN",
    "holds characters not allowed in an ExternalId",
    "holds characters not allowed in a session name",
};

static const char *check(int cs, const char *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!char_ok((cwl_charset)cs, (unsigned char)v[j]))
            return refused[cs];
    return NULL;
}

cwl_tmpl *cwl_tmpl_parse(const char *text, cwl_charset cs, const char *hostname,
                         char *err, size_t errlen)
{
    const lf_tmpl_var vars[] = {{"hostname", hostname}, {NULL, NULL}};
    const lf_tmpl_spec spec = {(int)cs, check, vars, NULL, 0};
    return lf_tmpl_parse(text, &spec, err, errlen);
}

int cwl_valid_group(const char *s, size_t n)
{
    if (n < 1 || n > CWL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(CWL_CS_GROUP, (unsigned char)s[i]))
            return 0;
    return 1;
}

int cwl_valid_stream(const char *s, size_t n)
{
    if (n < 1 || n > CWL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(CWL_CS_STREAM, (unsigned char)s[i]))
            return 0;
    return 1;
}
