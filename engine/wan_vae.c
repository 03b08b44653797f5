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
#include "wan_vae_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

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
