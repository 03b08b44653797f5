// deps: au_dit au_cpu au_io au_core
/* bench_dit_cpu.c - seconds per Wan2.1 DiT forward on the CPU backend.
 *
 * Two models with random bf16 weights under the official key names: a tiny config
 * (dim 256, 2 layers) and the T2V-1.3B shape (dim 1536, FFN 8960, 12 heads, 30 layers,
 * text_dim 4096), both on a [16, 5, 16, 16] latent (5 x 8 x 8 = 320 tokens) with a
 * 32-token prompt. Tensors of one shape share one random buffer; the model is written
 * once to a temporary safetensors file and memory-mapped (the CPU backend reads bf16
 * matrices in place), so host memory stays near one copy of the weights (2.8 GB for
 * 1.3B). FLOP per forward, N tokens, T = text_len:
 *   2 N (C*4*D + L (6 D^2 + 2 D ffn) + D*4*C_out) + L (4 N^2 D + 4 N T D)
 * and per prompt 2 T (text_dim D + D^2 + 2 L D^2). The table gives load, prompt
 * preparation, the first forward (RoPE table and arena growth included) and the best
 * of the repeats with its GFLOP/s. Usage: bench_dit_cpu [repeats_1.3b] [threads]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_dit.h"

enum { LAT_F = 5, LAT_H = 16, LAT_W = 16, CTX_LEN = 32 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) { /* [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* n bf16 values uniform in center +- spread (NULL when out of memory). */
static uint16_t *random_bf16(int64_t n, float center, float spread) {
    uint16_t *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; p && i < n; i++)
        p[i] = au_f32_to_bf16(center + spread * urand());
    return p;
}

/* Shared random buffers, one per tensor shape of the model. */
enum { B_PATCH, B_TEXT0, B_TIME0, B_DD, B_DD6, B_FFN0, B_FFN2, B_HEAD, B_BIAS, B_NORM, B_MOD, B_COUNT };

