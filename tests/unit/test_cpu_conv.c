// deps: au_cpu au_core
/* test_cpu_conv.c - CPU conv3d against a direct double-precision convolution,
 * for every kernel/stride/padding the Wan VAE and patch embedding use:
 *   k=3 causal pad {2,0,1,1,1,1}; k=1; (1,3,3) stride (1,2,2) pad {0,0,0,1,0,1};
 *   (3,1,1) stride (2,1,1); (1,2,2) stride (1,2,2) (patch embedding)
 * plus odd sizes, f32/bf16/f8 weights, with and without bias, sizes that need
 * many im2col tiles, and the shape/argument errors.
 */
#include "cpu/cpu_internal.h"
#include "cpu_test_util.h"

typedef struct conv_case {
    int64_t cin, cout, T, H, W, kt, kh, kw;
    int stride[3], pad[6];
} conv_case;

static void conv_ref(const conv_case *c, const float *x, const double *w, const float *b, double *y,
                     int64_t To, int64_t Ho, int64_t Wo) {
    for (int64_t o = 0; o < c->cout; o++)
        for (int64_t t = 0; t < To; t++)
            for (int64_t h = 0; h < Ho; h++)
                for (int64_t v = 0; v < Wo; v++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t i = 0; i < c->cin; i++)
                        for (int64_t dt = 0; dt < c->kt; dt++)
                            for (int64_t dh = 0; dh < c->kh; dh++)
                                for (int64_t dw = 0; dw < c->kw; dw++) {
                                    int64_t ti = t * c->stride[0] - c->pad[0] + dt;
                                    int64_t hi = h * c->stride[1] - c->pad[2] + dh;
                                    int64_t wi = v * c->stride[2] - c->pad[4] + dw;
                                    if (ti < 0 || ti >= c->T || hi < 0 || hi >= c->H || wi < 0 || wi >= c->W)
                                        continue;
                                    s += w[(((o * c->cin + i) * c->kt + dt) * c->kh + dh) * c->kw + dw] *
                                         x[((i * c->T + ti) * c->H + hi) * c->W + wi];
                                }
                    y[((o * To + t) * Ho + h) * Wo + v] = s;
                }
}

static void run_case(au_backend *be, const conv_case *c, au_dtype wdt, int use_bias) {
    au_err err = {0};
    be_arena_reset(test_arena);
    int64_t To = (c->T + c->pad[0] + c->pad[1] - c->kt) / c->stride[0] + 1;
    int64_t Ho = (c->H + c->pad[2] + c->pad[3] - c->kh) / c->stride[1] + 1;
    int64_t Wo = (c->W + c->pad[4] + c->pad[5] - c->kw) / c->stride[2] + 1;
    au_tensor x = MK(AU_F32, c->cin, c->T, c->H, c->W), y = MK(AU_F32, c->cout, To, Ho, Wo),
              b = MK(AU_F32, c->cout);
    au_tensor w = MK(wdt, c->cout, c->cin, c->kt, c->kh, c->kw);
    int64_t nw = au_numel(&w), row = nw / c->cout;
    double *wd = dalloc(nw), *ref = dalloc(au_numel(&y));
    for (int64_t i = 0; i < nw; i++) {
        float v = rng_f() * 0.3f;
        if (wdt == AU_F32) {
            ((float *)w.data)[i] = v;
            wd[i] = v;
        } else if (wdt == AU_BF16) {
            ((uint16_t *)w.data)[i] = au_f32_to_bf16(v);
            wd[i] = au_bf16_to_f32(au_f32_to_bf16(v));
        } else {
            uint8_t q = au_f32_to_f8e4m3(v * 400.0f);
            ((uint8_t *)w.data)[i] = q;
            wd[i] = au_f8e4m3_to_f32(q);
        }
    }
    if (wdt == AU_F8_E4M3)
        for (int64_t o = 0; o < c->cout; o++) {
            ((float *)w.scale)[o] = 0.0005f * (float)(o + 1);
            for (int64_t i = 0; i < row; i++)
                wd[o * row + i] *= 0.0005f * (float)(o + 1);
        }
    conv_ref(c, x.data, wd, use_bias ? b.data : NULL, ref, To, Ho, Wo);
    CHECK_OK(be_conv3d(be, &y, &x, &w, use_bias ? &b : NULL, c->stride, c->pad, &err));
    double e = rel_err(y.data, ref, au_numel(&y));
    CHECK(e < REL_TOL,
          "conv3d cin %lld cout %lld x [%lld,%lld,%lld] k (%lld,%lld,%lld) stride {%d,%d,%d} pad "
          "{%d,%d,%d,%d,%d,%d} "
          "w %s bias %d: rel %.3g",
          (long long)c->cin, (long long)c->cout, (long long)c->T, (long long)c->H, (long long)c->W,
          (long long)c->kt, (long long)c->kh, (long long)c->kw, c->stride[0], c->stride[1], c->stride[2],
          c->pad[0], c->pad[1], c->pad[2], c->pad[3], c->pad[4], c->pad[5], au_dtype_name(wdt), use_bias, e);
    free(wd), free(ref);
}

