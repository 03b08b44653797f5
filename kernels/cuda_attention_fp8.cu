/* cuda_attention_fp8.cu - 8-bit attention, the FP8 precision's long self-attention (head_dim
 * 128): S = Q K^T on int8 tensor cores (mma.sync m16n8k32 s8 x s8 -> s32) and O = P V on e4m3
 * ones (m16n8k32 e4m3 x e4m3 -> f32), online softmax in float32, no [nq, nk] matrix in memory.
 * The portable kernel is mma.sync only, so it runs on sm_89 and later (GB10 has no wgmma); on
 * Hopper a second kernel runs the same loop on wgmma (sm_90a build, probed at backend creation).
 * Why int8 for Q K^T: the logits need the precision. Rounding to e4m3 (3 mantissa bits) costs
 * ~2.6% rms per value, so Q and K in e4m3 put an error of ~3.6% of the logits' spread on every
 * logit, which a sharp softmax turns into as much error on P (measured: 6.8% at scale 0.5 on
 * the test's inputs); int8 with a per-group scale rounds to 1/254 of the group's range.
 *
 * Scales (float32):
 *  - Q per (token, head): q[i] = sq[h, i] qc[i], qc int8, sq = max |q[i, head h]| / 127.
 *  - K per (head, block of 64 keys): k[j] = sk[h, j / 64] kc[j], kc int8.
 *    scale q.k = scale sq sk (qc . kc): the factor f = scale log2(e) sq[i] sk[b] is one float
 *    per row and key tile, taken by the FFMA the exponent needs anyway. The int32 accumulators
 *    start at the bits of 1.5 2^23, so that read as floats they hold 1.5 2^23 + qc . kc exactly:
 *    no int-to-float conversion, the offset is folded into the same FFMA.
 *  - P = 2^(s - m) <= 1 is rounded to e4m3 as 256 P (the 2^8 added in that FFMA): the largest is
 *    256 < 448 and values down to 2^-17 of the row maximum stay representable. The row sums l add
 *    the same float32 values, so the 256 cancels in O / l.
 *  - V per (head, channel): v[j, d] = sv[d] vc[j, d], vc e4m3, sv = max over all keys
 *    |v[., d]| / 448. A channel's scale leaves the sum over keys and is applied in the epilogue.
 * P and V in e4m3 each pass ~2.6% rms rounding on to the output: on incoherent inputs (flat
 * softmax, zero-mean V) it is ~3.5-4% off in l2 norm; bench/NOTES.md has the measured figures.
 * FP8 mma accumulates with fewer than float32's mantissa bits on sm_89/sm_90, so in the portable
 * kernel each key tile's P V goes into zeroed accumulators and is added to O in float32:
 * O = alpha O + PV, one FFMA per element that is also the online softmax's rescale. sm_90
 * (Hopper) has no e4m3 mma.sync: there P stays f16 and the V codes are widened to f16 for
 * m16n8k16 products (pv_mma); int8 mma.sync is native on every target.
 *
 * Layout: the prologue writes q and k as int8 [n, H*128] with their scales, and V transposed,
 * [H, 128, nk_pad] e4m3 (nk_pad = nk rounded up to 128, zero codes past nk), so that the P V
 * operand is contiguous along keys as mma's B operand wants. Within each 16 keys, position
 * 4t + i holds key 2t + (i & 1) + 8 (i >> 1): the order in which a thread's S accumulators
 * hold scores, so P goes from the S tile to the A operand of P V without shuffles.
 * The main kernel is the flash loop of cuda_attention.cu on bytes: 128 queries a block, as 8
 * warps of 16 (MT 1, key tiles of 64) or 4 warps of 32 (MT 2, key tiles of 32, each K/V fragment
 * used for two m-tiles; the default, be_cuda_set_attention_variant), tiles double-buffered with
 * cp.async in shared memory, 16-byte chunks XOR-swizzled (chunk ^ (chunk / 8) % 8) so ldmatrix
 * reads are conflict-free for rows of 32, 64 or 128 bytes.
 */
#include "cuda_attention.cuh"

#include <string.h>

#define F8_D 128               /* head_dim */
#define F8_BR 128              /* queries per block */
#define F8_KB 64               /* keys per K scale and the padding of the transposed V */
#define F8_P_LOG2 8.0f         /* P is stored as 2^8 P */
#define F8_MAX 448.0f          /* largest e4m3 code */
#define I8_MAX 127.0f          /* largest int8 code */
#define MAGIC 12582912.0f      /* 1.5 * 2^23: MAGIC + i is exact in float32 for |i| < 2^22 */
#define MAGIC_BITS 0x4B400000u /* its bits; MAGIC_BITS + i are the bits of MAGIC + i */

/* ---- helpers ---- */

/* c += a (16x32 e4m3, row) . b (32x8 e4m3, col) */
__device__ __forceinline__ void mma_f8(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* c += a (16x32 s8, row) . b (32x8 s8, col), int32 accumulators */
__device__ __forceinline__ void mma_s8(uint32_t c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four floats as int8 codes (round to nearest; |x| <= 127 by the scale), a in the lowest byte. */
__device__ __forceinline__ uint32_t s8x4(float a, float b, float c, float d) {
    return ((uint32_t)__float2int_rn(a) & 0xffu) | (((uint32_t)__float2int_rn(b) & 0xffu) << 8) |
           (((uint32_t)__float2int_rn(c) & 0xffu) << 16) | ((uint32_t)__float2int_rn(d) << 24);
}

/* Four floats as e4m3 codes, a in the lowest byte (round to nearest, saturating). */
__device__ __forceinline__ uint32_t f8x4(float a, float b, float c, float d) {
    uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
    uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
    return lo | (hi << 16);
}

/* The P V product of 32 keys: P from the thread's four S n-tiles s[t .. t + 3] (keys in the order
 * of the transposed V), V as the two e4m3 registers of a B fragment (16 keys each). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900
/* sm_90 has no e4m3 mma.sync (ptxas would widen both operands to f16 at every instruction): P
 * stays f16 here, which also skips its e4m3 rounding, and the V codes are widened, exactly, to
 * f16 for two m16n8k16 products. A 32-bit word of V codes holds keys 2t4, 2t4 + 1, 8 + 2t4,
 * 9 + 2t4 of its 16: widened, its halves are the two B registers of an m16n8k16 over those 16. */
typedef struct pfrag {
    uint32_t r[8]; /* two m16n8k16 A fragments, f16 */
} pfrag;

__device__ __forceinline__ uint32_t f16x2(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&v;
}

__device__ __forceinline__ void p_frag(pfrag &a, const float (&s0)[4], const float (&s1)[4],
                                       const float (&s2)[4], const float (&s3)[4]) {
    a.r[0] = f16x2(s0[0], s0[1]), a.r[1] = f16x2(s0[2], s0[3]), a.r[2] = f16x2(s1[0], s1[1]),
    a.r[3] = f16x2(s1[2], s1[3]);
    a.r[4] = f16x2(s2[0], s2[1]), a.r[5] = f16x2(s2[2], s2[3]), a.r[6] = f16x2(s3[0], s3[1]),
    a.r[7] = f16x2(s3[2], s3[3]);
}

__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t codes) {
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)codes, __NV_E4M3);
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
}

