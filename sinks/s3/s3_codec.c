/*
 * s3_codec.c - compression of staged blocks: each block (the records of
 * one object from one deliver() and one spool segment) becomes one
 * complete zstd frame (content checksum on) or gzip member.
 *
 * Why frames per block rather than one stream per object: the staging
 * file then holds compressed bytes (an order of magnitude less to write,
 * fdatasync and keep on disk), and an upload is a plain concatenation
 * with nothing to re-read or re-compress. Both formats define a
 * concatenation of frames/members as the concatenation of their contents
 * (RFC 8878 section 3.1, RFC 1952 section 2.2); the cost is a few percent
 * of ratio, since a frame does not refer back into the previous one.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "s3.h"

#define ZSTD_DEFAULT_LEVEL 3
#define GZIP_DEFAULT_LEVEL 6

const char *s3_codec_ext(s3_codec_kind k)
{
    return k == S3_CODEC_ZSTD ? ".zst" : k == S3_CODEC_GZIP ? ".gz" : "";
}

const char *s3_codec_encoding(s3_codec_kind k)
{
    return k == S3_CODEC_ZSTD ? "zstd" : k == S3_CODEC_GZIP ? "gzip" : NULL;
}

static int zstd_frame(s3_codec *c, int level, const void *in, size_t n,
                      sbuf *out)
{
    if (!c->zctx && !(c->zctx = ZSTD_createCCtx()))
        return -1;
    ZSTD_CCtx *z = c->zctx;
    ZSTD_CCtx_reset(z, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(
            z, ZSTD_c_compressionLevel, level ? level : ZSTD_DEFAULT_LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1)))
        return -1;
    size_t bound = ZSTD_compressBound(n);
    if (sbuf_reserve(out, bound + 1) != 0)
        return -1;
    /* compress2 knows the size: tables sized to the input, and the frame
       header records it. */
    size_t r = ZSTD_compress2(z, out->p + out->len, bound, in, n);
    if (ZSTD_isError(r))
        return -1;
    out->len += r;
    return 0;
}

static int gzip_member(s3_codec *c, int level, const void *in, size_t n,
                       sbuf *out)
{
    level = level ? level : GZIP_DEFAULT_LEVEL;
    z_stream *zs = c->gz;
    if (zs && c->gz_level != level) {
        deflateEnd(zs);
        free(zs);
        zs = c->gz = NULL;
    }
    if (!zs) {
        if (!(zs = calloc(1, sizeof *zs)))
            return -1;
        /* windowBits 15 + 16: a gzip wrapper, not zlib's. */
        if (deflateInit2(zs, level, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(zs);
            return -1;
        }
        c->gz = zs;
        c->gz_level = level;
    } else if (deflateReset(zs) != Z_OK) {
        return -1;
    }
    if (n > UINT32_MAX / 2)
        return -1;
    size_t bound = deflateBound(zs, (uLong)n);
    if (sbuf_reserve(out, bound + 1) != 0)
        return -1;
    zs->next_in = (Bytef *)in;
    zs->avail_in = (uInt)n;
    zs->next_out = (Bytef *)out->p + out->len;
    zs->avail_out = (uInt)bound;
    if (deflate(zs, Z_FINISH) != Z_STREAM_END)
        return -1;
    out->len += bound - zs->avail_out;
    return 0;
}

int s3_codec_frame(s3_codec *c, s3_codec_kind kind, int level, const void *in,
                   size_t n, sbuf *out)
{
    switch (kind) {
    case S3_CODEC_ZSTD:
        return zstd_frame(c, level, in, n, out);
    case S3_CODEC_GZIP:
        return gzip_member(c, level, in, n, out);
    case S3_CODEC_NONE:
    default:
        return sbuf_put(out, in, n);
    }
}

void s3_codec_free(s3_codec *c)
{
    if (c->zctx)
        ZSTD_freeCCtx(c->zctx);
    if (c->gz) {
        deflateEnd(c->gz);
        free(c->gz);
    }
    memset(c, 0, sizeof *c);
}
