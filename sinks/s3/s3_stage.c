/*
 * s3_stage.c - the on-disk forms of the s3 sink: staging files (records
 * waiting for their upload) and the positions table (what is staged, per
 * spool segment, to recognise re-delivered records after a crash).
 *
 * Block header, little-endian (S3_BLOCK_HDR = 44 bytes):
 *   0 u32 magic        4 u32 payload_len   8 u32 raw_len (uncompressed)
 *  12 u32 n_records   16 u16 seg_len      18 u16 zero
 *  20 u64 first_off   28 u64 last_off     36 u32 payload_crc
 *  40 u32 header_crc (CRC-32C of bytes 0..39 and the segment name)
 * followed by the segment name and the payload (one compressed frame).
 *
 * A block is written with one pwrite() and made durable by deliver()'s
 * fdatasync() before the records in it are acknowledged. A crash can
 * leave a torn last block; recovery keeps the whole blocks before it (the
 * torn one's records were never acknowledged, so the core sends them
 * again).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../shared/le.h"
#include "s3.h"

#define META_MAX (64u * 1024u)
#define SCAN_CHUNK (1u << 20)
#define POS_FILE_MAX (64u * 1024u * 1024u)

/* ---- destinations ----------------------------------------------------- */

void s3_dest_free(s3_dest *d)
{
    if (!d)
        return;
    free(d->bucket);
    free(d->key);
    free(d->region);
    free(d->role);
    free(d->extid);
    free(d->session);
    memset(d, 0, sizeof *d);
}

static const char *const codec_names[] = {"zstd", "gzip", "none"};

int s3_stage_header(const s3_dest *d, int64_t created_ns, sbuf *out)
{
    size_t start = out->len;
    if (sbuf_put(out, S3_STAGE_MAGIC, 8) || sbuf_put(out, "\0\0\0\0", 4) ||
        sbuf_put(out, "\0\0\0\0", 4))
        return -1;
    size_t meta = out->len;
    if (sbuf_printf(out,
                    "bucket=%s\nkey=%s\nregion=%s\nrole=%s\nextid=%s\n"
                    "session=%s\ncompression=%s\ncreated_ns=%" PRId64 "\n",
                    d->bucket, d->key, d->region, d->role ? d->role : "",
                    d->extid ? d->extid : "", d->session ? d->session : "",
                    codec_names[d->codec], created_ns))
        return -1;
    size_t mlen = out->len - meta;
    if (mlen > META_MAX)
        return -1;
    le_put32((uint8_t *)out->p + start + 8, (uint32_t)mlen);
    le_put32((uint8_t *)out->p + start + 12, s3_crc32c(0, out->p + meta, mlen));
    return 0;
}

/* Parse the meta text into d. Returns 0 or -1. */
static int parse_meta(char *m, s3_dest *d, int64_t *created)
{
    memset(d, 0, sizeof *d);
    int have_codec = 0;
    for (char *line = m; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            return -1;
        *nl = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            return -1;
        *eq = '\0';
        const char *v = eq + 1;
        char **slot = NULL;
        if (strcmp(line, "bucket") == 0)
            slot = &d->bucket;
        else if (strcmp(line, "key") == 0)
            slot = &d->key;
        else if (strcmp(line, "region") == 0)
            slot = &d->region;
        else if (strcmp(line, "role") == 0)
            slot = &d->role;
        else if (strcmp(line, "extid") == 0)
            slot = &d->extid;
        else if (strcmp(line, "session") == 0)
            slot = &d->session;
        else if (strcmp(line, "created_ns") == 0)
            *created = strtoll(v, NULL, 10);
        else if (strcmp(line, "compression") == 0) {
            for (int k = 0; k < 3; k++)
                if (strcmp(v, codec_names[k]) == 0) {
                    d->codec = (s3_codec_kind)k;
                    have_codec = 1;
                }
        }
        /* Unknown names are skipped: a newer version may add some. */
        if (slot && *v && !(*slot = strdup(v)))
            return -1;
        line = nl + 1;
    }
    if (!d->bucket || !d->key || !d->region || !have_codec)
        return -1;
    return 0;
}

/* ---- blocks ----------------------------------------------------------- */

int s3_block_begin(sbuf *out, const char *seg)
{
    size_t sl = strlen(seg);
    if (sl == 0 || sl > 255 || sbuf_reserve(out, S3_BLOCK_HDR + sl + 1))
        return -1;
    memset(out->p + out->len, 0, S3_BLOCK_HDR);
    /* seg_len now, so s3_block_end can find the payload. */
    out->p[out->len + 16] = (char)sl;
    out->len += S3_BLOCK_HDR;
    memcpy(out->p + out->len, seg, sl);
    out->len += sl;
    return 0;
}

