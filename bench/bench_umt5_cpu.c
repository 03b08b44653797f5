// deps: au_umt5 au_cpu au_io au_core
/* bench_umt5_cpu.c - seconds per UMT5 encode of a 64-token prompt on the CPU backend.
 *
 * Two shapes with random bf16 weights: a tiny config, and the UMT5-XXL layer shape
 * (dim 4096, 64 heads of 64, FFN 10240) with only a few layers (argv[1], default 2) and a
 * 4096-row embedding instead of 256384 rows (a lookup costs the same whatever the vocab).
 * Tensors of one shape share one random buffer and are written once to a temporary
 * safetensors file that is memory-mapped, so host memory stays near one copy of the
 * weights. Per encode: 2 n (4 dim inner + 3 dim ffn) + 4 n^2 inner FLOP per layer.
 * The table gives the first encode (arena growth included), the best of the repeats,
 * seconds per layer, GFLOP/s, and the 24-layer XXL time extrapolated from the per-layer
 * figure. Usage: bench_umt5_cpu [xxl_layers] [threads]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "umt5.h"

#define N_TOKENS 64

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
/* n bf16 values uniform in center +- spread. */
static uint16_t *random_bf16(int64_t n, float center, float spread) {
    uint16_t *p = malloc((size_t)n * sizeof *p);
    if (!p)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        float u = (float)((rng >> 40) * (2.0 / 16777216.0)) - 1.0f;
        p[i] = au_f32_to_bf16(center + spread * u);
    }
    return p;
}

typedef struct bench_row {
    const char *name;
    umt5_config cfg;
    int repeats;
} bench_row;

/* Write a random model of cfg to path (HF names, bf16). */
static int write_model(const char *path, const umt5_config *c, au_err *err) {
    int64_t inner = (int64_t)c->num_heads * c->d_kv;
    uint16_t *emb = random_bf16((int64_t)c->vocab * c->dim, 0.0f, 1.0f);
    uint16_t *norm = random_bf16(c->dim, 1.0f, 0.1f);
    uint16_t *pos = random_bf16((int64_t)c->num_buckets * c->num_heads, 0.0f, 1.0f);
    uint16_t *qkv = random_bf16(inner * c->dim, 0.0f, 0.5f / (float)c->dim);
    uint16_t *o = random_bf16(inner * c->dim, 0.0f, 1.0f / (float)inner);
    uint16_t *up = random_bf16((int64_t)c->ffn_dim * c->dim, 0.0f, 1.0f / (float)c->dim);
    uint16_t *down = random_bf16((int64_t)c->ffn_dim * c->dim, 0.0f, 1.0f / (float)c->ffn_dim);
    int n_entries = 2 + 10 * c->num_layers, n = 0, rc = 0;
    st_entry *e = calloc((size_t)n_entries, sizeof *e);
    char(*names)[128] = calloc((size_t)n_entries, sizeof *names);
    if (!emb || !norm || !pos || !qkv || !o || !up || !down || !e || !names) {
        rc = au_errf(err, AU_ENOMEM, "bench: random weights");
        goto done;
    }
    int64_t s_emb[2] = {c->vocab, c->dim}, s_dim[1] = {c->dim}, s_pos[2] = {c->num_buckets, c->num_heads};
    int64_t s_in[2] = {inner, c->dim}, s_o[2] = {c->dim, inner};
    int64_t s_up[2] = {c->ffn_dim, c->dim}, s_down[2] = {c->dim, c->ffn_dim};
#define ENTRY(data, nd, shape, ...)                                                                \
    do {                                                                                           \
        snprintf(names[n], 128, __VA_ARGS__);                                                      \
        e[n].name = names[n];                                                                      \
        e[n].tensor = au_tensor_make(AU_BF16, data, nd, shape);                                    \
        n++;                                                                                       \
    } while (0)
    ENTRY(emb, 2, s_emb, "shared.weight");
    for (int l = 0; l < c->num_layers; l++) {
        ENTRY(norm, 1, s_dim, "encoder.block.%d.layer.0.layer_norm.weight", l);
        ENTRY(qkv, 2, s_in, "encoder.block.%d.layer.0.SelfAttention.q.weight", l);
        ENTRY(qkv, 2, s_in, "encoder.block.%d.layer.0.SelfAttention.k.weight", l);
        ENTRY(qkv, 2, s_in, "encoder.block.%d.layer.0.SelfAttention.v.weight", l);
        ENTRY(o, 2, s_o, "encoder.block.%d.layer.0.SelfAttention.o.weight", l);
        ENTRY(pos, 2, s_pos, "encoder.block.%d.layer.0.SelfAttention.relative_attention_bias.weight", l);
        ENTRY(norm, 1, s_dim, "encoder.block.%d.layer.1.layer_norm.weight", l);
        ENTRY(up, 2, s_up, "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight", l);
        ENTRY(up, 2, s_up, "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight", l);
        ENTRY(down, 2, s_down, "encoder.block.%d.layer.1.DenseReluDense.wo.weight", l);
    }
    ENTRY(norm, 1, s_dim, "encoder.final_layer_norm.weight");
#undef ENTRY
    rc = st_write(path, e, n, NULL, err);
done:
    free(emb), free(norm), free(pos), free(qkv), free(o), free(up), free(down), free(e), free(names);
    return rc;
}

