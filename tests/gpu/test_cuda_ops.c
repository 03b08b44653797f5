// deps: au_cuda au_cpu au_core
/* test_cuda_ops.c - the CUDA backend's compute ops against the float32 CPU backend:
 * weight loading, linear (FP8, bf16 and float32 routes, every output dtype, bias and
 * activations), attention (head_dim 128 and 64 on the fast kernel, 384, 32 and 36 on the
 * generic one, with and without bias; on the FP8 precision, head_dim 128 over 1024 keys or more
 * on the 8-bit kernel), conv3d (3x3x3 causal padding, strided, 1x1x1,
 * odd K), LayerNorm/RMSNorm with modulation and fused f8 output, the VAE channel norm,
 * rope and embed; then that a repeated op allocates no scratch and that bad arguments
 * fail naming the op. Inputs are fresh random values each run (see test_cuda_util.h).
 */
#include "test_cuda_util.h"

/* A weight loaded by the GPU backend from a bf16 (or f32) host tensor; the CPU gets the
 * values the GPU stored, as a float32 weight, so the comparison measures the op. */
static pair weight_pair(tctx *T, au_weight_kind kind, au_dtype file_dt, int ndim, const int64_t *shape, float amp) {
    pair p;
    au_tensor file = au_tensor_make(file_dt, NULL, ndim, shape);
    int64_t n = au_numel(&file);
    float *v = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = amp * rng_f();
    file.data = xmalloc(au_nbytes(&file));
    MUST(au_convert_from_f32(file.data, file_dt, v, n));
    size_t want = T->gpu->ops->weight_bytes(T->gpu, &file, kind), before = be_arena_used(T->gpu_arena);
    MUST(T->gpu->ops->weight_load(T->gpu, T->gpu_arena, &file, NULL, kind, &p.g, err));
    size_t used = be_arena_used(T->gpu_arena) - before;
    CHECK(used == want, "[%s] weight_bytes %zu but weight_load used %zu", T->name, want, used);
    p.host = gpu_get(T, &p.g);
    if (kind == AU_W_MATRIX && p.g.dtype == AU_F8_E4M3) { /* the device quantized like the host rule */
        float *expect = xmalloc((size_t)n * sizeof(float));
        au_convert_to_f32(expect, file.data, file_dt, n);
        round_to(expect, n, shape[0], AU_F8_E4M3);
        int64_t diff = 0;
        for (int64_t i = 0; i < n; i++)
            diff += expect[i] != p.host[i];
        CHECK(diff == 0, "[%s] device f8 weight quantization differs from the host rule in %lld of %lld", T->name,
              (long long)diff, (long long)n);
        free(expect);
    }
    float *keepv = kept((size_t)n * sizeof(float));
    memcpy(keepv, p.host, (size_t)n * sizeof(float));
    free(p.host);
    p.host = keepv;
    au_tensor host = au_tensor_make(AU_F32, keepv, ndim, shape);
    MUST(T->cpu->ops->weight_load(T->cpu, T->cpu_arena, &host, NULL, AU_W_F32, &p.c, err));
    free(file.data);
    free(v);
    return p;
}

static const char *dt_name(au_dtype d) { return au_dtype_name(d); }
static const char *act_name(au_act a) { return a == AU_ACT_GELU_TANH ? "gelu" : (a == AU_ACT_SILU ? "silu" : "none"); }

/* ---- linear ---- */

typedef struct lin_case {
    int64_t n, in, out;
    int x_gemm_in; /* x in be->gemm_in_dtype (else x_dt) */
    au_dtype x_dt;
    int y_gemm_in;
    au_dtype y_dt;
    int bias;
    au_act act;
    au_weight_kind wk;
} lin_case;

