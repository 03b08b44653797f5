// deps: au_pipeline au_cuda au_core
/* bench_video.c - one whole text-to-video job through the real pipeline (pipeline_open,
 * pipeline_generate), engine only (no FFmpeg, no server): seconds per stage and peak GPU memory.
 *
 *   bench_video MODEL_DIR [--width W --height H] [--frames F] [--steps N] [--guidance G]
 *               [--precision fp8|bf16] [--warmup-steps N] [--seed S] [--prompt TEXT] [--device cuda|cpu]
 * Defaults: the model's (832x480, 81 frames, 50 UniPC steps, guidance 5 i.e. two DiT forwards per
 * step, shift 5, its negative prompt), FP8, seed 42, one warm-up job of 1 step at the same size
 * first (the first job of a size grows the arenas; --warmup-steps 0 measures that cold job).
 * Stages, from the progress callback (called after text encoding and after each step; the
 * pipeline syncs before each step's call, this program syncs the device at the text call):
 *   text    tokenize + UMT5 of the prompt and the negative prompt + the DiT's text embedding
 *   steps   noise, then per step the DiT forwards, guidance and the sampler update
 *   decode  VAE decode, download and conversion to uint8 frames
 * Peak GPU memory: the highest cudaMemGetInfo "used" seen by a thread polling every 5 ms from
 * before pipeline_open to the end (device-wide, so the CUDA context is included), and the same
 * less what was in use before pipeline_open.
 * Prints "VIDEO <key> <value>" lines (bench/figures_table.py makes them a table).
 */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda_backend.h"
#include "pipeline.h"

typedef struct video_args {
    const char *model_dir, *prompt;
    int width, height, frames, steps, warmup_steps, use_cpu;
    float guidance;
    int64_t seed;
    au_precision precision;
} video_args;

/* Stage clock: t[0] when generation starts, t[1 + i] at the progress call of step i. */
typedef struct stage_clock {
    double *t;
    int n_calls, max_calls, sync_device, sync_failed;
} stage_clock;

typedef struct mem_watch {
    pthread_t thread;
    atomic_int stop;
    size_t peak_used, baseline_used;
    int running;
} mem_watch;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_progress(void *user, int step, int n_steps) {
    (void)n_steps;
    stage_clock *c = user;
    /* text encoding is queued asynchronously: wait for it so its time is its own */
    if (step == 0 && c->sync_device && cudaDeviceSynchronize() != cudaSuccess)
        c->sync_failed = 1;
    if (c->n_calls < c->max_calls)
        c->t[1 + c->n_calls++] = now_s();
    return 0;
}

static size_t device_used(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        return 0;
    return total_b - free_b;
}

