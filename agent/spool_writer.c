/*
 * spool_writer.c - liblogferry: the application's side of the spool.
 *
 * Implements include/logferry/writer.h. The hot path (append in NONE and
 * INTERVAL modes) encodes and checksums the record outside any lock, then
 * copies the frame into the in-process buffer under `mu`; no system call is
 * made unless the buffer is full or the segment must rotate. A background
 * thread writes the buffer out every fsync_interval_ms and, in INTERVAL
 * mode, fdatasync()s it outside `mu` so appends never wait for the disk.
 *
 * Locks: `mu` guards the writer state and the buffer; `sync_mu` guards the
 * segment fd's lifetime while fdatasync runs without `mu`. Order: mu, then
 * sync_mu. The segment protocol (temp name, flock, rename) is the one of
 * spool_format.h.
 */
#include <logferry/writer.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool_codec.h"
#include "spool_writer_internal.h"
#include "spool_format.h"

_Static_assert(LF_MAX_RECORD_BYTES == SPOOL_MAX_PAYLOAD,
               "writer.h and spool_format.h disagree on the record limit");

#define WR_STACK_FRAME                                                         \
    4096 /* frames up to this size are built on the stack                      \
          */
#define WR_BUFFER_MIN 4096u
#define WR_BUFFER_MAX (64u * 1024u * 1024u)
#define WR_ROTATE_MIN 4096u
#define WR_SCAN_PERIOD_NS                                                      \
    1000000000LL                        /* spool size re-measured at most 1/s  \
                                         */
#define WR_SCAN_MAX_SEGMENTS (1u << 20) /* cap on one directory listing */
#define WR_ERRMSG_MAX 512
#define WR_ID_FIELD_BYTES 18 /* tag 0x0a, length 16, 16 random bytes */
#define WR_TIME_FIELD_MAX 11 /* tag 0x10, varint of up to 10 bytes */

struct lf_writer {
    lf_writer_options opt;
    uint32_t header_flags; /* spool_format.h SPOOL_FLAG_* of new segments */
    char *dir;
    int dirfd;
    uint64_t writer_id;

    pthread_mutex_t mu; /* guards everything below unless noted */
    pthread_cond_t cv;  /* wakes the background thread to stop */
    pthread_t thread;
    bool thread_started;
    bool stopping;

    /* The open segment. fd, seg_name and seg_gen change only under both mu
       and sync_mu; seg_size is stored atomically for wr_sync(). */
    int fd;
    char seg_name[SPOOL_SEGMENT_NAME_MAX];
    uint64_t seg_size;        /* bytes in the file = its last good end */
    uint64_t seg_gen;         /* bumped at each rotation */
    int64_t first_frame_mono; /* when the segment got a frame; 0 = empty */
    uint64_t next_seq;
    int64_t last_created_ns;

    uint8_t *buf; /* frames not yet written; buf_cap = opt.buffer_bytes */
    size_t buf_len;

    bool no_space; /* the last write-out hit ENOSPC/EDQUOT; buffer kept */
    bool failed;   /* a partial write could not be undone: fail-stop */

    /* Spool size estimate: scan_total bytes were in *.lfs when the last
       scan began, at which point written_total was scan_written; all that
       was appended since is counted on top. */
    uint64_t scan_total;
    uint64_t scan_written;
    int64_t last_scan_mono;
    uint64_t appended_total; /* bytes accepted (frames and headers) */
    uint64_t written_total;  /* of which written to files */

    pthread_mutex_t sync_mu;
    uint64_t synced_end; /* guarded by sync_mu: seg_size at the last sync */

    lf_writer_stats stats; /* stats.fsyncs is updated atomically */
    char errmsg[WR_ERRMSG_MAX];
};

/* ---- small helpers --------------------------------------------------- */

static int64_t wr_clock_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Record the detail of a failure (caller holds mu, or owns w alone) and
   return `code`. `err` (an errno, or 0) is appended as text. */
__attribute__((format(printf, 4, 5))) static int
wr_fail(lf_writer *w, int code, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
    if (err && n >= 0 && (size_t)n < sizeof w->errmsg)
        snprintf(w->errmsg + n, sizeof w->errmsg - (size_t)n, ": %s",
                 strerror(err));
    return code;
}

static int wr_errno_status(int err)
{
    return (err == ENOSPC || err == EDQUOT) ? LF_ERR_NO_SPACE : LF_ERR_IO;
}

