/* sampler.c - UniPC (bh2, order 2) and Euler flow-matching samplers (see sampler.h).
 *
 * UniPC with data prediction. Per step i, with s0 = sigma_i, st = sigma_{i+1},
 * alpha = 1 - sigma, lambda(s) = log(1 - s) - log(s), h = lambda(st) - lambda(s0),
 * hh = -h, B = expm1(hh) (bh2; the official phi_1 is the same expm1(hh)):
 *   m_i = x_i - s0 * v_i
 *   corrector (i > 0) with the previous predictor's order q, anchored one step back
 *   (s0 = sigma_{i-1}, st = sigma_i, x_c = the sample that predictor started from):
 *     base = (st/s0) x_c - alpha_t B m_{i-1}
 *     q = 1: x_i <- base - alpha_t B * 0.5 (m_i - m_{i-1})
 *     q = 2: rk = (lambda(sigma_{i-2}) - lambda(s0)) / h, D1 = (m_{i-2} - m_{i-1}) / rk,
 *            rho = solve([[1, 1], [rk, 1]], [b0, b1]),
 *            b0 = (B/hh - 1) / B, b1 = 2 ((B/hh - 1)/hh - 1/2) / B,
 *            x_i <- base - alpha_t B (rho0 D1 + rho1 (m_i - m_{i-1}))
 *   predictor of order p = min(2, n - i, i + 1) from the (corrected) x_i:
 *     x_{i+1} = (st/s0) x_i - alpha_t B m_i [- alpha_t B * 0.5 (m_{i-1} - m_i) / rk,
 *                                             rk = (lambda(sigma_{i-1}) - lambda(s0)) / h]
 * On the last step st = 0: lambda = +inf, B = -1, so x_n = m_{n-1}.
 * Each update is folded into one be_lincomb whose float32 coefficients are computed
 * on the host in the official order of operations; the tensor results then differ
 * from the official torch code only by float32 rounding (1e-7 relative).
 *
 * One op sequence for every step (so one recording serves them all): with m, m1, m2 the
 * predictions m_i, m_{i-1}, m_{i-2} and the step's row c of coefficients,
 *   m    = c0 x + c1 v
 *   last = c2 last + c3 m1 + c4 m2 + c5 m + c6 x      (the corrector; step 0: last = x)
 *   x    = c7 last + c8 m + c9 m1                      (the predictor)
 *   m2 = m1, m1 = m
 * the terms an order-1 step or step 0 does not have taking coefficient 0 (the history starts
 * as zeros, so 0 times it is 0; x + 0 is x exactly). Euler is x = c0 x + c1 v. The rows of
 * every step are computed at create time; sampler_load uploads one.
 *
 * Memory: m, m1, m2, last and the coefficient row, all from state_arena at create time.
 */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

#define N_TRAIN_TIMESTEPS 1000

/* The coefficient row of a step (layout in the comment at the top). */
enum { C_M = 0, C_LAST = 2, C_X = 7, N_COEF = 10 };

struct au_sampler {
    au_backend *be;
    au_sampler_kind kind;
    int n_steps;
    int64_t *timesteps;  /* [n_steps] */
    float *sigmas;       /* [n_steps + 1], sigmas[n_steps] = 0 */
    float *coefs;        /* [n_steps][N_COEF] */
    au_tensor latent;    /* shape reference (no data) */
    au_tensor coef;      /* [N_COEF] float32: the loaded step's row */
    au_tensor m, m1, m2; /* UniPC: x0 predictions m_i, m_{i-1}, m_{i-2} */
    au_tensor last;      /* UniPC: sample the previous predictor started from */
    int next_step;       /* the step sampler_load takes next */
};

int sampler_kind_from_name(const char *name, au_sampler_kind *out) {
    if (name && strcmp(name, "unipc") == 0) {
        *out = AU_SAMPLER_UNIPC;
        return 0;
    }
    if (name && strcmp(name, "euler") == 0) {
        *out = AU_SAMPLER_EULER;
        return 0;
    }
    return AU_EINVAL;
}

/* a * b as its own rounded double: numpy never fuses the multiply with the following
 * add, so neither may we (aarch64 compilers contract into FMA by default). */
static double mul_rounded(double a, double b) {
    volatile double p = a * b;
    return p;
}

