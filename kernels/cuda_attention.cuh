/* cuda_attention.cuh - what the attention files share: the launch description, the PTX helpers
 * of their tile loops (cp.async, ldmatrix, ex2, wgmma descriptors), the online softmax of the
 * bf16 kernels, and the entry points of the FP8 kernel (cuda_attention_fp8.cu) and the Hopper
 * bf16 kernel (cuda_attention_wgmma.cu) that cuda_attention.cu dispatches to.
 */
#ifndef AU_CUDA_ATTENTION_CUH
#define AU_CUDA_ATTENTION_CUH

#include "cuda_internal.cuh"

#include <cuda.h>

#define LOG2E 1.4426950408889634f

/* One attention call: bf16 q [nq, H*D], k and v [nk, H*D] (row stride ld elements), output out
 * of out_dtype (AU_BF16 or AU_F32) with the same stride; bias NULL or float32 [H, nq, nk];
 * scale_log2 = scale * log2(e); last_units: what the last key's score gains, in the kernels'
 * score units, for the copies of it the call stands for (0: one copy). */
typedef struct attn_launch {
    const __nv_bfloat16 *q, *k, *v;
    void *out;
    au_dtype out_dtype;
    const float *bias;
    int64_t nq, nk, ld;
    int H, D;
    float scale_log2;
    float last_units;
} attn_launch;

/* ---- PTX helpers ---- */

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, asynchronous; !valid writes zeros (src is not read). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Four 8x8 matrices of 16-byte rows; lane l gives the row address of matrix l / 8. */
__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* 16-byte chunk index within a tile of 128-byte rows after the 128-byte swizzle (chunk ^ row % 8):
 * the layout wgmma's 128B-swizzled descriptors read. */
__device__ __forceinline__ int swz128(int chunk) {
    return chunk ^ ((chunk >> 3) & 7);
}

/* ---- Hopper wgmma helpers (the sm_90a passes of cuda_attention_fp8.cu, cuda_attention_wgmma.cu) ---- */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* Descriptor of a K-major tile of 128-byte rows, 128-byte swizzle, 8-row groups 1024 bytes apart. */
__device__ __forceinline__ uint64_t wg_desc_addr(uint32_t shared_addr) {
    return (uint64_t)((shared_addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}
__device__ __forceinline__ uint64_t wg_desc(const void *tile) {
    return wg_desc_addr(smem_addr(tile));
}
/* mbarriers and bulk tensor copies (the producer / consumer rings of the Hopper kernels). */
__device__ __forceinline__ void mb_init(uint64_t *b, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count));
}
__device__ __forceinline__ void mb_expect(uint64_t *b, int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mb_arrive(uint64_t *b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(b)) : "memory");
}
/* Wait for the phase of parity `parity` to complete. */
__device__ __forceinline__ void mb_wait(uint64_t *b, int parity) {
    asm volatile("{\n.reg .pred p;\nWAIT_%=:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT_%=;\n}\n" ::
                     "r"(smem_addr(b)),
                 "r"(parity)
                 : "memory");
}
/* The barriers of a ring of ST shared-memory stages between one producer thread and `consumers`
 * warpgroups (in shared memory): tile j uses stage j % ST; "full" completes when the tile's bytes
 * have landed, "empty" when every consumer warpgroup has released it. */
