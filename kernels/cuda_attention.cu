/* cuda_attention.cu - softmax attention on the CUDA backend, flash style.
 *
 * out[i, h] = sum_j p_ij v[j, h],  p_ij = softmax_j(scale q[i,h].k[j,h] + bias[h,i,j]),
 * head h being columns h*D .. h*D+D-1 of q [nq, H*D] and k, v [nk, H*D]. The [nq, nk]
 * matrix never exists: a block holds a tile of queries, walks the keys in tiles and keeps
 * per row a running max m, a running sum l and the unnormalised output O (online softmax:
 * on a new tile, m' = max(m, rowmax S), O and l are multiplied by 2^(m - m'), then
 * P = 2^(S - m') is added in; exponentials in base 2 with log2(e) folded into the scale).
 * Products run on tensor cores, mma.sync m16n8k16 bf16 with float32 accumulation (sm_80 and
 * later, so the same code runs on Hopper and on GB10); P is rounded to bf16 for P.V.
 *
 * Two kernels:
 *  - flash_kernel<D, MT> for head_dim 64 and 128 (the DiT and UMT5-XXL): 128 queries per
 *    block, as 8 warps of 16 (MT 1, Q fragments kept in registers) or 4 warps of 32 (MT 2,
 *    each K/V fragment feeding two m-tiles), chosen by be_cuda_opts.attn_rows_per_warp; key
 *    tiles of 64 double-buffered with cp.async, tiles in shared memory with an XOR swizzle of
 *    16-byte chunks (chunk ^ (row & 7)) so ldmatrix reads are free of bank conflicts. 96 KiB
 *    of shared memory at D = 128, within GB10's 99 KiB.
 *  - generic_kernel for any head_dim up to GENERIC_MAX_D (the VAE's 384, test sizes):
 *    4 warps, 64 queries, key tiles of 32, Q and K padded to a multiple of 16 with zeros,
 *    rows padded by 16 bytes; each block produces a 64-column slice of the output, so
 *    Q.K^T is recomputed once per slice.
 * On the FP8 precision, long attention with head_dim 128 and no bias (the DiT's self-attention)
 * runs on the 8-bit kernel of cuda_attention_fp8.cu instead (int8 Q K^T, e4m3 P V;
 * cuda_attention_fp8_takes); on Hopper, the rest with head_dim 128 and no bias runs on the
 * wgmma form of flash_kernel in cuda_attention_wgmma.cu (cuda_attention_wgmma_takes).
 * q, k, v must be bf16 for the kernels (other dtypes are converted into scratch first);
 * the kernels write bf16 or f32, and an f8 or f16 output goes through a bf16 scratch tile
 * (f8: then quantized per row across all heads).
 * last_key_copies n > 1 adds log2(n) to the last key's base-2 exponent (its weight times n),
 * in the pass that masks the partial tile; the FP8 kernel does not take such calls.
 */
#include "cuda_attention.cuh"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GENERIC_MAX_D 448

/* c += a (16x16 bf16, row) . b (16x8 bf16, col) */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ---- head_dim 64 / 128 ---- */

#define FA_BR 128 /* queries per block */
#define FA_BC 64  /* keys per tile */

template <int D> __device__ __forceinline__ int swz(int row, int chunk) {
    return row * (D / 8) + (chunk ^ (row & 7));
}

/* Copy rows [r0, r0+rows) (zero past n) of a head slice into a swizzled [rows][D] tile. */
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile(bf16 *tile, const bf16 *src, int64_t ld, int64_t r0, int64_t n) {
    constexpr int CPR = D / 8;
    for (int idx = threadIdx.x; idx < ROWS * CPR; idx += THREADS) {
        int r = idx / CPR, c = idx % CPR;
        bool valid = r0 + r < n;
        const bf16 *g = valid ? src + (r0 + r) * ld + c * 8 : src;
        cp_async16(tile + swz<D>(r, c) * 8, g, valid);
    }
}

