// deps: au_cpu au_core
/* test_cpu_linear.c - the CPU backend's GEMM paths against double-precision
 * references: the own blocked GEMM (both B layouts, accumulate), linear with
 * every weight dtype (f32, f16, bf16, f8 + per-row scale), bias and
 * activation, and attention (with and without bias, nq != nk, head_dim 1..384).
 * Weights are compared against the reference computed from their decoded
 * values, so any error left is float32 arithmetic: rel < 1e-5.
 */
#include "cpu/cpu_gemm.h"
#include "cpu/cpu_internal.h"
#include "cpu_test_util.h"

static void test_gemm_own(void) {
    static const int64_t dims[][3] = {{1, 1, 1}, {3, 17, 5}, {7, 9, 300}, {129, 33, 17}, {200, 70, 513}};
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
        int64_t M = dims[c][0], N = dims[c][1], K = dims[c][2];
        int64_t lda = K + 3, ldbt = K + 1, ldbn = N + 2, ldc = N + 5;
        float *A = malloc(sizeof(float) * M * lda), *Bt = malloc(sizeof(float) * N * ldbt);
        float *Bn = malloc(sizeof(float) * K * ldbn), *C = malloc(sizeof(float) * M * ldc);
        fill_rand(A, M * lda, 1.0f);
        fill_rand(Bt, N * ldbt, 1.0f);
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++)
                Bn[k * ldbn + n] = Bt[n * ldbt + k];
        double *ref = dalloc(M * N);
        float *got = malloc(sizeof(float) * M * N);
        for (int trans = 0; trans < 2; trans++)
            for (int acc = 0; acc < 2; acc++) {
                fill_rand(C, M * ldc, 1.0f);
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double s = acc ? C[m * ldc + n] : 0.0;
                        for (int64_t k = 0; k < K; k++)
                            s += (double)A[m * lda + k] * Bt[n * ldbt + k];
                        ref[m * N + n] = s;
                    }
                float guard = C[(M - 1) * ldc + N]; /* padding column must stay untouched */
                if (trans)
                    cpu_gemm_own(M, N, K, A, lda, Bt, ldbt, 1, C, ldc, acc);
                else
                    cpu_gemm_own(M, N, K, A, lda, Bn, ldbn, 0, C, ldc, acc);
                for (int64_t m = 0; m < M; m++)
                    memcpy(got + m * N, C + m * ldc, sizeof(float) * N);
                double e = rel_err(got, ref, M * N);
                CHECK(e < REL_TOL, "own gemm M=%lld N=%lld K=%lld trans=%d acc=%d: rel %.3g", (long long)M,
                      (long long)N, (long long)K, trans, acc, e);
                CHECK(C[(M - 1) * ldc + N] == guard, "own gemm wrote past N");
                /* the dispatching entry point (BLAS when built with it) agrees too */
                if (!acc) {
                    cpu_gemm(M, N, K, A, lda, trans ? Bt : Bn, trans ? ldbt : ldbn, trans, C, ldc, 0);
                    for (int64_t m = 0; m < M; m++)
                        memcpy(got + m * N, C + m * ldc, sizeof(float) * N);
                    e = rel_err(got, ref, M * N);
                    CHECK(e < REL_TOL, "cpu_gemm (%s) M=%lld N=%lld K=%lld: rel %.3g", cpu_gemm_engine(),
                          (long long)M, (long long)N, (long long)K, e);
                }
            }
        free(A), free(Bt), free(Bn), free(C), free(ref), free(got);
    }
}

/* A weight [out, in] of dtype dt with random values; its decoded values in dec. */
static au_tensor make_weight(au_dtype dt, int64_t out, int64_t in, double *dec) {
    au_tensor w = MK(dt, out, in);
    int64_t n = out * in;
    for (int64_t i = 0; i < n; i++) {
        float v = rng_f() * 0.5f;
        switch (dt) {
        case AU_F32:
            ((float *)w.data)[i] = v;
            dec[i] = v;
            break;
        case AU_F16:
            ((uint16_t *)w.data)[i] = au_f32_to_f16(v);
            dec[i] = au_f16_to_f32(au_f32_to_f16(v));
            break;
        case AU_BF16:
            ((uint16_t *)w.data)[i] = au_f32_to_bf16(v);
            dec[i] = au_bf16_to_f32(au_f32_to_bf16(v));
            break;
        default: {
            uint8_t code = (uint8_t)(rng_u32() & 0xff);
            if ((code & 0x7f) == 0x7f)
                code = 0x10;
            ((uint8_t *)w.data)[i] = code;
            dec[i] = au_f8e4m3_to_f32(code);
        }
        }
    }
    if (dt == AU_F8_E4M3)
        for (int64_t r = 0; r < out; r++) {
            float s = 0.001f + 0.01f * (float)(rng_u32() % 100);
            ((float *)w.scale)[r] = s;
            for (int64_t c = 0; c < in; c++)
                dec[r * in + c] *= s;
        }
    return w;
}

