/* cpu_gemm.c - float32 GEMM for the CPU backend: BLAS when available, else a
 * blocked kernel of our own (see cpu_gemm.h).
 *
 * Own kernel: for each KC-deep slice of K and MC-row block of A, a NR-column
 * panel of op(B) is packed k-major into a stack buffer [KC][NR], then MR rows
 * at a time are multiplied into MR x NR accumulators held in vector registers
 * (16-lane vectors of cpu_vmath.h, compiled per ISA and picked at run time):
 *   acc[r] += A[m + r, k] * panel[k]  for k in the slice.
 * Partial sums of later K slices are added into C.
 */
#include "cpu_gemm.h"
#include "cpu_vmath.h"

#include <string.h>

#ifdef AU_HAVE_BLAS
#include <cblas.h>
#endif

#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_KC 256
#define GEMM_MC 192


/* bp[k][j] = op(B)[k0 + k, n0 + j], zero past nc columns. */
static inline __attribute__((always_inline)) void pack_panel(const float *B, int64_t ldb, int b_trans, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                       float *bp) {
    if (b_trans) {
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t j = 0; j < nc; j++)
                bp[k * GEMM_NR + j] = B[(n0 + j) * ldb + k0 + k];
            for (int64_t j = nc; j < GEMM_NR; j++)
                bp[k * GEMM_NR + j] = 0.0f;
        }
    } else {
        for (int64_t k = 0; k < kc; k++) {
            const float *row = B + (k0 + k) * ldb + n0;
            for (int64_t j = 0; j < nc; j++)
                bp[k * GEMM_NR + j] = row[j];
            for (int64_t j = nc; j < GEMM_NR; j++)
                bp[k * GEMM_NR + j] = 0.0f;
        }
    }
}

/* C[0..mr, 0..nc] (+)= A[0..mr, 0..kc] . panel; mr is a compile-time constant at each call. */
static inline __attribute__((always_inline)) void micro_kernel(int mr, int64_t kc, const float *A, int64_t lda,
                                                              const float *bp, float *C, int64_t ldc,
                                                              int64_t nc, int add) {
    vf acc[GEMM_MR];
    for (int r = 0; r < mr; r++)
        acc[r] = (vf){0};
    for (int64_t k = 0; k < kc; k++) {
        vf b;
        memcpy(&b, bp + k * GEMM_NR, sizeof b);
        for (int r = 0; r < mr; r++)
            acc[r] += A[r * lda + k] * b;
    }
    for (int r = 0; r < mr; r++) {
        float out[GEMM_NR];
        vf sum = acc[r]; /* a copy, so acc never has its address taken and stays in registers */
        memcpy(out, &sum, sizeof out);
        float *c = C + r * ldc;
        if (add)
            for (int64_t j = 0; j < nc; j++)
                c[j] += out[j];
        else
            for (int64_t j = 0; j < nc; j++)
                c[j] = out[j];
    }
}

static inline __attribute__((always_inline)) void block_rows(int64_t mc, int64_t kc, const float *A, int64_t lda, const float *bp, float *C,
                       int64_t ldc, int64_t nc, int add) {
    int64_t m = 0;
    for (; m + GEMM_MR <= mc; m += GEMM_MR)
        micro_kernel(GEMM_MR, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add);
    switch (mc - m) {
    case 5: micro_kernel(5, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add); break;
    case 4: micro_kernel(4, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add); break;
    case 3: micro_kernel(3, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add); break;
    case 2: micro_kernel(2, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add); break;
    case 1: micro_kernel(1, kc, A + m * lda, lda, bp, C + m * ldc, ldc, nc, add); break;
    default: break;
    }
}

/* The blocked loop nest; always inlined into the per-ISA entry points below. */
VF_INLINE void gemm_own_isa_body(int64_t M, int64_t N, int64_t K, const float *A,
                                                               int64_t lda, const float *B, int64_t ldb, int b_trans,
                                                               float *C, int64_t ldc, int accumulate) {
    float bp[GEMM_KC * GEMM_NR] __attribute__((aligned(64)));
    if (K == 0) {
        if (!accumulate)
            for (int64_t m = 0; m < M; m++)
                memset(C + m * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
        int64_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        int add = accumulate || k0 > 0;
        for (int64_t m0 = 0; m0 < M; m0 += GEMM_MC) {
            int64_t mc = M - m0 < GEMM_MC ? M - m0 : GEMM_MC;
            for (int64_t n0 = 0; n0 < N; n0 += GEMM_NR) {
                int64_t nc = N - n0 < GEMM_NR ? N - n0 : GEMM_NR;
                pack_panel(B, ldb, b_trans, k0, kc, n0, nc, bp);
                block_rows(mc, kc, A + m0 * lda + k0, lda, bp, C + m0 * ldc + n0, ldc, nc, add);
            }
        }
    }
}

CPU_SIMD_VARIANTS(gemm_own_isa,
                  (int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                   int b_trans, float *C, int64_t ldc, int accumulate),
                  (M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate))

void cpu_gemm_own(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                  int b_trans, float *C, int64_t ldc, int accumulate) {
    gemm_own_isa(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void cpu_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
              int b_trans, float *C, int64_t ldc, int accumulate) {
    if (M == 0 || N == 0)
        return;
#ifdef AU_HAVE_BLAS
    if (K > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                    1.0f, A, (int)lda, B, (int)ldb, accumulate ? 1.0f : 0.0f, C, (int)ldc);
        return;
    }
#endif
    cpu_gemm_own(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void cpu_gemm_setup(void) {
#if defined(AU_HAVE_BLAS) && defined(OPENBLAS_VERSION)
    openblas_set_num_threads(1);
#endif
}

const char *cpu_gemm_engine(void) {
#if defined(AU_HAVE_BLAS) && defined(OPENBLAS_VERSION)
    return "openblas";
#elif defined(AU_HAVE_BLAS)
    return "cblas";
#else
    return "own";
#endif
}
