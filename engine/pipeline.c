/* pipeline.c - the text-to-video job, stage by stage (see pipeline.h).
 *
 * Memory: the models own their weight arenas. Per job, `job` holds what lives for
 * the whole job (text contexts, latent, velocities, sampler history) and is reset
 * when the next job starts; `t5_act`, `dit_act` and `vae_act` hold one stage's
 * activations and are reset by the stage itself. After the first job of a given
 * size the denoising loop makes no allocation (be_arena_chunk_allocs).
 *
 * Frames: the VAE output in [-1, 1] becomes uint8 as the official code does,
 * (x + 1) / 2 * 255 truncated.
 */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backend.h"
#include "model.h"
#include "philox.h"
#include "safetensors.h"
#include "sampler.h"
#include "tokenizer.h"
#ifdef AU_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

struct au_pipeline {
    au_manifest man;
    au_backend *be;
    st_set *st_t5, *st_dit, *st_vae;
    au_tokenizer *tok;
    umt5 *t5;
    wan_dit *dit;
    wan_vae *vae;
    au_arena *job, *t5_act, *dit_act, *vae_act;
};

void pipeline_params_init(au_gen_params *params) {
    memset(params, 0, sizeof *params);
    params->guidance_scale = AU_UNSET_F;
    params->shift = AU_UNSET_F;
    params->seed = -1;
}

static int create_backend(const au_pipeline_opts *opts, au_backend **be, au_err *err) {
    au_device dev = opts ? opts->device : AU_DEVICE_AUTO;
    int threads = opts ? opts->n_threads : 0;
    if (dev != AU_DEVICE_CPU) {
#ifdef AU_HAVE_CUDA
        if (be_cuda_device_count() > 0) {
            be_cuda_opts o = {0, opts && opts->precision == AU_PRECISION_BF16 ? BE_CUDA_BF16 : BE_CUDA_FP8};
            return be_cuda_create(be, &o, err);
        }
        if (dev == AU_DEVICE_CUDA)
            return au_errf(err, AU_EUNSUPPORTED, "device cuda: no CUDA device is visible");
#else
        if (dev == AU_DEVICE_CUDA)
            return au_errf(err, AU_EUNSUPPORTED, "device cuda: this build has no CUDA backend (nvcc was not found)");
#endif
    }
    return be_cpu_create(be, threads, err);
}

