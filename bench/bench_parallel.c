// deps: au_cuda au_dit au_io au_core
/* bench_parallel.c - one denoising step of Wan2.1 on several GPUs: CFG-parallel and Ulysses
 * against one GPU, FP8, random full-size weights, one process per GPU joined through NCCL.
 *
 *   bench_parallel DIR [--model 1.3B|14B|both] [--layers N] [--grid F H W] [--iters K]
 * Default: both shapes (1.3B: dim 1536, FFN 8960, 12 heads, 30 layers; 14B: dim 5120,
 * FFN 13824, 40 heads, 40 layers) at 832x480, 81 frames (latent [16, 21, 60, 104], 32760
 * tokens), guidance on. --layers N keeps N blocks (the time per step scales with it; the
 * per-layer figure is printed too). Weights: bf16 in DIR/dit_<model>.safetensors, uniform
 * +-1/sqrt(fan_in) like PyTorch's default init, drawn here by a counter-based hash.
 *
 * What a step is, as pipeline_ranked.c runs it (the sampler's few vector ops left out):
 *   none     1 GPU: conditional and unconditional forward, v = g v_c + (1 - g) v_u;
 *   cfg      2 GPUs: one forward each, all_gather of the two velocities, the same combine;
 *   ulysses  P GPUs: both forwards through dit_forward_sp (tokens split, heads exchanged).
 * Each mode's process 0 measures the mean over --iters steps after one warm-up step, and the
 * max relative error max|v - v_none| / max|v_none| of its guided velocity against one GPU's.
 * speedup = t_none / t_mode, scaling efficiency = speedup / P.
 *
 * The parent process never touches CUDA (a CUDA context does not survive fork): it writes
 * the weights, then forks the single-GPU run (which reports how many GPUs there are), then
 * one process per GPU per parallel mode. Rank 0 makes the NCCL unique id and hands it to the
 * others through a pipe. Run with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 (bench/parallel_device.sh)
 * so the traffic takes the network path, as between two hosts. With one GPU it says "needs 2
 * GPUs" after the single-GPU part and exits 0.
 * Prints "RESULT parallel <model> <mode> <gpus> <ms/step> <speedup> <efficiency> <max rel>".
 */
#include "backend.h"
#include "comm.h"
#include "kernels/comm_nccl.h"
#include "kernels/cuda_backend.h"
#include "safetensors.h"
#include "wan_dit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUIDANCE 5.0f
#define TIMESTEP 900.0f
#define CTX_ROWS 77
#define TEXT_DIM 4096
#define COMM_TIMEOUT_MS 300000 /* a 14B forward on a slow link is long; a dead peer still fails */
#define MAX_MODES 4

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- random weights (parent, host only) ---- */

typedef struct fill_job {
    uint16_t *d;
    int64_t begin, end;
    uint64_t seed;
    float center, amp;
} fill_job;

/* uniform [-1, 1) from a counter: splitmix64 of (seed, i) */
static float hash_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / 8388608.0f - 1.0f;
}

static void *fill_range(void *arg) {
    fill_job *j = arg;
    for (int64_t i = j->begin; i < j->end; i++)
        j->d[i] = au_f32_to_bf16(j->center + j->amp * hash_uniform(j->seed, (uint64_t)i));
    return NULL;
}