/* The double the official code sees for a shift typed as a decimal: the shortest decimal
 * string that reads back as the same float (9 significant digits always do). */
static double shift_decimal(float shift) {
    char buf[32];
    for (int digits = 1; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)shift);
        double d = strtod(buf, NULL);
        if ((float)d == shift)
            return d;
    }
    snprintf(buf, sizeof buf, "%.9g", (double)shift);
    return strtod(buf, NULL);
}

/* Fill timesteps [n] and sigmas [n + 1] (formulas in sampler.h). */
static void make_schedule(int n, double shift, int64_t *timesteps, float *sigmas) {
    const double sigma_max = (double)(float)(1.0 - 1.0 / N_TRAIN_TIMESTEPS);
    const double step = (0.0 - sigma_max) / n;
    for (int i = 0; i < n; i++) {
        double s = mul_rounded((double)i, step) + sigma_max;
        double shifted = mul_rounded(shift, s) / (1.0 + mul_rounded(shift - 1.0, s));
        timesteps[i] = (int64_t)(shifted * N_TRAIN_TIMESTEPS);
        sigmas[i] = (float)shifted;
    }
    sigmas[n] = 0.0f;
}

static float lambda_of(float sigma) { return logf(1.0f - sigma) - logf(sigma); }

/* Scalars shared by the predictor and the corrector for the interval s0 -> st. */
typedef struct unipc_coef {
    float ratio;  /* st / s0 */
    float a_b;    /* alpha_t * B: multiplies m0 in the base and the correction terms */
    float h;      /* lambda(st) - lambda(s0) */
    float hh;     /* -h */
    float b;      /* B = expm1(hh) */
} unipc_coef;

static unipc_coef unipc_interval(float s0, float st) {
    unipc_coef c;
    c.ratio = st / s0;
    c.h = lambda_of(st) - lambda_of(s0);
    c.hh = -c.h;
    c.b = expm1f(c.hh);
    c.a_b = (1.0f - st) * c.b;
    return c;
}

/* rho of the order-2 corrector: solve [[1, 1], [rk, 1]] rho = [b0, b1]. */
static void corrector_rho(const unipc_coef *c, float rk, float rho[2]) {
    float phi = c->b / c->hh - 1.0f;
    float b0 = phi / c->b;
    phi = phi / c->hh - 0.5f;
    float b1 = phi * 2.0f / c->b;
    double det = 1.0 - (double)rk;
    rho[0] = (float)(((double)b0 - (double)b1) / det);
    rho[1] = (float)(((double)b1 - (double)rk * b0) / det);
}

/* Order of the predictor of step i of n: 2, but 1 on the first step (warm-up) and the last
 * (lower_order_final). */
static int unipc_order(int n, int i) {
    int order = 2;
    if (n - i < order)
        order = n - i;
    if (i + 1 < order)
        order = i + 1;
    return order;
}

/* c [5] (zeroed) for last = c0 last + c1 m_{i-1} + c2 m_{i-2} + c3 m_i + c4 x: the corrected x_i
 * after a predictor of order q; on step 0 last = x. */
static void unipc_correct_coef(const float *sig, int i, int q, float *c) {
    if (i == 0) {
        c[4] = 1.0f;
        return;
    }
    unipc_coef k = unipc_interval(sig[i - 1], sig[i]);
    if (q == 1) { /* base - a_b * 0.5 (m_i - m_{i-1}) */
        float half = k.a_b * 0.5f;
        c[0] = k.ratio;
        c[1] = -k.a_b + half;
        c[3] = -half;
        return;
    }
    float rk = (lambda_of(sig[i - 2]) - lambda_of(sig[i - 1])) / k.h;
    float rho[2];
    corrector_rho(&k, rk, rho);
    /* base - a_b (rho0 (m_{i-2} - m_{i-1}) / rk + rho1 (m_i - m_{i-1})) */
    float k1 = k.a_b * rho[0] / rk, kt = k.a_b * rho[1];
    c[0] = k.ratio;
    c[1] = -k.a_b + k1 + kt;
    c[2] = -k1;
    c[3] = -kt;
}

