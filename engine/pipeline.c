/* pipeline.c - opening a model for the text-to-video job (see pipeline.h): the backend,
 * the three models and the job arenas, the parameter rules, and the fingerprint ranks
 * compare before they share jobs. The job itself (text, noise, denoising on one or
 * several ranks, decoding) is in pipeline_ranked.c.
 *
 * Memory: the models own their weight arenas. Per job, `job` holds what lives for
 * the whole job (text contexts, latent, velocities, sampler history) and is reset
 * when the next job starts; `t5_act`, `dit_act` and `vae_act` hold one stage's
 * activations and are reset by the stage itself. After the first job of a given
 * size the denoising loop makes no allocation (be_arena_chunk_allocs).
 */
#include "pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backend.h"
#include "pipeline_internal.h"
#include "sampler.h"
#include "sha256.h"
#ifdef AU_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

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
    replay_init(&p->steps, p->be);
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
    replay_clear(&p->steps); /* before the memory the recordings use */
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

au_backend *pipeline_backend(au_pipeline *p) {
    return p->be;
}

/* ---- fingerprint ---- */

static void hash_text(au_sha256 *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hash_text(au_sha256 *h, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sha256_update(h, line, n < 0 ? 0 : ((size_t)n < sizeof line ? (size_t)n : sizeof line - 1));
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every tensor of st as "name dtype [shape]", in name order (file order may differ between
 * two copies of the same weights). */
static int hash_tensors(au_sha256 *h, const char *what, const st_set *st, au_err *err) {
    int n = st_count(st);
    const char **names = malloc(sizeof *names * (size_t)(n > 0 ? n : 1));
    if (!names)
        return au_errf(err, AU_ENOMEM, "fingerprint: %d tensor names", n);
    for (int i = 0; i < n; i++)
        names[i] = st_name_at(st, i);
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    hash_text(h, "%s %d tensors\n", what, n);
    for (int i = 0; i < n; i++) {
        const au_tensor *t = st_get(st, names[i]);
        char shape[160];
        hash_text(h, "%s %s\n", names[i], au_shape_str(t, shape, sizeof shape));
    }
    free(names);
    return 0;
}

int pipeline_model_fingerprint(const au_pipeline *p, char out[65], au_err *err) {
    const au_manifest *m = &p->man;
    const umt5_config *t = &m->t5;
    const dit_config *d = &m->dit;
    const vae_config *v = &m->vae;
    au_sha256 h;
    sha256_init(&h);
    /* floats as %a: exact, so two configs hash equal only when they are equal */
    hash_text(&h, "auteur model fingerprint 1\ntokenizer vocab %d\n", tok_vocab_size(p->tok));
    hash_text(&h, "umt5 vocab %d dim %d d_kv %d heads %d ffn %d layers %d", t->vocab, t->dim, t->d_kv,
              t->num_heads, t->ffn_dim, t->num_layers);
    hash_text(&h, " buckets %d max_distance %d eps %a\n", t->num_buckets, t->max_distance, (double)t->eps);
    hash_text(&h, "dit dim %d ffn %d freq %d heads %d layers %d", d->dim, d->ffn_dim, d->freq_dim, d->num_heads,
              d->num_layers);
    hash_text(&h, " in %d out %d text %d x %d patch %d %d %d eps %a\n", d->in_dim, d->out_dim, d->text_len,
              d->text_dim, d->patch[0], d->patch[1], d->patch[2], (double)d->eps);
    hash_text(&h, "vae dim %d z %d mult", v->dim, v->z_dim);
    for (int i = 0; i < v->n_mult && i < 4; i++)
        hash_text(&h, " %d", v->dim_mult[i]);
    hash_text(&h, " res %d tdown %d %d %d\n", v->num_res_blocks, v->temporal_downsample[0],
              v->temporal_downsample[1], v->temporal_downsample[2]);
    for (int i = 0; i < 16; i++)
        hash_text(&h, "latent %d mean %a std %a\n", i, (double)v->mean[i], (double)v->std[i]);
    int rc;
    if ((rc = hash_tensors(&h, "text_encoder", p->st_t5, err)) < 0 ||
        (rc = hash_tensors(&h, "dit", p->st_dit, err)) < 0 || (rc = hash_tensors(&h, "vae", p->st_vae, err)) < 0)
        return rc;
    /* the precision: where the backend computes and in which dtypes */
    hash_text(&h, "backend %s act %s gemm_in %s\n", p->be->ops->name, au_dtype_name(p->be->act_dtype),
              au_dtype_name(p->be->gemm_in_dtype));
    uint8_t digest[32];
    sha256_final(&h, digest);
    sha256_hex(digest, out);
    return 0;
}

void au_video_free(au_video *v) {
    free(v->rgb);
    memset(v, 0, sizeof *v);
}
