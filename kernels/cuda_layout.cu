/* cuda_layout.cu - data movement ops of the CUDA backend: patchify, unpatchify, transpose,
 * swap01, concat, slice, upsample2x, time_interleave, and to_rgb8 (the decoded video's planes
 * as interleaved 8-bit frames, so only a quarter of the bytes cross to the host).
 *
 * Each is an index map y[i] = x[src(i)] run through cu_map, so the output may have another
 * dtype than the input (the DiT patchifies its f32 latent straight into the f8 input of the
 * patch-embedding linear, quantized per token):
 *   patchify:   y[(f,h,w), (c,kt,kh,kw)] = x[c, f pt + kt, h ph + kh, w pw + kw]
 *   unpatchify: y[c, f pt + kt, h ph + kh, w pw + kw] = x[(f,h,w), (kt,kh,kw,c)]
 *   upsample2x: y[c, t, i, j] = x[c, t, i/2, j/2]
 *   time_interleave: y[c, 2t + i] = x[i C + c, t]   (x [2C, T, H, W])
 *   swap01:     y[b, a, :] = x[a, b, :]   (x [A, B, rest...]; a plain copy kernel, same dtype, not f8)
 *   to_rgb8:    y[t, s, c] = trunc((clamp(x[c, t, s], -1, 1) + 1) * 0.5 * 255)   (y u8; rounded
 *               step by step like the CPU backend, no contraction, so both give the same bytes)
 * concat and slice without a dtype change (the VAE's causal cache) are strided copies
 * (cudaMemcpy2DAsync) instead. Outputs must not alias inputs.
 */
#include "cuda_internal.cuh"

#include <stdio.h>

static int check_move(const char *op, const au_tensor *y, const au_tensor *x, au_err *err) {
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    if (au_numel(y) > 0 && x->data == y->data)
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    return 0;
}

static int shape_error(const char *op, const au_tensor *y, const au_tensor *x, const char *expect, au_err *err) {
    char sx[96], sy[96];
    return au_errf(err, AU_EINVAL, "%s: x %s, y %s: %s", op, au_shape_str(x, sx, sizeof sx),
                   au_shape_str(y, sy, sizeof sy), expect);
}

namespace {

struct patchify_fn {
    cu_ref x;
    int64_t C, F, H, W;
    int pt, ph, pw;
    __device__ float operator()(int64_t i) const {
        int64_t vol = (int64_t)pt * ph * pw, cols = C * vol, Hp = H / ph, Wp = W / pw;
        int64_t tok = i / cols, col = i % cols;
        int64_t c = col / vol, r = col % vol;
        int64_t kt = r / (ph * pw), kh = (r / pw) % ph, kw = r % pw;
        int64_t w = tok % Wp, h = (tok / Wp) % Hp, f = tok / (Wp * Hp);
        return cu_load(x, ((c * F + f * pt + kt) * H + h * ph + kh) * W + w * pw + kw);
    }
};

struct unpatchify_fn {
    cu_ref x;
    int64_t C, F, H, W;
    int pt, ph, pw;
    __device__ float operator()(int64_t i) const {
        int64_t Hp = H / ph, Wp = W / pw;
        int64_t wi = i % W, hi = (i / W) % H, fi = (i / (W * H)) % F, c = i / (W * H * F);
        int64_t tok = ((fi / pt) * Hp + hi / ph) * Wp + wi / pw;
        int64_t col = (((fi % pt) * ph + hi % ph) * pw + wi % pw) * C + c;
        return cu_load(x, tok * (C * pt * ph * pw) + col);
    }
};

struct transpose_fn {
    cu_ref x;
    int64_t M, N; /* x [M, N], y [N, M] */
    __device__ float operator()(int64_t i) const { return cu_load(x, (i % M) * N + i / M); }
};

struct concat_fn {
    cu_ref a, b;
    int64_t na, nb, inner; /* sizes along dim, product of dims after it */
    __device__ float operator()(int64_t i) const {
        int64_t in = i % inner, j = (i / inner) % (na + nb), o = i / (inner * (na + nb));
        return j < na ? cu_load(a, (o * na + j) * inner + in) : cu_load(b, (o * nb + j - na) * inner + in);
    }
};

struct slice_fn {
    cu_ref x;
    int64_t nx, ny, start, inner;
    __device__ float operator()(int64_t i) const {
        int64_t in = i % inner, j = (i / inner) % ny, o = i / (inner * ny);
        return cu_load(x, (o * nx + start + j) * inner + in);
    }
};

struct upsample_fn {
    cu_ref x;
    int64_t H, W; /* of x */
    __device__ float operator()(int64_t i) const {
        int64_t j = i % (2 * W), r = (i / (2 * W)) % (2 * H), ct = i / (4 * H * W);
        return cu_load(x, (ct * H + r / 2) * W + j / 2);
    }
};

struct interleave_fn {
    cu_ref x;
    int64_t C, T, plane; /* y [C, 2T, plane] */
    __device__ float operator()(int64_t i) const {
        int64_t p = i % plane, t2 = (i / plane) % (2 * T), c = i / (plane * 2 * T);
        return cu_load(x, (((t2 % 2) * C + c) * T + t2 / 2) * plane + p);
    }
};

} // namespace

