/*
 * test_record_decode.c - rdec_unpack() against protobuf-c's unpack.
 *
 * protobuf-c is the judge. Every input is decoded by both; when protobuf-c
 * accepts, rdec must accept and give the same record (every schema field,
 * empty-string identity, map entries in order, unknown fields byte for
 * byte, and the same bytes out of pack()); when protobuf-c refuses, rdec
 * must refuse without taking memory. Inputs:
 * - generated records: every field of the descriptor, some packed by
 *   protobuf-c one field at a time, some encoded by hand (explicit empty
 *   and zero values, NULs, non-minimal tags, varints and lengths, values
 *   wider than their field), duplicated singular fields, map entries with
 *   duplicates and unknown fields of their own, unknown fields of every
 *   valid wire type at random places, all in random order;
 * - those records mutated (cut, bit flips, inserted/removed/copied bytes);
 * - "token soup": random tags (wire types 0-7, field numbers near the
 *   schema's, over-long tags) with payloads that may be cut or lie about
 *   their length;
 * - short random byte strings;
 * - a table of edge cases with the verdict protobuf-c 1.4.1 gives.
 * The generator walks the descriptor, so a field added to the schema is
 * generated at once and fails the test until rdec knows it. Inputs are
 * exact-size heap copies and every allocation is its own malloc, so ASan
 * sees any read or write out of bounds. The seed is fixed; a failure
 * prints the input in hex.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_decode.h"

typedef Logferry__V1__InvocationRecord rec_t;
#define REC_DESC (&logferry__v1__invocation_record__descriptor)

/* ck_assert() talks to the runner on every call, success or not; the loops
 * below check millions of times, so they test with this instead. */
#define NEED(x)                                                                \
    do {                                                                       \
        if (!(x))                                                              \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #x);                 \
    } while (0)

/* Under a sanitizer every case costs ~20x more; a quarter of the cases
 * still covers every generator path and keeps the test well inside
 * Check's timeout on a loaded 2-core CI machine (it took 50 s of 120). */
#if defined(__SANITIZE_ADDRESS__)
#define N_SCALE 4
#else
#define N_SCALE 1
#endif
#define N_GENERATED (100000 / N_SCALE)
#define N_MUTATED (200000 / N_SCALE) /* two mutants of each generated record   \
                                      */
#define N_SOUP (200000 / N_SCALE)
#define N_RANDOM (100000 / N_SCALE)

/* ---- an allocator: one malloc per allocation, all freed at reset ------ */

typedef struct pool {
    void **p;
    size_t n, cap;
    long fail_after; /* allocations left before failing; -1: never */
} pool;

static void *pool_alloc(void *ud, size_t n)
{
    pool *pl = ud;
    if (pl->fail_after == 0)
        return NULL;
    if (pl->fail_after > 0)
        pl->fail_after--;
    if (pl->n == pl->cap) {
        size_t nc = pl->cap ? pl->cap * 2 : 256;
        void **np = realloc(pl->p, nc * sizeof *np);
        NEED(np != NULL);
        pl->p = np;
        pl->cap = nc;
    }
    void *m = malloc(n ? n : 1);
    NEED(m != NULL);
    pl->p[pl->n++] = m;
    return m;
}

static void pool_nofree(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

static void pool_reset(pool *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->p[i]);
    pl->n = 0;
    pl->fail_after = -1;
}

static void pool_destroy(pool *pl)
{
    pool_reset(pl);
    free(pl->p);
    pl->p = NULL;
    pl->cap = 0;
}

/* ---- randomness (splitmix64, fixed seed) ------------------------------ */

static uint64_t rng_state;

static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static size_t rnd(size_t n)
{
    return n ? (size_t)(rnd64() % n) : 0;
}

static int chance(unsigned percent)
{
    return rnd(100) < percent;
}

/* A 64-bit value of random width: small numbers are common, as on the
 * wire, but every width occurs. */
static uint64_t rnd_value(void)
{
    uint64_t v = rnd64();
    switch (rnd(4)) {
    case 0:
        return v & 0x7f;
    case 1:
        return v >> rnd(64);
    case 2:
        return v;
    default:
        return (uint64_t)(-(int64_t)(v & 0xff)); /* small negatives */
    }
}

/* ---- byte buffers ----------------------------------------------------- */

typedef struct wbuf {
    uint8_t *b;
    size_t n, cap;
} wbuf;

