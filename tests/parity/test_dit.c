// deps: au_dit au_cpu au_io au_core
/* test_dit.c - the DiT on the CPU backend against the PyTorch reference goldens.
 *
 * tests/golden/dit/ holds config.json (official WanModel keys), weights.safetensors
 * (official key names) and io.safetensors: x [in_dim, F, H, W], t [1], context
 * [L, text_dim] and the expected out [out_dim, F, H, W], made by
 * tools/reference/ref_dit.py. The config is read from config.json and checked against
 * what dit_config_infer finds in the shapes; the output must match with
 * max|a - b| / max|b| < 1e-4. Missing goldens: exit 77 (skipped).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_dit.h"
#include "golden.h"

static int json_int(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    REQUIRE(json_is_integer(v), "config.json: %s missing or not an integer", key);
    return (int)json_integer_value(v);
}

static void read_config(const char *path, dit_config *cfg) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    REQUIRE(root, "%s: %s (line %d)", path, jerr.text, jerr.line);
    memset(cfg, 0, sizeof *cfg);
    cfg->dim = json_int(root, "dim");
    cfg->ffn_dim = json_int(root, "ffn_dim");
    cfg->freq_dim = json_int(root, "freq_dim");
    cfg->num_heads = json_int(root, "num_heads");
    cfg->num_layers = json_int(root, "num_layers");
    cfg->in_dim = json_int(root, "in_dim");
    cfg->out_dim = json_int(root, "out_dim");
    cfg->text_len = json_int(root, "text_len");
    cfg->text_dim = json_int(root, "text_dim");
    json_t *patch = json_object_get(root, "patch_size");
    REQUIRE(json_is_array(patch) && json_array_size(patch) == 3, "config.json: patch_size must be 3 integers");
    for (int i = 0; i < 3; i++)
        cfg->patch[i] = (int)json_integer_value(json_array_get(patch, (size_t)i));
    json_t *eps = json_object_get(root, "eps");
    cfg->eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-6f;
    json_decref(root);
}

int main(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[1024], cfg_path[1100], w_path[1100], io_path[1100];
    snprintf(dir, sizeof dir, "%s/tests/golden/dit", src ? src : ".");
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(w_path, sizeof w_path, "%s/weights.safetensors", dir);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    FILE *probe[3] = {fopen(cfg_path, "r"), fopen(w_path, "r"), fopen(io_path, "r")};
    int missing = 0;
    for (int i = 0; i < 3; i++) {
        if (probe[i])
            fclose(probe[i]);
        else
            missing = 1;
    }
    if (missing) {
        printf("skipped: golden missing (%s)\n", dir);
        return 77;
    }

    dit_config cfg, inferred;
    read_config(cfg_path, &cfg);
    au_err err = {0};
    st_set *st = NULL, *io = NULL;
    REQUIRE(st_open(&st, w_path, &err) == 0, "%s", err.msg);
    REQUIRE(st_open(&io, io_path, &err) == 0, "%s", err.msg);

    /* The shapes must say what config.json says (num_heads only when head size is 128). */
    int rc = dit_config_infer(st, &inferred, &err);
    if (cfg.dim % 128 == 0) {
        REQUIRE(rc == 0, "infer: %s", err.msg);
        REQUIRE(inferred.num_heads == cfg.num_heads, "inferred num_heads %d, config %d", inferred.num_heads,
              cfg.num_heads);
    } else {
        REQUIRE(rc == AU_EUNSUPPORTED, "infer with dim %d must ask for num_heads: %s", cfg.dim, err.msg);
    }
    if (rc == 0)
        REQUIRE(inferred.dim == cfg.dim && inferred.ffn_dim == cfg.ffn_dim && inferred.freq_dim == cfg.freq_dim &&
                  inferred.num_layers == cfg.num_layers && inferred.in_dim == cfg.in_dim &&
                  inferred.out_dim == cfg.out_dim && inferred.text_dim == cfg.text_dim &&
                  !memcmp(inferred.patch, cfg.patch, sizeof cfg.patch),
              "inferred config differs from config.json");

    const au_tensor *tx, *tt, *tc, *texp;
    float *x = golden_f32(io, "x", &tx), *tv = golden_f32(io, "t", &tt), *ctx = golden_f32(io, "context", &tc);
    float *expect = golden_f32(io, "out", &texp);
    REQUIRE(au_numel(tt) == 1, "t must hold one value");
    char b1[96], b2[96], b3[96];
    printf("golden: x %s, t %g, context %s, out %s; dim %d, %d layers, %d heads\n", au_shape_str(tx, b1, sizeof b1),
           tv[0], au_shape_str(tc, b2, sizeof b2), au_shape_str(texp, b3, sizeof b3), cfg.dim, cfg.num_layers,
           cfg.num_heads);

    au_backend *be = NULL;
    REQUIRE(be_cpu_create(&be, 0, &err) == 0, "%s", err.msg);
    wan_dit *d = NULL;
    REQUIRE(dit_load(&d, be, st, &cfg, &err) == 0, "%s", err.msg);
    au_arena *job = be_arena_create(be, 1 << 20), *act = be_arena_create(be, 1 << 20);
    REQUIRE(job && act, "arenas");
    au_tensor dx, dctx, dout;
    REQUIRE(be_arena_tensor(job, AU_F32, tx->ndim, tx->shape, &dx, &err) == 0, "%s", err.msg);
    REQUIRE(be_arena_tensor(job, AU_F32, tc->ndim, tc->shape, &dctx, &err) == 0, "%s", err.msg);
    REQUIRE(be_arena_tensor(job, AU_F32, texp->ndim, texp->shape, &dout, &err) == 0, "%s", err.msg);
    REQUIRE(be_upload(be, &dx, x, &err) == 0 && be_upload(be, &dctx, ctx, &err) == 0, "%s", err.msg);

    double t0 = golden_now_s();
    dit_text *text = NULL;
    REQUIRE(dit_prepare_text(d, job, &dctx, &text, &err) == 0, "%s", err.msg);
    double t1 = golden_now_s();
    REQUIRE(dit_forward(d, act, &dx, tv[0], text, &dout, &err) == 0, "%s", err.msg);
    int64_t n = au_numel(texp);
    float *got = malloc(n * sizeof(float));
    REQUIRE(got, "out of memory");
    REQUIRE(be_download(be, got, &dout, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
    double t2 = golden_now_s();

    double max_diff = 0, max_ref = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        REQUIRE(isfinite(got[i]), "out[%lld] = %g", (long long)i, got[i]);
        double diff = fabs((double)got[i] - expect[i]);
        if (diff > max_diff) {
            max_diff = diff;
            worst = i;
        }
        max_ref = fmax(max_ref, fabs(expect[i]));
    }
    double rel = max_diff / max_ref;
    printf("dit parity: max rel error %.3g (max |diff| %.3g at %lld: got %.6g, want %.6g; max |ref| %.3g)\n", rel,
           max_diff, (long long)worst, got[worst], expect[worst], max_ref);
    printf("cpu time: prepare_text %.3f s, forward %.3f s\n", t1 - t0, t2 - t1);
    REQUIRE(max_ref > 0, "golden output is all zeros");
    REQUIRE(rel < 1e-4, "max rel error %.3g >= 1e-4", rel);

    dit_text_free(text);
    dit_free(d);
    be_arena_destroy(act);
    be_arena_destroy(job);
    be_destroy(be);
    st_close(io);
    st_close(st);
    free(x), free(tv), free(ctx), free(expect), free(got);
    printf("ok\n");
    return 0;
}