static int write_model(const char *path, const dit_config *c, au_err *err) {
    const int64_t D = c->dim, pv = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    const int64_t big = 6 * D > c->ffn_dim ? 6 * D : c->ffn_dim;
    uint16_t *buf[B_COUNT] = {
        random_bf16(D * c->in_dim * pv, 0.0f, 1.7f / 8.0f),
        random_bf16(D * c->text_dim, 0.0f, 1.7f / 64.0f),
        random_bf16(D * c->freq_dim, 0.0f, 1.7f / 16.0f),
        random_bf16(D * D, 0.0f, 1.7f / 40.0f),
        random_bf16(6 * D * D, 0.0f, 1.7f / 40.0f),
        random_bf16((int64_t)c->ffn_dim * D, 0.0f, 1.7f / 40.0f),
        random_bf16(D * c->ffn_dim, 0.0f, 1.7f / 95.0f),
        random_bf16(c->out_dim * pv * D, 0.0f, 1.7f / 40.0f),
        random_bf16(big, 0.0f, 0.05f),
        random_bf16(D, 1.0f, 0.2f),
        random_bf16(6 * D, 0.0f, 0.05f),
    };
    const int cap = 15 + 27 * c->num_layers;
    st_entry *e = calloc((size_t)cap, sizeof *e);
    char(*names)[96] = calloc((size_t)cap, sizeof *names);
    int n = 0, rc = 0, have_all = e && names;
    for (int i = 0; i < B_COUNT; i++)
        have_all = have_all && buf[i];
    if (!have_all) {
        rc = au_errf(err, AU_ENOMEM, "bench: random weights");
        goto done;
    }
#define ENTRY(b, nd, ...)                                                                          \
    do {                                                                                           \
        const int64_t shape_[] = __VA_ARGS__;                                                      \
        e[n].name = names[n];                                                                      \
        e[n].tensor = au_tensor_make(AU_BF16, buf[b], nd, shape_);                                 \
        n++;                                                                                       \
    } while (0)
#define NAME(...) snprintf(names[n], sizeof names[n], __VA_ARGS__)
    NAME("patch_embedding.weight"); ENTRY(B_PATCH, 5, {D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]});
    NAME("patch_embedding.bias"); ENTRY(B_BIAS, 1, {D});
    NAME("text_embedding.0.weight"); ENTRY(B_TEXT0, 2, {D, c->text_dim});
    NAME("text_embedding.0.bias"); ENTRY(B_BIAS, 1, {D});
    NAME("text_embedding.2.weight"); ENTRY(B_DD, 2, {D, D});
    NAME("text_embedding.2.bias"); ENTRY(B_BIAS, 1, {D});
    NAME("time_embedding.0.weight"); ENTRY(B_TIME0, 2, {D, c->freq_dim});
    NAME("time_embedding.0.bias"); ENTRY(B_BIAS, 1, {D});
    NAME("time_embedding.2.weight"); ENTRY(B_DD, 2, {D, D});
    NAME("time_embedding.2.bias"); ENTRY(B_BIAS, 1, {D});
    NAME("time_projection.1.weight"); ENTRY(B_DD6, 2, {6 * D, D});
    NAME("time_projection.1.bias"); ENTRY(B_BIAS, 1, {6 * D});
    for (int l = 0; l < c->num_layers; l++) {
        static const char *const att[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            for (const char *p = "qkvo"; *p; p++) {
                NAME("blocks.%d.%s.%c.weight", l, att[a], *p); ENTRY(B_DD, 2, {D, D});
                NAME("blocks.%d.%s.%c.bias", l, att[a], *p); ENTRY(B_BIAS, 1, {D});
            }
            NAME("blocks.%d.%s.norm_q.weight", l, att[a]); ENTRY(B_NORM, 1, {D});
            NAME("blocks.%d.%s.norm_k.weight", l, att[a]); ENTRY(B_NORM, 1, {D});
        }
        NAME("blocks.%d.norm3.weight", l); ENTRY(B_NORM, 1, {D});
        NAME("blocks.%d.norm3.bias", l); ENTRY(B_BIAS, 1, {D});
        NAME("blocks.%d.ffn.0.weight", l); ENTRY(B_FFN0, 2, {c->ffn_dim, D});
        NAME("blocks.%d.ffn.0.bias", l); ENTRY(B_BIAS, 1, {c->ffn_dim});
        NAME("blocks.%d.ffn.2.weight", l); ENTRY(B_FFN2, 2, {D, c->ffn_dim});
        NAME("blocks.%d.ffn.2.bias", l); ENTRY(B_BIAS, 1, {D});
        NAME("blocks.%d.modulation", l); ENTRY(B_MOD, 3, {1, 6, D});
    }
    NAME("head.head.weight"); ENTRY(B_HEAD, 2, {c->out_dim * pv, D});
    NAME("head.head.bias"); ENTRY(B_BIAS, 1, {c->out_dim * pv});
    NAME("head.modulation"); ENTRY(B_MOD, 3, {1, 2, D});
#undef NAME
#undef ENTRY
    rc = st_write(path, e, n, NULL, err);
done:
    for (int i = 0; i < B_COUNT; i++)
        free(buf[i]);
    free(e);
    free(names);
    return rc;
}

typedef struct bench_row {
    const char *name;
    dit_config cfg;
    int repeats;
} bench_row;