typedef struct wlist {
    st_entry *e;
    int n, cap;
} wlist;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* A bf16 tensor of center + amp * uniform[-1, 1), filled on up to 16 threads. */
static void add_bf16(wlist *l, const char *name, int ndim, const int64_t *shape, float center, float amp) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = realloc(l->e, (size_t)l->cap * sizeof *l->e);
        if (!l->e)
            exit(1);
    }
    au_tensor t = au_tensor_make(AU_BF16, NULL, ndim, shape);
    int64_t n = au_numel(&t);
    t.data = xmalloc((size_t)n * 2);
    enum { MAX_THREADS = 16 };
    int n_thr = n > (1 << 22) ? MAX_THREADS : 1;
    pthread_t th[MAX_THREADS];
    fill_job jobs[MAX_THREADS];
    for (int k = 0; k < n_thr; k++) {
        jobs[k] = (fill_job){
            t.data, n * k / n_thr, n * (k + 1) / n_thr, 0x5eedull * (uint64_t)(l->n + 1), center, amp};
        if (n_thr == 1 || pthread_create(&th[k], NULL, fill_range, &jobs[k]) != 0) {
            fill_range(&jobs[k]);
            th[k] = 0;
        }
    }
    for (int k = 0; k < n_thr; k++)
        if (th[k])
            pthread_join(th[k], NULL);
    l->e[l->n].name = strdup(name);
    l->e[l->n].tensor = t;
    l->n++;
}

static void add_linear(wlist *l, const char *prefix, int64_t out, int64_t in) {
    char name[192];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_bf16(l, name, 2, ws, 0.0f, 1.0f / sqrtf((float)in));
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_bf16(l, name, 1, bs, 0.0f, 0.02f);
}

/* The official key names and shapes of a t2v DiT of width D. */
static int write_weights(const char *path, int64_t D, int64_t FFN, int layers, au_err *err) {
    wlist l = {0};
    int64_t pe[5] = {D, 16, 1, 2, 2}, pb[1] = {D}, vec[1] = {D}, mod6[3] = {1, 6, D}, mod2[3] = {1, 2, D};
    add_bf16(&l, "patch_embedding.weight", 5, pe, 0.0f, 0.125f);
    add_bf16(&l, "patch_embedding.bias", 1, pb, 0.0f, 0.02f);
    add_linear(&l, "text_embedding.0", D, TEXT_DIM);
    add_linear(&l, "text_embedding.2", D, D);
    add_linear(&l, "time_embedding.0", D, 256);
    add_linear(&l, "time_embedding.2", D, D);
    add_linear(&l, "time_projection.1", 6 * D, D);
    char p[160];
    for (int i = 0; i < layers; i++) {
        static const char *const att[2] = {"self_attn", "cross_attn"}, *const proj[4] = {"q", "k", "v", "o"};
        for (int a = 0; a < 2; a++) {
            for (int j = 0; j < 4; j++) {
                snprintf(p, sizeof p, "blocks.%d.%s.%s", i, att[a], proj[j]);
                add_linear(&l, p, D, D);
            }
            snprintf(p, sizeof p, "blocks.%d.%s.norm_q.weight", i, att[a]);
            add_bf16(&l, p, 1, vec, 1.0f, 0.1f);
            snprintf(p, sizeof p, "blocks.%d.%s.norm_k.weight", i, att[a]);
            add_bf16(&l, p, 1, vec, 1.0f, 0.1f);
        }
        snprintf(p, sizeof p, "blocks.%d.norm3.weight", i);
        add_bf16(&l, p, 1, vec, 1.0f, 0.1f);
        snprintf(p, sizeof p, "blocks.%d.norm3.bias", i);
        add_bf16(&l, p, 1, vec, 0.0f, 0.02f);
        snprintf(p, sizeof p, "blocks.%d.ffn.0", i);
        add_linear(&l, p, FFN, D);
        snprintf(p, sizeof p, "blocks.%d.ffn.2", i);
        add_linear(&l, p, D, FFN);
        snprintf(p, sizeof p, "blocks.%d.modulation", i);
        add_bf16(&l, p, 3, mod6, 0.0f, 0.1f);
    }
    add_linear(&l, "head.head", 64, D);
    add_bf16(&l, "head.modulation", 3, mod2, 0.0f, 0.1f);
    int rc = st_write(path, l.e, l.n, NULL, err);
    for (int i = 0; i < l.n; i++) {
        free((void *)l.e[i].name);
        free(l.e[i].tensor.data);
    }
    free(l.e);
    return rc;
}

/* ---- what the processes share ---- */

