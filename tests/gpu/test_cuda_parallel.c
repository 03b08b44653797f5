// deps: au_pipeline au_cuda
/* test_cuda_parallel.c - the parallel modes on the CUDA backend: two processes on ONE GPU,
 * each with its own context, joined through comm_tcp (tensors staged through host memory),
 * models/tiny-random at 128x96x17 (240 tokens), 8 steps, FP8 and bf16 (tests/rank_pair.h).
 * Against the single-GPU pipeline_generate of the same job (the reference also runs in a
 * child: a CUDA context does not survive fork, so the parent never makes one):
 *  - CFG: each rank runs the same kernels on its branch, so the frames must match the
 *    single-GPU ones (PSNR >= 40 dB asserted, the figure printed);
 *  - ULYSSES: the GEMMs see other row counts and the self-attention output is exchanged in
 *    bf16 before its per-row FP8 quantization: PSNR >= 20 dB in FP8 and >= 30 dB in bf16
 *    (the thresholds of the CPU-vs-GPU test on this noise-like model), figure printed;
 *  - dit_forward_sp vs dit_forward on one call: max|a-b| / max|b| printed, bounded;
 *  - a cancel on rank 1 stops both ranks at the same step; a killed rank 1 gives AU_ECOMM.
 * Without a GPU: "skipped: no GPU".
 */
#include "kernels/cuda_backend.h"
#include "rank_pair.h"

static rp_scenario job(au_precision prec, au_parallel mode) {
    rp_scenario sc = {RP_JOB, mode, {.device = AU_DEVICE_CUDA, .precision = prec}, 128, 96, 17, 8, 5.0f, 0, 0,
                      0,      0};
    return sc;
}

static void test_precision(rp_shared *sh, au_precision prec) {
    const char *pname = prec == AU_PRECISION_FP8 ? "fp8" : "bf16";
    rp_scenario ref = job(prec, AU_PARALLEL_NONE);
    rp_run_single(&ref, sh);
    REQUIRE(sh->r[0].rc == 0, "[%s] single GPU: %s", pname, sh->r[0].msg);
    const int want_frames = sh->r[0].n_frames;
    const double single_s = sh->r[0].seconds;
    const size_t n = (size_t)want_frames * (size_t)ref.width * (size_t)ref.height * 3;

    static const au_parallel modes[2] = {AU_PARALLEL_CFG, AU_PARALLEL_ULYSSES};
    for (int m = 0; m < 2; m++) {
        const char *name = pipeline_parallel_name(modes[m]);
        rp_scenario sc = job(prec, modes[m]);
        rp_run_pair(&sc, sh);
        for (int r = 0; r < 2; r++)
            CHECK(sh->r[r].rc == 0, "[%s] %s rank %d: %s", pname, name, r, sh->r[r].msg);
        CHECK(sh->r[0].n_frames == want_frames && sh->r[1].n_frames == 0,
              "[%s] %s: frames on rank 0 %d, rank 1 %d", pname, name, sh->r[0].n_frames, sh->r[1].n_frames);
        if (sh->r[0].rc || sh->r[0].n_frames != want_frames)
            continue;
        size_t n_diff;
        double psnr;
        int max_diff = rp_compare_frames(sh->frames[0], sh->frames[1], n, &n_diff, &psnr);
        double min_psnr = modes[m] == AU_PARALLEL_CFG ? 40.0 : (prec == AU_PRECISION_FP8 ? 20.0 : 30.0);
        printf("[%s] %-8s 2 processes vs 1 GPU: PSNR %.1f dB, max |diff| %d levels, %zu of %zu values differ "
               "(%.2f s, single %.2f s)\n",
               pname, name, psnr, max_diff, n_diff, n, sh->r[0].seconds, single_s);
        CHECK(psnr >= min_psnr, "[%s] %s: PSNR %.1f dB < %.0f", pname, name, psnr, min_psnr);
    }

    rp_scenario dit = job(prec, AU_PARALLEL_ULYSSES);
    dit.kind = RP_DIT;
    rp_run_pair(&dit, sh);
    const double max_rel = prec == AU_PRECISION_FP8 ? 0.1 : 0.05;
    for (int r = 0; r < 2; r++) {
        CHECK(sh->r[r].rc == 0, "[%s] dit rank %d: %s", pname, r, sh->r[r].msg);
        if (sh->r[r].rc)
            continue;
        printf("[%s] dit_forward_sp rank %d vs dit_forward: max rel %.2e\n", pname, r, sh->r[r].dit_max_rel);
        CHECK(sh->r[r].dit_max_rel < max_rel, "[%s] dit rank %d: max rel %.3g", pname, r,
              sh->r[r].dit_max_rel);
        CHECK(sh->r[r].odd_grid_rc == AU_EINVAL, "[%s] dit rank %d: 3 tokens on 2 ranks: rc %d", pname, r,
              sh->r[r].odd_grid_rc);
    }
}

static void test_stops(rp_shared *sh) {
    rp_scenario sc = job(AU_PRECISION_FP8, AU_PARALLEL_CFG);
    sc.cancel_at = 3;
    rp_run_pair(&sc, sh);
    for (int r = 0; r < 2; r++)
        CHECK(sh->r[r].rc == AU_ECANCELED && sh->r[r].last_step == 3 && strstr(sh->r[r].msg, "step 3 of 8"),
              "cancel on rank 1, rank %d: rc %d, last step %d, %s", r, sh->r[r].rc, sh->r[r].last_step,
              sh->r[r].msg);
    printf("[fp8] cfg cancel on rank 1 at step 3: \"%s\" / \"%s\"\n", sh->r[0].msg, sh->r[1].msg);
    rp_scenario killed = job(AU_PRECISION_FP8, AU_PARALLEL_ULYSSES);
    killed.kill_at = 2;
    int st1 = rp_run_pair(&killed, sh);
    CHECK(WIFSIGNALED(st1), "rank 1 was not killed (status %d)", st1);
    CHECK(sh->r[0].rc == AU_ECOMM, "peer killed: rank 0 rc %d: %s", sh->r[0].rc, sh->r[0].msg);
    printf("[fp8] ulysses, rank 1 killed after step 2: rank 0 rc %d: %s\n", sh->r[0].rc, sh->r[0].msg);
}

int main(void) {
    if (rp_find_model() < 0) {
        printf("skipped: no models/tiny-random\n");
        return 77;
    }
    rp_shared *sh = rp_shared_map();
    rp_gpu_count = be_cuda_device_count;
    rp_scenario probe = job(AU_PRECISION_FP8, AU_PARALLEL_NONE);
    probe.steps = 1;
    rp_run_single(&probe, sh);
    if (sh->n_gpus <= 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    test_precision(sh, AU_PRECISION_FP8);
    test_precision(sh, AU_PRECISION_BF16);
    test_stops(sh);
    munmap(sh, sizeof *sh);
    return check_exit_code();
}
