// deps: au_cuda au_cpu au_core
/* test_cuda_norm_rope.c - the fused rmsnorm_rope op (the DiT's q and k: RMSNorm over the whole
 * row, then 3-D RoPE per head, one pass) on the CUDA backend against the float32 CPU backend,
 * which composes rmsnorm and rope: the DiT widths (1536, 5120) on the register path in bf16 and
 * f32, in place and not, with and without a gain; a width that takes the two-op fallback; a
 * bad cossin refused with the op's name. Outputs are poisoned first (test_cuda_util.h).
 */
#include "test_cuda_util.h"

/* cossin [n, D/2, 2] of random angles on both backends */
static pair angles(tctx *T, int64_t n, int D) {
    pair cs = in_pair(T, AU_F32, SHAPE(n, D / 2, 2), 1.0f);
    for (int64_t j = 0; j < n * (D / 2); j++) {
        float a = 3.14159265f * rng_f();
        cs.host[2 * j] = cosf(a);
        cs.host[2 * j + 1] = sinf(a);
    }
    gpu_put(T, &cs.g, cs.host);
    return cs;
}

static void run_all(tctx *T) {
    static const struct {
        int64_t n;
        int H, D;
        au_dtype dt;
        int in_place, gain;
    } cases[] = {
        {37, 12, 128, AU_BF16, 1, 1}, /* 1.3B q/k, register path */
        {5, 40, 128, AU_BF16, 0, 1},  /* 14B width */
        {19, 12, 128, AU_F32, 1, 1},  /* f32 rows */
        {7, 4, 128, AU_BF16, 0, 0},   /* no gain */
        {10, 3, 64, AU_F32, 1, 1},    /* width 192: rmsnorm then rope */
        {3, 2, 6, AU_BF16, 0, 1},     /* odd pairs per head: rmsnorm then rope */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t n = cases[i].n, row = (int64_t)cases[i].H * cases[i].D;
        pair x = in_pair(T, cases[i].dt, SHAPE(n, row), 2.0f);
        pair w = in_pair(T, AU_F32, SHAPE(row), 1.0f);
        pair cs = angles(T, n, cases[i].D);
        pair y = cases[i].in_place ? x : out_pair(T, cases[i].dt, SHAPE(n, row));
        const au_tensor *wg = cases[i].gain ? &w.g : NULL, *wc = cases[i].gain ? &w.c : NULL;
        au_err err = {0};
        CHECK(be_rmsnorm_rope(T->gpu, &y.g, &x.g, wg, 1e-6f, &cs.g, cases[i].H, &err) == 0, "%s", err.msg);
        MUST(be_rmsnorm_rope(T->cpu, &y.c, &x.c, wc, 1e-6f, &cs.c, cases[i].H, err));
        char what[96];
        snprintf(what, sizeof what, "rmsnorm_rope %lld x %d heads of %d, %s%s%s", (long long)n, cases[i].H,
                 cases[i].D, au_dtype_name(cases[i].dt), cases[i].in_place ? " in place" : "",
                 cases[i].gain ? "" : ", no gain");
        compare(T, what, &y, 0);
    }
    /* cossin for the wrong number of tokens */
    {
        pair x = in_pair(T, AU_BF16, SHAPE(4, 256), 1.0f), cs = angles(T, 3, 128);
        au_err err = {0};
        int rc = be_rmsnorm_rope(T->gpu, &x.g, &x.g, NULL, 1e-6f, &cs.g, 2, &err);
        CHECK(rc == AU_EINVAL && strstr(err.msg, "rmsnorm_rope"), "bad cossin: rc %d, %s", rc, err.msg);
    }
}

int main(void) {
    return run_precisions(run_all);
}
