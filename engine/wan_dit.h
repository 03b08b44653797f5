/* wan_dit.h - the Wan2.1 text-to-video diffusion transformer (WanModel, t2v).
 *
 * One forward maps a latent x [in_dim, F, H, W], a timestep t in [0, 1000] and
 * the prompt's text conditioning to the predicted velocity [out_dim, F, H, W]:
 * patch embedding (1x2x2 patches, tokens in (f, h, w) order), a sinusoidal time
 * embedding and its six modulation vectors, num_layers blocks of
 * self-attention with 3-D RoPE, cross-attention to the 512 text rows and a
 * GELU(tanh) FFN, then a modulated head and unpatchify. The residual stream,
 * time embedding and modulation are float32 whatever the backend's activation
 * dtype (the official code keeps them in float32 too).
 *
 * Weights use the official Wan2.1 key names (also those of the ComfyUI
 * repackaged files): patch_embedding, text_embedding.{0,2}, time_embedding.{0,2},
 * time_projection.1, blocks.N.{self_attn,cross_attn}.{q,k,v,o,norm_q,norm_k},
 * blocks.N.{norm3,ffn.0,ffn.2,modulation}, head.head, head.modulation. The
 * st_set must stay open while the model lives (backends may reference the
 * mapped data).
 *
 * A wan_dit caches the RoPE table of the last latent grid, so one model must
 * not run two forwards at once.
 */
#ifndef AU_WAN_DIT_H
#define AU_WAN_DIT_H

#include "backend.h"
#include "safetensors.h"

typedef struct dit_config {
    int dim, ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_len, text_dim;
    int patch[3]; /* (t, h, w) = (1, 2, 2) */
    float eps;    /* 1e-6 */
} dit_config;

/* Fill cfg from the tensor shapes of st. text_len is 512 and eps 1e-6 (not in the
 * shapes); num_heads is dim / 128, the head size of every released Wan2.1 model
 * (a config with another head size must be given explicitly). */
int dit_config_infer(const st_set *st, dit_config *cfg, au_err *err);

typedef struct wan_dit wan_dit;

/* Check every tensor against cfg (the first mismatch is named), then load them into
 * one weight arena of be. */
int dit_load(wan_dit **out, au_backend *be, const st_set *st, const dit_config *cfg, au_err *err);
void dit_free(wan_dit *d);
const dit_config *dit_get_config(const wan_dit *d);

/* Per-job text conditioning, computed once per prompt and reused at every step:
 * context [L <= text_len, text_dim] (real tokens only, any float dtype, backend
 * memory) is padded with zero rows to text_len, passed through the text MLP, and
 * each block's cross-attention K (RMS-normed) and V are precomputed (the identical padding
 * rows once, counted text_len - L times by the attention).
 * Its tensors are taken from arena, which is not reset: they live until the
 * caller resets that arena, which must not be the one given to dit_forward.
 * The host-side handle is freed with dit_text_free. */
typedef struct dit_text dit_text;
int dit_prepare_text(wan_dit *d, au_arena *arena, const au_tensor *context, dit_text **out, au_err *err);
void dit_text_free(dit_text *text);

/* x [in_dim, F, H, W] float32, t the timestep in [0, 1000], out [out_dim, F, H, W]
 * float32 (caller-allocated, not from act). F, H, W must be multiples of the patch.
 * act is reset first and holds all activations: a second call with the same shapes
 * allocates nothing from the backend. On a backend that records (CUDA), the second call on
 * the same memory (x, out, act, text) is recorded and later ones replay the recording
 * (engine/replay.h), one launch per forward. */
int dit_forward(wan_dit *d, au_arena *act, const au_tensor *x, float t, const dit_text *text,
                au_tensor *out, au_err *err);

/* dit_forward as one rank of a sequence-parallel group (Ulysses; comm.h): every rank of
 * comm calls it with the same whole latent x, t and equal text conditioning, computes the
 * rows [rank N/P, (rank+1) N/P) of the N tokens (self-attention over all of them through two
 * all-to-alls per block, on num_heads/P heads each) and receives the whole out. N and
 * num_heads must be divisible by P (AU_EINVAL otherwise); act is sized for the slice.
 * Collective ops may still run when it returns (NCCL): comm_wait before out is read on the
 * host. comm NULL is dit_forward. */
typedef struct au_comm au_comm;
int dit_forward_sp(wan_dit *d, au_arena *act, const au_tensor *x, float t, const dit_text *text,
                   au_comm *comm, au_tensor *out, au_err *err);

/* A forward in two halves, for a caller that records more than one forward as one unit (the
 * pipeline's denoising step: both CFG branches, the guidance and the sampler update, one
 * graph). dit_begin checks x, plans the activations in act (reset first) and uploads t's
 * sinusoid, the forward's only host value; dit_run then issues the forward's ops for a text
 * into out, reading nothing from the host, as often as wanted until the next dit_begin or
 * another use of act (x must keep its memory and shape meanwhile). dit_forward_sp is the two,
 * with dit_run recorded by the model's own replay slots. dit_run_key mixes into key what
 * dit_run's ops depend on (the memory of x, out, act, the RoPE table and the text). */
int dit_begin(wan_dit *d, au_arena *act, const au_tensor *x, float t, au_comm *comm, au_err *err);
int dit_run(wan_dit *d, const dit_text *text, au_tensor *out, au_err *err);
uint64_t dit_run_key(const wan_dit *d, uint64_t key, const dit_text *text, const au_tensor *out);

/* The sinusoidal embedding of timestep t: dim/2 cosines then dim/2 sines of
 * t * 10000^(-i/(dim/2)), computed in float64 and stored as float32 into emb [dim]. */
void dit_time_sinusoid(float *emb, int dim, double t);

#endif
