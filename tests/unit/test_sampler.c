// deps: au_sampler au_cpu au_io au_core
/* test_sampler.c - UniPC and Euler against the PyTorch reference, and Philox normals
 * against the numpy twin.
 *
 * Goldens: tests/golden/sampler/{unipc,euler}_<steps>_<shift>.safetensors from
 * tools/reference/make_sampler_goldens.py (whose reference reproduces the official
 * FlowUniPCMultistepScheduler exactly). For each: the timesteps and sigmas must be
 * bit-identical; the trajectory, driven by the same synthetic velocity
 *   d_j = 0.8 sin(0.37 j + 0.5),  v_j = (x_j - d_j) / sigma_i + 0.3 sin(2 x_j + t_i / 250)
 * (float64 from float32 inputs, rounded to float32), must stay within 1e-5 of the
 * reference relative to max |x| at every step; the steps must allocate nothing.
 * philox_normals.safetensors: philox_normal_f32 must match numpy (bit-exact, or 1 ulp
 * where libm's float64 sin/cos/log round differently).
 */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "philox.h"
#include "safetensors.h"
#include "sampler.h"
#include "check.h"

#define REL_TOL 1e-5

static const char *source_dir(void) {
    const char *d = getenv("AUTEUR_SOURCE_DIR");
    return d ? d : ".";
}

static void synthetic_velocity(const float *x, float *v, int64_t n, float t, float sigma) {
    for (int64_t j = 0; j < n; j++) {
        double d = 0.8 * sin(0.37 * (double)j + 0.5);
        double xj = x[j];
        v[j] = (float)((xj - d) / (double)sigma + 0.3 * sin(2.0 * xj + (double)t / 250.0));
    }
}

static const au_tensor *need(const st_set *st, const char *path, const char *name, au_dtype dt) {
    const au_tensor *t = st_get(st, name);
    CHECK(t && t->dtype == dt, "%s: tensor %s missing or not %s", path, name, au_dtype_name(dt));
    return t && t->dtype == dt ? t : NULL;
}

/* One golden case; returns the worst relative error seen. */
static double run_case(au_backend *be, const char *path) {
    au_err err = {0};
    st_set *st = NULL;
    if (st_open(&st, path, &err) < 0) {
        CHECK(0, "%s", err.msg);
        return INFINITY;
    }
    const char *kind_name = st_metadata(st, "kind"), *steps_s = st_metadata(st, "steps"),
               *shift_s = st_metadata(st, "shift");
    const au_tensor *ts = need(st, path, "timesteps", AU_I64), *sg = need(st, path, "sigmas", AU_F32),
                    *x0 = need(st, path, "x_init", AU_F32), *traj = need(st, path, "trajectory", AU_F32),
                    *xf = need(st, path, "x_final", AU_F32);
    au_sampler_kind kind;
    if (!kind_name || !steps_s || !shift_s || !ts || !sg || !x0 || !traj || !xf ||
        sampler_kind_from_name(kind_name, &kind) < 0) {
        CHECK(0, "%s: incomplete golden", path);
        st_close(st);
        return INFINITY;
    }
    int steps = atoi(steps_s);
    float shift = strtof(shift_s, NULL);
    int64_t n = au_numel(x0);

    au_arena *state = be_arena_create(be, 1 << 20), *work = be_arena_create(be, 1 << 20);
    au_sampler *s = NULL;
    au_tensor x, v;
    float *hx = malloc((size_t)n * sizeof *hx), *hv = malloc((size_t)n * sizeof *hv);
    double worst = 0;
    if (be_arena_tensor(work, AU_F32, x0->ndim, x0->shape, &x, &err) < 0 ||
        be_arena_tensor(work, AU_F32, x0->ndim, x0->shape, &v, &err) < 0 ||
        sampler_create(&s, be, state, kind, steps, shift, x0, &err) < 0) {
        CHECK(0, "%s: setup: %s", path, err.msg);
        worst = INFINITY;
        goto done;
    }

    /* Schedule: bit-exact. */
    CHECK(sampler_n_steps(s) == steps, "%s: n_steps %d", path, sampler_n_steps(s));
    const int64_t *want_t = ts->data;
    const float *want_s = sg->data;
    int sched_ok = 1;
    for (int i = 0; i < steps; i++)
        sched_ok &= sampler_timestep(s, i) == (float)want_t[i];
    for (int i = 0; i <= steps; i++)
        sched_ok &= memcmp(&(float){sampler_sigma(s, i)}, &want_s[i], sizeof(float)) == 0;
    CHECK(sched_ok, "%s: schedule differs from the reference", path);

    /* Trajectory. */
    uint64_t allocs_before = be_arena_chunk_allocs(state) + be_arena_chunk_allocs(work);
    CHECK(be_upload(be, &x, x0->data, &err) == 0, "upload: %s", err.msg);
    const float *want_traj = traj->data;
    for (int i = 0; i < steps; i++) {
        if (be_download(be, hx, &x, &err) < 0) {
            CHECK(0, "download: %s", err.msg);
            break;
        }
        synthetic_velocity(hx, hv, n, sampler_timestep(s, i), sampler_sigma(s, i));
        if (be_upload(be, &v, hv, &err) < 0 || sampler_step(s, i, &x, &v, &err) < 0 ||
            be_download(be, hx, &x, &err) < 0) {
            CHECK(0, "%s: step %d: %s", path, i, err.msg);
            worst = INFINITY;
            break;
        }
        const float *ref = want_traj + (size_t)i * (size_t)n;
        double max_err = 0, max_ref = 0;
        for (int64_t j = 0; j < n; j++) {
            max_err = fmax(max_err, fabs((double)hx[j] - ref[j]));
            max_ref = fmax(max_ref, fabs((double)ref[j]));
        }
        double rel = max_err / max_ref;
        worst = fmax(worst, rel);
        CHECK(rel < REL_TOL, "%s: step %d: max |x - ref| / max |ref| = %.3g", path, i, rel);
    }
    const float *fin = xf->data;
    double fin_err = 0;
    for (int64_t j = 0; j < n; j++)
        fin_err = fmax(fin_err, fabs((double)hx[j] - fin[j]));
    CHECK(be_arena_chunk_allocs(state) + be_arena_chunk_allocs(work) == allocs_before,
          "%s: steps allocated backend memory", path);
    printf("%-16s steps %2d shift %-4g t0 %4.0f t_last %4.0f worst rel err %.2e final max abs err %.2e\n",
           kind_name, steps, (double)shift, (double)sampler_timestep(s, 0), (double)sampler_timestep(s, steps - 1),
           worst, fin_err);
done:
    free(hx);
    free(hv);
    sampler_free(s);
    be_arena_destroy(state);
    be_arena_destroy(work);
    st_close(st);
    return worst;
}