void s3_block_end(sbuf *out, size_t start, uint32_t n_records,
                  uint64_t first_off, uint64_t last_off, uint32_t raw_len)
{
    uint8_t *h = (uint8_t *)out->p + start;
    size_t sl = h[16] | (size_t)h[17] << 8;
    size_t pstart = start + S3_BLOCK_HDR + sl;
    size_t plen = out->len - pstart;
    le_put32(h, S3_BLOCK_MAGIC);
    le_put32(h + 4, (uint32_t)plen);
    le_put32(h + 8, raw_len);
    le_put32(h + 12, n_records);
    h[18] = h[19] = 0;
    le_put64(h + 20, first_off);
    le_put64(h + 28, last_off);
    le_put32(h + 36, s3_crc32c(0, out->p + pstart, plen));
    uint32_t c = s3_crc32c(0, h, 40);
    le_put32(h + 40, s3_crc32c(c, h + S3_BLOCK_HDR, sl));
}

long s3_block_decode(const uint8_t *p, size_t avail, s3_block *b)
{
    if (avail < S3_BLOCK_HDR)
        return 0;
    if (le_get32(p) != S3_BLOCK_MAGIC || p[18] || p[19])
        return -1;
    size_t sl = p[16] | (size_t)p[17] << 8;
    if (sl == 0 || sl >= sizeof b->seg)
        return -1;
    if (avail < S3_BLOCK_HDR + sl)
        return 0;
    uint32_t c = s3_crc32c(0, p, 40);
    if (s3_crc32c(c, p + S3_BLOCK_HDR, sl) != le_get32(p + 40))
        return -1;
    b->payload_len = le_get32(p + 4);
    b->raw_len = le_get32(p + 8);
    b->n_records = le_get32(p + 12);
    b->first_off = le_get64(p + 20);
    b->last_off = le_get64(p + 28);
    b->payload_crc = le_get32(p + 36);
    memcpy(b->seg, p + S3_BLOCK_HDR, sl);
    b->seg[sl] = '\0';
    if (b->n_records == 0 || b->last_off < b->first_off)
        return -1;
    return (long)(S3_BLOCK_HDR + sl);
}

/* ---- scanning a staging file ------------------------------------------ */

/* 1 when all n bytes at off were read, 0 when the file ends first, -1 on
   an error. */
static int pread_full(int fd, void *p, size_t n, uint64_t off)
{
    ssize_t r = fd_pread_upto(fd, p, n, off);
    return r < 0 ? -1 : (size_t)r == n;
}

