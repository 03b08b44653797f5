/* health.c - thresholds, a run as JSON, and the verdict of the /health report (health.h).
 *
 * Values are kept to 6 significant digits in the JSON (a benchmark's noise is far larger),
 * times (Unix seconds) to the millisecond.
 * The verdict is a function of the run's JSON and the live state only, so the same rules
 * judge a fresh run, the stored history and the report served later.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

/* ---- thresholds ---- */

void health_thresholds_default(health_thresholds *t) {
    hp_thresholds_default(&t->gpu);
    t->data_dir_min_free_gb = 1.0;
    t->comm_bus_bandwidth_gbs = 15.0;
}

typedef struct threshold_key {
    const char *name;
    size_t offset;
} threshold_key;

#define TKEY(name, field)                                                                                    \
    { name, offsetof(health_thresholds, field) }
static const threshold_key threshold_keys[] = {
    TKEY("memory_bandwidth_gbs", gpu.memory_bandwidth_gbs),
    TKEY("gemm_fp16_tflops", gpu.gemm_fp16_tflops),
    TKEY("gemm_fp8_tflops", gpu.gemm_fp8_tflops),
    TKEY("fp8_gemm_max_rel_err", gpu.fp8_gemm_max_rel_err),
    TKEY("attention_max_rel_err", gpu.attention_max_rel_err),
    TKEY("data_dir_min_free_gb", data_dir_min_free_gb),
    TKEY("comm_bus_bandwidth_gbs", comm_bus_bandwidth_gbs),
};
#define N_THRESHOLD_KEYS ((int)(sizeof threshold_keys / sizeof threshold_keys[0]))

int health_thresholds_load(health_thresholds *t, const char *path, au_err *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return au_errf(err, AU_EINVAL, "health thresholds %s: %s (line %d)", path, jerr.text, jerr.line);
    int rc = 0;
    const char *key;
    json_t *value;
    if (!json_is_object(root)) {
        rc = au_errf(err, AU_EINVAL, "health thresholds %s: expected a JSON object", path);
        goto done;
    }
    json_object_foreach(root, key, value) {
        int i = 0;
        while (i < N_THRESHOLD_KEYS && strcmp(threshold_keys[i].name, key) != 0)
            i++;
        if (i == N_THRESHOLD_KEYS) {
            rc = au_errf(err, AU_EINVAL, "health thresholds %s: unknown key \"%s\"", path, key);
            goto done;
        }
        if (!json_is_number(value) || json_number_value(value) < 0) {
            rc = au_errf(err, AU_EINVAL, "health thresholds %s: \"%s\" must be a non-negative number", path,
                         key);
            goto done;
        }
        *(double *)((char *)t + threshold_keys[i].offset) = json_number_value(value);
    }
done:
    json_decref(root);
    return rc;
}

json_t *health_thresholds_json(const health_thresholds *t) {
    json_t *o = json_object();
    for (int i = 0; o && i < N_THRESHOLD_KEYS; i++)
        json_object_set_new(o, threshold_keys[i].name,
                            json_real(*(const double *)((const char *)t + threshold_keys[i].offset)));
    return o;
}

/* ---- a run as JSON ---- */

const char *health_verdict_name(health_verdict v) {
    return v == HEALTH_READY ? "READY" : v == HEALTH_DEGRADED ? "DEGRADED" : "NOT_READY";
}

const char *health_precision_of(const char *backend, au_precision precision) {
    if (backend && strcmp(backend, "cpu") == 0)
        return "float32";
    if (backend && strcmp(backend, "cuda") == 0)
        return precision == AU_PRECISION_BF16 ? "bf16" : "fp8";
    return NULL;
}

/* A number to 6 significant digits, or null for NaN (JSON has no NaN). */
static json_t *num(double v) {
    if (isnan(v) || isinf(v))
        return json_null();
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", v);
    return json_real(strtod(buf, NULL));
}

/* Unix seconds to the millisecond. */
static json_t *unix_time(double v) {
    return json_real(round(v * 1e3) / 1e3);
}

static json_t *str_or_null(const char *s) {
    return s && s[0] ? json_string(s) : json_null();
}

