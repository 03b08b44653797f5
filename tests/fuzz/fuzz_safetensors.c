// deps: au_io au_core
/* fuzz_safetensors.c - fuzz target for the safetensors reader (st_open_memory).
 *
 * Every input is an in-memory .safetensors image. Either it is rejected with a message, or
 * every tensor it exposes must lie inside the image with au_nbytes() bytes, aligned to its
 * element size, disjoint from the others, and be found again by name; all its bytes are
 * read so the sanitizers see any stray pointer.
 *
 * With gcc this builds against replay_main.c and ctest replays tests/fuzz/corpus/fuzz_safetensors.
 * libFuzzer (clang), from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz/fuzz_safetensors.c \
 *     engine/safetensors.c engine/tensor.c engine/status.c -ljansson -lm -o /tmp/fuzz_safetensors
 *   mkdir -p /tmp/st_corpus && /tmp/fuzz_safetensors -max_total_time=300 -max_len=4096 \
 *     /tmp/st_corpus tests/fuzz/corpus/fuzz_safetensors
 * (new inputs go to /tmp/st_corpus; copy crashers into the committed corpus once fixed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *name) {
    fprintf(stderr, "fuzz_safetensors: %s (%s)\n", what, name ? name : "?");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_set *s = NULL;
    au_err err = {0};
    if (st_open_memory(&s, data, size, &err) < 0) {
        if (s || !err.msg[0])
            fail("rejected without a message or with a set", err.msg);
        return 0;
    }
    int n = st_count(s);
    const uint8_t *lo = NULL, *hi = NULL;
    for (int i = 0; i < n; i++) {
        const char *name = st_name_at(s, i);
        const au_tensor *t = name ? st_get(s, name) : NULL;
        if (!t)
            fail("listed tensor not found by name", name);
        size_t bytes = au_nbytes(t);
        if (bytes > size)
            fail("tensor larger than the image", name);
        if (bytes && (uintptr_t)t->data % au_dtype_size(t->dtype))
            fail("misaligned tensor", name);
        /* Touch every byte; the sanitizers catch reads outside the set's copy. */
        const volatile uint8_t *p = t->data;
        uint8_t acc = 0;
        for (size_t k = 0; k < bytes; k++)
            acc ^= p[k];
        (void)acc;
        if (bytes) {
            const uint8_t *b = t->data, *e = b + bytes;
            lo = !lo || b < lo ? b : lo;
            hi = !hi || e > hi ? e : hi;
        }
        /* Disjointness against every other tensor (small n in practice). */
        for (int j = 0; j < i && bytes; j++) {
            const au_tensor *u = st_get(s, st_name_at(s, j));
            size_t ub = au_nbytes(u);
            const uint8_t *a0 = t->data, *a1 = a0 + bytes, *b0 = u->data, *b1 = b0 + ub;
            if (ub && a0 < b1 && b0 < a1)
                fail("overlapping tensors accepted", name);
        }
    }
    if (lo && (size_t)(hi - lo) > size)
        fail("tensors span more than the image", NULL);
    if (st_get(s, "__metadata__"))
        fail("__metadata__ exposed as a tensor", NULL);
    (void)st_metadata(s, "format");
    st_close(s);
    return 0;
}
