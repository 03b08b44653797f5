/* cpu_eltwise.c - elementwise ops of the CPU backend: add, mul (with a row
 * vector broadcast), add_gated, activate, lincomb, clamp, copy with dtype
 * conversion, fill.
 *
 * Every op reads element i before writing element i, so outputs may alias
 * inputs where backend.h allows it. Copy into f8 quantizes per dim-0 row:
 * scale[r] = max|row| / 448 (1 for an all-zero row), q = e4m3(x / scale[r]).
 */
#include "cpu_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ELT_GRAIN 16384 /* elements per task at least */
#define CHUNK 1024      /* elements converted at a time */

/* ---- add / mul ---- */

typedef struct binary_job {
    const float *a, *b;
    float *y;
    int64_t dim; /* >0: b is a [dim] vector broadcast over rows */
    int is_mul;
} binary_job;

static void binary_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const binary_job *j = ctx;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    for (int64_t i = begin; i < end;) {
        int64_t n = end - i, off = 0;
        const float *bb = b + i;
        if (j->dim) { /* stay inside one row of b */
            off = i % j->dim;
            n = n < j->dim - off ? n : j->dim - off;
            bb = b + off;
        }
        if (j->is_mul)
            for (int64_t k = 0; k < n; k++)
                y[i + k] = a[i + k] * bb[k];
        else
            for (int64_t k = 0; k < n; k++)
                y[i + k] = a[i + k] + bb[k];
        i += n;
    }
}

static int binary_op(au_backend *be, const char *op, au_tensor *y, const au_tensor *a, const au_tensor *b,
                     int is_mul, au_err *err) {
    int rc;
    if ((rc = cpu_check_f32(op, "a", a, err)) < 0 || (rc = cpu_check_f32(op, "b", b, err)) < 0 ||
        (rc = cpu_check_f32(op, "y", y, err)) < 0 || (rc = cpu_check_numel(op, "y", y, "a", a, err)) < 0)
        return rc;
    int64_t n = au_numel(a), dim = a->shape[a->ndim - 1];
    binary_job j = {a->data, b->data, y->data, 0, is_mul};
    if (au_numel(b) != n) {
        if (au_numel(b) != dim) {
            char sa[96], sb[96];
            return au_errf(err, AU_EINVAL, "%s: b %s is neither the size of a %s nor a [%lld] row vector", op,
                           au_shape_str(b, sb, sizeof sb), au_shape_str(a, sa, sizeof sa), (long long)dim);
        }
        j.dim = dim;
    }
    cpu_parallel_for(cpu_of(be), n, ELT_GRAIN, binary_range, &j);
    return 0;
}

int cpu_add(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err) {
    return binary_op(be, "add", y, a, b, 0, err);
}

int cpu_mul(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err) {
    return binary_op(be, "mul", y, a, b, 1, err);
}

/* ---- add_gated ---- */

typedef struct gated_job {
    float *x;
    const float *y, *gate;
    int64_t dim;
} gated_job;

static void gated_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const gated_job *j = ctx;
    if (!j->gate) {
        for (int64_t i = begin; i < end; i++)
            j->x[i] += j->y[i];
        return;
    }
    for (int64_t i = begin; i < end;) {
        int64_t off = i % j->dim, n = end - i < j->dim - off ? end - i : j->dim - off;
        const float *g = j->gate + off;
        for (int64_t k = 0; k < n; k++)
            j->x[i + k] += j->y[i + k] * g[k];
        i += n;
    }
}

int cpu_add_gated(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_err *err) {
    const char *op = "add_gated";
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0 ||
        (rc = cpu_check_numel(op, "x", x, "y", y, err)) < 0)
        return rc;
    int64_t dim = x->shape[x->ndim - 1];
    if (gate && (rc = cpu_check_vec(op, "gate", gate, dim, err)) < 0)
        return rc;
    gated_job j = {x->data, y->data, gate ? gate->data : NULL, dim};
    cpu_parallel_for(cpu_of(be), au_numel(x), ELT_GRAIN, gated_range, &j);
    return 0;
}

/* ---- activate / clamp ---- */

typedef struct unary_job {
    const float *x;
    float *y;
    au_act act;
    float lo, hi;
} unary_job;

