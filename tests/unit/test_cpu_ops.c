// deps: au_cpu au_core
/* test_cpu_ops.c - the CPU backend's non-GEMM ops against double-precision
 * references written here: weight loading, embed, layernorm (every
 * w/b/shift/scale combination), rmsnorm, rmsnorm_channels, rope, add/mul with
 * row broadcast, add_gated, activate, lincomb, clamp, copy with dtype
 * conversion (f8 quantization included), fill, patchify/unpatchify, transpose,
 * swap01, concat, slice, upsample2x, time_interleave, to_rgb8; in-place (aliased) use where
 * backend.h allows it; and argument errors. Shapes include 1, 3, 17, 129.
 * (linear/attention: test_cpu_linear.c; conv3d: test_cpu_conv.c.)
 */
#include "cpu_test_util.h"

static au_backend *be;

static void test_weights(void) {
    au_err err = {0};
    be_arena_reset(test_arena);
    au_arena *wa = be_arena_create(be, 1 << 16);
    au_tensor src = MK(AU_BF16, 17, 5), dst;
    CHECK(be->ops->weight_bytes(be, &src, AU_W_MATRIX) == 0, "bf16 matrix takes no arena bytes");
    CHECK_OK(be->ops->weight_load(be, wa, &src, NULL, AU_W_MATRIX, &dst, &err));
    CHECK(dst.data == src.data && dst.dtype == AU_BF16 && au_same_shape(&dst, &src),
          "bf16 matrix kept by reference");
    CHECK(be_arena_used(wa) == 0, "nothing taken from the arena");
    /* f8 matrix: by reference, per-row scale copied */
    au_tensor q = MK(AU_F8_E4M3, 3, 4);
    float scale[3] = {0.5f, 2.0f, 0.25f};
    q.scale = NULL;
    size_t wb = be->ops->weight_bytes(be, &q, AU_W_MATRIX);
    CHECK_OK(be->ops->weight_load(be, wa, &q, scale, AU_W_MATRIX, &dst, &err));
    CHECK(dst.data == q.data && dst.scale && dst.scale != (void *)scale && ((float *)dst.scale)[1] == 2.0f,
          "f8 matrix referenced, scale copied");
    CHECK(be_arena_used(wa) == wb && wb == 256, "weight_bytes %zu equals arena use %zu", wb,
          be_arena_used(wa));
    CHECK(be->ops->weight_load(be, wa, &q, NULL, AU_W_MATRIX, &dst, &err) == AU_EINVAL &&
              strstr(err.msg, "scale"),
          "f8 without scale: %s", err.msg);
    /* vector: f32 copy */
    au_tensor v = MK(AU_F16, 129);
    for (int i = 0; i < 129; i++)
        ((uint16_t *)v.data)[i] = au_f32_to_f16((float)i * 0.5f - 3.0f);
    size_t before = be_arena_used(wa);
    wb = be->ops->weight_bytes(be, &v, AU_W_VECTOR);
    CHECK_OK(be->ops->weight_load(be, wa, &v, NULL, AU_W_VECTOR, &dst, &err));
    CHECK(dst.dtype == AU_F32 && dst.data != v.data && ((float *)dst.data)[128] == 61.0f,
          "vector converted to f32");
    CHECK(be_arena_used(wa) - before == wb, "vector weight_bytes %zu", wb);
    au_tensor e = MK(AU_BF16, 4, 3);
    CHECK_OK(be->ops->weight_load(be, wa, &e, NULL, AU_W_F32, &dst, &err));
    CHECK(dst.dtype == AU_F32 && dst.data != e.data && dst.shape[0] == 4 && dst.shape[1] == 3,
          "AU_W_F32 copies");
    au_tensor iv = MK(AU_I64, 4);
    CHECK(be->ops->weight_load(be, wa, &iv, NULL, AU_W_VECTOR, &dst, &err) == AU_EINVAL,
          "i64 weight refused");
    be_arena_destroy(wa);
}

