/* cpu_gemm.c - float32 GEMM for the CPU backend: BLAS when available, else a
 * blocked kernel of our own (see cpu_gemm.h).
 *
 * Own kernel (GotoBLAS-style): for each KC-deep slice of K, an MC-row block of
 * A is packed into MR-row panels [kc][MR] (thread-local buffer), and for each
 * NR-column panel of op(B), packed k-major [kc][NR] on the stack, MR x NR
 * results accumulate in vector registers:
 *   acc[r] += ap[k][r] * bp[k]  for k in the slice,
 * and are added into C (the first slice overwrites unless accumulating). The
 * code is written with the 16-lane vectors of cpu_vmath.h and compiled per ISA;
 * NR is 32 with AVX-512 (32 registers), 16 otherwise.
 */
#include "cpu_gemm.h"
#include "cpu_vmath.h"

#include <string.h>

#ifdef AU_HAVE_BLAS
#include <cblas.h>
#endif

#define GEMM_MR 6      /* rows per micro-kernel */
#define GEMM_KC 256    /* depth of a packed slice */
#define GEMM_MC 144    /* rows of a packed A block (a multiple of GEMM_MR) */
#define GEMM_NR_MAX 32 /* columns per B panel: VF_LANES x vectors per row (1 or 2) */

/* Packed A block of the calling thread: [GEMM_MC / GEMM_MR][kc][GEMM_MR]. */
static _Thread_local float a_pack[GEMM_MC * GEMM_KC] __attribute__((aligned(64)));

/* ap[p][k][r] = A[p MR + r, k], zero past mc rows. */
VF_INLINE void pack_a(const float *A, int64_t lda, int64_t mc, int64_t kc, float *ap) {
    for (int64_t m0 = 0; m0 < mc; m0 += GEMM_MR) {
        int64_t mr = mc - m0 < GEMM_MR ? mc - m0 : GEMM_MR;
        float *dst = ap + m0 * kc;
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t r = 0; r < mr; r++)
                dst[k * GEMM_MR + r] = A[(m0 + r) * lda + k];
            for (int64_t r = mr; r < GEMM_MR; r++)
                dst[k * GEMM_MR + r] = 0.0f;
        }
    }
}

/* bp[k][j] = op(B)[k0 + k, n0 + j] for j < nr, zero past nc columns. */
VF_INLINE void pack_b(const float *B, int64_t ldb, int b_trans, int64_t k0, int64_t kc, int64_t n0,
                      int64_t nc, int nr, float *bp) {
    for (int64_t k = 0; k < kc; k++) {
        float *dst = bp + k * nr;
        if (b_trans)
            for (int64_t j = 0; j < nc; j++)
                dst[j] = B[(n0 + j) * ldb + k0 + k];
        else
            memcpy(dst, B + (k0 + k) * ldb + n0, (size_t)nc * sizeof(float));
        for (int64_t j = nc; j < nr; j++)
            dst[j] = 0.0f;
    }
}

/* C[0..mr, 0..nc] (+)= ap[kc][MR] . bp[kc][nv * VF_LANES]; nv (1 or 2) is a compile-time constant. */
VF_INLINE void micro_kernel(int nv, int64_t kc, const float *ap, const float *bp, float *C, int64_t ldc,
                            int64_t mr, int64_t nc, int add) {
    vf acc[GEMM_MR][2];
    for (int r = 0; r < GEMM_MR; r++)
        acc[r][0] = acc[r][1] = (vf){0};
    for (int64_t k = 0; k < kc; k++) {
        vf b0, b1 = (vf){0};
        memcpy(&b0, bp + k * nv * VF_LANES, sizeof b0);
        if (nv > 1)
            memcpy(&b1, bp + k * nv * VF_LANES + VF_LANES, sizeof b1);
        for (int r = 0; r < GEMM_MR; r++) {
            float a = ap[k * GEMM_MR + r];
            acc[r][0] += a * b0;
            if (nv > 1)
                acc[r][1] += a * b1;
        }
    }
    for (int64_t r = 0; r < mr; r++) {
        float out[2 * VF_LANES];
        vf s0 = acc[r][0], s1 = acc[r][1]; /* copies: acc never has its address taken, stays in registers */
        memcpy(out, &s0, sizeof s0);
        memcpy(out + VF_LANES, &s1, sizeof s1);
        float *c = C + r * ldc;
        if (add)
            for (int64_t j = 0; j < nc; j++)
                c[j] += out[j];
        else
            for (int64_t j = 0; j < nc; j++)
                c[j] = out[j];
    }
}

/* The blocked loop nest, inlined into one entry point per ISA with its panel width. */
VF_INLINE void gemm_own_body(int nv, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                             const float *B, int64_t ldb, int b_trans, float *C, int64_t ldc,
                             int accumulate) {
    float bp[GEMM_KC * GEMM_NR_MAX] __attribute__((aligned(64)));
    int nr = nv * VF_LANES;
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
            pack_a(A + m0 * lda + k0, lda, mc, kc, a_pack);
            for (int64_t n0 = 0; n0 < N; n0 += nr) {
                int64_t nc = N - n0 < nr ? N - n0 : nr;
                pack_b(B, ldb, b_trans, k0, kc, n0, nc, nr, bp);
                for (int64_t m = 0; m < mc; m += GEMM_MR)
                    micro_kernel(nv, kc, a_pack + m * kc, bp, C + (m0 + m) * ldc + n0, ldc,
                                 mc - m < GEMM_MR ? mc - m : GEMM_MR, nc, add);
            }
        }
    }
}

#define GEMM_OWN_PARAMS                                                                                      \
    (int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, int b_trans, \
     float *C, int64_t ldc, int accumulate)

/* Two vectors per row where there are 32 vector registers (AVX-512: 12 accumulators hide
 * the FMA latency), one where there are 16 (AVX2: 6 rows x 2 ymm halves = 12). */
static void gemm_own_generic GEMM_OWN_PARAMS {
    gemm_own_body(1, M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}
#if CPU_SIMD_X86
__attribute__((target("avx512f,avx2,fma"))) static void gemm_own_avx512 GEMM_OWN_PARAMS {
    gemm_own_body(2, M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}
__attribute__((target("avx2,fma"))) static void gemm_own_avx2 GEMM_OWN_PARAMS {
    gemm_own_body(1, M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}
#endif

void cpu_gemm_own(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                  int b_trans, float *C, int64_t ldc, int accumulate) {
#if CPU_SIMD_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
        gemm_own_avx512(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        gemm_own_avx2(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
    else
#endif
        gemm_own_generic(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
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