template <int ST> struct mb_ring {
    uint64_t full[ST], empty[ST];
    /* by one thread, before the block barrier that publishes it */
    __device__ __forceinline__ void init(int consumers) {
        for (int i = 0; i < ST; i++) {
            mb_init(&full[i], 1);
            mb_init(&empty[i], consumers);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    /* producer: wait until tile j's stage is free, announce `bytes` for it; the copies complete on
     * the barrier returned */
    __device__ __forceinline__ uint64_t *fill(int j, int bytes) {
        mb_wait(&empty[j % ST], ((j / ST) & 1) ^ 1);
        mb_expect(&full[j % ST], bytes);
        return &full[j % ST];
    }
    /* consumer: wait until tile j has landed */
    __device__ __forceinline__ void wait(int j) { mb_wait(&full[j % ST], (j / ST) & 1); }
    /* consumer warpgroup, after its last read of tile j (its wgmmas waited for) */
    __device__ __forceinline__ void release(int j) {
        if (threadIdx.x % 128 == 0)
            mb_arrive(&empty[j % ST]);
    }
};
/* Box (x, y) of a 2-D tensor map into shared memory, completing on mbarrier bar. */
__device__ __forceinline__ void tma_load_2d(void *dst, const CUtensorMap *map, int x, int y, uint64_t *bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
                 "[%4];" ::"r"(smem_addr(dst)),
                 "l"(map), "r"(x), "r"(y), "r"(smem_addr(bar))
                 : "memory");
}
__device__ __forceinline__ void wg_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
/* Wait until at most N wgmma groups of this warpgroup are still running. */
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* Keep registers that an in-flight wgmma reads or writes where they are until it has completed. */
template <int N> __device__ __forceinline__ void wg_hold(uint32_t (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(r[i])::"memory");
}
template <int N> __device__ __forceinline__ void wg_hold(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(r[i])::"memory");
}

/* FA3's in-warpgroup overlap: one consumer warpgroup's schedule of key tiles 0..n-1 over a
 * kernel's own primitives T (fa8w_tiles, wb_tiles):
 *   issue_s(j)             S of tile j once its stage has landed (issued and committed);
 *   issue_pv(p, j)         O += P V of tile j (issued and committed);
 *   softmax(p, alpha, j)   tile j's finished S to its P, O's factor in alpha; whether O needs it;
 *   finish_pv(p, j)        wait for tile j's P V, give its stage back;
 *   rescale(alpha)         O *= alpha.
 * Each step issues S of tile j + 1 with P V of tile j and runs tile j + 1's softmax while P V
 * does (wait_group 1). Two tiles a loop so that the two P buffers trade roles without copies;
 * the last tile peeled so that no commit inside the loop is conditional (ptxas then keeps the
 * wgmmas asynchronous). */
template <class T>
__device__ __forceinline__ void overlap_step(T &t, typename T::p_frag &pj, typename T::p_frag &pn, int j) {
    wg_fence();
    t.issue_s(j + 1);
    t.issue_pv(pj, j);
    wg_wait<1>();
    float alpha[2];
    const bool rescale = t.softmax(pn, alpha, j + 1);
    t.finish_pv(pj, j);
    if (rescale)
        t.rescale(alpha);
}
template <class T> __device__ __forceinline__ void overlap_last(T &t, typename T::p_frag &p, int j) {
    wg_fence();
    t.issue_pv(p, j);
    t.finish_pv(p, j);
}
template <class T> __device__ __forceinline__ void overlap_tiles(T &t, int n) {
    typename T::p_frag pa0, pa1;
    float alpha[2];
    wg_fence();
    t.issue_s(0);
    wg_wait<0>();
    t.softmax(pa0, alpha, 0); /* O is 0: nothing to rescale */
    int j = 0;
    for (; j + 2 < n; j += 2) {
        overlap_step(t, pa0, pa1, j);
        overlap_step(t, pa1, pa0, j + 1);
    }
    if (j + 1 < n) {
        overlap_step(t, pa0, pa1, j);
        overlap_last(t, pa1, j + 1);
    } else {
        overlap_last(t, pa0, j);
    }
}
#endif

/* ---- online softmax of the bf16 kernels (cuda_attention.cu, cuda_attention_wgmma.cu) ---- */

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* P of a tile as bf16 A fragments of 16 keys each (mma.sync m16n8k16's layout, which wgmma's
 * register A shares): a[kk] from the S n-tiles 2 kk and 2 kk + 1. */
