/*
 * cursor.h - a sink instance's durable delivery position.
 *
 * A cursor maps each spool segment the sink has touched to the end offset
 * of everything acknowledged in it, and marks the segments it has finished
 * (complete and fully acknowledged). It is advanced only after the sink
 * acknowledged every record before that offset, so after a crash delivery
 * resumes at the cursor and nothing acknowledged-to-the-writer is lost.
 *
 * File format (text, one line each, ending with a CRC of the lines above):
 *   logferry-cursor 1
 *   seg <segment name> <offset> <done 0|1>
 *   crc <crc32c of all preceding bytes, 8 hex digits>
 * Written atomically: temporary file, fsync, rename, fsync of the
 * directory. A reader that finds a bad CRC or syntax reports the file and
 * line instead of guessing.
 */
#ifndef LOGFERRY_CURSOR_H
#define LOGFERRY_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct cursor_entry {
    char *segment; /* owned */
    uint64_t offset;
    int done;
} cursor_entry;

typedef struct cursor {
    char *path; /* owned */
    cursor_entry *e;
    size_t n, cap;
} cursor;

/* Initialise `c` for the file at `path` and read it. A missing file gives
 * an empty cursor and returns 0. A damaged file returns -1 with the reason
 * (file and line) in err and leaves `c` empty but usable. Free with
 * cursor_free(). */
int cursor_load(cursor *c, const char *path, char *err, size_t errlen);

/* Write the cursor atomically and durably. Returns 0, or -1 with err. */
int cursor_save(const cursor *c, char *err, size_t errlen);

/* The entry for `segment`, or NULL. */
cursor_entry *cursor_find(cursor *c, const char *segment);

/* The entry for `segment`, added at offset 0 if absent; NULL on OOM. */
cursor_entry *cursor_get(cursor *c, const char *segment);

/* Drop the entry for `segment` if present. */
void cursor_remove(cursor *c, const char *segment);

/* Free the entries and the path. Accepts NULL. */
void cursor_free(cursor *c);

#endif
