// deps: au_umt5 au_cpu au_io au_core
/* test_umt5_names.c - the UMT5 loader and encoder on tiny random weights.
 *
 * The same random tensors are written with st_write under the Hugging Face names (with
 * shared.weight, and again with encoder.embed_tokens.weight) and under the official
 * Wan2.1 .pth names; all three must infer the same config and give bit-identical outputs,
 * which must also match a plain double-precision re-implementation of the encoder written
 * here (RMSNorm, unscaled attention with the bucketed bias, gated GELU-tanh FFN). Also
 * checked: the bucket function against values taken from the reference implementation, a
 * missing or misshapen tensor fails naming it, a bad token id fails, and a second encode
 * makes no arena allocation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "umt5.h"
#include "check.h"

enum { VOCAB = 57, DIM = 24, HEADS = 3, DKV = 5, INNER = HEADS * DKV, FFN = 40, LAYERS = 2, BUCKETS = 32 };
enum { N_TOKENS = 37 };

/* Per-block tensors in a fixed order, with both names and shapes. */
enum { T_NORM1, T_Q, T_K, T_V, T_O, T_POS, T_NORM2, T_GATE, T_FC1, T_FC2, T_PER_BLOCK };
static const char *const hf_fmt[T_PER_BLOCK] = {
    "encoder.block.%d.layer.0.layer_norm.weight",
    "encoder.block.%d.layer.0.SelfAttention.q.weight",
    "encoder.block.%d.layer.0.SelfAttention.k.weight",
    "encoder.block.%d.layer.0.SelfAttention.v.weight",
    "encoder.block.%d.layer.0.SelfAttention.o.weight",
    "encoder.block.%d.layer.0.SelfAttention.relative_attention_bias.weight",
    "encoder.block.%d.layer.1.layer_norm.weight",
    "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight",
    "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight",
    "encoder.block.%d.layer.1.DenseReluDense.wo.weight",
};
static const char *const wan_fmt[T_PER_BLOCK] = {
    "blocks.%d.norm1.weight",   "blocks.%d.attn.q.weight",      "blocks.%d.attn.k.weight",
    "blocks.%d.attn.v.weight",  "blocks.%d.attn.o.weight",      "blocks.%d.pos_embedding.embedding.weight",
    "blocks.%d.norm2.weight",   "blocks.%d.ffn.gate.0.weight",  "blocks.%d.ffn.fc1.weight",
    "blocks.%d.ffn.fc2.weight",
};
static const int64_t block_shape[T_PER_BLOCK][2] = {
    {DIM, 0}, {INNER, DIM}, {INNER, DIM}, {INNER, DIM}, {DIM, INNER},
    {BUCKETS, HEADS}, {DIM, 0}, {FFN, DIM}, {FFN, DIM}, {DIM, FFN},
};

/* All weights as host float32. */
typedef struct weights {
    float *embed;                        /* [VOCAB, DIM] */
    float *blk[LAYERS][T_PER_BLOCK];
    float *final_norm;                   /* [DIM] */
} weights;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rand_uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rand_array(int64_t n, float center, float spread) {
    float *p = malloc((size_t)n * sizeof *p);
    REQUIRE(p, "out of memory");
    for (int64_t i = 0; i < n; i++)
        p[i] = center + spread * rand_uniform();
    return p;
}
static int64_t numel2(const int64_t s[2]) { return s[1] ? s[0] * s[1] : s[0]; }

