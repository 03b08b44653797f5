// deps: au_cuda au_core
/* bench_cuda_ops.c - the CUDA backend's GEMMs and attention at Wan2.1 shapes.
 *
 * Linear layers of one DiT block at 832x480, 81 frames (32760 tokens), 1.3B (dim 1536,
 * FFN 8960) and 14B (dim 5120, FFN 13824), through be_linear exactly as the model calls
 * it: fp8 precision = gemm input f8 (per-token scales) x e4m3 weight (per-channel scales)
 * + bias -> bf16 (or, for ffn.0, GELU -> f8 again); bf16 precision = bf16 x bf16 + bias.
 * Attention: 32760 tokens, 12 (1.3B) and 40 (14B) heads of 128, self (32760 keys) and
 * cross (512 keys; cross77: a 77-token prompt's 78 rows, the padding row counted 435 times as
 * the DiT does), bf16 q/k/v, output in the gemm input dtype as in the model: on the fp8
 * precision the self-attention runs on the 8-bit kernel (the quantization prologue included in
 * its time), the cross-attention on the bf16 one; on bf16 both run on the bf16 kernel.
 * Times are wall-clock over ITERS back-to-back launches between two be_sync calls, after
 * warm-up; inputs are random (never zeros). FLOPs: linear 2 M N K, attention 4 nq nk H D.
 * Attention runs on both kernel variants (32 queries per warp, the default, and 16, "<prec>-mt1").
 * Output lines "RESULT <kind> <name> <precision> <ms> <TFLOP/s>" are read by device.sh.
 * Flags: --quick (fewer iterations), --attn-only, --gemm-only.
 */
#include "backend.h"
#include "kernels/cuda_backend.h"

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
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Host bf16 random values in [-amp, amp). */
static uint16_t *rand_bf16(int64_t n, float amp) {
    uint16_t *p = malloc((size_t)n * 2);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        float f = amp * ((float)(rng >> 40) / 8388608.0f - 1.0f);
        p[i] = au_f32_to_bf16(f);
    }
    return p;
}

/* A device tensor of dt filled with random values (converted on the device from bf16). */
static au_tensor rand_tensor(au_backend *be, au_arena *a, au_arena *tmp, au_dtype dt, int64_t r, int64_t c, float amp) {
    int64_t shape[2] = {r, c};
    au_tensor t, b;
    TRY(be_arena_tensor(a, dt, 2, shape, &t, &err));
    TRY(be_arena_tensor(tmp, AU_BF16, 2, shape, &b, &err));
    uint16_t *h = rand_bf16(r * c, amp);
    TRY(be_upload(be, &b, h, &err));
    free(h);
    TRY(be_copy(be, &t, &b, &err));
    TRY(be_sync(be, &err));
    be_arena_reset(tmp);
    return t;
}

static au_tensor rand_weight(au_backend *be, au_arena *a, au_weight_kind kind, int64_t r, int64_t c, float amp) {
    int64_t shape[2] = {r, c};
    au_tensor src = au_tensor_make(AU_BF16, rand_bf16(r * c, amp), 2, shape), w;
    TRY(be->ops->weight_load(be, a, &src, NULL, kind, &w, &err));
    free(src.data);
    return w;
}

typedef struct gemm_shape {
    const char *name;
    int64_t m, k, n; /* tokens, in, out */
    au_act act;
    int out_gemm_in;
} gemm_shape;

static void bench_linear(au_backend *be, const char *prec, const gemm_shape *s, int iters) {
    au_arena *a = be_arena_create(be, 256 << 20), *tmp = be_arena_create(be, 256 << 20);
    au_tensor x = rand_tensor(be, a, tmp, be->gemm_in_dtype, s->m, s->k, 1.0f);
    au_tensor w = rand_weight(be, a, AU_W_MATRIX, s->n, s->k, 0.05f);
    au_tensor b = rand_weight(be, a, AU_W_VECTOR, 1, s->n, 0.1f);
    b.ndim = 1;
    b.shape[0] = s->n;
    int64_t ys[2] = {s->m, s->n};
    au_tensor y;
    TRY(be_arena_tensor(a, s->out_gemm_in ? be->gemm_in_dtype : be->act_dtype, 2, ys, &y, &err));
    for (int i = 0; i < 3; i++)
        TRY(be_linear(be, &y, &x, &w, &b, s->act, &err));
    TRY(be_sync(be, &err));
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        TRY(be_linear(be, &y, &x, &w, &b, s->act, &err));
    TRY(be_sync(be, &err));
    double ms = (now_s() - t0) * 1e3 / iters;
    double tf = 2.0 * (double)s->m * (double)s->n * (double)s->k / (ms * 1e-3) / 1e12;
    printf("RESULT gemm %s %s %.3f %.1f\n", s->name, prec, ms, tf);
    fflush(stdout);
    be_arena_destroy(tmp);
    be_arena_destroy(a);
}

/* nk keys as the model defines them; rows < nk: the last of rows key rows stands for the
 * nk - rows + 1 identical padding keys (the DiT's text, last_key_copies). TFLOP/s count all nk
 * keys, the work PyTorch does for the same result. */
typedef struct attn_shape {
    const char *name;
    int64_t nq, nk, rows;
    int heads, dim;
} attn_shape;

