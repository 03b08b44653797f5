/* cuda_attention_wgmma.cu - the bf16 flash attention on Hopper's wgmma (sm_90a only, an extra:
 * the mma.sync kernels of cuda_attention.cu are the portable path, and what GB10 runs).
 *
 * Same contract and online softmax as flash_kernel (cuda_attention.cu: scores in units, the
 * scale in the exponent, bf16 P, float32 O and sums), head_dim 128, no bias (last_units taken).
 * One block = two consumer warpgroups of 64 queries and a producer warpgroup; key tiles of 64.
 * S = Q K^T is m64n64k16 with both operands from shared memory: Q [128][128] and K [64][128] bf16
 * are kept as two 64-column halves with 128-byte rows in the 128-byte swizzle (swz128 for Q, the
 * bulk copies' own for K), which is wgmma's K-major layout, eight 32-byte steps along d. O += P V
 * is m64n128k16 with P from registers (the S accumulator repacked to bf16, the A fragment layout
 * of mma.sync's m16n8k16) and V from a transposed copy vt [H][128 d][keys padded to 64] made by a
 * prologue kernel, so its [128 d][64 keys] tile is K-major too. One producer thread fills a ring
 * of four K/V stages with bulk tensor copies (mbarriers, as fa8w_kernel of cuda_attention_fp8.cu
 * does; both take their helpers from cuda_attention.cuh), so the consumers never wait for each
 * other. Within a consumer, S of the next tile is issued with P V of this one and its softmax
 * runs while P V does (FA3's in-warpgroup overlap, as fa8w_kernel: 12.1 -> 10.7 ms at the 1.3B
 * self shape), with registers moved from the producer to the consumers (setmaxnreg 24 / 240).
 */
#include "cuda_attention.cuh"

#define WB_D 128 /* head_dim */
#define WB_BC 64  /* keys a tile */

/* The shape of one configuration: WG consumer warpgroups of 64 queries and one producer warpgroup a
 * block, ST stages of K/V tiles. Q and K tiles are two 64-column halves of 128-byte rows; the V^T
 * tile is [128 d][64 keys]. */
template <int WG, int ST> struct wb_cfg {
    static constexpr int BR = 64 * WG, THREADS = 128 * (WG + 1);
    static constexpr int HALF_Q = BR * 128, HALF_K = WB_BC * 128, HALF_V = WB_D * 128;
    static constexpr int STAGE = 2 * HALF_K + HALF_V;
    static constexpr size_t SMEM = 2 * (size_t)HALF_Q + (size_t)ST * STAGE + 1024; /* + alignment to 1024 */
};

static int64_t keys_padded(int64_t nk) { return (nk + WB_BC - 1) / WB_BC * WB_BC; }

/* vt [H][128][nk_pad] = v [nk, H*128] transposed per head, zero for keys >= nk: one block per
 * 64 keys x 64 columns through shared memory. */
__global__ void __launch_bounds__(256) wb_transpose_v_kernel(const bf16 *__restrict__ v, bf16 *__restrict__ vt,
                                                               int64_t nk, int64_t nk_pad, int64_t ld) {
    __shared__ bf16 tile[64][66];
    const int64_t j0 = (int64_t)blockIdx.x * 64, c0 = (int64_t)blockIdx.y * 64;
    for (int idx = threadIdx.x; idx < 64 * 64; idx += 256) {
        const int r = idx / 64, c = idx % 64;
        tile[r][c] = j0 + r < nk ? v[(j0 + r) * ld + c0 + c] : __float2bfloat16_rn(0.0f);
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < 64 * 64; idx += 256) {
        const int d = idx / 64, r = idx % 64;
        vt[(c0 + d) * nk_pad + j0 + r] = tile[r][d]; /* column c0 + d = head * 128 + channel */
    }
}

/* Rows [r0, r0 + ROWS) (zero past n) of one head of a bf16 [n, ld] matrix into two 64-column
 * halves of HALF bytes each, 128-byte rows, swizzled. */
template <int ROWS, int THREADS, int HALF>
__device__ __forceinline__ void wb_load_rows(unsigned char *tile, const bf16 *src, int64_t ld, int64_t r0, int64_t n) {
    for (int idx = threadIdx.x; idx < ROWS * 16; idx += THREADS) {
        const int r = idx / 16, c = idx % 16;
        const bool valid = r0 + r < n;
        cp_async16(tile + (c / 8) * HALF + swz128(r * 8 + c % 8) * 16, valid ? src + (r0 + r) * ld + c * 8 : src,
                   valid);
    }
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* d = (acc 0) or += A (64x16 bf16, descriptor) . B (16x64 bf16, descriptor): S of one 64-key tile. */
__device__ __forceinline__ void wg_qk(float (&d)[8][4], uint64_t da, uint64_t db, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
                 : "l"(da), "l"(db), "r"(acc));
}