__device__ __forceinline__ void mma_f16(float c[4], const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void pv_mma(float c[4], const pfrag &a, uint32_t v0, uint32_t v1) {
    mma_f16(c, a.r, e4m3x2_to_f16x2(v0 & 0xffffu), e4m3x2_to_f16x2(v0 >> 16));
    mma_f16(c, a.r + 4, e4m3x2_to_f16x2(v1 & 0xffffu), e4m3x2_to_f16x2(v1 >> 16));
}
#else
typedef struct pfrag {
    uint32_t r[4]; /* one m16n8k32 A fragment, e4m3 */
} pfrag;

__device__ __forceinline__ void p_frag(pfrag &a, const float (&s0)[4], const float (&s1)[4],
                                       const float (&s2)[4], const float (&s3)[4]) {
    a.r[0] = f8x4(s0[0], s0[1], s1[0], s1[1]);
    a.r[1] = f8x4(s0[2], s0[3], s1[2], s1[3]);
    a.r[2] = f8x4(s2[0], s2[1], s3[0], s3[1]);
    a.r[3] = f8x4(s2[2], s2[3], s3[2], s3[3]);
}

__device__ __forceinline__ void pv_mma(float c[4], const pfrag &a, uint32_t v0, uint32_t v1) {
    mma_f8(c, a.r, v0, v1);
}
#endif

/* Eight bf16 (16 bytes) as floats. */
__device__ __forceinline__ void bf16x8(const uint4 raw, float x[8]) {
    const __nv_bfloat162 *p = (const __nv_bfloat162 *)&raw;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(p[i]);
        x[2 * i] = f.x, x[2 * i + 1] = f.y;
    }
}

/* The scale of a group whose largest magnitude is amax (1 for an all-zero group), for codes of
 * magnitude up to code_max. */
__device__ __forceinline__ float group_scale(float amax, float code_max) {
    return amax > 0.0f ? amax / code_max : 1.0f;
}

/* ---- prologue ---- */

/* Q: one (row, head) per 16 threads (8 values each): q8 [nq, H*128] int8, sq [H, nq]. */
__global__ void __launch_bounds__(256)
    fa8_quant_q_kernel(const bf16 *__restrict__ q, uint8_t *__restrict__ q8, float *__restrict__ sq,
                       int64_t nq, int H, int64_t ld) {
    const int64_t item = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 4;
    const int part = threadIdx.x & 15;
    const bool valid = item < nq * H; /* the same for the 16 lanes of an item */
    const int64_t row = valid ? item / H : 0;
    const int h = valid ? (int)(item % H) : 0;
    float x[8] = {0, 0, 0, 0, 0, 0, 0, 0}, amax = 0.0f;
    if (valid)
        bf16x8(*(const uint4 *)(q + row * ld + h * F8_D + part * 8), x);
#pragma unroll
    for (int i = 0; i < 8; i++)
        amax = fmaxf(amax, fabsf(x[i]));
#pragma unroll
    for (int o = 8; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if (!valid)
        return;
    const float s = group_scale(amax, I8_MAX), inv = 1.0f / s;
    *(uint2 *)(q8 + row * ld + h * F8_D + part * 8) =
        make_uint2(s8x4(x[0] * inv, x[1] * inv, x[2] * inv, x[3] * inv),
                   s8x4(x[4] * inv, x[5] * inv, x[6] * inv, x[7] * inv));
    if (part == 0)
        sq[(int64_t)h * nq + row] = s;
}

/* K: one block of 64 keys of one head per block (4 chunks of 8 values a thread): k8 [nk, H*128]
 * int8, sk [H, nkb]. */
__global__ void __launch_bounds__(256)
    fa8_quant_k_kernel(const bf16 *__restrict__ k, uint8_t *__restrict__ k8, float *__restrict__ sk,
                       int64_t nk, int64_t ld, int nkb) {
    __shared__ float red[32];
    const int b = blockIdx.x, h = blockIdx.y;
    float x[4][8], amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int idx = threadIdx.x + i * 256, r = idx >> 4, c = idx & 15;
        const int64_t row = (int64_t)b * F8_KB + r;
        if (row < nk) {
            bf16x8(*(const uint4 *)(k + row * ld + h * F8_D + c * 8), x[i]);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                x[i][e] = 0.0f;
        }
#pragma unroll
        for (int e = 0; e < 8; e++)
            amax = fmaxf(amax, fabsf(x[i][e]));
    }
    amax = cu_block_max(amax, red);
    const float s = group_scale(amax, I8_MAX), inv = 1.0f / s;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int idx = threadIdx.x + i * 256, r = idx >> 4, c = idx & 15;
        const int64_t row = (int64_t)b * F8_KB + r;
        if (row < nk)
            *(uint2 *)(k8 + row * ld + h * F8_D + c * 8) =
                make_uint2(s8x4(x[i][0] * inv, x[i][1] * inv, x[i][2] * inv, x[i][3] * inv),
                           s8x4(x[i][4] * inv, x[i][5] * inv, x[i][6] * inv, x[i][7] * inv));
    }
    if (threadIdx.x == 0)
        sk[(int64_t)h * nkb + b] = s;
}

#define VMAX_ROWS 512 /* rows per block of the V channel maxima */

/* vmax[c] = max over rows of |v[., c]|, as float bits (non-negative floats order like their bits;
 * vmax starts at zero). Block: 32 chunks of 8 channels x 8 row lanes over VMAX_ROWS rows. */
