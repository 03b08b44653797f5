// deps: au_dit au_cpu au_io au_core
/* test_dit_alloc.c - the Wan2.1 DiT on tiny random weights, CPU backend.
 *
 * Random weights under the official key names are written with st_write (dim 256 =
 * 2 heads of 128, so the real 22/21/21 RoPE split is used; 2 layers). Checked:
 *  - the RoPE table and the time sinusoid against their formulas at chosen points;
 *  - dit_config_infer recovers every size from the shapes;
 *  - a forward matches a plain double-precision re-implementation written here
 *    (max relative error printed and bounded);
 *  - a second forward of the same shapes makes no arena allocation and gives
 *    bit-identical output; timestep and prompt both change the output;
 *  - bad inputs (odd H, wrong out shape, text living in the activation arena,
 *    too many text rows) and a misshapen or missing tensor fail naming the thing.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "rope.h"
#include "safetensors.h"
#include "wan_dit.h"
#include "check.h"

enum { D = 256, HEADS = 2, HD = D / HEADS, FFN = 512, FREQ = 64, CIN = 4, COUT = 4, TXT = 32, LAYERS = 2 };
enum { TEXT_LEN = 512, PT = 1, PH = 2, PW = 2, PV = PT * PH * PW };
enum { LF = 2, LH = 4, LW = 6, GF = LF / PT, GH = LH / PH, GW = LW / PW, NTOK = GF * GH * GW };
enum { L_CTX = 5 };

/* ---- random weights, kept as host float32 by name ---- */

typedef struct weight {
    char name[96];
    int ndim;
    int64_t shape[5];
    float *data;
} weight;

static weight weights[16 + 32 * LAYERS];
static int n_weights;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float urand(void) { /* [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* A tensor of uniform values center +- spread. */
static void wnew(float center, float spread, int ndim, const int64_t *shape, const char *fmt, ...) {
    weight *w = &weights[n_weights++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->name, sizeof w->name, fmt, ap);
    va_end(ap);
    w->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (w->shape[i] = shape[i]);
    w->data = malloc((size_t)n * sizeof(float));
    REQUIRE(w->data, "out of memory");
    for (int64_t i = 0; i < n; i++)
        w->data[i] = center + spread * urand();
}

static const float *wget(const char *fmt, ...) {
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < n_weights; i++)
        if (!strcmp(weights[i].name, name))
            return weights[i].data;
    REQUIRE(0, "test weight %s missing", name);
    return NULL;
}

/* Linear out x in with bias: uniform weights of std 1/sqrt(in) (spread sqrt(3) std). */
static void wlinear(int64_t out, int64_t in, const char *prefix) {
    int64_t ws[2] = {out, in}, bs[1] = {out};
    wnew(0.0f, 1.732f / sqrtf((float)in), 2, ws, "%s.weight", prefix);
    wnew(0.0f, 0.1f, 1, bs, "%s.bias", prefix);
}

static void make_weights(void) {
    int64_t pe[5] = {D, CIN, PT, PH, PW}, vec[1] = {D}, m6[3] = {1, 6, D}, m2[3] = {1, 2, D};
    wnew(0.0f, 1.732f / sqrtf(CIN * PV), 5, pe, "patch_embedding.weight");
    wnew(0.0f, 0.1f, 1, vec, "patch_embedding.bias");
    wlinear(D, TXT, "text_embedding.0");
    wlinear(D, D, "text_embedding.2");
    wlinear(D, FREQ, "time_embedding.0");
    wlinear(D, D, "time_embedding.2");
    wlinear(6 * D, D, "time_projection.1");
    char p[96];
    for (int i = 0; i < LAYERS; i++) {
        const char *att[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            for (const char *x = "qkvo"; *x; x++) {
                snprintf(p, sizeof p, "blocks.%d.%s.%c", i, att[a], *x);
                wlinear(D, D, p);
            }
            wnew(1.0f, 0.3f, 1, vec, "blocks.%d.%s.norm_q.weight", i, att[a]);
            wnew(1.0f, 0.3f, 1, vec, "blocks.%d.%s.norm_k.weight", i, att[a]);
        }
        wnew(1.0f, 0.3f, 1, vec, "blocks.%d.norm3.weight", i);
        wnew(0.0f, 0.2f, 1, vec, "blocks.%d.norm3.bias", i);
        snprintf(p, sizeof p, "blocks.%d.ffn.0", i);
        wlinear(FFN, D, p);
        snprintf(p, sizeof p, "blocks.%d.ffn.2", i);
        wlinear(D, FFN, p);
        wnew(0.0f, 1.732f / 16.0f, 3, m6, "blocks.%d.modulation", i);
    }
    wlinear(COUT * PV, D, "head.head");
    wnew(0.0f, 1.732f / 16.0f, 3, m2, "head.modulation");
}