template <int NT> __device__ __forceinline__ void p_frags_bf16(uint32_t (&a)[NT / 2][4], const float (&s)[NT][4]) {
#pragma unroll
    for (int kk = 0; kk < NT / 2; kk++) {
        a[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
        a[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
        a[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}

template <typename T> __device__ __forceinline__ void store_pair(T *p, float a, float b);
template <> __device__ __forceinline__ void store_pair<bf16>(bf16 *p, float a, float b) {
    *(__nv_bfloat162 *)p = __floats2bfloat162_rn(a, b);
}
template <> __device__ __forceinline__ void store_pair<float>(float *p, float a, float b) {
    *(float2 *)p = make_float2(a, b);
}
template <typename T> __device__ __forceinline__ void store_one(T *p, float a);
template <> __device__ __forceinline__ void store_one<bf16>(bf16 *p, float a) { *p = __float2bfloat16_rn(a); }
template <> __device__ __forceinline__ void store_one<float>(float *p, float a) { *p = a; }

/* Scores are kept in "units" u: with scale_log2 > 0 (always, in the models) the raw q.k
 * (plus bias / scale) and mul = scale_log2, so that the probability 2^(u mul - m mul) is one
 * FFMA and one ex2; with scale_log2 <= 0 they are pre-multiplied and mul = 1. */
__host__ __device__ __forceinline__ float units_mul(float scale_log2) { return scale_log2 > 0.0f ? scale_log2 : 1.0f; }

/* Online softmax of a tile for the two rows a thread owns (row g: elements 0,1; row g+8: 2,3)
 * of a warp's S tile s[NT][4] (in units, masked with -inf): updates the running max m (units)
 * and this thread's partial sums l, turns s into probabilities and gives the factor O's rows
 * need in alpha; returns whether any row of the warp has a new max (else the factor is exactly
 * 1 and O can be left as it is). */
template <int NT>
__device__ __forceinline__ bool softmax_scores(float (&s)[NT][4], float m[2], float l[2], float mul, float alpha[2]) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < NT; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[t][0], s[t][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[t][2], s[t][3]));
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    float sum[2] = {0.0f, 0.0f}, msl[2];
    bool changed = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mn = fmaxf(m[r], mx[r]);
        changed |= mn != m[r];
        alpha[r] = fast_exp2((m[r] - mn) * mul);
        m[r] = mn;
        msl[r] = mn * mul;
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        s[t][0] = fast_exp2(fmaf(s[t][0], mul, -msl[0]));
        s[t][1] = fast_exp2(fmaf(s[t][1], mul, -msl[0]));
        s[t][2] = fast_exp2(fmaf(s[t][2], mul, -msl[1]));
        s[t][3] = fast_exp2(fmaf(s[t][3], mul, -msl[1]));
        sum[0] += s[t][0] + s[t][1];
        sum[1] += s[t][2] + s[t][3];
    }
    l[0] = fmaf(l[0], alpha[0], sum[0]);
    l[1] = fmaf(l[1], alpha[1], sum[1]);
    return __any_sync(0xffffffffu, changed);
}

/* o[NO][4] *= alpha of its row. */
template <int NO> __device__ __forceinline__ void rescale_o(float (&o)[NO][4], const float alpha[2]) {
#pragma unroll
    for (int t = 0; t < NO; t++) {
        o[t][0] *= alpha[0];
        o[t][1] *= alpha[0];
        o[t][2] *= alpha[1];
        o[t][3] *= alpha[1];
    }
}

/* softmax_scores, then O rescaled where it needs to be. */
template <int NT, int NO>
__device__ __forceinline__ void softmax_step(float (&s)[NT][4], float (&o)[NO][4], float m[2], float l[2], float mul) {
    float alpha[2];
    if (softmax_scores<NT>(s, m, l, mul, alpha))
        rescale_o<NO>(o, alpha);
}

/* Put a tile's raw q.k into units: add the bias and last_units to key nk - 1, mask keys >= nk.
 * col0: first key of the tile; row0: the warp's first query. A full tile without bias, not
 * holding a weighted last key, needs nothing when scale_log2 > 0 (the scale is applied in the
 * exponent). */
template <int NT, bool BIAS>
__device__ __forceinline__ void scores_fix(float (&s)[NT][4], int64_t col0, int64_t row0, int64_t nq, int64_t nk,
                                           float scale_log2, float last_units, const float *bias_h, int lane) {
    const bool partial = col0 + NT * 8 > nk, folded = scale_log2 > 0.0f;
    const bool last = last_units != 0.0f && col0 + NT * 8 >= nk;
    if (!BIAS && !partial && folded && !last)
        return;
    const float pre = folded ? 1.0f : scale_log2;                    /* units per raw q.k */
    const float bias_units = folded ? LOG2E / scale_log2 : LOG2E;    /* units per bias unit */
    const int g = lane >> 2, t4 = lane & 3;
    const int kmax = (int)(nk - col0 < NT * 8 ? nk - col0 : NT * 8); /* valid keys in this tile */
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = t * 8 + 2 * t4 + (e & 1);
            float v = s[t][e] * pre;
            if (last && c == kmax - 1)
                v += last_units;
            if (BIAS) {
                int64_t row = row0 + g + (e >> 1) * 8;
                if (row < nq && c < kmax)
                    v += bias_h[row * nk + col0 + c] * bias_units;
            }
            s[t][e] = c < kmax ? v : -INFINITY;
        }
}

