/* cpu_norm.c - row-wise ops of the CPU backend: embedding lookup, LayerNorm with
 * modulation, RMSNorm, the VAE's channel RMS norm and rotary embedding, and the fused
 * ops composed of them (rmsnorm_rope, add_gated_layernorm).
 *
 *   layernorm: y = ((x - mean) / sqrt(var + eps) * w + b) * (1 + scale) + shift
 *   rmsnorm:   y = x / sqrt(mean(x^2) + eps) * w
 *   rmsnorm_channels (x [C, S]): y[c,s] = act(x[c,s] / max(||x[:,s]||, 1e-12) * sqrt(C) * gamma[c] + bias[c])
 *   rope: (x[2i], x[2i+1]) <- (x[2i] cos - x[2i+1] sin, x[2i] sin + x[2i+1] cos)
 * Row statistics are accumulated in double. Every op may run in place.
 */
#include "cpu_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- embed ---- */

typedef struct embed_job {
    const au_tensor *table;
    const int32_t *ids;
    float *y;
    int64_t dim;
} embed_job;

static void embed_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const embed_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        cpu_weight_rows_f32(j->table, j->ids[i], 1, j->y + i * j->dim);
}

int cpu_embed(au_backend *be, au_tensor *y, const au_tensor *table, const int32_t *ids, int n, au_err *err) {
    const char *op = "embed";
    int rc;
    if ((rc = cpu_check_f32(op, "y", y, err)) < 0 || (rc = cpu_check_readable(op, "table", table, err)) < 0)
        return rc;
    char sy[96], st[96];
    if (table->ndim != 2 || n < 0 || au_rows(y) != n || y->shape[y->ndim - 1] != table->shape[1])
        return au_errf(err, AU_EINVAL, "%s: table %s, y %s, %d ids: expected table [vocab,dim], y [n,dim]",
                       op, au_shape_str(table, st, sizeof st), au_shape_str(y, sy, sizeof sy), n);
    if (n > 0 && !ids)
        return au_errf(err, AU_EINVAL, "%s: ids is NULL", op);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->shape[0])
            return au_errf(err, AU_EINVAL, "%s: id %d at position %d is outside the vocabulary [0, %lld)", op,
                           ids[i], i, (long long)table->shape[0]);
    embed_job j = {table, ids, y->data, table->shape[1]};
    cpu_parallel_for(cpu_of(be), n, 16, embed_range, &j);
    return 0;
}

/* ---- layernorm / rmsnorm ---- */

typedef struct norm_job {
    const float *x, *w, *b, *shift, *scale;
    float *y;
    int64_t dim;
    float eps;
} norm_job;

static void layernorm_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const norm_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->y + r * j->dim;
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < j->dim; i++)
            sum += x[i];
        double mean = sum / (double)j->dim;
        for (int64_t i = 0; i < j->dim; i++) {
            double d = x[i] - mean;
            sq += d * d;
        }
        float rstd = (float)(1.0 / sqrt(sq / (double)j->dim + j->eps));
        float m = (float)mean;
        for (int64_t i = 0; i < j->dim; i++) {
            float v = (x[i] - m) * rstd;
            if (j->w)
                v *= j->w[i];
            if (j->b)
                v += j->b[i];
            if (j->scale)
                v *= 1.0f + j->scale[i];
            if (j->shift)
                v += j->shift[i];
            y[i] = v;
        }
    }
}

static void rmsnorm_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const norm_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->y + r * j->dim;
        double sq = 0.0;
        for (int64_t i = 0; i < j->dim; i++)
            sq += (double)x[i] * x[i];
        float rms = (float)(1.0 / sqrt(sq / (double)j->dim + j->eps));
        if (j->w)
            for (int64_t i = 0; i < j->dim; i++)
                y[i] = x[i] * rms * j->w[i];
        else
            for (int64_t i = 0; i < j->dim; i++)
                y[i] = x[i] * rms;
    }
}

static int check_same(const char *op, const au_tensor *y, const au_tensor *x, au_err *err) {
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0)
        return rc;
    return cpu_check_numel(op, "y", y, "x", x, err);
}

int cpu_layernorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                  const au_tensor *shift, const au_tensor *scale, float eps, au_err *err) {
    const char *op = "layernorm";
    int rc;
    if ((rc = check_same(op, y, x, err)) < 0)
        return rc;
    int64_t dim = x->shape[x->ndim - 1];
    if ((w && (rc = cpu_check_vec(op, "w", w, dim, err)) < 0) ||
        (b && (rc = cpu_check_vec(op, "b", b, dim, err)) < 0) ||
        (shift && (rc = cpu_check_vec(op, "shift", shift, dim, err)) < 0) ||
        (scale && (rc = cpu_check_vec(op, "scale", scale, dim, err)) < 0))
        return rc;
    if (dim == 0)
        return 0;
    norm_job j = {x->data,
                  w ? w->data : NULL,
                  b ? b->data : NULL,
                  shift ? shift->data : NULL,
                  scale ? scale->data : NULL,
                  y->data,
                  dim,
                  eps};
    cpu_parallel_for(cpu_of(be), au_rows(x), 4, layernorm_range, &j);
    return 0;
}

int cpu_rmsnorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                au_err *err) {
    const char *op = "rmsnorm";
    int rc;
    if ((rc = check_same(op, y, x, err)) < 0)
        return rc;
    int64_t dim = x->shape[x->ndim - 1];
    if (w && (rc = cpu_check_vec(op, "w", w, dim, err)) < 0)
        return rc;
    if (dim == 0)
        return 0;
    norm_job j = {x->data, w ? w->data : NULL, NULL, NULL, NULL, y->data, dim, eps};
    cpu_parallel_for(cpu_of(be), au_rows(x), 4, rmsnorm_range, &j);
    return 0;
}

