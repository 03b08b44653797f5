/* health_probe.cu - GPU facts, benchmarks and self-tests of the /health report (health_probe.h).
 *
 * Facts come from the CUDA runtime (properties, attributes, cudaMemGetInfo, runtime and driver
 * API versions) and the driver's version string from NVML, loaded with dlopen so nothing links
 * against the driver.
 * Timing: HP_WARMUP calls, then HP_REPEATS batches of HP_ITERS back-to-back calls between two
 * CUDA events; a call's time is its batch's mean, and the median batch counts. Inputs are
 * random (never zeros, which run faster).
 *  - Copy: a grid-stride kernel moving 16 bytes per thread and step over COPY_BYTES;
 *    bandwidth = 2 * bytes / time, every byte being read once and written once.
 *  - GEMM: cuBLASLt "TN" as in the CUDA backend: D (col-major out x tokens) = W[out,in] .
 *    X[tokens,in]^T, i.e. Y[tokens,out] row-major; fp32 accumulation; fp16 in and out, or e4m3
 *    in with per-tensor scales of 1 and bf16 out, without fast accumulation (the engine's
 *    setting). Rate = 2 * tokens * out * in / time.
 * Self-tests, against a double-precision reference computed here on the very values the GPU
 * got (e4m3 codes, bf16-rounded inputs); error = max|gpu - ref| / max|ref|:
 *  - FP8 GEMM through the benchmark's own plan code, 256 tokens x 384 out x 512 in;
 *  - attention through the CUDA backend's op (be_cuda_create, bf16 precision, be_attention),
 *    2 heads of 128, 200 queries and 333 keys (neither a multiple of a tile).
 */
#include "health_probe.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_backend.h"

#define HP_WARMUP 2
#define HP_ITERS 5
#define HP_REPEATS 3
#define COPY_BYTES ((size_t)512 << 20)
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define MEMORY_MARGIN_BYTES ((size_t)256 << 20) /* left free beside what a check allocates */
#define SQUARE 8192
#define WAN_TOKENS 32760 /* 21 x 30 x 52 patches: 832x480, 81 frames */
#define WAN_DIM 1536
#define WAN_FFN 8960

/* Checked calls inside a function with `int rc`, `const char *what` and a `done:` label. */
#define HP_CUDA(call)                                                                                              \
    do {                                                                                                           \
        cudaError_t hp_e_ = (call);                                                                                \
        if (hp_e_ != cudaSuccess) {                                                                                \
            rc = au_errf(err, AU_EBACKEND, "%s: %s: %s (%s)", what, #call, cudaGetErrorString(hp_e_),             \
                         cudaGetErrorName(hp_e_));                                                                 \
            goto done;                                                                                             \
        }                                                                                                          \
    } while (0)
#define HP_LT(call)                                                                                                \
    do {                                                                                                           \
        cublasStatus_t hp_s_ = (call);                                                                             \
        if (hp_s_ != CUBLAS_STATUS_SUCCESS) {                                                                      \
            rc = au_errf(err, AU_EBACKEND, "%s: %s: %s (%s)", what, #call, cublasLtGetStatusString(hp_s_),        \
                         cublasLtGetStatusName(hp_s_));                                                            \
            goto done;                                                                                             \
        }                                                                                                          \
    } while (0)
