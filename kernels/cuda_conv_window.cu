/* cuda_conv_window.cu - the conv3d kernel for spatial stride 1 (every conv of the VAE decoder):
 * each input element is read once per (32-channel block, time tap) and serves all kh x kw
 * spatial taps from shared memory.
 *
 * A block's CONV_BN output positions are a bh x bw patch of one output frame (bw the largest
 * power of two <= 32 dividing Wo, bh = CONV_BN / bw; rows past Ho are computed and dropped).
 * For each (channel block cb, time tap dt) the block loads the input window that patch reads,
 * (bh + kh - 1) x (bw + kw - 1) positions x 32 channels, zero outside x, into shared memory
 * position-major: row = window position, 32 channels in 80 bytes. The B operand of spatial tap
 * (dh, dw) for output (r, c) is then window row (r + dh)(bw + kw - 1) + c + dw: ldmatrix
 * (not transposed) takes any 8 rows, so a shifted tap costs nothing. Windows are double
 * buffered: the next one is loaded into registers (8 channels of one position per item, 2-byte
 * loads coalesced along the row) during the first tap of the current one and stored after its
 * last tap. A step is one row of kw taps, K = 32 kw (kw a template parameter, so every
 * ldmatrix address in the loop is a register plus an immediate): its weights [BM, kw, 32]
 * stream through a ring of 3 cp.async stages. One barrier a step. Warps whose output channels
 * are all past Cout (half the block for the 3-channel head) skip the multiplies.
 */
#include "cuda_conv.cuh"

#define WIN_ITEMS 4 /* 8-channel items per thread: windows up to 256 positions (6 x 34 at bw 32) */
#define WIN_MAX (WIN_ITEMS * CONV_THREADS / 4) /* window positions the items cover */

