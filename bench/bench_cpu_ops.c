// deps: au_cpu au_core
/* bench_cpu_ops.c - GFLOP/s of the CPU backend's heavy ops at Wan-like shapes.
 *
 * Usage: bench_cpu_ops [n_threads]   (0 or absent = all cores)
 * Prints one row per op: time, GFLOP/s, and beside it a naive single-thread
 * loop measured in the same run on a slice of the same problem (so the ratio
 * says what blocking, BLAS and threads buy). Shapes:
 *   linear    1024 x 1536 . 1536 x 8960 (the DiT-1.3B FFN up-projection), f32 / bf16 / f16 / f8
 *             weights, plain and with the FFN's GELU(tanh) fused
 *   attention 2048 tokens, 12 heads x 128 (self-attention of the 1.3B DiT)
 *   conv3d    192 -> 192 channels, k 3x3x3, 3 input frames (2 cached + 1 new, as the VAE decoder's
 *             causal convs see them) -> one 60x104 output frame
 * FLOPs: linear 2 n in out; attention 4 nq nk D H; conv 2 Cout Cin k^3 T'H'W'.
 */
#include "backend.h"
#include "cpu/cpu_gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    }
}

static au_tensor tensor(au_arena *a, au_dtype dt, int ndim, const int64_t *shape) {
    au_tensor t;
    au_err err = {0};
    if (be_arena_tensor(a, dt, ndim, shape, &t, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return t;
}

static void row(const char *op, const char *shape, double sec, double flops, double naive_gflops) {
    double g = flops / sec * 1e-9;
    printf("%-24s %-34s %9.1f %9.1f %10.2f %8.0fx\n", op, shape, sec * 1e3, g, naive_gflops,
           g / naive_gflops);
}

/* Naive single-thread references on slices. */
static double naive_linear(const float *x, const float *w, float *y, int64_t n, int64_t in, int64_t out) {
    double t0 = now_s();
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            float s = 0.0f;
            for (int64_t k = 0; k < in; k++)
                s += x[r * in + k] * w[o * in + k];
            y[r * out + o] = s;
        }
    return 2.0 * n * in * out / (now_s() - t0) * 1e-9;
}

static double naive_attention(const float *q, const float *k, const float *v, float *o, int64_t nq,
                              int64_t nk, int64_t HD, int64_t D, float scale) {
    float *s = malloc(sizeof(float) * nk);
    double t0 = now_s();
    for (int64_t i = 0; i < nq; i++) { /* head 0 only */
        float m = -INFINITY, sum = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            float d = 0.0f;
            for (int64_t c = 0; c < D; c++)
                d += q[i * HD + c] * k[j * HD + c];
            s[j] = d * scale;
            m = s[j] > m ? s[j] : m;
        }
        for (int64_t j = 0; j < nk; j++)
            sum += s[j] = expf(s[j] - m);
        for (int64_t c = 0; c < D; c++) {
            float acc = 0.0f;
            for (int64_t j = 0; j < nk; j++)
                acc += s[j] * v[j * HD + c];
            o[i * HD + c] = acc / sum;
        }
    }
    double sec = now_s() - t0;
    free(s);
    return 4.0 * nq * nk * D / sec * 1e-9;
}

static double naive_conv(const float *x, const float *w, float *y, int64_t cout, int64_t cin, int64_t H,
                         int64_t W) {
    /* k 3x3x3 over x [cin, 3, H, W] -> one output frame, spatial pad 1 */
    double t0 = now_s();
    for (int64_t o = 0; o < cout; o++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t v = 0; v < W; v++) {
                float s = 0.0f;
                for (int64_t c = 0; c < cin; c++)
                    for (int dt = 0; dt < 3; dt++)
                        for (int dh = 0; dh < 3; dh++)
                            for (int dw = 0; dw < 3; dw++) {
                                int64_t hi = h - 1 + dh, wi = v - 1 + dw;
                                if (hi < 0 || hi >= H || wi < 0 || wi >= W)
                                    continue;
                                s += w[(((o * cin + c) * 3 + dt) * 3 + dh) * 3 + dw] *
                                     x[((c * 3 + dt) * H + hi) * W + wi];
                            }
                y[(o * H + h) * W + v] = s;
            }
    return 2.0 * cout * cin * 27 * H * W / (now_s() - t0) * 1e-9;
}

