/* health_render.c - the /health report as the `auteur health` table and as Prometheus text
 * (health.h). Both read the report's JSON, so the client renders what the server sent.
 *
 * Table: verdict, readiness and reasons; the run, the service and the ranks joined; per rank
 * the host, GPU, RDMA and network devices and engine (or that it is missing); then one line
 * per check (rank "all" for the checks of the service as a whole): value, threshold with its
 * comparison, status, reason.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health.h"
#include "textbuf.h"

static const char *sget(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static double nget(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double gib(const json_t *o, const char *key) {
    return nget(o, key) / (1024.0 * 1024.0 * 1024.0);
}

static void fmt_time(double unix_s, char *out, size_t cap) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (isnan(unix_s) || !gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, cap, "-");
}

/* "value unit" or "-" */
static void fmt_value(const json_t *c, const char *key, char *out, size_t cap) {
    double v = nget(c, key);
    const char *unit = sget(c, "unit");
    if (isnan(v))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.4g%s%s", v, unit[0] ? " " : "", unit);
}

static void table_head(textbuf *t, const json_t *r) {
    const json_t *ready = json_object_get(r, "ready"), *run = json_object_get(r, "run"), *reason;
    const json_t *model = json_object_get(r, "model"), *queue = json_object_get(r, "queue"),
                 *db = json_object_get(r, "database");
    size_t i;
    textbuf_put(t, "auteur health: %s (ready: %s%s%s)\n", sget(r, "verdict"),
        json_is_true(json_object_get(ready, "ok")) ? "yes" : "no",
        json_is_string(json_object_get(ready, "reason")) ? ", " : "", sget(ready, "reason"));
    json_array_foreach(json_object_get(r, "reasons"), i, reason)
        textbuf_put(t, "  - %s\n", json_string_value(reason));
    char when[64];
    if (json_is_integer(json_object_get(run, "id"))) {
        fmt_time(nget(run, "started_at"), when, sizeof when);
        textbuf_put(t, "run %lld (%s) at %s, %.2f s", (long long)json_integer_value(json_object_get(run, "id")),
            sget(run, "trigger"), when, nget(run, "seconds"));
    } else {
        textbuf_put(t, "no run finished yet");
    }
    if (json_is_true(json_object_get(run, "pending")))
        textbuf_put(t, "; another pending%s%s",
            json_is_string(json_object_get(run, "waiting_for")) ? ": waiting for " : "",
            sget(run, "waiting_for"));
    textbuf_put(t,
        "\nservice %s, up %lld s; database %s (schema %lld); queue %lld queued, %lld in progress (max "
        "%lld)\n",
        sget(r, "version"), (long long)json_integer_value(json_object_get(r, "uptime_seconds")),
        json_is_true(json_object_get(db, "ok")) ? "ok" : "unusable",
        (long long)json_integer_value(json_object_get(db, "schema_version")),
        (long long)json_integer_value(json_object_get(queue, "queued")),
        (long long)json_integer_value(json_object_get(queue, "in_progress")),
        (long long)json_integer_value(json_object_get(queue, "max")));
    textbuf_put(t, "ranks %lld of %lld joined",
                (long long)json_integer_value(json_object_get(r, "ranks_joined")),
                (long long)json_integer_value(json_object_get(r, "world_size")));
    if (json_is_string(json_object_get(r, "transport")))
        textbuf_put(t, ", comm over %s", sget(r, "transport"));
    textbuf_put(t, "\n");
    if (json_is_true(json_object_get(model, "loaded")))
        textbuf_put(t, "model %s from %s\n", sget(model, "name"), sget(model, "dir"));
    else
        textbuf_put(t, "model not loaded from %s: %s\n", sget(model, "dir"), sget(model, "error"));
}

