/*
 * s3.h - internals of the "s3" sink (compressed NDJSON archive objects in
 * each tenant's bucket). Nothing here is a public contract: the module's
 * only export is the lf_sink_ops table (s3_sink.c).
 *
 * Files, in the order a record passes through them:
 *   s3_template.c  ${field} templates: bucket, role, ExternalId, object key
 *   s3_sink.c      config keys, create/deliver/flush/destroy: deliver()
 *                  renders, compresses and appends records to the staging
 *                  file of their open object, fdatasync, then answers OK
 *   s3_codec.c     one zstd frame / gzip member per block
 *   s3_wal.c       write-ahead log: one fdatasync per deliver(), replay
 *   s3_stage.c     staging files under host->instance_dir, the positions
 *                  table that recognises re-delivered records, recovery
 *   s3_upload.c    uploader threads: roll by size, count or age; PutObject
 *                  or multipart upload (upload ids persisted), retries
 *   s3_api.c       the S3 requests and what their answers mean
 *   s3_util.c      capped buffers, CRC32C, base64, MD5, URI encoding,
 *                  durable file helpers
 *
 * docs/S3.md explains the design and why each record lands in exactly
 * one object even across kill -9.
 */
#ifndef LOGFERRY_SINK_S3_H
#define LOGFERRY_SINK_S3_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <logferry/sink.h>

#include "../shared/fdio.h"
#include "../shared/awsname.h"
#include "../shared/sbuf.h"
#include "../shared/tmpl.h"

/* ---- limits of the service (not configurable) ------------------------- */

#define S3_KEY_MAX 1024 /* object key, bytes */
#define S3_BUCKET_MAX 63
#define S3_ARN_MAX LF_ROLE_ARN_MAX
#define S3_EXTID_MAX 1224
#define S3_SESSION_MAX 64
#define S3_MAX_PARTS 10000
#define S3_MIN_PART (5u * 1024u * 1024u) /* every part but the last */
#define S3_MAX_TAGS 10

/* Longest JSON line staged; longer records are refused (dead letters). */
#define S3_LINE_MAX (32u * 1024u * 1024u)

/* CRC-32C (Castagnoli), as S3's x-amz-checksum-crc32c and our staging
 * blocks use it. s3_crc32c(0, p, n) is the CRC of p[0..n); pass a previous
 * result to extend it. */
uint32_t s3_crc32c(uint32_t crc, const void *p, size_t n);

/* Base64 of in[0..n) into out (at least 4 * ((n + 2) / 3) + 1 bytes),
 * NUL-terminated. Returns the length. */
size_t s3_base64(const void *in, size_t n, char *out);

/* x-amz-checksum-crc32c value for a CRC: base64 of its 4 big-endian
 * bytes. out holds at least 9 bytes. */
void s3_crc32c_header(uint32_t crc, char out[9]);

/* Content-MD5 value (base64 of the MD5) of p[0..n) into out (25 bytes).
 * Returns 0, or -1 if OpenSSL fails. */
int s3_md5_base64(const void *p, size_t n, char out[25]);

/* Append s[0..n) percent-encoded as S3 wants it in a path or query:
 * everything but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash). */
int s3_uri_encode(sbuf *b, const char *s, size_t n, int keep_slash);

/* Append s[0..n) with XML's five special characters escaped. */
int s3_xml_escape(sbuf *b, const char *s, size_t n);

/* fsync() a directory. Returns 0 or -1 with errno. */
int s3_fsync_dir(const char *dir);

/* Replace dir/name with p[0..n) atomically and durably: temporary file,
 * fsync, rename, fsync of the directory. Returns 0 or -1 with errno. */
int s3_write_file_atomic(const char *dir, const char *name, const void *p,
                         size_t n);

/* Read all of path (at most max bytes) into *out (malloc'd, NUL-terminated,
 * the caller frees). Returns the length, or -1 with errno (ENOENT when
 * absent, EFBIG when over max). */
long s3_read_file(const char *path, size_t max, char **out);

/* ---- templates (s3_template.c) ---------------------------------------- */

