// deps: au_core
/* test_arena.c - the bump allocator over backend memory (engine/arena.c).
 *
 * Uses a stand-in backend whose mem_alloc is malloc (16-byte aligned only, so
 * the arena's own 256-byte alignment is exercised), counting allocations and
 * frees, and able to refuse allocations on demand.
 */
#include "backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static int n_allocs, n_frees, live, refuse;
static size_t last_alloc_bytes;

static void *fake_alloc(au_backend *be, size_t bytes) {
    if (refuse)
        return NULL;
    n_allocs++;
    live++;
    last_alloc_bytes = bytes;
    return malloc(bytes);
}

static void fake_free(au_backend *be, void *p) {
    if (p) {
        n_frees++;
        live--;
    }
    free(p);
}

static const au_backend_ops fake_ops = {.name = "fake", .mem_alloc = fake_alloc, .mem_free = fake_free};

/* One "pass": a fixed sequence of allocations of odd sizes, all written to. */
static int run_pass(au_arena *a, char **ptrs) {
    static const size_t sizes[] = {1, 300, 4096, 100000, 7, 65536, 256, 257, 3000000, 12};
    au_err err = {0};
    for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
        char *p = be_arena_alloc(a, sizes[i], &err);
        if (!p)
            return -1;
        memset(p, i + 1, sizes[i]);
        ptrs[i] = p;
    }
    return (int)(sizeof sizes / sizeof sizes[0]);
}

static void test_alignment_and_growth(au_backend *be) {
    au_arena *a = be_arena_create(be, 1 << 16);
    CHECK(a && be_arena_backend(a) == be, "create");
    CHECK(be_arena_chunk_allocs(a) == 0 && be_arena_capacity(a) == 0,
          "lazy: no memory before the first alloc");
    char *ptrs[16];
    int n = run_pass(a, ptrs);
    CHECK(n == 10, "first pass allocates");
    for (int i = 0; i < n; i++)
        CHECK(((uintptr_t)ptrs[i] & 255) == 0, "allocation %d at %p is not 256-byte aligned", i,
              (void *)ptrs[i]);
    /* contents survive later allocations (no overlap) */
    static const size_t sizes[] = {1, 300, 4096, 100000, 7, 65536, 256, 257, 3000000, 12};
    for (int i = 0; i < n; i++)
        CHECK(ptrs[i][0] == i + 1 && ptrs[i][sizes[i] - 1] == i + 1, "allocation %d was overwritten", i);
    uint64_t first_pass_allocs = be_arena_chunk_allocs(a);
    CHECK(first_pass_allocs > 1, "the pass needed several chunks (%llu)",
          (unsigned long long)first_pass_allocs);
    size_t used = be_arena_used(a);
    size_t expect = 0;
    for (int i = 0; i < n; i++)
        expect += (sizes[i] + 255) / 256 * 256;
    CHECK(used == expect, "used %zu, expected %zu (sizes rounded to 256)", used, expect);
    CHECK(be_arena_capacity(a) >= used, "capacity >= used");

    /* reset merges the chunks into one holding the high-water mark */
    be_arena_reset(a);
    CHECK(be_arena_used(a) == 0, "reset rewinds");
    CHECK(live == 1, "one chunk after reset (%d live)", live);
    CHECK(be_arena_capacity(a) >= used, "merged chunk holds the high-water mark (%zu < %zu)",
          be_arena_capacity(a), used);
    uint64_t after_merge = be_arena_chunk_allocs(a);

    /* an identical second pass makes no backend allocation */
    CHECK(run_pass(a, ptrs) == n, "second pass");
    CHECK(be_arena_chunk_allocs(a) == after_merge, "second pass allocated %llu chunks",
          (unsigned long long)(be_arena_chunk_allocs(a) - after_merge));
    for (int i = 0; i < n; i++)
        CHECK(((uintptr_t)ptrs[i] & 255) == 0, "second pass allocation %d not aligned", i);
    CHECK(be_arena_used(a) == used, "same bytes used in the second pass");
    /* and a third after another reset (single chunk: kept as is) */
    be_arena_reset(a);
    CHECK(run_pass(a, ptrs) == n && be_arena_chunk_allocs(a) == after_merge, "third pass allocates nothing");
    be_arena_destroy(a);
    CHECK(live == 0 && n_frees == n_allocs, "destroy frees every chunk (%d live)", live);
}

static void test_tensor_alloc(au_backend *be) {
    au_arena *a = be_arena_create(be, 4096);
    au_err err = {0};
    int64_t shape[3] = {5, 3, 7};
    au_tensor t;
    CHECK(be_arena_tensor(a, AU_BF16, 3, shape, &t, &err) == 0, "tensor: %s", err.msg);
    CHECK(t.dtype == AU_BF16 && t.ndim == 3 && t.shape[2] == 7 && t.data && !t.scale, "tensor fields");
    CHECK(((uintptr_t)t.data & 255) == 0, "tensor data aligned");
    au_tensor q;
    CHECK(be_arena_tensor(a, AU_F8_E4M3, 3, shape, &q, &err) == 0 && q.scale,
          "f8 tensor gets a scale buffer");
    memset(q.scale, 0, 5 * sizeof(float));
    memset(q.data, 1, au_nbytes(&q));
    int64_t neg[1] = {-1};
    CHECK(be_arena_tensor(a, AU_F32, 1, neg, &t, &err) == AU_EINVAL, "negative dim refused");
    be_arena_destroy(a);
}

static void test_errors(au_backend *be) {
    au_arena *a = be_arena_create(be, 1024);
    au_err err = {0};
    CHECK(be_arena_alloc(a, 100, &err) != NULL, "small alloc");
    refuse = 1;
    void *p = be_arena_alloc(a, 5000, &err);
    refuse = 0;
    CHECK(p == NULL && err.code == AU_ENOMEM, "refused allocation reports ENOMEM");
    CHECK(strstr(err.msg, "5000") && strstr(err.msg, "capacity 1024"), "message names size and capacity: %s",
          err.msg);
    CHECK(be_arena_alloc(a, 5000, &err) != NULL, "works again once memory is available");
    be_arena_destroy(a);
    CHECK(live == 0, "no leak after errors");
}

int main(void) {
    au_backend be = {.ops = &fake_ops, .act_dtype = AU_F32, .gemm_in_dtype = AU_F32, .impl = NULL};
    test_alignment_and_growth(&be);
    test_tensor_alloc(&be);
    test_errors(&be);
    if (failures) {
        fprintf(stderr, "test_arena: %d failures\n", failures);
        return 1;
    }
    printf("test_arena: ok\n");
    return 0;
}
