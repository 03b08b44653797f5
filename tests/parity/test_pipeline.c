// deps: au_pipeline
/* test_pipeline.c - the whole text-to-video job on the CPU backend against the PyTorch
 * reference (tests/golden/pipeline/, written by tools/reference/make_goldens.py on
 * models/tiny-random): same prompt, seed and settings must give the same uint8 frames
 * (tolerance: one level, where float rounding crosses a truncation boundary). Also: the
 * noise file path gives the same result, cancel stops the job, bad parameters name the field.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "safetensors.h"
#include "check.h"

#define GOLDEN "tests/golden/pipeline"

static void compare_frames(const char *what, const au_video *v, const au_tensor *golden) {
    CHECK(v->n_frames == golden->shape[0] && v->height == golden->shape[1] && v->width == golden->shape[2],
          "%s: video %dx%dx%d, golden %lldx%lldx%lld", what, v->n_frames, v->height, v->width,
          (long long)golden->shape[0], (long long)golden->shape[1], (long long)golden->shape[2]);
    if (failures)
        return;
    const uint8_t *g = golden->data;
    size_t n = (size_t)au_numel(golden), off_by_one = 0;
    int max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)v->rgb[i] - (int)g[i]);
        max_diff = d > max_diff ? d : max_diff;
        off_by_one += d == 1;
    }
    printf("%s: %zu values, max |diff| %d levels, %zu off by one\n", what, n, max_diff, off_by_one);
    CHECK(max_diff <= 1, "%s: frames differ from the reference by %d levels", what, max_diff);
    CHECK(off_by_one * 1000 <= n, "%s: %zu of %zu values off by one", what, off_by_one, n);
}

static int cancel_at_step_2(void *user, int step, int n_steps) {
    (void)user;
    (void)n_steps;
    return step >= 2;
}

int main(void) {
    if (access(GOLDEN "/io.safetensors", R_OK) != 0) {
        printf("skipped: golden missing\n");
        return 77;
    }
    json_error_t jerr;
    json_t *params = json_load_file(GOLDEN "/params.json", 0, &jerr);
    au_err err = {0};
    st_set *io = NULL;
    au_pipeline *p = NULL;
    if (!params || st_open(&io, GOLDEN "/io.safetensors", &err) < 0) {
        fprintf(stderr, "cannot read the golden: %s\n", err.msg);
        return 1;
    }
    au_pipeline_opts opts = {.device = AU_DEVICE_CPU};
    if (pipeline_open(&p, json_string_value(json_object_get(params, "model")), &opts, &err) < 0) {
        fprintf(stderr, "pipeline_open: %s\n", err.msg);
        return 1;
    }
    au_gen_params q;
    pipeline_params_init(&q);
    q.prompt = json_string_value(json_object_get(params, "prompt"));
    q.negative_prompt = json_string_value(json_object_get(params, "negative_prompt"));
    q.width = (int)json_integer_value(json_object_get(params, "width"));
    q.height = (int)json_integer_value(json_object_get(params, "height"));
    q.frames = (int)json_integer_value(json_object_get(params, "frames"));
    q.steps = (int)json_integer_value(json_object_get(params, "steps"));
    q.guidance_scale = (float)json_number_value(json_object_get(params, "guidance_scale"));
    q.shift = (float)json_number_value(json_object_get(params, "shift"));
    q.sampler = json_string_value(json_object_get(params, "sampler"));
    q.seed = json_integer_value(json_object_get(params, "seed"));
    const au_tensor *golden = st_get(io, "frames");
    CHECK(golden && golden->dtype == AU_U8 && golden->ndim == 4, "golden has no uint8 frames");

    /* 1. seed -> Philox noise -> frames */
    au_video v = {0};
    int rc = pipeline_generate(p, &q, NULL, NULL, NULL, &v, &err);
    CHECK(rc == 0, "generate: %s", err.msg);
    if (rc == 0 && golden)
        compare_frames("seeded run", &v, golden);
    au_video_free(&v);

    /* 2. the reference's noise from a file: same frames */
    char noise_path[] = "/tmp/auteur-noise-XXXXXX";
    int fd = mkstemp(noise_path);
    const au_tensor *noise = st_get(io, "noise");
    st_entry e = {"noise", *noise};
    CHECK(fd >= 0 && st_write(noise_path, &e, 1, NULL, &err) == 0, "writing noise: %s", err.msg);
    q.noise_path = noise_path;
    rc = pipeline_generate(p, &q, NULL, NULL, NULL, &v, &err);
    CHECK(rc == 0, "generate --noise: %s", err.msg);
    if (rc == 0 && golden)
        compare_frames("noise file run", &v, golden);
    au_video_free(&v);
    q.noise_path = NULL;
    unlink(noise_path);
    close(fd);

    /* 3. cancel between steps */
    rc = pipeline_generate(p, &q, cancel_at_step_2, NULL, NULL, &v, &err);
    CHECK(rc == AU_ECANCELED && v.rgb == NULL, "cancel: rc %d (%s)", rc, err.msg);
    atomic_int cancel = 1;
    rc = pipeline_generate(p, &q, NULL, NULL, &cancel, &v, &err);
    CHECK(rc == AU_ECANCELED, "cancel flag: rc %d", rc);

    /* 4. bad parameters name the field */
    au_gen_params bad = q;
    bad.frames = 10;
    rc = pipeline_resolve_params(p, &bad, &err);
    CHECK(rc == AU_EINVAL && strncmp(err.msg, "frames:", 7) == 0, "frames 10: %s", err.msg);
    bad = q;
    bad.width = 72;
    rc = pipeline_resolve_params(p, &bad, &err);
    CHECK(rc == AU_EINVAL && strncmp(err.msg, "size:", 5) == 0, "width 72: %s", err.msg);
    bad = q;
    bad.sampler = "ddim";
    rc = pipeline_resolve_params(p, &bad, &err);
    CHECK(rc == AU_EINVAL && strncmp(err.msg, "sampler:", 8) == 0, "sampler ddim: %s", err.msg);
    bad = q;
    bad.prompt = "   ";
    rc = pipeline_resolve_params(p, &bad, &err);
    CHECK(rc == AU_EINVAL && strncmp(err.msg, "prompt:", 7) == 0, "blank prompt: %s", err.msg);
    au_gen_params dflt;
    pipeline_params_init(&dflt);
    dflt.prompt = "x";
    rc = pipeline_resolve_params(p, &dflt, &err);
    CHECK(rc == 0 && dflt.width > 0 && dflt.frames > 0 && dflt.steps > 0 && dflt.seed >= 0 && dflt.sampler,
          "defaults: %s", err.msg);

    pipeline_close(p);
    st_close(io);
    json_decref(params);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
