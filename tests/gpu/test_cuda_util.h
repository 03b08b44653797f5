/* test_cuda_util.h - shared helpers of the CUDA backend tests (test_cuda_*.c).
 *
 * Each check runs an op on the CUDA backend and the same op on the float32 CPU backend
 * (the reference) over the same values: inputs are drawn fresh (seed printed, or taken
 * from AUTEUR_TEST_SEED), rounded to the dtype the GPU tensor holds (bf16 round to
 * nearest even, f8 quantized per row with scale max|row| / 448, the backends' rule) and
 * handed to the CPU as float32. GPU outputs are poisoned with 0xFF bytes (NaN in f32,
 * bf16, f16 and e4m3) before the op, so an element left unwritten fails. The error is
 *   rel = ||got - ref||_2 / ||ref||_2,
 * and for an f8 output the reference is first quantized per row by the same rule, so the
 * comparison measures the op, not the format. Tolerances: float32 paths 1e-5, bf16 1e-2,
 * f8 3e-2.
 */
#ifndef AU_TEST_CUDA_UTIL_H
#define AU_TEST_CUDA_UTIL_H

#include "backend.h"
#include "kernels/cuda_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOL_F32 1e-5
#define TOL_BF16 1e-2
#define TOL_F8 3e-2

static int failures, checks;

#define CHECK(cond, ...)                                                                                           \
    do {                                                                                                           \
        checks++;                                                                                                  \
        if (!(cond)) {                                                                                             \
            failures++;                                                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                                                          \
            fprintf(stderr, "\n");                                                                                 \
        }                                                                                                          \
    } while (0)

/* Abort the test on a setup failure (not a checked result). */
#define MUST(expr)                                                                                                 \
    do {                                                                                                           \
        au_err must_err_ = {0};                                                                                    \
        au_err *err = &must_err_;                                                                                  \
        int must_rc_ = (expr);                                                                                     \
        if (must_rc_ < 0) {                                                                                        \
            fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #expr, must_rc_, err->msg);        \
            exit(1);                                                                                               \
        }                                                                                                          \
    } while (0)

