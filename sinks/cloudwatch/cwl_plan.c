/*
 * cwl_plan.c - one destination's events, sorted and split into
 * PutLogEvents requests that keep every rule of the service:
 *
 *   - at most 10,000 events;
 *   - at most 1,048,576 bytes, counted as the UTF-8 bytes of each message
 *     plus 26 per event (the JSON around it does not count);
 *   - events in chronological order;
 *   - first to last event at most 24 hours apart.
 *
 * Pure functions on arrays, so the unit tests drive them directly.
 */
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

/* By time only: equal times keep their order in the array, which is
 * spool order (held events first, then the batch's), not `rec` order. */
static int ev_before(const cwl_event *a, const cwl_event *b)
{
    return a->ts_ms < b->ts_ms;
}

/* Insertion sort for short runs, merge sort above: stable (a merge takes
 * from the left half on ties), O(n log n), and nearly sorted input (the
 * common case: the spool is in time order per writer) costs little. */
static void sort_range(cwl_event *ev, cwl_event *tmp, size_t n)
{
    if (n <= 24) {
        for (size_t i = 1; i < n; i++) {
            cwl_event x = ev[i];
            size_t j = i;
            while (j > 0 && ev_before(&x, &ev[j - 1])) {
                ev[j] = ev[j - 1];
                j--;
            }
            ev[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    sort_range(ev, tmp, h);
    sort_range(ev + h, tmp, n - h);
    if (!ev_before(&ev[h], &ev[h - 1]))
        return; /* already in order */
    memcpy(tmp, ev, h * sizeof *ev);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        ev[k++] = ev_before(&ev[j], &tmp[i]) ? ev[j++] : tmp[i++];
    while (i < h)
        ev[k++] = tmp[i++];
}

void cwl_plan_sort(cwl_event *ev, size_t n)
{
    if (n < 2)
        return;
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++)
        sorted = !ev_before(&ev[i], &ev[i - 1]);
    if (sorted)
        return;
    cwl_event *tmp = malloc((n / 2 + 1) * sizeof *tmp);
    if (!tmp) {
        /* No memory for the merge: insertion sort is slow but correct. */
        for (size_t i = 1; i < n; i++) {
            cwl_event x = ev[i];
            size_t j = i;
            while (j > 0 && ev_before(&x, &ev[j - 1])) {
                ev[j] = ev[j - 1];
                j--;
            }
            ev[j] = x;
        }
        return;
    }
    sort_range(ev, tmp, n);
    free(tmp);
}

size_t cwl_plan_split(const cwl_event *ev, size_t n, size_t max_events,
                      size_t max_bytes, cwl_chunk *out)
{
    size_t nc = 0, i = 0;
    while (i < n) {
        size_t start = i, bytes = 0;
        while (i < n && i - start < max_events &&
               bytes + ev[i].len + CWL_EVENT_OVERHEAD <= max_bytes &&
               ev[i].ts_ms - ev[start].ts_ms <= CWL_MAX_SPAN_MS) {
            bytes += ev[i].len + CWL_EVENT_OVERHEAD;
            i++;
        }
        if (i == start) /* one event over max_bytes: alone, caller's bug */
            i++;
        out[nc].start = (uint32_t)start;
        out[nc].end = (uint32_t)i;
        nc++;
    }
    return nc;
}
