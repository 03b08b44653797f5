/* cuda_backend.h - the CUDA backend: the ops of engine/backend.h on one NVIDIA GPU.
 *
 * Precision (opts.precision):
 *   BE_CUDA_FP8  activations bf16 (act_dtype), tensors that only feed a linear e4m3 with one
 *                float32 scale per row (gemm_in_dtype = AU_F8_E4M3: the op producing them
 *                quantizes per row); AU_W_MATRIX weights e4m3 with per-output-channel scales;
 *                linears run as cuBLASLt FP8 GEMMs with bf16 output.
 *   BE_CUDA_BF16 activations and gemm inputs bf16, AU_W_MATRIX weights bf16; bf16 GEMMs.
 * In both, AU_W_VECTOR / AU_W_F32 weights are float32, AU_W_EMBED bf16; float32 linears
 * (time embedding, head) are true float32 GEMMs; attention and conv3d run on bf16 tensor
 * cores with float32 accumulation.
 *
 * All ops are asynchronous on the backend's stream; be_sync() waits and surfaces late
 * errors. be_cuda_create makes opts.device current on the calling thread; a thread that
 * calls ops later must have the same device current (cudaSetDevice), which is automatic
 * for device 0. Device memory comes only from mem_alloc (cudaMalloc, called by arenas) and one
 * scratch buffer that grows to the largest need of an op and is then reused, so a repeated
 * computation of the same shapes makes no allocation (be_cuda_stats counts them).
 */
#ifndef AU_CUDA_BACKEND_H
#define AU_CUDA_BACKEND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend.h"

enum { BE_CUDA_FP8 = 0, BE_CUDA_BF16 = 1 };

typedef struct be_cuda_opts {
    int device;    /* CUDA device ordinal */
    int precision; /* BE_CUDA_FP8 or BE_CUDA_BF16 */
} be_cuda_opts;

/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int be_cuda_device_count(void);

int be_cuda_create(au_backend **out, const be_cuda_opts *opts, au_err *err);

typedef struct be_cuda_stats {
    uint64_t scratch_allocs;   /* cudaMalloc calls made for scratch since creation */
    uint64_t scratch_bytes;    /* current scratch size */
    uint64_t gemm_fused;       /* GEMMs whose scales, bias and activation ran inside cuBLASLt */
    uint64_t gemm_epilogue;    /* GEMMs finished by our own epilogue kernel */
    uint64_t gemm_f8_as_bf16;  /* f8 linears the FP8 GEMM could not take (shape or alignment) */
    uint64_t attn_fast;        /* attention calls on the head_dim 64/128 kernel */
    uint64_t attn_generic;     /* attention calls on the any-head_dim kernel */
    uint64_t graphs_recorded;  /* CUDA graphs made by record_end */
    uint64_t graph_launches;   /* graph_run calls */
    int fp8_outer_vec;         /* 1 when cuBLASLt accepted per-row/per-column FP8 scales */
    char device_name[256];
    int sm_major, sm_minor;
} be_cuda_stats;

/* Choose the head_dim 64/128 attention kernel: 16 or 32 (the default) queries per warp
 * (bench/NOTES.md compares them). AU_EINVAL for another value or backend. */
int be_cuda_set_attention_variant(au_backend *be, int rows_per_warp, au_err *err);

/* Fill stats of a backend made by be_cuda_create; AU_EINVAL for another backend. */
int be_cuda_get_stats(au_backend *be, be_cuda_stats *stats, au_err *err);

#ifdef __cplusplus
}
#endif

#endif