static void test_linear(au_backend *be) {
    static const int64_t dims[][3] = {{1, 1, 1},      {3, 17, 5},    {17, 129, 33},
                                      {129, 64, 300}, {257, 40, 18}, {2, 1536, 70}};
    static const au_dtype dts[] = {AU_F32, AU_F16, AU_BF16, AU_F8_E4M3};
    au_err err = {0};
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++)
        for (size_t d = 0; d < 4; d++)
            for (int act = 0; act < 3; act++) {
                be_arena_reset(test_arena);
                int64_t n = dims[c][0], in = dims[c][1], out = dims[c][2];
                double *wd = dalloc(out * in), *ref = dalloc(n * out);
                au_tensor x = MK(AU_F32, n, in), y = MK(AU_F32, n, out), b = MK(AU_F32, out);
                au_tensor w = make_weight(dts[d], out, in, wd);
                int use_bias = (act + (int)c) % 2 == 0;
                const float *xf = x.data, *bf = b.data;
                for (int64_t r = 0; r < n; r++)
                    for (int64_t o = 0; o < out; o++) {
                        double s = use_bias ? bf[o] : 0.0;
                        for (int64_t k = 0; k < in; k++)
                            s += (double)xf[r * in + k] * wd[o * in + k];
                        ref[r * out + o] = act == AU_ACT_GELU_TANH ? gelu_ref(s)
                                           : act == AU_ACT_SILU    ? silu_ref(s)
                                                                   : s;
                    }
                CHECK_OK(be_linear(be, &y, &x, &w, use_bias ? &b : NULL, (au_act)act, &err));
                double e = rel_err(y.data, ref, n * out);
                CHECK(e < REL_TOL, "linear n=%lld in=%lld out=%lld w %s act %d bias %d: rel %.3g",
                      (long long)n, (long long)in, (long long)out, au_dtype_name(dts[d]), act, use_bias, e);
                free(wd), free(ref);
            }
    /* leading dims are rows: x [2, 3, in] */
    be_arena_reset(test_arena);
    double *wd = dalloc(8 * 5), *ref = dalloc(6 * 8);
    au_tensor x = MK(AU_F32, 2, 3, 5), y = MK(AU_F32, 2, 3, 8), w = make_weight(AU_BF16, 8, 5, wd);
    for (int64_t r = 0; r < 6; r++)
        for (int64_t o = 0; o < 8; o++)
            for (int64_t k = 0; k < 5; k++)
                ref[r * 8 + o] += (double)((float *)x.data)[r * 5 + k] * wd[o * 5 + k];
    CHECK_OK(be_linear(be, &y, &x, &w, NULL, AU_ACT_NONE, &err));
    CHECK(rel_err(y.data, ref, 48) < REL_TOL, "linear on a 3-D x");
    free(wd), free(ref);
}

/* Scratch grows once, then repeated calls allocate nothing. */
static void test_linear_steady_state(au_backend *be) {
    au_err err = {0};
    be_arena_reset(test_arena);
    double *wd = dalloc(96 * 200);
    au_tensor x = MK(AU_F32, 33, 200), y = MK(AU_F32, 33, 96), w = make_weight(AU_BF16, 96, 200, wd);
    CHECK_OK(be_linear(be, &y, &x, &w, NULL, AU_ACT_NONE, &err));
    uint64_t before = cpu_of(be)->scratch_allocs;
    for (int i = 0; i < 5; i++)
        CHECK_OK(be_linear(be, &y, &x, &w, NULL, AU_ACT_SILU, &err));
    CHECK(cpu_of(be)->scratch_allocs == before, "repeated linear allocated scratch %llu times",
          (unsigned long long)(cpu_of(be)->scratch_allocs - before));
    free(wd);
}

static void attention_ref(const float *q, const float *k, const float *v, const float *bias, int64_t nq,
                          int64_t nk, int64_t H, int64_t D, double scale, double *out) {
    double *s = dalloc(nk);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < nq; i++) {
            double m = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < nk; j++) {
                double d = 0.0;
                for (int64_t c = 0; c < D; c++)
                    d += (double)q[i * H * D + h * D + c] * k[j * H * D + h * D + c];
                s[j] = d * scale + (bias ? bias[(h * nq + i) * nk + j] : 0.0);
                m = s[j] > m ? s[j] : m;
            }
            for (int64_t j = 0; j < nk; j++) {
                s[j] = exp(s[j] - m);
                sum += s[j];
            }
            for (int64_t c = 0; c < D; c++) {
                double o = 0.0;
                for (int64_t j = 0; j < nk; j++)
                    o += s[j] * v[j * H * D + h * D + c];
                out[i * H * D + h * D + c] = o / sum;
            }
        }
    free(s);
}

