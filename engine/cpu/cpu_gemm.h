/* cpu_gemm.h - single-threaded float32 GEMM used inside the CPU backend's tasks.
 *
 * C[M,N] = A[M,K] . op(B), or C += A . op(B) when accumulate; all row-major with
 * leading dimensions lda, ldb, ldc (elements). op(B) = B^T with B stored [N,K]
 * when b_trans (the linear/attention-score case), else B stored [K,N].
 * cpu_gemm goes to cblas_sgemm when the build has BLAS (AU_HAVE_BLAS), else to
 * cpu_gemm_own, the blocked fallback (always built, tested and benchmarked).
 */
#ifndef AU_CPU_GEMM_H
#define AU_CPU_GEMM_H

#include <stdint.h>

void cpu_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
              int b_trans, float *C, int64_t ldc, int accumulate);
void cpu_gemm_own(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                  int b_trans, float *C, int64_t ldc, int accumulate);
/* Called once per backend: BLAS must run single-threaded inside our pool's tasks
 * (the pool owns the cores). */
void cpu_gemm_setup(void);
/* "openblas", "cblas" or "own": what cpu_gemm runs on. */
const char *cpu_gemm_engine(void);

#endif
