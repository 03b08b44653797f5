/* arena.c - bump allocators over backend memory (declared in backend.h).
 *
 * An arena is a list of chunks obtained from be->ops->mem_alloc. Allocations
 * are rounded up to 256 bytes and placed at 256-byte aligned offsets of a
 * 256-byte aligned chunk base, so the bytes a sequence of allocations uses do
 * not depend on where the chunks lie. When the current chunk is full the next
 * existing chunk is tried, then a new chunk of max(request, first_chunk_bytes)
 * is made. be_arena_reset rewinds every chunk; if the pass used more than one
 * chunk, they are replaced by a single chunk holding the whole high-water mark,
 * so the next identical pass makes no backend allocation at all.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN ((size_t)256)

typedef struct arena_chunk {
    void *raw;       /* what mem_alloc returned */
    char *base;      /* raw rounded up to ARENA_ALIGN */
    size_t capacity; /* usable bytes from base */
    size_t used;
} arena_chunk;

struct au_arena {
    au_backend *be;
    size_t first_chunk_bytes;
    arena_chunk *chunks;
    int n_chunks, cap_chunks;
    int cur;               /* chunk receiving allocations */
    uint64_t chunk_allocs; /* backend allocations made so far */
};

static size_t round_up(size_t n) {
    return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

/* Allocate a chunk of at least `bytes` usable bytes and append it. */
static int arena_add_chunk(au_arena *a, size_t bytes) {
    if (a->n_chunks == a->cap_chunks) {
        int cap = a->cap_chunks ? a->cap_chunks * 2 : 4;
        arena_chunk *c = realloc(a->chunks, (size_t)cap * sizeof *c);
        if (!c)
            return AU_ENOMEM;
        a->chunks = c;
        a->cap_chunks = cap;
    }
    void *raw = a->be->ops->mem_alloc(a->be, bytes + ARENA_ALIGN);
    if (!raw)
        return AU_ENOMEM;
    a->chunk_allocs++;
    arena_chunk *c = &a->chunks[a->n_chunks++];
    c->raw = raw;
    c->base = (char *)(((uintptr_t)raw + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1));
    c->capacity = bytes;
    c->used = 0;
    return 0;
}

static void arena_free_chunks(au_arena *a) {
    for (int i = 0; i < a->n_chunks; i++)
        a->be->ops->mem_free(a->be, a->chunks[i].raw);
    a->n_chunks = 0;
    a->cur = 0;
}

au_arena *be_arena_create(au_backend *be, size_t first_chunk_bytes) {
    if (!be)
        return NULL;
    au_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->be = be;
    a->first_chunk_bytes = round_up(first_chunk_bytes ? first_chunk_bytes : ARENA_ALIGN);
    return a;
}

void be_arena_destroy(au_arena *a) {
    if (!a)
        return;
    arena_free_chunks(a);
    free(a->chunks);
    free(a);
}

void be_arena_reset(au_arena *a) {
    if (!a)
        return;
    if (a->n_chunks > 1) {
        size_t high_water = 0;
        for (int i = 0; i < a->n_chunks; i++)
            high_water += a->chunks[i].used;
        /* Free first so that device memory is available for the merged chunk; if the
         * merged allocation fails the arena is simply empty and the next
         * be_arena_alloc retries and reports the failure. */
        arena_free_chunks(a);
        arena_add_chunk(a, high_water > a->first_chunk_bytes ? high_water : a->first_chunk_bytes);
    }
    for (int i = 0; i < a->n_chunks; i++)
        a->chunks[i].used = 0;
    a->cur = 0;
}

void *be_arena_alloc(au_arena *a, size_t bytes, au_err *err) {
    if (!a) {
        au_errf(err, AU_EINVAL, "arena: alloc of %zu bytes from a NULL arena", bytes);
        return NULL;
    }
    size_t need = round_up(bytes ? bytes : 1);
    if (need < bytes) {
        au_errf(err, AU_EINVAL, "arena: request of %zu bytes overflows", bytes);
        return NULL;
    }
    while (a->cur < a->n_chunks) {
        arena_chunk *c = &a->chunks[a->cur];
        if (c->capacity - c->used >= need) {
            void *p = c->base + c->used;
            c->used += need;
            return p;
        }
        if (a->cur + 1 == a->n_chunks)
            break;
        a->cur++;
    }
    size_t chunk = need > a->first_chunk_bytes ? need : a->first_chunk_bytes;
    if (arena_add_chunk(a, chunk) < 0) {
        au_errf(err, AU_ENOMEM,
                "arena (%s): cannot allocate %zu bytes: a new chunk of %zu bytes failed "
                "(capacity %zu, used %zu)",
                a->be->ops->name, bytes, chunk, be_arena_capacity(a), be_arena_used(a));
        return NULL;
    }
    a->cur = a->n_chunks - 1;
    arena_chunk *c = &a->chunks[a->cur];
    c->used = need;
    return c->base;
}

int be_arena_tensor(au_arena *a, au_dtype dt, int ndim, const int64_t *shape, au_tensor *out, au_err *err) {
    if (ndim < 0 || ndim > AU_MAX_DIMS || au_dtype_size(dt) == 0)
        return au_errf(err, AU_EINVAL, "arena tensor: bad ndim %d or dtype %d", ndim, (int)dt);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return au_errf(err, AU_EINVAL, "arena tensor: negative dim %d (%lld)", i, (long long)shape[i]);
    au_tensor t = au_tensor_make(dt, NULL, ndim, shape);
    t.data = be_arena_alloc(a, au_nbytes(&t), err);
    if (!t.data)
        return err ? err->code : AU_ENOMEM;
    if (dt == AU_F8_E4M3) { /* one float32 scale per dim-0 row */
        t.scale = be_arena_alloc(a, (size_t)(ndim ? shape[0] : 1) * sizeof(float), err);
        if (!t.scale)
            return err ? err->code : AU_ENOMEM;
    }
    *out = t;
    return 0;
}

size_t be_arena_used(const au_arena *a) {
    size_t n = 0;
    for (int i = 0; i < a->n_chunks; i++)
        n += a->chunks[i].used;
    return n;
}

size_t be_arena_capacity(const au_arena *a) {
    size_t n = 0;
    for (int i = 0; i < a->n_chunks; i++)
        n += a->chunks[i].capacity;
    return n;
}

uint64_t be_arena_chunk_allocs(const au_arena *a) {
    return a->chunk_allocs;
}

au_backend *be_arena_backend(const au_arena *a) {
    return a->be;
}
