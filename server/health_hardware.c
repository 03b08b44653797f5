/* health_hardware.c - this node's hardware as the per-node part of a /health rank entry
 * (health.h), gathered on demand: what a worker sends when it joins the cluster, so rank 0
 * can show every rank in its report.
 *
 * Only facts, never a benchmark: the GPU probe is stopped by its gate before the first check,
 * so it costs the device query and no GPU time, and may run while a job generates.
 */
#include <stdio.h>
#include <stdlib.h>

#include "health.h"

/* The GPU probe serve uses for its own rank (health_service_start). */
#define HARDWARE_GPU_DEVICE 0

#ifdef AU_HAVE_CUDA
/* hp_gate_fn that stops before the first benchmark. */
static int facts_only(void *user, char *reason, size_t cap) {
    snprintf(reason, cap, "not measured: hardware facts only");
    return 1;
}
#endif

static void probe_gpu_facts(hp_gpu_report *gpu) {
    hp_thresholds t;
    hp_thresholds_default(&t);
#ifdef AU_HAVE_CUDA
    au_err e;
    if (hp_gpu_run(HARDWARE_GPU_DEVICE, &t, facts_only, NULL, gpu, &e) != 0)
        hp_gpu_report_init(gpu, &t, e.msg);
#else
    hp_gpu_report_init(gpu, &t, "no GPU: this build has no CUDA backend");
#endif
}

json_t *health_local_hardware_json(const char *backend, int precision) {
    health_host *host = calloc(1, sizeof *host);
    hp_gpu_report *gpu = calloc(1, sizeof *gpu);
    json_t *o = NULL;
    if (host && gpu) {
        au_err e;
        int host_ok = health_probe_host(host, "/sys/class", &e) == 0;
        probe_gpu_facts(gpu);
        o = health_hardware_json(host, host_ok ? NULL : e.msg, gpu, backend,
                                 health_precision_of(backend, (au_precision)precision));
    }
    free(host);
    free(gpu);
    return o;
}
