/* cuda_norm.cu - row-wise ops of the CUDA backend: LayerNorm with modulation, RMSNorm,
 * the VAE's channel RMS norm, rotary embedding and embedding lookup.
 *
 *   layernorm: y = ((x - mean) / sqrt(var + eps) * w + b) * (1 + scale) + shift
 *   rmsnorm:   y = x / sqrt(mean(x^2) + eps) * w
 *   rmsnorm_channels (x [C, S]): y[c,s] = act(x[c,s] / max(||x[:,s]||, 1e-12) * sqrt(C) * gamma[c] + bias[c])
 *   rope: (x[2i], x[2i+1]) <- (x[2i] cos - x[2i+1] sin, x[2i] sin + x[2i+1] cos)
 *   rmsnorm_rope: rope(rmsnorm(x)), one pass on the register path (the DiT's q and k)
 *   add_gated_layernorm: x += y * gate, then layernorm of the new x, one pass on the register
 *     path (the DiT's residuals before norm3 and norm2)
 * LayerNorm and RMSNorm run one block per row: statistics in two passes (mean, then the
 * centred sum of squares) with float accumulation, then the output. An f8 output is the
 * fused norm + modulation + quantization (max|y| of the row, then the codes), so the
 * normalised row never goes to memory in bf16. Rows of f32/bf16 with dim a multiple of 512
 * (the DiT's 1536 and 5120, UMT5's 4096) stay in registers: one read, one write.
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
    const float4 *rope; /* rmsnorm_rope: cossin [rows, rope_half, 2] as pairs of pairs, or NULL */
    int rope_half;      /* rotated pairs per head (even) */
    cu_ref res;         /* add_gated_layernorm (register path): y added to x (f32, written back) first, */
    const float *gate;  /* times gate[dim] or NULL; res.data NULL otherwise */
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

/* The common case, one pass over memory: x f32 or bf16 with dim a multiple of 512 (up to
 * 8192), 128 threads per row each holding V groups of 4 values in registers; statistics,
 * modulation and (for an f8 y) the row maximum and the codes come from the registers. */
#define NR_THREADS 128

__device__ __forceinline__ void load4(const cu_ref &x, int64_t i, float v[4]) {
    if (x.dtype == AU_F32) {
        float4 f = *(const float4 *)((const float *)x.data + i);
        v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    } else {
        uint2 u = *(const uint2 *)((const __nv_bfloat16 *)x.data + i);
        float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)&u.x), b = __bfloat1622float2(*(const __nv_bfloat162 *)&u.y);
        v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
    }
}

__device__ __forceinline__ void vec4_apply(const float *p, int64_t c, float v[4], int mode) {
    if (!p)
        return;
    float4 f = *(const float4 *)(p + c);
    if (mode == 0) /* multiply */
        v[0] *= f.x, v[1] *= f.y, v[2] *= f.z, v[3] *= f.w;
    else if (mode == 1) /* add */
        v[0] += f.x, v[1] += f.y, v[2] += f.z, v[3] += f.w;
    else /* times (1 + f) */
        v[0] *= 1.0f + f.x, v[1] *= 1.0f + f.y, v[2] *= 1.0f + f.z, v[3] *= 1.0f + f.w;
}

template <int V> __global__ void __launch_bounds__(NR_THREADS) norm_reg_kernel(norm_args a) {
    __shared__ float red[32];
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const int64_t base = r * a.dim;
        float v[V][4];
#pragma unroll
        for (int i = 0; i < V; i++)
            load4(a.x, base + (int64_t)(i * NR_THREADS + threadIdx.x) * 4, v[i]);
        if (a.res.data) {
#pragma unroll
            for (int i = 0; i < V; i++) {
                const int64_t c = (int64_t)(i * NR_THREADS + threadIdx.x) * 4;
                float r[4];
                load4(a.res, base + c, r);
                vec4_apply(a.gate, c, r, 0);
                v[i][0] += r[0], v[i][1] += r[1], v[i][2] += r[2], v[i][3] += r[3];
                *(float4 *)((float *)a.x.data + base + c) = make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
            }
        }
        float mean = 0.0f;
        if (!a.rms) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < V; i++)
                s += (v[i][0] + v[i][1]) + (v[i][2] + v[i][3]);
            mean = cu_block_sum(s, red) / (float)a.dim;
        }
        float sq = 0.0f;
