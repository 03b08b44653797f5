// deps: au_cuda au_core
/* bench_health.c - the GPU part of the /health report without the service: hp_gpu_run on one
 * GPU with the default thresholds, printed as JSON on stdout with the field names of the
 * report's rank object (server/health.c): {"gpu": {...}, "gemm": [...], "checks": [...],
 * "gpu_seconds": s}. For machines where the service does not build (no libmicrohttpd or
 * FFmpeg); bench/health_device.sh runs it beside bench/torch_health.py.
 * Usage: bench_health [DEVICE]. Exit 0 when every check passed, 1 otherwise.
 */
#include "kernels/health_probe.h"

#include <stdio.h>
#include <stdlib.h>

static void put_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* A string field, null when empty. */
static void put_opt(const char *s) {
    if (s[0])
        put_str(s);
    else
        printf("null");
}

static void put_version(int v) {
    printf("\"%d.%d\"", v / 1000, (v % 1000) / 10);
}

static void put_gpu(const hp_gpu_report *r) {
    const hp_gpu_facts *f = &r->facts;
    printf("  \"gpu\": {\"available\": %s, \"reason\": ", r->available ? "true" : "false");
    put_opt(r->reason);
    if (!r->available) {
        printf("},\n");
        return;
    }
    printf(", \"device\": %d, \"device_count\": %d, \"name\": ", f->device, f->device_count);
    put_str(f->name);
    printf(", \"compute_capability\": \"%d.%d\", \"sm_count\": %d,\n", f->cc_major, f->cc_minor, f->sm_count);
    printf("          \"memory_total_bytes\": %llu, \"memory_free_bytes\": %llu, \"memory\": \"%s\",\n",
           (unsigned long long)f->memory_total_bytes, (unsigned long long)f->memory_free_bytes,
           f->unified ? "unified" : "discrete");
    printf("          \"integrated\": %s, \"pageable_memory_access\": %s, "
           "\"pageable_memory_uses_host_page_tables\": %s,\n",
           f->integrated ? "true" : "false", f->pageable_memory_access ? "true" : "false",
           f->pageable_uses_host_page_tables ? "true" : "false");
    printf("          \"driver_version\": ");
    put_opt(f->driver_version);
    printf(", \"driver_version_error\": ");
    put_opt(f->driver_version_error);
    printf(", \"cuda_runtime_version\": ");
    put_version(f->runtime_version);
    printf(", \"cuda_driver_api_version\": ");
    put_version(f->driver_api_version);
    printf("},\n");
}

int main(int argc, char **argv) {
    int device = argc > 1 ? atoi(argv[1]) : 0;
    hp_thresholds t;
    hp_gpu_report r;
    au_err err;
    hp_thresholds_default(&t);
    if (hp_gpu_run(device, &t, NULL, NULL, &r, &err) != 0) {
        fprintf(stderr, "bench_health: %s\n", err.msg);
        return 1;
    }
    printf("{\n");
    put_gpu(&r);
    printf("  \"gemm\": [");
    for (int i = 0; i < r.n_gemms; i++) {
        const hp_gemm *g = &r.gemms[i];
        printf("%s\n    {\"name\": \"%s\", \"precision\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, "
               "\"per_block\": %d, \"ms\": %.4f, \"tflops\": %.2f}",
               i ? "," : "", g->name, g->fp8 ? "fp8" : "fp16", (long long)g->m, (long long)g->n,
               (long long)g->k, g->per_block, g->ms, g->tflops);
    }
    printf("\n  ],\n  \"checks\": [");
    int all_pass = 1;
    for (int i = 0; i < HP_N_CHECKS; i++) {
        const hp_check *c = &r.checks[i];
        all_pass &= c->status == HP_PASS;
        printf("%s\n    {\"name\": \"%s\", \"value\": ", i ? "," : "", c->name);
        if (c->measured)
            printf("%.6g", c->value);
        else
            printf("null");
        printf(", \"unit\": \"%s\", \"threshold\": ", c->unit);
        if (c->has_threshold)
            printf("%.6g, \"comparison\": \"%s\"", c->threshold, c->higher_is_better ? ">=" : "<=");
        else
            printf("null, \"comparison\": null");
        printf(", \"status\": \"%s\", \"reason\": ", hp_status_name(c->status));
        put_str(c->reason);
        printf(", \"detail\": ");
        put_opt(c->detail);
        printf("}");
    }
    printf("\n  ],\n  \"gpu_seconds\": %.3f\n}\n", r.seconds);
    return all_pass ? 0 : 1;
}