/* ---- the Hopper bf16 kernel (cuda_attention_wgmma.cu) ---- */

/* Whether a call of this shape runs on it (given 16-byte aligned operands, as for the FP8 kernel):
 * the device runs the sm_90a kernels (cs->attn_wgmma), the default variant (32 queries per warp),
 * head_dim 128, no bias. */
int cuda_attention_wgmma_takes(const cuda_state *cs, int head_dim, int has_bias);
/* Device scratch it needs (the transposed V) for nk keys and H heads of 128 (256-aligned). */
size_t cuda_attention_wgmma_scratch_bytes(int64_t nk, int H);
int cuda_attention_wgmma(cuda_state *cs, const attn_launch *a, void *scratch, au_err *err);

/* ---- the FP8 kernel (cuda_attention_fp8.cu) ---- */

/* Whether a call of this shape runs on the FP8 kernel (given 16-byte aligned operands): FP8
 * precision, head_dim 128, no bias and no copies of the last key, at least CUDA_ATTN_FP8_MIN_KEYS
 * keys (the long self-attention; cross-attention over the text rows and UMT5's biased attention
 * keep the bf16 kernel). */
#define CUDA_ATTN_FP8_MIN_KEYS 1024
int cuda_attention_fp8_takes(const cuda_state *cs, int64_t nk, int head_dim, int has_logit_terms);
/* Device scratch the FP8 kernel needs for nq queries, nk keys, H heads of 128 (256-aligned). */
size_t cuda_attention_fp8_scratch_bytes(int64_t nq, int64_t nk, int H);
/* Run a call cuda_attention_fp8_takes; scratch holds cuda_attention_fp8_scratch_bytes. */
int cuda_attention_fp8(cuda_state *cs, const attn_launch *a, void *scratch, au_err *err);

/* The bulk-copy map of a [rows, cols] matrix of bytes (bf16 0) or bf16 (bf16 1), row stride ld
 * elements, read in box_rows x box_cols boxes with the 128-byte swizzle and zeros past its edge
 * (the Hopper kernels' producers; needs cs->tmap_encode). */
int cuda_attention_tma_map(cuda_state *cs, CUtensorMap *m, int bf16, const void *p, int64_t rows, int64_t cols,
                           int64_t ld, int box_cols, int box_rows, const char *op, au_err *err);

#endif
