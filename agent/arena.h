/*
 * arena.h - a bump allocator for memory that dies together: one batch's
 * payload copies and decoded records (delivery.c), one batch's field()
 * answers (host.c). Nothing is freed piece by piece; arena_reset() keeps
 * the newest chunk for the next batch and frees the rest.
 */
#ifndef LOGFERRY_ARENA_H
#define LOGFERRY_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

typedef struct arena {
    arena_chunk *head;
    size_t chunk; /* bytes per chunk (a larger request gets its own) */
} arena;

/* An empty arena allocating `chunk` bytes at a time. */
static inline arena arena_make(size_t chunk)
{
    return (arena){NULL, chunk};
}

/* n bytes, 16-byte aligned, valid until the next reset; NULL when out of
 * memory. */
void *arena_alloc(arena *a, size_t n);

/* A position in the arena, to give back what was allocated after it. */
typedef struct arena_mark {
    arena_chunk *chunk; /* the head chunk then (NULL: the arena was empty) */
    size_t used;        /* and its use */
} arena_mark;

static inline arena_mark arena_get_mark(const arena *a)
{
    return (arena_mark){a->head, a->head ? a->head->used : 0};
}

/* Give back everything allocated since `m` (taken on this arena, with no
 * reset in between), zeroing it first when `wipe` is set. A chunk made
 * since is freed, except that an arena emptied back to nothing keeps one
 * for the next allocation. What the caller still points into that memory
 * must not be used again. */
void arena_release(arena *a, arena_mark m, int wipe);

/* Forget everything; keep the newest chunk, free the others. */
void arena_reset(arena *a);

/* Zero every byte handed out since the last reset (data that must not
 * linger in memory, such as text redaction removed). */
void arena_wipe(arena *a);

/* Free all chunks. */
void arena_free(arena *a);

/* A protobuf-c allocator over `a`: alloc from the arena, free a no-op. */
ProtobufCAllocator arena_pb_allocator(arena *a);

#endif
