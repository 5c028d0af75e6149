/*
 * s3_wal.c - the write-ahead log of the s3 sink: one fdatasync() per
 * deliver() however many objects (tenants, hours) the batch touches.
 *
 * deliver() writes each object's new blocks to its staging file without
 * syncing it, and the same bytes, tagged with the object id and the file
 * offset, to the WAL; then it syncs the WAL alone and answers OK. Staging
 * files are synced at a checkpoint (the WAL passed S3_WAL_MAX: every
 * unsynced staging file is fdatasync()ed, a new WAL begins, the old one
 * goes; also once the log is max_age / 4 old, so that spool.max_age
 * holds for it too) and when an uploader takes a sealed object.
 *
 * After a crash, replay writes every logged record back at its offset
 * (idempotent), cuts each replayed file at the end of its last logged
 * block (anything after it was never acknowledged), syncs, and starts a
 * new WAL. An object whose upload finished is logged as DONE before its
 * file is deleted, so replay never resurrects part of an uploaded object.
 *
 * File "wal-<seq:016x>.log": magic "LFS3WAL1", then records of a 32-byte
 * header (u32 magic, u16 type, u16 zero, u64 object id, u64 file offset,
 * u32 length, u32 CRC-32C of bytes 0..27 and the data) and the data:
 *   OBJ  the staging file's header (offset 0): the file can be re-made
 *   BLK  blocks as written to the staging file at that offset
 *   DONE the object is uploaded and its file deleted (no data)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../shared/le.h"
#include "s3.h"

#define WAL_MAGIC "LFS3WAL1"
#define REC_MAGIC 0x4c415753u
#define REC_HDR 32u
#define REC_MAX (64u * 1024u * 1024u)

static void wal_path(const s3_sink *s, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/wal-%016" PRIx64 ".log", s->dir, seq);
}

int s3_wal_append(s3_sink *s, s3_wal_type type, uint64_t id, uint64_t off,
                  const void *data, size_t len)
{
    uint8_t h[REC_HDR];
    le_put32(h, REC_MAGIC);
    h[4] = (uint8_t)type;
    h[5] = h[6] = h[7] = 0;
    le_put64(h + 8, id);
    le_put64(h + 16, off);
    le_put32(h + 24, (uint32_t)len);
    uint32_t c = s3_crc32c(0, h, 28);
    le_put32(h + 28, s3_crc32c(c, data, len));
    struct iovec iov[2] = {{h, REC_HDR}, {(void *)data, len}};
    size_t total = REC_HDR + len, done = 0;
    while (done < total) {
        ssize_t w = pwritev(s->wal_fd, iov, 2, (off_t)(s->wal_size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
        /* Advance the vectors past what went out. */
        size_t k = (size_t)w;
        for (int i = 0; i < 2 && k; i++) {
            size_t t = k < iov[i].iov_len ? k : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + t;
            iov[i].iov_len -= t;
            k -= t;
        }
    }
    s->wal_size += total;
    return 0;
}

/* Start WAL seq (header, synced, its name durable). Returns the fd or
 * -1 with errno. */
static int wal_create(s3_sink *s, uint64_t seq)
{
    char p[PATH_MAX];
    wal_path(s, seq, p, sizeof p);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (fd_write_all(fd, WAL_MAGIC, 8) != 0 || fdatasync(fd) != 0 ||
        s3_fsync_dir(s->dir) != 0) {
        int e = errno;
        close(fd);
        unlink(p);
        errno = e;
        return -1;
    }
    return fd;
}

/* Delete every WAL file older than `keep`. */
static void wal_remove_older(s3_sink *s, uint64_t keep)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        int at = 0;
        if (sscanf(de->d_name, "wal-%16" SCNx64 ".log%n", &seq, &at) == 1 &&
            !de->d_name[at] && seq < keep) {
            char p[PATH_MAX];
            wal_path(s, seq, p, sizeof p);
            unlink(p);
        }
    }
    closedir(d);
}