/* d += A (64x16 bf16, registers) . B (16x128 bf16, descriptor) */
__device__ __forceinline__ void wg_pv(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, 1, 1, 1, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* What a consumer warpgroup carries from key tile to key tile. */
template <int ST> struct wb_state {
    unsigned char *stages; /* [ST][K half 0 | K half 1 | V^T tile] */
    mb_ring<ST> *bars;
    uint64_t dq0, dq1;     /* this warpgroup's Q halves */
    int64_t wrow0, nq, nk; /* wrow0: this warp's first row */
    float scale_log2, last_units, mul;
    int lane, n_tiles, stage_bytes;
    float m[2], l[2];
};

template <int ST> __device__ __forceinline__ unsigned char *wb_stage(const wb_state<ST> &st, int j) {
    return st.stages + (j % ST) * st.stage_bytes;
}

/* wb's primitives for overlap_tiles (cuda_attention.cuh): one consumer warpgroup's key tiles
 * into its O. */
template <int ST> struct wb_tiles {
    typedef uint32_t p_frag[WB_BC / 16][4];
    wb_state<ST> &st;
    float (&o)[16][4];
    float s[WB_BC / 8][4]; /* S of the tile in flight (left uninitialized: the first product writes it) */
    __device__ wb_tiles(wb_state<ST> &st_, float (&o_)[16][4]) : st(st_), o(o_) {}

    /* S of key tile j, 16 channels a step: 4 in each half, +32 bytes = +2 in a descriptor. */
    __device__ __forceinline__ void issue_s(int j) {
        st.bars->wait(j);
        const unsigned char *sp = wb_stage(st, j);
        const uint64_t dk0 = wg_desc(sp), dk1 = wg_desc(sp + WB_BC * 128);
#pragma unroll
        for (int kk = 0; kk < 8; kk++)
            wg_qk(s, (kk < 4 ? st.dq0 : st.dq1) + 2 * (kk % 4), (kk < 4 ? dk0 : dk1) + 2 * (kk % 4), kk);
        wg_commit();
    }

    /* O += P V of key tile j, 16 keys a step, 32 bytes into the V^T rows. */
    __device__ __forceinline__ void issue_pv(p_frag &p, int j) {
        const uint64_t dv = wg_desc(wb_stage(st, j) + 2 * WB_BC * 128);
#pragma unroll
        for (int kk = 0; kk < WB_BC / 16; kk++)
            wg_pv(o, p[kk], dv + 2 * kk);
        wg_commit();
    }

    /* The online softmax of key tile j from its S: P into p, O's factor into alpha; whether O
     * needs it. */
    __device__ __forceinline__ bool softmax(p_frag &p, float alpha[2], int j) {
#pragma unroll
        for (int t = 0; t < WB_BC / 8; t++)
            wg_hold(s[t]);
        scores_fix<WB_BC / 8, false>(s, (int64_t)j * WB_BC, st.wrow0, st.nq, st.nk, st.scale_log2, st.last_units,
                                     nullptr, st.lane);
        const bool rescale = softmax_scores<WB_BC / 8>(s, st.m, st.l, st.mul, alpha);
        p_frags_bf16<WB_BC / 8>(p, s);
        return rescale;
    }

    /* Wait for tile j's P V, then give its stage back. */
    __device__ __forceinline__ void finish_pv(p_frag &p, int j) {
        wg_wait<0>();
#pragma unroll
        for (int t = 0; t < 16; t++)
            wg_hold(o[t]);
#pragma unroll
        for (int kk = 0; kk < WB_BC / 16; kk++)
            wg_hold(p[kk]);
        st.bars->release(j);
    }

    __device__ __forceinline__ void rescale(const float alpha[2]) { rescale_o<16>(o, alpha); }
};
#endif

template <int WG, int ST, typename OutT>
__global__ void __launch_bounds__(wb_cfg<WG, ST>::THREADS, 1)
    wb_kernel(const __grid_constant__ CUtensorMap map_k, const __grid_constant__ CUtensorMap map_v,
              const bf16 *__restrict__ q, OutT *__restrict__ out, int64_t nq, int64_t nk, int64_t ld,
              float scale_log2, float last_units) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    typedef wb_cfg<WG, ST> C;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    unsigned char *Qs = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023); /* 1024-aligned */
    unsigned char *Ss = Qs + 2 * C::HALF_Q;                                        /* [ST] stages */
    __shared__ mb_ring<ST> bars;
    const int h = blockIdx.y, n_tiles = (int)((nk + WB_BC - 1) / WB_BC);
    const int64_t q0 = (int64_t)blockIdx.x * C::BR;
    if (threadIdx.x == 0)
        bars.init(WG);
    wb_load_rows<C::BR, C::THREADS, C::HALF_Q>(Qs, q + h * WB_D, ld, q0, nq);
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();

    if (threadIdx.x / 128 == 0) { /* the producer: one thread loads every K and V tile through the ring */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            for (int j = 0; j < n_tiles; j++) {
                uint64_t *full = bars.fill(j, C::STAGE);
                unsigned char *st = Ss + (j % ST) * C::STAGE;
                tma_load_2d(st, &map_k, h * WB_D, j * WB_BC, full);
                tma_load_2d(st + C::HALF_K, &map_k, h * WB_D + 64, j * WB_BC, full);
                tma_load_2d(st + 2 * C::HALF_K, &map_v, j * WB_BC, h * WB_D, full);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int wg = threadIdx.x / 128 - 1, wq = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2,
              t4 = lane & 3;
    wb_state<ST> st;
    st.stages = Ss, st.bars = &bars;
    st.dq0 = wg_desc(Qs + wg * 64 * 128), st.dq1 = wg_desc(Qs + C::HALF_Q + wg * 64 * 128);
    st.wrow0 = q0 + wg * 64 + wq * 16, st.nq = nq, st.nk = nk;
    st.scale_log2 = scale_log2, st.last_units = last_units, st.mul = units_mul(scale_log2);
    st.lane = lane, st.n_tiles = n_tiles, st.stage_bytes = C::STAGE;
    st.m[0] = st.m[1] = -INFINITY;
    st.l[0] = st.l[1] = 0.0f;
    float o[16][4];
#pragma unroll
    for (int t = 0; t < 16; t++)
        o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    wb_tiles<ST> tiles(st, o);
    overlap_tiles(tiles, n_tiles);

#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = st.l[r];
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        const int64_t row = st.wrow0 + g + 8 * r;
        if (row >= nq)
            continue;
        const float inv = 1.0f / lr;
        OutT *dst = out + row * ld + h * WB_D + 2 * t4;
#pragma unroll
        for (int t = 0; t < 16; t++)
            store_pair<OutT>(dst + t * 8, o[t][2 * r] * inv, o[t][2 * r + 1] * inv);
    }
#endif
}

