/* cuda_conv.cu - 3-D convolution on the CUDA backend (be_conv3d): argument checks, weight packing,
 * and the generic implicit-GEMM kernel; the layout of the GEMM is in cuda_conv.cuh.
 *
 * x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], y [Cout, T', H', W'] with
 *   T' = (T + pad_t0 + pad_t1 - kt) / st + 1 (same for H, W),
 *   y[o, p] = b[o] + sum_{c,dt,dh,dw} w[o, c, dt, dh, dw] x[c, t'st - pad_t0 + dt, h'sh - pad_h0 + dh, w'sw - pad_w0 + dw]
 * (zero outside x). The weights are packed once per call into scratch (any weight dtype: bf16,
 * f32, f8 with per-row scales); x is read as bf16, another dtype converted into scratch first.
 * Spatial stride 1 with Wo % 8 == 0 and kernels up to 3x3 (the VAE decoder) go to the windowed
 * kernel (cuda_conv_window.cu). Everything else runs the generic kernel here: per k step a
 * block copies a [BM, 32] weight slice into shared memory (cp.async) and gathers the matching
 * [32, CONV_BN] slice of col straight from x with 2-byte loads (a thread: one position, 16 of
 * the 32 channels), stored k-major and read with ldmatrix.trans; the gather of step k+1 is in
 * flight while step k multiplies. Index math is 32-bit within a channel plane (T H W < 2^31).
 */
#include "cuda_conv.cuh"

#include <stdio.h>
#include <string.h>