static void test_goldens(au_backend *be) {
    char pattern[1024];
    snprintf(pattern, sizeof pattern, "%s/tests/golden/sampler/*_*_*.safetensors", source_dir());
    glob_t g;
    int n_unipc = 0, n_euler = 0;
    double worst = 0;
    if (glob(pattern, 0, NULL, &g) != 0) {
        CHECK(0, "no goldens at %s", pattern);
        return;
    }
    for (size_t k = 0; k < g.gl_pathc; k++) {
        const char *base = strrchr(g.gl_pathv[k], '/') + 1;
        n_unipc += strncmp(base, "unipc_", 6) == 0;
        n_euler += strncmp(base, "euler_", 6) == 0;
        worst = fmax(worst, run_case(be, g.gl_pathv[k]));
    }
    globfree(&g);
    printf("sampler goldens: %d unipc, %d euler; worst relative error %.2e (tolerance %.0e)\n", n_unipc, n_euler,
           worst, REL_TOL);
    CHECK(n_unipc >= 3 && n_euler >= 2, "too few goldens: %d unipc, %d euler", n_unipc, n_euler);
}

static void test_errors(au_backend *be) {
    au_sampler_kind kind;
    CHECK(sampler_kind_from_name("unipc", &kind) == 0 && kind == AU_SAMPLER_UNIPC, "unipc");
    CHECK(sampler_kind_from_name("euler", &kind) == 0 && kind == AU_SAMPLER_EULER, "euler");
    CHECK(sampler_kind_from_name("dpm++", &kind) == AU_EINVAL, "dpm++ accepted");
    CHECK(sampler_kind_from_name("UniPC", &kind) == AU_EINVAL, "names are lower case");
    CHECK(sampler_kind_from_name(NULL, &kind) == AU_EINVAL, "NULL accepted");

    au_err err = {0};
    au_arena *arena = be_arena_create(be, 1 << 16);
    int64_t shape[4] = {16, 1, 2, 2}, other[4] = {16, 1, 2, 4};
    au_tensor x, v, wrong;
    au_tensor bf16 = au_tensor_make(AU_BF16, NULL, 4, shape);
    be_arena_tensor(arena, AU_F32, 4, shape, &x, &err);
    be_arena_tensor(arena, AU_F32, 4, shape, &v, &err);
    be_arena_tensor(arena, AU_F32, 4, other, &wrong, &err);
    au_sampler *s = NULL;
    CHECK(sampler_create(&s, be, arena, AU_SAMPLER_UNIPC, 0, 5.0f, &x, &err) == AU_EINVAL && strstr(err.msg, "steps"),
          "0 steps: %s", err.msg);
    CHECK(sampler_create(&s, be, arena, AU_SAMPLER_UNIPC, 10, 0.0f, &x, &err) == AU_EINVAL && strstr(err.msg, "shift"),
          "shift 0: %s", err.msg);
    CHECK(sampler_create(&s, be, arena, AU_SAMPLER_EULER, 10, NAN, &x, &err) == AU_EINVAL, "shift NaN accepted");
    CHECK(sampler_create(&s, be, arena, AU_SAMPLER_UNIPC, 10, 5.0f, &bf16, &err) == AU_EINVAL && strstr(err.msg, "f32"),
          "bf16 latent: %s", err.msg);
    CHECK(s == NULL, "failed create left a sampler");

    CHECK(sampler_create(&s, be, arena, AU_SAMPLER_UNIPC, 3, 5.0f, &x, &err) == 0, "create: %s", err.msg);
    if (!s)
        goto done;
    CHECK(isnan(sampler_timestep(s, 3)) && isnan(sampler_timestep(s, -1)), "timestep out of range not NaN");
    CHECK(isnan(sampler_sigma(s, 4)) && sampler_sigma(s, 3) == 0.0f, "sigma range");
    be_fill(be, &x, 0.5f, &err);
    be_fill(be, &v, 0.25f, &err);
    CHECK(sampler_step(s, 1, &x, &v, &err) == AU_ECONFLICT && strstr(err.msg, "expected step 0"),
          "out of order: %s", err.msg);
    CHECK(sampler_step(s, 0, &x, &wrong, &err) == AU_EINVAL && strstr(err.msg, "[16,1,2,4]"), "wrong shape: %s",
          err.msg);
    for (int i = 0; i < 3; i++)
        CHECK(sampler_step(s, i, &x, &v, &err) == 0, "step %d: %s", i, err.msg);
    CHECK(sampler_step(s, 3, &x, &v, &err) == AU_ECONFLICT, "step past the end accepted");
    /* A constant velocity is a straight path: every sampler lands on x - sigma_0 v. */
    float out[64];
    be_download(be, out, &x, &err);
    float want = 0.5f - sampler_sigma(s, 0) * 0.25f;
    CHECK(fabsf(out[0] - want) < 1e-6f && fabsf(out[63] - want) < 1e-6f, "straight path: %g, want %g", out[0],
          want);
    sampler_free(s);
done:
    be_arena_destroy(arena);
}

