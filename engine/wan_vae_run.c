/* wan_vae_run.c - the Wan2.1 VAE forward: per-chunk layers over a two-sided stack and the
 * streaming over time chunks with the causal histories (decode, encode, memory plan).
 * The model, its blocks and the cache rule are described at the top of wan_vae.c. */
#include "wan_vae_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return OP(r, rmsnorm_channels, y, x, gamma, NULL, AU_ACT_SILU, r->err);
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
    TRY(OP(r, rmsnorm_channels, &nrm, x, &L->g1, NULL, AU_ACT_NONE, r->err));
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
        TRY(OP(r, attention, &at, &qt, &kt, &vt, 1, 1.0f / sqrtf((float)C), NULL, 1, r->err));
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