static void test_linear(tctx *T) {
    static const lin_case cases[] = {
        {37, 64, 48, 1, AU_BF16, 0, AU_BF16, 1, AU_ACT_NONE, AU_W_MATRIX},
        {37, 64, 48, 1, AU_BF16, 1, AU_BF16, 1, AU_ACT_GELU_TANH, AU_W_MATRIX},
        {128, 256, 96, 0, AU_BF16, 0, AU_BF16, 1, AU_ACT_GELU_TANH, AU_W_MATRIX},
        {128, 256, 96, 0, AU_F32, 0, AU_F32, 0, AU_ACT_SILU, AU_W_MATRIX},
        {5, 40, 24, 0, AU_BF16, 0, AU_BF16, 1, AU_ACT_NONE, AU_W_MATRIX},
        {77, 72, 40, 1, AU_BF16, 1, AU_BF16, 0, AU_ACT_SILU, AU_W_MATRIX},
        {200, 512, 320, 1, AU_BF16, 1, AU_BF16, 1, AU_ACT_GELU_TANH, AU_W_MATRIX},
        {263, 256, 136, 1, AU_BF16, 0, AU_F32, 1, AU_ACT_NONE, AU_W_MATRIX},
        {1, 256, 1536, 0, AU_F32, 0, AU_F32, 1, AU_ACT_SILU, AU_W_F32},
        {300, 256, 64, 0, AU_F32, 0, AU_F32, 1, AU_ACT_NONE, AU_W_F32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const lin_case *c = &cases[i];
        au_dtype xd = c->x_gemm_in ? T->gpu->gemm_in_dtype : c->x_dt;
        au_dtype yd = c->y_gemm_in ? T->gpu->gemm_in_dtype : c->y_dt;
        pair w = weight_pair(T, c->wk, AU_BF16, SHAPE(c->out, c->in), 0.5f);
        pair x = in_pair(T, xd, SHAPE(c->n, c->in), 1.0f);
        pair b = in_pair(T, AU_F32, SHAPE(c->out), 0.5f);
        pair y = out_pair(T, yd, SHAPE(c->n, c->out));
        /* the FP8 route quantizes x per row like the host rule: the reference sees that x */
        if (w.g.dtype == AU_F8_E4M3 && c->in % 16 == 0)
            round_to(x.host, c->n * c->in, c->n, AU_F8_E4M3);
        au_err err = {0};
        int rc = be_linear(T->gpu, &y.g, &x.g, &w.g, c->bias ? &b.g : NULL, c->act, &err);
        CHECK(rc == 0, "[%s] linear case %zu: %s", T->name, i, err.msg);
        MUST(be_linear(T->cpu, &y.c, &x.c, &w.c, c->bias ? &b.c : NULL, c->act, err));
        char what[160];
        snprintf(what, sizeof what, "linear %lldx%lld.%lldx%lld w %s x %s -> %s%s %s", (long long)c->n,
                 (long long)c->in, (long long)c->out, (long long)c->in, dt_name(w.g.dtype), dt_name(xd), dt_name(yd),
                 c->bias ? " +b" : "", act_name(c->act));
        double tol = w.g.dtype == AU_F32 && xd == AU_F32 ? TOL_F32 : (yd == AU_F8_E4M3 ? TOL_F8 : TOL_BF16);
        compare(T, what, &y, tol);
    }
    be_cuda_stats st;
    MUST(be_cuda_get_stats(T->gpu, &st, err));
    printf("  gemm routes: %llu fused in cuBLASLt, %llu with our epilogue, %llu f8 run as bf16\n",
           (unsigned long long)st.gemm_fused, (unsigned long long)st.gemm_epilogue,
           (unsigned long long)st.gemm_f8_as_bf16);
}

/* ---- attention ---- */

typedef struct attn_case {
    int64_t nq, nk;
    int H, D, bias;
    float scale; /* 0: 1/sqrt(D) */
    int out_gemm_in;
    au_dtype out_dt, in_dt;
    int64_t copies; /* of the last key row (last_key_copies) */
} attn_case;

/* The FP8 precision runs attention with head_dim 128, no bias and at least 1024 keys on the 8-bit
 * kernel (cuda_attention_fp8.cu: int8 Q K^T, e4m3 P V), which quantizes q, k, v and P itself: its
 * error against the float32 reference is the formats' (e4m3 rounding costs ~2.6% rms per value,
 * P and V each pass that on: ~3.5-4% in l2 on these incoherent random inputs), so those cases
 * have their own tolerance, and with an f8 output that output's own rounding on top. */
#define TOL_F8_ATTN 5e-2
#define TOL_F8_ATTN_F8_OUT 6e-2
static int attn_fp8_route(const tctx *T, const attn_case *c) {
    return T->gpu->gemm_in_dtype == AU_F8_E4M3 && c->D == 128 && !c->bias && c->copies == 1 &&
           c->nk >= 1024; /* CUDA_ATTN_FP8_MIN_KEYS */
}

/* max |got - ref| / max |ref| and mean |got - ref| / mean |ref| of an attention output, printed
 * beside compare()'s l2 figure. */
static void attn_err_stats(tctx *T, const char *what, const pair *o) {
    int64_t n = au_numel(&o->c);
    float *got = gpu_get(T, &o->g);
    const float *ref = o->c.data;
    double max_err = 0, max_ref = 0, sum_err = 0, sum_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]), r = fabs((double)ref[i]);
        max_err = e > max_err ? e : max_err;
        max_ref = r > max_ref ? r : max_ref;
        sum_err += e;
        sum_ref += r;
    }
    printf("       [%s] %-58s max %.2e mean %.2e\n", T->name, what, max_ref > 0 ? max_err / max_ref : max_err,
           sum_ref > 0 ? sum_err / sum_ref : sum_err);
    free(got);
}

