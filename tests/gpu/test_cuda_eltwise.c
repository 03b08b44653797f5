// deps: au_cuda au_cpu au_core
/* test_cuda_eltwise.c - the CUDA backend's elementwise and layout ops against the float32
 * CPU backend: add/mul (same size and row-vector broadcast, in place), add_gated, activate,
 * lincomb (output aliasing an input), clamp, copy between every dtype pair the models use
 * (f8 quantized per row, f8 rows of a larger tensor), fill (f8 included), and patchify,
 * unpatchify, transpose, swap01, concat, slice, upsample2x, time_interleave, including dtype
 * changes (the DiT patchifies its f32 latent into the f8 gemm input). Data movement must
 * be exact: tolerance 1e-6 against the reference rounded to the output dtype; to_rgb8 (the
 * video to 8-bit frames) byte for byte.
 */
#include "test_cuda_util.h"

#define EXACT 1e-6

static void test_binary(tctx *T) {
    au_dtype gi = T->gpu->gemm_in_dtype;
    {
        pair a = in_pair(T, AU_F32, SHAPE(37, 64), 1.0f), b = in_pair(T, AU_F32, SHAPE(37, 64), 1.0f);
        pair y = out_pair(T, AU_F32, SHAPE(37, 64));
        au_err err = {0};
        CHECK(be_add(T->gpu, &y.g, &a.g, &b.g, &err) == 0, "%s", err.msg);
        MUST(be_add(T->cpu, &y.c, &a.c, &b.c, err));
        compare(T, "add f32 + f32 -> f32", &y, 0);
    }
    {
        pair a = in_pair(T, AU_BF16, SHAPE(5, 3, 64), 1.0f), b = in_pair(T, AU_BF16, SHAPE(5, 3, 64), 1.0f);
        au_err err = {0};
        CHECK(be_add(T->gpu, &a.g, &a.g, &b.g, &err) == 0, "%s", err.msg);
        MUST(be_add(T->cpu, &a.c, &a.c, &b.c, err));
        compare(T, "add bf16 in place (UMT5 residual)", &a, 0);
    }
    {
        pair a = in_pair(T, AU_F32, SHAPE(6, 256), 1.0f), b = in_pair(T, AU_F32, SHAPE(256), 1.0f);
        pair y = out_pair(T, AU_F32, SHAPE(6, 256));
        au_err err = {0};
        CHECK(be_add(T->gpu, &y.g, &a.g, &b.g, &err) == 0, "%s", err.msg);
        MUST(be_add(T->cpu, &y.c, &a.c, &b.c, err));
        compare(T, "add row-vector broadcast f32 (modulation)", &y, 0);
    }
    {
        pair a = in_pair(T, AU_BF16, SHAPE(19, 128), 2.0f), b = in_pair(T, AU_BF16, SHAPE(19, 128), 2.0f);
        pair y = out_pair(T, gi, SHAPE(19, 128));
        au_err err = {0};
        CHECK(be_mul(T->gpu, &y.g, &a.g, &b.g, &err) == 0, "%s", err.msg);
        MUST(be_mul(T->cpu, &y.c, &a.c, &b.c, err));
        compare(T, gi == AU_F8_E4M3 ? "mul bf16 * bf16 -> f8 (UMT5 gated FFN)" : "mul bf16 * bf16 -> bf16", &y, 0);
    }
    {
        pair a = in_pair(T, AU_BF16, SHAPE(9, 33), 2.0f), b = in_pair(T, AU_F32, SHAPE(33), 2.0f);
        pair y = out_pair(T, AU_F32, SHAPE(9, 33));
        au_err err = {0};
        CHECK(be_mul(T->gpu, &y.g, &a.g, &b.g, &err) == 0, "%s", err.msg);
        MUST(be_mul(T->cpu, &y.c, &a.c, &b.c, err));
        compare(T, "mul bf16 * row vector -> f32", &y, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(37, 96), 1.0f), y = in_pair(T, AU_BF16, SHAPE(37, 96), 1.0f);
        pair g = in_pair(T, AU_F32, SHAPE(96), 1.0f);
        au_err err = {0};
        CHECK(be_add_gated(T->gpu, &x.g, &y.g, &g.g, &err) == 0, "%s", err.msg);
        MUST(be_add_gated(T->cpu, &x.c, &y.c, &g.c, err));
        compare(T, "add_gated f32 += bf16 * gate", &x, 0);
        CHECK(be_add_gated(T->gpu, &x.g, &y.g, NULL, &err) == 0, "%s", err.msg);
        MUST(be_add_gated(T->cpu, &x.c, &y.c, NULL, err));
        compare(T, "add_gated f32 += bf16, no gate", &x, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(5, 7, 6), 1.0f), y = in_pair(T, AU_F32, SHAPE(5, 7, 6), 1.0f);
        pair g = in_pair(T, AU_F32, SHAPE(6), 1.0f);
        au_err err = {0};
        CHECK(be_add_gated(T->gpu, &x.g, &y.g, &g.g, &err) == 0, "%s", err.msg);
        MUST(be_add_gated(T->cpu, &x.c, &y.c, &g.c, err));
        compare(T, "add_gated f32 += f32 * gate, rows of 6", &x, 0);
    }
}

