/* wan_dit.c - the Wan2.1 text-to-video DiT over the backend interface (see wan_dit.h).
 *
 * Forward, with D = dim, N = (F/pt)(H/ph)(W/pw) tokens, hd = D / num_heads:
 *   x      = Linear_patch(patchify(latent))                       [N, D]  (float32 residual)
 *   e      = Linear(SiLU(Linear(sinusoid(t))))                    [D]     float32
 *   e0     = Linear(SiLU(e))                                      [6, D]  float32
 *   block: m = modulation [6, D] + e0, rows m0..m5
 *     x += m2 * Wo attn(RoPE(RMS_q(Wq h)), RoPE(RMS_k(Wk h)), Wv h),  h = LN(x)(1 + m1) + m0
 *     x += Wo attn(RMS_q(Wq LN_affine(x)), K_text, V_text)
 *     x += m5 * W2 GELU_tanh(W1 (LN(x)(1 + m4) + m3))
 *   head: n = head.modulation [2, D] + e; out = unpatchify(W_head (LN(x)(1 + n1) + n0))
 * LayerNorms and RMSNorms use eps; RMSNorm_q/k normalise over the whole D before the
 * split into heads; attention scale 1/sqrt(hd), no mask (all text_len text rows are
 * keys, zero padding included after the text MLP). The padding rows are all the same row
 * (the text MLP, K and V of a zero row), so K_text and V_text hold the L real rows and one
 * padding row that attention counts text_len - L times: the same softmax, computed over
 * L + 1 keys instead of text_len. The patch weight [D, C, pt, ph, pw]
 * is used as a linear [D, C*pt*ph*pw] (patchify's column order is (c, kt, kh, kw)); the
 * head's out_dim*pt*ph*pw outputs per token are ordered (kt, kh, kw, c), as unpatchify expects.
 *
 * Dtypes: tensors that only feed a linear are allocated in be->gemm_in_dtype, other
 * activations in be->act_dtype; the residual stream, time embedding, modulation and
 * head stay float32 (the official code runs those under float32 autocast).
 *
 * Sequence parallelism (Ulysses, dit_forward_sp on P ranks): rank r keeps the rows
 * [r n, (r+1) n) of every token tensor, n = N/P, from the patch embedding to the head.
 * Only self-attention needs other rows; it trades tokens for heads around the attention:
 *   q [n, D] = [n, P, D/P] --swap01--> [P, n, D/P] --all_to_all--> [N, D/P]   (q, k, v)
 *   attention over all N tokens with this rank's H/P heads -> o [N, D/P]
 *   o [P, n, D/P] --all_to_all--> [P, n, D/P] --swap01--> [n, P, D/P] = [n, D]
 * (head group j = columns j D/P .. (j+1) D/P - 1, so block j of the swapped q is what
 * rank j needs). The attention output is exchanged in act_dtype and only then made the
 * gemm input of self_attn.o, so an f8 input's per-row scale covers the whole row.
 * Cross-attention, the FFN and the head are per row; the head rows are gathered at the
 * end and every rank unpatchifies the whole output.
 */
#include "wan_dit.h"
#include "replay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "rope.h"
#include "weights.h"

#define DIT_ROPE_THETA 10000.0
#define DIT_HEAD_DIM 128 /* head size of every released Wan2.1 model */
#define DIT_TEXT_LEN 512
#define DIT_EPS 1e-6f

typedef struct dit_linear {
    au_tensor w; /* [out, in] */
    au_tensor b; /* [out] float32 */
} dit_linear;

typedef struct dit_block {
    dit_linear sa_q, sa_k, sa_v, sa_o;
    au_tensor sa_norm_q, sa_norm_k; /* [D] */
    dit_linear ca_q, ca_k, ca_v, ca_o;
    au_tensor ca_norm_q, ca_norm_k; /* [D] */
    au_tensor norm3_w, norm3_b;     /* [D] */
    dit_linear ffn0, ffn2;          /* [ffn, D], [D, ffn] */
    au_tensor modulation;           /* [6, D] float32 (file: [1, 6, D]) */
} dit_block;

/* Activations of one forward, all taken from the act arena before any op runs.
 * N is every token, n this rank's rows (N/P; n = N on one rank). */
typedef struct dit_plan {
    au_comm *comm;     /* NULL on one rank */
    int world;         /* P */
    au_tensor sinus;   /* [1, freq_dim] float32 time sinusoid */
    au_tensor e_hid;   /* [1, D] float32 */
    au_tensor e;       /* [1, D] float32 time embedding (head modulation) */
    au_tensor e_silu;  /* [1, D] float32 */
    au_tensor e0;      /* [6, D] float32 block modulation offsets */
    au_tensor patches; /* [N, in_dim*pt*ph*pw] gemm_in (all tokens: patchify takes the whole grid) */
    au_tensor rope;    /* [n, hd/2, 2] float32: this rank's rows of the RoPE table (a view) */
    au_tensor x;       /* [n, D] float32 residual stream */
    au_tensor mod[2];  /* [6, D] float32 modulation of block i in mod[i % 2] (the next one's is made early) */
    au_tensor h;       /* [n, D] gemm_in: normalised input of q/k/v or ffn0 */
    au_tensor q, k, v; /* [n, D] act */
    au_tensor attn;    /* [n, D] gemm_in: attention output, input of o */
    au_tensor y;       /* [n, D] act: a branch output before it joins x */
    au_tensor ffn;     /* [n, ffn_dim] gemm_in */
    au_tensor head_mod; /* [2, D] float32 */
    au_tensor head_in;  /* [n, D] float32 */
    au_tensor head_out; /* [n, out_dim*pt*ph*pw] float32 */
    /* P > 1 only */
    au_tensor heads_xchg;            /* [P, n, D/P] act: swapped q/k/v going out, o coming back */
    au_tensor q_all, k_all, v_all;   /* [N, D/P] act: all tokens of this rank's heads */
    au_tensor o_all;                 /* [N, D/P] act: their attention output */
    au_tensor attn_act;              /* [n, D] act: o back in token rows, when gemm_in is another dtype */
    au_tensor head_all;              /* [N, out_dim*pt*ph*pw] float32: every rank's head rows */
} dit_plan;