int pipeline_open(au_pipeline **out, const char *model_dir, const au_pipeline_opts *opts, au_err *err) {
    *out = NULL;
    au_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc = model_manifest_load(model_dir, &p->man, err);
    if (rc < 0) {
        free(p);
        return rc;
    }
    au_manifest *m = &p->man;
    if ((rc = create_backend(opts, &p->be, err)) < 0)
        goto fail;
    if ((rc = tok_load(&p->tok, m->tokenizer_path, err)) < 0 || (rc = st_open(&p->st_t5, m->text_encoder_path, err)) < 0 ||
        (rc = st_open(&p->st_dit, m->dit_path, err)) < 0 || (rc = st_open(&p->st_vae, m->vae_path, err)) < 0)
        goto fail;
    if (!m->has_t5_config && (rc = umt5_config_infer(p->st_t5, &m->t5, err)) < 0)
        goto fail;
    if (!m->has_dit_config && (rc = dit_config_infer(p->st_dit, &m->dit, err)) < 0)
        goto fail;
    if (!m->has_vae_config && (rc = vae_config_infer(p->st_vae, &m->vae, err)) < 0)
        goto fail;
    if (m->dit.text_dim != m->t5.dim) {
        rc = au_errf(err, AU_EFORMAT, "text encoder width %d does not match the DiT's text_dim %d", m->t5.dim,
                     m->dit.text_dim);
        goto fail;
    }
    if (tok_vocab_size(p->tok) > m->t5.vocab) {
        rc = au_errf(err, AU_EFORMAT, "tokenizer has %d tokens but the text encoder only %d", tok_vocab_size(p->tok),
                     m->t5.vocab);
        goto fail;
    }
    if ((rc = umt5_load(&p->t5, p->be, p->st_t5, &m->t5, err)) < 0)
        goto fail;
    if ((rc = dit_load(&p->dit, p->be, p->st_dit, &m->dit, err)) < 0)
        goto fail;
    if ((rc = vae_load(&p->vae, p->be, p->st_vae, &m->vae, err)) < 0)
        goto fail;
    p->job = be_arena_create(p->be, 1 << 20);
    p->t5_act = be_arena_create(p->be, 1 << 20);
    p->dit_act = be_arena_create(p->be, 1 << 20);
    p->vae_act = be_arena_create(p->be, 1 << 20);
    if (!p->job || !p->t5_act || !p->dit_act || !p->vae_act) {
        rc = au_errf(err, AU_ENOMEM, "cannot create the job arenas");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    au_err_prefix(err, "loading model %s", model_dir);
    pipeline_close(p);
    return rc;
}

void pipeline_close(au_pipeline *p) {
    if (!p)
        return;
    if (p->job)
        be_arena_destroy(p->job);
    if (p->t5_act)
        be_arena_destroy(p->t5_act);
    if (p->dit_act)
        be_arena_destroy(p->dit_act);
    if (p->vae_act)
        be_arena_destroy(p->vae_act);
    if (p->vae)
        vae_free(p->vae);
    if (p->dit)
        dit_free(p->dit);
    if (p->t5)
        umt5_free(p->t5);
    if (p->tok)
        tok_free(p->tok);
    if (p->st_t5)
        st_close(p->st_t5);
    if (p->st_dit)
        st_close(p->st_dit);
    if (p->st_vae)
        st_close(p->st_vae);
    if (p->be)
        be_destroy(p->be);
    model_manifest_free(&p->man);
    free(p);
}

const au_model_info *pipeline_model_info(const au_pipeline *p) {
    return &p->man.info;
}

const char *pipeline_backend_name(const au_pipeline *p) {
    return p->be->ops->name;
}

/* Number of UTF-8 code points. */
static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int pipeline_resolve_params(const au_pipeline *p, au_gen_params *q, au_err *err) {
    const au_model_info *i = &p->man.info;
    if (!q->prompt || !q->prompt[strspn(q->prompt, " \t\r\n")])
        return au_errf(err, AU_EINVAL, "prompt: must not be empty");
    if ((int)utf8_chars(q->prompt) > i->max_prompt_chars)
        return au_errf(err, AU_EINVAL, "prompt: longer than %d characters", i->max_prompt_chars);
    if (!q->negative_prompt)
        q->negative_prompt = i->default_negative_prompt;
    if ((int)utf8_chars(q->negative_prompt) > i->max_prompt_chars)
        return au_errf(err, AU_EINVAL, "negative_prompt: longer than %d characters", i->max_prompt_chars);
    if (!q->width && !q->height) {
        q->width = i->default_width;
        q->height = i->default_height;
    }
    if (q->width <= 0 || q->height <= 0)
        return au_errf(err, AU_EINVAL, "size: width and height must both be given and positive");
    if (q->width % i->size_multiple || q->height % i->size_multiple || q->width > i->max_width ||
        q->height > i->max_height)
        return au_errf(err, AU_EINVAL, "size: %dx%d is not supported: width and height must be multiples of %d, "
                       "at most %dx%d", q->width, q->height, i->size_multiple, i->max_width, i->max_height);
    if (i->n_sizes > 0) {
        int ok = 0;
        for (int k = 0; k < i->n_sizes; k++)
            ok |= i->sizes[k][0] == q->width && i->sizes[k][1] == q->height;
        if (!ok)
            return au_errf(err, AU_EINVAL, "size: %dx%d is not one of this model's sizes", q->width, q->height);
    }
    if (!q->frames)
        q->frames = i->default_frames;
    if (q->frames < 1 || q->frames > i->max_frames || (q->frames - 1) % 4)
        return au_errf(err, AU_EINVAL, "frames: %d is not supported: must be of the form 4k+1, from 1 to %d",
                       q->frames, i->max_frames);
    if (!q->steps)
        q->steps = i->default_steps;
    if (q->steps < 1 || q->steps > i->max_steps)
        return au_errf(err, AU_EINVAL, "steps: must be from 1 to %d", i->max_steps);
    if (q->guidance_scale == AU_UNSET_F)
        q->guidance_scale = i->default_guidance;
    if (!(q->guidance_scale >= 0 && q->guidance_scale <= 50))
        return au_errf(err, AU_EINVAL, "guidance_scale: must be from 0 to 50");
    if (q->shift == AU_UNSET_F)
        q->shift = i->default_shift;
    if (!(q->shift > 0 && q->shift <= 100))
        return au_errf(err, AU_EINVAL, "shift: must be greater than 0 and at most 100");
    if (!q->sampler)
        q->sampler = i->default_sampler;
    au_sampler_kind kind;
    if (sampler_kind_from_name(q->sampler, &kind) < 0)
        return au_errf(err, AU_EINVAL, "sampler: must be \"unipc\" or \"euler\"");
    if (q->seed < 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            return au_errf(err, AU_EIO, "seed: cannot draw a random seed");
        q->seed = (int64_t)(r >> 1);
    }
    return 0;
}

/* Tokenize and encode one prompt; *ctx is [n_tokens, text_dim] in the job arena. */
static int encode_text(au_pipeline *p, const char *text, au_tensor *ctx, au_err *err) {
    int text_len = p->man.dit.text_len;
    int32_t *ids = malloc(sizeof *ids * (size_t)text_len);
    if (!ids)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int n_tokens = 0, rc;
    if ((rc = tok_encode(p->tok, text, ids, text_len, &n_tokens, err)) < 0)
        goto done;
    int64_t shape[2] = {n_tokens, p->man.t5.dim};
    if ((rc = be_arena_tensor(p->job, p->be->act_dtype, 2, shape, ctx, err)) < 0)
        goto done;
    rc = umt5_encode(p->t5, p->t5_act, ids, n_tokens, ctx, err);
done:
    free(ids);
    return rc;
}

/* The initial latent: Philox normals from the seed, or the "noise" tensor of a file. */
static int make_noise(au_pipeline *p, const au_gen_params *q, au_tensor *x, au_err *err) {
    size_t n = (size_t)au_numel(x);
    float *host = malloc(n * sizeof *host);
    if (!host)
        return au_errf(err, AU_ENOMEM, "out of memory for %zu noise values", n);
    int rc = 0;
    if (!q->noise_path) {
        philox_normal_f32((uint64_t)q->seed, 0, host, n);
    } else {
        st_set *st = NULL;
        if ((rc = st_open(&st, q->noise_path, err)) < 0)
            goto done;
        const au_tensor *t = st_get(st, "noise");
        char want[64], got[64];
        if (!t)
            rc = au_errf(err, AU_ENOTFOUND, "noise file %s: no tensor \"noise\"", q->noise_path);
        else if (au_numel(t) != (int64_t)n || (t->ndim != 4 && t->ndim != 5))
            rc = au_errf(err, AU_EINVAL, "noise file %s: expected %s, found %s", q->noise_path,
                         au_shape_str(x, want, sizeof want), au_shape_str(t, got, sizeof got));
        else
            rc = au_convert_to_f32(host, t->data, t->dtype, (int64_t)n);
        st_close(st);
        if (rc < 0)
            goto done;
    }
    rc = be_upload(p->be, x, host, err);
done:
    free(host);
    return rc;
}

/* [3, T, H, W] float in [-1, 1] on the backend -> frame-major RGB uint8. */
static int video_to_frames(au_pipeline *p, const au_tensor *video, au_video *out, au_err *err) {
    int64_t T = video->shape[1], H = video->shape[2], W = video->shape[3];
    size_t plane = (size_t)(H * W), n = (size_t)au_numel(video);
    float *host = malloc(n * sizeof *host);
    out->rgb = malloc((size_t)T * plane * 3);
    if (!host || !out->rgb) {
        free(host);
        free(out->rgb);
        out->rgb = NULL;
        return au_errf(err, AU_ENOMEM, "out of memory for %lld frames", (long long)T);
    }
    int rc = be_download(p->be, host, video, err);
    if (rc == 0) {
        for (int64_t t = 0; t < T; t++)
            for (size_t s = 0; s < plane; s++)
                for (int c = 0; c < 3; c++) {
                    float v = host[((size_t)c * (size_t)T + (size_t)t) * plane + s];
                    v = v < -1.f ? -1.f : v > 1.f ? 1.f : v;
                    out->rgb[((size_t)t * plane + s) * 3 + c] = (uint8_t)((v + 1.f) * 0.5f * 255.f);
                }
        out->width = (int)W;
        out->height = (int)H;
        out->n_frames = (int)T;
    } else {
        free(out->rgb);
        out->rgb = NULL;
    }
    free(host);
    return rc;
}

static int stopped(au_progress_fn progress, void *user, int step, int n, const volatile int *cancel) {
    if (cancel && *cancel)
        return 1;
    return progress && progress(user, step, n) != 0;
}

int pipeline_generate(au_pipeline *p, const au_gen_params *params, au_progress_fn progress, void *user,
                      const volatile int *cancel, au_video *out, au_err *err) {
    memset(out, 0, sizeof *out);
    au_gen_params q = *params;
    int rc = pipeline_resolve_params(p, &q, err);
    if (rc < 0)
        return rc;
    au_backend *be = p->be;
    au_sampler *smp = NULL;
    int use_cfg = q.guidance_scale != 1.0f; /* the official code applies the CFG formula for any other value */
    be_arena_reset(p->job);

    /* text */
    au_tensor ctx_c, ctx_u;
    dit_text *text_c = NULL, *text_u = NULL;
    AU_TRY(encode_text(p, q.prompt, &ctx_c, err));
    AU_TRY(dit_prepare_text(p->dit, p->job, &ctx_c, &text_c, err));
    if (use_cfg) {
        AU_TRY(encode_text(p, q.negative_prompt, &ctx_u, err));
        AU_TRY(dit_prepare_text(p->dit, p->job, &ctx_u, &text_u, err));
    }
    if (stopped(progress, user, 0, q.steps, cancel)) {
        rc = au_errf(err, AU_ECANCELED, "canceled");
        goto fail;
    }

    /* latent [16, (F-1)/4+1, H/8, W/8] */
    const dit_config *dc = dit_get_config(p->dit);
    int64_t lshape[4] = {dc->in_dim, (q.frames - 1) / 4 + 1, q.height / 8, q.width / 8};
    au_tensor x, v, v_u;
    AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &x, err));
    AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &v, err));
    if (use_cfg)
        AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &v_u, err));
    AU_TRY(make_noise(p, &q, &x, err));

    au_sampler_kind kind;
    AU_TRY(sampler_kind_from_name(q.sampler, &kind));
    AU_TRY(sampler_create(&smp, be, p->job, kind, q.steps, q.shift, &x, err));
    for (int i = 0; i < q.steps; i++) {
        float t = sampler_timestep(smp, i);
        AU_TRY(dit_forward(p->dit, p->dit_act, &x, t, text_c, &v, err));
        if (use_cfg) {
            /* v = v_u + g (v_c - v_u) */
            AU_TRY(dit_forward(p->dit, p->dit_act, &x, t, text_u, &v_u, err));
            const au_tensor *xs[2] = {&v, &v_u};
            const float coef[2] = {q.guidance_scale, 1.0f - q.guidance_scale};
            AU_TRY(be_lincomb(be, &v, 2, xs, coef, err));
        }
        AU_TRY(sampler_step(smp, i, &x, &v, err));
        AU_TRY(be_sync(be, err));
        if (stopped(progress, user, i + 1, q.steps, cancel)) {
            rc = au_errf(err, AU_ECANCELED, "canceled at step %d of %d", i + 1, q.steps);
            goto fail;
        }
    }

    /* decode */
    au_tensor video;
    int64_t vshape[4] = {3, q.frames, q.height, q.width};
    AU_TRY(be_arena_tensor(p->job, AU_F32, 4, vshape, &video, err));
    AU_TRY(vae_decode(p->vae, p->vae_act, &x, &video, err));
    AU_TRY(video_to_frames(p, &video, out, err));
    rc = 0;
    goto done;
fail:
    au_video_free(out);
done:
    if (smp)
        sampler_free(smp);
    if (text_c)
        dit_text_free(text_c);
    if (text_u)
        dit_text_free(text_u);
    return rc;
}

void au_video_free(au_video *v) {
    free(v->rgb);
    memset(v, 0, sizeof *v);
}
