/*
 * aws_host.h - the AWS services the agent lends to sinks (lf_host.aws_*):
 * one HTTP client, one credential cache and the base credential provider
 * for the whole agent, configured by the `aws { ... }` group of the
 * config. Sinks ask for an identity (region, role, ExternalId) and make
 * calls; signing and credentials never leave the agent.
 */
#ifndef LOGFERRY_AWS_HOST_H
#define LOGFERRY_AWS_HOST_H

#include <stddef.h>

#include "config.h"
#include "logferry/sink.h"

typedef struct aws_host aws_host;

/* Build the services from the config's aws block (AK_* values, borrowed
 * only for the call). Logs a warning when static keys are configured and
 * a loud one when TLS verification is off. Returns NULL with err set. */
aws_host *aws_host_create(const conf_block *aws, char *err, size_t errlen);

/* Free. Accepts NULL. Only once no sink uses it. */
void aws_host_destroy(aws_host *a);

/* Fill the aws_* members of `h` so they use `a`. */
void aws_host_attach(aws_host *a, lf_host *h);

/* Number of distinct cached identities (for status and tests). */
size_t aws_host_identities(aws_host *a);

#endif