struct wan_dit {
    au_backend *be;
    dit_config cfg;
    au_arena *weights;
    dit_linear patch;               /* w viewed as [D, in_dim*pt*ph*pw] */
    dit_linear text0, text2;        /* [D, text_dim], [D, D] */
    dit_linear time0, time2, tproj; /* [D, freq_dim], [D, D], [6D, D], float32 */
    dit_linear head;                /* [out_dim*pt*ph*pw, D], float32 */
    au_tensor head_mod;             /* [2, D] float32 (file: [1, 2, D]) */
    dit_block *blocks;
    float *host_sinusoid;           /* [freq_dim], reused every forward */
    /* RoPE table of the last grid, [N, hd/2, 2] float32, in its own arena. */
    au_arena *rope_arena;
    au_tensor rope;
    int rope_grid[3];
    au_replay replay; /* recorded forwards (one rank): engine/replay.h */
    /* the forward dit_begin prepared, which dit_run issues */
    au_arena *plan_act; /* NULL until dit_begin */
    dit_plan plan;
    au_tensor plan_x;
    int64_t plan_row0;
};

struct dit_text {
    const wan_dit *owner;
    const au_arena *arena; /* where k and v live */
    int n_layers;
    int64_t pad_copies;    /* how many text_len rows the last row stands for (1: no padding) */
    au_tensor kv[];        /* 2 per block: K [rows, D] (RMS-normed), V [rows, D]; rows = L, or
                            * L + 1 with the padding row last */
};