static void test_embed(void) {
    au_err err = {0};
    static const au_dtype dts[] = {AU_F32, AU_BF16, AU_F16, AU_F8_E4M3};
    for (int d = 0; d < 4; d++) {
        be_arena_reset(test_arena);
        int64_t vocab = 37, dim = 17;
        au_tensor table = MK(dts[d], vocab, dim), y = MK(AU_F32, 5, dim);
        double *dec = dalloc(vocab * dim);
        for (int64_t i = 0; i < vocab * dim; i++) {
            float v = rng_f();
            if (dts[d] == AU_F32)
                ((float *)table.data)[i] = v, dec[i] = v;
            else if (dts[d] == AU_BF16)
                ((uint16_t *)table.data)[i] = au_f32_to_bf16(v), dec[i] = au_bf16_to_f32(au_f32_to_bf16(v));
            else if (dts[d] == AU_F16)
                ((uint16_t *)table.data)[i] = au_f32_to_f16(v), dec[i] = au_f16_to_f32(au_f32_to_f16(v));
            else
                ((uint8_t *)table.data)[i] = au_f32_to_f8e4m3(v * 100),
                          dec[i] = au_f8e4m3_to_f32(au_f32_to_f8e4m3(v * 100));
        }
        if (dts[d] == AU_F8_E4M3)
            for (int64_t r = 0; r < vocab; r++) {
                ((float *)table.scale)[r] = 0.01f * (float)(r + 1);
                for (int64_t c = 0; c < dim; c++)
                    dec[r * dim + c] *= 0.01f * (float)(r + 1);
            }
        int32_t ids[5] = {0, 36, 5, 5, 20};
        double ref[5 * 17];
        for (int i = 0; i < 5; i++)
            for (int c = 0; c < dim; c++)
                ref[i * dim + c] = dec[ids[i] * dim + c];
        CHECK_OK(be_embed(be, &y, &table, ids, 5, &err));
        CHECK(rel_err(y.data, ref, 5 * dim) < REL_TOL, "embed %s", au_dtype_name(dts[d]));
        int32_t bad[2] = {3, 37};
        au_tensor y2 = MK(AU_F32, 2, dim);
        CHECK(be_embed(be, &y2, &table, bad, 2, &err) == AU_EINVAL && strstr(err.msg, "37"),
              "id out of range: %s", err.msg);
        free(dec);
    }
}

static void test_layernorm(void) {
    au_err err = {0};
    static const int64_t dims[][2] = {{1, 1}, {3, 17}, {129, 3}, {5, 1536}};
    for (size_t c = 0; c < 4; c++)
        for (int mask = 0; mask < 16; mask++) {
            be_arena_reset(test_arena);
            int64_t n = dims[c][0], dim = dims[c][1];
            au_tensor x = MK(AU_F32, n, dim), y = MK(AU_F32, n, dim);
            au_tensor w = MK(AU_F32, dim), b = MK(AU_F32, dim), sh = MK(AU_F32, dim), sc = MK(AU_F32, dim);
            const float *xf = x.data;
            for (int64_t i = 0; i < n * dim; i++)
                ((float *)x.data)[i] = xf[i] * 3.0f + 5.0f; /* offset mean */
            double *ref = dalloc(n * dim);
            for (int64_t r = 0; r < n; r++) {
                double mean = 0, var = 0;
                for (int64_t i = 0; i < dim; i++)
                    mean += xf[r * dim + i];
                mean /= dim;
                for (int64_t i = 0; i < dim; i++)
                    var += (xf[r * dim + i] - mean) * (xf[r * dim + i] - mean);
                var /= dim;
                for (int64_t i = 0; i < dim; i++) {
                    double v = (xf[r * dim + i] - mean) / sqrt(var + 1e-6);
                    if (mask & 1)
                        v *= ((float *)w.data)[i];
                    if (mask & 2)
                        v += ((float *)b.data)[i];
                    if (mask & 8)
                        v *= 1.0 + ((float *)sc.data)[i];
                    if (mask & 4)
                        v += ((float *)sh.data)[i];
                    ref[r * dim + i] = v;
                }
            }
            au_tensor *out = (mask % 3 == 0) ? &x : &y; /* in place sometimes */
            CHECK_OK(be_layernorm(be, out, &x, mask & 1 ? &w : NULL, mask & 2 ? &b : NULL,
                                  mask & 4 ? &sh : NULL, mask & 8 ? &sc : NULL, 1e-6f, &err));
            double e = rel_err(out->data, ref, n * dim);
            CHECK(e < REL_TOL, "layernorm [%lld,%lld] mask %d: rel %.3g", (long long)n, (long long)dim, mask,
                  e);
            free(ref);
        }
}

static void test_rmsnorm(void) {
    au_err err = {0};
    static const int64_t dims[][2] = {{1, 1}, {3, 17}, {129, 64}};
    for (size_t c = 0; c < 3; c++)
        for (int opt = 0; opt < 8; opt++) { /* bit 0: bias, 1: in place, 2: SiLU */
            be_arena_reset(test_arena);
            int64_t n = dims[c][0], dim = dims[c][1];
            au_tensor x = MK(AU_F32, n, dim), y = MK(AU_F32, n, dim), w = MK(AU_F32, dim);
            double *ref = dalloc(n * dim);
            const float *xf = x.data;
            for (int64_t r = 0; r < n; r++) {
                double ms = 0;
                for (int64_t i = 0; i < dim; i++)
                    ms += (double)xf[r * dim + i] * xf[r * dim + i];
                ms /= dim;
                for (int64_t i = 0; i < dim; i++)
                    ref[r * dim + i] =
                        xf[r * dim + i] / sqrt(ms + 1e-6) * ((opt & 1) ? ((float *)w.data)[i] : 1.0);
            }
            au_tensor *out = (opt & 2) ? &x : &y;
            CHECK_OK(be_rmsnorm(be, out, &x, (opt & 1) ? &w : NULL, 1e-6f, &err));
            CHECK(rel_err(out->data, ref, n * dim) < REL_TOL, "rmsnorm [%lld,%lld] opt %d", (long long)n,
                  (long long)dim, opt);
            free(ref);
        }
}

