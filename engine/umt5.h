/* umt5.h - the UMT5-XXL text encoder of Wan2.1 (encoder only, per-layer position bias).
 *
 * umt5_encode() maps n_tokens token ids to n_tokens context rows [n_tokens, dim]
 * float32. It runs on the real tokens only (no padding): with padded keys masked
 * out, the official encoder gives the same rows for the real tokens, and the
 * pipeline keeps only those rows.
 *
 * Weights are read from a safetensors set under either naming, Hugging Face
 * (`shared.weight`, `encoder.block.N.layer.0.SelfAttention.q.weight`, ...) or the
 * official Wan2.1 .pth (`token_embedding.weight`, `blocks.N.attn.q.weight`, ...).
 * The set must stay open while the model lives: backends may keep references to
 * the mapped data.
 */
#ifndef AU_UMT5_H
#define AU_UMT5_H

#include <stdint.h>

#include "backend.h"
#include "safetensors.h"

typedef struct umt5_config {
    int vocab;        /* 256384 for UMT5-XXL */
    int dim;          /* model width, 4096 */
    int d_kv;         /* head size, 64 */
    int num_heads;    /* 64 */
    int ffn_dim;      /* 10240 */
    int num_layers;   /* 24 */
    int num_buckets;  /* relative position buckets, 32 */
    int max_distance; /* distance of the last bucket, 128 */
    float eps;        /* RMSNorm epsilon, 1e-6 */
} umt5_config;

/* Fill cfg from the tensor shapes of st (either naming); max_distance 128, eps 1e-6. */
int umt5_config_infer(const st_set *st, umt5_config *cfg, au_err *err);

typedef struct umt5 umt5;

/* Check every tensor against cfg, then load them into a weight arena of be. */
int umt5_load(umt5 **out, au_backend *be, const st_set *st, const umt5_config *cfg, au_err *err);
void umt5_free(umt5 *m);
const umt5_config *umt5_get_config(const umt5 *m);

/* Longest input umt5_encode takes: its position bias is [heads, n, n] float32 and looked up
 * from n n bucket ids (an int count). Wan encodes 512 tokens. */
#define UMT5_MAX_TOKENS 8192

/* ids: host int32 [n_tokens], each in [0, vocab). out: [n_tokens, dim] float32 (or the
 * backend's act_dtype) in backend memory, allocated by the caller, not from act. Activations come from act, which is reset first: a
 * second call with the same n_tokens allocates nothing. */
int umt5_encode(umt5 *m, au_arena *act, const int32_t *ids, int n_tokens, au_tensor *out, au_err *err);

/* Bidirectional T5 bucket of the relative position rel = key_pos - query_pos: half the
 * buckets for rel > 0; within a half, |rel| < half/2 exact, then logarithmic up to
 * max_distance, clamped to the last bucket. */
int umt5_relative_bucket(int rel, int num_buckets, int max_distance);

#endif