/* Run expr; on failure prefix the error with what and jump to fail. */
#define DIT_TRY(expr, ...)                                                                         \
    do {                                                                                           \
        int dit_rc_ = (expr);                                                                      \
        if (dit_rc_ < 0) {                                                                         \
            au_err_prefix(err, __VA_ARGS__);                                                       \
            rc = dit_rc_;                                                                          \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* ---- configuration ---- */

static const au_tensor *dit_need(const st_set *st, const char *name, int ndim, au_err *err) {
    const au_tensor *t = st_get(st, name);
    if (!t) {
        au_errf(err, AU_ENOTFOUND, "tensor %s: missing", name);
        return NULL;
    }
    if (t->ndim != ndim) {
        char buf[96];
        au_errf(err, AU_EFORMAT, "tensor %s: expected %d dims, found %s", name, ndim,
                au_shape_str(t, buf, sizeof buf));
        return NULL;
    }
    return t;
}

int dit_config_infer(const st_set *st, dit_config *cfg, au_err *err) {
    memset(cfg, 0, sizeof *cfg);
    const au_tensor *pe = dit_need(st, "patch_embedding.weight", 5, err);
    const au_tensor *te = pe ? dit_need(st, "text_embedding.0.weight", 2, err) : NULL;
    const au_tensor *tm = te ? dit_need(st, "time_embedding.0.weight", 2, err) : NULL;
    const au_tensor *ff = tm ? dit_need(st, "blocks.0.ffn.0.weight", 2, err) : NULL;
    const au_tensor *hh = ff ? dit_need(st, "head.head.weight", 2, err) : NULL;
    if (!hh)
        return au_err_prefix(err, "dit config");
    cfg->dim = (int)pe->shape[0];
    cfg->in_dim = (int)pe->shape[1];
    for (int i = 0; i < 3; i++)
        cfg->patch[i] = (int)pe->shape[2 + i];
    cfg->text_dim = (int)te->shape[1];
    cfg->freq_dim = (int)tm->shape[1];
    cfg->ffn_dim = (int)ff->shape[0];
    int patch_vol = cfg->patch[0] * cfg->patch[1] * cfg->patch[2];
    if (patch_vol <= 0 || hh->shape[0] % patch_vol != 0)
        return au_errf(err, AU_EFORMAT, "dit config: head.head.weight rows %lld not a multiple of patch volume %d",
                       (long long)hh->shape[0], patch_vol);
    cfg->out_dim = (int)(hh->shape[0] / patch_vol);
    char name[64];
    for (;;) {
        snprintf(name, sizeof name, "blocks.%d.modulation", cfg->num_layers);
        if (!st_get(st, name))
            break;
        cfg->num_layers++;
    }
    if (cfg->dim % DIT_HEAD_DIM != 0)
        return au_errf(err, AU_EUNSUPPORTED,
                       "dit config: dim %d is not a multiple of the head size %d; give num_heads explicitly",
                       cfg->dim, DIT_HEAD_DIM);
    cfg->num_heads = cfg->dim / DIT_HEAD_DIM;
    cfg->text_len = DIT_TEXT_LEN;
    cfg->eps = DIT_EPS;
    return 0;
}

static int dit_config_check(const dit_config *c, au_err *err) {
    if (c->dim <= 0 || c->ffn_dim <= 0 || c->freq_dim <= 0 || c->freq_dim % 2 != 0 || c->num_heads <= 0 ||
        c->num_layers <= 0 || c->in_dim <= 0 || c->out_dim <= 0 || c->text_len <= 0 || c->text_dim <= 0 ||
        c->patch[0] <= 0 || c->patch[1] <= 0 || c->patch[2] <= 0 || !(c->eps > 0.0f))
        return au_errf(err, AU_EINVAL, "dit config: every size must be positive (freq_dim even), eps > 0");
    if (c->dim % c->num_heads != 0 || (c->dim / c->num_heads) % 2 != 0)
        return au_errf(err, AU_EINVAL, "dit config: dim %d / num_heads %d must be an even integer", c->dim,
                       c->num_heads);
    return 0;
}

/* ---- loading ---- */

#define DIT_SPECS_GLOBAL 15
#define DIT_SPECS_PER_BLOCK 27

static int dit_add(au_weight_spec *specs, int *n, int cap, au_tensor *dst, au_weight_kind kind, int ndim,
                   const int64_t *shape, const char *name, au_err *err) {
    if (!weights_add(specs, n, cap, dst, kind, ndim, shape, "%s", name))
        return au_errf(err, AU_EINTERNAL, "dit: weight table full at %s", name);
    return 0;
}

static int dit_add_linear(au_weight_spec *specs, int *n, int cap, dit_linear *l, au_weight_kind kind,
                          int64_t out_f, int64_t in_f, const char *prefix, au_err *err) {
    char name[128];
    int64_t ws[2] = {out_f, in_f}, bs[1] = {out_f};
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = dit_add(specs, n, cap, &l->w, kind, 2, ws, name, err);
    snprintf(name, sizeof name, "%s.bias", prefix);
    return rc < 0 ? rc : dit_add(specs, n, cap, &l->b, AU_W_VECTOR, 1, bs, name, err);
}

/* The tensor table: every weight of the model, its file shape and how it is stored. */
static int dit_specs_build(wan_dit *d, au_weight_spec *specs, int cap, int *n, au_err *err) {
    const dit_config *c = &d->cfg;
    const int64_t D = c->dim, pv = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    const int64_t pe_shape[5] = {D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]};
    const int64_t vec[1] = {D}, mod6[3] = {1, 6, D}, mod2[3] = {1, 2, D}, pe_bias[1] = {D};
    int rc = 0;
    *n = 0;
    AU_TRY(dit_add(specs, n, cap, &d->patch.w, AU_W_MATRIX, 5, pe_shape, "patch_embedding.weight", err));
    AU_TRY(dit_add(specs, n, cap, &d->patch.b, AU_W_VECTOR, 1, pe_bias, "patch_embedding.bias", err));
    AU_TRY(dit_add_linear(specs, n, cap, &d->text0, AU_W_MATRIX, D, c->text_dim, "text_embedding.0", err));
    AU_TRY(dit_add_linear(specs, n, cap, &d->text2, AU_W_MATRIX, D, D, "text_embedding.2", err));
    AU_TRY(dit_add_linear(specs, n, cap, &d->time0, AU_W_F32, D, c->freq_dim, "time_embedding.0", err));
    AU_TRY(dit_add_linear(specs, n, cap, &d->time2, AU_W_F32, D, D, "time_embedding.2", err));
    AU_TRY(dit_add_linear(specs, n, cap, &d->tproj, AU_W_F32, 6 * D, D, "time_projection.1", err));
    for (int i = 0; i < c->num_layers; i++) {
        dit_block *b = &d->blocks[i];
        char p[96], name[128];
        static const char *const attn_name[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            dit_linear *l[4] = {a ? &b->ca_q : &b->sa_q, a ? &b->ca_k : &b->sa_k, a ? &b->ca_v : &b->sa_v,
                                a ? &b->ca_o : &b->sa_o};
            static const char *const proj[4] = {"q", "k", "v", "o"};
            for (int j = 0; j < 4; j++) {
                snprintf(p, sizeof p, "blocks.%d.%s.%s", i, attn_name[a], proj[j]);
                AU_TRY(dit_add_linear(specs, n, cap, l[j], AU_W_MATRIX, D, D, p, err));
            }
            snprintf(name, sizeof name, "blocks.%d.%s.norm_q.weight", i, attn_name[a]);
            AU_TRY(dit_add(specs, n, cap, a ? &b->ca_norm_q : &b->sa_norm_q, AU_W_VECTOR, 1, vec, name, err));
            snprintf(name, sizeof name, "blocks.%d.%s.norm_k.weight", i, attn_name[a]);
            AU_TRY(dit_add(specs, n, cap, a ? &b->ca_norm_k : &b->sa_norm_k, AU_W_VECTOR, 1, vec, name, err));
        }
        snprintf(name, sizeof name, "blocks.%d.norm3.weight", i);
        AU_TRY(dit_add(specs, n, cap, &b->norm3_w, AU_W_VECTOR, 1, vec, name, err));
        snprintf(name, sizeof name, "blocks.%d.norm3.bias", i);
        AU_TRY(dit_add(specs, n, cap, &b->norm3_b, AU_W_VECTOR, 1, vec, name, err));
        snprintf(p, sizeof p, "blocks.%d.ffn.0", i);
        AU_TRY(dit_add_linear(specs, n, cap, &b->ffn0, AU_W_MATRIX, c->ffn_dim, D, p, err));
        snprintf(p, sizeof p, "blocks.%d.ffn.2", i);
        AU_TRY(dit_add_linear(specs, n, cap, &b->ffn2, AU_W_MATRIX, D, c->ffn_dim, p, err));
        snprintf(name, sizeof name, "blocks.%d.modulation", i);
        AU_TRY(dit_add(specs, n, cap, &b->modulation, AU_W_VECTOR, 3, mod6, name, err));
    }
    AU_TRY(dit_add_linear(specs, n, cap, &d->head, AU_W_F32, c->out_dim * pv, D, "head.head", err));
    AU_TRY(dit_add(specs, n, cap, &d->head_mod, AU_W_VECTOR, 3, mod2, "head.modulation", err));
fail:
    return rc;
}

/* Drop the leading 1 of a [1, r, D] modulation table, or flatten a conv weight to [out, rest]. */
static int dit_view_2d(au_tensor *t, const char *name, au_err *err) {
    int64_t rest = au_numel(t) / t->shape[0];
    int64_t shape[2] = {t->shape[0], rest};
    if (t->ndim == 3 && t->shape[0] == 1) {
        shape[0] = t->shape[1];
        shape[1] = t->shape[2];
    }
    au_tensor v;
    if (au_reshape(t, 2, shape, &v) < 0)
        return au_errf(err, AU_EINTERNAL, "tensor %s: cannot view as 2-D", name);
    *t = v;
    return 0;
}

int dit_load(wan_dit **out, au_backend *be, const st_set *st, const dit_config *cfg, au_err *err) {
    *out = NULL;
    int rc = dit_config_check(cfg, err);
    if (rc < 0)
        return rc;
    wan_dit *d = calloc(1, sizeof *d);
    au_weight_spec *specs = NULL;
    if (!d)
        return au_errf(err, AU_ENOMEM, "dit: model struct");
    d->be = be;
    d->cfg = *cfg;
    replay_init(&d->replay, be);
    d->blocks = calloc((size_t)cfg->num_layers, sizeof *d->blocks);
    d->host_sinusoid = malloc((size_t)cfg->freq_dim * sizeof(float));
    int cap = DIT_SPECS_GLOBAL + DIT_SPECS_PER_BLOCK * cfg->num_layers, n = 0;
    specs = calloc((size_t)cap, sizeof *specs);
    if (!d->blocks || !d->host_sinusoid || !specs) {
        rc = au_errf(err, AU_ENOMEM, "dit: weight table for %d layers", cfg->num_layers);
        goto fail;
    }
    AU_TRY(dit_specs_build(d, specs, cap, &n, err));
    AU_TRY(weights_check(st, specs, n, err));
    size_t bytes = weights_bytes(be, st, specs, n);
    d->weights = be_arena_create(be, bytes);
    if (!d->weights) {
        rc = au_errf(err, AU_ENOMEM, "dit: weight arena of %zu bytes", bytes);
        goto fail;
    }
    AU_TRY(weights_load(be, d->weights, st, specs, n, err));
    AU_TRY(dit_view_2d(&d->patch.w, "patch_embedding.weight", err));
    AU_TRY(dit_view_2d(&d->head_mod, "head.modulation", err));
    for (int i = 0; i < cfg->num_layers; i++)
        AU_TRY(dit_view_2d(&d->blocks[i].modulation, "blocks.N.modulation", err));
    free(specs);
    *out = d;
    return 0;
fail:
    free(specs);
    dit_free(d);
    return au_err_prefix(err, "dit load");
}

void dit_free(wan_dit *d) {
    if (!d)
        return;
    replay_clear(&d->replay);
    if (d->rope_arena)
        be_arena_destroy(d->rope_arena);
    if (d->weights)
        be_arena_destroy(d->weights);
    free(d->host_sinusoid);
    free(d->blocks);
    free(d);
}

const dit_config *dit_get_config(const wan_dit *d) { return &d->cfg; }

/* ---- helpers ---- */

/* Row r of a 2-D float32 tensor as a 1-D [cols] vector (no copy). */
static au_tensor dit_row(const au_tensor *t, int64_t r) {
    int64_t cols = t->shape[t->ndim - 1];
    return au_tensor_make(t->dtype, (char *)t->data + (size_t)(r * cols) * au_dtype_size(t->dtype), 1, &cols);
}

static int dit_tensor2(au_arena *a, au_dtype dt, int64_t rows, int64_t cols, au_tensor *t, au_err *err) {
    const int64_t shape[2] = {rows, cols};
    return be_arena_tensor(a, dt, 2, shape, t, err);
}

void dit_time_sinusoid(float *emb, int dim, double t) {
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        double arg = t * pow(10000.0, -((double)i / (double)half));
        emb[i] = (float)cos(arg);
        emb[half + i] = (float)sin(arg);
    }
}