int s3_wal_checkpoint(s3_sink *s, s3_ckpt when)
{
    const lf_host *h = s->host;
    pthread_mutex_lock(&s->wal_lock);
    int due = when == S3_CKPT_FORCE ||
              (when == S3_CKPT_IF_BIG && s->wal_size > S3_WAL_MAX) ||
              (when == S3_CKPT_IF_OLD && s->max_age_ns > 0 && s->wal_size > 8 &&
               h->now_ns(h) - s->wal_started_ns >= s->max_age_ns / 4);
    if (!due) {
        pthread_mutex_unlock(&s->wal_lock);
        return 0;
    }
    /* Every staging file written since the last checkpoint, open or
       sealed, goes to disk before the log that covers it goes away. */
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (when == S3_CKPT_IF_OLD && s->delivering) {
        /* deliver() owns the open objects right now; next tick. */
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&s->wal_lock);
        return 0;
    }
    s3_obj *lists[2] = {&s->open_list, &s->sealed};
    for (int l = 0; l < 2 && rc == 0; l++)
        for (s3_obj *o = lists[l]->next; o != lists[l]; o = o->next)
            if (o->fd >= 0 && o->unsynced) {
                if (fdatasync(o->fd) != 0) {
                    rc = -1;
                    break;
                }
                o->unsynced = 0;
            }
    pthread_mutex_unlock(&s->lock);
    int fd = -1;
    if (rc == 0 && s3_fsync_dir(s->dir) == 0 &&
        (fd = wal_create(s, s->wal_seq + 1)) >= 0) {
        close(s->wal_fd);
        s->wal_fd = fd;
        s->wal_seq++;
        s->wal_size = 8;
        s->wal_started_ns = h->now_ns(h);
        wal_remove_older(s, s->wal_seq);
        s3_fsync_dir(s->dir);
        h->counter_add(h, "wal_checkpoints", 1);
    } else {
        rc = -1;
        h->log(h, LF_LOG_WARN,
               "msg=\"WAL checkpoint failed, the log keeps growing until the "
               "next try\" error=\"%s\"",
               strerror(errno));
    }
    pthread_mutex_unlock(&s->wal_lock);
    return rc;
}

/* ---- replay ----------------------------------------------------------- */

typedef struct wal_rec {
    s3_wal_type type;
    uint64_t id, off;
    uint32_t len;
} wal_rec;

/* Read the record at *pos of fd into *r and (with data) its bytes into
 * *buf. Returns 1, 0 at the end or at a torn/damaged record, -1 on an
 * I/O or memory error. */