#pragma unroll
        for (int i = 0; i < V; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                v[i][e] -= mean;
                sq += v[i][e] * v[i][e];
            }
        float rstd = rsqrtf(cu_block_sum(sq, red) / (float)a.dim + a.eps), amax = 0.0f;
#pragma unroll
        for (int i = 0; i < V; i++) {
            int64_t c = (int64_t)(i * NR_THREADS + threadIdx.x) * 4;
#pragma unroll
            for (int e = 0; e < 4; e++)
                v[i][e] *= rstd;
            vec4_apply(a.w, c, v[i], 0);
            vec4_apply(a.b, c, v[i], 1);
            vec4_apply(a.scale, c, v[i], 2);
            vec4_apply(a.shift, c, v[i], 1);
            if (a.rope) { /* elements c .. c+3: pairs c/2 and c/2 + 1 of the head, c/2 even */
                const float4 cs = a.rope[(r * a.rope_half + (c / 2) % a.rope_half) / 2];
                const float x0 = v[i][0], x1 = v[i][1], x2 = v[i][2], x3 = v[i][3];
                v[i][0] = x0 * cs.x - x1 * cs.y, v[i][1] = x0 * cs.y + x1 * cs.x;
                v[i][2] = x2 * cs.z - x3 * cs.w, v[i][3] = x2 * cs.w + x3 * cs.z;
            }
#pragma unroll
            for (int e = 0; e < 4; e++)
                amax = fmaxf(amax, fabsf(v[i][e]));
        }
        if (a.q) {
            amax = cu_block_max(amax, red);
            float sc = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / sc;
#pragma unroll
            for (int i = 0; i < V; i++) {
                int64_t c = (int64_t)(i * NR_THREADS + threadIdx.x) * 4;
                uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v[i][0] * inv, v[i][1] * inv), __NV_SATFINITE, __NV_E4M3);
                uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v[i][2] * inv, v[i][3] * inv), __NV_SATFINITE, __NV_E4M3);
                *(uint32_t *)(a.q + base + c) = lo | (hi << 16);
            }
            if (threadIdx.x == 0)
                a.qscale[r] = sc;
        } else if (a.y.dtype == AU_F32) {
#pragma unroll
            for (int i = 0; i < V; i++)
                *(float4 *)((float *)a.y.data + base + (int64_t)(i * NR_THREADS + threadIdx.x) * 4) =
                    make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
        } else {
#pragma unroll
            for (int i = 0; i < V; i++) {
                __nv_bfloat162 p0 = __floats2bfloat162_rn(v[i][0], v[i][1]), p1 = __floats2bfloat162_rn(v[i][2], v[i][3]);
                uint2 u = make_uint2(*(uint32_t *)&p0, *(uint32_t *)&p1);
                *(uint2 *)((__nv_bfloat16 *)a.y.data + base + (int64_t)(i * NR_THREADS + threadIdx.x) * 4) = u;
            }
        }
        __syncthreads(); /* red is reused by the next row */
    }
}

template <int V> static void norm_reg_launch(const norm_args &a, int grid, cudaStream_t s) {
    norm_reg_kernel<V><<<grid, NR_THREADS, 0, s>>>(a);
}

typedef void (*norm_reg_fn)(const norm_args &, int, cudaStream_t);
static const norm_reg_fn norm_reg_table[16] = {
    norm_reg_launch<1>,  norm_reg_launch<2>,  norm_reg_launch<3>,  norm_reg_launch<4>,
    norm_reg_launch<5>,  norm_reg_launch<6>,  norm_reg_launch<7>,  norm_reg_launch<8>,
    norm_reg_launch<9>,  norm_reg_launch<10>, norm_reg_launch<11>, norm_reg_launch<12>,
    norm_reg_launch<13>, norm_reg_launch<14>, norm_reg_launch<15>, norm_reg_launch<16>,
};

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Whether a norm of these operands takes the register path (rows of dim = 512 k, k <= 16). */
static int norm_reg_fits(const au_tensor *x, const au_tensor *y, const au_tensor *w, const au_tensor *b,
                         const au_tensor *shift, const au_tensor *scale) {
    int64_t dim = x->shape[x->ndim - 1];
    return dim % (4 * NR_THREADS) == 0 && dim / (4 * NR_THREADS) <= 16 &&
           (x->dtype == AU_F32 || x->dtype == AU_BF16) && aligned16(x->data) && aligned16(y->data) &&
           (!w || aligned16(w->data)) && (!b || aligned16(b->data)) && (!shift || aligned16(shift->data)) &&
           (!scale || aligned16(scale->data));
}

