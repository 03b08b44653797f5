// deps: au_cuda au_dit au_io au_core
/* bench_cuda_dit.c - one Wan2.1 DiT forward on the CUDA backend, FP8 and bf16, at a real shape
 * with random weights: seconds per forward, TFLOP/s, peak device memory, and the outputs for
 * bench/torch_dit.py to measure against a float32 PyTorch forward of the same weights.
 *
 *   bench_cuda_dit DIR [--model 1.3B|14B] [--layers N] [--grid F H W] [--iters K]
 * Default: 1.3B (dim 1536, FFN 8960, 12 heads, 30 layers) at 832x480, 81 frames, i.e. a latent
 * [16, 21, 60, 104] and 32760 tokens; text context of 77 rows of 4096.
 * Weights are drawn like PyTorch's default init (uniform +-1/sqrt(fan_in) for linear weights,
 * biases small, norm gains near 1, modulation about +-0.1), stored bf16 in DIR/dit.safetensors;
 * inputs (x, context, t) in DIR/inputs.safetensors; outputs in DIR/out_<precision>.safetensors.
 * FLOPs counted: per layer 12 N D^2 + 4 N D FFN (linears) + 4 N^2 D + 4 N 512 D (attention), the
 * model's own count as PyTorch runs it (the cross-attention here computes 78 of the 512 text rows:
 * the padding rows are one row counted 435 times, see wan_dit.c), so TFLOP/s compare like for like.
 * Prints "RESULT dit <model> <precision> <ms> <TFLOP/s>" for device.sh.
 */
#include "backend.h"
#include "kernels/cuda_backend.h"
#include "safetensors.h"
#include "wan_dit.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        if ((expr) < 0) {                                                                                          \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, err.msg);                               \
            exit(1);                                                                                               \
        }                                                                                                          \
    } while (0)

static au_err err;
static uint64_t rng = 0x853c49e6748fea9bull;

static float urand(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

typedef struct wlist {
    st_entry *e;
    char **names;
    int n, cap;
} wlist;

/* A bf16 tensor of uniform values center + amp * [-1, 1). */
static void add_bf16(wlist *l, const char *name, int ndim, const int64_t *shape, float center, float amp) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = realloc(l->e, (size_t)l->cap * sizeof *l->e);
        l->names = realloc(l->names, (size_t)l->cap * sizeof *l->names);
        if (!l->e || !l->names)
            exit(1);
    }
    au_tensor t = au_tensor_make(AU_BF16, NULL, ndim, shape);
    int64_t n = au_numel(&t);
    uint16_t *d = xmalloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++)
        d[i] = au_f32_to_bf16(center + amp * urand());
    t.data = d;
    l->names[l->n] = strdup(name);
    l->e[l->n].name = l->names[l->n];
    l->e[l->n].tensor = t;
    l->n++;
}

static void add_linear(wlist *l, const char *prefix, int64_t out, int64_t in) {
    char name[192];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_bf16(l, name, 2, ws, 0.0f, 1.0f / sqrtf((float)in));
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_bf16(l, name, 1, bs, 0.0f, 0.02f);
}

