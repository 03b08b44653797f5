/* cpu_attention.c - multi-head softmax attention on the CPU.
 *
 * out[i, h] = sum_j p_ij v[j, h],  p_ij = softmax_j(scale * q[i,h] . k[j,h] + bias[h,i,j]),
 * head h being columns h*D .. h*D+D-1 of q [nq, H*D], k, v [nk, H*D].
 * Never builds the full [nq, nk] matrix: a task takes one head and a block of
 * `bq` queries, computes its scores [bq, nk] in thread scratch with one GEMM,
 * exponentiates them against each row's maximum (numerically stable), multiplies
 * by V with a second GEMM and divides each output row by its sum of weights.
 */
#include "cpu_gemm.h"
#include "cpu_internal.h"

#include <math.h>
#include <stdio.h>

#define SCORE_BYTES ((size_t)4 << 20) /* score block per thread */

typedef struct attn_job {
    cpu_state *cs;
    const float *q, *k, *v, *bias;
    float *out;
    int64_t nq, nk, n_heads, head_dim;
    int64_t bq, n_qblocks;
    float scale;
} attn_job;

static void attn_task(void *ctx, int64_t task, int thread) {
    const attn_job *j = ctx;
    int64_t h = task / j->n_qblocks, q0 = (task % j->n_qblocks) * j->bq;
    int64_t nr = j->nq - q0 < j->bq ? j->nq - q0 : j->bq;
    int64_t D = j->head_dim, HD = j->n_heads * D, nk = j->nk;
    float *S = j->cs->scratch[thread];
    float *inv_sum = S + j->bq * nk;
    cpu_gemm(nr, nk, D, j->q + q0 * HD + h * D, HD, j->k + h * D, HD, 1, S, nk, 0);
    for (int64_t r = 0; r < nr; r++) {
        float *row = S + r * nk;
        float m = -INFINITY;
        if (j->bias) {
            const float *brow = j->bias + (h * j->nq + q0 + r) * nk;
            for (int64_t c = 0; c < nk; c++) {
                row[c] = row[c] * j->scale + brow[c];
                m = row[c] > m ? row[c] : m;
            }
        } else {
            for (int64_t c = 0; c < nk; c++) {
                row[c] *= j->scale;
                m = row[c] > m ? row[c] : m;
            }
        }
        float sum = 0.0f;
        for (int64_t c = 0; c < nk; c++) {
            float e = expf(row[c] - m);
            row[c] = e;
            sum += e;
        }
        inv_sum[r] = 1.0f / sum;
    }
    float *o = j->out + q0 * HD + h * D;
    cpu_gemm(nr, D, nk, S, nk, j->v + h * D, HD, 0, o, HD, 0);
    for (int64_t r = 0; r < nr; r++)
        for (int64_t d = 0; d < D; d++)
            o[r * HD + d] *= inv_sum[r];
}

int cpu_attention(au_backend *be, au_tensor *out, const au_tensor *q, const au_tensor *k, const au_tensor *v,
                  int n_heads, float scale, const au_tensor *bias, au_err *err) {
    const char *op = "attention";
    cpu_state *cs = cpu_of(be);
    int rc;
    if ((rc = cpu_check_f32(op, "q", q, err)) < 0 || (rc = cpu_check_f32(op, "k", k, err)) < 0 ||
        (rc = cpu_check_f32(op, "v", v, err)) < 0 || (rc = cpu_check_f32(op, "out", out, err)) < 0)
        return rc;
    char sq[96], sk[96], sv[96], so[96];
    int64_t HD = q->shape[q->ndim - 1], nq = au_rows(q), nk = au_rows(k);
    if (n_heads < 1 || HD % n_heads != 0 || k->shape[k->ndim - 1] != HD || v->shape[v->ndim - 1] != HD ||
        au_rows(v) != nk || out->shape[out->ndim - 1] != HD || au_rows(out) != nq)
        return au_errf(err, AU_EINVAL,
                       "%s: q %s, k %s, v %s, out %s, %d heads: expected q, out [nq, H*D] and k, v [nk, H*D]", op,
                       au_shape_str(q, sq, sizeof sq), au_shape_str(k, sk, sizeof sk), au_shape_str(v, sv, sizeof sv),
                       au_shape_str(out, so, sizeof so), n_heads);
    if (bias && (rc = cpu_check_vec(op, "bias [H, nq, nk]", bias, (int64_t)n_heads * nq * nk, err)) < 0)
        return rc;
    if (nq > 0 && (out->data == k->data || out->data == v->data || out->data == q->data))
        return au_errf(err, AU_EINVAL, "%s: out must not alias q, k or v", op);
    if (nq == 0)
        return 0;
    if (nk == 0)
        return au_errf(err, AU_EINVAL, "%s: no keys (k %s)", op, au_shape_str(k, sk, sizeof sk));

    int64_t bq = (int64_t)(SCORE_BYTES / ((size_t)nk * sizeof(float)));
    bq = bq < 8 ? 8 : (bq > 256 ? 256 : bq);
    int64_t per_head = (nq + bq - 1) / bq;
    if (per_head * n_heads < 4 * cs->n_threads) { /* small problem: smaller blocks, more tasks */
        int64_t want = (4 * cs->n_threads + n_heads - 1) / n_heads;
        bq = (nq + want - 1) / want;
        if (bq < 1)
            bq = 1;
    }
    if ((rc = cpu_scratch_reserve(cs, ((size_t)bq * (size_t)nk + (size_t)bq) * sizeof(float), op, err)) < 0)
        return rc;
    attn_job j = {cs, q->data, k->data, v->data, bias ? bias->data : NULL, out->data, nq, nk, n_heads,
                  HD / n_heads, bq, (nq + bq - 1) / bq, scale};
    tp_run(cs->pool, j.n_qblocks * n_heads, attn_task, &j);
    return 0;
}