static void table_rank(textbuf *t, const json_t *rank) {
    const json_t *h = json_object_get(rank, "host"), *g = json_object_get(rank, "gpu"),
                 *net = json_object_get(rank, "network"), *eng = json_object_get(rank, "engine"), *d, *p;
    size_t i, j;
    textbuf_put(t, "\nrank %lld (%s)%s\n", (long long)json_integer_value(json_object_get(rank, "rank")),
                sget(rank, "role"), json_is_false(json_object_get(rank, "joined")) ? ": missing" : "");
    if (json_is_false(json_object_get(rank, "joined"))) {
        textbuf_put(t, "  %s\n", sget(rank, "reason"));
        return;
    }
    textbuf_put(t, "  host     %s: %s, %s, %lld cores, %.1f GiB, %s, kernel %s\n", sget(h, "hostname"),
        sget(h, "cpu_arch"), sget(h, "cpu_model"),
        (long long)json_integer_value(json_object_get(h, "cpu_cores")), gib(h, "memory_total_bytes"),
        sget(h, "os"), sget(h, "kernel"));
    if (json_is_string(json_object_get(h, "error")))
        textbuf_put(t, "           (incomplete: %s)\n", sget(h, "error"));
    if (json_is_true(json_object_get(g, "available"))) {
        textbuf_put(t, "  gpu      %s, compute capability %s, %lld SMs, %.1f of %.1f GiB free, %s memory\n",
            sget(g, "name"), sget(g, "compute_capability"),
            (long long)json_integer_value(json_object_get(g, "sm_count")), gib(g, "memory_free_bytes"),
            gib(g, "memory_total_bytes"), sget(g, "memory"));
        textbuf_put(t, "           driver %s, CUDA runtime %s, driver API %s\n",
            json_is_string(json_object_get(g, "driver_version")) ? sget(g, "driver_version") : "unknown",
            sget(g, "cuda_runtime_version"), sget(g, "cuda_driver_api_version"));
    } else {
        textbuf_put(t, "  gpu      none: %s\n", sget(g, "reason"));
    }
    json_array_foreach(json_object_get(net, "rdma"), i, d) {
        textbuf_put(t, "  rdma     %s%s%s:", sget(d, "name"),
            json_is_string(json_object_get(d, "netdev")) ? " -> " : "", sget(d, "netdev"));
        json_array_foreach(json_object_get(d, "ports"), j, p)
            textbuf_put(t, " port %lld %s %s %s;", (long long)json_integer_value(json_object_get(p, "port")),
                sget(p, "state"), sget(p, "link_layer"), sget(p, "rate"));
        textbuf_put(t, "\n");
    }
    if (json_array_size(json_object_get(net, "rdma")) == 0)
        textbuf_put(t, "  rdma     none\n");
    textbuf_put(t, "  network ");
    json_array_foreach(json_object_get(net, "interfaces"), i, d) {
        textbuf_put(t, " %s %s", sget(d, "name"), sget(d, "operstate"));
        if (json_is_integer(json_object_get(d, "speed_mbps")))
            textbuf_put(t, " %lld Mb/s", (long long)json_integer_value(json_object_get(d, "speed_mbps")));
        textbuf_put(t, ";");
    }
    textbuf_put(t, "\n  engine   %s, %s\n",
        json_is_string(json_object_get(eng, "backend")) ? sget(eng, "backend") : "none",
        json_is_string(json_object_get(eng, "precision")) ? sget(eng, "precision")
                                                          : "precision not reported");
}

static void table_check(textbuf *t, const char *rank, const json_t *c) {
    char value[48], threshold[48];
    fmt_value(c, "value", value, sizeof value);
    if (json_is_string(json_object_get(c, "comparison"))) {
        char th[40];
        fmt_value(c, "threshold", th, sizeof th);
        snprintf(threshold, sizeof threshold, "%s %s", sget(c, "comparison"), th);
    } else {
        snprintf(threshold, sizeof threshold, "-");
    }
    textbuf_put(t, "%-20s %-4s %-14s %-16s %-6s %s\n", sget(c, "name"), rank, value, threshold, sget(c, "status"),
        sget(c, "reason"));
}

char *health_table_render(const json_t *report) {
    textbuf t = {0};
    const json_t *rank, *c;
    size_t i, j;
    table_head(&t, report);
    json_array_foreach(json_object_get(report, "ranks"), i, rank) table_rank(&t, rank);
    textbuf_put(&t, "\n%-20s %-4s %-14s %-16s %-6s %s\n", "CHECK", "RANK", "VALUE", "THRESHOLD", "STATUS", "REASON");
    json_array_foreach(json_object_get(report, "ranks"), i, rank) {
        char r[16];
        snprintf(r, sizeof r, "%lld", (long long)json_integer_value(json_object_get(rank, "rank")));
        json_array_foreach(json_object_get(rank, "checks"), j, c) table_check(&t, r, c);
    }
    json_array_foreach(json_object_get(report, "checks"), i, c) table_check(&t, "all", c);
    return textbuf_finish(&t);
}

/* ---- Prometheus ---- */

static void metric_check(textbuf *t, const char *rank, const json_t *c, int part) {
    const char *name = sget(c, "name"), *unit = sget(c, "unit");
    static const char *const statuses[] = {"PASS", "FAIL", "SKIP"};
    double v = nget(c, part == 0 ? "value" : "threshold");
    if (part < 2) {
        if (!isnan(v))
            textbuf_put(t, "auteur_health_check_%s{check=\"%s\",rank=\"%s\",unit=\"%s\"} %.9g\n",
                part == 0 ? "value" : "threshold", name, rank, unit, v);
        return;
    }
    for (int s = 0; s < 3; s++)
        textbuf_put(t, "auteur_health_check_status{check=\"%s\",rank=\"%s\",status=\"%s\"} %d\n", name, rank,
            statuses[s], strcmp(sget(c, "status"), statuses[s]) == 0);
}