/* Write all weights, leaving out `skip` and giving `reshape` half its columns (NULL: none). */
static void write_weights(const char *path, const char *skip, const char *reshape) {
    st_entry e[sizeof weights / sizeof weights[0]];
    int n = 0;
    for (int i = 0; i < n_weights; i++) {
        if (skip && !strcmp(weights[i].name, skip))
            continue;
        e[n].name = weights[i].name;
        e[n].tensor = au_tensor_make(AU_F32, weights[i].data, weights[i].ndim, weights[i].shape);
        if (reshape && !strcmp(weights[i].name, reshape))
            e[n].tensor.shape[e[n].tensor.ndim - 1] /= 2;
        n++;
    }
    au_err err = {0};
    REQUIRE(st_write(path, e, n, NULL, &err) == 0, "st_write %s: %s", path, err.msg);
}

/* ---- plain double-precision forward over the same weights ---- */

static void ref_linear(double *y, const double *x, int n, int in, int out, const char *prefix) {
    const float *w = wget("%s.weight", prefix), *b = wget("%s.bias", prefix);
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++)
                s += (double)w[(size_t)o * in + i] * x[(size_t)r * in + i];
            y[(size_t)r * out + o] = s;
        }
}
static double gelu_tanh(double z) { return 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))); }
static double silu(double z) { return z / (1.0 + exp(-z)); }

/* y = LN(x) (w, b optional) * (1 + scale) + shift, per row of D. */
static void ref_layernorm(double *y, const double *x, int n, const float *w, const float *b, const double *shift,
                          const double *scale) {
    for (int r = 0; r < n; r++) {
        const double *xr = x + (size_t)r * D;
        double mean = 0, var = 0;
        for (int c = 0; c < D; c++)
            mean += xr[c];
        mean /= D;
        for (int c = 0; c < D; c++)
            var += (xr[c] - mean) * (xr[c] - mean);
        double inv = 1.0 / sqrt(var / D + 1e-6);
        for (int c = 0; c < D; c++) {
            double v = (xr[c] - mean) * inv;
            if (w)
                v = v * w[c] + b[c];
            if (scale)
                v = v * (1.0 + scale[c]) + shift[c];
            y[(size_t)r * D + c] = v;
        }
    }
}
static void ref_rms(double *x, int n, const float *w) {
    for (int r = 0; r < n; r++) {
        double ss = 0;
        for (int c = 0; c < D; c++)
            ss += x[(size_t)r * D + c] * x[(size_t)r * D + c];
        double inv = 1.0 / sqrt(ss / D + 1e-6);
        for (int c = 0; c < D; c++)
            x[(size_t)r * D + c] *= inv * w[c];
    }
}
/* RoPE straight from the definition: pair j of axis a rotates by pos_a * 10000^(-2j'/span_a). */
static void ref_rope(double *x) {
    const int c = HD / 2, k = c / 3, pairs[3] = {c - 2 * k, k, k};
    for (int f = 0; f < GF; f++)
        for (int h = 0; h < GH; h++)
            for (int w = 0; w < GW; w++) {
                const int pos[3] = {f, h, w};
                double *row = x + (size_t)((f * GH + h) * GW + w) * D;
                for (int hh = 0; hh < HEADS; hh++) {
                    int pair = 0;
                    for (int a = 0; a < 3; a++)
                        for (int j = 0; j < pairs[a]; j++, pair++) {
                            double ang = pos[a] / pow(10000.0, 2.0 * j / (2.0 * pairs[a]));
                            double *p = row + hh * HD + 2 * pair, re = p[0], im = p[1];
                            p[0] = re * cos(ang) - im * sin(ang);
                            p[1] = re * sin(ang) + im * cos(ang);
                        }
                }
            }
}
static void ref_attention(double *o, const double *q, int nq, const double *k, const double *v, int nk) {
    double *p = malloc((size_t)nk * sizeof *p);
    REQUIRE(p, "out of memory");
    for (int h = 0; h < HEADS; h++)
        for (int i = 0; i < nq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < nk; j++) {
                double s = 0;
                for (int d = 0; d < HD; d++)
                    s += q[(size_t)i * D + h * HD + d] * k[(size_t)j * D + h * HD + d];
                p[j] = s / sqrt((double)HD);
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j < nk; j++)
                sum += (p[j] = exp(p[j] - mx));
            for (int d = 0; d < HD; d++) {
                double acc = 0;
                for (int j = 0; j < nk; j++)
                    acc += p[j] * v[(size_t)j * D + h * HD + d];
                o[(size_t)i * D + h * HD + d] = acc / sum;
            }
        }
    free(p);
}

