// deps: au_pipeline au_cuda au_core
/* bench_cuda_text_vae.c - seconds per UMT5 encode and per VAE decode on the CUDA backend, for
 * bench/torch_text_vae.py to set beside PyTorch on the same weights and inputs.
 *
 *   bench_cuda_text_vae MODEL_DIR OUT_DIR [--iters K] [--vae-iters K] [--vae-precisions fp8,bf16]
 *                       [--vae-only] [--device cuda|cpu]
 * MODEL_DIR is a model folder with inputs.safetensors beside its manifest (bench/make_bench_model.py):
 * ids int32 [n_tokens] are encoded as they are (512 tokens at full size, no padding), z float32
 * [16, F, h, w] is decoded to [3, 1+4(F-1), 8h, 8w]. Each precision gets its own backend: the text
 * encoder runs in FP8 and bf16, the VAE in the precisions named (default fp8: its convolutions are
 * bf16 tensor-core work in both). One call of each warms up (plans, arena growth), then K timed
 * calls back to back between two syncs. Outputs go to OUT_DIR/umt5_<precision>.safetensors
 * ("context" [n_tokens, 4096] f32) and OUT_DIR/vae_<precision>.safetensors ("video" f32).
 * --device cpu runs the float32 CPU backend once ("f32"), for a local check at small sizes.
 * --vae-only skips the text encoder (its weights need not exist; the manifest must still name them).
 * Prints "RESULT umt5 <n>tok <precision> <ms> <TFLOP/s>" (FLOP per layer: 8 N d inner for q, k, v,
 * o; 6 N d ffn for the gated FFN; 4 N^2 inner for scores and weighted sum) and
 * "RESULT vae <W>x<H>x<T> <precision> <ms> -" (the VAE's FLOP are counted by torch_text_vae.py on
 * the module itself, and bench/figures_table.py applies them to every row).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "kernels/cuda_backend.h"
#include "model.h"
#include "safetensors.h"
#include "umt5.h"
#include "wan_vae.h"

typedef struct bench_args {
    const char *model_dir, *out_dir;
    int iters, vae_iters, use_cpu, vae_only;
    int vae_prec[2]; /* fp8, bf16 */
} bench_args;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Download t (float32, backend memory) and write it as the one tensor `name` of path. */
static int save_tensor(au_backend *be, const au_tensor *t, const char *name, const char *path, au_err *err) {
    float *host = malloc(au_nbytes(t));
    if (!host)
        return au_errf(err, AU_ENOMEM, "out of host memory for %s", name);
    int rc = be_download(be, host, t, err);
    if (rc == 0) {
        st_entry e = {name, au_tensor_make(AU_F32, host, t->ndim, t->shape)};
        rc = st_write(path, &e, 1, NULL, err);
    }
    free(host);
    return rc;
}

/* UMT5 FLOP of one encode of n tokens (projections, gated FFN, scores and weighted sum). */
static double umt5_flop(const umt5_config *c, double n) {
    double d = c->dim, inner = (double)c->num_heads * c->d_kv;
    return c->num_layers * (8.0 * n * d * inner + 6.0 * n * d * c->ffn_dim + 4.0 * n * n * inner);
}

