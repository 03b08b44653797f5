/* umt5.c - UMT5-XXL encoder (Wan2.1 text encoder), written against backend.h.
 *
 * Per layer, with x the residual stream [n, dim]:
 *   h = RMSNorm(x) * norm1                      (no mean subtraction, float32 stats, eps 1e-6)
 *   x = x + Wo softmax(q k^T + B) v             q,k,v = Wq h, Wk h, Wv h split in heads of d_kv;
 *                                               no 1/sqrt(d_kv) scale; B [heads, n, n] relative
 *                                               position bias of this layer (not shared)
 *   h = RMSNorm(x) * norm2
 *   x = x + Wfc2 (gelu_tanh(Wgate h) * Wfc1 h)  gated FFN, no biases anywhere
 * and out = RMSNorm(x) * final_norm. B[h, i, j] = table[bucket(j - i), h] where table is the
 * layer's [num_buckets, heads] embedding, kept float32 on the backend. For each encode the host
 * computes the bucket of every (i, j) once (ids [n n]); per layer B is built on the backend as
 * an embedding lookup of those ids (rows [n n, heads]) and one transpose to [heads, n n].
 * The linears are AU_W_MATRIX16, 16-bit in every precision: the encoder runs once a job, and
 * e4m3 weights and inputs cost its output ~10% (tests/gpu/test_cuda_models.c).
 *
 * Tensor table (HF name | official .pth name, shape, kind); inner = num_heads * d_kv:
 *   shared.weight (or encoder.embed_tokens.weight) | token_embedding.weight  [vocab, dim] embed
 *   encoder.block.N.layer.0.layer_norm.weight          | blocks.N.norm1.weight   [dim]        vector
 *   encoder.block.N.layer.0.SelfAttention.{q,k,v}.weight | blocks.N.attn.{q,k,v}.weight [inner, dim]
 *   encoder.block.N.layer.0.SelfAttention.o.weight     | blocks.N.attn.o.weight  [dim, inner]
 *   encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight
 *                                   | blocks.N.pos_embedding.embedding.weight   [num_buckets, heads] f32
 *   encoder.block.N.layer.1.layer_norm.weight          | blocks.N.norm2.weight   [dim]        vector
 *   encoder.block.N.layer.1.DenseReluDense.wi_0.weight | blocks.N.ffn.gate.0.weight [ffn, dim] (GELU side)
 *   encoder.block.N.layer.1.DenseReluDense.wi_1.weight | blocks.N.ffn.fc1.weight [ffn, dim]
 *   encoder.block.N.layer.1.DenseReluDense.wo.weight   | blocks.N.ffn.fc2.weight [dim, ffn]
 *   encoder.final_layer_norm.weight                    | norm.weight             [dim]        vector
 */
#include "umt5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

/* Names of the per-block tensors: Hugging Face format, official format (printf, one %d). */
enum { B_NORM1, B_Q, B_K, B_V, B_O, B_POS, B_NORM2, B_GATE, B_FC1, B_FC2, B_COUNT };
static const char *const block_names[B_COUNT][2] = {
    [B_NORM1] = {"encoder.block.%d.layer.0.layer_norm.weight", "blocks.%d.norm1.weight"},
    [B_Q] = {"encoder.block.%d.layer.0.SelfAttention.q.weight", "blocks.%d.attn.q.weight"},
    [B_K] = {"encoder.block.%d.layer.0.SelfAttention.k.weight", "blocks.%d.attn.k.weight"},
    [B_V] = {"encoder.block.%d.layer.0.SelfAttention.v.weight", "blocks.%d.attn.v.weight"},
    [B_O] = {"encoder.block.%d.layer.0.SelfAttention.o.weight", "blocks.%d.attn.o.weight"},
    [B_POS] = {"encoder.block.%d.layer.0.SelfAttention.relative_attention_bias.weight",
               "blocks.%d.pos_embedding.embedding.weight"},
    [B_NORM2] = {"encoder.block.%d.layer.1.layer_norm.weight", "blocks.%d.norm2.weight"},
    [B_GATE] = {"encoder.block.%d.layer.1.DenseReluDense.wi_0.weight", "blocks.%d.ffn.gate.0.weight"},
    [B_FC1] = {"encoder.block.%d.layer.1.DenseReluDense.wi_1.weight", "blocks.%d.ffn.fc1.weight"},
    [B_FC2] = {"encoder.block.%d.layer.1.DenseReluDense.wo.weight", "blocks.%d.ffn.fc2.weight"},
};
static const char *const embed_names[3] = {"shared.weight", "encoder.embed_tokens.weight",
                                           "token_embedding.weight"};
