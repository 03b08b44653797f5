/* wan_vae.c - the Wan2.1 causal 3-D VAE over backend ops (API in wan_vae.h).
 *
 * Blocks, x: [C, T, H, W] (official wan/modules/vae.py):
 *   RMS norm    x / max(||x[:, t, h, w]||_2, 1e-12) * sqrt(C) * gamma      (be_rmsnorm_channels)
 *   causal conv kernel 3: input [history (2 frames), x] with no time padding, spatial pad 1
 *   res block   conv6(SiLU(RMS3(conv2(SiLU(RMS0(x)))))) + (1x1x1 shortcut(x) when C changes, else x)
 *   attention   per frame, one head over the H*W positions: RMS, 1x1 q|k|v, softmax(q k^T / sqrt(C)) v,
 *               1x1 proj, + x
 *   up2d/up3d   [up3d: time conv C -> 2C whose halves become frames 2t, 2t+1] nearest 2x, conv2d C -> C/2
 *   down2d/3d   zero pad right and bottom by 1, conv2d 3x3 stride 2; [down3d: time conv (3,1,1)
 *               stride 2 over [last frame of the previous chunk, x], no padding]
 * Decoder: z*std + mean -> conv2 -> conv1, middle (res, attn, res), upsamples, head (RMS, SiLU,
 * conv -> 3), clamped to [-1, 1]. Encoder: conv1, downsamples, middle, head (-> 2 z_dim), then the
 * top-level conv1, whose first z_dim channels are the mean mu; z = (mu - mean) / std.
 *
 * The official feature cache (CACHE_T = 2) reduces to one rule: every causal conv keeps a
 * 2-frame history of its input that starts as zeros and becomes the last 2 frames of
 * [history, x]. A missing history pads 2 zero frames and a 1-frame one pads a zero then the
 * frame, both equal to the zero-started history. up3d's 'Rep' marker: the first chunk skips
 * the time conv, later chunks run it over the zero-started history, so it never sees the
 * first chunk. down3d keeps 1 frame, written by the first chunk, which skips the time conv.
 *
 * Memory. Caches live in the VAE's cache arena for one call. A chunk's activations come from
 * one block of the caller's arena, used as a stack growing from both ends: a layer reads its
 * input at the top of one side, allocates its output first on the other side and its
 * temporaries above either, frees them, and the caller then frees the input. The block size
 * is found by a dry run of the same code (no op executed) for the first and a later chunk.
 */
#include "wan_vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

#define VAE_HIST 2 /* CACHE_T: frames of history a causal conv keeps */

enum vae_kind { VL_RES, VL_ATTN, VL_UP2D, VL_UP3D, VL_DOWN2D, VL_DOWN3D };

typedef struct vae_conv {
    au_tensor w, b; /* w [out, in, kt, kh, kw] (conv2d: kt 1; attention 1x1: [out, in]); b [out] */
    int cache_id;   /* history slot of its input, -1 when it has none */
} vae_conv;

typedef struct vae_layer {
    int kind, cin, cout;
    char name[48];       /* "decoder.upsamples.3" */
    au_tensor g1, g2;    /* res: residual.0 and residual.3 gamma [C]; attn: norm gamma */
    vae_conv c1, c2, sc; /* res: residual.2, residual.6, shortcut; attn: to_qkv, proj;
                            resample: resample.1, time_conv */
    int has_sc;
} vae_layer;

typedef struct vae_coder {
    const char *name;  /* "encoder", "decoder" */
    int cin, cout;     /* channels into conv1, out of the head */
    vae_conv conv1;
    vae_layer *layers; /* encoder: downsamples then middle; decoder: middle then upsamples */
    int n_layers;
    au_tensor head_g;
    vae_conv head;
    int cache0, cache1; /* its history slots [cache0, cache1) */
} vae_coder;

struct wan_vae {
    au_backend *be;
    vae_config cfg;
    int t_factor, s_factor;     /* frames per latent frame after the first; pixels per latent */
    au_arena *weights, *caches;
    vae_coder enc, dec;
    vae_conv quant, quant_mu;   /* top-level conv1 (2z -> 2z) and its first z_dim output rows */
    vae_conv post_quant;        /* top-level conv2 (z -> z) */
    vae_conv denorm, norm;      /* diagonal 1x1x1 convs: z*std + mean and (mu - mean) / std */
    float diag_host[2][2][16 * 16]; /* their host weights and biases: a backend may keep referencing them */
    int n_cache;
    au_tensor *cache;           /* [n_cache] histories of the current call */
    vae_mem_stats stats;
};

/* ---- configuration ---- */