/* grid is the [C, F, H, W] side, tokens the [n, C pt ph pw] side. */
static int patch_check(const char *op, const au_tensor *y, const au_tensor *x, const au_tensor *grid,
                       const au_tensor *tokens, int pt, int ph, int pw, au_err *err) {
    TRY_RC(check_move(op, y, x, err));
    if (pt < 1 || ph < 1 || pw < 1 || grid->ndim != 4 || tokens->ndim != 2 || grid->shape[1] % pt ||
        grid->shape[2] % ph || grid->shape[3] % pw)
        return shape_error(op, y, x, "expected a [C,F,H,W] grid divisible by the patch and [n_tokens, C*pt*ph*pw] tokens",
                           err);
    int64_t n = (grid->shape[1] / pt) * (grid->shape[2] / ph) * (grid->shape[3] / pw);
    if (tokens->shape[0] != n || tokens->shape[1] != grid->shape[0] * pt * ph * pw)
        return shape_error(op, y, x, "token count or width does not match the grid and patch", err);
    return 0;
}

int cuda_patchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err) {
    const char *op = "patchify";
    TRY_RC(patch_check(op, y, x, x, y, pt, ph, pw, err));
    patchify_fn f = {cu_ref_of(x), x->shape[0], x->shape[1], x->shape[2], x->shape[3], pt, ph, pw};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_unpatchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err) {
    const char *op = "unpatchify";
    TRY_RC(patch_check(op, y, x, y, x, pt, ph, pw, err));
    unpatchify_fn f = {cu_ref_of(x), y->shape[0], y->shape[1], y->shape[2], y->shape[3], pt, ph, pw};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_transpose(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "transpose";
    TRY_RC(check_move(op, y, x, err));
    if (x->ndim != 2 || y->ndim != 2 || y->shape[0] != x->shape[1] || y->shape[1] != x->shape[0])
        return shape_error(op, y, x, "expected x [M,N] and y [N,M]", err);
    transpose_fn f = {cu_ref_of(x), x->shape[0], x->shape[1]};
    return cu_map(cuda_of(be), f, y, op, err);
}

/* y [B, A, rest] = x [A, B, rest] in words of T (16, 4 or 2 bytes; rest counted in words):
 * raw bits, so exact for every dtype. */
template <class T>
__global__ void swap01_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t A, int64_t B, int64_t rest) {
    int64_t n = A * B * rest;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i % rest, a = (i / rest) % A, b = i / (rest * A);
        y[i] = x[(a * B + b) * rest + r];
    }
}