static void wb_put(wbuf *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        while (nc < w->n + n)
            nc *= 2;
        uint8_t *nb = realloc(w->b, nc);
        NEED(nb != NULL);
        w->b = nb;
        w->cap = nc;
    }
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void wb_byte(wbuf *w, uint8_t c)
{
    wb_put(w, &c, 1);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* v as a varint, made `pad` bytes longer than needed. */
static void wb_varint(wbuf *w, uint64_t v, size_t pad)
{
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        if (v || pad)
            b |= 0x80;
        wb_byte(w, b);
    } while (v);
    while (pad--)
        wb_byte(w, pad ? 0x80 : 0x00);
}

/* A random padding that keeps the varint of v within max bytes. */
static size_t rnd_pad(uint64_t v, size_t max)
{
    size_t room = max - varint_size(v);
    return chance(85) ? 0 : rnd(room + 1);
}

static void wb_tag(wbuf *w, uint32_t num, unsigned wt)
{
    uint64_t key = (uint64_t)num << 3 | wt;
    size_t pad = rnd_pad(key, 5);
    if (num == 0 && pad == 0)
        pad = 1; /* a one-byte tag of field 0 is refused; this is valid */
    wb_varint(w, key, pad);
}

static void wb_len(wbuf *w, size_t len)
{
    wb_varint(w, len, rnd_pad(len, 5));
}

static void hex(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
    if (o + 4 >= cap && cap > 4)
        snprintf(out + cap - 4, 4, "...");
}

/* ---- comparing two decoded messages, driven by the descriptor --------- */

static int str_differs(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    if ((a == protobuf_c_empty_string) != (b == protobuf_c_empty_string))
        return 1;
    return strcmp(a, b) != 0;
}

/* 0 if equal; otherwise 1 with the first difference in why. */
static int msg_diff(const ProtobufCMessage *a, const ProtobufCMessage *b,
                    char *why, size_t whylen)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    if (a->descriptor != b->descriptor) {
        snprintf(why, whylen, "descriptor %p vs %p", (void *)a->descriptor,
                 (void *)b->descriptor);
        return 1;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const char *ma = (const char *)a + fd->offset;
        const char *mb = (const char *)b + fd->offset;
        int differs = 0;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na, nb;
            memcpy(&na, (const char *)a + fd->quantifier_offset, sizeof na);
            memcpy(&nb, (const char *)b + fd->quantifier_offset, sizeof nb);
            if (fd->type != PROTOBUF_C_TYPE_MESSAGE) {
                snprintf(why, whylen,
                         "%s: repeated type %d not covered by this test",
                         fd->name, (int)fd->type);
                return 1;
            }
            if (na != nb) {
                snprintf(why, whylen, "%s: %zu vs %zu entries", fd->name, na,
                         nb);
                return 1;
            }
            ProtobufCMessage *const *ea, *const *eb;
            memcpy(&ea, ma, sizeof ea);
            memcpy(&eb, mb, sizeof eb);
            if ((ea == NULL) != (eb == NULL)) {
                snprintf(why, whylen, "%s: array NULL-ness", fd->name);
                return 1;
            }
            for (size_t k = 0; k < na; k++) {
                char sub[200];
                if (msg_diff(ea[k], eb[k], sub, sizeof sub)) {
                    snprintf(why, whylen, "%s[%zu].%s", fd->name, k, sub);
                    return 1;
                }
            }
            continue;
        }
        switch (fd->type) {
        case PROTOBUF_C_TYPE_STRING: {
            const char *sa, *sb;
            memcpy(&sa, ma, sizeof sa);
            memcpy(&sb, mb, sizeof sb);
            differs = str_differs(sa, sb);
            break;
        }
        case PROTOBUF_C_TYPE_BYTES: {
            ProtobufCBinaryData ba, bb;
            memcpy(&ba, ma, sizeof ba);
            memcpy(&bb, mb, sizeof bb);
            differs = ba.len != bb.len ||
                      (ba.data == NULL) != (bb.data == NULL) ||
                      (ba.len && memcmp(ba.data, bb.data, ba.len) != 0);
            break;
        }
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_UINT64:
            differs = memcmp(ma, mb, 8) != 0;
            break;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_ENUM:
            differs = memcmp(ma, mb, 4) != 0;
            break;
        default:
            snprintf(why, whylen, "%s: type %d not covered by this test",
                     fd->name, (int)fd->type);
            return 1;
        }
        if (differs) {
            snprintf(why, whylen, "field %s differs", fd->name);
            return 1;
        }
    }
    if (a->n_unknown_fields != b->n_unknown_fields) {
        snprintf(why, whylen, "%u vs %u unknown fields", a->n_unknown_fields,
                 b->n_unknown_fields);
        return 1;
    }
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *ua = &a->unknown_fields[i],
                                           *ub = &b->unknown_fields[i];
        if (ua->tag != ub->tag || ua->wire_type != ub->wire_type ||
            ua->len != ub->len || memcmp(ua->data, ub->data, ua->len) != 0) {
            snprintf(why, whylen,
                     "unknown field %u: tag %u/%u wt %d/%d len %zu/%zu", i,
                     ua->tag, ub->tag, (int)ua->wire_type, (int)ub->wire_type,
                     ua->len, ub->len);
            return 1;
        }
    }
    return 0;
}