/* MT = 16-row m-tiles per warp: MT 1 is 8 warps of 16 queries (Q fragments kept in
 * registers) and key tiles of 64; MT 2 is 4 warps of 32 queries (Q re-read from shared
 * memory, each K and V fragment used for two m-tiles: half the shared-memory traffic per
 * FLOP) and key tiles of 32, which keeps the scores in registers and lets two blocks share
 * an SM (64 KiB of shared memory each at D = 128). */
template <int D, int MT, bool BIAS, typename OutT>
__global__ void __launch_bounds__(256 / MT, MT)
    flash_kernel(const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                 OutT *__restrict__ out, const float *__restrict__ bias, int64_t nq, int64_t nk, int64_t ld,
                 float scale_log2, float last_units) {
    constexpr int WARPS = 8 / MT, THREADS = WARPS * 32, BC = FA_BC / MT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;
    bf16 *Ks = Qs + FA_BR * D;     /* [2][BC][D] */
    bf16 *Vs = Ks + 2 * BC * D; /* [2][BC][D] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y;
    const int64_t q0 = (int64_t)blockIdx.x * FA_BR;
    const bf16 *qh = q + h * D, *kh = k + h * D, *vh = v + h * D;
    const float *bias_h = BIAS ? bias + (int64_t)h * nq * nk : nullptr;

    load_tile<D, FA_BR, THREADS>(Qs, qh, ld, q0, nq);
    cp_async_commit();
    load_tile<D, BC, THREADS>(Ks, kh, ld, 0, nk);
    load_tile<D, BC, THREADS>(Vs, vh, ld, 0, nk);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    /* m-tile mt of this warp covers block rows (mt * WARPS + warp) * 16 .. +15 */
    uint32_t qreg[MT == 1 ? D / 16 : 1][4];
    if (MT == 1) {
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = kk * 2 + (lane >> 4);
            ldsm_x4(qreg[kk][0], qreg[kk][1], qreg[kk][2], qreg[kk][3], Qs + swz<D>(r, c) * 8);
        }
    }
    float o[MT][D / 8][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int t = 0; t < D / 8; t++)
            o[mt][t][0] = o[mt][t][1] = o[mt][t][2] = o[mt][t][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }

    const int n_tiles = (int)((nk + BC - 1) / BC);
    for (int j = 0; j < n_tiles; j++) {
        const int buf = j & 1;
        if (j + 1 < n_tiles) {
            load_tile<D, BC, THREADS>(Ks + (buf ^ 1) * BC * D, kh, ld, (int64_t)(j + 1) * BC, nk);
            load_tile<D, BC, THREADS>(Vs + (buf ^ 1) * BC * D, vh, ld, (int64_t)(j + 1) * BC, nk);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *Kt = Ks + buf * BC * D, *Vt = Vs + buf * BC * D;

        float s[MT][BC / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int t = 0; t < BC / 8; t++)
                s[mt][t][0] = s[mt][t][1] = s[mt][t][2] = s[mt][t][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if (MT == 1) {
                    qa[mt][0] = qreg[kk][0], qa[mt][1] = qreg[kk][1], qa[mt][2] = qreg[kk][2], qa[mt][3] = qreg[kk][3];
                } else {
                    int r = (mt * WARPS + warp) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = kk * 2 + (lane >> 4);
                    ldsm_x4(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3], Qs + swz<D>(r, c) * 8);
                }
            }
#pragma unroll
            for (int np = 0; np < BC / 16; np++) {
                uint32_t b0, b1, b2, b3;
                int r = np * 16 + (lane & 7) + (lane >> 4) * 8, c = kk * 2 + ((lane >> 3) & 1);
                ldsm_x4(b0, b1, b2, b3, Kt + swz<D>(r, c) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16(s[mt][2 * np], qa[mt], b0, b1);
                    mma_bf16(s[mt][2 * np + 1], qa[mt], b2, b3);
                }
            }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            scores_fix<BC / 8, BIAS>(s[mt], (int64_t)j * BC, q0 + (mt * WARPS + warp) * 16, nq, nk, scale_log2,
                                     last_units, bias_h, lane);
            softmax_step<BC / 8, D / 8>(s[mt], o[mt], m[mt], l[mt], units_mul(scale_log2));
        }
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                pa[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t b0, b1, b2, b3;
                int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = dp * 2 + (lane >> 4);
                ldsm_x4_t(b0, b1, b2, b3, Vt + swz<D>(r, c) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16(o[mt][2 * dp], pa[mt], b0, b1);
                    mma_bf16(o[mt][2 * dp + 1], pa[mt], b2, b3);
                }
            }
        }
        __syncthreads(); /* the next iteration loads into this buffer */
    }

    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[mt][r];
            lr += __shfl_xor_sync(0xffffffffu, lr, 1);
            lr += __shfl_xor_sync(0xffffffffu, lr, 2);
            int64_t row = q0 + (mt * WARPS + warp) * 16 + g + r * 8;
            if (row >= nq)
                continue;
            float inv = 1.0f / lr;
            OutT *dst = out + row * ld + h * D + 2 * t4;
