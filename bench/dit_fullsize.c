// deps: au_dit au_cpu au_io au_core
/* dit_fullsize.c - one Wan2.1 DiT forward on the CPU backend, checked against the official model.
 *
 * Reads the model (official key names, any layer count) and an io file written by
 * bench/dit_fullsize_ref.py: x [in_dim, F, H, W], t [1], context [L, text_dim] (all f32) and
 * the official PyTorch output `out` (float32) plus, when present, `out_f64` (the same model in
 * float64). Runs dit_config_infer, dit_load, dit_prepare_text and one dit_forward, writes the
 * result to --out as tensor "out", and prints the seconds of each stage and the relative errors
 *   max rel = max|a - b| / max|b|,   l2 rel = ||a - b|| / ||b||   (in double)
 * of the C output against `out` and `out_f64`, and of PyTorch's float32 against float64 for
 * scale. FLOP per forward, N tokens, T = text_len, D = dim, L layers, pv = patch volume:
 *   2 N (C_in pv D + L (6 D^2 + 2 D ffn) + D pv C_out) + L (4 N^2 D + 4 N T D).
 * Exit status 1 when the max rel error against `out` exceeds --max-rel-err (default 1e-3, far
 * above float32 rounding, so a wrong formula fails and rounding never does).
 * Usage: dit_fullsize --weights W.safetensors --io IO.safetensors [--threads N] [--out PATH]
 *                     [--max-rel-err X]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_dit.h"

typedef struct fullsize_args {
    const char *weights, *io, *out;
    int threads;
    double max_rel_err;
} fullsize_args;

typedef struct rel_err {
    double max_rel, l2_rel;
    long long non_finite; /* values of a that are NaN or infinite */
} rel_err;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static rel_err compare(const float *a, const float *b, int64_t n) {
    double max_diff = 0, max_ref = 0, sum_diff2 = 0, sum_ref2 = 0;
    rel_err r = {0};
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) {
            r.non_finite++;
            continue;
        }
        double d = fabs((double)a[i] - b[i]), ref = fabs((double)b[i]);
        max_diff = d > max_diff ? d : max_diff;
        max_ref = ref > max_ref ? ref : max_ref;
        sum_diff2 += d * d;
        sum_ref2 += ref * ref;
    }
    r.max_rel = max_diff / (max_ref > 0 ? max_ref : 1e-30);
    r.l2_rel = sqrt(sum_diff2) / (sum_ref2 > 0 ? sqrt(sum_ref2) : 1e-30);
    return r;
}

/* The io tensor `name`, float32 with ndim dims (NULL and err filled otherwise). */
static const au_tensor *io_tensor(const st_set *io, const char *path, const char *name, int ndim,
                                  au_err *err) {
    const au_tensor *t = st_get(io, name);
    if (!t) {
        au_errf(err, AU_ENOTFOUND, "%s: no tensor %s", path, name);
        return NULL;
    }
    if (t->dtype != AU_F32 || t->ndim != ndim) {
        char shape[96];
        au_errf(err, AU_EFORMAT, "%s: tensor %s: expected %d-D f32, found %s %s", path, name, ndim,
                au_dtype_name(t->dtype), au_shape_str(t, shape, sizeof shape));
        return NULL;
    }
    return t;
}

static int parse_args(int argc, char **argv, fullsize_args *a) {
    *a = (fullsize_args){.out = "out.safetensors", .threads = 0, .max_rel_err = 1e-3};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        if (!strcmp(argv[i], "--weights"))
            a->weights = v;
        else if (!strcmp(argv[i], "--io"))
            a->io = v;
        else if (!strcmp(argv[i], "--out"))
            a->out = v;
        else if (!strcmp(argv[i], "--threads"))
            a->threads = atoi(v);
        else if (!strcmp(argv[i], "--max-rel-err"))
            a->max_rel_err = atof(v);
        else
            return -1;
        i++;
    }
    return a->weights && a->io && a->threads >= 0 && a->max_rel_err > 0 ? 0 : -1;
}