static int wr_getrandom(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t k = getrandom(b, n, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- per-thread random source for record ids -------------------------- */

/* xoshiro256** seeded once per thread from getrandom(): record ids must be
   unique, not secret, and a syscall per record would break the hot-path
   budget. A fork() bumps wr_fork_gen so a child reseeds instead of
   repeating its parent's ids. */
struct wr_rng {
    uint64_t s[4];
    uint64_t gen; /* wr_fork_gen it was seeded under; 0 = never */
};

static _Thread_local struct wr_rng wr_tl_rng;
static uint64_t wr_fork_gen = 1;
static pthread_once_t wr_atfork_once = PTHREAD_ONCE_INIT;

static void wr_atfork_child(void)
{
    __atomic_add_fetch(&wr_fork_gen, 1, __ATOMIC_RELAXED);
}

static void wr_atfork_register(void)
{
    pthread_atfork(NULL, NULL, wr_atfork_child);
}

static uint64_t wr_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t wr_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t wr_rng_next(void)
{
    struct wr_rng *r = &wr_tl_rng;
    uint64_t gen = __atomic_load_n(&wr_fork_gen, __ATOMIC_RELAXED);
    if (r->gen != gen) {
        uint64_t seed[4];
        if (wr_getrandom(seed, sizeof seed) != 0) {
            /* No entropy source: still distinct per thread and time. */
            uint64_t x = (uint64_t)wr_clock_ns(CLOCK_REALTIME) ^
                         (uint64_t)(uintptr_t)r ^ (uint64_t)getpid() << 32;
            for (int i = 0; i < 4; i++)
                seed[i] = wr_splitmix64(&x);
        }
        memcpy(r->s, seed, sizeof seed);
        if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
            r->s[0] = 1; /* the all-zero state is a fixed point */
        r->gen = gen;
    }
    uint64_t *s = r->s;
    uint64_t result = wr_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = wr_rotl(s[3], 45);
    return result;
}

static size_t wr_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* ---- file I/O ---------------------------------------------------------- */

/* Bytes of whole frames among the first `done` of the frames at `p`
   (`n` bytes of consecutive frames). */
static size_t wr_whole_frames(const uint8_t *p, size_t n, size_t done)
{
    size_t off = 0;
    while (off + SPOOL_FRAME_HDR <= n) {
        const uint8_t *l = p + off + 4;
        size_t size =
            SPOOL_FRAME_HDR + ((size_t)l[0] | (size_t)l[1] << 8 |
                               (size_t)l[2] << 16 | (size_t)l[3] << 24);
        if (off + size > done)
            break;
        off += size;
    }
    return off;
}

/* Write the `n` bytes of whole frames at `p` at the segment's end. On
   failure, the frames that made it whole stay (*kept bytes; a reader may
   already have delivered them) and the partial frame after them is cut
   off with ftruncate(): the file never holds a torn frame of a live
   writer and never loses a frame once whole. If even the ftruncate fails
   the writer stops (LF_ERR_CLOSED) rather than append after a torn frame.
   Caller holds mu. */
static int wr_write_at_end(lf_writer *w, const uint8_t *p, size_t n,
                           size_t *kept)
{
    uint64_t off = w->seg_size;
    size_t done = 0;
    int err = 0;
    while (done < n) {
        ssize_t k = pwrite(w->fd, p + done, n - done, (off_t)(off + done));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (k == 0) {
            err = EIO; /* a regular file never does this; do not spin */
            break;
        }
        done += (size_t)k;
    }
    size_t keep = err ? wr_whole_frames(p, n, done) : n;
    *kept = keep;
    __atomic_store_n(&w->seg_size, off + keep, __ATOMIC_RELEASE);
    w->written_total += keep;
    if (!err)
        return LF_OK;
    if (done > keep && ftruncate(w->fd, (off_t)(off + keep)) != 0) {
        int terr = errno;
        w->failed = true;
        return wr_fail(w, LF_ERR_CLOSED, terr,
                       "%s/%s: write failed (%s) and the partial frame "
                       "could not be truncated away",
                       w->dir, w->seg_name, strerror(err));
    }
    return wr_fail(w, wr_errno_status(err), err, "write %s/%s", w->dir,
                   w->seg_name);
}

/* Write the buffer out with one pwrite() (more only if it comes back
   short). On failure what was not written whole stays buffered for a
   later attempt. Caller holds mu. */
static int wr_write_out(lf_writer *w)
{
    if (w->buf_len == 0)
        return LF_OK;
    size_t kept;
    int rc = wr_write_at_end(w, w->buf, w->buf_len, &kept);
    if (kept < w->buf_len)
        memmove(w->buf, w->buf + kept, w->buf_len - kept);
    w->buf_len -= kept;
    w->no_space = (rc == LF_ERR_NO_SPACE);
    return rc;
}

/* fdatasync the segment of generation `gen` up to `target` bytes, unless
   another caller's sync already covered it (group commit). Called WITHOUT
   mu: a sync can take milliseconds and appends must not wait for it. */
static int wr_sync(lf_writer *w, uint64_t gen, uint64_t target)
{
    int err = 0;
    char name[SPOOL_SEGMENT_NAME_MAX] = "";
    pthread_mutex_lock(&w->sync_mu);
    /* A rotation since then synced and closed that segment itself. */
    if (w->seg_gen == gen && w->synced_end < target) {
        uint64_t end = __atomic_load_n(&w->seg_size, __ATOMIC_ACQUIRE);
        if (fdatasync(w->fd) == 0) {
            w->synced_end = end;
            __atomic_add_fetch(&w->stats.fsyncs, 1, __ATOMIC_RELAXED);
        } else {
            err = errno;
            memcpy(name, w->seg_name, sizeof name);
        }
    }
    pthread_mutex_unlock(&w->sync_mu);
    if (!err)
        return LF_OK;
    pthread_mutex_lock(&w->mu);
    int rc =
        wr_fail(w, wr_errno_status(err), err, "fdatasync %s/%s", w->dir, name);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* ---- spool directory --------------------------------------------------- */

typedef struct wr_seg_ent {
    char name[SPOOL_SEGMENT_NAME_MAX];
    uint64_t size;
} wr_seg_ent;

/* Sum the sizes of the segments in the spool. If `list` is not NULL it
   receives a malloc'ed array of them (caller frees), at most
   WR_SCAN_MAX_SEGMENTS long. Reads only dirfd, so it may run without mu;
   errors are left in *err. */
static int wr_scan(int dirfd, uint64_t *total, wr_seg_ent **list, size_t *n,
                   int *err)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    wr_seg_ent *v = NULL;
    size_t len = 0, cap = 0;
    *total = 0;
    if (!d) {
        *err = errno;
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (spool_segment_name_parse(de->d_name, NULL, NULL, NULL) != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue; /* deleted meanwhile, or not ours */
        *total += (uint64_t)st.st_size;
        if (!list || len >= WR_SCAN_MAX_SEGMENTS)
            continue;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            wr_seg_ent *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                *err = ENOMEM;
                free(v);
                closedir(d);
                return -1;
            }
            v = nv;
            cap = ncap;
        }
        /* spool_segment_name_parse() bounded the name's length. */
        memcpy(v[len].name, de->d_name, strlen(de->d_name) + 1);
        v[len].size = (uint64_t)st.st_size;
        len++;
    }
    closedir(d);
    if (list) {
        *list = v;
        *n = len;
    }
    return 0;
}

static int wr_seg_ent_cmp(const void *a, const void *b)
{
    return strcmp(((const wr_seg_ent *)a)->name, ((const wr_seg_ent *)b)->name);
}

static uint64_t wr_spool_estimate(const lf_writer *w)
{
    return w->scan_total + (w->appended_total - w->scan_written);
}

/* Re-measure the spool while holding mu (open, rotation, drops). */
static void wr_rescan_locked(lf_writer *w)
{
    uint64_t total;
    int err = 0;
    if (wr_scan(w->dirfd, &total, NULL, NULL, &err) != 0)
        return; /* keep the old estimate; it only errs on the high side */
    w->scan_total = total;
    w->scan_written = w->written_total;
    w->last_scan_mono = wr_clock_ns(CLOCK_MONOTONIC);
}

/* Delete segment `name` if its writer is gone. Returns 0 if deleted, 1 if
   it was already gone, -1 if it is live or cannot be removed. */
static int wr_drop_segment(lf_writer *w, const char *name)
{
    int fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    int rc = -1;
    /* Holding the lock while unlinking means no writer can own it. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if (unlinkat(w->dirfd, name, 0) == 0)
            rc = 0;
        else if (errno == ENOENT)
            rc = 1;
    }
    close(fd);
    return rc;
}

/* LF_OVERFLOW_DROP_OLDEST: delete complete segments, oldest name first,
   until `need` more bytes fit. Caller holds mu. */
static int wr_drop_oldest(lf_writer *w, size_t need)
{
    wr_seg_ent *list = NULL;
    size_t n = 0;
    uint64_t total;
    int err = 0;
    uint64_t written = w->written_total;
    if (wr_scan(w->dirfd, &total, &list, &n, &err) != 0)
        return wr_fail(w, LF_ERR_IO, err, "scan spool %s", w->dir);
    w->scan_total = total;
    w->scan_written = written;
    w->last_scan_mono = wr_clock_ns(CLOCK_MONOTONIC);
    if (n)
        qsort(list, n, sizeof *list, wr_seg_ent_cmp);
    for (size_t i = 0; i < n; i++) {
        if (wr_spool_estimate(w) + need <= w->opt.spool_max_bytes)
            break;
        if (strcmp(list[i].name, w->seg_name) == 0)
            continue;
        int r = wr_drop_segment(w, list[i].name);
        if (r < 0)
            continue;
        w->scan_total -=
            list[i].size < w->scan_total ? list[i].size : w->scan_total;
        if (r == 0)
            w->stats.dropped_segments++;
    }
    free(list);
    if (wr_spool_estimate(w) + need <= w->opt.spool_max_bytes)
        return LF_OK;
    return wr_fail(w, LF_ERR_SPOOL_FULL, 0,
                   "spool %s over spool_max_bytes %llu and only live "
                   "segments remain",
                   w->dir, (unsigned long long)w->opt.spool_max_bytes);
}

/* Caller holds mu. */
static int wr_check_spool(lf_writer *w, size_t need)
{
    uint64_t est = wr_spool_estimate(w);
    if (est + need <= w->opt.spool_max_bytes)
        return LF_OK;
    if (w->opt.overflow == LF_OVERFLOW_DROP_OLDEST)
        return wr_drop_oldest(w, need);
    return wr_fail(w, LF_ERR_SPOOL_FULL, 0,
                   "spool %s holds about %llu bytes, spool_max_bytes is %llu",
                   w->dir, (unsigned long long)est,
                   (unsigned long long)w->opt.spool_max_bytes);
}

/* ---- segments ---------------------------------------------------------- */

/* Create the next segment per spool_format.h: hidden temp name, O_EXCL,
   exclusive flock, header, fsync, rename into place, fsync the directory.
   On success *fd_out holds the locked fd and `name` its name; on failure
   nothing is left behind. Caller holds mu (or owns w alone). */
static int wr_segment_create(lf_writer *w, int *fd_out,
                             char name[SPOOL_SEGMENT_NAME_MAX])
{
    bool sync = w->opt.durability != LF_DURABILITY_NONE;
    char tmp[SPOOL_SEGMENT_NAME_MAX + 8];
    int64_t created = wr_clock_ns(CLOCK_REALTIME);
    if (created <= w->last_created_ns)
        created = w->last_created_ns + 1; /* names sort in seq order */
    if (spool_segment_name(name, SPOOL_SEGMENT_NAME_MAX, created, w->writer_id,
                           w->next_seq) != 0)
        return wr_fail(w, LF_ERR_INVAL, 0, "segment name too long");
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);

    int err = 0, rc;
    const char *what;
    int fd =
        openat(w->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = errno;
        return wr_fail(w, wr_errno_status(err), err, "create %s/%s", w->dir,
                       tmp);
    }
    what = "flock";
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        goto fail_errno;

    spool_header h = {
        .version = SPOOL_VERSION,
        .header_size = SPOOL_HEADER_SIZE,
        .flags = w->header_flags,
        .writer_id = w->writer_id,
        .created_ns = created,
        .seq = w->next_seq,
        .pid = (uint32_t)getpid(),
    };
    uint8_t hb[SPOOL_HEADER_SIZE];
    spool_header_encode(&h, hb);
    what = "write header";
    ssize_t k;
    do {
        k = pwrite(fd, hb, sizeof hb, 0);
    } while (k < 0 && errno == EINTR);
    if (k != (ssize_t)sizeof hb) {
        if (k >= 0)
            errno = ENOSPC; /* a short header write on a local fs */
        goto fail_errno;
    }
    what = "fdatasync";
    if (sync && fdatasync(fd) != 0)
        goto fail_errno;
    what = "rename";
    if (renameat(w->dirfd, tmp, w->dirfd, name) != 0)
        goto fail_errno;
    /* Without a durable directory entry the frames synced into the file
       later could vanish with it in a crash. */
    if (sync && fsync(w->dirfd) != 0) {
        err = errno;
        rc =
            wr_fail(w, wr_errno_status(err), err, "fsync directory %s", w->dir);
        unlinkat(w->dirfd, name, 0);
        close(fd);
        return rc;
    }
    w->last_created_ns = created;
    w->next_seq++;
    w->appended_total += SPOOL_HEADER_SIZE;
    w->written_total += SPOOL_HEADER_SIZE;
    w->stats.segments++;
    *fd_out = fd;
    return LF_OK;

fail_errno:
    err = errno;
    rc = wr_fail(w, wr_errno_status(err), err, "%s %s/%s", what, w->dir, tmp);
    close(fd);
    unlinkat(w->dirfd, tmp, 0);
    return rc;
}

/* Seal the open segment and continue in a new one: the new segment is
   created first, then the buffer is written to the old one, which is
   synced (unless NONE) and closed, releasing its lock. Frames the old
   segment had no room for stay buffered for the new one (and the error is
   returned). Caller holds mu. */
static int wr_rotate(lf_writer *w)
{
    int nfd;
    char nname[SPOOL_SEGMENT_NAME_MAX];
    int rc = wr_segment_create(w, &nfd, nname);
    if (rc != LF_OK)
        return rc;
    rc = wr_write_out(w);
    if (w->failed) {
        close(nfd); /* leaves an empty complete segment; harmless */
        return rc;
    }
    int serr = 0;
    pthread_mutex_lock(&w->sync_mu);
    if (w->opt.durability != LF_DURABILITY_NONE &&
        w->synced_end < w->seg_size) {
        if (fdatasync(w->fd) == 0)
            __atomic_add_fetch(&w->stats.fsyncs, 1, __ATOMIC_RELAXED);
        else
            serr = errno;
    }
    if (serr && rc == LF_OK)
        rc =
            wr_fail(w, LF_ERR_IO, serr, "fdatasync %s/%s", w->dir, w->seg_name);
    close(w->fd); /* releases the lock: the segment is complete */
    w->fd = nfd;
    memcpy(w->seg_name, nname, sizeof nname);
    __atomic_store_n(&w->seg_size, SPOOL_HEADER_SIZE, __ATOMIC_RELEASE);
    w->seg_gen++;
    w->synced_end = SPOOL_HEADER_SIZE;
    pthread_mutex_unlock(&w->sync_mu);
    /* A buffer the old segment refused now belongs to the new one. */
    w->first_frame_mono = w->buf_len ? wr_clock_ns(CLOCK_MONOTONIC) : 0;
    if (w->opt.spool_max_bytes)
        wr_rescan_locked(w);
    return rc;
}

static bool wr_age_due(const lf_writer *w, int64_t now_mono)
{
    return w->opt.rotate_age_ms && w->first_frame_mono &&
           now_mono - w->first_frame_mono >=
               (int64_t)w->opt.rotate_age_ms * 1000000LL;
}

/* ---- append path ------------------------------------------------------- */

/* Append one encoded frame (header included, borrowed). */
static int wr_append_frame(lf_writer *w, const uint8_t *frame, size_t size)
{
    bool every = w->opt.durability == LF_DURABILITY_EVERY;
    uint64_t gen = 0, target = 0;
    int rc;

    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        rc = LF_ERR_CLOSED;
        goto out;
    }
    if (w->no_space) {
        rc = LF_ERR_NO_SPACE; /* errmsg still holds the failed write */
        goto refused;
    }
    if (w->opt.spool_max_bytes && (rc = wr_check_spool(w, size)) != LF_OK)
        goto refused;

    int64_t now = w->opt.rotate_age_ms ? wr_clock_ns(CLOCK_MONOTONIC) : 0;
    if (w->first_frame_mono &&
        (w->seg_size + w->buf_len + size > w->opt.rotate_bytes ||
         wr_age_due(w, now))) {
        if ((rc = wr_rotate(w)) != LF_OK)
            goto refused;
    }

    bool buffered = size <= w->opt.buffer_bytes;
    if (size > w->opt.buffer_bytes - w->buf_len &&
        (rc = wr_write_out(w)) != LF_OK)
        goto refused;
    if (buffered) {
        memcpy(w->buf + w->buf_len, frame, size);
        w->buf_len += size;
    } else {
        size_t kept; /* one frame: all or nothing */
        if ((rc = wr_write_at_end(w, frame, size, &kept)) != LF_OK)
            goto refused;
    }
    if (every && (rc = wr_write_out(w)) != LF_OK) {
        /* Take the record back so LF_ERR_* means "not appended", and keep
           nothing half-promised in the buffer. */
        if (buffered && w->buf_len >= size) /* it is last in the buffer */
            w->buf_len -= size;
        w->no_space = false;
        goto refused;
    }
    if (!w->first_frame_mono)
        w->first_frame_mono = now ? now : wr_clock_ns(CLOCK_MONOTONIC);
    w->stats.records++;
    w->stats.bytes += size;
    w->appended_total += size;
    gen = w->seg_gen;
    target = w->seg_size;
    rc = LF_OK;
    goto out;

refused:
    if (rc == LF_ERR_NO_SPACE || rc == LF_ERR_SPOOL_FULL)
        w->stats.refused++;
out:
    pthread_mutex_unlock(&w->mu);
    if (rc == LF_OK && every)
        rc = wr_sync(w, gen, target);
    return rc;
}