static void make_weights(weights *w) {
    w->embed = rand_array((int64_t)VOCAB * DIM, 0.0f, 1.7f);
    for (int l = 0; l < LAYERS; l++) {
        for (int t = 0; t < T_PER_BLOCK; t++) {
            int64_t n = numel2(block_shape[t]);
            float center = (t == T_NORM1 || t == T_NORM2) ? 1.0f : 0.0f;
            /* uniform with spread sqrt(3)*std: the official init's std, q 4x larger so the
             * unscaled attention is not flat */
            float std = t == T_NORM1 || t == T_NORM2 ? 0.2f
                        : t == T_Q                   ? 1.0f / sqrtf((float)DIM * DKV) * 4.0f
                        : t == T_POS                 ? 0.6f
                        : t == T_O                   ? 1.0f / sqrtf((float)INNER)
                        : t == T_FC2                 ? 1.0f / sqrtf((float)FFN)
                                                     : 1.0f / sqrtf((float)DIM);
            w->blk[l][t] = rand_array(n, center, std * 1.732f);
        }
    }
    w->final_norm = rand_array(DIM, 1.0f, 0.3f);
}

static void free_weights(weights *w) {
    free(w->embed);
    for (int l = 0; l < LAYERS; l++)
        for (int t = 0; t < T_PER_BLOCK; t++)
            free(w->blk[l][t]);
    free(w->final_norm);
}

enum { NAMING_HF_SHARED, NAMING_HF_EMBED_TOKENS, NAMING_WAN };

/* Write w under a naming, leaving out the tensor named `skip` (NULL: none) and giving the
 * tensor named `reshape` (NULL: none) one row less. */
static void write_file(const char *path, const weights *w, int naming, const char *skip, const char *reshape) {
    enum { MAX = 2 + LAYERS * T_PER_BLOCK };
    static char names[MAX][128];
    st_entry e[MAX];
    int n = 0;
    const char *embed_name = naming == NAMING_HF_SHARED        ? "shared.weight"
                             : naming == NAMING_HF_EMBED_TOKENS ? "encoder.embed_tokens.weight"
                                                                : "token_embedding.weight";
    int64_t emb_shape[2] = {VOCAB, DIM}, dim_shape[1] = {DIM};
    snprintf(names[n], 128, "%s", embed_name);
    e[n] = (st_entry){names[n], au_tensor_make(AU_F32, w->embed, 2, emb_shape)};
    n++;
    for (int l = 0; l < LAYERS; l++) {
        for (int t = 0; t < T_PER_BLOCK; t++) {
            snprintf(names[n], 128, naming == NAMING_WAN ? wan_fmt[t] : hf_fmt[t], l);
            const int64_t *s = block_shape[t];
            e[n] = (st_entry){names[n], au_tensor_make(AU_F32, w->blk[l][t], s[1] ? 2 : 1, s)};
            n++;
        }
    }
    snprintf(names[n], 128, "%s", naming == NAMING_WAN ? "norm.weight" : "encoder.final_layer_norm.weight");
    e[n] = (st_entry){names[n], au_tensor_make(AU_F32, w->final_norm, 1, dim_shape)};
    n++;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (skip && !strcmp(e[i].name, skip))
            continue;
        if (reshape && !strcmp(e[i].name, reshape))
            e[i].tensor.shape[0] -= 1;
        e[kept++] = e[i];
    }
    au_err err = {0};
    REQUIRE(st_write(path, e, kept, NULL, &err) == 0, "st_write %s: %s", path, err.msg);
}

/* Plain double-precision encoder over the same weights: out [n, DIM]. */
static void rms(double *y, const double *x, const float *w) {
    double ss = 0;
    for (int c = 0; c < DIM; c++)
        ss += x[c] * x[c];
    double r = 1.0 / sqrt(ss / DIM + 1e-6);
    for (int c = 0; c < DIM; c++)
        y[c] = x[c] * r * w[c];
}
static void matvec(double *y, const float *w, const double *x, int out, int in) { /* y = W x, W [out,in] */
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++)
            s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}
