/* pipeline_ranked.c - the text-to-video job on one rank or several (see pipeline.h).
 *
 * One loop serves both: pipeline_generate is pipeline_generate_ranked without a comm.
 * Per job: tokenize + UMT5 (the prompts this rank needs) -> Philox noise (every rank draws
 * the same) -> n_steps x (DiT velocity, classifier-free guidance v = v_u + g (v_c - v_u),
 * sampler step) -> VAE decode on rank 0 -> uint8 frames. The modes:
 *   NONE     one rank computes both branches (the unconditional one only when g != 1);
 *   CFG      rank 0 the conditional branch, rank 1 the unconditional one; one all_gather
 *            of the two velocities ([2 C, F, H, W], rank order) per step, then both ranks
 *            combine and step the sampler with the same inputs, so their latents stay equal;
 *   ULYSSES  every rank runs both branches as a sequence-parallel forward (dit_begin with
 *            the comm) on its slice of tokens and receives the whole velocity, so again all
 *            latents stay equal.
 * On one rank a step's work is recorded once and replayed for every later step
 * (engine/replay.h: one graph launch a step on CUDA); collectives are never recorded.
 * Agreement: after text encoding and after each step every rank adds its stop flag (cancel
 * or progress asked to stop) to an all_reduce_sum and waits for it, so all ranks stop at
 * the same step, and a dead peer surfaces there as AU_ECOMM at the latest.
 *
 * Frames: the VAE output in [-1, 1] becomes uint8 as the official code does,
 * (x + 1) / 2 * 255 truncated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "comm.h"
#include "philox.h"
#include "pipeline_internal.h"
#include "replay.h"
#include "sampler.h"

/* VAE strides: the latent of WxH and F frames is [16, (F-1)/4+1, H/8, W/8]. */
#define LATENT_STRIDE_T 4
#define LATENT_STRIDE_HW 8

/* ---- modes ---- */

static const char *const parallel_names[3] = {"none", "cfg", "ulysses"};

const char *pipeline_parallel_name(au_parallel mode) {
    return mode >= AU_PARALLEL_NONE && mode <= AU_PARALLEL_ULYSSES ? parallel_names[mode] : "unknown";
}

int pipeline_parallel_from_name(const char *name, au_parallel *mode) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, parallel_names[i])) {
            *mode = (au_parallel)i;
            return 0;
        }
    return AU_EINVAL;
}

static void latent_shape(const au_pipeline *p, const au_gen_params *q, int64_t shape[4]) {
    shape[0] = p->man.dit.in_dim;
    shape[1] = (q->frames - 1) / LATENT_STRIDE_T + 1;
    shape[2] = q->height / LATENT_STRIDE_HW;
    shape[3] = q->width / LATENT_STRIDE_HW;
}

static int has_guidance(const au_gen_params *q) {
    return q->guidance_scale != 1.0f; /* the official code applies the CFG formula for any other value */
}

int pipeline_parallel_check(const au_pipeline *p, const au_gen_params *q, au_parallel mode, int world,
                            au_err *err) {
    const char *name = pipeline_parallel_name(mode);
    if (world < 1)
        return au_errf(err, AU_EINVAL, "parallel %s: %d ranks", name, world);
    switch (mode) {
    case AU_PARALLEL_NONE: return 0;
    case AU_PARALLEL_CFG:
        if (world != 2)
            return au_errf(err, AU_EUNSUPPORTED,
                           "parallel cfg: runs on exactly 2 ranks (one per branch), not %d", world);
        if (!has_guidance(q))
            return au_errf(err, AU_EUNSUPPORTED,
                           "parallel cfg: guidance_scale 1 has no unconditional branch for the second rank");
        return 0;
    case AU_PARALLEL_ULYSSES: {
        const dit_config *c = &p->man.dit;
        int64_t ls[4];
        latent_shape(p, q, ls);
        int64_t n_tok = (ls[1] / c->patch[0]) * (ls[2] / c->patch[1]) * (ls[3] / c->patch[2]);
        if (c->num_heads % world)
            return au_errf(err, AU_EUNSUPPORTED,
                           "parallel ulysses: the model's %d attention heads do not divide "
                           "over %d ranks",
                           c->num_heads, world);
        if (n_tok % world)
            return au_errf(err, AU_EUNSUPPORTED,
                           "parallel ulysses: %dx%d, %d frames makes %lld tokens, which do "
                           "not divide over %d ranks",
                           q->width, q->height, q->frames, (long long)n_tok, world);
        return 0;
    }
    }
    return au_errf(err, AU_EINVAL, "parallel: unknown mode %d", (int)mode);
}

