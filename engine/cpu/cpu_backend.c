/* cpu_backend.c - the float32 CPU reference backend: creation, memory, weight
 * loading, scratch, argument checks and the ops table (backend.h).
 *
 * "Device" memory is host memory. Weights:
 *  - AU_W_MATRIX / AU_W_EMBED in f32, f16, bf16 are used by reference (dst->data
 *    = src->data): the model keeps its safetensors mapping open, nothing is
 *    copied (UMT5-XXL is 11 GB of bf16). Ops convert panels to float32 on the fly.
 *  - f8 e4m3 matrices are referenced too; their per-row scale (src_scale, else
 *    src->scale: float32 [shape[0]]) is copied to float32 in the arena.
 *  - AU_W_VECTOR / AU_W_F32 become float32 copies in the arena.
 * The backend runs its ops on a pthread pool of n_threads (the caller included);
 * BLAS is set to one thread so the pool alone owns the cores.
 */
#include "cpu_gemm.h"
#include "cpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CPU_ALIGN 64
#define ARENA_ROUND(n) (((n) + 255) & ~(size_t)255)

static void *aligned_bytes(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, CPU_ALIGN, bytes ? bytes : CPU_ALIGN) != 0)
        return NULL;
    return p;
}

/* ---- scratch and parallel loops ---- */

static size_t grown(size_t have, size_t need) {
    size_t g = have + have / 2;
    return g > need ? g : need;
}

int cpu_scratch_reserve(cpu_state *cs, size_t bytes, const char *op, au_err *err) {
    for (int t = 0; t < cs->n_threads; t++) {
        if (cs->scratch_bytes[t] >= bytes)
            continue;
        size_t n = grown(cs->scratch_bytes[t], bytes);
        free(cs->scratch[t]);
        cs->scratch[t] = aligned_bytes(n);
        cs->scratch_bytes[t] = cs->scratch[t] ? n : 0;
        if (!cs->scratch[t])
            return au_errf(err, AU_ENOMEM, "%s: cannot allocate %zu bytes of scratch for thread %d", op, n,
                           t);
        cs->scratch_allocs++;
    }
    return 0;
}

int cpu_shared_reserve(cpu_state *cs, size_t bytes, const char *op, au_err *err) {
    if (cs->shared_bytes >= bytes)
        return 0;
    size_t n = grown(cs->shared_bytes, bytes);
    free(cs->shared);
    cs->shared = aligned_bytes(n);
    cs->shared_bytes = cs->shared ? n : 0;
    if (!cs->shared)
        return au_errf(err, AU_ENOMEM, "%s: cannot allocate %zu bytes of shared scratch", op, n);
    cs->scratch_allocs++;
    return 0;
}

typedef struct range_job {
    cpu_range_fn fn;
    void *ctx;
    int64_t n, piece;
} range_job;

static void range_task(void *ctx, int64_t task, int thread) {
    range_job *j = ctx;
    int64_t b = task * j->piece;
    int64_t e = b + j->piece < j->n ? b + j->piece : j->n;
    j->fn(j->ctx, b, e, thread);
}

void cpu_parallel_for(cpu_state *cs, int64_t n, int64_t grain, cpu_range_fn fn, void *ctx) {
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t pieces = (int64_t)cs->n_threads * 4;
    int64_t piece = (n + pieces - 1) / pieces;
    if (piece < grain)
        piece = grain;
    if (piece >= n) {
        fn(ctx, 0, n, 0);
        return;
    }
    range_job j = {fn, ctx, n, piece};
    tp_run(cs->pool, (n + piece - 1) / piece, range_task, &j);
}

/* ---- argument checks ---- */

int cpu_check_f32(const char *op, const char *name, const au_tensor *t, au_err *err) {
    int rc = be_check_tensor(op, name, t, err);
    if (rc < 0)
        return rc;
    if (t->dtype != AU_F32) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: %s %s must be f32", op, name, au_shape_str(t, s, sizeof s));
    }
    return 0;
}

