// deps: au_umt5 au_cpu au_io au_core
/* test_umt5.c - UMT5 encoder on the CPU backend against the PyTorch golden.
 *
 * tests/golden/umt5/: config.json (hyper-parameters, HF or official key names),
 * weights.safetensors (HF T5 names), io.safetensors (`ids` int32 [L], `context` f32
 * [L, dim] from the reference). The config inferred from the weight shapes must agree
 * with config.json, and max|out - context| / max|context| must stay below 1e-4, both for
 * the whole encoder and for the encoder cut after each block (compared with the golden's
 * `block.N` rows put through the final norm), so a failure names the first block that
 * diverges.
 * Exits 77 ("skipped: golden missing") when the golden files are absent.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "umt5.h"
#include "check.h"

/* The first of the keys present in cfg as a number; returns 0 if none is. */
static int json_number(json_t *cfg, const char *const *keys, double *out) {
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(cfg, keys[i]);
        if (v && json_is_number(v)) {
            *out = json_number_value(v);
            return 1;
        }
    }
    return 0;
}

/* Check that config.json agrees with the inferred config wherever it states a value. */
static void check_config(json_t *j, const umt5_config *c) {
    static const char *const vocab[] = {"vocab_size", "vocab", NULL};
    static const char *const dim[] = {"d_model", "dim", NULL};
    static const char *const dkv[] = {"d_kv", NULL};
    static const char *const heads[] = {"num_heads", NULL};
    static const char *const ffn[] = {"d_ff", "dim_ffn", "ffn_dim", NULL};
    static const char *const layers[] = {"num_layers", "encoder_layers", NULL};
    static const char *const buckets[] = {"relative_attention_num_buckets", "num_buckets", NULL};
    static const char *const maxdist[] = {"relative_attention_max_distance", "max_distance", NULL};
    static const char *const eps[] = {"layer_norm_epsilon", "eps", NULL};
    struct {
        const char *const *keys;
        double inferred;
        int required;
    } rows[] = {
        {vocab, c->vocab, 0},     {dim, c->dim, 1},         {dkv, c->d_kv, 0},
        {heads, c->num_heads, 1}, {ffn, c->ffn_dim, 1},     {layers, c->num_layers, 1},
        {buckets, c->num_buckets, 0}, {maxdist, c->max_distance, 0}, {eps, c->eps, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double v;
        if (!json_number(j, rows[i].keys, &v)) {
            REQUIRE(!rows[i].required, "config.json lacks %s", rows[i].keys[0]);
            continue;
        }
        REQUIRE(fabs(v - rows[i].inferred) <= 1e-6 * fabs(v), "config.json %s = %g, inferred from shapes %g",
              rows[i].keys[0], v, rows[i].inferred);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* max|got - expect| / max|expect| over count values; *worst_row gets the row of the largest
 * difference for rows of row_len values. */
static double max_rel_error(const float *got, const float *expect, int64_t count, int row_len, int *worst_row) {
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < count; i++) {
        double d = fabs((double)got[i] - expect[i]);
        if (d > max_diff) {
            max_diff = d;
            *worst_row = (int)(i / row_len);
        }
        max_ref = fmax(max_ref, fabs(expect[i]));
    }
    return max_diff / max_ref;
}

/* The golden's output of block `layer` followed by the final norm: what a model cut
 * after that block must give. */
static void golden_cut(const st_set *io, const st_set *st, const umt5_config *c, int layer, int n, float *out) {
    char name[32];
    snprintf(name, sizeof name, "block.%d", layer);
    const au_tensor *x = st_get(io, name);
    REQUIRE(x && x->dtype == AU_F32 && au_numel(x) == (int64_t)n * c->dim, "%s: expected f32 [%d, %d]", name, n,
          c->dim);
    const au_tensor *w = st_get(st, "encoder.final_layer_norm.weight");
    REQUIRE(w && au_numel(w) == c->dim, "encoder.final_layer_norm.weight missing");
    float *gamma = malloc(sizeof(float) * (size_t)c->dim);
    REQUIRE(gamma && au_convert_to_f32(gamma, w->data, w->dtype, c->dim) == 0, "final norm weight");
    const float *xs = x->data;
    for (int i = 0; i < n; i++) {
        const float *row = xs + (size_t)i * c->dim;
        double ss = 0;
        for (int j = 0; j < c->dim; j++)
            ss += (double)row[j] * row[j];
        double r = 1.0 / sqrt(ss / c->dim + c->eps);
        for (int j = 0; j < c->dim; j++)
            out[(size_t)i * c->dim + j] = (float)(row[j] * r * gamma[j]);
    }
    free(gamma);
}

/* Load the first n_layers blocks of st and encode ids into got (host). */
static void encode_cut(au_backend *be, const st_set *st, const umt5_config *full, int n_layers, const int32_t *ids,
                       int n, float *got) {
    au_err err = {0};
    umt5_config c = *full;
    c.num_layers = n_layers;
    umt5 *m = NULL;
    REQUIRE(umt5_load(&m, be, st, &c, &err) == 0, "%s", err.msg);
    au_arena *act = be_arena_create(be, 1 << 20), *outs = be_arena_create(be, 1 << 20);
    REQUIRE(act && outs, "arena");
    int64_t shape[2] = {n, c.dim};
    au_tensor out;
    REQUIRE(be_arena_tensor(outs, AU_F32, 2, shape, &out, &err) == 0, "%s", err.msg);
    REQUIRE(umt5_encode(m, act, ids, n, &out, &err) == 0, "%s", err.msg);
    REQUIRE(be_download(be, got, &out, &err) == 0, "%s", err.msg);
    be_arena_destroy(act);
    be_arena_destroy(outs);
    umt5_free(m);
}

int main(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[512], cfg_path[600], w_path[600], io_path[600];
    snprintf(dir, sizeof dir, "%s/tests/golden/umt5", src ? src : ".");
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(w_path, sizeof w_path, "%s/weights.safetensors", dir);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    if (access(cfg_path, R_OK) || access(w_path, R_OK) || access(io_path, R_OK)) {
        printf("skipped: golden missing (%s)\n", dir);
        return 77;
    }

    au_err err = {0};
    json_error_t jerr;
    json_t *jcfg = json_load_file(cfg_path, 0, &jerr);
    REQUIRE(jcfg && json_is_object(jcfg), "%s: %s", cfg_path, jerr.text);
    st_set *st = NULL, *io = NULL;
    REQUIRE(st_open(&st, w_path, &err) == 0, "%s", err.msg);
    REQUIRE(st_open(&io, io_path, &err) == 0, "%s", err.msg);

    umt5_config cfg;
    REQUIRE(umt5_config_infer(st, &cfg, &err) == 0, "%s", err.msg);
    check_config(jcfg, &cfg);
    printf("config: vocab %d dim %d d_kv %d heads %d ffn %d layers %d buckets %d\n", cfg.vocab, cfg.dim,
           cfg.d_kv, cfg.num_heads, cfg.ffn_dim, cfg.num_layers, cfg.num_buckets);

    const au_tensor *ids_t = st_get(io, "ids"), *ctx_t = st_get(io, "context");
    REQUIRE(ids_t && ctx_t, "io.safetensors needs ids and context");
    REQUIRE(ids_t->dtype == AU_I32 && ids_t->ndim == 1, "ids must be int32 [L]");
    int n = (int)ids_t->shape[0];
    REQUIRE(ctx_t->dtype == AU_F32 && ctx_t->ndim == 2 && ctx_t->shape[0] == n && ctx_t->shape[1] == cfg.dim,
          "context must be f32 [%d, %d]", n, cfg.dim);
    const float *expect = ctx_t->data;

    au_backend *be = NULL;
    REQUIRE(be_cpu_create(&be, 0, &err) == 0, "%s", err.msg);
    umt5 *m = NULL;
    REQUIRE(umt5_load(&m, be, st, &cfg, &err) == 0, "%s", err.msg);
    au_arena *act = be_arena_create(be, 1 << 20), *outs = be_arena_create(be, 1 << 20);
    REQUIRE(act && outs, "arena");
    int64_t shape[2] = {n, cfg.dim};
    au_tensor out;
    REQUIRE(be_arena_tensor(outs, AU_F32, 2, shape, &out, &err) == 0, "%s", err.msg);

    double t0 = now_seconds();
    REQUIRE(umt5_encode(m, act, ids_t->data, n, &out, &err) == 0, "%s", err.msg);
    REQUIRE(be_sync(be, &err) == 0, "%s", err.msg);
    double seconds = now_seconds() - t0;
    uint64_t allocs = be_arena_chunk_allocs(act);

    float *got = malloc(sizeof(float) * (size_t)n * cfg.dim);
    REQUIRE(got, "out of memory");
    REQUIRE(be_download(be, got, &out, &err) == 0, "%s", err.msg);

    /* Layer by layer first, so that a failure names the first block that diverges: the
     * model cut after block k, against the golden's block k output with the final norm. */
    float *cut = malloc(sizeof(float) * (size_t)n * cfg.dim), *cut_ref = malloc(sizeof(float) * (size_t)n * cfg.dim);
    REQUIRE(cut && cut_ref, "out of memory");
    for (int k = 0; k < cfg.num_layers - 1; k++) {
        encode_cut(be, st, &cfg, k + 1, ids_t->data, n, cut);
        golden_cut(io, st, &cfg, k, n, cut_ref);
        int worst = 0;
        double rel = max_rel_error(cut, cut_ref, (int64_t)n * cfg.dim, cfg.dim, &worst);
        printf("after block %d: max rel error %.3g (worst token %d)\n", k, rel, worst);
        REQUIRE(rel < 1e-4, "block %d diverges: max rel error %g >= 1e-4", k, rel);
    }
    free(cut);
    free(cut_ref);

    int worst = 0;
    double rel = max_rel_error(got, expect, (int64_t)n * cfg.dim, cfg.dim, &worst);
    printf("umt5 %d tokens, %d blocks: max rel error %.3g (worst token %d), %.3f s\n", n, cfg.num_layers, rel,
           worst, seconds);
    REQUIRE(rel < 1e-4, "max rel error %g >= 1e-4", rel);

    /* A second identical encode allocates nothing and repeats the result exactly. */
    float *again = malloc(sizeof(float) * (size_t)n * cfg.dim);
    REQUIRE(again, "out of memory");
    REQUIRE(umt5_encode(m, act, ids_t->data, n, &out, &err) == 0, "%s", err.msg);
    REQUIRE(be_download(be, again, &out, &err) == 0, "%s", err.msg);
    REQUIRE(be_arena_chunk_allocs(act) == allocs, "second encode allocated");
    REQUIRE(!memcmp(got, again, sizeof(float) * (size_t)n * cfg.dim), "second encode differs");

    free(got);
    free(again);
    be_arena_destroy(act);
    be_arena_destroy(outs);
    umt5_free(m);
    be_destroy(be);
    st_close(io);
    st_close(st);
    json_decref(jcfg);
    printf("ok\n");
    return 0;
}