int lf_writer_append(lf_writer *w, const Logferry__V1__InvocationRecord *rec)
{
    if (!w || !rec ||
        rec->base.descriptor != &logferry__v1__invocation_record__descriptor)
        return LF_ERR_INVAL;
    size_t packed = protobuf_c_message_get_packed_size(&rec->base);
    if (packed > LF_MAX_RECORD_BYTES)
        return LF_ERR_TOO_BIG;
    bool need_id = rec->record_id.len == 0;
    bool need_time = rec->event_time_ns == 0;
    size_t cap = SPOOL_FRAME_HDR + packed + (need_id ? WR_ID_FIELD_BYTES : 0) +
                 (need_time ? WR_TIME_FIELD_MAX : 0);

    uint8_t stackbuf[WR_STACK_FRAME];
    uint8_t *frame = stackbuf;
    if (cap > sizeof stackbuf && !(frame = malloc(cap)))
        return LF_ERR_NOMEM;
    uint8_t *payload = frame + SPOOL_FRAME_HDR;
    int rc;
    size_t n = protobuf_c_message_pack(&rec->base, payload);
    if (n != packed) {
        rc = LF_ERR_ENCODE;
        goto out;
    }
    /* Protobuf keeps the last occurrence of a singular field, so adding the
       fields after the message stamps it without copying the record. */
    if (need_id) {
        uint64_t a = wr_rng_next(), b = wr_rng_next();
        payload[n++] = 0x0a; /* field 1, length-delimited */
        payload[n++] = 16;
        memcpy(payload + n, &a, 8);
        memcpy(payload + n + 8, &b, 8);
        n += 16;
    }
    if (need_time) {
        payload[n++] = 0x10; /* field 2, varint */
        n += wr_put_varint(payload + n, (uint64_t)wr_clock_ns(CLOCK_REALTIME));
    }
    if (n > LF_MAX_RECORD_BYTES) {
        rc = LF_ERR_TOO_BIG;
        goto out;
    }
    spool_frame_header_encode(frame, payload, (uint32_t)n);
    rc = wr_append_frame(w, frame, SPOOL_FRAME_HDR + n);
out:
    if (frame != stackbuf)
        free(frame);
    return rc;
}

