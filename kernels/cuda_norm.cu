/* cuda_norm.cu - row-wise ops of the CUDA backend: LayerNorm with modulation, RMSNorm,
 * the VAE's channel RMS norm, rotary embedding and embedding lookup.
 *
 *   layernorm: y = ((x - mean) / sqrt(var + eps) * w + b) * (1 + scale) + shift
 *   rmsnorm:   y = x / sqrt(mean(x^2) + eps) * w
 *   rmsnorm_channels (x [C, S]): y[c,s] = x[c,s] / max(||x[:,s]||, 1e-12) * sqrt(C) * gamma[c] + bias[c]
 *   rope: (x[2i], x[2i+1]) <- (x[2i] cos - x[2i+1] sin, x[2i] sin + x[2i+1] cos)
 * LayerNorm and RMSNorm run one block per row: statistics in two passes (mean, then the
 * centred sum of squares) with float accumulation, then the output pass. An f8 output is
 * the fused norm + modulation + quantization: a pass for max|y| and one writing the codes,
 * so the normalised row never goes to memory in bf16.
 */
#include "cuda_internal.cuh"

#include <stdio.h>
#include <string.h>

namespace {

struct norm_args {
    cu_ref x, y;
    uint8_t *q;    /* f8 output codes, or NULL */
    float *qscale; /* f8 output scales */
    const float *w, *b, *shift, *scale;
    int64_t rows, dim;
    float eps;
    int rms;
};

__device__ __forceinline__ float norm_value(const norm_args &a, int64_t base, int64_t c, float mean, float rstd) {
    float v = (cu_load(a.x, base + c) - mean) * rstd;
    if (a.w)
        v *= a.w[c];
    if (a.b)
        v += a.b[c];
    if (a.scale)
        v *= 1.0f + a.scale[c];
    if (a.shift)
        v += a.shift[c];
    return v;
}

__global__ void norm_rows_kernel(norm_args a) {
    __shared__ float red[32];
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        int64_t base = r * a.dim;
        float mean = 0.0f;
        if (!a.rms) {
            float s = 0.0f;
            for (int64_t c = threadIdx.x; c < a.dim; c += blockDim.x)
                s += cu_load(a.x, base + c);
            mean = cu_block_sum(s, red) / (float)a.dim;
        }
        float sq = 0.0f;
        for (int64_t c = threadIdx.x; c < a.dim; c += blockDim.x) {
            float d = cu_load(a.x, base + c) - mean;
            sq += d * d;
        }
        float rstd = rsqrtf(cu_block_sum(sq, red) / (float)a.dim + a.eps);
        if (!a.q) {
            for (int64_t c = threadIdx.x; c < a.dim; c += blockDim.x)
                cu_store(a.y, base + c, norm_value(a, base, c, mean, rstd));
            __syncthreads(); /* red is reused by the next row */
            continue;
        }
        float amax = 0.0f;
        for (int64_t c = threadIdx.x; c < a.dim; c += blockDim.x)
            amax = fmaxf(amax, fabsf(norm_value(a, base, c, mean, rstd)));
        amax = cu_block_max(amax, red);
        float s = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / s;
        for (int64_t c = threadIdx.x; c < a.dim; c += blockDim.x)
            a.q[base + c] = cu_f32_to_f8(norm_value(a, base, c, mean, rstd) * inv);
        __syncthreads(); /* an f8 x aliasing y is read with the old scale above */
        if (threadIdx.x == 0)
            a.qscale[r] = s;
    }
}

} // namespace

static int norm_launch(au_backend *be, const char *op, au_tensor *y, const au_tensor *x, const au_tensor *w,
                       const au_tensor *b, const au_tensor *shift, const au_tensor *scale, float eps, int rms,
                       au_err *err) {
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    int64_t dim = x->shape[x->ndim - 1], rows = au_rows(x);
    if (w)
        TRY_RC(cuda_check_vec(op, "w", w, dim, err));
    if (b)
        TRY_RC(cuda_check_vec(op, "b", b, dim, err));
    if (shift)
        TRY_RC(cuda_check_vec(op, "shift", shift, dim, err));
    if (scale)
        TRY_RC(cuda_check_vec(op, "scale", scale, dim, err));
    if (dim == 0 || rows == 0)
        return 0;
    if (y->dtype == AU_F8_E4M3 && y->shape[0] != rows) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: f8 y %s must have one scale row per normalised row (%lld)", op,
                       au_shape_str(y, s, sizeof s), (long long)rows);
    }
    if (x->dtype == AU_F8_E4M3 && x->shape[0] != rows) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: f8 x %s must have one scale row per normalised row", op,
                       au_shape_str(x, s, sizeof s));
    }
    norm_args a;
    memset(&a, 0, sizeof a);
    a.x = cu_ref_of(x);
    a.y = cu_ref_of(y);
    if (y->dtype == AU_F8_E4M3) {
        a.q = (uint8_t *)y->data;
        a.qscale = (float *)y->scale;
    }
    a.w = w ? (const float *)w->data : NULL;
    a.b = b ? (const float *)b->data : NULL;
    a.shift = shift ? (const float *)shift->data : NULL;
    a.scale = scale ? (const float *)scale->data : NULL;
    a.rows = rows, a.dim = dim, a.eps = eps, a.rms = rms;
    int threads = dim >= 2048 ? 512 : (dim >= 512 ? 256 : 128);
    int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
    norm_rows_kernel<<<grid, threads, 0, cs->stream>>>(a);
    CUDA_LAUNCHED();
    return 0;
}