static const float k_mean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                 0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
static const float k_std[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

void vae_config_default(vae_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->dim = 96;
    cfg->z_dim = 16;
    cfg->n_mult = 4;
    const int mult[4] = {1, 2, 4, 4};
    memcpy(cfg->dim_mult, mult, sizeof mult);
    cfg->num_res_blocks = 2;
    cfg->temporal_downsample[1] = cfg->temporal_downsample[2] = 1;
    memcpy(cfg->mean, k_mean, sizeof k_mean);
    memcpy(cfg->std, k_std, sizeof k_std);
}

int vae_config_infer(const st_set *st, vae_config *cfg, au_err *err) {
    vae_config_default(cfg);
    const au_tensor *c1 = st_get(st, "encoder.conv1.weight");
    const au_tensor *c2 = st_get(st, "conv2.weight");
    if (!c1 || c1->ndim != 5)
        return au_errf(err, AU_ENOTFOUND, "vae config: tensor encoder.conv1.weight [dim,3,3,3,3] %s",
                       c1 ? "is not 5-D" : "missing");
    if (!c2 || c2->ndim != 5)
        return au_errf(err, AU_ENOTFOUND, "vae config: tensor conv2.weight [z,z,1,1,1] %s",
                       c2 ? "is not 5-D" : "missing");
    cfg->dim = (int)c1->shape[0] / cfg->dim_mult[0];
    cfg->z_dim = (int)c2->shape[0];
    if (cfg->z_dim < 1 || cfg->z_dim > 16)
        return au_errf(err, AU_EUNSUPPORTED, "vae config: z_dim %d from conv2.weight, expected 1..16", cfg->z_dim);
    return 0;
}

static int config_check(const vae_config *c, au_err *err) {
    if (c->dim < 1 || c->z_dim < 1 || c->z_dim > 16 || c->n_mult < 1 || c->n_mult > 4 || c->num_res_blocks < 1)
        return au_errf(err, AU_EINVAL, "vae config: dim %d, z_dim %d (1..16), n_mult %d (1..4), num_res_blocks %d",
                       c->dim, c->z_dim, c->n_mult, c->num_res_blocks);
    for (int i = 0; i < c->n_mult; i++)
        if (c->dim_mult[i] < 1 || (c->dim * c->dim_mult[i]) % 2)
            return au_errf(err, AU_EINVAL, "vae config: dim_mult[%d] = %d (dim * mult must be even and positive)", i,
                           c->dim_mult[i]);
    for (int i = 0; i < c->z_dim; i++)
        if (!(c->std[i] > 0.0f))
            return au_errf(err, AU_EINVAL, "vae config: std[%d] = %g must be positive", i, (double)c->std[i]);
    return 0;
}

const vae_config *vae_get_config(const wan_vae *v) { return &v->cfg; }

void vae_get_mem_stats(const wan_vae *v, vae_mem_stats *out) { *out = v->stats; }

/* ---- tensor table ---- */

typedef struct spec_list {
    au_weight_spec *v;
    int n, cap;
} spec_list;

static int spec_add(spec_list *s, au_tensor *dst, au_weight_kind kind, int ndim, const int64_t *shape,
                    const char *prefix, const char *suffix, au_err *err) {
    if (!weights_add(s->v, &s->n, s->cap, dst, kind, ndim, shape, "%s.%s", prefix, suffix))
        return au_errf(err, AU_EINTERNAL, "vae: tensor table full at %s.%s", prefix, suffix);
    return 0;
}

/* A conv "prefix.weight" [out, in, k...] and "prefix.bias" [out]; cached: give it a history slot. */
static int add_conv(wan_vae *v, spec_list *s, vae_conv *c, const char *prefix, int out, int in, int ndim_k,
                    const int *k, int cached, au_err *err) {
    int64_t shape[5] = {out, in, 0, 0, 0}, bshape[1] = {out};
    for (int i = 0; i < ndim_k; i++)
        shape[2 + i] = k[i];
    c->cache_id = cached ? v->n_cache++ : -1;
    int rc = spec_add(s, &c->w, AU_W_MATRIX, 2 + ndim_k, shape, prefix, "weight", err);
    return rc < 0 ? rc : spec_add(s, &c->b, AU_W_VECTOR, 1, bshape, prefix, "bias", err);
}

static int add_gamma(spec_list *s, au_tensor *g, const char *prefix, const char *suffix, int c, int ndim,
                     au_err *err) {
    int64_t shape[4] = {c, 1, 1, 1};
    return spec_add(s, g, AU_W_VECTOR, ndim, shape, prefix, suffix, err);
}

static const int k333[3] = {3, 3, 3}, k311[3] = {3, 1, 1}, k111[3] = {1, 1, 1}, k33[2] = {3, 3}, k11[2] = {1, 1};

static int add_layer(wan_vae *v, spec_list *s, vae_layer *L, au_err *err) {
    char p[96];
    int rc;
    if (L->kind == VL_RES) {
        L->has_sc = L->cin != L->cout;
        if ((rc = add_gamma(s, &L->g1, L->name, "residual.0.gamma", L->cin, 4, err)) < 0 ||
            (rc = add_gamma(s, &L->g2, L->name, "residual.3.gamma", L->cout, 4, err)) < 0)
            return rc;
        snprintf(p, sizeof p, "%s.residual.2", L->name);
        if ((rc = add_conv(v, s, &L->c1, p, L->cout, L->cin, 3, k333, 1, err)) < 0)
            return rc;
        snprintf(p, sizeof p, "%s.residual.6", L->name);
        if ((rc = add_conv(v, s, &L->c2, p, L->cout, L->cout, 3, k333, 1, err)) < 0 || !L->has_sc)
            return rc;
        snprintf(p, sizeof p, "%s.shortcut", L->name);
        return add_conv(v, s, &L->sc, p, L->cout, L->cin, 3, k111, 0, err);
    }
    if (L->kind == VL_ATTN) {
        if ((rc = add_gamma(s, &L->g1, L->name, "norm.gamma", L->cin, 3, err)) < 0)
            return rc;
        snprintf(p, sizeof p, "%s.to_qkv", L->name);
        if ((rc = add_conv(v, s, &L->c1, p, 3 * L->cin, L->cin, 2, k11, 0, err)) < 0)
            return rc;
        snprintf(p, sizeof p, "%s.proj", L->name);
        return add_conv(v, s, &L->c2, p, L->cin, L->cin, 2, k11, 0, err);
    }
    /* resamples: resample.1 conv2d, plus time_conv for the 3-D ones */
    snprintf(p, sizeof p, "%s.resample.1", L->name);
    if ((rc = add_conv(v, s, &L->c1, p, L->cout, L->cin, 2, k33, 0, err)) < 0)
        return rc;
    snprintf(p, sizeof p, "%s.time_conv", L->name);
    if (L->kind == VL_UP3D)
        return add_conv(v, s, &L->c2, p, 2 * L->cin, L->cin, 3, k311, 1, err);
    if (L->kind == VL_DOWN3D)
        return add_conv(v, s, &L->c2, p, L->cin, L->cin, 3, k311, 1, err);
    return 0;
}

static void push_layer(vae_coder *cd, int kind, int cin, int cout, const char *group, int idx) {
    vae_layer *L = &cd->layers[cd->n_layers++];
    L->kind = kind;
    L->cin = cin;
    L->cout = cout;
    snprintf(L->name, sizeof L->name, "%s.%s.%d", cd->name, group, idx);
}

static void push_middle(vae_coder *cd, int c) {
    push_layer(cd, VL_RES, c, c, "middle", 0);
    push_layer(cd, VL_ATTN, c, c, "middle", 1);
    push_layer(cd, VL_RES, c, c, "middle", 2);
}

/* The module lists of Encoder3d and Decoder3d, in execution order. */
static int build_layout(wan_vae *v, au_err *err) {
    const vae_config *c = &v->cfg;
    int n = c->n_mult, nres = c->num_res_blocks;
    vae_coder *e = &v->enc, *d = &v->dec;
    e->name = "encoder";
    d->name = "decoder";
    e->layers = calloc((size_t)(n * nres + n + 3), sizeof *e->layers);
    d->layers = calloc((size_t)(n * (nres + 1) + n + 3), sizeof *d->layers);
    if (!e->layers || !d->layers)
        return au_errf(err, AU_ENOMEM, "vae: layer tables");
    int idx = 0, cin = c->dim, cout = cin;
    e->cin = 3;
    e->cout = 2 * c->z_dim;
    for (int i = 0; i < n; i++) {
        cout = c->dim * c->dim_mult[i];
        for (int j = 0; j < nres; j++, cin = cout)
            push_layer(e, VL_RES, cin, cout, "downsamples", idx++);
        if (i != n - 1)
            push_layer(e, c->temporal_downsample[i] ? VL_DOWN3D : VL_DOWN2D, cout, cout, "downsamples", idx++);
    }
    push_middle(e, cout);

    d->cin = c->z_dim;
    d->cout = 3;
    int top = c->dim * c->dim_mult[n - 1];
    push_middle(d, top);
    idx = 0;
    cin = top;
    for (int i = 0; i < n; i++) {
        cout = c->dim * c->dim_mult[n - 1 - i];
        if (i > 0) /* the upsample before this level halved the channels */
            cin /= 2;
        for (int j = 0; j <= nres; j++, cin = cout)
            push_layer(d, VL_RES, cin, cout, "upsamples", idx++);
        if (i != n - 1)
            push_layer(d, c->temporal_downsample[n - 2 - i] ? VL_UP3D : VL_UP2D, cout, cout / 2, "upsamples",
                       idx++);
    }
    v->t_factor = v->s_factor = 1;
    for (int i = 0; i < n - 1; i++) {
        v->s_factor *= 2;
        v->t_factor *= c->temporal_downsample[i] ? 2 : 1;
    }
    return 0;
}

static int add_coder(wan_vae *v, spec_list *s, vae_coder *cd, au_err *err) {
    char p[64];
    int rc;
    int first = cd->layers[0].cin, last = cd->layers[cd->n_layers - 1].cout;
    cd->cache0 = v->n_cache;
    snprintf(p, sizeof p, "%s.conv1", cd->name);
    if ((rc = add_conv(v, s, &cd->conv1, p, first, cd->cin, 3, k333, 1, err)) < 0)
        return rc;
    for (int i = 0; i < cd->n_layers; i++)
        if ((rc = add_layer(v, s, &cd->layers[i], err)) < 0)
            return rc;
    snprintf(p, sizeof p, "%s.head", cd->name);
    if ((rc = add_gamma(s, &cd->head_g, p, "0.gamma", last, 4, err)) < 0)
        return rc;
    snprintf(p, sizeof p, "%s.head.2", cd->name);
    rc = add_conv(v, s, &cd->head, p, cd->cout, last, 3, k333, 1, err);
    cd->cache1 = v->n_cache;
    return rc;
}

/* Loaded tensors keep the file's shape; give them the shape the ops take. */
static void flatten_vec(au_tensor *t) {
    int64_t n = au_numel(t);
    au_reshape(t, 1, &n, t);
}

static void conv2d_as_3d(au_tensor *w) { /* [O, I, kh, kw] -> [O, I, 1, kh, kw] */
    int64_t s[5] = {w->shape[0], w->shape[1], 1, w->shape[2], w->shape[3]};
    au_reshape(w, 5, s, w);
}

static void conv1x1_as_matrix(au_tensor *w) { /* [O, I, 1, 1] -> [O, I] */
    int64_t s[2] = {w->shape[0], w->shape[1]};
    au_reshape(w, 2, s, w);
}

static void fix_shapes(vae_coder *cd) {
    flatten_vec(&cd->head_g);
    for (int i = 0; i < cd->n_layers; i++) {
        vae_layer *L = &cd->layers[i];
        if (L->kind == VL_RES) {
            flatten_vec(&L->g1);
            flatten_vec(&L->g2);
        } else if (L->kind == VL_ATTN) {
            flatten_vec(&L->g1);
            conv1x1_as_matrix(&L->c1.w);
            conv1x1_as_matrix(&L->c2.w);
        } else {
            conv2d_as_3d(&L->c1.w);
        }
    }
}

/* A diagonal 1x1x1 conv y[c] = scale[c] x[c] + shift[c], loaded from host arrays kept in v. */
static int load_diag(wan_vae *v, vae_conv *c, float host[2][16 * 16], const float *scale, const float *shift,
                     au_err *err) {
    int z = v->cfg.z_dim;
    for (int i = 0; i < z; i++) {
        host[0][i * z + i] = scale[i];
        host[1][i] = shift[i];
    }
    int64_t ws[5] = {z, z, 1, 1, 1}, bs[1] = {z};
    au_tensor hw = au_tensor_make(AU_F32, host[0], 5, ws), hb = au_tensor_make(AU_F32, host[1], 1, bs);
    c->cache_id = -1;
    int rc = v->be->ops->weight_load(v->be, v->weights, &hw, NULL, AU_W_MATRIX, &c->w, err);
    if (rc >= 0)
        rc = v->be->ops->weight_load(v->be, v->weights, &hb, NULL, AU_W_VECTOR, &c->b, err);
    return rc < 0 ? au_err_prefix(err, "vae latent normalisation") : 0;
}

/* The model's tensor table (layout first): shared by the loader and vae_list_tensors. */
static int vae_table(wan_vae *v, spec_list *s, au_err *err) {
    int rc, z = v->cfg.z_dim;
    if ((rc = config_check(&v->cfg, err)) < 0 || (rc = build_layout(v, err)) < 0)
        return rc;
    s->cap = 8 * (v->enc.n_layers + v->dec.n_layers) + 16;
    s->v = calloc((size_t)s->cap, sizeof *s->v);
    if (!s->v)
        return au_errf(err, AU_ENOMEM, "vae: tensor table");
    if ((rc = add_coder(v, s, &v->enc, err)) < 0 || (rc = add_coder(v, s, &v->dec, err)) < 0 ||
        (rc = add_conv(v, s, &v->quant, "conv1", 2 * z, 2 * z, 3, k111, 0, err)) < 0)
        return rc;
    return add_conv(v, s, &v->post_quant, "conv2", z, z, 3, k111, 0, err);
}

int vae_list_tensors(const vae_config *cfg, vae_tensor_fn fn, void *user, au_err *err) {
    wan_vae *v = calloc(1, sizeof *v);
    spec_list s = {0};
    if (!v)
        return au_errf(err, AU_ENOMEM, "vae: model struct");
    v->cfg = *cfg;
    int rc = vae_table(v, &s, err);
    for (int i = 0; rc == 0 && i < s.n; i++)
        fn(s.v[i].name, s.v[i].ndim, s.v[i].shape, user);
    free(s.v);
    vae_free(v);
    return rc;
}

int vae_load(wan_vae **out, au_backend *be, const st_set *st, const vae_config *cfg, au_err *err) {
    *out = NULL;
    wan_vae *v = calloc(1, sizeof *v);
    spec_list s = {0};
    int rc, z = cfg->z_dim;
    if (!v)
        return au_errf(err, AU_ENOMEM, "vae: model struct");
    v->be = be;
    v->cfg = *cfg;
    if ((rc = vae_table(v, &s, err)) < 0)
        goto fail;
    if ((rc = weights_check(st, s.v, s.n, err)) < 0)
        goto fail;
    v->weights = be_arena_create(be, weights_bytes(be, st, s.v, s.n) + 4096);
    v->caches = be_arena_create(be, 0);
    v->cache = calloc((size_t)v->n_cache, sizeof *v->cache);
    if (!v->weights || !v->caches || !v->cache) {
        rc = au_errf(err, AU_ENOMEM, "vae: arenas");
        goto fail;
    }
    if ((rc = weights_load(be, v->weights, st, s.v, s.n, err)) < 0)
        goto fail;
    fix_shapes(&v->enc);
    fix_shapes(&v->dec);
    v->quant_mu.w = au_view_rows(&v->quant.w, 0, z);
    v->quant_mu.b = au_view_rows(&v->quant.b, 0, z);
    v->quant_mu.cache_id = -1;
    float inv[16], shift[16];
    for (int i = 0; i < z; i++) {
        inv[i] = 1.0f / cfg->std[i];
        shift[i] = -cfg->mean[i] / cfg->std[i];
    }
    if ((rc = load_diag(v, &v->denorm, v->diag_host[0], cfg->std, cfg->mean, err)) < 0 ||
        (rc = load_diag(v, &v->norm, v->diag_host[1], inv, shift, err)) < 0)
        goto fail;
    v->stats.weight_bytes = be_arena_used(v->weights);
    free(s.v);
    *out = v;
    return 0;
fail:
    free(s.v);
    vae_free(v);
    return au_err_prefix(err, "vae load");
}

void vae_free(wan_vae *v) {
    if (!v)
        return;
    be_arena_destroy(v->weights);
    be_arena_destroy(v->caches);
    free(v->enc.layers);
    free(v->dec.layers);
    free(v->cache);
    free(v);
}

/* ---- per-chunk runtime: a two-sided stack over one block of the activation arena ---- */

typedef struct vae_run {
    wan_vae *v;
    au_backend *be;
    int dry;   /* planning pass: place tensors, run no op */
    int first; /* first chunk of the call */
    char *base;
    size_t cap, used[2], peak;
    au_err *err;
} vae_run;

/* A backend op, skipped in the planning pass. */
#define OP(r, op, ...) ((r)->dry ? 0 : be_##op((r)->be, __VA_ARGS__))
#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        int try_rc_ = (expr);                                                                                      \
        if (try_rc_ < 0)                                                                                           \
            return try_rc_;                                                                                        \
    } while (0)

