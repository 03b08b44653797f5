/* cuda_attention.cuh - what the two attention files share: the launch description, the PTX
 * helpers of their tile loops (cp.async, ldmatrix, ex2) and the entry points of the FP8 kernel
 * (cuda_attention_fp8.cu) that cuda_attention.cu dispatches to.
 */
#ifndef AU_CUDA_ATTENTION_CUH
#define AU_CUDA_ATTENTION_CUH

#include "cuda_internal.cuh"

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

#endif
