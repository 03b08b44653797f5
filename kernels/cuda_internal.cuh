/* cuda_internal.cuh - private state and helpers shared by the CUDA backend's files.
 *
 * State: one device, one stream, one cuBLASLt handle with a preallocated workspace,
 * one scratch buffer (grown by cuda_scratch, reused afterwards) and a cache of GEMM
 * plans. Every CUDA runtime call goes through CUDA_TRY and every cuBLASLt call through
 * LT_TRY: on failure they fill `err` with the op name (a `const char *op` in scope),
 * file, line and the library's own message, and return AU_EBACKEND.
 *
 * Element access: a tensor is handed to kernels as a cu_ref (data, dtype, f8 scale and
 * the f8 row length); cu_load reads element i of any float dtype as float32 (f8:
 * decode(code) * scale[i / row_len]) and cu_store writes f32, f16 or bf16 (round to
 * nearest even). Outputs in f8 are produced by cu_map: one block per row, a first pass
 * for max|value| and a second writing code = e4m3(value / scale), scale = max / 448
 * (1 for an all-zero row), exactly the CPU backend's rule.
 *
 * Files: cuda_backend.cu (creation, memory, weights, checks, ops table), cuda_gemm.cu
 * (linear, cuBLASLt), cuda_attention.cu + cuda_attention_fp8.cu + cuda_attention_wgmma.cu (flash
 * attention: bf16, 8-bit, bf16 on Hopper's wgmma), cuda_norm.cu (norms, fused residual/rope norms, rope, embed), cuda_eltwise.cu
 * (elementwise, copy, fill), cuda_layout.cu, cuda_conv.cu + cuda_conv_window.cu (implicit-GEMM
 * convolution), cuda_graph.cu (recording and replaying the stream as a CUDA graph).
 */
#ifndef AU_CUDA_INTERNAL_CUH
#define AU_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
#include "status.h"
#include "tensor.h"
}

#include "cuda_backend.h"

/* ---- checked library calls ---- */

int cuda_fail_rt(au_err *err, const char *op, const char *what, const char *file, int line, cudaError_t e);
int cuda_fail_lt(au_err *err, const char *op, const char *what, const char *file, int line, cublasStatus_t s);