/* ---- text conditioning ---- */

int dit_prepare_text(wan_dit *d, au_arena *arena, const au_tensor *context, dit_text **out, au_err *err) {
    *out = NULL;
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    if (context->ndim != 2 || context->shape[0] > c->text_len || context->shape[1] != c->text_dim) {
        char buf[96];
        return au_errf(err, AU_EINVAL, "dit text: context %s, expected [L <= %d, %d]",
                       au_shape_str(context, buf, sizeof buf), c->text_len, c->text_dim);
    }
    dit_text *t = calloc(1, sizeof *t + 2 * (size_t)c->num_layers * sizeof(au_tensor));
    if (!t)
        return au_errf(err, AU_ENOMEM, "dit text: handle");
    t->owner = d;
    t->arena = arena;
    t->n_layers = c->num_layers;
    int rc = 0;
    const int64_t L = context->shape[0], n_rows = L < c->text_len ? L + 1 : L;
    t->pad_copies = L < c->text_len ? c->text_len - L : 1;
    au_tensor padded, hidden, text;
    /* padded: [n_rows, text_dim] gemm_in, the real rows then the zero padding row. */
    DIT_TRY(dit_tensor2(arena, be->gemm_in_dtype, n_rows, c->text_dim, &padded, err), "dit text");
    DIT_TRY(be_fill(be, &padded, 0.0f, err), "dit text: pad");
    if (L > 0) {
        au_tensor rows = au_view_rows(&padded, 0, L);
        DIT_TRY(be_copy(be, &rows, context, err), "dit text: copy context");
    }
    /* text = W2 GELU_tanh(W0 padded): [n_rows, D], feeds only the K/V linears. */
    DIT_TRY(dit_tensor2(arena, be->gemm_in_dtype, n_rows, c->dim, &hidden, err), "dit text");
    DIT_TRY(dit_tensor2(arena, be->gemm_in_dtype, n_rows, c->dim, &text, err), "dit text");
    DIT_TRY(be_linear(be, &hidden, &padded, &d->text0.w, &d->text0.b, AU_ACT_GELU_TANH, err),
            "dit text: text_embedding.0");
    DIT_TRY(be_linear(be, &text, &hidden, &d->text2.w, &d->text2.b, AU_ACT_NONE, err), "dit text: text_embedding.2");
    for (int i = 0; i < c->num_layers; i++) {
        const dit_block *b = &d->blocks[i];
        au_tensor *k = &t->kv[2 * i], *v = &t->kv[2 * i + 1];
        DIT_TRY(dit_tensor2(arena, be->act_dtype, n_rows, c->dim, k, err), "dit text: block %d", i);
        DIT_TRY(dit_tensor2(arena, be->act_dtype, n_rows, c->dim, v, err), "dit text: block %d", i);
        DIT_TRY(be_linear(be, k, &text, &b->ca_k.w, &b->ca_k.b, AU_ACT_NONE, err), "dit text: block %d cross_attn.k", i);
        DIT_TRY(be_rmsnorm(be, k, k, &b->ca_norm_k, c->eps, err), "dit text: block %d cross_attn.norm_k", i);
        DIT_TRY(be_linear(be, v, &text, &b->ca_v.w, &b->ca_v.b, AU_ACT_NONE, err), "dit text: block %d cross_attn.v", i);
    }
    *out = t;
    return 0;
fail:
    free(t);
    return rc;
}

void dit_text_free(dit_text *text) { free(text); }

/* ---- forward ---- */

