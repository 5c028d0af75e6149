/*
 * redact_config.h - redaction rules from the config file.
 *
 *   redact = (
 *     { name = "prompts"; fields = ["prompt_text"]; action = "hash";
 *       key_file = "/etc/logferry/hmac.key"; },
 *     { name = "pii"; fields = ["*text", "attributes.*"];
 *       detect = ["email", "card", "ssn"]; action = "mask";
 *       mask = "[{type}]"; },
 *     { fields = ["error_message"]; action = "truncate"; bytes = 200; }
 *   );
 *
 * The same list may stand at the top level (every record), in a route
 * (records of that route) and in a sink (what that sink receives); they
 * apply in that order. Errors name file:line and the rule.
 */
#ifndef LOGFERRY_REDACT_CONFIG_H
#define LOGFERRY_REDACT_CONFIG_H

#include <libconfig.h>

#include "config.h"
#include "redact.h"

/* Compile the list `list` (a libconfig list of groups; may be NULL: no
 * rules). On success returns the rules (NULL when the list is empty) and
 * appends their canonical text to *text (malloc'ed, may be NULL at
 * first; for reload comparisons). On error adds messages to errs and sets
 * *failed. `where` names the list in messages ("redact",
 * "routes[x].redact", "sinks[s].redact"). */
redact_rules *redact_config_load(config_setting_t *list, const char *path,
                                 const char *where, conf_errors *errs,
                                 int *failed, char **text);

#endif