static void activate_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const unary_job *j = ctx;
    if (j->y != j->x)
        memmove(j->y + begin, j->x + begin, (size_t)(end - begin) * sizeof(float));
    cpu_act_apply(j->y + begin, end - begin, j->act);
}

static void clamp_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const unary_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float v = j->x[i];
        v = v < j->lo ? j->lo : v;
        j->y[i] = v > j->hi ? j->hi : v;
    }
}

int cpu_activate(au_backend *be, au_tensor *y, const au_tensor *x, au_act act, au_err *err) {
    const char *op = "activate";
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0 ||
        (rc = cpu_check_numel(op, "y", y, "x", x, err)) < 0)
        return rc;
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    unary_job j = {x->data, y->data, act, 0, 0};
    cpu_parallel_for(cpu_of(be), au_numel(x), ELT_GRAIN / 4, activate_range, &j);
    return 0;
}

int cpu_clamp(au_backend *be, au_tensor *y, const au_tensor *x, float lo, float hi, au_err *err) {
    const char *op = "clamp";
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0 ||
        (rc = cpu_check_numel(op, "y", y, "x", x, err)) < 0)
        return rc;
    if (!(lo <= hi))
        return au_errf(err, AU_EINVAL, "%s: lo %g > hi %g", op, lo, hi);
    unary_job j = {x->data, y->data, AU_ACT_NONE, lo, hi};
    cpu_parallel_for(cpu_of(be), au_numel(x), ELT_GRAIN, clamp_range, &j);
    return 0;
}

/* ---- lincomb ---- */

typedef struct lincomb_job {
    float *y;
    const au_tensor *const *xs;
    const float *coef;
    int n;
} lincomb_job;

static void lincomb_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const lincomb_job *j = ctx;
    float acc[CHUNK];
    for (int64_t i0 = begin; i0 < end; i0 += CHUNK) {
        int64_t m = end - i0 < CHUNK ? end - i0 : CHUNK;
        const float *x0 = (const float *)j->xs[0]->data + i0;
        for (int64_t k = 0; k < m; k++)
            acc[k] = j->coef[0] * x0[k];
        for (int t = 1; t < j->n; t++) {
            const float *xt = (const float *)j->xs[t]->data + i0;
            float c = j->coef[t];
            for (int64_t k = 0; k < m; k++)
                acc[k] += c * xt[k];
        }
        memcpy(j->y + i0, acc, (size_t)m * sizeof(float));
    }
}

int cpu_lincomb(au_backend *be, au_tensor *y, int n, const au_tensor *const *xs, const au_tensor *coef,
                au_err *err) {
    const char *op = "lincomb";
    int rc;
    if ((rc = cpu_check_f32(op, "y", y, err)) < 0)
        return rc;
    if (n < 1 || !xs || !coef)
        return au_errf(err, AU_EINVAL, "%s: need n >= 1 inputs and coefficients (n = %d)", op, n);
    if ((rc = cpu_check_vec(op, "coef", coef, n, err)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "xs[%d]", i);
        if ((rc = cpu_check_f32(op, name, xs[i], err)) < 0 ||
            (rc = cpu_check_numel(op, "y", y, name, xs[i], err)) < 0)
            return rc;
    }
    lincomb_job j = {y->data, xs, coef->data, n};
    cpu_parallel_for(cpu_of(be), au_numel(y), ELT_GRAIN, lincomb_range, &j);
    return 0;
}

/* ---- copy / fill ---- */

typedef struct copy_job {
    cpu_state *cs;
    au_tensor *dst;
    const au_tensor *src;
    int64_t row_len; /* f8 destination: elements per dim-0 row */
} copy_job;

static void copy_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const copy_job *j = ctx;
    float buf[CHUNK];
    for (int64_t i = begin; i < end; i += CHUNK) {
        int64_t m = end - i < CHUNK ? end - i : CHUNK;
        cpu_read_f32(j->src, i, m, buf);
        cpu_write_f32(j->dst, i, m, buf);
    }
}

