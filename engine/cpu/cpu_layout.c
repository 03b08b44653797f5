/* cpu_layout.c - data movement ops of the CPU backend: patchify, unpatchify,
 * transpose, swap01, concat, slice, upsample2x, time_interleave, to_rgb8.
 *
 * They move elements without arithmetic, so they work for any dtype but f8
 * (whose per-row scales would not follow), input and output of the same dtype;
 * to_rgb8 (the video's planes to interleaved 8-bit frames) is the one that converts.
 *   patchify:   y[(f,h,w), (c,kt,kh,kw)] = x[c, f pt + kt, h ph + kh, w pw + kw]
 *   unpatchify: y[c, f pt + kt, h ph + kh, w pw + kw] = x[(f,h,w), (kt,kh,kw,c)]
 *   upsample2x: y[c, t, i, j] = x[c, t, i/2, j/2]
 *   time_interleave: y[c, 2t + i] = x[i C + c, t]   (x [2C, T, H, W])
 *   swap01:     y[b, a, :] = x[a, b, :]   (x [A, B, rest...], each rest block contiguous)
 *   to_rgb8:    y[t, s, c] = trunc((clamp(x[c, t, s], -1, 1) + 1) * 0.5 * 255)   (x f32, y u8)
 * Outputs must not alias inputs.
 */
#include "cpu_internal.h"

#include <stdio.h>
#include <string.h>

static inline void elem_copy(void *dst, int64_t di, const void *src, int64_t si, size_t esz) {
    switch (esz) {
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    case 8: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    default: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    }
}

/* y and x valid, same dtype, not f8, no aliasing. */
static int check_move(const char *op, const au_tensor *y, const au_tensor *x, au_err *err) {
    int rc;
    if ((rc = be_check_tensor(op, "x", x, err)) < 0 || (rc = be_check_tensor(op, "y", y, err)) < 0)
        return rc;
    char sx[96], sy[96];
    if (x->dtype != y->dtype || x->dtype == AU_F8_E4M3 || au_dtype_size(x->dtype) == 0)
        return au_errf(err, AU_EINVAL, "%s: x %s and y %s must share one dtype other than f8", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(y, sy, sizeof sy));
    if (au_numel(y) > 0 && x->data == y->data)
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    return 0;
}

static int shape_error(const char *op, const au_tensor *y, const au_tensor *x, const char *expect,
                       au_err *err) {
    char sx[96], sy[96];
    return au_errf(err, AU_EINVAL, "%s: x %s, y %s: %s", op, au_shape_str(x, sx, sizeof sx),
                   au_shape_str(y, sy, sizeof sy), expect);
}

/* ---- patchify / unpatchify ---- */

typedef struct patch_job {
    const void *x;
    void *y;
    size_t esz;
    int64_t C, F, H, W;
    int pt, ph, pw;
} patch_job;

static void patchify_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const patch_job *j = ctx;
    int64_t Hp = j->H / j->ph, Wp = j->W / j->pw, cols = j->C * j->pt * j->ph * j->pw;
    for (int64_t tok = begin; tok < end; tok++) {
        int64_t w = tok % Wp, h = (tok / Wp) % Hp, f = tok / (Wp * Hp);
        int64_t col = 0;
        for (int64_t c = 0; c < j->C; c++)
            for (int kt = 0; kt < j->pt; kt++)
                for (int kh = 0; kh < j->ph; kh++)
                    for (int kw = 0; kw < j->pw; kw++, col++) {
                        int64_t si =
                            ((c * j->F + f * j->pt + kt) * j->H + h * j->ph + kh) * j->W + w * j->pw + kw;
                        elem_copy(j->y, tok * cols + col, j->x, si, j->esz);
                    }
    }
}

static void unpatchify_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const patch_job *j = ctx;
    int64_t Hp = j->H / j->ph, Wp = j->W / j->pw, cols = j->C * j->pt * j->ph * j->pw;
    for (int64_t tok = begin; tok < end; tok++) {
        int64_t w = tok % Wp, h = (tok / Wp) % Hp, f = tok / (Wp * Hp);
        int64_t col = 0;
        for (int kt = 0; kt < j->pt; kt++)
            for (int kh = 0; kh < j->ph; kh++)
                for (int kw = 0; kw < j->pw; kw++)
                    for (int64_t c = 0; c < j->C; c++, col++) {
                        int64_t di =
                            ((c * j->F + f * j->pt + kt) * j->H + h * j->ph + kh) * j->W + w * j->pw + kw;
                        elem_copy(j->y, di, j->x, tok * cols + col, j->esz);
                    }
    }
}