__global__ void __launch_bounds__(256)
    fa8_vmax_kernel(const bf16 *__restrict__ v, unsigned *__restrict__ vmax, int64_t nk, int64_t ld) {
    __shared__ float red[8][32 * 8];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int64_t col = ((int64_t)blockIdx.x * 32 + tx) * 8;
    const int64_t r0 = (int64_t)blockIdx.y * VMAX_ROWS, r1 = r0 + VMAX_ROWS < nk ? r0 + VMAX_ROWS : nk;
    float m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (col < ld)
        for (int64_t r = r0 + ty; r < r1; r += 8) {
            float x[8];
            bf16x8(*(const uint4 *)(v + r * ld + col), x);
#pragma unroll
            for (int e = 0; e < 8; e++)
                m[e] = fmaxf(m[e], fabsf(x[e]));
        }
#pragma unroll
    for (int e = 0; e < 8; e++)
        red[ty][tx * 8 + e] = m[e];
    __syncthreads();
    const int c = threadIdx.x; /* 256 channels of this block */
    if (((int64_t)blockIdx.x * 32) * 8 + c >= ld)
        return;
    float mx = red[0][c];
#pragma unroll
    for (int y = 1; y < 8; y++)
        mx = fmaxf(mx, red[y][c]);
    atomicMax(vmax + (int64_t)blockIdx.x * 256 + c, __float_as_uint(mx));
}

/* V: one block of 64 keys of one head per block, transposed to vt8 [H, 128, nk_pad] with the key
 * order of the file comment; keys past nk get zero codes. */
__global__ void __launch_bounds__(256)
    fa8_quant_vt_kernel(const bf16 *__restrict__ v, const unsigned *__restrict__ vmax,
                        uint8_t *__restrict__ vt8, int64_t nk, int64_t nk_pad, int64_t ld) {
    __shared__ __align__(16) bf16 tile[F8_KB][F8_D + 8];
    const int b = blockIdx.x, h = blockIdx.y;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int idx = threadIdx.x + i * 256, r = idx >> 4, c = idx & 15;
        const int64_t row = (int64_t)b * F8_KB + r;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (row < nk)
            val = *(const uint4 *)(v + row * ld + h * F8_D + c * 8);
        *(uint4 *)&tile[r][c * 8] = val;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int idx = threadIdx.x + i * 256, d = idx & (F8_D - 1), c = idx >> 7; /* c: 16-key group */
        const float inv = 1.0f / group_scale(__uint_as_float(vmax[h * F8_D + d]), F8_MAX);
        uint32_t w[4];
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const bf16 *col = &tile[c * 16 + 2 * t][d];
            w[t] = f8x4(__bfloat162float(col[0]) * inv, __bfloat162float(col[F8_D + 8]) * inv,
                        __bfloat162float(col[8 * (F8_D + 8)]) * inv,
                        __bfloat162float(col[9 * (F8_D + 8)]) * inv);
        }
        *(uint4 *)(vt8 + ((int64_t)h * F8_D + d) * nk_pad + (int64_t)b * F8_KB + c * 16) =
            make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* ---- main kernel ---- */

/* Rows [r0, r0 + ROWS) (zero past n) of one head of an 8-bit [n, ld] matrix into a [ROWS][128] tile. */
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(uint8_t *tile, const uint8_t *src, int64_t ld, int64_t r0,
                                          int64_t n) {
    for (int idx = threadIdx.x; idx < ROWS * (F8_D / 16); idx += THREADS) {
        const int r = idx / (F8_D / 16), c = idx % (F8_D / 16);
        const bool valid = r0 + r < n;
        cp_async16(tile + swz128(idx) * 16, valid ? src + (r0 + r) * ld + c * 16 : src, valid);
    }
}

/* Keys [j0, j0 + BC) of the 128 channel rows of one head of vt8 into a [128][BC] tile. */
template <int BC, int THREADS>
__device__ __forceinline__ void load_vt(uint8_t *tile, const uint8_t *vt_h, int64_t nk_pad, int64_t j0) {
    constexpr int CPR = BC / 16;
    for (int idx = threadIdx.x; idx < F8_D * CPR; idx += THREADS) {
        const int d = idx / CPR, c = idx % CPR;
        cp_async16(tile + swz128(idx) * 16, vt_h + d * nk_pad + j0 + c * 16, true);
    }
}

/* Online softmax of one m-tile's scores s[NT][4] (MAGIC + the integer code products, see the
 * main loop; rows g: elements 0, 1 and g + 8: 2, 3) with per-row factors f (scale log2(e) sq sk):
 * running max m (log2 units), this thread's partial sums l, the O rescale alpha, and s turned
 * into 2^8 P. */
template <int NT>
__device__ __forceinline__ void softmax_f8(float (&s)[NT][4], float m[2], float l[2], float alpha[2],
                                           const float f[2]) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < NT; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[t][0], s[t][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[t][2], s[t][3]));
    }
    float shift[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float mn = fmaxf(m[r], (mx[r] - MAGIC) * f[r]); /* f > 0: the max of the codes is the max */
        alpha[r] = fast_exp2(m[r] - mn);
        m[r] = mn;
        shift[r] = fmaf(-MAGIC, f[r], F8_P_LOG2 - mn); /* 2^(s f + shift) = 2^8 P */
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        s[t][0] = fast_exp2(fmaf(s[t][0], f[0], shift[0]));
        s[t][1] = fast_exp2(fmaf(s[t][1], f[0], shift[0]));
        s[t][2] = fast_exp2(fmaf(s[t][2], f[1], shift[1]));
        s[t][3] = fast_exp2(fmaf(s[t][3], f[1], shift[1]));
        sum[0] += s[t][0] + s[t][1];
        sum[1] += s[t][2] + s[t][3];
    }
    l[0] = fmaf(l[0], alpha[0], sum[0]);
    l[1] = fmaf(l[1], alpha[1], sum[1]);
}

template <typename T> __device__ __forceinline__ void store2(T *p, float a, float b);
template <> __device__ __forceinline__ void store2<bf16>(bf16 *p, float a, float b) {
    *(__nv_bfloat162 *)p = __floats2bfloat162_rn(a, b);
}
template <> __device__ __forceinline__ void store2<float>(float *p, float a, float b) {
    *(float2 *)p = make_float2(a, b);
}