/* c [3] (zeroed) for x_{i+1} = c0 last + c1 m_i + c2 m_{i-1}, last being the corrected x_i. */
static void unipc_predict_coef(const float *sig, int i, int order, float *c) {
    unipc_coef k = unipc_interval(sig[i], sig[i + 1]);
    c[0] = k.ratio;
    if (order == 1) {
        c[1] = -k.a_b;
        return;
    }
    /* base - a_b * 0.5 (m_{i-1} - m_i) / rk */
    float rk = (lambda_of(sig[i - 1]) - lambda_of(sig[i])) / k.h;
    float k1 = k.a_b * 0.5f / rk;
    c[1] = -k.a_b + k1;
    c[2] = -k1;
}

/* Every step's coefficient row into s->coefs (zeroed). */
static void make_coefs(au_sampler *s) {
    const float *sig = s->sigmas;
    for (int i = 0; i < s->n_steps; i++) {
        float *c = s->coefs + (size_t)i * N_COEF;
        if (s->kind == AU_SAMPLER_EULER) {
            c[0] = 1.0f;
            c[1] = sig[i + 1] - sig[i];
            continue;
        }
        c[C_M] = 1.0f;
        c[C_M + 1] = -sig[i];
        unipc_correct_coef(sig, i, i > 0 ? unipc_order(s->n_steps, i - 1) : 0, c + C_LAST);
        unipc_predict_coef(sig, i, unipc_order(s->n_steps, i), c + C_X);
    }
}

int sampler_create(au_sampler **out, au_backend *be, au_arena *state_arena, au_sampler_kind kind, int n_steps,
                   float shift, const au_tensor *latent_like, au_err *err) {
    *out = NULL;
    if (kind != AU_SAMPLER_UNIPC && kind != AU_SAMPLER_EULER)
        return au_errf(err, AU_EINVAL, "sampler: unknown kind %d", (int)kind);
    if (n_steps < 1)
        return au_errf(err, AU_EINVAL, "sampler: steps must be >= 1, got %d", n_steps);
    if (!(shift > 0.0f) || !isfinite(shift))
        return au_errf(err, AU_EINVAL, "sampler: shift must be a finite number > 0, got %g", (double)shift);
    if (latent_like->dtype != AU_F32)
        return au_errf(err, AU_EINVAL, "sampler: latent must be f32, got %s", au_dtype_name(latent_like->dtype));

    au_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return au_errf(err, AU_ENOMEM, "sampler: out of host memory");
    s->timesteps = malloc(sizeof *s->timesteps * (size_t)n_steps);
    s->sigmas = malloc(sizeof *s->sigmas * ((size_t)n_steps + 1));
    s->coefs = calloc((size_t)n_steps * N_COEF, sizeof *s->coefs);
    if (!s->timesteps || !s->sigmas || !s->coefs) {
        sampler_free(s);
        return au_errf(err, AU_ENOMEM, "sampler: out of host memory for %d steps", n_steps);
    }
    s->be = be;
    s->kind = kind;
    s->n_steps = n_steps;
    s->latent = au_tensor_make(AU_F32, NULL, latent_like->ndim, latent_like->shape);
    make_schedule(n_steps, shift_decimal(shift), s->timesteps, s->sigmas);
    for (int i = 0; i < n_steps; i++) {
        /* UniPC divides by lambda differences: equal neighbours would be a 0/0. */
        if (!(s->sigmas[i + 1] < s->sigmas[i])) {
            sampler_free(s);
            return au_errf(err, AU_EINVAL, "sampler: %d steps at shift %g give equal float32 sigmas at step %d",
                           n_steps, (double)shift, i);
        }
    }
    make_coefs(s);
    const int64_t n_coef = N_COEF;
    int rc = be_arena_tensor(state_arena, AU_F32, 1, &n_coef, &s->coef, err);
    if (kind == AU_SAMPLER_UNIPC) {
        au_tensor *hist[4] = {&s->m, &s->m1, &s->m2, &s->last};
        for (int k = 0; k < 4 && rc == 0; k++) {
            rc = be_arena_tensor(state_arena, AU_F32, latent_like->ndim, latent_like->shape, hist[k], err);
            if (rc == 0 && k > 0) /* read (times 0) before the first write */
                rc = be_fill(be, hist[k], 0.0f, err);
        }
    }
    if (rc < 0) {
        sampler_free(s);
        return au_err_prefix(err, "sampler state");
    }
    *out = s;
    return 0;
}

