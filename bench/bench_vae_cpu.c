// deps: au_vae au_cpu au_io au_core
/* bench_vae_cpu.c - seconds to decode (and encode) with the Wan2.1 VAE on the CPU backend.
 *
 * The real Wan2.1 VAE shape (dim 96, multipliers [1,2,4,4], z_dim 16, 127 M parameters)
 * with random float32 weights under the official names (vae_list_tensors), written once
 * to a temporary safetensors file and memory-mapped. Decodes a [16, F, h, w] latent
 * (default 16 x 3 x 16 x 16 -> 3 x 9 x 128 x 128) and encodes the video back. FLOP per
 * conv 2 Cout Cin kt kh kw T' H' W', counted per chunk along the decoder/encoder
 * layouts (chunk 0: 1 frame at every level; later chunks 1, 2, 4, 4 frames from the
 * latent level up). The reference measured in the same run is one top-level 3x3x3 conv
 * (96 -> 96 channels over a steady chunk's 4+2 frames at the output size); the ratio is
 * the VAE's GFLOP/s over that conv's. Also printed: the memory plan of an 832x480,
 * 81-frame decode (the working set of one chunk and the causal histories).
 * Usage: bench_vae_cpu [threads] [latent_frames] [latent_h] [latent_w]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_vae.h"

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

/* Collects the tensor list into st_entry rows with random float32 data. */
typedef struct writer {
    st_entry e[512];
    int n, failed;
} writer;

static void add_tensor(const char *name, int ndim, const int64_t *shape, void *user) {
    writer *w = user;
    if (w->n == 512) {
        w->failed = 1;
        return;
    }
    au_tensor t = au_tensor_make(AU_F32, NULL, ndim, shape);
    int64_t n = au_numel(&t), fan_in = ndim > 1 ? n / shape[0] : 1;
    float *p = malloc((size_t)n * sizeof *p);
    char *nm = strdup(name);
    if (!p || !nm) {
        free(p);
        free(nm);
        w->failed = 1;
        return;
    }
    int gamma = strstr(name, "gamma") != NULL, bias = ndim == 1 && !gamma;
    for (int64_t i = 0; i < n; i++)
        p[i] = gamma ? 1.0f + 0.1f * urand() : (bias ? 0.05f : 1.5f / sqrtf((float)fan_in)) * urand();
    t.data = p;
    w->e[w->n].name = nm;
    w->e[w->n].tensor = t;
    w->n++;
}

static double conv_flop(double cout, double cin, double k, double t, double h, double w) {
    return 2.0 * cout * cin * k * t * h * w;
}

static double res_flop(double cin, double cout, double t, double h, double w) {
    return conv_flop(cout, cin, 27, t, h, w) + conv_flop(cout, cout, 27, t, h, w) +
           (cin != cout ? conv_flop(cout, cin, 1, t, h, w) : 0);
}

static double mid_flop(double c, double h, double w) { /* T = 1 at the latent level */
    double hw = h * w;
    return 2 * res_flop(c, c, 1, h, w) + 2 * 4 * c * c * hw + 4 * hw * hw * c;
}

/* Decoder FLOP of one chunk (first: 1 frame everywhere; else 1, 2, 4, 4 frames per level). */
static double decode_chunk_flop(const vae_config *c, int first, double h, double w) {
    double top = c->dim * c->dim_mult[3], t = 1;
    double f = conv_flop(16, 16, 2, 1, h, w) + conv_flop(top, 16, 27, 1, h, w) + mid_flop(top, h, w);
    double cin = top;
    for (int i = 0; i < 4; i++) {
        double cout = c->dim * c->dim_mult[3 - i];
        if (i > 0)
            cin /= 2;
        for (int j = 0; j <= c->num_res_blocks; j++, cin = cout)
            f += res_flop(cin, cout, t, h, w);
        if (i == 3)
            break;
        if (c->temporal_downsample[2 - i] && !first) {
            f += conv_flop(2 * cout, cout, 3, t, h, w);
            t *= 2;
        }
        h *= 2;
        w *= 2;
        f += conv_flop(cout / 2, cout, 9, t, h, w);
    }
    return f + conv_flop(3, c->dim * c->dim_mult[0], 27, t, h, w);
}