template <class T> static int swap01_launch(cuda_state *cs, const au_tensor *y, const au_tensor *x, size_t block_bytes,
                                            const char *op, au_err *err) {
    int64_t rest = (int64_t)(block_bytes / sizeof(T)), n = x->shape[0] * x->shape[1] * rest;
    swap01_kernel<<<cu_grid(n, 256), 256, 0, cs->stream>>>((const T *)x->data, (T *)y->data, x->shape[0],
                                                           x->shape[1], rest);
    CUDA_LAUNCHED();
    return 0;
}

int cuda_swap01(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "swap01";
    TRY_RC(check_move(op, y, x, err));
    char sx[96], sy[96];
    if (x->dtype != y->dtype || x->dtype == AU_F8_E4M3)
        return au_errf(err, AU_EINVAL, "%s: x %s and y %s must share one dtype other than f8", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(y, sy, sizeof sy));
    int ok = x->ndim >= 2 && y->ndim == x->ndim && y->shape[0] == x->shape[1] && y->shape[1] == x->shape[0];
    for (int i = 2; ok && i < x->ndim; i++)
        ok = y->shape[i] == x->shape[i];
    if (!ok)
        return shape_error(op, y, x, "expected x [A,B,...] and y [B,A,...]", err);
    size_t block = au_dtype_size(x->dtype);
    for (int i = 2; i < x->ndim; i++)
        block *= (size_t)x->shape[i];
    if (au_numel(y) == 0)
        return 0;
    /* the widest word that divides a block and both addresses */
    uintptr_t align = (uintptr_t)x->data | (uintptr_t)y->data | (uintptr_t)block;
    if (align % 16 == 0)
        return swap01_launch<uint4>(cuda_of(be), y, x, block, op, err);
    if (align % 4 == 0)
        return swap01_launch<uint32_t>(cuda_of(be), y, x, block, op, err);
    return swap01_launch<uint16_t>(cuda_of(be), y, x, block, op, err);
}

