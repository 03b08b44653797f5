/* health_probe.h - the GPU part of the /health report: facts about the GPU, three benchmarks
 * and two self-tests, each judged against a threshold (kernels/health_probe.cu).
 *
 * Checks (names as they appear in the report; value >= threshold passes for rates, value <=
 * threshold for errors):
 *   memory_bandwidth     GB/s     copy kernel, bytes read + bytes written per second
 *   gemm_fp16            TFLOP/s  cuBLASLt 8192^3, fp16 in and out, fp32 accumulation
 *   gemm_fp16_wan13b     TFLOP/s  the Wan2.1-1.3B linear shapes at 832x480x81 (below)
 *   gemm_fp8             TFLOP/s  cuBLASLt 8192^3, e4m3 in, bf16 out (the engine's FP8 route)
 *   gemm_fp8_wan13b      TFLOP/s  the Wan2.1-1.3B shapes in FP8
 *   fp8_gemm_selftest    ratio    FP8 GEMM against a CPU reference on the same e4m3 values
 *   attention_selftest   ratio    the CUDA backend's attention against a CPU reference
 * Errors are max|gpu - ref| / max|ref| over the output. The model-shape rate is the time-
 * weighted rate of one DiT block's big linears at 32760 tokens: q, k, v, o of self-attention
 * and q, o of cross-attention (1536 -> 1536, 6 per block), FFN up (1536 -> 8960) and down
 * (8960 -> 1536), i.e. total flops over total time.
 * Defaults come from the hardware report of the GB10 pair (bandwidth 107.5 GB/s measured vs
 * 80 required, FP16 GEMM 59.6 TFLOP/s vs 10).
 *
 * The types and the inline helpers below need no CUDA, so the service can describe an
 * unmeasured GPU (a CPU-only build) with the same check names; hp_gpu_run exists only when
 * au_cuda is built (AU_HAVE_CUDA).
 */
#ifndef AU_HEALTH_PROBE_H
#define AU_HEALTH_PROBE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "status.h"

typedef enum hp_status { HP_PASS = 0, HP_FAIL = 1, HP_SKIP = 2 } hp_status;

static inline const char *hp_status_name(hp_status s) {
    return s == HP_PASS ? "PASS" : s == HP_FAIL ? "FAIL" : "SKIP";
}

/* One line of the report. */
typedef struct hp_check {
    char name[40];
    char unit[16]; /* "GB/s", "TFLOP/s", "ms", "GB"; "" for a ratio */
    int measured;  /* value holds a measurement */
    double value;
    int has_threshold;
    double threshold;
    int higher_is_better; /* pass when value >= threshold (else value <= threshold) */
    hp_status status;
    char reason[512]; /* why it passed, failed or was skipped */
    char detail[160]; /* how it was measured */
} hp_check;

/* Start a check: unmeasured, SKIP, no reason yet. threshold NAN = none. */
static inline void hp_check_init(hp_check *c, const char *name, const char *unit, double threshold,
                                 int higher_is_better) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->unit, sizeof c->unit, "%s", unit);
    c->has_threshold = !isnan(threshold);
    c->threshold = threshold;
    c->higher_is_better = higher_is_better;
    c->status = HP_SKIP;
}

static inline void hp_check_skip(hp_check *c, const char *reason) {
    c->status = HP_SKIP;
    c->measured = 0;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
}

static inline void hp_check_fail(hp_check *c, const char *reason) {
    c->status = HP_FAIL;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
}

/* Record a measurement and judge it against the threshold (PASS when there is none). */
static inline void hp_check_judge(hp_check *c, double value) {
    c->measured = 1;
    c->value = value;
    if (isnan(value)) {
        hp_check_fail(c, "the measurement is NaN");
        return;
    }
    if (!c->has_threshold) {
        c->status = HP_PASS;
        snprintf(c->reason, sizeof c->reason, "measured");
        return;
    }
    int ok = c->higher_is_better ? value >= c->threshold : value <= c->threshold;
    const char *sep = c->unit[0] ? " " : "";
    c->status = ok ? HP_PASS : HP_FAIL;
    if (ok)
        snprintf(c->reason, sizeof c->reason, "%.4g%s%s, %s %.4g%s%s", value, sep, c->unit,
                 c->higher_is_better ? "at least" : "at most", c->threshold, sep, c->unit);
    else
        snprintf(c->reason, sizeof c->reason, "%.4g%s%s, %s %.4g%s%s", value, sep, c->unit,
                 c->higher_is_better ? "below the minimum of" : "above the maximum of", c->threshold, sep,
                 c->unit);
}

typedef struct hp_thresholds {
    double memory_bandwidth_gbs;  /* 80 */
    double gemm_fp16_tflops;      /* 10, for the square and the model shapes */
    double gemm_fp8_tflops;       /* 10 */
    double fp8_gemm_max_rel_err;  /* 0.01: bf16 output rounding is 2^-9 */
    double attention_max_rel_err; /* 0.02: bf16 inputs, probabilities and output */
} hp_thresholds;

