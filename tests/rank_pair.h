/* rank_pair.h - one job on two ranks in two forked processes, for the parallel-mode tests
 * (tests/unit/test_parallel.c on the CPU, tests/gpu/test_cuda_parallel.c on one GPU).
 *
 * The ranks are joined by a socketpair through comm_tcp and report into a mapping shared
 * with the parent. Every rank opens its own pipeline: neither a CPU thread pool nor a CUDA
 * context survives fork, so the parent never opens one (the single-rank reference runs in a
 * child of its own too). A rank that hangs is ended by alarm(), never ctest's timeout.
 * Scenarios: a whole job (pipeline_generate_ranked, optionally canceled on rank 1, rank 1
 * killed, or rank 1 silent at a step) and a direct DiT call (dit_forward_sp against
 * dit_forward on random inputs, the same on both ranks).
 */
#ifndef AU_TEST_RANK_PAIR_H
#define AU_TEST_RANK_PAIR_H

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "comm.h"
#include "pipeline.h"
#include "safetensors.h"
#include "wan_dit.h"

/* The comm timeout: a silent peer is failed after this, 3 s unless AUTEUR_TEST_COMM_TIMEOUT_MS
 * says more (bench/device.sh under compute-sanitizer, where one rank's first kernels can lag the
 * other's by longer). */
static inline int rp_timeout_ms(void) {
    const char *e = getenv("AUTEUR_TEST_COMM_TIMEOUT_MS");
    int ms = e ? atoi(e) : 0;
    return ms > 0 ? ms : 3000;
}
#define RP_MAX_FRAME_BYTES (128 * 128 * 17 * 3)

typedef enum rp_kind { RP_JOB, RP_DIT } rp_kind;

typedef struct rp_scenario {
    rp_kind kind;
    au_parallel mode;
    au_pipeline_opts opts;
    int width, height, frames, steps;
    float guidance;
    int cancel_at, kill_at, hang_at; /* on rank 1, at this step (0 = never) */
    int dit_heads;                   /* RP_DIT: attention heads (0 = the model's) */
} rp_scenario;

typedef struct rp_result {
    int rc;
    char msg[512];
    int last_step;             /* the last step progress was called with */
    int n_frames;              /* of out (0 on rank 1) */
    double seconds;            /* the job or the direct DiT call */
    double dit_max_rel;        /* RP_DIT: dit_forward_sp vs dit_forward, max|a-b| / max|b| */
    size_t act_single, act_sp; /* RP_DIT: activation bytes */
    int odd_grid_rc;           /* RP_DIT: dit_forward_sp on 3 tokens */
} rp_result;

typedef struct rp_shared {
    rp_result r[2];
    int n_gpus; /* rp_run_single with rp_gpu_count set: its count in the child, -1 before */
    uint8_t frames[2][RP_MAX_FRAME_BYTES]; /* [0]: the ranked job's (rank 0), [1]: rp_run_single's */
} rp_shared;

static char rp_model_dir[4096];

/* models/tiny-random under AUTEUR_SOURCE_DIR; 0, or -1 when it is missing. */
static inline int rp_find_model(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    snprintf(rp_model_dir, sizeof rp_model_dir, "%s/models/tiny-random", src ? src : ".");
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/auteur-model.json", rp_model_dir);
    return access(manifest, R_OK) == 0 ? 0 : -1;
}

static inline rp_shared *rp_shared_map(void) {
    rp_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(sh != MAP_FAILED, "mmap: %s", strerror(errno));
    return sh;
}

static inline double rp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void rp_params(const rp_scenario *sc, au_gen_params *q) {
    pipeline_params_init(q);
    q->prompt = "a red circle moving to the right";
    q->negative_prompt = "blurry";
    q->width = sc->width;
    q->height = sc->height;
    q->frames = sc->frames;
    q->steps = sc->steps;
    q->guidance_scale = sc->guidance;
    q->seed = 42;
}

/* ---- in a rank ---- */

typedef struct rp_progress {
    int rank;
    const rp_scenario *sc;
    rp_result *res;
} rp_progress;

static inline int rp_on_progress(void *user, int step, int n_steps) {
    rp_progress *pc = user;
    (void)n_steps;
    pc->res->last_step = step;
    if (pc->rank != 1)
        return 0;
    if (pc->sc->kill_at && step == pc->sc->kill_at)
        raise(SIGKILL);
    if (pc->sc->hang_at && step == pc->sc->hang_at)
        for (;;)
            pause(); /* alive and silent: the parent ends it */
    return pc->sc->cancel_at && step == pc->sc->cancel_at;
}

