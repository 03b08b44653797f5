/* routes_misc.c - GET /v1/models, /health and /metrics (routes.h).
 *
 * /health is the service's own state merged with the hardware report of health.h:
 *   {"object": "health.report", "status": "ok"|"degraded", "version", "uptime_seconds",
 *    "database": {"ok", "schema_version", "error"},
 *    "queue": {"queued", "in_progress", "max"}, "jobs": {state: count},
 *    "model": {"loaded", "name", "backend", "precision", "dir", "error"},
 *    "verdict", "reasons", "ready", "thresholds", "run", "world_size", "ranks", "checks"}
 * It answers 200 when the verdict is READY or DEGRADED (the service works) and 503 when it is
 * NOT_READY, with the same body. "status" is kept for older clients: "ok" unless NOT_READY.
 * ?refresh=1 (or true) first asks for a fresh hardware run and waits up to
 * HEALTH_REFRESH_WAIT_S for it (it waits for running jobs; "run.pending" says if it still is).
 * /health/live is 200 while the process answers; /health/ready is 200 when the report's
 * "ready" is (the service can take jobs), 503 otherwise, with {"ok", "reason", "verdict"};
 * /health/history?limit=N (1-1000, default 20) lists the stored runs newest first; POST
 * /health/run asks for a run and answers the report when it finished within
 * HEALTH_REFRESH_WAIT_S (200), or 202 with the report while it still waits for jobs.
 * /metrics adds the report's values (health_metrics_render) to the service's counters.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health.h"
#include "routes.h"

#ifndef AUTEUR_VERSION
#define AUTEUR_VERSION "dev"
#endif

int routes_models(http_req *r) {
    app *a = r->app;
    if (!a->mi)
        return http_reply_json(r, 200, strdup("{\"object\":\"list\",\"data\":[]}"));
    return http_reply_json(r, 200, api_models_render(a->mi, a->started_at));
}

/* The report as a JSON object; *healthy = 1 unless the verdict is NOT_READY. */
static json_t *health_report_object(app *a, int *healthy) {
    int counts[4] = {0, 0, 0, 0}, before = 0, version = 0;
    au_err err;
    int db_ok = store_counts(a->st, counts, &err) == 0;
    store_schema_versions(a->st, &before, &version);
    health_live live = {.db_ok = db_ok,
                        .engine_loaded = a->pipe != NULL,
                        .queue_full = counts[API_QUEUED] + counts[API_IN_PROGRESS] >= a->cfg->max_queue};
    health_service *hs = a->health;
    json_t *hw = hs ? health_service_report(hs, &live) : NULL;
    if (!hw)
        return NULL;
    *healthy = strcmp(json_string_value(json_object_get(hw, "verdict")), "NOT_READY") != 0;
    /* the precision is the one the health run reports for this process's engine */
    json_t *engine = json_object_get(json_array_get(json_object_get(hw, "ranks"), 0), "engine");
    json_t *jobs = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(jobs, api_status_name((api_status)i), json_integer(counts[i]));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:{s:b, s:i, s:s?}, s:{s:i, s:i, s:i}, s:o, s:{s:b, s:s?, s:s?, s:s?, s:s, "
        "s:s?}}",
        "object", "health.report", "status", *healthy ? "ok" : "degraded", "version", AUTEUR_VERSION,
        "uptime_seconds", (json_int_t)(time(NULL) - a->started_at), "database", "ok", db_ok, "schema_version",
        version, "error", db_ok ? NULL : err.msg, "queue", "queued", counts[API_QUEUED], "in_progress",
        counts[API_IN_PROGRESS], "max", a->cfg->max_queue, "jobs", jobs, "model", "loaded", a->pipe != NULL,
        "name", a->mi ? a->mi->name : NULL, "backend", a->pipe ? pipeline_backend_name(a->pipe) : NULL,
        "precision", json_string_value(json_object_get(engine, "precision")), "dir", a->cfg->model_dir,
        "error", a->pipe ? NULL : a->model_error);
    if (o)
        json_object_update(o, hw);
    json_decref(hw);
    return o;
}

char *routes_health_report(app *a, int *healthy) {
    json_t *o = health_report_object(a, healthy);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    return s;
}

int routes_health(http_req *r) {
    const char *refresh = http_query(r, "refresh");
    if (refresh) {
        if (strcmp(refresh, "1") != 0 && strcmp(refresh, "true") != 0) {
            api_error e;
            api_errorf(&e, 400, "invalid_value", "refresh", "refresh: expected 1 or true, got \"%s\"",
                       refresh);
            return http_reply_error(r, &e);
        }
        health_service_run(r->app->health, HEALTH_REFRESH_WAIT_S);
    }
    int healthy = 0;
    char *body = routes_health_report(r->app, &healthy);
    return http_reply_json(r, healthy ? 200 : 503, body);
}

int routes_health_live(http_req *r) {
    return http_reply_json(r, 200, strdup("{\"status\":\"alive\"}"));
}

int routes_health_ready(http_req *r) {
    int healthy;
    json_t *o = health_report_object(r->app, &healthy);
    if (!o)
        return http_reply_json(r, 500, NULL);
    json_t *ready = json_object_get(o, "ready");
    int ok = json_is_true(json_object_get(ready, "ok"));
    json_t *body = json_pack("{s:b, s:O, s:O}", "ok", ok, "reason", json_object_get(ready, "reason"),
                             "verdict", json_object_get(o, "verdict"));
    json_decref(o);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return http_reply_json(r, ok ? 200 : 503, text);
}

int routes_health_history(http_req *r) {
    const char *s = http_query(r, "limit");
    char *end = NULL;
    long limit = s ? strtol(s, &end, 10) : 20;
    api_error e;
    if (s && (!*s || *end || limit < 1 || limit > 1000)) {
        api_errorf(&e, 400, "invalid_value", "limit", "limit: expected an integer from 1 to 1000, got \"%s\"",
                   s);
        return http_reply_error(r, &e);
    }
    json_t *list;
    au_err err;
    if (health_service_history(r->app->health, (int)limit, &list, &err) != 0) {
        api_error_from_status(&e, &err, NULL);
        return http_reply_error(r, &e);
    }
    char *text = json_dumps(list, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(list);
    return http_reply_json(r, 200, text);
}

int routes_health_run(http_req *r) {
    int finished = health_service_run(r->app->health, HEALTH_REFRESH_WAIT_S), healthy;
    return http_reply_json(r, finished ? 200 : 202, routes_health_report(r->app, &healthy));
}

int routes_metrics(http_req *r) {
    int counts[4], healthy;
    au_err err;
    if (store_counts(r->app->st, counts, &err) != 0) {
        api_error e;
        api_error_from_status(&e, &err, NULL);
        return http_reply_error(r, &e);
    }
    char *base = metrics_render(r->app->met, counts, r->app->pipe != NULL);
    json_t *report = health_report_object(r->app, &healthy);
    char *hw = report ? health_metrics_render(report) : NULL;
    json_decref(report);
    char *body = base && hw ? malloc(strlen(base) + strlen(hw) + 1) : NULL;
    if (body) {
        strcpy(body, base);
        strcat(body, hw);
    }
    free(base);
    free(hw);
    return http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", body);
}