/* ---- the check every input goes through ------------------------------- */

static pool P;
static ProtobufCAllocator PA = {pool_alloc, pool_nofree, &P};
static long n_accepted, n_rejected;

static void fail_with(const char *mode, long iter, const uint8_t *in,
                      size_t len, const char *what)
{
    char hx[1024];
    hex(in, len, hx, sizeof hx);
    ck_abort_msg("%s #%ld (%zu bytes): %s\ninput: %s", mode, iter, len, what,
                 hx);
}

static void check_same(const uint8_t *in, size_t len, const char *mode,
                       long iter)
{
    char why[300];
    pool_reset(&P);
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        NEED(copy != NULL);
        memcpy(copy, in, len);
    }

    rec_t got;
    int rc = rdec_unpack(copy, len, &PA, &got);
    size_t rdec_allocs = P.n;
    rec_t *want = logferry__v1__invocation_record__unpack(&PA, len, copy);

    if (!want) {
        n_rejected++;
        rec_t empty = LOGFERRY__V1__INVOCATION_RECORD__INIT;
        if (rc != RDEC_EMALFORMED)
            fail_with(mode, iter, in, len,
                      "protobuf-c refuses it, rdec does not");
        if (rdec_allocs != 0)
            fail_with(mode, iter, in, len, "rdec took memory, then refused");
        if (msg_diff(&empty.base, &got.base, why, sizeof why))
            fail_with(mode, iter, in, len, "refused record is not empty");
        free(copy);
        return;
    }
    n_accepted++;
    if (rc != RDEC_OK)
        fail_with(mode, iter, in, len, "protobuf-c accepts it, rdec does not");
    if (rdec_allocs > 1)
        fail_with(mode, iter, in, len, "rdec allocated more than once");
    if (msg_diff(&want->base, &got.base, why, sizeof why))
        fail_with(mode, iter, in, len, why);

    /* pack() must see the same record, unknown fields included. */
    size_t sa = logferry__v1__invocation_record__get_packed_size(want);
    size_t sb = logferry__v1__invocation_record__get_packed_size(&got);
    if (sa != sb)
        fail_with(mode, iter, in, len, "get_packed_size differs");
    uint8_t *pa = malloc(sa + 1), *pb = malloc(sb + 1);
    NEED(pa && pb);
    logferry__v1__invocation_record__pack(want, pa);
    logferry__v1__invocation_record__pack(&got, pb);
    if (memcmp(pa, pb, sa) != 0)
        fail_with(mode, iter, in, len, "pack() output differs");
    free(pa);
    free(pb);
    free(copy);
}

/* ---- generating records ----------------------------------------------- */

static pool G; /* the generator's strings and scratch messages */

/* A string without NUL (protobuf-c packs with strlen), or with NULs when
 * allow_nul; *len_out gets its length. */
static char *rnd_string(int allow_nul, size_t *len_out)
{
    size_t n;
    switch (rnd(20)) {
    case 0:
    case 1:
    case 2:
    case 3:
        n = 0;
        break;
    case 4:
        n = 128 + rnd(3000); /* two-byte lengths and beyond */
        break;
    case 5:
    case 6:
    case 7:
    case 8:
        n = 20 + rnd(200);
        break;
    default:
        n = 1 + rnd(20);
    }
    char *s = pool_alloc(&G, n + 1);
    int binary = chance(30);
    for (size_t i = 0; i < n; i++) {
        if (binary)
            s[i] = (char)(1 + rnd(255));
        else
            s[i] = (char)(' ' + rnd(95));
        if (allow_nul && chance(3))
            s[i] = '\0';
    }
    s[n] = '\0';
    *len_out = n;
    return s;
}