static double best_of(int reps, int (*fn)(void *), void *ctx) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        if (fn(ctx) < 0)
            exit(1);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct lin_ctx {
    au_backend *be;
    au_tensor *y, *x, *w;
    au_act act;
} lin_ctx;

static int run_linear(void *p) {
    lin_ctx *c = p;
    au_err err = {0};
    int rc = be_linear(c->be, c->y, c->x, c->w, NULL, c->act, &err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

typedef struct attn_ctx {
    au_backend *be;
    au_tensor *o, *q, *k, *v;
    int heads;
    float scale;
} attn_ctx;

static int run_attention(void *p) {
    attn_ctx *c = p;
    au_err err = {0};
    int rc = be_attention(c->be, c->o, c->q, c->k, c->v, c->heads, c->scale, NULL, 1, &err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

typedef struct conv_ctx {
    au_backend *be;
    au_tensor *y, *x, *w;
} conv_ctx;

static int run_conv(void *p) {
    conv_ctx *c = p;
    au_err err = {0};
    int stride[3] = {1, 1, 1}, pad[6] = {0, 0, 1, 1, 1, 1};
    int rc = be_conv3d(c->be, c->y, c->x, c->w, NULL, stride, pad, &err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

typedef struct gemm_ctx {
    const float *a, *b;
    float *c;
    int64_t m, n, k;
    int own;
} gemm_ctx;

static int run_gemm1(void *p) {
    gemm_ctx *g = p;
    if (g->own)
        cpu_gemm_own(g->m, g->n, g->k, g->a, g->k, g->b, g->k, 1, g->c, g->n, 0);
    else
        cpu_gemm(g->m, g->n, g->k, g->a, g->k, g->b, g->k, 1, g->c, g->n, 0);
    return 0;
}

int main(int argc, char **argv) {
    int n_threads = argc > 1 ? atoi(argv[1]) : 0;
    au_err err = {0};
    au_backend *be = NULL;
    if (be_cpu_create(&be, n_threads, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    au_arena *a = be_arena_create(be, (size_t)512 << 20);
    printf("cpu backend: %s threads, gemm engine %s\n", n_threads ? argv[1] : "all", cpu_gemm_engine());
    printf("%-24s %-34s %9s %9s %10s %9s\n", "op", "shape", "ms", "GFLOP/s", "naive-1t", "ratio");

    /* linear */
    int64_t n = 1024, in = 1536, out = 8960;
    au_tensor x = tensor(a, AU_F32, 2, (int64_t[]){n, in}), y = tensor(a, AU_F32, 2, (int64_t[]){n, out});
    au_tensor w32 = tensor(a, AU_F32, 2, (int64_t[]){out, in});
    au_tensor w16 = tensor(a, AU_BF16, 2, (int64_t[]){out, in}),
              w8 = tensor(a, AU_F8_E4M3, 2, (int64_t[]){out, in});
    au_tensor wh = tensor(a, AU_F16, 2, (int64_t[]){out, in});
    fill(x.data, n * in, 1);
    fill(w32.data, out * in, 2);
    au_convert_from_f32(w16.data, AU_BF16, w32.data, out * in);
    au_convert_from_f32(wh.data, AU_F16, w32.data, out * in);
    for (int64_t i = 0; i < out * in; i++)
        ((uint8_t *)w8.data)[i] = au_f32_to_f8e4m3(((float *)w32.data)[i] * 400.0f);
    for (int64_t r = 0; r < out; r++)
        ((float *)w8.scale)[r] = 1.0f / 400.0f;
    double naive_lin = naive_linear(x.data, w32.data, y.data, 4, in, 512);
    double flops = 2.0 * n * in * out;
    lin_ctx lc = {be, &y, &x, &w32, AU_ACT_NONE};
    run_linear(&lc);
    row("linear f32 w", "1024x1536 . 1536x8960", best_of(3, run_linear, &lc), flops, naive_lin);
    lc.w = &w16;
    run_linear(&lc);
    row("linear bf16 w", "1024x1536 . 1536x8960", best_of(3, run_linear, &lc), flops, naive_lin);
    lc.act = AU_ACT_GELU_TANH;
    row("linear bf16 w + gelu", "1024x1536 . 1536x8960", best_of(3, run_linear, &lc), flops, naive_lin);
    lc.act = AU_ACT_NONE;
    lc.w = &wh;
    run_linear(&lc);
    row("linear f16 w", "1024x1536 . 1536x8960", best_of(3, run_linear, &lc), flops, naive_lin);
    lc.w = &w8;
    run_linear(&lc);
    row("linear f8 w", "1024x1536 . 1536x8960", best_of(3, run_linear, &lc), flops, naive_lin);
    /* single-thread GEMM engines on a 256-row slice */
    gemm_ctx gc = {x.data, w32.data, y.data, 256, out, in, 0};
    row("gemm 1 thread (engine)", "256x1536 . 1536x8960", best_of(2, run_gemm1, &gc), 2.0 * 256 * in * out,
        naive_lin);
    gc.own = 1;
    row("gemm 1 thread (own)", "256x1536 . 1536x8960", best_of(2, run_gemm1, &gc), 2.0 * 256 * in * out,
        naive_lin);

    /* attention */
    be_arena_reset(a);
    int64_t T = 2048, H = 12, D = 128;
    au_tensor q = tensor(a, AU_F32, 2, (int64_t[]){T, H * D}),
              k = tensor(a, AU_F32, 2, (int64_t[]){T, H * D});
    au_tensor v = tensor(a, AU_F32, 2, (int64_t[]){T, H * D}),
              o = tensor(a, AU_F32, 2, (int64_t[]){T, H * D});
    fill(q.data, T * H * D, 3);
    fill(k.data, T * H * D, 4);
    fill(v.data, T * H * D, 5);
    double naive_att =
        naive_attention(q.data, k.data, v.data, o.data, 64, T, H * D, D, 1.0f / sqrtf((float)D));
    attn_ctx ac = {be, &o, &q, &k, &v, (int)H, 1.0f / sqrtf((float)D)};
    run_attention(&ac);
    row("attention", "2048 tok, 12 heads x 128", best_of(3, run_attention, &ac), 4.0 * T * T * D * H,
        naive_att);

    /* conv3d */
    be_arena_reset(a);
    int64_t C = 192, Hh = 60, Ww = 104;
    au_tensor cx = tensor(a, AU_F32, 4, (int64_t[]){C, 3, Hh, Ww}),
              cy = tensor(a, AU_F32, 4, (int64_t[]){C, 1, Hh, Ww});
    au_tensor cw = tensor(a, AU_F32, 5, (int64_t[]){C, C, 3, 3, 3});
    au_tensor cw16 = tensor(a, AU_BF16, 5, (int64_t[]){C, C, 3, 3, 3});
    fill(cx.data, C * 3 * Hh * Ww, 6);
    fill(cw.data, C * C * 27, 7);
    au_convert_from_f32(cw16.data, AU_BF16, cw.data, C * C * 27);
    double naive_cv = naive_conv(cx.data, cw.data, cy.data, 2, C, Hh, Ww);
    double cflops = 2.0 * C * C * 27 * Hh * Ww;
    conv_ctx cc = {be, &cy, &cx, &cw};
    run_conv(&cc);
    row("conv3d f32 w", "192->192 k3, 3x60x104 -> 1 frame", best_of(3, run_conv, &cc), cflops, naive_cv);
    cc.w = &cw16;
    run_conv(&cc);
    row("conv3d bf16 w", "192->192 k3, 3x60x104 -> 1 frame", best_of(3, run_conv, &cc), cflops, naive_cv);

    be_arena_destroy(a);
    be_destroy(be);
    return 0;
}