static void test_rmsnorm_channels(void) {
    au_err err = {0};
    static const int64_t dims[][4] = {{1, 1, 1, 1}, {5, 3, 4, 7}, {96, 2, 17, 129}};
    for (size_t c = 0; c < 3; c++)
        for (int opt = 0; opt < 8; opt++) { /* bit 0: bias, 1: in place, 2: SiLU */
            be_arena_reset(test_arena);
            int64_t C = dims[c][0], S = dims[c][1] * dims[c][2] * dims[c][3];
            au_tensor x = MK(AU_F32, C, dims[c][1], dims[c][2], dims[c][3]);
            au_tensor y = MK(AU_F32, C, dims[c][1], dims[c][2], dims[c][3]);
            au_tensor g = MK(AU_F32, C), b = MK(AU_F32, C);
            const float *xf = x.data;
            double *ref = dalloc(C * S);
            for (int64_t s = 0; s < S; s++) {
                double ss = 0;
                for (int64_t ch = 0; ch < C; ch++)
                    ss += (double)xf[ch * S + s] * xf[ch * S + s];
                double norm = fmax(sqrt(ss), 1e-12);
                for (int64_t ch = 0; ch < C; ch++) {
                    double v = xf[ch * S + s] / norm * sqrt((double)C) * ((float *)g.data)[ch] +
                               ((opt & 1) ? ((float *)b.data)[ch] : 0.0);
                    ref[ch * S + s] = (opt & 4) ? v / (1.0 + exp(-v)) : v;
                }
            }
            au_tensor *out = (opt & 2) ? &x : &y;
            CHECK_OK(be_rmsnorm_channels(be, out, &x, &g, (opt & 1) ? &b : NULL, (opt & 4) ? AU_ACT_SILU : AU_ACT_NONE,
                                         &err));
            CHECK(rel_err(out->data, ref, C * S) < REL_TOL, "rmsnorm_channels C=%lld S=%lld opt %d",
                  (long long)C, (long long)S, opt);
            free(ref);
        }
    /* an all-zero position gives bias only (norm clamped at 1e-12, no NaN) */
    be_arena_reset(test_arena);
    au_tensor x = MK(AU_F32, 3, 1, 1, 2), g = MK(AU_F32, 3), b = MK(AU_F32, 3);
    for (int i = 0; i < 6; i++)
        ((float *)x.data)[i] = (i % 2) ? 1.0f : 0.0f;
    CHECK_OK(be_rmsnorm_channels(be, &x, &x, &g, &b, AU_ACT_NONE, &err));
    CHECK(be_rmsnorm_channels(be, &x, &x, &g, &b, (au_act)99, &err) == AU_EINVAL, "unknown activation refused");
    CHECK(((float *)x.data)[0] == ((float *)b.data)[0], "zero column gives the bias");
}

static void test_rope(void) {
    au_err err = {0};
    be_arena_reset(test_arena);
    int64_t n = 17, H = 3, D = 8;
    au_tensor x = MK(AU_F32, n, H * D), cs = MK(AU_F32, n, D / 2, 2);
    double *ref = dalloc(n * H * D);
    float *xf = x.data, *c = cs.data;
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < D / 2; i++) {
            double ang = (double)t * pow(10000.0, -2.0 * i / D);
            c[(t * D / 2 + i) * 2] = (float)cos(ang);
            c[(t * D / 2 + i) * 2 + 1] = (float)sin(ang);
        }
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                double a = xf[t * H * D + h * D + 2 * i], b = xf[t * H * D + h * D + 2 * i + 1];
                double co = c[(t * D / 2 + i) * 2], si = c[(t * D / 2 + i) * 2 + 1];
                ref[t * H * D + h * D + 2 * i] = a * co - b * si;
                ref[t * H * D + h * D + 2 * i + 1] = a * si + b * co;
            }
    CHECK_OK(be_rope(be, &x, &cs, (int)H, &err));
    CHECK(rel_err(x.data, ref, n * H * D) < REL_TOL, "rope");
    au_tensor cs_bad = MK(AU_F32, n, D / 2 + 1, 2);
    CHECK(be_rope(be, &x, &cs_bad, (int)H, &err) == AU_EINVAL && strstr(err.msg, "rope"), "rope shape: %s",
          err.msg);
    free(ref);
}