/* grid is the [C, F, H, W] side, tokens the [n, C pt ph pw] side. */
static int patch_common(const char *op, au_tensor *y, const au_tensor *x, const au_tensor *grid,
                        const au_tensor *tokens, int pt, int ph, int pw, patch_job *j, au_err *err) {
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    if (pt < 1 || ph < 1 || pw < 1 || grid->ndim != 4 || tokens->ndim != 2 || grid->shape[1] % pt ||
        grid->shape[2] % ph || grid->shape[3] % pw)
        return shape_error(
            op, y, x, "expected a [C,F,H,W] grid divisible by the patch and [n_tokens, C*pt*ph*pw] tokens",
            err);
    int64_t n = (grid->shape[1] / pt) * (grid->shape[2] / ph) * (grid->shape[3] / pw);
    if (tokens->shape[0] != n || tokens->shape[1] != grid->shape[0] * pt * ph * pw)
        return shape_error(op, y, x, "token count or width does not match the grid and patch", err);
    patch_job pj = {x->data,
                    y->data,
                    au_dtype_size(x->dtype),
                    grid->shape[0],
                    grid->shape[1],
                    grid->shape[2],
                    grid->shape[3],
                    pt,
                    ph,
                    pw};
    *j = pj;
    return 0;
}

int cpu_patchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err) {
    patch_job j;
    int rc = patch_common("patchify", y, x, x, y, pt, ph, pw, &j, err);
    if (rc < 0)
        return rc;
    cpu_parallel_for(cpu_of(be), y->shape[0], 64, patchify_range, &j);
    return 0;
}

int cpu_unpatchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err) {
    patch_job j;
    int rc = patch_common("unpatchify", y, x, y, x, pt, ph, pw, &j, err);
    if (rc < 0)
        return rc;
    cpu_parallel_for(cpu_of(be), x->shape[0], 64, unpatchify_range, &j);
    return 0;
}

/* ---- transpose ---- */

typedef struct transpose_job {
    const void *x;
    void *y;
    size_t esz;
    int64_t M, N; /* x [M, N] */
} transpose_job;

#define TBLOCK 32

/* Rows [begin, end) of y, i.e. columns of x, in TBLOCK x TBLOCK tiles. */
static void transpose_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const transpose_job *j = ctx;
    for (int64_t n0 = begin; n0 < end; n0 += TBLOCK)
        for (int64_t m0 = 0; m0 < j->M; m0 += TBLOCK) {
            int64_t n1 = n0 + TBLOCK < end ? n0 + TBLOCK : end, m1 = m0 + TBLOCK < j->M ? m0 + TBLOCK : j->M;
            for (int64_t n = n0; n < n1; n++)
                for (int64_t m = m0; m < m1; m++)
                    elem_copy(j->y, n * j->M + m, j->x, m * j->N + n, j->esz);
        }
}

int cpu_transpose(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "transpose";
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    if (x->ndim != 2 || y->ndim != 2 || y->shape[0] != x->shape[1] || y->shape[1] != x->shape[0])
        return shape_error(op, y, x, "expected x [M,N] and y [N,M]", err);
    transpose_job j = {x->data, y->data, au_dtype_size(x->dtype), x->shape[0], x->shape[1]};
    cpu_parallel_for(cpu_of(be), x->shape[1], TBLOCK, transpose_range, &j);
    return 0;
}

/* ---- concat / slice: blocks of contiguous bytes ---- */

typedef struct block_job {
    const char *src;
    char *dst;
    size_t src_stride, dst_stride, bytes; /* per outer index */
} block_job;

static void block_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const block_job *j = ctx;
    for (int64_t o = begin; o < end; o++)
        memcpy(j->dst + (size_t)o * j->dst_stride, j->src + (size_t)o * j->src_stride, j->bytes);
}

/* Products of the dims before and after dim. */
static void outer_inner(const au_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++)
        *outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++)
        *inner *= t->shape[i];
}

static int64_t block_grain(size_t bytes) {
    return bytes >= 65536 ? 1 : (int64_t)(65536 / (bytes ? bytes : 1));
}