/* What characters a substituted record field may hold, per destination
 * part. A value with others makes the record unroutable (dead letter)
 * rather than letting "a/b" and "a_b" share a destination. */
typedef enum s3_charset {
    S3_CS_BUCKET = 0,  /* [a-z0-9.-] */
    S3_CS_ARN = 1,     /* [A-Za-z0-9_+=,.@-] */
    S3_CS_EXTID = 2,   /* [A-Za-z0-9_+=,.@:/-] */
    S3_CS_SESSION = 3, /* [A-Za-z0-9_+=,.@-] */
    S3_CS_KEY = 4,     /* [A-Za-z0-9!_.*'()=+,@:-], not "." or ".." */
} s3_charset;

/* Where ${first} goes in an expanded key: this byte, replaced by the
 * position of the object's first record when the object is opened. */
#define S3_FIRST_MARK '\x01'

/* Values fixed for the life of the instance. */
typedef struct s3_tmpl_vars {
    const char *hostname; /* ${hostname} */
    const char *prefix;   /* ${prefix} (config key "prefix") */
    const char *ext;      /* ${ext}: ".zst", ".gz" or "" */
} s3_tmpl_vars;

typedef lf_tmpl s3_tmpl;

/* Parse "text ${name} text". Names: schema fields (tenant_id, account_id,
 * app, region, model_id, operation, status, session_id, trace_id),
 * attributes.KEY, the derived date (YYYY-MM-DD) and hour (HH) of the
 * event time, hostname, prefix, ext, and first (only where allow_first).
 * Returns the template (free with s3_tmpl_free) or NULL with a reason in
 * err. */
s3_tmpl *s3_tmpl_parse(const char *text, s3_charset cs, const s3_tmpl_vars *v,
                       int allow_first, char *err, size_t errlen);
/* Free with lf_tmpl_free(); lf_tmpl_is_static() and lf_tmpl_has_mark()
 * (${first}) describe it. */

/* Append the expansion for `rec` to out. Returns 0, or -1 when the record
 * cannot fill it: a field is unknown or empty, or holds characters the
 * charset refuses (why, whylen: names the field and the problem, never
 * its value), or out is full. date and hour are asked of the host once
 * per UTC hour of event time (t keeps them: one thread at a time). */
int s3_tmpl_expand(s3_tmpl *t, const lf_host *h, const lf_record *rec,
                   sbuf *out, char *why, size_t whylen);

/* Whole-value checks after expansion. */
int s3_valid_bucket(const char *s, size_t n);
int s3_valid_extid(const char *s, size_t n);

/* Creation time (ns since the epoch) that a spool segment name starts
 * with ("<created_ns:016x>-..."), or 0 if it does not. */
int64_t s3_segment_born(const char *seg);

/* The text ${first} stands for: the segment name without ".lfs", '-', the
 * frame offset as 12 hex digits. Characters outside [A-Za-z0-9._-] in
 * the segment name become '_'. Returns the length written to out (cap
 * bytes, NUL-terminated), or 0 if it does not fit. */
size_t s3_position_text(const lf_position *pos, char *out, size_t cap);

/* Turn an expanded key (S3_FIRST_MARK where ${first} was) into the final
 * key for an object whose first record is at `first`: the mark replaced,
 * leading '/' removed, "//" collapsed. Returns the length (out holds cap
 * bytes, NUL-terminated), or 0 when the result is empty or longer than
 * S3_KEY_MAX. */
size_t s3_key_finish(const char *key, size_t n, const lf_position *first,
                     char *out, size_t cap);

/* ---- positions: which spool positions are staged (s3_stage.c) --------- */

/* For each spool segment, the highest frame offset staged from it. The
 * core hands over the records of one segment in offset order, so a record
 * at or below that offset is a re-delivery of something already staged
 * (after a crash before the core committed its cursor). */
typedef struct s3_pos_ent {
    struct s3_pos_ent *next;
    uint64_t max_off;
    int64_t used_ns; /* wall clock of the last update: for pruning */
    char seg[];
} s3_pos_ent;

typedef struct s3_positions {
    s3_pos_ent **slots;
    size_t n_slots, count;
} s3_positions;