#define HP_RC(expr)                                                                                                \
    do {                                                                                                           \
        rc = (expr);                                                                                               \
        if (rc < 0)                                                                                                \
            goto done;                                                                                             \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- facts ---- */

typedef int (*nvml_void_fn)(void);
typedef int (*nvml_version_fn)(char *, unsigned);

static void driver_version_read(hp_gpu_facts *f) {
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(f->driver_version_error, sizeof f->driver_version_error, "NVML: %s", why ? why : "not found");
        return;
    }
    nvml_void_fn init = (nvml_void_fn)dlsym(lib, "nvmlInit_v2");
    nvml_void_fn shutdown = (nvml_void_fn)dlsym(lib, "nvmlShutdown");
    nvml_version_fn version = (nvml_version_fn)dlsym(lib, "nvmlSystemGetDriverVersion");
    int rc;
    if (!init || !shutdown || !version)
        snprintf(f->driver_version_error, sizeof f->driver_version_error, "NVML: missing entry points");
    else if ((rc = init()) != 0)
        snprintf(f->driver_version_error, sizeof f->driver_version_error, "nvmlInit_v2: error %d", rc);
    else {
        if ((rc = version(f->driver_version, sizeof f->driver_version)) != 0) {
            f->driver_version[0] = '\0';
            snprintf(f->driver_version_error, sizeof f->driver_version_error,
                     "nvmlSystemGetDriverVersion: error %d", rc);
        }
        shutdown();
    }
    dlclose(lib);
}

static int facts_read(int device, hp_gpu_facts *f, au_err *err) {
    const char *what = "GPU facts";
    int rc = 0;
    cudaDeviceProp prop;
    size_t free_b = 0, total_b = 0;
    HP_CUDA(cudaSetDevice(device));
    HP_CUDA(cudaGetDeviceProperties(&prop, device));
    f->device = device;
    snprintf(f->name, sizeof f->name, "%s", prop.name);
    f->cc_major = prop.major;
    f->cc_minor = prop.minor;
    f->sm_count = prop.multiProcessorCount;
    HP_CUDA(cudaDeviceGetAttribute(&f->integrated, cudaDevAttrIntegrated, device));
    HP_CUDA(cudaDeviceGetAttribute(&f->pageable_memory_access, cudaDevAttrPageableMemoryAccess, device));
    HP_CUDA(cudaDeviceGetAttribute(&f->pageable_uses_host_page_tables,
                                   cudaDevAttrPageableMemoryAccessUsesHostPageTables, device));
    f->unified = f->integrated || f->pageable_uses_host_page_tables;
    HP_CUDA(cudaMemGetInfo(&free_b, &total_b));
    f->memory_total_bytes = total_b;
    f->memory_free_bytes = free_b;
    HP_CUDA(cudaRuntimeGetVersion(&f->runtime_version));
    HP_CUDA(cudaDriverGetVersion(&f->driver_api_version));
    driver_version_read(f);
done:
    return rc;
}

/* ---- shared bench state ---- */

typedef struct bench_ctx {
    cudaStream_t stream;
    cudaEvent_t ev0, ev1;
    cublasLtHandle_t lt;
    void *workspace;
    float *one; /* device 1.0f: the FP8 per-tensor scales */
} bench_ctx;

static void ctx_close(bench_ctx *c) {
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->lt)
        cublasLtDestroy(c->lt);
    cudaFree(c->workspace);
    cudaFree(c->one);
    if (c->ev0)
        cudaEventDestroy(c->ev0);
    if (c->ev1)
        cudaEventDestroy(c->ev1);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    memset(c, 0, sizeof *c);
}

static int ctx_open(bench_ctx *c, au_err *err) {
    const char *what = "benchmark set-up";
    int rc = 0;
    const float one = 1.0f;
    memset(c, 0, sizeof *c);
    HP_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    HP_CUDA(cudaEventCreate(&c->ev0));
    HP_CUDA(cudaEventCreate(&c->ev1));
    HP_LT(cublasLtCreate(&c->lt));
    HP_CUDA(cudaMalloc(&c->workspace, LT_WORKSPACE_BYTES));
    HP_CUDA(cudaMalloc((void **)&c->one, sizeof(float)));
    HP_CUDA(cudaMemcpyAsync(c->one, &one, sizeof one, cudaMemcpyHostToDevice, c->stream));
    HP_CUDA(cudaStreamSynchronize(c->stream));
done:
    if (rc)
        ctx_close(c);
    return rc;
}