/* Each case runs on T->gpu (default kernel variant, 32 queries per warp) and on a second
 * backend with 16 queries per warp, the other flash-kernel variant (both on the 8-bit kernel too). */
static void test_attention(tctx *T) {
    au_backend *alt;
    be_cuda_opts ao = {0, T->gpu->gemm_in_dtype == AU_F8_E4M3 ? BE_CUDA_FP8 : BE_CUDA_BF16};
    MUST(be_cuda_create(&alt, &ao, err));
    MUST(be_cuda_set_attention_variant(alt, 16, err));
    au_err verr = {0};
    CHECK(be_cuda_set_attention_variant(alt, 24, &verr) == AU_EINVAL, "attention variant 24 accepted");
    static const attn_case cases[] = {
        {300, 300, 2, 128, 0, 0, 0, AU_BF16, AU_BF16, 1}, {77, 513, 3, 128, 0, 0, 1, AU_BF16, AU_BF16, 1},
        {130, 70, 4, 64, 1, 1.0f, 0, AU_BF16, AU_BF16, 1}, {130, 70, 4, 64, 0, 0, 0, AU_F32, AU_F32, 1},
        {50, 45, 1, 384, 0, 0, 0, AU_BF16, AU_BF16, 1},    {33, 17, 2, 32, 1, 1.0f, 1, AU_BF16, AU_BF16, 1},
        {9, 11, 2, 36, 0, 0, 0, AU_F32, AU_BF16, 1},       {1, 1, 1, 128, 0, 0, 0, AU_BF16, AU_BF16, 1},
        /* the DiT's cross-attention shape: 512 text keys into the gemm input (bf16 kernel) */
        {500, 512, 4, 128, 0, 0, 1, AU_BF16, AU_BF16, 1},
        /* 1024 keys and more: the 8-bit kernel on the FP8 precision (partial key tiles, partial
         * query blocks, f8 and f32 outputs, f32 inputs, sharper softmax, long key loops) */
        {200, 1100, 2, 128, 0, 0, 0, AU_BF16, AU_BF16, 1}, {1031, 1031, 3, 128, 0, 0, 1, AU_BF16, AU_BF16, 1},
        {130, 2500, 1, 128, 0, 0, 0, AU_F32, AU_F32, 1},   {257, 1500, 2, 128, 0, 0.5f, 0, AU_BF16, AU_BF16, 1},
        {5, 4100, 1, 128, 0, 0, 0, AU_BF16, AU_BF16, 1},   {64, 8192, 1, 128, 0, 0, 0, AU_BF16, AU_BF16, 1},
        /* the last key row counted several times (the DiT's text padding, checked against rows
         * written out on the CPU backend's own test): in a partial and in a full last tile, alone,
         * on the generic kernel with a bias, and past 1024 keys (the bf16 kernel then) */
        {500, 78, 4, 128, 0, 0, 1, AU_BF16, AU_BF16, 435}, {130, 64, 2, 128, 0, 0, 0, AU_BF16, AU_BF16, 449},
        {77, 1, 2, 64, 0, 0, 0, AU_F32, AU_BF16, 511},     {33, 9, 2, 36, 1, 1.0f, 0, AU_BF16, AU_BF16, 7},
        {200, 1100, 2, 128, 0, 0, 1, AU_BF16, AU_BF16, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const attn_case *c = &cases[i];
        int64_t HD = (int64_t)c->H * c->D;
        au_dtype od = c->out_gemm_in ? T->gpu->gemm_in_dtype : c->out_dt;
        pair q = in_pair(T, c->in_dt, SHAPE(c->nq, HD), 1.0f);
        pair k = in_pair(T, c->in_dt, SHAPE(c->nk, HD), 1.0f);
        pair v = in_pair(T, c->in_dt, SHAPE(c->nk, HD), 1.0f);
        pair bias = in_pair(T, AU_F32, SHAPE(c->H, c->nq, c->nk), 2.0f);
        pair o = out_pair(T, od, SHAPE(c->nq, HD));
        float scale = c->scale > 0 ? c->scale : 1.0f / sqrtf((float)c->D);
        const int64_t copies = c->copies;
        MUST(be_attention(T->cpu, &o.c, &q.c, &k.c, &v.c, c->H, scale, c->bias ? &bias.c : NULL, copies, err));
        for (int variant = 0; variant < 2; variant++) {
            au_err err = {0};
            poison(T, &o.g);
            int rc = be_attention(variant ? alt : T->gpu, &o.g, &q.g, &k.g, &v.g, c->H, scale,
                                  c->bias ? &bias.g : NULL, copies, &err);
            CHECK(rc == 0, "[%s] attention case %zu: %s", T->name, i, err.msg);
            if (variant)
                MUST(be_sync(alt, err));
            char what[160];
            char copies_txt[32] = "";
            if (copies > 1)
                snprintf(copies_txt, sizeof copies_txt, " (last x%lld)", (long long)copies);
            snprintf(what, sizeof what, "attention%s%s nq %lld nk %lld%s H %d D %d%s %s -> %s",
                     variant ? "/16" : "", attn_fp8_route(T, c) ? " 8-bit" : "", (long long)c->nq, (long long)c->nk,
                     copies_txt, c->H, c->D, c->bias ? " +bias" : "", dt_name(c->in_dt), dt_name(od));
            double tol = od == AU_F8_E4M3 ? TOL_F8 : TOL_BF16;
            if (attn_fp8_route(T, c))
                tol = od == AU_F8_E4M3 ? TOL_F8_ATTN_F8_OUT : TOL_F8_ATTN;
            compare(T, what, &o, tol);
            attn_err_stats(T, what, &o);
        }
    }
    be_destroy(alt);
}

/* ---- conv3d ---- */

typedef struct conv_case {
    int64_t cin, t, h, w, cout;
    int kt, kh, kw;
    int stride[3], pad[6];
    au_dtype x_dt, y_dt;
    int bias;
} conv_case;

static int64_t conv_out(int64_t in, int k, int s, int p0, int p1) { return (in + p0 + p1 - k) / s + 1; }

static void test_conv3d(tctx *T) {
    static const conv_case cases[] = {
        {8, 4, 9, 11, 12, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, 1},
        {8, 3, 9, 11, 8, 1, 3, 3, {1, 2, 2}, {0, 0, 0, 1, 0, 1}, AU_BF16, AU_BF16, 1},
        {16, 2, 5, 7, 24, 1, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, 1},
        {3, 5, 6, 6, 8, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, AU_F32, AU_F32, 0},
        {8, 5, 4, 4, 16, 3, 1, 1, {2, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        int64_t to = conv_out(c->t, c->kt, c->stride[0], c->pad[0], c->pad[1]);
        int64_t ho = conv_out(c->h, c->kh, c->stride[1], c->pad[2], c->pad[3]);
        int64_t wo = conv_out(c->w, c->kw, c->stride[2], c->pad[4], c->pad[5]);
        pair w = weight_pair(T, AU_W_MATRIX, AU_BF16, SHAPE(c->cout, c->cin, c->kt, c->kh, c->kw), 0.3f);
        pair x = in_pair(T, c->x_dt, SHAPE(c->cin, c->t, c->h, c->w), 1.0f);
        pair b = in_pair(T, AU_F32, SHAPE(c->cout), 0.5f);
        pair y = out_pair(T, c->y_dt, SHAPE(c->cout, to, ho, wo));
        au_err err = {0};
        int rc = be_conv3d(T->gpu, &y.g, &x.g, &w.g, c->bias ? &b.g : NULL, c->stride, c->pad, &err);
        CHECK(rc == 0, "[%s] conv3d case %zu: %s", T->name, i, err.msg);
        MUST(be_conv3d(T->cpu, &y.c, &x.c, &w.c, c->bias ? &b.c : NULL, c->stride, c->pad, err));
        char what[160];
        snprintf(what, sizeof what, "conv3d x [%lld,%lld,%lld,%lld] k %dx%dx%d s %d%d%d -> %lld, %s -> %s",
                 (long long)c->cin, (long long)c->t, (long long)c->h, (long long)c->w, c->kt, c->kh, c->kw,
                 c->stride[0], c->stride[1], c->stride[2], (long long)c->cout, dt_name(c->x_dt), dt_name(c->y_dt));
        compare(T, what, &y, TOL_BF16);
    }
}

/* ---- norms, rope, embed ---- */

static void test_norms(tctx *T) {
    char what[160];
    au_dtype gi = T->gpu->gemm_in_dtype;
    /* DiT norm1/norm2: LN(x) (1 + scale) + shift, f32 residual into the gemm input; 256 takes
     * the generic row kernel, 1536 the registers one */
    static const int64_t dims[2] = {256, 1536};
    for (int i = 0; i < 2; i++) {
        int64_t d = dims[i];
        pair x = in_pair(T, AU_F32, SHAPE(37, d), 3.0f);
        pair sh = in_pair(T, AU_F32, SHAPE(d), 0.5f), sc = in_pair(T, AU_F32, SHAPE(d), 0.5f);
        pair y = out_pair(T, gi, SHAPE(37, d));
        au_err err = {0};
        CHECK(be_layernorm(T->gpu, &y.g, &x.g, NULL, NULL, &sh.g, &sc.g, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_layernorm(T->cpu, &y.c, &x.c, NULL, NULL, &sh.c, &sc.c, 1e-6f, err));
        snprintf(what, sizeof what, "layernorm modulated f32 [37,%lld] -> %s", (long long)d, dt_name(gi));
        compare(T, what, &y, 0);
    }
    /* norm3: affine LN, float32 throughout */
    {
        pair x = in_pair(T, AU_F32, SHAPE(19, 1536), 2.0f);
        pair w = in_pair(T, AU_F32, SHAPE(1536), 1.0f), b = in_pair(T, AU_F32, SHAPE(1536), 0.5f);
        pair sh = in_pair(T, AU_F32, SHAPE(1536), 0.5f), sc = in_pair(T, AU_F32, SHAPE(1536), 0.5f);
        pair y = out_pair(T, AU_F32, SHAPE(19, 1536));
        au_err err = {0};
        CHECK(be_layernorm(T->gpu, &y.g, &x.g, &w.g, &b.g, &sh.g, &sc.g, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_layernorm(T->cpu, &y.c, &x.c, &w.c, &b.c, &sh.c, &sc.c, 1e-6f, err));
        compare(T, "layernorm affine + modulation f32 -> f32", &y, 0);
    }
    /* in place on bf16 */
    {
        pair x = in_pair(T, AU_BF16, SHAPE(7, 320), 2.0f);
        pair w = in_pair(T, AU_F32, SHAPE(320), 1.0f);
        au_err err = {0};
        CHECK(be_layernorm(T->gpu, &x.g, &x.g, &w.g, NULL, NULL, NULL, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_layernorm(T->cpu, &x.c, &x.c, &w.c, NULL, NULL, NULL, 1e-6f, err));
        compare(T, "layernorm in place bf16", &x, 0);
    }
    /* q/k RMSNorm in place on bf16, the UMT5 pre-norm into the gemm input, f32 */
    for (int i = 0; i < 2; i++) {
        int64_t d = dims[i];
        pair x = in_pair(T, AU_BF16, SHAPE(37, d), 2.0f);
        pair w = in_pair(T, AU_F32, SHAPE(d), 1.0f);
        au_err err = {0};
        CHECK(be_rmsnorm(T->gpu, &x.g, &x.g, &w.g, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm(T->cpu, &x.c, &x.c, &w.c, 1e-6f, err));
        snprintf(what, sizeof what, "rmsnorm in place bf16 [37,%lld]", (long long)d);
        compare(T, what, &x, 0);
    }
    static const int64_t rdims[2] = {64, 4096};
    for (int i = 0; i < 2; i++) {
        int64_t d = rdims[i];
        pair x = in_pair(T, AU_BF16, SHAPE(19, d), 2.0f);
        pair w = in_pair(T, AU_F32, SHAPE(d), 1.0f);
        pair y = out_pair(T, gi, SHAPE(19, d));
        au_err err = {0};
        CHECK(be_rmsnorm(T->gpu, &y.g, &x.g, &w.g, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm(T->cpu, &y.c, &x.c, &w.c, 1e-6f, err));
        snprintf(what, sizeof what, "rmsnorm bf16 [19,%lld] -> %s", (long long)d, dt_name(gi));
        compare(T, what, &y, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(11, 3000), 2.0f);
        pair y = out_pair(T, AU_F32, SHAPE(11, 3000));
        au_err err = {0};
        CHECK(be_rmsnorm(T->gpu, &y.g, &x.g, NULL, 1e-6f, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm(T->cpu, &y.c, &x.c, NULL, 1e-6f, err));
        compare(T, "rmsnorm f32 -> f32, no weight", &y, 0);
    }
    /* VAE channel norm */
    {
        pair x = in_pair(T, AU_BF16, SHAPE(16, 3, 5, 7), 2.0f);
        pair g = in_pair(T, AU_F32, SHAPE(16), 1.0f);
        pair y = out_pair(T, AU_BF16, SHAPE(16, 3, 5, 7));
        au_err err = {0};
        CHECK(be_rmsnorm_channels(T->gpu, &y.g, &x.g, &g.g, NULL, AU_ACT_SILU, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm_channels(T->cpu, &y.c, &x.c, &g.c, NULL, AU_ACT_SILU, err));
        compare(T, "rmsnorm_channels + SiLU bf16", &y, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(8, 2, 3, 4), 2.0f);
        pair g = in_pair(T, AU_F32, SHAPE(8), 1.0f), b = in_pair(T, AU_F32, SHAPE(8), 1.0f);
        au_err err = {0};
        CHECK(be_rmsnorm_channels(T->gpu, &x.g, &x.g, &g.g, &b.g, AU_ACT_NONE, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm_channels(T->cpu, &x.c, &x.c, &g.c, &b.c, AU_ACT_NONE, err));
        compare(T, "rmsnorm_channels f32 in place, bias", &x, 0);
    }
    /* rope on q/k in place: cossin from random angles */
    {
        static const struct { int64_t n; int H, D; au_dtype dt; } rc[2] = {{37, 2, 128, AU_BF16}, {10, 3, 64, AU_F32}};
        for (int i = 0; i < 2; i++) {
            pair x = in_pair(T, rc[i].dt, SHAPE(rc[i].n, rc[i].H * rc[i].D), 1.0f);
            int64_t half = rc[i].D / 2;
            pair cs = in_pair(T, AU_F32, SHAPE(rc[i].n, half, 2), 1.0f);
            for (int64_t j = 0; j < rc[i].n * half; j++) {
                float a = 3.14159265f * rng_f();
                cs.host[2 * j] = cosf(a);
                cs.host[2 * j + 1] = sinf(a);
            }
            gpu_put(T, &cs.g, cs.host);
            au_err err = {0};
            CHECK(be_rope(T->gpu, &x.g, &cs.g, rc[i].H, &err) == 0, "%s", err.msg);
            MUST(be_rope(T->cpu, &x.c, &cs.c, rc[i].H, err));
            snprintf(what, sizeof what, "rope %d heads of %d, %s in place", rc[i].H, rc[i].D, dt_name(rc[i].dt));
            compare(T, what, &x, 0);
        }
    }
    /* embed from a bf16 table */
    {
        pair tab = weight_pair(T, AU_W_EMBED, AU_BF16, SHAPE(101, 64), 1.0f);
        int32_t ids[13];
        for (int i = 0; i < 13; i++)
            ids[i] = (int32_t)(rng_u32() % 101);
        au_dtype outs[3] = {AU_BF16, AU_F32, gi};
        for (int i = 0; i < 3; i++) {
            pair y = out_pair(T, outs[i], SHAPE(13, 64));
            au_err err = {0};
            CHECK(be_embed(T->gpu, &y.g, &tab.g, ids, 13, &err) == 0, "%s", err.msg);
            MUST(be_embed(T->cpu, &y.c, &tab.c, ids, 13, err));
            snprintf(what, sizeof what, "embed bf16 table -> %s", dt_name(outs[i]));
            compare(T, what, &y, outs[i] == AU_F8_E4M3 ? TOL_F8 : TOL_F32);
        }
    }
}

/* ---- no allocation on repeat; errors ---- */

static void test_steady_and_errors(tctx *T) {
    pair w = weight_pair(T, AU_W_MATRIX, AU_BF16, SHAPE(96, 128), 0.5f);
    pair x = in_pair(T, AU_BF16, SHAPE(64, 128), 1.0f);
    pair y = out_pair(T, T->gpu->gemm_in_dtype, SHAPE(64, 96));
    pair q = in_pair(T, AU_BF16, SHAPE(40, 256), 1.0f), o = out_pair(T, T->gpu->gemm_in_dtype, SHAPE(40, 256));
    be_cuda_stats s0, s1;
    for (int rep = 0; rep < 2; rep++) {
        if (rep == 1)
            MUST(be_cuda_get_stats(T->gpu, &s0, err));
        MUST(be_linear(T->gpu, &y.g, &x.g, &w.g, NULL, AU_ACT_GELU_TANH, err));
        MUST(be_attention(T->gpu, &o.g, &q.g, &q.g, &q.g, 2, 0.1f, NULL, 1, err));
    }
    MUST(be_cuda_get_stats(T->gpu, &s1, err));
    CHECK(s1.scratch_allocs == s0.scratch_allocs, "[%s] repeated ops allocated scratch (%llu -> %llu)", T->name,
          (unsigned long long)s0.scratch_allocs, (unsigned long long)s1.scratch_allocs);

    au_err err = {0};
    pair bad = out_pair(T, AU_BF16, SHAPE(64, 95));
    int rc = be_linear(T->gpu, &bad.g, &x.g, &w.g, NULL, AU_ACT_NONE, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "linear"), "[%s] linear with a wrong y: rc %d, %s", T->name, rc, err.msg);
    rc = be_attention(T->gpu, &q.g, &q.g, &q.g, &q.g, 2, 0.1f, NULL, 1, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "attention"), "[%s] attention out aliasing q: rc %d, %s", T->name, rc,
          err.msg);
    rc = be_attention(T->gpu, &o.g, &q.g, &q.g, &q.g, 3, 0.1f, NULL, 1, &err);
    CHECK(rc == AU_EINVAL, "[%s] attention with 256 columns in 3 heads: rc %d", T->name, rc);
    rc = be_attention(T->gpu, &o.g, &q.g, &q.g, &q.g, 2, 0.1f, NULL, 0, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "last_key_copies"), "[%s] attention with 0 copies: rc %d, %s", T->name,
          rc, err.msg);
    int stride[3] = {1, 1, 1}, pad[6] = {0};
    rc = be_conv3d(T->gpu, &bad.g, &x.g, &w.g, NULL, stride, pad, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "conv3d"), "[%s] conv3d on 2-D tensors: rc %d, %s", T->name, rc, err.msg);
    printf("  ok   [%s] no scratch allocation on repeat; errors name the op\n", T->name);
}

static void run_all(tctx *T) {
    test_linear(T);
    test_attention(T);
    test_conv3d(T);
    test_norms(T);
    test_steady_and_errors(T);
}

int main(void) { return run_precisions(run_all); }