static int bench_one(au_backend *be, const bench_row *row, const char *path, au_err *err) {
    const dit_config *c = &row->cfg;
    st_set *st = NULL;
    wan_dit *d = NULL;
    dit_text *text = NULL;
    au_arena *act = NULL, *job = NULL;
    int rc = write_model(path, c, err);
    if (rc < 0)
        return rc;
    double t0 = now_seconds();
    if ((rc = st_open(&st, path, err)) < 0 || (rc = dit_load(&d, be, st, c, err)) < 0)
        goto done;
    double load_s = now_seconds() - t0;
    act = be_arena_create(be, 1 << 20);
    job = be_arena_create(be, 1 << 20);
    if (!act || !job) {
        rc = au_errf(err, AU_ENOMEM, "bench: arenas");
        goto done;
    }
    const int64_t xs[4] = {c->in_dim, LAT_F, LAT_H, LAT_W}, os[4] = {c->out_dim, LAT_F, LAT_H, LAT_W};
    const int64_t cs[2] = {CTX_LEN, c->text_dim};
    au_tensor x, out, ctx;
    if ((rc = be_arena_tensor(job, AU_F32, 4, xs, &x, err)) < 0 ||
        (rc = be_arena_tensor(job, AU_F32, 4, os, &out, err)) < 0 ||
        (rc = be_arena_tensor(job, AU_F32, 2, cs, &ctx, err)) < 0)
        goto done;
    int64_t n_x = au_numel(&x), n_ctx = au_numel(&ctx);
    float *host = malloc((size_t)(n_x > n_ctx ? n_x : n_ctx) * sizeof(float));
    if (!host) {
        rc = au_errf(err, AU_ENOMEM, "bench: inputs");
        goto done;
    }
    for (int64_t i = 0; i < n_x; i++)
        host[i] = urand();
    rc = be_upload(be, &x, host, err);
    for (int64_t i = 0; rc == 0 && i < n_ctx; i++)
        host[i] = 0.3f * urand();
    if (rc == 0)
        rc = be_upload(be, &ctx, host, err);
    free(host);
    if (rc < 0)
        goto done;

    t0 = now_seconds();
    if ((rc = dit_prepare_text(d, job, &ctx, &text, err)) < 0 || (rc = be_sync(be, err)) < 0)
        goto done;
    double text_s = now_seconds() - t0;
    t0 = now_seconds();
    if ((rc = dit_forward(d, act, &x, 900.0f, text, &out, err)) < 0 || (rc = be_sync(be, err)) < 0)
        goto done;
    double first_s = now_seconds() - t0, best_s = 1e30;
    for (int r = 0; r < row->repeats; r++) {
        t0 = now_seconds();
        if ((rc = dit_forward(d, act, &x, 900.0f - 10.0f * r, text, &out, err)) < 0 || (rc = be_sync(be, err)) < 0)
            goto done;
        double s = now_seconds() - t0;
        best_s = s < best_s ? s : best_s;
    }
    const double D = c->dim, L = c->num_layers, T = c->text_len;
    const double pv = (double)c->patch[0] * c->patch[1] * c->patch[2];
    const double N = (double)(LAT_F / c->patch[0]) * (LAT_H / c->patch[1]) * (LAT_W / c->patch[2]);
    double flop = 2 * N * (c->in_dim * pv * D + L * (6 * D * D + 2 * D * c->ffn_dim) + D * pv * c->out_dim) +
                  L * (4 * N * N * D + 4 * N * T * D);
    printf("| %-8s | %4d | %6d | %6.0f | %6.1f | %6.2f | %7.3f | %8.3f | %8.3f | %7.1f |\n", row->name, c->dim,
           c->num_layers, N, flop * 1e-9, load_s, text_s, first_s, best_s, flop / best_s * 1e-9);
done:
    dit_text_free(text);
    be_arena_destroy(act);
    be_arena_destroy(job);
    dit_free(d);
    st_close(st);
    unlink(path);
    return rc;
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 2;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    if (repeats < 1 || threads < 0) {
        fprintf(stderr, "usage: %s [repeats_1.3b >= 1] [threads, 0 = all]\n", argv[0]);
        return 2;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/bench_dit_%d.safetensors", tmp, (int)getpid());
    au_err err = {0};
    au_backend *be = NULL;
    if (be_cpu_create(&be, threads, &err) < 0) {
        fprintf(stderr, "be_cpu_create: %s\n", err.msg);
        return 1;
    }
    /* dim, ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_len, text_dim, patch, eps */
    const bench_row rows[2] = {
        {"tiny", {256, 512, 256, 2, 2, 16, 16, 512, 512, {1, 2, 2}, 1e-6f}, 10},
        {"1.3B", {1536, 8960, 256, 12, 30, 16, 16, 512, 4096, {1, 2, 2}, 1e-6f}, repeats},
    };
    printf("Wan2.1 DiT forward, latent [16, %d, %d, %d], %d-token prompt, CPU backend (%s threads), bf16 weights\n",
           LAT_F, LAT_H, LAT_W, CTX_LEN, threads ? argv[2] : "all");
    printf("| config   | dim  | layers | tokens | GFLOP  | load s | text s  | first s  | best s   | GFLOP/s |\n");
    printf("| -------- | ---- | ------ | ------ | ------ | ------ | ------- | -------- | -------- | ------- |\n");
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = bench_one(be, &rows[i], path, &err);
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", rows[i].name, err.msg);
    }
    be_destroy(be);
    return rc < 0 ? 1 : 0;
}