/* Everything the run holds, freed in one place. */
typedef struct fullsize_run {
    st_set *st, *io;
    au_backend *be;
    wan_dit *dit;
    dit_text *text;
    au_arena *act, *job;
    float *host_out;
} fullsize_run;

static void run_free(fullsize_run *r) {
    dit_text_free(r->text);
    be_arena_destroy(r->act);
    be_arena_destroy(r->job);
    dit_free(r->dit);
    if (r->be)
        be_destroy(r->be);
    st_close(r->io);
    st_close(r->st);
    free(r->host_out);
}

static void print_err(const char *what, rel_err e) {
    printf("| %-34s | %10.3e | %10.3e | %10lld |\n", what, e.max_rel, e.l2_rel, e.non_finite);
}

static int run(const fullsize_args *a, fullsize_run *r, au_err *err) {
    int rc;
    double t0 = now_seconds();
    dit_config c;
    if ((rc = st_open(&r->st, a->weights, err)) < 0 || (rc = dit_config_infer(r->st, &c, err)) < 0 ||
        (rc = be_cpu_create(&r->be, a->threads, err)) < 0 ||
        (rc = dit_load(&r->dit, r->be, r->st, &c, err)) < 0)
        return rc;
    double load_s = now_seconds() - t0;

    if ((rc = st_open(&r->io, a->io, err)) < 0)
        return rc;
    const au_tensor *x = io_tensor(r->io, a->io, "x", 4, err),
                    *tt = x ? io_tensor(r->io, a->io, "t", 1, err) : NULL;
    const au_tensor *ctx = tt ? io_tensor(r->io, a->io, "context", 2, err) : NULL;
    const au_tensor *ref = ctx ? io_tensor(r->io, a->io, "out", 4, err) : NULL;
    if (!ref)
        return err->code;
    const au_tensor *ref64 = st_get(r->io, "out_f64");
    const int64_t F = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t out_shape[4] = {c.out_dim, F, H, W};
    au_tensor want = au_tensor_make(AU_F32, NULL, 4, out_shape);
    if (x->shape[0] != c.in_dim || ctx->shape[1] != c.text_dim || ctx->shape[0] > c.text_len ||
        tt->shape[0] != 1 || !au_same_shape(ref, &want) || (ref64 && !au_same_shape(ref64, &want)))
        return au_errf(err, AU_EFORMAT, "%s: shapes of x, t, context, out, out_f64 do not fit the model",
                       a->io);
    float t;
    memcpy(&t, tt->data, sizeof t);
    const int64_t n_tokens = F / c.patch[0] * (H / c.patch[1]) * (W / c.patch[2]);
    printf(
        "Wan2.1 DiT, %d layers, dim %d, ffn %d, %d heads, text %d x %d; latent [%d, %lld, %lld, %lld] = %lld "
        "tokens; prompt %lld tokens; t = %g; CPU backend, threads %d (0 = all cores)\n",
        c.num_layers, c.dim, c.ffn_dim, c.num_heads, c.text_len, c.text_dim, c.in_dim, (long long)F,
        (long long)H, (long long)W, (long long)n_tokens, (long long)ctx->shape[0], t, a->threads);

    r->act = be_arena_create(r->be, 1 << 20);
    r->job = be_arena_create(r->be, 1 << 20);
    if (!r->act || !r->job)
        return au_errf(err, AU_ENOMEM, "arenas");
    au_tensor xd, ctxd, out;
    if ((rc = be_arena_tensor(r->job, AU_F32, 4, x->shape, &xd, err)) < 0 ||
        (rc = be_arena_tensor(r->job, AU_F32, 2, ctx->shape, &ctxd, err)) < 0 ||
        (rc = be_arena_tensor(r->job, AU_F32, 4, out_shape, &out, err)) < 0 ||
        (rc = be_upload(r->be, &xd, x->data, err)) < 0 || (rc = be_upload(r->be, &ctxd, ctx->data, err)) < 0)
        return rc;

    t0 = now_seconds();
    if ((rc = dit_prepare_text(r->dit, r->job, &ctxd, &r->text, err)) < 0 || (rc = be_sync(r->be, err)) < 0)
        return rc;
    double text_s = now_seconds() - t0;
    t0 = now_seconds();
    if ((rc = dit_forward(r->dit, r->act, &xd, t, r->text, &out, err)) < 0 || (rc = be_sync(r->be, err)) < 0)
        return rc;
    double forward_s = now_seconds() - t0;

    const int64_t n_out = au_numel(&out);
    r->host_out = malloc((size_t)n_out * sizeof(float));
    if (!r->host_out)
        return au_errf(err, AU_ENOMEM, "output copy");
    if ((rc = be_download(r->be, r->host_out, &out, err)) < 0)
        return rc;
    st_entry entry = {"out", au_tensor_make(AU_F32, r->host_out, 4, out_shape)};
    if ((rc = st_write(a->out, &entry, 1, NULL, err)) < 0)
        return rc;

    const double N = (double)n_tokens, D = c.dim, L = c.num_layers, T = c.text_len;
    const double pv = (double)c.patch[0] * c.patch[1] * c.patch[2];
    const double flop =
        2 * N * (c.in_dim * pv * D + L * (6 * D * D + 2 * D * c.ffn_dim) + D * pv * c.out_dim) +
        L * (4 * N * N * D + 4 * N * T * D);
    printf("\n| stage            | seconds  |\n| ---------------- | -------- |\n");
    printf("| load (mmap)      | %8.3f |\n| text (per job)   | %8.3f |\n", load_s, text_s);
    printf("| forward          | %8.3f |  %.1f TFLOP, %.0f GFLOP/s, %.3f s per layer (forward / layers)\n",
           forward_s, flop * 1e-12, flop / forward_s * 1e-9, forward_s / L);

    const float *want32 = ref->data, *want64 = ref64 ? ref64->data : NULL;
    rel_err e32 = compare(r->host_out, want32, n_out), e64 = {0}, t64 = {0};
    if (want64) {
        e64 = compare(r->host_out, want64, n_out);
        t64 = compare(want32, want64, n_out);
    }
    printf("\n| C engine against                   | max rel    | l2 rel     | non-finite |\n");
    printf("| ---------------------------------- | ---------- | ---------- | ---------- |\n");
    print_err("official PyTorch float32", e32);
    if (want64) {
        print_err("official PyTorch float64", e64);
        print_err("(PyTorch float32 against float64)", t64);
    }
    printf("\nKV c_layers %d\nKV c_tokens %lld\nKV c_load_s %.3f\nKV c_text_s %.3f\nKV c_forward_s %.3f\n"
           "KV c_s_per_layer %.3f\nKV c_gflops %.0f\nKV err_f32_max %.3e\nKV err_f32_l2 %.3e\n",
           c.num_layers, (long long)n_tokens, load_s, text_s, forward_s, forward_s / L,
           flop / forward_s * 1e-9, e32.max_rel, e32.l2_rel);
    if (want64)
        printf(
            "KV err_f64_max %.3e\nKV err_f64_l2 %.3e\nKV torch_err_f64_max %.3e\nKV torch_err_f64_l2 %.3e\n",
            e64.max_rel, e64.l2_rel, t64.max_rel, t64.l2_rel);
    if (e32.non_finite || !(e32.max_rel <= a->max_rel_err))
        return au_errf(err, AU_EINTERNAL,
                       "max rel error %.3e against the official float32 output (%lld non-finite) "
                       "exceeds %.1e",
                       e32.max_rel, e32.non_finite, a->max_rel_err);
    return 0;
}

int main(int argc, char **argv) {
    fullsize_args a;
    if (parse_args(argc, argv, &a) < 0) {
        fprintf(stderr,
                "usage: %s --weights W.safetensors --io IO.safetensors [--threads N, 0 = all] "
                "[--out out.safetensors] [--max-rel-err 1e-3]\n",
                argv[0]);
        return 2;
    }
    fullsize_run r = {0};
    au_err err = {0};
    int rc = run(&a, &r, &err);
    run_free(&r);
    if (rc < 0) {
        fprintf(stderr, "dit_fullsize: %s\n", err.msg);
        return 1;
    }
    printf("PASS: C output within %.1e of the official float32 output\n", a.max_rel_err);
    return 0;
}