/* m-tile mt of warp w covers block rows (mt * WARPS + w) * 16 .. + 15. */
template <int MT, typename OutT>
__global__ void __launch_bounds__(256 / MT, MT)
    fa8_kernel(const uint8_t *__restrict__ q8, const uint8_t *__restrict__ k8,
               const uint8_t *__restrict__ vt8, const float *__restrict__ sq, const float *__restrict__ sk,
               const unsigned *__restrict__ vmax, OutT *__restrict__ out, int64_t nq, int64_t nk,
               int64_t nk_pad, int64_t ld, int nkb, float scale_log2) {
    constexpr int WARPS = 8 / MT, THREADS = WARPS * 32, BC = 64 / MT, NT = BC / 8, KS = BC / 32;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint8_t *Qs = smem_raw;           /* [F8_BR][128] */
    uint8_t *Ks = Qs + F8_BR * F8_D;  /* [2][BC][128] */
    uint8_t *Vs = Ks + 2 * BC * F8_D; /* [2][128][BC] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y;
    const int64_t q0 = (int64_t)blockIdx.x * F8_BR;
    const uint8_t *qh = q8 + h * F8_D, *kh = k8 + h * F8_D, *vth = vt8 + (int64_t)h * F8_D * nk_pad;
    const float *skh = sk + (int64_t)h * nkb;

    load_rows<F8_BR, THREADS>(Qs, qh, ld, q0, nq);
    cp_async_commit();
    load_rows<BC, THREADS>(Ks, kh, ld, 0, nk);
    load_vt<BC, THREADS>(Vs, vth, nk_pad, 0);
    cp_async_commit();

    float qf[MT][2]; /* scale log2(e) sq of the thread's rows (padding rows: any positive value) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int64_t row = q0 + (mt * WARPS + warp) * 16 + g + 8 * r;
            qf[mt][r] = scale_log2 * (row < nq ? sq[(int64_t)h * nq + row] : 1.0f);
        }
    cp_async_wait<1>();
    __syncthreads();

    uint32_t qreg[MT == 1 ? F8_D / 32 : 1][4];
    if (MT == 1) {
#pragma unroll
        for (int kk = 0; kk < F8_D / 32; kk++) {
            const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = kk * 2 + (lane >> 4);
            ldsm_x4(qreg[kk][0], qreg[kk][1], qreg[kk][2], qreg[kk][3], Qs + swz128(r * 8 + c) * 16);
        }
    }
    float o[MT][F8_D / 8][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int t = 0; t < F8_D / 8; t++)
            o[mt][t][0] = o[mt][t][1] = o[mt][t][2] = o[mt][t][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }

    const int n_tiles = (int)((nk + BC - 1) / BC);
    for (int j = 0; j < n_tiles; j++) {
        const int buf = j & 1;
        if (j + 1 < n_tiles) {
            load_rows<BC, THREADS>(Ks + (buf ^ 1) * BC * F8_D, kh, ld, (int64_t)(j + 1) * BC, nk);
            load_vt<BC, THREADS>(Vs + (buf ^ 1) * F8_D * BC, vth, nk_pad, (int64_t)(j + 1) * BC);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const uint8_t *Kt = Ks + buf * BC * F8_D, *Vt = Vs + buf * F8_D * BC;

        /* S = MAGIC + Qc Kc^T: int32 accumulators started at the bits of MAGIC hold, as floats,
         * MAGIC + the product exactly (|product| <= 127^2 128 < 2^22) */
        uint32_t sacc[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                sacc[mt][t][0] = sacc[mt][t][1] = sacc[mt][t][2] = sacc[mt][t][3] = MAGIC_BITS;
#pragma unroll
        for (int kk = 0; kk < F8_D / 32; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if (MT == 1) {
                    qa[mt][0] = qreg[kk][0], qa[mt][1] = qreg[kk][1], qa[mt][2] = qreg[kk][2],
                    qa[mt][3] = qreg[kk][3];
                } else {
                    const int r = (mt * WARPS + warp) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                              c = kk * 2 + (lane >> 4);
                    ldsm_x4(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3], Qs + swz128(r * 8 + c) * 16);
                }
            }
#pragma unroll
            for (int np = 0; np < BC / 16; np++) {
                uint32_t b0, b1, b2, b3;
                const int r = np * 16 + (lane & 7) + (lane >> 4) * 8, c = kk * 2 + ((lane >> 3) & 1);
                ldsm_x4(b0, b1, b2, b3, Kt + swz128(r * 8 + c) * 16);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_s8(sacc[mt][2 * np], qa[mt], b0, b1);
                    mma_s8(sacc[mt][2 * np + 1], qa[mt], b2, b3);
                }
            }
        }
        float s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int t = 0; t < NT; t++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[mt][t][e] = __uint_as_float(sacc[mt][t][e]);

        /* softmax, P as A fragments: k-step kk (32 keys) takes S n-tiles 4kk .. 4kk + 3 */
        const float ks = skh[(j * BC) / F8_KB];
        const int kmax = (int)(nk - (int64_t)j * BC); /* valid keys of this tile, if fewer than BC */
        pfrag pa[MT][KS];
        float alpha[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            if (kmax < BC) {
#pragma unroll
                for (int t = 0; t < NT; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (t * 8 + 2 * t4 + (e & 1) >= kmax)
                            s[mt][t][e] = -INFINITY;
            }
            const float f[2] = {qf[mt][0] * ks, qf[mt][1] * ks};
            softmax_f8<NT>(s[mt], m[mt], l[mt], alpha[mt], f);
#pragma unroll
            for (int kk = 0; kk < KS; kk++)
                p_frag(pa[mt][kk], s[mt][4 * kk], s[mt][4 * kk + 1], s[mt][4 * kk + 2], s[mt][4 * kk + 3]);
        }

        /* O = alpha O + P Vc, 16 channels at a time */
#pragma unroll
        for (int dp = 0; dp < F8_D / 16; dp++) {
            float acc[MT][2][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[mt][0][e] = acc[mt][1][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                uint32_t b0, b1, b2, b3;
                const int r = dp * 16 + (lane & 7) + (lane >> 4) * 8, c = kk * 2 + ((lane >> 3) & 1);
                ldsm_x4(b0, b1, b2, b3, Vt + swz128(r * (BC / 16) + c) * 16);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    pv_mma(acc[mt][0], pa[mt][kk], b0, b1);
                    pv_mma(acc[mt][1], pa[mt][kk], b2, b3);
                }
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int t = 0; t < 2; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        o[mt][2 * dp + t][e] = fmaf(o[mt][2 * dp + t][e], alpha[mt][e >> 1], acc[mt][t][e]);
        }
        __syncthreads(); /* the next iteration loads into this buffer */
    }

    /* out = O sv / l */
    float sv[F8_D / 8][2];
#pragma unroll
    for (int t = 0; t < F8_D / 8; t++) {
        const int d = t * 8 + 2 * t4;
        sv[t][0] = group_scale(__uint_as_float(vmax[h * F8_D + d]), F8_MAX);
        sv[t][1] = group_scale(__uint_as_float(vmax[h * F8_D + d + 1]), F8_MAX);
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[mt][r];
            lr += __shfl_xor_sync(0xffffffffu, lr, 1);
            lr += __shfl_xor_sync(0xffffffffu, lr, 2);
            const int64_t row = q0 + (mt * WARPS + warp) * 16 + g + 8 * r;
            if (row >= nq)
                continue;
            const float inv = 1.0f / lr;
            OutT *dst = out + row * ld + h * F8_D + 2 * t4;
#pragma unroll
            for (int t = 0; t < F8_D / 8; t++)
                store2<OutT>(dst + t * 8, o[mt][t][2 * r] * inv * sv[t][0],
                             o[mt][t][2 * r + 1] * inv * sv[t][1]);
        }
}