static void set_random(const ProtobufCFieldDescriptor *fd, void *msg);

static ProtobufCMessage *rnd_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pool_alloc(&G, d->sizeof_message);
    protobuf_c_message_init(d, m);
    for (unsigned i = 0; i < d->n_fields; i++)
        if (chance(80))
            set_random(&d->fields[i], m);
    return m;
}

/* Give one field of msg a random value (a single entry, if repeated). */
static void set_random(const ProtobufCFieldDescriptor *fd, void *msg)
{
    char *m = (char *)msg + fd->offset;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            ck_abort_msg("%s: repeated type %d not covered by this test",
                         fd->name, (int)fd->type);
        ProtobufCMessage **arr = pool_alloc(&G, sizeof *arr);
        arr[0] = rnd_message(fd->descriptor);
        size_t one = 1;
        memcpy((char *)msg + fd->quantifier_offset, &one, sizeof one);
        memcpy(m, &arr, sizeof arr);
        return;
    }
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        size_t n;
        char *s = rnd_string(0, &n);
        memcpy(m, &s, sizeof s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData bd;
        bd.len = chance(20) ? 0 : (chance(80) ? 16 : rnd(300));
        bd.data = pool_alloc(&G, bd.len + 1);
        for (size_t i = 0; i < bd.len; i++)
            bd.data[i] = (uint8_t)rnd(256);
        memcpy(m, &bd, sizeof bd);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: {
        uint64_t v = rnd_value();
        memcpy(m, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_ENUM: {
        uint32_t v = (uint32_t)(chance(50) ? rnd(8) : rnd_value());
        memcpy(m, &v, sizeof v);
        break;
    }
    default:
        ck_abort_msg("%s: type %d not covered by this test", fd->name,
                     (int)fd->type);
    }
}

static void build_message(const ProtobufCMessageDescriptor *d, wbuf *out,
                          int depth);

/* One occurrence of field fd of a d message. */
static void field_segment(const ProtobufCMessageDescriptor *d,
                          const ProtobufCFieldDescriptor *fd, wbuf *w,
                          int depth)
{
    if (chance(55)) {
        /* protobuf-c packs a message holding just this field. */
        ProtobufCMessage *m = pool_alloc(&G, d->sizeof_message);
        protobuf_c_message_init(d, m);
        set_random(fd, m);
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *b = pool_alloc(&G, n + 1);
        NEED(protobuf_c_message_pack(m, b) == n);
        wb_put(w, b, n);
        return;
    }
    /* By hand. */
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES: {
        size_t n;
        char *s = rnd_string(1, &n);
        wb_tag(w, fd->id, 2);
        wb_len(w, n);
        wb_put(w, s, n);
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_ENUM: {
        uint64_t v = chance(10) ? 0 : rnd_value();
        wb_tag(w, fd->id, 0);
        wb_varint(w, v, rnd_pad(v, 10));
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        wbuf sub = {0};
        build_message(fd->descriptor, &sub, depth + 1);
        wb_tag(w, fd->id, 2);
        wb_len(w, sub.n);
        wb_put(w, sub.b, sub.n);
        free(sub.b);
        break;
    }
    default:
        ck_abort_msg("%s: type %d not covered by this test", fd->name,
                     (int)fd->type);
    }
}

/* An unknown field of a d message, of any valid wire type. */
static void unknown_segment(const ProtobufCMessageDescriptor *d, wbuf *w)
{
    uint32_t num;
    do {
        switch (rnd(6)) {
        case 0:
            num = 0; /* only as a non-minimal tag */
            break;
        case 1:
            num = (uint32_t)(1 + rnd(15)); /* one-byte tags */
            break;
        case 2:
            num = (uint32_t)(24 + rnd(76));
            break;
        case 3:
            num = (uint32_t)(100 + rnd(100));
            break;
        case 4:
            num = (uint32_t)rnd(1u << 29);
            break;
        default:
            num = (uint32_t)rnd64(); /* beyond the 29 bits protobuf allows */
        }
    } while (protobuf_c_message_descriptor_get_field(d, (unsigned)num));
    static const unsigned wts[] = {0, 1, 2, 5};
    unsigned wt = wts[rnd(4)];
    wb_tag(w, num, wt);
    switch (wt) {
    case 0: {
        uint64_t v = rnd_value();
        wb_varint(w, v, rnd_pad(v, 10));
        break;
    }
    case 1:
    case 5:
        for (unsigned i = 0; i < (wt == 1 ? 8u : 4u); i++)
            wb_byte(w, (uint8_t)rnd(256));
        break;
    default: {
        size_t n = chance(90) ? rnd(30) : rnd(400);
        wb_len(w, n);
        for (size_t i = 0; i < n; i++)
            wb_byte(w, (uint8_t)rnd(256));
    }
    }
}

typedef struct seg {
    size_t off, len;
} seg;

/* A d message: every field absent, once or several times, unknown fields
 * among them, in random order. */
static void build_message(const ProtobufCMessageDescriptor *d, wbuf *out,
                          int depth)
{
    wbuf store = {0};
    seg segs[512];
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        size_t k;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED)
            k = chance(30) ? 0 : rnd(depth ? 3 : 7);
        else if (chance(25))
            k = 0;
        else
            k = chance(85) ? 1 : 2 + rnd(2); /* duplicates: last wins */
        for (size_t j = 0; j < k && n < 500; j++) {
            size_t at = store.n;
            field_segment(d, fd, &store, depth);
            segs[n++] = (seg){at, store.n - at};
        }
    }
    size_t u = chance(50) ? 0 : rnd(6);
    for (size_t j = 0; j < u && n < 512; j++) {
        size_t at = store.n;
        unknown_segment(d, &store);
        segs[n++] = (seg){at, store.n - at};
    }
    /* Writers emit fields in number order; decoders must not care. */
    if (chance(70))
        for (size_t j = n; j > 1; j--) {
            size_t k = rnd(j);
            seg t = segs[j - 1];
            segs[j - 1] = segs[k];
            segs[k] = t;
        }
    for (size_t j = 0; j < n; j++)
        wb_put(out, store.b + segs[j].off, segs[j].len);
    free(store.b);
}

