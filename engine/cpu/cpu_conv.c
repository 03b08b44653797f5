/* cpu_conv.c - 3-D convolution on the CPU as tiled im2col + GEMM.
 *
 * x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], y [Cout, T', H', W'] with
 *   T' = (T + pad_t0 + pad_t1 - kt) / st + 1 (same for H, W),
 *   y[o, p] = b[o] + sum_{c,dt,dh,dw} w[o, c, dt, dh, dw] x[c, t'st - pad_t0 + dt, h'sh - pad_h0 + dh, w'sw -
 * pad_w0 + dw] (zero outside x). Flattened, w is a matrix [Cout, K] with K = Cin kt kh kw in the same order
 * as the rows of the im2col matrix [K, P]. The output positions P = T'H'W' are cut into tiles of `tile`
 * columns; a task builds its tile's columns in thread scratch (bounded: K x tile floats) and does one GEMM W
 * [Cout, K] . col [K, tile] into y[:, tile]. A 1x1x1 conv without stride or padding reads x directly. Non-f32
 * weights are converted once per call into the shared scratch.
 */
#include "cpu_gemm.h"
#include "cpu_internal.h"

#include <stdio.h>
#include <string.h>

#define COL_BYTES ((size_t)4 << 20) /* im2col tile per thread */

typedef struct conv_job {
    cpu_state *cs;
    const float *x, *w, *bias;
    float *y;
    int64_t cin, T, H, W;
    int64_t cout, To, Ho, Wo;
    int64_t kt, kh, kw;
    int st, sh, sw;
    int pt, ph, pw; /* padding before */
    int64_t tile, P, K;
    int direct; /* 1x1x1, no stride or padding: x is already the column matrix */
} conv_job;

/* col[k, i] for output positions p0 .. p0+n-1. */
static void im2col_tile(const conv_job *j, int64_t p0, int64_t n, float *col) {
    int64_t ksz = j->kt * j->kh * j->kw;
    for (int64_t k = 0; k < j->K; k++) {
        int64_t c = k / ksz, r = k % ksz;
        int64_t dt = r / (j->kh * j->kw), dh = (r / j->kw) % j->kh, dw = r % j->kw;
        float *dst = col + k * n;
        int64_t p = p0, i = 0;
        while (i < n) {
            int64_t wo = p % j->Wo, ho = (p / j->Wo) % j->Ho, to = p / (j->Wo * j->Ho);
            int64_t seg = j->Wo - wo < n - i ? j->Wo - wo : n - i;
            int64_t ti = to * j->st - j->pt + dt, hi = ho * j->sh - j->ph + dh;
            if (ti < 0 || ti >= j->T || hi < 0 || hi >= j->H) {
                memset(dst + i, 0, (size_t)seg * sizeof(float));
            } else {
                const float *src = j->x + ((c * j->T + ti) * j->H + hi) * j->W;
                int64_t wi = wo * j->sw - j->pw + dw;
                for (int64_t s = 0; s < seg; s++, wi += j->sw)
                    dst[i + s] = (wi >= 0 && wi < j->W) ? src[wi] : 0.0f;
            }
            i += seg;
            p += seg;
        }
    }
}

static void conv_task(void *ctx, int64_t task, int thread) {
    const conv_job *j = ctx;
    int64_t p0 = task * j->tile, n = j->P - p0 < j->tile ? j->P - p0 : j->tile;
    float *y = j->y + p0;
    if (j->direct) {
        cpu_gemm(j->cout, n, j->K, j->w, j->K, j->x + p0, j->P, 0, y, j->P, 0);
    } else {
        float *col = j->cs->scratch[thread];
        im2col_tile(j, p0, n, col);
        cpu_gemm(j->cout, n, j->K, j->w, j->K, col, n, 0, y, j->P, 0);
    }
    if (j->bias)
        for (int64_t o = 0; o < j->cout; o++) {
            float b = j->bias[o], *row = y + o * j->P;
            for (int64_t i = 0; i < n; i++)
                row[i] += b;
        }
}

typedef struct wconv_job {
    const au_tensor *w;
    float *dst;
    int64_t K;
} wconv_job;

static void wconv_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const wconv_job *j = ctx;
    cpu_weight_rows_f32(j->w, begin, end - begin, j->dst + begin * j->K);
}

static int64_t out_size(int64_t in, int64_t k, int s, int p0, int p1) {
    int64_t span = in + p0 + p1 - k;
    return span < 0 ? -1 : span / s + 1;
}

