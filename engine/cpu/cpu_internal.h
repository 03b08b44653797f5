/* cpu_internal.h - private state and helpers shared by the CPU backend's files.
 *
 * The CPU backend computes in float32 on host memory. Its state is a thread
 * pool and scratch memory: one growing buffer per thread (indexed by the pool's
 * thread number) plus one shared buffer (converted conv weights). Scratch is
 * reserved by the calling thread before tasks are dispatched, grows
 * geometrically, and is reused, so the steady state makes no allocation;
 * scratch_allocs counts the allocations so a test can check that.
 *
 * Files: cpu_backend.c (creation, memory, weights, scratch, checks, the ops
 * table), threadpool.c (the pool), cpu_convert.c (dtype reading, activations),
 * cpu_vmath.h (vector exp/sigmoid, per-ISA builds), cpu_gemm.c (GEMM),
 * cpu_linear.c, cpu_attention.c, cpu_conv.c, cpu_norm.c, cpu_eltwise.c,
 * cpu_layout.c.
 */
#ifndef AU_CPU_INTERNAL_H
#define AU_CPU_INTERNAL_H

#include "backend.h"
#include "threadpool.h"

typedef struct cpu_state {
    tp_pool *pool;
    int n_threads;
    float **scratch;       /* [n_threads] per-thread buffers */
    size_t *scratch_bytes; /* their sizes */
    float *shared;         /* one buffer shared by all threads */
    size_t shared_bytes;
    uint64_t scratch_allocs; /* allocations of scratch or shared memory so far */
} cpu_state;

static inline cpu_state *cpu_of(au_backend *be) {
    return (cpu_state *)be->impl;
}

/* Make every per-thread buffer at least bytes long (contents not kept). */
int cpu_scratch_reserve(cpu_state *cs, size_t bytes, const char *op, au_err *err);
/* Make the shared buffer at least bytes long (contents not kept). */
int cpu_shared_reserve(cpu_state *cs, size_t bytes, const char *op, au_err *err);

/* Split [0, n) into about 4 pieces per thread of at least `grain` items and run
 * fn(ctx, begin, end, thread) on each in the pool. */
typedef void (*cpu_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);
void cpu_parallel_for(cpu_state *cs, int64_t n, int64_t grain, cpu_range_fn fn, void *ctx);

/* Validation: each returns 0 or AU_EINVAL with "op: what" in err. */
int cpu_check_f32(const char *op, const char *name, const au_tensor *t, au_err *err);
/* t is float32 with numel n (a [n] vector, or any shape of that numel). */
int cpu_check_vec(const char *op, const char *name, const au_tensor *t, int64_t n, au_err *err);
int cpu_check_numel(const char *op, const char *na, const au_tensor *a, const char *nb, const au_tensor *b,
                    au_err *err);
/* A float dtype the backend can read as float32: f32, f16, bf16, f8 (with scale). */
int cpu_check_readable(const char *op, const char *name, const au_tensor *t, au_err *err);

/* Convert elements [start, start + n) of t (f32, f16, bf16, f8 + scale per dim-0
 * row) into float32. */
void cpu_read_f32(const au_tensor *t, int64_t start, int64_t n, float *dst);
/* Rows [row0, row0 + n_rows) of a weight [rows, ...] as float32 [n_rows, row_len]. */
void cpu_weight_rows_f32(const au_tensor *w, int64_t row0, int64_t n_rows, float *dst);
/* Store float32 into elements [start, start + n) of t (f32, f16, bf16). */
void cpu_write_f32(au_tensor *t, int64_t start, int64_t n, const float *src);

/* Activation functions applied in place to n floats. */
void cpu_act_apply(float *x, int64_t n, au_act act);

/* Ops (one per au_backend_ops entry), defined across the cpu_*.c files. */
int cpu_linear(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
               au_act act, au_err *err);
int cpu_embed(au_backend *be, au_tensor *y, const au_tensor *table, const int32_t *ids, int n, au_err *err);
int cpu_layernorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
                  const au_tensor *shift, const au_tensor *scale, float eps, au_err *err);
int cpu_rmsnorm(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps, au_err *err);
int cpu_rmsnorm_channels(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *gamma,
                         const au_tensor *bias, au_act act, au_err *err);
int cpu_rope(au_backend *be, au_tensor *x, const au_tensor *cossin, int n_heads, au_err *err);
int cpu_rmsnorm_rope(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, float eps,
                     const au_tensor *cossin, int n_heads, au_err *err);
int cpu_attention(au_backend *be, au_tensor *out, const au_tensor *q, const au_tensor *k, const au_tensor *v,
                  int n_heads, float scale, const au_tensor *bias, int64_t last_key_copies, au_err *err);
int cpu_add(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
int cpu_mul(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, au_err *err);
int cpu_add_gated_layernorm(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_tensor *h,
                            const au_tensor *w, const au_tensor *b, const au_tensor *shift, const au_tensor *scale,
                            float eps, au_err *err);
int cpu_add_gated(au_backend *be, au_tensor *x, const au_tensor *y, const au_tensor *gate, au_err *err);
int cpu_activate(au_backend *be, au_tensor *y, const au_tensor *x, au_act act, au_err *err);
int cpu_lincomb(au_backend *be, au_tensor *y, int n, const au_tensor *const *xs, const au_tensor *coef,
                au_err *err);
int cpu_clamp(au_backend *be, au_tensor *y, const au_tensor *x, float lo, float hi, au_err *err);
int cpu_copy(au_backend *be, au_tensor *dst, const au_tensor *src, au_err *err);
int cpu_fill(au_backend *be, au_tensor *y, float value, au_err *err);
int cpu_patchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
int cpu_unpatchify(au_backend *be, au_tensor *y, const au_tensor *x, int pt, int ph, int pw, au_err *err);
int cpu_transpose(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cpu_swap01(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cpu_concat(au_backend *be, au_tensor *y, const au_tensor *a, const au_tensor *b, int dim, au_err *err);
int cpu_slice(au_backend *be, au_tensor *y, const au_tensor *x, int dim, int64_t start, au_err *err);
int cpu_conv3d(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
               const int stride[3], const int pad[6], au_err *err);
int cpu_upsample2x(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cpu_time_interleave(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);
int cpu_to_rgb8(au_backend *be, au_tensor *y, const au_tensor *x, au_err *err);

#endif