/* Make d->rope hold the table of grid (f, h, w); rebuilt only when the grid changes. */
static int dit_rope_ensure(wan_dit *d, const int grid[3], au_err *err) {
    if (d->rope.data && memcmp(d->rope_grid, grid, sizeof d->rope_grid) == 0)
        return 0;
    const int head_dim = d->cfg.dim / d->cfg.num_heads;
    const int64_t n_tok = (int64_t)grid[0] * grid[1] * grid[2];
    const int64_t shape[3] = {n_tok, head_dim / 2, 2};
    size_t bytes = (size_t)n_tok * (size_t)head_dim * sizeof(float);
    int rc = 0;
    float *host = malloc(bytes);
    if (!host)
        return au_errf(err, AU_ENOMEM, "dit rope: %zu host bytes", bytes);
    d->rope.data = NULL;
    if (!d->rope_arena && !(d->rope_arena = be_arena_create(d->be, bytes))) {
        rc = au_errf(err, AU_ENOMEM, "dit rope: arena of %zu bytes", bytes);
        goto fail;
    }
    be_arena_reset(d->rope_arena);
    AU_TRY(rope_wan_table(host, grid[0], grid[1], grid[2], head_dim, DIT_ROPE_THETA, err));
    AU_TRY(be_arena_tensor(d->rope_arena, AU_F32, 3, shape, &d->rope, err));
    rc = be_upload(d->be, &d->rope, host, err);
    if (rc < 0)
        d->rope.data = NULL;
    else
        memcpy(d->rope_grid, grid, sizeof d->rope_grid);
fail:
    free(host);
    return rc < 0 ? au_err_prefix(err, "dit rope") : 0;
}

/* Take every activation of a forward over n_tok tokens, n_loc of them on this rank of
 * world, from act. */
static int dit_plan_alloc(const wan_dit *d, au_arena *act, int64_t n_tok, int64_t n_loc, int world,
                          dit_plan *p, au_err *err) {
    const au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    const int64_t D = c->dim, pv = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    const au_dtype gin = be->gemm_in_dtype, av = be->act_dtype;
    int rc = 0;
    AU_TRY(dit_tensor2(act, AU_F32, 1, c->freq_dim, &p->sinus, err));
    AU_TRY(dit_tensor2(act, AU_F32, 1, D, &p->e_hid, err));
    AU_TRY(dit_tensor2(act, AU_F32, 1, D, &p->e, err));
    AU_TRY(dit_tensor2(act, AU_F32, 1, D, &p->e_silu, err));
    AU_TRY(dit_tensor2(act, AU_F32, 6, D, &p->e0, err));
    AU_TRY(dit_tensor2(act, gin, n_tok, c->in_dim * pv, &p->patches, err));
    AU_TRY(dit_tensor2(act, AU_F32, n_loc, D, &p->x, err));
    AU_TRY(dit_tensor2(act, AU_F32, 6, D, &p->mod[0], err));
    AU_TRY(dit_tensor2(act, AU_F32, 6, D, &p->mod[1], err));
    AU_TRY(dit_tensor2(act, gin, n_loc, D, &p->h, err));
    AU_TRY(dit_tensor2(act, av, n_loc, D, &p->q, err));
    AU_TRY(dit_tensor2(act, av, n_loc, D, &p->k, err));
    AU_TRY(dit_tensor2(act, av, n_loc, D, &p->v, err));
    AU_TRY(dit_tensor2(act, gin, n_loc, D, &p->attn, err));
    AU_TRY(dit_tensor2(act, av, n_loc, D, &p->y, err));
    AU_TRY(dit_tensor2(act, gin, n_loc, c->ffn_dim, &p->ffn, err));
    AU_TRY(dit_tensor2(act, AU_F32, 2, D, &p->head_mod, err));
    AU_TRY(dit_tensor2(act, AU_F32, n_loc, D, &p->head_in, err));
    AU_TRY(dit_tensor2(act, AU_F32, n_loc, c->out_dim * pv, &p->head_out, err));
    if (world > 1) {
        const int64_t xchg[3] = {world, n_loc, D / world};
        AU_TRY(be_arena_tensor(act, av, 3, xchg, &p->heads_xchg, err));
        AU_TRY(dit_tensor2(act, av, n_tok, D / world, &p->q_all, err));
        AU_TRY(dit_tensor2(act, av, n_tok, D / world, &p->k_all, err));
        AU_TRY(dit_tensor2(act, av, n_tok, D / world, &p->v_all, err));
        AU_TRY(dit_tensor2(act, av, n_tok, D / world, &p->o_all, err));
        if (gin != av)
            AU_TRY(dit_tensor2(act, av, n_loc, D, &p->attn_act, err));
        AU_TRY(dit_tensor2(act, AU_F32, n_tok, c->out_dim * pv, &p->head_all, err));
    }
fail:
    if (rc < 0)
        au_err_prefix(err, "activations for %lld of %lld tokens", (long long)n_loc, (long long)n_tok);
    return rc;
}

/* p->e [1, D] and p->e0 [6, D], float32, from the sinusoid of the timestep in p->sinus. */
static int dit_time_embed(wan_dit *d, dit_plan *p, au_err *err) {
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    int rc = 0;
    DIT_TRY(be_linear(be, &p->e_hid, &p->sinus, &d->time0.w, &d->time0.b, AU_ACT_SILU, err), "time_embedding.0");
    DIT_TRY(be_linear(be, &p->e, &p->e_hid, &d->time2.w, &d->time2.b, AU_ACT_NONE, err), "time_embedding.2");
    DIT_TRY(be_activate(be, &p->e_silu, &p->e, AU_ACT_SILU, err), "time_projection.0");
    /* e0 is [6, D]; the linear writes the same 6D values as a [1, 6D] row. */
    const int64_t flat[2] = {1, 6 * (int64_t)c->dim};
    au_tensor e0_flat;
    if (au_reshape(&p->e0, 2, flat, &e0_flat) < 0)
        return au_errf(err, AU_EINTERNAL, "time: e0 view");
    DIT_TRY(be_linear(be, &e0_flat, &p->e_silu, &d->tproj.w, &d->tproj.b, AU_ACT_NONE, err), "time_projection.1");
fail:
    return rc;
}

