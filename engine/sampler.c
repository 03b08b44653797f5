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
 * Memory: UniPC keeps m in a ring of three latents (m_i in slot i % 3) and the last
 * sample, all from state_arena at create time.
 */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TRAIN_TIMESTEPS 1000

struct au_sampler {
    au_backend *be;
    au_sampler_kind kind;
    int n_steps;
    int64_t *timesteps; /* [n_steps] */
    float *sigmas;      /* [n_steps + 1], sigmas[n_steps] = 0 */
    au_tensor latent;   /* shape reference (no data) */
    au_tensor m[3];     /* UniPC: x0 predictions, m_i in m[i % 3] */
    au_tensor last;     /* UniPC: sample the previous predictor started from */
    int next_step;
    int prev_order;
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
    if (!s->timesteps || !s->sigmas) {
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
    if (kind == AU_SAMPLER_UNIPC) {
        for (int k = 0; k < 4; k++) {
            au_tensor *t = k < 3 ? &s->m[k] : &s->last;
            int rc = be_arena_tensor(state_arena, AU_F32, latent_like->ndim, latent_like->shape, t, err);
            if (rc < 0) {
                sampler_free(s);
                return au_err_prefix(err, "sampler history");
            }
        }
    }
    *out = s;
    return 0;
}

void sampler_free(au_sampler *s) {
    if (!s)
        return;
    free(s->timesteps);
    free(s->sigmas);
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

static float lambda_of(float sigma) { return logf(1.0f - sigma) - logf(sigma); }

/* y = sum coef[k] * xs[k] through the backend. */
static int lincomb(au_sampler *s, au_tensor *y, int n, const au_tensor *const *xs, const float *coef,
                   au_err *err) {
    int rc = be_lincomb(s->be, y, n, xs, coef, err);
    return rc < 0 ? au_err_prefix(err, "sampler step %d", s->next_step) : 0;
}

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

/* last <- corrected x_i from last, m_{i-1}, m_{i-2} (order 2 only) and m_i. */
static int unipc_correct(au_sampler *s, int i, au_err *err) {
    const float *sig = s->sigmas;
    unipc_coef c = unipc_interval(sig[i - 1], sig[i]);
    const au_tensor *m_t = &s->m[i % 3], *m0 = &s->m[(i + 2) % 3];
    if (s->prev_order == 1) {
        /* base - a_b * 0.5 (m_t - m0) */
        const au_tensor *xs[3] = {&s->last, m0, m_t};
        float half = c.a_b * 0.5f;
        const float coef[3] = {c.ratio, -c.a_b + half, -half};
        return lincomb(s, &s->last, 3, xs, coef, err);
    }
    const au_tensor *m1 = &s->m[(i + 1) % 3]; /* m_{i-2} */
    float rk = (lambda_of(sig[i - 2]) - lambda_of(sig[i - 1])) / c.h;
    float rho[2];
    corrector_rho(&c, rk, rho);
    /* base - a_b (rho0 (m1 - m0) / rk + rho1 (m_t - m0)) */
    float k1 = c.a_b * rho[0] / rk, kt = c.a_b * rho[1];
    const au_tensor *xs[4] = {&s->last, m0, m1, m_t};
    const float coef[4] = {c.ratio, -c.a_b + k1 + kt, -k1, -kt};
    return lincomb(s, &s->last, 4, xs, coef, err);
}

/* x <- x_{i+1} from last (= x_i after correction), m_i and m_{i-1} (order 2). */
static int unipc_predict(au_sampler *s, int i, int order, au_tensor *x, au_err *err) {
    const float *sig = s->sigmas;
    unipc_coef c = unipc_interval(sig[i], sig[i + 1]);
    const au_tensor *m0 = &s->m[i % 3];
    if (order == 1) {
        const au_tensor *xs[2] = {&s->last, m0};
        const float coef[2] = {c.ratio, -c.a_b};
        return lincomb(s, x, 2, xs, coef, err);
    }
    const au_tensor *m1 = &s->m[(i + 2) % 3]; /* m_{i-1} */
    float rk = (lambda_of(sig[i - 1]) - lambda_of(sig[i])) / c.h;
    /* base - a_b * 0.5 (m1 - m0) / rk */
    float k1 = c.a_b * 0.5f / rk;
    const au_tensor *xs[3] = {&s->last, m0, m1};
    const float coef[3] = {c.ratio, -c.a_b + k1, -k1};
    return lincomb(s, x, 3, xs, coef, err);
}

static int unipc_step(au_sampler *s, int i, au_tensor *x, const au_tensor *v, au_err *err) {
    int rc;
    const au_tensor *xv[2] = {x, v};
    const float conv[2] = {1.0f, -s->sigmas[i]};
    if ((rc = lincomb(s, &s->m[i % 3], 2, xv, conv, err)) < 0)
        return rc;
    if (i > 0)
        rc = unipc_correct(s, i, err);
    else
        rc = be_copy(s->be, &s->last, x, err) < 0 ? au_err_prefix(err, "sampler step 0") : 0;
    if (rc < 0)
        return rc;
    int order = 2;
    if (s->n_steps - i < order)
        order = s->n_steps - i;
    if (i + 1 < order)
        order = i + 1;
    s->prev_order = order;
    return unipc_predict(s, i, order, x, err);
}

static int check_latent(const au_sampler *s, const char *what, const au_tensor *t, au_err *err) {
    if (t->dtype == AU_F32 && au_same_shape(t, &s->latent))
        return 0;
    char want[96], got[96];
    return au_errf(err, AU_EINVAL, "sampler: %s: expected %s, got %s", what,
                   au_shape_str(&s->latent, want, sizeof want), au_shape_str(t, got, sizeof got));
}

int sampler_step(au_sampler *s, int step, au_tensor *x, const au_tensor *v, au_err *err) {
    if (step != s->next_step || step >= s->n_steps)
        return au_errf(err, AU_ECONFLICT, "sampler: step %d called, expected step %d of %d", step, s->next_step,
                       s->n_steps);
    int rc;
    if ((rc = check_latent(s, "x", x, err)) < 0 || (rc = check_latent(s, "v", v, err)) < 0)
        return rc;
    if (s->kind == AU_SAMPLER_EULER) {
        const au_tensor *xs[2] = {x, v};
        const float coef[2] = {1.0f, s->sigmas[step + 1] - s->sigmas[step]};
        rc = lincomb(s, x, 2, xs, coef, err);
    } else {
        rc = unipc_step(s, step, x, v, err);
    }
    if (rc < 0)
        return rc;
    s->next_step++;
    return 0;
}
