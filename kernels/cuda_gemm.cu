/* cuda_gemm.cu - cuBLASLt GEMMs and the linear op: y[n,out] = act(x[n,in] . w[out,in]^T + b).
 *
 * Every GEMM is cuBLASLt "TN": D (col-major m x n) = A[m,k] B[n,k]^T with A, B row-major;
 * for a linear m = out (A = w), n = tokens (B = x), so D is y row-major [n, out] and the
 * bias runs along m, which is where cuBLASLt's bias epilogue puts it.
 *
 * Routes, by the weight's dtype:
 *  - f8 (fp8 precision): x is used as is when it is f8 (per-row scales from the op that made
 *    it), else quantized per row into scratch. When this cuBLASLt accepts outer-vector
 *    scales (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, probed at creation), it computes
 *    act(sw[o] sx[t] (w x^T) + b) itself; otherwise it returns the raw product and our
 *    epilogue kernel applies the scales, bias and activation. When the FP8 GEMM takes no
 *    algorithm for the shape (k not a multiple of 16, say), the weight and x are
 *    dequantized to bf16 in scratch and the bf16 route runs; be_cuda_stats counts it.
 *  - bf16: x converted to bf16 when it is not; bias and GELU fused in cuBLASLt (the bias as
 *    a bf16 copy in scratch, the type cuBLASLt takes beside a bf16 output).
 *  - f32: true float32 GEMM (CUBLAS_COMPUTE_32F, no TF32), bias fused.
 * When y is f32 or bf16 and the GEMM can do all of it, D is y itself. Otherwise (f8 y, or
 * our epilogue needed) D is a bf16/f32 scratch tile of at most TILE_BYTES, processed in row
 * chunks, and the epilogue writes y (quantizing per row for f8). SiLU is never fused by
 * cuBLASLt and runs in the epilogue or in place after.
 * Plans (descriptors, layouts and the chosen algorithm) are cached by shape, dtypes,
 * epilogue and pointer alignment.
 */
#include "cuda_internal.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TILE_BYTES ((size_t)256 << 20) /* scratch D tile of the epilogue route */

struct cuda_plan {
    /* key */
    int64_t m, n, k, ldd, lda;
    int a_kmajor, ab, d, outer, has_bias, gelu;
    int align_a, align_b, align_d, align_bias, align_sa, align_sb;
    /* value */
    int valid; /* 0: no algorithm for this key */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

static int ptr_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int a = 256;
    while (a > 1 && (v % (uintptr_t)a) != 0)
        a >>= 1;
    return a;
}