/* ---- Hopper (sm_90a): the same loop on wgmma ----
 * One block = two consumer warpgroups of 64 queries and one producer warpgroup; key tiles of 128,
 * so that the K tile [128 keys][128 d] and the V tile [128 d][128 keys] both have 128-byte rows:
 * with the 128-byte swizzle (swz128() for the Q tile, the bulk copies' own for K and V) they are
 * exactly wgmma's K-major layout (8-row groups 1024 bytes apart), and each 32-byte step along K is
 * the descriptor's start address plus 32. S = Q K^T: m64n128k32 s8 x s8 -> s32 from two
 * descriptors (int32 results, MAGIC added with one integer add); O += P V: m64n128k32 e4m3 x e4m3
 * -> f32 with P from registers (per warp the A fragment of mma.sync's m16n8k32, so the same key
 * order of the transposed V) straight into O, after O is scaled by the online softmax's alpha in
 * float32. Unlike the portable kernel's fresh accumulators, O then passes through the FP8 wgmma's
 * narrower accumulation once a tile; measured on H100 the 8-bit test cases stay within the e4m3
 * rounding (3.1-3.7% l2 before and after, 8192 keys included).
 * One thread of the producer loads each K and V tile with a bulk tensor copy into a ring of W_ST
 * stages (mbarriers: "full" completes with the copies' bytes, "empty" with one arrival from each
 * consumer once its P V is done), so the consumers never meet at a block barrier and drift apart:
 * one's softmax runs beside the other's products (bench/NOTES.md, v9: 10.5 -> 9.1 ms at the 1.3B
 * self shape). Within a consumer, S of the next tile is issued with P V of this one and its
 * softmax runs while P V does (FA3's in-warpgroup overlap, v10: 8.9 -> 7.8 ms); that needs more
 * than the 168 registers a 384-thread block starts with, so the producer gives registers back
 * (setmaxnreg: 24) and the consumers take them (240).
 * Only the sm_90a pass of the build has the body (wgmma is sm_90a-only);
 * cuda_attention_wgmma_probe says at backend creation whether this binary and device run it (and
 * fetches the driver's tensor-map encoder the bulk copies need). */
#define W_BC 128         /* keys per tile */
#define W_WG 2           /* consumer warpgroups per block (a third one loads) */
#define W_BR (64 * W_WG) /* queries per block */
#define W_ST 4           /* stages of the K/V ring */
#define W_TILE (W_BC * F8_D) /* bytes of a K tile (= a V tile) */
#define W_STAGE (2 * W_TILE)

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* d = A (64x32 s8, descriptor) . B (32x128 s8, descriptor) */
__device__ __forceinline__ void wg_s8_first(uint32_t (&d)[64], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
        "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
        "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
        "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, 0;\n}\n"
        : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]), "=r"(d[4]), "=r"(d[5]), "=r"(d[6]), "=r"(d[7]),
          "=r"(d[8]), "=r"(d[9]), "=r"(d[10]), "=r"(d[11]), "=r"(d[12]), "=r"(d[13]), "=r"(d[14]),
          "=r"(d[15]), "=r"(d[16]), "=r"(d[17]), "=r"(d[18]), "=r"(d[19]), "=r"(d[20]), "=r"(d[21]),
          "=r"(d[22]), "=r"(d[23]), "=r"(d[24]), "=r"(d[25]), "=r"(d[26]), "=r"(d[27]), "=r"(d[28]),
          "=r"(d[29]), "=r"(d[30]), "=r"(d[31]), "=r"(d[32]), "=r"(d[33]), "=r"(d[34]), "=r"(d[35]),
          "=r"(d[36]), "=r"(d[37]), "=r"(d[38]), "=r"(d[39]), "=r"(d[40]), "=r"(d[41]), "=r"(d[42]),
          "=r"(d[43]), "=r"(d[44]), "=r"(d[45]), "=r"(d[46]), "=r"(d[47]), "=r"(d[48]), "=r"(d[49]),
          "=r"(d[50]), "=r"(d[51]), "=r"(d[52]), "=r"(d[53]), "=r"(d[54]), "=r"(d[55]), "=r"(d[56]),
          "=r"(d[57]), "=r"(d[58]), "=r"(d[59]), "=r"(d[60]), "=r"(d[61]), "=r"(d[62]), "=r"(d[63])
        : "l"(da), "l"(db));
}

/* d += A (64x32 s8, descriptor) . B (32x128 s8, descriptor) */
__device__ __forceinline__ void wg_s8(uint32_t (&d)[64], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
        "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
        "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
        "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, 1;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
          "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]),
          "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]),
          "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]),
          "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]),
          "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]),
          "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]),
          "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]),
          "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "l"(da), "l"(db));
}