/* The entry of `seg`, or NULL. */
s3_pos_ent *s3_pos_find(const s3_positions *p, const char *seg);
/* Raise seg's offset to at least off. Returns 0 or -1 (out of memory). */
int s3_pos_update(s3_positions *p, const char *seg, uint64_t off,
                  int64_t now_ns);
/* Drop entries not updated since `before_ns`, and the oldest beyond
 * max_entries. */
void s3_pos_prune(s3_positions *p, int64_t before_ns, size_t max_entries);
/* Serialise into out (text with a CRC line). Returns 0 or -1. */
int s3_pos_serialise(const s3_positions *p, sbuf *out);
/* Load the file written by s3_pos_serialise (merging into p). Returns 0
 * (also when the file does not exist), or -1 with err set when it is
 * damaged. */
int s3_pos_load(s3_positions *p, const char *path, char *err, size_t errlen);
void s3_pos_free(s3_positions *p);

/* ---- staging files (s3_stage.c) ---------------------------------------- */

/* A staging file, "obj-<id:016x>.stage" in the instance directory:
 *   header: magic "LFS3STG1", u32 meta_len, u32 crc32c(meta), meta text
 *           ("name=value\n" lines: bucket, key, region, role, extid,
 *           session, compression, created_ns)
 *   blocks: S3_BLOCK_HDR bytes (see s3_stage.c), the segment name, then
 *           payload_len bytes: the NDJSON lines of some records of one
 *           spool segment (offset order), compressed as ONE independent
 *           frame (zstd) or member (gzip), or plain for "none"
 * Little-endian. The object is the concatenation of the payloads: a
 * multi-frame zstd / multi-member gzip stream, which the formats define
 * as the concatenation of the contents. A torn or damaged block ends the
 * file (recovery truncates it). */
#define S3_STAGE_MAGIC "LFS3STG1"
#define S3_BLOCK_HDR 44u
#define S3_BLOCK_MAGIC 0x4b425346u /* "FSBK" */

typedef enum s3_codec_kind {
    S3_CODEC_ZSTD = 0,
    S3_CODEC_GZIP = 1,
    S3_CODEC_NONE = 2,
} s3_codec_kind;

/* Where an object goes; strings owned. */
typedef struct s3_dest {
    char *bucket, *key, *region;
    char *role, *extid, *session; /* NULL: not set */
    s3_codec_kind codec;
} s3_dest;

void s3_dest_free(s3_dest *d);

/* Header bytes of a staging file for `d`. Returns 0 or -1. */
int s3_stage_header(const s3_dest *d, int64_t created_ns, sbuf *out);

/* One block header, decoded. */
typedef struct s3_block {
    uint32_t payload_len, raw_len, n_records;
    uint64_t first_off, last_off;
    uint32_t payload_crc;
    char seg[256];
} s3_block;

/* Start a block at out->len for segment seg; the caller appends the
 * payload, then s3_block_end patches the header. Returns 0 or -1. */
int s3_block_begin(sbuf *out, const char *seg);
/* Finish the block begun at `start`: counts, offsets, the uncompressed
 * length and the CRCs of the payload that follows its header. */
void s3_block_end(sbuf *out, size_t start, uint32_t n_records,
                  uint64_t first_off, uint64_t last_off, uint32_t raw_len);

/* What recovery found in a staging file. */
typedef struct s3_stage_scan {
    s3_dest dest;
    int64_t created_ns;
    uint64_t data_start; /* first block */
    uint64_t valid_len;  /* end of the last whole block */
    uint64_t file_len;
    uint64_t records;
    uint64_t raw_bytes;    /* NDJSON, uncompressed */
    uint64_t stored_bytes; /* payloads as stored (compressed) */
} s3_stage_scan;

/* Callback per whole block (for the positions table). */
typedef int (*s3_block_fn)(void *ud, const s3_block *b);

/* Read the staging file at fd: header into sc->dest, then every block
 * (payload CRC checked) until the end or the first torn/damaged block.
 * Returns 0, or -1 with err set when the header itself is unusable. */
int s3_stage_scan_fd(int fd, s3_stage_scan *sc, s3_block_fn fn, void *ud,
                     char *err, size_t errlen);

