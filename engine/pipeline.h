/* pipeline.h - text in, frames out: the whole Wan2.1 text-to-video job.
 *
 * tokenize -> UMT5 encode (prompt and negative prompt) -> Philox noise ->
 * n_steps x DiT (+ classifier-free guidance) with the sampler -> VAE decode ->
 * uint8 RGB frames. The caller (CLI, dispatcher) owns what happens to the
 * frames (encode_mp4.h). Nothing here knows about HTTP or SQLite.
 */
#ifndef AU_PIPELINE_H
#define AU_PIPELINE_H

#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "status.h"

typedef struct au_pipeline au_pipeline;

typedef enum au_device { AU_DEVICE_AUTO = 0, AU_DEVICE_CPU, AU_DEVICE_CUDA } au_device;

typedef enum au_precision { AU_PRECISION_FP8 = 0, AU_PRECISION_BF16 } au_precision;

typedef struct au_pipeline_opts {
    au_device device;       /* AUTO: CUDA when this build has it and a GPU is present, else CPU */
    int n_threads;          /* CPU backend threads, 0 = all cores */
    au_precision precision; /* CUDA matrix products: FP8 (default) or bf16; the CPU is always float32 */
} au_pipeline_opts;

/* What a loaded model supports and defaults to (from its auteur-model.json). */
typedef struct au_model_info {
    char name[64];
    int default_width, default_height, default_frames, default_fps, default_steps;
    float default_guidance, default_shift;
    char default_sampler[16];     /* "unipc" or "euler" */
    const char *default_negative_prompt;
    int max_width, max_height, max_frames, max_steps, max_prompt_chars;
    int size_multiple;            /* width and height must be multiples of this (16) */
    int n_sizes;                  /* 0 = any size within the limits */
    int sizes[16][2];             /* supported WxH pairs when n_sizes > 0 */
} au_model_info;

/* Unset fields (pipeline_params_init) take the model's defaults in pipeline_resolve_params:
 * integers 0, pointers NULL, floats AU_UNSET_F, seed -1 (a random seed is drawn and filled in). */
#define AU_UNSET_F (-1.0f)
typedef struct au_gen_params {
    const char *prompt;
    const char *negative_prompt; /* NULL = the model's default; "" = none */
    int width, height, frames;   /* frames of the form 4k+1 */
    int steps;
    float guidance_scale;        /* >= 0; exactly 1 runs the conditional branch only (same result, half the work) */
    float shift;                 /* > 0 */
    const char *sampler;         /* "unipc" or "euler" */
    int64_t seed;                /* 0 .. 2^63-1, or -1 */
    const char *noise_path;      /* NULL, or safetensors with tensor "noise" [16, F', H/8, W/8] */
} au_gen_params;

void pipeline_params_init(au_gen_params *params);

typedef struct au_video {
    int width, height, n_frames;
    uint8_t *rgb; /* n_frames * height * width * 3, frame-major, row-major RGB */
} au_video;

/* Called after text encoding (step 0) and after each denoising step; a non-zero
 * return, or *cancel becoming non-zero, stops the job with AU_ECANCELED. */
typedef int (*au_progress_fn)(void *user, int step, int n_steps);

int pipeline_open(au_pipeline **out, const char *model_dir, const au_pipeline_opts *opts, au_err *err);
void pipeline_close(au_pipeline *p);
const au_model_info *pipeline_model_info(const au_pipeline *p);
const char *pipeline_backend_name(const au_pipeline *p);

/* Fill unset fields of params from the model defaults, then check them against the
 * model's limits; AU_EINVAL with a message that starts with the field name
 * ("frames: must be of the form 4k+1 ...") so the API can report it as `param`. */
int pipeline_resolve_params(const au_pipeline *p, au_gen_params *params, au_err *err);

int pipeline_generate(au_pipeline *p, const au_gen_params *params, au_progress_fn progress, void *user,
                      const atomic_int *cancel, au_video *out, au_err *err);
void au_video_free(au_video *v);

/* ---- one job on several ranks (comm.h) ----
 * CFG: rank 0 runs the conditional branch, rank 1 the unconditional one, and one
 * all-gather per step shares the two velocities (world 2 only).
 * ULYSSES: the DiT's tokens are split over the ranks and an all-to-all over attention
 * heads turns each rank's token slice into all tokens of its heads (tokens and heads
 * divisible by world).
 * Every rank runs the sampler on the whole latent, so all ranks hold the same latent
 * after each step; only rank 0 decodes it. */
typedef struct au_comm au_comm;
typedef enum au_parallel { AU_PARALLEL_NONE = 0, AU_PARALLEL_CFG, AU_PARALLEL_ULYSSES } au_parallel;

const char *pipeline_parallel_name(au_parallel mode); /* "none", "cfg", "ulysses" */
int pipeline_parallel_from_name(const char *name, au_parallel *mode); /* AU_EINVAL for another name */
/* The mode `auto` picks for resolved params on world ranks: NONE for one rank, CFG when the
 * job has classifier-free guidance and world is 2, else ULYSSES when it can run, else NONE. */
au_parallel pipeline_parallel_auto(const au_pipeline *p, const au_gen_params *resolved, int world);
/* 0 when mode can run resolved params on world ranks, else AU_EUNSUPPORTED saying why. */
int pipeline_parallel_check(const au_pipeline *p, const au_gen_params *resolved, au_parallel mode, int world,
                            au_err *err);

/* pipeline_generate as one rank of comm: every rank calls it with the same resolved params
 * (seed included) and the same mode. Only rank 0 decodes and fills out (other ranks return
 * 0 with out empty); progress is called on every rank. The ranks agree at the end of every
 * step whether to go on, so a cancel on any rank stops all of them at the same step with
 * AU_ECANCELED. A failed or lost peer gives AU_ECOMM. comm NULL or mode NONE: pipeline_generate. */
int pipeline_generate_ranked(au_pipeline *p, const au_gen_params *params, au_comm *comm, au_parallel mode,
                             au_progress_fn progress, void *user, const atomic_int *cancel, au_video *out,
                             au_err *err);

/* The backend the pipeline computes on (for making a comm on it). */
au_backend *pipeline_backend(au_pipeline *p);
/* A digest that differs when two ranks would not compute the same model: the manifest's
 * configs and the tensor names, shapes and dtypes of every weight file, and the precision
 * (64 lowercase hex characters of SHA-256 into out). */
int pipeline_model_fingerprint(const au_pipeline *p, char out[65], au_err *err);

#endif