static void test_cases(au_backend *be) {
    static const conv_case cases[] = {
        /* causal 3x3x3 of the VAE resnet blocks */
        {5, 7, 3, 6, 7, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}},
        {1, 1, 1, 1, 1, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}},
        {16, 12, 3, 20, 24, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}},
        /* 1x1x1 shortcut / head: direct GEMM */
        {6, 4, 2, 5, 3, 1, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}},
        {17, 3, 1, 9, 13, 1, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}},
        /* spatial downsample: zero pad right/bottom, stride 2 */
        {3, 5, 2, 8, 9, 1, 3, 3, {1, 2, 2}, {0, 0, 0, 1, 0, 1}},
        {4, 4, 1, 7, 6, 1, 3, 3, {1, 2, 2}, {0, 0, 0, 1, 0, 1}},
        /* temporal downsample (3,1,1) stride (2,1,1) */
        {4, 8, 5, 3, 4, 3, 1, 1, {2, 1, 1}, {0, 0, 0, 0, 0, 0}},
        {3, 2, 6, 2, 5, 3, 1, 1, {2, 1, 1}, {0, 0, 0, 0, 0, 0}},
        /* time_conv of upsample3d: (3,1,1) causal pad */
        {4, 8, 2, 3, 5, 3, 1, 1, {1, 1, 1}, {2, 0, 0, 0, 0, 0}},
        /* DiT patch embedding: kernel = stride = (1,2,2) */
        {16, 24, 3, 6, 10, 1, 2, 2, {1, 2, 2}, {0, 0, 0, 0, 0, 0}},
        /* 2-D 3x3 conv of the upsampler (symmetric pad) */
        {6, 5, 1, 9, 11, 1, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}},
    };
    static const au_dtype dts[] = {AU_F32, AU_BF16, AU_F8_E4M3};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int d = 0; d < 3; d++)
            run_case(be, &cases[i], dts[d], (int)(i + d) % 2 == 0);
}

/* Repeated convs of the same shape make no scratch allocations. */
static void test_steady_state(au_backend *be) {
    static const conv_case c = {8, 8, 3, 10, 12, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}};
    run_case(be, &c, AU_BF16, 1);
    uint64_t before = cpu_of(be)->scratch_allocs;
    run_case(be, &c, AU_BF16, 1);
    run_case(be, &c, AU_BF16, 0);
    CHECK(cpu_of(be)->scratch_allocs == before, "repeated conv3d allocated scratch");
}

static void test_errors(au_backend *be) {
    au_err err = {0};
    be_arena_reset(test_arena);
    int stride[3] = {1, 1, 1}, pad[6] = {2, 0, 1, 1, 1, 1};
    au_tensor x = MK(AU_F32, 4, 3, 5, 6), w = MK(AU_F32, 2, 4, 3, 3, 3), y = MK(AU_F32, 2, 3, 5, 6);
    CHECK_OK(be_conv3d(be, &y, &x, &w, NULL, stride, pad, &err));
    au_tensor ybad = MK(AU_F32, 2, 3, 5, 5);
    CHECK(be_conv3d(be, &ybad, &x, &w, NULL, stride, pad, &err) == AU_EINVAL && strstr(err.msg, "conv3d") &&
              strstr(err.msg, "[2,3,5,5] f32") && strstr(err.msg, "expected [2,3,5,6]"),
          "wrong y shape: %s", err.msg);
    au_tensor wbad = MK(AU_F32, 2, 3, 3, 3, 3);
    CHECK(be_conv3d(be, &y, &x, &wbad, NULL, stride, pad, &err) == AU_EINVAL &&
              strstr(err.msg, "[2,3,3,3,3]"),
          "Cin mismatch: %s", err.msg);
    int zero_stride[3] = {1, 0, 1};
    CHECK(be_conv3d(be, &y, &x, &w, NULL, zero_stride, pad, &err) == AU_EINVAL && strstr(err.msg, "stride"),
          "zero stride: %s", err.msg);
    au_tensor b = MK(AU_F32, 3);
    CHECK(be_conv3d(be, &y, &x, &w, &b, stride, pad, &err) == AU_EINVAL && strstr(err.msg, "b"),
          "bias size: %s", err.msg);
    CHECK(be_conv3d(be, &x, &x, &w, NULL, stride, pad, &err) == AU_EINVAL, "y aliasing x refused");
}

int main(void) {
    au_err err = {0};
    au_backend *be = NULL;
    int threads[] = {3, 1};
    for (int t = 0; t < 2; t++) {
        if (be_cpu_create(&be, threads[t], &err) < 0) {
            fprintf(stderr, "be_cpu_create: %s\n", err.msg);
            return 1;
        }
        test_arena = be_arena_create(be, 32 << 20);
        test_cases(be);
        if (t == 0) {
            test_steady_state(be);
            test_errors(be);
        }
        be_arena_destroy(test_arena);
        be_destroy(be);
    }
    if (failures) {
        fprintf(stderr, "test_cpu_conv: %d failures\n", failures);
        return 1;
    }
    printf("test_cpu_conv: ok\n");
    return 0;
}