/* Decode a block header at p (S3_BLOCK_HDR + seg bytes available: pass
 * avail). Returns the header length (S3_BLOCK_HDR + seg_len), 0 when more
 * bytes are needed, or -1 when it is not a valid header. */
long s3_block_decode(const uint8_t *p, size_t avail, s3_block *b);

/* ---- compression (s3_codec.c) ----------------------------------------- */

typedef struct s3_codec {
    void *zctx; /* ZSTD_CCtx, kept between frames */
    void *gz;   /* z_stream, kept between members */
    int gz_level;
} s3_codec;

/* Append in[0..n) to out as one complete, independent frame (zstd, with
 * its content checksum), gzip member, or plain bytes. level 0: the
 * codec's default (zstd 3, gzip 6). Returns 0 or -1. */
int s3_codec_frame(s3_codec *c, s3_codec_kind kind, int level, const void *in,
                   size_t n, sbuf *out);
void s3_codec_free(s3_codec *c);
/* The file extension ${ext} stands for. */
const char *s3_codec_ext(s3_codec_kind k);
/* Content-Encoding value, NULL for none. */
const char *s3_codec_encoding(s3_codec_kind k);

/* ---- the instance (s3_sink.c) ----------------------------------------- */

typedef enum s3_obj_state {
    S3_OBJ_OPEN = 0,      /* deliver() appends to it */
    S3_OBJ_SEALED = 1,    /* waiting for an uploader */
    S3_OBJ_UPLOADING = 2, /* an uploader owns it */
} s3_obj_state;

typedef struct s3_obj {
    struct s3_obj *hnext;       /* open table chain */
    struct s3_obj *prev, *next; /* open list or sealed queue */
    uint64_t id;
    uint32_t hash;
    char *group; /* open objects: the routing key; NULL once sealed */
    s3_dest dest;
    int fd;           /* open objects only; -1 otherwise */
    uint64_t size;    /* bytes of the staging file that are whole */
    uint64_t payload; /* uncompressed NDJSON bytes */
    uint64_t stored;  /* bytes of the object: block payloads, compressed */
    uint64_t records;
    int64_t opened_mono; /* host mono clock, for roll_age */
    int64_t born_ns;     /* wall clock: creation of the oldest spool
                            segment it holds records of (spool.max_age) */
    int64_t w_born;
    s3_obj_state state;
    int dirty;    /* a failed batch left bytes past size */
    int unsynced; /* written since its last fdatasync (wal_lock) */
    uint8_t *hdr; /* staging header, until the WAL has it */
    size_t hdr_len;
    int mpu_marker;      /* a multipart marker file may exist */
    uint64_t data_start; /* first block of the staging file */

    /* per deliver(): records of this object, as a list of indices */
    int touched, created_now, full;
    size_t first_rec, last_rec;
    uint64_t w_len; /* bytes written by the running deliver() */
    uint32_t w_records;
    uint64_t w_payload, w_stored;

    /* upload scheduling (under the sink lock) */
    int64_t next_try_mono;
    unsigned failures;
    uint64_t flush_tried; /* flush generation of the last attempt */
} s3_obj;

/* A credentials handle per identity, shared by deliver and uploaders. */
typedef struct s3_ident {
    char *key; /* region \x1f role \x1f extid \x1f session */
    lf_aws_creds *creds;
} s3_ident;

/* Per uploader thread. */
typedef struct s3_uploader {
    struct s3_sink *sink;
    pthread_t thread;
    int started;
    sbuf out; /* object bytes read from staging, not yet sent */
    uint64_t rng;
} s3_uploader;