static const char *const final_norm_names[2] = {"encoder.final_layer_norm.weight", "norm.weight"};

typedef struct umt5_block {
    au_tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
    au_tensor pos;          /* [num_buckets, num_heads] f32 */
} umt5_block;

struct umt5 {
    umt5_config cfg;
    au_backend *be;
    au_arena *weights;
    au_tensor embed;      /* [vocab, dim] */
    au_tensor final_norm; /* [dim] f32 */
    umt5_block *blocks;   /* [num_layers] */
    /* Host bucket ids of the position bias, grown to the largest n_tokens seen. */
    int32_t *bucket_ids; /* [n n]: bucket(j - i) at i n + j */
    size_t bucket_cap;   /* elements of bucket_ids */
};

int umt5_relative_bucket(int rel, int num_buckets, int max_distance) {
    int half = num_buckets / 2;
    int bucket = rel > 0 ? half : 0;
    int dist = rel < 0 ? -rel : rel;
    int max_exact = half / 2;
    if (dist < max_exact)
        return bucket + dist;
    /* float32 like the reference: max_exact + trunc(log(d/max_exact)/log(max_dist/max_exact)*(half-max_exact)) */
    float scaled = logf((float)dist / (float)max_exact) / (float)log((double)max_distance / max_exact) *
                   (float)(half - max_exact);
    int large = max_exact + (int)scaled;
    if (large > half - 1)
        large = half - 1;
    return bucket + large;
}

/* The first of names[0..n) present in st, or NULL; *which gets its index. */
static const au_tensor *find_any(const st_set *st, const char *const *names, int n, int *which) {
    for (int i = 0; i < n; i++) {
        const au_tensor *t = st_get(st, names[i]);
        if (t) {
            if (which)
                *which = i;
            return t;
        }
    }
    return NULL;
}

/* Block tensor `kind` of layer `layer` under either naming; names gets both names. */
static const au_tensor *find_block(const st_set *st, int kind, int layer, char names[2][128]) {
    snprintf(names[0], 128, block_names[kind][0], layer);
    snprintf(names[1], 128, block_names[kind][1], layer);
    const char *const list[2] = {names[0], names[1]};
    return find_any(st, list, 2, NULL);
}

static int missing_block(au_err *err, char names[2][128]) {
    return au_errf(err, AU_ENOTFOUND, "tensor %s: missing (nor found as %s)", names[0], names[1]);
}

