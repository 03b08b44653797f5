// deps: au_pipeline
/* test_parallel.c - one job on two ranks (pipeline_generate_ranked, dit_forward_sp) on the
 * CPU backend, models/tiny-random (2 heads, 48 tokens at 64x64x9), two forked processes
 * joined through comm_tcp (tests/rank_pair.h). Checked:
 *  - CFG: the frames equal the single-rank pipeline_generate frames bit for bit;
 *  - ULYSSES (with and without guidance): within one uint8 level (the GEMMs see other row
 *    counts); rank 1 returns no frames;
 *  - dit_forward_sp against dit_forward on the same inputs (max relative error printed and
 *    bounded), with a smaller activation arena on each rank, and an indivisible grid refused;
 *  - a cancel on rank 1 at step 2 stops both ranks with AU_ECANCELED at step 2;
 *  - a peer killed mid-job, and a peer that stops answering, give AU_ECOMM on the other
 *    rank within the comm timeout;
 *  - parallel_check / parallel_auto / the mode names, and the model fingerprint.
 */
#include "rank_pair.h"

#define THREADS 2

static rp_scenario job(au_parallel mode, float guidance) {
    rp_scenario sc = {
        RP_JOB, mode, {.device = AU_DEVICE_CPU, .n_threads = THREADS}, 64, 64, 9, 4, guidance, 0, 0, 0, 0};
    return sc;
}

static void test_modes(rp_shared *sh) {
    static const struct {
        au_parallel mode;
        float guidance;
        int max_levels;
    } cases[3] = {{AU_PARALLEL_CFG, 5.0f, 0}, {AU_PARALLEL_ULYSSES, 5.0f, 1}, {AU_PARALLEL_ULYSSES, 1.0f, 1}};
    for (int c = 0; c < 3; c++) {
        rp_scenario sc = job(cases[c].mode, cases[c].guidance);
        const char *name = pipeline_parallel_name(cases[c].mode);
        rp_run_single(&sc, sh);
        REQUIRE(sh->r[0].rc == 0, "single rank: %s", sh->r[0].msg);
        int want_frames = sh->r[0].n_frames;
        int st1 = rp_run_pair(&sc, sh);
        CHECK(WIFEXITED(st1) && WEXITSTATUS(st1) == 0, "%s: rank 1 status %d", name, st1);
        for (int r = 0; r < 2; r++)
            CHECK(sh->r[r].rc == 0, "%s g=%g rank %d: rc %d: %s", name, cases[c].guidance, r, sh->r[r].rc,
                  sh->r[r].msg);
        CHECK(sh->r[0].n_frames == want_frames && sh->r[1].n_frames == 0,
              "%s: rank 0 has %d frames (want %d), rank 1 %d (want none)", name, sh->r[0].n_frames,
              want_frames, sh->r[1].n_frames);
        if (sh->r[0].rc == 0 && sh->r[0].n_frames == want_frames) {
            size_t n = (size_t)want_frames * (size_t)sc.width * (size_t)sc.height * 3, n_diff;
            double psnr;
            int max_diff = rp_compare_frames(sh->frames[0], sh->frames[1], n, &n_diff, &psnr);
            printf("%-8s g=%g: 2 ranks vs 1: max |diff| %d levels, %zu of %zu values differ (%.2f s)\n", name,
                   cases[c].guidance, max_diff, n_diff, n, sh->r[0].seconds);
            CHECK(max_diff <= cases[c].max_levels, "%s: frames differ by %d levels (allowed %d)", name,
                  max_diff, cases[c].max_levels);
        }
    }
}

/* 2 heads (one per rank) and the same width as 4 heads of 64 (two per rank) */
static void test_dit(rp_shared *sh) {
    static const int heads[2] = {0, 4};
    for (int h = 0; h < 2; h++) {
        rp_scenario sc = job(AU_PARALLEL_ULYSSES, 5.0f);
        sc.kind = RP_DIT;
        sc.dit_heads = heads[h];
        rp_run_pair(&sc, sh);
        for (int r = 0; r < 2; r++) {
            rp_result *res = &sh->r[r];
            CHECK(res->rc == 0, "dit rank %d: %s", r, res->msg);
            if (res->rc)
                continue;
            printf("dit_forward_sp (%s heads) rank %d vs dit_forward: max rel %.2e; activations %zu bytes on "
                   "2 ranks, "
                   "%zu on 1\n",
                   heads[h] ? "4" : "2", r, res->dit_max_rel, res->act_sp, res->act_single);
            CHECK(res->dit_max_rel < 1e-5, "dit rank %d: max rel %.3g", r, res->dit_max_rel);
            CHECK(res->act_sp < res->act_single,
                  "dit rank %d: the 2-rank plan (%zu bytes) is not smaller than one "
                  "rank's (%zu)",
                  r, res->act_sp, res->act_single);
            CHECK(res->odd_grid_rc == AU_EINVAL, "dit rank %d: 3 tokens on 2 ranks: rc %d", r,
                  res->odd_grid_rc);
        }
    }
}