typedef struct s3_sink {
    const lf_host *host;
    const char *dir; /* host->instance_dir */
    int lock_fd;     /* flock on dir/lock: one instance per directory */

    /* configuration */
    s3_tmpl *t_bucket, *t_role, *t_extid, *t_session, *t_key;
    const char *region;
    char *endpoint; /* scheme://host[:port], no trailing '/' */
    int path_style;
    int https;
    s3_codec_kind codec;
    int level;
    uint64_t roll_bytes, roll_records;
    int64_t roll_age_ns;
    uint64_t mpu_threshold, part_size;
    int checksum_md5; /* 0: CRC32C */
    const char *sse, *kms_key_id, *storage_class;
    char *tagging; /* x-amz-tagging value or NULL */
    size_t max_open;
    uint64_t max_staged;
    unsigned n_uploaders;
    unsigned request_retries;
    int64_t retry_base_ns; /* first backoff of a request retry */
    int64_t object_retry_ns, object_retry_max_ns, permanent_retry_ns;
    int64_t flush_timeout_ns;
    int64_t max_age_ns; /* spool.max_age lent by the host; 0: none */
    int fsync;
    char hostname[256];

    /* shared state */
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* work for uploaders, or stop */
    pthread_cond_t done_cond; /* an upload finished (flush waits) */
    atomic_int stop;
    int delivering; /* deliver() runs: uploaders leave open objects */
    s3_obj **slots; /* open objects by group */
    size_t n_slots;
    s3_obj open_list; /* sentinel: open objects, least recent first */
    size_t n_open;
    s3_obj sealed; /* sentinel: sealed and uploading objects */
    size_t n_sealed;
    uint64_t staged_bytes; /* staging files' sizes */
    uint64_t next_id;
    uint64_t flush_gen;
    s3_positions pos;
    pthread_mutex_t pos_file_lock; /* one writer of the positions file */
    pthread_mutex_t wal_lock;      /* the WAL; fd/unsynced of sealed objs */
    int wal_fd;
    uint64_t wal_seq, wal_size;
    uint64_t wal_before;    /* size before the running deliver() */
    int wal_held;           /* deliver() holds wal_lock */
    int wal_broken;         /* a failed batch could not be cut from the log */
    int64_t wal_started_ns; /* wall clock when the current log began */
    pthread_mutex_t ident_lock;
    s3_ident *idents;
    size_t n_idents;
    s3_uploader *up;

    /* deliver() scratch, reused between calls */
    sbuf group;    /* routing key of one record */
    sbuf raw;      /* NDJSON lines of one block, before compression */
    sbuf wbuf;     /* blocks of one object, as written */
    s3_codec cctx; /* compression contexts of deliver() */
    size_t *rec_next;
    s3_obj **rec_obj;
    size_t cap_recs;
    s3_obj **touched;
    size_t n_touched, cap_touched;
    struct s3_run {
        const char *seg;
        uint64_t max_off;
    } * runs; /* positions staged by the running deliver(), per segment */
    size_t n_runs;
    int64_t last_prune_ns;
    char fail_reason[512];
    int64_t last_full_log_ns;
} s3_sink;

/* Lock-held helpers shared by s3_sink.c and s3_upload.c. */
void s3_seal_locked(s3_sink *s, s3_obj *o);
void s3_obj_free(s3_obj *o);
/* Path of object id's staging file ("stage") or marker ("mpu"). */
void s3_obj_path(const s3_sink *s, uint64_t id, const char *ext, char *out,
                 size_t cap);

/* The credentials handle for an identity (made on first use). Returns
 * NULL with err set when the host refuses the identity. */
lf_aws_creds *s3_ident_get(s3_sink *s, const s3_dest *d, char *err,
                           size_t errlen);

/* ---- write-ahead log (s3_wal.c) ---------------------------------------- */

/* Past this size, deliver() checkpoints: unsynced staging files are
 * synced and a new log starts. */
#define S3_WAL_MAX (32u * 1024u * 1024u)

typedef enum s3_wal_type {
    S3_WAL_OBJ = 1,  /* a staging file's header */
    S3_WAL_BLK = 2,  /* blocks at an offset of a staging file */
    S3_WAL_DONE = 3, /* uploaded; the file is being deleted */
} s3_wal_type;

/* Append a record (wal_lock held). Not synced. Returns 0 or -1 with
 * errno; on failure the caller truncates back. */
int s3_wal_append(s3_sink *s, s3_wal_type type, uint64_t id, uint64_t off,
                  const void *data, size_t len);