/* x [CIN, LF, LH, LW], ctx [L_CTX, TXT] -> out [COUT, LF, LH, LW]. */
static void ref_forward(const float *x, double t, const float *ctx, double *out) {
    double *tok = calloc((size_t)NTOK * CIN * PV, sizeof(double)), *hs = calloc((size_t)NTOK * D, sizeof(double));
    double *y = calloc((size_t)NTOK * D, sizeof(double)), *q = calloc((size_t)NTOK * D, sizeof(double));
    double *k = calloc((size_t)NTOK * D, sizeof(double)), *v = calloc((size_t)NTOK * D, sizeof(double));
    double *a = calloc((size_t)NTOK * D, sizeof(double)), *f = calloc((size_t)NTOK * FFN, sizeof(double));
    double *txt = calloc((size_t)TEXT_LEN * TXT, sizeof(double)), *th = calloc((size_t)TEXT_LEN * D, sizeof(double));
    double *tc = calloc((size_t)TEXT_LEN * D, sizeof(double)), *tk = calloc((size_t)TEXT_LEN * D, sizeof(double));
    double *tv = calloc((size_t)TEXT_LEN * D, sizeof(double)), *ho = calloc((size_t)NTOK * COUT * PV, sizeof(double));
    double sinus[FREQ], e1[D], e[D], es[D], e0[6 * D], m[6 * D], n2[2 * D];
    REQUIRE(tok && hs && y && q && k && v && a && f && txt && th && tc && tk && tv && ho, "out of memory");
    /* patches: column (c, kt, kh, kw) */
    for (int gf = 0; gf < GF; gf++)
        for (int gh = 0; gh < GH; gh++)
            for (int gw = 0; gw < GW; gw++)
                for (int c = 0; c < CIN; c++)
                    for (int kt = 0; kt < PT; kt++)
                        for (int kh = 0; kh < PH; kh++)
                            for (int kw = 0; kw < PW; kw++)
                                tok[(size_t)((gf * GH + gh) * GW + gw) * CIN * PV + ((c * PT + kt) * PH + kh) * PW + kw] =
                                    x[((size_t)(c * LF + gf * PT + kt) * LH + gh * PH + kh) * LW + gw * PW + kw];
    ref_linear(hs, tok, NTOK, CIN * PV, D, "patch_embedding");
    for (int i = 0; i < FREQ / 2; i++) {
        double arg = t * pow(10000.0, -(double)i / (FREQ / 2));
        sinus[i] = cos(arg);
        sinus[FREQ / 2 + i] = sin(arg);
    }
    ref_linear(e1, sinus, 1, FREQ, D, "time_embedding.0");
    for (int i = 0; i < D; i++)
        e1[i] = silu(e1[i]);
    ref_linear(e, e1, 1, D, D, "time_embedding.2");
    for (int i = 0; i < D; i++)
        es[i] = silu(e[i]);
    ref_linear(e0, es, 1, D, 6 * D, "time_projection.1");
    for (int i = 0; i < L_CTX * TXT; i++)
        txt[i] = ctx[i];
    ref_linear(th, txt, TEXT_LEN, TXT, D, "text_embedding.0");
    for (int i = 0; i < TEXT_LEN * D; i++)
        th[i] = gelu_tanh(th[i]);
    ref_linear(tc, th, TEXT_LEN, D, D, "text_embedding.2");
    char p[96];
    for (int l = 0; l < LAYERS; l++) {
        const float *mod = wget("blocks.%d.modulation", l);
        for (int i = 0; i < 6 * D; i++)
            m[i] = mod[i] + e0[i];
        ref_layernorm(y, hs, NTOK, NULL, NULL, m, m + D);
        snprintf(p, sizeof p, "blocks.%d.self_attn.q", l), ref_linear(q, y, NTOK, D, D, p);
        snprintf(p, sizeof p, "blocks.%d.self_attn.k", l), ref_linear(k, y, NTOK, D, D, p);
        snprintf(p, sizeof p, "blocks.%d.self_attn.v", l), ref_linear(v, y, NTOK, D, D, p);
        ref_rms(q, NTOK, wget("blocks.%d.self_attn.norm_q.weight", l));
        ref_rms(k, NTOK, wget("blocks.%d.self_attn.norm_k.weight", l));
        ref_rope(q);
        ref_rope(k);
        ref_attention(a, q, NTOK, k, v, NTOK);
        snprintf(p, sizeof p, "blocks.%d.self_attn.o", l), ref_linear(y, a, NTOK, D, D, p);
        for (int i = 0; i < NTOK * D; i++)
            hs[i] += y[i] * m[2 * D + i % D];
        ref_layernorm(y, hs, NTOK, wget("blocks.%d.norm3.weight", l), wget("blocks.%d.norm3.bias", l), NULL, NULL);
        snprintf(p, sizeof p, "blocks.%d.cross_attn.q", l), ref_linear(q, y, NTOK, D, D, p);
        snprintf(p, sizeof p, "blocks.%d.cross_attn.k", l), ref_linear(tk, tc, TEXT_LEN, D, D, p);
        snprintf(p, sizeof p, "blocks.%d.cross_attn.v", l), ref_linear(tv, tc, TEXT_LEN, D, D, p);
        ref_rms(q, NTOK, wget("blocks.%d.cross_attn.norm_q.weight", l));
        ref_rms(tk, TEXT_LEN, wget("blocks.%d.cross_attn.norm_k.weight", l));
        ref_attention(a, q, NTOK, tk, tv, TEXT_LEN);
        snprintf(p, sizeof p, "blocks.%d.cross_attn.o", l), ref_linear(y, a, NTOK, D, D, p);
        for (int i = 0; i < NTOK * D; i++)
            hs[i] += y[i];
        ref_layernorm(y, hs, NTOK, NULL, NULL, m + 3 * D, m + 4 * D);
        snprintf(p, sizeof p, "blocks.%d.ffn.0", l), ref_linear(f, y, NTOK, D, FFN, p);
        for (int i = 0; i < NTOK * FFN; i++)
            f[i] = gelu_tanh(f[i]);
        snprintf(p, sizeof p, "blocks.%d.ffn.2", l), ref_linear(y, f, NTOK, FFN, D, p);
        for (int i = 0; i < NTOK * D; i++)
            hs[i] += y[i] * m[5 * D + i % D];
    }
    const float *hm = wget("head.modulation");
    for (int i = 0; i < 2 * D; i++)
        n2[i] = hm[i] + e[i % D];
    ref_layernorm(y, hs, NTOK, NULL, NULL, n2, n2 + D);
    ref_linear(ho, y, NTOK, D, COUT * PV, "head.head");
    /* unpatchify: token channels ordered (kt, kh, kw, c) */
    for (int gf = 0; gf < GF; gf++)
        for (int gh = 0; gh < GH; gh++)
            for (int gw = 0; gw < GW; gw++)
                for (int kt = 0; kt < PT; kt++)
                    for (int kh = 0; kh < PH; kh++)
                        for (int kw = 0; kw < PW; kw++)
                            for (int c = 0; c < COUT; c++)
                                out[((size_t)(c * LF + gf * PT + kt) * LH + gh * PH + kh) * LW + gw * PW + kw] =
                                    ho[(size_t)((gf * GH + gh) * GW + gw) * COUT * PV + ((kt * PH + kh) * PW + kw) * COUT + c];
    free(tok), free(hs), free(y), free(q), free(k), free(v), free(a), free(f);
    free(txt), free(th), free(tc), free(tk), free(tv), free(ho);
}

