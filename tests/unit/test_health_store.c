// deps: au_server
/* test_health_store.c - the /health history in SQLite: runs stored with their headline
 * figures as columns (NULL when not measured), read back newest first with their ids, pruned
 * to the newest `keep`, kept across a reopen; the write probe; bad input rejected.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/health_store.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* A stored run as health_run_to_json makes it, with bandwidth `bw` (<0: not measured). */
static json_t *make_run(double started, const char *verdict, double bw) {
    return json_pack("{s:s, s:f, s:f, s:s, s:[{s:i, s:[{s:s, s:o}, {s:s, s:f}]}], s:[]}", "trigger",
                     "request", "started_at", started, "finished_at", started + 1.5, "verdict", verdict,
                     "ranks", "rank", 0, "checks", "name", "memory_bandwidth", "value",
                     bw < 0 ? json_null() : json_real(bw), "name", "gemm_fp16", "value", 59.6, "checks");
}

static double query_double(const char *db_path, const char *sql, int *is_null) {
    sqlite3 *db;
    sqlite3_stmt *st;
    double v = -1;
    if (sqlite3_open(db_path, &db) != SQLITE_OK || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
        v = sqlite3_column_double(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

int main(void) {
    char dir[] = "/tmp/auteur-hstore-XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/auteur.db", dir);
    health_store *s;
    au_err err;
    int64_t id = 0;
    json_t *list, *run;
    double ms = -1;
    int is_null = 0;
    CHECK(health_store_open(&s, path, &err) == 0);

    CHECK(health_store_probe_write(s, 1795540000.5, &ms, &err) == 0 && ms >= 0);
    CHECK(query_double(path, "SELECT written_at FROM health_write_probe WHERE id = 1", &is_null) ==
          1795540000.5);
    CHECK(health_store_probe_write(s, 1795540001.5, &ms, &err) == 0);
    CHECK(query_double(path, "SELECT count(*) FROM health_write_probe", &is_null) == 1);

    run = make_run(100, "DEGRADED", -1);
    CHECK(health_store_insert(s, run, 2, &id, &err) == 0 && id == 1);
    json_decref(run);
    run = make_run(200, "READY", 107.5);
    CHECK(health_store_insert(s, run, 2, &id, &err) == 0 && id == 2);
    json_decref(run);
    CHECK(query_double(path, "SELECT memory_bandwidth_gbs FROM health_runs WHERE id = 1", &is_null) >= -1 &&
          is_null);
    CHECK(query_double(path, "SELECT memory_bandwidth_gbs FROM health_runs WHERE id = 2", &is_null) ==
              107.5 &&
          !is_null);
    CHECK(query_double(path, "SELECT gemm_fp16_tflops FROM health_runs WHERE id = 2", &is_null) == 59.6);
    CHECK(query_double(path, "SELECT gemm_fp8_tflops FROM health_runs WHERE id = 2", &is_null) >= -1 &&
          is_null);
    CHECK(query_double(path, "SELECT finished_at FROM health_runs WHERE id = 2", &is_null) == 201.5);

    /* the third run pushes the first out (keep = 2) */
    run = make_run(300, "DEGRADED", 99.0);
    CHECK(health_store_insert(s, run, 2, &id, &err) == 0 && id == 3);
    json_decref(run);
    CHECK(health_store_history(s, 10, &list, &err) == 0 && json_array_size(list) == 2);
    CHECK(json_integer_value(json_object_get(json_array_get(list, 0), "id")) == 3);
    CHECK(json_integer_value(json_object_get(json_array_get(list, 1), "id")) == 2);
    CHECK(json_number_value(json_object_get(json_array_get(list, 1), "started_at")) == 200);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(list, 1), "verdict")), "READY") == 0);
    json_decref(list);
    CHECK(health_store_history(s, 1, &list, &err) == 0 && json_array_size(list) == 1);
    json_decref(list);

    /* bad input */
    CHECK(health_store_history(s, 0, &list, &err) == AU_EINVAL && strstr(err.msg, "limit") && list == NULL);
    CHECK(health_store_history(s, 1001, &list, &err) == AU_EINVAL);
    run = json_pack("{s:s}", "trigger", "request");
    CHECK(health_store_insert(s, run, 2, &id, &err) == AU_EINVAL && strstr(err.msg, "started_at"));
    json_decref(run);
    run = make_run(400, "MAYBE", 1); /* the schema's CHECK constraint */
    CHECK(health_store_insert(s, run, 0, &id, &err) == AU_EIO && strstr(err.msg, "CHECK constraint"));
    json_decref(run);
    health_store_close(s);

    /* kept across a reopen; keep <= 0 keeps everything */
    CHECK(health_store_open(&s, path, &err) == 0);
    run = make_run(500, "READY", 100.0);
    CHECK(health_store_insert(s, run, 0, &id, &err) == 0 && id == 4); /* the refused row took no id */
    json_decref(run);
    CHECK(health_store_history(s, 10, &list, &err) == 0 && json_array_size(list) == 3);
    json_decref(list);
    health_store_close(s);

    CHECK(health_store_open(&s, "/nonexistent-dir/auteur.db", &err) == AU_EIO &&
          strstr(err.msg, "/nonexistent-dir/auteur.db"));

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "test_health_store: %d checks failed\n", failures);
        return 1;
    }
    printf("test_health_store: ok\n");
    return 0;
}