#pragma unroll
            for (int t = 0; t < D / 8; t++)
                store_pair<OutT>(dst + t * 8, o[mt][t][2 * r] * inv, o[mt][t][2 * r + 1] * inv);
        }
}

/* ---- any head_dim ---- */

#define GA_WARPS 4
#define GA_BR (16 * GA_WARPS)
#define GA_BC 32
#define GA_DV 64

/* Rows [r0, r0+rows) x columns [c0, c0+width) of a head slice (zero outside n rows and
 * D columns) into a [rows][stride] tile. */
__device__ __forceinline__ void generic_load(bf16 *tile, int stride, const bf16 *src, int64_t ld, int64_t r0,
                                             int64_t n, int rows, int c0, int width, int D, bool vec) {
    if (vec) { /* D % 8 == 0, 16-byte aligned rows */
        int cpr = width / 8;
        for (int idx = threadIdx.x; idx < rows * cpr; idx += GA_WARPS * 32) {
            int r = idx / cpr, c = (idx % cpr) * 8;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (r0 + r < n && c0 + c < D)
                val = *(const uint4 *)(src + (r0 + r) * ld + c0 + c);
            *(uint4 *)(tile + r * stride + c) = val;
        }
    } else {
        for (int idx = threadIdx.x; idx < rows * width; idx += GA_WARPS * 32) {
            int r = idx / width, c = idx % width;
            bf16 val = __float2bfloat16_rn(0.0f);
            if (r0 + r < n && c0 + c < D)
                val = src[(r0 + r) * ld + c0 + c];
            tile[r * stride + c] = val;
        }
    }
}

template <bool BIAS, typename OutT>
__global__ void __launch_bounds__(GA_WARPS * 32)
    generic_kernel(const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                   OutT *__restrict__ out, const float *__restrict__ bias, int64_t nq, int64_t nk, int64_t ld, int D,
                   int Dp, float scale_log2, float last_units, int vec) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int qs = Dp + 8, vs = GA_DV + 8; /* row strides, 16 bytes of padding */
    bf16 *Qs = (bf16 *)smem_raw, *Ks = Qs + GA_BR * qs, *Vs = Ks + GA_BC * qs;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y, dv0 = blockIdx.z * GA_DV;
    const int64_t q0 = (int64_t)blockIdx.x * GA_BR;
    const bf16 *qh = q + (int64_t)h * D, *kh = k + (int64_t)h * D, *vh = v + (int64_t)h * D;
    const float *bias_h = BIAS ? bias + (int64_t)h * nq * nk : nullptr;

    generic_load(Qs, qs, qh, ld, q0, nq, GA_BR, 0, Dp, D, vec);
    float o[GA_DV / 8][4];