static size_t round256(size_t n) { return (n + 255) & ~(size_t)255; }

static int rt_alloc(vae_run *r, int side, au_dtype dt, int ndim, const int64_t *shape, au_tensor *t) {
    *t = au_tensor_make(dt, NULL, ndim, shape);
    size_t bytes = round256(au_nbytes(t));
    if (r->used[0] + r->used[1] + bytes > r->cap)
        return au_errf(r->err, AU_EINTERNAL, "vae: chunk working set exceeds its plan of %zu bytes", r->cap);
    size_t off = side == 0 ? r->used[0] : r->cap - r->used[1] - bytes;
    r->used[side] += bytes;
    if (r->used[0] + r->used[1] > r->peak)
        r->peak = r->used[0] + r->used[1];
    if (!r->dry)
        t->data = r->base + off;
    return 0;
}

static int rt_t4(vae_run *r, int side, int64_t c, int64_t t, int64_t h, int64_t w, au_tensor *out) {
    int64_t s[4] = {c, t, h, w};
    return rt_alloc(r, side, r->be->act_dtype, 4, s, out);
}

static int rt_t2(vae_run *r, int side, int64_t rows, int64_t cols, au_tensor *out) {
    int64_t s[2] = {rows, cols};
    return rt_alloc(r, side, r->be->act_dtype, 2, s, out);
}