static cudaDataType_t lt_type(au_dtype dt) {
    switch (dt) {
    case AU_F8_E4M3: return CUDA_R_8F_E4M3;
    case AU_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

void cuda_plans_free(cuda_state *cs) {
    if (!cs->plans)
        return;
    for (int i = 0; i < cs->n_plans; i++) {
        cuda_plan *p = &cs->plans[i];
        if (p->desc)
            cublasLtMatmulDescDestroy(p->desc);
        if (p->la)
            cublasLtMatrixLayoutDestroy(p->la);
        if (p->lb)
            cublasLtMatrixLayoutDestroy(p->lb);
        if (p->lc)
            cublasLtMatrixLayoutDestroy(p->lc);
    }
    free(cs->plans);
    cs->plans = NULL;
    cs->n_plans = 0;
}

int cuda_plans_init(cuda_state *cs) {
    cs->plans = (cuda_plan *)calloc(CUDA_PLAN_CACHE, sizeof(cuda_plan));
    return cs->plans ? 0 : AU_ENOMEM;
}

static void plan_key(const cuda_gemm *g, int outer, cuda_plan *k) {
    memset(k, 0, sizeof *k);
    k->m = g->m, k->n = g->n, k->k = g->k, k->ldd = g->ldd;
    k->a_kmajor = g->a_kmajor, k->lda = g->a_kmajor ? g->lda : g->k;
    k->ab = (int)g->ab_dtype, k->d = (int)g->d_dtype, k->outer = outer;
    k->has_bias = g->bias != NULL, k->gelu = g->gelu;
    k->align_a = ptr_align(g->a), k->align_b = ptr_align(g->b), k->align_d = ptr_align(g->d);
    k->align_bias = g->bias ? ptr_align(g->bias) : 0;
    k->align_sa = outer ? ptr_align(g->a_scale) : 0;
    k->align_sb = outer ? ptr_align(g->b_scale) : 0;
}

static int same_key(const cuda_plan *a, const cuda_plan *b) {
    return a->m == b->m && a->n == b->n && a->k == b->k && a->ldd == b->ldd && a->lda == b->lda &&
           a->a_kmajor == b->a_kmajor && a->ab == b->ab && a->d == b->d &&
           a->outer == b->outer && a->has_bias == b->has_bias && a->gelu == b->gelu && a->align_a == b->align_a &&
           a->align_b == b->align_b && a->align_d == b->align_d && a->align_bias == b->align_bias &&
           a->align_sa == b->align_sa && a->align_sb == b->align_sb;
}

static void plan_release(cuda_plan *p) {
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc)
        cublasLtMatrixLayoutDestroy(p->lc);
    p->desc = NULL;
    p->la = p->lb = p->lc = NULL;
}

/* Set the per-call pointers of a plan's descriptor. */
static int plan_pointers(cuda_plan *p, const cuda_gemm *g, const char *op, au_err *err) {
    if (p->has_bias)
        LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias));
    if (p->outer) {
        LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g->a_scale,
                                              sizeof g->a_scale));
        LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g->b_scale,
                                              sizeof g->b_scale));
    }
    return 0;
}

/* Build descriptors for key p and ask the heuristic for an algorithm (p->valid = 0 if none). */
static int plan_build(cuda_state *cs, cuda_plan *p, const cuda_gemm *g, const char *op, au_err *err) {
    cudaDataType_t ab = lt_type((au_dtype)p->ab), d = lt_type((au_dtype)p->d);
    LT_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = p->a_kmajor ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (p->ab == AU_F8_E4M3) {
        int8_t fast = 0;
        LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
        if (p->outer) {
            int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
            LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
            LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
        }
    }
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (p->has_bias && p->gelu)
        epi = CUBLASLT_EPILOGUE_GELU_BIAS;
    else if (p->has_bias)
        epi = CUBLASLT_EPILOGUE_BIAS;
    else if (p->gelu)
        epi = CUBLASLT_EPILOGUE_GELU;
    LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (p->has_bias) {
        int32_t bt = (int32_t)d;
        LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    TRY_RC(plan_pointers(p, g, op, err));
    if (p->a_kmajor)
        LT_TRY(cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)p->m, (uint64_t)p->k, p->lda));
    else
        LT_TRY(cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)p->k, (uint64_t)p->m, p->k));
    LT_TRY(cublasLtMatrixLayoutCreate(&p->lb, ab, (uint64_t)p->k, (uint64_t)p->n, p->k));
    LT_TRY(cublasLtMatrixLayoutCreate(&p->lc, d, (uint64_t)p->m, (uint64_t)p->n, p->ldd));

    cublasLtMatmulPreference_t pref;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = cs->workspace_bytes;
    uint32_t aa = (uint32_t)p->align_a, abb = (uint32_t)p->align_b, ad = (uint32_t)p->align_d;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &abb, sizeof abb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof ad);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS) {
        cublasStatus_t h = cublasLtMatmulAlgoGetHeuristic(cs->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res,
                                                          &found);
        if (h != CUBLAS_STATUS_SUCCESS && h != CUBLAS_STATUS_NOT_SUPPORTED)
            s = h;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    LT_TRY(s);
    p->valid = found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (p->valid)
        p->algo = res.algo;
    return 0;
}

