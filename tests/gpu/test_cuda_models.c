// deps: au_cuda au_umt5 au_dit au_vae au_io au_cpu au_core
/* test_cuda_models.c - the tiny-random model (models/tiny-random) end to end on the CUDA
 * backend against the float32 CPU backend, same weights and inputs: UMT5 encode, a DiT
 * forward, VAE decode and encode. Whole-model relative errors: bf16 precision within 5e-2,
 * fp8 within 1.5e-1 (the DiT's linear inputs and weights quantized to e4m3 along the way), UMT5
 * within 5e-2 in both (its linears stay 16-bit); the values are printed. A wrong op gives
 * errors near 1.
 */
#include "test_cuda_util.h"
#include "safetensors.h"
#include "umt5.h"
#include "wan_dit.h"
#include "wan_vae.h"

static const char *model_dir(char *buf, size_t n, const char *file) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    snprintf(buf, n, "%s/models/tiny-random/%s", src ? src : ".", file);
    return buf;
}

/* A random float32 tensor on both backends (job arenas of T). */
static pair input(tctx *T, int ndim, const int64_t *shape, float amp) { return in_pair(T, AU_F32, ndim, shape, amp); }

static void model_check(tctx *T, const char *what, const pair *out, double tol) {
    int64_t n = au_numel(&out->c);
    float *got = gpu_get(T, &out->g);
    double num = 0, den = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            bad++;
            continue;
        }
        double d = (double)got[i] - ((float *)out->c.data)[i];
        num += d * d;
        den += (double)((float *)out->c.data)[i] * ((float *)out->c.data)[i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECK(bad == 0 && rel <= tol, "[%s] %s: rel %.3g (tol %.2g), %lld not finite", T->name, what, rel, tol,
          (long long)bad);
    printf("  %s [%s] %-44s rel %.2e (tol %.1e)\n", bad == 0 && rel <= tol ? "ok  " : "FAIL", T->name, what, rel, tol);
    free(got);
}

static void run_models(tctx *T) {
    double tol = T->gpu->gemm_in_dtype == AU_F8_E4M3 ? 1.5e-1 : 5e-2;
    char path[1024];
    au_arena *ca = be_arena_create(T->cpu, 1 << 20), *ga = be_arena_create(T->gpu, 1 << 20);
    au_arena *cb = be_arena_create(T->cpu, 1 << 20), *gb = be_arena_create(T->gpu, 1 << 20);

    /* UMT5 */
    {
        st_set *st;
        MUST(st_open(&st, model_dir(path, sizeof path, "umt5.safetensors"), err));
        umt5_config cfg;
        MUST(umt5_config_infer(st, &cfg, err));
        umt5 *mc, *mg;
        MUST(umt5_load(&mc, T->cpu, st, &cfg, err));
        MUST(umt5_load(&mg, T->gpu, st, &cfg, err));
        int32_t ids[13];
        for (int i = 0; i < 13; i++)
            ids[i] = (int32_t)(rng_u32() % (uint32_t)cfg.vocab);
        ids[12] = 1; /* </s> */
        pair out = out_pair(T, AU_F32, SHAPE(13, cfg.dim));
        MUST(umt5_encode(mc, ca, ids, 13, &out.c, err));
        MUST(umt5_encode(mg, ga, ids, 13, &out.g, err));
        model_check(T, "umt5 encode, 13 tokens", &out, 5e-2); /* 16-bit linears in both precisions */
        umt5_free(mc);
        umt5_free(mg);
        st_close(st);
    }
    /* DiT */
    {
        st_set *st;
        MUST(st_open(&st, model_dir(path, sizeof path, "dit.safetensors"), err));
        dit_config cfg;
        MUST(dit_config_infer(st, &cfg, err));
        wan_dit *dc, *dg;
        MUST(dit_load(&dc, T->cpu, st, &cfg, err));
        MUST(dit_load(&dg, T->gpu, st, &cfg, err));
        pair ctx = input(T, SHAPE(7, cfg.text_dim), 1.0f);
        pair x = input(T, SHAPE(cfg.in_dim, 3, 8, 12), 1.7f);
        pair out = out_pair(T, AU_F32, SHAPE(cfg.out_dim, 3, 8, 12));
        dit_text *tc, *tg;
        MUST(dit_prepare_text(dc, cb, &ctx.c, &tc, err));
        MUST(dit_prepare_text(dg, gb, &ctx.g, &tg, err));
        MUST(dit_forward(dc, ca, &x.c, 321.0f, tc, &out.c, err));
        MUST(dit_forward(dg, ga, &x.g, 321.0f, tg, &out.g, err));
        model_check(T, "dit forward, latent [16,3,8,12]", &out, tol);
        dit_text_free(tc);
        dit_text_free(tg);
        dit_free(dc);
        dit_free(dg);
        st_close(st);
    }
    /* VAE */
    {
        st_set *st;
        MUST(st_open(&st, model_dir(path, sizeof path, "vae.safetensors"), err));
        vae_config cfg;
        MUST(vae_config_infer(st, &cfg, err));
        wan_vae *vc, *vg;
        MUST(vae_load(&vc, T->cpu, st, &cfg, err));
        MUST(vae_load(&vg, T->gpu, st, &cfg, err));
        pair z = input(T, SHAPE(cfg.z_dim, 3, 4, 6), 1.0f);
        pair video = out_pair(T, AU_F32, SHAPE(3, 9, 32, 48));
        MUST(vae_decode(vc, ca, &z.c, &video.c, err));
        MUST(vae_decode(vg, ga, &z.g, &video.g, err));
        model_check(T, "vae decode, z [16,3,4,6]", &video, tol);
        pair vin = input(T, SHAPE(3, 5, 32, 48), 1.0f);
        pair zo = out_pair(T, AU_F32, SHAPE(cfg.z_dim, 2, 4, 6));
        MUST(vae_encode(vc, ca, &vin.c, &zo.c, err));
        MUST(vae_encode(vg, ga, &vin.g, &zo.g, err));
        model_check(T, "vae encode, video [3,5,32,48]", &zo, tol);
        vae_free(vc);
        vae_free(vg);
        st_close(st);
    }
    sync_ok(T, "models");
    be_arena_destroy(ca);
    be_arena_destroy(ga);
    be_arena_destroy(cb);
    be_arena_destroy(gb);
}

int main(void) { return run_precisions(run_models); }
