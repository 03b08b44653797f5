/* health_store.c - the /health history in SQLite (health_store.h). */
#include "health_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate.h"
#include "store.h"

enum { HS_PROBE, HS_INSERT, HS_PRUNE, HS_HISTORY, HS_COUNT };

static const char *const hs_sql[HS_COUNT] = {
    [HS_PROBE] = "INSERT OR REPLACE INTO health_write_probe (id, written_at) VALUES (1, ?1)",
    [HS_INSERT] = "INSERT INTO health_runs (started_at, finished_at, trigger, verdict, memory_bandwidth_gbs, "
                  "gemm_fp16_tflops, gemm_fp8_tflops, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [HS_PRUNE] = "DELETE FROM health_runs WHERE id <= "
                 "(SELECT id FROM health_runs ORDER BY id DESC LIMIT 1 OFFSET ?1)",
    [HS_HISTORY] = "SELECT id, report FROM health_runs ORDER BY id DESC LIMIT ?1",
};

struct health_store {
    sqlite3 *db;
    sqlite3_stmt *st[HS_COUNT];
    pthread_mutex_t mu;
};

static int hs_fail(health_store *s, au_err *err, const char *what) {
    return au_errf(err, AU_EIO, "health history: sqlite %s: %s", what, sqlite3_errmsg(s->db));
}

int health_store_open(health_store **out, const char *path, au_err *err) {
    *out = NULL;
    health_store *s = calloc(1, sizeof *s);
    if (!s)
        return au_errf(err, AU_ENOMEM, "health history: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    int rc = 0;
    char *msg = NULL;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = au_errf(err, AU_EIO, "health history: database %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", NULL, NULL, &msg) !=
        SQLITE_OK) {
        rc = au_errf(err, AU_EIO, "health history: database %s: %s", path, msg ? msg : "pragma failed");
        sqlite3_free(msg);
        goto fail;
    }
    if ((rc = migrate_apply(s->db, NULL, NULL, err))) {
        au_err_prefix(err, "health history: database %s", path);
        goto fail;
    }
    for (int i = 0; i < HS_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, hs_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            rc = hs_fail(s, err, hs_sql[i]);
            goto fail;
        }
    *out = s;
    return 0;
fail:
    health_store_close(s);
    return rc;
}

void health_store_close(health_store *s) {
    if (!s)
        return;
    for (int i = 0; i < HS_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int health_store_probe_write(health_store *s, double now, double *ms, au_err *err) {
    pthread_mutex_lock(&s->mu);
    double t0 = mono_ms();
    sqlite3_stmt *st = s->st[HS_PROBE];
    sqlite3_bind_double(st, 1, now);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : hs_fail(s, err, "writing the probe row");
    sqlite3_reset(st);
    *ms = mono_ms() - t0;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The value of check `name` of rank 0, or NULL when absent or not measured. */
static const json_t *rank0_value(const json_t *run, const char *name) {
    const json_t *c;
    size_t i;
    json_array_foreach(json_object_get(json_array_get(json_object_get(run, "ranks"), 0), "checks"), i, c) {
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n && strcmp(n, name) == 0)
            return json_is_number(json_object_get(c, "value")) ? json_object_get(c, "value") : NULL;
    }
    return NULL;
}

static void bind_opt(sqlite3_stmt *st, int i, const json_t *v) {
    if (v)
        sqlite3_bind_double(st, i, json_number_value(v));
    else
        sqlite3_bind_null(st, i);
}

int health_store_insert(health_store *s, const json_t *run, int keep, int64_t *id, au_err *err) {
    const json_t *started = json_object_get(run, "started_at"),
                 *finished = json_object_get(run, "finished_at");
    const char *trigger = json_string_value(json_object_get(run, "trigger")),
               *verdict = json_string_value(json_object_get(run, "verdict"));
    if (!json_is_number(started) || !json_is_number(finished) || !trigger || !verdict)
        return au_errf(err, AU_EINVAL,
                       "health history: a run needs started_at, finished_at, trigger and verdict");
    char *report = json_dumps(run, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!report)
        return au_errf(err, AU_ENOMEM, "health history: out of memory");
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[HS_INSERT];
    sqlite3_bind_double(st, 1, json_number_value(started));
    sqlite3_bind_double(st, 2, json_number_value(finished));
    sqlite3_bind_text(st, 3, trigger, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, verdict, -1, SQLITE_STATIC);
    bind_opt(st, 5, rank0_value(run, "memory_bandwidth"));
    bind_opt(st, 6, rank0_value(run, "gemm_fp16"));
    bind_opt(st, 7, rank0_value(run, "gemm_fp8"));
    sqlite3_bind_text(st, 8, report, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = hs_fail(s, err, "inserting a run");
    else
        *id = (int64_t)sqlite3_last_insert_rowid(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == 0 && keep > 0) {
        st = s->st[HS_PRUNE];
        sqlite3_bind_int(st, 1, keep);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = hs_fail(s, err, "deleting old runs");
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&s->mu);
    free(report);
    return rc;
}

int health_store_history(health_store *s, int limit, json_t **out, au_err *err) {
    *out = NULL;
    if (limit < 1 || limit > 1000)
        return au_errf(err, AU_EINVAL, "limit: expected 1 to 1000, got %d", limit);
    json_t *list = json_array();
    if (!list)
        return au_errf(err, AU_ENOMEM, "health history: out of memory");
    int rc = 0, step;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[HS_HISTORY];
    sqlite3_bind_int(st, 1, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        json_error_t jerr;
        json_t *run = json_loads((const char *)sqlite3_column_text(st, 1), 0, &jerr);
        if (!json_is_object(run)) {
            json_decref(run);
            rc = au_errf(err, AU_EFORMAT, "health history: run %lld: stored report is not a JSON object",
                         (long long)id);
            break;
        }
        json_object_set_new(run, "id", json_integer(id));
        json_array_append_new(list, run);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = hs_fail(s, err, "reading runs");
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        json_decref(list);
        return rc;
    }
    *out = list;
    return 0;
}