typedef enum bench_mode { MODE_NONE = 0, MODE_CFG, MODE_ULYSSES } bench_mode;
static const char *const mode_names[3] = {"none", "cfg", "ulysses"};

typedef struct mode_result {
    bench_mode mode;
    int world, rc;
    double ms_per_step, max_rel;
    char msg[512];
} mode_result;

typedef struct shared {
    int n_gpus;
    mode_result res;
    float v_none[]; /* the single GPU's guided velocity */
} shared;

typedef struct bench_run {
    const char *weights;
    int64_t grid[3]; /* F, H, W of the latent */
    int iters;
    shared *sh;
} bench_run;

/* ---- one process: one GPU ---- */

typedef struct rank_state {
    au_backend *be;
    au_comm *comm;
    wan_dit *dit;
    dit_text *text_c, *text_u;
    au_arena *job, *text_arena, *act;
    au_tensor x, v, v_u, v_pair;
    au_tensor guide; /* [2] float32 {g, 1 - g} */
    float *host_v;
} rank_state;

/* One step's velocity in this mode (see the file comment). */
static int step_velocity(rank_state *s, bench_mode mode, int rank, au_err *err) {
    int rc = 0;
    const au_tensor *xs[2] = {&s->v, &s->v_u};
    au_tensor cond, uncond;
    if (mode == MODE_CFG) {
        AU_TRY(dit_forward(s->dit, s->act, &s->x, TIMESTEP, rank == 0 ? s->text_c : s->text_u, &s->v, err));
        AU_TRY(comm_all_gather(s->comm, &s->v_pair, &s->v, err));
        cond = au_view_rows(&s->v_pair, 0, s->v.shape[0]);
        uncond = au_view_rows(&s->v_pair, s->v.shape[0], s->v.shape[0]);
        xs[0] = &cond;
        xs[1] = &uncond;
    } else {
        au_comm *sp = mode == MODE_ULYSSES ? s->comm : NULL;
        AU_TRY(dit_forward_sp(s->dit, s->act, &s->x, TIMESTEP, s->text_c, sp, &s->v, err));
        AU_TRY(dit_forward_sp(s->dit, s->act, &s->x, TIMESTEP, s->text_u, sp, &s->v_u, err));
    }
    AU_TRY(be_lincomb(s->be, &s->v, 2, xs, &s->guide, err));
    if (s->comm)
        AU_TRY(comm_wait(s->comm, err));
    AU_TRY(be_sync(s->be, err));
fail:
    return rc;
}

/* Host data the same on every rank: a latent and two contexts from fixed seeds. */
static int upload_random(au_backend *be, au_tensor *t, uint64_t seed, float amp, au_err *err) {
    int64_t n = au_numel(t);
    float *h = xmalloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++)
        h[i] = amp * hash_uniform(seed, (uint64_t)i);
    int rc = be_upload(be, t, h, err);
    free(h);
    return rc;
}