/* Encoder FLOP of one chunk of 1 (first) or 4 frames at H x W. */
static double encode_chunk_flop(const vae_config *c, int first, double h, double w) {
    double t = first ? 1 : 4, cin = c->dim, cout = cin;
    double f = conv_flop(c->dim, 3, 27, t, h, w);
    for (int i = 0; i < 4; i++) {
        cout = c->dim * c->dim_mult[i];
        for (int j = 0; j < c->num_res_blocks; j++, cin = cout)
            f += res_flop(cin, cout, t, h, w);
        if (i == 3)
            break;
        h /= 2;
        w /= 2;
        f += conv_flop(cout, cout, 9, t, h, w);
        if (c->temporal_downsample[i] && !first) {
            t /= 2;
            f += conv_flop(cout, cout, 3, t, h, w);
        }
    }
    return f + mid_flop(cout, h, w) + conv_flop(32, cout, 27, t, h, w) + conv_flop(16, 32, 2, t, h, w);
}

#define DIE(...)                                                                                                   \
    do {                                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                                              \
        fprintf(stderr, "\n");                                                                                     \
        return 1;                                                                                                  \
    } while (0)

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    int64_t F = argc > 2 ? atoi(argv[2]) : 3, h = argc > 3 ? atoi(argv[3]) : 16, w = argc > 4 ? atoi(argv[4]) : h;
    if (F < 1 || h < 1 || w < 1)
        DIE("usage: bench_vae_cpu [threads] [latent_frames] [latent_h] [latent_w]");
    vae_config cfg;
    vae_config_default(&cfg);
    au_err err = {0};
    char path[128];
    snprintf(path, sizeof path, "/tmp/bench_vae_%d.safetensors", (int)getpid());

    static writer wr;
    double t0 = now_seconds();
    if (vae_list_tensors(&cfg, add_tensor, &wr, &err) < 0 || wr.failed)
        DIE("tensor list: %s", wr.failed ? "out of memory" : err.msg);
    int64_t params = 0;
    for (int i = 0; i < wr.n; i++)
        params += au_numel(&wr.e[i].tensor);
    int rc = st_write(path, wr.e, wr.n, NULL, &err);
    for (int i = 0; i < wr.n; i++) {
        free(wr.e[i].tensor.data);
        free((char *)wr.e[i].name);
    }
    if (rc < 0)
        DIE("%s", err.msg);
    double t_write = now_seconds() - t0;

    au_backend *be = NULL;
    st_set *st = NULL;
    wan_vae *v = NULL;
    if (be_cpu_create(&be, threads, &err) < 0 || st_open(&st, path, &err) < 0)
        DIE("%s", err.msg);
    t0 = now_seconds();
    if (vae_load(&v, be, st, &cfg, &err) < 0)
        DIE("%s", err.msg);
    double t_load = now_seconds() - t0;
    au_arena *job = be_arena_create(be, 1 << 20), *act = be_arena_create(be, 1 << 20);
    int64_t T = 1 + 4 * (F - 1), H = 8 * h, W = 8 * w;
    int64_t zs[4] = {16, F, h, w}, vs[4] = {3, T, H, W};
    au_tensor z, video, z2;
    if (!job || !act || be_arena_tensor(job, AU_F32, 4, zs, &z, &err) < 0 ||
        be_arena_tensor(job, AU_F32, 4, vs, &video, &err) < 0 || be_arena_tensor(job, AU_F32, 4, zs, &z2, &err) < 0)
        DIE("%s", err.msg);
    float *zh = malloc((size_t)au_numel(&z) * sizeof *zh);
    if (!zh)
        DIE("out of memory");
    for (int64_t i = 0; i < au_numel(&z); i++)
        zh[i] = urand() * 1.7f;
    if (be_upload(be, &z, zh, &err) < 0)
        DIE("%s", err.msg);

    double t_dec[2], t_enc;
    for (int r = 0; r < 2; r++) {
        t0 = now_seconds();
        if (vae_decode(v, act, &z, &video, &err) < 0 || be_sync(be, &err) < 0)
            DIE("%s", err.msg);
        t_dec[r] = now_seconds() - t0;
    }
    vae_mem_stats ms;
    vae_get_mem_stats(v, &ms);
    t0 = now_seconds();
    if (vae_encode(v, act, &video, &z2, &err) < 0 || be_sync(be, &err) < 0)
        DIE("%s", err.msg);
    t_enc = now_seconds() - t0;

    /* reference: one top-level conv of a steady decoder chunk */
    int C = cfg.dim * cfg.dim_mult[0];
    int64_t xs[4] = {C, 6, H, W}, ys[4] = {C, 4, H, W}, ws[5] = {C, C, 3, 3, 3}, bs[1] = {C};
    au_tensor cx, cy, cw, cb;
    be_arena_reset(act);
    if (be_arena_tensor(act, AU_F32, 4, xs, &cx, &err) < 0 || be_arena_tensor(act, AU_F32, 4, ys, &cy, &err) < 0 ||
        be_arena_tensor(act, AU_F32, 5, ws, &cw, &err) < 0 || be_arena_tensor(act, AU_F32, 1, bs, &cb, &err) < 0 ||
        be_fill(be, &cx, 0.5f, &err) < 0 || be_fill(be, &cw, 0.01f, &err) < 0 || be_fill(be, &cb, 0.0f, &err) < 0)
        DIE("%s", err.msg);
    const int stride[3] = {1, 1, 1}, pad[6] = {0, 0, 1, 1, 1, 1};
    double t_conv = 1e30;
    for (int r = 0; r < 3; r++) {
        t0 = now_seconds();
        if (be_conv3d(be, &cy, &cx, &cw, &cb, stride, pad, &err) < 0 || be_sync(be, &err) < 0)
            DIE("%s", err.msg);
        double dt = now_seconds() - t0;
        t_conv = dt < t_conv ? dt : t_conv;
    }
    double f_conv = conv_flop(C, C, 27, 4, H, W) / 1e9;
    double f_dec = (decode_chunk_flop(&cfg, 1, h, w) + (F - 1) * decode_chunk_flop(&cfg, 0, h, w)) / 1e9;
    double f_enc = (encode_chunk_flop(&cfg, 1, H, W) + (F - 1) * encode_chunk_flop(&cfg, 0, H, W)) / 1e9;
    double r_conv = f_conv / t_conv;

    vae_mem_stats plan;
    if (vae_plan_decode(v, 21, 60, 104, &plan, &err) < 0)
        DIE("%s", err.msg);

    printf("Wan2.1 VAE on the CPU backend (%s threads), dim %d, %.1f M params f32 (written in %.1f s, loaded in %.2f s)\n",
           threads ? argv[1] : "all", cfg.dim, params / 1e6, t_write, t_load);
    printf("| case | shape | seconds | GFLOP | GFLOP/s | vs conv |\n|---|---|---|---|---|---|\n");
    printf("| decode, first call | [16,%lld,%lld,%lld] -> [3,%lld,%lld,%lld] | %.2f | %.1f | %.1f | %.2f |\n",
           (long long)F, (long long)h, (long long)w, (long long)T, (long long)H, (long long)W, t_dec[0], f_dec,
           f_dec / t_dec[0], f_dec / t_dec[0] / r_conv);
    printf("| decode, repeat | same | %.2f | %.1f | %.1f | %.2f |\n", t_dec[1], f_dec, f_dec / t_dec[1],
           f_dec / t_dec[1] / r_conv);
    printf("| decode, per latent frame | | %.2f | | | |\n", t_dec[1] / F);
    printf("| encode | [3,%lld,%lld,%lld] -> [16,%lld,%lld,%lld] | %.2f | %.1f | %.1f | %.2f |\n", (long long)T,
           (long long)H, (long long)W, (long long)F, (long long)h, (long long)w, t_enc, f_enc, f_enc / t_enc,
           f_enc / t_enc / r_conv);
    printf("| reference: conv3d %d->%d k3 | [%d,6,%lld,%lld] -> [%d,4,..] | %.3f | %.1f | %.1f | 1.00 |\n", C, C, C,
           (long long)H, (long long)W, C, t_conv, f_conv, r_conv);
    printf("memory of this decode: chunk working set %.1f MB, histories %.1f MB, weights %.1f MB\n",
           ms.chunk_bytes / 1e6, ms.cache_bytes / 1e6, ms.weight_bytes / 1e6);
    printf("plan of an 832x480, 81-frame decode (latent [16,21,60,104]): chunk working set %.2f GB, histories %.2f GB\n",
           plan.chunk_bytes / 1e9, plan.cache_bytes / 1e9);

    free(zh);
    be_arena_destroy(act);
    be_arena_destroy(job);
    vae_free(v);
    st_close(st);
    be_destroy(be);
    unlink(path);
    return 0;
}