int cpu_check_vec(const char *op, const char *name, const au_tensor *t, int64_t n, au_err *err) {
    int rc = cpu_check_f32(op, name, t, err);
    if (rc < 0)
        return rc;
    if (au_numel(t) != n) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: %s %s must have %lld elements", op, name,
                       au_shape_str(t, s, sizeof s), (long long)n);
    }
    return 0;
}

int cpu_check_numel(const char *op, const char *na, const au_tensor *a, const char *nb, const au_tensor *b,
                    au_err *err) {
    if (au_numel(a) != au_numel(b)) {
        char sa[96], sb[96];
        return au_errf(err, AU_EINVAL, "%s: %s %s and %s %s differ in size", op, na,
                       au_shape_str(a, sa, sizeof sa), nb, au_shape_str(b, sb, sizeof sb));
    }
    return 0;
}

int cpu_check_readable(const char *op, const char *name, const au_tensor *t, au_err *err) {
    int rc = be_check_tensor(op, name, t, err);
    if (rc < 0)
        return rc;
    char s[96];
    switch (t->dtype) {
    case AU_F32:
    case AU_F16:
    case AU_BF16: return 0;
    case AU_F8_E4M3:
        if (!t->scale)
            return au_errf(err, AU_EINVAL, "%s: %s %s has no per-row scale", op, name,
                           au_shape_str(t, s, sizeof s));
        return 0;
    default:
        return au_errf(err, AU_EINVAL, "%s: %s %s: dtype not supported (f32, f16, bf16, f8_e4m3)", op, name,
                       au_shape_str(t, s, sizeof s));
    }
}

/* ---- memory ---- */

static void *cpu_mem_alloc(au_backend *be, size_t bytes) {
    return aligned_bytes(bytes);
}

static void cpu_mem_free(au_backend *be, void *ptr) {
    free(ptr);
}

static int cpu_upload(au_backend *be, au_tensor *dst, const void *host_src, au_err *err) {
    int rc = be_check_tensor("upload", "dst", dst, err);
    if (rc < 0)
        return rc;
    if (!host_src && au_nbytes(dst))
        return au_errf(err, AU_EINVAL, "upload: host source is NULL");
    if (au_nbytes(dst))
        memmove(dst->data, host_src, au_nbytes(dst));
    return 0;
}

static int cpu_download(au_backend *be, void *host_dst, const au_tensor *src, au_err *err) {
    int rc = be_check_tensor("download", "src", src, err);
    if (rc < 0)
        return rc;
    if (!host_dst && au_nbytes(src))
        return au_errf(err, AU_EINVAL, "download: host destination is NULL");
    if (au_nbytes(src))
        memmove(host_dst, src->data, au_nbytes(src));
    return 0;
}

static int cpu_sync(au_backend *be, au_err *err) {
    return 0;
}

/* ---- weights ---- */

static size_t cpu_weight_bytes(au_backend *be, const au_tensor *src, au_weight_kind kind) {
    switch (kind) {
    case AU_W_MATRIX:
    case AU_W_MATRIX16:
    case AU_W_EMBED:
        if (src->dtype == AU_F8_E4M3)
            return ARENA_ROUND((size_t)(src->ndim ? src->shape[0] : 1) * sizeof(float));
        return 0;
    case AU_W_VECTOR:
    case AU_W_F32: return ARENA_ROUND((size_t)au_numel(src) * sizeof(float));
    default: return 0;
    }
}