static void *watch_memory(void *user) {
    mem_watch *w = user;
    const struct timespec pause = {0, 5000000};
    cudaSetDevice(0);
    while (!atomic_load(&w->stop)) {
        size_t used = device_used();
        if (used > w->peak_used)
            w->peak_used = used;
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int watch_start(mem_watch *w) {
    cudaFree(0); /* create the context first, so the baseline holds it */
    w->baseline_used = w->peak_used = device_used();
    atomic_store(&w->stop, 0);
    w->running = pthread_create(&w->thread, NULL, watch_memory, w) == 0;
    return w->running ? 0 : -1;
}

static void watch_stop(mem_watch *w) {
    if (!w->running)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    w->running = 0;
}

/* One job; fills clock (clock->t[0] at the start) and returns pipeline_generate's status. */
static int run_job(au_pipeline *p, const video_args *a, int steps, stage_clock *clock, au_video *video,
                   au_err *err) {
    au_gen_params q;
    pipeline_params_init(&q);
    q.prompt = a->prompt;
    q.width = a->width;
    q.height = a->height;
    q.frames = a->frames;
    q.steps = steps;
    q.seed = a->seed;
    if (a->guidance >= 0)
        q.guidance_scale = a->guidance;
    int rc = pipeline_resolve_params(p, &q, err);
    if (rc < 0)
        return rc;
    clock->n_calls = 0;
    clock->max_calls = steps + 1;
    clock->t[0] = now_s();
    rc = pipeline_generate(p, &q, on_progress, clock, NULL, video, err);
    if (rc == 0 && clock->sync_failed)
        rc = au_errf(err, AU_EBACKEND, "cudaDeviceSynchronize after text encoding failed");
    if (rc == 0 && clock->n_calls != steps + 1)
        rc = au_errf(err, AU_EINTERNAL, "progress was called %d times for %d steps", clock->n_calls, steps);
    return rc;
}

static double frames_mean(const au_video *v) {
    size_t n = (size_t)v->n_frames * (size_t)v->height * (size_t)v->width * 3;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v->rgb[i];
    return n ? s / (double)n : 0;
}

/* The VIDEO lines: stage seconds from the clock of the measured job, memory, a frame statistic. */
static void print_stages(const video_args *a, const stage_clock *c, int steps, double t_end, double load_s,
                         double warm_s, const mem_watch *w, const au_video *v, const char *backend) {
    double text_s = c->t[1] - c->t[0], steps_s = c->t[1 + steps] - c->t[1];
    double step_min = 1e30, step_max = 0;
    for (int i = 1; i <= steps; i++) {
        double d = c->t[1 + i] - c->t[i];
        step_min = d < step_min ? d : step_min;
        step_max = d > step_max ? d : step_max;
    }
    const char *prec = a->use_cpu ? "f32" : a->precision == AU_PRECISION_BF16 ? "bf16" : "fp8";
    printf("VIDEO size %dx%dx%d\nVIDEO steps %d\nVIDEO backend %s-%s\n", v->width, v->height, v->n_frames,
           steps, backend, prec);
    printf("VIDEO load_s %.2f\nVIDEO warmup_s %.2f\nVIDEO text_s %.3f\nVIDEO steps_s %.2f\n", load_s, warm_s,
           text_s, steps_s);
    printf("VIDEO step_mean_s %.3f\nVIDEO step_min_s %.3f\nVIDEO step_max_s %.3f\n", steps_s / steps,
           step_min, step_max);
    printf("VIDEO decode_s %.2f\nVIDEO total_s %.2f\n", t_end - c->t[1 + steps], t_end - c->t[0]);
    if (!a->use_cpu) {
        const double gib = 1073741824.0;
        printf("VIDEO peak_gib %.2f\nVIDEO peak_above_start_gib %.2f\n", w->peak_used / gib,
               (w->peak_used - w->baseline_used) / gib);
    }
    printf("VIDEO frames_mean %.2f\n", frames_mean(v));
}

static int parse_args(int argc, char **argv, video_args *a) {
    memset(a, 0, sizeof *a);
    a->prompt = "a red fox running through fresh snow at dawn, soft light, cinematic";
    a->warmup_steps = 1;
    a->guidance = -1;
    a->seed = 42;
    a->precision = AU_PRECISION_FP8;
    if (argc < 2 || argv[1][0] == '-')
        return -1;
    a->model_dir = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        i++;
        if (!strcmp(k, "--width"))
            a->width = atoi(v);
        else if (!strcmp(k, "--height"))
            a->height = atoi(v);
        else if (!strcmp(k, "--frames"))
            a->frames = atoi(v);
        else if (!strcmp(k, "--steps"))
            a->steps = atoi(v);
        else if (!strcmp(k, "--guidance"))
            a->guidance = (float)atof(v);
        else if (!strcmp(k, "--warmup-steps"))
            a->warmup_steps = atoi(v);
        else if (!strcmp(k, "--seed"))
            a->seed = atoll(v);
        else if (!strcmp(k, "--prompt"))
            a->prompt = v;
        else if (!strcmp(k, "--precision") && (!strcmp(v, "fp8") || !strcmp(v, "bf16")))
            a->precision = !strcmp(v, "bf16") ? AU_PRECISION_BF16 : AU_PRECISION_FP8;
        else if (!strcmp(k, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda")))
            a->use_cpu = !strcmp(v, "cpu");
        else
            return -1;
    }
    return a->warmup_steps >= 0 && a->steps >= 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    video_args a;
    if (parse_args(argc, argv, &a) < 0) {
        fprintf(stderr, "usage: bench_video MODEL_DIR [--width W --height H] [--frames F] [--steps N] "
                        "[--guidance G] [--precision fp8|bf16] [--warmup-steps N] [--seed S] [--prompt TEXT] "
                        "[--device cuda|cpu]\n");
        return 2;
    }
    if (!a.use_cpu && be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    au_err err = {0};
    mem_watch watch = {0};
    if (!a.use_cpu && watch_start(&watch) < 0) {
        fprintf(stderr, "bench_video: cannot start the memory watcher thread\n");
        return 1;
    }
    au_pipeline_opts opts = {a.use_cpu ? AU_DEVICE_CPU : AU_DEVICE_CUDA, 0, a.precision};
    au_pipeline *p = NULL;
    au_video video = {0};
    stage_clock clock = {0};
    double t0 = now_s(), load_s = 0, warm_s = 0;
    int rc = pipeline_open(&p, a.model_dir, &opts, &err);
    load_s = now_s() - t0;
    const au_model_info *info = rc == 0 ? pipeline_model_info(p) : NULL;
    int steps = a.steps ? a.steps : (info ? info->default_steps : 0);
    if (rc == 0) {
        clock.t = malloc(sizeof *clock.t * (size_t)((a.warmup_steps > steps ? a.warmup_steps : steps) + 2));
        clock.sync_device = !a.use_cpu;
        if (!clock.t)
            rc = au_errf(&err, AU_ENOMEM, "out of memory");
    }
    if (rc == 0 && a.warmup_steps > 0) {
        t0 = now_s();
        rc = run_job(p, &a, a.warmup_steps, &clock, &video, &err);
        warm_s = now_s() - t0;
        au_video_free(&video);
        if (rc < 0)
            au_err_prefix(&err, "warm-up job");
    }
    if (rc == 0)
        rc = run_job(p, &a, steps, &clock, &video, &err);
    double t_end = now_s();
    watch_stop(&watch);
    if (rc < 0) {
        fprintf(stderr, "bench_video: %s\n", err.msg);
        free(clock.t);
        pipeline_close(p);
        return 1;
    }
    print_stages(&a, &clock, steps, t_end, load_s, warm_s, &watch, &video, pipeline_backend_name(p));
    au_video_free(&video);
    free(clock.t);
    pipeline_close(p);
    return 0;
}
