/* backend.h - the compute interface the model code is written against.
 *
 * The model files (umt5.c, wan_dit.c, wan_vae.c, sampler.c, pipeline.c) call
 * only these ops, so the same code runs on the float32 CPU reference backend
 * (engine/cpu/) and on the CUDA backend (kernels/). A backend is a table of
 * function pointers plus its private state; the be_* inline wrappers below are
 * what model code calls.
 *
 * Conventions
 *  - Every op returns 0 or a negative au_status and fills err naming the op.
 *    Ops may run asynchronously (CUDA); be_sync() surfaces late errors.
 *  - Shapes are row-major. "[n, dim]" ops act on the last dim and treat all
 *    leading dims as rows. Output tensors are allocated by the caller (from an
 *    arena) with the shape documented on each op; ops never allocate.
 *  - dtypes: the CPU backend computes in float32 and accepts f32/f16/bf16/f8
 *    weights. Activations are allocated in be->act_dtype; tensors that only
 *    feed a linear may be allocated in be->gemm_in_dtype (f8 on the CUDA FP8
 *    path: the producing op then quantizes per row, the fusion DESIGN.md asks
 *    for). Latents, time embeddings and modulation vectors stay float32.
 *  - Vectors named w, b, shift, scale, gate are 1-D [dim] float32 (from
 *    weights loaded as AU_W_VECTOR, or rows of float32 activations).
 *  - Outputs may alias inputs only where an op says so.
 *  - A backend runs one op at a time: its scratch memory and threads are shared, so two
 *    threads that compute concurrently need two backends (or one lock around the calls).
 */
#ifndef AU_BACKEND_H
#define AU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct au_backend au_backend;
typedef struct au_arena au_arena;
typedef struct au_graph au_graph; /* a recorded sequence of ops (record_begin .. record_end) */

typedef enum au_act {
    AU_ACT_NONE = 0,
    AU_ACT_GELU_TANH, /* 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))) */
    AU_ACT_SILU,      /* x*sigmoid(x) */
} au_act;

/* How a weight is stored once loaded. */
typedef enum au_weight_kind {
    AU_W_MATRIX = 0, /* linear [out,in] or conv [out,in,kt,kh,kw]: may be quantized (f8 + per-row scale) or kept as in the file */
    AU_W_VECTOR,     /* bias, norm gamma, modulation table: always float32 */
    AU_W_EMBED,      /* embedding table [vocab, dim], read by be_embed */
    AU_W_F32,        /* any weight that must stay float32 (time-embedding MLP, small heads) */
    AU_W_MATRIX16,   /* a linear matrix never quantized (bf16 on the GPU in every precision): the text
                        encoder, which runs once a job, where e4m3 costs accuracy and saves little */
} au_weight_kind;