static void test_cancel_and_failures(rp_shared *sh) {
    static const au_parallel modes[2] = {AU_PARALLEL_CFG, AU_PARALLEL_ULYSSES};
    const double limit_s = rp_timeout_ms() / 1000.0 + 5.0;
    for (int m = 0; m < 2; m++) {
        const char *name = pipeline_parallel_name(modes[m]);
        rp_scenario sc = job(modes[m], 5.0f);
        sc.cancel_at = 2;
        rp_run_pair(&sc, sh);
        for (int r = 0; r < 2; r++) {
            CHECK(sh->r[r].rc == AU_ECANCELED && sh->r[r].last_step == 2 &&
                      strstr(sh->r[r].msg, "step 2 of 4"),
                  "%s cancel on rank 1, rank %d: rc %d, last step %d, %s", name, r, sh->r[r].rc,
                  sh->r[r].last_step, sh->r[r].msg);
            CHECK(sh->r[r].n_frames == 0, "%s cancel: rank %d has frames", name, r);
        }
        printf("%-8s cancel on rank 1 at step 2: rank 0 \"%s\", rank 1 \"%s\"\n", name, sh->r[0].msg,
               sh->r[1].msg);

        rp_scenario killed = job(modes[m], 5.0f);
        killed.kill_at = 1;
        int st1 = rp_run_pair(&killed, sh);
        CHECK(WIFSIGNALED(st1) && WTERMSIG(st1) == SIGKILL, "%s: rank 1 was not killed (status %d)", name,
              st1);
        CHECK(sh->r[0].rc == AU_ECOMM && sh->r[0].seconds < limit_s,
              "%s peer killed: rank 0 rc %d after %.1f s: %s", name, sh->r[0].rc, sh->r[0].seconds,
              sh->r[0].msg);
        printf("%-8s rank 1 killed after step 1: rank 0 rc %d after %.2f s: %s\n", name, sh->r[0].rc,
               sh->r[0].seconds, sh->r[0].msg);
    }
    rp_scenario hung = job(AU_PARALLEL_CFG, 5.0f);
    hung.hang_at = 1;
    rp_run_pair(&hung, sh);
    CHECK(sh->r[0].rc == AU_ECOMM && sh->r[0].seconds < limit_s, "peer silent: rank 0 rc %d after %.1f s: %s",
          sh->r[0].rc, sh->r[0].seconds, sh->r[0].msg);
    printf("cfg      rank 1 silent after step 1: rank 0 rc %d after %.2f s (comm timeout %.1f s): %s\n",
           sh->r[0].rc, sh->r[0].seconds, rp_timeout_ms() / 1000.0, sh->r[0].msg);
}