int cpu_concat(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, int dim, au_err *err) {
    const char *op = "concat";
    int rc;
    if ((rc = check_move(op, y, a, err)) < 0 || (rc = check_move(op, y, b, err)) < 0)
        return rc;
    int ok = dim >= 0 && dim < y->ndim && a->ndim == y->ndim && b->ndim == y->ndim &&
             a->shape[dim] + b->shape[dim] == y->shape[dim];
    for (int i = 0; ok && i < y->ndim; i++)
        if (i != dim && (a->shape[i] != y->shape[i] || b->shape[i] != y->shape[i]))
            ok = 0;
    if (!ok) {
        char sa[96], sb[96], sy[96];
        return au_errf(err, AU_EINVAL, "%s: a %s, b %s, y %s, dim %d: shapes do not concatenate", op,
                       au_shape_str(a, sa, sizeof sa), au_shape_str(b, sb, sizeof sb),
                       au_shape_str(y, sy, sizeof sy), dim);
    }
    int64_t outer, inner;
    outer_inner(y, dim, &outer, &inner);
    size_t esz = au_dtype_size(y->dtype), ystride = (size_t)(y->shape[dim] * inner) * esz;
    block_job ja = {a->data, y->data, (size_t)(a->shape[dim] * inner) * esz, ystride,
                    (size_t)(a->shape[dim] * inner) * esz};
    block_job jb = {b->data, (char *)y->data + ja.bytes, (size_t)(b->shape[dim] * inner) * esz, ystride,
                    (size_t)(b->shape[dim] * inner) * esz};
    if (ja.bytes)
        cpu_parallel_for(cpu_of(be), outer, block_grain(ja.bytes), block_range, &ja);
    if (jb.bytes)
        cpu_parallel_for(cpu_of(be), outer, block_grain(jb.bytes), block_range, &jb);
    return 0;
}

int cpu_slice(au_backend *be, au_tensor *y, const au_tensor *x, int dim, int64_t start, au_err *err) {
    const char *op = "slice";
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    int ok = dim >= 0 && dim < x->ndim && y->ndim == x->ndim && start >= 0 &&
             start + y->shape[dim] <= x->shape[dim];
    for (int i = 0; ok && i < x->ndim; i++)
        if (i != dim && x->shape[i] != y->shape[i])
            ok = 0;
    if (!ok) {
        char sx[96], sy[96];
        return au_errf(err, AU_EINVAL, "%s: x %s, y %s, dim %d, start %lld: not a slice of x", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(y, sy, sizeof sy), dim, (long long)start);
    }
    int64_t outer, inner;
    outer_inner(x, dim, &outer, &inner);
    size_t esz = au_dtype_size(x->dtype);
    block_job j = {(const char *)x->data + (size_t)(start * inner) * esz, y->data,
                   (size_t)(x->shape[dim] * inner) * esz, (size_t)(y->shape[dim] * inner) * esz,
                   (size_t)(y->shape[dim] * inner) * esz};
    if (j.bytes)
        cpu_parallel_for(cpu_of(be), outer, block_grain(j.bytes), block_range, &j);
    return 0;
}

/* ---- swap01: x [A, B, rest] -> y [B, A, rest], rest moved as one block ---- */

typedef struct swap01_job {
    const char *x;
    char *y;
    int64_t A, B;
    size_t block; /* bytes of one rest block */
} swap01_job;

/* Blocks [begin, end) of y in its order (b, a). */
static void swap01_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const swap01_job *j = ctx;
    for (int64_t o = begin; o < end; o++) {
        int64_t b = o / j->A, a = o % j->A;
        memcpy(j->y + (size_t)o * j->block, j->x + (size_t)(a * j->B + b) * j->block, j->block);
    }
}

int cpu_swap01(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "swap01";
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    int ok = x->ndim >= 2 && y->ndim == x->ndim && y->shape[0] == x->shape[1] && y->shape[1] == x->shape[0];
    for (int i = 2; ok && i < x->ndim; i++)
        ok = y->shape[i] == x->shape[i];
    if (!ok)
        return shape_error(op, y, x, "expected x [A,B,...] and y [B,A,...]", err);
    int64_t rest = 1;
    for (int i = 2; i < x->ndim; i++)
        rest *= x->shape[i];
    swap01_job j = {x->data, y->data, x->shape[0], x->shape[1], (size_t)rest * au_dtype_size(x->dtype)};
    if (j.block)
        cpu_parallel_for(cpu_of(be), j.A * j.B, block_grain(j.block), swap01_range, &j);
    return 0;
}

/* ---- upsample2x / time_interleave ---- */