au_parallel pipeline_parallel_auto(const au_pipeline *p, const au_gen_params *q, int world) {
    au_err ignored = {0};
    if (world <= 1)
        return AU_PARALLEL_NONE;
    if (pipeline_parallel_check(p, q, AU_PARALLEL_CFG, world, &ignored) == 0)
        return AU_PARALLEL_CFG;
    if (pipeline_parallel_check(p, q, AU_PARALLEL_ULYSSES, world, &ignored) == 0)
        return AU_PARALLEL_ULYSSES;
    return AU_PARALLEL_NONE;
}

/* ---- stages ---- */

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

/* The DiT conditioning of one prompt, in the job arena. */
static int prepare_text(au_pipeline *p, const char *prompt, dit_text **text, au_err *err) {
    au_tensor ctx;
    int rc = encode_text(p, prompt, &ctx, err);
    return rc < 0 ? rc : dit_prepare_text(p->dit, p->job, &ctx, text, err);
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

/* [3, T, H, W] float in [-1, 1] on the backend -> frame-major RGB uint8 on the host, converted
 * on the backend (be_to_rgb8, into the job arena) so a quarter of the bytes are downloaded. */
static int video_to_frames(au_pipeline *p, const au_tensor *video, au_video *out, au_err *err) {
    const int64_t T = video->shape[1], H = video->shape[2], W = video->shape[3];
    const int64_t shape[4] = {T, H, W, 3};
    au_tensor frames;
    int rc = be_arena_tensor(p->job, AU_U8, 4, shape, &frames, err);
    if (rc < 0 || (rc = be_to_rgb8(p->be, &frames, video, err)) < 0)
        return au_err_prefix(err, "frames");
    out->rgb = malloc(au_nbytes(&frames));
    if (!out->rgb)
        return au_errf(err, AU_ENOMEM, "out of memory for %lld frames", (long long)T);
    if ((rc = be_download(p->be, out->rgb, &frames, err)) < 0) {
        free(out->rgb);
        out->rgb = NULL;
        return rc;
    }
    out->width = (int)W;
    out->height = (int)H;
    out->n_frames = (int)T;
    return 0;
}

/* ---- the loop ---- */

/* One job on this rank: the mode's collectives go through comm (NULL on one rank). */
typedef struct rank_job {
    au_comm *comm;
    au_parallel mode;
    int rank;
    au_tensor stop; /* [1] float32 stop flag, summed over the ranks */
} rank_job;

/* *stop_all = whether this rank or any other wants to stop after `step`. */
static int agree_stop(au_pipeline *p, rank_job *rj, int step, int n_steps, au_progress_fn progress,
                      void *user, const atomic_int *cancel, int *stop_all, au_err *err) {
    int rc = 0;
    float flag = (float)((cancel && atomic_load(cancel)) || (progress && progress(user, step, n_steps) != 0));
    if (!rj->comm) {
        *stop_all = flag != 0.0f;
        return 0;
    }
    AU_TRY(be_upload(p->be, &rj->stop, &flag, err));
    AU_TRY(comm_all_reduce_sum(rj->comm, &rj->stop, err));
    AU_TRY(comm_wait(rj->comm, err));
    AU_TRY(be_download(p->be, &flag, &rj->stop, err));
    *stop_all = flag != 0.0f;
    return 0;
fail:
    au_err_prefix(err, "ranks agreeing after step %d", step);
    return rc;
}

/* The work of one denoising step once its host values are in (dit_begin, sampler_load): the
 * velocity of each branch this rank computes, the guidance and the sampler update. On one rank
 * it issues the same ops on the same memory at every step, so replay_run records it once and
 * replays it for the others (one graph launch a step on CUDA). */
typedef struct step_work {
    au_pipeline *p;
    rank_job *rj;
    int cfg;                         /* guidance on: both branches */
    const dit_text *text_c, *text_u; /* those this rank has */
    au_tensor *x, *v;                /* latent, velocity */
    au_tensor *v_u, *v_pair;         /* unconditional velocity (NONE, ULYSSES), both ranks' (CFG) */
    const au_tensor *guide;          /* [2] float32 {g, 1 - g} */
    au_sampler *smp;
} step_work;

static int step_ops(void *ctx, au_err *err) {
    const step_work *w = ctx;
    au_pipeline *p = w->p;
    int rc = 0;
    if (!w->cfg) {
        AU_TRY(dit_run(p->dit, w->text_c, w->v, err));
    } else {
        const au_tensor *xs[2] = {w->v, w->v_u};
        au_tensor cond, uncond;
        if (w->rj->mode == AU_PARALLEL_CFG) {
            /* this rank's branch into v, then [v_c; v_u] from both ranks */
            AU_TRY(dit_run(p->dit, w->rj->rank == 0 ? w->text_c : w->text_u, w->v, err));
            AU_TRY(comm_all_gather(w->rj->comm, w->v_pair, w->v, err));
            cond = au_view_rows(w->v_pair, 0, w->v->shape[0]);
            uncond = au_view_rows(w->v_pair, w->v->shape[0], w->v->shape[0]);
            xs[0] = &cond;
            xs[1] = &uncond;
        } else {
            AU_TRY(dit_run(p->dit, w->text_c, w->v, err));
            AU_TRY(dit_run(p->dit, w->text_u, w->v_u, err));
        }
        /* v = g v_c + (1 - g) v_u */
        AU_TRY(be_lincomb(p->be, w->v, 2, xs, w->guide, err));
    }
    AU_TRY(sampler_apply(w->smp, w->x, w->v, err));
fail:
    return rc;
}

/* What step_ops depends on (one rank): the branches and the memory of all it touches. */
static uint64_t step_key(const step_work *w) {
    uint64_t k = replay_key_i64(REPLAY_KEY0, w->cfg);
    k = dit_run_key(w->p->dit, k, w->text_c, w->v);
    if (w->cfg) {
        k = dit_run_key(w->p->dit, k, w->text_u, w->v_u);
        k = replay_key_ptr(k, w->guide->data);
    }
    return sampler_replay_key(w->smp, k);
}

/* Step i: its host values go in (the timestep's sinusoid, the sampler's coefficients), then
 * its ops run, recorded on one rank (collectives are never recorded). */
static int denoise_step(step_work *w, int i, au_err *err) {
    au_pipeline *p = w->p;
    au_comm *sp = w->rj->mode == AU_PARALLEL_ULYSSES ? w->rj->comm : NULL;
    int rc = 0;
    AU_TRY(dit_begin(p->dit, p->dit_act, w->x, sampler_timestep(w->smp, i), sp, err));
    AU_TRY(sampler_load(w->smp, i, err));
    if (w->rj->comm)
        return step_ops(w, err);
    return replay_run(&p->steps, step_key(w), step_ops, w, err);
fail:
    return rc;
}

static int generate(au_pipeline *p, const au_gen_params *params, rank_job *rj, au_progress_fn progress,
                    void *user, const atomic_int *cancel, au_video *out, au_err *err) {
    memset(out, 0, sizeof *out);
    au_gen_params q = *params;
    int rc = pipeline_resolve_params(p, &q, err);
    if (rc < 0)
        return rc;
    if (rj->comm) {
        if ((rc = pipeline_parallel_check(p, &q, rj->mode, rj->comm->world, err)) < 0)
            return rc;
        if (rj->comm->be != p->be)
            return au_errf(err, AU_EINVAL, "parallel: the comm works on another backend than the pipeline");
    }
    au_backend *be = p->be;
    au_sampler *smp = NULL;
    dit_text *text_c = NULL, *text_u = NULL;
    const int cfg = has_guidance(&q), split = rj->mode == AU_PARALLEL_CFG;
    be_arena_reset(p->job);
    if (rj->comm) {
        const int64_t one = 1;
        AU_TRY(be_arena_tensor(p->job, AU_F32, 1, &one, &rj->stop, err));
    }

    /* text: the prompts this rank's branches need */
    if (!split || rj->rank == 0)
        AU_TRY(prepare_text(p, q.prompt, &text_c, err));
    if (cfg && (!split || rj->rank == 1))
        AU_TRY(prepare_text(p, q.negative_prompt, &text_u, err));
    int stop = 0;
    AU_TRY(agree_stop(p, rj, 0, q.steps, progress, user, cancel, &stop, err));
    if (stop) {
        rc = au_errf(err, AU_ECANCELED, "canceled");
        goto fail;
    }

    /* latent x, velocity v; the unconditional velocity (one rank, Ulysses) or both ranks' (CFG) */
    int64_t lshape[4], pair_shape[4];
    latent_shape(p, &q, lshape);
    memcpy(pair_shape, lshape, sizeof pair_shape);
    pair_shape[0] *= 2;
    au_tensor x, v, v_u = {0}, v_pair = {0};
    AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &x, err));
    AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &v, err));
    if (cfg && !split)
        AU_TRY(be_arena_tensor(p->job, AU_F32, 4, lshape, &v_u, err));
    if (cfg && split)
        AU_TRY(be_arena_tensor(p->job, AU_F32, 4, pair_shape, &v_pair, err));
    AU_TRY(make_noise(p, &q, &x, err));

    au_tensor guide = {0};
    if (cfg) {
        const int64_t two = 2;
        const float g[2] = {q.guidance_scale, 1.0f - q.guidance_scale};
        AU_TRY(be_arena_tensor(p->job, AU_F32, 1, &two, &guide, err));
        AU_TRY(be_upload(be, &guide, g, err));
    }

    au_sampler_kind kind;
    AU_TRY(sampler_kind_from_name(q.sampler, &kind));
    AU_TRY(sampler_create(&smp, be, p->job, kind, q.steps, q.shift, &x, err));
    step_work work = {p, rj, cfg, text_c, text_u, &x, &v, &v_u, &v_pair, &guide, smp};
    for (int i = 0; i < q.steps; i++) {
        AU_TRY(denoise_step(&work, i, err));
        if (rj->comm)
            AU_TRY(comm_wait(rj->comm, err));
        AU_TRY(be_sync(be, err));
        AU_TRY(agree_stop(p, rj, i + 1, q.steps, progress, user, cancel, &stop, err));
        if (stop) {
            rc = au_errf(err, AU_ECANCELED, "canceled at step %d of %d", i + 1, q.steps);
            goto fail;
        }
    }

    /* decode: rank 0 only, the others hold the same latent */
    if (rj->rank == 0) {
        au_tensor video;
        int64_t vshape[4] = {3, q.frames, q.height, q.width};
        AU_TRY(be_arena_tensor(p->job, AU_F32, 4, vshape, &video, err));
        AU_TRY(vae_decode(p->vae, p->vae_act, &x, &video, err));
        AU_TRY(video_to_frames(p, &video, out, err));
    }
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

int pipeline_generate(au_pipeline *p, const au_gen_params *params, au_progress_fn progress, void *user,
                      const atomic_int *cancel, au_video *out, au_err *err) {
    rank_job one = {NULL, AU_PARALLEL_NONE, 0, {0}};
    return generate(p, params, &one, progress, user, cancel, out, err);
}

int pipeline_generate_ranked(au_pipeline *p, const au_gen_params *params, au_comm *comm, au_parallel mode,
                             au_progress_fn progress, void *user, const atomic_int *cancel, au_video *out,
                             au_err *err) {
    if (!comm || mode == AU_PARALLEL_NONE)
        return pipeline_generate(p, params, progress, user, cancel, out, err);
    rank_job rj = {comm, mode, comm->rank, {0}};
    return generate(p, params, &rj, progress, user, cancel, out, err);
}