/* What the fused ops add to a norm, on the register path only (the caller checks that it fits). */
typedef struct norm_fused {
    const float4 *rope; /* rmsnorm_rope's table, or NULL */
    int rope_half;
    const au_tensor *res, *gate; /* add_gated_layernorm's y and gate, or NULL */
} norm_fused;

static int norm_launch(au_backend *be, const char *op, au_tensor *y, const au_tensor *x, const au_tensor *w,
                       const au_tensor *b, const au_tensor *shift, const au_tensor *scale, float eps, int rms,
                       const norm_fused *fused, au_err *err) {
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
    if (fused) {
        a.rope = fused->rope, a.rope_half = fused->rope_half;
        if (fused->res)
            a.res = cu_ref_of(fused->res);
        a.gate = fused->gate ? (const float *)fused->gate->data : NULL;
    }
    int grid = (int)(rows < 65535 * 8 ? rows : 65535 * 8);
    if (norm_reg_fits(x, y, w, b, shift, scale)) {
        norm_reg_table[dim / (4 * NR_THREADS) - 1](a, grid, cs->stream);
    } else {
        int threads = dim >= 2048 ? 512 : (dim >= 512 ? 256 : 128);
        norm_rows_kernel<<<grid, threads, 0, cs->stream>>>(a);
    }
    CUDA_LAUNCHED();
    return 0;
}

int cuda_layernorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                   const au_tensor *shift, const au_tensor *scale, float eps, au_err *err) {
    return norm_launch(be, "layernorm", y, x, w, b, shift, scale, eps, 0, NULL, err);
}

int cuda_rmsnorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps, au_err *err) {
    return norm_launch(be, "rmsnorm", y, x, w, NULL, NULL, NULL, eps, 1, NULL, err);
}

/* ---- channel RMS norm (VAE) ---- */

__global__ static void chnorm_kernel(cu_ref x, cu_ref y, const float *gamma, const float *bias, int64_t C, int64_t S,
                                     int act) {
    float root_c = sqrtf((float)C);
    for (int64_t s = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; s < S; s += (int64_t)gridDim.x * blockDim.x) {
        float sq = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float v = cu_load(x, c * S + s);
            sq += v * v;
        }
        float inv = root_c / fmaxf(sqrtf(sq), 1e-12f);
        for (int64_t c = 0; c < C; c++)
            cu_store(y, c * S + s, cu_act(cu_load(x, c * S + s) * inv * gamma[c] + (bias ? bias[c] : 0.0f), act));
    }
}

int cuda_rmsnorm_channels(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                          const au_tensor *bias, au_act act, au_err *err) {
    const char *op = "rmsnorm_channels";
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 0, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    int64_t C = x->shape[0];
    TRY_RC(cuda_check_vec(op, "gamma", gamma, C, err));
    if (bias)
        TRY_RC(cuda_check_vec(op, "bias", bias, C, err));
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    if (C == 0 || au_numel(x) == 0)
        return 0;
    int64_t S = au_numel(x) / C;
    chnorm_kernel<<<cu_grid(S, 256), 256, 0, cuda_of(be)->stream>>>(
        cu_ref_of(x), cu_ref_of(y), (const float *)gamma->data, bias ? (const float *)bias->data : NULL, C, S, (int)act);
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

/* bf16 x, two pairs (8 bytes) per thread, 32-bit indices; half (pairs per head) even. */
__global__ static void rope_bf16_kernel(uint2 *x, const float4 *cossin, int quads, int row_pairs, int half) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < quads; i += gridDim.x * blockDim.x) {
        int p = 2 * i, t = p / row_pairs, pp = (p % row_pairs) % half;
        float4 cs = cossin[(t * half + pp) / 2];
        uint2 u = x[i];
        float2 a = __bfloat1622float2(*(__nv_bfloat162 *)&u.x), b = __bfloat1622float2(*(__nv_bfloat162 *)&u.y);
        __nv_bfloat162 ra = __floats2bfloat162_rn(a.x * cs.x - a.y * cs.y, a.x * cs.y + a.y * cs.x);
        __nv_bfloat162 rb = __floats2bfloat162_rn(b.x * cs.z - b.y * cs.w, b.x * cs.w + b.y * cs.z);
        x[i] = make_uint2(*(uint32_t *)&ra, *(uint32_t *)&rb);
    }
}