static inline float rp_urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*s >> 40) / 8388608.0f - 1.0f;
}

/* A backend tensor of random values from seed (the same on every rank). */
static inline int rp_random_tensor(au_backend *be, au_arena *a, int ndim, const int64_t *shape, uint64_t seed,
                                   float amp, au_tensor *t, au_err *err) {
    int rc = be_arena_tensor(a, AU_F32, ndim, shape, t, err);
    if (rc < 0)
        return rc;
    int64_t n = au_numel(t);
    float *h = malloc((size_t)n * sizeof *h);
    if (!h)
        return au_errf(err, AU_ENOMEM, "test input");
    for (int64_t i = 0; i < n; i++)
        h[i] = amp * rp_urand(&seed);
    rc = be_upload(be, t, h, err);
    free(h);
    return rc;
}

/* dit_forward_sp against dit_forward on the model's DiT (heads > 0: split its width into that
 * many heads instead), a random [C, 3, 8, 8] latent and context. */
static inline int rp_rank_dit(au_comm *comm, au_backend *be, int heads, rp_result *res, au_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/dit.safetensors", rp_model_dir);
    st_set *st = NULL;
    wan_dit *d = NULL;
    dit_text *text = NULL;
    au_arena *job = be_arena_create(be, 1 << 20), *act1 = be_arena_create(be, 1 << 20),
             *act2 = be_arena_create(be, 1 << 20);
    float *h1 = NULL, *h2 = NULL;
    int rc;
    dit_config cfg;
    if (!job || !act1 || !act2) {
        rc = au_errf(err, AU_ENOMEM, "arenas");
        goto done;
    }
    if ((rc = st_open(&st, path, err)) < 0 || (rc = dit_config_infer(st, &cfg, err)) < 0)
        goto done;
    if (heads > 0)
        cfg.num_heads = heads;
    if ((rc = dit_load(&d, be, st, &cfg, err)) < 0)
        goto done;
    const int64_t xs[4] = {cfg.in_dim, 3, 8, 8}, cs[2] = {7, cfg.text_dim}, odd[4] = {cfg.in_dim, 1, 2, 6};
    au_tensor x, ctx, single, sp, xo, oo;
    if ((rc = rp_random_tensor(be, job, 4, xs, 7, 1.7f, &x, err)) < 0 ||
        (rc = rp_random_tensor(be, job, 2, cs, 8, 0.5f, &ctx, err)) < 0 ||
        (rc = rp_random_tensor(be, job, 4, odd, 9, 1.0f, &xo, err)) < 0 ||
        (rc = be_arena_tensor(job, AU_F32, 4, xs, &single, err)) < 0 ||
        (rc = be_arena_tensor(job, AU_F32, 4, xs, &sp, err)) < 0 ||
        (rc = be_arena_tensor(job, AU_F32, 4, odd, &oo, err)) < 0)
        goto done;
    double t0 = rp_now();
    if ((rc = dit_prepare_text(d, job, &ctx, &text, err)) < 0 ||
        (rc = dit_forward(d, act1, &x, 777.0f, text, &single, err)) < 0 ||
        (rc = dit_forward_sp(d, act2, &x, 777.0f, text, comm, &sp, err)) < 0 ||
        (rc = comm_wait(comm, err)) < 0)
        goto done;
    int64_t n = au_numel(&x);
    h1 = malloc((size_t)n * sizeof *h1);
    h2 = malloc((size_t)n * sizeof *h2);
    if (!h1 || !h2) {
        rc = au_errf(err, AU_ENOMEM, "test output");
        goto done;
    }
    if ((rc = be_download(be, h1, &single, err)) < 0 || (rc = be_download(be, h2, &sp, err)) < 0)
        goto done;
    res->seconds = rp_now() - t0;
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, isfinite(h2[i]) ? fabs((double)h2[i] - h1[i]) : INFINITY);
        max_ref = fmax(max_ref, fabs((double)h1[i]));
    }
    res->dit_max_rel = max_diff / max_ref;
    res->act_single = be_arena_used(act1);
    res->act_sp = be_arena_used(act2);
    au_err odd_err = {0};
    res->odd_grid_rc = dit_forward_sp(d, act2, &xo, 777.0f, text, comm, &oo, &odd_err);
done:
    free(h1);
    free(h2);
    dit_text_free(text);
    if (act2)
        be_arena_destroy(act2);
    if (act1)
        be_arena_destroy(act1);
    if (job)
        be_arena_destroy(job);
    dit_free(d);
    st_close(st);
    return rc;
}