static void test_unary(tctx *T) {
    static const au_act acts[3] = {AU_ACT_NONE, AU_ACT_GELU_TANH, AU_ACT_SILU};
    static const char *const names[3] = {"none", "gelu", "silu"};
    for (int i = 0; i < 3; i++) {
        pair x = in_pair(T, AU_F32, SHAPE(17, 100), 4.0f), y = out_pair(T, AU_F32, SHAPE(17, 100));
        au_err err = {0};
        CHECK(be_activate(T->gpu, &y.g, &x.g, acts[i], &err) == 0, "%s", err.msg);
        MUST(be_activate(T->cpu, &y.c, &x.c, acts[i], err));
        char what[64];
        snprintf(what, sizeof what, "activate %s f32", names[i]);
        compare(T, what, &y, 0);
    }
    {
        pair x = in_pair(T, AU_BF16, SHAPE(8, 3, 5, 7), 4.0f);
        au_err err = {0};
        CHECK(be_activate(T->gpu, &x.g, &x.g, AU_ACT_SILU, &err) == 0, "%s", err.msg);
        MUST(be_activate(T->cpu, &x.c, &x.c, AU_ACT_SILU, err));
        compare(T, "activate silu bf16 in place (VAE)", &x, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(3, 4, 5, 6), 2.0f), y = out_pair(T, AU_BF16, SHAPE(3, 4, 5, 6));
        au_err err = {0};
        CHECK(be_clamp(T->gpu, &y.g, &x.g, -1.0f, 1.0f, &err) == 0, "%s", err.msg);
        MUST(be_clamp(T->cpu, &y.c, &x.c, -1.0f, 1.0f, err));
        compare(T, "clamp f32 -> bf16", &y, 0);
    }
    {
        pair a = in_pair(T, AU_F32, SHAPE(16, 3, 6, 8), 1.0f), b = in_pair(T, AU_F32, SHAPE(16, 3, 6, 8), 1.0f);
        pair c = in_pair(T, AU_F32, SHAPE(16, 3, 6, 8), 1.0f);
        const au_tensor *xg[3] = {&a.g, &b.g, &c.g}, *xc[3] = {&a.c, &b.c, &c.c};
        pair coef = in_pair(T, AU_F32, SHAPE(3), 2.0f);
        au_err err = {0};
        CHECK(be_lincomb(T->gpu, &b.g, 3, xg, &coef.g, &err) == 0, "%s", err.msg);
        MUST(be_lincomb(T->cpu, &b.c, 3, xc, &coef.c, err));
        compare(T, "lincomb of 3 f32, y aliasing xs[1] (sampler)", &b, 0);
    }
}