static int rank_setup(rank_state *s, const bench_run *br, int rank, int world, bench_mode mode,
                      const uint8_t *id, st_set **st, au_err *err) {
    int rc = 0;
    be_cuda_opts o = {rank, BE_CUDA_FP8};
    dit_config cfg;
    AU_TRY(be_cuda_create(&s->be, &o, err));
    if (world > 1)
        AU_TRY(comm_nccl_create(&s->comm, s->be, rank, world, id, COMM_TIMEOUT_MS, err));
    AU_TRY(st_open(st, br->weights, err));
    AU_TRY(dit_config_infer(*st, &cfg, err));
    AU_TRY(dit_load(&s->dit, s->be, *st, &cfg, err));
    s->job = be_arena_create(s->be, 64 << 20);
    s->text_arena = be_arena_create(s->be, 64 << 20);
    s->act = be_arena_create(s->be, 256 << 20);
    if (!s->job || !s->text_arena || !s->act)
        return au_errf(err, AU_ENOMEM, "arenas");
    const int64_t xs[4] = {cfg.in_dim, br->grid[0], br->grid[1], br->grid[2]},
                  cs[2] = {CTX_ROWS, cfg.text_dim};
    const int64_t ps[4] = {2 * cfg.out_dim, br->grid[0], br->grid[1], br->grid[2]};
    au_tensor ctx_c, ctx_u;
    AU_TRY(be_arena_tensor(s->job, AU_F32, 4, xs, &s->x, err));
    AU_TRY(be_arena_tensor(s->job, AU_F32, 4, xs, &s->v, err));
    AU_TRY(be_arena_tensor(s->job, AU_F32, 4, xs, &s->v_u, err));
    if (mode == MODE_CFG)
        AU_TRY(be_arena_tensor(s->job, AU_F32, 4, ps, &s->v_pair, err));
    AU_TRY(be_arena_tensor(s->job, AU_F32, 2, cs, &ctx_c, err));
    AU_TRY(be_arena_tensor(s->job, AU_F32, 2, cs, &ctx_u, err));
    const int64_t two = 2;
    const float g[2] = {GUIDANCE, 1.0f - GUIDANCE};
    AU_TRY(be_arena_tensor(s->job, AU_F32, 1, &two, &s->guide, err));
    AU_TRY(be_upload(s->be, &s->guide, g, err));
    AU_TRY(upload_random(s->be, &s->x, 11, 1.7320508f, err));
    AU_TRY(upload_random(s->be, &ctx_c, 12, 0.2f, err));
    AU_TRY(upload_random(s->be, &ctx_u, 13, 0.2f, err));
    AU_TRY(dit_prepare_text(s->dit, s->text_arena, &ctx_c, &s->text_c, err));
    AU_TRY(dit_prepare_text(s->dit, s->text_arena, &ctx_u, &s->text_u, err));
fail:
    return rc;
}

static void rank_free(rank_state *s) {
    dit_text_free(s->text_c);
    dit_text_free(s->text_u);
    if (s->act)
        be_arena_destroy(s->act);
    if (s->text_arena)
        be_arena_destroy(s->text_arena);
    if (s->job)
        be_arena_destroy(s->job);
    dit_free(s->dit);
    if (s->comm)
        comm_destroy(s->comm);
    if (s->be)
        be_destroy(s->be);
    free(s->host_v);
}

/* The body of one forked process; rank 0 fills br->sh->res. */
static int rank_main(const bench_run *br, int rank, int world, bench_mode mode, int id_fd[2]) {
    au_err err = {0};
    rank_state s;
    memset(&s, 0, sizeof s);
    st_set *st = NULL;
    uint8_t id[COMM_NCCL_ID_BYTES];
    int rc = 0;
    mode_result *res = &br->sh->res;
    if (mode == MODE_NONE)
        br->sh->n_gpus = be_cuda_device_count();
    if (world > 1 && rank == 0) {
        AU_TRY(comm_nccl_unique_id(id, &err));
        for (int r = 1; r < world; r++)
            if (write(id_fd[1], id, sizeof id) != (ssize_t)sizeof id) {
                rc = au_errf(&err, AU_EIO, "unique id pipe: %s", strerror(errno));
                goto fail;
            }
    } else if (world > 1) {
        size_t got = 0;
        while (got < sizeof id) {
            ssize_t n = read(id_fd[0], id + got, sizeof id - got);
            if (n <= 0) {
                rc = au_errf(&err, AU_EIO, "unique id pipe: %s", n ? strerror(errno) : "closed");
                goto fail;
            }
            got += (size_t)n;
        }
    }
    AU_TRY(rank_setup(&s, br, rank, world, mode, id, &st, &err));
    AU_TRY(step_velocity(&s, mode, rank, &err)); /* warm-up: plans, scratch, arena growth */
    double t0 = now_s();
    for (int i = 0; i < br->iters; i++)
        AU_TRY(step_velocity(&s, mode, rank, &err));
    double ms = (now_s() - t0) * 1e3 / br->iters;
    if (rank == 0) {
        int64_t n = au_numel(&s.v);
        s.host_v = xmalloc((size_t)n * sizeof(float));
        AU_TRY(be_download(s.be, s.host_v, &s.v, &err));
        if (mode == MODE_NONE)
            memcpy(br->sh->v_none, s.host_v, (size_t)n * sizeof(float));
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = s.host_v[i], b = br->sh->v_none[i];
            max_diff = fmax(max_diff, isfinite(a) ? fabs(a - b) : INFINITY);
            max_ref = fmax(max_ref, fabs(b));
        }
        res->ms_per_step = ms;
        res->max_rel = max_ref > 0 ? max_diff / max_ref : max_diff;
    }