/* Set in the CUDA test: be_cuda_device_count, called in a child only. */
static int (*rp_gpu_count)(void);

/* The body of a forked rank (rank -1: the single-rank reference); never returns. */
static inline void rp_rank_main(int rank, int fd, const rp_scenario *sc, rp_shared *sh) {
    alarm(180); /* a hung rank dies instead of hanging ctest */
    rp_result *res = &sh->r[rank < 0 ? 0 : rank];
    au_err err = {0};
    au_pipeline *p = NULL;
    au_comm *comm = NULL;
    int rc = 0;
    if (rank < 0 && rp_gpu_count && (sh->n_gpus = rp_gpu_count()) == 0)
        _exit(0);
    int fds[2] = {-1, -1};
    if (rank >= 0)
        fds[1 - rank] = fd;
    rc = pipeline_open(&p, rp_model_dir, &sc->opts, &err);
    if (rc == 0 && rank >= 0)
        rc = comm_tcp_create(&comm, pipeline_backend(p), rank, 2, fds, rp_timeout_ms(), &err);
    if (rc == 0 && sc->kind == RP_DIT) {
        rc = rp_rank_dit(comm, pipeline_backend(p), sc->dit_heads, res, &err);
    } else if (rc == 0) {
        au_gen_params q;
        rp_params(sc, &q);
        rp_progress pc = {rank, sc, res};
        au_video v = {0};
        double t0 = rp_now();
        rc = rank < 0 ? pipeline_generate(p, &q, NULL, NULL, NULL, &v, &err)
                      : pipeline_generate_ranked(p, &q, comm, sc->mode, rp_on_progress, &pc, NULL, &v, &err);
        res->seconds = rp_now() - t0;
        size_t bytes = (size_t)v.n_frames * (size_t)v.width * (size_t)v.height * 3;
        res->n_frames = v.n_frames;
        if (v.rgb && bytes <= RP_MAX_FRAME_BYTES && rank <= 0)
            memcpy(sh->frames[rank < 0 ? 1 : 0], v.rgb, bytes);
        au_video_free(&v);
    }
    res->rc = rc;
    snprintf(res->msg, sizeof res->msg, "%s", rc < 0 ? err.msg : "");
    if (comm)
        comm_destroy(comm);
    pipeline_close(p);
    _exit(0);
}

/* ---- in the parent ---- */

/* The single-rank job of sc in a child; its frames land in sh->frames[1], its result in r[0]. */
static inline void rp_run_single(const rp_scenario *sc, rp_shared *sh) {
    memset(sh->r, 0, sizeof sh->r);
    sh->n_gpus = -1;
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        rp_rank_main(-1, -1, sc, sh);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid, "waitpid");
    REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the single-rank run died (status %d)", st);
}

/* sc on two forked ranks; results in sh. Returns rank 1's wait status. */
static inline int rp_run_pair(const rp_scenario *sc, rp_shared *sh) {
    memset(sh->r, 0, sizeof sh->r);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    fflush(NULL);
    pid_t pid[2];
    for (int r = 0; r < 2; r++) {
        pid[r] = fork();
        REQUIRE(pid[r] >= 0, "fork: %s", strerror(errno));
        if (pid[r] == 0) {
            close(sv[1 - r]);
            rp_rank_main(r, sv[r], sc, sh);
        }
    }
    close(sv[0]);
    close(sv[1]);
    int st0 = 0, st1 = 0;
    REQUIRE(waitpid(pid[0], &st0, 0) == pid[0], "waitpid rank 0");
    if (sc->hang_at) /* rank 1 hangs on purpose; rank 0 is done, so end it */
        kill(pid[1], SIGKILL);
    REQUIRE(waitpid(pid[1], &st1, 0) == pid[1], "waitpid rank 1");
    CHECK(WIFEXITED(st0) && WEXITSTATUS(st0) == 0, "rank 0 did not exit cleanly (status %d)", st0);
    return st1;
}

/* Largest absolute difference in uint8 levels, the count of differing values, and the PSNR
 * (99 when equal) of two videos of n bytes. */
static inline int rp_compare_frames(const uint8_t *a, const uint8_t *b, size_t n, size_t *n_diff,
                                    double *psnr) {
    int max_diff = 0;
    double se = 0;
    *n_diff = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        max_diff = d > max_diff ? d : max_diff;
        *n_diff += d != 0;
        se += (double)d * d;
    }
    *psnr = se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
    return max_diff;
}

#endif