static uint64_t rng_state;
static inline void rng_seed(void) {
    const char *s = getenv("AUTEUR_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    if (!rng_state)
        rng_state = 1;
    printf("seed %llu (set AUTEUR_TEST_SEED to repeat)\n", (unsigned long long)rng_state);
}
static inline uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static inline float rng_f(void) { return (float)(rng_u32() & 0xffffff) / 8388608.0f - 1.0f; } /* [-1, 1) */

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Host buffers the CPU backend references (its weights alias host data): freed at exit. */
static void *keep[4096];
static int n_keep;
static inline void *kept(size_t n) {
    void *p = xmalloc(n);
    if (n_keep < 4096)
        keep[n_keep++] = p;
    return p;
}
static inline void keep_free(void) {
    for (int i = 0; i < n_keep; i++)
        free(keep[i]);
    n_keep = 0;
}

/* ---- per-row f8 quantization, the backends' rule ---- */

static inline void quant_rows(const float *x, int64_t rows, int64_t row_len, uint8_t *q, float *scale) {
    for (int64_t r = 0; r < rows; r++) {
        float amax = 0.0f;
        for (int64_t i = 0; i < row_len; i++)
            amax = fabsf(x[r * row_len + i]) > amax ? fabsf(x[r * row_len + i]) : amax;
        float s = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / s;
        for (int64_t i = 0; i < row_len; i++)
            q[r * row_len + i] = au_f32_to_f8e4m3(x[r * row_len + i] * inv);
        scale[r] = s;
    }
}

/* Round x in place to what a tensor of dt with rows `rows` holds. */
static inline void round_to(float *x, int64_t n, int64_t rows, au_dtype dt) {
    if (dt == AU_BF16 || dt == AU_F16) {
        for (int64_t i = 0; i < n; i++)
            x[i] = dt == AU_BF16 ? au_bf16_to_f32(au_f32_to_bf16(x[i])) : au_f16_to_f32(au_f32_to_f16(x[i]));
    } else if (dt == AU_F8_E4M3 && rows > 0) {
        int64_t len = n / rows;
        uint8_t *q = xmalloc((size_t)n);
        float *s = xmalloc((size_t)rows * sizeof(float));
        quant_rows(x, rows, len, q, s);
        for (int64_t i = 0; i < n; i++)
            x[i] = au_f8e4m3_to_f32(q[i]) * s[i / len];
        free(q);
        free(s);
    }
}

/* ---- the two backends ---- */

typedef struct tctx {
    au_backend *cpu, *gpu;
    au_arena *cpu_arena, *gpu_arena;
    const char *name; /* "fp8", "bf16" */
} tctx;

/* A pair: the GPU tensor and the float32 CPU tensor of the same values. */
typedef struct pair {
    au_tensor g, c;
    float *host; /* the values (what the CPU holds) */
} pair;

static inline au_tensor mk_tensor(au_arena *a, au_dtype dt, int ndim, const int64_t *shape) {
    au_tensor t;
    MUST(be_arena_tensor(a, dt, ndim, shape, &t, err));
    return t;
}

/* Upload host float values into GPU tensor g of any dtype (f8: quantized per row). */
static inline void gpu_put(tctx *T, au_tensor *g, const float *v) {
    int64_t n = au_numel(g);
    if (g->dtype == AU_F8_E4M3) {
        int64_t rows = g->shape[0];
        uint8_t *q = xmalloc((size_t)n);
        float *s = xmalloc((size_t)rows * sizeof(float));
        quant_rows(v, rows, rows ? n / rows : 0, q, s);
        au_tensor st = au_tensor_make(AU_F32, g->scale, 1, &rows);
        MUST(be_upload(T->gpu, g, q, err));
        MUST(be_upload(T->gpu, &st, s, err));
        free(q);
        free(s);
        return;
    }
    void *buf = xmalloc(au_nbytes(g));
    if (g->dtype == AU_F32)
        memcpy(buf, v, (size_t)n * 4);
    else
        MUST(au_convert_from_f32(buf, g->dtype, v, n));
    MUST(be_upload(T->gpu, g, buf, err));
    free(buf);
}

/* Fill g with 0xFF bytes (NaN in every float dtype; NaN scales for f8). */
static inline void poison(tctx *T, au_tensor *g) {
    size_t n = au_nbytes(g);
    void *buf = xmalloc(n);
    memset(buf, 0xff, n);
    MUST(be_upload(T->gpu, g, buf, err));
    free(buf);
    if (g->dtype == AU_F8_E4M3) {
        int64_t rows = g->shape[0];
        au_tensor st = au_tensor_make(AU_F32, g->scale, 1, &rows);
        float *s = xmalloc((size_t)rows * sizeof(float));
        memset(s, 0xff, (size_t)rows * sizeof(float));
        MUST(be_upload(T->gpu, &st, s, err));
        free(s);
    }
}

/* GPU tensor g as host float32 (caller frees). */
static inline float *gpu_get(tctx *T, const au_tensor *g) {
    int64_t n = au_numel(g);
    float *out = xmalloc((size_t)n * sizeof(float));
    void *raw = xmalloc(au_nbytes(g));
    MUST(be_download(T->gpu, raw, g, err));
    if (g->dtype == AU_F8_E4M3) {
        int64_t rows = g->shape[0], len = rows ? n / rows : 1;
        float *s = xmalloc((size_t)rows * sizeof(float));
        au_tensor st = au_tensor_make(AU_F32, g->scale, 1, &rows);
        MUST(be_download(T->gpu, s, &st, err));
        for (int64_t i = 0; i < n; i++)
            out[i] = au_f8e4m3_to_f32(((uint8_t *)raw)[i]) * s[i / len];
        free(s);
    } else {
        MUST(au_convert_to_f32(out, raw, g->dtype, n));
    }
    free(raw);
    return out;
}

/* An input: random values of amplitude amp, rounded to dt, on both backends. */
static inline pair in_pair(tctx *T, au_dtype dt, int ndim, const int64_t *shape, float amp) {
    pair p;
    p.g = mk_tensor(T->gpu_arena, dt, ndim, shape);
    p.c = mk_tensor(T->cpu_arena, AU_F32, ndim, shape);
    int64_t n = au_numel(&p.c);
    p.host = p.c.data;
    for (int64_t i = 0; i < n; i++)
        p.host[i] = amp * rng_f();
    round_to(p.host, n, ndim ? shape[0] : 1, dt);
    gpu_put(T, &p.g, p.host);
    return p;
}

/* An output: poisoned on the GPU, float32 on the CPU. */
static inline pair out_pair(tctx *T, au_dtype dt, int ndim, const int64_t *shape) {
    pair p;
    p.g = mk_tensor(T->gpu_arena, dt, ndim, shape);
    p.c = mk_tensor(T->cpu_arena, AU_F32, ndim, shape);
    p.host = p.c.data;
    poison(T, &p.g);
    return p;
}

#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static inline double tol_of(au_dtype dt) { return dt == AU_F32 ? TOL_F32 : (dt == AU_F8_E4M3 ? TOL_F8 : TOL_BF16); }

/* Compare the GPU output p.g with the CPU result in p.c; tol 0 = by p.g's dtype. */
static inline double compare(tctx *T, const char *what, const pair *p, double tol) {
    int64_t n = au_numel(&p->c);
    float *got = gpu_get(T, &p->g);
    float *ref = xmalloc((size_t)n * sizeof(float));
    memcpy(ref, p->c.data, (size_t)n * sizeof(float));
    if (p->g.dtype != AU_F32)
        round_to(ref, n, p->g.shape[0], p->g.dtype);
    if (tol == 0)
        tol = tol_of(p->g.dtype);
    double num = 0, den = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            bad++;
            continue;
        }
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECK(bad == 0 && rel <= tol, "[%s] %s: rel %.3g (tol %.1g), %lld of %lld not finite", T->name, what, rel, tol,
          (long long)bad, (long long)n);
    if (bad == 0 && rel <= tol)
        printf("  ok   [%s] %-58s rel %.2e\n", T->name, what, rel);
    free(got);
    free(ref);
    return rel;
}

