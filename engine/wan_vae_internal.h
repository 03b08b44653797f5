/* wan_vae_internal.h - the VAE model structure shared by its loader (wan_vae.c) and its
 * chunked runtime (wan_vae_run.c). Private to those two files. */
#ifndef AU_WAN_VAE_INTERNAL_H
#define AU_WAN_VAE_INTERNAL_H

#include "wan_vae.h"

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

#endif