namespace {

template <int MT, int KW>
__global__ void __launch_bounds__(CONV_THREADS, 2)
    conv_window_kernel(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ wp,
                       const float *__restrict__ bias, void *__restrict__ y, int y_f32, conv_geom g) {
    constexpr int BM = 32 * MT, A_ST = 3, A_ROW = KW * CONV_LDS, A_STAGE = BM * A_ROW;
    extern __shared__ __align__(16) unsigned char conv_smem[];
    const int nw = g.wh * g.ww;
    __nv_bfloat16 *As = reinterpret_cast<__nv_bfloat16 *>(conv_smem); /* [A_ST][BM][KW][CONV_LDS] */
    __nv_bfloat16 *Bw = As + A_ST * A_STAGE;                           /* [2][nw][CONV_LDS] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 2, wn = warp & 3;
    int rest = (int)(blockIdx.x / g.co_tiles);
    const int co0 = (int)(blockIdx.x % g.co_tiles) * BM;
    const int wb0 = rest % g.w_tiles * g.bw;
    rest /= g.w_tiles;
    const int hb0 = rest % g.h_tiles * g.bh, to = rest / g.h_tiles;
    const unsigned short *xs = reinterpret_cast<const unsigned short *>(x);

    /* window load: item it = (channel octet q, window position wpos) */
    uint32_t win[WIN_ITEMS][4];
    auto gather = [&](int cb, int dt) {
        int ti = to * g.st - g.pt + dt;
        bool t_ok = (unsigned)ti < (unsigned)g.T;
#pragma unroll
        for (int m = 0; m < WIN_ITEMS; m++) {
            int it = tid + m * CONV_THREADS, q = it / nw, wpos = it - q * nw;
            int wr = wpos / g.ww, wc = wpos - wr * g.ww;
            int hi = hb0 - g.ph + wr, wi = wb0 - g.pw + wc, c0 = cb * CONV_BK + q * 8;
            bool ok = q < 4 && t_ok && (unsigned)hi < (unsigned)g.H && (unsigned)wi < (unsigned)g.W;
            const unsigned short *src = xs + (size_t)c0 * g.plane + ((ti * g.H + hi) * g.W + wi);
#pragma unroll
            for (int e = 0; e < 8; e += 2) {
                uint32_t lo = ok && c0 + e < g.cin ? __ldg(src + (size_t)e * g.plane) : 0u;
                uint32_t up = ok && c0 + e + 1 < g.cin ? __ldg(src + (size_t)(e + 1) * g.plane) : 0u;
                win[m][e / 2] = lo | up << 16;
            }
        }
    };
    auto store_win = [&](int buf) {
#pragma unroll
        for (int m = 0; m < WIN_ITEMS; m++) {
            int it = tid + m * CONV_THREADS, q = it / nw, wpos = it - q * nw;
            if (q < 4)
                *reinterpret_cast<uint4 *>(Bw + ((size_t)buf * nw + wpos) * CONV_LDS + q * 8) =
                    make_uint4(win[m][0], win[m][1], win[m][2], win[m][3]);
        }
    };
    const int n_steps = g.n_ksteps / KW;
    auto load_a = [&](int step) {
        if (step < n_steps) {
            const __nv_bfloat16 *src = wp + (size_t)co0 * g.kp + (size_t)step * KW * CONV_BK;
            __nv_bfloat16 *dst = As + (step % A_ST) * A_STAGE;
#pragma unroll
            for (int tap = 0; tap < KW; tap++)
                for (int q = tid; q < BM * (CONV_BK / 8); q += CONV_THREADS) {
                    int row = q >> 2, col = (q & 3) * 8;
                    conv_cp_async16(dst + row * A_ROW + tap * CONV_LDS + col,
                                    src + (size_t)row * g.kp + tap * CONV_BK + col);
                }
        }
        asm volatile("cp.async.commit_group;\n" ::); /* empty past the end: the wait count stays fixed */
    };

    /* this lane's ldmatrix rows as shared addresses: A row wm 16 MT + (lane & 15), channels
     * (lane >> 4) 8; B: n8 tile ni = 2 nj + (lane >> 4), its position (lane & 7), channels
     * ((lane >> 3) & 1) 8. The loop adds the stage, tap and k offsets (immediates but two). */
    const uint32_t a_lane = conv_smem_u32(As) + ((wm * 16 * MT + (lane & 15)) * A_ROW + (lane >> 4) * 8) * 2;
    uint32_t b_lane[2];
#pragma unroll
    for (int nj = 0; nj < 2; nj++) {
        int n = wn * 32 + (2 * nj + (lane >> 4)) * 8 + (lane & 7);
        b_lane[nj] = conv_smem_u32(Bw) + (((n / g.bw) * g.ww + n % g.bw) * CONV_LDS + ((lane >> 3) & 1) * 8) * 2;
    }
    /* warps whose output rows are all past cout (the 3-channel head) skip the multiplies */
    const bool live = co0 + wm * 16 * MT < g.cout;

    float acc[MT][4][4];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[mi][ni][e] = 0.0f;

    const int n_win = g.n_ksteps / (g.kt * g.kh * g.kw) * g.kt;
    gather(0, 0);
    store_win(0);
#pragma unroll
    for (int s = 0; s < A_ST - 1; s++)
        load_a(s);
    int cb = 0, dt = 0, dh = 0, wix = 0; /* the step's channel block, time tap, tap row and window */
    for (int step = 0; step < n_steps; step++) {
        asm volatile("cp.async.wait_group 1;\n" ::); /* A_ST - 2 groups may stay in flight */
        __syncthreads(); /* A of this step and the current window are in; step - 1 is done with its buffers */
        load_a(step + A_ST - 1);
        const bool first = dh == 0, last = dh == g.kh - 1, more = wix + 1 < n_win;
        if (first && more)
            gather(dt + 1 < g.kt ? cb : cb + 1, dt + 1 < g.kt ? dt + 1 : 0);
        const uint32_t a_step = a_lane + (step % A_ST) * (A_STAGE * 2);
        const uint32_t b_step = (((wix & 1) * nw + dh * g.ww) * CONV_LDS) * 2;
#pragma unroll
        for (int dw = 0; dw < KW && live; dw++) {
#pragma unroll
            for (int kk = 0; kk < CONV_BK; kk += 16) {
                uint32_t b[4][2];
#pragma unroll
                for (int nj = 0; nj < 2; nj++) {
                    uint32_t r[4];
                    conv_ldsm_x4_at(r, b_lane[nj] + b_step + (dw * CONV_LDS + kk) * 2);
                    b[2 * nj][0] = r[0];
                    b[2 * nj][1] = r[1];
                    b[2 * nj + 1][0] = r[2];
                    b[2 * nj + 1][1] = r[3];
                }
#pragma unroll
                for (int mi = 0; mi < MT; mi++) { /* one A fragment live at a time */
                    uint32_t a[4];
                    conv_ldsm_x4_at(a, a_step + (mi * 16 * A_ROW + dw * CONV_LDS + kk) * 2);
#pragma unroll
                    for (int ni = 0; ni < 4; ni++)
                        conv_mma(acc[mi][ni], a, b[ni][0], b[ni][1]);
                }
            }
        }
        if (last && more)
            store_win((wix + 1) & 1);
        if (++dh == g.kh) {
            dh = 0;
            wix++;
            if (++dt == g.kt) {
                dt = 0;
                cb++;
            }
        }
    }
    asm volatile("cp.async.wait_group 0;\n" ::);

    /* epilogue: acc[mi][ni][e] is channel row + (e >> 1) * 8, patch position n + (e & 1) */
#pragma unroll
    for (int ni = 0; ni < 4; ni++) {
        int n = wn * 32 + ni * 8 + (lane & 3) * 2, ho = hb0 + n / g.bw, wo = wb0 + n % g.bw;
        if (ho >= g.Ho)
            continue;
        int q = (to * g.Ho + ho) * g.Wo + wo;
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int o = co0 + wm * 16 * MT + mi * 16 + (lane >> 2) + h * 8;
                if (o < g.cout) {
                    float bo = bias ? bias[o] : 0.0f;
                    conv_store2(y, y_f32, g, o, q, acc[mi][ni][2 * h] + bo, acc[mi][ni][2 * h + 1] + bo);
                }
            }
    }
}