static void quantize_rows(void *ctx, int64_t begin, int64_t end, int thread) {
    const copy_job *j = ctx;
    float *row = j->cs->scratch[thread];
    uint8_t *q = j->dst->data;
    float *scale = j->dst->scale;
    for (int64_t r = begin; r < end; r++) {
        cpu_read_f32(j->src, r * j->row_len, j->row_len, row);
        float amax = 0.0f;
        for (int64_t i = 0; i < j->row_len; i++)
            amax = fabsf(row[i]) > amax ? fabsf(row[i]) : amax;
        float s = amax > 0.0f ? amax / 448.0f : 1.0f, inv = 1.0f / s;
        for (int64_t i = 0; i < j->row_len; i++)
            q[r * j->row_len + i] = au_f32_to_f8e4m3(row[i] * inv);
        scale[r] = s;
    }
}

static void bytes_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const copy_job *j = ctx;
    memmove((char *)j->dst->data + begin, (const char *)j->src->data + begin, (size_t)(end - begin));
}

int cpu_copy(au_backend *be, au_tensor *dst, const au_tensor *src, au_err *err) {
    const char *op = "copy";
    cpu_state *cs = cpu_of(be);
    int rc;
    if ((rc = be_check_tensor(op, "src", src, err)) < 0 ||
        (rc = be_check_tensor(op, "dst", dst, err)) < 0 ||
        (rc = cpu_check_numel(op, "dst", dst, "src", src, err)) < 0)
        return rc;
    copy_job j = {cs, dst, src, 0};
    char sd[96], ss[96];
    if (dst->dtype == src->dtype && dst->dtype != AU_F8_E4M3) {
        cpu_parallel_for(cs, (int64_t)au_nbytes(src), (int64_t)ELT_GRAIN * 4, bytes_range, &j);
        return 0;
    }
    if ((rc = cpu_check_readable(op, "src", src, err)) < 0)
        return rc;
    if (dst->dtype == AU_F8_E4M3 && src->dtype == AU_F8_E4M3 && dst->shape[0] == src->shape[0] &&
        dst->scale) {
        memmove(dst->data, src->data, au_nbytes(src)); /* same rows: codes and scales carry over */
        memmove(dst->scale, src->scale, (size_t)src->shape[0] * sizeof(float));
        return 0;
    }
    if (au_numel(src) > 0 && dst->data == src->data)
        return au_errf(err, AU_EINVAL, "%s: dst %s aliases src %s of another dtype", op,
                       au_shape_str(dst, sd, sizeof sd), au_shape_str(src, ss, sizeof ss));
    switch (dst->dtype) {
    case AU_F32:
    case AU_F16:
    case AU_BF16: cpu_parallel_for(cs, au_numel(src), ELT_GRAIN, copy_range, &j); return 0;
    case AU_F8_E4M3:
        if (!dst->scale)
            return au_errf(err, AU_EINVAL, "%s: f8 dst %s has no scale buffer", op,
                           au_shape_str(dst, sd, sizeof sd));
        if (dst->shape[0] == 0)
            return 0;
        j.row_len = au_numel(dst) / dst->shape[0];
        if ((rc = cpu_scratch_reserve(cs, (size_t)j.row_len * sizeof(float), op, err)) < 0)
            return rc;
        cpu_parallel_for(cs, dst->shape[0], 1, quantize_rows, &j);
        return 0;
    default:
        return au_errf(err, AU_EINVAL, "%s: cannot convert %s into %s", op, au_shape_str(src, ss, sizeof ss),
                       au_shape_str(dst, sd, sizeof sd));
    }
}

typedef struct fill_job {
    au_tensor *y;
    float value;
} fill_job;

static void fill_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const fill_job *j = ctx;
    float buf[CHUNK];
    for (int64_t k = 0; k < CHUNK; k++)
        buf[k] = j->value;
    for (int64_t i = begin; i < end; i += CHUNK)
        cpu_write_f32(j->y, i, end - i < CHUNK ? end - i : CHUNK, buf);
}

int cpu_fill(au_backend *be, au_tensor *y, float value, au_err *err) {
    const char *op = "fill";
    int rc;
    if ((rc = be_check_tensor(op, "y", y, err)) < 0)
        return rc;
    if (y->dtype != AU_F32 && y->dtype != AU_F16 && y->dtype != AU_BF16) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: y %s must be f32, f16 or bf16", op, au_shape_str(y, s, sizeof s));
    }
    fill_job j = {y, value};
    cpu_parallel_for(cpu_of(be), au_numel(y), ELT_GRAIN, fill_range, &j);
    return 0;
}