static void make_weights(wlist *l, int64_t D, int64_t FFN, int layers) {
    int64_t pe[5] = {D, 16, 1, 2, 2}, pb[1] = {D}, vec[1] = {D}, mod6[3] = {1, 6, D}, mod2[3] = {1, 2, D};
    add_bf16(l, "patch_embedding.weight", 5, pe, 0.0f, 0.125f);
    add_bf16(l, "patch_embedding.bias", 1, pb, 0.0f, 0.02f);
    add_linear(l, "text_embedding.0", D, 4096);
    add_linear(l, "text_embedding.2", D, D);
    add_linear(l, "time_embedding.0", D, 256);
    add_linear(l, "time_embedding.2", D, D);
    add_linear(l, "time_projection.1", 6 * D, D);
    char p[160];
    for (int i = 0; i < layers; i++) {
        static const char *const att[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            static const char *const proj[4] = {"q", "k", "v", "o"};
            for (int j = 0; j < 4; j++) {
                snprintf(p, sizeof p, "blocks.%d.%s.%s", i, att[a], proj[j]);
                add_linear(l, p, D, D);
            }
            snprintf(p, sizeof p, "blocks.%d.%s.norm_q.weight", i, att[a]);
            add_bf16(l, p, 1, vec, 1.0f, 0.1f);
            snprintf(p, sizeof p, "blocks.%d.%s.norm_k.weight", i, att[a]);
            add_bf16(l, p, 1, vec, 1.0f, 0.1f);
        }
        snprintf(p, sizeof p, "blocks.%d.norm3.weight", i);
        add_bf16(l, p, 1, vec, 1.0f, 0.1f);
        snprintf(p, sizeof p, "blocks.%d.norm3.bias", i);
        add_bf16(l, p, 1, vec, 0.0f, 0.02f);
        snprintf(p, sizeof p, "blocks.%d.ffn.0", i);
        add_linear(l, p, FFN, D);
        snprintf(p, sizeof p, "blocks.%d.ffn.2", i);
        add_linear(l, p, D, FFN);
        snprintf(p, sizeof p, "blocks.%d.modulation", i);
        add_bf16(l, p, 3, mod6, 0.0f, 0.1f);
    }
    add_linear(l, "head.head", 64, D);
    add_bf16(l, "head.modulation", 3, mod2, 0.0f, 0.1f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cuda_dit DIR [--model 1.3B|14B] [--layers N] [--grid F H W] [--iters K]\n");
        return 2;
    }
    if (be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    const char *dir = argv[1], *model = "1.3B";
    int layers = -1, iters = 3;
    int64_t F = 21, H = 60, W = 104, D = 1536, FFN = 8960;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--grid") && i + 3 < argc) {
            F = atoll(argv[++i]);
            H = atoll(argv[++i]);
            W = atoll(argv[++i]);
        }
    }
    int is14 = !strcmp(model, "14B");
    if (is14)
        D = 5120, FFN = 13824;
    if (layers < 0)
        layers = is14 ? 40 : 30;
    char path[1024], wpath[1024];
    snprintf(wpath, sizeof wpath, "%s/dit.safetensors", dir);

    double t0 = now_s();
    wlist wl = {0};
    make_weights(&wl, D, FFN, layers);
    TRY(st_write(wpath, wl.e, wl.n, NULL, &err));
    for (int i = 0; i < wl.n; i++) {
        free(wl.e[i].tensor.data);
        free(wl.names[i]);
    }
    free(wl.e);
    free(wl.names);
    /* inputs: latent ~ uniform with unit variance, context like a text encoder's output */
    int64_t xs[4] = {16, F, H, W}, cshape[2] = {77, 4096}, one = 1;
    au_tensor hx = au_tensor_make(AU_F32, NULL, 4, xs), hc = au_tensor_make(AU_F32, NULL, 2, cshape);
    hx.data = xmalloc(au_nbytes(&hx));
    hc.data = xmalloc(au_nbytes(&hc));
    for (int64_t i = 0; i < au_numel(&hx); i++)
        ((float *)hx.data)[i] = 1.7320508f * urand();
    for (int64_t i = 0; i < au_numel(&hc); i++)
        ((float *)hc.data)[i] = 0.2f * urand();
    float tval = 500.0f;
    st_entry ins[3] = {{"x", hx}, {"context", hc}, {"t", au_tensor_make(AU_F32, &tval, 1, &one)}};
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    TRY(st_write(path, ins, 3, NULL, &err));
    printf("weights and inputs written in %.1f s\n", now_s() - t0);

    st_set *st;
    TRY(st_open(&st, wpath, &err));
    dit_config cfg;
    TRY(dit_config_infer(st, &cfg, &err));
    int64_t n_tok = F * (H / 2) * (W / 2);
    double flops = (double)layers * (12.0 * n_tok * D * D + 4.0 * n_tok * D * FFN + 4.0 * (double)n_tok * n_tok * D +
                                     4.0 * n_tok * 512 * D);
    static const int precs[2] = {BE_CUDA_FP8, BE_CUDA_BF16};
    static const char *const names[2] = {"fp8", "bf16"};
    float *host_out = xmalloc(au_nbytes(&hx));
    for (int p = 0; p < 2; p++) {
        au_backend *be;
        be_cuda_opts o = {0, precs[p]};
        TRY(be_cuda_create(&be, &o, &err));
        size_t free0 = 0, total = 0;
        cudaMemGetInfo(&free0, &total);
        wan_dit *dit;
        t0 = now_s();
        TRY(dit_load(&dit, be, st, &cfg, &err));
        double load_s = now_s() - t0;
        au_arena *job = be_arena_create(be, 64 << 20), *text_arena = be_arena_create(be, 64 << 20);
        au_arena *act = be_arena_create(be, 256 << 20);
        au_tensor x, ctx, out;
        TRY(be_arena_tensor(job, AU_F32, 4, xs, &x, &err));
        TRY(be_arena_tensor(job, AU_F32, 4, xs, &out, &err));
        TRY(be_arena_tensor(job, AU_F32, 2, cshape, &ctx, &err));
        TRY(be_upload(be, &x, hx.data, &err));
        TRY(be_upload(be, &ctx, hc.data, &err));
        dit_text *text;
        TRY(dit_prepare_text(dit, text_arena, &ctx, &text, &err));
        TRY(dit_forward(dit, act, &x, tval, text, &out, &err)); /* warm-up: plans, scratch, arena growth */
        TRY(be_sync(be, &err));
        be_cuda_stats s0;
        TRY(be_cuda_get_stats(be, &s0, &err));
        uint64_t act_allocs = be_arena_chunk_allocs(act);
        t0 = now_s();
        for (int i = 0; i < iters; i++)
            TRY(dit_forward(dit, act, &x, tval, text, &out, &err));
        TRY(be_sync(be, &err));
        double ms = (now_s() - t0) * 1e3 / iters;
        size_t free1 = 0;
        cudaMemGetInfo(&free1, &total);
        be_cuda_stats s1;
        TRY(be_cuda_get_stats(be, &s1, &err));
        printf("RESULT dit %s %s %.1f %.1f\n", model, names[p], ms, flops / (ms * 1e-3) / 1e12);
        printf("# %s: load %.1f s; device memory in use %.2f GiB (weights+activations+scratch %.0f MiB); "
               "allocations during the timed forwards: arena %llu, scratch %llu; CUDA graphs recorded %llu, "
               "replays %llu (the first timed forward records, the later ones replay)\n",
               names[p], load_s, (double)(free0 - free1) / 1073741824.0, (double)s1.scratch_bytes / 1048576.0,
               (unsigned long long)(be_arena_chunk_allocs(act) - act_allocs),
               (unsigned long long)(s1.scratch_allocs - s0.scratch_allocs),
               (unsigned long long)(s1.graphs_recorded - s0.graphs_recorded),
               (unsigned long long)(s1.graph_launches - s0.graph_launches));
        fflush(stdout);
        TRY(be_download(be, host_out, &out, &err));
        au_tensor ho = au_tensor_make(AU_F32, host_out, 4, xs);
        st_entry oe[1] = {{"out", ho}};
        snprintf(path, sizeof path, "%s/out_%s.safetensors", dir, names[p]);
        TRY(st_write(path, oe, 1, NULL, &err));
        dit_text_free(text);
        be_arena_destroy(act);
        be_arena_destroy(text_arena);
        be_arena_destroy(job);
        dit_free(dit);
        be_destroy(be);
    }
    free(host_out);
    free(hx.data);
    free(hc.data);
    st_close(st);
    return 0;
}