int umt5_config_infer(const st_set *st, umt5_config *cfg, au_err *err) {
    char names[2][128];
    memset(cfg, 0, sizeof *cfg);
    const au_tensor *emb = find_any(st, embed_names, 3, NULL);
    if (!emb)
        return au_errf(err, AU_ENOTFOUND, "umt5: tensor %s: missing (nor found as %s or %s)",
                       embed_names[0], embed_names[1], embed_names[2]);
    if (emb->ndim != 2)
        return au_errf(err, AU_EFORMAT, "umt5: token embedding has %d dims, expected 2", emb->ndim);
    cfg->vocab = (int)emb->shape[0];
    cfg->dim = (int)emb->shape[1];
    while (find_block(st, B_Q, cfg->num_layers, names))
        cfg->num_layers++;
    if (cfg->num_layers == 0) {
        find_block(st, B_Q, 0, names);
        missing_block(err, names);
        return au_err_prefix(err, "umt5: no encoder block");
    }
    const au_tensor *q = find_block(st, B_Q, 0, names);
    const au_tensor *pos = find_block(st, B_POS, 0, names);
    if (!pos) {
        missing_block(err, names);
        return au_err_prefix(err, "umt5");
    }
    const au_tensor *gate = find_block(st, B_GATE, 0, names);
    if (!gate) {
        missing_block(err, names);
        return au_err_prefix(err, "umt5");
    }
    if (q->ndim != 2 || pos->ndim != 2 || gate->ndim != 2)
        return au_errf(err, AU_EFORMAT, "umt5: block 0 q, position bias and gate must be 2-D");
    cfg->num_buckets = (int)pos->shape[0];
    cfg->num_heads = (int)pos->shape[1];
    cfg->ffn_dim = (int)gate->shape[0];
    if (cfg->num_heads <= 0 || q->shape[0] % cfg->num_heads != 0)
        return au_errf(err, AU_EFORMAT, "umt5: q rows %lld not a multiple of %d heads",
                       (long long)q->shape[0], cfg->num_heads);
    cfg->d_kv = (int)(q->shape[0] / cfg->num_heads);
    cfg->max_distance = 128;
    cfg->eps = 1e-6f;
    return 0;
}

static int check_config(const umt5_config *c, au_err *err) {
    if (c->vocab <= 0 || c->dim <= 0 || c->d_kv <= 0 || c->num_heads <= 0 || c->ffn_dim <= 0 ||
        c->num_layers <= 0 || c->num_buckets < 4 || c->max_distance <= c->num_buckets / 4 || !(c->eps > 0))
        return au_errf(err, AU_EINVAL,
                       "umt5: bad config (vocab %d dim %d d_kv %d heads %d ffn %d layers %d buckets %d "
                       "max_distance %d eps %g)",
                       c->vocab, c->dim, c->d_kv, c->num_heads, c->ffn_dim, c->num_layers, c->num_buckets,
                       c->max_distance, (double)c->eps);
    return 0;
}

/* Add one block tensor to the spec table under both names. */
static void add_block_spec(au_weight_spec *specs, int *n, int cap, au_tensor *dst, au_weight_kind kind,
                           int ndim, int64_t d0, int64_t d1, int kind_index, int layer) {
    int64_t shape[2] = {d0, d1};
    au_weight_spec *s = weights_add(specs, n, cap, dst, kind, ndim, shape, block_names[kind_index][0], layer);
    snprintf(s->alt_name, sizeof s->alt_name, block_names[kind_index][1], layer);
}

