/* cpu_test_util.h - shared helpers of the CPU backend tests (test_cpu_*.c):
 * a CHECK macro that counts failures, a deterministic random generator, host
 * tensors from one arena, and the relative error against a double reference:
 *   rel = ||got - ref||_2 / ||ref||_2.
 */
#ifndef AU_CPU_TEST_UTIL_H
#define AU_CPU_TEST_UTIL_H

#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

/* expr returns 0; `err` (an au_err in scope) explains a failure */
#define CHECK_OK(expr)                                                                                       \
    do {                                                                                                     \
        int rc_ = (expr);                                                                                    \
        CHECK(rc_ == 0, "%s returned %d: %s", #expr, rc_, err.msg);                                          \
    } while (0)

#define REL_TOL 1e-5

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static inline uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
/* uniform in [-1, 1) */
static inline float rng_f(void) {
    return (float)(rng_u32() & 0xffffff) / 8388608.0f - 1.0f;
}
static inline void fill_rand(float *x, int64_t n, float amp) {
    for (int64_t i = 0; i < n; i++)
        x[i] = amp * rng_f();
}

static au_arena *test_arena;

/* A tensor from the test arena; f32 data random in [-1, 1). */
static inline au_tensor mk(au_dtype dt, int ndim, const int64_t *shape) {
    au_tensor t;
    au_err err = {0};
    if (be_arena_tensor(test_arena, dt, ndim, shape, &t, &err) < 0) {
        fprintf(stderr, "arena: %s\n", err.msg);
        exit(1);
    }
    if (dt == AU_F32)
        fill_rand(t.data, au_numel(&t), 1.0f);
    return t;
}
#define MK(dt, ...)                                                                                          \
    mk((dt), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static inline double rel_err(const float *got, const double *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (den == 0.0)
        return sqrt(num);
    return sqrt(num / den);
}

static inline double *dalloc(int64_t n) {
    double *p = calloc((size_t)(n ? n : 1), sizeof(double));
    if (!p)
        exit(1);
    return p;
}

static inline double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static inline double silu_ref(double x) {
    return x / (1.0 + exp(-x));
}

#endif