/* AU_EBUSY (a SKIP, not a failure) when the GPU has less than bytes + margin free. */
static int need_memory(size_t bytes, const char *what, au_err *err) {
    size_t free_b = 0, total_b = 0;
    int rc = 0;
    HP_CUDA(cudaMemGetInfo(&free_b, &total_b));
    if (free_b < bytes + MEMORY_MARGIN_BYTES)
        rc = au_errf(err, AU_EBUSY, "%s needs %.2f GiB of GPU memory, %.2f GiB free", what,
                     (double)(bytes + MEMORY_MARGIN_BYTES) / (1 << 30), (double)free_b / (1 << 30));
done:
    return rc;
}

/* One call of the timed operation, queued on c->stream; 0 or a negative au_status. */
typedef int (*launch_fn)(bench_ctx *c, void *arg, au_err *err);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Milliseconds of one call: the median over HP_REPEATS batches of HP_ITERS calls. */
static int time_calls(bench_ctx *c, launch_fn launch, void *arg, const char *what, double *ms_out, au_err *err) {
    int rc = 0;
    double ms[HP_REPEATS];
    for (int i = 0; i < HP_WARMUP; i++)
        HP_RC(launch(c, arg, err));
    for (int r = 0; r < HP_REPEATS; r++) {
        float elapsed = 0.0f;
        HP_CUDA(cudaEventRecord(c->ev0, c->stream));
        for (int i = 0; i < HP_ITERS; i++)
            HP_RC(launch(c, arg, err));
        HP_CUDA(cudaEventRecord(c->ev1, c->stream));
        HP_CUDA(cudaEventSynchronize(c->ev1));
        HP_CUDA(cudaEventElapsedTime(&elapsed, c->ev0, c->ev1));
        ms[r] = (double)elapsed / HP_ITERS;
    }
    qsort(ms, HP_REPEATS, sizeof ms[0], cmp_double);
    *ms_out = ms[HP_REPEATS / 2];
done:
    return rc;
}

/* ---- random fill ---- */

__device__ static float hash_unit(size_t i, uint32_t seed) { /* uniform in [-1, 1) */
    uint32_t h = (uint32_t)i * 0x9E3779B1u ^ (uint32_t)(i >> 32) * 0x85EBCA77u ^ seed;
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    return (float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

__global__ static void fill_f16_kernel(__half *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2half(hash_unit(i, seed));
}

__global__ static void fill_e4m3_kernel(__nv_fp8_e4m3 *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __nv_fp8_e4m3(8.0f * hash_unit(i, seed));
}

static cudaError_t fill_random(bench_ctx *c, void *p, size_t n, int fp8, uint32_t seed) {
    if (fp8)
        fill_e4m3_kernel<<<1024, 256, 0, c->stream>>>((__nv_fp8_e4m3 *)p, n, seed);
    else
        fill_f16_kernel<<<1024, 256, 0, c->stream>>>((__half *)p, n, seed);
    return cudaGetLastError();
}

/* ---- copy bandwidth ---- */

__global__ static void copy16_kernel(const int4 *__restrict__ src, int4 *__restrict__ dst, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        int4 a = src[i], b = src[i + stride], d = src[i + 2 * stride], e = src[i + 3 * stride];
        dst[i] = a;
        dst[i + stride] = b;
        dst[i + 2 * stride] = d;
        dst[i + 3 * stride] = e;
    }
    for (; i < n; i += stride)
        dst[i] = src[i];
}

typedef struct copy_arg {
    const int4 *src;
    int4 *dst;
    size_t n16;
    int blocks;
} copy_arg;

static int copy_launch(bench_ctx *c, void *arg, au_err *err) {
    const char *what = "copy kernel";
    int rc = 0;
    copy_arg *a = (copy_arg *)arg;
    copy16_kernel<<<a->blocks, 256, 0, c->stream>>>(a->src, a->dst, a->n16);
    HP_CUDA(cudaGetLastError());
done:
    return rc;
}

static int bench_copy(bench_ctx *c, int sm_count, double *gbs, au_err *err) {
    const char *what = "copy benchmark";
    int rc = 0;
    void *src = NULL, *dst = NULL;
    copy_arg a;
    double ms = 0;
    HP_RC(need_memory(2 * COPY_BYTES, what, err));
    HP_CUDA(cudaMalloc(&src, COPY_BYTES));
    HP_CUDA(cudaMalloc(&dst, COPY_BYTES));
    HP_CUDA(fill_random(c, src, COPY_BYTES / 2, 0, 7));
    a.src = (const int4 *)src;
    a.dst = (int4 *)dst;
    a.n16 = COPY_BYTES / 16;
    a.blocks = sm_count * 8;
    HP_RC(time_calls(c, copy_launch, &a, what, &ms, err));
    *gbs = 2.0 * (double)COPY_BYTES / (ms * 1e-3) / 1e9;
done:
    cudaFree(src);
    cudaFree(dst);
    return rc;
}

/* ---- cuBLASLt GEMM ---- */

typedef struct gemm_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    const void *w, *x;
    void *y;
} gemm_plan;