/* ---- mutations --------------------------------------------------------- */

static void mutate(const uint8_t *in, size_t len, const uint8_t *other,
                   size_t olen, wbuf *out)
{
    out->n = 0;
    wb_put(out, in, len);
    unsigned k = 1 + (unsigned)rnd(3);
    while (k--) {
        size_t n = out->n;
        size_t at = rnd(n + 1);
        switch (rnd(8)) {
        case 0: /* cut */
            out->n = at;
            break;
        case 1: /* flip a bit */
            if (n)
                out->b[rnd(n)] ^= (uint8_t)(1u << rnd(8));
            break;
        case 2: { /* a byte that matters to the grammar */
            static const uint8_t special[] = {0x00, 0x01, 0x07, 0x7f,
                                              0x80, 0x81, 0xff, 0x08};
            if (n)
                out->b[rnd(n)] = special[rnd(sizeof special)];
            break;
        }
        case 3: /* change a wire type */
            if (n) {
                size_t i = rnd(n);
                out->b[i] = (uint8_t)((out->b[i] & ~7u) | rnd(8));
            }
            break;
        case 4: { /* insert random bytes */
            uint8_t ins[4];
            size_t m = 1 + rnd(4);
            for (size_t i = 0; i < m; i++)
                ins[i] = (uint8_t)rnd(256);
            wb_put(out, ins, m);
            memmove(out->b + at + m, out->b + at, n - at);
            memcpy(out->b + at, ins, m);
            break;
        }
        case 5: { /* remove a range */
            size_t m = rnd(n - at + 1);
            memmove(out->b + at, out->b + at + m, n - at - m);
            out->n = n - m;
            break;
        }
        case 6: { /* copy a range of itself elsewhere */
            if (!n)
                break;
            size_t from = rnd(n), m = 1 + rnd(n - from);
            uint8_t *tmp = malloc(m);
            NEED(tmp != NULL);
            memcpy(tmp, out->b + from, m);
            wb_put(out, tmp, m);
            memmove(out->b + at + m, out->b + at, n - at);
            memcpy(out->b + at, tmp, m);
            free(tmp);
            break;
        }
        default: { /* splice in part of another record */
            if (!olen)
                break;
            size_t from = rnd(olen), m = 1 + rnd(olen - from);
            out->n = at;
            wb_put(out, other + from, m);
            break;
        }
        }
    }
}