/* ---- channel RMS norm (VAE) ---- */

typedef struct chnorm_job {
    cpu_state *cs;
    const float *x, *gamma, *bias;
    float *y;
    int64_t C, S;
    int64_t block; /* positions per task */
    au_act act;
} chnorm_job;

static void chnorm_task(void *ctx, int64_t task, int thread) {
    const chnorm_job *j = ctx;
    int64_t begin = task * j->block, end = begin + j->block < j->S ? begin + j->block : j->S;
    float *inv = j->cs->scratch[thread]; /* per position 1/max(norm, 1e-12) * sqrt(C) */
    int64_t n = end - begin;
    double *acc = (double *)(inv + ((n + 1) & ~(int64_t)1));
    for (int64_t s = 0; s < n; s++)
        acc[s] = 0.0;
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + begin;
        for (int64_t s = 0; s < n; s++)
            acc[s] += (double)x[s] * x[s];
    }
    double root_c = sqrt((double)j->C);
    for (int64_t s = 0; s < n; s++) {
        double norm = sqrt(acc[s]);
        inv[s] = (float)(root_c / (norm > 1e-12 ? norm : 1e-12));
    }
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + begin;
        float *y = j->y + c * j->S + begin;
        float g = j->gamma[c], b = j->bias ? j->bias[c] : 0.0f;
        for (int64_t s = 0; s < n; s++)
            y[s] = x[s] * inv[s] * g + b;
        cpu_act_apply(y, n, j->act);
    }
}

#define CHNORM_BLOCK 2048 /* positions per task */

int cpu_rmsnorm_channels(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                         const au_tensor *bias, au_act act, au_err *err) {
    const char *op = "rmsnorm_channels";
    cpu_state *cs = cpu_of(be);
    int rc;
    if ((rc = check_same(op, y, x, err)) < 0 || (rc = cpu_check_f32(op, "gamma", gamma, err)) < 0)
        return rc;
    int64_t C = x->shape[0];
    if ((rc = cpu_check_vec(op, "gamma", gamma, C, err)) < 0 ||
        (bias && (rc = cpu_check_vec(op, "bias", bias, C, err)) < 0))
        return rc;
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    if (C == 0)
        return 0;
    int64_t S = au_numel(x) / C;
    if ((rc = cpu_scratch_reserve(cs, (size_t)(CHNORM_BLOCK + 2) * (sizeof(float) + sizeof(double)), op,
                                  err)) < 0)
        return rc;
    int64_t T = cs->n_threads;
    int64_t block = (S + 4 * T - 1) / (4 * T);
    block = block > CHNORM_BLOCK ? CHNORM_BLOCK : (block < 64 ? 64 : block);
    chnorm_job j = {cs, x->data, gamma->data, bias ? bias->data : NULL, y->data, C, S, block, act};
    tp_run(cs->pool, (S + block - 1) / block, chnorm_task, &j);
    return 0;
}

/* ---- rope ---- */

typedef struct rope_job {
    float *x;
    const float *cs;
    int64_t n_heads, head_dim;
} rope_job;

static void rope_range(void *ctx, int64_t begin, int64_t end, int thread) {
    const rope_job *j = ctx;
    int64_t half = j->head_dim / 2, row = j->n_heads * j->head_dim;
    for (int64_t t = begin; t < end; t++) {
        const float *cs = j->cs + t * half * 2;
        for (int64_t h = 0; h < j->n_heads; h++) {
            float *x = j->x + t * row + h * j->head_dim;
            for (int64_t i = 0; i < half; i++) {
                float a = x[2 * i], b = x[2 * i + 1], c = cs[2 * i], s = cs[2 * i + 1];
                x[2 * i] = a * c - b * s;
                x[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

int cpu_rope(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err) {
    const char *op = "rope";
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "cossin", cossin, err)) < 0)
        return rc;
    char sx[96], sc[96];
    int64_t row = x->shape[x->ndim - 1], n = au_rows(x);
    if (n_heads < 1 || row % n_heads != 0 || (row / n_heads) % 2 != 0 ||
        au_numel(cossin) != n * (row / n_heads))
        return au_errf(
            err, AU_EINVAL,
            "%s: x %s, cossin %s, %d heads: expected x [n, H*D] with D even and cossin [n, D/2, 2]", op,
            au_shape_str(x, sx, sizeof sx), au_shape_str(cossin, sc, sizeof sc), n_heads);
    rope_job j = {x->data, cossin->data, n_heads, row / n_heads};
    cpu_parallel_for(cpu_of(be), n, 16, rope_range, &j);
    return 0;
}

/* ---- rmsnorm + rope ---- */

/* The reference composition: the CPU backend is float32 throughout, so one pass or two agree. */
int cpu_rmsnorm_rope(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                     const au_tensor *cossin, int n_heads, au_err *err) {
    int rc = cpu_rmsnorm(be, y, x, w, eps, err);
    return rc < 0 ? rc : cpu_rope(be, y, cossin, n_heads, err);
}

/* ---- residual + layernorm ---- */

/* The reference composition, as for rmsnorm_rope. */
int cpu_add_gated_layernorm(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_tensor *h,
                            const au_tensor *w, const au_tensor *b, const au_tensor *shift, const au_tensor *scale,
                            float eps, au_err *err) {
    int rc = cpu_add_gated(be, x, y, gate, err);
    return rc < 0 ? rc : cpu_layernorm(be, h, x, w, b, shift, scale, eps, err);
}