/* The ranks configured and joined, and the comm's bus bandwidth when the last run measured it. */
static void metrics_ranks(textbuf *t, const json_t *report) {
    const json_t *rank, *c;
    size_t i;
    textbuf_put(
        t,
        "# HELP auteur_health_world_size Ranks configured, this one included.\n"
        "# TYPE auteur_health_world_size gauge\nauteur_health_world_size %lld\n"
        "# HELP auteur_health_ranks_joined Ranks joined now, this one included.\n"
        "# TYPE auteur_health_ranks_joined gauge\nauteur_health_ranks_joined %lld\n"
        "# HELP auteur_health_rank_joined Whether each configured rank is joined (1) or missing (0).\n"
        "# TYPE auteur_health_rank_joined gauge\n",
        (long long)json_integer_value(json_object_get(report, "world_size")),
        (long long)json_integer_value(json_object_get(report, "ranks_joined")));
    json_array_foreach(json_object_get(report, "ranks"), i, rank)
        textbuf_put(t, "auteur_health_rank_joined{rank=\"%lld\"} %d\n",
                    (long long)json_integer_value(json_object_get(rank, "rank")),
                    !json_is_false(json_object_get(rank, "joined")));
    json_array_foreach(json_object_get(report, "checks"), i, c) {
        double busbw = nget(c, "value");
        if (strcmp(sget(c, "name"), "comm_allreduce") != 0 || isnan(busbw))
            continue;
        textbuf_put(
            t,
            "# HELP auteur_health_comm_bus_bandwidth_gbs All-reduce bus bandwidth between the ranks at the "
            "last run (GB/s), over the transport it used.\n# TYPE auteur_health_comm_bus_bandwidth_gbs "
            "gauge\n"
            "auteur_health_comm_bus_bandwidth_gbs{transport=\"%s\"} %.9g\n",
            sget(json_object_get(report, "run"), "transport"), busbw);
    }
}

char *health_metrics_render(const json_t *report) {
    static const char *const help[3][2] = {
        {"auteur_health_check_value", "The last measured value of each /health check, in its unit."},
        {"auteur_health_check_threshold", "The threshold each /health check is judged against."},
        {"auteur_health_check_status", "The status of each /health check (1 for the current one)."},
    };
    textbuf t = {0};
    const char *verdict = sget(report, "verdict");
    const json_t *run = json_object_get(report, "run"), *rank, *c;
    size_t i, j;
    textbuf_put(&t, "# HELP auteur_health_verdict The /health verdict (1 for the current one).\n"
            "# TYPE auteur_health_verdict gauge\n");
    for (int v = HEALTH_READY; v <= HEALTH_NOT_READY; v++)
        textbuf_put(&t, "auteur_health_verdict{verdict=\"%s\"} %d\n", health_verdict_name((health_verdict)v),
            strcmp(verdict, health_verdict_name((health_verdict)v)) == 0);
    textbuf_put(&t,
        "# HELP auteur_health_ready Whether the service can take jobs (1) or not (0).\n"
        "# TYPE auteur_health_ready gauge\nauteur_health_ready %d\n",
        json_is_true(json_object_get(json_object_get(report, "ready"), "ok")));
    for (int part = 0; part < 3; part++) {
        textbuf_put(&t, "# HELP %s %s\n# TYPE %s gauge\n", help[part][0], help[part][1], help[part][0]);
        json_array_foreach(json_object_get(report, "ranks"), i, rank) {
            char r[16];
            snprintf(r, sizeof r, "%lld", (long long)json_integer_value(json_object_get(rank, "rank")));
            json_array_foreach(json_object_get(rank, "checks"), j, c) metric_check(&t, r, c, part);
        }
        json_array_foreach(json_object_get(report, "checks"), i, c) metric_check(&t, "all", c, part);
    }
    metrics_ranks(&t, report);
    if (json_is_integer(json_object_get(run, "id")))
        textbuf_put(&t,
            "# HELP auteur_health_last_run_timestamp_seconds When the last /health run started (Unix time).\n"
            "# TYPE auteur_health_last_run_timestamp_seconds gauge\nauteur_health_last_run_timestamp_seconds "
            "%.3f\n"
            "# HELP auteur_health_last_run_seconds How long the last /health run took.\n"
            "# TYPE auteur_health_last_run_seconds gauge\nauteur_health_last_run_seconds %.6f\n",
            nget(run, "started_at"), nget(run, "seconds"));
    return textbuf_finish(&t);
}