/* ---- token soup -------------------------------------------------------- */

static void soup(wbuf *w, int depth)
{
    size_t tokens = rnd(depth ? 4 : 12);
    while (tokens--) {
        uint32_t num;
        switch (rnd(5)) {
        case 0:
            num = (uint32_t)rnd(3);
            break;
        case 1:
        case 2:
            num = (uint32_t)(1 + rnd(23));
            break;
        case 3:
            num = 23;
            break;
        default:
            num = (uint32_t)(chance(50) ? 24 + rnd(200) : rnd64());
        }
        static const unsigned valid_wts[] = {0, 1, 2, 5};
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(REC_DESC, (unsigned)num);
        unsigned wt;
        if (fd && chance(60)) /* the right one, mostly */
            wt = fd->type == PROTOBUF_C_TYPE_STRING ||
                         fd->type == PROTOBUF_C_TYPE_BYTES ||
                         fd->type == PROTOBUF_C_TYPE_MESSAGE
                     ? 2
                     : 0;
        else
            wt = chance(75) ? valid_wts[rnd(4)] : (unsigned)rnd(8);
        uint64_t key = (uint64_t)num << 3 | wt;
        if (chance(5)) {
            for (size_t i = 0, m = 5 + rnd(2); i < m; i++)
                wb_byte(w, 0x80 | (uint8_t)rnd(128)); /* over-long tag */
        } else {
            wb_varint(w, key, chance(80) ? 0 : rnd(3));
        }
        switch (wt) {
        case 0: {
            size_t m = 1 + rnd(11);
            for (size_t i = 0; i < m; i++)
                wb_byte(w, (uint8_t)((i + 1 < m || chance(10) ? 0x80 : 0) |
                                     rnd(128)));
            break;
        }
        case 1:
        case 5: {
            size_t m = (wt == 1 ? 8 : 4) - (chance(10) ? rnd(4) : 0);
            for (size_t i = 0; i < m; i++)
                wb_byte(w, (uint8_t)rnd(256));
            break;
        }
        case 2: {
            wbuf sub = {0};
            if (num == 23 && depth == 0 && chance(70))
                soup(&sub, 1);
            else
                for (size_t i = 0, m = rnd(12); i < m; i++)
                    wb_byte(&sub, (uint8_t)rnd(256));
            size_t claimed = sub.n;
            if (chance(10))
                claimed = chance(50) ? sub.n + 1 + rnd(4) : rnd64();
            wb_varint(w, claimed & 0x7ffffffffull, chance(80) ? 0 : rnd(3));
            wb_put(w, sub.b, sub.n);
            free(sub.b);
            break;
        }
        default:
            if (chance(50))
                wb_byte(w, (uint8_t)rnd(256));
        }
    }
}

/* ---- the tests --------------------------------------------------------- */

static void setup(void)
{
    rng_state = 0x6c6f67666572ull; /* fixed: failures reproduce */
    P.fail_after = -1;
    G.fail_after = -1;
    n_accepted = n_rejected = 0;
}

static void teardown(void)
{
    pool_destroy(&P);
    pool_destroy(&G);
}

START_TEST(test_generated_and_mutated)
{
    wbuf rec = {0}, prev = {0}, mut = {0};
    for (long i = 0; i < N_GENERATED; i++) {
        pool_reset(&G);
        rec.n = 0;
        build_message(REC_DESC, &rec, 0);
        long before = n_rejected;
        check_same(rec.b, rec.n, "generated", i);
        if (n_rejected != before)
            ck_abort_msg("generated #%ld: protobuf-c refused a valid record",
                         i);
        for (long m = 0; m < N_MUTATED / N_GENERATED; m++) {
            mutate(rec.b, rec.n, prev.b, prev.n, &mut);
            check_same(mut.b, mut.n, "mutated", i * 2 + m);
        }
        prev.n = 0;
        wb_put(&prev, rec.b, rec.n);
    }
    printf("record_decode: %d generated + %d mutated inputs: %ld accepted, "
           "%ld refused\n",
           N_GENERATED, N_MUTATED, n_accepted, n_rejected);
    fflush(stdout);
    ck_assert_int_gt(n_rejected, N_MUTATED / 10); /* mutants do fail */
    free(rec.b);
    free(prev.b);
    free(mut.b);
}
END_TEST