/* ---- checks ---- */

static void test_rope_table(void) {
    int pairs[3];
    rope_axis_pairs(128, pairs);
    REQUIRE(pairs[0] == 22 && pairs[1] == 21 && pairs[2] == 21, "128 -> %d/%d/%d", pairs[0], pairs[1], pairs[2]);
    rope_axis_pairs(16, pairs);
    REQUIRE(pairs[0] == 4 && pairs[1] == 2 && pairs[2] == 2, "16 -> %d/%d/%d", pairs[0], pairs[1], pairs[2]);

    enum { F = 3, H = 4, W = 6 };
    float *tab = malloc(sizeof(float) * F * H * W * 128);
    au_err err = {0};
    REQUIRE(tab && rope_wan_table(tab, F, H, W, 128, 10000.0, &err) == 0, "%s", err.msg);
    /* token (f, h, w) = (2, 3, 5): pair -> expected angle */
    const float *row = tab + (size_t)((2 * H + 3) * W + 5) * 128;
    struct {
        int pair;
        double angle;
    } want[] = {
        {0, 2.0},  {1, 2.0 * pow(10000.0, -2.0 / 44)},  {21, 2.0 * pow(10000.0, -42.0 / 44)},
        {22, 3.0}, {23, 3.0 * pow(10000.0, -2.0 / 42)}, {42, 3.0 * pow(10000.0, -40.0 / 42)},
        {43, 5.0}, {44, 5.0 * pow(10000.0, -2.0 / 42)}, {63, 5.0 * pow(10000.0, -40.0 / 42)},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const float *cs = row + 2 * want[i].pair;
        REQUIRE(fabs(cs[0] - cos(want[i].angle)) < 1e-7 && fabs(cs[1] - sin(want[i].angle)) < 1e-7,
              "pair %d: (%g, %g) vs angle %g", want[i].pair, cs[0], cs[1], want[i].angle);
    }
    /* token 0 is the identity rotation */
    for (int j = 0; j < 64; j++)
        REQUIRE(tab[2 * j] == 1.0f && tab[2 * j + 1] == 0.0f, "token 0 pair %d", j);
    REQUIRE(rope_wan_table(tab, 1, 1025, 1, 128, 10000.0, &err) == AU_EUNSUPPORTED && strstr(err.msg, "height"),
          "grid 1025 accepted: %s", err.msg);
    free(tab);

    float emb[256];
    dit_time_sinusoid(emb, 256, 500.0);
    REQUIRE(fabs(emb[0] - cos(500.0)) < 1e-7 && fabs(emb[128] - sin(500.0)) < 1e-7, "sinusoid i=0");
    double a = 500.0 * pow(10000.0, -37.0 / 128);
    REQUIRE(fabs(emb[37] - cos(a)) < 1e-7 && fabs(emb[128 + 37] - sin(a)) < 1e-7, "sinusoid i=37");
    printf("rope table and time sinusoid: ok\n");
}