static void plan_free(gemm_plan *p) {
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
    memset(p, 0, sizeof *p);
}

/* Y[tokens,out] = X[tokens,in] . W[out,in]^T, as cuBLASLt sees it: D (out x tokens, col-major)
 * = op(A) B with A = W stored in x out (transposed), B = X stored in x tokens. */
static int plan_make(bench_ctx *c, int fp8, int64_t tokens, int64_t out, int64_t in, gemm_plan *p, au_err *err) {
    const char *what = fp8 ? "FP8 GEMM plan" : "FP16 GEMM plan";
    int rc = 0, found = 0;
    cudaDataType_t ab = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16F, d = fp8 ? CUDA_R_16BF : CUDA_R_16F;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    uint64_t ws = LT_WORKSPACE_BYTES;
    HP_LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    HP_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    HP_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (fp8) {
        int8_t fast = 0;
        HP_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
        HP_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &c->one, sizeof c->one));
        HP_LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &c->one, sizeof c->one));
    }
    HP_LT(cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)in, (uint64_t)out, in));
    HP_LT(cublasLtMatrixLayoutCreate(&p->lb, ab, (uint64_t)in, (uint64_t)tokens, in));
    HP_LT(cublasLtMatrixLayoutCreate(&p->ld, d, (uint64_t)out, (uint64_t)tokens, out));
    HP_LT(cublasLtMatmulPreferenceCreate(&pref));
    HP_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    HP_LT(cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &heur, &found));
    if (found < 1) {
        rc = au_errf(err, AU_EUNSUPPORTED, "%s: cuBLASLt has no algorithm for %lldx%lldx%lld", what,
                     (long long)tokens, (long long)out, (long long)in);
        goto done;
    }
    p->algo = heur.algo;
done:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (rc)
        plan_free(p);
    return rc;
}

static int gemm_launch(bench_ctx *c, void *arg, au_err *err) {
    const char *what = "GEMM";
    int rc = 0;
    gemm_plan *p = (gemm_plan *)arg;
    const float alpha = 1.0f, beta = 0.0f;
    HP_LT(cublasLtMatmul(c->lt, p->desc, &alpha, p->w, p->la, p->x, p->lb, &beta, p->y, p->ld, p->y, p->ld, &p->algo,
                         c->workspace, LT_WORKSPACE_BYTES, c->stream));
done:
    return rc;
}

