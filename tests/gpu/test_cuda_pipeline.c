// deps: au_pipeline au_cuda
/* test_cuda_pipeline.c - the whole text-to-video job on the CUDA backend against the CPU
 * backend: models/tiny-random, same prompt and seed, bf16 and FP8 precision. Compares the
 * uint8 frames: mean absolute difference and PSNR, printed; asserts the video stays the same
 * picture (PSNR >= 30 dB in bf16 and in FP8, where only the DiT's linears are e4m3, on this
 * random-weight model, whose output is noise-like and so the hardest case for small numeric
 * differences; measured 49 and 42 dB on an H100), that every
 * frame was written, that the denoising steps run as one recorded graph each (counted), and
 * that the job run again on the same pipeline, every step of it replayed, gives the same frames.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/cuda_backend.h"
#include "pipeline.h"

#define STEPS 8

/* The graphs the pipeline's backend has recorded and launched so far. */
static void graph_counts(au_pipeline *p, uint64_t *recorded, uint64_t *launched) {
    be_cuda_stats st;
    au_err err = {0};
    int rc = be_cuda_get_stats(pipeline_backend(p), &st, &err);
    REQUIRE(rc == 0, "stats: %s", err.msg);
    *recorded = st.graphs_recorded;
    *launched = st.graph_launches;
}

/* The job into v, and when again is not NULL the same job twice more on the same pipeline,
 * the third into again. On CUDA the denoising steps are recorded: the first job runs step 0
 * as it comes, records step 1 and replays it for the rest; the third job is served by the
 * second's recording from its first step. */
static int generate(au_device dev, au_precision prec, au_video *v, au_video *again) {
    au_pipeline *p = NULL;
    au_err err = {0};
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/tiny-random", src ? src : ".");
    au_pipeline_opts opts = {.device = dev, .precision = prec};
    int rc = pipeline_open(&p, dir, &opts, &err);
    REQUIRE(rc == 0, "pipeline_open: %s", err.msg);
    au_gen_params q;
    pipeline_params_init(&q);
    q.prompt = "a red circle moving to the right on a blue background";
    q.width = 128;
    q.height = 96;
    q.frames = 17;
    q.steps = STEPS;
    q.seed = 1234;
    rc = pipeline_generate(p, &q, NULL, NULL, NULL, v, &err);
    REQUIRE(rc == 0, "generate on %s: %s", pipeline_backend_name(p), err.msg);
    uint64_t rec = 0, launched = 0;
    if (dev == AU_DEVICE_CUDA) {
        graph_counts(p, &rec, &launched);
        CHECK(rec == 1 && launched == STEPS - 1,
              "%s: %llu step graphs recorded and %llu launched, expected 1 and %d", pipeline_backend_name(p),
              (unsigned long long)rec, (unsigned long long)launched, STEPS - 1);
    }
    if (again) {
        /* The job arena the first job grew is one chunk from the second job on, so the second
         * job's memory (and recording) can differ from the first's; the third's cannot. */
        au_video settle = {0};
        rc = pipeline_generate(p, &q, NULL, NULL, NULL, &settle, &err);
        REQUIRE(rc == 0, "second job on %s: %s", pipeline_backend_name(p), err.msg);
        const size_t bytes = (size_t)v->n_frames * (size_t)v->height * (size_t)v->width * 3;
        CHECK(settle.n_frames == v->n_frames && memcmp(settle.rgb, v->rgb, bytes) == 0,
              "second job: other frames than the first");
        au_video_free(&settle);
        if (dev == AU_DEVICE_CUDA)
            graph_counts(p, &rec, &launched);
        rc = pipeline_generate(p, &q, NULL, NULL, NULL, again, &err);
        REQUIRE(rc == 0, "third job on %s: %s", pipeline_backend_name(p), err.msg);
        if (dev == AU_DEVICE_CUDA) {
            uint64_t rec3, launched3;
            graph_counts(p, &rec3, &launched3);
            CHECK(rec3 == rec && launched3 == launched + STEPS,
                  "third job: %llu more graphs recorded and %llu launched, expected 0 and %d",
                  (unsigned long long)(rec3 - rec), (unsigned long long)(launched3 - launched), STEPS);
        }
    }
    pipeline_close(p);
    return 0;
}

static double psnr(const au_video *a, const au_video *b, double *mad) {
    size_t n = (size_t)a->n_frames * (size_t)a->height * (size_t)a->width * 3;
    double se = 0, ae = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->rgb[i] - (double)b->rgb[i];
        se += d * d;
        ae += fabs(d);
    }
    *mad = ae / (double)n;
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

int main(void) {
    if (be_cuda_device_count() <= 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    au_video cpu = {0}, bf16 = {0}, fp8 = {0}, fp8_again = {0};
    generate(AU_DEVICE_CPU, AU_PRECISION_FP8, &cpu, NULL);
    generate(AU_DEVICE_CUDA, AU_PRECISION_BF16, &bf16, NULL);
    generate(AU_DEVICE_CUDA, AU_PRECISION_FP8, &fp8, &fp8_again);
    REQUIRE(bf16.n_frames == cpu.n_frames && fp8.n_frames == cpu.n_frames && bf16.width == cpu.width,
            "frame counts or sizes differ");
    double mad_b, mad_f, mad_r;
    double p_b = psnr(&bf16, &cpu, &mad_b), p_f = psnr(&fp8, &cpu, &mad_f), p_r = psnr(&fp8_again, &fp8, &mad_r);
    printf("cuda bf16 vs cpu f32: PSNR %.1f dB, mean |diff| %.2f levels\n", p_b, mad_b);
    printf("cuda fp8  vs cpu f32: PSNR %.1f dB, mean |diff| %.2f levels\n", p_f, mad_f);
    printf("cuda fp8, the job again with every step replayed: PSNR %.1f dB\n", p_r);
    CHECK(p_b >= 30.0, "bf16 PSNR %.1f dB", p_b);
    CHECK(p_f >= 30.0, "fp8 PSNR %.1f dB", p_f);
    CHECK(p_r >= 99.0, "fp8 not deterministic: PSNR %.1f dB", p_r);
    au_video_free(&cpu);
    au_video_free(&bf16);
    au_video_free(&fp8);
    au_video_free(&fp8_again);
    return check_exit_code();
}