static void reference_encode(const weights *w, const int32_t *ids, int n, double *out) {
    double *x = calloc((size_t)n * DIM, sizeof *x), *h = calloc((size_t)n * DIM, sizeof *h);
    double *q = calloc((size_t)n * INNER, sizeof *q), *k = calloc((size_t)n * INNER, sizeof *k);
    double *v = calloc((size_t)n * INNER, sizeof *v), *a = calloc((size_t)n * INNER, sizeof *a);
    double *g = calloc(FFN, sizeof *g), *f = calloc(FFN, sizeof *f), *tmp = calloc(DIM, sizeof *tmp);
    double *p = calloc((size_t)n, sizeof *p);
    REQUIRE(x && h && q && k && v && a && g && f && tmp && p, "out of memory");
    for (int i = 0; i < n; i++)
        for (int c = 0; c < DIM; c++)
            x[i * DIM + c] = w->embed[(size_t)ids[i] * DIM + c];
    for (int l = 0; l < LAYERS; l++) {
        float *const *b = w->blk[l];
        for (int i = 0; i < n; i++) {
            rms(h + i * DIM, x + i * DIM, b[T_NORM1]);
            matvec(q + i * INNER, b[T_Q], h + i * DIM, INNER, DIM);
            matvec(k + i * INNER, b[T_K], h + i * DIM, INNER, DIM);
            matvec(v + i * INNER, b[T_V], h + i * DIM, INNER, DIM);
        }
        for (int hd = 0; hd < HEADS; hd++) {
            for (int i = 0; i < n; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < n; j++) {
                    double s = b[T_POS][umt5_relative_bucket(j - i, BUCKETS, 128) * HEADS + hd];
                    for (int d = 0; d < DKV; d++)
                        s += q[i * INNER + hd * DKV + d] * k[j * INNER + hd * DKV + d];
                    p[j] = s;
                    mx = s > mx ? s : mx;
                }
                for (int j = 0; j < n; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int d = 0; d < DKV; d++) {
                    double acc = 0;
                    for (int j = 0; j < n; j++)
                        acc += p[j] / sum * v[j * INNER + hd * DKV + d];
                    a[i * INNER + hd * DKV + d] = acc;
                }
            }
        }
        for (int i = 0; i < n; i++) {
            matvec(tmp, b[T_O], a + i * INNER, DIM, INNER);
            for (int c = 0; c < DIM; c++)
                x[i * DIM + c] += tmp[c];
            rms(h + i * DIM, x + i * DIM, b[T_NORM2]);
            matvec(g, b[T_GATE], h + i * DIM, FFN, DIM);
            matvec(f, b[T_FC1], h + i * DIM, FFN, DIM);
            for (int j = 0; j < FFN; j++) {
                double z = g[j];
                g[j] = 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))) * f[j];
            }
            matvec(tmp, b[T_FC2], g, DIM, FFN);
            for (int c = 0; c < DIM; c++)
                x[i * DIM + c] += tmp[c];
        }
    }
    for (int i = 0; i < n; i++)
        rms(out + i * DIM, x + i * DIM, w->final_norm);
    free(x), free(h), free(q), free(k), free(v), free(a), free(g), free(f), free(tmp), free(p);
}

/* Load path and encode ids; returns 0 or the load/encode status (err filled). */
static int load_and_encode(au_backend *be, const char *path, const int32_t *ids, int n, float *host_out,
                           umt5_config *cfg_out, au_err *err) {
    st_set *st = NULL;
    umt5 *m = NULL;
    au_arena *act = NULL, *io = NULL;
    int rc = st_open(&st, path, err);
    if (rc < 0)
        return rc;
    if ((rc = umt5_config_infer(st, cfg_out, err)) < 0 || (rc = umt5_load(&m, be, st, cfg_out, err)) < 0)
        goto done;
    act = be_arena_create(be, 1 << 16);
    io = be_arena_create(be, 1 << 16);
    REQUIRE(act && io, "arena");
    int64_t shape[2] = {n, DIM};
    au_tensor out;
    REQUIRE(be_arena_tensor(io, AU_F32, 2, shape, &out, err) == 0, "%s", err->msg);
    if ((rc = umt5_encode(m, act, ids, n, &out, err)) < 0)
        goto done;
    uint64_t allocs = be_arena_chunk_allocs(act);
    if ((rc = umt5_encode(m, act, ids, n, &out, err)) < 0)
        goto done;
    REQUIRE(be_arena_chunk_allocs(act) == allocs, "second encode allocated: %llu -> %llu chunks",
          (unsigned long long)allocs, (unsigned long long)be_arena_chunk_allocs(act));
    REQUIRE(be_download(be, host_out, &out, err) == 0, "%s", err->msg);
    REQUIRE(be_sync(be, err) == 0, "%s", err->msg);
done:
    be_arena_destroy(act);
    be_arena_destroy(io);
    umt5_free(m);
    st_close(st);
    return rc;
}