static int bench_gemm(bench_ctx *c, hp_gemm *g, au_err *err) {
    const char *what = g->fp8 ? "FP8 GEMM benchmark" : "FP16 GEMM benchmark";
    int rc = 0;
    size_t in_size = g->fp8 ? 1 : 2, w_n = (size_t)(g->n * g->k), x_n = (size_t)(g->m * g->k),
           y_n = (size_t)(g->m * g->n);
    gemm_plan p;
    void *w = NULL, *x = NULL, *y = NULL;
    memset(&p, 0, sizeof p);
    HP_RC(need_memory((w_n + x_n) * in_size + y_n * 2, what, err));
    HP_CUDA(cudaMalloc(&w, w_n * in_size));
    HP_CUDA(cudaMalloc(&x, x_n * in_size));
    HP_CUDA(cudaMalloc(&y, y_n * 2));
    HP_CUDA(fill_random(c, w, w_n, g->fp8, 11));
    HP_CUDA(fill_random(c, x, x_n, g->fp8, 13));
    HP_RC(plan_make(c, g->fp8, g->m, g->n, g->k, &p, err));
    p.w = w;
    p.x = x;
    p.y = y;
    HP_RC(time_calls(c, gemm_launch, &p, what, &g->ms, err));
    g->tflops = 2.0 * (double)g->m * (double)g->n * (double)g->k / (g->ms * 1e-3) / 1e12;
done:
    plan_free(&p);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    return rc;
}

/* ---- self-tests ---- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_unit(uint64_t *s) { /* [-1, 1) */
    return (float)(rng_next(s) >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

static int fp8_selftest(bench_ctx *c, double *rel, au_err *err) {
    const char *what = "FP8 GEMM self-test";
    const int64_t tokens = 256, out = 384, in = 512;
    int rc = 0;
    uint64_t seed = 0x243F6A8885A308D3ull;
    uint8_t *hw = (uint8_t *)malloc((size_t)(out * in)), *hx = (uint8_t *)malloc((size_t)(tokens * in));
    uint16_t *hy = (uint16_t *)malloc((size_t)(tokens * out) * 2);
    double max_err = 0, max_ref = 0;
    gemm_plan p;
    void *w = NULL, *x = NULL, *y = NULL;
    memset(&p, 0, sizeof p);
    if (!hw || !hx || !hy) {
        rc = au_errf(err, AU_ENOMEM, "%s: out of host memory", what);
        goto done;
    }
    for (int64_t i = 0; i < out * in; i++)
        hw[i] = au_f32_to_f8e4m3(4.0f * rng_unit(&seed));
    for (int64_t i = 0; i < tokens * in; i++)
        hx[i] = au_f32_to_f8e4m3(4.0f * rng_unit(&seed));
    HP_CUDA(cudaMalloc(&w, (size_t)(out * in)));
    HP_CUDA(cudaMalloc(&x, (size_t)(tokens * in)));
    HP_CUDA(cudaMalloc(&y, (size_t)(tokens * out) * 2));
    /* everything on c->stream, which does not synchronise with the legacy default stream */
    HP_CUDA(cudaMemcpyAsync(w, hw, (size_t)(out * in), cudaMemcpyHostToDevice, c->stream));
    HP_CUDA(cudaMemcpyAsync(x, hx, (size_t)(tokens * in), cudaMemcpyHostToDevice, c->stream));
    HP_CUDA(cudaMemsetAsync(y, 0xff, (size_t)(tokens * out) * 2, c->stream)); /* NaN: unwritten output fails */
    HP_RC(plan_make(c, 1, tokens, out, in, &p, err));
    p.w = w;
    p.x = x;
    p.y = y;
    HP_RC(gemm_launch(c, &p, err));
    HP_CUDA(cudaMemcpyAsync(hy, y, (size_t)(tokens * out) * 2, cudaMemcpyDeviceToHost, c->stream));
    HP_CUDA(cudaStreamSynchronize(c->stream));
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t o = 0; o < out; o++) {
            double ref = 0;
            for (int64_t i = 0; i < in; i++)
                ref += (double)au_f8e4m3_to_f32(hx[t * in + i]) * (double)au_f8e4m3_to_f32(hw[o * in + i]);
            double got = au_bf16_to_f32(hy[t * out + o]);
            double e = fabs(got - ref);
            max_err = isnan(e) || e > max_err ? e : max_err;
            max_ref = fabs(ref) > max_ref ? fabs(ref) : max_ref;
        }
    *rel = max_ref > 0 ? max_err / max_ref : max_err;
done:
    plan_free(&p);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    free(hw);
    free(hx);
    free(hy);
    return rc;
}