static int cpu_weight_load(au_backend *be, au_arena *arena, const au_tensor *src, const float *src_scale,
                           au_weight_kind kind, au_tensor *dst, au_err *err) {
    const char *op = "weight_load";
    au_tensor in = *src;
    if (in.dtype == AU_F8_E4M3 && src_scale)
        in.scale = (void *)src_scale;
    int rc = cpu_check_readable(op, "src", &in, err);
    if (rc < 0)
        return rc;
    if (!arena || !dst)
        return au_errf(err, AU_EINVAL, "%s: arena or dst is NULL", op);
    char s[96];
    switch (kind) {
    case AU_W_MATRIX:
    case AU_W_MATRIX16:
    case AU_W_EMBED:
        *dst = in;
        if (in.dtype != AU_F8_E4M3) {
            dst->scale = NULL;
            return 0;
        }
        {
            size_t n_rows = (size_t)in.shape[0];
            float *scale = be_arena_alloc(arena, n_rows * sizeof(float), err);
            if (!scale)
                return au_err_prefix(err, "%s: scale of %s", op, au_shape_str(src, s, sizeof s));
            memcpy(scale, in.scale, n_rows * sizeof(float));
            dst->scale = scale;
        }
        return 0;
    case AU_W_VECTOR:
    case AU_W_F32: {
        au_tensor out = in;
        out.dtype = AU_F32;
        out.scale = NULL;
        out.data = be_arena_alloc(arena, (size_t)au_numel(&in) * sizeof(float), err);
        if (!out.data)
            return au_err_prefix(err, "%s: %s", op, au_shape_str(src, s, sizeof s));
        cpu_read_f32(&in, 0, au_numel(&in), out.data);
        *dst = out;
        return 0;
    }
    default: return au_errf(err, AU_EINVAL, "%s: unknown weight kind %d", op, (int)kind);
    }
}

/* ---- creation ---- */

static void cpu_destroy(au_backend *be) {
    if (!be)
        return;
    cpu_state *cs = be->impl;
    if (cs) {
        if (cs->pool)
            tp_destroy(cs->pool);
        if (cs->scratch)
            for (int t = 0; t < cs->n_threads; t++)
                free(cs->scratch[t]);
        free(cs->scratch);
        free(cs->scratch_bytes);
        free(cs->shared);
        free(cs);
    }
    free(be);
}

static const au_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .sync = cpu_sync,
    .weight_bytes = cpu_weight_bytes,
    .weight_load = cpu_weight_load,
    .linear = cpu_linear,
    .embed = cpu_embed,
    .layernorm = cpu_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .rmsnorm_channels = cpu_rmsnorm_channels,
    .rope = cpu_rope,
    .rmsnorm_rope = cpu_rmsnorm_rope,
    .add_gated_layernorm = cpu_add_gated_layernorm,
    .attention = cpu_attention,
    .add = cpu_add,
    .mul = cpu_mul,
    .add_gated = cpu_add_gated,
    .activate = cpu_activate,
    .lincomb = cpu_lincomb,
    .clamp = cpu_clamp,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .patchify = cpu_patchify,
    .unpatchify = cpu_unpatchify,
    .transpose = cpu_transpose,
    .swap01 = cpu_swap01,
    .concat = cpu_concat,
    .slice = cpu_slice,
    .conv3d = cpu_conv3d,
    .upsample2x = cpu_upsample2x,
    .time_interleave = cpu_time_interleave,
    .to_rgb8 = cpu_to_rgb8,
};

int be_cpu_create(au_backend **out, int n_threads, au_err *err) {
    if (!out)
        return au_errf(err, AU_EINVAL, "cpu backend: out is NULL");
    *out = NULL;
    if (n_threads < 0)
        return au_errf(err, AU_EINVAL, "cpu backend: n_threads %d < 0", n_threads);
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    au_backend *be = calloc(1, sizeof *be);
    cpu_state *cs = calloc(1, sizeof *cs);
    if (!be || !cs) {
        free(be);
        free(cs);
        return au_errf(err, AU_ENOMEM, "cpu backend: out of memory");
    }
    be->ops = &cpu_ops;
    be->act_dtype = AU_F32;
    be->gemm_in_dtype = AU_F32;
    be->impl = cs;
    cs->n_threads = n_threads;
    cs->scratch = calloc((size_t)n_threads, sizeof *cs->scratch);
    cs->scratch_bytes = calloc((size_t)n_threads, sizeof *cs->scratch_bytes);
    cs->pool = tp_create(n_threads);
    if (!cs->scratch || !cs->scratch_bytes || !cs->pool) {
        cpu_destroy(be);
        return au_errf(err, AU_ENOMEM, "cpu backend: cannot start a pool of %d threads", n_threads);
    }
    cpu_gemm_setup();
    *out = be;
    return 0;
}
