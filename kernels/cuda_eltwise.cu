/* cuda_eltwise.cu - elementwise ops of the CUDA backend: add, mul (b the same size as a or a
 * [last dim] row vector), add_gated, activate, lincomb, clamp, copy with dtype conversion,
 * fill; and the row quantizer / converter the other files use.
 *
 * Each op is a functor value(i) handed to cu_map (cuda_internal.cuh), which writes any
 * output dtype: f32/f16/bf16 elementwise, f8 one block per row (max|row| / 448 scale).
 * Every output element i depends only on element i of same-shaped inputs, each thread
 * reading before writing, so outputs may alias inputs where backend.h allows it.
 * Row quantization of bf16 rows (the FFN hidden state, attention outputs, gemm inputs)
 * has its own 16-byte-wide kernel.
 */
#include "cuda_internal.cuh"

#include <stdio.h>
#include <string.h>

#define LINCOMB_MAX 16

namespace {
struct load_fn {
    cu_ref x;
    __device__ float operator()(int64_t i) const { return cu_load(x, i); }
};
} // namespace

/* The common case of cuda_quantize_rows: bf16 rows of a multiple of 8, 16 bytes at a time. */
__global__ static void quant_bf16_rows_kernel(const uint4 *src, uint2 *q, float *scale, int64_t rows, int cols8) {
    __shared__ float red[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const uint4 *s = src + r * cols8;
        float amax = 0.0f;
        for (int c = threadIdx.x; c < cols8; c += blockDim.x) {
            uint4 v = s[c];
            const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f = __bfloat1622float2(h[k]);
                amax = fmaxf(amax, fmaxf(fabsf(f.x), fabsf(f.y)));
            }
        }
        amax = cu_block_max(amax, red);
        float sc = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / sc;
        for (int c = threadIdx.x; c < cols8; c += blockDim.x) {
            uint4 v = s[c];
            const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
            uint32_t w[2];
#pragma unroll
            for (int k = 0; k < 2; k++) {
                float2 a = __bfloat1622float2(h[2 * k]), b = __bfloat1622float2(h[2 * k + 1]);
                uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a.x * inv, a.y * inv), __NV_SATFINITE, __NV_E4M3);
                uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(b.x * inv, b.y * inv), __NV_SATFINITE, __NV_E4M3);
                w[k] = lo | (hi << 16);
            }
            q[r * cols8 + c] = make_uint2(w[0], w[1]);
        }
        __syncthreads();
        if (threadIdx.x == 0)
            scale[r] = sc;
    }
}

int cuda_quantize_rows(cuda_state *cs, uint8_t *q, float *scale, const cu_ref *src, int64_t rows, int64_t row_len,
                       const char *op, au_err *err) {
    if (rows == 0 || row_len == 0)
        return 0;
    if (src->dtype == AU_BF16 && row_len % 8 == 0 && row_len / 8 < (1 << 30) && (uintptr_t)src->data % 16 == 0 &&
        (uintptr_t)q % 8 == 0) {
        int grid = (int)(rows < (int64_t)cs->n_sm * 16 ? rows : (int64_t)cs->n_sm * 16);
        quant_bf16_rows_kernel<<<grid, 256, 0, cs->stream>>>((const uint4 *)src->data, (uint2 *)q, scale, rows,
                                                             (int)(row_len / 8));
        CUDA_LAUNCHED();
        return 0;
    }
    load_fn f = {*src};
    int threads = row_len >= 1024 ? 256 : 128;
    int grid = (int)(rows < 65535 * 4 ? rows : 65535 * 4);
    cu_map_f8_kernel<<<grid, threads, 0, cs->stream>>>(f, q, scale, rows, row_len);
    CUDA_LAUNCHED();
    return 0;
}

