/*
 * arena.c - bump allocator. See arena.h.
 */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > a->chunk ? n : a->chunk;
        arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        a->head = c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void arena_reset(arena *a)
{
    arena_chunk *c = a->head;
    if (!c)
        return;
    arena_chunk *rest = c->next;
    c->next = NULL;
    c->used = 0;
    while (rest) {
        arena_chunk *n = rest->next;
        free(rest);
        rest = n;
    }
}

void arena_release(arena *a, arena_mark m, int wipe)
{
    while (a->head && a->head != m.chunk) {
        arena_chunk *c = a->head;
        if (wipe)
            memset(c->data, 0, c->used);
        if (!m.chunk && !c->next) {
            c->used = 0; /* kept for the next allocation */
            return;
        }
        a->head = c->next;
        free(c);
    }
    if (a->head && a->head->used > m.used) {
        if (wipe)
            memset((char *)a->head->data + m.used, 0, a->head->used - m.used);
        a->head->used = m.used;
    }
}

void arena_wipe(arena *a)
{
    for (arena_chunk *c = a->head; c; c = c->next)
        memset(c->data, 0, c->used);
}

void arena_free(arena *a)
{
    arena_reset(a);
    free(a->head);
    a->head = NULL;
}

static void *pb_alloc(void *ud, size_t n)
{
    return arena_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

ProtobufCAllocator arena_pb_allocator(arena *a)
{
    return (ProtobufCAllocator){pb_alloc, pb_free, a};
}