static void round_bf16(float *v, int64_t n, uint16_t *bits) {
    for (int64_t i = 0; i < n; i++) {
        bits[i] = au_f32_to_bf16(v[i]);
        v[i] = au_bf16_to_f32(bits[i]);
    }
}

static int attention_selftest(int device, double *rel, au_err *err) {
    enum { H = 2, D = 128, NQ = 200, NK = 333 };
    const int64_t cols = H * D, sq[2] = {NQ, cols}, sk[2] = {NK, cols};
    const float scale = 1.0f / sqrtf((float)D);
    int rc = 0;
    uint64_t seed = 0x13198A2E03707344ull;
    au_backend *be = NULL;
    au_arena *arena = NULL;
    au_tensor q, k, v, o;
    be_cuda_opts opts = {device, BE_CUDA_BF16};
    float *fq = (float *)malloc(sizeof(float) * NQ * cols), *fk = (float *)malloc(sizeof(float) * NK * cols),
          *fv = (float *)malloc(sizeof(float) * NK * cols);
    uint16_t *bq = (uint16_t *)malloc(2 * NQ * cols), *bk = (uint16_t *)malloc(2 * NK * cols),
             *bv = (uint16_t *)malloc(2 * NK * cols), *bo = (uint16_t *)malloc(2 * NQ * cols);
    double *p = (double *)malloc(sizeof(double) * NK), max_err = 0, max_ref = 0;
    if (!fq || !fk || !fv || !bq || !bk || !bv || !bo || !p) {
        rc = au_errf(err, AU_ENOMEM, "out of host memory");
        goto done;
    }
    for (int64_t i = 0; i < NQ * cols; i++)
        fq[i] = 2.0f * rng_unit(&seed);
    for (int64_t i = 0; i < NK * cols; i++) {
        fk[i] = rng_unit(&seed);
        fv[i] = rng_unit(&seed);
    }
    round_bf16(fq, NQ * cols, bq);
    round_bf16(fk, NK * cols, bk);
    round_bf16(fv, NK * cols, bv);
    memset(bo, 0xff, 2 * NQ * cols); /* NaN: an unwritten output fails */
    HP_RC(be_cuda_create(&be, &opts, err));
    arena = be_arena_create(be, (size_t)4 << 20);
    if (!arena) {
        rc = au_errf(err, AU_ENOMEM, "no memory for an arena");
        goto done;
    }
    HP_RC(be_arena_tensor(arena, AU_BF16, 2, sq, &q, err));
    HP_RC(be_arena_tensor(arena, AU_BF16, 2, sk, &k, err));
    HP_RC(be_arena_tensor(arena, AU_BF16, 2, sk, &v, err));
    HP_RC(be_arena_tensor(arena, AU_BF16, 2, sq, &o, err));
    HP_RC(be_upload(be, &q, bq, err));
    HP_RC(be_upload(be, &k, bk, err));
    HP_RC(be_upload(be, &v, bv, err));
    HP_RC(be_upload(be, &o, bo, err));
    HP_RC(be_attention(be, &o, &q, &k, &v, H, scale, NULL, 1, err));
    HP_RC(be_download(be, bo, &o, err));
    HP_RC(be_sync(be, err));
    for (int h = 0; h < H; h++)
        for (int i = 0; i < NQ; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < NK; j++) {
                double s = 0;
                for (int d = 0; d < D; d++)
                    s += (double)fq[i * cols + h * D + d] * (double)fk[j * cols + h * D + d];
                p[j] = s * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j < NK; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int d = 0; d < D; d++) {
                double ref = 0;
                for (int j = 0; j < NK; j++)
                    ref += p[j] * (double)fv[j * cols + h * D + d];
                ref /= sum;
                double e = fabs((double)au_bf16_to_f32(bo[i * cols + h * D + d]) - ref);
                max_err = isnan(e) || e > max_err ? e : max_err;
                max_ref = fabs(ref) > max_ref ? fabs(ref) : max_ref;
            }
        }
    *rel = max_ref > 0 ? max_err / max_ref : max_err;