START_TEST(test_token_soup)
{
    wbuf w = {0};
    for (long i = 0; i < N_SOUP; i++) {
        w.n = 0;
        soup(&w, 0);
        check_same(w.b, w.n, "soup", i);
    }
    printf("record_decode: %d token-soup inputs: %ld accepted, %ld refused\n",
           N_SOUP, n_accepted, n_rejected);
    fflush(stdout);
    ck_assert_int_gt(n_accepted, N_SOUP / 20);
    ck_assert_int_gt(n_rejected, N_SOUP / 20);
    free(w.b);
}
END_TEST

START_TEST(test_random_bytes)
{
    uint8_t b[24];
    for (long i = 0; i < N_RANDOM; i++) {
        size_t n = rnd(sizeof b + 1);
        for (size_t k = 0; k < n; k++)
            b[k] = (uint8_t)rnd(256);
        check_same(b, n, "random", i);
    }
    printf("record_decode: %d random inputs: %ld accepted, %ld refused\n",
           N_RANDOM, n_accepted, n_rejected);
    fflush(stdout);
}
END_TEST

/* Edge cases, with protobuf-c 1.4.1's verdict: if an upgrade changes one,
 * this says which. */
typedef struct edge {
    const char *name;
    const char *bytes; /* hex */
    int accept;
} edge;

static const edge edges[] = {
    {"empty record", "", 1},
    {"tenant_id", "1a0174", 1},
    {"explicit empty string", "1a00", 1},
    {"explicit zero", "1000", 1},
    {"last tenant_id wins", "1a01611a0162", 1},
    {"explicit empty after value", "1a01611a00", 1},
    {"record_id empty after value", "0a01ff0a00", 1},
    {"string holding a NUL", "1a03610062", 1},
    {"invalid UTF-8 kept", "1a02fffe", 1},
    {"length prefix 5 bytes", "1a81808080006a", 1},
    {"length prefix 6 bytes", "1a8180808080006a", 0},
    {"length 2^32+5", "1a85808080106162636465", 0},
    {"length past the end", "1a0561", 0},
    {"length prefix cut", "1a80", 0},
    {"one-byte tag of field 0, wt 0", "0000", 0},
    {"one-byte tag of field 0, wt 2", "0200", 0},
    {"non-minimal tag of field 0", "800000", 1},
    {"tag 5 bytes", "9a8080800001 78", 1},
    {"tag 6 bytes", "9a808080800001 78", 0},
    {"tag with bits past 29", "9a8080801001 78", 1},
    {"largest tag", "faffffff7f0178", 1},
    {"tag cut", "9a80", 0},
    {"wrong wire type, string", "1801", 0},
    {"wrong wire type, number", "120100", 0},
    {"wrong wire type, map", "b80101", 0},
    {"wrong wire type, first of two", "18011a0161", 0},
    {"wire type 3", "cb01", 0},
    {"wire type 4", "cc01", 0},
    {"wire type 6", "ce01", 0},
    {"wire type 7", "cf01", 0},
    {"group in an unknown field", "cb01cc01", 0},
    {"varint 10 bytes", "68ffffffffffffffffff7f", 1},
    {"varint 11 bytes", "68ffffffffffffffffffff01", 0},
    {"varint cut", "68ff", 0},
    {"uint32 keeps low bits", "68ffffffffffffffffff01", 1},
    {"status -1", "78ffffffffffffffffff01", 1},
    {"status unnamed", "786f", 1},
    {"fixed64 unknown", "c9010102030405060708", 1},
    {"fixed64 cut", "c90101020304050607", 0},
    {"fixed32 unknown", "cd0101020304", 1},
    {"fixed32 cut", "cd01010203", 0},
    {"map entry", "ba01060a016b120176", 1},
    {"empty map entry", "ba0100", 1},
    {"map entry, unknown field", "ba01050a016b1801", 1},
    {"map entry, wrong wire type", "ba0102 0801", 0},
    {"map entry, wire type 3", "ba01010b", 0},
    {"map entry, length past it", "ba01020a05", 0},
    {"map entry, field 0", "ba01020000", 0},
    {"duplicate keys kept in order", "ba01030a0161ba01030a0161", 1},
};

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        ck_assert(sscanf(s, "%2x", &v) == 1);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

