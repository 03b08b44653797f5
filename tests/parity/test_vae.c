// deps: au_vae au_cpu au_io au_core
/* test_vae.c - the Wan2.1 VAE on the CPU backend against the PyTorch reference goldens.
 *
 * tests/golden/vae/ holds config.json (official WanVAE_ keys plus latents_mean/std),
 * weights.safetensors (official state-dict names) and io.safetensors: z [16, F, h, w]
 * normalized latent and the expected video [3, 1+4(F-1), 8h, 8w]; video_in
 * [3, 1+4k, H, W] and the expected z_out [16, 1+k, H/8, W/8], made by
 * tools/reference/ref_vae.py (chunked exactly as the official code). Both directions
 * must match with max|a - b| / max|b| < 1e-4; a second decode must give the same
 * frames without any backend allocation. Missing goldens: exit 77 (skipped).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_vae.h"
#include "golden.h"

static int json_int_array(json_t *root, const char *key, int *out, int max) {
    json_t *a = json_object_get(root, key);
    REQUIRE(json_is_array(a) && (int)json_array_size(a) <= max, "config.json: %s must be an array of <= %d", key, max);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        REQUIRE(json_is_integer(e) || json_is_boolean(e), "config.json: %s[%zu] not an integer", key, i);
        out[i] = json_is_boolean(e) ? json_is_true(e) : (int)json_integer_value(e);
    }
    return (int)json_array_size(a);
}

static void read_config(const char *path, vae_config *cfg) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    REQUIRE(root, "%s: %s (line %d)", path, jerr.text, jerr.line);
    vae_config_default(cfg);
    json_t *dim = json_object_get(root, "dim"), *z = json_object_get(root, "z_dim");
    json_t *nres = json_object_get(root, "num_res_blocks");
    REQUIRE(json_is_integer(dim) && json_is_integer(z) && json_is_integer(nres), "config.json: dim, z_dim, num_res_blocks");
    cfg->dim = (int)json_integer_value(dim);
    cfg->z_dim = (int)json_integer_value(z);
    cfg->num_res_blocks = (int)json_integer_value(nres);
    cfg->n_mult = json_int_array(root, "dim_mult", cfg->dim_mult, 4);
    REQUIRE(json_int_array(root, "temperal_downsample", cfg->temporal_downsample, 3) == cfg->n_mult - 1,
          "config.json: temperal_downsample needs n_mult - 1 entries");
    const char *stats[2] = {"latents_mean", "latents_std"};
    float *dst[2] = {cfg->mean, cfg->std};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(root, stats[k]);
        REQUIRE(json_is_array(a) && (int)json_array_size(a) == cfg->z_dim, "config.json: %s needs z_dim values", stats[k]);
        for (int i = 0; i < cfg->z_dim; i++)
            dst[k][i] = (float)json_number_value(json_array_get(a, (size_t)i));
    }
    json_decref(root);
}

static double rel_err(const float *got, const float *want, int64_t n, int64_t *worst) {
    double max_d = 0, max_b = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        REQUIRE(isfinite(got[i]), "element %lld is not finite", (long long)i);
        if (d > max_d) {
            max_d = d;
            *worst = i;
        }
        if (fabs(want[i]) > max_b)
            max_b = fabs(want[i]);
    }
    return max_d / (max_b > 0 ? max_b : 1);
}

/* Upload an io tensor into a backend tensor from arena. */
static au_tensor to_device(au_backend *be, au_arena *a, const au_tensor *t, const float *host) {
    au_tensor d;
    au_err err = {0};
    REQUIRE(be_arena_tensor(a, AU_F32, t->ndim, t->shape, &d, &err) == 0, "%s", err.msg);
    REQUIRE(be_upload(be, &d, host, &err) == 0, "%s", err.msg);
    return d;
}