int lf_writer_append_raw(lf_writer *w, const void *buf, size_t len)
{
    if (!w || (!buf && len))
        return LF_ERR_INVAL;
    if (len > LF_MAX_RECORD_BYTES)
        return LF_ERR_TOO_BIG;
    uint8_t stackbuf[WR_STACK_FRAME];
    uint8_t *frame = stackbuf;
    if (SPOOL_FRAME_HDR + len > sizeof stackbuf &&
        !(frame = malloc(SPOOL_FRAME_HDR + len)))
        return LF_ERR_NOMEM;
    if (len)
        memcpy(frame + SPOOL_FRAME_HDR, buf, len);
    spool_frame_header_encode(frame, buf, (uint32_t)len);
    int rc = wr_append_frame(w, frame, SPOOL_FRAME_HDR + len);
    if (frame != stackbuf)
        free(frame);
    return rc;
}

int lf_writer_flush(lf_writer *w)
{
    if (!w)
        return LF_ERR_INVAL;
    pthread_mutex_lock(&w->mu);
    int rc = w->failed ? LF_ERR_CLOSED : wr_write_out(w);
    uint64_t gen = w->seg_gen, target = w->seg_size;
    pthread_mutex_unlock(&w->mu);
    if (rc == LF_OK && w->opt.durability != LF_DURABILITY_NONE)
        rc = wr_sync(w, gen, target);
    return rc;
}