/* Upload host floats into a new tensor of arena. */
static au_tensor upload(au_backend *be, au_arena *a, const float *host, int ndim, const int64_t *shape) {
    au_tensor t;
    au_err err = {0};
    REQUIRE(be_arena_tensor(a, AU_F32, ndim, shape, &t, &err) == 0, "%s", err.msg);
    REQUIRE(be_upload(be, &t, host, &err) == 0, "%s", err.msg);
    return t;
}

static void download(au_backend *be, float *host, const au_tensor *t) {
    au_err err = {0};
    REQUIRE(be_download(be, host, t, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
}

/* dit_load on a file written with one tensor left out or misshapen must fail naming it. */
static void expect_load_error(au_backend *be, const char *path, const char *skip, const char *reshape,
                              const dit_config *cfg) {
    write_weights(path, skip, reshape);
    st_set *st = NULL;
    wan_dit *d = NULL;
    au_err err = {0};
    REQUIRE(st_open(&st, path, &err) == 0, "%s", err.msg);
    REQUIRE(dit_load(&d, be, st, cfg, &err) < 0, "bad file accepted (skip %s, reshape %s)", skip, reshape);
    const char *name = skip ? skip : reshape;
    printf("%s tensor: %s\n", skip ? "missing" : "misshapen", err.msg);
    REQUIRE(strstr(err.msg, name), "error does not name %s: %s", name, err.msg);
    REQUIRE(d == NULL, "model returned on error");
    st_close(st);
}

int main(void) {
    test_rope_table();

    char dir[] = "/tmp/test_dit_XXXXXX", path[256], bad[256];
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/dit.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    make_weights();
    write_weights(path, NULL, NULL);

    au_backend *be = NULL;
    au_err err = {0};
    REQUIRE(be_cpu_create(&be, 0, &err) == 0, "be_cpu_create: %s", err.msg);
    st_set *st = NULL;
    REQUIRE(st_open(&st, path, &err) == 0, "%s", err.msg);
    dit_config cfg;
    REQUIRE(dit_config_infer(st, &cfg, &err) == 0, "infer: %s", err.msg);
    REQUIRE(cfg.dim == D && cfg.ffn_dim == FFN && cfg.freq_dim == FREQ && cfg.num_heads == HEADS &&
              cfg.num_layers == LAYERS && cfg.in_dim == CIN && cfg.out_dim == COUT && cfg.text_len == TEXT_LEN &&
              cfg.text_dim == TXT && cfg.patch[0] == PT && cfg.patch[1] == PH && cfg.patch[2] == PW &&
              cfg.eps == 1e-6f,
          "inferred dim %d ffn %d freq %d heads %d layers %d in %d out %d text %d/%d patch %d,%d,%d", cfg.dim,
          cfg.ffn_dim, cfg.freq_dim, cfg.num_heads, cfg.num_layers, cfg.in_dim, cfg.out_dim, cfg.text_len,
          cfg.text_dim, cfg.patch[0], cfg.patch[1], cfg.patch[2]);
    wan_dit *d = NULL;
    REQUIRE(dit_load(&d, be, st, &cfg, &err) == 0, "dit_load: %s", err.msg);
    REQUIRE(dit_get_config(d)->num_layers == LAYERS, "config copy");

    /* inputs */
    const int64_t xs[4] = {CIN, LF, LH, LW}, os[4] = {COUT, LF, LH, LW}, cs[2] = {L_CTX, TXT};
    const int n_x = CIN * LF * LH * LW, n_out = COUT * LF * LH * LW;
    float *x = malloc(sizeof(float) * n_x), ctx[L_CTX * TXT], ctx2[L_CTX * TXT];
    float *o1 = malloc(sizeof(float) * n_out), *o2 = malloc(sizeof(float) * n_out);
    double *ref = malloc(sizeof(double) * n_out);
    REQUIRE(x && o1 && o2 && ref, "out of memory");
    for (int i = 0; i < n_x; i++)
        x[i] = 1.5f * urand();
    for (int i = 0; i < L_CTX * TXT; i++) {
        ctx[i] = urand();
        ctx2[i] = urand();
    }
    au_arena *job = be_arena_create(be, 1 << 20), *act = be_arena_create(be, 1 << 16);
    REQUIRE(job && act, "arenas");
    au_tensor tx = upload(be, job, x, 4, xs), tctx = upload(be, job, ctx, 2, cs), tctx2 = upload(be, job, ctx2, 2, cs);
    au_tensor tout;
    REQUIRE(be_arena_tensor(job, AU_F32, 4, os, &tout, &err) == 0, "%s", err.msg);
    dit_text *text = NULL, *text2 = NULL;
    REQUIRE(dit_prepare_text(d, job, &tctx, &text, &err) == 0, "prepare_text: %s", err.msg);
    REQUIRE(dit_prepare_text(d, job, &tctx2, &text2, &err) == 0, "prepare_text: %s", err.msg);

    /* forward vs the double reference */
    const float t = 637.5f;
    REQUIRE(dit_forward(d, act, &tx, t, text, &tout, &err) == 0, "forward: %s", err.msg);
    download(be, o1, &tout);
    ref_forward(x, t, ctx, ref);
    double max_diff = 0, max_ref = 0, sum_sq = 0;
    for (int i = 0; i < n_out; i++) {
        REQUIRE(isfinite(o1[i]), "out[%d] = %g", i, o1[i]);
        max_diff = fmax(max_diff, fabs(o1[i] - ref[i]));
        max_ref = fmax(max_ref, fabs(ref[i]));
        sum_sq += ref[i] * ref[i];
    }
    printf("forward vs double reference: max rel error %.3g (max |ref| %.3g, rms %.3g)\n", max_diff / max_ref,
           max_ref, sqrt(sum_sq / n_out));
    REQUIRE(max_ref > 0.1, "reference output degenerate");
    REQUIRE(max_diff / max_ref < 1e-4, "rel error %g", max_diff / max_ref);

    /* second identical forward: no allocation, same bits */
    uint64_t chunks = be_arena_chunk_allocs(act);
    size_t used = be_arena_used(act);
    REQUIRE(dit_forward(d, act, &tx, t, text, &tout, &err) == 0, "forward 2: %s", err.msg);
    download(be, o2, &tout);
    REQUIRE(be_arena_chunk_allocs(act) == chunks, "second forward allocated: %llu -> %llu chunks",
          (unsigned long long)chunks, (unsigned long long)be_arena_chunk_allocs(act));
    REQUIRE(be_arena_used(act) == used, "arena use %zu -> %zu", used, be_arena_used(act));
    REQUIRE(!memcmp(o1, o2, sizeof(float) * n_out), "second forward differs");
    printf("second forward: no allocation (%llu chunks, %zu bytes used), bit-identical\n",
           (unsigned long long)chunks, used);

    /* timestep and prompt reach the output */
    REQUIRE(dit_forward(d, act, &tx, 120.0f, text, &tout, &err) == 0, "%s", err.msg);
    download(be, o2, &tout);
    REQUIRE(memcmp(o1, o2, sizeof(float) * n_out), "timestep ignored");
    REQUIRE(dit_forward(d, act, &tx, t, text2, &tout, &err) == 0, "%s", err.msg);
    download(be, o2, &tout);
    REQUIRE(memcmp(o1, o2, sizeof(float) * n_out), "prompt ignored");
    REQUIRE(be_arena_chunk_allocs(act) == chunks, "same shapes, other inputs allocated");

    /* bad inputs */
    const int64_t odd[4] = {CIN, LF, LH - 1, LW}, wrong_out[4] = {COUT, LF, LH, LW + 2};
    au_tensor bx, bo;
    REQUIRE(be_arena_tensor(job, AU_F32, 4, odd, &bx, &err) == 0, "%s", err.msg);
    REQUIRE(dit_forward(d, act, &bx, t, text, &tout, &err) == AU_EINVAL, "odd H accepted");
    printf("odd H: %s\n", err.msg);
    REQUIRE(be_arena_tensor(job, AU_F32, 4, wrong_out, &bo, &err) == 0, "%s", err.msg);
    REQUIRE(dit_forward(d, act, &tx, t, text, &bo, &err) == AU_EINVAL && strstr(err.msg, "out"), "wrong out: %s",
          err.msg);
    printf("wrong out: %s\n", err.msg);
    dit_text *in_act = NULL;
    REQUIRE(dit_prepare_text(d, act, &tctx, &in_act, &err) == 0, "%s", err.msg);
    REQUIRE(dit_forward(d, act, &tx, t, in_act, &tout, &err) == AU_EINVAL && strstr(err.msg, "arena"),
          "text in act arena accepted: %s", err.msg);
    printf("text in act arena: %s\n", err.msg);
    const int64_t long_ctx[2] = {TEXT_LEN + 1, TXT};
    au_tensor tlong;
    dit_text *bad_text = NULL;
    REQUIRE(be_arena_tensor(job, AU_F32, 2, long_ctx, &tlong, &err) == 0, "%s", err.msg);
    REQUIRE(dit_prepare_text(d, job, &tlong, &bad_text, &err) == AU_EINVAL && !bad_text, "513 text rows accepted");
    printf("long context: %s\n", err.msg);

    /* misshapen and missing tensors */
    expect_load_error(be, bad, NULL, "blocks.1.cross_attn.k.weight", &cfg);
    expect_load_error(be, bad, "blocks.1.ffn.2.bias", NULL, &cfg);
    expect_load_error(be, bad, "head.modulation", NULL, &cfg);

    dit_text_free(in_act);
    dit_text_free(text);
    dit_text_free(text2);
    dit_free(d);
    be_arena_destroy(act);
    be_arena_destroy(job);
    st_close(st);
    be_destroy(be);
    unlink(path);
    unlink(bad);
    rmdir(dir);
    for (int i = 0; i < n_weights; i++)
        free(weights[i].data);
    free(x), free(o1), free(o2), free(ref);
    printf("ok\n");
    return 0;
}
