/* cuda_conv.cu - 3-D convolution on the CUDA backend: im2col tiles + a cuBLASLt bf16 GEMM.
 *
 * x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], y [Cout, T', H', W'] with
 *   T' = (T + pad_t0 + pad_t1 - kt) / st + 1 (same for H, W),
 *   y[o, p] = b[o] + sum_{c,dt,dh,dw} w[o, c, dt, dh, dw] x[c, t'st - pad_t0 + dt, h'sh - pad_h0 + dh, w'sw - pad_w0 + dw]
 * (zero outside x). With K = Cin kt kh kw and P = T'H'W', w is a matrix [Cout, K]; the
 * output positions are cut into tiles of `tile` columns, and for each tile a kernel writes
 * col [K, tile] (bf16, position-contiguous so reads of x and writes of col coalesce) in
 * scratch, then one GEMM y[:, tile] = w . col (cuBLASLt "NN", float32 accumulation, output
 * straight into y, f32 or bf16). A 1x1x1 conv without stride or padding uses a bf16 x as
 * col directly. Weights that are not bf16 (f8 with per-output-channel scales in the fp8
 * precision) are dequantized to bf16 in scratch once per call; the bias is one pass over
 * y at the end. The tile is bounded by COL_BYTES, so scratch stays small for video-sized
 * inputs.
 */
#include "cuda_internal.cuh"

#include <stdio.h>
#include <string.h>

#define COL_BYTES ((size_t)256 << 20)

namespace {

struct im2col_fn {
    cu_ref x;
    int64_t T, H, W, To, Ho, Wo;
    int kt, kh, kw, st, sh, sw, pt, ph, pw;
    int64_t p0, n; /* tile: positions p0 .. p0+n, col [K, n] */
    __device__ float operator()(int64_t i) const {
        int64_t k = i / n, p = p0 + i % n;
        int64_t wo = p % Wo, ho = (p / Wo) % Ho, to = p / (Wo * Ho);
        int64_t ksz = (int64_t)kt * kh * kw, c = k / ksz, r = k % ksz;
        int64_t dt = r / (kh * kw), dh = (r / kw) % kh, dw = r % kw;
        int64_t ti = to * st - pt + dt, hi = ho * sh - ph + dh, wi = wo * sw - pw + dw;
        if (ti < 0 || ti >= T || hi < 0 || hi >= H || wi < 0 || wi >= W)
            return 0.0f;
        return cu_load(x, ((c * T + ti) * H + hi) * W + wi);
    }
};

struct bias_fn {
    cu_ref y;
    const float *b;
    int64_t P;
    __device__ float operator()(int64_t i) const { return cu_load(y, i) + b[i / P]; }
};

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

    int64_t cout = w->shape[0], K = au_numel(w) / cout, P = To * Ho * Wo;
    int direct = w->shape[2] == 1 && w->shape[3] == 1 && w->shape[4] == 1 && stride[0] == 1 && stride[1] == 1 &&
                 stride[2] == 1 && pad[0] == 0 && pad[1] == 0 && pad[2] == 0 && pad[3] == 0 && pad[4] == 0 &&
                 pad[5] == 0 && x->dtype == AU_BF16;
    int64_t tile = direct ? P : (int64_t)(COL_BYTES / ((size_t)(K ? K : 1) * 2));
    if (!direct) {
        tile = tile < 128 ? 128 : tile / 128 * 128;
        if (tile > P)
            tile = P;
    }
    size_t w_bytes = w->dtype == AU_BF16 ? 0 : cuda_round256((size_t)(cout * K) * 2);
    size_t c_bytes = direct ? 0 : cuda_round256((size_t)(K * tile) * 2);
    char *mem = NULL;
    if (w_bytes + c_bytes)
        TRY_RC(cuda_scratch(cs, w_bytes + c_bytes, (void **)&mem, op, err));
    const void *wb = w->data;
    if (w_bytes) {
        cu_ref dr = {mem, NULL, 1, (int)AU_BF16}, sr = cu_ref_of(w);
        TRY_RC(cuda_convert(cs, &dr, &sr, cout * K, op, err));
        wb = mem;
    }
    char *col = mem ? mem + w_bytes : NULL;

    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.n = cout, g.k = K, g.ldd = P;
    g.a_kmajor = 1;
    g.b = wb;
    g.ab_dtype = AU_BF16;
    g.d_dtype = y->dtype;
    size_t ysz = au_dtype_size(y->dtype);
    im2col_fn f;
    memset(&f, 0, sizeof f);
    f.x = cu_ref_of(x);
    f.T = x->shape[1], f.H = x->shape[2], f.W = x->shape[3], f.To = To, f.Ho = Ho, f.Wo = Wo;
    f.kt = (int)w->shape[2], f.kh = (int)w->shape[3], f.kw = (int)w->shape[4];
    f.st = stride[0], f.sh = stride[1], f.sw = stride[2], f.pt = pad[0], f.ph = pad[2], f.pw = pad[4];
    for (int64_t p0 = 0; p0 < P; p0 += tile) {
        int64_t n = P - p0 < tile ? P - p0 : tile;
        if (direct) {
            g.a = x->data;
            g.lda = P;
        } else {
            f.p0 = p0, f.n = n;
            cu_ref cr = {col, NULL, 1, (int)AU_BF16};
            int64_t total = K * n;
            cu_map_kernel<<<cu_grid(total, 256), 256, 0, cs->stream>>>(f, cr, total);
            CUDA_LAUNCHED();
            g.a = col;
            g.lda = n;
        }
        g.m = n;
        g.d = (char *)y->data + (size_t)p0 * ysz;
        int rc = cuda_gemm_run(cs, &g, op, err);
        if (rc == AU_EUNSUPPORTED)
            return au_errf(err, AU_EUNSUPPORTED, "%s: cuBLASLt has no bf16 algorithm for x %s, w %s (tile %lld)", op,
                           au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), (long long)n);
        TRY_RC(rc);
    }
    if (b) {
        bias_fn bf = {cu_ref_of(y), (const float *)b->data, P};
        TRY_RC(cu_map(cs, bf, y, op, err));
    }
    return 0;
}