/* Run one row; prints it. */
static int bench_one(au_backend *be, const bench_row *row, const char *path, au_err *err) {
    const umt5_config *c = &row->cfg;
    st_set *st = NULL;
    umt5 *m = NULL;
    au_arena *act = NULL, *outs = NULL;
    int rc = write_model(path, c, err);
    if (rc < 0)
        return rc;
    double t0 = now_seconds();
    if ((rc = st_open(&st, path, err)) < 0 || (rc = umt5_load(&m, be, st, c, err)) < 0)
        goto done;
    double load_s = now_seconds() - t0;
    act = be_arena_create(be, 1 << 20);
    outs = be_arena_create(be, 1 << 20);
    if (!act || !outs) {
        rc = au_errf(err, AU_ENOMEM, "bench: arenas");
        goto done;
    }
    int32_t ids[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % c->vocab);
    int64_t shape[2] = {N_TOKENS, c->dim};
    au_tensor out;
    if ((rc = be_arena_tensor(outs, AU_F32, 2, shape, &out, err)) < 0)
        goto done;
    t0 = now_seconds();
    if ((rc = umt5_encode(m, act, ids, N_TOKENS, &out, err)) < 0 || (rc = be_sync(be, err)) < 0)
        goto done;
    double first_s = now_seconds() - t0, best_s = 1e30;
    for (int r = 0; r < row->repeats; r++) {
        t0 = now_seconds();
        if ((rc = umt5_encode(m, act, ids, N_TOKENS, &out, err)) < 0 || (rc = be_sync(be, err)) < 0)
            goto done;
        double s = now_seconds() - t0;
        best_s = s < best_s ? s : best_s;
    }
    double inner = (double)c->num_heads * c->d_kv, n = N_TOKENS;
    double flop_layer = 2 * n * (4 * c->dim * inner + 3.0 * c->dim * c->ffn_dim) + 4 * n * n * inner;
    double per_layer = best_s / c->num_layers;
    printf("| %-10s | %4d | %6d | %4d | %6d | %6.2f | %8.4f | %8.4f | %8.4f | %7.2f | %9.2f |\n", row->name, c->dim,
           c->ffn_dim, c->num_heads, c->num_layers, load_s, first_s, best_s, per_layer,
           flop_layer / per_layer * 1e-9, per_layer * 24);
done:
    be_arena_destroy(act);
    be_arena_destroy(outs);
    umt5_free(m);
    st_close(st);
    unlink(path);
    return rc;
}

int main(int argc, char **argv) {
    int xxl_layers = argc > 1 ? atoi(argv[1]) : 2;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    if (xxl_layers < 1 || threads < 0) {
        fprintf(stderr, "usage: %s [xxl_layers >= 1] [threads, 0 = all]\n", argv[0]);
        return 2;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/bench_umt5_%d.safetensors", tmp, (int)getpid());

    au_err err = {0};
    au_backend *be = NULL;
    if (be_cpu_create(&be, threads, &err) < 0) {
        fprintf(stderr, "be_cpu_create: %s\n", err.msg);
        return 1;
    }
    bench_row rows[2] = {
        {"tiny", {1000, 256, 32, 8, 640, 4, 32, 128, 1e-6f}, 10},
        {"xxl-shape", {4096, 4096, 64, 64, 10240, xxl_layers, 32, 128, 1e-6f}, 3},
    };
    printf("UMT5 encode of %d tokens, CPU backend (%s threads), bf16 weights\n", N_TOKENS,
           threads ? argv[2] : "all");
    printf("| config     | dim  | ffn    | head | layers | load s | first s  | best s   | s/layer  | GFLOP/s | 24 layers |\n");
    printf("| ---------- | ---- | ------ | ---- | ------ | ------ | -------- | -------- | -------- | ------- | --------- |\n");
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = bench_one(be, &rows[i], path, &err);
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", rows[i].name, err.msg);
    }
    be_destroy(be);
    return rc < 0 ? 1 : 0;
}