static json_t *check_json(const hp_check *c) {
    int valued = c->measured && !isnan(c->value);
    return json_pack("{s:s, s:o, s:s, s:o, s:o, s:s, s:s, s:o}", "name", c->name, "value",
                     valued ? num(c->value) : json_null(), "unit", c->unit, "threshold",
                     c->has_threshold ? num(c->threshold) : json_null(), "comparison",
                     c->has_threshold ? json_string(c->higher_is_better ? ">=" : "<=") : json_null(),
                     "status", hp_status_name(c->status), "reason", c->reason, "detail",
                     str_or_null(c->detail));
}

static json_t *version_json(int v) {
    char buf[16];
    snprintf(buf, sizeof buf, "%d.%d", v / 1000, (v % 1000) / 10);
    return json_string(buf);
}

static json_t *gpu_json(const hp_gpu_report *g) {
    if (!g->available)
        return json_pack("{s:b, s:s}", "available", 0, "reason", g->reason);
    const hp_gpu_facts *f = &g->facts;
    char cc[16];
    snprintf(cc, sizeof cc, "%d.%d", f->cc_major, f->cc_minor);
    json_t *o = json_pack("{s:b, s:n, s:i, s:i, s:s, s:s, s:i, s:I, s:I, s:s, s:b, s:b, s:b}", "available", 1,
                          "reason", "device", f->device, "device_count", f->device_count, "name", f->name,
                          "compute_capability", cc, "sm_count", f->sm_count, "memory_total_bytes",
                          (json_int_t)f->memory_total_bytes, "memory_free_bytes",
                          (json_int_t)f->memory_free_bytes, "memory", f->unified ? "unified" : "discrete",
                          "integrated", f->integrated, "pageable_memory_access", f->pageable_memory_access,
                          "pageable_memory_uses_host_page_tables", f->pageable_uses_host_page_tables);
    if (!o)
        return NULL;
    json_object_set_new(o, "driver_version", str_or_null(f->driver_version));
    json_object_set_new(o, "driver_version_error", str_or_null(f->driver_version_error));
    json_object_set_new(o, "cuda_runtime_version", version_json(f->runtime_version));
    json_object_set_new(o, "cuda_driver_api_version", version_json(f->driver_api_version));
    return o;
}

static json_t *network_json(const health_host *h) {
    json_t *rdma = json_array(), *ifs = json_array();
    for (int i = 0; rdma && i < h->n_rdma; i++) {
        const health_rdma_dev *d = &h->rdma[i];
        json_t *ports = json_array();
        for (int p = 0; ports && p < d->n_ports; p++)
            json_array_append_new(ports, json_pack("{s:i, s:s, s:s, s:s}", "port", d->ports[p].port, "state",
                                                   d->ports[p].state, "link_layer", d->ports[p].link_layer,
                                                   "rate", d->ports[p].rate));
        json_array_append_new(rdma, json_pack("{s:s, s:o, s:o}", "name", d->name, "netdev",
                                              str_or_null(d->netdev), "ports", ports ? ports : json_null()));
    }
    for (int i = 0; ifs && i < h->n_netif; i++) {
        const health_netif *n = &h->netif[i];
        json_array_append_new(
            ifs, json_pack("{s:s, s:s, s:o, s:i}", "name", n->name, "operstate", n->operstate, "speed_mbps",
                           n->speed_mbps > 0 ? json_integer(n->speed_mbps) : json_null(), "mtu", n->mtu));
    }
    return json_pack("{s:o, s:o}", "rdma", rdma ? rdma : json_null(), "interfaces", ifs ? ifs : json_null());
}

static json_t *host_json(const health_host *h, const char *host_error) {
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s}", "hostname", h->hostname, "cpu_arch", h->cpu_arch,
                  "cpu_model", h->cpu_model, "cpu_cores", h->cpu_cores, "memory_total_bytes",
                  (json_int_t)h->memory_total_bytes, "os", h->os, "kernel", h->kernel);
    if (o && host_error)
        json_object_set_new(o, "error", json_string(host_error));
    return o;
}