done:
    if (rc)
        au_err_prefix(err, "attention self-test");
    if (arena)
        be_arena_destroy(arena);
    if (be)
        be_destroy(be);
    free(fq);
    free(fk);
    free(fv);
    free(bq);
    free(bk);
    free(bv);
    free(bo);
    free(p);
    return rc;
}

/* ---- the run ---- */

/* A check's outcome from a step's return code: measured, SKIP (not enough memory) or FAIL. */
static void settle(hp_check *c, int rc, double value, const au_err *err) {
    if (rc == 0)
        hp_check_judge(c, value);
    else if (rc == AU_EBUSY)
        hp_check_skip(c, err->msg);
    else
        hp_check_fail(c, err->msg);
}

/* Time the shapes gemms[first..first+n) and judge check c with their combined rate. */
static void gemm_check(bench_ctx *ctx, hp_gemm *gemms, int n, hp_check *c) {
    au_err e;
    double flops = 0, ms = 0;
    int rc = 0;
    au_err_clear(&e);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = bench_gemm(ctx, &gemms[i], &e);
        double weight = gemms[i].per_block ? gemms[i].per_block : 1;
        flops += weight * 2.0 * (double)gemms[i].m * (double)gemms[i].n * (double)gemms[i].k;
        ms += weight * gemms[i].ms;
    }
    settle(c, rc, rc == 0 ? flops / (ms * 1e-3) / 1e12 : 0, &e);
}