/* x = Linear_patch(patchify(latent)) for this rank's rows (from row0), into the float32
 * residual p->x. */
static int dit_patch_embed(wan_dit *d, const au_tensor *latent, int64_t row0, dit_plan *p, au_err *err) {
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    int rc = 0;
    DIT_TRY(be_patchify(be, &p->patches, latent, c->patch[0], c->patch[1], c->patch[2], err), "patchify");
    au_tensor rows = au_view_rows(&p->patches, row0, p->x.shape[0]);
    DIT_TRY(be_linear(be, &p->y, &rows, &d->patch.w, &d->patch.b, AU_ACT_NONE, err), "patch_embedding");
    DIT_TRY(be_copy(be, &p->x, &p->y, err), "patch_embedding: to residual");
fail:
    return rc;
}

/* p->attn = self-attention of p->q, p->k, p->v (RoPE applied) over every token: directly on
 * one rank, through the head exchange of the file comment on several. */
static int dit_self_attention(wan_dit *d, dit_plan *p, au_err *err) {
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    const float scale = 1.0f / sqrtf((float)(c->dim / c->num_heads));
    int rc = 0;
    if (p->world == 1) {
        DIT_TRY(be_attention(be, &p->attn, &p->q, &p->k, &p->v, c->num_heads, scale, NULL, 1, err), "self_attn");
        return 0;
    }
    const int P = p->world;
    const int64_t n = p->q.shape[0], cols = c->dim / P;
    const int64_t split[3] = {n, P, cols}, blocks[3] = {P, n, cols};
    au_tensor *const mine[3] = {&p->q, &p->k, &p->v}, *const all[3] = {&p->q_all, &p->k_all, &p->v_all};
    static const char *const names[3] = {"q", "k", "v"};
    au_tensor src, dst;
    for (int i = 0; i < 3; i++) {
        /* the ops run in order on the backend (and the NCCL stream), so heads_xchg is free again */
        if (au_reshape(mine[i], 3, split, &src) < 0 || au_reshape(all[i], 3, blocks, &dst) < 0)
            return au_errf(err, AU_EINTERNAL, "self_attn: %s views", names[i]);
        DIT_TRY(be_swap01(be, &p->heads_xchg, &src, err), "self_attn: %s to head groups", names[i]);
        DIT_TRY(comm_all_to_all(p->comm, &dst, &p->heads_xchg, err), "self_attn: all_to_all %s", names[i]);
    }
    DIT_TRY(be_attention(be, &p->o_all, &p->q_all, &p->k_all, &p->v_all, c->num_heads / P, scale, NULL, 1, err),
            "self_attn");
    if (au_reshape(&p->o_all, 3, blocks, &src) < 0)
        return au_errf(err, AU_EINTERNAL, "self_attn: o view");
    DIT_TRY(comm_all_to_all(p->comm, &p->heads_xchg, &src, err), "self_attn: all_to_all o");
    /* back to token rows, then (f8 gemm input) quantized per whole row */
    au_tensor *rows = p->attn.dtype == p->o_all.dtype ? &p->attn : &p->attn_act;
    if (au_reshape(rows, 3, split, &dst) < 0)
        return au_errf(err, AU_EINTERNAL, "self_attn: row view");
    DIT_TRY(be_swap01(be, &dst, &p->heads_xchg, err), "self_attn: o to token rows");
    if (rows != &p->attn)
        DIT_TRY(be_copy(be, &p->attn, rows, err), "self_attn: o to the gemm input");
fail:
    return rc;
}

/* Block i's modulation into p->mod[i % 2], then (next NULL) h = norm1 of x. */
static int dit_block_modulation(wan_dit *d, int i, dit_plan *p, au_err *err) {
    au_backend *be = d->be;
    int rc = 0;
    au_tensor *mod = &p->mod[i % 2];
    DIT_TRY(be_add(be, mod, &d->blocks[i].modulation, &p->e0, err), "modulation of block %d", i);
fail:
    return rc;
}

/* Block i, with h = LN(x)(1 + m1) + m0 already made (by the previous block's last op, or by
 * dit_run for block 0); it ends by making the next block's h the same way, in the pass that adds
 * the FFN branch to x. */