static int rec_read(int fd, uint64_t *pos, uint64_t end, wal_rec *r,
                    uint8_t **buf, size_t *cap)
{
    uint8_t h[REC_HDR];
    if (end - *pos < REC_HDR)
        return 0;
    if (pread(fd, h, REC_HDR, (off_t)*pos) != REC_HDR)
        return -1;
    uint32_t len = le_get32(h + 24);
    if (le_get32(h) != REC_MAGIC || h[4] < S3_WAL_OBJ || h[4] > S3_WAL_DONE ||
        len > REC_MAX || end - *pos - REC_HDR < len)
        return 0;
    if (len > *cap) {
        uint8_t *nb = realloc(*buf, len);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = len;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n =
            pread(fd, *buf + got, len - got, (off_t)(*pos + REC_HDR + got));
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    uint32_t c = s3_crc32c(0, h, 28);
    if (s3_crc32c(c, *buf, len) != le_get32(h + 28))
        return 0;
    r->type = (s3_wal_type)h[4];
    r->id = le_get64(h + 8);
    r->off = le_get64(h + 16);
    r->len = len;
    *pos += REC_HDR + len;
    return 1;
}

typedef struct replayed {
    uint64_t id, end;
    int fd;
} replayed;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int s3_wal_recover(s3_sink *s, char *err, size_t errlen)
{
    const lf_host *h = s->host;
    uint64_t *seqs = NULL, *done = NULL, max_seq = 0;
    size_t n_seqs = 0, n_done = 0;
    replayed *rp = NULL;
    size_t n_rp = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = -1;

    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", s->dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        int at = 0;
        if (sscanf(de->d_name, "wal-%16" SCNx64 ".log%n", &seq, &at) != 1 ||
            de->d_name[at])
            continue;
        uint64_t *ns = realloc(seqs, (n_seqs + 1) * sizeof *ns);
        if (!ns) {
            closedir(d);
            goto oom;
        }
        seqs = ns;
        seqs[n_seqs++] = seq;
        if (seq > max_seq)
            max_seq = seq;
    }
    closedir(d);
    if (n_seqs)
        qsort(seqs, n_seqs, sizeof *seqs, cmp_u64);

    /* Two passes: which objects are done, then everything else. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n_seqs; i++) {
            char p[PATH_MAX];
            wal_path(s, seqs[i], p, sizeof p);
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            off_t end = lseek(fd, 0, SEEK_END);
            char magic[8];
            uint64_t pos = 8;
            if (end < 8 || pread(fd, magic, 8, 0) != 8 ||
                memcmp(magic, WAL_MAGIC, 8) != 0) {
                close(fd);
                continue;
            }
            wal_rec r;
            int k;
            while ((k = rec_read(fd, &pos, (uint64_t)end, &r, &buf, &cap)) ==
                   1) {
                if (pass == 0) {
                    if (r.type != S3_WAL_DONE)
                        continue;
                    uint64_t *nd = realloc(done, (n_done + 1) * sizeof *nd);
                    if (!nd) {
                        close(fd);
                        goto oom;
                    }
                    done = nd;
                    done[n_done++] = r.id;
                    continue;
                }
                if (r.type == S3_WAL_DONE ||
                    (n_done &&
                     bsearch(&r.id, done, n_done, sizeof *done, cmp_u64)))
                    continue;
                size_t j;
                for (j = 0; j < n_rp && rp[j].id != r.id; j++)
                    ;
                if (j == n_rp) {
                    char op[PATH_MAX];
                    s3_obj_path(s, r.id, "stage", op, sizeof op);
                    int flags = O_RDWR | O_CLOEXEC;
                    if (r.type == S3_WAL_OBJ)
                        flags |= O_CREAT;
                    int ofd = open(op, flags, 0600);
                    if (ofd < 0) {
                        /* A block of a file that is gone without a DONE:
                           someone removed it by hand. */
                        h->log(h, LF_LOG_WARN,
                               "msg=\"WAL names a staging file that is "
                               "missing\" object=%016" PRIx64,
                               r.id);
                        continue;
                    }
                    replayed *nr = realloc(rp, (n_rp + 1) * sizeof *nr);
                    if (!nr) {
                        close(ofd);
                        close(fd);
                        goto oom;
                    }
                    rp = nr;
                    rp[n_rp++] = (replayed){r.id, 0, ofd};
                }
                if (fd_pwrite_all(rp[j].fd, buf, r.len, r.off) != 0) {
                    snprintf(err, errlen, "replaying the WAL: %s",
                             strerror(errno));
                    close(fd);
                    goto out;
                }
                if (r.off + r.len > rp[j].end)
                    rp[j].end = r.off + r.len;
            }
            close(fd);
            if (k < 0) {
                snprintf(err, errlen, "reading the WAL: %s", strerror(errno));
                goto out;
            }
        }
        if (pass == 0 && n_done)
            qsort(done, n_done, sizeof *done, cmp_u64);
    }
    /* Cut what came after the last logged block (never acknowledged),
       make it all durable. */
    for (size_t j = 0; j < n_rp; j++)
        if (ftruncate(rp[j].fd, (off_t)rp[j].end) != 0 ||
            fdatasync(rp[j].fd) != 0) {
            snprintf(err, errlen, "replaying the WAL: %s", strerror(errno));
            goto out;
        }
    /* Uploaded objects whose file outlived the DONE record. */
    for (size_t j = 0; j < n_done; j++) {
        char op[PATH_MAX];
        s3_obj_path(s, done[j], "stage", op, sizeof op);
        unlink(op);
        s3_obj_path(s, done[j], "mpu", op, sizeof op);
        unlink(op);
    }
    if (n_rp)
        h->log(h, LF_LOG_INFO,
               "msg=\"WAL replayed\" objects=%zu done=%zu logs=%zu", n_rp,
               n_done, n_seqs);
    s->wal_seq = max_seq + 1;
    if (s3_fsync_dir(s->dir) != 0 ||
        (s->wal_fd = wal_create(s, s->wal_seq)) < 0) {
        snprintf(err, errlen, "cannot start the WAL in %s: %s", s->dir,
                 strerror(errno));
        goto out;
    }
    s->wal_size = 8;
    s->wal_started_ns = h->now_ns(h);
    wal_remove_older(s, s->wal_seq);
    s3_fsync_dir(s->dir);
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    for (size_t j = 0; j < n_rp; j++)
        close(rp[j].fd);
    free(rp);
    free(seqs);
    free(done);
    free(buf);
    return rc;
}