int umt5_load(umt5 **out, au_backend *be, const st_set *st, const umt5_config *cfg, au_err *err) {
    *out = NULL;
    int rc = check_config(cfg, err);
    if (rc < 0)
        return rc;
    umt5 *m = calloc(1, sizeof *m);
    au_weight_spec *specs = NULL;
    if (!m)
        return au_errf(err, AU_ENOMEM, "umt5: model struct");
    m->cfg = *cfg;
    m->be = be;
    const umt5_config *c = &m->cfg;
    int64_t inner = (int64_t)c->num_heads * c->d_kv;
    int cap = 2 + 10 * c->num_layers, n = 0;
    m->blocks = calloc((size_t)c->num_layers, sizeof *m->blocks);
    specs = calloc((size_t)cap, sizeof *specs);
    if (!m->blocks || !specs) {
        rc = au_errf(err, AU_ENOMEM, "umt5: weight table");
        goto fail;
    }

    /* HF files name the embedding shared.weight or encoder.embed_tokens.weight: expect the
     * one present (shared.weight if neither is), with the official name as the alternative. */
    int which = 0;
    find_any(st, embed_names, 2, &which);
    int64_t emb_shape[2] = {c->vocab, c->dim};
    au_weight_spec *s = weights_add(specs, &n, cap, &m->embed, AU_W_EMBED, 2, emb_shape, "%s", embed_names[which]);
    snprintf(s->alt_name, sizeof s->alt_name, "%s", embed_names[2]);
    for (int l = 0; l < c->num_layers; l++) {
        umt5_block *b = &m->blocks[l];
        add_block_spec(specs, &n, cap, &b->norm1, AU_W_VECTOR, 1, c->dim, 0, B_NORM1, l);
        add_block_spec(specs, &n, cap, &b->q, AU_W_MATRIX16, 2, inner, c->dim, B_Q, l);
        add_block_spec(specs, &n, cap, &b->k, AU_W_MATRIX16, 2, inner, c->dim, B_K, l);
        add_block_spec(specs, &n, cap, &b->v, AU_W_MATRIX16, 2, inner, c->dim, B_V, l);
        add_block_spec(specs, &n, cap, &b->o, AU_W_MATRIX16, 2, c->dim, inner, B_O, l);
        add_block_spec(specs, &n, cap, &b->pos, AU_W_F32, 2, c->num_buckets, c->num_heads, B_POS, l);
        add_block_spec(specs, &n, cap, &b->norm2, AU_W_VECTOR, 1, c->dim, 0, B_NORM2, l);
        add_block_spec(specs, &n, cap, &b->gate, AU_W_MATRIX16, 2, c->ffn_dim, c->dim, B_GATE, l);
        add_block_spec(specs, &n, cap, &b->fc1, AU_W_MATRIX16, 2, c->ffn_dim, c->dim, B_FC1, l);
        add_block_spec(specs, &n, cap, &b->fc2, AU_W_MATRIX16, 2, c->dim, c->ffn_dim, B_FC2, l);
    }
    int64_t dim_shape[1] = {c->dim};
    s = weights_add(specs, &n, cap, &m->final_norm, AU_W_VECTOR, 1, dim_shape, "%s", final_norm_names[0]);
    snprintf(s->alt_name, sizeof s->alt_name, "%s", final_norm_names[1]);

    rc = weights_check(st, specs, n, err);
    if (rc < 0)
        goto fail_prefixed;
    size_t bytes = weights_bytes(be, st, specs, n);
    m->weights = be_arena_create(be, bytes);
    if (!m->weights) {
        rc = au_errf(err, AU_ENOMEM, "umt5: weight arena of %zu bytes", bytes);
        goto fail;
    }
    rc = weights_load(be, m->weights, st, specs, n, err);
    if (rc < 0)
        goto fail_prefixed;
    free(specs);
    *out = m;
    return 0;

fail_prefixed:
    au_err_prefix(err, "umt5");
fail:
    free(specs);
    umt5_free(m);
    return rc;
}

void umt5_free(umt5 *m) {
    if (!m)
        return;
    if (m->weights)
        be_arena_destroy(m->weights);
    free(m->blocks);
    free(m->bucket_ids);
    free(m);
}

const umt5_config *umt5_get_config(const umt5 *m) { return &m->cfg; }

/* Activations of one encode, all from the caller's arena. */
typedef struct umt5_bufs {
    au_tensor x;          /* [n, dim] act: residual stream */
    au_tensor h;          /* [n, dim] act: normed input of q/k/v and of the FFN */
    au_tensor q, k, v;    /* [n, inner] act */
    au_tensor attn;       /* [n, inner] act */
    au_tensor proj;       /* [n, dim] act: output of o and of fc2 */
    au_tensor gate, fc1;  /* [n, ffn] act */
    au_tensor hidden;     /* [n, ffn] act: gelu(gate) * fc1 */
    au_tensor bias_rows;  /* [n n, heads] f32: the position bias as looked up */
    au_tensor bias;       /* [heads, n, n] f32 */
} umt5_bufs;

/* Lay the activation tensors out in one block: sizes only while base is NULL, then
 * pointers into base. Offsets and f8 row scales are 256-byte aligned like the arena's. */
typedef struct umt5_layout {
    char *base;
    size_t bytes;
} umt5_layout;