/* ---- background thread ------------------------------------------------- */

static void *wr_thread_main(void *arg)
{
    lf_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        uint64_t ns = (uint64_t)dl.tv_nsec +
                      (uint64_t)w->opt.fsync_interval_ms * 1000000ull;
        dl.tv_sec += (time_t)(ns / 1000000000ull);
        dl.tv_nsec = (long)(ns % 1000000000ull);
        while (!w->stopping &&
               pthread_cond_timedwait(&w->cv, &w->mu, &dl) != ETIMEDOUT)
            ;
        if (w->stopping || w->failed)
            break;

        int64_t now = wr_clock_ns(CLOCK_MONOTONIC);
        if (wr_age_due(w, now))
            wr_rotate(w); /* failures stay in errmsg; appends see them */
        wr_write_out(w);  /* also the retry after ENOSPC */
        uint64_t gen = w->seg_gen, target = w->seg_size;
        bool scan = w->opt.spool_max_bytes &&
                    now - w->last_scan_mono >= WR_SCAN_PERIOD_NS;
        uint64_t written = w->written_total;
        pthread_mutex_unlock(&w->mu);

        if (w->opt.durability == LF_DURABILITY_INTERVAL)
            wr_sync(w, gen, target);
        uint64_t total;
        int err = 0;
        bool scanned = scan && wr_scan(w->dirfd, &total, NULL, NULL, &err) == 0;

        pthread_mutex_lock(&w->mu);
        /* Install unless a rotation or drop measured more recently. */
        if (scanned && w->last_scan_mono < now) {
            w->scan_total = total;
            w->scan_written = written;
            w->last_scan_mono = now;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- open / close ------------------------------------------------------ */

void lf_writer_options_init(lf_writer_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->rotate_bytes = 64u * 1024u * 1024u;
    opt->rotate_age_ms = 60000;
    opt->durability = LF_DURABILITY_INTERVAL;
    opt->fsync_interval_ms = 50;
    opt->spool_max_bytes = 0;
    opt->overflow = LF_OVERFLOW_REFUSE;
    opt->buffer_bytes = 256u * 1024u;
}

/* Copy and check the caller's options. A struct_size smaller than ours
   comes from an older header: the fields it lacks keep their defaults. */
static int wr_options(lf_writer *w, const lf_writer_options *in)
{
    lf_writer_options *o = &w->opt;
    lf_writer_options_init(o);
    if (in) {
        size_t min =
            offsetof(lf_writer_options, buffer_bytes) + sizeof in->buffer_bytes;
        if (in->struct_size < min || in->struct_size > sizeof *o)
            return wr_fail(w, LF_ERR_INVAL, 0,
                           "options struct_size %u unknown to liblogferry "
                           "%s (call lf_writer_options_init)",
                           in->struct_size, LF_WRITER_VERSION);
        memcpy(o, in, in->struct_size);
        o->struct_size = sizeof *o;
    }
    if (o->rotate_bytes < WR_ROTATE_MIN)
        return wr_fail(w, LF_ERR_INVAL, 0, "rotate_bytes %llu below %u",
                       (unsigned long long)o->rotate_bytes, WR_ROTATE_MIN);
    if (o->durability != LF_DURABILITY_NONE &&
        o->durability != LF_DURABILITY_INTERVAL &&
        o->durability != LF_DURABILITY_EVERY)
        return wr_fail(w, LF_ERR_INVAL, 0, "unknown durability %d",
                       (int)o->durability);
    if (o->overflow != LF_OVERFLOW_REFUSE &&
        o->overflow != LF_OVERFLOW_DROP_OLDEST)
        return wr_fail(w, LF_ERR_INVAL, 0, "unknown overflow policy %d",
                       (int)o->overflow);
    if (o->fsync_interval_ms == 0)
        return wr_fail(w, LF_ERR_INVAL, 0, "fsync_interval_ms must be > 0");
    if (o->buffer_bytes < WR_BUFFER_MIN || o->buffer_bytes > WR_BUFFER_MAX)
        return wr_fail(w, LF_ERR_INVAL, 0, "buffer_bytes %u outside %u..%u",
                       o->buffer_bytes, WR_BUFFER_MIN, WR_BUFFER_MAX);
    return LF_OK;
}

/* Free everything; the background thread must not be running. */
static void wr_destroy(lf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->sync_mu);
    pthread_mutex_destroy(&w->mu);
    free(w->buf);
    free(w->dir);
    free(w);
}

int lf_writer_open(const char *dir, const lf_writer_options *opt,
                   lf_writer **out, char *errbuf, size_t errlen)
{
    return spool_writer_open_flags(dir, opt, 0, out, errbuf, errlen);
}

int spool_writer_open_flags(const char *dir, const lf_writer_options *opt,
                            uint32_t header_flags, lf_writer **out,
                            char *errbuf, size_t errlen)
{
    int rc;
    if (out)
        *out = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!dir || !*dir || !out) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "lf_writer_open: dir and out required");
        return LF_ERR_INVAL;
    }
    lf_writer *w = calloc(1, sizeof *w);
    if (!w) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return LF_ERR_NOMEM;
    }
    w->fd = -1;
    w->dirfd = -1;
    w->header_flags = header_flags;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->sync_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_once(&wr_atfork_once, wr_atfork_register);

    if ((rc = wr_options(w, opt)) != LF_OK)
        goto fail;
    if (!(w->dir = strdup(dir)) || !(w->buf = malloc(w->opt.buffer_bytes))) {
        rc = wr_fail(w, LF_ERR_NOMEM, 0, "out of memory");
        goto fail;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = wr_fail(w, LF_ERR_IO, errno, "create spool directory %s", dir);
        goto fail;
    }
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        int err = errno;
        rc = wr_fail(w, err == ENOTDIR ? LF_ERR_INVAL : LF_ERR_IO, err,
                     "spool directory %s", dir);
        goto fail;
    }
    if (wr_getrandom(&w->writer_id, sizeof w->writer_id) != 0) {
        rc = wr_fail(w, LF_ERR_IO, errno, "getrandom");
        goto fail;
    }
    if ((rc = wr_segment_create(w, &w->fd, w->seg_name)) != LF_OK)
        goto fail;
    w->seg_size = SPOOL_HEADER_SIZE;
    w->synced_end = SPOOL_HEADER_SIZE;
    if (w->opt.spool_max_bytes)
        wr_rescan_locked(w);

    /* The thread must not take the application's signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int perr = pthread_create(&w->thread, NULL, wr_thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (perr != 0) {
        rc = wr_fail(w, LF_ERR_NOMEM, perr, "start writer thread");
        goto fail;
    }
    w->thread_started = true;
    *out = w;
    return LF_OK;

fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", w->errmsg);
    wr_destroy(w);
    return rc;
}

int lf_writer_close(lf_writer *w)
{
    if (!w)
        return LF_OK;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    /* Alone from here on. */
    int rc = w->failed ? LF_ERR_CLOSED : wr_write_out(w);
    if (rc == LF_OK && w->opt.durability != LF_DURABILITY_NONE)
        rc = wr_sync(w, w->seg_gen, w->seg_size);
    wr_destroy(w); /* closing the fd releases the segment lock */
    return rc;
}

void lf_writer_get_stats(lf_writer *w, lf_writer_stats *out)
{
    if (!w || !out)
        return;
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
    out->fsyncs = __atomic_load_n(&w->stats.fsyncs, __ATOMIC_RELAXED);
}

const char *lf_writer_errmsg(lf_writer *w)
{
    return w ? w->errmsg : "";
}

const char *lf_strerror(int code)
{
    switch (code) {
    case LF_OK:
        return "ok";
    case LF_ERR_INVAL:
        return "invalid argument";
    case LF_ERR_IO:
        return "I/O error";
    case LF_ERR_SPOOL_FULL:
        return "spool full";
    case LF_ERR_NOMEM:
        return "out of memory";
    case LF_ERR_TOO_BIG:
        return "record too big";
    case LF_ERR_CLOSED:
        return "writer failed and cannot go on";
    case LF_ERR_ENCODE:
        return "record could not be encoded";
    case LF_ERR_NO_SPACE:
        return "no space left on the spool file system";
    }
    return "unknown logferry status";
}