/* Float32 bit patterns as ordered integers, for ulp distances. */
static int64_t ordered_bits(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
}

static void test_philox_golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/sampler/philox_normals.safetensors", source_dir());
    au_err err = {0};
    st_set *st = NULL;
    if (st_open(&st, path, &err) < 0) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int64_t total = 0, exact = 0, max_ulp = 0;
    for (int k = 0;; k++) {
        char name[32];
        snprintf(name, sizeof name, "normals%d", k);
        const au_tensor *t = st_get(st, name);
        const char *meta = st_metadata(st, name);
        if (!t || !meta)
            break;
        unsigned long long seed, offset;
        long long n;
        CHECK(sscanf(meta, "%llu %llu %lld", &seed, &offset, &n) == 3 && n == au_numel(t), "%s: metadata %s", name,
              meta);
        float *got = malloc((size_t)n * sizeof *got);
        philox_normal_f32(seed, offset, got, (size_t)n);
        const float *want = t->data;
        for (int64_t i = 0; i < n; i++) {
            int64_t d = llabs(ordered_bits(got[i]) - ordered_bits(want[i]));
            exact += d == 0;
            max_ulp = d > max_ulp ? d : max_ulp;
        }
        total += n;
        free(got);
    }
    printf("philox vs numpy: %lld normals, %lld bit-exact, max %lld ulp\n", (long long)total, (long long)exact,
           (long long)max_ulp);
    CHECK(total >= 5000, "only %lld golden normals", (long long)total);
    CHECK(max_ulp <= 1 && exact >= total - total / 1000, "philox differs from numpy: %lld of %lld exact, max %lld ulp",
          (long long)exact, (long long)total, (long long)max_ulp);
    st_close(st);
}

int main(void) {
    au_backend *be = NULL;
    au_err err = {0};
    if (be_cpu_create(&be, 2, &err) < 0) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    test_goldens(be);
    test_errors(be);
    test_philox_golden();
    be_destroy(be);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_sampler: all passed\n");
    return 0;
}