static void test_copy_fill(tctx *T) {
    static const struct { au_dtype from, to; } cp[] = {
        {AU_F32, AU_BF16}, {AU_BF16, AU_F32}, {AU_F32, AU_F8_E4M3}, {AU_BF16, AU_F8_E4M3},
        {AU_F8_E4M3, AU_F32}, {AU_F8_E4M3, AU_F8_E4M3}, {AU_F32, AU_F16}, {AU_F32, AU_F32},
    };
    for (size_t i = 0; i < sizeof cp / sizeof cp[0]; i++) {
        pair x = in_pair(T, cp[i].from, SHAPE(23, 48), 3.0f), y = out_pair(T, cp[i].to, SHAPE(23, 48));
        au_err err = {0};
        CHECK(be_copy(T->gpu, &y.g, &x.g, &err) == 0, "%s", err.msg);
        MUST(be_copy(T->cpu, &y.c, &x.c, err));
        char what[64];
        snprintf(what, sizeof what, "copy %s -> %s", au_dtype_name(cp[i].from), au_dtype_name(cp[i].to));
        compare(T, what, &y, EXACT);
    }
    /* the DiT's text context: bf16 rows copied into the first rows of a padded gemm input */
    {
        au_dtype gi = T->gpu->gemm_in_dtype;
        pair ctx = in_pair(T, AU_BF16, SHAPE(7, 64), 2.0f), pad = out_pair(T, gi, SHAPE(16, 64));
        au_err err = {0};
        CHECK(be_fill(T->gpu, &pad.g, 0.0f, &err) == 0, "%s", err.msg);
        MUST(be_fill(T->cpu, &pad.c, 0.0f, err));
        au_tensor rg = au_view_rows(&pad.g, 0, 7), rc = au_view_rows(&pad.c, 0, 7);
        CHECK(be_copy(T->gpu, &rg, &ctx.g, &err) == 0, "%s", err.msg);
        MUST(be_copy(T->cpu, &rc, &ctx.c, err));
        char what[64];
        snprintf(what, sizeof what, "fill 0 + copy bf16 rows into %s rows", au_dtype_name(gi));
        compare(T, what, &pad, EXACT);
    }
    static const au_dtype fills[4] = {AU_F32, AU_BF16, AU_F8_E4M3, AU_F16};
    for (int i = 0; i < 4; i++) {
        pair y = out_pair(T, fills[i], SHAPE(5, 40));
        au_err err = {0};
        CHECK(be_fill(T->gpu, &y.g, -3.0f, &err) == 0, "%s", err.msg);
        for (int j = 0; j < 200; j++)
            y.host[j] = -3.0f;
        char what[64];
        snprintf(what, sizeof what, "fill -3 %s", au_dtype_name(fills[i]));
        compare(T, what, &y, EXACT);
    }
}

