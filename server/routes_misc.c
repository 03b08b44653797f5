/* routes_misc.c - GET /v1/models, /health and /metrics (routes.h).
 *
 * /health is 200 when the database answers and an engine is loaded, 503 otherwise, with
 * the same JSON report either way:
 *   {"status": "ok"|"degraded", "version", "uptime_seconds",
 *    "database": {"ok", "schema_version", "error"},
 *    "queue": {"queued", "in_progress", "max"}, "jobs": {state: count},
 *    "model": {"loaded", "name", "backend", "dir", "error"}}
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

char *routes_health_report(app *a, int *healthy) {
    int counts[4] = {0, 0, 0, 0}, before = 0, version = 0;
    au_err err;
    int db_ok = store_counts(a->st, counts, &err) == 0;
    store_schema_versions(a->st, &before, &version);
    json_t *jobs = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(jobs, api_status_name((api_status)i), json_integer(counts[i]));
    json_t *model =
        json_pack("{s:b, s:s?, s:s?, s:s, s:s?}", "loaded", a->pipe != NULL, "name",
                  a->mi ? a->mi->name : NULL, "backend", a->pipe ? pipeline_backend_name(a->pipe) : NULL,
                  "dir", a->cfg->model_dir, "error", a->pipe ? NULL : a->model_error);
    *healthy = db_ok && a->pipe != NULL;
    json_t *o = json_pack("{s:s, s:s, s:I, s:{s:b, s:i, s:s?}, s:{s:i, s:i, s:i}, s:o, s:o}", "status",
                          *healthy ? "ok" : "degraded", "version", AUTEUR_VERSION, "uptime_seconds",
                          (json_int_t)(time(NULL) - a->started_at), "database", "ok", db_ok, "schema_version",
                          version, "error", db_ok ? NULL : err.msg, "queue", "queued", counts[API_QUEUED],
                          "in_progress", counts[API_IN_PROGRESS], "max", a->cfg->max_queue, "jobs", jobs,
                          "model", model);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int routes_health(http_req *r) {
    int healthy;
    char *body = routes_health_report(r->app, &healthy);
    return http_reply_json(r, healthy ? 200 : 503, body);
}

int routes_metrics(http_req *r) {
    int counts[4];
    au_err err;
    if (store_counts(r->app->st, counts, &err) != 0) {
        api_error e;
        api_error_from_status(&e, &err, NULL);
        return http_reply_error(r, &e);
    }
    return http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                           metrics_render(r->app->met, counts, r->app->pipe != NULL));
}