/* The history of slot id, [c, t, h, w]: its shape is recorded by the planning pass. */
static int rt_hist(vae_run *r, int id, int64_t c, int64_t t, int64_t h, int64_t w, au_tensor **out) {
    au_tensor *hs = &r->v->cache[id];
    int64_t s[4] = {c, t, h, w};
    au_tensor want = au_tensor_make(r->be->act_dtype, NULL, 4, s);
    if (r->dry)
        *hs = want;
    else if (!au_same_shape(hs, &want))
        return au_errf(r->err, AU_EINTERNAL, "vae: history %d shape differs from its plan", id);
    *out = hs;
    return 0;
}

static const int k_s1[3] = {1, 1, 1}, k_s2d[3] = {1, 2, 2}, k_st2[3] = {2, 1, 1};
static const int k_p0[6] = {0}, k_psp[6] = {0, 0, 1, 1, 1, 1}, k_pdown[6] = {0, 0, 0, 1, 0, 1};

static int conv(vae_run *r, au_tensor *y, const au_tensor *x, const vae_conv *c, const int *stride, const int *pad) {
    return OP(r, conv3d, y, x, &c->w, &c->b, stride, pad, r->err);
}

static int norm_silu(vae_run *r, au_tensor *y, const au_tensor *x, const au_tensor *gamma) {
    TRY(OP(r, rmsnorm_channels, y, x, gamma, NULL, r->err));
    return OP(r, activate, y, y, AU_ACT_SILU, r->err);
}