int cuda_attention_wgmma_takes(const cuda_state *cs, int head_dim, int has_bias) {
    return cs->attn_wgmma && cs->attn_rows_per_warp == 32 && head_dim == WB_D && !has_bias;
}

size_t cuda_attention_wgmma_scratch_bytes(int64_t nk, int H) {
    return cuda_round256((size_t)H * WB_D * (size_t)keys_padded(nk) * sizeof(bf16));
}

/* Two consumer warpgroups and a ring of four stages (bench/NOTES.md, "bf16 attention on wgmma" and
 * v9). */
template <typename OutT>
static int wb_launch(cuda_state *cs, const attn_launch *a, const bf16 *vt, int64_t nk_pad, au_err *err) {
    const char *op = "attention (bf16, wgmma)";
    typedef wb_cfg<2, 4> C;
    auto kern = wb_kernel<2, 4, OutT>;
    CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM));
    CUtensorMap mk, mv;
    TRY_RC(cuda_attention_tma_map(cs, &mk, 1, a->k, a->nk, a->ld, a->ld, 64, WB_BC, op, err));
    TRY_RC(cuda_attention_tma_map(cs, &mv, 1, vt, (int64_t)a->H * WB_D, nk_pad, nk_pad, WB_BC, WB_D, op, err));
    dim3 grid((unsigned)((a->nq + C::BR - 1) / C::BR), (unsigned)a->H);
    kern<<<grid, C::THREADS, C::SMEM, cs->stream>>>(mk, mv, a->q, (OutT *)a->out, a->nq, a->nk, a->ld, a->scale_log2,
                                                 a->last_units);
    CUDA_LAUNCHED();
    return 0;
}

int cuda_attention_wgmma(cuda_state *cs, const attn_launch *a, void *scratch, au_err *err) {
    const char *op = "attention (bf16, wgmma: V transposed)";
    const int64_t nk_pad = keys_padded(a->nk);
    bf16 *vt = (bf16 *)scratch;
    wb_transpose_v_kernel<<<dim3((unsigned)(nk_pad / 64), (unsigned)(a->H * WB_D / 64)), 256, 0, cs->stream>>>(
        a->v, vt, a->nk, nk_pad, a->ld);
    CUDA_LAUNCHED();
    return a->out_dtype == AU_F32 ? wb_launch<float>(cs, a, vt, nk_pad, err) : wb_launch<bf16>(cs, a, vt, nk_pad, err);
}