static int bench_umt5(au_backend *be, const char *prec, const au_manifest *m, const au_tensor *ids,
                      const bench_args *a, au_err *err) {
    st_set *st = NULL;
    umt5 *t5 = NULL;
    au_arena *job = NULL, *act = NULL;
    int rc;
    umt5_config cfg = m->t5;
    if ((rc = st_open(&st, m->text_encoder_path, err)) < 0)
        return rc;
    if (!m->has_t5_config)
        AU_TRY(umt5_config_infer(st, &cfg, err));
    double t0 = now_s();
    AU_TRY(umt5_load(&t5, be, st, &cfg, err));
    double load_s = now_s() - t0;
    job = be_arena_create(be, 64 << 20);
    act = be_arena_create(be, 64 << 20);
    if (!job || !act) {
        rc = au_errf(err, AU_ENOMEM, "umt5: arenas");
        goto fail;
    }
    int n = (int)ids->shape[0];
    int64_t shape[2] = {n, cfg.dim};
    au_tensor out;
    AU_TRY(be_arena_tensor(job, AU_F32, 2, shape, &out, err));
    t0 = now_s();
    AU_TRY(umt5_encode(t5, act, ids->data, n, &out, err));
    AU_TRY(be_sync(be, err));
    double first_ms = (now_s() - t0) * 1e3;
    t0 = now_s();
    for (int i = 0; i < a->iters; i++)
        AU_TRY(umt5_encode(t5, act, ids->data, n, &out, err));
    AU_TRY(be_sync(be, err));
    double ms = (now_s() - t0) * 1e3 / a->iters;
    printf("RESULT umt5 %dtok %s %.3f %.1f\n", n, prec, ms, umt5_flop(&cfg, n) / (ms * 1e-3) / 1e12);
    printf("# umt5 %s: load %.1f s, first encode %.1f ms, %d timed\n", prec, load_s, first_ms, a->iters);
    fflush(stdout);
    char path[1200];
    snprintf(path, sizeof path, "%s/umt5_%s.safetensors", a->out_dir, prec);
    AU_TRY(save_tensor(be, &out, "context", path, err));
fail:
    if (act)
        be_arena_destroy(act);
    if (job)
        be_arena_destroy(job);
    umt5_free(t5);
    st_close(st);
    if (rc < 0)
        au_err_prefix(err, "umt5 %s", prec);
    return rc;
}

static int bench_vae(au_backend *be, const char *prec, const au_manifest *m, const au_tensor *z_host,
                     const bench_args *a, au_err *err) {
    st_set *st = NULL;
    wan_vae *vae = NULL;
    au_arena *job = NULL, *act = NULL;
    int rc;
    vae_config cfg = m->vae;
    if ((rc = st_open(&st, m->vae_path, err)) < 0)
        return rc;
    if (!m->has_vae_config)
        AU_TRY(vae_config_infer(st, &cfg, err));
    double t0 = now_s();
    AU_TRY(vae_load(&vae, be, st, &cfg, err));
    double load_s = now_s() - t0;
    job = be_arena_create(be, 64 << 20);
    act = be_arena_create(be, 64 << 20);
    if (!job || !act) {
        rc = au_errf(err, AU_ENOMEM, "vae: arenas");
        goto fail;
    }
    const int64_t *zs = z_host->shape;
    int64_t vs[4] = {3, 1 + 4 * (zs[1] - 1), 8 * zs[2], 8 * zs[3]};
    au_tensor z, video;
    AU_TRY(be_arena_tensor(job, AU_F32, 4, zs, &z, err));
    AU_TRY(be_arena_tensor(job, AU_F32, 4, vs, &video, err));
    AU_TRY(be_upload(be, &z, z_host->data, err));
    t0 = now_s();
    AU_TRY(vae_decode(vae, act, &z, &video, err));
    AU_TRY(be_sync(be, err));
    double first_s = now_s() - t0;
    uint64_t allocs = be_arena_chunk_allocs(act);
    t0 = now_s();
    for (int i = 0; i < a->vae_iters; i++)
        AU_TRY(vae_decode(vae, act, &z, &video, err));
    AU_TRY(be_sync(be, err));
    double ms = (now_s() - t0) * 1e3 / a->vae_iters;
    vae_mem_stats ms_stats;
    vae_get_mem_stats(vae, &ms_stats);
    printf("RESULT vae %lldx%lldx%lld %s %.1f -\n", (long long)vs[3], (long long)vs[2], (long long)vs[1],
           prec, ms);
    printf("# vae %s: load %.1f s, first decode %.2f s, %d timed; memory: weights %.0f MiB, causal caches "
           "%.0f MiB, "
           "chunk working set %.0f MiB; arena allocations in the timed decodes %llu\n",
           prec, load_s, first_s, a->vae_iters, ms_stats.weight_bytes / 1048576.0,
           ms_stats.cache_bytes / 1048576.0, ms_stats.chunk_bytes / 1048576.0,
           (unsigned long long)(be_arena_chunk_allocs(act) - allocs));
    fflush(stdout);
    char path[1200];
    snprintf(path, sizeof path, "%s/vae_%s.safetensors", a->out_dir, prec);
    AU_TRY(save_tensor(be, &video, "video", path, err));
fail:
    if (act)
        be_arena_destroy(act);
    if (job)
        be_arena_destroy(job);
    vae_free(vae);
    st_close(st);
    if (rc < 0)
        au_err_prefix(err, "vae %s", prec);
    return rc;
}