int main(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[1024], cfg_path[1100], w_path[1100], io_path[1100];
    snprintf(dir, sizeof dir, "%s/tests/golden/vae", src ? src : ".");
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(w_path, sizeof w_path, "%s/weights.safetensors", dir);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    const char *paths[3] = {cfg_path, w_path, io_path};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) {
            printf("skipped: golden missing (%s)\n", paths[i]);
            return 77;
        }
        fclose(f);
    }

    vae_config cfg, inferred;
    read_config(cfg_path, &cfg);
    au_err err = {0};
    st_set *st = NULL, *io = NULL;
    REQUIRE(st_open(&st, w_path, &err) == 0, "%s", err.msg);
    REQUIRE(st_open(&io, io_path, &err) == 0, "%s", err.msg);
    REQUIRE(vae_config_infer(st, &inferred, &err) == 0, "%s", err.msg);
    REQUIRE(inferred.dim == cfg.dim && inferred.z_dim == cfg.z_dim, "inferred dim %d z_dim %d, config %d %d",
          inferred.dim, inferred.z_dim, cfg.dim, cfg.z_dim);

    const au_tensor *tz, *tv, *tvi, *tzo;
    float *z = golden_f32(io, "z", &tz), *video = golden_f32(io, "video", &tv);
    float *video_in = golden_f32(io, "video_in", &tvi), *z_out = golden_f32(io, "z_out", &tzo);
    char b1[96], b2[96], b3[96], b4[96];
    printf("golden: z %s -> video %s; video_in %s -> z_out %s; dim %d\n", au_shape_str(tz, b1, sizeof b1),
           au_shape_str(tv, b2, sizeof b2), au_shape_str(tvi, b3, sizeof b3), au_shape_str(tzo, b4, sizeof b4),
           cfg.dim);

    au_backend *be = NULL;
    REQUIRE(be_cpu_create(&be, 0, &err) == 0, "%s", err.msg);
    wan_vae *v = NULL;
    REQUIRE(vae_load(&v, be, st, &cfg, &err) == 0, "%s", err.msg);
    au_arena *job = be_arena_create(be, 1 << 20), *act = be_arena_create(be, 1 << 20);
    REQUIRE(job && act, "arenas");

    /* decode */
    au_tensor dz = to_device(be, job, tz, z), dvideo;
    REQUIRE(be_arena_tensor(job, AU_F32, tv->ndim, tv->shape, &dvideo, &err) == 0, "%s", err.msg);
    double t0 = golden_now_s();
    REQUIRE(vae_decode(v, act, &dz, &dvideo, &err) == 0, "%s", err.msg);
    double t_dec = golden_now_s() - t0;
    int64_t n = au_numel(tv), worst = 0;
    float *got = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float));
    REQUIRE(got && again, "out of memory");
    REQUIRE(be_download(be, got, &dvideo, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
    double e_dec = rel_err(got, video, n, &worst);
    printf("decode: max rel err %.3g (worst element %lld: %g vs %g), %.3f s\n", e_dec, (long long)worst, got[worst],
           video[worst], t_dec);
    REQUIRE(e_dec < 1e-4, "decode error %.3g >= 1e-4", e_dec);

    /* a second identical decode: same frames, no backend allocation */
    vae_mem_stats m0, m1;
    vae_get_mem_stats(v, &m0);
    uint64_t allocs = be_arena_chunk_allocs(act);
    REQUIRE(be_fill(be, &dvideo, 7.0f, &err) == 0, "%s", err.msg);
    REQUIRE(vae_decode(v, act, &dz, &dvideo, &err) == 0, "%s", err.msg);
    REQUIRE(be_download(be, again, &dvideo, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
    vae_get_mem_stats(v, &m1);
    REQUIRE(!memcmp(got, again, n * sizeof(float)), "second decode differs");
    REQUIRE(be_arena_chunk_allocs(act) == allocs, "second decode allocated %llu act chunks",
          (unsigned long long)(be_arena_chunk_allocs(act) - allocs));
    REQUIRE(m1.cache_allocs == m0.cache_allocs, "second decode allocated cache chunks");
    printf("decode memory: chunk %zu bytes, caches %zu bytes, weights %zu bytes\n", m1.chunk_bytes, m1.cache_bytes,
           m1.weight_bytes);

    /* encode */
    au_tensor dvi = to_device(be, job, tvi, video_in), dzo;
    REQUIRE(be_arena_tensor(job, AU_F32, tzo->ndim, tzo->shape, &dzo, &err) == 0, "%s", err.msg);
    t0 = golden_now_s();
    REQUIRE(vae_encode(v, act, &dvi, &dzo, &err) == 0, "%s", err.msg);
    double t_enc = golden_now_s() - t0;
    int64_t nz = au_numel(tzo);
    float *gz = malloc(nz * sizeof(float));
    REQUIRE(gz, "out of memory");
    REQUIRE(be_download(be, gz, &dzo, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
    double e_enc = rel_err(gz, z_out, nz, &worst);
    printf("encode: max rel err %.3g (worst element %lld: %g vs %g), %.3f s\n", e_enc, (long long)worst, gz[worst],
           z_out[worst], t_enc);
    REQUIRE(e_enc < 1e-4, "encode error %.3g >= 1e-4", e_enc);

    free(z);
    free(video);
    free(video_in);
    free(z_out);
    free(got);
    free(again);
    free(gz);
    be_arena_destroy(act);
    be_arena_destroy(job);
    vae_free(v);
    be_destroy(be);
    st_close(io);
    st_close(st);
    printf("ok\n");
    return 0;
}