static inline void sync_ok(tctx *T, const char *what) {
    au_err err = {0};
    int rc = be_sync(T->gpu, &err);
    CHECK(rc == 0, "[%s] %s: sync: %s", T->name, what, err.msg);
}

/* Common main: skip without a GPU, run fn on each precision. */
static inline int run_precisions(void (*fn)(tctx *T)) {
    if (be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    rng_seed();
    static const int precisions[2] = {BE_CUDA_FP8, BE_CUDA_BF16};
    static const char *const names[2] = {"fp8", "bf16"};
    for (int i = 0; i < 2; i++) {
        tctx T;
        memset(&T, 0, sizeof T);
        T.name = names[i];
        be_cuda_opts o = {0, precisions[i]};
        MUST(be_cpu_create(&T.cpu, 0, err));
        MUST(be_cuda_create(&T.gpu, &o, err));
        T.cpu_arena = be_arena_create(T.cpu, (size_t)64 << 20);
        T.gpu_arena = be_arena_create(T.gpu, (size_t)64 << 20);
        if (!T.cpu_arena || !T.gpu_arena) {
            fprintf(stderr, "arenas\n");
            return 1;
        }
        if (i == 0) {
            be_cuda_stats st;
            MUST(be_cuda_get_stats(T.gpu, &st, err));
            printf("device %s (sm_%d%d), FP8 outer-vector scales in cuBLASLt: %s\n", st.device_name, st.sm_major,
                   st.sm_minor, st.fp8_outer_vec ? "yes" : "no");
        }
        fn(&T);
        sync_ok(&T, "end");
        be_arena_destroy(T.cpu_arena);
        be_arena_destroy(T.gpu_arena);
        be_destroy(T.gpu);
        be_destroy(T.cpu);
        keep_free();
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}

#endif
