/* wan_vae.h - the Wan2.1 causal 3-D video VAE: decoder (latent -> video) and encoder.
 *
 * Layout: tensors are channels first, [C, T, H, W], batch 1. A video of 1+4k frames
 * maps to 1+k latent frames (stride 4 in time, 8 in space for the default config);
 * latents handed in and out are normalized per channel, z_norm = (mu - mean) / std, the
 * space the DiT works in.
 *
 * Streaming as in the official code: the decoder runs one latent frame per chunk (the
 * first gives 1 video frame, each later one 4), the encoder 1 frame then 4 per chunk.
 * Every causal conv keeps the last 2 frames of its input across chunks in a cache arena
 * owned by the VAE; the caller's activation arena is reset for each chunk and holds only
 * one chunk's working set (planned before the first chunk by a dry run of the same code),
 * so memory does not grow with the number of frames and a second identical call makes no
 * backend allocation.
 *
 * Weights use the official state-dict names (also those of ComfyUI's
 * wan_2.1_vae.safetensors): encoder.*, decoder.*, conv1 (after the encoder), conv2
 * (before the decoder). The st_set must stay open while the model lives.
 */
#ifndef AU_WAN_VAE_H
#define AU_WAN_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "safetensors.h"

typedef struct vae_config {
    int dim, z_dim;             /* 96, 16 */
    int n_mult, dim_mult[4];    /* 4, [1,2,4,4] */
    int num_res_blocks;         /* 2 (the decoder uses one more per level) */
    int temporal_downsample[3]; /* [0,1,1] encoder; the decoder uses it reversed */
    float mean[16], std[16];    /* latent normalisation per channel */
} vae_config;

/* The Wan2.1 VAE. */
void vae_config_default(vae_config *cfg);
/* dim and z_dim from tensor shapes (encoder.conv1, conv2), the rest default. */
int vae_config_infer(const st_set *st, vae_config *cfg, au_err *err);

typedef struct wan_vae wan_vae;

/* Check every tensor (name and shape) against cfg, then load them into a weight arena of be. */
int vae_load(wan_vae **out, au_backend *be, const st_set *st, const vae_config *cfg, au_err *err);
void vae_free(wan_vae *v);
/* The tensors a VAE of config cfg reads, in load order, with their shapes in the file. */
typedef void (*vae_tensor_fn)(const char *name, int ndim, const int64_t *shape, void *user);
int vae_list_tensors(const vae_config *cfg, vae_tensor_fn fn, void *user, au_err *err);
const vae_config *vae_get_config(const wan_vae *v);

/* z [z_dim, F, h, w] float32 normalized latent -> video [3, 1+4(F-1), 8h, 8w] float32 in
 * [-1, 1], caller-allocated (backend memory, not from act). */
int vae_decode(wan_vae *v, au_arena *act, const au_tensor *z, au_tensor *video, au_err *err);
/* video [3, 1+4k, H, W] float32 in [-1, 1] (H, W multiples of 8) -> z [z_dim, 1+k, H/8, W/8]
 * float32, caller-allocated: the normalized posterior mean, as the official WanVAE.encode. */
int vae_encode(wan_vae *v, au_arena *act, const au_tensor *video, au_tensor *z, au_err *err);

/* Memory of the last decode/encode call (or of a plan). */
typedef struct vae_mem_stats {
    size_t weight_bytes;   /* weight arena */
    size_t cache_bytes;    /* causal-conv caches (persist across chunks) */
    size_t chunk_bytes;    /* planned per-chunk working set taken from act */
    uint64_t cache_allocs; /* backend allocations the cache arena has made so far */
} vae_mem_stats;
void vae_get_mem_stats(const wan_vae *v, vae_mem_stats *out);
/* What vae_decode of a [z_dim, frames, h, w] latent will take (chunk_bytes, cache_bytes),
 * computed without running anything: for planning memory before a job. */
int vae_plan_decode(wan_vae *v, int64_t frames, int64_t h, int64_t w, vae_mem_stats *out, au_err *err);

#endif