static void test_attention(au_backend *be) {
    /* nq, nk, heads, head_dim */
    static const int64_t dims[][4] = {{1, 1, 1, 1},     {17, 33, 2, 8},   {64, 129, 3, 16}, {300, 20, 2, 64},
                                      {40, 40, 1, 384}, {5, 512, 4, 128}, {129, 17, 12, 3}};
    au_err err = {0};
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            be_arena_reset(test_arena);
            int64_t nq = dims[c][0], nk = dims[c][1], H = dims[c][2], D = dims[c][3];
            au_tensor q = MK(AU_F32, nq, H * D), k = MK(AU_F32, nk, H * D), v = MK(AU_F32, nk, H * D);
            au_tensor o = MK(AU_F32, nq, H * D), bias = MK(AU_F32, H, nq, nk);
            fill_rand(q.data, au_numel(&q), 2.0f); /* peaky softmax */
            fill_rand(bias.data, au_numel(&bias), 3.0f);
            float scale = with_bias ? 1.0f : 1.0f / sqrtf((float)D);
            double *ref = dalloc(nq * H * D);
            attention_ref(q.data, k.data, v.data, with_bias ? bias.data : NULL, nq, nk, H, D, scale, ref);
            CHECK_OK(be_attention(be, &o, &q, &k, &v, (int)H, scale, with_bias ? &bias : NULL, 1, &err));
            double e = rel_err(o.data, ref, nq * H * D);
            CHECK(e < REL_TOL, "attention nq=%lld nk=%lld H=%lld D=%lld bias %d: rel %.3g", (long long)nq,
                  (long long)nk, (long long)H, (long long)D, with_bias, e);
            free(ref);
        }
    /* large logits stay finite: softmax subtracts the row maximum */
    be_arena_reset(test_arena);
    au_tensor q = MK(AU_F32, 4, 8), k = MK(AU_F32, 6, 8), v = MK(AU_F32, 6, 8), o = MK(AU_F32, 4, 8);
    fill_rand(q.data, 32, 300.0f);
    fill_rand(k.data, 48, 300.0f);
    double ref[32];
    attention_ref(q.data, k.data, v.data, NULL, 4, 6, 1, 8, 1.0, ref);
    CHECK_OK(be_attention(be, &o, &q, &k, &v, 1, 1.0f, NULL, 1, &err));
    CHECK(rel_err(o.data, ref, 32) < REL_TOL, "attention with logits ~1e5");
}

/* The last key row standing for `copies` identical rows equals attention over the rows written
 * out (the DiT's padded text). */
static void test_attention_copies(au_backend *be) {
    /* nq, rows, heads, head_dim, copies of the last row */
    static const int64_t cases[][5] = {
        {17, 1, 2, 8, 511}, {33, 8, 3, 16, 505}, {5, 78, 4, 128, 435}, {9, 20, 2, 64, 2}, {40, 3, 1, 384, 90}};
    au_err err = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            be_arena_reset(test_arena);
            int64_t nq = cases[c][0], rows = cases[c][1], H = cases[c][2], D = cases[c][3], n = cases[c][4];
            int64_t nk = rows - 1 + n, HD = H * D;
            au_tensor q = MK(AU_F32, nq, HD), k = MK(AU_F32, rows, HD), v = MK(AU_F32, rows, HD);
            au_tensor o = MK(AU_F32, nq, HD), bias = MK(AU_F32, H, nq, rows);
            fill_rand(q.data, au_numel(&q), 2.0f);
            fill_rand(k.data, au_numel(&k), 1.0f);
            fill_rand(v.data, au_numel(&v), 1.0f);
            fill_rand(bias.data, au_numel(&bias), 3.0f);
            float *kx = malloc(sizeof *kx * (size_t)(nk * HD)), *vx = malloc(sizeof *vx * (size_t)(nk * HD));
            float *bx = malloc(sizeof *bx * (size_t)(H * nq * nk));
            REQUIRE(kx && vx && bx, "out of memory");
            for (int64_t j = 0; j < nk; j++) { /* row j of the written-out keys is row min(j, rows - 1) */
                int64_t src = j < rows ? j : rows - 1;
                memcpy(kx + j * HD, (float *)k.data + src * HD, sizeof *kx * (size_t)HD);
                memcpy(vx + j * HD, (float *)v.data + src * HD, sizeof *vx * (size_t)HD);
                for (int64_t r = 0; r < H * nq; r++)
                    bx[r * nk + j] = ((float *)bias.data)[r * rows + src];
            }
            float scale = 1.0f / sqrtf((float)D);
            double *ref = dalloc(nq * HD);
            attention_ref(q.data, kx, vx, with_bias ? bx : NULL, nq, nk, H, D, scale, ref);
            CHECK_OK(be_attention(be, &o, &q, &k, &v, (int)H, scale, with_bias ? &bias : NULL, n, &err));
            double e = rel_err(o.data, ref, nq * HD);
            CHECK(e < REL_TOL, "attention nq=%lld rows=%lld H=%lld D=%lld copies %lld bias %d: rel %.3g",
                  (long long)nq, (long long)rows, (long long)H, (long long)D, (long long)n, with_bias, e);
            free(ref), free(kx), free(vx), free(bx);
        }
    be_arena_reset(test_arena);
    au_tensor q = MK(AU_F32, 4, 8), k = MK(AU_F32, 6, 8), o = MK(AU_F32, 4, 8);
    CHECK(be_attention(be, &o, &q, &k, &k, 1, 1.0f, NULL, 0, &err) == AU_EINVAL && strstr(err.msg, "last_key_copies"),
          "attention refuses 0 copies: %s", err.msg);
}