#pragma unroll
    for (int t = 0; t < GA_DV / 8; t++)
        o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int64_t j0 = 0; j0 < nk; j0 += GA_BC) {
        __syncthreads(); /* previous tile consumed */
        generic_load(Ks, qs, kh, ld, j0, nk, GA_BC, 0, Dp, D, vec);
        generic_load(Vs, vs, vh, ld, j0, nk, GA_BC, dv0, GA_DV, D, vec);
        __syncthreads();

        float s[GA_BC / 8][4];
#pragma unroll
        for (int t = 0; t < GA_BC / 8; t++)
            s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
        for (int kk = 0; kk < Dp / 16; kk++) {
            uint32_t a[4];
            int ra = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ca = kk * 16 + (lane >> 4) * 8;
            ldsm_x4(a[0], a[1], a[2], a[3], Qs + ra * qs + ca);
#pragma unroll
            for (int np = 0; np < GA_BC / 16; np++) {
                uint32_t b0, b1, b2, b3;
                int r = np * 16 + (lane & 7) + (lane >> 4) * 8, c = kk * 16 + ((lane >> 3) & 1) * 8;
                ldsm_x4(b0, b1, b2, b3, Ks + r * qs + c);
                mma_bf16(s[2 * np], a, b0, b1);
                mma_bf16(s[2 * np + 1], a, b2, b3);
            }
        }
        scores_fix<GA_BC / 8, BIAS>(s, j0, q0 + warp * 16, nq, nk, scale_log2, last_units, bias_h, lane);
        softmax_step<GA_BC / 8, GA_DV / 8>(s, o, m, l, units_mul(scale_log2));
        uint32_t pa[GA_BC / 16][4];
        p_frags_bf16<GA_BC / 8>(pa, s);
#pragma unroll
        for (int dp = 0; dp < GA_DV / 16; dp++)
#pragma unroll
            for (int kk = 0; kk < GA_BC / 16; kk++) {
                uint32_t b0, b1, b2, b3;
                int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = dp * 16 + (lane >> 4) * 8;
                ldsm_x4_t(b0, b1, b2, b3, Vs + r * vs + c);
                mma_bf16(o[2 * dp], pa[kk], b0, b1);
                mma_bf16(o[2 * dp + 1], pa[kk], b2, b3);
            }
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int64_t row = q0 + warp * 16 + g + r * 8;
        if (row >= nq)
            continue;
        float inv = 1.0f / l[r];
        OutT *dst = out + row * ld + (int64_t)h * D;
#pragma unroll
        for (int t = 0; t < GA_DV / 8; t++) {
            int c = dv0 + t * 8 + 2 * t4;
            if (c < D)
                store_one<OutT>(dst + c, o[t][2 * r] * inv);
            if (c + 1 < D)
                store_one<OutT>(dst + c + 1, o[t][2 * r + 1] * inv);
        }
    }
}

/* ---- launch ---- */

template <int D, int MT, bool BIAS, typename OutT>
static int launch_fast(cuda_state *cs, const attn_launch *a, au_err *err) {
    const char *op = "attention";
    size_t smem = (size_t)(FA_BR + 4 * (FA_BC / MT)) * D * sizeof(bf16);
    if ((int)smem > cs->max_smem_optin)
        return au_errf(err, AU_EUNSUPPORTED, "%s: head_dim %d needs %zu bytes of shared memory, the device has %d", op,
                       D, smem, cs->max_smem_optin);
    CUDA_TRY(cudaFuncSetAttribute(flash_kernel<D, MT, BIAS, OutT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem));
    dim3 grid((unsigned)((a->nq + FA_BR - 1) / FA_BR), (unsigned)a->H);
    flash_kernel<D, MT, BIAS, OutT><<<grid, 256 / MT, smem, cs->stream>>>(a->q, a->k, a->v, (OutT *)a->out, a->bias,
                                                                         a->nq, a->nk, a->ld, a->scale_log2,
                                                                         a->last_units);
    CUDA_LAUNCHED();
    return 0;
}

