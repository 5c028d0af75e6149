/*
 * cursor.c - durable per-sink delivery positions. See cursor.h.
 */
#include "cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

#define CURSOR_MAGIC "logferry-cursor 1\n"
/* A cursor lists at most the segments of one spool; cap what we read. */
#define CURSOR_MAX_BYTES (16u * 1024u * 1024u)

static void entries_clear(cursor *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].segment);
    c->n = 0;
}

void cursor_free(cursor *c)
{
    if (!c)
        return;
    entries_clear(c);
    free(c->e);
    free(c->path);
    memset(c, 0, sizeof *c);
}

cursor_entry *cursor_find(cursor *c, const char *segment)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].segment, segment) == 0)
            return &c->e[i];
    return NULL;
}

cursor_entry *cursor_get(cursor *c, const char *segment)
{
    cursor_entry *e = cursor_find(c, segment);
    if (e)
        return e;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        cursor_entry *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne)
            return NULL;
        c->e = ne;
        c->cap = nc;
    }
    char *s = strdup(segment);
    if (!s)
        return NULL;
    c->e[c->n] = (cursor_entry){s, 0, 0};
    return &c->e[c->n++];
}

void cursor_remove(cursor *c, const char *segment)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].segment, segment) == 0) {
            free(c->e[i].segment);
            c->e[i] = c->e[--c->n];
            return;
        }
}

int cursor_load(cursor *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    if (!c->path) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot open cursor: %s", path,
                 strerror(errno));
        return -1;
    }
    char *buf = malloc(CURSOR_MAX_BYTES + 1);
    size_t len = buf ? fread(buf, 1, CURSOR_MAX_BYTES + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || len > CURSOR_MAX_BYTES) {
        snprintf(err, errlen, "%s: cannot read cursor (%s)", path,
                 !buf   ? "out of memory"
                 : rerr ? "read error"
                        : "too large");
        free(buf);
        return -1;
    }
    buf[len] = 0;
    int rc = -1, line = 1;
    size_t ml = strlen(CURSOR_MAGIC);
    if (len < ml || memcmp(buf, CURSOR_MAGIC, ml) != 0) {
        snprintf(err, errlen, "%s:1: not a logferry cursor file", path);
        goto out;
    }
    char *p = buf + ml;
    for (;;) {
        line++;
        char *nl = strchr(p, '\n');
        if (!nl) {
            snprintf(err, errlen, "%s:%d: cursor file is truncated", path,
                     line);
            goto out;
        }
        /* Parse a copy: the CRC covers the bytes as they are. */
        char ln[512];
        size_t ll = (size_t)(nl - p);
        if (ll >= sizeof ln) {
            snprintf(err, errlen, "%s:%d: cursor line too long", path, line);
            goto out;
        }
        memcpy(ln, p, ll);
        ln[ll] = 0;
        if (strncmp(ln, "crc ", 4) == 0) {
            unsigned long want = strtoul(ln + 4, NULL, 16);
            uint32_t got = crc32c(buf, (size_t)(p - buf));
            if (got != (uint32_t)want) {
                snprintf(err, errlen,
                         "%s:%d: cursor checksum mismatch (file damaged)", path,
                         line);
                goto out;
            }
            rc = 0;
            break;
        }
        char name[256];
        unsigned long long off;
        int done;
        if (sscanf(ln, "seg %255s %llu %d", name, &off, &done) != 3 ||
            (done != 0 && done != 1)) {
            snprintf(err, errlen, "%s:%d: malformed cursor line", path, line);
            goto out;
        }
        cursor_entry *e = cursor_get(c, name);
        if (!e) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto out;
        }
        e->offset = off;
        e->done = done;
        p = nl + 1;
    }
out:
    if (rc != 0)
        entries_clear(c);
    free(buf);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cursor_save(const cursor *c, char *err, size_t errlen)
{
    size_t cap = strlen(CURSOR_MAGIC) + 32, len;
    for (size_t i = 0; i < c->n; i++)
        cap += strlen(c->e[i].segment) + 48;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", c->path);
        return -1;
    }
    len = (size_t)sprintf(buf, "%s", CURSOR_MAGIC);
    for (size_t i = 0; i < c->n; i++)
        len +=
            (size_t)sprintf(buf + len, "seg %s %llu %d\n", c->e[i].segment,
                            (unsigned long long)c->e[i].offset, c->e[i].done);
    len += (size_t)sprintf(buf + len, "crc %08x\n", crc32c(buf, len));

    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: write failed: %s", tmp,
                     w < 0 ? strerror(errno) : "no progress");
            goto out_close;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out_close;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "%s: close failed: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp, c->path) != 0) {
        snprintf(err, errlen, "%s: rename failed: %s", c->path,
                 strerror(errno));
        goto out_unlink;
    }
    if (fsync_dir_of(c->path) != 0) {
        snprintf(err, errlen, "%s: fsync of directory failed: %s", c->path,
                 strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
out_close:
    close(fd);
out_unlink:
    unlink(tmp);
out:
    free(buf);
    return rc;
}
