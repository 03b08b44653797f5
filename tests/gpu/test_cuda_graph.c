// deps: au_cuda au_dit au_sampler au_io au_cpu au_core
/* test_cuda_graph.c - recorded DiT forwards (engine/replay.h over the CUDA backend's graphs):
 * the tiny-random DiT run repeatedly on the same memory is run as it comes the first time,
 * recorded the second and replayed after (the backend's counters say so), and every output is
 * bit for bit the one a model that never records computes for the same inputs: the same input,
 * new values in the same input memory (a replay reads memory, not recorded values), a new
 * timestep (uploaded outside the recording), the two CFG branches (two recordings side by
 * side), a new latent address (a new recording), and after the scratch memory was replaced
 * (the old recording is refused and made again). Outputs are poisoned before each forward.
 * And the sampler's step recorded once and replayed for the later steps (UniPC and Euler),
 * bit for bit the steps run as they come.
 */
#include "test_cuda_util.h"
#include "replay.h"
#include "safetensors.h"
#include "sampler.h"
#include "wan_dit.h"

static const char *model_path(char *buf, size_t n) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    snprintf(buf, n, "%s/models/tiny-random/dit.safetensors", src ? src : ".");
    return buf;
}

static uint64_t launches(au_backend *be) {
    be_cuda_stats st;
    MUST(be_cuda_get_stats(be, &st, err));
    return st.graph_launches;
}

/* Everything one side needs: a model on its own backend with its arenas. */
typedef struct side {
    au_backend *be;
    wan_dit *dit;
    au_arena *act, *text, *io;
    dit_text *tc, *tu;
} side;

static void side_open(tctx *T, side *s, const st_set *st, const dit_config *cfg, const float *ctx_c,
                      const float *ctx_u, int64_t ctx_rows) {
    be_cuda_opts o = {0, T->gpu->gemm_in_dtype == AU_F8_E4M3 ? BE_CUDA_FP8 : BE_CUDA_BF16};
    MUST(be_cuda_create(&s->be, &o, err));
    MUST(dit_load(&s->dit, s->be, st, cfg, err));
    s->act = be_arena_create(s->be, 1 << 20);
    s->text = be_arena_create(s->be, 1 << 20);
    s->io = be_arena_create(s->be, 1 << 20);
    if (!s->act || !s->text || !s->io) {
        fprintf(stderr, "arenas\n");
        exit(1);
    }
    const int64_t shape[2] = {ctx_rows, cfg->text_dim};
    au_tensor c;
    MUST(be_arena_tensor(s->io, AU_F32, 2, shape, &c, err));
    MUST(be_upload(s->be, &c, ctx_c, err));
    MUST(dit_prepare_text(s->dit, s->text, &c, &s->tc, err));
    MUST(be_upload(s->be, &c, ctx_u, err));
    MUST(dit_prepare_text(s->dit, s->text, &c, &s->tu, err));
}

static void side_close(side *s) {
    dit_text_free(s->tc);
    dit_text_free(s->tu);
    dit_free(s->dit);
    be_arena_destroy(s->act);
    be_arena_destroy(s->text);
    be_arena_destroy(s->io);
    be_destroy(s->be);
}

/* out = forward(x_host at x, t, text) on s; returns the host copy (caller frees). */
static float *forward(side *s, au_tensor *x, const float *x_host, float t, const dit_text *text, au_tensor *out) {
    const size_t n = (size_t)au_numel(out);
    float *nan = xmalloc(n * sizeof(float)), *got = xmalloc(n * sizeof(float));
    memset(nan, 0xff, n * sizeof(float));
    MUST(be_upload(s->be, out, nan, err));
    MUST(be_upload(s->be, x, x_host, err));
    MUST(dit_forward(s->dit, s->act, x, t, text, out, err));
    MUST(be_download(s->be, got, out, err));
    free(nan);
    return got;
}

static void same(tctx *T, const char *what, const float *got, const float *want, int64_t n) {
    CHECK(memcmp(got, want, (size_t)n * sizeof(float)) == 0, "[%s] %s: the replayed output differs", T->name, what);
    if (memcmp(got, want, (size_t)n * sizeof(float)) == 0)
        printf("  ok   [%s] %s\n", T->name, what);
}