static void layout_tensor(umt5_layout *L, au_dtype dt, int ndim, const int64_t *shape, au_tensor *out) {
    *out = au_tensor_make(dt, NULL, ndim, shape);
    size_t data_bytes = (au_nbytes(out) + 255) & ~(size_t)255;
    size_t scale_bytes = dt == AU_F8_E4M3 ? ((size_t)shape[0] * sizeof(float) + 255) & ~(size_t)255 : 0;
    if (L->base) {
        out->data = L->base + L->bytes;
        if (scale_bytes)
            out->scale = L->base + L->bytes + data_bytes;
    }
    L->bytes += data_bytes + scale_bytes;
}

static void layout_bufs(const umt5 *m, int n, umt5_layout *L, umt5_bufs *t) {
    const umt5_config *c = &m->cfg;
    au_dtype a = m->be->act_dtype; /* the linears' inputs too: they run in 16 bits (AU_W_MATRIX16) */
    int64_t inner = (int64_t)c->num_heads * c->d_kv;
    int64_t nd[2] = {n, c->dim}, ni[2] = {n, inner}, nf[2] = {n, c->ffn_dim};
    int64_t hnn[3] = {c->num_heads, n, n}, nnh[2] = {(int64_t)n * n, c->num_heads};
    layout_tensor(L, a, 2, nd, &t->x);
    layout_tensor(L, a, 2, nd, &t->h);
    layout_tensor(L, a, 2, ni, &t->q);
    layout_tensor(L, a, 2, ni, &t->k);
    layout_tensor(L, a, 2, ni, &t->v);
    layout_tensor(L, a, 2, ni, &t->attn);
    layout_tensor(L, a, 2, nd, &t->proj);
    layout_tensor(L, a, 2, nf, &t->gate);
    layout_tensor(L, a, 2, nf, &t->fc1);
    layout_tensor(L, a, 2, nf, &t->hidden);
    layout_tensor(L, AU_F32, 2, nnh, &t->bias_rows);
    layout_tensor(L, AU_F32, 3, hnn, &t->bias);
}

/* All activations as one arena allocation: a fresh arena then holds a single chunk,
 * which be_arena_reset keeps as is, so the next encode of n tokens allocates nothing. */
static int alloc_bufs(umt5 *m, au_arena *act, int n, umt5_bufs *t, au_err *err) {
    umt5_layout L = {NULL, 0};
    layout_bufs(m, n, &L, t);
    L.base = be_arena_alloc(act, L.bytes, err);
    if (!L.base)
        return au_err_prefix(err, "umt5 activations for %d tokens", n);
    L.bytes = 0;
    layout_bufs(m, n, &L, t);
    return 0;
}

/* Grow bucket_ids and fill it for n tokens. */
static int prepare_buckets(umt5 *m, int n, au_err *err) {
    const umt5_config *c = &m->cfg;
    size_t elems = (size_t)n * n;
    if (m->bucket_cap < elems) {
        int32_t *p = realloc(m->bucket_ids, elems * sizeof *p);
        if (!p)
            return au_errf(err, AU_ENOMEM, "umt5: position buckets for %d tokens", n);
        m->bucket_ids = p;
        m->bucket_cap = elems;
    }
    for (int rel = -(n - 1); rel <= n - 1; rel++) {
        int32_t bucket = umt5_relative_bucket(rel, c->num_buckets, c->max_distance);
        for (int i = rel < 0 ? -rel : 0, j = i + rel; i < n && j < n; i++, j++)
            m->bucket_ids[(size_t)i * n + j] = bucket;
    }
    return 0;
}

/* B[h, i, j] = pos[bucket(j - i), h]: rows [n n, heads] looked up on the backend, then transposed. */
static int build_bias(umt5 *m, const umt5_block *b, int n, umt5_bufs *t, au_err *err) {
    int64_t shape[2] = {m->cfg.num_heads, (int64_t)n * n};
    au_tensor flat = au_tensor_make(AU_F32, t->bias.data, 2, shape);
    int rc = be_embed(m->be, &t->bias_rows, &b->pos, m->bucket_ids, n * n, err);
    return rc < 0 ? rc : be_transpose(m->be, &flat, &t->bias_rows, err);
}