static void bench_attention(au_backend *be, const char *prec, const attn_shape *s, int iters) {
    au_arena *a = be_arena_create(be, 256 << 20), *tmp = be_arena_create(be, 256 << 20);
    int64_t hd = (int64_t)s->heads * s->dim;
    au_tensor q = rand_tensor(be, a, tmp, AU_BF16, s->nq, hd, 1.0f);
    au_tensor k = rand_tensor(be, a, tmp, AU_BF16, s->rows, hd, 1.0f);
    au_tensor v = rand_tensor(be, a, tmp, AU_BF16, s->rows, hd, 1.0f);
    const int64_t copies = s->nk - s->rows + 1;
    int64_t os[2] = {s->nq, hd};
    au_tensor o;
    TRY(be_arena_tensor(a, be->gemm_in_dtype, 2, os, &o, &err));
    float scale = 0.08838834764831845f; /* 1/sqrt(128) */
    for (int i = 0; i < 2; i++)
        TRY(be_attention(be, &o, &q, &k, &v, s->heads, scale, NULL, copies, &err));
    TRY(be_sync(be, &err));
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        TRY(be_attention(be, &o, &q, &k, &v, s->heads, scale, NULL, copies, &err));
    TRY(be_sync(be, &err));
    double ms = (now_s() - t0) * 1e3 / iters;
    double tf = 4.0 * (double)s->nq * (double)s->nk * s->heads * s->dim / (ms * 1e-3) / 1e12;
    printf("RESULT attn %s %s %.3f %.1f\n", s->name, prec, ms, tf);
    fflush(stdout);
    be_arena_destroy(tmp);
    be_arena_destroy(a);
}

int main(int argc, char **argv) {
    int quick = 0, attn_only = 0, gemm_only = 0;
    for (int i = 1; i < argc; i++) {
        quick |= strcmp(argv[i], "--quick") == 0;
        attn_only |= strcmp(argv[i], "--attn-only") == 0;
        gemm_only |= strcmp(argv[i], "--gemm-only") == 0;
    }
    if (be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    static const gemm_shape gemms[] = {
        {"1.3B.qkvo", 32760, 1536, 1536, AU_ACT_NONE, 0},  {"1.3B.ffn0", 32760, 1536, 8960, AU_ACT_GELU_TANH, 1},
        {"1.3B.ffn2", 32760, 8960, 1536, AU_ACT_NONE, 0},  {"14B.qkvo", 32760, 5120, 5120, AU_ACT_NONE, 0},
        {"14B.ffn0", 32760, 5120, 13824, AU_ACT_GELU_TANH, 1}, {"14B.ffn2", 32760, 13824, 5120, AU_ACT_NONE, 0},
    };
    static const attn_shape attns[] = {
        {"1.3B.self", 32760, 32760, 32760, 12, 128},
        {"1.3B.cross", 32760, 512, 512, 12, 128},
        {"1.3B.cross77", 32760, 512, 78, 12, 128}, /* a 77-token prompt: 77 rows + the padding row */
        {"14B.self", 32760, 32760, 32760, 40, 128},
    };
    static const int precs[2] = {BE_CUDA_FP8, BE_CUDA_BF16};
    static const char *const names[2] = {"fp8", "bf16"};
    for (int p = 0; p < 2; p++) {
        au_backend *be;
        be_cuda_opts o = {0, precs[p]};
        TRY(be_cuda_create(&be, &o, &err));
        if (p == 0) {
            be_cuda_stats st;
            TRY(be_cuda_get_stats(be, &st, &err));
            printf("device %s sm_%d%d, FP8 outer-vector scales: %s\n", st.device_name, st.sm_major, st.sm_minor,
                   st.fp8_outer_vec ? "yes" : "no");
        }
        for (size_t i = 0; !attn_only && i < sizeof gemms / sizeof gemms[0]; i++)
            bench_linear(be, names[p], &gemms[i], quick ? 5 : 20);
        for (size_t i = 0; !gemm_only && i < sizeof attns / sizeof attns[0]; i++)
            bench_attention(be, names[p], &attns[i], quick ? 2 : 5);
        au_backend *be16; /* the other kernel variant: 16 queries per warp */
        char name16[16];
        snprintf(name16, sizeof name16, "%s-mt1", names[p]);
        TRY(be_cuda_create(&be16, &o, &err));
        TRY(be_cuda_set_attention_variant(be16, 16, &err));
        for (size_t i = 0; !gemm_only && i < sizeof attns / sizeof attns[0]; i++)
            bench_attention(be16, name16, &attns[i], quick ? 2 : 5);
        be_destroy(be16);
        be_cuda_stats st;
        TRY(be_cuda_get_stats(be, &st, &err));
        printf("%s: gemm fused %llu, epilogue %llu, f8 as bf16 %llu; scratch %llu allocations, %.1f MiB\n", names[p],
               (unsigned long long)st.gemm_fused, (unsigned long long)st.gemm_epilogue,
               (unsigned long long)st.gemm_f8_as_bf16, (unsigned long long)st.scratch_allocs,
               (double)st.scratch_bytes / 1048576.0);
        be_destroy(be);
    }
    return 0;
}