static void run_graph(tctx *T) {
    char path[1024];
    st_set *st;
    MUST(st_open(&st, model_path(path, sizeof path), err));
    dit_config cfg;
    MUST(dit_config_infer(st, &cfg, err));
    const int64_t rows = 7, xs[4] = {cfg.in_dim, 3, 8, 12}, os[4] = {cfg.out_dim, 3, 8, 12};
    const int64_t nx = xs[0] * xs[1] * xs[2] * xs[3], no = os[0] * os[1] * os[2] * os[3];
    float *ctx_c = xmalloc((size_t)(rows * cfg.text_dim) * sizeof(float));
    float *ctx_u = xmalloc((size_t)(rows * cfg.text_dim) * sizeof(float));
    float *x1 = xmalloc((size_t)nx * sizeof(float)), *x2 = xmalloc((size_t)nx * sizeof(float));
    for (int64_t i = 0; i < rows * cfg.text_dim; i++)
        ctx_c[i] = rng_f(), ctx_u[i] = rng_f();
    for (int64_t i = 0; i < nx; i++)
        x1[i] = 1.7f * rng_f(), x2[i] = 1.7f * rng_f();

    side rec, ref; /* rec records and replays; ref gets a fresh model for every reference */
    side_open(T, &rec, st, &cfg, ctx_c, ctx_u, rows);
    au_tensor x, x_other, out;
    MUST(be_arena_tensor(rec.io, AU_F32, 4, xs, &x, err));
    MUST(be_arena_tensor(rec.io, AU_F32, 4, xs, &x_other, err));
    MUST(be_arena_tensor(rec.io, AU_F32, 4, os, &out, err));

    struct {
        const char *what;
        const float *x;
        float t;
        int uncond, other_x, new_scratch;
        int replayed; /* 1: this forward must be served by a graph */
    } steps[] = {
        {"first forward (as it comes)", x1, 900.0f, 0, 0, 0, 0},
        {"second forward (recorded)", x1, 900.0f, 0, 0, 0, 1},
        {"third forward (replayed)", x1, 900.0f, 0, 0, 0, 1},
        {"replay, new values in the latent", x2, 900.0f, 0, 0, 0, 1},
        {"replay, new timestep", x2, 451.5f, 0, 0, 0, 1},
        {"unconditional branch, first", x2, 451.5f, 1, 0, 0, 0},
        {"unconditional branch, recorded", x1, 451.5f, 1, 0, 0, 1},
        {"conditional branch still replayed", x1, 12.0f, 0, 0, 0, 1},
        {"another latent address, first", x1, 12.0f, 0, 1, 0, 0},
        {"after the scratch was replaced", x2, 700.0f, 0, 0, 1, 0},
        {"recorded again after that", x1, 700.0f, 0, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].new_scratch) { /* a convolution needing far more scratch than the forward */
            const int64_t xsh[4] = {64, 10, 128, 128}, wsh[5] = {8, 64, 3, 3, 3}, ysh[4] = {8, 8, 126, 126};
            const int stride[3] = {1, 1, 1}, pad[6] = {0, 0, 0, 0, 0, 0};
            au_tensor cx, cw, cy;
            MUST(be_arena_tensor(rec.io, AU_F32, 4, xsh, &cx, err));
            MUST(be_arena_tensor(rec.io, AU_F32, 5, wsh, &cw, err));
            MUST(be_arena_tensor(rec.io, AU_F32, 4, ysh, &cy, err));
            MUST(be_fill(rec.be, &cx, 0.5f, err));
            MUST(be_fill(rec.be, &cw, 0.25f, err));
            be_cuda_stats before, after;
            MUST(be_cuda_get_stats(rec.be, &before, err));
            MUST(be_conv3d(rec.be, &cy, &cx, &cw, NULL, stride, pad, err));
            MUST(be_cuda_get_stats(rec.be, &after, err));
            CHECK(after.scratch_allocs > before.scratch_allocs, "[%s] the scratch did not grow", T->name);
        }
        uint64_t l0 = launches(rec.be);
        au_tensor *xt = steps[i].other_x ? &x_other : &x;
        const dit_text *tr = steps[i].uncond ? rec.tu : rec.tc;
        float *got = forward(&rec, xt, steps[i].x, steps[i].t, tr, &out);
        side_open(T, &ref, st, &cfg, ctx_c, ctx_u, rows);
        au_tensor rx, ro;
        MUST(be_arena_tensor(ref.io, AU_F32, 4, xs, &rx, err));
        MUST(be_arena_tensor(ref.io, AU_F32, 4, os, &ro, err));
        float *want = forward(&ref, &rx, steps[i].x, steps[i].t, steps[i].uncond ? ref.tu : ref.tc, &ro);
        CHECK(launches(ref.be) == 0, "[%s] the reference model replayed a graph", T->name);
        side_close(&ref);
        const uint64_t l1 = launches(rec.be);
        CHECK((l1 > l0) == steps[i].replayed, "[%s] %s: %s", T->name, steps[i].what,
              steps[i].replayed ? "no graph ran" : "a graph ran where the ops had to run as they come");
        same(T, steps[i].what, got, want, no);
        free(got);
        free(want);
    }
    be_cuda_stats st_rec;
    MUST(be_cuda_get_stats(rec.be, &st_rec, err));
    CHECK(st_rec.graphs_recorded == 3, "[%s] %llu graphs recorded, expected 3 (cond, uncond, after the scratch moved)",
          T->name, (unsigned long long)st_rec.graphs_recorded);
    side_close(&rec);
    st_close(st);
    free(ctx_c);
    free(ctx_u);
    free(x1);
    free(x2);
}