static int block_forward(umt5 *m, const umt5_block *b, int n, umt5_bufs *t, au_err *err) {
    au_backend *be = m->be;
    float eps = m->cfg.eps;
    int rc = 0;
    const char *stage = "self_attn";
    AU_TRY(be_rmsnorm(be, &t->h, &t->x, &b->norm1, eps, err));
    AU_TRY(be_linear(be, &t->q, &t->h, &b->q, NULL, AU_ACT_NONE, err));
    AU_TRY(be_linear(be, &t->k, &t->h, &b->k, NULL, AU_ACT_NONE, err));
    AU_TRY(be_linear(be, &t->v, &t->h, &b->v, NULL, AU_ACT_NONE, err));
    AU_TRY(build_bias(m, b, n, t, err));
    AU_TRY(be_attention(be, &t->attn, &t->q, &t->k, &t->v, m->cfg.num_heads, 1.0f, &t->bias, 1, err));
    AU_TRY(be_linear(be, &t->proj, &t->attn, &b->o, NULL, AU_ACT_NONE, err));
    AU_TRY(be_add(be, &t->x, &t->x, &t->proj, err));
    stage = "ffn";
    AU_TRY(be_rmsnorm(be, &t->h, &t->x, &b->norm2, eps, err));
    AU_TRY(be_linear(be, &t->gate, &t->h, &b->gate, NULL, AU_ACT_GELU_TANH, err));
    AU_TRY(be_linear(be, &t->fc1, &t->h, &b->fc1, NULL, AU_ACT_NONE, err));
    AU_TRY(be_mul(be, &t->hidden, &t->gate, &t->fc1, err));
    AU_TRY(be_linear(be, &t->proj, &t->hidden, &b->fc2, NULL, AU_ACT_NONE, err));
    AU_TRY(be_add(be, &t->x, &t->x, &t->proj, err));
    return 0;
fail:
    au_err_prefix(err, "%s", stage);
    return rc;
}

int umt5_encode(umt5 *m, au_arena *act, const int32_t *ids, int n_tokens, au_tensor *out, au_err *err) {
    const umt5_config *c = &m->cfg;
    int n = n_tokens, rc = 0;
    if (n <= 0 || n > UMT5_MAX_TOKENS)
        return au_errf(err, AU_EINVAL, "umt5: n_tokens %d must be in [1, %d]", n, UMT5_MAX_TOKENS);
    if ((out->dtype != AU_F32 && out->dtype != m->be->act_dtype) || out->ndim != 2 || out->shape[0] != n ||
        out->shape[1] != c->dim) {
        char buf[64];
        return au_errf(err, AU_EINVAL, "umt5: output must be [%d,%d] f32 or %s, got %s", n, c->dim,
                       au_dtype_name(m->be->act_dtype), au_shape_str(out, buf, sizeof buf));
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return au_errf(err, AU_EINVAL, "umt5: token %d: id %d outside vocab %d", i, (int)ids[i], c->vocab);
    if (be_arena_backend(act) != m->be)
        return au_errf(err, AU_EINVAL, "umt5: activation arena belongs to another backend");

    be_arena_reset(act);
    umt5_bufs t;
    AU_TRY(alloc_bufs(m, act, n, &t, err));
    AU_TRY(prepare_buckets(m, n, err));
    rc = be_embed(m->be, &t.x, &m->embed, ids, n, err);
    if (rc < 0)
        return au_err_prefix(err, "umt5 token embedding");
    for (int l = 0; l < c->num_layers; l++) {
        rc = block_forward(m, &m->blocks[l], n, &t, err);
        if (rc < 0)
            return au_err_prefix(err, "umt5 block %d", l);
    }
    rc = be_rmsnorm(m->be, out, &t.x, &m->final_norm, c->eps, err);
    if (rc < 0)
        return au_err_prefix(err, "umt5 final norm");
    return 0;
fail:
    return rc;
}