static void add_gemm(hp_gpu_report *r, const char *name, int fp8, int64_t m, int64_t n, int64_t k, int per_block) {
    hp_gemm *g = &r->gemms[r->n_gemms++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->fp8 = fp8;
    g->m = m;
    g->n = n;
    g->k = k;
    g->per_block = per_block;
}

int hp_gpu_run(int device, const hp_thresholds *t, hp_gate_fn gate, void *user, hp_gpu_report *out, au_err *err) {
    if (!t || !out)
        return au_errf(err, AU_EINVAL, "hp_gpu_run: NULL thresholds or report");
    double t0 = now_s();
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    char why[512];
    bench_ctx ctx;
    au_err e;
    au_err_clear(&e);
    if (ce != cudaSuccess || count == 0 || device < 0 || device >= count) {
        if (ce != cudaSuccess)
            snprintf(why, sizeof why, "no GPU: cudaGetDeviceCount: %s", cudaGetErrorString(ce));
        else
            snprintf(why, sizeof why, "no GPU: device %d requested, %d present", device, count);
        hp_gpu_report_init(out, t, why);
        out->seconds = now_s() - t0;
        return 0;
    }
    hp_gpu_report_init(out, t, "");
    out->facts.device_count = count;
    if (facts_read(device, &out->facts, &e) != 0) {
        hp_gpu_report_init(out, t, e.msg);
        out->facts.device_count = count;
        out->seconds = now_s() - t0;
        return 0;
    }
    out->available = 1;
    hp_check *c = out->checks;
    if (ctx_open(&ctx, &e) != 0) {
        for (int i = 0; i < HP_N_CHECKS; i++)
            hp_check_fail(&c[i], e.msg);
        out->seconds = now_s() - t0;
        return 0;
    }
    add_gemm(out, "square", 0, SQUARE, SQUARE, SQUARE, 0);
    add_gemm(out, "wan13b_qkvo", 0, WAN_TOKENS, WAN_DIM, WAN_DIM, 6);
    add_gemm(out, "wan13b_ffn_up", 0, WAN_TOKENS, WAN_FFN, WAN_DIM, 1);
    add_gemm(out, "wan13b_ffn_down", 0, WAN_TOKENS, WAN_DIM, WAN_FFN, 1);
    for (int i = 0; i < 4; i++) {
        out->gemms[4 + i] = out->gemms[i];
        out->gemms[4 + i].fp8 = 1;
    }
    out->n_gemms = 8;
    snprintf(c[HP_CHECK_BANDWIDTH].detail, sizeof c[0].detail, "copy kernel over %zu MiB, 2 bytes moved per byte",
             COPY_BYTES >> 20);
    snprintf(c[HP_CHECK_GEMM_FP16].detail, sizeof c[0].detail, "cuBLASLt %dx%dx%d fp16 -> fp16", SQUARE, SQUARE,
             SQUARE);
    snprintf(c[HP_CHECK_GEMM_FP8].detail, sizeof c[0].detail, "cuBLASLt %dx%dx%d e4m3 -> bf16", SQUARE, SQUARE,
             SQUARE);
    snprintf(c[HP_CHECK_GEMM_FP16_WAN].detail, sizeof c[0].detail,
             "%d tokens: 6x %dx%d, %dx%d, %dx%d per block, fp16", WAN_TOKENS, WAN_DIM, WAN_DIM, WAN_DIM, WAN_FFN,
             WAN_FFN, WAN_DIM);
    snprintf(c[HP_CHECK_GEMM_FP8_WAN].detail, sizeof c[0].detail,
             "%d tokens: 6x %dx%d, %dx%d, %dx%d per block, e4m3", WAN_TOKENS, WAN_DIM, WAN_DIM, WAN_DIM, WAN_FFN,
             WAN_FFN, WAN_DIM);
    snprintf(c[HP_CHECK_FP8_SELFTEST].detail, sizeof c[0].detail,
             "256x384x512 e4m3 -> bf16 vs double, max|err| / max|ref|");
    snprintf(c[HP_CHECK_ATTN_SELFTEST].detail, sizeof c[0].detail,
             "be_attention bf16, 2 heads of 128, 200 queries, 333 keys vs double, max|err| / max|ref|");
    for (int i = 0; i < HP_N_CHECKS; i++) {
        char stop[512] = "";
        if (gate && gate(user, stop, sizeof stop) != 0) {
            for (int j = i; j < HP_N_CHECKS; j++)
                hp_check_skip(&c[j], stop);
            break;
        }
        double value = 0;
        int rc = 0;
        au_err_clear(&e);
        switch (i) {
        case HP_CHECK_BANDWIDTH:
            rc = bench_copy(&ctx, out->facts.sm_count, &value, &e);
            settle(&c[i], rc, value, &e);
            break;
        case HP_CHECK_GEMM_FP16: gemm_check(&ctx, &out->gemms[0], 1, &c[i]); break;
        case HP_CHECK_GEMM_FP16_WAN: gemm_check(&ctx, &out->gemms[1], 3, &c[i]); break;
        case HP_CHECK_GEMM_FP8: gemm_check(&ctx, &out->gemms[4], 1, &c[i]); break;
        case HP_CHECK_GEMM_FP8_WAN: gemm_check(&ctx, &out->gemms[5], 3, &c[i]); break;
        case HP_CHECK_FP8_SELFTEST:
            rc = fp8_selftest(&ctx, &value, &e);
            settle(&c[i], rc, value, &e);
            break;
        case HP_CHECK_ATTN_SELFTEST:
            rc = attention_selftest(device, &value, &e);
            settle(&c[i], rc, value, &e);
            break;
        }
    }
    ctx_close(&ctx);
    out->seconds = now_s() - t0;
    return 0;
}