/* The sampler's step recorded as the pipeline records it (sampler_load outside the recording,
 * sampler_apply inside) and replayed for every later step: after each step the latent is bit
 * for bit the one of a sampler on the same backend whose steps run as they come. */
typedef struct sampler_run {
    au_sampler *s;
    au_tensor *x, *v;
} sampler_run;

static int sampler_apply_fn(void *ctx, au_err *e) {
    sampler_run *r = ctx;
    return sampler_apply(r->s, r->x, r->v, e);
}

static void run_sampler_graph(tctx *T) {
    enum { STEPS = 7 };
    const int64_t shape[4] = {16, 3, 8, 12};
    const int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    float *x0 = xmalloc((size_t)n * sizeof(float)), *v = xmalloc((size_t)n * sizeof(float));
    float *got = xmalloc((size_t)n * sizeof(float)), *want = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x0[i] = rng_f();
    static const char *const kinds[2] = {"unipc", "euler"};
    for (int k = 0; k < 2; k++) {
        au_sampler_kind kind;
        MUST(sampler_kind_from_name(kinds[k], &kind));
        au_tensor xr, xe, vt;
        MUST(be_arena_tensor(T->gpu_arena, AU_F32, 4, shape, &xr, err));
        MUST(be_arena_tensor(T->gpu_arena, AU_F32, 4, shape, &xe, err));
        MUST(be_arena_tensor(T->gpu_arena, AU_F32, 4, shape, &vt, err));
        MUST(be_upload(T->gpu, &xr, x0, err));
        MUST(be_upload(T->gpu, &xe, x0, err));
        au_sampler *rec, *eager;
        MUST(sampler_create(&rec, T->gpu, T->gpu_arena, kind, STEPS, 5.0f, &xr, err));
        MUST(sampler_create(&eager, T->gpu, T->gpu_arena, kind, STEPS, 5.0f, &xe, err));
        au_replay rp;
        replay_init(&rp, T->gpu);
        sampler_run run = {rec, &xr, &vt};
        uint64_t key = replay_key_ptr(replay_key_ptr(sampler_replay_key(rec, REPLAY_KEY0), xr.data), vt.data);
        const uint64_t l0 = launches(T->gpu);
        int equal = 1;
        for (int i = 0; i < STEPS; i++) {
            for (int64_t j = 0; j < n; j++) /* a velocity that depends on the step */
                v[j] = rng_f() + 0.1f * (float)i;
            MUST(be_upload(T->gpu, &vt, v, err));
            MUST(sampler_load(rec, i, err));
            MUST(replay_run(&rp, key, sampler_apply_fn, &run, err));
            MUST(sampler_step(eager, i, &xe, &vt, err));
            MUST(be_download(T->gpu, got, &xr, err));
            MUST(be_download(T->gpu, want, &xe, err));
            equal &= memcmp(got, want, (size_t)n * sizeof(float)) == 0;
        }
        const uint64_t l1 = launches(T->gpu);
        CHECK(l1 - l0 == STEPS - 1, "[%s] %s: %llu graph launches for %d steps, expected %d", T->name, kinds[k],
              (unsigned long long)(l1 - l0), STEPS, STEPS - 1);
        CHECK(equal, "[%s] %s: a replayed sampler step differs from the same step run as it comes", T->name,
              kinds[k]);
        if (equal)
            printf("  ok   [%s] %s sampler: %d steps from one recording, bit for bit the steps run as they come\n",
                   T->name, kinds[k], STEPS - 1);
        replay_clear(&rp);
        sampler_free(rec);
        sampler_free(eager);
    }
    free(x0);
    free(v);
    free(got);
    free(want);
}

static void run_all(tctx *T) {
    run_graph(T);
    run_sampler_graph(T);
}

int main(void) { return run_precisions(run_all); }