typedef struct up_job {
    const char *x;
    char *y;
    size_t esz;
    int64_t W;
} up_job;

/* Input rows [begin, end) of x viewed as [C*T*H, W]; each gives two rows of y. */
static void upsample_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const up_job *j = ctx;
    size_t row_out = (size_t)(2 * j->W) * j->esz;
    for (int64_t r = begin; r < end; r++) {
        const char *src = j->x + (size_t)(r * j->W) * j->esz;
        char *dst = j->y + (size_t)(2 * r) * row_out;
        for (int64_t w = 0; w < j->W; w++) {
            elem_copy(dst, 2 * w, src, w, j->esz);
            elem_copy(dst, 2 * w + 1, src, w, j->esz);
        }
        memcpy(dst + row_out, dst, row_out);
    }
}

int cpu_upsample2x(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "upsample2x";
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    if (x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] ||
        y->shape[2] != 2 * x->shape[2] || y->shape[3] != 2 * x->shape[3])
        return shape_error(op, y, x, "expected x [C,T,H,W] and y [C,T,2H,2W]", err);
    up_job j = {x->data, y->data, au_dtype_size(x->dtype), x->shape[3]};
    cpu_parallel_for(cpu_of(be), au_rows(x), 16, upsample_range, &j);
    return 0;
}

typedef struct interleave_job {
    const char *x;
    char *y;
    int64_t C, T;
    size_t plane; /* bytes of one [H, W] frame */
} interleave_job;

/* Output frames [begin, end) of y viewed as [C, 2T] frames. */
static void interleave_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const interleave_job *j = ctx;
    for (int64_t o = begin; o < end; o++) {
        int64_t c = o / (2 * j->T), t2 = o % (2 * j->T), t = t2 / 2, i = t2 % 2;
        memcpy(j->y + (size_t)o * j->plane, j->x + (size_t)((i * j->C + c) * j->T + t) * j->plane, j->plane);
    }
}

int cpu_time_interleave(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "time_interleave";
    int rc;
    if ((rc = check_move(op, y, x, err)) < 0)
        return rc;
    if (x->ndim != 4 || y->ndim != 4 || x->shape[0] != 2 * y->shape[0] || y->shape[1] != 2 * x->shape[1] ||
        y->shape[2] != x->shape[2] || y->shape[3] != x->shape[3])
        return shape_error(op, y, x, "expected x [2C,T,H,W] and y [C,2T,H,W]", err);
    interleave_job j = {x->data, y->data, y->shape[0], x->shape[1],
                        (size_t)(x->shape[2] * x->shape[3]) * au_dtype_size(x->dtype)};
    cpu_parallel_for(cpu_of(be), y->shape[0] * y->shape[1], 4, interleave_range, &j);
    return 0;
}

/* ---- to_rgb8 ---- */

typedef struct rgb8_job {
    const float *x;
    uint8_t *y;
    int64_t T;
    size_t plane; /* H W */
} rgb8_job;

/* Output frames [begin, end). */
static void rgb8_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const rgb8_job *j = ctx;
    for (int64_t t = begin; t < end; t++)
        for (int c = 0; c < 3; c++) {
            const float *src = j->x + ((size_t)c * (size_t)j->T + (size_t)t) * j->plane;
            uint8_t *dst = j->y + (size_t)t * j->plane * 3 + c;
            for (size_t s = 0; s < j->plane; s++) {
                float v = src[s] > -1.0f ? src[s] : -1.0f; /* NaN -> -1 */
                v = v < 1.0f ? v : 1.0f;
                dst[3 * s] = (uint8_t)((v + 1.0f) * 0.5f * 255.0f);
            }
        }
}

int cpu_to_rgb8(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err) {
    const char *op = "to_rgb8";
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = be_check_tensor(op, "y", y, err)) < 0)
        return rc;
    if (y->dtype != AU_U8 || x->ndim != 4 || y->ndim != 4 || x->shape[0] != 3 || y->shape[0] != x->shape[1] ||
        y->shape[1] != x->shape[2] || y->shape[2] != x->shape[3] || y->shape[3] != 3)
        return shape_error(op, y, x, "expected x [3,T,H,W] f32 and y [T,H,W,3] u8", err);
    rgb8_job j = {x->data, y->data, x->shape[1], (size_t)(x->shape[2] * x->shape[3])};
    cpu_parallel_for(cpu_of(be), x->shape[1], 1, rgb8_range, &j);
    return 0;
}