int cuda_layernorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                   const au_tensor *shift, const au_tensor *scale, float eps, au_err *err) {
    return norm_launch(be, "layernorm", y, x, w, b, shift, scale, eps, 0, err);
}

int cuda_rmsnorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps, au_err *err) {
    return norm_launch(be, "rmsnorm", y, x, w, NULL, NULL, NULL, eps, 1, err);
}

/* ---- channel RMS norm (VAE) ---- */

__global__ static void chnorm_kernel(cu_ref x, cu_ref y, const float *gamma, const float *bias, int64_t C, int64_t S) {
    float root_c = sqrtf((float)C);
    for (int64_t s = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; s < S; s += (int64_t)gridDim.x * blockDim.x) {
        float sq = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float v = cu_load(x, c * S + s);
            sq += v * v;
        }
        float inv = root_c / fmaxf(sqrtf(sq), 1e-12f);
        for (int64_t c = 0; c < C; c++)
            cu_store(y, c * S + s, cu_load(x, c * S + s) * inv * gamma[c] + (bias ? bias[c] : 0.0f));
    }
}

int cuda_rmsnorm_channels(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                          const au_tensor *bias, au_err *err) {
    const char *op = "rmsnorm_channels";
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 0, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    int64_t C = x->shape[0];
    TRY_RC(cuda_check_vec(op, "gamma", gamma, C, err));
    if (bias)
        TRY_RC(cuda_check_vec(op, "bias", bias, C, err));
    if (C == 0 || au_numel(x) == 0)
        return 0;
    int64_t S = au_numel(x) / C;
    chnorm_kernel<<<cu_grid(S, 256), 256, 0, cuda_of(be)->stream>>>(
        cu_ref_of(x), cu_ref_of(y), (const float *)gamma->data, bias ? (const float *)bias->data : NULL, C, S);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- rope ---- */

__global__ static void rope_kernel(cu_ref x, const float *cossin, int64_t n_pairs, int64_t row_pairs, int64_t half) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_pairs; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / row_pairs, p = (i % row_pairs) % half;
        float c = cossin[(t * half + p) * 2], s = cossin[(t * half + p) * 2 + 1];
        float a = cu_load(x, 2 * i), b = cu_load(x, 2 * i + 1);
        cu_store(x, 2 * i, a * c - b * s);
        cu_store(x, 2 * i + 1, a * s + b * c);
    }
}

int cuda_rope(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err) {
    const char *op = "rope";
    TRY_RC(cuda_check_writable(op, "x", x, 0, err));
    TRY_RC(cuda_check_tensor(op, "cossin", cossin, err));
    char sx[96], sc[96];
    int64_t row = x->shape[x->ndim - 1], n = au_rows(x);
    if (cossin->dtype != AU_F32 || n_heads < 1 || row % n_heads != 0 || (row / n_heads) % 2 != 0 ||
        au_numel(cossin) != n * (row / n_heads))
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, cossin %s, %d heads: expected x [n, H*D] with D even and cossin [n, D/2, 2] f32", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(cossin, sc, sizeof sc), n_heads);
    int64_t pairs = au_numel(x) / 2;
    if (pairs == 0)
        return 0;
    rope_kernel<<<cu_grid(pairs, 256), 256, 0, cuda_of(be)->stream>>>(cu_ref_of(x), (const float *)cossin->data, pairs,
                                                                        row / 2, row / n_heads / 2);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- embed ---- */

namespace {
struct embed_fn {
    cu_ref table;
    const int32_t *ids;
    int64_t dim;
    __device__ float operator()(int64_t i) const { return cu_load(table, (int64_t)ids[i / dim] * dim + i % dim); }
};
} // namespace

int cuda_embed(au_backend *be, au_tensor *y, const au_tensor *table, const int32_t *ids, int n, au_err *err) {
    const char *op = "embed";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    TRY_RC(cuda_check_readable(op, "table", table, err));
    char sy[96], st[96];
    if (table->ndim != 2 || n < 0 || au_rows(y) != n || y->shape[y->ndim - 1] != table->shape[1])
        return au_errf(err, AU_EINVAL, "%s: table %s, y %s, %d ids: expected table [vocab,dim], y [n,dim]", op,
                       au_shape_str(table, st, sizeof st), au_shape_str(y, sy, sizeof sy), n);
    if (n > 0 && !ids)
        return au_errf(err, AU_EINVAL, "%s: ids is NULL", op);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->shape[0])
            return au_errf(err, AU_EINVAL, "%s: id %d at position %d is outside the vocabulary [0, %lld)", op, ids[i],
                           i, (long long)table->shape[0]);
    if (n == 0 || table->shape[1] == 0)
        return 0;
    void *dev_ids;
    TRY_RC(cuda_scratch(cs, (size_t)n * sizeof(int32_t), &dev_ids, op, err));
    /* from pageable memory: returns once ids are staged, so the caller may reuse them */
    CUDA_TRY(cudaMemcpyAsync(dev_ids, ids, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, cs->stream));
    embed_fn f = {cu_ref_of(table), (const int32_t *)dev_ids, table->shape[1]};
    return cu_map(cs, f, y, op, err);
}