/* cat [C, 2+T, H, W] = [history, x] on side; the history becomes the last 2 frames of cat. */
static int hist_cat(vae_run *r, const vae_conv *c, const au_tensor *x, int side, au_tensor *cat) {
    au_tensor *hs = NULL;
    int64_t C = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
    TRY(rt_hist(r, c->cache_id, C, VAE_HIST, H, W, &hs));
    TRY(rt_t4(r, side, C, VAE_HIST + T, H, W, cat));
    TRY(OP(r, concat, cat, hs, x, 1, r->err));
    return OP(r, slice, hs, cat, 1, T, r->err);
}

/* Each layer: x at the top of side s -> y, allocated first on the other side; temporaries freed. */
static int layer_res(vae_run *r, const vae_layer *L, const au_tensor *x, int s, au_tensor *y) {
    int o = 1 - s;
    int64_t T = x->shape[1], H = x->shape[2], W = x->shape[3];
    au_tensor a, cat, c;
    TRY(rt_t4(r, o, L->cout, T, H, W, y));
    size_t ms = r->used[s], mo = r->used[o];
    if (L->has_sc)
        TRY(conv(r, y, x, &L->sc, k_s1, k_p0));
    TRY(rt_t4(r, s, L->cin, T, H, W, &a));
    TRY(norm_silu(r, &a, x, &L->g1));
    TRY(hist_cat(r, &L->c1, &a, o, &cat));
    r->used[s] = ms; /* a is in cat and the history now */
    TRY(rt_t4(r, s, L->cout, T, H, W, &c));
    TRY(conv(r, &c, &cat, &L->c1, k_s1, k_psp));
    r->used[o] = mo;
    TRY(rt_t4(r, o, L->cout, T, H, W, &a));
    TRY(norm_silu(r, &a, &c, &L->g2));
    r->used[s] = ms;
    TRY(hist_cat(r, &L->c2, &a, s, &cat));
    r->used[o] = mo;
    TRY(rt_t4(r, o, L->cout, T, H, W, &c));
    TRY(conv(r, &c, &cat, &L->c2, k_s1, k_psp));
    TRY(OP(r, add, y, L->has_sc ? y : x, &c, r->err));
    r->used[s] = ms;
    r->used[o] = mo;
    return 0;
}

static int layer_attn(vae_run *r, const vae_layer *L, const au_tensor *x, int s, au_tensor *y) {
    int o = 1 - s;
    int64_t C = x->shape[0], T = x->shape[1], HW = x->shape[2] * x->shape[3], n = T * HW;
    int64_t cn[2] = {C, n};
    au_tensor nrm, xt, qkv, q, k, v, att, proj, flat;
    TRY(rt_t4(r, o, C, T, x->shape[2], x->shape[3], y));
    size_t ms = r->used[s], mo = r->used[o];
    TRY(rt_t4(r, s, C, T, x->shape[2], x->shape[3], &nrm));
    TRY(OP(r, rmsnorm_channels, &nrm, x, &L->g1, NULL, r->err));
    au_reshape(&nrm, 2, cn, &flat);
    TRY(rt_t2(r, o, n, C, &xt)); /* rows (t, h, w), as the 1x1 convs see them */
    TRY(OP(r, transpose, &xt, &flat, r->err));
    r->used[s] = ms;
    TRY(rt_t2(r, s, n, 3 * C, &qkv));
    TRY(OP(r, linear, &qkv, &xt, &L->c1.w, &L->c1.b, AU_ACT_NONE, r->err));
    r->used[o] = mo;
    TRY(rt_t2(r, o, n, C, &q));
    TRY(rt_t2(r, o, n, C, &k));
    TRY(rt_t2(r, o, n, C, &v));
    TRY(OP(r, slice, &q, &qkv, 1, 0, r->err));
    TRY(OP(r, slice, &k, &qkv, 1, C, r->err));
    TRY(OP(r, slice, &v, &qkv, 1, 2 * C, r->err));
    r->used[s] = ms;
    TRY(rt_t2(r, s, n, C, &att));
    for (int64_t t = 0; t < T; t++) { /* each frame attends over its own H*W positions */
        au_tensor at = au_view_rows(&att, t * HW, HW), qt = au_view_rows(&q, t * HW, HW);
        au_tensor kt = au_view_rows(&k, t * HW, HW), vt = au_view_rows(&v, t * HW, HW);
        TRY(OP(r, attention, &at, &qt, &kt, &vt, 1, 1.0f / sqrtf((float)C), NULL, r->err));
    }
    r->used[o] = mo;
    TRY(rt_t2(r, o, n, C, &proj));
    TRY(OP(r, linear, &proj, &att, &L->c2.w, &L->c2.b, AU_ACT_NONE, r->err));
    au_reshape(y, 2, cn, &flat);
    TRY(OP(r, transpose, &flat, &proj, r->err));
    TRY(OP(r, add, y, y, x, r->err));
    r->used[s] = ms;
    r->used[o] = mo;
    return 0;
}

