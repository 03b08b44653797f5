// deps: au_pipeline au_cuda
/* test_cuda_oom.c - running out of GPU memory is a job error, not a crash. The tiny model is
 * opened on the GPU, then the test takes nearly all the device's free memory: the job fails
 * with an error that says memory ran out (AU_ENOMEM, or the CUDA error naming it when a
 * kernel could not be loaded), and the process goes on. Once the memory is given back, the same
 * pipeline makes the job, and its frames equal those of a fresh pipeline: nothing was left
 * half-made. An arena asked for more than the device holds fails the same way.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/cuda_backend.h"
#include "pipeline.h"

#define HOG_MAX 4096

static void *hog[HOG_MAX];
static int n_hog;

/* Take device memory in shrinking chunks until less than keep bytes are free. */
static void hog_memory(size_t keep) {
    size_t chunk = (size_t)1 << 30, free_b = 0, total_b = 0;
    while (chunk >= ((size_t)1 << 20) && n_hog < HOG_MAX) {
        REQUIRE(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess, "cudaMemGetInfo");
        if (free_b < keep + chunk) {
            chunk /= 2;
            continue;
        }
        if (cudaMalloc(&hog[n_hog], chunk) != cudaSuccess) {
            cudaGetLastError();
            chunk /= 2;
            continue;
        }
        n_hog++;
    }
    cudaMemGetInfo(&free_b, &total_b);
    printf("held %d chunks; %.1f MiB of %.1f GiB left free\n", n_hog, free_b / 1048576.0, total_b / 1073741824.0);
}

static void hog_release(void) {
    for (int i = 0; i < n_hog; i++)
        cudaFree(hog[i]);
    n_hog = 0;
}

static void params(au_gen_params *q) {
    pipeline_params_init(q);
    q->prompt = "a lighthouse at night, waves breaking";
    q->width = 128;
    q->height = 96;
    q->frames = 17;
    q->steps = 4;
    q->seed = 7;
}

static au_pipeline *open_tiny(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/tiny-random", src ? src : ".");
    au_pipeline_opts opts = {.device = AU_DEVICE_CUDA, .precision = AU_PRECISION_FP8};
    au_pipeline *p = NULL;
    au_err err = {0};
    REQUIRE(pipeline_open(&p, dir, &opts, &err) == 0, "pipeline_open: %s", err.msg);
    return p;
}

int main(void) {
    if (be_cuda_device_count() <= 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    /* an arena larger than the device */
    {
        au_backend *be = NULL;
        au_err err = {0};
        be_cuda_opts o = {0, BE_CUDA_FP8};
        REQUIRE(be_cuda_create(&be, &o, &err) == 0, "be_cuda_create: %s", err.msg);
        au_arena *a = be_arena_create(be, 1 << 20);
        REQUIRE(a != NULL, "arena");
        void *p = be_arena_alloc(a, (size_t)1 << 50, &err);
        CHECK(p == NULL && err.code == AU_ENOMEM, "1 PiB arena: %p, code %d, %s", p, err.code, err.msg);
        printf("1 PiB arena: %s\n", err.msg);
        be_arena_destroy(a);
        be_destroy(be);
    }
    au_video want = {0}, got = {0};
    au_gen_params q;
    params(&q);
    {
        au_pipeline *fresh = open_tiny();
        au_err err = {0};
        REQUIRE(pipeline_generate(fresh, &q, NULL, NULL, NULL, &want, &err) == 0, "reference job: %s", err.msg);
        pipeline_close(fresh);
    }
    au_pipeline *p = open_tiny();
    hog_memory((size_t)8 << 20);
    au_err err = {0};
    int rc = pipeline_generate(p, &q, NULL, NULL, NULL, &got, &err);
    hog_release();
    printf("job with the device full: rc %d: %s\n", rc, err.msg);
    CHECK(rc == AU_ENOMEM || (rc == AU_EBACKEND && strstr(err.msg, "out of memory")),
          "expected an out-of-memory error, got rc %d: %s", rc, err.msg);
    au_video_free(&got);
    err = (au_err){0};
    rc = pipeline_generate(p, &q, NULL, NULL, NULL, &got, &err);
    CHECK(rc == 0, "job after the memory came back: %s", err.msg);
    if (rc == 0) {
        size_t n = (size_t)want.n_frames * want.height * want.width * 3;
        CHECK(got.n_frames == want.n_frames && got.width == want.width && got.height == want.height &&
                  memcmp(got.rgb, want.rgb, n) == 0,
              "frames after the failed job differ from a fresh pipeline's");
    }
    pipeline_close(p);
    au_video_free(&want);
    au_video_free(&got);
    return check_exit_code();
}