static int64_t inner_of(const au_tensor *t, int dim) {
    int64_t n = 1;
    for (int i = dim + 1; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* rows strided copies of width bytes on the stream (the same-dtype concat and slice: the VAE's
 * causal cache moves, at copy-engine speed instead of a per-element kernel's). */
static int copy_rows(cuda_state *cs, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                     size_t rows, const char *op, au_err *err) {
    if (width == 0 || rows == 0)
        return 0;
    CUDA_TRY(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice, cs->stream));
    return 0;
}

int cuda_concat(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, int dim, au_err *err) {
    const char *op = "concat";
    TRY_RC(check_move(op, y, a, err));
    TRY_RC(check_move(op, y, b, err));
    int ok = dim >= 0 && dim < y->ndim && a->ndim == y->ndim && b->ndim == y->ndim &&
             a->shape[dim] + b->shape[dim] == y->shape[dim];
    for (int i = 0; ok && i < y->ndim; i++)
        if (i != dim && (a->shape[i] != y->shape[i] || b->shape[i] != y->shape[i]))
            ok = 0;
    if (!ok) {
        char sa[96], sb[96], sy[96];
        return au_errf(err, AU_EINVAL, "%s: a %s, b %s, y %s, dim %d: shapes do not concatenate", op,
                       au_shape_str(a, sa, sizeof sa), au_shape_str(b, sb, sizeof sb), au_shape_str(y, sy, sizeof sy),
                       dim);
    }
    int64_t inner = inner_of(y, dim);
    if (inner == 0 || au_numel(y) == 0)
        return 0;
    if (a->dtype == y->dtype && b->dtype == y->dtype && y->dtype != AU_F8_E4M3) {
        /* each outer row of y is a row of a then a row of b */
        const size_t es = au_dtype_size(y->dtype), ra = (size_t)(a->shape[dim] * inner) * es;
        const size_t rb = (size_t)(b->shape[dim] * inner) * es, rows = (size_t)(au_numel(y) / (y->shape[dim] * inner));
        TRY_RC(copy_rows(cuda_of(be), y->data, ra + rb, a->data, ra, ra, rows, op, err));
        return copy_rows(cuda_of(be), (char *)y->data + ra, ra + rb, b->data, rb, rb, rows, op, err);
    }
    concat_fn f = {cu_ref_of(a), cu_ref_of(b), a->shape[dim], b->shape[dim], inner};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_slice(au_backend *be, au_tensor *y, const au_tensor *x, int dim, int64_t start, au_err *err) {
    const char *op = "slice";
    TRY_RC(check_move(op, y, x, err));
    int ok = dim >= 0 && dim < x->ndim && y->ndim == x->ndim && start >= 0 && start + y->shape[dim] <= x->shape[dim];
    for (int i = 0; ok && i < x->ndim; i++)
        if (i != dim && x->shape[i] != y->shape[i])
            ok = 0;
    if (!ok) {
        char sx[96], sy[96];
        return au_errf(err, AU_EINVAL, "%s: x %s, y %s, dim %d, start %lld: not a slice of x", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(y, sy, sizeof sy), dim, (long long)start);
    }
    int64_t inner = inner_of(x, dim);
    if (inner == 0 || au_numel(y) == 0)
        return 0;
    if (x->dtype == y->dtype && y->dtype != AU_F8_E4M3) {
        const size_t es = au_dtype_size(y->dtype), ry = (size_t)(y->shape[dim] * inner) * es;
        const size_t rx = (size_t)(x->shape[dim] * inner) * es, rows = (size_t)(au_numel(y) / (y->shape[dim] * inner));
        return copy_rows(cuda_of(be), y->data, ry, (const char *)x->data + (size_t)(start * inner) * es, rx, ry, rows, op,
                         err);
    }
    slice_fn f = {cu_ref_of(x), x->shape[dim], y->shape[dim], start, inner};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_upsample2x(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "upsample2x";
    TRY_RC(check_move(op, y, x, err));
    if (x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] ||
        y->shape[2] != 2 * x->shape[2] || y->shape[3] != 2 * x->shape[3])
        return shape_error(op, y, x, "expected x [C,T,H,W] and y [C,T,2H,2W]", err);
    upsample_fn f = {cu_ref_of(x), x->shape[2], x->shape[3]};
    return cu_map(cuda_of(be), f, y, op, err);
}

int cuda_time_interleave(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "time_interleave";
    TRY_RC(check_move(op, y, x, err));
    if (x->ndim != 4 || y->ndim != 4 || x->shape[0] != 2 * y->shape[0] || y->shape[1] != 2 * x->shape[1] ||
        y->shape[2] != x->shape[2] || y->shape[3] != x->shape[3])
        return shape_error(op, y, x, "expected x [2C,T,H,W] and y [C,2T,H,W]", err);
    interleave_fn f = {cu_ref_of(x), y->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    return cu_map(cuda_of(be), f, y, op, err);
}

__global__ void rgb8_kernel(cu_ref x, uint8_t *y, int64_t T, int64_t plane, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i % 3, ts = i / 3, t = ts / plane, s = ts % plane;
        const float v = fminf(fmaxf(cu_load(x, (c * T + t) * plane + s), -1.0f), 1.0f); /* NaN -> -1 */
        y[i] = (uint8_t)__fmul_rn(__fmul_rn(__fadd_rn(v, 1.0f), 0.5f), 255.0f);
    }
}

int cuda_to_rgb8(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "to_rgb8";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(be_check_tensor(op, "y", y, err));
    if (y->dtype != AU_U8 || x->ndim != 4 || y->ndim != 4 || x->shape[0] != 3 ||
        y->shape[0] != x->shape[1] || y->shape[1] != x->shape[2] || y->shape[2] != x->shape[3] || y->shape[3] != 3)
        return shape_error(op, y, x, "expected x [3,T,H,W] and y [T,H,W,3] u8", err);
    const int64_t n = au_numel(y);
    if (n == 0)
        return 0;
    rgb8_kernel<<<cu_grid(n, 256), 256, 0, cs->stream>>>(cu_ref_of(x), (uint8_t *)y->data, x->shape[1],
                                                         x->shape[2] * x->shape[3], n);
    CUDA_LAUNCHED();
    return 0;
}