/* d += A (64x32 e4m3, registers) . B (32x128 e4m3, descriptor) */
__device__ __forceinline__ void wg_f8(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
                 "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, "
                 "%27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, "
                 "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, "
                 "%63}, {%64, %65, %66, %67}, %68, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
                   "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
                   "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
                   "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}

#endif

/* Online softmax of a 128-key tile whose two halves have their own K scale: f[h][r] is the factor
 * of half h (S n-tiles 8h .. 8h + 7) for row r; otherwise softmax_f8. Returns whether a row's
 * max changed (alpha != 1). */
__device__ __forceinline__ bool softmax_w(float (&s)[16][4], float m[2], float l[2], float alpha[2],
                                          const float f[2][2]) {
    float mx[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}};
#pragma unroll
    for (int t = 0; t < 16; t++) {
        mx[t >> 3][0] = fmaxf(mx[t >> 3][0], fmaxf(s[t][0], s[t][1]));
        mx[t >> 3][1] = fmaxf(mx[t >> 3][1], fmaxf(s[t][2], s[t][3]));
    }
    float shift[2][2], sum[2] = {0.0f, 0.0f};
    bool changed = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            mx[h][r] = fmaxf(mx[h][r], __shfl_xor_sync(0xffffffffu, mx[h][r], 1));
            mx[h][r] = fmaxf(mx[h][r], __shfl_xor_sync(0xffffffffu, mx[h][r], 2));
        }
        const float mn = fmaxf(m[r], fmaxf((mx[0][r] - MAGIC) * f[0][r], (mx[1][r] - MAGIC) * f[1][r]));
        changed |= mn != m[r];
        alpha[r] = fast_exp2(m[r] - mn);
        m[r] = mn;
        shift[0][r] = fmaf(-MAGIC, f[0][r], F8_P_LOG2 - mn);
        shift[1][r] = fmaf(-MAGIC, f[1][r], F8_P_LOG2 - mn);
    }
#pragma unroll
    for (int t = 0; t < 16; t++) {
        const int h = t >> 3;
        s[t][0] = fast_exp2(fmaf(s[t][0], f[h][0], shift[h][0]));
        s[t][1] = fast_exp2(fmaf(s[t][1], f[h][0], shift[h][0]));
        s[t][2] = fast_exp2(fmaf(s[t][2], f[h][1], shift[h][1]));
        s[t][3] = fast_exp2(fmaf(s[t][3], f[h][1], shift[h][1]));
        sum[0] += s[t][0] + s[t][1];
        sum[1] += s[t][2] + s[t][3];
    }
    l[0] = fmaf(l[0], alpha[0], sum[0]);
    l[1] = fmaf(l[1], alpha[1], sum[1]);
    return changed;
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* What a consumer warpgroup carries from key tile to key tile. */
struct fa8w_state {
    uint32_t ring;       /* shared address of stage 0: [W_ST][K tile | V tile] */
    mb_ring<W_ST> *bars;
    const float *skh;
    int nk, n_tiles;
    uint64_t dq;
    float qf[2], m[2], l[2];
};

__device__ __forceinline__ uint64_t fa8w_kdesc(const fa8w_state &st, int j) {
    return wg_desc_addr(st.ring + (uint32_t)(j % W_ST) * W_STAGE);
}

/* fa8w's primitives for overlap_tiles (cuda_attention.cuh): one consumer warpgroup's key tiles
 * into its O. */
struct fa8w_tiles {
    typedef uint32_t p_frag[4][4];
    fa8w_state &st;
    float (&o)[64];
    uint32_t sacc[64]; /* S of the tile in flight (left uninitialized: the first product writes it) */
    __device__ fa8w_tiles(fa8w_state &st_, float (&o_)[64]) : st(st_), o(o_) {}

    /* S of key tile j, 4 steps of 32 along d: +32 bytes = +2 in the descriptors. */
    __device__ __forceinline__ void issue_s(int j) {
        st.bars->wait(j);
        const uint64_t dk = fa8w_kdesc(st, j);
        wg_s8_first(sacc, st.dq, dk);
        wg_s8(sacc, st.dq + 2, dk + 2);
        wg_s8(sacc, st.dq + 4, dk + 4);
        wg_s8(sacc, st.dq + 6, dk + 6);
        wg_commit();
    }

    /* O += P V of key tile j, 4 steps of 32 keys (V tile after K). */
    __device__ __forceinline__ void issue_pv(p_frag &p, int j) {
        const uint64_t dv = fa8w_kdesc(st, j) + (W_TILE >> 4);
        wg_f8(o, p[0], dv);
        wg_f8(o, p[1], dv + 2);
        wg_f8(o, p[2], dv + 4);
        wg_f8(o, p[3], dv + 6);
        wg_commit();
    }