/* The cached plan for g, built on a miss; NULL with err set on a library failure. */
static cuda_plan *plan_get(cuda_state *cs, const cuda_gemm *g, int outer, const char *op, au_err *err) {
    cuda_plan key;
    plan_key(g, outer, &key);
    for (int i = 0; i < cs->n_plans; i++)
        if (same_key(&cs->plans[i], &key))
            return &cs->plans[i];
    int slot;
    if (cs->n_plans < CUDA_PLAN_CACHE) {
        slot = cs->n_plans++;
    } else { /* replace round-robin */
        slot = cs->next_plan;
        cs->next_plan = (cs->next_plan + 1) % CUDA_PLAN_CACHE;
        plan_release(&cs->plans[slot]);
    }
    cuda_plan *p = &cs->plans[slot];
    *p = key;
    if (plan_build(cs, p, g, op, err) < 0) {
        plan_release(p);
        p->valid = 0;
        /* keep the slot's key from matching again */
        p->m = -1;
        return NULL;
    }
    return p;
}

/* Run g; AU_EUNSUPPORTED (err untouched) when cuBLASLt has no algorithm for it. */
int cuda_gemm_run(cuda_state *cs, const cuda_gemm *g, const char *op, au_err *err) {
    if (g->a_kmajor && g->ab_dtype == AU_F8_E4M3)
        return au_errf(err, AU_EINTERNAL, "%s: FP8 GEMMs take A as [m, k] only", op);
    int outer = g->ab_dtype == AU_F8_E4M3 && (g->a_scale || g->b_scale);
    if (outer && (!g->a_scale || !g->b_scale))
        return au_errf(err, AU_EINTERNAL, "%s: outer-vector FP8 scales need both A and B scales", op);
    cuda_plan *p = plan_get(cs, g, outer, op, err);
    if (!p)
        return err ? err->code : AU_EBACKEND;
    if (!p->valid)
        return AU_EUNSUPPORTED;
    TRY_RC(plan_pointers(p, g, op, err));
    float alpha = 1.0f, beta = 0.0f;
    LT_TRY(cublasLtMatmul(cs->lt, p->desc, &alpha, g->a, p->la, g->b, p->lb, &beta, g->d, p->lc, g->d, p->lc, &p->algo,
                          cs->workspace, cs->workspace_bytes, cs->stream));
    return 0;
}

int cuda_probe_fp8_outer_vec(cuda_state *cs) {
    /* Pointers only need to be aligned for the heuristic: nothing runs. */
    const void *fake = (const void *)(uintptr_t)4096;
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.m = g.n = g.k = g.ldd = 1024;
    g.a = g.b = fake;
    g.d = (void *)fake;
    g.ab_dtype = AU_F8_E4M3;
    g.d_dtype = AU_BF16;
    g.a_scale = g.b_scale = (const float *)fake;
    au_err e;
    cuda_plan *p = plan_get(cs, &g, 1, "fp8 probe", &e);
    return p && p->valid;
}

/* ---- epilogue: y = act(acc * sa[row] * sb[col] + bias[col]) ---- */

namespace {
struct epi_fn {
    cu_ref acc;
    const float *sa, *sb, *bias;
    int64_t cols;
    int act;
    __device__ float operator()(int64_t i) const {
        float v = cu_load(acc, i);
        int64_t c = i % cols;
        if (sa)
            v *= sa[i / cols] * sb[c];
        if (bias)
            v += bias[c];
        return cu_act(v, act);
    }
};
} // namespace

namespace {
struct act_fn {
    cu_ref x;
    int act;
    __device__ float operator()(int64_t i) const { return cu_act(cu_load(x, i), act); }
};
} // namespace

/* ---- linear ---- */

typedef struct lin {
    cuda_state *cs;
    au_tensor *y;
    const au_tensor *b;
    au_act act;
    int64_t n, in, out;
    au_dtype ab;          /* operand dtype of the GEMM */
    const void *w, *x;    /* operands in ab */
    const float *sw, *sx; /* f8 scales (per out channel, per token) */
} lin;

