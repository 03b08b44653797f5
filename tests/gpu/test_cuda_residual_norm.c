// deps: au_cuda au_cpu au_core
/* test_cuda_residual_norm.c - the fused add_gated_layernorm op (the DiT's residual add and the
 * LayerNorm after it, one pass over the float32 residual) on the CUDA backend against the float32
 * CPU backend, which composes add_gated and layernorm: both outputs (the updated residual x and
 * the normalised h) compared, at the DiT widths on the register path with h in f32, bf16 and f8,
 * y in bf16 and f32, with and without gate, affine and modulation; widths and dtypes that take the
 * two-op fallback; an h aliasing x refused with the op's name. Outputs are poisoned first
 * (test_cuda_util.h; x is an input and an output, so it starts from real values).
 */
#include "test_cuda_util.h"

static void run_all(tctx *T) {
    static const struct {
        int64_t n, dim;
        au_dtype x_dt, y_dt, h_dt;
        int gate, affine, mod;
    } cases[] = {
        {37, 1536, AU_F32, AU_BF16, AU_F8_E4M3, 1, 0, 1}, /* self-attn residual before norm1-style LN */
        {29, 1536, AU_F32, AU_BF16, AU_BF16, 1, 1, 0},    /* self-attn residual, norm3 (affine) */
        {11, 5120, AU_F32, AU_BF16, AU_F8_E4M3, 0, 0, 1}, /* 14B cross-attn residual, norm2 */
        {9, 1536, AU_F32, AU_F32, AU_F32, 1, 1, 1},       /* f32 y and h */
        {6, 192, AU_F32, AU_BF16, AU_BF16, 1, 1, 1},      /* width off the register path */
        {5, 512, AU_BF16, AU_BF16, AU_BF16, 1, 0, 1},     /* bf16 residual: fallback */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t n = cases[i].n, dim = cases[i].dim;
        pair x = in_pair(T, cases[i].x_dt, SHAPE(n, dim), 3.0f);
        pair y = in_pair(T, cases[i].y_dt, SHAPE(n, dim), 2.0f);
        pair gate = in_pair(T, AU_F32, SHAPE(dim), 1.0f), w = in_pair(T, AU_F32, SHAPE(dim), 1.0f);
        pair b = in_pair(T, AU_F32, SHAPE(dim), 0.5f), shift = in_pair(T, AU_F32, SHAPE(dim), 0.5f);
        pair scale = in_pair(T, AU_F32, SHAPE(dim), 0.5f);
        pair h = out_pair(T, cases[i].h_dt, SHAPE(n, dim));
        const int g = cases[i].gate, af = cases[i].affine, md = cases[i].mod;
        au_err err = {0};
        int rc = be_add_gated_layernorm(T->gpu, &x.g, &y.g, g ? &gate.g : NULL, &h.g, af ? &w.g : NULL,
                                        af ? &b.g : NULL, md ? &shift.g : NULL, md ? &scale.g : NULL, 1e-6f, &err);
        CHECK(rc == 0, "[%s] add_gated_layernorm case %zu: %s", T->name, i, err.msg);
        MUST(be_add_gated_layernorm(T->cpu, &x.c, &y.c, g ? &gate.c : NULL, &h.c, af ? &w.c : NULL, af ? &b.c : NULL,
                                    md ? &shift.c : NULL, md ? &scale.c : NULL, 1e-6f, err));
        char what[96];
        snprintf(what, sizeof what, "residual %lld x %lld, y %s%s%s%s: x", (long long)n, (long long)dim,
                 au_dtype_name(cases[i].y_dt), g ? ", gate" : "", af ? ", affine" : "", md ? ", modulation" : "");
        compare(T, what, &x, 0);
        snprintf(what, sizeof what, "residual %lld x %lld, then layernorm into %s: h", (long long)n, (long long)dim,
                 au_dtype_name(cases[i].h_dt));
        compare(T, what, &h, 0);
    }
    {
        pair x = in_pair(T, AU_F32, SHAPE(4, 512), 1.0f), y = in_pair(T, AU_BF16, SHAPE(4, 512), 1.0f);
        au_err err = {0};
        int rc = be_add_gated_layernorm(T->gpu, &x.g, &y.g, NULL, &x.g, NULL, NULL, NULL, NULL, 1e-6f, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "add_gated_layernorm"), "[%s] h aliasing x: rc %d, %s", T->name, rc,
              err.msg);
    }
}

int main(void) {
    return run_precisions(run_all);
}