typedef enum s3_ckpt {
    S3_CKPT_FORCE = 0,  /* now (deliver thread) */
    S3_CKPT_IF_BIG = 1, /* past S3_WAL_MAX (deliver thread) */
    S3_CKPT_IF_OLD = 2, /* holds records and began max_age / 4 ago
                           (uploader thread; skipped while delivering) */
} s3_ckpt;

/* Sync unsynced staging files, start a new log, drop the old ones, when
 * `when` says so. Takes wal_lock (and s->lock inside it); the caller
 * holds neither. Returns 0 or -1 (logged). */
int s3_wal_checkpoint(s3_sink *s, s3_ckpt when);
/* At create, before the staging files are scanned: replay what the logs
 * hold, then start a new log. Returns 0 or -1 with err set. */
int s3_wal_recover(s3_sink *s, char *err, size_t errlen);

/* ---- uploads (s3_upload.c) -------------------------------------------- */

/* Start / stop the uploader threads. */
int s3_uploaders_start(s3_sink *s, char *err, size_t errlen);
void s3_uploaders_stop(s3_sink *s);

/* Save the positions table now (a snapshot taken under the lock; only
 * deliver() changes the table). Returns 0 or -1 with errno. */
int s3_positions_save(s3_sink *s);

/* ---- S3 requests (s3_api.c) ------------------------------------------- */

typedef struct s3_err {
    lf_aws_class cls;
    long status;
    char code[128];
    char message[512];
    char request_id[128];
    uint32_t retry_after_ms;
} s3_err;

/* One multipart upload found by ListMultipartUploads. */
typedef struct s3_upload_ref {
    char key[S3_KEY_MAX + 1];
    char id[1024];
} s3_upload_ref;

/* Context of the calls for one object. */
typedef struct s3_call {
    s3_sink *s;
    s3_uploader *u;
    lf_aws_creds *creds;
    const s3_dest *d;
    const char *region;
} s3_call;

/* The object's URL (path style or virtual host), with query `q` ("" or
 * "uploads", "uploadId=...", percent-encoded already). */
int s3_object_url(const s3_sink *s, const char *bucket, const char *key,
                  const char *q, sbuf *out);

/* Each call retries RETRYABLE answers (backoff, Retry-After) up to the
 * configured count and returns the last classification; *e describes a
 * failure. They stop early (RETRYABLE) when the sink is stopping. */
lf_aws_class s3_put_object(s3_call *c, const void *body, size_t n,
                           uint64_t records, s3_err *e);
lf_aws_class s3_create_mpu(s3_call *c, uint64_t records, char *id, size_t cap,
                           s3_err *e);
lf_aws_class s3_upload_part(s3_call *c, const char *id, unsigned part,
                            const void *body, size_t n, char *etag,
                            size_t etag_cap, char *crc_b64, s3_err *e);
/* parts: `n` entries of etag (and CRC32C base64 when the sink uses it). */
lf_aws_class s3_complete_mpu(s3_call *c, const char *id, char (*etags)[128],
                             char (*crcs)[12], unsigned n, s3_err *e);
/* NoSuchUpload counts as done. */
lf_aws_class s3_abort_mpu(s3_call *c, const char *id, s3_err *e);
/* Uploads in progress for exactly d->key. *out is malloc'd (caller frees).
 */
lf_aws_class s3_list_mpu(s3_call *c, s3_upload_ref **out, size_t *n, s3_err *e);

/* Parse an S3 XML answer: the text of the first <name> element anywhere.
 * Returns the length copied into out (cap bytes, NUL-terminated), or -1
 * when absent or the XML is malformed. */
long s3_xml_find(const char *xml, size_t len, const char *name, char *out,
                 size_t cap);
/* ListMultipartUploads answer: every Upload's Key and UploadId, appended
 * to *refs (realloc'd), plus the pagination markers. Returns 0 or -1. */
int s3_xml_uploads(const char *xml, size_t len, s3_upload_ref **refs, size_t *n,
                   int *truncated, char *next_key, size_t key_cap,
                   char *next_id, size_t id_cap);

/* Sleep up to ms in short slices; returns early (1) if the sink stops. */
int s3_sleep_ms(s3_sink *s, uint64_t ms);

#endif