static void test_elementwise(void) {
    au_err err = {0};
    static const int64_t dims[][2] = {{1, 1}, {3, 17}, {129, 33}, {300, 129}};
    for (size_t c = 0; c < 4; c++) {
        be_arena_reset(test_arena);
        int64_t n = dims[c][0], dim = dims[c][1], N = n * dim;
        au_tensor a = MK(AU_F32, n, dim), b = MK(AU_F32, n, dim), v = MK(AU_F32, dim), y = MK(AU_F32, n, dim);
        const float *af = a.data, *bf = b.data, *vf = v.data;
        double *ref = dalloc(N);
        for (int mul = 0; mul < 2; mul++)
            for (int bc = 0; bc < 2; bc++) {
                for (int64_t i = 0; i < N; i++) {
                    double o = bc ? vf[i % dim] : bf[i];
                    ref[i] = mul ? af[i] * o : af[i] + o;
                }
                if (mul)
                    CHECK_OK(be_mul(be, &y, &a, bc ? &v : &b, &err));
                else
                    CHECK_OK(be_add(be, &y, &a, bc ? &v : &b, &err));
                CHECK(rel_err(y.data, ref, N) < REL_TOL, "%s [%lld,%lld] broadcast %d", mul ? "mul" : "add",
                      (long long)n, (long long)dim, bc);
            }
        /* in place: a = a + v */
        for (int64_t i = 0; i < N; i++)
            ref[i] = af[i] + vf[i % dim];
        CHECK_OK(be_add(be, &a, &a, &v, &err));
        CHECK(rel_err(a.data, ref, N) < REL_TOL, "add in place");
        /* add_gated */
        for (int g = 0; g < 2; g++) {
            for (int64_t i = 0; i < N; i++)
                ref[i] = af[i] + bf[i] * (g ? vf[i % dim] : 1.0);
            CHECK_OK(be_add_gated(be, &a, &b, g ? &v : NULL, &err));
            CHECK(rel_err(a.data, ref, N) < REL_TOL, "add_gated gate %d", g);
        }
        /* activate, in place and not */
        for (int act = 0; act < 3; act++) {
            for (int64_t i = 0; i < N; i++)
                ref[i] = act == 1 ? gelu_ref(bf[i] * 4) : act == 2 ? silu_ref(bf[i] * 4) : bf[i] * 4;
            for (int64_t i = 0; i < N; i++)
                ((float *)b.data)[i] *= 4;
            CHECK_OK(be_activate(be, &y, &b, (au_act)act, &err));
            CHECK(rel_err(y.data, ref, N) < REL_TOL, "activate %d", act);
            CHECK_OK(be_activate(be, &b, &b, (au_act)act, &err));
            CHECK(rel_err(b.data, ref, N) < REL_TOL, "activate %d in place", act);
            fill_rand(b.data, N, 1.0f);
        }
        /* lincomb with y aliasing xs[1] */
        const au_tensor *xs[3] = {&a, &b, &y};
        au_tensor coef = MK(AU_F32, 3);
        memcpy(coef.data, (float[]){0.5f, -2.0f, 3.25f}, 3 * sizeof(float));
        for (int64_t i = 0; i < N; i++)
            ref[i] = 0.5 * af[i] - 2.0 * bf[i] + 3.25 * ((float *)y.data)[i];
        CHECK_OK(be_lincomb(be, &b, 3, xs, &coef, &err));
        CHECK(rel_err(b.data, ref, N) < REL_TOL, "lincomb aliasing xs[1]");
        /* clamp */
        for (int64_t i = 0; i < N; i++)
            ref[i] = fmin(fmax(af[i], -0.5), 0.25);
        CHECK_OK(be_clamp(be, &y, &a, -0.5f, 0.25f, &err));
        CHECK(rel_err(y.data, ref, N) < REL_TOL, "clamp");
        /* fill */
        CHECK_OK(be_fill(be, &y, -1.5f, &err));
        for (int64_t i = 0; i < N; i++)
            ref[i] = -1.5;
        CHECK(rel_err(y.data, ref, N) == 0.0, "fill f32");
        free(ref);
    }
    /* activations at extreme inputs: the vector exp clamps, results stay finite and right */
    be_arena_reset(test_arena);
    static const float xs_ext[] = {-1000, -100, -20, -5, -1e-3f, 0, 1e-3f, 5, 20, 100, 1000, 3e38f, -3e38f};
    int n_ext = (int)(sizeof xs_ext / sizeof xs_ext[0]);
    for (int act = 1; act < 3; act++) {
        au_tensor t = MK(AU_F32, n_ext);
        memcpy(t.data, xs_ext, sizeof xs_ext);
        CHECK_OK(be_activate(be, &t, &t, (au_act)act, &err));
        for (int i = 0; i < n_ext; i++) {
            double x = xs_ext[i], ref = act == 1 ? gelu_ref(x) : silu_ref(x);
            if (fabs(x) > 1e30) /* tanh/sigmoid saturate: x or 0 */
                ref = x > 0 ? x : 0.0;
            double got = ((float *)t.data)[i];
            CHECK(isfinite(got) && fabs(got - ref) <= 1e-5 * fabs(ref) + 1e-30,
                  "activate %d of %g: %g, want %g", act, x, got, ref);
        }
    }
    au_tensor a = MK(AU_F32, 4, 6), bad = MK(AU_F32, 5), y = MK(AU_F32, 4, 6), ys = MK(AU_F32, 3, 6);
    CHECK(be_add(be, &y, &a, &bad, &err) == AU_EINVAL && strstr(err.msg, "add") && strstr(err.msg, "[5] f32"),
          "add size mismatch: %s", err.msg);
    CHECK(be_mul(be, &ys, &a, &a, &err) == AU_EINVAL && strstr(err.msg, "[3,6]"), "mul y size: %s", err.msg);
    CHECK(be_add_gated(be, &a, &a, &bad, &err) == AU_EINVAL && strstr(err.msg, "gate"), "gate size: %s",
          err.msg);
    CHECK(be_clamp(be, &y, &a, 1.0f, -1.0f, &err) == AU_EINVAL, "clamp lo > hi");
    CHECK(be_lincomb(be, &y, 0, NULL, NULL, &err) == AU_EINVAL, "lincomb of nothing");
    const au_tensor *two[2] = {&a, &a};
    CHECK(be_lincomb(be, &y, 2, two, &bad, &err) == AU_EINVAL && strstr(err.msg, "coef"),
          "lincomb with 5 coefficients for 2 inputs: %s", err.msg);
}