namespace {

/* Packed weights wp [cout_pad, kp], k = (cin block, tap, channel in block). */
struct pack_fn {
    cu_ref w;
    int cin, cout, taps, kp;
    __device__ float operator()(int64_t i) const {
        int64_t o = i / kp;
        int k = (int)(i - o * kp), cb = k / (taps * CONV_BK), r = k - cb * taps * CONV_BK;
        int tap = r / CONV_BK, c = cb * CONV_BK + r % CONV_BK;
        if (o >= cout || c >= cin)
            return 0.0f;
        return cu_load(w, (o * cin + c) * taps + tap);
    }
};

/* Where the gather of one k step reads: the tap and the channel block, advanced tap first. */
struct ktap {
    int cb, dt, dh, dw;
    __device__ void next(const conv_geom &g) {
        if (++dw < g.kw)
            return;
        dw = 0;
        if (++dh < g.kh)
            return;
        dh = 0;
        if (++dt < g.kt)
            return;
        dt = 0;
        cb++;
    }
};

/* The generic kernel: any stride, padding and width. */
template <int MT>
__global__ void __launch_bounds__(CONV_THREADS, 2)
    conv_generic_kernel(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ wp,
                        const float *__restrict__ bias, void *__restrict__ y, int y_f32, conv_geom g) {
    constexpr int BM = 32 * MT, ROWS = CONV_BK / 2; /* channel rows a thread gathers */
    __shared__ __align__(16) __nv_bfloat16 As[2][BM][CONV_LDS];
    __shared__ __align__(16) __nv_bfloat16 Bs[2][CONV_BK][CONV_BN + 8]; /* rows of 272 bytes: no bank conflicts */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 2, wn = warp & 3;
    const int co0 = (int)(blockIdx.x % g.co_tiles) * BM, p0 = (int)(blockIdx.x / g.co_tiles) * CONV_BN;
    const unsigned short *xs = reinterpret_cast<const unsigned short *>(x);
    const bool ch_tail = g.cin % CONV_BK != 0;

    /* this thread gathers position column j, channel rows r0, r0 + 2, ..., two to a register */
    const int j = tid & (CONV_BN - 1), r0 = tid >> 7, p = p0 + j;
    const bool p_ok = p < g.P;
    int to = 0, ho = 0, wo = 0;
    if (p_ok) {
        wo = p % g.Wo;
        int q = p / g.Wo;
        ho = q % g.Ho;
        to = q / g.Ho;
    }
    const int tb = to * g.st - g.pt, hb = ho * g.sh - g.ph, wb = wo * g.sw - g.pw;
    uint32_t v[ROWS / 2];

    auto gather = [&](const ktap &k) {
        int ti = tb + k.dt, hi = hb + k.dh, wi = wb + k.dw, c = k.cb * CONV_BK + r0;
        bool ok = p_ok && (unsigned)ti < (unsigned)g.T && (unsigned)hi < (unsigned)g.H && (unsigned)wi < (unsigned)g.W;
        const unsigned short *src = xs + (size_t)c * g.plane + ((ti * g.H + hi) * g.W + wi);
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            bool oki = ok && (!ch_tail || c + 2 * i < g.cin);
            uint32_t e = oki ? __ldg(src + (size_t)(2 * i) * g.plane) : 0u;
            v[i / 2] = i % 2 ? v[i / 2] | e << 16 : e;
        }
    };
    auto store_b = [&](int s) {
#pragma unroll
        for (int i = 0; i < ROWS; i++)
            reinterpret_cast<unsigned short *>(&Bs[s][r0 + 2 * i][0])[j] = (unsigned short)(v[i / 2] >> (16 * (i % 2)));
    };
    auto load_a = [&](int s, int step) {
        const __nv_bfloat16 *src = wp + (size_t)co0 * g.kp + (size_t)step * CONV_BK;
        for (int q = tid; q < BM * (CONV_BK / 8); q += CONV_THREADS) {
            int row = q >> 2, col = (q & 3) * 8;
            conv_cp_async16(&As[s][row][col], src + (size_t)row * g.kp + col);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };

    float acc[MT][4][4];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[mi][ni][e] = 0.0f;

    ktap k = {0, 0, 0, 0};
    load_a(0, 0);
    gather(k);
    store_b(0);
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();

    for (int step = 0; step < g.n_ksteps; step++) {
        const int s = step & 1;
        const bool more = step + 1 < g.n_ksteps;
        if (more) {
            load_a(s ^ 1, step + 1);
            k.next(g);
            gather(k);
        }
#pragma unroll
        for (int kk = 0; kk < CONV_BK; kk += 16) {
            uint32_t a[MT][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < MT; mi++)
                conv_ldsm_x4(a[mi], &As[s][wm * 16 * MT + mi * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                uint32_t r[4];
                conv_ldsm_x4_t(r, &Bs[s][kk + (lane & 15)][wn * 32 + nj * 16 + (lane >> 4) * 8]);
                b[2 * nj][0] = r[0];
                b[2 * nj][1] = r[1];
                b[2 * nj + 1][0] = r[2];
                b[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < MT; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    conv_mma(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
        if (more) {
            store_b(s ^ 1);
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();
    }

    /* epilogue: acc[mi][ni][e] is channel row + (e >> 1) * 8, position col + (e & 1) */
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int o = co0 + wm * 16 * MT + mi * 16 + (lane >> 2) + h * 8;
            if (o >= g.cout)
                continue;
            float bo = bias ? bias[o] : 0.0f;
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
                conv_store2(y, y_f32, g, o, p0 + wn * 32 + ni * 8 + (lane & 3) * 2, acc[mi][ni][2 * h] + bo,
                            acc[mi][ni][2 * h + 1] + bo);
        }
}

/* m tiles per warp for cout channels: the fewest padded rows, then the widest tile. MT 4 (128
 * channels a block) was measured on the H100: it spills registers and ran no faster than MT 3
 * for the VAE's 384 and 768 channels (2207 ms against 2223 ms for the whole decode). */
int pick_mt(int cout) {
    int best = 3, best_rows = 0;
    for (int mt = 3; mt >= 1; mt--) {
        int bm = 32 * mt, rows = (cout + bm - 1) / bm * bm;
        if (best_rows == 0 || rows < best_rows) {
            best = mt;
            best_rows = rows;
        }
    }
    return best;
}

template <int MT>
int generic_launch(cuda_state *cs, const __nv_bfloat16 *x, const __nv_bfloat16 *wp, const float *bias, void *y,
                   int y_f32, const conv_geom &g, const char *op, au_err *err) {
    int64_t blocks = (int64_t)g.co_tiles * ((g.P + CONV_BN - 1) / CONV_BN);
    conv_generic_kernel<MT><<<(unsigned)blocks, CONV_THREADS, 0, cs->stream>>>(x, wp, bias, y, y_f32, g);
    CUDA_LAUNCHED();
    return 0;
}

} // namespace

static int64_t out_size(int64_t in, int64_t k, int s, int p0, int p1) {
    int64_t span = in + p0 + p1 - k;
    return span < 0 ? -1 : span / s + 1;
}

int cuda_conv3d(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                const int stride[3], const int pad[6], au_err *err) {
    const char *op = "conv3d";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_readable(op, "w", w, err));
    TRY_RC(cuda_check_writable(op, "y", y, 0, err));
    char sx[96], sw[96], sy[96];
    if (y->dtype != AU_F32 && y->dtype != AU_BF16)
        return au_errf(err, AU_EINVAL, "%s: y %s must be f32 or bf16", op, au_shape_str(y, sy, sizeof sy));
    if (!stride || !pad)
        return au_errf(err, AU_EINVAL, "%s: stride or pad is NULL", op);
    for (int i = 0; i < 3; i++)
        if (stride[i] < 1)
            return au_errf(err, AU_EINVAL, "%s: stride[%d] = %d must be >= 1", op, i, stride[i]);
    for (int i = 0; i < 6; i++)
        if (pad[i] < 0)
            return au_errf(err, AU_EINVAL, "%s: pad[%d] = %d must be >= 0", op, i, pad[i]);
    if (x->ndim != 4 || w->ndim != 5 || y->ndim != 4 || w->shape[1] != x->shape[0])
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, w %s, y %s: expected x [Cin,T,H,W], w [Cout,Cin,kt,kh,kw], y [Cout,T',H',W']", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), au_shape_str(y, sy, sizeof sy));
    int64_t To = out_size(x->shape[1], w->shape[2], stride[0], pad[0], pad[1]);
    int64_t Ho = out_size(x->shape[2], w->shape[3], stride[1], pad[2], pad[3]);
    int64_t Wo = out_size(x->shape[3], w->shape[4], stride[2], pad[4], pad[5]);
    if (y->shape[0] != w->shape[0] || y->shape[1] != To || y->shape[2] != Ho || y->shape[3] != Wo)
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, w %s, stride {%d,%d,%d}, pad {%d,%d,%d,%d,%d,%d}: y is %s, expected [%lld,%lld,%lld,%lld]",
                       op, au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), stride[0], stride[1],
                       stride[2], pad[0], pad[1], pad[2], pad[3], pad[4], pad[5], au_shape_str(y, sy, sizeof sy),
                       (long long)w->shape[0], (long long)To, (long long)Ho, (long long)Wo);
    if (b)
        TRY_RC(cuda_check_vec(op, "b", b, w->shape[0], err));
    if (au_numel(y) > 0 && y->data == x->data)
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    if (au_numel(y) == 0)
        return 0;
    int64_t plane = x->shape[1] * x->shape[2] * x->shape[3], P = To * Ho * Wo;
    int64_t cin = x->shape[0], cout = w->shape[0], taps = w->shape[2] * w->shape[3] * w->shape[4];
    int64_t ksteps = (cin + CONV_BK - 1) / CONV_BK * taps;
    /* 32-bit gather offsets reach a row and a frame past the plane (the pad side); k steps fit an int */
    if (plane + 4 * (x->shape[2] * x->shape[3] + x->shape[3]) >= INT32_MAX || P >= INT32_MAX - 2 * CONV_BN ||
        cout >= INT32_MAX / 2 || ksteps * CONV_BK >= INT32_MAX)
        return au_errf(err, AU_EUNSUPPORTED, "%s: x %s, y %s: a channel plane or the output is too large for 32-bit "
                       "indexing", op, au_shape_str(x, sx, sizeof sx), au_shape_str(y, sy, sizeof sy));

    conv_geom g;
    memset(&g, 0, sizeof g);
    g.T = (int)x->shape[1], g.H = (int)x->shape[2], g.W = (int)x->shape[3];
    g.To = (int)To, g.Ho = (int)Ho, g.Wo = (int)Wo;
    g.st = stride[0], g.sh = stride[1], g.sw = stride[2], g.pt = pad[0], g.ph = pad[2], g.pw = pad[4];
    g.kt = (int)w->shape[2], g.kh = (int)w->shape[3], g.kw = (int)w->shape[4];
    g.cin = (int)cin, g.cout = (int)cout, g.P = (int)P, g.plane = plane;
    g.n_ksteps = (int)ksteps, g.kp = (int)(ksteps * CONV_BK);
    size_t ysz = au_dtype_size(y->dtype);
    g.pair_store = P % 2 == 0 && (uintptr_t)y->data % (2 * ysz) == 0;
    int mt = pick_mt(g.cout);
    g.co_tiles = (g.cout + 32 * mt - 1) / (32 * mt);

    size_t w_bytes = cuda_round256((size_t)g.co_tiles * 32 * mt * g.kp * 2);
    size_t x_bytes = x->dtype == AU_BF16 ? 0 : cuda_round256((size_t)(cin * plane) * 2);
    char *mem = NULL;
    TRY_RC(cuda_scratch(cs, w_bytes + x_bytes, (void **)&mem, op, err));
    pack_fn pf = {cu_ref_of(w), g.cin, g.cout, (int)taps, g.kp};
    cu_ref wr = {mem, NULL, 1, (int)AU_BF16};
    int64_t n_wp = (int64_t)g.co_tiles * 32 * mt * g.kp;
    cu_map_kernel<<<cu_grid(n_wp, 256), 256, 0, cs->stream>>>(pf, wr, n_wp);
    CUDA_LAUNCHED();
    const void *xb = x->data;
    if (x_bytes) {
        cu_ref dr = {mem + w_bytes, NULL, 1, (int)AU_BF16}, sr = cu_ref_of(x);
        TRY_RC(cuda_convert(cs, &dr, &sr, cin * plane, op, err));
        xb = mem + w_bytes;
    }
    const __nv_bfloat16 *xp = (const __nv_bfloat16 *)xb, *wp = (const __nv_bfloat16 *)mem;
    const float *bp = b ? (const float *)b->data : NULL;
    int y_f32 = y->dtype == AU_F32;
    if (conv_window_fits(&g)) {
        conv_window_plan(&g);
        return conv_window_launch(cs, mt, xp, wp, bp, y->data, y_f32, &g, op, err);
    }
    switch (mt) {
    case 3: return generic_launch<3>(cs, xp, wp, bp, y->data, y_f32, g, op, err);
    case 2: return generic_launch<2>(cs, xp, wp, bp, y->data, y_f32, g, op, err);
    default: return generic_launch<1>(cs, xp, wp, bp, y->data, y_f32, g, op, err);
    }
}