/* Bias as a d_dtype vector in scratch region `mem` (f32 bias is used in place). */
static int lin_bias(const lin *L, au_dtype d, void *mem, const void **out, const char *op, au_err *err) {
    *out = NULL;
    if (!L->b)
        return 0;
    if (d == AU_F32) {
        *out = L->b->data;
        return 0;
    }
    cu_ref dst = {mem, NULL, 1, (int)d}, src = cu_ref_of(L->b);
    TRY_RC(cuda_convert(L->cs, &dst, &src, L->out, op, err));
    *out = mem;
    return 0;
}

/* The GEMM writing y directly; AU_EUNSUPPORTED when it cannot. */
static int lin_direct(const lin *L, void *bias_mem, const char *op, au_err *err) {
    au_dtype d = L->y->dtype;
    if (d != AU_F32 && d != AU_BF16)
        return AU_EUNSUPPORTED;
    if (L->ab == AU_F8_E4M3 && !L->cs->fp8_outer_vec)
        return AU_EUNSUPPORTED;
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.m = L->out, g.n = L->n, g.k = L->in, g.ldd = L->out;
    g.a = L->w, g.b = L->x, g.d = L->y->data;
    g.ab_dtype = L->ab, g.d_dtype = d;
    if (L->ab == AU_F8_E4M3)
        g.a_scale = L->sw, g.b_scale = L->sx;
    g.gelu = L->act == AU_ACT_GELU_TANH;
    TRY_RC(lin_bias(L, d, bias_mem, &g.bias, op, err));
    int rc = cuda_gemm_run(L->cs, &g, op, err);
    if (rc < 0)
        return rc;
    L->cs->stats.gemm_fused++;
    if (L->act == AU_ACT_SILU) {
        act_fn f = {cu_ref_of(L->y), (int)L->act};
        TRY_RC(cu_map(L->cs, f, L->y, op, err));
    }
    return 0;
}

/* GEMM into a scratch tile, row chunk by row chunk, then the epilogue into y. in_lt: the
 * scales, bias and GELU run inside cuBLASLt (else the GEMM is the raw product). */
static int lin_tiled(const lin *L, int in_lt, void *bias_mem, void *tile, int64_t chunk, const char *op,
                     au_err *err) {
    cuda_state *cs = L->cs;
    au_dtype d = L->ab == AU_F32 ? AU_F32 : AU_BF16;
    size_t esz = au_dtype_size(L->ab);
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.m = L->out, g.k = L->in, g.ldd = L->out;
    g.a = L->w, g.d = tile;
    g.ab_dtype = L->ab, g.d_dtype = d;
    if (in_lt) {
        g.gelu = L->act == AU_ACT_GELU_TANH;
        TRY_RC(lin_bias(L, d, bias_mem, &g.bias, op, err));
    }
    for (int64_t r0 = 0; r0 < L->n; r0 += chunk) {
        int64_t nr = L->n - r0 < chunk ? L->n - r0 : chunk;
        g.n = nr;
        g.b = (const char *)L->x + (size_t)(r0 * L->in) * esz;
        if (L->ab == AU_F8_E4M3 && in_lt) {
            g.a_scale = L->sw;
            g.b_scale = L->sx + r0;
        }
        TRY_RC(cuda_gemm_run(cs, &g, op, err));
        /* y viewed as [n, out], rows r0 .. r0+nr (f8 scales follow the rows) */
        int64_t shape[2] = {L->n, L->out};
        au_tensor y2;
        au_reshape(L->y, 2, shape, &y2);
        au_tensor yc = au_view_rows(&y2, r0, nr);
        if (in_lt && yc.dtype == AU_F8_E4M3 && L->act != AU_ACT_SILU) { /* only the quantization is left */
            cu_ref tr = {tile, NULL, 1, (int)d};
            TRY_RC(cuda_quantize_rows(cs, (uint8_t *)yc.data, (float *)yc.scale, &tr, nr, L->out, op, err));
            continue;
        }
        epi_fn f;
        f.acc.data = tile, f.acc.dtype = (int)d, f.acc.scale = NULL, f.acc.row_len = 1;
        f.cols = L->out;
        f.sa = (!in_lt && L->ab == AU_F8_E4M3) ? L->sx + r0 : NULL;
        f.sb = L->sw;
        f.bias = (!in_lt && L->b) ? (const float *)L->b->data : NULL;
        f.act = in_lt ? (L->act == AU_ACT_SILU ? (int)AU_ACT_SILU : (int)AU_ACT_NONE) : (int)L->act;
        TRY_RC(cu_map(cs, f, &yc, op, err));
    }
    if (in_lt)
        cs->stats.gemm_fused++;
    else
        cs->stats.gemm_epilogue++;
    return 0;
}