fail:
    if (rank == 0) {
        res->mode = mode;
        res->world = world;
        res->rc = rc;
        snprintf(res->msg, sizeof res->msg, "%s", rc < 0 ? err.msg : "");
    } else if (rc < 0) {
        fprintf(stderr, "%s rank %d: %s\n", mode_names[mode], rank, err.msg);
    }
    rank_free(&s);
    st_close(st);
    return rc < 0 ? 1 : 0;
}

/* Fork world processes (GPU r for rank r) for mode; wait for all. */
static int run_mode(const bench_run *br, bench_mode mode, int world) {
    int id_fd[2] = {-1, -1};
    if (world > 1 && pipe(id_fd) != 0) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        return -1;
    }
    memset(&br->sh->res, 0, sizeof br->sh->res);
    br->sh->res.rc = AU_EINTERNAL;
    snprintf(br->sh->res.msg, sizeof br->sh->res.msg, "rank 0 ended without a result");
    fflush(NULL);
    pid_t pids[64];
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        if (pids[r] == 0)
            _exit(rank_main(br, r, world, mode, id_fd));
        if (pids[r] < 0) {
            fprintf(stderr, "fork: %s\n", strerror(errno));
            world = r;
            break;
        }
    }
    if (id_fd[0] >= 0) {
        close(id_fd[0]);
        close(id_fd[1]);
    }
    int failed = 0;
    for (int r = 0; r < world; r++) {
        int st = 0;
        waitpid(pids[r], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    return failed ? -1 : 0;
}

/* ---- parent ---- */

typedef struct model_shape {
    const char *name;
    int64_t D, FFN;
    int layers;
} model_shape;

typedef struct table_row {
    char text[160];
} table_row;

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: bench_parallel DIR [--model 1.3B|14B|both] [--layers N] [--grid F H W] [--iters K]\n");
        return 2;
    }
    const char *dir = argv[1], *which = "both";
    int layers = -1, iters = 3;
    int64_t grid[3] = {21, 60, 104};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            which = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--grid") && i + 3 < argc) {
            for (int k = 0; k < 3; k++)
                grid[k] = atoll(argv[++i]);
        } else {
            fprintf(stderr, "bench_parallel: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (iters < 1 || grid[0] < 1 || grid[1] < 2 || grid[2] < 2 || grid[1] % 2 || grid[2] % 2) {
        fprintf(stderr, "bench_parallel: --iters >= 1, --grid F H W with even H and W\n");
        return 2;
    }
    static const model_shape shapes[2] = {{"1.3B", 1536, 8960, 30}, {"14B", 5120, 13824, 40}};
    const int64_t n_tok = grid[0] * (grid[1] / 2) * (grid[2] / 2), numel = 16 * grid[0] * grid[1] * grid[2];
    size_t sh_bytes = sizeof(shared) + (size_t)numel * sizeof(float);
    shared *sh = mmap(NULL, sh_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "mmap: %s\n", strerror(errno));
        return 1;
    }
    table_row rows[16];
    int n_rows = 0, status = 0, needs_more = 0;
    for (int m = 0; m < 2; m++) {
        const model_shape *ms = &shapes[m];
        if (strcmp(which, "both") && strcmp(which, ms->name))
            continue;
        int n_layers = layers > 0 ? layers : ms->layers, heads = (int)(ms->D / 128);
        char path[1024];
        snprintf(path, sizeof path, "%s/dit_%s_%dl.safetensors", dir, ms->name, n_layers);
        au_err err = {0};
        double t0 = now_s();
        if (access(path, R_OK) != 0 && write_weights(path, ms->D, ms->FFN, n_layers, &err) < 0) {
            fprintf(stderr, "weights %s: %s\n", path, err.msg);
            return 1;
        }
        printf("# %s: %d of %d layers, dim %lld, %d heads, latent [16, %lld, %lld, %lld] = %lld tokens; "
               "weights ready in %.1f s\n",
               ms->name, n_layers, ms->layers, (long long)ms->D, heads, (long long)grid[0],
               (long long)grid[1], (long long)grid[2], (long long)n_tok, now_s() - t0);
        fflush(stdout);
        bench_run br = {path, {grid[0], grid[1], grid[2]}, iters, sh};
        /* none first: it fills v_none and n_gpus */
        bench_mode modes[MAX_MODES] = {MODE_NONE, MODE_CFG, MODE_ULYSSES, MODE_ULYSSES};
        int worlds[MAX_MODES] = {1, 2, 2, 0};
        double t_none = 0;
        for (int k = 0; k < MAX_MODES; k++) {
            if (k == 3) { /* Ulysses on every GPU, when there are more than 2 and the split divides */
                int g = sh->n_gpus;
                if (g <= 2 || heads % g || n_tok % g)
                    continue;
                worlds[k] = g;
            }
            if (worlds[k] > 1 && sh->n_gpus < worlds[k]) {
                if (k == 1)
                    printf("%s: needs 2 GPUs for cfg and ulysses, %d visible: only the single-GPU part ran\n",
                           ms->name, sh->n_gpus);
                needs_more = 1;
                continue;
            }
            int bad = run_mode(&br, modes[k], worlds[k]);
            mode_result *r = &sh->res;
            if (bad || r->rc < 0) {
                printf("ERROR %s %s on %d GPUs: %s\n", ms->name, mode_names[modes[k]], worlds[k], r->msg);
                status = 1;
                if (k == 0)
                    break;
                continue;
            }
            if (k == 0)
                t_none = r->ms_per_step;
            double speedup = t_none / r->ms_per_step, eff = speedup / worlds[k];
            printf("RESULT parallel %s %s %d %.1f %.3f %.3f %.3e\n", ms->name, mode_names[modes[k]],
                   worlds[k], r->ms_per_step, speedup, eff, r->max_rel);
            printf("# %s %s on %d GPU(s): %.1f ms per step (%.2f ms per layer), speedup %.2fx, efficiency "
                   "%.0f%%, "
                   "max rel vs 1 GPU %.2e\n",
                   ms->name, mode_names[modes[k]], worlds[k], r->ms_per_step, r->ms_per_step / n_layers,
                   speedup, 100 * eff, r->max_rel);
            fflush(stdout);
            if (n_rows < 16)
                snprintf(rows[n_rows++].text, sizeof rows[0].text,
                         "%-6s %-3d %-8s %4d %10.1f %8.2fx %6.0f%% %10.2e", ms->name, n_layers,
                         mode_names[modes[k]], worlds[k], r->ms_per_step, speedup, 100 * eff, r->max_rel);
        }
    }
    printf("\n%-6s %-3s %-8s %4s %10s %9s %7s %10s\n", "model", "lay", "mode", "gpus", "ms/step", "speedup",
           "eff", "max rel");
    for (int i = 0; i < n_rows; i++)
        printf("%s\n", rows[i].text);
    printf("(one step = conditional + unconditional DiT forward and the guidance combine, FP8, 832x480x81 "
           "unless "
           "--grid; speedup over 1 GPU in the same run)\n");
    if (needs_more)
        printf("needs 2 GPUs: cfg and ulysses were not run\n");
    munmap(sh, sh_bytes);
    return status;
}