static void test_layout(tctx *T) {
    au_dtype gi = T->gpu->gemm_in_dtype;
    char what[96];
    {
        pair x = in_pair(T, AU_F32, SHAPE(16, 3, 6, 8), 2.0f);
        au_dtype outs[2] = {AU_F32, gi};
        for (int i = 0; i < 2; i++) {
            pair y = out_pair(T, outs[i], SHAPE(3 * 3 * 4, 16 * 4));
            au_err err = {0};
            CHECK(be_patchify(T->gpu, &y.g, &x.g, 1, 2, 2, &err) == 0, "%s", err.msg);
            MUST(be_patchify(T->cpu, &y.c, &x.c, 1, 2, 2, err));
            snprintf(what, sizeof what, "patchify 1x2x2 f32 -> %s", au_dtype_name(outs[i]));
            compare(T, what, &y, EXACT);
        }
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(2 * 3 * 4, 2 * 2 * 2 * 16), 2.0f), y = out_pair(T, AU_F32, SHAPE(16, 4, 6, 8));
        au_err err = {0};
        CHECK(be_unpatchify(T->gpu, &y.g, &x.g, 2, 2, 2, &err) == 0, "%s", err.msg);
        MUST(be_unpatchify(T->cpu, &y.c, &x.c, 2, 2, 2, err));
        compare(T, "unpatchify 2x2x2 f32", &y, EXACT);
    }
    {
        pair x = in_pair(T, AU_BF16, SHAPE(37, 29), 2.0f), y = out_pair(T, AU_BF16, SHAPE(29, 37));
        au_err err = {0};
        CHECK(be_transpose(T->gpu, &y.g, &x.g, &err) == 0, "%s", err.msg);
        MUST(be_transpose(T->cpu, &y.c, &x.c, err));
        compare(T, "transpose bf16 37x29", &y, EXACT);
    }
    /* swap01 (the Ulysses head shuffle): rest blocks of 1, 5, 6 and 64 elements take the 2-, 4- and
     * 16-byte copy paths */
    {
        static const struct { int nd; int64_t s[4]; au_dtype dt; } sw[5] = {
            {2, {13, 11}, AU_F32}, {3, {37, 3, 5}, AU_BF16}, {4, {5, 7, 2, 3}, AU_F32},
            {3, {9, 2, 64}, AU_BF16}, {3, {3, 17, 96}, AU_F16}};
        for (int i = 0; i < 5; i++) {
            int64_t ys[4] = {sw[i].s[1], sw[i].s[0], sw[i].s[2], sw[i].s[3]};
            pair x = in_pair(T, sw[i].dt, sw[i].nd, sw[i].s, 2.0f), y = out_pair(T, sw[i].dt, sw[i].nd, ys);
            au_err err = {0};
            CHECK(be_swap01(T->gpu, &y.g, &x.g, &err) == 0, "%s", err.msg);
            MUST(be_swap01(T->cpu, &y.c, &x.c, err));
            snprintf(what, sizeof what, "swap01 %s [%lld,%lld,...] (%dd)", au_dtype_name(sw[i].dt),
                     (long long)sw[i].s[0], (long long)sw[i].s[1], sw[i].nd);
            compare(T, what, &y, EXACT);
        }
        au_err err = {0};
        pair x = in_pair(T, AU_BF16, SHAPE(4, 4, 8), 1.0f);
        int rc = be_swap01(T->gpu, &x.g, &x.g, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "alias"), "swap01 in place: rc %d, %s", rc, err.msg);
        pair f8x = in_pair(T, AU_F8_E4M3, SHAPE(3, 2, 16), 1.0f), f8y = out_pair(T, AU_F8_E4M3, SHAPE(2, 3, 16));
        rc = be_swap01(T->gpu, &f8y.g, &f8x.g, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "f8"), "swap01 of f8: rc %d, %s", rc, err.msg);
        pair wrong = out_pair(T, AU_BF16, SHAPE(4, 8, 4));
        rc = be_swap01(T->gpu, &wrong.g, &x.g, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "swap01"), "swap01 to a wrong shape: rc %d, %s", rc, err.msg);
    }
    /* same dtype: strided copies; f32 into bf16: the converting kernel */
    static const au_dtype cat_in[3] = {AU_BF16, AU_F32, AU_F32}, cat_out[3] = {AU_BF16, AU_F32, AU_BF16};
    for (int v = 0; v < 3; v++)
        for (int dim = 0; dim < 4; dim++) {
            int64_t sa[4] = {4, 2, 3, 5}, sb[4] = {4, 2, 3, 5}, sy[4] = {4, 2, 3, 5};
            sb[dim] += 1;
            sy[dim] = sa[dim] + sb[dim];
            pair a = in_pair(T, cat_in[v], 4, sa, 2.0f), b = in_pair(T, cat_in[v], 4, sb, 2.0f);
            pair y = out_pair(T, cat_out[v], 4, sy);
            const double tol = cat_in[v] == cat_out[v] ? EXACT : 0;
            au_err err = {0};
            CHECK(be_concat(T->gpu, &y.g, &a.g, &b.g, dim, &err) == 0, "%s", err.msg);
            MUST(be_concat(T->cpu, &y.c, &a.c, &b.c, dim, err));
            snprintf(what, sizeof what, "concat %s -> %s along dim %d", au_dtype_name(cat_in[v]), au_dtype_name(cat_out[v]), dim);
            compare(T, what, &y, tol);
            int64_t sl[4] = {4, 2, 3, 5};
            sl[dim] = sy[dim] - 2;
            pair s = out_pair(T, cat_out[v], 4, sl);
            CHECK(be_slice(T->gpu, &s.g, &y.g, dim, 1, &err) == 0, "%s", err.msg);
            MUST(be_slice(T->cpu, &s.c, &y.c, dim, 1, err));
            snprintf(what, sizeof what, "slice %s along dim %d from 1", au_dtype_name(cat_out[v]), dim);
            compare(T, what, &s, tol);
        }
    {
        pair x = in_pair(T, AU_BF16, SHAPE(3, 2, 4, 5), 2.0f), y = out_pair(T, AU_BF16, SHAPE(3, 2, 8, 10));
        au_err err = {0};
        CHECK(be_upsample2x(T->gpu, &y.g, &x.g, &err) == 0, "%s", err.msg);
        MUST(be_upsample2x(T->cpu, &y.c, &x.c, err));
        compare(T, "upsample2x bf16", &y, EXACT);
    }
    {
        pair x = in_pair(T, AU_BF16, SHAPE(6, 2, 3, 4), 2.0f), y = out_pair(T, AU_BF16, SHAPE(3, 4, 3, 4));
        au_err err = {0};
        CHECK(be_time_interleave(T->gpu, &y.g, &x.g, &err) == 0, "%s", err.msg);
        MUST(be_time_interleave(T->cpu, &y.c, &x.c, err));
        compare(T, "time_interleave bf16", &y, EXACT);
    }
    {
        au_err err = {0};
        pair x = in_pair(T, AU_BF16, SHAPE(3, 2, 4, 5), 2.0f), y = out_pair(T, AU_BF16, SHAPE(3, 2, 8, 9));
        int rc = be_upsample2x(T->gpu, &y.g, &x.g, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "upsample2x"), "upsample2x to a wrong shape: rc %d, %s", rc, err.msg);
        rc = be_transpose(T->gpu, &x.g, &x.g, &err);
        CHECK(rc == AU_EINVAL, "transpose in place: rc %d", rc);
    }
}