typedef struct au_backend_ops {
    const char *name; /* "cpu", "cuda" */
    void (*destroy)(au_backend *be);

    /* memory */
    void *(*mem_alloc)(au_backend *be, size_t bytes); /* NULL on failure */
    void (*mem_free)(au_backend *be, void *ptr);
    /* upload: au_nbytes(dst) bytes; host_src may be reused as soon as it returns.
     * download: au_nbytes(src) bytes; waits for the work that produces src. */
    int (*upload)(au_backend *be, au_tensor *dst, const void *host_src, au_err *err);
    int (*download)(au_backend *be, void *host_dst, const au_tensor *src, au_err *err);
    int (*sync)(au_backend *be, au_err *err);

    /* Size in bytes that weight_load will take from the arena for src. */
    size_t (*weight_bytes)(au_backend *be, const au_tensor *src, au_weight_kind kind);
    /* Convert a host tensor (e.g. mmapped safetensors data, any file dtype; src_scale is
     * its f32 per-row scale for f8 sources or NULL) into backend storage from arena.
     * A backend may keep a reference to src->data instead of copying (the CPU backend does
     * for matrices and embeddings), so the source must outlive the loaded weight.
     * AU_W_MATRIX of more than 2 dims (convolution kernels) is never quantized to f8. */
    int (*weight_load)(au_backend *be, au_arena *arena, const au_tensor *src, const float *src_scale,
                       au_weight_kind kind, au_tensor *dst, au_err *err);

    /* y[n,out] = act(x[n,in] . w[out,in]^T + b[out]); b may be NULL. */
    int (*linear)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w,
                  const au_tensor *b, au_act act, au_err *err);
    /* y[n,dim] = table[ids[i], :]; ids are host int32 in [0, vocab). */
    int (*embed)(au_backend *be, au_tensor *y, const au_tensor *table, const int32_t *ids, int n,
                 au_err *err);
    /* y = (LN(x) * w + b) * (1 + scale) + shift over the last dim, LN without affine;
     * w, b, shift, scale each NULL or [dim] float32. y may alias x. */
    int (*layernorm)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w,
                     const au_tensor *b, const au_tensor *shift, const au_tensor *scale, float eps,
                     au_err *err);
    /* y = x / sqrt(mean(x^2 over last dim) + eps) * w; w may be NULL. y may alias x. */
    int (*rmsnorm)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                   au_err *err);
    /* Channel-first norm of the Wan VAE: x [C, S...] (C = shape[0]);
     * y[c,s] = act(x[c,s] / max(||x[:,s]||_2, 1e-12) * sqrt(C) * gamma[c] + bias[c]); bias may be
     * NULL; y may alias x. */
    int (*rmsnorm_channels)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                            const au_tensor *bias, au_act act, au_err *err);
    /* Rotary embedding in place on x [n_tokens, n_heads * head_dim]: pairs (2i, 2i+1) of each
     * head rotated by the angle whose (cos, sin) is cossin [n_tokens, head_dim/2, 2] float32. */
    int (*rope)(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err);
    /* rmsnorm then rope in one pass (the DiT's q and k): y = rope(x / sqrt(mean(x^2) + eps) * w)
     * with rope's cossin and n_heads; y may alias x. */
    int (*rmsnorm_rope)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                        const au_tensor *cossin, int n_heads, au_err *err);
    /* The DiT's residual and the norm after it in one pass: x += y * gate (gate NULL: plain
     * add), then h = layernorm(x, w, b, shift, scale, eps) exactly as layernorm. h must not
     * alias x or y. */
    int (*add_gated_layernorm)(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate,
                               au_tensor *h, const au_tensor *w, const au_tensor *b, const au_tensor *shift,
                               const au_tensor *scale, float eps, au_err *err);
    /* out[nq, H*D] = softmax(scale * q k^T + bias) v per head h, with q [nq, H*D], k and v
     * [nk, H*D] (head h = columns h*D..h*D+D-1); bias NULL or float32 [H, nq, nk].
     * last_key_copies >= 1: the last row of k and v stands for that many identical rows (its
     * weight in the softmax is multiplied by it), so keys padded with copies of one row (the
     * DiT's text) cost one row; 1 is plain attention. */
    int (*attention)(au_backend *be, au_tensor *out, const au_tensor *q, const au_tensor *k,
                     const au_tensor *v, int n_heads, float scale, const au_tensor *bias,
                     int64_t last_key_copies, au_err *err);

    /* Elementwise. b has the numel of a, or is a [last dim] vector broadcast over rows. y may alias a. */
    int (*add)(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
    int (*mul)(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
    /* x += y * gate; gate NULL (plain add) or a [last dim] float32 vector. */
    int (*add_gated)(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_err *err);
    /* y = act(x); y may alias x. */
    int (*activate)(au_backend *be, au_tensor *y, const au_tensor *x, au_act act, au_err *err);
    /* y = sum_i coef[i] * xs[i] (same numel); y may alias any xs[i]. coef is a float32 tensor
     * of n values on this backend, read when the op runs: a recording of the op replays with
     * the coefficients the tensor holds then (the sampler's per-step scalars). */
    int (*lincomb)(au_backend *be, au_tensor *y, int n, const au_tensor *const *xs, const au_tensor *coef,
                   au_err *err);
    int (*clamp)(au_backend *be, au_tensor *y, const au_tensor *x, float lo, float hi, au_err *err);
    /* dst = src with dtype conversion (same numel; f8 dst quantizes per row). */
    int (*copy)(au_backend *be, au_tensor *dst, const au_tensor *src, au_err *err);
    int (*fill)(au_backend *be, au_tensor *y, float value, au_err *err);

    /* Layout. */
    /* x [C, F, H, W] -> y [(F/pt)*(H/ph)*(W/pw), C*pt*ph*pw], token order (f,h,w), column order (c,kt,kh,kw). */
    int (*patchify)(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
    /* x [n_tokens, pt*ph*pw*C] (column order (kt,kh,kw,c)) -> y [C, F, H, W]. */
    int (*unpatchify)(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
    /* y [N, M] = x [M, N]^T. */
    int (*transpose)(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
    /* x [A, B, rest...] -> y [B, A, rest...]: the first two dims exchanged, each rest block moved
     * whole (the head shuffle of sequence parallelism). Same dtype, not f8; y must not alias x. */
    int (*swap01)(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
    /* y = concat(a, b) along dim. */
    int (*concat)(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, int dim, au_err *err);
    /* y = x narrowed along dim to [start, start + y->shape[dim]). */
    int (*slice)(au_backend *be, au_tensor *y, const au_tensor *x, int dim, int64_t start, au_err *err);
    /* 3-D convolution, x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], b [Cout] or NULL,
     * zero padding pad = {t_before, t_after, h_before, h_after, w_before, w_after},
     * stride = {st, sh, sw}; y [Cout, T', H', W']. */
    int (*conv3d)(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                  const int stride[3], const int pad[6], au_err *err);
    /* Nearest 2x spatial upsampling: x [C, T, H, W] -> y [C, T, 2H, 2W]. */
    int (*upsample2x)(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
    /* Time doubling of the VAE's upsample3d: x [2C, T, H, W] -> y [C, 2T, H, W],
     * y[c, 2t+i] = x[i*C + c, t]. */
    int (*time_interleave)(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
    /* The decoded video as 8-bit frames: x [3, T, H, W] (float dtype, values in [-1, 1]) ->
     * y [T, H, W, 3] u8, y = trunc((clamp(x, -1, 1) + 1) * 0.5 * 255) (NaN as -1). */
    int (*to_rgb8)(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);

    /* Recording (NULL on a backend that only runs ops as they come, the CPU one; engine/replay.h
     * is how model code uses it). Between record_begin and record_end the ops are recorded, not
     * run; record_end returns the graph (or, given out NULL, drops the recording, as after an op
     * failed). graph_run runs the recorded ops again on the same memory, whatever it holds then;
     * it fails with AU_ECONFLICT when the backend's own scratch memory moved since the recording
     * (record again). While recording, an op that would have to allocate or wait on the host fails. */
    int (*record_begin)(au_backend *be, au_err *err);
    int (*record_end)(au_backend *be, au_graph **out, au_err *err);
    int (*graph_run)(au_backend *be, au_graph *g, au_err *err);
    void (*graph_free)(au_backend *be, au_graph *g);
} au_backend_ops;

struct au_backend {
    const au_backend_ops *ops;
    au_dtype act_dtype;     /* activations */
    au_dtype gemm_in_dtype; /* tensors that only feed a linear */
    void *impl;             /* backend private state */
};

/* For backends: a tensor descriptor an op may use (non-NULL, 1..AU_MAX_DIMS dims, no negative
 * dim, data unless empty); AU_EINVAL naming the op and the argument otherwise. */
int be_check_tensor(const char *op, const char *name, const au_tensor *t, au_err *err);

/* Backends. */
int be_cpu_create(au_backend **out, int n_threads, au_err *err); /* n_threads 0 = all cores */
void be_destroy(au_backend *be);

/* Arenas: bump allocators over backend memory (engine/arena.c). Memory grows in chunks the
 * first time a plan runs; be_arena_reset keeps it (merging chunks into one), so a repeated
 * computation of the same shapes allocates nothing. be_arena_chunk_allocs counts backend
 * allocations so a test can prove a denoising step makes none. */
au_arena *be_arena_create(au_backend *be, size_t first_chunk_bytes);
void be_arena_destroy(au_arena *a);
void be_arena_reset(au_arena *a);
void *be_arena_alloc(au_arena *a, size_t bytes, au_err *err); /* 256-byte aligned */
int be_arena_tensor(au_arena *a, au_dtype dt, int ndim, const int64_t *shape, au_tensor *out, au_err *err);
size_t be_arena_used(const au_arena *a);
size_t be_arena_capacity(const au_arena *a);
uint64_t be_arena_chunk_allocs(const au_arena *a);
au_backend *be_arena_backend(const au_arena *a);

/* Wrappers the model code calls. */
#define AU_BE_CALL(be, op, ...) ((be)->ops->op((be), __VA_ARGS__))
#define be_linear(be, ...) AU_BE_CALL(be, linear, __VA_ARGS__)
#define be_embed(be, ...) AU_BE_CALL(be, embed, __VA_ARGS__)
#define be_layernorm(be, ...) AU_BE_CALL(be, layernorm, __VA_ARGS__)
#define be_rmsnorm(be, ...) AU_BE_CALL(be, rmsnorm, __VA_ARGS__)
#define be_rmsnorm_channels(be, ...) AU_BE_CALL(be, rmsnorm_channels, __VA_ARGS__)
#define be_rope(be, ...) AU_BE_CALL(be, rope, __VA_ARGS__)
#define be_rmsnorm_rope(be, ...) AU_BE_CALL(be, rmsnorm_rope, __VA_ARGS__)
#define be_add_gated_layernorm(be, ...) AU_BE_CALL(be, add_gated_layernorm, __VA_ARGS__)
#define be_attention(be, ...) AU_BE_CALL(be, attention, __VA_ARGS__)
#define be_add(be, ...) AU_BE_CALL(be, add, __VA_ARGS__)
#define be_mul(be, ...) AU_BE_CALL(be, mul, __VA_ARGS__)
#define be_add_gated(be, ...) AU_BE_CALL(be, add_gated, __VA_ARGS__)
#define be_activate(be, ...) AU_BE_CALL(be, activate, __VA_ARGS__)
#define be_lincomb(be, ...) AU_BE_CALL(be, lincomb, __VA_ARGS__)
#define be_clamp(be, ...) AU_BE_CALL(be, clamp, __VA_ARGS__)
#define be_copy(be, ...) AU_BE_CALL(be, copy, __VA_ARGS__)
#define be_fill(be, ...) AU_BE_CALL(be, fill, __VA_ARGS__)
#define be_patchify(be, ...) AU_BE_CALL(be, patchify, __VA_ARGS__)
#define be_unpatchify(be, ...) AU_BE_CALL(be, unpatchify, __VA_ARGS__)
#define be_transpose(be, ...) AU_BE_CALL(be, transpose, __VA_ARGS__)
#define be_swap01(be, ...) AU_BE_CALL(be, swap01, __VA_ARGS__)
#define be_concat(be, ...) AU_BE_CALL(be, concat, __VA_ARGS__)
#define be_slice(be, ...) AU_BE_CALL(be, slice, __VA_ARGS__)
#define be_conv3d(be, ...) AU_BE_CALL(be, conv3d, __VA_ARGS__)
#define be_upsample2x(be, ...) AU_BE_CALL(be, upsample2x, __VA_ARGS__)
#define be_time_interleave(be, ...) AU_BE_CALL(be, time_interleave, __VA_ARGS__)
#define be_to_rgb8(be, ...) AU_BE_CALL(be, to_rgb8, __VA_ARGS__)
#define be_upload(be, ...) AU_BE_CALL(be, upload, __VA_ARGS__)
#define be_download(be, ...) AU_BE_CALL(be, download, __VA_ARGS__)
#define be_sync(be, ...) AU_BE_CALL(be, sync, __VA_ARGS__)

/* Model code: `AU_TRY(be_linear(be, &y, &x, &w, &b, AU_ACT_NONE, err));` jumps to `fail`. */
#define AU_TRY(expr)                                                                               \
    do {                                                                                           \
        int au_try_rc_ = (expr);                                                                   \
        if (au_try_rc_ < 0) {                                                                      \
            rc = au_try_rc_;                                                                       \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

#endif
