// deps: au_cuda au_core
/* test_health_probe.c - the GPU part of the /health report on a real GPU (kernels/health_probe.h):
 * facts are read, every check is measured (no SKIP) and judged, both self-tests pass their
 * thresholds, the eight GEMM shapes are timed, the gate is asked before each check, and a gate
 * that says stop leaves the remaining checks SKIP with its reason. Skipped without a GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_backend.h"
#include "kernels/health_probe.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
        }                                                                                                    \
    } while (0)

typedef struct gate_state {
    int calls;
    int stop_at; /* the call that says stop (1-based), 0 = never */
} gate_state;

static int counting_gate(void *user, char *reason, size_t cap) {
    gate_state *g = user;
    g->calls++;
    if (g->stop_at && g->calls == g->stop_at) {
        snprintf(reason, cap, "stopped by the test");
        return 1;
    }
    return 0;
}

int main(void) {
    if (be_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    hp_thresholds t;
    hp_gpu_report *r = malloc(sizeof *r);
    au_err err;
    gate_state g = {0, 0};
    hp_thresholds_default(&t);
    CHECK(hp_gpu_run(0, NULL, NULL, NULL, r, &err) == AU_EINVAL, "NULL thresholds accepted");
    CHECK(hp_gpu_run(0, &t, counting_gate, &g, r, &err) == 0, "%s", err.msg);
    CHECK(r->available, "no GPU found: %s", r->reason);
    CHECK(g.calls == HP_N_CHECKS, "gate asked %d times", g.calls);
    const hp_gpu_facts *f = &r->facts;
    printf("%s, cc %d.%d, %d SMs, %.1f of %.1f GiB free, %s, driver %s, runtime %d, driver API %d, %.2f s\n",
           f->name, f->cc_major, f->cc_minor, f->sm_count, f->memory_free_bytes / 1073741824.0,
           f->memory_total_bytes / 1073741824.0, f->unified ? "unified" : "discrete",
           f->driver_version[0] ? f->driver_version : f->driver_version_error, f->runtime_version,
           f->driver_api_version, r->seconds);
    CHECK(f->name[0] && f->sm_count > 0 && f->cc_major >= 7, "facts: %s, %d SMs", f->name, f->sm_count);
    CHECK(f->memory_total_bytes > 0 && f->memory_free_bytes <= f->memory_total_bytes, "memory");
    CHECK(f->runtime_version >= 12000 && f->driver_api_version >= f->runtime_version, "versions %d %d",
          f->runtime_version, f->driver_api_version);
    for (int i = 0; i < HP_N_CHECKS; i++) {
        const hp_check *c = &r->checks[i];
        printf("  %-20s %10.4g %-8s %s  %s\n", c->name, c->value, c->unit, hp_status_name(c->status),
               c->reason);
        CHECK(c->measured && c->status != HP_SKIP, "%s not measured: %s", c->name, c->reason);
        CHECK(c->value > 0, "%s value %g", c->name, c->value);
    }
    CHECK(r->checks[HP_CHECK_FP8_SELFTEST].status == HP_PASS, "FP8 GEMM self-test: %s",
          r->checks[HP_CHECK_FP8_SELFTEST].reason);
    CHECK(r->checks[HP_CHECK_ATTN_SELFTEST].status == HP_PASS, "attention self-test: %s",
          r->checks[HP_CHECK_ATTN_SELFTEST].reason);
    CHECK(r->n_gemms == 8, "%d GEMM shapes", r->n_gemms);
    for (int i = 0; i < r->n_gemms; i++) {
        const hp_gemm *m = &r->gemms[i];
        printf("  gemm %-16s %s %lldx%lldx%lld: %.3f ms, %.1f TFLOP/s\n", m->name, m->fp8 ? "fp8 " : "fp16",
               (long long)m->m, (long long)m->n, (long long)m->k, m->ms, m->tflops);
        CHECK(m->ms > 0 && m->tflops > 0, "gemm %s not timed", m->name);
    }

    /* a gate that stops at the third check */
    gate_state stop = {0, 3};
    CHECK(hp_gpu_run(0, &t, counting_gate, &stop, r, &err) == 0, "%s", err.msg);
    CHECK(stop.calls == 3, "gate asked %d times after saying stop", stop.calls);
    CHECK(r->checks[0].measured && r->checks[1].measured, "checks before the stop measured");
    for (int i = 2; i < HP_N_CHECKS; i++)
        CHECK(r->checks[i].status == HP_SKIP && strcmp(r->checks[i].reason, "stopped by the test") == 0,
              "%s after the stop: %s %s", r->checks[i].name, hp_status_name(r->checks[i].status),
              r->checks[i].reason);
    free(r);
    if (failures) {
        fprintf(stderr, "test_health_probe: %d checks failed\n", failures);
        return 1;
    }
    printf("test_health_probe: ok\n");
    return 0;
}