int cuda_rope(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err) {
    const char *op = "rope";
    TRY_RC(cuda_check_writable(op, "x", x, 0, err));
    TRY_RC(be_check_tensor(op, "cossin", cossin, err));
    char sx[96], sc[96];
    int64_t row = x->shape[x->ndim - 1], n = au_rows(x);
    if (cossin->dtype != AU_F32 || n_heads < 1 || row % n_heads != 0 || (row / n_heads) % 2 != 0 ||
        au_numel(cossin) != n * (row / n_heads))
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, cossin %s, %d heads: expected x [n, H*D] with D even and cossin [n, D/2, 2] f32", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(cossin, sc, sizeof sc), n_heads);
    int64_t pairs = au_numel(x) / 2, half = row / n_heads / 2;
    if (pairs == 0)
        return 0;
    if (x->dtype == AU_BF16 && half % 2 == 0 && ((uintptr_t)x->data & 7) == 0 && aligned16(cossin->data) &&
        pairs < ((int64_t)1 << 31)) {
        int quads = (int)(pairs / 2);
        rope_bf16_kernel<<<cu_grid(quads, 256), 256, 0, cuda_of(be)->stream>>>(
            (uint2 *)x->data, (const float4 *)cossin->data, quads, (int)(row / 2), (int)half);
        CUDA_LAUNCHED();
        return 0;
    }
    rope_kernel<<<cu_grid(pairs, 256), 256, 0, cuda_of(be)->stream>>>(cu_ref_of(x), (const float *)cossin->data, pairs,
                                                                        row / 2, row / n_heads / 2);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- rmsnorm + rope ---- */

int cuda_rmsnorm_rope(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                      const au_tensor *cossin, int n_heads, au_err *err) {
    const char *op = "rmsnorm_rope";
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 0, err));
    TRY_RC(be_check_tensor(op, "cossin", cossin, err));
    char sx[96], sc[96];
    int64_t row = x->shape[x->ndim - 1], n = au_rows(x);
    if (cossin->dtype != AU_F32 || n_heads < 1 || row % n_heads != 0 || (row / n_heads) % 2 != 0 ||
        au_numel(cossin) != n * (row / n_heads))
        return au_errf(err, AU_EINVAL,
                       "%s: x %s, cossin %s, %d heads: expected x [n, H*D] with D even and cossin [n, D/2, 2] f32", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(cossin, sc, sizeof sc), n_heads);
    const int64_t half = row / n_heads / 2;
    if (half % 2 == 0 && aligned16(cossin->data) && n > 0 && norm_reg_fits(x, y, w, NULL, NULL, NULL)) {
        const norm_fused f = {(const float4 *)cossin->data, (int)half, NULL, NULL};
        return norm_launch(be, op, y, x, w, NULL, NULL, NULL, eps, 1, &f, err);
    }
    TRY_RC(cuda_rmsnorm(be, y, x, w, eps, err));
    return cuda_rope(be, y, cossin, n_heads, err);
}

/* ---- residual + layernorm ---- */

int cuda_add_gated_layernorm(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_tensor *h,
                             const au_tensor *w, const au_tensor *b, const au_tensor *shift, const au_tensor *scale,
                             float eps, au_err *err) {
    const char *op = "add_gated_layernorm";
    TRY_RC(cuda_check_readable(op, "y", y, err));
    TRY_RC(cuda_check_writable(op, "x", x, 0, err));
    TRY_RC(cuda_check_writable(op, "h", h, 1, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    if (gate)
        TRY_RC(cuda_check_vec(op, "gate", gate, x->shape[x->ndim - 1], err));
    if (au_numel(x) > 0 && (h->data == x->data || h->data == y->data))
        return au_errf(err, AU_EINVAL, "%s: h must not alias x or y", op);
    if (x->dtype == AU_F32 && (y->dtype == AU_F32 || y->dtype == AU_BF16) && aligned16(y->data) &&
        (!gate || aligned16(gate->data)) && au_rows(x) > 0 && norm_reg_fits(x, h, w, b, shift, scale)) {
        const norm_fused f = {NULL, 0, y, gate};
        return norm_launch(be, op, h, x, w, b, shift, scale, eps, 0, &f, err);
    }
    TRY_RC(cuda_add_gated(be, x, y, gate, err));
    return cuda_layernorm(be, h, x, w, b, shift, scale, eps, err);
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