int cuda_convert(cuda_state *cs, const cu_ref *dst, const cu_ref *src, int64_t n, const char *op, au_err *err) {
    if (n == 0)
        return 0;
    load_fn f = {*src};
    cu_map_kernel<<<cu_grid(n, 256), 256, 0, cs->stream>>>(f, *dst, n);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- add / mul ---- */

namespace {
struct binary_fn {
    cu_ref a, b;
    int64_t bdim; /* >0: b is a [bdim] row vector */
    int is_mul;
    __device__ float operator()(int64_t i) const {
        float va = cu_load(a, i), vb = cu_load(b, bdim ? i % bdim : i);
        return is_mul ? va * vb : va + vb;
    }
};
} // namespace

static int binary_op(au_backend *be, const char *op, au_tensor *y, const au_tensor *a, const au_tensor *b, int is_mul,
                     au_err *err) {
    TRY_RC(cuda_check_readable(op, "a", a, err));
    TRY_RC(cuda_check_readable(op, "b", b, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    TRY_RC(cuda_check_numel(op, "y", y, "a", a, err));
    int64_t n = au_numel(a), dim = a->shape[a->ndim - 1];
    binary_fn f = {cu_ref_of(a), cu_ref_of(b), 0, is_mul};
    if (au_numel(b) != n) {
        if (au_numel(b) != dim) {
            char sa[96], sb[96];
            return au_errf(err, AU_EINVAL, "%s: b %s is neither the size of a %s nor a [%lld] row vector", op,
                           au_shape_str(b, sb, sizeof sb), au_shape_str(a, sa, sizeof sa), (long long)dim);
        }
        f.bdim = dim;
    }
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_add(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err) {
    return binary_op(be, "add", y, a, b, 0, err);
}

int cuda_mul(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err) {
    return binary_op(be, "mul", y, a, b, 1, err);
}

/* ---- add_gated: x += y * gate ---- */

namespace {
struct gated_fn {
    cu_ref x, y;
    const float *gate;
    int64_t dim;
    __device__ float operator()(int64_t i) const {
        float v = cu_load(y, i);
        if (gate)
            v *= gate[i % dim];
        return cu_load(x, i) + v;
    }
};
} // namespace

/* The DiT residual: x f32 += y (bf16 or f32) * gate, 4 elements per thread. */
__global__ static void gated_f32_kernel(float4 *x, const void *y, int y_bf16, const float4 *gate, int64_t n4, int dim4) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float4 xv = x[i], yv;
        if (y_bf16) {
            uint2 u = ((const uint2 *)y)[i];
            float2 a = __bfloat1622float2(*(__nv_bfloat162 *)&u.x), b = __bfloat1622float2(*(__nv_bfloat162 *)&u.y);
            yv = make_float4(a.x, a.y, b.x, b.y);
        } else {
            yv = ((const float4 *)y)[i];
        }
        if (gate) {
            float4 g = gate[(int)(i % dim4)];
            yv.x *= g.x, yv.y *= g.y, yv.z *= g.z, yv.w *= g.w;
        }
        x[i] = make_float4(xv.x + yv.x, xv.y + yv.y, xv.z + yv.z, xv.w + yv.w);
    }
}

int cuda_add_gated(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_err *err) {
    const char *op = "add_gated";
    TRY_RC(cuda_check_writable(op, "x", x, 1, err));
    TRY_RC(cuda_check_readable(op, "y", y, err));
    TRY_RC(cuda_check_numel(op, "x", x, "y", y, err));
    int64_t dim = x->shape[x->ndim - 1];
    if (gate)
        TRY_RC(cuda_check_vec(op, "gate", gate, dim, err));
    int64_t n = au_numel(x);
    if (x->dtype == AU_F32 && (y->dtype == AU_BF16 || y->dtype == AU_F32) && dim % 4 == 0 && dim / 4 < (1 << 30) &&
        ((uintptr_t)x->data & 15) == 0 && ((uintptr_t)y->data & (y->dtype == AU_F32 ? 15 : 7)) == 0 &&
        (!gate || ((uintptr_t)gate->data & 15) == 0)) {
        if (n == 0)
            return 0;
        gated_f32_kernel<<<cu_grid(n / 4, 256), 256, 0, cuda_of(be)->stream>>>(
            (float4 *)x->data, y->data, y->dtype == AU_BF16, gate ? (const float4 *)gate->data : NULL, n / 4,
            (int)(dim / 4));
        CUDA_LAUNCHED();
        return 0;
    }
    gated_fn f = {cu_ref_of(x), cu_ref_of(y), gate ? (const float *)gate->data : NULL, dim};
    return cu_map(cuda_of(be), f, x, op, err);
}

/* ---- activate / clamp ---- */

namespace {
struct act_fn {
    cu_ref x;
    int act;
    __device__ float operator()(int64_t i) const { return cu_act(cu_load(x, i), act); }
};
} // namespace

namespace {
struct clamp_fn {
    cu_ref x;
    float lo, hi;
    __device__ float operator()(int64_t i) const { return fminf(fmaxf(cu_load(x, i), lo), hi); }
};
} // namespace

int cuda_activate(au_backend *be, au_tensor *y, const au_tensor *x, au_act act, au_err *err) {
    const char *op = "activate";
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    act_fn f = {cu_ref_of(x), (int)act};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_clamp(au_backend *be, au_tensor *y, const au_tensor *x, float lo, float hi, au_err *err) {
    const char *op = "clamp";
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    TRY_RC(cuda_check_numel(op, "y", y, "x", x, err));
    if (!(lo <= hi))
        return au_errf(err, AU_EINVAL, "%s: lo %g > hi %g", op, lo, hi);
    clamp_fn f = {cu_ref_of(x), lo, hi};
    return cu_map(cuda_of(be), f, y, op, err);
}

/* ---- lincomb ---- */

namespace {
struct lincomb_fn {
    cu_ref xs[LINCOMB_MAX];
    const float *coef; /* device memory, read at run time (backend.h) */
    int n;
    __device__ float operator()(int64_t i) const {
        float acc = coef[0] * cu_load(xs[0], i);
        for (int t = 1; t < n; t++)
            acc += coef[t] * cu_load(xs[t], i);
        return acc;
    }
};
} // namespace

int cuda_lincomb(au_backend *be, au_tensor *y, int n, const au_tensor *const *xs, const au_tensor *coef,
                 au_err *err) {
    const char *op = "lincomb";
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    if (n < 1 || !xs || !coef)
        return au_errf(err, AU_EINVAL, "%s: need n >= 1 inputs and coefficients (n = %d)", op, n);
    if (n > LINCOMB_MAX)
        return au_errf(err, AU_EUNSUPPORTED, "%s: %d inputs, at most %d in one call", op, n, LINCOMB_MAX);
    TRY_RC(cuda_check_vec(op, "coef", coef, n, err));
    lincomb_fn f;
    memset(&f, 0, sizeof f);
    f.n = n;
    f.coef = (const float *)coef->data;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "xs[%d]", i);
        TRY_RC(cuda_check_readable(op, name, xs[i], err));
        TRY_RC(cuda_check_numel(op, "y", y, name, xs[i], err));
        f.xs[i] = cu_ref_of(xs[i]);
    }
    return cu_map(cuda_of(be), f, y, op, err);
}

/* ---- copy / fill ---- */

int cuda_copy(au_backend *be, au_tensor *dst, const au_tensor *src, au_err *err) {
    const char *op = "copy";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "src", src, err));
    TRY_RC(cuda_check_writable(op, "dst", dst, 1, err));
    TRY_RC(cuda_check_numel(op, "dst", dst, "src", src, err));
    int64_t n = au_numel(src);
    if (n == 0)
        return 0;
    char sd[96], ss[96];
    if (dst->dtype == src->dtype && dst->dtype != AU_F8_E4M3) {
        if (dst->data != src->data)
            CUDA_TRY(cudaMemcpyAsync(dst->data, src->data, au_nbytes(src), cudaMemcpyDeviceToDevice, cs->stream));
        return 0;
    }
    if (dst->dtype == AU_F8_E4M3 && src->dtype == AU_F8_E4M3 && dst->shape[0] == src->shape[0]) {
        /* same rows: codes and scales carry over */
        if (dst->data != src->data)
            CUDA_TRY(cudaMemcpyAsync(dst->data, src->data, (size_t)n, cudaMemcpyDeviceToDevice, cs->stream));
        if (dst->scale != src->scale)
            CUDA_TRY(cudaMemcpyAsync(dst->scale, src->scale, (size_t)src->shape[0] * sizeof(float),
                                     cudaMemcpyDeviceToDevice, cs->stream));
        return 0;
    }
    if (dst->data == src->data)
        return au_errf(err, AU_EINVAL, "%s: dst %s aliases src %s of another dtype", op,
                       au_shape_str(dst, sd, sizeof sd), au_shape_str(src, ss, sizeof ss));
    load_fn f = {cu_ref_of(src)};
    return cu_map(cs, f, dst, op, err);
}

namespace {
struct const_fn {
    float v;
    __device__ float operator()(int64_t i) const { return v; }
};
} // namespace

int cuda_fill(au_backend *be, au_tensor *y, float value, au_err *err) {
    const char *op = "fill";
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    const_fn f = {value};
    return cu_map(cuda_of(be), f, y, op, err);
}