template <bool BIAS, typename OutT> static int launch_generic(cuda_state *cs, const attn_launch *a, au_err *err) {
    const char *op = "attention";
    int Dp = (a->D + 15) / 16 * 16;
    size_t smem = ((size_t)(GA_BR + GA_BC) * (Dp + 8) + (size_t)GA_BC * (GA_DV + 8)) * sizeof(bf16);
    if (a->D > GENERIC_MAX_D || (int)smem > cs->max_smem_optin)
        return au_errf(err, AU_EUNSUPPORTED, "%s: head_dim %d is above what this kernel takes (%d, %zu bytes of shared memory)",
                       op, a->D, GENERIC_MAX_D, smem);
    CUDA_TRY(cudaFuncSetAttribute(generic_kernel<BIAS, OutT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int vec = a->D % 8 == 0 && a->ld % 8 == 0 && ((uintptr_t)a->q % 16) == 0 && ((uintptr_t)a->k % 16) == 0 &&
              ((uintptr_t)a->v % 16) == 0;
    dim3 grid((unsigned)((a->nq + GA_BR - 1) / GA_BR), (unsigned)a->H, (unsigned)((a->D + GA_DV - 1) / GA_DV));
    generic_kernel<BIAS, OutT><<<grid, GA_WARPS * 32, smem, cs->stream>>>(
        a->q, a->k, a->v, (OutT *)a->out, a->bias, a->nq, a->nk, a->ld, a->D, Dp, a->scale_log2, a->last_units, vec);
    CUDA_LAUNCHED();
    return 0;
}

template <bool BIAS, typename OutT> static int dispatch(cuda_state *cs, const attn_launch *a, au_err *err) {
    int aligned = ((uintptr_t)a->q % 16) == 0 && ((uintptr_t)a->k % 16) == 0 && ((uintptr_t)a->v % 16) == 0 &&
                  ((uintptr_t)a->out % 8) == 0 && a->ld % 8 == 0;
    int mt2 = cs->attn_rows_per_warp == 32;
    if (aligned && a->D == 128) {
        cs->stats.attn_fast++;
        return mt2 ? launch_fast<128, 2, BIAS, OutT>(cs, a, err) : launch_fast<128, 1, BIAS, OutT>(cs, a, err);
    }
    if (aligned && a->D == 64) {
        cs->stats.attn_fast++;
        return mt2 ? launch_fast<64, 2, BIAS, OutT>(cs, a, err) : launch_fast<64, 1, BIAS, OutT>(cs, a, err);
    }
    cs->stats.attn_generic++;
    return launch_generic<BIAS, OutT>(cs, a, err);
}

int cuda_attention(au_backend *be, au_tensor *out, const au_tensor *q, const au_tensor *k, const au_tensor *v,
                   int n_heads, float scale, const au_tensor *bias, int64_t last_key_copies, au_err *err) {
    const char *op = "attention";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "q", q, err));
    TRY_RC(cuda_check_readable(op, "k", k, err));
    TRY_RC(cuda_check_readable(op, "v", v, err));
    TRY_RC(cuda_check_writable(op, "out", out, 1, err));
    char sq[96], sk[96], sv[96], so[96];
    int64_t HD = q->shape[q->ndim - 1], nq = au_rows(q), nk = au_rows(k);
    if (n_heads < 1 || HD % n_heads != 0 || k->shape[k->ndim - 1] != HD || v->shape[v->ndim - 1] != HD ||
        au_rows(v) != nk || out->shape[out->ndim - 1] != HD || au_rows(out) != nq)
        return au_errf(err, AU_EINVAL,
                       "%s: q %s, k %s, v %s, out %s, %d heads: expected q, out [nq, H*D] and k, v [nk, H*D]", op,
                       au_shape_str(q, sq, sizeof sq), au_shape_str(k, sk, sizeof sk), au_shape_str(v, sv, sizeof sv),
                       au_shape_str(out, so, sizeof so), n_heads);
    if (bias)
        TRY_RC(cuda_check_vec(op, "bias [H, nq, nk]", bias, (int64_t)n_heads * nq * nk, err));
    if (last_key_copies < 1)
        return au_errf(err, AU_EINVAL, "%s: last_key_copies %lld, expected >= 1", op, (long long)last_key_copies);
    if (nq > 0 && (out->data == k->data || out->data == v->data || out->data == q->data))
        return au_errf(err, AU_EINVAL, "%s: out must not alias q, k or v", op);
    if (out->dtype == AU_F8_E4M3 && out->shape[0] != nq)
        return au_errf(err, AU_EINVAL, "%s: f8 out %s must have one row per query", op,
                       au_shape_str(out, so, sizeof so));
    if (nq == 0)
        return 0;
    if (nk == 0)
        return au_errf(err, AU_EINVAL, "%s: no keys (k %s)", op, au_shape_str(k, sk, sizeof sk));

    /* bf16 operands, converted into scratch where needed, the output tile and, for the FP8
     * kernel, its quantized operands */
    attn_launch a;
    memset(&a, 0, sizeof a);
    a.bias = bias ? (const float *)bias->data : NULL;
    a.nq = nq, a.nk = nk, a.ld = HD, a.H = n_heads, a.D = (int)(HD / n_heads);
    a.scale_log2 = scale * LOG2E;
    a.last_units = last_key_copies > 1 ? (float)log2((double)last_key_copies) / units_mul(a.scale_log2) : 0.0f;
    const int fp8 = cuda_attention_fp8_takes(cs, nk, a.D, bias != NULL || last_key_copies > 1);
    const int wgmma = !fp8 && cuda_attention_wgmma_takes(cs, a.D, bias != NULL);
    int direct_out = out->dtype == AU_BF16 || out->dtype == AU_F32;
    size_t bq = q->dtype == AU_BF16 ? 0 : cuda_round256((size_t)(nq * HD) * 2);
    size_t bk = k->dtype == AU_BF16 ? 0 : cuda_round256((size_t)(nk * HD) * 2);
    size_t bv = v->dtype == AU_BF16 ? 0 : cuda_round256((size_t)(nk * HD) * 2);
    size_t bo = direct_out ? 0 : cuda_round256((size_t)(nq * HD) * 2);
    size_t b8 = fp8     ? cuda_attention_fp8_scratch_bytes(nq, nk, n_heads)
                : wgmma ? cuda_attention_wgmma_scratch_bytes(nk, n_heads)
                        : 0;
    char *mem = NULL;
    if (bq + bk + bv + bo + b8)
        TRY_RC(cuda_scratch(cs, bq + bk + bv + bo + b8, (void **)&mem, op, err));
    const au_tensor *src[3] = {q, k, v};
    const bf16 **dst[3] = {&a.q, &a.k, &a.v};
    size_t off = 0, sizes[3] = {bq, bk, bv};
    for (int i = 0; i < 3; i++) {
        if (!sizes[i]) {
            *dst[i] = (const bf16 *)src[i]->data;
            continue;
        }
        cu_ref dr = {mem + off, NULL, 1, (int)AU_BF16}, sr = cu_ref_of(src[i]);
        TRY_RC(cuda_convert(cs, &dr, &sr, au_numel(src[i]), op, err));
        *dst[i] = (const bf16 *)(mem + off);
        off += sizes[i];
    }
    a.out = direct_out ? out->data : (void *)(mem + off);
    a.out_dtype = direct_out ? out->dtype : AU_BF16;
    off += bo;
    const int aligned16 = ((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v | (uintptr_t)a.out) % 16 == 0;
    if (fp8 && aligned16) {
        cs->stats.attn_fast++;
        TRY_RC(cuda_attention_fp8(cs, &a, mem + off, err));
    } else if (wgmma && aligned16) {
        cs->stats.attn_fast++;
        TRY_RC(cuda_attention_wgmma(cs, &a, mem + off, err));
    } else if (a.out_dtype == AU_F32)
        TRY_RC((a.bias ? dispatch<true, float>(cs, &a, err) : dispatch<false, float>(cs, &a, err)));
    else
        TRY_RC((a.bias ? dispatch<true, bf16>(cs, &a, err) : dispatch<false, bf16>(cs, &a, err)));
    if (direct_out)
        return 0;
    cu_ref tile = {a.out, NULL, 1, (int)AU_BF16};
    if (out->dtype == AU_F8_E4M3)
        return cuda_quantize_rows(cs, (uint8_t *)out->data, (float *)out->scale, &tile, nq, HD, op, err);
    cu_ref dr = cu_ref_of(out);
    return cuda_convert(cs, &dr, &tile, nq * HD, op, err);
}