static int layer_up(vae_run *r, const vae_layer *L, const au_tensor *x, int s, au_tensor *y) {
    int o = 1 - s, time = L->kind == VL_UP3D && !r->first; /* the first chunk skips the time conv */
    int64_t C = L->cin, T = x->shape[1], H = x->shape[2], W = x->shape[3], T2 = time ? 2 * T : T;
    au_tensor cat, tc, u, up;
    const au_tensor *src = x;
    TRY(rt_t4(r, o, L->cout, T2, 2 * H, 2 * W, y));
    size_t ms = r->used[s], mo = r->used[o];
    if (time) {
        TRY(hist_cat(r, &L->c2, x, s, &cat));
        TRY(rt_t4(r, o, 2 * C, T, H, W, &tc));
        TRY(conv(r, &tc, &cat, &L->c2, k_s1, k_p0));
        r->used[s] = ms;
        TRY(rt_t4(r, s, C, T2, H, W, &u));
        TRY(OP(r, time_interleave, &u, &tc, r->err));
        r->used[o] = mo;
        src = &u;
    }
    TRY(rt_t4(r, o, C, T2, 2 * H, 2 * W, &up));
    TRY(OP(r, upsample2x, &up, src, r->err));
    TRY(conv(r, y, &up, &L->c1, k_s1, k_psp));
    r->used[s] = ms;
    r->used[o] = mo;
    return 0;
}

static int layer_down(vae_run *r, const vae_layer *L, const au_tensor *x, int s, au_tensor *y) {
    int o = 1 - s, time = L->kind == VL_DOWN3D && !r->first;
    int64_t C = L->cin, T = x->shape[1], H = (x->shape[2] - 2) / 2 + 1, W = (x->shape[3] - 2) / 2 + 1;
    if (time && T < 2)
        return au_errf(r->err, AU_EINVAL, "time downsampling of a %lld-frame chunk", (long long)T);
    au_tensor sp, cat, *hs = NULL;
    TRY(rt_t4(r, o, C, time ? (T - 2) / 2 + 1 : T, H, W, y));
    if (L->kind == VL_DOWN2D)
        return conv(r, y, x, &L->c1, k_s2d, k_pdown);
    TRY(rt_hist(r, L->c2.cache_id, C, 1, H, W, &hs));
    if (!time) { /* the first chunk passes and leaves its last frame */
        TRY(conv(r, y, x, &L->c1, k_s2d, k_pdown));
        return OP(r, slice, hs, y, 1, T - 1, r->err);
    }
    size_t ms = r->used[s], mo = r->used[o];
    TRY(rt_t4(r, s, C, T, H, W, &sp));
    TRY(conv(r, &sp, x, &L->c1, k_s2d, k_pdown));
    TRY(rt_t4(r, o, C, T + 1, H, W, &cat));
    TRY(OP(r, concat, &cat, hs, &sp, 1, r->err));
    TRY(OP(r, slice, hs, &cat, 1, T, r->err));
    TRY(conv(r, y, &cat, &L->c2, k_st2, k_p0));
    r->used[s] = ms;
    r->used[o] = mo;
    return 0;
}

static int run_layer(vae_run *r, const vae_layer *L, const au_tensor *x, int s, au_tensor *y) {
    switch (L->kind) {
    case VL_RES:
        return layer_res(r, L, x, s, y);
    case VL_ATTN:
        return layer_attn(r, L, x, s, y);
    case VL_UP2D:
    case VL_UP3D:
        return layer_up(r, L, x, s, y);
    default:
        return layer_down(r, L, x, s, y);
    }
}

/* A causal conv with history: y [cout, T, H, W] on the other side, cat above x on side s. */
static int cached_conv_layer(vae_run *r, const vae_conv *c, int64_t cout, const au_tensor *x, int s, au_tensor *y) {
    au_tensor cat;
    TRY(rt_t4(r, 1 - s, cout, x->shape[1], x->shape[2], x->shape[3], y));
    size_t ms = r->used[s];
    TRY(hist_cat(r, c, x, s, &cat));
    TRY(conv(r, y, &cat, c, k_s1, k_psp));
    r->used[s] = ms;
    return 0;
}

static int head_layer(vae_run *r, const vae_coder *cd, const au_tensor *x, int s, au_tensor *y) {
    au_tensor a;
    size_t ms = r->used[s];
    TRY(rt_t4(r, s, x->shape[0], x->shape[1], x->shape[2], x->shape[3], &a));
    TRY(norm_silu(r, &a, x, &cd->head_g));
    TRY(cached_conv_layer(r, &cd->head, cd->cout, &a, s, y));
    r->used[s] = ms;
    return 0;
}

/* x (at the top of side *s, starting at offset *x_base) becomes y; x's memory is freed. */
static void rt_advance(vae_run *r, au_tensor *x, int *s, size_t *x_base, const au_tensor *y, size_t y_base) {
    r->used[*s] = *x_base;
    *x = *y;
    *x_base = y_base;
    *s = 1 - *s;
}