static void test_buckets(void) {
    /* From the reference formula (torch, float32): first distance of each bucket 8..15. */
    static const int first_of_bucket[8] = {8, 12, 16, 23, 32, 46, 64, 91};
    for (int d = 0; d < 8; d++) {
        REQUIRE(umt5_relative_bucket(-d, 32, 128) == d, "rel %d", -d);
        REQUIRE(umt5_relative_bucket(d, 32, 128) == (d ? 16 + d : 0), "rel %d", d);
    }
    for (int b = 0; b < 8; b++) {
        int d = first_of_bucket[b];
        REQUIRE(umt5_relative_bucket(-d, 32, 128) == 8 + b, "rel %d -> %d", -d, umt5_relative_bucket(-d, 32, 128));
        REQUIRE(umt5_relative_bucket(d, 32, 128) == 24 + b, "rel %d", d);
        REQUIRE(umt5_relative_bucket(-(d - 1), 32, 128) == 7 + b, "rel %d", -(d - 1));
    }
    REQUIRE(umt5_relative_bucket(-100000, 32, 128) == 15, "far left");
    REQUIRE(umt5_relative_bucket(100000, 32, 128) == 31, "far right");
}

int main(void) {
    test_buckets();

    char dir[] = "/tmp/test_umt5_XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[3][256], bad[256];
    for (int i = 0; i < 3; i++)
        snprintf(path[i], sizeof path[i], "%s/naming%d.safetensors", dir, i);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);

    weights w;
    make_weights(&w);
    for (int i = 0; i < 3; i++)
        write_file(path[i], &w, i, NULL, NULL);

    au_backend *be = NULL;
    au_err err = {0};
    REQUIRE(be_cpu_create(&be, 1, &err) == 0, "be_cpu_create: %s", err.msg);

    int32_t ids[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++)
        ids[i] = (i * 31 + 7) % VOCAB;
    ids[N_TOKENS - 1] = 1; /* like EOS */

    float *out[3];
    umt5_config cfg[3];
    for (int i = 0; i < 3; i++) {
        out[i] = malloc(sizeof(float) * N_TOKENS * DIM);
        REQUIRE(out[i], "out of memory");
        REQUIRE(load_and_encode(be, path[i], ids, N_TOKENS, out[i], &cfg[i], &err) == 0, "naming %d: %s", i,
              err.msg);
    }
    const umt5_config *c = &cfg[0];
    REQUIRE(c->vocab == VOCAB && c->dim == DIM && c->d_kv == DKV && c->num_heads == HEADS && c->ffn_dim == FFN &&
              c->num_layers == LAYERS && c->num_buckets == BUCKETS && c->max_distance == 128 && c->eps == 1e-6f,
          "inferred config: vocab %d dim %d d_kv %d heads %d ffn %d layers %d buckets %d", c->vocab, c->dim,
          c->d_kv, c->num_heads, c->ffn_dim, c->num_layers, c->num_buckets);
    for (int i = 1; i < 3; i++) {
        REQUIRE(!memcmp(&cfg[i], &cfg[0], sizeof cfg[0]), "naming %d infers another config", i);
        REQUIRE(!memcmp(out[i], out[0], sizeof(float) * N_TOKENS * DIM), "naming %d gives other outputs", i);
    }
    printf("three namings: identical config and outputs\n");

    double *ref = malloc(sizeof(double) * N_TOKENS * DIM);
    REQUIRE(ref, "out of memory");
    reference_encode(&w, ids, N_TOKENS, ref);
    double max_diff = 0, max_ref = 0;
    for (int i = 0; i < N_TOKENS * DIM; i++) {
        max_diff = fmax(max_diff, fabs(out[0][i] - ref[i]));
        max_ref = fmax(max_ref, fabs(ref[i]));
    }
    printf("against the double reference: max rel error %.3g (max |ref| %.3g)\n", max_diff / max_ref, max_ref);
    REQUIRE(max_diff / max_ref < 1e-5, "rel error %g", max_diff / max_ref);
    /* The bias matters: moving the last token changes the first row. */
    int32_t ids2[N_TOKENS];
    memcpy(ids2, ids, sizeof ids);
    ids2[0] = ids[N_TOKENS - 1];
    ids2[N_TOKENS - 1] = ids[0];
    umt5_config c2;
    float *out2 = malloc(sizeof(float) * N_TOKENS * DIM);
    REQUIRE(out2, "out of memory");
    REQUIRE(load_and_encode(be, path[2], ids2, N_TOKENS, out2, &c2, &err) == 0, "%s", err.msg);
    REQUIRE(memcmp(out2 + DIM, out[0] + DIM, sizeof(float) * DIM), "row 1 ignores token positions");

    /* A missing tensor fails naming it, under either naming. */
    write_file(bad, &w, NAMING_WAN, "blocks.1.ffn.fc1.weight", NULL);
    REQUIRE(load_and_encode(be, bad, ids, N_TOKENS, out2, &c2, &err) < 0, "missing fc1 accepted");
    printf("missing tensor: %s\n", err.msg);
    REQUIRE(strstr(err.msg, "blocks.1.ffn.fc1.weight") || strstr(err.msg, "block.1.layer.1.DenseReluDense.wi_1"),
          "error does not name the tensor: %s", err.msg);
    write_file(bad, &w, NAMING_HF_SHARED, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
               NULL);
    REQUIRE(load_and_encode(be, bad, ids, N_TOKENS, out2, &c2, &err) < 0, "missing bias accepted");
    printf("missing tensor: %s\n", err.msg);
    REQUIRE(strstr(err.msg, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"),
          "error does not name the tensor: %s", err.msg);
    write_file(bad, &w, NAMING_HF_SHARED, "encoder.final_layer_norm.weight", NULL);
    REQUIRE(load_and_encode(be, bad, ids, N_TOKENS, out2, &c2, &err) < 0, "missing final norm accepted");
    printf("missing tensor: %s\n", err.msg);
    REQUIRE(strstr(err.msg, "final_layer_norm") || strstr(err.msg, "norm.weight"), "error: %s", err.msg);
    write_file(bad, &w, NAMING_WAN, NULL, "blocks.0.attn.o.weight");
    REQUIRE(load_and_encode(be, bad, ids, N_TOKENS, out2, &c2, &err) < 0, "misshapen o accepted");
    printf("wrong shape: %s\n", err.msg);
    REQUIRE(strstr(err.msg, "blocks.0.attn.o.weight") || strstr(err.msg, "block.0.layer.0.SelfAttention.o"),
          "error does not name the tensor: %s", err.msg);

    /* A token id outside the vocabulary is refused, naming the position. */
    ids2[5] = VOCAB;
    REQUIRE(load_and_encode(be, path[0], ids2, N_TOKENS, out2, &c2, &err) == AU_EINVAL, "bad id accepted");
    printf("bad id: %s\n", err.msg);
    REQUIRE(strstr(err.msg, "token 5"), "error: %s", err.msg);

    for (int i = 0; i < 3; i++) {
        unlink(path[i]);
        free(out[i]);
    }
    unlink(bad);
    rmdir(dir);
    free(out2);
    free(ref);
    free_weights(&w);
    be_destroy(be);
    printf("ok\n");
    return 0;
}