json_t *health_hardware_json(const health_host *host, const char *host_error, const hp_gpu_report *gpu,
                             const char *backend, const char *precision) {
    json_t *h = host_json(host, host_error), *net = network_json(host), *g = gpu_json(gpu),
           *engine = json_pack("{s:o, s:o}", "backend", str_or_null(backend), "precision",
                               str_or_null(precision));
    if (!h || !net || !g || !engine) {
        json_decref(h);
        json_decref(net);
        json_decref(g);
        json_decref(engine);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "host", h, "network", net, "gpu", g, "engine", engine);
}

static json_t *checks_json(const hp_check *checks, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, check_json(&checks[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *rank_json(const health_run *run, const health_context *ctx) {
    const hp_gpu_report *g = &run->gpu;
    json_t *gemms = json_array();
    for (int i = 0; gemms && i < g->n_gemms; i++) {
        const hp_gemm *m = &g->gemms[i];
        int timed = m->ms > 0;
        json_array_append_new(gemms, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:o, s:o}", "name", m->name,
                                               "precision", m->fp8 ? "fp8" : "fp16", "m", (json_int_t)m->m,
                                               "n", (json_int_t)m->n, "k", (json_int_t)m->k, "per_block",
                                               m->per_block, "ms", timed ? num(m->ms) : json_null(), "tflops",
                                               timed ? num(m->tflops) : json_null()));
    }
    json_t *o = json_pack("{s:i, s:s, s:b}", "rank", 0, "role", "server", "joined", 1);
    json_t *hw = health_hardware_json(&run->host, run->host_ok ? NULL : run->host_error, g, ctx->backend,
                                      ctx->precision);
    json_t *checks = checks_json(g->checks, HP_N_CHECKS);
    if (!gemms || !o || !hw || !checks || json_object_update(o, hw) != 0) {
        json_decref(gemms);
        json_decref(o);
        json_decref(hw);
        json_decref(checks);
        return NULL;
    }
    json_decref(hw);
    json_object_set_new(o, "gemm", gemms);
    json_object_set_new(o, "gpu_seconds", num(g->seconds));
    json_object_set_new(o, "checks", checks);
    return o;
}

json_t *health_peer_rank_json(int rank, const json_t *hardware) {
    if (!hardware) {
        char reason[64];
        snprintf(reason, sizeof reason, "rank %d missing: not joined", rank);
        return json_pack("{s:i, s:s, s:b, s:s}", "rank", rank, "role", "worker", "joined", 0, "reason",
                         reason);
    }
    json_t *o = json_pack("{s:i, s:s, s:b}", "rank", rank, "role", "worker", "joined", 1);
    /* what the rank sent cannot overwrite who it is */
    if (o && json_object_update_missing(o, (json_t *)hardware) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *health_run_to_json(const health_run *run, const health_context *ctx) {
    int world = run->world_size < 1                  ? 1
                : run->world_size > HEALTH_MAX_RANKS ? HEALTH_MAX_RANKS
                                                     : run->world_size;
    int joined = 1;
    json_t *ranks = json_array(), *rank = rank_json(run, ctx);
    json_t *checks = checks_json(run->service, HEALTH_N_SERVICE);
    json_t *reasons = json_array();
    int ok = ranks && rank && checks && reasons && json_array_append_new(ranks, rank) == 0;
    if (!ok)
        json_decref(rank);
    for (int r = 1; ok && r < world; r++) {
        joined += run->peers[r] != NULL;
        ok = json_array_append_new(ranks, health_peer_rank_json(r, run->peers[r])) == 0;
    }
    if (!ok) {
        json_decref(ranks);
        json_decref(checks);
        json_decref(reasons);
        return NULL;
    }
    json_t *o =
        json_pack("{s:s, s:o, s:o, s:o, s:i, s:i, s:o, s:o, s:o}", "trigger", run->trigger, "started_at",
                  unix_time(run->started_at), "finished_at", unix_time(run->finished_at), "seconds",
                  num(run->finished_at - run->started_at), "world_size", world, "ranks_joined", joined,
                  "transport", str_or_null(run->transport), "ranks", ranks, "checks", checks);
    if (!o) {
        json_decref(reasons);
        return NULL;
    }
    health_live live = {.db_ok = run->service[HEALTH_CHECK_DATABASE].status != HP_FAIL,
                        .engine_loaded = ctx->engine_loaded};
    health_verdict v = health_decide(o, &live, world, reasons);
    json_object_set_new(o, "verdict", json_string(health_verdict_name(v)));
    json_object_set_new(o, "reasons", reasons);
    return o;
}

/* ---- the verdict ---- */

static void add_reason(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_reason(json_t *reasons, const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(buf));
}

static const char *sget(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A check that makes the service unusable when it fails. */
static int fatal_check(const char *name) {
    return strcmp(name, "database_writable") == 0 || strcmp(name, "model_files") == 0;
}

health_verdict health_decide(const json_t *run, const health_live *live, int world_size, json_t *reasons) {
    int not_ready = 0, degraded = 0;
    size_t i;
    json_t *c, *rank;
    if (!live->engine_loaded) {
        not_ready = 1;
        add_reason(reasons, "no engine: the model did not load");
    }
    if (!live->db_ok) {
        not_ready = 1;
        add_reason(reasons, "database unusable: the job store does not answer");
    }
    if (!run) {
        degraded = 1;
        add_reason(reasons, "%s",
                   live->run_pending ? "hardware checks pending: the first run has not finished"
                                     : "no hardware checks have run");
        return not_ready ? HEALTH_NOT_READY : HEALTH_DEGRADED;
    }
    json_array_foreach(json_object_get(run, "checks"), i, c) {
        if (strcmp(sget(c, "status"), "FAIL") != 0)
            continue;
        if (fatal_check(sget(c, "name")))
            not_ready = 1;
        else
            degraded = 1;
        add_reason(reasons, "%s FAIL: %s", sget(c, "name"), sget(c, "reason"));
    }
    const json_t *ranks = json_object_get(run, "ranks");
    for (int r = (int)json_array_size(ranks); r < world_size; r++) { /* not even listed */
        degraded = 1;
        add_reason(reasons, "rank %d missing", r);
    }
    json_array_foreach(ranks, i, rank) {
        int r = (int)json_integer_value(json_object_get(rank, "rank"));
        if (json_is_false(json_object_get(rank, "joined"))) {
            degraded = 1;
            add_reason(reasons, "rank %d missing", r);
            continue;
        }
        const json_t *gpu = json_object_get(rank, "gpu");
        int has_gpu = json_is_true(json_object_get(gpu, "available"));
        const char *backend = sget(json_object_get(rank, "engine"), "backend");
        if (!has_gpu) {
            degraded = 1;
            add_reason(reasons, "rank %d CPU-only: %s", r, sget(gpu, "reason"));
        } else if (strcmp(backend, "cpu") == 0) {
            degraded = 1;
            add_reason(reasons, "rank %d CPU-only: the engine runs on the cpu backend beside a GPU", r);
        }
        const json_t *checks = json_object_get(rank, "checks");
        size_t j, k;
        json_array_foreach(checks, j, c) {
            const char *status = sget(c, "status");
            if (strcmp(status, "FAIL") == 0) {
                degraded = 1;
                add_reason(reasons, "rank %d %s FAIL: %s", r, sget(c, "name"), sget(c, "reason"));
                continue;
            }
            if (strcmp(status, "SKIP") != 0 || !has_gpu)
                continue;
            /* one reason for all the checks skipped for the same cause, at its first */
            int seen = 0;
            for (k = 0; k < j && !seen; k++)
                seen = strcmp(sget(json_array_get(checks, k), "status"), "SKIP") == 0 &&
                       strcmp(sget(json_array_get(checks, k), "reason"), sget(c, "reason")) == 0;
            if (seen)
                continue;
            char names[512];
            size_t len = (size_t)snprintf(names, sizeof names, "%s", sget(c, "name"));
            for (k = j + 1; k < json_array_size(checks) && len < sizeof names; k++) {
                const json_t *d = json_array_get(checks, k);
                if (strcmp(sget(d, "status"), "SKIP") == 0 &&
                    strcmp(sget(d, "reason"), sget(c, "reason")) == 0)
                    len += (size_t)snprintf(names + len, sizeof names - len, ", %s", sget(d, "name"));
            }
            degraded = 1;
            add_reason(reasons, "rank %d %s not measured: %s", r, names, sget(c, "reason"));
        }
    }
    return not_ready ? HEALTH_NOT_READY : degraded ? HEALTH_DEGRADED : HEALTH_READY;
}