#define CUDA_TRY(call)                                                                                             \
    do {                                                                                                           \
        cudaError_t cu_e_ = (call);                                                                                \
        if (cu_e_ != cudaSuccess)                                                                                  \
            return cuda_fail_rt(err, op, #call, __FILE__, __LINE__, cu_e_);                                        \
    } while (0)
#define LT_TRY(call)                                                                                               \
    do {                                                                                                           \
        cublasStatus_t lt_s_ = (call);                                                                             \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS)                                                                        \
            return cuda_fail_lt(err, op, #call, __FILE__, __LINE__, lt_s_);                                        \
    } while (0)
/* After a kernel launch: the launch error, if any (no synchronisation). */
#define CUDA_LAUNCHED() CUDA_TRY(cudaGetLastError())
/* Propagate a negative status. */
#define TRY_RC(expr)                                                                                               \
    do {                                                                                                           \
        int try_rc_ = (expr);                                                                                      \
        if (try_rc_ < 0)                                                                                           \
            return try_rc_;                                                                                        \
    } while (0)

/* ---- state ---- */

#define CUDA_PLAN_CACHE 96

typedef struct cuda_plan cuda_plan; /* cuda_gemm.cu */

typedef struct cuda_state {
    int device, precision;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace; /* cuBLASLt workspace, preallocated */
    size_t workspace_bytes;
    void *scratch;   /* grows, then reused */
    size_t scratch_bytes;
    int n_sm, max_smem_optin;
    int fp8_outer_vec; /* probed at creation */
    int attn_rows_per_warp; /* 16 or 32: the flash kernel variant */
    int attn_wgmma;         /* 1: the sm_90a wgmma attention kernels (8-bit and bf16) run here (probed at creation) */
    void *tmap_encode;      /* the driver's cuTensorMapEncodeTiled when attn_wgmma (the Hopper attention kernels' bulk copies) */
    int recording;          /* 1 between record_begin and record_end (cuda_graph.cu) */
    cuda_plan *plans;  /* [CUDA_PLAN_CACHE] */
    int n_plans, next_plan;
    be_cuda_stats stats;
} cuda_state;

static inline cuda_state *cuda_of(au_backend *be) { return (cuda_state *)be->impl; }

/* Scratch of at least bytes (device, 256-byte aligned); contents not kept across calls of
 * different ops. Grows with cudaFree + cudaMalloc (which synchronise), counted in stats. */
int cuda_scratch(cuda_state *cs, size_t bytes, void **out, const char *op, au_err *err);
/* Bytes rounded up to 256, to carve several regions out of one scratch request. */
static inline size_t cuda_round256(size_t n) { return (n + 255) & ~(size_t)255; }

/* ---- argument checks (fill err as "op: what") ---- */

/* A float dtype the backend reads: f32, f16, bf16, f8 (with scale). */
int cuda_check_readable(const char *op, const char *name, const au_tensor *t, au_err *err);
/* A dtype an op can write: f32, f16, bf16, and f8 (with scale) when allow_f8. */
int cuda_check_writable(const char *op, const char *name, const au_tensor *t, int allow_f8, au_err *err);
int cuda_check_vec(const char *op, const char *name, const au_tensor *t, int64_t n, au_err *err);
int cuda_check_numel(const char *op, const char *na, const au_tensor *a, const char *nb, const au_tensor *b,
                     au_err *err);

/* ---- element access in kernels ---- */

typedef struct cu_ref {
    void *data;
    const float *scale; /* f8 only */
    int64_t row_len;    /* f8 only: elements per scale row */
    int dtype;
} cu_ref;

static inline cu_ref cu_ref_of(const au_tensor *t) {
    cu_ref r;
    r.data = t->data;
    r.scale = (const float *)t->scale;
    r.dtype = (int)t->dtype;
    r.row_len = (t->ndim > 0 && t->shape[0] > 0) ? au_numel(t) / t->shape[0] : 1;
    if (r.row_len < 1)
        r.row_len = 1;
    return r;
}

__device__ __forceinline__ float cu_f8_to_f32(uint8_t v) {
    __nv_fp8_e4m3 f;
    f.__x = v;
    return (float)f;
}
__device__ __forceinline__ uint8_t cu_f32_to_f8(float v) {
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}

__device__ __forceinline__ float cu_load(const cu_ref &r, int64_t i) {
    switch (r.dtype) {
    case AU_F32: return ((const float *)r.data)[i];
    case AU_BF16: return __bfloat162float(((const __nv_bfloat16 *)r.data)[i]);
    case AU_F16: return __half2float(((const __half *)r.data)[i]);
    default: return cu_f8_to_f32(((const uint8_t *)r.data)[i]) * r.scale[i / r.row_len];
    }
}

__device__ __forceinline__ void cu_store(const cu_ref &r, int64_t i, float v) {
    switch (r.dtype) {
    case AU_F32: ((float *)r.data)[i] = v; break;
    case AU_BF16: ((__nv_bfloat16 *)r.data)[i] = __float2bfloat16_rn(v); break;
    default: ((__half *)r.data)[i] = __float2half_rn(v); break;
    }
}

__device__ __forceinline__ float cu_act(float v, int act) {
    if (act == AU_ACT_GELU_TANH)
        return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    if (act == AU_ACT_SILU)
        return v / (1.0f + expf(-v));
    return v;
}

/* Block-wide max of non-negative values (blockDim.x a multiple of 32, <= 1024). */
__device__ __forceinline__ float cu_block_max(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float cu_block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* y[i] = f(i) for every element: a grid-stride loop, or for an f8 y one block per row. */
template <class F> __global__ void cu_map_kernel(F f, cu_ref y, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        cu_store(y, i, f(i));
}

template <class F> __global__ void cu_map_f8_kernel(F f, uint8_t *q, float *scale, int64_t rows, int64_t row_len) {
    __shared__ float red[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t base = r * row_len;
        float amax = 0.0f;
        for (int64_t c = threadIdx.x; c < row_len; c += blockDim.x)
            amax = fmaxf(amax, fabsf(f(base + c)));
        amax = cu_block_max(amax, red);
        float s = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / s;
        for (int64_t c = threadIdx.x; c < row_len; c += blockDim.x)
            q[base + c] = cu_f32_to_f8(f(base + c) * inv);
        __syncthreads(); /* every thread has read this row's inputs (an f8 input may alias) */
        if (threadIdx.x == 0)
            scale[r] = s;
    }
}

static inline int cu_grid(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (int)(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

/* Run y = f(i) over all of y (any writable dtype); y already checked. */
template <class F> int cu_map(cuda_state *cs, F f, const au_tensor *y, const char *op, au_err *err) {
    int64_t n = au_numel(y);
    if (n == 0)
        return 0;
    if (y->dtype == AU_F8_E4M3) {
        int64_t rows = y->shape[0], row_len = n / rows;
        int threads = row_len >= 1024 ? 256 : 128;
        int grid = (int)(rows < 65535 * 4 ? rows : 65535 * 4);
        cu_map_f8_kernel<<<grid, threads, 0, cs->stream>>>(f, (uint8_t *)y->data, (float *)y->scale, rows, row_len);
    } else {
        cu_map_kernel<<<cu_grid(n, 256), 256, 0, cs->stream>>>(f, cu_ref_of(y), n);
    }
    CUDA_LAUNCHED();
    return 0;
}

/* Quantize a row-major [rows, row_len] source of any readable dtype into f8 codes and
 * per-row scales (q and scale device pointers); used by linear and weight loading. */
int cuda_quantize_rows(cuda_state *cs, uint8_t *q, float *scale, const cu_ref *src, int64_t rows, int64_t row_len,
                       const char *op, au_err *err);
/* Convert n elements of src into dst of another dtype (f32, f16, bf16). */
int cuda_convert(cuda_state *cs, const cu_ref *dst, const cu_ref *src, int64_t n, const char *op, au_err *err);

/* ---- GEMM (cuda_gemm.cu) ----
 * D (col-major m x n, leading dim ldd) = A B^T, D[i, j] = sum_l A[i, l] B[j, l], with B
 * [n, k] row-major and A [m, k] row-major (cuBLASLt "TN"), or, when a_kmajor, A given as
 * [k, m] row-major with leading dimension lda ("NN"; bf16 only). */
typedef struct cuda_gemm {
    int64_t m, n, k, ldd;
    int a_kmajor;
    int64_t lda;             /* a_kmajor only */
    const void *a, *b;
    void *d;
    au_dtype ab_dtype;       /* AU_F8_E4M3, AU_BF16 or AU_F32 */
    au_dtype d_dtype;        /* AU_BF16 or AU_F32 */
    const float *a_scale;    /* f8: per-row of A [m] (outer vector) or NULL */
    const float *b_scale;    /* f8: per-row of B [n] or NULL */
    const void *bias;        /* [m], dtype d_dtype, or NULL */
    int gelu;                /* apply GELU(tanh) after the bias */
} cuda_gemm;
int cuda_gemm_run(cuda_state *cs, const cuda_gemm *g, const char *op, au_err *err);
int cuda_plans_init(cuda_state *cs); /* AU_ENOMEM on failure */
void cuda_plans_free(cuda_state *cs);
/* Probe whether this cuBLASLt takes outer-vector FP8 scales on this device. */
int cuda_probe_fp8_outer_vec(cuda_state *cs);

/* ---- ops ---- */

int cuda_linear(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                au_act act, au_err *err);
int cuda_embed(au_backend *be, au_tensor *y, const au_tensor *table, const int32_t *ids, int n, au_err *err);
int cuda_layernorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                   const au_tensor *shift, const au_tensor *scale, float eps, au_err *err);
int cuda_rmsnorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps, au_err *err);
int cuda_rmsnorm_channels(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                          const au_tensor *bias, au_act act, au_err *err);
int cuda_rope(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err);
int cuda_record_begin(au_backend *be, au_err *err);
int cuda_record_end(au_backend *be, au_graph **out, au_err *err);
int cuda_graph_run(au_backend *be, au_graph *g, au_err *err);
void cuda_graph_free(au_backend *be, au_graph *g);
int cuda_add_gated_layernorm(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_tensor *h,
                             const au_tensor *w, const au_tensor *b, const au_tensor *shift, const au_tensor *scale,
                             float eps, au_err *err);
int cuda_rmsnorm_rope(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                      const au_tensor *cossin, int n_heads, au_err *err);
int cuda_attention(au_backend *be, au_tensor *out, const au_tensor *q, const au_tensor *k, const au_tensor *v,
                   int n_heads, float scale, const au_tensor *bias, int64_t last_key_copies, au_err *err);
/* 1 when this build has the sm_90a attention kernels and the device is sm_90 (the probe kernel lives in
 * cuda_attention_fp8.cu; cuda_attention_wgmma.cu is built in the same passes). */
int cuda_attention_wgmma_probe(cuda_state *cs);
int cuda_add(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
int cuda_mul(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
int cuda_add_gated(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_err *err);
int cuda_activate(au_backend *be, au_tensor *y, const au_tensor *x, au_act act, au_err *err);
int cuda_lincomb(au_backend *be, au_tensor *y, int n, const au_tensor *const *xs, const au_tensor *coef,
                 au_err *err);
int cuda_clamp(au_backend *be, au_tensor *y, const au_tensor *x, float lo, float hi, au_err *err);
int cuda_copy(au_backend *be, au_tensor *dst, const au_tensor *src, au_err *err);
int cuda_fill(au_backend *be, au_tensor *y, float value, au_err *err);
int cuda_patchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
int cuda_unpatchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
int cuda_transpose(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cuda_swap01(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cuda_concat(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, int dim, au_err *err);
int cuda_slice(au_backend *be, au_tensor *y, const au_tensor *x, int dim, int64_t start, au_err *err);
int cuda_conv3d(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                const int stride[3], const int pad[6], au_err *err);
int cuda_upsample2x(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cuda_time_interleave(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cuda_to_rgb8(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);

#endif