int cpu_conv3d(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
               const int stride[3], const int pad[6], au_err *err) {
    const char *op = "conv3d";
    cpu_state *cs = cpu_of(be);
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0 ||
        (rc = cpu_check_readable(op, "w", w, err)) < 0)
        return rc;
    if (!stride || !pad)
        return au_errf(err, AU_EINVAL, "%s: stride or pad is NULL", op);
    for (int i = 0; i < 3; i++)
        if (stride[i] < 1)
            return au_errf(err, AU_EINVAL, "%s: stride[%d] = %d must be >= 1", op, i, stride[i]);
    for (int i = 0; i < 6; i++)
        if (pad[i] < 0)
            return au_errf(err, AU_EINVAL, "%s: pad[%d] = %d must be >= 0", op, i, pad[i]);
    char sx[96], sw[96], sy[96];
    if (x->ndim != 4 || w->ndim != 5 || y->ndim != 4 || w->shape[1] != x->shape[0])
        return au_errf(
            err, AU_EINVAL,
            "%s: x %s, w %s, y %s: expected x [Cin,T,H,W], w [Cout,Cin,kt,kh,kw], y [Cout,T',H',W']", op,
            au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), au_shape_str(y, sy, sizeof sy));
    int64_t To = out_size(x->shape[1], w->shape[2], stride[0], pad[0], pad[1]);
    int64_t Ho = out_size(x->shape[2], w->shape[3], stride[1], pad[2], pad[3]);
    int64_t Wo = out_size(x->shape[3], w->shape[4], stride[2], pad[4], pad[5]);
    if (y->shape[0] != w->shape[0] || y->shape[1] != To || y->shape[2] != Ho || y->shape[3] != Wo)
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, w %s, stride {%d,%d,%d}, pad {%d,%d,%d,%d,%d,%d}: y is %s, expected "
                       "[%lld,%lld,%lld,%lld]",
                       op, au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), stride[0],
                       stride[1], stride[2], pad[0], pad[1], pad[2], pad[3], pad[4], pad[5],
                       au_shape_str(y, sy, sizeof sy), (long long)w->shape[0], (long long)To, (long long)Ho,
                       (long long)Wo);
    if (b && (rc = cpu_check_vec(op, "b", b, w->shape[0], err)) < 0)
        return rc;
    if (au_numel(y) > 0 && y->data == x->data)
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    if (au_numel(y) == 0)
        return 0;

    conv_job j;
    memset(&j, 0, sizeof j);
    j.cs = cs;
    j.x = x->data;
    j.y = y->data;
    j.bias = b ? b->data : NULL;
    j.cin = x->shape[0], j.T = x->shape[1], j.H = x->shape[2], j.W = x->shape[3];
    j.cout = w->shape[0], j.To = To, j.Ho = Ho, j.Wo = Wo;
    j.kt = w->shape[2], j.kh = w->shape[3], j.kw = w->shape[4];
    j.st = stride[0], j.sh = stride[1], j.sw = stride[2];
    j.pt = pad[0], j.ph = pad[2], j.pw = pad[4];
    j.K = j.cin * j.kt * j.kh * j.kw;
    j.P = To * Ho * Wo;
    j.direct = j.kt == 1 && j.kh == 1 && j.kw == 1 && j.st == 1 && j.sh == 1 && j.sw == 1 && pad[0] == 0 &&
               pad[1] == 0 && pad[2] == 0 && pad[3] == 0 && pad[4] == 0 && pad[5] == 0;

    if (w->dtype == AU_F32) {
        j.w = w->data;
    } else {
        if ((rc = cpu_shared_reserve(cs, (size_t)j.cout * (size_t)j.K * sizeof(float), op, err)) < 0)
            return rc;
        wconv_job wj = {w, cs->shared, j.K};
        cpu_parallel_for(cs, j.cout, 8, wconv_range, &wj);
        j.w = cs->shared;
    }

    int64_t tile = (int64_t)(COL_BYTES / ((size_t)(j.K ? j.K : 1) * sizeof(float)));
    tile = tile < 16 ? 16 : (tile > 1024 ? 1024 : tile);
    int64_t T = cs->n_threads;
    if ((j.P + tile - 1) / tile < 4 * T) { /* small output: more, smaller tiles */
        int64_t t2 = (j.P + 4 * T - 1) / (4 * T);
        tile = t2 < tile ? (t2 < 1 ? 1 : t2) : tile;
    }
    j.tile = tile;
    if (!j.direct && (rc = cpu_scratch_reserve(cs, (size_t)j.K * (size_t)tile * sizeof(float), op, err)) < 0)
        return rc;
    tp_run(cs->pool, (j.P + tile - 1) / tile, conv_task, &j);
    return 0;
}