static int coder_forward(vae_run *r, const vae_coder *cd, au_tensor *x, int *s, size_t *x_base) {
    au_tensor y;
    size_t y_base = r->used[1 - *s];
    if (cached_conv_layer(r, &cd->conv1, cd->layers[0].cin, x, *s, &y) < 0)
        return au_err_prefix(r->err, "%s.conv1", cd->name);
    rt_advance(r, x, s, x_base, &y, y_base);
    for (int i = 0; i < cd->n_layers; i++) {
        y_base = r->used[1 - *s];
        if (run_layer(r, &cd->layers[i], x, *s, &y) < 0)
            return au_err_prefix(r->err, "%s", cd->layers[i].name);
        rt_advance(r, x, s, x_base, &y, y_base);
    }
    y_base = r->used[1 - *s];
    if (head_layer(r, cd, x, *s, &y) < 0)
        return au_err_prefix(r->err, "%s.head", cd->name);
    rt_advance(r, x, s, x_base, &y, y_base);
    return 0;
}

/* ---- streaming over chunks ---- */

typedef struct vae_job {
    const au_tensor *in;
    au_tensor *out;
    int64_t n_chunks;
} vae_job;

typedef int (*chunk_fn)(vae_run *r, const vae_job *job, int64_t i);

/* Copy chunk rows of src [C, tc, ...] into frames [t0, t0+tc) of dst [C, T, ...] (any dtypes). */
static int put_frames(vae_run *r, au_tensor *dst, int64_t t0, const au_tensor *src) {
    int64_t C = src->shape[0], tc = src->shape[1], T = dst->shape[1], plane = dst->shape[2] * dst->shape[3];
    int64_t ds[2] = {C * T, plane}, ss[2] = {C * tc, plane};
    au_tensor d2, s2;
    au_reshape(dst, 2, ds, &d2);
    au_reshape(src, 2, ss, &s2);
    for (int64_t c = 0; c < C; c++) {
        au_tensor dv = au_view_rows(&d2, c * T + t0, tc), sv = au_view_rows(&s2, c * tc, tc);
        TRY(OP(r, copy, &dv, &sv, r->err));
    }
    return 0;
}

/* Frames [t0, t0+tc) of the float32 input, converted to act dtype at the top of side 1. */
static int take_frames(vae_run *r, const au_tensor *in, int64_t t0, int64_t tc, au_tensor *x) {
    au_tensor f;
    int64_t fs[4] = {in->shape[0], tc, in->shape[2], in->shape[3]};
    TRY(rt_alloc(r, 0, AU_F32, 4, fs, &f));
    TRY(OP(r, slice, &f, in, 1, t0, r->err));
    TRY(rt_t4(r, 1, fs[0], tc, fs[2], fs[3], x));
    TRY(OP(r, copy, x, &f, r->err));
    r->used[0] = 0;
    return 0;
}

static int decode_chunk(vae_run *r, const vae_job *job, int64_t i) {
    wan_vae *v = r->v;
    int64_t z = job->in->shape[0], h = job->in->shape[2], w = job->in->shape[3];
    int64_t tc = r->first ? 1 : v->t_factor, t0 = r->first ? 0 : 1 + (i - 1) * v->t_factor;
    au_tensor x, a;
    int s = 1;
    size_t x_base = 0;
    TRY(take_frames(r, job->in, i, 1, &x));
    TRY(rt_t4(r, 0, z, 1, h, w, &a));
    TRY(conv(r, &a, &x, &v->denorm, k_s1, k_p0));
    r->used[1] = 0;
    TRY(rt_t4(r, 1, z, 1, h, w, &x));
    TRY(conv(r, &x, &a, &v->post_quant, k_s1, k_p0));
    r->used[0] = 0;
    TRY(coder_forward(r, &v->dec, &x, &s, &x_base));
    if (x.shape[1] != tc)
        return au_errf(r->err, AU_EINTERNAL, "vae decode: chunk gave %lld frames, expected %lld",
                       (long long)x.shape[1], (long long)tc);
    TRY(rt_t4(r, 1 - s, 3, tc, x.shape[2], x.shape[3], &a));
    TRY(OP(r, clamp, &a, &x, -1.0f, 1.0f, r->err));
    return put_frames(r, job->out, t0, &a);
}

static int encode_chunk(vae_run *r, const vae_job *job, int64_t i) {
    wan_vae *v = r->v;
    int64_t tc = r->first ? 1 : v->t_factor, t0 = r->first ? 0 : 1 + (i - 1) * v->t_factor;
    au_tensor x, mu, zn;
    int s = 1;
    size_t x_base = 0;
    TRY(take_frames(r, job->in, t0, tc, &x));
    TRY(coder_forward(r, &v->enc, &x, &s, &x_base));
    if (x.shape[1] != 1)
        return au_errf(r->err, AU_EINTERNAL, "vae encode: chunk gave %lld latent frames, expected 1",
                       (long long)x.shape[1]);
    int64_t z = v->cfg.z_dim, h = x.shape[2], w = x.shape[3];
    TRY(rt_t4(r, 1 - s, z, 1, h, w, &mu));
    TRY(conv(r, &mu, &x, &v->quant_mu, k_s1, k_p0));
    TRY(rt_t4(r, s, z, 1, h, w, &zn));
    TRY(conv(r, &zn, &mu, &v->norm, k_s1, k_p0));
    return put_frames(r, job->out, i, &zn);
}

/* Dry runs of the first and a later chunk: the chunk working set, the history shapes and bytes. */
static int stream_plan(wan_vae *v, const vae_coder *cd, const vae_job *job, chunk_fn fn, size_t *chunk_bytes,
                       size_t *hist_bytes, au_err *err) {
    vae_run r = {.v = v, .be = v->be, .err = err, .dry = 1, .cap = SIZE_MAX / 4};
    *chunk_bytes = *hist_bytes = 0;
    for (int i = cd->cache0; i < cd->cache1; i++)
        v->cache[i].ndim = 0;
    for (int64_t c = 0; c < 2; c++) {
        r.first = c == 0;
        r.used[0] = r.used[1] = r.peak = 0;
        TRY(fn(&r, job, c));
        if ((c == 0 || job->n_chunks > 1) && r.peak > *chunk_bytes)
            *chunk_bytes = r.peak;
    }
    for (int i = cd->cache0; i < cd->cache1; i++) {
        if (v->cache[i].ndim != 4)
            return au_errf(err, AU_EINTERNAL, "vae: history %d was not planned", i);
        *hist_bytes += round256(au_nbytes(&v->cache[i]));
    }
    return 0;
}