int s3_stage_scan_fd(int fd, s3_stage_scan *sc, s3_block_fn fn, void *ud,
                     char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
        snprintf(err, errlen, "lseek: %s", strerror(errno));
        return -1;
    }
    sc->file_len = (uint64_t)end;
    uint8_t hdr[16];
    if (pread_full(fd, hdr, 16, 0) != 1 || memcmp(hdr, S3_STAGE_MAGIC, 8)) {
        snprintf(err, errlen, "no staging header (torn at creation?)");
        return -1;
    }
    uint32_t mlen = le_get32(hdr + 8);
    if (mlen == 0 || mlen > META_MAX) {
        snprintf(err, errlen, "bad header length");
        return -1;
    }
    char *meta = malloc(mlen + 1);
    if (!meta) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pread_full(fd, meta, mlen, 16) != 1 ||
        s3_crc32c(0, meta, mlen) != le_get32(hdr + 12)) {
        free(meta);
        snprintf(err, errlen, "staging header torn or damaged");
        return -1;
    }
    meta[mlen] = '\0';
    int rc = parse_meta(meta, &sc->dest, &sc->created_ns);
    free(meta);
    if (rc != 0) {
        s3_dest_free(&sc->dest);
        snprintf(err, errlen, "staging header unreadable");
        return -1;
    }
    sc->data_start = sc->valid_len = 16 + (uint64_t)mlen;

    uint8_t *buf = malloc(SCAN_CHUNK);
    if (!buf) {
        s3_dest_free(&sc->dest);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t off = sc->valid_len;
    for (;;) {
        uint8_t bh[S3_BLOCK_HDR + 256];
        uint64_t left = sc->file_len - off;
        if (left == 0)
            break;
        size_t want = left < sizeof bh ? (size_t)left : sizeof bh;
        if (pread_full(fd, bh, want, off) != 1)
            break;
        s3_block b;
        long hl = s3_block_decode(bh, want, &b);
        if (hl <= 0)
            break;
        if (left < (uint64_t)hl + b.payload_len)
            break; /* torn */
        uint32_t crc = 0;
        uint64_t p = off + (uint64_t)hl, pend = p + b.payload_len;
        int ok = 1;
        while (p < pend) {
            size_t n = pend - p > SCAN_CHUNK ? SCAN_CHUNK : (size_t)(pend - p);
            if (pread_full(fd, buf, n, p) != 1) {
                ok = 0;
                break;
            }
            crc = s3_crc32c(crc, buf, n);
            p += n;
        }
        if (!ok || crc != b.payload_crc)
            break;
        if (fn && fn(ud, &b) != 0) {
            free(buf);
            s3_dest_free(&sc->dest);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        off = pend;
        sc->valid_len = off;
        sc->records += b.n_records;
        sc->raw_bytes += b.raw_len;
        sc->stored_bytes += b.payload_len;
    }
    free(buf);
    return 0;
}

/* ---- the positions table ---------------------------------------------- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

s3_pos_ent *s3_pos_find(const s3_positions *p, const char *seg)
{
    if (!p->n_slots)
        return NULL;
    for (s3_pos_ent *e = p->slots[hash_str(seg) & (p->n_slots - 1)]; e;
         e = e->next)
        if (strcmp(e->seg, seg) == 0)
            return e;
    return NULL;
}

static int pos_grow(s3_positions *p)
{
    size_t nn = p->n_slots ? p->n_slots * 2 : 64;
    s3_pos_ent **ns = calloc(nn, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < p->n_slots; i++)
        for (s3_pos_ent *e = p->slots[i], *nx; e; e = nx) {
            nx = e->next;
            size_t k = hash_str(e->seg) & (nn - 1);
            e->next = ns[k];
            ns[k] = e;
        }
    free(p->slots);
    p->slots = ns;
    p->n_slots = nn;
    return 0;
}

int s3_pos_update(s3_positions *p, const char *seg, uint64_t off,
                  int64_t now_ns)
{
    s3_pos_ent *e = s3_pos_find(p, seg);
    if (e) {
        if (off > e->max_off)
            e->max_off = off;
        if (now_ns > e->used_ns)
            e->used_ns = now_ns;
        return 0;
    }
    if (p->count + 1 > p->n_slots && pos_grow(p) != 0)
        return -1;
    size_t sl = strlen(seg);
    e = malloc(sizeof *e + sl + 1);
    if (!e)
        return -1;
    memcpy(e->seg, seg, sl + 1);
    e->max_off = off;
    e->used_ns = now_ns;
    size_t k = hash_str(seg) & (p->n_slots - 1);
    e->next = p->slots[k];
    p->slots[k] = e;
    p->count++;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void s3_pos_prune(s3_positions *p, int64_t before_ns, size_t max_entries)
{
    if (p->count > max_entries) {
        /* Raise the cut-off so that at most max_entries stay. */
        int64_t *t = malloc(p->count * sizeof *t);
        if (t) {
            size_t n = 0;
            for (size_t i = 0; i < p->n_slots; i++)
                for (s3_pos_ent *e = p->slots[i]; e; e = e->next)
                    t[n++] = e->used_ns;
            qsort(t, n, sizeof *t, cmp_i64);
            int64_t cut = t[n - max_entries];
            if (cut > before_ns)
                before_ns = cut;
            free(t);
        }
    }
    for (size_t i = 0; i < p->n_slots; i++) {
        s3_pos_ent **pp = &p->slots[i];
        while (*pp) {
            s3_pos_ent *e = *pp;
            if (e->used_ns < before_ns) {
                *pp = e->next;
                free(e);
                p->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

int s3_pos_serialise(const s3_positions *p, sbuf *out)
{
    size_t start = out->len;
    if (sbuf_puts(out, "lfs3-positions 1\n"))
        return -1;
    for (size_t i = 0; i < p->n_slots; i++)
        for (s3_pos_ent *e = p->slots[i]; e; e = e->next)
            if (sbuf_printf(out, "%" PRIu64 " %" PRId64 " %s\n", e->max_off,
                            e->used_ns, e->seg))
                return -1;
    uint32_t crc = s3_crc32c(0, out->p + start, out->len - start);
    return sbuf_printf(out, "crc %08x\n", crc);
}

int s3_pos_load(s3_positions *p, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    long n = s3_read_file(path, POS_FILE_MAX, &text);
    if (n < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *crcl = n > 0 ? strstr(text, "crc ") : NULL;
    while (crcl && crcl != text && crcl[-1] != '\n')
        crcl = strstr(crcl + 1, "crc ");
    unsigned want = 0;
    if (!crcl || strncmp(text, "lfs3-positions 1\n", 17) != 0 ||
        sscanf(crcl, "crc %8x", &want) != 1 ||
        s3_crc32c(0, text, (size_t)(crcl - text)) != want) {
        free(text);
        snprintf(err, errlen, "%s: damaged (CRC or format)", path);
        return -1;
    }
    *crcl = '\0';
    char *line = text + 17;
    while (*line) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        unsigned long long off;
        long long used;
        int at = 0;
        if (sscanf(line, "%llu %lld %n", &off, &used, &at) == 2 && at > 0 &&
            line[at] &&
            s3_pos_update(p, line + at, (uint64_t)off, (int64_t)used) != 0) {
            free(text);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        line = nl + 1;
    }
    free(text);
    return 0;
}

void s3_pos_free(s3_positions *p)
{
    for (size_t i = 0; i < p->n_slots; i++)
        for (s3_pos_ent *e = p->slots[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(p->slots);
    memset(p, 0, sizeof *p);
}