static inline void hp_thresholds_default(hp_thresholds *t) {
    t->memory_bandwidth_gbs = 80.0;
    t->gemm_fp16_tflops = 10.0;
    t->gemm_fp8_tflops = 10.0;
    t->fp8_gemm_max_rel_err = 0.01;
    t->attention_max_rel_err = 0.02;
}

enum {
    HP_CHECK_BANDWIDTH = 0,
    HP_CHECK_GEMM_FP16,
    HP_CHECK_GEMM_FP16_WAN,
    HP_CHECK_GEMM_FP8,
    HP_CHECK_GEMM_FP8_WAN,
    HP_CHECK_FP8_SELFTEST,
    HP_CHECK_ATTN_SELFTEST,
    HP_N_CHECKS
};

typedef struct hp_gpu_facts {
    int device_count;
    int device; /* the ordinal probed */
    char name[256];
    int cc_major, cc_minor, sm_count;
    uint64_t memory_total_bytes, memory_free_bytes;
    int integrated;                     /* cudaDevAttrIntegrated */
    int pageable_memory_access;         /* cudaDevAttrPageableMemoryAccess */
    int pageable_uses_host_page_tables; /* cudaDevAttrPageableMemoryAccessUsesHostPageTables */
    int unified; /* memory shared with the host: integrated, or reached through its page tables */
    int runtime_version, driver_api_version; /* 13000 = 13.0 */
    char driver_version[64];                 /* "580.159.04" (NVML); "" when unknown */
    char driver_version_error[160];          /* why it is unknown */
} hp_gpu_facts;

/* One timed GEMM shape. */
typedef struct hp_gemm {
    char name[24];   /* "square", "wan13b_qkvo", "wan13b_ffn_up", "wan13b_ffn_down" */
    int fp8;         /* 0: fp16 -> fp16; 1: e4m3 -> bf16 */
    int64_t m, n, k; /* tokens, out features, in features */
    int per_block;   /* occurrences per DiT block (model shapes), 0 for the square */
    double ms;       /* one product, median of the timed batches */
    double tflops;
} hp_gemm;

#define HP_MAX_GEMMS 8

typedef struct hp_gpu_report {
    int available;    /* a GPU was found and its facts read */
    char reason[512]; /* why not */
    hp_gpu_facts facts;
    hp_gemm gemms[HP_MAX_GEMMS];
    int n_gemms;
    hp_check checks[HP_N_CHECKS];
    double seconds; /* wall time of hp_gpu_run */
} hp_gpu_report;

/* Every check unmeasured and SKIP with reason (no GPU, a build without CUDA, ...). */
static inline void hp_gpu_report_init(hp_gpu_report *r, const hp_thresholds *t, const char *reason) {
    memset(r, 0, sizeof *r);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    hp_check *c = r->checks;
    hp_check_init(&c[HP_CHECK_BANDWIDTH], "memory_bandwidth", "GB/s", t->memory_bandwidth_gbs, 1);
    hp_check_init(&c[HP_CHECK_GEMM_FP16], "gemm_fp16", "TFLOP/s", t->gemm_fp16_tflops, 1);
    hp_check_init(&c[HP_CHECK_GEMM_FP16_WAN], "gemm_fp16_wan13b", "TFLOP/s", t->gemm_fp16_tflops, 1);
    hp_check_init(&c[HP_CHECK_GEMM_FP8], "gemm_fp8", "TFLOP/s", t->gemm_fp8_tflops, 1);
    hp_check_init(&c[HP_CHECK_GEMM_FP8_WAN], "gemm_fp8_wan13b", "TFLOP/s", t->gemm_fp8_tflops, 1);
    hp_check_init(&c[HP_CHECK_FP8_SELFTEST], "fp8_gemm_selftest", "", t->fp8_gemm_max_rel_err, 0);
    hp_check_init(&c[HP_CHECK_ATTN_SELFTEST], "attention_selftest", "", t->attention_max_rel_err, 0);
    for (int i = 0; i < HP_N_CHECKS; i++)
        hp_check_skip(&c[i], reason);
}

/* Called before each benchmark and self-test: 0 to go on, non-zero to stop, with the reason
 * written into `reason` (the remaining checks become SKIP with it). It may block: the
 * service waits there until no job is generating. */
typedef int (*hp_gate_fn)(void *user, char *reason, size_t cap);

#ifdef AU_HAVE_CUDA
/* Probe GPU `device`: facts, then every check in the order above, each preceded by gate
 * (NULL = none). Without a usable GPU: available = 0, every check SKIP "no GPU: ...". A CUDA,
 * cuBLASLt or allocation failure inside a check makes that check FAIL with the library's
 * message; a check that needs more free GPU memory than there is becomes SKIP.
 * Returns 0, or AU_EINVAL for a NULL argument (err filled). */
int hp_gpu_run(int device, const hp_thresholds *t, hp_gate_fn gate, void *user, hp_gpu_report *out,
               au_err *err);
#endif

#ifdef __cplusplus
}
#endif

#endif
