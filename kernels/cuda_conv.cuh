/* cuda_conv.cuh - what the two conv3d kernels share (cuda_conv.cu: the op, the weight packing
 * and the generic kernel; cuda_conv_window.cu: the windowed kernel for spatial stride 1).
 *
 * Both are implicit GEMMs y [Cout, P] = W [Cout, K] . col [K, P] (P output positions, K = Cin kt
 * kh kw) on bf16 mma.sync m16n8k16 with float32 accumulators; col is never written out. A block
 * computes BM = 32 MT output channels x CONV_BN positions with 8 warps (2 over channels, 4 over
 * positions; a warp holds MT x 4 accumulator tiles of 16 x 8). The k steps walk the packed
 * weights wp [Cout padded to BM][Cin blocks of 32][kt kh kw][32] (bf16, zero where a channel or
 * an output row does not exist), one tap of 32 input channels per step; the epilogue adds the
 * bias and writes y (f32 or bf16).
 */
#ifndef AU_CUDA_CONV_CUH
#define AU_CUDA_CONV_CUH

#include "cuda_internal.cuh"

#define CONV_BN 128 /* output positions per block */
#define CONV_BK 32  /* input channels per k step */
#define CONV_THREADS 256
#define CONV_LDS 40 /* shared row of 32 channels padded to 80 bytes: ldmatrix rows land in distinct banks */

typedef struct conv_geom {
    int T, H, W, To, Ho, Wo;
    int st, sh, sw, pt, ph, pw;
    int kt, kh, kw;
    int cin, cout, P;
    int n_ksteps;   /* cin blocks x taps */
    int kp;         /* packed weight row: n_ksteps * CONV_BK */
    int64_t plane;  /* T H W: channel stride of x */
    int pair_store; /* P even and y aligned to two elements: a pair of positions is one store */
    int co_tiles;   /* blocks over the output channels */
    /* the windowed kernel's tile: bh x bw output positions (bw | Wo, bh bw = CONV_BN) and the
     * input window they read, wh x ww = (bh + kh - 1) x (bw + kw - 1) positions */
    int bw, bh, ww, wh, h_tiles, w_tiles;
} conv_geom;

__device__ __forceinline__ uint32_t conv_smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void conv_cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(conv_smem_u32(dst)), "l"(src));
}

__device__ __forceinline__ void conv_ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(conv_smem_u32(p)));
}

/* The same from a shared-memory address computed once (register + immediate offsets in the loop). */
__device__ __forceinline__ void conv_ldsm_x4_at(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void conv_ldsm_x4_t(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(conv_smem_u32(p)));
}

__device__ __forceinline__ void conv_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two outputs of channel o at flat positions q, q + 1 (q + 1 in the same row of y, or past P). */
__device__ __forceinline__ void conv_store2(void *y, int y_f32, const conv_geom &g, int o, int q, float v0,
                                            float v1) {
    size_t i = (size_t)o * g.P + q;
    if (g.pair_store && q + 1 < g.P) {
        if (y_f32)
            *reinterpret_cast<float2 *>((float *)y + i) = make_float2(v0, v1);
        else
            *reinterpret_cast<__nv_bfloat162 *>((__nv_bfloat16 *)y + i) = __floats2bfloat162_rn(v0, v1);
        return;
    }
    if (y_f32) {
        if (q < g.P)
            ((float *)y)[i] = v0;
        if (q + 1 < g.P)
            ((float *)y)[i + 1] = v1;
    } else {
        if (q < g.P)
            ((__nv_bfloat16 *)y)[i] = __float2bfloat16_rn(v0);
        if (q + 1 < g.P)
            ((__nv_bfloat16 *)y)[i + 1] = __float2bfloat16_rn(v1);
    }
}

/* The windowed kernel (cuda_conv_window.cu): sh = sw = 1, Wo % 8 == 0, kh, kw <= 3; g.bw, g.bh,
 * g.ww, g.wh, g.h_tiles, g.w_tiles set by conv_window_plan. */
int conv_window_fits(const conv_geom *g);
void conv_window_plan(conv_geom *g);
int conv_window_launch(cuda_state *cs, int mt, const __nv_bfloat16 *x, const __nv_bfloat16 *wp, const float *bias,
                       void *y, int y_f32, const conv_geom *g, const char *op, au_err *err);

#endif
