/* golden.h - what the parity tests share to read tests/golden/ (safetensors written by
 * tools/reference/make_goldens.py): float32 host copies of io tensors and a clock. */
#ifndef AU_TEST_GOLDEN_H
#define AU_TEST_GOLDEN_H

#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "safetensors.h"

/* Host float32 copy of io tensor `name` (exits the test when it is missing); *t_out its descriptor. */
static inline float *golden_f32(const st_set *io, const char *name, const au_tensor **t_out) {
    const au_tensor *t = st_get(io, name);
    REQUIRE(t, "io.safetensors: tensor %s missing", name);
    float *p = malloc(au_numel(t) * sizeof(float) + 1);
    REQUIRE(p, "out of memory");
    REQUIRE(au_convert_to_f32(p, t->data, t->dtype, au_numel(t)) == 0, "%s: dtype %s", name, au_dtype_name(t->dtype));
    *t_out = t;
    return p;
}

static inline double golden_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