static void test_copy(void) {
    au_err err = {0};
    be_arena_reset(test_arena);
    int64_t n = 17, dim = 129, N = n * dim;
    au_tensor x = MK(AU_F32, n, dim), h = MK(AU_BF16, n, dim), f = MK(AU_F16, n, dim),
              back = MK(AU_F32, n, dim);
    float *xf = x.data;
    for (int64_t i = 0; i < N; i++)
        xf[i] *= (float)(1 + i % 7) * 10.0f;
    CHECK_OK(be_copy(be, &h, &x, &err));
    int bad = 0;
    for (int64_t i = 0; i < N; i++)
        bad += ((uint16_t *)h.data)[i] != au_f32_to_bf16(xf[i]);
    CHECK(bad == 0, "f32 -> bf16 rounds like au_f32_to_bf16 (%d differ)", bad);
    CHECK_OK(be_copy(be, &back, &h, &err));
    bad = 0;
    for (int64_t i = 0; i < N; i++)
        bad += ((float *)back.data)[i] != au_bf16_to_f32(((uint16_t *)h.data)[i]);
    CHECK(bad == 0, "bf16 -> f32 exact");
    CHECK_OK(be_copy(be, &f, &x, &err));
    bad = 0;
    for (int64_t i = 0; i < N; i++)
        bad += ((uint16_t *)f.data)[i] != au_f32_to_f16(xf[i]);
    CHECK(bad == 0, "f32 -> f16");
    /* f32 -> f8 quantizes per row: scale = amax / 448 */
    au_tensor q = MK(AU_F8_E4M3, n, dim);
    CHECK_OK(be_copy(be, &q, &x, &err));
    bad = 0;
    double *ref = dalloc(N);
    for (int64_t r = 0; r < n; r++) {
        double amax = 0;
        for (int64_t i = 0; i < dim; i++)
            amax = fmax(amax, fabs(xf[r * dim + i]));
        float s = ((float *)q.scale)[r];
        if (fabs(s - amax / 448.0) > 1e-6 * amax)
            bad++;
        for (int64_t i = 0; i < dim; i++) {
            uint8_t code = ((uint8_t *)q.data)[r * dim + i];
            if (code != au_f32_to_f8e4m3(xf[r * dim + i] * (1.0f / s)))
                bad++;
            ref[r * dim + i] = xf[r * dim + i];
        }
    }
    CHECK(bad == 0, "f8 quantization: %d codes or scales differ", bad);
    CHECK_OK(be_copy(be, &back, &q, &err));
    double e = rel_err(back.data, ref, N);
    CHECK(e < 0.04 && e > 1e-4, "f8 round trip error %.3g is e4m3-sized", e);
    au_tensor q2 = MK(AU_F8_E4M3, n, dim);
    CHECK_OK(be_copy(be, &q2, &q, &err));
    CHECK(memcmp(q2.data, q.data, (size_t)N) == 0 && memcmp(q2.scale, q.scale, (size_t)n * 4) == 0,
          "f8 -> f8 copy");
    /* a zero row gets scale 1 and zero codes */
    au_tensor z = MK(AU_F32, 2, 5), zq = MK(AU_F8_E4M3, 2, 5);
    memset(z.data, 0, 40);
    CHECK_OK(be_copy(be, &zq, &z, &err));
    CHECK(((float *)zq.scale)[0] == 1.0f && ((uint8_t *)zq.data)[3] == 0, "zero row");
    /* same dtype copy of another shape with the same numel */
    au_tensor flat = MK(AU_F32, N);
    CHECK_OK(be_copy(be, &flat, &x, &err));
    CHECK(memcmp(flat.data, x.data, (size_t)N * 4) == 0, "f32 copy");
    au_tensor hb = MK(AU_BF16, n, dim);
    CHECK_OK(be_fill(be, &hb, 0.1f, &err));
    CHECK(((uint16_t *)hb.data)[N - 1] == au_f32_to_bf16(0.1f), "fill bf16");
    /* every f16 code decodes like au_f16_to_f32 (vector path: normals, subnormals, inf, NaN) */
    au_tensor all16 = MK(AU_F16, 65536), all32 = MK(AU_F32, 65536);
    for (int i = 0; i < 65536; i++)
        ((uint16_t *)all16.data)[i] = (uint16_t)i;
    CHECK_OK(be_copy(be, &all32, &all16, &err));
    bad = 0;
    for (int i = 0; i < 65536; i++) {
        float want = au_f16_to_f32((uint16_t)i), got = ((float *)all32.data)[i];
        bad += isnan(want) ? !isnan(got) : memcmp(&want, &got, 4) != 0;
    }
    CHECK(bad == 0, "f16 -> f32: %d of 65536 codes differ", bad);
    au_tensor small = MK(AU_F32, 3);
    CHECK(be_copy(be, &small, &x, &err) == AU_EINVAL && strstr(err.msg, "copy"), "copy size mismatch: %s",
          err.msg);
    au_tensor i32 = MK(AU_I32, n, dim);
    CHECK(be_copy(be, &i32, &x, &err) == AU_EINVAL, "f32 -> i32 refused");
    free(ref);
}