/* ids and z from MODEL_DIR/inputs.safetensors, checked. */
static int load_inputs(const char *dir, st_set **st, const au_tensor **ids, const au_tensor **z,
                       au_err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    int rc = st_open(st, path, err);
    if (rc < 0)
        return rc;
    *ids = st_get(*st, "ids");
    *z = st_get(*st, "z");
    if (!*ids || (*ids)->dtype != AU_I32 || (*ids)->ndim != 1)
        return au_errf(err, AU_EFORMAT, "%s: expected \"ids\" int32 [n_tokens]", path);
    if (!*z || (*z)->dtype != AU_F32 || (*z)->ndim != 4)
        return au_errf(err, AU_EFORMAT, "%s: expected \"z\" float32 [16, F, h, w]", path);
    return 0;
}

static int parse_args(int argc, char **argv, bench_args *a) {
    memset(a, 0, sizeof *a);
    a->iters = 5;
    a->vae_iters = 1;
    a->vae_prec[0] = 1;
    if (argc < 3)
        return -1;
    a->model_dir = argv[1];
    a->out_dir = argv[2];
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            a->iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vae-iters") && i + 1 < argc)
            a->vae_iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vae-only"))
            a->vae_only = 1;
        else if (!strcmp(argv[i], "--vae-precisions") && i + 1 < argc) {
            const char *s = argv[++i];
            a->vae_prec[0] = strstr(s, "fp8") != NULL;
            a->vae_prec[1] = strstr(s, "bf16") != NULL;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            if (strcmp(d, "cpu") && strcmp(d, "cuda"))
                return -1;
            a->use_cpu = !strcmp(d, "cpu");
        } else
            return -1;
    }
    return a->iters >= 1 && a->vae_iters >= 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    bench_args a;
    if (parse_args(argc, argv, &a) < 0) {
        fprintf(stderr, "usage: bench_cuda_text_vae MODEL_DIR OUT_DIR [--iters K] [--vae-iters K] "
                        "[--vae-precisions fp8,bf16] [--vae-only] [--device cuda|cpu]\n");
        return 2;
    }
    if (!a.use_cpu && be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    au_err err = {0};
    au_manifest man;
    st_set *inputs = NULL;
    const au_tensor *ids, *z;
    if (model_manifest_load(a.model_dir, &man, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = load_inputs(a.model_dir, &inputs, &ids, &z, &err);
    static const char *const names[2] = {"fp8", "bf16"};
    static const int precs[2] = {BE_CUDA_FP8, BE_CUDA_BF16};
    for (int p = 0; rc == 0 && p < (a.use_cpu ? 1 : 2); p++) {
        au_backend *be = NULL;
        const char *prec = a.use_cpu ? "f32" : names[p];
        be_cuda_opts o = {0, precs[p]};
        rc = a.use_cpu ? be_cpu_create(&be, 0, &err) : be_cuda_create(&be, &o, &err);
        if (rc == 0 && !a.vae_only)
            rc = bench_umt5(be, prec, &man, ids, &a, &err);
        if (rc == 0 && (a.use_cpu || a.vae_prec[p]))
            rc = bench_vae(be, prec, &man, z, &a, &err);
        if (be)
            be_destroy(be);
    }
    st_close(inputs);
    model_manifest_free(&man);
    if (rc < 0) {
        fprintf(stderr, "bench_cuda_text_vae: %s\n", err.msg);
        return 1;
    }
    return 0;
}
