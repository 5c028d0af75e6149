/*
 * log.h - the agent's own log: one line per event on stderr,
 *   2026-11-25T13:28:04.123Z level=info msg="..." key=value ...
 * written with a single write() so lines from threads never interleave.
 *
 * Rule for every caller: never put record content or a secret (access
 * key, session token, ExternalId) in a line at INFO or above. Counts,
 * names of files, sinks and segments are fine.
 */
#ifndef LOGFERRY_LOG_H
#define LOGFERRY_LOG_H

#include <stdarg.h>

#include "logferry/sink.h"

/* Set the threshold; lines above it are dropped. Thread-safe. */
void log_set_level(lf_log_level level);
lf_log_level log_get_level(void);

/* Parse "error" / "warn" / "info" / "debug"; -1 if unknown. */
int log_level_parse(const char *s);

/* Log one event. `prefix` (may be NULL) names the component, e.g.
 * "sink file[local]"; fmt is printf-style and should read as a message
 * followed by key=value pairs. */
void log_msg(lf_log_level level, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(lf_log_level level, const char *prefix, const char *fmt,
              va_list ap);

#define log_error(...) log_msg(LF_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LF_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LF_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(LF_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