START_TEST(test_edges)
{
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        uint8_t b[64];
        size_t n = unhex(edges[i].bytes, b);
        uint8_t *copy = n ? malloc(n) : NULL;
        if (n)
            memcpy(copy, b, n);
        rec_t *pc = logferry__v1__invocation_record__unpack(NULL, n, copy);
        ck_assert_msg((pc != NULL) == edges[i].accept,
                      "%s: protobuf-c now %s it", edges[i].name,
                      pc ? "accepts" : "refuses");
        logferry__v1__invocation_record__free_unpacked(pc, NULL);
        free(copy);
        check_same(b, n, edges[i].name, (long)i);
    }
}
END_TEST

START_TEST(test_values)
{
    /* The decoded values themselves, not only agreement. */
    static const char enc[] = "0a02abcd"
                              "10ffffffffffffffffff01"
                              "1a0161"
                              "1a0174"
                              "68ffffffff1f"
                              "78ffffffffffffffffff01"
                              "ba01060a016b120176"
                              "ba0100"
                              "c8010a"; /* field 25, varint 10 */
    uint8_t b[128];
    size_t n = unhex(enc, b);
    rec_t r;
    pool_reset(&P);
    ck_assert_int_eq(rdec_unpack(b, n, &PA, &r), RDEC_OK);
    ck_assert_uint_eq(P.n, 1);
    ck_assert_uint_eq(r.record_id.len, 2);
    ck_assert_uint_eq(r.record_id.data[0], 0xab);
    ck_assert_int_eq(r.event_time_ns, -1);
    ck_assert_str_eq(r.tenant_id, "t");
    ck_assert_ptr_eq(r.account_id, protobuf_c_empty_string);
    ck_assert_uint_eq(r.latency_ms, 0xffffffffu);
    ck_assert_int_eq((int)r.status, -1);
    ck_assert_uint_eq(r.n_attributes, 2);
    ck_assert_str_eq(r.attributes[0]->key, "k");
    ck_assert_str_eq(r.attributes[0]->value, "v");
    ck_assert_ptr_eq(r.attributes[1]->key, protobuf_c_empty_string);
    ck_assert_ptr_eq(
        r.attributes[1]->base.descriptor,
        &logferry__v1__invocation_record__attributes_entry__descriptor);
    ck_assert_uint_eq(r.base.n_unknown_fields, 1);
    ck_assert_uint_eq(r.base.unknown_fields[0].tag, 25);
    ck_assert_uint_eq(r.base.unknown_fields[0].len, 1);
    ck_assert_ptr_eq(r.base.descriptor, REC_DESC);
    ck_assert(protobuf_c_message_check(&r.base));
    /* The input is not referenced afterwards. */
    memset(b, 0, sizeof b);
    ck_assert_str_eq(r.tenant_id, "t");
    ck_assert_str_eq(r.attributes[0]->value, "v");

    /* Numbers only: nothing allocated. */
    pool_reset(&P);
    ck_assert_int_eq(rdec_unpack((const uint8_t *)"\x48\x05", 2, &PA, &r),
                     RDEC_OK);
    ck_assert_uint_eq(P.n, 0);
    ck_assert_uint_eq(r.input_tokens, 5);
    ck_assert_int_eq(rdec_unpack(NULL, 0, &PA, &r), RDEC_OK);
    ck_assert_uint_eq(r.input_tokens, 0);
}
END_TEST

START_TEST(test_out_of_memory)
{
    static const uint8_t enc[] = {0x1a, 0x01, 't', 0x48, 0x05};
    rec_t r;
    pool_reset(&P);
    P.fail_after = 0;
    ck_assert_int_eq(rdec_unpack(enc, sizeof enc, &PA, &r), RDEC_ENOMEM);
    ck_assert_ptr_eq(r.tenant_id, protobuf_c_empty_string);
    ck_assert_uint_eq(r.input_tokens, 0);
    P.fail_after = -1;
    ck_assert_int_eq(rdec_unpack(enc, sizeof enc, &PA, &r), RDEC_OK);
    ck_assert_str_eq(r.tenant_id, "t");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("record_decode");
    TCase *tc = tcase_create("differential");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_edges);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_generated_and_mutated);
    tcase_add_test(tc, test_token_soup);
    tcase_add_test(tc, test_random_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
