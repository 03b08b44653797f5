/* cpu_attention.c - multi-head softmax attention on the CPU.
 *
 * out[i, h] = sum_j p_ij v[j, h],  p_ij = softmax_j(scale * q[i,h] . k[j,h] + bias[h,i,j]),
 * head h being columns h*D .. h*D+D-1 of q [nq, H*D], k, v [nk, H*D].
 * Never builds the full [nq, nk] matrix: a task takes one head and a block of
 * `bq` queries, computes its scores [bq, nk] in thread scratch with one GEMM,
 * exponentiates them against each row's maximum (numerically stable), multiplies
 * by V with a second GEMM and divides each output row by its sum of weights.
 * With last_key_copies n > 1 the last key's weight is multiplied by n before both (the
 * softmax over n identical trailing rows, computed once).
 *
 * The exponentials use the vector exp of cpu_vmath.h (relative error ~2e-7).
 */
#include "cpu_gemm.h"
#include "cpu_internal.h"
#include "cpu_vmath.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SCORE_BYTES ((size_t)4 << 20) /* score block per thread */
/* row[c] = exp(scale * row[c] + bias[c] - max) for c < n; *sum = their sum. */
VF_INLINE void softmax_row_body(float *row, int64_t n, float scale, const float *bias, float *sum_out) {
    int64_t full = n / VF_LANES * VF_LANES;
    vf vmax = (vf){0} - INFINITY;
    for (int64_t c = 0; c < full; c += VF_LANES) {
        vf s, b = (vf){0};
        memcpy(&s, row + c, sizeof s);
        if (bias)
            memcpy(&b, bias + c, sizeof b);
        s = s * scale + b;
        memcpy(row + c, &s, sizeof s);
        vf_max_into(&vmax, &s);
    }
    float m = -INFINITY;
    for (int i = 0; i < VF_LANES; i++)
        m = vmax[i] > m ? vmax[i] : m;
    for (int64_t c = full; c < n; c++) {
        row[c] = row[c] * scale + (bias ? bias[c] : 0.0f);
        m = row[c] > m ? row[c] : m;
    }
    vf vsum = (vf){0};
    for (int64_t c = 0; c < full; c += VF_LANES) {
        vf s;
        memcpy(&s, row + c, sizeof s);
        s -= m;
        vf_exp_inplace(&s);
        memcpy(row + c, &s, sizeof s);
        vsum += s;
    }
    if (full < n) { /* tail through one padded vector; padding lanes are dropped */
        vf s = (vf){0} - INFINITY;
        memcpy(&s, row + full, (size_t)(n - full) * sizeof(float));
        s -= m;
        vf_exp_inplace(&s);
        memcpy(row + full, &s, (size_t)(n - full) * sizeof(float));
        for (int64_t c = 0; c < n - full; c++)
            vsum[c] += s[c];
    }
    float sum = 0.0f;
    for (int i = 0; i < VF_LANES; i++)
        sum += vsum[i];
    *sum_out = sum;
}

CPU_SIMD_VARIANTS(softmax_row, (float *row, int64_t n, float scale, const float *bias, float *sum_out),
                  (row, n, scale, bias, sum_out))

typedef struct attn_job {
    cpu_state *cs;
    const float *q, *k, *v, *bias;
    float *out;
    int64_t nq, nk, n_heads, head_dim;
    int64_t bq, n_qblocks;
    float scale;
    float last_copies; /* weight multiplier of the last key (1: plain) */
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
        const float *brow = j->bias ? j->bias + (h * j->nq + q0 + r) * nk : NULL;
        float sum;
        softmax_row(S + r * nk, nk, j->scale, brow, &sum);
        if (j->last_copies != 1.0f) {
            float *last = S + r * nk + nk - 1;
            sum += (j->last_copies - 1.0f) * *last;
            *last *= j->last_copies;
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
                  int n_heads, float scale, const au_tensor *bias, int64_t last_key_copies, au_err *err) {
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
                       "%s: q %s, k %s, v %s, out %s, %d heads: expected q, out [nq, H*D] and k, v [nk, H*D]",
                       op, au_shape_str(q, sq, sizeof sq), au_shape_str(k, sk, sizeof sk),
                       au_shape_str(v, sv, sizeof sv), au_shape_str(out, so, sizeof so), n_heads);
    if (bias && (rc = cpu_check_vec(op, "bias [H, nq, nk]", bias, (int64_t)n_heads * nq * nk, err)) < 0)
        return rc;
    if (last_key_copies < 1)
        return au_errf(err, AU_EINVAL, "%s: last_key_copies %lld, expected >= 1", op, (long long)last_key_copies);
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
                  HD / n_heads, bq, (nq + bq - 1) / bq, scale, (float)last_key_copies};
    tp_run(cs->pool, j.n_qblocks * n_heads, attn_task, &j);
    return 0;
}