static int dit_block_forward(wan_dit *d, int i, dit_plan *p, const dit_text *text, au_err *err) {
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    const dit_block *b = &d->blocks[i];
    const int heads = c->num_heads;
    const float scale = 1.0f / sqrtf((float)(c->dim / heads));
    const float eps = c->eps;
    int rc = 0;
    au_tensor m[6];
    for (int j = 0; j < 6; j++)
        m[j] = dit_row(&p->mod[i % 2], j);

    /* self-attention on h = LN(x)(1 + m1) + m0 */
    DIT_TRY(be_linear(be, &p->q, &p->h, &b->sa_q.w, &b->sa_q.b, AU_ACT_NONE, err), "self_attn.q");
    DIT_TRY(be_rmsnorm_rope(be, &p->q, &p->q, &b->sa_norm_q, eps, &p->rope, heads, err),
            "self_attn.norm_q, rope");
    DIT_TRY(be_linear(be, &p->k, &p->h, &b->sa_k.w, &b->sa_k.b, AU_ACT_NONE, err), "self_attn.k");
    DIT_TRY(be_rmsnorm_rope(be, &p->k, &p->k, &b->sa_norm_k, eps, &p->rope, heads, err),
            "self_attn.norm_k, rope");
    DIT_TRY(be_linear(be, &p->v, &p->h, &b->sa_v.w, &b->sa_v.b, AU_ACT_NONE, err), "self_attn.v");
    AU_TRY(dit_self_attention(d, p, err));
    DIT_TRY(be_linear(be, &p->y, &p->attn, &b->sa_o.w, &b->sa_o.b, AU_ACT_NONE, err), "self_attn.o");

    /* cross-attention: queries from norm3(x), keys/values precomputed from the text */
    DIT_TRY(be_add_gated_layernorm(be, &p->x, &p->y, &m[2], &p->h, &b->norm3_w, &b->norm3_b, NULL, NULL, eps, err),
            "self_attn residual, norm3");
    DIT_TRY(be_linear(be, &p->q, &p->h, &b->ca_q.w, &b->ca_q.b, AU_ACT_NONE, err), "cross_attn.q");
    DIT_TRY(be_rmsnorm(be, &p->q, &p->q, &b->ca_norm_q, eps, err), "cross_attn.norm_q");
    DIT_TRY(be_attention(be, &p->attn, &p->q, &text->kv[2 * i], &text->kv[2 * i + 1], heads, scale, NULL,
                         text->pad_copies, err),
            "cross_attn");
    DIT_TRY(be_linear(be, &p->y, &p->attn, &b->ca_o.w, &b->ca_o.b, AU_ACT_NONE, err), "cross_attn.o");

    /* FFN on LN(x)(1 + m4) + m3 */
    DIT_TRY(be_add_gated_layernorm(be, &p->x, &p->y, NULL, &p->h, NULL, NULL, &m[3], &m[4], eps, err),
            "cross_attn residual, norm2");
    DIT_TRY(be_linear(be, &p->ffn, &p->h, &b->ffn0.w, &b->ffn0.b, AU_ACT_GELU_TANH, err), "ffn.0");
    DIT_TRY(be_linear(be, &p->y, &p->ffn, &b->ffn2.w, &b->ffn2.b, AU_ACT_NONE, err), "ffn.2");
    if (i + 1 == c->num_layers) {
        DIT_TRY(be_add_gated(be, &p->x, &p->y, &m[5], err), "ffn residual");
        return 0;
    }
    AU_TRY(dit_block_modulation(d, i + 1, p, err));
    const au_tensor n0 = dit_row(&p->mod[(i + 1) % 2], 0), n1 = dit_row(&p->mod[(i + 1) % 2], 1);
    DIT_TRY(be_add_gated_layernorm(be, &p->x, &p->y, &m[5], &p->h, NULL, NULL, &n0, &n1, eps, err),
            "ffn residual, norm1 of block %d", i + 1);
fail:
    return rc;
}

/* out = unpatchify(W_head (LN(x)(1 + n1) + n0)), n = head.modulation + e, all float32;
 * on several ranks the head rows of all of them are gathered first. */
static int dit_head_forward(wan_dit *d, dit_plan *p, au_tensor *out, au_err *err) {
    au_backend *be = d->be;
    const dit_config *c = &d->cfg;
    int rc = 0;
    au_tensor e_vec = dit_row(&p->e, 0);
    DIT_TRY(be_add(be, &p->head_mod, &d->head_mod, &e_vec, err), "head.modulation");
    au_tensor n0 = dit_row(&p->head_mod, 0), n1 = dit_row(&p->head_mod, 1);
    DIT_TRY(be_layernorm(be, &p->head_in, &p->x, NULL, NULL, &n0, &n1, c->eps, err), "head.norm");
    DIT_TRY(be_linear(be, &p->head_out, &p->head_in, &d->head.w, &d->head.b, AU_ACT_NONE, err), "head.head");
    const au_tensor *rows = &p->head_out;
    if (p->world > 1) {
        DIT_TRY(comm_all_gather(p->comm, &p->head_all, &p->head_out, err), "head: all_gather");
        rows = &p->head_all;
    }
    DIT_TRY(be_unpatchify(be, out, rows, c->patch[0], c->patch[1], c->patch[2], err), "unpatchify");
fail:
    return rc;
}

static int dit_check_input(const wan_dit *d, const au_arena *act, const au_tensor *x, au_err *err) {
    const dit_config *c = &d->cfg;
    char bx[96];
    if (x->dtype != AU_F32 || x->ndim != 4 || x->shape[0] != c->in_dim)
        return au_errf(err, AU_EINVAL, "dit: x %s, expected [%d, F, H, W] f32", au_shape_str(x, bx, sizeof bx),
                       c->in_dim);
    for (int i = 0; i < 3; i++)
        if (x->shape[1 + i] <= 0 || x->shape[1 + i] % c->patch[i] != 0)
            return au_errf(err, AU_EINVAL, "dit: x %s: F, H, W must be positive multiples of the patch %dx%dx%d",
                           au_shape_str(x, bx, sizeof bx), c->patch[0], c->patch[1], c->patch[2]);
    if (be_arena_backend(act) != d->be)
        return au_errf(err, AU_EINVAL, "dit: activation arena belongs to another backend");
    return 0;
}

static int dit_check_output(const wan_dit *d, const au_arena *act, const au_tensor *x, const dit_text *text,
                            const au_tensor *out, au_err *err) {
    const dit_config *c = &d->cfg;
    char bo[96];
    if (out->dtype != AU_F32 || out->ndim != 4 || out->shape[0] != c->out_dim || out->shape[1] != x->shape[1] ||
        out->shape[2] != x->shape[2] || out->shape[3] != x->shape[3])
        return au_errf(err, AU_EINVAL, "dit: out %s, expected [%d, %lld, %lld, %lld] f32",
                       au_shape_str(out, bo, sizeof bo), c->out_dim, (long long)x->shape[1],
                       (long long)x->shape[2], (long long)x->shape[3]);
    if (!text || text->owner != d || text->n_layers != c->num_layers)
        return au_errf(err, AU_EINVAL, "dit: text conditioning was not prepared by this model");
    if (text->arena == act)
        return au_errf(err, AU_EINVAL, "dit: text conditioning lives in the activation arena, which forward resets");
    return 0;
}

/* The token and head split over the ranks of comm (NULL: one rank). */
static int dit_check_split(const wan_dit *d, const au_comm *comm, int64_t n_tok, au_err *err) {
    if (!comm)
        return 0;
    const int P = comm->world;
    if (P < 1 || comm->rank < 0 || comm->rank >= P)
        return au_errf(err, AU_EINVAL, "dit: rank %d of world %d", comm->rank, P);
    if (comm->be != d->be)
        return au_errf(err, AU_EINVAL, "dit: the comm works on another backend than the model");
    if (n_tok % P != 0 || d->cfg.num_heads % P != 0)
        return au_errf(err, AU_EINVAL, "dit: %lld tokens and %d heads must both be divisible by %d ranks",
                       (long long)n_tok, d->cfg.num_heads, P);
    return 0;
}