    /* The online softmax of key tile j from its S: P into p, O's factor into alpha; whether the
     * warp needs it (a row's max changed). */
    __device__ __forceinline__ bool softmax(p_frag &p, float alpha[2], int j) {
        wg_hold(sacc);
        const int t4 = threadIdx.x & 3;
        float s[16][4];
#pragma unroll
        for (int t = 0; t < 16; t++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[t][e] = __uint_as_float(sacc[4 * t + e] + MAGIC_BITS);
        const int kmax = st.nk - j * W_BC;
        if (kmax < W_BC) {
#pragma unroll
            for (int t = 0; t < 16; t++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (t * 8 + 2 * t4 + (e & 1) >= kmax)
                        s[t][e] = -INFINITY;
        }
        const float ks0 = st.skh[(j * W_BC) / F8_KB], ks1 = st.skh[(j * W_BC) / F8_KB + 1];
        const float f[2][2] = {{st.qf[0] * ks0, st.qf[1] * ks0}, {st.qf[0] * ks1, st.qf[1] * ks1}};
        const bool rescale = __any_sync(0xffffffffu, softmax_w(s, st.m, st.l, alpha, f));
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const int t = 4 * kk;
            p[kk][0] = f8x4(s[t][0], s[t][1], s[t + 1][0], s[t + 1][1]);
            p[kk][1] = f8x4(s[t][2], s[t][3], s[t + 1][2], s[t + 1][3]);
            p[kk][2] = f8x4(s[t + 2][0], s[t + 2][1], s[t + 3][0], s[t + 3][1]);
            p[kk][3] = f8x4(s[t + 2][2], s[t + 2][3], s[t + 3][2], s[t + 3][3]);
        }
        return rescale;
    }

    /* Wait for tile j's P V, then give its stage back. */
    __device__ __forceinline__ void finish_pv(p_frag &p, int j) {
        wg_wait<0>();
        wg_hold(o);
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            wg_hold(p[kk]);
        st.bars->release(j);
    }

    /* O = alpha O in float32. */
    __device__ __forceinline__ void rescale(const float alpha[2]) {
#pragma unroll
        for (int i = 0; i < 64; i++)
            o[i] *= alpha[(i >> 1) & 1];
    }
};
#endif

template <typename OutT>
__global__ void __launch_bounds__(128 * (W_WG + 1), 1)
    fa8w_kernel(const __grid_constant__ CUtensorMap map_k, const __grid_constant__ CUtensorMap map_v,
                const uint8_t *__restrict__ q8, const float *__restrict__ sq, const float *__restrict__ sk,
                const unsigned *__restrict__ vmax, OutT *__restrict__ out, int64_t nq, int nk, int64_t ld, int nkb,
                float scale_log2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int THREADS = 128 * (W_WG + 1);
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint8_t *Qs = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023); /* [W_BR][128], 1024-aligned */
    uint8_t *ring = Qs + W_BR * F8_D; /* [W_ST][K tile [W_BC][128] | V tile [128][W_BC]] */
    __shared__ mb_ring<W_ST> bars;
    const int h = blockIdx.y, n_tiles = (nk + W_BC - 1) / W_BC;
    const int64_t q0 = (int64_t)blockIdx.x * W_BR;
    if (threadIdx.x == 0)
        bars.init(W_WG);
    load_rows<W_BR, THREADS>(Qs, q8 + h * F8_D, ld, q0, nq);
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();

    const int wg = threadIdx.x / 128;
    if (wg == 0) { /* the producer: one thread loads every K and V tile through the ring */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            for (int j = 0; j < n_tiles; j++) {
                uint64_t *full = bars.fill(j, W_STAGE);
                uint8_t *stage = ring + (j % W_ST) * W_STAGE;
                tma_load_2d(stage, &map_k, h * F8_D, j * W_BC, full);
                tma_load_2d(stage + W_TILE, &map_v, j * W_BC, h * F8_D, full);
            }
        }
        return;
    }
    const int c = wg - 1, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int64_t row0 = q0 + c * 64 + warp * 16 + g; /* rows row0, row0 + 8 */
    fa8w_state st;
    st.ring = smem_addr(ring), st.bars = &bars;
    st.skh = sk + (int64_t)h * nkb;
    st.nk = nk, st.n_tiles = n_tiles;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        st.qf[r] = scale_log2 * (row0 + 8 * r < nq ? sq[(int64_t)h * nq + row0 + 8 * r] : 1.0f);
        st.m[r] = -INFINITY;
        st.l[r] = 0.0f;
    }
    st.dq = wg_desc(Qs + c * 64 * F8_D);
    float o[64]; /* o[4t + e]: n-tile t, as s */
#pragma unroll
    for (int i = 0; i < 64; i++)
        o[i] = 0.0f;

    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    fa8w_tiles tiles(st, o);
    overlap_tiles(tiles, n_tiles);

    float sv[F8_D / 8][2];
#pragma unroll
    for (int t = 0; t < F8_D / 8; t++) {
        const int d = t * 8 + 2 * t4;
        sv[t][0] = group_scale(__uint_as_float(vmax[h * F8_D + d]), F8_MAX);
        sv[t][1] = group_scale(__uint_as_float(vmax[h * F8_D + d + 1]), F8_MAX);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = st.l[r];
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        const int64_t row = row0 + 8 * r;
        if (row >= nq)
            continue;
        const float inv = 1.0f / lr;
        OutT *dst = out + row * ld + h * F8_D + 2 * t4;
#pragma unroll
        for (int t = 0; t < F8_D / 8; t++)
            store2<OutT>(dst + t * 8, o[4 * t + 2 * r] * inv * sv[t][0],
                         o[4 * t + 2 * r + 1] * inv * sv[t][1]);
    }
#endif
}

__global__ void fa8w_probe_kernel(int *has) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *has = 1;
#else
    *has = 0;
#endif
}

/* ---- launch ---- */

/* Keys rounded up to whole wgmma tiles (the mma.sync tiles divide them). */
static int64_t keys_padded(int64_t nk) {
    return (nk + W_BC - 1) / W_BC * W_BC;
}

int cuda_attention_fp8_takes(const cuda_state *cs, int64_t nk, int head_dim, int has_logit_terms) {
    return cs->precision == BE_CUDA_FP8 && head_dim == F8_D && !has_logit_terms && nk >= CUDA_ATTN_FP8_MIN_KEYS;
}

/* The scratch regions, in order. */
typedef struct fa8_bufs {
    uint8_t *q8, *k8, *vt8;
    float *sq, *sk;
    unsigned *vmax;
} fa8_bufs;

static size_t fa8_carve(int64_t nq, int64_t nk, int H, char *base, fa8_bufs *b) {
    const int64_t HD = (int64_t)H * F8_D, nk_pad = keys_padded(nk);
    const size_t sizes[6] = {cuda_round256((size_t)(nq * HD)),
                             cuda_round256((size_t)(nk * HD)),
                             cuda_round256((size_t)(HD * nk_pad)),
                             cuda_round256((size_t)(H * nq) * sizeof(float)),
                             cuda_round256((size_t)(H * (nk_pad / F8_KB)) * sizeof(float)),
                             cuda_round256((size_t)HD * sizeof(unsigned))};
    size_t off[6], total = 0;
    for (int i = 0; i < 6; i++) {
        off[i] = total;
        total += sizes[i];
    }
    if (b) {
        b->q8 = (uint8_t *)(base + off[0]);
        b->k8 = (uint8_t *)(base + off[1]);
        b->vt8 = (uint8_t *)(base + off[2]);
        b->sq = (float *)(base + off[3]);
        b->sk = (float *)(base + off[4]);
        b->vmax = (unsigned *)(base + off[5]);
    }
    return total;
}

size_t cuda_attention_fp8_scratch_bytes(int64_t nq, int64_t nk, int H) {
    return fa8_carve(nq, nk, H, NULL, NULL);
}

