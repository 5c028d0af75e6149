/*
 * awsname.h - whole-value checks of AWS names that templates produce, for
 * the sink modules (sinks/shared/). The agent checks a role ARN again when
 * it acquires credentials; checking in the sink first makes a malformed
 * expansion (an account_id that is not 12 digits) that record's problem,
 * named in its dead letter, instead of a failed AssumeRole.
 */
#ifndef LOGFERRY_SINK_AWSNAME_H
#define LOGFERRY_SINK_AWSNAME_H

#include <stddef.h>

/* Longest role ARN accepted (IAM allows 2,048 characters). */
#define LF_ROLE_ARN_MAX 2048

/* Whether s[0..n) is arn:<partition>:iam::<12 digits>:role/<path/name>:
 * a lowercase partition, a name of [A-Za-z0-9_+=,.@-] with '/' between
 * path parts, not empty and not ending in '/'. */
int lf_valid_role_arn(const char *s, size_t n);

#endif