/* Every op of the forward dit_begin prepared, for text into out. */
static int dit_run_ops(wan_dit *d, const dit_text *text, au_tensor *out, au_err *err) {
    dit_plan *p = &d->plan;
    int rc = 0;
    AU_TRY(dit_time_embed(d, p, err));
    AU_TRY(dit_patch_embed(d, &d->plan_x, d->plan_row0, p, err));
    if (d->cfg.num_layers > 0) { /* block 0's h; each block makes the next one's */
        AU_TRY(dit_block_modulation(d, 0, p, err));
        const au_tensor m0 = dit_row(&p->mod[0], 0), m1 = dit_row(&p->mod[0], 1);
        if ((rc = be_layernorm(d->be, &p->h, &p->x, NULL, NULL, &m0, &m1, d->cfg.eps, err)) < 0)
            return au_err_prefix(err, "block 0: norm1");
    }
    for (int i = 0; i < d->cfg.num_layers; i++) {
        rc = dit_block_forward(d, i, p, text, err);
        if (rc < 0)
            return au_err_prefix(err, "block %d", i);
    }
    AU_TRY(dit_head_forward(d, p, out, err));
fail:
    return rc;
}

int dit_begin(wan_dit *d, au_arena *act, const au_tensor *x, float t, au_comm *comm, au_err *err) {
    const dit_config *c = &d->cfg;
    d->plan_act = NULL;
    int rc = dit_check_input(d, act, x, err);
    if (rc < 0)
        return rc;
    const int grid[3] = {(int)(x->shape[1] / c->patch[0]), (int)(x->shape[2] / c->patch[1]),
                         (int)(x->shape[3] / c->patch[2])};
    const int64_t n_tok = (int64_t)grid[0] * grid[1] * grid[2];
    if ((rc = dit_check_split(d, comm, n_tok, err)) < 0)
        return rc;
    const int world = comm ? comm->world : 1;
    const int64_t n_loc = n_tok / world;
    dit_plan *p = &d->plan;
    memset(p, 0, sizeof *p);
    p->comm = comm;
    p->world = world;
    /* Plan first. If the arena had to grow, plan again after a reset, which merges
     * its chunks into one: the next forward of these shapes then allocates nothing. */
    be_arena_reset(act);
    uint64_t chunks = be_arena_chunk_allocs(act);
    AU_TRY(dit_plan_alloc(d, act, n_tok, n_loc, world, p, err));
    if (be_arena_chunk_allocs(act) != chunks) {
        be_arena_reset(act);
        AU_TRY(dit_plan_alloc(d, act, n_tok, n_loc, world, p, err));
    }
    AU_TRY(dit_rope_ensure(d, grid, err));
    d->plan_row0 = (comm ? comm->rank : 0) * n_loc;
    p->rope = au_view_rows(&d->rope, d->plan_row0, n_loc);
    /* the one host value of the forward goes in before the (possibly recorded) ops */
    dit_time_sinusoid(d->host_sinusoid, c->freq_dim, (double)t);
    if ((rc = be_upload(d->be, &p->sinus, d->host_sinusoid, err)) < 0) {
        au_err_prefix(err, "time: upload sinusoid");
        goto fail;
    }
    d->plan_x = *x;
    d->plan_act = act;
    return 0;
fail:
    return au_err_prefix(err, "dit forward");
}

int dit_run(wan_dit *d, const dit_text *text, au_tensor *out, au_err *err) {
    if (!d->plan_act)
        return au_errf(err, AU_ECONFLICT, "dit: no forward begun (dit_begin)");
    int rc = dit_check_output(d, d->plan_act, &d->plan_x, text, out, err);
    if (rc < 0 || (rc = dit_run_ops(d, text, out, err)) < 0)
        return au_err_prefix(err, "dit forward");
    return 0;
}

/* What the ops of dit_run depend on besides the weights: the memory of its input, output,
 * activations (the arena's layout follows from the shapes and its first address), RoPE table
 * and text conditioning (its memory, rows and padding count). */
uint64_t dit_run_key(const wan_dit *d, uint64_t key, const dit_text *text, const au_tensor *out) {
    const dit_plan *p = &d->plan;
    if (!text) /* dit_run refuses it */
        return key;
    key = replay_key_ptr(key, d->plan_x.data);
    key = replay_key_ptr(key, out->data);
    for (int i = 0; i < d->plan_x.ndim; i++)
        key = replay_key_i64(key, d->plan_x.shape[i]);
    key = replay_key_ptr(key, p->sinus.data);
    key = replay_key_ptr(key, p->head_out.data);
    key = replay_key_ptr(key, d->rope.data);
    for (int i = 0; i < 2 * text->n_layers; i++)
        key = replay_key_ptr(key, text->kv[i].data);
    key = replay_key_i64(key, text->n_layers > 0 ? text->kv[0].shape[0] : 0);
    return replay_key_i64(key, text->pad_copies);
}

/* dit_run as the unit replay_run records. */
typedef struct dit_run_ctx {
    wan_dit *d;
    const dit_text *text;
    au_tensor *out;
} dit_run_ctx;

static int dit_run_recordable(void *ctx, au_err *err) {
    const dit_run_ctx *r = ctx;
    return dit_run(r->d, r->text, r->out, err);
}

int dit_forward_sp(wan_dit *d, au_arena *act, const au_tensor *x, float t, const dit_text *text,
                   au_comm *comm, au_tensor *out, au_err *err) {
    int rc = dit_begin(d, act, x, t, comm, err);
    if (rc < 0)
        return rc;
    if (comm) /* the collectives run on their own stream or the host: never recorded */
        return dit_run(d, text, out, err);
    dit_run_ctx run = {d, text, out}; /* bad text or out: dit_run refuses them, recorded or not */
    return replay_run(&d->replay, dit_run_key(d, REPLAY_KEY0, text, out), dit_run_recordable, &run, err);
}

int dit_forward(wan_dit *d, au_arena *act, const au_tensor *x, float t, const dit_text *text, au_tensor *out,
                au_err *err) {
    return dit_forward_sp(d, act, x, t, text, NULL, out, err);
}