static void test_check_and_names(void) {
    au_pipeline *p = NULL, *p2 = NULL, *other = NULL;
    au_err err = {0};
    au_pipeline_opts opts = {.device = AU_DEVICE_CPU, .n_threads = THREADS};
    REQUIRE(pipeline_open(&p, rp_model_dir, &opts, &err) == 0, "pipeline_open: %s", err.msg);
    au_gen_params q;
    rp_scenario sc = job(AU_PARALLEL_CFG, 5.0f);
    rp_params(&sc, &q);
    REQUIRE(pipeline_resolve_params(p, &q, &err) == 0, "%s", err.msg);
    CHECK(pipeline_parallel_check(p, &q, AU_PARALLEL_CFG, 2, &err) == 0, "cfg on 2: %s", err.msg);
    CHECK(pipeline_parallel_check(p, &q, AU_PARALLEL_ULYSSES, 2, &err) == 0, "ulysses on 2: %s", err.msg);
    CHECK(pipeline_parallel_check(p, &q, AU_PARALLEL_NONE, 3, &err) == 0, "none on 3: %s", err.msg);
    int rc = pipeline_parallel_check(p, &q, AU_PARALLEL_CFG, 3, &err);
    CHECK(rc == AU_EUNSUPPORTED && strstr(err.msg, "2 ranks"), "cfg on 3: rc %d, %s", rc, err.msg);
    rc = pipeline_parallel_check(p, &q, AU_PARALLEL_ULYSSES, 3, &err);
    CHECK(rc == AU_EUNSUPPORTED && strstr(err.msg, "heads"), "ulysses on 3 (2 heads): rc %d, %s", rc,
          err.msg);
    rc = pipeline_parallel_check(p, &q, AU_PARALLEL_ULYSSES, 4, &err);
    CHECK(rc == AU_EUNSUPPORTED && strstr(err.msg, "heads"), "ulysses on 4 (2 heads): rc %d, %s", rc,
          err.msg);
    rc = pipeline_parallel_check(p, &q, AU_PARALLEL_ULYSSES, 0, &err);
    CHECK(rc == AU_EINVAL, "0 ranks: rc %d", rc);
    rc = pipeline_parallel_check(p, &q, (au_parallel)7, 2, &err);
    CHECK(rc == AU_EINVAL, "unknown mode: rc %d", rc);
    au_gen_params small = q; /* 16x16, 9 frames: 3 latent frames of one token */
    small.width = small.height = 16;
    rc = pipeline_parallel_check(p, &small, AU_PARALLEL_ULYSSES, 2, &err);
    CHECK(rc == AU_EUNSUPPORTED && strstr(err.msg, "3 tokens"), "ulysses on 3 tokens: rc %d, %s", rc,
          err.msg);
    au_gen_params plain = q;
    plain.guidance_scale = 1.0f;
    rc = pipeline_parallel_check(p, &plain, AU_PARALLEL_CFG, 2, &err);
    CHECK(rc == AU_EUNSUPPORTED && strstr(err.msg, "guidance_scale"), "cfg without guidance: rc %d, %s", rc,
          err.msg);

    CHECK(pipeline_parallel_auto(p, &q, 1) == AU_PARALLEL_NONE, "auto on 1 rank");
    CHECK(pipeline_parallel_auto(p, &q, 2) == AU_PARALLEL_CFG, "auto on 2 ranks with guidance");
    CHECK(pipeline_parallel_auto(p, &plain, 2) == AU_PARALLEL_ULYSSES, "auto on 2 ranks without guidance");
    CHECK(pipeline_parallel_auto(p, &small, 2) == AU_PARALLEL_CFG, "auto on 2 ranks, 3 tokens, guidance");
    au_gen_params small_plain = small;
    small_plain.guidance_scale = 1.0f;
    CHECK(pipeline_parallel_auto(p, &small_plain, 2) == AU_PARALLEL_NONE, "auto: nothing divides");
    CHECK(pipeline_parallel_auto(p, &q, 3) == AU_PARALLEL_NONE, "auto on 3 ranks (2 heads)");

    for (int m = AU_PARALLEL_NONE; m <= AU_PARALLEL_ULYSSES; m++) {
        au_parallel back = AU_PARALLEL_NONE;
        CHECK(pipeline_parallel_from_name(pipeline_parallel_name((au_parallel)m), &back) == 0 &&
                  back == (au_parallel)m,
              "name round trip of %d", m);
    }
    au_parallel back;
    CHECK(pipeline_parallel_from_name("auto", &back) == AU_EINVAL &&
              pipeline_parallel_from_name(NULL, &back) == AU_EINVAL,
          "unknown names refused");

    /* generate_ranked refuses what cannot run before any collective */
    au_video v = {0};
    rc = pipeline_generate_ranked(p, &plain, &(au_comm){.world = 2, .rank = 0, .be = pipeline_backend(p)},
                                  AU_PARALLEL_CFG, NULL, NULL, NULL, &v, &err);
    CHECK(rc == AU_EUNSUPPORTED && v.rgb == NULL, "ranked cfg without guidance: rc %d, %s", rc, err.msg);

    /* fingerprint: equal for the same model, different for another */
    char a[65] = {0}, b[65] = {0}, c[65] = {0};
    char other_dir[4200];
    snprintf(other_dir, sizeof other_dir, "%s/../auteur-tiny", rp_model_dir);
    REQUIRE(pipeline_open(&p2, rp_model_dir, &opts, &err) == 0, "pipeline_open: %s", err.msg);
    CHECK(pipeline_model_fingerprint(p, a, &err) == 0 && pipeline_model_fingerprint(p2, b, &err) == 0,
          "fingerprint: %s", err.msg);
    CHECK(strlen(a) == 64 && strspn(a, "0123456789abcdef") == 64 && strcmp(a, b) == 0,
          "fingerprints of one model: %s, %s", a, b);
    if (pipeline_open(&other, other_dir, &opts, &err) == 0) {
        CHECK(pipeline_model_fingerprint(other, c, &err) == 0 && strcmp(a, c) != 0,
              "another model, another fingerprint: %s vs %s", a, c);
        pipeline_close(other);
    }
    printf("fingerprint of tiny-random on cpu: %s\n", a);
    pipeline_close(p2);
    pipeline_close(p);
}

int main(void) {
    if (rp_find_model() < 0) {
        printf("skipped: no models/tiny-random\n");
        return 77;
    }
    rp_shared *sh = rp_shared_map();
    test_check_and_names(); /* opens and closes pipelines here, before any fork */
    test_dit(sh);
    test_modes(sh);
    test_cancel_and_failures(sh);
    munmap(sh, sizeof *sh);
    return check_exit_code();
}