static void test_errors(au_backend *be) {
    au_err err = {0};
    be_arena_reset(test_arena);
    au_tensor x = MK(AU_F32, 4, 16), w = MK(AU_F32, 8, 17), y = MK(AU_F32, 4, 8), b = MK(AU_F32, 9);
    CHECK(be_linear(be, &y, &x, &w, NULL, AU_ACT_NONE, &err) == AU_EINVAL, "linear inner mismatch");
    CHECK(strstr(err.msg, "linear") && strstr(err.msg, "[4,16] f32") && strstr(err.msg, "[8,17] f32"),
          "message names op and shapes: %s", err.msg);
    au_tensor w2 = MK(AU_F32, 8, 16);
    CHECK(be_linear(be, &y, &x, &w2, &b, AU_ACT_NONE, &err) == AU_EINVAL && strstr(err.msg, "b"),
          "bias size: %s", err.msg);
    au_tensor sq = MK(AU_F32, 8, 8), w3 = MK(AU_F32, 8, 8);
    CHECK(be_linear(be, &sq, &sq, &w3, NULL, AU_ACT_NONE, &err) == AU_EINVAL && strstr(err.msg, "alias"),
          "linear refuses y == x: %s", err.msg);
    au_tensor w8 = MK(AU_F8_E4M3, 8, 16);
    w8.scale = NULL;
    CHECK(be_linear(be, &y, &x, &w8, NULL, AU_ACT_NONE, &err) == AU_EINVAL && strstr(err.msg, "scale"),
          "f8 weight without scale: %s", err.msg);
    au_tensor xi = MK(AU_I32, 4, 16);
    CHECK(be_linear(be, &y, &xi, &w2, NULL, AU_ACT_NONE, &err) == AU_EINVAL && strstr(err.msg, "f32"),
          "x must be f32: %s", err.msg);
    au_tensor q = MK(AU_F32, 5, 12), k = MK(AU_F32, 7, 12), kbad = MK(AU_F32, 7, 10), o = MK(AU_F32, 5, 12);
    CHECK(be_attention(be, &o, &q, &kbad, &k, 3, 1.0f, NULL, 1, &err) == AU_EINVAL &&
              strstr(err.msg, "attention"),
          "attention k width: %s", err.msg);
    CHECK(be_attention(be, &o, &q, &k, &k, 5, 1.0f, NULL, 1, &err) == AU_EINVAL, "heads must divide the width");
    au_tensor bias = MK(AU_F32, 3, 5, 6);
    CHECK(be_attention(be, &o, &q, &k, &k, 3, 1.0f, &bias, 1, &err) == AU_EINVAL && strstr(err.msg, "bias"),
          "attention bias size: %s", err.msg);
}

int main(void) {
    au_err err = {0};
    au_backend *be = NULL;
    test_gemm_own();
    int threads[] = {3, 1};
    for (int t = 0; t < 2; t++) {
        if (be_cpu_create(&be, threads[t], &err) < 0) {
            fprintf(stderr, "be_cpu_create: %s\n", err.msg);
            return 1;
        }
        test_arena = be_arena_create(be, 64 << 20);
        test_linear(be);
        test_attention(be);
        test_attention_copies(be);
        if (t == 0) {
            test_linear_steady_state(be);
            test_errors(be);
        }
        be_arena_destroy(test_arena);
        be_destroy(be);
    }
    if (failures) {
        fprintf(stderr, "test_cpu_linear: %d failures\n", failures);
        return 1;
    }
    printf("test_cpu_linear: ok (gemm: %s)\n", cpu_gemm_engine());
    return 0;
}