template <int MT, int KW>
int launch(cuda_state *cs, const __nv_bfloat16 *x, const __nv_bfloat16 *wp, const float *bias, void *y, int y_f32,
           const conv_geom &g, const char *op, au_err *err) {
    if (g.wh * g.ww > WIN_MAX || g.kw != KW)
        return au_errf(err, AU_EINTERNAL, "%s: window of %d x %d positions (at most %d), kw %d for %d", op, g.wh,
                       g.ww, WIN_MAX, g.kw, KW);
    size_t smem = (size_t)(3 * 32 * MT * KW + 2 * g.wh * g.ww) * CONV_LDS * 2;
    int64_t blocks = (int64_t)g.co_tiles * g.To * g.h_tiles * g.w_tiles;
    CUDA_TRY(cudaFuncSetAttribute(conv_window_kernel<MT, KW>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    conv_window_kernel<MT, KW><<<(unsigned)blocks, CONV_THREADS, smem, cs->stream>>>(x, wp, bias, y, y_f32, g);
    CUDA_LAUNCHED();
    return 0;
}

template <int MT>
int launch_kw(cuda_state *cs, const __nv_bfloat16 *x, const __nv_bfloat16 *wp, const float *bias, void *y,
              int y_f32, const conv_geom &g, const char *op, au_err *err) {
    switch (g.kw) {
    case 3: return launch<MT, 3>(cs, x, wp, bias, y, y_f32, g, op, err);
    case 2: return launch<MT, 2>(cs, x, wp, bias, y, y_f32, g, op, err);
    default: return launch<MT, 1>(cs, x, wp, bias, y, y_f32, g, op, err);
    }
}

} // namespace

int conv_window_fits(const conv_geom *g) {
    return g->sh == 1 && g->sw == 1 && g->Wo % 8 == 0 && g->kh <= 3 && g->kw <= 3;
}

void conv_window_plan(conv_geom *g) {
    g->bw = 32;
    while (g->Wo % g->bw)
        g->bw /= 2;
    g->bh = CONV_BN / g->bw;
    g->ww = g->bw + g->kw - 1;
    g->wh = g->bh + g->kh - 1;
    g->w_tiles = g->Wo / g->bw;
    g->h_tiles = (g->Ho + g->bh - 1) / g->bh;
}

int conv_window_launch(cuda_state *cs, int mt, const __nv_bfloat16 *x, const __nv_bfloat16 *wp, const float *bias,
                       void *y, int y_f32, const conv_geom *g, const char *op, au_err *err) {
    switch (mt) {
    case 3: return launch_kw<3>(cs, x, wp, bias, y, y_f32, *g, op, err);
    case 2: return launch_kw<2>(cs, x, wp, bias, y, y_f32, *g, op, err);
    default: return launch_kw<1>(cs, x, wp, bias, y, y_f32, *g, op, err);
    }
}
