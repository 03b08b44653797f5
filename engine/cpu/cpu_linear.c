/* cpu_linear.c - y[n,out] = act(x[n,in] . w[out,in]^T + b[out]) on the CPU.
 *
 * The work is cut into tasks of `cols` output columns (and, when there are few
 * column blocks but many rows, row blocks too). A task converts its weight
 * panel w[c0:c0+cols, :] to float32 in its thread's scratch (f16, bf16, f8 x
 * per-row scale; f32 weights are used in place), multiplies with one GEMM,
 * then adds the bias and applies the activation while the block is in cache.
 */
#include "cpu_gemm.h"
#include "cpu_internal.h"

#include <stdio.h>

#define PANEL_BYTES ((size_t)4 << 20) /* converted weight panel per thread */

typedef struct linear_job {
    cpu_state *cs;
    const float *x;
    float *y;
    const au_tensor *w;
    const float *bias;
    au_act act;
    int64_t n, in, out;
    int64_t cols, n_col_blocks;
    int64_t rows;
} linear_job;

static void linear_task(void *ctx, int64_t task, int thread) {
    const linear_job *j = ctx;
    int64_t cb = task % j->n_col_blocks, rb = task / j->n_col_blocks;
    int64_t c0 = cb * j->cols, nc = j->out - c0 < j->cols ? j->out - c0 : j->cols;
    int64_t r0 = rb * j->rows, nr = j->n - r0 < j->rows ? j->n - r0 : j->rows;
    const float *panel;
    if (j->w->dtype == AU_F32) {
        panel = (const float *)j->w->data + c0 * j->in;
    } else {
        float *buf = j->cs->scratch[thread];
        cpu_weight_rows_f32(j->w, c0, nc, buf);
        panel = buf;
    }
    float *y = j->y + r0 * j->out + c0;
    cpu_gemm(nr, nc, j->in, j->x + r0 * j->in, j->in, panel, j->in, 1, y, j->out, 0);
    if (!j->bias && j->act == AU_ACT_NONE)
        return;
    for (int64_t r = 0; r < nr; r++) {
        float *yr = y + r * j->out;
        if (j->bias)
            for (int64_t c = 0; c < nc; c++)
                yr[c] += j->bias[c0 + c];
        cpu_act_apply(yr, nc, j->act);
    }
}

int cpu_linear(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b,
               au_act act, au_err *err) {
    const char *op = "linear";
    cpu_state *cs = cpu_of(be);
    int rc;
    if ((rc = cpu_check_f32(op, "x", x, err)) < 0 || (rc = cpu_check_f32(op, "y", y, err)) < 0 ||
        (rc = cpu_check_readable(op, "w", w, err)) < 0)
        return rc;
    char sx[96], sw[96], sy[96];
    int64_t in = x->shape[x->ndim - 1], n = au_rows(x);
    if (w->ndim != 2 || w->shape[1] != in || y->shape[y->ndim - 1] != w->shape[0] || au_rows(y) != n)
        return au_errf(err, AU_EINVAL, "%s: x %s, w %s, y %s: expected x [n,in], w [out,in], y [n,out]", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw),
                       au_shape_str(y, sy, sizeof sy));
    int64_t out = w->shape[0];
    if (b && (rc = cpu_check_vec(op, "b", b, out, err)) < 0)
        return rc;
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    if (n > 0 && out > 0 && y->data == x->data)
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    if (n == 0 || out == 0)
        return 0;

    linear_job j = {cs, x->data, y->data, w, b ? b->data : NULL, act, n, in, out, 0, 0, n};
    int64_t T = cs->n_threads;
    int64_t cols = (out + 2 * T - 1) / (2 * T);
    cols = (cols + 15) / 16 * 16;
    if (cols > 256)
        cols = 256;
    if (w->dtype != AU_F32) {
        int64_t cap = (int64_t)(PANEL_BYTES / ((size_t)(in ? in : 1) * sizeof(float))) / 16 * 16;
        if (cols > cap)
            cols = cap > 16 ? cap : 16;
        if ((rc = cpu_scratch_reserve(cs, (size_t)cols * (size_t)in * sizeof(float), op, err)) < 0)
            return rc;
    }
    j.cols = cols;
    j.n_col_blocks = (out + cols - 1) / cols;
    if (j.n_col_blocks < 4 * T && n >= 128) { /* few columns, many rows: split rows too */
        int64_t row_blocks = (4 * T + j.n_col_blocks - 1) / j.n_col_blocks;
        j.rows = (n + row_blocks - 1) / row_blocks;
        if (j.rows < 64)
            j.rows = 64;
    }
    int64_t n_row_blocks = (n + j.rows - 1) / j.rows;
    tp_run(cs->pool, j.n_col_blocks * n_row_blocks, linear_task, &j);
    return 0;
}