/* to_rgb8 byte for byte against the CPU backend: f32 and bf16 planes, values inside [-1, 1]
 * (where no byte reaches 255, the poison) and past it with a NaN (clamped). */
static void test_to_rgb8(tctx *T) {
    static const struct {
        au_dtype dt;
        float amp;
    } cases[] = {{AU_F32, 0.9f}, {AU_BF16, 0.9f}, {AU_F32, 1.5f}, {AU_BF16, 1.5f}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t F = 5, H = 7, W = 9, n = F * H * W * 3;
        pair x = in_pair(T, cases[i].dt, SHAPE(3, F, H, W), cases[i].amp);
        if (cases[i].amp > 1.0f) {
            x.host[17] = NAN;
            gpu_put(T, &x.g, x.host);
        }
        au_tensor yg = mk_tensor(T->gpu_arena, AU_U8, SHAPE(F, H, W, 3));
        au_tensor yc = mk_tensor(T->cpu_arena, AU_U8, SHAPE(F, H, W, 3));
        poison(T, &yg);
        au_err e = {0};
        CHECK(be_to_rgb8(T->gpu, &yg, &x.g, &e) == 0, "to_rgb8: %s", e.msg);
        MUST(be_to_rgb8(T->cpu, &yc, &x.c, err));
        uint8_t *got = xmalloc((size_t)n);
        MUST(be_download(T->gpu, got, &yg, err));
        int64_t differ = 0, full = 0;
        for (int64_t k = 0; k < n; k++) {
            differ += got[k] != ((uint8_t *)yc.data)[k];
            full += got[k] == 255;
        }
        CHECK(differ == 0 && (cases[i].amp > 1.0f || full == 0),
              "[%s] to_rgb8 %s amplitude %.1f: %lld of %lld bytes differ from the CPU, %lld at 255", T->name,
              au_dtype_name(cases[i].dt), cases[i].amp, (long long)differ, (long long)n, (long long)full);
        free(got);
    }
    au_err e = {0};
    pair x = in_pair(T, AU_F32, SHAPE(3, 2, 4, 4), 1.0f);
    au_tensor bad = mk_tensor(T->gpu_arena, AU_U8, SHAPE(2, 4, 4, 4));
    int rc = be_to_rgb8(T->gpu, &bad, &x.g, &e);
    CHECK(rc == AU_EINVAL && strstr(e.msg, "to_rgb8"), "to_rgb8 into 4 channels: rc %d, %s", rc, e.msg);
}

static void run_all(tctx *T) {
    test_binary(T);
    test_unary(T);
    test_copy_fill(T);
    test_layout(T);
    test_to_rgb8(T);
}

int main(void) { return run_precisions(run_all); }