static void test_layout(void) {
    au_err err = {0};
    be_arena_reset(test_arena);
    /* patchify: x [C,F,H,W] -> [(f,h,w), (c,kt,kh,kw)] */
    int64_t C = 3, F = 2, H = 6, W = 10;
    int pt = 1, ph = 2, pw = 2;
    au_tensor x = MK(AU_F32, C, F, H, W), p = MK(AU_F32, F * (H / 2) * (W / 2), C * 4);
    CHECK_OK(be_patchify(be, &p, &x, pt, ph, pw, &err));
    const float *xf = x.data, *pf = p.data;
    int bad = 0;
    for (int64_t f = 0; f < F; f++)
        for (int64_t h = 0; h < H / 2; h++)
            for (int64_t w = 0; w < W / 2; w++)
                for (int64_t c = 0; c < C; c++)
                    for (int kh = 0; kh < 2; kh++)
                        for (int kw = 0; kw < 2; kw++) {
                            int64_t tok = (f * (H / 2) + h) * (W / 2) + w, col = (c * 2 + kh) * 2 + kw;
                            bad +=
                                pf[tok * C * 4 + col] != xf[((c * F + f) * H + 2 * h + kh) * W + 2 * w + kw];
                        }
    CHECK(bad == 0, "patchify: %d elements misplaced", bad);
    /* unpatchify: columns (kt,kh,kw,c) */
    au_tensor u = MK(AU_F32, C, F * 2, H, W), tok = MK(AU_F32, F * (H / 2) * (W / 2), 2 * 2 * 2 * C);
    CHECK_OK(be_unpatchify(be, &u, &tok, 2, 2, 2, &err));
    bad = 0;
    const float *tf = tok.data, *uf = u.data;
    for (int64_t f = 0; f < F; f++)
        for (int64_t h = 0; h < H / 2; h++)
            for (int64_t w = 0; w < W / 2; w++)
                for (int kt = 0; kt < 2; kt++)
                    for (int kh = 0; kh < 2; kh++)
                        for (int kw = 0; kw < 2; kw++)
                            for (int64_t c = 0; c < C; c++) {
                                int64_t t = (f * (H / 2) + h) * (W / 2) + w,
                                        col = ((kt * 2 + kh) * 2 + kw) * C + c;
                                bad += uf[((c * F * 2 + 2 * f + kt) * H + 2 * h + kh) * W + 2 * w + kw] !=
                                       tf[t * 8 * C + col];
                            }
    CHECK(bad == 0, "unpatchify: %d elements misplaced", bad);
    au_tensor pbad = MK(AU_F32, 7, C * 4);
    CHECK(be_patchify(be, &pbad, &x, 1, 2, 2, &err) == AU_EINVAL && strstr(err.msg, "patchify"),
          "patchify shape: %s", err.msg);
    CHECK(be_patchify(be, &p, &x, 1, 4, 2, &err) == AU_EINVAL, "patch must divide H");

    /* transpose, odd sizes, bf16 */
    au_tensor a = MK(AU_BF16, 37, 53), at = MK(AU_BF16, 53, 37);
    for (int i = 0; i < 37 * 53; i++)
        ((uint16_t *)a.data)[i] = (uint16_t)(i * 7);
    CHECK_OK(be_transpose(be, &at, &a, &err));
    bad = 0;
    for (int i = 0; i < 37; i++)
        for (int j = 0; j < 53; j++)
            bad += ((uint16_t *)at.data)[j * 37 + i] != ((uint16_t *)a.data)[i * 53 + j];
    CHECK(bad == 0, "transpose");
    CHECK(be_transpose(be, &a, &a, &err) == AU_EINVAL, "transpose aliasing / shape refused");

    /* swap01: odd sizes, rest of 0, 1 and 2 dims, outputs poisoned first */
    {
        static const int64_t shapes[3][4] = {{7, 9, 0, 0}, {3, 5, 7, 0}, {5, 3, 2, 3}};
        static const au_dtype dts[3] = {AU_F32, AU_BF16, AU_F32};
        for (int s = 0; s < 3; s++) {
            int nd = shapes[s][2] == 0 ? 2 : (shapes[s][3] == 0 ? 3 : 4);
            int64_t ys[4] = {shapes[s][1], shapes[s][0], shapes[s][2], shapes[s][3]};
            au_tensor sx = mk(dts[s], nd, shapes[s]), sy = mk(dts[s], nd, ys);
            int64_t n = au_numel(&sx), A = shapes[s][0], B = shapes[s][1], rest = n / (A * B);
            size_t esz = au_dtype_size(dts[s]);
            for (int64_t i = 0; i < n; i++) /* distinct bit patterns */
                memcpy((char *)sx.data + i * esz, &(uint32_t){(uint32_t)(i * 2654435761u + 1)}, esz);
            memset(sy.data, 0xff, au_nbytes(&sy));
            CHECK_OK(be_swap01(be, &sy, &sx, &err));
            bad = 0;
            for (int64_t a = 0; a < A; a++)
                for (int64_t b = 0; b < B; b++)
                    bad += memcmp((char *)sy.data + (size_t)((b * A + a) * rest) * esz,
                                  (char *)sx.data + (size_t)((a * B + b) * rest) * esz,
                                  (size_t)rest * esz) != 0;
            CHECK(bad == 0, "swap01 %s %dd: %d blocks misplaced", au_dtype_name(dts[s]), nd, bad);
        }
        au_tensor sx = MK(AU_F32, 3, 5, 7), wrong = MK(AU_F32, 5, 3, 6);
        CHECK(be_swap01(be, &wrong, &sx, &err) == AU_EINVAL && strstr(err.msg, "swap01"), "swap01 shape: %s",
              err.msg);
        au_tensor sq = MK(AU_F32, 4, 4, 2), sq2 = sq;
        CHECK(be_swap01(be, &sq2, &sq, &err) == AU_EINVAL && strstr(err.msg, "alias"), "swap01 in place: %s",
              err.msg);
        au_tensor f8x = MK(AU_F8_E4M3, 3, 5, 7), f8y = MK(AU_F8_E4M3, 5, 3, 7);
        CHECK(be_swap01(be, &f8y, &f8x, &err) == AU_EINVAL && strstr(err.msg, "f8"), "swap01 f8: %s",
              err.msg);
        au_tensor by = MK(AU_BF16, 5, 3, 7);
        CHECK(be_swap01(be, &by, &sx, &err) == AU_EINVAL, "swap01 dtype change refused");
        au_tensor one = MK(AU_F32, 6), one_y = MK(AU_F32, 6);
        CHECK(be_swap01(be, &one_y, &one, &err) == AU_EINVAL, "swap01 of a 1-D tensor refused");
    }

    /* concat and slice along each dim of a 3-D tensor, slice back */
    for (int dim = 0; dim < 3; dim++) {
        int64_t sa[3] = {3, 4, 5}, sb[3] = {3, 4, 5}, sy[3] = {3, 4, 5};
        sb[dim] = 2;
        sy[dim] = sa[dim] + 2;
        au_tensor ta = mk(AU_F32, 3, sa), tb = mk(AU_F32, 3, sb), ty = mk(AU_F32, 3, sy);
        CHECK_OK(be_concat(be, &ty, &ta, &tb, dim, &err));
        bad = 0;
        for (int64_t i = 0; i < sy[0]; i++)
            for (int64_t j = 0; j < sy[1]; j++)
                for (int64_t k = 0; k < sy[2]; k++) {
                    int64_t idx[3] = {i, j, k};
                    float want;
                    if (idx[dim] < sa[dim])
                        want = ((float *)ta.data)[(i * sa[1] + j) * sa[2] + k];
                    else {
                        idx[dim] -= sa[dim];
                        want = ((float *)tb.data)[(idx[0] * sb[1] + idx[1]) * sb[2] + idx[2]];
                    }
                    bad += ((float *)ty.data)[(i * sy[1] + j) * sy[2] + k] != want;
                }
        CHECK(bad == 0, "concat dim %d", dim);
        au_tensor sl = mk(AU_F32, 3, sb);
        CHECK_OK(be_slice(be, &sl, &ty, dim, sa[dim], &err));
        CHECK(memcmp(sl.data, tb.data, au_nbytes(&tb)) == 0, "slice dim %d returns b", dim);
        CHECK(be_slice(be, &sl, &ty, dim, sa[dim] + 1, &err) == AU_EINVAL && strstr(err.msg, "slice"),
              "slice past the end: %s", err.msg);
        CHECK(be_concat(be, &ty, &ta, &ta, dim, &err) == AU_EINVAL && strstr(err.msg, "concat"),
              "concat sizes: %s", err.msg);
    }

    /* upsample2x and time_interleave */
    au_tensor s = MK(AU_F32, 3, 2, 5, 7), up = MK(AU_F32, 3, 2, 10, 14);
    CHECK_OK(be_upsample2x(be, &up, &s, &err));
    bad = 0;
    for (int64_t c = 0; c < 6; c++)
        for (int64_t i = 0; i < 10; i++)
            for (int64_t j = 0; j < 14; j++)
                bad += ((float *)up.data)[(c * 10 + i) * 14 + j] !=
                       ((float *)s.data)[(c * 5 + i / 2) * 7 + j / 2];
    CHECK(bad == 0, "upsample2x");
    au_tensor ti = MK(AU_F32, 6, 3, 2, 5), to = MK(AU_F32, 3, 6, 2, 5);
    CHECK_OK(be_time_interleave(be, &to, &ti, &err));
    bad = 0;
    for (int64_t c = 0; c < 3; c++)
        for (int64_t t = 0; t < 3; t++)
            for (int i = 0; i < 2; i++)
                for (int64_t e = 0; e < 10; e++)
                    bad += ((float *)to.data)[(c * 6 + 2 * t + i) * 10 + e] !=
                           ((float *)ti.data)[((i * 3 + c) * 3 + t) * 10 + e];
    CHECK(bad == 0, "time_interleave");
    CHECK(be_time_interleave(be, &ti, &to, &err) == AU_EINVAL && strstr(err.msg, "time_interleave"),
          "time_interleave shape: %s", err.msg);
    au_tensor hb = MK(AU_BF16, 3, 2, 10, 14);
    CHECK(be_upsample2x(be, &hb, &s, &err) == AU_EINVAL && strstr(err.msg, "dtype"), "dtype mismatch: %s",
          err.msg);

    /* to_rgb8: planes [3, T, H, W] to interleaved bytes, clamped, NaN as -1 */
    au_tensor planes = MK(AU_F32, 3, 4, 3, 5), rgb = MK(AU_U8, 4, 3, 5, 3);
    float *pv = planes.data;
    for (int64_t i = 0; i < au_numel(&planes); i++)
        pv[i] = -1.25f + 2.5f * (float)i / (float)au_numel(&planes);
    pv[7] = NAN, pv[8] = -1.0f, pv[9] = 1.0f, pv[10] = 0.0f;
    CHECK_OK(be_to_rgb8(be, &rgb, &planes, &err));
    bad = 0;
    for (int64_t t = 0; t < 4; t++)
        for (int64_t px = 0; px < 15; px++)
            for (int c = 0; c < 3; c++) {
                float v = pv[(c * 4 + t) * 15 + px];
                int want = isnan(v) || v <= -1.0f ? 0 : v >= 1.0f ? 255 : (int)((v + 1.0f) * 127.5f);
                bad += ((uint8_t *)rgb.data)[(t * 15 + px) * 3 + c] != want;
            }
    CHECK(bad == 0, "to_rgb8: %d bytes wrong", bad);
    CHECK(((uint8_t *)rgb.data)[(0 * 15 + 10) * 3] == 127, "to_rgb8: 0 -> 127");
    au_tensor rgb4 = MK(AU_U8, 4, 3, 5, 4);
    CHECK(be_to_rgb8(be, &rgb4, &planes, &err) == AU_EINVAL && strstr(err.msg, "to_rgb8"), "to_rgb8 shape: %s",
          err.msg);
}

int main(void) {
    au_err err = {0};
    if (be_cpu_create(&be, 3, &err) < 0) {
        fprintf(stderr, "be_cpu_create: %s\n", err.msg);
        return 1;
    }
    CHECK(be->act_dtype == AU_F32 && be->gemm_in_dtype == AU_F32 && strcmp(be->ops->name, "cpu") == 0,
          "cpu backend computes in f32");
    test_arena = be_arena_create(be, 16 << 20);
    test_weights();
    test_embed();
    test_layernorm();
    test_rmsnorm();
    test_rmsnorm_channels();
    test_rope();
    test_elementwise();
    test_copy();
    test_layout();
    be_arena_destroy(test_arena);
    be_destroy(be);
    if (failures) {
        fprintf(stderr, "test_cpu_ops: %d failures\n", failures);
        return 1;
    }
    printf("test_cpu_ops: ok\n");
    return 0;
}