void sampler_free(au_sampler *s) {
    if (!s)
        return;
    free(s->timesteps);
    free(s->sigmas);
    free(s->coefs);
    free(s);
}

int sampler_n_steps(const au_sampler *s) { return s->n_steps; }

float sampler_timestep(const au_sampler *s, int step) {
    if (step < 0 || step >= s->n_steps)
        return NAN;
    return (float)s->timesteps[step];
}

float sampler_sigma(const au_sampler *s, int i) {
    if (i < 0 || i > s->n_steps)
        return NAN;
    return s->sigmas[i];
}

static int check_latent(const au_sampler *s, const char *what, const au_tensor *t, au_err *err) {
    if (t->dtype == AU_F32 && au_same_shape(t, &s->latent))
        return 0;
    char want[96], got[96];
    return au_errf(err, AU_EINVAL, "sampler: %s: expected %s, got %s", what,
                   au_shape_str(&s->latent, want, sizeof want), au_shape_str(t, got, sizeof got));
}

int sampler_load(au_sampler *s, int step, au_err *err) {
    if (step != s->next_step || step >= s->n_steps)
        return au_errf(err, AU_ECONFLICT, "sampler: step %d called, expected step %d of %d", step, s->next_step,
                       s->n_steps);
    if (be_upload(s->be, &s->coef, s->coefs + (size_t)step * N_COEF, err) < 0)
        return au_err_prefix(err, "sampler step %d", step);
    s->next_step++;
    return 0;
}

/* y = sum of xs[k] times the loaded coefficients c0.. c0 + n - 1. */
static int lincomb(au_sampler *s, au_tensor *y, int n, const au_tensor *const *xs, int c0, au_err *err) {
    const au_tensor c = au_view_rows(&s->coef, c0, n);
    return be_lincomb(s->be, y, n, xs, &c, err);
}

static int unipc_apply(au_sampler *s, au_tensor *x, const au_tensor *v, au_err *err) {
    const au_tensor *pred[2] = {x, v};
    const au_tensor *corr[5] = {&s->last, &s->m1, &s->m2, &s->m, x};
    const au_tensor *next[3] = {&s->last, &s->m, &s->m1};
    int rc;
    if ((rc = lincomb(s, &s->m, 2, pred, C_M, err)) < 0 || (rc = lincomb(s, &s->last, 5, corr, C_LAST, err)) < 0 ||
        (rc = lincomb(s, x, 3, next, C_X, err)) < 0 || (rc = be_copy(s->be, &s->m2, &s->m1, err)) < 0 ||
        (rc = be_copy(s->be, &s->m1, &s->m, err)) < 0)
        return rc;
    return 0;
}

int sampler_apply(au_sampler *s, au_tensor *x, const au_tensor *v, au_err *err) {
    int rc;
    if (s->next_step == 0)
        return au_errf(err, AU_ECONFLICT, "sampler: no step loaded");
    if ((rc = check_latent(s, "x", x, err)) < 0 || (rc = check_latent(s, "v", v, err)) < 0)
        return rc;
    if (s->kind == AU_SAMPLER_EULER) {
        const au_tensor *xs[2] = {x, v};
        rc = lincomb(s, x, 2, xs, C_M, err);
    } else {
        rc = unipc_apply(s, x, v, err);
    }
    return rc < 0 ? au_err_prefix(err, "sampler step %d", s->next_step - 1) : 0;
}

int sampler_step(au_sampler *s, int step, au_tensor *x, const au_tensor *v, au_err *err) {
    int rc;
    if ((rc = check_latent(s, "x", x, err)) < 0 || (rc = check_latent(s, "v", v, err)) < 0 ||
        (rc = sampler_load(s, step, err)) < 0)
        return rc;
    return sampler_apply(s, x, v, err);
}

uint64_t sampler_replay_key(const au_sampler *s, uint64_t key) {
    key = replay_key_i64(key, s->kind);
    const au_tensor *ts[5] = {&s->coef, &s->m, &s->m1, &s->m2, &s->last};
    for (int i = 0; i < 5; i++)
        key = replay_key_ptr(key, ts[i]->data);
    return key;
}
