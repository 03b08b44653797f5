/* cmd_generate.c - `auteur generate`: one video without a server.
 *
 * The flags are turned into the same fields a POST /v1/videos carries and validated by the
 * same code (api_create_request, then pipeline_resolve_params), so the CLI and the API
 * accept exactly the same values. The MP4 is written to "<output>.part.mp4" and renamed;
 * Ctrl-C stops the engine at its next step and leaves no file. On a terminal, stderr shows
 * a progress bar; otherwise one line per step.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/video.h"
#include "commands.h"
#include "config.h"
#include "encode_mp4.h"
#include "pipeline.h"

static atomic_int interrupted; /* set by SIGINT/SIGTERM, polled by the engine */

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct progress_state {
    int tty;
    double t0, t_step0;
} progress_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_progress(void *user, int step, int n_steps) {
    progress_state *ps = user;
    double t = now_s();
    if (step == 0)
        ps->t_step0 = t;
    double per_step = step > 0 ? (t - ps->t_step0) / step : 0;
    if (ps->tty) {
        enum { WIDTH = 30 };
        int filled = n_steps > 0 ? WIDTH * step / n_steps : 0;
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r[%s] step %d/%d  %.2f s/step  %.1f s", bar, step, n_steps, per_step, t - ps->t0);
        if (step == n_steps)
            fputs("  decoding...", stderr);
    } else if (step > 0) {
        fprintf(stderr, "step %d/%d (%.2f s/step)\n", step, n_steps, per_step);
    }
    fflush(stderr);
    return 0;
}

/* The flags as the fields of a create request. */
static json_t *flags_as_fields(const generate_config *g) {
    json_t *f = json_object();
    json_object_set_new(f, "prompt", json_string(g->prompt));
    if (g->has_negative_prompt)
        json_object_set_new(f, "negative_prompt", json_string(g->negative_prompt));
    if (g->size[0])
        json_object_set_new(f, "size", json_string(g->size));
    if (g->frames > 0)
        json_object_set_new(f, "frames", json_integer(g->frames));
    if (g->seconds > 0)
        json_object_set_new(f, "seconds", json_real(g->seconds));
    if (g->fps > 0)
        json_object_set_new(f, "fps", json_integer(g->fps));
    if (g->steps > 0)
        json_object_set_new(f, "steps", json_integer(g->steps));
    if (g->guidance_scale >= 0)
        json_object_set_new(f, "guidance_scale", json_real(g->guidance_scale));
    if (g->shift >= 0)
        json_object_set_new(f, "shift", json_real(g->shift));
    if (g->sampler[0])
        json_object_set_new(f, "sampler", json_string(g->sampler));
    if (g->seed >= 0)
        json_object_set_new(f, "seed", json_integer(g->seed));
    return f;
}

/* "guidance_scale" -> "--guidance-scale" */
static void flag_name(const char *param, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "--");
    for (const char *p = param; *p && o + 1 < cap; p++)
        out[o++] = *p == '_' ? '-' : *p;
    out[o] = '\0';
}

/* Write the video (and thumbnail) through temporary names. */
static int write_outputs(const generate_config *g, const au_video *video, int fps, au_err *err) {
    char part[PATH_MAX + 16];
    snprintf(part, sizeof part, "%s.part.mp4", g->output);
    au_mp4_opts mo = {.fps = fps, .crf = 0, .encoder = NULL};
    int rc = mp4_write(part, video, &mo, err);
    if (rc == 0 && rename(part, g->output) != 0)
        rc = au_errf(err, AU_EIO, "renaming %s to %s: %s", part, g->output, strerror(errno));
    if (rc) {
        unlink(part);
        return rc;
    }
    if (g->thumbnail[0]) {
        const char *ext = strrchr(g->thumbnail, '.');
        snprintf(part, sizeof part, "%s.part%s", g->thumbnail, ext ? ext : "");
        rc = image_write(part, video->rgb, video->width, video->height, err);
        if (rc == 0 && rename(part, g->thumbnail) != 0)
            rc = au_errf(err, AU_EIO, "renaming %s to %s: %s", part, g->thumbnail, strerror(errno));
        if (rc)
            unlink(part);
    }
    return rc;
}

int cmd_generate(int argc, char **argv) {
    generate_config *g = calloc(1, sizeof *g);
    au_err err;
    if (!g) {
        fprintf(stderr, "auteur generate: out of memory\n");
        return 1;
    }
    int exit_code = 1, rc = config_generate(g, argc, argv, &err);
    if (rc != CFG_RUN) {
        if (rc == CFG_USAGE)
            fprintf(stderr, "%s\n", err.msg);
        free(g);
        return rc == CFG_EXIT ? 0 : 2;
    }
    const char *ext = strrchr(g->thumbnail, '.');
    if (g->thumbnail[0] && (!ext || (strcmp(ext, ".jpg") && strcmp(ext, ".jpeg") && strcmp(ext, ".png")))) {
        fprintf(stderr, "auteur generate: --thumbnail must end in .jpg, .jpeg or .png\n");
        free(g);
        return 2;
    }
    au_pipeline *pipe = NULL;
    au_pipeline_opts po = {.device = g->device, .n_threads = g->threads, .precision = g->precision};
    json_t *fields = NULL;
    api_request req;
    memset(&req, 0, sizeof req);
    au_video video = {0};
    if (pipeline_open(&pipe, g->model_dir, &po, &err) != 0) {
        fprintf(stderr, "auteur generate: %s\n", err.msg);
        goto done;
    }
    const au_model_info *mi = pipeline_model_info(pipe);
    fields = flags_as_fields(g);
    api_error e;
    au_gen_params params;
    if (api_create_request(fields, mi, &req, &e) != 0) {
        char flag[64];
        flag_name(e.param[0] ? e.param : "prompt", flag, sizeof flag);
        fprintf(stderr, "auteur generate: %s: %s\n", flag, e.message);
        exit_code = 2;
        goto done;
    }
    params = req.params;
    params.noise_path = g->noise_path[0] ? g->noise_path : NULL;
    if (pipeline_resolve_params(pipe, &params, &err) != 0) {
        fprintf(stderr, "auteur generate: %s\n", err.msg);
        exit_code = err.code == AU_EINVAL ? 2 : 1;
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    progress_state ps = {.tty = isatty(STDERR_FILENO), .t0 = now_s()};
    fprintf(stderr, "auteur: %s on %s: %dx%d, %d frames at %d fps, %d steps, seed %lld\n", mi->name,
            pipeline_backend_name(pipe), params.width, params.height, params.frames, req.fps, params.steps,
            (long long)params.seed);
    rc = pipeline_generate(pipe, &params, on_progress, &ps, &interrupted, &video, &err);
    if (ps.tty)
        fputc('\n', stderr);
    if (rc == 0)
        rc = write_outputs(g, &video, req.fps, &err);
    if (rc != 0) {
        fprintf(stderr, "auteur generate: %s\n",
                rc == AU_ECANCELED ? "interrupted; no file written" : err.msg);
        goto done;
    }
    fprintf(stderr, "auteur: wrote %s (%dx%d, %d frames at %d fps, seed %lld) in %.1f s\n", g->output,
            video.width, video.height, video.n_frames, req.fps, (long long)params.seed, now_s() - ps.t0);
    exit_code = 0;
done:
    au_video_free(&video);
    api_request_free(&req);
    json_decref(fields);
    pipeline_close(pipe);
    free(g);
    return exit_code;
}