/* Direct, else tiled with cuBLASLt's epilogue, else (FP8) tiled with ours. */
static int lin_run(lin *L, void *bias_mem, void *tile, int64_t chunk, const char *op, au_err *err) {
    int rc = lin_direct(L, bias_mem, op, err);
    if (rc != AU_EUNSUPPORTED)
        return rc;
    int in_lt = L->ab != AU_F8_E4M3 || L->cs->fp8_outer_vec;
    rc = lin_tiled(L, in_lt, bias_mem, tile, chunk, op, err);
    if (rc != AU_EUNSUPPORTED || !in_lt || L->ab != AU_F8_E4M3)
        return rc;
    return lin_tiled(L, 0, bias_mem, tile, chunk, op, err);
}

int cuda_linear(au_backend *be, au_tensor *y, const au_tensor *x, const au_tensor *w, const au_tensor *b, au_act act,
                au_err *err) {
    const char *op = "linear";
    cuda_state *cs = cuda_of(be);
    TRY_RC(cuda_check_readable(op, "x", x, err));
    TRY_RC(cuda_check_readable(op, "w", w, err));
    TRY_RC(cuda_check_writable(op, "y", y, 1, err));
    char sx[96], sw[96], sy[96];
    int64_t in = x->shape[x->ndim - 1], n = au_rows(x);
    if (w->ndim != 2 || w->shape[1] != in || y->shape[y->ndim - 1] != w->shape[0] || au_rows(y) != n)
        return au_errf(err, AU_EINVAL, "%s: x %s, w %s, y %s: expected x [n,in], w [out,in], y [n,out]", op,
                       au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw), au_shape_str(y, sy, sizeof sy));
    int64_t out = w->shape[0];
    if (b)
        TRY_RC(cuda_check_vec(op, "b", b, out, err));
    if (act != AU_ACT_NONE && act != AU_ACT_GELU_TANH && act != AU_ACT_SILU)
        return au_errf(err, AU_EINVAL, "%s: unknown activation %d", op, (int)act);
    if (w->dtype != AU_F8_E4M3 && w->dtype != AU_BF16 && w->dtype != AU_F32)
        return au_errf(err, AU_EINVAL, "%s: w %s must be f8, bf16 or f32 (a weight loaded by this backend)", op,
                       au_shape_str(w, sw, sizeof sw));
    if (n > 0 && out > 0 && (y->data == x->data))
        return au_errf(err, AU_EINVAL, "%s: y must not alias x", op);
    if (n == 0 || out == 0)
        return 0;
    /* f8 scales follow dim 0, so an f8 x or y must have one row per token */
    if (y->dtype == AU_F8_E4M3 && au_numel(y) / y->shape[0] != out)
        return au_errf(err, AU_EINVAL, "%s: f8 y %s must have one row per token", op, au_shape_str(y, sy, sizeof sy));
    if (x->dtype == AU_F8_E4M3 && au_numel(x) / x->shape[0] != in)
        return au_errf(err, AU_EINVAL, "%s: f8 x %s must have one row per token", op, au_shape_str(x, sx, sizeof sx));
    if (in == 0)
        return au_errf(err, AU_EINVAL, "%s: x %s has no columns", op, au_shape_str(x, sx, sizeof sx));

    lin L;
    memset(&L, 0, sizeof L);
    L.cs = cs, L.y = y, L.b = b, L.act = act, L.n = n, L.in = in, L.out = out;
    /* cuBLASLt FP8 needs k (and the operands' leading dimension) a multiple of 16 */
    int f8 = w->dtype == AU_F8_E4M3 && in % 16 == 0;
    L.ab = f8 ? AU_F8_E4M3 : (w->dtype == AU_F32 ? AU_F32 : AU_BF16);
    if (w->dtype == AU_F8_E4M3 && !f8)
        cs->stats.gemm_f8_as_bf16++;

    for (int attempt = 0; attempt < 2; attempt++) {
        size_t esz = au_dtype_size(L.ab);
        au_dtype d = L.ab == AU_F32 ? AU_F32 : AU_BF16;
        int need_x = x->dtype != L.ab;
        int need_w = w->dtype != L.ab;
        int64_t chunk = (int64_t)(TILE_BYTES / ((size_t)out * au_dtype_size(d)));
        chunk = chunk >= n ? n : (chunk < 128 ? 128 : chunk / 128 * 128);
        if (chunk > n)
            chunk = n;
        size_t x_bytes = need_x ? cuda_round256((size_t)(n * in) * esz) + cuda_round256((size_t)n * 4) : 0;
        size_t w_bytes = need_w ? cuda_round256((size_t)(out * in) * esz) : 0;
        size_t b_bytes = b ? cuda_round256((size_t)out * 4) : 0;
        size_t t_bytes = cuda_round256((size_t)(chunk * out) * au_dtype_size(d));
        char *mem;
        TRY_RC(cuda_scratch(cs, x_bytes + w_bytes + b_bytes + t_bytes, (void **)&mem, op, err));
        char *xm = mem, *wm = xm + x_bytes, *bm = wm + w_bytes, *tm = bm + b_bytes;
        cu_ref xr = cu_ref_of(x), wr = cu_ref_of(w);
        L.x = x->data, L.sx = (const float *)x->scale;
        L.w = w->data, L.sw = (const float *)w->scale;
        if (need_x) {
            if (L.ab == AU_F8_E4M3) {
                float *sc = (float *)(xm + cuda_round256((size_t)(n * in)));
                TRY_RC(cuda_quantize_rows(cs, (uint8_t *)xm, sc, &xr, n, in, op, err));
                L.sx = sc;
            } else {
                cu_ref dr = {xm, NULL, 1, (int)L.ab};
                TRY_RC(cuda_convert(cs, &dr, &xr, n * in, op, err));
                L.sx = NULL;
            }
            L.x = xm;
        }
        if (need_w) {
            cu_ref dr = {wm, NULL, 1, (int)L.ab};
            TRY_RC(cuda_convert(cs, &dr, &wr, out * in, op, err));
            L.w = wm;
            L.sw = NULL;
        }
        if (L.ab != AU_F8_E4M3)
            L.sx = L.sw = NULL;
        int rc = lin_run(&L, bm, tm, chunk, op, err);
        if (rc != AU_EUNSUPPORTED)
            return rc;
        if (L.ab != AU_F8_E4M3)
            return au_errf(err, AU_EUNSUPPORTED, "%s: cuBLASLt has no %s algorithm for x %s, w %s", op,
                           au_dtype_name(L.ab), au_shape_str(x, sx, sizeof sx), au_shape_str(w, sw, sizeof sw));
        L.ab = AU_BF16; /* the FP8 GEMM refused this shape: dequantize and run bf16 */
        cs->stats.gemm_f8_as_bf16++;
    }
    return au_errf(err, AU_EINTERNAL, "%s: no GEMM route", op);
}
