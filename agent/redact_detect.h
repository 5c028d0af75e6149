/*
 * redact_detect.h - the built-in PII and secret detectors of the
 * redaction engine (redact.h), as a scanner that reports spans.
 *
 * The scanner is hand-written rather than one big regular expression: a
 * single pass over the text looks at each byte once through a class table,
 * and only where a detector could start (a word start, '@', '+', '(',
 * "::") does it try that detector, so clean prose costs about a table
 * lookup per byte. Every detector is bounded: the work per start position
 * is capped or memoised, so any input is scanned in time linear in its
 * length (tested with 1 MiB adversarial inputs).
 *
 * The exact grammar of each detector, and why it is as conservative as it
 * is, is in docs/REDACTION.md; the comments above each det_*() function
 * in redact_detect.c are the reference.
 */
#ifndef LOGFERRY_REDACT_DETECT_H
#define LOGFERRY_REDACT_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "redact.h"

/* A matched span [start, end) of the scanned text. `label` is a
 * redact_detector, or REDACT_DET_COUNT + i for the i-th custom pattern of
 * a rule. */
typedef struct redact_span {
    size_t start, end;
    unsigned label;
} redact_span;

/* A growable span list; zero-initialise it, free it with
 * redact_spans_free(). Capacity is bounded by the text: detectors never
 * report more spans than bytes scanned. */
typedef struct redact_spans {
    redact_span *v;
    size_t n, cap;
} redact_spans;

/* Append one span. Returns 0, or -1 when out of memory. */
int redact_spans_push(redact_spans *sp, size_t start, size_t end,
                      unsigned label);

/* Sort by start and merge overlapping spans (the first keeps its label). */
void redact_spans_normalize(redact_spans *sp);

void redact_spans_free(redact_spans *sp);

/* Scan text[0, len) with the detectors whose bits are set in mask and
 * append what they find to *out (unsorted, possibly overlapping; call
 * redact_spans_normalize()). Returns 0, or -1 when out of memory (the
 * spans found so far stay in *out). Thread-safe; allocates only by
 * growing *out. */
int redact_detect(const char *text, size_t len, uint32_t mask,
                  redact_spans *out);

#endif