/* Plan, set up the histories (one block, zeroed), run every chunk. */
static int vae_stream(wan_vae *v, au_arena *act, const vae_coder *cd, const vae_job *job, chunk_fn fn,
                      au_err *err) {
    size_t peak, total;
    TRY(stream_plan(v, cd, job, fn, &peak, &total, err));
    be_arena_reset(v->caches);
    char *block = be_arena_alloc(v->caches, total, err);
    if (!block)
        return au_err_prefix(err, "vae histories");
    for (int i = cd->cache0; i < cd->cache1; i++) {
        v->cache[i].data = block;
        block += round256(au_nbytes(&v->cache[i]));
        TRY(be_fill(v->be, &v->cache[i], 0.0f, err));
    }
    v->stats.cache_bytes = total;
    v->stats.cache_allocs = be_arena_chunk_allocs(v->caches);
    v->stats.chunk_bytes = peak;
    vae_run r = {.v = v, .be = v->be, .err = err, .cap = peak};
    for (int64_t i = 0; i < job->n_chunks; i++) {
        be_arena_reset(act);
        r.base = be_arena_alloc(act, peak, err);
        if (!r.base)
            return au_err_prefix(err, "vae chunk %lld", (long long)i);
        r.first = i == 0;
        r.used[0] = r.used[1] = 0;
        if (fn(&r, job, i) < 0)
            return au_err_prefix(err, "chunk %lld", (long long)i);
    }
    return 0;
}

static int decode_shapes(const wan_vae *v, const au_tensor *z, const au_tensor *video, au_err *err) {
    char bz[96], bv[96];
    int64_t F = z->shape[1], sf = v->s_factor;
    if (z->dtype == AU_F32 && video->dtype == AU_F32 && z->ndim == 4 && video->ndim == 4 &&
        z->shape[0] == v->cfg.z_dim && F >= 1 && video->shape[0] == 3 && video->shape[1] == 1 + v->t_factor * (F - 1) &&
        video->shape[2] == sf * z->shape[2] && video->shape[3] == sf * z->shape[3])
        return 0;
    return au_errf(err, AU_EINVAL, "vae decode: z %s, video %s: expected f32 z [%d,F,h,w], video [3,1+%d(F-1),%lldh,%lldw]",
                   au_shape_str(z, bz, sizeof bz), au_shape_str(video, bv, sizeof bv), v->cfg.z_dim, v->t_factor,
                   (long long)sf, (long long)sf);
}

int vae_decode(wan_vae *v, au_arena *act, const au_tensor *z, au_tensor *video, au_err *err) {
    TRY(decode_shapes(v, z, video, err));
    if (!z->data || !video->data)
        return au_errf(err, AU_EINVAL, "vae decode: z or video has no data");
    vae_job job = {.in = z, .out = video, .n_chunks = z->shape[1]};
    if (vae_stream(v, act, &v->dec, &job, decode_chunk, err) < 0)
        return au_err_prefix(err, "vae decode");
    return 0;
}

int vae_plan_decode(wan_vae *v, int64_t frames, int64_t h, int64_t w, vae_mem_stats *out, au_err *err) {
    int64_t zs[4] = {v->cfg.z_dim, frames, h, w};
    int64_t vs[4] = {3, 1 + v->t_factor * (frames - 1), v->s_factor * h, v->s_factor * w};
    au_tensor z = au_tensor_make(AU_F32, NULL, 4, zs), video = au_tensor_make(AU_F32, NULL, 4, vs);
    vae_job job = {.in = &z, .out = &video, .n_chunks = frames};
    *out = v->stats;
    TRY(decode_shapes(v, &z, &video, err));
    if (stream_plan(v, &v->dec, &job, decode_chunk, &out->chunk_bytes, &out->cache_bytes, err) < 0)
        return au_err_prefix(err, "vae plan");
    return 0;
}

int vae_encode(wan_vae *v, au_arena *act, const au_tensor *video, au_tensor *z, au_err *err) {
    char bz[96], bv[96];
    int64_t T = video->shape[1], sf = v->s_factor, tf = v->t_factor;
    if (video->dtype != AU_F32 || z->dtype != AU_F32 || video->ndim != 4 || z->ndim != 4 || video->shape[0] != 3 ||
        T < 1 || (T - 1) % tf || video->shape[2] % sf || video->shape[3] % sf || z->shape[0] != v->cfg.z_dim ||
        z->shape[1] != 1 + (T - 1) / tf || z->shape[2] != video->shape[2] / sf || z->shape[3] != video->shape[3] / sf)
        return au_errf(err, AU_EINVAL,
                       "vae encode: video %s, z %s: expected f32 video [3,1+%lldk,H,W] with H, W multiples of %lld, "
                       "z [%d,1+k,H/%lld,W/%lld]",
                       au_shape_str(video, bv, sizeof bv), au_shape_str(z, bz, sizeof bz), (long long)tf,
                       (long long)sf, v->cfg.z_dim, (long long)sf, (long long)sf);
    if (!z->data || !video->data)
        return au_errf(err, AU_EINVAL, "vae encode: z or video has no data");
    vae_job job = {.in = video, .out = z, .n_chunks = z->shape[1]};
    if (vae_stream(v, act, &v->enc, &job, encode_chunk, err) < 0)
        return au_err_prefix(err, "vae encode");
    return 0;
}