template <int MT, typename OutT>
static int fa8_launch(cuda_state *cs, const attn_launch *a, const fa8_bufs *b, au_err *err) {
    const char *op = "attention (fp8)";
    constexpr int BC = 64 / MT;
    const size_t smem = (size_t)F8_BR * F8_D + 4 * (size_t)BC * F8_D;
    CUDA_TRY(
        cudaFuncSetAttribute(fa8_kernel<MT, OutT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int64_t nk_pad = keys_padded(a->nk);
    dim3 grid((unsigned)((a->nq + F8_BR - 1) / F8_BR), (unsigned)a->H);
    fa8_kernel<MT, OutT><<<grid, 256 / MT, smem, cs->stream>>>(b->q8, b->k8, b->vt8, b->sq, b->sk, b->vmax,
                                                               (OutT *)a->out, a->nq, a->nk, nk_pad, a->ld,
                                                               (int)(nk_pad / F8_KB), a->scale_log2);
    CUDA_LAUNCHED();
    return 0;
}

typedef CUresult (*tmap_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                    const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

int cuda_attention_tma_map(cuda_state *cs, CUtensorMap *m, int bf16, const void *p, int64_t rows, int64_t cols,
                           int64_t ld, int box_cols, int box_rows, const char *op, au_err *err) {
    const size_t esz = bf16 ? 2 : 1;
    cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)(ld * esz)};
    cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows}, step[2] = {1, 1};
    CUresult r = ((tmap_encode_fn)cs->tmap_encode)(
        m, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, (void *)p, dims, strides, box,
        step, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return au_errf(err, AU_EBACKEND, "%s: cuTensorMapEncodeTiled failed (%d) for a %lld x %lld operand", op,
                       (int)r, (long long)rows, (long long)cols);
    return 0;
}

template <typename OutT>
static int fa8w_launch(cuda_state *cs, const attn_launch *a, const fa8_bufs *b, au_err *err) {
    const char *op = "attention (fp8, wgmma)";
    const size_t smem = (size_t)W_BR * F8_D + (size_t)W_ST * W_STAGE + 1024; /* + alignment to 1024 */
    CUDA_TRY(cudaFuncSetAttribute(fa8w_kernel<OutT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int64_t nk_pad = keys_padded(a->nk);
    CUtensorMap mk, mv;
    TRY_RC(cuda_attention_tma_map(cs, &mk, 0, b->k8, a->nk, a->ld, a->ld, W_BC, W_BC, op, err));
    TRY_RC(cuda_attention_tma_map(cs, &mv, 0, b->vt8, a->ld, nk_pad, nk_pad, W_BC, F8_D, op, err));
    dim3 grid((unsigned)((a->nq + W_BR - 1) / W_BR), (unsigned)a->H);
    fa8w_kernel<OutT><<<grid, 128 * (W_WG + 1), smem, cs->stream>>>(
        mk, mv, b->q8, b->sq, b->sk, b->vmax, (OutT *)a->out, a->nq, (int)a->nk, a->ld, (int)(nk_pad / F8_KB),
        a->scale_log2);
    CUDA_LAUNCHED();
    return 0;
}

int cuda_attention_wgmma_probe(cuda_state *cs) {
    if (cs->stats.sm_major != 9 || cs->stats.sm_minor != 0)
        return 0;
    int *flag = NULL, has = 0;
    if (cudaMalloc(&flag, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    fa8w_probe_kernel<<<1, 1, 0, cs->stream>>>(flag);
    if (cudaGetLastError() != cudaSuccess ||
        cudaMemcpyAsync(&has, flag, sizeof has, cudaMemcpyDeviceToHost, cs->stream) != cudaSuccess ||
        cudaStreamSynchronize(cs->stream) != cudaSuccess) {
        cudaGetLastError();
        has = 0;
    }
    cudaFree(flag);
    if (!has)
        return 0;
    /* the 8-bit kernel's bulk copies need the driver's tensor-map encoder */
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess || !fn) {
        cudaGetLastError();
        return 0;
    }
    cs->tmap_encode = fn;
    return 1;
}

int cuda_attention_fp8(cuda_state *cs, const attn_launch *a, void *scratch, au_err *err) {
    const char *op = "attention (fp8 prologue)";
    fa8_bufs b;
    fa8_carve(a->nq, a->nk, a->H, (char *)scratch, &b);
    const int64_t HD = a->ld, nk_pad = keys_padded(a->nk), nkb = nk_pad / F8_KB;
    CUDA_TRY(cudaMemsetAsync(b.vmax, 0, (size_t)HD * sizeof(unsigned), cs->stream));
    fa8_quant_q_kernel<<<(unsigned)((a->nq * a->H + 15) / 16), 256, 0, cs->stream>>>(a->q, b.q8, b.sq, a->nq,
                                                                                     a->H, HD);
    CUDA_LAUNCHED();
    fa8_quant_k_kernel<<<dim3((unsigned)nkb, (unsigned)a->H), 256, 0, cs->stream>>>(a->k, b.k8, b.sk, a->nk,
                                                                                    HD, (int)nkb);
    CUDA_LAUNCHED();
    fa8_vmax_kernel<<<dim3((unsigned)((HD + 255) / 256), (unsigned)((a->nk + VMAX_ROWS - 1) / VMAX_ROWS)),
                      256, 0, cs->stream>>>(a->v, b.vmax, a->nk, HD);
    CUDA_LAUNCHED();
    fa8_quant_vt_kernel<<<dim3((unsigned)nkb, (unsigned)a->H), 256, 0, cs->stream>>>(a->v, b.vmax, b.vt8,
                                                                                     a->nk, nk_pad, HD);
    CUDA_LAUNCHED();
    const int mt2 = cs->attn_rows_per_warp == 32;
    if (mt2 && cs->attn_wgmma)
        return a->out_dtype == AU_F32 ? fa8w_launch<float>(cs, a, &b, err)
                                      : fa8w_launch<bf16>(cs, a, &b, err);
    if (a->out_dtype == AU_F32)
        return mt2 ? fa8_launch<2, float>(cs, a, &b, err) : fa8_launch<1, float>(cs, a, &b, err);
    return mt2 ? fa8_launch<2, bf16>(cs, a, &b, err) : fa8_launch<1, bf16>(cs, a, &b, err);
}
